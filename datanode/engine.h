/*
 * The data node's command engine: Redis 7.0 string and keyspace commands
 * over the store, with Redis's replies and error strings.
 *
 * The engine knows nothing of sockets or libuv. The server (server.c) hands
 * it one parsed request at a time with the client's state and an output
 * buffer, and writes the buffer out after a whole read's worth of requests,
 * so a pipeline of 16 costs one write. Tests drive narf_engine_exec()
 * directly with a fake clock.
 *
 * Command implementations live in cmd_string.c (the string family),
 * cmd_hash.c (hashes), cmd_set.c and cmd_setalg.c (sets), cmd_zset.c and
 * cmd_zrange.c (sorted sets), cmd_keys.c (keyspace) and cmd_server.c
 * (connection, server and cluster commands); the table and dispatch are
 * in engine.c.
 */
#ifndef NARF_ENGINE_H
#define NARF_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/auth.h"
#include "common/buf.h"
#include "common/map.h"
#include "common/resp.h"
#include "common/coll.h"
#include "common/store.h"
#include "common/users.h"
#include "blocking.h"

#define NARF_REDIS_VERSION "7.0.0" /* what INFO and HELLO claim */
#define NARF_CLIENT_NAME_MAX 256

struct narf_member;
struct narf_command;

struct narf_engine_config {
	int port;
	const char *bind; /* borrowed */
	size_t max_key_size;
	struct narf_resp_limits limits; /* max_bulk is also the value limit */
	unsigned max_clients;
	uint64_t max_query_buffer;
	uint64_t idle_timeout_ms; /* 0 = never */
	uint64_t max_memory;
	enum narf_eviction eviction;
	/* encodings' thresholds (CONFIG SET changes them at run time) */
	struct narf_coll_limits coll_limits;
	char *requirepass; /* owned; NULL = no password */
	/* --cluster-secret-file: the node role's key (the cluster secret's,
	 * or a node key; common/auth.h); required with --join. Peer links
	 * prove it both ways in NARF.AUTH; without it the node takes none. */
	struct narf_auth_keys keys;
	/* --users-file: users with passwords and permissions
	 * (common/users.h); owned, emptied by narf_engine_close() */
	struct narf_users users;
	/* the files behind requirepass, keys and users (borrowed: argv), or
	 * NULL: read again on SIGHUP (narf_engine_reload_credentials) */
	const char *requirepass_file;
	const char *secret_file;
	const char *users_file;
	/* --max-peer-links: proven peer links, and connections beyond
	 * max_clients waiting to prove the node role (the peer reserve; see
	 * narf_engine_admit) */
	unsigned max_peer_links;
	bool standalone;
	bool standalone_flag; /* --standalone given explicitly */
	bool redirect;        /* --redirect: -MOVED instead of proxying */
	bool protected_mode;  /* --protected-mode yes (the default); see
	                         narf_engine_protected() */
	/* The store's hash and random seed (16 bytes, borrowed), or NULL
	 * for random ones: tests that run two engines in step give both the
	 * same, so hash order and random picks agree. */
	const uint8_t *seed;
};

/* Size of the command lookup table: per-command counters are kept by
 * table position (see narf_engine_command_at()). */
#define NARF_CMD_SLOTS 1024

struct narf_engine_stats {
	uint64_t commands;
	uint64_t unknown_commands;
	/* runs per command, by table position (a request put off,
	 * NARF_EXEC_RETRY, counts once, when it runs; a forwarded one counts
	 * here too) */
	uint64_t calls[NARF_CMD_SLOTS];
	uint64_t connections;
	uint64_t rejected_connections;
	uint64_t hits;
	uint64_t misses;
	uint64_t net_input_bytes;
	uint64_t net_output_bytes;
	uint64_t auth_failures; /* AUTH and HELLO AUTH refused (WRONGPASS) */
	/* TLS handshakes that failed on --tls-port (a plain-text client, a
	 * bad, expired or missing client certificate, ...) */
	uint64_t tls_handshake_failures;
	uint64_t peer_auth_failures; /* NARF.AUTH refused (connection closed) */
};

