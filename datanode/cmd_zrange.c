/*
 * The sorted-set family, part two (cmd_zset.h): ranges and algebra with
 * Redis 7.0.15's replies and errors. ZRANGE (BYSCORE, BYLEX, REV, LIMIT,
 * WITHSCORES), ZRANGESTORE and the legacy ZREVRANGE, Z[REV]RANGEBYSCORE,
 * Z[REV]RANGEBYLEX all go through one parser, zrange_generic(), as they do
 * in Redis's zrangeGenericCommand(), so they share its checks and their
 * order; then ZCOUNT, ZLEXCOUNT, ZREMRANGEBYRANK/SCORE/LEX, and ZUNION,
 * ZINTER, ZDIFF, their *STORE forms and ZINTERCARD
 * (zunionInterDiffGenericCommand()).
 *
 * A *STORE builds its result apart, in the encoding Redis 7.0 builds it in
 * (narf_zset_create: ZRANGESTORE by its size when known, the algebra as a
 * skiplist shrunk at the end), then narf_zcmd_store() puts it in
 * place of the destination, whatever that held, or deletes the destination
 * when the result is empty. The inputs are read before that, so a
 * destination that is also an input is read first.
 *
 * The algebra takes plain sets as inputs too, each member scoring 1, as
 * Redis does (common/coll_set.h's walk and membership test).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_zset.h"
#include "common/coll_set.h"

static int read_zset(struct narf_engine *e,
                     const char *key,
                     size_t klen,
                     struct narf_coll *z,
                     struct narf_buf *out)
{
	return narf_lookup_coll(e, key, klen, NARF_TYPE_ZSET, z, out);
}

/* Redis's rank sanitising (zrange, ZREMRANGEBYRANK): negative ranks count
 * from the end; false when nothing is in [start, stop]. */
static bool clip_ranks(long long start,
                       long long stop,
                       uint64_t len,
                       struct narf_zrange *r)
{
	long long n = (long long)len;

	if (start < 0)
		start += n;
	if (stop < 0)
		stop += n;
	if (start < 0)
		start = 0;
	if (start > stop || start >= n)
		return false;
	if (stop >= n)
		stop = n - 1;
	r->start = (uint64_t)start;
	r->stop = (uint64_t)stop;
	return true;
}

/* --- the ZRANGE family
 * -------------------------------------------------------- */

enum rtype { RT_AUTO, RT_RANK, RT_SCORE, RT_LEX };
enum rdir { RD_AUTO, RD_FWD, RD_REV };

/* Copy an iterator's elements into an empty zset (ZRANGESTORE). */
static int build_from(const struct narf_coll_ctx *ctx,
                      struct narf_zset_iter *it,
                      struct narf_coll *dst)
{
	struct narf_str m;
	double s;
	enum narf_zadd_result res;
	int rv = 0;

	while (rv == 0 && narf_zset_iter_next(it, &m, &s))
		rv = narf_zset_add(ctx, dst, s, m.s, m.len, 0, &res, NULL);
	return rv;
}

/* zrangeGenericCommand: the source key at argv[src], its range at src + 1
 * and src + 2, options after; dst (ZRANGESTORE) at argv[1] when store. */
static int zrange_generic(struct narf_engine *e,
                          struct narf_client *c,
                          int argc,
                          const char **argv,
                          const size_t *len,
                          int src,
                          bool store,
                          enum rtype type,
                          enum rdir dir,
                          struct narf_buf *out)
{
	const struct narf_coll_ctx *ctx = narf_store_coll_ctx(e->store);
	long long start = 0, stop = 0, offset = 0, limit = -1;
	int minidx = src + 1, maxidx = src + 2, rv;
	struct narf_zrange r = {.limit = UINT64_MAX};
	struct narf_coll z, result = {NARF_TYPE_ZSET, NARF_ENC_LISTPACK, NULL};
	struct narf_zset_iter it;
	struct narf_str m;
	double s;
	bool withscores = false, any = true;

