/*
 * cachecli's sockets (see net.h).
 *
 * One exchange: open a non-blocking socket, connect and wait for it with
 * poll(), write the request, then read until the bytes hold one whole reply
 * (narf_resp_reply_len() for RESP, a newline for the coordinator's JSON
 * lines). Completeness is checked each time the socket has nothing more to
 * give, before waiting again, so a large reply is not re-scanned after every
 * read. A fan-out runs the same steps for many sockets in one poll() loop.
 * Over TLS the same steps go through common/tls_sock.h, which says which
 * way each one waits (a TLS read may need to write, and the reverse).
 */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "common/errors.h"
#include "common/flags.h"
#include "common/resp.h"
#include "common/tls_sock.h"

#define READ_CHUNK (64 * 1024)

int64_t narf_cli_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void narf_cli_sleep_until(int64_t ms, int64_t deadline)
{
	int64_t now = narf_cli_now_ms();
	int64_t until = now + ms < deadline ? now + ms : deadline;
	struct timespec ts;

	if (until <= now)
		return;
	ts.tv_sec = (until - now) / 1000;
	ts.tv_nsec = (long)((until - now) % 1000) * 1000000;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Wait for fd to be ready for events before deadline; 0 or NARF_ETIMEOUT. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd p = {.fd = fd, .events = events};
	int64_t left;
	int n;

	do {
		left = deadline - narf_cli_now_ms();
		if (left <= 0)
			return NARF_ETIMEOUT;
		n = poll(&p, 1, (int)left);
	} while (n < 0 && errno == EINTR);
	return n > 0 ? 0 : NARF_ETIMEOUT;
}

/* Start a non-blocking connect; 0 with *fd connecting or connected. */
static int start_connect(const char *addr, int *out)
{
	char host[NARF_ADDR_SIZE];
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int port, fd;

	if (narf_parse_hostport(addr, host, sizeof(host), &port) != 0 ||
	    inet_pton(AF_INET,
	              strcmp(host, "localhost") == 0 ? "127.0.0.1" : host,
	              &sa.sin_addr) != 1)
		return NARF_EINVAL;
	sa.sin_port = htons((uint16_t)port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NARF_EIO;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 &&
	    errno != EINPROGRESS) {
		close(fd);
		return NARF_ECONNECT;
	}
	*out = fd;
	return 0;
}

/* After POLLOUT on a connecting socket: 0 when connected. */
static int finish_connect(int fd)
{
	int err = 0, one = 1;
	socklen_t len = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err)
		return NARF_ECONNECT;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return 0;
}

/* The TLS context of every connection (narf_cli_set_tls); borrowed. */
static SSL_CTX *tls_ctx;

void narf_cli_set_tls(SSL_CTX *ctx)
{
	tls_ctx = ctx;
}

void narf_cli_sock_init(struct narf_cli_sock *s)
{
	s->fd = -1;
	s->ssl = NULL;
	s->why[0] = '\0';
}

