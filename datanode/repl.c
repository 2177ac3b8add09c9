/*
 * Replication, slot sync and proxying: see repl.h for the protocol.
 *
 * Per peer node: a replication link and a proxy link (struct link), and
 * three slot bitsets. `fwd`: the slot's live writes go to the peer (it holds
 * the whole slot, or is being sent it). `counts`: the peer's acks count for
 * clients (it is in the slot's ISR in the map, or we synced it and asked the
 * coordinator to add it). `want`: the slot is to be synced to the peer.
 *
 * A link failure (connection error, -STALE, an ack lagging past the node
 * timeout) ends forwarding to the peer, forgets what was synced to it, and
 * asks the coordinator to drop it from the ISR of our slots; until that
 * entry is applied, clients whose writes need the peer keep waiting. Then
 * the peer is excused, a new link is made, and its slots are synced again.
 */
#include "repl.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/flags.h"
#include "common/log.h"
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
	bool handoff_inflight;
	uint64_t handoff_ms; /* when writes to the first of them stopped */
	unsigned n_handoff;  /* bits set in handoff */
	/* want, ready or handoff may hold slots: prepare_cb looks (it runs
	 * every loop iteration, so it must not scan 16384 bits for nothing) */
	bool work;
	uint64_t synced; /* slots synced to this peer, ever */
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
	 * the sync: the slot's entries stay (see may_drop()). */
	uint64_t *sync_epoch;
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
};

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- bitsets ------------------------------------------------------------- */

static bool bit(const uint64_t *set, unsigned s)
{
	return (set[s / 64] >> (s % 64)) & 1u;
}

static void bit_set(uint64_t *set, unsigned s)
{
	set[s / 64] |= (uint64_t)1 << (s % 64);
}

static void bit_clear(uint64_t *set, unsigned s)
{
	set[s / 64] &= ~((uint64_t)1 << (s % 64));
}

static unsigned bits_count(const uint64_t *set)
{
	unsigned n = 0;

	for (unsigned i = 0; i < WORDS; i++)
		n += (unsigned)__builtin_popcountll(set[i]);
	return n;
}

static void progress(struct narf_repl *r)
{
	if (r->progress_cb != NULL)
		r->progress_cb(r->progress_data);
}

/* --- gates --------------------------------------------------------------- */

void narf_gate_clear(struct narf_gate *g)
{
	g->n = 0;
	g->epoch = 0;
	g->n_slots = 0;
	g->many = false;
}

static void gate_slot(struct narf_gate *g, unsigned slot)
{
	for (unsigned i = 0; i < g->n_slots; i++)
		if (g->slots[i] == slot)
			return;
	if (g->n_slots < NARF_GATE_SLOTS)
		g->slots[g->n_slots++] = (uint16_t)slot;
	else
		g->many = true;
}

/* Did we lose a slot the gate's writes went to, after they ran? */
static bool gate_lost_slot(const struct narf_repl *r, const struct narf_gate *g)
{
	if (g->many) {
		for (unsigned s = 0; s < NARF_SLOTS; s++)
			if (r->lost_at[s] > g->epoch)
				return true;
		return false;
	}
	for (unsigned i = 0; i < g->n_slots; i++)
		if (r->lost_at[g->slots[i]] > g->epoch)
			return true;
	return false;
}

void narf_gate_close(struct narf_gate *g)
{
	free(g->need);
	memset(g, 0, sizeof(*g));
}

/* Record that g needs seq on peer/gen (the highest wins). */
static void gate_need(struct narf_gate *g,
                      uint32_t peer,
                      uint32_t gen,
                      uint64_t seq)
{
	for (unsigned i = 0; i < g->n; i++)
		if (g->need[i].peer == peer && g->need[i].gen == gen) {
			if (seq > g->need[i].seq)
				g->need[i].seq = seq;
			return;
		}
	if (g->n == g->cap) {
		unsigned cap = g->cap ? 2 * g->cap : 4;
		struct narf_need *n = realloc(g->need, cap * sizeof(*n));

		if (n == NULL) {
			/* Cannot remember the exact need: wait for the most
			 * a peer can give, an excuse or everything sent. */
			if (g->n > 0)
				g->need[g->n - 1].seq = UINT64_MAX;
			return;
		}
		g->need = n;
		g->cap = cap;
	}
	g->need[g->n++] = (struct narf_need){peer, gen, seq};
}

static struct narf_peer *peer_find(const struct narf_repl *r, uint32_t id)
{
	for (unsigned i = 0; i < r->n_peers; i++)
		if (r->peers[i]->id == id)
			return r->peers[i];
	return NULL;
}

static bool excused(const struct narf_peer *p)
{
	return !p->dropping && p->n_counts == 0;
}

/* Has the peer applied what n needs? */
static bool need_acked(const struct narf_repl *r, const struct narf_need *n)
{
	const struct narf_peer *p = peer_find(r, n->peer);

	return p != NULL && n->seq != UINT64_MAX && p->repl != NULL &&
	       p->gen == n->gen && p->repl->acked >= n->seq;
}

/*
 * Every need acknowledged, or excused: the peer was dropped from the ISR of
 * every slot we lead. An excuse is worth nothing once we have lost a slot
 * since the batch ran: the coordinator may have made that very peer the
 * slot's primary (a role swap) before our drop, and it never applied the
 * write (it refused our stream as stale). Such a gate is broken: the
 * client must see an error, never "OK". Its ack can still come over the
 * same link, though (a handoff: we lost the slot to its target, which
 * acknowledged everything first, while another replica's ack is on its
 * way): while that link lives the gate waits for it; the lag check ends
 * the link if the ack never comes.
 */
bool narf_repl_gate_open(const struct narf_repl *r,
                         const struct narf_gate *g,
                         bool *broken)
{
	*broken = false;
	for (unsigned i = 0; i < g->n; i++) {
		const struct narf_peer *p;

		if (need_acked(r, &g->need[i]))
			continue;
		p = peer_find(r, g->need[i].peer);
		if (gate_lost_slot(r, g)) {
			if (p != NULL && p->repl != NULL &&
			    p->gen == g->need[i].gen &&
			    g->need[i].seq != UINT64_MAX)
				return false; /* the ack may still come */
			*broken = true;
			return false;
		}
		if (p != NULL && !excused(p))
			return false;
	}
	return true;
}

unsigned narf_repl_gate_acked(const struct narf_repl *r,
                              const struct narf_gate *g)
{
	unsigned n = 0;

	for (unsigned i = 0; i < g->n; i++)
		n += need_acked(r, &g->need[i]);
	return n;
}

