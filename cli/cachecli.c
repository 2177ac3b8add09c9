/*
 * cachecli: the operator's and user's command line for a narf cluster.
 *
 * It talks to the coordinators' JSON API (docs/protocol.md) through the
 * blocking client in common/jclient.c, which finds the leader from any list
 * of members. main() parses the flags, then dispatches to one cmd_* function
 * per subcommand. Exit codes are part of the command-line contract
 * (DESIGN.md): 0 ok, 1 the cluster answered with an error, 2 usage error,
 * 3 cluster unreachable. Every failure is one line on stderr that says what
 * to do next.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/errors.h"
#include "common/flags.h"
#include "common/jclient.h"
#include "common/log.h"
#include "coordcmd.h"
#include "data.h"

#define DEFAULT_COORD "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"
#define DEFAULT_TIMEOUT_MS 5000
#define NSLOTS 16384

enum exit_code {
	EXIT_OK = 0,
	EXIT_ERROR = 1,
	EXIT_USAGE = 2,
	EXIT_UNREACHABLE = 3,
};

static const char *const prog = "cachecli";

struct options {
	const char *coord;        /* borrowed: argv, environment or default */
	const char *coord_source; /* borrowed: where coord came from */
	int json;
	uint64_t timeout_ms;
	char **args; /* borrowed: positional arguments, the command first */
	int nargs;
	long long ttl; /* set --ttl SECONDS; 0 = none */
};

/* Terminal escapes; all empty when stdout is not a terminal. */
struct style {
	const char *bold, *dim, *red, *green, *yellow, *reset;
};

static const struct style plain_style = {"", "", "", "", "", ""};
static const struct style tty_style = {"\033[1m",  "\033[2m",  "\033[31m",
                                       "\033[32m", "\033[33m", "\033[0m"};
static const struct style *sty = &plain_style;

/* One source line per output line, so the text reads as it prints. */
static const char help_text[] =
        "Usage: cachecli [--coord ADDR,...] [--timeout DURATION] COMMAND\n"
        "\n"
        "Talk to a narf cluster through its coordinators.\n"
        "\n"
        "Commands:\n"
        "  status [--json]   the cluster at a glance: leader, coordinators,\n"
        "                    data nodes, slots and warnings; with --json,\n"
        "                    the coordinator's status object, for scripts\n"
        "  get KEY           print the value; a missing key prints nothing\n"
        "                    and exits 1\n"
        "  set KEY VALUE [--ttl SECONDS]\n"
        "                    store it (replicated before the OK)\n"
        "  del KEY           delete it; prints 1, or 0 if it was missing\n"
        "  ttl KEY           seconds left, -1 without expiry; a missing\n"
        "                    key prints nothing and exits 1\n"
        "  leave ID          drain data node ID: its copies move to the\n"
        "                    other nodes, then it is 'removed' and can be\n"
        "                    stopped with nothing lost (watch status)\n"
        "  coord status | add ID RAFT_ADDR API_ADDR | remove ID |\n"
        "  coord replace OLD_ID NEW_RAFT_ADDR NEW_API_ADDR\n"
        "                    coordinator membership (docs/coordinators.md):\n"
        "                    replace takes the new member's id from the\n"
        "                    coord --join running at NEW_API_ADDR, waits\n"
        "                    (up to --timeout) until the Raft configuration\n"
        "                    holds the new trio and prints CACHE_COORD\n"
        "\n"
        "Options (before or after the command):\n"
        "  --coord ADDR,...  coordinator API addresses (host:port, comma-\n"
        "                    separated); any member will do: the leader is\n"
        "                    found from it. Default: $CACHE_COORD, else\n"
        "                    " DEFAULT_COORD
        "\n"
        "  --timeout DUR     give up after this long: 500ms, 5s, 1m\n"
        "                    (default 5s)\n"
        "  --json            print JSON instead of a summary\n"
        "  -h, --help        show this help and exit\n"
        "\n"
        "Environment:\n"
        "  CACHE_COORD       default for --coord; 'scripts/cluster.sh\n"
        "                    start' prints it. Empty counts as unset.\n"
        "  NO_COLOR          if set, never colour the output (colour is\n"
        "                    only used when stdout is a terminal)\n"
        "\n"
        "Exit status:\n"
        "  0  success (status exits 0 even when it shows warnings)\n"
        "  1  the cluster answered with an error\n"
        "  2  usage error: bad flag, missing or unknown command\n"
        "  3  cluster unreachable: no coordinator answered in time\n";

