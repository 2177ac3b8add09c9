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
 * dict: while a resize runs two tables are live and each find, add, unlink
 * or random moves one bucket across (skipping at most 10 empty ones), so no
 * single call costs O(n).
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
	uint64_t drain_at; /* next bucket narf_dict_drain frees, t[0] then t[1]
	                    */
};

/* Called by narf_dict_scan for each element; it may unlink (and free) the
 * element it is given, and nothing else. */
typedef void (*narf_dict_scan_cb)(void *arg, struct narf_dict_node *n);

/* Walks every element once (narf_dict_iter_init). Its fields are private. */
struct narf_dict_iter {
	struct narf_dict *d;         /* borrowed */
	struct narf_dict_node *next; /* borrowed: the element after the last */
	uint64_t bucket;             /* next bucket of table `table` */
	uint64_t fingerprint;        /* of the dict, for unsafe iterators */
	int table;
	int safe;
};

/* Set up an empty dict (allocates nothing). */
void narf_dict_init(struct narf_dict *d,
                    const struct narf_dict_type *type,
                    const uint8_t *seed,
                    uint64_t *used);
/* Free the bucket arrays and leave an empty dict; NULL is fine. Elements
 * still linked are not touched: the caller frees them before or after
 * (a zset frees its skiplist, whose nodes are these elements) or drains
 * them first with narf_dict_drain. No iterator may be live. */
void narf_dict_close(struct narf_dict *d);

uint64_t narf_dict_count(const struct narf_dict *d);

/* Prefetch what a find of a key with hash h (narf_siphash() under the
 * dict's seed) reads: stage 0 its bucket(s), stage 1 the first element of
 * each (issue 18: a pipelined batch's misses overlap). Reads only. */
void narf_dict_prefetch(const struct narf_dict *d, uint64_t h, unsigned stage);

/* The element whose key is key[0..len), or NULL. Moves a rehash forward by a
 * bucket. */
struct narf_dict_node *narf_dict_find(struct narf_dict *d,
                                      const void *key,
                                      size_t len);

/* Link n, whose key the caller knows is absent (narf_dict_find first). The
 * dict borrows n until it is unlinked. NARF_ENOMEM only when the dict had no
 * table yet and could not get one; a grow that cannot allocate keeps the old
 * table (chains get longer) and is tried again at the next add. */
int narf_dict_add(struct narf_dict *d, struct narf_dict_node *n);

/* Unlink the element whose key is key[0..len) and return it (the caller
 * frees it), or NULL. May start a shrink. Under a safe iterator, only the
 * element it returned last may be unlinked. */
struct narf_dict_node *narf_dict_unlink(struct narf_dict *d,
                                        const void *key,
                                        size_t len);

/* Put n in old's place: same key, e.g. old was realloc'd into n. old is
 * compared by address only and may already be freed; n->next must hold
 * old's next, as realloc's copy does (a fresh node copies it first). old
 * must be linked. Under a live iterator, old must be the element it
 * returned last. */
void narf_dict_relink(struct narf_dict *d,
                      const struct narf_dict_node *old,
                      struct narf_dict_node *n);

/* Make room for n elements at once (before adding a value built whole):
 * a table of at least n buckets, given at once to an empty dict, else by an
 * incremental grow. Nothing happens mid-rehash or when the table is big
 * enough. NARF_ENOMEM. */
int narf_dict_expand(struct narf_dict *d, uint64_t n);

/* Move a rehash forward by up to `buckets` buckets (from a cron); returns
 * whether one is still running. Does nothing while paused. */
int narf_dict_rehash(struct narf_dict *d, unsigned buckets);

/* Call cb on the elements of one bucket (of each table, mid-rehash) and
 * return the next cursor; start with 0 and stop when 0 comes back. Every
 * element present from the first call to the last is passed at least once,
 * whatever resizes happen between calls; some may be passed twice. Rehash
 * is paused during the call. */
uint64_t narf_dict_scan(struct narf_dict *d,
                        uint64_t cursor,
                        narf_dict_scan_cb cb,
                        void *arg);

/* A random element, or NULL when empty; *rng is a splitmix64 state
 * (narf_rng_next). As Redis's dictGetFairRandomKey: a random one of up to
 * 15 elements sampled from consecutive buckets, so an element in a long
 * chain is not much less likely than one alone in its bucket. */
struct narf_dict_node *narf_dict_random(struct narf_dict *d, uint64_t *rng);

/* Iteration: each element once, in no order. A safe iterator (safe != 0)
 * pauses rehash until narf_dict_iter_close, so that finds and adds (which
 * may or may not be returned) and unlinking the element returned last are
 * allowed; an unsafe one allows no change and no find (narf_dict_iter_close
 * asserts it). Every init needs its close. */
void narf_dict_iter_init(struct narf_dict_iter *it,
                         struct narf_dict *d,
                         int safe);
/* The next element, or NULL at the end. */
struct narf_dict_node *narf_dict_iter_next(struct narf_dict_iter *it);
void narf_dict_iter_close(struct narf_dict_iter *it);

/* Lazy free: unlink up to `budget` elements and call free_node(n, arg) on
 * each, visiting at most 10 empty buckets per unit of budget; returns how
 * many elements remain. When none does, the bucket arrays are freed too
 * (the dict is empty and usable; narf_dict_close is still fine). Between a
 * first call and the one that returns 0, call nothing but narf_dict_drain
 * and narf_dict_close; no iterator may be live. */
size_t narf_dict_drain(struct narf_dict *d,
                       size_t budget,
                       void (*free_node)(struct narf_dict_node *n, void *arg),
                       void *arg);

#endif /* NARF_DICT_H */
