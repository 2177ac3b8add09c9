/*
 * The map as the coordinator API sends it (api_map.c): the whole map's
 * reply line shared by every fetch of an epoch, the map digest, and
 * replies with map deltas (docs/protocol.md, "Map deltas"). api.c's
 * requests call these; narf_api_delta_reply() is in coord.h for the unit
 * tests.
 */
#ifndef NARF_API_MAP_H
#define NARF_API_MAP_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "coord.h"

/* The whole map's reply line {"ok":true,"epoch":E,"map":{...}}\n for the
 * map's epoch, encoded at the first call of an epoch. Borrowed (c holds
 * it; take a reference to keep it); NULL without memory. */
struct narf_blob *narf_api_full_map(struct narf_coord *c);

/* The map's digest (narf_map_digest()) as 16 hex digits, computed once
 * per epoch. Borrowed, until the next call. */
const char *narf_api_map_digest(struct narf_coord *c);

/* Did the request say "deltas":1 (the caller applies map deltas)? */
bool narf_api_wants_deltas(const json_t *req);
/* The map epoch the request says its caller holds ("epoch"), or 0. */
uint64_t narf_api_have_epoch(const json_t *req);

/* op map's answer to a caller at epoch have that is not current: with
 * deltas, {"ok":true,"epoch":E,"from":have+1,"deltas":[...]}\n when the
 * ring has the entries and they are worth it; else (or without deltas)
 * a reference to the shared whole-map line. A reference the caller owns;
 * NULL without memory. */
struct narf_blob *narf_api_map_line(struct narf_coord *c,
                                    uint64_t have,
                                    bool deltas);

#endif /* NARF_API_MAP_H */
