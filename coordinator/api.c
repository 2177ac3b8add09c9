/*
 * The coordinator's API port: newline-delimited JSON (docs/protocol.md).
 *
 * Happy path: conn_read_cb() feeds bytes to the connection's frame decoder
 * and conn_drain() handles whole requests in order. Reads (ping, map,
 * status, heartbeat) are answered at once from the local map; writes (join,
 * leave, settings, isr, handoff) become Raft proposals, and the connection
 * stops reading until the proposal's callback has written the reply, which
 * keeps replies in request order without a queue.
 *
 * Failure modes: a framing or JSON error gets one error line, then the
 * connection is shut down (pending writes flushed) and closed; nobody else is
 * affected. A peer that vanishes while its proposal is in flight leaves the
 * connection half-closed until the callback fires, so the callback never
 * touches freed memory. An idle connection is closed after
 * NARF_COORD_IDLE_MS.
 *
 * Authentication (docs/protocol.md, "Authentication"; common/auth.h): a
 * connection's first two requests must be the `auth` exchange, on lines of
 * at most NARF_API_AUTH_LINE bytes; anything else, a failed proof or a
 * silence past NARF_API_AUTH_MS closes it. Only then does it get the full
 * line length and the other ops, as far as its role allows: the node role
 * (data nodes) may not change settings or coordinators, nor make another
 * node leave.
 *
 * TLS (--tls-cluster yes): accept_cb() hands the socket to a relay
 * (common/tls_relay.h), which runs the TLS handshake (a client
 * certificate from the CA required) within NARF_API_AUTH_MS; meanwhile
 * the connection has no handles and counts as not yet authenticated
 * (the caps below apply, and closing it cancels the relay). conn_tls_cb()
 * then opens the tunnel's plaintext end as the connection's stream and
 * everything goes on as over plain TCP, the auth exchange first. A failed
 * handshake is counted and logged at most once a second.
 *
 * What a request means is kept apart from the connection, so the unit tests
 * and tests/fuzz/ run it without sockets or Raft: narf_api_auth_step()
 * (api_auth.c) takes the exchange's lines, and narf_api_request() checks
 * and answers every other request, or hands back the map command to
 * propose; handle_request() proposes it for the connection. The map's
 * replies (the shared whole-map line, deltas, the digest) are built in
 * api_map.c and sent as bytes (conn_send_blob()), without a JSON tree.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/flags.h"
#include "common/frame.h"
#include "common/log.h"
#include "common/tls_relay.h"
#include "api_auth.h"
#include "api_map.h"
#include "coord.h"

struct narf_conn {
	uv_tcp_t tcp;    /* tcp.data == this */
	uv_timer_t idle; /* idle.data == this */
	uv_shutdown_t shutdown;
	struct narf_coord *c; /* borrowed */
	struct narf_conn *prev, *next;
	struct narf_frame_decoder dec;
	int open_handles; /* freed when it reaches 0 and !waiting */
	bool waiting;     /* a proposal for this connection is in flight */
	bool closing;
	bool reading;
	enum narf_api_pending pending; /* what the proposal in flight is for */
	/* The isr or handoff in flight came with "deltas":1 from a node at
	 * map epoch delta_have: its reply carries the deltas. */
	bool delta_reply;
	uint64_t delta_have;
	enum narf_api_auth_state auth_state;
	struct narf_auth auth;     /* the exchange, until NARF_API_AUTH_DONE */
	char peer[NARF_ADDR_SIZE]; /* the caller's address, for logs */
	/* TLS handshake in progress (no handles yet): the relay, until its
	 * callback; closing the connection cancels it */
	struct narf_tls_relay *relay;
};

struct write_req {
	uv_write_t req;
	char *line;             /* owned, or NULL */
	struct narf_blob *blob; /* one reference, or NULL */
};

static void conn_drain(struct narf_conn *conn);

#define NARF_API_WRITE_BACKLOG (1u << 20)
/* Before authentication: the longest line, and how long to prove. */
#define NARF_API_AUTH_LINE 512
#define NARF_API_AUTH_MS 2000
/* Connections at once: in all (a data node holds one, an operator's tool
 * one per call), beyond which new ones are closed at accept; and of those
 * not yet authenticated, beyond which a new one pushes out the oldest
 * (a caller that knows the secret proves it in a round trip, so a flood
 * of silent connections cannot keep it out). */
#define NARF_API_MAX_CONNS 4096
#define NARF_API_MAX_UNAUTH 128

static bool backlogged(struct narf_conn *conn)
{
	return uv_stream_get_write_queue_size((uv_stream_t *)&conn->tcp) >
	       NARF_API_WRITE_BACKLOG;
}

static void conn_free_if_done(struct narf_conn *conn)
{
	if (conn->open_handles > 0 || conn->waiting)
		return;
	narf_frame_decoder_close(&conn->dec);
	free(conn);
}

static void conn_handle_closed_cb(uv_handle_t *h)
{
	struct narf_conn *conn = h->data;

	conn->open_handles--;
	conn_free_if_done(conn);
}

static void conn_close(struct narf_conn *conn)
{
	struct narf_coord *c = conn->c;

	if (conn->closing)
		return;
	conn->closing = true;
	c->api_conns--;
	if (conn->auth_state != NARF_API_AUTH_DONE)
		c->api_unauth--;
	if (conn->prev != NULL)
		conn->prev->next = conn->next;
	else
		c->conns = conn->next;
	if (conn->next != NULL)
		conn->next->prev = conn->prev;
	if (conn->open_handles == 0) {
		/* still in its TLS handshake (or its tunnel failed to open) */
		narf_tls_relay_cancel(conn->relay);
		conn->relay = NULL;
		conn_free_if_done(conn);
		return;
	}
	uv_close((uv_handle_t *)&conn->tcp, conn_handle_closed_cb);
	uv_close((uv_handle_t *)&conn->idle, conn_handle_closed_cb);
}

