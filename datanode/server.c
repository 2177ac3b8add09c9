/*
 * Client connections of the RESP server.
 *
 * Happy path: conn_alloc_cb() lends libuv the free tail of the
 * connection's query buffer (grown to the parser's `need` hint for a large
 * argument, never to a declared length up front); conn_read_cb() parses
 * every whole request in it, executes each into the output buffer, drops
 * the consumed bytes, and queues the connection to be flushed once, in the
 * loop iteration's check phase, after every connection that had input in
 * it ran (as Redis writes in beforeSleep): a pipeline of 16 requests costs
 * one write, and the replies of one iteration go out together, so a busy
 * node sleeps in epoll_wait less often. conn_flush() tries a synchronous
 * uv_try_write() first and falls back to uv_write() for what the kernel
 * did not take.
 *
 * Failure modes: a protocol error gets "-ERR Protocol error: ..." and the
 * connection closes after the reply is written; a query buffer beyond its
 * limit or an output buffer beyond its limit (a client that does not read
 * its replies) closes the connection; nothing is shared between clients,
 * so none of this disturbs anyone else. While a write is pending and more
 * than NARF_OUT_SOFT_LIMIT bytes of replies wait, reading pauses until the
 * client drains them: a pipelining client is slowed, not dropped.
 *
 * Strangers. A client that has yet to AUTH (or that protected mode holds:
 * engine.h) is parsed with Redis's limits before AUTH and gets small
 * buffers (NARF_PREAUTH_*). Protected mode answers -DENIED and closes: at
 * accept when no peer could ever prove itself here, as Redis does, else
 * at the first request that is not the peer handshake (a protocol error
 * too), or NARF_PROTECTED_GRACE_MS after the connection opened.
 *
 * In a cluster a connection can also wait, and then runs no requests (and
 * reads no more once NARF_BLOCKED_INPUT bytes wait): for one thing at a
 * time, named by its `wait` (conn.h): replicas to acknowledge its writes
 * before its replies go (ACKS, repl.h), the lease (RETRY: the engine put a
 * request off; it waits in the query buffer up to NARF_RETRY_MAX_MS, then
 * fails with -CLUSTERDOWN), a map reply (MAP: the newest forwarded
 * request got -MOVED and is routed again), a WAIT, a split request's parts
 * (SCATTER), or forwarded requests (FWD_FULL when NARF_FWD_MAX are out,
 * FWD_DRAIN before a split or WAIT; forward.c: requests for other nodes'
 * slots go out pipelined while the connection goes on, and their replies
 * are put back in request order). Standalone too, a connection waits for
 * keys (KEYS: a blocking pop found nothing; blocking_io.c serves it after
 * the command that pushes, and times it out). Waiting connections, and
 * those with forwarded requests out, sit on dn->blocked; whenever
 * something may have moved (acks, a map, a lease, a proxy reply, a served
 * or timed-out blocking pop) the check handle walks that
 * list after the loop's I/O, ends the waits that are over and resumes (and
 * flushes) whoever waits no more, so nothing resumes from inside another
 * connection's callback.
 *
 * Fairness: a connection reads at most NARF_ITER_READ_MAX bytes per loop
 * iteration; then it stops reading until the check handle, so a heavy
 * pipeline or a replication stream in sync cannot starve the others.
 *
 * TLS (--tls-port; tls.h). A connection accepted there has `tls`, and its
 * `in` and `out` hold plain text as any other's, so nothing above changes.
 * Only the edges do: conn_alloc_cb lends libuv the shared dn->tls_rbuf,
 * and conn_read_cb feeds what came into the connection's read BIO, drives
 * the handshake and then decrypts every whole record into `in` before it
 * parses (tls_input); conn_flush encrypts the whole of `out` with one
 * SSL_write and writes the ciphertext as it writes plain text (tls_send).
 * Protected mode's answer at accept waits for the end of the handshake (a
 * TLS client could not read it before). A handshake that fails (a
 * plain-text client, a missing, bad or expired client certificate, a
 * client that does not trust our certificate) or that has not finished
 * NARF_TLS_HANDSHAKE_MS after accept closes that connection only; it is
 * counted (INFO tls_handshake_failures) and logged at most once a second
 * (engine.h, struct narf_ratelog). SIGHUP (narf_dn_reload) gives new
 * connections a context built from the files as they are now.
 */
#include "conn.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/flags.h"
#include "common/log.h"

#define NARF_READ_CHUNK (16 * 1024)
#define NARF_BLOCKED_INPUT (1u << 20) /* unread input a blocked conn takes */
#define NARF_DRAIN_MS 2000 /* SIGTERM: longest wait for requests in flight */
#define NARF_LEFT_DRAIN_MS 5000 /* ... on a node that left the cluster */
#define NARF_DRAIN_QUIET_MS 100
/* Most bytes one connection reads per loop iteration: libuv reads on while
 * a read fills the buffer, and a replication stream syncing a slot (or a
 * client pipelining hard) would otherwise keep every other connection of
 * the node waiting for tens of milliseconds. */
#define NARF_ITER_READ_MAX (64 * 1024)
/* Before AUTH (narf_engine_preauth) a client's buffers stay small: its
 * longest request is 10 arguments of 16 KiB (engine.h) or an inline line
 * of 64 KiB, it reads NARF_READ_CHUNK at a time, and its query buffer may
 * hold at most NARF_PREAUTH_QUERY_MAX (not --max-query-buffer). With more
 * than NARF_PREAUTH_OUT_MAX bytes of replies not yet taken by the kernel
 * it is closed, as Redis 7.0 closes it since CVE-2025-21605 (its 16 KiB
 * reply buffer plus 1 KiB): Debian's redis-server does. */
#define NARF_PREAUTH_QUERY_MAX (256 * 1024)
#define NARF_PREAUTH_OUT_MAX ((16 + 1) * 1024)
/* A connection held by protected mode that has not proven itself a peer
 * this long after it opened is closed (a peer's handshake takes
 * milliseconds; Redis closes such a connection at once). */
#define NARF_PROTECTED_GRACE_MS 10000
/* TLS: ciphertext read at a time into dn->tls_rbuf (a TLS record is at
 * most 16 KiB and a bit), and the longest a handshake may take. */
#define NARF_TLS_READ (64 * 1024)
#define NARF_TLS_HANDSHAKE_MS 10000

static void conn_flush(struct narf_rconn *conn);
static void conn_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void conn_closed_cb(uv_handle_t *h)
{
	struct narf_rconn *conn = h->data;
	struct narf_dn *dn = conn->dn;

	/* Flushed in the check phase, which comes before this one: still
	 * queued only if the loop stopped in between. */
	for (size_t i = 0; conn->flush_queued && i < dn->flushq_n; i++)
		if (dn->flushq[i] == conn) {
			dn->flushq[i] = dn->flushq[--dn->flushq_n];
			conn->flush_queued = false;
		}
	narf_buf_close(&conn->in);
	narf_buf_close(&conn->out);
	narf_buf_close(&conn->sending);
	narf_resp_req_close(&conn->req);
	narf_gate_close(&conn->gate);
	narf_gate_close(&conn->last);
	narf_tls_conn_destroy(conn->tls);
	free(conn);
}

