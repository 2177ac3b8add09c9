/*
 * Unit tests for coordinator/planner.h: the balanced target layout of the
 * slots. Maps are built by direct edits (nodes) and by narf_map_apply()
 * (down, leave), and a plan is carried out through the assign entry the
 * leader commits.
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

/* Slots with a pending move at once: as the leader allows, unless a test
 * says otherwise. */
static unsigned max_moves = NARF_MAP_DEFAULT_MOVES;

/* The brief: well under 100 ms for 16384 slots and up to 64 nodes. */
#define PLAN_MS_LIMIT 100.0

static struct narf_slot target[NARF_SLOTS];

/* Append a node with the next id in state st, as node_join would. */
static uint32_t add_node(struct narf_map *m, enum narf_node_state st)
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

static void map_with_nodes(struct narf_map *m,
                           unsigned replication,
                           unsigned n_up)
{
	struct narf_map_settings s;

	narf_map_settings_default(&s);
	s.replication = replication;
	narf_map_init(m, &s);
	for (unsigned i = 0; i < n_up; i++)
		add_node(m, NARF_NODE_UP);
}

/* Apply a command built by json_pack, expecting success. */
static void apply_ok(struct narf_map *m, json_t *cmd)
{
	struct narf_map_result res;

	assert_non_null(cmd);
	if (narf_map_apply(m, cmd, &res) != 0)
		fail_msg("apply: %s", res.errmsg);
	json_decref(cmd);
}

static void set_down(struct narf_map *m, uint32_t id)
{
	apply_ok(m, json_pack("{s:i, s:s, s:i, s:s}", "v", 1, "type",
	                      "node_state", "node", (int)id, "state", "down"));
}

static void set_leaving(struct narf_map *m, uint32_t id)
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
static void carry_out(struct narf_map *m, const struct narf_slot *t)
{
	static bool take[NARF_SLOTS];

	for (unsigned s = 0; s < NARF_SLOTS; s++)
		take[s] = !narf_slot_equal(&t[s], &m->slots[s]);
	apply_ok(m, narf_cmd_assign(m->epoch, t, take));
	for (unsigned s = 0; s < NARF_SLOTS; s++)
		assert_true(narf_slot_equal(&t[s], &m->slots[s]));
}

static bool node_up(const struct narf_map *m, uint32_t id)
{
	const struct narf_map_node *n = narf_map_node_get(m, id);

	return n != NULL && n->state == NARF_NODE_UP;
}

/* Does node id take writes for the slots it leads (up or leaving)? */
static bool live(const struct narf_map *m, uint32_t id)
{
	const struct narf_map_node *n = narf_map_node_get(m, id);

	return n != NULL &&
	       (n->state == NARF_NODE_UP || n->state == NARF_NODE_LEAVING);
}

static unsigned n_up(const struct narf_map *m)
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
static void check_target(const struct narf_map *m, const struct narf_slot *t)
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
static unsigned new_copies(const struct narf_map *m, const struct narf_slot *t)
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
static unsigned dropped_live_copies(const struct narf_map *m,
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

static bool in_isr(const struct narf_slot *x, uint32_t id)
{
	for (unsigned j = 0; j < x->n_isr; j++)
		if (x->isr[j] == id)
			return true;
	return false;
}

static bool is_replica(const struct narf_slot *x, uint32_t id)
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
static void check_isr_and_epochs(const struct narf_map *m,
                                 const struct narf_slot *t)
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
static unsigned count_ranges(const struct narf_slot *t)
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

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Plan m, check the target, carry it out, and check that it is stable. */
static unsigned plan_apply(struct narf_map *m)
{
	unsigned changed = narf_plan(m, target);

	check_target(m, target);
	check_isr_and_epochs(m, target);
	carry_out(m, target);
	assert_int_equal(narf_plan(m, target), 0);
	return changed;
}

static unsigned ceil_div(unsigned a, unsigned b)
{
	return (a + b - 1) / b;
}

/* A fresh map of 1, 2, 3 or 5 nodes gets every slot with min(rep, n)
 * copies, spread evenly, in as many ranges as nodes, all in sync. */
static void test_initial_assignment(void **state)
{
	static const unsigned sizes[] = {1, 2, 3, 5};

	(void)state;
	for (unsigned i = 0; i < 4; i++) {
		for (unsigned rep = 1; rep <= 3; rep++) {
			struct narf_map m;
			unsigned n = sizes[i];

			map_with_nodes(&m, rep, n);
			assert_int_equal(narf_plan(&m, target), NARF_SLOTS);
			check_target(&m, target);
			check_isr_and_epochs(&m, target);
			for (unsigned s = 0; s < NARF_SLOTS; s++)
				assert_int_equal(target[s].n_isr,
				                 target[s].n_replicas);
			/* Redis-like: node i leads one contiguous range. */
			assert_int_equal(count_ranges(target), n);
			assert_int_equal(target[0].primary, m.nodes[0].id);
			assert_int_equal(target[NARF_SLOTS - 1].primary,
			                 m.nodes[n - 1].id);
			carry_out(&m, target);
			assert_int_equal(narf_plan(&m, target), 0);
			narf_map_close(&m);
		}
	}
}

/* With fewer up nodes than the replication factor, each slot gets one copy
 * per node and never two on one node. */
static void test_fewer_nodes_than_copies(void **state)
{
	struct narf_map m;

	(void)state;
	map_with_nodes(&m, 2, 1);
	plan_apply(&m);
	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		assert_int_equal(m.slots[s].primary, 1);
		assert_int_equal(m.slots[s].n_replicas, 0);
	}
	/* A second node then gets the missing replicas and half the
	 * primaries, by role swaps inside the slots. */
	add_node(&m, NARF_NODE_UP);
	plan_apply(&m);
	narf_map_close(&m);

	map_with_nodes(&m, 5, 3);
	plan_apply(&m);
	assert_int_equal(narf_slot_copies(&m.slots[0]), 3);
	narf_map_close(&m);
}

