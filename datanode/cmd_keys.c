/*
 * Keyspace commands with Redis 7.0's semantics: DEL/UNLINK, EXISTS, TOUCH,
 * TYPE, RENAME(NX), RANDOMKEY, the EXPIRE family with NX/XX/GT/LT, TTL
 * queries, PERSIST, SCAN, KEYS, DBSIZE and FLUSHALL/FLUSHDB.
 *
 * TYPE, OBJECT ENCODING and SCAN's TYPE filter know every type
 * (common/coll.h); RENAME moves a collection without copying it.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/coll.h"
#include "engine.h"
#include "reply.h"

static int64_t now_of(struct narf_engine *e)
{
	return narf_engine_now(e);
}

static bool del_key(struct narf_engine *e, const char *k, size_t n)
{
	return narf_store_del(e->store, narf_key_slot(k, n), k, n, now_of(e));
}

static int cmd_del(struct narf_engine *e,
                   struct narf_client *c,
                   int argc,
                   const char **argv,
                   const size_t *len,
                   struct narf_buf *out)
{
	long long n = 0;

	for (int i = 1; i < argc; i++)
		n += del_key(e, argv[i], len[i]);
	return narf_resp_int(out, n);
}

static int cmd_exists(struct narf_engine *e,
                      struct narf_client *c,
                      int argc,
                      const char **argv,
                      const size_t *len,
                      struct narf_buf *out)
{
	long long n = 0;

	/* A key named twice counts twice, as in Redis. */
	for (int i = 1; i < argc; i++)
		n += narf_store_get(e->store, narf_key_slot(argv[i], len[i]),
		                    argv[i], len[i], now_of(e),
		                    NARF_STORE_NOTOUCH) != NULL;
	return narf_resp_int(out, n);
}

static int cmd_touch(struct narf_engine *e,
                     struct narf_client *c,
                     int argc,
                     const char **argv,
                     const size_t *len,
                     struct narf_buf *out)
{
	long long n = 0;

	for (int i = 1; i < argc; i++)
		n += narf_lookup(e, argv[i], len[i], false) != NULL;
	return narf_resp_int(out, n);
}

static int cmd_type(struct narf_engine *e,
                    struct narf_client *c,
                    int argc,
                    const char **argv,
                    const size_t *len,
                    struct narf_buf *out)
{
	struct narf_entry *en =
	        narf_store_get(e->store, narf_key_slot(argv[1], len[1]),
	                       argv[1], len[1], now_of(e), NARF_STORE_NOTOUCH);

	return narf_resp_simple(
	        out, en ? narf_type_name(narf_entry_type(en)) : "none");
}

/* A string's OBJECT ENCODING as Redis 7.0 would have chosen it: "int" for
 * a canonical integer of at most 20 bytes, "embstr" up to 44 bytes, "raw"
 * beyond (narf stores every string the same way). */
static const char *string_encoding(const struct narf_entry *en)
{
	size_t n;
	const char *v = narf_entry_value(en, &n);
	long long ll;

	if (n <= 20 && narf_str_to_ll(v, n, &ll))
		return "int";
	return n <= 44 ? "embstr" : "raw";
}

static int cmd_object(struct narf_engine *e,
                      struct narf_client *c,
                      int argc,
                      const char **argv,
                      const size_t *len,
                      struct narf_buf *out)
{
	const char *sub = argv[1];
	struct narf_entry *en;
	struct narf_coll coll;

