/*
 * The list family with Redis 7.0.15's replies and errors: LPUSH RPUSH
 * LPUSHX RPUSHX LPOP RPOP BLPOP BRPOP LLEN LRANGE LINDEX LSET LINSERT LREM
 * LTRIM here; LPOS LMOVE RPOPLPUSH LMPOP BLMOVE BRPOPLPUSH BLMPOP in
 * cmd_list_move.c.
 * Every list is a quicklist (common/coll_list.h); the commands walk and
 * change it through common/quicklist.h.
 *
 * As cmd_hash.c: writes open the key through narf_store_coll_open() (type
 * check, memory check, creation) and close it, which deletes a list left
 * empty by a pop, a trim or a removal. Reads look the key up and check its
 * type.
 *
 * Blocking pops (blocking.h) pop as their plain forms when they can; with
 * nothing to pop they return NARF_EXEC_BLOCK, and the server runs them
 * again when a push signals one of their keys (every push does; only a
 * slot with waiters pays more than a load). A pop that serves a blocked
 * client replicates as the NARF.LPOP/NARF.RPOP it performs.
 *
 * Arguments are checked in Redis's order, which differs between commands
 * (LRANGE parses its indexes before it looks the key up, LINDEX after):
 * the integration tests compare each error with redis-server's.
 */
#include <limits.h>
#include <string.h>

#include "cmd_list.h"
#include "common/coll_list.h"
#include "reply.h"

int narf_list_reply_error(struct narf_buf *out, int rv)
{
	return narf_reply_store_error(out, rv);
}

void narf_list_effect(struct narf_engine *e,
                      const struct narf_cref *r,
                      const char *key,
                      size_t klen,
                      const char *op,
                      int n,
                      const char *const *args,
                      const size_t *lens)
{
	uint64_t count = narf_list_len(&r->c);

	if (count > 0)
		narf_engine_effect(e, r->slot, op, key, klen, (long long)count,
		                   n, args, lens);
}

const char *narf_list_end_word(enum narf_ql_end end)
{
	return end == NARF_QL_HEAD ? "LEFT" : "RIGHT";
}

int narf_list_open(struct narf_engine *e,
                   const char *key,
                   size_t klen,
                   size_t grow,
                   bool create,
                   struct narf_cref *r,
                   struct narf_buf *out)
{
	return narf_coll_open_write(e, key, klen, NARF_TYPE_LIST, grow, create,
	                            r, out);
}

void narf_list_close(struct narf_engine *e, struct narf_cref *r)
{
	narf_store_coll_close(e->store, r, narf_engine_now(e));
}

int narf_list_reply_elem(struct narf_buf *out, const struct narf_ql_iter *it)
{
	char buf[NARF_LP_INTBUF];
	uint32_t n;
	const unsigned char *p = narf_ql_iter_str(it, buf, &n);

	return narf_resp_bulk(out, p, n);
}

int narf_list_pop_reply(struct narf_buf *out,
                        struct narf_ql *ql,
                        enum narf_ql_end end,
                        uint64_t n)
{
	struct narf_ql_iter it;
	int ok, rv;

	if (n > narf_ql_count(ql))
		n = narf_ql_count(ql);
	rv = narf_resp_array(out, (long long)n);
	ok = end == NARF_QL_HEAD ? narf_ql_first(ql, &it)
	                         : narf_ql_last(ql, &it);
	for (uint64_t i = 0; i < n && ok; i++, ok = narf_ql_iter_next(&it))
		rv |= narf_list_reply_elem(out, &it);
	narf_ql_del_range(ql, end == NARF_QL_HEAD ? 0 : -(int64_t)n, n);
	return rv != 0 ? NARF_ENOMEM : 0;
}

/* The list at key for a read: 1 with *c filled, 0 when absent, -1 after a
 * WRONGTYPE reply. */
static int read_list(struct narf_engine *e,
                     const char **argv,
                     const size_t *len,
                     struct narf_coll *c,
                     struct narf_buf *out)
{
	return narf_lookup_coll(e, argv[1], len[1], NARF_TYPE_LIST, c, out);
}

/* LPUSH, RPUSH, and with only_existing LPUSHX, RPUSHX: the list's length
 * after the pushes, 0 for a missing key under X. */
