/*
 * Unit tests for common/intset.h: exact bytes, the 16 -> 32 -> 64-bit
 * upgrades with negative and positive values at every boundary, add and
 * remove, get and random, validate on broken input, and a seeded random run
 * against a sorted array model.
 */
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/errors.h"
#include "common/intset.h"
#include "common/rng.h"

static uint64_t used;

static unsigned char *mk(void)
{
	unsigned char *is = NULL;

	used = 0;
	assert_int_equal(narf_intset_create(&is, &used), 0);
	return is;
}

static void drop(unsigned char *is)
{
	narf_intset_destroy(is, &used);
	assert_int_equal(used, 0);
}

static void add(unsigned char **is, int64_t v, bool want_added)
{
	bool added;

	assert_int_equal(narf_intset_add(is, &used, v, &added), 0);
	assert_int_equal(added, want_added);
	assert_int_equal(used, malloc_usable_size(*is));
	assert_int_equal(narf_intset_validate(*is, narf_intset_bytes(*is)), 0);
}

/* The intset holds exactly want[0..n), in order, each found. */
static void expect(const unsigned char *is, const int64_t *want, uint32_t n)
{
	int64_t v;

	assert_int_equal(narf_intset_validate(is, narf_intset_bytes(is)), 0);
	assert_int_equal(narf_intset_count(is), n);
	for (uint32_t i = 0; i < n; i++) {
		assert_true(narf_intset_get(is, i, &v));
		assert_int_equal(v, want[i]);
		assert_true(narf_intset_find(is, want[i]));
	}
	assert_false(narf_intset_get(is, n, &v));
}

/* An empty intset is its 8-byte header with 2-byte elements, and finds,
 * gets and removes nothing. */
static void test_empty(void **state)
{
	unsigned char *is = mk();
	static const unsigned char want[] = {2, 0, 0, 0, 0, 0, 0, 0};
	int64_t v;

	(void)state;
	assert_memory_equal(is, want, sizeof(want));
	assert_int_equal(narf_intset_bytes(is), 8);
	assert_false(narf_intset_find(is, 0));
	assert_false(narf_intset_get(is, 0, &v));
	assert_false(narf_intset_remove(&is, &used, 0));
	assert_int_equal(narf_intset_validate(is, 8), 0);
	assert_int_equal(used, malloc_usable_size(is));
	drop(is);
}

/* The bytes are the documented format: width, count, little-endian
 * two's-complement elements in increasing order. */
static void test_exact_bytes(void **state)
{
	unsigned char *is = mk();
	static const unsigned char want16[] = {2, 0,    0,    0, 3, 0,    0,
	                                       0, 0xFF, 0xFF, 1, 0, 0x34, 0x12};
	static const unsigned char want32[] = {
	        4, 0, 0, 0, 4,    0,    0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
	        1, 0, 0, 0, 0x34, 0x12, 0, 0, 0,    0,    1,    0};

	(void)state;
	add(&is, 0x1234, true);
	add(&is, -1, true);
	add(&is, 1, true);
	assert_int_equal(narf_intset_bytes(is), sizeof(want16));
	assert_memory_equal(is, want16, sizeof(want16));
	add(&is, 0x10000, true);
	assert_int_equal(narf_intset_bytes(is), sizeof(want32));
	assert_memory_equal(is, want32, sizeof(want32));
	drop(is);
}

/* Values just past each width upgrade the set in place, positive ones going
 * last and negative ones first, every old element kept; the width never
 * narrows again after removes. */
static void test_upgrades(void **state)
{
	unsigned char *is = mk();
	static const int64_t want[] = {
	        INT64_MIN, (int64_t)INT32_MIN - 1,
	        INT32_MIN, INT16_MIN - 1,
	        INT16_MIN, -1,
	        0,         1,
	        INT16_MAX, INT16_MAX + 1,
	        INT32_MAX, (int64_t)INT32_MAX + 1,
	        INT64_MAX,
	};

	(void)state;
	add(&is, 0, true);
	add(&is, INT16_MAX, true);
	add(&is, INT16_MIN, true);
	add(&is, -1, true);
	add(&is, 1, true);
	assert_int_equal(narf_intset_enc(is), 2);
	add(&is, INT16_MAX + 1, true); /* 16 -> 32, appended */
	assert_int_equal(narf_intset_enc(is), 4);
	add(&is, INT16_MIN - 1, true); /* fits 32: inserted */
	add(&is, INT32_MIN, true);
	add(&is, INT32_MAX, true);
	assert_int_equal(narf_intset_enc(is), 4);
	add(&is, (int64_t)INT32_MIN - 1, true); /* 32 -> 64, prepended */
	assert_int_equal(narf_intset_enc(is), 8);
	add(&is, (int64_t)INT32_MAX + 1, true);
	add(&is, INT64_MAX, true);
	add(&is, INT64_MIN, true);
	expect(is, want, 13);
	for (size_t i = 0; i < 13; i++)
		add(&is, want[i], false);
	expect(is, want, 13);
	for (size_t i = 0; i < 13; i++)
		assert_true(narf_intset_remove(&is, &used, want[i]));
	assert_int_equal(narf_intset_count(is), 0);
	assert_int_equal(narf_intset_enc(is), 8);
	assert_int_equal(used, malloc_usable_size(is));
	drop(is);
}

