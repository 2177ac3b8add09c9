/*
 * The coordinator process: one Raft member of the trio that owns the cluster
 * map, plus the JSON API data nodes and cachecli talk to.
 *
 * One libuv loop drives everything: libraft's I/O, the API connections
 * (api.c), and one cron timer (leader.c) that polls the Raft role and, on the
 * leader, takes the membership decisions. State that must survive a leader
 * change lives in the replicated map; the leader's heartbeat table is soft
 * state rebuilt from the next heartbeats.
 */
#ifndef NARF_COORD_H
#define NARF_COORD_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "common/auth.h"
#include "common/buf.h"
#include "common/httpd.h"
#include "common/map.h"
#include "common/tls.h"
#include "planner.h"
#include "raftnode.h"

#ifndef container_of
#define container_of(ptr, type, member) \
	((type *)((char *)(ptr)-offsetof(type, member)))
#endif

#define NARF_COORD_CRON_MS 50
#define NARF_COORD_IDLE_MS 30000

struct narf_coord_config {
	uint64_t id;
	const char *data_dir;                           /* borrowed (argv) */
	struct narf_map_coord members[NARF_MAX_COORDS]; /* --members */
	unsigned n_members;
	/* this member: points into members, or at self_entry with --join */
	const struct narf_map_coord *self; /* borrowed */
	struct narf_map_coord self_entry;  /* --id, --raft, --api */
	const char *join; /* borrowed (argv): --join API addresses, or NULL */
	struct narf_map_settings settings; /* of a brand-new map */
	unsigned election_timeout_ms;
	unsigned heartbeat_timeout_ms;
	/* --delta-ring-entries, --delta-ring-mb (0: raftnode.h's defaults) */
	unsigned ring_entries;
	size_t ring_bytes;
	const char *metrics_addr; /* --metrics, borrowed (argv), or NULL */
	/* --cluster-secret-file: every role's key (common/auth.h); the
	 * secret itself is not kept */
	struct narf_auth_keys keys;
	const char *secret_file; /* borrowed (argv): read again on SIGHUP */
	/* --tls-cluster yes: the Raft and API ports take TLS only (mutual:
	 * callers present a certificate from --tls-ca-cert-file), and this
	 * member dials the others (Raft, the removal probe) over TLS with the
	 * same certificate. Both contexts are reloaded on SIGHUP. */
	bool tls;
	struct narf_tls tls_server; /* accepts: client certificates required */
	struct narf_tls tls_client; /* dials: the CA verifies the server */
};

/* What the leader knows of a node between heartbeats (not replicated). */
struct narf_hb {
	uint32_t node;
	uint64_t last_seen_ms; /* loop time of the last heartbeat or join */
	uint64_t beats;        /* heartbeats (not joins) seen */
	uint64_t keys;
	uint64_t used_memory;
	uint64_t down_ms; /* loop time this leader marked it down, or 0 */
	unsigned down_primaries; /* slots it led then (they failed over) */
	/* loop time this leader first saw it removed and holding nothing,
	 * or 0: node_forget once removed_retention_ms has passed */
	uint64_t removed_ms;
};

/* hbtab.c: the leader's struct narf_hb per node, an open-addressing table
 * keyed by node id (O(1) lookup and insert, grown by doubling). Pointers
 * into it are valid until the next get or remove. */
struct narf_hbtab {
	struct narf_hb *hb; /* owned: cap entries, node 0 when free */
	unsigned n;         /* entries in use */
	unsigned cap;       /* 0 or a power of two */
};
struct narf_hb *narf_hbtab_find(const struct narf_hbtab *t, uint32_t node);
/* The node's entry, made (zeroed but for node) when absent; NULL without
 * memory or for node 0. */
struct narf_hb *narf_hbtab_get(struct narf_hbtab *t, uint32_t node);
void narf_hbtab_remove(struct narf_hbtab *t, uint32_t node);
/* Iterate: *pos from 0; NULL after the last entry. No get or remove
 * meanwhile. */
struct narf_hb *narf_hbtab_next(const struct narf_hbtab *t, unsigned *pos);
void narf_hbtab_clear(struct narf_hbtab *t);
void narf_hbtab_close(struct narf_hbtab *t);

/* Kinds of leader decisions, counted for /metrics. */
enum narf_decision {
	NARF_DECISION_INIT,
	NARF_DECISION_NODE_DOWN, /* a failover: its primaries promoted */
	NARF_DECISION_NODE_UP,
	NARF_DECISION_NODE_REMOVED,
	NARF_DECISION_ASSIGN,      /* a rebalancing step */
	NARF_DECISION_NODE_FORGET, /* a removed node leaves the map */
	NARF_DECISION_COUNT,
};
extern const char *const narf_decision_names[NARF_DECISION_COUNT];

