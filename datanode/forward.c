/*
 * Requests for slots other nodes lead, on a client connection.
 *
 * Forwarded whole (struct fwd): over the repl's pooled, pipelined proxy
 * link to the owner. A connection may have up to NARF_FWD_MAX out, to any
 * nodes, while it goes on running requests here; replies still reach the
 * client in request order: a reply that comes before those of earlier
 * requests waits in its fwd, and the replies of requests run here after
 * a forwarded one wait in its `after` buffer (server.c's conn_process
 * writes there). -MOVED to the newest forwarded request makes the
 * connection wait for the next map reply (NARF_WAIT_MAP) and routes it
 * again; a -MOVED that goes to the client and names this node waits for
 * our next map first (fwd.moved_self). With NARF_FWD_MAX out, or before a
 * split or WAIT, the connection waits for replies (NARF_WAIT_FWD_FULL,
 * NARF_WAIT_FWD_DRAIN): narf_fwd_pop() and fwd_unlink_tail() end those
 * waits as the queue shrinks.
 *
 * Split (struct scatter): MGET, MSET, DEL, EXISTS, ... over keys several
 * nodes lead: one request per owner, ours run here, the others forwarded,
 * the replies merged into one when all are in.
 */
#include "conn.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void fwd_free(struct fwd *f)
{
	if (f->px != NULL)
		narf_repl_proxy_cancel(f->px);
	narf_buf_close(&f->reply);
	narf_buf_close(&f->after);
	free(f);
}

/* --- requests split across owners (MGET, MSET, DEL, EXISTS, ...) -------- */

struct part {
	struct scatter *sc;
	uint32_t node;         /* owner; ours for the local part */
	struct narf_proxy *px; /* while forwarded */
	struct narf_buf reply; /* one whole reply once done */
	int argc;
	const char **argv; /* borrowed from the request */
	size_t *argvlen;
};

struct scatter {
	struct narf_rconn *conn;
	unsigned flags; /* NARF_CMD_SPLIT_* */
	unsigned n_parts, pending;
	struct part *parts;
	unsigned nkeys;
	unsigned *key_part; /* per key of the request: its part */
};

static void scatter_free(struct scatter *sc)
{
	for (unsigned i = 0; i < sc->n_parts; i++) {
		if (sc->parts[i].px != NULL)
			narf_repl_proxy_cancel(sc->parts[i].px);
		narf_buf_close(&sc->parts[i].reply);
		free(sc->parts[i].argv);
		free(sc->parts[i].argvlen);
	}
	free(sc->parts);
	free(sc->key_part);
	free(sc);
}

/*
 * The integer of a reply's first line, `<type><n>\r\n`; *end is where the
 * line ends. The reply is not NUL-terminated: no sscanf or strchr on it.
 */
static bool reply_ll(const struct narf_buf *b,
                     char type,
                     long long *v,
                     size_t *end)
{
	char digits[24], *stop;
	size_t n = 0;

	if (b->len < 4 || b->data[0] != type)
		return false;
	while (1 + n < b->len && b->data[1 + n] != '\r' &&
	       n < sizeof(digits) - 1) {
		digits[n] = b->data[1 + n];
		n++;
	}
	if (n == 0 || 2 + n >= b->len || b->data[1 + n] != '\r' ||
	    b->data[2 + n] != '\n')
		return false;
	digits[n] = '\0';
	errno = 0;
	*v = strtoll(digits, &stop, 10);
	*end = 3 + n;
	return *stop == '\0' && errno == 0;
}

/* The replies' elements of an MGET part, in order; NULL on a bad reply. */
static size_t *array_elements(const struct narf_buf *b, unsigned n)
{
	size_t *off = malloc((n + 1) * sizeof(*off)), pos, len;
	long long k;

	if (off == NULL || !reply_ll(b, '*', &k, &pos) || k != (long long)n) {
		free(off);
		return NULL;
	}
	for (unsigned i = 0; i < n; i++) {
		if (narf_resp_reply_len(b->data + pos, b->len - pos, UINT64_MAX,
		                        &len) != NARF_RESP_DONE) {
			free(off);
			return NULL;
		}
		off[i] = pos;
		pos += len;
	}
	off[n] = pos;
	return off;
}

