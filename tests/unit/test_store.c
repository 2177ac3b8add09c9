/*
 * Unit tests for common/store.h: the per-slot tables (set, get, replace,
 * delete, per-slot counts, foreach, drop and flush), SCAN and rehashing,
 * RANDOMKEY, a random model check, glob matching and SipHash. Expiry,
 * eviction, memory accounting, lazy drops and replica slots are
 * test_store_evict.c's. Fixture: store_fixture.c.
 *
 * Time is injected (every call takes now_ms), so expiry is driven by a fake
 * clock and nothing here sleeps.
 */
#define _GNU_SOURCE /* memrchr */
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "common/slot.h"
#include "common/store.h"
#include "store_fixture.h"

/* The SipHash-2-4 reference vectors from the paper (and its test suite)
 * come out of narf_siphash. */
static void test_siphash_vector(void **state)
{
	uint8_t key[16], msg[15];

	(void)state;
	for (int i = 0; i < 16; i++)
		key[i] = (uint8_t)i;
	for (int i = 0; i < 15; i++)
		msg[i] = (uint8_t)i;
	assert_true(narf_siphash(msg, 15, key) == 0xa129ca6149be45e5ull);
	assert_true(narf_siphash(msg, 0, key) == 0x726fdb47dd0e0e31ull);
	assert_true(narf_siphash(msg, 8, key) == 0x93f5f5799a932462ull);
}

/* Keys can be set, read, replaced (same, bigger, smaller) and deleted, and
 * values carry a NUL after their last byte. */
/* A 16-byte key with a 32-byte value costs one 64-byte allocation (the
 * 15-byte header with its short lengths, key, value, NUL: jemalloc's 64-byte
 * class), whatever the type tag added, and every key reads back as TYPE
 * string. */
static void test_string_entry_size_and_type(void **state)
{
	struct narf_store *s = new_store(0, NARF_EVICT_ALLKEYS_LRU);
	const char *val = "0123456789abcdef0123456789abcdef";
	void *probe = malloc(64);
	size_t want = malloc_usable_size(probe);
	uint64_t before;

	(void)state;
	free(probe);
	/* The first key of a slot also allocates its table: measure the
	 * second, same slot by its hash tag. */
	assert_int_equal(set(s, "{t}key-000000001", val, 0, T0), 0);
	before = narf_store_used_memory(s);
	assert_int_equal(set(s, "{t}key-000000002", val, 0, T0), 0);
	assert_int_equal(narf_store_used_memory(s) - before, want);
	assert_int_equal(narf_entry_type(get(s, "{t}key-000000002", T0)),
	                 NARF_TYPE_STRING);
	assert_string_equal(narf_type_name(NARF_TYPE_STRING), "string");
	assert_string_equal(narf_type_name(NARF_TYPE_ZSET), "zset");
	/* A TTL rebuilds the entry; the type survives it. */
	assert_int_equal(set(s, "{t}key-000000002", val, T0 + 1000, T0), 0);
	assert_int_equal(narf_entry_type(get(s, "{t}key-000000002", T0)),
	                 NARF_TYPE_STRING);
	narf_store_destroy(s);
}

/* The lengths' two forms (store_internal.h): keys of 255 and 256 bytes,
 * values of 65535 and 65536, a value rewritten across the boundary both
 * ways (in place or rebuilt), with and without a TTL, all read back whole;
 * and the 24-bit LRU clock's wrap reads as the seconds that passed. */
