/*
 * The hash family with Redis 7.0's replies and errors: HSET HMSET HSETNX
 * HGET HMGET HDEL HEXISTS HLEN HSTRLEN HKEYS HVALS HGETALL HINCRBY
 * HINCRBYFLOAT HRANDFIELD HSCAN. The encodings are common/coll_hash.h's.
 *
 * Writes open the key through narf_store_coll_open() (type check, memory
 * check, creation) and close it, which deletes a hash left empty. Reads
 * look the key up and check its type. In a cluster every write sends its
 * effect to the slot's replicas (NARF.HSET / NARF.HDEL with the hash's new
 * field count, narf_engine_effect; the replica side is cmd_effect.c): what
 * changed, never the whole hash, and HINCRBY* send the value they computed.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/coll_hash.h"
#include "common/rng.h"
#include "engine.h"
#include "reply.h"

/* Per field stored, on top of its bytes: the memory check's estimate. */
#define FIELD_OVERHEAD 16

static int reply_store_error(struct narf_buf *out, int rv)
{
	return narf_reply_store_error(out, rv);
}

/* Open argv[1] as a hash for a write (created when create); -1 after an
 * error reply. */
static int open_hash(struct narf_engine *e,
                     const char **argv,
                     const size_t *len,
                     size_t grow,
                     bool create,
                     struct narf_cref *r,
                     struct narf_buf *out)
{
	return narf_coll_open_write(e, argv[1], len[1], NARF_TYPE_HASH, grow,
	                            create, r, out);
}

static void close_hash(struct narf_engine *e, struct narf_cref *r)
{
	narf_store_coll_close(e->store, r, narf_engine_now(e));
}

/* Close r and send op's effect (args: what the replica applies) unless
 * the hash is gone (its delete went out with the close). */
static void close_send(struct narf_engine *e,
                       struct narf_cref *r,
                       const char *op,
                       const char **argv,
                       const size_t *len,
                       int n,
                       const char *const *args,
                       const size_t *lens)
{
	uint64_t count = narf_hash_len(&r->c);
	unsigned slot = r->slot;

	close_hash(e, r);
	if (count > 0 && n > 0)
		narf_engine_effect(e, slot, op, argv[1], len[1],
		                   (long long)count, n, args, lens);
}

/* The hash at argv[1] for a read: *c filled, true when it exists; -1 after
 * a WRONGTYPE reply. */
static int read_hash(struct narf_engine *e,
                     const char **argv,
                     const size_t *len,
                     struct narf_coll *c,
                     struct narf_buf *out)
{
	return narf_lookup_coll(e, argv[1], len[1], NARF_TYPE_HASH, c, out);
}

static int cmd_hset(struct narf_engine *e,
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

	if (argc % 2 != 0)
		return narf_reply_wrong_arity(
		        out, argv[0][1] == 'm' || argv[0][1] == 'M' ? "hmset"
		                                                    : "hset");
	for (int i = 2; i < argc; i++)
		grow += len[i] + FIELD_OVERHEAD / 2;
	if (open_hash(e, argv, len, grow, true, &r, out) != 0)
		return 0;
	int i;

	for (i = 2; i < argc; i += 2) {
		int a;

		rv = narf_hash_set(ctx, &r.c, argv[i], len[i], argv[i + 1],
		                   len[i + 1], 0, &a);
		if (rv != 0)
			break;
		added += a;
	}
	/* what was applied goes to the replicas, even when a later pair
	 * failed */
	close_send(e, &r, "NARF.HSET", argv, len, i - 2, argv + 2, len + 2);
	if (rv != 0)
		return reply_store_error(out, rv);
	if (argv[0][1] == 'm' || argv[0][1] == 'M')
		return narf_resp_simple(out, "OK");
	return narf_resp_int(out, added);
}

static int cmd_hsetnx(struct narf_engine *e,
                      struct narf_client *c,
                      int argc,
                      const char **argv,
                      const size_t *len,
                      struct narf_buf *out)
{
	struct narf_cref r;
	int added = 0, rv;

