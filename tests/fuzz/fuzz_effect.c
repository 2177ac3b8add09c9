/*
 * libFuzzer target for the replica side of collection replication
 * (datanode/cmd_effect.c): the NARF.* effect and sync messages a peer
 * sends, run through the whole engine (narf_engine_exec) as a proven peer,
 * mixed with the client commands that read and write the same keys.
 *
 * Each input is a program. Its first byte picks the encoding thresholds
 * (small ones, so conversions happen within a few elements); then each op
 * is one byte choosing a message, followed by its arguments: a key (one of
 * four, in two slots), an element count (-1, the true count or a wrong
 * one, or bytes that are no number), elements (a length byte and that many
 * input bytes, or one of a few interesting strings), scores, indexes.
 * Op 32 sends a message whose every argument comes from the input. The
 * client commands go bare or wrapped as a forwarded request (NARF.REQ with
 * RESP2 or RESP3, or a header that does not parse).
 *
 * After every op: the reply must be exactly one well-formed RESP reply,
 * and every key must read back consistently: its TYPE, a full read
 * (HGETALL, LRANGE, SMEMBERS, ZRANGE WITHSCORES) and its length command
 * (HLEN, LLEN, SCARD, ZCARD) must agree on the number of elements. At the
 * end FLUSHALL deletes every key and lazily freed memory is reaped, and
 * used_memory must be back where it was before the program: every byte the
 * effects allocated is accounted for and freed.
 *
 * Built by tests/fuzz/run.sh (with the data node's sources), not by meson.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/resp.h"
#include "common/store.h"
#include "datanode/engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXARGS 40
#define NKEYS 4

static void check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_effect: broken invariant: %s\n", what);
		abort();
	}
}

static int64_t fake_clock(void *data)
{
	(void)data;
	return 1700000000000LL;
}

struct prog {
	const uint8_t *p, *end;
};

static unsigned byte(struct prog *g)
{
	return g->p < g->end ? *g->p++ : 0;
}

/* {a} and {b} put two keys in each of two slots. */
static const char *const keys[NKEYS] = {"{a}1", "{a}2", "{b}1", "{b}2"};

static const char *const names[] = {
        "NARF.HSET",    "NARF.HDEL",      "NARF.SADD",  "NARF.SREM",
        "NARF.ZADD",    "NARF.ZREM",      "NARF.LPUSH", "NARF.RPUSH",
        "NARF.LPOP",    "NARF.RPOP",      "NARF.LSET",  "NARF.LINSERT",
        "NARF.LREM",    "NARF.LTRIM",     "NARF.LMOVE", "NARF.CLOAD",
        "NARF.CAPPEND", "NARF.PEXPIREAT", "NARF.SET",   "NARF.DEL",
};
#define NNAMES (sizeof(names) / sizeof(names[0]))

static const char *const words[] = {
        "",     "0",      "1",     "-1",    "12345678901234567890",
        "inf",  "-inf",   "nan",   "1e308", "2.5",
        "abc",  "BEFORE", "AFTER", "LEFT",  "RIGHT",
        "hash", "list",   "set",   "zset",  "string",
};
#define NWORDS (sizeof(words) / sizeof(words[0]))

/* The arguments of one command, in a scratch area of the program. */
struct cmd {
	int argc;
	const char *argv[MAXARGS];
	size_t len[MAXARGS];
	char scratch[MAXARGS][24];
};

static void add(struct cmd *c, const char *s, size_t n)
{
	if (c->argc < MAXARGS) {
		c->argv[c->argc] = s;
		c->len[c->argc++] = n;
	}
}

static void add_str(struct cmd *c, const char *s)
{
	add(c, s, strlen(s));
}

static void add_num(struct cmd *c, long long v)
{
	if (c->argc < MAXARGS) {
		char *s = c->scratch[c->argc];

		snprintf(s, sizeof(c->scratch[0]), "%lld", v);
		add_str(c, s);
	}
}

/* An element: mostly short strings over a tiny alphabet (so they collide),
 * small integers (intsets), or input bytes of any kind. */
