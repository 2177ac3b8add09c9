/*
 * narf-hbsim: one fake data node's protocol and model (see hbsim.c for
 * the phases and what is measured).
 *
 * Each fake node speaks the protocol of datanode/membership.c: its own TCP
 * connection, the node role's auth exchange (common/auth.c, with the node
 * key or the cluster secret), `join` with a fake address 127.0.0.1:P and
 * boot id hbsim-<seed>-<i>, then a heartbeat every --heartbeat-ms with
 * +-10% jitter, one request in flight. A `not_leader` reply with a leader
 * address moves it there; a closed connection or a reply late past the
 * reply timeout (half the node timeout for heartbeats and maps, 1 s for
 * commits) moves it to the next coordinator.
 *
 * How a node follows the map depends on --protocol:
 * - delta (issue 17): every heartbeat, map, isr and handoff request says
 *   "deltas":1; a reply naming a newer epoch carries the map entries since
 *   the node's epoch ("from", "deltas"), and the node holds the new epoch
 *   and renews its lease in that one round trip. A reply saying "full"
 *   (or, from an older coordinator, neither) makes it fetch with `map`.
 * - full (before issue 17): a heartbeat reply naming a newer epoch makes
 *   the node fetch the whole map (`map`); its lease renews once its map
 *   holds the reply's epoch.
 *
 * The model of the node's data work is deliberately simple:
 * - One canonical map per simulator: the first node to receive an epoch's
 *   map parses it (narf_map_from_json), or applies its entries
 *   (narf_map_apply); every other node scans a full map reply only for
 *   the top-level "epoch" and counts bytes, and checks that its deltas
 *   follow its epoch, so the simulator does not melt before the leader
 *   does.
 * - When a node holds the canonical epoch, it looks at the slots it leads:
 *   for the first replica outside a slot's ISR it sends `isr add` (all such
 *   slots of that peer, `since` = its epoch) --sync-ms after it first saw
 *   the need (a modelled sync, no data moves); for slots with `move` set it
 *   sends `handoff` --handoff-ms after. One of each in flight at most.
 * - The lease rule is membership.c's: the lease is the send time of the
 *   last answered heartbeat whose epoch the node's map holds, and it lapses
 *   narf_lease_ms(node_timeout) later. A live node whose lease lapses counts
 *   one lapse.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/errors.h"
#include "common/frame.h"

#include "hbsim.h"

/* --- small helpers ------------------------------------------------------ */

/* --- small helpers ------------------------------------------------------ */

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n);

	if (q == NULL) {
		fprintf(stderr, PROG ": out of memory\n");
		exit(1);
	}
	return q;
}

void push_double(double **a, size_t *n, size_t *cap, double v)
{
	if (*n == *cap) {
		*cap = *cap ? 2 * *cap : 1024;
		*a = xrealloc(*a, *cap * sizeof(**a));
	}
	(*a)[(*n)++] = v;
}

/* --- connections -------------------------------------------------------- */

void close_cb(uv_handle_t *h)
{
	free(h);
}

/* Drop the connection; the node reconnects (to target) at retry_at. */
void node_disconnect(struct node *n, bool next, unsigned delay_ms)
{
	if (n->tcp != NULL) {
		n->tcp->data = NULL;
		uv_close((uv_handle_t *)n->tcp, close_cb);
		n->tcp = NULL;
	}
	n->in_len = 0;
	n->pending = OP_NONE;
	if (n->st != N_DEAD)
		n->st = N_IDLE;
	/* A watcher stays on its coordinator: its index names the pid. */
	if (next && !n->watcher && n->sim->n_coords > 0)
		snprintf(n->target, sizeof(n->target), "%s",
		         n->sim->coords[n->next_coord++ % n->sim->n_coords]);
	n->retry_at = uv_now(&n->sim->loop) + delay_ms;
}

struct wreq {
	uv_write_t req;
	char *line; /* owned */
};

static void write_cb(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;

	(void)status;
	free(w->line);
	free(w);
}