	if (open_hash(e, argv, len, len[2] + len[3] + FIELD_OVERHEAD, true, &r,
	              out) != 0)
		return 0;
	rv = narf_hash_set(narf_store_coll_ctx(e->store), &r.c, argv[2], len[2],
	                   argv[3], len[3], NARF_HASH_NX, &added);
	close_send(e, &r, "NARF.HSET", argv, len, added ? 2 : 0, argv + 2,
	           len + 2);
	if (rv != 0)
		return reply_store_error(out, rv);
	return narf_resp_int(out, added);
}

static int cmd_hget(struct narf_engine *e,
                    struct narf_client *c,
                    int argc,
                    const char **argv,
                    const size_t *len,
                    struct narf_buf *out)
{
	struct narf_coll h;
	struct narf_str v;
	int rv = read_hash(e, argv, len, &h, out);

	if (rv < 0)
		return 0;
	if (rv == 0 || !narf_hash_get(&h, argv[2], len[2], &v))
		return narf_reply_null(c, out);
	return narf_resp_bulk(out, v.s, v.len);
}

static int cmd_hmget(struct narf_engine *e,
                     struct narf_client *c,
                     int argc,
                     const char **argv,
                     const size_t *len,
                     struct narf_buf *out)
{
	struct narf_coll h;
	struct narf_str v;
	int rv = read_hash(e, argv, len, &h, out);

	if (rv < 0)
		return 0;
	narf_resp_array(out, argc - 2);
	for (int i = 2; i < argc; i++) {
		if (rv == 1 && narf_hash_get(&h, argv[i], len[i], &v))
			narf_resp_bulk(out, v.s, v.len);
		else
			narf_reply_null(c, out);
	}
	return 0;
}

static int cmd_hdel(struct narf_engine *e,
                    struct narf_client *c,
                    int argc,
                    const char **argv,
                    const size_t *len,
                    struct narf_buf *out)
{
	const struct narf_coll_ctx *ctx = narf_store_coll_ctx(e->store);
	struct narf_cref r;
	long long n = 0;

	if (open_hash(e, argv, len, 0, false, &r, out) != 0)
		return 0;
	if (r.e == NULL)
		return narf_resp_int(out, 0);
	for (int i = 2; i < argc && narf_hash_len(&r.c) > 0; i++)
		n += narf_hash_del(ctx, &r.c, argv[i], len[i]);
	close_send(e, &r, "NARF.HDEL", argv, len, n > 0 ? argc - 2 : 0,
	           argv + 2, len + 2);
	return narf_resp_int(out, n);
}

static int cmd_hexists(struct narf_engine *e,
                       struct narf_client *c,
                       int argc,
                       const char **argv,
                       const size_t *len,
                       struct narf_buf *out)
{
	struct narf_coll h;
	struct narf_str v;
	int rv = read_hash(e, argv, len, &h, out);

	if (rv < 0)
		return 0;
	return narf_resp_int(out,
	                     rv == 1 && narf_hash_get(&h, argv[2], len[2], &v));
}

static int cmd_hlen(struct narf_engine *e,
                    struct narf_client *c,
                    int argc,
                    const char **argv,
                    const size_t *len,
                    struct narf_buf *out)
{
	struct narf_coll h;
	int rv = read_hash(e, argv, len, &h, out);

	if (rv < 0)
		return 0;
	return narf_resp_int(out, rv == 1 ? (long long)narf_hash_len(&h) : 0);
}

static int cmd_hstrlen(struct narf_engine *e,
                       struct narf_client *c,
                       int argc,
                       const char **argv,
                       const size_t *len,
                       struct narf_buf *out)
{
	struct narf_coll h;
	struct narf_str v;
	int rv = read_hash(e, argv, len, &h, out);

	if (rv < 0)
		return 0;
	if (rv == 0 || !narf_hash_get(&h, argv[2], len[2], &v))
		return narf_resp_int(out, 0);
	return narf_resp_int(out, (long long)v.len);
}

enum { WANT_KEYS = 1, WANT_VALS = 2 };

/* HKEYS, HVALS, HGETALL. */
static int reply_all(struct narf_engine *e,
                     struct narf_client *c,
                     const char **argv,
                     const size_t *len,
                     int want,
                     struct narf_buf *out)
{
	struct narf_coll h;
	struct narf_hash_iter it;
	struct narf_str f, v;
	int rv = read_hash(e, argv, len, &h, out);
	long long n;