/* Nodes that are joining, down, leaving or removed get no copies, and with
 * no up node at all every slot is unassigned at the next epoch. */
static void test_only_up_nodes_eligible(void **state)
{
	struct narf_map m;
	uint32_t a, b;

	(void)state;
	map_with_nodes(&m, 2, 0);
	add_node(&m, NARF_NODE_JOINING);
	a = add_node(&m, NARF_NODE_UP);
	add_node(&m, NARF_NODE_DOWN);
	b = add_node(&m, NARF_NODE_UP);
	add_node(&m, NARF_NODE_REMOVED);
	plan_apply(&m);
	for (unsigned s = 0; s < NARF_SLOTS; s++)
		assert_true(narf_slot_has(&m.slots[s], a) &&
		            narf_slot_has(&m.slots[s], b));
	narf_map_node_get(&m, a)->state = NARF_NODE_LEAVING;
	narf_map_node_get(&m, b)->state = NARF_NODE_DOWN;
	assert_int_equal(narf_plan(&m, target), NARF_SLOTS);
	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		assert_int_equal(target[s].primary, 0);
		assert_int_equal(target[s].n_replicas, 0);
		assert_int_equal(target[s].epoch, m.epoch + 1);
	}
	narf_map_close(&m);
}

/* Adding a fourth node to a balanced three-node map moves about a quarter of
 * the copies, all to the new node, keeps every other copy and its ISR
 * membership, and leaves few ranges. */
static void test_add_node(void **state)
{
	struct narf_map m;
	unsigned total = 2 * NARF_SLOTS, moved, changed;
	uint32_t id;

	(void)state;
	map_with_nodes(&m, 2, 3);
	plan_apply(&m);
	id = add_node(&m, NARF_NODE_UP);
	changed = narf_plan(&m, target);
	check_target(&m, target);
	check_isr_and_epochs(&m, target);
	moved = new_copies(&m, target);
	assert_true(moved <= ceil_div(total, 4) + 4);
	assert_true(changed <= moved + NARF_SLOTS / 4 + 4);
	assert_int_equal(dropped_live_copies(&m, target), moved);
	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		const struct narf_slot *c = &m.slots[s], *x = &target[s];

		/* Only the new node receives data. */
		for (unsigned r = 0; r < x->n_replicas; r++)
			if (!narf_slot_has(c, x->replicas[r]))
				assert_int_equal(x->replicas[r], id);
		if (!narf_slot_has(c, x->primary))
			assert_int_equal(x->primary, id);
		/* A replica that stays a replica keeps its ISR flag. */
		for (unsigned r = 0; r < c->n_replicas; r++)
			if (is_replica(x, c->replicas[r]))
				assert_int_equal(in_isr(x, c->replicas[r]),
				                 in_isr(c, c->replicas[r]));
	}
	assert_true(count_ranges(target) <= 16);
	carry_out(&m, target);
	assert_int_equal(narf_plan(&m, target), 0);
	narf_map_close(&m);
}

/* A node marked down (its primaries already promoted by the map) has its
 * lost copies re-created evenly on the others, which keep all they hold. */
static void test_remove_down_node(void **state)
{
	struct narf_map m;
	unsigned total = 2 * NARF_SLOTS;

	(void)state;
	map_with_nodes(&m, 2, 4);
	plan_apply(&m);
	set_down(&m, 2);
	assert_true(narf_plan(&m, target) > 0);
	check_target(&m, target);
	check_isr_and_epochs(&m, target);
	assert_true(new_copies(&m, target) <= ceil_div(total, 4) + 4);
	assert_true(dropped_live_copies(&m, target) <= 4);
	carry_out(&m, target);
	assert_int_equal(narf_plan(&m, target), 0);
	narf_map_close(&m);
}

/* A leaving node's copies move to the others, which keep what they hold, and
 * its primaries go to an ISR replica, not to the first replica listed. */
static void test_remove_leaving_node(void **state)
{
	struct narf_map m;
	unsigned total = 3 * NARF_SLOTS, led = 0;

	(void)state;
	map_with_nodes(&m, 3, 4);
	plan_apply(&m);
	/* In node 2's slots, only the second replica is in sync. */
	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		struct narf_slot *x = &m.slots[s];

		if (x->primary != 2)
			continue;
		assert_int_equal(x->n_replicas, 2);
		x->isr[0] = x->replicas[1];
		x->n_isr = 1;
	}
	set_leaving(&m, 2);
	assert_true(narf_plan(&m, target) > 0);
	check_target(&m, target);
	check_isr_and_epochs(&m, target);
	assert_true(new_copies(&m, target) <= ceil_div(total, 4) + 4);
	assert_true(dropped_live_copies(&m, target) <= 4);
	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		const struct narf_slot *c = &m.slots[s];

		if (c->primary != 2)
			continue;
		led++;
		assert_int_equal(target[s].primary, c->isr[0]);
		assert_int_equal(target[s].epoch, m.epoch + 1);
	}
	assert_true(led > 0);
	carry_out(&m, target);
	assert_int_equal(narf_plan(&m, target), 0);
	/* Nothing is left on the leaving node. */
	for (unsigned s = 0; s < NARF_SLOTS; s++)
		assert_false(narf_slot_has(&m.slots[s], 2));
	narf_map_close(&m);
}

/* Planning a balanced map changes nothing, and unchanged slots are copied
 * byte for byte; a slot with a pending move is planned as if its handoff
 * were done (the move target leads it). */