static int push(struct narf_engine *e,
                int argc,
                const char **argv,
                const size_t *len,
                enum narf_ql_end end,
                bool only_existing,
                struct narf_buf *out)
{
	const struct narf_coll_ctx *ctx = narf_store_coll_ctx(e->store);
	struct narf_cref r;
	size_t grow = 0;
	uint64_t n;
	int rv = 0;

	for (int i = 2; i < argc; i++)
		grow += len[i] + NARF_LIST_ELEM_OVERHEAD;
	if (narf_list_open(e, argv[1], len[1], grow, !only_existing, &r, out) !=
	    0)
		return 0;
	if (r.e == NULL)
		return narf_resp_int(out, 0);
	int i;

	for (i = 2; i < argc && rv == 0; i++)
		rv = narf_list_push(ctx, &r.c, end, argv[i], len[i]);
	if (rv != 0)
		i--; /* the failed one is not in */
	n = narf_list_len(&r.c);
	narf_list_effect(e, &r, argv[1], len[1],
	                 end == NARF_QL_HEAD ? "NARF.LPUSH" : "NARF.RPUSH",
	                 i - 2, argv + 2, len + 2);
	narf_list_close(e, &r);
	if (n > 0)
		narf_block_signal(&e->block, r.slot, argv[1], len[1]);
	if (rv != 0)
		return narf_list_reply_error(out, rv);
	return narf_resp_int(out, (long long)n);
}

static int cmd_lpush(struct narf_engine *e,
                     struct narf_client *c,
                     int argc,
                     const char **argv,
                     const size_t *len,
                     struct narf_buf *out)
{
	return push(e, argc, argv, len, NARF_QL_HEAD, false, out);
}

static int cmd_rpush(struct narf_engine *e,
                     struct narf_client *c,
                     int argc,
                     const char **argv,
                     const size_t *len,
                     struct narf_buf *out)
{
	return push(e, argc, argv, len, NARF_QL_TAIL, false, out);
}

static int cmd_lpushx(struct narf_engine *e,
                      struct narf_client *c,
                      int argc,
                      const char **argv,
                      const size_t *len,
                      struct narf_buf *out)
{
	return push(e, argc, argv, len, NARF_QL_HEAD, true, out);
}

static int cmd_rpushx(struct narf_engine *e,
                      struct narf_client *c,
                      int argc,
                      const char **argv,
                      const size_t *len,
                      struct narf_buf *out)
{
	return push(e, argc, argv, len, NARF_QL_TAIL, true, out);
}

/* Pop the element at end of the open list r, replying with it as a bulk. */
static int pop_one(struct narf_buf *out,
                   struct narf_cref *r,
                   enum narf_ql_end end)
{
	struct narf_ql_iter it;
	int rv;

	if (end == NARF_QL_HEAD)
		narf_ql_first(narf_list_ql(&r->c), &it);
	else
		narf_ql_last(narf_list_ql(&r->c), &it);
	rv = narf_list_reply_elem(out, &it);
	narf_ql_pop(narf_list_ql(&r->c), end, NULL, 0, NULL);
	return rv;
}

/* The effect of pops at end of the open list r, which held `before`. */
static void pop_effect(struct narf_engine *e,
                       const struct narf_cref *r,
                       const char *key,
                       size_t klen,
                       enum narf_ql_end end,
                       uint64_t before)
{
	char num[24];
	const char *fx[] = {num};
	size_t fxlen[1];

	if (narf_list_len(&r->c) >= before)
		return;
	fxlen[0] = (size_t)snprintf(
	        num, sizeof(num), "%llu",
	        (unsigned long long)(before - narf_list_len(&r->c)));
	narf_list_effect(e, r, key, klen,
	                 end == NARF_QL_HEAD ? "NARF.LPOP" : "NARF.RPOP", 1, fx,
	                 fxlen);
}

/* LPOP/RPOP key [count]: one element (a bulk, or nil), or with a count an
 * array of up to count (Redis 7.0.15: a missing key is a null array even
 * with count 0, an existing one with count 0 an empty array). */
static int pop(struct narf_engine *e,
               struct narf_client *c,
               int argc,
               const char **argv,
               const size_t *len,
               enum narf_ql_end end,
               struct narf_buf *out)
{
	struct narf_cref r;
	long long count = 1;
	uint64_t before;
	int rv;