void narf_cli_sock_close(struct narf_cli_sock *s)
{
	if (s == NULL)
		return;
	narf_tls_sock_free(s->ssl);
	s->ssl = NULL;
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

int narf_cli_connect(const char *addr,
                     int64_t deadline,
                     struct narf_cli_sock *s)
{
	int fd, rv = start_connect(addr, &fd);

	s->why[0] = '\0';
	if (rv != 0)
		return rv;
	if ((rv = wait_fd(fd, POLLOUT, deadline)) != 0 ||
	    (rv = finish_connect(fd)) != 0) {
		close(fd);
		return rv;
	}
	s->fd = fd;
	if (tls_ctx != NULL &&
	    (rv = narf_tls_sock_connect(tls_ctx, fd, deadline, &s->ssl, s->why,
	                                sizeof(s->why))) != 0) {
		narf_cli_sock_close(s);
		return rv;
	}
	return 0;
}

/* Does reply hold one whole reply? 1 yes, 0 not yet, NARF_EPROTO (not
 * RESP, or no line end within NARF_CLI_MAX_REPLY), or NARF_ETOOLARGE (a
 * RESP reply longer than NARF_CLI_MAX_REPLY). */
static int complete(const struct narf_buf *reply, enum narf_cli_framing f)
{
	size_t len;
	int rv;

	if (reply->len == 0)
		return 0;
	if (f == NARF_CLI_LINE) {
		if (memchr(reply->data, '\n', reply->len) != NULL)
			return 1;
		return reply->len >= NARF_CLI_MAX_REPLY ? NARF_EPROTO : 0;
	}
	rv = narf_resp_reply_len(reply->data, reply->len, NARF_CLI_MAX_REPLY,
	                         &len);
	if (rv == NARF_RESP_DONE)
		return 1;
	if (rv == NARF_RESP_ERROR)
		return NARF_EPROTO;
	return reply->len >= NARF_CLI_MAX_REPLY ? NARF_ETOOLARGE : 0;
}

/* Write what is left of req; 0 (maybe partly sent, then *events says
 * what to wait for) or an error. */
static int send_some(struct narf_cli_sock *s,
                     const struct narf_buf *req,
                     size_t *sent,
                     short *events)
{
	*events = 0;
	while (*sent < req->len) {
		ssize_t n;

		if (s->ssl != NULL) {
			size_t k;
			int rv = narf_tls_sock_send(
			        s->ssl, req->data + *sent, req->len - *sent, &k,
			        events, s->why, sizeof(s->why));

			if (rv != 0 || k == 0)
				return rv;
			*sent += k;
			continue;
		}
		n = send(s->fd, req->data + *sent, req->len - *sent,
		         MSG_NOSIGNAL);
		if (n > 0)
			*sent += (size_t)n;
		else if (n < 0 && errno == EINTR)
			continue;
		else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			*events = POLLOUT;
			return 0;
		} else
			return NARF_ECLOSED;
	}
	return 0;
}

/* One read of what the socket has: 0 with *n bytes (0: wait for *events),
 * NARF_ECLOSED at the end, or another error. */
static int read_once(struct narf_cli_sock *s,
                     char *buf,
                     size_t cap,
                     size_t *n,
                     short *events)
{
	ssize_t k;

	*n = 0;
	*events = 0;
	if (s->ssl != NULL)
		return narf_tls_sock_recv(s->ssl, buf, cap, n, events, s->why,
		                          sizeof(s->why));
	do
		k = recv(s->fd, buf, cap, 0);
	while (k < 0 && errno == EINTR);
	if (k > 0) {
		*n = (size_t)k;
		return 0;
	}
	if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		*events = POLLIN;
		return 0;
	}
	return NARF_ECLOSED;
}

/*
 * Read what the socket has. Returns 1 when reply is whole, 0 when more is
 * to come (wait for *events), or an error.
 */
static int recv_some(struct narf_cli_sock *s,
                     enum narf_cli_framing f,
                     struct narf_buf *reply,
                     short *events)
{
	for (;;) {
		size_t n;
		int rv;

		if (narf_buf_reserve(reply, READ_CHUNK) != 0)
			return NARF_ENOMEM;
		rv = read_once(s, reply->data + reply->len,
		               reply->cap - reply->len, &n, events);
		if (rv == 0 && n > 0) {
			reply->len += n;
			/* a peer that keeps sending cannot grow reply
			 * past the limit before it is checked */
			if (reply->len >= NARF_CLI_MAX_REPLY)
				return complete(reply, f);
			continue;
		}
		if (rv == 0)
			return complete(reply, f);
		/* Closed: fine if the reply was whole, an error otherwise. */
		if (rv == NARF_ECLOSED)
			return complete(reply, f) == 1 ? 1 : NARF_ECLOSED;
		return rv;
	}
}

int narf_cli_exchange(struct narf_cli_sock *s,
                      const struct narf_buf *req,
                      enum narf_cli_framing framing,
                      int64_t deadline,
                      struct narf_buf *reply)
{
	size_t sent = 0;
	short events;
	int rv;

	reply->len = 0;
	s->why[0] = '\0';
	while (sent < req->len) {
		if ((rv = send_some(s, req, &sent, &events)) != 0)
			return rv;
		if (sent < req->len &&
		    (rv = wait_fd(s->fd, events, deadline)) != 0)
			return rv;
	}
	for (;;) {
		rv = recv_some(s, framing, reply, &events);
		if (rv == 1)
			return 0;
		if (rv != 0)
			return rv;
		if ((rv = wait_fd(s->fd, events, deadline)) != 0)
			return rv;
	}
}

/* --- fan-out ------------------------------------------------------------- */

