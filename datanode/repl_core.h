/*
 * The replication core: every decision of the write path between data
 * nodes, without sockets, timers or the store. It is to repl*.c what
 * canonical/raft's core is to its libuv I/O: events go in (a map was
 * installed, a link came up, failed or acknowledged, a coordinator
 * request was answered, time passed), actions come out (open or fail a
 * link, ask the coordinator to drop or add ISR members or take a handoff,
 * drop a slot's entries, wake the clients). repl.c, repl_link.c and
 * repl_sync.c carry the actions out and feed the events in; the unit tests
 * (tests/unit/test_repl_core.c) drive the core with a simulated clock and
 * network.
 *
 * What it owns:
 * - per slot: whether this node leads it, hands it off (writes wait), is
 *   being synced a copy of it, the map epoch it was lost at, the epoch
 *   high-water mark of the fence and the map epoch of the last sync to us;
 * - per peer (struct narf_rpeer): the replication link's state and
 *   counters (incarnation, commands sent, acks), the slot sets (forwarded,
 *   counted for acks, wanted for a sync, joined, handed off), and its three
 *   coordinator requests (ISR drop, ISR add, handoff), each an explicit
 *   state (enum narf_rreq_state);
 * - the gates that held client replies wait behind (struct narf_gate).
 *
 * Time is whatever the caller passes as `now` (ms, monotonic); the core
 * never reads a clock. Nothing here blocks, allocates per write, or calls
 * out: actions queue in the core and the caller takes them with
 * narf_rcore_next_action() until it returns false (carrying one out may
 * feed events that queue more).
 */
#ifndef NARF_DATANODE_REPL_CORE_H
#define NARF_DATANODE_REPL_CORE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/map.h"

#define NARF_RC_WORDS (NARF_SLOTS / 64)
#define NARF_ISR_ADD_MS 50 /* isr adds to one peer, at most one per this */
#define NARF_LINK_RETRY_MS 100

/* --- gates ----------------------------------------------------------------
 * What a held batch of replies waits for: per peer, the sequence number on
 * one incarnation of its replication link. */
struct narf_need {
	uint32_t peer; /* node id */
	uint32_t gen;  /* link incarnation */
	uint64_t seq;  /* UINT64_MAX: only an excuse releases it */
};

#define NARF_GATE_SLOTS 8
struct narf_gate {
	uint64_t epoch; /* this node's map epoch when the batch ran */
	unsigned n, cap;
	struct narf_need *need; /* owned */
	/* the slots written, or `many` when more than NARF_GATE_SLOTS */
	uint16_t slots[NARF_GATE_SLOTS];
	uint8_t n_slots;
	bool many;
};

void narf_gate_clear(struct narf_gate *g);
/* Add src's needs to dst (the oldest epoch wins). */
void narf_gate_merge(struct narf_gate *dst, const struct narf_gate *src);
void narf_gate_close(struct narf_gate *g);

/* --- peers ---------------------------------------------------------------- */

/* The replication link to a peer, as the core sees it. */
enum narf_rlink_state {
	NARF_RLINK_DOWN,       /* none */
	NARF_RLINK_CONNECTING, /* opened; commands queue until it is up */
	NARF_RLINK_UP,
	/* A command could not be queued (out of memory): acks count by
	 * position, so a later ack would cover the missing command. Nothing
	 * more is sent; the next step fails the link. */
	NARF_RLINK_BROKEN,
};

/* One request to the coordinator about a peer. */
enum narf_rreq_state {
	NARF_RREQ_IDLE,   /* nothing to ask */
	NARF_RREQ_WANTED, /* to ask (again): the last one failed */
	NARF_RREQ_ASKED,  /* out, no answer yet */
	/* taken at `epoch`; over once our map is that new */
	NARF_RREQ_TAKEN,
};

struct narf_rreq {
	enum narf_rreq_state state;
	uint64_t epoch; /* TAKEN: the map epoch that carries it */
	uint64_t ms;    /* when it was last asked */
};

struct narf_rjoin {
	uint16_t slot;
	uint64_t seq; /* NARF.SYNCED's sequence number */
};

