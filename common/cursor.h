/*
 * The reverse-binary scan cursor of Redis's dictScan, shared by the store's
 * slot tables (narf_store_scan) and the dict (narf_dict_scan).
 *
 * A cursor names a bucket by its low bits, and is advanced by incrementing
 * those bits from the most significant end. In that order a bucket of a
 * table of 2^n buckets is visited before or together with every bucket of a
 * table of 2^(n+k) buckets that its elements can move to, and after the ones
 * they can come from, so an element present for the whole scan is returned
 * at least once across any number of grows and shrinks (perhaps twice).
 */
#ifndef NARF_CURSOR_H
#define NARF_CURSOR_H

#include <stdint.h>

/* v with its 64 bits in reverse order. */
static inline uint64_t narf_cursor_rev64(uint64_t v)
{
	v = ((v >> 1) & 0x5555555555555555ull) |
	    ((v & 0x5555555555555555ull) << 1);
	v = ((v >> 2) & 0x3333333333333333ull) |
	    ((v & 0x3333333333333333ull) << 2);
	v = ((v >> 4) & 0x0f0f0f0f0f0f0f0full) |
	    ((v & 0x0f0f0f0f0f0f0f0full) << 4);
	v = ((v >> 8) & 0x00ff00ff00ff00ffull) |
	    ((v & 0x00ff00ff00ff00ffull) << 8);
	v = ((v >> 16) & 0x0000ffff0000ffffull) |
	    ((v & 0x0000ffff0000ffffull) << 16);
	return (v >> 32) | (v << 32);
}

/* The cursor after v for a table whose bucket mask is m (size - 1): v's bits
 * under m incremented from the most significant end. 0 once every bucket
 * was visited. */
static inline uint64_t narf_cursor_next(uint64_t v, uint64_t m)
{
	v |= ~m;
	v = narf_cursor_rev64(v);
	v++;
	return narf_cursor_rev64(v);
}

#endif /* NARF_CURSOR_H */