struct narf_buf *narf_conn_reply_buf(struct narf_rconn *c)
{
	return c->fwd_tail != NULL ? &c->fwd_tail->after : &c->out;
}

static void unlist_blocked(struct narf_rconn *conn)
{
	struct narf_dn *dn = conn->dn;

	if (!conn->on_blocked)
		return;
	if (conn->bprev != NULL)
		conn->bprev->bnext = conn->bnext;
	else
		dn->blocked = conn->bnext;
	if (conn->bnext != NULL)
		conn->bnext->bprev = conn->bprev;
	conn->bprev = conn->bnext = NULL;
	conn->on_blocked = false;
}

static void list_blocked(struct narf_rconn *conn)
{
	struct narf_dn *dn = conn->dn;

	if (conn->on_blocked)
		return;
	conn->bnext = dn->blocked;
	if (dn->blocked != NULL)
		dn->blocked->bprev = conn;
	dn->blocked = conn;
	conn->on_blocked = true;
}

/* The waits' invariants (conn.h); a closing connection keeps its last
 * wait, and its forwarded requests and split parts are gone. */
static void wait_check(const struct narf_rconn *c)
{
	if (c->closing)
		return;
	assert((c->wait == NARF_WAIT_SCATTER) == (c->sc != NULL));
	assert(c->wait != NARF_WAIT_ACKS || narf_conn_gated(c));
	assert(c->wait != NARF_WAIT_MAP || c->map_checks != 0);
	assert(c->map_checks == 0 || c->wait == NARF_WAIT_MAP ||
	       c->wait == NARF_WAIT_FWD_DRAIN);
	assert(c->wait != NARF_WAIT_FWD_FULL || c->fwd_n >= NARF_FWD_MAX);
	assert(c->wait != NARF_WAIT_FWD_DRAIN || c->fwd_n > 0);
	assert((c->wait == NARF_WAIT_KEYS) == (c->waiter != NULL));
	assert(c->wait != NARF_WAIT_REMOTE || c->rb != NULL);
	(void)c;
}

void narf_conn_wait_begin(struct narf_rconn *c, enum narf_conn_wait what)
{
	/* One wait at a time. Waits begin while the connection runs requests
	 * (conn_process stops at the first), but for a -MOVED re-route, which
	 * comes with a proxy reply: it takes over from a retry, and from the
	 * ack gate, which is then owed (conn.h). */
	assert(what != NARF_WAIT_NONE);
	assert(c->wait == NARF_WAIT_NONE ||
	       (what == NARF_WAIT_MAP &&
	        (c->wait == NARF_WAIT_ACKS || c->wait == NARF_WAIT_RETRY)));
	c->wait = what;
	c->wait_ms = uv_now(&c->dn->loop);
	if (!c->closing)
		list_blocked(c);
	wait_check(c);
}

void narf_conn_wait_end(struct narf_rconn *c, enum narf_conn_wait what)
{
	assert(what != NARF_WAIT_NONE && c->wait == what);
	assert(what != NARF_WAIT_MAP || c->map_checks == 0);
	/* What is owed comes next: a re-route owed behind a drain, then the
	 * ack gate. Both are looked at every pass meanwhile (resume_blocked).
	 */
	if (c->map_checks != 0)
		c->wait = NARF_WAIT_MAP;
	else if (narf_conn_gated(c))
		c->wait = NARF_WAIT_ACKS;
	else
		c->wait = NARF_WAIT_NONE;
	c->wait_ms = uv_now(&c->dn->loop);
	wait_check(c);
}

void narf_conn_wait_switch(struct narf_rconn *c,
                           enum narf_conn_wait from,
                           enum narf_conn_wait to)
{
	assert(c->wait == from);
	assert((from == NARF_WAIT_KEYS && to == NARF_WAIT_REMOTE) ||
	       (from == NARF_WAIT_REMOTE && to == NARF_WAIT_KEYS));
	c->wait = to;
	c->wait_ms = uv_now(&c->dn->loop);
	wait_check(c);
}

void narf_conn_poke(struct narf_rconn *c)
{
	if (c->closing)
		return;
	/* While it runs requests, conn_run gates and writes them. */
	if (narf_conn_gated(c) && c->wait == NARF_WAIT_NONE && !c->processing)
		narf_conn_wait_begin(c, NARF_WAIT_ACKS);
	list_blocked(c);
	narf_dn_kick(c->dn);
}

const char *narf_conn_wait_name(enum narf_conn_wait w)
{
	switch (w) {
	case NARF_WAIT_NONE:
		return "none";
	case NARF_WAIT_ACKS:
		return "acks";
	case NARF_WAIT_RETRY:
		return "retry";
	case NARF_WAIT_MAP:
		return "map";
	case NARF_WAIT_WAIT:
		return "wait";
	case NARF_WAIT_SCATTER:
		return "scatter";
	case NARF_WAIT_FWD_FULL:
		return "fwd-full";
	case NARF_WAIT_FWD_DRAIN:
		return "fwd-drain";
	case NARF_WAIT_KEYS:
		return "keys";
	case NARF_WAIT_REMOTE:
		return "remote";
	}
	return "?";
}

static void conn_close(struct narf_rconn *conn)
{
	struct narf_dn *dn = conn->dn;

	if (conn->closing)
		return;
	conn->closing = true;
	if (conn->throttled) {
		conn->throttled = false;
		dn->throttled--;
	}
	unlist_blocked(conn);
	narf_fwd_close(conn);
	narf_fwd_block_close(conn);
	if (conn->waiter != NULL)
		narf_dn_block_drop(conn);
	if (conn->client.peer && narf_block_count(&dn->engine.block) > 0)
		narf_dn_block_drop_peer(conn);
	if (conn->prev != NULL)
		conn->prev->next = conn->next;
	else
		dn->conns = conn->next;
	if (conn->next != NULL)
		conn->next->prev = conn->prev;
	narf_engine_budget_release(&dn->engine, &conn->client);
	uv_close((uv_handle_t *)&conn->tcp, conn_closed_cb);
}

