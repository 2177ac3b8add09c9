/*
 * The dict (dict.h): Redis's dict, intrusive.
 *
 * Two tables. t[0] is the table; t[1] exists only while a resize runs, and
 * then d->rehash is the next bucket of t[0] whose chain moves to t[1]. Every
 * find, add and unlink first moves one bucket (skipping at most 10 empty
 * ones), so a resize costs O(1) per call and completes after about as many
 * calls as t[0] has buckets; adds then go to t[1], finds and unlinks look in
 * both. When t[0] is empty, t[1] becomes t[0].
 *
 * A resize starts when an add finds count == size (load 1; the new table
 * doubles) or an unlink leaves count under 10% of size (the new table is
 * the smallest power of two >= count, at least 4). None starts while one
 * runs. A failed allocation cancels the resize: the old table keeps
 * working, only with longer chains.
 *
 * Pausing (safe iterators, narf_dict_scan's callbacks) stops moving buckets
 * but not starting a resize, so elements never move under an iterator's
 * feet: an add during the pause may land in a fresh t[1], which the
 * iterator reaches after t[0].
 *
 * Keys are not stored: type->key() gives an element's bytes, and moving an
 * element hashes them again, as Redis does for sds keys.
 */
#include <assert.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "common/cursor.h"
#include "common/dict.h"
#include "common/errors.h"
#include "common/rng.h"
#include "common/store.h" /* narf_siphash */

#define MIN_SIZE 4u
/* Empty buckets one rehash step may skip per bucket it should move. */
#define EMPTY_VISITS 10u
/* Elements narf_dict_random samples (Redis's GETFAIR_NUM_ENTRIES). */
#define FAIR_SAMPLE 15u

/* --- small helpers ------------------------------------------------------- */

static int rehashing(const struct narf_dict *d)
{
	return d->rehash >= 0;
}

static uint64_t hash_node(const struct narf_dict *d,
                          const struct narf_dict_node *n)
{
	size_t len;
	const unsigned char *k = d->type->key(n, &len);

	return narf_siphash(k, len, d->seed);
}

static int key_is(const struct narf_dict *d,
                  const struct narf_dict_node *n,
                  const void *key,
                  size_t len)
{
	size_t nlen;
	const unsigned char *k = d->type->key(n, &nlen);

	return nlen == len && memcmp(k, key, len) == 0;
}

/* Smallest power of two >= n, at least MIN_SIZE; 0 when n is too big. */
static uint64_t table_size_for(uint64_t n)
{
	uint64_t s = MIN_SIZE;

	while (s < n) {
		if (s > UINT64_MAX / 2 / sizeof(struct narf_dict_node *))
			return 0;
		s *= 2;
	}
	return s;
}

static struct narf_dict_node **table_new(struct narf_dict *d, uint64_t size)
{
	struct narf_dict_node **t;

	if (size > SIZE_MAX / sizeof(*t))
		return NULL;
	t = calloc((size_t)size, sizeof(*t));
	if (t != NULL && d->used != NULL)
		*d->used += malloc_usable_size(t);
	return t;
}

static void table_free(struct narf_dict *d, struct narf_dict_node **t)
{
	if (t != NULL && d->used != NULL)
		*d->used -= malloc_usable_size(t);
	free(t);
}

/* Start a resize to `size` buckets (the first table when there is none).
 * NARF_ENOMEM when the array cannot be had; nothing changes then. */
static int resize_to(struct narf_dict *d, uint64_t size)
{
	struct narf_dict_node **t;

	assert(!rehashing(d));
	if (size == 0 || size == d->size[0])
		return size == 0 ? NARF_ENOMEM : 0;
	t = table_new(d, size);
	if (t == NULL)
		return NARF_ENOMEM;
	if (d->t[0] == NULL) {
		d->t[0] = t;
		d->size[0] = size;
		return 0;
	}
	d->t[1] = t;
	d->size[1] = size;
	d->count[1] = 0;
	d->rehash = 0;
	return 0;
}

/* Start the resize the load calls for, if none runs: a grow at load 1, a
 * shrink under 10%. A failed allocation is ignored (tried again later). */
static void resize_if_needed(struct narf_dict *d)
{
	if (rehashing(d) || d->t[0] == NULL)
		return;
	if (d->count[0] >= d->size[0])
		(void)resize_to(d, table_size_for(d->count[0] + 1));
	else if (d->size[0] > MIN_SIZE && d->count[0] * 10 < d->size[0])
		(void)resize_to(d, table_size_for(d->count[0]));
}

/* t[0] is empty: t[1] takes its place and the resize is over. The new
 * table may already want another, as elements came and went meanwhile; but
 * a grow is not undone at once (narf_dict_expand asked for room). */
