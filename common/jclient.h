/*
 * A small blocking client for the coordinator API (docs/protocol.md).
 *
 * Tools that ask the coordinator one question and exit (cachecli, test
 * helpers, scripts' readiness probes) do not need an event loop: they connect,
 * send one JSON line, read one JSON line and close. This module does exactly
 * that with plain POSIX sockets, bounded by a deadline at every step (connect,
 * write, read), so a coordinator that is stopped, paused or wedged can never
 * hang the caller.
 *
 * narf_jclient_call() is one exchange with one address. On top of it,
 * narf_jclient_call_leader() hides the cluster's shape: it walks a list of
 * coordinators, follows "not_leader" redirects, and waits out elections and
 * full apply windows ("not_ready", "busy") until an overall deadline.
 *
 * Processes built around a libuv loop (data nodes, the coordinator itself)
 * must not use this module: it blocks the calling thread.
 */
#ifndef NARF_JCLIENT_H
#define NARF_JCLIENT_H

#include <jansson.h>

#include "auth.h"

/* How long narf_jclient_call_leader() gives a single coordinator before
 * trying the next one, so one stopped member cannot eat the whole budget. */
#define NARF_JCLIENT_ATTEMPT_MS 1000

/* Redirects followed from one starting address before moving on. */
#define NARF_JCLIENT_MAX_HOPS 3

/* Pause between retries after "not_ready", "busy" or a failed round. */
#define NARF_JCLIENT_RETRY_MS 50

/*
 * The credential every later call proves first (common/auth.h, the API's
 * `auth` exchange): keys (borrowed: they must outlive the calls) and the
 * role to prove. Without one, calls go out unauthenticated, and every
 * coordinator refuses them with "auth_failed". A tool holds one
 * credential for its whole run, so this is process-wide.
 */
void narf_jclient_set_credential(const struct narf_auth_keys *keys,
                                 enum narf_auth_role role);

/*
 * TLS for every later call (cachecli --tls; the coordinators' API with
 * --tls-cluster takes nothing else): after connect, a TLS handshake on
 * ctx (borrowed: a client context from narf_tls_init(), which outlives the
 * calls; NULL: plain text again), within the call's deadline, then the
 * exchange as before inside it. Process-wide like the credential; the
 * context is shared by threads, each call has its own SSL. A handshake
 * that fails is NARF_EAUTH (a certificate refused, either way) or
 * NARF_EPROTO (not a TLS port), errmsg saying "addr: TLS: ...".
 */
struct ssl_ctx_st;
void narf_jclient_set_tls(struct ssl_ctx_st *ctx);

/*
 * One request/reply exchange: connect to addr ("host:port") within
 * timeout_ms, send req (borrowed) as one line, read one reply line, all
 * before the same deadline. On success *reply is a new reference to the reply
 * object (the caller decrefs it); it has a boolean "ok", which may be false.
 *
 * Errors: NARF_EINVAL (addr is not host:port or does not resolve),
 * NARF_ECONNECT (connection refused or unreachable), NARF_ETIMEOUT,
 * NARF_ECLOSED (peer closed before a whole reply line), NARF_EPROTO (the reply
 * is not a JSON object with a boolean "ok", or nests too deeply),
 * NARF_ETOOLARGE (reply line over NARF_FRAME_MAX_REPLY), NARF_ENOMEM,
 * NARF_EIO, NARF_EAUTH (the credential was refused, or the coordinator
 * could not prove it holds the same secret). errmsg (NARF_ERRMSG_SIZE bytes,
 * may be NULL) says what failed, prefixed with addr.
 */
int narf_jclient_call(const char *addr,
                      const json_t *req,
                      int timeout_ms,
                      json_t **reply,
                      char *errmsg);

/*
 * Call against a list of coordinators ("a:p,b:p,c:p"; borrowed). Each address
 * is tried in turn. A {"ok":false,"error":"not_leader","leader":X} reply is
 * followed to X (at most NARF_JCLIENT_MAX_HOPS hops from each listed
 * address); "not_ready" and "busy" replies are retried on the same member
 * after NARF_JCLIENT_RETRY_MS; connection failures and timeouts move on to
 * the next address, and after a round without an answer the whole list is
 * tried again, until total_timeout_ms has passed. Each single attempt gets at
 * most NARF_JCLIENT_ATTEMPT_MS.
 *
 * On success *reply is a new reference to the first reply that is neither a
 * redirect nor a retry: {"ok":true,...} or a real error such as
 * {"ok":false,"error":"bad_request",...}, which the caller inspects.
 *
 * Errors: NARF_EINVAL (the list is empty or an entry is not host:port),
 * NARF_ECONNECT (every attempt was refused or unreachable: the cluster is
 * down), NARF_ETIMEOUT (something answered or hung, but no usable reply came
 * in time), NARF_EPROTO (every listed address answered something that is not
 * the coordinator protocol: probably not a coordinator API port; this is
 * reported at once, without waiting for the deadline), NARF_EAUTH (every
 * listed address refused our credential or failed to prove its own; also
 * at once). errmsg
 * (NARF_ERRMSG_SIZE bytes, may be NULL) names the addresses tried and the
 * last failure of each.
 */
int narf_jclient_call_leader(const char *addrs,
                             const json_t *req,
                             int total_timeout_ms,
                             json_t **reply,
                             char *errmsg);

#endif /* NARF_JCLIENT_H */
