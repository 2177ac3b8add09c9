/*
 * Internal to repl.c, repl_link.c and repl_sync.c: the state of
 * replication (struct narf_repl, per peer struct narf_peer, and its links)
 * and the functions the three share. repl.h is the interface; repl.c's
 * opening comment says how the pieces fit.
 */
#ifndef NARF_DATANODE_REPL_INT_H
#define NARF_DATANODE_REPL_INT_H

#include "repl.h"

#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "common/resp.h"
#include "membership.h"

#define WORDS (NARF_SLOTS / 64)
#define MAX_REPLY (512u << 20)

enum link_kind { LINK_REPL, LINK_PROXY };

struct narf_proxy {
	narf_proxy_done done; /* NULL once cancelled */
	void *data;
	struct narf_proxy *next;
};

struct link {
	struct narf_repl *r;
	struct narf_peer *p;
	enum link_kind kind;
	uv_tcp_t *tcp;      /* owned while open; data == this link */
	uv_connect_t *creq; /* the connect in progress (its data is us) */
	bool connected;
	bool writing;
	/* A command could not be queued (out of memory): nothing more is
	 * queued, and repl_prepare_cb fails the link before any later ack
	 * could be taken to cover the missing command. */
	bool broken;
	uv_write_t wreq;
	struct narf_buf out;     /* commands not yet handed to the kernel */
	struct narf_buf sending; /* commands in a uv_write */
	struct narf_buf in;      /* replies not yet complete */
	uint32_t gen;            /* incarnation: needs name it */
	uint64_t sent, acked;    /* commands sent and replies received */
	uint64_t progress_ms;    /* last ack, or when acks became due */
	/* proxy links: the requests awaiting replies, oldest first */
	struct narf_proxy *head, *tail;
};

struct join {
	uint16_t slot;
	uint64_t seq; /* NARF.SYNCED's sequence number */
};

struct narf_peer {
	struct narf_repl *r;
	uint32_t id;
	char addr[NARF_ADDR_SIZE];
	struct link *repl, *proxy; /* owned, NULL when closed */
	uint32_t gen;              /* incarnations of the repl link so far */
	uint64_t fwd[WORDS], counts[WORDS], want[WORDS], asked[WORDS];
	unsigned n_counts;
	struct join *joins; /* synced slots awaiting NARF.SYNCED's ack */
	unsigned n_joins, cap_joins;
	uint64_t ready[WORDS]; /* acked syncs to ask the ISR for */
	bool add_inflight;
	uint64_t add_ms;     /* when the last isr add went out */
	bool dropping;       /* ISR drop asked and not yet in our map */
	bool drop_inflight;  /* request sent, no reply yet */
	uint64_t drop_epoch; /* map epoch carrying the drop, once known */
	uint64_t failed_ms;  /* last link failure, for the retry delay */
	/* handoffs to this peer: our slots it is to lead, writes to them
	 * stopped; ready once it has acked handoff_seq */
	uint64_t handoff[WORDS];
	uint64_t handoff_seq;
	bool handoff_inflight; /* one request at a time per peer */
	/* the map epoch its `handoff` entry made: the request is over when
	 * our map is that new (0: no answer yet) */
	uint64_t handoff_epoch;
	uint64_t handoff_ms; /* when writes to the first of them stopped */
	unsigned n_handoff;  /* bits set in handoff */
	/* want, ready or handoff may hold slots: prepare_cb looks (it runs
	 * every loop iteration, so it must not scan 16384 bits for nothing) */
	bool work;
	uint64_t synced; /* slots synced to this peer, ever */
};

/* A sender's newest inbound connection that carried stream messages. */
struct narf_in_link {
	uint32_t node;
	uint64_t conn; /* its client id */
};

