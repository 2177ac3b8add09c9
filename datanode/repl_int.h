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

#include "common/coll.h"
#include "common/resp.h"
#include "membership.h"
#include "repl_core.h"

#define WORDS NARF_RC_WORDS
#define MAX_REPLY (512u << 20)
/* --tls-cluster: longest a link's TCP connect and TLS handshake may take
 * (a peer that never answers fails its link sooner, by lag: repl_core) */
#define NARF_LINK_TLS_MS 5000

enum link_kind { LINK_REPL, LINK_PROXY };

struct narf_proxy {
	narf_proxy_done done; /* NULL once cancelled */
	void *data;
	struct link *l;                 /* borrowed: the link it went on */
	uint64_t token;                 /* a blocking pop's, or 0 */
	bool parked;                    /* on l->parked: +NARF.BLOCKED came */
	struct narf_proxy *next, *prev; /* (prev: on l->parked only) */
};

struct link {
	struct narf_repl *r;
	struct narf_peer *p;
	enum link_kind kind;
	uv_tcp_t *tcp;      /* owned while open; data == this link */
	uv_connect_t *creq; /* the connect in progress (its data is us) */
	/* --tls-cluster: the relay dialing and handshaking (owned until
	 * its callback, which opens tcp on the plaintext end; then the
	 * relay frees itself when tcp closes) */
	struct narf_tls_relay *relay;
	bool connected;
	bool writing;
	uv_write_t wreq;
	struct narf_buf out;     /* commands not yet handed to the kernel */
	struct narf_buf sending; /* commands in a uv_write */
	struct narf_buf in;      /* replies not yet complete */
	/* replication links: the core's incarnation (reports name it); the
	 * core counts what was sent and acked (struct narf_rpeer) */
	uint32_t gen;
	/* proxy links: requests sent and answered, the last answer */
	uint64_t sent, acked;
	uint64_t progress_ms;
	/* proxy links: the requests awaiting replies, oldest first */
	struct narf_proxy *head, *tail;
	/* proxy links: blocking pops the peer answered +NARF.BLOCKED, whose
	 * replies come in push frames, by token */
	struct narf_proxy *parked;
	/* NARF.AUTH (peer_auth.h): the first step waits in hs, the only
	 * bytes sent until the peer's proof checked out (proven); commands
	 * queued meanwhile wait in out, behind our proof */
	bool proven;
	struct narf_buf hs;
	struct narf_auth auth;
};

/* A big collection of the open slot being sent to a peer a slice per
 * step (repl_xfer.c). */
struct xfer {
	char *key; /* owned */
	size_t klen;
	uint8_t type;                /* enum narf_type */
	struct narf_coll_cursor cur; /* narf_coll_slice's (owned) */
	/* the peer's copy is to be replaced: the next slice goes as
	 * NARF.CLOAD from the start (a new transfer, or a list written
	 * since its first slice) */
	bool reload;
	bool restarted; /* a list restarted once already */
	bool whole;     /* a list written twice: all of it at the next step */
};

/* A peer's I/O: its address and links; its state is the core's (rp). */
struct narf_peer {
	struct narf_repl *r;
	struct narf_rpeer *rp; /* rp->io == this */
	uint32_t id;
	char addr[NARF_ADDR_SIZE];
	struct link *repl, *proxy; /* owned, NULL when closed */
	/* a link to it failed NARF.AUTH and said so at WARN: the next such
	 * failures say it at DEBUG until one of its links proves itself
	 * (links are retried every NARF_LINK_RETRY_MS) */
	bool auth_warned;
	/* the same for TLS handshakes (--tls-cluster) */
	bool tls_warned;
	/* transfers of the slot open to it (rp->open_slot), on the link
	 * incarnation xfer_gen; stale ones are dropped at the next step */
	struct xfer *xfers; /* owned, n_xfers of cap_xfers */
	unsigned n_xfers, cap_xfers;
	uint16_t xfer_slot;
	uint32_t xfer_gen;
};

struct narf_repl {
	uv_loop_t *loop;
	struct narf_store *store;   /* borrowed */
	struct narf_member *member; /* borrowed */
	struct narf_rcore *core;    /* owned: every decision (repl_core.h) */
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
	const struct narf_auth_keys *keys; /* borrowed: NARF.AUTH's */
	struct narf_tls *tls; /* borrowed: links' client context, or NULL */
	void (*progress_cb)(void *);
	void *progress_data;
	bool stopping;
	bool acting; /* inside repl_act() */
	uint64_t stream_msgs, stream_bytes;
	/* syncs: transfers begun, their slices, and the most bytes one
	 * step queued on a link (INFO: how the syncs were spread) */
	uint64_t xfers_begun, xfer_slices, sync_step_max;
	unsigned sweep;   /* next slot the cron's sweep looks at */
	uint64_t swept;   /* entries of slots not ours dropped by it */
	uint64_t proxied; /* requests forwarded (metrics) */
};

