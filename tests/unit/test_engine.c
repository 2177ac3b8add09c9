/*
 * Unit tests of the data node's command engine (datanode/engine.h): each
 * command's reply bytes, edge cases and error strings, driven without
 * sockets and with a fake clock.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "datanode/engine.h"
#include "datanode/peer_auth.h"
#include "datanode/reply.h"

static int64_t fake_now = 1700000000000LL;

static int64_t fake_clock(void *data)
{
	return fake_now;
}

struct fixture {
	struct narf_engine e;
	struct narf_client c;
	struct narf_buf out;
	char reply[4096];
};

static struct fixture *make(const struct narf_engine_config *cfg)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct narf_engine_config def;

	assert_non_null(f);
	if (cfg == NULL) {
		narf_engine_config_default(&def);
		cfg = &def;
	}
	assert_int_equal(narf_engine_init(&f->e, cfg, fake_clock, NULL), 0);
	narf_engine_client_init(&f->e, &f->c);
	/* A client of the same host, unless a test says otherwise (the
	 * server sets these from the socket). */
	f->c.loopback = true;
	snprintf(f->c.addr, sizeof(f->c.addr), "127.0.0.1:40000");
	narf_buf_init(&f->out);
	return f;
}

static int setup(void **state)
{
	fake_now = 1700000000000LL;
	*state = make(NULL);
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	narf_buf_close(&f->out);
	narf_engine_close(&f->e);
	free(f);
	return 0;
}

/* Run a command given as space-separated words; returns the reply bytes
 * (valid until the next call). */
static const char *run(struct fixture *f, const char *line)
{
	char copy[1024];
	const char *argv[64];
	size_t lens[64];
	int argc = 0;
	char *save = NULL;

	snprintf(copy, sizeof(copy), "%s", line);
	for (char *t = strtok_r(copy, " ", &save); t && argc < 64;
	     t = strtok_r(NULL, " ", &save)) {
		/* "" stands for an empty argument. */
		if (strcmp(t, "\"\"") == 0)
			t[0] = '\0';
		argv[argc] = t;
		lens[argc++] = strlen(t);
	}
	f->out.len = 0;
	assert_int_equal(
	        narf_engine_exec(&f->e, &f->c, argc, argv, lens, &f->out), 0);
	assert_true(f->out.len < sizeof(f->reply));
	memcpy(f->reply, f->out.data, f->out.len);
	f->reply[f->out.len] = '\0';
	return f->reply;
}

#define EXPECT(f, cmd, want) assert_string_equal(run(f, cmd), want)

/* GET/SET basics and SET's NX, XX and GET options. */
static void test_set_get(void **state)
{
	struct fixture *f = *state;

	EXPECT(f, "GET k", "$-1\r\n");
	EXPECT(f, "SET k v", "+OK\r\n");
	EXPECT(f, "GET k", "$1\r\nv\r\n");
	EXPECT(f, "SET k w NX", "$-1\r\n");
	EXPECT(f, "GET k", "$1\r\nv\r\n");
	EXPECT(f, "SET x w XX", "$-1\r\n");
	EXPECT(f, "EXISTS x", ":0\r\n");
	EXPECT(f, "SET k w XX GET", "$1\r\nv\r\n");
	EXPECT(f, "SET k z NX GET", "$1\r\nw\r\n");
	EXPECT(f, "SET n 1 GET", "$-1\r\n");
	EXPECT(f, "SET k v NX XX", "-ERR syntax error\r\n");
	EXPECT(f, "SET k v EX 10 PX 100", "-ERR syntax error\r\n");
	/* The same expiry option twice: the last one wins, as in Redis. */
	EXPECT(f, "SET k v EX 10 EX 20", "+OK\r\n");
	EXPECT(f, "TTL k", ":20\r\n");
	EXPECT(f, "SET k v KEEPTTL EX 1", "-ERR syntax error\r\n");
	EXPECT(f, "SET k v BOGUS", "-ERR syntax error\r\n");
	EXPECT(f, "SET k",
	       "-ERR wrong number of arguments for 'set' "
	       "command\r\n");
}

/* SET's expiry options compute absolute times; zero or negative times are
 * invalid; KEEPTTL keeps the TTL, a plain SET drops it. */
static void test_set_expiry(void **state)
{
	struct fixture *f = *state;

	EXPECT(f, "SET k v EX 10", "+OK\r\n");
	EXPECT(f, "TTL k", ":10\r\n");
	EXPECT(f, "PTTL k", ":10000\r\n");
	EXPECT(f, "SET k v2 KEEPTTL", "+OK\r\n");
	EXPECT(f, "TTL k", ":10\r\n");
	EXPECT(f, "SET k v3", "+OK\r\n");
	EXPECT(f, "TTL k", ":-1\r\n");
	EXPECT(f, "SET k v PX 1500", "+OK\r\n");
	EXPECT(f, "PTTL k", ":1500\r\n");
	EXPECT(f, "SET k v EXAT 1700000100", "+OK\r\n");
	EXPECT(f, "EXPIRETIME k", ":1700000100\r\n");
	EXPECT(f, "SET k v PXAT 1700000000500", "+OK\r\n");
	EXPECT(f, "PEXPIRETIME k", ":1700000000500\r\n");
	EXPECT(f, "SET k v EX 0",
	       "-ERR invalid expire time in 'set' command\r\n");
	EXPECT(f, "SET k v EX -5",
	       "-ERR invalid expire time in 'set' command\r\n");
	EXPECT(f, "SET k v EX abc",
	       "-ERR value is not an integer or out of range\r\n");
	EXPECT(f, "SET k v EX 9223372036854775",
	       "-ERR invalid expire time in 'set' command\r\n");
	EXPECT(f, "TTL nokey", ":-2\r\n");
}

/* Keys expire lazily when the clock passes their time. */
static void test_lazy_expiry(void **state)
{
	struct fixture *f = *state;

	EXPECT(f, "SET k v PX 100", "+OK\r\n");
	fake_now += 100; /* as in Redis, a key dies once now > its time */
	EXPECT(f, "GET k", "$1\r\nv\r\n");
	fake_now += 1;
	EXPECT(f, "GET k", "$-1\r\n");
	EXPECT(f, "DBSIZE", ":0\r\n");
}

