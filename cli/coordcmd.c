/*
 * cachecli coord status | add | remove | replace (see coordcmd.h).
 *
 * Happy path of `coord replace OLD NEW_RAFT NEW_API`: ask the new member
 * (already started with `coord --join`) for its id over its own API
 * (`ping`), send coord_replace to the leader (common/jclient.c follows
 * not_leader), then poll the leader's `coords` until the Raft configuration
 * holds the new trio, and print it with the CACHE_COORD line to use from
 * now on.
 *
 * Failure modes: a request that reaches a new leader after the old one
 * applied it is answered "done" (the coordinator recognises the member
 * already listed); a change the leader refuses (in flight, id used before,
 * address taken) is one line on stderr and exit 1; a change accepted but
 * unfinished when --timeout runs out is exit 1 too, saying that it goes on
 * and how to follow it.
 */
#include "coordcmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "common/errors.h"
#include "common/flags.h"
#include "common/jclient.h"
#include "common/map.h"

#define POLL_MS 100
#define NEW_MEMBER_WAIT_MS 3000

enum { EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_UNREACHABLE };

static const char *const prog = "cachecli";

/* One coord command's context. */
struct ctx {
	const char *coords; /* borrowed: --coord */
	int json;
	uint64_t timeout_ms;
	uint64_t deadline; /* monotonic ms */
	const char *what;  /* "coord replace", for messages */
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int left_ms(const struct ctx *x)
{
	uint64_t now = now_ms();

	return now >= x->deadline ? 0 : (int)(x->deadline - now);
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

static const char *str(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s ? s : "";
}

static uint64_t parse_id(const char *text, const char *what)
{
	uint64_t id;

	if (narf_parse_u64(text, 1, 1000000, &id) != 0)
		narf_usage_error(prog, "bad %s '%s': expected 1 to 1000000",
		                 what, text);
	return id;
}

static void parse_addr(const char *text, const char *what)
{
	char host[NARF_ADDR_SIZE];
	int port;

	if (narf_parse_hostport(text, host, sizeof(host), &port) != 0 ||
	    !narf_map_valid_addr(text))
		narf_usage_error(prog, "bad %s '%s': expected host:port", what,
		                 text);
}

/* A jclient failure as one line and its exit code. */
static int call_failed(const struct ctx *x, int rc, const char *errmsg)
{
	if (rc == NARF_EINVAL) {
		fprintf(stderr, "%s: %s\n", prog, errmsg);
		return EXIT_USAGE;
	}
	if (rc == NARF_ECONNECT)
		fprintf(stderr,
		        "%s: %s: no coordinator reachable at %s: is the "
		        "cluster running? (check --coord or CACHE_COORD)\n",
		        prog, x->what, x->coords);
	else
		fprintf(stderr,
		        "%s: %s: no usable answer from the coordinators at %s "
		        "(%s): is a majority of them up?\n",
		        prog, x->what, x->coords, errmsg);
	return EXIT_UNREACHABLE;
}

/* Ask the leader; *reply is a new reference (ok or an error reply). */
static int ask(const struct ctx *x, json_t *req, json_t **reply)
{
	char errmsg[NARF_ERRMSG_SIZE] = "";
	int left = left_ms(x), rc;

	rc = narf_jclient_call_leader(x->coords, req, left > 0 ? left : 1,
	                              reply, errmsg);
	json_decref(req);
	return rc == 0 ? 0 : call_failed(x, rc, errmsg);
}

static int refused(const struct ctx *x, const json_t *reply)
{
	fprintf(stderr, "%s: %s failed: %s: %s\n", prog, x->what,
	        str(reply, "error"), str(reply, "message"));
	return EXIT_ERROR;
}

static const json_t *find(const json_t *arr, uint64_t id)
{
	const json_t *e;
	size_t i;

	json_array_foreach(arr, i, e)
	{
		if ((uint64_t)json_integer_value(json_object_get(e, "id")) ==
		    id)
			return e;
	}
	return NULL;
}

/* The leader's `coords` shows the change done: nothing in flight, want
 * (0 for none) a voter in the table, gone (0 for none) neither listed nor
 * in the configuration. */
static bool settled(const json_t *st, uint64_t want, uint64_t gone)
{
	const json_t *t = json_object_get(st, "coordinators");
	const json_t *w = want ? find(t, want) : NULL;

	if (!json_is_false(json_object_get(st, "changing")))
		return false;
	if (want && (w == NULL || strcmp(str(w, "raft_role"), "voter") != 0))
		return false;
	return gone == 0 ||
	       (find(t, gone) == NULL &&
	        find(json_object_get(st, "leaving"), gone) == NULL);
}

static void print_trio(const json_t *st)
{
	const json_t *arr = json_object_get(st, "coordinators"), *e;
	size_t i;

	printf("coordinators:");
	json_array_foreach(arr, i, e)
	{
		printf("%s %lld %s", i ? "," : "",
		       (long long)json_integer_value(json_object_get(e, "id")),
		       str(e, "api"));
	}
	printf("\nexport CACHE_COORD=");
	json_array_foreach(arr, i, e)
	{
		printf("%s%s", i ? "," : "", str(e, "api"));
	}
	printf("\n");
}

static int print_json(const json_t *st)
{
	char *text = json_dumps(st, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (text == NULL)
		return EXIT_ERROR;
	printf("%s\n", text);
	free(text);
	return EXIT_OK;
}

/* Poll `coords` until settled(); *out (a new reference) is the last
 * answer. Returns an exit code. */
static int wait_settled(const struct ctx *x,
                        uint64_t want,
                        uint64_t gone,
                        json_t **out)
{
	json_t *st = NULL;
	int rc;

	for (;;) {
		json_decref(st);
		st = NULL;
		rc = ask(x, json_pack("{s:s}", "op", "coords"), &st);
		if (rc != 0)
			return rc;
		if (!json_is_true(json_object_get(st, "ok"))) {
			rc = refused(x, st);
			json_decref(st);
			return rc;
		}
		if (settled(st, want, gone)) {
			*out = st;
			return EXIT_OK;
		}
		if (left_ms(x) <= POLL_MS)
			break;
		sleep_ms(POLL_MS);
	}
	fprintf(stderr,
	        "%s: %s: accepted, but not finished within %llums (now: "
	        "%s%s%s): the leader goes on; follow it with 'cachecli coord "
	        "status'\n",
	        prog, x->what, (unsigned long long)x->timeout_ms,
	        str(st, "step")[0] ? str(st, "step") : "waiting",
	        str(st, "last_error")[0] ? "; last error: " : "",
	        str(st, "last_error"));
	json_decref(st);
	return EXIT_ERROR;
}

/* Send a change, then wait for it; print the outcome. gone_checked: gone
 * was listed just before (check_table()). */
static int change(const struct ctx *x,
                  json_t *req,
                  uint64_t want,
                  uint64_t gone,
                  bool gone_checked)
{
	json_t *reply = NULL, *st = NULL;
	uint64_t t0 = now_ms();
	int rc = ask(x, req, &reply);

	if (rc != 0)
		return rc;
	/* A remove retried after its first try applied (the reply was lost
	 * to a leader change) finds the member gone: done. */
	if (!json_is_true(json_object_get(reply, "ok")) &&
	    !(gone_checked &&
	      strcmp(str(reply, "error"), "unknown_node") == 0)) {
		rc = refused(x, reply);
		json_decref(reply);
		return rc;
	}
	json_decref(reply);
	rc = wait_settled(x, want, gone, &st);
	if (rc != 0)
		return rc;
	if (x->json) {
		rc = print_json(st);
	} else {
		if (want && gone)
			printf("coordinator %llu replaced by %llu",
			       (unsigned long long)gone,
			       (unsigned long long)want);
		else if (want)
			printf("coordinator %llu added",
			       (unsigned long long)want);
		else
			printf("coordinator %llu removed: it stops by itself; "
			       "wipe its --data-dir before reusing it",
			       (unsigned long long)gone);
		printf(" (%.1fs)\n", (double)(now_ms() - t0) / 1000);
		print_trio(st);
	}
	json_decref(st);
	return rc;
}

static int coord_status(const struct ctx *x)
{
	json_t *st = NULL, *arr, *e;
	size_t i;
	int rc = ask(x, json_pack("{s:s}", "op", "coords"), &st);

	if (rc != 0)
		return rc;
	if (!json_is_true(json_object_get(st, "ok"))) {
		rc = refused(x, st);
	} else if (x->json) {
		json_object_del(st, "ok");
		rc = print_json(st);
	} else {
		printf("coordinators (leader %lld, epoch %lld, next free id "
		       "%lld)\n",
		       (long long)json_integer_value(
		               json_object_get(st, "leader")),
		       (long long)json_integer_value(
		               json_object_get(st, "epoch")),
		       (long long)json_integer_value(
		               json_object_get(st, "next_coord")));
		printf("  %-4s %-22s %-22s %-8s %s\n", "ID", "RAFT", "API",
		       "RAFT", "REACHABLE");
		arr = json_object_get(st, "coordinators");
		json_array_foreach(arr, i, e)
		{
			printf("  %-4lld %-22s %-22s %-8s %s\n",
			       (long long)json_integer_value(
			               json_object_get(e, "id")),
			       str(e, "raft"), str(e, "api"),
			       str(e, "raft_role"),
			       json_is_true(json_object_get(e, "reachable"))
			               ? "yes"
			               : "no");
		}
		arr = json_object_get(st, "leaving");
		json_array_foreach(arr, i, e)
		{
			printf("  %-4lld %-22s %-22s %-8s %s  (leaving)\n",
			       (long long)json_integer_value(
			               json_object_get(e, "id")),
			       str(e, "raft"), "-", str(e, "raft_role"),
			       json_is_true(json_object_get(e, "reachable"))
			               ? "yes"
			               : "no");
		}
		if (json_is_true(json_object_get(st, "changing")))
			printf("change in progress: %s\n",
			       str(st, "step")[0] ? str(st, "step")
			                          : "starting");
		else
			printf("the Raft configuration matches the table\n");
		if (str(st, "last_error")[0])
			printf("last error: %s\n", str(st, "last_error"));
	}
	json_decref(st);
	return rc;
}

/* The new member's id, read from its own API; its Raft address must be
 * raft. Returns 0 or an exit code. */
static int new_member_id(const struct ctx *x,
                         const char *raft,
                         const char *api,
                         uint64_t *id)
{
	char errmsg[NARF_ERRMSG_SIZE] = "";
	json_t *req = json_pack("{s:s}", "op", "ping"), *r = NULL;
	uint64_t until = now_ms() + NEW_MEMBER_WAIT_MS;
	int rc;

	/* A member started a moment ago may not listen yet. */
	do {
		int left = left_ms(x);

		rc = narf_jclient_call(api, req, left < 1000 ? left : 1000, &r,
		                       errmsg);
		if (rc != NARF_ECONNECT || left_ms(x) <= POLL_MS ||
		    now_ms() >= until)
			break;
		sleep_ms(POLL_MS);
	} while (true);
	json_decref(req);
	if (rc != 0 || !json_is_integer(json_object_get(r, "id"))) {
		fprintf(stderr,
		        "%s: %s: no coordinator answers at %s (%s): start the "
		        "new member first: coord --join %s --id NEW_ID --raft "
		        "%s --api %s --data-dir EMPTY_DIR\n",
		        prog, x->what, api,
		        rc ? errmsg : "not a coordinator API port", x->coords,
		        raft, api);
		json_decref(r);
		return EXIT_ERROR;
	}
	if (strcmp(str(r, "raft"), raft) != 0) {
		fprintf(stderr,
		        "%s: %s: the coordinator at %s has Raft address %s, "
		        "not %s\n",
		        prog, x->what, api, str(r, "raft"), raft);
		json_decref(r);
		return EXIT_ERROR;
	}
	*id = (uint64_t)json_integer_value(json_object_get(r, "id"));
	json_decref(r);
	return 0;
}

/* Check the table before a change: old (0 for none) must be listed and
 * new (0 for none) must not, so that a later "done" from the leader (a
 * retried request whose first try applied) can only mean our change.
 * Returns 0 or an exit code, after one line on stderr. */
static int check_table(const struct ctx *x, uint64_t old, uint64_t new)
{
	json_t *st = NULL;
	const json_t *t;
	int rc = ask(x, json_pack("{s:s}", "op", "coords"), &st);

	if (rc != 0)
		return rc;
	t = json_object_get(st, "coordinators");
	if (!json_is_true(json_object_get(st, "ok"))) {
		rc = refused(x, st);
	} else if (old != 0 && find(t, old) == NULL) {
		fprintf(stderr,
		        "%s: %s failed: no coordinator %llu in the table (see "
		        "'cachecli coord status')\n",
		        prog, x->what, (unsigned long long)old);
		rc = EXIT_ERROR;
	} else if (new != 0 && find(t, new) != NULL) {
		fprintf(stderr,
		        "%s: %s failed: coordinator %llu is already a member "
		        "(see 'cachecli coord status')\n",
		        prog, x->what, (unsigned long long)new);
		rc = EXIT_ERROR;
	}
	json_decref(st);
	return rc;
}

static const char usage[] =
        "usage: cachecli coord status [--json] | add ID RAFT_ADDR API_ADDR | "
        "remove ID | replace OLD_ID NEW_RAFT_ADDR NEW_API_ADDR";

static void need(int nargs, int want)
{
	if (nargs != want)
		narf_usage_error(prog, "%s", usage);
}

int narf_cli_coord(const char *coords,
                   uint64_t timeout_ms,
                   int json,
                   int nargs,
                   char **args)
{
	struct ctx x = {
	        .coords = coords,
	        .json = json,
	        .timeout_ms = timeout_ms,
	        .deadline = now_ms() + timeout_ms,
	};
	const char *sub = nargs > 1 ? args[1] : "";
	uint64_t id, old;
	int rc;

	if (strcmp(sub, "status") == 0) {
		need(nargs, 2);
		x.what = "coord status";
		return coord_status(&x);
	}
	if (strcmp(sub, "add") == 0) {
		need(nargs, 5);
		id = parse_id(args[2], "coordinator id");
		parse_addr(args[3], "Raft address");
		parse_addr(args[4], "API address");
		x.what = "coord add";
		rc = check_table(&x, 0, id);
		if (rc != 0)
			return rc;
		return change(&x,
		              json_pack("{s:s,s:I,s:s,s:s}", "op", "coord_add",
		                        "id", (json_int_t)id, "raft", args[3],
		                        "api", args[4]),
		              id, 0, false);
	}
	if (strcmp(sub, "remove") == 0) {
		need(nargs, 3);
		id = parse_id(args[2], "coordinator id");
		x.what = "coord remove";
		rc = check_table(&x, id, 0);
		if (rc != 0)
			return rc;
		return change(&x,
		              json_pack("{s:s,s:I}", "op", "coord_remove", "id",
		                        (json_int_t)id),
		              0, id, true);
	}
	if (strcmp(sub, "replace") == 0) {
		need(nargs, 5);
		old = parse_id(args[2], "coordinator id");
		parse_addr(args[3], "Raft address");
		parse_addr(args[4], "API address");
		x.what = "coord replace";
		rc = new_member_id(&x, args[3], args[4], &id);
		if (rc == 0)
			rc = check_table(&x, old, id);
		if (rc != 0)
			return rc;
		return change(&x,
		              json_pack("{s:s,s:I,s:I,s:s,s:s}", "op",
		                        "coord_replace", "old", (json_int_t)old,
		                        "id", (json_int_t)id, "raft", args[3],
		                        "api", args[4]),
		              id, old, false);
	}
	if (sub[0] == '\0')
		narf_usage_error(prog, "missing coord command: %s", usage);
	narf_usage_error(prog, "unknown coord command '%s': %s", sub, usage);
}
