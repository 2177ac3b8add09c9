/*
 * The coordinator API's side of the auth exchange (docs/protocol.md,
 * "Authentication"), without the connection: what a request line of the
 * exchange is worth, and the reply it gets. api.c runs it on every line
 * of a connection that has not proven itself yet and does the rest
 * (counting, logging, closing, lifting the line limit); the unit tests and
 * tests/fuzz/fuzz_auth.c run it in memory.
 *
 * The exchange is two requests: the hello
 * {"op":"auth","role":R,"id":N,"nonce":H} gets the coordinator's nonce and
 * proof, and the caller's proof {"op":"auth","proof":H} gets
 * {"ok":true,"role":R}. Anything else, in either state, is a failure, and
 * the connection is closed after one auth_failed line.
 */
#ifndef NARF_API_AUTH_H
#define NARF_API_AUTH_H

#include <jansson.h>

#include "common/auth.h"

/* Where a connection is in the exchange. */
enum narf_api_auth_state {
	NARF_API_AUTH_HELLO, /* waiting for the caller's hello */
	NARF_API_AUTH_PROOF, /* answered; waiting for the caller's proof */
	NARF_API_AUTH_DONE,  /* proven: a->role is the caller's role */
};

/*
 * Take one request line (req, borrowed) of the exchange in *state (HELLO or
 * PROOF; DONE is refused), with the server's keys (borrowed) and the
 * exchange so far in a. On success returns 0, advances *state (HELLO to
 * PROOF, PROOF to DONE), updates a and sets *reply to the line to send (a
 * new reference; NULL only without memory). Otherwise returns NARF_EAUTH,
 * leaves *state as it was, sets *reply to NULL and *why to a static
 * sentence for the auth_failed line: not an auth request, a malformed
 * hello (the role must be operator or node; the id, when present, a
 * non-negative integer; the nonce 32 hex digits), a role the keys cannot
 * answer for, or a wrong or malformed proof.
 */
int narf_api_auth_step(const struct narf_auth_keys *keys,
                       enum narf_api_auth_state *state,
                       struct narf_auth *a,
                       const json_t *req,
                       json_t **reply,
                       const char **why);

#endif /* NARF_API_AUTH_H */