static void write_cb(uv_write_t *req, int status)
{
	struct write_req *w = (struct write_req *)req;
	struct narf_conn *conn = req->handle->data;

	free(w->line);
	narf_blob_unref(w->blob);
	free(w);
	/* Replies drained below the backlog: read (and handle) again. */
	if (status == 0 && !conn->closing && !conn->reading && !conn->waiting &&
	    !conn->dec.failed && !backlogged(conn))
		conn_drain(conn);
}

/* Queue one reply line (msg is stolen). */
static void conn_send(struct narf_conn *conn, json_t *msg)
{
	struct write_req *w;
	uv_buf_t buf;
	size_t len;

	if (conn->closing || msg == NULL) {
		json_decref(msg);
		return;
	}
	w = malloc(sizeof(*w));
	if (w == NULL || (w->line = narf_frame_encode(msg, &len)) == NULL) {
		free(w);
		json_decref(msg);
		conn_close(conn);
		return;
	}
	w->blob = NULL;
	json_decref(msg);
	buf = uv_buf_init(w->line, (unsigned)len);
	if (uv_write(&w->req, (uv_stream_t *)&conn->tcp, &buf, 1, write_cb) !=
	    0) {
		free(w->line);
		free(w);
		conn_close(conn);
	}
}

/* Queue a reply line already in bytes (blob: one reference, stolen): the
 * shared full map, or a reply with deltas. The write holds the reference
 * until it completes, so the bytes outlive an epoch change. */
static void conn_send_blob(struct narf_conn *conn, struct narf_blob *blob)
{
	struct write_req *w;
	uv_buf_t buf;

	if (conn->closing || blob == NULL) {
		narf_blob_unref(blob);
		return;
	}
	w = malloc(sizeof(*w));
	if (w == NULL) {
		narf_blob_unref(blob);
		conn_close(conn);
		return;
	}
	w->line = NULL;
	w->blob = blob;
	buf = uv_buf_init(blob->data, (unsigned)blob->len);
	if (uv_write(&w->req, (uv_stream_t *)&conn->tcp, &buf, 1, write_cb) !=
	    0) {
		narf_blob_unref(blob);
		free(w);
		conn_close(conn);
	}
}

static json_t *error_reply(int err,
                           const char *message,
                           const struct narf_coord *c)
{
	json_t *r = json_pack(
	        "{s:b,s:s,s:s}", "ok", 0, "error", narf_errcode(err), "message",
	        message && message[0] ? message : narf_strerror(err));

	if (r != NULL && err == NARF_ENOTLEADER) {
		const char *api = narf_coord_leader_api(c);

		if (api != NULL)
			json_object_set_new(r, "leader", json_string(api));
	}
	return r;
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
	conn_close(req->data);
}

/* After a last reply: read and handle nothing more (failed, a sticky
 * NARF_E* code), flush what is queued, then close. */
static void conn_end(struct narf_conn *conn, int failed)
{
	if (conn->closing)
		return;
	conn->dec.failed = failed;
	if (conn->reading) {
		uv_read_stop((uv_stream_t *)&conn->tcp);
		conn->reading = false;
	}
	conn->shutdown.data = conn;
	if (uv_shutdown(&conn->shutdown, (uv_stream_t *)&conn->tcp,
	                shutdown_cb) != 0)
		conn_close(conn);
}

/* Reply with a protocol error, then flush and close: nothing more is read
 * or handled on this connection. */
static void conn_fail(struct narf_conn *conn, int err, const char *why)
{
	NARF_INFO("api: closing client after %s: %s", narf_errcode(err), why);
	conn_send(conn, error_reply(err, why, conn->c));
	conn_end(conn, NARF_EPROTO);
}

/* --- requests ----------------------------------------------------------- */

static json_t *ok_reply(void)
{
	return json_pack("{s:b}", "ok", 1);
}

/* {"ok":true,"epoch":E} for a caller that holds epoch have, as bytes
 * with its deltas (*raw; NULL returned), or NULL with *raw NULL without
 * memory. */
static json_t *epoch_deltas(struct narf_coord *c,
                            uint64_t have,
                            struct narf_blob **raw)
{
	char head[64];
	int hn = snprintf(head, sizeof(head), "{\"ok\":true,\"epoch\":%" PRIu64,
	                  c->rn.map->epoch);

	*raw = narf_api_delta_reply(c, head, (size_t)hn, have);
	return *raw != NULL ? NULL : error_reply(NARF_ENOMEM, NULL, c);
}

/* The reply of a request that changed nothing: the epoch, with deltas
 * when the caller applies them. */
static json_t *epoch_ok(struct narf_coord *c,
                        const json_t *req,
                        struct narf_blob **raw)
{
	if (narf_api_wants_deltas(req))
		return epoch_deltas(c, narf_api_have_epoch(req), raw);
	return json_pack("{s:b,s:I}", "ok", 1, "epoch",
	                 (json_int_t)c->rn.map->epoch);
}

static json_t *op_ping(struct narf_coord *c)
{
	struct narf_raftnode *rn = &c->rn;
	json_t *r = ok_reply();
	uint64_t leader = narf_raftnode_leader_id(rn);
	const char *api = narf_coord_leader_api(c);

	json_object_set_new(r, "id", json_integer((json_int_t)c->cfg.id));
	json_object_set_new(r, "role",
	                    json_string(narf_raftnode_role_name(rn)));
	json_object_set_new(r, "term",
	                    json_integer((json_int_t)narf_raftnode_term(rn)));
	if (leader != 0)
		json_object_set_new(r, "leader",
		                    json_integer((json_int_t)leader));
	if (api != NULL)
		json_object_set_new(r, "leader_api", json_string(api));
	json_object_set_new(r, "epoch",
	                    json_integer((json_int_t)rn->map->epoch));
	json_object_set_new(
	        r, "applied",
	        json_integer((json_int_t)narf_raftnode_applied(rn)));
	json_object_set_new(r, "digest", json_string(narf_api_map_digest(c)));
	/* Commands (map entries, not barriers) this process applied: a test
	 * tells from it whether a request reached the log. */
	json_object_set_new(r, "commands",
	                    json_integer((json_int_t)c->rn.cmd_count));
	/* Who this member is, and whether it is in the Raft configuration
	 * yet: cachecli reads a new member's id from here. */
	json_object_set_new(r, "raft", json_string(c->cfg.self->raft));
	json_object_set_new(r, "api", json_string(c->cfg.self->api));
	json_object_set_new(r, "member",
	                    json_string(narf_raft_role_name(
	                            narf_raftnode_role_of(rn, c->cfg.id))));
	return r;
}

