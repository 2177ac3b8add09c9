/*
 * Lists: a quicklist behind the collection handle (coll_list.h).
 */
#include "coll_list.h"

#include <assert.h>

int narf_list_push(const struct narf_coll_ctx *ctx,
                   struct narf_coll *c,
                   enum narf_ql_end end,
                   const void *s,
                   size_t len)
{
	struct narf_ql *ql = c->p;
	int rv;

	assert(c->type == NARF_TYPE_LIST);
	if (ql == NULL) {
		rv = narf_ql_create(&ql, ctx->lim->list_lp_size, ctx->used);
		if (rv != 0)
			return rv;
		c->p = ql;
		c->enc = NARF_ENC_QUICKLIST;
	}
	return narf_ql_push(ql, end, s, len);
}

uint64_t narf_list_len(const struct narf_coll *c)
{
	return c->p != NULL ? narf_ql_count(c->p) : 0;
}

void narf_list_free(const struct narf_coll_ctx *ctx, struct narf_coll *c)
{
	(void)ctx; /* the quicklist kept ctx->used at creation */
	narf_ql_destroy(c->p);
	c->p = NULL;
}

bool narf_list_free_step(const struct narf_coll_ctx *ctx,
                         struct narf_coll *c,
                         size_t budget)
{
	(void)ctx;
	if (c->p != NULL && !narf_ql_free_step(c->p, budget))
		return false;
	c->p = NULL;
	return true;
}
