/*
 * What every cluster map must satisfy, for the fuzz targets that make
 * maps: fuzz_map_json (decoded maps, and maps after arbitrary commands)
 * and fuzz_api (maps after the commands the API builds).
 *
 * The properties are those common/map.h and docs/protocol.md promise
 * readers of a map: node ids sorted and below next_node, addresses
 * "host:port", settings within their ranges, and every slot well formed
 * (no replicas without a primary, distinct copies, the ISR within the
 * replicas, a pending move to a member of the ISR, no epoch the map has
 * not reached). And the map survives
 * its JSON form: narf_map_to_json() then narf_map_from_json() gives the
 * same map, and encoding that gives the same JSON.
 */
#ifndef NARF_FUZZ_MAP_CHECK_H
#define NARF_FUZZ_MAP_CHECK_H

#include <stdbool.h>

#include "common/map.h"

/* Report a failed check (the condition's text and where) and abort: a
 * crash that libFuzzer records with its reproducer. */
#define check(cond) ((cond) ? (void)0 : check_failed(#cond, __FILE__, __LINE__))
void check_failed(const char *what, const char *file, int line)
        __attribute__((noreturn));

/* Abort unless m satisfies the properties above. */
void check_map(const struct narf_map *m);

/* Do a and b hold the same map (every field the JSON form carries, and
 * the derived counts)? */
bool maps_equal(const struct narf_map *a, const struct narf_map *b);

/* Abort unless m survives its JSON form unchanged (see above). */
void check_map_round_trip(const struct narf_map *m);

/* A map on the heap (~1 MiB), initialised; free_map() closes and frees. */
struct narf_map *new_map(void);
void free_map(struct narf_map *m);

#endif /* NARF_FUZZ_MAP_CHECK_H */
