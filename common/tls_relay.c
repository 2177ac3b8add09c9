/*
 * TLS relay (tls_relay.h): a TCP connection with TLS on one side, one end
 * of a socketpair with plaintext on the other.
 *
 * States: handshaking (net open, app not yet made, timer = deadline),
 * relaying (both open), ending (one direction finished: the linger timer
 * runs), closing (uv_close on every handle; the relay is freed by the last
 * close callback). Pending write and shutdown callbacks run, cancelled,
 * before the close callbacks, so they may still look at the relay.
 *
 * Each direction finishes on its own: app to net when the caller's EOF was
 * followed by close_notify and a TCP shutdown that completed (everything
 * before it went out); net to app when the peer's EOF or close_notify was
 * followed by a shutdown of the socketpair that completed (everything
 * decrypted was delivered), or when the caller can no longer be written
 * to. The relay closes when both have finished, not when both have merely
 * begun to end: a caller that half-closes must still get every byte it
 * is owed.
 *
 * Failure modes: before the callback every error goes to it (never lost:
 * cancel is the only way not to call it); after it, the network failing
 * (reset, a bad record, a write error) closes everything at once, as a TCP
 * reset would, while the caller going away (a write to it failing) only
 * ends the direction towards it, so what the caller wrote before closing
 * still goes out with close_notify.
 */
#include "tls_relay.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/errors.h"

#define READ_SIZE 65536

struct narf_tls_relay {
	uv_loop_t *loop;
	uv_tcp_t net;  /* the TCP connection (ciphertext) */
	uv_pipe_t app; /* our end of the socketpair (plaintext) */
	uv_timer_t timer;
	uv_connect_t connect;
	uv_shutdown_t net_shut_req, app_shut;
	struct narf_tls_conn *tls;
	narf_tls_relay_cb cb; /* NULL once called or cancelled */
	void *data;
	struct sockaddr_storage peer;
	struct narf_buf plain; /* decrypted, on its way to the app */
	uint64_t timeout_ms;
	int handles;       /* initialised handles not yet closed */
	size_t net_queued; /* bytes in write requests, each way */
	size_t app_queued;
	bool app_made;    /* the socketpair exists (handed over) */
	bool net_ended;   /* network side ended (EOF, close_notify) */
	bool app_ended;   /* the caller's side ended */
	bool to_app_done; /* net-to-app direction finished */
	bool to_net_done; /* app-to-net direction finished */
	bool net_shut;    /* net write side shut: TLS output is dropped */
	bool net_paused;  /* not reading net: app queue full */
	bool app_paused;  /* not reading app: net queue full */
	bool closing;
};

struct relay_write {
	uv_write_t req;
	struct narf_tls_relay *r;
	bool to_net;
	size_t len;
	char data[];
};

static unsigned pending;         /* relays before cb */
static char read_buf[READ_SIZE]; /* consumed whole by each read callback */

unsigned narf_tls_relay_pending(void)
{
	return pending;
}

static void handle_closed(uv_handle_t *h)
{
	struct narf_tls_relay *r = h->data;

	if (--r->handles > 0)
		return;
	narf_tls_conn_destroy(r->tls);
	narf_buf_close(&r->plain);
	free(r);
}

static void free_handle(uv_handle_t *h)
{
	free(h);
}

static void close_handle(struct narf_tls_relay *r, uv_handle_t *h)
{
	if (h->loop != NULL && !uv_is_closing(h))
		uv_close(h, handle_closed);
}

static void fail(struct narf_tls_relay *r, int status, const char *why);

static void close_all(struct narf_tls_relay *r)
{
	if (r->closing)
		return;
	/* cb runs exactly once unless cancelled: a path that closes before
	 * the handover without calling it is a bug, answered here rather
	 * than by a caller waiting forever. */
	if (r->cb != NULL) {
		fail(r, NARF_EINTERNAL, "TLS relay closed before its callback");
		return;
	}
	r->closing = true;
	uv_timer_stop(&r->timer);
	close_handle(r, (uv_handle_t *)&r->net);
	close_handle(r, (uv_handle_t *)&r->timer);
	if (r->app_made)
		close_handle(r, (uv_handle_t *)&r->app);
}

