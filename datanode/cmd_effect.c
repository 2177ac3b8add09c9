/*
 * The replica's side of collection replication (docs/datatypes-plan.md,
 * section 3; docs/protocol.md): the effects a primary's collection commands
 * send, and the whole values of a sync.
 *
 *   NARF.HSET <epoch> <key> <count> <field> <value> [...]
 *   NARF.HDEL <epoch> <key> <count> <field> [...]
 *   NARF.SADD / NARF.SREM <epoch> <key> <count> <member> [...]
 *   NARF.ZADD <epoch> <key> <count> <score> <member> [...]  (scores set)
 *   NARF.ZREM <epoch> <key> <count> <member> [...]
 *   NARF.LPUSH / NARF.RPUSH <epoch> <key> <count> <element> [...]
 *   NARF.LPOP / NARF.RPOP <epoch> <key> <count> <n>
 *   NARF.LSET <epoch> <key> <count> <index> <element>
 *   NARF.LINSERT <epoch> <key> <count> BEFORE|AFTER <pivot> <element>
 *   NARF.LREM <epoch> <key> <count> <lrem count> <element>
 *   NARF.LTRIM <epoch> <key> <count> <start> <stop>
 *   NARF.LMOVE <epoch> <key> <count> LEFT|RIGHT LEFT|RIGHT (onto itself)
 *   NARF.CLOAD <epoch> <key> <type> <pxat> <count> <payload...>
 *   NARF.CAPPEND <epoch> <key> <type> <count> <payload...>  (CLOAD's rest)
 *   NARF.PEXPIREAT <epoch> <key> <pxat>
 *
 * Every message passes the same fence as NARF.SET (slot epoch, newest link
 * of its sender). <count> is the element count the key must have once the
 * message is applied (-1: not checked): a replica whose copy disagrees
 * answers -NOTAPPLIED ... diverged, the primary fails the link and the slot
 * is synced again, so a bug costs a resync, never a silent drift. The
 * handlers call the same coll_*.c functions as the primary's commands, so
 * an effect means here what it meant there.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/coll.h"
#include "common/coll_hash.h"
#include "common/coll_list.h"
#include "common/coll_set.h"
#include "cmd_zset.h"
#include "common/coll_zset.h"
#include "engine.h"
#include "repl.h"

typedef int (*apply_fn)(const struct narf_coll_ctx *ctx,
                        struct narf_coll *c,
                        int argc,
                        const char *const *argv,
                        const size_t *argvlen);

static int diverged(struct narf_buf *out,
                    unsigned slot,
                    const char *key,
                    size_t klen,
                    const char *why)
{
	return narf_resp_errorf(out,
	                        "NOTAPPLIED slot %u: diverged (key %.*s: %s)",
	                        slot, (int)(klen > 64 ? 64 : klen), key, why);
}

static bool parse_count(const char *s, size_t n, long long *v)
{
	return narf_str_to_ll(s, n, v) && *v >= -1;
}

static int hash_del(const struct narf_coll_ctx *ctx,
                    struct narf_coll *c,
                    int argc,
                    const char *const *argv,
                    const size_t *argvlen)
{
	for (int i = 0; i < argc && narf_coll_len(c) > 0; i++)
		narf_hash_del(ctx, c, argv[i], argvlen[i]);
	return 0;
}

/* --- sets --- */

static int set_add(const struct narf_coll_ctx *ctx,
                   struct narf_coll *c,
                   int argc,
                   const char *const *argv,
                   const size_t *argvlen)
{
	int rv = 0;

	for (int i = 0; i < argc && rv == 0; i++)
		rv = narf_set_add(ctx, c, argv[i], argvlen[i], NULL);
	return rv;
}

static int set_rem(const struct narf_coll_ctx *ctx,
                   struct narf_coll *c,
                   int argc,
                   const char *const *argv,
                   const size_t *argvlen)
{
	for (int i = 0; i < argc && narf_coll_len(c) > 0; i++)
		narf_set_remove(ctx, c, argv[i], argvlen[i]);
	return 0;
}

/* --- sorted sets: the scores the primary computed, set as they are --- */