	if (narf_arg_is(sub, len[1], "help") && argc == 2) {
		static const char *const help[] = {
		        "OBJECT <subcommand> [<arg> [value] [opt] ...]. "
		        "Subcommands are:",
		        "ENCODING <key>",
		        "    Return the kind of internal representation used "
		        "in "
		        "order to store the value",
		        "    associated with a <key>.",
		        "FREQ <key>",
		        "    Return the access frequency index of the <key>. "
		        "The "
		        "returned integer is",
		        "    proportional to the logarithm of the recent "
		        "access "
		        "frequency of the key.",
		        "IDLETIME <key>",
		        "    Return the idle time of the <key>, that is the "
		        "approximated number of",
		        "    seconds elapsed since the last access to the key.",
		        "REFCOUNT <key>",
		        "    Return the number of references of the value "
		        "associated with the specified",
		        "    <key>.",
		        "HELP",
		        "    Prints this help.",
		};
		size_t n = sizeof(help) / sizeof(help[0]);

		narf_resp_array(out, (long long)n);
		for (size_t i = 0; i < n; i++)
			narf_resp_simple(out, help[i]);
		return 0;
	}
	if (argc != 3 || !(narf_arg_is(sub, len[1], "encoding") ||
	                   narf_arg_is(sub, len[1], "freq") ||
	                   narf_arg_is(sub, len[1], "idletime") ||
	                   narf_arg_is(sub, len[1], "refcount")))
		return narf_resp_errorf(
		        out,
		        "ERR unknown subcommand or wrong number "
		        "of arguments for '%.*s'. Try OBJECT "
		        "HELP.",
		        (int)len[1], sub);
	en = narf_store_get(e->store, narf_key_slot(argv[2], len[2]), argv[2],
	                    len[2], now_of(e), NARF_STORE_NOTOUCH);
	if (en == NULL)
		return narf_reply_null(c, out);
	if (narf_arg_is(sub, len[1], "encoding")) {
		if (!narf_entry_coll(en, &coll))
			return narf_resp_bulk_str(out, string_encoding(en));
		return narf_resp_bulk_str(
		        out, narf_enc_name((enum narf_enc)coll.enc));
	}
	if (narf_arg_is(sub, len[1], "idletime"))
		return narf_resp_int(out, (long long)narf_entry_idle(
		                                  e->store, en, now_of(e)));
	if (narf_arg_is(sub, len[1], "refcount"))
		return narf_resp_int(out, 1);
	return narf_resp_error(out,
	                       "ERR An LFU maxmemory policy is not selected, "
	                       "access frequency not tracked. Please note that "
	                       "when switching between policies at runtime LRU "
	                       "and LFU data will take some time to adjust.");
}

static int rename_generic(struct narf_engine *e,
                          const char **argv,
                          const size_t *len,
                          bool nx,
                          struct narf_buf *out)
{
	int rv;

	if (narf_lookup(e, argv[1], len[1], false) == NULL)
		return narf_resp_error(out, "ERR no such key");
	if (len[1] == len[2] && memcmp(argv[1], argv[2], len[1]) == 0)
		return nx ? narf_resp_int(out, 0) : narf_resp_simple(out, "OK");
	if (nx && narf_lookup(e, argv[2], len[2], false) != NULL)
		return narf_resp_int(out, 0);
	rv = narf_store_rename(e->store, narf_key_slot(argv[1], len[1]),
	                       argv[1], len[1], narf_key_slot(argv[2], len[2]),
	                       argv[2], len[2], now_of(e));
	if (rv == NARF_ENOTFOUND)
		return narf_resp_error(out, "ERR no such key");
	if (rv == NARF_ENOMEM)
		return rv;
	if (rv != 0)
		return narf_resp_error(out,
		                       "OOM command not allowed when used "
		                       "memory > 'maxmemory'.");
	/* a list renamed onto a key somebody blocks on serves them */
	narf_block_signal(&e->block, narf_key_slot(argv[2], len[2]), argv[2],
	                  len[2]);
	return nx ? narf_resp_int(out, 1) : narf_resp_simple(out, "OK");
}

/* COPY src dst [DB 0] [REPLACE]: dst gets a copy of src's value and TTL,
 * whatever its type (a collection is copied element by element, O(n) as
 * in Redis); 1, or 0 when src is missing or dst exists without REPLACE. */
