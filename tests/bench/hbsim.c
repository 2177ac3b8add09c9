/*
 * narf-hbsim: N fake data nodes against a real coordinator trio, to measure
 * what the coordinators' side of membership costs as N grows (issue 17,
 * docs/scale-plan.md section 6). `scripts/bench.sh scale` runs it.
 *
 * Each fake node speaks today's protocol ("full" mode) as datanode/
 * membership.c does: its own TCP connection, the node role's auth exchange
 * (common/auth.c, with the node key or the cluster secret), `join` with a
 * fake address 127.0.0.1:P and boot id hbsim-<seed>-<i>, then a heartbeat
 * every --heartbeat-ms with +-10% jitter, one request in flight; when a
 * heartbeat reply names a newer epoch it fetches the whole map (`map`), and
 * its lease renews once its map holds the reply's epoch. A `not_leader`
 * reply with a leader address moves it there; a closed connection or a
 * reply late past the reply timeout (half the node timeout for heartbeats
 * and maps, 1 s for commits) moves it to the next coordinator.
 *
 * The model of the node's data work is deliberately simple:
 * - One canonical map per simulator: the first node to receive an epoch's
 *   map parses it (narf_map_from_json); every other node scans its reply
 *   only for the top-level "epoch" and counts bytes, so the simulator does
 *   not melt before the leader does.
 * - When a node holds the canonical epoch, it looks at the slots it leads:
 *   for the first replica outside a slot's ISR it sends `isr add` (all such
 *   slots of that peer, `since` = its epoch) --sync-ms after it first saw
 *   the need (a modelled sync, no data moves); for slots with `move` set it
 *   sends `handoff` --handoff-ms after. One of each in flight at most.
 * - The lease rule is membership.c's: the lease is the send time of the
 *   last answered heartbeat whose epoch the node's map holds, and it lapses
 *   narf_lease_ms(node_timeout) later. A live node whose lease lapses counts
 *   one lapse.
 *
 * Phases: "join" (all nodes join; ends when every node is up in the map
 * and the map is quiet: no epoch moved for 2 s and no slot has a move or
 * a copy outside its ISR; or after --settle-s), then the scenario:
 * steady (--phase-s of nothing), add (one more node joins; ends 2 s after
 * the last epoch change), silent (the first node the map has up stops
 * sending but keeps its socket; ends once the map marks it down and no epoch
 * moved for 2 s), lost10 (ten nodes close their sockets; ends when all ten are
 * down and the map is quiet). Every phase is capped at --phase-cap-s.
 *
 * Three watcher connections (node role) ping the three coordinators every
 * 200 ms for the leader and term; leader CPU and RSS come from
 * /proc/<pid>/stat and /proc/<pid>/status of the leader's pid, the pids
 * given by --pids in --coords order. Output: one table row per phase and,
 * with --json, one JSON line.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include <jansson.h>

#include "common/auth.h"
#include "common/clock.h"
#include "common/errors.h"
#include "common/frame.h"
#include "common/map.h"

#define PROG "narf-hbsim"
#define MAX_LINE (64u << 20)
#define TICK_MS 5
#define QUIET_MS 2000
#define COMMIT_TIMEOUT_MS 1000
#define LOST_N 10

enum nstate { N_IDLE, N_CONNECTING, N_AUTH, N_AUTH2, N_READY, N_DEAD };
enum op {
	OP_NONE,
	OP_AUTH,
	OP_PROOF,
	OP_JOIN,
	OP_BEAT,
	OP_MAP,
	OP_ISR,
	OP_HANDOFF,
	OP_PING
};

struct sim;

/* One fake data node (or a watcher, when watcher is set). */
struct node {
	struct sim *sim; /* borrowed */
	unsigned idx;
	bool watcher;
	uv_tcp_t *tcp; /* owned; freed in its close callback */
	enum nstate st;
	char target[NARF_ADDR_SIZE];
	unsigned next_coord;
	struct narf_auth auth;
	char *in; /* owned: the partial line */
	size_t in_len, in_cap;
	enum op pending;
	uint64_t sent_ms;
	uint64_t retry_at;
	/* Membership. */
	uint32_t id;
	bool active;    /* false: not started, silenced or closed */
	bool silent;    /* keeps its socket, sends nothing */
	uint64_t epoch; /* the epoch its map holds */
	uint64_t term;
	bool want_map;
	uint64_t next_beat;
	uint64_t beat_sent, lease;
	bool lapsed;
	/* Work seen in the canonical map. */
	uint64_t work_epoch;
	uint64_t isr_due, handoff_due;
	uint64_t handoffs, isr_adds;
	/* Watcher: what its coordinator says. */
	uint64_t w_term;
	int w_leader;
};

