/*
 * The map's derived state (common/map.h: struct narf_map_counts and the
 * per-node counts): random histories of every command that writes slots
 * (assign, isr, handoff, node states, joins, leaves, node_forget, on_lost
 * changes),
 * with the derived state checked after every apply against a walk of the
 * 16384 slots, against narf_map_recount(), and across a JSON round trip;
 * and the dirty set of each apply against a comparison of the slots
 * before and after. Fixture: map_fixture.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/map.h"
#include "map_fixture.h"

static uint64_t rng_state;

static unsigned rnd(unsigned n)
{
	rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
	return (unsigned)((rng_state >> 33) % n);
}

/* Zone pairs of slot x, the long way: the slot counts once when two of
 * its copies share a named zone, on the node of each zone's first copy. */
static void walk_zones(const struct narf_map *m,
                       const struct narf_slot *x,
                       struct narf_map_counts *k,
                       struct narf_map_node *nodes)
{
	uint32_t ids[NARF_MAX_COPIES];
	unsigned n = 0;
	bool shared = false;

	ids[n++] = x->primary;
	for (unsigned j = 0; j < x->n_replicas; j++)
		ids[n++] = x->replicas[j];
	for (unsigned i = 0; i < n; i++) {
		const struct narf_map_node *a = narf_map_node_get(m, ids[i]);
		bool earlier = false, later = false;

		for (unsigned j = 0; a != NULL && j < n; j++) {
			const struct narf_map_node *b =
			        narf_map_node_get(m, ids[j]);

			if (j == i || b == NULL || a->zone[0] == '\0' ||
			    strcmp(a->zone, b->zone) != 0)
				continue;
			earlier = earlier || j < i;
			later = later || j > i;
		}
		shared = shared || earlier || later;
		if (later && !earlier)
			nodes[a - m->nodes].zone_shared++;
	}
	k->zone_shared += shared;
}

/* The derived state of m, computed by walking every slot. */
static void walk_counts(const struct narf_map *m,
                        struct narf_map_counts *k,
                        struct narf_map_node *nodes)
{
	memset(k, 0, sizeof(*k));
	memcpy(nodes, m->nodes, m->n_nodes * sizeof(*nodes));
	for (unsigned i = 0; i < m->n_nodes; i++)
		nodes[i].primaries = nodes[i].replicas = nodes[i].in_sync =
		        nodes[i].moves_in = nodes[i].zone_shared = 0;
	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		const struct narf_slot *x = &m->slots[s];

		if (x->primary != 0)
			walk_zones(m, x, k, nodes);

		if (x->primary != 0) {
			k->assigned++;
			k->moving += x->move != 0;
			k->syncing += x->n_isr < x->n_replicas;
			k->by_isr[1 + x->n_isr]++;
		}
		for (unsigned i = 0; i < m->n_nodes; i++) {
			struct narf_map_node *n = &nodes[i];

			n->primaries += x->primary == n->id;
			n->moves_in += x->move == n->id;
			for (unsigned j = 0; j < x->n_replicas; j++)
				n->replicas += x->replicas[j] == n->id;
			for (unsigned j = 0; j < x->n_isr; j++)
				n->in_sync += x->isr[j] == n->id;
		}
	}
}

static void assert_counts_equal(const struct narf_map_counts *a,
                                const struct narf_map_node *an,
                                const struct narf_map_counts *b,
                                const struct narf_map_node *bn,
                                unsigned n_nodes)
{
	assert_memory_equal(a, b, sizeof(*a));
	for (unsigned i = 0; i < n_nodes; i++) {
		assert_int_equal(an[i].id, bn[i].id);
		assert_int_equal(an[i].primaries, bn[i].primaries);
		assert_int_equal(an[i].replicas, bn[i].replicas);
		assert_int_equal(an[i].in_sync, bn[i].in_sync);
		assert_int_equal(an[i].moves_in, bn[i].moves_in);
		assert_int_equal(an[i].zone_shared, bn[i].zone_shared);
	}
}

