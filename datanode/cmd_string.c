/*
 * The string family, with Redis 7.0's semantics and error strings: SET and
 * its options, the GET variants, ranges, APPEND, the multi-key MGET/MSET
 * and the counters.
 *
 * Entry pointers from the store are invalidated by any write, so a command
 * that replies with an old value writes the reply before it writes the new
 * value, and rolls the reply back (out->len) if the write is refused.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "reply.h"

#define OOM_MSG "OOM command not allowed when used memory > 'maxmemory'."

static int reply_oom(struct narf_buf *out, size_t rollback)
{
	out->len = rollback;
	return narf_resp_error(out, OOM_MSG);
}

/* Does en hold another type than a string (a WRONGTYPE for most string
 * commands; SET and the other whole-value writes replace it instead)? */
static bool wrongtype(const struct narf_entry *en)
{
	return en != NULL && narf_entry_type(en) != NARF_TYPE_STRING;
}

/* A string's value, the null of c's protocol for a missing key, or
 * WRONGTYPE. */
static int reply_value(const struct narf_client *c,
                       struct narf_buf *out,
                       const struct narf_entry *en)
{
	size_t n;
	const char *v;

	if (wrongtype(en))
		return narf_reply_wrongtype(out);
	if (en == NULL)
		return narf_reply_null(c, out);
	v = narf_entry_value(en, &n);
	return narf_resp_bulk(out, v, n);
}

/* Store key = val keeping or setting the TTL; replies OOM on refusal. */
static int store_set(struct narf_engine *e,
                     const char *key,
                     size_t klen,
                     const char *val,
                     size_t vlen,
                     int64_t expire)
{
	struct narf_keyref k = narf_key_ref(e, key, klen);

	return narf_store_set_h(e->store, k.slot, key, klen, k.h, val, vlen,
	                        expire, narf_engine_now(e), NULL);
}

/* --- expiry options shared by SET, GETEX -------------------------------- */

enum { EXP_NONE, EXP_EX, EXP_PX, EXP_EXAT, EXP_PXAT };

/* Turn "EX 10" style into an absolute time in ms; -1 after an error reply
 * ("invalid expire time in 'cmd' command"). */
static int absolute_expire(struct narf_engine *e,
                           struct narf_buf *out,
                           const char *cmd,
                           int unit,
                           const char *arg,
                           size_t n,
                           int64_t *abs)
{
	long long v;
	int64_t now = narf_engine_now(e);

	if (narf_arg_ll(out, arg, n, &v) != 0)
		return -1;
	if (v <= 0 ||
	    ((unit == EXP_EX || unit == EXP_EXAT) && v > LLONG_MAX / 1000)) {
		narf_resp_errorf(out, "ERR invalid expire time in '%s' command",
		                 cmd);
		return -1;
	}
	if (unit == EXP_EX || unit == EXP_EXAT)
		v *= 1000;
	if (unit == EXP_EX || unit == EXP_PX) {
		if (v > LLONG_MAX - now) {
			narf_resp_errorf(out,
			                 "ERR invalid expire time in '%s' "
			                 "command",
			                 cmd);
			return -1;
		}
		v += now;
	}
	*abs = v;
	return 0;
}

static int expire_unit(const char *a, size_t n)
{
	if (narf_arg_is(a, n, "ex"))
		return EXP_EX;
	if (narf_arg_is(a, n, "px"))
		return EXP_PX;
	if (narf_arg_is(a, n, "exat"))
		return EXP_EXAT;
	if (narf_arg_is(a, n, "pxat"))
		return EXP_PXAT;
	return EXP_NONE;
}

struct set_opts {
	bool nx, xx, get, keepttl;
	int unit;
	int64_t expire; /* absolute ms, or 0 */
};