static void conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct narf_rconn *conn = h->data;
	size_t want = NARF_READ_CHUNK, room;

	/* TLS: ciphertext into the shared buffer; tls_input() takes all of
	 * it before the next read of any connection. */
	if (conn->tls != NULL) {
		room = narf_engine_preauth(&conn->dn->engine, &conn->client)
		               ? NARF_READ_CHUNK
		               : NARF_TLS_READ;
		*buf = uv_buf_init(conn->dn->tls_rbuf, (unsigned)room);
		return;
	}
	/* Grow towards a large argument as it streams in, at most 1 MiB per
	 * read, so a declared length is never allocated before its bytes
	 * arrive (the buffer's doubling keeps this O(n) overall). */
	if (conn->need > conn->in.len + want) {
		size_t gap = conn->need - conn->in.len;

		want = gap < (1u << 20) ? gap : (1u << 20);
	}
	if (narf_buf_reserve(&conn->in, want) != 0) {
		*buf = uv_buf_init(NULL, 0); /* read_cb sees UV_ENOBUFS */
		return;
	}
	room = conn->in.cap - conn->in.len;
	if (room > NARF_READ_CHUNK &&
	    narf_engine_preauth(&conn->dn->engine, &conn->client))
		room = NARF_READ_CHUNK;
	*buf = uv_buf_init(conn->in.data + conn->in.len, (unsigned)room);
}

static void write_cb(uv_write_t *req, int status)
{
	struct narf_rconn *conn = req->data;

	conn->writing = false;
	conn->sending.len = 0;
	/* A big reply's buffer goes back once it is written. */
	narf_buf_shrink(&conn->sending, 64 * 1024);
	if (conn->closing)
		return;
	if (status != 0) {
		conn_close(conn);
		return;
	}
	conn->last_active_ms = uv_now(&conn->dn->loop);
	conn_flush(conn);
}

/* Hand whatever replies are waiting to the kernel. */
static void conn_run(struct narf_rconn *conn);

/*
 * Write buf (conn->out, or a TLS connection's ciphertext) to the kernel: 0
 * when it took all of it (buf is then empty), 1 when the rest went to
 * uv_write (swapped into conn->sending, so buf keeps collecting), -1 when
 * the connection closed on an error.
 */
static int conn_send(struct narf_rconn *conn, struct narf_buf *buf)
{
	struct narf_buf tmp;
	uv_buf_t b = uv_buf_init(buf->data, (unsigned)buf->len);
	int n = uv_try_write((uv_stream_t *)&conn->tcp, &b, 1);

	if (n == (int)buf->len) {
		buf->len = 0;
		narf_buf_shrink(buf, 64 * 1024);
		conn->last_active_ms = uv_now(&conn->dn->loop);
		return 0;
	}
	if (n < 0 && n != UV_EAGAIN) {
		conn_close(conn);
		return -1;
	}
	if (n > 0)
		narf_buf_consume(buf, (size_t)n);
	/* Swap: buf keeps collecting while sending is in flight. */
	tmp = conn->sending;
	conn->sending = *buf;
	*buf = tmp;
	b = uv_buf_init(conn->sending.data, (unsigned)conn->sending.len);
	conn->wreq.data = conn;
	if (uv_write(&conn->wreq, (uv_stream_t *)&conn->tcp, &b, 1, write_cb) !=
	    0) {
		conn_close(conn);
		return -1;
	}
	conn->writing = true;
	return 1;
}

/* TLS: encrypt every reply waiting in `out` with one SSL_write (once the
 * handshake is done; until then they wait) and write the ciphertext, with
 * whatever the handshake has to say. As conn_send(). */
static int tls_send(struct narf_rconn *conn)
{
	struct narf_buf *w = narf_tls_conn_out(conn->tls);

	if (conn->out.len > 0 && narf_tls_conn_ready(conn->tls)) {
		if (narf_tls_conn_encrypt(conn->tls, conn->out.data,
		                          conn->out.len) != 0) {
			conn_close(conn);
			return -1;
		}
		conn->out.len = 0;
		narf_buf_shrink(&conn->out, 64 * 1024);
	}
	return w->len > 0 ? conn_send(conn, w) : 0;
}

/*
 * Hand waiting replies to the kernel; when they are all gone, run requests
 * of a paused pipeline (conn_process stops at NARF_OUT_SOFT_LIMIT) and
 * resume reading. A loop, not recursion: a client pipelining many large
 * GETs into a fast socket goes round it once per megabyte of replies.
 */
static void conn_flush(struct narf_rconn *conn)
{
	for (;;) {
		if (conn->writing || conn->closing || narf_conn_gated(conn))
			return;
		if (conn->tls != NULL
		            ? tls_send(conn) != 0
		            : conn->out.len > 0 &&
		                      conn_send(conn, &conn->out) != 0)
			return;
		/* Replies of a TLS connection wait for its handshake. */
		if (conn->out.len > 0)
			return;
		/* Replies of forwarded requests still to come go out
		 * before the connection closes (resume_blocked). */
		if (conn->client.close_after_reply && conn->fwd_n == 0) {
			conn_close(conn);
			return;
		}
		if (conn->client.close_after_reply)
			return;
		if (conn->pipeline_paused && !narf_conn_blocked(conn) &&
		    conn->fwd_bytes <= NARF_OUT_SOFT_LIMIT) {
			conn->pipeline_paused = false;
			conn_run(conn);
			continue;
		}
		if (narf_conn_blocked(conn) || conn->throttled)
			return;
		if (!conn->reading &&
		    uv_read_start((uv_stream_t *)&conn->tcp, conn_alloc_cb,
		                  conn_read_cb) == 0)
			conn->reading = true;
		return;
	}
}

/* WAIT: answered now when enough replicas have what this connection last
 * wrote, else it blocks until they have or the timeout passes (0: no
 * timeout, as Redis). */
static bool wait_done(struct narf_rconn *conn, bool timed_out)
{
	struct narf_dn *dn = conn->dn;
	unsigned acked =
	        dn->repl ? narf_repl_gate_acked(dn->repl, &conn->last) : 0;

	if ((long long)acked < conn->client.wait_replicas && !timed_out)
		return false;
	narf_resp_int(&conn->out, acked);
	return true;
}

/* Parse and execute every whole request in the query buffer, until one
 * blocks the connection. */
