/*
 * Unit tests of the peer links' NARF.AUTH (datanode/peer_auth.h, the
 * NARF.AUTH command in datanode/cmd_cluster.c) and of the connection
 * budgets that keep peer links apart from --max-clients (engine.h, enum
 * narf_budget): both sides of the handshake played in memory against the
 * engine, with a fake clock, no sockets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/errors.h"
#include "datanode/engine.h"
#include "datanode/peer_auth.h"

static int64_t fake_now = 1700000000000LL;

static int64_t fake_clock(void *data)
{
	(void)data;
	return fake_now;
}

static const char SECRET[] = "unit-test-cluster-secret-0123456";
static const char OTHER_SECRET[] = "another-cluster-secret-abcdefghij";

static void keys_of(struct narf_auth_keys *k, const char *secret)
{
	char errmsg[NARF_ERRMSG_SIZE];

	assert_int_equal(
	        narf_auth_keys_from_text(k, secret, strlen(secret), errmsg), 0);
}

/* An engine (a node) with the given keys (NULL: none) and password. */
struct node {
	struct narf_engine e;
	struct narf_buf out;
};

static struct node *node_make(const struct narf_auth_keys *keys,
                              const char *requirepass,
                              unsigned max_clients,
                              unsigned max_peer_links)
{
	struct node *n = calloc(1, sizeof(*n));
	struct narf_engine_config cfg;

	assert_non_null(n);
	narf_engine_config_default(&cfg);
	if (keys != NULL)
		cfg.keys = *keys;
	if (requirepass != NULL)
		cfg.requirepass = strdup(requirepass);
	cfg.max_clients = max_clients;
	cfg.max_peer_links = max_peer_links;
	/* The clients here come from nowhere in particular (not loopback):
	 * protected mode's part is test_engine's test_protected_mode_peer. */
	cfg.protected_mode = false;
	assert_int_equal(narf_engine_init(&n->e, &cfg, fake_clock, NULL), 0);
	narf_buf_init(&n->out);
	return n;
}

static void node_free(struct node *n)
{
	narf_buf_close(&n->out);
	narf_engine_close(&n->e);
	free(n);
}

/* Run every request in the RESP bytes `in` on client c, as the server
 * does; the replies are in n->out (cleared first). */
static void feed(struct node *n,
                 struct narf_client *c,
                 const char *in,
                 size_t len)
{
	struct narf_resp_req req;
	char errmsg[256];
	size_t pos = 0;

	n->out.len = 0;
	narf_resp_req_init(&req);
	while (pos < len) {
		int rv = narf_resp_parse(&req, in + pos, len - pos, NULL, NULL,
		                         errmsg);

		assert_int_equal(rv, NARF_RESP_DONE);
		assert_int_equal(narf_engine_exec(&n->e, c, req.argc, req.argv,
		                                  req.argvlen, &n->out),
		                 0);
		pos += req.consumed;
		narf_resp_req_reset(&req);
	}
	narf_resp_req_close(&req);
}

/* A command given as words. */
static void run(struct node *n, struct narf_client *c, int argc, ...)
{
	struct narf_buf cmd;
	const char *argv[8];
	size_t lens[8];
	va_list ap;

	va_start(ap, argc);
	for (int i = 0; i < argc; i++) {
		argv[i] = va_arg(ap, const char *);
		lens[i] = strlen(argv[i]);
	}
	va_end(ap);
	narf_buf_init(&cmd);
	assert_int_equal(narf_resp_command(&cmd, argc, argv, lens), 0);
	feed(n, c, cmd.data, cmd.len);
	narf_buf_close(&cmd);
}

static bool reply_is(const struct node *n, const char *want)
{
	return n->out.len == strlen(want) &&
	       memcmp(n->out.data, want, n->out.len) == 0;
}

static bool reply_starts(const struct node *n, const char *prefix)
{
	return n->out.len >= strlen(prefix) &&
	       memcmp(n->out.data, prefix, strlen(prefix)) == 0;
}

/* The whole exchange between a dialing node `me` holding ck and the node
 * n, on n's client c. Returns the dialing side's verdict on n's answer
 * (0 when it sent its proof, whose reply is then in n->out). */