/* EXPIRE with 0 or a past time deletes; NX/XX/GT/LT follow Redis 7. */
static void test_expire_options(void **state)
{
	struct fixture *f = *state;

	EXPECT(f, "EXPIRE nokey 10", ":0\r\n");
	EXPECT(f, "SET k v", "+OK\r\n");
	EXPECT(f, "EXPIRE k 100 XX", ":0\r\n");
	EXPECT(f, "EXPIRE k 100 GT", ":0\r\n");
	EXPECT(f, "EXPIRE k 100 LT", ":1\r\n");
	EXPECT(f, "EXPIRE k 50 NX", ":0\r\n");
	EXPECT(f, "EXPIRE k 200 GT", ":1\r\n");
	EXPECT(f, "TTL k", ":200\r\n");
	EXPECT(f, "EXPIRE k 300 LT", ":0\r\n");
	EXPECT(f, "PEXPIRE k 5000 XX", ":1\r\n");
	EXPECT(f, "PTTL k", ":5000\r\n");
	EXPECT(f, "EXPIRE k 10 NX XX",
	       "-ERR NX and XX, GT or LT options at the same time are not "
	       "compatible\r\n");
	EXPECT(f, "EXPIRE k 10 GT LT",
	       "-ERR GT and LT options at the same time are not "
	       "compatible\r\n");
	EXPECT(f, "EXPIRE k 10 FOO", "-ERR Unsupported option FOO\r\n");
	EXPECT(f, "PERSIST k", ":1\r\n");
	EXPECT(f, "PERSIST k", ":0\r\n");
	EXPECT(f, "EXPIREAT k 1700000010", ":1\r\n");
	EXPECT(f, "TTL k", ":10\r\n");
	EXPECT(f, "PEXPIREAT k 1700000000001", ":1\r\n");
	EXPECT(f, "PTTL k", ":1\r\n");
	EXPECT(f, "EXPIRE k 0", ":1\r\n");
	EXPECT(f, "EXISTS k", ":0\r\n");
	EXPECT(f, "SET k v", "+OK\r\n");
	EXPECT(f, "EXPIRE k -1", ":1\r\n");
	EXPECT(f, "EXISTS k", ":0\r\n");
	EXPECT(f, "SET k v", "+OK\r\n");
	EXPECT(f, "EXPIRE k 9223372036854775807",
	       "-ERR invalid expire time in 'expire' command\r\n");
	EXPECT(f, "EXPIRETIME k", ":-1\r\n");
	EXPECT(f, "EXPIRETIME nokey", ":-2\r\n");
}

/* Counters: creation, overflow, non-integers, leading zeros, DECRBY of
 * LLONG_MIN; INCR keeps the TTL. */
static void test_counters(void **state)
{
	struct fixture *f = *state;

	EXPECT(f, "INCR c", ":1\r\n");
	EXPECT(f, "INCRBY c 41", ":42\r\n");
	EXPECT(f, "DECR c", ":41\r\n");
	EXPECT(f, "DECRBY c 50", ":-9\r\n");
	EXPECT(f, "SET c 9223372036854775807", "+OK\r\n");
	EXPECT(f, "INCR c", "-ERR increment or decrement would overflow\r\n");
	EXPECT(f, "SET c -9223372036854775808", "+OK\r\n");
	EXPECT(f, "DECR c", "-ERR increment or decrement would overflow\r\n");
	EXPECT(f, "DECRBY c -9223372036854775808",
	       "-ERR decrement would overflow\r\n");
	EXPECT(f, "SET c abc", "+OK\r\n");
	EXPECT(f, "INCR c", "-ERR value is not an integer or out of range\r\n");
	EXPECT(f, "SET c 007", "+OK\r\n");
	EXPECT(f, "INCR c", "-ERR value is not an integer or out of range\r\n");
	EXPECT(f, "INCRBY c x",
	       "-ERR value is not an integer or out of "
	       "range\r\n");
	EXPECT(f, "SET t 5 EX 100", "+OK\r\n");
	EXPECT(f, "INCR t", ":6\r\n");
	EXPECT(f, "TTL t", ":100\r\n");
}

/* INCRBYFLOAT formats like Redis and refuses non-numbers. */
static void test_incrbyfloat(void **state)
{
	struct fixture *f = *state;

	EXPECT(f, "SET f 10.50", "+OK\r\n");
	EXPECT(f, "INCRBYFLOAT f 0.1", "$4\r\n10.6\r\n");
	EXPECT(f, "INCRBYFLOAT f -5", "$3\r\n5.6\r\n");
	EXPECT(f, "SET f 5.0e3", "+OK\r\n");
	EXPECT(f, "INCRBYFLOAT f 2.0e2", "$4\r\n5200\r\n");
	EXPECT(f, "GET f", "$4\r\n5200\r\n");
	EXPECT(f, "INCRBYFLOAT f abc", "-ERR value is not a valid float\r\n");
	EXPECT(f, "INCRBYFLOAT f 1e-5000",
	       "-ERR value is not a valid float\r\n");
	EXPECT(f, "INCRBYFLOAT g 3", "$1\r\n3\r\n");
}

/* Ranges, APPEND, STRLEN, SETRANGE padding. */
static void test_ranges(void **state)
{
	struct fixture *f = *state;

	EXPECT(f, "SET s Hello,World", "+OK\r\n");
	EXPECT(f, "GETRANGE s 0 4", "$5\r\nHello\r\n");
	EXPECT(f, "GETRANGE s -5 -1", "$5\r\nWorld\r\n");
	EXPECT(f, "GETRANGE s 5 2", "$0\r\n\r\n");
	EXPECT(f, "GETRANGE s -1 -5", "$0\r\n\r\n");
	EXPECT(f, "GETRANGE s 0 100", "$11\r\nHello,World\r\n");
	EXPECT(f, "GETRANGE nokey 0 1", "$0\r\n\r\n");
	EXPECT(f, "STRLEN s", ":11\r\n");
	EXPECT(f, "STRLEN nokey", ":0\r\n");
	EXPECT(f, "APPEND s !", ":12\r\n");
	EXPECT(f, "APPEND new ab", ":2\r\n");
	EXPECT(f, "SETRANGE p 3 xy", ":5\r\n");
	assert_memory_equal(run(f, "GET p"), "$5\r\n\0\0\0xy\r\n", 11);
	EXPECT(f, "SETRANGE q 0 \"\"", ":0\r\n");
	EXPECT(f, "EXISTS q", ":0\r\n");
	EXPECT(f, "SETRANGE s -1 x", "-ERR offset is out of range\r\n");
}

/* Multi-key commands and the GET variants. */
static void test_multi_and_variants(void **state)
{
	struct fixture *f = *state;

	EXPECT(f, "MSET a 1 b 2", "+OK\r\n");
	EXPECT(f, "MGET a b c", "*3\r\n$1\r\n1\r\n$1\r\n2\r\n$-1\r\n");
	EXPECT(f, "MSET a 1 b",
	       "-ERR wrong number of arguments for 'mset' "
	       "command\r\n");
	EXPECT(f, "MSETNX a 9 z 9", ":0\r\n");
	EXPECT(f, "EXISTS z", ":0\r\n");
	EXPECT(f, "MSETNX y 9 z 9", ":1\r\n");
	EXPECT(f, "SETNX a 5", ":0\r\n");
	EXPECT(f, "SETNX w 5", ":1\r\n");
	EXPECT(f, "GETSET a 10", "$1\r\n1\r\n");
	EXPECT(f, "GETDEL a", "$2\r\n10\r\n");
	EXPECT(f, "GETDEL a", "$-1\r\n");
	EXPECT(f, "SETEX e 10 v", "+OK\r\n");
	EXPECT(f, "TTL e", ":10\r\n");
	EXPECT(f, "SETEX e 0 v",
	       "-ERR invalid expire time in 'setex' command\r\n");
	EXPECT(f, "PSETEX e 100 v", "+OK\r\n");
	EXPECT(f, "PTTL e", ":100\r\n");
	EXPECT(f, "GETEX e PERSIST", "$1\r\nv\r\n");
	EXPECT(f, "TTL e", ":-1\r\n");
	EXPECT(f, "GETEX e EX 20", "$1\r\nv\r\n");
	EXPECT(f, "TTL e", ":20\r\n");
	EXPECT(f, "GETEX e EX 1 PERSIST", "-ERR syntax error\r\n");
	EXPECT(f, "GETEX nokey EX 5", "$-1\r\n");
}