static void conn_process(struct narf_rconn *conn)
{
	struct narf_dn *dn = conn->dn;
	struct narf_engine *e = &dn->engine;
	/* A forwarded request kept at the front is not parsed again. */
	size_t pos = conn->px_len, kept = conn->px_len, start = pos;
	char errmsg[256];

	conn->need = 0;
	conn->processing = true;
	/* A pipelined batch: parse it ahead and bring its keys' buckets and
	 * entries in first. */
	if (conn->in.len - pos > 64 && !narf_engine_protected(e, &conn->client))
		narf_engine_prefetch(e, &conn->client, conn->in.data + pos,
		                     conn->in.len - pos);
	while (!conn->client.close_after_reply && !conn->pipeline_paused &&
	       !narf_conn_blocked(conn)) {
		struct narf_buf *out = narf_conn_reply_buf(conn);
		size_t need = 0, before = out->len;
		int rv = narf_engine_prefetch_take(e, &conn->client,
		                                   pos - start, &conn->req)
		                 ? NARF_RESP_DONE
		                 : narf_resp_parse(
		                           &conn->req, conn->in.data + pos,
		                           conn->in.len - pos,
		                           narf_engine_limits(e, &conn->client),
		                           &need, errmsg);
		bool forwarded = false;

		if (rv == NARF_RESP_INCOMPLETE) {
			conn->need = need;
			break;
		}
		if (rv == NARF_RESP_ERROR &&
		    narf_engine_protected(e, &conn->client)) {
			/* A stranger hears nothing but -DENIED. */
			narf_engine_deny(e, &conn->client, out);
			break;
		}
		if (rv == NARF_RESP_ERROR) {
			NARF_INFO("client %llu (%s): %s",
			          (unsigned long long)conn->client.id,
			          conn->client.addr, errmsg);
			narf_resp_errorf(out, "ERR %s", errmsg);
			if (out != &conn->out)
				conn->fwd_bytes += out->len - before;
			conn->client.close_after_reply = true;
			break;
		}
		if (rv == NARF_RESP_EMPTY) { /* nothing to run */
			pos += conn->req.consumed;
			kept = 0;
			narf_resp_req_reset(&conn->req);
			continue;
		}
		rv = narf_engine_exec(e, &conn->client, conn->req.argc,
		                      conn->req.argv, conn->req.argvlen, out);
		if (rv == NARF_EXEC_BLOCK) {
			/* Nothing to pop: the rest of the pipeline waits
			 * behind it, as in Redis (blocking_io.c). */
			rv = narf_dn_block_begin(conn) ? 0 : NARF_ENOMEM;
		}
		if (rv == NARF_EXEC_RETRY && !conn->retry_expired) {
			/* Run it again once the lease holds. */
			narf_resp_req_reset(&conn->req);
			narf_conn_wait_begin(conn, NARF_WAIT_RETRY);
			break;
		}
		if ((rv == NARF_EXEC_SPLIT || rv == NARF_EXEC_WAIT) &&
		    conn->fwd_n > 0) {
			/* Their replies are written when they complete: run
			 * them once every forwarded reply is in. */
			narf_resp_req_reset(&conn->req);
			narf_conn_wait_begin(conn, NARF_WAIT_FWD_DRAIN);
			break;
		}
		if (rv == NARF_EXEC_RETRY) {
			conn->retry_expired = false;
			narf_resp_error(out,
			                "CLUSTERDOWN this node has lost "
			                "contact with the coordinator");
		} else if (rv == NARF_EXEC_PROXY && e->proxy_blocking) {
			/* Not on the pipelined fwd queue: the rest of the
			 * pipeline waits behind it (fwd_block.c). */
			if (!narf_fwd_block_begin(
			            conn, conn->req.argc,
			            (const char *const *)conn->req.argv,
			            conn->req.argvlen,
			            narf_fwd_block_deadline(
			                    conn, conn->req.argc,
			                    (const char *const *)conn->req.argv,
			                    conn->req.argvlen))) {
				conn->processing = false;
				narf_engine_prefetch_end(e);
				conn_close(conn);
				return;
			}
		} else if (rv == NARF_EXEC_PROXY) {
			forwarded = narf_fwd_start(conn);
			if (!forwarded)
				narf_resp_error(out,
				                "TRYAGAIN cannot reach the "
				                "slot's owner");
		} else if (rv == NARF_EXEC_SPLIT) {
			narf_scatter_start(conn, &conn->req, &conn->out);
		} else if (rv == NARF_EXEC_WAIT) {
			/* WAIT counts this batch's writes before it too. */
			if (dn->repl != NULL) {
				narf_conn_gate_batch(conn);
				narf_repl_batch_begin(dn->repl);
			}
			if (!wait_done(conn, false))
				narf_conn_wait_begin(conn, NARF_WAIT_WAIT);
		} else if (rv != 0) {
			conn->processing = false;
			narf_engine_prefetch_end(e);
			conn_close(conn);
			return;
		}
		pos += conn->req.consumed;
		kept = forwarded ? conn->req.consumed : 0;
		narf_resp_req_reset(&conn->req);
		if (out != &conn->out)
			conn->fwd_bytes += out->len - before;
		/* Blocked clients are served after each command, not each
		 * batch: a pipelined RPUSH k a; LPOP k loses `a` to an
		 * earlier BLPOP k, as in Redis. */
		if (narf_block_any_ready(&e->block))
			narf_dn_block_serve(dn, conn);
		/* Enough replies for now (written or waiting behind forwarded
		 * requests): pause the rest of the pipeline until these are
		 * written, so replies never pile up without bound (at most the
		 * limit plus one reply). */
		if (conn->out.len + conn->sending.len > NARF_PREAUTH_OUT_MAX &&
		    narf_engine_preauth(e, &conn->client)) {
			narf_engine_ratelog(e, &e->preauth_log, &conn->client);
			conn->processing = false;
			narf_engine_prefetch_end(e);
			conn_close(conn);
			return;
		}
		if (conn->out.len + conn->fwd_bytes > NARF_OUT_SOFT_LIMIT) {
			conn->pipeline_paused = pos < conn->in.len;
			break;
		}
	}
	conn->processing = false;
	narf_engine_prefetch_end(e);
	/* need counts from the start of the request in progress, which
	 * the consume below moves to the front of the buffer. The newest
	 * request, when it was forwarded, stays in front of it: a -MOVED
	 * reply routes it again (forward.c). */
	narf_buf_consume(&conn->in, pos - kept);
	conn->px_len = kept;
	if (conn->need > 0)
		conn->need += kept;
	narf_fwd_pop(conn);
	if (conn->in.len == 0)
		narf_buf_shrink(&conn->in, 64 * 1024);
}

void narf_conn_gate_batch(struct narf_rconn *conn)
{
	struct narf_dn *dn = conn->dn;
	struct narf_gate batch = {0};

	if (dn->repl == NULL)
		return;
	if (narf_repl_batch_end(dn->repl, &batch)) {
		narf_gate_clear(&conn->last);
		narf_gate_merge(&conn->last, &batch);
		if (!narf_client_ack_primary(&dn->engine, &conn->client))
			narf_gate_merge(&conn->gate, &batch);
	}
	narf_gate_close(&batch);
}

/*
 * Run what the query buffer holds with one clock reading and the lease as
 * it stands, then gate the replies while replicas have not acknowledged
 * the batch's writes (unless this connection chose ACKMODE PRIMARY).
 */
