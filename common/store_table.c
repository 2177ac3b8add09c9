/*
 * The store's per-slot hash tables: chained buckets, power-of-two sizes,
 * and Redis-dict-style incremental rehashing.
 *
 * A slot's table grows when it holds as many entries as buckets (load
 * factor 1) and shrinks when fewer than one bucket in ten is used. Growing
 * or shrinking only allocates the new array and sets rehashidx; entries
 * then move a bucket at a time, on every get/set/del of the slot and from
 * narf_store_cron(), so no single request pays for a whole resize. While a
 * rehash runs, lookups search both tables and inserts go to the new one.
 *
 * Memory accounting lives here too: every allocation the store makes goes
 * through narf_store_malloc()/narf_store_free(), which add and subtract
 * malloc_usable_size(), the bytes the allocator really set aside.
 */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "common/cursor.h"
#include "common/rng.h"
#include "store_internal.h"

/* Like Redis's dict_force_resize_ratio: past this load factor a table grows
 * even when the memory limit says no, so chains stay short. */
#define FORCE_GROW_RATIO 2

/* --- accounting ---------------------------------------------------------- */

void narf_store_account(struct narf_store *s, void *p)
{
	if (p != NULL)
		s->used_memory += malloc_usable_size(p);
}

void narf_store_unaccount(struct narf_store *s, void *p)
{
	if (p != NULL)
		s->used_memory -= malloc_usable_size(p);
}

void *narf_store_malloc(struct narf_store *s, size_t size)
{
	void *p = malloc(size);

	narf_store_account(s, p);
	return p;
}

void *narf_store_calloc(struct narf_store *s, size_t n, size_t size)
{
	void *p = calloc(n, size);

	narf_store_account(s, p);
	return p;
}

void narf_store_free(struct narf_store *s, void *p)
{
	narf_store_unaccount(s, p);
	free(p);
}

/* --- hashing and randomness ---------------------------------------------- */

uint64_t narf_store_hash(const struct narf_store *s,
                         const char *key,
                         size_t klen)
{
	return narf_siphash(key, klen, s->seed);
}

/* splitmix64: fast, and seeded from the store's seed so tests are
 * reproducible; sampling does not need a cryptographic generator. */
uint64_t narf_store_rand(struct narf_store *s)
{
	return narf_rng_next(&s->rng);
}

/* --- slot sets ----------------------------------------------------------- */

void narf_slotset_add(struct narf_store *s, int set, unsigned slot)
{
	struct narf_slot_set *ss = &s->sets[set];
	struct narf_slot_table *st = &s->slots[slot];

	if (st->pos1[set] != 0)
		return;
	ss->member[ss->n] = (uint16_t)slot;
	st->pos1[set] = (uint16_t)(++ss->n);
}

/* Removal moves the last member into the hole, so a cursor walking the set
 * may see that member twice or skip it once; the walkers tolerate it. */
void narf_slotset_del(struct narf_store *s, int set, unsigned slot)
{
	struct narf_slot_set *ss = &s->sets[set];
	struct narf_slot_table *st = &s->slots[slot];
	unsigned i, last;

	if (st->pos1[set] == 0)
		return;
	i = st->pos1[set] - 1u;
	last = ss->member[--ss->n];
	ss->member[i] = (uint16_t)last;
	s->slots[last].pos1[set] = (uint16_t)(i + 1);
	st->pos1[set] = 0;
}

/* --- lookup and insertion ------------------------------------------------ */

static bool key_equal(const struct narf_entry *e, const char *key, size_t klen)
{
	return entry_klen(e) == klen && memcmp(entry_key(e), key, klen) == 0;
}

struct narf_entry *narf_stbl_find(struct narf_slot_table *st,
                                  const char *key,
                                  size_t klen,
                                  uint64_t h,
                                  struct narf_entry_pos *pos)
{
	for (int t = 0; t < 2; t++) {
		struct narf_entry **link;

		if (st->table[t] == NULL)
			break;
		link = &st->table[t][h & (table_size(st, t) - 1)];
		for (; *link != NULL; link = &(*link)->next) {
			if (key_equal(*link, key, klen)) {
				if (pos != NULL) {
					pos->link = link;
					pos->t = t;
				}
				return *link;
			}
		}
	}
	return NULL;
}

struct narf_entry *narf_store_peek(struct narf_store *s,
                                   unsigned slot,
                                   const char *key,
                                   size_t klen,
                                   uint64_t h)
{
	return narf_stbl_find(&s->slots[slot], key, klen, h, NULL);
}

