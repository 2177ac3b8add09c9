/*
 * Membership: see membership.h for the happy path and the failure modes.
 *
 * Everything happens on the loop thread: the timer drives connecting and
 * heartbeats, the read callback handles replies. A reply is matched to the
 * one request in flight (m->pending), so the protocol needs no request ids.
 */
#include "membership.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/flags.h"
#include "common/log.h"
#include "common/tls_relay.h"
#include "engine.h"

struct write_req {
	uv_write_t req;
	char *line; /* owned */
};

struct narf_isr_req {
	json_t *msg; /* owned until sent */
	uint32_t peer;
	bool drop;
	narf_member_isr_cb cb;
	void *data;
	struct narf_isr_req *next;
};

static void member_send(struct narf_member *m, json_t *msg, const char *op);
static void start_connect(struct narf_member *m);
static void send_beat_or_join(struct narf_member *m);

/* The node timeout the cluster runs with (the map's, or the default until
 * a map arrives). */
static unsigned node_timeout(const struct narf_member *m)
{
	struct narf_map_settings d;

	if (m->map != NULL)
		return m->map->settings.node_timeout_ms;
	narf_map_settings_default(&d);
	return d.node_timeout_ms;
}

static bool is_suspect(const struct narf_member *m, const char *addr)
{
	return m->suspect[0] != '\0' && strcmp(m->suspect, addr) == 0 &&
	       uv_now(m->loop) < m->suspect_until;
}

/*
 * The coordinator we talk to closed on us, or answered from an old term
 * (it is gone, or deposed): avoid it for two reply timeouts, even when a
 * follower names it as leader (they do until their own timers fire), so the
 * others get asked and a new leader is found. A coordinator that is only
 * slow to answer is not avoided (tick_cb): a leader must keep hearing from
 * us to not judge us.
 */
static void suspect_target(struct narf_member *m, const char *why)
{
	if (!is_suspect(m, m->target))
		NARF_WARN("member: coordinator %s %s: trying the others",
		          m->target, why);
	snprintf(m->suspect, sizeof(m->suspect), "%s", m->target);
	m->suspect_until = uv_now(m->loop) +
	                   2 * (uint64_t)narf_reply_timeout_ms(node_timeout(m));
}

/* How long the request in flight may take: a heartbeat or a map fetch is
 * answered at once by a live leader; join, isr, handoff and leave wait for
 * a Raft commit. */
static unsigned reply_limit(const struct narf_member *m)
{
	if (m->state == NARF_MEMBER_CONNECTING ||
	    m->state == NARF_MEMBER_AUTH ||
	    (m->pending != NULL && (strcmp(m->pending, "heartbeat") == 0 ||
	                            strcmp(m->pending, "map") == 0)))
		return narf_reply_timeout_ms(node_timeout(m));
	return NARF_MEMBER_COMMIT_TIMEOUT_MS;
}

/* The next coordinator in the list, passing over a suspect one unless it
 * is the only one. */
static void next_target(struct narf_member *m)
{
	for (unsigned i = 0; i < m->n_coords; i++) {
		const char *a = m->coords[m->next_coord++ % m->n_coords];

		snprintf(m->target, sizeof(m->target), "%s", a);
		if (!is_suspect(m, a))
			return;
	}
}

/* The isr request in flight ends (ok or not). */
static void isr_done(struct narf_member *m, bool ok, uint64_t epoch)
{
	struct narf_isr_req *q = m->isr_pending;

	if (q == NULL)
		return;
	m->isr_pending = NULL;
	q->cb(q->data, q->peer, q->drop, ok, epoch);
	json_decref(q->msg);
	free(q);
}

int narf_member_parse_coords(struct narf_member *m, const char *list)
{
	char copy[1024], *save = NULL;

	if (list == NULL || strlen(list) >= sizeof(copy))
		return NARF_EINVAL;
	snprintf(copy, sizeof(copy), "%s", list);
	m->n_coords = 0;
	for (char *t = strtok_r(copy, ",", &save); t != NULL;
	     t = strtok_r(NULL, ",", &save)) {
		if (m->n_coords == NARF_MEMBER_MAX_COORDS ||
		    !narf_map_valid_addr(t))
			return NARF_EINVAL;
		snprintf(m->coords[m->n_coords++], NARF_ADDR_SIZE, "%s", t);
	}
	return m->n_coords > 0 ? 0 : NARF_EINVAL;
}

static void tcp_closed_cb(uv_handle_t *h)
{
	free(h);
}

/* Drop the connection; the next tick connects again (to `target` when a
 * redirect set it, else to the next coordinator in the list). */