/* m's incremental counts (and the digest's slot sum) equal a walk, a
 * recount and a JSON round trip. */
static void check_counts(const struct narf_map *m, bool deep)
{
	struct narf_map_node *walked = calloc(m->n_nodes + 1, sizeof(*walked));
	struct narf_map_counts k;
	unsigned held = 0;

	assert_non_null(walked);
	walk_counts(m, &k, walked);
	assert_counts_equal(&m->counts, m->nodes, &k, walked, m->n_nodes);
	for (unsigned s = 0; s < NARF_SLOTS; s++)
		held += narf_slot_held(m, s);
	assert_int_equal(narf_map_held_slots(m), held);
	for (unsigned i = 0; i < m->n_nodes; i++) {
		unsigned p, r;

		narf_map_node_counts(m, m->nodes[i].id, &p, &r);
		assert_int_equal(p, walked[i].primaries);
		assert_int_equal(r, walked[i].replicas);
	}
	if (deep) {
		struct narf_map *copy = new_map(), *back = new_map();
		json_t *j = narf_map_to_json(m);
		char err[NARF_ERRMSG_SIZE];

		assert_int_equal(narf_map_copy(copy, m), 0);
		narf_map_recount(copy);
		assert_counts_equal(&m->counts, m->nodes, &copy->counts,
		                    copy->nodes, m->n_nodes);
		assert_int_equal(narf_map_from_json(back, j, err), 0);
		assert_counts_equal(&m->counts, m->nodes, &back->counts,
		                    back->nodes, m->n_nodes);
		/* the digest's slot sum, kept per slot write, equals one
		 * rebuilt from the slots and from the JSON form */
		assert_true(m->slot_sum == copy->slot_sum);
		assert_true(m->slot_sum == back->slot_sum);
		assert_true(narf_map_digest(m) == narf_map_digest(back));
		json_decref(j);
		free_map(copy);
		free_map(back);
	}
	free(walked);
}

/* A random node id of m (any state), or 0 when m has none. */
static uint32_t any_node(const struct narf_map *m)
{
	return m->n_nodes ? m->nodes[rnd(m->n_nodes)].id : 0;
}

/* Up to n distinct live (up or leaving) ids into ids; returns how many. */
static unsigned live_nodes(const struct narf_map *m, uint32_t *ids, unsigned n)
{
	unsigned k = 0, start = m->n_nodes ? rnd(m->n_nodes) : 0;

	for (unsigned i = 0; i < m->n_nodes && k < n; i++) {
		const struct narf_map_node *x =
		        &m->nodes[(start + i) % m->n_nodes];

		if (x->state == NARF_NODE_UP || x->state == NARF_NODE_LEAVING)
			ids[k++] = x->id;
	}
	return k;
}

/* An assign of a random range of slots to a random valid layout. */
static json_t *random_assign(const struct narf_map *m)
{
	struct narf_slot *slots = calloc(NARF_SLOTS, sizeof(*slots));
	bool *take = calloc(NARF_SLOTS, sizeof(*take));
	uint32_t ids[NARF_MAX_COPIES];
	unsigned n = live_nodes(m, ids, 1 + rnd(3)), lo, hi;
	struct narf_slot x = {0};
	json_t *cmd;

	assert_non_null(slots);
	assert_non_null(take);
	if (n > 0) {
		x.primary = ids[0];
		for (unsigned i = 1; i < n; i++) {
			x.replicas[x.n_replicas++] = ids[i];
			if (rnd(2))
				x.isr[x.n_isr++] = ids[i];
		}
		if (x.n_isr > 0 && rnd(3) == 0)
			x.move = x.isr[rnd(x.n_isr)];
	}
	lo = rnd(NARF_SLOTS);
	hi = lo + rnd(rnd(4) == 0 ? NARF_SLOTS - lo : 64);
	if (hi >= NARF_SLOTS)
		hi = NARF_SLOTS - 1;
	for (unsigned s = lo; s <= hi; s++) {
		slots[s] = x;
		take[s] = true;
	}
	cmd = narf_cmd_assign(m->epoch, slots, take);
	free(slots);
	free(take);
	return cmd;
}

