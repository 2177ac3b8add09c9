/*
 * Unit tests for common/dict.h: find, add and unlink at scale, incremental
 * grows and shrinks (finds mid-rehash, bounded work per call), the SCAN
 * guarantee across resizes in the middle of a scan, random, safe and unsafe
 * iteration, relink after a realloc, the bounded drain, and the memory
 * accounting of the bucket arrays.
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

#include "common/dict.h"
#include "common/errors.h"
#include "common/rng.h"

struct elem {
	struct narf_dict_node node; /* first, as dict.h wants */
	uint32_t seen;
	uint32_t len;
	char key[];
};

static const unsigned char *elem_key(const struct narf_dict_node *n,
                                     size_t *len)
{
	const struct elem *e = (const struct elem *)n;

	*len = e->len;
	return (const unsigned char *)e->key;
}

static const struct narf_dict_type elem_type = {elem_key};
static const uint8_t seed[16] = {1, 2,  3,  4,  5,  6,  7,  8,
                                 9, 10, 11, 12, 13, 14, 15, 16};
static uint64_t used;
static size_t freed;

static int key_of(char *buf, unsigned i)
{
	return snprintf(buf, 32, "key:%u", i);
}

static struct elem *elem_new(unsigned i)
{
	char buf[32];
	int len = key_of(buf, i);
	struct elem *e = calloc(1, sizeof(*e) + (size_t)len);

	assert_non_null(e);
	e->len = (uint32_t)len;
	memcpy(e->key, buf, (size_t)len);
	return e;
}

/* The i of an element's "key:<i>" (its key is not NUL-terminated). */
static unsigned idx_of(const struct elem *e)
{
	char buf[32];

	memcpy(buf, e->key + 4, e->len - 4);
	buf[e->len - 4] = '\0';
	return (unsigned)strtoul(buf, NULL, 10);
}

static void free_node(struct narf_dict_node *n, void *arg)
{
	(void)arg;
	freed++;
	free(n);
}

static void mk(struct narf_dict *d)
{
	used = 0;
	freed = 0;
	narf_dict_init(d, &elem_type, seed, &used);
}

/* *used is exactly the usable size of the bucket arrays held. */
static void check_used(const struct narf_dict *d)
{
	assert_int_equal(used, malloc_usable_size(d->t[0]) +
	                               malloc_usable_size(d->t[1]));
}

static void add(struct narf_dict *d, unsigned i)
{
	assert_int_equal(narf_dict_add(d, &elem_new(i)->node), 0);
}

static struct elem *find(struct narf_dict *d, unsigned i)
{
	char buf[32];
	int len = key_of(buf, i);

	return (struct elem *)narf_dict_find(d, buf, (size_t)len);
}

static void del(struct narf_dict *d, unsigned i)
{
	char buf[32];
	int len = key_of(buf, i);
	struct narf_dict_node *n = narf_dict_unlink(d, buf, (size_t)len);

	assert_non_null(n);
	free(n);
}

/* Unlink and free everything left, then close: *used must be 0. */
static void drop(struct narf_dict *d)
{
	while (narf_dict_drain(d, 1000, free_node, NULL) > 0)
		;
	narf_dict_close(d);
	assert_int_equal(used, 0);
}

/* An empty dict allocates nothing and answers every query with nothing. */
static void test_empty(void **state)
{
	struct narf_dict d;
	struct narf_dict_iter it;
	uint64_t rng = 1;

	(void)state;
	mk(&d);
	assert_int_equal(narf_dict_count(&d), 0);
	assert_null(find(&d, 1));
	assert_null(narf_dict_unlink(&d, "x", 1));
	assert_int_equal(narf_dict_scan(&d, 0, NULL, NULL), 0);
	assert_null(narf_dict_random(&d, &rng));
	narf_dict_iter_init(&it, &d, 1);
	assert_null(narf_dict_iter_next(&it));
	narf_dict_iter_close(&it);
	assert_int_equal(narf_dict_drain(&d, 10, free_node, NULL), 0);
	assert_int_equal(used, 0);
	narf_dict_close(&d);
	narf_dict_close(NULL);
}

/* 100k adds, finds of present and absent keys and unlinks stay right through
 * every grow and shrink, and the tables end at the minimum size. */
