/*
 * The /metrics HTTP server: see httpd.h.
 *
 * A connection's life: accepted (or, over the limit, closed at once), read
 * until its request head is complete or wrong, answered with one write,
 * shut down for writing, then read and discarded until the client closes.
 * A timer armed at accept closes it at its deadline whatever the stage, so
 * neither a silent client nor one that never reads its answer holds a slot
 * for long. Memory is freed in the close callbacks, once both handles (the
 * socket and the timer) are closed.
 */
#include "httpd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "flags.h"
#include "http.h"
#include "log.h"
#include "metrics.h"

struct narf_httpd_conn {
	struct narf_httpd *h; /* borrowed */
	struct narf_httpd_conn *prev, *next;
	uv_tcp_t tcp;     /* tcp.data == this */
	uv_timer_t timer; /* timer.data == this */
	uv_write_t wreq;
	uv_shutdown_t sreq;
	struct narf_http_req req;
	struct narf_buf out; /* the response, while it is written */
	int open_handles;    /* freed when it reaches 0 */
	bool answered;
	bool closing;
};

static void conn_closed_cb(uv_handle_t *handle)
{
	struct narf_httpd_conn *conn = handle->data;

	if (--conn->open_handles > 0)
		return;
	narf_buf_close(&conn->out);
	free(conn);
}

static void conn_close(struct narf_httpd_conn *conn)
{
	struct narf_httpd *h = conn->h;

	if (conn->closing)
		return;
	conn->closing = true;
	if (conn->prev != NULL)
		conn->prev->next = conn->next;
	else
		h->conns = conn->next;
	if (conn->next != NULL)
		conn->next->prev = conn->prev;
	h->n_conns--;
	uv_close((uv_handle_t *)&conn->tcp, conn_closed_cb);
	uv_close((uv_handle_t *)&conn->timer, conn_closed_cb);
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
	struct narf_httpd_conn *conn = req->data;

	/* Success: keep reading until the client closes (read_cb). */
	if (status != 0)
		conn_close(conn);
}

static void write_cb(uv_write_t *req, int status)
{
	struct narf_httpd_conn *conn = req->data;

	if (conn->closing)
		return;
	if (status != 0 || uv_shutdown(&conn->sreq, (uv_stream_t *)&conn->tcp,
	                               shutdown_cb) != 0)
		conn_close(conn);
}

static void respond(struct narf_httpd_conn *conn)
{
	struct narf_httpd *h = conn->h;
	struct narf_http_req *r = &conn->req;
	struct narf_buf body;
	const char *ctype = NULL;
	int status;
	uv_buf_t buf;

	narf_buf_init(&body);
	if (r->state == NARF_HTTP_ERROR) {
		status = r->status;
		h->bad++;
	} else if (r->method == NARF_HTTP_OTHER) {
		status = 405;
	} else {
		status = h->handler(h->data, r->path, &body, &ctype);
	}
	if (status != 200) {
		/* A short plain-text reason, whatever the handler built. */
		char line[64];
		int n = snprintf(line, sizeof(line), "%d %s\n", status,
		                 narf_http_reason(status));

		body.len = 0;
		ctype = NULL;
		narf_buf_append(&body, line, (size_t)n);
		NARF_DEBUG("http: %s answered %d", h->addr, status);
	}
	conn->answered = true;
	h->requests++;
	if (narf_http_response(&conn->out, status, ctype, body.data, body.len,
	                       r->state == NARF_HTTP_DONE &&
	                               r->method == NARF_HTTP_HEAD) != 0) {
		narf_buf_close(&body);
		conn_close(conn);
		return;
	}
	narf_buf_close(&body);
	buf = uv_buf_init(conn->out.data, (unsigned)conn->out.len);
	conn->wreq.data = conn;
	conn->sreq.data = conn;
	if (uv_write(&conn->wreq, (uv_stream_t *)&conn->tcp, &buf, 1,
	             write_cb) != 0)
		conn_close(conn);
}

static void alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
	static char slab[4096];

	/* One loop thread, and each read is consumed before the next: one
	 * static buffer serves every connection. */
	*buf = uv_buf_init(slab, sizeof(slab));
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct narf_httpd_conn *conn = s->data;

	if (conn->closing)
		return;
	if (nread < 0) {
		/* EOF after the answer is the normal end; before it, the
		 * client gave up (a truncated request): nothing to answer. */
		conn_close(conn);
		return;
	}
	if (nread == 0 || conn->answered)
		return; /* after the answer: discarded until EOF */
	if (narf_http_req_feed(&conn->req, buf->base, (size_t)nread) !=
	    NARF_HTTP_INCOMPLETE)
		respond(conn);
}

