/*
 * The planner tests' fixture: see planner_fixture.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "common/map.h"
#include "coordinator/coord.h"
#include "coordinator/planner.h"
#include "planner_fixture.h"

/* Slots with a pending move at once: as the leader allows, unless a test
 * says otherwise. */
unsigned max_moves = NARF_MAP_DEFAULT_MOVES;

struct narf_slot target[NARF_SLOTS];

/* Append a node with the next id in state st, as node_join would. */
uint32_t add_node(struct narf_map *m, enum narf_node_state st)
{
	struct narf_map_node *nodes, *n;

	nodes = realloc(m->nodes, (m->n_nodes + 1) * sizeof(*nodes));
	assert_non_null(nodes);
	m->nodes = nodes;
	m->cap_nodes = m->n_nodes + 1;
	n = &m->nodes[m->n_nodes++];
	memset(n, 0, sizeof(*n));
	n->id = m->next_node++;
	snprintf(n->addr, sizeof(n->addr), "127.0.0.1:%u", 7200 + n->id);
	snprintf(n->boot_id, sizeof(n->boot_id), "boot-%u", n->id);
	n->state = st;
	return n->id;
}

void map_with_nodes(struct narf_map *m, unsigned replication, unsigned n_up)
{
	struct narf_map_settings s;

	narf_map_settings_default(&s);
	s.replication = replication;
	narf_map_init(m, &s);
	for (unsigned i = 0; i < n_up; i++)
		add_node(m, NARF_NODE_UP);
}

/* Apply a command built by json_pack, expecting success. */
void apply_ok(struct narf_map *m, json_t *cmd)
{
	struct narf_map_result res;

	assert_non_null(cmd);
	if (narf_map_apply(m, cmd, &res) != 0)
		fail_msg("apply: %s", res.errmsg);
	json_decref(cmd);
}

void set_down(struct narf_map *m, uint32_t id)
{
	apply_ok(m, json_pack("{s:i, s:s, s:i, s:s}", "v", 1, "type",
	                      "node_state", "node", (int)id, "state", "down"));
}

void set_leaving(struct narf_map *m, uint32_t id)
{
	apply_ok(m, json_pack("{s:i, s:s, s:i}", "v", 1, "type", "leave",
	                      "node", (int)id));
}

/*
 * Carry out a plan the way the leader does: one assign entry with every slot
 * the target changes, which the FSM validates (up nodes, no two copies on a
 * node, ISR within replicas) and applies, after which the map's slots must
 * equal the target, epochs included.
 */
void carry_out(struct narf_map *m, const struct narf_slot *t)
{
	static bool take[NARF_SLOTS];

	for (unsigned s = 0; s < NARF_SLOTS; s++)
		take[s] = !narf_slot_equal(&t[s], &m->slots[s]);
	apply_ok(m, narf_cmd_assign(m->epoch, t, take));
	for (unsigned s = 0; s < NARF_SLOTS; s++)
		assert_true(narf_slot_equal(&t[s], &m->slots[s]));
}

bool node_up(const struct narf_map *m, uint32_t id)
{
	const struct narf_map_node *n = narf_map_node_get(m, id);

	return n != NULL && n->state == NARF_NODE_UP;
}

/* Does node id take writes for the slots it leads (up or leaving)? */
bool live(const struct narf_map *m, uint32_t id)
{
	const struct narf_map_node *n = narf_map_node_get(m, id);

	return n != NULL &&
	       (n->state == NARF_NODE_UP || n->state == NARF_NODE_LEAVING);
}

unsigned n_up(const struct narf_map *m)
{
	unsigned n = 0;

	for (unsigned i = 0; i < m->n_nodes; i++)
		n += m->nodes[i].state == NARF_NODE_UP;
	return n;
}

/*
 * Check every invariant of a target against the map it was planned from:
 * min(replication, up nodes) copies per slot, on distinct up nodes, ISR
 * within the replicas in their order, and primaries and copies per up node
 * within one of each other.
 */
void check_target(const struct narf_map *m, const struct narf_slot *t)
{
	unsigned up = n_up(m);
	unsigned c =
	        m->settings.replication < up ? m->settings.replication : up;
	unsigned *prim = calloc(m->n_nodes, sizeof(*prim));
	unsigned *copies = calloc(m->n_nodes, sizeof(*copies));
	unsigned pmin = ~0u, pmax = 0, cmin = ~0u, cmax = 0;

	assert_non_null(prim);
	assert_non_null(copies);
	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		const struct narf_slot *x = &t[s];
		uint32_t ids[NARF_MAX_COPIES];
		unsigned k = 0, j = 0;

		assert_int_equal(narf_slot_copies(x), c);
		assert_true(x->n_replicas <= NARF_MAX_REPLICAS);
		assert_true(x->n_isr <= x->n_replicas);
		if (c == 0)
			continue;
		ids[k++] = x->primary;
		for (unsigned r = 0; r < x->n_replicas; r++)
			ids[k++] = x->replicas[r];
		for (unsigned a = 0; a < k; a++) {
			assert_true(node_up(m, ids[a]));
			for (unsigned b = 0; b < a; b++)
				assert_int_not_equal(ids[a], ids[b]);
			copies[narf_map_node_get(m, ids[a]) - m->nodes]++;
		}
		prim[narf_map_node_get(m, x->primary) - m->nodes]++;
		/* isr[] is a subsequence of replicas[]. */
		for (unsigned r = 0; r < x->n_replicas && j < x->n_isr; r++)
			if (x->replicas[r] == x->isr[j])
				j++;
		assert_int_equal(j, x->n_isr);
	}
	for (unsigned i = 0; i < m->n_nodes; i++) {
		if (m->nodes[i].state != NARF_NODE_UP) {
			assert_int_equal(copies[i], 0);
			continue;
		}
		pmin = prim[i] < pmin ? prim[i] : pmin;
		pmax = prim[i] > pmax ? prim[i] : pmax;
		cmin = copies[i] < cmin ? copies[i] : cmin;
		cmax = copies[i] > cmax ? copies[i] : cmax;
	}
	if (up > 0) {
		assert_true(pmax - pmin <= 1);
		assert_true(cmax - cmin <= 1);
	}
	free(prim);
	free(copies);
}