static void test_entry_lengths_and_lru_wrap(void **state)
{
	static char big[70000];
	const size_t klens[] = {1, 255, 256, 1000};
	const size_t vlens[] = {0, 10, 65535, 65536, 69999, 10, 0};
	struct narf_store *s = new_store(0, NARF_EVICT_ALLKEYS_LRU);
	int64_t wrap = ((int64_t)1 << 24) * 1000;

	(void)state;
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)('a' + i % 26);
	for (unsigned k = 0; k < sizeof(klens) / sizeof(klens[0]); k++) {
		char key[1001];

		memset(key, 'k', klens[k]);
		key[0] = (char)('0' + k);
		for (unsigned ttl = 0; ttl < 2; ttl++) {
			for (unsigned v = 0;
			     v < sizeof(vlens) / sizeof(vlens[0]); v++) {
				struct narf_entry *e;
				const char *got, *kp;
				size_t len, kl;

				assert_int_equal(
				        narf_store_set(s, 7, key, klens[k], big,
				                       vlens[v],
				                       ttl ? T0 + 60000 : 0, T0,
				                       NULL),
				        0);
				e = narf_store_get(s, 7, key, klens[k], T0, 0);
				assert_non_null(e);
				got = narf_entry_value(e, &len);
				assert_int_equal(len, vlens[v]);
				assert_memory_equal(got, big, len);
				assert_int_equal(got[len], '\0');
				kp = narf_entry_key(e, &kl);
				assert_int_equal(kl, klens[k]);
				assert_memory_equal(kp, key, kl);
				assert_int_equal(narf_entry_expire(e),
				                 ttl ? T0 + 60000 : 0);
			}
		}
	}
	/* Touched one second before the clock wraps, read ten after. */
	assert_int_equal(set(s, "w", "v", 0, wrap - 1000), 0);
	assert_non_null(get(s, "w", wrap - 1000));
	assert_int_equal(
	        narf_entry_idle(s,
	                        narf_store_get(s, narf_slot_of("w", 1), "w", 1,
	                                       wrap + 9000, NARF_STORE_NOTOUCH),
	                        wrap + 9000),
	        10);
	narf_store_destroy(s);
}

static void test_set_get_replace_del(void **state)
{
	struct narf_store *s = new_store(0, NARF_EVICT_ALLKEYS_LRU);
	struct narf_entry *e;
	size_t n;
	const char *v;

	(void)state;
	assert_null(get(s, "foo", T0));
	assert_int_equal(set(s, "foo", "bar", 0, T0), 0);
	assert_true(has_value(s, "foo", "bar", T0));
	assert_int_equal(
	        set(s, "foo", "a much longer value than before", 0, T0), 0);
	assert_true(has_value(s, "foo", "a much longer value than before", T0));
	assert_int_equal(set(s, "foo", "12", 0, T0), 0);
	e = get(s, "foo", T0);
	v = narf_entry_value(e, &n);
	assert_int_equal(n, 2);
	assert_int_equal(v[2], '\0');
	assert_int_equal(strtol(v, NULL, 10), 12);
	v = narf_entry_key(e, &n);
	assert_int_equal(n, 3);
	assert_memory_equal(v, "foo", 3);
	assert_int_equal(narf_store_count(s), 1);
	/* Empty values and binary keys work too. */
	assert_int_equal(narf_store_set(s, narf_slot_of("a\0b", 3), "a\0b", 3,
	                                "", 0, 0, T0, &e),
	                 0);
	assert_non_null(e);
	narf_entry_value(e, &n);
	assert_int_equal(n, 0);
	assert_int_equal(narf_store_count(s), 2);
	assert_true(del(s, "foo", T0));
	assert_false(del(s, "foo", T0));
	assert_null(get(s, "foo", T0));
	assert_int_equal(narf_store_count(s), 1);
	narf_store_destroy(s);
}

static void count_write(void *data,
                        unsigned slot,
                        const char *key,
                        size_t klen,
                        const struct narf_entry *e)
{
	(void)slot;
	(void)key;
	(void)klen;
	(void)e;
	(*(unsigned *)data)++;
}

/* narf_store_update(): a value that fits its entry is rewritten in place
 * (same entry, TTL kept or changed, the write callback told once); one
 * that does not fit, or no entry at all, goes through the full set. */