	if (rv < 0)
		return 0;
	n = rv == 1 ? (long long)narf_hash_len(&h) : 0;
	if (want == (WANT_KEYS | WANT_VALS))
		narf_reply_map(c, out, n);
	else
		narf_resp_array(out, n);
	if (n == 0)
		return 0;
	narf_hash_iter_init(&it, &h);
	while (narf_hash_iter_next(&it, &f, &v)) {
		if (want & WANT_KEYS)
			narf_resp_bulk(out, f.s, f.len);
		if (want & WANT_VALS)
			narf_resp_bulk(out, v.s, v.len);
	}
	narf_hash_iter_close(&it);
	return 0;
}

static int cmd_hkeys(struct narf_engine *e,
                     struct narf_client *c,
                     int argc,
                     const char **argv,
                     const size_t *len,
                     struct narf_buf *out)
{
	return reply_all(e, c, argv, len, WANT_KEYS, out);
}

static int cmd_hvals(struct narf_engine *e,
                     struct narf_client *c,
                     int argc,
                     const char **argv,
                     const size_t *len,
                     struct narf_buf *out)
{
	return reply_all(e, c, argv, len, WANT_VALS, out);
}

static int cmd_hgetall(struct narf_engine *e,
                       struct narf_client *c,
                       int argc,
                       const char **argv,
                       const size_t *len,
                       struct narf_buf *out)
{
	return reply_all(e, c, argv, len, WANT_KEYS | WANT_VALS, out);
}

static int cmd_hincrby(struct narf_engine *e,
                       struct narf_client *c,
                       int argc,
                       const char **argv,
                       const size_t *len,
                       struct narf_buf *out)
{
	const struct narf_coll_ctx *ctx = narf_store_coll_ctx(e->store);
	struct narf_cref r;
	struct narf_str v;
	long long by, cur = 0;
	char num[24];
	int n, rv;

	if (narf_arg_ll(out, argv[3], len[3], &by) != 0)
		return 0;
	if (open_hash(e, argv, len, len[2] + 24 + FIELD_OVERHEAD, true, &r,
	              out) != 0)
		return 0;
	if (narf_hash_get(&r.c, argv[2], len[2], &v) &&
	    !narf_str_to_ll((const char *)v.s, v.len, &cur)) {
		close_hash(e, &r);
		return narf_resp_error(out, "ERR hash value is not an integer");
	}
	if ((by < 0 && cur < LLONG_MIN - by) ||
	    (by > 0 && cur > LLONG_MAX - by)) {
		close_hash(e, &r);
		return narf_resp_error(out,
		                       "ERR increment or decrement would "
		                       "overflow");
	}
	cur += by;
	n = snprintf(num, sizeof(num), "%lld", cur);
	rv = narf_hash_set(ctx, &r.c, argv[2], len[2], num, (size_t)n, 0, NULL);
	{
		const char *fx[] = {argv[2], num};
		size_t fxlen[] = {len[2], (size_t)n};

		close_send(e, &r, "NARF.HSET", argv, len, rv == 0 ? 2 : 0, fx,
		           fxlen);
	}
	if (rv != 0)
		return reply_store_error(out, rv);
	return narf_resp_int(out, cur);
}

static int cmd_hincrbyfloat(struct narf_engine *e,
                            struct narf_client *c,
                            int argc,
                            const char **argv,
                            const size_t *len,
                            struct narf_buf *out)
{
	const struct narf_coll_ctx *ctx = narf_store_coll_ctx(e->store);
	struct narf_cref r;
	struct narf_str v;
	long double by, cur = 0;
	struct narf_buf num;
	int rv;

