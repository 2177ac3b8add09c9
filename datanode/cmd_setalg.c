/*
 * Set algebra with Redis 7.0.15's replies, errors and orders: SINTER
 * SUNION SDIFF, SINTERSTORE SUNIONSTORE SDIFFSTORE, SINTERCARD, and
 * SMEMBERS, which 7.0 runs as a one-key SINTER (so in RESP3 it replies
 * with a set, `~n`, as the other three do).
 *
 * The algorithms are Redis's (t_set.c), because they decide what a client
 * can see: every key is looked up and type-checked before any work (a
 * WRONGTYPE anywhere wins over a missing key anywhere); SINTER walks the
 * smallest set and so replies in its order (an intset's ascending one);
 * SUNION and SDIFF build their result as a new set, member by member, and
 * reply in its order, which makes an all-integer result come out sorted;
 * SDIFF picks Redis's algorithm 1 (test each member of the first set
 * against the others) or 2 (add the first set, remove the others) by the
 * same estimate, and algorithm 2 can leave a small all-integer result a
 * hashtable, as in Redis, because it passed through a big one.
 *
 * The STORE forms build the result apart, then replace the destination
 * whatever it held (its old value is freed; no TTL survives) or delete it
 * when the result is empty, as Redis's setKey/dbDelete. A destination may
 * be one of the sources.
 */
#include <stdlib.h>
#include <string.h>

#include "cmd_set.h"
#include "reply.h"

/* The sets named by keys[0..n): s[i].p is NULL for a missing key. */
struct inputs {
	struct narf_coll *s; /* owned array */
	int n;
	int missing;
};

/* Look every key up for a read; 0, -1 after a WRONGTYPE reply, or
 * NARF_ENOMEM. The clock is held for the whole lookup, so a key named
 * twice cannot expire between its two lookups (freeing the first one's
 * set). */
static int gather(struct narf_engine *e,
                  const char **keys,
                  const size_t *klen,
                  int n,
                  struct inputs *in,
                  struct narf_buf *out)
{
	int64_t held = e->now_cached;
	int rv = 0;

	in->s = calloc((size_t)n, sizeof(*in->s));
	if (in->s == NULL)
		return NARF_ENOMEM;
	in->n = n;
	in->missing = 0;
	if (held == 0)
		e->now_cached = narf_engine_now(e);
	for (int i = 0; i < n && rv >= 0; i++) {
		rv = narf_lookup_coll(e, keys[i], klen[i], NARF_TYPE_SET,
		                      &in->s[i], out);
		if (rv == 0) {
			in->s[i] = narf_set_empty();
			in->missing++;
		}
	}
	e->now_cached = held;
	if (rv < 0) {
		free(in->s);
		return -1;
	}
	return 0;
}

static int by_card(const void *a, const void *b)
{
	uint64_t x = narf_set_len(a), y = narf_set_len(b);

	return x > y ? 1 : x < y ? -1 : 0;
}

static int by_card_desc(const void *a, const void *b)
{
	return by_card(b, a);
}

/* The STORE forms' end: dst takes res (whatever dst held is freed), or
 * goes when res is empty; replies with res's size. Takes res.
 *
 * The result is built (and counted in used_memory) before dst changes: if
 * it took the store past max-memory under noeviction, the command is
 * refused here with dst as it was (Redis, which checks only before a
 * command, would store it and be over its limit). The new entry's own
 * bytes are checked by narf_store_coll_open after the old value is gone,
 * so only a store within an entry's size of its limit can still lose dst
 * to an OOM. */
static int store_result(struct narf_engine *e,
                        const char *dst,
                        size_t dlen,
                        struct narf_coll *res,
                        struct narf_buf *out)
{
	const struct narf_coll_ctx *ctx = narf_store_coll_ctx(e->store);
	unsigned slot = narf_key_slot(dst, dlen);
	uint64_t n = narf_set_len(res);
	int64_t now = narf_engine_now(e);
	struct narf_cref r;
	int rv = 0;

