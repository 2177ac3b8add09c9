/*
 * A client connection of the data node (internal): its state, shared by
 * server.c (I/O, parsing, running requests, blocking and resuming) and
 * forward.c (requests for slots other nodes lead: forwarded whole, or
 * split by owner and merged).
 */
#ifndef NARF_DN_CONN_H
#define NARF_DN_CONN_H

#include "server.h"

#define NARF_OUT_SOFT_LIMIT (1u << 20)
#define NARF_PARK_MAX_MS 3000
#define NARF_FWD_MAX 512 /* forwarded requests out per connection */

struct scatter;

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
	bool held; /* -MOVED naming us: see narf_rconn.hold_checks */
	struct narf_buf reply; /* its reply, while an earlier one is out */
	struct narf_buf after; /* replies of the requests after it */
};

struct narf_rconn {
	uv_tcp_t tcp; /* tcp.data == this */
	uv_write_t wreq;
	struct narf_dn *dn; /* borrowed */
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
	bool held;      /* whole requests wait in `in` until replies drain */
	bool throttled; /* read its share this iteration (check_cb) */
	uint64_t read_iter; /* the iteration read_bytes counts for */
	size_t read_bytes;
	/* blocking (cluster): see the top of the file */
	struct narf_rconn *bprev, *bnext; /* on dn->blocked */
	bool on_blocked;
	bool gated;
	bool parked;
	bool park_expired; /* the next held request fails instead */
	bool waiting;
	struct fwd *fwd_head, *fwd_tail; /* forwarded, oldest first */
	unsigned fwd_n;
	size_t fwd_bytes;      /* replies waiting in them (reply, after) */
	bool fwd_drain;        /* the next request waits for all of them */
	bool processing;       /* inside conn_process() */
	size_t px_len;         /* the last request's bytes, kept at the front
	                          of `in` while it is forwarded (fwd_tail) */
	unsigned reroutes;     /* -MOVED answers to it so far */
	uint64_t reroute_ms;   /* when the first of them came */
	uint64_t park_checks;  /* parked for a map newer than this many map
	                          replies (0: for the lease) */
	uint64_t hold_checks;  /* held replies (fwd.held) go out after a map
	                          newer than this many map replies (0: none) */
	uint64_t hold_ms;      /* when the hold began */
	struct scatter *sc;    /* a split request's parts are out */
	uint64_t blocked_ms;   /* when parked or WAIT began */
	struct narf_gate gate; /* what the held replies wait for */
	struct narf_gate last; /* what the last writes needed (WAIT) */
};

/* Runs no requests now (see the top of server.c). */
static inline bool narf_conn_blocked(const struct narf_rconn *c)
{
	return c->gated || c->parked || c->waiting || c->sc != NULL ||
	       c->fwd_n >= NARF_FWD_MAX || (c->fwd_drain && c->fwd_n > 0);
}

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

#endif