static void test_update_in_place(void **state)
{
	struct narf_store *s = new_store(0, NARF_EVICT_ALLKEYS_LRU);
	unsigned slot = narf_slot_of("n", 1), writes = 0;
	uint64_t h = narf_store_hash(s, "n", 1);
	char big[200];
	struct narf_entry *e, *e2;

	(void)state;
	narf_store_set_write_cb(s, count_write, &writes);
	/* No entry: inserted. */
	assert_int_equal(narf_store_update(s, slot, "n", 1, h, NULL, "11", 2,
	                                   T0 + 5000, T0),
	                 0);
	assert_true(has_value(s, "n", "11", T0));
	assert_int_equal(writes, 1);
	/* Fits (the same length: under ASan an allocation has no slack):
	 * same entry, TTL kept. */
	e = narf_store_get_h(s, slot, "n", 1, h, T0, 0);
	assert_int_equal(narf_store_update(s, slot, "n", 1, h, e, "22", 2,
	                                   NARF_STORE_KEEPTTL, T0),
	                 0);
	e2 = get(s, "n", T0);
	assert_ptr_equal(e, e2);
	assert_true(has_value(s, "n", "22", T0));
	assert_int_equal(narf_entry_expire(e2), T0 + 5000);
	assert_int_equal(writes, 2);
	/* Does not fit: a new entry, still one key, TTL kept. */
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(narf_store_update(s, slot, "n", 1, h, e2, big,
	                                   strlen(big), NARF_STORE_KEEPTTL, T0),
	                 0);
	assert_true(has_value(s, "n", big, T0));
	assert_int_equal(narf_entry_expire(get(s, "n", T0)), T0 + 5000);
	assert_int_equal(narf_store_count(s), 1);
	assert_int_equal(writes, 3);
	/* Dropping the TTL moves the key in the entry: not in place. */
	e = narf_store_get_h(s, slot, "n", 1, h, T0, 0);
	assert_int_equal(
	        narf_store_update(s, slot, "n", 1, h, e, "7", 1, 0, T0), 0);
	assert_true(has_value(s, "n", "7", T0));
	assert_int_equal(narf_entry_expire(get(s, "n", T0)), 0);
	assert_int_equal(narf_store_count(s), 1);
	assert_int_equal(writes, 4);
	narf_store_destroy(s);
}

struct collect {
	unsigned n;
	unsigned stop_after; /* 0 = never stop */
	bool *seen;          /* borrowed; indexed by the key's number */
	size_t nseen;
};

/* Keys look like "{tag}:123" or "k:123": the number after the last ':'. */
static bool collect_cb(void *data, const struct narf_entry *e)
{
	struct collect *c = data;
	size_t n;
	const char *k = narf_entry_key(e, &n);
	const char *colon = memrchr(k, ':', n);

	c->n++;
	if (c->seen != NULL && colon != NULL) {
		/* Keys are not NUL-terminated: their value follows. */
		size_t i = 0;

		for (const char *p = colon + 1; p < k + n; p++)
			i = i * 10 + (size_t)(*p - '0');
		if (i < c->nseen)
			c->seen[i] = true;
	}
	return c->stop_after == 0 || c->n < c->stop_after;
}

/* Slots count their own keys; foreach visits exactly one slot's live keys
 * and can stop early; drop_slot and flush empty one slot and everything. */
static void test_slot_counts_foreach_drop_flush(void **state)
{
	struct narf_store *s = new_store(0, NARF_EVICT_ALLKEYS_LRU);
	unsigned a = narf_slot_of("{a}", 3), b = narf_slot_of("{b}", 3);
	struct collect c = {0};
	char k[32];

	(void)state;
	for (int i = 0; i < 300; i++) {
		snprintf(k, sizeof(k), "{a}:%d", i);
		assert_int_equal(set(s, k, "x", 0, T0), 0);
	}
	for (int i = 0; i < 50; i++) {
		snprintf(k, sizeof(k), "{b}:%d", i);
		assert_int_equal(set(s, k, "y", i < 10 ? T0 + 10 : 0, T0), 0);
	}
	assert_int_equal(narf_store_slot_count(s, a), 300);
	assert_int_equal(narf_store_slot_count(s, b), 50);
	assert_int_equal(narf_store_count(s), 350);
	narf_store_foreach_slot(s, a, T0, collect_cb, &c);
	assert_int_equal(c.n, 300);
	/* Expired entries are skipped by foreach. */
	c.n = 0;
	narf_store_foreach_slot(s, b, T0 + 11, collect_cb, &c);
	assert_int_equal(c.n, 40);
	c.n = 0;
	c.stop_after = 7;
	narf_store_foreach_slot(s, a, T0, collect_cb, &c);
	assert_int_equal(c.n, 7);
	narf_store_drop_slot(s, a);
	assert_int_equal(narf_store_slot_count(s, a), 0);
	assert_int_equal(narf_store_count(s), 50);
	assert_int_equal(stats(s).keys_with_ttl, 10);
	assert_true(has_value(s, "{b}:3", "y", T0));
	narf_store_flush(s);
	assert_int_equal(narf_store_count(s), 0);
	assert_int_equal(narf_store_slot_count(s, b), 0);
	assert_int_equal(stats(s).keys_with_ttl, 0);
	assert_null(get(s, "{b}:3", T0));
	narf_store_destroy(s);
}

