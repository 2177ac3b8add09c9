/*
 * The human form of `cachecli status`: a dashboard drawn from the status
 * object (the coordinator leader's status, enriched by status.c with what
 * each coordinator and data node answered directly).
 *
 * Sections: a header (leader, term, epoch, settings), the coordinators,
 * the data nodes (removed ones only counted), slot health with a progress
 * bar while a rebalance runs, then warnings in plain words, or one green
 * "healthy" line. Every field may be missing (an older coordinator, a node
 * that did not answer): it is then drawn as "-".
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dashboard.h"

#define NSLOTS 16384

/* Value of an integer field, or 0 with *found = 0 when absent or not an
 * integer: the status object may lack fields (older coordinators). */
static long long get_int(const json_t *obj, const char *key, int *found)
{
	const json_t *v = json_object_get(obj, key);

	*found = json_is_integer(v);
	return *found ? (long long)json_integer_value(v) : 0;
}

/* An integer field as text, or "-" when absent. */
static const char *fmt_int(const json_t *obj,
                           const char *key,
                           char *buf,
                           size_t size)
{
	int found;
	long long v = get_int(obj, key, &found);

	if (!found)
		return "-";
	snprintf(buf, size, "%lld", v);
	return buf;
}

static const char *get_str(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s ? s : "-";
}

/* Bytes in powers of 1024 with one decimal: 9876543 -> "9.4M". */
static const char *fmt_bytes(const json_t *obj,
                             const char *key,
                             char *buf,
                             size_t size)
{
	static const char units[] = "KMGTPE";
	int found, u = -1;
	double v = (double)get_int(obj, key, &found);

	if (!found)
		return "-";
	if (v < 1024) {
		snprintf(buf, size, "%.0fB", v);
		return buf;
	}
	while (v >= 1024 && u < (int)sizeof(units) - 2) {
		v /= 1024;
		u++;
	}
	snprintf(buf, size, "%.1f%c", v, units[u]);
	return buf;
}

/* Milliseconds as a short age: "40ms", "2.5s", "3m07s", "2h05m". */
static const char *fmt_ms(long long ms, char *buf, size_t size)
{
	if (ms < 0)
		return "-";
	if (ms < 1000)
		snprintf(buf, size, "%lldms", ms);
	else if (ms < 60000)
		snprintf(buf, size, "%.1fs", (double)ms / 1000);
	else if (ms < 3600000)
		snprintf(buf, size, "%lldm%02llds", ms / 60000, ms / 1000 % 60);
	else
		snprintf(buf, size, "%lldh%02lldm", ms / 3600000,
		         ms / 60000 % 60);
	return buf;
}

static const char *fmt_age(const json_t *obj,
                           const char *key,
                           char *buf,
                           size_t size)
{
	int found;
	long long ms = get_int(obj, key, &found);

	return found ? fmt_ms(ms, buf, size) : "-";
}

/* Widest value of a string field across an array, at least min. */
static int column_width(const json_t *arr, const char *key, int min)
{
	size_t i;
	const json_t *item;
	int w = min;

	json_array_foreach(arr, i, item)
	{
		int n = (int)strlen(get_str(item, key));

		w = n > w ? n : w;
	}
	return w;
}

static void print_header(const json_t *st)
{
	char leader[24], term[24], epoch[24], repl[24], nt[24];
	int found;
	long long timeout = get_int(st, "node_timeout_ms", &found);

	printf("%snarf cluster%s  leader %s  term %s  epoch %s  "
	       "replication %s  node timeout %s\n",
	       narf_cli_sty->bold, narf_cli_sty->reset,
	       fmt_int(st, "leader", leader, sizeof(leader)),
	       fmt_int(st, "term", term, sizeof(term)),
	       fmt_int(st, "epoch", epoch, sizeof(epoch)),
	       fmt_int(st, "replication", repl, sizeof(repl)),
	       found ? fmt_ms(timeout, nt, sizeof(nt)) : "-");
}

static const char *yes_no(const json_t *b)
{
	return !json_is_boolean(b) ? "-" : json_is_true(b) ? "yes" : "no";
}

