/*
 * Sorted sets: a listpack of member, score pairs in (score, member) order
 * while small, a struct narf_zset (dict + skiplist sharing nodes) once big
 * (coll_zset.h).
 *
 * The conversion follows Redis 7.0's zsetAdd(): before inserting a new
 * member, a listpack that would pass zset-max-listpack-entries members, or
 * a member longer than zset-max-listpack-value, converts first. A failed
 * conversion (out of memory) leaves the listpack as it was and fails the
 * write.
 *
 * In a listpack a score is held as Redis 7.0's zzlInsertAt() holds it: an
 * integral score within +-2^62 as an integer (so -0 becomes 0 there, and
 * only there), any other as "%.17g" text, which reads back as the very
 * double written.
 */
#include "coll_zset.h"

#include <assert.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "rng.h"

static void view(struct narf_str *out, const void *s, size_t len)
{
	out->s = s;
	out->len = len;
}

static void node_view(const struct narf_zsl_node *n, struct narf_str *out)
{
	view(out, narf_zsl_member(n), n->len);
}

/* Redis 7.0's double2ll(): an integral double within +-2^62 as an
 * integer (-0 included, as 0). */
static bool double2ll(double d, long long *out)
{
	long long ll;

	if (!(d >= (double)(-LLONG_MAX / 2) && d <= (double)(LLONG_MAX / 2)))
		return false;
	ll = (long long)d;
	if ((double)ll != d)
		return false;
	*out = ll;
	return true;
}

size_t narf_zset_score_text(enum narf_enc enc, char *buf, double d)
{
	long long ll;
	int n;

	if (isinf(d))
		n = snprintf(buf, NARF_ZSET_SCOREBUF, d > 0 ? "inf" : "-inf");
	else if (enc == NARF_ENC_LISTPACK && double2ll(d, &ll))
		n = snprintf(buf, NARF_ZSET_SCOREBUF, "%lld", ll);
	else
		n = snprintf(buf, NARF_ZSET_SCOREBUF, "%.17g", d);
	return (size_t)n;
}

/* --- the listpack encoding ------------------------------------------------ */

static void lp_view(const unsigned char *lp, uint32_t pos, struct narf_str *out)
{
	uint32_t len;

	out->s = narf_lp_get_str(lp, pos, out->buf, &len);
	out->len = len;
}

/* The score stored at pos (the element after its member). */
static double lp_score(const unsigned char *lp, uint32_t pos)
{
	struct narf_lp_val v;
	char buf[64];
	size_t n;

	narf_lp_get(lp, pos, &v);
	if (v.s == NULL)
		return (double)v.v;
	n = v.len < sizeof(buf) - 1 ? v.len : sizeof(buf) - 1;
	memcpy(buf, v.s, n);
	buf[n] = '\0';
	return strtod(buf, NULL);
}

static uint32_t lp_find(const unsigned char *lp, const void *m, size_t len)
{
	return narf_lp_find(lp, narf_lp_first(lp), m, len, 1);
}

/* The member after (or before, when back) the pair whose member is at pos. */
static uint32_t lp_step(const unsigned char *lp, uint32_t pos, bool back)
{
	if (back) {
		pos = narf_lp_prev(lp, pos);
		return pos == NARF_LP_NONE ? pos : narf_lp_prev(lp, pos);
	}
	return narf_lp_next(lp, narf_lp_next(lp, pos));
}

/* The last pair's member, or NARF_LP_NONE. */
static uint32_t lp_last(const unsigned char *lp)
{
	uint32_t pos = narf_lp_last(lp);

	return pos == NARF_LP_NONE ? pos : narf_lp_prev(lp, pos);
}

/* The first pair above (score, m), skipping the pair at `skip`; the end
 * byte's offset when there is none. */
static uint32_t lp_insert_pos(const unsigned char *lp,
                              double score,
                              const void *m,
                              size_t len,
                              uint32_t skip)
{
	uint32_t pos;

	for (pos = narf_lp_first(lp); pos != NARF_LP_NONE;
	     pos = lp_step(lp, pos, false)) {
		struct narf_str x;

		if (pos == skip)
			continue;
		lp_view(lp, pos, &x);
		if (narf_zsl_cmp(lp_score(lp, narf_lp_next(lp, pos)), x.s,
		                 x.len, score, m, len) > 0)
			return pos;
	}
	return narf_lp_end(lp);
}