struct narf_rpeer {
	uint32_t id;
	void *io; /* the I/O layer's own state for this peer */
	/* the replication link */
	enum narf_rlink_state link;
	uint32_t gen;         /* its incarnation: needs name it */
	uint64_t sent, acked; /* commands queued and replies received */
	uint64_t progress_ms; /* last ack, or when acks became due */
	uint64_t failed_ms;   /* last failure, for the retry delay */
	/* Slot sets. fwd: the slot's writes go to the peer (it holds the
	 * whole slot, or is being sent it). counts: its acks count for
	 * clients (in the slot's ISR, or synced by us and asked into it).
	 * want: to be synced to it. ready: synced and acknowledged, to be
	 * asked into the ISR; asked: in the add request out now. handoff:
	 * our slots it is to lead (writes to them stopped). */
	uint64_t fwd[NARF_RC_WORDS], counts[NARF_RC_WORDS];
	uint64_t want[NARF_RC_WORDS], ready[NARF_RC_WORDS];
	uint64_t asked[NARF_RC_WORDS], handoff[NARF_RC_WORDS];
	unsigned n_counts, n_handoff;
	struct narf_rjoin *joins; /* synced slots awaiting NARF.SYNCED's ack */
	/* per slot, our map epoch when its last sync to the peer was sent
	 * (NARF_SLOTS entries, made with the first sync) */
	uint64_t *sync_at;
	/* the add out: its slots' syncs began at this epoch or later, and it
	 * says so ("since", see apply_isr in common/map.c) */
	uint64_t add_since;
	unsigned n_joins, cap_joins;
	struct narf_rreq drop; /* out of the ISR of every slot we lead */
	struct narf_rreq add;  /* `asked` into the ISR */
	struct narf_rreq hand; /* `handoff` slots to the peer */
	uint64_t handoff_seq;  /* what it must ack before we report */
	uint64_t handoff_ms;   /* when writes to the first slot stopped */
	uint64_t synced;       /* slots synced to it, ever */
	/* want, ready or handoff may hold slots: the step looks (it runs
	 * every loop iteration, so it must not scan 16384 bits for
	 * nothing) */
	bool work;
	/* a slot synced before the peer last left an ISR (slot_rule):
	 * the map installed next fails the link, for a fresh one */
	bool stale;
	/* A sync left open (narf_rcore_sync_open): open_slot was sent whole
	 * but for big collections whose transfers (the I/O's) go on over
	 * the next loop iterations. Its writes are forwarded, its acks do
	 * not count, and its NARF.SYNCED (narf_rcore_synced) waits for the
	 * transfers. At most one per peer; a link failure or the slot's
	 * fwd bit clearing ends it (the slot is then wanted again or no
	 * longer ours). */
	bool open;
	uint16_t open_slot;
	/* a link was opened since the last map: that map's slot rules
	 * forward our slots it is in the ISR of (a dirty walk looks at
	 * every slot we lead for it) */
	bool relinked;
};

/* --- actions -------------------------------------------------------------- */

enum narf_ract_kind {
	NARF_RACT_OPEN_LINK,  /* open the replication link to peer */
	NARF_RACT_FAIL_LINK,  /* close it; then call narf_rcore_link_failed */
	NARF_RACT_CLOSE_LINK, /* close it: idle (no failure) */
	NARF_RACT_ASK_DROP, /* isr drop of peer; answer: narf_rcore_isr_reply */
	NARF_RACT_ASK_ADD,  /* isr add of peer->asked; answer: ditto */
	NARF_RACT_HANDOFF,  /* handoff of `slots`; narf_rcore_handoff_reply */
	/* drop slot's entries (if any): its lineage ended, or the copy is
	 * not ours */
	NARF_RACT_DROP_SLOT,
	NARF_RACT_WANT_MAP, /* fetch the cluster map now */
	/* node `node` left the map (node_forget) and the core forgot its
	 * peer (already freed: `peer` is NULL): the I/O frees its own */
	NARF_RACT_FORGET_PEER,
	NARF_RACT_PROGRESS, /* gates may have opened: look at the clients */
};

struct narf_ract {
	enum narf_ract_kind kind;
	struct narf_rpeer *peer; /* OPEN/FAIL/CLOSE_LINK, ASK_*, HANDOFF */
	unsigned slot;           /* DROP_SLOT */
	uint32_t node;           /* FORGET_PEER */
	const char *why;         /* FAIL_LINK, DROP_SLOT: for the log */
	/* HANDOFF: the slots (owned by the action: the caller frees it after
	 * use with free()); NULL for other kinds */
	uint64_t *slots;
};

/* --- the core ------------------------------------------------------------- */

