/*
 * `cachecli status [--json] [--watch]`: what the cluster looks like now.
 *
 * One frame: the coordinator leader's status object (docs/protocol.md),
 * then, in parallel and for at most PROBE_MS, a ping to every coordinator
 * (its own role and term, and whether it answers at all) and INFO to every
 * data node that is not removed (keys, memory, commands processed). What
 * they answered is merged into the status object, which is printed as JSON
 * or drawn as a dashboard (dashboard.c). A node or coordinator that does
 * not answer is shown as such; it never holds the frame up for longer than
 * PROBE_MS.
 *
 * ops/s is the rate of total_commands_processed (client requests and the
 * replication traffic a node applies) between two INFO samples: with
 * --watch, the previous frame's; otherwise a second INFO OPS_SAMPLE_MS
 * after the first, so a single status takes about a third of a second. A
 * node that reports instantaneous_ops_per_sec is shown with that instead.
 *
 * If no leader answers, the frame shows what the coordinators answered to
 * their pings and the command exits 3 (--watch keeps trying).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/flags.h"
#include "common/jclient.h"
#include "common/resp.h"
#include "dashboard.h"
#include "net.h"
#include "parse.h"

#define PROBE_MS 500
#define OPS_SAMPLE_MS 300
#define WATCH_MS 1000
#define WATCH_STATUS_MS 2000 /* a frame waits at most this for the leader */
#define OPS_MIN_MS 200       /* samples closer than this give no rate */
#define OPS_MAX_MS 10000     /* nor samples older than this */

/* A node's commands counter when it was last sampled. */
struct sample {
	long long id;
	char addr[NARF_ADDR_SIZE];
	uint64_t commands;
	int64_t at_ms;
};

/* Samples kept from frame to frame (--watch). */
struct history {
	struct sample *s; /* owned */
	unsigned n;
};

/* What one probe asks and where its answer goes. */
struct probe {
	json_t *obj; /* borrowed: the coordinator or node entry */
	bool node;   /* INFO to a data node, else ping to a coordinator */
	uint64_t commands;
	bool have_commands;
	int64_t at_ms;
};

static void set_unreachable(json_t *obj, int err)
{
	json_object_set_new(obj, "reachable", json_false());
	json_object_set_new(
	        obj, "probe_error",
	        json_string(err == NARF_ECONNECT ? "connection refused"
	                                         : narf_strerror(err)));
}

/*
 * A coordinator's ping goes through the blocking API client, which proves
 * our credential first (three round trips instead of one): one thread per
 * coordinator keeps the probes parallel, each bounded by PROBE_MS.
 */
struct coord_ping {
	const char *addr; /* borrowed */
	json_t *reply;    /* owned, or NULL */
	int err;
	pthread_t thread;
	bool started;
};

static void *coord_ping_run(void *arg)
{
	struct coord_ping *cp = arg;
	json_t *req = json_pack("{s:s}", "op", "ping");

	cp->err = req ? narf_jclient_call(cp->addr, req, PROBE_MS, &cp->reply,
	                                  NULL)
	              : NARF_ENOMEM;
	json_decref(req);
	return NULL;
}

static void merge_ping(json_t *c, const struct coord_ping *cp)
{
	json_t *rep = cp->reply;
	const char *role;

	if (cp->err != 0) {
		set_unreachable(c, cp->err);
		return;
	}
	role = json_string_value(json_object_get(rep, "role"));
	if (!json_is_true(json_object_get(rep, "ok")) || role == NULL) {
		set_unreachable(c, NARF_EPROTO);
	} else {
		json_object_set_new(c, "reachable", json_true());
		json_object_set_new(c, "role", json_string(role));
		if (json_is_integer(json_object_get(rep, "term")))
			json_object_set(c, "term",
			                json_object_get(rep, "term"));
		if (json_object_get(c, "id") == NULL &&
		    json_is_integer(json_object_get(rep, "id")))
			json_object_set(c, "id", json_object_get(rep, "id"));
	}
}

/* INFO's bulk text, or NULL with the reason recorded in the node. */
static const char *info_text(json_t *n,
                             const struct narf_cli_fan *f,
                             struct narf_reply *r)
{
	if (f->err != 0) {
		set_unreachable(n, f->err);
		if (f->why[0] != '\0') /* a TLS failure says more */
			json_object_set_new(n, "probe_error",
			                    json_string(f->why));
		return NULL;
	}
	if (narf_reply_parse(f->reply.data, f->reply.len, NULL, r, NULL) !=
	    NARF_RESP_DONE) {
		set_unreachable(n, NARF_EPROTO);
		return NULL;
	}
	json_object_set_new(n, "reachable", json_true());
	if (r->type == NARF_REPLY_ERROR) {
		/* It answers, but will not say (a password, say). */
		json_object_set_new(n, "probe_error",
		                    json_stringn(r->str, r->len));
		return NULL;
	}
	if (r->type != NARF_REPLY_BULK) {
		set_unreachable(n, NARF_EPROTO);
		return NULL;
	}
	return r->str;
}

