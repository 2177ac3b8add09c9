/*
 * narf's libraft transport: see transport.h; the frames are raft_hs.h's.
 *
 * Incoming, happy path: listen_cb() accepts the socket into a
 * raft_malloc'd uv_tcp_t, starts the connection's deadline timer and reads
 * HELLO. in_alloc_cb() never offers more room than the frame being read
 * still needs, so not one byte past the handshake is taken off the socket.
 * The HELLO is answered with CHALLENGE, the PROOF read and checked; then
 * reading stops, OK is written, and once that write has completed the
 * stream goes to libraft's accept callback with the id the proof carried.
 * The connection's own state (timer, buffers) is then closed and freed;
 * the stream is libraft's.
 *
 * Outgoing, happy path: connect() starts a TCP connect and the deadline
 * timer; HELLO is written, CHALLENGE read and checked, PROOF written. Once
 * the OK byte has arrived and every write has completed, the stream goes
 * to the connect callback.
 *
 * With TLS (--tls-cluster yes: tls_server and tls_client set), the TCP
 * connection and its TLS handshake are a relay's (common/tls_relay.h):
 * listen_cb() hands the socket to narf_tls_relay_accept() and connect()
 * dials with narf_tls_relay_connect(), in state IN_TLS / OUT_TLS with no
 * stream of ours yet; the relay's callback gives the tunnel's plaintext
 * end, opened as our uv_tcp_t, and everything above then runs over it
 * unchanged: libraft gets the tunnel, and still only after the proof. A
 * connection in its TLS handshake is an entry of t->in like any other, so
 * the cap below and the deadline (one for TLS and the proof together)
 * cover it; aborting it cancels the relay.
 *
 * Failure modes: a malformed frame, a wrong proof, EOF or a socket error,
 * or the deadline. The connection's handles are closed (an incoming one is
 * logged at WARN, at most NARF_TRANSPORT_WARN_LINES lines a window, and
 * libraft never hears of it); once they have closed its state is freed
 * and an outgoing request's callback fires with RAFT_NOCONNECTION. Too many
 * incoming handshakes at once: the newest connection is accepted and closed
 * at once. close(): the listener and every pending handshake are closed,
 * pending connects fire RAFT_CANCELED, and the close callback fires once
 * the last of our handles has closed. Memory is freed only in close
 * callbacks, and a request's callback never fires from inside connect().
 *
 * After the hand-over (TLS only): libraft never reads a stream it dialed,
 * so it learns that the member went away (was killed, restarted) only
 * when a write fails, and loses that message. Over plain TCP that is the
 * second write after the peer died (the first draws the reset); through
 * the relay, which half-closes like TCP and stops reading the network
 * once it ended, it was up to the third, and the lost ones were an
 * election's pre-vote and vote grants between the two survivors of a
 * killed leader: split votes, a second election timeout. So with TLS we
 * read the stream libraft was handed ourselves (watch_read_cb(): nothing
 * ever comes, a member never writes on a stream it accepted) and on its
 * end shut our write side down: libraft's next write fails at once (that
 * message is still lost) and it reconnects at once.
 */
#include "transport.h"

#include <arpa/inet.h>
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/errors.h"
#include "common/flags.h"
#include "common/log.h"
#include "common/tls_relay.h"
#include "raft_hs.h"

#define LISTEN_BACKLOG 128
#define PEER_SIZE 64 /* "[ipv6]:port" */

enum in_state {
	IN_TLS,     /* TLS handshake in the relay: no tcp handle yet */
	IN_HELLO,   /* reading HELLO */
	IN_PROOF,   /* CHALLENGE sent, reading PROOF */
	IN_OK,      /* proven; writing OK */
	IN_HANDED,  /* the stream is libraft's; our timer closes */
	IN_CLOSING, /* refused or cancelled; our handles close */
};

/* One incoming connection until libraft has it. */
struct narf_transport_in {
	struct narf_transport *t; /* borrowed */
	uv_tcp_t *tcp; /* owned (raft_malloc) until handed to libraft */
	bool tcp_live; /* tcp initialised: a handle to close */
	struct narf_tls_relay *relay; /* IN_TLS: the relay, until its cb */
	uv_timer_t timer;
	uv_write_t write_challenge;
	uv_write_t write_ok;
	enum in_state state;
	unsigned open; /* our handles not closed yet */
	struct narf_raft_hs_server hs;
	unsigned char buf[NARF_RAFT_HS_MAX_FRAME]; /* the frame being read */
	size_t need, got;
	unsigned char ok;     /* OK's write buffer */
	char peer[PEER_SIZE]; /* for logs */
	struct narf_transport_in *prev, *next;
};

