/*
 * The coordinator's one Raft member: every libraft call of the project lives
 * in raftnode.c and its transport (transport.c), so a switch to another Raft
 * library (cowsql/raft) touches those two files.
 *
 * A raftnode owns the libraft instance with its libuv I/O backend and
 * narf's own transport (transport.h: every connection proves the cluster
 * secret before libraft reads a byte), and the replicated state machine: the
 * cluster map. Callers propose map commands (docs/protocol.md) with
 * narf_raftnode_propose(); when the entry commits, the FSM applies it to the
 * map and the proposer's callback receives the map's verdict. Followers apply
 * the same entries.
 *
 * libraft 0.15 facts honoured here (DESIGN.md): payloads padded to 8 bytes,
 * pre-vote on, short election/heartbeat timeouts, a 2 s install-snapshot
 * timeout, a fast connect retry, small segments, a bounded apply window, and
 * no state-change callback (narf_raftnode_poll() runs from the cron).
 *
 * Membership changes (docs/coordinators.md): the leader adds a member as a
 * spare, promotes it to voter (libraft lets it catch up first) and removes
 * members, one change at a time, and hands leadership over. Whoever drives
 * them reads the configuration again after every change instead of
 * trusting its outcome: in 0.15 a change can commit although its callback
 * reported a failure, and a removed member is never told.
 */
#ifndef NARF_RAFTNODE_H
#define NARF_RAFTNODE_H

#include <raft.h>
#include <raft/uv.h>
#include <stdbool.h>
#include <uv.h>

#include "common/auth.h"
#include "common/map.h"
#include "common/map_ring.h"
#include "transport.h"

struct narf_raftnode_config {
	uint64_t id;
	const char *data_dir;  /* borrowed */
	const char *raft_addr; /* borrowed; this member's Raft address */
	/* borrowed, must outlive the member: the coordinator role's key,
	 * which every Raft connection proves (transport.h) */
	const struct narf_auth_keys *keys;
	const struct narf_map_coord *members; /* borrowed; bootstrap voters */
	unsigned n_members;
	unsigned election_timeout_ms;
	unsigned heartbeat_timeout_ms;
	/* Joining an existing cluster: never bootstrap; a pristine data dir
	 * waits for the leader to add this member and send it the log. */
	bool join;
	/* --tls-cluster yes: borrowed, must outlive the member; NULL for
	 * plain TCP (transport.h) */
	struct narf_tls *tls_server;
	struct narf_tls *tls_client;
	/* The delta ring's bounds (common/map_ring.h; 0: the defaults,
	 * NARF_RING_DEFAULT_ENTRIES and NARF_RING_DEFAULT_BYTES) */
	unsigned ring_entries;
	size_t ring_bytes;
};

/* Defaults of coord --delta-ring-entries and --delta-ring-mb: an assign
 * of 1,024 moving slots, the largest ordinary entry, is ~80 KB. */
#define NARF_RING_DEFAULT_ENTRIES 4096
#define NARF_RING_DEFAULT_BYTES ((size_t)16 << 20)

/* A member's role in the Raft configuration. */
enum narf_raft_role {
	NARF_RAFT_ABSENT, /* not in the configuration */
	NARF_RAFT_SPARE,  /* in it, receives nothing, votes not */
	NARF_RAFT_STANDBY,
	NARF_RAFT_VOTER,
};

/* One server of the Raft configuration as this member knows it. */
struct narf_raft_member {
	uint64_t id;
	char raft[NARF_ADDR_SIZE];
	enum narf_raft_role role;
};

enum narf_raft_change {
	NARF_RAFT_ADD,     /* add as a spare */
	NARF_RAFT_PROMOTE, /* make a voter once caught up */
	NARF_RAFT_REMOVE,
};

/* Last time the leader heard from a member (see narf_raftnode_contact). */
struct narf_raft_contact {
	uint64_t id;
	uint64_t last_ms;
};

/* Called once per proposal: err is 0 when the entry committed and applied
 * (res then holds the map's verdict, which may itself be an error), or
 * NARF_ENOTLEADER / NARF_EBUSY / NARF_ENOMEM when it never applied. res is
 * only valid during the call. */
typedef void (*narf_propose_cb)(void *data,
                                int err,
                                const struct narf_map_result *res);

