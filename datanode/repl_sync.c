/*
 * Slot syncs to peers (a slot's entries, then its live writes), pumped
 * from the loop's prepare phase a slice per iteration, where the core also
 * takes its step (joins to the ISR, handoffs: repl_core.c). See repl.c.
 */
#include "repl_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/flags.h"
#include "common/log.h"

/* --- sync ---------------------------------------------------------------- */

struct dump {
	struct narf_repl *r;
	struct narf_peer *p;
	uint64_t epoch;
	unsigned slot;
};

static bool dump_entry(void *data, const struct narf_entry *e)
{
	struct dump *d = data;
	size_t klen;
	const char *key = narf_entry_key(e, &klen);

	/* A big collection goes a slice per step (repl_xfer.c). */
	if (narf_entry_type(e) != NARF_TYPE_STRING &&
	    repl_xfer_begin(d->p, d->slot, key, klen, e) == 0)
		return true;
	/* Stop at the first entry that cannot be queued: the link is
	 * broken and the slot will be synced again over a new one. */
	return repl_send_key(d->r, d->p->repl, d->epoch, key, klen, e) == 0;
}

/* NARF.SYNC <slot> <slot epoch> <map epoch> (map_epoch != 0) or
 * NARF.SYNCED <slot> <slot epoch>. Returns 0 or NARF_ENOMEM (the link is
 * then broken). */
static int slot_marker(struct link *l,
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
	argvlen[2] = narf_format_u64(ep, epoch);
	argvlen[3] = narf_format_u64(mep, map_epoch);
	return repl_link_cmd(l, map_epoch != 0 ? 4 : 3, argv, argvlen);
}

/* The slot's copy is complete (ok: every entry was queued): NARF.SYNCED,
 * and the core counts and joins it. */
static void synced(struct narf_repl *r,
                   struct narf_peer *p,
                   unsigned s,
                   bool ok)
{
	uint64_t epoch = repl_map(r)->slots[s].epoch;

	ok = ok && narf_rcore_link_usable(p->rp) &&
	     slot_marker(p->repl, "NARF.SYNCED", s, epoch, 0) == 0;
	narf_rcore_synced(r->core, p->rp, s, ok, p->rp->sent);
}

/* Send slot s to p: strings and small collections whole, big collections
 * as transfers (the slot stays open until they end, repl_xfer.c); the core
 * forwards its writes from then on. When any of it cannot be queued, the
 * link is broken: the slot is neither forwarded nor counted nor joined
 * (the core's next step fails the link, which wants the slot synced
 * again). */
static void sync_slot(struct narf_repl *r, struct narf_peer *p, unsigned s)
{
	const struct narf_map *map = repl_map(r);
	struct dump d = {r, p, map->slots[s].epoch, s};
	bool ok =
	        slot_marker(p->repl, "NARF.SYNC", s, d.epoch, map->epoch) == 0;

	repl_xfer_drop(p); /* any left are an older sync's */
	if (ok)
		narf_store_foreach_slot(r->store, s, wall_ms(), dump_entry, &d);
	if (ok && p->n_xfers > 0 && narf_rcore_link_usable(p->rp)) {
		narf_rcore_sync_open(r->core, p->rp, s);
		return;
	}
	repl_xfer_drop(p);
	synced(r, p, s, ok);
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
	int s;

	if (p->repl == NULL || !p->repl->connected ||
	    p->rp->link != NARF_RLINK_UP)
		return;
	if (r->sync_rate != 0) {
		refill(r);
		if (r->budget <= 0)
			return;
		if ((uint64_t)r->budget < slice)
			slice = (size_t)r->budget;
	}
	start = p->repl->out.len;
	while ((s = narf_rcore_sync_next(r->core, p->rp)) >= 0) {
		if (p->repl->out.len + p->repl->sending.len >
		            NARF_SYNC_HIGH_WATER ||
		    p->rp->sent - p->rp->acked > NARF_SYNC_INFLIGHT ||
		    p->repl->out.len - start > slice)
			break;
		if (p->rp->open) {
			/* The open slot's transfers first (one open slot
			 * per peer), then its NARF.SYNCED. */
			if (!repl_xfer_step(r, p, start + slice))
				break;
			synced(r, p, (unsigned)s, true);
		} else {
			sync_slot(r, p, (unsigned)s);
		}
		if (p->rp->link != NARF_RLINK_UP ||
		    bit(p->rp->want, (unsigned)s))
			break;
	}
	if (p->repl->out.len - start > r->sync_step_max)
		r->sync_step_max = p->repl->out.len - start;
	if (r->sync_rate != 0)
		r->budget -= (int64_t)(p->repl->out.len - start);
}

json_t *repl_ranges_of(const uint64_t *set)
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

void repl_pace_cb(uv_timer_t *h)
{
	struct narf_repl *r = h->data;

	r->pacing = false; /* repl_prepare_cb runs next and pumps */
}

void repl_idle_cb(uv_idle_t *h)
{
	(void)h; /* only keeps the loop from blocking: repl_prepare_cb works */
}

void repl_prepare_cb(uv_prepare_t *h)
{
	struct narf_repl *r = h->data;
	bool more = false;

	narf_rcore_step(r->core, uv_now(r->loop));
	repl_act(r);
	for (unsigned i = 0; i < r->n_peers; i++) {
		struct narf_peer *p = r->peers[i];
		struct narf_rpeer *rp = p->rp;

		if (rp->work && p->repl != NULL) {
			pump(r, p);
			/* More to sync over a link that can take it: come
			 * back next iteration without waiting for I/O. */
			more = more ||
			       ((rp->open || bits_count(rp->want) > 0) &&
			        rp->link == NARF_RLINK_UP &&
			        rp->drop.state == NARF_RREQ_IDLE &&
			        p->repl->out.len + p->repl->sending.len <=
			                NARF_SYNC_HIGH_WATER &&
			        rp->sent - rp->acked <= NARF_SYNC_INFLIGHT);
		}
		if (p->repl != NULL)
			repl_link_flush(p->repl);
		if (p->proxy != NULL)
			repl_link_flush(p->proxy);
	}
	/* Paced out: come back when the bucket has refilled a little. */
	if (more && r->sync_rate != 0 && r->budget <= 0) {
		more = false;
		if (!r->pacing && !r->stopping) {
			uv_timer_start(&r->pace, repl_pace_cb, 10, 0);
			r->pacing = true;
		}
	}
	/* Copies dropped lazily: freed a little every iteration. */
	if (narf_store_reap(r->store, NARF_REAP_BUDGET))
		more = true;
	if (more && !r->idling && !r->stopping) {
		uv_idle_start(&r->idle, repl_idle_cb);
		r->idling = true;
	} else if (!more && r->idling) {
		uv_idle_stop(&r->idle);
		r->idling = false;
	}
}
