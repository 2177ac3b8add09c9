/*
 * Unit tests for common/store.h's expiry, eviction and memory: lazy and
 * active expiry, KEEPTTL and set_expire, allkeys-lru and noeviction under
 * max_memory, used_memory back to its baseline, lazy slot drops and their
 * reaping, the removed callback, and replica slots (expired keys hidden but
 * kept, never evicted). The tables, SCAN and the rest are test_store.c's.
 * Fixture: store_fixture.c.
 *
 * Time is injected (every call takes now_ms), so expiry and LRU ages are
 * driven by a fake clock and nothing here sleeps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/store.h"
#include "store_fixture.h"

/* A lazy drop empties the slot at once (count, TTL count, lookups, a new
 * key in it) while the entries' memory stays counted until reaping, which
 * frees about `budget` a call and brings memory back to what it was; a
 * store destroyed with graves left frees them (ASan checks the leak). */
static void test_drop_slot_lazy(void **state)
{
	struct narf_store *s = new_store(0, NARF_EVICT_ALLKEYS_LRU);
	unsigned a = narf_slot_of("{a}", 3), b = narf_slot_of("{b}", 3);
	uint64_t base = narf_store_used_memory(s), full;
	unsigned calls = 0;
	char k[32];

	(void)state;
	for (int i = 0; i < 5000; i++) {
		snprintf(k, sizeof(k), "{a}:%d", i);
		assert_int_equal(set(s, k, "x", i % 5 ? 0 : T0 + 100000, T0),
		                 0);
	}
	assert_int_equal(set(s, "{b}:1", "y", 0, T0), 0);
	full = narf_store_used_memory(s);
	narf_store_drop_slot_lazy(s, a);
	assert_int_equal(narf_store_slot_count(s, a), 0);
	assert_int_equal(narf_store_count(s), 1);
	assert_int_equal(stats(s).keys_with_ttl, 0);
	assert_int_equal(stats(s).lazyfree_pending, 5000);
	assert_null(get(s, "{a}:7", T0));
	assert_true(narf_store_used_memory(s) >= full);
	/* The slot takes new keys while its old ones wait to be freed. */
	assert_int_equal(set(s, "{a}:new", "z", 0, T0), 0);
	assert_true(has_value(s, "{a}:new", "z", T0));
	while (narf_store_reap(s, 100)) {
		calls++;
		assert_true(calls < 1000);
	}
	/* 5000 entries and their buckets at about 100 a call. */
	assert_true(calls >= 40);
	assert_int_equal(stats(s).lazyfree_pending, 0);
	assert_true(has_value(s, "{b}:1", "y", T0));
	assert_int_equal(narf_store_slot_count(s, a), 1);
	assert_true(del(s, "{a}:new", T0));
	assert_true(del(s, "{b}:1", T0));
	narf_store_cron(s, 1000000);
	assert_int_equal(narf_store_used_memory(s), base);
	/* Small slots are freed at once; graves left at destroy are freed. */
	assert_int_equal(set(s, "{b}:2", "y", 0, T0), 0);
	narf_store_drop_slot_lazy(s, b);
	assert_int_equal(stats(s).lazyfree_pending, 0);
	for (int i = 0; i < 500; i++) {
		snprintf(k, sizeof(k), "{a}:%d", i);
		assert_int_equal(set(s, k, "x", 0, T0), 0);
	}
	narf_store_drop_slot_lazy(s, a);
	assert_int_equal(stats(s).lazyfree_pending, 500);
	narf_store_destroy(s);
}

/* Under maxmemory, memory of a lazily dropped slot is freed before any
 * live key is evicted to make room. */
static void test_lazy_drop_frees_before_evicting(void **state)
{
	struct narf_store *s = new_store(0, NARF_EVICT_ALLKEYS_LRU);
	unsigned a = narf_slot_of("{a}", 3);
	char k[32];

	(void)state;
	for (int i = 0; i < 3000; i++) {
		snprintf(k, sizeof(k), "{a}:%d", i);
		assert_int_equal(set(s, k, "some value", 0, T0), 0);
	}
	for (int i = 0; i < 100; i++) {
		snprintf(k, sizeof(k), "{b}:%d", i);
		assert_int_equal(set(s, k, "live", 0, T0), 0);
	}
	narf_store_set_limits(s, narf_store_used_memory(s),
	                      NARF_EVICT_ALLKEYS_LRU);
	narf_store_drop_slot_lazy(s, a);
	assert_int_equal(stats(s).lazyfree_pending, 3000);
	for (int i = 0; i < 2000; i++) {
		snprintf(k, sizeof(k), "{c}:%d", i);
		assert_int_equal(set(s, k, "new value", 0, T0), 0);
	}
	assert_int_equal(stats(s).evicted, 0);
	assert_true(has_value(s, "{b}:99", "live", T0));
	assert_true(stats(s).lazyfree_pending < 3000);
	narf_store_destroy(s);
}