void narf_store_prefetch(struct narf_store *s,
                         unsigned slot,
                         uint64_t h,
                         unsigned stage)
{
	const struct narf_slot_table *st = &s->slots[slot];

	if (stage == 0) {
		__builtin_prefetch(st);
		return;
	}
	for (int t = 0; t < 2 && st->table[t] != NULL; t++) {
		struct narf_entry *const *b =
		        &st->table[t][h & (table_size(st, t) - 1)];

		if (stage == 1)
			__builtin_prefetch(b);
		else if (*b != NULL)
			__builtin_prefetch(*b);
	}
}

struct narf_entry_pos narf_stbl_locate(struct narf_store *s,
                                       struct narf_slot_table *st,
                                       const struct narf_entry *e)
{
	uint64_t h = narf_store_hash(s, entry_key(e), entry_klen(e));
	struct narf_entry_pos pos = {NULL, 0};

	for (int t = 0; t < 2 && st->table[t] != NULL; t++) {
		struct narf_entry **link;

		link = &st->table[t][h & (table_size(st, t) - 1)];
		for (; *link != NULL; link = &(*link)->next) {
			if (*link == e) {
				pos.link = link;
				pos.t = t;
				return pos;
			}
		}
	}
	return pos;
}

/* Start moving a slot's entries into a table of 2^exp buckets. Failing to
 * allocate is harmless: the slot keeps its current table. */
static void start_resize(struct narf_store *s, unsigned slot, unsigned exp)
{
	struct narf_slot_table *st = &s->slots[slot];
	struct narf_entry **t;

	if (slot_rehashing(st) || exp == st->exp[0] || exp > 31)
		return;
	t = narf_store_calloc(s, (size_t)1 << exp, sizeof(*t));
	if (t == NULL)
		return;
	st->table[1] = t;
	st->exp[1] = (uint8_t)exp;
	st->used[1] = 0;
	st->rehashidx = 0;
	narf_slotset_add(s, SET_REHASH, slot);
}

/* Growing allocates a table twice the size. Under a memory limit, hold off
 * (as Redis's dictExpandAllowed does) unless chains are getting long. */
static void maybe_grow(struct narf_store *s, unsigned slot)
{
	struct narf_slot_table *st = &s->slots[slot];
	size_t size = table_size(st, 0);
	uint64_t more = 2 * size * sizeof(struct narf_entry *);

	if (slot_rehashing(st) || st->used[0] < size)
		return;
	if (s->max_memory != 0 && s->used_memory + more > s->max_memory &&
	    st->used[0] < FORCE_GROW_RATIO * size)
		return;
	start_resize(s, slot, st->exp[0] + 1u);
}

int narf_stbl_insert(struct narf_store *s,
                     unsigned slot,
                     struct narf_entry *e,
                     uint64_t h)
{
	struct narf_slot_table *st = &s->slots[slot];
	struct narf_entry **bucket;
	int t;

	if (st->table[0] == NULL) {
		st->table[0] = narf_store_calloc(s, (size_t)1 << TABLE_MIN_EXP,
		                                 sizeof(*st->table[0]));
		if (st->table[0] == NULL)
			return NARF_ENOMEM;
		st->exp[0] = TABLE_MIN_EXP;
		st->used[0] = 0;
		narf_slotset_add(s, SET_KEYS, slot);
		if (!slot_replica(s, slot))
			narf_slotset_add(s, SET_EVICT, slot);
	}
	/* Mid-rehash, new entries go straight to the new table. */
	t = slot_rehashing(st) ? 1 : 0;
	bucket = &st->table[t][h & (table_size(st, t) - 1)];
	e->next = *bucket;
	*bucket = e;
	st->used[t]++;
	maybe_grow(s, slot);
	return 0;
}

static void free_tables(struct narf_store *s, unsigned slot)
{
	struct narf_slot_table *st = &s->slots[slot];

	narf_store_free(s, st->table[0]);
	narf_store_free(s, st->table[1]);
	st->table[0] = st->table[1] = NULL;
	st->used[0] = st->used[1] = 0;
	st->exp[0] = st->exp[1] = 0;
	st->rehashidx = 0;
	narf_slotset_del(s, SET_KEYS, slot);
	narf_slotset_del(s, SET_EVICT, slot);
	narf_slotset_del(s, SET_REHASH, slot);
}

void narf_stbl_after_delete(struct narf_store *s, unsigned slot)
{
	struct narf_slot_table *st = &s->slots[slot];
	unsigned exp = TABLE_MIN_EXP;

	if (slot_keys(st) == 0) {
		free_tables(s, slot);
		return;
	}
	if (slot_rehashing(st) || st->exp[0] <= TABLE_MIN_EXP ||
	    (uint64_t)st->used[0] * 10 >= table_size(st, 0))
		return;
	while (((size_t)1 << exp) < st->used[0])
		exp++;
	start_resize(s, slot, exp);
}

