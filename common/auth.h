/*
 * Who is calling: the cluster secret's challenge-response (docs/security.md).
 *
 * Every internal port (the coordinator API, Raft, the data nodes' peer
 * links) makes the caller prove a key before it parses anything else, and
 * proves the same key back, so neither end talks to a stranger. The keys
 * are derived from the one cluster secret, one per role, so a credential
 * proves a role and nothing more:
 *
 * - NARF_AUTH_OPERATOR: operators and their tools (cachecli); everything,
 *   including leave, settings and the coordinator membership ops;
 * - NARF_AUTH_NODE: data nodes (to the coordinators, and to one another);
 *   a data node holds only this key, never the secret, so it cannot
 *   derive the others;
 * - NARF_AUTH_COORD: coordinators to one another (Raft); it also opens
 *   the node role's doors, as a coordinator holds the secret anyway.
 *
 * The exchange, with fresh 16-byte nonces from both sides:
 *
 *   client -> server   role, id, nonce_c
 *   server -> client   nonce_s, MAC(key, "S" role id nonce_c nonce_s ctx)
 *   client -> server   MAC(key, "C" role id nonce_c nonce_s ctx)
 *
 * MAC is HMAC-SHA256 (OpenSSL), compared in constant time (CRYPTO_memcmp).
 * ctx names the port ("api", "raft", "peer"), so a proof made for one port
 * is worthless on another; the direction byte keeps the server's proof
 * from being played back as the client's; the nonces make every proof
 * fresh. The id the client claims (a data node's id, a coordinator's Raft
 * id) is inside both MACs: after the exchange it is proven, not taken on
 * faith. The channel is not encrypted: that is TLS's job (the secret never
 * crosses the wire, only MACs over nonces).
 *
 * This module is pure apart from drawing nonces (RAND_bytes): no sockets,
 * no loop, so every transport (libuv, blocking, Python) runs the same
 * steps and the unit tests run them in memory.
 */
#ifndef NARF_AUTH_H
#define NARF_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NARF_AUTH_KEY_SIZE 32
#define NARF_AUTH_NONCE_SIZE 16
#define NARF_AUTH_MAC_SIZE 32
/* Hex forms on the wire, without the terminating NUL. */
#define NARF_AUTH_NONCE_HEX (2 * NARF_AUTH_NONCE_SIZE)
#define NARF_AUTH_MAC_HEX (2 * NARF_AUTH_MAC_SIZE)
/* A key file's node key: "node:" and 64 hex digits. */
#define NARF_AUTH_NODE_KEY_PREFIX "node:"
/* The shortest cluster secret accepted (bytes). */
#define NARF_AUTH_MIN_SECRET 16
/* The longest secret line read from a file (bytes). */
#define NARF_AUTH_MAX_SECRET 1024

enum narf_auth_role {
	NARF_AUTH_OPERATOR = 1,
	NARF_AUTH_NODE = 2,
	NARF_AUTH_COORD = 3,
};

/* "operator" / "node" / "coord" <-> the role; parse returns -1 on an
 * unknown name. */
const char *narf_auth_role_name(enum narf_auth_role r);
int narf_auth_role_parse(const char *name, enum narf_auth_role *out);

/*
 * The keys a process holds: from the cluster secret, all three; from a
 * node key ("node:<hex>"), only the node role's. A secret file may hold
 * two lines, the current secret and the one being rotated out (or in):
 * set[0] and set[1]. A process proves with whichever set the other end
 * shares, answers with set[0], and accepts either (docs/security.md,
 * "Rotating the secret"). Plain data, no heap.
 */
struct narf_auth_keyset {
	bool have[4]; /* indexed by enum narf_auth_role */
	unsigned char key[4][NARF_AUTH_KEY_SIZE];
};

struct narf_auth_keys {
	struct narf_auth_keyset set[2];
	unsigned n; /* sets in use: 0, 1 or 2 */
};

