/*
 * The twin maps: see mapsync.h.
 */
#include "mapsync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void narf_mapsync_init(struct narf_mapsync *s)
{
	memset(s, 0, sizeof(*s));
}

static void map_free(struct narf_map *m)
{
	if (m == NULL)
		return;
	narf_map_close(m);
	free(m);
}

void narf_mapsync_close(struct narf_mapsync *s)
{
	map_free(s->cur);
	map_free(s->shadow);
	s->cur = NULL;
	s->shadow = NULL;
}

uint64_t narf_mapsync_epoch(const struct narf_mapsync *s)
{
	return s->cur != NULL ? s->cur->epoch : 0;
}

static uint64_t u64_of(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_integer(v) && json_integer_value(v) > 0
	               ? (uint64_t)json_integer_value(v)
	               : 0;
}

/* A fresh copy of src, or NULL without memory. */
static struct narf_map *map_dup(const struct narf_map *src)
{
	struct narf_map *m = malloc(sizeof(*m));

	if (m == NULL)
		return NULL;
	narf_map_init(m, NULL);
	if (narf_map_copy(m, src) != 0) {
		map_free(m);
		return NULL;
	}
	return m;
}

/* Give up on a batch: shadow back to cur (a copy: only on this rare
 * path), and ask for the whole map. */
static enum narf_mapsync_step discard(struct narf_mapsync *s)
{
	s->discards++;
	if (s->shadow == NULL || narf_map_copy(s->shadow, s->cur) != 0) {
		/* out of memory: drop the shadow; the full install makes
		 * a new one */
		map_free(s->shadow);
		s->shadow = NULL;
	}
	return NARF_MAPSYNC_FETCH_FULL;
}

/* Apply every entry of deltas to m; false at the first one rejected or
 * changing nothing (errmsg says which). */
static bool apply_all(struct narf_map *m,
                      const json_t *deltas,
                      size_t skip,
                      struct narf_map_dirty *dirty,
                      char *errmsg)
{
	struct narf_map_result res;
	size_t i;
	json_t *d;

	json_array_foreach(deltas, i, d)
	{
		int rv;

		if (i < skip)
			continue;
		rv = dirty != NULL ? narf_map_apply_dirty(m, d, &res, dirty)
		                   : narf_map_apply(m, d, &res);

		if (rv != 0 || !res.changed) {
			const char *type =
			        json_string_value(json_object_get(d, "type"));

			snprintf(errmsg, NARF_ERRMSG_SIZE,
			         "discarded deltas: %zu of %zu (%s) at epoch "
			         "%llu: %s",
			         i + 1, json_array_size(deltas),
			         type ? type : "?",
			         (unsigned long long)m->epoch,
			         rv != 0 ? res.errmsg : "changes nothing");
			return false;
		}
	}
	return true;
}

/*
 * Our map and the reply's are at the same epoch: compare digests (when
 * the reply has one; an older coordinator's has none). A difference asks
 * for the whole map once per epoch, so a coordinator whose digest is
 * wrong cannot make us fetch at every beat.
 */
static enum narf_mapsync_step check_digest(struct narf_mapsync *s,
                                           const json_t *reply,
                                           enum narf_mapsync_step step)
{
	const char *hex = json_string_value(json_object_get(reply, "digest"));
	unsigned long long theirs;
	char *end;

	if (hex == NULL || s->cur == NULL)
		return step;
	theirs = strtoull(hex, &end, 16);
	if (*end != '\0' || end == hex)
		return step;
	if (!s->digest_valid) {
		s->digest = narf_map_digest(s->cur);
		s->digest_valid = true;
	}
	/* a repair whose fetch did not complete: ask again */
	if (s->repair)
		return NARF_MAPSYNC_FETCH_FULL;
	if (s->digest == theirs || s->mismatch_epoch == s->cur->epoch)
		return step;
	s->mismatch_epoch = s->cur->epoch;
	s->digest_mismatches++;
	s->repair = true;
	snprintf(s->errmsg, sizeof(s->errmsg),
	         "map digest at epoch %llu differs: ours %016llx, the "
	         "coordinator's %s",
	         (unsigned long long)s->cur->epoch,
	         (unsigned long long)s->digest, hex);
	return NARF_MAPSYNC_FETCH_FULL;
}