	if (argc > 3)
		return narf_reply_wrong_arity(
		        out, end == NARF_QL_HEAD ? "lpop" : "rpop");
	if (argc == 3 &&
	    (!narf_str_to_ll(argv[2], len[2], &count) || count < 0))
		return narf_resp_error(out,
		                       "ERR value is out of range, must be "
		                       "positive");
	if (narf_list_open(e, argv[1], len[1], 0, false, &r, out) != 0)
		return 0;
	if (r.e == NULL)
		return argc == 3 ? narf_reply_null_array(c, out)
		                 : narf_reply_null(c, out);
	before = narf_list_len(&r.c);
	if (argc == 3) {
		rv = narf_list_pop_reply(out, narf_list_ql(&r.c), end,
		                         (uint64_t)count);
	} else {
		rv = pop_one(out, &r, end);
	}
	pop_effect(e, &r, argv[1], len[1], end, before);
	narf_list_close(e, &r);
	return rv;
}

/* BLPOP/BRPOP key [key ...] timeout: [key, element] from the first key
 * holding a list; none does: block (a key of another type before the
 * first list answers WRONGTYPE; the timeout is parsed first, as 7.0). */
static int bpop(struct narf_engine *e,
                struct narf_client *c,
                int argc,
                const char **argv,
                const size_t *len,
                enum narf_ql_end end,
                struct narf_buf *out)
{
	struct narf_cref r;
	uint64_t ms, before;
	int rv;

	if (narf_parse_block_timeout(out, argv[argc - 1], len[argc - 1], &ms) !=
	    0)
		return 0;
	for (int k = 1; k < argc - 1; k++) {
		if (narf_list_open(e, argv[k], len[k], 0, false, &r, out) != 0)
			return 0;
		if (r.e == NULL)
			continue;
		before = narf_list_len(&r.c);
		rv = narf_resp_array(out, 2);
		rv |= narf_resp_bulk(out, argv[k], len[k]);
		rv |= pop_one(out, &r, end);
		pop_effect(e, &r, argv[k], len[k], end, before);
		narf_list_close(e, &r);
		return rv != 0 ? NARF_ENOMEM : 0;
	}
	return narf_block_wait(c, NARF_TYPE_LIST, 1, argc - 2, 0, ms);
}

static int cmd_blpop(struct narf_engine *e,
                     struct narf_client *c,
                     int argc,
                     const char **argv,
                     const size_t *len,
                     struct narf_buf *out)
{
	return bpop(e, c, argc, argv, len, NARF_QL_HEAD, out);
}

static int cmd_brpop(struct narf_engine *e,
                     struct narf_client *c,
                     int argc,
                     const char **argv,
                     const size_t *len,
                     struct narf_buf *out)
{
	return bpop(e, c, argc, argv, len, NARF_QL_TAIL, out);
}

static int cmd_lpop(struct narf_engine *e,
                    struct narf_client *c,
                    int argc,
                    const char **argv,
                    const size_t *len,
                    struct narf_buf *out)
{
	return pop(e, c, argc, argv, len, NARF_QL_HEAD, out);
}

static int cmd_rpop(struct narf_engine *e,
                    struct narf_client *c,
                    int argc,
                    const char **argv,
                    const size_t *len,
                    struct narf_buf *out)
{
	return pop(e, c, argc, argv, len, NARF_QL_TAIL, out);
}

static int cmd_llen(struct narf_engine *e,
                    struct narf_client *c,
                    int argc,
                    const char **argv,
                    const size_t *len,
                    struct narf_buf *out)
{
	struct narf_coll l;
	int rv = read_list(e, argv, len, &l, out);

	if (rv < 0)
		return 0;
	return narf_resp_int(out, rv == 1 ? (long long)narf_list_len(&l) : 0);
}

static int cmd_lrange(struct narf_engine *e,
                      struct narf_client *c,
                      int argc,
                      const char **argv,
                      const size_t *len,
                      struct narf_buf *out)
{
	struct narf_coll l;
	struct narf_ql_iter it;
	long long start, stop, llen;
	int ok, rv;

