/*
 * The coordinator API without its sockets (coordinator/api_auth.h,
 * narf_api_request() in coord.h): the auth exchange's lines and their
 * replies, and requests checked against a coordinator at rest
 * (coord_fixture.h), with the command a request would propose looked at
 * instead of proposed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/frame.h"
#include "common/log.h"
#include "coord_fixture.h"
#include "coordinator/api_auth.h"
#include "coordinator/planner.h"

static json_t *parse(const char *text)
{
	json_error_t jerr;
	json_t *v = json_loads(text, 0, &jerr);

	assert_non_null(v);
	return v;
}

/* --- the auth exchange --------------------------------------------------- */

/* One line of the exchange as text; returns the step's code and sets
 * *reply (to be decref'd). */
static int auth_line(const struct narf_auth_keys *keys,
                     enum narf_api_auth_state *st,
                     struct narf_auth *a,
                     const char *text,
                     json_t **reply)
{
	json_t *req = parse(text);
	const char *why = NULL;
	int rv = narf_api_auth_step(keys, st, a, req, reply, &why);

	json_decref(req);
	if (rv != 0) {
		assert_null(*reply);
		assert_non_null(why);
	} else {
		assert_non_null(*reply);
		assert_null(why);
	}
	return rv;
}

/* The hello of a client that began c, as a line. */
static void hello_text(const struct narf_auth *c, char *out, size_t size)
{
	char nonce[NARF_AUTH_NONCE_HEX + 1];

	narf_auth_hex(c->nonce_c, NARF_AUTH_NONCE_SIZE, nonce);
	snprintf(out, size,
	         "{\"op\":\"auth\",\"role\":\"%s\",\"id\":%llu,"
	         "\"nonce\":\"%s\"}",
	         narf_auth_role_name(c->role), (unsigned long long)c->id,
	         nonce);
}

/* A client's whole exchange with the server's keys sk: returns the code
 * of the step that failed (0: proven both ways). The client holds ck. */
static int exchange(const struct narf_auth_keys *sk,
                    const struct narf_auth_keys *ck,
                    enum narf_auth_role role,
                    uint64_t id)
{
	enum narf_api_auth_state st = NARF_API_AUTH_HELLO;
	struct narf_auth c, s;
	unsigned char nonce_s[NARF_AUTH_NONCE_SIZE], mac[NARF_AUTH_MAC_SIZE];
	unsigned char mine[NARF_AUTH_MAC_SIZE];
	char line[256], hex[NARF_AUTH_MAC_HEX + 1];
	json_t *reply = NULL;
	int rv;

	assert_int_equal(narf_auth_client_begin(&c, role, id, "api"), 0);
	hello_text(&c, line, sizeof(line));
	rv = auth_line(sk, &st, &s, line, &reply);
	if (rv != 0) {
		assert_int_equal(st, NARF_API_AUTH_HELLO);
		return rv;
	}
	assert_int_equal(st, NARF_API_AUTH_PROOF);
	assert_true(json_is_true(json_object_get(reply, "ok")));
	assert_int_equal(
	        narf_auth_unhex(
	                json_string_value(json_object_get(reply, "nonce")),
	                NARF_AUTH_NONCE_HEX, nonce_s, sizeof(nonce_s)),
	        0);
	assert_int_equal(narf_auth_unhex(json_string_value(json_object_get(
	                                         reply, "proof")),
	                                 NARF_AUTH_MAC_HEX, mac, sizeof(mac)),
	                 0);
	json_decref(reply);
	rv = narf_auth_client_prove(&c, ck, nonce_s, mac, mine);
	if (rv != 0)
		return rv;
	narf_auth_hex(mine, sizeof(mine), hex);
	snprintf(line, sizeof(line), "{\"op\":\"auth\",\"proof\":\"%s\"}", hex);
	rv = auth_line(sk, &st, &s, line, &reply);
	if (rv != 0) {
		assert_int_equal(st, NARF_API_AUTH_PROOF);
		return rv;
	}
	assert_int_equal(st, NARF_API_AUTH_DONE);
	assert_string_equal(json_string_value(json_object_get(reply, "role")),
	                    narf_auth_role_name(role));
	assert_int_equal(s.role, role);
	assert_int_equal(s.id, id);
	json_decref(reply);
	return 0;
}

static void keys_of(struct narf_auth_keys *k, const char *text)
{
	assert_int_equal(narf_auth_keys_from_text(k, text, strlen(text), NULL),
	                 0);
}

/* Callers with the cluster secret (operator) or the node key (node) prove
 * themselves and check the coordinator, with or without an id. */
static void test_exchange_proves_both_roles(void **state)
{
	struct narf_auth_keys sk, nk;
	char text[80];

	(void)state;
	keys_of(&sk, FIXTURE_SECRET);
	assert_int_equal(narf_auth_node_key_text(&sk, text, sizeof(text)), 0);
	keys_of(&nk, text);
	assert_int_equal(exchange(&sk, &sk, NARF_AUTH_OPERATOR, 0), 0);
	assert_int_equal(exchange(&sk, &nk, NARF_AUTH_NODE, 12), 0);
	assert_int_equal(exchange(&sk, &sk, NARF_AUTH_NODE, UINT32_MAX), 0);
}

/* A wrong secret fails on both sides: the client finds the coordinator's
 * proof wrong, and a server holding only a node key cannot answer for the
 * operator role at all. */
static void test_exchange_wrong_keys(void **state)
{
	struct narf_auth_keys sk, other, nk;
	char text[80];

	(void)state;
	keys_of(&sk, FIXTURE_SECRET);
	keys_of(&other, "another cluster's secret, long enough");
	assert_int_equal(exchange(&sk, &other, NARF_AUTH_OPERATOR, 0),
	                 NARF_EAUTH);
	assert_int_equal(narf_auth_node_key_text(&sk, text, sizeof(text)), 0);
	keys_of(&nk, text);
	assert_int_equal(exchange(&nk, &sk, NARF_AUTH_OPERATOR, 0), NARF_EAUTH);
}

