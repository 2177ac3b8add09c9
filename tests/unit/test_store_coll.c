/*
 * Unit tests for collections in the store (common/store.h's coll_open and
 * coll_close, narf_store_rename, and every path that releases a value):
 * types, WRONGTYPE, emptied keys, TTLs, memory accounting back to the
 * baseline, eviction and noeviction, replica slots. Hashes stand for every
 * collection type here (the release paths do not depend on the type).
 * Fixture: store_fixture.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/coll.h"
#include "common/coll_hash.h"
#include "common/store.h"
#include "store_fixture.h"

/* Write calls seen by the write callback. */
struct writes {
	unsigned sets, dels;
	char last[64];
};

static void write_cb(void *data,
                     unsigned slot,
                     const char *key,
                     size_t klen,
                     const struct narf_entry *e)
{
	struct writes *w = data;

	(void)slot;
	if (e == NULL)
		w->dels++;
	else
		w->sets++;
	snprintf(w->last, sizeof(w->last), "%.*s", (int)klen, key);
}

/* HSET key with n fields of vbytes-byte values; the open's return. */
static int hfill(struct narf_store *s, const char *key, int n, size_t vbytes)
{
	unsigned slot = narf_slot_of(key, strlen(key));
	struct narf_cref r;
	char f[32], v[4096];
	int rv;

	memset(v, 'v', vbytes);
	rv = narf_store_coll_open(s, slot, key, strlen(key), NARF_TYPE_HASH,
	                          (size_t)n * (vbytes + 16), NARF_COLL_CREATE,
	                          T0, &r);
	if (rv != 0)
		return rv;
	for (int i = 0; i < n && rv == 0; i++) {
		snprintf(f, sizeof(f), "f%d", i);
		rv = narf_hash_set(narf_store_coll_ctx(s), &r.c, f, strlen(f),
		                   v, vbytes, 0, NULL);
	}
	narf_store_coll_close(s, &r, T0);
	return rv;
}

/* A store allowed `extra` bytes above what it costs empty. */
static struct narf_store *limited(uint64_t extra, enum narf_eviction ev)
{
	struct narf_store *s = new_store(0, ev);

	narf_store_set_limits(s, narf_store_used_memory(s) + extra, ev);
	return s;
}

static uint64_t hlen(struct narf_store *s, const char *key)
{
	struct narf_entry *e = get(s, key, T0);
	struct narf_coll c;

	if (e == NULL || !narf_entry_coll(e, &c))
		return 0;
	return narf_hash_len(&c);
}

/* A hash is a key of type hash; opening it as another type is WRONGTYPE,
 * and so is opening a string as a hash; nothing changes. */
static void test_types_and_wrongtype(void **state)
{
	struct narf_store *s = new_store(0, NARF_EVICT_ALLKEYS_LRU);
	struct narf_cref r;

	(void)state;
	assert_int_equal(hfill(s, "h", 3, 4), 0);
	assert_int_equal(narf_entry_type(get(s, "h", T0)), NARF_TYPE_HASH);
	assert_int_equal(narf_store_coll_open(s, narf_slot_of("h", 1), "h", 1,
	                                      NARF_TYPE_SET, 0,
	                                      NARF_COLL_CREATE, T0, &r),
	                 NARF_EWRONGTYPE);
	assert_int_equal(set(s, "s", "v", 0, T0), 0);
	assert_int_equal(narf_store_coll_open(s, narf_slot_of("s", 1), "s", 1,
	                                      NARF_TYPE_HASH, 0,
	                                      NARF_COLL_CREATE, T0, &r),
	                 NARF_EWRONGTYPE);
	assert_true(has_value(s, "s", "v", T0));
	assert_int_equal(hlen(s, "h"), 3);
	/* absent without CREATE: no key made */
	assert_int_equal(narf_store_coll_open(s, narf_slot_of("x", 1), "x", 1,
	                                      NARF_TYPE_HASH, 0, 0, T0, &r),
	                 0);
	assert_null(r.e);
	assert_null(get(s, "x", T0));
	narf_store_destroy(s);
}

