/*
 * Clients blocked on keys, on the loop (docs/datatypes-plan.md, section
 * 4): the glue between blocking.h's registry and the connections.
 *
 * Happy path. BLPOP k 0 finds k empty: the command returns
 * NARF_EXEC_BLOCK and conn_process calls narf_dn_block_begin(), which
 * makes the request a waiter (its own copy of it) and has the connection
 * wait (NARF_WAIT_KEYS) with the rest of its pipeline left in `in`, as
 * Redis does. Another client's RPUSH k x signals k (narf_block_signal, in
 * the push), and conn_process calls narf_dn_block_serve() right after that
 * command: k's waiters, oldest first, run their request again narrowed to
 * k (narf_waiter_argv) through narf_engine_exec(), as any request is run
 * (routing, lease, handoff, min_isr all apply, and the pop replicates as
 * the NARF.LPOP effect it sends). The reply goes to the waiter's buffer
 * and the writes to the waiter's ack gate; the running connection's own
 * writes before were closed into its gate first, and its batch reopens
 * after. A served waiter is removed and its wait ends; the check handle
 * resumes it (its pipeline goes on) and writes its reply once its gate
 * opens. The first waiter that finds nothing stays, and so does everyone
 * behind it: the key is empty. A BLMOVE that is served pushes, which
 * signals its destination: served in the same pass.
 *
 * Failure modes. A timeout: one timer, for the earliest deadline, answers
 * a null array (`*-1`, `_` under RESP3: 7.0 answers every blocking pop's
 * timeout so). A client that closes while blocked is forgotten, and
 * nothing is popped for it. A key that becomes another type is skipped by
 * its waiters, which stay blocked (7.0). A map change that takes a slot
 * from this node: its waiters run again from the check handle, and
 * route() forwards a client's to the new owner with the time it has left
 * (fwd_block.c), or answers -MOVED (--redirect, leaving). A re-run put off
 * (the lease lapsed, a handoff) leaves the waiter blocked and is tried
 * again on the next pass.
 *
 * Peers. A peer link blocks only a NARF.REQ with a token (another node's
 * client's pop, forwarded): the waiter's owner is the link, its argv the
 * pop inside the NARF.REQ, its deadline the ms the request says. The link
 * is answered +NARF.BLOCKED at once and goes on; the reply (served, timed
 * out, -MOVED when the slot leaves) goes out later as a push frame under
 * the token, behind the link's ack gate like any write reply
 * (narf_conn_poke). NARF.UNBLOCK <token> (cmd_cluster.c) forgets one, a
 * closing link all of its own. Any other blocking pop from a peer gets the
 * timeout's answer at once, as Redis answers a client that may not
 * block.
 */
#include "conn.h"

#include <assert.h>
#include <stdlib.h>

#include "common/clock.h"
#include "reply.h"

static void arm(struct narf_dn *dn);

/* One clock reading and the lease as it stands, as conn_run() sets them
 * for a batch: for serving outside any connection's batch. */
static void clock_begin(struct narf_dn *dn)
{
	struct narf_engine *e = &dn->engine;

	e->now_cached = e->clock(e->clock_data);
	if (dn->cluster)
		e->lease_ok =
		        narf_member_lease_ok(&dn->member, narf_clock_ms());
}

/* The head of the push frame that carries a peer's blocked pop's reply
 * (docs/protocol.md): `>3 narf.unblock :<token>`, the reply follows. */
static int push_header(struct narf_buf *out, uint64_t token)
{
	size_t before = out->len;

	if (narf_resp3_push(out, 3) != 0 ||
	    narf_resp_bulk(out, "narf.unblock", 12) != 0 ||
	    narf_resp_int(out, (long long)token) != 0) {
		out->len = before;
		return NARF_ENOMEM;
	}
	return 0;
}

/* A peer's NARF.REQ with a token found nothing to pop: its pop waits here
 * under the token, and the link is answered +NARF.BLOCKED at once, in
 * order, so that the requests forwarded behind it go on. */
