/*
 * Unit tests of the leader's heartbeat table (coordinator/hbtab.c): random
 * inserts, updates and removals checked against a plain array after every
 * operation, across growth, with ids dense and sparse.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "coordinator/coord.h"

#define MAX_ID 3000

static uint64_t rng_state;

static unsigned rnd(unsigned n)
{
	rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
	return (unsigned)((rng_state >> 33) % n);
}

/* t holds exactly the ids ref[] marks (ref[id] != 0), each with keys ==
 * ref[id], iteration visits each once, and the load stays at most 3/4. */
static void check_table(const struct narf_hbtab *t, const uint64_t *ref)
{
	unsigned n = 0, seen = 0, pos = 0;
	struct narf_hb *hb;

	for (uint32_t id = 1; id <= MAX_ID; id++) {
		const struct narf_hb *e = narf_hbtab_find(t, id);

		if (ref[id] == 0) {
			assert_null(e);
			continue;
		}
		assert_non_null(e);
		assert_int_equal(e->node, id);
		assert_int_equal(e->keys, ref[id]);
		n++;
	}
	assert_int_equal(t->n, n);
	while ((hb = narf_hbtab_next(t, &pos)) != NULL) {
		assert_true(hb->node >= 1 && hb->node <= MAX_ID);
		assert_int_equal(hb->keys, ref[hb->node]);
		seen++;
	}
	assert_int_equal(seen, n);
	assert_true(4 * t->n <= 3 * t->cap || t->cap == 0);
}

/* Random histories (inserts, updates, removals, clears) over dense and
 * sparse ids leave the table equal to a plain array after every step. */
static void test_random_histories(void **state)
{
	uint64_t *ref = calloc(MAX_ID + 1, sizeof(*ref));

	(void)state;
	assert_non_null(ref);
	for (unsigned seed = 1; seed <= 4; seed++) {
		struct narf_hbtab t = {0};
		unsigned span = seed % 2 ? 64 : MAX_ID;

		rng_state = seed;
		memset(ref, 0, (MAX_ID + 1) * sizeof(*ref));
		assert_null(narf_hbtab_find(&t, 1));
		for (unsigned step = 0; step < 3000; step++) {
			uint32_t id = 1 + rnd(span);
			unsigned op = rnd(100);
			struct narf_hb *hb;

			if (op < 60) {
				hb = narf_hbtab_get(&t, id);
				assert_non_null(hb);
				assert_int_equal(hb->node, id);
				if (ref[id] == 0)
					assert_int_equal(hb->keys, 0);
				hb->keys = ref[id] = 1 + step;
			} else if (op < 99) {
				narf_hbtab_remove(&t, id);
				ref[id] = 0;
			} else {
				narf_hbtab_clear(&t);
				memset(ref, 0, (MAX_ID + 1) * sizeof(*ref));
			}
			if (step % 16 == 0 || span == 64)
				check_table(&t, ref);
		}
		check_table(&t, ref);
		narf_hbtab_close(&t);
		narf_hbtab_close(NULL);
	}
	free(ref);
}

/* A thousand nodes seen in order, then every other one removed: the rest
 * are all found, and node 0 (never a node's) is refused. */
static void test_dense_then_half_removed(void **state)
{
	struct narf_hbtab t = {0};

	(void)state;
	assert_null(narf_hbtab_get(&t, 0));
	for (uint32_t id = 1; id <= 1000; id++)
		assert_non_null(narf_hbtab_get(&t, id));
	assert_int_equal(t.n, 1000);
	assert_int_equal(t.cap, 2048);
	for (uint32_t id = 2; id <= 1000; id += 2)
		narf_hbtab_remove(&t, id);
	narf_hbtab_remove(&t, 5000);
	assert_int_equal(t.n, 500);
	for (uint32_t id = 1; id <= 1000; id++)
		assert_true((narf_hbtab_find(&t, id) != NULL) == (id % 2 == 1));
	narf_hbtab_close(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_random_histories),
	        cmocka_unit_test(test_dense_then_half_removed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