static void test_idempotent(void **state)
{
	static struct narf_slot other[NARF_SLOTS];
	struct narf_map m, after;
	uint32_t to;

	(void)state;
	map_with_nodes(&m, 3, 5);
	narf_map_init(&after, NULL);
	plan_apply(&m);
	assert_int_equal(narf_plan(&m, target), 0);
	assert_memory_equal(target, m.slots, sizeof(m.slots));
	/* Planning with slot 7 moving is planning the map after its
	 * handoff (same layout; the view's slot epoch is that of the entry
	 * planned next, the handoff's the one after). */
	to = m.slots[7].isr[0];
	m.slots[7].move = to;
	assert_true(narf_plan(&m, target) >= 1);
	narf_map_copy(&after, &m);
	after.slots[7].move = 0;
	after.slots[7].primary = to;
	after.slots[7].replicas[0] = after.slots[7].isr[0] = m.slots[7].primary;
	after.slots[7].epoch = m.epoch + 1;
	narf_plan(&after, other);
	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		other[s].epoch = target[s].epoch;
		assert_true(narf_slot_equal(&other[s], &target[s]));
	}
	narf_map_close(&after);
	narf_map_close(&m);
}

/* Raising and lowering the replication factor adds or drops one replica per
 * slot and nothing else. */
static void test_replication_change(void **state)
{
	struct narf_map m;

	(void)state;
	map_with_nodes(&m, 2, 4);
	plan_apply(&m);
	m.settings.replication = 3;
	assert_int_equal(narf_plan(&m, target), NARF_SLOTS);
	assert_int_equal(new_copies(&m, target), NARF_SLOTS);
	assert_int_equal(dropped_live_copies(&m, target), 0);
	plan_apply(&m);
	m.settings.replication = 1;
	assert_int_equal(narf_plan(&m, target), NARF_SLOTS);
	assert_int_equal(new_copies(&m, target), 0);
	plan_apply(&m);
	narf_map_close(&m);
}

/* Fifty nodes with three copies: each plan stays well under 100 ms, and
 * adding a node moves about 1/51 of the copies. */
static void test_fifty_nodes(void **state)
{
	struct narf_map m;
	unsigned total = 3 * NARF_SLOTS;
	double t0, t1, t2, t3;

	(void)state;
	map_with_nodes(&m, 3, 50);
	t0 = now_ms();
	narf_plan(&m, target);
	t1 = now_ms();
	check_target(&m, target);
	carry_out(&m, target);
	add_node(&m, NARF_NODE_UP);
	t2 = now_ms();
	narf_plan(&m, target);
	t3 = now_ms();
	check_target(&m, target);
	check_isr_and_epochs(&m, target);
	assert_true(new_copies(&m, target) <= ceil_div(total, 51) + 51);
	print_message("50 nodes: initial %.2f ms, add one %.2f ms\n", t1 - t0,
	              t3 - t2);
	assert_true(t1 - t0 < PLAN_MS_LIMIT);
	assert_true(t3 - t2 < PLAN_MS_LIMIT);
	carry_out(&m, target);
	set_down(&m, 17);
	t0 = now_ms();
	narf_plan(&m, target);
	t1 = now_ms();
	check_target(&m, target);
	print_message("50 nodes: one down %.2f ms\n", t1 - t0);
	assert_true(t1 - t0 < PLAN_MS_LIMIT);
	assert_true(new_copies(&m, target) <= ceil_div(total, 51) + 51);
	narf_map_close(&m);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static unsigned rnd(unsigned n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (unsigned)(rng_state % n);
}

/* Any node of m in state st, chosen at random; 0 when none. */
static uint32_t random_node(const struct narf_map *m, enum narf_node_state st)
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

/* Random histories of joins, failures, returns, departures and replication
 * changes always yield valid, balanced, stable targets. */
static void test_random_histories(void **state)
{
	(void)state;
	for (unsigned run = 0; run < 4; run++) {
		struct narf_map m;

		map_with_nodes(&m, 1 + rnd(3), 1 + rnd(3));
		plan_apply(&m);
		for (unsigned step = 0; step < 60; step++) {
			uint32_t id;

			switch (rnd(6)) {
			case 0:
			case 1:
				if (n_up(&m) < 12)
					add_node(&m, NARF_NODE_UP);
				break;
			case 2:
				if ((id = random_node(&m, NARF_NODE_UP)) != 0)
					set_down(&m, id);
				break;
			case 3:
				if ((id = random_node(&m, NARF_NODE_DOWN)) != 0)
					narf_map_node_get(&m, id)->state =
					        NARF_NODE_UP;
				break;
			case 4:
				if ((id = random_node(&m, NARF_NODE_UP)) != 0)
					set_leaving(&m, id);
				break;
			default:
				m.settings.replication = 1 + rnd(4);
				break;
			}
			plan_apply(&m);
		}
		narf_map_close(&m);
	}
}

/* Arbitrary, unbalanced layouts (random copies, ISRs and node states) are
 * also brought to valid, balanced, stable targets. */
static void test_random_layouts(void **state)
{
	(void)state;
	for (unsigned run = 0; run < 30; run++) {
		struct narf_map m;
		unsigned n = 1 + rnd(9);

		map_with_nodes(&m, 1 + rnd(5), n);
		for (unsigned i = 0; i < m.n_nodes; i++)
			if (rnd(4) == 0)
				m.nodes[i].state = NARF_NODE_LEAVING;
		for (unsigned s = 0; s < NARF_SLOTS; s++) {
			struct narf_slot *x = &m.slots[s];
			unsigned k = rnd(n < 5 ? n + 1 : 6);

			/* A few long runs of one owner, as real maps have. */
			if (s > 0 && rnd(64) != 0) {
				*x = m.slots[s - 1];
				continue;
			}
			memset(x, 0, sizeof(*x));
			for (unsigned i = 0; i < k; i++) {
				uint32_t id = 1 + rnd(n);

				if (narf_slot_has(x, id))
					continue;
				if (x->primary == 0) {
					x->primary = id;
					continue;
				}
				x->replicas[x->n_replicas++] = id;
				if (rnd(2))
					x->isr[x->n_isr++] = id;
			}
		}
		plan_apply(&m);
		narf_map_close(&m);
	}
}

/* --- staging: narf_plan_step() ------------------------------------------ */

static struct narf_slot step[NARF_SLOTS];

/* Did slot c hold every acknowledged write on node id? */
static bool was_in_sync(const struct narf_slot *c, uint32_t id)
{
	return narf_slot_copies(c) == 0 || c->primary == id || in_isr(c, id);
}

static unsigned in_sync_copies(const struct narf_slot *x)
{
	return x->primary != 0 ? 1u + x->n_isr : 0u;
}

/*
 * The safety rules of a step against the map m it was computed from and the
 * target t it heads for: a primary changes only to a node in sync; the ISR
 * is exactly the replicas that were in sync (a kept replica keeps its ISR
 * membership, nobody enters it without a sync); no slot ends with fewer
 * in-sync copies than min(those it had, the target's copies), one fewer for
 * a slot that was full; never two copies on one node, at most
 * NARF_MAX_COPIES.
 */
static void check_step(const struct narf_map *m,
                       const struct narf_slot *t,
                       const struct narf_slot *st)
{
	unsigned moves = 0;

	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		const struct narf_slot *c = &m->slots[s], *x = &st[s];
		unsigned had = in_sync_copies(c),
		         want = narf_slot_copies(&t[s]);
		uint32_t ids[NARF_MAX_COPIES];
		unsigned k = 0;

		/* A pending move freezes its slot. A new one goes to an
		 * in-sync replica and keeps the primary and its epoch; the
		 * step may drop copies then, never add one. A primary that
		 * is live is never replaced directly. */
		moves += x->move != 0;
		if (c->move != 0)
			assert_true(narf_slot_equal(x, c));
		if (x->move != 0 && c->move == 0) {
			assert_int_equal(x->primary, c->primary);
			assert_int_equal(x->epoch, c->epoch);
			assert_true(in_isr(c, x->move));
			assert_true(in_isr(x, x->move));
			for (unsigned j = 0; j < x->n_replicas; j++)
				assert_true(narf_slot_has(c, x->replicas[j]));
		}
		if (x->primary != c->primary)
			assert_true(c->primary == 0 || !live(m, c->primary));
		if (x->primary != c->primary)
			assert_true(was_in_sync(c, x->primary));
		/* The ISR is exactly the replicas that were in sync: kept
		 * ones keep their place, new ones wait for `isr add`. */
		for (unsigned j = 0; j < x->n_isr; j++)
			assert_true(is_replica(x, x->isr[j]));
		for (unsigned j = 0; j < x->n_replicas; j++)
			assert_int_equal(in_isr(x, x->replicas[j]),
			                 was_in_sync(c, x->replicas[j]));
		/* A full slot gives up one copy to take a new one. */
		if (narf_slot_copies(c) == NARF_MAX_COPIES && had > 1)
			had--;
		assert_true(in_sync_copies(x) >= (had < want ? had : want));
		assert_true(narf_slot_copies(x) <= NARF_MAX_COPIES);
		if (x->primary != 0)
			ids[k++] = x->primary;
		for (unsigned j = 0; j < x->n_replicas; j++)
			ids[k++] = x->replicas[j];
		for (unsigned a = 0; a < k; a++)
			for (unsigned b = 0; b < a; b++)
				assert_int_not_equal(ids[a], ids[b]);
	}
	assert_true(moves <= max_moves);
}