/*
 * The map for a caller that holds epoch "epoch": current; with
 * "deltas":1 the entries since, when the ring has them and they are
 * worth it; else the whole map, from the line shared by every fetch of
 * this epoch. "full":true asks for the whole map whatever the ring holds
 * (a node whose map was found to differ).
 */
static json_t *op_map(struct narf_coord *c,
                      const json_t *req,
                      struct narf_blob **raw)
{
	json_t *have = json_object_get(req, "epoch");
	bool force = json_is_true(json_object_get(req, "full"));
	uint64_t epoch = c->rn.map->epoch;

	if (have != NULL && !json_is_integer(have))
		return error_reply(NARF_EINVAL, "epoch must be an integer", c);
	/* (a node whose map differs at our epoch asks with "full":true) */
	if (json_is_integer(have) && !force &&
	    (uint64_t)json_integer_value(have) == epoch)
		return json_pack("{s:b,s:b,s:I}", "ok", 1, "current", 1,
		                 "epoch", (json_int_t)epoch);
	*raw = narf_api_map_line(c, narf_api_have_epoch(req),
	                         narf_api_wants_deltas(req) && !force);
	return *raw != NULL ? NULL : error_reply(NARF_ENOMEM, NULL, c);
}

/* Log a refused renewal, one line a second at most: a cut-off leader
 * refuses every node's every beat. */
static void log_refusal(struct narf_coord *c, uint64_t age)
{
	uint64_t now = narf_clock_ms();

	if (c->lease_refusals++ != 0 && now - c->lease_refusal_logged_ms < 1000)
		return;
	c->lease_refusal_logged_ms = now;
	NARF_WARN(
	        "api: refusing lease renewals (no_quorum): the last "
	        "committed barrier of term %llu was proposed %lld ms ago "
	        "(last round trip %llu ms, worst %llu ms); %llu refused "
	        "so far",
	        (unsigned long long)narf_raftnode_term(&c->rn),
	        age == UINT64_MAX ? -1LL : (long long)age,
	        (unsigned long long)c->rn.barrier_ms,
	        (unsigned long long)c->rn.barrier_max_ms,
	        (unsigned long long)c->lease_refusals);
}

static json_t *op_heartbeat(struct narf_coord *c,
                            const json_t *req,
                            struct narf_blob **raw)
{
	json_t *id = json_object_get(req, "node");
	const char *boot = json_string_value(json_object_get(req, "boot_id"));
	json_t *keys = json_object_get(req, "keys");
	json_t *mem = json_object_get(req, "used_memory");
	const struct narf_map_node *n;
	uint64_t age;

	if (!json_is_integer(id) || boot == NULL)
		return error_reply(NARF_EINVAL,
		                   "heartbeat needs node and boot_id", c);
	n = narf_map_node_get(c->rn.map, (uint32_t)json_integer_value(id));
	if (n == NULL || json_integer_value(id) <= 0 ||
	    json_integer_value(id) > UINT32_MAX ||
	    n->state == NARF_NODE_REMOVED || strcmp(n->boot_id, boot) != 0)
		return error_reply(NARF_ENOTFOUND,
		                   "no such node incarnation: join again", c);
	/* The node is alive, whatever we may answer: never count a beat we
	 * refuse against it (it would be marked down for our slow disk). */
	if (narf_leader_seen(c, n->id, true,
	                     json_integer_value(keys) > 0
	                             ? (uint64_t)json_integer_value(keys)
	                             : 0,
	                     json_integer_value(mem) > 0
	                             ? (uint64_t)json_integer_value(mem)
	                             : 0) != 0)
		return error_reply(NARF_ENOMEM, NULL, c);
	/* The answer renews the node's lease: give it only while no other
	 * leader can exist (docs/safety.md). A leader cut off from its
	 * majority, just woken from a pause, or whose barriers are slow to
	 * commit says so, and the node asks the other coordinators too. */
	if (!narf_raftnode_leads(
	            &c->rn, narf_clock_ms(),
	            narf_reply_timeout_ms(c->rn.map->settings.node_timeout_ms),
	            &age)) {
		log_refusal(c, age);
		return error_reply(NARF_ENOQUORUM, NULL, c);
	}
	if (narf_api_wants_deltas(req)) {
		char head[160];
		int hn = snprintf(
		        head, sizeof(head),
		        "{\"ok\":true,\"epoch\":%" PRIu64 ",\"term\":%" PRIu64
		        ",\"state\":\"%s\",\"digest\":\"%s\"",
		        c->rn.map->epoch, (uint64_t)narf_raftnode_term(&c->rn),
		        narf_node_state_name(n->state), narf_api_map_digest(c));

		*raw = narf_api_delta_reply(c, head, (size_t)hn,
		                            narf_api_have_epoch(req));
		return *raw != NULL ? NULL : error_reply(NARF_ENOMEM, NULL, c);
	}
	return json_pack("{s:b,s:I,s:I,s:s}", "ok", 1, "epoch",
	                 (json_int_t)c->rn.map->epoch, "term",
	                 (json_int_t)narf_raftnode_term(&c->rn), "state",
	                 narf_node_state_name(n->state));
}