struct narf_repl {
	uv_loop_t *loop;
	struct narf_store *store;   /* borrowed */
	struct narf_member *member; /* borrowed */
	uv_prepare_t prepare;       /* flushes links and pumps syncs */
	uv_idle_t idle;             /* active while syncs have more to send */
	bool idling;
	/* sync pacing: at most sync_rate bytes/s (0: no limit), as a token
	 * bucket of up to 100 ms worth; the timer wakes the loop when it
	 * has refilled */
	uint64_t sync_rate;
	int64_t budget;
	uint64_t budget_ms;
	uv_timer_t pace;
	bool pacing;
	struct narf_peer **peers; /* owned */
	unsigned n_peers, cap_peers;
	uint64_t lead[WORDS];    /* slots we lead, per our map */
	uint64_t handing[WORDS]; /* ... of which we hand off (writes wait) */
	uint64_t syncing[WORDS]; /* replica slots being synced to us */
	uint64_t *lost_at; /* per slot: map epoch at which we last lost it */
	/* per slot: the sender's map epoch in the last NARF.SYNC to us. Until
	 * our map is that new, a map without our copy is older news than
	 * the sync: the slot's entries stay (see repl_may_drop()). */
	uint64_t *sync_epoch;
	/* per slot: the highest slot epoch seen, in our maps and in stream
	 * messages we accepted; a message below it is refused (the epoch
	 * high-water mark, see narf_repl_accept) */
	uint64_t *hwm;
	uint64_t epoch; /* our map's epoch */
	unsigned node_timeout_ms;
	/* the batch in progress */
	bool in_batch;
	bool applying;      /* a peer's stream message: not ours to stream */
	bool leaving;       /* our own node is leaving or removed */
	const char *secret; /* borrowed: NARF.HELLO's proof, or NULL */
	struct narf_gate batch;
	void (*progress_cb)(void *);
	void *progress_data;
	bool stopping;
	uint64_t stream_msgs, stream_bytes, acks;
	unsigned sweep;   /* next slot the cron's sweep looks at */
	uint64_t swept;   /* entries of slots not ours dropped by it */
	uint64_t proxied; /* requests forwarded (metrics) */
	/* per sender node: the newest inbound connection that carried stream
	 * messages (narf_repl_stream_conn) */
	struct narf_in_link *in_links;
	unsigned n_in_links, cap_in_links;
	uint64_t stale_links; /* stream messages refused on superseded links */
};

static inline int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline bool bit(const uint64_t *set, unsigned s)
{
	return (set[s / 64] >> (s % 64)) & 1u;
}

static inline void bit_set(uint64_t *set, unsigned s)
{
	set[s / 64] |= (uint64_t)1 << (s % 64);
}

static inline void bit_clear(uint64_t *set, unsigned s)
{
	set[s / 64] &= ~((uint64_t)1 << (s % 64));
}

static inline unsigned bits_count(const uint64_t *set)
{
	unsigned n = 0;

	for (unsigned i = 0; i < WORDS; i++)
		n += (unsigned)__builtin_popcountll(set[i]);
	return n;
}

static inline const struct narf_map *repl_map(const struct narf_repl *r)
{
	return r->member != NULL ? r->member->map : NULL;
}

/* repl.c */
void repl_progress(struct narf_repl *r);
struct narf_peer *repl_peer_find(const struct narf_repl *r, uint32_t id);
void repl_peer_slot_rule(struct narf_repl *r,
                         struct narf_peer *p,
                         const struct narf_map *map,
                         unsigned s);
bool repl_may_drop(const struct narf_repl *r,
                   const struct narf_map *map,
                   unsigned s);
int repl_send_key(struct narf_repl *r,
                  struct link *l,
                  uint64_t slot_epoch,
                  const char *key,
                  size_t klen,
                  const struct narf_entry *e);

/* repl_link.c: links and peers */
struct link *repl_link_open(struct narf_repl *r,
                            struct narf_peer *p,
                            enum link_kind kind);
void repl_link_fail(struct link *l, const char *why);
void repl_link_flush(struct link *l);
void repl_link_free(struct link *l);
int repl_link_cmd(struct link *l,
                  int argc,
                  const char *const *argv,
                  const size_t *argvlen);
struct narf_peer *repl_peer_get(struct narf_repl *r,
                                const struct narf_map *map,
                                uint32_t id);
void repl_ask_drop(struct narf_repl *r, struct narf_peer *p);
void repl_ask_add(struct narf_repl *r, struct narf_peer *p);
bool repl_add_due(const struct narf_repl *r, const struct narf_peer *p);
void repl_recount(struct narf_peer *p);

/* repl_sync.c: slot syncs, ISR joins and handoffs, driven by prepare_cb */
json_t *repl_ranges_of(const uint64_t *set);
void repl_prepare_cb(uv_prepare_t *h);
void repl_pace_cb(uv_timer_t *h);
void repl_idle_cb(uv_idle_t *h);

#endif