/* Mark what a scan returned, one step at a time, calling between() after
 * each step; returns the number of steps. */
static unsigned scan_all(struct narf_store *s,
                         int64_t now,
                         unsigned count,
                         bool *seen,
                         size_t nseen,
                         void (*between)(struct narf_store *, unsigned))
{
	struct collect c = {.seen = seen, .nseen = nseen};
	uint64_t cursor = 0;
	unsigned steps = 0;

	do {
		cursor = narf_store_scan(s, cursor, count, now, collect_cb, &c);
		if (between != NULL)
			between(s, steps);
		assert_true(++steps < 1000000);
	} while (cursor != 0);
	return steps;
}

/* Adds keys for the first 200 steps only: a scan that is always
 * outgrown by its table could never finish. */
static void grow_between(struct narf_store *s, unsigned step)
{
	char k[32];

	for (int i = 0; i < 25 && step < 200; i++) {
		snprintf(k, sizeof(k), "{g}:%u", 100000 + step * 25 + i);
		assert_int_equal(set(s, k, "v", 0, T0), 0);
	}
	if (step % 7 == 0)
		narf_store_cron(s, 3);
}

/* SCAN returns every key present for the whole scan while the slot's
 * table keeps growing (and rehashing) between calls. */
static void test_scan_while_growing(void **state)
{
	struct narf_store *s = new_store(0, NARF_EVICT_ALLKEYS_LRU);
	bool seen[200] = {0};
	char k[32];

	(void)state;
	for (int i = 0; i < 200; i++) {
		snprintf(k, sizeof(k), "{g}:%d", i);
		assert_int_equal(set(s, k, "v", 0, T0), 0);
	}
	scan_all(s, T0, 1, seen, 200, grow_between);
	for (int i = 0; i < 200; i++)
		assert_true(seen[i]);
	assert_int_equal(narf_store_count(s), 200 + 200 * 25);
	narf_store_destroy(s);
}

static void shrink_between(struct narf_store *s, unsigned step)
{
	char k[32];

	/* Delete 150 of the non-keepers (not multiples of 40) per step. */
	for (unsigned i = step * 150; i < step * 150 + 150 && i < 8000; i++) {
		if (i % 40 == 0)
			continue;
		snprintf(k, sizeof(k), "{s}:%u", i);
		del(s, k, T0);
	}
	if (step % 5 == 0)
		narf_store_cron(s, 2);
}

/* SCAN returns every key present for the whole scan while other keys are
 * deleted and the slot's table shrinks (and rehashes) between calls. */
static void test_scan_while_shrinking(void **state)
{
	struct narf_store *s = new_store(0, NARF_EVICT_ALLKEYS_LRU);
	static bool seen[8000];
	char k[32];

	(void)state;
	for (int i = 0; i < 8000; i++) {
		snprintf(k, sizeof(k), "{s}:%d", i);
		assert_int_equal(set(s, k, "v", 0, T0), 0);
	}
	narf_store_cron(s, 1000000);
	scan_all(s, T0, 1, seen, 8000, shrink_between);
	for (int i = 0; i < 8000; i += 40)
		assert_true(seen[i]);
	assert_int_equal(narf_store_count(s), 200);
	narf_store_destroy(s);
}

/* SCAN over keys spread across all slots visits each when nothing
 * changes, and a callback that stops resumes without loss (its bucket comes
 * again, so it must accept more entries than a chain holds). */
