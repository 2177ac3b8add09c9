/*
 * narf-hbsim: N fake data nodes against a real coordinator trio, to measure
 * what the coordinators' side of membership costs as N grows (issue 17,
 * docs/scale-plan.md section 6). `scripts/bench.sh scale` runs it.
 *
 * Phases: "join" (all nodes join; ends when every node is up in the map
 * and the map is quiet: no epoch moved for 2 s and no slot has a move or
 * a copy outside its ISR; or after --settle-s), then each scenario of
 * --scenario's list in turn, one phase each:
 * steady (--phase-s of nothing), add (one more node joins; ends 2 s after
 * the last epoch change), silent (the first node the map has up stops
 * sending but keeps its socket; ends once the map marks it down and no epoch
 * moved for 2 s), lost10 (ten nodes close their sockets; ends when all ten are
 * down and the map is quiet), zone (with --zones K, every node of zone z1
 * closes its socket; the same end). Every phase is capped at --phase-cap-s.
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

#include "hbsim.h"

static volatile sig_atomic_t stopping;

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
	s->n_victims = 0;
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
	} else if (strcmp(s->scenario, "lost10") == 0 ||
	           strcmp(s->scenario, "zone") == 0) {
		/* lost10: the first ten nodes; zone: every node of zone z1
		 * (nodes 0, K, 2K, ...). Their sockets close at once. */
		bool zone = strcmp(s->scenario, "zone") == 0;

		for (unsigned i = 0; i < s->n; i++) {
			if (zone ? i % s->zones != 0 : i >= LOST_N)
				continue;
			node_disconnect(&s->nodes[i], false, 0);
			s->nodes[i].active = false;
			s->nodes[i].st = N_DEAD;
			s->victims[s->n_victims++] = i;
		}
	}
	s->silence_ms = now;
}

/* The next scenario of --scenario's list begins. */
static void next_scenario(struct sim *s, uint64_t now)
{
	memcpy(s->scenario, s->scenarios[s->next_scenario++],
	       sizeof(s->scenario));
	phase_begin(s, s->scenarios[s->next_scenario - 1]);
	scenario_start(s, now);
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
		next_scenario(s, now);
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
		if (s->next_scenario < s->n_scenarios)
			next_scenario(s, now);
		else
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
		       (unsigned long long)p->maps,
		       (double)(p->map_bytes + p->delta_bytes) / 1e6,
		       p->spread_p99, (unsigned long long)p->lapses,
		       (unsigned long long)p->elections,
		       (unsigned long long)p->leader_changes, p->detect_ms,
		       (double)p->rss_max_kb / 1024.0,
		       (unsigned long long)p->max_tick_lag,
		       (unsigned long long)p->timeouts,
		       p->capped ? "  (capped)" : "");
		json_array_append_new(
		        arr,
		        json_pack("{s:s,s:f,s:f,s:I,s:f,s:f,s:f,s:I,s:I,s:I,"
		                  "s:f,s:f,s:I,s:I,s:I,s:f,s:I,s:I,s:I,s:I,s:I,"
		                  "s:b,s:I,s:I,s:I,s:I}",
		                  "phase", p->name, "secs", secs, "leader_cpu",
		                  cpu, "beats", (json_int_t)p->n_rtt,
		                  "rtt_p50_ms", p50, "rtt_p99_ms", p99,
		                  "rtt_max_ms", mx, "epochs",
		                  (json_int_t)(p->epoch1 - p->epoch0), "maps",
		                  (json_int_t)p->maps, "map_bytes",
		                  (json_int_t)(p->map_bytes + p->delta_bytes),
		                  "spread99_p50_ms", p->spread_p50,
		                  "spread99_p99_ms", p->spread_p99,
		                  "lease_lapses", (json_int_t)p->lapses,
		                  "term_changes", (json_int_t)p->elections,
		                  "leader_changes",
		                  (json_int_t)p->leader_changes, "detect_ms",
		                  p->detect_ms, "leader_rss_kb",
		                  (json_int_t)p->rss_max_kb, "isr_adds",
		                  (json_int_t)p->isr_adds, "handoffs",
		                  (json_int_t)p->handoffs, "sim_lag_ms",
		                  (json_int_t)p->max_tick_lag, "timeouts",
		                  (json_int_t)p->timeouts, "capped", p->capped,
		                  "full_bytes", (json_int_t)p->map_bytes,
		                  "delta_bytes", (json_int_t)p->delta_bytes,
		                  "delta_replies", (json_int_t)p->delta_replies,
		                  "delta_errors", (json_int_t)p->delta_errors));
	}
	unsigned joined = 0;

	for (unsigned i = 0; i < s->n_all; i++)
		joined += s->nodes[i].id != 0;
	json_object_set_new(out, "nodes", json_integer(s->n));
	json_object_set_new(out, "joined", json_integer(joined));
	json_object_set_new(out, "scenario", json_string(s->scenario_list));
	json_object_set_new(out, "zones", json_integer(s->zones));
	json_object_set_new(out, "heartbeat_ms", json_integer(s->hb_ms));
	json_object_set_new(out, "protocol",
	                    json_string(s->delta ? "delta" : "full"));
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
	        "  --zones K           join in zones z1..zK round robin "
	        "(default: no zone)\n"
	        "  --scenario LIST     steady, add, silent, lost10, zone, "
	        "in order after\n"
	        "                      the join, each at most once "
	        "(default steady)\n"
	        "  --protocol P        delta (heartbeat replies carry map "
	        "entries) | full\n"
	        "                      (every new epoch fetches the whole "
	        "map; default delta)\n"
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