/* Keyspace commands: DEL counts, EXISTS counts repeats, TYPE, RENAME. */
static void test_keyspace(void **state)
{
	struct fixture *f = *state;

	EXPECT(f, "MSET a 1 b 2 c 3", "+OK\r\n");
	EXPECT(f, "EXISTS a a nokey", ":2\r\n");
	EXPECT(f, "DEL a b nokey", ":2\r\n");
	EXPECT(f, "UNLINK c", ":1\r\n");
	EXPECT(f, "SET k v EX 50", "+OK\r\n");
	EXPECT(f, "TYPE k", "+string\r\n");
	EXPECT(f, "TYPE nokey", "+none\r\n");
	EXPECT(f, "RENAME nokey x", "-ERR no such key\r\n");
	EXPECT(f, "RENAME k k2", "+OK\r\n");
	EXPECT(f, "TTL k2", ":50\r\n");
	EXPECT(f, "EXISTS k", ":0\r\n");
	EXPECT(f, "SET o 1", "+OK\r\n");
	EXPECT(f, "RENAMENX k2 o", ":0\r\n");
	EXPECT(f, "RENAMENX k2 k3", ":1\r\n");
	EXPECT(f, "RENAME k3 k3", "+OK\r\n");
	EXPECT(f, "TOUCH k3 o nokey", ":2\r\n");
	EXPECT(f, "DBSIZE", ":2\r\n");
	EXPECT(f, "KEYS k*", "*1\r\n$2\r\nk3\r\n");
	EXPECT(f, "FLUSHALL", "+OK\r\n");
	EXPECT(f, "DBSIZE", ":0\r\n");
	EXPECT(f, "RANDOMKEY", "$-1\r\n");
	EXPECT(f, "SET only 1", "+OK\r\n");
	EXPECT(f, "RANDOMKEY", "$4\r\nonly\r\n");
	EXPECT(f, "FLUSHDB ASYNC", "+OK\r\n");
	EXPECT(f, "FLUSHALL NOW", "-ERR syntax error\r\n");
}

/* SCAN walks every key once the cursor returns to 0, honouring MATCH,
 * COUNT and TYPE, and rejects a bad cursor. */
static void test_scan(void **state)
{
	struct fixture *f = *state;
	char cmd[64];
	unsigned seen = 0;
	char cursor[32] = "0";
	int rounds = 0;
	const char *r0;

	for (int i = 0; i < 500; i++) {
		snprintf(cmd, sizeof(cmd), "SET key:%d v", i);
		EXPECT(f, cmd, "+OK\r\n");
	}
	EXPECT(f, "SET other v", "+OK\r\n");
	do {
		const char *r, *p;

		snprintf(cmd, sizeof(cmd), "SCAN %s MATCH key:* COUNT 50",
		         cursor);
		r = run(f, cmd);
		assert_true(strncmp(r, "*2\r\n$", 5) == 0);
		p = strchr(r + 5, '\n') + 1;
		snprintf(cursor, sizeof(cursor), "%.*s",
		         (int)(strchr(p, '\r') - p), p);
		for (p = strstr(p, "key:"); p; p = strstr(p + 1, "key:"))
			seen++;
		assert_null(strstr(r, "other"));
	} while (strcmp(cursor, "0") != 0 && ++rounds < 100000);
	assert_true(seen >= 500);
	r0 = run(f, "SCAN 0 TYPE hash COUNT 1000");
	assert_string_equal(r0 + strlen(r0) - 4, "*0\r\n");
	EXPECT(f, "SCAN abc", "-ERR invalid cursor\r\n");
	EXPECT(f, "SCAN 0 COUNT 0", "-ERR syntax error\r\n");
	EXPECT(f, "SCAN 0 MATCH", "-ERR syntax error\r\n");
}

/* Server commands: PING, ECHO, SELECT, CLIENT, HELLO, QUIT, unknown. */
static void test_server_commands(void **state)
{
	struct fixture *f = *state;

	EXPECT(f, "PING", "+PONG\r\n");
	EXPECT(f, "ping hi", "$2\r\nhi\r\n");
	EXPECT(f, "ECHO x", "$1\r\nx\r\n");
	EXPECT(f, "SELECT 0", "+OK\r\n");
	EXPECT(f, "SELECT 1", "-ERR DB index is out of range\r\n");
	EXPECT(f, "CLIENT GETNAME", "$-1\r\n");
	EXPECT(f, "CLIENT SETNAME me", "+OK\r\n");
	EXPECT(f, "CLIENT GETNAME", "$2\r\nme\r\n");
	EXPECT(f, "CLIENT ID", ":1\r\n");
	EXPECT(f, "HELLO 4", "-NOPROTO unsupported protocol version\r\n");
	assert_true(strncmp(run(f, "HELLO 2"), "*14\r\n", 5) == 0);
	EXPECT(f, "CLUSTER KEYSLOT foo", ":12182\r\n");
	assert_true(strncmp(run(f, "CONFIG GET maxmemory"),
	                    "*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n", 27) == 0);
	EXPECT(f, "CONFIG GET save", "*2\r\n$4\r\nsave\r\n$0\r\n\r\n");
	assert_non_null(strstr(run(f, "INFO keyspace"), "# Keyspace"));
	EXPECT(f, "NOSUCH a b",
	       "-ERR unknown command 'NOSUCH', with args beginning with: "
	       "'a' 'b' \r\n");
	EXPECT(f, "QUIT", "+OK\r\n");
	assert_true(f->c.close_after_reply);
}

/* HELLO's reply with proto p from the first client (id 1) of a standalone
 * node: a map of 7 under RESP3, the same as a flat array of 14 under
 * RESP2 (redis-server 7.0.15's shape; its version and id differ). */
#define HELLO_BODY(p)                                                     \
	"$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.0.0\r\n" \
	"$5\r\nproto\r\n:" p                                              \
	"\r\n$2\r\nid\r\n:1\r\n$4\r\nmode\r\n"                            \
	"$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"             \
	"$7\r\nmodules\r\n*0\r\n"
#define HELLO2 "*14\r\n" HELLO_BODY("2")
#define HELLO3 "%7\r\n" HELLO_BODY("3")

/* HELLO switches the connection's protocol as Redis 7.0: no version
 * answers in the current one, 2 and 3 switch, other versions and bad
 * options are refused and leave it as it was. */
