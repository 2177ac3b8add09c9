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
 * cmd_keys.c (keyspace) and cmd_server.c (connection, server and cluster
 * commands); the table and dispatch are in engine.c.
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
#include "common/store.h"

#define NARF_REDIS_VERSION "7.0.0" /* what INFO and HELLO claim */
#define NARF_CLIENT_NAME_MAX 256

struct narf_member;

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
	char *requirepass;    /* owned; NULL = no password */
	char *cluster_secret; /* owned; NULL = peers prove requirepass */
	/* --cluster-secret-file: the node role's key (the cluster secret's,
	 * or a node key; common/auth.h); required with --join */
	struct narf_auth_keys keys;
	bool standalone;
	bool standalone_flag; /* --standalone given explicitly */
	bool redirect;        /* --redirect: -MOVED instead of proxying */
};

/* Size of the command lookup table: per-command counters are kept by
 * table position (see narf_engine_command_at()). */
#define NARF_CMD_SLOTS 512

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
};

/* Per-connection state the commands see. */
struct narf_client {
	uint64_t id;
	bool authenticated;
	bool close_after_reply; /* QUIT, or a fatal error reply */
	char name[NARF_CLIENT_NAME_MAX];
	char addr[64];
	uint64_t created_ms;
	bool readonly;    /* READONLY: in-sync replicas may answer reads */
	bool ack_primary; /* ACKMODE PRIMARY: replies do not wait */
	bool ack_set;     /* ACKMODE given; else the map's default rules */
	bool peer;        /* NARF.HELLO: another node's link */
	uint32_t peer_node;
	uint64_t peer_map_checks; /* map replies seen when a peer's request
	                             was first put off for a map refresh */
	long long wait_replicas;  /* WAIT's arguments */
	long long wait_timeout_ms;
};

struct narf_engine {
	struct narf_store *store; /* owned */
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
	void *clock_data;
	int64_t start_ms;
	uint64_t next_client_id;
	unsigned connected_clients;
	char run_id[41];
};

/* Defaults: max key 64 KiB, bulk 512 MiB, 10000 clients, query buffer
 * 1 GiB, idle timeout 300 s, no memory limit,
 * allkeys-lru, no password, standalone. */
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

/* Set up a new client's state (id, auth state from requirepass). */
void narf_engine_client_init(struct narf_engine *e, struct narf_client *c);

/* What narf_engine_exec() returns besides 0 and NARF_E* (> 0). */
/* not run now, to be run again later: this node's lease has lapsed, it has
 * no map yet, the write's slot is being handed off, or a peer's request
 * waits for our map to be refreshed */
#define NARF_EXEC_RETRY (-1)
#define NARF_EXEC_PROXY (-2) /* not run: forward it to e->proxy_node */
#define NARF_EXEC_WAIT (-3)  /* WAIT: the server answers it */
#define NARF_EXEC_SPLIT (-4) /* keys led by several nodes: split, merge */

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

/* The command at table position i (< NARF_CMD_SLOTS), or NULL: pairs
 * e->stats.calls[i] with its command. */
const struct narf_command *narf_engine_command_at(unsigned i);

/* Periodic work: active expiry and incremental rehash within a bound. */
void narf_engine_cron(struct narf_engine *e);

/* What a peer link must prove in NARF.HELLO: the cluster secret, else the
 * client password, else NULL (nothing). */
const char *narf_engine_peer_secret(const struct narf_engine *e);

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
/* In a cluster, keys of other nodes' slots are sent to them and the replies
 * merged: SPLIT_SUM adds integers (DEL, EXISTS), SPLIT_ARRAY puts values
 * back in request order (MGET), SPLIT_OK answers OK when every part did
 * (MSET). */
#define NARF_CMD_SPLIT_SUM 32u
#define NARF_CMD_SPLIT_ARRAY 64u
#define NARF_CMD_SPLIT_OK 128u
#define NARF_CMD_SPLIT \
	(NARF_CMD_SPLIT_SUM | NARF_CMD_SPLIT_ARRAY | NARF_CMD_SPLIT_OK)

extern const struct narf_command narf_string_commands[];
extern const struct narf_command narf_key_commands[];
extern const struct narf_command narf_server_commands[];
extern const struct narf_command narf_cluster_commands[];
extern const struct narf_command narf_peer_commands[]; /* unlisted */
/* The three tables above, NULL-terminated (COMMAND walks them). */
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

/* Look a key up, counting a hit or a miss. */
struct narf_entry *narf_lookup(struct narf_engine *e,
                               const char *key,
                               size_t len,
                               bool count);

/* Cluster mode: the map when this node has joined and received one. */
const struct narf_map *narf_engine_map(const struct narf_engine *e);

/* The 40-character node name CLUSTER replies use for node id. */
void narf_node_name(char out[41], uint32_t id);

/* Human-readable byte count as Redis prints it ("1.50M"). */
void narf_bytes_human(char *buf, size_t size, uint64_t n);

#endif /* NARF_ENGINE_H */