enum out_state {
	OUT_TLS,        /* TCP connect and TLS handshake in the relay */
	OUT_CONNECTING, /* TCP connect in flight */
	OUT_CHALLENGE,  /* HELLO sent, reading CHALLENGE */
	OUT_OK,         /* PROOF sent, reading OK */
	OUT_HANDED,     /* the stream is libraft's; our timer closes */
	OUT_CLOSING,    /* failed or cancelled; our handles close */
};

/* One connect request of libraft's. */
struct narf_transport_out {
	struct narf_transport *t;    /* borrowed */
	struct raft_uv_connect *req; /* borrowed: libraft's */
	raft_uv_connect_cb cb;
	raft_id peer_id;
	char address[NARF_ADDR_SIZE];
	uv_tcp_t *tcp; /* owned (raft_malloc) until handed to libraft */
	bool tcp_live; /* tcp initialised: a handle to close */
	struct narf_tls_relay *relay; /* OUT_TLS: the relay, until its cb */
	uv_timer_t timer;
	uv_connect_t connect;
	uv_write_t write_hello;
	uv_write_t write_proof;
	enum out_state state;
	unsigned open;   /* our handles not closed yet */
	unsigned writes; /* writes whose callback has not fired */
	bool got_ok;
	int status; /* for cb once closed: RAFT_NOCONNECTION, RAFT_CANCELED */
	struct narf_raft_hs_client hs;
	unsigned char buf[NARF_RAFT_HS_MAX_FRAME];
	size_t need, got;
	struct narf_transport_out *prev, *next;
};

/* ---- the transport ---------------------------------------------------- */

/* Fire the close callback once close() was called and the last of our
 * handles has closed. */
static void maybe_closed(struct narf_transport *t)
{
	raft_uv_transport_close_cb cb = t->close_cb;

	if (!t->closing || t->listening || t->in != NULL || t->out != NULL ||
	    t->n_dropping > 0)
		return;
	t->close_cb = NULL;
	if (cb != NULL)
		cb(&t->iface);
}

/* A refusal or failure worth a WARN line: at most WARN_LINES a window
 * per direction; the next line logged counts those left out. */
static void warn_limited(struct narf_transport *t,
                         struct narf_transport_warn *w,
                         const char *fmt,
                         ...) __attribute__((format(printf, 3, 4)));
static void warn_limited(struct narf_transport *t,
                         struct narf_transport_warn *w,
                         const char *fmt,
                         ...)
{
	uint64_t window = uv_now(t->loop) / NARF_TRANSPORT_WARN_WINDOW_MS;
	char line[NARF_ERRMSG_SIZE + 160];
	va_list ap;

	if (window != w->window) {
		w->window = window;
		w->lines = 0;
	}
	if (w->lines >= NARF_TRANSPORT_WARN_LINES) {
		w->skipped++;
		return;
	}
	w->lines++;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (w->skipped > 0)
		NARF_WARN("%s (and %llu more not logged)", line,
		          (unsigned long long)w->skipped);
	else
		NARF_WARN("%s", line);
	w->skipped = 0;
}

/* narf's Raft addresses: an IPv4 address or "localhost", and a port. */
static int parse_addr(const char *address, struct sockaddr_in *sa)
{
	char host[NARF_ADDR_SIZE];
	int port;

	if (narf_parse_hostport(address, host, sizeof(host), &port) != 0)
		return UV_EINVAL;
	return uv_ip4_addr(strcmp(host, "localhost") == 0 ? "127.0.0.1" : host,
	                   port, sa);
}

static void addr_name(const struct sockaddr_storage *ss, char *out)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	snprintf(out, PEER_SIZE, "?");
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

		uv_ip4_name(sin, ip, sizeof(ip));
		snprintf(out, PEER_SIZE, "%s:%u", ip, ntohs(sin->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

		uv_ip6_name(s6, ip, sizeof(ip));
		snprintf(out, PEER_SIZE, "[%s]:%u", ip, ntohs(s6->sin6_port));
	}
}