static void proposal_cb(void *data, int err, const struct narf_map_result *res)
{
	struct narf_conn *conn = data;
	struct narf_coord *c = conn->c;
	json_t *reply;

	conn->waiting = false;
	if (conn->pending == NARF_API_PENDING_COORDS)
		narf_members_proposed(c);
	if (conn->closing) {
		conn_free_if_done(conn);
		return;
	}
	if (err != 0) {
		reply = error_reply(err, NULL, c);
	} else if (res->err != 0) {
		reply = error_reply(res->err, res->errmsg, c);
	} else if (conn->delta_reply) {
		struct narf_blob *raw = NULL;

		/* an isr or handoff from a node that applies deltas: the
		 * entry it caused, and any before it, in the same reply */
		conn->delta_reply = false;
		reply = epoch_deltas(c, conn->delta_have, &raw);
		if (raw != NULL) {
			conn_send_blob(conn, raw);
			conn_drain(conn);
			return;
		}
	} else {
		reply = json_pack("{s:b,s:I}", "ok", 1, "epoch",
		                  (json_int_t)c->rn.map->epoch);
		if (conn->pending == NARF_API_PENDING_JOIN) {
			json_object_set_new(reply, "node",
			                    json_integer(res->node));
			narf_leader_seen(c, res->node, false, 0, 0);
		} else if (conn->pending == NARF_API_PENDING_SETTINGS) {
			json_object_set_new(reply, "settings",
			                    narf_map_settings_to_json(
			                            &c->rn.map->settings));
		} else if (conn->pending == NARF_API_PENDING_COORDS) {
			json_object_set_new(reply, "coordinators",
			                    narf_members_table_json(c));
		}
	}
	conn_send(conn, reply);
	conn_drain(conn);
}

/* Propose cmd (stolen) for this connection; the reply comes from
 * proposal_cb(). Returns an immediate error reply, or NULL. */
static json_t *propose(struct narf_conn *conn,
                       json_t *cmd,
                       enum narf_api_pending kind)
{
	int rv;

	if (cmd == NULL)
		return error_reply(NARF_ENOMEM, NULL, conn->c);
	rv = narf_raftnode_propose(&conn->c->rn, cmd, NARF_RAFT_CLIENT_RESERVE,
	                           proposal_cb, conn);
	json_decref(cmd);
	if (rv != 0)
		return error_reply(rv, NULL, conn->c);
	conn->waiting = true;
	conn->pending = kind;
	return NULL;
}

/* One authenticated request on its way through narf_api_request(): who
 * asks, and where a command to propose goes. */
struct call {
	struct narf_coord *c;        /* borrowed */
	enum narf_auth_role role;    /* the caller's proven role */
	json_t **cmd;                /* out: the command to propose */
	enum narf_api_pending *kind; /* out: what its reply carries */
	struct narf_blob **raw;      /* out: a reply in bytes */
};

/* Hand cmd (stolen; NULL when building it ran out of memory) to the
 * caller of narf_api_request() to propose. Returns NULL, or the error
 * reply. */
static json_t *to_propose(struct call *k,
                          json_t *cmd,
                          enum narf_api_pending kind)
{
	if (cmd == NULL)
		return error_reply(NARF_ENOMEM, NULL, k->c);
	*k->cmd = cmd;
	*k->kind = kind;
	return NULL;
}

static json_t *op_join(struct call *k, const json_t *req)
{
	const char *addr = json_string_value(json_object_get(req, "addr"));
	const char *boot = json_string_value(json_object_get(req, "boot_id"));
	const json_t *zone = json_object_get(req, "zone");

	/* Validate here as the FSM would, so a malformed join never costs a
	 * log entry on every member. */
	if (!narf_map_valid_addr(addr))
		return error_reply(NARF_EINVAL, "join needs addr \"host:port\"",
		                   k->c);
	if (boot == NULL || !narf_map_valid_boot_id(boot))
		return error_reply(NARF_EINVAL,
		                   "join needs boot_id: 1 to 64 printable "
		                   "characters",
		                   k->c);
	if (zone != NULL && (!json_is_string(zone) ||
	                     !narf_map_valid_zone(json_string_value(zone))))
		return error_reply(NARF_EINVAL,
		                   "join: zone must be 1 to 63 printable "
		                   "characters, no spaces",
		                   k->c);
	return to_propose(
	        k, narf_cmd_node_join_zone(addr, boot, json_string_value(zone)),
	        NARF_API_PENDING_JOIN);
}

static json_t *op_leave(struct call *k, const json_t *req)
{
	json_t *id = json_object_get(req, "node");
	json_t *if_room = json_object_get(req, "if_room");
	const struct narf_map_node *n;

	if (!json_is_integer(id) || json_integer_value(id) <= 0 ||
	    json_integer_value(id) > UINT32_MAX)
		return error_reply(NARF_EINVAL, "leave needs a node id", k->c);
	if (if_room != NULL && !json_is_boolean(if_room))
		return error_reply(NARF_EINVAL, "if_room must be true or false",
		                   k->c);
	n = narf_map_node_get(k->c->rn.map, (uint32_t)json_integer_value(id));
	if (n == NULL || n->state == NARF_NODE_REMOVED)
		return error_reply(NARF_ENOTFOUND, "no such node", k->c);
	if (k->role != NARF_AUTH_OPERATOR) {
		const char *boot =
		        json_string_value(json_object_get(req, "boot_id"));

		if (boot == NULL || strcmp(boot, n->boot_id) != 0)
			return error_reply(NARF_EDENIED,
			                   "a data node may only leave itself "
			                   "(node and boot_id); others need an "
			                   "operator credential",
			                   k->c);
	}
	return to_propose(k,
	                  narf_cmd_leave((uint32_t)json_integer_value(id),
	                                 json_is_true(if_room)),
	                  NARF_API_PENDING_EPOCH);
}