static void print_help(void)
{
	fputs(help_text, stdout);
}

/* Check a coordinator list up front, so a typo is a usage error (exit 2)
 * rather than an unreachable cluster (exit 3). */
static void check_coord(const char *list, const char *source)
{
	const char *p = list;

	for (;;) {
		size_t n = strcspn(p, ",");
		char entry[80], host[64];
		int port;

		if (n >= sizeof(entry))
			n = sizeof(entry) - 1;
		memcpy(entry, p, n);
		entry[n] = '\0';
		if (narf_parse_hostport(entry, host, sizeof(host), &port) != 0)
			narf_usage_error(prog,
			                 "bad %s '%s': '%s' is not host:port "
			                 "(expected e.g. %s)",
			                 source, list, entry, DEFAULT_COORD);
		if (p[n] == '\0')
			return;
		p += n + 1;
	}
}

/* Fill in --coord from the environment or the built-in default. An empty
 * CACHE_COORD counts as unset, as shells make that easy to produce. */
static void resolve_coord(struct options *o)
{
	const char *env = getenv("CACHE_COORD");

	if (o->coord == NULL && env != NULL && env[0] != '\0') {
		o->coord = env;
		o->coord_source = "CACHE_COORD";
	} else if (o->coord == NULL) {
		o->coord = DEFAULT_COORD;
		o->coord_source = "default coordinator list";
	}
	check_coord(o->coord, o->coord_source);
}

/* getopt leaves the culprit in optopt for a short option; for a long one
 * it is the last argument consumed, and optopt is set only when a known
 * flag was given a value it does not take ("--json=1"). */
_Noreturn static void bad_option(const char *arg)
{
	int len = (int)strcspn(arg, "=");

	if (strncmp(arg, "--", 2) != 0)
		narf_usage_error(prog, "unknown option '-%c'", optopt);
	if (optopt != 0)
		narf_usage_error(prog, "option '%.*s' takes no value", len,
		                 arg);
	narf_usage_error(prog, "unknown option '%.*s'", len, arg);
}

/*
 * Flags may come before or after the command (getopt_long permutes), as the
 * contract writes both "cachecli --coord X status" and "status --json".
 */
static void parse_flags(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
	        {"coord", required_argument, NULL, 'c'},
	        {"timeout", required_argument, NULL, 't'},
	        {"json", no_argument, NULL, 'j'},
	        {"ttl", required_argument, NULL, 'T'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	int c;

	opterr = 0; /* we print our own one-line messages */
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->coord = optarg;
			o->coord_source = "--coord";
			break;
		case 't':
			if (narf_parse_ms(optarg, 1, 3600000, &o->timeout_ms))
				narf_usage_error(prog,
				                 "bad --timeout '%s': expected "
				                 "a duration like 500ms or 5s",
				                 optarg);
			break;
		case 'j':
			o->json = 1;
			break;
		case 'T': {
			uint64_t v;

			if (narf_parse_u64(optarg, 1, 100000000ull, &v) != 0)
				narf_usage_error(prog,
				                 "bad --ttl '%s': expected "
				                 "seconds, 1 to 100000000",
				                 optarg);
			o->ttl = (long long)v;
			break;
		}
		case 'h':
			print_help();
			exit(EXIT_OK);
		case ':':
			narf_usage_error(prog, "option '%s' needs a value",
			                 argv[optind - 1]);
		default:
			bad_option(argv[optind - 1]);
		}
	}
	o->args = argv + optind;
	o->nargs = argc - optind;
}

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
static const char *fmt_age(const json_t *obj,
                           const char *key,
                           char *buf,
                           size_t size)
{
	int found;
	long long ms = get_int(obj, key, &found);

	if (!found || ms < 0)
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
	char leader[24], term[24], epoch[24], repl[24];

	printf("%snarf cluster%s  leader %s  term %s  epoch %s  "
	       "replication %s\n",
	       sty->bold, sty->reset,
	       fmt_int(st, "leader", leader, sizeof(leader)),
	       fmt_int(st, "term", term, sizeof(term)),
	       fmt_int(st, "epoch", epoch, sizeof(epoch)),
	       fmt_int(st, "replication", repl, sizeof(repl)));
}

/* A coordinator's term: its own when the status gives one, else the
 * cluster's term for the leader row (the leader's term is the term). */
