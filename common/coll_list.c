/*
 * Lists: a quicklist behind the collection handle (coll_list.h).
 */
#include "coll_list.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

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

int narf_list_insert(struct narf_coll *c,
                     enum narf_lp_where where,
                     const void *pivot,
                     size_t plen,
                     const void *s,
                     size_t len,
                     long long *n)
{
	struct narf_ql *ql = narf_list_ql(c);
	struct narf_ql_iter it;
	int rv;

	*n = -1;
	if (!narf_ql_find(ql, pivot, plen, 1, 0, &it))
		return 0;
	rv = narf_ql_insert(ql, &it, where, s, len);
	if (rv == 0)
		*n = (long long)narf_ql_count(ql);
	return rv;
}

uint64_t narf_list_rem(struct narf_coll *c,
                       long long count,
                       const void *s,
                       size_t len)
{
	struct narf_ql *ql = narf_list_ql(c);
	struct narf_ql_iter it;
	/* |count| without overflow at LLONG_MIN (Redis then removes all) */
	uint64_t limit = count < 0 ? 0 - (uint64_t)count : (uint64_t)count;
	uint64_t removed = 0;
	int ok = count < 0 ? narf_ql_last(ql, &it) : narf_ql_first(ql, &it);

	while (ok) {
		if (!narf_ql_iter_eq(&it, s, len)) {
			ok = narf_ql_iter_next(&it);
			continue;
		}
		ok = narf_ql_iter_del(&it);
		if (++removed == limit)
			break;
	}
	return removed;
}

void narf_list_trim(struct narf_coll *c, long long start, long long stop)
{
	struct narf_ql *ql = narf_list_ql(c);
	long long llen = (long long)narf_ql_count(ql), ltrim, rtrim;

	/* Redis's ltrimCommand: what goes at each end */
	if (start < 0)
		start = start < -llen ? 0 : llen + start;
	if (stop < 0)
		stop = stop < -llen ? -1 : llen + stop;
	if (start > stop || start >= llen) {
		ltrim = llen;
		rtrim = 0;
	} else {
		if (stop >= llen)
			stop = llen - 1;
		ltrim = start;
		rtrim = llen - stop - 1;
	}
	narf_ql_del_range(ql, 0, (uint64_t)ltrim);
	narf_ql_del_range(ql, -rtrim, (uint64_t)rtrim);
}

int narf_list_rotate(struct narf_coll *c,
                     enum narf_ql_end from,
                     enum narf_ql_end to)
{
	struct narf_ql *ql = narf_list_ql(c);
	struct narf_ql_iter it;
	char ibuf[NARF_LP_INTBUF];
	const unsigned char *p;
	unsigned char *copy;
	uint32_t n = 0;
	int rv;

	if (from == to)
		return 0;
	if (from == NARF_QL_HEAD)
		narf_ql_first(ql, &it);
	else
		narf_ql_last(ql, &it);
	p = narf_ql_iter_str(&it, ibuf, &n);
	copy = malloc(n > 0 ? n : 1);
	if (copy == NULL)
		return NARF_ENOMEM;
	memcpy(copy, p, n);
	rv = narf_ql_push(ql, to, copy, n);
	if (rv == 0)
		narf_ql_pop(ql, from, NULL, 0, NULL);
	free(copy);
	return rv;
}