static void merge_info(struct probe *p, const struct narf_cli_fan *f)
{
	struct narf_reply r = {.type = NARF_REPLY_NIL};
	const char *text = info_text(p->obj, f, &r);
	uint64_t v;

	p->at_ms = narf_cli_now_ms();
	if (text != NULL) {
		if (narf_info_keys(text, r.len, &v) == 0)
			json_object_set_new(p->obj, "keys",
			                    json_integer((json_int_t)v));
		if (narf_info_u64(text, r.len, "used_memory", &v) == 0)
			json_object_set_new(p->obj, "used_memory",
			                    json_integer((json_int_t)v));
		if (narf_info_u64(text, r.len, "instantaneous_ops_per_sec",
		                  &v) == 0)
			json_object_set_new(p->obj, "ops_per_sec",
			                    json_integer((json_int_t)v));
		p->have_commands =
		        narf_info_u64(text, r.len, "total_commands_processed",
		                      &p->commands) == 0;
	}
	narf_reply_free(&r);
}

/* The rate between an earlier sample and p; our own INFO is not counted. */
static void set_rate(struct probe *p, uint64_t before, int64_t before_ms)
{
	int64_t dt = p->at_ms - before_ms;
	uint64_t delta = p->commands > before ? p->commands - before - 1 : 0;

	if (dt < OPS_MIN_MS || dt > OPS_MAX_MS ||
	    json_object_get(p->obj, "ops_per_sec") != NULL)
		return;
	json_object_set_new(
	        p->obj, "ops_per_sec",
	        json_integer((json_int_t)(delta * 1000 / (uint64_t)dt)));
}

static const struct sample *find_sample(const struct history *h,
                                        const json_t *n)
{
	long long id = json_integer_value(json_object_get(n, "id"));
	const char *addr = json_string_value(json_object_get(n, "addr"));

	for (unsigned i = 0; h != NULL && i < h->n; i++)
		if (h->s[i].id == id && addr != NULL &&
		    strcmp(h->s[i].addr, addr) == 0)
			return &h->s[i];
	return NULL;
}

/* A second INFO stats round for nodes without a rate yet. */
static void sample_again(struct probe *p, unsigned n, int64_t first_ms)
{
	struct narf_cli_fan *fan = calloc(n ? n : 1, sizeof(*fan));
	const char *argv[] = {"INFO", "stats"};
	size_t len[] = {4, 5};
	struct narf_buf req;
	unsigned k = 0, *which = calloc(n ? n : 1, sizeof(*which));

	narf_buf_init(&req);
	if (fan == NULL || which == NULL ||
	    narf_resp_command(&req, 2, argv, len) != 0)
		goto out;
	for (unsigned i = 0; i < n; i++) {
		if (!p[i].node || !p[i].have_commands ||
		    json_object_get(p[i].obj, "ops_per_sec") != NULL)
			continue;
		fan[k].addr =
		        json_string_value(json_object_get(p[i].obj, "addr"));
		fan[k].req = &req;
		fan[k].framing = NARF_CLI_RESP;
		narf_buf_init(&fan[k].reply);
		which[k++] = i;
	}
	if (k == 0)
		goto out;
	narf_cli_sleep_until(first_ms + OPS_SAMPLE_MS - narf_cli_now_ms(),
	                     first_ms + OPS_SAMPLE_MS);
	narf_cli_fanout(fan, k, narf_cli_now_ms() + PROBE_MS);
	for (unsigned j = 0; j < k; j++) {
		struct probe *q = &p[which[j]];
		uint64_t before = q->commands;
		int64_t before_ms = q->at_ms;
		struct narf_reply r;

		if (fan[j].err == 0 &&
		    narf_reply_parse(fan[j].reply.data, fan[j].reply.len, NULL,
		                     &r, NULL) == NARF_RESP_DONE) {
			if (r.type == NARF_REPLY_BULK &&
			    narf_info_u64(r.str, r.len,
			                  "total_commands_processed",
			                  &q->commands) == 0) {
				q->at_ms = narf_cli_now_ms();
				set_rate(q, before, before_ms);
			}
			narf_reply_free(&r);
		}
		narf_buf_close(&fan[j].reply);
	}
out:
	narf_buf_close(&req);
	free(which);
	free(fan);
}

