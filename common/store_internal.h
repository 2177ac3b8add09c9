/*
 * Private to the store (store.c, store_table.c): the entry layout, the
 * per-slot hash tables and the sets of slots the periodic work walks.
 *
 * Entry layout. One allocation per key:
 *
 *     next (8) | flags (1) | lru (3) | lengths (3 or 8) |
 *     [expire (8), only with ENTRY_HAS_EXPIRE] | key | value | '\0'
 *
 * lengths is klen (1) and vlen (2) when the key is under 256 bytes and the
 * value under 64 KiB (ENTRY_SMALL), else klen (4) and vlen (4). So a
 * 16-byte key with a 32-byte value asks for 15 + 49 = 64 bytes, jemalloc's
 * 64-byte class (issue 18; it was a 21-byte header and the 80-byte class).
 * lru is 24 bits of seconds, little-endian, compared modulo 2^24 (194
 * days), as Redis's LRU clock. The lengths and the expiry are stored
 * unaligned and read with memcpy. The value is followed by a NUL that is
 * not part of it, so INCR and friends can parse it in place.
 *
 * Slot tables. Each slot owns up to two bucket arrays (two only while an
 * incremental rehash moves entries from table[0] to table[1], as Redis's
 * dict does). A slot without keys owns no arrays at all: its 48-byte
 * descriptor is all it costs.
 *
 * Slot sets. Four indexed sets of slot numbers (slots with keys, slots with
 * keys this store may evict, slots with TTL keys it expires itself, slots
 * mid-rehash) give O(1) add, remove and random pick, so eviction, active
 * expiry and the rehash cron never scan 16384 descriptors to find the few
 * that matter.
 *
 * Replica slots (narf_store_set_replica) hold another node's data: they are
 * in neither the evictable set nor the expiry set, so nothing but the
 * caller's explicit writes and deletes ever removes one of their entries.
 */
#ifndef NARF_STORE_INTERNAL_H
#define NARF_STORE_INTERNAL_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "coll.h"
#include "store.h"

#define ENTRY_HAS_EXPIRE 0x01u
/* lengths are klen (1 byte) and vlen (2), not 4 and 4 */
#define ENTRY_SMALL 0x80u
#define ENTRY_SMALL_KLEN 0xffu
#define ENTRY_SMALL_VLEN 0xffffu
#define LRU_BITS 24
#define LRU_MASK ((1u << LRU_BITS) - 1)
/* The value's type (enum narf_type) in three of the spare flag bits, so a
 * collection costs its entry no byte more than a string does. */
#define ENTRY_TYPE_SHIFT 1
#define ENTRY_TYPE_MASK 0x0eu
/* A collection's encoding (enum narf_enc, coll.h) in three more. */
#define ENTRY_ENC_SHIFT 4
#define ENTRY_ENC_MASK 0x70u

struct narf_entry {
	/* borrowed: the next entry of the bucket's chain; every entry is
	 * owned by its slot table, not by the entry before it */
	struct narf_entry *next;
	uint8_t flags;  /* ENTRY_HAS_EXPIRE | ENTRY_SMALL | type | encoding */
	uint8_t lru[3]; /* seconds since the epoch, low 24 bits */
	char data[];    /* lengths [int64_t expire] key value '\0' */
};

#define ENTRY_HDR offsetof(struct narf_entry, data)
/* Issue 18 counts on this header: a 16-byte key with a 32-byte value is a
 * 64-byte request (jemalloc's 64-byte class). New types must not grow it. */
static_assert(ENTRY_HDR == 12, "string entries must not grow");
static_assert(NARF_TYPE_COUNT <= (ENTRY_TYPE_MASK >> ENTRY_TYPE_SHIFT) + 1,
              "enum narf_type must fit in ENTRY_TYPE_MASK");

static inline enum narf_type entry_type(const struct narf_entry *e)
{
	return (enum narf_type)((e->flags & ENTRY_TYPE_MASK) >>
	                        ENTRY_TYPE_SHIFT);
}

static inline bool entry_is_coll(const struct narf_entry *e)
{
	return (e->flags & ENTRY_TYPE_MASK) != 0;
}

/* Smallest table a slot gets: 4 buckets, as Redis's DICT_HT_INITIAL_SIZE. */
#define TABLE_MIN_EXP 2

/* SET_KEYS: slots with keys. SET_EVICT: those that are not replica slots
 * (eviction samples them). SET_TTL: slots with TTL keys that are not
 * replica slots (active expiry walks them). SET_REHASH: mid-rehash. */
enum { SET_KEYS, SET_EVICT, SET_TTL, SET_REHASH, SET_COUNT };