/* Before the handover: tell the caller and close. */
static void fail(struct narf_tls_relay *r, int status, const char *why)
{
	narf_tls_relay_cb cb = r->cb;

	if (cb != NULL) {
		r->cb = NULL;
		pending--;
		cb(r->data, -1, &r->peer, status, why);
	}
	close_all(r);
}

static void read_again(struct narf_tls_relay *r);
static void app_gone(struct narf_tls_relay *r);
static void net_broken(struct narf_tls_relay *r, int uv_status);

static void write_cb(uv_write_t *req, int status)
{
	struct relay_write *w = (struct relay_write *)req;
	struct narf_tls_relay *r = w->r;
	bool to_net = w->to_net;

	if (to_net)
		r->net_queued -= w->len;
	else
		r->app_queued -= w->len;
	free(w);
	if (r->closing)
		return;
	if (status < 0) {
		if (to_net)
			net_broken(r, status);
		else
			app_gone(r);
		return;
	}
	read_again(r);
}

/* Write all of data to s: what the kernel takes now, the rest queued. */
static int send_to(struct narf_tls_relay *r,
                   uv_stream_t *s,
                   const char *data,
                   size_t len)
{
	bool to_net = s == (uv_stream_t *)&r->net;
	struct relay_write *w;
	uv_buf_t b;
	int n;

	if (len == 0)
		return 0;
	b = uv_buf_init((char *)data, (unsigned)len);
	n = uv_try_write(s, &b, 1);
	if (n == (int)len)
		return 0;
	if (n < 0 && n != UV_EAGAIN)
		return n;
	if (n > 0) {
		data += n;
		len -= (size_t)n;
	}
	w = malloc(sizeof(*w) + len);
	if (w == NULL)
		return UV_ENOMEM;
	w->r = r;
	w->to_net = to_net;
	w->len = len;
	memcpy(w->data, data, len);
	b = uv_buf_init(w->data, (unsigned)len);
	n = uv_write(&w->req, s, &b, 1, write_cb);
	if (n != 0) {
		free(w);
		return n;
	}
	if (to_net)
		r->net_queued += len;
	else
		r->app_queued += len;
	return 0;
}

/* The TLS output (handshake flights, records, alerts) onto the network.
 * After our close_notify and the TCP shutdown nothing more may be written
 * (libuv would refuse it): what OpenSSL still says then (an answer to a
 * key update) is dropped. */
static int flush_net(struct narf_tls_relay *r)
{
	struct narf_buf *out = narf_tls_conn_out(r->tls);
	int rv = r->net_shut ? 0
	                     : send_to(r, (uv_stream_t *)&r->net, out->data,
	                               out->len);

	out->len = 0;
	return rv;
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	(void)suggested;
	*buf = uv_buf_init(read_buf, sizeof(read_buf));
}

static void net_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void app_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void read_again(struct narf_tls_relay *r)
{
	if (r->net_paused && r->app_queued <= NARF_TLS_RELAY_LOW &&
	    !r->net_ended) {
		r->net_paused = false;
		if (uv_read_start((uv_stream_t *)&r->net, alloc_cb,
		                  net_read_cb) != 0) {
			close_all(r);
			return;
		}
	}
	if (r->app_paused && r->net_queued <= NARF_TLS_RELAY_LOW &&
	    !r->app_ended && !r->closing) {
		r->app_paused = false;
		if (uv_read_start((uv_stream_t *)&r->app, alloc_cb,
		                  app_read_cb) != 0)
			close_all(r);
	}
}

static void linger_cb(uv_timer_t *t)
{
	close_all(t->data);
}

/* A direction finished: close when both have, else give the other one
 * the linger time (the timer, the handshake deadline before, is free:
 * it was stopped at the handover). */