/* Keep this frame's samples for the next one. */
static void remember(struct history *h, const struct probe *p, unsigned n)
{
	struct sample *s = calloc(n ? n : 1, sizeof(*s));
	unsigned k = 0;

	if (s == NULL)
		return;
	for (unsigned i = 0; i < n; i++) {
		const char *addr;

		if (!p[i].node || !p[i].have_commands)
			continue;
		addr = json_string_value(json_object_get(p[i].obj, "addr"));
		s[k].id = json_integer_value(json_object_get(p[i].obj, "id"));
		snprintf(s[k].addr, sizeof(s[k].addr), "%s", addr ? addr : "");
		s[k].commands = p[i].commands;
		s[k++].at_ms = p[i].at_ms;
	}
	free(h->s);
	h->s = s;
	h->n = k;
}

/* Entries of arr to probe: coordinators with an API address, nodes with
 * an address that are not removed. */
static unsigned collect(json_t *arr, bool node, struct probe *p, unsigned at)
{
	size_t i;
	json_t *o;

	json_array_foreach(arr, i, o)
	{
		const char *addr = json_string_value(
		        json_object_get(o, node ? "addr" : "api"));
		const char *state =
		        json_string_value(json_object_get(o, "state"));

		if (addr == NULL ||
		    (node && state && strcmp(state, "removed") == 0))
			continue;
		p[at].obj = o;
		p[at++].node = node;
	}
	return at;
}

/*
 * Ping the coordinators and INFO the nodes of st, and merge the answers.
 * h (may be NULL) holds the previous frame's samples; without a usable one
 * a node is sampled twice for its rate.
 */
static void probe_all(json_t *st, struct history *h)
{
	json_t *coords = json_object_get(st, "coordinators");
	json_t *nodes = json_object_get(st, "nodes");
	unsigned n =
	        (unsigned)(json_array_size(coords) + json_array_size(nodes));
	struct probe *p = calloc(n ? n : 1, sizeof(*p));
	struct narf_cli_fan *fan = calloc(n ? n : 1, sizeof(*fan));
	struct coord_ping *cp = calloc(n ? n : 1, sizeof(*cp));
	const char *argv[] = {"INFO", "memory", "stats", "keyspace"};
	size_t len[] = {4, 6, 5, 8};
	struct narf_buf info;
	int64_t start = narf_cli_now_ms();
	bool again = false;
	unsigned nc;

	narf_buf_init(&info);
	if (p == NULL || fan == NULL || cp == NULL ||
	    narf_resp_command(&info, 4, argv, len) != 0)
		goto out;
	nc = n = collect(coords, false, p, 0);
	n = collect(nodes, true, p, n);
	for (unsigned i = 0; i < nc; i++) {
		cp[i].addr =
		        json_string_value(json_object_get(p[i].obj, "api"));
		cp[i].err = NARF_ENOMEM;
		cp[i].started = pthread_create(&cp[i].thread, NULL,
		                               coord_ping_run, &cp[i]) == 0;
	}
	for (unsigned i = nc; i < n; i++) {
		fan[i].addr =
		        json_string_value(json_object_get(p[i].obj, "addr"));
		fan[i].req = &info;
		fan[i].framing = NARF_CLI_RESP;
		narf_buf_init(&fan[i].reply);
	}
	narf_cli_fanout(fan + nc, n - nc, start + PROBE_MS);
	for (unsigned i = 0; i < nc; i++)
		if (cp[i].started)
			pthread_join(cp[i].thread, NULL);
	for (unsigned i = 0; i < n; i++) {
		const struct sample *prev;

		if (!p[i].node) {
			merge_ping(p[i].obj, &cp[i]);
			continue;
		}
		merge_info(&p[i], &fan[i]);
		prev = find_sample(h, p[i].obj);
		if (p[i].have_commands && prev != NULL)
			set_rate(&p[i], prev->commands, prev->at_ms);
		again = again || (p[i].have_commands &&
		                  !json_object_get(p[i].obj, "ops_per_sec"));
	}
	if (again)
		sample_again(p, n, start);
	if (h != NULL)
		remember(h, p, n);
out:
	for (unsigned i = 0; fan != NULL && i < n; i++)
		narf_buf_close(&fan[i].reply);
	for (unsigned i = 0; cp != NULL && i < n; i++)
		json_decref(cp[i].reply);
	narf_buf_close(&info);
	free(cp);
	free(fan);
	free(p);
}

