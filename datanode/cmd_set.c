/*
 * The set family with Redis 7.0's replies and errors, one set at a time:
 * SADD SREM SISMEMBER SMISMEMBER SCARD SPOP SRANDMEMBER SMOVE SSCAN. The
 * algebra (SINTER, SUNION, SDIFF, their STORE forms, SINTERCARD and
 * SMEMBERS) is in cmd_setalg.c; the encodings are common/coll_set.h's.
 *
 * Writes open the key through narf_store_coll_open() (type check, memory
 * check, creation) and close it, which deletes a set left empty. Reads look
 * the key up and check its type. Random picks (SPOP, SRANDMEMBER) draw
 * from the store's generator (ctx->rng), as effects will need (section 3
 * of docs/datatypes-plan.md: randomness is decided on the primary).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_set.h"
#include "common/rng.h"
#include "reply.h"

/* Per member stored, on top of its bytes: the memory check's estimate. */
#define MEMBER_OVERHEAD 16
/* SPOP with a count rebuilds the set from the members it keeps when it
 * keeps fewer than count / 5 (Redis's SPOP_MOVE_STRATEGY_MUL). */
#define SPOP_MOVE_STRATEGY_MUL 5

void narf_set_effect(struct narf_engine *e,
                     const struct narf_cref *r,
                     const char *key,
                     size_t klen,
                     const char *op,
                     int n,
                     const char *const *args,
                     const size_t *lens)
{
	uint64_t count = narf_set_len(&r->c);

	if (count > 0 && n > 0)
		narf_engine_effect(e, r->slot, op, key, klen, (long long)count,
		                   n, args, lens);
}

int narf_set_reply_error(struct narf_buf *out, int rv)
{
	return narf_reply_store_error(out, rv);
}

int narf_set_reply_members(const struct narf_client *c,
                           struct narf_buf *out,
                           struct narf_coll *s)
{
	struct narf_set_iter it;
	struct narf_str m;
	int rv = narf_reply_set(c, out, (long long)narf_set_len(s));

	narf_set_iter_init(&it, s);
	while (rv == 0 && narf_set_iter_next(&it, &m))
		rv = narf_resp_bulk(out, m.s, m.len);
	narf_set_iter_close(&it);
	return rv;
}

int narf_set_copy(const struct narf_coll_ctx *ctx,
                  struct narf_coll *src,
                  struct narf_coll *dst)
{
	struct narf_set_iter it;
	struct narf_str m;
	int rv = 0;

	*dst = narf_set_empty();
	narf_set_iter_init(&it, src);
	while (rv == 0 && narf_set_iter_next(&it, &m))
		rv = narf_set_add(ctx, dst, m.s, m.len, NULL);
	narf_set_iter_close(&it);
	if (rv != 0)
		narf_set_free(ctx, dst);
	return rv;
}

/* Open argv[1] as a set for a write (created when create); -1 after an
 * error reply. */
static int open_set(struct narf_engine *e,
                    const char *key,
                    size_t klen,
                    size_t grow,
                    bool create,
                    struct narf_cref *r,
                    struct narf_buf *out)
{
	return narf_coll_open_write(e, key, klen, NARF_TYPE_SET, grow, create,
	                            r, out);
}

static void close_set(struct narf_engine *e, struct narf_cref *r)
{
	narf_store_coll_close(e->store, r, narf_engine_now(e));
}

/* The set at argv[1] for a read: *s filled, 1 when it exists, 0 when not;
 * -1 after a WRONGTYPE reply. */
static int read_set(struct narf_engine *e,
                    const char **argv,
                    const size_t *len,
                    struct narf_coll *s,
                    struct narf_buf *out)
{
	return narf_lookup_coll(e, argv[1], len[1], NARF_TYPE_SET, s, out);
}

static int cmd_sadd(struct narf_engine *e,
                    struct narf_client *c,
                    int argc,
                    const char **argv,
                    const size_t *len,
                    struct narf_buf *out)
{
	const struct narf_coll_ctx *ctx = narf_store_coll_ctx(e->store);
	struct narf_cref r;
	size_t grow = 0;
	long long added = 0;
	int rv = 0;