	if (narf_arg_ll(out, argv[2], len[2], &start) != 0 ||
	    narf_arg_ll(out, argv[3], len[3], &stop) != 0)
		return 0;
	rv = read_list(e, argv, len, &l, out);
	if (rv < 0)
		return 0;
	llen = rv == 1 ? (long long)narf_list_len(&l) : 0;
	/* Redis's clamping: negative from the tail, then into the list. */
	if (start < 0)
		start = start < -llen ? 0 : llen + start;
	if (stop < 0)
		stop = stop < -llen ? -1 : llen + stop;
	if (stop >= llen)
		stop = llen - 1;
	if (start > stop)
		return narf_resp_array(out, 0);
	rv = narf_resp_array(out, stop - start + 1);
	for (ok = narf_ql_index(narf_list_ql(&l), start, NARF_QL_FORWARD, &it);
	     ok && it.index <= stop; ok = narf_ql_iter_next(&it))
		rv |= narf_list_reply_elem(out, &it);
	return rv != 0 ? NARF_ENOMEM : 0;
}

static int cmd_lindex(struct narf_engine *e,
                      struct narf_client *c,
                      int argc,
                      const char **argv,
                      const size_t *len,
                      struct narf_buf *out)
{
	struct narf_coll l;
	struct narf_ql_iter it;
	long long index;
	int rv = read_list(e, argv, len, &l, out);

	if (rv < 0)
		return 0;
	if (rv == 0)
		return narf_reply_null(c, out);
	if (narf_arg_ll(out, argv[2], len[2], &index) != 0)
		return 0;
	if (!narf_ql_index(narf_list_ql(&l), index, NARF_QL_FORWARD, &it))
		return narf_reply_null(c, out);
	return narf_list_reply_elem(out, &it);
}

static int cmd_lset(struct narf_engine *e,
                    struct narf_client *c,
                    int argc,
                    const char **argv,
                    const size_t *len,
                    struct narf_buf *out)
{
	struct narf_cref r;
	long long index;
	int rv;

	if (narf_list_open(e, argv[1], len[1], len[3] + NARF_LIST_ELEM_OVERHEAD,
	                   false, &r, out) != 0)
		return 0;
	if (r.e == NULL)
		return narf_resp_error(out, "ERR no such key");
	if (narf_arg_ll(out, argv[2], len[2], &index) != 0) {
		narf_list_close(e, &r);
		return 0;
	}
	rv = narf_ql_set(narf_list_ql(&r.c), index, argv[3], len[3]);
	if (rv == 0)
		narf_list_effect(e, &r, argv[1], len[1], "NARF.LSET", 2,
		                 argv + 2, len + 2);
	narf_list_close(e, &r);
	if (rv == NARF_EINVAL)
		return narf_resp_error(out, "ERR index out of range");
	if (rv != 0)
		return narf_list_reply_error(out, rv);
	return narf_resp_simple(out, "OK");
}

/* LINSERT key BEFORE|AFTER pivot element: the new length, -1 when the
 * pivot is not there, 0 for a missing key. */
static int cmd_linsert(struct narf_engine *e,
                       struct narf_client *c,
                       int argc,
                       const char **argv,
                       const size_t *len,
                       struct narf_buf *out)
{
	struct narf_cref r;
	enum narf_lp_where where;
	long long n = -1;
	int rv = 0;

	if (narf_arg_is(argv[2], len[2], "after"))
		where = NARF_LP_AFTER;
	else if (narf_arg_is(argv[2], len[2], "before"))
		where = NARF_LP_BEFORE;
	else
		return narf_reply_syntax(out);
	if (narf_list_open(e, argv[1], len[1], len[4] + NARF_LIST_ELEM_OVERHEAD,
	                   false, &r, out) != 0)
		return 0;
	if (r.e == NULL)
		return narf_resp_int(out, 0);
	rv = narf_list_insert(&r.c, where, argv[3], len[3], argv[4], len[4],
	                      &n);
	if (rv == 0 && n > 0)
		narf_list_effect(e, &r, argv[1], len[1], "NARF.LINSERT", 3,
		                 argv + 2, len + 2);
	narf_list_close(e, &r);
	if (rv != 0)
		return narf_list_reply_error(out, rv);
	return narf_resp_int(out, n);
}

/* LREM key count element: count > 0 removes that many from the head on,
 * < 0 from the tail back, 0 every one. */