/* Random slot flags: a run of slots, or all of them. */
static bool *random_flags(void)
{
	bool *f = calloc(NARF_SLOTS, sizeof(*f));
	unsigned lo = rnd(NARF_SLOTS), len = rnd(2) ? NARF_SLOTS : rnd(512);

	assert_non_null(f);
	for (unsigned s = lo; s < NARF_SLOTS && s < lo + len; s++)
		f[s] = true;
	return f;
}

static json_t *random_command(const struct narf_map *m, unsigned *port)
{
	static const enum narf_node_state states[] = {
	        NARF_NODE_UP, NARF_NODE_DOWN, NARF_NODE_REMOVED};
	uint32_t a = any_node(m), b = any_node(m);
	unsigned pick = rnd(100);
	json_t *cmd;
	bool *f;
	char text[96];

	if (m->n_nodes < 3 || (pick < 4 && m->n_nodes < 12)) {
		char addr[32];

		static const char *const zones[] = {NULL, "a", "b"};

		/* Few zones, so slots often keep two copies in one. */
		snprintf(addr, sizeof(addr), "127.0.0.1:%u", (*port)++);
		return narf_cmd_node_join_zone(addr, "b", zones[rnd(3)]);
	}
	if (pick < 14)
		return narf_cmd_node_state(a, states[rnd(3)]);
	if (pick < 16)
		return narf_cmd_leave(a, rnd(2));
	if (pick < 17 && m->n_nodes > 4)
		return narf_cmd_node_forget(a);
	if (pick < 18) {
		snprintf(text, sizeof(text),
		         "{\"v\":1,\"type\":\"settings\",\"on_lost\":\"%s\"}",
		         rnd(2) ? "wait" : "empty");
		return json_loads(text, 0, NULL);
	}
	if (pick < 50)
		return random_assign(m);
	if (pick < 80) {
		f = random_flags();
		cmd = narf_cmd_isr(a, b, rnd(4) ? f : NULL,
		                   rnd(2) ? m->epoch : 0);
		free(f);
		return cmd;
	}
	f = random_flags();
	cmd = narf_cmd_handoff(a, f);
	free(f);
	return cmd;
}

/* The dirty set of one apply names exactly the slots that changed. */
static void check_dirty(const struct narf_slot *before,
                        const struct narf_map *m,
                        const struct narf_map_dirty *d,
                        const struct narf_map_result *res)
{
	unsigned n = 0;

	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		bool changed = !narf_slot_equal(&before[s], &m->slots[s]);

		assert_int_equal(narf_map_dirty_slot(d, s), changed);
		n += changed;
	}
	assert_int_equal(d->n_slots, n);
	if (res->err != 0 || !res->changed)
		assert_true(n == 0 && !d->nodes && !d->settings && !d->coords);
}

/* After every apply of random histories (accepted or refused), the
 * incremental counts equal a walk of the slots and the dirty set names
 * the slots that changed; every 50 steps also a recount of a copy and
 * the counts rebuilt by narf_map_from_json(). */
