/*
 * cachecli's data path (see data.h).
 *
 * The happy path of a command: the map is fetched once (or is already
 * cached), the key's slot names its primary, the request goes there over a
 * pooled connection, and the reply comes back.
 *
 * Failure modes, and what each attempt does about them:
 *  - connection refused, reset or timed out: the node is skipped for this
 *    command until the map changes, the map is refreshed, and the request
 *    goes to the next candidate (the primary again if the map moved,
 *    otherwise any other up node, which forwards it to the primary);
 *  - -MOVED slot addr: the map is refreshed and the request goes to addr;
 *  - -TRYAGAIN, -CLUSTERDOWN (a primary that just died, a lease lapsed
 *    during an election): the map is refreshed after a pause;
 *  - every candidate failed: pause, forget the failures, start again;
 *  - a reply too big to read (NARF_ETOOLARGE): every node would send the
 *    same, so the command ends at once.
 * Pauses grow from 25 ms to 400 ms. A single attempt waits at most half the
 * timeout (at least 2 s), so a stopped node cannot eat all of it; the whole
 * command gives up at the timeout with the last failure in errmsg.
 *
 * A retried write may run twice (its first reply was lost): SET and DEL
 * are idempotent in effect, but DEL's count or SET NX's answer may then
 * describe the retry rather than the first run.
 */
#include "data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/jclient.h"
#include "common/resp.h"
#include "common/slot.h"
#include "net.h"

#define BACKOFF_MIN_MS 25
#define BACKOFF_MAX_MS 400
#define MIN_ATTEMPT_MS 2000
#define REFRESH_CAP_MS 1000 /* map refresh while a map is cached */
#define MAX_ATTEMPTS 1000   /* a bound besides time: loops end */
#define MAX_FAILED 16       /* nodes remembered as failed per command */
#define SCAN_COUNT "1000"
#define SCAN_MAX_CALLS 100000000ull /* per node: a bound, never reached */

void narf_cli_cluster_init(struct narf_cli_cluster *cl,
                           const char *coords,
                           uint64_t timeout_ms)
{
	memset(cl, 0, sizeof(*cl));
	cl->coords = coords;
	cl->timeout_ms = timeout_ms;
	narf_map_init(&cl->map, NULL);
	for (unsigned i = 0; i < NARF_CLI_POOL; i++)
		narf_cli_sock_init(&cl->conns[i].sock);
}

static void conn_close(struct narf_cli_conn *c)
{
	narf_cli_sock_close(&c->sock);
	c->addr[0] = '\0';
}

void narf_cli_cluster_close(struct narf_cli_cluster *cl)
{
	if (cl == NULL)
		return;
	for (unsigned i = 0; i < NARF_CLI_POOL; i++)
		conn_close(&cl->conns[i]);
	narf_map_close(&cl->map);
}

static int64_t remaining(int64_t deadline)
{
	int64_t left = deadline - narf_cli_now_ms();

	return left > 0 ? left : 0;
}

int narf_cli_cluster_refresh(struct narf_cli_cluster *cl, int64_t deadline)
{
	json_t *req, *rep = NULL;
	int rv;

	if (cl->have_map)
		req = json_pack("{s:s,s:I}", "op", "map", "epoch",
		                (json_int_t)cl->map.epoch);
	else
		req = json_pack("{s:s}", "op", "map");
	if (req == NULL)
		return NARF_ENOMEM;
	cl->errmsg[0] = '\0';
	rv = narf_jclient_call_leader(cl->coords, req,
	                              (int)(remaining(deadline) + 1), &rep,
	                              cl->errmsg);
	json_decref(req);
	if (rv != 0)
		return rv;
	if (!json_is_true(json_object_get(rep, "ok"))) {
		const char *e =
		        json_string_value(json_object_get(rep, "error"));

		snprintf(cl->errmsg, sizeof(cl->errmsg),
		         "the coordinator refused the map request: %s",
		         e ? e : "?");
		rv = e != NULL && strcmp(e, "auth_failed") == 0 ? NARF_EAUTH
		                                                : NARF_EPROTO;
	} else if (json_is_true(json_object_get(rep, "current")) &&
	           cl->have_map) {
		cl->map_ms = narf_cli_now_ms();
	} else if (narf_map_from_json(&cl->map, json_object_get(rep, "map"),
	                              cl->errmsg) != 0) {
		rv = NARF_EPROTO;
	} else {
		cl->have_map = true;
		cl->map_ms = narf_cli_now_ms();
	}
	json_decref(rep);
	return rv;
}