static void peer_name(uv_tcp_t *tcp, char *out)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	snprintf(out, PEER_SIZE, "?");
	if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) == 0)
		addr_name(&ss, out);
}

/* The relay's plaintext end (an AF_UNIX socket) as tcp, an initialised
 * handle, which then owns fd. libuv streams it as it would TCP; only
 * the TCP options (nodelay, peer name) fail on it. */
static int open_tunnel(uv_tcp_t *tcp, int fd)
{
	int rv = uv_tcp_open(tcp, fd);

	if (rv != 0)
		close(fd);
	return rv;
}

/* ---- incoming --------------------------------------------------------- */

static void in_closed_cb(uv_handle_t *h)
{
	struct narf_transport_in *in = h->data;
	struct narf_transport *t = in->t;

	if (h != (uv_handle_t *)&in->timer) {
		raft_free(h);
		in->tcp = NULL;
	}
	if (--in->open > 0)
		return;
	if (in->prev != NULL)
		in->prev->next = in->next;
	else
		t->in = in->next;
	if (in->next != NULL)
		in->next->prev = in->prev;
	t->n_in--;
	free(in);
	maybe_closed(t);
}

/* Close the connection; libraft never hears of it. */
static void in_abort(struct narf_transport_in *in)
{
	assert(in->state != IN_HANDED && in->state != IN_CLOSING);
	in->state = IN_CLOSING;
	narf_tls_relay_cancel(in->relay);
	in->relay = NULL;
	if (in->tcp_live) {
		uv_close((uv_handle_t *)in->tcp, in_closed_cb);
	} else {
		raft_free(in->tcp);
		in->tcp = NULL;
	}
	uv_close((uv_handle_t *)&in->timer, in_closed_cb);
}

static void in_refuse(struct narf_transport_in *in, const char *why)
{
	if (in->state == IN_HANDED || in->state == IN_CLOSING)
		return;
	in->t->refused++;
	warn_limited(in->t, &in->t->warn_in,
	             "raft: refused a connection from %s: %s", in->peer, why);
	in_abort(in);
}

static void in_timeout_cb(uv_timer_t *timer)
{
	struct narf_transport_in *in = timer->data;
	char why[64];

	snprintf(why, sizeof(why), "no handshake within %u ms",
	         in->t->handshake_ms);
	in_refuse(in, why);
}

/* The proven stream goes to libraft; only our timer is left to close. */
static void in_hand_over(struct narf_transport_in *in)
{
	struct narf_transport *t = in->t;
	uv_tcp_t *tcp = in->tcp;

	assert(!t->closing);
	in->tcp = NULL;
	in->state = IN_HANDED;
	in->open = 1;
	uv_close((uv_handle_t *)&in->timer, in_closed_cb);
	t->accepted++;
	NARF_INFO("raft: member %llu (%s) proved itself from %s",
	          (unsigned long long)in->hs.hello.id, in->hs.hello.address,
	          in->peer);
	t->accept_cb(&t->iface, in->hs.hello.id, in->hs.hello.address,
	             (struct uv_stream_s *)tcp);
}

static void in_challenge_written_cb(uv_write_t *req, int status)
{
	struct narf_transport_in *in = req->data;

	if (status < 0)
		in_refuse(in, uv_strerror(status));
}

static void in_ok_written_cb(uv_write_t *req, int status)
{
	struct narf_transport_in *in = req->data;

	if (in->state != IN_OK)
		return; /* closed meanwhile: status is UV_ECANCELED */
	if (status < 0)
		in_refuse(in, uv_strerror(status));
	else
		in_hand_over(in);
}

/* HELLO has arrived: answer with CHALLENGE, then read PROOF. */
static void in_hello(struct narf_transport_in *in)
{
	char why[NARF_ERRMSG_SIZE];
	uv_buf_t buf;
	int rv;

	rv = narf_raft_hs_server_hello(&in->hs, in->t->keys, in->buf, in->got,
	                               why);
	if (rv != 0) {
		in_refuse(in, why);
		return;
	}
	in->state = IN_PROOF;
	in->got = 0;
	in->need = NARF_RAFT_HS_PROOF_SIZE;
	buf = uv_buf_init((char *)in->hs.challenge,
	                  NARF_RAFT_HS_CHALLENGE_SIZE);
	in->write_challenge.data = in;
	rv = uv_write(&in->write_challenge, (uv_stream_t *)in->tcp, &buf, 1,
	              in_challenge_written_cb);
	if (rv != 0)
		in_refuse(in, uv_strerror(rv));
}