static void test_hello(void **state)
{
	struct fixture *f = *state;

	EXPECT(f, "HELLO", HELLO2);
	EXPECT(f, "HELLO 3", HELLO3);
	assert_int_equal(f->c.resp, 3);
	EXPECT(f, "HELLO", HELLO3);
	EXPECT(f, "HELLO 4", "-NOPROTO unsupported protocol version\r\n");
	EXPECT(f, "HELLO 1", "-NOPROTO unsupported protocol version\r\n");
	EXPECT(f, "HELLO -3", "-NOPROTO unsupported protocol version\r\n");
	EXPECT(f, "HELLO 03",
	       "-ERR Protocol version is not an integer or out of range\r\n");
	EXPECT(f, "HELLO x",
	       "-ERR Protocol version is not an integer or out of range\r\n");
	EXPECT(f, "HELLO 2 FOO", "-ERR Syntax error in HELLO option 'FOO'\r\n");
	EXPECT(f, "HELLO 2 AUTH u",
	       "-ERR Syntax error in HELLO option 'AUTH'\r\n");
	EXPECT(f, "HELLO 2 SETNAME",
	       "-ERR Syntax error in HELLO option 'SETNAME'\r\n");
	/* A name Redis refuses: the error, and no switch. */
	EXPECT(f, "HELLO 2 SETNAME a\x01b",
	       "-ERR Client names cannot contain spaces, newlines or special "
	       "characters.\r\n");
	assert_int_equal(f->c.resp, 3);
	EXPECT(f, "HELLO 3 SETNAME me", HELLO3);
	EXPECT(f, "CLIENT GETNAME", "$2\r\nme\r\n");
	/* An empty name clears it, as CLIENT SETNAME "" does. */
	EXPECT(f, "HELLO 2 SETNAME \"\"", HELLO2);
	assert_int_equal(f->c.resp, 2);
	EXPECT(f, "CLIENT GETNAME", "$-1\r\n");
	/* No password: the default user is nopass, any password goes. */
	EXPECT(f, "HELLO 3 AUTH default anything", HELLO3);
	EXPECT(f, "HELLO 2 AUTH nobody x",
	       "-WRONGPASS invalid username-password pair or user is "
	       "disabled.\r\n");
	assert_int_equal(f->c.resp, 3);
}

/* With a password, HELLO AUTH is checked before the switch: a refused one
 * stays RESP2; as in Redis 7.0 each option acts where it stands, so a good
 * AUTH counts even when a later option is a syntax error (no switch
 * then); HELLO without AUTH needs the client authenticated first. */
static void test_hello_auth(void **state)
{
	struct narf_engine_config cfg;
	struct fixture *f;

	teardown(state);
	narf_engine_config_default(&cfg);
	cfg.requirepass = strdup("s3cret");
	*state = f = make(&cfg);
	EXPECT(f, "HELLO 3",
	       "-NOAUTH HELLO must be called with the client already "
	       "authenticated, otherwise the HELLO AUTH <user> <pass> option "
	       "can be used to authenticate the client and select the RESP "
	       "protocol version at the same time\r\n");
	EXPECT(f, "HELLO 3 AUTH default wrong",
	       "-WRONGPASS invalid username-password pair or user is "
	       "disabled.\r\n");
	assert_int_equal(f->c.resp, 2);
	assert_false(f->c.authenticated);
	EXPECT(f, "GET k", "-NOAUTH Authentication required.\r\n");
	EXPECT(f, "HELLO 4 AUTH default s3cret",
	       "-NOPROTO unsupported protocol version\r\n");
	assert_false(f->c.authenticated);
	EXPECT(f, "HELLO 3 AUTH default s3cret BAD",
	       "-ERR Syntax error in HELLO option 'BAD'\r\n");
	assert_true(f->c.authenticated);
	assert_int_equal(f->c.resp, 2);
	EXPECT(f, "GET k", "$-1\r\n");
	f->c.authenticated = false;
	/* SETNAME acts where it stands, before the AUTH that fails, and
	 * even on a client not authenticated yet (as 7.0.15 does). */
	EXPECT(f, "HELLO 3 SETNAME x AUTH default wrong",
	       "-WRONGPASS invalid username-password pair or user is "
	       "disabled.\r\n");
	assert_string_equal(f->c.name, "x");
	EXPECT(f, "HELLO 3 AUTH default s3cret", HELLO3);
	assert_true(f->c.authenticated);
	EXPECT(f, "GET k", "_\r\n");
	assert_int_equal(f->e.stats.auth_failures, 2);
}

/* Under RESP3 every null narf returns is `_`, CONFIG GET is a map, INFO
 * and the CLUSTER texts are verbatim strings, COMMAND's flags are sets:
 * redis-server 7.0.15's bytes under HELLO 3. HELLO 2 brings RESP2's bytes
 * back. */
static void test_resp3_replies(void **state)
{
	struct fixture *f = *state;
	const char *rep;

	run(f, "HELLO 3");
	EXPECT(f, "GET nokey", "_\r\n");
	EXPECT(f, "GETDEL nokey", "_\r\n");
	EXPECT(f, "GETEX nokey", "_\r\n");
	EXPECT(f, "GETEX nokey PERSIST", "_\r\n");
	EXPECT(f, "GETSET nokey v", "_\r\n");
	EXPECT(f, "DEL nokey", ":1\r\n");
	EXPECT(f, "SET k v XX", "_\r\n");
	EXPECT(f, "SET k v XX GET", "_\r\n");
	EXPECT(f, "SET k v GET", "_\r\n");
	EXPECT(f, "SET k w NX", "_\r\n");
	EXPECT(f, "SET k w NX GET", "$1\r\nv\r\n");
	EXPECT(f, "MGET k nokey", "*2\r\n$1\r\nv\r\n_\r\n");
	EXPECT(f, "TTL nokey", ":-2\r\n");
	EXPECT(f, "PTTL k", ":-1\r\n");
	EXPECT(f, "DEL k", ":1\r\n");
	EXPECT(f, "RANDOMKEY", "_\r\n");
	EXPECT(f, "CLIENT GETNAME", "_\r\n");
	EXPECT(f, "INCRBYFLOAT f 1.5", "$3\r\n1.5\r\n");
	EXPECT(f, "CONFIG GET maxmemory",
	       "%1\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n");
	EXPECT(f, "CONFIG GET save", "%1\r\n$4\r\nsave\r\n$0\r\n\r\n");
	EXPECT(f, "CONFIG GET nomatch", "%0\r\n");
	EXPECT(f, "INFO keyspace",
	       "=48\r\ntxt:# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n"
	       "\r\n");
	EXPECT(f, "CLIENT INFO",
	       "=41\r\ntxt:id=1 addr=127.0.0.1:40000 name= db=0\n\r\n");
	EXPECT(f, "COMMAND INFO get nosuch",
	       "*2\r\n*10\r\n$3\r\nget\r\n:2\r\n~2\r\n+readonly\r\n"
	       "+fast\r\n:1\r\n:1\r\n:1\r\n~0\r\n~0\r\n~0\r\n~0\r\n_\r\n");
	EXPECT(f, "COMMAND DOCS get", "%0\r\n");
	rep = run(f, "CLUSTER INFO");
	assert_true(strncmp(rep, "=", 1) == 0);
	assert_non_null(strstr(rep, "\r\ntxt:cluster_enabled:1\r\n"));
	rep = run(f, "CLUSTER NODES");
	assert_non_null(strstr(rep, "\r\ntxt:"));
	assert_non_null(strstr(rep, " myself,master "));
	rep = run(f, "CLUSTER SHARDS");
	assert_true(strncmp(rep, "*1\r\n%2\r\n$5\r\nslots\r\n", 19) == 0);
	assert_non_null(strstr(rep, "$5\r\nnodes\r\n*1\r\n%7\r\n$2\r\nid\r\n"));
	/* Back to RESP2: its bytes, unchanged. */
	run(f, "HELLO 2");
	EXPECT(f, "GET nokey", "$-1\r\n");
	EXPECT(f, "MGET f nokey", "*2\r\n$3\r\n1.5\r\n$-1\r\n");
	EXPECT(f, "COMMAND INFO nosuch", "*1\r\n$-1\r\n");
	EXPECT(f, "CONFIG GET nomatch", "*0\r\n");
	EXPECT(f, "COMMAND DOCS get", "*0\r\n");
	EXPECT(f, "CLIENT INFO",
	       "$37\r\nid=1 addr=127.0.0.1:40000 name= db=0\n\r\n");
	rep = run(f, "CLUSTER SHARDS");
	assert_true(strncmp(rep, "*1\r\n*4\r\n$5\r\nslots\r\n", 19) == 0);
}

