/*
 * The planner's staging (planner.h, narf_plan_step()): one safe step from
 * the current map towards the planner's target, which is what the leader
 * commits now that slots hold data: new copies first sync outside the ISR,
 * a live primary hands over, at most `moves` slots are busy at once.
 */
#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "coordinator/planner.h"
#include "coordinator/planner_slot.h"

/* Did c hold every copy of t in sync (so t can take effect at once)? */
static bool target_in_sync(const struct narf_slot *c, const struct narf_slot *t)
{
	if (t->primary != 0 && !was_in_sync(c, t->primary))
		return false;
	for (unsigned j = 0; j < t->n_replicas; j++)
		if (!was_in_sync(c, t->replicas[j]))
			return false;
	return true;
}

static bool has_id(const uint32_t *ids, unsigned n, uint32_t id)
{
	for (unsigned i = 0; i < n; i++)
		if (ids[i] == id)
			return true;
	return false;
}

/* Take replica j out of slot s (and out of its ISR), keeping order and
 * zeroing unused entries so equal slots stay equal bytes. */
static void remove_replica(struct narf_slot *s, unsigned j)
{
	uint32_t id = s->replicas[j];
	unsigned n = 0;

	memmove(&s->replicas[j], &s->replicas[j + 1],
	        (s->n_replicas - j - 1) * sizeof(s->replicas[0]));
	s->replicas[--s->n_replicas] = 0;
	for (unsigned i = 0; i < s->n_isr; i++)
		if (s->isr[i] != id)
			s->isr[n++] = s->isr[i];
	for (unsigned i = n; i < s->n_isr; i++)
		s->isr[i] = 0;
	s->n_isr = (uint8_t)n;
}

/*
 * Slot s holds NARF_MAX_COPIES copies and t wants one it lacks: free one
 * position, giving up, in this order, a replica t does not want that is out
 * of sync (it holds nothing acknowledged), then, only when in_sync_ok, one
 * that is in sync, or the primary when t does not want it (an in-sync
 * replica t wants takes over, with a new slot epoch). Only replication 5
 * gets here. Returns 0 when nothing could go, 1 when an out-of-sync replica
 * went, 2 when an in-sync copy did.
 */
static int make_room(struct narf_slot *s,
                     const struct narf_slot *t,
                     uint64_t new_epoch,
                     bool in_sync_ok)
{
	for (unsigned pass = 0; pass < (in_sync_ok ? 2u : 1u); pass++)
		for (unsigned j = s->n_replicas; j-- > 0;)
			if (!narf_slot_has(t, s->replicas[j]) &&
			    has_id(s->isr, s->n_isr, s->replicas[j]) == pass) {
				remove_replica(s, j);
				return 1 + (int)pass;
			}
	if (!in_sync_ok || narf_slot_has(t, s->primary))
		return 0;
	for (unsigned j = 0; j < s->n_replicas; j++) {
		if (!narf_slot_has(t, s->replicas[j]) ||
		    !has_id(s->isr, s->n_isr, s->replicas[j]))
			continue;
		s->primary = s->replicas[j];
		s->epoch = new_epoch;
		remove_replica(s, j);
		return 2;
	}
	return 0;
}

/* The step for one slot: see planner.h. An in-sync copy is given up for a
 * new one only when the slot was full already, and once per step, so the
 * in-sync copies drop by one at most, and only at replication 5. */
static void step_slot(const struct narf_slot *c,
                      const struct narf_slot *t,
                      uint64_t new_epoch,
                      struct narf_slot *out)
{
	uint32_t want[NARF_MAX_COPIES];
	unsigned n = 0;
	bool in_sync_ok = slot_copies(c) == NARF_MAX_COPIES;

	*out = *c;
	/* No eligible node: keep what there is rather than empty the slot. */
	if (slot_copies(t) == 0)
		return;
	if (target_in_sync(c, t)) {
		*out = *t;
		return;
	}
	if (t->primary != 0)
		want[n++] = t->primary;
	for (unsigned j = 0; j < t->n_replicas && n < NARF_MAX_COPIES; j++)
		want[n++] = t->replicas[j];
	for (unsigned i = 0; i < n; i++) {
		int freed;

		if (narf_slot_has(out, want[i]))
			continue;
		if (slot_copies(out) == NARF_MAX_COPIES) {
			freed = make_room(out, t, new_epoch, in_sync_ok);
			if (freed == 0)
				return;
			if (freed == 2)
				in_sync_ok = false;
		}
		/* Out of the ISR: the primary asks for `isr add` once the
		 * new copy has synced. */
		out->replicas[out->n_replicas++] = want[i];
	}
}