static unsigned rnd(unsigned n);

/*
 * What data nodes do after a sync: each primary sends `isr add` for the
 * slots whose replica it has brought up to date. With partial unset every
 * replica outside the ISR is up to date at once; with it set, each (primary,
 * replica) pair is up to date with probability 1/2 and, with probability
 * 1/8, a pair in sync loses it (ack lag: the primary sends `isr drop`).
 * Returns the isr entries applied.
 */
static unsigned sync_all(struct narf_map *m, bool partial)
{
	static bool add[NARF_SLOTS];
	static bool seen[128][128]; /* (primary, replica) pairs done */
	unsigned entries = 0;

	memset(seen, 0, sizeof(seen));
	for (;;) {
		uint32_t p = 0, r = 0;

		for (unsigned s = 0; s < NARF_SLOTS && p == 0; s++) {
			const struct narf_slot *x = &m->slots[s];

			for (unsigned j = 0; j < x->n_replicas && p == 0; j++) {
				assert_true(x->primary < 128 &&
				            x->replicas[j] < 128);
				if (!in_isr(x, x->replicas[j]) &&
				    !seen[x->primary][x->replicas[j]]) {
					p = x->primary;
					r = x->replicas[j];
				}
			}
		}
		if (p == 0)
			break;
		seen[p][r] = true;
		if (partial && rnd(2) == 0)
			continue;
		assert_true(++entries <= 4096);
		for (unsigned s = 0; s < NARF_SLOTS; s++)
			add[s] = m->slots[s].primary == p &&
			         is_replica(&m->slots[s], r) &&
			         !in_isr(&m->slots[s], r);
		apply_ok(m, narf_cmd_isr(p, r, add));
	}
	if (partial && rnd(8) == 0) {
		const struct narf_slot *x = &m->slots[rnd(NARF_SLOTS)];

		if (x->n_isr > 0) {
			apply_ok(m, narf_cmd_isr(x->primary,
			                         x->isr[rnd(x->n_isr)], NULL));
			entries++;
		}
	}
	return entries;
}

/*
 * What data nodes do with a pending move: the primary holds the slot's
 * writes until the target has acknowledged everything, then sends
 * `handoff` for the slots ready. Each primary reports all its moving slots
 * at once; with partial set, it does so with probability 3/4 and, if it
 * does, about 1 in 8 of its slots (those whose target has not acked yet)
 * wait for a later report. Every handoff makes its target primary with the old
 * primary an in-sync replica. Returns the handoff entries applied.
 */