/* --- rehashing ----------------------------------------------------------- */

/* Redis's dictRehash: move n non-empty buckets, but look at no more than
 * 10n empty ones, so a sparse table cannot make one step slow. */
unsigned narf_stbl_rehash(struct narf_store *s, unsigned slot, unsigned n)
{
	struct narf_slot_table *st = &s->slots[slot];
	size_t mask1 = table_size(st, 1) - 1;
	unsigned empty_visits = n * 10, moved = 0;

	if (!slot_rehashing(st))
		return 0;
	while (moved < n && st->used[0] != 0) {
		struct narf_entry *e;

		while (st->table[0][st->rehashidx] == NULL) {
			st->rehashidx++;
			if (--empty_visits == 0)
				return moved;
		}
		e = st->table[0][st->rehashidx];
		while (e != NULL) {
			struct narf_entry *next = e->next;
			size_t b = narf_store_hash(s, entry_key(e),
			                           entry_klen(e)) &
			           mask1;

			e->next = st->table[1][b];
			st->table[1][b] = e;
			st->used[0]--;
			st->used[1]++;
			e = next;
		}
		st->table[0][st->rehashidx++] = NULL;
		moved++;
	}
	if (st->used[0] == 0) {
		narf_store_free(s, st->table[0]);
		st->table[0] = st->table[1];
		st->exp[0] = st->exp[1];
		st->used[0] = st->used[1];
		st->table[1] = NULL;
		st->used[1] = 0;
		st->exp[1] = 0;
		st->rehashidx = 0;
		narf_slotset_del(s, SET_REHASH, slot);
	}
	return moved;
}

/* A big collection whose key is gone, freed a few elements at a time. */
struct narf_obj_grave {
	struct narf_coll c;
	struct narf_obj_grave *next;
};

void narf_stbl_free_entry(struct narf_store *s, struct narf_entry *e)
{
	struct narf_obj_grave *g;
	struct narf_coll c;

	if (entry_is_coll(e)) {
		narf_entry_coll(e, &c);
		/* Freeing 1,000,000 fields takes ~75 ms: a big value is
		 * buried instead (its memory still counts until freed), a
		 * small one freed now, as Redis's lazyfree threshold. */
		g = narf_coll_lazy(&c) ? narf_store_malloc(s, sizeof(*g))
		                       : NULL;
		if (g != NULL) {
			g->c = c;
			g->next = s->obj_graves;
			s->obj_graves = g;
			s->grave_objs++;
		} else {
			narf_coll_free(&s->coll_ctx, &c);
		}
	}
	narf_store_free(s, e);
}

void narf_stbl_clear(struct narf_store *s, unsigned slot)
{
	struct narf_slot_table *st = &s->slots[slot];

	for (int t = 0; t < 2; t++) {
		size_t size = table_size(st, t);

		for (size_t b = 0; b < size; b++) {
			struct narf_entry *e = st->table[t][b];

			while (e != NULL) {
				struct narf_entry *next = e->next;

				narf_stbl_free_entry(s, e);
				e = next;
			}
		}
	}
	free_tables(s, slot);
	st->ttl_keys = 0;
	narf_slotset_del(s, SET_TTL, slot);
}

/* --- lazy freeing -------------------------------------------------------- */

/* A slot table detached by a lazy drop, freed from bucket `bucket` on. */
struct narf_grave {
	struct narf_entry **table;
	size_t size, bucket;
	struct narf_grave *next;
};

int narf_stbl_bury(struct narf_store *s, unsigned slot)
{
	struct narf_slot_table *st = &s->slots[slot];
	struct narf_grave *g[2] = {NULL, NULL};

	for (int t = 0; t < 2; t++) {
		if (st->table[t] == NULL)
			continue;
		g[t] = narf_store_malloc(s, sizeof(*g[t]));
		if (g[t] == NULL) {
			narf_store_free(s, g[0]);
			return NARF_ENOMEM;
		}
	}
	for (int t = 0; t < 2; t++) {
		if (g[t] == NULL)
			continue;
		g[t]->table = st->table[t];
		g[t]->size = table_size(st, t);
		g[t]->bucket = 0;
		g[t]->next = s->graves;
		s->graves = g[t];
		s->grave_keys += st->used[t];
	}
	st->table[0] = st->table[1] = NULL;
	st->used[0] = st->used[1] = 0;
	st->exp[0] = st->exp[1] = 0;
	st->rehashidx = 0;
	st->ttl_keys = 0;
	narf_slotset_del(s, SET_KEYS, slot);
	narf_slotset_del(s, SET_EVICT, slot);
	narf_slotset_del(s, SET_REHASH, slot);
	narf_slotset_del(s, SET_TTL, slot);
	return 0;
}