/*
 * The step for slot c whose live primary a the rules would replace with b
 * (out holds that step): keep a as primary with b in a's place among the
 * step's replicas, so that the handoff entry, which swaps a and b in place,
 * yields the step's layout. Copies the step drops go now; none is added (b
 * and every copy kept are in sync). When the step drops a, b goes last, so
 * after the handoff a is the last replica, the one the planner drops first.
 *
 * With move unset (max_moves reached) the slot is only prepared: the same
 * layout without the move, b first when the step drops a (a leaving
 * primary is then replaced by its first in-sync replica when planned
 * again), so the copies stay where the plan wants them while the swap
 * waits. When the layout does not fit (a full slot of replication 5 giving
 * up its primary), the slot keeps its copies and only gets the move.
 */
static void hand_over(const struct narf_slot *c,
                      const struct narf_slot *t,
                      bool move,
                      struct narf_slot *out)
{
	uint32_t a = c->primary, b = out->primary;
	bool placed = false;

	if (!target_in_sync(c, t) ||
	    (!narf_slot_has(out, a) && slot_copies(out) == NARF_MAX_COPIES)) {
		*out = *c;
		out->move = move ? b : 0;
		return;
	}
	for (unsigned j = 0; j < out->n_replicas; j++)
		if (out->replicas[j] == a) {
			out->replicas[j] = b;
			placed = true;
		}
	for (unsigned j = 0; j < out->n_isr; j++)
		if (out->isr[j] == a)
			out->isr[j] = b;
	if (!placed && move) {
		out->replicas[out->n_replicas++] = b;
		out->isr[out->n_isr++] = b;
	} else if (!placed) {
		memmove(&out->replicas[1], &out->replicas[0],
		        out->n_replicas * sizeof(out->replicas[0]));
		memmove(&out->isr[1], &out->isr[0],
		        out->n_isr * sizeof(out->isr[0]));
		out->replicas[0] = out->isr[0] = b;
		out->n_replicas++;
		out->n_isr++;
	}
	out->primary = a;
	out->epoch = c->epoch;
	out->born = c->born;
	out->move = move ? b : 0;
}

/* Can node id take part in a handoff (state up or leaving)? */
static bool node_live(const struct narf_map *m, uint32_t id)
{
	const struct narf_map_node *n = narf_map_node_get(m, id);

	return n != NULL &&
	       (n->state == NARF_NODE_UP || n->state == NARF_NODE_LEAVING);
}

/* Does slot s have a copy that syncs from its primary (outside the ISR)? */
static bool syncing(const struct narf_slot *s)
{
	return s->primary != 0 && s->n_isr < s->n_replicas;
}

unsigned narf_plan_step(const struct narf_map *cur,
                        const struct narf_slot *target,
                        unsigned max_moves,
                        struct narf_slot *step)
{
	unsigned changed = 0, moves = 0;

	for (unsigned s = 0; s < NARF_SLOTS; s++)
		moves += cur->slots[s].move != 0 || syncing(&cur->slots[s]);
	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		const struct narf_slot *c = &cur->slots[s];

		/* A handoff under way: its primary holds writes and only a
		 * handoff entry, a failover or an ISR drop ends it. */
		if (c->move != 0) {
			step[s] = *c;
			continue;
		}
		step_slot(c, &target[s], cur->epoch + 1, &step[s]);
		/* A new copy to sync starts a move: over the bound, the slot
		 * waits for a later step (unless its primary is gone: that
		 * slot needs its new primary now). */
		if (!syncing(c) && syncing(&step[s]) &&
		    node_live(cur, c->primary)) {
			if (moves >= max_moves) {
				step[s] = *c;
				continue;
			}
			moves++;
		}
		if (step[s].primary != c->primary && c->primary != 0 &&
		    node_live(cur, c->primary)) {
			/* Two live primaries would both take writes until
			 * the old one sees the map: hand over instead. */
			assert(was_in_sync(c, step[s].primary));
			hand_over(c, &target[s], moves < max_moves, &step[s]);
			moves += step[s].move != 0;
		}
		changed += !narf_slot_equal(&step[s], c);
	}
	return changed;
}