static int handshake(struct node *n,
                     struct narf_client *c,
                     uint32_t me,
                     const struct narf_auth_keys *ck)
{
	struct narf_auth a;
	struct narf_buf hello, proof;
	char why[256] = "";
	int rv;

	narf_buf_init(&hello);
	narf_buf_init(&proof);
	assert_int_equal(narf_peer_auth_hello(&a, me, &hello), 0);
	feed(n, c, hello.data, hello.len);
	rv = narf_peer_auth_answer(&a, ck, n->out.data, n->out.len, &proof, why,
	                           sizeof(why));
	if (rv == 0)
		feed(n, c, proof.data, proof.len);
	else
		assert_int_equal(proof.len, 0); /* nothing goes out */
	narf_buf_close(&hello);
	narf_buf_close(&proof);
	return rv;
}

/* A node holding the cluster secret and one holding only the node key
 * derived from it prove the node role to each other: the connection
 * becomes node 7's peer link, needs no AUTH (with a password set), and
 * runs NARF.SET. */
static void test_handshake_ok(void **state)
{
	struct narf_auth_keys secret, node_only;
	char text[80];
	struct node *n;
	struct narf_client c;

	(void)state;
	keys_of(&secret, SECRET);
	assert_int_equal(narf_auth_node_key_text(&secret, text, sizeof(text)),
	                 0);
	keys_of(&node_only, text);
	n = node_make(&secret, "pw", 10, 10);
	narf_engine_client_init(&n->e, &c);
	assert_false(c.authenticated);
	assert_int_equal(handshake(n, &c, 7, &node_only), 0);
	assert_true(reply_is(n, "+OK\r\n"));
	assert_true(c.peer);
	assert_int_equal(c.peer_node, 7);
	assert_true(c.authenticated);
	assert_false(c.close_after_reply);
	run(n, &c, 5, "NARF.SET", "0", "k", "v", "0");
	assert_true(reply_is(n, "+OK\r\n"));
	/* Once is enough. */
	run(n, &c, 2, "NARF.AUTH", "00");
	assert_true(reply_starts(n, "-ERR NARF.AUTH: this connection already"));
	assert_false(c.close_after_reply);
	node_free(n);

	/* And the other way round: the node-key node answers. */
	n = node_make(&node_only, NULL, 10, 10);
	narf_engine_client_init(&n->e, &c);
	assert_int_equal(handshake(n, &c, 9, &secret), 0);
	assert_true(reply_is(n, "+OK\r\n"));
	assert_true(c.peer);
	assert_int_equal(n->e.stats.peer_auth_failures, 0);
	node_free(n);
}

/* A node holding another cluster's secret (or a stranger) is refused by
 * the dialing side before it proves anything, and so is a node whose
 * dialer holds the wrong key: neither learns a proof. A wrong proof that
 * reaches the node anyway is refused there: the connection closes, the
 * failure is counted, and it is no peer. */
static void test_wrong_keys(void **state)
{
	struct narf_auth_keys good, bad;
	struct narf_auth a;
	struct narf_buf hello;
	unsigned char mac[NARF_AUTH_MAC_SIZE] = {0};
	char hex[NARF_AUTH_MAC_HEX + 1];
	struct node *n;
	struct narf_client c;

	(void)state;
	keys_of(&good, SECRET);
	keys_of(&bad, OTHER_SECRET);
	n = node_make(&bad, NULL, 10, 10);
	narf_engine_client_init(&n->e, &c);
	assert_int_equal(handshake(n, &c, 3, &good), NARF_EAUTH);
	assert_false(c.peer);
	node_free(n);

	n = node_make(&good, NULL, 10, 10);
	narf_engine_client_init(&n->e, &c);
	assert_int_equal(handshake(n, &c, 3, &bad), NARF_EAUTH);
	assert_false(c.peer);
	/* A wrong proof at the node. */
	narf_engine_client_init(&n->e, &c);
	narf_buf_init(&hello);
	assert_int_equal(narf_peer_auth_hello(&a, 3, &hello), 0);
	feed(n, &c, hello.data, hello.len);
	assert_true(reply_starts(n, "*2\r\n$32\r\n"));
	assert_int_equal(n->out.len, NARF_PEER_AUTH_ANSWER_LEN);
	narf_auth_hex(mac, sizeof(mac), hex);
	run(n, &c, 2, "NARF.AUTH", hex);
	assert_true(reply_is(n, "-NOPERM NARF.AUTH: wrong proof\r\n"));
	assert_true(c.close_after_reply);
	assert_false(c.peer);
	assert_int_equal(n->e.stats.peer_auth_failures, 1);
	narf_buf_close(&hello);
	node_free(n);
}

