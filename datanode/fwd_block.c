/*
 * Blocking pops for keys other nodes lead (docs/datatypes-plan.md, section
 * 4, "Keys elsewhere"; docs/protocol.md, "Proxying").
 *
 * Happy path. A client's BLPOP k 5 on node A, for a key node B leads:
 * route() says NARF_EXEC_PROXY with proxy_blocking, and conn_process
 * calls narf_fwd_block_begin(), which keeps a copy of the request and its
 * deadline (struct rblock) and has the connection wait (NARF_WAIT_REMOTE;
 * the rest of its pipeline waits behind it, as behind a local BLPOP). The
 * request goes on the proxy link as NARF.REQ <resp> <token> <ms left>
 * BLPOP k 5. B pops at once and answers in order, or blocks it under the
 * token and answers +NARF.BLOCKED, so the requests forwarded behind it
 * are not held up; when a push serves it, or its time is up, B sends a
 * push frame with the token and the reply (after the acks of the pop's
 * writes, as any write reply). Either way the reply comes to rblock_done
 * and goes to the client; the connection goes on.
 *
 * Failure modes. A -MOVED (the slot moved, or our map is behind), a lost
 * link (the owner died: a failover is coming), a -CLUSTERDOWN or a
 * -TRYAGAIN (from the owner, or from route() here: a held slot, no
 * lease) do not reach the client: the map is fetched and the request is
 * routed again, with the time it has left, once a map reply came and at
 * least NARF_FWD_BLOCK_PACE_MS passed (or every NARF_FWD_BLOCK_RETRY_MS):
 * to the new owner, or here, where it blocks locally (NARF_WAIT_KEYS) if
 * there is nothing to pop. A client whose time runs out while it waits to
 * go again gets the timeout's answer here; one whose owner never answers
 * gets it NARF_FWD_BLOCK_GRACE_MS after its deadline (the owner normally
 * answers at the deadline), and the owner is told to forget it. A client
 * that closes cancels the request: the owner gets NARF.UNBLOCK <token> and
 * pops nothing for it (a pop already on its way is not undone, as in
 * Redis when a blocked client's connection dies). A blocked client with
 * no deadline whose owner is cut off without its link failing waits until
 * the link fails (limitation).
 */
#include "conn.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "reply.h"

/* A request routed again waits at least this long after its failure (a
 * dead owner refuses at once, until the map moves its slots) ... */
#define NARF_FWD_BLOCK_PACE_MS 50
/* ... and at most this long for a map reply. */
#define NARF_FWD_BLOCK_RETRY_MS 500
/* An owner that has not answered this long after the deadline will not. */
#define NARF_FWD_BLOCK_GRACE_MS 5000

static void rblock_free(struct rblock *rb)
{
	free(rb->argv);
	free(rb);
}

uint64_t narf_fwd_block_deadline(struct narf_rconn *c,
                                 int argc,
                                 const char *const *argv,
                                 const size_t *argvlen)
{
	/* BLMPOP and BZMPOP put the timeout first, the others last. */
	int at = narf_arg_is(argv[0], argvlen[0], "blmpop") ||
	                         narf_arg_is(argv[0], argvlen[0], "bzmpop")
	                 ? 1
	                 : argc - 1;
	struct narf_buf scratch;
	uint64_t ms = 0;
	int rv;

	narf_buf_init(&scratch);
	rv = narf_parse_block_timeout(&scratch, argv[at], argvlen[at], &ms);
	narf_buf_close(&scratch);
	return rv == 0 && ms > 0 ? uv_now(&c->dn->loop) + ms : 0;
}

/* The reply goes to the client and the wait ends. */
static void finish(struct narf_rconn *c, const char *reply, size_t len)
{
	struct narf_buf *out = narf_conn_reply_buf(c);

	if (narf_buf_append(out, reply, len) != 0)
		c->client.close_after_reply = true;
	else if (out != &c->out)
		c->fwd_bytes += len;
	rblock_free(c->rb);
	c->rb = NULL;
	narf_conn_wait_end(c, NARF_WAIT_REMOTE);
	narf_dn_kick(c->dn);
}

