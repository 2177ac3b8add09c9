/*
 * The planner's target, kept between epochs (planner.h, narf_plan_cached).
 *
 * A move takes tens of epochs (each assign step, each `isr add`, each
 * handoff), and the leader used to plan from scratch at every one: ~30 ms
 * per plan at 1,000 nodes (issue 17). Between those epochs the map only
 * follows the target: steps the leader committed towards it, replicas that
 * joined an ISR, handoffs the target asked for. So the target is kept, and
 * at each epoch only re-derived against the current map (ISR, slot epochs,
 * lineage, held slots: what narf_plan() derives per slot from cur), in
 * O(slots). A full plan is made again when something the planner decides
 * by has changed (the layout signature: node ids, states and ISR drops,
 * and the settings), and before the leader calls the map balanced, so the
 * cluster settles on narf_plan()'s own fixed point.
 *
 * Safety does not rest on the target being fresh: narf_plan_step() checks
 * every step against the current map.
 */
#include <string.h>

#include "coordinator/planner.h"
#include "coordinator/planner_slot.h"

static uint64_t mix(uint64_t h, uint64_t v)
{
	/* FNV-1a over the 8 bytes of v */
	for (unsigned i = 0; i < 8; i++) {
		h ^= (v >> (8 * i)) & 0xff;
		h *= 0x100000001b3ull;
	}
	return h;
}

uint64_t narf_plan_layout_sig(const struct narf_map *m)
{
	const struct narf_map_settings *st = &m->settings;
	uint64_t h = 0xcbf29ce484222325ull;

	h = mix(h, st->replication);
	h = mix(h, st->moves);
	h = mix(h, st->on_lost);
	h = mix(h, st->min_isr);
	h = mix(h, m->n_nodes);
	for (unsigned i = 0; i < m->n_nodes; i++) {
		const struct narf_map_node *n = &m->nodes[i];

		h = mix(h, n->id);
		h = mix(h, n->state);
		h = mix(h, n->isr_dropped);
	}
	return h;
}

unsigned narf_plan_refresh(const struct narf_map *cur, struct narf_slot *target)
{
	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		struct narf_slot v = cur->slots[s], *t = &target[s];
		struct narf_slot out;

		/* A pending move is planned as if its handoff were done. */
		if (v.move != 0)
			narf_slot_settle_move(&v, cur->epoch + 1);
		memset(&out, 0, sizeof(out));
		out.primary = t->primary;
		out.n_replicas = t->n_replicas;
		for (unsigned j = 0; j < t->n_replicas; j++) {
			out.replicas[j] = t->replicas[j];
			if (was_in_sync(&v, t->replicas[j]))
				out.isr[out.n_isr++] = t->replicas[j];
		}
		if (narf_slot_same(&v, &out)) {
			*t = v;
			continue;
		}
		out.epoch = out.primary == v.primary ? v.epoch : cur->epoch + 1;
		out.born = v.born;
		*t = out;
	}
	return narf_plan_freeze_held(cur, target);
}

unsigned narf_plan_cached(const struct narf_map *cur,
                          struct narf_slot *target,
                          struct narf_plan_cache *pc)
{
	uint64_t sig = narf_plan_layout_sig(cur);
	unsigned changed;

	if (pc->valid && pc->sig == sig) {
		changed = narf_plan_refresh(cur, target);
		if (changed > 0) {
			pc->refreshes++;
			return changed;
		}
		/* Reached: confirm with a full plan before calling it
		 * balanced. */
	}
	changed = narf_plan(cur, target);
	pc->valid = true;
	pc->sig = sig;
	pc->plans++;
	return changed;
}