static unsigned handoff_all(struct narf_map *m, bool partial)
{
	static bool slots[NARF_SLOTS];
	static struct narf_slot was[NARF_SLOTS];
	unsigned entries = 0;
	uint64_t e0 = m->epoch;

	memcpy(was, m->slots, sizeof(was));
	for (unsigned i = 0; i < m->n_nodes; i++) {
		uint32_t p = m->nodes[i].id;
		bool any = false;

		if (partial && rnd(4) == 0)
			continue;
		for (unsigned s = 0; s < NARF_SLOTS; s++) {
			slots[s] = m->slots[s].primary == p &&
			           m->slots[s].move != 0 &&
			           (!partial || rnd(8) != 0);
			any = any || slots[s];
		}
		if (!any)
			continue;
		apply_ok(m, narf_cmd_handoff(p, slots));
		entries++;
	}
	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		const struct narf_slot *c = &was[s], *x = &m->slots[s];

		if (c->move == 0 || x->move != 0)
			continue;
		assert_int_equal(x->primary, c->move);
		assert_true(in_isr(x, c->primary));
		assert_int_equal(x->n_replicas, c->n_replicas);
		assert_true(x->epoch > e0 && x->epoch <= m->epoch);
	}
	return entries;
}

static bool any_move(const struct narf_map *m)
{
	for (unsigned s = 0; s < NARF_SLOTS; s++)
		if (m->slots[s].move != 0)
			return true;
	return false;
}

static unsigned staged_slots; /* slot-rounds where the step held back */
static struct narf_slot before[NARF_SLOTS];

static unsigned added_copies, churned_copies;

/* Churn: copies that step `now` added to slot layout `was` and that the
 * next step `next`, planned before any sync, drops again. Counts the copies
 * added and those dropped; returns the dropped ones. */
static unsigned count_churn(const struct narf_slot *was,
                            const struct narf_slot *now,
                            const struct narf_slot *next)
{
	unsigned churned = 0;

	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		const struct narf_slot *x = &now[s];
		uint32_t ids[NARF_MAX_COPIES];
		unsigned k = 0;

		if (x->primary != 0)
			ids[k++] = x->primary;
		for (unsigned j = 0; j < x->n_replicas; j++)
			ids[k++] = x->replicas[j];
		for (unsigned i = 0; i < k; i++) {
			if (narf_slot_has(&was[s], ids[i]))
				continue;
			added_copies++;
			churned += !narf_slot_has(&next[s], ids[i]);
		}
	}
	churned_copies += churned;
	return churned;
}

/*
 * The leader's loop: plan, commit one step, let the data nodes sync
 * (sync_all()) and hand over moving slots (handoff_all()), until the
 * planner has nothing left to do, every replica is in sync and no move is
 * pending. Every step obeys check_step(). Right after a step, before any
 * sync, planning again keeps every copy the step added (no drop-and-add
 * churn); with partial syncs that is counted rather than required. Returns
 * the rounds taken; fails past max_rounds or when a round (with full syncs)
 * makes no progress.
 */
static unsigned converge_sync(struct narf_map *m,
                              unsigned max_rounds,
                              bool partial)
{
	for (unsigned round = 0; round <= max_rounds; round++) {
		unsigned n, k;

		if (narf_plan(m, target) == 0) {
			bool synced = true;

			assert_int_equal(
			        narf_plan_step(m, target, max_moves, step), 0);
			check_target(m, m->slots);
			for (unsigned s = 0; s < NARF_SLOTS; s++)
				synced = synced &&
				         m->slots[s].n_isr ==
				                 m->slots[s].n_replicas;
			if (synced && !any_move(m))
				return round;
			/* Balanced, with replicas still syncing or
			 * handoffs still to come. */
			assert_true(partial);
			sync_all(m, partial);
			handoff_all(m, partial);
			continue;
		}
		check_target(m, target);
		n = narf_plan_step(m, target, max_moves, step);
		check_step(m, target, step);
		for (unsigned s = 0; s < NARF_SLOTS; s++)
			staged_slots += !narf_slot_equal(&step[s], &target[s]);
		if (n > 0) {
			memcpy(before, m->slots, sizeof(m->slots));
			carry_out(m, step);
			narf_plan(m, target);
			narf_plan_step(m, target, max_moves, step);
			if (count_churn(before, m->slots, step) > 0)
				assert_true(partial);
		}
		k = sync_all(m, partial);
		k += handoff_all(m, partial);
		assert_true(k > 0 || n > 0 || partial);
	}
	fail_msg("no fixed point after %u rounds", max_rounds);
	return 0;
}

/*
 * converge_sync() with full syncs, allowing max_rounds plus one round per
 * wave of max_moves slots taking a new copy and per wave of max_moves
 * primary swaps the first plan asks for (a sync or a handoff with a live
 * primary; the bound makes a large rebalance go in waves).
 */
static unsigned converge(struct narf_map *m, unsigned max_rounds)
{
	unsigned swaps = 0, syncs = 0;

	narf_plan(m, target);
	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		const struct narf_slot *c = &m->slots[s];
		bool grows = target[s].primary != 0 &&
		             !narf_slot_has(c, target[s].primary);

		for (unsigned j = 0; j < target[s].n_replicas; j++)
			grows = grows ||
			        !narf_slot_has(c, target[s].replicas[j]);
		syncs += grows && live(m, c->primary);
		swaps += target[s].primary != c->primary && live(m, c->primary);
	}
	return converge_sync(m,
	                     max_rounds + (syncs + max_moves - 1) / max_moves +
	                             (swaps + max_moves - 1) / max_moves,
	                     false);
}

/* A fourth node joins three balanced ones: its copies sync before any
 * primary moves to it, its 4096 primaries come by handoff in waves of
 * max_moves, and the map settles in a round per wave plus a few; without
 * the bound, in as few rounds as when primaries moved directly. */
