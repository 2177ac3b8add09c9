/*
 * Blocking coordinator client (see jclient.h).
 *
 * The happy path of one exchange: resolve host:port, open a non-blocking
 * socket, connect and wait for it with poll(), write the request line, then
 * read and feed bytes to a frame decoder until it yields one reply. Every wait
 * is a poll() against one monotonic deadline computed at the start, so the
 * whole exchange, not each step, is bounded by the caller's timeout. EINTR
 * restarts the interrupted step with whatever time is left.
 *
 * Failure modes and how they surface: refused or unreachable -> ECONNECT; the
 * deadline passes at any step (a stopped or wedged peer) -> ETIMEOUT; the
 * peer closes or resets before a whole line -> ECLOSED; the line is not a
 * JSON object with a boolean "ok" (a RESP port, some other service) ->
 * EPROTO; a runaway line -> ETOOLARGE.
 *
 * With TLS on (narf_jclient_set_tls) a handshake follows the connect, and
 * every send and read goes through common/tls_sock.h, whose steps say which
 * way to wait; the deadline is the same one. A certificate refused (ours
 * or the coordinator's) -> EAUTH, a port that does not speak TLS -> EPROTO,
 * both reported at once by narf_jclient_call_leader(), as they would
 * fail again.
 */
#include "jclient.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "auth.h"
#include "errors.h"
#include "flags.h"
#include "frame.h"
#include "log.h"
#include "tls_sock.h"

/* Longest "host:port" we handle: a dotted quad or "localhost" plus a port
 * fits easily; narf_parse_hostport() rejects anything longer. */
#define ADDR_SIZE 80

/* Coordinators in one list; Raft groups are 3 or 5 members. */
#define MAX_ADDRS 16

/* State of one exchange, so helpers share the deadline and error buffer. */
struct exchange {
	const char *addr; /* borrowed */
	int64_t deadline; /* monotonic ms */
	int timeout_ms;
	char *errmsg; /* borrowed; may be NULL */
	int fd;
	SSL *ssl; /* owned; NULL: plain text */
};

static void set_err(char *errmsg, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* The process's credential (narf_jclient_set_credential); borrowed. */
static const struct narf_auth_keys *cred_keys;
static enum narf_auth_role cred_role;

/* The process's TLS context (narf_jclient_set_tls); borrowed. */
static SSL_CTX *tls_ctx;

void narf_jclient_set_tls(SSL_CTX *ctx)
{
	tls_ctx = ctx;
}

void narf_jclient_set_credential(const struct narf_auth_keys *keys,
                                 enum narf_auth_role role)
{
	cred_keys = keys;
	cred_role = role;
}

static void set_err(char *errmsg, const char *fmt, ...)
{
	va_list ap;

	if (errmsg == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(errmsg, NARF_ERRMSG_SIZE, fmt, ap);
	va_end(ap);
}

/* Milliseconds on the monotonic clock: deadlines ignore wall-clock jumps. */
static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining_ms(int64_t deadline)
{
	int64_t left = deadline - now_ms();

	if (left <= 0)
		return 0;
	return left > INT_MAX ? INT_MAX : (int)left;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Wait until fd is ready for events or the deadline passes. A signal only
 * shortens the wait: the loop polls again with the time that is left. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd p = {.fd = fd, .events = events};

	for (;;) {
		int rc = poll(&p, 1, remaining_ms(deadline));

		if (rc > 0)
			return 0;
		if (rc == 0)
			return NARF_ETIMEOUT;
		if (errno != EINTR)
			return NARF_EIO;
	}
}

/* Connect one resolved address. On success x->fd is the connected socket. */
static int connect_one(struct exchange *x, const struct addrinfo *ai)
{
	int fd, one = 1, soerr = 0;
	socklen_t len = sizeof(soerr);

	fd = socket(ai->ai_family,
	            ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
	            ai->ai_protocol);
	if (fd < 0) {
		set_err(x->errmsg, "%s: socket: %s", x->addr, strerror(errno));
		return NARF_EIO;
	}
	/* Best effort: without it a request still works, only slower. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* A non-blocking connect that was interrupted goes on in the
	 * background exactly like EINPROGRESS; poll tells when it is done. */
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		if (errno != EINPROGRESS && errno != EINTR) {
			soerr = errno;
		} else if (wait_fd(fd, POLLOUT, x->deadline) != 0) {
			set_err(x->errmsg, "%s: no connection within %d ms",
			        x->addr, x->timeout_ms);
			close(fd);
			return NARF_ETIMEOUT;
		} else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len)) {
			soerr = errno;
		}
	}
	if (soerr != 0) {
		set_err(x->errmsg, "%s: connect: %s", x->addr, strerror(soerr));
		close(fd);
		return soerr == ETIMEDOUT ? NARF_ETIMEOUT : NARF_ECONNECT;
	}
	x->fd = fd;
	return 0;
}