static bool block_peer(struct narf_rconn *c)
{
	struct narf_dn *dn = c->dn;
	struct narf_client *cl = &c->client;
	uint64_t token = cl->req_token;
	uint64_t deadline = cl->req_ms > 0 ? uv_now(&dn->loop) + cl->req_ms : 0;
	struct narf_waiter *w;

	cl->req_token = 0;
	assert(c->req.argc > 4); /* NARF.REQ <proto> <token> <ms> <argv..> */
	w = narf_block_add(&dn->engine.block, c, cl->block_type,
	                   c->req.argc - 4,
	                   (const char *const *)c->req.argv + 4,
	                   c->req.argvlen + 4, cl->block_first, cl->block_last,
	                   cl->block_numkeys_at, deadline);
	if (w == NULL)
		return false;
	w->client = cl->id;
	w->token = token;
	w->resp = cl->req_resp;
	if (narf_resp_simple(narf_conn_reply_buf(c), "NARF.BLOCKED") != 0) {
		narf_block_remove(&dn->engine.block, w);
		return false;
	}
	arm(dn);
	return true;
}

bool narf_dn_block_local(struct narf_rconn *c,
                         int argc,
                         const char *const *argv,
                         const size_t *argvlen,
                         uint64_t deadline)
{
	struct narf_dn *dn = c->dn;
	struct narf_client *cl = &c->client;
	struct narf_waiter *w;

	w = narf_block_add(&dn->engine.block, c, cl->block_type, argc, argv,
	                   argvlen, cl->block_first, cl->block_last,
	                   cl->block_numkeys_at, deadline);
	if (w == NULL)
		return false;
	w->client = cl->id;
	c->waiter = w;
	if (c->wait == NARF_WAIT_REMOTE)
		narf_conn_wait_switch(c, NARF_WAIT_REMOTE, NARF_WAIT_KEYS);
	else
		narf_conn_wait_begin(c, NARF_WAIT_KEYS);
	arm(dn);
	return true;
}

bool narf_dn_block_begin(struct narf_rconn *c)
{
	struct narf_dn *dn = c->dn;
	struct narf_client *cl = &c->client;

	if (cl->peer && cl->req_token != 0)
		return block_peer(c);
	if (cl->peer)
		return narf_reply_null_array(cl, narf_conn_reply_buf(c)) == 0;
	return narf_dn_block_local(
	        c, c->req.argc, (const char *const *)c->req.argv,
	        c->req.argvlen,
	        cl->block_ms > 0 ? uv_now(&dn->loop) + cl->block_ms : 0);
}

/* c's reply is in its buffer: forget its waiter and end its wait (the
 * check handle resumes it). */
static void unblock(struct narf_dn *dn, struct narf_rconn *c)
{
	narf_block_remove(&dn->engine.block, c->waiter);
	c->waiter = NULL;
	narf_conn_wait_end(c, NARF_WAIT_KEYS);
	narf_dn_kick(dn);
}

/* w's reply is in its owner's buffer (a peer's in a push frame): forget
 * it; a client's wait ends, a peer link's push goes out after the acks of
 * the writes before it. */
static void answered(struct narf_dn *dn, struct narf_waiter *w)
{
	struct narf_rconn *c = w->owner;

	if (w->token == 0) {
		unblock(dn, c);
		return;
	}
	narf_block_remove(&dn->engine.block, w);
	narf_conn_poke(c);
}

enum rerun {
	RERUN_STAYS,    /* nothing to pop, or put off */
	RERUN_ANSWERED, /* w is gone */
	RERUN_PROXY,    /* a client's: its key's slot is led elsewhere now */
};

/* Run waiter w's request (argv) again, a peer's with its protocol and its
 * reply in a push frame. */
static enum rerun rerun(struct narf_dn *dn,
                        struct narf_waiter *w,
                        int argc,
                        const char **argv,
                        const size_t *argvlen)
{
	struct narf_rconn *c = w->owner;
	struct narf_buf *out = narf_conn_reply_buf(c);
	size_t before = out->len, body;
	uint8_t resp = c->client.resp;
	int rv;

	if (w->token != 0 && push_header(out, w->token) != 0)
		return RERUN_STAYS; /* tried again at the next signal */
	body = out->len;
	if (w->token != 0)
		c->client.resp = w->resp;
	if (dn->repl != NULL)
		narf_repl_batch_begin(dn->repl);
	rv = narf_engine_exec(&dn->engine, &c->client, argc, argv, argvlen,
	                      out);
	narf_conn_gate_batch(c);
	c->client.resp = resp;
	if (rv == NARF_EXEC_BLOCK || rv == NARF_EXEC_RETRY ||
	    rv == NARF_EXEC_PROXY) {
		assert(out->len == body);
		out->len = before;
		return rv == NARF_EXEC_PROXY ? RERUN_PROXY : RERUN_STAYS;
	}
	if (rv > 0) {
		/* no memory for the reply: the connection closes */
		out->len = before;
		c->client.close_after_reply = true;
	} else if (rv < 0) {
		/* a blocking command is never split */
		narf_resp_error(out, "TRYAGAIN could not run the request");
	}
	if (out != &c->out)
		c->fwd_bytes += out->len - before;
	answered(dn, w);
	return RERUN_ANSWERED;
}