static void rehash_done(struct narf_dict *d)
{
	int grew = d->size[1] > d->size[0];

	table_free(d, d->t[0]);
	d->t[0] = d->t[1];
	d->size[0] = d->size[1];
	d->count[0] = d->count[1];
	d->t[1] = NULL;
	d->size[1] = 0;
	d->count[1] = 0;
	d->rehash = -1;
	if (!grew || d->count[0] >= d->size[0])
		resize_if_needed(d);
}

/* Move up to n chains of t[0] to t[1], visiting at most n * EMPTY_VISITS
 * empty buckets. */
static void rehash_step(struct narf_dict *d, unsigned n)
{
	uint64_t empty = (uint64_t)n * EMPTY_VISITS, m1;

	if (!rehashing(d) || d->paused != 0)
		return;
	m1 = d->size[1] - 1;
	while (n-- > 0 && d->count[0] != 0) {
		struct narf_dict_node *e, *next;

		assert((uint64_t)d->rehash < d->size[0]);
		while (d->t[0][d->rehash] == NULL) {
			d->rehash++;
			if (--empty == 0)
				return;
		}
		for (e = d->t[0][d->rehash]; e != NULL; e = next) {
			uint64_t i = hash_node(d, e) & m1;

			next = e->next;
			e->next = d->t[1][i];
			d->t[1][i] = e;
			d->count[0]--;
			d->count[1]++;
		}
		d->t[0][d->rehash++] = NULL;
	}
	if (d->count[0] == 0)
		rehash_done(d);
}

/* The link that points at the element with this key (hash h), or NULL. */
static struct narf_dict_node **find_link(struct narf_dict *d,
                                         uint64_t h,
                                         const void *key,
                                         size_t len,
                                         int *table)
{
	for (int j = 0; j <= 1; j++) {
		struct narf_dict_node **pp;

		if (d->size[j] == 0)
			continue;
		for (pp = &d->t[j][h & (d->size[j] - 1)]; *pp != NULL;
		     pp = &(*pp)->next) {
			if (key_is(d, *pp, key, len)) {
				*table = j;
				return pp;
			}
		}
		if (!rehashing(d))
			break;
	}
	return NULL;
}

/* --- lifecycle, find, add, unlink ---------------------------------------- */

void narf_dict_init(struct narf_dict *d,
                    const struct narf_dict_type *type,
                    const uint8_t *seed,
                    uint64_t *used)
{
	memset(d, 0, sizeof(*d));
	d->type = type;
	d->seed = seed;
	d->used = used;
	d->rehash = -1;
}

void narf_dict_close(struct narf_dict *d)
{
	if (d == NULL)
		return;
	assert(d->paused == 0);
	table_free(d, d->t[0]);
	table_free(d, d->t[1]);
	narf_dict_init(d, d->type, d->seed, d->used);
}

void narf_dict_prefetch(const struct narf_dict *d, uint64_t h, unsigned stage)
{
	for (int j = 0; j <= 1; j++) {
		struct narf_dict_node *const *b;

		if (d->size[j] == 0)
			continue;
		b = &d->t[j][h & (d->size[j] - 1)];
		if (stage == 0)
			__builtin_prefetch(b);
		else if (*b != NULL)
			__builtin_prefetch(*b);
		if (!rehashing(d))
			break;
	}
}

uint64_t narf_dict_count(const struct narf_dict *d)
{
	return d->count[0] + d->count[1];
}

struct narf_dict_node *narf_dict_find(struct narf_dict *d,
                                      const void *key,
                                      size_t len)
{
	struct narf_dict_node **pp;
	int j;

	if (narf_dict_count(d) == 0)
		return NULL;
	rehash_step(d, 1);
	pp = find_link(d, narf_siphash(key, len, d->seed), key, len, &j);
	return pp != NULL ? *pp : NULL;
}

int narf_dict_add(struct narf_dict *d, struct narf_dict_node *n)
{
	uint64_t i;
	int j;

	rehash_step(d, 1);
	if (d->t[0] == NULL) {
		if (resize_to(d, MIN_SIZE) != 0)
			return NARF_ENOMEM;
	} else {
		resize_if_needed(d);
	}
	j = rehashing(d) ? 1 : 0;
	i = hash_node(d, n) & (d->size[j] - 1);
	n->next = d->t[j][i];
	d->t[j][i] = n;
	d->count[j]++;
	return 0;
}