/*
 * One WARN line at most every NARF_RATELOG_MS for one kind of client event
 * (a failed AUTH, a protected-mode denial): a client guessing passwords in
 * a loop must not flood the log. The events in between are counted, and
 * the next line (or narf_engine_cron, when no event comes) reports them.
 * Lines name the client's address, never what it sent.
 */
#define NARF_RATELOG_MS 1000

struct narf_ratelog {
	const char *what;    /* "AUTH failed" */
	int64_t last_ms;     /* when the last line was written, or 0 */
	uint64_t suppressed; /* events since then, not logged yet */
	char last_addr[64];  /* the newest of them */
};

/*
 * The connection budget a connection counts against. Peer links have
 * their own, so that clients filling --max-clients cannot shut
 * replication and proxying out:
 *
 * - a new connection is a client while fewer than max_clients are open;
 * - beyond that it enters the peer reserve while proven peers and
 *   reserve connections together number fewer than max_peer_links (else
 *   it is refused, as Redis refuses it, "-ERR max number of clients
 *   reached"). A reserve connection may send NARF.AUTH and nothing else:
 *   any other command gets that same error and the connection closes, and
 *   so does one that has not proven the node role within
 *   NARF_PEER_AUTH_DEADLINE_MS (server.c's cron). A client beyond
 *   --max-clients thus still sees Redis's error, on its first command
 *   rather than at once;
 * - a connection that proves the node role (in either budget) counts as
 *   a peer link from then on, and frees its client place.
 *
 * Only the wait for NARF.AUTH can be squatted by strangers (for at most
 * the deadline each), and only within the reserve.
 */
enum narf_budget {
	NARF_BUDGET_NONE = 0, /* not counted (tests) */
	NARF_BUDGET_CLIENT,   /* one of --max-clients */
	NARF_BUDGET_RESERVE,  /* the peer reserve: NARF.AUTH only */
	NARF_BUDGET_PEER,     /* a proven peer link: --max-peer-links */
};

#define NARF_PEER_AUTH_DEADLINE_MS 2000
#define NARF_DEFAULT_MAX_PEER_LINKS 256

/* Per-connection state the commands see. */
struct narf_client {
	uint64_t id;
	/* The protocol of its replies, 2 or 3: HELLO switches it (reply.h
	 * writes what differs). A peer link never says HELLO: 2. */
	uint8_t resp;
	bool authenticated;
	enum narf_perm perm;    /* what it may run once authenticated */
	bool close_after_reply; /* QUIT, or a fatal error reply */
	char name[NARF_CLIENT_NAME_MAX];
	char addr[64];
	uint64_t created_ms;
	bool readonly;    /* READONLY: in-sync replicas may answer reads */
	bool ack_primary; /* ACKMODE PRIMARY: replies do not wait */
	bool ack_set;     /* ACKMODE given; else the map's default rules */
	enum narf_budget budget; /* what it counts against */
	/* NARF.AUTH (cmd_cluster.c): peer is set once the connection proved
	 * the node role as node peer_node; peer_challenged while the first
	 * step is answered and the proof (checked against peer_auth) is
	 * due. */
	bool peer;
	bool peer_challenged;
	bool loopback; /* connected from 127.0.0.0/8 (set by the server;
	                  false until it is: protected mode holds it) */
	uint32_t peer_node;
	struct narf_auth peer_auth;
	uint64_t peer_map_checks; /* map replies seen when a peer's request
	                             was first put off for a map refresh */
	long long wait_replicas;  /* WAIT's arguments */
	long long wait_timeout_ms;
	/* What a blocking command that returned NARF_EXEC_BLOCK waits for
	 * (narf_block_wait): a value of block_type at one of the keys
	 * argv[block_first..block_last] (counted at block_numkeys_at, or
	 * 0), for block_ms (0: forever). */
	enum narf_type block_type;
	int block_first, block_last, block_numkeys_at;
	uint64_t block_ms;
	/* A peer's NARF.REQ whose blocking pop returned NARF_EXEC_BLOCK
	 * (cmd_cluster.c): the token its reply goes out under, the ms it may
	 * wait (0: forever), and its protocol; req_token is 0 otherwise. The
	 * pop's argv is the request's from its 5th argument on. */
	uint64_t req_token, req_ms;
	uint8_t req_resp;
};