void narf_repl_batch_begin(struct narf_repl *r)
{
	r->in_batch = true;
	narf_gate_clear(&r->batch);
}

void narf_gate_merge(struct narf_gate *dst, const struct narf_gate *src)
{
	if (src->n == 0)
		return;
	if (dst->n == 0 || src->epoch < dst->epoch)
		dst->epoch = src->epoch;
	for (unsigned i = 0; i < src->n; i++)
		gate_need(dst, src->need[i].peer, src->need[i].gen,
		          src->need[i].seq);
	dst->many = dst->many || src->many;
	for (unsigned i = 0; i < src->n_slots; i++)
		gate_slot(dst, src->slots[i]);
}

bool narf_repl_batch_end(struct narf_repl *r, struct narf_gate *gate)
{
	r->in_batch = false;
	if (r->batch.n == 0)
		return false;
	r->batch.epoch = r->epoch;
	narf_gate_merge(gate, &r->batch);
	narf_gate_clear(&r->batch);
	return true;
}

void narf_repl_set_progress_cb(struct narf_repl *r,
                               void (*cb)(void *data),
                               void *data)
{
	r->progress_cb = cb;
	r->progress_data = data;
}

/* --- links --------------------------------------------------------------- */

static void link_fail(struct link *l, const char *why);
static void link_flush(struct link *l);

static void link_tcp_closed_cb(uv_handle_t *h)
{
	free(h);
}

static void link_free(struct link *l)
{
	struct narf_proxy *px = l->head;

	while (px != NULL) {
		struct narf_proxy *next = px->next;
		static const char err[] =
		        "-TRYAGAIN the slot's owner did not answer\r\n";

		if (px->done != NULL)
			px->done(px->data, err, sizeof(err) - 1);
		free(px);
		px = next;
	}
	if (l->creq != NULL) /* libuv cancels it once the handle closes */
		l->creq->data = NULL;
	narf_buf_close(&l->out);
	narf_buf_close(&l->in);
	if (!l->writing)
		narf_buf_close(&l->sending);
	if (l->tcp != NULL) {
		l->tcp->data = NULL;
		uv_close((uv_handle_t *)l->tcp, link_tcp_closed_cb);
		l->tcp = NULL;
	}
	if (l->writing)
		l->wreq.data = NULL; /* write_cb frees what is left */
	else
		free(l);
}

static void link_write_cb(uv_write_t *req, int status)
{
	struct link *l = req->data;

	if (l == NULL) { /* the link was freed while this write ran */
		struct link *dead =
		        (struct link *)((char *)req -
		                        offsetof(struct link, wreq));

		narf_buf_close(&dead->sending);
		free(dead);
		return;
	}
	l->writing = false;
	l->sending.len = 0;
	narf_buf_shrink(&l->sending, 64 * 1024);
	if (status != 0) {
		link_fail(l, uv_strerror(status));
		return;
	}
	link_flush(l);
}

static void link_flush(struct link *l)
{
	struct narf_buf tmp;
	uv_buf_t b;
	int n;

	if (!l->connected || l->writing || l->out.len == 0)
		return;
	b = uv_buf_init(l->out.data, (unsigned)l->out.len);
	n = uv_try_write((uv_stream_t *)l->tcp, &b, 1);
	if (n == (int)l->out.len) {
		l->out.len = 0;
		narf_buf_shrink(&l->out, 64 * 1024);
		return;
	}
	if (n < 0 && n != UV_EAGAIN) {
		link_fail(l, uv_strerror(n));
		return;
	}
	if (n > 0)
		narf_buf_consume(&l->out, (size_t)n);
	tmp = l->sending;
	l->sending = l->out;
	l->out = tmp;
	b = uv_buf_init(l->sending.data, (unsigned)l->sending.len);
	l->wreq.data = l;
	if (uv_write(&l->wreq, (uv_stream_t *)l->tcp, &b, 1, link_write_cb) !=
	    0) {
		link_fail(l, "write failed");
		return;
	}
	l->writing = true;
}

/* One reply arrived on l. */
static void link_reply(struct link *l, const char *p, size_t len)
{
	if (l->kind == LINK_PROXY) {
		struct narf_proxy *px = l->head;

		if (px == NULL) {
			link_fail(l, "a reply nobody asked for");
			return;
		}
		l->head = px->next;
		if (l->head == NULL)
			l->tail = NULL;
		l->acked++;
		l->progress_ms = uv_now(l->r->loop);
		if (px->done != NULL)
			px->done(px->data, p, len);
		free(px);
		return;
	}
	if (p[0] == '-') {
		char msg[128];

		snprintf(msg, sizeof(msg), "refused: %.*s",
		         (int)(len > 100 ? 100 : len - 2), p + 1);
		link_fail(l, msg);
		return;
	}
	l->acked++;
	l->r->acks++;
	l->progress_ms = uv_now(l->r->loop);
}

static void link_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct link *l = h->data;

	if (l == NULL || narf_buf_reserve(&l->in, 64 * 1024) != 0) {
		*buf = uv_buf_init(NULL, 0);
		return;
	}
	*buf = uv_buf_init(l->in.data + l->in.len,
	                   (unsigned)(l->in.cap - l->in.len));
}

static void link_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct link *l = s->data;
	struct narf_peer *p;
	size_t pos = 0, len;
	uint64_t acked;
	int rv;

	if (l == NULL)
		return;
	if (nread < 0) {
		link_fail(l, nread == UV_EOF ? "closed by the peer"
		                             : uv_strerror((int)nread));
		return;
	}
	p = l->p;
	acked = l->acked;
	l->in.len += (size_t)nread;
	while ((rv = narf_resp_reply_len(l->in.data + pos, l->in.len - pos,
	                                 MAX_REPLY, &len)) == NARF_RESP_DONE) {
		link_reply(l, l->in.data + pos, len);
		if (p->repl != l && p->proxy != l)
			return; /* link_reply failed the link */
		pos += len;
	}
	if (rv == NARF_RESP_ERROR) {
		link_fail(l, "a reply that is not RESP");
		return;
	}
	narf_buf_consume(&l->in, pos);
	if (l->kind == LINK_REPL && l->acked != acked)
		progress(l->r);
}

/* Append a command to l (kept even before the link is up). */
static int link_cmd(struct link *l,
                    int argc,
                    const char *const *argv,
                    const size_t *argvlen)
{
	if (narf_resp_command(&l->out, argc, argv, argvlen) != 0)
		return NARF_ENOMEM;
	if (l->sent == l->acked)
		l->progress_ms = uv_now(l->r->loop);
	l->sent++;
	return 0;
}

