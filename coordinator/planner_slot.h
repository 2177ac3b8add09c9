/*
 * Slot helpers shared by the planner (planner.c) and its staging
 * (stage.c); not part of the planner's interface.
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

#endif /* NARF_PLANNER_SLOT_H */
