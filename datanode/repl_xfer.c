/*
 * Transfers: a big collection's share of a slot sync, spread over loop
 * iterations (docs/datatypes-plan.md, "Sync in slices").
 *
 * The happy path. sync_slot (repl_sync.c) sends the slot's strings and
 * small collections whole, as before, and begins a transfer for each
 * collection of more than NARF_XFER_MIN_ELEMS elements that
 * narf_coll_sliceable() walks while it changes (a dict, a skiplist, a
 * list): {key copy, type, cursor} on the peer. The slot is then left open
 * (narf_rcore_sync_open): its writes go to the peer from now on, in the
 * primary's order with the slices, but its acks do not count. Each loop
 * iteration, pump continues the transfers within the sync budget
 * (repl_xfer_step): the first message of each is a NARF.CLOAD of its first
 * slice, the next ones NARF.CAPPENDs, the last one with the true count, then
 * NARF.PEXPIREAT with the key's TTL (0: none; TTL changes mid-transfer are
 * not sent, and the replica may have lost it, see below). Once none is left,
 * the slot is marked NARF.SYNCED and the core takes over (counts, join, ISR
 * add).
 *
 * Writes meanwhile. A hash's or set's slices walk its dict with the scan
 * cursor, so an element present for the whole transfer is sent at least
 * once; a sorted set's walk its skiplist in order from the last member
 * sent, so one whose score stays put is sent once (and the copy inserts
 * at its tail). Effects are per-element upserts and deletes, sent to the
 * peer in link order, so the last message about an element carries the
 * primary's state of it. They go with count -1 (the copy is partial); the
 * last slice's count proves the result. A removal can empty the partial
 * copy, which the replica then deletes: NARF.CAPPEND re-creates it, and
 * the closing NARF.PEXPIREAT restores its TTL. A list is positional: its
 * effects cannot apply to part of it, so a write to a list mid-transfer is
 * not sent; the transfer starts over (a new NARF.CLOAD at the next step,
 * carrying the write) once, and a second write sends the list whole at
 * the next step (bounded by the list, once per sync; the plan's decision
 * 4). Until a transfer's first NARF.CLOAD went, effects of its key are not
 * sent at all: that CLOAD carries them.
 *
 * Failure modes. A NARF.SET, NARF.DEL or NARF.CLOAD of the key (a
 * replacement, a deletion, an expiry or eviction: stream_change) cancels
 * its transfer. A link failure, or the slot no longer open to the peer
 * (the core cleared its fwd bit: slot_rule, link_down), makes the
 * transfers stale: they are dropped at the next step, and the slot is
 * synced again or no longer ours. A message that cannot be queued breaks
 * the link as any other.
 */
#include "repl_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/coll.h"
#include "common/log.h"

/* Are p's transfers those of the slot open to it on this link? */
static bool xfers_live(const struct narf_peer *p)
{
	const struct narf_rpeer *rp = p->rp;

	return rp->open && rp->open_slot == p->xfer_slot &&
	       rp->gen == p->xfer_gen && narf_rcore_link_usable(rp);
}

static void xfer_remove(struct narf_peer *p, unsigned i)
{
	free(p->xfers[i].key);
	narf_coll_cursor_close(&p->xfers[i].cur);
	memmove(p->xfers + i, p->xfers + i + 1,
	        (p->n_xfers - i - 1) * sizeof(p->xfers[0]));
	p->n_xfers--;
}

void repl_xfer_drop(struct narf_peer *p)
{
	while (p->n_xfers > 0)
		xfer_remove(p, p->n_xfers - 1);
}

int repl_xfer_begin(struct narf_peer *p,
                    unsigned slot,
                    const char *key,
                    size_t klen,
                    const struct narf_entry *e)
{
	struct narf_coll c;
	struct xfer *x;

	if (!narf_entry_coll(e, &c) || !narf_coll_sliceable(&c) ||
	    narf_coll_len(&c) <= NARF_XFER_MIN_ELEMS)
		return NARF_EINVAL; /* small enough to go whole */
	if (p->n_xfers > 0 &&
	    (p->xfer_slot != slot || p->xfer_gen != p->rp->gen))
		repl_xfer_drop(p); /* left from an older sync */
	if (p->n_xfers == p->cap_xfers) {
		unsigned cap = p->cap_xfers ? 2 * p->cap_xfers : 4;

		x = realloc(p->xfers, cap * sizeof(*x));
		if (x == NULL)
			return NARF_ENOMEM;
		p->xfers = x;
		p->cap_xfers = cap;
	}
	x = &p->xfers[p->n_xfers];
	memset(x, 0, sizeof(*x));
	if ((x->key = malloc(klen > 0 ? klen : 1)) == NULL)
		return NARF_ENOMEM;
	memcpy(x->key, key, klen);
	x->klen = klen;
	x->type = c.type;
	x->reload = true;
	p->xfer_slot = (uint16_t)slot;
	p->xfer_gen = p->rp->gen;
	p->n_xfers++;
	p->r->xfers_begun++;
	return 0;
}