static void disconnect(struct narf_member *m, bool next_coord)
{
	narf_tls_relay_cancel(m->relay); /* (its callback never runs) */
	m->relay = NULL;
	if (m->tcp != NULL) {
		m->tcp->data = NULL;
		uv_close((uv_handle_t *)m->tcp, tcp_closed_cb);
		m->tcp = NULL;
	}
	narf_frame_decoder_close(&m->dec);
	narf_frame_decoder_init(&m->dec, NARF_FRAME_MAX_REPLY);
	m->pending = NULL;
	isr_done(m, false, 0);
	if (next_coord)
		next_target(m);
	if (m->state != NARF_MEMBER_CLOSING)
		m->state = NARF_MEMBER_IDLE;
}

/* Leave the coordinator we talk to for the next one (or for `target`, set
 * by a redirect) and connect at once: a hop costs a round trip, not a
 * tick. Bounded: after two rounds of the list without an answer, the
 * timer paces the attempts. */
static void hop(struct narf_member *m, bool next_coord)
{
	disconnect(m, next_coord);
	if (m->state != NARF_MEMBER_IDLE || m->removed ||
	    m->fast_hops >= 2 * m->n_coords)
		return;
	m->fast_hops++;
	start_connect(m);
}

static json_t *join_msg(const struct narf_member *m)
{
	json_t *msg = json_pack("{s:s,s:s,s:s}", "op", "join", "addr",
	                        m->self_addr, "boot_id", m->boot_id);

	if (msg != NULL && m->zone[0] != '\0')
		json_object_set_new(msg, "zone", json_string(m->zone));
	return msg;
}

static json_t *heartbeat_msg(const struct narf_member *m)
{
	struct narf_store_stats st;

	narf_store_stats(m->engine->store, &st);
	return json_pack("{s:s,s:I,s:s,s:I,s:I,s:I,s:i}", "op", "heartbeat",
	                 "node", (json_int_t)m->node_id, "boot_id", m->boot_id,
	                 "epoch", (json_int_t)(m->map ? m->map->epoch : 0),
	                 "keys", (json_int_t)st.keys, "used_memory",
	                 (json_int_t)st.used_memory, "deltas", 1);
}

/*
 * Coordinators come and go (a dead one is replaced by a new member at
 * another address), so the --join list can go stale: once a map arrives,
 * its coordinators table is the list we rotate through when the current
 * coordinator fails. The map comes from a leader, so it is the current
 * membership.
 */
_Static_assert(NARF_MEMBER_MAX_COORDS >= NARF_MAX_COORDS,
               "room for every coordinator of a map");

static void learn_coords(struct narf_member *m, const struct narf_map *map)
{
	bool same = map->n_coords == m->n_coords;
	char list[NARF_MAX_COORDS * NARF_ADDR_SIZE] = "";

	if (map->n_coords == 0)
		return;
	for (unsigned i = 0; same && i < map->n_coords; i++)
		same = strcmp(m->coords[i], map->coords[i].api) == 0;
	if (same)
		return;
	for (unsigned i = 0; i < map->n_coords; i++) {
		snprintf(m->coords[i], NARF_ADDR_SIZE, "%s",
		         map->coords[i].api);
		snprintf(list + strlen(list), sizeof(list) - strlen(list),
		         "%s%s", i ? "," : "", map->coords[i].api);
	}
	m->n_coords = map->n_coords;
	NARF_INFO("member: coordinators from the map: %s", list);
}

/* The map moved to sync.cur (how: "deltas" or "full map"; t0: when the
 * work began, uv_hrtime). */
static void map_moved(struct narf_member *m, const char *how, uint64_t t0)
{
	unsigned primaries = 0, replicas = 0;

	m->map = m->sync.cur;
	m->maps_installed++;
	learn_coords(m, m->map);
	narf_map_node_counts(m->map, m->node_id, &primaries, &replicas);
	NARF_INFO(
	        "member: map epoch %llu: %u primaries, %u replicas here "
	        "(%s applied in %llu us)",
	        (unsigned long long)m->map->epoch, primaries, replicas, how,
	        (unsigned long long)((uv_hrtime() - t0) / 1000));
}

static void install_map(struct narf_member *m, const json_t *obj)
{
	char errmsg[NARF_ERRMSG_SIZE] = "";
	uint64_t t0 = uv_hrtime();
	int rv = narf_mapsync_install(&m->sync, obj, errmsg);

	if (rv == NARF_ESTALE) {
		/* Maps only move forward: an older one comes from a deposed
		 * leader and would undo promotions we already act on. */
		if (json_integer_value(json_object_get(obj, "epoch")) <
		    (json_int_t)m->map->epoch)
			NARF_WARN(
			        "member: ignoring map epoch %lld from %s: ours "
			        "is %llu",
			        (long long)json_integer_value(
			                json_object_get(obj, "epoch")),
			        m->target, (unsigned long long)m->map->epoch);
		return;
	}
	if (rv != 0) {
		NARF_WARN("member: refusing a bad map from %s: %s", m->target,
		          errmsg);
		return;
	}
	m->want_full = false;
	map_moved(m, "full map", t0);
}