static int cmd_copy(struct narf_engine *e,
                    struct narf_client *c,
                    int argc,
                    const char **argv,
                    const size_t *len,
                    struct narf_buf *out)
{
	unsigned sslot = narf_key_slot(argv[1], len[1]);
	unsigned dslot = narf_key_slot(argv[2], len[2]);
	int64_t now = now_of(e), expire;
	struct narf_entry *src;
	struct narf_coll sc, copy;
	struct narf_cref r;
	bool replace = false;
	int rv;

	for (int i = 3; i < argc; i++) {
		long long db;

		if (narf_arg_is(argv[i], len[i], "replace")) {
			replace = true;
		} else if (narf_arg_is(argv[i], len[i], "db") && i + 1 < argc) {
			if (narf_arg_ll(out, argv[i + 1], len[i + 1], &db) != 0)
				return 0;
			if (db != 0)
				return narf_resp_error(
				        out, "ERR DB index is out of range");
			i++;
		} else {
			return narf_reply_syntax(out);
		}
	}
	if (len[1] == len[2] && memcmp(argv[1], argv[2], len[1]) == 0)
		return narf_resp_error(out,
		                       "ERR source and destination objects "
		                       "are the same");
	src = narf_lookup(e, argv[1], len[1], false);
	if (src == NULL)
		return narf_resp_int(out, 0);
	if (narf_lookup(e, argv[2], len[2], false) != NULL) {
		if (!replace)
			return narf_resp_int(out, 0);
		del_key(e, argv[2], len[2]);
	}
	/* looking dst up (and deleting it) may have reclaimed src */
	src = narf_lookup(e, argv[1], len[1], false);
	if (src == NULL)
		return narf_resp_int(out, 0);
	expire = narf_entry_expire(src);
	if (!narf_entry_coll(src, &sc)) {
		size_t vlen;
		const char *v = narf_entry_value(src, &vlen);
		char *buf = malloc(vlen ? vlen : 1);

		if (buf == NULL)
			return NARF_ENOMEM;
		memcpy(buf, v, vlen);
		rv = narf_store_set(e->store, dslot, argv[2], len[2], buf, vlen,
		                    expire, now, NULL);
		free(buf);
		if (rv != 0)
			return narf_resp_error(out,
			                       "OOM command not allowed when "
			                       "used memory > 'maxmemory'.");
		return narf_resp_int(out, 1);
	}
	copy = (struct narf_coll){sc.type, sc.enc, NULL};
	copy.enc = sc.type == NARF_TYPE_LIST  ? NARF_ENC_QUICKLIST
	           : sc.type == NARF_TYPE_SET ? NARF_ENC_INTSET
	                                      : NARF_ENC_LISTPACK;
	rv = narf_coll_copy(narf_store_coll_ctx(e->store), &sc, &copy);
	if (rv != 0)
		return rv;
	rv = narf_store_coll_open(e->store, dslot, argv[2], len[2],
	                          (enum narf_type)sc.type, 0, NARF_COLL_CREATE,
	                          now, &r);
	if (rv != 0) {
		narf_coll_free(narf_store_coll_ctx(e->store), &copy);
		return narf_resp_error(out,
		                       "OOM command not allowed when used "
		                       "memory > 'maxmemory'.");
	}
	r.c.p = copy.p;
	r.c.enc = copy.enc;
	narf_store_coll_close(e->store, &r, now);
	narf_block_signal(&e->block, dslot, argv[2], len[2]);
	/* a value built whole: its replicas get it whole, then its TTL (in
	 * that order: a replica must have the key to take its TTL) */
	narf_engine_send_value(e, dslot, argv[2], len[2]);
	if (expire != 0) {
		struct narf_entry *en =
		        narf_store_get(e->store, dslot, argv[2], len[2], now,
		                       NARF_STORE_NOTOUCH);

		if (en != NULL)
			narf_store_set_expire(e->store, dslot, en, expire);
	}
	(void)sslot;
	return narf_resp_int(out, 1);
}

