/*
 * Replication, slot sync and proxying between data nodes.
 *
 * Every data node keeps, per peer node, up to two outbound connections on the
 * peer's RESP port ("links"): a replication link that carries this node's
 * write stream for the slots it leads and the peer replicates, and a proxy
 * link that carries client requests this node forwards to the peer. Both
 * open with NARF.AUTH, where each side proves the node key to the other
 * (peer_auth.h), and are pipelined: replies come back in order.
 *
 * The write stream. The store calls narf_repl_store_write() after every
 * change; when this node leads the slot, the change goes to every peer that
 * holds the slot as full state: NARF.SET <slot epoch> <key> <value> <pxat>
 * or NARF.DEL <slot epoch> <key>. A replica applies it and answers +OK, so
 * the n-th reply on a link acknowledges the n-th command and all before it.
 * Resending full state (never "INCR by 1") makes the stream idempotent and
 * needs no command semantics on the replica.
 *
 * Acknowledgement. While a client's batch of requests runs, every change it
 * makes records, per peer whose acks count for the slot (the map's ISR, and
 * replicas this node synced and has asked to join the ISR), the sequence
 * number that peer must acknowledge. The server holds the batch's replies
 * until each such peer has acknowledged or is excused: its link failed and
 * the coordinator has applied an entry that drops it from the ISR of every
 * slot this node leads (DESIGN.md: only the coordinator changes an ISR, so
 * any ISR member has every acknowledged write). A node that loses a slot
 * while replies wait closes those clients: it can no longer promise them.
 *
 * Sync. A replica outside the ISR of a slot this node leads is sent the slot
 * whole, in one go from the loop thread: NARF.SYNC <slot> <epoch> (the
 * replica empties the slot), a NARF.SET per entry, NARF.SYNCED. From then on
 * the slot's live writes go to it too, on the same ordered link, so no
 * version numbers are needed: the last message about a key is always the
 * primary's state of it. When the replica has acknowledged NARF.SYNCED, this
 * node asks the coordinator to add it to the ISR (`isr add`); its acks count
 * from the moment NARF.SYNCED is sent. Slots go one at a time, about
 * NARF_SYNC_SLICE bytes per loop iteration (clients are served between
 * slices) while the link has under NARF_SYNC_HIGH_WATER bytes queued and
 * under NARF_SYNC_INFLIGHT commands unacknowledged, so a sync never holds
 * a second copy of the node's data in memory, and a live write's ack waits
 * behind a few milliseconds of sync data at most, not behind megabytes of
 * it in socket buffers.
 *
 * Fencing. Every message carries the slot epoch (the map epoch at which the
 * slot's primary last changed); a replica refuses a message older than the
 * highest slot epoch it has seen for the slot (in its maps or in any
 * stream), or for a slot it leads itself, with -STALE, and the sender
 * treats its link as failed.
 *
 * Applying. A replica that cannot apply a message (out of memory: replicas
 * never evict) answers -NOTAPPLIED; the sender treats its link as failed
 * too, so an error reply is never counted as an ack. The store's slots this
 * node does not lead are replica slots (narf_store_set_replica): nothing
 * there expires or is evicted locally; the primary's expiries and
 * evictions arrive as NARF.DEL.
 */
#ifndef NARF_REPL_H
#define NARF_REPL_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/auth.h"
#include "common/buf.h"
#include "common/map.h"
#include "common/store.h"
#include "repl_core.h"

#define NARF_SYNC_HIGH_WATER (4u << 20)
/* Sync commands the peer may have unacknowledged: the live writes share
 * the link, so this bounds how long their acks queue behind sync data. */
#define NARF_SYNC_INFLIGHT 4096
#define NARF_SYNC_SLICE (256u << 10) /* sync bytes per loop iteration */
/* A whole collection travels in slices of at most this many elements or
 * about this many bytes (NARF.CLOAD, then NARF.CAPPEND). */
#define NARF_CLOAD_SLICE_ELEMS 1024
#define NARF_CLOAD_SLICE_BYTES (64 * 1024)
/* A sync sends a collection of more elements than this, in an encoding it
 * can walk while it changes, a slice per step (repl_xfer.c). */
#define NARF_XFER_MIN_ELEMS 128
#define NARF_REAP_BUDGET 2000 /* dropped entries freed per loop iteration */

struct narf_repl;
struct narf_peer;
struct narf_member;

/* A forwarded request. `done` gets the reply bytes (one whole RESP reply),
 * or an error reply when the link fails; it is not called once
 * narf_repl_proxy_cancel() has run. */
typedef void (*narf_proxy_done)(void *data, const char *reply, size_t len);
struct narf_proxy;