struct proposal;

struct narf_raftnode {
	struct raft raft;
	struct raft_io io;
	struct narf_transport transport; /* authenticates every peer */
	struct raft_fsm fsm;
	struct narf_map *map; /* owned; the replicated state */
	/* The entries that moved the map's epoch, newest last (fsm_apply()
	 * pushes, fsm_restore() resets): what heartbeat replies send as
	 * deltas (docs/protocol.md). On every member, so a new leader has
	 * them at once. */
	struct narf_ring ring;
	struct narf_map_result last_result; /* of the entry being applied */
	unsigned inflight;     /* proposals awaiting their callback */
	struct proposal *done; /* owned: finished, not yet delivered */
	struct proposal *done_tail;
	uv_check_t done_check; /* delivers done proposals after libraft */
	unsigned window;       /* at most this many in flight */
	int role;              /* RAFT_* state seen by the last poll */
	raft_term ready_term;  /* term whose barrier has applied, or 0 */
	bool barrier_pending;
	struct raft_barrier barrier;
	/* The proof that this member still leads (docs/safety.md): a
	 * barrier proposed at barrier_sent_ms (narf_clock_ms) in
	 * barrier_term; once it commits, a majority had our term at a time
	 * no earlier than that, so no other leader can be elected before
	 * proof_ms + the election timeout. */
	uint64_t barrier_sent_ms;
	raft_term barrier_term;
	uint64_t proof_ms;
	raft_term proof_term;
	uint64_t barriers;                   /* committed, for metrics */
	uint64_t barrier_ms, barrier_max_ms; /* last and worst round trip */
	/* Log index of the last command (map entry) the FSM applied: the
	 * "applied" that members compare. Barriers, which the leader appends
	 * every cron tick, do not move it; kept in snapshots. */
	uint64_t cmd_applied;
	uint64_t cmd_count; /* commands this process's FSM applied */
	/* Membership: one change or transfer of ours at a time. */
	struct raft_change change;
	bool change_pending;
	char change_what[96]; /* "add 4 at 127.0.0.1:7104", for logs */
	char change_errmsg[NARF_ERRMSG_SIZE]; /* last failure, or "" */
	struct raft_transfer transfer;
	bool transfer_pending;
	uint64_t leader_since_ms; /* io time this member became leader */
	struct narf_raft_contact contact[NARF_MAX_COORDS + 2];
	unsigned n_contact;
	void (*close_cb)(struct narf_raftnode *rn);
	/* Closing: no new proposals; drain_timer waits (at most
	 * NARF_RAFT_DRAIN_MS from drain_start_ms) for the ones in flight
	 * before raft_close() (raftnode.c, narf_raftnode_close()). */
	bool stopping;
	uv_timer_t drain_timer;
	uint64_t drain_start_ms;
	char errmsg[NARF_ERRMSG_SIZE];
};

/* Initialise and start the member: bootstraps the configuration when the
 * data dir is pristine, otherwise recovers from it. rn must stay at a fixed
 * address until closed. Returns 0 or NARF_E*, with rn->errmsg set. */
int narf_raftnode_start(struct narf_raftnode *rn,
                        uv_loop_t *loop,
                        const struct narf_raftnode_config *cfg);

/* Stop: new proposals fail with NARF_ENOTLEADER at once; those in flight
 * (and the leader's barrier or membership change) get up to
 * NARF_RAFT_DRAIN_MS to commit, then the rest fail with NARF_ENOTLEADER,
 * Raft closes and cb fires. */
void narf_raftnode_close(struct narf_raftnode *rn,
                         void (*cb)(struct narf_raftnode *rn));

/* Propose one map command (borrowed JSON). Returns NARF_ENOTLEADER,
 * NARF_EBUSY or NARF_ENOMEM without calling cb, or 0 and calls cb later,
 * never from inside a libraft callback. reserve: apply-window slots to leave
 * free (clients pass NARF_RAFT_CLIENT_RESERVE so they can never starve the
 * leader's own decisions, which pass 0). */
#define NARF_RAFT_CLIENT_RESERVE 2
int narf_raftnode_propose(struct narf_raftnode *rn,
                          const json_t *cmd,
                          unsigned reserve,
                          narf_propose_cb cb,
                          void *data);