static void test_scan_many_slots(void **state)
{
	struct narf_store *s = new_store(0, NARF_EVICT_ALLKEYS_LRU);
	static bool seen[30000];
	struct collect c = {.seen = seen, .nseen = 30000};
	uint64_t cursor = 0;
	char k[32];

	(void)state;
	assert_int_equal(narf_store_scan(s, 0, 10, T0, collect_cb, &c), 0);
	assert_int_equal(c.n, 0);
	for (int i = 0; i < 30000; i++) {
		snprintf(k, sizeof(k), "k:%d", i);
		assert_int_equal(set(s, k, "v", 0, T0), 0);
	}
	narf_store_cron(s, 1000000);
	scan_all(s, T0, 100, seen, 30000, NULL);
	for (int i = 0; i < 30000; i++)
		assert_true(seen[i]);
	memset(seen, 0, sizeof(seen));
	do {
		c.n = 0;
		c.stop_after = 20;
		cursor = narf_store_scan(s, cursor, 50, T0, collect_cb, &c);
	} while (cursor != 0);
	for (int i = 0; i < 30000; i++)
		assert_true(seen[i]);
	/* A cursor past the last slot ends the scan. */
	assert_int_equal(narf_store_scan(s, UINT64_MAX, 10, T0, collect_cb, &c),
	                 0);
	narf_store_destroy(s);
}

/* Inserting many keys into one slot starts a rehash that single operations
 * only advance a bucket at a time, and cron steps finish it; keys stay
 * readable throughout. */
static void test_rehash_is_incremental(void **state)
{
	struct narf_store *s = new_store(0, NARF_EVICT_ALLKEYS_LRU);
	int n = 0;
	char k[32];

	(void)state;
	while (n < 1000 || stats(s).rehashing == 0) {
		snprintf(k, sizeof(k), "{r}:%d", n++);
		assert_int_equal(set(s, k, "v", 0, T0), 0);
		assert_true(n < 100000);
	}
	assert_int_equal(stats(s).rehashing, 1);
	for (int i = 0; i < 10; i++) {
		snprintf(k, sizeof(k), "{r}:%d", i);
		assert_true(has_value(s, k, "v", T0));
	}
	narf_store_cron(s, 5);
	assert_int_equal(stats(s).rehashing, 1);
	narf_store_cron(s, 1000000);
	assert_int_equal(stats(s).rehashing, 0);
	for (int i = 0; i < n; i++) {
		snprintf(k, sizeof(k), "{r}:%d", i);
		assert_true(has_value(s, k, "v", T0));
	}
	/* Deleting most of them shrinks the table the same way. */
	for (int i = 0; i < n - 10; i++) {
		snprintf(k, sizeof(k), "{r}:%d", i);
		assert_true(del(s, k, T0));
	}
	narf_store_cron(s, 1000000);
	assert_int_equal(stats(s).rehashing, 0);
	assert_int_equal(narf_store_count(s), 10);
	narf_store_destroy(s);
}

/* RANDOMKEY: NULL on an empty store, every key eventually drawn, and
 * expired keys reclaimed rather than returned. */
static void test_random(void **state)
{
	struct narf_store *s = new_store(0, NARF_EVICT_ALLKEYS_LRU);
	struct removed r = {0};
	bool seen[3] = {0};
	struct collect c = {.seen = seen, .nseen = 3};
	unsigned slot = 99999;

	(void)state;
	narf_store_set_removed_cb(s, removed_cb, &r);
	assert_null(narf_store_random(s, T0, NULL));
	assert_int_equal(set(s, "k:0", "v", 0, T0), 0);
	assert_int_equal(set(s, "k:1", "v", 0, T0), 0);
	assert_int_equal(set(s, "k:2", "v", 0, T0), 0);
	for (int i = 0; i < 200; i++)
		collect_cb(&c, narf_store_random(s, T0, &slot));
	assert_true(seen[0] && seen[1] && seen[2]);
	assert_true(slot < NARF_SLOTS);
	narf_store_flush(s);
	assert_int_equal(set(s, "a", "v", T0 + 1, T0), 0);
	assert_int_equal(set(s, "b", "v", T0 + 1, T0), 0);
	assert_null(narf_store_random(s, T0 + 10, NULL));
	assert_int_equal(r.expired, 2);
	assert_int_equal(narf_store_count(s), 0);
	narf_store_destroy(s);
}