static int parse_set_opts(struct narf_engine *e,
                          struct narf_buf *out,
                          int argc,
                          const char **argv,
                          const size_t *len,
                          struct set_opts *o)
{
	memset(o, 0, sizeof(*o));
	for (int i = 3; i < argc; i++) {
		const char *a = argv[i];
		size_t n = len[i];
		int unit = expire_unit(a, n);

		if (narf_arg_is(a, n, "nx") && !o->xx) {
			o->nx = true;
		} else if (narf_arg_is(a, n, "xx") && !o->nx) {
			o->xx = true;
		} else if (narf_arg_is(a, n, "get")) {
			o->get = true;
		} else if (narf_arg_is(a, n, "keepttl") && !o->unit) {
			o->keepttl = true;
		} else if (unit != EXP_NONE && (!o->unit || o->unit == unit) &&
		           !o->keepttl && i + 1 < argc) {
			o->unit = unit;
			if (absolute_expire(e, out, "set", unit, argv[i + 1],
			                    len[i + 1], &o->expire) != 0)
				return -1;
			i++;
		} else {
			narf_reply_syntax(out);
			return -1;
		}
	}
	return 0;
}

static int cmd_set(struct narf_engine *e,
                   struct narf_client *c,
                   int argc,
                   const char **argv,
                   const size_t *len,
                   struct narf_buf *out)
{
	struct set_opts o;
	struct narf_entry *old;
	size_t mark = out->len;
	int64_t expire;

	if (parse_set_opts(e, out, argc, argv, len, &o) != 0)
		return 0;
	old = narf_lookup(e, argv[1], len[1], false);
	if (o.get && wrongtype(old))
		return narf_reply_wrongtype(out);
	if ((o.nx && old != NULL) || (o.xx && old == NULL)) {
		/* Not set: SET ... GET still answers with the old value. */
		return o.get ? reply_value(c, out, old)
		             : narf_reply_null(c, out);
	}
	if (o.get)
		reply_value(c, out, old);
	expire = o.keepttl ? NARF_STORE_KEEPTTL : o.expire;
	if (store_set(e, argv[1], len[1], argv[2], len[2], expire) != 0)
		return reply_oom(out, mark);
	return o.get ? 0 : narf_resp_simple(out, "OK");
}

static int cmd_setnx(struct narf_engine *e,
                     struct narf_client *c,
                     int argc,
                     const char **argv,
                     const size_t *len,
                     struct narf_buf *out)
{
	if (narf_lookup(e, argv[1], len[1], false) != NULL)
		return narf_resp_int(out, 0);
	if (store_set(e, argv[1], len[1], argv[2], len[2], 0) != 0)
		return reply_oom(out, out->len);
	return narf_resp_int(out, 1);
}

static int setex_generic(struct narf_engine *e,
                         const char *cmd,
                         int unit,
                         const char **argv,
                         const size_t *len,
                         struct narf_buf *out)
{
	int64_t expire;

	if (absolute_expire(e, out, cmd, unit, argv[2], len[2], &expire) != 0)
		return 0;
	if (store_set(e, argv[1], len[1], argv[3], len[3], expire) != 0)
		return reply_oom(out, out->len);
	return narf_resp_simple(out, "OK");
}

static int cmd_setex(struct narf_engine *e,
                     struct narf_client *c,
                     int argc,
                     const char **argv,
                     const size_t *len,
                     struct narf_buf *out)
{
	return setex_generic(e, "setex", EXP_EX, argv, len, out);
}

static int cmd_psetex(struct narf_engine *e,
                      struct narf_client *c,
                      int argc,
                      const char **argv,
                      const size_t *len,
                      struct narf_buf *out)
{
	return setex_generic(e, "psetex", EXP_PX, argv, len, out);
}

static int cmd_get(struct narf_engine *e,
                   struct narf_client *c,
                   int argc,
                   const char **argv,
                   const size_t *len,
                   struct narf_buf *out)
{
	return reply_value(c, out, narf_lookup(e, argv[1], len[1], true));
}