static int zset_add(const struct narf_coll_ctx *ctx,
                    struct narf_coll *c,
                    int argc,
                    const char *const *argv,
                    const size_t *argvlen)
{
	int rv = 0;

	if (argc % 2 != 0)
		return NARF_EPROTO;
	for (int i = 0; i < argc && rv == 0; i += 2) {
		enum narf_zadd_result res;
		double score;

		/* ZADD's own parser (strtod: %.17g comes back exact) */
		if (!narf_zcmd_parse_score(argv[i], argvlen[i], &score))
			return NARF_EPROTO;
		rv = narf_zset_add(ctx, c, score, argv[i + 1], argvlen[i + 1],
		                   0, &res, NULL);
	}
	return rv == NARF_EINVAL ? NARF_EPROTO : rv;
}

static int zset_rem(const struct narf_coll_ctx *ctx,
                    struct narf_coll *c,
                    int argc,
                    const char *const *argv,
                    const size_t *argvlen)
{
	for (int i = 0; i < argc && narf_coll_len(c) > 0; i++)
		narf_zset_del(ctx, c, argv[i], argvlen[i]);
	return 0;
}

/* --- lists: the primary's command arguments, replayed with the same
 * coll_list.c edits (the lists are equal, as the counts prove) --- */

static bool arg_ll(const char *s, size_t n, long long *v)
{
	return narf_str_to_ll(s, n, v);
}

static bool arg_end(const char *s, size_t n, enum narf_ql_end *end)
{
	if (narf_arg_is(s, n, "left"))
		*end = NARF_QL_HEAD;
	else if (narf_arg_is(s, n, "right"))
		*end = NARF_QL_TAIL;
	else
		return false;
	return true;
}

static int push_all(const struct narf_coll_ctx *ctx,
                    struct narf_coll *c,
                    enum narf_ql_end end,
                    int argc,
                    const char *const *argv,
                    const size_t *argvlen)
{
	int rv = 0;

	for (int i = 0; i < argc && rv == 0; i++)
		rv = narf_list_push(ctx, c, end, argv[i], argvlen[i]);
	return rv;
}

static int list_lpush(const struct narf_coll_ctx *ctx,
                      struct narf_coll *c,
                      int argc,
                      const char *const *argv,
                      const size_t *argvlen)
{
	return push_all(ctx, c, NARF_QL_HEAD, argc, argv, argvlen);
}

static int list_rpush(const struct narf_coll_ctx *ctx,
                      struct narf_coll *c,
                      int argc,
                      const char *const *argv,
                      const size_t *argvlen)
{
	return push_all(ctx, c, NARF_QL_TAIL, argc, argv, argvlen);
}

static int pop_n(struct narf_coll *c,
                 enum narf_ql_end end,
                 int argc,
                 const char *const *argv,
                 const size_t *argvlen)
{
	long long n;

	if (argc != 1 || !arg_ll(argv[0], argvlen[0], &n) || n < 0)
		return NARF_EPROTO;
	while (n-- > 0 && narf_list_len(c) > 0)
		narf_ql_pop(narf_list_ql(c), end, NULL, 0, NULL);
	return 0;
}

static int list_lpop(const struct narf_coll_ctx *ctx,
                     struct narf_coll *c,
                     int argc,
                     const char *const *argv,
                     const size_t *argvlen)
{
	(void)ctx;
	return pop_n(c, NARF_QL_HEAD, argc, argv, argvlen);
}

static int list_rpop(const struct narf_coll_ctx *ctx,
                     struct narf_coll *c,
                     int argc,
                     const char *const *argv,
                     const size_t *argvlen)
{
	(void)ctx;
	return pop_n(c, NARF_QL_TAIL, argc, argv, argvlen);
}

static int list_set(const struct narf_coll_ctx *ctx,
                    struct narf_coll *c,
                    int argc,
                    const char *const *argv,
                    const size_t *argvlen)
{
	long long index;

	(void)ctx;
	if (argc != 2 || !arg_ll(argv[0], argvlen[0], &index))
		return NARF_EPROTO;
	return narf_ql_set(narf_list_ql(c), index, argv[1], argvlen[1]);
}

static int list_insert(const struct narf_coll_ctx *ctx,
                       struct narf_coll *c,
                       int argc,
                       const char *const *argv,
                       const size_t *argvlen)
{
	enum narf_lp_where where;
	long long n;

	(void)ctx;
	if (argc != 3)
		return NARF_EPROTO;
	if (narf_arg_is(argv[0], argvlen[0], "before"))
		where = NARF_LP_BEFORE;
	else if (narf_arg_is(argv[0], argvlen[0], "after"))
		where = NARF_LP_AFTER;
	else
		return NARF_EPROTO;
	return narf_list_insert(c, where, argv[1], argvlen[1], argv[2],
	                        argvlen[2], &n);
}

