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
 * from this node: its waiters run again from the check handle and route()
 * answers -MOVED (remote blocking is slice 27). A re-run put off (the
 * lease lapsed, a handoff) leaves the waiter blocked and is tried again on
 * the next pass. A peer link never blocks: it carries other clients'
 * requests; it gets the timeout's answer at once, as Redis answers a
 * client that may not block.
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

bool narf_dn_block_begin(struct narf_rconn *c)
{
	struct narf_dn *dn = c->dn;
	struct narf_client *cl = &c->client;
	uint64_t deadline = 0;
	struct narf_waiter *w;

	if (cl->peer)
		return narf_reply_null_array(cl, narf_conn_reply_buf(c)) == 0;
	if (cl->block_ms > 0)
		deadline = uv_now(&dn->loop) + cl->block_ms;
	w = narf_block_add(&dn->engine.block, c, cl->block_type, c->req.argc,
	                   (const char *const *)c->req.argv, c->req.argvlen,
	                   cl->block_first, cl->block_last,
	                   cl->block_numkeys_at, deadline);
	if (w == NULL)
		return false;
	w->client = cl->id;
	c->waiter = w;
	narf_conn_wait_begin(c, NARF_WAIT_KEYS);
	arm(dn);
	return true;
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

/* Run waiter c's request (argv) again: true when it answered (c is no
 * longer blocked), false when it stays (nothing to pop, or put off). */
static bool rerun(struct narf_dn *dn,
                  struct narf_rconn *c,
                  int argc,
                  const char **argv,
                  const size_t *argvlen)
{
	struct narf_buf *out = narf_conn_reply_buf(c);
	size_t before = out->len;
	int rv;

	if (dn->repl != NULL)
		narf_repl_batch_begin(dn->repl);
	rv = narf_engine_exec(&dn->engine, &c->client, argc, argv, argvlen,
	                      out);
	narf_conn_gate_batch(c);
	if (rv == NARF_EXEC_BLOCK || rv == NARF_EXEC_RETRY) {
		assert(out->len == before);
		return false;
	}
	if (rv > 0) {
		/* no memory for the reply: the connection closes */
		out->len = before;
		c->client.close_after_reply = true;
	} else if (rv < 0) {
		/* a blocking command is never forwarded nor split */
		narf_resp_error(out, "TRYAGAIN could not run the request");
	}
	if (out != &c->out)
		c->fwd_bytes += out->len - before;
	unblock(dn, c);
	return true;
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
		served = rerun(dn, w->owner, argc, argv, argvlen);
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

/* Waiters whose keys this node no longer leads run again, whole: route()
 * answers them -MOVED (or an error), as Redis redirects blocked clients
 * when their slot moves. */
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
		if (!rerun(dn, w->owner, w->argc, (const char **)w->argv,
		           w->argvlen))
			dn->block_recheck = true; /* put off: next pass */
	}
	e->now_cached = 0;
	arm(dn);
}

/* Answer c, blocked, as its timeout does, or with CLIENT UNBLOCK's
 * error. */
static void answer_timeout(struct narf_dn *dn, struct narf_rconn *c, bool error)
{
	struct narf_buf *out = narf_conn_reply_buf(c);
	size_t before = out->len;
	int rv = error ? narf_resp_error(out,
	                                 "UNBLOCKED client unblocked via "
	                                 "CLIENT UNBLOCK")
	               : narf_reply_null_array(&c->client, out);

	if (rv != 0)
		c->client.close_after_reply = true;
	if (out != &c->out)
		c->fwd_bytes += out->len - before;
	unblock(dn, c);
}

void narf_dn_block_check(struct narf_dn *dn)
{
	struct narf_engine *e = &dn->engine;
	struct narf_waiter *w;

	/* CLIENT UNBLOCK's verdicts (cmd_server.c), answered here rather
	 * than from inside the command */
	while ((w = narf_block_unblocked(&e->block)) != NULL)
		answer_timeout(dn, w->owner, w->unblock == NARF_UNBLOCK_ERROR);
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
		answer_timeout(dn, w->owner, w->unblock == NARF_UNBLOCK_ERROR);
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
