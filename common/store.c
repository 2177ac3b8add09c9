/*
 * The data node's store: the public operations of store.h on top of the
 * per-slot tables of store_table.c.
 *
 * The happy path of a write: narf_store_set() looks the key up (one rehash
 * step on the way if the slot is mid-rehash), builds the new entry, checks
 * the net growth against max_memory, evicts if it must and may, then links
 * the entry in place of the old one or as a new key.
 *
 * The failure modes: a write that does not fit under noeviction, or that
 * eviction cannot make fit, returns NARF_EOOM and leaves the store as it was
 * (apart from what eviction already freed). A failed malloc returns
 * NARF_ENOMEM, likewise without changes. Expired keys are removed lazily by
 * whatever touches them and actively by narf_store_active_expire(); both
 * report them through the removed callback, as eviction does.
 *
 * Replica slots are the exception (as a Redis replica's keyspace is): their
 * entries change only through the caller's writes and deletes, which
 * replay another node's. An expired entry there is hidden from reads but
 * stays until that node's delete comes; eviction never picks one; and a
 * write to one never evicts (it fails with NARF_EOOM instead), so a copy
 * never silently misses a write its primary made.
 */
#include <assert.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"

/* Keys sampled per eviction when the config says 0. */
#define DEFAULT_LRU_SAMPLES 5
/* Empty buckets active expiry may walk past per entry check it may do. */
#define EXPIRE_EMPTY_RATIO 10
/* Expired keys narf_store_random() reclaims before giving up. */
#define RANDOM_TRIES 100

/* Seconds since the epoch, low LRU_BITS bits (store_internal.h). */
static uint32_t lru_clock(int64_t now_ms)
{
	return (uint32_t)((uint64_t)now_ms / 1000) & LRU_MASK;
}

/* --- lifecycle ----------------------------------------------------------- */

int narf_store_create(struct narf_store **out,
                      const struct narf_store_config *cfg)
{
	struct narf_store *s = calloc(1, sizeof(*s));
	struct narf_entry **first;

	if (s == NULL)
		return NARF_ENOMEM;
	narf_store_account(s, s);
	memcpy(s->seed, cfg->seed, sizeof(s->seed));
	memcpy(&s->rng, cfg->seed, sizeof(s->rng));
	s->max_memory = cfg->max_memory;
	s->eviction = cfg->eviction;
	s->lru_samples =
	        cfg->lru_samples ? cfg->lru_samples : DEFAULT_LRU_SAMPLES;
	if (cfg->coll_limits != NULL)
		s->coll_limits = *cfg->coll_limits;
	else
		narf_coll_limits_default(&s->coll_limits);
	s->coll_ctx.used = &s->used_memory;
	s->coll_ctx.lim = &s->coll_limits;
	s->coll_ctx.seed = s->seed;
	s->coll_ctx.rng = &s->rng;
	/* What a key in an empty slot costs on top of its entry, so the
	 * memory check of a write can include it. */
	first = calloc((size_t)1 << TABLE_MIN_EXP, sizeof(*first));
	if (first == NULL) {
		free(s);
		return NARF_ENOMEM;
	}
	s->first_table_size = malloc_usable_size(first);
	free(first);
	s->empty_size = s->used_memory;
	*out = s;
	return 0;
}

void narf_store_destroy(struct narf_store *s)
{
	if (s == NULL)
		return;
	narf_store_flush(s);
	while (narf_stbl_reap(s, UINT32_MAX))
		;
	free(s);
}

void narf_store_set_removed_cb(struct narf_store *s,
                               narf_store_removed_cb cb,
                               void *data)
{
	s->removed_cb = cb;
	s->removed_data = data;
}

void narf_store_set_write_cb(struct narf_store *s,
                             narf_store_write_cb cb,
                             void *data)
{
	s->write_cb = cb;
	s->write_data = data;
}

bool narf_store_write_ttl_only(const struct narf_store *s)
{
	return s->write_ttl_only;
}

static void wrote(struct narf_store *s,
                  unsigned slot,
                  const char *key,
                  size_t klen,
                  const struct narf_entry *e)
{
	if (s->write_cb != NULL)
		s->write_cb(s->write_data, slot, key, klen, e);
}

void narf_store_set_replica(struct narf_store *s, unsigned slot, bool on)
{
	uint64_t bitv = (uint64_t)1 << (slot % 64);

	if (slot >= NARF_SLOTS || slot_replica(s, slot) == on)
		return;
	if (on) {
		s->replica[slot / 64] |= bitv;
		narf_slotset_del(s, SET_EVICT, slot);
		narf_slotset_del(s, SET_TTL, slot);
		return;
	}
	s->replica[slot / 64] &= ~bitv;
	if (s->slots[slot].table[0] != NULL)
		narf_slotset_add(s, SET_EVICT, slot);
	if (s->slots[slot].ttl_keys > 0)
		narf_slotset_add(s, SET_TTL, slot);
}