struct phase {
	const char *name;
	uint64_t t0, t1;
	uint64_t cpu; /* leader utime+stime (ticks) over samples of one pid */
	double *rtt;  /* owned */
	size_t n_rtt, cap_rtt;
	uint64_t map_bytes, maps;
	uint64_t epoch0, epoch1;
	uint64_t lapses, elections, leader_changes;
	uint64_t rss_max_kb;
	double detect_ms; /* silent/lost10: -1 when not seen */
	double spread_p50, spread_p99, spread_max; /* ms, 99% hold */
	uint64_t isr_adds, handoffs;
	uint64_t max_tick_lag;
	uint64_t timeouts; /* requests unanswered within the reply limit */
	bool capped;
};

struct sim {
	uv_loop_t loop;
	uv_timer_t cron;
	uv_signal_t sigint, sigterm;
	struct narf_auth_keys keys;
	char coords[3][NARF_ADDR_SIZE];
	int pids[3];
	unsigned n_coords;
	unsigned n, n_all;  /* nodes, nodes + the one "add" joins */
	struct node *nodes; /* owned, n_all */
	struct node watch[3];
	unsigned hb_ms, sync_ms, handoff_ms, phase_s, cap_s, settle_s;
	unsigned seed;
	char scenario[16];
	bool json;
	/* The canonical map. */
	struct narf_map *map; /* owned */
	uint64_t map_changed; /* when its epoch last moved */
	bool settled;         /* no slot with a move or a copy syncing */
	/* Epoch spread: when the first node held each epoch, and whether 99%
	 * of live nodes did; a ring indexed by epoch. */
#define SPREAD_RING 8192
	uint64_t first_ms[SPREAD_RING];
	uint32_t holders[SPREAD_RING];
	uint64_t ring_base; /* epochs below are forgotten */
	double *spreads;
	size_t n_spreads, cap_spreads;
	/* Leader tracking. */
	int leader;         /* index into coords, -1 unknown */
	int cpu_pid;        /* the pid of the last CPU sample */
	uint64_t cpu_last;  /* its utime+stime then */
	uint64_t sample_ms; /* when /proc was last read */
	uint64_t max_term;
	/* Scenario state. */
	unsigned n_phases;
	struct phase ph[4];
	struct phase *cur;
	uint64_t silence_ms; /* when the silenced nodes stopped */
	unsigned victims[LOST_N], n_victims;
	uint64_t last_tick;
	bool stop, failed;
	char why[256];
};

static volatile sig_atomic_t stopping;

/* --- small helpers ------------------------------------------------------ */

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n);

	if (q == NULL) {
		fprintf(stderr, PROG ": out of memory\n");
		exit(1);
	}
	return q;
}