	if (!narf_str_to_ld(argv[3], len[3], &by))
		return narf_resp_error(out, "ERR value is not a valid float");
	if (isnan(by) || isinf(by))
		return narf_resp_error(out, "ERR value is NaN or Infinity");
	if (open_hash(e, argv, len, len[2] + 48 + FIELD_OVERHEAD, true, &r,
	              out) != 0)
		return 0;
	if (narf_hash_get(&r.c, argv[2], len[2], &v) &&
	    !narf_str_to_ld((const char *)v.s, v.len, &cur)) {
		close_hash(e, &r);
		return narf_resp_error(out, "ERR hash value is not a float");
	}
	cur += by;
	if (isnan(cur) || isinf(cur)) {
		close_hash(e, &r);
		return narf_resp_error(out,
		                       "ERR increment would produce NaN "
		                       "or Infinity");
	}
	/* Encode once as a bulk (INCRBYFLOAT's digits), store those. */
	narf_buf_init(&num);
	rv = narf_resp_bulk_double(&num, cur);
	if (rv == 0) {
		const char *digits = memchr(num.data, '\n', num.len) + 1;
		size_t dlen = num.len - (size_t)(digits - num.data) - 2;

		rv = narf_hash_set(ctx, &r.c, argv[2], len[2], digits, dlen, 0,
		                   NULL);
		if (rv == 0) {
			const char *fx[] = {argv[2], digits};
			size_t fxlen[] = {len[2], dlen};

			close_send(e, &r, "NARF.HSET", argv, len, 2, fx, fxlen);
		}
	}
	if (r.e != NULL)
		close_hash(e, &r);
	if (rv == 0)
		rv = narf_buf_append(out, num.data, num.len);
	else
		rv = reply_store_error(out, rv);
	narf_buf_close(&num);
	return rv;
}

/* HRANDFIELD key count [WITHVALUES]: count > 0 distinct fields (at most
 * all of them), count < 0 -count fields drawn with repeats. */
static int randfield_count(struct narf_engine *e,
                           struct narf_client *c,
                           struct narf_coll *h,
                           long long count,
                           bool withvalues,
                           struct narf_buf *out)
{
	const struct narf_coll_ctx *ctx = narf_store_coll_ctx(e->store);
	uint64_t size = narf_hash_len(h);
	struct narf_str f, v;

	if (count < 0) {
		uint64_t n = (uint64_t)-count;

		narf_resp_array(
		        out,
		        (long long)(withvalues && c->resp != 3 ? 2 * n : n));
		for (uint64_t i = 0; i < n; i++) {
			narf_hash_random(ctx, h, &f, &v);
			if (withvalues && c->resp == 3)
				narf_resp_array(out, 2);
			narf_resp_bulk(out, f.s, f.len);
			if (withvalues)
				narf_resp_bulk(out, v.s, v.len);
		}
		return 0;
	}
	uint64_t want = (uint64_t)count < size ? (uint64_t)count : size;
	struct narf_hash_iter it;
	uint64_t left = size, need = want;

	/* Selection sampling (Knuth's algorithm S): each field is taken
	 * with probability need/left, which yields exactly `want` distinct
	 * fields in one walk. */
	narf_resp_array(
	        out, (long long)(withvalues && c->resp != 3 ? 2 * want : want));
	narf_hash_iter_init(&it, h);
	while (need > 0 && narf_hash_iter_next(&it, &f, &v)) {
		if (narf_rng_next(ctx->rng) % left < need) {
			if (withvalues && c->resp == 3)
				narf_resp_array(out, 2);
			narf_resp_bulk(out, f.s, f.len);
			if (withvalues)
				narf_resp_bulk(out, v.s, v.len);
			need--;
		}
		left--;
	}
	narf_hash_iter_close(&it);
	return 0;
}

static int cmd_hrandfield(struct narf_engine *e,
                          struct narf_client *c,
                          int argc,
                          const char **argv,
                          const size_t *len,
                          struct narf_buf *out)
{
	struct narf_coll h;
	struct narf_str f, v;
	long long count;
	bool withvalues = false;
	int rv;

	if (argc > 4)
		return narf_reply_syntax(out);
	if (argc >= 3) {
		if (narf_arg_ll(out, argv[2], len[2], &count) != 0)
			return 0;
		if (argc == 4) {
			if (!narf_arg_is(argv[3], len[3], "withvalues"))
				return narf_reply_syntax(out);
			withvalues = true;
		}
		if (count == LLONG_MIN)
			return narf_resp_error(
			        out,
			        "ERR value is out of range, value must between "
			        "-9223372036854775807 and 9223372036854775807");
		if (count < -LLONG_MAX / 2 && withvalues)
			return narf_resp_error(out,
			                       "ERR value is out of range");
	}
	rv = read_hash(e, argv, len, &h, out);
	if (rv < 0)
		return 0;
	if (argc >= 3) {
		if (rv == 0 || count == 0)
			return narf_resp_array(out, 0);
		return randfield_count(e, c, &h, count, withvalues, out);
	}
	if (rv == 0)
		return narf_reply_null(c, out);
	narf_hash_random(narf_store_coll_ctx(e->store), &h, &f, &v);
	return narf_resp_bulk(out, f.s, f.len);
}