/* Requests narf_engine_prefetch() looks ahead at. */
#define NARF_PREFETCH_MAX 16

/* A key with its slot and store hash (narf_key_ref()). */
struct narf_keyref {
	const char *key;
	size_t len;
	unsigned slot;
	uint64_t h;
};

struct narf_engine {
	struct narf_store *store; /* owned */
	/* The requests narf_engine_prefetch() parsed ahead in pf_client's
	 * input, pf[pf_next..pf_n) not yet taken (narf_engine_prefetch_take()),
	 * under the parser limits pf_lim */
	struct narf_pf_req {
		struct narf_resp_req req; /* owned */
		size_t off;               /* where it starts in the input */
		const char *name;         /* its argv[0] */
		int cmd_pos;              /* its command's table position, -1 */
		struct narf_keyref k;     /* its first key; k.key NULL: none */
	} pf[NARF_PREFETCH_MAX];
	/* pf_taken: the entry taken last, while pf_take_live: its command
	 * and key are the next narf_engine_exec()'s (once) */
	unsigned pf_n, pf_next, pf_taken;
	bool pf_take_live;
	const struct narf_client *pf_client;
	struct narf_resp_limits pf_lim;
	/* The running request's argument 1 as a key (narf_key_ref()), while
	 * kref_live (inside narf_engine_exec()); its slot and hash once
	 * kref_done */
	struct narf_keyref kref;
	bool kref_live, kref_done;
	struct narf_engine_config cfg;
	struct narf_engine_stats stats;
	int64_t (*clock)(void *data); /* ms since the epoch */
	int64_t now_cached; /* set by the server for one batch, or 0 */
	/* borrowed: the cluster map holder of a node that joined a cluster
	 * (*cluster_map is NULL until the first map arrives), or NULL */
	struct narf_map *const *cluster_map;
	const uint32_t *cluster_node_id; /* borrowed: our id, 0 before join */
	/* borrowed: the membership of a node that joined a cluster (INFO
	 * cluster: coordinator, lease), or NULL */
	const struct narf_member *member;
	struct narf_repl *repl; /* borrowed: replication, in a cluster */
	bool lease_ok;       /* set by the server per batch: may serve slots */
	uint32_t proxy_node; /* NARF_EXEC_PROXY: where the request goes */
	bool proxy_blocking; /* ... and it is a blocking pop (fwd_block.c) */
	void *clock_data;
	int64_t start_ms;
	uint64_t next_client_id;
	unsigned connected_clients; /* counted against max_clients */
	unsigned peer_links;        /* proven peers (max_peer_links) */
	unsigned peer_pending;      /* in the reserve (max_peer_links) */
	char run_id[41];
	/* cfg.limits with Redis's limits before AUTH (narf_engine_limits) */
	struct narf_resp_limits preauth_limits;
	struct narf_ratelog auth_log;   /* failed AUTH */
	struct narf_ratelog denied_log; /* protected mode's -DENIED */
	/* closed before AUTH with too many replies unread (server.c) */
	struct narf_ratelog preauth_log;
	struct narf_ratelog tls_log; /* failed TLS handshakes (server.c) */
	struct narf_ratelog peer_auth_log; /* failed NARF.AUTH */
	/* clients blocked on keys (blocking.h): the server adds and serves
	 * waiters; pushes signal their keys (narf_block_signal) */
	struct narf_block block;
};

/* Defaults: max key 64 KiB, bulk 512 MiB, 10000 clients, 256 peer links,
 * query buffer 1 GiB, idle timeout 300 s, no memory limit, allkeys-lru, no
 * password, protected mode, standalone. */
void narf_engine_config_default(struct narf_engine_config *cfg);

/* Create the store and state. The config is copied (requirepass ownership
 * moves to the engine). clock may be NULL for the real clock. */
int narf_engine_init(struct narf_engine *e,
                     const struct narf_engine_config *cfg,
                     int64_t (*clock)(void *),
                     void *clock_data);
void narf_engine_close(struct narf_engine *e);

/* The time commands see: the cached batch time when the server set one
 * (Redis likewise reads the clock once per event, not per lookup). */
int64_t narf_engine_now(const struct narf_engine *e);

/* Set up a new client's state (id, auth state from requirepass). The
 * server sets c->loopback once it knows the client's address. */
