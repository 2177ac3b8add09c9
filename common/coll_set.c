/*
 * Sets: an intset while every member is an int64 and there are at most
 * set-max-intset-entries of them, a dict of struct smember otherwise
 * (coll_set.h).
 *
 * The conversion follows Redis 7.0's setTypeAdd: a member that is not an
 * integer converts before it is added, the (limit + 1)th integer after.
 * A failed conversion (out of memory) leaves the intset as it was and
 * fails the add.
 */
#include "coll_set.h"

#include <assert.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "intset.h"
#include "rng.h"

/* A member of a hashtable-encoded set: one allocation. */
struct smember {
	struct narf_dict_node node; /* first: the dict links it */
	uint32_t len;
	unsigned char data[];
};

static const unsigned char *smember_key(const struct narf_dict_node *n,
                                        size_t *len)
{
	const struct smember *m = (const struct smember *)n;

	*len = m->len;
	return m->data;
}

static const struct narf_dict_type set_dict_type = {.key = smember_key};

static struct smember *smember_new(const struct narf_coll_ctx *ctx,
                                   const void *s,
                                   size_t len)
{
	struct smember *m;

	if (len > UINT32_MAX)
		return NULL;
	m = malloc(sizeof(*m) + len);
	if (m == NULL)
		return NULL;
	m->node.next = NULL;
	m->len = (uint32_t)len;
	if (len != 0)
		memcpy(m->data, s, len);
	narf_coll_account(ctx, m);
	return m;
}

static void smember_free(struct narf_dict_node *n, void *arg)
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

static void int_view(struct narf_str *out, int64_t v)
{
	int n = snprintf(out->buf, sizeof(out->buf), "%lld", (long long)v);

	out->s = (const unsigned char *)out->buf;
	out->len = (size_t)n;
}

static void dict_view(struct narf_str *out, const struct narf_dict_node *n)
{
	const struct smember *m = (const struct smember *)n;

	view(out, m->data, m->len);
}

uint64_t narf_set_len(const struct narf_coll *c)
{
	if (c->p == NULL)
		return 0;
	if (c->enc == NARF_ENC_INTSET)
		return narf_intset_count(c->p);
	return narf_dict_count(c->p);
}

/* --- conversion ----------------------------------------------------------- */

static void dict_destroy(const struct narf_coll_ctx *ctx, struct narf_dict *d)
{
	narf_dict_drain(d, SIZE_MAX, smember_free, (void *)ctx);
	narf_dict_close(d);
	narf_coll_unaccount(ctx, d);
	free(d);
}

/* A new empty dict sized for n members, or NULL. */
static struct narf_dict *dict_new(const struct narf_coll_ctx *ctx, uint64_t n)
{
	struct narf_dict *d = malloc(sizeof(*d));

	if (d == NULL)
		return NULL;
	narf_coll_account(ctx, d);
	narf_dict_init(d, &set_dict_type, ctx->seed, ctx->used);
	if (n > 0 && narf_dict_expand(d, n) != 0) {
		dict_destroy(ctx, d);
		return NULL;
	}
	return d;
}

/* Make c a HASHTABLE set with the same members (c->p may be NULL). */
static int to_hashtable(const struct narf_coll_ctx *ctx, struct narf_coll *c)
{
	unsigned char *is = c->p;
	uint32_t n = is != NULL ? narf_intset_count(is) : 0;
	struct narf_dict *d = dict_new(ctx, (uint64_t)n + 1);

	if (d == NULL)
		return NARF_ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		struct narf_str s;
		struct smember *m;
		int64_t v;

		narf_intset_get(is, i, &v);
		int_view(&s, v);
		m = smember_new(ctx, s.s, s.len);
		if (m == NULL || narf_dict_add(d, &m->node) != 0) {
			if (m != NULL)
				smember_free(&m->node, (void *)ctx);
			dict_destroy(ctx, d);
			return NARF_ENOMEM;
		}
	}
	narf_intset_destroy(is, ctx->used);
	c->p = d;
	c->enc = NARF_ENC_HASHTABLE;
	return 0;
}