/* k's waiters, oldest first, while k holds something for them: a waiter
 * for another type is skipped (7.0: a list waiter stays blocked on a key
 * that became a set), and the first one that finds nothing ends it. */
static void serve_key(struct narf_dn *dn, struct narf_bkey *k)
{
	struct narf_engine *e = &dn->engine;
	struct narf_wlink *l, *next;
	const char *small[16], **argv;
	size_t smalllen[16], *argvlen;

	for (l = narf_block_queue(k); l != NULL; l = next) {
		struct narf_waiter *w = l->w;
		struct narf_entry *en;
		bool big = w->argc > 16, served;
		int argc;

		next = l->next; /* a re-run removes only its own waiter */
		en = narf_store_get(e->store, k->slot, k->key, k->klen,
		                    narf_engine_now(e), NARF_STORE_NOTOUCH);
		if (en == NULL)
			break;
		if (narf_entry_type(en) != w->type ||
		    w->unblock != NARF_UNBLOCK_NONE)
			continue;
		argv = big ? malloc(sizeof(*argv) * (size_t)w->argc) : small;
		argvlen = big ? malloc(sizeof(*argvlen) * (size_t)w->argc)
		              : smalllen;
		if (argv == NULL || argvlen == NULL) {
			if (big) {
				free(argv);
				free(argvlen);
			}
			break; /* tried again at the next signal */
		}
		argc = narf_waiter_argv(w, k, argv, argvlen);
		switch (rerun(dn, w, argc, argv, argvlen)) {
		case RERUN_ANSWERED:
			served = true;
			break;
		case RERUN_PROXY: /* recheck forwards it, whole */
			dn->block_recheck = true;
			dn->progress = true;
			/* fallthrough */
		default:
			served = false;
		}
		if (big) {
			free(argv);
			free(argvlen);
		}
		if (!served)
			break;
	}
}

void narf_dn_block_serve(struct narf_dn *dn, struct narf_rconn *running)
{
	struct narf_block *b = &dn->engine.block;
	struct narf_bkey *k;

	if (running != NULL)
		narf_conn_gate_batch(running);
	while ((k = narf_block_take_ready(b)) != NULL) {
		serve_key(dn, k);
		narf_block_unpin(b, k);
	}
	if (running != NULL && dn->repl != NULL)
		narf_repl_batch_begin(dn->repl);
	arm(dn);
}

void narf_dn_block_drop(struct narf_rconn *c)
{
	narf_block_remove(&c->dn->engine.block, c->waiter);
	c->waiter = NULL;
	arm(c->dn);
}

void narf_dn_block_drop_peer(struct narf_rconn *c)
{
	struct narf_block *b = &c->dn->engine.block;
	struct narf_waiter *w, *next;

	for (w = b->first; w != NULL; w = next) {
		next = w->next;
		if (w->owner == c)
			narf_block_remove(b, w);
	}
	arm(c->dn);
}

/* --- map changes ---------------------------------------------------------- */

void narf_dn_block_map_changed(struct narf_dn *dn)
{
	if (narf_block_count(&dn->engine.block) == 0)
		return;
	dn->block_recheck = true;
	dn->progress = true;
}

/* Does this node lead the slot of every key w waits on? */
static bool leads_all(const struct narf_map *map,
                      uint32_t me,
                      const struct narf_waiter *w)
{
	for (unsigned i = 0; i < w->nlinks; i++)
		if (map->slots[w->links[i].k->slot].primary != me)
			return false;
	return true;
}

/* A client's waiter whose key another node leads now (a handoff, a
 * failover): forwarded there, whole, with the time it has left
 * (fwd_block.c). */
static void to_remote(struct narf_dn *dn, struct narf_waiter *w)
{
	struct narf_rconn *c = w->owner;

	c->waiter = NULL;
	if (!narf_fwd_block_begin(c, w->argc, (const char *const *)w->argv,
	                          w->argvlen, w->deadline)) {
		c->client.close_after_reply = true; /* out of memory */
		narf_conn_wait_end(c, NARF_WAIT_KEYS);
	}
	narf_block_remove(&dn->engine.block, w);
	narf_dn_kick(dn);
}