void narf_engine_client_init(struct narf_engine *e, struct narf_client *c);

/* The budget a new connection falls in (enum narf_budget), or
 * NARF_BUDGET_NONE when both are full: refuse it. */
enum narf_budget narf_engine_admit(const struct narf_engine *e);
/* Count c (set up by narf_engine_client_init) against budget b. */
void narf_engine_budget_take(struct narf_engine *e,
                             struct narf_client *c,
                             enum narf_budget b);
/* c closes: its place is free again. */
void narf_engine_budget_release(struct narf_engine *e, struct narf_client *c);
/* A reserve connection that has not proven the node role by now (ms,
 * engine clock): the server refuses and closes it
 * (narf_engine_reserve_refuse). */
bool narf_engine_reserve_overdue(const struct narf_engine *e,
                                 const struct narf_client *c,
                                 int64_t now);
/* Append Redis's "max number of clients reached" to out and have c close
 * after it (counted in rejected_connections). */
int narf_engine_reserve_refuse(struct narf_engine *e,
                               struct narf_client *c,
                               struct narf_buf *out);

/*
 * Before AUTH, as Redis 7.0: a client that has yet to prove itself
 * (narf_engine_preauth: not authenticated under --requirepass-file, or
 * held by protected mode) may send at most NARF_PREAUTH_ARGS arguments
 * of at most NARF_PREAUTH_BULK bytes per request; more is a protocol
 * error ("Protocol error: unauthenticated multibulk length", "...
 * unauthenticated bulk length") that closes the connection. The server
 * also keeps such a client's buffers small (server.c).
 */
#define NARF_PREAUTH_ARGS 10
#define NARF_PREAUTH_BULK (16 * 1024)

bool narf_engine_preauth(const struct narf_engine *e,
                         const struct narf_client *c);
/* The parser limits for c's next request (borrowed from e). */
const struct narf_resp_limits *narf_engine_limits(const struct narf_engine *e,
                                                  const struct narf_client *c);

/*
 * Protected mode, as Redis 7.0's protected-mode: with no client password
 * (no --requirepass-file) and --protected-mode yes
 * (the default), only clients from the loopback interface are served,
 * whatever --bind says. Anyone else gets NARF_DENIED, Redis's own text
 * (so tools show the same advice), and is closed.
 *
 * One exception: a data node's peer links come from other hosts. While
 * this node holds the node key the peer handshake checks
 * (--cluster-secret-file, narf_engine_admits_peers), a non-loopback
 * connection may send the handshake (NARF.AUTH), and only that, until it
 * is a proven peer
 * (c->peer); every other request of it is denied. A node that admits no
 * peers denies such a connection at accept, before it sends anything,
 * as Redis does.
 */
#define NARF_DENIED                                                            \
	"DENIED Redis is running in protected mode because protected mode "    \
	"is enabled and no password is set for the default user. In this "     \
	"mode connections are only accepted from the loopback interface. If "  \
	"you want to connect from external computers to Redis you may adopt "  \
	"one of the following solutions: 1) Just disable protected mode "      \
	"sending the command 'CONFIG SET protected-mode no' from the "         \
	"loopback interface by connecting to Redis from the same host the "    \
	"server is running, however MAKE SURE Redis is not publicly "          \
	"accessible from internet if you do so. Use CONFIG REWRITE to make "   \
	"this change permanent. 2) Alternatively you can just disable the "    \
	"protected mode by editing the Redis configuration file, and setting " \
	"the protected mode option to 'no', and then restarting the server. "  \
	"3) If you started the server manually just for testing, restart it "  \
	"with the '--protected-mode no' option. 4) Setup a an authentication " \
	"password for the default user. NOTE: You only need to do one of the " \
	"above things in order for the server to start accepting connections " \
	"from the outside."

/* Is c held at the door by protected mode (protected mode applies, and c
 * is neither from loopback nor a proven peer)? */
/*
 * SIGHUP: read the password, cluster secret (node key) and users files
 * again. Each file that no longer parses (or a secret file without the
 * node role) is logged and keeps what is in use; the others are
 * replaced. Connections already authenticated stay so.
 */
void narf_engine_reload_credentials(struct narf_engine *e);