static const char *coord_term(const json_t *st,
                              const json_t *c,
                              char *buf,
                              size_t size)
{
	if (json_is_integer(json_object_get(c, "term")))
		return fmt_int(c, "term", buf, size);
	if (strcmp(get_str(c, "role"), "leader") == 0)
		return fmt_int(st, "term", buf, size);
	return "-";
}

static void print_coordinators(const json_t *st)
{
	const json_t *arr = json_object_get(st, "coordinators"), *c;
	int wa = column_width(arr, "api", 3), wr = column_width(arr, "raft", 4);
	size_t i;

	printf("\n%sCoordinators%s\n", sty->bold, sty->reset);
	printf("  %-3s %-*s  %-*s  %-9s %6s  %s\n", "ID", wa, "API", wr, "RAFT",
	       "ROLE", "TERM", "REACHABLE");
	json_array_foreach(arr, i, c)
	{
		char id[24], term[24];
		const char *role = get_str(c, "role");
		const json_t *reach = json_object_get(c, "reachable");
		int leader = strcmp(role, "leader") == 0;

		printf("  %-3s %-*s  %-*s  %s%-9s%s %6s  %s%s%s\n",
		       fmt_int(c, "id", id, sizeof(id)), wa, get_str(c, "api"),
		       wr, get_str(c, "raft"), leader ? sty->bold : "", role,
		       leader ? sty->reset : "",
		       coord_term(st, c, term, sizeof(term)),
		       json_is_false(reach) ? sty->red : "",
		       !json_is_boolean(reach) ? "-"
		       : json_is_true(reach)   ? "yes"
		                               : "no",
		       json_is_false(reach) ? sty->reset : "");
	}
}

static const char *state_colour(const char *state)
{
	if (strcmp(state, "up") == 0)
		return sty->green;
	if (strcmp(state, "down") == 0)
		return sty->red;
	if (strcmp(state, "removed") == 0)
		return sty->dim;
	return sty->yellow;
}

static void print_node(const json_t *n, int wa)
{
	char id[24], pri[24], rep[24], keys[24], mem[24], seen[24];
	const char *state = get_str(n, "state");

	printf("  %-3s %-*s  %s%-8s%s %9s %8s %10s %7s  %s\n",
	       fmt_int(n, "id", id, sizeof(id)), wa, get_str(n, "addr"),
	       state_colour(state), state, sty->reset,
	       fmt_int(n, "primaries", pri, sizeof(pri)),
	       fmt_int(n, "replicas", rep, sizeof(rep)),
	       fmt_int(n, "keys", keys, sizeof(keys)),
	       fmt_bytes(n, "used_memory", mem, sizeof(mem)),
	       fmt_age(n, "last_seen_ms", seen, sizeof(seen)));
}

/* Removed nodes stay in the map forever (ids are never reused); listing
 * them would bury the live ones, so they are only counted. */
static void print_nodes(const json_t *st)
{
	const json_t *arr = json_object_get(st, "nodes"), *n;
	int wa = column_width(arr, "addr", 4), removed = 0;
	size_t i;

	printf("\n%sData nodes%s\n", sty->bold, sty->reset);
	if (json_array_size(arr) == 0) {
		printf("  (none has joined yet)\n");
		return;
	}
	printf("  %-3s %-*s  %-8s %9s %8s %10s %7s  %s\n", "ID", wa, "ADDR",
	       "STATE", "PRIMARIES", "REPLICAS", "KEYS", "MEMORY", "LAST SEEN");
	json_array_foreach(arr, i, n)
	{
		if (strcmp(get_str(n, "state"), "removed") == 0)
			removed++;
		else
			print_node(n, wa);
	}
	if (removed > 0)
		printf("  %s(%d removed %s not shown; see --json)%s\n",
		       sty->dim, removed, removed == 1 ? "node" : "nodes",
		       sty->reset);
}

static void print_slots(const json_t *st)
{
	const json_t *s = json_object_get(st, "slots");
	char a[24], u[24], m[24], r[24], l[24];

	printf("\n%sSlots%s  %s/%d assigned, %s unassigned, %s moving, "
	       "%s under-replicated",
	       sty->bold, sty->reset, fmt_int(s, "assigned", a, sizeof(a)),
	       NSLOTS, fmt_int(s, "unassigned", u, sizeof(u)),
	       fmt_int(s, "moving", m, sizeof(m)),
	       fmt_int(s, "under_replicated", r, sizeof(r)));
	if (json_is_integer(json_object_get(s, "lost")))
		printf(", %s lost", fmt_int(s, "lost", l, sizeof(l)));
	printf("\n");
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
	       "moving, %lld syncing\n",
	       sty->bold, sty->reset, bar, done * 100 / total, done, total,
	       moving, syncing);
}

