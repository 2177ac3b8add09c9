/*
 * What every collection shares: thresholds, encoding names, the element
 * count and freeing, dispatched on the encoding (coll.h).
 */
#include "coll.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "coll_hash.h"
#include "resp.h"
#include "coll_list.h"
#include "coll_set.h"
#include "coll_zset.h"

void narf_coll_limits_default(struct narf_coll_limits *lim)
{
	lim->hash_lp_entries = 512;
	lim->hash_lp_value = 64;
	lim->set_intset_entries = 512;
	lim->zset_lp_entries = 128;
	lim->zset_lp_value = 64;
	lim->list_lp_size = -2;
}

const struct narf_dict *narf_coll_dict(const struct narf_coll *c)
{
	if (c->p == NULL)
		return NULL;
	if (c->enc == NARF_ENC_HASHTABLE &&
	    (c->type == NARF_TYPE_HASH || c->type == NARF_TYPE_SET))
		return c->p;
	if (c->enc == NARF_ENC_SKIPLIST && c->type == NARF_TYPE_ZSET)
		return &((const struct narf_zset *)c->p)->dict;
	return NULL;
}

const char *narf_enc_name(enum narf_enc enc)
{
	static const char *const names[NARF_ENC_COUNT] = {
	        [NARF_ENC_LISTPACK] = "listpack",
	        [NARF_ENC_INTSET] = "intset",
	        [NARF_ENC_HASHTABLE] = "hashtable",
	        [NARF_ENC_QUICKLIST] = "quicklist",
	        [NARF_ENC_SKIPLIST] = "skiplist",
	};

	return (unsigned)enc < NARF_ENC_COUNT ? names[enc] : "unknown";
}

uint64_t narf_coll_len(const struct narf_coll *c)
{
	switch ((enum narf_type)c->type) {
	case NARF_TYPE_HASH:
		return narf_hash_len(c);
	case NARF_TYPE_LIST:
		return narf_list_len(c);
	case NARF_TYPE_SET:
		return narf_set_len(c);
	case NARF_TYPE_ZSET:
		return narf_zset_len(c);
	default:
		break;
	}
	assert(!"not a collection type");
	return 0;
}

void narf_coll_free(const struct narf_coll_ctx *ctx, struct narf_coll *c)
{
	switch ((enum narf_type)c->type) {
	case NARF_TYPE_HASH:
		narf_hash_free(ctx, c);
		break;
	case NARF_TYPE_LIST:
		narf_list_free(ctx, c);
		break;
	case NARF_TYPE_SET:
		narf_set_free(ctx, c);
		break;
	case NARF_TYPE_ZSET:
		narf_zset_free(ctx, c);
		break;
	default:
		assert(!"not a collection type");
	}
}

bool narf_coll_lazy(const struct narf_coll *c)
{
	if (c->p == NULL || c->enc == NARF_ENC_LISTPACK ||
	    c->enc == NARF_ENC_INTSET)
		return false;
	if (c->type == NARF_TYPE_LIST)
		return narf_list_ql(c)->nodes > NARF_COLL_LAZY_THRESHOLD;
	return narf_coll_len(c) > NARF_COLL_LAZY_THRESHOLD;
}

bool narf_coll_free_step(const struct narf_coll_ctx *ctx,
                         struct narf_coll *c,
                         size_t budget)
{
	switch ((enum narf_type)c->type) {
	case NARF_TYPE_HASH:
		return narf_hash_free_step(ctx, c, budget);
	case NARF_TYPE_SET:
		return narf_set_free_step(ctx, c, budget);
	case NARF_TYPE_ZSET:
		return narf_zset_free_step(ctx, c, budget);
	case NARF_TYPE_LIST:
		/* a node holds up to a few hundred small elements */
		return narf_list_free_step(ctx, c, budget / 32 + 1);
	default:
		narf_coll_free(ctx, c);
		return true;
	}
}