/* What a reply (heartbeat, map, isr, handoff) carries for the map: apply
 * its deltas, or note the fetch it calls for. */
static void sync_reply(struct narf_member *m, const json_t *reply)
{
	uint64_t t0 = uv_hrtime(), before = narf_mapsync_epoch(&m->sync);
	enum narf_mapsync_step step = narf_mapsync_reply(&m->sync, reply);

	/* (also when a digest check then asks for the whole map: the
	 * twins were swapped, and m->map must be the current one) */
	if (narf_mapsync_epoch(&m->sync) != before)
		map_moved(m, "deltas", t0);
	m->map = m->sync.cur;
	switch (step) {
	case NARF_MAPSYNC_SAME:
	case NARF_MAPSYNC_APPLIED:
		break;
	case NARF_MAPSYNC_FETCH:
		m->want_map = true;
		break;
	case NARF_MAPSYNC_FETCH_FULL:
		NARF_WARN("member: %s (from %s): fetching the whole map",
		          m->sync.errmsg, m->target);
		m->want_map = true;
		m->want_full = true;
		break;
	}
}

/* The twins' callback, handed on to the node's. */
static void sync_map_cb(void *data,
                        const struct narf_map *old,
                        const struct narf_map *map,
                        const struct narf_map_dirty *dirty)
{
	struct narf_member *m = data;

	if (m->on_map != NULL)
		m->on_map(m->cb_data, old, map, dirty);
}

/* An error reply: follow redirects, re-join when forgotten, else retry. */
static void handle_error(struct narf_member *m, const json_t *reply)
{
	const char *err = json_string_value(json_object_get(reply, "error"));
	const char *leader =
	        json_string_value(json_object_get(reply, "leader"));

	if (err != NULL && strcmp(err, "not_leader") == 0) {
		/* A follower may still name a leader that failed us: it has
		 * not noticed yet. Try the others meanwhile. */
		if (leader != NULL && narf_map_valid_addr(leader) &&
		    !is_suspect(m, leader)) {
			snprintf(m->target, sizeof(m->target), "%s", leader);
			hop(m, false);
		} else {
			hop(m, true);
		}
		return;
	}
	if (err != NULL && strcmp(err, "no_quorum") == 0) {
		/* A leader cut off from its majority, just woken from a
		 * pause, or only slow to commit its proof. Ask the others
		 * (a new leader answers; followers may send us back here,
		 * which counts as a beat seen, so a merely slow leader does
		 * not mark us down), without avoiding this one. */
		NARF_DEBUG(
		        "member: %s cannot prove it leads: trying the "
		        "others",
		        m->target);
		hop(m, true);
		return;
	}
	if (err != NULL && strcmp(err, "unknown_node") == 0 &&
	    m->node_id != 0 && m->map != NULL) {
		const struct narf_map_node *n =
		        narf_map_node_get(m->map, m->node_id);

		/* Drained by a leave: stay out rather than join again and
		 * take slots back. */
		if (n != NULL && (n->state == NARF_NODE_LEAVING ||
		                  n->state == NARF_NODE_REMOVED)) {
			NARF_INFO(
			        "member: node %u left the cluster (removed); "
			        "not joining again: restart the process to "
			        "join as a new node",
			        m->node_id);
			m->removed = true;
			return;
		}
	}
	if (err != NULL && strcmp(err, "unknown_node") == 0 &&
	    m->node_id != 0) {
		NARF_WARN("member: coordinator forgot node %u: joining again",
		          m->node_id);
		m->node_id = 0;
		return;
	}
	/* not_ready, busy and the like: the next tick tries again. */
	NARF_DEBUG("member: %s from %s", err ? err : "error", m->target);
}

/* Our map now reflects every heartbeat answered so far: renew. */
static void renew_lease(struct narf_member *m)
{
	if (m->beat_sent_ms <= m->lease_ms)
		return;
	m->lease_ms = m->beat_sent_ms;
	if (m->on_lease != NULL)
		m->on_lease(m->cb_data);
}

static uint64_t reply_u64(const json_t *reply, const char *key)
{
	json_t *v = json_object_get(reply, key);

	return json_is_integer(v) && json_integer_value(v) > 0
	               ? (uint64_t)json_integer_value(v)
	               : 0;
}