/* Insert the pair before `at` (a member's position or the end byte's);
 * its member's position to *newpos (may be NULL). */
static int lp_insert_at(const struct narf_coll_ctx *ctx,
                        unsigned char **lpp,
                        uint32_t at,
                        double score,
                        const void *m,
                        size_t len,
                        uint32_t *newpos)
{
	char sb[NARF_ZSET_SCOREBUF];
	size_t sl = narf_zset_score_text(NARF_ENC_LISTPACK, sb, score);
	uint32_t mpos;
	int rv;

	rv = narf_lp_insert(lpp, ctx->used, at, NARF_LP_BEFORE, m, len, &mpos);
	if (rv != 0)
		return rv;
	rv = narf_lp_insert(lpp, ctx->used, mpos, NARF_LP_AFTER, sb, sl, NULL);
	if (rv != 0) {
		narf_lp_delete(lpp, ctx->used, &mpos); /* no half pair */
		return rv;
	}
	if (newpos != NULL)
		*newpos = mpos;
	return 0;
}

static void lp_delete_pair(const struct narf_coll_ctx *ctx,
                           unsigned char **lpp,
                           uint32_t *pos)
{
	narf_lp_delete(lpp, ctx->used, pos); /* the member */
	narf_lp_delete(lpp, ctx->used, pos); /* its score */
}

/* Give the pair at pos a new score, keeping the order. */
static int lp_update(const struct narf_coll_ctx *ctx,
                     struct narf_coll *c,
                     uint32_t pos,
                     double score,
                     const void *m,
                     size_t len)
{
	unsigned char *lp = c->p;
	uint32_t at = lp_insert_pos(lp, score, m, len, pos);
	uint32_t after = lp_step(lp, pos, false), newpos;
	int rv;

	if (at == (after == NARF_LP_NONE ? narf_lp_end(lp) : after)) {
		/* same place: only the score's text changes */
		char sb[NARF_ZSET_SCOREBUF];
		size_t sl = narf_zset_score_text(NARF_ENC_LISTPACK, sb, score);

		rv = narf_lp_replace(&lp, ctx->used, narf_lp_next(lp, pos), sb,
		                     sl);
		c->p = lp;
		return rv;
	}
	/* Insert the new pair first, so that a failure changes nothing,
	 * then delete the old one, found again past the insertion. */
	rv = lp_insert_at(ctx, &lp, at, score, m, len, &newpos);
	c->p = lp;
	if (rv != 0)
		return rv;
	pos = lp_find(lp, m, len);
	if (pos == newpos)
		pos = narf_lp_find(lp, lp_step(lp, newpos, false), m, len, 1);
	assert(pos != NARF_LP_NONE);
	lp_delete_pair(ctx, &lp, &pos);
	c->p = lp;
	return 0;
}

/* --- the skiplist encoding ------------------------------------------------ */

static struct narf_zsl_node *zs_find(const struct narf_coll *c,
                                     const void *m,
                                     size_t len)
{
	struct narf_zset *z = c->p;

	return (struct narf_zsl_node *)narf_dict_find(&z->dict, m, len);
}

static int zs_insert(struct narf_zset *z,
                     double score,
                     const void *m,
                     size_t len)
{
	struct narf_zsl_node *n = narf_zsl_insert(z->zsl, score, m, len);

	if (n == NULL)
		return NARF_ENOMEM;
	if (narf_dict_add(&z->dict, &n->dn) != 0) {
		narf_zsl_delete_node(z->zsl, n);
		return NARF_ENOMEM;
	}
	return 0;
}

static void zs_destroy(const struct narf_coll_ctx *ctx, struct narf_zset *z)
{
	narf_dict_close(&z->dict); /* first: it must not touch the nodes */
	narf_zsl_destroy(z->zsl);
	narf_coll_unaccount(ctx, z);
	free(z);
}