bool narf_store_is_replica(const struct narf_store *s, unsigned slot)
{
	return slot < NARF_SLOTS && slot_replica(s, slot);
}

void narf_store_set_limits(struct narf_store *s,
                           uint64_t max_memory,
                           enum narf_eviction eviction)
{
	s->max_memory = max_memory;
	s->eviction = eviction;
}

/* --- entries ------------------------------------------------------------- */

const char *narf_entry_key(const struct narf_entry *e, size_t *len)
{
	*len = entry_klen(e);
	return entry_key(e);
}

const char *narf_entry_value(const struct narf_entry *e, size_t *len)
{
	assert(entry_type(e) == NARF_TYPE_STRING);
	*len = entry_vlen(e);
	return entry_key(e) + entry_klen(e);
}

enum narf_type narf_entry_type(const struct narf_entry *e)
{
	return entry_type(e);
}

/* A collection's value is the address of its encoding's object. */
static void *entry_coll_ptr(const struct narf_entry *e)
{
	void *p;

	memcpy(&p, entry_key(e) + entry_klen(e), sizeof(p));
	return p;
}

bool narf_entry_coll(const struct narf_entry *e, struct narf_coll *c)
{
	if (!entry_is_coll(e))
		return false;
	c->type = (uint8_t)entry_type(e);
	c->enc = (uint8_t)((e->flags & ENTRY_ENC_MASK) >> ENTRY_ENC_SHIFT);
	c->p = entry_coll_ptr(e);
	return true;
}

/* Store a collection handle's address and encoding in its entry. */
static void entry_put_coll(struct narf_entry *e, const struct narf_coll *c)
{
	memcpy(entry_val(e), &c->p, sizeof(c->p));
	e->flags = (uint8_t)((e->flags & ~(ENTRY_TYPE_MASK | ENTRY_ENC_MASK)) |
	                     ((unsigned)c->type << ENTRY_TYPE_SHIFT) |
	                     ((unsigned)c->enc << ENTRY_ENC_SHIFT));
}

const char *narf_type_name(enum narf_type t)
{
	static const char *const names[NARF_TYPE_COUNT] = {
	        [NARF_TYPE_STRING] = "string", [NARF_TYPE_HASH] = "hash",
	        [NARF_TYPE_LIST] = "list",     [NARF_TYPE_SET] = "set",
	        [NARF_TYPE_ZSET] = "zset",
	};

	return (unsigned)t < NARF_TYPE_COUNT ? names[t] : "none";
}

int64_t narf_entry_expire(const struct narf_entry *e)
{
	return entry_expire(e);
}

uint64_t narf_entry_idle(const struct narf_store *s,
                         const struct narf_entry *e,
                         int64_t now_ms)
{
	uint32_t idle = (lru_clock(now_ms) - entry_lru(e)) & LRU_MASK;

	(void)s;
	/* A clock that went backwards reads as "just touched". */
	return idle > LRU_MASK / 2 ? 0 : idle;
}

/* A new, unlinked entry; *out is owned by the caller until linked. */
static int entry_new(const char *key,
                     size_t klen,
                     const char *val,
                     size_t vlen,
                     int64_t expire_ms,
                     struct narf_entry **out)
{
	uint8_t flags =
	        (uint8_t)((expire_ms != 0 ? ENTRY_HAS_EXPIRE : 0) |
	                  (entry_lens_small(klen, vlen) ? ENTRY_SMALL : 0));
	size_t off = entry_lens_size(flags) + (expire_ms != 0 ? 8 : 0);
	struct narf_entry *e;

	if (klen > UINT32_MAX || vlen > UINT32_MAX)
		return NARF_ETOOLARGE;
	e = malloc(ENTRY_HDR + off + klen + vlen + 1);
	if (e == NULL)
		return NARF_ENOMEM;
	e->next = NULL;
	e->flags = flags;
	entry_set_lru(e, 0);
	entry_set_lens(e, (uint32_t)klen, (uint32_t)vlen);
	if (expire_ms != 0)
		entry_set_expire(e, expire_ms);
	memcpy(e->data + off, key, klen);
	if (vlen != 0)
		memcpy(e->data + off + klen, val, vlen);
	e->data[off + klen + vlen] = '\0';
	*out = e;
	return 0;
}

static void ttl_count(struct narf_store *s, unsigned slot, int delta)
{
	struct narf_slot_table *st = &s->slots[slot];

	st->ttl_keys += (uint32_t)delta;
	s->keys_with_ttl += (uint64_t)(int64_t)delta;
	if (st->ttl_keys == 0)
		narf_slotset_del(s, SET_TTL, slot);
	else if (!slot_replica(s, slot))
		narf_slotset_add(s, SET_TTL, slot);
}

/* Take an entry out of its chain and the counts (it is still allocated). */
static void unlink_entry(struct narf_store *s,
                         unsigned slot,
                         struct narf_entry_pos pos)
{
	struct narf_entry *e = *pos.link;