/* PROOF has arrived: stop reading (the rest is libraft's) and send OK. */
static void in_proof(struct narf_transport_in *in)
{
	char why[NARF_ERRMSG_SIZE];
	uv_buf_t buf;
	int rv;

	rv = narf_raft_hs_server_proof(&in->hs, in->t->keys, in->buf, in->got,
	                               why);
	if (rv != 0) {
		char msg[NARF_ERRMSG_SIZE + 64];

		snprintf(msg, sizeof(msg), "claims member %llu: %s",
		         (unsigned long long)in->hs.hello.id, why);
		in_refuse(in, msg);
		return;
	}
	uv_read_stop((uv_stream_t *)in->tcp);
	in->state = IN_OK;
	in->ok = NARF_RAFT_HS_OK;
	buf = uv_buf_init((char *)&in->ok, NARF_RAFT_HS_OK_SIZE);
	in->write_ok.data = in;
	rv = uv_write(&in->write_ok, (uv_stream_t *)in->tcp, &buf, 1,
	              in_ok_written_cb);
	if (rv != 0)
		in_refuse(in, uv_strerror(rv));
}

static void in_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct narf_transport_in *in = h->data;

	(void)suggested;
	/* Exactly what the frame still needs: never a byte of libraft's. */
	buf->base = (char *)in->buf + in->got;
	buf->len = in->need - in->got;
}

static void in_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct narf_transport_in *in = s->data;

	(void)buf;
	if (nread == 0)
		return;
	if (nread < 0) {
		/* EOF after our CHALLENGE: the client found our proof wrong. */
		in_refuse(in, nread != UV_EOF ? uv_strerror((int)nread)
		              : in->state == IN_HELLO
		                      ? "closed before its hello"
		                      : "closed after our "
		                        "challenge (another "
		                        "cluster's secret?)");
		return;
	}
	in->got += (size_t)nread;
	if (in->got < in->need)
		return;
	if (in->state == IN_HELLO)
		in_hello(in);
	else if (in->state == IN_PROOF)
		in_proof(in);
}

/* The relay's TLS handshake is over: refuse, or read HELLO through the
 * tunnel as from a plain connection. */
static void in_tls_cb(void *data,
                      int fd,
                      const struct sockaddr_storage *peer,
                      int status,
                      const char *why)
{
	struct narf_transport_in *in = data;
	char msg[NARF_ERRMSG_SIZE];
	int rv;

	in->relay = NULL;
	addr_name(peer, in->peer);
	if (status != 0) {
		in->t->tls_failed++;
		snprintf(msg, sizeof(msg), "TLS handshake: %s", why);
		in_refuse(in, msg);
		return;
	}
	uv_tcp_init(in->t->loop, in->tcp);
	in->tcp->data = in;
	in->tcp_live = true;
	in->open++;
	in->state = IN_HELLO;
	rv = open_tunnel(in->tcp, fd);
	if (rv == 0)
		rv = uv_read_start((uv_stream_t *)in->tcp, in_alloc_cb,
		                   in_read_cb);
	if (rv != 0)
		in_refuse(in, uv_strerror(rv));
}

/* Over the cap: accept the connection and close it at once, so the
 * listener keeps accepting (libuv stops polling it while a connection
 * waits to be accepted). */
static void drop_closed_cb(uv_handle_t *h)
{
	struct narf_transport *t = h->data;

	free(h);
	t->n_dropping--;
	maybe_closed(t);
}

static void drop(struct narf_transport *t, uv_stream_t *server)
{
	uv_tcp_t *tcp = malloc(sizeof(*tcp));
	char peer[PEER_SIZE] = "?";

	if (tcp == NULL) {
		NARF_ERROR("raft: out of memory accepting a connection");
		return;
	}
	uv_tcp_init(t->loop, tcp);
	tcp->data = t;
	t->n_dropping++;
	if (uv_accept(server, (uv_stream_t *)tcp) == 0)
		peer_name(tcp, peer);
	t->refused++;
	warn_limited(t, &t->warn_in,
	             "raft: refused a connection from %s: %u handshakes "
	             "pending already",
	             peer, t->n_in);
	uv_close((uv_handle_t *)tcp, drop_closed_cb);
}