/* --- pooled connections -------------------------------------------------- */

static struct narf_cli_conn *pool_get(struct narf_cli_cluster *cl,
                                      const char *addr)
{
	struct narf_cli_conn *c;

	for (unsigned i = 0; i < NARF_CLI_POOL; i++)
		if (cl->conns[i].sock.fd >= 0 &&
		    strcmp(cl->conns[i].addr, addr) == 0)
			return &cl->conns[i];
	for (unsigned i = 0; i < NARF_CLI_POOL; i++)
		if (cl->conns[i].sock.fd < 0)
			return &cl->conns[i];
	c = &cl->conns[cl->next_conn++ % NARF_CLI_POOL];
	conn_close(c);
	return c;
}

/* The data port's credential (narf_cli_set_data_auth); borrowed. */
static const char *data_user, *data_pass;

void narf_cli_set_data_auth(const char *user, const char *pass)
{
	data_user = user;
	data_pass = pass;
}

/* AUTH [user] password on a fresh connection; 0, or NARF_EAUTH with the
 * node's answer in cl->errmsg. */
static int node_auth(struct narf_cli_cluster *cl,
                     struct narf_cli_conn *c,
                     int64_t deadline)
{
	const char *argv[3] = {"AUTH", data_user, data_pass};
	size_t len[3] = {4, data_user ? strlen(data_user) : 0,
	                 strlen(data_pass)};
	struct narf_buf req, rep;
	int rv;

	if (data_user == NULL) {
		argv[1] = data_pass;
		len[1] = len[2];
	}
	narf_buf_init(&req);
	narf_buf_init(&rep);
	rv = narf_resp_command(&req, data_user ? 3 : 2, argv, len) != 0
	             ? NARF_ENOMEM
	             : narf_cli_exchange(&c->sock, &req, NARF_CLI_RESP,
	                                 deadline, &rep);
	if (rv == 0 && (rep.len < 3 || memcmp(rep.data, "+OK", 3) != 0)) {
		const char *cr =
		        rep.len ? memchr(rep.data, '\r', rep.len) : NULL;
		int n = cr ? (int)(cr - rep.data) : (int)rep.len;

		snprintf(cl->errmsg, sizeof(cl->errmsg),
		         "%s refused AUTH: %.*s", c->addr, n > 200 ? 200 : n,
		         rep.len ? rep.data : "");
		rv = NARF_EAUTH;
	}
	explicit_bzero(req.data, req.len);
	narf_buf_close(&req);
	narf_buf_close(&rep);
	return rv;
}

/*
 * A TLS failure on s (its why set) goes into cl->errmsg. A certificate
 * refused, or a port that does not speak TLS, will be so again: it sets
 * cl->tls_error, which ends the command at once (the caller's flags are
 * wrong, no retry helps). A connection closed or timed out mid-handshake
 * (a node going down) is retried as any other failure.
 */
static int tls_failed(struct narf_cli_cluster *cl,
                      const char *addr,
                      const struct narf_cli_sock *s,
                      int rv)
{
	if (s->why[0] == '\0')
		return rv;
	snprintf(cl->errmsg, sizeof(cl->errmsg), "%s: %s", addr, s->why);
	if (rv == NARF_EAUTH || rv == NARF_EPROTO)
		cl->tls_error = true;
	return rv;
}

/*
 * One exchange with addr over a pooled connection. A kept connection the
 * node has closed meanwhile (its idle timeout) fails on first use: then one
 * fresh connection is tried before reporting the error. Any failure closes
 * the connection, so a late reply can never pass for the next one's.
 */