static int cmd_lrem(struct narf_engine *e,
                    struct narf_client *c,
                    int argc,
                    const char **argv,
                    const size_t *len,
                    struct narf_buf *out)
{
	struct narf_cref r;
	long long count;
	uint64_t removed;

	if (narf_arg_ll(out, argv[2], len[2], &count) != 0)
		return 0;
	if (narf_list_open(e, argv[1], len[1], 0, false, &r, out) != 0)
		return 0;
	if (r.e == NULL)
		return narf_resp_int(out, 0);
	removed = narf_list_rem(&r.c, count, argv[3], len[3]);
	if (removed > 0)
		narf_list_effect(e, &r, argv[1], len[1], "NARF.LREM", 2,
		                 argv + 2, len + 2);
	narf_list_close(e, &r);
	return narf_resp_int(out, (long long)removed);
}

static int cmd_ltrim(struct narf_engine *e,
                     struct narf_client *c,
                     int argc,
                     const char **argv,
                     const size_t *len,
                     struct narf_buf *out)
{
	struct narf_cref r;
	long long start, stop;
	uint64_t llen;

	if (narf_arg_ll(out, argv[2], len[2], &start) != 0 ||
	    narf_arg_ll(out, argv[3], len[3], &stop) != 0)
		return 0;
	if (narf_list_open(e, argv[1], len[1], 0, false, &r, out) != 0)
		return 0;
	if (r.e == NULL)
		return narf_resp_simple(out, "OK");
	llen = narf_list_len(&r.c);
	narf_list_trim(&r.c, start, stop);
	if (narf_list_len(&r.c) < llen)
		narf_list_effect(e, &r, argv[1], len[1], "NARF.LTRIM", 2,
		                 argv + 2, len + 2);
	narf_list_close(e, &r);
	return narf_resp_simple(out, "OK");
}

#define W (NARF_CMD_WRITE | NARF_CMD_DENYOOM)
#define R NARF_CMD_READONLY
#define F NARF_CMD_FAST
#define B NARF_CMD_BLOCKING
const struct narf_command narf_list_commands[] = {
        {"lpush", cmd_lpush, -3, W | F, 1, 1, 1},
        {"rpush", cmd_rpush, -3, W | F, 1, 1, 1},
        {"lpushx", cmd_lpushx, -3, W | F, 1, 1, 1},
        {"rpushx", cmd_rpushx, -3, W | F, 1, 1, 1},
        {"lpop", cmd_lpop, -2, NARF_CMD_WRITE | F, 1, 1, 1},
        {"rpop", cmd_rpop, -2, NARF_CMD_WRITE | F, 1, 1, 1},
        {"llen", cmd_llen, 2, R | F, 1, 1, 1},
        {"lrange", cmd_lrange, 4, R, 1, 1, 1},
        {"lindex", cmd_lindex, 3, R, 1, 1, 1},
        {"lset", cmd_lset, 4, W, 1, 1, 1},
        {"linsert", cmd_linsert, 5, W, 1, 1, 1},
        {"lrem", cmd_lrem, 4, NARF_CMD_WRITE, 1, 1, 1},
        {"ltrim", cmd_ltrim, 4, NARF_CMD_WRITE, 1, 1, 1},
        {"lpos", narf_cmd_lpos, -3, R, 1, 1, 1},
        {"lmove", narf_cmd_lmove, 5, W, 1, 2, 1},
        {"rpoplpush", narf_cmd_rpoplpush, 3, W, 1, 2, 1},
        {"lmpop", narf_cmd_lmpop, -4, NARF_CMD_WRITE | NARF_CMD_NUMKEYS_AT(1),
         0, 0, 0},
        {"blpop", cmd_blpop, -3, NARF_CMD_WRITE | B, 1, -2, 1},
        {"brpop", cmd_brpop, -3, NARF_CMD_WRITE | B, 1, -2, 1},
        {"blmove", narf_cmd_blmove, 6, W | B, 1, 2, 1},
        {"brpoplpush", narf_cmd_brpoplpush, 4, W | B, 1, 2, 1},
        {"blmpop", narf_cmd_blmpop, -5,
         NARF_CMD_WRITE | B | NARF_CMD_NUMKEYS_AT(2), 0, 0, 0},
        {NULL, NULL, 0, 0, 0, 0, 0},
};
