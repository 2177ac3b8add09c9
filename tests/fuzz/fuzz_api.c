/*
 * libFuzzer target for the coordinator API's requests (coordinator/api.c,
 * narf_api_request(), and members.c for the coordinator ops), run against
 * a coordinator at rest (tests/unit/coord_fixture.h): a map in memory
 * with data nodes in every state and slots with replicas, ISRs and a
 * pending move, and the Raft state set by hand. No socket, no libraft
 * instance: the API hands back the command it would propose.
 *
 * Input layout: byte 0 picks the caller's proven role (bit 0: operator or
 * node), the member's Raft role (bits 1-2: ready leader, leader not ready,
 * follower, candidate), whether the leader holds a fresh proof that it
 * leads (bit 3), whether a configuration change is in flight (bit 4) and
 * whether the coordinators table has three members instead of one
 * (bit 5); byte 1 is the read size (0: everything at once). The rest is
 * what an authenticated connection sends: it goes through the frame
 * decoder (common/frame.h) as api.c feeds it, and every message is a
 * request.
 *
 * Besides memory safety (ASan, UBSan, LeakSanitizer) it checks the
 * contract of docs/protocol.md: every request gets a reply or a command,
 * not both; a reply is an object with a boolean "ok"; an error carries a
 * code that narf_err_from_code() reads back, one the op may give, and a
 * message; the checks come in their documented order (a missing op, a
 * node's credential asking for an operator's op, ping, unknown op,
 * leadership, readiness); heartbeats are renewed only with a proof of
 * leadership; a served map decodes (as a data node decodes it) to the
 * coordinator's map; a reply written as bytes is one JSON line; map
 * deltas go only to a caller that sent "deltas":1 and is behind, start
 * at its epoch + 1, and applied to the run's starting map give the
 * coordinator's. A command has the op's type and version, never comes
 * from a node's credential for settings, coordinators or another node's
 * leave, and applies as the FSM applies it, refused only where the API
 * cannot know (leave's if_room, isr's since): the API validates as the FSM
 * would, so a malformed request never costs a log entry. Applied, it
 * leaves a well-formed map (map_check.h). A framing error is one the
 * coordinator answers with a known code. Built by tests/fuzz/run.sh, not
 * by meson. FUZZ_VERBOSE=1 prints every request and its answer, to read a
 * reproducer.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/errors.h"
#include "common/frame.h"
#include "common/log.h"
#include "map_check.h"
#include "tests/unit/coord_fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One run's setting, from byte 0. */
struct setting {
	enum narf_auth_role role;
	enum fixture_role raft;
	bool leads;
};

static struct narf_coord *c;
/* The map every run starts from: one coordinator, or three. */
static struct narf_map *base1, *base3, *scratch;
/* The map this run started from (base1 or base3): deltas from its epoch
 * must bring it to the coordinator's. */
static const struct narf_map *run_base;

/* --- the coordinator at rest --------------------------------------------- */

static void apply_text(const char *text)
{
	struct narf_map_result res;
	json_error_t jerr;
	json_t *cmd = json_loads(text, 0, &jerr);

	check(cmd != NULL);
	check(fixture_apply(c, cmd, &res) == 0);
	json_decref(cmd);
}

/*
 * Nodes 1, 2 and 7 up, 3 joining, 4 down, 5 leaving, 6 removed (boot ids
 * "a1".."g1", addresses 127.0.0.1:7201..7207); slots 0-8191 led by 1 with
 * replicas 2 (in sync, a move to it pending) and 7 (syncing), 8192-12287
 * by 2 with 1 and 5 in sync, the rest by 7 alone; 7 dropped from an ISR
 * once. Then a copy with coordinators 2 and 3 in the table too.
 */
