/*
 * Pieces shared by map.c (the interpreter) and map_json.c (the JSON forms).
 * Not for use outside the map module.
 */
#ifndef NARF_MAP_INTERNAL_H
#define NARF_MAP_INTERNAL_H

#include "map.h"

/* Record an error in res and return err. */
int narf_map_fail(struct narf_map_result *res, int err, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Read the settings fields present in obj over s; errors name the field. */
int narf_map_settings_from_json(struct narf_map_settings *s,
                                const json_t *obj,
                                char *errmsg);

/* Parse a coordinators array (1..NARF_MAX_COORDS entries, distinct ids). */
int narf_map_coords_from_json(struct narf_map_coord *out,
                              unsigned *n,
                              const json_t *arr,
                              char *errmsg);

/* One more than the highest id in coords (1 when n is 0). */
uint64_t narf_map_coords_next(const struct narf_map_coord *coords, unsigned n);

/* Parse one slot range {from,to,primary,replicas,isr[,epoch][,move][,born]}:
 * ids distinct, isr within replicas, move (when set) within isr, primary 0
 * only with no replicas. */
int narf_map_range_from_json(const json_t *r,
                             unsigned *from,
                             unsigned *to,
                             struct narf_slot *s,
                             char *errmsg);

#endif /* NARF_MAP_INTERNAL_H */