static void finished(struct narf_tls_relay *r)
{
	if (r->to_app_done && r->to_net_done) {
		close_all(r);
		return;
	}
	if (!uv_is_active((uv_handle_t *)&r->timer))
		uv_timer_start(&r->timer, linger_cb, NARF_TLS_RELAY_LINGER_MS,
		               0);
}

/* (status ignored: a socketpair whose caller closed fails its shutdown,
 * and either way nothing more goes that way) */
static void shut_cb(uv_shutdown_t *req, int status)
{
	struct narf_tls_relay *r = req->data;

	(void)status;
	if (r->closing)
		return;
	if (req == &r->app_shut)
		r->to_app_done = true;
	else
		r->to_net_done = true;
	finished(r);
}

/* Nothing more comes from the network side: stop reading it. */
static void net_stop(struct narf_tls_relay *r)
{
	r->net_ended = true;
	r->net_paused = false;
	uv_read_stop((uv_stream_t *)&r->net);
}

/* The network side ended: the app reads EOF after what was delivered. */
static void net_end(struct narf_tls_relay *r)
{
	if (r->net_ended)
		return;
	net_stop(r);
	if (r->to_app_done)
		return;
	r->app_shut.data = r;
	if (uv_shutdown(&r->app_shut, (uv_stream_t *)&r->app, shut_cb) != 0)
		app_gone(r);
}

/* The network failed (a reset, a write error, a bad record). Before the
 * handover cb hears of it. After it nothing more goes out and the caller's
 * side is no longer read, but what was decrypted before still reaches the
 * caller, then its EOF, as over TCP: a peer that answers and closes while
 * we still send (its kernel resets the connection) must not lose the
 * answer it gave. */
static void net_broken(struct narf_tls_relay *r, int uv_status)
{
	if (r->cb != NULL) {
		fail(r, narf_err_from_uv(uv_status), uv_strerror(uv_status));
		return;
	}
	r->to_net_done = true;
	r->net_shut = true;
	if (!r->app_ended) {
		r->app_ended = true;
		r->app_paused = false;
		uv_read_stop((uv_stream_t *)&r->app);
	}
	net_end(r);
	if (!r->closing)
		finished(r);
}

/* What was decrypted, to the app (dropped when the caller is gone); false
 * when the relay closed. */
static bool deliver(struct narf_tls_relay *r)
{
	int rv = 0;

	if (!r->to_app_done)
		rv = send_to(r, (uv_stream_t *)&r->app, r->plain.data,
		             r->plain.len);
	r->plain.len = 0;
	if (rv == UV_ENOMEM)
		close_all(r);
	else if (rv != 0)
		app_gone(r);
	return !r->closing;
}

/* The caller can no longer be written to (it closed its fd): what the
 * network still sends has nowhere to go, but what the caller wrote before
 * closing is still read and sent, so only this direction ends. */
static void app_gone(struct narf_tls_relay *r)
{
	if (r->to_app_done)
		return;
	r->to_app_done = true;
	r->plain.len = 0;
	if (!r->net_ended)
		net_stop(r);
	finished(r);
}

static void app_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct narf_tls_relay *r = s->data;

	if (r->closing)
		return;
	if (nread == 0)
		return;
	if (nread < 0) {
		/* The caller closed or shut down its end: close_notify,
		 * then the TCP write side once everything went out. A
		 * reset (it closed with our bytes unread) also says it
		 * reads no more. */
		r->app_ended = true;
		r->app_paused = false;
		uv_read_stop(s);
		narf_tls_conn_close_notify(r->tls);
		if (flush_net(r) != 0) {
			close_all(r);
			return;
		}
		r->net_shut = true;
		r->net_shut_req.data = r;
		if (uv_shutdown(&r->net_shut_req, (uv_stream_t *)&r->net,
		                shut_cb) != 0) {
			close_all(r);
			return;
		}
		if (nread != UV_EOF)
			app_gone(r);
		return;
	}
	if (narf_tls_conn_encrypt(r->tls, buf->base, (size_t)nread) != 0) {
		close_all(r);
		return;
	}
	if (flush_net(r) != 0) {
		net_broken(r, UV_EPIPE);
		return;
	}
	if (r->net_queued > NARF_TLS_RELAY_HIGH) {
		r->app_paused = true;
		uv_read_stop(s);
	}
}