	*pos.link = e->next;
	s->slots[slot].used[pos.t]--;
	s->keys--;
	if (e->flags & ENTRY_HAS_EXPIRE)
		ttl_count(s, slot, -1);
}

/* Unlink and free an entry. why < 0 is a client's delete; otherwise the
 * removed callback hears about it first, while the key is still valid. */
static void remove_entry(struct narf_store *s,
                         unsigned slot,
                         struct narf_entry_pos pos,
                         int why)
{
	struct narf_entry *e = *pos.link;

	unlink_entry(s, slot, pos);
	if (why == NARF_STORE_EXPIRED)
		s->expired++;
	else if (why == NARF_STORE_EVICTED)
		s->evicted++;
	if (why >= 0 && s->removed_cb != NULL)
		s->removed_cb(s->removed_data, slot, entry_key(e),
		              entry_klen(e), (enum narf_store_reason)why);
	narf_stbl_free_entry(s, e);
	narf_stbl_after_delete(s, slot);
}

/* How a lookup treats an expired entry of a replica slot: a read does not
 * see it, a write (the primary's state arriving) replaces or removes it. */
enum lookup_mode { LOOKUP_READ, LOOKUP_WRITE };

/* Look a key up, moving the slot's rehash one bucket forward first, and
 * reclaim it if it has expired (in a replica slot: see lookup_mode). */
static struct narf_entry *lookup(struct narf_store *s,
                                 unsigned slot,
                                 const char *key,
                                 size_t klen,
                                 uint64_t h,
                                 int64_t now_ms,
                                 struct narf_entry_pos *pos,
                                 enum lookup_mode mode)
{
	struct narf_slot_table *st = &s->slots[slot];
	struct narf_entry_pos p;
	struct narf_entry *e;

	if (st->table[0] == NULL)
		return NULL;
	if (slot_rehashing(st))
		narf_stbl_rehash(s, slot, 1);
	e = narf_stbl_find(st, key, klen, h, &p);
	if (e != NULL && entry_expired(e, now_ms)) {
		if (slot_replica(s, slot)) {
			if (mode == LOOKUP_READ)
				return NULL;
		} else {
			remove_entry(s, slot, p, NARF_STORE_EXPIRED);
			return NULL;
		}
	}
	if (e != NULL && pos != NULL)
		*pos = p;
	return e;
}

/* --- eviction ------------------------------------------------------------ */

/* A random entry of a random slot of set (SET_KEYS: any slot with keys,
 * SET_EVICT: one this store may evict from). Slots are picked evenly, so
 * keys in sparse slots are sampled a little more often: an approximation,
 * as Redis's sampling is. */
static struct narf_entry *sample(struct narf_store *s, int set, unsigned *slot)
{
	const struct narf_slot_set *keys = &s->sets[set];

	if (keys->n == 0)
		return NULL;
	*slot = keys->member[narf_store_rand(s) % keys->n];
	return narf_stbl_random(s, &s->slots[*slot]);
}

/* Was e used longer ago than f? Modulo 2^LRU_BITS: of two clocks, the one
 * less than half the range behind the other is the older. */
static bool lru_older(const struct narf_entry *e, const struct narf_entry *f)
{
	uint32_t d = (entry_lru(f) - entry_lru(e)) & LRU_MASK;

	return d != 0 && d <= LRU_MASK / 2;
}

/* Evict the least recently used of lru_samples random keys of slots that
 * are not replica slots (never the pinned one). Returns false when there
 * is nothing to evict. */
static bool evict_one(struct narf_store *s)
{
	const struct narf_slot_set *ev = &s->sets[SET_EVICT];
	struct narf_entry *best = NULL;
	unsigned best_slot = 0;

	for (unsigned i = 0; i < s->lru_samples; i++) {
		unsigned slot;
		struct narf_entry *e = sample(s, SET_EVICT, &slot);

		if (e == NULL || e == s->pinned)
			continue;
		/* Wrapping difference: the oldest has the largest age. */
		if (best == NULL || lru_older(e, best)) {
			best = e;
			best_slot = slot;
		}
	}
	if (best == NULL) {
		/* Only the pinned key was drawn; another draw may do better
		 * unless it is the only evictable key left (then it is the
		 * one key of the one evictable slot: any other would have
		 * been drawn). */
		return ev->n > 1 ||
		       (ev->n == 1 && slot_keys(&s->slots[ev->member[0]]) > 1);
	}
	remove_entry(s, best_slot,
	             narf_stbl_locate(s, &s->slots[best_slot], best),
	             NARF_STORE_EVICTED);
	return true;
}

/* Make `grow` more bytes fit under max_memory, evicting only when
 * may_evict and the policy allows it. */
