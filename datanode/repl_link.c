/*
 * Replication and proxy links to peers (outbound RESP connections, one of
 * each kind per peer). A replication link's lifecycle is the core's
 * (repl_core.h): it says when to open and close one, and hears from here
 * when one came up, queued a command, was acknowledged or failed. See
 * repl.c.
 *
 * Every link opens with NARF.AUTH (peer_auth.h). Its first step is queued
 * with the connect, in the link's `hs`, and is all the link sends until
 * the peer's answer proves the node key: commands queued meanwhile wait in
 * `out`, our proof is put in front of them, and they all go pipelined.
 * Only then is a replication link up for the core. A peer that answers
 * with an error, or with a proof that does not check out (a stranger at
 * its address, or a node holding another cluster's secret), fails the
 * link like any other failure: the core retries it, and the log says so
 * once at WARN until a link to that peer proves itself.
 *
 * The handshake counts as one command, whose reply is the +OK to our
 * proof: a peer that never answers lags like a replica that stopped
 * acknowledging, and its link fails the same way.
 *
 * With --tls-cluster a link dials through a TLS relay (common/tls_relay.h)
 * instead of uv_tcp_connect: the relay connects and runs the TLS
 * handshake (our certificate presented, the peer's verified against the
 * CA), then hands over the plaintext end of a socketpair, which the link
 * opens as its tcp handle and uses exactly as a TCP connection, NARF.AUTH
 * included. Batches cost one more hop (a write and a read on the
 * socketpair each way), no copy of ours. A handshake that fails (the
 * peer's certificate is not from our CA, or it refuses ours) fails the
 * link; the first such failure to a peer is a WARN with OpenSSL's reason,
 * the next ones DEBUG until a link to it proves itself, as for NARF.AUTH.
 */
#include "repl_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/flags.h"
#include "common/log.h"
#include "common/tls_relay.h"
#include "peer_auth.h"

/* --- links --------------------------------------------------------------- */

static void link_tcp_closed_cb(uv_handle_t *h)
{
	free(h);
}

const char narf_repl_proxy_lost[] =
        "-TRYAGAIN the slot's owner did not answer\r\n";

/* Fail a list of forwarded requests (next-linked), freeing them. */
static void fail_requests(struct narf_proxy *px)
{
	while (px != NULL) {
		struct narf_proxy *next = px->next;

		if (px->done != NULL)
			px->done(px->data, narf_repl_proxy_lost,
			         sizeof(narf_repl_proxy_lost) - 1);
		free(px);
		px = next;
	}
}

void repl_link_free(struct link *l)
{
	struct narf_proxy *head = l->head, *parked = l->parked;

	/* The callbacks only note the failure (none forwards again from
	 * inside it); the lists are taken off the link first all the same. */
	l->head = l->tail = l->parked = NULL;
	fail_requests(head);
	fail_requests(parked);
	if (l->creq != NULL) /* libuv cancels it once the handle closes */
		l->creq->data = NULL;
	narf_tls_relay_cancel(l->relay); /* (its callback never runs) */
	l->relay = NULL;
	narf_buf_close(&l->out);
	narf_buf_close(&l->hs);
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
		repl_link_fail(l, uv_strerror(status));
		return;
	}
	repl_link_flush(l);
}

/* Hand what may go to the kernel: before the peer proved itself only the
 * handshake (hs), after it the commands (out). */
void repl_link_flush(struct link *l)
{
	struct narf_buf *src = l->proven ? &l->out : &l->hs;
	struct narf_buf tmp;
	uv_buf_t b;
	int n;

	if (!l->connected || l->writing || src->len == 0)
		return;
	b = uv_buf_init(src->data, (unsigned)src->len);
	n = uv_try_write((uv_stream_t *)l->tcp, &b, 1);
	if (n == (int)src->len) {
		src->len = 0;
		narf_buf_shrink(src, 64 * 1024);
		return;
	}
	if (n < 0 && n != UV_EAGAIN) {
		repl_link_fail(l, uv_strerror(n));
		return;
	}
	if (n > 0)
		narf_buf_consume(src, (size_t)n);
	tmp = l->sending;
	l->sending = *src;
	*src = tmp;
	b = uv_buf_init(l->sending.data, (unsigned)l->sending.len);
	l->wreq.data = l;
	if (uv_write(&l->wreq, (uv_stream_t *)l->tcp, &b, 1, link_write_cb) !=
	    0) {
		repl_link_fail(l, "write failed");
		return;
	}
	l->writing = true;
}