static void test_staged_join(void **state)
{
	struct narf_map m;
	unsigned rounds;

	(void)state;
	map_with_nodes(&m, 2, 3);
	assert_int_equal(converge(&m, 1), 1);
	add_node(&m, NARF_NODE_UP);
	staged_slots = 0;
	rounds = converge(&m, 4);
	print_message("join 4th of 4: %u rounds, %u slot-rounds held back\n",
	              rounds, staged_slots);
	/* The new node's primaries had to wait for its syncs. */
	assert_true(staged_slots >= NARF_SLOTS / 4 - 4);
	assert_true(rounds >= NARF_SLOTS / 4 / max_moves);
	narf_map_close(&m);

	max_moves = NARF_SLOTS;
	map_with_nodes(&m, 2, 3);
	converge(&m, 1);
	add_node(&m, NARF_NODE_UP);
	rounds = converge_sync(&m, 3, false);
	print_message("join 4th of 4, moves unbounded: %u rounds\n", rounds);
	max_moves = NARF_MAP_DEFAULT_MOVES;
	narf_map_close(&m);
}

/* One node of four goes down: its promoted slots get new replicas, which
 * sync before any primary moves onto them. */
static void test_staged_down(void **state)
{
	struct narf_map m;
	unsigned rounds;

	(void)state;
	map_with_nodes(&m, 2, 4);
	converge(&m, 1);
	set_down(&m, 2);
	rounds = converge(&m, 4);
	print_message("one of 4 down: %u rounds\n", rounds);
	narf_map_close(&m);
}

/* A restarted node is a new incarnation: the old one goes down in the join
 * entry, the new one comes up empty and is filled by syncs. */
static void test_staged_restart(void **state)
{
	struct narf_map m;
	struct narf_map_result res;
	json_t *join;
	unsigned rounds;

	(void)state;
	map_with_nodes(&m, 2, 4);
	converge(&m, 1);
	join = narf_cmd_node_join(m.nodes[2].addr, "boot-again");
	assert_int_equal(narf_map_apply(&m, join, &res), 0);
	json_decref(join);
	assert_int_equal(narf_map_node_get(&m, 3)->state, NARF_NODE_DOWN);
	apply_ok(&m, narf_cmd_node_state(res.node, NARF_NODE_UP));
	rounds = converge(&m, 4);
	print_message("restart of 1 of 4: %u rounds\n", rounds);
	narf_map_close(&m);
}

/* Replication 3: a node joins, one goes down, one leaves, and the factor
 * goes up and down; every path settles with safe steps. */
static void test_staged_replication_3(void **state)
{
	struct narf_map m;

	(void)state;
	map_with_nodes(&m, 3, 3);
	converge(&m, 1);
	add_node(&m, NARF_NODE_UP);
	converge(&m, 4);
	add_node(&m, NARF_NODE_UP);
	converge(&m, 4);
	set_down(&m, 1);
	converge(&m, 4);
	set_leaving(&m, 2);
	converge(&m, 4);
	for (unsigned s = 0; s < NARF_SLOTS; s++)
		assert_false(narf_slot_has(&m.slots[s], 2));
	m.settings.replication = 2;
	converge(&m, 2);
	m.settings.replication = 3;
	converge(&m, 4);
	narf_map_close(&m);
}

/* Replication 5: slots are full, so a new copy first takes the place of one
 * the target does not want. */
static void test_staged_replication_5(void **state)
{
	struct narf_map m;

	(void)state;
	map_with_nodes(&m, 5, 5);
	converge(&m, 1);
	add_node(&m, NARF_NODE_UP);
	converge(&m, 6);
	set_leaving(&m, 3);
	converge(&m, 6);
	set_down(&m, 1);
	converge(&m, 6);
	narf_map_close(&m);
}

/* Nodes arriving one by one (as data nodes start), the first one alone with
 * every slot, then one leaving and a sole survivor taking over; replication
 * 1 moves whole slots through an extra copy. */
static void test_staged_one_by_one(void **state)
{
	struct narf_map m;

	(void)state;
	for (unsigned rep = 1; rep <= 3; rep++) {
		map_with_nodes(&m, rep, 1);
		converge(&m, 1);
		for (unsigned i = 0; i < 4; i++) {
			add_node(&m, NARF_NODE_UP);
			converge(&m, 4);
		}
		set_leaving(&m, 1);
		converge(&m, 4);
		set_down(&m, 2);
		converge(&m, 4);
		narf_map_close(&m);
	}
}

/* Random histories, with data nodes that sync only some replicas per round
 * and sometimes drop one from the ISR: every step is safe and the map still
 * settles. */
static void test_staged_random_histories(void **state)
{
	unsigned worst = 0;

	(void)state;
	added_copies = churned_copies = 0;
	for (unsigned run = 0; run < 10; run++) {
		struct narf_map m;

		map_with_nodes(&m, 1 + rnd(3), 1 + rnd(3));
		converge(&m, 1);
		for (unsigned ev = 0; ev < 25; ev++) {
			uint32_t id;
			unsigned r;

			switch (rnd(6)) {
			case 0:
			case 1:
				if (n_up(&m) < 10)
					add_node(&m, NARF_NODE_UP);
				break;
			case 2:
				if (n_up(&m) > 1 &&
				    (id = random_node(&m, NARF_NODE_UP)) != 0)
					set_down(&m, id);
				break;
			case 3:
				if (n_up(&m) > 1 &&
				    (id = random_node(&m, NARF_NODE_UP)) != 0)
					set_leaving(&m, id);
				break;
			default:
				m.settings.replication = 1 + rnd(4);
				break;
			}
			r = converge_sync(&m, 400, true);
			worst = r > worst ? r : worst;
		}
		narf_map_close(&m);
	}
	/* A copy dropped unsynced happens when the target itself moves
	 * (other slots' steps, ISR drops); it costs a sync, not data. */
	print_message(
	        "random staged histories: at most %u rounds per event; "
	        "%u of %u new copies dropped before they synced\n",
	        worst, churned_copies, added_copies);
	assert_true(churned_copies * 100 <= added_copies);
}

/* A pure step in detail: replica b moves to new node x (replication 2). The
 * step adds x outside the ISR and keeps b; once x is in the ISR the next
 * step drops b; a primary bound for x waits for x's sync. */
