/*
 * The sorted-set family with Redis 7.0.15's replies and errors, part one:
 * ZADD ZINCRBY ZREM ZCARD ZSCORE ZMSCORE ZRANK ZREVRANK ZPOPMIN ZPOPMAX
 * ZMPOP ZRANDMEMBER ZSCAN, and the helpers cmd_zrange.c shares
 * (cmd_zset.h). The encodings are common/coll_zset.h's.
 *
 * Writes open the key through narf_store_coll_open() (type check, memory
 * check, creation) and close it, which deletes a zset left empty. Reads
 * look the key up and check its type. Until zset effects are replicated
 * (slice 24 of docs/datatypes-plan.md) a node in a cluster refuses zset
 * writes, so no replica can miss one. The blocking pops (BZPOPMIN,
 * BZPOPMAX, BZMPOP) come with the blocking slices.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocking.h"
#include "cmd_zset.h"
#include "common/rng.h"

/* --- shared with cmd_zrange.c ----------------------------------------------
 */

int narf_zcmd_store_error(struct narf_buf *out, int rv)
{
	return narf_reply_store_error(out, rv);
}

void narf_zcmd_fx_member(void *arg, const struct narf_str *m, double score)
{
	(void)score;
	narf_fx_add(arg, m->s, m->len);
}

void narf_zcmd_send(struct narf_engine *e,
                    struct narf_cref *r,
                    const char *key,
                    size_t klen,
                    const char *op,
                    struct narf_fx *fx)
{
	uint64_t count = narf_zset_len(&r->c);

	/* an emptied key's delete goes out when it closes */
	if (count > 0)
		narf_fx_send(e, fx, r->slot, op, key, klen, (long long)count);
}

int narf_zcmd_open(struct narf_engine *e,
                   const char *key,
                   size_t klen,
                   size_t grow,
                   bool create,
                   struct narf_cref *r,
                   struct narf_buf *out)
{
	return narf_coll_open_write(e, key, klen, NARF_TYPE_ZSET, grow, create,
	                            r, out);
}

static void close_zset(struct narf_engine *e, struct narf_cref *r)
{
	narf_store_coll_close(e->store, r, narf_engine_now(e));
}

/* s[0..n) as a C string: in buf when it fits, else malloc'd (NULL when
 * that fails). Free with free_cstr. */