static uint64_t reply_epoch(const json_t *reply)
{
	return reply_u64(reply, "epoch");
}

static void send_map_request(struct narf_member *m)
{
	json_t *msg = json_pack("{s:s,s:I,s:i}", "op", "map", "epoch",
	                        (json_int_t)(m->map ? m->map->epoch : 0),
	                        "deltas", 1);

	/* after a discarded batch: the whole map, never deltas */
	if (m->want_full)
		json_object_set_new(msg, "full", json_true());
	m->want_map = false;
	m->want_full = false;
	member_send(m, msg, "map");
}

/* With the connection free, send what is waiting: a map fetch first, then
 * queued isr requests. Heartbeats go from the tick. */
static void send_next(struct narf_member *m)
{
	struct narf_isr_req *q = m->isr_head;

	if (m->pending != NULL || m->tcp == NULL || m->node_id == 0 ||
	    m->state != NARF_MEMBER_MEMBER || m->removed)
		return;
	if (m->want_map) {
		send_map_request(m);
		return;
	}
	/* Requests must not starve the heartbeats that keep us up. */
	if (uv_now(m->loop) - m->beat_at >= NARF_HEARTBEAT_MS) {
		m->beat_at = uv_now(m->loop);
		member_send(m, heartbeat_msg(m), "heartbeat");
		return;
	}
	if (q == NULL)
		return;
	m->isr_head = q->next;
	if (m->isr_head == NULL)
		m->isr_tail = NULL;
	m->isr_pending = q;
	/* the reply brings the map up to the entry this causes (and any
	 * before it): as of now */
	json_object_set_new(q->msg, "deltas", json_integer(1));
	json_object_set_new(
	        q->msg, "epoch",
	        json_integer((json_int_t)(m->map ? m->map->epoch : 0)));
	member_send(m, json_incref(q->msg), "isr");
	if (m->pending == NULL) /* not sent: the connection failed */
		isr_done(m, false, 0);
}

/* Why the exchange with m->target failed, at most once a second: a wrong
 * --cluster-secret-file refuses every attempt, every tick. */
static void auth_failed(struct narf_member *m, const char *why)
{
	uint64_t now = uv_now(m->loop);

	if (m->auth_logged_ms == 0 || now - m->auth_logged_ms >= 1000) {
		NARF_WARN("member: coordinator %s: %s", m->target, why);
		m->auth_logged_ms = now;
	}
	suspect_target(m, "failed authentication");
	hop(m, true);
}

static void send_auth_hello(struct narf_member *m)
{
	char hex[NARF_AUTH_NONCE_HEX + 1];

	if (narf_auth_client_begin(&m->auth, NARF_AUTH_NODE, 0, "api") != 0) {
		disconnect(m, true);
		return;
	}
	m->state = NARF_MEMBER_AUTH;
	narf_auth_hex(m->auth.nonce_c, NARF_AUTH_NONCE_SIZE, hex);
	member_send(m,
	            json_pack("{s:s,s:s,s:i,s:s}", "op", "auth", "role", "node",
	                      "id", 0, "nonce", hex),
	            "auth");
}

/*
 * The replies of the exchange (docs/protocol.md, "Authentication"): the
 * coordinator's nonce and proof (checked: a stranger on a coordinator's
 * address learns nothing of ours), then its ok to our proof. Returns true
 * once we are in.
 */
static bool handle_auth_reply(struct narf_member *m,
                              const char *op,
                              const json_t *reply)
{
	const struct narf_auth_keys *keys = &m->engine->cfg.keys;
	unsigned char nonce[NARF_AUTH_NONCE_SIZE], mac[NARF_AUTH_MAC_SIZE];
	unsigned char out[NARF_AUTH_MAC_SIZE];
	char hex[NARF_AUTH_MAC_HEX + 1];
	const char *n, *p;

	if (!json_is_true(json_object_get(reply, "ok"))) {
		const char *why =
		        json_string_value(json_object_get(reply, "message"));
		char msg[NARF_ERRMSG_SIZE];

		snprintf(msg, sizeof(msg),
		         "refused our node key: %s (is --cluster-secret-file "
		         "this cluster's?)",
		         why ? why : "no reason given");
		auth_failed(m, msg);
		return false;
	}
	if (strcmp(op, "auth proof") == 0)
		return true;
	n = json_string_value(json_object_get(reply, "nonce"));
	p = json_string_value(json_object_get(reply, "proof"));
	if (n == NULL || p == NULL ||
	    narf_auth_unhex(n, strlen(n), nonce, sizeof(nonce)) != 0 ||
	    narf_auth_unhex(p, strlen(p), mac, sizeof(mac)) != 0 ||
	    narf_auth_client_prove(&m->auth, keys, nonce, mac, out) != 0) {
		auth_failed(m,
		            "failed to prove the cluster secret: another "
		            "cluster's coordinator, or not one at all");
		return false;
	}
	narf_auth_hex(out, NARF_AUTH_MAC_SIZE, hex);
	member_send(m, json_pack("{s:s,s:s}", "op", "auth", "proof", hex),
	            "auth proof");
	return false;
}