/* Every malformed hello is refused and leaves the state as it was:
 * another op first, the coord role, an unknown role, a bad nonce, a
 * negative or non-integer id, a proof before the hello. */
static void test_bad_hellos(void **state)
{
	static const char *const bad[] = {
	        "{\"op\":\"ping\"}",
	        "{\"role\":\"operator\",\"nonce\":"
	        "\"00112233445566778899aabbccddeeff\"}",
	        "{\"op\":\"auth\",\"role\":\"coord\",\"nonce\":"
	        "\"00112233445566778899aabbccddeeff\"}",
	        "{\"op\":\"auth\",\"role\":\"root\",\"nonce\":"
	        "\"00112233445566778899aabbccddeeff\"}",
	        "{\"op\":\"auth\",\"role\":\"node\",\"nonce\":"
	        "\"00112233445566778899aabbccddeef\"}",
	        "{\"op\":\"auth\",\"role\":\"node\",\"nonce\":"
	        "\"00112233445566778899aabbccddeefg\"}",
	        "{\"op\":\"auth\",\"role\":\"node\",\"nonce\":12}",
	        "{\"op\":\"auth\",\"role\":\"node\",\"id\":-1,\"nonce\":"
	        "\"00112233445566778899aabbccddeeff\"}",
	        "{\"op\":\"auth\",\"role\":\"node\",\"id\":\"1\",\"nonce\":"
	        "\"00112233445566778899aabbccddeeff\"}",
	        "{\"op\":\"auth\",\"proof\":\"00\"}",
	};
	struct narf_auth_keys sk;
	struct narf_auth a;
	json_t *reply;

	(void)state;
	keys_of(&sk, FIXTURE_SECRET);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		enum narf_api_auth_state st = NARF_API_AUTH_HELLO;

		assert_int_equal(auth_line(&sk, &st, &a, bad[i], &reply),
		                 NARF_EAUTH);
		assert_int_equal(st, NARF_API_AUTH_HELLO);
	}
}

/* After the hello, only the caller's proof will do: another op, a second
 * hello, a malformed proof and the coordinator's own proof sent back are
 * all refused; once proven, the exchange takes no more lines. */
static void test_bad_proofs(void **state)
{
	enum narf_api_auth_state st = NARF_API_AUTH_HELLO;
	struct narf_auth_keys sk;
	struct narf_auth c, s;
	char line[256];
	json_t *reply;

	(void)state;
	keys_of(&sk, FIXTURE_SECRET);
	assert_int_equal(narf_auth_client_begin(&c, NARF_AUTH_NODE, 3, "api"),
	                 0);
	hello_text(&c, line, sizeof(line));
	assert_int_equal(auth_line(&sk, &st, &s, line, &reply), 0);
	/* Reflection: the coordinator's proof as the caller's. */
	snprintf(line, sizeof(line), "{\"op\":\"auth\",\"proof\":\"%s\"}",
	         json_string_value(json_object_get(reply, "proof")));
	json_decref(reply);
	assert_int_equal(auth_line(&sk, &st, &s, line, &reply), NARF_EAUTH);
	assert_int_equal(auth_line(&sk, &st, &s, "{\"op\":\"map\"}", &reply),
	                 NARF_EAUTH);
	hello_text(&c, line, sizeof(line));
	assert_int_equal(auth_line(&sk, &st, &s, line, &reply), NARF_EAUTH);
	assert_int_equal(auth_line(&sk, &st, &s,
	                           "{\"op\":\"auth\",\"proof\":true}", &reply),
	                 NARF_EAUTH);
	assert_int_equal(st, NARF_API_AUTH_PROOF);
	st = NARF_API_AUTH_DONE;
	assert_int_equal(auth_line(&sk, &st, &s, line, &reply), NARF_EAUTH);
	assert_int_equal(st, NARF_API_AUTH_DONE);
}

/* --- requests ------------------------------------------------------------ */

struct api_test {
	struct narf_coord c;
};

static int setup(void **state)
{
	struct api_test *t = calloc(1, sizeof(*t));

	if (t == NULL || fixture_init(&t->c) != 0) {
		free(t);
		return -1;
	}
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct api_test *t = *state;

	fixture_close(&t->c);
	free(t);
	return 0;
}

/* A reply written as bytes: one line, ending in its only newline, that
 * decodes as JSON. Returns the decoded reply (a new reference). */
static json_t *parse_line(const struct narf_blob *raw)
{
	json_error_t jerr;
	json_t *v;

	assert_true(raw->len >= 2);
	assert_int_equal(raw->data[raw->len - 1], '\n');
	assert_null(memchr(raw->data, '\n', raw->len - 1));
	v = json_loadb(raw->data, raw->len - 1, 0, &jerr);
	if (v == NULL)
		fail_msg("reply line is not JSON: %s: %.*s", jerr.text,
		         (int)raw->len, raw->data);
	return v;
}

/* A request as text from role, and its reply line's bytes as a string
 * (freed by the caller), whether written as bytes or from a JSON tree;
 * NULL when a command is to be proposed (then in *cmd). */
static char *request_line(struct narf_coord *c,
                          enum narf_auth_role role,
                          const char *text,
                          json_t **cmd,
                          enum narf_api_pending *kind)
{
	json_t *req = parse(text);
	struct narf_blob *raw = NULL;
	json_t *reply = narf_api_request(c, role, req, cmd, kind, &raw);
	char *line;
	size_t len;

	json_decref(req);
	assert_int_equal((reply != NULL) + (raw != NULL) + (*cmd != NULL), 1);
	if (*cmd != NULL)
		return NULL;
	if (raw != NULL) {
		json_decref(parse_line(raw));
		line = strndup(raw->data, raw->len);
		narf_blob_unref(raw);
	} else {
		line = narf_frame_encode(reply, &len);
		json_decref(reply);
	}
	assert_non_null(line);
	return line;
}