static int encode_hash(struct narf_coll *c, struct narf_buf *b, uint64_t *n)
{
	struct narf_hash_iter it;
	struct narf_str f, v;
	int rv = 0;

	narf_hash_iter_init(&it, c);
	while (rv == 0 && narf_hash_iter_next(&it, &f, &v)) {
		rv = narf_resp_bulk(b, f.s, f.len);
		if (rv == 0)
			rv = narf_resp_bulk(b, v.s, v.len);
		*n += 2;
	}
	narf_hash_iter_close(&it);
	return rv;
}

static int encode_elem(void *arg, const struct narf_lp_val *v)
{
	struct narf_buf *b = arg;
	char num[NARF_LP_INTBUF];

	if (v->s != NULL)
		return narf_resp_bulk(b, v->s, v->len);
	return narf_resp_bulk(
	        b, num,
	        (size_t)snprintf(num, sizeof(num), "%lld", (long long)v->v));
}

static int encode_list(struct narf_coll *c, struct narf_buf *b, uint64_t *n)
{
	struct narf_ql_iter it;
	int ok, rv = 0;

	if (narf_list_ql(c) == NULL)
		return 0;
	for (ok = narf_ql_first(narf_list_ql(c), &it); ok && rv == 0;
	     ok = narf_ql_iter_next(&it)) {
		struct narf_lp_val v;

		narf_ql_iter_get(&it, &v);
		rv = encode_elem(b, &v);
		(*n)++;
	}
	return rv;
}

static int encode_set(struct narf_coll *c, struct narf_buf *b, uint64_t *n)
{
	struct narf_set_iter it;
	struct narf_str m;
	int rv = 0;

	narf_set_iter_init(&it, c);
	while (rv == 0 && narf_set_iter_next(&it, &m)) {
		rv = narf_resp_bulk(b, m.s, m.len);
		(*n)++;
	}
	narf_set_iter_close(&it);
	return rv;
}

/* A score as text that reads back as the very double ("%.17g", "-0",
 * "inf"), then the member. */
static int encode_zset(struct narf_coll *c, struct narf_buf *b, uint64_t *n)
{
	struct narf_zset_iter it;
	struct narf_str m;
	double s;
	int rv = 0;

	narf_zset_iter_init(&it, c, false);
	while (rv == 0 && narf_zset_iter_next(&it, &m, &s)) {
		char sb[NARF_ZSET_SCOREBUF];
		size_t sl = narf_zset_score_text(NARF_ENC_SKIPLIST, sb, s);

		rv = narf_resp_bulk(b, sb, sl);
		if (rv == 0)
			rv = narf_resp_bulk(b, m.s, m.len);
		*n += 2;
	}
	return rv;
}

int narf_coll_encode(struct narf_coll *c, struct narf_buf *b, uint64_t *n)
{
	size_t before = b->len;
	int rv;

	*n = 0;
	switch ((enum narf_type)c->type) {
	case NARF_TYPE_HASH:
		rv = encode_hash(c, b, n);
		break;
	case NARF_TYPE_LIST:
		rv = encode_list(c, b, n);
		break;
	case NARF_TYPE_SET:
		rv = encode_set(c, b, n);
		break;
	case NARF_TYPE_ZSET:
		rv = encode_zset(c, b, n);
		break;
	default:
		rv = NARF_EINVAL;
	}
	if (rv != 0)
		b->len = before;
	return rv;
}

bool narf_coll_sliceable(const struct narf_coll *c)
{
	return c->p != NULL &&
	       (c->enc == NARF_ENC_HASHTABLE || c->enc == NARF_ENC_SKIPLIST ||
	        c->enc == NARF_ENC_QUICKLIST);
}

struct slice_arg {
	struct narf_buf *b;
	uint64_t *n;
	size_t elems;
	int rv;
};

static void slice_put(struct slice_arg *sa, const void *s, size_t len)
{
	if (sa->rv == 0)
		sa->rv = narf_resp_bulk(sa->b, s, len);
	(*sa->n)++;
}

static void slice_hash_cb(void *arg,
                          const struct narf_str *f,
                          const struct narf_str *v)
{
	struct slice_arg *sa = arg;

	slice_put(sa, f->s, f->len);
	slice_put(sa, v->s, v->len);
	sa->elems++;
}

static void slice_set_cb(void *arg, const struct narf_str *m)
{
	struct slice_arg *sa = arg;

	slice_put(sa, m->s, m->len);
	sa->elems++;
}