static void handle_reply(struct narf_member *m, const json_t *reply)
{
	const char *op = m->pending;
	json_t *v;

	m->pending = NULL;
	if (m->state == NARF_MEMBER_AUTH) {
		if (op == NULL || !handle_auth_reply(m, op, reply))
			return;
		m->state =
		        m->node_id ? NARF_MEMBER_MEMBER : NARF_MEMBER_JOINING;
		send_beat_or_join(m);
		return;
	}
	if (json_is_false(json_object_get(reply, "ok"))) {
		if (op != NULL && strcmp(op, "isr") == 0) {
			const char *what = json_string_value(
			        json_object_get(m->isr_pending->msg, "op"));
			const char *why = json_string_value(
			        json_object_get(reply, "message"));
			const char *err = json_string_value(
			        json_object_get(reply, "error"));

			NARF_INFO("member: %s request refused by %s: %s",
			          what ? what : "?", m->target,
			          why ? why : "no reason given");
			isr_done(m, false,
			         err != NULL && strcmp(err, "stale_epoch") == 0
			                 ? NARF_MEMBER_STALE
			                 : 0);
		}
		handle_error(m, reply);
		return;
	}
	if (op == NULL)
		return;
	if (strcmp(op, "join") == 0) {
		v = json_object_get(reply, "node");
		if (!json_is_integer(v) || json_integer_value(v) <= 0 ||
		    json_integer_value(v) > UINT32_MAX) {
			disconnect(m, true);
			return;
		}
		m->node_id = (uint32_t)json_integer_value(v);
		narf_log_set_id(m->node_id);
		NARF_INFO("member: joined as node %u via %s", m->node_id,
		          m->target);
		m->state = NARF_MEMBER_MEMBER;
	} else if (strcmp(op, "heartbeat") == 0) {
		uint64_t term = reply_u64(reply, "term");
		uint64_t epoch = reply_epoch(reply);

		/* Only a leader that can prove it leads answers heartbeats;
		 * still, an answer from an older term than one we have seen,
		 * or behind our map, comes from a deposed leader: it renews
		 * nothing. */
		if (term < m->term ||
		    (m->map != NULL && epoch < m->map->epoch)) {
			NARF_WARN(
			        "member: stale heartbeat reply from %s (term "
			        "%llu, epoch %llu; we have seen term %llu, "
			        "epoch %llu): ignored",
			        m->target, (unsigned long long)term,
			        (unsigned long long)epoch,
			        (unsigned long long)m->term,
			        (unsigned long long)(m->map ? m->map->epoch
			                                    : 0));
			suspect_target(m, "answered from an old term");
			hop(m, true);
			return;
		}
		m->term = term;
		m->fast_hops = 0;
		snprintf(m->leader, sizeof(m->leader), "%s", m->target);
		m->leader_seen_ms = uv_now(m->loop);
		m->beat_sent_ms = m->sent_ms;
		m->beat_epoch = epoch;
		/* The deltas first: when they bring our map to the reply's
		 * epoch the lease renews in this round trip, under the
		 * condition it always had (docs/safety.md); never on a map
		 * whose digest said it differs, until the whole map is in. */
		sync_reply(m, reply);
		if (m->map == NULL || epoch > m->map->epoch)
			m->want_map = true;
		else if (!m->sync.repair)
			renew_lease(m);
	} else if (strcmp(op, "map") == 0) {
		v = json_object_get(reply, "map");
		if (json_is_object(v))
			install_map(m, v);
		else
			sync_reply(m, reply); /* deltas, or current */
		/* the map must hold the answered beat's epoch too (a map
		 * reply from another coordinator may be older) */
		if (m->map != NULL && m->map->epoch >= reply_epoch(reply) &&
		    m->map->epoch >= m->beat_epoch && !m->sync.repair)
			renew_lease(m);
		m->maps_checked++;
		if (m->on_lease != NULL) /* whoever waits for a map */
			m->on_lease(m->cb_data);
	} else if (strcmp(op, "isr") == 0) {
		uint64_t epoch = reply_epoch(reply);

		/* As before deltas: the requester hears the answer, then
		 * the map moves (here at once, from the reply's deltas). */
		isr_done(m, true, epoch);
		sync_reply(m, reply);
		if (m->map == NULL || epoch > m->map->epoch)
			m->want_map = true;
	}
	send_next(m);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char slab[65536];

	*buf = uv_buf_init(slab, sizeof(slab));
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct narf_member *m = s->data;
	char errmsg[NARF_ERRMSG_SIZE] = "";
	json_t *reply;
	int rv;

	if (m == NULL)
		return;
	if (nread < 0) {
		NARF_DEBUG("member: connection to %s closed", m->target);
		if (m->pending != NULL)
			suspect_target(m, "closed the connection");
		hop(m, true);
		return;
	}
	if (narf_frame_feed(&m->dec, buf->base, (size_t)nread) != 0) {
		suspect_target(m, "sent an oversized reply");
		hop(m, true);
		return;
	}
	while ((rv = narf_frame_next(&m->dec, &reply, errmsg)) == 0 &&
	       reply != NULL) {
		handle_reply(m, reply);
		json_decref(reply);
		if ((uv_stream_t *)m->tcp != s)
			return; /* handle_reply disconnected */
	}
	if (rv != 0) {
		NARF_WARN("member: bad reply from %s: %s", m->target, errmsg);
		suspect_target(m, "sent a bad reply");
		hop(m, true);
	}
}