struct narf_dict_node *narf_dict_unlink(struct narf_dict *d,
                                        const void *key,
                                        size_t len)
{
	struct narf_dict_node **pp, *n;
	int j;

	if (narf_dict_count(d) == 0)
		return NULL;
	rehash_step(d, 1);
	pp = find_link(d, narf_siphash(key, len, d->seed), key, len, &j);
	if (pp == NULL)
		return NULL;
	n = *pp;
	*pp = n->next;
	n->next = NULL;
	d->count[j]--;
	resize_if_needed(d);
	return n;
}

void narf_dict_relink(struct narf_dict *d,
                      const struct narf_dict_node *old,
                      struct narf_dict_node *n)
{
	uint64_t h = hash_node(d, n);

	for (int j = 0; j <= 1; j++) {
		struct narf_dict_node **pp;

		if (d->size[j] == 0)
			continue;
		for (pp = &d->t[j][h & (d->size[j] - 1)]; *pp != NULL;
		     pp = &(*pp)->next) {
			if (*pp == old) {
				*pp = n;
				return;
			}
		}
	}
	assert(!"narf_dict_relink: old is not linked");
}

int narf_dict_expand(struct narf_dict *d, uint64_t n)
{
	uint64_t size = table_size_for(n);

	if (size == 0)
		return NARF_ENOMEM;
	if (rehashing(d) || size <= d->size[0])
		return 0;
	return resize_to(d, size);
}

int narf_dict_rehash(struct narf_dict *d, unsigned buckets)
{
	rehash_step(d, buckets);
	return rehashing(d);
}

/* --- scan ---------------------------------------------------------------- */

static void emit_chain(struct narf_dict_node *n,
                       narf_dict_scan_cb cb,
                       void *arg)
{
	while (n != NULL) {
		struct narf_dict_node *next = n->next; /* cb may unlink n */

		cb(arg, n);
		n = next;
	}
}

uint64_t narf_dict_scan(struct narf_dict *d,
                        uint64_t v,
                        narf_dict_scan_cb cb,
                        void *arg)
{
	uint64_t m0, m1;
	int small = 0, big = 1;

	if (narf_dict_count(d) == 0)
		return 0;
	d->paused++;
	if (!rehashing(d)) {
		m0 = d->size[0] - 1;
		emit_chain(d->t[0][v & m0], cb, arg);
		v = narf_cursor_next(v, m0);
		goto out;
	}
	if (d->size[0] > d->size[1]) {
		small = 1;
		big = 0;
	}
	m0 = d->size[small] - 1;
	m1 = d->size[big] - 1;
	emit_chain(d->t[small][v & m0], cb, arg);
	/* Then every bucket of the big table that the small bucket expands
	 * into, the cursor's bits above m0 counting through them. */
	do {
		emit_chain(d->t[big][v & m1], cb, arg);
		v = narf_cursor_next(v, m1);
	} while (v & (m0 ^ m1));
out:
	d->paused--;
	return v;
}

/* --- random -------------------------------------------------------------- */

/* Up to max elements into out from consecutive buckets of both tables from
 * a random one, as Redis's dictGetSomeKeys; returns how many. */
static unsigned sample(struct narf_dict *d,
                       uint64_t *rng,
                       struct narf_dict_node **out,
                       unsigned max)
{
	uint64_t mask = d->size[0] - 1, i, steps = (uint64_t)max * 10;
	unsigned got = 0, empty = 0;
	int tables = rehashing(d) ? 2 : 1;

	if (tables == 2 && d->size[1] - 1 > mask)
		mask = d->size[1] - 1;
	i = narf_rng_next(rng) & mask;
	while (got < max && steps-- > 0) {
		for (int j = 0; j < tables && got < max; j++) {
			struct narf_dict_node *n;

			/* Buckets of t[0] below rehash are empty: skip them,
			 * or all of t[0] when t[1] has no bucket i either. */
			if (tables == 2 && j == 0 && i < (uint64_t)d->rehash) {
				if (i >= d->size[1])
					i = (uint64_t)d->rehash;
				else
					continue;
			}
			if (i >= d->size[j])
				continue;
			n = d->t[j][i];
			if (n == NULL) {
				/* A run of empty buckets: jump elsewhere. */
				if (++empty >= 5 && empty > max) {
					i = narf_rng_next(rng) & mask;
					empty = 0;
				}
				continue;
			}
			empty = 0;
			for (; n != NULL && got < max; n = n->next)
				out[got++] = n;
		}
		i = (i + 1) & mask;
	}
	return got;
}

/* A random bucket until a non-empty one, then a random element of its
 * chain, as Redis's dictGetRandomKey. The dict is not empty. */