/* Does the data port ask for a password (--requirepass-file, or a users
 * file)? */
bool narf_engine_has_password(const struct narf_engine *e);

bool narf_engine_protected(const struct narf_engine *e,
                           const struct narf_client *c);
/* Must c's request running cmd (NULL: a command not known, or a request
 * that does not parse) be denied? narf_engine_exec() asks this first. */
bool narf_engine_protected_denies(const struct narf_engine *e,
                                  const struct narf_client *c,
                                  const struct narf_command *cmd);
/* Can a stranger become a peer here (see above)? */
bool narf_engine_admits_peers(const struct narf_engine *e);
/* Append -NARF_DENIED to out and close c after it; counted in
 * rejected_connections (as Redis counts it) and logged, rate-limited. */
int narf_engine_deny(struct narf_engine *e,
                     struct narf_client *c,
                     struct narf_buf *out);

/* Count one event of rl's kind from c and log it, at most one line every
 * NARF_RATELOG_MS (see struct narf_ratelog). */
void narf_engine_ratelog(struct narf_engine *e,
                         struct narf_ratelog *rl,
                         const struct narf_client *c);
/* The same with what happened (detail, e.g. OpenSSL's reason; not what
 * the client sent) at the end of the line when one is written. */
void narf_engine_ratelog_detail(struct narf_engine *e,
                                struct narf_ratelog *rl,
                                const struct narf_client *c,
                                const char *detail);

/* What narf_engine_exec() returns besides 0 and NARF_E* (> 0). */
/* not run now, to be run again later: this node's lease has lapsed, it has
 * no map yet, the write's slot is being handed off, or a peer's request
 * waits for our map to be refreshed */
#define NARF_EXEC_RETRY (-1)
#define NARF_EXEC_PROXY (-2) /* not run: forward it to e->proxy_node */
#define NARF_EXEC_WAIT (-3)  /* WAIT: the server answers it */
#define NARF_EXEC_SPLIT (-4) /* keys led by several nodes: split, merge */
/* a blocking command found nothing to pop: the server blocks the client
 * on the keys narf_block_wait() noted (run again when served, it returns
 * this again when there is still nothing) */
#define NARF_EXEC_BLOCK (-5)

/* Execute one request; the reply is appended to out. Returns 0, one of
 * NARF_EXEC_* (nothing appended), or NARF_ENOMEM when the reply could not
 * be built (the caller closes). */
int narf_engine_exec(struct narf_engine *e,
                     struct narf_client *c,
                     int argc,
                     const char **argv,
                     const size_t *argvlen,
                     struct narf_buf *out);

/* The command named name (case-insensitive), or NULL. */
const struct narf_command *narf_engine_command(const char *name, size_t n);

/*
 * Parse up to NARF_PREFETCH_MAX complete requests of c's input buf[0..len)
 * ahead, compute the slot and hash of the first key (argument 1) of those
 * whose command takes one there, and prefetch the store memory their
 * lookups will read, in narf_store_prefetch()'s stages, so a pipelined
 * batch's cache misses overlap (issue 18). Anything the parser does not
 * take whole (an error, an incomplete request, an empty one) ends the
 * look-ahead. The parsed requests are kept for narf_engine_prefetch_take(),
 * so nothing is parsed twice; nothing runs here.
 */
void narf_engine_prefetch(struct narf_engine *e,
                          const struct narf_client *c,
                          const char *buf,
                          size_t len);

/*
 * The request that starts off bytes into the prefetched buffer, for c,
 * when the look-ahead parsed it (and c's parser limits have not changed
 * since): swapped into *req, which must be fresh, as if parsed there, and
 * true. Requests before off are dropped. false: parse it yourself.
 */
bool narf_engine_prefetch_take(struct narf_engine *e,
                               const struct narf_client *c,
                               size_t off,
                               struct narf_resp_req *req);

/* The end of the buffer narf_engine_prefetch() looked at: the requests it
 * parsed, and their keys, point into it (call before the buffer is
 * consumed, grown or freed). */
void narf_engine_prefetch_end(struct narf_engine *e);

/* The command at table position i (< NARF_CMD_SLOTS), or NULL: pairs
 * e->stats.calls[i] with its command. */
const struct narf_command *narf_engine_command_at(unsigned i);