void narf_cli_print_coordinators(const json_t *st)
{
	const struct narf_cli_style *sty = narf_cli_sty;
	const json_t *arr = json_object_get(st, "coordinators"), *c;
	int wa = column_width(arr, "api", 3), wr = column_width(arr, "raft", 4);
	size_t i;

	printf("\n%sCoordinators%s\n", sty->bold, sty->reset);
	printf("  %-3s %-*s  %-*s  %-11s %6s  %s\n", "ID", wa, "API", wr,
	       "RAFT", "ROLE", "TERM", "REACHABLE");
	json_array_foreach(arr, i, c)
	{
		char id[24], term[24];
		const char *role = get_str(c, "role");
		const json_t *reach = json_object_get(c, "reachable");
		int leader = strcmp(role, "leader") == 0;

		printf("  %-3s %-*s  %-*s  %s%-11s%s %6s  %s%s%s\n",
		       fmt_int(c, "id", id, sizeof(id)), wa, get_str(c, "api"),
		       wr, get_str(c, "raft"), leader ? sty->bold : "", role,
		       leader ? sty->reset : "",
		       fmt_int(c, "term", term, sizeof(term)),
		       json_is_false(reach) ? sty->red : "", yes_no(reach),
		       json_is_false(reach) ? sty->reset : "");
	}
}

static const char *state_colour(const char *state)
{
	if (strcmp(state, "up") == 0)
		return narf_cli_sty->green;
	if (strcmp(state, "down") == 0)
		return narf_cli_sty->red;
	if (strcmp(state, "removed") == 0)
		return narf_cli_sty->dim;
	return narf_cli_sty->yellow;
}

/* ops/s: an integer, or "-" when unknown. */
static const char *fmt_ops(const json_t *n, char *buf, size_t size)
{
	const json_t *v = json_object_get(n, "ops_per_sec");

	if (!json_is_number(v))
		return "-";
	snprintf(buf, size, "%.0f", json_number_value(v));
	return buf;
}

/* A node's zone, "-" for none (a node of an older cluster). */
static const char *zone_of(const json_t *n)
{
	const char *z = get_str(n, "zone");

	return z[0] != '\0' ? z : "-";
}

static void print_node(const json_t *n, int wa, int wz)
{
	char id[24], pri[24], rep[24], keys[24], mem[24], ops[24], seen[24];
	const char *state = get_str(n, "state");
	const json_t *reach = json_object_get(n, "reachable");
	bool dark = json_is_false(reach);
	const char *age = fmt_age(n, "last_seen_ms", seen, sizeof(seen));
	int pad = 9 - (int)strlen(age);

	printf("  %-3s %-*s  %-*s  %s%-8s%s %9s %8s %10s %8s %7s  %s",
	       fmt_int(n, "id", id, sizeof(id)), wa, get_str(n, "addr"), wz,
	       zone_of(n), state_colour(state), state, narf_cli_sty->reset,
	       fmt_int(n, "primaries", pri, sizeof(pri)),
	       fmt_int(n, "replicas", rep, sizeof(rep)),
	       dark ? "-" : fmt_int(n, "keys", keys, sizeof(keys)),
	       dark ? "-" : fmt_bytes(n, "used_memory", mem, sizeof(mem)),
	       dark ? "-" : fmt_ops(n, ops, sizeof(ops)), age);
	if (dark)
		printf("%*s%sno answer (%s)%s", pad > 1 ? pad : 1, "",
		       narf_cli_sty->red, get_str(n, "probe_error"),
		       narf_cli_sty->reset);
	printf("\n");
}

/* Removed nodes stay in the map forever (ids are never reused); listing
 * them would bury the live ones, so they are only counted. */
static void print_nodes(const json_t *st)
{
	const json_t *arr = json_object_get(st, "nodes"), *n;
	int wa = column_width(arr, "addr", 4), removed = 0;
	int wz = column_width(arr, "zone", 4);
	size_t i;

	printf("\n%sData nodes%s\n", narf_cli_sty->bold, narf_cli_sty->reset);
	if (json_array_size(arr) == 0) {
		printf("  (none has joined yet)\n");
		return;
	}
	printf("  %-3s %-*s  %-*s  %-8s %9s %8s %10s %8s %7s  %s\n", "ID", wa,
	       "ADDR", wz, "ZONE", "STATE", "PRIMARIES", "REPLICAS", "KEYS",
	       "MEMORY", "OPS/S", "LAST SEEN");
	json_array_foreach(arr, i, n)
	{
		if (strcmp(get_str(n, "state"), "removed") == 0)
			removed++;
		else
			print_node(n, wa, wz);
	}
	if (removed > 0)
		printf("  %s(%d removed %s not shown; see --json)%s\n",
		       narf_cli_sty->dim, removed,
		       removed == 1 ? "node" : "nodes", narf_cli_sty->reset);
}