/* --- writes --------------------------------------------------------------- */

static int ht_add(const struct narf_coll_ctx *ctx,
                  struct narf_coll *c,
                  const void *s,
                  size_t len,
                  int *added)
{
	struct smember *m;
	int rv;

	if (narf_dict_find(c->p, s, len) != NULL)
		return 0;
	m = smember_new(ctx, s, len);
	if (m == NULL)
		return len > UINT32_MAX ? NARF_ETOOLARGE : NARF_ENOMEM;
	rv = narf_dict_add(c->p, &m->node);
	if (rv != 0) {
		smember_free(&m->node, (void *)ctx);
		return rv;
	}
	*added = 1;
	return 0;
}

int narf_set_add(const struct narf_coll_ctx *ctx,
                 struct narf_coll *c,
                 const void *m,
                 size_t len,
                 int *added)
{
	int64_t v = 0;
	bool is_int = narf_lp_str_to_int(m, len, &v), fresh;
	unsigned char *is;
	int dummy, rv;

	assert(c->type == NARF_TYPE_SET);
	if (added == NULL)
		added = &dummy;
	*added = 0;
	if (c->p == NULL) {
		/* The first member chooses, as Redis's setTypeCreate. */
		if (!is_int)
			return to_hashtable(ctx, c) != 0
			               ? NARF_ENOMEM
			               : ht_add(ctx, c, m, len, added);
		rv = narf_intset_create(&is, ctx->used);
		if (rv != 0)
			return rv;
		c->p = is;
		c->enc = NARF_ENC_INTSET;
	}
	if (c->enc == NARF_ENC_INTSET && !is_int) {
		rv = to_hashtable(ctx, c);
		if (rv != 0)
			return rv;
	}
	if (c->enc == NARF_ENC_HASHTABLE)
		return ht_add(ctx, c, m, len, added);
	is = c->p;
	rv = narf_intset_add(&is, ctx->used, v, &fresh);
	c->p = is;
	if (rv != 0)
		return rv;
	*added = fresh;
	if (fresh && narf_intset_count(is) > ctx->lim->set_intset_entries) {
		rv = to_hashtable(ctx, c);
		if (rv != 0) {
			/* undo the add rather than break the limit */
			narf_intset_remove(&is, ctx->used, v);
			c->p = is;
			*added = 0;
		}
	}
	return rv;
}

bool narf_set_remove(const struct narf_coll_ctx *ctx,
                     struct narf_coll *c,
                     const void *m,
                     size_t len)
{
	if (c->p == NULL)
		return false;
	if (c->enc == NARF_ENC_INTSET) {
		unsigned char *is = c->p;
		int64_t v;
		bool found = narf_lp_str_to_int(m, len, &v) &&
		             narf_intset_remove(&is, ctx->used, v);

		c->p = is;
		return found;
	}
	struct narf_dict_node *n = narf_dict_unlink(c->p, m, len);

	if (n == NULL)
		return false;
	smember_free(n, (void *)ctx);
	return true;
}

bool narf_set_ismember(struct narf_coll *c, const void *m, size_t len)
{
	if (c->p == NULL)
		return false;
	if (c->enc == NARF_ENC_INTSET) {
		int64_t v;

		return narf_lp_str_to_int(m, len, &v) &&
		       narf_intset_find(c->p, v);
	}
	return narf_dict_find(c->p, m, len) != NULL;
}

/* --- reads ---------------------------------------------------------------- */

void narf_set_iter_init(struct narf_set_iter *it, struct narf_coll *c)
{
	it->c = c;
	it->pos = 0;
	if (c->p != NULL && c->enc == NARF_ENC_HASHTABLE)
		narf_dict_iter_init(&it->di, c->p, 0);
}