	if (n > 0)
		rv = narf_store_make_room(e->store, 0, now);
	if (rv == 0) {
		narf_store_del(e->store, slot, dst, dlen, now);
		if (n > 0)
			rv = narf_store_coll_open(e->store, slot, dst, dlen,
			                          NARF_TYPE_SET, 0,
			                          NARF_COLL_CREATE, now, &r);
	}
	if (rv != 0 || n == 0) {
		narf_set_free(ctx, res);
		return rv != 0 ? narf_set_reply_error(out, rv)
		               : narf_resp_int(out, 0);
	}
	r.c.p = res->p;
	r.c.enc = res->enc;
	res->p = NULL; /* the entry's now */
	narf_store_coll_close(e->store, &r, now);
	/* built whole: its replicas get it whole (NARF.CLOAD) */
	narf_engine_send_value(e, slot, dst, dlen);
	return narf_resp_int(out, (long long)n);
}

enum inter_mode { INTER_REPLY, INTER_STORE, INTER_CARD };

/* SINTER (and SMEMBERS), SINTERSTORE into dst, SINTERCARD up to limit (0:
 * none), over keys[0..n). */
static int inter(struct narf_engine *e,
                 struct narf_client *c,
                 const char **keys,
                 const size_t *klen,
                 int n,
                 enum inter_mode mode,
                 const char *dst,
                 size_t dlen,
                 long long limit,
                 struct narf_buf *out)
{
	const struct narf_coll_ctx *ctx = narf_store_coll_ctx(e->store);
	struct narf_coll res = narf_set_empty();
	struct narf_set_iter it;
	struct narf_str m;
	struct narf_buf items;
	struct inputs in;
	long long card = 0;
	int rv = gather(e, keys, klen, n, &in, out);

	if (rv != 0)
		return rv < 0 ? 0 : rv;
	narf_buf_init(&items);
	if (in.missing == 0) {
		/* walk the smallest; test the others (a set named twice
		 * contains its own members) */
		qsort(in.s, (size_t)n, sizeof(*in.s), by_card);
		narf_set_iter_init(&it, &in.s[0]);
		while (rv == 0 && narf_set_iter_next(&it, &m)) {
			int j = 1;

			while (j < n &&
			       (in.s[j].p == in.s[0].p ||
			        narf_set_ismember(&in.s[j], m.s, m.len)))
				j++;
			if (j < n)
				continue;
			card++;
			if (mode == INTER_CARD) {
				if (limit > 0 && card >= limit)
					break;
			} else if (mode == INTER_STORE) {
				rv = narf_set_add(ctx, &res, m.s, m.len, NULL);
			} else {
				rv = narf_resp_bulk(&items, m.s, m.len);
			}
		}
		narf_set_iter_close(&it);
	}
	free(in.s);
	if (rv == 0) {
		if (mode == INTER_CARD) {
			rv = narf_resp_int(out, card);
		} else if (mode == INTER_STORE) {
			rv = store_result(e, dst, dlen, &res, out);
		} else {
			rv = narf_reply_set(c, out, card);
			if (rv == 0)
				rv = narf_buf_append(out, items.data,
				                     items.len);
		}
	}
	narf_set_free(ctx, &res);
	narf_buf_close(&items);
	return rv;
}

enum set_op { OP_UNION, OP_DIFF };

/* Add (or remove) every member of s to (from) res; stops at an error. */
static int add_all(const struct narf_coll_ctx *ctx,
                   struct narf_coll *res,
                   struct narf_coll *s,
                   bool remove)
{
	struct narf_set_iter it;
	struct narf_str m;
	int rv = 0;

	narf_set_iter_init(&it, s);
	while (rv == 0 && narf_set_iter_next(&it, &m)) {
		if (remove)
			narf_set_remove(ctx, res, m.s, m.len);
		else
			rv = narf_set_add(ctx, res, m.s, m.len, NULL);
	}
	narf_set_iter_close(&it);
	return rv;
}