static char *cstr(const char *s, size_t n, char *buf, size_t cap)
{
	char *p = n < cap ? buf : malloc(n + 1);

	if (p != NULL) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

static void free_cstr(char *p, const char *buf)
{
	if (p != buf)
		free(p);
}

bool narf_zcmd_parse_score(const char *s, size_t n, double *d)
{
	char buf[128], *p, *end;
	bool ok;

	if (n == 0 || isspace((unsigned char)s[0]))
		return false;
	p = cstr(s, n, buf, sizeof(buf));
	if (p == NULL)
		return false;
	errno = 0;
	*d = strtod(p, &end);
	ok = (size_t)(end - p) == n && !isnan(*d) &&
	     !(errno == ERANGE && (*d == HUGE_VAL || *d == -HUGE_VAL ||
	                           fpclassify(*d) == FP_ZERO));
	free_cstr(p, buf);
	return ok;
}

/* One end of zslParseRange(): strtod must reach the end of the C string
 * (so an embedded NUL ends it, as in Redis). */
static bool parse_range_end(const char *s, size_t n, double *d, int *ex)
{
	char buf[128], *p = cstr(s, n, buf, sizeof(buf)), *q, *end;
	bool ok;

	if (p == NULL)
		return false;
	q = p;
	*ex = q[0] == '(';
	q += *ex;
	*d = strtod(q, &end);
	ok = *end == '\0' && !isnan(*d);
	free_cstr(p, buf);
	return ok;
}

bool narf_zcmd_parse_range(const char *min,
                           size_t minlen,
                           const char *max,
                           size_t maxlen,
                           struct narf_zsl_range *r)
{
	return parse_range_end(min, minlen, &r->min, &r->minex) &&
	       parse_range_end(max, maxlen, &r->max, &r->maxex);
}

bool narf_zcmd_parse_lex(const char *min,
                         size_t minlen,
                         const char *max,
                         size_t maxlen,
                         struct narf_zsl_lexrange *r)
{
	return narf_zsl_parse_lex(min, minlen, &r->min) == 0 &&
	       narf_zsl_parse_lex(max, maxlen, &r->max) == 0;
}

int narf_zcmd_store(struct narf_engine *e,
                    const char *dst,
                    size_t dlen,
                    struct narf_coll *result,
                    struct narf_buf *out)
{
	const struct narf_coll_ctx *ctx = narf_store_coll_ctx(e->store);
	unsigned slot = narf_key_slot(dst, dlen);
	int64_t now = narf_engine_now(e);
	uint64_t n = narf_zset_len(result);
	struct narf_cref r;
	int rv = 0;

	/* The result is built (and counted) before dst changes: one that
	 * took the store past max-memory under noeviction is refused here
	 * with dst as it was, as cmd_setalg.c's STOREs do (Redis checks
	 * only before the command). */
	if (n > 0)
		rv = narf_store_make_room(e->store, 0, now);
	if (rv == 0) {
		/* whatever dst held goes first, its TTL too (setKey) */
		narf_store_del(e->store, slot, dst, dlen, now);
		if (n > 0)
			rv = narf_store_coll_open(e->store, slot, dst, dlen,
			                          NARF_TYPE_ZSET, 0,
			                          NARF_COLL_CREATE, now, &r);
	}
	if (rv != 0 || n == 0) {
		narf_zset_free(ctx, result);
		return rv != 0 ? narf_zcmd_store_error(out, rv)
		               : narf_resp_int(out, 0);
	}
	r.c.enc = result->enc;
	r.c.p = result->p;
	result->p = NULL; /* the entry's now */
	narf_store_coll_close(e->store, &r, now);
	narf_block_signal(&e->block, slot, dst, dlen);
	/* built whole: replicas would get it whole (NARF.CLOAD) */
	narf_engine_send_value(e, slot, dst, dlen);
	return narf_resp_int(out, (long long)n);
}

/* The zset at key for a read: *z filled, 1 when it exists, 0 when not; -1
 * after a WRONGTYPE reply. */
static int read_zset(struct narf_engine *e,
                     const char *key,
                     size_t klen,
                     struct narf_coll *z,
                     struct narf_buf *out)
{
	return narf_lookup_coll(e, key, klen, NARF_TYPE_ZSET, z, out);
}

/* --- ZADD, ZINCRBY, ZREM ----------------------------------------------------
 */

/* ZADD's options from argv[2] on (ZINCRBY goes through here too, as in
 * Redis, which is why "ZINCRBY k nx m" is a syntax error), its checks in
 * zaddGenericCommand's order, then the pairs. */
static int zadd_generic(struct narf_engine *e,
                        struct narf_client *c,
                        int argc,
                        const char **argv,
                        const size_t *len,
                        unsigned flags,
                        struct narf_buf *out)
{
	static const struct {
		const char *word;
		unsigned flag;
	} opts[] = {{"nx", NARF_ZADD_NX},
	            {"xx", NARF_ZADD_XX},
	            {"ch", 0},
	            {"incr", NARF_ZADD_INCR},
	            {"gt", NARF_ZADD_GT},
	            {"lt", NARF_ZADD_LT}};
	const struct narf_coll_ctx *ctx = narf_store_coll_ctx(e->store);
	double stack[16], *scores = stack, score = 0;
	long long added = 0, updated = 0, processed = 0;
	struct narf_fx fx;
	double onescore = 0;
	bool ch = false, one = false;
	int idx = 2, n, rv = 0;
	size_t grow = 0, o;
	struct narf_cref r;

	for (; idx < argc; idx++) {
		for (o = 0; o < sizeof(opts) / sizeof(opts[0]); o++)
			if (narf_arg_is(argv[idx], len[idx], opts[o].word))
				break;
		if (o == sizeof(opts) / sizeof(opts[0]))
			break;
		flags |= opts[o].flag;
		ch |= o == 2;
	}
	n = argc - idx;
	if (n == 0 || n % 2 != 0)
		return narf_reply_syntax(out);
	n /= 2;
	if ((flags & NARF_ZADD_NX) && (flags & NARF_ZADD_XX))
		return narf_resp_error(out,
		                       "ERR XX and NX options at the same time "
		                       "are not compatible");
	if (((flags & NARF_ZADD_NX) &&
	     (flags & (NARF_ZADD_GT | NARF_ZADD_LT))) ||
	    ((flags & NARF_ZADD_GT) && (flags & NARF_ZADD_LT)))
		return narf_resp_error(out,
		                       "ERR GT, LT, and/or NX options at the "
		                       "same time are not compatible");
	if ((flags & NARF_ZADD_INCR) && n > 1)
		return narf_resp_error(out,
		                       "ERR INCR option supports a single "
		                       "increment-element pair");
	if (n > (int)(sizeof(stack) / sizeof(stack[0]))) {
		scores = malloc(sizeof(double) * (size_t)n);
		if (scores == NULL)
			return NARF_ENOMEM;
	}
	for (int j = 0; j < n; j++) {
		if (!narf_zcmd_parse_score(argv[idx + 2 * j], len[idx + 2 * j],
		                           &scores[j])) {
			rv = narf_resp_error(out,
			                     "ERR value is not a valid float");
			goto done;
		}
		grow += len[idx + 2 * j + 1] + NARF_ZMEMBER_OVERHEAD;
	}
	if (narf_zcmd_open(e, argv[1], len[1], grow, !(flags & NARF_ZADD_XX),
	                   &r, out) != 0)
		goto done;
	narf_fx_init(&fx);
	for (int j = 0; j < n && r.e != NULL; j++) {
		enum narf_zadd_result res;
		double ns = 0;

		rv = narf_zset_add(ctx, &r.c, scores[j], argv[idx + 2 * j + 1],
		                   len[idx + 2 * j + 1], flags, &res, &ns);
		if (rv != 0)
			break;
		added += res == NARF_ZADD_ADDED;
		updated += res == NARF_ZADD_UPDATED;
		if (res != NARF_ZADD_NOP) {
			processed++;
			score = ns;
		}
		if (!(res == NARF_ZADD_ADDED || res == NARF_ZADD_UPDATED) ||
		    !narf_fx_wanted(e))
			continue;
		/* the member's score now: the client's own text unless INCR
		 * computed it here (the replica parses either to ns) */
		if (n == 1) {
			one = true;
		} else {
			if (flags & NARF_ZADD_INCR)
				narf_fx_double(&fx, ns);
			else
				narf_fx_add(&fx, argv[idx + 2 * j],
				            len[idx + 2 * j]);
			narf_fx_add(&fx, argv[idx + 2 * j + 1],
			            len[idx + 2 * j + 1]);
		}
		onescore = ns;
	}
	if (r.e != NULL && one) {
		/* the common one-member ZADD: no collecting, no allocation */
		char num[40];
		const char *fxv[2] = {argv[idx], argv[idx + 1]};
		size_t fxl[2] = {len[idx], len[idx + 1]};

		if (flags & NARF_ZADD_INCR) {
			fxl[0] = (size_t)snprintf(num, sizeof(num), "%.17g",
			                          onescore);
			fxv[0] = num;
		}
		narf_engine_effect(e, r.slot, "NARF.ZADD", argv[1], len[1],
		                   (long long)narf_zset_len(&r.c), 2, fxv, fxl);
	} else if (r.e != NULL) {
		narf_zcmd_send(e, &r, argv[1], len[1], "NARF.ZADD", &fx);
	}
	if (r.e != NULL && added > 0)
		narf_block_signal(&e->block, r.slot, argv[1], len[1]);
	narf_fx_close(&fx);
	close_zset(e, &r);
	if (rv == NARF_EINVAL)
		rv = narf_resp_error(
		        out, "ERR resulting score is not a number (NaN)");
	else if (rv != 0)
		rv = narf_zcmd_store_error(out, rv);
	else if (!(flags & NARF_ZADD_INCR))
		rv = narf_resp_int(out, ch ? added + updated : added);
	else if (processed)
		rv = narf_reply_double(c, out, score);
	else
		rv = narf_reply_null(c, out);
done:
	if (scores != stack)
		free(scores);
	return rv;
}

static int cmd_zadd(struct narf_engine *e,
                    struct narf_client *c,
                    int argc,
                    const char **argv,
                    const size_t *len,
                    struct narf_buf *out)
{
	return zadd_generic(e, c, argc, argv, len, 0, out);
}

static int cmd_zincrby(struct narf_engine *e,
                       struct narf_client *c,
                       int argc,
                       const char **argv,
                       const size_t *len,
                       struct narf_buf *out)
{
	return zadd_generic(e, c, argc, argv, len, NARF_ZADD_INCR, out);
}

static int cmd_zrem(struct narf_engine *e,
                    struct narf_client *c,
                    int argc,
                    const char **argv,
                    const size_t *len,
                    struct narf_buf *out)
{
	const struct narf_coll_ctx *ctx = narf_store_coll_ctx(e->store);
	struct narf_cref r;
	long long n = 0;

	if (narf_zcmd_open(e, argv[1], len[1], 0, false, &r, out) != 0)
		return 0;
	for (int i = 2; i < argc && r.e != NULL && narf_zset_len(&r.c) > 0; i++)
		n += narf_zset_del(ctx, &r.c, argv[i], len[i]);
	if (n > 0 && narf_zset_len(&r.c) > 0)
		narf_engine_effect(e, r.slot, "NARF.ZREM", argv[1], len[1],
		                   (long long)narf_zset_len(&r.c), argc - 2,
		                   argv + 2, len + 2);
	close_zset(e, &r);
	return narf_resp_int(out, n);
}

/* --- point reads ------------------------------------------------------------
 */

static int cmd_zcard(struct narf_engine *e,
                     struct narf_client *c,
                     int argc,
                     const char **argv,
                     const size_t *len,
                     struct narf_buf *out)
{
	struct narf_coll z;
	int rv = read_zset(e, argv[1], len[1], &z, out);

	if (rv < 0)
		return 0;
	return narf_resp_int(out, rv ? (long long)narf_zset_len(&z) : 0);
}

static int cmd_zscore(struct narf_engine *e,
                      struct narf_client *c,
                      int argc,
                      const char **argv,
                      const size_t *len,
                      struct narf_buf *out)
{
	struct narf_coll z;
	double s;
	int rv = read_zset(e, argv[1], len[1], &z, out);

	if (rv < 0)
		return 0;
	if (rv == 0 || !narf_zset_score(&z, argv[2], len[2], &s))
		return narf_reply_null(c, out);
	return narf_reply_double(c, out, s);
}

static int cmd_zmscore(struct narf_engine *e,
                       struct narf_client *c,
                       int argc,
                       const char **argv,
                       const size_t *len,
                       struct narf_buf *out)
{
	struct narf_coll z;
	double s;
	int rv = read_zset(e, argv[1], len[1], &z, out);

	if (rv < 0)
		return 0;
	narf_resp_array(out, argc - 2);
	for (int i = 2; i < argc; i++) {
		if (rv == 1 && narf_zset_score(&z, argv[i], len[i], &s))
			narf_reply_double(c, out, s);
		else
			narf_reply_null(c, out);
	}
	return 0;
}

static int zrank_generic(struct narf_engine *e,
                         struct narf_client *c,
                         const char **argv,
                         const size_t *len,
                         bool rev,
                         struct narf_buf *out)
{
	struct narf_coll z;
	uint64_t rank;
	int rv = read_zset(e, argv[1], len[1], &z, out);

	if (rv < 0)
		return 0;
	if (rv == 0 || !narf_zset_rank(&z, argv[2], len[2], rev, &rank))
		return narf_reply_null(c, out);
	return narf_resp_int(out, (long long)rank);
}

static int cmd_zrank(struct narf_engine *e,
                     struct narf_client *c,
                     int argc,
                     const char **argv,
                     const size_t *len,
                     struct narf_buf *out)
{
	return zrank_generic(e, c, argv, len, false, out);
}

static int cmd_zrevrank(struct narf_engine *e,
                        struct narf_client *c,
                        int argc,
                        const char **argv,
                        const size_t *len,
                        struct narf_buf *out)
{
	return zrank_generic(e, c, argv, len, true, out);
}

/* --- pops -------------------------------------------------------------------
 */

struct pop_reply {
	const struct narf_client *c;
	struct narf_buf *out;
	bool pair;          /* each element a [member, score] array */
	struct narf_fx *fx; /* the members popped, for the effect; or NULL */
};

static void pop_cb(void *arg, const struct narf_str *m, double score)
{
	struct pop_reply *p = arg;

	if (p->fx != NULL)
		narf_fx_add(p->fx, m->s, m->len);
	if (p->pair)
		narf_resp_array(p->out, 2);
	narf_resp_bulk(p->out, m->s, m->len);
	narf_reply_double(p->c, p->out, score);
}

/* genericZpopCommand: pop from the first of keys[0..nkeys) that exists
 * (WRONGTYPE stops at the first of another type). count < 0: no count
 * argument (ZPOPMIN k), one flat [member, score]; else an array of count
 * at most, pairs in RESP3; nested (ZMPOP): [key, [[member, score]..]], or
 * a null array when no key exists. */
static int zpop_generic(struct narf_engine *e,
                        struct narf_client *c,
                        const char **keys,
                        const size_t *klen,
                        int nkeys,
                        bool max,
                        long long count,
                        bool nested,
                        struct narf_buf *out)
{
	struct narf_fx fx;
	struct pop_reply p = {c, out, nested || (count >= 0 && c->resp == 3),
	                      narf_fx_wanted(e) ? &fx : NULL};
	struct narf_cref r = {.e = NULL};
	uint64_t n;
	int i;

	for (i = 0; i < nkeys; i++) {
		if (narf_zcmd_open(e, keys[i], klen[i], 0, false, &r, out) != 0)
			return 0;
		if (r.e != NULL)
			break;
	}
	if (r.e == NULL)
		return nested ? narf_reply_null_array(c, out)
		              : narf_resp_array(out, 0);
	n = count < 0 ? 1 : (uint64_t)count;
	if (n > narf_zset_len(&r.c))
		n = narf_zset_len(&r.c);
	if (nested) {
		narf_resp_array(out, 2);
		narf_resp_bulk(out, keys[i], klen[i]);
		narf_resp_array(out, (long long)n);
	} else if (count < 0) {
		narf_resp_array(out, 2);
	} else {
		narf_reply_pairs(c, out, (long long)n, true);
	}
	narf_fx_init(&fx);
	narf_zset_pop(narf_store_coll_ctx(e->store), &r.c, max, n, pop_cb, &p);
	narf_zcmd_send(e, &r, keys[i], klen[i], "NARF.ZREM", &fx);
	narf_fx_close(&fx);
	close_zset(e, &r);
	return 0;
}

/* The index in keys[0..n) of the first key holding a sorted set, -1 when
 * none does, -2 after a WRONGTYPE reply (a key of another type before the
 * first zset, as genericZpopCommand stops there). */
static int first_zset(struct narf_engine *e,
                      const char **keys,
                      const size_t *klen,
                      int n,
                      struct narf_buf *out)
{
	struct narf_coll z;

	for (int i = 0; i < n; i++) {
		int rv = narf_lookup_coll(e, keys[i], klen[i], NARF_TYPE_ZSET,
		                          &z, out);

		if (rv < 0)
			return -2;
		if (rv == 1)
			return i;
	}
	return -1;
}

/* BZPOPMIN/BZPOPMAX key [key ...] timeout: [key, member, score] from the
 * first key holding a sorted set, or block on them all (blocking.h); a
 * timeout answers a null array. */
static int bzpop_cmd(struct narf_engine *e,
                     struct narf_client *c,
                     int argc,
                     const char **argv,
                     const size_t *len,
                     bool max,
                     struct narf_buf *out)
{
	struct narf_fx fx;
	struct pop_reply p = {c, out, false, narf_fx_wanted(e) ? &fx : NULL};
	struct narf_cref r;
	uint64_t ms;
	int i;

	if (narf_parse_block_timeout(out, argv[argc - 1], len[argc - 1], &ms) !=
	    0)
		return 0;
	i = first_zset(e, argv + 1, len + 1, argc - 2, out);
	if (i == -2)
		return 0;
	if (i < 0)
		return narf_block_wait(c, NARF_TYPE_ZSET, 1, argc - 2, 0, ms);
	i++;
	if (narf_zcmd_open(e, argv[i], len[i], 0, false, &r, out) != 0)
		return 0;
	narf_resp_array(out, 3);
	narf_resp_bulk(out, argv[i], len[i]);
	narf_fx_init(&fx);
	narf_zset_pop(narf_store_coll_ctx(e->store), &r.c, max, 1, pop_cb, &p);
	narf_zcmd_send(e, &r, argv[i], len[i], "NARF.ZREM", &fx);
	narf_fx_close(&fx);
	close_zset(e, &r);
	return 0;
}

static int cmd_bzpopmin(struct narf_engine *e,
                        struct narf_client *c,
                        int argc,
                        const char **argv,
                        const size_t *len,
                        struct narf_buf *out)
{
	return bzpop_cmd(e, c, argc, argv, len, false, out);
}

static int cmd_bzpopmax(struct narf_engine *e,
                        struct narf_client *c,
                        int argc,
                        const char **argv,
                        const size_t *len,
                        struct narf_buf *out)
{
	return bzpop_cmd(e, c, argc, argv, len, true, out);
}

static int zpop_cmd(struct narf_engine *e,
                    struct narf_client *c,
                    int argc,
                    const char **argv,
                    const size_t *len,
                    bool max,
                    struct narf_buf *out)
{
	long long count = -1;

	if (argc > 3)
		return narf_reply_syntax(out);
	if (argc == 3 &&
	    (!narf_str_to_ll(argv[2], len[2], &count) || count < 0))
		return narf_resp_error(out,
		                       "ERR value is out of range, must be "
		                       "positive");
	return zpop_generic(e, c, &argv[1], &len[1], 1, max, count, false, out);
}

static int cmd_zpopmin(struct narf_engine *e,
                       struct narf_client *c,
                       int argc,
                       const char **argv,
                       const size_t *len,
                       struct narf_buf *out)
{
	return zpop_cmd(e, c, argc, argv, len, false, out);
}

static int cmd_zpopmax(struct narf_engine *e,
                       struct narf_client *c,
                       int argc,
                       const char **argv,
                       const size_t *len,
                       struct narf_buf *out)
{
	return zpop_cmd(e, c, argc, argv, len, true, out);
}

/* ZMPOP numkeys key [key ...] MIN|MAX [COUNT count] (at 1), and BZMPOP
 * timeout numkeys ... (at 2), which blocks when no key holds a zset. */
static int zmpop_generic(struct narf_engine *e,
                         struct narf_client *c,
                         int argc,
                         const char **argv,
                         const size_t *len,
                         int at,
                         struct narf_buf *out)
{
	long long numkeys, count = -1;
	uint64_t ms = 0;
	int where, i;
	bool max;

	if (!narf_str_to_ll(argv[at], len[at], &numkeys) || numkeys < 1)
		return narf_resp_error(out,
		                       "ERR numkeys should be greater than 0");
	if (numkeys >= argc - at - 1)
		return narf_reply_syntax(out);
	where = at + 1 + (int)numkeys;
	if (narf_arg_is(argv[where], len[where], "min"))
		max = false;
	else if (narf_arg_is(argv[where], len[where], "max"))
		max = true;
	else
		return narf_reply_syntax(out);
	for (int j = where + 1; j < argc; j++) {
		if (count != -1 || !narf_arg_is(argv[j], len[j], "count") ||
		    j + 1 >= argc)
			return narf_reply_syntax(out);
		j++;
		if (!narf_str_to_ll(argv[j], len[j], &count) || count < 1)
			return narf_resp_error(out,
			                       "ERR count should be greater "
			                       "than 0");
	}
	if (at == 1)
		return zpop_generic(e, c, &argv[at + 1], &len[at + 1],
		                    (int)numkeys, max, count < 0 ? 1 : count,
		                    true, out);
	/* as blmpopCommand: the timeout is checked last */
	if (narf_parse_block_timeout(out, argv[1], len[1], &ms) != 0)
		return 0;
	i = first_zset(e, argv + at + 1, len + at + 1, (int)numkeys, out);
	if (i == -2)
		return 0;
	if (i < 0)
		return narf_block_wait(c, NARF_TYPE_ZSET, at + 1, where - 1, at,
		                       ms);
	return zpop_generic(e, c, &argv[at + 1 + i], &len[at + 1 + i], 1, max,
	                    count < 0 ? 1 : count, true, out);
}

static int cmd_zmpop(struct narf_engine *e,
                     struct narf_client *c,
                     int argc,
                     const char **argv,
                     const size_t *len,
                     struct narf_buf *out)
{
	return zmpop_generic(e, c, argc, argv, len, 1, out);
}

static int cmd_bzmpop(struct narf_engine *e,
                      struct narf_client *c,
                      int argc,
                      const char **argv,
                      const size_t *len,
                      struct narf_buf *out)
{
	return zmpop_generic(e, c, argc, argv, len, 2, out);
}

/* --- ZRANDMEMBER ------------------------------------------------------------
 */

/* count > 0: that many distinct members (all of them, highest first, when
 * count >= ZCARD); count < 0: -count members drawn with repeats, as
 * HRANDFIELD. */
static int randmember_count(struct narf_engine *e,
                            struct narf_client *c,
                            const struct narf_coll *z,
                            long long count,
                            bool withscores,
                            struct narf_buf *out)
{
	const struct narf_coll_ctx *ctx = narf_store_coll_ctx(e->store);
	uint64_t size = narf_zset_len(z);
	struct narf_str m;
	double s;

	if (count < 0) {
		uint64_t n = (uint64_t)-count;

		narf_reply_pairs(c, out, (long long)n, withscores);
		for (uint64_t i = 0; i < n; i++) {
			narf_zset_random(ctx, z, &m, &s);
			narf_zcmd_reply_elem(c, out, &m, s, withscores);
		}
		return 0;
	}
	uint64_t want = (uint64_t)count < size ? (uint64_t)count : size;
	uint64_t left = size, need = want;
	bool all = want == size;
	struct narf_zset_iter it;

	/* The whole set, from the highest score, as Redis 7.0 answers it;
	 * else selection sampling (Knuth's algorithm S): each member is
	 * taken with probability need/left, exactly `want` of them in one
	 * walk. */
	narf_reply_pairs(c, out, (long long)want, withscores);
	narf_zset_iter_init(&it, z, all);
	while (need > 0 && narf_zset_iter_next(&it, &m, &s)) {
		if (all || narf_rng_next(ctx->rng) % left < need) {
			narf_zcmd_reply_elem(c, out, &m, s, withscores);
			need--;
		}
		left--;
	}
	return 0;
}

static int cmd_zrandmember(struct narf_engine *e,
                           struct narf_client *c,
                           int argc,
                           const char **argv,
                           const size_t *len,
                           struct narf_buf *out)
{
	struct narf_coll z;
	struct narf_str m;
	long long count = 0;
	bool withscores = false;
	double s;
	int rv;

	if (argc >= 3) {
		if (narf_arg_ll(out, argv[2], len[2], &count) != 0)
			return 0;
		if (count == LLONG_MIN)
			return narf_resp_error(
			        out,
			        "ERR value is out of range, value must between "
			        "-9223372036854775807 and 9223372036854775807");
		if (argc > 4 ||
		    (argc == 4 && !narf_arg_is(argv[3], len[3], "withscores")))
			return narf_reply_syntax(out);
		withscores = argc == 4;
		if (withscores &&
		    (count < -LLONG_MAX / 2 || count > LLONG_MAX / 2))
			return narf_resp_error(out,
			                       "ERR value is out of range");
	}
	rv = read_zset(e, argv[1], len[1], &z, out);
	if (rv < 0)
		return 0;
	if (argc >= 3) {
		if (rv == 0 || count == 0)
			return narf_resp_array(out, 0);
		return randmember_count(e, c, &z, count, withscores, out);
	}
	if (rv == 0)
		return narf_reply_null(c, out);
	narf_zset_random(narf_store_coll_ctx(e->store), &z, &m, &s);
	return narf_resp_bulk(out, m.s, m.len);
}

/* --- ZSCAN ------------------------------------------------------------------
 */

struct zscan {
	struct narf_buf items;
	enum narf_enc enc; /* the score's text is the encoding's */
	const char *pat;
	size_t plen;
	long long n;
	int err;
};

static void zscan_cb(void *arg, const struct narf_str *m, double score)
{
	struct zscan *zs = arg;
	char sb[NARF_ZSET_SCOREBUF];
	size_t sl;

	if (zs->err != 0 ||
	    (zs->pat != NULL &&
	     !narf_glob_match(zs->pat, zs->plen, (const char *)m->s, m->len,
	                      false)))
		return;
	/* the score as text in both protocols, as Redis's scan replies */
	sl = narf_zset_score_text(zs->enc, sb, score);
	zs->err = narf_resp_bulk(&zs->items, m->s, m->len);
	if (zs->err == 0)
		zs->err = narf_resp_bulk(&zs->items, sb, sl);
	zs->n += 2;
}

static int cmd_zscan(struct narf_engine *e,
                     struct narf_client *c,
                     int argc,
                     const char **argv,
                     const size_t *len,
                     struct narf_buf *out)
{
	struct zscan zs = {.pat = NULL};
	struct narf_coll z;
	unsigned long long cursor;
	struct narf_scan_opts opts;
	long long count;
	int rv;

	if (narf_parse_scan_cursor(argv[2], len[2], &cursor) != 0)
		return narf_resp_error(out, "ERR invalid cursor");
	/* Redis 7.0's order: the cursor, then the key (a missing one is an
	 * empty scan whatever the options), then the options. */
	rv = read_zset(e, argv[1], len[1], &z, out);
	if (rv < 0)
		return 0;
	if (rv == 0)
		return narf_reply_scan(out, 0, 0, NULL);
	if (narf_parse_scan_opts(argc, argv, len, &opts, out) != 0)
		return 0;
	count = opts.count;
	zs.pat = opts.pat;
	zs.plen = opts.plen;
	narf_buf_init(&zs.items);
	zs.enc = (enum narf_enc)z.enc;
	cursor = narf_zset_scan(&z, cursor, (unsigned)count, zscan_cb, &zs);
	rv = zs.err;
	if (rv == 0)
		rv = narf_reply_scan(out, cursor, zs.n, &zs.items);
	narf_buf_close(&zs.items);
	return rv;
}

#define W (NARF_CMD_WRITE | NARF_CMD_DENYOOM)
#define R NARF_CMD_READONLY
#define F NARF_CMD_FAST
const struct narf_command narf_zset_commands[] = {
        {"zadd", cmd_zadd, -4, W | F | NARF_CMD_MEMBER3, 1, 1, 1},
        {"zincrby", cmd_zincrby, 4, W | F | NARF_CMD_MEMBER3, 1, 1, 1},
        {"zrem", cmd_zrem, -3, NARF_CMD_WRITE | F | NARF_CMD_MEMBER, 1, 1, 1},
        {"zcard", cmd_zcard, 2, R | F, 1, 1, 1},
        {"zscore", cmd_zscore, 3, R | F | NARF_CMD_MEMBER, 1, 1, 1},
        {"zmscore", cmd_zmscore, -3, R | F | NARF_CMD_MEMBER, 1, 1, 1},
        {"zrank", cmd_zrank, 3, R | F | NARF_CMD_MEMBER, 1, 1, 1},
        {"zrevrank", cmd_zrevrank, 3, R | F | NARF_CMD_MEMBER, 1, 1, 1},
        {"zpopmin", cmd_zpopmin, -2, NARF_CMD_WRITE | F, 1, 1, 1},
        {"zpopmax", cmd_zpopmax, -2, NARF_CMD_WRITE | F, 1, 1, 1},
        {"bzpopmin", cmd_bzpopmin, -3, NARF_CMD_WRITE | NARF_CMD_BLOCKING, 1,
         -2, 1},
        {"bzpopmax", cmd_bzpopmax, -3, NARF_CMD_WRITE | NARF_CMD_BLOCKING, 1,
         -2, 1},
        {"bzmpop", cmd_bzmpop, -5,
         NARF_CMD_WRITE | NARF_CMD_BLOCKING | NARF_CMD_NUMKEYS_AT(2), 0, 0, 0},
        {"zmpop", cmd_zmpop, -4, NARF_CMD_WRITE | NARF_CMD_NUMKEYS_AT(1), 0, 0,
         0},
        {"zrandmember", cmd_zrandmember, -2, R, 1, 1, 1},
        {"zscan", cmd_zscan, -3, R, 1, 1, 1},
        {NULL, NULL, 0, 0, 0, 0, 0},
};