static void setup(void)
{
	static const char *const boots[] = {"a1", "b1", "c1", "d1",
	                                    "e1", "f1", "g1"};
	static const enum narf_node_state states[] = {
	        NARF_NODE_UP,   NARF_NODE_UP,      NARF_NODE_JOINING,
	        NARF_NODE_DOWN, NARF_NODE_LEAVING, NARF_NODE_REMOVED,
	        NARF_NODE_UP};
	char text[512];

	c = calloc(1, sizeof(*c));
	check(c != NULL && fixture_init(c) == 0);
	narf_log_set_level(NARF_LOG_ERROR);
	for (unsigned i = 0; i < 7; i++) {
		char addr[32];

		snprintf(addr, sizeof(addr), "127.0.0.1:%u", 7201 + i);
		check(fixture_node(c, addr, boots[i], states[i]) == i + 1);
	}
	snprintf(text, sizeof(text),
	         "{\"v\":1,\"type\":\"assign\",\"base_epoch\":%llu,\"slots\":["
	         "{\"from\":0,\"to\":8191,\"primary\":1,\"replicas\":[2,7],"
	         "\"isr\":[2],\"move\":2},"
	         "{\"from\":8192,\"to\":12287,\"primary\":2,\"replicas\":[1,5],"
	         "\"isr\":[1,5]},"
	         "{\"from\":12288,\"to\":16383,\"primary\":7,\"replicas\":[],"
	         "\"isr\":[]}]}",
	         (unsigned long long)c->rn.map->epoch);
	apply_text(text);
	apply_text(
	        "{\"v\":1,\"type\":\"isr\",\"primary\":2,\"node\":7,"
	        "\"drop\":true}");
	check_map(c->rn.map);
	base1 = new_map();
	base3 = new_map();
	scratch = new_map();
	check(narf_map_copy(base1, c->rn.map) == 0);
	apply_text(
	        "{\"v\":1,\"type\":\"coords_set\",\"coords\":["
	        "{\"id\":1,\"raft\":\"" FIXTURE_RAFT "\",\"api\":\"" FIXTURE_API
	        "\"},"
	        "{\"id\":2,\"raft\":\"127.0.0.1:7102\",\"api\":"
	        "\"127.0.0.1:7002\"},"
	        "{\"id\":3,\"raft\":\"127.0.0.1:7103\",\"api\":"
	        "\"127.0.0.1:7003\"}]}");
	check(narf_map_copy(base3, c->rn.map) == 0);
}

/* Start a run from byte 0's setting. */
static struct setting reset(uint8_t flags)
{
	static const enum fixture_role rafts[] = {
	        FIXTURE_READY, FIXTURE_NOT_READY, FIXTURE_FOLLOWER,
	        FIXTURE_CANDIDATE};
	struct setting s = {
	        .role = flags & 1 ? NARF_AUTH_NODE : NARF_AUTH_OPERATOR,
	        .raft = rafts[(flags >> 1) & 3],
	        .leads = flags & 8,
	};
	bool three = flags & 32;

	check(narf_map_copy(c->rn.map, three ? base3 : base1) == 0);
	c->rn.cmd_applied++;
	/* a new map at an epoch seen before: the shared full line and the
	 * ring's entries are another run's */
	narf_blob_unref(c->full);
	c->full = NULL;
	c->digest[0] = '\0';
	narf_ring_reset(&c->rn.ring, c->rn.map->epoch);
	run_base = three ? base3 : base1;
	narf_hbtab_clear(&c->leader.hb);
	c->members.proposing = false;
	c->members.step[0] = '\0';
	fixture_clear_members(c);
	check(fixture_add_member(c, FIXTURE_ID, FIXTURE_RAFT, true, true) == 0);
	if (three) {
		check(fixture_add_member(c, 2, "127.0.0.1:7102", true, true) ==
		      0);
		check(fixture_add_member(c, 3, "127.0.0.1:7103", true, false) ==
		      0);
	}
	fixture_set_changing(c, flags & 16);
	fixture_set_role(c, s.raft, s.leads);
	return s;
}

/* --- what the API promises ----------------------------------------------- */

static bool is(const char *a, const char *b)
{
	return a != NULL && strcmp(a, b) == 0;
}

static bool operator_only(const char *op)
{
	return is(op, "settings") || is(op, "coord_add") ||
	       is(op, "coord_remove") || is(op, "coord_replace");
}

/* The ops and the errors each may give once the leader handles it (nomem
 * aside); docs/protocol.md. */