static void add_elem(struct cmd *c, struct prog *g)
{
	unsigned b = byte(g);

	if (b < 96) {
		add_num(c, (long long)(b % 24) - 4);
	} else if (b < 200) {
		unsigned n = b % 12;

		if (c->argc < MAXARGS) {
			char *s = c->scratch[c->argc];

			for (unsigned i = 0; i < n; i++)
				s[i] = (char)('a' + byte(g) % 3);
			add(c, s, n);
		}
	} else if (b < 240) {
		add_str(c, words[byte(g) % NWORDS]);
	} else {
		size_t n = byte(g);

		if (n > (size_t)(g->end - g->p))
			n = (size_t)(g->end - g->p);
		add(c, (const char *)g->p, n);
		g->p += n;
	}
}

static void add_score(struct cmd *c, struct prog *g)
{
	unsigned b = byte(g);

	if (b < 200)
		add_num(c, (long long)(b % 16) - 4);
	else
		add_str(c, words[b % NWORDS]);
}

/* Run c; the reply must be exactly one RESP reply. Returns its bytes. */
static const char *run(struct narf_engine *e,
                       struct narf_client *cl,
                       struct cmd *c,
                       struct narf_buf *out)
{
	static int verbose = -1;
	size_t n = 0;
	int rv;

	if (verbose < 0)
		verbose = getenv("FUZZ_VERBOSE") != NULL;
	out->len = 0;
	if (verbose) /* FUZZ_VERBOSE=1 fuzz_effect REPRODUCER */
		for (int i = 0; i < c->argc; i++)
			fprintf(stderr, "%s%.*s%s", i ? " " : "> ",
			        (int)c->len[i], c->argv[i],
			        i + 1 == c->argc ? "\n" : "");
	rv = narf_engine_exec(e, cl, c->argc, c->argv, c->len, out);
	if (verbose)
		fprintf(stderr, "%.*s", (int)out->len, out->data);
	/* A blocking pop with nothing to pop: the server answers it (a
	 * peer's bare one at once with a null, blocking_io.c). */
	if (rv == NARF_EXEC_BLOCK) {
		check(out->len == 0, "a reply and a block");
		return out->data;
	}
	check(rv == 0, "narf_engine_exec failed");
	check(out->len > 0, "no reply");
	check(narf_resp_reply_len(out->data, out->len, UINT64_MAX, &n) ==
	                      NARF_RESP_DONE &&
	              n == out->len,
	      "reply is not exactly one RESP reply");
	return out->data;
}

static long long reply_int(const struct narf_buf *out)
{
	check(out->len > 1 && out->data[0] == ':', "not an integer reply");
	return strtoll(out->data + 1, NULL, 10);
}

static long long reply_count(const struct narf_buf *out)
{
	check(out->len > 1 && out->data[0] == '*', "not an array reply");
	return strtoll(out->data + 1, NULL, 10);
}

/* Every key reads back with its length command and its full read agreeing
 * (RESP2: HGETALL and WITHSCORES are flat, two per element). */
static void check_keys(struct narf_engine *e,
                       struct narf_client *cl,
                       struct narf_buf *out)
{
	static const struct {
		const char *type, *len, *read[6];
		int per;
	} rd[] = {
	        {"hash", "HLEN", {"HGETALL"}, 2},
	        {"list", "LLEN", {"LRANGE", "0", "-1"}, 1},
	        {"set", "SCARD", {"SMEMBERS"}, 1},
	        {"zset", "ZCARD", {"ZRANGE", "0", "-1", "WITHSCORES"}, 2},
	};