	for (int i = 2; i < argc; i++)
		grow += len[i] + MEMBER_OVERHEAD;
	if (open_set(e, argv[1], len[1], grow, true, &r, out) != 0)
		return 0;
	int i;

	for (i = 2; i < argc; i++) {
		int a;

		rv = narf_set_add(ctx, &r.c, argv[i], len[i], &a);
		if (rv != 0)
			break;
		added += a;
	}
	if (added > 0)
		narf_set_effect(e, &r, argv[1], len[1], "NARF.SADD", i - 2,
		                argv + 2, len + 2);
	close_set(e, &r);
	if (rv != 0)
		return narf_set_reply_error(out, rv);
	return narf_resp_int(out, added);
}

static int cmd_srem(struct narf_engine *e,
                    struct narf_client *c,
                    int argc,
                    const char **argv,
                    const size_t *len,
                    struct narf_buf *out)
{
	const struct narf_coll_ctx *ctx = narf_store_coll_ctx(e->store);
	struct narf_cref r;
	long long n = 0;

	if (open_set(e, argv[1], len[1], 0, false, &r, out) != 0)
		return 0;
	if (r.e == NULL)
		return narf_resp_int(out, 0);
	for (int i = 2; i < argc && narf_set_len(&r.c) > 0; i++)
		n += narf_set_remove(ctx, &r.c, argv[i], len[i]);
	if (n > 0)
		narf_set_effect(e, &r, argv[1], len[1], "NARF.SREM", argc - 2,
		                argv + 2, len + 2);
	close_set(e, &r);
	return narf_resp_int(out, n);
}

static int cmd_sismember(struct narf_engine *e,
                         struct narf_client *c,
                         int argc,
                         const char **argv,
                         const size_t *len,
                         struct narf_buf *out)
{
	struct narf_coll s;
	int rv = read_set(e, argv, len, &s, out);

	if (rv < 0)
		return 0;
	return narf_resp_int(out,
	                     rv == 1 && narf_set_ismember(&s, argv[2], len[2]));
}

static int cmd_smismember(struct narf_engine *e,
                          struct narf_client *c,
                          int argc,
                          const char **argv,
                          const size_t *len,
                          struct narf_buf *out)
{
	struct narf_coll s;
	int rv = read_set(e, argv, len, &s, out);

	if (rv < 0)
		return 0;
	narf_resp_array(out, argc - 2);
	for (int i = 2; i < argc; i++)
		narf_resp_int(
		        out, rv == 1 && narf_set_ismember(&s, argv[i], len[i]));
	return 0;
}

static int cmd_scard(struct narf_engine *e,
                     struct narf_client *c,
                     int argc,
                     const char **argv,
                     const size_t *len,
                     struct narf_buf *out)
{
	struct narf_coll s;
	int rv = read_set(e, argv, len, &s, out);

	if (rv < 0)
		return 0;
	return narf_resp_int(out, rv == 1 ? (long long)narf_set_len(&s) : 0);
}

/* SPOP key count, count < SCARD: Redis 7.0's two strategies. Few to pop:
 * pop them one by one. Most of the set: draw the members that stay into a
 * new set (built whole, so in the encoding of its size: a hashtable of
 * integers can come back an intset, as in Redis), reply with what is left
 * in the old one and put the new one in its place. */
static int spop_some(struct narf_engine *e,
                     const struct narf_coll_ctx *ctx,
                     struct narf_client *c,
                     const char **argv,
                     const size_t *len,
                     struct narf_cref *r,
                     uint64_t count,
                     struct narf_buf *out)
{
	uint64_t remaining = narf_set_len(&r->c) - count;
	struct narf_set_popped p;
	int rv = narf_reply_set(c, out, (long long)count);

	if (remaining * SPOP_MOVE_STRATEGY_MUL > count) {
		while (count-- > 0) {
			const char *m[1];
			size_t mlen[1];

			narf_set_pop(ctx, &r->c, &p);
			if (rv == 0)
				rv = narf_resp_bulk(out, p.m.s, p.m.len);
			/* each pop as it happened (the set is never emptied
			 * here: some remain) */
			m[0] = (const char *)p.m.s;
			mlen[0] = p.m.len;
			narf_set_effect(e, r, argv[1], len[1], "NARF.SREM", 1,
			                m, mlen);
			narf_set_popped_free(ctx, &p);
		}
		return rv;
	}
	struct narf_coll keep = narf_set_empty();

