/*
 * The cluster map: the coordinator's replicated state machine, and what every
 * data node routes by.
 *
 * The map holds the epoch, the settings, the coordinators table, every data
 * node ever registered (ids are never reused) and the 16384 hash slots with
 * their primary, replicas, in-sync replicas (ISR), slot epoch and pending
 * move. It changes only through narf_map_apply(), fed with the typed,
 * versioned JSON commands of docs/protocol.md; the coordinator's Raft FSM
 * calls it for every committed entry, so it must be deterministic: the same
 * commands in the same order give byte-identical maps on every member.
 *
 * This module is pure (no I/O, no clock), so tests drive it directly.
 */
#ifndef NARF_MAP_H
#define NARF_MAP_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "errors.h"
#include "slot.h"

#define NARF_MAP_VERSION 1 /* "v" of commands and snapshots */
#define NARF_MAX_COPIES 5  /* replication factor upper bound */
#define NARF_MAX_REPLICAS (NARF_MAX_COPIES - 1)
#define NARF_MAX_COORDS 7
#define NARF_ADDR_SIZE 64    /* "host:port" plus NUL */
#define NARF_BOOT_ID_SIZE 65 /* up to 64 printable characters plus NUL */
#define NARF_ZONE_SIZE 64    /* up to 63 printable characters plus NUL */

enum narf_node_state {
	NARF_NODE_JOINING,
	NARF_NODE_UP,
	NARF_NODE_DOWN,
	NARF_NODE_LEAVING,
	NARF_NODE_REMOVED,
};

enum narf_ack_mode {
	NARF_ACK_ALL,
	NARF_ACK_PRIMARY,
};

/* What becomes of a slot whose primary is marked down with no live
 * in-sync replica. */
enum narf_lost_policy {
	NARF_LOST_EMPTY, /* a live node takes it, empty: a miss beats an error
	                  */
	NARF_LOST_WAIT,  /* it stays unavailable until one of its in-sync
	                    copies (primary included) is up again */
};

struct narf_map_settings {
	unsigned replication;     /* copies per slot, 1..NARF_MAX_COPIES */
	unsigned node_timeout_ms; /* heartbeat silence before "down" */
	enum narf_ack_mode ack;   /* default write-ack mode of data nodes */
	unsigned moves;           /* slot moves in flight while rebalancing */
	/* A write to a slot whose ISR, primary included, has fewer members
	 * is refused with -NOREPLICAS (1..replication; default 1). */
	unsigned min_isr;
	enum narf_lost_policy on_lost; /* default NARF_LOST_EMPTY */
	/* How long the leader keeps a removed node that holds nothing in
	 * the map before it proposes node_forget (0: for ever). */
	unsigned removed_retention_ms;
};

struct narf_map_coord {
	uint64_t id;
	char raft[NARF_ADDR_SIZE];
	char api[NARF_ADDR_SIZE];
};

struct narf_map_node {
	uint32_t id;
	char addr[NARF_ADDR_SIZE];
	char boot_id[NARF_BOOT_ID_SIZE];
	enum narf_node_state state;
	/* The failure domain (datanode --zone): the planner keeps a slot's
	 * copies in distinct zones. "" (a node of an older cluster) is a
	 * zone of its own. Fixed for the incarnation. */
	char zone[NARF_ZONE_SIZE];
	/* The map epoch of the last isr entry that dropped this node from a
	 * primary's ISRs (0: never). An isr add whose sync began before it
	 * (its "since") is refused: see apply_isr. */
	uint64_t isr_dropped;
	/* Derived, not in the JSON: the slots this node leads, replicates,
	 * replicates in the ISR, and is the pending move target of. Kept by
	 * every slot write (map.c, slot_put) and recomputed from the slots
	 * by narf_map_from_json(), so reading them is O(1). */
	unsigned primaries, replicas, in_sync, moves_in;
	/* ... and, derived too, the slots where this node holds the first
	 * of two copies in its zone (so a zone's nodes sum to the slots
	 * keeping two copies in it) */
	unsigned zone_shared;
};

/* One hash slot. Node id 0 means "none". replicas[] excludes the primary;
 * isr[] is a subset of replicas[], kept in the order of replicas[]. move,
 * when set, is a member of isr[]: the primary is handing the slot over to
 * it (writes wait) and a handoff entry will make it primary. */