struct narf_slot_table {
	struct narf_entry **table[2]; /* owned; NULL when not in use */
	uint32_t used[2];             /* entries in each table */
	uint32_t rehashidx;           /* next table[0] bucket to move */
	uint32_t ttl_keys;            /* entries with ENTRY_HAS_EXPIRE */
	uint8_t exp[2];               /* log2 of each table's size */
	uint16_t pos1[SET_COUNT];     /* 1 + index in each set, 0 = absent */
};

struct narf_slot_set {
	uint16_t member[NARF_SLOTS];
	uint32_t n;
};

/* Where an entry sits: the pointer that points at it, and which table. */
struct narf_entry_pos {
	struct narf_entry **link; /* borrowed */
	int t;
};

struct narf_store {
	struct narf_slot_table slots[NARF_SLOTS];
	struct narf_slot_set sets[SET_COUNT];
	uint8_t seed[16];
	uint64_t rng;
	uint64_t keys;
	uint64_t keys_with_ttl;
	uint64_t used_memory;
	uint64_t expired;
	uint64_t evicted;
	uint64_t max_memory;
	enum narf_eviction eviction;
	unsigned lru_samples;
	size_t first_table_size; /* usable bytes of a slot's first table */
	uint64_t empty_size;     /* used_memory of the store with no key */
	narf_store_removed_cb removed_cb;
	void *removed_data; /* borrowed */
	narf_store_write_cb write_cb;
	void *write_data;    /* borrowed */
	bool write_ttl_only; /* the write being reported changed only a TTL */
	/* borrowed: the entry a set is about to replace, which eviction must
	 * not free under it */
	const struct narf_entry *pinned;
	/* Active expiry resumes where it stopped: a position in the TTL set,
	 * a bucket (table[0]'s, then table[1]'s) and entries to skip in it. */
	uint32_t exp_cursor;
	uint64_t exp_bucket;
	uint32_t exp_skip;
	uint32_t rehash_cursor; /* position in the rehash set */
	/* collections: their thresholds and what their encodings borrow */
	struct narf_coll_limits coll_limits;
	struct narf_coll_ctx coll_ctx;
	/* replica slots: bit s set when slot s holds another node's data */
	uint64_t replica[NARF_SLOTS / 64];
	/* lazily dropped slot tables, freed a few entries at a time */
	struct narf_grave *graves;
	uint64_t grave_keys;
	/* big collections of removed keys, freed a few elements at a time
	 * (coll.h's lazy free) */
	struct narf_obj_grave *obj_graves;
	uint64_t grave_objs;
};

static inline bool slot_replica(const struct narf_store *s, unsigned slot)
{
	return (s->replica[slot / 64] >> (slot % 64)) & 1u;
}

static inline bool slot_rehashing(const struct narf_slot_table *st)
{
	return st->table[1] != NULL;
}

static inline uint64_t slot_keys(const struct narf_slot_table *st)
{
	return (uint64_t)st->used[0] + st->used[1];
}

static inline size_t table_size(const struct narf_slot_table *st, int t)
{
	return st->table[t] != NULL ? (size_t)1 << st->exp[t] : 0;
}

/* Bytes of the lengths field of an entry with these flags. */
static inline size_t entry_lens_size(uint8_t flags)
{
	return (flags & ENTRY_SMALL) ? 3 : 8;
}

/* Do these lengths fit the small form? */
static inline bool entry_lens_small(size_t klen, size_t vlen)
{
	return klen <= ENTRY_SMALL_KLEN && vlen <= ENTRY_SMALL_VLEN;
}

static inline uint32_t entry_klen(const struct narf_entry *e)
{
	uint32_t k;

	if (e->flags & ENTRY_SMALL)
		return (uint8_t)e->data[0];
	memcpy(&k, e->data, sizeof(k));
	return k;
}

static inline uint32_t entry_vlen(const struct narf_entry *e)
{
	uint32_t v;
	uint16_t v16;

	if (e->flags & ENTRY_SMALL) {
		memcpy(&v16, e->data + 1, sizeof(v16));
		return v16;
	}
	memcpy(&v, e->data + 4, sizeof(v));
	return v;
}

/* Write the lengths; the caller has set ENTRY_SMALL in flags when they
 * fit the small form (entry_lens_small()). */
static inline void entry_set_lens(struct narf_entry *e,
                                  uint32_t klen,
                                  uint32_t vlen)
{
	if (e->flags & ENTRY_SMALL) {
		uint16_t v16 = (uint16_t)vlen;

		e->data[0] = (char)(uint8_t)klen;
		memcpy(e->data + 1, &v16, sizeof(v16));
	} else {
		memcpy(e->data, &klen, sizeof(klen));
		memcpy(e->data + 4, &vlen, sizeof(vlen));
	}
}

static inline uint32_t entry_lru(const struct narf_entry *e)
{
	return (uint32_t)e->lru[0] | (uint32_t)e->lru[1] << 8 |
	       (uint32_t)e->lru[2] << 16;
}