static int list_rem(const struct narf_coll_ctx *ctx,
                    struct narf_coll *c,
                    int argc,
                    const char *const *argv,
                    const size_t *argvlen)
{
	long long count;

	(void)ctx;
	if (argc != 2 || !arg_ll(argv[0], argvlen[0], &count))
		return NARF_EPROTO;
	narf_list_rem(c, count, argv[1], argvlen[1]);
	return 0;
}

static int list_trim(const struct narf_coll_ctx *ctx,
                     struct narf_coll *c,
                     int argc,
                     const char *const *argv,
                     const size_t *argvlen)
{
	long long start, stop;

	(void)ctx;
	if (argc != 2 || !arg_ll(argv[0], argvlen[0], &start) ||
	    !arg_ll(argv[1], argvlen[1], &stop))
		return NARF_EPROTO;
	narf_list_trim(c, start, stop);
	return 0;
}

static int list_move(const struct narf_coll_ctx *ctx,
                     struct narf_coll *c,
                     int argc,
                     const char *const *argv,
                     const size_t *argvlen)
{
	enum narf_ql_end from, to;

	(void)ctx;
	if (argc != 2 || !arg_end(argv[0], argvlen[0], &from) ||
	    !arg_end(argv[1], argvlen[1], &to))
		return NARF_EPROTO;
	return narf_list_rotate(c, from, to);
}

/*
 * Apply argv[4..] to the collection at argv[2] with fn: create it when
 * create (an add), leave an absent key absent otherwise (a removal), and
 * check the count.
 */
static int apply(struct narf_engine *e,
                 struct narf_client *c,
                 int argc,
                 const char **argv,
                 const size_t *len,
                 struct narf_buf *out,
                 enum narf_type type,
                 bool create,
                 apply_fn fn)
{
	unsigned slot = narf_key_slot(argv[2], len[2]);
	const struct narf_coll_ctx *ctx = narf_store_coll_ctx(e->store);
	struct narf_cref r;
	long long count;
	size_t grow = 0;
	uint64_t have = 0;
	int rv;

	if (narf_peer_fence(e, c, slot, argv[1], len[1], out))
		return 0;
	if (!parse_count(argv[3], len[3], &count))
		return narf_resp_error(out, "ERR bad count");
	for (int i = 4; i < argc; i++)
		grow += len[i];
	narf_repl_applying(e->repl, true);
	rv = narf_store_coll_open(e->store, slot, argv[2], len[2], type, grow,
	                          create ? NARF_COLL_CREATE : 0,
	                          narf_engine_now(e), &r);
	if (rv == 0 && r.e != NULL) {
		rv = fn(ctx, &r.c, argc - 4, argv + 4, len + 4);
		have = narf_coll_len(&r.c);
		narf_store_coll_close(e->store, &r, narf_engine_now(e));
	}
	narf_repl_applying(e->repl, false);
	if (rv == NARF_EWRONGTYPE)
		return diverged(out, slot, argv[2], len[2], "another type");
	if (rv == NARF_EPROTO)
		return narf_resp_errorf(out, "ERR malformed effect (%.*s)",
		                        (int)len[0], argv[0]);
	if (rv != 0)
		return narf_reply_not_applied(out, slot, rv);
	if (count >= 0 && (uint64_t)count != have)
		return diverged(out, slot, argv[2], len[2], "count");
	return narf_resp_simple(out, "OK");
}

static int cmd_nhset(struct narf_engine *e,
                     struct narf_client *c,
                     int argc,
                     const char **argv,
                     const size_t *len,
                     struct narf_buf *out)
{
	if (argc % 2 != 0)
		return narf_resp_errorf(out, "ERR malformed effect (%.*s)",
		                        (int)len[0], argv[0]);
	return apply(e, c, argc, argv, len, out, NARF_TYPE_HASH, true,
	             narf_coll_load);
}

static int cmd_nhdel(struct narf_engine *e,
                     struct narf_client *c,
                     int argc,
                     const char **argv,
                     const size_t *len,
                     struct narf_buf *out)
{
	return apply(e, c, argc, argv, len, out, NARF_TYPE_HASH, false,
	             hash_del);
}

#define LIST_EFFECT(name, create, fn)                                    \
	static int name(struct narf_engine *e, struct narf_client *c,    \
	                int argc, const char **argv, const size_t *len,  \
	                struct narf_buf *out)                            \
	{                                                                \
		return apply(e, c, argc, argv, len, out, NARF_TYPE_LIST, \
		             create, fn);                                \
	}