static void push_double(double **a, size_t *n, size_t *cap, double v)
{
	if (*n == *cap) {
		*cap = *cap ? 2 * *cap : 1024;
		*a = xrealloc(*a, *cap * sizeof(**a));
	}
	(*a)[(*n)++] = v;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(double *a, size_t n, double p)
{
	if (n == 0)
		return -1;
	qsort(a, n, sizeof(*a), cmp_double);
	return a[(size_t)((double)(n - 1) * p)];
}

/* utime+stime (clock ticks) of pid, 0 when unreadable. */
static uint64_t proc_cpu(int pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut = 0, st = 0;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (pid <= 0 || (f = fopen(path, "r")) == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (p == NULL ||
	    sscanf(p + 2,
	           "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
	           &st) != 2)
		return 0;
	return ut + st;
}

static uint64_t proc_rss_kb(int pid)
{
	char path[64], line[256];
	unsigned long long kb = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	if (pid <= 0 || (f = fopen(path, "r")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %llu", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static int leader_pid(const struct sim *s)
{
	return s->leader >= 0 ? s->pids[s->leader] : 0;
}

/* --- connections -------------------------------------------------------- */

static void node_send(struct node *n, json_t *msg, enum op op);
static void node_connect(struct node *n);

static void close_cb(uv_handle_t *h)
{
	free(h);
}

/* Drop the connection; the node reconnects (to target) at retry_at. */
static void node_disconnect(struct node *n, bool next, unsigned delay_ms)
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

/* Install a map reply's map as the canonical one when it is newer. */
static void canon_update(struct sim *s, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *r = json_loadb(line, len, 0, &jerr);
	json_t *m = r ? json_object_get(r, "map") : NULL;
	char errmsg[NARF_ERRMSG_SIZE];

	if (m != NULL && narf_map_from_json(s->map, m, errmsg) == 0) {
		/* Forget the ring slots of epochs now far behind. */
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
	json_decref(r);
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

		snprintf(addr, sizeof(addr), "127.0.0.1:%u", 40000 + n->idx);
		node_send(n,
		          json_pack("{s:s,s:s,s:s}", "op", "join", "addr", addr,
		                    "boot_id", boot_id(s, n, bid, sizeof(bid))),
		          OP_JOIN);
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

/* One reply line (len bytes, no newline) for the request in flight. */
static void node_line(struct node *n, const char *line, size_t len)
{
	struct sim *s = n->sim;
	enum op op = n->pending;
	uint64_t now = narf_clock_ms();
	json_error_t jerr;
	json_t *r;

	n->pending = OP_NONE;
	if (op == OP_MAP) {
		/* Only "ok" and the epoch matter, unless the map is newer than
		 * the canonical one. */
		uint64_t e = scan_epoch(line, len);

		if (s->cur != NULL) {
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
	} else if (op == OP_BEAT) {
		uint64_t e = (uint64_t)json_integer_value(
		        json_object_get(r, "epoch"));
		uint64_t t = (uint64_t)json_integer_value(
		        json_object_get(r, "term"));

		if (s->cur != NULL)
			push_double(&s->cur->rtt, &s->cur->n_rtt,
			            &s->cur->cap_rtt,
			            (double)(now - n->sent_ms));
		if (t >= n->term && e >= n->epoch) {
			n->term = t;
			if (e > n->epoch)
				n->want_map = true;
			else if (n->beat_sent > n->lease)
				n->lease = n->beat_sent;
		}
	} else if (op == OP_ISR || op == OP_HANDOFF) {
		uint64_t e = (uint64_t)json_integer_value(
		        json_object_get(r, "epoch"));

		if (op == OP_ISR)
			n->isr_adds++;
		else
			n->handoffs++;
		if (e > n->epoch)
			n->want_map = true;
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

/* --- the cron ----------------------------------------------------------- */

static unsigned node_timeout(const struct sim *s)
{
	return s->map->settings.node_timeout_ms;
}

static void node_tick(struct sim *s, struct node *n, uint64_t now)
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

static const struct narf_map_node *canon_node(const struct sim *s, uint32_t id)
{
	return id ? narf_map_node_get(s->map, id) : NULL;
}

/* Are the first k nodes' ids (or all started nodes) up in the map? */
static bool all_up(const struct sim *s)
{
	for (unsigned i = 0; i < s->n_all; i++) {
		const struct narf_map_node *mn;

		if (!s->nodes[i].active || s->nodes[i].silent)
			continue;
		mn = canon_node(s, s->nodes[i].id);
		if (mn == NULL || mn->state != NARF_NODE_UP)
			return false;
	}
	return true;
}

static bool victims_down(const struct sim *s)
{
	for (unsigned i = 0; i < s->n_victims; i++) {
		const struct narf_map_node *mn =
		        canon_node(s, s->nodes[s->victims[i]].id);

		if (mn != NULL && mn->state == NARF_NODE_UP)
			return false;
	}
	return true;
}

static void sample_leader(struct sim *s, uint64_t now);

static void phase_begin(struct sim *s, const char *name)
{
	struct phase *p = &s->ph[s->n_phases++];

	memset(p, 0, sizeof(*p));
	p->name = name;
	p->t0 = uv_now(&s->loop);
	p->epoch0 = s->map->epoch;
	p->detect_ms = -1;
	s->cur = p;
	s->n_spreads = 0;
	s->map_changed = p->t0;
}

static void phase_end(struct sim *s, bool capped)
{
	struct phase *p = s->cur;

	p->t1 = uv_now(&s->loop);
	sample_leader(s, p->t1);
	p->epoch1 = s->map->epoch;
	p->capped = capped;
	p->spread_p50 = pct(s->spreads, s->n_spreads, 0.5);
	p->spread_p99 = pct(s->spreads, s->n_spreads, 0.99);
	p->spread_max = pct(s->spreads, s->n_spreads, 1.0);
	for (unsigned i = 0; i < s->n_all; i++) {
		p->isr_adds += s->nodes[i].isr_adds;
		p->handoffs += s->nodes[i].handoffs;
		s->nodes[i].isr_adds = s->nodes[i].handoffs = 0;
	}
	s->cur = NULL;
}

/* Start the scenario's event at the start of its phase. */
static void scenario_start(struct sim *s, uint64_t now)
{
	if (strcmp(s->scenario, "add") == 0) {
		s->nodes[s->n].active = true;
	} else if (strcmp(s->scenario, "silent") == 0) {
		/* A node the map has up: one already marked down (a melted
		 * join) would be "detected" at once. */
		unsigned v = 0;

		for (unsigned i = 0; i < s->n; i++) {
			const struct narf_map_node *mn =
			        canon_node(s, s->nodes[i].id);

			if (mn != NULL && mn->state == NARF_NODE_UP) {
				v = i;
				break;
			}
		}
		s->nodes[v].silent = true;
		s->victims[0] = v;
		s->n_victims = 1;
	} else if (strcmp(s->scenario, "lost10") == 0) {
		for (unsigned i = 0; i < LOST_N && i < s->n; i++) {
			node_disconnect(&s->nodes[i], false, 0);
			s->nodes[i].active = false;
			s->nodes[i].st = N_DEAD;
			s->victims[s->n_victims++] = i;
		}
	}
	s->silence_ms = now;
}

/* The phases' progress, once per tick. */
static void phases_tick(struct sim *s, uint64_t now)
{
	struct phase *p = s->cur;
	uint64_t age = now - p->t0;
	bool quiet = now - s->map_changed >= QUIET_MS && s->settled;
	bool done = false;

	if (s->n_phases == 1) {
		if (age >= (uint64_t)s->settle_s * 1000) {
			phase_end(s, true);
		} else if (all_up(s) && quiet) {
			phase_end(s, false);
		} else {
			return;
		}
		phase_begin(s, s->scenario);
		scenario_start(s, now);
		return;
	}
	if (strcmp(s->scenario, "steady") == 0) {
		done = age >= (uint64_t)s->phase_s * 1000;
	} else if (strcmp(s->scenario, "add") == 0) {
		done = all_up(s) && quiet && age >= QUIET_MS;
	} else {
		if (p->detect_ms < 0 && s->map_changed > s->silence_ms &&
		    victims_down(s))
			p->detect_ms = (double)(s->map_changed - s->silence_ms);
		done = p->detect_ms >= 0 && quiet;
	}
	if (done || age >= (uint64_t)s->cap_s * 1000) {
		phase_end(s, !done);
		s->stop = true;
	}
}

/* Every 100 ms: the leader's CPU since the last sample (only when the
 * leader is the same process: a new leader's counters start elsewhere)
 * and its RSS. */
static void sample_leader(struct sim *s, uint64_t now)
{
	int pid = leader_pid(s);
	uint64_t cpu = proc_cpu(pid), rss;

	s->sample_ms = now;
	if (s->cur != NULL && pid == s->cpu_pid && cpu >= s->cpu_last)
		s->cur->cpu += cpu - s->cpu_last;
	s->cpu_pid = pid;
	s->cpu_last = cpu;
	if (s->cur != NULL && (rss = proc_rss_kb(pid)) > s->cur->rss_max_kb)
		s->cur->rss_max_kb = rss;
}

static void cron_cb(uv_timer_t *t)
{
	struct sim *s = t->data;
	uint64_t now = uv_now(&s->loop);

	if (s->last_tick != 0 && s->cur != NULL &&
	    now - s->last_tick > s->cur->max_tick_lag + TICK_MS)
		s->cur->max_tick_lag = now - s->last_tick - TICK_MS;
	s->last_tick = now;
	for (unsigned i = 0; i < s->n_coords; i++)
		node_tick(s, &s->watch[i], now);
	for (unsigned i = 0; i < s->n_all; i++)
		node_tick(s, &s->nodes[i], now);
	if (now - s->sample_ms >= 100)
		sample_leader(s, now);
	if (s->cur == NULL && s->leader >= 0 && !s->stop) {
		phase_begin(s, "join");
		for (unsigned i = 0; i < s->n; i++)
			s->nodes[i].active = true;
	} else if (s->cur != NULL) {
		phases_tick(s, now);
	}
	if (stopping) {
		if (s->cur != NULL)
			phase_end(s, true);
		snprintf(s->why, sizeof(s->why), "interrupted");
		s->failed = s->stop = true;
	}
	if (s->stop) {
		uv_stop(&s->loop);
	}
}

/* --- output ------------------------------------------------------------- */

static void report(struct sim *s)
{
	long hz = sysconf(_SC_CLK_TCK);
	json_t *out = json_object(), *arr = json_array();

	printf("%-7s %5s %6s %7s %7s %7s %9s %6s %6s %7s %7s %5s %6s %5s %7s "
	       "%7s %6s %6s\n",
	       "phase", "nodes", "secs", "cpu", "rtt50", "rtt99", "rttmax",
	       "epochs", "maps", "mapMB", "sprd99", "lapse", "elect", "ldrch",
	       "detect", "rssMB", "lagms", "tmouts");
	for (unsigned i = 0; i < s->n_phases; i++) {
		struct phase *p = &s->ph[i];
		double secs = (double)(p->t1 - p->t0) / 1000.0;
		double cpu = secs > 0 && hz > 0
		                     ? (double)p->cpu / (double)hz / secs
		                     : 0;
		double p50 = pct(p->rtt, p->n_rtt, 0.5);
		double p99 = pct(p->rtt, p->n_rtt, 0.99);
		double mx = pct(p->rtt, p->n_rtt, 1.0);

		printf("%-7s %5u %6.1f %7.2f %7.0f %7.0f %9.0f %6llu %6llu "
		       "%7.1f %7.0f %5llu %6llu %5llu %7.0f %7.1f %6llu "
		       "%6llu%s\n",
		       p->name, s->n, secs, cpu, p50, p99, mx,
		       (unsigned long long)(p->epoch1 - p->epoch0),
		       (unsigned long long)p->maps, (double)p->map_bytes / 1e6,
		       p->spread_p99, (unsigned long long)p->lapses,
		       (unsigned long long)p->elections,
		       (unsigned long long)p->leader_changes, p->detect_ms,
		       (double)p->rss_max_kb / 1024.0,
		       (unsigned long long)p->max_tick_lag,
		       (unsigned long long)p->timeouts,
		       p->capped ? "  (capped)" : "");
		json_array_append_new(
		        arr,
		        json_pack(
		                "{s:s,s:f,s:f,s:I,s:f,s:f,s:f,s:I,s:I,s:I,"
		                "s:f,s:f,s:I,s:I,s:I,s:f,s:I,s:I,s:I,s:I,s:I,"
		                "s:b}",
		                "phase", p->name, "secs", secs, "leader_cpu",
		                cpu, "beats", (json_int_t)p->n_rtt,
		                "rtt_p50_ms", p50, "rtt_p99_ms", p99,
		                "rtt_max_ms", mx, "epochs",
		                (json_int_t)(p->epoch1 - p->epoch0), "maps",
		                (json_int_t)p->maps, "map_bytes",
		                (json_int_t)p->map_bytes, "spread99_p50_ms",
		                p->spread_p50, "spread99_p99_ms", p->spread_p99,
		                "lease_lapses", (json_int_t)p->lapses,
		                "term_changes", (json_int_t)p->elections,
		                "leader_changes", (json_int_t)p->leader_changes,
		                "detect_ms", p->detect_ms, "leader_rss_kb",
		                (json_int_t)p->rss_max_kb, "isr_adds",
		                (json_int_t)p->isr_adds, "handoffs",
		                (json_int_t)p->handoffs, "sim_lag_ms",
		                (json_int_t)p->max_tick_lag, "timeouts",
		                (json_int_t)p->timeouts, "capped", p->capped));
	}
	unsigned joined = 0;

	for (unsigned i = 0; i < s->n_all; i++)
		joined += s->nodes[i].id != 0;
	json_object_set_new(out, "nodes", json_integer(s->n));
	json_object_set_new(out, "joined", json_integer(joined));
	json_object_set_new(out, "scenario", json_string(s->scenario));
	json_object_set_new(out, "heartbeat_ms", json_integer(s->hb_ms));
	json_object_set_new(out, "protocol", json_string("full"));
	json_object_set_new(out, "epoch",
	                    json_integer((json_int_t)s->map->epoch));
	json_object_set_new(out, "term", json_integer((json_int_t)s->max_term));
	json_object_set_new(out, "phases", arr);
	if (s->failed)
		json_object_set_new(out, "error", json_string(s->why));
	if (s->json) {
		char *line = json_dumps(out, JSON_COMPACT);

		printf("%s\n", line ? line : "{}");
		free(line);
	}
	json_decref(out);
}

/* --- arguments ---------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: " PROG
	        " --coords A,B,C --secret-file F --nodes N "
	        "[options]\n"
	        "  --coords LIST       the coordinators' API addresses "
	        "(host:port, 1 to 3)\n"
	        "  --secret-file F     the cluster secret or a node key file\n"
	        "  --pids LIST         the coordinators' pids, in --coords "
	        "order (leader CPU, RSS)\n"
	        "  --nodes N           fake data nodes (1..20000)\n"
	        "  --scenario S        steady | add | silent | lost10 "
	        "(default steady)\n"
	        "  --heartbeat-ms MS   heartbeat interval (default 100)\n"
	        "  --sync-ms MS        modelled sync time before isr add "
	        "(default 50)\n"
	        "  --handoff-ms MS     delay before handoff (default 5)\n"
	        "  --phase-s S         steady phase length (default 30)\n"
	        "  --phase-cap-s S     cap of every other phase (default 120)\n"
	        "  --settle-s S        cap of the join phase (default 120)\n"
	        "  --seed N            boot ids and jitter (default: pid)\n"
	        "  --json              also print one JSON line\n"
	        "  --help\n");
}

static unsigned num(const char *flag, const char *v, unsigned lo, unsigned hi)
{
	char *end;
	unsigned long x;

	errno = 0;
	x = strtoul(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || x < lo || x > hi) {
		fprintf(stderr,
		        PROG ": %s must be a number in %u..%u, not '%s'\n",
		        flag, lo, hi, v);
		exit(2);
	}
	return (unsigned)x;
}

static void parse_args(struct sim *s, int argc, char **argv)
{
	static const struct option opts[] = {
	        {"coords", 1, NULL, 'c'},   {"secret-file", 1, NULL, 'k'},
	        {"pids", 1, NULL, 'p'},     {"nodes", 1, NULL, 'n'},
	        {"scenario", 1, NULL, 's'}, {"heartbeat-ms", 1, NULL, 'b'},
	        {"sync-ms", 1, NULL, 'y'},  {"handoff-ms", 1, NULL, 'o'},
	        {"phase-s", 1, NULL, 'P'},  {"phase-cap-s", 1, NULL, 'C'},
	        {"settle-s", 1, NULL, 'S'}, {"seed", 1, NULL, 'r'},
	        {"json", 0, NULL, 'j'},     {"help", 0, NULL, 'h'},
	        {NULL, 0, NULL, 0}};
	char errmsg[NARF_ERRMSG_SIZE] = "", *save = NULL, *t;
	const char *coords = NULL, *secret = NULL;
	int c;

	s->hb_ms = NARF_HEARTBEAT_MS;
	s->sync_ms = 50;
	s->handoff_ms = 5;
	s->phase_s = 30;
	s->cap_s = 120;
	s->settle_s = 120;
	s->seed = (unsigned)getpid();
	snprintf(s->scenario, sizeof(s->scenario), "steady");
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			coords = optarg;
			break;
		case 'k':
			secret = optarg;
			break;
		case 'p':
			for (t = strtok_r(optarg, ",", &save);
			     t != NULL && s->pids[2] == 0;
			     t = strtok_r(NULL, ",", &save)) {
				unsigned i = s->pids[0] == 0   ? 0
				             : s->pids[1] == 0 ? 1
				                               : 2;

				s->pids[i] = (int)num("--pids", t, 1, 1u << 30);
			}
			break;
		case 'n':
			s->n = num("--nodes", optarg, 1, 20000);
			break;
		case 's':
			if (strcmp(optarg, "steady") != 0 &&
			    strcmp(optarg, "add") != 0 &&
			    strcmp(optarg, "silent") != 0 &&
			    strcmp(optarg, "lost10") != 0) {
				fprintf(stderr,
				        PROG
				        ": --scenario must be steady, add, "
				        "silent or lost10, not '%s'\n",
				        optarg);
				exit(2);
			}
			snprintf(s->scenario, sizeof(s->scenario), "%s",
			         optarg);
			break;
		case 'b':
			s->hb_ms = num("--heartbeat-ms", optarg, 10, 10000);
			break;
		case 'y':
			s->sync_ms = num("--sync-ms", optarg, 0, 60000);
			break;
		case 'o':
			s->handoff_ms = num("--handoff-ms", optarg, 0, 60000);
			break;
		case 'P':
			s->phase_s = num("--phase-s", optarg, 1, 3600);
			break;
		case 'C':
			s->cap_s = num("--phase-cap-s", optarg, 1, 3600);
			break;
		case 'S':
			s->settle_s = num("--settle-s", optarg, 1, 3600);
			break;
		case 'r':
			s->seed = num("--seed", optarg, 0, UINT32_MAX);
			break;
		case 'j':
			s->json = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr,
		        PROG ": unexpected argument '%s' (try --help)\n",
		        argv[optind]);
		exit(2);
	}
	if (coords == NULL || secret == NULL || s->n == 0) {
		fprintf(stderr, PROG
		        ": --coords, --secret-file and --nodes are "
		        "required (try --help)\n");
		exit(2);
	}
	if (strcmp(s->scenario, "lost10") == 0 && s->n <= LOST_N) {
		fprintf(stderr, PROG ": lost10 needs more than %u nodes\n",
		        LOST_N);
		exit(2);
	}
	char copy[1024];

	snprintf(copy, sizeof(copy), "%s", coords);
	save = NULL;
	for (t = strtok_r(copy, ",", &save); t != NULL;
	     t = strtok_r(NULL, ",", &save)) {
		if (s->n_coords == 3 || !narf_map_valid_addr(t)) {
			fprintf(stderr,
			        PROG
			        ": --coords: bad or too many "
			        "addresses ('%s')\n",
			        t);
			exit(2);
		}
		snprintf(s->coords[s->n_coords++], NARF_ADDR_SIZE, "%s", t);
	}
	if (narf_auth_keys_from_file(&s->keys, secret, errmsg) != 0 ||
	    !narf_auth_keys_can(&s->keys, NARF_AUTH_NODE)) {
		fprintf(stderr, PROG ": --secret-file %s: %s\n", secret,
		        errmsg[0] ? errmsg : "no node key");
		exit(2);
	}
}

static void signal_cb(uv_signal_t *h, int signum)
{
	(void)h;
	(void)signum;
	stopping = 1;
}

static void walk_close_cb(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (uv_is_closing(h))
		return;
	if (h->type == UV_TCP) {
		h->data = NULL;
		uv_close(h, close_cb);
	} else {
		uv_close(h, NULL);
	}
}

int main(int argc, char **argv)
{
	static struct sim s;
	struct narf_map_settings defaults;
	struct rlimit rl;

	parse_args(&s, argc, argv);
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	srand(s.seed);
	/* One socket per fake node: raise the descriptor limit to fit. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < s.n + 256u) {
		rl.rlim_cur =
		        rl.rlim_max < s.n + 256u ? rl.rlim_max : s.n + 256u;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	s.map = xrealloc(NULL, sizeof(*s.map));
	narf_map_settings_default(&defaults);
	narf_map_init(s.map, &defaults);
	s.n_all = s.n + 1;
	s.nodes = calloc(s.n_all, sizeof(*s.nodes));
	if (s.nodes == NULL)
		return 1;
	s.leader = -1;
	uv_loop_init(&s.loop);
	for (unsigned i = 0; i < s.n_all; i++) {
		struct node *n = &s.nodes[i];

		n->sim = &s;
		n->idx = i;
		n->next_coord = i;
		snprintf(n->target, sizeof(n->target), "%s",
		         s.coords[i % s.n_coords]);
		n->retry_at =
		        (uint64_t)(rand() % 200); /* spread the connects */
		n->next_beat = 0;
	}
	for (unsigned i = 0; i < s.n_coords; i++) {
		struct node *w = &s.watch[i];

		w->sim = &s;
		w->idx = i;
		w->watcher = true;
		w->active = true;
		w->next_coord = i;
		/* both in s: memcpy, which GCC does not suspect of overlap
		 * (snprintf from s into s fails -Werror=restrict under ASan) */
		memcpy(w->target, s.coords[i], sizeof(w->target));
	}
	uv_timer_init(&s.loop, &s.cron);
	s.cron.data = &s;
	uv_timer_start(&s.cron, cron_cb, TICK_MS, TICK_MS);
	uv_signal_init(&s.loop, &s.sigint);
	uv_signal_start(&s.sigint, signal_cb, SIGINT);
	uv_signal_init(&s.loop, &s.sigterm);
	uv_signal_start(&s.sigterm, signal_cb, SIGTERM);
	uv_run(&s.loop, UV_RUN_DEFAULT);
	report(&s);
	if (s.failed)
		fprintf(stderr, PROG ": %s\n", s.why);
	/* Through node_disconnect, so a connect still in flight reports to a
	 * node that no longer holds its handle. */
	for (unsigned i = 0; i < s.n_all; i++) {
		s.nodes[i].st = N_DEAD;
		node_disconnect(&s.nodes[i], false, 0);
	}
	for (unsigned i = 0; i < s.n_coords; i++) {
		s.watch[i].st = N_DEAD;
		node_disconnect(&s.watch[i], false, 0);
	}
	uv_walk(&s.loop, walk_close_cb, NULL);
	uv_run(&s.loop, UV_RUN_DEFAULT);
	uv_loop_close(&s.loop);
	for (unsigned i = 0; i < s.n_all; i++)
		free(s.nodes[i].in);
	for (unsigned i = 0; i < s.n_coords; i++)
		free(s.watch[i].in);
	for (unsigned i = 0; i < s.n_phases; i++)
		free(s.ph[i].rtt);
	free(s.spreads);
	free(s.nodes);
	narf_map_close(s.map);
	free(s.map);
	return s.failed ? 1 : 0;
}