	for (int j = src + 3; j < argc; j++) {
		int left = argc - j - 1;

		if (!store && narf_arg_is(argv[j], len[j], "withscores")) {
			withscores = true;
		} else if (narf_arg_is(argv[j], len[j], "limit") && left >= 2) {
			if (narf_arg_ll(out, argv[j + 1], len[j + 1],
			                &offset) != 0 ||
			    narf_arg_ll(out, argv[j + 2], len[j + 2], &limit) !=
			            0)
				return 0;
			j += 2;
		} else if (dir == RD_AUTO &&
		           narf_arg_is(argv[j], len[j], "rev")) {
			dir = RD_REV;
		} else if (type == RT_AUTO &&
		           narf_arg_is(argv[j], len[j], "bylex")) {
			type = RT_LEX;
		} else if (type == RT_AUTO &&
		           narf_arg_is(argv[j], len[j], "byscore")) {
			type = RT_SCORE;
		} else {
			return narf_reply_syntax(out);
		}
	}
	if (type == RT_AUTO)
		type = RT_RANK;
	if (limit != -1 && type == RT_RANK)
		return narf_resp_error(out,
		                       "ERR syntax error, LIMIT is only "
		                       "supported in combination with either "
		                       "BYSCORE or BYLEX");
	if (withscores && type == RT_LEX)
		return narf_resp_error(out,
		                       "ERR syntax error, WITHSCORES not "
		                       "supported in combination with BYLEX");
	r.rev = dir == RD_REV;
	if (r.rev && type != RT_RANK) {
		/* given as max, min */
		minidx = src + 2;
		maxidx = src + 1;
	}
	if (type == RT_RANK) {
		r.by = NARF_ZRANGE_RANK;
		if (narf_arg_ll(out, argv[minidx], len[minidx], &start) != 0 ||
		    narf_arg_ll(out, argv[maxidx], len[maxidx], &stop) != 0)
			return 0;
	} else if (type == RT_SCORE) {
		r.by = NARF_ZRANGE_SCORE;
		if (!narf_zcmd_parse_range(argv[minidx], len[minidx],
		                           argv[maxidx], len[maxidx], &r.score))
			return narf_resp_error(out,
			                       "ERR min or max is not a float");
	} else {
		r.by = NARF_ZRANGE_LEX;
		if (!narf_zcmd_parse_lex(argv[minidx], len[minidx],
		                         argv[maxidx], len[maxidx], &r.lex))
			return narf_resp_error(
			        out,
			        "ERR min or max not valid string "
			        "range item");
	}
	rv = read_zset(e, argv[src], len[src], &z, out);
	if (rv < 0)
		return 0;
	if (rv == 0)
		any = false;
	else if (type == RT_RANK)
		any = clip_ranks(start, stop, narf_zset_len(&z), &r);
	else if (offset < 0) /* Redis skips "forever": nothing */
		any = false;
	r.offset = (uint64_t)offset;
	if (limit >= 0)
		r.limit = (uint64_t)limit;
	it.left = 0;
	if (any)
		narf_zset_iter_range(&it, &z, &r);
	if (store) {
		/* as Redis: a rank range's size is known before the walk */
		rv = narf_zset_create(ctx, &result,
		                      r.by == NARF_ZRANGE_RANK ? it.left : 0);
		if (rv == 0)
			rv = build_from(ctx, &it, &result);
		if (rv != 0) {
			narf_zset_free(ctx, &result);
			return narf_zcmd_store_error(out, rv);
		}
		return narf_zcmd_store(e, argv[1], len[1], &result, out);
	}
	narf_reply_pairs(c, out, (long long)it.left, withscores);
	while (narf_zset_iter_next(&it, &m, &s))
		narf_zcmd_reply_elem(c, out, &m, s, withscores);
	return 0;
}

static int cmd_zrange(struct narf_engine *e,
                      struct narf_client *c,
                      int argc,
                      const char **argv,
                      const size_t *len,
                      struct narf_buf *out)
{
	return zrange_generic(e, c, argc, argv, len, 1, false, RT_AUTO, RD_AUTO,
	                      out);
}