static int cmd_getset(struct narf_engine *e,
                      struct narf_client *c,
                      int argc,
                      const char **argv,
                      const size_t *len,
                      struct narf_buf *out)
{
	size_t mark = out->len;
	struct narf_entry *en = narf_lookup(e, argv[1], len[1], true);

	if (wrongtype(en))
		return narf_reply_wrongtype(out);
	reply_value(c, out, en);
	if (store_set(e, argv[1], len[1], argv[2], len[2], 0) != 0)
		return reply_oom(out, mark);
	return 0;
}

static int cmd_getdel(struct narf_engine *e,
                      struct narf_client *c,
                      int argc,
                      const char **argv,
                      const size_t *len,
                      struct narf_buf *out)
{
	struct narf_entry *en = narf_lookup(e, argv[1], len[1], true);

	if (en == NULL)
		return narf_reply_null(c, out);
	if (wrongtype(en))
		return narf_reply_wrongtype(out);
	reply_value(c, out, en);
	narf_store_del(e->store, narf_key_slot(argv[1], len[1]), argv[1],
	               len[1], narf_engine_now(e));
	return 0;
}

static int cmd_getex(struct narf_engine *e,
                     struct narf_client *c,
                     int argc,
                     const char **argv,
                     const size_t *len,
                     struct narf_buf *out)
{
	struct narf_entry *en;
	bool persist = false;
	int unit = EXP_NONE;
	int64_t expire = 0;

	for (int i = 2; i < argc; i++) {
		int u = expire_unit(argv[i], len[i]);

		if (narf_arg_is(argv[i], len[i], "persist") && !unit &&
		    !persist) {
			persist = true;
		} else if (u != EXP_NONE && (!unit || unit == u) && !persist &&
		           i + 1 < argc) {
			unit = u;
			if (absolute_expire(e, out, "getex", u, argv[i + 1],
			                    len[i + 1], &expire) != 0)
				return 0;
			i++;
		} else {
			return narf_reply_syntax(out);
		}
	}
	en = narf_lookup(e, argv[1], len[1], true);
	if (en == NULL)
		return narf_reply_null(c, out);
	if (wrongtype(en))
		return narf_reply_wrongtype(out);
	reply_value(c, out, en);
	if (unit != EXP_NONE && expire <= narf_engine_now(e))
		narf_store_del(e->store, narf_key_slot(argv[1], len[1]),
		               argv[1], len[1], narf_engine_now(e));
	else if (unit != EXP_NONE || persist)
		narf_store_set_expire(e->store, narf_key_slot(argv[1], len[1]),
		                      en, persist ? 0 : expire);
	return 0;
}

static int cmd_strlen(struct narf_engine *e,
                      struct narf_client *c,
                      int argc,
                      const char **argv,
                      const size_t *len,
                      struct narf_buf *out)
{
	struct narf_entry *en = narf_lookup(e, argv[1], len[1], true);
	size_t n = 0;

	if (wrongtype(en))
		return narf_reply_wrongtype(out);
	if (en != NULL)
		narf_entry_value(en, &n);
	return narf_resp_int(out, (long long)n);
}

static int cmd_getrange(struct narf_engine *e,
                        struct narf_client *c,
                        int argc,
                        const char **argv,
                        const size_t *len,
                        struct narf_buf *out)
{
	long long start, end, n;
	struct narf_entry *en;
	const char *v;
	size_t vlen = 0;

	if (narf_arg_ll(out, argv[2], len[2], &start) != 0 ||
	    narf_arg_ll(out, argv[3], len[3], &end) != 0)
		return 0;
	en = narf_lookup(e, argv[1], len[1], true);
	if (en == NULL)
		return narf_resp_bulk(out, "", 0);
	if (wrongtype(en))
		return narf_reply_wrongtype(out);
	v = narf_entry_value(en, &vlen);
	n = (long long)vlen;
	/* Redis: both negative and start > end is empty. */
	if (start < 0 && end < 0 && start > end)
		return narf_resp_bulk(out, "", 0);
	if (start < 0)
		start = n + start;
	if (end < 0)
		end = n + end;
	if (start < 0)
		start = 0;
	if (end < 0)
		end = 0;
	if (end >= n)
		end = n - 1;
	if (n == 0 || start > end)
		return narf_resp_bulk(out, "", 0);
	return narf_resp_bulk(out, v + start, (size_t)(end - start + 1));
}