#define SET_EFFECT(name, create, fn)                                    \
	static int name(struct narf_engine *e, struct narf_client *c,   \
	                int argc, const char **argv, const size_t *len, \
	                struct narf_buf *out)                           \
	{                                                               \
		return apply(e, c, argc, argv, len, out, NARF_TYPE_SET, \
		             create, fn);                               \
	}
#define ZSET_EFFECT(name, create, fn)                                    \
	static int name(struct narf_engine *e, struct narf_client *c,    \
	                int argc, const char **argv, const size_t *len,  \
	                struct narf_buf *out)                            \
	{                                                                \
		return apply(e, c, argc, argv, len, out, NARF_TYPE_ZSET, \
		             create, fn);                                \
	}
ZSET_EFFECT(cmd_nzadd, true, zset_add)
ZSET_EFFECT(cmd_nzrem, false, zset_rem)
SET_EFFECT(cmd_nsadd, true, set_add)
SET_EFFECT(cmd_nsrem, false, set_rem)
LIST_EFFECT(cmd_nlpush, true, list_lpush)
LIST_EFFECT(cmd_nrpush, true, list_rpush)
LIST_EFFECT(cmd_nlpop, false, list_lpop)
LIST_EFFECT(cmd_nrpop, false, list_rpop)
LIST_EFFECT(cmd_nlset, false, list_set)
LIST_EFFECT(cmd_nlinsert, false, list_insert)
LIST_EFFECT(cmd_nlrem, false, list_rem)
LIST_EFFECT(cmd_nltrim, false, list_trim)
LIST_EFFECT(cmd_nlmove, false, list_move)

/* NARF.CLOAD <epoch> <key> <type> <pxat> <count> <payload...>: the key's
 * whole value, replacing what the replica had. */
static int cmd_ncload(struct narf_engine *e,
                      struct narf_client *c,
                      int argc,
                      const char **argv,
                      const size_t *len,
                      struct narf_buf *out)
{
	unsigned slot = narf_key_slot(argv[2], len[2]);
	const struct narf_coll_ctx *ctx = narf_store_coll_ctx(e->store);
	int64_t now = narf_engine_now(e);
	int type = narf_type_by_name(argv[3], len[3]);
	struct narf_cref r;
	long long pxat, count;
	size_t grow = 0;
	uint64_t have = 0;
	int rv;

	if (narf_peer_fence(e, c, slot, argv[1], len[1], out))
		return 0;
	if (type <= NARF_TYPE_STRING)
		return narf_resp_error(out, "ERR bad type");
	if (!narf_str_to_ll(argv[4], len[4], &pxat) || pxat < 0)
		return narf_resp_error(out, "ERR bad expiry");
	if (!parse_count(argv[5], len[5], &count))
		return narf_resp_error(out, "ERR bad count");
	for (int i = 6; i < argc; i++)
		grow += len[i];
	narf_repl_applying(e->repl, true);
	narf_store_del(e->store, slot, argv[2], len[2], now);
	rv = narf_store_coll_open(e->store, slot, argv[2], len[2],
	                          (enum narf_type)type, grow, NARF_COLL_CREATE,
	                          now, &r);
	if (rv == 0) {
		if (pxat > 0) {
			struct narf_entry *en = narf_store_set_expire(
			        e->store, slot, r.e, (int64_t)pxat);

			if (en == NULL)
				rv = NARF_ENOMEM;
			else
				r.e = en;
		}
		if (rv == 0)
			rv = narf_coll_load(ctx, &r.c, argc - 6, argv + 6,
			                    len + 6);
		have = narf_coll_len(&r.c);
		narf_store_coll_close(e->store, &r, now);
	}
	narf_repl_applying(e->repl, false);
	if (rv == NARF_EPROTO)
		return narf_resp_errorf(out, "ERR malformed effect (%.*s)",
		                        (int)len[0], argv[0]);
	if (rv != 0)
		return narf_reply_not_applied(out, slot, rv);
	if (count >= 0 && (uint64_t)count != have)
		return diverged(out, slot, argv[2], len[2], "count");
	return narf_resp_simple(out, "OK");
}

/* NARF.CAPPEND <epoch> <key> <type> <count> <payload...>: the next slice
 * of a NARF.CLOAD (whose count was -1), added to the key it made (made
 * again when absent). */