/* Send msg (stolen) as one line; op is what the reply answers. */
static void node_send(struct node *n, json_t *msg, enum op op)
{
	struct wreq *w;
	size_t len;
	uv_buf_t b;

	if (msg == NULL || n->tcp == NULL) {
		json_decref(msg);
		return;
	}
	/* Protocol "delta": the capability on every request whose reply
	 * may carry map entries. */
	if (n->sim->delta &&
	    (op == OP_BEAT || op == OP_MAP || op == OP_ISR || op == OP_HANDOFF))
		json_object_set_new(msg, "deltas", json_integer(1));
	/* isr and handoff replies carry the entries since this epoch */
	if (n->sim->delta && (op == OP_ISR || op == OP_HANDOFF))
		json_object_set_new(msg, "epoch",
		                    json_integer((json_int_t)n->epoch));
	w = xrealloc(NULL, sizeof(*w));
	w->line = narf_frame_encode(msg, &len);
	json_decref(msg);
	if (w->line == NULL) {
		free(w);
		return;
	}
	b = uv_buf_init(w->line, (unsigned)len);
	if (uv_write(&w->req, (uv_stream_t *)n->tcp, &b, 1, write_cb) != 0) {
		free(w->line);
		free(w);
		node_disconnect(n, true, 50);
		return;
	}
	n->pending = op;
	n->sent_ms = narf_clock_ms();
}

static void send_hello(struct node *n)
{
	char hex[NARF_AUTH_NONCE_HEX + 1];

	if (narf_auth_client_begin(&n->auth, NARF_AUTH_NODE, 0, "api") != 0) {
		node_disconnect(n, true, 100);
		return;
	}
	narf_auth_hex(n->auth.nonce_c, NARF_AUTH_NONCE_SIZE, hex);
	n->st = N_AUTH;
	node_send(n,
	          json_pack("{s:s,s:s,s:i,s:s}", "op", "auth", "role", "node",
	                    "id", 0, "nonce", hex),
	          OP_AUTH);
}

/* --- the canonical map and the node's work ------------------------------ */

static unsigned live_count(const struct sim *s)
{
	unsigned c = 0;

	for (unsigned i = 0; i < s->n_all; i++)
		c += s->nodes[i].active && !s->nodes[i].silent &&
		     s->nodes[i].id != 0;
	return c;
}

/* Node n now holds epoch e (from its old one): count it toward the 99%
 * spread of every epoch in between. */
static void node_holds(struct sim *s, struct node *n, uint64_t e)
{
	uint64_t now = uv_now(&s->loop);
	unsigned live = live_count(s);
	uint64_t from = n->epoch + 1;

	if (e <= n->epoch)
		return;
	if (from < s->ring_base)
		from = s->ring_base;
	if (e >= s->ring_base + SPREAD_RING) /* far ahead: restart the ring */
		s->ring_base = from = e;
	for (uint64_t x = from; x <= e; x++) {
		unsigned k = (unsigned)(x % SPREAD_RING);

		if (s->first_ms[k] == 0 || s->holders[k] == UINT32_MAX) {
			if (s->holders[k] == UINT32_MAX)
				continue;
			s->first_ms[k] = now;
		}
		if (++s->holders[k] * 100 >= 99 * (uint64_t)live && live > 0) {
			push_double(&s->spreads, &s->n_spreads, &s->cap_spreads,
			            (double)(now - s->first_ms[k]));
			s->holders[k] = UINT32_MAX; /* done */
		}
	}
	n->epoch = e;
}

/* The canonical map moved: note when, whether it is settled, and forget
 * the spread ring's slots of epochs now far behind. */
static void canon_changed(struct sim *s)
{
	s->map_changed = uv_now(&s->loop);
	s->settled = true;
	for (unsigned i = 0; i < NARF_SLOTS; i++) {
		const struct narf_slot *sl = &s->map->slots[i];

		if (sl->primary == 0 || sl->move != 0 ||
		    sl->n_isr < sl->n_replicas)
			s->settled = false;
	}
	while (s->ring_base + SPREAD_RING / 2 < s->map->epoch) {
		unsigned k = (unsigned)(s->ring_base % SPREAD_RING);

		s->first_ms[k] = 0;
		s->holders[k] = 0;
		s->ring_base++;
	}
}

/* Install a map reply's map as the canonical one when it is newer. */
static void canon_update(struct sim *s, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *r = json_loadb(line, len, 0, &jerr);
	json_t *m = r ? json_object_get(r, "map") : NULL;
	char errmsg[NARF_ERRMSG_SIZE];

	if (m != NULL && narf_map_from_json(s->map, m, errmsg) == 0)
		canon_changed(s);
	json_decref(r);
}