static void test_scale(void **state)
{
	struct narf_dict d;
	const unsigned n = 100000;

	(void)state;
	mk(&d);
	for (unsigned i = 0; i < n; i++) {
		add(&d, i);
		assert_int_equal(narf_dict_count(&d), i + 1);
	}
	check_used(&d);
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(find(&d, i)->len,
		                 strlen("key:") + 1 + (i >= 10) + (i >= 100) +
		                         (i >= 1000) + (i >= 10000));
	for (unsigned i = n; i < n + 1000; i++)
		assert_null(find(&d, i));
	for (unsigned i = 0; i < n; i += 2)
		del(&d, i);
	assert_int_equal(narf_dict_count(&d), n / 2);
	for (unsigned i = 0; i < n; i++)
		assert_true((find(&d, i) != NULL) == (i % 2 == 1));
	for (unsigned i = 1; i < n; i += 2)
		del(&d, i);
	assert_int_equal(narf_dict_count(&d), 0);
	while (narf_dict_rehash(&d, 100))
		;
	assert_int_equal(d.size[0], 4);
	check_used(&d);
	narf_dict_close(&d);
	assert_int_equal(used, 0);
}

/* Adding the element that reaches load 1 starts a doubling that each later
 * call moves by at most one bucket (plus 10 empty ones), and every element
 * is found in either table while it runs. */
static void test_grow_incremental(void **state)
{
	struct narf_dict d;
	unsigned n = 1024, calls = 0;

	(void)state;
	mk(&d);
	assert_int_equal(narf_dict_expand(&d, n), 0);
	assert_int_equal(d.size[0], n);
	for (unsigned i = 0; i < n; i++)
		add(&d, i);
	assert_int_equal(d.rehash, -1);
	add(&d, n); /* count == size: this add starts the grow */
	assert_true(d.rehash >= 0);
	assert_int_equal(d.size[1], 2 * n);
	check_used(&d);
	while (d.rehash >= 0) {
		int64_t before = d.rehash;
		unsigned i = calls % (n + 1);

		assert_non_null(find(&d, i));
		if (d.rehash >= 0)
			assert_true(d.rehash - before <= 11);
		calls++;
	}
	/* ~63% of 1024 buckets are non-empty: roughly that many calls. */
	assert_true(calls > n / 2 && calls <= n);
	assert_int_equal(d.size[0], 2 * n);
	assert_null(d.t[1]);
	for (unsigned i = 0; i <= n; i++)
		assert_non_null(find(&d, i));
	check_used(&d);
	drop(&d);
}

/* Unlinking under 10% starts an incremental shrink to the smallest power of
 * two that holds the rest; finds work mid-shrink; it never goes below 4. */
static void test_shrink_incremental(void **state)
{
	struct narf_dict d;
	unsigned n = 10000, i;

	(void)state;
	mk(&d);
	for (i = 0; i < n; i++)
		add(&d, i);
	while (narf_dict_rehash(&d, 1000))
		;
	assert_int_equal(d.size[0], 16384);
	for (i = 0; d.rehash < 0; i++)
		del(&d, i);
	/* The first unlink to leave count*10 < 16384 started it. */
	assert_int_equal(narf_dict_count(&d), 1638);
	assert_int_equal(d.size[1], 2048);
	check_used(&d);
	assert_true(d.rehash <= 11);
	for (unsigned j = i; j < n; j++)
		assert_non_null(find(&d, j));
	assert_null(find(&d, 0));
	while (narf_dict_rehash(&d, 1))
		;
	assert_int_equal(d.size[0], 2048);
	for (; i < n; i++)
		del(&d, i);
	while (narf_dict_rehash(&d, 1))
		;
	assert_int_equal(d.size[0], 4);
	check_used(&d);
	narf_dict_close(&d);
	assert_int_equal(used, 0);
}

static void mark_cb(void *arg, struct narf_dict_node *n)
{
	(void)arg;
	((struct elem *)n)->seen++;
}

/* Keys 0..base-1 stay for the whole scan; between its calls, extra keys are
 * added (grows) and then removed (shrinks), by `per_call` each call. */
static void scan_with_churn(unsigned base, unsigned extra, unsigned per_call)
{
	struct narf_dict d;
	struct elem **keep = calloc(base, sizeof(*keep));
	uint64_t cursor = 0, size = 0;
	unsigned next = base, low = base, calls = 0, grows = 0, shrinks = 0;
	int growing = 1;

	assert_non_null(keep);
	mk(&d);
	for (unsigned i = 0; i < base; i++) {
		keep[i] = elem_new(i);
		assert_int_equal(narf_dict_add(&d, &keep[i]->node), 0);
	}
	do {
		cursor = narf_dict_scan(&d, cursor, mark_cb, NULL);
		calls++;
		for (unsigned k = 0; k < per_call; k++) {
			if (growing && next < base + extra) {
				add(&d, next++);
			} else if (low < next) {
				growing = 0;
				del(&d, low++);
			} else {
				growing = 1; /* grow again */
				low = next = base;
			}
		}
		/* Count the resizes that completed mid-scan. */
		grows += d.size[0] > size && size != 0;
		shrinks += d.size[0] < size;
		size = d.size[0];
	} while (cursor != 0);
	for (unsigned i = 0; i < base; i++)
		assert_true(keep[i]->seen >= 1);
	assert_true(grows >= 1 && shrinks >= 1);
	free(keep);
	drop(&d);
}

