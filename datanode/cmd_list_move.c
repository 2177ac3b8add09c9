/*
 * The list commands that search or take from several places: LPOS, LMOVE,
 * RPOPLPUSH and LMPOP, and their blocking forms BLMOVE, BRPOPLPUSH and
 * BLMPOP, with Redis 7.0.15's replies and errors (cmd_list.c has the rest
 * of the family, BLPOP and BRPOP, and the command table).
 *
 * LMOVE holds two keys. It checks both types before it changes anything,
 * as Redis does (a missing source answers nil whatever the destination
 * holds; a destination of another type answers WRONGTYPE before the pop),
 * then opens the destination first: opening a key may evict others under
 * allkeys-lru, and the one already open must not be among them. The
 * source, opened second, needs no room (a pop only frees), so nothing is
 * evicted while both are open; if the first open evicted the source, the
 * move finds no source and answers nil, as Redis would had it evicted the
 * key before running the command. The element is pushed before it is
 * popped, so a push that fails for memory loses nothing. The push signals
 * the destination (blocking.h): a BLMOVE served from one key may serve a
 * client blocked on its destination in the same pass.
 *
 * The blocking forms block only on a missing source (BLMOVE) or when no
 * key holds a list (BLMPOP); their timeout is parsed where 7.0 parses it:
 * BLMOVE's after its two directions, BLMPOP's after numkeys, the direction
 * and COUNT.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_list.h"
#include "common/coll_list.h"
#include "reply.h"

/* LEFT or RIGHT (any case); false for anything else. */
static bool parse_end(const char *s, size_t n, enum narf_ql_end *end)
{
	if (narf_arg_is(s, n, "left"))
		*end = NARF_QL_HEAD;
	else if (narf_arg_is(s, n, "right"))
		*end = NARF_QL_TAIL;
	else
		return false;
	return true;
}

/* --- LPOS ----------------------------------------------------------------- */

struct lpos_args {
	long long rank;   /* not 0; < 0 searches from the tail */
	long long count;  /* -1: no COUNT (one index or nil); 0: all */
	long long maxlen; /* elements compared at most, 0: all */
};

static int lpos_fail(struct narf_buf *out, const char *msg)
{
	narf_resp_error(out, msg);
	return -1;
}

static int lpos_parse(int argc,
                      const char **argv,
                      const size_t *len,
                      struct lpos_args *a,
                      struct narf_buf *out)
{
	long long v;

	*a = (struct lpos_args){1, -1, 0};
	for (int i = 3; i < argc; i += 2) {
		if (i + 1 >= argc)
			return lpos_fail(out, "ERR syntax error");
		if (narf_arg_is(argv[i], len[i], "rank")) {
			if (narf_arg_ll(out, argv[i + 1], len[i + 1], &v) != 0)
				return -1;
			if (v == 0)
				return lpos_fail(
				        out,
				        "ERR RANK can't be zero: use 1 to "
				        "start from the first match, 2 "
				        "from the second ... or use "
				        "negative to start from the end "
				        "of the list");
			a->rank = v;
		} else if (narf_arg_is(argv[i], len[i], "count")) {
			if (!narf_str_to_ll(argv[i + 1], len[i + 1], &v) ||
			    v < 0)
				return lpos_fail(out,
				                 "ERR COUNT can't be negative");
			a->count = v;
		} else if (narf_arg_is(argv[i], len[i], "maxlen")) {
			if (!narf_str_to_ll(argv[i + 1], len[i + 1], &v) ||
			    v < 0)
				return lpos_fail(
				        out, "ERR MAXLEN can't be negative");
			a->maxlen = v;
		} else {
			return lpos_fail(out, "ERR syntax error");
		}
	}
	return 0;
}

/* LPOS key element [RANK rank] [COUNT num] [MAXLEN len]: the index of the
 * rank-th match (from the tail for a negative rank), or with COUNT an
 * array of up to num of them (0: all), comparing at most MAXLEN elements.
 * Missing key or no match: nil, or an empty array with COUNT. */
int narf_cmd_lpos(struct narf_engine *e,
                  struct narf_client *c,
                  int argc,
                  const char **argv,
                  const size_t *len,
                  struct narf_buf *out)
{
	struct lpos_args a;
	struct narf_coll l;
	struct narf_ql_iter it;
	struct narf_ql *ql;
	struct narf_buf items;
	uint64_t llen, n = 0;
	int found, rv;