static void listen_cb(uv_stream_t *server, int status)
{
	struct narf_transport *t = server->data;
	struct narf_transport_in *in;
	uv_tcp_t *tcp;
	int rv;

	if (status < 0) {
		warn_limited(t, &t->warn_in, "raft: accept: %s",
		             uv_strerror(status));
		return;
	}
	if (t->n_in >= t->max_pending) {
		drop(t, server);
		return;
	}
	in = calloc(1, sizeof(*in));
	tcp = raft_malloc(sizeof(*tcp));
	if (in == NULL || tcp == NULL) {
		free(in);
		raft_free(tcp);
		drop(t, server);
		return;
	}
	in->t = t;
	in->tcp = tcp;
	in->state = IN_HELLO;
	in->need = NARF_RAFT_HS_HELLO_SIZE;
	uv_timer_init(t->loop, &in->timer);
	in->timer.data = in;
	in->open = 1;
	in->next = t->in;
	if (t->in != NULL)
		t->in->prev = in;
	t->in = in;
	t->n_in++;
	snprintf(in->peer, sizeof(in->peer), "?");
	if (t->tls_server != NULL) {
		/* in_tls_cb() goes on once the tunnel is up. */
		in->state = IN_TLS;
		in->relay = narf_tls_relay_accept(
		        server, t->tls_server, t->handshake_ms, in_tls_cb, in);
		rv = in->relay != NULL ? 0 : UV_ENOMEM;
	} else {
		uv_tcp_init(t->loop, tcp);
		tcp->data = in;
		in->tcp_live = true;
		in->open++;
		rv = uv_accept(server, (uv_stream_t *)tcp);
		if (rv == 0) {
			peer_name(tcp, in->peer);
			uv_tcp_nodelay(tcp, 1);
			rv = uv_read_start((uv_stream_t *)tcp, in_alloc_cb,
			                   in_read_cb);
		}
	}
	if (rv == 0)
		rv = uv_timer_start(&in->timer, in_timeout_cb, t->handshake_ms,
		                    0);
	if (rv != 0)
		in_refuse(in, uv_strerror(rv));
}

/* ---- outgoing --------------------------------------------------------- */

static void out_closed_cb(uv_handle_t *h)
{
	struct narf_transport_out *out = h->data;
	struct narf_transport *t = out->t;
	struct raft_uv_connect *req = out->req;
	raft_uv_connect_cb cb = out->cb;
	int status = out->status;
	bool failed = out->state == OUT_CLOSING;

	if (h != (uv_handle_t *)&out->timer) {
		raft_free(h);
		out->tcp = NULL;
	}
	if (--out->open > 0)
		return;
	if (out->prev != NULL)
		out->prev->next = out->next;
	else
		t->out = out->next;
	if (out->next != NULL)
		out->next->prev = out->prev;
	free(out);
	if (failed)
		cb(req, NULL, status);
	maybe_closed(t);
}

/* Close the connection; status goes to the request's callback once our
 * handles have closed. */
static void out_abort(struct narf_transport_out *out, int status)
{
	assert(out->state != OUT_HANDED && out->state != OUT_CLOSING);
	out->state = OUT_CLOSING;
	out->status = status;
	narf_tls_relay_cancel(out->relay);
	out->relay = NULL;
	if (out->tcp_live) {
		uv_close((uv_handle_t *)out->tcp, out_closed_cb);
	} else {
		raft_free(out->tcp);
		out->tcp = NULL;
	}
	uv_close((uv_handle_t *)&out->timer, out_closed_cb);
}

/* The attempt failed. A peer that is down, paused or slow is routine
 * (libraft retries: DEBUG); a refusal or a wrong answer during the
 * handshake (TLS's included) is worth a WARN (another cluster's secret
 * or CA, an impostor). */
static void out_fail(struct narf_transport_out *out,
                     bool routine,
                     const char *why)
{
	struct narf_transport *t = out->t;

	if (out->state == OUT_HANDED || out->state == OUT_CLOSING)
		return;
	t->connect_failed++;
	if (routine || out->state == OUT_CONNECTING)
		NARF_DEBUG("raft: connect to member %llu at %s: %s",
		           (unsigned long long)out->peer_id, out->address, why);
	else
		warn_limited(t, &t->warn_out,
		             "raft: handshake with member %llu at %s: %s",
		             (unsigned long long)out->peer_id, out->address,
		             why);
	out_abort(out, RAFT_NOCONNECTION);
}