	while (rv == 0 && remaining-- > 0) {
		narf_set_pop(ctx, &r->c, &p);
		rv = narf_set_add(ctx, &keep, p.m.s, p.m.len, NULL);
		narf_set_popped_free(ctx, &p);
	}
	if (rv == 0) {
		struct narf_set_iter it;
		struct narf_str m;

		narf_set_iter_init(&it, &r->c);
		while (rv == 0 && narf_set_iter_next(&it, &m))
			rv = narf_resp_bulk(out, m.s, m.len);
		narf_set_iter_close(&it);
	}
	/* On an error the members drawn so far are lost with the reply:
	 * only an out-of-memory gets here, and the connection closes. */
	narf_set_free(ctx, &r->c);
	r->c.p = keep.p;
	r->c.enc = keep.enc;
	return rv;
}

static int cmd_spop(struct narf_engine *e,
                    struct narf_client *c,
                    int argc,
                    const char **argv,
                    const size_t *len,
                    struct narf_buf *out)
{
	const struct narf_coll_ctx *ctx = narf_store_coll_ctx(e->store);
	struct narf_cref r;
	struct narf_set_popped p;
	long long count = 0;
	int rv;

	if (argc > 3)
		return narf_reply_syntax(out);
	if (argc == 3 &&
	    (!narf_str_to_ll(argv[2], len[2], &count) || count < 0))
		return narf_resp_error(out,
		                       "ERR value is out of range, must be "
		                       "positive");
	if (open_set(e, argv[1], len[1], 0, false, &r, out) != 0)
		return 0;
	if (r.e == NULL)
		return argc == 3 ? narf_reply_set(c, out, 0)
		                 : narf_reply_null(c, out);
	if (argc == 2) {
		const char *m[1];
		size_t mlen[1];

		narf_set_pop(ctx, &r.c, &p);
		rv = narf_resp_bulk(out, p.m.s, p.m.len);
		m[0] = (const char *)p.m.s;
		mlen[0] = p.m.len;
		narf_set_effect(e, &r, argv[1], len[1], "NARF.SREM", 1, m,
		                mlen);
		narf_set_popped_free(ctx, &p);
	} else if (count == 0) {
		rv = narf_reply_set(c, out, 0);
	} else if ((uint64_t)count >= narf_set_len(&r.c)) {
		/* The whole set, in the order of a copy (as 7.0 replies
		 * with a one-key SUNION), and the key goes. */
		struct narf_coll copy;

		rv = narf_set_copy(ctx, &r.c, &copy);
		if (rv == 0) {
			rv = narf_set_reply_members(c, out, &copy);
			narf_set_free(ctx, &copy);
			narf_set_free(ctx, &r.c);
		}
	} else {
		uint64_t remaining = narf_set_len(&r.c) - (uint64_t)count;

		rv = spop_some(e, ctx, c, argv, len, &r, (uint64_t)count, out);
		if (remaining * SPOP_MOVE_STRATEGY_MUL <= (uint64_t)count) {
			/* rebuilt from the members kept: send it whole */
			close_set(e, &r);
			narf_engine_send_value(e,
			                       narf_key_slot(argv[1], len[1]),
			                       argv[1], len[1]);
			return rv;
		}
	}
	close_set(e, &r);
	return rv;
}

/* SRANDMEMBER key count: count > 0 distinct members (at most all of them),
 * count < 0 -count members drawn with repeats; an array either way. */
static int srandmember_count(const struct narf_coll_ctx *ctx,
                             struct narf_coll *s,
                             long long count,
                             struct narf_buf *out)
{
	uint64_t size = narf_set_len(s);
	struct narf_set_iter it;
	struct narf_str m;

