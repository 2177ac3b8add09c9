/*
 * narf-hbsim's shared parts: the fake node and the simulator state
 * (hbsim.c: phases, metrics, output; hbsim_node.c: one fake node's
 * protocol and model). See hbsim.c for what the simulator measures.
 */
#ifndef NARF_HBSIM_H
#define NARF_HBSIM_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include <jansson.h>

#include "common/auth.h"
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
	uint64_t map_bytes, maps; /* full maps received */
	uint64_t delta_bytes, delta_replies, delta_errors;
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
	char scenario[16]; /* the current one */
#define MAX_SCENARIOS 6
	char scenarios[MAX_SCENARIOS][16]; /* --scenario LIST, in order */
	unsigned n_scenarios, next_scenario;
	char scenario_list[MAX_SCENARIOS * 16];
	bool json;
	bool delta;     /* --protocol delta: "deltas":1 on requests */
	unsigned zones; /* --zones K: node i joins in zone z(i mod K + 1) */
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
	struct phase ph[MAX_SCENARIOS + 1];
	struct phase *cur;
	uint64_t silence_ms;          /* when the silenced nodes stopped */
	unsigned *victims, n_victims; /* owned, n_all */
	uint64_t last_tick;
	bool stop, failed;
	char why[256];
};

/* hbsim_node.c */
void *xrealloc(void *p, size_t n);
void push_double(double **a, size_t *n, size_t *cap, double v);
/* Drop the connection; the node reconnects (to target) at retry_at. */
void node_disconnect(struct node *n, bool next, unsigned delay_ms);
/* One cron tick of node (or watcher) n: timeouts, the next request, the
 * lease rule. */
void node_tick(struct sim *s, struct node *n, uint64_t now);
void close_cb(uv_handle_t *h);

#endif