struct model_key {
	bool present;
	unsigned val;
	int64_t expire;
};

static bool model_live(const struct model_key *mk, int64_t now)
{
	return mk->present && (mk->expire == 0 || now <= mk->expire);
}

/* Random sets, deletes, expiries, rehash and expiry work on a few hot slots
 * (so tables grow, shrink and rehash all the time) always agree with a
 * plain array model, and a final SCAN returns exactly the live keys. */
static void test_random_ops_match_model(void **state)
{
	enum { NKEYS = 600 };
	static struct model_key model[NKEYS];
	static bool seen[NKEYS];
	struct narf_store *s = new_store(0, NARF_EVICT_ALLKEYS_LRU);
	uint64_t base = narf_store_used_memory(s), live = 0;
	unsigned rehash_seen = 0;
	int64_t now = T0;
	char k[32], v[32];

	(void)state;
	srand(42);
	memset(model, 0, sizeof(model));
	for (int op = 0; op < 200000; op++) {
		unsigned i = (unsigned)rand() % NKEYS;
		unsigned slot;
		struct narf_entry *e;
		int r = rand() % 100;
		/* Alternate filling and draining phases so the tables
		 * grow and shrink over and over. */
		int set_until = (op / 10000) % 2 == 0 ? 45 : 3;

		/* Keys of each tag share a slot: 4 hot slots of 150 keys. */
		snprintf(k, sizeof(k), "{%u}:%u", i % 4, i);
		slot = narf_slot_of(k, strlen(k));
		now += rand() % 3;
		if (stats(s).rehashing > 0)
			rehash_seen++;
		if (r < set_until) {
			unsigned val = (unsigned)rand();
			int64_t exp = rand() % 4 == 0 ? now + rand() % 50 : 0;

			/* Values of varying length exercise replacement. */
			snprintf(v, sizeof(v), "%u%.*s", val, (int)(val % 12),
			         "xxxxxxxxxxxx");
			assert_int_equal(set(s, k, v, exp, now), 0);
			model[i] = (struct model_key){true, val, exp};
		} else if (r < 60) {
			assert_int_equal(del(s, k, now),
			                 model_live(&model[i], now));
			model[i].present = false;
		} else if (r < 70) {
			e = get(s, k, now);
			assert_int_equal(e != NULL, model_live(&model[i], now));
			if (e != NULL) {
				int64_t exp =
				        rand() % 2 ? now + rand() % 50 : 0;

				e = narf_store_set_expire(s, slot, e, exp);
				assert_non_null(e);
				model[i].expire = exp;
			}
		} else if (r < 75) {
			narf_store_cron(s, (unsigned)rand() % 8);
		} else if (r < 78) {
			narf_store_active_expire(s, now, (unsigned)rand() % 30);
		} else {
			e = narf_store_get(s, slot, k, strlen(k), now,
			                   NARF_STORE_NOTOUCH);
			assert_int_equal(e != NULL, model_live(&model[i], now));
			if (e != NULL) {
				size_t n;
				const char *p = narf_entry_value(e, &n);

				assert_int_equal(strtoul(p, NULL, 10),
				                 model[i].val);
				assert_int_equal(narf_entry_expire(e),
				                 model[i].expire);
			}
		}
	}
	for (unsigned i = 0; i < NKEYS; i++)
		live += model_live(&model[i], now);
	scan_all(s, now, 3, seen, NKEYS, NULL);
	for (unsigned i = 0; i < NKEYS; i++)
		assert_int_equal(seen[i], model_live(&model[i], now));
	narf_store_flush(s);
	assert_int_equal(narf_store_used_memory(s), base);
	assert_true(live > 0);
	assert_true(rehash_seen > 1000);
	narf_store_destroy(s);
}

static bool m(const char *pat, const char *str)
{
	return narf_glob_match(pat, strlen(pat), str, strlen(str), false);
}

