/*
 * The store tests' fixture (test_store.c: tables, SCAN, glob, SipHash;
 * test_store_evict.c: expiry, eviction, memory, replica slots): a store
 * with a fixed seed, set/get/del by C string key (its slot computed), and a
 * removed callback that counts what it hears. Test code only: the names are
 * plain, as in a test file.
 */
#ifndef NARF_TEST_STORE_FIXTURE_H
#define NARF_TEST_STORE_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/store.h"

#define T0 1700000000000LL /* a fixed "now" in ms */

/* What the removed callback saw. */
struct removed {
	unsigned expired;
	unsigned evicted;
	char last[64];
};

/* The removed callback: data is a struct removed (borrowed). */
void removed_cb(void *data,
                unsigned slot,
                const char *key,
                size_t klen,
                enum narf_store_reason why);
/* A store with the given limit and policy; narf_store_destroy() frees it. */
struct narf_store *new_store(uint64_t max_memory, enum narf_eviction ev);
int set(struct narf_store *s,
        const char *k,
        const char *v,
        int64_t expire,
        int64_t now);
struct narf_entry *get(struct narf_store *s, const char *k, int64_t now);
bool del(struct narf_store *s, const char *k, int64_t now);
/* Is k live at now with exactly the value v? */
bool has_value(struct narf_store *s, const char *k, const char *v, int64_t now);
struct narf_store_stats stats(struct narf_store *s);

#endif /* NARF_TEST_STORE_FIXTURE_H */