static int fit(struct narf_store *s, uint64_t grow, bool may_evict)
{
	if (s->max_memory == 0)
		return 0;
	/* A write that could not fit even in an empty store must not empty
	 * it first: refuse it before evicting anything. */
	if (grow > 0 && (s->max_memory < s->empty_size ||
	                 grow > s->max_memory - s->empty_size))
		return NARF_EOOM;
	for (;;) {
		/* Memory of lazily dropped slots and buried collections (an
		 * evicted big one included) is about to go: free it first
		 * rather than evict more live keys or refuse the write. */
		while (s->used_memory + grow > s->max_memory &&
		       (s->graves != NULL || s->obj_graves != NULL))
			narf_stbl_reap(s, 1024);
		if (s->used_memory + grow <= s->max_memory)
			return 0;
		if (!may_evict || s->eviction == NARF_EVICT_NOEVICTION ||
		    !evict_one(s))
			return NARF_EOOM;
	}
}

int narf_store_make_room(struct narf_store *s, size_t bytes, int64_t now_ms)
{
	(void)now_ms;
	return fit(s, bytes, true);
}

/* --- operations ---------------------------------------------------------- */

struct narf_entry *narf_store_get(struct narf_store *s,
                                  unsigned slot,
                                  const char *key,
                                  size_t klen,
                                  int64_t now_ms,
                                  unsigned flags)
{
	return narf_store_get_h(s, slot, key, klen,
	                        narf_store_hash(s, key, klen), now_ms, flags);
}

struct narf_entry *narf_store_get_h(struct narf_store *s,
                                    unsigned slot,
                                    const char *key,
                                    size_t klen,
                                    uint64_t h,
                                    int64_t now_ms,
                                    unsigned flags)
{
	struct narf_entry *e =
	        lookup(s, slot, key, klen, h, now_ms, NULL,
	               (flags & NARF_STORE_EXPIRED_TOO) && slot_replica(s, slot)
	                       ? LOOKUP_WRITE
	                       : LOOKUP_READ);

	if (e != NULL && !(flags & NARF_STORE_NOTOUCH))
		entry_set_lru(e, lru_clock(now_ms));
	return e;
}

/*
 * The common case of a write to an existing key whose new value fits the old
 * allocation (a counter, a fixed-size value): overwrite it where it is, with
 * no malloc, no free and no eviction (it does not grow). Only when the
 * expiry field's presence is unchanged (so the key does not move), the value
 * does not alias the entry, and the allocation would not be more than half
 * empty (so a shrunk value gives its memory back).
 */
static bool overwrite_in_place(struct narf_store *s,
                               unsigned slot,
                               struct narf_entry *old,
                               const char *val,
                               size_t vlen,
                               int64_t expire_ms,
                               int64_t now_ms)
{
	uint32_t klen = entry_klen(old);
	size_t off = entry_meta_size(old);
	size_t need = ENTRY_HDR + off + klen + vlen + 1;
	size_t have = malloc_usable_size(old);
	char *v;

	/* The lengths' form and the expiry's presence stay as they are, so
	 * the key does not move. */
	if (entry_type(old) != NARF_TYPE_STRING ||
	    (expire_ms != 0) != ((old->flags & ENTRY_HAS_EXPIRE) != 0) ||
	    ((old->flags & ENTRY_SMALL) && !entry_lens_small(klen, vlen)) ||
	    need > have || need * 2 < have || vlen > UINT32_MAX ||
	    (val >= (const char *)old && val < (const char *)old + have))
		return false;
	if (expire_ms != 0)
		entry_set_expire(old, expire_ms);
	v = old->data + off + klen;
	if (vlen != 0)
		memmove(v, val, vlen);
	v[vlen] = '\0';
	entry_set_lens(old, klen, (uint32_t)vlen);
	entry_set_lru(old, lru_clock(now_ms));
	(void)s;
	(void)slot;
	return true;
}

int narf_store_set(struct narf_store *s,
                   unsigned slot,
                   const char *key,
                   size_t klen,
                   const char *val,
                   size_t vlen,
                   int64_t expire_ms,
                   int64_t now_ms,
                   struct narf_entry **out)
{
	return narf_store_set_h(s, slot, key, klen,
	                        narf_store_hash(s, key, klen), val, vlen,
	                        expire_ms, now_ms, out);
}

int narf_store_update(struct narf_store *s,
                      unsigned slot,
                      const char *key,
                      size_t klen,
                      uint64_t h,
                      struct narf_entry *old,
                      const char *val,
                      size_t vlen,
                      int64_t expire_ms,
                      int64_t now_ms)
{
	if (old != NULL) {
		if (expire_ms == NARF_STORE_KEEPTTL)
			expire_ms = entry_expire(old);
		if (overwrite_in_place(s, slot, old, val, vlen, expire_ms,
		                       now_ms)) {
			wrote(s, slot, key, klen, old);
			return 0;
		}
	}
	return narf_store_set_h(s, slot, key, klen, h, val, vlen, expire_ms,
	                        now_ms, NULL);
}