static json_t *op_settings(struct call *k, const json_t *req)
{
	static const char *const keys[] = {
	        "replication", "node_timeout_ms",     "ack", "moves", "min_isr",
	        "on_lost",     "removed_retention_ms"};
	struct narf_map_settings next;
	json_t *cmd = json_pack("{s:i,s:s}", "v", NARF_MAP_VERSION, "type",
	                        "settings");
	bool any = false;
	char errmsg[NARF_ERRMSG_SIZE] = "";

	if (narf_map_settings_check(&k->c->rn.map->settings, req, &next,
	                            errmsg) != 0 ||
	    narf_timing_check(next.node_timeout_ms,
	                      k->c->cfg.election_timeout_ms, errmsg) != 0) {
		json_decref(cmd);
		return error_reply(NARF_EINVAL, errmsg, k->c);
	}
	for (size_t i = 0; cmd && i < sizeof(keys) / sizeof(keys[0]); i++) {
		json_t *v = json_object_get(req, keys[i]);

		if (v != NULL) {
			json_object_set(cmd, keys[i], v);
			any = true;
		}
	}
	if (!any) {
		json_decref(cmd);
		return json_pack(
		        "{s:b,s:I,s:o}", "ok", 1, "epoch",
		        (json_int_t)k->c->rn.map->epoch, "settings",
		        narf_map_settings_to_json(&k->c->rn.map->settings));
	}
	return to_propose(k, cmd, NARF_API_PENDING_SETTINGS);
}

/* A positive node id field, or 0. */
static uint32_t node_id_field(const json_t *req, const char *key)
{
	json_t *v = json_object_get(req, key);

	if (!json_is_integer(v) || json_integer_value(v) <= 0 ||
	    json_integer_value(v) > UINT32_MAX)
		return 0;
	return (uint32_t)json_integer_value(v);
}

/* The caller of isr or handoff: node and boot_id naming an incarnation in
 * state up or leaving (only such a node leads slots). Returns an error
 * reply, or NULL with *out set. */
static json_t *check_caller(struct narf_coord *c,
                            const json_t *req,
                            const char *op,
                            const struct narf_map_node **out)
{
	const char *boot = json_string_value(json_object_get(req, "boot_id"));
	uint32_t id = node_id_field(req, "node");
	const struct narf_map_node *n;
	char msg[64];

	if (id == 0 || boot == NULL) {
		snprintf(msg, sizeof(msg), "%s needs node and boot_id", op);
		return error_reply(NARF_EINVAL, msg, c);
	}
	n = narf_map_node_get(c->rn.map, id);
	if (n == NULL || strcmp(n->boot_id, boot) != 0 ||
	    (n->state != NARF_NODE_UP && n->state != NARF_NODE_LEAVING))
		return error_reply(NARF_ENOTFOUND,
		                   "no such node incarnation up: join again",
		                   c);
	*out = n;
	return NULL;
}

/*
 * A primary reports an ISR change of its slots: `add` once a replica has
 * synced the listed slots, `drop` when it lost a replica (and holds its
 * clients' acks until the reply). Checked here as the FSM would, so a bad
 * request never costs a log entry; the reply waits for the entry to apply,
 * so a drop is in the map before the primary releases anything.
 */
static json_t *op_isr(struct call *k, const json_t *req)
{
	struct narf_coord *c = k->c;
	json_t *add = json_object_get(req, "add");
	json_t *drop = json_object_get(req, "drop");
	uint32_t peer = node_id_field(req, "peer");
	const struct narf_map_node *n;
	char errmsg[NARF_ERRMSG_SIZE] = "";
	bool *slots;
	json_t *cmd;
	uint32_t id;

	cmd = check_caller(c, req, "isr", &n);
	if (cmd != NULL)
		return cmd;
	id = n->id;
	/* Any node the map knows, whatever its state: a primary must be able
	 * to drop a replica that has just been marked down. */
	if (peer == 0 || peer == id ||
	    narf_map_node_get(c->rn.map, peer) == NULL)
		return error_reply(
		        NARF_EINVAL,
		        "isr needs peer: the id of another known node", c);
	if ((add == NULL) == (drop == NULL) ||
	    (drop != NULL && !json_is_true(drop)))
		return error_reply(NARF_EINVAL,
		                   "isr needs \"add\": [[lo,hi],...] or "
		                   "\"drop\": true",
		                   c);
	json_t *since = json_object_get(req, "since");

	if (since != NULL &&
	    (!json_is_integer(since) || json_integer_value(since) < 0))
		return error_reply(NARF_EINVAL,
		                   "isr \"since\" must be a map epoch", c);
	if (drop != NULL)
		return to_propose(k, narf_cmd_isr(id, peer, NULL, 0),
		                  NARF_API_PENDING_EPOCH);
	slots = malloc(NARF_SLOTS * sizeof(*slots));
	if (slots == NULL)
		return error_reply(NARF_ENOMEM, NULL, c);
	if (narf_map_slot_ranges(add, "add", slots, errmsg) != 0) {
		free(slots);
		return error_reply(NARF_EINVAL, errmsg, c);
	}
	/* Nothing to add: nothing to order against either. */
	if (json_array_size(add) == 0) {
		free(slots);
		return epoch_ok(c, req, k->raw);
	}
	cmd = narf_cmd_isr(id, peer, slots,
	                   since ? (uint64_t)json_integer_value(since) : 0);
	free(slots);
	return to_propose(k, cmd, NARF_API_PENDING_EPOCH);
}

/*
 * A primary hands over slots with a pending move: it has stopped taking
 * writes for them and each target has acknowledged everything it sent. The
 * reply waits for the handoff entry to apply; only then does the old
 * primary forward its waiting requests to the new one, which by then leads
 * the slot in the map.
 */
static json_t *op_handoff(struct call *k, const json_t *req)
{
	struct narf_coord *c = k->c;
	json_t *ranges = json_object_get(req, "slots");
	const struct narf_map_node *n;
	char errmsg[NARF_ERRMSG_SIZE] = "";
	json_t *reply, *cmd;
	bool *slots;

	reply = check_caller(c, req, "handoff", &n);
	if (reply != NULL)
		return reply;
	slots = malloc(NARF_SLOTS * sizeof(*slots));
	if (slots == NULL)
		return error_reply(NARF_ENOMEM, NULL, c);
	if (narf_map_slot_ranges(ranges, "slots", slots, errmsg) != 0) {
		free(slots);
		return error_reply(NARF_EINVAL, errmsg, c);
	}
	if (json_array_size(ranges) == 0) {
		free(slots);
		return epoch_ok(c, req, k->raw);
	}
	cmd = narf_cmd_handoff(n->id, slots);
	free(slots);
	return to_propose(k, cmd, NARF_API_PENDING_EPOCH);
}

