/*
 * Collections: the values of hashes, lists, sets and sorted sets, and the
 * encodings they take by size (docs/datatypes-plan.md, sections 1-2).
 *
 * A collection is an entry of the store whose type tag (store_internal.h) is
 * not NARF_TYPE_STRING. Its encoding sits in the entry's flags next to the
 * type, and its value is the address of the encoding's object:
 *
 *   - LISTPACK (small hashes, small sorted sets): the listpack bytes
 *     themselves (common/listpack.h), fields and values alternating for a
 *     hash, members and scores for a sorted set;
 *   - INTSET (small sets of integers): the intset bytes (common/intset.h);
 *   - HASHTABLE (big hashes and sets): a struct narf_dict and its elements;
 *   - QUICKLIST (every list): a quicklist (common/quicklist.h);
 *   - SKIPLIST (big sorted sets): a dict plus a skiplist sharing nodes.
 *
 * Decision (slice 9): a small collection is ONE allocation beside its entry,
 * with no header of its own: type and encoding live in the entry, the
 * element count in the listpack's or intset's header. That saves an
 * allocation per small hash against the plan's `struct narf_coll` header,
 * which the memory targets of issue 16 (1,000,000 hashes of 10 fields at
 * most Redis's bytes) want.
 *
 * struct narf_coll is the handle commands work with: a copy of the type,
 * the encoding and the address. A mutation may replace the address and the
 * encoding (a realloc, a conversion); narf_store_coll_close() writes them
 * back into the entry.
 *
 * Memory: everything a collection allocates is counted in *ctx->used (the
 * store's used_memory) with the allocator's usable sizes, so INFO, max-memory
 * and eviction see collections as they see strings.
 */
#ifndef NARF_COLL_H
#define NARF_COLL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <malloc.h>

#include "listpack.h"
#include "store.h"

enum narf_enc {
	NARF_ENC_LISTPACK,
	NARF_ENC_INTSET,
	NARF_ENC_HASHTABLE,
	NARF_ENC_QUICKLIST,
	NARF_ENC_SKIPLIST,
	NARF_ENC_COUNT
};

/* The conversion thresholds, Redis 7.0's names and defaults. */
struct narf_coll_limits {
	uint32_t hash_lp_entries;    /* hash-max-listpack-entries, 512 */
	uint32_t hash_lp_value;      /* hash-max-listpack-value, 64 */
	uint32_t set_intset_entries; /* set-max-intset-entries, 512 */
	uint32_t zset_lp_entries;    /* zset-max-listpack-entries, 128 */
	uint32_t zset_lp_value;      /* zset-max-listpack-value, 64 */
	int32_t list_lp_size;        /* list-max-listpack-size, -2 */
};

/* What an encoding may use, all borrowed from the store. */
struct narf_coll_ctx {
	uint64_t *used;                     /* the store's used_memory */
	const struct narf_coll_limits *lim; /* thresholds */
	const uint8_t *seed;                /* SipHash key, 16 bytes */
	uint64_t *rng;                      /* splitmix64 state */
};

/* struct narf_coll, the handle, is in store.h. */

/* An element's bytes: a view into the collection (valid until the next
 * mutation), or into buf when the encoding stores it as an integer. */
struct narf_str {
	const unsigned char *s;
	size_t len;
	char buf[NARF_LP_INTBUF];
};

void narf_coll_limits_default(struct narf_coll_limits *lim);

/* Count (or uncount) an allocation p in *ctx->used, at its usable size:
 * every encoding accounts its elements through these. */
static inline void narf_coll_account(const struct narf_coll_ctx *ctx, void *p)
{
	if (ctx->used != NULL)
		*ctx->used += malloc_usable_size(p);
}

static inline void narf_coll_unaccount(const struct narf_coll_ctx *ctx, void *p)
{
	if (ctx->used != NULL)
		*ctx->used -= malloc_usable_size(p);
}

/* OBJECT ENCODING's word for an encoding ("listpack", "hashtable"...). */
const char *narf_enc_name(enum narf_enc enc);