/* reply.h's helpers write each protocol's form: RESP2's bytes are what
 * Redis 7.0 sends a client that never said HELLO 3. */
static void test_reply_helpers(void **state)
{
	static const struct {
		uint8_t resp;
		const char *want;
	} cases[] = {
	        {2,
	         "$-1\r\n*-1\r\n*4\r\n*3\r\n$18\r\n1.1000000000000001\r\n"
	         "$1\r\n3\r\n$4\r\n-inf\r\n:1\r\n:0\r\n$2\r\nhi\r\n"},
	        {3,
	         "_\r\n_\r\n%2\r\n~3\r\n,1.1000000000000001\r\n,3\r\n"
	         ",-inf\r\n#t\r\n#f\r\n=6\r\ntxt:hi\r\n"},
	};
	struct narf_client c;
	struct narf_buf b;

	(void)state;
	memset(&c, 0, sizeof(c));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		c.resp = cases[i].resp;
		narf_buf_init(&b);
		assert_int_equal(narf_reply_null(&c, &b), 0);
		assert_int_equal(narf_reply_null_array(&c, &b), 0);
		assert_int_equal(narf_reply_map(&c, &b, 2), 0);
		assert_int_equal(narf_reply_set(&c, &b, 3), 0);
		assert_int_equal(narf_reply_double(&c, &b, 1.1), 0);
		assert_int_equal(narf_reply_double(&c, &b, 3), 0);
		assert_int_equal(narf_reply_double(&c, &b, -HUGE_VAL), 0);
		assert_int_equal(narf_reply_bool(&c, &b, true), 0);
		assert_int_equal(narf_reply_bool(&c, &b, false), 0);
		assert_int_equal(narf_reply_verbatim(&c, &b, "hi", 2), 0);
		assert_int_equal(b.len, strlen(cases[i].want));
		assert_memory_equal(b.data, cases[i].want, b.len);
		narf_buf_close(&b);
	}
}

/* With a password, everything but AUTH/HELLO/QUIT needs AUTH first. */
static void test_auth(void **state)
{
	struct narf_engine_config cfg;
	struct fixture *f;

	teardown(state); /* this test builds its own engines */
	narf_engine_config_default(&cfg);
	cfg.requirepass = strdup("s3cret");
	f = make(&cfg);
	EXPECT(f, "GET k", "-NOAUTH Authentication required.\r\n");
	/* Arity first, as Redis 7.0 checks it. */
	EXPECT(f, "GET k k",
	       "-ERR wrong number of arguments for 'get' command\r\n");
	EXPECT(f, "AUTH wrong",
	       "-WRONGPASS invalid username-password pair "
	       "or user is disabled.\r\n");
	EXPECT(f, "AUTH other s3cret",
	       "-WRONGPASS invalid username-password "
	       "pair or user is disabled.\r\n");
	EXPECT(f, "AUTH s3cre",
	       "-WRONGPASS invalid username-password pair "
	       "or user is disabled.\r\n");
	EXPECT(f, "AUTH s3cret", "+OK\r\n");
	EXPECT(f, "GET k", "$-1\r\n");
	*state = f;
	teardown(state);
	*state = make(NULL);
	EXPECT((struct fixture *)*state, "AUTH x",
	       "-ERR AUTH <password> called without any password configured "
	       "for the default user. Are you sure your configuration is "
	       "correct?\r\n");
}

/* Refused AUTH and HELLO AUTH attempts are counted (INFO's
 * acl_access_denied_auth) and logged at most once a second with the count
 * of those in between; AUTH without a password configured is not an
 * access denial (nor is it in Redis). */
static void test_auth_failures(void **state)
{
	struct narf_engine_config cfg;
	struct fixture *f;

	teardown(state);
	narf_engine_config_default(&cfg);
	cfg.requirepass = strdup("s3cret");
	*state = f = make(&cfg);
	run(f, "AUTH wrong");
	assert_int_equal(f->e.auth_log.last_ms, fake_now);
	run(f, "AUTH default wrong");
	run(f, "HELLO 2 AUTH default wrong");
	assert_int_equal(f->e.stats.auth_failures, 3);
	/* The first was logged; the two after it wait for the cron. */
	assert_int_equal(f->e.auth_log.suppressed, 2);
	assert_string_equal(f->e.auth_log.last_addr, "127.0.0.1:40000");
	fake_now += 500;
	narf_engine_cron(&f->e);
	assert_int_equal(f->e.auth_log.suppressed, 2);
	fake_now += NARF_RATELOG_MS;
	narf_engine_cron(&f->e);
	assert_int_equal(f->e.auth_log.suppressed, 0);
	assert_int_equal(f->e.auth_log.last_ms, fake_now);
	EXPECT(f, "AUTH s3cret", "+OK\r\n");
	assert_int_equal(f->e.stats.auth_failures, 3);
	assert_non_null(strstr(run(f, "INFO stats"),
	                       "\r\nacl_access_denied_auth:3\r\n"));
	teardown(state);
	*state = f = make(NULL);
	run(f, "AUTH x");
	assert_int_equal(f->e.stats.auth_failures, 0);
}

#define DENIED "-" NARF_DENIED "\r\n"

/* A fixture whose client comes from another host. */
static struct fixture *make_remote(struct narf_engine_config *cfg)
{
	struct fixture *f = make(cfg);

	f->c.loopback = false;
	snprintf(f->c.addr, sizeof(f->c.addr), "192.0.2.7:40000");
	return f;
}

/* Protected mode: with no password, a client from another host gets
 * Redis's -DENIED for anything (an unknown command too), is closed, is
 * counted as a rejected connection and runs nothing; loopback clients,
 * --protected-mode no and a password each lift it. */
static void test_protected_mode(void **state)
{
	struct narf_engine_config cfg;
	struct fixture *f;

	teardown(state); /* this test builds its own engines */
	f = make_remote(NULL);
	*state = f;
	assert_true(narf_engine_protected(&f->e, &f->c));
	assert_true(narf_engine_preauth(&f->e, &f->c));
	assert_ptr_equal(narf_engine_limits(&f->e, &f->c),
	                 &f->e.preauth_limits);
	EXPECT(f, "SET k v", DENIED);
	assert_true(f->c.close_after_reply);
	assert_int_equal(f->e.stats.rejected_connections, 1);
	assert_int_equal(f->e.stats.commands, 0);
	f->c.close_after_reply = false;
	EXPECT(f, "NOSUCH x", DENIED);
	/* No credential: the peer handshake is denied too. */
	assert_false(narf_engine_admits_peers(&f->e));
	EXPECT(f, "NARF.HELLO 7", DENIED);
	assert_false(f->c.peer);
	f->c.loopback = true;
	EXPECT(f, "GET k", "$-1\r\n");
	assert_ptr_equal(narf_engine_limits(&f->e, &f->c), &f->e.cfg.limits);
	teardown(state);

	narf_engine_config_default(&cfg);
	cfg.protected_mode = false;
	*state = f = make_remote(&cfg);
	EXPECT(f, "SET k v", "+OK\r\n");
	teardown(state);

	narf_engine_config_default(&cfg);
	cfg.requirepass = strdup("s3cret");
	*state = f = make_remote(&cfg);
	assert_false(narf_engine_protected(&f->e, &f->c));
	EXPECT(f, "GET k", "-NOAUTH Authentication required.\r\n");
	EXPECT(f, "AUTH s3cret", "+OK\r\n");
	EXPECT(f, "GET k", "$-1\r\n");
}