static const struct {
	const char *op;
	const char *type; /* of its command, or NULL */
	enum narf_api_pending kind;
	const char *errors;
} ops[] = {
        {"ping", NULL, 0, ""},
        {"join", "node_join", NARF_API_PENDING_JOIN, "bad_request"},
        {"heartbeat", NULL, 0, "bad_request unknown_node no_quorum"},
        {"map", NULL, 0, "bad_request"},
        {"status", NULL, 0, ""},
        {"leave", "leave", NARF_API_PENDING_EPOCH,
         "bad_request unknown_node denied"},
        {"settings", "settings", NARF_API_PENDING_SETTINGS, "bad_request"},
        {"isr", "isr", NARF_API_PENDING_EPOCH, "bad_request unknown_node"},
        {"handoff", "handoff", NARF_API_PENDING_EPOCH,
         "bad_request unknown_node"},
        {"coords", NULL, 0, ""},
        {"coord_add", "coords_set", NARF_API_PENDING_COORDS,
         "bad_request exists change_in_flight"},
        {"coord_remove", "coords_set", NARF_API_PENDING_COORDS,
         "bad_request unknown_node change_in_flight"},
        {"coord_replace", "coords_set", NARF_API_PENDING_COORDS,
         "bad_request unknown_node exists change_in_flight"},
};

static int op_index(const char *op)
{
	for (int i = 0; op != NULL && i < (int)(sizeof(ops) / sizeof(ops[0]));
	     i++)
		if (strcmp(op, ops[i].op) == 0)
			return i;
	return -1;
}

/* Is code one of the space-separated words of list? */
static bool listed(const char *list, const char *code)
{
	size_t n = strlen(code);

	for (const char *p = list; (p = strstr(p, code)) != NULL; p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0))
			return true;
	return false;
}

/* The error code of reply (checked to be one), or NULL when ok. */
static const char *error_code(const json_t *reply)
{
	json_t *ok = json_object_get(reply, "ok");
	const char *code, *msg;

	check(json_is_object(reply) && json_is_boolean(ok));
	if (json_is_true(ok)) {
		check(json_object_get(reply, "error") == NULL);
		return NULL;
	}
	code = json_string_value(json_object_get(reply, "error"));
	msg = json_string_value(json_object_get(reply, "message"));
	check(code != NULL && msg != NULL && msg[0] != '\0');
	check(is(narf_errcode(narf_err_from_code(code)), code));
	return code;
}

/* The caller's epoch as the API reads it ("epoch", else 0). */
static uint64_t req_epoch(const json_t *req)
{
	json_t *v = json_object_get(req, "epoch");

	return json_is_integer(v) && json_integer_value(v) > 0
	               ? (uint64_t)json_integer_value(v)
	               : 0;
}

static bool req_deltas(const json_t *req)
{
	json_t *v = json_object_get(req, "deltas");

	return json_is_true(v) ||
	       (json_is_integer(v) && json_integer_value(v) >= 1);
}

/*
 * The map deltas of an ok reply (docs/protocol.md, "Map deltas"): only to
 * a caller that sent "deltas":1; "full" and "deltas" never together;
 * none to a current caller; "from" is its epoch + 1, and there are as
 * many entries as epochs to the reply's; from the run's start they bring
 * that map to the coordinator's.
 */
static void check_deltas(const json_t *req, const json_t *reply)
{
	json_t *deltas = json_object_get(reply, "deltas");
	json_t *from = json_object_get(reply, "from");
	json_t *full = json_object_get(reply, "full");
	uint64_t have = req_epoch(req), epoch = c->rn.map->epoch;
	struct narf_map_result res;
	size_t i;
	json_t *d;

	check((deltas == NULL) == (from == NULL));
	if (!req_deltas(req) || have == epoch) {
		check(deltas == NULL && full == NULL);
		return;
	}
	if (full != NULL) {
		check(json_is_true(full) && deltas == NULL);
		return;
	}
	if (deltas == NULL) { /* op map sent the whole map instead */
		check(json_object_get(reply, "map") != NULL ||
		      (!is(json_string_value(json_object_get(req, "op")),
		           "heartbeat") &&
		       !is(json_string_value(json_object_get(req, "op")),
		           "isr") &&
		       !is(json_string_value(json_object_get(req, "op")),
		           "handoff")));
		return;
	}
	check(json_is_array(deltas) && json_is_integer(from) &&
	      (uint64_t)json_integer_value(from) == have + 1 &&
	      json_array_size(deltas) == epoch - have);
	check(json_integer_value(json_object_get(reply, "epoch")) ==
	      (json_int_t)epoch);
	if (have != run_base->epoch)
		return;
	check(narf_map_copy(scratch, run_base) == 0);
	json_array_foreach(deltas, i, d)
	{
		check(narf_map_apply(scratch, d, &res) == 0 && res.changed);
	}
	check(maps_equal(scratch, c->rn.map));
}