static void out_timeout_cb(uv_timer_t *timer)
{
	struct narf_transport_out *out = timer->data;
	char why[64];

	snprintf(why, sizeof(why), "no handshake within %u ms",
	         out->t->handshake_ms);
	out_fail(out, true, why);
}

/* The watch on a stream libraft dialed (TLS; see the top): libraft only
 * sets ->data and writes, so the callbacks use neither, and anything read
 * (EOF, an error, a byte a member never sends) means the stream is done
 * for. Shutting our write side makes libraft's next write fail with EPIPE
 * (the process ignores SIGPIPE) instead of vanishing into the relay. */
static void watch_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char sink[64];

	(void)h;
	(void)suggested;
	buf->base = sink;
	buf->len = sizeof(sink);
}

static void watch_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	uv_os_fd_t fd;

	(void)buf;
	if (nread == 0)
		return;
	uv_read_stop(s);
	NARF_DEBUG("raft: a connection libraft dialed ended: %s",
	           nread < 0 ? uv_strerror((int)nread) : "unexpected bytes");
	if (uv_fileno((uv_handle_t *)s, &fd) == 0)
		shutdown(fd, SHUT_WR);
}

/* Hand the stream over once OK has arrived and our writes are done (their
 * requests live in out, which is freed when the timer has closed). */
static void out_maybe_hand_over(struct narf_transport_out *out)
{
	struct narf_transport *t = out->t;
	uv_tcp_t *tcp = out->tcp;

	if (out->state != OUT_OK || !out->got_ok || out->writes > 0)
		return;
	assert(!t->closing);
	out->tcp = NULL;
	out->state = OUT_HANDED;
	out->open = 1;
	uv_close((uv_handle_t *)&out->timer, out_closed_cb);
	t->connected++;
	NARF_DEBUG("raft: connected to member %llu at %s",
	           (unsigned long long)out->peer_id, out->address);
	if (t->tls_client != NULL &&
	    uv_read_start((uv_stream_t *)tcp, watch_alloc_cb, watch_read_cb) !=
	            0)
		NARF_DEBUG("raft: cannot watch the connection to member %llu",
		           (unsigned long long)out->peer_id);
	out->cb(out->req, (struct uv_stream_s *)tcp, 0);
}

static void out_written_cb(uv_write_t *req, int status)
{
	struct narf_transport_out *out = req->data;

	out->writes--;
	if (out->state == OUT_HANDED || out->state == OUT_CLOSING)
		return;
	if (status < 0)
		out_fail(out, false, uv_strerror(status));
	else
		out_maybe_hand_over(out);
}

static int out_write(struct narf_transport_out *out,
                     uv_write_t *req,
                     unsigned char *base,
                     size_t len)
{
	uv_buf_t buf = uv_buf_init((char *)base, (unsigned)len);
	int rv;

	req->data = out;
	rv = uv_write(req, (uv_stream_t *)out->tcp, &buf, 1, out_written_cb);
	if (rv == 0)
		out->writes++;
	return rv;
}

/* CHALLENGE has arrived: check the server's proof, send ours. */
static void out_challenge(struct narf_transport_out *out)
{
	char why[NARF_ERRMSG_SIZE];
	int rv;

	rv = narf_raft_hs_client_challenge(&out->hs, out->t->keys, out->buf,
	                                   out->got, why);
	if (rv != 0) {
		out_fail(out, false, why);
		return;
	}
	out->state = OUT_OK;
	out->got = 0;
	out->need = NARF_RAFT_HS_OK_SIZE;
	rv = out_write(out, &out->write_proof, out->hs.proof,
	               NARF_RAFT_HS_PROOF_SIZE);
	if (rv != 0)
		out_fail(out, false, uv_strerror(rv));
}

static void out_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct narf_transport_out *out = h->data;

	(void)suggested;
	buf->base = (char *)out->buf + out->got;
	buf->len = out->need - out->got;
}