/* A first value that needs 64 bits upgrades an empty set straight from 16,
 * and a negative one upgrades a set of positives by prepending. */
static void test_upgrade_direct(void **state)
{
	unsigned char *is = mk();
	static const int64_t want[] = {-5000000000ll, 3, 4};

	(void)state;
	add(&is, 3, true);
	add(&is, 4, true);
	add(&is, -5000000000ll, true);
	assert_int_equal(narf_intset_enc(is), 8);
	expect(is, want, 3);
	drop(is);

	is = mk();
	add(&is, INT64_MIN, true);
	assert_int_equal(narf_intset_enc(is), 8);
	assert_int_equal(narf_intset_count(is), 1);
	drop(is);
}

/* Remove takes out exactly the value asked for, refuses absent ones
 * (including ones wider than the set's width), and gives memory back. */
static void test_remove(void **state)
{
	unsigned char *is = mk();
	static const int64_t want[] = {-30, -10, 10, 30};

	(void)state;
	for (int64_t v = -30; v <= 30; v += 10)
		add(&is, v, true);
	assert_true(narf_intset_remove(&is, &used, 0));
	assert_false(narf_intset_remove(&is, &used, 0));
	assert_false(narf_intset_remove(&is, &used, 5));
	assert_false(narf_intset_remove(&is, &used, 1 << 20));
	assert_false(narf_intset_remove(&is, &used, INT64_MIN));
	assert_true(narf_intset_remove(&is, &used, -20));
	assert_true(narf_intset_remove(&is, &used, 20));
	assert_int_equal(used, malloc_usable_size(is));
	expect(is, want, 4);
	assert_false(narf_intset_find(is, 1 << 20));
	assert_false(narf_intset_find(is, -31));
	assert_false(narf_intset_find(is, 31));
	drop(is);
}

/* Random returns only members, and every member of a small set within a
 * few thousand draws. */
static void test_random(void **state)
{
	unsigned char *is = mk();
	unsigned seen[20] = {0};
	uint64_t rng = 7;

	(void)state;
	for (int64_t v = 0; v < 20; v++)
		add(&is, v * 1000 - 9000, true);
	for (int k = 0; k < 2000; k++) {
		int64_t v = narf_intset_random(is, &rng);

		assert_true(narf_intset_find(is, v));
		seen[(v + 9000) / 1000]++;
	}
	for (int i = 0; i < 20; i++)
		assert_true(seen[i] > 0);
	drop(is);
}

/* validate accepts well-formed bytes of each width and refuses unsorted,
 * duplicate, bad-width, truncated, overlong and short-header input. */