/*
 * Fill keys (one set) from the text of one line (borrowed, len bytes, no
 * newline): either a cluster secret (at least NARF_AUTH_MIN_SECRET bytes)
 * or a node key. Returns 0, NARF_EINVAL (too short, or a malformed node
 * key; errmsg says which) or NARF_EINTERNAL (OpenSSL failed).
 */
int narf_auth_keys_from_text(struct narf_auth_keys *keys,
                             const char *text,
                             size_t len,
                             char *errmsg);

/*
 * Read a secret file into keys: its first line, and a second one when
 * present (each at most NARF_AUTH_MAX_SECRET bytes, trailing "\r\n"
 * dropped; both secrets, or both node keys). Errors as above (errmsg
 * names the line), plus NARF_EIO when the file cannot be read.
 */
int narf_auth_keys_from_file(struct narf_auth_keys *keys,
                             const char *path,
                             char *errmsg);

/* The node key of keys holding the cluster secret, as the text a data
 * node's key file holds ("node:<64 hex>"; out has at least 70 bytes).
 * Returns 0 or NARF_EINVAL when keys lack the node key. */
int narf_auth_node_key_text(const struct narf_auth_keys *keys,
                            char *out,
                            size_t size);

/* Can keys prove role? (A coordinator's keys also serve the node role.) */
bool narf_auth_keys_can(const struct narf_auth_keys *keys,
                        enum narf_auth_role role);

/*
 * One side of one exchange. Both sides fill role, id and ctx the same way;
 * the client draws nonce_c, the server nonce_s.
 */
struct narf_auth {
	enum narf_auth_role role;
	uint64_t id;     /* the client's claimed id (0: none, an operator) */
	const char *ctx; /* borrowed: "api", "raft", "peer" */
	unsigned set;    /* the key set the exchange runs on */
	unsigned char nonce_c[NARF_AUTH_NONCE_SIZE];
	unsigned char nonce_s[NARF_AUTH_NONCE_SIZE];
};

/* Client, step 1: set a up and draw nonce_c. Returns 0 or NARF_EINTERNAL
 * (no randomness). */
int narf_auth_client_begin(struct narf_auth *a,
                           enum narf_auth_role role,
                           uint64_t id,
                           const char *ctx);

/*
 * Server, step 2: given the client's hello (role, id, nonce_c), draw
 * nonce_s and make the server's proof into mac. Returns 0, NARF_EAUTH
 * (keys cannot prove that role: the server refuses it) or NARF_EINTERNAL.
 */
int narf_auth_server_answer(struct narf_auth *a,
                            const struct narf_auth_keys *keys,
                            enum narf_auth_role role,
                            uint64_t id,
                            const char *ctx,
                            const unsigned char *nonce_c,
                            unsigned char *mac);

/*
 * Client, step 3: check the server's proof (nonce_s, mac) and make the
 * client's into mac_out. Returns 0, NARF_EAUTH (the server does not hold
 * the key: a stranger, or a wrong secret) or NARF_EINTERNAL.
 */
int narf_auth_client_prove(struct narf_auth *a,
                           const struct narf_auth_keys *keys,
                           const unsigned char *nonce_s,
                           const unsigned char *mac,
                           unsigned char *mac_out);

/* Server, step 4: check the client's proof. 0 or NARF_EAUTH. */
int narf_auth_server_check(const struct narf_auth *a,
                           const struct narf_auth_keys *keys,
                           const unsigned char *mac);

/* Hex helpers for the text wires: encode n bytes into 2n digits plus a
 * NUL; decode exactly 2n digits (any case) into n bytes, -1 otherwise. */
void narf_auth_hex(const unsigned char *in, size_t n, char *out);
int narf_auth_unhex(const char *in, size_t len, unsigned char *out, size_t n);

/* Constant-time equality of two byte strings of the same length. */
bool narf_auth_equal(const void *a, const void *b, size_t n);

#endif