static int cmd_zrangestore(struct narf_engine *e,
                           struct narf_client *c,
                           int argc,
                           const char **argv,
                           const size_t *len,
                           struct narf_buf *out)
{
	return zrange_generic(e, c, argc, argv, len, 2, true, RT_AUTO, RD_AUTO,
	                      out);
}

static int cmd_zrevrange(struct narf_engine *e,
                         struct narf_client *c,
                         int argc,
                         const char **argv,
                         const size_t *len,
                         struct narf_buf *out)
{
	return zrange_generic(e, c, argc, argv, len, 1, false, RT_RANK, RD_REV,
	                      out);
}

static int cmd_zrangebyscore(struct narf_engine *e,
                             struct narf_client *c,
                             int argc,
                             const char **argv,
                             const size_t *len,
                             struct narf_buf *out)
{
	return zrange_generic(e, c, argc, argv, len, 1, false, RT_SCORE, RD_FWD,
	                      out);
}

static int cmd_zrevrangebyscore(struct narf_engine *e,
                                struct narf_client *c,
                                int argc,
                                const char **argv,
                                const size_t *len,
                                struct narf_buf *out)
{
	return zrange_generic(e, c, argc, argv, len, 1, false, RT_SCORE, RD_REV,
	                      out);
}

static int cmd_zrangebylex(struct narf_engine *e,
                           struct narf_client *c,
                           int argc,
                           const char **argv,
                           const size_t *len,
                           struct narf_buf *out)
{
	return zrange_generic(e, c, argc, argv, len, 1, false, RT_LEX, RD_FWD,
	                      out);
}

static int cmd_zrevrangebylex(struct narf_engine *e,
                              struct narf_client *c,
                              int argc,
                              const char **argv,
                              const size_t *len,
                              struct narf_buf *out)
{
	return zrange_generic(e, c, argc, argv, len, 1, false, RT_LEX, RD_REV,
	                      out);
}

/* --- counts and range removals
 * ------------------------------------------------ */

/* The range of ZCOUNT / ZREMRANGEBY* at argv[2], argv[3]; -1 after the
 * error reply. Ranks are left in *start, *stop for clip_ranks. */
static int parse_range_args(const char **argv,
                            const size_t *len,
                            enum narf_zrange_by by,
                            struct narf_zrange *r,
                            long long *start,
                            long long *stop,
                            struct narf_buf *out)
{
	memset(r, 0, sizeof(*r));
	r->by = by;
	r->limit = UINT64_MAX;
	if (by == NARF_ZRANGE_RANK) {
		if (narf_arg_ll(out, argv[2], len[2], start) != 0 ||
		    narf_arg_ll(out, argv[3], len[3], stop) != 0)
			return -1;
	} else if (by == NARF_ZRANGE_SCORE) {
		if (!narf_zcmd_parse_range(argv[2], len[2], argv[3], len[3],
		                           &r->score)) {
			narf_resp_error(out, "ERR min or max is not a float");
			return -1;
		}
	} else if (!narf_zcmd_parse_lex(argv[2], len[2], argv[3], len[3],
	                                &r->lex)) {
		narf_resp_error(out,
		                "ERR min or max not valid string range item");
		return -1;
	}
	return 0;
}

static int zcount_generic(struct narf_engine *e,
                          const char **argv,
                          const size_t *len,
                          enum narf_zrange_by by,
                          struct narf_buf *out)
{
	struct narf_zrange r;
	struct narf_coll z;
	int rv;

	if (parse_range_args(argv, len, by, &r, NULL, NULL, out) != 0)
		return 0;
	rv = read_zset(e, argv[1], len[1], &z, out);
	if (rv < 0)
		return 0;
	return narf_resp_int(out, rv ? (long long)narf_zset_count(&z, &r) : 0);
}

