/*
 * A tiny pseudo-random generator for data-structure decisions (skiplist
 * levels, SPOP, SRANDMEMBER), not for secrets: splitmix64 (Steele, Lea and
 * Flood, "Fast splittable pseudorandom number generators", 2014). The state
 * is one uint64_t that the caller owns and seeds (the store keeps one, the
 * plan's narf_coll_ctx.rng); any seed, 0 included, gives a full-period
 * sequence, so tests can replay a run from its seed.
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