/* Every NARF.* command but NARF.AUTH is peer-only: refused on a
 * connection that has not proven the node role, with a password or
 * without, and never run (the key NARF.SET names stays absent). */
static void test_peer_commands_refused(void **state)
{
	static const char noperm[] =
	        "-NOPERM this is a cluster-internal command (a peer link "
	        "proves the node role with NARF.AUTH first)\r\n";
	struct narf_auth_keys k;
	unsigned n_peer = 0;

	(void)state;
	keys_of(&k, SECRET);
	/* The table: every narf.* carries NARF_CMD_PEER but NARF.AUTH. */
	for (const struct narf_command *cmd = narf_peer_commands;
	     cmd->name != NULL; cmd++) {
		assert_int_equal(strncmp(cmd->name, "narf.", 5), 0);
		if (strcmp(cmd->name, "narf.auth") == 0) {
			assert_false(cmd->flags & NARF_CMD_PEER);
			continue;
		}
		assert_true(cmd->flags & NARF_CMD_PEER);
		n_peer++;
	}
	assert_true(n_peer >= 4);
	for (int with_pass = 0; with_pass < 2; with_pass++) {
		for (int with_keys = 0; with_keys < 2; with_keys++) {
			struct node *n =
			        node_make(with_keys ? &k : NULL,
			                  with_pass ? "pw" : NULL, 10, 10);
			struct narf_client c;

			narf_engine_client_init(&n->e, &c);
			if (with_pass) {
				run(n, &c, 2, "AUTH", "pw");
				assert_true(reply_is(n, "+OK\r\n"));
			}
			run(n, &c, 5, "NARF.SET", "0", "k", "v", "0");
			assert_true(reply_is(n, noperm));
			run(n, &c, 3, "NARF.DEL", "0", "k");
			assert_true(reply_is(n, noperm));
			run(n, &c, 3, "NARF.SYNC", "1", "0");
			assert_true(reply_is(n, noperm));
			run(n, &c, 3, "NARF.SYNCED", "1", "0");
			assert_true(reply_is(n, noperm));
			/* bad arity too: refused before anything is looked at
			 */
			run(n, &c, 1, "NARF.SET");
			assert_true(reply_is(n, noperm));
			/* the old handshake is gone */
			run(n, &c, 3, "NARF.HELLO", "1", "secret");
			assert_true(reply_starts(n, "-ERR unknown command"));
			assert_false(c.close_after_reply);
			run(n, &c, 2, "EXISTS", "k");
			assert_true(reply_is(n, ":0\r\n"));
			assert_false(c.peer);
			node_free(n);
		}
	}
}

/* A node without a node key (standalone) takes no peer links: NARF.AUTH
 * is refused and closes. */
static void test_no_keys_no_peers(void **state)
{
	struct narf_auth_keys k;
	struct node *n = node_make(NULL, NULL, 10, 10);
	struct narf_client c;

	(void)state;
	keys_of(&k, SECRET);
	narf_engine_client_init(&n->e, &c);
	assert_int_equal(handshake(n, &c, 2, &k), NARF_EAUTH);
	assert_true(reply_starts(n,
	                         "-NOPERM NARF.AUTH: this node takes no "
	                         "peer links"));
	assert_true(c.close_after_reply);
	assert_int_equal(n->e.stats.peer_auth_failures, 1);
	node_free(n);
}

/* Malformed steps fail, close and count: a bad node id, a bad nonce, a
 * proof without the first step, a second first step, too many
 * arguments. */