static void write_cb(uv_write_t *req, int status)
{
	struct write_req *w = (struct write_req *)req;

	free(w->line);
	free(w);
}

/* Send one request (msg is stolen) and remember what it was. */
static void member_send(struct narf_member *m, json_t *msg, const char *op)
{
	struct write_req *w;
	uv_buf_t b;
	size_t len;

	if (msg == NULL || m->tcp == NULL) {
		json_decref(msg);
		return;
	}
	w = malloc(sizeof(*w));
	if (w == NULL || (w->line = narf_frame_encode(msg, &len)) == NULL) {
		free(w);
		json_decref(msg);
		return;
	}
	json_decref(msg);
	b = uv_buf_init(w->line, (unsigned)len);
	if (uv_write(&w->req, (uv_stream_t *)m->tcp, &b, 1, write_cb) != 0) {
		free(w->line);
		free(w);
		disconnect(m, true);
		return;
	}
	m->pending = op;
	m->sent_ms = narf_clock_ms();
}

/* Connected (TCP, or a TLS relay's plaintext end): read, then prove
 * ourselves and ask at once: after a hop, every tick waited is lease
 * lost. */
static void connected(struct narf_member *m)
{
	if (uv_read_start((uv_stream_t *)m->tcp, alloc_cb, read_cb) != 0) {
		hop(m, true);
		return;
	}
	send_auth_hello(m);
}

static void connect_cb(uv_connect_t *req, int status)
{
	struct narf_member *m = req->data;
	bool stale = m->tcp != (uv_tcp_t *)req->handle;

	/* Each attempt has its own request: one abandoned by a disconnect
	 * (its handle closed) reports here after a newer one has begun. */
	free(req);
	if (stale || m->state == NARF_MEMBER_CLOSING)
		return;
	if (status != 0) {
		NARF_DEBUG("member: cannot reach %s: %s", m->target,
		           uv_strerror(status));
		hop(m, true);
		return;
	}
	uv_tcp_nodelay(m->tcp, 1);
	connected(m);
}

/*
 * --tls-cluster: the relay's answer. A refused handshake (a coordinator
 * whose certificate is not from our CA, or that refuses ours) is a
 * misconfiguration that repeats every attempt: WARN at most once a
 * second, with OpenSSL's reason; a coordinator that is down is DEBUG as
 * over TCP. disconnect() cancels the relay, so this never runs for an
 * abandoned attempt.
 */
static void relay_cb(void *data,
                     int fd,
                     const struct sockaddr_storage *peer,
                     int status,
                     const char *why)
{
	struct narf_member *m = data;
	uint64_t now = uv_now(m->loop);
	int rv;

	(void)peer;
	m->relay = NULL;
	if (status == NARF_EPROTO) {
		if (m->tls_logged_ms == 0 || now - m->tls_logged_ms >= 1000) {
			NARF_WARN(
			        "member: coordinator %s: TLS handshake "
			        "failed: %s",
			        m->target, why);
			m->tls_logged_ms = now;
		}
		hop(m, true);
		return;
	}
	if (status != 0) {
		NARF_DEBUG("member: cannot reach %s over TLS: %s", m->target,
		           why ? why : narf_strerror(status));
		hop(m, true);
		return;
	}
	/* Nagle is the relay's business (its TCP side has no delay);
	 * tcp-only calls fail on this AF_UNIX end. */
	rv = uv_tcp_open(m->tcp, fd);
	if (rv != 0) {
		close(fd);
		NARF_WARN("member: coordinator %s: %s", m->target,
		          uv_strerror(rv));
		hop(m, true);
		return;
	}
	connected(m);
}