static int to_skiplist(const struct narf_coll_ctx *ctx, struct narf_coll *c)
{
	unsigned char *lp = c->p;
	struct narf_zset *z;
	uint32_t pos;

	z = malloc(sizeof(*z));
	if (z == NULL)
		return NARF_ENOMEM;
	narf_coll_account(ctx, z);
	narf_dict_init(&z->dict, &narf_zsl_dict_type, ctx->seed, ctx->used);
	z->zsl = narf_zsl_create(ctx->rng, ctx->used);
	if (z->zsl == NULL)
		goto fail;
	if (lp != NULL &&
	    narf_dict_expand(&z->dict, narf_lp_count(lp) / 2) != 0)
		goto fail;
	for (pos = lp != NULL ? narf_lp_first(lp) : NARF_LP_NONE;
	     pos != NARF_LP_NONE; pos = lp_step(lp, pos, false)) {
		struct narf_str m;

		lp_view(lp, pos, &m);
		if (zs_insert(z, lp_score(lp, narf_lp_next(lp, pos)), m.s,
		              m.len) != 0)
			goto fail;
	}
	narf_lp_destroy(lp, ctx->used);
	c->p = z;
	c->enc = NARF_ENC_SKIPLIST;
	return 0;
fail:
	zs_destroy(ctx, z);
	return NARF_ENOMEM;
}

static int to_listpack(const struct narf_coll_ctx *ctx, struct narf_coll *c)
{
	struct narf_zset *z = c->p;
	const struct narf_zsl_node *x;
	unsigned char *lp;
	int rv = narf_lp_create(&lp, ctx->used);

	for (x = narf_zsl_first(z->zsl); rv == 0 && x != NULL;
	     x = narf_zsl_next(x)) {
		char sb[NARF_ZSET_SCOREBUF];
		size_t sl =
		        narf_zset_score_text(NARF_ENC_LISTPACK, sb, x->score);

		rv = narf_lp_append(&lp, ctx->used, narf_zsl_member(x), x->len);
		if (rv == 0)
			rv = narf_lp_append(&lp, ctx->used, sb, sl);
	}
	if (rv != 0) {
		narf_lp_destroy(lp, ctx->used);
		return rv;
	}
	zs_destroy(ctx, z);
	c->p = lp;
	c->enc = NARF_ENC_LISTPACK;
	return 0;
}

int narf_zset_create(const struct narf_coll_ctx *ctx,
                     struct narf_coll *c,
                     uint64_t size_hint)
{
	c->type = NARF_TYPE_ZSET;
	c->enc = NARF_ENC_LISTPACK;
	c->p = NULL;
	if (size_hint <= ctx->lim->zset_lp_entries)
		return 0;
	return to_skiplist(ctx, c);
}

int narf_zset_shrink(const struct narf_coll_ctx *ctx, struct narf_coll *c)
{
	const struct narf_zset *z = c->p;
	const struct narf_zsl_node *x;

	if (z == NULL || c->enc != NARF_ENC_SKIPLIST ||
	    narf_zsl_length(z->zsl) > ctx->lim->zset_lp_entries)
		return 0;
	for (x = narf_zsl_first(z->zsl); x != NULL; x = narf_zsl_next(x))
		if (x->len > ctx->lim->zset_lp_value)
			return 0;
	return to_listpack(ctx, c);
}

/* --- writes --------------------------------------------------------------- */

uint64_t narf_zset_len(const struct narf_coll *c)
{
	if (c->p == NULL)
		return 0;
	if (c->enc == NARF_ENC_LISTPACK)
		return narf_lp_count(c->p) / 2;
	return narf_zsl_length(((const struct narf_zset *)c->p)->zsl);
}

/* Add a member known to be absent. */
static int insert_new(const struct narf_coll_ctx *ctx,
                      struct narf_coll *c,
                      double score,
                      const void *m,
                      size_t len)
{
	const struct narf_coll_limits *lim = ctx->lim;
	unsigned char *lp;
	int rv;

	if (c->enc == NARF_ENC_LISTPACK &&
	    (len > lim->zset_lp_value ||
	     narf_zset_len(c) + 1 > lim->zset_lp_entries)) {
		rv = to_skiplist(ctx, c);
		if (rv != 0)
			return rv;
	}
	if (c->enc == NARF_ENC_SKIPLIST)
		return zs_insert(c->p, score, m, len);
	lp = c->p;
	if (lp == NULL) {
		rv = narf_lp_create(&lp, ctx->used);
		if (rv != 0)
			return rv;
	}
	rv = lp_insert_at(ctx, &lp, lp_insert_pos(lp, score, m, len, 0), score,
	                  m, len, NULL);
	if (rv != 0 && c->p == NULL) {
		narf_lp_destroy(lp, ctx->used);
		return rv;
	}
	c->p = lp;
	return rv;
}