/* The coordinator membership ops (members.c): answered at once, or a
 * coords_set entry to propose (handle_request() calls
 * narf_members_proposed() when it is not proposed after all). */
static json_t *coord_request(struct call *k, const char *op, const json_t *req)
{
	json_t *cmd = NULL;
	json_t *reply = narf_members_request(k->c, op, req, &cmd);

	if (cmd == NULL)
		return reply;
	return to_propose(k, cmd, NARF_API_PENDING_COORDS);
}

static bool is_coord_op(const char *op)
{
	return strcmp(op, "coords") == 0 || strcmp(op, "coord_add") == 0 ||
	       strcmp(op, "coord_remove") == 0 ||
	       strcmp(op, "coord_replace") == 0;
}

const char *const narf_api_op_names[NARF_API_OPS] = {
        "ping",      "join",         "heartbeat",     "map",     "status",
        "leave",     "settings",     "isr",           "handoff", "coords",
        "coord_add", "coord_remove", "coord_replace", "other"};

static void count_op(struct narf_coord *c, const char *op)
{
	unsigned i = 0;

	while (i + 1 < NARF_API_OPS &&
	       (op == NULL || strcmp(op, narf_api_op_names[i]) != 0))
		i++;
	c->api_requests[i]++;
}

/* A refused or failed exchange: count it, log it at most once a second
 * (with how many were not logged), and close after the error line. */
static void auth_fail(struct narf_conn *conn, const char *why)
{
	struct narf_coord *c = conn->c;
	uint64_t now = narf_clock_ms();

	c->auth_failures++;
	if (now - c->auth_fail_logged_ms >= 1000) {
		NARF_WARN("api: %s: authentication failed: %s (%" PRIu64
		          " failures not logged before this)",
		          conn->peer, why, c->auth_fail_quiet);
		c->auth_fail_logged_ms = now;
		c->auth_fail_quiet = 0;
	} else {
		c->auth_fail_quiet++;
	}
	conn_send(conn, error_reply(NARF_EAUTH, why, c));
	conn_end(conn, NARF_EAUTH);
}

/*
 * One line of the auth exchange (api_auth.h): the reply to send, or NULL
 * after auth_fail() closed the connection. Proven, the connection gets
 * the full line length and the idle timeout.
 */
static json_t *handle_auth(struct narf_conn *conn, const json_t *req)
{
	struct narf_coord *c = conn->c;
	const char *why = NULL;
	json_t *reply = NULL;

	if (narf_api_auth_step(&c->cfg.keys, &conn->auth_state, &conn->auth,
	                       req, &reply, &why) != 0) {
		auth_fail(conn, why);
		return NULL;
	}
	if (conn->auth_state == NARF_API_AUTH_DONE) {
		c->api_unauth--;
		conn->dec.max = NARF_FRAME_MAX_REQUEST;
		uv_timer_again(&conn->idle);
		NARF_DEBUG("api: %s authenticated as %s", conn->peer,
		           narf_auth_role_name(conn->auth.role));
	}
	return reply;
}

/* Ops only an operator may send: they change what the cluster is. A data
 * node may leave only itself (op_leave checks its boot id). */
static bool operator_only(const char *op)
{
	return strcmp(op, "settings") == 0 || strcmp(op, "coord_add") == 0 ||
	       strcmp(op, "coord_remove") == 0 ||
	       strcmp(op, "coord_replace") == 0;
}

json_t *narf_api_request(struct narf_coord *c,
                         enum narf_auth_role role,
                         const json_t *req,
                         json_t **cmd,
                         enum narf_api_pending *kind,
                         struct narf_blob **raw)
{
	struct call call = {
	        .c = c, .role = role, .cmd = cmd, .kind = kind, .raw = raw};
	struct call *k = &call;
	const char *op = json_string_value(json_object_get(req, "op"));

	*cmd = NULL;
	*raw = NULL;
	*kind = NARF_API_PENDING_EPOCH;
	count_op(c, op);
	if (op == NULL)
		return error_reply(NARF_EINVAL,
		                   "request needs an \"op\" string", c);
	if (role != NARF_AUTH_OPERATOR && operator_only(op))
		return error_reply(NARF_EDENIED,
		                   "needs an operator credential (the cluster "
		                   "secret), not a data node's",
		                   c);
	if (strcmp(op, "ping") == 0)
		return op_ping(c);
	if (strcmp(op, "join") != 0 && strcmp(op, "heartbeat") != 0 &&
	    strcmp(op, "map") != 0 && strcmp(op, "status") != 0 &&
	    strcmp(op, "leave") != 0 && strcmp(op, "settings") != 0 &&
	    strcmp(op, "isr") != 0 && strcmp(op, "handoff") != 0 &&
	    !is_coord_op(op))
		return error_reply(NARF_EUNKNOWNOP, op, c);
	if (!narf_raftnode_is_leader(&c->rn))
		return error_reply(NARF_ENOTLEADER, NULL, c);
	/* Ready means: this term's barrier has applied (the map is current)
	 * and, in a new cluster, the init entry too, so nobody ever sees a
	 * map without its coordinators and settings. */
	if (!narf_raftnode_is_ready(&c->rn) || c->rn.map->n_coords == 0)
		return error_reply(NARF_ENOTREADY, NULL, c);
	if (strcmp(op, "heartbeat") == 0)
		return op_heartbeat(c, req, raw);
	if (strcmp(op, "map") == 0)
		return op_map(c, req, raw);
	if (strcmp(op, "status") == 0)
		return json_pack("{s:b,s:o}", "ok", 1, "status",
		                 narf_leader_status(c));
	if (strcmp(op, "join") == 0)
		return op_join(k, req);
	if (strcmp(op, "leave") == 0)
		return op_leave(k, req);
	if (strcmp(op, "isr") == 0)
		return op_isr(k, req);
	if (strcmp(op, "handoff") == 0)
		return op_handoff(k, req);
	if (is_coord_op(op))
		return coord_request(k, op, req);
	return op_settings(k, req);
}