static void link_fail_quietly(struct link *l, const char *why, bool warn);

/*
 * The peer's answer to NARF.AUTH's first step: when its proof checks out,
 * our proof goes in front of the commands queued meanwhile, and they may
 * all go; else the link fails.
 */
static void link_auth_answer(struct link *l, const char *p, size_t len)
{
	struct narf_peer *peer = l->p;
	struct narf_buf proof;
	char why[256];

	narf_buf_init(&proof);
	if (narf_peer_auth_answer(&l->auth, l->r->keys, p, len, &proof, why,
	                          sizeof(why)) != 0) {
		narf_buf_close(&proof);
		if (!peer->auth_warned)
			NARF_WARN(
			        "repl: node %u (%s) failed NARF.AUTH: %s; "
			        "links to it fail until it passes (said once)",
			        peer->id, peer->addr, why);
		peer->auth_warned = true;
		link_fail_quietly(l, why, false);
		return;
	}
	if (narf_buf_append(&proof, l->out.data, l->out.len) != 0) {
		narf_buf_close(&proof);
		repl_link_fail(l, "out of memory");
		return;
	}
	narf_buf_close(&l->out);
	l->out = proof;
	l->proven = true;
	if (peer->auth_warned || peer->tls_warned)
		NARF_INFO("repl: node %u (%s) proved the node key again",
		          peer->id, peer->addr);
	peer->auth_warned = false;
	peer->tls_warned = false;
	if (l->kind == LINK_REPL)
		narf_rcore_link_up(l->r->core, peer->rp);
	NARF_DEBUG(
	        "repl: %s link to node %u (%s) up: the peer proved the node "
	        "key",
	        l->kind == LINK_REPL ? "replication" : "proxy", peer->id,
	        peer->addr);
	repl_link_flush(l);
}

void repl_link_unpark(struct link *l, struct narf_proxy *px)
{
	if (px->prev != NULL)
		px->prev->next = px->next;
	else
		l->parked = px->next;
	if (px->next != NULL)
		px->next->prev = px->prev;
	px->next = px->prev = NULL;
}

/*
 * A push frame on a proxy link: `>3 narf.unblock :<token> <reply>`, the
 * reply of the blocking pop parked under token. One nobody waits for any
 * more (cancelled: its NARF.UNBLOCK crossed the reply) is dropped.
 */
static void link_push(struct link *l, const char *p, size_t len)
{
	size_t pos = 4, n, tl;
	uint64_t token = 0;
	struct narf_proxy *px;

	if (len < 4 || memcmp(p, ">3\r\n", 4) != 0 ||
	    narf_resp_reply_len(p + pos, len - pos, MAX_REPLY, &n) !=
	            NARF_RESP_DONE) {
		repl_link_fail(l, "a bad push frame");
		return;
	}
	pos += n;
	if (narf_resp_reply_len(p + pos, len - pos, MAX_REPLY, &tl) !=
	            NARF_RESP_DONE ||
	    p[pos] != ':') {
		repl_link_fail(l, "a bad push frame");
		return;
	}
	for (size_t i = pos + 1; i < pos + tl - 2; i++)
		token = token * 10 + (uint64_t)(p[i] - '0');
	pos += tl;
	for (px = l->parked; px != NULL && px->token != token; px = px->next)
		;
	if (px == NULL)
		return;
	repl_link_unpark(l, px);
	l->progress_ms = uv_now(l->r->loop);
	if (px->done != NULL)
		px->done(px->data, p + pos, len - pos);
	free(px);
}

/* A proxy link's reply, to the oldest request; a blocking pop's
 * +NARF.BLOCKED parks it (its reply comes in a push frame). */
static void link_proxy_reply(struct link *l, const char *p, size_t len)
{
	static const char blocked[] = "+NARF.BLOCKED\r\n";
	struct narf_proxy *px = l->head;

	if (p[0] == '>') {
		link_push(l, p, len);
		return;
	}
	if (px == NULL) {
		repl_link_fail(l, "a reply nobody asked for");
		return;
	}
	l->head = px->next;
	if (l->head == NULL)
		l->tail = NULL;
	l->acked++;
	l->progress_ms = uv_now(l->r->loop);
	if (px->token != 0 && len == sizeof(blocked) - 1 &&
	    memcmp(p, blocked, len) == 0) {
		if (px->done == NULL) { /* cancelled: NARF.UNBLOCK follows */
			free(px);
			return;
		}
		px->parked = true;
		px->prev = NULL;
		px->next = l->parked;
		if (l->parked != NULL)
			l->parked->prev = px;
		l->parked = px;
		return;
	}
	if (px->done != NULL)
		px->done(px->data, p, len);
	free(px);
}