static void start_connect(struct narf_member *m)
{
	struct sockaddr_in sa;
	char host[NARF_ADDR_SIZE];
	uv_connect_t *req = NULL;
	int port;

	if (narf_parse_hostport(m->target, host, sizeof(host), &port) != 0 ||
	    uv_ip4_addr(strcmp(host, "localhost") == 0 ? "127.0.0.1" : host,
	                port, &sa) != 0) {
		disconnect(m, true);
		return;
	}
	if (m->tls == NULL)
		req = malloc(sizeof(*req));
	m->tcp = malloc(sizeof(*m->tcp));
	if (m->tcp == NULL || (m->tls == NULL && req == NULL)) {
		free(req);
		free(m->tcp);
		m->tcp = NULL;
		return;
	}
	/* With a relay the handle gets its fd in relay_cb. */
	uv_tcp_init(m->loop, m->tcp);
	m->tcp->data = m;
	m->state = NARF_MEMBER_CONNECTING;
	m->sent_ms = narf_clock_ms();
	if (m->tls != NULL) {
		/* Within the reply timeout: tick_cb gives up on a slow
		 * connect then anyway (and cancels the relay). */
		m->relay = narf_tls_relay_connect(
		        m->loop, (const struct sockaddr *)&sa, m->tls,
		        reply_limit(m), relay_cb, m);
		if (m->relay == NULL)
			disconnect(m, true);
		return;
	}
	req->data = m;
	if (uv_tcp_connect(req, m->tcp, (const struct sockaddr *)&sa,
	                   connect_cb) != 0) {
		free(req);
		disconnect(m, true);
	}
}

static void send_beat_or_join(struct narf_member *m)
{
	if (m->pending != NULL || m->state == NARF_MEMBER_CONNECTING ||
	    m->state == NARF_MEMBER_AUTH || m->tcp == NULL)
		return;
	if (m->node_id == 0) {
		member_send(m, join_msg(m), "join");
	} else {
		m->beat_at = uv_now(m->loop);
		member_send(m, heartbeat_msg(m), "heartbeat");
	}
}

static void tick_cb(uv_timer_t *t)
{
	struct narf_member *m = t->data;
	unsigned limit = reply_limit(m);

	if (m->state == NARF_MEMBER_CLOSING || m->removed)
		return;
	m->fast_hops = 0;
	if ((m->pending != NULL || m->state == NARF_MEMBER_CONNECTING) &&
	    narf_clock_ms() - m->sent_ms > limit) {
		/* Slow or hung: ask the others, without avoiding it (a
		 * follower that names it sends us straight back, and a slow
		 * leader then sees our next beat long before it could judge
		 * us). */
		NARF_WARN(
		        "member: no reply from %s in %u ms: trying the others",
		        m->target, limit);
		disconnect(m, true);
	}
	if (m->state == NARF_MEMBER_IDLE) {
		start_connect(m);
		return;
	}
	send_beat_or_join(m);
}

static void queue_request(struct narf_member *m, struct narf_isr_req *q)
{
	if (m->isr_tail != NULL)
		m->isr_tail->next = q;
	else
		m->isr_head = q;
	m->isr_tail = q;
	send_next(m);
}

/* Queue msg (stolen; NULL when building it failed) for the coordinator;
 * cb hears the answer with peer and drop. 0 or NARF_ENOMEM. */
static int queue_msg(struct narf_member *m,
                     json_t *msg,
                     uint32_t peer,
                     bool drop,
                     narf_member_isr_cb cb,
                     void *data)
{
	struct narf_isr_req *q = msg != NULL ? calloc(1, sizeof(*q)) : NULL;

	if (q == NULL) {
		json_decref(msg);
		return NARF_ENOMEM;
	}
	q->msg = msg;
	q->peer = peer;
	q->drop = drop;
	q->cb = cb;
	q->data = data;
	queue_request(m, q);
	return 0;
}

int narf_member_handoff(struct narf_member *m,
                        json_t *ranges,
                        narf_member_isr_cb cb,
                        void *data)
{
	return queue_msg(m,
	                 json_pack("{s:s,s:I,s:s,s:o}", "op", "handoff", "node",
	                           (json_int_t)m->node_id, "boot_id",
	                           m->boot_id, "slots", ranges),
	                 0, false, cb, data);
}