/* The handshake is done: make the socketpair and hand one end over. */
static int hand_over(struct narf_tls_relay *r)
{
	narf_tls_relay_cb cb = r->cb;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
	               sv) != 0) {
		char why[96];

		snprintf(why, sizeof(why), "socketpair: %s", strerror(errno));
		fail(r, NARF_EIO, why);
		return -1;
	}
	if (uv_pipe_init(r->loop, &r->app, 0) != 0) {
		close(sv[0]);
		close(sv[1]);
		fail(r, NARF_ENOMEM, "out of memory");
		return -1;
	}
	r->app.data = r;
	r->handles++;
	r->app_made = true;
	if (uv_pipe_open(&r->app, sv[0]) != 0) {
		close(sv[0]);
		close(sv[1]);
		fail(r, NARF_EIO, "socketpair: cannot watch it");
		return -1;
	}
	if (uv_read_start((uv_stream_t *)&r->app, alloc_cb, app_read_cb) != 0) {
		close(sv[1]); /* (sv[0] is the pipe's, closed with it) */
		fail(r, NARF_EIO, "socketpair: cannot watch it");
		return -1;
	}
	uv_timer_stop(&r->timer);
	r->cb = NULL;
	pending--;
	cb(r->data, sv[1], &r->peer, 0, NULL);
	return 0;
}

static void net_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct narf_tls_relay *r = s->data;
	char why[160];
	bool done, bad, eof = false;

	if (r->closing || nread == 0)
		return;
	if (nread < 0) {
		if (r->cb != NULL)
			fail(r, NARF_ECLOSED,
			     nread == UV_EOF ? "closed during the TLS handshake"
			                     : uv_strerror((int)nread));
		else if (nread == UV_EOF)
			net_end(r);
		else
			net_broken(r, (int)nread);
		return;
	}
	if (narf_tls_conn_feed(r->tls, buf->base, (size_t)nread) != 0) {
		fail(r, NARF_ENOMEM, "out of memory");
		return;
	}
	if (r->cb != NULL) {
		int rv = narf_tls_conn_handshake(r->tls, &done, why,
		                                 sizeof(why));

		/* (an alert for the peer may wait in the output) */
		if (flush_net(r) != 0 && rv == 0) {
			fail(r, NARF_EIO, "write failed during the handshake");
			return;
		}
		if (rv != 0) {
			fail(r, NARF_EPROTO, why);
			return;
		}
		if (!done || hand_over(r) != 0)
			return;
	}
	/* (a bad record: what came before it is still delivered) */
	bad = narf_tls_conn_decrypt(r->tls, &r->plain, READ_SIZE, &eof, why,
	                            sizeof(why)) != 0;
	if (!deliver(r))
		return;
	if (bad) {
		net_broken(r, UV_EPROTO);
		return;
	}
	/* (TLS 1.3 tickets and key updates answer from inside SSL_read) */
	if (flush_net(r) != 0) {
		net_broken(r, UV_EPIPE);
		return;
	}
	if (eof) {
		net_end(r);
		return;
	}
	if (r->app_queued > NARF_TLS_RELAY_HIGH) {
		r->net_paused = true;
		uv_read_stop(s);
	}
}

static void deadline_cb(uv_timer_t *t)
{
	struct narf_tls_relay *r = t->data;
	char why[96];

	snprintf(why, sizeof(why), "TLS handshake not finished in %llu ms",
	         (unsigned long long)r->timeout_ms);
	fail(r, NARF_ETIMEOUT, why);
}