struct narf_rcore {
	uint32_t me;                     /* our node id (0 before we joined) */
	uint64_t epoch;                  /* our map's epoch (0: none yet) */
	unsigned node_timeout_ms;        /* the map's, or 0 */
	bool leaving;                    /* our node is leaving or removed */
	uint64_t lead[NARF_RC_WORDS];    /* slots we lead, per our map */
	uint64_t handing[NARF_RC_WORDS]; /* ... of which we hand off */
	uint64_t syncing[NARF_RC_WORDS]; /* replica slots synced to us */
	/* the map of the last narf_rcore_map (borrowed: the caller keeps it
	 * until the next one), or NULL */
	const struct narf_map *map;
	uint64_t *lost_at;    /* per slot: map epoch at which we lost it */
	uint64_t *sync_epoch; /* per slot: sender's map epoch of the last
	                         NARF.SYNC to us */
	uint64_t *hwm;        /* per slot: the fence's high-water mark */
	struct narf_rpeer **peers;
	unsigned n_peers, cap_peers;
	/* the batch in progress */
	bool in_batch;
	bool applying; /* a peer's stream message: not ours to stream */
	struct narf_gate batch;
	/* actions not yet taken, oldest first */
	struct narf_ract *acts;
	unsigned n_acts, head_act, cap_acts;
	bool progress_queued;
	/* per sender: newest inbound connection that carried its stream */
	struct {
		uint32_t node;
		uint64_t conn;
	} * in_links;
	unsigned n_in_links, cap_in_links;
	uint64_t stale_links; /* stream messages refused on superseded links */
	uint64_t acks;        /* replies on replication links */
};

/* NULL without memory. */
struct narf_rcore *narf_rcore_create(void);
void narf_rcore_destroy(struct narf_rcore *rc);

/* Take the oldest queued action into *a; false when none is left. */
bool narf_rcore_next_action(struct narf_rcore *rc, struct narf_ract *a);

/* The peer with node id, or NULL; narf_rcore_peer_get creates it (NULL
 * without memory). */
struct narf_rpeer *narf_rcore_peer(const struct narf_rcore *rc, uint32_t id);
struct narf_rpeer *narf_rcore_peer_get(struct narf_rcore *rc, uint32_t id);

/* --- events --------------------------------------------------------------- */

/*
 * A map was installed (old: the one before it, or NULL); map is borrowed
 * until the next call. A map older than the core's (a rollback) is
 * ignored: returns false. `me` is our node id. dirty (borrowed, may be
 * NULL: everything changed) says what changed from old to map: only its
 * slots are walked, and the node lists only when dirty->nodes; it is
 * ignored (a full walk) unless old is the map of the previous call and me
 * is the same. Either way the core ends in the same state: what the full
 * walk would change in other slots (a sync to us ending with the epoch, a
 * peer whose isr_dropped moved) is found from its own bit sets.
 */
bool narf_rcore_map(struct narf_rcore *rc,
                    uint32_t me,
                    const struct narf_map *old,
                    const struct narf_map *map,
                    const struct narf_map_dirty *dirty,
                    uint64_t now);

/*
 * The replication link. The core decides to open and close links (the
 * OPEN_LINK, FAIL_LINK and CLOSE_LINK actions: its own state has changed
 * when it queues them); the I/O reports what it observes: the link is up,
 * a command was queued on it (ok false: it could not be, the link is
 * broken), n acks came, or it failed (also an OPEN_LINK that could not
 * even start). gen names the incarnation the report is about: a report on
 * an older one is ignored.
 */
void narf_rcore_link_up(struct narf_rcore *rc, struct narf_rpeer *p);
static inline bool narf_rcore_link_usable(const struct narf_rpeer *p)
{
	return p->link == NARF_RLINK_CONNECTING || p->link == NARF_RLINK_UP;
}
void narf_rcore_link_queued(struct narf_rcore *rc,
                            struct narf_rpeer *p,
                            bool ok,
                            uint64_t now);
void narf_rcore_link_acked(struct narf_rcore *rc,
                           struct narf_rpeer *p,
                           uint64_t n,
                           uint64_t now);
void narf_rcore_link_failed(struct narf_rcore *rc,
                            struct narf_rpeer *p,
                            uint32_t gen,
                            uint64_t now);

/* The coordinator's answer to an ISR request about peer (drop or add):
 * ok with the map epoch of its entry, or failed (also when it could not
 * be sent). An add refused as stale (epoch NARF_RREQ_STALE: the peer
 * left an ISR after the link's syncs began) fails the link: the peer is
 * synced again over a new one. Likewise a handoff's: ok and the epoch of
 * the entry. */
#define NARF_RREQ_STALE UINT64_MAX
void narf_rcore_isr_reply(struct narf_rcore *rc,
                          uint32_t peer,
                          bool drop,
                          bool ok,
                          uint64_t epoch,
                          uint64_t now);
void narf_rcore_handoff_reply(struct narf_rcore *rc,
                              struct narf_rpeer *p,
                              bool ok,
                              uint64_t epoch);

/* A change to a key of slot s: is it ours to stream (we lead s and it is
 * not a peer's message we apply)? Then, per peer: should it go to p? When
 * it should, the caller queues it (narf_rcore_link_queued says how that
 * went); whatever the answer, it then calls narf_rcore_wrote, which
 * records what the batch in progress must wait for. */
bool narf_rcore_streams(const struct narf_rcore *rc, unsigned slot);
bool narf_rcore_forwards(const struct narf_rcore *rc,
                         const struct narf_rpeer *p,
                         unsigned slot);