static int check_size(struct narf_engine *e,
                      struct narf_buf *out,
                      unsigned long long total)
{
	if (total > e->cfg.limits.max_bulk) {
		narf_resp_error(out,
		                "ERR string exceeds maximum allowed size "
		                "(proto-max-bulk-len)");
		return -1;
	}
	return 0;
}

static int cmd_setrange(struct narf_engine *e,
                        struct narf_client *c,
                        int argc,
                        const char **argv,
                        const size_t *len,
                        struct narf_buf *out)
{
	long long off;
	struct narf_entry *en;
	const char *old = NULL;
	size_t olen = 0, nlen;
	char *buf;
	int rv;

	if (narf_arg_ll(out, argv[2], len[2], &off) != 0)
		return 0;
	if (off < 0)
		return narf_resp_error(out, "ERR offset is out of range");
	en = narf_lookup(e, argv[1], len[1], false);
	if (wrongtype(en))
		return narf_reply_wrongtype(out);
	if (en != NULL)
		old = narf_entry_value(en, &olen);
	if (len[3] == 0)
		return narf_resp_int(out, (long long)olen);
	if (check_size(e, out, (unsigned long long)off + len[3]) != 0)
		return 0;
	nlen = (size_t)off + len[3] > olen ? (size_t)off + len[3] : olen;
	buf = calloc(1, nlen ? nlen : 1);
	if (buf == NULL)
		return NARF_ENOMEM;
	if (olen)
		memcpy(buf, old, olen);
	memcpy(buf + off, argv[3], len[3]);
	rv = store_set(e, argv[1], len[1], buf, nlen,
	               en ? NARF_STORE_KEEPTTL : 0);
	free(buf);
	if (rv != 0)
		return reply_oom(out, out->len);
	return narf_resp_int(out, (long long)nlen);
}

static int cmd_append(struct narf_engine *e,
                      struct narf_client *c,
                      int argc,
                      const char **argv,
                      const size_t *len,
                      struct narf_buf *out)
{
	struct narf_entry *en = narf_lookup(e, argv[1], len[1], false);
	const char *old = NULL;
	size_t olen = 0;
	char *buf;
	int rv;

	if (wrongtype(en))
		return narf_reply_wrongtype(out);
	if (en != NULL)
		old = narf_entry_value(en, &olen);
	if (check_size(e, out, (unsigned long long)olen + len[2]) != 0)
		return 0;
	buf = malloc(olen + len[2] + 1);
	if (buf == NULL)
		return NARF_ENOMEM;
	if (olen)
		memcpy(buf, old, olen);
	memcpy(buf + olen, argv[2], len[2]);
	rv = store_set(e, argv[1], len[1], buf, olen + len[2],
	               en ? NARF_STORE_KEEPTTL : 0);
	free(buf);
	if (rv != 0)
		return reply_oom(out, out->len);
	return narf_resp_int(out, (long long)(olen + len[2]));
}

static int cmd_mget(struct narf_engine *e,
                    struct narf_client *c,
                    int argc,
                    const char **argv,
                    const size_t *len,
                    struct narf_buf *out)
{
	narf_resp_array(out, argc - 1);
	for (int i = 1; i < argc; i++) {
		struct narf_entry *en = narf_lookup(e, argv[i], len[i], true);

		/* MGET answers nil for a key of another type, as Redis. */
		if (wrongtype(en))
			narf_reply_null(c, out);
		else
			reply_value(c, out, en);
	}
	return 0;
}