/* Create the state (engine store callbacks are registered by the caller). */
struct narf_repl *narf_repl_create(uv_loop_t *loop,
                                   struct narf_store *store,
                                   struct narf_member *member);
void narf_repl_destroy(struct narf_repl *r);
/* Close every link (asynchronously). */
void narf_repl_stop(struct narf_repl *r);

/* Pace syncs to at most bytes_per_s (0: as fast as the links take them):
 * a new copy fills more slowly but the node keeps serving its clients. */
void narf_repl_set_sync_rate(struct narf_repl *r, uint64_t bytes_per_s);
/* The keys links prove the node role with in NARF.AUTH (borrowed: the
 * engine config's; must hold the node key). */
void narf_repl_set_keys(struct narf_repl *r, const struct narf_auth_keys *keys);
/* --tls-cluster yes: links dial peers through a TLS relay
 * (common/tls_relay.h) on this client context (borrowed: the narf_dn's),
 * NARF.AUTH then running inside the tunnel. NULL (the default): plain
 * TCP. */
struct narf_tls;
void narf_repl_set_tls(struct narf_repl *r, struct narf_tls *tls);

/*
 * A collection command's effect (docs/datatypes-plan.md, section 3): send
 * NARF.<OP> <slot epoch> <key> <count> <args...> to every peer the slot's
 * writes go to, counted for the acknowledgement gate as a store write is.
 * argv[1] is filled with the slot epoch here (the caller leaves room).
 * Nothing is sent when this node does not stream the slot. Returns 0.
 */
int narf_repl_effect(struct narf_repl *r,
                     unsigned slot,
                     int argc,
                     const char **argv,
                     size_t *argvlen);

/* The store's callbacks (data = the repl). */
void narf_repl_store_write(void *data,
                           unsigned slot,
                           const char *key,
                           size_t klen,
                           const struct narf_entry *e);
void narf_repl_store_removed(void *data,
                             unsigned slot,
                             const char *key,
                             size_t klen,
                             enum narf_store_reason why);

/* A new map was installed (old may be NULL). dirty (borrowed; NULL:
 * everything changed) says what changed from old: only those slots are
 * looked at (the cron's sweep looks at all of them about every second),
 * and the peers' addresses only when dirty->nodes. */
void narf_repl_map_changed(struct narf_repl *r,
                           const struct narf_map *old,
                           const struct narf_map *map,
                           const struct narf_map_dirty *dirty);

/* Does this node lead slot s (per its map)? Replica in sync for it? */
bool narf_repl_leads(const struct narf_repl *r, unsigned slot);
bool narf_repl_replica_ready(const struct narf_repl *r, unsigned slot);
/* Is a slot we lead being handed to its move target (writes wait)? */
bool narf_repl_handing_off(const struct narf_repl *r, unsigned slot);

/* Batches: between begin and end, changes record what they need; end moves
 * that into gate (merging) and says whether anything must be waited for. */
void narf_repl_batch_begin(struct narf_repl *r);
bool narf_repl_batch_end(struct narf_repl *r, struct narf_gate *gate);
/* Is everything gate waits for acknowledged or excused? When the node
 * lost a slot since the gate's epoch and it is not, *broken is set. */
bool narf_repl_gate_open(const struct narf_repl *r,
                         const struct narf_gate *gate,
                         bool *broken);
/* How many peers have acknowledged what gate needs (WAIT's answer). */
unsigned narf_repl_gate_acked(const struct narf_repl *r,
                              const struct narf_gate *gate);

/* Called whenever gates may have opened (acks, excuses, lost slots). */
void narf_repl_set_progress_cb(struct narf_repl *r,
                               void (*cb)(void *data),
                               void *data);

/* A client's request to forward (argv borrowed for the call): its
 * protocol, 2 or 3, and for a blocking pop a token (0: none) and the ms
 * it may wait (0: forever). A plain RESP2 request goes bare, as the
 * client sent it; the others as NARF.REQ <resp> <token> <ms> <argv..>,
 * which the owner runs with the client's protocol (docs/protocol.md,
 * "Proxying"). */
struct narf_proxy_req {
	int argc;
	const char *const *argv;
	const size_t *argvlen;
	uint8_t resp;
	uint64_t token;
	uint64_t ms;
};

/* What `done` gets, as the reply, when the link failed or its peer went
 * silent: -TRYAGAIN. Compared by address: a blocking pop's forwarder
 * routes the request again rather than tell its client. */
extern const char narf_repl_proxy_lost[];

/* Forward a request to node `node`; NULL when it cannot be queued. A
 * blocking pop's (token != 0) `done` is called once with its real reply:
 * the owner's +NARF.BLOCKED parks it on the link until the push frame
 * that carries the reply comes. */