/* The link's first command; NARF_ENOMEM when the link is unusable. */
static int link_hello(struct link *l)
{
	char id[16];
	const char *argv[] = {"NARF.HELLO", id, l->r->secret};
	size_t argvlen[3];

	snprintf(id, sizeof(id), "%u", l->r->member->node_id);
	argvlen[0] = strlen(argv[0]);
	argvlen[1] = strlen(id);
	argvlen[2] = l->r->secret != NULL ? strlen(l->r->secret) : 0;
	link_cmd(l, l->r->secret != NULL ? 3 : 2, argv, argvlen);
	if (l->kind == LINK_PROXY) {
		struct narf_proxy *px = calloc(1, sizeof(*px));

		/* The HELLO's reply needs a place in the queue; without
		 * memory the link cannot be used. */
		if (px == NULL)
			return NARF_ENOMEM;
		l->head = l->tail = px;
	}
	return 0;
}

static void link_connect_cb(uv_connect_t *req, int status)
{
	struct link *l = req->data; /* NULL once the link was freed */

	free(req);
	if (l == NULL)
		return;
	l->creq = NULL;
	if (l->tcp == NULL)
		return;
	if (status != 0) {
		link_fail(l, uv_strerror(status));
		return;
	}
	uv_tcp_nodelay(l->tcp, 1);
	if (uv_read_start((uv_stream_t *)l->tcp, link_alloc_cb, link_read_cb) !=
	    0) {
		link_fail(l, "cannot read");
		return;
	}
	l->connected = true;
	l->p->work = true;
	NARF_DEBUG("repl: %s link to node %u (%s) up",
	           l->kind == LINK_REPL ? "replication" : "proxy", l->p->id,
	           l->p->addr);
	link_flush(l);
}

static struct link *link_open(struct narf_repl *r,
                              struct narf_peer *p,
                              enum link_kind kind)
{
	struct link *l = calloc(1, sizeof(*l));
	uv_connect_t *req = malloc(sizeof(*req));
	char host[NARF_ADDR_SIZE];
	struct sockaddr_in sa;
	int port;

	if (l == NULL || req == NULL ||
	    narf_parse_hostport(p->addr, host, sizeof(host), &port) != 0 ||
	    uv_ip4_addr(strcmp(host, "localhost") == 0 ? "127.0.0.1" : host,
	                port, &sa) != 0 ||
	    (l->tcp = malloc(sizeof(*l->tcp))) == NULL) {
		free(l);
		free(req);
		return NULL;
	}
	l->r = r;
	l->p = p;
	l->kind = kind;
	narf_buf_init(&l->out);
	narf_buf_init(&l->sending);
	narf_buf_init(&l->in);
	uv_tcp_init(r->loop, l->tcp);
	l->tcp->data = l;
	req->data = l;
	l->creq = req;
	if (uv_tcp_connect(req, l->tcp, (const struct sockaddr *)&sa,
	                   link_connect_cb) != 0) {
		l->creq = NULL;
		free(req);
		link_free(l);
		return NULL;
	}
	if (kind == LINK_REPL)
		l->gen = ++p->gen;
	if (link_hello(l) != 0) {
		link_free(l); /* cancels the connect */
		return NULL;
	}
	return l;
}

static void ask_drop(struct narf_repl *r, struct narf_peer *p);
static void recount(struct narf_peer *p);

static void peer_slot_rule(struct narf_repl *r,
                           struct narf_peer *p,
                           const struct narf_map *map,
                           unsigned s);

/*
 * A link broke. A proxy link fails its waiting requests. A replication
 * link ends forwarding and pending ISR joins to the peer; when the peer's
 * acks count anywhere, clients wait until the coordinator drops it.
 */
static void link_fail(struct link *l, const char *why)
{
	struct narf_repl *r = l->r;
	struct narf_peer *p = l->p;
	const struct narf_map *map = r->member->map;

	if (l->kind == LINK_PROXY) {
		NARF_INFO("repl: proxy link to node %u (%s) failed: %s", p->id,
		          p->addr, why);
		p->proxy = NULL;
		link_free(l);
		return;
	}
	NARF_WARN("repl: replication link to node %u (%s) failed: %s", p->id,
	          p->addr, why);
	p->repl = NULL;
	p->failed_ms = uv_now(r->loop);
	link_free(l);
	/* What was synced must be synced again; joins in flight die. */
	memset(p->fwd, 0, sizeof(p->fwd));
	memset(p->ready, 0, sizeof(p->ready));
	memset(p->asked, 0, sizeof(p->asked));
	p->n_joins = 0;
	if (p->n_counts > 0 || p->add_inflight)
		ask_drop(r, p);
	for (unsigned s = 0; map != NULL && s < NARF_SLOTS; s++)
		peer_slot_rule(r, p, map, s);
	recount(p);
	p->work = true;
	progress(r);
}

/* --- peers --------------------------------------------------------------- */

static struct narf_peer *peer_get(struct narf_repl *r,
                                  const struct narf_map *map,
                                  uint32_t id)
{
	struct narf_peer *p = peer_find(r, id);
	const struct narf_map_node *n = narf_map_node_get(map, id);

	if (p != NULL || n == NULL)
		return p;
	if (r->n_peers == r->cap_peers) {
		unsigned cap = r->cap_peers ? 2 * r->cap_peers : 8;
		struct narf_peer **a = realloc(r->peers, cap * sizeof(*a));

		if (a == NULL)
			return NULL;
		r->peers = a;
		r->cap_peers = cap;
	}
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return NULL;
	p->id = id;
	snprintf(p->addr, sizeof(p->addr), "%s", n->addr);
	r->peers[r->n_peers++] = p;
	return p;
}

static void isr_reply(void *data,
                      uint32_t peer,
                      bool drop,
                      bool ok,
                      uint64_t epoch)
{
	struct narf_repl *r = data;
	struct narf_peer *p = peer_find(r, peer);

	if (p == NULL)
		return;
	if (drop) {
		p->drop_inflight = false;
		if (!ok)
			return; /* the cron asks again */
		p->drop_epoch = epoch;
		if (r->epoch >= epoch) {
			p->dropping = false;
			progress(r);
		}
		NARF_INFO(
		        "repl: node %u dropped from our ISRs at epoch %" PRIu64,
		        p->id, epoch);
		return;
	}
	p->add_inflight = false;
	if (!ok) {
		p->work = true;
		/* Ask again for what was asked and is still forwarded (a
		 * link failure since means those slots sync again). */
		for (unsigned i = 0; i < WORDS; i++)
			p->ready[i] |= p->asked[i] & p->fwd[i] & r->lead[i];
	}
	memset(p->asked, 0, sizeof(p->asked));
}

