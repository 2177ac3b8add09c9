/*
 * A data node's membership in a cluster: registration with the coordinator,
 * heartbeats to its leader, and the cluster map.
 *
 * One connection to one coordinator at a time, one request in flight on it.
 * The happy path: connect to a coordinator from --join, send `join` (our RESP
 * address and a boot id new for this process) and receive a node id; then
 * every NARF_HEARTBEAT_MS send `heartbeat` with "deltas":1; its reply
 * carries the map entries since our epoch, which we apply (mapsync.h) and
 * renew the lease in the same round trip; when it says "full" (we are too
 * far behind), or carries a newer epoch without deltas (an older
 * coordinator), or the deltas do not fit our map, send `map` and install
 * the reply. isr and handoff replies carry deltas too.
 *
 * Failure modes: `not_leader` moves us to the leader it names (or the next
 * coordinator); a connection error, a reply timeout, `no_quorum` (a leader
 * that cannot prove it still leads) or garbage moves us to the next
 * coordinator (from the map's coordinators table once a map has arrived, so
 * a coordinator replaced at a new address is found); `unknown_node` (we were
 * removed, or the map lost our incarnation) makes us join again.
 *
 * Finding a new leader fast is what keeps a live node from being judged
 * dead by it (docs/safety.md): a heartbeat or map fetch unanswered for
 * narf_reply_timeout_ms() (half the node timeout) is given up and the others
 * asked; a coordinator that closed on us or answered from an old term is
 * "suspect" for two reply timeouts, so followers that still name it as
 * leader do not send us back to it at once; every hop connects and sends at
 * once rather than on the next tick.
 *
 * With --tls-cluster (tls set) every connection to a coordinator is a TLS
 * relay's plaintext end (common/tls_relay.h): the relay connects and runs
 * the TLS handshake within the reply timeout, and the exchange below,
 * the node-key proof first, runs inside the tunnel unchanged.
 *
 * The lease: we serve our slots while the last heartbeat a leader answered
 * was *sent* less than narf_lease_ms() ago on the monotonic clock, read
 * fresh (common/clock.h). Replies from an older Raft term than one already
 * seen, and maps older than ours, are ignored: a deposed leader can neither
 * renew the lease nor roll the map back.
 */
#ifndef NARF_MEMBERSHIP_H
#define NARF_MEMBERSHIP_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/auth.h"
#include "common/frame.h"
#include "common/map.h"
#include "mapsync.h"

#define NARF_MEMBER_MAX_COORDS 7
/* Reply timeout of requests a leader answers after a Raft commit. */
#define NARF_MEMBER_COMMIT_TIMEOUT_MS 1000

struct narf_engine;
struct narf_isr_req;

/* The answer to an `isr` request: ok, and the map epoch carrying it. Not
 * ok with epoch NARF_MEMBER_STALE: the coordinator refused an add as
 * stale (the node left an ISR after the add's `since`). */
#define NARF_MEMBER_STALE UINT64_MAX
typedef void (*narf_member_isr_cb)(void *data,
                                   uint32_t peer,
                                   bool drop,
                                   bool ok,
                                   uint64_t epoch);

enum narf_member_state {
	NARF_MEMBER_IDLE, /* not connected; the timer reconnects */
	NARF_MEMBER_CONNECTING,
	NARF_MEMBER_AUTH,    /* proving the node key (common/auth.h) */
	NARF_MEMBER_JOINING, /* join sent */
	NARF_MEMBER_MEMBER,  /* joined: heartbeats and map fetches */
	NARF_MEMBER_CLOSING,
};