/* What a reply carrying map state says: its epoch and term, and with
 * protocol "delta" the epoch its first entry lands on and the entries
 * (NULL when the line was only scanned, not parsed: see fast_reply). */
struct reply {
	uint64_t e, t, from;
	bool has_deltas;
	json_t *deltas; /* borrowed */
};

/*
 * The deltas of reply rp, which lands on epoch rp->e: 1 when node n now
 * holds it, 0 when rp carries none (current, "full", or an older
 * coordinator), -1 when they do not follow the node's epoch or the
 * canonical map refused one (the node fetches the full map), 2 when the
 * canonical map needs entries a scanned reply does not give (parse it).
 * Entry k lands on epoch from + k; the canonical map applies those past
 * its own epoch (it is never behind a node: a node holds at most its
 * epoch), so every entry is applied once per simulator, as a real node
 * would apply each once.
 */
static int take_deltas(struct sim *s,
                       struct node *n,
                       const struct reply *rp,
                       size_t bytes)
{
	uint64_t from = rp->from, e = rp->e;
	size_t k, cnt = e >= from ? (size_t)(e - from + 1) : 0;
	bool moved = false;

	if (!rp->has_deltas)
		return 0;
	if (rp->deltas == NULL && e > s->map->epoch)
		return 2;
	if (s->cur != NULL) {
		s->cur->delta_bytes += bytes;
		s->cur->delta_replies++;
	}
	if (from != n->epoch + 1 || cnt == 0 ||
	    (rp->deltas != NULL && json_array_size(rp->deltas) != cnt)) {
		if (s->cur != NULL)
			s->cur->delta_errors++;
		return -1;
	}
	for (k = 0; k < cnt && from + k <= s->map->epoch; k++)
		;
	for (; k < cnt; k++) {
		struct narf_map_result res;

		if (narf_map_apply(s->map, json_array_get(rp->deltas, k),
		                   &res) != 0 ||
		    !res.changed || s->map->epoch != from + k) {
			if (s->cur != NULL)
				s->cur->delta_errors++;
			if (moved)
				canon_changed(s);
			return -1;
		}
		moved = true;
	}
	if (moved)
		canon_changed(s);
	node_holds(s, n, e);
	return 1;
}

/* The top-level "epoch" of a map reply, found without parsing the map:
 * the coordinator encodes {"ok":..,"epoch":E,"map":{...}} or
 * {"ok":..,"current":..,"epoch":E}; the top level comes first. */
static uint64_t scan_epoch(const char *line, size_t len)
{
	const char *end = line + (len < 128 ? len : 128);
	const char *p = memmem(line, (size_t)(end - line), "\"epoch\":", 8);

	return p ? strtoull(p + 8, NULL, 10) : 0;
}

/* What the node has to do by the canonical map, once it holds its epoch:
 * an isr add for the first peer outside an ISR, a handoff for slots with a
 * move. Deadlines start when the need is first seen. */
static void plan_work(struct sim *s, struct node *n, uint64_t now)
{
	const struct narf_map *m = s->map;
	bool isr = false, move = false;

	if (n->id == 0 || n->epoch != m->epoch || n->work_epoch == m->epoch)
		return;
	n->work_epoch = m->epoch;
	for (unsigned i = 0; i < NARF_SLOTS && !(isr && move); i++) {
		const struct narf_slot *sl = &m->slots[i];

		if (sl->primary != n->id)
			continue;
		if (sl->move != 0)
			move = true;
		if (sl->n_isr < sl->n_replicas)
			isr = true;
	}
	if (!isr)
		n->isr_due = 0;
	else if (n->isr_due == 0)
		n->isr_due = now + s->sync_ms;
	if (!move)
		n->handoff_due = 0;
	else if (n->handoff_due == 0)
		n->handoff_due = now + s->handoff_ms;
}

static bool in_isr(const struct narf_slot *sl, uint32_t peer)
{
	for (unsigned k = 0; k < sl->n_isr; k++)
		if (sl->isr[k] == peer)
			return true;
	return false;
}

/* Ranges of slots n leads where peer (0: the first found) replicates
 * outside the ISR, or where a move is set (peer ignored). */