static void timer_cb(uv_timer_t *t)
{
	struct narf_httpd_conn *conn = t->data;

	conn->h->timed_out++;
	NARF_DEBUG("http: %s: closing a connection at its deadline",
	           conn->h->addr);
	conn_close(conn);
}

static void accept_cb(uv_stream_t *server, int status)
{
	struct narf_httpd *h = server->data;
	struct narf_httpd_conn *conn;

	if (status != 0 || h->closing)
		return;
	conn = calloc(1, sizeof(*conn));
	if (conn == NULL)
		return; /* the connection stays in the backlog; retried */
	conn->h = h;
	narf_http_req_init(&conn->req, NARF_HTTP_HEAD_MAX);
	uv_tcp_init(h->loop, &conn->tcp);
	uv_timer_init(h->loop, &conn->timer);
	conn->tcp.data = conn;
	conn->timer.data = conn;
	conn->open_handles = 2;
	conn->next = h->conns;
	if (h->conns != NULL)
		h->conns->prev = conn;
	h->conns = conn;
	h->n_conns++;
	if (uv_accept(server, (uv_stream_t *)&conn->tcp) != 0) {
		conn_close(conn);
		return;
	}
	if (h->n_conns > h->max_conns) {
		h->rejected++;
		conn_close(conn);
		return;
	}
	uv_timer_start(&conn->timer, timer_cb, h->timeout_ms, 0);
	if (uv_read_start((uv_stream_t *)&conn->tcp, alloc_cb, read_cb) != 0)
		conn_close(conn);
}

int narf_httpd_start(struct narf_httpd *h,
                     uv_loop_t *loop,
                     const char *addr,
                     narf_httpd_handler handler,
                     void *data,
                     char *errmsg)
{
	struct sockaddr_in sa;
	char host[64];
	int port, rv;

	memset(h, 0, sizeof(*h));
	h->loop = loop;
	h->handler = handler;
	h->data = data;
	h->max_conns = NARF_HTTPD_MAX_CONNS;
	h->timeout_ms = NARF_HTTPD_TIMEOUT_MS;
	snprintf(h->addr, sizeof(h->addr), "%s", addr);
	if (narf_parse_hostport(addr, host, sizeof(host), &port) != 0 ||
	    uv_ip4_addr(strcmp(host, "localhost") == 0 ? "127.0.0.1" : host,
	                port, &sa) != 0) {
		snprintf(errmsg, NARF_ERRMSG_SIZE,
		         "metrics address %s: expected host:port", addr);
		return NARF_EINVAL;
	}
	uv_tcp_init(loop, &h->listener);
	h->listener.data = h;
	h->listening = true;
	rv = uv_tcp_bind(&h->listener, (const struct sockaddr *)&sa, 0);
	if (rv == 0)
		rv = uv_listen((uv_stream_t *)&h->listener, 64, accept_cb);
	if (rv != 0) {
		snprintf(errmsg, NARF_ERRMSG_SIZE, "metrics: listen on %s: %s",
		         addr, uv_strerror(rv));
		narf_httpd_close(h);
		return narf_err_from_uv(rv);
	}
	return 0;
}

void narf_httpd_close(struct narf_httpd *h)
{
	if (h == NULL)
		return;
	h->closing = true;
	if (h->listening) {
		h->listening = false;
		uv_close((uv_handle_t *)&h->listener, NULL);
	}
	while (h->conns != NULL)
		conn_close(h->conns);
}

void narf_httpd_metrics(const struct narf_httpd *h, struct narf_metrics *m)
{
	narf_metrics_one_u64(m, "narf_http_responses_total",
	                     NARF_METRIC_COUNTER,
	                     "HTTP responses the metrics endpoint sent, any "
	                     "status.",
	                     h->requests);
	narf_metrics_one_u64(m, "narf_http_bad_requests_total",
	                     NARF_METRIC_COUNTER,
	                     "Malformed, oversized or unsupported HTTP "
	                     "requests answered with an error.",
	                     h->bad);
	narf_metrics_one_u64(m, "narf_http_rejected_connections_total",
	                     NARF_METRIC_COUNTER,
	                     "HTTP connections closed at once: over the "
	                     "connection limit.",
	                     h->rejected);
	narf_metrics_one_u64(m, "narf_http_timeouts_total", NARF_METRIC_COUNTER,
	                     "HTTP connections closed at their deadline.",
	                     h->timed_out);
	narf_metrics_one_u64(m, "narf_http_connections", NARF_METRIC_GAUGE,
	                     "Open HTTP connections, this scrape's included.",
	                     h->n_conns);
}