static int cmd_rename(struct narf_engine *e,
                      struct narf_client *c,
                      int argc,
                      const char **argv,
                      const size_t *len,
                      struct narf_buf *out)
{
	return rename_generic(e, argv, len, false, out);
}

static int cmd_renamenx(struct narf_engine *e,
                        struct narf_client *c,
                        int argc,
                        const char **argv,
                        const size_t *len,
                        struct narf_buf *out)
{
	return rename_generic(e, argv, len, true, out);
}

static int cmd_randomkey(struct narf_engine *e,
                         struct narf_client *c,
                         int argc,
                         const char **argv,
                         const size_t *len,
                         struct narf_buf *out)
{
	struct narf_entry *en = narf_store_random(e->store, now_of(e), NULL);
	const char *k;
	size_t n;

	if (en == NULL)
		return narf_reply_null(c, out);
	k = narf_entry_key(en, &n);
	return narf_resp_bulk(out, k, n);
}

/* --- expiry ----------------------------------------------------------------
 */

enum { EXPIRE_NX = 1, EXPIRE_XX = 2, EXPIRE_GT = 4, EXPIRE_LT = 8 };

static int parse_expire_flags(struct narf_buf *out,
                              int argc,
                              const char **argv,
                              const size_t *len,
                              int *flags)
{
	*flags = 0;
	for (int i = 3; i < argc; i++) {
		if (narf_arg_is(argv[i], len[i], "nx"))
			*flags |= EXPIRE_NX;
		else if (narf_arg_is(argv[i], len[i], "xx"))
			*flags |= EXPIRE_XX;
		else if (narf_arg_is(argv[i], len[i], "gt"))
			*flags |= EXPIRE_GT;
		else if (narf_arg_is(argv[i], len[i], "lt"))
			*flags |= EXPIRE_LT;
		else
			return narf_resp_errorf(
			               out,
			               "ERR Unsupported option "
			               "%.*s",
			               (int)(len[i] > 64 ? 64 : len[i]),
			               argv[i]),
			       -1;
	}
	if ((*flags & EXPIRE_NX) && (*flags & ~EXPIRE_NX)) {
		narf_resp_error(out,
		                "ERR NX and XX, GT or LT options at the "
		                "same time are not compatible");
		return -1;
	}
	if ((*flags & EXPIRE_GT) && (*flags & EXPIRE_LT)) {
		narf_resp_error(out,
		                "ERR GT and LT options at the same time "
		                "are not compatible");
		return -1;
	}
	return 0;
}

/* EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT: unit_ms is 1000 or 1, relative
 * says whether the time is from now. */
static int expire_generic(struct narf_engine *e,
                          int argc,
                          const char **argv,
                          const size_t *len,
                          long long unit_ms,
                          bool relative,
                          struct narf_buf *out)
{
	struct narf_entry *en;
	long long when;
	int64_t now = now_of(e), cur;
	int flags;

	if (narf_arg_ll(out, argv[2], len[2], &when) != 0 ||
	    parse_expire_flags(out, argc, argv, len, &flags) != 0)
		return 0;
	if ((when > LLONG_MAX / unit_ms) || (when < LLONG_MIN / unit_ms))
		goto invalid;
	when *= unit_ms;
	if (relative) {
		if (when > 0 && when > LLONG_MAX - now)
			goto invalid;
		when += now;
	}
	en = narf_lookup(e, argv[1], len[1], false);
	if (en == NULL)
		return narf_resp_int(out, 0);
	cur = narf_entry_expire(en);
	/* No TTL counts as an infinite one for GT and LT. */
	if (((flags & EXPIRE_NX) && cur != 0) ||
	    ((flags & EXPIRE_XX) && cur == 0) ||
	    ((flags & EXPIRE_GT) && (cur == 0 || when <= cur)) ||
	    ((flags & EXPIRE_LT) && cur != 0 && when >= cur))
		return narf_resp_int(out, 0);
	if (when <= now)
		del_key(e, argv[1], len[1]);
	else
		narf_store_set_expire(e->store, narf_key_slot(argv[1], len[1]),
		                      en, when);
	return narf_resp_int(out, 1);
invalid:
	return narf_resp_errorf(
	        out, "ERR invalid expire time in '%s' command",
	        relative ? (unit_ms == 1 ? "pexpire" : "expire")
	                 : (unit_ms == 1 ? "pexpireat" : "expireat"));
}

