/*
 * The replication core: see repl_core.h. No I/O, no clock, no store: the
 * rules of repl.h's protocol as state changes and queued actions.
 *
 * A link failure (connection error, -STALE, an ack lagging past the node
 * timeout, a command that could not be queued) ends forwarding to the
 * peer, forgets what was synced to it, and asks the coordinator to drop it
 * from the ISR of our slots; until that entry is applied, clients whose
 * writes need the peer keep waiting. Then the peer is excused, a new link
 * is made, and its slots are synced again.
 */
#include "repl_core.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define WORDS NARF_RC_WORDS

static void bit_set(uint64_t *set, unsigned s)
{
	set[s / 64] |= (uint64_t)1 << (s % 64);
}

static void bit_clear(uint64_t *set, unsigned s)
{
	set[s / 64] &= ~((uint64_t)1 << (s % 64));
}

#define bit narf_rc_bit

unsigned narf_rc_count(const uint64_t *set)
{
	unsigned n = 0;

	for (unsigned i = 0; i < WORDS; i++)
		n += (unsigned)__builtin_popcountll(set[i]);
	return n;
}

static bool any(const uint64_t *set)
{
	for (unsigned i = 0; i < WORDS; i++)
		if (set[i] != 0)
			return true;
	return false;
}

static bool in_list(const uint32_t *list, unsigned n, uint32_t id)
{
	for (unsigned i = 0; i < n; i++)
		if (list[i] == id)
			return true;
	return false;
}

/* --- actions ---------------------------------------------------------------
 */

/* Queue an action. Without memory it is lost, except PROGRESS (a flag):
 * every action the core queues is one that a later tick or map queues
 * again while its reason lasts (a link to open, a drop wanted, ...). */
static void act(struct narf_rcore *rc, struct narf_ract a)
{
	if (rc->head_act == rc->n_acts)
		rc->head_act = rc->n_acts = 0;
	if (rc->n_acts == rc->cap_acts) {
		unsigned cap = rc->cap_acts ? 2 * rc->cap_acts : 16;
		struct narf_ract *n;

		if (rc->head_act > 0) { /* make room at the front first */
			memmove(rc->acts, rc->acts + rc->head_act,
			        (rc->n_acts - rc->head_act) * sizeof(*n));
			rc->n_acts -= rc->head_act;
			rc->head_act = 0;
		} else if ((n = realloc(rc->acts, cap * sizeof(*n))) != NULL) {
			rc->acts = n;
			rc->cap_acts = cap;
		} else {
			NARF_ERROR("repl: out of memory queueing an action");
			free(a.slots);
			return;
		}
	}
	rc->acts[rc->n_acts++] = a;
}

static void progress(struct narf_rcore *rc)
{
	if (rc->progress_queued)
		return;
	rc->progress_queued = true;
	act(rc, (struct narf_ract){.kind = NARF_RACT_PROGRESS});
}

bool narf_rcore_next_action(struct narf_rcore *rc, struct narf_ract *a)
{
	if (rc->head_act == rc->n_acts)
		return false;
	*a = rc->acts[rc->head_act++];
	if (a->kind == NARF_RACT_PROGRESS)
		rc->progress_queued = false;
	return true;
}

/* --- gates -----------------------------------------------------------------
 */

void narf_gate_clear(struct narf_gate *g)
{
	g->n = 0;
	g->epoch = 0;
	g->n_slots = 0;
	g->many = false;
}

