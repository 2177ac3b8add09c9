/*
 * Hashes: a listpack of field, value, field, value... while small, a dict of
 * struct hfield once big (coll_hash.h).
 *
 * The conversion follows Redis 7.0's hashTypeTryConversion and
 * hashTypeSet: a field or value longer than hash-max-listpack-value
 * converts before the write, more than hash-max-listpack-entries fields
 * after it. A failed conversion (out of memory) leaves the listpack as it
 * was and fails the write.
 */
#include "coll_hash.h"

#include <assert.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

/* A field of a hashtable-encoded hash: one allocation. */
struct hfield {
	struct narf_dict_node node; /* first: the dict links it */
	uint32_t flen;
	uint32_t vlen;
	unsigned char data[]; /* field then value */
};

static const unsigned char *hfield_key(const struct narf_dict_node *n,
                                       size_t *len)
{
	const struct hfield *h = (const struct hfield *)n;

	*len = h->flen;
	return h->data;
}

static const struct narf_dict_type hash_dict_type = {.key = hfield_key};

static struct hfield *hfield_new(const struct narf_coll_ctx *ctx,
                                 const void *f,
                                 size_t flen,
                                 const void *v,
                                 size_t vlen)
{
	struct hfield *h;

	if (flen > UINT32_MAX || vlen > UINT32_MAX)
		return NULL;
	h = malloc(sizeof(*h) + flen + vlen);
	if (h == NULL)
		return NULL;
	h->node.next = NULL;
	h->flen = (uint32_t)flen;
	h->vlen = (uint32_t)vlen;
	memcpy(h->data, f, flen);
	if (vlen != 0)
		memcpy(h->data + flen, v, vlen);
	narf_coll_account(ctx, h);
	return h;
}

static void hfield_free(struct narf_dict_node *n, void *arg)
{
	const struct narf_coll_ctx *ctx = arg;

	narf_coll_unaccount(ctx, n);
	free(n);
}

static void view(struct narf_str *out, const void *s, size_t len)
{
	out->s = s;
	out->len = len;
}

static void lp_view(const unsigned char *lp, uint32_t pos, struct narf_str *out)
{
	uint32_t len;

	out->s = narf_lp_get_str(lp, pos, out->buf, &len);
	out->len = len;
}

uint64_t narf_hash_len(const struct narf_coll *c)
{
	if (c->p == NULL)
		return 0;
	if (c->enc == NARF_ENC_LISTPACK)
		return narf_lp_count(c->p) / 2;
	return narf_dict_count(c->p);
}

/* --- conversion ----------------------------------------------------------- */

static int to_hashtable(const struct narf_coll_ctx *ctx, struct narf_coll *c)
{
	unsigned char *lp = c->p;
	struct narf_dict *d;
	uint32_t pos;
	int rv = NARF_ENOMEM;

	d = malloc(sizeof(*d));
	if (d == NULL)
		return NARF_ENOMEM;
	narf_coll_account(ctx, d);
	narf_dict_init(d, &hash_dict_type, ctx->seed, ctx->used);
	if (lp != NULL && narf_dict_expand(d, narf_lp_count(lp) / 2 + 1) != 0)
		goto fail;
	for (pos = lp != NULL ? narf_lp_first(lp) : NARF_LP_NONE;
	     pos != NARF_LP_NONE;) {
		struct narf_str f, v;
		uint32_t vpos = narf_lp_next(lp, pos);
		struct hfield *h;

		lp_view(lp, pos, &f);
		lp_view(lp, vpos, &v);
		h = hfield_new(ctx, f.s, f.len, v.s, v.len);
		if (h == NULL || narf_dict_add(d, &h->node) != 0) {
			if (h != NULL)
				hfield_free(&h->node, (void *)ctx);
			goto fail;
		}
		pos = narf_lp_next(lp, vpos);
	}
	narf_lp_destroy(lp, ctx->used);
	c->p = d;
	c->enc = NARF_ENC_HASHTABLE;
	return 0;
fail:
	narf_dict_drain(d, SIZE_MAX, hfield_free, (void *)ctx);
	narf_dict_close(d);
	narf_coll_unaccount(ctx, d);
	free(d);
	return rv;
}

/* --- writes ----------------------------------------------------------------
 */

