/*
 * The dict: an intrusive hash table of byte-string keys, the big encoding of
 * hashes and sets and the member index of a big sorted set
 * (docs/datatypes-plan.md, section 2).
 *
 * Intrusive: the caller's element embeds a struct narf_dict_node as its FIRST
 * member and owns the element's memory; the dict only links nodes into its
 * chains. The element type tells the dict where its key bytes are
 * (narf_dict_type.key). One allocation per element (a hash's
 * {node, flen, vlen, field, value}, a set's {node, len, member}, a zset's
 * skiplist node), as the plan wants.
 *
 * Hashing is SipHash-2-4 under a 16-byte key the caller keeps (the store's
 * seed), so a client cannot choose colliding fields. The table is a power of
 * two; it grows when the element count reaches the bucket count (load 1)
 * and shrinks when it falls under 10%, and both are incremental, as Redis's
 * dict: while a resize runs two tables are live and each find, add or unlink
 * moves a few buckets across, so no single call costs O(n).
 *
 * narf_dict_scan() uses Redis's reverse-binary cursor: an element present
 * from the first call to the last is returned at least once, whatever
 * resizes happen in between (it may be returned twice).
 *
 * Memory accounting: the bucket arrays are allocated by the dict, and their
 * usable size is added to / subtracted from *used (the pointer given to
 * narf_dict_init; may be NULL). Elements are the caller's to count.
 */
#ifndef NARF_DICT_H
#define NARF_DICT_H

#include <stddef.h>
#include <stdint.h>

/* Embedded as the first member of every element. */
struct narf_dict_node {
	struct narf_dict_node *next; /* chain; owned by the dict's linking */
};

struct narf_dict_type {
	/* The key bytes of an element: *len gets their count. */
	const unsigned char *(*key)(const struct narf_dict_node *n,
	                            size_t *len);
};

struct narf_dict {
	const struct narf_dict_type *type; /* borrowed */
	const uint8_t *seed;               /* borrowed, 16 bytes */
	uint64_t *used;                    /* borrowed, may be NULL */
	struct narf_dict_node **t[2];      /* owned bucket arrays */
	uint64_t size[2];                  /* buckets, 0 or a power of two */
	uint64_t count[2];                 /* elements in each table */
	int64_t rehash;                    /* next bucket of t[0] to move; -1 */
	uint32_t paused;                   /* iterators that forbid rehash */
};

/* Set up an empty dict (allocates nothing). */
void narf_dict_init(struct narf_dict *d,
                    const struct narf_dict_type *type,
                    const uint8_t *seed,
                    uint64_t *used);
uint64_t narf_dict_count(const struct narf_dict *d);

/* The rest of the API (find, add, unlink, relink, scan, random, safe
 * iteration, a bounded drain for lazy free) lands with dict.c (slice 6). */

#endif /* NARF_DICT_H */