static void test_random_histories(void **state)
{
	struct narf_slot *before = malloc(NARF_SLOTS * sizeof(*before));
	unsigned dirty_nodes = 0, dirty_settings = 0, zone_shared = 0;

	(void)state;
	assert_non_null(before);
	for (unsigned seed = 1; seed <= 6; seed++) {
		struct narf_map *m = new_map();
		unsigned port = 7201, changed = 0;

		rng_state = seed;
		for (unsigned step = 0; step < 400; step++) {
			struct narf_map_result res;
			struct narf_map_dirty d;
			json_t *cmd = random_command(m, &port);

			assert_non_null(cmd);
			memcpy(before, m->slots, sizeof(m->slots));
			narf_map_dirty_clear(&d);
			narf_map_apply_dirty(m, cmd, &res, &d);
			json_decref(cmd);
			changed += res.changed;
			dirty_nodes += d.nodes;
			dirty_settings += d.settings;
			check_dirty(before, m, &d, &res);
			check_counts(m, step % 50 == 0);
			zone_shared += m->counts.zone_shared > 0;
		}
		check_counts(m, true);
		/* The histories do change the map. */
		assert_true(changed > 100);
		assert_true(m->counts.assigned > 0);
		free_map(m);
	}
	assert_true(dirty_nodes > 0 && dirty_settings > 0);
	/* ... and slots with two copies in one zone came and went. */
	assert_true(zone_shared > 0);
	free(before);
}

/* A map whose slots were written directly gets its counts back from
 * narf_map_recount(). */
static void test_recount(void **state)
{
	struct narf_map *m = new_map();
	uint32_t a = add_up_node(m, 7201), b = add_up_node(m, 7202);
	unsigned p, r;

	(void)state;
	for (unsigned s = 0; s < 100; s++)
		m->slots[s] = (struct narf_slot){.primary = a,
		                                 .n_replicas = 1,
		                                 .replicas = {b},
		                                 .move = 0};
	narf_map_node_counts(m, a, &p, &r);
	assert_int_equal(p, 0);
	narf_map_recount(m);
	narf_map_node_counts(m, a, &p, &r);
	assert_int_equal(p, 100);
	narf_map_node_counts(m, b, &p, &r);
	assert_int_equal(r, 100);
	assert_int_equal(m->counts.syncing, 100);
	assert_int_equal(m->counts.by_isr[1], 100);
	check_counts(m, true);
	free_map(m);
}

/* The digest: equal for a copy and for a JSON round trip; different
 * after any one change a map's JSON shows (a slot's ISR, a node's state
 * or address, a setting, the coordinators, only the epoch), and back to
 * equal when the slot is put back as it was. */
static void test_digest(void **state)
{
	struct narf_map *m = new_map(), *c = new_map();
	uint32_t a = add_up_node(m, 7201), b = add_up_node(m, 7202);
	uint64_t d;

	(void)state;
	for (unsigned s = 0; s < NARF_SLOTS; s++)
		m->slots[s] = (struct narf_slot){.primary = s % 2 ? a : b,
		                                 .n_replicas = 1,
		                                 .replicas = {s % 2 ? b : a}};
	narf_map_recount(m);
	d = narf_map_digest(m);
	assert_int_equal(narf_map_copy(c, m), 0);
	assert_true(narf_map_digest(c) == d);
	check_counts(m, true); /* and the JSON round trip's */

	c->slots[77].isr[0] = c->slots[77].replicas[0];
	c->slots[77].n_isr = 1;
	narf_map_recount(c);
	assert_true(narf_map_digest(c) != d);
	c->slots[77].n_isr = 0; /* isr[0] is now unused: ignored */
	narf_map_recount(c);
	assert_true(narf_map_digest(c) == d);
	c->nodes[1].state = NARF_NODE_DOWN;
	assert_true(narf_map_digest(c) != d);
	c->nodes[1].state = m->nodes[1].state;
	c->nodes[0].addr[0] = 'x';
	assert_true(narf_map_digest(c) != d);
	assert_int_equal(narf_map_copy(c, m), 0);
	c->settings.moves++;
	assert_true(narf_map_digest(c) != d);
	assert_int_equal(narf_map_copy(c, m), 0);
	c->n_coords = 1;
	c->coords[0] = (struct narf_map_coord){1, "h:1", "h:2"};
	assert_true(narf_map_digest(c) != d);
	assert_int_equal(narf_map_copy(c, m), 0);
	c->epoch++;
	assert_true(narf_map_digest(c) != d);
	free_map(m);
	free_map(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_random_histories),
	        cmocka_unit_test(test_recount),
	        cmocka_unit_test(test_digest),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
