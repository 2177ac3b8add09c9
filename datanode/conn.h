/*
 * A client connection of the data node (internal): its state, shared by
 * server.c (I/O, parsing, running requests, waiting and resuming) and
 * forward.c (requests for slots other nodes lead: forwarded whole, or
 * split by owner and merged).
 *
 * Waits. In a cluster a connection sometimes runs no requests until
 * something happens elsewhere: `wait` names the one thing it waits for
 * (enum narf_conn_wait), and narf_conn_blocked() is `wait != NONE`. Waits
 * begin with narf_conn_wait_begin() and end with narf_conn_wait_end()
 * (server.c), which assert that a connection waits for one thing at a
 * time. A wait begins while the connection runs requests (conn_process
 * stops at the first), so most waits cannot meet. Two can, and then one
 * is owed behind the other, kept in the data it needs anyway:
 *
 *  - Acks. Replies of writes wait for the replicas' acks while the ack
 *    gate `gate` is non-empty (narf_conn_gated(); conn_flush writes
 *    nothing then). The gate shuts at the end of a batch (conn_run), when
 *    a request of that batch may already have begun a wait (a WAIT, a
 *    split, a request put off, a full or draining forward queue), and a
 *    -MOVED re-route may begin while it is shut. Neither can wait for the
 *    other: the gate holds replies already built, and a WAIT's answer or
 *    a retry's expiry depends on when it is looked at. So the other wait
 *    keeps `wait` and the gate is owed: the check handle still looks at
 *    it every pass (it may open, or break and close the connection), and
 *    a wait that ends while it is shut hands over to NARF_WAIT_ACKS.
 *  - A re-route behind a drain. A -MOVED to the newest forwarded request
 *    while a split or WAIT waits for the forwarded replies
 *    (NARF_WAIT_FWD_DRAIN) with others still out: the drain keeps `wait`
 *    and the re-route is owed (map_checks != 0, looked at every time as
 *    for NARF_WAIT_MAP); it becomes the wait when the drain ends first.
 *
 * A connection blocked on keys (NARF_WAIT_KEYS: BLPOP and friends,
 * blocking_io.c) waits for another connection's push or its timeout; its
 * ack gate, shut by the batch that blocked it, is owed as above, and the
 * pop that serves it adds its own writes to that gate. One whose pop went
 * to another node (NARF_WAIT_REMOTE, fwd_block.c) waits the same way for
 * its reply; a map change may trade one of the two for the other
 * (narf_conn_wait_switch), the gate still owed.
 *
 * Each end condition is looked at on every pass as before, so the
 * connection resumes when all of them are met, exactly as when each had
 * its own flag. A -MOVED re-route also takes over from NARF_WAIT_RETRY
 * (the request put off comes after the re-routed one in `in`, and runs
 * again after it) and, by ending them, from NARF_WAIT_FWD_FULL (one fewer
 * is out) and from a drain whose last reply it was.
 *
 * Waiting connections, and those with forwarded requests out, sit on
 * dn->blocked: narf_conn_wait_begin() puts them there, and a connection
 * whose wait ended stays there until the check handle resumes it
 * (server.c), so nothing resumes from inside another callback.
 *
 * Words. "Wait" means the above and nothing else; "gated" means replies
 * behind the ack gate. What else was called "hold" has its own word:
 *  - pipeline_paused: the rest of a pipeline waits in `in` until the
 *    replies already built are written (NARF_OUT_SOFT_LIMIT); flow
 *    control, not a wait (conn_flush lifts it);
 *  - fwd.moved_self, moved_self_checks: a forwarded request's -MOVED that
 *    names this node goes to the client only after our next map;
 *  - NARF_EXEC_RETRY (engine.h): the engine did not run a request now
 *    (lease lapsed, no map yet, a write to a slot being handed off, a
 *    peer's request while our maps disagree); NARF_WAIT_RETRY runs it
 *    again;
 *  - narf_client.peer_map_checks (engine.h): that last case's map count.
 * INFO's "lease: held" is the lease's state and keeps its wire word.
 */
#ifndef NARF_DN_CONN_H
#define NARF_DN_CONN_H

#include "server.h"

#define NARF_OUT_SOFT_LIMIT (1u << 20)
/* How long a request put off waits to run again (NARF_WAIT_RETRY), a
 * request that got -MOVED goes on being routed again (NARF_WAIT_MAP), and
 * a -MOVED naming us waits for our next map (fwd.moved_self). */