static json_t *work_ranges(const struct narf_map *m,
                           uint32_t id,
                           bool handoff,
                           uint32_t *peer)
{
	json_t *a = json_array();
	int lo = -1;

	for (unsigned i = 0; i <= NARF_SLOTS; i++) {
		bool take = false;

		if (i < NARF_SLOTS && m->slots[i].primary == id) {
			const struct narf_slot *sl = &m->slots[i];

			if (handoff) {
				take = sl->move != 0;
			} else {
				for (unsigned k = 0; k < sl->n_replicas; k++) {
					uint32_t r = sl->replicas[k];

					if (in_isr(sl, r) ||
					    (*peer != 0 && r != *peer))
						continue;
					*peer = r;
					take = true;
					break;
				}
			}
		}
		if (take && lo < 0)
			lo = (int)i;
		if (!take && lo >= 0) {
			json_array_append_new(
			        a, json_pack("[i,i]", lo, (int)i - 1));
			lo = -1;
		}
	}
	return a;
}

static char *boot_id(const struct sim *s,
                     const struct node *n,
                     char *buf,
                     size_t size)
{
	snprintf(buf, size, "hbsim-%u-%u", s->seed, n->idx);
	return buf;
}

/* The next request of a ready node, if any is due: as membership.c, a map
 * fetch first, then commits, then the beat. */
static void node_next(struct sim *s, struct node *n, uint64_t now)
{
	char bid[64];

	if (n->pending != OP_NONE || n->st != N_READY || n->silent)
		return;
	if (n->id == 0) {
		char addr[32];

		json_t *msg;

		snprintf(addr, sizeof(addr), "127.0.0.1:%u", 40000 + n->idx);
		msg = json_pack("{s:s,s:s,s:s}", "op", "join", "addr", addr,
		                "boot_id", boot_id(s, n, bid, sizeof(bid)));
		if (msg != NULL && s->zones > 0) {
			char zone[16];

			snprintf(zone, sizeof(zone), "z%u",
			         n->idx % s->zones + 1);
			json_object_set_new(msg, "zone", json_string(zone));
		}
		node_send(n, msg, OP_JOIN);
		return;
	}
	if (n->want_map) {
		node_send(n,
		          json_pack("{s:s,s:I}", "op", "map", "epoch",
		                    (json_int_t)n->epoch),
		          OP_MAP);
		return;
	}
	plan_work(s, n, now);
	if (n->epoch == s->map->epoch && n->handoff_due != 0 &&
	    now >= n->handoff_due) {
		uint32_t peer = 0;

		n->handoff_due = 0;
		node_send(n,
		          json_pack("{s:s,s:I,s:s,s:o}", "op", "handoff",
		                    "node", (json_int_t)n->id, "boot_id",
		                    boot_id(s, n, bid, sizeof(bid)), "slots",
		                    work_ranges(s->map, n->id, true, &peer)),
		          OP_HANDOFF);
		return;
	}
	if (n->epoch == s->map->epoch && n->isr_due != 0 && now >= n->isr_due) {
		uint32_t peer = 0;
		json_t *r = work_ranges(s->map, n->id, false, &peer);

		n->isr_due = 0;
		if (peer != 0) {
			node_send(n,
			          json_pack("{s:s,s:I,s:s,s:I,s:o,s:I}", "op",
			                    "isr", "node", (json_int_t)n->id,
			                    "boot_id",
			                    boot_id(s, n, bid, sizeof(bid)),
			                    "peer", (json_int_t)peer, "add", r,
			                    "since", (json_int_t)n->epoch),
			          OP_ISR);
			return;
		}
		json_decref(r);
	}
	if (now >= n->next_beat) {
		/* +-10% jitter around the interval. */
		unsigned j = s->hb_ms / 5 + 1;

		n->next_beat =
		        now + s->hb_ms - s->hb_ms / 10 + (unsigned)rand() % j;
		node_send(n,
		          json_pack("{s:s,s:I,s:s,s:I}", "op", "heartbeat",
		                    "node", (json_int_t)n->id, "boot_id",
		                    boot_id(s, n, bid, sizeof(bid)), "epoch",
		                    (json_int_t)n->epoch),
		          OP_BEAT);
		n->beat_sent = n->sent_ms;
	}
}

/* --- replies ------------------------------------------------------------ */

/* An error reply: follow a not_leader redirect, re-join on unknown_node,
 * back off on anything else. */