int narf_zset_add(const struct narf_coll_ctx *ctx,
                  struct narf_coll *c,
                  double score,
                  const void *m,
                  size_t len,
                  unsigned flags,
                  enum narf_zadd_result *res,
                  double *newscore)
{
	bool gt = flags & NARF_ZADD_GT, lt = flags & NARF_ZADD_LT;
	struct narf_zsl_node *node = NULL;
	uint32_t pos = NARF_LP_NONE;
	double cur = 0;
	int rv;

	assert(c->type == NARF_TYPE_ZSET);
	*res = NARF_ZADD_NOP;
	if (isnan(score))
		return NARF_EINVAL;
	if (c->p == NULL)
		c->enc = NARF_ENC_LISTPACK;
	if (c->p != NULL && c->enc == NARF_ENC_LISTPACK) {
		pos = lp_find(c->p, m, len);
		if (pos != NARF_LP_NONE)
			cur = lp_score(c->p, narf_lp_next(c->p, pos));
	} else if (c->p != NULL) {
		node = zs_find(c, m, len);
		if (node != NULL)
			cur = node->score;
	}
	if (pos == NARF_LP_NONE && node == NULL) {
		if (flags & NARF_ZADD_XX)
			return 0;
		rv = insert_new(ctx, c, score, m, len);
		if (rv != 0)
			return rv;
		*res = NARF_ZADD_ADDED;
		if (newscore != NULL)
			*newscore = score;
		return 0;
	}
	if (flags & NARF_ZADD_NX)
		return 0;
	if (flags & NARF_ZADD_INCR) {
		score += cur;
		if (isnan(score))
			return NARF_EINVAL;
	}
	if ((lt && score >= cur) || (gt && score <= cur))
		return 0;
	if (newscore != NULL)
		*newscore = score;
	if (score == cur) {
		*res = NARF_ZADD_SAME;
		return 0;
	}
	if (node != NULL) {
		narf_zsl_update_score(((struct narf_zset *)c->p)->zsl, node,
		                      score);
		rv = 0;
	} else {
		rv = lp_update(ctx, c, pos, score, m, len);
	}
	if (rv == 0)
		*res = NARF_ZADD_UPDATED;
	return rv;
}

bool narf_zset_del(const struct narf_coll_ctx *ctx,
                   struct narf_coll *c,
                   const void *m,
                   size_t len)
{
	if (c->p == NULL)
		return false;
	if (c->enc == NARF_ENC_LISTPACK) {
		unsigned char *lp = c->p;
		uint32_t pos = lp_find(lp, m, len);

		if (pos == NARF_LP_NONE)
			return false;
		lp_delete_pair(ctx, &lp, &pos);
		c->p = lp;
		return true;
	}
	struct narf_zset *z = c->p;
	struct narf_dict_node *n = narf_dict_unlink(&z->dict, m, len);

	if (n == NULL)
		return false;
	narf_zsl_delete_node(z->zsl, (struct narf_zsl_node *)n);
	return true;
}

/* --- point reads ---------------------------------------------------------- */

bool narf_zset_score(const struct narf_coll *c,
                     const void *m,
                     size_t len,
                     double *score)
{
	if (c->p == NULL)
		return false;
	if (c->enc == NARF_ENC_LISTPACK) {
		uint32_t pos = lp_find(c->p, m, len);

		if (pos == NARF_LP_NONE)
			return false;
		*score = lp_score(c->p, narf_lp_next(c->p, pos));
		return true;
	}
	const struct narf_zsl_node *n = zs_find(c, m, len);

	if (n == NULL)
		return false;
	*score = n->score;
	return true;
}

bool narf_zset_rank(const struct narf_coll *c,
                    const void *m,
                    size_t len,
                    bool rev,
                    uint64_t *rank)
{
	uint64_t r = 0, n = narf_zset_len(c);

	if (n == 0)
		return false;
	if (c->enc == NARF_ENC_LISTPACK) {
		const unsigned char *lp = c->p;
		uint32_t pos, want = lp_find(lp, m, len);

		if (want == NARF_LP_NONE)
			return false;
		for (pos = narf_lp_first(lp); pos != want;
		     pos = lp_step(lp, pos, false))
			r++;
	} else {
		const struct narf_zsl_node *x = zs_find(c, m, len);

		if (x == NULL)
			return false;
		r = narf_zsl_node_rank(((struct narf_zset *)c->p)->zsl, x) - 1;
	}
	*rank = rev ? n - 1 - r : r;
	return true;
}