/* Protected mode on a node holding the node key: a client from another
 * host may run the peer handshake (NARF.AUTH), and only that, until it
 * has proven itself a peer; a wrong proof closes it, still held. */
static void test_protected_mode_peer(void **state)
{
	static const char secret[] = "a-cluster-secret-of-some-length";
	struct narf_engine_config cfg;
	struct fixture *f;
	struct narf_auth a;
	struct narf_buf hello, proof;
	char nonce[NARF_AUTH_NONCE_HEX + 1], line[160], why[256];

	teardown(state);
	narf_engine_config_default(&cfg);
	assert_int_equal(narf_auth_keys_from_text(&cfg.keys, secret,
	                                          strlen(secret), NULL),
	                 0);
	*state = f = make_remote(&cfg);
	assert_true(narf_engine_admits_peers(&f->e));
	assert_true(narf_engine_protected_denies(
	        &f->e, &f->c, narf_engine_command("GET", 3)));
	assert_true(narf_engine_protected_denies(
	        &f->e, &f->c, narf_engine_command("NARF.SET", 8)));
	assert_false(narf_engine_protected_denies(
	        &f->e, &f->c, narf_engine_command("NARF.AUTH", 9)));
	assert_true(narf_engine_protected_denies(&f->e, &f->c, NULL));
	/* A wrong proof. */
	assert_int_equal(strncmp(run(f,
	                             "NARF.AUTH 7 "
	                             "000102030405060708090a0b0c0d0e0f"),
	                         "*2\r\n", 4),
	                 0);
	EXPECT(f,
	       "NARF.AUTH 000000000000000000000000000000000000000000000000000"
	       "0000000000000",
	       "-NOPERM NARF.AUTH: wrong proof\r\n");
	assert_true(f->c.close_after_reply);
	assert_true(narf_engine_protected(&f->e, &f->c));
	/* The right one, from a new connection. */
	narf_engine_client_init(&f->e, &f->c);
	narf_buf_init(&hello);
	narf_buf_init(&proof);
	assert_int_equal(narf_peer_auth_hello(&a, 7, &hello), 0);
	narf_auth_hex(a.nonce_c, NARF_AUTH_NONCE_SIZE, nonce);
	snprintf(line, sizeof(line), "NARF.AUTH 7 %s", nonce);
	run(f, line);
	assert_int_equal(narf_peer_auth_answer(&a, &f->e.cfg.keys, f->reply,
	                                       strlen(f->reply), &proof, why,
	                                       sizeof(why)),
	                 0);
	/* the proof command ends with the 64 hex digits and CRLF */
	snprintf(line, sizeof(line), "NARF.AUTH %.64s",
	         proof.data + proof.len - NARF_AUTH_MAC_HEX - 2);
	EXPECT(f, line, "+OK\r\n");
	assert_true(f->c.peer);
	assert_false(narf_engine_protected(&f->e, &f->c));
	assert_false(narf_engine_preauth(&f->e, &f->c));
	EXPECT(f, "GET k", "$-1\r\n");
	assert_int_equal(f->e.stats.rejected_connections, 0);
	/* A new stranger still gets -DENIED for anything else. */
	narf_engine_client_init(&f->e, &f->c);
	EXPECT(f, "PING", DENIED);
	narf_buf_close(&hello);
	narf_buf_close(&proof);
}

/* Redis's limits before AUTH: an unauthenticated client is parsed with 10
 * arguments of 16 KiB at most (the rest of the config kept), and with the
 * configured limits once AUTH succeeds. */
static void test_preauth_limits(void **state)
{
	struct narf_engine_config cfg;
	const struct narf_resp_limits *lim;
	struct fixture *f;

	teardown(state);
	narf_engine_config_default(&cfg);
	cfg.requirepass = strdup("s3cret");
	cfg.limits.max_bulk = 1000;
	*state = f = make(&cfg);
	assert_true(narf_engine_preauth(&f->e, &f->c));
	lim = narf_engine_limits(&f->e, &f->c);
	assert_int_equal(lim->noauth_multibulk, 10);
	assert_int_equal(lim->noauth_bulk, 16384);
	assert_int_equal(lim->max_bulk, 1000);
	assert_int_equal(lim->max_multibulk, cfg.limits.max_multibulk);
	EXPECT(f, "AUTH s3cret", "+OK\r\n");
	assert_false(narf_engine_preauth(&f->e, &f->c));
	lim = narf_engine_limits(&f->e, &f->c);
	assert_int_equal(lim->noauth_multibulk, 0);
	assert_int_equal(lim->noauth_bulk, 0);
}

/* Keys over the configured maximum size are refused before execution. */
static void test_key_size_limit(void **state)
{
	struct narf_engine_config cfg;
	struct fixture *f;

	narf_engine_config_default(&cfg);
	cfg.max_key_size = 4;
	f = make(&cfg);
	EXPECT(f, "SET abcd v", "+OK\r\n");
	EXPECT(f, "SET abcde v", "-ERR key is too large (max-key-size)\r\n");
	EXPECT(f, "MSET a 1 abcde 2",
	       "-ERR key is too large "
	       "(max-key-size)\r\n");
	EXPECT(f, "DBSIZE", ":1\r\n");
	*state = f;
}

/* Under noeviction, writes past the limit get -OOM and reads still work. */
static void test_noeviction_oom(void **state)
{
	struct narf_engine_config cfg;
	struct fixture *f;
	char cmd[128];
	int i, oom = 0;

	narf_engine_config_default(&cfg);
	cfg.max_memory = 2 * 1024 * 1024;
	cfg.eviction = NARF_EVICT_NOEVICTION;
	f = make(&cfg);
	for (i = 0; i < 200000 && !oom; i++) {
		snprintf(cmd, sizeof(cmd),
		         "SET key:%d 0123456789012345678901234567890123456789",
		         i);
		oom = strncmp(run(f, cmd), "-OOM", 4) == 0;
	}
	assert_true(oom);
	EXPECT(f, "GET key:0",
	       "$40\r\n0123456789012345678901234567890123456789\r\n");
	EXPECT(f, "DEL key:0", ":1\r\n");
	*state = f;
}

/* narf_engine_prefetch() only reads: over pipelines that are whole,
 * truncated, malformed, oversized, inline, or keyless, the store and the
 * replies stay what they were, and the next command runs as usual. */