static int node_exchange(struct narf_cli_cluster *cl,
                         const char *addr,
                         const struct narf_buf *req,
                         int64_t deadline,
                         struct narf_buf *raw)
{
	struct narf_cli_conn *c = pool_get(cl, addr);
	int rv;

	cl->errmsg[0] = '\0';

	for (int tries = 0; tries < 2; tries++) {
		bool reused = c->sock.fd >= 0;

		if (!reused) {
			rv = narf_cli_connect(addr, deadline, &c->sock);
			if (rv != 0)
				return tls_failed(cl, addr, &c->sock, rv);
			snprintf(c->addr, sizeof(c->addr), "%s", addr);
			if (data_pass != NULL &&
			    (rv = node_auth(cl, c, deadline)) != 0) {
				conn_close(c);
				return rv;
			}
		}
		rv = narf_cli_exchange(&c->sock, req, NARF_CLI_RESP, deadline,
		                       raw);
		if (rv == 0)
			return 0;
		rv = tls_failed(cl, addr, &c->sock, rv);
		conn_close(c);
		if (!reused || rv != NARF_ECLOSED)
			return rv;
	}
	return rv;
}

/* --- routing ------------------------------------------------------------- */

static bool serves(const struct narf_map_node *n)
{
	return n != NULL &&
	       (n->state == NARF_NODE_UP || n->state == NARF_NODE_LEAVING);
}

struct attempt {
	char failed[MAX_FAILED][NARF_ADDR_SIZE];
	unsigned n_failed;
	uint64_t epoch; /* the map epoch the failures were seen at */
	char moved[NARF_ADDR_SIZE];
	unsigned redirects;          /* -MOVED answers so far */
	char last[NARF_ERRMSG_SIZE]; /* the last failure */
};

static bool has_failed(const struct attempt *a, const char *addr)
{
	for (unsigned i = 0; i < a->n_failed; i++)
		if (strcmp(a->failed[i], addr) == 0)
			return true;
	return false;
}

static void mark_failed(struct attempt *a, const char *addr)
{
	if (a->n_failed < MAX_FAILED && !has_failed(a, addr))
		snprintf(a->failed[a->n_failed++], NARF_ADDR_SIZE, "%s", addr);
}

/* Where to send a request for slot s now: the node a -MOVED named, else
 * the primary, else another node that serves, none of them failed. */
static const char *pick(const struct narf_map *m, unsigned s, struct attempt *a)
{
	const struct narf_map_node *p =
	        narf_map_node_get(m, m->slots[s].primary);

	if (a->moved[0] != '\0')
		return a->moved;
	if (serves(p) && !has_failed(a, p->addr))
		return p->addr;
	for (unsigned k = 0; k < m->n_nodes; k++) {
		/* start at a slot-dependent node to spread the load */
		const struct narf_map_node *n = &m->nodes[(s + k) % m->n_nodes];

		if (n->state == NARF_NODE_UP && !has_failed(a, n->addr))
			return n->addr;
	}
	return NULL;
}

/* What to do with addr's reply: 0 keep it, 1 retry at once, 2 retry after a
 * pause. The first -MOVED is followed at once; more of them (two nodes
 * whose maps disagree while a role changes) wait for the maps to settle. */
static int judge(const struct narf_reply *r,
                 const char *addr,
                 struct attempt *a)
{
	unsigned slot;
	char to[NARF_ADDR_SIZE];

	if (narf_reply_is_error(r, "MOVED") &&
	    narf_reply_moved(r->str, r->len, &slot, to) == 0) {
		snprintf(a->last, sizeof(a->last), "%s: -%.*s", addr,
		         (int)(r->len < 120 ? r->len : 120), r->str);
		/* a redirect to a node that just failed: its replacement is
		 * not in the maps yet; wait for them */
		if (has_failed(a, to))
			return 2;
		snprintf(a->moved, sizeof(a->moved), "%s", to);
		return a->redirects++ == 0 ? 1 : 2;
	}
	if (narf_reply_is_error(r, "TRYAGAIN") ||
	    narf_reply_is_error(r, "CLUSTERDOWN") ||
	    narf_reply_is_error(r, "LOADING")) {
		snprintf(a->last, sizeof(a->last), "%s: -%.*s", addr,
		         (int)(r->len < 160 ? r->len : 160), r->str);
		a->moved[0] = '\0';
		return 2;
	}
	return 0;
}