static void node_error(struct node *n, json_t *r)
{
	const char *err = json_string_value(json_object_get(r, "error"));
	const char *leader = json_string_value(json_object_get(r, "leader"));

	if (err != NULL && strcmp(err, "not_leader") == 0) {
		if (leader != NULL && strcmp(leader, n->target) != 0) {
			snprintf(n->target, sizeof(n->target), "%s", leader);
			node_disconnect(n, false, 0);
		} else {
			node_disconnect(n, true, 50);
		}
	} else if (err != NULL && strcmp(err, "no_quorum") == 0) {
		node_disconnect(n, true, 50);
	} else if (err != NULL && strcmp(err, "unknown_node") == 0) {
		n->id = 0;
	} else {
		n->retry_at = uv_now(&n->sim->loop) + 50;
	}
}

static void watcher_reply(struct sim *s, struct node *w, json_t *r)
{
	const char *role = json_string_value(json_object_get(r, "role"));
	uint64_t term =
	        (uint64_t)json_integer_value(json_object_get(r, "term"));

	w->w_term = term;
	if (term > s->max_term) {
		if (s->max_term != 0 && s->cur != NULL)
			s->cur->elections += term - s->max_term;
		s->max_term = term;
	}
	/* A deposed leader says "leader" until its own timers fire: only one
	 * of the newest term seen counts. */
	if (role != NULL && strcmp(role, "leader") == 0 &&
	    term >= s->max_term && s->leader != (int)w->idx) {
		if (s->leader >= 0 && s->cur != NULL)
			s->cur->leader_changes++;
		s->leader = (int)w->idx;
	}
}

static void auth_reply(struct node *n, json_t *r)
{
	struct sim *s = n->sim;
	unsigned char nonce[NARF_AUTH_NONCE_SIZE], mac[NARF_AUTH_MAC_SIZE];
	unsigned char out[NARF_AUTH_MAC_SIZE];
	char hex[NARF_AUTH_MAC_HEX + 1];
	const char *nh = json_string_value(json_object_get(r, "nonce"));
	const char *p = json_string_value(json_object_get(r, "proof"));

	if (!json_is_true(json_object_get(r, "ok")) || nh == NULL ||
	    p == NULL ||
	    narf_auth_unhex(nh, strlen(nh), nonce, sizeof(nonce)) != 0 ||
	    narf_auth_unhex(p, strlen(p), mac, sizeof(mac)) != 0 ||
	    narf_auth_client_prove(&n->auth, &s->keys, nonce, mac, out) != 0) {
		snprintf(s->why, sizeof(s->why),
		         "coordinator %s refused our node key, or failed to "
		         "prove the secret (is --secret-file this cluster's?)",
		         n->target);
		s->failed = s->stop = true;
		return;
	}
	narf_auth_hex(out, NARF_AUTH_MAC_SIZE, hex);
	n->st = N_AUTH2;
	node_send(n, json_pack("{s:s,s:s}", "op", "auth", "proof", hex),
	          OP_PROOF);
}

/* A beat, map (with deltas), isr or handoff reply that said ok. */
static int on_reply(struct node *n,
                    enum op op,
                    const struct reply *rp,
                    size_t bytes,
                    uint64_t now)
{
	struct sim *s = n->sim;
	int d = 0;

	if (op == OP_BEAT) {
		if (s->cur != NULL)
			push_double(&s->cur->rtt, &s->cur->n_rtt,
			            &s->cur->cap_rtt,
			            (double)(now - n->sent_ms));
		if (rp->t >= n->term && rp->e >= n->epoch) {
			if (rp->e > n->epoch &&
			    (d = take_deltas(s, n, rp, bytes)) == 2)
				return 2;
			n->term = rp->t;
			if (rp->e > n->epoch && d <= 0)
				n->want_map = true;
			else if (n->beat_sent > n->lease)
				n->lease = n->beat_sent; /* one round trip */
		}
	} else if (op == OP_MAP) {
		/* A map request answered with deltas (protocol "delta"). */
		if (rp->e > n->epoch && (d = take_deltas(s, n, rp, bytes)) == 2)
			return 2;
		n->want_map = rp->e > n->epoch && d <= 0;
		if (!n->want_map && n->beat_sent > n->lease)
			n->lease = n->beat_sent;
	} else if (op == OP_ISR || op == OP_HANDOFF) {
		if (rp->e > n->epoch && (d = take_deltas(s, n, rp, bytes)) == 2)
			return 2;
		if (op == OP_ISR)
			n->isr_adds++;
		else
			n->handoffs++;
		if (rp->e > n->epoch && d <= 0)
			n->want_map = true;
	}
	return 0;
}