/* SCAN returns every element present from its first call to its last at
 * least once while grows and shrinks run (and complete) between its calls. */
static void test_scan_resizes(void **state)
{
	(void)state;
	scan_with_churn(100, 5000, 50);  /* 128 -> 8192 -> 128 buckets */
	scan_with_churn(1000, 20000, 7); /* slow churn, many calls */
	scan_with_churn(500, 8000, 500); /* big jumps between calls */
	scan_with_churn(3, 2000, 1000);  /* resizes far bigger than the base */
}

/* SCAN with no resize returns every element exactly once, also when its
 * callback unlinks the element it is given. */
static void unlink_cb(void *arg, struct narf_dict_node *n)
{
	struct narf_dict *d = arg;
	const struct elem *e = (const struct elem *)n;

	assert_ptr_equal(narf_dict_unlink(d, e->key, e->len), n);
	free(n);
	freed++;
}

static void test_scan_exact(void **state)
{
	struct narf_dict d;
	uint64_t cursor = 0;
	struct elem *keep[500];

	(void)state;
	mk(&d);
	for (unsigned i = 0; i < 500; i++) {
		keep[i] = elem_new(i);
		assert_int_equal(narf_dict_add(&d, &keep[i]->node), 0);
	}
	while (narf_dict_rehash(&d, 100))
		;
	do
		cursor = narf_dict_scan(&d, cursor, mark_cb, NULL);
	while (cursor != 0);
	for (unsigned i = 0; i < 500; i++)
		assert_int_equal(keep[i]->seen, 1);
	/* A shrink starts during the unlinking scan but moves nothing. */
	do
		cursor = narf_dict_scan(&d, cursor, unlink_cb, &d);
	while (cursor != 0);
	assert_int_equal(freed, 500);
	assert_int_equal(narf_dict_count(&d), 0);
	drop(&d);
}

/* Random returns every element of a small dict within a few thousand draws,
 * also mid-rehash, and never anything not in the dict. */
static void test_random(void **state)
{
	struct narf_dict d;
	struct elem *keep[40];
	uint64_t rng = 42;
	unsigned n = 20;

	(void)state;
	mk(&d);
	for (unsigned i = 0; i < 40; i++)
		keep[i] = elem_new(i);
	for (unsigned round = 0; round < 2; round++) {
		for (unsigned i = round * n; i < (round + 1) * n; i++)
			assert_int_equal(narf_dict_add(&d, &keep[i]->node), 0);
		if (round == 1) /* the 33rd add started a grow to 64 */
			assert_true(d.rehash >= 0);
		for (unsigned i = 0; i < 40; i++)
			keep[i]->seen = 0;
		for (unsigned k = 0; k < 4000; k++) {
			struct elem *e =
			        (struct elem *)narf_dict_random(&d, &rng);
			unsigned idx = idx_of(e);

			assert_true(idx < (round + 1) * n);
			assert_ptr_equal(e, keep[idx]);
			e->seen++;
		}
		for (unsigned i = 0; i < (round + 1) * n; i++)
			assert_true(keep[i]->seen > 0);
	}
	drop(&d);
}

/* A safe iterator started mid-rehash pauses it, returns every element
 * exactly once while the caller unlinks and frees each one (or adds new
 * ones), and the rehash resumes after its close. */
static void test_safe_iter(void **state)
{
	struct narf_dict d;
	struct narf_dict_iter it;
	struct narf_dict_node *n;
	unsigned n0 = 64, got = 0, added = 0;

	(void)state;
	mk(&d);
	for (unsigned i = 0; i <= n0; i++)
		add(&d, i); /* the 65th add starts a grow */
	assert_true(d.rehash >= 0);
	narf_dict_iter_init(&it, &d, 1);
	int64_t at = d.rehash;
	while ((n = narf_dict_iter_next(&it)) != NULL) {
		struct elem *e = (struct elem *)n;
		unsigned idx = idx_of(e);

		assert_int_equal(e->seen, 0);
		e->seen = 1;
		got += idx <= n0;
		assert_int_equal(d.rehash, at); /* paused */
		if (idx % 2 == 0) {
			assert_ptr_equal(narf_dict_unlink(&d, e->key, e->len),
			                 n);
			free(n);
		} else if (added < 10) {
			add(&d, 1001 + 2 * added++); /* odd: kept */
		}
	}
	narf_dict_iter_close(&it);
	assert_int_equal(got, n0 + 1);
	assert_int_equal(narf_dict_count(&d), n0 / 2 + added);
	for (unsigned i = 0; i <= n0; i++)
		assert_true((find(&d, i) != NULL) == (i % 2 == 1));
	while (narf_dict_rehash(&d, 1))
		;
	drop(&d);
}