/* Free about budget elements of buried collections; what is left of the
 * budget. */
static unsigned reap_objects(struct narf_store *s, unsigned budget)
{
	while (s->obj_graves != NULL && budget > 0) {
		struct narf_obj_grave *g = s->obj_graves;
		unsigned step = budget < 256 ? budget : 256;

		budget -= step;
		if (!narf_coll_free_step(&s->coll_ctx, &g->c, step))
			continue;
		s->obj_graves = g->next;
		s->grave_objs--;
		narf_store_free(s, g);
	}
	return budget;
}

bool narf_stbl_reap(struct narf_store *s, unsigned budget)
{
	budget = reap_objects(s, budget);
	while (s->graves != NULL && budget > 0) {
		struct narf_grave *g = s->graves;

		/* A bucket costs one, and each entry in it one more. */
		for (; g->bucket < g->size && budget > 0; g->bucket++) {
			struct narf_entry *e = g->table[g->bucket];
			unsigned cost = 1;

			while (e != NULL) {
				struct narf_entry *next = e->next;

				narf_stbl_free_entry(s, e);
				s->grave_keys--;
				cost++;
				e = next;
			}
			budget = budget > cost ? budget - cost : 0;
		}
		if (g->bucket < g->size)
			break;
		s->graves = g->next;
		narf_store_free(s, g->table);
		narf_store_free(s, g);
	}
	return s->graves != NULL || s->obj_graves != NULL;
}

/* --- scanning and sampling ----------------------------------------------- */

static bool emit_chain(const struct narf_entry *e,
                       int64_t now_ms,
                       narf_store_visit_cb cb,
                       void *data)
{
	for (; e != NULL; e = e->next)
		if (!entry_expired(e, now_ms) && !cb(data, e))
			return false;
	return true;
}

uint64_t narf_stbl_scan(const struct narf_slot_table *st,
                        uint64_t v,
                        int64_t now_ms,
                        narf_store_visit_cb cb,
                        void *data,
                        bool *stopped)
{
	uint64_t start = v, m0, m1;
	int small = 0, big = 1;

	*stopped = false;
	if (st->table[0] == NULL)
		return 0;
	if (!slot_rehashing(st)) {
		m0 = table_size(st, 0) - 1;
		if (!emit_chain(st->table[0][v & m0], now_ms, cb, data))
			goto stop;
		return narf_cursor_next(v, m0);
	}
	if (st->exp[0] > st->exp[1]) {
		small = 1;
		big = 0;
	}
	m0 = table_size(st, small) - 1;
	m1 = table_size(st, big) - 1;
	if (!emit_chain(st->table[small][v & m0], now_ms, cb, data))
		goto stop;
	/* Then every bucket of the big table that the small bucket expands
	 * into, the cursor's bits above m0 counting through them. */
	do {
		if (!emit_chain(st->table[big][v & m1], now_ms, cb, data))
			goto stop;
		v = narf_cursor_next(v, m1);
	} while (v & (m0 ^ m1));
	return v;
stop:
	*stopped = true;
	return start;
}

struct narf_entry *narf_stbl_random(struct narf_store *s,
                                    const struct narf_slot_table *st)
{
	size_t s0 = table_size(st, 0), s1 = table_size(st, 1);
	size_t lo = slot_rehashing(st) ? st->rehashidx : 0;
	size_t span = s0 + s1 - lo, b = 0, len = 0;
	struct narf_entry *head = NULL, *e;

	/* Tables are at least 10% full, so a few random probes find a
	 * non-empty bucket; a walk from the last probe bounds the rest. */
	for (int tries = 0; tries < 32 && head == NULL; tries++) {
		b = lo + narf_store_rand(s) % span;
		head = b < s0 ? st->table[0][b] : st->table[1][b - s0];
	}
	for (size_t i = 0; head == NULL && i < span; i++) {
		b = lo + (b - lo + 1) % span;
		head = b < s0 ? st->table[0][b] : st->table[1][b - s0];
	}
	for (e = head; e != NULL; e = e->next)
		len++;
	if (len == 0)
		return NULL;
	e = head;
	for (size_t i = narf_store_rand(s) % len; i > 0; i--)
		e = e->next;
	return e;
}