static void conn_run(struct narf_rconn *conn)
{
	struct narf_dn *dn = conn->dn;
	struct narf_engine *e = &dn->engine;
	/* Gated before: conn_process ran nothing, and the gate is the check
	 * handle's to look at (resume_blocked). */
	bool gated = narf_conn_gated(conn);
	bool broken;

	e->now_cached = e->clock(e->clock_data);
	if (dn->cluster)
		e->lease_ok =
		        narf_member_lease_ok(&dn->member, narf_clock_ms());
	if (dn->repl != NULL)
		narf_repl_batch_begin(dn->repl);
	conn_process(conn);
	if (dn->repl != NULL) {
		narf_conn_gate_batch(conn);
		if (narf_conn_gated(conn) && !gated) {
			if (narf_repl_gate_open(dn->repl, &conn->gate,
			                        &broken)) {
				narf_gate_clear(&conn->gate);
				/* A wait that ended in conn_process handed
				 * over to the gate before it was looked at. */
				if (conn->wait == NARF_WAIT_ACKS)
					narf_conn_wait_end(conn,
					                   NARF_WAIT_ACKS);
			} else if (conn->wait == NARF_WAIT_NONE) {
				narf_conn_wait_begin(conn, NARF_WAIT_ACKS);
			} /* else owed behind that wait (conn.h) */
		}
	}
	e->now_cached = 0;
	if ((narf_conn_blocked(conn) || conn->fwd_n > 0) && !conn->closing)
		list_blocked(conn);
}

/* Stop reading while the connection must not take more requests. */
static void conn_update_reading(struct narf_rconn *conn)
{
	if (conn->closing)
		return;
	/* A connection blocked for a moment (replies waiting for replica
	 * acks) keeps reading: stopping and restarting would cost two
	 * epoll_ctl calls per request. Its requests wait in the buffer,
	 * up to NARF_BLOCKED_INPUT. */
	if (conn->client.close_after_reply || conn->pipeline_paused ||
	    (narf_conn_blocked(conn) && conn->in.len > NARF_BLOCKED_INPUT) ||
	    (conn->writing && conn->out.len > NARF_OUT_SOFT_LIMIT)) {
		if (conn->reading)
			uv_read_stop((uv_stream_t *)&conn->tcp);
		conn->reading = false;
	}
}

static bool deny_at_once(struct narf_rconn *conn);

/* A TLS handshake failed or took too long: count it, log it (rate-limited),
 * send what OpenSSL has to say (an alert) if the socket takes it now, and
 * close this connection. */
static void tls_failed(struct narf_rconn *conn, const char *why)
{
	struct narf_engine *e = &conn->dn->engine;
	struct narf_buf *w = narf_tls_conn_out(conn->tls);

	e->stats.tls_handshake_failures++;
	narf_engine_ratelog_detail(e, &e->tls_log, &conn->client, why);
	if (w->len > 0 && !conn->writing) {
		uv_buf_t b = uv_buf_init(w->data, (unsigned)w->len);

		uv_try_write((uv_stream_t *)&conn->tcp, &b, 1);
	}
	conn_close(conn);
}

/*
 * TLS: n bytes of ciphertext just read into the read BIO, the handshake
 * on, then every whole record decrypted into `in`. true when there may be
 * requests to run; false while the handshake goes on (its answer is
 * written) or when the connection closed.
 */
static bool tls_input(struct narf_rconn *conn, const char *data, size_t n)
{
	bool was_ready = narf_tls_conn_ready(conn->tls), done, eof;
	char why[160];
	int rv;

	rv = narf_tls_conn_feed(conn->tls, data, n);
	if (rv == 0)
		rv = narf_tls_conn_handshake(conn->tls, &done, why,
		                             sizeof(why));
	if (rv == NARF_EPROTO) {
		tls_failed(conn, why);
		return false;
	}
	if (rv != 0) {
		conn_close(conn);
		return false;
	}
	if (!done) {
		conn_flush(conn);
		return false;
	}
	if (!was_ready) {
		NARF_DEBUG("client %llu (%s): TLS handshake done",
		           (unsigned long long)conn->client.id,
		           conn->client.addr);
		if (deny_at_once(conn))
			return false;
	}
	rv = narf_tls_conn_decrypt(conn->tls, &conn->in, NARF_READ_CHUNK, &eof,
	                           why, sizeof(why));
	if (rv != 0 || eof) {
		if (rv != 0)
			NARF_INFO("client %llu (%s): TLS: %s, closing",
			          (unsigned long long)conn->client.id,
			          conn->client.addr,
			          rv == NARF_EPROTO ? why : narf_strerror(rv));
		conn_close(conn);
		return false;
	}
	return true;
}

/* Flush conn in this iteration's check phase (flush_queued), or now when
 * the queue cannot grow. A connection closed before then is skipped there;
 * it is freed only in the loop's closing phase, which comes after. */
static void queue_flush(struct narf_rconn *conn)
{
	struct narf_dn *dn = conn->dn;

	if (conn->flush_queued)
		return;
	if (dn->flushq_n == dn->flushq_cap) {
		size_t cap = dn->flushq_cap ? 2 * dn->flushq_cap : 64;
		struct narf_rconn **q = realloc(dn->flushq, cap * sizeof(*q));

		if (q == NULL) {
			conn_flush(conn);
			return;
		}
		dn->flushq = q;
		dn->flushq_cap = cap;
	}
	dn->flushq[dn->flushq_n++] = conn;
	conn->flush_queued = true;
}

/* The check phase's first step: write what this iteration's reads
 * produced. conn_flush may run a paused pipeline, never queue again. */
static void flush_queued(struct narf_dn *dn)
{
	for (size_t i = 0; i < dn->flushq_n; i++) {
		struct narf_rconn *c = dn->flushq[i];

		c->flush_queued = false;
		conn_flush(c);
	}
	dn->flushq_n = 0;
}

static void conn_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct narf_rconn *conn = s->data;
	struct narf_engine *e = &conn->dn->engine;
	bool preauth = narf_engine_preauth(e, &conn->client);
	uint64_t limit = e->cfg.max_query_buffer;
	size_t before = conn->in.len;

	if (preauth && limit > NARF_PREAUTH_QUERY_MAX)
		limit = NARF_PREAUTH_QUERY_MAX;
	if (nread < 0) {
		conn_close(conn);
		return;
	}
	if (nread == 0 || conn->closing)
		return;
	if (conn->tls == NULL)
		conn->in.len += (size_t)nread;
	else if (!tls_input(conn, buf->base, (size_t)nread))
		return;
	/* Plain text, as Redis counts it on a TLS connection too. */
	e->stats.net_input_bytes += (uint64_t)(conn->in.len - before);
	if (conn->read_iter != conn->dn->iter) {
		conn->read_iter = conn->dn->iter;
		conn->read_bytes = 0;
	}
	conn->read_bytes += (size_t)nread;
	conn->last_active_ms = uv_now(&conn->dn->loop);
	if (conn->in.len > limit) {
		NARF_WARN(
		        "client %llu (%s): query buffer over limit%s, closing",
		        (unsigned long long)conn->client.id, conn->client.addr,
		        preauth ? " before AUTH" : "");
		conn_close(conn);
		return;
	}
	conn_run(conn);
	if (conn->closing)
		return;
	if (conn->read_bytes >= NARF_ITER_READ_MAX && !conn->throttled) {
		/* Its share for this iteration: check_cb reads on. */
		conn->throttled = true;
		conn->dn->throttled++;
		if (conn->reading)
			uv_read_stop((uv_stream_t *)&conn->tcp);
		conn->reading = false;
	}
	conn_update_reading(conn);
	queue_flush(conn);
}