void narf_rcore_wrote(struct narf_rcore *rc,
                      struct narf_rpeer *p,
                      unsigned slot,
                      bool queued);

/* Syncs: the next slot to sync to p (-1: none, or no memory to track
 * it; the open slot while there is one), and how it went (ok: the SYNC
 * marker, every entry and the SYNCED marker were queued; seq is the
 * SYNCED's sequence number). A slot whose entries were all queued but for
 * transfers still going on is left open in between: its writes go to p
 * from then on, its acks do not count yet and nothing joins. */
int narf_rcore_sync_next(struct narf_rcore *rc, struct narf_rpeer *p);
void narf_rcore_sync_open(struct narf_rcore *rc,
                          struct narf_rpeer *p,
                          unsigned slot);
void narf_rcore_synced(struct narf_rcore *rc,
                       struct narf_rpeer *p,
                       unsigned slot,
                       bool ok,
                       uint64_t seq);

/* Every loop iteration: broken links fail, acknowledged syncs join, adds
 * and handoffs that are due are asked; p->work says which peers still
 * have slots to sync, join or hand off. */
void narf_rcore_step(struct narf_rcore *rc, uint64_t now);

/* The cron: acks that lag past the node timeout fail their link, failed
 * drops are asked again, links are (re)opened (to nodes up, joining or
 * leaving in our map) or closed when idle, and the peer of a node that
 * left the map is forgotten once nothing of ours is in flight to it
 * (FORGET_PEER). */
void narf_rcore_tick(struct narf_rcore *rc, uint64_t now);

/* A peer sent us, as primary of a slot we lead at a newer epoch, writes
 * we refused: it leaves our ISRs and is synced again. */
void narf_rcore_diverged(struct narf_rcore *rc, uint32_t peer, uint64_t now);

/* --- batches and gates ---------------------------------------------------- */

void narf_rcore_batch_begin(struct narf_rcore *rc);
/* Moves what the batch needs into gate (merging); false when nothing
 * must be waited for. */
bool narf_rcore_batch_end(struct narf_rcore *rc, struct narf_gate *gate);
/* Is everything gate waits for acknowledged or excused? When it never
 * will be (a slot lost since, or an excuse that left a slot below
 * min_isr), *broken is set. */
bool narf_rcore_gate_open(const struct narf_rcore *rc,
                          const struct narf_gate *gate,
                          bool *broken);
/* How many peers have acknowledged what gate needs (WAIT's answer). */
unsigned narf_rcore_gate_acked(const struct narf_rcore *rc,
                               const struct narf_gate *gate);

/* --- the replica side ------------------------------------------------------
 */

enum narf_fence { NARF_FENCE_APPLY, NARF_FENCE_NEWER, NARF_FENCE_STALE };
/* The fence's decision: *hwm is the slot's high-water mark (raised to
 * epoch when the message applies), map_epoch the slot epoch in our map
 * (0 without one), we_lead whether our map makes us its primary. STALE:
 * below the mark, or our own epoch as primary. NEWER: applies, and our
 * map is behind (fetch it). */
enum narf_fence narf_fence_check(uint64_t *hwm,
                                 uint64_t map_epoch,
                                 bool we_lead,
                                 uint64_t epoch);
/* narf_fence_check on the core's mark for slot s, against our map;
 * NEWER queues WANT_MAP when we have a map. */
enum narf_fence narf_rcore_accept(struct narf_rcore *rc,
                                  unsigned slot,
                                  uint64_t epoch);
/* See narf_repl_stream_conn (repl.h). */
bool narf_rcore_stream_conn(struct narf_rcore *rc,
                            uint32_t sender,
                            uint64_t conn);
/* NARF.SYNC (under the sender's map_epoch) / NARF.SYNCED for slot s. */
void narf_rcore_sync_begin(struct narf_rcore *rc,
                           unsigned slot,
                           uint64_t map_epoch);
void narf_rcore_sync_end(struct narf_rcore *rc, unsigned slot);
/* May our map's lack of a copy of slot s drop its entries? Not while it
 * is older than the map the last sync to us was sent under. */
bool narf_rcore_may_drop(const struct narf_rcore *rc,
                         const struct narf_map *map,
                         unsigned s);
/* Does a change of slot s come from a peer's stream (not ours to
 * stream)? Set around applying one. */
void narf_rcore_applying(struct narf_rcore *rc, bool on);

static inline bool narf_rc_bit(const uint64_t *set, unsigned s)
{
	return (set[s / 64] >> (s % 64)) & 1u;
}

static inline bool narf_rcore_leads(const struct narf_rcore *rc, unsigned s)
{
	return narf_rc_bit(rc->lead, s);
}

unsigned narf_rc_count(const uint64_t *set);

#endif