/* A key lives until the clock passes its deadline, then get, del and set
 * each treat it as gone, reclaim it and report it as expired. */
static void test_lazy_expiry(void **state)
{
	struct narf_store *s = new_store(0, NARF_EVICT_ALLKEYS_LRU);
	struct removed r = {0};

	(void)state;
	narf_store_set_removed_cb(s, removed_cb, &r);
	assert_int_equal(set(s, "k1", "v", T0 + 100, T0), 0);
	assert_int_equal(narf_entry_expire(get(s, "k1", T0)), T0 + 100);
	assert_int_equal(stats(s).keys_with_ttl, 1);
	assert_non_null(get(s, "k1", T0 + 100)); /* as Redis: now > when */
	assert_null(get(s, "k1", T0 + 101));
	assert_int_equal(r.expired, 1);
	assert_string_equal(r.last, "k1");
	assert_int_equal(narf_store_count(s), 0);
	assert_int_equal(stats(s).keys_with_ttl, 0);
	assert_int_equal(stats(s).expired, 1);

	assert_int_equal(set(s, "k2", "v", T0 + 100, T0), 0);
	assert_false(del(s, "k2", T0 + 200));
	assert_int_equal(r.expired, 2);

	/* Setting over an expired key starts afresh, even with KEEPTTL. */
	assert_int_equal(set(s, "k3", "v", T0 + 100, T0), 0);
	assert_int_equal(set(s, "k3", "w", NARF_STORE_KEEPTTL, T0 + 200), 0);
	assert_int_equal(r.expired, 3);
	assert_int_equal(narf_entry_expire(get(s, "k3", T0 + 200)), 0);
	assert_int_equal(narf_store_count(s), 1);
	assert_int_equal(stats(s).keys_with_ttl, 0);
	narf_store_destroy(s);
}

/* KEEPTTL keeps the old deadline through a replace, a plain set drops it,
 * and set_expire adds, moves and removes one with the counts following. */
static void test_keepttl_and_set_expire(void **state)
{
	struct narf_store *s = new_store(0, NARF_EVICT_ALLKEYS_LRU);
	unsigned slot = narf_slot_of("k", 1);
	struct narf_entry *e;

	(void)state;
	assert_int_equal(set(s, "k", "v1", T0 + 5000, T0), 0);
	assert_int_equal(set(s, "k", "v2-longer", NARF_STORE_KEEPTTL, T0), 0);
	assert_int_equal(narf_entry_expire(get(s, "k", T0)), T0 + 5000);
	assert_true(has_value(s, "k", "v2-longer", T0));
	assert_int_equal(stats(s).keys_with_ttl, 1);
	assert_int_equal(set(s, "k", "v3", 0, T0), 0);
	assert_int_equal(narf_entry_expire(get(s, "k", T0)), 0);
	assert_int_equal(stats(s).keys_with_ttl, 0);
	/* KEEPTTL on a new key means no TTL. */
	assert_int_equal(set(s, "n", "v", NARF_STORE_KEEPTTL, T0), 0);
	assert_int_equal(narf_entry_expire(get(s, "n", T0)), 0);

	e = narf_store_set_expire(s, slot, get(s, "k", T0), T0 + 10);
	assert_non_null(e);
	assert_int_equal(narf_entry_expire(e), T0 + 10);
	assert_true(has_value(s, "k", "v3", T0));
	assert_int_equal(stats(s).keys_with_ttl, 1);
	e = narf_store_set_expire(s, slot, e, T0 + 20);
	assert_int_equal(narf_entry_expire(get(s, "k", T0)), T0 + 20);
	e = narf_store_set_expire(s, slot, e, 0);
	assert_int_equal(narf_entry_expire(e), 0);
	assert_true(has_value(s, "k", "v3", T0 + 100));
	assert_int_equal(stats(s).keys_with_ttl, 0);
	narf_store_destroy(s);
}