static int cmd_ncappend(struct narf_engine *e,
                        struct narf_client *c,
                        int argc,
                        const char **argv,
                        const size_t *len,
                        struct narf_buf *out)
{
	int type = narf_type_by_name(argv[3], len[3]);
	const char *fixed[4];
	size_t fixedlen[4];
	const char **av;
	size_t *avlen;
	int rv;

	if (type <= NARF_TYPE_STRING)
		return narf_resp_error(out, "ERR bad type");
	/* as an effect: <op> <epoch> <key> <count> <payload...> */
	av = malloc(sizeof(*av) * (size_t)(argc - 1));
	avlen = malloc(sizeof(*avlen) * (size_t)(argc - 1));
	if (av == NULL || avlen == NULL) {
		free(av);
		free(avlen);
		return NARF_ENOMEM;
	}
	for (int i = 0; i < 3; i++) {
		fixed[i] = argv[i];
		fixedlen[i] = len[i];
	}
	fixed[3] = argv[4];
	fixedlen[3] = len[4];
	for (int i = 0; i < 4; i++) {
		av[i] = fixed[i];
		avlen[i] = fixedlen[i];
	}
	for (int i = 5; i < argc; i++) {
		av[i - 1] = argv[i];
		avlen[i - 1] = len[i];
	}
	/* Creating: a sync's transfer (repl_xfer.c) may append to a copy
	 * that live removals emptied here, and the replica deleted. */
	rv = apply(e, c, argc - 1, av, avlen, out, (enum narf_type)type, true,
	           narf_coll_load);
	free(av);
	free(avlen);
	return rv;
}

/* NARF.PEXPIREAT <epoch> <key> <pxat>: a collection's new expiry (0:
 * none), sent instead of its whole value when only the TTL changed. */
static int cmd_npexpireat(struct narf_engine *e,
                          struct narf_client *c,
                          int argc,
                          const char **argv,
                          const size_t *len,
                          struct narf_buf *out)
{
	unsigned slot = narf_key_slot(argv[2], len[2]);
	struct narf_entry *en;
	long long pxat;

	if (narf_peer_fence(e, c, slot, argv[1], len[1], out))
		return 0;
	if (!narf_str_to_ll(argv[3], len[3], &pxat) || pxat < 0)
		return narf_resp_error(out, "ERR bad expiry");
	en = narf_store_get(e->store, slot, argv[2], len[2], narf_engine_now(e),
	                    NARF_STORE_NOTOUCH | NARF_STORE_EXPIRED_TOO);
	if (en == NULL)
		return diverged(out, slot, argv[2], len[2], "absent");
	narf_repl_applying(e->repl, true);
	en = narf_store_set_expire(e->store, slot, en, (int64_t)pxat);
	narf_repl_applying(e->repl, false);
	if (en == NULL)
		return narf_reply_not_applied(out, slot, NARF_ENOMEM);
	return narf_resp_simple(out, "OK");
}

#define P NARF_CMD_PEER
const struct narf_command narf_effect_commands[] = {
        {"narf.hset", cmd_nhset, -6, P, 0, 0, 0},
        {"narf.hdel", cmd_nhdel, -5, P, 0, 0, 0},
        {"narf.sadd", cmd_nsadd, -5, P, 0, 0, 0},
        {"narf.zadd", cmd_nzadd, -6, P, 0, 0, 0},
        {"narf.zrem", cmd_nzrem, -5, P, 0, 0, 0},
        {"narf.srem", cmd_nsrem, -5, P, 0, 0, 0},
        {"narf.lpush", cmd_nlpush, -5, P, 0, 0, 0},
        {"narf.rpush", cmd_nrpush, -5, P, 0, 0, 0},
        {"narf.lpop", cmd_nlpop, 5, P, 0, 0, 0},
        {"narf.rpop", cmd_nrpop, 5, P, 0, 0, 0},
        {"narf.lset", cmd_nlset, 6, P, 0, 0, 0},
        {"narf.linsert", cmd_nlinsert, 7, P, 0, 0, 0},
        {"narf.lrem", cmd_nlrem, 6, P, 0, 0, 0},
        {"narf.ltrim", cmd_nltrim, 6, P, 0, 0, 0},
        {"narf.lmove", cmd_nlmove, 6, P, 0, 0, 0},
        {"narf.cload", cmd_ncload, -7, P, 0, 0, 0},
        {"narf.cappend", cmd_ncappend, -6, P, 0, 0, 0},
        {"narf.pexpireat", cmd_npexpireat, 4, P, 0, 0, 0},
        {NULL, NULL, 0, 0, 0, 0, 0},
};
