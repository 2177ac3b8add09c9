/*
 * Unit tests for common/map_ring.h: the ring of map-changing entries the
 * coordinator answers deltas from. Each entry's text here names its epoch
 * ("e17"), so a listing can be checked against what was pushed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/errors.h"
#include "common/map_ring.h"

#define MAX_IOV 64

/* Push the entry of epoch e, padded with x to len bytes (len >= 8). */
static void push(struct narf_ring *r, uint64_t e, size_t len)
{
	char text[256];
	int k = snprintf(text, sizeof(text), "e%llu:", (unsigned long long)e);

	assert_true(len < sizeof(text) && (size_t)k <= len);
	memset(text + k, 'x', len - (size_t)k);
	assert_int_equal(narf_ring_push(r, e, text, len), 0);
}

/* The entries after epoch e, checked to be e+1 .. e+n in order with the
 * text each was pushed with; returns their count, or -1 for "full". */
static int since(const struct narf_ring *r, uint64_t e, size_t max_bytes)
{
	struct narf_iov iov[MAX_IOV];
	unsigned n;
	size_t bytes, sum = 0;
	int rv = narf_ring_since(r, e, max_bytes, iov, MAX_IOV, &n, &bytes);

	if (rv == NARF_ENOTFOUND) {
		assert_int_equal(n, 0);
		return -1;
	}
	assert_int_equal(rv, 0);
	for (unsigned i = 0; i < n; i++) {
		char want[32];
		int k = snprintf(want, sizeof(want),
		                 "e%llu:", (unsigned long long)(e + 1 + i));

		assert_true(iov[i].len >= (size_t)k);
		assert_memory_equal(iov[i].base, want, (size_t)k);
		for (size_t j = (size_t)k; j < iov[i].len; j++)
			assert_int_equal(iov[i].base[j], 'x');
		sum += iov[i].len;
	}
	assert_int_equal(sum, bytes);
	return (int)n;
}

/* Entries come back oldest first, from any held epoch to the newest; the
 * newest epoch has nothing to send, and one past it is refused. */
static void test_since_edges(void **state)
{
	struct narf_ring r;

	(void)state;
	assert_int_equal(narf_ring_init(&r, 8, 1024), 0);
	assert_int_equal(since(&r, 0, 1024), 0); /* empty at 0: current */
	assert_int_equal(since(&r, 1, 1024), -1);
	for (uint64_t e = 1; e <= 5; e++)
		push(&r, e, 10);
	assert_int_equal(narf_ring_first(&r), 1);
	assert_int_equal(since(&r, 0, 1024), 5); /* the oldest's base */
	assert_int_equal(since(&r, 3, 1024), 2);
	assert_int_equal(since(&r, 4, 1024), 1);
	assert_int_equal(since(&r, 5, 1024), 0);  /* current */
	assert_int_equal(since(&r, 6, 1024), -1); /* ahead of us */
	narf_ring_close(&r);
}

/* Past cap_entries the oldest go first: the base of the oldest held is
 * the earliest epoch answered; one before it gets "full". */
static void test_wrap_by_entries(void **state)
{
	struct narf_ring r;

	(void)state;
	assert_int_equal(narf_ring_init(&r, 4, 1 << 16), 0);
	for (uint64_t e = 1; e <= 11; e++)
		push(&r, e, 12);
	assert_int_equal(r.n, 4);
	assert_int_equal(narf_ring_first(&r), 8);
	assert_int_equal(since(&r, 7, 1 << 16), 4);
	assert_int_equal(since(&r, 6, 1 << 16), -1);
	assert_int_equal(since(&r, 10, 1 << 16), 1);
	assert_int_equal(r.bytes, 4 * 12);
	narf_ring_close(&r);
}

/* Past cap_bytes the oldest go first, an entry never wraps round the
 * arena's end (its text comes back whole), and mixed sizes keep every
 * held entry intact across many laps. */