static void out_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct narf_transport_out *out = s->data;

	(void)buf;
	if (nread == 0)
		return;
	if (nread < 0) {
		/* The server closes when it finds our proof wrong. */
		out_fail(out, false,
		         nread == UV_EOF ? "closed during the handshake "
		                           "(another cluster's secret?)"
		                         : uv_strerror((int)nread));
		return;
	}
	out->got += (size_t)nread;
	if (out->got < out->need)
		return;
	if (out->state == OUT_CHALLENGE) {
		out_challenge(out);
	} else if (out->state == OUT_OK) {
		if (narf_raft_hs_client_ok(out->buf, out->got) != 0) {
			out_fail(out, false,
			         "the server's last byte is not OK");
			return;
		}
		uv_read_stop(s);
		out->got_ok = true;
		out_maybe_hand_over(out);
	}
}

/* Connected (or the TLS tunnel is up): send HELLO, read CHALLENGE. */
static void out_hello(struct narf_transport_out *out)
{
	int rv;

	out->state = OUT_CHALLENGE;
	out->got = 0;
	out->need = NARF_RAFT_HS_CHALLENGE_SIZE;
	rv = uv_read_start((uv_stream_t *)out->tcp, out_alloc_cb, out_read_cb);
	if (rv == 0)
		rv = out_write(out, &out->write_hello, out->hs.hello,
		               NARF_RAFT_HS_HELLO_SIZE);
	if (rv != 0)
		out_fail(out, false, uv_strerror(rv));
}

static void out_connect_cb(uv_connect_t *req, int status)
{
	struct narf_transport_out *out = req->data;

	if (out->state != OUT_CONNECTING)
		return; /* closed meanwhile: status is UV_ECANCELED */
	if (status < 0) {
		out_fail(out, false, uv_strerror(status));
		return;
	}
	uv_tcp_nodelay(out->tcp, 1);
	out_hello(out);
}

/* The relay connected and ran the TLS handshake: go on over the tunnel.
 * A TLS failure (the server's certificate, or it refused ours) is a
 * WARN; a peer down or silent is routine. */
static void out_tls_cb(void *data,
                       int fd,
                       const struct sockaddr_storage *peer,
                       int status,
                       const char *why)
{
	struct narf_transport_out *out = data;
	char msg[NARF_ERRMSG_SIZE];

	(void)peer;
	out->relay = NULL;
	if (status != 0) {
		snprintf(msg, sizeof(msg), "TLS: %s", why);
		out_fail(out, status != NARF_EPROTO, msg);
		return;
	}
	uv_tcp_init(out->t->loop, out->tcp);
	out->tcp->data = out;
	out->tcp_live = true;
	out->open++;
	status = open_tunnel(out->tcp, fd);
	if (status != 0) {
		out_fail(out, false, uv_strerror(status));
		return;
	}
	out_hello(out);
}

/* ---- raft_uv_transport ------------------------------------------------ */

static int transport_init(struct raft_uv_transport *iface,
                          raft_id id,
                          const char *address)
{
	struct narf_transport *t = iface->impl;

	if (id == 0 || address == NULL ||
	    strlen(address) >= sizeof(t->address)) {
		snprintf(iface->errmsg, RAFT_ERRMSG_BUF_SIZE,
		         "bad Raft id or address");
		return RAFT_INVALID;
	}
	t->id = id;
	snprintf(t->address, sizeof(t->address), "%s", address);
	return 0;
}

static int transport_listen(struct raft_uv_transport *iface,
                            raft_uv_accept_cb cb)
{
	struct narf_transport *t = iface->impl;
	struct sockaddr_in sa;
	int rv;

	t->accept_cb = cb;
	rv = parse_addr(t->address, &sa);
	if (rv != 0) {
		snprintf(iface->errmsg, RAFT_ERRMSG_BUF_SIZE,
		         "bad Raft address %s", t->address);
		return RAFT_INVALID;
	}
	uv_tcp_init(t->loop, &t->listener);
	t->listener.data = t;
	t->listening = true;
	rv = uv_tcp_bind(&t->listener, (const struct sockaddr *)&sa, 0);
	if (rv == 0)
		rv = uv_listen((uv_stream_t *)&t->listener, LISTEN_BACKLOG,
		               listen_cb);
	if (rv != 0) {
		/* The listener closes with the transport; raftnode.c
		 * reports errmsg. */
		snprintf(iface->errmsg, RAFT_ERRMSG_BUF_SIZE,
		         "listen on %s: %s", t->address, uv_strerror(rv));
		return RAFT_IOERR;
	}
	return 0;
}

