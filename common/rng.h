/*
 * splitmix64 (Steele, Lea and Flood, 2014): a tiny, fast generator for
 * sampling (random elements, eviction candidates), never for anything an
 * attacker must not predict. The caller keeps the 64-bit state, usually
 * seeded from the store's seed so that runs and tests are reproducible.
 */
#ifndef NARF_RNG_H
#define NARF_RNG_H

#include <stdint.h>

/* The next 64 random bits; advances *state. */
static inline uint64_t narf_rng_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

#endif /* NARF_RNG_H */