static int cmd_expire(struct narf_engine *e,
                      struct narf_client *c,
                      int argc,
                      const char **argv,
                      const size_t *len,
                      struct narf_buf *out)
{
	return expire_generic(e, argc, argv, len, 1000, true, out);
}

static int cmd_pexpire(struct narf_engine *e,
                       struct narf_client *c,
                       int argc,
                       const char **argv,
                       const size_t *len,
                       struct narf_buf *out)
{
	return expire_generic(e, argc, argv, len, 1, true, out);
}

static int cmd_expireat(struct narf_engine *e,
                        struct narf_client *c,
                        int argc,
                        const char **argv,
                        const size_t *len,
                        struct narf_buf *out)
{
	return expire_generic(e, argc, argv, len, 1000, false, out);
}

static int cmd_pexpireat(struct narf_engine *e,
                         struct narf_client *c,
                         int argc,
                         const char **argv,
                         const size_t *len,
                         struct narf_buf *out)
{
	return expire_generic(e, argc, argv, len, 1, false, out);
}

enum { TTL_REL_S, TTL_REL_MS, TTL_ABS_S, TTL_ABS_MS };

static int ttl_generic(struct narf_engine *e,
                       const char **argv,
                       const size_t *len,
                       int kind,
                       struct narf_buf *out)
{
	struct narf_entry *en =
	        narf_store_get(e->store, narf_key_slot(argv[1], len[1]),
	                       argv[1], len[1], now_of(e), NARF_STORE_NOTOUCH);
	int64_t exp, left;

	if (en == NULL)
		return narf_resp_int(out, -2);
	exp = narf_entry_expire(en);
	if (exp == 0)
		return narf_resp_int(out, -1);
	left = exp - now_of(e);
	if (left < 0)
		left = 0;
	switch (kind) {
	case TTL_REL_S:
		return narf_resp_int(out, (left + 500) / 1000);
	case TTL_REL_MS:
		return narf_resp_int(out, left);
	case TTL_ABS_S:
		return narf_resp_int(
		        out, exp / 1000 + (exp % 1000 >= 500)); /* as Redis */
	default:
		return narf_resp_int(out, exp);
	}
}

static int cmd_ttl(struct narf_engine *e,
                   struct narf_client *c,
                   int argc,
                   const char **argv,
                   const size_t *len,
                   struct narf_buf *out)
{
	return ttl_generic(e, argv, len, TTL_REL_S, out);
}

static int cmd_pttl(struct narf_engine *e,
                    struct narf_client *c,
                    int argc,
                    const char **argv,
                    const size_t *len,
                    struct narf_buf *out)
{
	return ttl_generic(e, argv, len, TTL_REL_MS, out);
}

static int cmd_expiretime(struct narf_engine *e,
                          struct narf_client *c,
                          int argc,
                          const char **argv,
                          const size_t *len,
                          struct narf_buf *out)
{
	return ttl_generic(e, argv, len, TTL_ABS_S, out);
}

static int cmd_pexpiretime(struct narf_engine *e,
                           struct narf_client *c,
                           int argc,
                           const char **argv,
                           const size_t *len,
                           struct narf_buf *out)
{
	return ttl_generic(e, argv, len, TTL_ABS_MS, out);
}

static int cmd_persist(struct narf_engine *e,
                       struct narf_client *c,
                       int argc,
                       const char **argv,
                       const size_t *len,
                       struct narf_buf *out)
{
	struct narf_entry *en = narf_lookup(e, argv[1], len[1], false);