/* One request line: the auth exchange until it is done, then the request,
 * its command proposed for this connection. Returns the reply to send now,
 * or NULL (the proposal's callback replies, or the connection is closing).
 */
static json_t *handle_request(struct narf_conn *conn,
                              const json_t *req,
                              struct narf_blob **raw)
{
	const char *op = json_string_value(json_object_get(req, "op"));
	enum narf_api_pending kind;
	json_t *cmd = NULL, *reply;

	*raw = NULL;
	if (conn->auth_state != NARF_API_AUTH_DONE)
		return handle_auth(conn, req);
	reply = narf_api_request(conn->c, conn->auth.role, req, &cmd, &kind,
	                         raw);
	if (cmd == NULL)
		return reply;
	/* An isr or handoff reply waits for its entry: remember whether it
	 * carries deltas, and from where. */
	conn->delta_reply =
	        narf_api_wants_deltas(req) && op != NULL &&
	        (strcmp(op, "isr") == 0 || strcmp(op, "handoff") == 0);
	conn->delta_have = narf_api_have_epoch(req);
	reply = propose(conn, cmd, kind);
	if (reply != NULL)
		conn->delta_reply = false;
	if (reply != NULL && kind == NARF_API_PENDING_COORDS)
		narf_members_proposed(conn->c); /* not proposed after all */
	return reply;
}

/* --- connection plumbing ------------------------------------------------ */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char slab[65536];

	/* One loop thread, and every read is consumed before the next one,
	 * so a static slab is safe and saves an allocation per read. */
	*buf = uv_buf_init(slab, sizeof(slab));
}

static void conn_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct narf_conn *conn = s->data;
	int rv;

	if (nread < 0) {
		conn_close(conn);
		return;
	}
	if (nread == 0)
		return;
	rv = narf_frame_feed(&conn->dec, buf->base, (size_t)nread);
	if (rv != 0) {
		conn_fail(conn, rv, "request line too long");
		return;
	}
	conn_drain(conn);
}

static void conn_drain(struct narf_conn *conn)
{
	char errmsg[NARF_ERRMSG_SIZE] = "";

	while (!conn->waiting && !conn->closing && !conn->dec.failed &&
	       !backlogged(conn)) {
		struct narf_blob *raw;
		json_t *req;
		json_t *reply;
		int rv = narf_frame_next(&conn->dec, &req, errmsg);

		if (rv != 0) {
			conn_fail(conn, rv, errmsg);
			return;
		}
		if (req == NULL)
			break;
		/* A whole line re-arms the idle timer, not every byte: a
		 * caller that trickles bytes but never ends a line is idle. */
		if (conn->auth_state == NARF_API_AUTH_DONE)
			uv_timer_again(&conn->idle);
		reply = handle_request(conn, req, &raw);
		json_decref(req);
		if (reply != NULL)
			conn_send(conn, reply);
		else if (raw != NULL)
			conn_send_blob(conn, raw);
	}
	if (conn->closing || conn->dec.failed)
		return;
	/* Stop reading while a proposal is in flight (replies stay in
	 * order) or while the client leaves replies unread (a pipelined
	 * flood of `map` must not queue without bound); write_cb resumes. */
	if ((conn->waiting || backlogged(conn)) && conn->reading) {
		uv_read_stop((uv_stream_t *)&conn->tcp);
		conn->reading = false;
	} else if (!conn->waiting && !backlogged(conn) && !conn->reading) {
		if (uv_read_start((uv_stream_t *)&conn->tcp, alloc_cb,
		                  conn_read_cb) == 0)
			conn->reading = true;
	}
}

static void idle_cb(uv_timer_t *t)
{
	struct narf_conn *conn = t->data;

	if (conn->waiting)
		return; /* the reply is on its way; it re-arms nothing */
	if (conn->auth_state != NARF_API_AUTH_DONE) {
		conn->c->auth_failures++;
		NARF_DEBUG("api: %s did not authenticate within %d ms: closing",
		           conn->peer, NARF_API_AUTH_MS);
	} else {
		NARF_DEBUG("api: closing idle client");
	}
	conn_close(conn);
}

static void addr_name(struct narf_conn *conn, const struct sockaddr_storage *ss)
{
	char host[64] = "?";

	if (ss->ss_family != AF_INET && ss->ss_family != AF_INET6) {
		snprintf(conn->peer, sizeof(conn->peer), "?");
		return;
	}
	if (ss->ss_family == AF_INET6)
		uv_ip6_name((const struct sockaddr_in6 *)ss, host,
		            sizeof(host));
	else
		uv_ip4_name((const struct sockaddr_in *)ss, host, sizeof(host));
	/* (sin_port and sin6_port sit at the same offset) */
	snprintf(conn->peer, sizeof(conn->peer), "%s:%d", host,
	         ntohs(((const struct sockaddr_in *)ss)->sin_port));
}

static void peer_name(struct narf_conn *conn)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	if (uv_tcp_getpeername(&conn->tcp, (struct sockaddr *)&ss, &len) == 0)
		addr_name(conn, &ss);
	else
		snprintf(conn->peer, sizeof(conn->peer), "?");
}

/* A failed TLS handshake: count it, log it at most once a second (with
 * how many were not logged). */
static void tls_fail(struct narf_conn *conn, const char *why)
{
	struct narf_coord *c = conn->c;
	uint64_t now = narf_clock_ms();

	c->tls_failures++;
	if (now - c->tls_fail_logged_ms >= 1000) {
		NARF_WARN("api: %s: TLS handshake failed: %s (%" PRIu64
		          " failures not logged before this)",
		          conn->peer, why, c->tls_fail_quiet);
		c->tls_fail_logged_ms = now;
		c->tls_fail_quiet = 0;
	} else {
		c->tls_fail_quiet++;
	}
}

