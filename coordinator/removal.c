/*
 * How a removed member notices (docs/coordinators.md): libraft 0.15 never
 * tells it. Once the leader has removed it, nobody sends it anything; it
 * keeps its configuration and campaigns for ever (harmlessly, with
 * pre-vote). Its silence alone proves nothing, though: a member cut off
 * from a lost quorum looks the same, and must stay, or the quorum may not
 * come back.
 *
 * Happy path: a member that has been in the coordinators table and has
 * known no leader for REMOVED_GRACE_MS asks the cluster: it sends `coords`
 * to the API addresses it knows (its table, --members, --join), following
 * one not_leader redirect, one probe at a time, every PROBE_EVERY_MS. When
 * a leader answers that this member is neither in the table nor in the Raft
 * configuration, it was removed: it stops (exit status 0), from the cron.
 *
 * A probe proves the operator role first (the API's auth exchange,
 * docs/protocol.md), and checks the answering member's proof: a stranger
 * on a member's address cannot make this member stop.
 *
 * With --tls-cluster yes the API ports take TLS only: the probe dials
 * through a relay (common/tls_relay.h), presenting this member's
 * certificate, and runs the same exchange over the tunnel.
 *
 * Failure modes: no leader answers (a lost quorum, a partition): the member
 * keeps running and asks again later. A probe that hangs is closed after
 * PROBE_TIMEOUT_MS. Everything happens on the loop thread; a probe's memory
 * is freed only in its handle's close callback, after libuv has called the
 * connect and write callbacks (with UV_ECANCELED when it was closed early).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/flags.h"
#include "common/frame.h"
#include "common/log.h"
#include "common/tls_relay.h"
#include "coord.h"
#include "members.h"

/* An unlisted or forgotten member asks after this long without a leader. */
#define REMOVED_GRACE_MS 2000
#define PROBE_EVERY_MS 1000
#define PROBE_TIMEOUT_MS 1000
#define PROBE_MAX_HOPS 2

/* A probe's requests, in order: auth hello, auth proof, coords. */
enum probe_step { STEP_HELLO, STEP_PROOF, STEP_COORDS, STEP_COUNT };

struct narf_probe {
	uv_tcp_t tcp;  /* tcp.data == this */
	bool tcp_live; /* tcp initialised (not while relay runs) */
	/* --tls-cluster: connecting and the TLS handshake, until its cb */
	struct narf_tls_relay *relay;
	uv_connect_t connect;
	uv_write_t write[STEP_COUNT];
	struct narf_coord *c; /* borrowed */
	struct narf_frame_decoder dec;
	char *line[STEP_COUNT]; /* owned: the requests sent */
	enum probe_step step;   /* the request whose reply is awaited */
	struct narf_auth auth;
	bool closing;
	uint64_t started_ms;
};

static void probe_free(struct narf_probe *p)
{
	narf_frame_decoder_close(&p->dec);
	for (unsigned i = 0; i < STEP_COUNT; i++)
		free(p->line[i]);
	free(p);
}

static void probe_closed_cb(uv_handle_t *h)
{
	probe_free(h->data);
}

/* Close the probe in flight, if any. */
static void probe_end(struct narf_coord *c)
{
	struct narf_probe *p = c->members.probe;

	if (p == NULL)
		return;
	c->members.probe = NULL;
	p->closing = true;
	narf_tls_relay_cancel(p->relay);
	p->relay = NULL;
	if (p->tcp_live)
		uv_close((uv_handle_t *)&p->tcp, probe_closed_cb);
	else
		probe_free(p);
}

void narf_members_close(struct narf_coord *c)
{
	probe_end(c);
}

/* A leader's `coords` answer: is this member gone from the table and the
 * configuration? */
static bool confirms_removal(const struct narf_coord *c, const json_t *r)
{
	const char *const lists[] = {"coordinators", "leaving"};

	if (!json_is_array(json_object_get(r, "coordinators")) ||
	    !json_is_array(json_object_get(r, "leaving")))
		return false;
	for (size_t k = 0; k < 2; k++) {
		const json_t *e;
		size_t i;

		json_array_foreach(json_object_get(r, lists[k]), i, e)
		{
			if ((uint64_t)json_integer_value(
			            json_object_get(e, "id")) == c->cfg.id)
				return false;
		}
	}
	return true;
}