/* Glob matching follows Redis's stringmatchlen on the KEYS examples and
 * its corner cases. */
static void test_glob(void **state)
{
	(void)state;
	assert_true(m("h?llo", "hello"));
	assert_true(m("h?llo", "hallo"));
	assert_false(m("h?llo", "hllo"));
	assert_true(m("h*llo", "hllo"));
	assert_true(m("h*llo", "heeeello"));
	assert_false(m("h*llo", "heeeell"));
	assert_true(m("h[ae]llo", "hello"));
	assert_true(m("h[ae]llo", "hallo"));
	assert_false(m("h[ae]llo", "hillo"));
	assert_true(m("h[^e]llo", "hallo"));
	assert_true(m("h[^e]llo", "hbllo"));
	assert_false(m("h[^e]llo", "hello"));
	assert_true(m("h[a-b]llo", "hallo"));
	assert_true(m("h[a-b]llo", "hbllo"));
	assert_false(m("h[a-b]llo", "hcllo"));
	assert_true(m("h[b-a]llo", "hallo")); /* reversed range */
	assert_true(m("h\\*llo", "h*llo"));
	assert_false(m("h\\*llo", "hello"));
	assert_true(m("\\?", "?"));
	assert_false(m("\\?", "a"));
	assert_true(m("[\\]]", "]"));
	assert_true(m("[a\\-z]", "-"));
	assert_false(m("[a\\-z]", "b"));
	assert_true(m("*", ""));
	assert_true(m("", ""));
	assert_false(m("", "a"));
	assert_true(m("**a**", "bab"));
	assert_true(m("*a", "ba"));
	assert_false(m("*a", "ab"));
	assert_true(m("a*b*c", "a-b-b-c"));
	assert_false(m("[", "["));    /* unterminated class matches nothing */
	assert_true(m("[a", "a"));    /* ... unless it holds the character */
	assert_true(m("[^", "x"));    /* "not nothing" is anything */
	assert_false(m("[]", "]"));   /* empty class */
	assert_true(m("x\\", "x\\")); /* trailing backslash is literal */
	assert_true(narf_glob_match("HeLLo", 5, "hello", 5, true));
	assert_false(narf_glob_match("HeLLo", 5, "hello", 5, false));
	assert_true(narf_glob_match("h[A-Z]llo", 9, "hello", 5, true));
	assert_true(narf_glob_match("h[E]llo", 7, "hello", 5, true));
	assert_true(narf_glob_match("a\0*", 3, "a\0bc", 4, false));
}

/* A pattern of many stars that cannot match a long string is rejected in
 * (much) less than a second, not in exponential time. */
static void test_glob_pathological(void **state)
{
	static char str[100001];
	char pat[128] = "";
	clock_t start = clock();

	(void)state;
	memset(str, 'a', sizeof(str) - 1);
	for (int i = 0; i < 30; i++)
		strcat(pat, "a*");
	strcat(pat, "b");
	assert_false(m(pat, str));
	str[sizeof(str) - 2] = 'b';
	assert_true(m(pat, str));
	assert_false(m("*[a-z]*[a-z]*[a-z]*[a-z]*[a-z]*[a-z]*[0-9]", str));
	assert_true((double)(clock() - start) / CLOCKS_PER_SEC < 1.0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_siphash_vector),
	        cmocka_unit_test(test_string_entry_size_and_type),
	        cmocka_unit_test(test_entry_lengths_and_lru_wrap),
	        cmocka_unit_test(test_set_get_replace_del),
	        cmocka_unit_test(test_update_in_place),
	        cmocka_unit_test(test_slot_counts_foreach_drop_flush),
	        cmocka_unit_test(test_scan_while_growing),
	        cmocka_unit_test(test_scan_while_shrinking),
	        cmocka_unit_test(test_scan_many_slots),
	        cmocka_unit_test(test_rehash_is_incremental),
	        cmocka_unit_test(test_random),
	        cmocka_unit_test(test_random_ops_match_model),
	        cmocka_unit_test(test_glob),
	        cmocka_unit_test(test_glob_pathological),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