/* An unsafe iterator returns every element exactly once, mid-rehash too. */
static void test_iter(void **state)
{
	struct narf_dict d;
	struct narf_dict_iter it;
	struct narf_dict_node *n;
	unsigned got = 0;

	(void)state;
	mk(&d);
	for (unsigned i = 0; i < 600; i++)
		add(&d, i);
	assert_true(d.rehash >= 0); /* 600 > 512: growing to 1024 */
	narf_dict_iter_init(&it, &d, 0);
	while ((n = narf_dict_iter_next(&it)) != NULL) {
		assert_int_equal(((struct elem *)n)->seen++, 0);
		got++;
	}
	narf_dict_iter_close(&it);
	assert_int_equal(got, 600);
	drop(&d);
}

/* relink puts a realloc'd element in the old one's place in either table,
 * the successor kept, so it is found and the old address never touched. */
static void test_relink(void **state)
{
	struct narf_dict d;

	(void)state;
	mk(&d);
	for (unsigned i = 0; i < 600; i++)
		add(&d, i);
	assert_true(d.rehash >= 0);
	for (unsigned i = 0; i < 600; i++) {
		struct elem *e = find(&d, i), *moved;
		/* Only the address is kept: relink never reads old. */
		uintptr_t old = (uintptr_t)&e->node;

		moved = realloc(e, sizeof(*e) + e->len + 4096);
		assert_non_null(moved);
		narf_dict_relink(&d, (const struct narf_dict_node *)old,
		                 &moved->node);
		assert_ptr_equal(find(&d, i), moved);
	}
	for (unsigned i = 0; i < 600; i++)
		assert_non_null(find(&d, i));
	assert_int_equal(narf_dict_count(&d), 600);
	drop(&d);
}

/* A drain frees exactly its budget of elements per call (with the tables
 * kept) until none remain; then the tables are freed and *used is 0; also
 * when it starts mid-rehash. */
static void test_drain(void **state)
{
	struct narf_dict d;
	size_t left;
	unsigned calls = 0;

	(void)state;
	for (unsigned mid = 0; mid <= 1; mid++) {
		mk(&d);
		for (unsigned i = 0; i < 10000; i++)
			add(&d, i);
		if (!mid)
			while (narf_dict_rehash(&d, 100))
				;
		assert_true((d.rehash >= 0) == (mid == 1));
		left = 10000;
		calls = 0;
		while (left > 0) {
			size_t before = freed, now;

			now = narf_dict_drain(&d, 128, free_node, NULL);
			assert_int_equal(freed - before,
			                 left < 128 ? left : 128);
			assert_int_equal(now, left - (freed - before));
			left = now;
			if (left > 0)
				check_used(&d);
			calls++;
		}
		assert_int_equal(calls, (10000 + 127) / 128);
		assert_int_equal(freed, 10000);
		assert_int_equal(used, 0);
		assert_null(d.t[0]);
		narf_dict_close(&d);
		assert_int_equal(used, 0);
	}
}

/* The dict is usable after a complete drain, as an empty one. */
static void test_drain_reuse(void **state)
{
	struct narf_dict d;

	(void)state;
	mk(&d);
	for (unsigned i = 0; i < 50; i++)
		add(&d, i);
	assert_int_equal(narf_dict_drain(&d, 1000, free_node, NULL), 0);
	add(&d, 7);
	assert_non_null(find(&d, 7));
	assert_null(find(&d, 8));
	drop(&d);
}

/* expand sizes an empty dict at once and starts a grow on a full one; it
 * never shrinks. */
static void test_expand(void **state)
{
	struct narf_dict d;

	(void)state;
	mk(&d);
	assert_int_equal(narf_dict_expand(&d, 3), 0);
	assert_int_equal(d.size[0], 4);
	assert_int_equal(narf_dict_expand(&d, 1000), 0);
	assert_int_equal(d.size[1], 1024); /* a grow of an empty table */
	while (narf_dict_rehash(&d, 1))
		;
	assert_int_equal(d.size[0], 1024);
	assert_int_equal(narf_dict_expand(&d, 10), 0);
	assert_int_equal(d.size[0], 1024);
	assert_int_equal(d.rehash, -1);
	check_used(&d);
	narf_dict_close(&d);
	assert_int_equal(used, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_empty),
	        cmocka_unit_test(test_scale),
	        cmocka_unit_test(test_grow_incremental),
	        cmocka_unit_test(test_shrink_incremental),
	        cmocka_unit_test(test_scan_resizes),
	        cmocka_unit_test(test_scan_exact),
	        cmocka_unit_test(test_random),
	        cmocka_unit_test(test_safe_iter),
	        cmocka_unit_test(test_iter),
	        cmocka_unit_test(test_relink),
	        cmocka_unit_test(test_drain),
	        cmocka_unit_test(test_drain_reuse),
	        cmocka_unit_test(test_expand),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