static void probe_reply(struct narf_coord *c, const json_t *r)
{
	struct narf_members *ms = &c->members;
	const char *leader = json_string_value(json_object_get(r, "leader"));

	if (json_is_true(json_object_get(r, "ok"))) {
		if (confirms_removal(c, r)) {
			ms->removed = true;
			NARF_WARN(
			        "members: the leader (%s) confirms that "
			        "this member (%llu) was removed",
			        ms->probe_target,
			        (unsigned long long)c->cfg.id);
		}
		ms->probe_hops = 0;
		return;
	}
	if (leader != NULL && narf_map_valid_addr(leader) &&
	    ms->probe_hops < PROBE_MAX_HOPS &&
	    strcmp(leader, c->cfg.self->api) != 0) {
		snprintf(ms->probe_target, sizeof(ms->probe_target), "%s",
		         leader);
		ms->probe_hops++;
		ms->probe_ms = 0; /* follow at the next tick */
		return;
	}
	ms->probe_hops = 0;
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char slab[65536];

	*buf = uv_buf_init(slab, sizeof(slab));
}

static void write_cb(uv_write_t *req, int status)
{
}

/* Send the request of p->step (msg is stolen); false when it cannot. */
static bool probe_send(struct narf_probe *p, json_t *msg)
{
	uv_buf_t b;
	size_t len = 0;

	p->line[p->step] = msg != NULL ? narf_frame_encode(msg, &len) : NULL;
	json_decref(msg);
	if (p->line[p->step] == NULL)
		return false;
	b = uv_buf_init(p->line[p->step], (unsigned)len);
	return uv_write(&p->write[p->step], (uv_stream_t *)&p->tcp, &b, 1,
	                write_cb) == 0;
}

/* The member's answer to our hello: check its proof, send ours. */
static bool probe_prove(struct narf_probe *p, const json_t *r)
{
	const char *n = json_string_value(json_object_get(r, "nonce"));
	const char *m = json_string_value(json_object_get(r, "proof"));
	unsigned char nonce[NARF_AUTH_NONCE_SIZE], mac[NARF_AUTH_MAC_SIZE];
	unsigned char out[NARF_AUTH_MAC_SIZE];
	char hex[NARF_AUTH_MAC_HEX + 1];

	if (!json_is_true(json_object_get(r, "ok")) || n == NULL || m == NULL ||
	    narf_auth_unhex(n, strlen(n), nonce, sizeof(nonce)) != 0 ||
	    narf_auth_unhex(m, strlen(m), mac, sizeof(mac)) != 0 ||
	    narf_auth_client_prove(&p->auth, &p->c->cfg.keys, nonce, mac,
	                           out) != 0) {
		NARF_WARN("members: %s did not prove the cluster secret",
		          p->c->members.probe_target);
		return false;
	}
	narf_auth_hex(out, NARF_AUTH_MAC_SIZE, hex);
	p->step = STEP_PROOF;
	return probe_send(p,
	                  json_pack("{s:s,s:s}", "op", "auth", "proof", hex));
}

/* One reply line r of the probe p: the next step, or the answer. */
static bool probe_line(struct narf_probe *p, const json_t *r)
{
	switch (p->step) {
	case STEP_HELLO:
		return probe_prove(p, r);
	case STEP_PROOF:
		if (!json_is_true(json_object_get(r, "ok")))
			return false;
		p->step = STEP_COORDS;
		return probe_send(p, json_pack("{s:s}", "op", "coords"));
	default:
		return false;
	}
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct narf_probe *p = s->data;
	struct narf_coord *c = p->c;
	json_t *r = NULL;

	if (p->closing)
		return;
	if (nread < 0 ||
	    (nread > 0 && narf_frame_feed(&p->dec, buf->base, (size_t)nread))) {
		c->members.probe_hops = 0;
		probe_end(c);
		return;
	}
	for (;;) {
		if (narf_frame_next(&p->dec, &r, NULL) != 0) {
			c->members.probe_hops = 0;
			probe_end(c);
			return;
		}
		if (r == NULL)
			return; /* not a whole line yet */
		if (p->step == STEP_COORDS)
			break;
		if (!probe_line(p, r)) {
			json_decref(r);
			c->members.probe_hops = 0;
			probe_end(c);
			return;
		}
		json_decref(r);
	}
	probe_end(c);
	probe_reply(c, r);
	json_decref(r);
}