int narf_store_set_h(struct narf_store *s,
                     unsigned slot,
                     const char *key,
                     size_t klen,
                     uint64_t h,
                     const char *val,
                     size_t vlen,
                     int64_t expire_ms,
                     int64_t now_ms,
                     struct narf_entry **out)
{
	struct narf_entry_pos pos;
	struct narf_entry *old =
	        lookup(s, slot, key, klen, h, now_ms, &pos, LOOKUP_WRITE);
	struct narf_entry *e;
	size_t size, old_size = 0;
	uint64_t evicted = s->evicted;
	int rv;

	if (expire_ms == NARF_STORE_KEEPTTL)
		expire_ms = old != NULL ? entry_expire(old) : 0;
	if (old != NULL &&
	    overwrite_in_place(s, slot, old, val, vlen, expire_ms, now_ms)) {
		if (out != NULL)
			*out = old;
		wrote(s, slot, key, klen, old);
		return 0;
	}
	/* Build the entry first: val may point into an entry that eviction
	 * is about to free (RENAME, SETRANGE on a copy of another key). */
	rv = entry_new(key, klen, val, vlen, expire_ms, &e);
	if (rv != 0)
		return rv;
	size = malloc_usable_size(e);
	if (old != NULL)
		old_size = malloc_usable_size(old);
	else if (s->slots[slot].table[0] == NULL)
		size += s->first_table_size;
	if (size > old_size) {
		s->pinned = old;
		/* A replica slot's write replays its primary's: making room
		 * by evicting would drop data that primary still has. */
		rv = fit(s, size - old_size, !slot_replica(s, slot));
		s->pinned = NULL;
		if (rv != 0) {
			free(e);
			return rv;
		}
	}
	entry_set_lru(e, lru_clock(now_ms));
	narf_store_account(s, e);
	if (old == NULL) {
		rv = narf_stbl_insert(s, slot, e, h);
		if (rv != 0) {
			narf_store_free(s, e);
			return rv;
		}
		s->keys++;
	} else {
		/* Evicting from this slot may have moved buckets. */
		if (s->evicted != evicted)
			pos = narf_stbl_locate(s, &s->slots[slot], old);
		assert(pos.link != NULL && *pos.link == old);
		e->next = old->next;
		*pos.link = e;
		if (old->flags & ENTRY_HAS_EXPIRE)
			ttl_count(s, slot, -1);
		narf_stbl_free_entry(s, old);
	}
	if (e->flags & ENTRY_HAS_EXPIRE)
		ttl_count(s, slot, +1);
	if (out != NULL)
		*out = e;
	wrote(s, slot, entry_key(e), entry_klen(e), e);
	return 0;
}

bool narf_store_del(struct narf_store *s,
                    unsigned slot,
                    const char *key,
                    size_t klen,
                    int64_t now_ms)
{
	struct narf_entry_pos pos;
	struct narf_entry *e =
	        lookup(s, slot, key, klen, narf_store_hash(s, key, klen),
	               now_ms, &pos, LOOKUP_WRITE);
	bool live;

	if (e == NULL)
		return false;
	live = !entry_expired(e, now_ms); /* false: a hidden replica entry */
	remove_entry(s, slot, pos, -1);
	wrote(s, slot, key, klen, NULL);
	return live;
}

/* --- collections ---------------------------------------------------------- */

const struct narf_coll_ctx *narf_store_coll_ctx(struct narf_store *s)
{
	return &s->coll_ctx;
}

void narf_store_set_coll_limits(struct narf_store *s,
                                const struct narf_coll_limits *lim)
{
	s->coll_limits = *lim;
}

const struct narf_coll_limits *narf_store_coll_limits(
        const struct narf_store *s)
{
	return &s->coll_limits;
}

int narf_store_coll_open(struct narf_store *s,
                         unsigned slot,
                         const char *key,
                         size_t klen,
                         enum narf_type t,
                         size_t grow,
                         unsigned flags,
                         int64_t now_ms,
                         struct narf_cref *r)
{
	return narf_store_coll_open_h(s, slot, key, klen,
	                              narf_store_hash(s, key, klen), t, grow,
	                              flags, now_ms, r);
}

int narf_store_coll_open_h(struct narf_store *s,
                           unsigned slot,
                           const char *key,
                           size_t klen,
                           uint64_t h,
                           enum narf_type t,
                           size_t grow,
                           unsigned flags,
                           int64_t now_ms,
                           struct narf_cref *r)
{
	struct narf_entry *e =
	        lookup(s, slot, key, klen, h, now_ms, NULL, LOOKUP_WRITE);
	const void *none = NULL;
	uint64_t need = grow;
	int rv;