/* One reply arrived on l. */
static void link_reply(struct link *l, const char *p, size_t len)
{
	if (!l->proven) {
		link_auth_answer(l, p, len);
		return;
	}
	if (l->kind == LINK_PROXY) {
		link_proxy_reply(l, p, len);
		return;
	}
	if (p[0] == '-') {
		char msg[128];

		snprintf(msg, sizeof(msg), "refused: %.*s",
		         (int)(len > 100 ? 100 : len - 2), p + 1);
		repl_link_fail(l, msg);
		return;
	}
	narf_rcore_link_acked(l->r->core, l->p->rp, 1, uv_now(l->r->loop));
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
	int rv;

	if (l == NULL)
		return;
	if (nread < 0) {
		repl_link_fail(l, nread == UV_EOF ? "closed by the peer"
		                                  : uv_strerror((int)nread));
		return;
	}
	p = l->p;
	l->in.len += (size_t)nread;
	while ((rv = narf_resp_reply_len(l->in.data + pos, l->in.len - pos,
	                                 MAX_REPLY, &len)) == NARF_RESP_DONE) {
		link_reply(l, l->in.data + pos, len);
		if (p->repl != l && p->proxy != l)
			return; /* link_reply failed the link */
		pos += len;
	}
	if (rv == NARF_RESP_ERROR) {
		repl_link_fail(l, "a reply that is not RESP");
		return;
	}
	narf_buf_consume(&l->in, pos);
	if (l->kind == LINK_REPL)
		repl_act(l->r);
}

/*
 * Append a command to l (kept even before the link is up). Returns 0 or
 * NARF_ENOMEM. On a replication link a command that could not be queued
 * breaks the link (the core's NARF_RLINK_BROKEN): acks count by position
 * (the n-th reply acknowledges the n-th command and everything before
 * it), so a later command's ack would cover the missing one. Nothing more
 * is queued on a broken link, and the core's next step fails it (not
 * here: callers may be inside a store callback or walking a slot with
 * this link in hand). A proxy link stays usable: narf_resp_command leaves
 * nothing of a command it could not queue, and the caller fails that one
 * request.
 */
/* Queue one encoded command on l (enc encodes it into l->out) and count
 * it, as the link's kind wants. */
static int link_queue(struct link *l,
                      int (*enc)(struct narf_buf *, const void *),
                      const void *arg)
{
	uint64_t now = uv_now(l->r->loop);

	if (l->kind == LINK_REPL) {
		struct narf_rpeer *rp = l->p->rp;
		bool ok;

		if (!narf_rcore_link_usable(rp) || rp->gen != l->gen)
			return NARF_ENOMEM;
		ok = enc(&l->out, arg) == 0;
		narf_rcore_link_queued(l->r->core, rp, ok, now);
		return ok ? 0 : NARF_ENOMEM;
	}
	if (enc(&l->out, arg) != 0)
		return NARF_ENOMEM;
	if (l->sent == l->acked)
		l->progress_ms = now;
	l->sent++;
	return 0;
}

struct cmd_args {
	int argc;
	const char *const *argv;
	const size_t *argvlen;
};

static int enc_cmd(struct narf_buf *b, const void *arg)
{
	const struct cmd_args *a = arg;

	return narf_resp_command(b, a->argc, a->argv, a->argvlen);
}

struct raw_msg {
	const char *msg;
	size_t n;
};

static int enc_raw(struct narf_buf *b, const void *arg)
{
	const struct raw_msg *m = arg;

	return narf_buf_append(b, m->msg, m->n);
}

int repl_link_cmd(struct link *l,
                  int argc,
                  const char *const *argv,
                  const size_t *argvlen)
{
	struct cmd_args a = {argc, argv, argvlen};

	return link_queue(l, enc_cmd, &a);
}

