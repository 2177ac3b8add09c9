/*
 * cachecli's sockets: blocking request/reply exchanges with a deadline, one
 * connection at a time or many in parallel.
 *
 * A CLI waits for its answers, so it needs no event loop; but a dashboard
 * must not wait for one stopped node after another, so narf_cli_fanout()
 * asks every node at once with poll() and one deadline for all of them.
 * Every wait is bounded by a monotonic deadline in milliseconds
 * (narf_cli_now_ms() + timeout).
 *
 * With a TLS context set (narf_cli_set_tls(), cachecli --tls) every
 * connection, the fan-out's too, does a TLS handshake after connect and
 * speaks TLS (common/tls_sock.h), within the same deadline.
 */
#ifndef NARF_CLI_NET_H
#define NARF_CLI_NET_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/map.h"
#include "common/tls_sock.h"

/* Largest reply cachecli reads: a GET of a 512 MiB value and its header;
 * also the most a collection read (HGETALL ...) may take. */
#define NARF_CLI_MAX_REPLY ((size_t)512 << 20 | 64)

/* How a reply ends: one RESP reply, or one line (the coordinator API). */
enum narf_cli_framing {
	NARF_CLI_RESP,
	NARF_CLI_LINE,
};

int64_t narf_cli_now_ms(void);

/* Every connection made from now on speaks TLS on ctx (borrowed: it
 * outlives them; NULL: plain text). Process-wide, as a tool has one set of
 * TLS flags; set it before any thread starts. */
void narf_cli_set_tls(struct ssl_ctx_st *ctx);

/* One connection: a socket, and its TLS state when TLS is on. */
struct narf_cli_sock {
	int fd;                      /* owned; -1 when closed */
	struct ssl_st *ssl;          /* owned; NULL: plain text */
	char why[NARF_TLS_WHY_SIZE]; /* the last TLS failure, "" if none */
};

/* An unconnected sock (fd -1), and closing one (any state, NULL too). */
void narf_cli_sock_init(struct narf_cli_sock *s);
void narf_cli_sock_close(struct narf_cli_sock *s);

/* Sleep ms milliseconds, but not past deadline. */
void narf_cli_sleep_until(int64_t ms, int64_t deadline);

/*
 * Connect s (initialised, closed) to addr ("host:port", IPv4 or localhost)
 * before deadline: a non-blocking socket with TCP_NODELAY and, with TLS
 * on, a finished handshake. Errors: NARF_EINVAL (not host:port),
 * NARF_ECONNECT (refused, unreachable), NARF_ETIMEOUT, NARF_EIO,
 * NARF_ENOMEM; with TLS also NARF_EAUTH, NARF_EPROTO, NARF_ECLOSED
 * (tls_sock.h) with s->why saying how. On error s is closed.
 */
int narf_cli_connect(const char *addr,
                     int64_t deadline,
                     struct narf_cli_sock *s);

/*
 * Send req on s and read one whole reply (framing) into reply, which is
 * emptied first, before deadline. Errors: NARF_ETIMEOUT, NARF_ECLOSED (the
 * peer closed or reset), NARF_EPROTO (not RESP / no line end within
 * NARF_CLI_MAX_REPLY), NARF_ETOOLARGE (a RESP reply longer than
 * NARF_CLI_MAX_REPLY), NARF_ENOMEM; over TLS also NARF_EAUTH (the server
 * refused our certificate: TLS 1.3 says so at the first read), with
 * s->why. After any error the connection's state is unknown: close it.
 */
int narf_cli_exchange(struct narf_cli_sock *s,
                      const struct narf_buf *req,
                      enum narf_cli_framing framing,
                      int64_t deadline,
                      struct narf_buf *reply);

/* One request of a fan-out and, after it, its outcome. */
struct narf_cli_fan {
	const char *addr;           /* borrowed */
	const struct narf_buf *req; /* borrowed */
	enum narf_cli_framing framing;
	struct narf_buf reply;       /* owned: narf_buf_init() before, close
	                                after */
	int err;                     /* 0 when reply holds a whole reply */
	char why[NARF_TLS_WHY_SIZE]; /* a TLS failure's reason, or "" */
	int64_t ms;                  /* time to the answer (or the error) */
	struct narf_cli_sock sock;   /* private */
	size_t sent;                 /* private */
	short events;                /* private: what the step waits for */
};

/*
 * Connect to every fan[i].addr, send its request and read one reply, all
 * in parallel, until every one has answered or failed, or deadline. Each
 * gets err = 0 and its reply, or the error as narf_cli_exchange() would
 * give it. Every socket is closed on return.
 */
void narf_cli_fanout(struct narf_cli_fan *fan, unsigned n, int64_t deadline);

#endif /* NARF_CLI_NET_H */