static int cmd_zcount(struct narf_engine *e,
                      struct narf_client *c,
                      int argc,
                      const char **argv,
                      const size_t *len,
                      struct narf_buf *out)
{
	return zcount_generic(e, argv, len, NARF_ZRANGE_SCORE, out);
}

static int cmd_zlexcount(struct narf_engine *e,
                         struct narf_client *c,
                         int argc,
                         const char **argv,
                         const size_t *len,
                         struct narf_buf *out)
{
	return zcount_generic(e, argv, len, NARF_ZRANGE_LEX, out);
}

static int zremrange_generic(struct narf_engine *e,
                             const char **argv,
                             const size_t *len,
                             enum narf_zrange_by by,
                             struct narf_buf *out)
{
	long long start = 0, stop = 0, n = 0;
	struct narf_zrange r;
	struct narf_cref cr;
	struct narf_fx fx;

	if (parse_range_args(argv, len, by, &r, &start, &stop, out) != 0)
		return 0;
	if (narf_zcmd_open(e, argv[1], len[1], 0, false, &cr, out) != 0)
		return 0;
	narf_fx_init(&fx);
	if (cr.e != NULL && (by != NARF_ZRANGE_RANK ||
	                     clip_ranks(start, stop, narf_zset_len(&cr.c), &r)))
		n = (long long)narf_zset_delete_range(
		        narf_store_coll_ctx(e->store), &cr.c, &r,
		        narf_fx_wanted(e) ? narf_zcmd_fx_member : NULL, &fx);
	/* the members removed, not the range: a lex range over unequal
	 * scores is not the same set of members on every copy */
	if (cr.e != NULL && n > 0)
		narf_zcmd_send(e, &cr, argv[1], len[1], "NARF.ZREM", &fx);
	narf_fx_close(&fx);
	narf_store_coll_close(e->store, &cr, narf_engine_now(e));
	return narf_resp_int(out, n);
}

static int cmd_zremrangebyrank(struct narf_engine *e,
                               struct narf_client *c,
                               int argc,
                               const char **argv,
                               const size_t *len,
                               struct narf_buf *out)
{
	return zremrange_generic(e, argv, len, NARF_ZRANGE_RANK, out);
}

static int cmd_zremrangebyscore(struct narf_engine *e,
                                struct narf_client *c,
                                int argc,
                                const char **argv,
                                const size_t *len,
                                struct narf_buf *out)
{
	return zremrange_generic(e, argv, len, NARF_ZRANGE_SCORE, out);
}

static int cmd_zremrangebylex(struct narf_engine *e,
                              struct narf_client *c,
                              int argc,
                              const char **argv,
                              const size_t *len,
                              struct narf_buf *out)
{
	return zremrange_generic(e, argv, len, NARF_ZRANGE_LEX, out);
}

/* --- ZUNION, ZINTER, ZDIFF, their STOREs, ZINTERCARD
 * -------------------------- */

enum setop { OP_UNION, OP_INTER, OP_DIFF };
enum aggr { AG_SUM, AG_MIN, AG_MAX };

/* An input of the algebra (zsetopsrc): a sorted set, a plain set (every
 * member scoring 1) or, for an absent key, nothing. */
struct zsrc {
	struct narf_coll c; /* borrowed from the store; c.p NULL: absent */
	double weight;
	uint64_t len;
	int at; /* position in the command, the sort's tie-break */
};

/* zuiInitIterator / zuiNext over either type. */
struct zsrc_iter {
	const struct zsrc *z;
	struct narf_zset_iter zi;
	struct narf_set_iter si;
};

static void zsrc_iter_init(struct zsrc_iter *it, const struct zsrc *z)
{
	it->z = z;
	if (z->c.type == NARF_TYPE_SET)
		narf_set_iter_init(&it->si, (struct narf_coll *)&z->c);
	else
		narf_zset_iter_init(&it->zi, &z->c, false);
}

