/*
 * Unit tests for the loop-free part of datanode/repl.c: the epoch fence
 * with its per-slot high-water mark (narf_fence_check).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "datanode/repl.h"

/* A replica whose map is one change behind applies the new primary's
 * message (newer than its map: fetch the map), then refuses the old
 * primary's (equal to its map, but below the mark). */
static void test_fence_map_behind(void **state)
{
	uint64_t hwm = 5; /* from our map: slot epoch 5 */

	(void)state;
	assert_int_equal(narf_fence_check(&hwm, 5, false, 5), NARF_FENCE_APPLY);
	assert_int_equal(narf_fence_check(&hwm, 5, false, 9), NARF_FENCE_NEWER);
	assert_int_equal(hwm, 9);
	assert_int_equal(narf_fence_check(&hwm, 5, false, 5), NARF_FENCE_STALE);
	assert_int_equal(hwm, 9);
	/* The new primary goes on; our map catches up. */
	assert_int_equal(narf_fence_check(&hwm, 5, false, 9), NARF_FENCE_NEWER);
	assert_int_equal(narf_fence_check(&hwm, 9, false, 9), NARF_FENCE_APPLY);
}

/* The map's own epoch is a floor: a message below it is refused even from
 * the node the map names (the mark includes the map), and a message at
 * our own epoch for a slot we lead is refused. */
static void test_fence_map_floor_and_own_slot(void **state)
{
	uint64_t hwm = 7;

	(void)state;
	assert_int_equal(narf_fence_check(&hwm, 7, false, 6), NARF_FENCE_STALE);
	assert_int_equal(narf_fence_check(&hwm, 7, false, 0), NARF_FENCE_STALE);
	assert_int_equal(narf_fence_check(&hwm, 7, true, 7), NARF_FENCE_STALE);
	assert_int_equal(hwm, 7);
	/* A newer primary than us: we are the stale one. */
	assert_int_equal(narf_fence_check(&hwm, 7, true, 8), NARF_FENCE_NEWER);
	assert_int_equal(hwm, 8);
}

/* Without a map (before the first one arrives) only the mark fences. */
static void test_fence_no_map(void **state)
{
	uint64_t hwm = 0;

	(void)state;
	assert_int_equal(narf_fence_check(&hwm, 0, false, 0), NARF_FENCE_APPLY);
	assert_int_equal(narf_fence_check(&hwm, 0, false, 3), NARF_FENCE_NEWER);
	assert_int_equal(narf_fence_check(&hwm, 0, false, 2), NARF_FENCE_STALE);
	assert_int_equal(narf_fence_check(&hwm, 0, false, UINT64_MAX),
	                 NARF_FENCE_NEWER);
	assert_int_equal(narf_fence_check(&hwm, 0, false, UINT64_MAX),
	                 NARF_FENCE_NEWER);
	assert_int_equal(hwm, UINT64_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_fence_map_behind),
	        cmocka_unit_test(test_fence_map_floor_and_own_slot),
	        cmocka_unit_test(test_fence_no_map),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