/* Its time is up: the timeout's answer, in the client's protocol. */
static void finish_timeout(struct narf_rconn *c)
{
	struct narf_buf null;

	narf_buf_init(&null);
	if (narf_reply_null_array(&c->client, &null) != 0)
		c->client.close_after_reply = true;
	finish(c, null.data, null.len);
	narf_buf_close(&null);
}

/* RBLOCK_OUT -> RBLOCK_AGAIN (or a first send that could not go): route
 * it again after a map reply, not before the pace. */
static void later(struct narf_rconn *c, const char *why)
{
	struct narf_dn *dn = c->dn;
	struct rblock *rb = c->rb;

	assert(rb->px == NULL);
	rb->state = RBLOCK_AGAIN;
	narf_repl_refresh_map(dn->repl);
	rb->map_checks = narf_repl_map_checks(dn->repl);
	rb->retry_at = uv_now(&dn->loop) + NARF_FWD_BLOCK_PACE_MS;
	dn->progress = true;
	NARF_DEBUG("client %llu (%s): blocking %.*s to be routed again: %s",
	           (unsigned long long)c->client.id, c->client.addr,
	           (int)rb->argvlen[0], rb->argv[0], why);
}

static bool has_prefix(const char *reply, size_t len, const char *p)
{
	size_t n = strlen(p);

	return len >= n && memcmp(reply, p, n) == 0;
}

/*
 * Is reply one that says the pop did not run, and that it may run later
 * or elsewhere: a -MOVED (the slot moved), a -TRYAGAIN (a lost link), a
 * -CLUSTERDOWN (the owner lost its lease, or the slot is held while its
 * copies are down)? A blocking pop with time left waits on rather than
 * fail.
 */
static bool not_run(const char *reply, size_t len)
{
	char addr[NARF_ADDR_SIZE];
	unsigned slot;

	return reply == narf_repl_proxy_lost ||
	       has_prefix(reply, len, "-TRYAGAIN ") ||
	       has_prefix(reply, len, "-CLUSTERDOWN ") ||
	       (len > 3 && reply[0] == '-' &&
	        narf_reply_moved(reply + 1, len - 3, &slot, addr) == 0);
}

static void rblock_done(void *data, const char *reply, size_t len)
{
	struct narf_rconn *c = data;

	assert(c->rb->state == RBLOCK_OUT);
	c->rb->px = NULL;
	if (not_run(reply, len))
		later(c, reply == narf_repl_proxy_lost ? "the link failed"
		                                       : "not run there");
	else
		finish(c, reply, len);
}

/* Send it to node with the time it has left (or answer the timeout). */
static void send_to(struct narf_rconn *c, uint32_t node)
{
	struct narf_dn *dn = c->dn;
	struct rblock *rb = c->rb;
	uint64_t now = uv_now(&dn->loop);
	struct narf_proxy_req q = {
	        rb->argc,           (const char *const *)rb->argv,
	        rb->argvlen,        c->client.resp,
	        ++dn->block_tokens, 0};

	if (rb->deadline != 0 && now >= rb->deadline) {
		finish_timeout(c);
		return;
	}
	if (rb->deadline != 0)
		q.ms = rb->deadline - now;
	rb->node = node;
	rb->px = narf_repl_proxy(dn->repl, node, &q, rblock_done, c);
	if (rb->px == NULL)
		later(c, "cannot reach the owner");
	else
		rb->state = RBLOCK_OUT;
}

bool narf_fwd_block_begin(struct narf_rconn *c,
                          int argc,
                          const char *const *argv,
                          const size_t *argvlen,
                          uint64_t deadline)
{
	struct rblock *rb = calloc(1, sizeof(*rb));
	size_t bytes = 0;
	char *p;

	if (rb == NULL)
		return false;
	for (int i = 0; i < argc; i++)
		bytes += argvlen[i] + 1;
	rb->argv = malloc((size_t)argc * (sizeof(char *) + sizeof(size_t)) +
	                  bytes);
	if (rb->argv == NULL) {
		free(rb);
		return false;
	}
	rb->argvlen = (size_t *)(rb->argv + argc);
	p = (char *)(rb->argvlen + argc);
	for (int i = 0; i < argc; i++) {
		memcpy(p, argv[i], argvlen[i]);
		p[argvlen[i]] = '\0';
		rb->argv[i] = p;
		rb->argvlen[i] = argvlen[i];
		p += argvlen[i] + 1;
	}
	rb->argc = argc;
	rb->deadline = deadline;
	c->rb = rb;
	if (c->wait == NARF_WAIT_KEYS)
		narf_conn_wait_switch(c, NARF_WAIT_KEYS, NARF_WAIT_REMOTE);
	else
		narf_conn_wait_begin(c, NARF_WAIT_REMOTE);
	send_to(c, c->dn->engine.proxy_node);
	return true;
}