/* Waiters whose keys this node no longer leads run again, whole: route()
 * forwards a client's to the new owner (or answers -MOVED, with
 * --redirect or when leaving, or an error), as Redis redirects blocked
 * clients when their slot moves; a peer's gets -MOVED in its push frame
 * and its node routes it again. */
static void recheck(struct narf_dn *dn)
{
	struct narf_engine *e = &dn->engine;
	const struct narf_map *map = narf_engine_map(e);
	struct narf_waiter *w, *next;

	dn->block_recheck = false;
	if (map == NULL)
		return;
	clock_begin(dn);
	for (w = e->block.first; w != NULL; w = next) {
		next = w->next;
		if (leads_all(map, *e->cluster_node_id, w))
			continue;
		switch (rerun(dn, w, w->argc, (const char **)w->argv,
		              w->argvlen)) {
		case RERUN_STAYS:
			dn->block_recheck = true; /* put off: next pass */
			break;
		case RERUN_PROXY:
			to_remote(dn, w);
			break;
		default:
			break;
		}
	}
	e->now_cached = 0;
	arm(dn);
}

/* Answer w as its timeout does, or with CLIENT UNBLOCK's error. */
static void answer_timeout(struct narf_dn *dn,
                           struct narf_waiter *w,
                           bool error)
{
	struct narf_rconn *c = w->owner;
	struct narf_buf *out = narf_conn_reply_buf(c);
	size_t before = out->len;
	uint8_t resp = c->client.resp;
	int rv = 0;

	if (w->token != 0) {
		rv = push_header(out, w->token);
		c->client.resp = w->resp;
	}
	if (rv == 0)
		rv = error ? narf_resp_error(out,
		                             "UNBLOCKED client unblocked via "
		                             "CLIENT UNBLOCK")
		           : narf_reply_null_array(&c->client, out);
	c->client.resp = resp;
	if (rv != 0) {
		out->len = before;
		c->client.close_after_reply = true;
	}
	if (out != &c->out)
		c->fwd_bytes += out->len - before;
	answered(dn, w);
}

void narf_dn_block_check(struct narf_dn *dn)
{
	struct narf_engine *e = &dn->engine;
	struct narf_waiter *w;

	/* CLIENT UNBLOCK's verdicts (cmd_server.c), answered here rather
	 * than from inside the command */
	while ((w = narf_block_unblocked(&e->block)) != NULL)
		answer_timeout(dn, w, w->unblock == NARF_UNBLOCK_ERROR);
	if (dn->block_recheck)
		recheck(dn);
	/* Keys signalled outside a connection's requests (none today:
	 * every push runs in conn_process, which serves after it). */
	if (narf_block_any_ready(&e->block)) {
		clock_begin(dn);
		narf_dn_block_serve(dn, NULL);
		e->now_cached = 0;
	}
}

/* --- timeouts ------------------------------------------------------------- */

static void timer_cb(uv_timer_t *t)
{
	struct narf_dn *dn = t->data;
	uint64_t now = uv_now(&dn->loop);
	struct narf_waiter *w;

	dn->block_timer_at = 0;
	while ((w = narf_block_expired(&dn->engine.block, now)) != NULL)
		answer_timeout(dn, w, w->unblock == NARF_UNBLOCK_ERROR);
	arm(dn);
}

/* The timer follows the earliest deadline (stopped when there is none). */
static void arm(struct narf_dn *dn)
{
	uint64_t d = narf_block_next_deadline(&dn->engine.block);
	uint64_t now;

	if (dn->closing || d == dn->block_timer_at)
		return;
	dn->block_timer_at = d;
	if (d == 0) {
		uv_timer_stop(&dn->block_timer);
		return;
	}
	now = uv_now(&dn->loop);
	uv_timer_start(&dn->block_timer, timer_cb, d > now ? d - now : 0, 0);
}

void narf_dn_block_start(struct narf_dn *dn)
{
	uv_timer_init(&dn->loop, &dn->block_timer);
	dn->block_timer.data = dn;
	dn->block_timer_at = 0;
}

void narf_dn_block_stop(struct narf_dn *dn)
{
	uv_close((uv_handle_t *)&dn->block_timer, NULL);
}