/* The leader's status object (a new reference), or NULL with rc set. */
static json_t *fetch_status(const struct narf_cli_options *o,
                            int timeout_ms,
                            int *rc,
                            char *errmsg)
{
	json_t *req = json_pack("{s:s}", "op", "status"), *reply = NULL, *st;

	*rc = narf_jclient_call_leader(o->coord, req, timeout_ms, &reply,
	                               errmsg);
	json_decref(req);
	if (*rc != 0)
		return NULL;
	st = json_object_get(reply, "status");
	if (!json_is_true(json_object_get(reply, "ok")) ||
	    !json_is_object(st)) {
		const char *e =
		        json_string_value(json_object_get(reply, "error"));

		snprintf(errmsg, NARF_ERRMSG_SIZE,
		         "the leader sent no status object (%s)",
		         e ? e : "malformed reply");
		*rc = e != NULL && strcmp(e, "auth_failed") == 0 ? NARF_EAUTH
		                                                 : NARF_EPROTO;
		json_decref(reply);
		return NULL;
	}
	json_incref(st);
	json_decref(reply);
	return st;
}

/* Without a leader: the coordinators of --coord as their pings say. */
static json_t *coords_only(const struct narf_cli_options *o)
{
	json_t *st = json_object(), *arr = json_array();
	const char *p = o->coord;

	for (int i = 0; i < NARF_MAX_COORDS * 2; i++) {
		size_t n = strcspn(p, ",");

		json_array_append_new(arr, json_pack("{s:s%}", "api", p, n));
		if (p[n] == '\0')
			break;
		p += n + 1;
	}
	json_object_set_new(st, "coordinators", arr);
	probe_all(st, NULL);
	return st;
}

static void print_json(const json_t *obj, bool compact)
{
	char *text =
	        json_dumps(obj, compact ? JSON_COMPACT
	                                : JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (text != NULL)
		printf("%s\n", text);
	free(text);
}

/* One frame: fetch, probe, print. Returns the exit code. */
static int frame(const struct narf_cli_options *o, struct history *h)
{
	char errmsg[NARF_ERRMSG_SIZE] = "";
	int rc, timeout = (int)o->timeout_ms;
	json_t *st;

	if (o->watch && timeout > WATCH_STATUS_MS)
		timeout = WATCH_STATUS_MS;
	st = fetch_status(o, timeout, &rc, errmsg);
	if (st == NULL) {
		json_t *c = rc == NARF_EINVAL ? NULL : coords_only(o);

		if (o->json && o->watch && c != NULL) {
			json_object_set_new(c, "error", json_string(errmsg));
			print_json(c, true);
		} else if (!o->json && c != NULL) {
			printf("%snarf cluster%s  no leader answered\n",
			       narf_cli_sty->bold, narf_cli_sty->reset);
			narf_cli_print_coordinators(c);
			printf("\n");
			narf_cli_warn_coordinators(c);
		}
		json_decref(c);
		fflush(stdout);
		return narf_cli_report_coord(o, rc, errmsg);
	}
	probe_all(st, o->watch ? h : NULL);
	if (o->json)
		print_json(st, o->watch);
	else
		narf_cli_print_dashboard(st);
	json_decref(st);
	return EXIT_OK;
}

/* --watch: a frame every second until interrupted; on a terminal each
 * frame replaces the last, elsewhere they follow each other (one JSON
 * object per line with --json). */
static int watch(const struct narf_cli_options *o)
{
	struct history h = {NULL, 0};
	bool tty = isatty(STDOUT_FILENO);

	for (unsigned long long n = 0;; n++) {
		int64_t start = narf_cli_now_ms();
		char stamp[32];
		time_t now = time(NULL);
		struct tm tm;

		if (!o->json) {
			strftime(stamp, sizeof(stamp), "%H:%M:%S",
			         localtime_r(&now, &tm));
			if (tty)
				printf("\033[H\033[2J");
			else if (n > 0)
				printf("\n");
			printf("%s%s  every 1s, Ctrl-C to stop%s\n",
			       narf_cli_sty->dim, stamp, narf_cli_sty->reset);
		}
		frame(o, &h);
		if (fflush(stdout) != 0 || ferror(stdout)) {
			free(h.s);
			return EXIT_ERROR;
		}
		narf_cli_sleep_until(WATCH_MS - (narf_cli_now_ms() - start),
		                     start + WATCH_MS);
	}
}

int narf_cli_status(const struct narf_cli_options *o)
{
	if (o->nargs > 1)
		narf_usage_error(NARF_CLI_PROG,
		                 "status takes no arguments, got '%s'",
		                 o->args[1]);
	if (o->watch)
		return watch(o);
	return frame(o, NULL);
}