/* The number after key in [p, end), or 0. */
static uint64_t scan_key(const char *p, const char *end, const char *key)
{
	size_t kl = strlen(key);
	const char *q = memmem(p, (size_t)(end - p), key, kl);

	return q != NULL ? strtoull(q + kl, NULL, 10) : 0;
}

/*
 * A reply carrying deltas whose entries the canonical map already holds:
 * read its fixed fields (they come before the entries) without parsing
 * the entries, so 1,000 fake nodes do not each parse every entry on one
 * core. false: the line needs a full parse.
 */
static bool fast_reply(struct node *n,
                       enum op op,
                       const char *line,
                       size_t len,
                       uint64_t now)
{
	const char *d = memmem(line, len < 512 ? len : 512, "\"deltas\":[", 10);
	struct reply rp = {.has_deltas = true};

	if (d == NULL ||
	    (op != OP_BEAT && op != OP_MAP && op != OP_ISR &&
	     op != OP_HANDOFF) ||
	    memmem(line, (size_t)(d - line), "\"ok\":true", 9) == NULL)
		return false;
	rp.e = scan_key(line, d, "\"epoch\":");
	rp.t = scan_key(line, d, "\"term\":");
	rp.from = scan_key(line, d, "\"from\":");
	if (rp.e > n->sim->map->epoch)
		return false;
	return on_reply(n, op, &rp, len + 1, now) != 2;
}

/* Does a reply line carry deltas? The fixed fields come first and the
 * entries last, so the key is in the first few hundred bytes. */
static bool has_deltas(const char *line, size_t len)
{
	return memmem(line, len < 512 ? len : 512, "\"deltas\":[", 10) != NULL;
}

/* One reply line (len bytes, no newline) for the request in flight. */
static void node_line(struct node *n, const char *line, size_t len)
{
	struct sim *s = n->sim;
	enum op op = n->pending;
	uint64_t now = narf_clock_ms();
	json_error_t jerr;
	json_t *r;

	n->pending = OP_NONE;
	if (fast_reply(n, op, line, len, now))
		return;
	if (op == OP_MAP && !has_deltas(line, len)) {
		/* Only "ok" and the epoch matter, unless the map is newer than
		 * the canonical one. */
		uint64_t e = scan_epoch(line, len);

		if (s->cur != NULL && memmem(line, len < 128 ? len : 128,
		                             "\"map\":", 6) != NULL) {
			s->cur->map_bytes += len + 1;
			s->cur->maps++;
		}
		if (memmem(line, len < 32 ? len : 32, "\"ok\":true", 9) ==
		    NULL) {
			r = json_loadb(line, len, 0, &jerr);
			if (r != NULL)
				node_error(n, r);
			json_decref(r);
			return;
		}
		if (e > s->map->epoch)
			canon_update(s, line, len);
		n->want_map = false;
		if (e > s->map->epoch)
			e = s->map->epoch; /* an unparsable map: hold ours */
		node_holds(s, n, e);
		if (n->epoch >= e && n->beat_sent > n->lease)
			n->lease = n->beat_sent;
		return;
	}
	r = json_loadb(line, len, 0, &jerr);
	if (r == NULL) {
		node_disconnect(n, true, 100);
		return;
	}
	if (op == OP_AUTH) {
		auth_reply(n, r);
	} else if (op == OP_PROOF) {
		n->st = json_is_true(json_object_get(r, "ok")) ? N_READY
		                                               : N_IDLE;
	} else if (!json_is_true(json_object_get(r, "ok"))) {
		node_error(n, r);
	} else if (op == OP_PING) {
		watcher_reply(s, n, r);
	} else if (op == OP_JOIN) {
		n->id = (uint32_t)json_integer_value(
		        json_object_get(r, "node"));
		n->want_map = true;
	} else {
		struct reply rp = {
		        .e = (uint64_t)json_integer_value(
		                json_object_get(r, "epoch")),
		        .t = (uint64_t)json_integer_value(
		                json_object_get(r, "term")),
		        .from = (uint64_t)json_integer_value(
		                json_object_get(r, "from")),
		        .deltas = json_object_get(r, "deltas"),
		};

		rp.has_deltas = json_is_array(rp.deltas);
		on_reply(n, op, &rp, len + 1, now);
	}
	json_decref(r);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct node *n = h->data;

	(void)suggested;
	if (n->in_cap - n->in_len < 65536) {
		n->in_cap = n->in_cap ? 2 * n->in_cap : 131072;
		n->in = xrealloc(n->in, n->in_cap);
	}
	*buf = uv_buf_init(n->in + n->in_len,
	                   (unsigned)(n->in_cap - n->in_len));
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct node *n = st->data;
	size_t start = 0;

	(void)buf;
	if (n == NULL)
		return;
	if (nread < 0) {
		node_disconnect(n, true, 50);
		return;
	}
	n->in_len += (size_t)nread;
	for (size_t i = n->in_len - (size_t)nread; i < n->in_len; i++) {
		if (n->in[i] != '\n')
			continue;
		node_line(n, n->in + start, i - start);
		if ((uv_stream_t *)n->tcp != st)
			return; /* disconnected */
		start = i + 1;
	}
	memmove(n->in, n->in + start, n->in_len - start);
	n->in_len -= start;
	if (n->in_len > MAX_LINE)
		node_disconnect(n, true, 100);
}