static void test_malformed_steps(void **state)
{
	static const char nonce[] = "000102030405060708090a0b0c0d0e0f";
	struct narf_auth_keys k;
	struct node *n;
	struct narf_client c;
	struct {
		int argc;
		const char *a1, *a2, *a3;
		const char *want;
	} cases[] = {
	        {3, "0", nonce, NULL, "-NOPERM NARF.AUTH: bad node id\r\n"},
	        {3, "4294967296", nonce, NULL,
	         "-NOPERM NARF.AUTH: bad node id\r\n"},
	        {3, "x", nonce, NULL, "-NOPERM NARF.AUTH: bad node id\r\n"},
	        {3, "1", "00", NULL, "-NOPERM NARF.AUTH: bad nonce\r\n"},
	        {3, "1", "zz0102030405060708090a0b0c0d0e0f", NULL,
	         "-NOPERM NARF.AUTH: bad nonce\r\n"},
	        {2, "00", NULL, NULL,
	         "-NOPERM NARF.AUTH: a proof without NARF.AUTH <node id> "
	         "<nonce> first\r\n"},
	        {4, "1", nonce, "x",
	         "-NOPERM NARF.AUTH: wrong number of arguments\r\n"},
	        {1, NULL, NULL, NULL,
	         "-ERR wrong number of arguments for 'narf.auth' "
	         "command\r\n"},
	};

	(void)state;
	keys_of(&k, SECRET);
	n = node_make(&k, NULL, 10, 10);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		narf_engine_client_init(&n->e, &c);
		run(n, &c, cases[i].argc, "NARF.AUTH", cases[i].a1, cases[i].a2,
		    cases[i].a3);
		if (!reply_is(n, cases[i].want))
			fail_msg("case %zu: %.*s", i, (int)n->out.len,
			         n->out.data);
		assert_int_equal(c.close_after_reply, cases[i].argc > 1);
		assert_false(c.peer);
	}
	/* A second first step. */
	narf_engine_client_init(&n->e, &c);
	run(n, &c, 3, "NARF.AUTH", "1", nonce);
	assert_true(reply_starts(n, "*2\r\n"));
	run(n, &c, 3, "NARF.AUTH", "1", nonce);
	assert_true(reply_is(n,
	                     "-NOPERM NARF.AUTH: a second NARF.AUTH "
	                     "<node id> <nonce>\r\n"));
	assert_true(c.close_after_reply);
	assert_int_equal(n->e.stats.peer_auth_failures, 8);
	node_free(n);
}

/* The dialing side takes only the exact answer: an error reply is a
 * refusal (quoted in why), anything else not a narf node, and a node
 * that plays our own nonce back is refused. */
static void test_answer_shapes(void **state)
{
	struct narf_auth_keys k;
	struct narf_auth a;
	struct narf_buf hello, out;
	char why[256];
	char good[NARF_PEER_AUTH_ANSWER_LEN + 1];
	char nonce[NARF_AUTH_NONCE_HEX + 1], mac[NARF_AUTH_MAC_HEX + 1];
	unsigned char m[NARF_AUTH_MAC_SIZE];
	static const char *const junk[] = {
	        "+OK\r\n",
	        "*2\r\n$32\r\nshort\r\n",
	        ":1\r\n",
	        "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n",
	};

	(void)state;
	keys_of(&k, SECRET);
	narf_buf_init(&hello);
	narf_buf_init(&out);
	assert_int_equal(narf_peer_auth_hello(&a, 0, &hello), NARF_EINVAL);
	assert_int_equal(hello.len, 0);
	assert_int_equal(narf_peer_auth_hello(&a, 12, &hello), 0);
	assert_true(hello.len > 0);
	assert_int_equal(narf_peer_auth_answer(&a, &k, "-NOPERM go away\r\n",
	                                       17, &out, why, sizeof(why)),
	                 NARF_EAUTH);
	assert_string_equal(why, "refused: NOPERM go away");
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
		assert_int_equal(
		        narf_peer_auth_answer(&a, &k, junk[i], strlen(junk[i]),
		                              &out, why, sizeof(why)),
		        NARF_EPROTO);
	/* Our own nonce back, with the MAC a node would make over it. */
	narf_auth_hex(a.nonce_c, NARF_AUTH_NONCE_SIZE, nonce);
	memset(m, 0, sizeof(m));
	narf_auth_hex(m, sizeof(m), mac);
	snprintf(good, sizeof(good), "*2\r\n$32\r\n%s\r\n$64\r\n%s\r\n", nonce,
	         mac);
	assert_int_equal(narf_peer_auth_answer(&a, &k, good, strlen(good), &out,
	                                       why, sizeof(why)),
	                 NARF_EAUTH);
	assert_int_equal(out.len, 0);
	narf_buf_close(&hello);
	narf_buf_close(&out);
}