	if (lpos_parse(argc, argv, len, &a, out) != 0)
		return 0;
	/* Redis 7.0.15 negates RANK unchecked: LLONG_MIN stays negative, so
	 * it searches from the tail, takes the first match, and (its
	 * `matches - rank + 1` overflowing) never stops at COUNT. */
	if (a.rank == LLONG_MIN) {
		a.rank = -1;
		if (a.count > 0)
			a.count = 0;
	}
	rv = narf_lookup_coll(e, argv[1], len[1], NARF_TYPE_LIST, &l, out);
	if (rv < 0)
		return 0;
	if (rv == 0)
		return a.count >= 0 ? narf_resp_array(out, 0)
		                    : narf_reply_null(c, out);
	ql = narf_list_ql(&l);
	llen = narf_ql_count(ql);
	found = narf_ql_find(ql, argv[2], len[2], a.rank, (uint64_t)a.maxlen,
	                     &it);
	if (a.count < 0)
		return found ? narf_resp_int(out, it.index)
		             : narf_reply_null(c, out);
	narf_buf_init(&items);
	rv = 0;
	while (found && rv == 0) {
		rv = narf_resp_int(&items, it.index);
		if (++n == (uint64_t)a.count)
			break; /* count 0 never matches: all */
		found = 0;
		while (narf_ql_iter_next(&it)) {
			uint64_t seen = it.dir == NARF_QL_FORWARD
			                        ? (uint64_t)it.index + 1
			                        : llen - (uint64_t)it.index;

			if (a.maxlen != 0 && seen > (uint64_t)a.maxlen)
				break;
			if (narf_ql_iter_eq(&it, argv[2], len[2])) {
				found = 1;
				break;
			}
		}
	}
	if (rv == 0)
		rv = narf_resp_array(out, (long long)n);
	if (rv == 0)
		rv = narf_buf_append(out, items.data, items.len);
	narf_buf_close(&items);
	return rv;
}

/* --- LMOVE, RPOPLPUSH ----------------------------------------------------- */

/* LMOVE src src: one list. from == to changes nothing (Redis pops and
 * pushes back the same element); otherwise the element goes to the other
 * end, pushed as a copy first (a push may move the bytes a view points
 * at), then the original popped. */
static int move_within(struct narf_engine *e,
                       struct narf_client *c,
                       const char *key,
                       size_t klen,
                       enum narf_ql_end from,
                       enum narf_ql_end to,
                       struct narf_buf *out)
{
	struct narf_cref r;
	struct narf_ql_iter it;
	struct narf_ql *ql;
	char ibuf[NARF_LP_INTBUF];
	const unsigned char *p;
	uint32_t n = 0;
	int rv = 0;

	if (narf_list_open(e, key, klen, 0, false, &r, out) != 0)
		return 0;
	if (r.e == NULL)
		return narf_reply_null(c, out);
	ql = narf_list_ql(&r.c);
	if (from == NARF_QL_HEAD)
		narf_ql_first(ql, &it);
	else
		narf_ql_last(ql, &it);
	p = narf_ql_iter_str(&it, ibuf, &n);
	rv = narf_resp_bulk(out, p, n);
	if (rv == 0 && from != to) {
		const char *fx[2] = {narf_list_end_word(from),
		                     narf_list_end_word(to)};
		size_t fxlen[2] = {strlen(fx[0]), strlen(fx[1])};

		rv = narf_list_rotate(&r.c, from, to);
		if (rv == 0)
			narf_list_effect(e, &r, key, klen, "NARF.LMOVE", 2, fx,
			                 fxlen);
		else
			rv = narf_list_reply_error(out, rv);
	}
	narf_list_close(e, &r);
	return rv;
}

/* Pop an element at `from` of argv[1] and push it at `to` of argv[2]; the
 * element, or nil when the source is missing (see the file comment). */
static int move(struct narf_engine *e,
                struct narf_client *c,
                const char **argv,
                const size_t *len,
                enum narf_ql_end from,
                enum narf_ql_end to,
                struct narf_buf *out)
{
	const struct narf_coll_ctx *ctx = narf_store_coll_ctx(e->store);
	struct narf_entry *en;
	struct narf_coll peek;
	struct narf_cref src, dst;
	struct narf_ql_iter it;
	char ibuf[NARF_LP_INTBUF];
	const unsigned char *p;
	uint32_t n = 0;
	int rv;