bool narf_set_iter_next(struct narf_set_iter *it, struct narf_str *m)
{
	const struct narf_coll *c = it->c;

	if (c->p == NULL)
		return false;
	if (c->enc == NARF_ENC_INTSET) {
		int64_t v;

		if (!narf_intset_get(c->p, it->pos, &v))
			return false;
		it->pos++;
		int_view(m, v);
		return true;
	}
	const struct narf_dict_node *n = narf_dict_iter_next(&it->di);

	if (n == NULL)
		return false;
	dict_view(m, n);
	return true;
}

void narf_set_iter_close(struct narf_set_iter *it)
{
	if (it->c->p != NULL && it->c->enc == NARF_ENC_HASHTABLE)
		narf_dict_iter_close(&it->di);
}

struct scan_arg {
	narf_set_scan_cb cb;
	void *arg;
	unsigned seen;
};

static void scan_one(void *arg, struct narf_dict_node *n)
{
	struct scan_arg *sa = arg;
	struct narf_str m;

	dict_view(&m, n);
	sa->cb(sa->arg, &m);
	sa->seen++;
}

uint64_t narf_set_scan(struct narf_coll *c,
                       uint64_t cursor,
                       unsigned count,
                       narf_set_scan_cb cb,
                       void *arg)
{
	struct scan_arg sa = {cb, arg, 0};
	/* as Redis: at most 10 buckets per member asked for */
	uint64_t buckets = (uint64_t)count * 10;

	if (c->p == NULL)
		return 0;
	if (c->enc == NARF_ENC_INTSET) {
		struct narf_set_iter it;
		struct narf_str m;

		narf_set_iter_init(&it, c);
		while (narf_set_iter_next(&it, &m))
			cb(arg, &m);
		narf_set_iter_close(&it);
		return 0;
	}
	do {
		cursor = narf_dict_scan(c->p, cursor, scan_one, &sa);
	} while (cursor != 0 && sa.seen < count && --buckets > 0);
	return cursor;
}

void narf_set_random(const struct narf_coll_ctx *ctx,
                     struct narf_coll *c,
                     struct narf_str *m)
{
	assert(narf_set_len(c) > 0);
	if (c->enc == NARF_ENC_INTSET)
		int_view(m, narf_intset_random(c->p, ctx->rng));
	else
		dict_view(m, narf_dict_random(c->p, ctx->rng));
}

void narf_set_pop(const struct narf_coll_ctx *ctx,
                  struct narf_coll *c,
                  struct narf_set_popped *p)
{
	assert(narf_set_len(c) > 0);
	if (c->enc == NARF_ENC_INTSET) {
		unsigned char *is = c->p;
		int64_t v = narf_intset_random(is, ctx->rng);

		narf_intset_remove(&is, ctx->used, v);
		c->p = is;
		int_view(&p->m, v);
		p->node = NULL;
		return;
	}
	struct narf_dict_node *n = narf_dict_random(c->p, ctx->rng);
	const struct smember *sm = (const struct smember *)n;

	n = narf_dict_unlink(c->p, sm->data, sm->len);
	assert(n == &sm->node);
	dict_view(&p->m, n);
	p->node = n;
}

void narf_set_popped_free(const struct narf_coll_ctx *ctx,
                          struct narf_set_popped *p)
{
	if (p->node != NULL)
		smember_free(p->node, (void *)ctx);
	p->node = NULL;
}

void narf_set_free(const struct narf_coll_ctx *ctx, struct narf_coll *c)
{
	if (c->p == NULL)
		return;
	if (c->enc == NARF_ENC_INTSET)
		narf_intset_destroy(c->p, ctx->used);
	else
		dict_destroy(ctx, c->p);
	c->p = NULL;
}

bool narf_set_free_step(const struct narf_coll_ctx *ctx,
                        struct narf_coll *c,
                        size_t budget)
{
	if (c->p != NULL && c->enc == NARF_ENC_HASHTABLE &&
	    narf_dict_drain(c->p, budget, smember_free, (void *)ctx) > 0)
		return false;
	narf_set_free(ctx, c);
	return true;
}