/* A skiplist zset from the member after the cursor's on, in order. */
static int slice_zset(struct narf_coll *c,
                      struct narf_coll_cursor *cur,
                      struct slice_arg *sa,
                      size_t max_elems,
                      size_t max_bytes,
                      size_t before,
                      bool *done)
{
	const struct narf_zset *z = c->p;
	struct narf_zsl_node *x, *last = NULL;

	x = cur->started ? narf_zsl_first_after(z->zsl, cur->score, cur->member,
	                                        cur->mlen)
	                 : narf_zsl_first(z->zsl);
	for (; x != NULL && sa->rv == 0 && sa->elems < max_elems &&
	       sa->b->len - before < max_bytes;
	     x = narf_zsl_next(x)) {
		char sb[NARF_ZSET_SCOREBUF];

		slice_put(
		        sa, sb,
		        narf_zset_score_text(NARF_ENC_SKIPLIST, sb, x->score));
		slice_put(sa, narf_zsl_member(x), x->len);
		sa->elems++;
		last = x;
	}
	if (sa->rv != 0)
		return sa->rv;
	*done = x == NULL;
	if (last == NULL)
		return 0;
	if (last->len > cur->mcap) {
		char *m = realloc(cur->member, last->len);

		if (m == NULL)
			return NARF_ENOMEM;
		cur->member = m;
		cur->mcap = last->len;
	}
	memcpy(cur->member, narf_zsl_member(last), last->len);
	cur->mlen = last->len;
	cur->score = last->score;
	cur->started = true;
	return 0;
}

/* A list from index cur->pos on. */
static int slice_list(struct narf_coll *c,
                      struct narf_coll_cursor *cur,
                      struct slice_arg *sa,
                      size_t max_elems,
                      size_t max_bytes,
                      size_t before,
                      bool *done)
{
	struct narf_ql *ql = narf_list_ql(c);
	struct narf_ql_iter it;
	int ok;

	if (ql == NULL || cur->pos >= narf_ql_count(ql)) {
		*done = true;
		return 0;
	}
	for (ok = narf_ql_index(ql, (int64_t)cur->pos, NARF_QL_FORWARD, &it);
	     ok && sa->rv == 0 && sa->elems < max_elems &&
	     sa->b->len - before < max_bytes;
	     ok = narf_ql_iter_next(&it)) {
		struct narf_lp_val v;

		narf_ql_iter_get(&it, &v);
		sa->rv = encode_elem(sa->b, &v);
		(*sa->n)++;
		sa->elems++;
	}
	cur->pos += sa->elems;
	*done = cur->pos >= narf_ql_count(ql);
	return sa->rv;
}

void narf_coll_cursor_close(struct narf_coll_cursor *cur)
{
	free(cur->member);
	memset(cur, 0, sizeof(*cur));
}

int narf_coll_slice(struct narf_coll *c,
                    struct narf_coll_cursor *cur,
                    size_t max_elems,
                    size_t max_bytes,
                    struct narf_buf *b,
                    uint64_t *n,
                    bool *done)
{
	struct slice_arg sa = {b, n, 0, 0};
	size_t before = b->len;
	uint64_t n0 = *n, pos0 = cur->pos;
	int rv = 0;

	*done = false;
	if (c->type == NARF_TYPE_LIST) {
		rv = slice_list(c, cur, &sa, max_elems, max_bytes, before,
		                done);
	} else if (c->type == NARF_TYPE_ZSET && c->enc == NARF_ENC_SKIPLIST) {
		rv = slice_zset(c, cur, &sa, max_elems, max_bytes, before,
		                done);
	} else {
		/* A few buckets a call, so the limits are checked often. */
		do {
			if (c->type == NARF_TYPE_HASH)
				cur->pos = narf_hash_scan(c, cur->pos, 16,
				                          slice_hash_cb, &sa);
			else if (c->type == NARF_TYPE_SET)
				cur->pos = narf_set_scan(c, cur->pos, 16,
				                         slice_set_cb, &sa);
			else
				return NARF_EINVAL;
		} while (cur->pos != 0 && sa.rv == 0 && sa.elems < max_elems &&
		         b->len - before < max_bytes);
		rv = sa.rv;
		*done = rv == 0 && cur->pos == 0;
	}
	if (rv != 0) {
		/* Nothing of this slice was sent: the next call gives it
		 * again (a zset's cursor moves only on success). */
		b->len = before;
		*n = n0;
		*done = false;
		cur->pos = pos0;
	}
	return rv;
}

