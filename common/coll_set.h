/*
 * Sets (docs/datatypes-plan.md, section 2): collections of distinct byte
 * strings on top of coll.h. As in Redis 7.0 (which, unlike 7.2, has no
 * listpack sets), a set is an INTSET while every member is a canonical
 * int64 (narf_lp_str_to_int: Redis's string2ll, so "007", "-0", "+1" and
 * " 1" are strings) and it holds at most set-max-intset-entries members;
 * otherwise a dict (HASHTABLE) of one-allocation members. It converts up,
 * never back, as Redis's sets do; a command that builds a value whole adds
 * its members to an empty set, which therefore ends in the encoding of its
 * final size.
 *
 * Every function takes the handle of a set (c->type NARF_TYPE_SET; c->p
 * NULL for an empty one, whatever c->enc says: the first member chooses
 * the encoding). Views (struct narf_str) are valid until the next mutation
 * of the set; an intset member is printed into the view's buffer.
 */
#ifndef NARF_COLL_SET_H
#define NARF_COLL_SET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coll.h"
#include "dict.h"

/* An empty set handle, for a value a command builds before storing it. */
static inline struct narf_coll narf_set_empty(void)
{
	struct narf_coll c = {NARF_TYPE_SET, NARF_ENC_INTSET, NULL};

	return c;
}

/* Add m. *added (may be NULL) gets 1 when m was absent, else 0.
 * NARF_ENOMEM or NARF_ETOOLARGE (a member over 4 GiB) leave the set as it
 * was. */
int narf_set_add(const struct narf_coll_ctx *ctx,
                 struct narf_coll *c,
                 const void *m,
                 size_t len,
                 int *added);
/* Remove m; true when it was there. Never fails. */
bool narf_set_remove(const struct narf_coll_ctx *ctx,
                     struct narf_coll *c,
                     const void *m,
                     size_t len);
bool narf_set_ismember(struct narf_coll *c, const void *m, size_t len);

/* Members in the set (SCARD), O(1). */
uint64_t narf_set_len(const struct narf_coll *c);

/* Walk every member once: an intset in ascending order, a dict in its
 * order. The set must not change during the walk. */
struct narf_set_iter {
	struct narf_coll *c; /* borrowed */
	uint32_t pos;        /* intset: the next index */
	struct narf_dict_iter di;
};
void narf_set_iter_init(struct narf_set_iter *it, struct narf_coll *c);
bool narf_set_iter_next(struct narf_set_iter *it, struct narf_str *m);
void narf_set_iter_close(struct narf_set_iter *it);

/* SSCAN: call cb on some members from cursor on and return the next
 * cursor (0: done). An intset is returned whole in one call whatever the
 * cursor, as Redis does; a dict walks a bucket at a time until about
 * `count` members were passed (at most 10 x count buckets), with the dict's
 * guarantee (a member present throughout is returned). */
typedef void (*narf_set_scan_cb)(void *arg, const struct narf_str *m);
uint64_t narf_set_scan(struct narf_coll *c,
                       uint64_t cursor,
                       unsigned count,
                       narf_set_scan_cb cb,
                       void *arg);

/* A random member (SRANDMEMBER), from ctx->rng; the set must not be
 * empty. */
void narf_set_random(const struct narf_coll_ctx *ctx,
                     struct narf_coll *c,
                     struct narf_str *m);

/* A member taken out of its set by narf_set_pop: m views it until
 * narf_set_popped_free (a dict member is unlinked, not copied, and still
 * counts in *ctx->used until then). */
struct narf_set_popped {
	struct narf_str m;
	struct narf_dict_node *node; /* owned: the unlinked member, or NULL */
};
/* SPOP: remove a random member (ctx->rng) into *p; the set must not be
 * empty. Pair with narf_set_popped_free. */
void narf_set_pop(const struct narf_coll_ctx *ctx,
                  struct narf_coll *c,
                  struct narf_set_popped *p);
void narf_set_popped_free(const struct narf_coll_ctx *ctx,
                          struct narf_set_popped *p);

/* Free what the set holds (coll.c dispatches here); c->p becomes NULL. */
void narf_set_free(const struct narf_coll_ctx *ctx, struct narf_coll *c);
/* Lazy free: free up to budget members; true (c->p NULL) once all went. */
bool narf_set_free_step(const struct narf_coll_ctx *ctx,
                        struct narf_coll *c,
                        size_t budget);

#endif /* NARF_COLL_SET_H */