/* Periodic work: active expiry and incremental rehash within a bound, and
 * the rate-limited logs' counts of events not yet reported. */
void narf_engine_cron(struct narf_engine *e);

/* Do c's write replies go without waiting for the replicas: its ACKMODE,
 * or else the map's default ack mode (coord --ack, API settings)? */
bool narf_client_ack_primary(const struct narf_engine *e,
                             const struct narf_client *c);

/* --- shared by the cmd_*.c files ----------------------------------------- */

/* A command implementation. argv[0] is the command name. */
typedef int (*narf_cmd_fn)(struct narf_engine *e,
                           struct narf_client *c,
                           int argc,
                           const char **argv,
                           const size_t *argvlen,
                           struct narf_buf *out);

struct narf_command {
	const char *name;
	narf_cmd_fn fn;
	int arity;      /* Redis convention: >0 exact, <0 at least -arity */
	unsigned flags; /* NARF_CMD_* */
	int first_key;  /* COMMAND INFO fields */
	int last_key;
	int key_step;
};

#define NARF_CMD_WRITE 1u
#define NARF_CMD_READONLY 2u
#define NARF_CMD_NOAUTH 4u  /* allowed before AUTH */
#define NARF_CMD_DENYOOM 8u /* may grow memory: refused under noeviction */
#define NARF_CMD_FAST 16u
/* Needs the admin permission (users file): CONFIG, FLUSHALL, FLUSHDB. */
#define NARF_CMD_ADMIN 256u
/* In a cluster, keys of other nodes' slots are sent to them and the replies
 * merged: SPLIT_SUM adds integers (DEL, EXISTS), SPLIT_ARRAY puts values
 * back in request order (MGET), SPLIT_OK answers OK when every part did
 * (MSET). */
#define NARF_CMD_SPLIT_SUM 32u
#define NARF_CMD_SPLIT_ARRAY 64u
#define NARF_CMD_SPLIT_OK 128u
#define NARF_CMD_SPLIT \
	(NARF_CMD_SPLIT_SUM | NARF_CMD_SPLIT_ARRAY | NARF_CMD_SPLIT_OK)
/* Cluster-internal (NARF.*): refused on a connection that has not proven
 * the node role, whatever requirepass says, and never run there. */
#define NARF_CMD_PEER 512u
/* NARF.AUTH: the one command a connection in the peer reserve may send. */
#define NARF_CMD_PEER_AUTH 1024u
/* May wait for a key (BLPOP, BZPOPMIN, ...): COMMAND's "blocking". */
#define NARF_CMD_BLOCKING 2048u
/* argv[2] names an element of the key's collection (a set member, a hash
 * field, a zset member): the look-ahead prefetches its place in the
 * collection's dict (narf_engine_prefetch()). */
#define NARF_CMD_MEMBER 4096u
/* The same for argv[3] (ZADD key score member, ZINCRBY key by member; a
 * ZADD with options points it at another argument: a wasted prefetch). */
#define NARF_CMD_MEMBER3 8192u
/* Movable keys (keyspec.h): argv[n] counts the keys that follow it
 * (ZUNIONSTORE: 2, SINTERCARD: 1, BLMPOP: 2). Bits 16-19 of the flags, so
 * the command tables keep their positional rows. */
#define NARF_CMD_NUMKEYS_AT(n) ((unsigned)(n) << 16)
#define NARF_CMD_NUMKEYS_MASK 0xf0000u
static inline int narf_cmd_numkeys_at(const struct narf_command *cmd)
{
	return (int)((cmd->flags & NARF_CMD_NUMKEYS_MASK) >> 16);
}

extern const struct narf_command narf_string_commands[];
extern const struct narf_command narf_hash_commands[];
extern const struct narf_command narf_list_commands[];
extern const struct narf_command narf_set_commands[];    /* cmd_set.c */
extern const struct narf_command narf_setalg_commands[]; /* cmd_setalg.c */
extern const struct narf_command narf_zset_commands[];   /* cmd_zset.c */
extern const struct narf_command narf_zrange_commands[]; /* cmd_zrange.c */
extern const struct narf_command narf_key_commands[];
extern const struct narf_command narf_server_commands[];
extern const struct narf_command narf_cluster_commands[];
extern const struct narf_command narf_peer_commands[]; /* unlisted */
/* NARF.HSET, NARF.CLOAD...: collection effects (cmd_effect.c), unlisted */
extern const struct narf_command narf_effect_commands[];
/* The tables above but the peers' and the effects', NULL-terminated
 * (COMMAND walks them). */