#define NARF_RETRY_MAX_MS 3000
#define NARF_FWD_MAX 512 /* forwarded requests out per connection */

struct scatter;

/* What a connection waits for before it runs more requests (see the top of
 * the file): one at a time. */
enum narf_conn_wait {
	NARF_WAIT_NONE = 0, /* runs requests */
	/* only for its replies: they wait behind the ack gate (`gate`) for
	 * the replicas to acknowledge its writes (repl.h) */
	NARF_WAIT_ACKS,
	/* the engine put the request at the front of `in` off
	 * (NARF_EXEC_RETRY); it runs again once the lease holds (at once,
	 * when it does: a write to a slot being handed off, a request before
	 * the first map and a peer's request waiting for a map run again
	 * every pass), or after NARF_RETRY_MAX_MS it fails -CLUSTERDOWN */
	NARF_WAIT_RETRY,
	/* the newest forwarded request got -MOVED: it is routed again after
	 * a map reply beyond map_checks, or after NARF_RETRY_MAX_MS */
	NARF_WAIT_MAP,
	NARF_WAIT_WAIT,      /* a WAIT command: enough acks, or its timeout */
	NARF_WAIT_SCATTER,   /* a split request's parts are out (sc) */
	NARF_WAIT_FWD_FULL,  /* NARF_FWD_MAX forwarded requests are out */
	NARF_WAIT_FWD_DRAIN, /* a split or WAIT waits for every forwarded
	                        reply (they answer in the order asked) */
	/* a blocking pop found nothing: `waiter` is registered in the
	 * engine's narf_block until a push serves it, its timeout passes,
	 * or a map change re-runs it elsewhere (blocking_io.c) */
	NARF_WAIT_KEYS,
	/* a blocking pop forwarded to its key's owner (`rb`, fwd_block.c):
	 * its reply, a timeout, or routing it again after a -MOVED or a
	 * lost link; a map change may turn it into NARF_WAIT_KEYS and back */
	NARF_WAIT_REMOTE,
};

/*
 * A blocking pop forwarded to the owner of its key (fwd_block.c), exactly
 * while its connection waits NARF_WAIT_REMOTE. Not on the fwd queue: the
 * connection runs nothing after it, so its reply goes where the replies
 * of the requests run now go (narf_conn_reply_buf) when it comes.
 */
enum rblock_state {
	RBLOCK_OUT,   /* sent to `node` (px): its reply is awaited */
	RBLOCK_AGAIN, /* -MOVED, a lost link, ...: to be routed again */
};

struct rblock {
	enum rblock_state state;
	int argc;
	char **argv; /* owned: the request, one allocation with argvlen */
	size_t *argvlen;
	uint64_t deadline;     /* loop ms; 0: forever */
	uint32_t node;         /* where it went */
	struct narf_proxy *px; /* exactly while RBLOCK_OUT */
	uint64_t map_checks;   /* RBLOCK_AGAIN: goes after a map reply beyond
	                          this ... */
	uint64_t retry_at;     /* ... or NARF_FWD_BLOCK_RETRY_MS after this,
	                          never before it */
};

/*
 * A forwarded request awaiting its reply. A connection may have up to
 * NARF_FWD_MAX out, to any nodes, while it goes on running requests here;
 * replies still reach the client in request order: a reply that comes
 * before those of earlier requests waits in `reply`, and the replies of
 * requests run here after this one wait in `after`.
 */
struct fwd {
	struct narf_rconn *conn;
	struct narf_proxy *px; /* NULL once answered */
	struct fwd *next;
	bool answered;
	bool moved_self;       /* -MOVED naming us: see moved_self_checks */
	struct narf_buf reply; /* its reply, while an earlier one is out */
	struct narf_buf after; /* replies of the requests after it */
};