struct narf_member {
	uv_loop_t *loop;            /* borrowed */
	struct narf_engine *engine; /* borrowed: keys, memory for heartbeats */
	/* --join, then the map's coordinators (API addresses) */
	char coords[NARF_MEMBER_MAX_COORDS][NARF_ADDR_SIZE];
	unsigned n_coords;
	unsigned next_coord;            /* round-robin position */
	char target[NARF_ADDR_SIZE];    /* coordinator we talk to */
	char self_addr[NARF_ADDR_SIZE]; /* our RESP address */
	char boot_id[NARF_BOOT_ID_SIZE];
	char zone[NARF_ZONE_SIZE]; /* --zone, or the host's name; "" none */
	uint32_t node_id;          /* 0 until joined */
	/* The map (mapsync.h: twin maps kept current from deltas), and
	 * sync.cur as the rest of the node reads it: borrowed, NULL until
	 * the first map arrives; replaced only by membership.c. */
	struct narf_mapsync sync;
	struct narf_map *map;
	enum narf_member_state state;
	struct narf_auth auth;   /* the exchange, in NARF_MEMBER_AUTH */
	uint64_t auth_logged_ms; /* rate limit of refusal warnings */
	const char *pending;     /* op awaiting a reply, or NULL */
	uint64_t sent_ms;        /* when it was sent (narf_clock_ms) */
	/* The lease (DESIGN.md): send time (narf_clock_ms) of the last
	 * heartbeat the leader answered, once our map is at least as new as
	 * that answer; we serve our slots until it is narf_lease_ms() old. */
	uint64_t lease_ms;
	uint64_t beat_sent_ms; /* the answered beat, while its map is
	                          fetched */
	uint64_t beat_epoch;   /* the epoch that beat's reply named */
	uint64_t term;         /* highest Raft term a heartbeat reply carried */
	/* The coordinator that last failed us (timed out, refused for want
	 * of a quorum, closed), avoided until suspect_until (loop time). */
	char suspect[NARF_ADDR_SIZE];
	uint64_t suspect_until;
	unsigned fast_hops; /* hops made without waiting for the timer */
	bool want_map;      /* fetch the map at the next chance */
	bool want_full;     /* ... whole: deltas were discarded */
	uint64_t beat_at;   /* when the last heartbeat was sent */
	/* the coordinator that last answered a heartbeat (the leader then),
	 * and when (loop time): INFO and metrics show it */
	char leader[NARF_ADDR_SIZE];
	uint64_t leader_seen_ms;
	struct narf_isr_req *isr_head, *isr_tail; /* queued isr requests */
	struct narf_isr_req *isr_pending;         /* the one sent */
	/* on_map: called as a new map is in (old may be NULL; dirty, what
	 * changed from old, NULL: a full install, everything changed;
	 * mapsync.h). map must stay as it is until the next call (the
	 * replication core borrows it; mapsync.c changes only the other
	 * twin meanwhile); a dirty set must name every change from old,
	 * which is the map of the previous call (given an old of another
	 * epoch the core walks every slot, repl_core.h). on_lease: called
	 * when the lease is renewed. */
	void (*on_map)(void *data,
	               const struct narf_map *old,
	               const struct narf_map *map,
	               const struct narf_map_dirty *dirty);
	void (*on_lease)(void *data);
	void *cb_data;
	uv_tcp_t *tcp; /* owned while connected */
	/* --tls-cluster: the client context (borrowed: the narf_dn's), NULL
	 * for plain TCP; the relay dialing (owned until its callback) */
	struct narf_tls *tls;
	struct narf_tls_relay *relay;
	uint64_t tls_logged_ms; /* rate limit of handshake failure warnings */
	struct narf_frame_decoder dec;
	uv_timer_t timer; /* heartbeat and reconnect tick */
	uint64_t maps_installed;
	uint64_t maps_checked; /* map replies, current or not */
	bool removed; /* drained by a leave and removed: no more traffic */
	bool closing;
};

/* Parse "host:port,host:port" into m->coords; 0 or NARF_EINVAL. */
int narf_member_parse_coords(struct narf_member *m, const char *list);

/* Start joining; self_addr is the address peers and clients reach us at. */
int narf_member_start(struct narf_member *m,
                      uv_loop_t *loop,
                      struct narf_engine *engine,
                      const char *self_addr);

/* Queue an `isr` request for peer (ranges: a JSON array of [lo, hi],
 * stolen; NULL with drop; since: the map epoch the add's syncs began at, 0
 * for none). cb hears the answer; a lost connection answers not ok. 0 or
 * NARF_ENOMEM. */
int narf_member_isr(struct narf_member *m,
                    uint32_t peer,
                    bool drop,
                    json_t *ranges,
                    uint64_t since,
                    narf_member_isr_cb cb,
                    void *data);

/* Queue a `handoff` request: this node has stopped writes to the slots in
 * ranges (stolen) and their move targets have acknowledged everything; cb
 * hears the answer (peer 0). */
int narf_member_handoff(struct narf_member *m,
                        json_t *ranges,
                        narf_member_isr_cb cb,
                        void *data);

/* Queue a `leave` of this node "if_room" (the other nodes up can hold
 * every slot's copies); cb hears the answer (peer 0, not ok when refused,
 * e.g. no_room, or when the connection failed). */
int narf_member_leave(struct narf_member *m, narf_member_isr_cb cb, void *data);
/* Fetch the map as soon as the connection is free (a peer showed a newer
 * slot epoch than ours). */
void narf_member_want_map(struct narf_member *m);

/* May this node serve its slots at time now (the lease)? now must be read
 * fresh with narf_clock_ms(), never a loop time cached before a stall. */
bool narf_member_lease_ok(const struct narf_member *m, uint64_t now);

/* Milliseconds the lease has left at narf_clock_ms() now (0 when lapsed). */
uint64_t narf_member_lease_left_ms(const struct narf_member *m, uint64_t now);

/* The coordinator leader's API address as this node knows it: the one
 * that answered a heartbeat within the node timeout (the map's; 1 s
 * before the first map), or NULL. */
const char *narf_member_leader(const struct narf_member *m, uint64_t now);

/* Stop: close the connection and the timer (asynchronous; the loop ends
 * once they are closed). */
void narf_member_stop(struct narf_member *m);

#endif /* NARF_MEMBERSHIP_H */
