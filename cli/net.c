/*
 * cachecli's sockets (see net.h).
 *
 * One exchange: open a non-blocking socket, connect and wait for it with
 * poll(), write the request, then read until the bytes hold one whole reply
 * (narf_resp_reply_len() for RESP, a newline for the coordinator's JSON
 * lines). Completeness is checked each time the socket has nothing more to
 * give, before waiting again, so a large reply is not re-scanned after every
 * read. A fan-out runs the same steps for many sockets in one poll() loop.
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

#include "common/errors.h"
#include "common/flags.h"
#include "common/resp.h"

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

int narf_cli_connect(const char *addr, int64_t deadline, int *out)
{
	int fd, rv = start_connect(addr, &fd);

	if (rv != 0)
		return rv;
	if ((rv = wait_fd(fd, POLLOUT, deadline)) != 0 ||
	    (rv = finish_connect(fd)) != 0) {
		close(fd);
		return rv;
	}
	*out = fd;
	return 0;
}

/* Does reply hold one whole reply? 1 yes, 0 not yet, or NARF_EPROTO. */
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
	return rv == NARF_RESP_ERROR ? NARF_EPROTO : 0;
}

/* Write what is left of req; 0 (maybe partly sent) or NARF_ECLOSED. */
static int send_some(int fd, const struct narf_buf *req, size_t *sent)
{
	while (*sent < req->len) {
		ssize_t n = send(fd, req->data + *sent, req->len - *sent,
		                 MSG_NOSIGNAL);

		if (n > 0)
			*sent += (size_t)n;
		else if (n < 0 && errno == EINTR)
			continue;
		else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		else
			return NARF_ECLOSED;
	}
	return 0;
}

/*
 * Read what the socket has. Returns 1 when reply is whole, 0 when more is
 * to come (the socket would block), or an error.
 */
static int recv_some(int fd, enum narf_cli_framing f, struct narf_buf *reply)
{
	for (;;) {
		ssize_t n;

		if (narf_buf_reserve(reply, READ_CHUNK) != 0)
			return NARF_ENOMEM;
		n = recv(fd, reply->data + reply->len, reply->cap - reply->len,
		         0);
		if (n > 0) {
			reply->len += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return complete(reply, f);
		/* Closed: fine if the reply was whole, an error otherwise. */
		return complete(reply, f) == 1 ? 1 : NARF_ECLOSED;
	}
}

int narf_cli_exchange(int fd,
                      const struct narf_buf *req,
                      enum narf_cli_framing framing,
                      int64_t deadline,
                      struct narf_buf *reply)
{
	size_t sent = 0;
	int rv;

	reply->len = 0;
	while (sent < req->len) {
		if ((rv = send_some(fd, req, &sent)) != 0)
			return rv;
		if (sent < req->len &&
		    (rv = wait_fd(fd, POLLOUT, deadline)) != 0)
			return rv;
	}
	for (;;) {
		rv = recv_some(fd, framing, reply);
		if (rv == 1)
			return 0;
		if (rv != 0)
			return rv;
		if ((rv = wait_fd(fd, POLLIN, deadline)) != 0)
			return rv;
	}
}

/* --- fan-out ------------------------------------------------------------- */

enum fan_state { FAN_CONNECTING, FAN_SENDING, FAN_READING, FAN_DONE };

static void fan_finish(struct narf_cli_fan *f, int err, int64_t start)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
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
		if ((rv = finish_connect(f->fd)) != 0) {
			fan_finish(f, rv, start);
			return FAN_DONE;
		}
		st = FAN_SENDING;
	}
	if (st == FAN_SENDING) {
		if ((rv = send_some(f->fd, f->req, &f->sent)) != 0) {
			fan_finish(f, rv, start);
			return FAN_DONE;
		}
		if (f->sent < f->req->len)
			return FAN_SENDING;
		return FAN_READING;
	}
	rv = recv_some(f->fd, f->framing, &f->reply);
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

		fan[i].fd = -1;
		fan[i].sent = 0;
		fan[i].reply.len = 0;
		if (p == NULL || st == NULL) {
			fan_finish(&fan[i], NARF_ENOMEM, start);
			continue;
		}
		rv = start_connect(fan[i].addr, &fan[i].fd);
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
			p[i].fd = st[i] == FAN_DONE ? -1 : fan[i].fd;
			p[i].events = st[i] == FAN_READING ? POLLIN : POLLOUT;
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
	for (unsigned i = 0; st != NULL && i < n; i++)
		if (st[i] != FAN_DONE)
			fan_finish(&fan[i], NARF_ETIMEOUT, start);
	free(p);
	free(st);
}