/* A relay with its net and timer handles initialised, or NULL. */
static struct narf_tls_relay *relay_new(uv_loop_t *loop,
                                        struct narf_tls *t,
                                        uint64_t timeout_ms,
                                        narf_tls_relay_cb cb,
                                        void *data)
{
	struct narf_tls_relay *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->tls = narf_tls_conn_create(t);
	if (r->tls == NULL) {
		free(r);
		return NULL;
	}
	r->loop = loop;
	r->cb = cb;
	r->data = data;
	r->timeout_ms = timeout_ms;
	narf_buf_init(&r->plain);
	uv_tcp_init(loop, &r->net);
	uv_timer_init(loop, &r->timer);
	r->net.data = r;
	r->timer.data = r;
	r->handles = 2;
	pending++;
	uv_timer_start(&r->timer, deadline_cb, timeout_ms, 0);
	return r;
}

/* Start reading the network side and, for a client, send the hello. */
static int start_handshake(struct narf_tls_relay *r)
{
	bool done;
	char why[160];

	if (uv_read_start((uv_stream_t *)&r->net, alloc_cb, net_read_cb) != 0)
		return NARF_EIO;
	if (narf_tls_conn_handshake(r->tls, &done, why, sizeof(why)) != 0 ||
	    flush_net(r) != 0)
		return NARF_EPROTO;
	return 0;
}

static void connect_cb(uv_connect_t *req, int status)
{
	struct narf_tls_relay *r = req->data;

	if (r->closing)
		return;
	if (status < 0) {
		fail(r, narf_err_from_uv(status), uv_strerror(status));
		return;
	}
	uv_tcp_nodelay(&r->net, 1);
	if (start_handshake(r) != 0)
		fail(r, NARF_EPROTO, "cannot start the TLS handshake");
}

struct narf_tls_relay *narf_tls_relay_connect(uv_loop_t *loop,
                                              const struct sockaddr *sa,
                                              struct narf_tls *t,
                                              uint64_t timeout_ms,
                                              narf_tls_relay_cb cb,
                                              void *data)
{
	struct narf_tls_relay *r = relay_new(loop, t, timeout_ms, cb, data);
	size_t salen = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
	                                         : sizeof(struct sockaddr_in);

	if (r == NULL)
		return NULL;
	memcpy(&r->peer, sa, salen);
	r->connect.data = r;
	if (uv_tcp_connect(&r->connect, &r->net, sa, connect_cb) != 0) {
		r->cb = NULL;
		pending--;
		close_all(r);
		return NULL;
	}
	return r;
}

struct narf_tls_relay *narf_tls_relay_accept(uv_stream_t *server,
                                             struct narf_tls *t,
                                             uint64_t timeout_ms,
                                             narf_tls_relay_cb cb,
                                             void *data)
{
	struct narf_tls_relay *r =
	        relay_new(server->loop, t, timeout_ms, cb, data);
	int len = (int)sizeof(struct sockaddr_storage);

	if (r == NULL) {
		/* Take the connection off the backlog and drop it. */
		uv_tcp_t *drop = malloc(sizeof(*drop));

		if (drop != NULL) {
			uv_tcp_init(server->loop, drop);
			(void)uv_accept(server, (uv_stream_t *)drop);
			uv_close((uv_handle_t *)drop, free_handle);
		}
		return NULL;
	}
	if (uv_accept(server, (uv_stream_t *)&r->net) != 0) {
		r->cb = NULL;
		pending--;
		close_all(r);
		return NULL;
	}
	uv_tcp_nodelay(&r->net, 1);
	uv_tcp_getpeername(&r->net, (struct sockaddr *)&r->peer, &len);
	if (start_handshake(r) != 0) {
		r->cb = NULL;
		pending--;
		close_all(r);
		return NULL;
	}
	return r;
}

void narf_tls_relay_cancel(struct narf_tls_relay *r)
{
	if (r == NULL || r->cb == NULL)
		return;
	r->cb = NULL;
	pending--;
	close_all(r);
}