/* A request as text from role: the reply (NULL when a command is to be
 * proposed, then in *cmd), decoded when it was written as bytes. */
static json_t *request(struct narf_coord *c,
                       enum narf_auth_role role,
                       const char *text,
                       json_t **cmd,
                       enum narf_api_pending *kind)
{
	json_t *req = parse(text);
	struct narf_blob *raw = NULL;
	json_t *reply = narf_api_request(c, role, req, cmd, kind, &raw);

	json_decref(req);
	assert_int_equal((reply != NULL) + (raw != NULL) + (*cmd != NULL), 1);
	if (raw != NULL) {
		reply = parse_line(raw);
		narf_blob_unref(raw);
	}
	return reply;
}

/* The error code of a request's reply (which must be an error). */
static const char *error_of(struct narf_coord *c,
                            enum narf_auth_role role,
                            const char *text)
{
	static char code[32];
	enum narf_api_pending kind;
	json_t *cmd = NULL;
	json_t *reply = request(c, role, text, &cmd, &kind);

	assert_non_null(reply);
	assert_true(json_is_false(json_object_get(reply, "ok")));
	assert_true(json_is_string(json_object_get(reply, "message")));
	snprintf(code, sizeof(code), "%s",
	         json_string_value(json_object_get(reply, "error")));
	json_decref(reply);
	return code;
}

/* The command a request would propose; its type must be `type`. */
static json_t *command_of(struct narf_coord *c,
                          enum narf_auth_role role,
                          const char *text,
                          const char *type,
                          enum narf_api_pending want)
{
	enum narf_api_pending kind;
	json_t *cmd = NULL;
	json_t *reply = request(c, role, text, &cmd, &kind);

	if (reply != NULL) {
		char *s = json_dumps(reply, JSON_COMPACT);

		fail_msg("%s answered %s", text, s);
		free(s);
	}
	assert_string_equal(json_string_value(json_object_get(cmd, "type")),
	                    type);
	assert_int_equal(kind, want);
	return cmd;
}

/* A data node's credential may not change settings or coordinators, nor
 * make another node leave; it may leave itself with its boot id. */
static void test_node_role_limits(void **state)
{
	struct narf_coord *c = &((struct api_test *)*state)->c;
	const enum narf_auth_role node = NARF_AUTH_NODE;
	uint32_t a = fixture_node(c, "127.0.0.1:7201", "a1", NARF_NODE_UP);
	char text[128];
	json_t *cmd;

	assert_int_equal(a, 1);
	assert_string_equal(error_of(c, node, "{\"op\":\"settings\"}"),
	                    "denied");
	assert_string_equal(
	        error_of(c, node,
	                 "{\"op\":\"coord_add\",\"id\":4,\"raft\":\"h:1\","
	                 "\"api\":\"h:2\"}"),
	        "denied");
	assert_string_equal(error_of(c, node, "{\"op\":\"coord_remove\"}"),
	                    "denied");
	assert_string_equal(error_of(c, node, "{\"op\":\"coord_replace\"}"),
	                    "denied");
	snprintf(text, sizeof(text), "{\"op\":\"leave\",\"node\":%u}", a);
	assert_string_equal(error_of(c, node, text), "denied");
	snprintf(text, sizeof(text),
	         "{\"op\":\"leave\",\"node\":%u,\"boot_id\":\"a2\"}", a);
	assert_string_equal(error_of(c, node, text), "denied");
	snprintf(text, sizeof(text),
	         "{\"op\":\"leave\",\"node\":%u,\"boot_id\":\"a1\","
	         "\"if_room\":true}",
	         a);
	cmd = command_of(c, node, text, "leave", NARF_API_PENDING_EPOCH);
	assert_true(json_is_true(json_object_get(cmd, "if_room")));
	json_decref(cmd);
	/* The operator may make any node leave. */
	snprintf(text, sizeof(text), "{\"op\":\"leave\",\"node\":%u}", a);
	json_decref(command_of(c, NARF_AUTH_OPERATOR, text, "leave",
	                       NARF_API_PENDING_EPOCH));
}

/* The order of the checks: unknown op, then leadership, then readiness;
 * ping is answered by any member. A follower names the leader it knows. */
static void test_leadership_and_readiness(void **state)
{
	struct narf_coord *c = &((struct api_test *)*state)->c;
	const enum narf_auth_role op = NARF_AUTH_OPERATOR;
	enum narf_api_pending kind;
	json_t *cmd = NULL, *reply;

	fixture_set_role(c, FIXTURE_FOLLOWER, false);
	assert_string_equal(error_of(c, op, "{\"op\":\"nope\"}"), "unknown_op");
	assert_string_equal(error_of(c, op, "{\"op\":\"map\"}"), "not_leader");
	reply = request(c, op, "{\"op\":\"status\"}", &cmd, &kind);
	assert_string_equal(json_string_value(json_object_get(reply, "leader")),
	                    "127.0.0.1:7002");
	json_decref(reply);
	reply = request(c, op, "{\"op\":\"ping\"}", &cmd, &kind);
	assert_true(json_is_true(json_object_get(reply, "ok")));
	assert_string_equal(json_string_value(json_object_get(reply, "role")),
	                    "follower");
	json_decref(reply);
	fixture_set_role(c, FIXTURE_NOT_READY, true);
	assert_string_equal(error_of(c, op, "{\"op\":\"join\"}"), "not_ready");
	fixture_set_role(c, FIXTURE_CANDIDATE, false);
	assert_string_equal(error_of(c, op, "{\"op\":\"coords\"}"),
	                    "not_leader");
	assert_string_equal(error_of(c, op, "{\"op\":7}"), "bad_request");
}

/* Heartbeats renew a node's lease only while the leader can prove it
 * leads; an unknown incarnation is told to join again. */
