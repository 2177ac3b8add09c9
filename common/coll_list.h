/*
 * Lists (docs/datatypes-plan.md, section 2): a thin facade that puts the
 * quicklist (common/quicklist.h) behind a collection handle. Redis 7.0 keeps
 * every list as a quicklist, so a list has one encoding,
 * NARF_ENC_QUICKLIST, and c->p is a struct narf_ql * (NULL for a list
 * with no element yet: the store creates a key's handle empty, and the
 * first push makes the quicklist, with ctx->lim->list_lp_size as its
 * fill).
 *
 * Everything but creation and freeing is the quicklist's own API on
 * narf_list_ql(c): commands read and mutate it directly. The quicklist
 * counts its memory in *ctx->used (it keeps the pointer, which the store
 * owns and which outlives every list).
 */
#ifndef NARF_COLL_LIST_H
#define NARF_COLL_LIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coll.h"
#include "quicklist.h"

/* The list's quicklist (borrowed from the handle), or NULL while it has
 * no element yet. */
static inline struct narf_ql *narf_list_ql(const struct narf_coll *c)
{
	return c->p;
}

/* LPUSH/RPUSH one element s[0..len) (copied) at end, creating the
 * quicklist on the first push. NARF_ENOMEM, NARF_ETOOLARGE leave the list
 * as it was (an empty quicklist may stay behind: its length is still 0, so
 * narf_store_coll_close deletes the key). */
int narf_list_push(const struct narf_coll_ctx *ctx,
                   struct narf_coll *c,
                   enum narf_ql_end end,
                   const void *s,
                   size_t len);

/*
 * The edits a primary's command and its replica's effect both run (so the
 * effect is the command's arguments: the list is the same on both sides,
 * which the effect's count check proves):
 *   narf_list_insert  LINSERT: before/after the first element equal to
 *                     pivot; the new length, or -1 when no element is
 *   narf_list_rem     LREM: count > 0 from the head, < 0 from the tail,
 *                     0 all; how many went
 *   narf_list_trim    LTRIM with Redis's index rules
 *   narf_list_rotate  LMOVE/RPOPLPUSH of a list onto itself
 * c must hold a list with at least one element (c->p != NULL).
 */
int narf_list_insert(struct narf_coll *c,
                     enum narf_lp_where where,
                     const void *pivot,
                     size_t plen,
                     const void *s,
                     size_t len,
                     long long *n);
uint64_t narf_list_rem(struct narf_coll *c,
                       long long count,
                       const void *s,
                       size_t len);
void narf_list_trim(struct narf_coll *c, long long start, long long stop);
int narf_list_rotate(struct narf_coll *c,
                     enum narf_ql_end from,
                     enum narf_ql_end to);

/* Elements in the list (LLEN), in O(1). */
uint64_t narf_list_len(const struct narf_coll *c);

/* Free what the list holds (coll.c dispatches here); c->p becomes NULL. */
void narf_list_free(const struct narf_coll_ctx *ctx, struct narf_coll *c);

/* Lazy free (section 6): free up to budget nodes from the head. Returns
 * true, with c->p NULL and everything freed, once nothing is left; false
 * while some remains (the list is then a valid shorter list). */
bool narf_list_free_step(const struct narf_coll_ctx *ctx,
                         struct narf_coll *c,
                         size_t budget);

#endif /* NARF_COLL_LIST_H */