struct narf_leader {
	uint64_t since_ms;     /* loop time this member became leader, or 0 */
	uint64_t last_tick_ms; /* loop time of the previous cron tick */
	struct narf_hbtab hb;  /* owned: what heartbeats told, by node */
	bool proposing;        /* a leader-initiated entry is in flight */
	/* Epoch at which planning found nothing to commit (the map is
	 * balanced, or every change waits for copies to sync), or 0. */
	uint64_t idle_epoch;
	/* rebalance progress for status: slots still differing from the
	 * balanced layout at the last plan, and the most since the map was
	 * last balanced (0, 0 when balanced) */
	unsigned plan_remaining, plan_total;
	/* map epoch the last plan was made for (0: none since this member
	 * became leader); status is "planning" while it is not the map's */
	uint64_t plan_epoch;
	/* the decision in flight, and decisions this member applied as
	 * leader (counts survive role changes) */
	enum narf_decision pending_kind;
	unsigned pending_slots; /* node_down: primaries it fails over */
	uint32_t pending_node;  /* node_forget: the node */
	uint64_t decisions[NARF_DECISION_COUNT];
	uint64_t failover_slots;
	struct narf_slot *target; /* owned: NARF_SLOTS entries, the plan */
	struct narf_plan_cache plan_cache; /* what target was planned for */
	struct narf_slot *step; /* owned scratch: NARF_SLOTS entries */
};

/* Coordinator membership (members.c): what drives the Raft configuration
 * towards the map's coordinators table, and how a removed member notices. */
struct narf_members {
	bool proposing;       /* a coords_set from the API is in flight */
	bool was_changing;    /* a Raft change was in flight at the last tick */
	bool was_leader;      /* this member led at the last tick */
	uint64_t retry_at_ms; /* after a failure, no new change before */
	char step[160];       /* what the leader does or waits for, or "" */
	/* The table as the cron last saw it, and since when (loop time). */
	struct narf_map_coord table[NARF_MAX_COORDS];
	unsigned n_table;
	uint64_t table_ms;
	bool seen_self;    /* this member was in the applied table once */
	bool unlisted;     /* ... and is not any more */
	uint64_t alone_ms; /* since when no leader is known, or 0 */
	/* removal.c: asking the cluster whether this member was removed */
	struct narf_probe *probe; /* owned: the one in flight, or NULL */
	uint64_t probe_ms;        /* when the last one started */
	unsigned probe_next;      /* round-robin position */
	unsigned probe_hops;      /* not_leader redirects followed */
	char probe_target[NARF_ADDR_SIZE];
	bool removed; /* a leader confirmed it: stop at the next tick */
};

struct narf_conn;

/* API requests by op, for /metrics ("other": an unknown or missing op). */
#define NARF_API_OPS 14
extern const char *const narf_api_op_names[NARF_API_OPS];

struct narf_coord {
	uv_loop_t loop;
	struct narf_coord_config cfg;
	struct narf_raftnode rn;
	struct narf_leader leader;
	struct narf_members members;
	uv_tcp_t listener;
	struct narf_conn *conns; /* owned; doubly linked */
	uv_timer_t cron;
	uv_signal_t sigterm;
	uv_signal_t sigint;
	uv_signal_t sighup; /* reloads --cluster-secret-file, TLS files */
	bool closing;
	uint64_t api_requests[NARF_API_OPS];
	/* heartbeats refused for want of a fresh majority proof */
	uint64_t lease_refusals;
	/* API connections refused for a failed or missing proof, and the
	 * rate limit of their log lines */
	uint64_t auth_failures;
	unsigned api_conns;   /* open API connections */
	unsigned api_unauth;  /* of which not yet authenticated */
	uint64_t api_refused; /* connections closed at a cap */
	uint64_t api_refused_logged_ms;
	uint64_t auth_fail_logged_ms;
	uint64_t auth_fail_quiet;
	/* API connections whose TLS handshake failed (--tls-cluster), and
	 * the rate limit of their log lines */
	uint64_t tls_failures;
	uint64_t tls_fail_logged_ms;
	uint64_t tls_fail_quiet;
	uint64_t lease_refusal_logged_ms;
	int64_t start_ms;          /* wall clock at start, ms */
	struct narf_httpd metrics; /* GET /metrics, with --metrics */
	/* The full map's reply line for map epoch full_epoch, encoded once
	 * and shared by every write that sends it (api.c, full_map()); a
	 * write in flight holds its own reference after the epoch moves. */
	struct narf_blob *full; /* owned reference, or NULL */
	uint64_t full_epoch;
	/* narf_map_digest() of the map at digest_epoch, in hex ("" until
	 * the first): heartbeat replies and ping */
	char digest[17];
	uint64_t digest_epoch;
	/* Map traffic, for /metrics: bytes of entries sent as deltas, bytes
	 * of full map replies sent, full encodes made. */
	uint64_t map_delta_bytes;
	uint64_t map_full_bytes;
	uint64_t map_full_encodes;
};