static void test_step_rules(void **state)
{
	struct narf_map m;
	struct narf_slot t[1];

	(void)state;
	map_with_nodes(&m, 2, 4);
	m.slots[0] = (struct narf_slot){.primary = 1,
	                                .n_replicas = 1,
	                                .replicas = {2},
	                                .n_isr = 1,
	                                .isr = {2},
	                                .epoch = 3};
	m.epoch = 9;
	/* Target {1, 3}: 3 is added, 2 kept, nothing else moves. */
	t[0] = (struct narf_slot){
	        .primary = 1, .n_replicas = 1, .replicas = {3}, .epoch = 3};
	memcpy(target, m.slots, sizeof(m.slots));
	target[0] = t[0];
	assert_int_equal(narf_plan_step(&m, target, max_moves, step), 1);
	assert_int_equal(step[0].primary, 1);
	assert_int_equal(step[0].n_replicas, 2);
	assert_int_equal(step[0].replicas[0], 2);
	assert_int_equal(step[0].replicas[1], 3);
	assert_int_equal(step[0].n_isr, 1);
	assert_int_equal(step[0].isr[0], 2);
	assert_int_equal(step[0].epoch, 3);
	/* Target {3, 2}: primary bound for 3, out of sync: 1 stays primary. */
	target[0] = (struct narf_slot){.primary = 3,
	                               .n_replicas = 1,
	                               .replicas = {2},
	                               .n_isr = 1,
	                               .isr = {2},
	                               .epoch = 10};
	narf_plan_step(&m, target, max_moves, step);
	assert_int_equal(step[0].primary, 1);
	assert_int_equal(step[0].n_replicas, 2);
	assert_int_equal(step[0].replicas[1], 3);
	assert_int_equal(step[0].n_isr, 1);
	/* Once 3 is in the ISR the target can take effect, but 1 is live:
	 * 1 hands the slot over (move = 3, nothing else changes, since the
	 * handoff puts 1 in 3's place and the next step drops it). */
	m.slots[0] = step[0];
	m.slots[0].isr[m.slots[0].n_isr++] = 3;
	narf_plan_step(&m, target, max_moves, step);
	assert_true(narf_slot_equal(&step[0],
	                            &(struct narf_slot){.primary = 1,
	                                                .move = 3,
	                                                .n_replicas = 2,
	                                                .replicas = {2, 3},
	                                                .n_isr = 2,
	                                                .isr = {2, 3},
	                                                .epoch = 3}));
	/* Were 1 down (not yet out of the slot), 3 would lead at once. */
	m.nodes[0].state = NARF_NODE_DOWN;
	narf_plan_step(&m, target, max_moves, step);
	assert_true(narf_slot_equal(&step[0], &target[0]));
	m.nodes[0].state = NARF_NODE_UP;
	/* A full slot (replication 5) makes room: an unwanted replica goes
	 * first, then, if every replica is wanted, the unwanted primary in
	 * favour of an in-sync replica: a handoff while the primary is live,
	 * at once (with a new slot epoch) when it is not. */
	m.settings.replication = 5;
	add_node(&m, NARF_NODE_UP);
	add_node(&m, NARF_NODE_UP);
	m.slots[0] = (struct narf_slot){.primary = 1,
	                                .n_replicas = 4,
	                                .replicas = {2, 3, 4, 5},
	                                .n_isr = 3,
	                                .isr = {2, 3, 5},
	                                .epoch = 3};
	target[0] = (struct narf_slot){.primary = 1,
	                               .n_replicas = 4,
	                               .replicas = {2, 3, 5, 6},
	                               .n_isr = 3,
	                               .isr = {2, 3, 5},
	                               .epoch = 3};
	narf_plan_step(&m, target, max_moves, step);
	assert_true(narf_slot_equal(
	        &step[0], &(struct narf_slot){.primary = 1,
	                                      .n_replicas = 4,
	                                      .replicas = {2, 3, 5, 6},
	                                      .n_isr = 3,
	                                      .isr = {2, 3, 5},
	                                      .epoch = 3}));
	target[0] = (struct narf_slot){.primary = 6,
	                               .n_replicas = 4,
	                               .replicas = {2, 3, 4, 5},
	                               .epoch = 10};
	narf_plan_step(&m, target, max_moves, step);
	assert_true(narf_slot_equal(
	        &step[0], &(struct narf_slot){.primary = 1,
	                                      .move = 2,
	                                      .n_replicas = 4,
	                                      .replicas = {2, 3, 4, 5},
	                                      .n_isr = 3,
	                                      .isr = {2, 3, 5},
	                                      .epoch = 3}));
	m.nodes[0].state = NARF_NODE_DOWN;
	narf_plan_step(&m, target, max_moves, step);
	assert_true(narf_slot_equal(
	        &step[0], &(struct narf_slot){.primary = 2,
	                                      .n_replicas = 4,
	                                      .replicas = {3, 4, 5, 6},
	                                      .n_isr = 2,
	                                      .isr = {3, 5},
	                                      .epoch = 10}));
	m.nodes[0].state = NARF_NODE_UP;
	/* A target with no copy keeps the slot as it is. */
	memset(&target[0], 0, sizeof(target[0]));
	assert_int_equal(narf_plan_step(&m, target, max_moves, step), 0);
	assert_true(narf_slot_equal(&step[0], &m.slots[0]));
	narf_map_close(&m);
}

/* Slot s: primary p, in-sync replicas r1 (and r2 when non-zero). */
static struct narf_slot slot_of(uint32_t p, uint32_t r1, uint32_t r2)
{
	struct narf_slot x = {.primary = p, .epoch = 3};

	x.replicas[x.n_replicas++] = x.isr[x.n_isr++] = r1;
	if (r2 != 0)
		x.replicas[x.n_replicas++] = x.isr[x.n_isr++] = r2;
	return x;
}