static void refused_closed_cb(uv_handle_t *h)
{
	free(h);
}

/* Over a connection cap: accept (or the backlog fills) and close at once;
 * logged at most once a second. */
static void refuse(struct narf_coord *c, uv_stream_t *server)
{
	uv_tcp_t *t = malloc(sizeof(*t));
	uint64_t now = narf_clock_ms();

	c->api_refused++;
	if (now - c->api_refused_logged_ms >= 1000) {
		NARF_WARN(
		        "api: connection limit (%u open): closing new "
		        "connections (%" PRIu64 " closed at a limit so far)",
		        c->api_conns, c->api_refused);
		c->api_refused_logged_ms = now;
	}
	if (t == NULL)
		return;
	uv_tcp_init(&c->loop, t);
	if (uv_accept(server, (uv_stream_t *)t) != 0) {
		uv_close((uv_handle_t *)t, refused_closed_cb);
		return;
	}
	uv_close((uv_handle_t *)t, refused_closed_cb);
}

static void close_oldest_unauth(struct narf_coord *c)
{
	struct narf_conn *oldest = NULL;

	for (struct narf_conn *k = c->conns; k != NULL; k = k->next)
		if (k->auth_state != NARF_API_AUTH_DONE)
			oldest = k; /* the list is newest first */
	if (oldest == NULL)
		return;
	c->auth_failures++;
	c->api_refused++;
	conn_close(oldest);
}

/* The connection's stream is set up: the auth deadline runs, and it
 * reads. */
static void conn_start(struct narf_conn *conn)
{
	/* Until it has proven itself, the idle timer is the auth deadline. */
	uv_timer_start(&conn->idle, idle_cb, NARF_API_AUTH_MS,
	               NARF_COORD_IDLE_MS);
	conn_drain(conn); /* starts reading */
}

static void conn_handles_init(struct narf_conn *conn)
{
	uv_tcp_init(&conn->c->loop, &conn->tcp);
	uv_timer_init(&conn->c->loop, &conn->idle);
	conn->tcp.data = conn;
	conn->idle.data = conn;
	conn->open_handles = 2;
}

/* The relay's TLS handshake is over: close, or open the tunnel's
 * plaintext end (an AF_UNIX socket) as the connection's stream. */
static void conn_tls_cb(void *data,
                        int fd,
                        const struct sockaddr_storage *peer,
                        int status,
                        const char *why)
{
	struct narf_conn *conn = data;

	conn->relay = NULL;
	addr_name(conn, peer);
	if (status != 0) {
		tls_fail(conn, why);
		conn_close(conn);
		return;
	}
	conn_handles_init(conn);
	if (uv_tcp_open(&conn->tcp, fd) != 0) {
		close(fd);
		conn_close(conn);
		return;
	}
	conn_start(conn);
}

static void accept_cb(uv_stream_t *server, int status)
{
	struct narf_coord *c = server->data;
	struct narf_conn *conn;

	if (status != 0 || c->closing)
		return;
	if (c->api_conns >= NARF_API_MAX_CONNS) {
		refuse(c, server);
		return;
	}
	if (c->api_unauth >= NARF_API_MAX_UNAUTH)
		close_oldest_unauth(c);
	conn = calloc(1, sizeof(*conn));
	if (conn == NULL)
		return;
	c->api_conns++;
	c->api_unauth++;
	conn->c = c;
	narf_frame_decoder_init(&conn->dec, NARF_API_AUTH_LINE);
	snprintf(conn->peer, sizeof(conn->peer), "?");
	conn->next = c->conns;
	if (c->conns != NULL)
		c->conns->prev = conn;
	c->conns = conn;
	if (c->cfg.tls) {
		/* conn_tls_cb() goes on once the tunnel is up. */
		conn->relay = narf_tls_relay_accept(server, &c->cfg.tls_server,
		                                    NARF_API_AUTH_MS,
		                                    conn_tls_cb, conn);
		if (conn->relay == NULL)
			conn_close(conn);
		return;
	}
	conn_handles_init(conn);
	if (uv_accept(server, (uv_stream_t *)&conn->tcp) != 0) {
		conn_close(conn);
		return;
	}
	uv_tcp_nodelay(&conn->tcp, 1);
	peer_name(conn);
	conn_start(conn);
}

int narf_api_listen(struct narf_coord *c, char *errmsg)
{
	struct sockaddr_in sa;
	char host[NARF_ADDR_SIZE];
	int port, rv;

	if (narf_parse_hostport(c->cfg.self->api, host, sizeof(host), &port) !=
	    0) {
		snprintf(errmsg, NARF_ERRMSG_SIZE, "bad API address %s",
		         c->cfg.self->api);
		return NARF_EINVAL;
	}
	uv_ip4_addr(strcmp(host, "localhost") == 0 ? "127.0.0.1" : host, port,
	            &sa);
	uv_tcp_init(&c->loop, &c->listener);
	c->listener.data = c;
	rv = uv_tcp_bind(&c->listener, (const struct sockaddr *)&sa, 0);
	if (rv == 0)
		rv = uv_listen((uv_stream_t *)&c->listener, 128, accept_cb);
	if (rv != 0) {
		snprintf(errmsg, NARF_ERRMSG_SIZE, "listen on %s: %s",
		         c->cfg.self->api, uv_strerror(rv));
		return narf_err_from_uv(rv);
	}
	return 0;
}

void narf_api_close(struct narf_coord *c)
{
	if (!uv_is_closing((uv_handle_t *)&c->listener))
		uv_close((uv_handle_t *)&c->listener, NULL);
	while (c->conns != NULL)
		conn_close(c->conns);
}

unsigned narf_api_connections(const struct narf_coord *c)
{
	unsigned n = 0;

	for (const struct narf_conn *k = c->conns; k != NULL; k = k->next)
		n++;
	return n;
}