	for (unsigned k = 0; k < NKEYS; k++) {
		struct cmd c = {0};
		long long n;

		add_str(&c, "TYPE");
		add_str(&c, keys[k]);
		run(e, cl, &c, out);
		for (unsigned t = 0; t < sizeof(rd) / sizeof(rd[0]); t++) {
			size_t tl = strlen(rd[t].type);

			if (out->len != tl + 3 ||
			    memcmp(out->data + 1, rd[t].type, tl) != 0)
				continue;
			c.argc = 0;
			add_str(&c, rd[t].len);
			add_str(&c, keys[k]);
			run(e, cl, &c, out);
			n = reply_int(out);
			check(n > 0, "an empty collection was kept");
			c.argc = 0;
			add_str(&c, rd[t].read[0]);
			add_str(&c, keys[k]);
			for (int i = 1; i < 6 && rd[t].read[i] != NULL; i++)
				add_str(&c, rd[t].read[i]);
			run(e, cl, &c, out);
			check(reply_count(out) == n * rd[t].per,
			      "length and full read disagree");
			c.argc = 0;
			add_str(&c, "OBJECT");
			add_str(&c, "ENCODING");
			add_str(&c, keys[k]);
			run(e, cl, &c, out);
			check(out->data[0] == '$', "no encoding");
		}
	}
}

/* One op: a message with arguments drawn from the program. */
static void op(struct narf_engine *e,
               struct narf_client *cl,
               struct prog *g,
               struct narf_buf *out)
{
	unsigned which = byte(g) % 33;
	struct cmd c = {0};
	unsigned n;