/* Role swaps between live nodes become moves: the primary, its epoch and
 * the copies stay, and the handoff entry then gives the target's layout. A
 * slot with a pending move is left alone whatever the target says; at most
 * max_moves slots have a move at once (the others wait, their unwanted
 * copies dropped); a leaving primary hands over too, ending up last among
 * the replicas, where the next step drops it. */
static void test_step_handoff(void **state)
{
	struct narf_map m;
	bool slots[NARF_SLOTS] = {false};
	uint64_t epoch;

	(void)state;
	map_with_nodes(&m, 2, 4);
	for (unsigned s = 0; s < NARF_SLOTS; s++)
		m.slots[s] = slot_of(1 + s % 4, 1 + (s + 1) % 4, 0);
	m.epoch = 9;
	memcpy(target, m.slots, sizeof(m.slots));
	/* Slots 0 and 4: swap 1 and 2; slot 8: 1 leads [2, 3], 3 wanted. */
	target[0] = target[4] = slot_of(2, 1, 0);
	m.slots[8] = slot_of(1, 2, 3);
	target[8] = slot_of(3, 1, 0);
	assert_int_equal(narf_plan_step(&m, target, NARF_SLOTS, step), 3);
	check_step(&m, target, step);
	for (unsigned s = 0; s < 8; s += 4) {
		struct narf_slot want = slot_of(1, 2, 0);

		want.move = 2;
		assert_true(narf_slot_equal(&step[s], &want));
	}
	/* 2 goes now; 3 takes 1's place among the replicas. */
	assert_true(
	        narf_slot_equal(&step[8], &(struct narf_slot){.primary = 1,
	                                                      .move = 3,
	                                                      .n_replicas = 1,
	                                                      .replicas = {3},
	                                                      .n_isr = 1,
	                                                      .isr = {3},
	                                                      .epoch = 3}));
	/* Two moves at most: slot 8 waits, 2 dropped already. With one move
	 * pending elsewhere, one more. */
	assert_int_equal(narf_plan_step(&m, target, 2, step), 3);
	assert_int_equal(step[0].move, 2);
	assert_int_equal(step[4].move, 2);
	assert_true(
	        narf_slot_equal(&step[8], &(struct narf_slot){.primary = 1,
	                                                      .n_replicas = 1,
	                                                      .replicas = {3},
	                                                      .n_isr = 1,
	                                                      .isr = {3},
	                                                      .epoch = 3}));
	m.slots[100].move = m.slots[100].replicas[0];
	assert_int_equal(narf_plan_step(&m, target, 2, step), 2);
	assert_int_equal(step[0].move, 2);
	assert_true(narf_slot_equal(&step[4], &m.slots[4]));
	m.slots[100].move = 0;
	/* Commit the moves; the slots are frozen, whatever the target. */
	narf_plan_step(&m, target, NARF_SLOTS, step);
	carry_out(&m, step);
	target[0] = target[4] = target[8] = slot_of(4, 3, 0);
	assert_int_equal(narf_plan_step(&m, target, NARF_SLOTS, step), 0);
	/* Node 1 hands over: each slot gets the layout wanted before. */
	slots[0] = slots[4] = slots[8] = true;
	epoch = m.epoch;
	apply_ok(&m, narf_cmd_handoff(1, slots));
	assert_int_equal(m.epoch, epoch + 1);
	assert_true(narf_slot_equal(&m.slots[0],
	                            &(struct narf_slot){.primary = 2,
	                                                .n_replicas = 1,
	                                                .replicas = {1},
	                                                .n_isr = 1,
	                                                .isr = {1},
	                                                .epoch = epoch + 1}));
	assert_int_equal(m.slots[8].primary, 3);
	assert_int_equal(m.slots[8].replicas[0], 1);
	/* A leaving primary: its copy goes last, and the step after the
	 * handoff drops it. */
	set_leaving(&m, 2);
	m.slots[0] = slot_of(2, 3, 4);
	memcpy(target, m.slots, sizeof(m.slots));
	target[0] = slot_of(3, 4, 0);
	narf_plan_step(&m, target, NARF_SLOTS, step);
	assert_true(narf_slot_equal(&step[0],
	                            &(struct narf_slot){.primary = 2,
	                                                .move = 3,
	                                                .n_replicas = 2,
	                                                .replicas = {4, 3},
	                                                .n_isr = 2,
	                                                .isr = {4, 3},
	                                                .epoch = 3}));
	m.slots[0] = step[0];
	memset(slots, 0, sizeof(slots));
	slots[0] = true;
	apply_ok(&m, narf_cmd_handoff(2, slots));
	assert_int_equal(m.slots[0].primary, 3);
	assert_int_equal(m.slots[0].replicas[1], 2);
	target[0].epoch = m.slots[0].epoch;
	narf_plan_step(&m, target, NARF_SLOTS, step);
	assert_true(narf_slot_equal(&step[0], &target[0]));
	narf_map_close(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_initial_assignment),
	        cmocka_unit_test(test_fewer_nodes_than_copies),
	        cmocka_unit_test(test_only_up_nodes_eligible),
	        cmocka_unit_test(test_add_node),
	        cmocka_unit_test(test_remove_down_node),
	        cmocka_unit_test(test_remove_leaving_node),
	        cmocka_unit_test(test_idempotent),
	        cmocka_unit_test(test_replication_change),
	        cmocka_unit_test(test_fifty_nodes),
	        cmocka_unit_test(test_random_histories),
	        cmocka_unit_test(test_random_layouts),
	        cmocka_unit_test(test_step_rules),
	        cmocka_unit_test(test_step_handoff),
	        cmocka_unit_test(test_staged_join),
	        cmocka_unit_test(test_staged_down),
	        cmocka_unit_test(test_staged_restart),
	        cmocka_unit_test(test_staged_replication_3),
	        cmocka_unit_test(test_staged_replication_5),
	        cmocka_unit_test(test_staged_one_by_one),
	        cmocka_unit_test(test_staged_random_histories),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
