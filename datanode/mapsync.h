/*
 * A data node's copy of the cluster map, kept current from map deltas
 * (docs/protocol.md, "Map deltas"): the pure half of membership.c, which
 * keeps the I/O.
 *
 * Two maps, cur and shadow, equal between calls. A coordinator reply that
 * carries deltas (the Raft entries since our epoch, verbatim) is applied
 * entry by entry to shadow with the same pure narf_map_apply_dirty() the
 * coordinators ran, accumulating one dirty set; then on_map() sees old =
 * cur, new = shadow and what changed, the same entries are applied to cur,
 * and the two are swapped, so the map the callback was shown is the one
 * kept. Applying twice is O(changed) each, cheaper than copying a map (1
 * MiB of slots) per epoch.
 *
 * A batch is discarded, and the full map fetched instead, when it cannot
 * be the true continuation of our map: "from" is not our epoch + 1, an
 * entry is rejected or changes nothing (only a diverged map could do
 * that), or the last entry does not land on the reply's epoch. shadow is
 * then restored from cur, so nothing of the batch is seen. A map never
 * moves backwards: a full map no newer than ours is refused.
 *
 * A reply's "digest" (narf_map_digest() of the coordinator's map) is
 * compared with our map's whenever the epochs match, after any deltas:
 * a difference (a divergence the apply could not see) is counted once per
 * epoch and answered with a fetch of the whole map, which may then
 * replace ours at the same epoch.
 *
 * Pure: no I/O, no clock; tests drive it with replies as JSON.
 */
#ifndef NARF_MAPSYNC_H
#define NARF_MAPSYNC_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/map.h"

/* Called when the map changes: old is the map before (NULL before the
 * first), map the new one, dirty what changed (NULL: a full install,
 * anything may have). All borrowed, only during the call. */
typedef void (*narf_mapsync_cb)(void *data,
                                const struct narf_map *old,
                                const struct narf_map *map,
                                const struct narf_map_dirty *dirty);

/* What a reply did to the map. */
enum narf_mapsync_step {
	NARF_MAPSYNC_SAME,    /* nothing: no newer epoch (or a stale one) */
	NARF_MAPSYNC_APPLIED, /* its deltas brought the map to its epoch */
	NARF_MAPSYNC_FETCH,   /* newer, without deltas: fetch it (op map) */
	/* its deltas were discarded: fetch the whole map ("full":true) */
	NARF_MAPSYNC_FETCH_FULL,
};

struct narf_mapsync {
	struct narf_map *cur;        /* owned; NULL until the first install */
	struct narf_map *shadow;     /* owned; equal to cur between calls */
	struct narf_map_dirty dirty; /* the batch being applied */
	narf_mapsync_cb on_map;      /* may be NULL */
	void *cb_data;
	uint64_t deltas_applied;    /* entries applied from replies */
	uint64_t full_installs;     /* whole maps installed */
	uint64_t discards;          /* batches discarded */
	uint64_t digest_mismatches; /* epochs whose digest differed */
	/* why the last FETCH_FULL */
	char errmsg[NARF_ERRMSG_SIZE];
	/* our map's digest while digest_valid (reset by every change) */
	uint64_t digest;
	bool digest_valid;
	uint64_t mismatch_epoch; /* the last epoch whose digest differed */
	bool repair; /* a whole map of our own epoch may replace ours */
};

/* An empty sync (no map yet). */
void narf_mapsync_init(struct narf_mapsync *s);
/* Free both maps; s is reusable after init. */
void narf_mapsync_close(struct narf_mapsync *s);

/*
 * A coordinator reply (heartbeat, map, isr, handoff; borrowed) that may
 * carry "epoch", "from" and "deltas", or "full": applies the deltas as
 * above, or says what to fetch. Only the caller judges staleness (term,
 * epoch older than ours); a reply no newer than our map is SAME. Returns
 * the step, or NARF_MAPSYNC_FETCH_FULL with s->errmsg on a discard, also
 * when memory ran out restoring the shadow (the full install rebuilds
 * it).
 */
enum narf_mapsync_step narf_mapsync_reply(struct narf_mapsync *s,
                                          const json_t *reply);

/*
 * Install the whole map in obj (borrowed; the "map" of an op map reply).
 * 0; NARF_ESTALE when it is no newer than ours (after a digest mismatch:
 * older than ours) and nothing changes; or
 * NARF_EINVAL / NARF_ENOMEM with errmsg (NARF_ERRMSG_SIZE, may be NULL).
 * on_map sees a NULL dirty set.
 */
int narf_mapsync_install(struct narf_mapsync *s,
                         const json_t *obj,
                         char *errmsg);

/* Our map's epoch (0 before the first). */
uint64_t narf_mapsync_epoch(const struct narf_mapsync *s);

#endif /* NARF_MAPSYNC_H */