static void test_heartbeat(void **state)
{
	struct narf_coord *c = &((struct api_test *)*state)->c;
	const enum narf_auth_role node = NARF_AUTH_NODE;
	enum narf_api_pending kind;
	json_t *cmd = NULL, *reply;

	assert_int_equal(fixture_node(c, "127.0.0.1:7201", "a1", NARF_NODE_UP),
	                 1);
	reply = request(c, node,
	                "{\"op\":\"heartbeat\",\"node\":1,\"boot_id\":\"a1\","
	                "\"keys\":5}",
	                &cmd, &kind);
	assert_string_equal(json_string_value(json_object_get(reply, "state")),
	                    "up");
	json_decref(reply);
	assert_int_equal(narf_leader_hb(c, 1)->keys, 5);
	assert_string_equal(
	        error_of(
	                c, node,
	                "{\"op\":\"heartbeat\",\"node\":1,\"boot_id\":\"a2\"}"),
	        "unknown_node");
	assert_string_equal(
	        error_of(c, node,
	                 "{\"op\":\"heartbeat\",\"node\":4294967297,"
	                 "\"boot_id\":\"a1\"}"),
	        "unknown_node");
	fixture_set_role(c, FIXTURE_READY, false);
	assert_string_equal(
	        error_of(
	                c, node,
	                "{\"op\":\"heartbeat\",\"node\":1,\"boot_id\":\"a1\"}"),
	        "no_quorum");
}

/* join, isr and handoff are checked as the FSM would check them, and what
 * they would propose applies. */
static void test_commands_apply(void **state)
{
	struct narf_coord *c = &((struct api_test *)*state)->c;
	const enum narf_auth_role node = NARF_AUTH_NODE;
	struct narf_map_result res;
	json_t *cmd;

	cmd = command_of(c, node,
	                 "{\"op\":\"join\",\"addr\":\"127.0.0.1:7201\","
	                 "\"boot_id\":\"a1\"}",
	                 "node_join", NARF_API_PENDING_JOIN);
	assert_int_equal(fixture_apply(c, cmd, &res), 0);
	json_decref(cmd);
	assert_string_equal(error_of(c, node,
	                             "{\"op\":\"join\",\"addr\":\"h\","
	                             "\"boot_id\":\"a1\"}"),
	                    "bad_request");
	assert_string_equal(error_of(c, node,
	                             "{\"op\":\"join\",\"addr\":\"h:1\","
	                             "\"boot_id\":\"a b\"}"),
	                    "bad_request");
	assert_int_equal(fixture_node(c, "127.0.0.1:7202", "b1", NARF_NODE_UP),
	                 2);
	/* Node 1 is still joining: it leads nothing, so it may not report. */
	assert_string_equal(error_of(c, node,
	                             "{\"op\":\"isr\",\"node\":1,\"boot_id\":"
	                             "\"a1\",\"peer\":2,\"drop\":true}"),
	                    "unknown_node");
	cmd = command_of(c, node,
	                 "{\"op\":\"isr\",\"node\":2,\"boot_id\":\"b1\","
	                 "\"peer\":1,\"add\":[[0,9],[5,20]],\"since\":3}",
	                 "isr", NARF_API_PENDING_EPOCH);
	assert_int_equal(fixture_apply(c, cmd, &res), 0);
	json_decref(cmd);
	assert_string_equal(error_of(c, node,
	                             "{\"op\":\"isr\",\"node\":2,\"boot_id\":"
	                             "\"b1\",\"peer\":1,\"add\":[[9,8]]}"),
	                    "bad_request");
	assert_string_equal(
	        error_of(c, node,
	                 "{\"op\":\"isr\",\"node\":2,\"boot_id\":\"b1\","
	                 "\"peer\":1,\"add\":[],\"drop\":true}"),
	        "bad_request");
	cmd = command_of(c, node,
	                 "{\"op\":\"handoff\",\"node\":2,\"boot_id\":\"b1\","
	                 "\"slots\":[[16383,16383]]}",
	                 "handoff", NARF_API_PENDING_EPOCH);
	assert_int_equal(fixture_apply(c, cmd, &res), 0);
	json_decref(cmd);
	assert_string_equal(
	        error_of(c, node,
	                 "{\"op\":\"handoff\",\"node\":2,"
	                 "\"boot_id\":\"b1\",\"slots\":[[0,16384]]}"),
	        "bad_request");
}

/* Settings and coordinator changes: checked, then proposed; a read or a
 * retried add is answered at once. */
static void test_operator_ops(void **state)
{
	struct narf_coord *c = &((struct api_test *)*state)->c;
	const enum narf_auth_role op = NARF_AUTH_OPERATOR;
	struct narf_map_result res;
	enum narf_api_pending kind;
	json_t *cmd = NULL, *reply;

	cmd = command_of(c, op, "{\"op\":\"settings\",\"replication\":3}",
	                 "settings", NARF_API_PENDING_SETTINGS);
	assert_int_equal(fixture_apply(c, cmd, &res), 0);
	json_decref(cmd);
	assert_int_equal(c->rn.map->settings.replication, 3);
	/* Below twice the election timeout. */
	assert_string_equal(
	        error_of(c, op,
	                 "{\"op\":\"settings\",\"node_timeout_ms\":150}"),
	        "bad_request");
	cmd = NULL;
	reply = request(c, op, "{\"op\":\"settings\"}", &cmd, &kind);
	assert_int_equal(
	        json_integer_value(json_object_get(
	                json_object_get(reply, "settings"), "replication")),
	        3);
	json_decref(reply);
	cmd = command_of(c, op,
	                 "{\"op\":\"coord_add\",\"id\":4,\"raft\":"
	                 "\"127.0.0.1:7104\",\"api\":\"127.0.0.1:7004\"}",
	                 "coords_set", NARF_API_PENDING_COORDS);
	assert_true(c->members.proposing);
	/* One change at a time. */
	assert_string_equal(error_of(c, op,
	                             "{\"op\":\"coord_add\",\"id\":5,\"raft\":"
	                             "\"127.0.0.1:7105\",\"api\":"
	                             "\"127.0.0.1:7005\"}"),
	                    "change_in_flight");
	narf_members_proposed(c);
	assert_int_equal(fixture_apply(c, cmd, &res), 0);
	json_decref(cmd);
	cmd = NULL;
	reply = request(c, op,
	                "{\"op\":\"coord_add\",\"id\":4,\"raft\":"
	                "\"127.0.0.1:7104\",\"api\":\"127.0.0.1:7004\"}",
	                &cmd, &kind);
	assert_true(json_is_true(json_object_get(reply, "done")));
	json_decref(reply);
	reply = request(c, op, "{\"op\":\"coords\"}", &cmd, &kind);
	assert_true(json_is_true(json_object_get(reply, "changing")));
	assert_int_equal(
	        json_array_size(json_object_get(reply, "coordinators")), 2);
	json_decref(reply);
	assert_string_equal(
	        error_of(c, op, "{\"op\":\"coord_remove\",\"id\":3}"),
	        "unknown_node");
}