static int lp_set(const struct narf_coll_ctx *ctx,
                  struct narf_coll *c,
                  const void *f,
                  size_t flen,
                  const void *v,
                  size_t vlen,
                  unsigned flags,
                  int *added)
{
	unsigned char *lp = c->p;
	uint32_t pos = NARF_LP_NONE;
	int rv;

	if (lp == NULL) {
		rv = narf_lp_create(&lp, ctx->used);
		if (rv != 0)
			return rv;
		c->p = lp;
	} else {
		pos = narf_lp_find(lp, narf_lp_first(lp), f, flen, 1);
	}
	if (pos != NARF_LP_NONE) {
		*added = 0;
		if (flags & NARF_HASH_NX)
			return 0;
		rv = narf_lp_replace(&lp, ctx->used, narf_lp_next(lp, pos), v,
		                     vlen);
		c->p = lp;
		return rv;
	}
	rv = narf_lp_append(&lp, ctx->used, f, flen);
	if (rv == 0) {
		rv = narf_lp_append(&lp, ctx->used, v, vlen);
		if (rv != 0) {
			/* take the field back out: no half pair */
			narf_lp_delete_range(&lp, ctx->used, -1, 1);
		}
	}
	c->p = lp;
	if (rv == 0)
		*added = 1;
	return rv;
}

static int ht_set(const struct narf_coll_ctx *ctx,
                  struct narf_coll *c,
                  const void *f,
                  size_t flen,
                  const void *v,
                  size_t vlen,
                  unsigned flags,
                  int *added)
{
	struct narf_dict *d = c->p;
	struct hfield *old = (struct hfield *)narf_dict_find(d, f, flen);
	struct hfield *h;
	int rv;

	if (old != NULL) {
		*added = 0;
		if (flags & NARF_HASH_NX)
			return 0;
		if (old->vlen == vlen) {
			if (vlen != 0)
				memcpy(old->data + old->flen, v, vlen);
			return 0;
		}
		h = hfield_new(ctx, f, flen, v, vlen);
		if (h == NULL)
			return NARF_ENOMEM;
		h->node.next = old->node.next;
		narf_dict_relink(d, &old->node, &h->node);
		hfield_free(&old->node, (void *)ctx);
		return 0;
	}
	h = hfield_new(ctx, f, flen, v, vlen);
	if (h == NULL)
		return NARF_ENOMEM;
	rv = narf_dict_add(d, &h->node);
	if (rv != 0) {
		hfield_free(&h->node, (void *)ctx);
		return rv;
	}
	*added = 1;
	return 0;
}

int narf_hash_set(const struct narf_coll_ctx *ctx,
                  struct narf_coll *c,
                  const void *f,
                  size_t flen,
                  const void *v,
                  size_t vlen,
                  unsigned flags,
                  int *added)
{
	const struct narf_coll_limits *lim = ctx->lim;
	int dummy, rv;

	assert(c->type == NARF_TYPE_HASH);
	if (added == NULL)
		added = &dummy;
	*added = 0;
	if (c->enc == NARF_ENC_LISTPACK &&
	    (flen > lim->hash_lp_value || vlen > lim->hash_lp_value)) {
		rv = to_hashtable(ctx, c);
		if (rv != 0)
			return rv;
	}
	if (c->enc == NARF_ENC_HASHTABLE)
		return ht_set(ctx, c, f, flen, v, vlen, flags, added);
	rv = lp_set(ctx, c, f, flen, v, vlen, flags, added);
	if (rv == 0 && narf_hash_len(c) > lim->hash_lp_entries) {
		rv = to_hashtable(ctx, c);
		if (rv != 0 && *added) {
			/* undo the add rather than break the limit */
			narf_hash_del(ctx, c, f, flen);
			*added = 0;
		}
	}
	return rv;
}

bool narf_hash_get(struct narf_coll *c,
                   const void *f,
                   size_t flen,
                   struct narf_str *v)
{
	if (c->p == NULL)
		return false;
	if (c->enc == NARF_ENC_LISTPACK) {
		const unsigned char *lp = c->p;
		uint32_t pos = narf_lp_find(lp, narf_lp_first(lp), f, flen, 1);

		if (pos == NARF_LP_NONE)
			return false;
		lp_view(lp, narf_lp_next(lp, pos), v);
		return true;
	}
	const struct hfield *h =
	        (const struct hfield *)narf_dict_find(c->p, f, flen);

	if (h == NULL)
		return false;
	view(v, h->data + h->flen, h->vlen);
	return true;
}

bool narf_hash_del(const struct narf_coll_ctx *ctx,
                   struct narf_coll *c,
                   const void *f,
                   size_t flen)
{
	if (c->p == NULL)
		return false;
	if (c->enc == NARF_ENC_LISTPACK) {
		unsigned char *lp = c->p;
		uint32_t pos = narf_lp_find(lp, narf_lp_first(lp), f, flen, 1);

		if (pos == NARF_LP_NONE)
			return false;
		narf_lp_delete(&lp, ctx->used, &pos); /* the field */
		narf_lp_delete(&lp, ctx->used, &pos); /* its value */
		c->p = lp;
		return true;
	}
	struct narf_dict_node *n = narf_dict_unlink(c->p, f, flen);

	if (n == NULL)
		return false;
	hfield_free(n, (void *)ctx);
	return true;
}

