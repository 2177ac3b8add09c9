/*
 * A TLS tunnel for code that speaks plain bytes on a libuv stream.
 *
 * The internal links (Raft, the coordinator API, a data node's calls to
 * the coordinators, peer links, the removal probe) were written against a
 * plain TCP stream, and libraft reads and writes its stream itself, so
 * OpenSSL cannot sit in their I/O path. A relay holds the TCP connection
 * and its TLS state (tls.h, in-memory BIOs) and hands the caller one end
 * of a socketpair instead: plaintext the caller writes there goes out
 * encrypted, and what arrives is decrypted into it. The caller opens that
 * fd as its stream (uv_tcp_open or uv_pipe_open) and goes on exactly as
 * over a plain connection, the cluster-secret challenge included, which
 * then runs inside the tunnel.
 *
 * Life of a relay:
 *   1. narf_tls_relay_connect() dials, or narf_tls_relay_accept() accepts;
 *      the TLS handshake runs, bounded by timeout_ms in all (connect
 *      included).
 *   2. cb runs once: with the caller's fd (status 0), or with an error
 *      (status NARF_E*, why says what: "connection refused", "server
 *      certificate: certificate has expired", "handshake not finished in
 *      5000 ms"). Before that, narf_tls_relay_cancel() gives up and cb
 *      never runs.
 *   3. After cb the relay belongs to nobody: it shovels bytes until either
 *      side ends. The caller closing its fd sends close_notify and closes
 *      the TCP connection once what it wrote went out; the network side
 *      ending (or failing) shuts the caller's fd down after everything
 *      decrypted was delivered, so the caller reads EOF as it would from
 *      TCP. It frees itself.
 *
 * Backpressure: each direction buffers at most NARF_TLS_RELAY_HIGH bytes
 * in write requests before it stops reading its source, and reads again
 * below NARF_TLS_RELAY_LOW.
 *
 * Cost: one extra socketpair hop each way (two system calls per batch).
 * The data node's client port does not use a relay (server.c runs TLS in
 * its own I/O path); internal links carry batches, not single requests.
 *
 * Writes to a caller that closed its fd fail with EPIPE: the process must
 * ignore SIGPIPE (the daemons' main() does), or it dies of the first one.
 *
 * Single-threaded: every call on the loop's thread.
 */
#ifndef NARF_TLS_RELAY_H
#define NARF_TLS_RELAY_H

#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "common/tls.h"

#define NARF_TLS_RELAY_HIGH (4u << 20)
#define NARF_TLS_RELAY_LOW (1u << 20)
/* After one side ended, how long the other may take to end too. */
#define NARF_TLS_RELAY_LINGER_MS 5000

struct narf_tls_relay;

/*
 * fd: the caller's end (AF_UNIX stream, non-blocking, close-on-exec),
 * or -1 with status != 0. peer: the remote TCP address (for logs and
 * per-address limits). why: NULL on success, else a reason for the log.
 */
typedef void (*narf_tls_relay_cb)(void *data,
                                  int fd,
                                  const struct sockaddr_storage *peer,
                                  int status,
                                  const char *why);

/* Dial sa and run a client handshake on t's context. NULL (and no cb)
 * when the connect cannot even start (out of memory, a bad address). */
struct narf_tls_relay *narf_tls_relay_connect(uv_loop_t *loop,
                                              const struct sockaddr *sa,
                                              struct narf_tls *t,
                                              uint64_t timeout_ms,
                                              narf_tls_relay_cb cb,
                                              void *data);

/* Accept the connection waiting on server (call from its connection
 * callback) and run a server handshake on t's context. NULL (and no cb)
 * when uv_accept fails or out of memory; the connection is dropped. */
struct narf_tls_relay *narf_tls_relay_accept(uv_stream_t *server,
                                             struct narf_tls *t,
                                             uint64_t timeout_ms,
                                             narf_tls_relay_cb cb,
                                             void *data);

/* Before cb only: close everything; cb never runs. */
void narf_tls_relay_cancel(struct narf_tls_relay *r);

/* Relays of this process still connecting or handshaking (accept caps). */
unsigned narf_tls_relay_pending(void);

#endif /* NARF_TLS_RELAY_H */