int narf_member_leave(struct narf_member *m, narf_member_isr_cb cb, void *data)
{
	return queue_msg(m,
	                 json_pack("{s:s,s:I,s:s,s:b}", "op", "leave", "node",
	                           (json_int_t)m->node_id, "boot_id",
	                           m->boot_id, "if_room", 1),
	                 0, false, cb, data);
}

int narf_member_isr(struct narf_member *m,
                    uint32_t peer,
                    bool drop,
                    json_t *ranges,
                    uint64_t since,
                    narf_member_isr_cb cb,
                    void *data)
{
	json_t *msg = json_pack("{s:s,s:I,s:s,s:I}", "op", "isr", "node",
	                        (json_int_t)m->node_id, "boot_id", m->boot_id,
	                        "peer", (json_int_t)peer);

	/* json_object_set_new() takes the value even when msg is NULL. */
	if (drop) {
		json_decref(ranges);
		json_object_set_new(msg, "drop", json_true());
	} else {
		json_object_set_new(msg, "add", ranges ? ranges : json_array());
		if (since != 0)
			json_object_set_new(msg, "since",
			                    json_integer((json_int_t)since));
	}
	return queue_msg(m, msg, peer, drop, cb, data);
}

void narf_member_want_map(struct narf_member *m)
{
	m->want_map = true;
	send_next(m);
}

bool narf_member_lease_ok(const struct narf_member *m, uint64_t now)
{
	return m->map != NULL && m->node_id != 0 && m->lease_ms != 0 &&
	       now - m->lease_ms <
	               narf_lease_ms(m->map->settings.node_timeout_ms);
}

uint64_t narf_member_lease_left_ms(const struct narf_member *m, uint64_t now)
{
	if (!narf_member_lease_ok(m, now))
		return 0;
	return m->lease_ms + narf_lease_ms(m->map->settings.node_timeout_ms) -
	       now;
}

const char *narf_member_leader(const struct narf_member *m, uint64_t now)
{
	uint64_t within = m->map != NULL && m->map->settings.node_timeout_ms > 0
	                          ? m->map->settings.node_timeout_ms
	                          : 1000;

	if (m->leader[0] == '\0' || now - m->leader_seen_ms > within)
		return NULL;
	return m->leader;
}

static void new_boot_id(char *out, size_t size)
{
	unsigned char raw[16];
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	ssize_t got = fd >= 0 ? read(fd, raw, sizeof(raw)) : -1;

	if (fd >= 0)
		close(fd);
	if (got != (ssize_t)sizeof(raw)) {
		/* Without urandom, pid and time still differ per process. */
		uint64_t t = uv_hrtime();

		memcpy(raw, &t, sizeof(t));
		t ^= (uint64_t)getpid() << 32;
		memcpy(raw + 8, &t, sizeof(t));
	}
	for (size_t i = 0; i < sizeof(raw) && 2 * i + 2 < size; i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

int narf_member_start(struct narf_member *m,
                      uv_loop_t *loop,
                      struct narf_engine *engine,
                      const char *self_addr)
{
	m->loop = loop;
	m->engine = engine;
	snprintf(m->self_addr, sizeof(m->self_addr), "%s", self_addr);
	new_boot_id(m->boot_id, sizeof(m->boot_id));
	narf_frame_decoder_init(&m->dec, NARF_FRAME_MAX_REPLY);
	narf_mapsync_init(&m->sync);
	m->sync.on_map = sync_map_cb;
	m->sync.cb_data = m;
	m->map = NULL;
	snprintf(m->target, sizeof(m->target), "%s", m->coords[0]);
	m->next_coord = 1;
	m->state = NARF_MEMBER_IDLE;
	uv_timer_init(loop, &m->timer);
	m->timer.data = m;
	NARF_INFO("member: joining via %s as %s (boot %s, zone %s)", m->target,
	          m->self_addr, m->boot_id,
	          m->zone[0] != '\0' ? m->zone : "none");
	return uv_timer_start(&m->timer, tick_cb, 0, NARF_HEARTBEAT_MS) == 0
	               ? 0
	               : NARF_EINTERNAL;
}

void narf_member_stop(struct narf_member *m)
{
	if (m->loop == NULL || m->state == NARF_MEMBER_CLOSING)
		return;
	disconnect(m, false);
	m->state = NARF_MEMBER_CLOSING;
	while (m->isr_head != NULL) {
		struct narf_isr_req *q = m->isr_head;

		m->isr_head = q->next;
		json_decref(q->msg);
		free(q);
	}
	m->isr_tail = NULL;
	uv_close((uv_handle_t *)&m->timer, NULL);
	narf_frame_decoder_close(&m->dec);
	narf_mapsync_close(&m->sync);
	m->map = NULL;
}