	if (en == NULL || narf_entry_expire(en) == 0)
		return narf_resp_int(out, 0);
	narf_store_set_expire(e->store, narf_key_slot(argv[1], len[1]), en, 0);
	return narf_resp_int(out, 1);
}

/* --- iteration ---------------------------------------------------------------
 */

struct collect {
	struct narf_buf keys; /* RESP bulks of the matching keys */
	long long n;
	const char *pat; /* borrowed; NULL matches all */
	size_t plen;
	int type; /* TYPE filter: the enum narf_type wanted, -1 any, -2 none */
	int err;
};

static bool collect_cb(void *data, const struct narf_entry *en)
{
	struct collect *col = data;
	size_t n;
	const char *k = narf_entry_key(en, &n);

	if (col->type == -2 ||
	    (col->type >= 0 && col->type != (int)narf_entry_type(en)))
		return true;
	if (col->pat != NULL &&
	    !narf_glob_match(col->pat, col->plen, k, n, false))
		return true;
	if (narf_resp_bulk(&col->keys, k, n) != 0) {
		col->err = NARF_ENOMEM;
		return false;
	}
	col->n++;
	return true;
}

static int cmd_keys(struct narf_engine *e,
                    struct narf_client *c,
                    int argc,
                    const char **argv,
                    const size_t *len,
                    struct narf_buf *out)
{
	struct collect col = {.pat = argv[1], .plen = len[1], .type = -1};
	int64_t now = now_of(e);
	int rv;

	if (len[1] == 1 && argv[1][0] == '*')
		col.pat = NULL;
	narf_buf_init(&col.keys);
	for (unsigned s = 0; s < NARF_SLOTS && col.err == 0; s++)
		if (narf_store_slot_count(e->store, s) > 0)
			narf_store_foreach_slot(e->store, s, now, collect_cb,
			                        &col);
	rv = col.err;
	if (rv == 0)
		rv = narf_resp_array(out, col.n);
	if (rv == 0)
		rv = narf_buf_append(out, col.keys.data, col.keys.len);
	narf_buf_close(&col.keys);
	return rv;
}

static int cmd_scan(struct narf_engine *e,
                    struct narf_client *c,
                    int argc,
                    const char **argv,
                    const size_t *len,
                    struct narf_buf *out)
{
	struct collect col = {.type = -1};
	unsigned long long cursor = 0;
	long long count = 10;
	char num[32];
	int rv;

	if (narf_parse_scan_cursor(argv[1], len[1], &cursor) != 0)
		return narf_resp_error(out, "ERR invalid cursor");
	for (int i = 2; i < argc; i += 2) {
		if (i + 1 >= argc)
			return narf_reply_syntax(out);
		if (narf_arg_is(argv[i], len[i], "count")) {
			if (narf_arg_ll(out, argv[i + 1], len[i + 1], &count) !=
			    0)
				return 0;
			if (count < 1)
				return narf_reply_syntax(out);
		} else if (narf_arg_is(argv[i], len[i], "match")) {
			col.pat = argv[i + 1];
			col.plen = len[i + 1];
			if (col.plen == 1 && col.pat[0] == '*')
				col.pat = NULL;
		} else if (narf_arg_is(argv[i], len[i], "type")) {
			col.type = -2; /* an unknown name matches nothing */
			for (int t = 0; t < NARF_TYPE_COUNT; t++)
				if (narf_arg_is(
				            argv[i + 1], len[i + 1],
				            narf_type_name((enum narf_type)t)))
					col.type = t;
		} else {
			return narf_reply_syntax(out);
		}
	}
	narf_buf_init(&col.keys);
	/* As Redis: visit buckets until COUNT keys are collected, giving
	 * up after 10x COUNT buckets so sparse tables cannot stall us. */
	if (count > 100000)
		count = 100000;
	for (long long budget = count * 10; budget > 0; budget--) {
		cursor = narf_store_scan(e->store, cursor, 1, now_of(e),
		                         collect_cb, &col);
		if (cursor == 0 || col.n >= count || col.err != 0)
			break;
	}
	rv = col.err;
	if (rv == 0) {
		int n = snprintf(num, sizeof(num), "%llu", cursor);

		narf_resp_array(out, 2);
		narf_resp_bulk(out, num, (size_t)n);
		narf_resp_array(out, col.n);
		rv = narf_buf_append(out, col.keys.data, col.keys.len);
	}
	narf_buf_close(&col.keys);
	return rv;
}