/* metrics.c: the /metrics handler (data = the narf_coord) */
int narf_coord_metrics_handler(void *data,
                               const char *path,
                               struct narf_buf *body,
                               const char **content_type);

/* api.c */
int narf_api_listen(struct narf_coord *c, char *errmsg);
void narf_api_close(struct narf_coord *c);
unsigned narf_api_connections(const struct narf_coord *c);

/* What the reply to a proposed request carries once its entry applied:
 * join the node id, settings the settings, coordinator changes the
 * coordinators table, the others only the epoch. */
enum narf_api_pending {
	NARF_API_PENDING_EPOCH,
	NARF_API_PENDING_JOIN,
	NARF_API_PENDING_SETTINGS,
	NARF_API_PENDING_COORDS,
};

/*
 * One request (req, borrowed) from a connection that proved role, checked
 * and answered against c's map and Raft state as docs/protocol.md says,
 * without the connection: returns the reply (a new reference; NULL only
 * without memory); or NULL with *raw set to the reply line as bytes (a
 * reference the caller owns: a heartbeat or isr or handoff reply with map
 * deltas, a full map); or NULL with *cmd set to the map command to propose
 * (a new reference) and *kind to what its reply will carry. Proposes
 * nothing itself: api.c proposes *cmd for the connection, and the unit
 * tests and tests/fuzz/fuzz_api.c look at it. A coordinator change's *cmd
 * leaves c->members.proposing set until narf_members_proposed().
 */
json_t *narf_api_request(struct narf_coord *c,
                         enum narf_auth_role role,
                         const json_t *req,
                         json_t **cmd,
                         enum narf_api_pending *kind,
                         struct narf_blob **raw);

/*
 * The reply line head + tail + "}\n", where head is a reply's fixed part
 * without its closing brace (head_len bytes, borrowed) and tail brings a
 * node whose map is at epoch have to c's map (docs/protocol.md, "Map
 * deltas"): nothing when have is current, ,"from":have+1,"deltas":[...]
 * with the ring's entries verbatim, or ,"full":true when the ring no
 * longer holds have + 1 or the entries would exceed
 * min(NARF_API_DELTA_MAX, half the full map). A new reference; NULL
 * without memory. Heartbeat, isr and handoff replies to a caller that
 * sent "deltas":1 are built with it.
 */
#define NARF_API_DELTA_MAX (256u << 10)
struct narf_blob *narf_api_delta_reply(struct narf_coord *c,
                                       const char *head,
                                       size_t head_len,
                                       uint64_t have);

/* leader.c */
int narf_leader_init(struct narf_leader *l);
void narf_leader_close(struct narf_leader *l);
void narf_leader_cron(struct narf_coord *c);
/* Start the cron timer (every NARF_COORD_CRON_MS) that runs the above. */
void narf_leader_start_cron(struct narf_coord *c);
/* Record a node's liveness (heartbeat or join) at loop time now. */
int narf_leader_seen(struct narf_coord *c,
                     uint32_t node,
                     bool beat,
                     uint64_t keys,
                     uint64_t used_memory);
const struct narf_hb *narf_leader_hb(const struct narf_coord *c, uint32_t node);
/* The status object of docs/protocol.md; a new reference. */
json_t *narf_leader_status(struct narf_coord *c);
/* status's rebalance.remaining (slots still to change; between planning
 * rounds at least what the counts show must move), with its planning and
 * balanced flags. O(nodes). */
unsigned narf_leader_remaining(const struct narf_coord *c,
                               bool *planning,
                               bool *balanced);
/* API address of the current leader as this member knows it, or NULL. */
const char *narf_coord_leader_api(const struct narf_coord *c);

/* members.c */
/* Every cron tick, any role: on the ready leader, take the next step that
 * brings the Raft configuration to the map's coordinators table; on any
 * member, notice a removal (removal.c). */
void narf_members_cron(struct narf_coord *c);
/* API ops coords, coord_add, coord_remove, coord_replace on the ready
 * leader: an immediate reply (a new reference), or NULL with *cmd set to a
 * coords_set entry to propose (a new reference); the proposer calls
 * narf_members_proposed() when it has applied or failed. */
json_t *narf_members_request(struct narf_coord *c,
                             const char *op,
                             const json_t *req,
                             json_t **cmd);
void narf_members_proposed(struct narf_coord *c);
/* Close what members.c holds open (a probe), as the member stops. */
void narf_members_close(struct narf_coord *c);

/* removal.c, from narf_members_cron(): a member that was in the table and
 * has known no leader for a while asks the cluster whether it was removed
 * (libraft never tells it), and stops once a leader confirms it. */
void narf_members_removal_cron(struct narf_coord *c, uint64_t now);
/* The map's coordinators table as JSON (a new reference). */
json_t *narf_members_table_json(const struct narf_coord *c);

/* main.c: stop the member as SIGTERM does (exit status 0). */
void narf_coord_stop(struct narf_coord *c, const char *why);

#endif /* NARF_COORD_H */