enum fan_state {
	FAN_CONNECTING,
	FAN_HANDSHAKE,
	FAN_SENDING,
	FAN_READING,
	FAN_DONE
};

static void fan_finish(struct narf_cli_fan *f, int err, int64_t start)
{
	if (err != 0 && f->sock.why[0] != '\0')
		snprintf(f->why, sizeof(f->why), "%s", f->sock.why);
	narf_cli_sock_close(&f->sock);
	f->err = err;
	f->ms = narf_cli_now_ms() - start;
}

/* Advance one request after poll() said its socket is ready. */
static enum fan_state fan_step(struct narf_cli_fan *f,
                               enum fan_state st,
                               int64_t start)
{
	int rv;

	if (st == FAN_CONNECTING) {
		if ((rv = finish_connect(f->sock.fd)) != 0) {
			fan_finish(f, rv, start);
			return FAN_DONE;
		}
		st = FAN_SENDING;
		if (tls_ctx != NULL) {
			f->sock.ssl = narf_tls_sock_new(tls_ctx, f->sock.fd);
			if (f->sock.ssl == NULL) {
				fan_finish(f, NARF_ENOMEM, start);
				return FAN_DONE;
			}
			st = FAN_HANDSHAKE;
		}
	}
	if (st == FAN_HANDSHAKE) {
		rv = narf_tls_sock_handshake(f->sock.ssl, &f->events,
		                             f->sock.why, sizeof(f->sock.why));
		if (rv != 0) {
			fan_finish(f, rv, start);
			return FAN_DONE;
		}
		if (f->events != 0)
			return FAN_HANDSHAKE;
		st = FAN_SENDING;
	}
	if (st == FAN_SENDING) {
		if ((rv = send_some(&f->sock, f->req, &f->sent, &f->events)) !=
		    0) {
			fan_finish(f, rv, start);
			return FAN_DONE;
		}
		if (f->sent < f->req->len)
			return FAN_SENDING;
		st = FAN_READING;
	}
	rv = recv_some(&f->sock, f->framing, &f->reply, &f->events);
	if (rv == 0)
		return FAN_READING;
	fan_finish(f, rv == 1 ? 0 : rv, start);
	return FAN_DONE;
}

void narf_cli_fanout(struct narf_cli_fan *fan, unsigned n, int64_t deadline)
{
	struct pollfd *p = calloc(n ? n : 1, sizeof(*p));
	enum fan_state *st = calloc(n ? n : 1, sizeof(*st));
	int64_t start = narf_cli_now_ms();
	unsigned left = 0;

	for (unsigned i = 0; i < n; i++) {
		int rv;

		narf_cli_sock_init(&fan[i].sock);
		fan[i].why[0] = '\0';
		fan[i].sent = 0;
		fan[i].events = POLLOUT;
		fan[i].reply.len = 0;
		if (p == NULL || st == NULL) {
			fan_finish(&fan[i], NARF_ENOMEM, start);
			continue;
		}
		rv = start_connect(fan[i].addr, &fan[i].sock.fd);
		if (rv != 0) {
			fan_finish(&fan[i], rv, start);
			st[i] = FAN_DONE;
			continue;
		}
		st[i] = FAN_CONNECTING;
		left++;
	}
	while (left > 0) {
		int64_t wait = deadline - narf_cli_now_ms();
		int k;

		if (wait <= 0)
			break;
		for (unsigned i = 0; i < n; i++) {
			p[i].fd = st[i] == FAN_DONE ? -1 : fan[i].sock.fd;
			p[i].events = fan[i].events;
			p[i].revents = 0;
		}
		k = poll(p, n, (int)wait);
		if (k < 0 && errno != EINTR)
			break;
		for (unsigned i = 0; k > 0 && i < n; i++) {
			if (p[i].fd < 0 || p[i].revents == 0)
				continue;
			st[i] = fan_step(&fan[i], st[i], start);
			left -= st[i] == FAN_DONE;
		}
	}
	for (unsigned i = 0; st != NULL && i < n; i++) {
		if (st[i] == FAN_HANDSHAKE)
			snprintf(fan[i].sock.why, sizeof(fan[i].sock.why),
			         "no TLS handshake before the deadline (a "
			         "plain-text server?)");
		if (st[i] != FAN_DONE)
			fan_finish(&fan[i], NARF_ETIMEOUT, start);
	}
	free(p);
	free(st);
}
