/*
 * Slot syncs to peers (a slot's entries, then its live writes), their
 * joins to the ISR, and handoffs of slots we lead: all pumped from the
 * loop's prepare phase, a slice per iteration. See repl.c.
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
	struct link *l;
	uint64_t epoch;
};

static bool dump_entry(void *data, const struct narf_entry *e)
{
	struct dump *d = data;
	size_t klen;
	const char *key = narf_entry_key(e, &klen);

	/* Stop at the first entry that cannot be queued: the link is
	 * broken and the slot will be synced again over a new one. */
	return repl_send_key(d->r, d->l, d->epoch, key, klen, e) == 0;
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

/* Send slot s whole to p and start forwarding its writes. When any of it
 * cannot be queued the link is broken: the slot is neither forwarded nor
 * counted nor joined (repl_prepare_cb fails the link, which wants the slot
 * synced again). */
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
	if (slot_marker(p->repl, "NARF.SYNC", s, d.epoch, map->epoch) != 0)
		return; /* stays wanted */
	bit_clear(p->want, s);
	narf_store_foreach_slot(r->store, s, wall_ms(), dump_entry, &d);
	if (p->repl->broken ||
	    slot_marker(p->repl, "NARF.SYNCED", s, d.epoch, 0) != 0)
		return;
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

	if (p->repl == NULL || !p->repl->connected || p->dropping ||
	    p->repl->broken)
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
			if (p->repl->broken)
				goto done;
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

static void handoff_reply(void *data,
                          uint32_t peer,
                          bool drop,
                          bool ok,
                          uint64_t epoch)
{
	struct narf_peer *p = data;
	struct narf_repl *r = p->r;

	/* Taken: the map that makes the target primary ends the request
	 * (narf_repl_map_changed). Taken while our map is already that new
	 * (or the entry changed nothing: the moves were cleared): over now.
	 * Refused: ask again. */
	if (ok && epoch > r->epoch) {
		p->handoff_epoch = epoch;
		return;
	}
	p->handoff_inflight = false;
	p->work = true;
	if (!ok)
		NARF_INFO("repl: handoff to node %u not taken; asking again",
		          p->id);
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
	if (narf_member_handoff(r->member, repl_ranges_of(ready), handoff_reply,
	                        p) == 0) {
		p->handoff_inflight = true;
		p->handoff_epoch = 0;
		NARF_INFO("repl: handing %u slots to node %u",
		          bits_count(ready), p->id);
	}
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

	for (unsigned i = 0; i < r->n_peers; i++) {
		struct narf_peer *p = r->peers[i];

		/* Before any ack on it is looked at again (joins below). */
		if (p->repl != NULL && p->repl->broken)
			repl_link_fail(p->repl,
			               "out of memory queueing the stream");
		if (p->n_joins > 0)
			collect_joins(r, p);
		if (p->work) {
			bool left = false;

			pump(r, p);
			if (!p->add_inflight && !p->dropping &&
			    bits_count(p->ready) > 0 && repl_add_due(r, p))
				repl_ask_add(r, p);
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