/* The leader's status object (a new reference) and its "rebalance" part
 * (borrowed from it). */
static json_t *status_of(struct narf_coord *c, json_t **rebalance)
{
	enum narf_api_pending kind;
	json_t *cmd = NULL, *reply, *st;

	reply = request(c, NARF_AUTH_OPERATOR, "{\"op\":\"status\"}", &cmd,
	                &kind);
	st = json_incref(json_object_get(reply, "status"));
	json_decref(reply);
	assert_non_null(st);
	*rebalance = json_object_get(st, "rebalance");
	assert_non_null(*rebalance);
	return st;
}

static long long int_at(const json_t *obj, const char *a, const char *b)
{
	const json_t *v = json_object_get(obj, a);

	if (b != NULL)
		v = json_object_get(v, b);
	assert_true(json_is_integer(v));
	return (long long)json_integer_value(v);
}

/* Commit the planner's target for the flagged slots (all when take is
 * NULL) as one assign, as if every sync and handoff were done. */
static void apply_target(struct narf_coord *c, const bool *take)
{
	struct narf_slot *target = calloc(NARF_SLOTS, sizeof(*target));
	struct narf_map_result res;
	json_t *cmd;

	assert_non_null(target);
	narf_plan(c->rn.map, target);
	cmd = narf_cmd_assign(c->rn.map->epoch, target, take);
	assert_int_equal(fixture_apply(c, cmd, &res), 0);
	json_decref(cmd);
	free(target);
}

/* Every replica synced: isr add of every node to every primary's slots. */
static void sync_all(struct narf_coord *c)
{
	const struct narf_map *m = c->rn.map;
	bool *all = malloc(NARF_SLOTS * sizeof(*all));
	struct narf_map_result res;

	assert_non_null(all);
	for (unsigned s = 0; s < NARF_SLOTS; s++)
		all[s] = true;
	for (unsigned i = 0; i < m->n_nodes; i++)
		for (unsigned j = 0; j < m->n_nodes; j++) {
			json_t *cmd = narf_cmd_isr(m->nodes[i].id,
			                           m->nodes[j].id, all, 0);

			if (i != j)
				fixture_apply(c, cmd, &res);
			json_decref(cmd);
		}
	free(all);
}

/*
 * Issue 17's report: status read `moving 0` and `rebalance remaining 0`
 * while a node that had just joined held part of its share of primaries
 * and the move was not over. Between two planning rounds (here: the
 * leader's last round found the map balanced, then a node came up and
 * took some primaries) remaining is not 0, the status says it is
 * planning and not balanced, and it counts joining nodes as waiting.
 */
static void test_status_between_plans(void **state)
{
	struct narf_coord *c = &((struct api_test *)*state)->c;
	struct narf_leader *l = &c->leader;
	const struct narf_map *m = c->rn.map;
	bool *take = calloc(NARF_SLOTS, sizeof(*take));
	char addr[32], boot[8];
	unsigned p, r, share, half = 0;
	uint32_t fresh;
	json_t *st, *rb;

	assert_non_null(take);
	for (int i = 0; i < 15; i++) {
		snprintf(addr, sizeof(addr), "127.0.0.1:%d", 7201 + i);
		snprintf(boot, sizeof(boot), "b%d", i);
		assert_int_not_equal(fixture_node(c, addr, boot, NARF_NODE_UP),
		                     0);
	}
	apply_target(c, NULL);
	/* As the cron leaves it once a round finds nothing to do. */
	l->plan_remaining = l->plan_total = 0;
	l->idle_epoch = l->plan_epoch = m->epoch;
	st = status_of(c, &rb);
	assert_int_equal(int_at(rb, "remaining", NULL), 0);
	assert_true(json_is_true(json_object_get(rb, "balanced")));
	assert_true(json_is_false(json_object_get(rb, "planning")));
	json_decref(st);

	/* Node 16 joins and is up; the move is under way: it leads some of
	 * its 1024 slots (6.2% of 16384), no handoff is pending right now,
	 * and the leader has not planned this map yet. */
	fresh = fixture_node(c, "127.0.0.1:7300", "new", NARF_NODE_UP);
	assert_int_not_equal(fresh, 0);
	{
		struct narf_slot *t = calloc(NARF_SLOTS, sizeof(*t));

		assert_non_null(t);
		narf_plan(m, t);
		for (unsigned s = 0; s < NARF_SLOTS; s++)
			if (t[s].primary == fresh && half++ % 2 == 0)
				take[s] = true;
		free(t);
	}
	apply_target(c, take);
	narf_map_node_counts(m, fresh, &p, &r);
	share = NARF_SLOTS / 16;
	assert_true(p > 0 && p < share);
	st = status_of(c, &rb);
	assert_int_equal(int_at(st, "slots", "moving"), 0);
	/* The report: remaining read 0 here. */
	assert_true(int_at(rb, "remaining", NULL) > 0);
	assert_true(int_at(rb, "remaining", NULL) >= share - p);
	{
		/* ... and a lower bound: the plan changes at least as many. */
		struct narf_slot *t = calloc(NARF_SLOTS, sizeof(*t));

		assert_non_null(t);
		assert_true(int_at(rb, "remaining", NULL) <= narf_plan(m, t));
		free(t);
	}
	assert_true(int_at(rb, "total", NULL) >= int_at(rb, "remaining", NULL));
	assert_true(json_is_true(json_object_get(rb, "planning")));
	assert_true(json_is_false(json_object_get(rb, "balanced")));
	assert_int_equal(int_at(rb, "waiting_nodes", NULL), 0);
	json_decref(st);

	/* Once planned for this map, remaining is the plan's count. */
	l->plan_remaining = l->plan_total = 700;
	l->plan_epoch = m->epoch;
	st = status_of(c, &rb);
	assert_int_equal(int_at(rb, "remaining", NULL), 700);
	assert_true(json_is_false(json_object_get(rb, "planning")));
	assert_true(json_is_false(json_object_get(rb, "balanced")));
	json_decref(st);

	/* A joining node waits; the map reaching the target is balanced
	 * even before the leader's next round. */
	assert_int_not_equal(
	        fixture_node(c, "127.0.0.1:7301", "j", NARF_NODE_JOINING), 0);
	apply_target(c, NULL);
	st = status_of(c, &rb);
	/* New copies syncing: not balanced yet. */
	assert_true(int_at(st, "slots", "syncing") > 0);
	assert_true(json_is_false(json_object_get(rb, "balanced")));
	json_decref(st);
	sync_all(c);
	st = status_of(c, &rb);
	assert_int_equal(int_at(rb, "waiting_nodes", NULL), 1);
	assert_int_equal(int_at(rb, "remaining", NULL), 0);
	assert_true(json_is_true(json_object_get(rb, "balanced")));
	narf_map_node_counts(m, fresh, &p, &r);
	assert_int_equal(p, share);
	json_decref(st);
	free(take);
}

