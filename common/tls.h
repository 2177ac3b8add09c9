/*
 * TLS for every narf port, with OpenSSL over
 * in-memory BIOs (a BIO_s_mem in, a buffer of ours out: tls.c says why):
 * the connection's libuv stream stays the only socket I/O.
 * The server feeds the bytes it reads into the read BIO
 * (narf_tls_conn_feed), drives the handshake (narf_tls_conn_handshake),
 * decrypts everything available into the query buffer
 * (narf_tls_conn_decrypt), encrypts a whole batch of replies with one
 * SSL_write (narf_tls_conn_encrypt) and writes the ciphertext it left in a
 * buffer (narf_tls_conn_out) with its usual write path. Nothing here touches a
 * socket or the loop, so a connection's TLS state is plain data.
 *
 * Contexts. struct narf_tls holds the SSL_CTX new connections take. A
 * reload (SIGHUP) builds a whole new context from the same files and swaps
 * it in only when every file loads and the key matches the certificate;
 * the old one lives on, through OpenSSL's reference count, in the
 * connections made with it, and is freed with the last of them.
 *
 * Settings: TLS 1.2 at least; TLS 1.2 ciphers with ECDHE key exchange only
 * (TLS 1.3's are (EC)DHE anyway); session tickets on (their keys are the
 * context's, so a reload makes clients do one full handshake again);
 * renegotiation off. Client certificates as Redis's --tls-auth-clients.
 */
#ifndef NARF_TLS_H
#define NARF_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* --tls-auth-clients */
enum narf_tls_auth {
	NARF_TLS_AUTH_NO,       /* no client certificate asked for */
	NARF_TLS_AUTH_OPTIONAL, /* asked for; verified when sent */
	NARF_TLS_AUTH_YES,      /* required, from the CA */
};

/*
 * A server side (a port that accepts TLS: the data node's --tls-port, the
 * coordinator's API and Raft ports with --tls-cluster) or a client side
 * (whoever dials one: peer links, a data node's calls to the
 * coordinators, the coordinator's removal probe, Raft, cachecli).
 *
 * A client verifies the server's certificate chain against ca_file (the
 * system's store when NULL), never its host name: narf's internal
 * addresses are IP addresses, and who the peer is comes from the cluster
 * secret's challenge inside the tunnel (docs/security.md). It presents
 * cert_file/key_file when the server asks for a client certificate.
 */
struct narf_tls_config {
	const char *cert_file;   /* borrowed (argv); PEM, chain allowed;
	                            optional on a client */
	const char *key_file;    /* borrowed; PEM */
	const char *ca_file;     /* borrowed; PEM, or NULL */
	enum narf_tls_auth auth; /* server only */
	bool client;             /* a client side */
	bool insecure;           /* client: do not verify the server */
	/* Flag names for errors ("--tls-cert-file" etc. when NULL). */
	const char *cert_flag, *key_flag, *ca_flag;
};

/* The port's TLS settings and the context new connections take. */
struct narf_tls {
	struct narf_tls_config cfg;
	struct ssl_ctx_st *ctx; /* owned (one reference) */
	uint64_t reloads;       /* successful reloads */
};

/* Load cfg's files into a new context. Errors: NARF_EINVAL with errmsg
 * (NARF_ERRMSG_SIZE bytes) naming the file and the reason (unreadable,
 * not PEM, key not matching the certificate, --tls-auth-clients yes or
 * optional without a CA); NARF_ENOMEM. cfg's strings must outlive t. */
int narf_tls_init(struct narf_tls *t,
                  const struct narf_tls_config *cfg,
                  char *errmsg);

/* Read the files again into a new context and use it for new connections;
 * on any error (as narf_tls_init's) the context in use stays. */
int narf_tls_reload(struct narf_tls *t, char *errmsg);

/* Drop t's reference to its context (connections keep theirs). NULL and
 * an unused (zeroed) t are fine. */
void narf_tls_close(struct narf_tls *t);

/* "subject CN=..., expires Jun  1 00:00:00 2030 GMT" of the certificate in
 * use, for logs. */
void narf_tls_describe(const struct narf_tls *t, char *out, size_t size);

/* One connection's TLS state (opaque): its SSL and its two BIOs. */
struct narf_tls_conn;

/* A connection on t's current context (server or client side, as t's
 * config says; a client sends its hello at the first handshake step);
 * NULL when out of memory. The caller frees it with narf_tls_conn_destroy(). */
struct narf_tls_conn *narf_tls_conn_create(struct narf_tls *t);
void narf_tls_conn_destroy(struct narf_tls_conn *c);

/* The handshake has finished (replies may be encrypted). */
bool narf_tls_conn_ready(const struct narf_tls_conn *c);

/* Bytes read from the socket: into the read BIO (copied). NARF_ENOMEM. */
int narf_tls_conn_feed(struct narf_tls_conn *c, const char *data, size_t n);

/* Go on with the handshake on what was fed. 0 with *done false: it needs
 * more input (what it has to say waits in the output); 0 with *done true:
 * finished. NARF_EPROTO: it failed, why (at least 128 bytes) says how
 * ("certificate has expired", "wrong version number"); an alert for the
 * peer may wait in the output. */
int narf_tls_conn_handshake(struct narf_tls_conn *c,
                            bool *done,
                            char *why,
                            size_t whylen);

/* Decrypt every whole record fed so far, appended to in (grown chunk
 * bytes at a time). *eof: the peer sent close_notify. NARF_EPROTO (why
 * says how) on a bad record; NARF_ENOMEM. */
int narf_tls_conn_decrypt(struct narf_tls_conn *c,
                          struct narf_buf *in,
                          size_t chunk,
                          bool *eof,
                          char *why,
                          size_t whylen);

/* Encrypt n bytes (one SSL_write: records of up to 16 KiB) into the
 * output; only after the handshake. NARF_EPROTO, NARF_ENOMEM. */
int narf_tls_conn_encrypt(struct narf_tls_conn *c, const char *data, size_t n);

/* The encrypted bytes waiting to be written (borrowed, owned by c): the
 * caller writes them and consumes what was written, or swaps the contents
 * with an empty buffer of its own (SSL_write appends to whatever buffer is
 * there then). */
struct narf_buf *narf_tls_conn_out(struct narf_tls_conn *c);

/* Queue a close_notify alert in the output (after the handshake only;
 * nothing otherwise). */
void narf_tls_conn_close_notify(struct narf_tls_conn *c);

#endif /* NARF_TLS_H */