struct narf_rconn {
	uv_tcp_t tcp; /* tcp.data == this */
	uv_write_t wreq;
	struct narf_dn *dn; /* borrowed */
	/* owned: TLS state of a connection to --tls-port, or NULL; `in` and
	 * `out` hold plain text either way (server.c) */
	struct narf_tls_conn *tls;
	struct narf_rconn *prev, *next;
	struct narf_client client;
	struct narf_buf in; /* query buffer: the request in progress */
	size_t need;        /* parser's hint for the next read */
	struct narf_resp_req req;
	struct narf_buf out;     /* replies being built */
	struct narf_buf sending; /* replies handed to uv_write */
	uint64_t last_active_ms;
	bool writing;
	bool reading;
	bool closing;
	bool pipeline_paused; /* whole requests wait in `in` until replies
	                         are written (not a wait: see the top) */
	bool throttled;       /* read its share this iteration (check_cb) */
	bool flush_queued;    /* on dn->flushq */
	uint64_t read_iter;   /* the iteration read_bytes counts for */
	size_t read_bytes;
	/* waiting (cluster): see the top of the file */
	enum narf_conn_wait wait;
	uint64_t wait_ms; /* when it began (RETRY and WAIT time out from it) */
	struct narf_rconn *bprev, *bnext; /* on dn->blocked */
	bool on_blocked;
	bool retry_expired; /* the next request put off fails instead */
	struct fwd *fwd_head, *fwd_tail; /* owned: forwarded, oldest first */
	unsigned fwd_n;
	size_t fwd_bytes;    /* replies waiting in them (reply, after) */
	bool processing;     /* inside conn_process() */
	size_t px_len;       /* the last request's bytes, kept at the front
	                        of `in` while it is forwarded (fwd_tail) */
	unsigned reroutes;   /* -MOVED answers to it so far */
	uint64_t reroute_ms; /* when the first of them came */
	uint64_t map_checks; /* a re-route (NARF_WAIT_MAP, or owed behind a
	                        drain) waits for a map newer than this many
	                        map replies (0: none waits) */
	uint64_t map_ms;     /* when that re-route began to wait */
	uint64_t moved_self_checks; /* fwd.moved_self replies go out after a
	                               map newer than this many map replies
	                               (0: none) */
	uint64_t moved_self_ms;     /* when the first of them came */
	struct scatter *sc;         /* owned: the split request whose parts are
	                               out (NARF_WAIT_SCATTER), or NULL */
	/* owned by dn->engine.block: exactly while NARF_WAIT_KEYS */
	struct narf_waiter *waiter;
	struct rblock *rb;     /* owned: exactly while NARF_WAIT_REMOTE */
	struct narf_gate gate; /* what the gated replies wait for: non-empty
	                          exactly while they wait (ack gate) */
	struct narf_gate last; /* what the last writes needed (WAIT) */
};

/* Runs no requests now: it waits (see the top of the file). */
static inline bool narf_conn_blocked(const struct narf_rconn *c)
{
	return c->wait != NARF_WAIT_NONE;
}

/* Its replies wait behind the ack gate (NARF_WAIT_ACKS, or owed). */
static inline bool narf_conn_gated(const struct narf_rconn *c)
{
	return c->gate.n > 0;
}

/* --- server.c ------------------------------------------------------------ */

/* Begin waiting for what (not NARF_WAIT_NONE) and put the connection on
 * dn->blocked. It waits for nothing else then, but for an owed ack gate;
 * only NARF_WAIT_MAP may begin while it waits for acks or a retry. */
void narf_conn_wait_begin(struct narf_rconn *c, enum narf_conn_wait what);
/* Trade wait `from` for `to` (KEYS and REMOTE: a blocked pop whose slot
 * moved), keeping what is owed. */
void narf_conn_wait_switch(struct narf_rconn *c,
                           enum narf_conn_wait from,
                           enum narf_conn_wait to);
/* Replies were added to c outside its own requests (a peer's blocked pop
 * answered in a push frame): have the check handle write them, behind
 * the ack gate when they wait for acks. */
void narf_conn_poke(struct narf_rconn *c);
/* The wait for what is over: the connection then waits for what is owed
 * (a re-route behind a drain, else its ack gate) or for nothing. It stays
 * on dn->blocked until the check handle resumes it. */
void narf_conn_wait_end(struct narf_rconn *c, enum narf_conn_wait what);
/* "none", "acks", ... for logs. */
const char *narf_conn_wait_name(enum narf_conn_wait w);
/* Where the replies of requests run now go: after every forwarded one
 * (fwd_tail->after, counted in fwd_bytes by the caller) or to `out`. */
struct narf_buf *narf_conn_reply_buf(struct narf_rconn *c);
/* End the replication batch open since narf_repl_batch_begin: what its
 * writes need goes into c->last (WAIT) and, unless c acks on the primary,
 * c->gate. Nothing outside a cluster. */