/* --- map deltas ---------------------------------------------------------- */

/* Apply an entry given as compact text (a settings change, say) as the FSM
 * would once committed; it must move the epoch. */
static void apply_text(struct narf_coord *c, const char *text)
{
	struct narf_map_result res;
	json_t *cmd = parse(text);

	assert_int_equal(fixture_apply(c, cmd, &res), 0);
	assert_true(res.changed);
	json_decref(cmd);
}

/* A settings entry that moves the epoch, as compact text. */
static const char *moves_entry(unsigned moves)
{
	static char text[64];

	snprintf(text, sizeof(text),
	         "{\"v\":1,\"type\":\"settings\",\"moves\":%u}", moves);
	return text;
}

/* Is the map from json (a decoded map) the coordinator's, byte for
 * byte in its JSON form? */
static void assert_same_map(const struct narf_map *a, const struct narf_map *b)
{
	json_t *ja = narf_map_to_json(a), *jb = narf_map_to_json(b);
	char *ta = json_dumps(ja, JSON_COMPACT),
	     *tb = json_dumps(jb, JSON_COMPACT);

	assert_string_equal(ta, tb);
	free(ta);
	free(tb);
	json_decref(ja);
	json_decref(jb);
}

/* The map's digest as heartbeat replies carry it. */
static const char *digest_of(const struct narf_coord *c)
{
	static char hex[17];

	snprintf(hex, sizeof(hex), "%016llx",
	         (unsigned long long)narf_map_digest(c->rn.map));
	return hex;
}

/* A heartbeat with "deltas":1 from a node two epochs behind gets exactly
 * the documented line: the fixed fields and the map's digest, then from =
 * its epoch + 1 and the two entries verbatim, which applied to its map land on
 * ours. A current node gets no deltas; a beat without "deltas":1 gets today's
 * reply whatever its epoch; a node with no map gets "full". */
static void test_heartbeat_deltas(void **state)
{
	struct narf_coord *c = &((struct api_test *)*state)->c;
	const enum narf_auth_role node = NARF_AUTH_NODE;
	struct narf_map *old = malloc(sizeof(*old));
	enum narf_api_pending kind;
	char e1[64], e2[64], text[256], want[512];
	json_t *cmd = NULL, *reply, *deltas, *d;
	struct narf_map_result res;
	uint64_t e0, e;
	size_t i;
	char *line;

	assert_non_null(old);
	assert_int_equal(fixture_node(c, "127.0.0.1:7201", "a1", NARF_NODE_UP),
	                 1);
	e0 = c->rn.map->epoch;
	narf_map_init(old, NULL);
	assert_int_equal(narf_map_copy(old, c->rn.map), 0);
	snprintf(e1, sizeof(e1), "%s", moves_entry(101));
	snprintf(e2, sizeof(e2), "%s", moves_entry(102));
	apply_text(c, e1);
	apply_text(c, e2);
	e = c->rn.map->epoch;
	assert_int_equal(e, e0 + 2);

	snprintf(text, sizeof(text),
	         "{\"op\":\"heartbeat\",\"node\":1,\"boot_id\":\"a1\","
	         "\"epoch\":%llu,\"deltas\":1}",
	         (unsigned long long)e0);
	line = request_line(c, node, text, &cmd, &kind);
	snprintf(want, sizeof(want),
	         "{\"ok\":true,\"epoch\":%llu,\"term\":1,\"state\":\"up\","
	         "\"digest\":\"%s\",\"from\":%llu,\"deltas\":[%s,%s]}\n",
	         (unsigned long long)e, digest_of(c),
	         (unsigned long long)e0 + 1, e1, e2);
	assert_string_equal(line, want);
	reply = parse(line);
	free(line);
	deltas = json_object_get(reply, "deltas");
	json_array_foreach(deltas, i, d)
	{
		assert_int_equal(narf_map_apply(old, d, &res), 0);
		assert_true(res.changed);
	}
	json_decref(reply);
	assert_same_map(old, c->rn.map);
	assert_true(c->map_delta_bytes >= strlen(e1) + strlen(e2));

	snprintf(text, sizeof(text),
	         "{\"op\":\"heartbeat\",\"node\":1,\"boot_id\":\"a1\","
	         "\"epoch\":%llu,\"deltas\":1}",
	         (unsigned long long)e);
	line = request_line(c, node, text, &cmd, &kind);
	snprintf(want, sizeof(want),
	         "{\"ok\":true,\"epoch\":%llu,\"term\":1,\"state\":\"up\","
	         "\"digest\":\"%s\"}\n",
	         (unsigned long long)e, digest_of(c));
	assert_string_equal(line, want);
	free(line);
	snprintf(want, sizeof(want),
	         "{\"ok\":true,\"epoch\":%llu,\"term\":1,\"state\":\"up\"}\n",
	         (unsigned long long)e);
	/* an older node: today's reply, behind or not */
	snprintf(text, sizeof(text),
	         "{\"op\":\"heartbeat\",\"node\":1,\"boot_id\":\"a1\","
	         "\"epoch\":%llu}",
	         (unsigned long long)e0);
	line = request_line(c, node, text, &cmd, &kind);
	assert_string_equal(line, want);
	free(line);
	/* a node with no map yet */
	line = request_line(c, node,
	                    "{\"op\":\"heartbeat\",\"node\":1,\"boot_id\":"
	                    "\"a1\",\"deltas\":1}",
	                    &cmd, &kind);
	snprintf(want, sizeof(want),
	         "{\"ok\":true,\"epoch\":%llu,\"term\":1,\"state\":\"up\","
	         "\"digest\":\"%s\",\"full\":true}\n",
	         (unsigned long long)e, digest_of(c));
	assert_string_equal(line, want);
	free(line);
	narf_map_close(old);
	free(old);
}