	assert(t != NARF_TYPE_STRING);
	memset(r, 0, sizeof(*r));
	r->slot = slot;
	if (e != NULL && entry_type(e) != t)
		return NARF_EWRONGTYPE;
	if (e == NULL && !(flags & NARF_COLL_CREATE))
		return 0;
	if (e == NULL) {
		/* A replica slot's expired entry was found by lookup() and
		 * is of type t: it is reused, as the primary's write does. */
		rv = entry_new(key, klen, (const char *)&none, sizeof(none), 0,
		               &e);
		if (rv != 0)
			return rv;
		need += malloc_usable_size(e);
		if (s->slots[slot].table[0] == NULL)
			need += s->first_table_size;
		rv = fit(s, need, !slot_replica(s, slot));
		if (rv == 0) {
			narf_store_account(s, e);
			rv = narf_stbl_insert(s, slot, e, h);
			if (rv != 0)
				narf_store_free(s, e);
		} else {
			free(e);
		}
		if (rv != 0)
			return rv;
		s->keys++;
		e->flags |= (uint8_t)((unsigned)t << ENTRY_TYPE_SHIFT);
		r->created = true;
	} else if (need > 0) {
		s->pinned = e;
		rv = fit(s, need, !slot_replica(s, slot));
		s->pinned = NULL;
		if (rv != 0)
			return rv;
	}
	r->e = e;
	narf_entry_coll(e, &r->c);
	return 0;
}

void narf_store_coll_close(struct narf_store *s,
                           struct narf_cref *r,
                           int64_t now_ms)
{
	struct narf_entry *e = r->e;
	struct narf_entry_pos pos;

	if (e == NULL)
		return;
	r->e = NULL;
	entry_put_coll(e, &r->c);
	if (narf_coll_len(&r->c) > 0) {
		entry_set_lru(e, lru_clock(now_ms));
		return;
	}
	/* Emptied: the key goes, as in Redis. Only a key that existed
	 * before the command was ever seen by the write callback. */
	pos = narf_stbl_locate(s, &s->slots[r->slot], e);
	assert(pos.link != NULL);
	unlink_entry(s, r->slot, pos);
	if (!r->created)
		wrote(s, r->slot, entry_key(e), entry_klen(e), NULL);
	narf_stbl_free_entry(s, e);
	narf_stbl_after_delete(s, r->slot);
}

int narf_store_rename(struct narf_store *s,
                      unsigned src_slot,
                      const char *src,
                      size_t src_len,
                      unsigned dst_slot,
                      const char *dst,
                      size_t dst_len,
                      int64_t now_ms)
{
	struct narf_entry_pos pos;
	struct narf_entry *e = lookup(s, src_slot, src, src_len,
	                              narf_store_hash(s, src, src_len), now_ms,
	                              &pos, LOOKUP_READ);
	struct narf_entry *n, *old;
	uint64_t h = narf_store_hash(s, dst, dst_len);
	uint64_t need;
	int rv;

	if (e == NULL)
		return NARF_ENOTFOUND;
	/* The new entry carries the raw value bytes: a string, or the
	 * collection's address, which moves without a copy. */
	rv = entry_new(dst, dst_len, entry_key(e) + entry_klen(e),
	               entry_vlen(e), entry_expire(e), &n);
	if (rv != 0)
		return rv;
	n->flags |= e->flags & (ENTRY_TYPE_MASK | ENTRY_ENC_MASK);
	entry_set_lru(n, lru_clock(now_ms));
	need = malloc_usable_size(n);
	if (s->slots[dst_slot].table[0] == NULL)
		need += s->first_table_size;
	s->pinned = e;
	rv = fit(s, need, !slot_replica(s, dst_slot));
	s->pinned = NULL;
	if (rv != 0) {
		free(n);
		return rv;
	}
	/* The old dst goes first (with its object), then src's entry is
	 * unlinked and freed without its object, which n now owns. */
	old = lookup(s, dst_slot, dst, dst_len, h, now_ms, &pos, LOOKUP_WRITE);
	if (old != NULL)
		remove_entry(s, dst_slot, pos, -1);
	narf_store_account(s, n);
	rv = narf_stbl_insert(s, dst_slot, n, h);
	if (rv != 0) {
		narf_store_free(s, n);
		return rv;
	}
	s->keys++;
	if (n->flags & ENTRY_HAS_EXPIRE)
		ttl_count(s, dst_slot, +1);
	pos = narf_stbl_locate(s, &s->slots[src_slot], e);
	assert(pos.link != NULL);
	unlink_entry(s, src_slot, pos);
	wrote(s, dst_slot, dst, dst_len, n);
	wrote(s, src_slot, entry_key(e), entry_klen(e), NULL);
	narf_store_free(s, e);
	narf_stbl_after_delete(s, src_slot);
	return 0;
}

/*
 * The expiry lives inside the entry only when there is one, so adding or
 * removing it rebuilds the entry; changing an existing one is in place.
 * Returns the entry (which may have moved) or NULL when the rebuild could
 * not allocate, in which case nothing changed.
 */