/* Active expiry reclaims no more than max_checks keys per call, never a
 * live key, and given enough calls reclaims every expired one. */
static void test_active_expiry_bounded(void **state)
{
	struct narf_store *s = new_store(0, NARF_EVICT_ALLKEYS_LRU);
	struct removed r = {0};
	unsigned total = 0, calls = 0;
	char k[32];

	(void)state;
	narf_store_set_removed_cb(s, removed_cb, &r);
	for (int i = 0; i < 3000; i++) {
		int64_t exp = i % 3 == 0   ? T0 + 1000
		              : i % 3 == 1 ? 0
		                           : T0 + 1000000000LL;

		snprintf(k, sizeof(k), "k:%d", i);
		assert_int_equal(set(s, k, "v", exp, T0), 0);
	}
	/* Before the deadline nothing goes. */
	assert_int_equal(narf_store_active_expire(s, T0, 100000), 0);
	while (stats(s).keys_with_ttl > 1000) {
		unsigned n = narf_store_active_expire(s, T0 + 2000, 50);

		assert_true(n <= 50);
		total += n;
		assert_true(++calls < 10000);
	}
	assert_int_equal(total, 1000);
	assert_int_equal(r.expired, 1000);
	assert_int_equal(narf_store_count(s), 2000);
	assert_int_equal(stats(s).expired, 1000);
	/* 3000 entries at 50 checks a call: a couple of laps at most. */
	assert_true(calls <= 2 * 3000 / 50 + 10);
	assert_true(has_value(s, "k:1", "v", T0 + 2000));
	assert_true(has_value(s, "k:2", "v", T0 + 2000));
	narf_store_destroy(s);
}

/* With a memory limit and allkeys-lru, writes evict the least recently
 * used keys: of 1000 old keys, the 100 touched recently survive a fill
 * that evicts hundreds, while the untouched ones go. */
static void test_eviction_prefers_old_keys(void **state)
{
	struct narf_store *s = new_store(0, NARF_EVICT_ALLKEYS_LRU);
	struct removed r = {0};
	unsigned touched_alive = 0, untouched_alive = 0;
	uint64_t limit;
	char k[32];

	(void)state;
	narf_store_set_removed_cb(s, removed_cb, &r);
	for (int i = 0; i < 1000; i++) {
		snprintf(k, sizeof(k), "k:%d", i);
		assert_int_equal(
		        set(s, k, "0123456789abcdef0123456789abcdef", 0, T0),
		        0);
	}
	for (int i = 0; i < 1000; i += 10) {
		snprintf(k, sizeof(k), "k:%d", i);
		assert_non_null(get(s, k, T0 + 100000));
	}
	limit = narf_store_used_memory(s);
	narf_store_set_limits(s, limit, NARF_EVICT_ALLKEYS_LRU);
	for (int i = 0; i < 400; i++) {
		snprintf(k, sizeof(k), "new:%d", i);
		assert_int_equal(set(s, k, "0123456789abcdef0123456789abcdef",
		                     0, T0 + 200000),
		                 0);
		assert_true(narf_store_used_memory(s) <= limit);
	}
	for (int i = 0; i < 1000; i++) {
		snprintf(k, sizeof(k), "k:%d", i);
		if (narf_store_get(s, narf_slot_of(k, strlen(k)), k, strlen(k),
		                   T0 + 200000, NARF_STORE_NOTOUCH) == NULL)
			continue;
		if (i % 10 == 0)
			touched_alive++;
		else
			untouched_alive++;
	}
	assert_true(r.evicted >= 350);
	assert_int_equal(r.evicted, stats(s).evicted);
	assert_int_equal(r.expired, 0);
	assert_true(touched_alive >= 90);
	assert_true(untouched_alive <= 900 - 300);
	narf_store_destroy(s);
}

/* Under allkeys-lru the store stays within max_memory after every write,
 * and make_room() evicts down to the limit. */