/* Every part answered: one reply in the request's terms. */
static void scatter_merge(struct scatter *sc, struct narf_buf *out)
{
	long long sum = 0, v;
	size_t end;

	for (unsigned i = 0; i < sc->n_parts; i++) {
		const struct narf_buf *b = &sc->parts[i].reply;

		if (b->len == 0 || b->data[0] == '-') {
			if (b->len > 0)
				narf_buf_append(out, b->data, b->len);
			else
				narf_resp_error(out, "TRYAGAIN no reply");
			return;
		}
		if ((sc->flags & NARF_CMD_SPLIT_SUM) &&
		    reply_ll(b, ':', &v, &end))
			sum += v;
	}
	if (sc->flags & NARF_CMD_SPLIT_SUM) {
		narf_resp_int(out, sum);
	} else if (sc->flags & NARF_CMD_SPLIT_OK) {
		narf_resp_simple(out, "OK");
	} else {
		size_t **off = calloc(sc->n_parts, sizeof(*off));
		unsigned *next = calloc(sc->n_parts, sizeof(*next));
		bool bad = off == NULL || next == NULL;

		for (unsigned i = 0; !bad && i < sc->n_parts; i++) {
			off[i] =
			        array_elements(&sc->parts[i].reply,
			                       (unsigned)sc->parts[i].argc - 1);
			bad = off[i] == NULL;
		}
		if (bad) {
			narf_resp_error(out, "ERR a node sent a bad reply");
		} else {
			narf_resp_array(out, sc->nkeys);
			for (unsigned k = 0; k < sc->nkeys; k++) {
				unsigned p = sc->key_part[k], j = next[p]++;
				const struct narf_buf *b = &sc->parts[p].reply;

				narf_buf_append(out, b->data + off[p][j],
				                off[p][j + 1] - off[p][j]);
			}
		}
		for (unsigned i = 0; off != NULL && i < sc->n_parts; i++)
			free(off[i]);
		free(off);
		free(next);
	}
}

/* Is reply (one whole RESP reply) a -MOVED? Its address goes to addr
 * (NARF_ADDR_SIZE bytes, may be NULL). */
static bool moved(const char *reply, size_t len, char *addr)
{
	char scratch[NARF_ADDR_SIZE];
	unsigned slot;

	return len > 3 && reply[0] == '-' && reply[len - 2] == '\r' &&
	       reply[len - 1] == '\n' &&
	       narf_reply_moved(reply + 1, len - 3, &slot,
	                        addr != NULL ? addr : scratch) == 0;
}

static void scatter_part_done(void *data, const char *reply, size_t len)
{
	struct part *pt = data;
	struct scatter *sc = pt->sc;
	struct narf_rconn *conn = sc->conn;

	pt->px = NULL;
	if (moved(reply, len, NULL))
		narf_repl_refresh_map(conn->dn->repl);
	narf_buf_append(&pt->reply, reply, len);
	if (--sc->pending > 0)
		return;
	scatter_merge(sc, &conn->out);
	conn->sc = NULL;
	scatter_free(sc);
	narf_conn_wait_end(conn, NARF_WAIT_SCATTER);
	conn->dn->progress = true;
}

/*
 * Split a request whose keys several nodes lead: one request per owner
 * with its keys (and values), ours run here at once, the others
 * forwarded; the reply is merged when all are in. Returns false (with
 * the error in out) when it cannot start.
 */
bool narf_scatter_start(struct narf_rconn *conn,
                        const struct narf_resp_req *req,
                        struct narf_buf *out)
{
	struct narf_dn *dn = conn->dn;
	struct narf_engine *e = &dn->engine;
	const struct narf_map *map = narf_engine_map(e);
	const struct narf_command *cmd =
	        narf_engine_command(req->argv[0], req->argvlen[0]);
	unsigned step = cmd && (cmd->flags & NARF_CMD_SPLIT_OK) ? 2 : 1;
	struct scatter *sc = calloc(1, sizeof(*sc));
	uint32_t me = *e->cluster_node_id;