static void test_wrap_by_bytes(void **state)
{
	struct narf_ring r;
	size_t held;

	(void)state;
	assert_int_equal(narf_ring_init(&r, 1000, 100), 0);
	for (uint64_t e = 1; e <= 500; e++) {
		push(&r, e, 8 + (size_t)(e * 7 % 37));
		held = 0;
		for (unsigned i = 0; i < r.n; i++)
			held += r.e[(r.head + i) % r.cap_entries].len;
		assert_int_equal(held, r.bytes);
		assert_true(r.bytes <= 100);
		/* every held epoch lists intact, down to the oldest */
		assert_int_equal(since(&r, narf_ring_first(&r) - 1, 100),
		                 (int)r.n);
		assert_int_equal(since(&r, narf_ring_first(&r) - 2, 100), -1);
	}
	/* exactly the arena's size fits alone; one byte more empties it */
	push(&r, 501, 100);
	assert_int_equal(r.n, 1);
	assert_int_equal(since(&r, 500, 100), 1);
	assert_int_equal(narf_ring_push(&r, 502, "x", 0), NARF_EINVAL);
	{
		char big[101];

		memset(big, 'x', sizeof(big));
		assert_int_equal(narf_ring_push(&r, 502, big, sizeof(big)), 0);
	}
	assert_int_equal(r.n, 0);
	assert_int_equal(since(&r, 502, 100), 0);
	assert_int_equal(since(&r, 501, 100), -1);
	push(&r, 503, 20); /* and it goes on from there */
	assert_int_equal(since(&r, 502, 100), 1);
	narf_ring_close(&r);
}

/* max_bytes turns a long catch-up into "full": the limit is inclusive,
 * and a shorter tail of the same ring still fits. */
static void test_max_bytes_full(void **state)
{
	struct narf_ring r;

	(void)state;
	assert_int_equal(narf_ring_init(&r, 16, 4096), 0);
	for (uint64_t e = 1; e <= 10; e++)
		push(&r, e, 10);
	assert_int_equal(since(&r, 0, 100), 10);
	assert_int_equal(since(&r, 0, 99), -1);
	assert_int_equal(since(&r, 5, 50), 5);
	assert_int_equal(since(&r, 5, 49), -1);
	/* more entries than the caller has room for: full as well */
	{
		struct narf_iov iov[3];
		unsigned n;
		size_t bytes;

		assert_int_equal(
		        narf_ring_since(&r, 6, 4096, iov, 3, &n, &bytes),
		        NARF_ENOTFOUND);
		assert_int_equal(
		        narf_ring_since(&r, 7, 4096, iov, 3, &n, &bytes), 0);
		assert_int_equal(n, 3);
	}
	narf_ring_close(&r);
}

/* After a snapshot restore (reset) every node behind it gets "full", a
 * node at it is current, and pushes go on from the new epoch; a gap in
 * the epochs empties the ring the same way. */
static void test_reset_and_gap(void **state)
{
	struct narf_ring r;

	(void)state;
	assert_int_equal(narf_ring_init(&r, 8, 1024), 0);
	for (uint64_t e = 1; e <= 4; e++)
		push(&r, e, 10);
	narf_ring_reset(&r, 40);
	assert_int_equal(since(&r, 3, 1024), -1);
	assert_int_equal(since(&r, 4, 1024), -1);
	assert_int_equal(since(&r, 40, 1024), 0);
	push(&r, 41, 10);
	push(&r, 42, 10);
	assert_int_equal(since(&r, 40, 1024), 2);
	push(&r, 50, 10); /* not 43: the ring cannot bridge it */
	assert_int_equal(r.n, 1);
	assert_int_equal(since(&r, 42, 1024), -1);
	assert_int_equal(since(&r, 49, 1024), 1);
	narf_ring_close(&r);
	narf_ring_close(&r); /* closing twice is harmless */
}

/* Bad bounds are refused at init. */
static void test_init_bounds(void **state)
{
	struct narf_ring r;

	(void)state;
	assert_int_equal(narf_ring_init(&r, 0, 10), NARF_EINVAL);
	assert_int_equal(narf_ring_init(&r, 10, 0), NARF_EINVAL);
	narf_ring_close(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_since_edges),
	        cmocka_unit_test(test_wrap_by_entries),
	        cmocka_unit_test(test_wrap_by_bytes),
	        cmocka_unit_test(test_max_bytes_full),
	        cmocka_unit_test(test_reset_and_gap),
	        cmocka_unit_test(test_init_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