/* After the loop's I/O: connections that read their share read on. */
static void unthrottle(struct narf_dn *dn)
{
	for (struct narf_rconn *c = dn->conns; c != NULL && dn->throttled > 0;
	     c = c->next) {
		if (!c->throttled)
			continue;
		c->throttled = false;
		dn->throttled--;
		conn_update_reading(c);
		conn_flush(c); /* starts reading when nothing holds it */
	}
}

/*
 * End the waits that are over and resume the connections that wait no
 * more: replies whose acks arrived (or whose peers were excused), requests
 * put off once the lease is back or too old, re-routes once a map reply
 * came, proxy replies that came in, WAITs that are satisfied or timed out.
 * The ack gate and an owed re-route are looked at whatever the connection
 * waits for (conn.h). A connection whose gated writes can no longer be
 * vouched for (this node lost a slot) is closed: its client must not read
 * "OK".
 */
static void resume_blocked(struct narf_dn *dn)
{
	uint64_t now = uv_now(&dn->loop);
	bool lease = dn->cluster &&
	             narf_member_lease_ok(&dn->member, narf_clock_ms());
	struct narf_rconn *conn = dn->blocked;

	dn->progress = false;
	while (conn != NULL) {
		struct narf_rconn *next = conn->bnext;
		bool broken = false;

		if (narf_conn_gated(conn) && dn->repl != NULL &&
		    narf_repl_gate_open(dn->repl, &conn->gate, &broken)) {
			narf_gate_clear(&conn->gate);
			if (conn->wait == NARF_WAIT_ACKS)
				narf_conn_wait_end(conn, NARF_WAIT_ACKS);
		}
		if (broken) {
			NARF_WARN(
			        "client %llu (%s): closing: its writes can no "
			        "longer be acknowledged (this node lost their "
			        "slot, or an ISR drop left it below min_isr)",
			        (unsigned long long)conn->client.id,
			        conn->client.addr);
			conn_close(conn);
			conn = next;
			continue;
		}
		/* A request routed again after -MOVED waits for a map reply
		 * (or for the limit), owed behind a drain or not. */
		if (conn->map_checks != 0 &&
		    (narf_repl_map_checks(dn->repl) != conn->map_checks ||
		     now - conn->map_ms > NARF_RETRY_MAX_MS)) {
			conn->map_checks = 0;
			if (conn->wait == NARF_WAIT_MAP)
				narf_conn_wait_end(conn, NARF_WAIT_MAP);
		} else if (conn->wait == NARF_WAIT_RETRY &&
		           (lease || now - conn->wait_ms > NARF_RETRY_MAX_MS)) {
			conn->retry_expired = !lease;
			narf_conn_wait_end(conn, NARF_WAIT_RETRY);
		}
		/* Replies of a -MOVED naming us (forward.c) go out once our
		 * map is newer. */
		if (conn->moved_self_checks != 0 &&
		    (narf_repl_map_checks(dn->repl) !=
		             conn->moved_self_checks ||
		     now - conn->moved_self_ms > NARF_RETRY_MAX_MS)) {
			conn->moved_self_checks = 0;
			for (struct fwd *f = conn->fwd_head; f != NULL;
			     f = f->next)
				f->moved_self = false;
			narf_fwd_pop(conn);
		}
		if (conn->wait == NARF_WAIT_REMOTE)
			narf_fwd_block_check(conn, now);
		if (conn->wait == NARF_WAIT_WAIT) {
			uint64_t t = (uint64_t)conn->client.wait_timeout_ms;

			if (wait_done(conn, t > 0 && now - conn->wait_ms >= t))
				narf_conn_wait_end(conn, NARF_WAIT_WAIT);
		}
		if (!narf_conn_blocked(conn)) {
			unlist_blocked(conn);
			conn_run(conn);
			conn_update_reading(conn);
			conn_flush(conn);
		} else if (conn->out.len > 0) {
			/* forwarded replies that came in while it waits */
			conn_flush(conn);
		}
		conn = next;
	}
}

/*
 * Draining (the first SIGTERM/SIGINT): no new connections; a connection
 * closes once everything it sent is answered and written and it has been
 * quiet for NARF_DRAIN_QUIET_MS (a client racing the close would see an
 * error). A node that left the cluster instead keeps every connection until
 * NARF_LEFT_DRAIN_MS have passed since the drain began: a cluster client's
 * pooled connection may be idle now, and its next request should get a
 * -MOVED that moves it off, not a closed connection. The node stops when
 * no connection is left or at the deadline (NARF_DRAIN_MS, or
 * NARF_LEFT_DRAIN_MS for a node that left).
 */
static void drain_step(struct narf_dn *dn)
{
	struct narf_rconn *conn = dn->conns;
	bool left = dn->repl != NULL && narf_repl_leaving(dn->repl);
	uint64_t limit = left ? NARF_LEFT_DRAIN_MS : NARF_DRAIN_MS;
	uint64_t quiet = left ? NARF_LEFT_DRAIN_MS : NARF_DRAIN_QUIET_MS;
	uint64_t now = uv_now(&dn->loop);

	while (conn != NULL) {
		struct narf_rconn *next = conn->next;

		uint64_t since = conn->last_active_ms;

		if (left && since < dn->drain_start_ms)
			since = dn->drain_start_ms;
		if (!narf_conn_blocked(conn) && conn->fwd_n == 0 &&
		    !conn->pipeline_paused && !conn->writing &&
		    conn->out.len == 0 && now - since >= quiet)
			conn_close(conn);
		conn = next;
	}
	if (dn->conns == NULL || now - dn->drain_start_ms > limit) {
		if (dn->conns != NULL)
			NARF_INFO(
			        "drain: closing %u client connections after "
			        "%llu ms",
			        dn->engine.connected_clients,
			        (unsigned long long)limit);
		for (conn = dn->conns; conn != NULL; conn = conn->next)
			NARF_DEBUG(
			        "drain: client %llu (%s): waits for %s, %u "
			        "forwarded requests out",
			        (unsigned long long)conn->client.id,
			        conn->client.addr,
			        narf_conn_wait_name(conn->wait), conn->fwd_n);
		narf_dn_stop(dn);
	}
}

static void reap_cb(uv_idle_t *h)
{
	(void)h; /* the work is check_cb's: this only keeps the loop going */
}

/* Buried values (lazy free: a DEL'd big collection, a dropped slot) are
 * freed a bounded amount per loop iteration, between clients' requests;
 * the idle handle keeps iterations coming while any is left. */