/* A collection emptied by a command is deleted on close, and the write
 * callback hears that delete; one created and left empty vanishes without
 * a word (nobody saw it). */
static void test_emptied_key_is_deleted(void **state)
{
	struct narf_store *s = new_store(0, NARF_EVICT_ALLKEYS_LRU);
	unsigned slot = narf_slot_of("h", 1);
	struct writes w = {0};
	struct narf_cref r;

	(void)state;
	assert_int_equal(hfill(s, "h", 2, 4), 0);
	narf_store_set_write_cb(s, write_cb, &w);
	assert_int_equal(narf_store_coll_open(s, slot, "h", 1, NARF_TYPE_HASH,
	                                      0, 0, T0, &r),
	                 0);
	assert_true(narf_hash_del(narf_store_coll_ctx(s), &r.c, "f0", 2));
	assert_true(narf_hash_del(narf_store_coll_ctx(s), &r.c, "f1", 2));
	narf_store_coll_close(s, &r, T0);
	assert_null(get(s, "h", T0));
	assert_int_equal(w.dels, 1);
	assert_string_equal(w.last, "h");
	assert_int_equal(narf_store_coll_open(s, slot, "h", 1, NARF_TYPE_HASH,
	                                      0, NARF_COLL_CREATE, T0, &r),
	                 0);
	assert_true(r.created);
	narf_store_coll_close(s, &r, T0);
	assert_null(get(s, "h", T0));
	assert_int_equal(w.dels, 1);
	assert_int_equal(narf_store_count(s), 0);
	narf_store_destroy(s);
}

/* Every way a hash leaves the store gives its memory back: DEL, SET over
 * it, RENAME over it, expiry, FLUSHALL and a lazy slot drop. */
static void test_release_paths_return_memory(void **state)
{
	struct narf_store *s = new_store(0, NARF_EVICT_ALLKEYS_LRU);
	uint64_t base = narf_store_used_memory(s);

	(void)state;
	/* DEL */
	assert_int_equal(hfill(s, "a", 600, 10), 0);
	assert_true(narf_store_used_memory(s) > base + 600 * 10);
	assert_true(del(s, "a", T0));
	/* SET over a hash */
	assert_int_equal(hfill(s, "b", 600, 10), 0);
	assert_int_equal(set(s, "b", "plain", 0, T0), 0);
	assert_true(has_value(s, "b", "plain", T0));
	assert_true(del(s, "b", T0));
	/* RENAME over a hash, and a hash renamed (moved, not copied) */
	assert_int_equal(hfill(s, "{x}c", 600, 10), 0);
	assert_int_equal(hfill(s, "{x}d", 5, 10), 0);
	assert_int_equal(
	        narf_store_rename(s, narf_slot_of("{x}d", 4), "{x}d", 4,
	                          narf_slot_of("{x}c", 4), "{x}c", 4, T0),
	        0);
	assert_int_equal(hlen(s, "{x}c"), 5);
	assert_null(get(s, "{x}d", T0));
	assert_int_equal(narf_store_rename(s, narf_slot_of("nope", 4), "nope",
	                                   4, 0, "z", 1, T0),
	                 NARF_ENOTFOUND);
	assert_true(del(s, "{x}c", T0));
	/* expiry */
	assert_int_equal(hfill(s, "e", 600, 10), 0);
	assert_non_null(narf_store_set_expire(s, narf_slot_of("e", 1),
	                                      get(s, "e", T0), T0 + 10));
	assert_int_equal(hlen(s, "e"), 600); /* the TTL kept the value */
	assert_null(get(s, "e", T0 + 11));
	/* flush and a lazy drop */
	assert_int_equal(hfill(s, "f", 600, 10), 0);
	narf_store_flush(s);
	assert_int_equal(hfill(s, "g", 600, 10), 0);
	narf_store_drop_slot_lazy(s, narf_slot_of("g", 1));
	while (narf_store_reap(s, 16))
		;
	assert_int_equal(narf_store_used_memory(s), base);
	narf_store_destroy(s);
}