int repl_link_raw(struct link *l, const char *msg, size_t n)
{
	struct raw_msg m = {msg, n};

	return link_queue(l, enc_raw, &m);
}

/* NARF.REQ <proto> <token> <ms> <argv..> in one array, without copying
 * argv. */
static int enc_req(struct narf_buf *b, const void *arg)
{
	const struct narf_proxy_req *q = arg;
	size_t before = b->len;
	char num[2][24];
	int n0 = snprintf(num[0], sizeof(num[0]), "%" PRIu64, q->token);
	int n1 = snprintf(num[1], sizeof(num[1]), "%" PRIu64, q->ms);
	char proto[2] = {(char)('0' + q->resp), '\0'};

	if (narf_resp_array(b, q->argc + 4) != 0 ||
	    narf_resp_bulk(b, "NARF.REQ", 8) != 0 ||
	    narf_resp_bulk(b, proto, 1) != 0 ||
	    narf_resp_bulk(b, num[0], (size_t)n0) != 0 ||
	    narf_resp_bulk(b, num[1], (size_t)n1) != 0)
		goto fail;
	for (int i = 0; i < q->argc; i++)
		if (narf_resp_bulk(b, q->argv[i], q->argvlen[i]) != 0)
			goto fail;
	return 0;
fail:
	b->len = before;
	return NARF_ENOMEM;
}

int repl_link_req(struct link *l, const struct narf_proxy_req *req)
{
	struct cmd_args a = {req->argc, req->argv, req->argvlen};

	if (req->resp == 2 && req->token == 0)
		return link_queue(l, enc_cmd, &a);
	return link_queue(l, enc_req, req);
}

/* The handshake's first step, queued in hs and counted as the link's first
 * command (its reply: the +OK to our proof). NARF_ENOMEM when the link is
 * unusable. */
static int link_hello(struct link *l)
{
	uint64_t now = uv_now(l->r->loop);

	if (l->r->keys == NULL ||
	    narf_peer_auth_hello(&l->auth, l->r->member->node_id, &l->hs) != 0)
		return NARF_ENOMEM;
	if (l->kind == LINK_REPL) {
		struct narf_rpeer *rp = l->p->rp;

		if (!narf_rcore_link_usable(rp) || rp->gen != l->gen)
			return NARF_ENOMEM;
		narf_rcore_link_queued(l->r->core, rp, true, now);
	} else {
		struct narf_proxy *px = calloc(1, sizeof(*px));

		/* The handshake's reply needs a place in the queue; without
		 * memory the link cannot be used. */
		if (px == NULL)
			return NARF_ENOMEM;
		l->head = l->tail = px;
		l->progress_ms = now;
		l->sent++;
	}
	return 0;
}

/* The connection is up (TCP, or the plaintext end of a TLS relay): read
 * replies and send the handshake. */
static void link_connected(struct link *l)
{
	if (uv_read_start((uv_stream_t *)l->tcp, link_alloc_cb, link_read_cb) !=
	    0) {
		repl_link_fail(l, "cannot read");
		return;
	}
	l->connected = true;
	NARF_DEBUG("repl: %s link to node %u (%s) connected%s, proving",
	           l->kind == LINK_REPL ? "replication" : "proxy", l->p->id,
	           l->p->addr, l->r->tls != NULL ? " over TLS" : "");
	repl_link_flush(l);
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
		repl_link_fail(l, uv_strerror(status));
		return;
	}
	uv_tcp_nodelay(l->tcp, 1);
	link_connected(l);
}

/* The TLS relay's answer (--tls-cluster): the plaintext end to open as the
 * link's stream, or why the connect or the handshake failed. Never runs
 * after repl_link_free() (it cancels the relay). */
static void link_relay_cb(void *data,
                          int fd,
                          const struct sockaddr_storage *peer,
                          int status,
                          const char *why)
{
	struct link *l = data;
	struct narf_peer *p = l->p;
	char msg[256];
	int rv;

	(void)peer;
	l->relay = NULL;
	if (status == NARF_EPROTO) {
		/* Not a dead peer but a refusal on either side: say it once,
		 * it repeats every retry until someone fixes the PKI. */
		snprintf(msg, sizeof(msg), "TLS handshake failed: %s", why);
		if (!p->tls_warned)
			NARF_WARN(
			        "repl: node %u (%s): %s; links to it fail "
			        "until it passes (said once)",
			        p->id, p->addr, msg);
		p->tls_warned = true;
		link_fail_quietly(l, msg, false);
		return;
	}
	if (status != 0) {
		snprintf(msg, sizeof(msg), "TLS: %s", why ? why : "failed");
		repl_link_fail(l, msg);
		return;
	}
	/* Nagle stays the relay's business (its TCP side has no delay);
	 * tcp-only calls fail on this AF_UNIX end. */
	rv = uv_tcp_open(l->tcp, fd);
	if (rv != 0) {
		close(fd);
		repl_link_fail(l, uv_strerror(rv));
		return;
	}
	link_connected(l);
}

