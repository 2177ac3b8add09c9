/*
 * cachecli's data path: Redis-protocol requests routed by the cluster map.
 *
 * A struct narf_cli_cluster caches the map in the process (one cachecli
 * run, or a whole shell session) and a few connections to data nodes. A
 * request goes straight to its key's primary; on a connection error,
 * -MOVED, -TRYAGAIN or -CLUSTERDOWN the map is refreshed from the
 * coordinators and the request sent again (to the node -MOVED names, the new
 * primary, or another up node, which forwards it), with a growing pause, until
 * the command's timeout. So a request issued while a primary fails over
 * succeeds once a replica has been promoted; only if nothing answers within
 * the timeout does it fail, with one line saying what was tried last.
 */
#ifndef NARF_CLI_DATA_H
#define NARF_CLI_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/errors.h"
#include "common/map.h"
#include "net.h"
#include "parse.h"

/* Connections kept open to data nodes (a shell session, a scan). */
#define NARF_CLI_POOL 8

struct narf_cli_conn {
	char addr[NARF_ADDR_SIZE];
	struct narf_cli_sock sock; /* owned; fd -1 when closed */
};

struct narf_cli_cluster {
	const char *coords;  /* borrowed: "host:port,..." */
	uint64_t timeout_ms; /* per command, retries included */
	struct narf_map map; /* owned: the cached map */
	bool have_map;
	int64_t map_ms; /* monotonic ms the map was fetched or confirmed */
	struct narf_cli_conn conns[NARF_CLI_POOL];
	unsigned next_conn;            /* pool slot to reuse next */
	char errmsg[NARF_ERRMSG_SIZE]; /* why the last call failed */
	bool tls_error; /* errmsg is a TLS failure no retry mends */
};

/* Set up cl for the coordinators in coords (borrowed, outlives cl). */
void narf_cli_cluster_init(struct narf_cli_cluster *cl,
                           const char *coords,
                           uint64_t timeout_ms);

/* Close the connections and free the map; cl may be NULL. */
void narf_cli_cluster_close(struct narf_cli_cluster *cl);

/*
 * Fetch the map from the coordinators (only its epoch when the cached map
 * is current) before deadline. Returns 0, or the error of
 * narf_jclient_call_leader() (NARF_ECONNECT, NARF_ETIMEOUT, NARF_EPROTO,
 * NARF_EINVAL) with cl->errmsg saying what failed.
 */
/* The credential every new data node connection proves with AUTH [user]
 * password (both borrowed; user may be NULL: the default user; pass NULL:
 * no AUTH). Process-wide, as a tool has one. */
void narf_cli_set_data_auth(const char *user, const char *pass);

int narf_cli_cluster_refresh(struct narf_cli_cluster *cl, int64_t deadline);

/*
 * Run one command: argv[key] is the key that picks the node. Returns 0 with
 * *reply decoded (it points into raw; narf_reply_free() it), which may be an
 * error reply the command itself earned (-WRONGTYPE, -ERR ...): those are
 * never retried. Else NARF_ETIMEOUT (nothing usable answered within the
 * timeout), NARF_ECONNECT (no coordinator answered for the map),
 * NARF_EPROTO (a node or coordinator spoke something else), NARF_EINVAL
 * (bad --coord), NARF_ETOOLARGE (the reply has more elements than
 * narf_reply_default_limits or more bytes than NARF_CLI_MAX_REPLY: not
 * retried), NARF_ENOMEM; cl->errmsg says what was tried last.
 */
int narf_cli_cluster_call(struct narf_cli_cluster *cl,
                          int argc,
                          const char *const *argv,
                          const size_t *argvlen,
                          int key,
                          struct narf_buf *raw,
                          struct narf_reply *reply);

/*
 * Every key matching pattern (a Redis glob), from the primary of each slot:
 * SCAN with MATCH on each node that leads slots, keeping the keys of the
 * slots it leads in the map (nodes hold their replicas' keys too). A node
 * that fails is retried once the map says who leads its slots now, until
 * the timeout passes without progress. Keys are handed to cb node by node,
 * in SCAN order (not sorted); cb returning non-zero stops the scan and is
 * returned. A key written, deleted or moved during the scan may be missed,
 * and one on a node that fails mid-scan may be handed over twice.
 * *unassigned (may be NULL) receives the number of slots no node serves.
 * Errors as narf_cli_cluster_call(); NARF_ETIMEOUT when some slots could
 * not be scanned (cl->errmsg: how many, and why).
 */
int narf_cli_cluster_scan(struct narf_cli_cluster *cl,
                          const char *pattern,
                          int (*cb)(void *arg, const char *key, size_t len),
                          void *arg,
                          unsigned *unassigned);

#endif /* NARF_CLI_DATA_H */