struct narf_slot {
	uint32_t primary;
	uint32_t move;  /* target node of a pending move, or 0 */
	uint64_t epoch; /* map epoch at which the primary last changed */
	/* Map epoch at which the slot's data began anew: 0 for the first
	 * lineage, else the epoch that lost its last in-sync copy. A node
	 * holding entries of an older lineage drops them (they would bring
	 * back overwritten values and deleted keys). */
	uint64_t born;
	uint8_t n_replicas;
	uint8_t n_isr;
	uint32_t replicas[NARF_MAX_REPLICAS];
	uint32_t isr[NARF_MAX_REPLICAS];
};

/* Derived slot counters (not in the JSON), kept with the per-node counts
 * of struct narf_map_node, for status in O(nodes). */
struct narf_map_counts {
	unsigned assigned; /* slots with a primary */
	unsigned moving;   /* ... with a pending move */
	unsigned syncing;  /* ... with a replica outside the ISR */
	/* assigned slots by in-sync copies, primary included (1 + n_isr) */
	unsigned by_isr[NARF_MAX_COPIES + 1];
	/* assigned slots with two copies in one zone (zone "" shares with
	 * no node) */
	unsigned zone_shared;
};

/*
 * What applied commands changed (narf_map_apply_dirty()): a bitmap of the
 * slots whose content changed, and flags for the rest, so a consumer can
 * touch only those. Accumulates over commands until cleared.
 */
struct narf_map_dirty {
	uint64_t slots[NARF_SLOTS / 64]; /* bit s: slot s changed */
	unsigned n_slots;                /* bits set */
	bool nodes;    /* a node record changed (join, state, isr_dropped) or
	                  left the map (node_forget) */
	bool settings; /* the settings changed */
	bool coords;   /* the coordinators table changed */
};

struct narf_map {
	uint64_t epoch;      /* +1 per applied change */
	uint32_t next_node;  /* id the next joining node receives */
	uint64_t lost_slots; /* slots whose data died with an empty ISR */
	/* Lowest coordinator id never used: a coordinator id, like a node
	 * id, is never reused (coords_set refuses an id below it that is not
	 * in the table), so a removed member can never be mistaken for the
	 * one that replaced it. */
	uint64_t next_coord;
	struct narf_map_settings settings;
	unsigned n_coords;
	struct narf_map_coord coords[NARF_MAX_COORDS];
	unsigned n_nodes;
	unsigned cap_nodes;
	struct narf_map_node *nodes; /* owned; sorted by id */
	/* Write slots only through narf_map_apply(), narf_map_from_json(),
	 * or else call narf_map_recount() afterwards: the counts below and
	 * in nodes[] follow every slot change. */
	struct narf_slot slots[NARF_SLOTS];
	struct narf_map_counts counts; /* derived */
	/* derived: the wrapping sum over slots of a hash of each (0 for an
	 * empty slot), kept by every slot write: narf_map_digest() */
	uint64_t slot_sum;
	/* borrowed: the caller's dirty set, only within
	 * narf_map_apply_dirty() (NULL otherwise) */
	struct narf_map_dirty *dirty;
};

/* What applying one command produced. */
struct narf_map_result {
	int err;       /* 0 or NARF_E* */
	uint32_t node; /* node_join: the node's id */
	bool changed;  /* the map changed (and the epoch moved) */
	char errmsg[NARF_ERRMSG_SIZE];
};

/*
 * Moves in flight unless the settings say otherwise: slots with a pending
 * handoff or a copy syncing at once (narf_plan_step()). Each moving slot
 * holds its writes on the old primary during its handoff and each syncing
 * one streams its entries, so a big rebalance goes in waves of this many
 * slots (a node joining three takes its 8192 copies in eight).
 */
#define NARF_MAP_DEFAULT_MOVES 1024

/* Default removed_retention_ms: ten minutes. */
#define NARF_MAP_DEFAULT_REMOVED_RETENTION_MS 600000

/* Default settings: replication 2, node timeout 600 ms, ack all,
 * NARF_MAP_DEFAULT_MOVES moves in flight, min ISR 1, removed nodes kept
 * NARF_MAP_DEFAULT_REMOVED_RETENTION_MS. */
void narf_map_settings_default(struct narf_map_settings *s);

/*
 * The timing every process derives from the node timeout T (docs/safety.md
 * has the argument). A data node gives up on an unanswered heartbeat after
 * narf_reply_timeout_ms(T) (T/2) and tries another; it serves while
 * its last answered heartbeat was sent less than narf_lease_ms(T) ago (T
 * less a guard for a batch in progress and clock-rate drift); a new leader
 * judges a node only after T + narf_reply_timeout_ms(T) from its election.
 */