/*
 * Route it again, as a request is run (the lease as it stands, its writes
 * gated): forwarded to the owner the map names now, or run here, where it
 * pops, blocks, or gets an error (CLUSTERDOWN, -MOVED with --redirect).
 */
static void reroute(struct narf_rconn *c)
{
	struct narf_dn *dn = c->dn;
	struct narf_engine *e = &dn->engine;
	struct rblock *rb = c->rb;
	struct narf_buf *out = narf_conn_reply_buf(c);
	size_t before = out->len;
	int rv;

	assert(rb->state == RBLOCK_AGAIN);
	e->now_cached = e->clock(e->clock_data);
	if (dn->cluster)
		e->lease_ok =
		        narf_member_lease_ok(&dn->member, narf_clock_ms());
	if (dn->repl != NULL)
		narf_repl_batch_begin(dn->repl);
	rv = narf_engine_exec(e, &c->client, rb->argc, (const char **)rb->argv,
	                      rb->argvlen, out);
	narf_conn_gate_batch(c);
	e->now_cached = 0;
	if (rv == NARF_EXEC_PROXY && e->proxy_blocking) {
		send_to(c, e->proxy_node);
	} else if (rv == NARF_EXEC_RETRY) {
		later(c, "put off");
	} else if (rv == NARF_EXEC_BLOCK) {
		if (!narf_dn_block_local(c, rb->argc,
		                         (const char *const *)rb->argv,
		                         rb->argvlen, rb->deadline)) {
			c->client.close_after_reply = true;
			finish(c, "", 0);
			return;
		}
		rblock_free(rb);
		c->rb = NULL;
	} else if (rv == 0 && (has_prefix(out->data + before, out->len - before,
	                                  "-CLUSTERDOWN ") ||
	                       has_prefix(out->data + before, out->len - before,
	                                  "-TRYAGAIN "))) {
		/* (a held slot: its copies are down; a -MOVED here, with
		 * --redirect or when leaving, goes to the client) */
		out->len = before;
		later(c, "its slot is not served");
	} else {
		/* answered here (popped, or an error): out holds it */
		if (rv != 0 && out->len == before &&
		    narf_resp_error(out, "TRYAGAIN could not run the request"))
			c->client.close_after_reply = true;
		if (out != &c->out)
			c->fwd_bytes += out->len - before;
		finish(c, "", 0);
	}
}

void narf_fwd_block_check(struct narf_rconn *c, uint64_t now)
{
	struct narf_dn *dn = c->dn;
	struct rblock *rb = c->rb;

	if (rb->state == RBLOCK_OUT) {
		/* The owner answers at the deadline; it has not for long. */
		if (rb->deadline != 0 &&
		    now > rb->deadline + NARF_FWD_BLOCK_GRACE_MS) {
			narf_repl_proxy_cancel(rb->px);
			rb->px = NULL;
			finish_timeout(c);
		}
		return;
	}
	if (rb->deadline != 0 && now >= rb->deadline) {
		finish_timeout(c);
		return;
	}
	if (now >= rb->retry_at &&
	    (narf_repl_map_checks(dn->repl) != rb->map_checks ||
	     now - rb->retry_at >= NARF_FWD_BLOCK_RETRY_MS))
		reroute(c);
}

void narf_fwd_block_close(struct narf_rconn *c)
{
	if (c->rb == NULL)
		return;
	if (c->rb->px != NULL)
		narf_repl_proxy_cancel(c->rb->px);
	rblock_free(c->rb);
	c->rb = NULL;
}
