/*
 * Unit tests for coordinator/planner.h's narf_plan(): the balanced target
 * layout of the slots. Maps are built by direct edits (nodes) and by
 * narf_map_apply() (down, leave), and a plan is carried out through the
 * assign entry the leader commits (planner_fixture.c). The staged steps
 * towards a target, narf_plan_step(), are test_stage.c's.
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

/* A thousand nodes laid out at once (each node's replicas on the next one,
 * a ring), and one more joins: about 1/1001 of the primaries move, not a
 * chain of swaps around the ring per primary (976 changed primaries before
 * chains were bounded, for 16 the new node takes). */
static void test_thousand_and_one(void **state)
{
	struct narf_map m;
	unsigned led = 0, moved = 0;

	(void)state;
	map_with_nodes(&m, 2, 1000);
	plan_apply(&m);
	add_node(&m, NARF_NODE_UP);
	narf_plan(&m, target);
	check_target(&m, target);
	check_isr_and_epochs(&m, target);
	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		moved += target[s].primary != m.slots[s].primary;
		led += target[s].primary == m.nodes[1000].id;
	}
	print_message(
	        "1,000 + 1 nodes: %u primaries change, %u to the new "
	        "node, %u new copies\n",
	        moved, led, new_copies(&m, target));
	assert_true(led >= NARF_SLOTS / 1001);
	assert_true(moved <= 2 * led + 4);
	assert_true(new_copies(&m, target) <=
	            2 * ceil_div(2 * NARF_SLOTS, 1001));
	narf_map_close(&m);
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
	        cmocka_unit_test(test_thousand_and_one),
	        cmocka_unit_test(test_random_histories),
	        cmocka_unit_test(test_random_layouts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
