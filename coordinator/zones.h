/*
 * Zones in the leader's status (docs/protocol.md, "status"): what the
 * map's failure domains look like and what is wrong with them, from the
 * map's derived counts in O(nodes log nodes), never a walk of the slots.
 *
 * Pure: reads a map, builds JSON. The planner's zone rules are
 * coordinator/planner.h's; this module only reports on them.
 */
#ifndef NARF_COORD_ZONES_H
#define NARF_COORD_ZONES_H

#include <jansson.h>
#include <stdbool.h>

#include "common/map.h"

struct narf_zones_status {
	json_t *zones;     /* new reference: [{name, nodes, up, primaries,
	                      copies}] for the named zones, by name */
	json_t *warnings;  /* new reference: array of strings */
	unsigned up_zones; /* zones among up nodes ("" one per node) */
	unsigned copies;   /* c: min(replication, up nodes) */
	/* slots keeping two copies in one zone while up_zones >= copies
	 * (0 otherwise: the copies cannot all be spread) */
	unsigned zone_shared;
};

/*
 * Fill *out from m (borrowed). Returns 0, or NARF_ENOMEM with nothing to
 * free. The caller owns out->zones and out->warnings.
 */
int narf_zones_status(const struct narf_map *m, struct narf_zones_status *out);

/*
 * Do the zones change the planner's shares of copies (planner.h): two
 * zones or more among the up nodes, and fewer than copies, or one with
 * more than its part of them (it holds at most one copy of a slot)? Then
 * a balanced map's
 * copies per node are not the even split. O(nodes log nodes); false when
 * out of memory.
 */
bool narf_zones_bind(const struct narf_map *m);

#endif /* NARF_COORD_ZONES_H */