static int cmd_dbsize(struct narf_engine *e,
                      struct narf_client *c,
                      int argc,
                      const char **argv,
                      const size_t *len,
                      struct narf_buf *out)
{
	return narf_resp_int(out, (long long)narf_store_count(e->store));
}

static int cmd_flushall(struct narf_engine *e,
                        struct narf_client *c,
                        int argc,
                        const char **argv,
                        const size_t *len,
                        struct narf_buf *out)
{
	if (argc > 2 || (argc == 2 && !narf_arg_is(argv[1], len[1], "sync") &&
	                 !narf_arg_is(argv[1], len[1], "async")))
		return narf_reply_syntax(out);
	/* In a cluster a flush would empty replica copies that the ISR
	 * counts on and would not reach the other copies: refused. */
	if (e->cluster_map != NULL)
		return narf_resp_error(out,
		                       "ERR FLUSHALL and FLUSHDB are not "
		                       "supported in a cluster; delete keys "
		                       "instead");
	narf_store_flush(e->store);
	return narf_resp_simple(out, "OK");
}

#define W NARF_CMD_WRITE
#define R NARF_CMD_READONLY
#define F NARF_CMD_FAST
const struct narf_command narf_key_commands[] = {
        {"del", cmd_del, -2, W | NARF_CMD_SPLIT_SUM, 1, -1, 1},
        {"unlink", cmd_del, -2, W | F | NARF_CMD_SPLIT_SUM, 1, -1, 1},
        {"exists", cmd_exists, -2, R | F | NARF_CMD_SPLIT_SUM, 1, -1, 1},
        {"touch", cmd_touch, -2, R | F | NARF_CMD_SPLIT_SUM, 1, -1, 1},
        {"type", cmd_type, 2, R | F, 1, 1, 1},
        {"object", cmd_object, -2, R, 2, 2, 1},
        {"rename", cmd_rename, 3, W, 1, 2, 1},
        {"copy", cmd_copy, -3, W | NARF_CMD_DENYOOM, 1, 2, 1},
        {"renamenx", cmd_renamenx, 3, W | F, 1, 2, 1},
        {"randomkey", cmd_randomkey, 1, R, 0, 0, 0},
        {"expire", cmd_expire, -3, W | F, 1, 1, 1},
        {"pexpire", cmd_pexpire, -3, W | F, 1, 1, 1},
        {"expireat", cmd_expireat, -3, W | F, 1, 1, 1},
        {"pexpireat", cmd_pexpireat, -3, W | F, 1, 1, 1},
        {"expiretime", cmd_expiretime, 2, R | F, 1, 1, 1},
        {"pexpiretime", cmd_pexpiretime, 2, R | F, 1, 1, 1},
        {"ttl", cmd_ttl, 2, R | F, 1, 1, 1},
        {"pttl", cmd_pttl, 2, R | F, 1, 1, 1},
        {"persist", cmd_persist, 2, W | F, 1, 1, 1},
        {"scan", cmd_scan, -2, R, 0, 0, 0},
        {"keys", cmd_keys, 2, R, 0, 0, 0},
        {"dbsize", cmd_dbsize, 1, R | F, 0, 0, 0},
        {"flushall", cmd_flushall, -1, W | NARF_CMD_ADMIN, 0, 0, 0},
        {"flushdb", cmd_flushall, -1, W | NARF_CMD_ADMIN, 0, 0, 0},
        {NULL, NULL, 0, 0, 0, 0, 0},
};