/* Connected: send the auth hello and read. */
static void probe_connected(struct narf_probe *p, int status)
{
	char hex[NARF_AUTH_NONCE_HEX + 1];

	if (status != 0 || narf_auth_client_begin(&p->auth, NARF_AUTH_OPERATOR,
	                                          0, "api") != 0) {
		p->c->members.probe_hops = 0;
		probe_end(p->c);
		return;
	}
	narf_auth_hex(p->auth.nonce_c, NARF_AUTH_NONCE_SIZE, hex);
	p->step = STEP_HELLO;
	if (!probe_send(p, json_pack("{s:s,s:s,s:i,s:s}", "op", "auth", "role",
	                             "operator", "id", 0, "nonce", hex)) ||
	    uv_read_start((uv_stream_t *)&p->tcp, alloc_cb, read_cb) != 0) {
		p->c->members.probe_hops = 0;
		probe_end(p->c);
	}
}

static void connect_cb(uv_connect_t *req, int status)
{
	struct narf_probe *p = req->data;

	if (!p->closing)
		probe_connected(p, status);
}

/* --tls-cluster: the relay connected and ran the TLS handshake; its
 * plaintext end becomes the probe's stream. */
static void tls_cb(void *data,
                   int fd,
                   const struct sockaddr_storage *peer,
                   int status,
                   const char *why)
{
	struct narf_probe *p = data;

	(void)peer;
	p->relay = NULL;
	if (status != 0) {
		NARF_DEBUG("members: %s: %s", p->c->members.probe_target, why);
		probe_connected(p, status);
		return;
	}
	uv_tcp_init(&p->c->loop, &p->tcp);
	p->tcp.data = p;
	p->tcp_live = true;
	status = uv_tcp_open(&p->tcp, fd);
	if (status != 0)
		close(fd);
	probe_connected(p, status);
}

/* The next address to ask: a redirect's target, else the next of the
 * addresses this member knows, itself excepted. */
static bool next_target(struct narf_coord *c)
{
	struct narf_members *ms = &c->members;
	const struct narf_map *m = c->rn.map;
	const char *cand[2 * NARF_MAX_COORDS + 8];
	char join[1024], *save = NULL;
	unsigned n = 0;

	if (ms->probe_hops > 0)
		return true;
	for (unsigned i = 0; i < m->n_coords; i++)
		cand[n++] = m->coords[i].api;
	for (unsigned i = 0; i < c->cfg.n_members; i++)
		cand[n++] = c->cfg.members[i].api;
	snprintf(join, sizeof(join), "%s", c->cfg.join ? c->cfg.join : "");
	for (char *t = strtok_r(join, ",", &save);
	     t != NULL && n < 2 * NARF_MAX_COORDS + 8;
	     t = strtok_r(NULL, ",", &save))
		cand[n++] = t;
	for (unsigned k = 0; k < n; k++) {
		const char *a = cand[ms->probe_next++ % n];

		if (strcmp(a, c->cfg.self->api) != 0) {
			snprintf(ms->probe_target, sizeof(ms->probe_target),
			         "%s", a);
			return true;
		}
	}
	return false;
}