static void test_prefetch_reads_only(void **state)
{
	struct fixture *f = *state;
	static const char *const inputs[] = {
	        "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
	        "*3\r\n$3\r\nSET\r\n$1\r\nj\r\n$1\r\nx\r\n"
	        "*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n",
	        "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*2\r\n$3\r\nGE",
	        "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*2\r\n$x\r\n",
	        "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$99999999999\r\n",
	        "GET k\r\nGET k\r\nPING\r\n",
	        "*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n",
	        "*0\r\n*-1\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
	        "*2\r\n$7\r\nNOSUCHC\r\n$1\r\nk\r\n"
	        "*2\r\n$3\r\nGET\r\n$0\r\n\r\n",
	        "",
	        "\r\n\r\n\r\n",
	};
	char many[NARF_PREFETCH_MAX * 3 * 32];
	size_t len = 0;

	EXPECT(f, "SET k v", "+OK\r\n");
	for (unsigned i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		narf_engine_prefetch(&f->e, &f->c, inputs[i],
		                     strlen(inputs[i]));
		EXPECT(f, "GET k", "$1\r\nv\r\n");
		EXPECT(f, "EXISTS j n", ":0\r\n");
		EXPECT(f, "DBSIZE", ":1\r\n");
	}
	/* More requests than it looks at. */
	for (unsigned i = 0; i < 3 * NARF_PREFETCH_MAX; i++)
		len += (size_t)snprintf(many + len, sizeof(many) - len,
		                        "*2\r\n$3\r\nGET\r\n$2\r\nk%c\r\n",
		                        'a' + i % 26);
	narf_engine_prefetch(&f->e, &f->c, many, len);
	narf_engine_prefetch_end(&f->e);
	EXPECT(f, "DBSIZE", ":1\r\n");
	EXPECT(f, "INCR n", ":1\r\n");
}

/* Run every request in buf[0..len) as the server does: the ones a
 * narf_engine_prefetch() of buf parsed are taken from it, the rest parsed
 * in place into req (so their arguments point into buf too; req may be
 * part way through the first request, as after an earlier read); replies
 * appended to f->reply, *taken counts the requests taken. */
static const char *run_buffer_in(struct fixture *f,
                                 struct narf_resp_req *req,
                                 const char *buf,
                                 size_t len,
                                 unsigned *taken)
{
	size_t pos = 0, used = 0;
	char errmsg[256];

	*taken = 0;
	while (pos < len) {
		size_t need = 0;

		if (narf_engine_prefetch_take(&f->e, &f->c, pos, req))
			(*taken)++;
		else
			assert_int_equal(
			        narf_resp_parse(
			                req, buf + pos, len - pos,
			                narf_engine_limits(&f->e, &f->c), &need,
			                errmsg),
			        NARF_RESP_DONE);
		f->out.len = 0;
		assert_int_equal(
		        narf_engine_exec(&f->e, &f->c, req->argc, req->argv,
		                         req->argvlen, &f->out),
		        0);
		assert_true(used + f->out.len < sizeof(f->reply));
		memcpy(f->reply + used, f->out.data, f->out.len);
		used += f->out.len;
		pos += req->consumed;
		narf_resp_req_reset(req);
	}
	narf_engine_prefetch_end(&f->e);
	f->reply[used] = '\0';
	return f->reply;
}

/* run_buffer_in() with a parser of its own. */
static const char *run_buffer(struct fixture *f,
                              const char *buf,
                              size_t len,
                              unsigned *taken)
{
	struct narf_resp_req req;

	narf_resp_req_init(&req);
	run_buffer_in(f, &req, buf, len, taken);
	narf_resp_req_close(&req);
	return f->reply;
}

/* Requests on elements of big collections (dict-encoded set and hash, a
 * skiplist zset, one with its TTL run out): the look-ahead reads their
 * dicts and changes nothing; the requests then answer as without it. */
static void test_prefetch_members(void **state)
{
	struct fixture *f = *state;
	char cmd[64], buf[1024];
	unsigned taken;
	int len;

	for (int i = 0; i < 600; i++) {
		snprintf(cmd, sizeof(cmd), "SADD s m%d", i);
		EXPECT(f, cmd, ":1\r\n");
		snprintf(cmd, sizeof(cmd), "HSET h f%d %d", i, i);
		EXPECT(f, cmd, ":1\r\n");
		snprintf(cmd, sizeof(cmd), "ZADD z %d m%d", i, i);
		EXPECT(f, cmd, ":1\r\n");
		snprintf(cmd, sizeof(cmd), "SADD gone m%d", i);
		EXPECT(f, cmd, ":1\r\n");
	}
	EXPECT(f, "OBJECT ENCODING s", "$9\r\nhashtable\r\n");
	EXPECT(f, "OBJECT ENCODING h", "$9\r\nhashtable\r\n");
	EXPECT(f, "OBJECT ENCODING z", "$8\r\nskiplist\r\n");
	EXPECT(f, "PEXPIRE gone 10", ":1\r\n");
	fake_now += 20;
	len = snprintf(
	        buf, sizeof(buf), "%s",
	        "*3\r\n$9\r\nSISMEMBER\r\n$1\r\ns\r\n$3\r\nm17\r\n"
	        "*3\r\n$4\r\nSREM\r\n$1\r\ns\r\n$3\r\nm18\r\n"
	        "*3\r\n$9\r\nSISMEMBER\r\n$1\r\ns\r\n$3\r\nm18\r\n"
	        "*3\r\n$4\r\nHGET\r\n$1\r\nh\r\n$4\r\nf599\r\n"
	        "*3\r\n$4\r\nHDEL\r\n$1\r\nh\r\n$2\r\nf1\r\n"
	        "*3\r\n$6\r\nZSCORE\r\n$1\r\nz\r\n$3\r\nm42\r\n"
	        "*3\r\n$9\r\nSISMEMBER\r\n$4\r\ngone\r\n$2\r\nm1\r\n"
	        "*3\r\n$9\r\nSISMEMBER\r\n$1\r\nh\r\n$2\r\nf2\r\n"
	        "*3\r\n$4\r\nHGET\r\n$7\r\nmissing\r\n$1\r\nx\r\n"
	        "*4\r\n$4\r\nZADD\r\n$1\r\nz\r\n$1\r\n7\r\n$3\r\nm42\r\n"
	        "*4\r\n$4\r\nZADD\r\n$1\r\nz\r\n$2\r\nNX\r\n$1\r\n1\r\n");
	narf_engine_prefetch(&f->e, &f->c, buf, (size_t)len);
	assert_int_equal(f->e.pf_n, 11);
	assert_string_equal(
	        run_buffer(f, buf, (size_t)len, &taken),
	        ":1\r\n:1\r\n:0\r\n$3\r\n599\r\n:1\r\n$2\r\n42\r\n:0\r\n"
	        "-WRONGTYPE Operation against a key holding the wrong kind "
	        "of value\r\n$-1\r\n:0\r\n"
	        "-ERR syntax error\r\n");
	assert_int_equal(taken, 11);
	EXPECT(f, "ZSCORE z m42", "$1\r\n7\r\n");
	EXPECT(f, "SCARD s", ":599\r\n");
	EXPECT(f, "HLEN h", ":599\r\n");
	EXPECT(f, "DBSIZE", ":3\r\n");
}