struct narf_entry *narf_store_set_expire(struct narf_store *s,
                                         unsigned slot,
                                         struct narf_entry *e,
                                         int64_t expire_ms)
{
	struct narf_entry_pos pos;
	struct narf_entry *n;
	/* the raw value bytes: a string, or a collection's address */
	size_t vlen = entry_vlen(e);
	const char *v = entry_key(e) + entry_klen(e);

	if (expire_ms != 0 && (e->flags & ENTRY_HAS_EXPIRE)) {
		entry_set_expire(e, expire_ms);
		s->write_ttl_only = true;
		wrote(s, slot, entry_key(e), entry_klen(e), e);
		s->write_ttl_only = false;
		return e;
	}
	if (expire_ms == 0 && !(e->flags & ENTRY_HAS_EXPIRE))
		return e;
	if (entry_new(entry_key(e), entry_klen(e), v, vlen, expire_ms, &n) != 0)
		return NULL;
	narf_store_account(s, n);
	entry_set_lru(n, entry_lru(e));
	/* the collection's object moves to the new entry as it is */
	n->flags |= e->flags & (ENTRY_TYPE_MASK | ENTRY_ENC_MASK);
	pos = narf_stbl_locate(s, &s->slots[slot], e);
	assert(pos.link != NULL); /* e must be an entry of this slot */
	n->next = e->next;
	*pos.link = n;
	ttl_count(s, slot, expire_ms != 0 ? +1 : -1);
	narf_store_free(s, e);
	s->write_ttl_only = true;
	wrote(s, slot, entry_key(n), entry_klen(n), n);
	s->write_ttl_only = false;
	return n;
}

/* --- whole store and slots ----------------------------------------------- */

void narf_store_stats(const struct narf_store *s, struct narf_store_stats *st)
{
	st->keys = s->keys;
	st->keys_with_ttl = s->keys_with_ttl;
	st->used_memory = s->used_memory;
	st->expired = s->expired;
	st->evicted = s->evicted;
	st->rehashing = s->sets[SET_REHASH].n;
	st->lazyfree_pending = s->grave_keys + s->grave_objs;
}

uint64_t narf_store_count(const struct narf_store *s)
{
	return s->keys;
}

uint64_t narf_store_slot_count(const struct narf_store *s, unsigned slot)
{
	return slot < NARF_SLOTS ? slot_keys(&s->slots[slot]) : 0;
}

uint64_t narf_store_used_memory(const struct narf_store *s)
{
	return s->used_memory;
}

void narf_store_drop_slot(struct narf_store *s, unsigned slot)
{
	struct narf_slot_table *st = &s->slots[slot];

	s->keys -= slot_keys(st);
	s->keys_with_ttl -= st->ttl_keys;
	narf_stbl_clear(s, slot);
}

/* Slots this small are freed at once: a grave would cost more. */
#define LAZY_MIN_KEYS 16

void narf_store_drop_slot_lazy(struct narf_store *s, unsigned slot)
{
	struct narf_slot_table *st = &s->slots[slot];
	uint64_t keys = slot_keys(st), ttl = st->ttl_keys;

	if (keys < LAZY_MIN_KEYS || narf_stbl_bury(s, slot) != 0) {
		narf_store_drop_slot(s, slot);
		return;
	}
	s->keys -= keys;
	s->keys_with_ttl -= ttl;
}

bool narf_store_reap(struct narf_store *s, unsigned budget)
{
	return narf_stbl_reap(s, budget);
}

void narf_store_flush(struct narf_store *s)
{
	while (s->sets[SET_KEYS].n > 0)
		narf_store_drop_slot(s, s->sets[SET_KEYS].member[0]);
	s->exp_cursor = 0;
	s->exp_bucket = 0;
	s->exp_skip = 0;
}

void narf_store_foreach_slot(struct narf_store *s,
                             unsigned slot,
                             int64_t now_ms,
                             narf_store_visit_cb cb,
                             void *data)
{
	const struct narf_slot_table *st = &s->slots[slot];

	for (int t = 0; t < 2; t++) {
		size_t size = table_size(st, t);

		for (size_t b = 0; b < size; b++) {
			const struct narf_entry *e = st->table[t][b];

			for (; e != NULL; e = e->next)
				if (!entry_expired(e, now_ms) && !cb(data, e))
					return;
		}
	}
}

/*
 * The cursor holds the slot in its top 16 bits and the slot's reverse-binary
 * bucket cursor in the low 48 (tables never get near 2^48 buckets). Keys
 * never change slot, so the dictScan guarantee per slot is the guarantee for
 * the whole store.
 */
#define SCAN_SLOT_SHIFT 48
#define SCAN_BUCKET_MASK ((UINT64_C(1) << SCAN_SLOT_SHIFT) - 1)