static struct narf_dict_node *random_in_chain(struct narf_dict *d,
                                              uint64_t *rng)
{
	struct narf_dict_node *head = NULL, *n;
	uint64_t len = 0;

	if (rehashing(d)) {
		uint64_t lo = (uint64_t)d->rehash;
		uint64_t span = d->size[0] + d->size[1] - lo;

		while (head == NULL) {
			uint64_t b = lo + narf_rng_next(rng) % span;
			head = b < d->size[0] ? d->t[0][b]
			                      : d->t[1][b - d->size[0]];
		}
	} else {
		while (head == NULL)
			head = d->t[0][narf_rng_next(rng) & (d->size[0] - 1)];
	}
	for (n = head; n != NULL; n = n->next)
		len++;
	n = head;
	for (uint64_t k = narf_rng_next(rng) % len; k > 0; k--)
		n = n->next;
	return n;
}

struct narf_dict_node *narf_dict_random(struct narf_dict *d, uint64_t *rng)
{
	struct narf_dict_node *some[FAIR_SAMPLE];
	unsigned got;

	if (narf_dict_count(d) == 0)
		return NULL;
	rehash_step(d, 1);
	got = sample(d, rng, some, FAIR_SAMPLE);
	if (got == 0)
		return random_in_chain(d, rng);
	return some[narf_rng_next(rng) % got];
}

/* --- iteration ----------------------------------------------------------- */

/* What an unsafe iterator must find unchanged at its close. */
static uint64_t fingerprint(const struct narf_dict *d)
{
	uint64_t v[7] = {(uint64_t)(uintptr_t)d->t[0], d->size[0], d->count[0],
	                 (uint64_t)(uintptr_t)d->t[1], d->size[1], d->count[1],
	                 (uint64_t)d->rehash};
	uint64_t h = 0;

	/* Redis's fingerprint mix: Thomas Wang's 64-bit integer hash. */
	for (int i = 0; i < 7; i++) {
		h += v[i];
		h = (~h) + (h << 21);
		h = h ^ (h >> 24);
		h = (h + (h << 3)) + (h << 8);
		h = h ^ (h >> 14);
		h = (h + (h << 2)) + (h << 4);
		h = h ^ (h >> 28);
		h = h + (h << 31);
	}
	return h;
}

void narf_dict_iter_init(struct narf_dict_iter *it,
                         struct narf_dict *d,
                         int safe)
{
	memset(it, 0, sizeof(*it));
	it->d = d;
	it->safe = safe != 0;
	if (it->safe)
		d->paused++;
	else
		it->fingerprint = fingerprint(d);
}

struct narf_dict_node *narf_dict_iter_next(struct narf_dict_iter *it)
{
	struct narf_dict *d = it->d;
	struct narf_dict_node *n;

	while (it->next == NULL) {
		if (it->bucket >= d->size[it->table]) {
			if (it->table == 1 || !rehashing(d))
				return NULL;
			it->table = 1;
			it->bucket = 0;
			continue;
		}
		it->next = d->t[it->table][it->bucket++];
	}
	/* Keep the next one now: the caller may unlink and free n. */
	n = it->next;
	it->next = n->next;
	return n;
}

void narf_dict_iter_close(struct narf_dict_iter *it)
{
	if (it->safe) {
		assert(it->d->paused > 0);
		it->d->paused--;
	} else {
		assert(it->fingerprint == fingerprint(it->d) &&
		       "dict changed under an unsafe iterator");
	}
	it->d = NULL;
}

/* --- lazy free ----------------------------------------------------------- */

size_t narf_dict_drain(struct narf_dict *d,
                       size_t budget,
                       void (*free_node)(struct narf_dict_node *n, void *arg),
                       void *arg)
{
	uint64_t empty = (uint64_t)budget * EMPTY_VISITS;
	uint64_t total = d->size[0] + d->size[1];

	assert(d->paused == 0);
	if (rehashing(d) && d->drain_at < (uint64_t)d->rehash)
		d->drain_at = (uint64_t)d->rehash; /* those are empty */
	while (budget > 0 && narf_dict_count(d) > 0) {
		uint64_t b = d->drain_at;
		int j = b < d->size[0] ? 0 : 1;
		struct narf_dict_node **head;

		if (b >= total) { /* only if nodes were added mid-drain */
			d->drain_at = 0;
			continue;
		}
		head = &d->t[j][j == 0 ? b : b - d->size[0]];
		if (*head == NULL) {
			d->drain_at++;
			if (empty-- == 0)
				break;
			continue;
		}
		while (*head != NULL && budget > 0) {
			struct narf_dict_node *n = *head;

			*head = n->next;
			d->count[j]--;
			budget--;
			free_node(n, arg);
		}
	}
	if (narf_dict_count(d) == 0)
		narf_dict_close(d);
	return (size_t)narf_dict_count(d);
}