/* Budgets: clients up to max_clients, then the peer reserve up to
 * max_peer_links (proven peers and reserve together), then none. A
 * reserve connection is refused Redis's way on any command but NARF.AUTH,
 * and once overdue; one that proves moves to the peer budget, and so does
 * a client that proves (freeing its client place). */
static void test_budgets(void **state)
{
	struct narf_auth_keys k;
	struct node *n;
	struct narf_client c1, c2, r1, r2, r3;

	(void)state;
	keys_of(&k, SECRET);
	fake_now = 1700000000000LL;
	n = node_make(&k, "pw", 2, 2);
	assert_int_equal(narf_engine_admit(&n->e), NARF_BUDGET_CLIENT);
	narf_engine_client_init(&n->e, &c1);
	narf_engine_budget_take(&n->e, &c1, narf_engine_admit(&n->e));
	narf_engine_client_init(&n->e, &c2);
	narf_engine_budget_take(&n->e, &c2, narf_engine_admit(&n->e));
	assert_int_equal(n->e.connected_clients, 2);
	assert_int_equal(narf_engine_admit(&n->e), NARF_BUDGET_RESERVE);

	/* A client beyond --max-clients: Redis's error on any command. */
	narf_engine_client_init(&n->e, &r1);
	narf_engine_budget_take(&n->e, &r1, NARF_BUDGET_RESERVE);
	assert_int_equal(n->e.peer_pending, 1);
	run(n, &r1, 1, "PING");
	assert_true(reply_is(n, "-ERR max number of clients reached\r\n"));
	assert_true(r1.close_after_reply);
	run(n, &r1, 2, "FOO", "x");
	assert_true(reply_is(n, "-ERR max number of clients reached\r\n"));
	run(n, &r1, 5, "NARF.SET", "0", "k", "v", "0");
	assert_true(reply_is(n, "-ERR max number of clients reached\r\n"));
	assert_int_equal(n->e.stats.rejected_connections, 3);
	narf_engine_budget_release(&n->e, &r1);
	assert_int_equal(n->e.peer_pending, 0);

	/* A peer in the reserve proves itself and is a peer link. */
	narf_engine_client_init(&n->e, &r2);
	narf_engine_budget_take(&n->e, &r2, NARF_BUDGET_RESERVE);
	assert_int_equal(handshake(n, &r2, 4, &k), 0);
	assert_true(reply_is(n, "+OK\r\n"));
	assert_int_equal(r2.budget, NARF_BUDGET_PEER);
	assert_int_equal(n->e.peer_pending, 0);
	assert_int_equal(n->e.peer_links, 1);
	assert_int_equal(n->e.connected_clients, 2);
	run(n, &r2, 2, "EXISTS", "k");
	assert_true(reply_is(n, ":0\r\n"));

	/* One reserve place is left; it is overdue after the deadline. */
	narf_engine_client_init(&n->e, &r3);
	narf_engine_budget_take(&n->e, &r3, narf_engine_admit(&n->e));
	assert_int_equal(r3.budget, NARF_BUDGET_RESERVE);
	assert_int_equal(narf_engine_admit(&n->e), NARF_BUDGET_NONE);
	assert_false(narf_engine_reserve_overdue(
	        &n->e, &r3, fake_now + NARF_PEER_AUTH_DEADLINE_MS - 1));
	assert_true(narf_engine_reserve_overdue(
	        &n->e, &r3, fake_now + NARF_PEER_AUTH_DEADLINE_MS));
	assert_false(narf_engine_reserve_overdue(
	        &n->e, &c1, fake_now + NARF_PEER_AUTH_DEADLINE_MS));
	/* a clock stepped back: overdue rather than squatted for long */
	assert_true(narf_engine_reserve_overdue(&n->e, &r3, fake_now - 1));
	n->out.len = 0;
	narf_engine_reserve_refuse(&n->e, &r3, &n->out);
	assert_true(reply_is(n, "-ERR max number of clients reached\r\n"));
	assert_true(r3.close_after_reply);
	narf_engine_budget_release(&n->e, &r3);
	assert_int_equal(narf_engine_admit(&n->e), NARF_BUDGET_RESERVE);

	/* A client that proves frees its client place. */
	assert_int_equal(handshake(n, &c1, 6, &k), 0);
	assert_int_equal(c1.budget, NARF_BUDGET_PEER);
	assert_int_equal(n->e.connected_clients, 1);
	assert_int_equal(n->e.peer_links, 2);
	assert_int_equal(narf_engine_admit(&n->e), NARF_BUDGET_CLIENT);
	/* Peer budget full, client budget full: refused. */
	narf_engine_client_init(&n->e, &r1);
	narf_engine_budget_take(&n->e, &r1, NARF_BUDGET_CLIENT);
	assert_int_equal(narf_engine_admit(&n->e), NARF_BUDGET_NONE);
	narf_engine_budget_release(&n->e, &r1);
	narf_engine_budget_release(&n->e, &c1);
	narf_engine_budget_release(&n->e, &r2);
	narf_engine_budget_release(&n->e, &c2);
	narf_engine_budget_release(&n->e, &c2); /* twice: no underflow */
	assert_int_equal(n->e.connected_clients, 0);
	assert_int_equal(n->e.peer_links, 0);
	assert_int_equal(n->e.peer_pending, 0);
	node_free(n);

	/* --max-peer-links 0: no reserve, peers share --max-clients. */
	n = node_make(&k, NULL, 1, 0);
	narf_engine_client_init(&n->e, &c1);
	narf_engine_budget_take(&n->e, &c1, narf_engine_admit(&n->e));
	assert_int_equal(narf_engine_admit(&n->e), NARF_BUDGET_NONE);
	narf_engine_budget_release(&n->e, &c1);
	node_free(n);
}