uint64_t narf_store_scan(struct narf_store *s,
                         uint64_t cursor,
                         unsigned count,
                         int64_t now_ms,
                         narf_store_visit_cb cb,
                         void *data)
{
	uint64_t slot = cursor >> SCAN_SLOT_SHIFT;
	uint64_t v = cursor & SCAN_BUCKET_MASK;
	bool stopped = false;

	if (count == 0)
		count = 1;
	while (slot < NARF_SLOTS) {
		const struct narf_slot_table *st = &s->slots[slot];

		if (count == 0 || stopped)
			return (slot << SCAN_SLOT_SHIFT) | v;
		if (st->table[0] != NULL) {
			v = narf_stbl_scan(st, v, now_ms, cb, data, &stopped);
			count--;
			if (stopped || v != 0)
				continue;
		}
		slot++;
		v = 0;
	}
	return 0;
}

struct narf_entry *narf_store_random(struct narf_store *s,
                                     int64_t now_ms,
                                     unsigned *slot)
{
	for (int i = 0; i < RANDOM_TRIES; i++) {
		unsigned sl;
		struct narf_entry *e = sample(s, SET_KEYS, &sl);

		if (e == NULL)
			return NULL;
		if (!entry_expired(e, now_ms)) {
			if (slot != NULL)
				*slot = sl;
			return e;
		}
		if (!slot_replica(s, sl)) /* a replica's waits for a delete */
			remove_entry(s, sl,
			             narf_stbl_locate(s, &s->slots[sl], e),
			             NARF_STORE_EXPIRED);
	}
	return NULL;
}

/* --- periodic work ------------------------------------------------------- */

/* The head of bucket b, counting table[0]'s buckets and then table[1]'s. */
static struct narf_entry **bucket_at(struct narf_slot_table *st, uint64_t b)
{
	size_t s0 = table_size(st, 0);

	return b < s0 ? &st->table[0][b] : &st->table[1][b - s0];
}

/*
 * Walk the slots that hold TTL keys from where the last call stopped,
 * bucket by bucket. Entries moved by a rehash between calls may be passed
 * over once; the next lap catches them. Returns keys reclaimed.
 */
unsigned narf_store_active_expire(struct narf_store *s,
                                  int64_t now_ms,
                                  unsigned max_checks)
{
	const struct narf_slot_set *ttl = &s->sets[SET_TTL];
	uint64_t empty_budget = (uint64_t)max_checks * EXPIRE_EMPTY_RATIO;
	unsigned checks = 0, reclaimed = 0;
	uint32_t laps = 0;

	while (checks < max_checks && ttl->n > 0 && laps <= ttl->n) {
		unsigned slot;
		struct narf_slot_table *st;
		struct narf_entry **link;
		uint64_t skip = 0;

		if (s->exp_cursor >= ttl->n) {
			s->exp_cursor = 0;
			s->exp_bucket = 0;
			s->exp_skip = 0;
		}
		slot = ttl->member[s->exp_cursor];
		st = &s->slots[slot];
		if (s->exp_bucket >= table_size(st, 0) + table_size(st, 1)) {
			s->exp_cursor++;
			s->exp_bucket = 0;
			s->exp_skip = 0;
			laps++;
			continue;
		}
		link = bucket_at(st, s->exp_bucket);
		if (*link == NULL && empty_budget-- == 0)
			break;
		while (*link != NULL && checks < max_checks) {
			struct narf_entry_pos pos = {link, 0};
			struct narf_entry **t0 = st->table[0];
			struct narf_entry **t1 = st->table[1];

			if (skip++ < s->exp_skip) {
				link = &(*link)->next;
				continue;
			}
			checks++;
			if (!entry_expired(*link, now_ms)) {
				link = &(*link)->next;
				s->exp_skip++;
				continue;
			}
			pos.t = s->exp_bucket < table_size(st, 0) ? 0 : 1;
			remove_entry(s, slot, pos, NARF_STORE_EXPIRED);
			reclaimed++;
			/* The slot may have left the TTL set or been resized:
			 * start over on whatever the cursor now points at. */
			if (s->exp_cursor >= ttl->n ||
			    ttl->member[s->exp_cursor] != slot ||
			    st->table[0] != t0 || st->table[1] != t1) {
				s->exp_bucket = 0;
				s->exp_skip = 0;
				link = NULL;
				break;
			}
		}
		if (link != NULL && *link == NULL) {
			s->exp_bucket++;
			s->exp_skip = 0;
		}
	}
	return reclaimed;
}

void narf_store_cron(struct narf_store *s, unsigned steps)
{
	const struct narf_slot_set *rh = &s->sets[SET_REHASH];

	while (steps > 0 && rh->n > 0) {
		unsigned slot, moved;

		if (s->rehash_cursor >= rh->n)
			s->rehash_cursor = 0;
		slot = rh->member[s->rehash_cursor];
		moved = narf_stbl_rehash(s, slot, steps < 100 ? steps : 100);
		/* Walking only empty buckets still costs a step. */
		steps -= moved > 0 ? (moved < steps ? moved : steps) : 1;
		if (rh->n > s->rehash_cursor &&
		    rh->member[s->rehash_cursor] == slot)
			s->rehash_cursor++;
	}
}