static int cmd_mset(struct narf_engine *e,
                    struct narf_client *c,
                    int argc,
                    const char **argv,
                    const size_t *len,
                    struct narf_buf *out)
{
	if (argc % 2 != 1)
		return narf_reply_wrong_arity(out, "mset");
	for (int i = 1; i < argc; i += 2)
		if (store_set(e, argv[i], len[i], argv[i + 1], len[i + 1], 0) !=
		    0)
			return reply_oom(out, out->len);
	return narf_resp_simple(out, "OK");
}

static int cmd_msetnx(struct narf_engine *e,
                      struct narf_client *c,
                      int argc,
                      const char **argv,
                      const size_t *len,
                      struct narf_buf *out)
{
	if (argc % 2 != 1)
		return narf_reply_wrong_arity(out, "msetnx");
	for (int i = 1; i < argc; i += 2)
		if (narf_lookup(e, argv[i], len[i], false) != NULL)
			return narf_resp_int(out, 0);
	for (int i = 1; i < argc; i += 2)
		if (store_set(e, argv[i], len[i], argv[i + 1], len[i + 1], 0) !=
		    0)
			return reply_oom(out, out->len);
	return narf_resp_int(out, 1);
}

/* --- counters ------------------------------------------------------------- */

static int incr_by(struct narf_engine *e,
                   const char **argv,
                   const size_t *len,
                   long long by,
                   struct narf_buf *out)
{
	struct narf_entry *en = narf_lookup(e, argv[1], len[1], false);
	long long cur = 0;
	struct narf_keyref k;
	char num[32];
	size_t n;

	if (wrongtype(en))
		return narf_reply_wrongtype(out);
	if (en != NULL) {
		size_t vlen;
		const char *v = narf_entry_value(en, &vlen);

		if (!narf_str_to_ll(v, vlen, &cur))
			return narf_resp_error(out,
			                       "ERR value is not an "
			                       "integer or out of range");
	}
	if ((by < 0 && cur < 0 && by < LLONG_MIN - cur) ||
	    (by > 0 && cur > 0 && by > LLONG_MAX - cur))
		return narf_resp_error(out,
		                       "ERR increment or decrement would "
		                       "overflow");
	cur += by;
	n = narf_format_ll(num, cur);
	k = narf_key_ref(e, argv[1], len[1]);
	/* One walk of the hash chain: en is rewritten where it is. */
	if (narf_store_update(e->store, k.slot, argv[1], len[1], k.h, en, num,
	                      n, en ? NARF_STORE_KEEPTTL : 0,
	                      narf_engine_now(e)) != 0)
		return reply_oom(out, out->len);
	return narf_resp_int(out, cur);
}

static int cmd_incr(struct narf_engine *e,
                    struct narf_client *c,
                    int argc,
                    const char **argv,
                    const size_t *len,
                    struct narf_buf *out)
{
	return incr_by(e, argv, len, 1, out);
}

static int cmd_decr(struct narf_engine *e,
                    struct narf_client *c,
                    int argc,
                    const char **argv,
                    const size_t *len,
                    struct narf_buf *out)
{
	return incr_by(e, argv, len, -1, out);
}

static int cmd_incrby(struct narf_engine *e,
                      struct narf_client *c,
                      int argc,
                      const char **argv,
                      const size_t *len,
                      struct narf_buf *out)
{
	long long by;

	if (narf_arg_ll(out, argv[2], len[2], &by) != 0)
		return 0;
	return incr_by(e, argv, len, by, out);
}

static int cmd_decrby(struct narf_engine *e,
                      struct narf_client *c,
                      int argc,
                      const char **argv,
                      const size_t *len,
                      struct narf_buf *out)
{
	long long by;

	if (narf_arg_ll(out, argv[2], len[2], &by) != 0)
		return 0;
	if (by == LLONG_MIN)
		return narf_resp_error(out, "ERR decrement would overflow");
	return incr_by(e, argv, len, -by, out);
}