/* The dict that finds c's elements by name (a hashtable-encoded hash or
 * set, a skiplist-encoded zset's member index), or NULL. */
const struct narf_dict *narf_coll_dict(const struct narf_coll *c);

/* Elements in the collection (HLEN, LLEN, SCARD, ZCARD) in O(1). */
uint64_t narf_coll_len(const struct narf_coll *c);

/* Free everything the collection holds (p becomes NULL). */
void narf_coll_free(const struct narf_coll_ctx *ctx, struct narf_coll *c);

/* Lazy free (docs/datatypes-plan.md, section 6), as Redis's
 * LAZYFREE_THRESHOLD: is c costly enough to free (more than 64 element
 * allocations, or list nodes) that a DEL should not do it at once? */
#define NARF_COLL_LAZY_THRESHOLD 64
bool narf_coll_lazy(const struct narf_coll *c);
/* Free about budget elements (or list nodes) of c; true, with c->p NULL,
 * once nothing is left. Between calls c is a valid, smaller collection
 * that nothing else may use. */
bool narf_coll_free_step(const struct narf_coll_ctx *ctx,
                         struct narf_coll *c,
                         size_t budget);

/*
 * A whole value as replication and sync carry it (NARF.CLOAD, DESIGN and
 * docs/protocol.md): the payload's RESP bulks appended to b, per element a
 * hash's field and value, a set's member, a sorted set's score and member,
 * a list's element, head to tail. *n gets the number of bulks. Returns 0
 * or NARF_ENOMEM (b is then as it was).
 */
struct narf_buf;
int narf_coll_encode(struct narf_coll *c, struct narf_buf *b, uint64_t *n);
/*
 * The same payload a slice at a time, for a sync that spreads one big value
 * over loop iterations (docs/datatypes-plan.md, "Sync in slices"). Only the
 * encodings that can be walked while they change are sliceable
 * (narf_coll_sliceable), each with a cursor that survives the changes:
 *   - a hash's or set's dict: its scan cursor (an element present for the
 *     whole walk is passed at least once, across rehashes; some may come
 *     twice);
 *   - a sorted set's skiplist: in score order from the last member passed
 *     (an element whose score and member stay put is passed exactly once;
 *     the replica inserts at the tail, which is cheap);
 *   - a list: by position (the caller must start over when it changes).
 * The small encodings go whole.
 *
 * Start with a zeroed cursor; each call appends about max_elems elements or
 * max_bytes bytes of payload to b (at least one element when any is left;
 * a dict's bucket is never split) and adds their bulks to *n. *done once
 * the walk is over. Returns 0 or NARF_ENOMEM (b is then as it was).
 */
struct narf_coll_cursor {
	uint64_t pos; /* a dict's scan cursor, a list's next index */
	/* a skiplist: the last member passed, once started */
	bool started;
	double score;
	char *member; /* owned: narf_coll_cursor_close */
	size_t mlen, mcap;
};
void narf_coll_cursor_close(struct narf_coll_cursor *cur);
bool narf_coll_sliceable(const struct narf_coll *c);
int narf_coll_slice(struct narf_coll *c,
                    struct narf_coll_cursor *cur,
                    size_t max_elems,
                    size_t max_bytes,
                    struct narf_buf *b,
                    uint64_t *n,
                    bool *done);
/* Add a payload of that form (argv[0..argc)) to c, an empty or existing
 * collection of c->type. NARF_EPROTO for a payload that does not fit the
 * type (an odd count for a hash), NARF_ENOMEM, NARF_ETOOLARGE. */
int narf_coll_load(const struct narf_coll_ctx *ctx,
                   struct narf_coll *c,
                   int argc,
                   const char *const *argv,
                   const size_t *argvlen);
/* COPY: *dst (an empty handle of src's type) gets src's elements, through
 * the payload form above. 0, or NARF_ENOMEM with *dst freed. */
int narf_coll_copy(const struct narf_coll_ctx *ctx,
                   struct narf_coll *src,
                   struct narf_coll *dst);
/* The type named by TYPE's word ("hash"...), or -1. */
int narf_type_by_name(const char *s, size_t n);

#endif /* NARF_COLL_H */