static void ask_drop(struct narf_repl *r, struct narf_peer *p)
{
	p->dropping = true;
	p->drop_epoch = UINT64_MAX;
	if (p->drop_inflight)
		return;
	if (narf_member_isr(r->member, p->id, true, NULL, isr_reply, r) == 0)
		p->drop_inflight = true;
}

/* Ask the coordinator to add p to the ISR of the slots in p->ready. */
static json_t *ranges_of(const uint64_t *set);

static void ask_add(struct narf_repl *r, struct narf_peer *p)
{
	json_t *ranges;

	/* Only slots still ours and still forwarded to the peer. */
	for (unsigned i = 0; i < WORDS; i++)
		p->asked[i] = p->ready[i] & p->fwd[i] & r->lead[i];
	memset(p->ready, 0, sizeof(p->ready));
	if (bits_count(p->asked) == 0)
		return;
	ranges = ranges_of(p->asked);
	if (ranges != NULL && narf_member_isr(r->member, p->id, false, ranges,
	                                      isr_reply, r) == 0) {
		p->add_inflight = true;
		p->add_ms = uv_now(r->loop);
	} else {
		for (unsigned i = 0; i < WORDS; i++)
			p->ready[i] |= p->asked[i];
		memset(p->asked, 0, sizeof(p->asked));
	}
}

/*
 * Synced slots join the ISR in batches: every isr entry is a new map epoch
 * that the coordinators apply and every node fetches, and slots finish
 * syncing one by one (thousands a second when they are small). So a batch
 * goes at most every NARF_ISR_ADD_MS while more slots are syncing to the
 * peer; the last one goes at once.
 */
static bool add_due(const struct narf_repl *r, const struct narf_peer *p)
{
	for (unsigned w = 0; w < WORDS; w++)
		if (p->want[w] != 0)
			return uv_now(r->loop) - p->add_ms >= NARF_ISR_ADD_MS;
	return true;
}

static void recount(struct narf_peer *p)
{
	p->n_counts = bits_count(p->counts);
}

/* --- the write stream ---------------------------------------------------- */

static int fmt_u64(char *buf, uint64_t v)
{
	return (int)narf_format_u64(buf, v);
}

/* Send the state of one key of slot s to p (e NULL: deleted). */
static void send_key(struct narf_repl *r,
                     struct link *l,
                     uint64_t slot_epoch,
                     const char *key,
                     size_t klen,
                     const struct narf_entry *e)
{
	char ep[24], px[24];
	const char *argv[5];
	size_t argvlen[5];
	size_t before = l->out.len;

	argvlen[1] = (size_t)fmt_u64(ep, slot_epoch);
	argv[1] = ep;
	argv[2] = key;
	argvlen[2] = klen;
	if (e != NULL) {
		int64_t exp = narf_entry_expire(e);

		argv[0] = "NARF.SET";
		argvlen[0] = 8;
		argv[3] = narf_entry_value(e, &argvlen[3]);
		argvlen[4] = (size_t)fmt_u64(px, exp > 0 ? (uint64_t)exp : 0);
		argv[4] = px;
		link_cmd(l, 5, argv, argvlen);
	} else {
		argv[0] = "NARF.DEL";
		argvlen[0] = 8;
		link_cmd(l, 3, argv, argvlen);
	}
	r->stream_msgs++;
	r->stream_bytes += l->out.len - before;
}

static const struct narf_map *repl_map(const struct narf_repl *r)
{
	return r->member != NULL ? r->member->map : NULL;
}

static void stream_change(struct narf_repl *r,
                          unsigned slot,
                          const char *key,
                          size_t klen,
                          const struct narf_entry *e)
{
	const struct narf_map *map = repl_map(r);

	if (map == NULL || !bit(r->lead, slot) || r->applying)
		return;
	for (unsigned i = 0; i < r->n_peers; i++) {
		struct narf_peer *p = r->peers[i];
		bool fwd = bit(p->fwd, slot) && p->repl != NULL;

		if (fwd)
			send_key(r, p->repl, map->slots[slot].epoch, key, klen,
			         e);
		if (r->in_batch && bit(p->counts, slot)) {
			gate_need(&r->batch, p->id, fwd ? p->gen : 0,
			          fwd ? p->repl->sent : UINT64_MAX);
			gate_slot(&r->batch, slot);
		}
	}
}

void narf_repl_store_write(void *data,
                           unsigned slot,
                           const char *key,
                           size_t klen,
                           const struct narf_entry *e)
{
	stream_change(data, slot, key, klen, e);
}

void narf_repl_store_removed(void *data,
                             unsigned slot,
                             const char *key,
                             size_t klen,
                             enum narf_store_reason why)
{
	stream_change(data, slot, key, klen, NULL);
}

/* --- sync ---------------------------------------------------------------- */

struct dump {
	struct narf_repl *r;
	struct link *l;
	uint64_t epoch;
};

static bool dump_entry(void *data, const struct narf_entry *e)
{
	struct dump *d = data;
	size_t klen;
	const char *key = narf_entry_key(e, &klen);

	send_key(d->r, d->l, d->epoch, key, klen, e);
	return true;
}

/* NARF.SYNC <slot> <slot epoch> <map epoch> (map_epoch != 0) or
 * NARF.SYNCED <slot> <slot epoch>. */
static void slot_marker(struct link *l,
                        const char *cmd,
                        unsigned slot,
                        uint64_t epoch,
                        uint64_t map_epoch)
{
	char s[16], ep[24], mep[24];
	const char *argv[] = {cmd, s, ep, mep};
	size_t argvlen[4];

	argvlen[0] = strlen(cmd);
	argvlen[1] = (size_t)snprintf(s, sizeof(s), "%u", slot);
	argvlen[2] = (size_t)fmt_u64(ep, epoch);
	argvlen[3] = (size_t)fmt_u64(mep, map_epoch);
	link_cmd(l, map_epoch != 0 ? 4 : 3, argv, argvlen);
}