struct hscan {
	struct narf_buf items;
	const char *pat;
	size_t plen;
	long long n;
	int err;
};

static void hscan_cb(void *arg,
                     const struct narf_str *f,
                     const struct narf_str *v)
{
	struct hscan *hs = arg;

	if (hs->err != 0 ||
	    (hs->pat != NULL &&
	     !narf_glob_match(hs->pat, hs->plen, (const char *)f->s, f->len,
	                      false)))
		return;
	hs->err = narf_resp_bulk(&hs->items, f->s, f->len);
	if (hs->err == 0)
		hs->err = narf_resp_bulk(&hs->items, v->s, v->len);
	hs->n += 2;
}

static int cmd_hscan(struct narf_engine *e,
                     struct narf_client *c,
                     int argc,
                     const char **argv,
                     const size_t *len,
                     struct narf_buf *out)
{
	struct hscan hs = {.pat = NULL};
	struct narf_coll h;
	unsigned long long cursor;
	struct narf_scan_opts opts;
	long long count;
	int rv;

	if (narf_parse_scan_cursor(argv[2], len[2], &cursor) != 0)
		return narf_resp_error(out, "ERR invalid cursor");
	/* Redis 7.0's order: the cursor, then the key (a missing one is an
	 * empty scan whatever the options), then the options. */
	rv = read_hash(e, argv, len, &h, out);
	if (rv < 0)
		return 0;
	if (rv == 0)
		return narf_reply_scan(out, 0, 0, NULL);
	if (narf_parse_scan_opts(argc, argv, len, &opts, out) != 0)
		return 0;
	count = opts.count;
	hs.pat = opts.pat;
	hs.plen = opts.plen;
	narf_buf_init(&hs.items);
	if (rv == 1)
		cursor = narf_hash_scan(&h, cursor, (unsigned)count, hscan_cb,
		                        &hs);
	else
		cursor = 0;
	rv = hs.err;
	if (rv == 0)
		rv = narf_reply_scan(out, cursor, hs.n, &hs.items);
	narf_buf_close(&hs.items);
	return rv;
}

#define W (NARF_CMD_WRITE | NARF_CMD_DENYOOM)
#define R NARF_CMD_READONLY
#define F NARF_CMD_FAST
const struct narf_command narf_hash_commands[] = {
        {"hset", cmd_hset, -4, W | F | NARF_CMD_MEMBER, 1, 1, 1},
        {"hmset", cmd_hset, -4, W | F | NARF_CMD_MEMBER, 1, 1, 1},
        {"hsetnx", cmd_hsetnx, 4, W | F | NARF_CMD_MEMBER, 1, 1, 1},
        {"hget", cmd_hget, 3, R | F | NARF_CMD_MEMBER, 1, 1, 1},
        {"hmget", cmd_hmget, -3, R | F | NARF_CMD_MEMBER, 1, 1, 1},
        {"hdel", cmd_hdel, -3, NARF_CMD_WRITE | F | NARF_CMD_MEMBER, 1, 1, 1},
        {"hexists", cmd_hexists, 3, R | F | NARF_CMD_MEMBER, 1, 1, 1},
        {"hlen", cmd_hlen, 2, R | F, 1, 1, 1},
        {"hstrlen", cmd_hstrlen, 3, R | F | NARF_CMD_MEMBER, 1, 1, 1},
        {"hkeys", cmd_hkeys, 2, R, 1, 1, 1},
        {"hvals", cmd_hvals, 2, R, 1, 1, 1},
        {"hgetall", cmd_hgetall, 2, R, 1, 1, 1},
        {"hincrby", cmd_hincrby, 4, W | F | NARF_CMD_MEMBER, 1, 1, 1},
        {"hincrbyfloat", cmd_hincrbyfloat, 4, W | F | NARF_CMD_MEMBER, 1, 1, 1},
        {"hrandfield", cmd_hrandfield, -2, R, 1, 1, 1},
        {"hscan", cmd_hscan, -3, R, 1, 1, 1},
        {NULL, NULL, 0, 0, 0, 0, 0},
};