	if (which == 32) { /* anything: a name and input bytes */
		add_str(&c, names[byte(g) % NNAMES]);
		n = byte(g) % 10;
		for (unsigned i = 0; i < n; i++)
			add_elem(&c, g);
		run(e, cl, &c, out);
		return;
	}
	if (which >= NNAMES) { /* a client command on the same keys */
		static const char *const cl_cmds[] = {
		        "HSET",    "SADD", "ZADD", "RPUSH", "LPOP",   "SPOP",
		        "ZPOPMIN", "HDEL", "DEL",  "COPY",  "RENAME", "BLPOP",
		};
		const char *name = cl_cmds[which - NNAMES];

		add_str(&c, name);
		add_str(&c, keys[byte(g) % NKEYS]);
		if (strcmp(name, "COPY") == 0 || strcmp(name, "RENAME") == 0) {
			/* same slot: {a}1 <-> {a}2, {b}1 <-> {b}2 */
			unsigned k = byte(g) % NKEYS;

			c.argv[1] = keys[k];
			c.len[1] = strlen(keys[k]);
			add_str(&c, keys[k ^ 1]);
			if (strcmp(name, "COPY") == 0)
				add_str(&c, "REPLACE");
		} else if (strcmp(name, "ZADD") == 0) {
			add_score(&c, g);
			add_elem(&c, g);
		} else if (strcmp(name, "HSET") == 0) {
			add_elem(&c, g);
			add_elem(&c, g);
		} else if (strcmp(name, "BLPOP") == 0) {
			add_str(&c, "0");
		} else if (strcmp(name, "DEL") != 0) {
			add_elem(&c, g);
		}
		if (byte(g) & 1) { /* as a forwarded request: NARF.REQ */
			struct cmd w = {0};
			unsigned h = byte(g);

			add_str(&w, "NARF.REQ");
			add_str(&w, h < 120   ? "2"
			            : h < 240 ? "3"
			                      : words[h % 5]);
			add_str(&w, "0");
			add_str(&w, h & 1 ? "0" : "100");
			for (int i = 0; i < c.argc; i++)
				add(&w, c.argv[i], c.len[i]);
			run(e, cl, &w, out);
			return;
		}
		run(e, cl, &c, out);
		return;
	}
	add_str(&c, names[which]);
	/* the slot epoch: mostly valid */
	add_str(&c, byte(g) < 240 ? "1" : words[byte(g) % NWORDS]);
	add_str(&c, keys[byte(g) % NKEYS]);
	if (which == 15 || which == 16) /* CLOAD, CAPPEND: the type */
		add_str(&c, words[14 + byte(g) % 6]);
	if (which == 15 || which == 17) /* CLOAD, PEXPIREAT: pxat */
		add_str(&c, byte(g) < 200 ? "0" : "1800000000000");
	if (which == 18) { /* NARF.SET <key> <value> <pxat> */
		add_elem(&c, g);
		add_str(&c, "0");
		run(e, cl, &c, out);
		return;
	}
	if (which == 17 || which == 19) {
		run(e, cl, &c, out);
		return;
	}
	/* the count: unchecked, a guess, or not a number */
	n = byte(g);
	if (n < 160)
		add_str(&c, "-1");
	else if (n < 250)
		add_num(&c, (long long)(n % 8));
	else
		add_str(&c, words[n % NWORDS]);
	switch (which) {
	case 4: /* ZADD: score member pairs */
		n = 1 + byte(g) % 4;
		for (unsigned i = 0; i < n; i++) {
			add_score(&c, g);
			add_elem(&c, g);
		}
		break;
	case 8: /* LPOP, RPOP: how many */
	case 9:
		add_num(&c, (long long)(byte(g) % 6));
		break;
	case 10: /* LSET index element */
		add_num(&c, (long long)(byte(g) % 10) - 5);
		add_elem(&c, g);
		break;
	case 11: /* LINSERT BEFORE|AFTER pivot element */
		add_str(&c, byte(g) & 1 ? "BEFORE" : "AFTER");
		add_elem(&c, g);
		add_elem(&c, g);
		break;
	case 12: /* LREM count element */
		add_num(&c, (long long)(byte(g) % 7) - 3);
		add_elem(&c, g);
		break;
	case 13: /* LTRIM start stop */
		add_num(&c, (long long)(byte(g) % 10) - 5);
		add_num(&c, (long long)(byte(g) % 10) - 5);
		break;
	case 14: /* LMOVE from to */
		add_str(&c, byte(g) & 1 ? "LEFT" : "RIGHT");
		add_str(&c, byte(g) & 1 ? "LEFT" : "RIGHT");
		break;
	default: /* elements (pairs for hashes and CLOAD'ing them) */
		n = byte(g) % 9;
		for (unsigned i = 0; i < n; i++)
			add_elem(&c, g);
		break;
	}
	run(e, cl, &c, out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct prog g = {data, data + size};
	struct narf_engine_config cfg;
	struct narf_engine e;
	struct narf_client peer;
	struct narf_buf out;
	unsigned lim = byte(&g);
	uint64_t base;

	narf_engine_config_default(&cfg);
	cfg.coll_limits.hash_lp_entries = 1 + lim % 4;
	cfg.coll_limits.hash_lp_value = 4 + lim % 8;
	cfg.coll_limits.set_intset_entries = 1 + (lim >> 2) % 4;
	cfg.coll_limits.zset_lp_entries = 1 + (lim >> 4) % 4;
	cfg.coll_limits.zset_lp_value = 4 + lim % 8;
	cfg.coll_limits.list_lp_size = lim & 0x80 ? -1 : 1 + (lim >> 5) % 4;
	if (narf_engine_init(&e, &cfg, fake_clock, NULL) != 0)
		return 0;
	narf_engine_client_init(&e, &peer);
	peer.loopback = true;
	peer.peer = true; /* as after NARF.AUTH: may send NARF.* */
	peer.peer_node = 2;
	snprintf(peer.addr, sizeof(peer.addr), "127.0.0.1:40000");
	narf_buf_init(&out);
	base = narf_store_used_memory(e.store);

	for (int ops = 0; g.p < g.end && ops < 200; ops++) {
		op(&e, &peer, &g, &out);
		check_keys(&e, &peer, &out);
	}

	{ /* op 32 may have written keys of any name */
		struct cmd c = {0};

		add_str(&c, "FLUSHALL");
		run(&e, &peer, &c, &out);
	}
	while (narf_store_reap(e.store, 1u << 20))
		;
	check(narf_store_count(e.store) == 0, "keys left after FLUSHALL");
	check(narf_store_used_memory(e.store) == base,
	      "used_memory not back to its start: bytes unaccounted for");
	narf_buf_close(&out);
	narf_engine_close(&e);
	return 0;
}