static bool zsrc_iter_next(struct zsrc_iter *it,
                           struct narf_str *m,
                           double *score)
{
	if (it->z->c.type != NARF_TYPE_SET)
		return narf_zset_iter_next(&it->zi, m, score);
	*score = 1.0;
	return narf_set_iter_next(&it->si, m);
}

static void zsrc_iter_close(struct zsrc_iter *it)
{
	if (it->z->c.type == NARF_TYPE_SET)
		narf_set_iter_close(&it->si);
}

/* zuiFind: m's score in the input, if it is there. */
static bool zsrc_score(const struct zsrc *z,
                       const struct narf_str *m,
                       double *score)
{
	if (z->c.p == NULL)
		return false;
	if (z->c.type != NARF_TYPE_SET)
		return narf_zset_score(&z->c, m->s, m->len, score);
	*score = 1.0;
	return narf_set_ismember((struct narf_coll *)&z->c, m->s, m->len);
}

/* Look every input up for a read, a sorted set or a set: 0, or -1 after a
 * WRONGTYPE reply (any key of another type wins, before any option is
 * parsed). The clock is held for the whole lookup, so a key named twice
 * cannot expire between its two lookups (freeing what the first one
 * returned). */
static int gather(struct narf_engine *e,
                  const char **keys,
                  const size_t *klen,
                  long long n,
                  struct zsrc *src,
                  struct narf_buf *out)
{
	int64_t held = e->now_cached;
	int rv = 0;

	if (held == 0)
		e->now_cached = narf_engine_now(e);
	for (long long i = 0; i < n && rv == 0; i++) {
		struct narf_entry *en = narf_lookup(e, keys[i], klen[i], true);
		enum narf_type t =
		        en != NULL ? narf_entry_type(en) : NARF_TYPE_ZSET;

		src[i].weight = 1.0;
		src[i].at = (int)i;
		src[i].c = (struct narf_coll){NARF_TYPE_ZSET, NARF_ENC_LISTPACK,
		                              NULL};
		if (en == NULL)
			continue;
		if (t != NARF_TYPE_ZSET && t != NARF_TYPE_SET) {
			narf_reply_wrongtype(out);
			rv = -1;
			break;
		}
		narf_entry_coll(en, &src[i].c);
		src[i].len = t == NARF_TYPE_SET ? narf_set_len(&src[i].c)
		                                : narf_zset_len(&src[i].c);
	}
	e->now_cached = held;
	return rv;
}

/* zunionInterAggregate: a sum of +inf and -inf is 0; MIN and MAX keep
 * the target against a NaN value. */
static void aggregate(double *target, double v, enum aggr how)
{
	if (how == AG_SUM) {
		*target += v;
		if (isnan(*target))
			*target = 0.0;
	} else if (how == AG_MIN) {
		*target = v < *target ? v : *target;
	} else {
		*target = v > *target ? v : *target;
	}
}

/* Smallest first, in command order among equals (zuiCompareByCardinality
 * under glibc's stable qsort): the order sums are taken in. */
static int by_cardinality(const void *a, const void *b)
{
	const struct zsrc *x = a, *y = b;

	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return (x->at > y->at) - (x->at < y->at);
}

/* Set m's score in the result to exactly v: an equal score of the other
 * sign (0 and -0) is replaced too, as Redis stores the double it
 * computed. */
static int put(const struct narf_coll_ctx *ctx,
               struct narf_coll *dst,
               const struct narf_str *m,
               double v)
{
	enum narf_zadd_result res;
	double cur;

	if (narf_zset_score(dst, m->s, m->len, &cur) && cur == v &&
	    signbit(cur) != signbit(v))
		narf_zset_del(ctx, dst, m->s, m->len);
	return narf_zset_add(ctx, dst, v, m->s, m->len, 0, &res, NULL);
}

static int zunion(const struct narf_coll_ctx *ctx,
                  const struct zsrc *src,
                  long long n,
                  enum aggr how,
                  struct narf_coll *dst)
{
	struct zsrc_iter it;
	struct narf_str m;
	double s, cur;
	int rv = 0;