struct xfer *repl_xfer_find(struct narf_peer *p,
                            unsigned slot,
                            const char *key,
                            size_t klen)
{
	if (p->n_xfers == 0 || p->xfer_slot != slot || !xfers_live(p))
		return NULL;
	for (unsigned i = 0; i < p->n_xfers; i++)
		if (p->xfers[i].klen == klen &&
		    memcmp(p->xfers[i].key, key, klen) == 0)
			return &p->xfers[i];
	return NULL;
}

bool repl_xfer_effect(struct narf_peer *p, struct xfer *x)
{
	(void)p;
	if (x->reload || x->whole)
		return false; /* the next message replaces the copy */
	if (x->type != NARF_TYPE_LIST)
		return true;
	if (!x->restarted) {
		x->restarted = true;
		x->reload = true;
	} else {
		x->whole = true;
	}
	return false;
}

void repl_xfer_cancel(struct narf_peer *p, struct xfer *x)
{
	xfer_remove(p, (unsigned)(x - p->xfers));
}

/* Send x's whole value now, or a NARF.DEL when the key is gone. */
static int xfer_whole(struct narf_repl *r,
                      struct narf_peer *p,
                      const struct xfer *x,
                      uint64_t epoch,
                      const struct narf_entry *e)
{
	return repl_send_key(r, p->repl, epoch, x->key, x->klen, e);
}

/* The next slice of x (the collection c, the key's entry e). */
static int xfer_slice(struct narf_repl *r,
                      struct narf_peer *p,
                      struct xfer *x,
                      const char *ep,
                      size_t eplen,
                      const struct narf_entry *e,
                      struct narf_coll *c,
                      struct narf_buf *payload,
                      struct narf_buf *msg,
                      bool *done)
{
	struct link *l = p->repl;
	int64_t exp = narf_entry_expire(e);
	size_t before = l->out.len;
	uint64_t n = 0;
	bool load = x->reload;
	int rv;

	payload->len = 0;
	if (load)
		narf_coll_cursor_close(&x->cur); /* from the start */
	rv = narf_coll_slice(c, &x->cur, NARF_CLOAD_SLICE_ELEMS,
	                     NARF_CLOAD_SLICE_BYTES, payload, &n, done);
	if (rv != 0)
		return rv;
	rv = repl_coll_msg(l, load, ep, eplen, x->key, x->klen,
	                   (enum narf_type)c->type, exp,
	                   *done ? (int64_t)narf_coll_len(c) : -1,
	                   payload->data, payload->len, n, msg);
	/* The closing NARF.PEXPIREAT, 0 included: TTL changes mid-transfer
	 * are not sent (stream_change), and CAPPEND may have re-created a
	 * copy the replica deleted, without its TTL. */
	if (rv == 0 && *done && !load) {
		char px[24];
		const char *argv[] = {"NARF.PEXPIREAT", ep, x->key, px};
		size_t argvlen[] = {
		        14, eplen, x->klen,
		        narf_format_u64(px, exp > 0 ? (uint64_t)exp : 0)};

		rv = repl_link_cmd(l, 4, argv, argvlen);
	}
	if (rv != 0)
		return NARF_ENOMEM;
	x->reload = false;
	r->stream_msgs++;
	r->stream_bytes += l->out.len - before;
	r->xfer_slices++;
	return 0;
}

bool repl_xfer_step(struct narf_repl *r, struct narf_peer *p, size_t limit)
{
	const struct narf_map *map = repl_map(r);
	struct narf_buf payload, msg;
	uint64_t epoch;
	char ep[24];
	size_t eplen;

	if (p->n_xfers > 0 && !xfers_live(p))
		repl_xfer_drop(p);
	if (p->n_xfers == 0 || map == NULL)
		return p->n_xfers == 0;
	epoch = map->slots[p->xfer_slot].epoch;
	eplen = narf_format_u64(ep, epoch);
	narf_buf_init(&payload);
	narf_buf_init(&msg);
	while (p->n_xfers > 0 && p->repl->out.len < limit) {
		struct xfer *x = &p->xfers[0];
		unsigned n = p->n_xfers;
		struct narf_entry *e;
		struct narf_coll c;
		bool done = false;
		int rv;

		/* An expired key is reclaimed here: its NARF.DEL goes out
		 * (stream_change), which cancels the transfer. */
		e = narf_store_get(r->store, p->xfer_slot, x->key, x->klen,
		                   wall_ms(), NARF_STORE_NOTOUCH);
		if (p->n_xfers != n)
			continue;
		if (e == NULL || !narf_entry_coll(e, &c) || c.type != x->type ||
		    !narf_coll_sliceable(&c) || x->whole) {
			/* Every replacement cancels the transfer, so only the
			 * list rule (whole) comes here; the rest is a
			 * safety net: the peer gets the key as it is. */
			rv = xfer_whole(r, p, x, epoch, e);
			done = true;
		} else {
			rv = xfer_slice(r, p, x, ep, eplen, e, &c, &payload,
			                &msg, &done);
		}
		if (!narf_rcore_link_usable(p->rp)) {
			repl_xfer_drop(p); /* the link is broken: it fails */
			break;
		}
		if (rv != 0)
			break; /* no memory to encode: again next time */
		if (done)
			xfer_remove(p, 0);
	}
	narf_buf_close(&payload);
	narf_buf_close(&msg);
	return p->n_xfers == 0;
}