	if (count < 0 || count == 1) {
		uint64_t n = count < 0 ? (uint64_t)-count : 1;

		narf_resp_array(out, (long long)n);
		for (uint64_t i = 0; i < n; i++) {
			narf_set_random(ctx, s, &m);
			narf_resp_bulk(out, m.s, m.len);
		}
		return 0;
	}
	uint64_t want = (uint64_t)count < size ? (uint64_t)count : size;
	uint64_t left = size, need = want;

	/* Selection sampling (Knuth's algorithm S), as HRANDFIELD: each
	 * member is taken with probability need/left, which yields exactly
	 * `want` distinct members in one walk. */
	narf_resp_array(out, (long long)want);
	narf_set_iter_init(&it, s);
	while (need > 0 && narf_set_iter_next(&it, &m)) {
		if (want == size || narf_rng_next(ctx->rng) % left < need) {
			narf_resp_bulk(out, m.s, m.len);
			need--;
		}
		left--;
	}
	narf_set_iter_close(&it);
	return 0;
}

static int cmd_srandmember(struct narf_engine *e,
                           struct narf_client *c,
                           int argc,
                           const char **argv,
                           const size_t *len,
                           struct narf_buf *out)
{
	const struct narf_coll_ctx *ctx = narf_store_coll_ctx(e->store);
	struct narf_coll s;
	struct narf_str m;
	long long count = 0;
	int rv;

	if (argc > 3)
		return narf_reply_syntax(out);
	if (argc == 3) {
		if (narf_arg_ll(out, argv[2], len[2], &count) != 0)
			return 0;
		if (count == LLONG_MIN)
			return narf_resp_error(
			        out,
			        "ERR value is out of range, value must between "
			        "-9223372036854775807 and 9223372036854775807");
	}
	rv = read_set(e, argv, len, &s, out);
	if (rv < 0)
		return 0;
	if (argc == 3) {
		if (rv == 0 || count == 0)
			return narf_resp_array(out, 0);
		return srandmember_count(ctx, &s, count, out);
	}
	if (rv == 0)
		return narf_reply_null(c, out);
	narf_set_random(ctx, &s, &m);
	return narf_resp_bulk(out, m.s, m.len);
}

/* The set at key, looked at without touching it: 1 with *s filled, 0 when
 * absent, -1 when the key holds another type. */
static int peek_set(struct narf_engine *e,
                    const char *key,
                    size_t klen,
                    struct narf_coll *s)
{
	struct narf_entry *en =
	        narf_store_get(e->store, narf_key_slot(key, klen), key, klen,
	                       narf_engine_now(e), NARF_STORE_NOTOUCH);

	if (en == NULL)
		return 0;
	if (narf_entry_type(en) != NARF_TYPE_SET)
		return -1;
	narf_entry_coll(en, s);
	return 1;
}

/* SMOVE src dst member, as Redis 7.0: 0 when src is absent (dst is not
 * looked at), WRONGTYPE when either holds another type (even when the
 * member is not in src), and a move to the same key is a membership
 * test. */
static int cmd_smove(struct narf_engine *e,
                     struct narf_client *c,
                     int argc,
                     const char **argv,
                     const size_t *len,
                     struct narf_buf *out)
{
	const struct narf_coll_ctx *ctx = narf_store_coll_ctx(e->store);
	struct narf_cref src, dst;
	struct narf_coll s;
	int rv;