	en = narf_lookup(e, argv[1], len[1], false);
	if (en == NULL)
		return narf_reply_null(c, out);
	if (narf_entry_type(en) != NARF_TYPE_LIST)
		return narf_reply_wrongtype(out);
	if (len[1] == len[2] && memcmp(argv[1], argv[2], len[1]) == 0)
		return move_within(e, c, argv[1], len[1], from, to, out);
	/* the element's size, for the destination's memory check */
	narf_entry_coll(en, &peek);
	if (from == NARF_QL_HEAD)
		narf_ql_first(narf_list_ql(&peek), &it);
	else
		narf_ql_last(narf_list_ql(&peek), &it);
	narf_ql_iter_str(&it, ibuf, &n);
	en = narf_lookup(e, argv[2], len[2], false);
	if (en != NULL && narf_entry_type(en) != NARF_TYPE_LIST)
		return narf_reply_wrongtype(out);
	if (narf_list_open(e, argv[2], len[2], n + NARF_LIST_ELEM_OVERHEAD,
	                   true, &dst, out) != 0)
		return 0;
	if (narf_list_open(e, argv[1], len[1], 0, false, &src, out) != 0) {
		narf_list_close(e, &dst);
		return 0;
	}
	if (src.e == NULL) {
		/* evicted to make room for the destination */
		narf_list_close(e, &dst);
		return narf_reply_null(c, out);
	}
	if (from == NARF_QL_HEAD)
		narf_ql_first(narf_list_ql(&src.c), &it);
	else
		narf_ql_last(narf_list_ql(&src.c), &it);
	p = narf_ql_iter_str(&it, ibuf, &n);
	rv = narf_list_push(ctx, &dst.c, to, p, n);
	if (rv == 0) {
		const char *one[] = {"1"};
		size_t onelen[] = {1};
		const char *el[] = {(const char *)p};
		size_t ellen[] = {n};

		/* the push then the pop, as they happened (the element is
		 * sent before the pop frees it) */
		narf_list_effect(
		        e, &dst, argv[2], len[2],
		        to == NARF_QL_HEAD ? "NARF.LPUSH" : "NARF.RPUSH", 1, el,
		        ellen);
		rv = narf_resp_bulk(out, p, n);
		narf_ql_pop(narf_list_ql(&src.c), from, NULL, 0, NULL);
		narf_list_effect(
		        e, &src, argv[1], len[1],
		        from == NARF_QL_HEAD ? "NARF.LPOP" : "NARF.RPOP", 1,
		        one, onelen);
		narf_block_signal(&e->block, dst.slot, argv[2], len[2]);
	} else {
		rv = narf_list_reply_error(out, rv);
	}
	narf_list_close(e, &src);
	narf_list_close(e, &dst);
	return rv;
}

int narf_cmd_lmove(struct narf_engine *e,
                   struct narf_client *c,
                   int argc,
                   const char **argv,
                   const size_t *len,
                   struct narf_buf *out)
{
	enum narf_ql_end from, to;

	if (!parse_end(argv[3], len[3], &from) ||
	    !parse_end(argv[4], len[4], &to))
		return narf_reply_syntax(out);
	return move(e, c, argv, len, from, to, out);
}

int narf_cmd_rpoplpush(struct narf_engine *e,
                       struct narf_client *c,
                       int argc,
                       const char **argv,
                       const size_t *len,
                       struct narf_buf *out)
{
	return move(e, c, argv, len, NARF_QL_TAIL, NARF_QL_HEAD, out);
}

/* BLMOVE/BRPOPLPUSH: a move, or with the source missing, block on it (the
 * destination is not looked at: 7.0 blocks whatever it holds). */
static int bmove(struct narf_engine *e,
                 struct narf_client *c,
                 const char **argv,
                 const size_t *len,
                 enum narf_ql_end from,
                 enum narf_ql_end to,
                 const char *timeout,
                 size_t tlen,
                 struct narf_buf *out)
{
	uint64_t ms;

	if (narf_parse_block_timeout(out, timeout, tlen, &ms) != 0)
		return 0;
	if (narf_lookup(e, argv[1], len[1], false) == NULL)
		return narf_block_wait(c, NARF_TYPE_LIST, 1, 1, 0, ms);
	return move(e, c, argv, len, from, to, out);
}

