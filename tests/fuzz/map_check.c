/*
 * What every cluster map must satisfy: see map_check.h.
 */
#include "map_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void check_failed(const char *what, const char *file, int line)
{
	fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
	abort();
}

struct narf_map *new_map(void)
{
	struct narf_map *m = malloc(sizeof(*m));

	check(m != NULL);
	narf_map_init(m, NULL);
	return m;
}

void free_map(struct narf_map *m)
{
	narf_map_close(m);
	free(m);
}

static bool has(const uint32_t *ids, unsigned n, uint32_t id)
{
	for (unsigned i = 0; i < n; i++)
		if (ids[i] == id)
			return true;
	return false;
}

static void check_settings(const struct narf_map_settings *s)
{
	check(s->replication >= 1 && s->replication <= NARF_MAX_COPIES);
	check(s->node_timeout_ms >= 100 && s->node_timeout_ms <= 60000);
	check(s->moves >= 1 && s->moves <= NARF_SLOTS);
	check(s->min_isr >= 1 && s->min_isr <= s->replication);
	check(s->ack == NARF_ACK_ALL || s->ack == NARF_ACK_PRIMARY);
	check(s->on_lost == NARF_LOST_EMPTY || s->on_lost == NARF_LOST_WAIT);
	check(s->removed_retention_ms <= INT32_MAX);
}

static void check_coords(const struct narf_map *m)
{
	check(m->n_coords <= NARF_MAX_COORDS);
	check(m->next_coord >= 1);
	for (unsigned i = 0; i < m->n_coords; i++) {
		const struct narf_map_coord *c = &m->coords[i];

		check(c->id >= 1 && c->id < m->next_coord);
		check(narf_map_valid_addr(c->raft) &&
		      narf_map_valid_addr(c->api));
		for (unsigned j = 0; j < i; j++)
			check(m->coords[j].id != c->id);
	}
}

static void check_nodes(const struct narf_map *m)
{
	check(m->next_node >= 1);
	check(m->n_nodes <= m->cap_nodes || m->n_nodes == 0);
	for (unsigned i = 0; i < m->n_nodes; i++) {
		const struct narf_map_node *n = &m->nodes[i];

		check(n->id >= 1 && n->id < m->next_node);
		check(i == 0 || m->nodes[i - 1].id < n->id);
		check(narf_map_valid_addr(n->addr));
		check(memchr(n->boot_id, '\0', sizeof(n->boot_id)) != NULL);
		check(n->zone[0] == '\0' || narf_map_valid_zone(n->zone));
		check(n->state <= NARF_NODE_REMOVED);
		check(n->isr_dropped <= m->epoch);
		check(narf_map_node_get(m, n->id) == n);
	}
}

static void check_slot(const struct narf_map *m, const struct narf_slot *s)
{
	check(s->epoch <= m->epoch && s->born <= m->epoch);
	check(s->n_replicas <= NARF_MAX_REPLICAS);
	check(s->n_isr <= s->n_replicas);
	check(s->primary != 0 || (s->n_replicas == 0 && s->move == 0));
	for (unsigned i = 0; i < s->n_replicas; i++) {
		check(s->replicas[i] != 0 && s->replicas[i] != s->primary);
		check(!has(s->replicas, i, s->replicas[i]));
	}
	for (unsigned i = 0; i < s->n_isr; i++) {
		check(has(s->replicas, s->n_replicas, s->isr[i]));
		check(!has(s->isr, i, s->isr[i]));
	}
	check(s->move == 0 || has(s->isr, s->n_isr, s->move));
}

void check_map(const struct narf_map *m)
{
	check_settings(&m->settings);
	check_coords(m);
	check_nodes(m);
	for (unsigned s = 0; s < NARF_SLOTS; s++)
		check_slot(m, &m->slots[s]);
}

/* narf_slot_equal()'s comparison, here so that the fuzzers' coverage
 * instrumentation (which this file is built without) does not slow the
 * 16384 comparisons of every check down. */
static bool slots_equal(const struct narf_slot *a, const struct narf_slot *b)
{
	return a->primary == b->primary && a->move == b->move &&
	       a->epoch == b->epoch && a->born == b->born &&
	       a->n_replicas == b->n_replicas && a->n_isr == b->n_isr &&
	       memcmp(a->replicas, b->replicas,
	              a->n_replicas * sizeof(a->replicas[0])) == 0 &&
	       memcmp(a->isr, b->isr, a->n_isr * sizeof(a->isr[0])) == 0;
}

bool maps_equal(const struct narf_map *a, const struct narf_map *b)
{
	const struct narf_map_settings *x = &a->settings, *y = &b->settings;

	if (a->epoch != b->epoch || a->next_node != b->next_node ||
	    a->lost_slots != b->lost_slots || a->next_coord != b->next_coord ||
	    x->replication != y->replication ||
	    x->node_timeout_ms != y->node_timeout_ms || x->ack != y->ack ||
	    x->moves != y->moves || x->min_isr != y->min_isr ||
	    x->on_lost != y->on_lost ||
	    x->removed_retention_ms != y->removed_retention_ms ||
	    a->n_coords != b->n_coords || a->n_nodes != b->n_nodes)
		return false;
	for (unsigned i = 0; i < a->n_coords; i++)
		if (a->coords[i].id != b->coords[i].id ||
		    strcmp(a->coords[i].raft, b->coords[i].raft) != 0 ||
		    strcmp(a->coords[i].api, b->coords[i].api) != 0)
			return false;
	for (unsigned i = 0; i < a->n_nodes; i++) {
		const struct narf_map_node *p = &a->nodes[i], *q = &b->nodes[i];

		if (p->id != q->id || strcmp(p->addr, q->addr) != 0 ||
		    strcmp(p->boot_id, q->boot_id) != 0 ||
		    strcmp(p->zone, q->zone) != 0 || p->state != q->state ||
		    p->isr_dropped != q->isr_dropped)
			return false;
		/* Derived: kept by every apply, rebuilt by a decode, so a
		 * map and its round trip or twin agree on them too. */
		if (p->primaries != q->primaries ||
		    p->replicas != q->replicas || p->in_sync != q->in_sync ||
		    p->moves_in != q->moves_in ||
		    p->zone_shared != q->zone_shared)
			return false;
	}
	if (memcmp(&a->counts, &b->counts, sizeof(a->counts)) != 0 ||
	    a->slot_sum != b->slot_sum ||
	    narf_map_digest(a) != narf_map_digest(b))
		return false;
	for (unsigned s = 0; s < NARF_SLOTS; s++)
		if (!slots_equal(&a->slots[s], &b->slots[s]))
			return false;
	return true;
}

void check_map_round_trip(const struct narf_map *m)
{
	struct narf_map *back = new_map();
	char errmsg[NARF_ERRMSG_SIZE];
	json_t *j1 = narf_map_to_json(m), *j2;

	check(j1 != NULL);
	if (narf_map_from_json(back, j1, errmsg) != 0) {
		char *text = json_dumps(j1, JSON_COMPACT);

		fprintf(stderr, "map does not decode (%s): %.2000s\n", errmsg,
		        text ? text : "?");
		free(text);
		check(!"a map's JSON form decodes");
	}
	check(maps_equal(m, back));
	j2 = narf_map_to_json(back);
	check(j2 != NULL && json_equal(j1, j2));
	json_decref(j1);
	json_decref(j2);
	free_map(back);
}