/* SDIFF's algorithm 1: the members of s[0] in none of the others. */
static int diff_test_each(const struct narf_coll_ctx *ctx,
                          struct inputs *in,
                          struct narf_coll *res)
{
	struct narf_set_iter it;
	struct narf_str m;
	int rv = 0;

	narf_set_iter_init(&it, &in->s[0]);
	while (rv == 0 && narf_set_iter_next(&it, &m)) {
		int j = 1;

		while (j < in->n && (in->s[j].p == NULL ||
		                     !narf_set_ismember(&in->s[j], m.s, m.len)))
			j++;
		if (j == in->n)
			rv = narf_set_add(ctx, res, m.s, m.len, NULL);
	}
	narf_set_iter_close(&it);
	return rv;
}

/* SDIFF: Redis 7.0's choice between testing each member of the first set
 * against the others (algorithm 1, O(N*M), with a head start for its
 * better constants) and adding the first then removing the others
 * (algorithm 2, O(total)). */
static int diff(const struct narf_coll_ctx *ctx,
                struct inputs *in,
                struct narf_coll *res)
{
	uint64_t one = 0, two = 0;
	int rv = 0;

	for (int j = 1; j < in->n; j++)
		if (in->s[j].p == in->s[0].p)
			return 0; /* a set minus itself (or nothing) */
	if (in->s[0].p == NULL)
		return 0;
	for (int j = 0; j < in->n; j++) {
		if (in->s[j].p == NULL)
			continue;
		one += narf_set_len(&in->s[0]);
		two += narf_set_len(&in->s[j]);
	}
	if (one / 2 <= two) {
		/* likelier hits first: the others by decreasing size */
		qsort(in->s + 1, (size_t)in->n - 1, sizeof(*in->s),
		      by_card_desc);
		return diff_test_each(ctx, in, res);
	}
	for (int j = 0; j < in->n && rv == 0; j++) {
		if (in->s[j].p != NULL)
			rv = add_all(ctx, res, &in->s[j], j > 0);
		if (narf_set_len(res) == 0)
			break;
	}
	return rv;
}

/* SUNION, SDIFF over keys[0..n); SUNIONSTORE, SDIFFSTORE when dst. */
static int union_diff(struct narf_engine *e,
                      struct narf_client *c,
                      const char **keys,
                      const size_t *klen,
                      int n,
                      enum set_op op,
                      const char *dst,
                      size_t dlen,
                      struct narf_buf *out)
{
	const struct narf_coll_ctx *ctx = narf_store_coll_ctx(e->store);
	struct narf_coll res = narf_set_empty();
	struct inputs in;
	int rv = gather(e, keys, klen, n, &in, out);

	if (rv != 0)
		return rv < 0 ? 0 : rv;
	if (op == OP_UNION) {
		for (int j = 0; j < n && rv == 0; j++)
			rv = add_all(ctx, &res, &in.s[j], false);
	} else {
		rv = diff(ctx, &in, &res);
	}
	free(in.s);
	if (rv == 0 && dst != NULL)
		return store_result(e, dst, dlen, &res, out);
	if (rv == 0)
		rv = narf_set_reply_members(c, out, &res);
	narf_set_free(ctx, &res);
	return rv;
}

static int cmd_smembers(struct narf_engine *e,
                        struct narf_client *c,
                        int argc,
                        const char **argv,
                        const size_t *len,
                        struct narf_buf *out)
{
	return inter(e, c, argv + 1, len + 1, 1, INTER_REPLY, NULL, 0, 0, out);
}

static int cmd_sinter(struct narf_engine *e,
                      struct narf_client *c,
                      int argc,
                      const char **argv,
                      const size_t *len,
                      struct narf_buf *out)
{
	return inter(e, c, argv + 1, len + 1, argc - 1, INTER_REPLY, NULL, 0, 0,
	             out);
}

static int cmd_sinterstore(struct narf_engine *e,
                           struct narf_client *c,
                           int argc,
                           const char **argv,
                           const size_t *len,
                           struct narf_buf *out)
{
	return inter(e, c, argv + 2, len + 2, argc - 2, INTER_STORE, argv[1],
	             len[1], 0, out);
}