static void reap_step(struct narf_dn *dn)
{
	bool more = narf_store_reap(dn->engine.store, NARF_REAP_BUDGET);

	if (more && !dn->reaping && !dn->closing) {
		uv_idle_start(&dn->reap, reap_cb);
		dn->reaping = true;
	} else if (!more && dn->reaping) {
		uv_idle_stop(&dn->reap);
		dn->reaping = false;
	}
}

static void check_cb(uv_check_t *h)
{
	struct narf_dn *dn = h->data;

	flush_queued(dn);
	dn->iter++;
	reap_step(dn);
	if (dn->throttled > 0)
		unthrottle(dn);
	narf_dn_block_check(dn);
	if (dn->progress)
		resume_blocked(dn);
	if (dn->draining && !dn->closing)
		drain_step(dn);
}

void narf_dn_kick(struct narf_dn *dn)
{
	dn->progress = true;
	/* An active idle handle makes the next poll return at once, so the
	 * check phase comes; reap_step stops it when nothing is buried. */
	if (!dn->reaping && !dn->closing) {
		uv_idle_start(&dn->reap, reap_cb);
		dn->reaping = true;
	}
}

static void on_repl_progress(void *data)
{
	struct narf_dn *dn = data;

	dn->progress = true;
}

/* The client's address into c->addr, and whether it is loopback
 * (127.0.0.0/8, as Redis's connIsLocal: protected mode). */
static void peer_name(uv_tcp_t *tcp, struct narf_client *c)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	char ip[64] = "?";
	int port = 0;

	if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) == 0 &&
	    ss.ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		uv_ip4_name(sin, ip, sizeof(ip));
		port = ntohs(sin->sin_port);
		c->loopback = (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	}
	snprintf(c->addr, sizeof(c->addr), "%s:%d", ip, port);
}

static void reject_closed_cb(uv_handle_t *h)
{
	free(h);
}

static void reject(struct narf_dn *dn, uv_stream_t *server)
{
	static const char msg[] = "-ERR max number of clients reached\r\n";
	uv_tcp_t *tcp = malloc(sizeof(*tcp));
	uv_buf_t b = uv_buf_init((char *)msg, sizeof(msg) - 1);

	if (tcp == NULL)
		return;
	uv_tcp_init(&dn->loop, tcp);
	/* A TLS client could not read it: just closed. */
	if (uv_accept(server, (uv_stream_t *)tcp) == 0 &&
	    server != (uv_stream_t *)&dn->tls_listener)
		uv_try_write((uv_stream_t *)tcp, &b, 1);
	uv_close((uv_handle_t *)tcp, reject_closed_cb);
	dn->engine.stats.rejected_connections++;
}

/* Protected mode, when nobody from the client's address can ever get in:
 * answer at once, as Redis does, and close once it is written. true when
 * it did (at accept; on TLS, at the end of the handshake). */
static bool deny_at_once(struct narf_rconn *conn)
{
	struct narf_engine *e = &conn->dn->engine;

	if (!narf_engine_protected(e, &conn->client) ||
	    narf_engine_admits_peers(e))
		return false;
	narf_engine_deny(e, &conn->client, &conn->out);
	e->stats.net_output_bytes += conn->out.len;
	conn_flush(conn);
	return true;
}

static void accept_cb(uv_stream_t *server, int status)
{
	struct narf_dn *dn = server->data;
	struct narf_engine *e = &dn->engine;
	struct narf_rconn *conn;
	enum narf_budget budget;

	if (status != 0 || dn->closing)
		return;
	/* --max-clients, else the peer reserve (engine.h, enum narf_budget) */
	budget = narf_engine_admit(e);
	if (budget == NARF_BUDGET_NONE) {
		reject(dn, server);
		return;
	}
	conn = calloc(1, sizeof(*conn));
	if (conn == NULL) {
		/* Accept and close: an unaccepted connection would stop
		 * libuv from polling the listener. */
		reject(dn, server);
		return;
	}
	conn->dn = dn;
	narf_resp_req_init(&conn->req);
	uv_tcp_init(&dn->loop, &conn->tcp);
	conn->tcp.data = conn;
	conn->next = dn->conns;
	if (dn->conns != NULL)
		dn->conns->prev = conn;
	dn->conns = conn;
	e->stats.connections++;
	narf_engine_client_init(e, &conn->client);
	narf_engine_budget_take(e, &conn->client, budget);
	if (uv_accept(server, (uv_stream_t *)&conn->tcp) != 0) {
		conn_close(conn);
		return;
	}
	if (server == (uv_stream_t *)&dn->tls_listener &&
	    (conn->tls = narf_tls_conn_create(&dn->tls)) == NULL) {
		conn_close(conn);
		return;
	}
	uv_tcp_nodelay(&conn->tcp, 1);
	peer_name(&conn->tcp, &conn->client);
	conn->last_active_ms = uv_now(&dn->loop);
	if (conn->tls == NULL && deny_at_once(conn))
		return;
	if (uv_read_start((uv_stream_t *)&conn->tcp, conn_alloc_cb,
	                  conn_read_cb) != 0) {
		conn_close(conn);
		return;
	}
	conn->reading = true;
}

/* Idle clients, and connections protected mode holds past their grace:
 * checked once a second, not with a timer per client. */
static void close_idle(struct narf_dn *dn)
{
	struct narf_engine *e = &dn->engine;
	uint64_t now = uv_now(&dn->loop);
	uint64_t limit = e->cfg.idle_timeout_ms;
	uint64_t wall = (uint64_t)narf_engine_now(e);
	struct narf_rconn *conn = dn->conns;

	while (conn != NULL) {
		struct narf_rconn *next = conn->next;

		if (conn->tls != NULL && !narf_tls_conn_ready(conn->tls) &&
		    wall > conn->client.created_ms + NARF_TLS_HANDSHAKE_MS) {
			tls_failed(conn, "handshake not finished in time");
		} else if (narf_engine_protected(e, &conn->client) &&
		           wall > conn->client.created_ms +
		                           NARF_PROTECTED_GRACE_MS) {
			NARF_DEBUG(
			        "client %llu (%s): not a proven peer after "
			        "%d ms (protected mode), closing",
			        (unsigned long long)conn->client.id,
			        conn->client.addr, NARF_PROTECTED_GRACE_MS);
			conn_close(conn);
		} else if (limit != 0 && !conn->client.peer &&
		           conn->wait != NARF_WAIT_KEYS &&
		           conn->wait != NARF_WAIT_REMOTE &&
		           now - conn->last_active_ms > limit) {
			/* (a client blocked on keys is not idle, as Redis) */
			/* Peer links are quiet when nothing is written: kept.
			 */
			NARF_DEBUG("client %llu (%s): idle, closing",
			           (unsigned long long)conn->client.id,
			           conn->client.addr);
			conn_close(conn);
		}
		conn = next;
	}
}

