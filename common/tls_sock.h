/*
 * TLS for the blocking tools: an OpenSSL client over a connected,
 * non-blocking socket, driven in steps that say which poll() events they
 * wait for, so the caller keeps its own deadline (cachecli's data port,
 * cli/net.c, and its fan-out; the coordinator API client, common/jclient.c).
 *
 * The servers' side lives in common/tls.h (memory BIOs under libuv); here
 * the SSL reads and writes the socket itself, which a tool that blocks on
 * poll() can afford. The context (SSL_CTX, from narf_tls_init() with
 * cfg.client) is shared by every connection and every thread; each
 * connection has its own SSL.
 *
 * Failures come back as codes with a sentence in why:
 *  - NARF_EAUTH: a certificate was refused, ours or the server's
 *    ("server certificate: certificate has expired", "the server refused
 *    our client certificate (tlsv13 alert certificate required)");
 *  - NARF_EPROTO: the bytes are not TLS ("plain-text server on a TLS
 *    connection? (wrong version number)") or a record is bad;
 *  - NARF_ECLOSED: the server closed the connection (during the
 *    handshake: maybe it does not speak TLS, or refused us).
 */
#ifndef NARF_TLS_SOCK_H
#define NARF_TLS_SOCK_H

#include <stddef.h>
#include <stdint.h>

struct ssl_st;
struct ssl_ctx_st;

/* Size of a why buffer that holds any of this module's sentences. */
#define NARF_TLS_WHY_SIZE 200

/* A client SSL on ctx over fd (borrowed: the caller closes it after
 * narf_tls_sock_free()); nothing is sent yet. NULL when out of memory. */
struct ssl_st *narf_tls_sock_new(struct ssl_ctx_st *ctx, int fd);

/* Free ssl (NULL is fine). No close_notify: the tools close their
 * connections with nothing left to say, and a peer that has gone must not
 * make the close wait. */
void narf_tls_sock_free(struct ssl_st *ssl);

/*
 * One step of the handshake. 0 with *events 0: done; 0 with *events
 * POLLIN or POLLOUT: call again when the socket is ready so. Errors as
 * above, why (whylen bytes, NARF_TLS_WHY_SIZE is enough) says how.
 */
int narf_tls_sock_handshake(struct ssl_st *ssl,
                            short *events,
                            char *why,
                            size_t whylen);

/*
 * Write from data (n bytes, n > 0). 0 with *sent > 0: that many were
 * taken; 0 with *sent 0: wait for *events, then call again with the same
 * data. Errors as above.
 */
int narf_tls_sock_send(struct ssl_st *ssl,
                       const char *data,
                       size_t n,
                       size_t *sent,
                       short *events,
                       char *why,
                       size_t whylen);

/*
 * Read into buf (cap > 0 bytes). 0 with *got > 0: bytes read; 0 with *got
 * 0: wait for *events. NARF_ECLOSED: the server closed (close_notify, or
 * the bare TCP end). Other errors as above. The SSL may hold decrypted
 * bytes the socket no longer signals: read until it asks to wait.
 */
int narf_tls_sock_recv(struct ssl_st *ssl,
                       char *buf,
                       size_t cap,
                       size_t *got,
                       short *events,
                       char *why,
                       size_t whylen);

/*
 * The whole handshake on fd before deadline (monotonic ms, as
 * narf_clock_ms()): *out is the new SSL (the caller frees it with
 * narf_tls_sock_free()). Errors as above, plus NARF_ETIMEOUT ("no TLS
 * handshake within the deadline: a plain-text server?") and NARF_ENOMEM.
 */
int narf_tls_sock_connect(struct ssl_ctx_st *ctx,
                          int fd,
                          int64_t deadline,
                          struct ssl_st **out,
                          char *why,
                          size_t whylen);

/* Wait for events on fd until deadline (monotonic ms); 0, or
 * NARF_ETIMEOUT. A signal only shortens the wait. */
int narf_tls_sock_wait(int fd, short events, int64_t deadline);

#endif /* NARF_TLS_SOCK_H */