enum narf_mapsync_step narf_mapsync_reply(struct narf_mapsync *s,
                                          const json_t *reply)
{
	uint64_t epoch = u64_of(reply, "epoch");
	json_t *deltas = json_object_get(reply, "deltas");
	uint64_t from = u64_of(reply, "from");
	struct narf_map *t;
	size_t skip = 0;

	if (s->cur != NULL && epoch == s->cur->epoch)
		return check_digest(s, reply, NARF_MAPSYNC_SAME);
	if (s->cur != NULL && epoch < s->cur->epoch)
		return NARF_MAPSYNC_SAME;
	if (json_is_true(json_object_get(reply, "full")))
		return NARF_MAPSYNC_FETCH;
	/* no map yet, or an older coordinator: fetch as ever */
	if (deltas == NULL || s->cur == NULL)
		return NARF_MAPSYNC_FETCH;
	if (s->shadow == NULL && (s->shadow = map_dup(s->cur)) == NULL) {
		snprintf(s->errmsg, sizeof(s->errmsg), "out of memory");
		return discard(s);
	}
	/* Entries are contiguous committed ones, so a batch that starts
	 * at or before our next epoch (a request stamped before our map
	 * moved) holds ours: skip those we have. */
	if (from >= 1 && from <= s->cur->epoch + 1)
		skip = (size_t)(s->cur->epoch + 1 - from);
	if (!json_is_array(deltas) || json_array_size(deltas) <= skip ||
	    from == 0 || from > s->cur->epoch + 1) {
		snprintf(s->errmsg, sizeof(s->errmsg),
		         "discarded deltas from epoch %llu to a map at %llu",
		         (unsigned long long)from,
		         (unsigned long long)s->cur->epoch);
		return discard(s);
	}
	narf_map_dirty_clear(&s->dirty);
	if (!apply_all(s->shadow, deltas, skip, &s->dirty, s->errmsg))
		return discard(s);
	if (s->shadow->epoch != epoch) {
		snprintf(s->errmsg, sizeof(s->errmsg),
		         "discarded deltas landing on epoch %llu, the reply "
		         "says "
		         "%llu",
		         (unsigned long long)s->shadow->epoch,
		         (unsigned long long)epoch);
		return discard(s);
	}
	if (s->on_map != NULL)
		s->on_map(s->cb_data, s->cur, s->shadow, &s->dirty);
	s->digest_valid = false;
	/* The same entries on the same map cannot fail; if they did, copy
	 * rather than keep twins that differ (and without memory for that,
	 * keep the new map alone: the next batch makes a shadow). */
	if (!apply_all(s->cur, deltas, skip, NULL, s->errmsg) &&
	    narf_map_copy(s->cur, s->shadow) != 0) {
		map_free(s->cur);
		s->cur = s->shadow;
		s->shadow = NULL;
	} else {
		t = s->cur;
		s->cur = s->shadow;
		s->shadow = t;
	}
	s->deltas_applied += json_array_size(deltas) - skip;
	return check_digest(s, reply, NARF_MAPSYNC_APPLIED);
}

int narf_mapsync_install(struct narf_mapsync *s,
                         const json_t *obj,
                         char *errmsg)
{
	struct narf_map *map = malloc(sizeof(*map));
	int rv;

	if (map == NULL) {
		if (errmsg != NULL)
			snprintf(errmsg, NARF_ERRMSG_SIZE, "out of memory");
		return NARF_ENOMEM;
	}
	narf_map_init(map, NULL);
	rv = narf_map_from_json(map, obj, errmsg);
	if (rv != 0) {
		map_free(map);
		return rv;
	}
	/* Maps only move forward: an older one comes from a deposed leader
	 * and would undo promotions we already act on. */
	if (s->cur != NULL && (map->epoch < s->cur->epoch ||
	                       (map->epoch == s->cur->epoch && !s->repair))) {
		map_free(map);
		return NARF_ESTALE;
	}
	s->repair = false;
	if (s->on_map != NULL)
		s->on_map(s->cb_data, s->cur, map, NULL);
	s->digest_valid = false;
	/* the old map becomes the shadow, a copy of the new one (on a
	 * copy failure the next delta reply makes one) */
	map_free(s->shadow);
	s->shadow = s->cur;
	s->cur = map;
	if (s->shadow != NULL && narf_map_copy(s->shadow, map) != 0) {
		map_free(s->shadow);
		s->shadow = NULL;
	}
	s->full_installs++;
	return 0;
}