/* Under allkeys-lru a write that needs room evicts whole collections (not
 * the one being written; a big evicted one is buried and freed before
 * anything more is evicted); under noeviction it is refused with EOOM
 * before anything changes. */
static void test_eviction_and_noeviction(void **state)
{
	struct narf_store *s = limited(400 * 1024, NARF_EVICT_ALLKEYS_LRU);
	uint64_t limit = narf_store_used_memory(s) + 400 * 1024;
	struct removed rm = {0};
	char k[16];

	(void)state;
	narf_store_set_removed_cb(s, removed_cb, &rm);
	for (int i = 0; i < 40; i++) {
		snprintf(k, sizeof(k), "h%d", i);
		assert_int_equal(hfill(s, k, 100, 100), 0);
	}
	assert_true(rm.evicted > 0);
	/* within one write's estimate error of the limit (checked before a
	 * write, as Redis checks before a command) */
	assert_true(narf_store_used_memory(s) <= limit + 32 * 1024);
	assert_int_equal(hlen(s, "h39"), 100);
	/* 100 fields is a big hash: evicting one buried it, and fit()
	 * freed the graves instead of evicting a key per eviction */
	assert_true(rm.evicted < 40);
	narf_store_destroy(s);

	s = limited(200 * 1024, NARF_EVICT_NOEVICTION);
	assert_int_equal(hfill(s, "a", 100, 100), 0);
	assert_int_equal(hfill(s, "big", 60, 4000), NARF_EOOM);
	assert_null(get(s, "big", T0));
	assert_int_equal(hlen(s, "a"), 100);
	narf_store_destroy(s);
}

/* A replica slot never evicts for a collection write: it fails with EOOM
 * (the primary's stream must not be dropped silently). */
static void test_replica_slot_never_evicts(void **state)
{
	struct narf_store *s = limited(200 * 1024, NARF_EVICT_ALLKEYS_LRU);
	struct removed rm = {0};

	(void)state;
	narf_store_set_removed_cb(s, removed_cb, &rm);
	assert_int_equal(hfill(s, "mine", 100, 100), 0);
	narf_store_set_replica(s, narf_slot_of("theirs", 6), true);
	assert_int_equal(hfill(s, "theirs", 60, 4000), NARF_EOOM);
	assert_int_equal(rm.evicted, 0);
	assert_int_equal(hlen(s, "mine"), 100);
	narf_store_destroy(s);
}

/* DEL of a big hash frees it later, a bounded amount per reap, while its
 * memory still counts (lazyfree_pending); a small one goes at once. */
static void test_big_collection_freed_lazily(void **state)
{
	struct narf_store *s = new_store(0, NARF_EVICT_ALLKEYS_LRU);
	uint64_t base = narf_store_used_memory(s), peak;
	struct narf_store_stats st;
	int reaps = 0;

	(void)state;
	assert_int_equal(hfill(s, "small", 10, 10), 0);
	assert_true(del(s, "small", T0));
	assert_int_equal(narf_store_used_memory(s), base);
	assert_int_equal(hfill(s, "big", 5000, 10), 0);
	peak = narf_store_used_memory(s);
	assert_true(del(s, "big", T0));
	assert_null(get(s, "big", T0));
	narf_store_stats(s, &st);
	assert_int_equal(st.lazyfree_pending, 1);
	assert_true(narf_store_used_memory(s) > (peak + base) / 2);
	while (narf_store_reap(s, 100))
		reaps++;
	assert_true(reaps >= 5000 / 256 - 1);
	assert_int_equal(narf_store_used_memory(s), base);
	narf_store_stats(s, &st);
	assert_int_equal(st.lazyfree_pending, 0);
	narf_store_destroy(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_types_and_wrongtype),
	        cmocka_unit_test(test_emptied_key_is_deleted),
	        cmocka_unit_test(test_release_paths_return_memory),
	        cmocka_unit_test(test_eviction_and_noeviction),
	        cmocka_unit_test(test_replica_slot_never_evicts),
	        cmocka_unit_test(test_big_collection_freed_lazily),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