/* Dial the peer: plain TCP, or a TLS relay with --tls-cluster. */
static int link_dial(struct link *l, const struct sockaddr_in *sa)
{
	uv_connect_t *req;

	if (l->r->tls != NULL) {
		l->relay = narf_tls_relay_connect(
		        l->r->loop, (const struct sockaddr *)sa, l->r->tls,
		        NARF_LINK_TLS_MS, link_relay_cb, l);
		return l->relay != NULL ? 0 : NARF_ENOMEM;
	}
	req = malloc(sizeof(*req));
	if (req == NULL)
		return NARF_ENOMEM;
	req->data = l;
	l->creq = req;
	if (uv_tcp_connect(req, l->tcp, (const struct sockaddr *)sa,
	                   link_connect_cb) != 0) {
		l->creq = NULL;
		free(req);
		return NARF_EIO;
	}
	return 0;
}

struct link *repl_link_open(struct narf_repl *r,
                            struct narf_peer *p,
                            enum link_kind kind)
{
	struct link *l = calloc(1, sizeof(*l));
	char host[NARF_ADDR_SIZE];
	struct sockaddr_in sa;
	int port;

	if (l == NULL ||
	    narf_parse_hostport(p->addr, host, sizeof(host), &port) != 0 ||
	    uv_ip4_addr(strcmp(host, "localhost") == 0 ? "127.0.0.1" : host,
	                port, &sa) != 0 ||
	    (l->tcp = malloc(sizeof(*l->tcp))) == NULL) {
		free(l);
		return NULL;
	}
	l->r = r;
	l->p = p;
	l->kind = kind;
	narf_buf_init(&l->out);
	narf_buf_init(&l->hs);
	narf_buf_init(&l->sending);
	narf_buf_init(&l->in);
	/* With a relay the handle gets its fd in link_relay_cb; closing it
	 * before then is fine. */
	uv_tcp_init(r->loop, l->tcp);
	l->tcp->data = l;
	if (link_dial(l, &sa) != 0) {
		repl_link_free(l);
		return NULL;
	}
	if (kind == LINK_REPL)
		l->gen = p->rp->gen;
	if (link_hello(l) != 0) {
		repl_link_free(l); /* cancels the connect */
		return NULL;
	}
	return l;
}

/*
 * A link broke. A proxy link fails its waiting requests. A replication
 * link's failure goes to the core, which ends forwarding and pending ISR
 * joins to the peer and, when the peer's acks count anywhere, has clients
 * wait until the coordinator drops it.
 */
void repl_link_fail(struct link *l, const char *why)
{
	link_fail_quietly(l, why, true);
}

/* repl_link_fail, logged at DEBUG unless warn. */
static void link_fail_quietly(struct link *l, const char *why, bool warn)
{
	struct narf_repl *r = l->r;
	struct narf_peer *p = l->p;
	uint32_t gen = l->gen;
	enum narf_log_level level = !warn                  ? NARF_LOG_DEBUG
	                            : l->kind == LINK_REPL ? NARF_LOG_WARN
	                                                   : NARF_LOG_INFO;

	narf_log(level, "repl: %s link to node %u (%s) failed: %s",
	         l->kind == LINK_REPL ? "replication" : "proxy", p->id, p->addr,
	         why);
	if (l->kind == LINK_PROXY) {
		repl_link_drop(l);
		return;
	}
	repl_link_drop(l);
	narf_rcore_link_failed(r->core, p->rp, gen, uv_now(r->loop));
	repl_act(r);
}

void repl_link_drop(struct link *l)
{
	struct narf_peer *p = l->p;

	if (p->repl == l)
		p->repl = NULL;
	if (p->proxy == l)
		p->proxy = NULL;
	repl_link_free(l);
}
