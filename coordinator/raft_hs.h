/*
 * The Raft port's handshake, loop-free: the frames two coordinators
 * exchange before libraft sees a byte (docs/security.md, "Raft transport").
 *
 * libraft 0.15's message decoder trusts its input, so narf's transport
 * (transport.c) runs this exchange on every connection first, and hands
 * libraft the stream only once the client has proved the coordinator role's
 * key (common/auth.h, ctx "raft"). Four fixed-size frames, in order:
 *
 *   client -> server  HELLO      96 bytes: magic, version, role, id,
 *                                nonce_c, the client's Raft address
 *   server -> client  CHALLENGE  56 bytes: magic, version, nonce_s, the
 *                                server's MAC
 *   client -> server  PROOF      32 bytes: the client's MAC
 *   server -> client  OK          1 byte
 *
 * Both sides prove the key, so a stranger can neither get in nor pose as a
 * member (a stranger on a member's address fails the client's check of
 * the CHALLENGE). The client sends nothing after PROOF until it has read
 * OK: every byte that follows OK is libraft's, and the server reads exactly
 * the handshake's bytes, never one of libraft's.
 *
 * This module only encodes, parses and checks frames, and runs the
 * auth.h steps on them: no sockets, no loop. Parsers take the bytes read
 * and their count, so truncated or oversized input is refused here too.
 */
#ifndef NARF_RAFT_HS_H
#define NARF_RAFT_HS_H

#include <stddef.h>
#include <stdint.h>

#include "common/auth.h"
#include "common/map.h"

#define NARF_RAFT_HS_MAGIC "NRFT"
#define NARF_RAFT_HS_VERSION 1
#define NARF_RAFT_HS_CTX "raft"
/* The address field of HELLO: "host:port", NUL-padded. */
#define NARF_RAFT_HS_ADDR_SIZE NARF_ADDR_SIZE

#define NARF_RAFT_HS_HELLO_SIZE \
	(4 + 1 + 1 + 2 + 8 + NARF_AUTH_NONCE_SIZE + NARF_RAFT_HS_ADDR_SIZE)
#define NARF_RAFT_HS_CHALLENGE_SIZE \
	(4 + 1 + 3 + NARF_AUTH_NONCE_SIZE + NARF_AUTH_MAC_SIZE)
#define NARF_RAFT_HS_PROOF_SIZE NARF_AUTH_MAC_SIZE
#define NARF_RAFT_HS_OK_SIZE 1
/* The OK byte: ASCII ACK. */
#define NARF_RAFT_HS_OK 0x06
/* The largest frame either side reads. */
#define NARF_RAFT_HS_MAX_FRAME NARF_RAFT_HS_HELLO_SIZE

/* HELLO's fields. address is NUL-terminated. */
struct narf_raft_hs_hello {
	enum narf_auth_role role;
	uint64_t id;
	unsigned char nonce_c[NARF_AUTH_NONCE_SIZE];
	char address[NARF_RAFT_HS_ADDR_SIZE];
};

/* CHALLENGE's fields. */
struct narf_raft_hs_challenge {
	unsigned char nonce_s[NARF_AUTH_NONCE_SIZE];
	unsigned char mac[NARF_AUTH_MAC_SIZE];
};

/*
 * Encode h into out (NARF_RAFT_HS_HELLO_SIZE bytes). Returns 0, or
 * NARF_EINVAL when the address does not fit (at most
 * NARF_RAFT_HS_ADDR_SIZE - 1 bytes) or id is 0.
 */
int narf_raft_hs_encode_hello(const struct narf_raft_hs_hello *h,
                              unsigned char *out);

/*
 * Parse a HELLO of len bytes. Returns 0, or NARF_EPROTO with errmsg
 * (NARF_ERRMSG_SIZE, may be NULL) saying why: wrong length, magic or
 * version, a reserved byte set, an unknown role, id 0, or an address that
 * is not a NUL-terminated, NUL-padded "host:port" narf accepts.
 */
int narf_raft_hs_parse_hello(const unsigned char *buf,
                             size_t len,
                             struct narf_raft_hs_hello *h,
                             char *errmsg);

/* Encode c into out (NARF_RAFT_HS_CHALLENGE_SIZE bytes). */
void narf_raft_hs_encode_challenge(const struct narf_raft_hs_challenge *c,
                                   unsigned char *out);

/* Parse a CHALLENGE of len bytes: 0 or NARF_EPROTO (errmsg says why). */
int narf_raft_hs_parse_challenge(const unsigned char *buf,
                                 size_t len,
                                 struct narf_raft_hs_challenge *c,
                                 char *errmsg);

/*
 * The client's side of one handshake. Call start, send hello; on the
 * CHALLENGE call challenge and send proof; on the OK byte call ok.
 */
struct narf_raft_hs_client {
	struct narf_auth auth;
	unsigned char hello[NARF_RAFT_HS_HELLO_SIZE];
	unsigned char proof[NARF_RAFT_HS_PROOF_SIZE];
};

/* Set c up as member id at address (borrowed) and encode its HELLO into
 * c->hello. Returns 0, NARF_EINVAL (bad address or id) or NARF_EINTERNAL
 * (no randomness). */
int narf_raft_hs_client_start(struct narf_raft_hs_client *c,
                              uint64_t id,
                              const char *address);

/*
 * The server's CHALLENGE (len bytes) arrived: check its proof with keys
 * (borrowed) and make ours into c->proof. Returns 0, NARF_EPROTO (not a
 * CHALLENGE: not a narf Raft port) or NARF_EAUTH (the server does not hold
 * the coordinator key), with errmsg (may be NULL) saying why.
 */
int narf_raft_hs_client_challenge(struct narf_raft_hs_client *c,
                                  const struct narf_auth_keys *keys,
                                  const unsigned char *buf,
                                  size_t len,
                                  char *errmsg);

/* The server's last byte(s) arrived: 0 when they are exactly OK,
 * NARF_EPROTO otherwise. */
int narf_raft_hs_client_ok(const unsigned char *buf, size_t len);

/*
 * The server's side. Call hello on the client's HELLO and send challenge;
 * call proof on its PROOF and, on 0, send NARF_RAFT_HS_OK: the client is
 * then the coordinator s->hello.id at s->hello.address.
 */
struct narf_raft_hs_server {
	struct narf_auth auth;
	struct narf_raft_hs_hello hello; /* the client's claims, proven
	                                  * only once proof returned 0 */
	unsigned char challenge[NARF_RAFT_HS_CHALLENGE_SIZE];
};

/*
 * The client's HELLO (len bytes) arrived: parse it and answer with keys
 * (borrowed) into s->challenge. Returns 0, NARF_EPROTO (malformed HELLO)
 * or NARF_EAUTH (a role other than coord: only coordinators speak Raft),
 * or NARF_EINTERNAL, with errmsg (may be NULL) saying why.
 */
int narf_raft_hs_server_hello(struct narf_raft_hs_server *s,
                              const struct narf_auth_keys *keys,
                              const unsigned char *buf,
                              size_t len,
                              char *errmsg);

/* The client's PROOF (len bytes) arrived: 0 when it proves the key,
 * NARF_EPROTO (wrong length) or NARF_EAUTH, with errmsg saying why. */
int narf_raft_hs_server_proof(const struct narf_raft_hs_server *s,
                              const struct narf_auth_keys *keys,
                              const unsigned char *buf,
                              size_t len,
                              char *errmsg);

#endif /* NARF_RAFT_HS_H */