/* A served map decodes to the coordinator's map. */
static void check_served_map(const json_t *reply)
{
	json_t *map = json_object_get(reply, "map");
	json_t *epoch = json_object_get(reply, "epoch");
	char errmsg[NARF_ERRMSG_SIZE];

	check(json_is_integer(epoch) &&
	      (uint64_t)json_integer_value(epoch) == c->rn.map->epoch);
	if (json_object_get(reply, "deltas") != NULL)
		return; /* check_deltas() */
	if (map == NULL) {
		check(json_is_true(json_object_get(reply, "current")));
		return;
	}
	check(narf_map_from_json(scratch, map, errmsg) == 0);
	check(maps_equal(scratch, c->rn.map));
}

static void check_reply(const struct setting *s,
                        const json_t *req,
                        const json_t *reply)
{
	const char *op = json_string_value(json_object_get(req, "op"));
	const char *code = error_code(reply);
	int i = op_index(op);

	if (op == NULL) {
		check(is(code, "bad_request"));
	} else if (s->role == NARF_AUTH_NODE && operator_only(op)) {
		check(is(code, "denied"));
	} else if (is(op, "ping")) {
		check(code == NULL);
	} else if (i < 0) {
		check(is(code, "unknown_op"));
	} else if (s->raft == FIXTURE_FOLLOWER ||
	           s->raft == FIXTURE_CANDIDATE) {
		const char *leader =
		        json_string_value(json_object_get(reply, "leader"));

		check(is(code, "not_leader"));
		check(s->raft == FIXTURE_FOLLOWER ? is(leader, "127.0.0.1:7002")
		                                  : leader == NULL);
	} else if (s->raft == FIXTURE_NOT_READY) {
		check(is(code, "not_ready"));
	} else if (code != NULL) {
		check(listed(ops[i].errors, code) || is(code, "nomem"));
		if (is(code, "no_quorum"))
			check(!s->leads);
	} else {
		if (is(op, "heartbeat"))
			check(s->leads);
		if (is(op, "heartbeat") && !req_deltas(req))
			check(json_object_size(reply) == 4); /* as ever */
		if (is(op, "heartbeat") && req_deltas(req)) {
			char hex[17];

			snprintf(
			        hex, sizeof(hex), "%016llx",
			        (unsigned long long)narf_map_digest(c->rn.map));
			check(is(json_string_value(
			                 json_object_get(reply, "digest")),
			         hex));
		}
		if (is(op, "map"))
			check_served_map(reply);
		check_deltas(req, reply);
	}
}

/* What the FSM may refuse of a command the API built: only what the API
 * cannot check without the entry's turn in the log. */
static bool fsm_may_refuse(const char *type, int err)
{
	return (is(type, "leave") && err == NARF_ENOROOM) ||
	       (is(type, "isr") && err == NARF_ESTALE);
}

static void check_command(const struct setting *s,
                          const json_t *req,
                          json_t *cmd,
                          enum narf_api_pending kind)
{
	const char *op = json_string_value(json_object_get(req, "op"));
	const char *type = json_string_value(json_object_get(cmd, "type"));
	int i = op_index(op);
	struct narf_map_result res;
	int rv;