/* Copies in the target that the map did not hold: data to be synced. */
unsigned new_copies(const struct narf_map *m, const struct narf_slot *t)
{
	unsigned n = 0;

	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		if (t[s].primary != 0 &&
		    !narf_slot_has(&m->slots[s], t[s].primary))
			n++;
		for (unsigned r = 0; r < t[s].n_replicas; r++)
			n += !narf_slot_has(&m->slots[s], t[s].replicas[r]);
	}
	return n;
}

/* Copies the map held on up nodes that the target drops. */
unsigned dropped_live_copies(const struct narf_map *m,
                             const struct narf_slot *t)
{
	unsigned n = 0;

	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		const struct narf_slot *x = &m->slots[s];

		if (node_up(m, x->primary) && !narf_slot_has(&t[s], x->primary))
			n++;
		for (unsigned r = 0; r < x->n_replicas; r++)
			n += node_up(m, x->replicas[r]) &&
			     !narf_slot_has(&t[s], x->replicas[r]);
	}
	return n;
}

bool in_isr(const struct narf_slot *x, uint32_t id)
{
	for (unsigned j = 0; j < x->n_isr; j++)
		if (x->isr[j] == id)
			return true;
	return false;
}

bool is_replica(const struct narf_slot *x, uint32_t id)
{
	for (unsigned j = 0; j < x->n_replicas; j++)
		if (x->replicas[j] == id)
			return true;
	return false;
}

/*
 * The ISR rules: a kept ISR replica stays in, a demoted primary is in, a new
 * replica is in only when its slot held no copy; and slot epochs move exactly
 * when the primary does.
 */
void check_isr_and_epochs(const struct narf_map *m, const struct narf_slot *t)
{
	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		const struct narf_slot *c = &m->slots[s], *x = &t[s];
		bool was_empty = narf_slot_copies(c) == 0;

		for (unsigned r = 0; r < x->n_replicas; r++) {
			uint32_t id = x->replicas[r];
			bool want =
			        was_empty || c->primary == id || in_isr(c, id);

			assert_int_equal(in_isr(x, id), want);
		}
		if (x->primary != c->primary)
			assert_int_equal(x->epoch, m->epoch + 1);
		else
			assert_int_equal(x->epoch, c->epoch);
	}
}

/* Slot ranges in the map's JSON form: neighbours merge when all is equal. */
unsigned count_ranges(const struct narf_slot *t)
{
	unsigned n = 1;

	for (unsigned s = 1; s < NARF_SLOTS; s++) {
		const struct narf_slot *a = &t[s - 1], *b = &t[s];

		if (a->primary != b->primary || a->epoch != b->epoch ||
		    a->move != b->move || a->n_replicas != b->n_replicas ||
		    a->n_isr != b->n_isr ||
		    memcmp(a->replicas, b->replicas,
		           a->n_replicas * sizeof(a->replicas[0])) != 0 ||
		    memcmp(a->isr, b->isr, a->n_isr * sizeof(a->isr[0])) != 0)
			n++;
	}
	return n;
}

double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Plan m, check the target, carry it out, and check that it is stable. */
unsigned plan_apply(struct narf_map *m)
{
	unsigned changed = narf_plan(m, target);

	check_target(m, target);
	check_isr_and_epochs(m, target);
	carry_out(m, target);
	assert_int_equal(narf_plan(m, target), 0);
	return changed;
}

unsigned ceil_div(unsigned a, unsigned b)
{
	return (a + b - 1) / b;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

void rnd_seed(uint64_t seed)
{
	rng_state = 0x9e3779b97f4a7c15ull ^ (seed * 0xbf58476d1ce4e5b9ull);
	if (rng_state == 0) /* xorshift's one fixed point */
		rng_state = 1;
}

unsigned rnd(unsigned n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (unsigned)(rng_state % n);
}

/* Any node of m in state st, chosen at random; 0 when none. */
uint32_t random_node(const struct narf_map *m, enum narf_node_state st)
{
	unsigned count = 0, k;

	for (unsigned i = 0; i < m->n_nodes; i++)
		count += m->nodes[i].state == st;
	if (count == 0)
		return 0;
	k = rnd(count);
	for (unsigned i = 0; i < m->n_nodes; i++)
		if (m->nodes[i].state == st && k-- == 0)
			return m->nodes[i].id;
	return 0;
}