/* Inline requests: a taken one's scratch space goes to the connection's
 * parser, so the next request parsed in place there has the same argv
 * addresses: it still runs as itself (its own command, its own key). */
static void test_prefetch_inline_after_taken(void **state)
{
	struct fixture *f = *state;
	char buf[512];
	size_t len = 0;
	unsigned taken;

	for (int i = 0; i < NARF_PREFETCH_MAX; i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len,
		                        "SET k1 v%d\r\n", i % 10);
	len += (size_t)snprintf(buf + len, sizeof(buf) - len,
	                        "SET k2 w\r\nDEL k1\r\n");
	narf_engine_prefetch(&f->e, &f->c, buf, len);
	run_buffer(f, buf, len, &taken);
	assert_int_equal(taken, NARF_PREFETCH_MAX);
	EXPECT(f, "GET k2", "$1\r\nw\r\n");
	EXPECT(f, "EXISTS k1", ":0\r\n");
	EXPECT(f, "DBSIZE", ":1\r\n");
}

/* A request begun in one read and ended in the next: the parser is part
 * way through it, so it is parsed in place, and nothing of its state is
 * left in the look-ahead for the next batch (which may be shorter). */
static void test_prefetch_after_partial(void **state)
{
	struct fixture *f = *state;
	struct narf_resp_req req;
	char buf[1024], errmsg[256];
	size_t len = 0, need = 0;
	const char *batch = "INCR a\r\nINCR a\r\nINCR a\r\n";
	unsigned taken;

	narf_resp_req_init(&req);
	len = (size_t)snprintf(buf, sizeof(buf), "SET k ");
	memset(buf + len, 'x', 600);
	len += 600;
	assert_int_equal(narf_resp_parse(&req, buf, len,
	                                 narf_engine_limits(&f->e, &f->c),
	                                 &need, errmsg),
	                 NARF_RESP_INCOMPLETE);
	len += (size_t)snprintf(buf + len, sizeof(buf) - len, "\r\n%s", batch);
	narf_engine_prefetch(&f->e, &f->c, buf, len);
	run_buffer_in(f, &req, buf, len, &taken);
	narf_resp_req_close(&req);
	EXPECT(f, "STRLEN k", ":600\r\n");
	EXPECT(f, "GET a", "$1\r\n3\r\n");
	/* A short inline batch next: parsed from its start. */
	{
		size_t n = strlen(batch);

		memcpy(buf, batch, n + 1);
		memcpy(buf + n, batch, n + 1);
		narf_engine_prefetch(&f->e, &f->c, buf, 2 * n);
		assert_string_equal(run_buffer(f, buf, 2 * n, &taken),
		                    ":4\r\n:5\r\n:6\r\n:7\r\n:8\r\n:9\r\n");
		assert_int_equal(taken, 6);
	}
}

/* A pipeline that authenticates: the requests after AUTH were parsed
 * under the unauthenticated limits, so they are parsed again. */
static void test_prefetch_after_auth(void **state)
{
	struct narf_engine_config cfg;
	struct fixture *f;
	const char *buf =
	        "*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n"
	        "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"
	        "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
	unsigned taken;

	teardown(state); /* this test builds its own engine */
	narf_engine_config_default(&cfg);
	cfg.requirepass = strdup("pw");
	f = make(&cfg);
	*state = f;
	narf_engine_prefetch(&f->e, &f->c, buf, strlen(buf));
	assert_int_equal(f->e.pf_n, 3);
	assert_string_equal(run_buffer(f, buf, strlen(buf), &taken),
	                    "+OK\r\n+OK\r\n$1\r\nv\r\n");
	assert_int_equal(taken, 1);
	/* Authenticated now: all taken. */
	buf += strlen("*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n");
	narf_engine_prefetch(&f->e, &f->c, buf, strlen(buf));
	assert_string_equal(run_buffer(f, buf, strlen(buf), &taken),
	                    "+OK\r\n$1\r\nv\r\n");
	assert_int_equal(taken, 2);
}

/* The requests a prefetch looked at take its slots and hashes up when they
 * run (keys of several slots, a hash tag, reads and writes); once the
 * look-ahead is ended, the same bytes rewritten with other keys (as a
 * reused input buffer would be) are hashed afresh: their keys land where
 * plain requests find them. */
static void test_prefetch_keys_taken_up(void **state)
{
	struct fixture *f = *state;
	char buf[512];
	int len = snprintf(buf, sizeof(buf), "%s",
	                   "*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n"
	                   "*2\r\n$4\r\nINCR\r\n$1\r\na\r\n"
	                   "*2\r\n$4\r\nINCR\r\n$1\r\nb\r\n"
	                   "*2\r\n$3\r\nGET\r\n$1\r\na\r\n"
	                   "*3\r\n$3\r\nSET\r\n$4\r\n{x}c\r\n$1\r\n5\r\n"
	                   "*2\r\n$3\r\nGET\r\n$4\r\n{x}c\r\n"
	                   "*3\r\n$6\r\nINCRBY\r\n$1\r\na\r\n$2\r\n10\r\n");
	const char *want =
	        "+OK\r\n:2\r\n:1\r\n$1\r\n2\r\n+OK\r\n"
	        "$1\r\n5\r\n:12\r\n";
	unsigned taken;

	narf_engine_prefetch(&f->e, &f->c, buf, (size_t)len);
	assert_int_equal(f->e.pf_n, 7);
	assert_string_equal(run_buffer(f, buf, (size_t)len, &taken), want);
	assert_int_equal(taken, 7);
	EXPECT(f, "GET a", "$2\r\n12\r\n");
	EXPECT(f, "GET {x}c", "$1\r\n5\r\n");

	narf_engine_prefetch(&f->e, &f->c, buf, (size_t)len);
	narf_engine_prefetch_end(&f->e);
	for (int i = 0; i < len; i++) {
		if (buf[i] == 'a')
			buf[i] = 'z';
		else if (buf[i] == 'b')
			buf[i] = 'w';
		else if (buf[i] == 'x')
			buf[i] = 'y';
	}
	assert_string_equal(run_buffer(f, buf, (size_t)len, &taken), want);
	assert_int_equal(taken, 0);
	EXPECT(f, "GET z", "$2\r\n12\r\n");
	EXPECT(f, "GET {y}c", "$1\r\n5\r\n");
	EXPECT(f, "GET a", "$2\r\n12\r\n");
	EXPECT(f, "GET w", "$1\r\n1\r\n");
	EXPECT(f, "DBSIZE", ":6\r\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_set_get, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_prefetch_reads_only, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_prefetch_keys_taken_up,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_prefetch_after_auth, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_prefetch_members, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(
	                test_prefetch_inline_after_taken, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_prefetch_after_partial,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_set_expiry, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_lazy_expiry, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_expire_options, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_counters, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_incrbyfloat, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_ranges, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_multi_and_variants, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_keyspace, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_scan, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_server_commands, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_hello, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_hello_auth, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_resp3_replies, setup,
	                                        teardown),
	        cmocka_unit_test(test_reply_helpers),
	        cmocka_unit_test_setup_teardown(test_auth, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_auth_failures, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_protected_mode, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_protected_mode_peer, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_preauth_limits, setup,
	                                        teardown),
	        cmocka_unit_test_teardown(test_key_size_limit, teardown),
	        cmocka_unit_test_teardown(test_noeviction_oom, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