/* SINTERCARD numkeys key [key ...] [LIMIT limit], with 7.0.15's texts:
 * numkeys that is not a positive integer or exceeds the arguments, and a
 * LIMIT that is not a non-negative integer, each have their own. */
static int cmd_sintercard(struct narf_engine *e,
                          struct narf_client *c,
                          int argc,
                          const char **argv,
                          const size_t *len,
                          struct narf_buf *out)
{
	long long numkeys, limit = 0;

	if (!narf_str_to_ll(argv[1], len[1], &numkeys) || numkeys < 1)
		return narf_resp_error(out,
		                       "ERR numkeys should be greater than 0");
	if (numkeys > argc - 2)
		return narf_resp_error(out,
		                       "ERR Number of keys can't be greater "
		                       "than number of args");
	for (int i = 2 + (int)numkeys; i < argc; i++) {
		if (!narf_arg_is(argv[i], len[i], "limit") || i + 1 >= argc)
			return narf_reply_syntax(out);
		i++;
		if (!narf_str_to_ll(argv[i], len[i], &limit) || limit < 0)
			return narf_resp_error(out,
			                       "ERR LIMIT can't be negative");
	}
	return inter(e, c, argv + 2, len + 2, (int)numkeys, INTER_CARD, NULL, 0,
	             limit, out);
}

static int cmd_sunion(struct narf_engine *e,
                      struct narf_client *c,
                      int argc,
                      const char **argv,
                      const size_t *len,
                      struct narf_buf *out)
{
	return union_diff(e, c, argv + 1, len + 1, argc - 1, OP_UNION, NULL, 0,
	                  out);
}

static int cmd_sdiff(struct narf_engine *e,
                     struct narf_client *c,
                     int argc,
                     const char **argv,
                     const size_t *len,
                     struct narf_buf *out)
{
	return union_diff(e, c, argv + 1, len + 1, argc - 1, OP_DIFF, NULL, 0,
	                  out);
}

static int cmd_sunionstore(struct narf_engine *e,
                           struct narf_client *c,
                           int argc,
                           const char **argv,
                           const size_t *len,
                           struct narf_buf *out)
{
	return union_diff(e, c, argv + 2, len + 2, argc - 2, OP_UNION, argv[1],
	                  len[1], out);
}

static int cmd_sdiffstore(struct narf_engine *e,
                          struct narf_client *c,
                          int argc,
                          const char **argv,
                          const size_t *len,
                          struct narf_buf *out)
{
	return union_diff(e, c, argv + 2, len + 2, argc - 2, OP_DIFF, argv[1],
	                  len[1], out);
}

/* Every key is described for routing (one slot in a cluster, CROSSSLOT
 * otherwise): the STORE forms' destination is the first of keys 1..-1;
 * SINTERCARD counts its keys at argument 1 (COMMAND shows 0 0 0 for it,
 * as Redis: "movablekeys"). */
#define W (NARF_CMD_WRITE | NARF_CMD_DENYOOM)
#define R NARF_CMD_READONLY
const struct narf_command narf_setalg_commands[] = {
        {"smembers", cmd_smembers, 2, R, 1, 1, 1},
        {"sinter", cmd_sinter, -2, R, 1, -1, 1},
        {"sunion", cmd_sunion, -2, R, 1, -1, 1},
        {"sdiff", cmd_sdiff, -2, R, 1, -1, 1},
        {"sinterstore", cmd_sinterstore, -3, W, 1, -1, 1},
        {"sunionstore", cmd_sunionstore, -3, W, 1, -1, 1},
        {"sdiffstore", cmd_sdiffstore, -3, W, 1, -1, 1},
        {"sintercard", cmd_sintercard, -3, R | NARF_CMD_NUMKEYS_AT(1), 0, 0, 0},
        {NULL, NULL, 0, 0, 0, 0, 0},
};