/* Track role changes; on becoming leader, append a barrier so the map is
 * current before the leader serves it, and then one more whenever the last
 * has committed (the majority proof of narf_raftnode_leads()). Returns true
 * when the role changed. */
bool narf_raftnode_poll(struct narf_raftnode *rn);

/* May this member, at fresh monotonic time now_ms, renew a data node's
 * lease? True while it is the ready leader, is not handing leadership over,
 * and a barrier of its term proposed less than half an election timeout
 * plus slack_ms before now_ms has committed: no other leader was elected
 * before that barrier's proposal plus an election timeout, and a new leader
 * judges nodes only slack_ms after its election (docs/safety.md, "The
 * coordinator's proof"). *age_ms (may be NULL) gets the proof's age, or
 * UINT64_MAX without one. */
bool narf_raftnode_leads(const struct narf_raftnode *rn,
                         uint64_t now_ms,
                         uint64_t slack_ms,
                         uint64_t *age_ms);

bool narf_raftnode_is_leader(const struct narf_raftnode *rn);

/* Leader whose barrier of the current term has applied (its map is
 * current) and that is not handing leadership over. */
bool narf_raftnode_is_ready(const struct narf_raftnode *rn);

const char *narf_raftnode_role_name(const struct narf_raftnode *rn);
uint64_t narf_raftnode_term(const struct narf_raftnode *rn);
/* Log index of the last map command applied (barriers do not count). */
uint64_t narf_raftnode_applied(const struct narf_raftnode *rn);
/* Highest entry known committed, and the last entry in the log. */
uint64_t narf_raftnode_commit_index(const struct narf_raftnode *rn);
uint64_t narf_raftnode_last_index(const struct narf_raftnode *rn);

/* The leader's id as this member knows it, or 0. */
uint64_t narf_raftnode_leader_id(const struct narf_raftnode *rn);

/* Seen from a leader: did member id answer within an election timeout? */
bool narf_raftnode_member_reachable(const struct narf_raftnode *rn,
                                    uint64_t id);

/* This member's id and Raft address. */
uint64_t narf_raftnode_id(const struct narf_raftnode *rn);

/* The configuration as this member knows it: the latest one appended to
 * its log, committed or not. Copies at most max servers into out and
 * returns how many there are. */
unsigned narf_raftnode_members(const struct narf_raftnode *rn,
                               struct narf_raft_member *out,
                               unsigned max);

/* Role of member id in that configuration. */
enum narf_raft_role narf_raftnode_role_of(const struct narf_raftnode *rn,
                                          uint64_t id);

const char *narf_raft_role_name(enum narf_raft_role role);

/* Is a configuration change or a leadership transfer in flight (ours, or
 * an uncommitted one a previous leader left in the log)? No other change
 * may start meanwhile. */
bool narf_raftnode_changing(const struct narf_raftnode *rn);

/*
 * Start one configuration change on the leader: add id at raft_addr as a
 * spare (raft_addr is only read for NARF_RAFT_ADD), promote id to voter
 * (libraft first brings its log up to date in catch-up rounds and gives up
 * after a few seconds without progress), or remove id. Returns 0, with the
 * outcome logged when it is known (a failure also lands in
 * rn->change_errmsg), or NARF_ENOTLEADER, NARF_ECHANGING (one is in
 * flight), NARF_EINVAL (no such member, already in that role) or
 * NARF_EINTERNAL, with rn->errmsg saying why.
 */
int narf_raftnode_change(struct narf_raftnode *rn,
                         enum narf_raft_change kind,
                         uint64_t id,
                         const char *raft_addr);

/* Hand leadership to voter id (the leader steps down once id has caught
 * up and started an election). 0 or NARF_E* with rn->errmsg. */
int narf_raftnode_transfer(struct narf_raftnode *rn, uint64_t id);

/* Seen from a leader: true when member id has answered since this member
 * became leader, with *age_ms the time since it last did; false with
 * *age_ms the time since this member became leader otherwise. Updated by
 * narf_raftnode_poll(). */
bool narf_raftnode_contact(const struct narf_raftnode *rn,
                           uint64_t id,
                           uint64_t *age_ms);

#endif /* NARF_RAFTNODE_H */