/* Refresh the map after a failure; a coordinator that does not answer is
 * not fatal while we have a map to route by. */
static int refresh_after_failure(struct narf_cli_cluster *cl,
                                 struct attempt *a,
                                 int64_t deadline)
{
	int64_t cap = narf_cli_now_ms() + REFRESH_CAP_MS;
	int rv = narf_cli_cluster_refresh(
	        cl, cl->have_map && cap < deadline ? cap : deadline);

	if (rv != 0 && !cl->have_map)
		return rv;
	if (cl->map.epoch != a->epoch) {
		a->n_failed = 0;
		a->epoch = cl->map.epoch;
	}
	return 0;
}

/* The deadline of one attempt: half the timeout, at least MIN_ATTEMPT_MS,
 * never past the command's deadline. */
static int64_t attempt_deadline(const struct narf_cli_cluster *cl,
                                int64_t deadline)
{
	int64_t cap = (int64_t)cl->timeout_ms / 2;
	int64_t end;

	if (cap < MIN_ATTEMPT_MS)
		cap = MIN_ATTEMPT_MS;
	end = narf_cli_now_ms() + cap;
	return end < deadline ? end : deadline;
}

static int64_t grow(int64_t backoff)
{
	return backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
}

int narf_cli_cluster_call(struct narf_cli_cluster *cl,
                          int argc,
                          const char *const *argv,
                          const size_t *argvlen,
                          int key,
                          struct narf_buf *raw,
                          struct narf_reply *reply)
{
	int64_t deadline = narf_cli_now_ms() + (int64_t)cl->timeout_ms;
	struct attempt a = {.n_failed = 0};
	unsigned slot = narf_slot_of(argv[key], argvlen[key]);
	int64_t backoff = BACKOFF_MIN_MS;
	struct narf_buf cmd;
	bool stale = !cl->have_map;
	int rv;

	cl->tls_error = false;
	narf_buf_init(&cmd);
	if (narf_resp_command(&cmd, argc, argv, argvlen) != 0) {
		rv = NARF_ENOMEM;
		goto out;
	}
	a.epoch = cl->map.epoch;
	rv = NARF_ETIMEOUT;
	for (int i = 0; i < MAX_ATTEMPTS && narf_cli_now_ms() < deadline; i++) {
		const char *addr;
		int what;

		if (stale) {
			rv = refresh_after_failure(cl, &a, deadline);
			if (rv != 0)
				goto out;
			rv = NARF_ETIMEOUT;
			stale = false;
		}
		addr = pick(&cl->map, slot, &a);
		if (addr == NULL) {
			/* every candidate failed: pause and start over */
			if (a.last[0] == '\0')
				snprintf(a.last, sizeof(a.last),
				         "no data node is up in the map");
			narf_cli_sleep_until(backoff, deadline);
			backoff = grow(backoff);
			a.n_failed = 0;
			stale = true;
			continue;
		}
		rv = node_exchange(cl, addr, &cmd,
		                   attempt_deadline(cl, deadline), raw);
		/* A refused password is refused again: report it now. So
		 * is a refused certificate, or a port without TLS. */
		if (rv == NARF_ENOMEM || rv == NARF_EAUTH || cl->tls_error)
			goto out;
		if (rv == 0) {
			int p = narf_reply_parse(raw->data, raw->len, NULL,
			                         reply, NULL);

			rv = p == NARF_RESP_DONE       ? 0
			     : p == NARF_REPLY_TOO_BIG ? NARF_ETOOLARGE
			                               : NARF_EPROTO;
		}
		/* So is a reply too big to read: any node would send it. */
		if (rv == NARF_ETOOLARGE) {
			snprintf(cl->errmsg, sizeof(cl->errmsg),
			         "%s answered with more than cachecli reads in "
			         "one reply (%zu elements, %zu MiB)",
			         addr, narf_reply_default_limits.max_elems,
			         NARF_CLI_MAX_REPLY >> 20);
			goto out;
		}
		if (rv != 0) {
			if (cl->errmsg[0] != '\0')
				snprintf(a.last, sizeof(a.last), "%s",
				         cl->errmsg);
			else
				snprintf(a.last, sizeof(a.last), "%s: %s", addr,
				         narf_strerror(rv));
			mark_failed(&a, addr);
			a.moved[0] = '\0';
			stale = true;
			rv = NARF_ETIMEOUT;
			continue;
		}
		what = judge(reply, addr, &a);
		if (what == 0)
			goto out;
		narf_reply_free(reply);
		stale = true;
		if (what == 2) {
			narf_cli_sleep_until(backoff, deadline);
			backoff = grow(backoff);
		}
	}
	rv = NARF_ETIMEOUT;
	snprintf(cl->errmsg, sizeof(cl->errmsg),
	         "no answer for slot %u within %llums; last: %s", slot,
	         (unsigned long long)cl->timeout_ms,
	         a.last[0] ? a.last : "nothing tried");
out:
	narf_buf_close(&cmd);
	return rv;
}