static void print_slots(const json_t *st)
{
	const json_t *s = json_object_get(st, "slots");
	char a[24], u[24], m[24], r[24], y[24], l[24];

	printf("\n%sSlots%s  %s/%d assigned, %s unassigned, %s moving, "
	       "%s under-replicated, %s syncing",
	       narf_cli_sty->bold, narf_cli_sty->reset,
	       fmt_int(s, "assigned", a, sizeof(a)), NSLOTS,
	       fmt_int(s, "unassigned", u, sizeof(u)),
	       fmt_int(s, "moving", m, sizeof(m)),
	       fmt_int(s, "under_replicated", r, sizeof(r)),
	       fmt_int(s, "syncing", y, sizeof(y)));
	if (json_is_integer(json_object_get(s, "lost")))
		printf(", %s lost", fmt_int(s, "lost", l, sizeof(l)));
	if (json_integer_value(json_object_get(s, "zone_shared")) > 0)
		printf(", %s with two copies in one zone",
		       fmt_int(s, "zone_shared", l, sizeof(l)));
	printf("\n");
}

/* The named zones, one line each (none: nothing printed). */
static void print_zones(const json_t *st)
{
	const json_t *arr = json_object_get(st, "zones"), *z;
	int wn = column_width(arr, "name", 4);
	size_t i;

	if (json_array_size(arr) == 0)
		return;
	printf("\n%sZones%s\n", narf_cli_sty->bold, narf_cli_sty->reset);
	json_array_foreach(arr, i, z)
	{
		char n[24], u[24], p[24], c[24];

		printf("  %-*s  %s/%s nodes up, %s primaries, %s copies\n", wn,
		       get_str(z, "name"), fmt_int(z, "up", u, sizeof(u)),
		       fmt_int(z, "nodes", n, sizeof(n)),
		       fmt_int(z, "primaries", p, sizeof(p)),
		       fmt_int(z, "copies", c, sizeof(c)));
	}
}

/* ", planning the next step" while the leader has not planned the
 * current map (between two rounds, remaining is a lower bound), else "". */
static const char *planning_note(const json_t *rb)
{
	return json_is_true(json_object_get(rb, "planning")) &&
	                       !json_is_true(json_object_get(rb, "balanced"))
	               ? ", planning the next step"
	               : "";
}

/* A rebalance in progress: a bar of the slots already where the balanced
 * layout wants them, with moves and syncs in flight. */
static void print_rebalance(const json_t *st)
{
	const json_t *rb = json_object_get(st, "rebalance");
	const json_t *s = json_object_get(st, "slots");
	int found;
	long long total = get_int(rb, "total", &found);
	long long left = get_int(rb, "remaining", &found);
	long long done, moving, syncing;
	char bar[41];
	int fill;

	if (total <= 0 || left < 0 || left > total)
		return;
	done = total - left;
	moving = get_int(s, "moving", &found);
	syncing = get_int(s, "syncing", &found);
	fill = (int)(done * 40 / total);
	memset(bar, '#', (size_t)fill);
	memset(bar + fill, '.', (size_t)(40 - fill));
	bar[40] = '\0';
	printf("%sRebalance%s  [%s] %lld%%  %lld/%lld slots placed, %lld "
	       "moving, %lld syncing%s\n",
	       narf_cli_sty->bold, narf_cli_sty->reset, bar, done * 100 / total,
	       done, total, moving, syncing, planning_note(rb));
}