	check(i >= 0 && ops[i].type != NULL && is(type, ops[i].type) &&
	      kind == ops[i].kind);
	check(json_integer_value(json_object_get(cmd, "v")) ==
	      NARF_MAP_VERSION);
	check(s->raft == FIXTURE_READY);
	check(s->role == NARF_AUTH_OPERATOR || !operator_only(op));
	if (s->role == NARF_AUTH_NODE && is(op, "leave")) {
		const struct narf_map_node *n = narf_map_node_get(
		        c->rn.map, (uint32_t)json_integer_value(
		                           json_object_get(cmd, "node")));

		check(n != NULL &&
		      is(json_string_value(json_object_get(req, "boot_id")),
		         n->boot_id));
	}
	rv = fixture_apply(c, cmd, &res);
	if (rv != 0 && !fsm_may_refuse(type, rv)) {
		char *text = json_dumps(req, JSON_COMPACT);

		fprintf(stderr, "the FSM refused %s (%s: %s) from %.1000s\n",
		        type, narf_errcode(rv), res.errmsg, text ? text : "?");
		free(text);
		check(!"the API validates as the FSM would");
	}
	check_map(c->rn.map);
	if (kind == NARF_API_PENDING_COORDS) {
		check(c->members.proposing);
		narf_members_proposed(c); /* as its proposal's callback */
	}
}

/* With FUZZ_VERBOSE set, print each request and what it got: to read a
 * reproducer. */
static void show(const json_t *req, const json_t *reply, const json_t *cmd)
{
	static int verbose = -1;
	char *a, *b;

	if (verbose < 0)
		verbose = getenv("FUZZ_VERBOSE") != NULL;
	if (!verbose)
		return;
	a = json_dumps(req, JSON_COMPACT);
	b = json_dumps(reply ? reply : cmd, JSON_COMPACT);
	fprintf(stderr, "-> %s\n%s %s\n", a ? a : "?", reply ? "<-" : "=>",
	        b ? b : "?");
	free(a);
	free(b);
}

static void handle(const struct setting *s, const json_t *req)
{
	enum narf_api_pending kind = (enum narf_api_pending) - 1;
	struct narf_blob *raw = (struct narf_blob *)1;
	json_t *cmd = (json_t *)1;
	json_t *reply = narf_api_request(c, s->role, req, &cmd, &kind, &raw);

	check((reply != NULL) + (cmd != NULL) + (raw != NULL) == 1);
	if (raw != NULL) {
		/* a line in bytes: one newline, at its end, and JSON */
		check(raw->len >= 2 && raw->data[raw->len - 1] == '\n' &&
		      memchr(raw->data, '\n', raw->len - 1) == NULL);
		reply = json_loadb(raw->data, raw->len - 1, 0, NULL);
		check(reply != NULL);
		narf_blob_unref(raw);
	}
	show(req, reply, cmd);
	if (reply != NULL) {
		check_reply(s, req, reply);
		json_decref(reply);
		return;
	}
	check_command(s, req, cmd, kind);
	json_decref(cmd);
}

/* Handle every whole message; returns the decoder's error, or 0. */
static int drain(const struct setting *s, struct narf_frame_decoder *d)
{
	char errmsg[NARF_ERRMSG_SIZE];

	for (;;) {
		json_t *req = NULL;
		int rv = narf_frame_next(d, &req, errmsg);

		if (rv != 0)
			return rv;
		if (req == NULL)
			return 0;
		handle(s, req);
		json_decref(req);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct narf_frame_decoder d;
	struct setting s;
	size_t step, off = 2;
	int rv = 0;

	if (size < 2)
		return 0;
	if (c == NULL)
		setup();
	s = reset(data[0]);
	step = data[1] == 0 ? size : data[1];
	narf_frame_decoder_init(&d, NARF_FRAME_MAX_REQUEST);
	while (rv == 0 && off < size) {
		size_t n = size - off < step ? size - off : step;

		rv = narf_frame_feed(&d, (const char *)data + off, n);
		off += n;
		if (rv == 0)
			rv = drain(&s, &d);
	}
	/* api.c answers a framing error with its code, then closes. */
	check(rv == 0 || rv == NARF_EPROTO || rv == NARF_ETOODEEP ||
	      rv == NARF_ETOOLARGE || rv == NARF_ENOMEM);
	check(narf_err_from_code(narf_errcode(rv)) == rv);
	narf_frame_decoder_close(&d);
	return 0;
}