extern const struct narf_command *const narf_command_tables[];

/* Parse helpers with Redis's strictness and error replies. Each returns
 * 0 or -1 after writing the error reply to out. */
int narf_arg_ll(struct narf_buf *out, const char *s, size_t n, long long *v);
/* Strict string-to-long-long as Redis's string2ll (no spaces, no '+', no
 * leading zeros); returns true on success. */
bool narf_str_to_ll(const char *s, size_t n, long long *v);
bool narf_str_to_ld(const char *s, size_t n, long double *v);
/* Case-insensitive compare of an argument with a C string. */
bool narf_arg_is(const char *arg, size_t n, const char *word);

int narf_reply_wrong_arity(struct narf_buf *out, const char *cmd);
int narf_reply_syntax(struct narf_buf *out);

/* The slot a key hashes to. */
unsigned narf_key_slot(const char *key, size_t len);

/* A key's slot and store hash, computed once per request: inside
 * narf_engine_exec() those of the request's argument 1 are remembered (or
 * taken from narf_engine_prefetch(), which computed them already). */
struct narf_keyref narf_key_ref(struct narf_engine *e,
                                const char *key,
                                size_t len);

/* Look a key up, counting a hit or a miss. */
struct narf_entry *narf_lookup(struct narf_engine *e,
                               const char *key,
                               size_t len,
                               bool count);

/* Stream messages (NARF.*, cmd_cluster.c, cmd_effect.c): the slot epoch
 * s[0..n) of a message from peer c checked against ours and c's link; -1
 * after the error reply (-STALE, -STALELINK). */
int narf_peer_fence(struct narf_engine *e,
                    struct narf_client *c,
                    unsigned slot,
                    const char *s,
                    size_t n,
                    struct narf_buf *out);
/* -NOTAPPLIED slot S: why (the sender fails its link on it). */
int narf_reply_not_applied(struct narf_buf *out, unsigned slot, int rv);
/*
 * Send a collection command's effect to the slot's replicas:
 * NARF.<op> <epoch> <key> <count> <args...> (count: the element count the
 * key must have after it, or -1). Nothing when not in a cluster. Returns 0
 * or NARF_ENOMEM.
 */
int narf_engine_effect(struct narf_engine *e,
                       unsigned slot,
                       const char *op,
                       const char *key,
                       size_t klen,
                       long long count,
                       int n,
                       const char *const *args,
                       const size_t *lens);

/* An effect's arguments collected while a command runs (members it popped,
 * scores it computed), copied: for commands whose effect is not their
 * own arguments. narf_fx_wanted() says whether to bother (a cluster). */
struct narf_fx {
	struct narf_buf data; /* the arguments' bytes, back to back */
	size_t *lens;         /* owned */
	size_t n, cap;
	int err; /* NARF_ENOMEM once an add failed */
};
static inline bool narf_fx_wanted(const struct narf_engine *e)
{
	return e->repl != NULL;
}
void narf_fx_init(struct narf_fx *fx);
void narf_fx_close(struct narf_fx *fx);
void narf_fx_add(struct narf_fx *fx, const void *p, size_t n);
/* A double as the effect carries it: %.17g, exact on the way back. */
void narf_fx_double(struct narf_fx *fx, double v);
/* Send NARF.<op> <epoch> key <count> <the arguments> (nothing when
 * empty, or when an add failed: then the replicas must not go on as if
 * they had it, so the slot's copies are told to resync). */
void narf_fx_send(struct narf_engine *e,
                  struct narf_fx *fx,
                  unsigned slot,
                  const char *op,
                  const char *key,
                  size_t klen,
                  long long count);

/* Send key's whole value (a collection: NARF.CLOAD) to the slot's
 * replicas, as after a write the store saw: for a value a command built
 * whole (the STORE forms). Nothing outside a cluster or when absent. */