static int cmd_incrbyfloat(struct narf_engine *e,
                           struct narf_client *c,
                           int argc,
                           const char **argv,
                           const size_t *len,
                           struct narf_buf *out)
{
	struct narf_entry *en = narf_lookup(e, argv[1], len[1], false);
	long double cur = 0, by;
	struct narf_buf num;
	size_t mark = out->len;
	int rv;

	if (!narf_str_to_ld(argv[2], len[2], &by))
		return narf_resp_error(out, "ERR value is not a valid float");
	if (wrongtype(en))
		return narf_reply_wrongtype(out);
	if (en != NULL) {
		size_t vlen;
		const char *v = narf_entry_value(en, &vlen);

		if (!narf_str_to_ld(v, vlen, &cur))
			return narf_resp_error(out,
			                       "ERR value is not a valid "
			                       "float");
	}
	cur += by;
	if (isnan(cur) || isinf(cur))
		return narf_resp_error(out,
		                       "ERR increment would produce NaN "
		                       "or Infinity");
	/* Encode once as a bulk, then store the digits of that bulk. */
	narf_buf_init(&num);
	rv = narf_resp_bulk_double(&num, cur);
	if (rv == 0) {
		const char *digits = memchr(num.data, '\n', num.len) + 1;
		size_t dlen = num.len - (size_t)(digits - num.data) - 2;

		if (store_set(e, argv[1], len[1], digits, dlen,
		              en ? NARF_STORE_KEEPTTL : 0) != 0)
			rv = reply_oom(out, mark);
		else
			rv = narf_buf_append(out, num.data, num.len);
	}
	narf_buf_close(&num);
	return rv;
}

#define W (NARF_CMD_WRITE | NARF_CMD_DENYOOM)
#define R NARF_CMD_READONLY
const struct narf_command narf_string_commands[] = {
        {"get", cmd_get, 2, R | NARF_CMD_FAST, 1, 1, 1},
        {"set", cmd_set, -3, W, 1, 1, 1},
        {"setnx", cmd_setnx, 3, W | NARF_CMD_FAST, 1, 1, 1},
        {"setex", cmd_setex, 4, W, 1, 1, 1},
        {"psetex", cmd_psetex, 4, W, 1, 1, 1},
        {"getset", cmd_getset, 3, W | NARF_CMD_FAST, 1, 1, 1},
        {"getdel", cmd_getdel, 2, NARF_CMD_WRITE | NARF_CMD_FAST, 1, 1, 1},
        {"getex", cmd_getex, -2, NARF_CMD_WRITE | NARF_CMD_FAST, 1, 1, 1},
        {"getrange", cmd_getrange, 4, R, 1, 1, 1},
        {"substr", cmd_getrange, 4, R, 1, 1, 1},
        {"setrange", cmd_setrange, 4, W, 1, 1, 1},
        {"append", cmd_append, 3, W | NARF_CMD_FAST, 1, 1, 1},
        {"strlen", cmd_strlen, 2, R | NARF_CMD_FAST, 1, 1, 1},
        {"mget", cmd_mget, -2, R | NARF_CMD_FAST | NARF_CMD_SPLIT_ARRAY, 1, -1,
         1},
        {"mset", cmd_mset, -3, W | NARF_CMD_SPLIT_OK, 1, -1, 2},
        {"msetnx", cmd_msetnx, -3, W, 1, -1, 2},
        {"incr", cmd_incr, 2, W | NARF_CMD_FAST, 1, 1, 1},
        {"decr", cmd_decr, 2, W | NARF_CMD_FAST, 1, 1, 1},
        {"incrby", cmd_incrby, 3, W | NARF_CMD_FAST, 1, 1, 1},
        {"decrby", cmd_decrby, 3, W | NARF_CMD_FAST, 1, 1, 1},
        {"incrbyfloat", cmd_incrbyfloat, 3, W | NARF_CMD_FAST, 1, 1, 1},
        {NULL, NULL, 0, 0, 0, 0, 0},
};