/* Print one warning line; returns 1 so callers can count them. */
static int warn(const char *colour, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static int warn(const char *colour, const char *fmt, ...)
{
	va_list ap;

	printf("  %s!%s ", colour, sty->reset);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	return 1;
}

/* Warnings about coordinators: no leader, members not answering. */
static int warn_coordinators(const json_t *st)
{
	const json_t *arr = json_object_get(st, "coordinators"), *c;
	int found, count = 0;
	size_t i;

	if (get_int(st, "leader", &found) == 0)
		count += warn(sty->red, "no coordinator leader is known");
	json_array_foreach(arr, i, c)
	{
		char id[24];

		if (json_is_false(json_object_get(c, "reachable")))
			count += warn(sty->yellow, "coordinator %s unreachable",
			              fmt_int(c, "id", id, sizeof(id)));
	}
	return count;
}

/* Warnings about data nodes: the down ones by id, and an empty cluster. */
static int warn_nodes(const json_t *st)
{
	const json_t *arr = json_object_get(st, "nodes"), *n;
	char ids[128] = "";
	size_t i, used = 0;
	int down = 0, up = 0, found;

	json_array_foreach(arr, i, n)
	{
		const char *state = get_str(n, "state");
		long long id = get_int(n, "id", &found);

		up += strcmp(state, "up") == 0;
		if (strcmp(state, "down") != 0)
			continue;
		if (used < sizeof(ids))
			used += (size_t)snprintf(ids + used, sizeof(ids) - used,
			                         "%s%lld", down ? ", " : "",
			                         id);
		down++;
	}
	if (down > 0)
		return warn(sty->red, "%d %s down (%s %s)", down,
		            down == 1 ? "node" : "nodes",
		            down == 1 ? "id" : "ids", ids);
	if (up == 0)
		return warn(sty->red,
		            "no data node is up: nothing serves "
		            "the cache");
	return 0;
}

static const char *slots_word(long long n)
{
	return n == 1 ? "slot" : "slots";
}

/* Warnings about slots, from the counters in "slots". */
static int warn_slots(const json_t *st)
{
	const json_t *s = json_object_get(st, "slots");
	int found, count = 0;
	long long v;

	if ((v = get_int(s, "unassigned", &found)) > 0)
		count += warn(sty->red,
		              "%lld %s unassigned: no node serves them", v,
		              slots_word(v));
	if ((v = get_int(s, "lost", &found)) > 0)
		count += warn(sty->red,
		              "%lld %s lost their data (the primary died with "
		              "no in-sync replica)",
		              v, slots_word(v));
	if ((v = get_int(s, "under_replicated", &found)) > 0)
		count += warn(sty->yellow, "%lld %s under-replicated", v,
		              slots_word(v));
	if ((v = get_int(s, "moving", &found)) > 0)
		count += warn(sty->dim, "%lld %s moving (rebalancing)", v,
		              slots_word(v));
	return count;
}

static void print_summary(const json_t *st)
{
	int count;

	print_header(st);
	print_coordinators(st);
	print_nodes(st);
	print_slots(st);
	print_rebalance(st);
	printf("\n");
	count = warn_coordinators(st) + warn_nodes(st) + warn_slots(st);
	if (count == 0)
		printf("%shealthy:%s every slot is served and fully "
		       "replicated\n",
		       sty->green, sty->reset);
}

/* One line on stderr for a cluster we could not talk to; returns the exit
 * code. The advice depends on how it failed. */
static int report_call_failure(const struct options *o,
                               int rc,
                               const char *errmsg)
{
	if (rc == NARF_EINVAL) {
		fprintf(stderr, "%s: %s\n", prog, errmsg);
		return EXIT_USAGE;
	}
	if (rc == NARF_ECONNECT)
		fprintf(stderr,
		        "%s: no coordinator reachable at %s: is the cluster "
		        "running? (scripts/cluster.sh start)\n",
		        prog, o->coord);
	else if (rc == NARF_EPROTO)
		fprintf(stderr,
		        "%s: %s: not a coordinator API port? (check --coord "
		        "or CACHE_COORD)\n",
		        prog, errmsg);
	else
		fprintf(stderr,
		        "%s: no usable answer from the coordinators at %s "
		        "within %llums (%s): is a majority of them up? "
		        "(scripts/cluster.sh status)\n",
		        prog, o->coord, (unsigned long long)o->timeout_ms,
		        errmsg);
	return EXIT_UNREACHABLE;
}

/* Report an {"ok":false} reply; returns the exit code. */
static int report_error_reply(const char *what, const json_t *reply)
{
	const char *msg = json_string_value(json_object_get(reply, "message"));

	fprintf(stderr, "%s: %s failed: %s%s%s\n", prog, what,
	        get_str(reply, "error"), msg ? ": " : "", msg ? msg : "");
	return EXIT_ERROR;
}

/* A reply that says ok but lacks what it should: a coordinator bug or a
 * version mismatch, not something the user can fix by retrying. */
static int report_bad_reply(const char *what, const char *problem)
{
	fprintf(stderr, "%s: %s failed: malformed reply from the leader (%s)\n",
	        prog, what, problem);
	return EXIT_ERROR;
}

static int print_json(const json_t *obj)
{
	char *text = json_dumps(obj, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (text == NULL) {
		fprintf(stderr, "%s: cannot format the reply as JSON\n", prog);
		return EXIT_ERROR;
	}
	printf("%s\n", text);
	free(text);
	return EXIT_OK;
}

static int cmd_status(const struct options *o)
{
	json_t *req, *reply = NULL, *status;
	char errmsg[NARF_ERRMSG_SIZE] = "";
	int rc;

	if (o->nargs > 1)
		narf_usage_error(prog, "status takes no arguments, got '%s'",
		                 o->args[1]);
	req = json_pack("{s:s}", "op", "status");
	rc = narf_jclient_call_leader(o->coord, req, (int)o->timeout_ms, &reply,
	                              errmsg);
	json_decref(req);
	if (rc != 0)
		return report_call_failure(o, rc, errmsg);
	status = json_object_get(reply, "status");
	if (!json_is_true(json_object_get(reply, "ok")))
		rc = report_error_reply("status", reply);
	else if (!json_is_object(status))
		rc = report_bad_reply("status", "no \"status\" object");
	else if (o->json)
		rc = print_json(status);
	else
		print_summary(status);
	json_decref(reply);
	return rc;
}

/* Send one request for a key and hand the reply to print. */
static int data_request(const struct options *o,
                        int argc,
                        const char **argv,
                        int (*print)(const char *reply, size_t len))
{
	char errmsg[NARF_ERRMSG_SIZE] = "";
	size_t argvlen[8];
	struct narf_buf reply;
	int rc;

	for (int i = 0; i < argc; i++)
		argvlen[i] = strlen(argv[i]);
	narf_buf_init(&reply);
	rc = narf_cli_data(o->coord, o->timeout_ms, argc, argv, argvlen, &reply,
	                   errmsg);
	if (rc == NARF_ECONNECT || rc == NARF_ETIMEOUT) {
		fprintf(stderr, "%s: cluster unreachable: %s\n", prog, errmsg);
		rc = EXIT_UNREACHABLE;
	} else if (rc != 0) {
		fprintf(stderr, "%s: %s\n", prog,
		        errmsg[0] ? errmsg : narf_strerror(rc));
		rc = EXIT_ERROR;
	} else if (reply.data[0] == '-') {
		fprintf(stderr, "%s: %.*s\n", prog, (int)reply.len - 3,
		        reply.data + 1);
		rc = EXIT_ERROR;
	} else {
		rc = print(reply.data, reply.len);
	}
	narf_buf_close(&reply);
	return rc;
}

static void need_args(const struct options *o, int n, const char *usage)
{
	if (o->nargs != n)
		narf_usage_error(prog, "usage: cachecli %s", usage);
}

/* A bulk reply: the value and a newline; a null: nothing, exit 1. */
static int print_bulk(const char *r, size_t len)
{
	const char *body;

	if (len >= 5 && memcmp(r, "$-1\r\n", 5) == 0)
		return EXIT_ERROR;
	body = memchr(r, '\n', len);
	if (r[0] != '$' || body == NULL)
		return report_bad_reply("get", "not a bulk string");
	body++;
	fwrite(body, 1, len - (size_t)(body - r) - 2, stdout);
	putchar('\n');
	return EXIT_OK;
}

static int print_ok(const char *r, size_t len)
{
	if (len < 3 || r[0] != '+')
		return report_bad_reply("set", "not a status reply");
	printf("%.*s\n", (int)len - 3, r + 1);
	return EXIT_OK;
}

static int print_int(const char *r, size_t len)
{
	if (len < 4 || r[0] != ':')
		return report_bad_reply("request", "not an integer");
	printf("%.*s\n", (int)len - 3, r + 1);
	return EXIT_OK;
}

/* TTL: -2 is a missing key (nothing printed, exit 1). */
static int print_ttl(const char *r, size_t len)
{
	if (len >= 5 && memcmp(r, ":-2\r\n", 5) == 0)
		return EXIT_ERROR;
	return print_int(r, len);
}

static int cmd_get(const struct options *o)
{
	const char *argv[] = {"GET", o->nargs > 1 ? o->args[1] : ""};

	need_args(o, 2, "get KEY");
	return data_request(o, 2, argv, print_bulk);
}

static int cmd_set(const struct options *o)
{
	char ttl[24];
	const char *argv[] = {"SET", o->nargs > 1 ? o->args[1] : "",
	                      o->nargs > 2 ? o->args[2] : "", "EX", ttl};

	need_args(o, 3, "set KEY VALUE [--ttl SECONDS]");
	snprintf(ttl, sizeof(ttl), "%lld", o->ttl);
	return data_request(o, o->ttl > 0 ? 5 : 3, argv, print_ok);
}

static int cmd_del(const struct options *o)
{
	const char *argv[] = {"DEL", o->nargs > 1 ? o->args[1] : ""};

	need_args(o, 2, "del KEY");
	return data_request(o, 2, argv, print_int);
}

static int cmd_ttl(const struct options *o)
{
	const char *argv[] = {"TTL", o->nargs > 1 ? o->args[1] : ""};

	need_args(o, 2, "ttl KEY");
	return data_request(o, 2, argv, print_ttl);
}

static int cmd_leave(const struct options *o)
{
	char errmsg[NARF_ERRMSG_SIZE] = "";
	json_t *req, *reply = NULL;
	uint64_t id;
	int rc;

	need_args(o, 2, "leave ID");
	if (narf_parse_u64(o->args[1], 1, UINT32_MAX, &id) != 0)
		narf_usage_error(prog, "bad node id '%s'", o->args[1]);
	req = json_pack("{s:s,s:I}", "op", "leave", "node", (json_int_t)id);
	rc = narf_jclient_call_leader(o->coord, req, (int)o->timeout_ms, &reply,
	                              errmsg);
	json_decref(req);
	if (rc != 0)
		return report_call_failure(o, rc, errmsg);
	if (!json_is_true(json_object_get(reply, "ok"))) {
		rc = report_error_reply("leave", reply);
	} else {
		printf("node %llu is leaving (epoch %lld): its copies move to "
		       "the other nodes; 'cachecli status' shows progress\n",
		       (unsigned long long)id,
		       (long long)json_integer_value(
		               json_object_get(reply, "epoch")));
		rc = EXIT_OK;
	}
	json_decref(reply);
	return rc;
}

static int cmd_coord(const struct options *o)
{
	return narf_cli_coord(o->coord, o->timeout_ms, o->json, o->nargs,
	                      o->args);
}

static const struct command {
	const char *name;
	int (*run)(const struct options *o);
} commands[] = {
        {"status", cmd_status}, {"get", cmd_get}, {"set", cmd_set},
        {"del", cmd_del},       {"ttl", cmd_ttl}, {"leave", cmd_leave},
        {"coord", cmd_coord},
};

/* A closed or full stdout must not pass for success in a script. */
static int finish_output(int code)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		perror("cachecli: writing output");
		return code == EXIT_OK ? EXIT_ERROR : code;
	}
	return code;
}

int main(int argc, char **argv)
{
	struct options o = {.timeout_ms = DEFAULT_TIMEOUT_MS};
	const char *no_color = getenv("NO_COLOR");

	narf_log_init(prog, NARF_LOG_WARN);
	parse_flags(argc, argv, &o);
	if (o.nargs == 0)
		narf_usage_error(prog,
		                 "missing command (status, get, set, "
		                 "del, ttl, leave or coord)");
	resolve_coord(&o);
	if (isatty(STDOUT_FILENO) && (no_color == NULL || !no_color[0]))
		sty = &tty_style;
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(o.args[0], commands[i].name) == 0)
			return finish_output(commands[i].run(&o));
	narf_usage_error(prog,
	                 "unknown command '%s' (expected status, get, "
	                 "set, del, ttl, leave or coord)",
	                 o.args[0]);
}