/* The heartbeat reply's "full" for a node at epoch have, or its number
 * of deltas. */
static int beat_deltas(struct narf_coord *c, uint64_t have)
{
	enum narf_api_pending kind;
	json_t *cmd = NULL, *reply;
	char text[256];
	int n;

	snprintf(text, sizeof(text),
	         "{\"op\":\"heartbeat\",\"node\":1,\"boot_id\":\"a1\","
	         "\"epoch\":%llu,\"deltas\":1}",
	         (unsigned long long)have);
	reply = request(c, NARF_AUTH_NODE, text, &cmd, &kind);
	if (json_is_true(json_object_get(reply, "full"))) {
		assert_null(json_object_get(reply, "deltas"));
		assert_null(json_object_get(reply, "from"));
		n = -1;
	} else {
		n = (int)json_array_size(json_object_get(reply, "deltas"));
		if (n > 0)
			assert_int_equal(json_integer_value(json_object_get(
			                         reply, "from")),
			                 (json_int_t)have + 1);
	}
	json_decref(reply);
	return n;
}

/* "full" instead of deltas when the ring no longer holds the node's
 * epoch + 1 (FIXTURE_RING_ENTRIES back), and when the deltas would
 * exceed half the full map; just under that bound they are sent. */
static void test_heartbeat_full(void **state)
{
	struct narf_coord *c = &((struct api_test *)*state)->c;
	enum narf_api_pending kind;
	json_t *cmd = NULL, *reply;
	size_t entry = strlen(moves_entry(200)), limit;
	uint64_t e;
	unsigned k;

	assert_int_equal(fixture_node(c, "127.0.0.1:7201", "a1", NARF_NODE_UP),
	                 1);
	for (unsigned i = 0; i < FIXTURE_RING_ENTRIES + 6; i++)
		apply_text(c, moves_entry(200 + i)); /* all one length */
	e = c->rn.map->epoch;
	assert_int_equal(beat_deltas(c, e - FIXTURE_RING_ENTRIES - 1), -1);
	assert_int_equal(beat_deltas(c, e - 1), 1);
	/* the full map's size is known once it was encoded */
	reply = request(c, NARF_AUTH_NODE, "{\"op\":\"map\"}", &cmd, &kind);
	json_decref(reply);
	assert_non_null(c->full);
	limit = c->full->len / 2;
	if (limit > NARF_API_DELTA_MAX)
		limit = NARF_API_DELTA_MAX;
	k = (unsigned)(limit / entry);
	assert_true(k >= 1 && k < FIXTURE_RING_ENTRIES);
	assert_int_equal(beat_deltas(c, e - k), (int)k);
	assert_int_equal(beat_deltas(c, e - k - 1), -1);
}

/* op map: current as today; with "deltas":1 the entries since the
 * caller's epoch; without, or with "full":true, or from beyond the ring,
 * the full map as today's bytes, one encode per epoch shared by every
 * fetch (a write holding the old line keeps it intact after the epoch
 * moved). */