void narf_gate_close(struct narf_gate *g)
{
	free(g->need);
	memset(g, 0, sizeof(*g));
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

/* Did we lose a slot the gate's writes went to, after they ran? */
static bool gate_lost_slot(const struct narf_rcore *rc,
                           const struct narf_gate *g)
{
	if (g->many) {
		for (unsigned s = 0; s < NARF_SLOTS; s++)
			if (rc->lost_at[s] > g->epoch)
				return true;
		return false;
	}
	for (unsigned i = 0; i < g->n_slots; i++)
		if (rc->lost_at[g->slots[i]] > g->epoch)
			return true;
	return false;
}

/* Out of our ISRs for good: no drop pending, no slot counting its acks. */
static bool excused(const struct narf_rpeer *p)
{
	return p->drop.state == NARF_RREQ_IDLE && p->n_counts == 0;
}

/* Has the peer applied what n needs? */
static bool need_acked(const struct narf_rcore *rc, const struct narf_need *n)
{
	const struct narf_rpeer *p = narf_rcore_peer(rc, n->peer);

	return p != NULL && n->seq != UINT64_MAX &&
	       p->link != NARF_RLINK_DOWN && p->gen == n->gen &&
	       p->acked >= n->seq;
}

/* Does a slot g wrote now have fewer in-sync copies (the primary and its
 * ISR) than the map's min_isr? */
static bool gate_short(const struct narf_rcore *rc, const struct narf_gate *g)
{
	const struct narf_map *map = rc->map;

	if (map == NULL || map->settings.min_isr <= 1)
		return false;
	for (unsigned i = 0; i < (g->many ? NARF_SLOTS : g->n_slots); i++) {
		unsigned s = g->many ? i : g->slots[i];

		if ((!g->many || bit(rc->lead, s)) &&
		    1u + map->slots[s].n_isr < map->settings.min_isr)
			return true;
	}
	return false;
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
bool narf_rcore_gate_open(const struct narf_rcore *rc,
                          const struct narf_gate *g,
                          bool *broken)
{
	bool excuse = false;

	*broken = false;
	for (unsigned i = 0; i < g->n; i++) {
		const struct narf_rpeer *p;

		if (need_acked(rc, &g->need[i]))
			continue;
		p = narf_rcore_peer(rc, g->need[i].peer);
		if (gate_lost_slot(rc, g)) {
			if (p != NULL && p->link != NARF_RLINK_DOWN &&
			    p->gen == g->need[i].gen &&
			    g->need[i].seq != UINT64_MAX)
				return false; /* the ack may still come */
			*broken = true;
			return false;
		}
		if (p != NULL && !excused(p))
			return false;
		excuse = true;
	}
	/* Excused by an ISR drop that left the slot below min_isr: the write
	 * may be on this node alone, which min_isr promised never to
	 * acknowledge. Its client gets no "OK" (the connection closes: the
	 * write's fate is unknown to it, as after a timeout). */
	if (excuse && gate_short(rc, g)) {
		*broken = true;
		return false;
	}
	return true;
}

unsigned narf_rcore_gate_acked(const struct narf_rcore *rc,
                               const struct narf_gate *g)
{
	unsigned n = 0;

	for (unsigned i = 0; i < g->n; i++)
		n += need_acked(rc, &g->need[i]);
	return n;
}

void narf_rcore_batch_begin(struct narf_rcore *rc)
{
	rc->in_batch = true;
	narf_gate_clear(&rc->batch);
}

bool narf_rcore_batch_end(struct narf_rcore *rc, struct narf_gate *gate)
{
	rc->in_batch = false;
	if (rc->batch.n == 0)
		return false;
	rc->batch.epoch = rc->epoch;
	narf_gate_merge(gate, &rc->batch);
	narf_gate_clear(&rc->batch);
	return true;
}

/* --- peers and their requests ----------------------------------------------
 */

struct narf_rpeer *narf_rcore_peer(const struct narf_rcore *rc, uint32_t id)
{
	for (unsigned i = 0; i < rc->n_peers; i++)
		if (rc->peers[i]->id == id)
			return rc->peers[i];
	return NULL;
}

struct narf_rpeer *narf_rcore_peer_get(struct narf_rcore *rc, uint32_t id)
{
	struct narf_rpeer *p = narf_rcore_peer(rc, id);

	if (p != NULL || id == 0)
		return p;
	if (rc->n_peers == rc->cap_peers) {
		unsigned cap = rc->cap_peers ? 2 * rc->cap_peers : 8;
		struct narf_rpeer **a = realloc(rc->peers, cap * sizeof(*a));

		if (a == NULL)
			return NULL;
		rc->peers = a;
		rc->cap_peers = cap;
	}
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return NULL;
	p->id = id;
	rc->peers[rc->n_peers++] = p;
	return p;
}

static void recount(struct narf_rpeer *p)
{
	p->n_counts = narf_rc_count(p->counts);
}

/*
 * Ask the coordinator to drop p from the ISR of every slot we lead (one
 * request at a time: one out covers any failure since it was sent). Not
 * while an add for p is out: the coordinator could apply the drop first
 * and the add after it, and p would be in an ISR lacking the writes we
 * acknowledged since its link failed. The drop waits for the add's answer
 * (WANTED), so the coordinator's log has it after the add.
 */
static void ask_drop(struct narf_rcore *rc, struct narf_rpeer *p)
{
	if (p->drop.state == NARF_RREQ_ASKED)
		return;
	if (p->add.state == NARF_RREQ_ASKED) {
		p->drop.state = NARF_RREQ_WANTED;
		return;
	}
	p->drop.state = NARF_RREQ_ASKED;
	p->drop.epoch = 0;
	act(rc, (struct narf_ract){.kind = NARF_RACT_ASK_DROP, .peer = p});
}

static void open_link(struct narf_rcore *rc, struct narf_rpeer *p, uint64_t now)
{
	p->link = NARF_RLINK_CONNECTING;
	p->relinked = true;
	p->gen++;
	p->sent = p->acked = 0;
	p->progress_ms = now;
	act(rc, (struct narf_ract){.kind = NARF_RACT_OPEN_LINK, .peer = p});
}

/*
 * Was p dropped from an ISR (by a drop, or by going down) after we last
 * synced slot s to it? Then what it holds of s may lack writes: a
 * primary that missed the maps where p was down still has its link, and
 * p back among s's replicas (not in the ISR) looks like a sync of ours
 * waiting for its add.
 */
static bool dropped_since_sync(const struct narf_rcore *rc,
                               const struct narf_rpeer *p,
                               unsigned s)
{
	const struct narf_map_node *n = narf_map_node_get(rc->map, p->id);
	uint64_t synced = p->sync_at != NULL ? p->sync_at[s] : 0;

	return n != NULL && n->isr_dropped > synced;
}

/*
 * What peer p should be for slot s under our map: nothing unless we lead s
 * and p replicates it; an ISR member counts for acks and is forwarded to
 * (one we did not sync ourselves, after a promotion, already holds the
 * slot); another replica is synced, unless that is under way (then its
 * acks count already, see narf_rcore_synced) and began after p last left
 * an ISR.
 */
static void slot_rule(struct narf_rcore *rc, struct narf_rpeer *p, unsigned s)
{
	const struct narf_slot *slot = &rc->map->slots[s];

	if (!bit(rc->lead, s) ||
	    !in_list(slot->replicas, slot->n_replicas, p->id)) {
		bit_clear(p->fwd, s);
		bit_clear(p->counts, s);
		bit_clear(p->want, s);
		bit_clear(p->ready, s);
		if (p->open && p->open_slot == s)
			p->open = false;
		return;
	}
	if (in_list(slot->isr, slot->n_isr, p->id)) {
		bit_set(p->counts, s);
		bit_clear(p->want, s);
		if (p->link != NARF_RLINK_DOWN)
			bit_set(p->fwd, s);
	} else if (!bit(p->fwd, s) || dropped_since_sync(rc, p, s)) {
		if (bit(p->fwd, s) && p->link != NARF_RLINK_DOWN)
			p->stale = true;
		bit_clear(p->fwd, s);
		bit_clear(p->ready, s);
		bit_clear(p->counts, s);
		bit_set(p->want, s);
		if (p->open && p->open_slot == s)
			p->open = false; /* synced again from scratch */
	}
}

/* The link is gone (failed or could not open): what was synced must be
 * synced again, joins in flight die, and a peer whose acks count (or
 * would, once an add in flight is taken) is asked out of our ISRs. */
static void link_down(struct narf_rcore *rc, struct narf_rpeer *p, uint64_t now)
{
	bool counted = p->n_counts > 0 || p->add.state == NARF_RREQ_ASKED;

	p->link = NARF_RLINK_DOWN;
	p->failed_ms = now;
	p->open = false;
	memset(p->fwd, 0, sizeof(p->fwd));
	memset(p->ready, 0, sizeof(p->ready));
	memset(p->asked, 0, sizeof(p->asked));
	p->n_joins = 0;
	for (unsigned s = 0; rc->map != NULL && s < NARF_SLOTS; s++)
		slot_rule(rc, p, s);
	recount(p);
	if (counted || p->n_counts > 0)
		ask_drop(rc, p);
	p->work = true;
	progress(rc);
}

/* The core ends the link itself (lag, out of memory, divergence). */
static void fail_link(struct narf_rcore *rc,
                      struct narf_rpeer *p,
                      const char *why,
                      uint64_t now)
{
	act(rc, (struct narf_ract){
	                .kind = NARF_RACT_FAIL_LINK, .peer = p, .why = why});
	link_down(rc, p, now);
}

void narf_rcore_link_up(struct narf_rcore *rc, struct narf_rpeer *p)
{
	(void)rc;
	if (p->link == NARF_RLINK_CONNECTING)
		p->link = NARF_RLINK_UP;
	p->work = true;
}

void narf_rcore_link_queued(struct narf_rcore *rc,
                            struct narf_rpeer *p,
                            bool ok,
                            uint64_t now)
{
	(void)rc;
	if (!ok) {
		p->link = NARF_RLINK_BROKEN;
		p->work = true;
		return;
	}
	if (p->sent == p->acked)
		p->progress_ms = now;
	p->sent++;
}

void narf_rcore_link_acked(struct narf_rcore *rc,
                           struct narf_rpeer *p,
                           uint64_t n,
                           uint64_t now)
{
	if (n == 0 || p->link == NARF_RLINK_DOWN)
		return;
	p->acked += n;
	rc->acks += n;
	p->progress_ms = now;
	progress(rc);
}

void narf_rcore_link_failed(struct narf_rcore *rc,
                            struct narf_rpeer *p,
                            uint32_t gen,
                            uint64_t now)
{
	if (p->link == NARF_RLINK_DOWN || gen != p->gen)
		return; /* the core ended it already */
	link_down(rc, p, now);
}

void narf_rcore_isr_reply(struct narf_rcore *rc,
                          uint32_t peer,
                          bool drop,
                          bool ok,
                          uint64_t epoch,
                          uint64_t now)
{
	struct narf_rpeer *p = narf_rcore_peer(rc, peer);

	if (p == NULL)
		return;
	if (drop) {
		if (p->drop.state != NARF_RREQ_ASKED)
			return;
		if (!ok) {
			p->drop.state = NARF_RREQ_WANTED; /* the tick asks */
			return;
		}
		NARF_INFO(
		        "repl: node %u dropped from our ISRs at epoch %" PRIu64,
		        p->id, epoch);
		if (rc->epoch >= epoch) {
			p->drop.state = NARF_RREQ_IDLE;
			progress(rc);
		} else {
			p->drop.state = NARF_RREQ_TAKEN;
			p->drop.epoch = epoch;
		}
		return;
	}
	if (p->add.state != NARF_RREQ_ASKED)
		return;
	p->add.state = NARF_RREQ_IDLE;
	if (!ok) {
		p->work = true;
		/* Ask again for what was asked and is still forwarded (a
		 * link failure since means those slots sync again). */
		for (unsigned i = 0; i < WORDS; i++)
			p->ready[i] |= p->asked[i] & p->fwd[i] & rc->lead[i];
	}
	memset(p->asked, 0, sizeof(p->asked));
	if (p->drop.state == NARF_RREQ_WANTED)
		ask_drop(rc, p); /* it waited for this answer */
	if (!ok && epoch == NARF_RREQ_STALE && p->link != NARF_RLINK_DOWN) {
		/* The peer left an ISR after this link's syncs began: what it
		 * holds may lack writes acknowledged since. Start over. */
		memset(p->ready, 0, sizeof(p->ready));
		fail_link(rc, p, "its ISR add was refused as stale", now);
	}
}

void narf_rcore_handoff_reply(struct narf_rcore *rc,
                              struct narf_rpeer *p,
                              bool ok,
                              uint64_t epoch)
{
	if (p->hand.state != NARF_RREQ_ASKED)
		return;
	/* Taken: the map that makes the target primary ends the request
	 * (narf_rcore_map). Taken while our map is already that new (or
	 * the entry changed nothing: the moves were cleared): over now.
	 * Refused: ask again. */
	if (ok && epoch > rc->epoch) {
		p->hand.state = NARF_RREQ_TAKEN;
		p->hand.epoch = epoch;
		return;
	}
	p->hand.state = NARF_RREQ_IDLE;
	p->work = true;
	if (!ok)
		NARF_INFO("repl: handoff to node %u not taken; asking again",
		          p->id);
}

void narf_rcore_diverged(struct narf_rcore *rc, uint32_t peer, uint64_t now)
{
	struct narf_rpeer *p = narf_rcore_peer(rc, peer);

	if (p == NULL || p->n_counts == 0)
		return;
	if (p->link != NARF_RLINK_DOWN)
		fail_link(rc, p, "it wrote to our slots as a stale primary",
		          now);
	else
		ask_drop(rc, p);
}

/* --- the map -----------------------------------------------------------------
 */

static void handoffs_over(struct narf_rpeer *t, uint64_t now)
{
	NARF_INFO(
	        "repl: handoffs to node %u over (it leads the slots, or the "
	        "moves were cancelled); writes to them waited %" PRIu64 " ms",
	        t->id, now - t->handoff_ms);
}

/*
 * The slot's data began anew after the map we had (born: no in-sync copy
 * survived a failure; we may have skipped the maps in between). Entries we
 * hold from before are of the old lineage: serving them, or promoting us
 * with them, would bring back overwritten values and deleted keys. Keep
 * them only when a stream of the new lineage already reached us (its slot
 * epoch is above born, and the new primary's sync began by emptying the
 * slot).
 */
static void old_lineage(struct narf_rcore *rc,
                        const struct narf_map *old,
                        const struct narf_map *map,
                        unsigned s)
{
	uint64_t born = map->slots[s].born;

	if (born == 0 || born <= (old != NULL ? old->epoch : 0) ||
	    rc->hwm[s] >= born)
		return;
	act(rc, (struct narf_ract){.kind = NARF_RACT_DROP_SLOT,
	                           .slot = s,
	                           .why = "its in-sync copies were lost: "
	                                  "entries of its old data"});
}

/* Writes to slot s (we lead it, the map moves it to t) stop now; what was
 * sent before must be acked by t before we report it ready. */
static void hand_start(struct narf_rpeer *t, unsigned s, uint64_t now)
{
	if (t->n_handoff++ == 0)
		t->handoff_ms = now;
	bit_set(t->handoff, s);
	t->handoff_seq = t->link != NARF_RLINK_DOWN ? t->sent : 0;
}

static void hand_end(struct narf_rcore *rc, unsigned s, uint64_t now)
{
	bit_clear(rc->handing, s);
	for (unsigned i = 0; i < rc->n_peers; i++) {
		struct narf_rpeer *t = rc->peers[i];

		if (!bit(t->handoff, s))
			continue;
		bit_clear(t->handoff, s);
		if (--t->n_handoff == 0)
			handoffs_over(t, now);
	}
}

/* Open a link to every ISR member (with no link and no drop pending) of
 * slot s, if we lead it in map: our writes to it must reach them. */
static void link_isr(struct narf_rcore *rc,
                     uint32_t me,
                     const struct narf_slot *slot,
                     uint64_t now)
{
	if (slot->primary != me || me == 0)
		return;
	for (unsigned j = 0; j < slot->n_replicas; j++) {
		struct narf_rpeer *p =
		        narf_rcore_peer_get(rc, slot->replicas[j]);

		if (p != NULL && p->link == NARF_RLINK_DOWN &&
		    p->drop.state == NARF_RREQ_IDLE &&
		    in_list(slot->isr, slot->n_isr, p->id))
			open_link(rc, p, now);
	}
}

/* A sync to us of slot s ends when we lead it or the map drops it (a map
 * older than the sync does not count). */
static void sync_over(struct narf_rcore *rc,
                      uint32_t me,
                      const struct narf_map *map,
                      unsigned s)
{
	const struct narf_slot *slot = &map->slots[s];

	if ((me != 0 && slot->primary == me) ||
	    (!narf_slot_has(slot, me) && narf_rcore_may_drop(rc, map, s)))
		bit_clear(rc->syncing, s);
}

/* What map (after old) means for slot s: lead, lost, lineage, the fence's
 * mark, a sync to us, a handoff, and every peer's rule. */
static void map_slot(struct narf_rcore *rc,
                     uint32_t me,
                     const struct narf_map *old,
                     const struct narf_map *map,
                     unsigned s,
                     uint64_t now)
{
	const struct narf_slot *slot = &map->slots[s];
	bool lead = me != 0 && slot->primary == me;

	if (bit(rc->lead, s) && !lead) {
		rc->lost_at[s] = map->epoch;
		bit_clear(rc->lead, s);
	}
	if (lead)
		bit_set(rc->lead, s);
	old_lineage(rc, old, map, s);
	if (slot->epoch > rc->hwm[s])
		rc->hwm[s] = slot->epoch;
	sync_over(rc, me, map, s);
	if (lead && slot->move != 0 && slot->move != me) {
		struct narf_rpeer *t = narf_rcore_peer_get(rc, slot->move);

		if (t != NULL && !bit(rc->handing, s)) {
			bit_set(rc->handing, s);
			hand_start(t, s, now);
		}
	} else if (bit(rc->handing, s)) {
		hand_end(rc, s, now);
	}
	for (unsigned i = 0; i < rc->n_peers; i++)
		slot_rule(rc, rc->peers[i], s);
}

/* The slots a map call walks, in order: the dirty set's, or all of them
 * without one. *pos from 0; -1 after the last. */
static int next_slot(const struct narf_map_dirty *d, unsigned *pos)
{
	if (d == NULL)
		return *pos < NARF_SLOTS ? (int)(*pos)++ : -1;
	while (*pos < NARF_SLOTS) {
		uint64_t bits = d->slots[*pos / 64] >> (*pos % 64);

		if (bits != 0) {
			unsigned s = *pos + (unsigned)__builtin_ctzll(bits);

			*pos = s + 1;
			return (int)s;
		}
		*pos = (*pos / 64 + 1) * 64;
	}
	return -1;
}

/* Call fn for every slot of set that dirty does not name. */
static void each_undirty(struct narf_rcore *rc,
                         const uint64_t *set,
                         const struct narf_map_dirty *d,
                         void (*fn)(struct narf_rcore *, void *, unsigned),
                         void *arg)
{
	for (unsigned w = 0; w < WORDS; w++)
		for (uint64_t b = set[w] & ~d->slots[w]; b != 0; b &= b - 1)
			fn(rc, arg, w * 64 + (unsigned)__builtin_ctzll(b));
}

static void sync_over_cb(struct narf_rcore *rc, void *arg, unsigned s)
{
	(void)arg;
	sync_over(rc, rc->me, rc->map, s);
}

static void slot_rule_cb(struct narf_rcore *rc, void *arg, unsigned s)
{
	slot_rule(rc, arg, s);
}

bool narf_rcore_map(struct narf_rcore *rc,
                    uint32_t me,
                    const struct narf_map *old,
                    const struct narf_map *map,
                    const struct narf_map_dirty *dirty,
                    uint64_t now)
{
	const struct narf_map_node *self;
	bool cleared = false;
	unsigned pos;
	int s;

	if (rc->map != NULL && map->epoch < rc->epoch) {
		NARF_WARN("repl: map epoch %" PRIu64
		          " is older than ours (%" PRIu64 "): ignored",
		          map->epoch, rc->epoch);
		return false;
	}
	/* A dirty set says what changed since old: worth something only
	 * when old is the map we had, and we are the same node. */
	if (dirty != NULL && (old == NULL || rc->map == NULL ||
	                      old->epoch != rc->epoch || me != rc->me))
		dirty = NULL;
	rc->me = me;
	rc->map = map;
	rc->epoch = map->epoch;
	rc->node_timeout_ms = map->settings.node_timeout_ms;
	self = narf_map_node_get(map, me);
	rc->leaving = self != NULL && (self->state == NARF_NODE_LEAVING ||
	                               self->state == NARF_NODE_REMOVED);
	/* Senders no longer in the cluster will stream to us no more
	 * (a node id is never reused): forget their connections. */
	for (unsigned i = 0;
	     (dirty == NULL || dirty->nodes) && i < rc->n_in_links;) {
		const struct narf_map_node *n =
		        narf_map_node_get(map, rc->in_links[i].node);

		if (n == NULL || n->state == NARF_NODE_REMOVED)
			rc->in_links[i] = rc->in_links[--rc->n_in_links];
		else
			i++;
	}
	/* Drops this map carries are done: those peers may be linked to
	 * again below (they may be ISR members of slots new to us). */
	for (unsigned i = 0; i < rc->n_peers; i++) {
		struct narf_rpeer *p = rc->peers[i];

		if (p->drop.state == NARF_RREQ_TAKEN &&
		    map->epoch >= p->drop.epoch) {
			p->drop.state = NARF_RREQ_IDLE;
			cleared = true;
		}
	}
	/* Peers of every slot we lead, with a link to each ISR member: of
	 * the slots that changed, or of all of them when a drop cleared
	 * (its peer may be in the ISR of slots that did not change). */
	pos = 0;
	while ((s = next_slot(cleared ? NULL : dirty, &pos)) >= 0)
		link_isr(rc, me, &map->slots[s], now);
	pos = 0;
	while ((s = next_slot(dirty, &pos)) >= 0)
		map_slot(rc, me, old, map, (unsigned)s, now);
	/* What the full walk would also change in slots that did not: a
	 * sync to us ends with the map's epoch (narf_rcore_may_drop); a
	 * peer whose isr_dropped moved (dirty->nodes) is synced again where
	 * we forward to it outside the ISR (slot_rule, dropped_since_sync);
	 * a peer linked anew since the last map is forwarded the slots we
	 * lead that it is in the ISR of. */
	if (dirty != NULL) {
		uint64_t syncing[WORDS];

		memcpy(syncing, rc->syncing, sizeof(syncing));
		each_undirty(rc, syncing, dirty, sync_over_cb, NULL);
		for (unsigned i = 0; i < rc->n_peers; i++) {
			struct narf_rpeer *p = rc->peers[i];
			uint64_t set[WORDS];

			if (!p->relinked && !dirty->nodes)
				continue;
			for (unsigned w = 0; w < WORDS; w++)
				set[w] = (p->relinked ? rc->lead[w] : 0) |
				         (dirty->nodes ? p->fwd[w] : 0);
			each_undirty(rc, set, dirty, slot_rule_cb, p);
		}
	}
	for (unsigned i = 0; i < rc->n_peers; i++) {
		struct narf_rpeer *p = rc->peers[i];

		p->relinked = false;
		recount(p);
		/* It left an ISR while we kept its link (we missed the maps
		 * where it was down): start over on a new link, which also
		 * supersedes whatever the old one may still deliver. */
		if (p->stale && p->link != NARF_RLINK_DOWN)
			fail_link(rc, p,
			          "it left an ISR after we synced it: syncing "
			          "it again over a new link",
			          now);
		p->stale = false;
		/* A handoff request ends with the map its entry made, not with
		 * any map: another node's entry would have us send the same
		 * slots again (a second entry, and "not taken"). */
		if (p->hand.state == NARF_RREQ_TAKEN &&
		    map->epoch >= p->hand.epoch)
			p->hand.state = NARF_RREQ_IDLE;
		p->work = true;
	}
	progress(rc);
	return true;
}

bool narf_rcore_may_drop(const struct narf_rcore *rc,
                         const struct narf_map *map,
                         unsigned s)
{
	return map->epoch >= rc->sync_epoch[s];
}

/* --- the write stream, syncs -------------------------------------------------
 */

bool narf_rcore_streams(const struct narf_rcore *rc, unsigned slot)
{
	return rc->map != NULL && bit(rc->lead, slot) && !rc->applying;
}

bool narf_rcore_forwards(const struct narf_rcore *rc,
                         const struct narf_rpeer *p,
                         unsigned slot)
{
	(void)rc;
	return bit(p->fwd, slot) && narf_rcore_link_usable(p);
}

void narf_rcore_wrote(struct narf_rcore *rc,
                      struct narf_rpeer *p,
                      unsigned slot,
                      bool queued)
{
	const struct narf_slot *sl;

	/* Queued to the peer: only then can its ack release the write;
	 * otherwise only an excuse (the ISR drop that the broken or missing
	 * link leads to) can. A peer being dropped is waited for on every
	 * slot it replicates, counted or not: until the drop is in our map
	 * it may be in the slot's ISR (an add we sent before its link failed
	 * may be applied first), and a write it lacks must not be
	 * acknowledged before it is out. */
	if (!rc->in_batch || rc->map == NULL)
		return;
	sl = &rc->map->slots[slot];
	if (bit(p->counts, slot)) {
		gate_need(&rc->batch, p->id, queued ? p->gen : 0,
		          queued ? p->sent : UINT64_MAX);
	} else if (p->drop.state != NARF_RREQ_IDLE &&
	           in_list(sl->replicas, sl->n_replicas, p->id)) {
		gate_need(&rc->batch, p->id, 0, UINT64_MAX);
	} else {
		return;
	}
	gate_slot(&rc->batch, slot);
}

void narf_rcore_applying(struct narf_rcore *rc, bool on)
{
	rc->applying = on;
}

int narf_rcore_sync_next(struct narf_rcore *rc, struct narf_rpeer *p)
{
	(void)rc;
	if (!narf_rcore_link_usable(p) || p->drop.state != NARF_RREQ_IDLE)
		return -1;
	if (p->sync_at == NULL &&
	    (p->sync_at = calloc(NARF_SLOTS, sizeof(*p->sync_at))) == NULL)
		return -1;
	if (p->n_joins == p->cap_joins) {
		unsigned cap = p->cap_joins ? 2 * p->cap_joins : 64;
		struct narf_rjoin *j = realloc(p->joins, cap * sizeof(*j));

		if (j == NULL)
			return -1; /* stays wanted: tried again later */
		p->joins = j;
		p->cap_joins = cap;
	}
	if (p->open)
		return p->open_slot;
	for (unsigned w = 0; w < WORDS; w++)
		if (p->want[w] != 0)
			return (int)(w * 64 +
			             (unsigned)__builtin_ctzll(p->want[w]));
	return -1;
}

/*
 * The slot's entries are queued but for transfers (repl_xfer.c): from now
 * on its writes go to p, so the transfers and the writes arrive in the
 * primary's order, but p's acks do not count and nothing joins until
 * NARF.SYNCED (narf_rcore_synced) once they are over.
 */
void narf_rcore_sync_open(struct narf_rcore *rc,
                          struct narf_rpeer *p,
                          unsigned slot)
{
	if (p->sync_at == NULL || (p->open && p->open_slot != slot))
		return; /* not from sync_next: nothing to open */
	p->sync_at[slot] = rc->epoch;
	bit_clear(p->want, slot);
	bit_set(p->fwd, slot);
	p->open = true;
	p->open_slot = (uint16_t)slot;
	p->work = true;
	NARF_DEBUG("repl: slot %u open to node %u until its transfers end",
	           slot, p->id);
}

void narf_rcore_synced(struct narf_rcore *rc,
                       struct narf_rpeer *p,
                       unsigned slot,
                       bool ok,
                       uint64_t seq)
{
	bool was_open = p->open && p->open_slot == slot;

	if (was_open)
		p->open = false;
	if (!ok || p->n_joins == p->cap_joins || p->sync_at == NULL)
		return; /* the link is broken: it fails, the slot syncs again */
	/* An open sync began when it was opened: the add's "since" and
	 * dropped_since_sync look at that. */
	if (!was_open)
		p->sync_at[slot] = rc->epoch;
	bit_clear(p->want, slot);
	bit_set(p->fwd, slot);
	/* From here every write the peer misses would be a write a client
	 * was told is safe once the peer joins: count its acks now. */
	if (!bit(p->counts, slot)) {
		bit_set(p->counts, slot);
		p->n_counts++;
	}
	p->joins[p->n_joins++] = (struct narf_rjoin){(uint16_t)slot, seq};
	p->synced++;
}

/* Slots whose NARF.SYNCED the peer acked become ready to join the ISR. */
static void collect_joins(struct narf_rcore *rc, struct narf_rpeer *p)
{
	unsigned k = 0;

	while (k < p->n_joins && p->joins[k].seq <= p->acked) {
		unsigned s = p->joins[k].slot;

		if (bit(rc->lead, s) && bit(p->fwd, s)) {
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

/*
 * Synced slots join the ISR in batches: every isr entry is a new map epoch
 * that the coordinators apply and every node fetches, and slots finish
 * syncing one by one (thousands a second when they are small). So a batch
 * goes at most every NARF_ISR_ADD_MS while more slots are syncing to the
 * peer; the last one goes at once.
 */
static bool add_due(const struct narf_rpeer *p, uint64_t now)
{
	return !any(p->want) || now - p->add.ms >= NARF_ISR_ADD_MS;
}

/*
 * Ask the coordinator to add p to the ISR of the ready slots still ours and
 * still forwarded to it. The add says since when their syncs ran: the
 * oldest sync among them. The coordinator refuses it when p left an ISR
 * after that, and skips a slot whose primary changed after it (both mean
 * the request is older than what p may lack: a request the network held,
 * or one from before the slot left us and came back). So a slot whose
 * slot epoch is above that `since` waits for the next add (one whose
 * oldest sync is its own): never skipped for being asked with an older
 * slot's epoch.
 */
static void ask_add(struct narf_rcore *rc, struct narf_rpeer *p, uint64_t now)
{
	uint64_t since = UINT64_MAX;
	bool some = false;

	for (unsigned i = 0; i < WORDS; i++) {
		p->ready[i] &= p->fwd[i] & rc->lead[i];
		for (uint64_t w = p->ready[i]; w != 0; w &= w - 1) {
			unsigned s = i * 64 + (unsigned)__builtin_ctzll(w);

			if (p->sync_at[s] < since)
				since = p->sync_at[s];
		}
	}
	for (unsigned i = 0; i < WORDS; i++) {
		p->asked[i] = 0;
		for (uint64_t w = p->ready[i]; w != 0; w &= w - 1) {
			unsigned s = i * 64 + (unsigned)__builtin_ctzll(w);

			if (rc->map->slots[s].epoch <= since)
				p->asked[i] |= (uint64_t)1 << (s % 64);
		}
		p->ready[i] &= ~p->asked[i];
		some = some || p->asked[i] != 0;
	}
	if (!some)
		return;
	p->add_since = since;
	p->add.state = NARF_RREQ_ASKED;
	p->add.ms = now;
	act(rc, (struct narf_ract){.kind = NARF_RACT_ASK_ADD, .peer = p});
}

/*
 * A handoff is ready when the target has every slot (forwarded) and has
 * acknowledged everything we sent before writes stopped; then we tell the
 * coordinator, which makes it primary with a new slot epoch.
 */
static void report_handoffs(struct narf_rcore *rc, struct narf_rpeer *p)
{
	uint64_t *ready;
	bool some = false;

	if (p->hand.state != NARF_RREQ_IDLE || p->link == NARF_RLINK_DOWN ||
	    p->acked < p->handoff_seq || p->n_handoff == 0)
		return;
	ready = malloc(WORDS * sizeof(*ready));
	if (ready == NULL)
		return; /* tried again at the next step */
	for (unsigned w = 0; w < WORDS; w++) {
		ready[w] = p->handoff[w] & p->fwd[w] & p->counts[w];
		some = some || ready[w] != 0;
	}
	if (!some) {
		free(ready);
		return;
	}
	NARF_INFO("repl: handing %u slots to node %u", narf_rc_count(ready),
	          p->id);
	p->hand.state = NARF_RREQ_ASKED;
	p->hand.epoch = 0;
	act(rc, (struct narf_ract){
	                .kind = NARF_RACT_HANDOFF, .peer = p, .slots = ready});
}

void narf_rcore_step(struct narf_rcore *rc, uint64_t now)
{
	for (unsigned i = 0; i < rc->n_peers; i++) {
		struct narf_rpeer *p = rc->peers[i];

		/* Before any ack on it is looked at again (joins below). */
		if (p->link == NARF_RLINK_BROKEN)
			fail_link(rc, p, "out of memory queueing the stream",
			          now);
		if (p->n_joins > 0)
			collect_joins(rc, p);
		if (!p->work)
			continue;
		if (p->add.state == NARF_RREQ_IDLE &&
		    p->drop.state == NARF_RREQ_IDLE && any(p->ready) &&
		    add_due(p, now))
			ask_add(rc, p, now);
		report_handoffs(rc, p);
		p->work = any(p->want) || any(p->ready) || p->n_handoff > 0 ||
		          p->open;
	}
}

/* Nothing of ours is with p, to it or about it: no link, no request, no
 * slot in any of its sets, no action queued that names it. */
static bool peer_idle(const struct narf_rcore *rc, const struct narf_rpeer *p)
{
	if (p->link != NARF_RLINK_DOWN || p->drop.state != NARF_RREQ_IDLE ||
	    p->add.state != NARF_RREQ_IDLE || p->hand.state != NARF_RREQ_IDLE ||
	    p->n_counts != 0 || p->n_handoff != 0 || p->n_joins != 0 ||
	    p->open || any(p->fwd) || any(p->counts) || any(p->want) ||
	    any(p->ready) || any(p->asked) || any(p->handoff))
		return false;
	for (unsigned i = rc->head_act; i < rc->n_acts; i++)
		if (rc->acts[i].peer == p)
			return false;
	return true;
}

/*
 * Peers of nodes the map no longer holds (node_forget: a removed node that
 * held nothing) are freed once idle, keeping the others in order; the I/O
 * hears it (FORGET_PEER) and frees its own state. A node id is never
 * reused, so no later map can name it again.
 */
static void forget_peers(struct narf_rcore *rc)
{
	for (unsigned i = 0; i < rc->n_peers;) {
		struct narf_rpeer *p = rc->peers[i];

		if (narf_map_node_get(rc->map, p->id) != NULL ||
		    !peer_idle(rc, p)) {
			i++;
			continue;
		}
		NARF_INFO("repl: node %u left the map: forgetting it", p->id);
		act(rc, (struct narf_ract){.kind = NARF_RACT_FORGET_PEER,
		                           .node = p->id});
		free(p->joins);
		free(p->sync_at);
		free(p);
		memmove(&rc->peers[i], &rc->peers[i + 1],
		        (rc->n_peers - i - 1) * sizeof(rc->peers[0]));
		rc->n_peers--;
	}
}

void narf_rcore_tick(struct narf_rcore *rc, uint64_t now)
{
	const struct narf_map *map = rc->map;
	unsigned lag = rc->node_timeout_ms ? rc->node_timeout_ms : 600;

	if (map == NULL)
		return;
	for (unsigned i = 0; i < rc->n_peers; i++) {
		struct narf_rpeer *p = rc->peers[i];
		const struct narf_map_node *n = narf_map_node_get(map, p->id);
		bool needed = any(p->want) || p->n_counts > 0;

		if (p->link != NARF_RLINK_DOWN && p->sent > p->acked &&
		    now - p->progress_ms > lag) {
			fail_link(rc, p, "acknowledgements lag behind", now);
			continue;
		}
		if (p->drop.state == NARF_RREQ_WANTED &&
		    p->add.state != NARF_RREQ_ASKED)
			ask_drop(rc, p);
		/* (Re)connect when there is something to send, after a
		 * pause when the last attempt failed. */
		if (p->link == NARF_RLINK_DOWN && needed &&
		    p->drop.state == NARF_RREQ_IDLE && n != NULL &&
		    (n->state == NARF_NODE_UP ||
		     n->state == NARF_NODE_LEAVING ||
		     n->state == NARF_NODE_JOINING) &&
		    now - p->failed_ms >= NARF_LINK_RETRY_MS)
			open_link(rc, p, now);
		if (p->link != NARF_RLINK_DOWN && p->n_counts == 0 &&
		    !any(p->want) && !any(p->fwd) && p->sent == p->acked) {
			/* Nothing of ours there any more. */
			p->link = NARF_RLINK_DOWN;
			act(rc, (struct narf_ract){.kind = NARF_RACT_CLOSE_LINK,
			                           .peer = p});
		}
	}
	forget_peers(rc);
}

/* --- the replica side -------------------------------------------------------
 */

/*
 * The epoch fence with its high-water mark. A slot's epoch only grows (it
 * is the map epoch at which the slot's primary last changed), so the
 * highest one seen, in our maps or in any stream we accepted, names the
 * newest primary we know of, and a message below it comes from a primary
 * that has since been replaced. Checking only our map's epoch would let a
 * replica whose map is one change behind apply the new primary's stream
 * (newer than its map: accepted) and then the old primary's (equal to its
 * map: accepted too), older data over newer.
 */
enum narf_fence narf_fence_check(uint64_t *hwm,
                                 uint64_t map_epoch,
                                 bool we_lead,
                                 uint64_t epoch)
{
	if (epoch < *hwm || (epoch == map_epoch && we_lead))
		return NARF_FENCE_STALE;
	*hwm = epoch;
	return epoch > map_epoch ? NARF_FENCE_NEWER : NARF_FENCE_APPLY;
}

enum narf_fence narf_rcore_accept(struct narf_rcore *rc,
                                  unsigned slot,
                                  uint64_t epoch)
{
	const struct narf_map *map = rc->map;
	enum narf_fence f;

	if (map == NULL)
		return narf_fence_check(&rc->hwm[slot], 0, false, epoch);
	f = narf_fence_check(&rc->hwm[slot], map->slots[slot].epoch,
	                     rc->me != 0 && map->slots[slot].primary == rc->me,
	                     epoch);
	if (f == NARF_FENCE_NEWER)
		act(rc, (struct narf_ract){.kind = NARF_RACT_WANT_MAP});
	return f;
}

bool narf_rcore_stream_conn(struct narf_rcore *rc,
                            uint32_t sender,
                            uint64_t conn)
{
	for (unsigned i = 0; i < rc->n_in_links; i++) {
		if (rc->in_links[i].node != sender)
			continue;
		if (conn < rc->in_links[i].conn) {
			rc->stale_links++;
			return false;
		}
		rc->in_links[i].conn = conn;
		return true;
	}
	if (rc->n_in_links == rc->cap_in_links) {
		unsigned cap = rc->cap_in_links ? 2 * rc->cap_in_links : 8;
		void *l = realloc(rc->in_links, cap * sizeof(*rc->in_links));

		if (l == NULL)
			return true; /* cannot remember: the epoch fence only */
		rc->in_links = l;
		rc->cap_in_links = cap;
	}
	rc->in_links[rc->n_in_links].node = sender;
	rc->in_links[rc->n_in_links++].conn = conn;
	return true;
}

void narf_rcore_sync_begin(struct narf_rcore *rc,
                           unsigned slot,
                           uint64_t map_epoch)
{
	bit_set(rc->syncing, slot);
	if (map_epoch > rc->sync_epoch[slot])
		rc->sync_epoch[slot] = map_epoch;
}

void narf_rcore_sync_end(struct narf_rcore *rc, unsigned slot)
{
	bit_clear(rc->syncing, slot);
}

/* --- lifecycle
 * ----------------------------------------------------------------- */

struct narf_rcore *narf_rcore_create(void)
{
	struct narf_rcore *rc = calloc(1, sizeof(*rc));

	if (rc == NULL)
		return NULL;
	rc->lost_at = calloc(NARF_SLOTS, sizeof(rc->lost_at[0]));
	rc->sync_epoch = calloc(NARF_SLOTS, sizeof(rc->sync_epoch[0]));
	rc->hwm = calloc(NARF_SLOTS, sizeof(rc->hwm[0]));
	if (rc->lost_at == NULL || rc->sync_epoch == NULL || rc->hwm == NULL) {
		narf_rcore_destroy(rc);
		return NULL;
	}
	return rc;
}

void narf_rcore_destroy(struct narf_rcore *rc)
{
	struct narf_ract a;

	if (rc == NULL)
		return;
	while (narf_rcore_next_action(rc, &a))
		free(a.slots);
	for (unsigned i = 0; i < rc->n_peers; i++) {
		free(rc->peers[i]->joins);
		free(rc->peers[i]->sync_at);
		free(rc->peers[i]);
	}
	free(rc->peers);
	free(rc->acts);
	free(rc->lost_at);
	free(rc->sync_epoch);
	free(rc->hwm);
	free(rc->in_links);
	narf_gate_close(&rc->batch);
	free(rc);
}