struct narf_proxy *narf_repl_proxy(struct narf_repl *r,
                                   uint32_t node,
                                   const struct narf_proxy_req *req,
                                   narf_proxy_done done,
                                   void *data);
/* done is not called any more. For a blocking pop not answered yet, the
 * owner is told (NARF.UNBLOCK <token>) so it pops nothing for nobody. */
void narf_repl_proxy_cancel(struct narf_proxy *px);

/* The replica side of the stream, for the NARF.* commands: may a message
 * for slot s with slot epoch `epoch` be applied here? No when the epoch is
 * below the slot's high-water mark (the highest slot epoch seen in our
 * maps and in accepted messages), or is our own as the slot's primary.
 * Yes raises the mark to epoch. sender is the peer's node id. */
bool narf_repl_accept(struct narf_repl *r,
                      uint32_t sender,
                      unsigned slot,
                      uint64_t epoch);
/* May a stream message (NARF.SET/DEL/SYNC/SYNCED) from sender, read on our
 * inbound connection conn (its client id: ids grow with each accepted
 * connection), be looked at? No when a newer connection from the same
 * sender has already carried stream messages: a primary has one
 * replication link to us at a time and opens a new one only after giving
 * up on the old one (and syncing its slots to us again over the new one),
 * so whatever still comes over an older one is what TCP kept retransmitting
 * after the primary closed it (a partition: the packets arrive once it
 * heals), older than the sync and the writes that followed. Yes records
 * conn as the sender's newest stream connection (forgotten once the
 * sender is no longer in our map). */
bool narf_repl_stream_conn(struct narf_repl *r, uint32_t sender, uint64_t conn);
/* The slot's epoch high-water mark (INFO, tests). */
uint64_t narf_repl_epoch_hwm(const struct narf_repl *r, unsigned slot);
/* A peer sent us, as primary of a slot we lead at a newer epoch, writes we
 * refused: its copies may hold writes ours lack, so it leaves our ISRs and
 * is synced again. */
void narf_repl_diverged(struct narf_repl *r, uint32_t peer);

/* Is this node leaving the cluster (or removed)? Clients are then sent
 * -MOVED rather than forwarded, so cluster clients stop using it before
 * it stops. */
bool narf_repl_leaving(const struct narf_repl *r);

/* Around applying a peer's stream message: the change is not streamed on
 * (this node's map may still say it leads the slot) nor waited for. */
void narf_repl_applying(struct narf_repl *r, bool on);

/* Fetch the cluster map now (a peer's map and ours disagree). */
void narf_repl_refresh_map(struct narf_repl *r);
/* How many map replies (current or new) have arrived so far. */
uint64_t narf_repl_map_checks(const struct narf_repl *r);

/* NARF.SYNC (sent under the sender's map_epoch, 0 if not given) /
 * NARF.SYNCED received for slot s. */
void narf_repl_sync_begin(struct narf_repl *r,
                          unsigned slot,
                          uint64_t map_epoch);
void narf_repl_sync_end(struct narf_repl *r, unsigned slot);

/* Periodic work (the server's cron): lag checks, reconnects, ISR
 * requests. */
void narf_repl_cron(struct narf_repl *r);

/* INFO's replication section. */
void narf_repl_info(const struct narf_repl *r, struct narf_buf *out);

/* Counters and gauges for /metrics. */
struct narf_repl_stats {
	unsigned slots_led;
	unsigned slots_syncing_here; /* replica slots being synced to us */
	uint64_t stream_msgs;        /* write-stream and sync commands sent */
	uint64_t stream_bytes;       /* ... and their bytes */
	uint64_t acks;               /* replies to them */
	uint64_t proxied;            /* requests forwarded to other nodes */
	unsigned n_peers;
};
struct narf_repl_peer_stats {
	uint32_t id;
	const char *addr;     /* borrowed, valid until the next map change */
	bool link_up;         /* the replication link is connected */
	uint64_t sent, acked; /* on the current replication link */
	uint64_t lag_ms; /* age of the oldest unacknowledged command, or 0 */
	unsigned fwd_slots, isr_slots, syncing_slots;
	uint64_t synced; /* slots synced to the peer, ever */
	uint64_t proxy_sent, proxy_answered; /* on the current proxy link */
};
void narf_repl_stats(const struct narf_repl *r, struct narf_repl_stats *out);
/* Peer i, i < out->n_peers of narf_repl_stats(). */
void narf_repl_peer_stats(const struct narf_repl *r,
                          unsigned i,
                          struct narf_repl_peer_stats *out);

#endif /* NARF_REPL_H */