static void test_map_deltas(void **state)
{
	struct narf_coord *c = &((struct api_test *)*state)->c;
	const enum narf_auth_role node = NARF_AUTH_NODE;
	enum narf_api_pending kind;
	struct narf_blob *raw = NULL, *held;
	char e1[64], e2[64], text[256], want[512];
	json_t *cmd = NULL, *reply, *req, *today;
	char *line, *full_line, *old_line;
	uint64_t e0, e, encodes;
	size_t len;

	assert_int_equal(fixture_node(c, "127.0.0.1:7201", "a1", NARF_NODE_UP),
	                 1);
	e0 = c->rn.map->epoch;
	snprintf(e1, sizeof(e1), "%s", moves_entry(11));
	snprintf(e2, sizeof(e2), "%s", moves_entry(12));
	apply_text(c, e1);
	apply_text(c, e2);
	e = c->rn.map->epoch;

	snprintf(text, sizeof(text), "{\"op\":\"map\",\"epoch\":%llu}",
	         (unsigned long long)e);
	reply = request(c, node, text, &cmd, &kind);
	assert_true(json_is_true(json_object_get(reply, "current")));
	json_decref(reply);

	snprintf(text, sizeof(text),
	         "{\"op\":\"map\",\"epoch\":%llu,\"deltas\":1}",
	         (unsigned long long)e0);
	line = request_line(c, node, text, &cmd, &kind);
	snprintf(want, sizeof(want),
	         "{\"ok\":true,\"epoch\":%llu,\"from\":%llu,\"deltas\":[%s,%s]}"
	         "\n",
	         (unsigned long long)e, (unsigned long long)e0 + 1, e1, e2);
	assert_string_equal(line, want);
	free(line);

	/* the full map: today's bytes exactly */
	today = json_pack("{s:b,s:I,s:o}", "ok", 1, "epoch", (json_int_t)e,
	                  "map", narf_map_to_json(c->rn.map));
	full_line = narf_frame_encode(today, &len);
	json_decref(today);
	encodes = c->map_full_encodes;
	snprintf(text, sizeof(text), "{\"op\":\"map\",\"epoch\":%llu}",
	         (unsigned long long)e0);
	line = request_line(c, node, text, &cmd, &kind);
	assert_string_equal(line, full_line);
	free(line);
	assert_int_equal(c->map_full_encodes, encodes + 1);
	snprintf(text, sizeof(text),
	         "{\"op\":\"map\",\"epoch\":%llu,\"deltas\":1,\"full\":true}",
	         (unsigned long long)e0);
	line = request_line(c, node, text, &cmd, &kind);
	assert_string_equal(line, full_line);
	free(line);
	line = request_line(c, node, "{\"op\":\"map\",\"deltas\":1}", &cmd,
	                    &kind);
	assert_string_equal(line, full_line);
	free(line);
	/* every fetch shares the one line */
	req = parse("{\"op\":\"map\"}");
	assert_null(narf_api_request(c, node, req, &cmd, &kind, &raw));
	assert_ptr_equal(raw, c->full);
	assert_int_equal(c->map_full_encodes, encodes + 1);
	assert_true(c->map_full_bytes >= 4 * (len));
	held = raw; /* as a write in flight would */
	old_line = full_line;
	apply_text(c, moves_entry(13));
	assert_null(narf_api_request(c, node, req, &cmd, &kind, &raw));
	assert_int_equal(c->map_full_encodes, encodes + 2);
	assert_ptr_not_equal(raw, held);
	assert_memory_equal(held->data, old_line, len);
	narf_blob_unref(held);
	narf_blob_unref(raw);
	json_decref(req);
	free(old_line);
}

/* isr and handoff replies carry the deltas to a caller that sent
 * "deltas":1 and its epoch: answered at once (nothing to add), or built
 * after the entry applied by narf_api_delta_reply(), as api.c's proposal
 * callback does. */
static void test_isr_deltas(void **state)
{
	struct narf_coord *c = &((struct api_test *)*state)->c;
	const enum narf_auth_role node = NARF_AUTH_NODE;
	enum narf_api_pending kind;
	char e1[64], text[256], want[512], head[64];
	json_t *cmd = NULL, *reply;
	struct narf_blob *raw;
	uint64_t e0, e;
	char *line;
	int hn;

	assert_int_equal(fixture_node(c, "127.0.0.1:7201", "a1", NARF_NODE_UP),
	                 1);
	assert_int_equal(fixture_node(c, "127.0.0.1:7202", "b1", NARF_NODE_UP),
	                 2);
	e0 = c->rn.map->epoch;
	snprintf(e1, sizeof(e1), "%s", moves_entry(21));
	apply_text(c, e1);
	e = c->rn.map->epoch;
	snprintf(text, sizeof(text),
	         "{\"op\":\"isr\",\"node\":2,\"boot_id\":\"b1\",\"peer\":1,"
	         "\"add\":[],\"epoch\":%llu,\"deltas\":1}",
	         (unsigned long long)e0);
	line = request_line(c, node, text, &cmd, &kind);
	snprintf(want, sizeof(want),
	         "{\"ok\":true,\"epoch\":%llu,\"from\":%llu,\"deltas\":[%s]}\n",
	         (unsigned long long)e, (unsigned long long)e, e1);
	assert_string_equal(line, want);
	free(line);
	snprintf(text, sizeof(text),
	         "{\"op\":\"handoff\",\"node\":2,\"boot_id\":\"b1\","
	         "\"slots\":[],\"epoch\":%llu,\"deltas\":1}",
	         (unsigned long long)e0);
	line = request_line(c, node, text, &cmd, &kind);
	assert_string_equal(line, want);
	free(line);
	/* without "deltas":1: today's reply */
	reply = request(c, node,
	                "{\"op\":\"handoff\",\"node\":2,\"boot_id\":\"b1\","
	                "\"slots\":[]}",
	                &cmd, &kind);
	assert_int_equal(json_object_size(reply), 2);
	json_decref(reply);
	/* after a proposal applied */
	hn = snprintf(head, sizeof(head), "{\"ok\":true,\"epoch\":%llu",
	              (unsigned long long)e);
	raw = narf_api_delta_reply(c, head, (size_t)hn, e0);
	assert_non_null(raw);
	assert_int_equal(raw->len, strlen(want));
	assert_memory_equal(raw->data, want, raw->len);
	narf_blob_unref(raw);
	raw = narf_api_delta_reply(c, head, (size_t)hn, e);
	snprintf(want, sizeof(want), "%s}\n", head);
	assert_int_equal(raw->len, strlen(want));
	assert_memory_equal(raw->data, want, raw->len);
	narf_blob_unref(raw);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_exchange_proves_both_roles),
	        cmocka_unit_test(test_exchange_wrong_keys),
	        cmocka_unit_test(test_bad_hellos),
	        cmocka_unit_test(test_bad_proofs),
	        cmocka_unit_test_setup_teardown(test_node_role_limits, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_leadership_and_readiness,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_heartbeat, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_commands_apply, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_operator_ops, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_status_between_plans,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_heartbeat_deltas, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_heartbeat_full, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_map_deltas, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_isr_deltas, setup,
	                                        teardown),
	};

	narf_log_set_level(NARF_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