static void test_eviction_respects_limit(void **state)
{
	struct narf_store *s = new_store(0, NARF_EVICT_ALLKEYS_LRU);
	uint64_t limit;
	char k[32];

	(void)state;
	limit = narf_store_used_memory(s) + 64 * 1024;
	narf_store_set_limits(s, limit, NARF_EVICT_ALLKEYS_LRU);
	for (int i = 0; i < 20000; i++) {
		snprintf(k, sizeof(k), "key:%012d", i);
		assert_int_equal(set(s, k, "0123456789abcdef0123456789abcdef",
		                     0, T0 + i * 10),
		                 0);
		assert_true(narf_store_used_memory(s) <= limit);
	}
	assert_true(stats(s).evicted > 15000);
	narf_store_set_limits(s, limit - 32 * 1024, NARF_EVICT_ALLKEYS_LRU);
	assert_int_equal(narf_store_make_room(s, 0, T0), 0);
	assert_true(narf_store_used_memory(s) <= limit - 32 * 1024);
	/* A limit below the empty store's own size cannot be met. */
	narf_store_set_limits(s, 1, NARF_EVICT_ALLKEYS_LRU);
	assert_int_equal(narf_store_make_room(s, 0, T0), NARF_EOOM);
	assert_int_equal(narf_store_count(s), 0);
	narf_store_destroy(s);
}

/* Under noeviction a write that would grow the store past the limit fails
 * with NARF_EOOM and changes nothing, while writes that do not grow it
 * (same or smaller value) still succeed. */
static void test_noeviction_oom(void **state)
{
	struct narf_store *s = new_store(0, NARF_EVICT_NOEVICTION);
	uint64_t used, count;
	char k[32];

	(void)state;
	for (int i = 0; i < 100; i++) {
		snprintf(k, sizeof(k), "k:%d", i);
		assert_int_equal(set(s, k, "0123456789abcdef", 0, T0), 0);
	}
	narf_store_set_limits(s, narf_store_used_memory(s),
	                      NARF_EVICT_NOEVICTION);
	used = narf_store_used_memory(s);
	count = narf_store_count(s);
	assert_int_equal(narf_store_make_room(s, 0, T0), 0);
	assert_int_equal(narf_store_make_room(s, 1, T0), NARF_EOOM);
	assert_int_equal(set(s, "new", "v", 0, T0), NARF_EOOM);
	assert_int_equal(
	        set(s, "k:1", "a value far bigger than the old one", 0, T0),
	        NARF_EOOM);
	assert_int_equal(narf_store_used_memory(s), used);
	assert_int_equal(narf_store_count(s), count);
	assert_null(get(s, "new", T0));
	assert_true(has_value(s, "k:1", "0123456789abcdef", T0));
	assert_int_equal(stats(s).evicted, 0);
	/* Replacing with a value of the same or smaller size is fine. */
	assert_int_equal(set(s, "k:1", "fedcba9876543210", 0, T0), 0);
	assert_int_equal(set(s, "k:2", "x", 0, T0), 0);
	assert_true(narf_store_used_memory(s) <= used);
	/* So is deleting, after which a new key fits again. */
	assert_true(del(s, "k:3", T0));
	assert_int_equal(set(s, "new", "v", 0, T0), 0);
	/* Over the limit (it was lowered), even a 0-byte check fails. */
	narf_store_set_limits(s, used / 2, NARF_EVICT_NOEVICTION);
	assert_int_equal(narf_store_make_room(s, 0, T0), NARF_EOOM);
	narf_store_destroy(s);
}

/* used_memory counts every allocation and comes back to the empty store's
 * baseline after deleting, dropping or flushing everything; 16384 empty
 * slots cost well under 2 MiB. */
static void test_memory_returns_to_baseline(void **state)
{
	struct narf_store *s = new_store(0, NARF_EVICT_ALLKEYS_LRU);
	uint64_t base = narf_store_used_memory(s);
	char k[32];

	(void)state;
	assert_true(base < 1024 * 1024);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 20000; i++) {
			snprintf(k, sizeof(k), "key:%d", i);
			assert_int_equal(set(s, k, "some value",
			                     i % 2 ? T0 + 1000000 : 0, T0),
			                 0);
		}
		/* Add and remove expiries, which rebuilds entries. */
		for (int i = 0; i < 20000; i += 3) {
			unsigned slot;
			struct narf_entry *e;

			snprintf(k, sizeof(k), "key:%d", i);
			slot = narf_slot_of(k, strlen(k));
			e = get(s, k, T0);
			narf_store_set_expire(
			        s, slot, e, narf_entry_expire(e) ? 0 : T0 + 5);
		}
		assert_true(narf_store_used_memory(s) > base + 20000 * 48);
		if (round == 0) {
			for (int i = 0; i < 20000; i++) {
				snprintf(k, sizeof(k), "key:%d", i);
				assert_true(del(s, k, T0));
			}
		} else if (round == 1) {
			for (unsigned sl = 0; sl < NARF_SLOTS; sl++)
				narf_store_drop_slot(s, sl);
		} else {
			narf_store_flush(s);
		}
		narf_store_cron(s, 1000000);
		assert_int_equal(narf_store_count(s), 0);
		assert_int_equal(stats(s).keys_with_ttl, 0);
		assert_int_equal(narf_store_used_memory(s), base);
	}
	narf_store_destroy(s);
}