/* --- ranges --------------------------------------------------------------- */

static bool score_gte_min(const struct narf_zsl_range *r, double s)
{
	return r->minex ? s > r->min : s >= r->min;
}

static bool score_lte_max(const struct narf_zsl_range *r, double s)
{
	return r->maxex ? s < r->max : s <= r->max;
}

/* Member against a lex bound, as skiplist.c's: the infinities are beyond
 * every member. */
static int lex_cmp(const struct narf_str *m, const struct narf_zsl_lex_bound *b)
{
	size_t n;
	int d;

	if (b->inf != 0)
		return -b->inf;
	n = m->len < b->len ? m->len : b->len;
	d = n ? memcmp(m->s, b->s, n) : 0;
	if (d != 0)
		return d;
	return m->len < b->len ? -1 : m->len > b->len;
}

static bool lex_gte_min(const struct narf_zsl_lexrange *r,
                        const struct narf_str *m)
{
	int d = lex_cmp(m, &r->min);

	return r->min.ex ? d > 0 : d >= 0;
}

static bool lex_lte_max(const struct narf_zsl_lexrange *r,
                        const struct narf_str *m)
{
	int d = lex_cmp(m, &r->max);

	return r->max.ex ? d < 0 : d <= 0;
}

/* Is the listpack pair at pos past r's near end (near: the end the walk
 * starts from, min forwards) or within its far end? */
static bool lp_in_end(const unsigned char *lp,
                      uint32_t pos,
                      const struct narf_zrange *r,
                      bool min_end)
{
	if (r->by == NARF_ZRANGE_SCORE) {
		double s = lp_score(lp, narf_lp_next(lp, pos));

		return min_end ? score_gte_min(&r->score, s)
		               : score_lte_max(&r->score, s);
	}
	struct narf_str m;

	lp_view(lp, pos, &m);
	return min_end ? lex_gte_min(&r->lex, &m) : lex_lte_max(&r->lex, &m);
}

/* Whether an interval can hold anything at all (min <= max, and not
 * both equal with an exclusive end). */
static bool range_nonempty(const struct narf_zrange *r)
{
	if (r->by == NARF_ZRANGE_SCORE)
		return !(r->score.min > r->score.max ||
		         (r->score.min == r->score.max &&
		          (r->score.minex || r->score.maxex)));
	const struct narf_zsl_lex_bound *a = &r->lex.min, *b = &r->lex.max;
	int d;

	if (a->inf != 0 || b->inf != 0) {
		d = (a->inf > b->inf) - (a->inf < b->inf);
	} else {
		struct narf_str m;

		view(&m, a->s, a->len);
		d = lex_cmp(&m, b);
	}
	return !(d > 0 || (d == 0 && (a->ex || b->ex)));
}

/*
 * A listpack's score or lex range, walked as Redis's genericZrangeby*
 * walk it: from the first element in range in r's direction, offset
 * elements skipped whatever they hold, then elements taken while they are
 * within the far end, at most limit of them. The first one taken goes to
 * *first, their count to the return value. For scores, which are in
 * order, that is just the range; for lex ranges over unequal scores
 * (unspecified) it is what 7.0 answers.
 */
static uint64_t lp_range(const unsigned char *lp,
                         const struct narf_zrange *r,
                         uint32_t *first)
{
	bool rev = r->rev;
	uint32_t pos = rev ? lp_last(lp) : narf_lp_first(lp);
	uint64_t n = 0;

	*first = NARF_LP_NONE;
	/* zzlIsInRange / zzlIsInLexRange first: an empty interval, or one
	 * the ends of the set do not reach, holds nothing */
	if (!range_nonempty(r) || !lp_in_end(lp, lp_last(lp), r, true) ||
	    !lp_in_end(lp, narf_lp_first(lp), r, false))
		return 0;
	while (pos != NARF_LP_NONE && !lp_in_end(lp, pos, r, !rev))
		pos = lp_step(lp, pos, rev);
	if (pos == NARF_LP_NONE || !lp_in_end(lp, pos, r, rev))
		return 0;
	for (uint64_t i = 0; i < r->offset && pos != NARF_LP_NONE; i++)
		pos = lp_step(lp, pos, rev);
	*first = pos;
	for (;
	     pos != NARF_LP_NONE && n < r->limit && lp_in_end(lp, pos, r, rev);
	     pos = lp_step(lp, pos, rev))
		n++;
	return n;
}

