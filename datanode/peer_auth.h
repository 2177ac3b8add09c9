/*
 * The data nodes' peer-link handshake: common/auth.h's challenge-response
 * for the node role over RESP, in context "peer", with the dialing node's
 * id as the claimed id (docs/protocol.md, "Opening a link"):
 *
 *   link -> node   NARF.AUTH <node id> <nonce_c hex>
 *   node -> link   *2 [<nonce_s hex>, <proof_s hex>]   (or an error)
 *   link -> node   NARF.AUTH <proof_c hex>
 *   node -> link   +OK
 *
 * The dialing side checks the node's proof before it sends its own, and
 * sends nothing else before that either: a stranger at a peer's address
 * (or a node of another cluster) learns neither a proof nor a write. The
 * node's side is the NARF.AUTH command (cmd_cluster.c), which refuses
 * every other NARF.* command on a connection until the proof checked out.
 *
 * This file is the dialing side's logic, pure (no sockets): repl_link.c
 * moves the bytes, and the unit tests play both sides in memory.
 */
#ifndef NARF_PEER_AUTH_H
#define NARF_PEER_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "common/auth.h"
#include "common/buf.h"

#define NARF_PEER_AUTH_CTX "peer"
/* The node's answer to the first step, byte for byte: an array of the two
 * hex strings. */
#define NARF_PEER_AUTH_ANSWER_LEN \
	(4 + 5 + NARF_AUTH_NONCE_HEX + 2 + 5 + NARF_AUTH_MAC_HEX + 2)

/*
 * Begin the handshake as node `me` (not 0): draw a's nonce and append the
 * first NARF.AUTH to out. Returns 0, NARF_EINVAL (me is 0), NARF_ENOMEM or
 * NARF_EINTERNAL (no randomness); out is unchanged on error.
 */
int narf_peer_auth_hello(struct narf_auth *a,
                         uint32_t me,
                         struct narf_buf *out);

/*
 * The node's whole reply (borrowed, len bytes) to the first step: check
 * its proof with keys and append our NARF.AUTH <proof> to out. Returns 0,
 * NARF_EAUTH (the node refused us, or did not prove the key: a stranger,
 * or one of us holds another cluster's secret), NARF_EPROTO (not an
 * answer of the expected shape), NARF_ENOMEM or NARF_EINTERNAL. why gets
 * a sentence for the log on error (never a key; the node's error reply is
 * quoted, at most 100 bytes).
 */
int narf_peer_auth_answer(struct narf_auth *a,
                          const struct narf_auth_keys *keys,
                          const char *reply,
                          size_t len,
                          struct narf_buf *out,
                          char *why,
                          size_t why_size);

#endif