static inline void entry_set_lru(struct narf_entry *e, uint32_t clock)
{
	e->lru[0] = (uint8_t)clock;
	e->lru[1] = (uint8_t)(clock >> 8);
	e->lru[2] = (uint8_t)(clock >> 16);
}

/* Offset in data[] of the expiry (when present), then of the key. */
static inline size_t entry_meta_size(const struct narf_entry *e)
{
	return entry_lens_size(e->flags) +
	       ((e->flags & ENTRY_HAS_EXPIRE) ? 8 : 0);
}

static inline int64_t entry_expire(const struct narf_entry *e)
{
	int64_t t;

	if (!(e->flags & ENTRY_HAS_EXPIRE))
		return 0;
	memcpy(&t, e->data + entry_lens_size(e->flags), sizeof(t));
	return t;
}

static inline void entry_set_expire(struct narf_entry *e, int64_t t)
{
	memcpy(e->data + entry_lens_size(e->flags), &t, sizeof(t));
}

static inline const char *entry_key(const struct narf_entry *e)
{
	return e->data + entry_meta_size(e);
}

/* The value's first byte (a collection's: its object's address). */
static inline char *entry_val(struct narf_entry *e)
{
	return e->data + entry_meta_size(e) + entry_klen(e);
}

/* Expired as Redis decides it: only once the clock is past the deadline. */
static inline bool entry_expired(const struct narf_entry *e, int64_t now_ms)
{
	return (e->flags & ENTRY_HAS_EXPIRE) && now_ms > entry_expire(e);
}

/* --- store_table.c ------------------------------------------------------- */

/* Free an entry and, for a collection, everything its value holds (a big
 * one later: it goes to s->obj_graves, which narf_stbl_reap frees). */
void narf_stbl_free_entry(struct narf_store *s, struct narf_entry *e);

/* Allocations that count towards used_memory (usable sizes). */
void *narf_store_malloc(struct narf_store *s, size_t size);
void *narf_store_calloc(struct narf_store *s, size_t n, size_t size);
void narf_store_free(struct narf_store *s, void *p);
/* Count or uncount an allocation made or freed elsewhere. */
void narf_store_account(struct narf_store *s, void *p);
void narf_store_unaccount(struct narf_store *s, void *p);

uint64_t narf_store_rand(struct narf_store *s);

void narf_slotset_add(struct narf_store *s, int set, unsigned slot);
void narf_slotset_del(struct narf_store *s, int set, unsigned slot);

/* Find key (hash h) in a slot; fills *pos when found and pos != NULL. */
struct narf_entry *narf_stbl_find(struct narf_slot_table *st,
                                  const char *key,
                                  size_t klen,
                                  uint64_t h,
                                  struct narf_entry_pos *pos);
/* Find the chain link of an entry known to be in the slot. */
struct narf_entry_pos narf_stbl_locate(struct narf_store *s,
                                       struct narf_slot_table *st,
                                       const struct narf_entry *e);
/* Detach slot's tables onto s->graves, leaving the slot empty;
 * NARF_ENOMEM leaves the slot as it was. */
int narf_stbl_bury(struct narf_store *s, unsigned slot);
/* Free up to budget buried entries; true while some are left. */
bool narf_stbl_reap(struct narf_store *s, unsigned budget);
/* Link a new entry in (creating the slot's table on the first key) and
 * start a grow when the load factor reaches 1. NARF_ENOMEM leaves the
 * store unchanged. */
int narf_stbl_insert(struct narf_store *s,
                     unsigned slot,
                     struct narf_entry *e,
                     uint64_t h);
/* After an entry was unlinked: free the tables of an emptied slot, or start
 * a shrink when the load factor fell below 10%. */
void narf_stbl_after_delete(struct narf_store *s, unsigned slot);
/* Move up to n buckets of a rehashing slot; returns buckets moved. */
unsigned narf_stbl_rehash(struct narf_store *s, unsigned slot, unsigned n);
/* Free every entry and table of a slot (no callbacks). */
void narf_stbl_clear(struct narf_store *s, unsigned slot);
/* One step of Redis's dictScan over a slot: emits one bucket of the small
 * table and its expansions in the big one, returns the next cursor (0 when
 * the slot is done). When cb asks to stop, sets *stopped and returns v
 * unchanged so the caller can resume at the same place. */
uint64_t narf_stbl_scan(const struct narf_slot_table *st,
                        uint64_t v,
                        int64_t now_ms,
                        narf_store_visit_cb cb,
                        void *data,
                        bool *stopped);
/* A random entry of a non-empty slot (expired ones included). */
struct narf_entry *narf_stbl_random(struct narf_store *s,
                                    const struct narf_slot_table *st);

#endif /* NARF_STORE_INTERNAL_H */
