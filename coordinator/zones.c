/*
 * Zones in the leader's status: see zones.h.
 *
 * Nodes that are not removed are sorted by zone name (a copy of their
 * indices), so each named zone is one run; a node without a zone ("") is
 * counted as a zone of its own among the up nodes, as the planner does,
 * and is not listed. The counts per zone add up the per-node counts the
 * map keeps (primaries, replicas, zone_shared).
 */
#include "coordinator/zones.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A sort of node indices by zone name; qsort has no context argument, so
 * the keys carry the names. */
struct zkey {
	const char *zone; /* borrowed */
	unsigned i;       /* index into m->nodes */
};

static int zkey_cmp(const void *x, const void *y)
{
	const struct zkey *a = x, *b = y;
	int d = strcmp(a->zone, b->zone);

	if (d != 0)
		return d;
	return a->i < b->i ? -1 : a->i > b->i;
}

static int add_warning(json_t *arr, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static int add_warning(json_t *arr, const char *fmt, ...)
{
	char text[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	return json_array_append_new(arr, json_string(text));
}

/* One zone's entry, and its warnings, from its run keys[from, to). */
static int zone_entry(const struct narf_map *m,
                      const struct zkey *keys,
                      unsigned from,
                      unsigned to,
                      struct narf_zones_status *out,
                      unsigned up)
{
	unsigned nodes = to - from, zup = 0, shared = 0;
	unsigned long long primaries = 0, copies = 0;
	const char *name = keys[from].zone;
	unsigned repl = m->settings.replication;

	for (unsigned k = from; k < to; k++) {
		const struct narf_map_node *n = &m->nodes[keys[k].i];

		zup += n->state == NARF_NODE_UP;
		primaries += n->primaries;
		copies += n->primaries + n->replicas;
		shared += n->zone_shared;
	}
	if (json_array_append_new(
	            out->zones, json_pack("{s:s,s:i,s:i,s:I,s:I}", "name", name,
	                                  "nodes", (int)nodes, "up", (int)zup,
	                                  "primaries", (json_int_t)primaries,
	                                  "copies", (json_int_t)copies)) != 0)
		return NARF_ENOMEM;
	if (out->copies == 0 || out->up_zones < out->copies)
		return 0;
	if (shared > 0 &&
	    add_warning(out->warnings,
	                "%u %s keep two copies in zone %s (%u zones, "
	                "replication %u)",
	                shared, shared == 1 ? "slot" : "slots", name,
	                out->up_zones, repl) != 0)
		return NARF_ENOMEM;
	/* A zone may hold one copy of a slot: with more than its part of
	 * the up nodes, the other zones' nodes hold more copies each. */
	if (zup > 0 && zup * out->copies > up &&
	    add_warning(out->warnings,
	                "zone %s has %u of %u up nodes but holds at most "
	                "one copy of a slot: the other zones' nodes hold "
	                "more copies each",
	                name, zup, up) != 0)
		return NARF_ENOMEM;
	return 0;
}

int narf_zones_status(const struct narf_map *m, struct narf_zones_status *out)
{
	struct zkey *keys = malloc((m->n_nodes + 1) * sizeof(*keys));
	unsigned n = 0, up = 0, repl = m->settings.replication;
	int rv = NARF_ENOMEM;

	memset(out, 0, sizeof(*out));
	out->zones = json_array();
	out->warnings = json_array();
	if (keys == NULL || out->zones == NULL || out->warnings == NULL)
		goto fail;
	for (unsigned i = 0; i < m->n_nodes; i++) {
		const struct narf_map_node *nd = &m->nodes[i];

		if (nd->state == NARF_NODE_REMOVED)
			continue;
		up += nd->state == NARF_NODE_UP;
		if (nd->zone[0] == '\0') {
			out->up_zones += nd->state == NARF_NODE_UP;
			continue;
		}
		keys[n].zone = nd->zone;
		keys[n++].i = i;
	}
	qsort(keys, n, sizeof(keys[0]), zkey_cmp);
	/* Zones with an up node, first pass: the warnings need Z. */
	for (unsigned k = 0; k < n;) {
		unsigned j = k;
		bool any_up = false;

		for (; j < n && strcmp(keys[j].zone, keys[k].zone) == 0; j++)
			any_up = any_up ||
			         m->nodes[keys[j].i].state == NARF_NODE_UP;
		out->up_zones += any_up;
		k = j;
	}
	out->copies = repl < up ? repl : up;
	if (out->copies > 0 && out->up_zones < out->copies) {
		if (out->up_zones == 1)
			rv = add_warning(out->warnings,
			                 "1 zone for replication %u: copies "
			                 "cannot be spread",
			                 repl);
		else
			rv = add_warning(out->warnings,
			                 "%u zones for replication %u: a slot "
			                 "keeps up to %u copies in one zone",
			                 out->up_zones, repl,
			                 (out->copies + out->up_zones - 1) /
			                         out->up_zones);
		if (rv != 0)
			goto fail;
	}
	if (out->copies > 0 && out->up_zones >= out->copies)
		out->zone_shared = m->counts.zone_shared;
	for (unsigned k = 0; k < n;) {
		unsigned j = k;

		while (j < n && strcmp(keys[j].zone, keys[k].zone) == 0)
			j++;
		if (zone_entry(m, keys, k, j, out, up) != 0)
			goto fail;
		k = j;
	}
	free(keys);
	return 0;
fail:
	free(keys);
	json_decref(out->zones);
	json_decref(out->warnings);
	memset(out, 0, sizeof(*out));
	return NARF_ENOMEM;
}

bool narf_zones_bind(const struct narf_map *m)
{
	struct zkey *keys = malloc((m->n_nodes + 1) * sizeof(*keys));
	unsigned n = 0, up = 0, nz = 0, c;
	bool bind = false;

	if (keys == NULL)
		return false;
	for (unsigned i = 0; i < m->n_nodes; i++) {
		if (m->nodes[i].state != NARF_NODE_UP)
			continue;
		up++;
		if (m->nodes[i].zone[0] == '\0') {
			nz++;
			continue;
		}
		keys[n].zone = m->nodes[i].zone;
		keys[n++].i = i;
	}
	qsort(keys, n, sizeof(keys[0]), zkey_cmp);
	c = m->settings.replication < up ? m->settings.replication : up;
	for (unsigned k = 0, j; k < n; k = j) {
		for (j = k; j < n && strcmp(keys[j].zone, keys[k].zone) == 0;)
			j++;
		nz++;
		bind = bind || (j - k) * c > up;
	}
	free(keys);
	/* One zone limits nothing: the planner plans it as it would
	 * without zones. */
	return nz >= 2 && (bind || nz < c);
}