/* Send slot s whole to p and start forwarding its writes. */
static void sync_slot(struct narf_repl *r, struct narf_peer *p, unsigned s)
{
	const struct narf_map *map = repl_map(r);
	struct dump d = {r, p->repl, map->slots[s].epoch};
	struct join *j;

	if (p->n_joins == p->cap_joins) {
		unsigned cap = p->cap_joins ? 2 * p->cap_joins : 64;

		j = realloc(p->joins, cap * sizeof(*j));
		if (j == NULL)
			return; /* stays wanted: tried again later */
		p->joins = j;
		p->cap_joins = cap;
	}
	bit_clear(p->want, s);
	slot_marker(p->repl, "NARF.SYNC", s, d.epoch, map->epoch);
	narf_store_foreach_slot(r->store, s, wall_ms(), dump_entry, &d);
	slot_marker(p->repl, "NARF.SYNCED", s, d.epoch, 0);
	bit_set(p->fwd, s);
	/* From here every write the peer misses would be a write a client
	 * was told is safe once the peer joins: count its acks now. */
	if (!bit(p->counts, s)) {
		bit_set(p->counts, s);
		p->n_counts++;
	}
	p->joins[p->n_joins++] = (struct join){(uint16_t)s, p->repl->sent};
	p->synced++;
}

/*
 * Sync wanted slots to p, a slice at a time: at most NARF_SYNC_SLICE bytes
 * per loop iteration (clients get their turn between slices), never more
 * than NARF_SYNC_HIGH_WATER queued on the link nor NARF_SYNC_INFLIGHT
 * commands awaiting the peer's acks (their arrival pumps again).
 */
static void refill(struct narf_repl *r)
{
	uint64_t now = uv_now(r->loop);

	if (r->sync_rate == 0)
		return;
	r->budget += (int64_t)(r->sync_rate * (now - r->budget_ms) / 1000);
	if (r->budget > (int64_t)(r->sync_rate / 10))
		r->budget = (int64_t)(r->sync_rate / 10);
	r->budget_ms = now;
}

static void pump(struct narf_repl *r, struct narf_peer *p)
{
	size_t start, slice = NARF_SYNC_SLICE;

	if (p->repl == NULL || !p->repl->connected || p->dropping)
		return;
	if (r->sync_rate != 0) {
		refill(r);
		if (r->budget <= 0)
			return;
		if ((uint64_t)r->budget < slice)
			slice = (size_t)r->budget;
	}
	start = p->repl->out.len;
	for (unsigned w = 0; w < WORDS; w++) {
		while (p->want[w] != 0) {
			unsigned s =
			        w * 64 + (unsigned)__builtin_ctzll(p->want[w]);

			if (p->repl->out.len + p->repl->sending.len >
			            NARF_SYNC_HIGH_WATER ||
			    p->repl->sent - p->repl->acked >
			            NARF_SYNC_INFLIGHT ||
			    p->repl->out.len - start > slice)
				goto done;
			sync_slot(r, p, s);
			if (p->repl == NULL)
				return;
			if (bit(p->want, s))
				goto done;
		}
	}
done:
	if (r->sync_rate != 0)
		r->budget -= (int64_t)(p->repl->out.len - start);
}

/* Slots whose NARF.SYNCED the peer acked become ready to join the ISR. */
static void collect_joins(struct narf_repl *r, struct narf_peer *p)
{
	unsigned k = 0;

	if (p->repl == NULL)
		return;
	while (k < p->n_joins && p->joins[k].seq <= p->repl->acked) {
		unsigned s = p->joins[k].slot;

		if (bit(r->lead, s) && bit(p->fwd, s)) {
			bit_set(p->ready, s);
			p->work = true;
		}
		k++;
	}
	if (k > 0) {
		memmove(p->joins, p->joins + k,
		        (p->n_joins - k) * sizeof(p->joins[0]));
		p->n_joins -= k;
	}
}

static json_t *ranges_of(const uint64_t *set)
{
	json_t *ranges = json_array();
	unsigned s = 0;

	while (ranges != NULL && s < NARF_SLOTS) {
		unsigned lo;

		if (!bit(set, s)) {
			s++;
			continue;
		}
		lo = s;
		while (s < NARF_SLOTS && bit(set, s))
			s++;
		json_array_append_new(ranges,
		                      json_pack("[i,i]", (int)lo, (int)s - 1));
	}
	return ranges;
}

static void handoff_reply(void *data,
                          uint32_t peer,
                          bool drop,
                          bool ok,
                          uint64_t epoch)
{
	struct narf_repl *r = data;

	/* Taken: the map that makes the targets primary clears the flag
	 * (narf_repl_map_changed), unless the entry changed nothing (the
	 * moves were cleared meanwhile: that map is here or coming too);
	 * refused: ask again. */
	if (ok && epoch > r->epoch)
		return;
	for (unsigned i = 0; i < r->n_peers; i++) {
		r->peers[i]->handoff_inflight = false;
		r->peers[i]->work = true;
	}
	NARF_INFO("repl: handoff not taken; asking again");
}

/*
 * A handoff is ready when the target has every slot (forwarded) and has
 * acknowledged everything we sent before writes stopped; then we tell the
 * coordinator, which makes it primary with a new slot epoch.
 */
static void report_handoffs(struct narf_repl *r, struct narf_peer *p)
{
	uint64_t ready[WORDS];
	bool any = false;

	if (p->handoff_inflight || p->repl == NULL ||
	    p->repl->acked < p->handoff_seq)
		return;
	for (unsigned w = 0; w < WORDS; w++) {
		ready[w] = p->handoff[w] & p->fwd[w] & p->counts[w];
		any = any || ready[w] != 0;
	}
	if (!any)
		return;
	if (narf_member_handoff(r->member, ranges_of(ready), handoff_reply,
	                        r) == 0) {
		p->handoff_inflight = true;
		NARF_INFO("repl: handing %u slots to node %u",
		          bits_count(ready), p->id);
	}
}

static void pace_cb(uv_timer_t *h)
{
	struct narf_repl *r = h->data;

	r->pacing = false; /* prepare_cb runs next and pumps */
}

static void idle_cb(uv_idle_t *h)
{
	(void)h; /* only keeps the loop from blocking: prepare_cb works */
}