/* Resolve x->addr and connect to the first of its addresses that answers
 * ("localhost" may give both ::1 and 127.0.0.1). */
static int open_conn(struct exchange *x)
{
	char host[64], service[8];
	int port, rc;
	struct addrinfo hints, *res, *ai;

	if (narf_parse_hostport(x->addr, host, sizeof(host), &port) != 0) {
		set_err(x->errmsg, "'%s' is not a host:port address", x->addr);
		return NARF_EINVAL;
	}
	snprintf(service, sizeof(service), "%d", port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	rc = getaddrinfo(host, service, &hints, &res);
	if (rc != 0) {
		set_err(x->errmsg, "%s: %s", x->addr, gai_strerror(rc));
		return NARF_EINVAL;
	}
	rc = NARF_ECONNECT;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		rc = connect_one(x, ai);
		/* Out of time is out of time for the other addresses too. */
		if (rc == 0 || rc == NARF_ETIMEOUT)
			break;
	}
	freeaddrinfo(res);
	return rc;
}

/* A TLS failure on x (why from common/tls_sock.h) into errmsg. */
static int tls_failed(struct exchange *x, int rc, const char *why)
{
	set_err(x->errmsg, "%s: TLS: %s", x->addr, why);
	return rc;
}

/* After connect: the TLS handshake, when TLS is on. */
static int start_tls(struct exchange *x)
{
	char why[NARF_TLS_WHY_SIZE];
	int rc;

	if (tls_ctx == NULL)
		return 0;
	rc = narf_tls_sock_connect(tls_ctx, x->fd, x->deadline, &x->ssl, why,
	                           sizeof(why));
	if (rc == NARF_ETIMEOUT)
		set_err(x->errmsg,
		        "%s: TLS: no handshake within %d ms (a plain-text "
		        "coordinator?)",
		        x->addr, x->timeout_ms);
	else if (rc != 0)
		tls_failed(x, rc, why);
	return rc;
}

/* One send: 0 with *sent bytes taken (0: wait for *events), or an error
 * (reported). */