	for (long long i = 0; i < n && rv == 0; i++) {
		if (src[i].len == 0)
			continue;
		zsrc_iter_init(&it, &src[i]);
		while (rv == 0 && zsrc_iter_next(&it, &m, &s)) {
			double v = src[i].weight * s;

			if (isnan(v))
				v = 0;
			if (narf_zset_score(dst, m.s, m.len, &cur)) {
				aggregate(&cur, v, how);
				v = cur;
			}
			rv = put(ctx, dst, &m, v);
		}
		zsrc_iter_close(&it);
	}
	return rv;
}

/* Members of src[0] in every input; with card set, only counted (up to
 * limit, 0 for all). */
static int zinter(const struct narf_coll_ctx *ctx,
                  const struct zsrc *src,
                  long long n,
                  enum aggr how,
                  struct narf_coll *dst,
                  uint64_t *card,
                  uint64_t limit)
{
	struct zsrc_iter it;
	struct narf_str m;
	double s, v;
	int rv = 0;

	if (src[0].len == 0)
		return 0;
	zsrc_iter_init(&it, &src[0]);
	while (rv == 0 && zsrc_iter_next(&it, &m, &s)) {
		double score = src[0].weight * s;
		long long j;

		if (isnan(score))
			score = 0;
		for (j = 1; j < n && zsrc_score(&src[j], &m, &v); j++)
			aggregate(&score, v * src[j].weight, how);
		if (j < n)
			continue;
		if (card != NULL) {
			if (++*card == limit)
				break;
			continue;
		}
		rv = put(ctx, dst, &m, score);
	}
	zsrc_iter_close(&it);
	return rv;
}

/* Members of src[0] in no other input, with their scores in src[0]. */
static int zdiff(const struct narf_coll_ctx *ctx,
                 const struct zsrc *src,
                 long long n,
                 struct narf_coll *dst)
{
	struct zsrc_iter it;
	struct narf_str m;
	double s, v;
	int rv = 0;

	if (src[0].len == 0)
		return 0;
	zsrc_iter_init(&it, &src[0]);
	while (rv == 0 && zsrc_iter_next(&it, &m, &s)) {
		long long j;

		for (j = 1; j < n && !zsrc_score(&src[j], &m, &v); j++)
			;
		if (j == n)
			rv = put(ctx, dst, &m, s);
	}
	zsrc_iter_close(&it);
	return rv;
}

/* The options after the keys (zunionInterDiffGenericCommand): -1 after the
 * error reply. */
static int parse_setop_opts(const char **argv,
                            const size_t *len,
                            int j,
                            int argc,
                            struct zsrc *src,
                            long long n,
                            enum setop op,
                            bool store,
                            bool card,
                            enum aggr *how,
                            bool *withscores,
                            long long *limit,
                            struct narf_buf *out)
{
	while (j < argc) {
		int remaining = argc - j;

		if (op != OP_DIFF && !card && remaining >= n + 1 &&
		    narf_arg_is(argv[j], len[j], "weights")) {
			for (long long i = 0; i < n; i++) {
				j++;
				if (!narf_zcmd_parse_score(argv[j], len[j],
				                           &src[i].weight)) {
					narf_resp_error(
					        out,
					        "ERR weight value is not a "
					        "float");
					return -1;
				}
			}
			j++;
		} else if (op != OP_DIFF && !card && remaining >= 2 &&
		           narf_arg_is(argv[j], len[j], "aggregate")) {
			j++;
			if (narf_arg_is(argv[j], len[j], "sum"))
				*how = AG_SUM;
			else if (narf_arg_is(argv[j], len[j], "min"))
				*how = AG_MIN;
			else if (narf_arg_is(argv[j], len[j], "max"))
				*how = AG_MAX;
			else
				goto syntax;
			j++;
		} else if (!store && !card &&
		           narf_arg_is(argv[j], len[j], "withscores")) {
			*withscores = true;
			j++;
		} else if (card && remaining >= 2 &&
		           narf_arg_is(argv[j], len[j], "limit")) {
			if (!narf_str_to_ll(argv[j + 1], len[j + 1], limit) ||
			    *limit < 0) {
				narf_resp_error(out,
				                "ERR LIMIT can't be negative");
				return -1;
			}
			j += 2;
		} else {
			goto syntax;
		}
	}
	return 0;
syntax:
	narf_reply_syntax(out);
	return -1;
}