static void prepare_cb(uv_prepare_t *h)
{
	struct narf_repl *r = h->data;
	bool more = false;

	for (unsigned i = 0; i < r->n_peers; i++) {
		struct narf_peer *p = r->peers[i];

		if (p->n_joins > 0)
			collect_joins(r, p);
		if (p->work) {
			bool left = false;

			pump(r, p);
			if (!p->add_inflight && !p->dropping &&
			    bits_count(p->ready) > 0 && add_due(r, p))
				ask_add(r, p);
			report_handoffs(r, p);
			for (unsigned w = 0; !left && w < WORDS; w++)
				left = (p->want[w] | p->ready[w] |
				        p->handoff[w]) != 0;
			p->work = left;
			/* More to sync over a link that can take it: come
			 * back next iteration without waiting for I/O. */
			more = more ||
			       (left && p->repl != NULL && p->repl->connected &&
			        !p->dropping &&
			        p->repl->out.len + p->repl->sending.len <=
			                NARF_SYNC_HIGH_WATER &&
			        p->repl->sent - p->repl->acked <=
			                NARF_SYNC_INFLIGHT);
		}
		if (p->repl != NULL)
			link_flush(p->repl);
		if (p->proxy != NULL)
			link_flush(p->proxy);
	}
	/* Paced out: come back when the bucket has refilled a little. */
	if (more && r->sync_rate != 0 && r->budget <= 0) {
		more = false;
		if (!r->pacing && !r->stopping) {
			uv_timer_start(&r->pace, pace_cb, 10, 0);
			r->pacing = true;
		}
	}
	/* Copies dropped lazily: freed a little every iteration. */
	if (narf_store_reap(r->store, NARF_REAP_BUDGET))
		more = true;
	if (more && !r->idling && !r->stopping) {
		uv_idle_start(&r->idle, idle_cb);
		r->idling = true;
	} else if (!more && r->idling) {
		uv_idle_stop(&r->idle);
		r->idling = false;
	}
}

/* --- the map ------------------------------------------------------------- */

static bool in_list(const uint32_t *list, unsigned n, uint32_t id)
{
	for (unsigned i = 0; i < n; i++)
		if (list[i] == id)
			return true;
	return false;
}

/*
 * What peer p should be for slot s under map: nothing unless we lead s and
 * p replicates it; an ISR member counts for acks and is forwarded to (one
 * we did not sync ourselves, after a promotion, already holds the slot);
 * another replica is synced, unless that is under way (then its acks count
 * already, see sync_slot).
 */
static void peer_slot_rule(struct narf_repl *r,
                           struct narf_peer *p,
                           const struct narf_map *map,
                           unsigned s)
{
	const struct narf_slot *slot = &map->slots[s];

	if (!bit(r->lead, s) ||
	    !in_list(slot->replicas, slot->n_replicas, p->id)) {
		bit_clear(p->fwd, s);
		bit_clear(p->counts, s);
		bit_clear(p->want, s);
		bit_clear(p->ready, s);
		return;
	}
	if (in_list(slot->isr, slot->n_isr, p->id)) {
		bit_set(p->counts, s);
		bit_clear(p->want, s);
		if (p->repl != NULL)
			bit_set(p->fwd, s);
	} else if (!bit(p->fwd, s)) {
		bit_clear(p->counts, s);
		bit_set(p->want, s);
	}
}

/* May our map's lack of a copy of slot s on this node drop the slot's
 * entries? Not while it is older than the map the last sync to us was sent
 * under: that sync made us a copy in a newer map. */
static bool may_drop(const struct narf_repl *r,
                     const struct narf_map *map,
                     unsigned s)
{
	return map->epoch >= r->sync_epoch[s];
}

void narf_repl_map_changed(struct narf_repl *r,
                           const struct narf_map *old,
                           const struct narf_map *map)
{
	uint32_t me = r->member->node_id;

	r->epoch = map->epoch;
	r->node_timeout_ms = map->settings.node_timeout_ms;
	{
		const struct narf_map_node *self = narf_map_node_get(map, me);

		r->leaving =
		        self != NULL && (self->state == NARF_NODE_LEAVING ||
		                         self->state == NARF_NODE_REMOVED);
	}
	/* Drops this map carries are done: those peers may be linked to
	 * again below (they may be ISR members of slots new to us). */
	for (unsigned i = 0; i < r->n_peers; i++) {
		struct narf_peer *p = r->peers[i];

		if (p->dropping && p->drop_epoch != UINT64_MAX &&
		    map->epoch >= p->drop_epoch)
			p->dropping = false;
	}
	/* Peers of every slot we lead, with a link to each ISR member. */
	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		const struct narf_slot *slot = &map->slots[s];

		if (slot->primary != me)
			continue;
		for (unsigned j = 0; j < slot->n_replicas; j++) {
			struct narf_peer *p =
			        peer_get(r, map, slot->replicas[j]);

			if (p != NULL && p->repl == NULL && !p->dropping &&
			    in_list(slot->isr, slot->n_isr, p->id) &&
			    (p->repl = link_open(r, p, LINK_REPL)) == NULL)
				ask_drop(r, p);
		}
	}
	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		const struct narf_slot *slot = &map->slots[s];
		bool lead = slot->primary == me;

		if (bit(r->lead, s) && !lead) {
			r->lost_at[s] = map->epoch;
			bit_clear(r->lead, s);
		}
		if (lead)
			bit_set(r->lead, s);
		/* A sync in progress ends when we lead the slot or drop it
		 * (a map older than the sync does not count). */
		if (lead || (!narf_slot_has(slot, me) && may_drop(r, map, s)))
			bit_clear(r->syncing, s);
		if (lead && slot->move != 0 && slot->move != me) {
			struct narf_peer *t = peer_get(r, map, slot->move);

			/* Writes stop now; what was sent before must be acked
			 * by the target before we report ready. */
			if (t != NULL && !bit(r->handing, s)) {
				if (t->n_handoff++ == 0)
					t->handoff_ms = uv_now(r->loop);
				bit_set(r->handing, s);
				bit_set(t->handoff, s);
				t->handoff_seq = t->repl ? t->repl->sent : 0;
			}
		} else if (bit(r->handing, s)) {
			bit_clear(r->handing, s);
			for (unsigned i = 0; i < r->n_peers; i++) {
				struct narf_peer *t = r->peers[i];

				if (!bit(t->handoff, s))
					continue;
				bit_clear(t->handoff, s);
				if (--t->n_handoff == 0)
					NARF_INFO(
					        "repl: handoffs to node %u "
					        "over "
					        "(it leads the slots, or the "
					        "moves "
					        "were cancelled); writes to "
					        "them "
					        "waited %llu ms",
					        t->id,
					        (unsigned long long)(uv_now(r->loop) -
					                             t->handoff_ms));
			}
		}
		/* A copy we no longer hold is dropped. */
		if (!narf_slot_has(slot, me) && may_drop(r, map, s) &&
		    narf_store_slot_count(r->store, s) > 0)
			narf_store_drop_slot_lazy(r->store, s);
		for (unsigned i = 0; i < r->n_peers; i++)
			peer_slot_rule(r, r->peers[i], map, s);
	}
	for (unsigned i = 0; i < r->n_peers; i++) {
		struct narf_peer *p = r->peers[i];
		const struct narf_map_node *n = narf_map_node_get(map, p->id);

		recount(p);
		p->handoff_inflight = false;
		p->work = true;
		if (p->dropping && p->drop_epoch != UINT64_MAX &&
		    map->epoch >= p->drop_epoch)
			p->dropping = false;
		if (n != NULL && strcmp(n->addr, p->addr) != 0)
			snprintf(p->addr, sizeof(p->addr), "%s", n->addr);
	}
	(void)old;
	progress(r);
}