static void probe_start(struct narf_coord *c, uint64_t now)
{
	struct narf_members *ms = &c->members;
	struct narf_probe *p;
	struct sockaddr_in sa;
	char host[NARF_ADDR_SIZE];
	int port;

	if (!next_target(c) ||
	    narf_parse_hostport(ms->probe_target, host, sizeof(host), &port) !=
	            0 ||
	    uv_ip4_addr(strcmp(host, "localhost") == 0 ? "127.0.0.1" : host,
	                port, &sa) != 0) {
		ms->probe_hops = 0;
		return;
	}
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return;
	p->c = c;
	p->started_ms = now;
	narf_frame_decoder_init(&p->dec, NARF_FRAME_MAX_REPLY);
	ms->probe = p;
	NARF_DEBUG("members: asking %s whether this member is still one",
	           ms->probe_target);
	if (c->cfg.tls) {
		p->relay = narf_tls_relay_connect(
		        &c->loop, (const struct sockaddr *)&sa,
		        &c->cfg.tls_client, PROBE_TIMEOUT_MS, tls_cb, p);
		if (p->relay == NULL) {
			ms->probe_hops = 0;
			probe_end(c);
		}
		return;
	}
	uv_tcp_init(&c->loop, &p->tcp);
	p->tcp.data = p;
	p->tcp_live = true;
	p->connect.data = p;
	if (uv_tcp_connect(&p->connect, &p->tcp, (const struct sockaddr *)&sa,
	                   connect_cb) != 0) {
		ms->probe_hops = 0;
		probe_end(c);
	}
}

/* Alone (no leader) for the grace period: ask, at most every
 * PROBE_EVERY_MS, one probe at a time. */
static void probe_tick(struct narf_coord *c, uint64_t now)
{
	struct narf_members *ms = &c->members;

	if (ms->probe != NULL) {
		if (now - ms->probe->started_ms > PROBE_TIMEOUT_MS) {
			ms->probe_hops = 0;
			probe_end(c);
		}
		return;
	}
	if (ms->probe_ms != 0 && now - ms->probe_ms < PROBE_EVERY_MS)
		return;
	ms->probe_ms = now;
	probe_start(c, now);
}

/* Is this member in the applied table? Log once when it leaves it. */
static void note_listing(struct narf_coord *c, const struct narf_map *m)
{
	struct narf_members *ms = &c->members;
	bool listed =
	        narf_members_find(m->coords, m->n_coords, c->cfg.id) != NULL;

	ms->seen_self |= listed;
	if (ms->seen_self && !listed && !ms->unlisted)
		NARF_WARN(
		        "members: this member (%llu) is no longer in the "
		        "coordinators table (epoch %llu): it stops once the "
		        "leader has removed it",
		        (unsigned long long)c->cfg.id,
		        (unsigned long long)m->epoch);
	ms->unlisted = ms->seen_self && !listed;
}

void narf_members_removal_cron(struct narf_coord *c, uint64_t now)
{
	struct narf_members *ms = &c->members;
	const struct narf_map *m = c->rn.map;
	uint64_t leader = narf_raftnode_leader_id(&c->rn);
	uint64_t grace = REMOVED_GRACE_MS;

	if (ms->removed) {
		NARF_WARN(
		        "members: removed from the cluster: stopping; wipe "
		        "--data-dir %s before using it again",
		        c->cfg.data_dir);
		ms->removed = false;
		narf_coord_stop(c, "removed from the cluster");
		return;
	}
	if (m == NULL)
		return;
	if (m->n_coords > 0)
		note_listing(c, m);
	/* Never a member yet (a new one, waiting to be added): nothing to
	 * ask. A restarted member's map stays empty until a leader tells it
	 * what committed, so its own Raft configuration counts too. */
	if (!ms->seen_self &&
	    narf_raftnode_role_of(&c->rn, c->cfg.id) == NARF_RAFT_ABSENT)
		return;
	if (leader != 0) {
		ms->alone_ms = 0;
		ms->probe_hops = 0;
		probe_end(c);
		return;
	}
	if (ms->alone_ms == 0)
		ms->alone_ms = now;
	if (4ull * c->cfg.election_timeout_ms > grace)
		grace = 4ull * c->cfg.election_timeout_ms;
	if (now - ms->alone_ms >= grace)
		probe_tick(c, now);
}