static inline int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define bit narf_rc_bit
#define bits_count narf_rc_count

/* Our map: the core's (during a map change it is already the new one,
 * the member's still the old one), else the member's. */
static inline const struct narf_map *repl_map(const struct narf_repl *r)
{
	if (r->core->map != NULL)
		return r->core->map;
	return r->member != NULL ? r->member->map : NULL;
}

/* repl.c */
/* Carry out every action the core has queued (and those that carrying
 * them out queues). Call after feeding the core any event. */
void repl_act(struct narf_repl *r);
struct narf_peer *repl_peer_find(const struct narf_repl *r, uint32_t id);
/* The peer's I/O state, made when new (NULL without memory or when the
 * map does not know the node). */
struct narf_peer *repl_peer_io(struct narf_repl *r, struct narf_rpeer *rp);
struct narf_peer *repl_peer_get(struct narf_repl *r,
                                const struct narf_map *map,
                                uint32_t id);
int repl_send_key(struct narf_repl *r,
                  struct link *l,
                  uint64_t slot_epoch,
                  const char *key,
                  size_t klen,
                  const struct narf_entry *e);

/* One NARF.CLOAD (load) or NARF.CAPPEND of a collection: payload[0..plen)
 * holds nbulks bulks; count < 0 sends -1. 0 or NARF_ENOMEM (the link is
 * then broken). msg is a scratch buffer. */
int repl_coll_msg(struct link *l,
                  bool load,
                  const char *ep,
                  size_t eplen,
                  const char *key,
                  size_t klen,
                  enum narf_type type,
                  int64_t pxat,
                  int64_t count,
                  const char *payload,
                  size_t plen,
                  uint64_t nbulks,
                  struct narf_buf *msg);

/* repl_xfer.c: big collections synced a slice per step */
/* Should the sync of slot s send e, a collection, as a transfer? Then it
 * is begun (0; its first slice goes at the next step), else NARF_ENOMEM
 * or NARF_EINVAL: send it whole. */
int repl_xfer_begin(struct narf_peer *p,
                    unsigned slot,
                    const char *key,
                    size_t klen,
                    const struct narf_entry *e);
/* Continue p's transfers until out.len passes limit; true once none is
 * left (the open slot may be marked SYNCED). */
bool repl_xfer_step(struct narf_repl *r, struct narf_peer *p, size_t limit);
/* Forget p's transfers (no message). */
void repl_xfer_drop(struct narf_peer *p);
/* A write of slot s's key to p: is it the key of a transfer? For what to
 * do about it, see repl_xfer_effect and repl_xfer_replaced. */
struct xfer *repl_xfer_find(struct narf_peer *p,
                            unsigned slot,
                            const char *key,
                            size_t klen);
/* An effect on x's key (op: argv[0]): false when it must not go to p
 * (the next slice carries it). */
bool repl_xfer_effect(struct narf_peer *p, struct xfer *x);
/* x's key was replaced or deleted (NARF.SET, NARF.DEL, NARF.CLOAD went
 * out): its transfer ends. */
void repl_xfer_cancel(struct narf_peer *p, struct xfer *x);

/* repl_link.c: links */
struct link *repl_link_open(struct narf_repl *r,
                            struct narf_peer *p,
                            enum link_kind kind);
/* The link failed: logged, freed, reported to the core (replication). */
void repl_link_fail(struct link *l, const char *why);
/* Close and free the link without a report (the core decided). */
void repl_link_drop(struct link *l);
void repl_link_flush(struct link *l);
void repl_link_free(struct link *l);
int repl_link_cmd(struct link *l,
                  int argc,
                  const char *const *argv,
                  const size_t *argvlen);
/* The same for one command already encoded as RESP (msg[0..n)). */
int repl_link_raw(struct link *l, const char *msg, size_t n);
/* Take px off l->parked (a proxy request answered +NARF.BLOCKED). */
void repl_link_unpark(struct link *l, struct narf_proxy *px);
/* A forwarded request: bare, or wrapped in NARF.REQ (repl.h). */
int repl_link_req(struct link *l, const struct narf_proxy_req *req);

/* repl_sync.c: slot syncs, driven by prepare_cb */
json_t *repl_ranges_of(const uint64_t *set);
void repl_prepare_cb(uv_prepare_t *h);
void repl_pace_cb(uv_timer_t *h);
void repl_idle_cb(uv_idle_t *h);

#endif