bool narf_repl_leads(const struct narf_repl *r, unsigned slot)
{
	return bit(r->lead, slot);
}

bool narf_repl_handing_off(const struct narf_repl *r, unsigned slot)
{
	return bit(r->handing, slot);
}

bool narf_repl_replica_ready(const struct narf_repl *r, unsigned slot)
{
	return !bit(r->syncing, slot);
}

/* --- replica side -------------------------------------------------------- */

bool narf_repl_accept(struct narf_repl *r,
                      uint32_t sender,
                      unsigned slot,
                      uint64_t epoch)
{
	const struct narf_map *map = repl_map(r);

	if (map == NULL)
		return true;
	/* An older epoch from the node our map names as the primary is only
	 * an older map there, not a stale primary. */
	if (epoch < map->slots[slot].epoch)
		return map->slots[slot].primary == sender && sender != 0;
	if (epoch == map->slots[slot].epoch &&
	    map->slots[slot].primary == r->member->node_id)
		return false;
	if (epoch > map->slots[slot].epoch)
		narf_member_want_map(r->member);
	return true;
}

void narf_repl_diverged(struct narf_repl *r, uint32_t peer)
{
	struct narf_peer *p = peer_find(r, peer);

	if (p == NULL || p->n_counts == 0)
		return;
	if (p->repl != NULL)
		link_fail(p->repl, "it wrote to our slots as a stale primary");
	else
		ask_drop(r, p);
}

void narf_repl_set_secret(struct narf_repl *r, const char *secret)
{
	r->secret = secret;
}

void narf_repl_set_sync_rate(struct narf_repl *r, uint64_t bytes_per_s)
{
	r->sync_rate = bytes_per_s;
	r->budget = 0;
	r->budget_ms = uv_now(r->loop);
}

bool narf_repl_leaving(const struct narf_repl *r)
{
	return r->leaving;
}

void narf_repl_applying(struct narf_repl *r, bool on)
{
	if (r != NULL)
		r->applying = on;
}

void narf_repl_refresh_map(struct narf_repl *r)
{
	narf_member_want_map(r->member);
}

uint64_t narf_repl_map_checks(const struct narf_repl *r)
{
	return r->member->maps_checked;
}

void narf_repl_sync_begin(struct narf_repl *r,
                          unsigned slot,
                          uint64_t map_epoch)
{
	bit_set(r->syncing, slot);
	if (map_epoch > r->sync_epoch[slot])
		r->sync_epoch[slot] = map_epoch;
	narf_store_drop_slot_lazy(r->store, slot);
}

void narf_repl_sync_end(struct narf_repl *r, unsigned slot)
{
	bit_clear(r->syncing, slot);
}

/* --- proxying ------------------------------------------------------------ */

struct narf_proxy *narf_repl_proxy(struct narf_repl *r,
                                   uint32_t node,
                                   int argc,
                                   const char *const *argv,
                                   const size_t *argvlen,
                                   narf_proxy_done done,
                                   void *data)
{
	const struct narf_map *map = repl_map(r);
	struct narf_peer *p = map ? peer_get(r, map, node) : NULL;
	struct narf_proxy *px;

	if (p == NULL)
		return NULL;
	if (p->proxy == NULL &&
	    (p->proxy = link_open(r, p, LINK_PROXY)) == NULL)
		return NULL;
	px = calloc(1, sizeof(*px));
	if (px == NULL || link_cmd(p->proxy, argc, argv, argvlen) != 0) {
		free(px);
		return NULL;
	}
	px->done = done;
	px->data = data;
	r->proxied++;
	if (p->proxy->tail != NULL)
		p->proxy->tail->next = px;
	else
		p->proxy->head = px;
	p->proxy->tail = px;
	return px;
}

void narf_repl_proxy_cancel(struct narf_proxy *px)
{
	px->done = NULL;
	px->data = NULL;
}

/* --- cron, lifecycle ----------------------------------------------------- */

/*
 * Entries can land in a slot we do not hold after the map change that
 * dropped it: a stream message from a primary that had not seen that map
 * yet. Nothing would remove them (they would show in DBSIZE, SCAN, KEYS
 * and memory), so the cron looks at NARF_SWEEP_SLOTS slots per tick (all
 * of them every ~800 ms) and drops those we do not hold and nobody is
 * syncing to us, once our map is as new as the last sync's sender's was.
 * A new copy always starts with NARF.SYNC, which marks the slot syncing
 * before any entry arrives, even when our map lags.
 */
#define NARF_SWEEP_SLOTS 2048

static void sweep(struct narf_repl *r, const struct narf_map *map)
{
	uint32_t me = r->member->node_id;

	for (unsigned i = 0; i < NARF_SWEEP_SLOTS; i++) {
		unsigned s = r->sweep;
		uint64_t n;

		r->sweep = (r->sweep + 1) % NARF_SLOTS;
		if (me == 0 || narf_slot_has(&map->slots[s], me) ||
		    bit(r->syncing, s) || !may_drop(r, map, s))
			continue;
		n = narf_store_slot_count(r->store, s);
		if (n == 0)
			continue;
		NARF_INFO(
		        "repl: slot %u is not ours (epoch %llu): dropping "
		        "%" PRIu64 " entries left in it",
		        s, (unsigned long long)map->epoch, n);
		narf_store_drop_slot_lazy(r->store, s);
		r->swept += n;
	}
}