/* Print one warning line; returns 1 so callers can count them. */
static int warn(const char *colour, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static int warn(const char *colour, const char *fmt, ...)
{
	va_list ap;

	printf("  %s!%s ", colour, narf_cli_sty->reset);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	return 1;
}

/* Warnings about coordinators: no leader, members not answering, and
 * whether a majority is left. */
int narf_cli_warn_coordinators(const json_t *st)
{
	const struct narf_cli_style *sty = narf_cli_sty;
	const json_t *arr = json_object_get(st, "coordinators"), *c;
	int found, count = 0, total = (int)json_array_size(arr), answer = 0;
	size_t i;

	json_array_foreach(arr, i, c)
	{
		char id[24];

		if (!json_is_false(json_object_get(c, "reachable"))) {
			answer++;
			continue;
		}
		if (json_is_integer(json_object_get(c, "id")))
			count += warn(sty->yellow,
			              "coordinator %s (%s) does not answer: %s",
			              fmt_int(c, "id", id, sizeof(id)),
			              get_str(c, "api"),
			              get_str(c, "probe_error"));
		else
			count += warn(
			        sty->yellow, "no coordinator answers at %s: %s",
			        get_str(c, "api"), get_str(c, "probe_error"));
	}
	if (total > 0 && answer <= total / 2)
		count += warn(sty->red,
		              "only %d of %d coordinators answer: without a "
		              "majority (%d) the map cannot change (no "
		              "failover, no join) until enough are back",
		              answer, total, total / 2 + 1);
	else if (get_int(st, "leader", &found) == 0)
		count += warn(sty->red,
		              "no coordinator leader is known (an election "
		              "may be under way)");
	return count;
}

/* Is there a node other than n, at n's address, that is not down or
 * removed? (n is then an old incarnation of a restarted node.) */
static long long replaced_by(const json_t *nodes, const json_t *n)
{
	const char *addr = get_str(n, "addr");
	const json_t *o;
	int found;
	long long id = get_int(n, "id", &found), newer = 0;
	size_t i;

	json_array_foreach(nodes, i, o)
	{
		const char *state = get_str(o, "state");
		long long oid = get_int(o, "id", &found);

		if (oid > id && strcmp(get_str(o, "addr"), addr) == 0 &&
		    strcmp(state, "down") != 0 && strcmp(state, "removed") != 0)
			newer = oid;
	}
	return newer;
}

static int warn_down(const json_t *st, const json_t *n)
{
	const struct narf_cli_style *sty = narf_cli_sty;
	long long id, newer, down, led, seen;
	int found, have_down, have_seen;
	const char *addr = get_str(n, "addr");
	char age[24];

	id = get_int(n, "id", &found);
	newer = replaced_by(json_object_get(st, "nodes"), n);
	if (newer != 0) {
		/* Informational, not a problem: not counted. */
		printf("  %s- node %lld (%s) down: replaced by node %lld at "
		       "the same address ('cachecli leave %lld' forgets it)"
		       "%s\n",
		       sty->dim, id, addr, newer, id, sty->reset);
		return 0;
	}
	down = get_int(n, "down_ms", &have_down);
	led = get_int(n, "down_primaries", &found);
	seen = get_int(n, "last_seen_ms", &have_seen);
	if (have_down && led > 0)
		return warn(sty->red,
		            "node %lld (%s) down for %s: the %lld slots it led "
		            "failed over to their replicas",
		            id, addr, fmt_ms(down, age, sizeof(age)), led);
	if (have_down)
		return warn(sty->red, "node %lld (%s) down for %s", id, addr,
		            fmt_ms(down, age, sizeof(age)));
	if (have_seen)
		return warn(sty->red, "node %lld (%s) down, unseen for %s", id,
		            addr, fmt_ms(seen, age, sizeof(age)));
	return warn(sty->red,
	            "node %lld (%s) down since before the current coordinator "
	            "leader was elected ('cachecli leave %lld' forgets it)",
	            id, addr, id);
}

/* Warnings about data nodes: down, not answering, leaving, joining, and a
 * cluster with nothing up. */
int narf_cli_warn_nodes(const json_t *st)
{
	const struct narf_cli_style *sty = narf_cli_sty;
	const json_t *arr = json_object_get(st, "nodes"), *n;
	int found, count = 0, up = 0;
	long long timeout = get_int(st, "node_timeout_ms", &found);
	char tmo[24];
	size_t i;

	json_array_foreach(arr, i, n)
	{
		const char *state = get_str(n, "state");
		long long id = get_int(n, "id", &found);
		char p[24], r[24];

		up += strcmp(state, "up") == 0;
		if (strcmp(state, "down") == 0)
			count += warn_down(st, n);
		else if (strcmp(state, "removed") == 0)
			continue;
		else if (json_is_false(json_object_get(n, "reachable")))
			count += warn(
			        sty->red,
			        "node %lld (%s) is %s in the map but does "
			        "not answer: %s (if it died, it is marked "
			        "down after the %s node timeout)",
			        id, get_str(n, "addr"), state,
			        get_str(n, "probe_error"),
			        fmt_ms(found ? timeout : -1, tmo, sizeof(tmo)));
		else if (strcmp(state, "leaving") == 0)
			count +=
			        warn(sty->yellow,
			             "node %lld (%s) leaving: %s primaries and "
			             "%s replicas still to move, then it is "
			             "removed",
			             id, get_str(n, "addr"),
			             fmt_int(n, "primaries", p, sizeof(p)),
			             fmt_int(n, "replicas", r, sizeof(r)));
		else if (strcmp(state, "joining") == 0)
			count += warn(sty->yellow,
			              "node %lld (%s) joining: waiting for its "
			              "first heartbeat",
			              id, get_str(n, "addr"));
	}
	if (up == 0)
		count += warn(sty->red,
		              "no data node is up: nothing serves the cache");
	return count;
}

static const char *slots_word(long long n)
{
	return n == 1 ? "slot" : "slots";
}

/* Up nodes, to tell whether under-replicated slots can be fixed. */
static long long nodes_up(const json_t *st)
{
	const json_t *n;
	long long up = 0;
	size_t i;

	json_array_foreach(json_object_get(st, "nodes"), i, n) up +=
	        strcmp(get_str(n, "state"), "up") == 0;
	return up;
}

/* Warnings about slots, from the counters in "slots". */
int narf_cli_warn_slots(const json_t *st)
{
	const struct narf_cli_style *sty = narf_cli_sty;
	const json_t *s = json_object_get(st, "slots");
	const json_t *rb = json_object_get(st, "rebalance");
	int found, count = 0;
	long long v, repl = get_int(st, "replication", &found);
	long long total = get_int(rb, "total", &found);
	long long left = get_int(rb, "remaining", &found);

	if ((v = get_int(s, "unassigned", &found)) > 0)
		count += warn(
		        sty->red,
		        "%lld %s unassigned: no node serves them, requests "
		        "for their keys fail",
		        v, slots_word(v));
	if ((v = get_int(s, "lost", &found)) > 0)
		count += warn(sty->red,
		              "%lld %s lost their data (the primary died with "
		              "no in-sync replica)",
		              v, slots_word(v));
	if ((v = get_int(s, "under_replicated", &found)) > 0) {
		if (repl > 0 && nodes_up(st) < repl)
			count += warn(
			        sty->yellow,
			        "%lld %s under-replicated: %lld up %s for "
			        "replication %lld; they stay so until "
			        "another node is up",
			        v, slots_word(v), nodes_up(st),
			        nodes_up(st) == 1 ? "node" : "nodes", repl);
		else
			count +=
			        warn(sty->yellow,
			             "%lld %s under-replicated: new copies are "
			             "being made on the other nodes",
			             v, slots_word(v));
	}
	if ((v = get_int(s, "moving", &found)) > 0 || (total > 0 && left > 0)) {
		if (total > 0 && left >= 0 && left <= total)
			count += warn(sty->dim,
			              "rebalancing: %lld %s moving, %lld%% of "
			              "%lld placed%s",
			              v, slots_word(v),
			              (total - left) * 100 / total, total,
			              planning_note(rb));
		else
			count += warn(sty->dim, "%lld %s moving (rebalancing)",
			              v, slots_word(v));
	}
	return count;
}

/* The leader's own warnings (zones): shown, not counted against
 * "healthy", which is about slots being served and replicated. */
static void print_leader_warnings(const json_t *st)
{
	const json_t *w;
	size_t i;

	json_array_foreach(json_object_get(st, "warnings"), i, w)
	{
		if (json_is_string(w))
			warn(narf_cli_sty->yellow, "%s", json_string_value(w));
	}
}

void narf_cli_print_dashboard(const json_t *st)
{
	int count;

	print_header(st);
	narf_cli_print_coordinators(st);
	print_nodes(st);
	print_slots(st);
	print_zones(st);
	print_rebalance(st);
	printf("\n");
	count = narf_cli_warn_coordinators(st) + narf_cli_warn_nodes(st) +
	        narf_cli_warn_slots(st);
	print_leader_warnings(st);
	if (count == 0)
		printf("%shealthy:%s every slot is served and fully "
		       "replicated\n",
		       narf_cli_sty->green, narf_cli_sty->reset);
}
