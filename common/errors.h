/*
 * The project's one error enum.
 *
 * Every function that can fail returns 0 or a NARF_E* code and hands results
 * back through out-parameters. The table below is an X-macro so the enum, the
 * short wire names used in the coordinator protocol ("not_leader") and the
 * human messages can never drift apart. libuv and libraft codes are translated
 * at their boundaries (narf_err_from_uv(), coordinator/raftnode.c).
 */
#ifndef NARF_ERRORS_H
#define NARF_ERRORS_H

/* X(enum suffix, wire code, human message) */
#define NARF_ERRORS(X)                                                      \
	X(NOMEM, "nomem", "out of memory")                                  \
	X(INVAL, "bad_request", "invalid argument")                         \
	X(PROTO, "bad_json", "protocol error")                              \
	X(TOOLARGE, "too_large", "message too large")                       \
	X(TOODEEP, "too_deep", "message nested too deeply")                 \
	X(UNKNOWNOP, "unknown_op", "unknown operation")                     \
	X(NOTLEADER, "not_leader", "not the leader")                        \
	X(NOTREADY, "not_ready", "leader is not ready yet")                 \
	X(BUSY, "busy", "too many requests in flight")                      \
	X(NOTFOUND, "unknown_node", "unknown node")                         \
	X(STALE, "stale_epoch", "stale epoch")                              \
	X(EXISTS, "exists", "already exists")                               \
	X(CHANGING, "change_in_flight",                                     \
	  "a coordinator membership change is in progress")                 \
	X(IO, "io", "input/output error")                                   \
	X(CONNECT, "unreachable", "connection failed")                      \
	X(TIMEOUT, "timeout", "timed out")                                  \
	X(CLOSED, "closed", "connection closed")                            \
	X(OOM, "oom", "command not allowed when used memory > 'maxmemory'") \
	X(NOROOM, "no_room", "too few other nodes up to take the copies")   \
	X(NOQUORUM, "no_quorum",                                            \
	  "this leader has not heard from a majority recently")             \
	X(AUTH, "auth_failed", "authentication failed")                     \
	X(DENIED, "denied", "this credential may not do that")              \
	X(INTERNAL, "internal", "internal error")                           \
	X(WRONGTYPE, "wrongtype",                                           \
	  "Operation against a key holding the wrong kind of value")

enum narf_error {
	NARF_OK = 0,
#define NARF_ERR_ENUM(name, code, msg) NARF_E##name,
	NARF_ERRORS(NARF_ERR_ENUM)
#undef NARF_ERR_ENUM
	        NARF_E_COUNT
};

/* Human-readable message for an error code; never NULL. */
const char *narf_strerror(int err);

/* Short stable code used on the wire ("not_leader"); never NULL. */
const char *narf_errcode(int err);

/* Inverse of narf_errcode(); NARF_EINTERNAL for an unknown code. */
int narf_err_from_code(const char *code);

/* Translate a negative libuv status into the closest NARF_E* code. */
int narf_err_from_uv(int uv_status);

/* Size of the errmsg buffers carried by long-lived objects. */
#define NARF_ERRMSG_SIZE 256

#endif /* NARF_ERRORS_H */