/* One "score member" pair of a zset payload: the score must be all of
 * its text and not NaN. */
static int load_zset_pair(const struct narf_coll_ctx *ctx,
                          struct narf_coll *c,
                          const char *score,
                          size_t slen,
                          const char *m,
                          size_t mlen)
{
	enum narf_zadd_result res;
	char buf[NARF_ZSET_SCOREBUF + 16], *end;
	double d;

	if (slen == 0 || slen >= sizeof(buf))
		return NARF_EPROTO;
	memcpy(buf, score, slen);
	buf[slen] = '\0';
	d = strtod(buf, &end);
	if (*end != '\0' || isnan(d))
		return NARF_EPROTO;
	return narf_zset_add(ctx, c, d, m, mlen, 0, &res, NULL);
}

int narf_coll_load(const struct narf_coll_ctx *ctx,
                   struct narf_coll *c,
                   int argc,
                   const char *const *argv,
                   const size_t *argvlen)
{
	int rv = 0;

	switch ((enum narf_type)c->type) {
	case NARF_TYPE_HASH:
		if (argc % 2 != 0)
			return NARF_EPROTO;
		for (int i = 0; i < argc && rv == 0; i += 2)
			rv = narf_hash_set(ctx, c, argv[i], argvlen[i],
			                   argv[i + 1], argvlen[i + 1], 0,
			                   NULL);
		return rv;
	case NARF_TYPE_LIST:
		for (int i = 0; i < argc && rv == 0; i++)
			rv = narf_list_push(ctx, c, NARF_QL_TAIL, argv[i],
			                    argvlen[i]);
		return rv;
	case NARF_TYPE_SET:
		for (int i = 0; i < argc && rv == 0; i++)
			rv = narf_set_add(ctx, c, argv[i], argvlen[i], NULL);
		return rv;
	case NARF_TYPE_ZSET:
		if (argc % 2 != 0)
			return NARF_EPROTO;
		for (int i = 0; i < argc && rv == 0; i += 2)
			rv = load_zset_pair(ctx, c, argv[i], argvlen[i],
			                    argv[i + 1], argvlen[i + 1]);
		return rv;
	default:
		return NARF_EPROTO;
	}
}

int narf_coll_copy(const struct narf_coll_ctx *ctx,
                   struct narf_coll *src,
                   struct narf_coll *dst)
{
	enum { CHUNK = 256 };
	const char *argv[CHUNK];
	size_t argvlen[CHUNK];
	struct narf_buf b;
	uint64_t n = 0;
	const char *p, *end;
	int rv, k = 0;

	narf_buf_init(&b);
	rv = narf_coll_encode(src, &b, &n);
	p = b.data;
	end = b.data + b.len;
	/* the bulks this node just encoded: $len CRLF bytes CRLF */
	while (rv == 0 && p < end) {
		size_t len = 0;

		for (p++; *p != '\r'; p++)
			len = len * 10 + (size_t)(*p - '0');
		argv[k] = p + 2;
		argvlen[k] = len;
		p += 2 + len + 2;
		/* keep pairs (hash, zset) in one load: CHUNK is even */
		if (++k == CHUNK || p >= end) {
			rv = narf_coll_load(ctx, dst, k, argv, argvlen);
			k = 0;
		}
	}
	narf_buf_close(&b);
	if (rv != 0)
		narf_coll_free(ctx, dst);
	return rv;
}

int narf_type_by_name(const char *s, size_t n)
{
	for (int t = 0; t < NARF_TYPE_COUNT; t++) {
		const char *name = narf_type_name((enum narf_type)t);

		if (strlen(name) == n && strncasecmp(name, s, n) == 0)
			return t;
	}
	return -1;
}