	rv = peek_set(e, argv[1], len[1], &s);
	if (rv == 0)
		return narf_resp_int(out, 0);
	if (rv < 0 || peek_set(e, argv[2], len[2], &s) < 0)
		return narf_reply_wrongtype(out);
	/* peek again: looking at dst may have reclaimed an expired key */
	if (peek_set(e, argv[1], len[1], &s) != 1 ||
	    !narf_set_ismember(&s, argv[3], len[3]))
		return narf_resp_int(out, 0);
	if (len[1] == len[2] && memcmp(argv[1], argv[2], len[1]) == 0)
		return narf_resp_int(out, 1);
	/* Open dst first: creating it may evict (allkeys-lru), src too,
	 * which the second open then finds gone. Opening src adds nothing,
	 * so it evicts nothing. No growth is announced: a move is about
	 * memory-neutral and Redis does not refuse SMOVE under noeviction
	 * (it is not "denyoom"). */
	if (open_set(e, argv[2], len[2], 0, true, &dst, out) != 0)
		return 0;
	if (open_set(e, argv[1], len[1], 0, false, &src, out) != 0) {
		close_set(e, &dst);
		return 0;
	}
	if (src.e == NULL || !narf_set_remove(ctx, &src.c, argv[3], len[3])) {
		close_set(e, &src);
		close_set(e, &dst);
		return narf_resp_int(out, 0);
	}
	rv = narf_set_add(ctx, &dst.c, argv[3], len[3], NULL);
	if (rv != 0) { /* put it back: a failed move changes nothing */
		narf_set_add(ctx, &src.c, argv[3], len[3], NULL);
	} else {
		narf_set_effect(e, &dst, argv[2], len[2], "NARF.SADD", 1,
		                argv + 3, len + 3);
		narf_set_effect(e, &src, argv[1], len[1], "NARF.SREM", 1,
		                argv + 3, len + 3);
	}
	close_set(e, &src);
	close_set(e, &dst);
	if (rv != 0)
		return narf_set_reply_error(out, rv);
	return narf_resp_int(out, 1);
}

struct sscan {
	struct narf_buf items;
	const char *pat;
	size_t plen;
	long long n;
	int err;
};

static void sscan_cb(void *arg, const struct narf_str *m)
{
	struct sscan *ss = arg;

	if (ss->err != 0 ||
	    (ss->pat != NULL &&
	     !narf_glob_match(ss->pat, ss->plen, (const char *)m->s, m->len,
	                      false)))
		return;
	ss->err = narf_resp_bulk(&ss->items, m->s, m->len);
	ss->n++;
}

/* SSCAN as Redis 7.0: the cursor is checked first, then the key (a missing
 * one answers an empty scan whatever the options), then the options. */
static int cmd_sscan(struct narf_engine *e,
                     struct narf_client *c,
                     int argc,
                     const char **argv,
                     const size_t *len,
                     struct narf_buf *out)
{
	struct sscan ss = {.pat = NULL};
	struct narf_coll s;
	unsigned long long cursor;
	struct narf_scan_opts opts;
	long long count;
	int rv;

	if (narf_parse_scan_cursor(argv[2], len[2], &cursor) != 0)
		return narf_resp_error(out, "ERR invalid cursor");
	rv = read_set(e, argv, len, &s, out);
	if (rv < 0)
		return 0;
	if (rv == 0)
		return narf_reply_scan(out, 0, 0, NULL);
	if (narf_parse_scan_opts(argc, argv, len, &opts, out) != 0)
		return 0;
	count = opts.count;
	ss.pat = opts.pat;
	ss.plen = opts.plen;
	narf_buf_init(&ss.items);
	cursor = narf_set_scan(&s, cursor, (unsigned)count, sscan_cb, &ss);
	rv = ss.err;
	if (rv == 0)
		rv = narf_reply_scan(out, cursor, ss.n, &ss.items);
	narf_buf_close(&ss.items);
	return rv;
}

#define W NARF_CMD_WRITE
#define R NARF_CMD_READONLY
#define F NARF_CMD_FAST
const struct narf_command narf_set_commands[] = {
        {"sadd", cmd_sadd, -3, W | NARF_CMD_DENYOOM | F | NARF_CMD_MEMBER, 1, 1,
         1},
        {"srem", cmd_srem, -3, W | F | NARF_CMD_MEMBER, 1, 1, 1},
        {"sismember", cmd_sismember, 3, R | F | NARF_CMD_MEMBER, 1, 1, 1},
        {"smismember", cmd_smismember, -3, R | F | NARF_CMD_MEMBER, 1, 1, 1},
        {"scard", cmd_scard, 2, R | F, 1, 1, 1},
        {"spop", cmd_spop, -2, W | F, 1, 1, 1},
        {"srandmember", cmd_srandmember, -2, R, 1, 1, 1},
        {"smove", cmd_smove, 4, W | F, 1, 2, 1},
        {"sscan", cmd_sscan, -3, R, 1, 1, 1},
        {NULL, NULL, 0, 0, 0, 0, 0},
};