static int send_once(struct exchange *x,
                     const char *buf,
                     size_t len,
                     size_t *sent,
                     short *events)
{
	char why[NARF_TLS_WHY_SIZE];
	ssize_t n;
	int rc;

	*sent = 0;
	*events = POLLOUT;
	if (x->ssl != NULL) {
		rc = narf_tls_sock_send(x->ssl, buf, len, sent, events, why,
		                        sizeof(why));
		if (rc == NARF_ECLOSED)
			set_err(x->errmsg,
			        "%s: connection closed while sending", x->addr);
		else if (rc != 0)
			tls_failed(x, rc, why);
		return rc;
	}
	/* MSG_NOSIGNAL: a peer that went away must not kill us with
	 * SIGPIPE; it is reported as ECLOSED instead. */
	n = send(x->fd, buf, len, MSG_NOSIGNAL);
	if (n >= 0) {
		*sent = (size_t)n;
		return 0;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return 0;
	if (errno == EPIPE || errno == ECONNRESET) {
		set_err(x->errmsg, "%s: connection closed while sending",
		        x->addr);
		return NARF_ECLOSED;
	}
	set_err(x->errmsg, "%s: send: %s", x->addr, strerror(errno));
	return NARF_EIO;
}

/* Write the whole buffer, waiting for room when the socket is full. */
static int send_all(struct exchange *x, const char *buf, size_t len)
{
	size_t off = 0;

	while (off < len) {
		size_t n;
		short events;
		int rc = send_once(x, buf + off, len - off, &n, &events);

		if (rc != 0)
			return rc;
		off += n;
		if (n == 0 && wait_fd(x->fd, events, x->deadline) != 0) {
			set_err(x->errmsg, "%s: request not sent within %d ms",
			        x->addr, x->timeout_ms);
			return NARF_ETIMEOUT;
		}
	}
	return 0;
}

/* One receive: 0 with *got bytes (0: wait for *events), NARF_ECLOSED at
 * the end, or another error (reported). */
static int recv_once(struct exchange *x,
                     char *buf,
                     size_t cap,
                     size_t *got,
                     short *events)
{
	char why[NARF_TLS_WHY_SIZE];
	ssize_t n;
	int rc;

	*got = 0;
	*events = POLLIN;
	if (x->ssl != NULL) {
		rc = narf_tls_sock_recv(x->ssl, buf, cap, got, events, why,
		                        sizeof(why));
		if (rc != 0 && rc != NARF_ECLOSED)
			tls_failed(x, rc, why);
		return rc;
	}
	n = recv(x->fd, buf, cap, 0);
	if (n > 0) {
		*got = (size_t)n;
		return 0;
	}
	if (n < 0 &&
	    (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (n == 0 || errno == ECONNRESET)
		return NARF_ECLOSED;
	set_err(x->errmsg, "%s: recv: %s", x->addr, strerror(errno));
	return NARF_EIO;
}

/* Read once into the decoder. Returns 0 when bytes were fed (or the read
 * should simply be retried), an error otherwise. A TLS connection may hold
 * decrypted bytes the socket no longer signals: it is read before any
 * wait. */
static int read_some(struct exchange *x, struct narf_frame_decoder *d)
{
	char buf[65536];
	size_t n;
	short events = POLLIN;
	int rc;

	if (x->ssl == NULL && wait_fd(x->fd, POLLIN, x->deadline) != 0)
		goto timeout;
	rc = recv_once(x, buf, sizeof(buf), &n, &events);
	if (rc == 0 && n == 0 && x->ssl != NULL &&
	    wait_fd(x->fd, events, x->deadline) != 0)
		goto timeout;
	if (rc == NARF_ECLOSED)
		set_err(x->errmsg, "%s: connection closed %s", x->addr,
		        d->len ? "in the middle of the reply"
		               : "without a reply");
	if (rc != 0 || n == 0)
		return rc;
	/* A TLS record (an alert, a handshake) where a JSON line should
	 * be: the port speaks TLS and we do not. */
	if (x->ssl == NULL && d->len == 0 && n >= 2 &&
	    (buf[0] == 0x15 || buf[0] == 0x16) && buf[1] == 0x03) {
		set_err(x->errmsg, "%s: the port speaks TLS", x->addr);
		return NARF_EPROTO;
	}
	rc = narf_frame_feed(d, buf, n);
	if (rc == NARF_ETOOLARGE)
		set_err(x->errmsg, "%s: reply longer than %u bytes", x->addr,
		        NARF_FRAME_MAX_REPLY);
	else if (rc != 0)
		set_err(x->errmsg, "%s: %s", x->addr, narf_strerror(rc));
	return rc;

timeout:
	set_err(x->errmsg, "%s: no reply within %d ms", x->addr, x->timeout_ms);
	return NARF_ETIMEOUT;
}

/* Read until one whole reply line is decoded; *reply is a new reference. */
static int read_reply(struct exchange *x, json_t **reply)
{
	struct narf_frame_decoder d;
	char why[NARF_ERRMSG_SIZE] = "";
	json_t *msg = NULL;
	int rc;

	narf_frame_decoder_init(&d, NARF_FRAME_MAX_REPLY);
	do {
		rc = read_some(x, &d);
		if (rc != 0)
			break;
		rc = narf_frame_next(&d, &msg, why);
		if (rc != 0) {
			/* Not JSON, not an object, or absurdly deep: this is
			 * not a coordinator, or it is broken. */
			set_err(x->errmsg, "%s: bad reply: %s", x->addr, why);
			rc = rc == NARF_ETOOLARGE ? rc : NARF_EPROTO;
		}
	} while (rc == 0 && msg == NULL);
	narf_frame_decoder_close(&d);
	if (rc != 0)
		return rc;
	if (!json_is_boolean(json_object_get(msg, "ok"))) {
		set_err(x->errmsg, "%s: bad reply: no boolean \"ok\" field",
		        x->addr);
		json_decref(msg);
		return NARF_EPROTO;
	}
	*reply = msg;
	return 0;
}

static int send_json(struct exchange *x, json_t *msg)
{
	size_t len;
	char *line = msg ? narf_frame_encode(msg, &len) : NULL;
	int rc;

	json_decref(msg);
	if (line == NULL) {
		set_err(x->errmsg, "%s: out of memory", x->addr);
		return NARF_ENOMEM;
	}
	rc = send_all(x, line, len);
	free(line);
	return rc;
}

/* A refusal of the exchange: the server's reply says why. */
static int auth_refused(struct exchange *x, json_t *rep, const char *step)
{
	const char *why = json_string_value(json_object_get(rep, "message"));

	set_err(x->errmsg, "%s: refused our %s: %s", x->addr, step,
	        why ? why : "no reason given");
	json_decref(rep);
	return NARF_EAUTH;
}

/*
 * The API's challenge-response (common/auth.h, docs/protocol.md): prove
 * cred_role, and check that the coordinator holds the same key (a
 * stranger on a coordinator's address gets no request of ours).
 */
static int authenticate(struct exchange *x)
{
	struct narf_auth a;
	unsigned char nonce[NARF_AUTH_NONCE_SIZE], mac[NARF_AUTH_MAC_SIZE];
	unsigned char out[NARF_AUTH_MAC_SIZE];
	char hex[NARF_AUTH_MAC_HEX + 1];
	const char *nonce_s, *proof;
	json_t *rep = NULL;
	int rc;

	if (narf_auth_client_begin(&a, cred_role, 0, "api") != 0) {
		set_err(x->errmsg, "%s: no randomness for a nonce", x->addr);
		return NARF_EINTERNAL;
	}
	narf_auth_hex(a.nonce_c, NARF_AUTH_NONCE_SIZE, hex);
	rc = send_json(x, json_pack("{s:s,s:s,s:i,s:s}", "op", "auth", "role",
	                            narf_auth_role_name(cred_role), "id", 0,
	                            "nonce", hex));
	if (rc == 0)
		rc = read_reply(x, &rep);
	if (rc != 0)
		return rc;
	if (!json_is_true(json_object_get(rep, "ok")))
		return auth_refused(x, rep, "credential");
	nonce_s = json_string_value(json_object_get(rep, "nonce"));
	proof = json_string_value(json_object_get(rep, "proof"));
	if (nonce_s == NULL || proof == NULL ||
	    narf_auth_unhex(nonce_s, strlen(nonce_s), nonce, sizeof(nonce)) !=
	            0 ||
	    narf_auth_unhex(proof, strlen(proof), mac, sizeof(mac)) != 0 ||
	    narf_auth_client_prove(&a, cred_keys, nonce, mac, out) != 0) {
		json_decref(rep);
		set_err(x->errmsg,
		        "%s: the coordinator failed to prove the cluster "
		        "secret (another cluster's, or not a coordinator)",
		        x->addr);
		return NARF_EAUTH;
	}
	json_decref(rep);
	rep = NULL;
	narf_auth_hex(out, NARF_AUTH_MAC_SIZE, hex);
	rc = send_json(x, json_pack("{s:s,s:s}", "op", "auth", "proof", hex));
	if (rc == 0)
		rc = read_reply(x, &rep);
	if (rc != 0)
		return rc;
	if (!json_is_true(json_object_get(rep, "ok")))
		return auth_refused(x, rep, "proof (a wrong cluster secret?)");
	json_decref(rep);
	return 0;
}

int narf_jclient_call(const char *addr,
                      const json_t *req,
                      int timeout_ms,
                      json_t **reply,
                      char *errmsg)
{
	struct exchange x = {
	        .addr = addr,
	        .deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0),
	        .timeout_ms = timeout_ms,
	        .errmsg = errmsg,
	        .fd = -1,
	        .ssl = NULL,
	};
	char *line; /* owned */
	size_t len;
	int rc;

	*reply = NULL;
	set_err(errmsg, "%s", "");
	line = req ? narf_frame_encode(req, &len) : NULL;
	if (line == NULL) {
		set_err(errmsg, "%s: the request cannot be encoded", addr);
		return NARF_EINVAL;
	}
	rc = open_conn(&x);
	if (rc == 0)
		rc = start_tls(&x);
	if (rc == 0 && cred_keys != NULL)
		rc = authenticate(&x);
	if (rc == 0)
		rc = send_all(&x, line, len);
	if (rc == 0)
		rc = read_reply(&x, reply);
	free(line);
	narf_tls_sock_free(x.ssl);
	if (x.fd >= 0)
		close(x.fd);
	return rc;
}

/*
 * narf_jclient_call_leader(): the search for a leader.
 *
 * Why per-address bookkeeping: the caller's one-line error must say which
 * addresses were tried and what each did ("refused", "no reply"), and the
 * final code depends on it: if nothing ever accepted a connection the
 * cluster is down (ECONNECT); if every listed address speaks something other
 * than our protocol the user pointed us at the wrong port (EPROTO), and
 * retrying those until the deadline would only waste the user's time.
 */
struct attempt {
	char addr[ADDR_SIZE];
	char why[NARF_ERRMSG_SIZE]; /* last failure, prefixed with addr */
};

struct search {
	const json_t *req; /* borrowed */
	int64_t deadline;
	char addrs[MAX_ADDRS][ADDR_SIZE];
	int bad[MAX_ADDRS]; /* answered garbage: skipped in later rounds */
	int naddrs;
	struct attempt tried[MAX_ADDRS];
	int ntried;
	int reached; /* some attempt got further than connect() */
	int refused; /* some member refused our credential */
};

/* Outcome of trying one listed member. */
enum member_result { MEMBER_DONE, MEMBER_FAILED, MEMBER_BAD };

/* Remember the latest failure for addr (one entry per address). */
static void note_failure(struct search *s, const char *addr, const char *why)
{
	int i;

	for (i = 0; i < s->ntried; i++)
		if (strcmp(s->tried[i].addr, addr) == 0)
			break;
	if (i == s->ntried) {
		if (s->ntried == MAX_ADDRS)
			return;
		s->ntried++;
		snprintf(s->tried[i].addr, ADDR_SIZE, "%s", addr);
	}
	snprintf(s->tried[i].why, NARF_ERRMSG_SIZE, "%s", why);
}

/* Split "a:p,b:p" into s->addrs, checking every entry. */
static int parse_addrs(struct search *s, const char *addrs, char *errmsg)
{
	const char *p = addrs;

	s->naddrs = 0;
	for (;;) {
		size_t n = strcspn(p, ",");
		char host[64];
		int port;

		if (s->naddrs == MAX_ADDRS) {
			set_err(errmsg, "more than %d coordinator addresses",
			        MAX_ADDRS);
			return NARF_EINVAL;
		}
		if (n >= ADDR_SIZE) {
			set_err(errmsg, "coordinator address too long");
			return NARF_EINVAL;
		}
		memcpy(s->addrs[s->naddrs], p, n);
		s->addrs[s->naddrs][n] = '\0';
		if (narf_parse_hostport(s->addrs[s->naddrs], host, sizeof(host),
		                        &port) != 0) {
			set_err(errmsg, "'%s' is not a host:port address",
			        s->addrs[s->naddrs]);
			return NARF_EINVAL;
		}
		s->naddrs++;
		if (p[n] == '\0')
			return 0;
		p += n + 1;
	}
}

/* Whether a not_leader reply names a leader we can follow from target. */
static const char *redirect_target(const json_t *reply, const char *target)
{
	const char *leader =
	        json_string_value(json_object_get(reply, "leader"));
	char host[64];
	int port;

	if (leader == NULL || strlen(leader) >= ADDR_SIZE ||
	    strcmp(leader, target) == 0 ||
	    narf_parse_hostport(leader, host, sizeof(host), &port) != 0)
		return NULL;
	return leader;
}

static int is_retry_error(const char *error)
{
	return strcmp(error, "not_ready") == 0 || strcmp(error, "busy") == 0;
}

/*
 * Ask one listed member, following its redirects and waiting out not_ready
 * and busy. Returns MEMBER_DONE with *reply set, MEMBER_BAD when the member
 * itself speaks another protocol, MEMBER_FAILED otherwise.
 */
static enum member_result try_member(struct search *s,
                                     const char *start,
                                     json_t **reply)
{
	char target[ADDR_SIZE], why[NARF_ERRMSG_SIZE];
	int hops = 0, left;

	snprintf(target, sizeof(target), "%s", start);
	while ((left = remaining_ms(s->deadline)) > 0) {
		int t = left < NARF_JCLIENT_ATTEMPT_MS
		                ? left
		                : NARF_JCLIENT_ATTEMPT_MS;
		json_t *r = NULL; /* owned */
		const char *error, *leader;
		int rc = narf_jclient_call(target, s->req, t, &r, why);

		if (rc != 0) {
			note_failure(s, target, why);
			s->reached |= rc != NARF_ECONNECT && rc != NARF_EINVAL;
			s->refused |= rc == NARF_EAUTH;
			/* A refused credential is refused again: asking the
			 * same member until the deadline would only wait. */
			return (hops == 0 &&
			        (rc == NARF_EPROTO || rc == NARF_ETOOLARGE ||
			         rc == NARF_EAUTH))
			               ? MEMBER_BAD
			               : MEMBER_FAILED;
		}
		s->reached = 1;
		error = json_string_value(json_object_get(r, "error"));
		if (json_is_true(json_object_get(r, "ok")) || error == NULL ||
		    (strcmp(error, "not_leader") != 0 &&
		     !is_retry_error(error))) {
			*reply = r;
			return MEMBER_DONE;
		}
		if (is_retry_error(error)) {
			snprintf(why, sizeof(why), "%s: answered %s", target,
			         error);
			note_failure(s, target, why);
			json_decref(r);
			left = remaining_ms(s->deadline);
			sleep_ms(left < NARF_JCLIENT_RETRY_MS
			                 ? left
			                 : NARF_JCLIENT_RETRY_MS);
			continue;
		}
		leader = redirect_target(r, target);
		if (leader == NULL || hops == NARF_JCLIENT_MAX_HOPS) {
			snprintf(why, sizeof(why), "%s: %s", target,
			         leader ? "too many not_leader redirects"
			                : "not the leader and knows no other");
			note_failure(s, target, why);
			json_decref(r);
			return MEMBER_FAILED;
		}
		NARF_DEBUG("%s is not the leader; following to %s", target,
		           leader);
		snprintf(target, sizeof(target), "%s", leader);
		hops++;
		json_decref(r);
	}
	return MEMBER_FAILED;
}

/* Build the final error: which addresses were tried and why each failed. */
static int search_failed(const struct search *s, int all_bad, char *errmsg)
{
	char buf[NARF_ERRMSG_SIZE] = "";
	size_t used = 0;

	for (int i = 0; i < s->ntried && used < sizeof(buf) - 1; i++) {
		int n = snprintf(buf + used, sizeof(buf) - used, "%s%s",
		                 i ? "; " : "", s->tried[i].why);

		if (n < 0)
			break;
		used += (size_t)n;
	}
	if (s->ntried == 0)
		snprintf(buf, sizeof(buf), "no time to try %s", s->addrs[0]);
	set_err(errmsg, "%s", buf);
	if (all_bad)
		return s->refused ? NARF_EAUTH : NARF_EPROTO;
	return s->reached ? NARF_ETIMEOUT : NARF_ECONNECT;
}

int narf_jclient_call_leader(const char *addrs,
                             const json_t *req,
                             int total_timeout_ms,
                             json_t **reply,
                             char *errmsg)
{
	struct search s;

	*reply = NULL;
	memset(&s, 0, sizeof(s));
	s.req = req;
	s.deadline = now_ms() + (total_timeout_ms > 0 ? total_timeout_ms : 0);
	if (addrs == NULL) {
		set_err(errmsg, "no coordinator address given");
		return NARF_EINVAL;
	}
	if (parse_addrs(&s, addrs, errmsg) != 0)
		return NARF_EINVAL;
	for (;;) {
		int nbad = 0, left;

		for (int i = 0; i < s.naddrs; i++) {
			enum member_result m = MEMBER_BAD;

			if (!s.bad[i])
				m = try_member(&s, s.addrs[i], reply);
			if (m == MEMBER_DONE) {
				set_err(errmsg, "%s", "");
				return 0;
			}
			s.bad[i] = m == MEMBER_BAD;
			nbad += s.bad[i];
		}
		left = remaining_ms(s.deadline);
		if (nbad == s.naddrs || left == 0)
			return search_failed(&s, nbad == s.naddrs, errmsg);
		sleep_ms(left < NARF_JCLIENT_RETRY_MS ? left
		                                      : NARF_JCLIENT_RETRY_MS);
	}
}