/* --scenario LIST: steady, add, silent, lost10, zone, comma-separated,
 * each at most once. */
static void parse_scenarios(struct sim *s, const char *arg)
{
	static const char *const known[] = {"steady", "add", "silent", "lost10",
	                                    "zone"};
	char copy[128], *save = NULL;

	snprintf(copy, sizeof(copy), "%s", arg);
	snprintf(s->scenario_list, sizeof(s->scenario_list), "%s", arg);
	s->n_scenarios = 0;
	for (char *t = strtok_r(copy, ",", &save); t != NULL;
	     t = strtok_r(NULL, ",", &save)) {
		bool ok = false;

		for (unsigned i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			ok = ok || strcmp(t, known[i]) == 0;
		for (unsigned i = 0; i < s->n_scenarios; i++)
			ok = ok && strcmp(t, s->scenarios[i]) != 0;
		if (!ok || s->n_scenarios == MAX_SCENARIOS) {
			fprintf(stderr,
			        PROG
			        ": --scenario must list steady, add, "
			        "silent, lost10 or zone, each once, not "
			        "'%s'\n",
			        arg);
			exit(2);
		}
		snprintf(s->scenarios[s->n_scenarios++], 16, "%s", t);
	}
	if (s->n_scenarios == 0) {
		fprintf(stderr, PROG ": --scenario: empty list\n");
		exit(2);
	}
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
	        {"protocol", 1, NULL, 'x'}, {"zones", 1, NULL, 'z'},
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
	s->delta = true;
	parse_scenarios(s, "steady");
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
			parse_scenarios(s, optarg);
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
		case 'z':
			s->zones = num("--zones", optarg, 0, 1000);
			break;
		case 'x':
			if (strcmp(optarg, "delta") != 0 &&
			    strcmp(optarg, "full") != 0) {
				fprintf(stderr,
				        PROG
				        ": --protocol must be delta or "
				        "full, not '%s'\n",
				        optarg);
				exit(2);
			}
			s->delta = strcmp(optarg, "delta") == 0;
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
	bool zone = false, lost10 = false;

	for (unsigned i = 0; i < s->n_scenarios; i++) {
		zone = zone || strcmp(s->scenarios[i], "zone") == 0;
		lost10 = lost10 || strcmp(s->scenarios[i], "lost10") == 0;
	}
	if (zone && (s->zones < 2 || s->n < 2 * s->zones)) {
		fprintf(stderr, PROG
		        ": the zone scenario needs --zones 2 or more and at "
		        "least two nodes per zone\n");
		exit(2);
	}
	if (lost10 && s->n <= LOST_N) {
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
	s.victims = calloc(s.n_all, sizeof(*s.victims));
	if (s.nodes == NULL || s.victims == NULL)
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
	free(s.victims);
	narf_map_close(s.map);
	free(s.map);
	return s.failed ? 1 : 0;
}