static void connect_cb(uv_connect_t *req, int status)
{
	struct node *n = req->data;
	bool stale = n->tcp != (uv_tcp_t *)req->handle;

	free(req);
	if (stale)
		return;
	if (status != 0 ||
	    uv_read_start((uv_stream_t *)n->tcp, alloc_cb, read_cb) != 0) {
		node_disconnect(n, true, 100);
		return;
	}
	uv_tcp_nodelay(n->tcp, 1);
	send_hello(n);
}

static void node_connect(struct node *n)
{
	struct sockaddr_in sa;
	char host[NARF_ADDR_SIZE];
	char *colon;
	uv_connect_t *req;

	snprintf(host, sizeof(host), "%s", n->target);
	colon = strrchr(host, ':');
	if (colon == NULL)
		return;
	*colon = '\0';
	if (uv_ip4_addr(host, atoi(colon + 1), &sa) != 0) {
		node_disconnect(n, true, 1000);
		return;
	}
	n->tcp = xrealloc(NULL, sizeof(*n->tcp));
	uv_tcp_init(&n->sim->loop, n->tcp);
	n->tcp->data = n;
	req = xrealloc(NULL, sizeof(*req));
	req->data = n;
	n->st = N_CONNECTING;
	n->sent_ms = narf_clock_ms();
	n->pending = OP_AUTH; /* the connect counts as the hello's wait */
	if (uv_tcp_connect(req, n->tcp, (const struct sockaddr *)&sa,
	                   connect_cb) != 0) {
		free(req);
		node_disconnect(n, true, 100);
	}
}

static unsigned node_timeout(const struct sim *s)
{
	return s->map->settings.node_timeout_ms;
}

void node_tick(struct sim *s, struct node *n, uint64_t now)
{
	uint64_t limit;

	if (!n->active || n->st == N_DEAD)
		return;
	if (n->st == N_IDLE) {
		if (now >= n->retry_at)
			node_connect(n);
		return;
	}
	limit = (n->pending == OP_ISR || n->pending == OP_HANDOFF ||
	         n->pending == OP_JOIN)
	                ? COMMIT_TIMEOUT_MS
	                : narf_reply_timeout_ms(node_timeout(s));
	if (n->pending != OP_NONE && now - n->sent_ms > limit) {
		if (s->cur != NULL && n->pending != OP_AUTH)
			s->cur->timeouts++;
		node_disconnect(n, true, 0);
		return;
	}
	if (n->watcher) {
		if (n->pending == OP_NONE && n->st == N_READY &&
		    now >= n->next_beat) {
			n->next_beat = now + 200;
			node_send(n, json_pack("{s:s}", "op", "ping"), OP_PING);
		}
		return;
	}
	if (now >= n->retry_at)
		node_next(s, n, now);
	/* The lease rule of membership.c, for live nodes that had one. */
	if (!n->silent && n->lease != 0) {
		bool lapsed = now - n->lease >= narf_lease_ms(node_timeout(s));

		if (lapsed && !n->lapsed && s->cur != NULL)
			s->cur->lapses++;
		n->lapsed = lapsed;
	}
}