void narf_engine_send_value(struct narf_engine *e,
                            unsigned slot,
                            const char *key,
                            size_t klen);

/*
 * Blocking commands (BLPOP, BLMOVE, BLMPOP, BZPOPMIN, ...). Parse a timeout
 * in seconds as Redis 7.0.15 (a long double, times 1000, rounded up; 0 is
 * forever): *ms, or -1 after "ERR timeout is not a float or out of range"
 * or "ERR timeout is negative" (an infinite or too large one, converted as
 * x86 converts it, is negative too).
 */
int narf_parse_block_timeout(struct narf_buf *out,
                             const char *s,
                             size_t n,
                             uint64_t *ms);
/* Nothing to pop: note in c what to wait for (see struct narf_client) and
 * return NARF_EXEC_BLOCK for the command to return. */
int narf_block_wait(struct narf_client *c,
                    enum narf_type type,
                    int first,
                    int last,
                    int numkeys_at,
                    uint64_t ms);

/* The reply to a store error of a write: WRONGTYPE, OOM, "value is too
 * large"; NARF_ENOMEM (or anything else) is returned for the connection to
 * close. */
int narf_reply_store_error(struct narf_buf *out, int rv);
/* Open key as a collection of type t for a write (created when create),
 * `grow` bytes checked against max-memory (narf_store_coll_open): 0, with
 * r->e NULL when absent and not created, or -1 after the error reply. */
int narf_coll_open_write(struct narf_engine *e,
                         const char *key,
                         size_t klen,
                         enum narf_type t,
                         size_t grow,
                         bool create,
                         struct narf_cref *r,
                         struct narf_buf *out);

/* Start the allocator's page-purging thread where there is one (jemalloc),
 * as redis-server does (cmd_server.c). */
void narf_malloc_background(void);

/* -WRONGTYPE, Redis's text. */
int narf_reply_wrongtype(struct narf_buf *out);
/* Look a key up for a read of a collection of type t (counting a hit or a
 * miss): 1 with *c filled, 0 when absent, -1 after a WRONGTYPE reply. */
int narf_lookup_coll(struct narf_engine *e,
                     const char *key,
                     size_t len,
                     enum narf_type t,
                     struct narf_coll *c,
                     struct narf_buf *out);
/* HSCAN, SSCAN and ZSCAN's options (argv[3..]): MATCH (NULL for none or
 * "*") and COUNT (default 10, capped at 100000). 0, or -1 after Redis's
 * error reply (a syntax error, or COUNT not an integer or below 1). */
struct narf_scan_opts {
	const char *pat; /* borrowed from argv */
	size_t plen;
	long long count;
};
int narf_parse_scan_opts(int argc,
                         const char **argv,
                         const size_t *len,
                         struct narf_scan_opts *o,
                         struct narf_buf *out);
/* A scan's reply: [cursor, [n items already encoded in items]]. */
int narf_reply_scan(struct narf_buf *out,
                    unsigned long long cursor,
                    long long n,
                    const struct narf_buf *items);

/* A SCAN cursor as Redis takes it (decimal digits only, fits 64 bits):
 * 0, or -1 for "ERR invalid cursor". */
int narf_parse_scan_cursor(const char *s, size_t n, unsigned long long *v);

/* c proved the node role as node `node` (NARF.AUTH): a peer link from
 * now on, counted against max_peer_links, needing no AUTH. */
void narf_engine_client_proven(struct narf_engine *e,
                               struct narf_client *c,
                               uint32_t node);
/* A NARF.AUTH failed: c closes after the reply, the failure is counted and
 * logged at WARN with c's address (claimed: the node id it claimed, or
 * 0), at most a line a second (e->peer_auth_log). */
void narf_engine_peer_auth_failed(struct narf_engine *e,
                                  struct narf_client *c,
                                  uint64_t claimed,
                                  const char *why);

/* Cluster mode: the map when this node has joined and received one. */
const struct narf_map *narf_engine_map(const struct narf_engine *e);

/* The 40-character node name CLUSTER replies use for node id. */
void narf_node_name(char out[41], uint32_t id);

/* Human-readable byte count as Redis prints it ("1.50M"). */
void narf_bytes_human(char *buf, size_t size, uint64_t n);

#endif /* NARF_ENGINE_H */