/* dst: the destination's index (the *STORE forms), or 0; numidx: where
 * numkeys is; name: the command's name for the numkeys error. */
static int setop_generic(struct narf_engine *e,
                         struct narf_client *c,
                         int argc,
                         const char **argv,
                         const size_t *len,
                         int dst,
                         int numidx,
                         enum setop op,
                         bool card,
                         const char *name,
                         struct narf_buf *out)
{
	const struct narf_coll_ctx *ctx = narf_store_coll_ctx(e->store);
	struct narf_coll result = {NARF_TYPE_ZSET, NARF_ENC_LISTPACK, NULL};
	long long n, limit = 0;
	enum aggr how = AG_SUM;
	bool withscores = false;
	uint64_t count = 0;
	struct zsrc *src;
	int rv = 0;

	if (narf_arg_ll(out, argv[numidx], len[numidx], &n) != 0)
		return 0;
	if (n < 1)
		return narf_resp_errorf(out,
		                        "ERR at least 1 input key is needed "
		                        "for '%s' command",
		                        name);
	if (n > argc - numidx - 1)
		return narf_reply_syntax(out);
	src = calloc((size_t)n, sizeof(*src));
	if (src == NULL)
		return NARF_ENOMEM;
	if (gather(e, &argv[numidx + 1], &len[numidx + 1], n, src, out) != 0)
		goto done;
	if (parse_setop_opts(argv, len, numidx + 1 + (int)n, argc, src, n, op,
	                     dst != 0, card, &how, &withscores, &limit,
	                     out) != 0)
		goto done;
	if (op != OP_DIFF)
		qsort(src, (size_t)n, sizeof(*src), by_cardinality);
	/* Redis builds the result as a skiplist, then shrinks it to a
	 * listpack when it fits (so a -0 survives in a big one) */
	if (!card)
		rv = narf_zset_create(ctx, &result, UINT64_MAX);
	if (rv == 0 && op == OP_UNION)
		rv = zunion(ctx, src, n, how, &result);
	else if (rv == 0 && op == OP_INTER)
		rv = zinter(ctx, src, n, how, &result, card ? &count : NULL,
		            (uint64_t)limit);
	else if (rv == 0)
		rv = zdiff(ctx, src, n, &result);
	if (rv != 0) {
		narf_zset_free(ctx, &result);
		rv = narf_zcmd_store_error(out, rv);
	} else if (card) {
		rv = narf_resp_int(out, (long long)count);
	} else if (dst != 0) {
		narf_zset_shrink(ctx, &result); /* a failure keeps it big */
		rv = narf_zcmd_store(e, argv[dst], len[dst], &result, out);
	} else {
		struct narf_zset_iter it;
		struct narf_str m;
		double s;

		narf_zset_iter_init(&it, &result, false);
		narf_reply_pairs(c, out, (long long)it.left, withscores);
		while (narf_zset_iter_next(&it, &m, &s))
			narf_zcmd_reply_elem(c, out, &m, s, withscores);
		narf_zset_free(ctx, &result);
	}
done:
	free(src);
	return rv;
}

static int cmd_zunionstore(struct narf_engine *e,
                           struct narf_client *c,
                           int argc,
                           const char **argv,
                           const size_t *len,
                           struct narf_buf *out)
{
	return setop_generic(e, c, argc, argv, len, 1, 2, OP_UNION, false,
	                     "zunionstore", out);
}

static int cmd_zinterstore(struct narf_engine *e,
                           struct narf_client *c,
                           int argc,
                           const char **argv,
                           const size_t *len,
                           struct narf_buf *out)
{
	return setop_generic(e, c, argc, argv, len, 1, 2, OP_INTER, false,
	                     "zinterstore", out);
}