/*
 * The peer reserve (engine.h, enum narf_budget): a connection accepted
 * beyond --max-clients that has not proven the node role within
 * NARF_PEER_AUTH_DEADLINE_MS gets Redis's "max number of clients reached"
 * and closes. Looked at every cron tick, only while the reserve holds any.
 */
static void refuse_overdue_reserve(struct narf_dn *dn)
{
	struct narf_engine *e = &dn->engine;
	int64_t now = narf_engine_now(e);
	struct narf_rconn *conn = dn->conns;

	while (conn != NULL) {
		struct narf_rconn *next = conn->next;

		if (!conn->closing && !conn->client.close_after_reply &&
		    narf_engine_reserve_overdue(e, &conn->client, now)) {
			narf_engine_reserve_refuse(e, &conn->client,
			                           &conn->out);
			/* A TLS client still in its handshake cannot read
			 * the reply: just closed, its place freed now. */
			if (conn->tls != NULL &&
			    !narf_tls_conn_ready(conn->tls))
				conn_close(conn);
			else
				conn_flush(conn);
		}
		conn = next;
	}
}

static void cron_cb(uv_timer_t *t)
{
	struct narf_dn *dn = t->data;

	narf_engine_cron(&dn->engine);
	if (dn->repl != NULL)
		narf_repl_cron(dn->repl);
	/* Deadlines of the RETRY, MAP and WAIT waits. */
	if (dn->blocked != NULL)
		dn->progress = true;
	if (dn->engine.peer_pending > 0)
		refuse_overdue_reserve(dn);
	if (++dn->cron_ticks % (1000 / NARF_DN_CRON_MS) == 0)
		close_idle(dn);
	if (dn->stop_leaving)
		narf_dn_leave_step(dn);
}

/* Once: at the drain, or at the stop when there was no drain. */
static void close_listeners(struct narf_dn *dn)
{
	if (dn->engine.cfg.port != 0)
		uv_close((uv_handle_t *)&dn->listener, NULL);
	if (dn->tls_port != 0)
		uv_close((uv_handle_t *)&dn->tls_listener, NULL);
}

void narf_dn_start_drain(struct narf_dn *dn)
{
	dn->stop_leaving = false;
	dn->draining = true;
	dn->drain_start_ms = uv_now(&dn->loop);
	close_listeners(dn);
	drain_step(dn);
}

/* --- start, stop ---------------------------------------------------------- */

static int listen_on(struct narf_dn *dn, uv_tcp_t *l, int port, char *errmsg)
{
	const struct narf_engine_config *cfg = &dn->engine.cfg;
	struct sockaddr_in sa;
	int rv;

	rv = uv_ip4_addr(
	        strcmp(cfg->bind, "localhost") == 0 ? "127.0.0.1" : cfg->bind,
	        port, &sa);
	if (rv != 0) {
		snprintf(errmsg, NARF_ERRMSG_SIZE, "bad bind address %s",
		         cfg->bind);
		return NARF_EINVAL;
	}
	uv_tcp_init(&dn->loop, l);
	l->data = dn;
	rv = uv_tcp_bind(l, (const struct sockaddr *)&sa, 0);
	if (rv == 0)
		rv = uv_listen((uv_stream_t *)l, 511, accept_cb);
	if (rv != 0) {
		snprintf(errmsg, NARF_ERRMSG_SIZE, "listen on %s:%d: %s",
		         cfg->bind, port, uv_strerror(rv));
		uv_close((uv_handle_t *)l, NULL);
		return narf_err_from_uv(rv);
	}
	return 0;
}

int narf_dn_start(struct narf_dn *dn, char *errmsg)
{
	const struct narf_engine_config *cfg = &dn->engine.cfg;
	int rv;

	if (cfg->port != 0) {
		rv = listen_on(dn, &dn->listener, cfg->port, errmsg);
		if (rv != 0)
			return rv;
	}
	if (dn->tls_port != 0) {
		char desc[256];

		dn->tls_rbuf = malloc(NARF_TLS_READ);
		rv = dn->tls_rbuf == NULL ? NARF_ENOMEM
		                          : listen_on(dn, &dn->tls_listener,
		                                      dn->tls_port, errmsg);
		if (rv != 0) {
			if (rv == NARF_ENOMEM)
				snprintf(errmsg, NARF_ERRMSG_SIZE,
				         "TLS: out of memory");
			free(dn->tls_rbuf);
			dn->tls_rbuf = NULL;
			if (cfg->port != 0)
				uv_close((uv_handle_t *)&dn->listener, NULL);
			return rv;
		}
		narf_tls_describe(&dn->tls, desc, sizeof(desc));
		NARF_INFO("TLS on %s:%d: %s; client certificates %s", cfg->bind,
		          dn->tls_port, desc,
		          dn->tls.cfg.auth == NARF_TLS_AUTH_YES ? "required"
		          : dn->tls.cfg.auth == NARF_TLS_AUTH_OPTIONAL
		                  ? "verified when sent"
		                  : "not asked for");
	}
	uv_timer_init(&dn->loop, &dn->cron);
	dn->cron.data = dn;
	uv_timer_start(&dn->cron, cron_cb, NARF_DN_CRON_MS, NARF_DN_CRON_MS);
	narf_dn_watch_signals(dn);
	uv_check_init(&dn->loop, &dn->check);
	dn->check.data = dn;
	uv_check_start(&dn->check, check_cb);
	uv_idle_init(&dn->loop, &dn->reap);
	dn->reap.data = dn;
	narf_dn_block_start(dn);
	if (dn->repl != NULL)
		narf_repl_set_progress_cb(dn->repl, on_repl_progress, dn);
	return 0;
}

void narf_dn_stop(struct narf_dn *dn)
{
	if (dn->closing)
		return;
	dn->closing = true;
	if (!dn->draining)
		close_listeners(dn);
	uv_close((uv_handle_t *)&dn->cron, NULL);
	uv_close((uv_handle_t *)&dn->sigterm, NULL);
	uv_close((uv_handle_t *)&dn->sigint, NULL);
	uv_close((uv_handle_t *)&dn->sighup, NULL);
	uv_close((uv_handle_t *)&dn->check, NULL);
	uv_close((uv_handle_t *)&dn->reap, NULL);
	while (dn->conns != NULL)
		conn_close(dn->conns);
	narf_dn_block_stop(dn);
	narf_repl_stop(dn->repl);
	if (dn->cluster)
		narf_member_stop(&dn->member);
	narf_httpd_close(&dn->metrics);
	/* Connections still closing hold their own context references, and
	 * no read callback comes after uv_close(). */
	narf_tls_close(&dn->tls);
	narf_tls_close(&dn->tls_client); /* (relays hold their own) */
	free(dn->tls_rbuf);
	dn->tls_rbuf = NULL;
	free(dn->flushq);
	dn->flushq = NULL;
	dn->flushq_n = dn->flushq_cap = 0;
}