	if (sc == NULL || map == NULL || cmd == NULL)
		goto fail;
	sc->conn = conn;
	sc->flags = cmd->flags & NARF_CMD_SPLIT;
	if ((unsigned)(req->argc - 1) % step != 0) {
		narf_resp_errorf(out,
		                 "ERR wrong number of arguments for '%s' "
		                 "command",
		                 cmd->name);
		scatter_free(sc);
		return false;
	}
	sc->nkeys = (unsigned)(req->argc - 1) / step;
	sc->key_part = calloc(sc->nkeys, sizeof(*sc->key_part));
	sc->parts = calloc(sc->nkeys, sizeof(*sc->parts));
	if (sc->key_part == NULL || sc->parts == NULL)
		goto fail;
	for (unsigned k = 0; k < sc->nkeys; k++) {
		int a = 1 + (int)(k * step);
		uint32_t owner =
		        map->slots[narf_key_slot(req->argv[a], req->argvlen[a])]
		                .primary;
		unsigned p = 0;
		struct part *pt;

		if (owner == 0) {
			narf_resp_error(out,
			                "CLUSTERDOWN Hash slot not served");
			scatter_free(sc);
			return false;
		}
		while (p < sc->n_parts && sc->parts[p].node != owner)
			p++;
		pt = &sc->parts[p];
		if (p == sc->n_parts) {
			sc->n_parts++;
			pt->sc = sc;
			pt->node = owner;
			narf_buf_init(&pt->reply);
			pt->argv = calloc((size_t)req->argc, sizeof(*pt->argv));
			pt->argvlen =
			        calloc((size_t)req->argc, sizeof(*pt->argvlen));
			if (pt->argv == NULL || pt->argvlen == NULL)
				goto fail;
			pt->argv[0] = req->argv[0];
			pt->argvlen[0] = req->argvlen[0];
			pt->argc = 1;
		}
		sc->key_part[k] = p;
		for (unsigned j = 0; j < step; j++) {
			pt->argv[pt->argc] = req->argv[a + (int)j];
			pt->argvlen[pt->argc++] = req->argvlen[a + (int)j];
		}
	}
	sc->pending = sc->n_parts;
	for (unsigned p = 0; p < sc->n_parts; p++) {
		struct part *pt = &sc->parts[p];

		if (pt->node != me) {
			struct narf_proxy_req q = {
			        pt->argc,          pt->argv, pt->argvlen,
			        conn->client.resp, 0,        0};

			pt->px = narf_repl_proxy(dn->repl, pt->node, &q,
			                         scatter_part_done, pt);
			if (pt->px == NULL)
				narf_resp_error(
				        &pt->reply,
				        "TRYAGAIN cannot reach a slot's "
				        "owner");
			else
				continue;
		} else if (narf_engine_exec(e, &conn->client, pt->argc,
		                            pt->argv, pt->argvlen,
		                            &pt->reply) != 0 &&
		           pt->reply.len == 0) {
			narf_resp_error(&pt->reply, "TRYAGAIN try again");
		}
		sc->pending--;
	}
	if (sc->pending == 0) {
		scatter_merge(sc, out);
		scatter_free(sc);
		return true;
	}
	conn->sc = sc;
	narf_conn_wait_begin(conn, NARF_WAIT_SCATTER);
	return true;
fail:
	if (sc != NULL)
		scatter_free(sc);
	narf_resp_error(out, "ERR out of memory");
	return false;
}

/* The queue shrank: a wait for room in it, or for all of it, may be over. */
static void fwd_wait_update(struct narf_rconn *conn)
{
	if (conn->wait == NARF_WAIT_FWD_FULL && conn->fwd_n < NARF_FWD_MAX)
		narf_conn_wait_end(conn, NARF_WAIT_FWD_FULL);
	else if (conn->wait == NARF_WAIT_FWD_DRAIN && conn->fwd_n == 0)
		narf_conn_wait_end(conn, NARF_WAIT_FWD_DRAIN);
}

/* Move the answered forwarded requests at the head of the queue, with the
 * replies that followed them, to the output buffer. */
void narf_fwd_pop(struct narf_rconn *conn)
{
	struct fwd *f;

	while ((f = conn->fwd_head) != NULL && f->answered &&
	       !(f->moved_self && conn->moved_self_checks != 0)) {
		if (narf_buf_append(&conn->out, f->reply.data, f->reply.len) !=
		            0 ||
		    narf_buf_append(&conn->out, f->after.data, f->after.len) !=
		            0)
			conn->client.close_after_reply = true;
		conn->fwd_head = f->next;
		if (conn->fwd_head == NULL)
			conn->fwd_tail = NULL;
		conn->fwd_n--;
		conn->fwd_bytes -= f->reply.len + f->after.len;
		fwd_free(f);
	}
	fwd_wait_update(conn);
}

/* Take f, the newest forwarded request, off the queue. */
static void fwd_unlink_tail(struct narf_rconn *conn, struct fwd *f)
{
	struct fwd *prev = NULL;

	for (struct fwd *g = conn->fwd_head; g != f; g = g->next)
		prev = g;
	if (prev != NULL)
		prev->next = NULL;
	else
		conn->fwd_head = NULL;
	conn->fwd_tail = prev;
	conn->fwd_n--;
	conn->fwd_bytes -= f->reply.len + f->after.len;
	fwd_free(f);
	fwd_wait_update(conn);
}