/* --- scan ---------------------------------------------------------------- */

struct scan {
	struct narf_cli_cluster *cl;
	const char *pattern;
	int (*cb)(void *arg, const char *key, size_t len);
	void *arg;
	bool covered[NARF_SLOTS];    /* slots whose primary has been scanned */
	bool mine[NARF_SLOTS];       /* slots of the node being scanned */
	char last[NARF_ERRMSG_SIZE]; /* the failure of the node scanned */
	char fail[NARF_ERRMSG_SIZE]; /* the last node failure of all */
	int stop;                    /* what cb returned, when non-zero */
};

/* SCAN one node to the end, handing over the keys of the slots in
 * sc->mine. Returns 0, a transport error, or NARF_EPROTO. */
static int scan_node(struct scan *sc, const char *addr)
{
	struct narf_cli_cluster *cl = sc->cl;
	uint64_t cursor = 0;
	struct narf_buf cmd, raw;
	int rv = 0;

	narf_buf_init(&cmd);
	narf_buf_init(&raw);
	for (uint64_t calls = 0; calls < SCAN_MAX_CALLS; calls++) {
		char cur[24];
		const char *argv[] = {"SCAN",      cur,     "MATCH",
		                      sc->pattern, "COUNT", SCAN_COUNT};
		size_t argvlen[6];
		const struct narf_reply *keys;
		struct narf_reply r;
		int64_t deadline = narf_cli_now_ms() + (int64_t)cl->timeout_ms;

		snprintf(cur, sizeof(cur), "%llu", (unsigned long long)cursor);
		for (int i = 0; i < 6; i++)
			argvlen[i] = strlen(argv[i]);
		cmd.len = 0;
		if (narf_resp_command(&cmd, 6, argv, argvlen) != 0) {
			rv = NARF_ENOMEM;
			break;
		}
		rv = node_exchange(cl, addr, &cmd, deadline, &raw);
		if (rv != 0)
			break;
		if (narf_reply_parse(raw.data, raw.len, NULL, &r, NULL) !=
		    NARF_RESP_DONE) {
			rv = NARF_EPROTO;
			break;
		}
		if (r.type == NARF_REPLY_ERROR) {
			snprintf(sc->last, sizeof(sc->last), "%s: -%.*s", addr,
			         (int)(r.len < 160 ? r.len : 160), r.str);
			narf_reply_free(&r);
			rv = NARF_EPROTO;
			break;
		}
		if (narf_reply_scan(&r, &cursor, &keys) != 0) {
			narf_reply_free(&r);
			rv = NARF_EPROTO;
			break;
		}
		for (size_t i = 0; i < keys->n && sc->stop == 0; i++) {
			const struct narf_reply *k = &keys->elems[i];

			if (sc->mine[narf_slot_of(k->str, k->len)])
				sc->stop = sc->cb(sc->arg, k->str, k->len);
		}
		narf_reply_free(&r);
		if (cursor == 0 || sc->stop != 0)
			break;
	}
	if (rv != 0 && sc->last[0] == '\0' && cl->errmsg[0] != '\0')
		snprintf(sc->last, sizeof(sc->last), "%s", cl->errmsg);
	else if (rv != 0 && sc->last[0] == '\0')
		snprintf(sc->last, sizeof(sc->last), "%s: %s", addr,
		         narf_strerror(rv));
	narf_buf_close(&cmd);
	narf_buf_close(&raw);
	return rv;
}