void narf_repl_cron(struct narf_repl *r)
{
	uint64_t now = uv_now(r->loop);
	const struct narf_map *map = repl_map(r);
	unsigned lag = r->node_timeout_ms ? r->node_timeout_ms : 600;

	if (map == NULL || r->stopping)
		return;
	sweep(r, map);
	for (unsigned i = 0; i < r->n_peers; i++) {
		struct narf_peer *p = r->peers[i];
		const struct narf_map_node *n = narf_map_node_get(map, p->id);
		bool needed = bits_count(p->want) > 0 || p->n_counts > 0;

		if (p->repl != NULL && p->repl->sent > p->repl->acked &&
		    now - p->repl->progress_ms > lag) {
			link_fail(p->repl, "acknowledgements lag behind");
			continue;
		}
		/* A forwarded request unanswered for this long will not be:
		 * the node is paused or cut off (and failed over by now). */
		if (p->proxy != NULL && p->proxy->sent > p->proxy->acked &&
		    now - p->proxy->progress_ms > 2 * lag + 1000)
			link_fail(p->proxy, "no reply to forwarded requests");
		if (p->dropping && !p->drop_inflight)
			ask_drop(r, p);
		/* (Re)connect when there is something to send, after a
		 * pause when the last attempt failed. */
		if (p->repl == NULL && needed && !p->dropping && n != NULL &&
		    (n->state == NARF_NODE_UP ||
		     n->state == NARF_NODE_LEAVING ||
		     n->state == NARF_NODE_JOINING) &&
		    now - p->failed_ms >= NARF_LINK_RETRY_MS) {
			p->repl = link_open(r, p, LINK_REPL);
			if (p->repl == NULL)
				p->failed_ms = now;
		}
		if (p->repl != NULL && p->n_counts == 0 &&
		    bits_count(p->want) == 0 && bits_count(p->fwd) == 0 &&
		    p->repl->sent == p->repl->acked) {
			/* Nothing of ours there any more. */
			struct link *l = p->repl;

			p->repl = NULL;
			link_free(l);
		}
	}
}

void narf_repl_info(const struct narf_repl *r, struct narf_buf *out)
{
	char line[256];
	unsigned lead = bits_count(r->lead);
	unsigned n;

	n = (unsigned)snprintf(line, sizeof(line),
	                       "slots_led:%u\r\nslots_syncing_here:%u\r\n"
	                       "stream_messages:%" PRIu64
	                       "\r\nstream_bytes:%" PRIu64
	                       "\r\nstream_acks:%" PRIu64
	                       "\r\nstray_entries_dropped:%" PRIu64 "\r\n",
	                       lead, bits_count(r->syncing), r->stream_msgs,
	                       r->stream_bytes, r->acks, r->swept);
	narf_buf_append(out, line, n);
	for (unsigned i = 0; i < r->n_peers; i++) {
		const struct narf_peer *p = r->peers[i];

		n = (unsigned)snprintf(
		        line, sizeof(line),
		        "peer%u:addr=%s,link=%s,sent=%" PRIu64 ",acked=%" PRIu64
		        ",forwarded_slots=%u,isr_slots=%u,syncing=%u,"
		        "dropping=%d\r\n",
		        p->id, p->addr,
		        p->repl == NULL      ? "down"
		        : p->repl->connected ? "up"
		                             : "connecting",
		        p->repl ? p->repl->sent : 0,
		        p->repl ? p->repl->acked : 0, bits_count(p->fwd),
		        p->n_counts, bits_count(p->want), p->dropping);
		narf_buf_append(out, line, n);
	}
}

void narf_repl_stats(const struct narf_repl *r, struct narf_repl_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->slots_led = bits_count(r->lead);
	out->slots_syncing_here = bits_count(r->syncing);
	out->stream_msgs = r->stream_msgs;
	out->stream_bytes = r->stream_bytes;
	out->acks = r->acks;
	out->proxied = r->proxied;
	out->n_peers = r->n_peers;
}

void narf_repl_peer_stats(const struct narf_repl *r,
                          unsigned i,
                          struct narf_repl_peer_stats *out)
{
	const struct narf_peer *p = r->peers[i];
	const struct link *l = p->repl;
	uint64_t now = uv_now(r->loop);

	memset(out, 0, sizeof(*out));
	out->id = p->id;
	out->addr = p->addr;
	out->link_up = l != NULL && l->connected;
	if (l != NULL) {
		out->sent = l->sent;
		out->acked = l->acked;
		if (l->sent > l->acked && now > l->progress_ms)
			out->lag_ms = now - l->progress_ms;
	}
	out->fwd_slots = bits_count(p->fwd);
	out->isr_slots = p->n_counts;
	out->syncing_slots = bits_count(p->want);
	out->synced = p->synced;
	if (p->proxy != NULL) {
		out->proxy_sent = p->proxy->sent;
		out->proxy_answered = p->proxy->acked;
	}
}

struct narf_repl *narf_repl_create(uv_loop_t *loop,
                                   struct narf_store *store,
                                   struct narf_member *member)
{
	struct narf_repl *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->lost_at = calloc(NARF_SLOTS, sizeof(r->lost_at[0]));
	r->sync_epoch = calloc(NARF_SLOTS, sizeof(r->sync_epoch[0]));
	if (r->lost_at == NULL || r->sync_epoch == NULL) {
		free(r->lost_at);
		free(r->sync_epoch);
		free(r);
		return NULL;
	}
	r->loop = loop;
	r->store = store;
	r->member = member;
	uv_idle_init(loop, &r->idle);
	r->idle.data = r;
	uv_timer_init(loop, &r->pace);
	r->pace.data = r;
	uv_prepare_init(loop, &r->prepare);
	r->prepare.data = r;
	uv_prepare_start(&r->prepare, prepare_cb);
	return r;
}

void narf_repl_stop(struct narf_repl *r)
{
	if (r == NULL || r->stopping)
		return;
	r->stopping = true;
	for (unsigned i = 0; i < r->n_peers; i++) {
		struct narf_peer *p = r->peers[i];

		if (p->repl != NULL)
			link_free(p->repl);
		if (p->proxy != NULL)
			link_free(p->proxy);
		p->repl = p->proxy = NULL;
	}
	uv_close((uv_handle_t *)&r->prepare, NULL);
	uv_close((uv_handle_t *)&r->idle, NULL);
	uv_close((uv_handle_t *)&r->pace, NULL);
}

void narf_repl_destroy(struct narf_repl *r)
{
	if (r == NULL)
		return;
	for (unsigned i = 0; i < r->n_peers; i++) {
		free(r->peers[i]->joins);
		free(r->peers[i]);
	}
	free(r->peers);
	free(r->lost_at);
	free(r->sync_epoch);
	narf_gate_close(&r->batch);
	free(r);
}
