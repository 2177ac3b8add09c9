/*
 * Slot helpers shared by the planner (planner.c), its staging (stage.c)
 * and its cache (plan_cache.c); not part of the planner's interface.
 */
#ifndef NARF_PLANNER_SLOT_H
#define NARF_PLANNER_SLOT_H

#include <stdbool.h>
#include <stdint.h>

#include "common/map.h"

/* Copies of a slot: its primary, if any, and its replicas. */
static inline unsigned slot_copies(const struct narf_slot *t)
{
	return (t->primary != 0 ? 1u : 0u) + t->n_replicas;
}

/*
 * Did node id hold every acknowledged write of slot c before the plan? Its
 * primary and its ISR members do, and so does anyone when the slot held no
 * copy at all (there was nothing to write).
 */
static inline bool was_in_sync(const struct narf_slot *c, uint32_t id)
{
	if (c->primary == 0 && c->n_replicas == 0)
		return true;
	if (c->primary == id)
		return true;
	for (unsigned i = 0; i < c->n_isr && i < NARF_MAX_REPLICAS; i++)
		if (c->isr[i] == id)
			return true;
	return false;
}

/* Same primary, and the same replicas and ISR in the same order? (Slot
 * epochs, lineage and moves aside.) */
static inline bool narf_slot_same(const struct narf_slot *a,
                                  const struct narf_slot *b)
{
	if (a->primary != b->primary || a->n_replicas != b->n_replicas ||
	    a->n_isr != b->n_isr)
		return false;
	for (unsigned j = 0; j < a->n_replicas; j++)
		if (a->replicas[j] != b->replicas[j])
			return false;
	for (unsigned j = 0; j < a->n_isr; j++)
		if (a->isr[j] != b->isr[j])
			return false;
	return true;
}

/*
 * Slot s as it will be once its pending move is done: what the handoff
 * entry makes of it (the target leads, the old primary takes its place
 * among the in-sync replicas), with slot epoch `epoch`.
 */
static inline void narf_slot_settle_move(struct narf_slot *s, uint64_t epoch)
{
	for (unsigned i = 0; i < s->n_replicas; i++)
		if (s->replicas[i] == s->move)
			s->replicas[i] = s->primary;
	for (unsigned i = 0; i < s->n_isr; i++)
		if (s->isr[i] == s->move)
			s->isr[i] = s->primary;
	s->primary = s->move;
	s->move = 0;
	s->epoch = epoch;
}

/* Held slots (narf_slot_held) wait for their copies: target keeps them as
 * cur has them. Returns the slots whose target differs from cur. */
unsigned narf_plan_freeze_held(const struct narf_map *cur,
                               struct narf_slot *target);

#endif /* NARF_PLANNER_SLOT_H */