static int transport_connect(struct raft_uv_transport *iface,
                             struct raft_uv_connect *req,
                             raft_id id,
                             const char *address,
                             raft_uv_connect_cb cb)
{
	struct narf_transport *t = iface->impl;
	struct narf_transport_out *out;
	struct sockaddr_in sa;
	int rv;

	if (t->closing)
		return RAFT_CANCELED;
	if (parse_addr(address, &sa) != 0 ||
	    strlen(address) >= sizeof(out->address)) {
		warn_limited(t, &t->warn_out,
		             "raft: member %llu has a bad address '%s'",
		             (unsigned long long)id, address);
		return RAFT_NOCONNECTION;
	}
	out = calloc(1, sizeof(*out));
	if (out == NULL)
		return RAFT_NOMEM;
	out->tcp = raft_malloc(sizeof(*out->tcp));
	if (out->tcp == NULL) {
		free(out);
		return RAFT_NOMEM;
	}
	rv = narf_raft_hs_client_start(&out->hs, t->id, t->address);
	if (rv != 0) {
		raft_free(out->tcp);
		free(out);
		return RAFT_NOCONNECTION;
	}
	out->t = t;
	out->req = req;
	out->cb = cb;
	req->cb = cb;
	out->peer_id = id;
	snprintf(out->address, sizeof(out->address), "%s", address);
	uv_timer_init(t->loop, &out->timer);
	out->timer.data = out;
	out->open = 1;
	out->next = t->out;
	if (t->out != NULL)
		t->out->prev = out;
	t->out = out;
	/* From here on a failure reaches cb, later, from a close callback. */
	if (t->tls_client != NULL) {
		out->state = OUT_TLS;
		out->relay = narf_tls_relay_connect(
		        t->loop, (const struct sockaddr *)&sa, t->tls_client,
		        t->handshake_ms, out_tls_cb, out);
		rv = out->relay != NULL ? 0 : UV_ENOMEM;
	} else {
		out->state = OUT_CONNECTING;
		uv_tcp_init(t->loop, out->tcp);
		out->tcp->data = out;
		out->tcp_live = true;
		out->open++;
		out->connect.data = out;
		rv = uv_tcp_connect(&out->connect, out->tcp,
		                    (const struct sockaddr *)&sa,
		                    out_connect_cb);
	}
	if (rv == 0)
		rv = uv_timer_start(&out->timer, out_timeout_cb,
		                    t->handshake_ms, 0);
	if (rv != 0)
		out_fail(out, false, uv_strerror(rv));
	return 0;
}

static void listener_closed_cb(uv_handle_t *h)
{
	struct narf_transport *t = h->data;

	t->listening = false;
	maybe_closed(t);
}

static void transport_close(struct raft_uv_transport *iface,
                            raft_uv_transport_close_cb cb)
{
	struct narf_transport *t = iface->impl;

	assert(!t->closing);
	t->closing = true;
	t->close_cb = cb;
	if (t->listening)
		uv_close((uv_handle_t *)&t->listener, listener_closed_cb);
	/* Entries leave the lists in their close callbacks, never here. */
	for (struct narf_transport_in *in = t->in; in != NULL; in = in->next)
		if (in->state != IN_HANDED && in->state != IN_CLOSING)
			in_abort(in);
	for (struct narf_transport_out *out = t->out; out != NULL;
	     out = out->next)
		if (out->state != OUT_HANDED && out->state != OUT_CLOSING)
			out_abort(out, RAFT_CANCELED);
	maybe_closed(t);
}

int narf_transport_init(struct narf_transport *t,
                        uv_loop_t *loop,
                        const struct narf_auth_keys *keys)
{
	memset(t, 0, sizeof(*t));
	if (keys == NULL || !narf_auth_keys_can(keys, NARF_AUTH_COORD))
		return NARF_EINVAL;
	t->loop = loop;
	t->keys = keys;
	t->handshake_ms = NARF_TRANSPORT_HANDSHAKE_MS;
	t->max_pending = NARF_TRANSPORT_MAX_PENDING;
	t->iface.impl = t;
	t->iface.init = transport_init;
	t->iface.listen = transport_listen;
	t->iface.connect = transport_connect;
	t->iface.close = transport_close;
	return 0;
}

void narf_transport_close(struct narf_transport *t)
{
	if (t == NULL)
		return;
	assert(t->in == NULL && t->out == NULL && !t->listening);
	t->keys = NULL;
}