/* A skiplist's score or lex range: the 1-based ranks of its ends; 0 when
 * the range holds nothing. */
static uint64_t zs_range(const struct narf_zsl *zsl,
                         const struct narf_zrange *r,
                         uint64_t *lo,
                         uint64_t *hi)
{
	if (r->by == NARF_ZRANGE_SCORE) {
		if (narf_zsl_first_in_range(zsl, &r->score, lo) == NULL ||
		    narf_zsl_last_in_range(zsl, &r->score, hi) == NULL)
			return 0;
	} else if (narf_zsl_first_in_lex_range(zsl, &r->lex, lo) == NULL ||
	           narf_zsl_last_in_lex_range(zsl, &r->lex, hi) == NULL) {
		return 0;
	}
	return *hi >= *lo ? *hi - *lo + 1 : 0;
}

/* Members from x on, in r's direction, within r's far end, up to its
 * limit. */
static uint64_t zs_lex_walk(const struct narf_zsl_node *x,
                            const struct narf_zrange *r)
{
	uint64_t n = 0;
	struct narf_str m;

	for (; x != NULL && n < r->limit;
	     x = r->rev ? narf_zsl_prev(x) : narf_zsl_next(x), n++) {
		node_view(x, &m);
		if (r->rev ? !lex_gte_min(&r->lex, &m)
		           : !lex_lte_max(&r->lex, &m))
			break;
	}
	return n;
}

void narf_zset_iter_init(struct narf_zset_iter *it,
                         const struct narf_coll *c,
                         bool rev)
{
	uint64_t n = narf_zset_len(c);
	struct narf_zrange r = {.by = NARF_ZRANGE_RANK,
	                        .rev = rev,
	                        .start = 0,
	                        .stop = n > 0 ? n - 1 : 0};

	narf_zset_iter_range(it, c, &r);
}

void narf_zset_iter_range(struct narf_zset_iter *it,
                          const struct narf_coll *c,
                          const struct narf_zrange *r)
{
	uint64_t len = narf_zset_len(c), n, lo = 0, hi = 0;

	it->c = c;
	it->rev = r->rev;
	it->left = 0;
	it->pos = NARF_LP_NONE;
	it->node = NULL;
	if (len == 0)
		return;
	if (r->by == NARF_ZRANGE_RANK) {
		if (r->start > r->stop || r->start >= len)
			return;
		n = (r->stop < len ? r->stop : len - 1) - r->start + 1;
		/* the first element's rank from the lowest */
		lo = r->rev ? len - 1 - r->start : r->start;
		if (c->enc == NARF_ENC_LISTPACK)
			it->pos = narf_lp_seek(c->p, (int64_t)lo * 2);
		else
			it->node = narf_zsl_by_rank(
			        ((const struct narf_zset *)c->p)->zsl, lo + 1);
		it->left = n;
		return;
	}
	if (c->enc == NARF_ENC_LISTPACK) {
		it->left = lp_range(c->p, r, &it->pos);
		return;
	}
	const struct narf_zsl *zsl = ((const struct narf_zset *)c->p)->zsl;

	n = zs_range(zsl, r, &lo, &hi);
	if (n == 0)
		return;
	if (r->by == NARF_ZRANGE_LEX) {
		/* Redis's walk: offset nodes on from the first in range
		 * (a rank's jump), then while within the far end. With
		 * equal scores, as lex ranges want, that is the ranks'
		 * count; over unequal ones it is what the walk finds. */
		if (r->rev ? hi <= r->offset : r->offset > len - lo)
			return;
		it->node = narf_zsl_by_rank(
		        zsl, r->rev ? hi - r->offset : lo + r->offset);
		it->left = zs_lex_walk(it->node, r);
		return;
	}
	if (r->offset >= n)
		return;
	it->node =
	        narf_zsl_by_rank(zsl, r->rev ? hi - r->offset : lo + r->offset);
	n -= r->offset;
	it->left = n < r->limit ? n : r->limit;
}