/* The removed callback hears about lazy and active expiry and about
 * eviction, but not about client deletes or flushes. */
static void test_removed_callback(void **state)
{
	struct narf_store *s = new_store(0, NARF_EVICT_ALLKEYS_LRU);
	struct removed r = {0};

	(void)state;
	narf_store_set_removed_cb(s, removed_cb, &r);
	assert_int_equal(set(s, "lazy", "v", T0 + 1, T0), 0);
	assert_int_equal(set(s, "active", "v", T0 + 1, T0), 0);
	assert_int_equal(set(s, "deleted", "v", T0 + 1, T0), 0);
	assert_true(del(s, "deleted", T0));
	assert_null(get(s, "lazy", T0 + 5));
	assert_string_equal(r.last, "lazy");
	assert_int_equal(narf_store_active_expire(s, T0 + 5, 100), 1);
	assert_string_equal(r.last, "active");
	assert_int_equal(r.expired, 2);
	assert_int_equal(r.evicted, 0);
	assert_int_equal(set(s, "old", "v", 0, T0), 0);
	narf_store_set_limits(s, narf_store_used_memory(s),
	                      NARF_EVICT_ALLKEYS_LRU);
	assert_int_equal(set(s, "new", "v", 0, T0 + 5000), 0);
	assert_int_equal(r.evicted, 1);
	assert_string_equal(r.last, "old");
	narf_store_flush(s);
	assert_int_equal(r.expired + r.evicted, 3);
	narf_store_destroy(s);
}

/* A value that points into another entry (as RENAME may pass) survives
 * that entry being evicted by the very write that copies it. */
static void test_set_from_entry_under_eviction(void **state)
{
	struct narf_store *s = new_store(0, NARF_EVICT_ALLKEYS_LRU);
	char big[256];
	struct narf_entry *src;
	const char *v;
	size_t n;

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(set(s, "src", big, 0, T0), 0);
	/* Room for less than another such entry; a little slack because
	 * malloc_usable_size() of equal requests depends on the heap's past
	 * (a chunk split from a larger free one keeps the remainder). */
	narf_store_set_limits(s, narf_store_used_memory(s) + 64,
	                      NARF_EVICT_ALLKEYS_LRU);
	src = narf_store_get(s, narf_slot_of("src", 3), "src", 3, T0,
	                     NARF_STORE_NOTOUCH);
	v = narf_entry_value(src, &n);
	assert_int_equal(narf_store_set(s, narf_slot_of("dst", 3), "dst", 3, v,
	                                n, 0, T0 + 1000, NULL),
	                 0);
	assert_null(get(s, "src", T0 + 1000));
	assert_true(has_value(s, "dst", big, T0 + 1000));
	narf_store_destroy(s);
}

/* --- replica slots -------------------------------------------------------- */

/* Mark the slots of keys "r:0".."r:<n-1>" as replica slots. */
static void replica_keys(struct narf_store *s, int n, bool on)
{
	char k[32];

	for (int i = 0; i < n; i++) {
		snprintf(k, sizeof(k), "r:%d", i);
		narf_store_set_replica(s, narf_slot_of(k, strlen(k)), on);
	}
}

static bool visit_count_cb(void *data, const struct narf_entry *e)
{
	(void)e;
	(*(unsigned *)data)++;
	return true;
}

/* An expired key of a replica slot is hidden from get, foreach, scan and
 * random but stays stored (no removed callback, not counted as expired)
 * until a delete removes it; a write replaces it. */