/* Failed NARF.AUTHs are all counted, logged at most once a second (the
 * rest counted as suppressed until the next line). */
static void test_failure_log_rate(void **state)
{
	struct narf_auth_keys k;
	struct node *n;
	struct narf_client c;

	(void)state;
	keys_of(&k, SECRET);
	fake_now = 1700000000000LL;
	n = node_make(&k, NULL, 10, 10);
	for (int i = 0; i < 5; i++) {
		narf_engine_client_init(&n->e, &c);
		run(n, &c, 2, "NARF.AUTH", "00");
	}
	assert_int_equal(n->e.stats.peer_auth_failures, 5);
	assert_int_equal(n->e.peer_auth_log.suppressed, 4);
	assert_true(n->e.peer_auth_log.last_ms == fake_now);
	fake_now += NARF_RATELOG_MS - 1;
	narf_engine_client_init(&n->e, &c);
	run(n, &c, 2, "NARF.AUTH", "00");
	assert_int_equal(n->e.peer_auth_log.suppressed, 5);
	fake_now += 1;
	narf_engine_client_init(&n->e, &c);
	run(n, &c, 2, "NARF.AUTH", "00");
	assert_int_equal(n->e.peer_auth_log.suppressed, 0);
	assert_true(n->e.peer_auth_log.last_ms == fake_now);
	assert_int_equal(n->e.stats.peer_auth_failures, 7);
	node_free(n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_handshake_ok),
	        cmocka_unit_test(test_wrong_keys),
	        cmocka_unit_test(test_peer_commands_refused),
	        cmocka_unit_test(test_no_keys_no_peers),
	        cmocka_unit_test(test_malformed_steps),
	        cmocka_unit_test(test_answer_shapes),
	        cmocka_unit_test(test_budgets),
	        cmocka_unit_test(test_failure_log_rate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