unsigned narf_reply_timeout_ms(unsigned node_timeout_ms);
unsigned narf_lease_ms(unsigned node_timeout_ms);

/* The data nodes' heartbeat interval (ms). */
#define NARF_HEARTBEAT_MS 100

/* Is node timeout T safe with Raft election timeout E (ms)? 0, or
 * NARF_EINVAL with the reason in errmsg (NARF_ERRMSG_SIZE bytes): T must
 * be at least 2 E and 4 heartbeat intervals (docs/safety.md). */
int narf_timing_check(unsigned node_timeout_ms,
                      unsigned election_timeout_ms,
                      char *errmsg);

/* An empty map (epoch 0, no nodes, every slot unassigned). */
void narf_map_init(struct narf_map *m, const struct narf_map_settings *s);
void narf_map_close(struct narf_map *m);

/* Deep copy into an initialised dst (whose previous content is freed). */
int narf_map_copy(struct narf_map *dst, const struct narf_map *src);

/*
 * Apply one command (a JSON object, borrowed). Never fails partially: on a
 * rejected command the map is untouched and res->err/errmsg say why. Returns
 * res->err.
 */
int narf_map_apply(struct narf_map *m,
                   const json_t *cmd,
                   struct narf_map_result *res);

/* narf_map_apply() that also adds what the command changed to *dirty
 * (borrowed; not cleared first, so it accumulates over a batch). A
 * rejected command adds nothing. */
int narf_map_apply_dirty(struct narf_map *m,
                         const json_t *cmd,
                         struct narf_map_result *res,
                         struct narf_map_dirty *dirty);

/* Empty a dirty set. */
void narf_map_dirty_clear(struct narf_map_dirty *d);

/* Did slot s change in dirty set d? */
static inline bool narf_map_dirty_slot(const struct narf_map_dirty *d,
                                       unsigned s)
{
	return (d->slots[s / 64] >> (s % 64)) & 1u;
}

/* The map as JSON (docs/protocol.md); a new reference, NULL on ENOMEM. */
json_t *narf_map_to_json(const struct narf_map *m);

/*
 * Replace m's content with the map in obj (borrowed). Validates everything;
 * on error m is untouched and errmsg (NARF_ERRMSG_SIZE, may be NULL) says
 * why.
 */
int narf_map_from_json(struct narf_map *m, const json_t *obj, char *errmsg);

/* Slot ranges of the map as a JSON array, merging equal neighbours; only
 * slots with take[s] set (or all when take is NULL). New reference. */
json_t *narf_map_slots_to_json(const struct narf_slot *slots, const bool *take);

/* Lookup; NULL when absent. The pointer is valid until the next apply. */
struct narf_map_node *narf_map_node_get(const struct narf_map *m, uint32_t id);
const struct narf_map_node *narf_map_node_by_addr(const struct narf_map *m,
                                                  const char *addr);

/* Does node n hold anything: a copy of a slot, or a pending move to it
 * (the derived counts; O(1))? */
static inline bool narf_map_node_holds(const struct narf_map_node *n)
{
	return n->primaries + n->replicas + n->moves_in != 0;
}

/* The slots a node leads and replicates (0, 0 for an unknown id), from
 * the derived counts: O(log nodes). */
void narf_map_node_counts(const struct narf_map *m,
                          uint32_t id,
                          unsigned *primaries,
                          unsigned *replicas);

/*
 * Recompute every derived count (narf_map_counts, the per-node counts)
 * from the slots: for code that wrote m->slots directly (test fixtures),
 * and what narf_map_from_json() does. A slot naming a node the map does
 * not hold is counted in m->counts but on no node. O(slots x copies x
 * log nodes).
 */
void narf_map_recount(struct narf_map *m);

/*
 * A 64-bit digest of everything the map's JSON form holds: maps that
 * encode alike have equal digests, and a difference anywhere (a slot, a
 * node, a setting, a coordinator, the epoch) changes it but for a 2^-64
 * chance. Structural, not of an encoding: the slots enter through
 * m->slot_sum (kept by each slot write), so it costs O(nodes + coords),
 * not O(slots). Coordinators send it in heartbeat replies and ping; a
 * data node compares it with its own map's at the same epoch.
 */
uint64_t narf_map_digest(const struct narf_map *m);

/* Slots held (narf_slot_held) right now: the primaries of down nodes
 * under on_lost wait. O(nodes). */
unsigned narf_map_held_slots(const struct narf_map *m);