bool narf_zset_iter_next(struct narf_zset_iter *it,
                         struct narf_str *m,
                         double *score)
{
	if (it->left == 0)
		return false;
	it->left--;
	if (it->c->enc == NARF_ENC_LISTPACK) {
		const unsigned char *lp = it->c->p;

		assert(it->pos != NARF_LP_NONE);
		lp_view(lp, it->pos, m);
		*score = lp_score(lp, narf_lp_next(lp, it->pos));
		it->pos = lp_step(lp, it->pos, it->rev);
		return true;
	}
	const struct narf_zsl_node *x = it->node;

	assert(x != NULL);
	node_view(x, m);
	*score = x->score;
	it->node = it->rev ? narf_zsl_prev(x) : narf_zsl_next(x);
	return true;
}

uint64_t narf_zset_count(const struct narf_coll *c, const struct narf_zrange *r)
{
	struct narf_zrange all = *r;
	struct narf_zset_iter it;

	if (narf_zset_len(c) == 0)
		return 0;
	if (r->by != NARF_ZRANGE_RANK && c->enc == NARF_ENC_SKIPLIST) {
		const struct narf_zsl *zsl =
		        ((const struct narf_zset *)c->p)->zsl;

		return r->by == NARF_ZRANGE_SCORE
		               ? narf_zsl_count_in_range(zsl, &r->score)
		               : narf_zsl_count_in_lex_range(zsl, &r->lex);
	}
	all.offset = 0;
	all.limit = UINT64_MAX;
	narf_zset_iter_range(&it, c, &all);
	return it.left;
}

/* --- removals ------------------------------------------------------------- */

struct zs_removed {
	struct narf_zset *z;
	narf_zset_removed_cb cb;
	void *arg;
};

/* A node leaves the skiplist: out of the dict too, then tell the caller. */
static void zs_removed_cb(struct narf_zsl_node *n, void *arg)
{
	struct zs_removed *zr = arg;
	struct narf_dict_node *dn =
	        narf_dict_unlink(&zr->z->dict, narf_zsl_member(n), n->len);
	struct narf_str m;

	assert(dn == &n->dn);
	(void)dn;
	if (zr->cb != NULL) {
		node_view(n, &m);
		zr->cb(zr->arg, &m, n->score);
	}
}

uint64_t narf_zset_delete_range(const struct narf_coll_ctx *ctx,
                                struct narf_coll *c,
                                const struct narf_zrange *r,
                                narf_zset_removed_cb cb,
                                void *arg)
{
	uint64_t len = narf_zset_len(c);
	struct narf_zrange up = *r;

	if (len == 0)
		return 0;
	up.offset = 0;
	up.limit = UINT64_MAX;
	if (up.rev && up.by == NARF_ZRANGE_RANK) {
		if (up.start > up.stop || up.start >= len)
			return 0;
		up.stop = up.stop < len ? up.stop : len - 1;
		up.start = len - 1 - up.stop;
		up.stop = len - 1 - r->start;
	}
	up.rev = false;
	if (c->enc == NARF_ENC_LISTPACK) {
		struct narf_zset_iter it;
		unsigned char *lp = c->p;
		uint64_t n;

		narf_zset_iter_range(&it, c, &up);
		n = it.left;
		for (uint64_t i = 0; i < n; i++) {
			uint32_t pos = it.pos;

			if (cb != NULL) {
				struct narf_str m;

				lp_view(lp, pos, &m);
				cb(arg, &m,
				   lp_score(lp, narf_lp_next(lp, pos)));
			}
			lp_delete_pair(ctx, &lp, &pos);
			it.pos = pos;
		}
		c->p = lp;
		return n;
	}
	struct zs_removed zr = {c->p, cb, arg};
	struct narf_zsl *zsl = zr.z->zsl;

	switch (up.by) {
	case NARF_ZRANGE_RANK:
		return narf_zsl_delete_rank_range(
		        zsl, up.start + 1, up.stop + 1, zs_removed_cb, &zr);
	case NARF_ZRANGE_SCORE:
		return narf_zsl_delete_range(zsl, &up.score, zs_removed_cb,
		                             &zr);
	case NARF_ZRANGE_LEX:
		return narf_zsl_delete_lex_range(zsl, &up.lex, zs_removed_cb,
		                                 &zr);
	}
	return 0;
}

