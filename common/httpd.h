/*
 * A tiny HTTP/1.x server on the process's own libuv loop, for GET /metrics.
 *
 * The processes are single-threaded loops whose state (the store, the Raft
 * member, the map) only the loop thread may touch, so the endpoint runs on
 * that loop rather than in a library's threads. One request per connection:
 * the head is read (http.h), the handler builds the body, the response goes
 * out with "Connection: close", the write side is shut down, and the
 * connection closes once the client has closed too (or at the deadline), so
 * unread input can never turn the close into a reset that eats the reply.
 *
 * Robustness: at most max_conns connections (more are accepted and closed
 * at once), a deadline per connection covering both the request and the
 * reply (a silent, slow or never-reading client is closed), the head limit
 * of http.h (431), malformed heads (400),
 * other methods (405), other paths (404). None of this touches the rest of
 * the process.
 */
#ifndef NARF_HTTPD_H
#define NARF_HTTPD_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"

#define NARF_HTTPD_MAX_CONNS 32
#define NARF_HTTPD_TIMEOUT_MS 5000

/*
 * Build the response to GET path into body and return its status (200,
 * or 404 for a path not served); *content_type may be set (borrowed,
 * static). Runs on the loop thread.
 */
typedef int (*narf_httpd_handler)(void *data,
                                  const char *path,
                                  struct narf_buf *body,
                                  const char **content_type);

struct narf_httpd_conn;

struct narf_httpd {
	uv_loop_t *loop; /* borrowed */
	uv_tcp_t listener;
	bool listening;
	bool closing;
	narf_httpd_handler handler;
	void *data;
	unsigned max_conns;
	uint64_t timeout_ms;
	struct narf_httpd_conn *conns; /* owned; doubly linked */
	unsigned n_conns;
	/* counters, for the process's own metrics */
	uint64_t requests;  /* responses sent, any status */
	uint64_t bad;       /* 4xx/5xx answers to malformed requests */
	uint64_t rejected;  /* connections over max_conns */
	uint64_t timed_out; /* connections closed at their deadline */
	char addr[64];      /* host:port listened on */
};

/*
 * Listen on addr ("host:port", an IPv4 address) and serve with handler.
 * h must stay at a fixed address until narf_httpd_close() and the loop has
 * run the close callbacks. Returns 0 or NARF_E* with errmsg
 * (NARF_ERRMSG_SIZE bytes) saying why.
 */
int narf_httpd_start(struct narf_httpd *h,
                     uv_loop_t *loop,
                     const char *addr,
                     narf_httpd_handler handler,
                     void *data,
                     char *errmsg);

struct narf_metrics;

/* The server's own counters as metrics families (narf_http_*). */
void narf_httpd_metrics(const struct narf_httpd *h, struct narf_metrics *m);

/* Stop listening and close every connection (asynchronously; the loop
 * ends once the handles are closed). Safe on a server never started and
 * when called twice. */
void narf_httpd_close(struct narf_httpd *h);

#endif /* NARF_HTTPD_H */