/*
 * A forwarded request's reply. -MOVED means the owner's map and ours
 * disagree (a role change in flight) and that it did not run the request.
 * When nothing was run after it (it is the newest request, its bytes still
 * at the front of `in`), rather than hand the client an error, fetch the
 * map and route it again after each map reply, for up to NARF_RETRY_MAX_MS
 * (the other node may be the one behind: it catches up within a heartbeat
 * or two); then the -MOVED goes to the client. When later requests already
 * ran, running this one now would reorder them: the client gets the
 * -MOVED, as a Redis Cluster client would. When that -MOVED names this
 * node, our map is the one behind (the owner's says we lead): a client
 * sending it here again at once would be forwarded to the same -MOVED,
 * so it goes out (with the replies after it) once our next map is in, or
 * after NARF_RETRY_MAX_MS (server.c's resume_blocked).
 */
static void fwd_done(void *data, const char *reply, size_t len)
{
	struct fwd *f = data;
	struct narf_rconn *conn = f->conn;
	struct narf_dn *dn = conn->dn;
	char to[NARF_ADDR_SIZE];
	bool is_moved = moved(reply, len, to);

	f->px = NULL;
	dn->progress = true;
	if (is_moved && f == conn->fwd_tail && conn->px_len > 0 &&
	    !conn->processing && !conn->client.close_after_reply) {
		narf_repl_refresh_map(dn->repl);
		if (conn->reroutes++ == 0)
			conn->reroute_ms = uv_now(&dn->loop);
		if (uv_now(&dn->loop) - conn->reroute_ms < NARF_RETRY_MAX_MS) {
			fwd_unlink_tail(conn, f);
			/* Parsed again from the front: a request after it
			 * that was half read is parsed again too. */
			conn->px_len = 0;
			narf_resp_req_reset(&conn->req);
			/* Never 0: a node forwards only once it has a map,
			 * and maps come only in map replies, each counted. */
			conn->map_checks = narf_repl_map_checks(dn->repl);
			conn->map_ms = uv_now(&dn->loop);
			assert(conn->map_checks != 0);
			/* A drain with replies still out keeps the wait, the
			 * re-route owed behind it (conn.h). */
			if (conn->wait != NARF_WAIT_FWD_DRAIN)
				narf_conn_wait_begin(conn, NARF_WAIT_MAP);
			return;
		}
	}
	conn->reroutes = 0;
	f->answered = true;
	if (is_moved && strcmp(to, dn->member.self_addr) == 0) {
		f->moved_self = true;
		if (conn->moved_self_checks == 0) {
			narf_repl_refresh_map(dn->repl);
			conn->moved_self_checks =
			        narf_repl_map_checks(dn->repl);
			conn->moved_self_ms = uv_now(&dn->loop);
		}
	}
	/* The oldest one (the usual case) goes straight out; a later one,
	 * or a -MOVED naming us, waits. */
	if (f == conn->fwd_head && !conn->processing && !f->moved_self) {
		if (narf_buf_append(&conn->out, reply, len) != 0)
			conn->client.close_after_reply = true;
	} else if (narf_buf_append(&f->reply, reply, len) != 0) {
		conn->client.close_after_reply = true;
	} else {
		conn->fwd_bytes += len;
	}
	if (!conn->processing)
		narf_fwd_pop(conn);
}

/* Forward the parsed request to the slot's owner; false when it cannot
 * be (the caller answers -TRYAGAIN). */
bool narf_fwd_start(struct narf_rconn *conn)
{
	struct narf_dn *dn = conn->dn;
	struct fwd *f = calloc(1, sizeof(*f));
	struct narf_proxy_req q = {conn->req.argc,
	                           (const char *const *)conn->req.argv,
	                           conn->req.argvlen,
	                           conn->client.resp,
	                           0,
	                           0};

	if (f == NULL)
		return false;
	f->conn = conn;
	f->px = narf_repl_proxy(dn->repl, dn->engine.proxy_node, &q, fwd_done,
	                        f);
	if (f->px == NULL) {
		free(f);
		return false;
	}
	if (conn->fwd_tail != NULL)
		conn->fwd_tail->next = f;
	else
		conn->fwd_head = f;
	conn->fwd_tail = f;
	conn->fwd_n++;
	if (conn->fwd_n >= NARF_FWD_MAX)
		narf_conn_wait_begin(conn, NARF_WAIT_FWD_FULL);
	return true;
}

void narf_fwd_close(struct narf_rconn *conn)
{
	while (conn->fwd_head != NULL) {
		struct fwd *f = conn->fwd_head;

		conn->fwd_head = f->next;
		fwd_free(f);
	}
	conn->fwd_tail = NULL;
	conn->fwd_n = 0;
	conn->fwd_bytes = 0;
	if (conn->sc != NULL) {
		scatter_free(conn->sc);
		conn->sc = NULL;
	}
}