uint64_t narf_zset_pop(const struct narf_coll_ctx *ctx,
                       struct narf_coll *c,
                       bool max,
                       uint64_t n,
                       narf_zset_removed_cb cb,
                       void *arg)
{
	uint64_t done = 0;
	struct narf_str m;

	for (; done < n && narf_zset_len(c) > 0; done++) {
		if (c->enc == NARF_ENC_LISTPACK) {
			unsigned char *lp = c->p;
			uint32_t pos = max ? lp_last(lp) : narf_lp_first(lp);

			if (cb != NULL) {
				lp_view(lp, pos, &m);
				cb(arg, &m,
				   lp_score(lp, narf_lp_next(lp, pos)));
			}
			lp_delete_pair(ctx, &lp, &pos);
			c->p = lp;
		} else {
			struct narf_zset *z = c->p;
			struct narf_zsl_node *x = max ? narf_zsl_last(z->zsl)
			                              : narf_zsl_first(z->zsl);

			if (cb != NULL) {
				node_view(x, &m);
				cb(arg, &m, x->score);
			}
			narf_dict_unlink(&z->dict, narf_zsl_member(x), x->len);
			narf_zsl_delete_node(z->zsl, x);
		}
	}
	return done;
}

/* --- sampling and scanning ------------------------------------------------ */

void narf_zset_random(const struct narf_coll_ctx *ctx,
                      const struct narf_coll *c,
                      struct narf_str *m,
                      double *score)
{
	uint64_t n = narf_zset_len(c);

	assert(n > 0);
	if (c->enc == NARF_ENC_LISTPACK) {
		const unsigned char *lp = c->p;
		uint32_t pos = narf_lp_seek(
		        lp, (int64_t)(narf_rng_next(ctx->rng) % n) * 2);

		lp_view(lp, pos, m);
		*score = lp_score(lp, narf_lp_next(lp, pos));
		return;
	}
	struct narf_zset *z = c->p;
	const struct narf_zsl_node *x =
	        (const struct narf_zsl_node *)narf_dict_random(&z->dict,
	                                                       ctx->rng);

	node_view(x, m);
	*score = x->score;
}

struct scan_arg {
	narf_zset_scan_cb cb;
	void *arg;
	unsigned seen;
};

static void scan_one(void *arg, struct narf_dict_node *dn)
{
	struct scan_arg *sa = arg;
	const struct narf_zsl_node *x = (const struct narf_zsl_node *)dn;
	struct narf_str m;

	node_view(x, &m);
	sa->cb(sa->arg, &m, x->score);
	sa->seen++;
}

uint64_t narf_zset_scan(const struct narf_coll *c,
                        uint64_t cursor,
                        unsigned count,
                        narf_zset_scan_cb cb,
                        void *arg)
{
	struct scan_arg sa = {cb, arg, 0};
	/* as Redis: at most 10 buckets per member asked for */
	uint64_t buckets = (uint64_t)count * 10;

	if (c->p == NULL)
		return 0;
	if (c->enc == NARF_ENC_LISTPACK) {
		struct narf_zset_iter it;
		struct narf_str m;
		double s;

		narf_zset_iter_init(&it, c, false);
		while (narf_zset_iter_next(&it, &m, &s))
			cb(arg, &m, s);
		return 0;
	}
	struct narf_zset *z = c->p;

	do {
		cursor = narf_dict_scan(&z->dict, cursor, scan_one, &sa);
	} while (cursor != 0 && sa.seen < count && --buckets > 0);
	return cursor;
}

void narf_zset_free(const struct narf_coll_ctx *ctx, struct narf_coll *c)
{
	if (c->p == NULL)
		return;
	if (c->enc == NARF_ENC_LISTPACK)
		narf_lp_destroy(c->p, ctx->used);
	else
		zs_destroy(ctx, c->p);
	c->p = NULL;
}

bool narf_zset_free_step(const struct narf_coll_ctx *ctx,
                         struct narf_coll *c,
                         size_t budget)
{
	struct narf_zset *z = c->p;

	if (z == NULL || c->enc == NARF_ENC_LISTPACK) {
		narf_zset_free(ctx, c);
		return true;
	}
	narf_dict_close(&z->dict); /* at once, then empty: a no-op */
	if (narf_zsl_free_step(z->zsl, budget) > 0)
		return false;
	zs_destroy(ctx, z);
	c->p = NULL;
	return true;
}