static void test_validate(void **state)
{
	static const unsigned char ok16[] = {2, 0, 0,    0,    2, 0,
	                                     0, 0, 0xFE, 0xFF, 7, 0};
	static const unsigned char ok64[] = {8, 0, 0, 0, 1, 0, 0, 0,
	                                     0, 0, 0, 0, 0, 0, 0, 0x80};
	/* Wider than needed is allowed: Redis never narrows either. */
	static const unsigned char wide[] = {4, 0, 0, 0, 1, 0,
	                                     0, 0, 1, 0, 0, 0};
	static const unsigned char unsorted[] = {2, 0, 0, 0, 2,    0,
	                                         0, 0, 7, 0, 0xFE, 0xFF};
	static const unsigned char dup[] = {2, 0, 0, 0, 2, 0, 0, 0, 7, 0, 7, 0};
	static const unsigned char enc0[] = {0, 0, 0, 0, 0, 0, 0, 0};
	static const unsigned char enc3[] = {3, 0, 0, 0, 1, 0, 0, 0, 1, 2, 3};
	static const unsigned char enc16[] = {16, 0, 0, 0, 0, 0, 0, 0};
	static const unsigned char enc_hi[] = {2, 0, 0, 1, 0, 0, 0, 0};
	static const unsigned char huge[] = {8,    0,    0,    0,
	                                     0xFF, 0xFF, 0xFF, 0xFF};
	unsigned char buf[64];

	(void)state;
	assert_int_equal(narf_intset_validate(ok16, sizeof(ok16)), 0);
	assert_int_equal(narf_intset_validate(ok64, sizeof(ok64)), 0);
	assert_int_equal(narf_intset_validate(wide, sizeof(wide)), 0);
	assert_int_equal(narf_intset_validate(unsorted, sizeof(unsorted)),
	                 NARF_EPROTO);
	assert_int_equal(narf_intset_validate(dup, sizeof(dup)), NARF_EPROTO);
	assert_int_equal(narf_intset_validate(enc0, sizeof(enc0)), NARF_EPROTO);
	assert_int_equal(narf_intset_validate(enc3, sizeof(enc3)), NARF_EPROTO);
	assert_int_equal(narf_intset_validate(enc16, sizeof(enc16)),
	                 NARF_EPROTO);
	assert_int_equal(narf_intset_validate(enc_hi, sizeof(enc_hi)),
	                 NARF_EPROTO);
	assert_int_equal(narf_intset_validate(huge, sizeof(huge)), NARF_EPROTO);
	assert_int_equal(narf_intset_validate(NULL, 0), NARF_EPROTO);
	/* Every truncation, and one byte too many. */
	for (size_t n = 0; n < sizeof(ok16); n++)
		assert_int_equal(narf_intset_validate(ok16, n), NARF_EPROTO);
	memcpy(buf, ok16, sizeof(ok16));
	buf[sizeof(ok16)] = 0;
	assert_int_equal(narf_intset_validate(buf, sizeof(ok16) + 1),
	                 NARF_EPROTO);
	/* The count says 3 where 2 are. */
	buf[4] = 3;
	assert_int_equal(narf_intset_validate(buf, sizeof(ok16)), NARF_EPROTO);
}

/* A model: a sorted array of distinct values. */
struct model {
	int64_t v[600];
	uint32_t n;
};

static bool model_add(struct model *m, int64_t v)
{
	uint32_t i = 0;

	while (i < m->n && m->v[i] < v)
		i++;
	if (i < m->n && m->v[i] == v)
		return false;
	memmove(m->v + i + 1, m->v + i, (m->n - i) * sizeof(m->v[0]));
	m->v[i] = v;
	m->n++;
	return true;
}

static bool model_remove(struct model *m, int64_t v)
{
	for (uint32_t i = 0; i < m->n; i++) {
		if (m->v[i] == v) {
			memmove(m->v + i, m->v + i + 1,
			        (m->n - i - 1) * sizeof(m->v[0]));
			m->n--;
			return true;
		}
	}
	return false;
}

/* A value of a random width, small ones often so that adds collide. */
static int64_t pick(uint64_t *rng)
{
	uint64_t r = narf_rng_next(rng);

	switch (r % 4) {
	case 0:
		return (int64_t)(r >> 8) % 50 - 25;
	case 1:
		return (int16_t)(r >> 16);
	case 2:
		return (int32_t)(r >> 16);
	default:
		return (int64_t)narf_rng_next(rng);
	}
}

/* Seeded random adds, removes and finds agree with the model after every
 * step, up to 600 elements (past set-max-intset-entries), with *used
 * exact. */
static void test_random_model(void **state)
{
	static struct model m;
	uint64_t rng = 12345;
	unsigned char *is;

	(void)state;
	for (int round = 0; round < 8; round++) {
		is = mk();
		m.n = 0;
		for (int step = 0; step < 1500; step++) {
			uint64_t op = narf_rng_next(&rng) % 10;
			int64_t v = pick(&rng);
			bool added;

			/* Early rounds stay narrow to reach many elements. */
			if (round < 4)
				v = (int16_t)v;
			if (op < 6 && m.n < 600) {
				assert_int_equal(
				        narf_intset_add(&is, &used, v, &added),
				        0);
				assert_int_equal(added, model_add(&m, v));
			} else if (op < 9) {
				if (m.n > 0 && op == 8)
					v = m.v[narf_rng_next(&rng) % m.n];
				assert_int_equal(
				        narf_intset_remove(&is, &used, v),
				        model_remove(&m, v));
			} else {
				bool in = false;
				for (uint32_t i = 0; i < m.n; i++)
					in = in || m.v[i] == v;
				assert_int_equal(narf_intset_find(is, v), in);
			}
			assert_int_equal(used, malloc_usable_size(is));
			if (step % 50 == 0 || step == 1499)
				expect(is, m.v, m.n);
		}
		drop(is);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_empty),
	        cmocka_unit_test(test_exact_bytes),
	        cmocka_unit_test(test_upgrades),
	        cmocka_unit_test(test_upgrade_direct),
	        cmocka_unit_test(test_remove),
	        cmocka_unit_test(test_random),
	        cmocka_unit_test(test_validate),
	        cmocka_unit_test(test_random_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
