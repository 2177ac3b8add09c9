/*
 * The store tests' fixture: see store_fixture.h.
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

void removed_cb(void *data,
                unsigned slot,
                const char *key,
                size_t klen,
                enum narf_store_reason why)
{
	struct removed *r = data;

	assert_int_equal(slot, narf_slot_of(key, klen));
	if (why == NARF_STORE_EXPIRED)
		r->expired++;
	else
		r->evicted++;
	snprintf(r->last, sizeof(r->last), "%.*s", (int)klen, key);
}

struct narf_store *new_store(uint64_t max_memory, enum narf_eviction ev)
{
	struct narf_store_config cfg = {
	        .max_memory = max_memory, .eviction = ev, .lru_samples = 5};
	struct narf_store *s;

	for (int i = 0; i < 16; i++)
		cfg.seed[i] = (uint8_t)(i * 7 + 1);
	assert_int_equal(narf_store_create(&s, &cfg), 0);
	return s;
}

int set(struct narf_store *s,
        const char *k,
        const char *v,
        int64_t expire,
        int64_t now)
{
	return narf_store_set(s, narf_slot_of(k, strlen(k)), k, strlen(k), v,
	                      strlen(v), expire, now, NULL);
}

struct narf_entry *get(struct narf_store *s, const char *k, int64_t now)
{
	return narf_store_get(s, narf_slot_of(k, strlen(k)), k, strlen(k), now,
	                      0);
}

bool del(struct narf_store *s, const char *k, int64_t now)
{
	return narf_store_del(s, narf_slot_of(k, strlen(k)), k, strlen(k), now);
}

bool has_value(struct narf_store *s, const char *k, const char *v, int64_t now)
{
	struct narf_entry *e = get(s, k, now);
	size_t n;
	const char *p;

	if (e == NULL)
		return false;
	p = narf_entry_value(e, &n);
	return n == strlen(v) && memcmp(p, v, n) == 0;
}

struct narf_store_stats stats(struct narf_store *s)
{
	struct narf_store_stats st;

	narf_store_stats(s, &st);
	return st;
}