void narf_conn_gate_batch(struct narf_rconn *c);
/* Something on dn->blocked may go on: have the check handle look soon,
 * without waiting for I/O (from a timer callback, or a connection
 * resumed by the check handle itself). */
void narf_dn_kick(struct narf_dn *dn);

/* --- blocking_io.c -------------------------------------------------------- */

/* The request in c->req returned NARF_EXEC_BLOCK: make it a waiter and
 * begin NARF_WAIT_KEYS. A peer's NARF.REQ with a token waits under it and
 * is answered +NARF.BLOCKED, then in a push frame; other peer requests
 * never block (the timeout's answer). false when out of memory (the
 * caller closes). */
bool narf_dn_block_begin(struct narf_rconn *c);
/* c's blocking pop argv returned NARF_EXEC_BLOCK (c's block_* fields
 * say what it waits for): wait until deadline (loop ms, 0: forever),
 * NARF_WAIT_KEYS instead of NARF_WAIT_REMOTE when it was forwarded. */
bool narf_dn_block_local(struct narf_rconn *c,
                         int argc,
                         const char *const *argv,
                         const size_t *argvlen,
                         uint64_t deadline);
/* A peer link closes: forget its blocked pops. */
void narf_dn_block_drop_peer(struct narf_rconn *c);
/* Serve the keys signalled so far, running waiters' requests again;
 * `running` is the connection whose batch is open (its writes so far are
 * gated first), or NULL. */
void narf_dn_block_serve(struct narf_dn *dn, struct narf_rconn *running);
/* c closes: forget its waiter, popping nothing for it. */
void narf_dn_block_drop(struct narf_rconn *c);
/* From the check handle: what the above put off. */
void narf_dn_block_check(struct narf_dn *dn);
/* The timeout timer: set up at start, closed at stop. */
void narf_dn_block_start(struct narf_dn *dn);
void narf_dn_block_stop(struct narf_dn *dn);

/* --- forward.c ----------------------------------------------------------- */

/* Forward the parsed request (conn->req) to e->proxy_node, queued behind
 * the connection's other forwarded requests; false when it cannot be (the
 * caller answers -TRYAGAIN). */
bool narf_fwd_start(struct narf_rconn *conn);
/* Move answered forwarded requests at the head of the queue, with the
 * replies that followed them, to conn->out. */
void narf_fwd_pop(struct narf_rconn *conn);
/* Split a request whose keys several nodes lead (NARF_EXEC_SPLIT): one
 * request per owner, merged into conn->out when all are in; false (with
 * the error in out) when it cannot start. */
bool narf_scatter_start(struct narf_rconn *conn,
                        const struct narf_resp_req *req,
                        struct narf_buf *out);
/* The connection closes: forget every forwarded request and split part. */
void narf_fwd_close(struct narf_rconn *conn);

/* --- fwd_block.c --------------------------------------------------------- */

/* c's blocking pop argv goes to e->proxy_node (route() said so) and may
 * wait until deadline (loop ms, 0: forever): NARF_WAIT_REMOTE (from
 * NARF_WAIT_KEYS, or none). false when out of memory (nothing changed). */
bool narf_fwd_block_begin(struct narf_rconn *c,
                          int argc,
                          const char *const *argv,
                          const size_t *argvlen,
                          uint64_t deadline);
/* The deadline a client's blocking pop asks for (loop ms; 0: forever, or
 * a timeout the owner will refuse). */
uint64_t narf_fwd_block_deadline(struct narf_rconn *c,
                                 int argc,
                                 const char *const *argv,
                                 const size_t *argvlen);
/* From the check handle, while NARF_WAIT_REMOTE: route it again, or
 * answer it when its time is up. */
void narf_fwd_block_check(struct narf_rconn *c, uint64_t now);
/* c closes: the owner forgets the pop (NARF.UNBLOCK). */
void narf_fwd_block_close(struct narf_rconn *c);

/* Stopping (server.c and server_stop.c): stop accepting and answer what
 * is in flight, then stop; a step of a leave before that (from the cron);
 * the signal handlers, set up at start. */
void narf_dn_start_drain(struct narf_dn *dn);
void narf_dn_leave_step(struct narf_dn *dn);
void narf_dn_watch_signals(struct narf_dn *dn);

#endif