/* Validation the API runs before proposing, so malformed requests never
 * reach the log: a boot id of 1..64 printable characters; "host:port"; the
 * settings fields present in obj (errmsg: NARF_ERRMSG_SIZE bytes). */
bool narf_map_valid_boot_id(const char *boot_id);
/* A zone name: 1..63 printable characters, no spaces. */
bool narf_map_valid_zone(const char *zone);
/* Do two nodes share a zone? Never when either zone is "". */
bool narf_map_same_zone(const struct narf_map_node *a,
                        const struct narf_map_node *b);
bool narf_map_valid_addr(const char *addr);
/* The settings as the map, the snapshot and the API show them. */
json_t *narf_map_settings_to_json(const struct narf_map_settings *s);
/* The settings current with the fields present in obj applied, into *out;
 * 0 or NARF_EINVAL (errmsg says which field). */
int narf_map_settings_check(const struct narf_map_settings *current,
                            const json_t *obj,
                            struct narf_map_settings *out,
                            char *errmsg);

/* Slot ranges of a command or request ("add" of isr, "slots" of handoff):
 * an array of at most NARF_SLOTS [lo, hi] pairs with 0 <= lo <= hi <= 16383
 * (empty is valid, overlaps allowed). Sets slots[NARF_SLOTS] to the listed
 * slots. Returns 0 or NARF_EINVAL with errmsg (NARF_ERRMSG_SIZE, may be
 * NULL) saying why, naming field. */
int narf_map_slot_ranges(const json_t *arr,
                         const char *field,
                         bool *slots,
                         char *errmsg);

/* Does slot s hold a copy (primary or replica) on node id? */
bool narf_slot_has(const struct narf_slot *s, uint32_t id);

/* Same primary, replicas, ISR, epoch and move (unused entries ignored). */
/* "empty" / "wait" <-> enum narf_lost_policy: the flag's and the
 * settings' one spelling. parse returns 0 or NARF_EINVAL. */
int narf_lost_policy_parse(const char *name, enum narf_lost_policy *out);
const char *narf_lost_policy_name(enum narf_lost_policy p);

/* Is slot s held (on_lost wait): its primary down, waiting for an in-sync
 * copy to come back? Nobody serves it meanwhile and the planner leaves it
 * alone. */
bool narf_slot_held(const struct narf_map *m, unsigned s);

bool narf_slot_equal(const struct narf_slot *a, const struct narf_slot *b);

/* Number of copies of a slot (primary + replicas). */
unsigned narf_slot_copies(const struct narf_slot *s);

const char *narf_node_state_name(enum narf_node_state st);
int narf_node_state_parse(const char *name, enum narf_node_state *out);

/* Command builders (new references) used by the leader and by tests. */
json_t *narf_cmd_node_join(const char *addr, const char *boot_id);
/* node_join with a zone (NULL or "": none, as narf_cmd_node_join). */
json_t *narf_cmd_node_join_zone(const char *addr,
                                const char *boot_id,
                                const char *zone);
json_t *narf_cmd_node_state(uint32_t node, enum narf_node_state st);
json_t *narf_cmd_leave(uint32_t node, bool if_room);
/* node_forget: a removed node that holds nothing leaves the map. */
json_t *narf_cmd_node_forget(uint32_t node);
json_t *narf_cmd_assign(uint64_t base_epoch,
                        const struct narf_slot *slots,
                        const bool *take);
/*
 * An isr entry: with add (NARF_SLOTS flags, borrowed), add node to the ISR of
 * the flagged slots that primary leads and node replicates (as merged
 * [lo,hi] ranges), when node has not been dropped from an ISR since map
 * epoch `since` (0: no such check); with add NULL, {"drop":true}: remove
 * node from the ISR of every slot primary leads. New reference, NULL on
 * ENOMEM.
 */
json_t *narf_cmd_isr(uint32_t primary,
                     uint32_t node,
                     const bool *add,
                     uint64_t since);
/*
 * A handoff entry: primary has stopped taking writes for the flagged slots
 * (slots: NARF_SLOTS flags, borrowed) that it leads with a pending move, and
 * each move target has acknowledged every write; the target of each such
 * slot becomes its primary (as merged [lo,hi] ranges). New reference, NULL
 * on ENOMEM.
 */
json_t *narf_cmd_handoff(uint32_t primary, const bool *slots);
json_t *narf_cmd_coords_set(const struct narf_map_coord *coords, unsigned n);
json_t *narf_cmd_init(const struct narf_map_coord *coords,
                      unsigned n,
                      const struct narf_map_settings *s);

#endif /* NARF_MAP_H */