/* --- reads -----------------------------------------------------------------
 */

void narf_hash_iter_init(struct narf_hash_iter *it, struct narf_coll *c)
{
	it->c = c;
	it->pos = NARF_LP_NONE;
	if (c->p == NULL)
		return;
	if (c->enc == NARF_ENC_LISTPACK)
		it->pos = narf_lp_first(c->p);
	else
		narf_dict_iter_init(&it->di, c->p, 0);
}

bool narf_hash_iter_next(struct narf_hash_iter *it,
                         struct narf_str *f,
                         struct narf_str *v)
{
	const struct narf_coll *c = it->c;

	if (c->p == NULL)
		return false;
	if (c->enc == NARF_ENC_LISTPACK) {
		const unsigned char *lp = c->p;
		uint32_t vpos;

		if (it->pos == NARF_LP_NONE)
			return false;
		vpos = narf_lp_next(lp, it->pos);
		lp_view(lp, it->pos, f);
		lp_view(lp, vpos, v);
		it->pos = narf_lp_next(lp, vpos);
		return true;
	}
	const struct hfield *h =
	        (const struct hfield *)narf_dict_iter_next(&it->di);

	if (h == NULL)
		return false;
	view(f, h->data, h->flen);
	view(v, h->data + h->flen, h->vlen);
	return true;
}

void narf_hash_iter_close(struct narf_hash_iter *it)
{
	if (it->c->p != NULL && it->c->enc == NARF_ENC_HASHTABLE)
		narf_dict_iter_close(&it->di);
}

struct scan_arg {
	narf_hash_scan_cb cb;
	void *arg;
	unsigned seen;
};

static void scan_one(void *arg, struct narf_dict_node *n)
{
	struct scan_arg *sa = arg;
	const struct hfield *h = (const struct hfield *)n;
	struct narf_str f, v;

	view(&f, h->data, h->flen);
	view(&v, h->data + h->flen, h->vlen);
	sa->cb(sa->arg, &f, &v);
	sa->seen++;
}

uint64_t narf_hash_scan(struct narf_coll *c,
                        uint64_t cursor,
                        unsigned count,
                        narf_hash_scan_cb cb,
                        void *arg)
{
	struct scan_arg sa = {cb, arg, 0};
	/* as Redis: at most 10 buckets per field asked for */
	uint64_t buckets = (uint64_t)count * 10;

	if (c->p == NULL)
		return 0;
	if (c->enc == NARF_ENC_LISTPACK) {
		struct narf_hash_iter it;
		struct narf_str f, v;

		narf_hash_iter_init(&it, c);
		while (narf_hash_iter_next(&it, &f, &v))
			cb(arg, &f, &v);
		narf_hash_iter_close(&it);
		return 0;
	}
	do {
		cursor = narf_dict_scan(c->p, cursor, scan_one, &sa);
	} while (cursor != 0 && sa.seen < count && --buckets > 0);
	return cursor;
}

void narf_hash_random(const struct narf_coll_ctx *ctx,
                      struct narf_coll *c,
                      struct narf_str *f,
                      struct narf_str *v)
{
	assert(narf_hash_len(c) > 0);
	if (c->enc == NARF_ENC_LISTPACK) {
		const unsigned char *lp = c->p;
		uint64_t n = narf_lp_count(lp) / 2;
		uint32_t pos = narf_lp_seek(
		        lp, (int64_t)(narf_rng_next(ctx->rng) % n) * 2);

		lp_view(lp, pos, f);
		lp_view(lp, narf_lp_next(lp, pos), v);
		return;
	}
	const struct hfield *h =
	        (const struct hfield *)narf_dict_random(c->p, ctx->rng);

	view(f, h->data, h->flen);
	view(v, h->data + h->flen, h->vlen);
}

void narf_hash_free(const struct narf_coll_ctx *ctx, struct narf_coll *c)
{
	if (c->p == NULL)
		return;
	if (c->enc == NARF_ENC_LISTPACK) {
		narf_lp_destroy(c->p, ctx->used);
	} else {
		struct narf_dict *d = c->p;

		narf_dict_drain(d, SIZE_MAX, hfield_free, (void *)ctx);
		narf_dict_close(d);
		narf_coll_unaccount(ctx, d);
		free(d);
	}
	c->p = NULL;
}

bool narf_hash_free_step(const struct narf_coll_ctx *ctx,
                         struct narf_coll *c,
                         size_t budget)
{
	if (c->p != NULL && c->enc == NARF_ENC_HASHTABLE &&
	    narf_dict_drain(c->p, budget, hfield_free, (void *)ctx) > 0)
		return false;
	narf_hash_free(ctx, c);
	return true;
}
