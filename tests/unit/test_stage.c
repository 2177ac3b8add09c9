/*
 * Unit tests for coordinator/stage.c's narf_plan_step(): one safe step at a
 * time from the current map towards the planner's target (new copies sync
 * outside the ISR, a live primary hands over, at most `moves` slots busy).
 * Fixture: planner_fixture.c.
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
		apply_ok(m, narf_cmd_isr(p, r, add, 0));
	}
	if (partial && rnd(8) == 0) {
		const struct narf_slot *x = &m->slots[rnd(NARF_SLOTS)];

		if (x->n_isr > 0) {
			apply_ok(m,
			         narf_cmd_isr(x->primary, x->isr[rnd(x->n_isr)],
			                      NULL, 0));
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
/* When set, converge_sync() plans as the leader does, through the cache
 * of coordinator/plan_cache.c, instead of narf_plan() every round. */
static struct narf_plan_cache *cache;

static unsigned plan_now(struct narf_map *m)
{
	unsigned staged, moves = m->settings.moves, changed;

	if (cache == NULL)
		return narf_plan(m, target);
	/* as the leader does, with the fixture's bound on moves */
	m->settings.moves = max_moves;
	changed = narf_plan_next(m, target, step, cache, &staged);
	m->settings.moves = moves;
	return changed;
}
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

		if (plan_now(m) == 0) {
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
			plan_now(m);
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

/* Zones given to a balanced map of 6 nodes (replication 2) make a third
 * of the slots keep both copies in one zone: safe steps move one copy of
 * each to another zone, without churn, until the map's count of such
 * slots is 0. Then a zone is lost: its copies come back on the other two
 * zones, again never two in one. */
static void test_staged_zones(void **state)
{
	struct narf_map m;
	unsigned rounds;

	(void)state;
	map_with_nodes(&m, 2, 6);
	converge(&m, 1);
	for (unsigned i = 0; i < 6; i++)
		snprintf(m.nodes[i].zone, sizeof(m.nodes[i].zone), "z%u",
		         i / 2);
	narf_map_recount(&m);
	assert_true(m.counts.zone_shared >= NARF_SLOTS / 3 - 6);
	rounds = converge(&m, 6);
	print_message("zones given to 6 nodes: %u rounds\n", rounds);
	assert_int_equal(m.counts.zone_shared, 0);
	set_down(&m, 1);
	set_down(&m, 2);
	rounds = converge(&m, 6);
	print_message("a zone of 2 of 6 lost: %u rounds\n", rounds);
	assert_int_equal(m.counts.zone_shared, 0);
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
/* One event of a random history: a node added (up to 10), one down or
 * leaving (while another stays up), or the replication changed. */
static void random_event(struct narf_map *m)
{
	uint32_t id;

	switch (rnd(6)) {
	case 0:
	case 1:
		if (n_up(m) < 10)
			add_node(m, NARF_NODE_UP);
		break;
	case 2:
		if (n_up(m) > 1 && (id = random_node(m, NARF_NODE_UP)) != 0)
			set_down(m, id);
		break;
	case 3:
		if (n_up(m) > 1 && (id = random_node(m, NARF_NODE_UP)) != 0)
			set_leaving(m, id);
		break;
	default:
		m->settings.replication = 1 + rnd(4);
		break;
	}
}

/* The runs of test_staged_random_histories this process makes (main). */
static unsigned runs_from = 0, runs_to = 10;

static void test_staged_random_histories(void **state)
{
	unsigned worst = 0;

	(void)state;
	added_copies = churned_copies = 0;
	for (unsigned run = runs_from; run < runs_to; run++) {
		struct narf_map m;

		rnd_seed(run); /* each run its own history, whichever part */

		map_with_nodes(&m, 1 + rnd(3), 1 + rnd(3));
		converge(&m, 1);
		for (unsigned ev = 0; ev < 25; ev++) {
			unsigned r;

			random_event(&m);
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

/* The leader's cached target (plan_cache.c) on the same moves: a fourth
 * node joins three, and random histories as above. Every step still obeys
 * check_step(), the map still settles on narf_plan()'s fixed point
 * (converge_sync() ends only when a plan finds nothing to change), in
 * about as many rounds; and most rounds are served by a refresh, not by a
 * full plan. */
static void test_cached_target(void **state)
{
	struct narf_plan_cache pc;
	struct narf_map m;
	unsigned plain, cached;

	(void)state;
	map_with_nodes(&m, 2, 3);
	converge(&m, 1);
	add_node(&m, NARF_NODE_UP);
	plain = converge(&m, 4);
	narf_map_close(&m);

	memset(&pc, 0, sizeof(pc));
	cache = &pc;
	map_with_nodes(&m, 2, 3);
	converge(&m, 1);
	pc.plans = pc.refreshes = 0;
	add_node(&m, NARF_NODE_UP);
	cached = converge(&m, 4);
	print_message(
	        "join 4th of 4: %u rounds planning each, %u with the "
	        "cache (%llu plans, %llu refreshes)\n",
	        plain, cached, (unsigned long long)pc.plans,
	        (unsigned long long)pc.refreshes);
	assert_true(cached <= plain + 2);
	assert_true(pc.refreshes > pc.plans);
	narf_map_close(&m);

	/* A second node holds every slot as a replica outside the ISR (it
	 * synced nothing), then joins the ISR of slots 0..99 only: the kept
	 * target had picked the second node's primaries among slots no
	 * copy of which was in sync, so it allows no step; the fresh plan
	 * the leader then asks for hands over some of slots 0..99 at once
	 * (test_coord.py's staged primary moves). */
	{
		static bool add[NARF_SLOTS];
		unsigned staged, moving = 0;
		uint32_t a, b;

		memset(&pc, 0, sizeof(pc));
		map_with_nodes(&m, 2, 1);
		a = m.nodes[0].id;
		m.settings.moves = NARF_SLOTS;
		assert_true(narf_plan_next(&m, target, step, &pc, &staged) > 0);
		carry_out(&m, step);
		b = add_node(&m, NARF_NODE_UP);
		assert_true(narf_plan_next(&m, target, step, &pc, &staged) > 0);
		carry_out(&m, step);
		for (unsigned s = 0; s < NARF_SLOTS; s++)
			assert_true(m.slots[s].primary == a &&
			            is_replica(&m.slots[s], b) &&
			            !in_isr(&m.slots[s], b));
		assert_true(narf_plan_next(&m, target, step, &pc, &staged) > 0);
		assert_int_equal(staged, 0); /* nothing in sync: wait */
		for (unsigned s = 0; s < NARF_SLOTS; s++)
			add[s] = s < 100;
		apply_ok(&m, narf_cmd_isr(a, b, add, 0));
		narf_plan_next(&m, target, step, &pc, &staged);
		for (unsigned s = 0; s < 100; s++)
			moving += step[s].move == b;
		assert_true(staged > 0 && moving > 0);
		narf_map_close(&m);
	}

	/* A random history: nodes added, down, leaving, replication
	 * changed, partial syncs and ISR drops. */
	memset(&pc, 0, sizeof(pc));
	added_copies = churned_copies = 0;
	rnd_seed(100);
	map_with_nodes(&m, 1 + rnd(3), 1 + rnd(3));
	converge(&m, 1);
	for (unsigned ev = 0; ev < 25; ev++) {
		random_event(&m);
		converge_sync(&m, 400, true);
	}
	narf_map_close(&m);
	print_message(
	        "cached random histories: %llu plans, %llu refreshes; "
	        "%u of %u new copies dropped before they synced\n",
	        (unsigned long long)pc.plans, (unsigned long long)pc.refreshes,
	        churned_copies, added_copies);
	assert_true(pc.refreshes > 0);
	assert_true(churned_copies * 100 <= added_copies);
	cache = NULL;
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

/*
 * Sixteen nodes join eight at once, and the leader steers through its
 * cache while copies sync and handoffs land at random (partial syncs, as in
 * the random histories). A plan made over a half-done move must keep to
 * the one before: each slot's primary changes about once, not back and
 * forth between two nodes (issue 17: a 1,000-node join never settled, its
 * primaries swapped to and fro while copies synced), and few copies are
 * placed only to be moved again. Measured at 8 -> 24 when this test was
 * written: 1.5 primary changes per slot that must change (2.5 before the
 * swaps were judged by their cost in handoffs), 1.4 copies placed per copy
 * that must move (2.2 before), 86 rounds (106).
 */
static void test_join_keeps_course(void **state)
{
	static uint32_t last[NARF_SLOTS], start[NARF_SLOTS];
	struct narf_plan_cache pc;
	struct narf_map m;
	unsigned long changes = 0, needed = 0, placed = 0, must_place = 0;
	unsigned round;

	(void)state;
	rnd_seed(17);
	map_with_nodes(&m, 2, 8);
	converge(&m, 1);
	for (unsigned s = 0; s < NARF_SLOTS; s++)
		start[s] = last[s] = m.slots[s].primary;
	for (unsigned i = 0; i < 16; i++)
		add_node(&m, NARF_NODE_UP);
	memset(&pc, 0, sizeof(pc));
	cache = &pc;
	/* Copies to place: all but the old nodes' share, which they keep. */
	must_place = 2 * NARF_SLOTS - 2 * NARF_SLOTS * 8 / 24;
	for (round = 0; round < 1000; round++) {
		unsigned staged;
		bool done = true;

		m.settings.moves = max_moves;
		if (narf_plan_next(&m, target, step, &pc, &staged) == 0) {
			for (unsigned s = 0; s < NARF_SLOTS; s++)
				done = done &&
				       m.slots[s].n_isr ==
				               m.slots[s].n_replicas &&
				       m.slots[s].move == 0;
			if (done)
				break;
		}
		if (staged > 0) {
			check_step(&m, target, step);
			placed += new_copies(&m, step);
			carry_out(&m, step);
		}
		sync_all(&m, true);
		handoff_all(&m, true);
		for (unsigned s = 0; s < NARF_SLOTS; s++) {
			changes += m.slots[s].primary != last[s];
			last[s] = m.slots[s].primary;
		}
	}
	cache = NULL;
	for (unsigned s = 0; s < NARF_SLOTS; s++)
		needed += m.slots[s].primary != start[s];
	print_message(
	        "join of 16 to 8: %u rounds; %lu primary changes for "
	        "%lu slots that changed primary; %lu copies placed "
	        "for %lu to move\n",
	        round, changes, needed, placed, must_place);
	assert_true(round < 1000);
	assert_true(changes <= 2 * needed);
	assert_true(placed <= 2 * must_place);
	narf_map_close(&m);
}

/* `test_stage random1` and `random2` run half of the random histories
 * each, `test_stage rest` everything else (meson runs the parts at once:
 * the histories take most of the time, 70 s under the sanitizers); no
 * argument runs all. */
int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_step_rules),
	        cmocka_unit_test(test_step_handoff),
	        cmocka_unit_test(test_staged_join),
	        cmocka_unit_test(test_staged_down),
	        cmocka_unit_test(test_staged_restart),
	        cmocka_unit_test(test_staged_zones),
	        cmocka_unit_test(test_staged_replication_3),
	        cmocka_unit_test(test_staged_replication_5),
	        cmocka_unit_test(test_staged_one_by_one),
	        cmocka_unit_test(test_staged_random_histories),
	        cmocka_unit_test(test_cached_target),
	        cmocka_unit_test(test_join_keeps_course),
	};

	if (argc > 1 && (strcmp(argv[1], "random1") == 0 ||
	                 strcmp(argv[1], "random2") == 0)) {
		cmocka_set_test_filter("test_staged_random_histories");
		runs_from = argv[1][6] == '1' ? 0 : 5;
		runs_to = runs_from + 5;
	} else if (argc > 1 && strcmp(argv[1], "rest") == 0)
		cmocka_set_skip_filter("test_staged_random_histories");
	else if (argc > 1) {
		fprintf(stderr, "usage: %s [random1|random2|rest]\n", argv[0]);
		return 2;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