/* One pass over the nodes leading uncovered slots; the count of slots
 * still uncovered (served by someone) after it. */
static unsigned scan_pass(struct scan *sc, unsigned *unassigned)
{
	const struct narf_map *m = &sc->cl->map;
	unsigned left = 0;

	for (unsigned i = 0;
	     i < m->n_nodes && sc->stop == 0 && !sc->cl->tls_error; i++) {
		const struct narf_map_node *n = &m->nodes[i];
		bool any = false;

		for (unsigned s = 0; s < NARF_SLOTS; s++) {
			sc->mine[s] =
			        !sc->covered[s] && m->slots[s].primary == n->id;
			any = any || sc->mine[s];
		}
		if (!any)
			continue;
		sc->last[0] = '\0';
		if (scan_node(sc, n->addr) != 0)
			memcpy(sc->fail, sc->last, sizeof(sc->fail));
		else if (sc->stop == 0)
			for (unsigned s = 0; s < NARF_SLOTS; s++)
				sc->covered[s] = sc->covered[s] || sc->mine[s];
	}
	*unassigned = 0;
	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		if (m->slots[s].primary == 0)
			(*unassigned)++;
		else if (!sc->covered[s])
			left++;
	}
	return left;
}

int narf_cli_cluster_scan(struct narf_cli_cluster *cl,
                          const char *pattern,
                          int (*cb)(void *arg, const char *key, size_t len),
                          void *arg,
                          unsigned *unassigned)
{
	struct scan *sc = calloc(1, sizeof(*sc));
	int64_t deadline = narf_cli_now_ms() + (int64_t)cl->timeout_ms;
	int64_t backoff = BACKOFF_MIN_MS;
	unsigned left = NARF_SLOTS, none = 0;
	int rv = 0;

	if (sc == NULL)
		return NARF_ENOMEM;
	cl->tls_error = false;
	sc->cl = cl;
	sc->pattern = pattern;
	sc->cb = cb;
	sc->arg = arg;
	for (int pass = 0; pass < MAX_ATTEMPTS; pass++) {
		unsigned before = left;

		struct attempt a = {.epoch = cl->map.epoch};

		rv = refresh_after_failure(cl, &a, deadline);
		if (rv != 0)
			goto out;
		left = scan_pass(sc, &none);
		if (cl->tls_error) {
			rv = NARF_EPROTO; /* cl->errmsg says how */
			goto out;
		}
		if (left == 0 || sc->stop != 0)
			break;
		/* progress buys another timeout; a failing node does not */
		if (left < before)
			deadline = narf_cli_now_ms() + (int64_t)cl->timeout_ms;
		if (narf_cli_now_ms() >= deadline)
			break;
		narf_cli_sleep_until(backoff, deadline);
		backoff = grow(backoff);
	}
	rv = sc->stop;
	if (rv == 0 && left > 0) {
		snprintf(cl->errmsg, sizeof(cl->errmsg),
		         "%u slots not listed: their primary did not answer "
		         "within %llums; last: %s",
		         left, (unsigned long long)cl->timeout_ms,
		         sc->fail[0] ? sc->fail : "?");
		rv = NARF_ETIMEOUT;
	}
	if (unassigned != NULL)
		*unassigned = none;
out:
	free(sc);
	return rv;
}