static void test_replica_expired_hidden_not_removed(void **state)
{
	struct narf_store *s = new_store(0, NARF_EVICT_ALLKEYS_LRU);
	struct removed r = {0};
	unsigned slot = narf_slot_of("r:0", 3), seen = 0;

	(void)state;
	narf_store_set_removed_cb(s, removed_cb, &r);
	narf_store_set_replica(s, slot, true);
	assert_true(narf_store_is_replica(s, slot));
	assert_int_equal(set(s, "r:0", "v", T0 + 10, T0), 0);
	assert_true(has_value(s, "r:0", "v", T0 + 10));
	assert_null(get(s, "r:0", T0 + 11));
	assert_null(get(s, "r:0", T0 + 11));
	assert_null(narf_store_random(s, T0 + 11, NULL));
	narf_store_foreach_slot(s, slot, T0 + 11, visit_count_cb, &seen);
	assert_int_equal(
	        narf_store_scan(s, 0, 100000, T0 + 11, visit_count_cb, &seen),
	        0);
	assert_int_equal(seen, 0);
	assert_int_equal(narf_store_active_expire(s, T0 + 11, 1000), 0);
	assert_int_equal(narf_store_count(s), 1);
	assert_int_equal(stats(s).expired, 0);
	assert_int_equal(r.expired + r.evicted, 0);
	/* The primary's state arrives: a write replaces the hidden entry. */
	assert_int_equal(set(s, "r:0", "w", T0 + 20, T0 + 11), 0);
	assert_int_equal(narf_store_count(s), 1);
	assert_true(has_value(s, "r:0", "w", T0 + 12));
	/* The primary's delete of an expired key is what removes it. */
	assert_false(del(s, "r:0", T0 + 30));
	assert_int_equal(narf_store_count(s), 0);
	assert_int_equal(stats(s).keys_with_ttl, 0);
	assert_int_equal(r.expired + r.evicted, 0);
	narf_store_destroy(s);
}

/* A slot that stops being a replica slot (its node was promoted) expires
 * its logically expired keys again, actively and reported as expiries. */
static void test_replica_promoted_expires_again(void **state)
{
	struct narf_store *s = new_store(0, NARF_EVICT_ALLKEYS_LRU);
	struct removed r = {0};
	char k[32];

	(void)state;
	narf_store_set_removed_cb(s, removed_cb, &r);
	replica_keys(s, 50, true);
	for (int i = 0; i < 50; i++) {
		snprintf(k, sizeof(k), "r:%d", i);
		assert_int_equal(set(s, k, "v", T0 + 10, T0), 0);
	}
	assert_int_equal(narf_store_active_expire(s, T0 + 100, 10000), 0);
	assert_int_equal(narf_store_count(s), 50);
	replica_keys(s, 50, false);
	assert_int_equal(narf_store_active_expire(s, T0 + 100, 10000), 50);
	assert_int_equal(r.expired, 50);
	assert_int_equal(narf_store_count(s), 0);
	narf_store_destroy(s);
}

/* Under allkeys-lru, eviction picks only keys of slots the store owns; a
 * write to a replica slot that does not fit fails with NARF_EOOM and
 * changes nothing rather than evicting; owned writes still evict owned
 * keys, and once only replica keys are left they get NARF_EOOM too. */