int narf_cmd_blmove(struct narf_engine *e,
                    struct narf_client *c,
                    int argc,
                    const char **argv,
                    const size_t *len,
                    struct narf_buf *out)
{
	enum narf_ql_end from, to;

	if (!parse_end(argv[3], len[3], &from) ||
	    !parse_end(argv[4], len[4], &to))
		return narf_reply_syntax(out);
	return bmove(e, c, argv, len, from, to, argv[5], len[5], out);
}

int narf_cmd_brpoplpush(struct narf_engine *e,
                        struct narf_client *c,
                        int argc,
                        const char **argv,
                        const size_t *len,
                        struct narf_buf *out)
{
	return bmove(e, c, argv, len, NARF_QL_TAIL, NARF_QL_HEAD, argv[3],
	             len[3], out);
}

/* --- LMPOP ---------------------------------------------------------------- */

/* LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]: pop up to count
 * (default 1) from the first key holding a list, replying [key, [elements]];
 * a null array when none does. A key of another type before the first list
 * answers WRONGTYPE; one after it is never looked at. BLMPOP timeout
 * numkeys ...: numkeys at `at` (2, not 1), the timeout parsed after the
 * rest, and blocking instead of the null array. */
static int mpop(struct narf_engine *e,
                struct narf_client *c,
                int argc,
                const char **argv,
                const size_t *len,
                int at,
                struct narf_buf *out)
{
	enum narf_ql_end end;
	long long numkeys, count = -1;
	struct narf_cref r;
	uint64_t ms = 0;
	int where, rv;

	if (!narf_str_to_ll(argv[at], len[at], &numkeys) || numkeys < 1)
		return narf_resp_error(out,
		                       "ERR numkeys should be greater than 0");
	if (numkeys > argc - at - 2)
		return narf_reply_syntax(out);
	where = at + 1 + (int)numkeys;
	if (!parse_end(argv[where], len[where], &end))
		return narf_reply_syntax(out);
	for (int i = where + 1; i < argc; i++) {
		if (count != -1 || !narf_arg_is(argv[i], len[i], "count") ||
		    i + 1 >= argc)
			return narf_reply_syntax(out);
		i++;
		if (!narf_str_to_ll(argv[i], len[i], &count) || count < 1)
			return narf_resp_error(
			        out, "ERR count should be greater than 0");
	}
	if (count == -1)
		count = 1;
	if (at == 2 && narf_parse_block_timeout(out, argv[1], len[1], &ms) != 0)
		return 0;
	for (int k = at + 1; k < where; k++) {
		if (narf_list_open(e, argv[k], len[k], 0, false, &r, out) != 0)
			return 0;
		if (r.e == NULL)
			continue;
		uint64_t before = narf_list_len(&r.c);
		char num[24];
		const char *fx[] = {num};
		size_t fxlen[1];

		narf_resp_array(out, 2);
		narf_resp_bulk(out, argv[k], len[k]);
		rv = narf_list_pop_reply(out, narf_list_ql(&r.c), end,
		                         (uint64_t)count);
		fxlen[0] = (size_t)snprintf(
		        num, sizeof(num), "%llu",
		        (unsigned long long)(before - narf_list_len(&r.c)));
		narf_list_effect(
		        e, &r, argv[k], len[k],
		        end == NARF_QL_HEAD ? "NARF.LPOP" : "NARF.RPOP", 1, fx,
		        fxlen);
		narf_list_close(e, &r);
		return rv;
	}
	if (at == 2)
		return narf_block_wait(c, NARF_TYPE_LIST, at + 1, where - 1, at,
		                       ms);
	return narf_reply_null_array(c, out);
}

int narf_cmd_lmpop(struct narf_engine *e,
                   struct narf_client *c,
                   int argc,
                   const char **argv,
                   const size_t *len,
                   struct narf_buf *out)
{
	return mpop(e, c, argc, argv, len, 1, out);
}

int narf_cmd_blmpop(struct narf_engine *e,
                    struct narf_client *c,
                    int argc,
                    const char **argv,
                    const size_t *len,
                    struct narf_buf *out)
{
	return mpop(e, c, argc, argv, len, 2, out);
}