static int cmd_zdiffstore(struct narf_engine *e,
                          struct narf_client *c,
                          int argc,
                          const char **argv,
                          const size_t *len,
                          struct narf_buf *out)
{
	return setop_generic(e, c, argc, argv, len, 1, 2, OP_DIFF, false,
	                     "zdiffstore", out);
}

static int cmd_zunion(struct narf_engine *e,
                      struct narf_client *c,
                      int argc,
                      const char **argv,
                      const size_t *len,
                      struct narf_buf *out)
{
	return setop_generic(e, c, argc, argv, len, 0, 1, OP_UNION, false,
	                     "zunion", out);
}

static int cmd_zinter(struct narf_engine *e,
                      struct narf_client *c,
                      int argc,
                      const char **argv,
                      const size_t *len,
                      struct narf_buf *out)
{
	return setop_generic(e, c, argc, argv, len, 0, 1, OP_INTER, false,
	                     "zinter", out);
}

static int cmd_zdiff(struct narf_engine *e,
                     struct narf_client *c,
                     int argc,
                     const char **argv,
                     const size_t *len,
                     struct narf_buf *out)
{
	return setop_generic(e, c, argc, argv, len, 0, 1, OP_DIFF, false,
	                     "zdiff", out);
}

static int cmd_zintercard(struct narf_engine *e,
                          struct narf_client *c,
                          int argc,
                          const char **argv,
                          const size_t *len,
                          struct narf_buf *out)
{
	return setop_generic(e, c, argc, argv, len, 0, 1, OP_INTER, true,
	                     "zintercard", out);
}

#define W (NARF_CMD_WRITE | NARF_CMD_DENYOOM)
#define R NARF_CMD_READONLY
#define F NARF_CMD_FAST
#define NK1 NARF_CMD_NUMKEYS_AT(1)
#define NK2 NARF_CMD_NUMKEYS_AT(2)
const struct narf_command narf_zrange_commands[] = {
        {"zrange", cmd_zrange, -4, R, 1, 1, 1},
        {"zrangestore", cmd_zrangestore, -5, W, 1, 2, 1},
        {"zrevrange", cmd_zrevrange, -4, R, 1, 1, 1},
        {"zrangebyscore", cmd_zrangebyscore, -4, R, 1, 1, 1},
        {"zrevrangebyscore", cmd_zrevrangebyscore, -4, R, 1, 1, 1},
        {"zrangebylex", cmd_zrangebylex, -4, R, 1, 1, 1},
        {"zrevrangebylex", cmd_zrevrangebylex, -4, R, 1, 1, 1},
        {"zcount", cmd_zcount, 4, R | F, 1, 1, 1},
        {"zlexcount", cmd_zlexcount, 4, R | F, 1, 1, 1},
        {"zremrangebyrank", cmd_zremrangebyrank, 4, NARF_CMD_WRITE, 1, 1, 1},
        {"zremrangebyscore", cmd_zremrangebyscore, 4, NARF_CMD_WRITE, 1, 1, 1},
        {"zremrangebylex", cmd_zremrangebylex, 4, NARF_CMD_WRITE, 1, 1, 1},
        {"zunionstore", cmd_zunionstore, -4, W | NK2, 1, 1, 1},
        {"zinterstore", cmd_zinterstore, -4, W | NK2, 1, 1, 1},
        {"zdiffstore", cmd_zdiffstore, -4, W | NK2, 1, 1, 1},
        {"zunion", cmd_zunion, -3, R | NK1, 0, 0, 0},
        {"zinter", cmd_zinter, -3, R | NK1, 0, 0, 0},
        {"zdiff", cmd_zdiff, -3, R | NK1, 0, 0, 0},
        {"zintercard", cmd_zintercard, -3, R | NK1, 0, 0, 0},
        {NULL, NULL, 0, 0, 0, 0, 0},
};