static void test_replica_never_evicted_nor_evicts(void **state)
{
	struct narf_store *s = new_store(0, NARF_EVICT_ALLKEYS_LRU);
	struct removed r = {0};
	uint64_t used, count;
	char k[32];

	(void)state;
	narf_store_set_removed_cb(s, removed_cb, &r);
	replica_keys(s, 200, true);
	for (int i = 0; i < 200; i++) {
		snprintf(k, sizeof(k), "r:%d", i);
		assert_int_equal(
		        set(s, k, "0123456789abcdef0123456789abcdef", 0, T0),
		        0);
	}
	for (int i = 0; i < 20; i++) {
		snprintf(k, sizeof(k), "own:%d", i);
		if (narf_store_is_replica(s, narf_slot_of(k, strlen(k))))
			continue;
		assert_int_equal(
		        set(s, k, "0123456789abcdef0123456789abcdef", 0, T0),
		        0);
	}
	narf_store_set_limits(s, narf_store_used_memory(s),
	                      NARF_EVICT_ALLKEYS_LRU);
	used = narf_store_used_memory(s);
	count = narf_store_count(s);
	/* A replicated write that grows the store: refused, nothing gone. */
	assert_int_equal(set(s, "r:0",
	                     "a value far longer than the old one "
	                     "was, so it must grow the entry",
	                     0, T0),
	                 NARF_EOOM);
	assert_int_equal(narf_store_used_memory(s), used);
	assert_int_equal(narf_store_count(s), count);
	assert_int_equal(r.evicted, 0);
	/* Owned writes evict owned keys only. */
	for (int i = 0; i < 200; i++) {
		int rv;

		snprintf(k, sizeof(k), "new:%d", i);
		if (narf_store_is_replica(s, narf_slot_of(k, strlen(k))))
			continue;
		rv = set(s, k, "0123456789abcdef0123456789abcdef", 0, T0 + 1);
		assert_true(rv == 0 || rv == NARF_EOOM);
		assert_true(narf_store_used_memory(s) <= used);
	}
	assert_true(r.evicted > 0);
	assert_int_equal(r.evicted, stats(s).evicted);
	for (int i = 0; i < 200; i++) {
		snprintf(k, sizeof(k), "r:%d", i);
		assert_non_null(get(s, k, T0 + 2));
	}
	/* Only replica keys (and the pinned one) left: make_room gives up
	 * rather than evict them or loop. */
	for (int i = 0; i < 200; i++) {
		snprintf(k, sizeof(k), "new:%d", i);
		del(s, k, T0 + 2);
		snprintf(k, sizeof(k), "own:%d", i);
		del(s, k, T0 + 2);
	}
	narf_store_set_limits(s, narf_store_used_memory(s) / 2,
	                      NARF_EVICT_ALLKEYS_LRU);
	assert_int_equal(narf_store_make_room(s, 0, T0 + 3), NARF_EOOM);
	assert_int_equal(narf_store_count(s), 200);
	narf_store_destroy(s);
}

/* Marking and unmarking keeps the slot sets consistent through drops,
 * lazy drops and flushes: an unmarked slot is evictable again. */
static void test_replica_flag_and_drops(void **state)
{
	struct narf_store *s = new_store(0, NARF_EVICT_ALLKEYS_LRU);
	unsigned slot = narf_slot_of("r:0", 3);
	uint64_t base;

	(void)state;
	narf_store_set_replica(s, slot, true);
	narf_store_set_replica(s, slot, true); /* twice: no change */
	assert_int_equal(set(s, "r:0", "v", T0 + 5, T0), 0);
	narf_store_drop_slot(s, slot);
	assert_true(narf_store_is_replica(s, slot));
	assert_int_equal(set(s, "r:0", "v", T0 + 5, T0), 0);
	narf_store_drop_slot_lazy(s, slot);
	while (narf_store_reap(s, 100))
		;
	assert_int_equal(set(s, "r:0", "v", 0, T0), 0);
	narf_store_set_replica(s, slot, false);
	assert_false(narf_store_is_replica(s, slot));
	assert_false(narf_store_is_replica(s, NARF_SLOTS));
	/* Evictable again: a limit below its size evicts it. */
	base = narf_store_used_memory(s);
	narf_store_set_limits(s, base - 1, NARF_EVICT_ALLKEYS_LRU);
	assert_int_equal(narf_store_make_room(s, 0, T0), 0);
	assert_int_equal(narf_store_count(s), 0);
	narf_store_flush(s);
	narf_store_destroy(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_drop_slot_lazy),
	        cmocka_unit_test(test_lazy_drop_frees_before_evicting),
	        cmocka_unit_test(test_lazy_expiry),
	        cmocka_unit_test(test_keepttl_and_set_expire),
	        cmocka_unit_test(test_active_expiry_bounded),
	        cmocka_unit_test(test_eviction_prefers_old_keys),
	        cmocka_unit_test(test_eviction_respects_limit),
	        cmocka_unit_test(test_noeviction_oom),
	        cmocka_unit_test(test_memory_returns_to_baseline),
	        cmocka_unit_test(test_removed_callback),
	        cmocka_unit_test(test_set_from_entry_under_eviction),
	        cmocka_unit_test(test_replica_expired_hidden_not_removed),
	        cmocka_unit_test(test_replica_promoted_expires_again),
	        cmocka_unit_test(test_replica_never_evicted_nor_evicts),
	        cmocka_unit_test(test_replica_flag_and_drops),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
