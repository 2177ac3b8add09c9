/*
 * The data node's store: string keys and values in memory, grouped by hash
 * slot, with TTLs, approximate LRU eviction and honest memory accounting.
 *
 * Layout. Each of the 16384 slots has its own hash table (chained, power of
 * two buckets, keyed SipHash with a per-process random seed so crafted keys
 * cannot pile into one chain). A slot can therefore be counted, iterated,
 * streamed or dropped without touching the others. Tables grow and shrink by
 * incremental rehashing, as Redis's dict does: while a table is being
 * rehashed, every operation on that slot moves a few buckets, and
 * narf_store_cron() moves more, so no single request pays for a resize.
 *
 * An entry is one allocation: a small header (chain pointer, lengths, LRU
 * clock, flags), then the expiry time only when the key has one, then the
 * key and the value bytes, and a NUL. For 1M 16-byte keys with 32-byte
 * values under glibc that measured 86 bytes a key accounted (usable sizes,
 * tables included) and 96 bytes of RSS, against Redis 7.0's ~149.
 *
 * Time is always passed in (now_ms, milliseconds since the Unix epoch), so
 * tests drive expiry with a fake clock. Expired keys are removed lazily when
 * touched, and actively by narf_store_active_expire(), which samples the
 * slots that hold keys with TTLs within a bounded amount of work.
 *
 * Memory: every allocation the store makes is counted with its real usable
 * size (malloc_usable_size), and narf_store_used_memory() reports the sum.
 * With max_memory set, writes first evict (allkeys-lru: the least recently
 * used among a sample of keys, as Redis does) until the store fits, or fail
 * with NARF_EOOM under noeviction.
 *
 * Replica slots hold a copy of another node's data, changed only by that
 * node's stream (narf_store_set_replica): nothing there expires or is
 * evicted on its own. An expired entry is hidden from reads (get, scan,
 * foreach, random) but stays until a delete removes it, eviction never
 * picks one, and a write to a replica slot never evicts: it fails with
 * NARF_EOOM when it does not fit, whatever the policy.
 *
 * Pointers to entries are valid until the next call that may modify the
 * store (any set, del, expire, eviction, cron).
 */
#ifndef NARF_STORE_H
#define NARF_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "slot.h"

/* What a key holds (TYPE's answer). Only strings exist until the collection
 * slices of docs/datatypes-plan.md land; the tag is already in every entry. */
enum narf_type {
	NARF_TYPE_STRING,
	NARF_TYPE_HASH,
	NARF_TYPE_LIST,
	NARF_TYPE_SET,
	NARF_TYPE_ZSET,
	NARF_TYPE_COUNT
};

enum narf_eviction {
	NARF_EVICT_ALLKEYS_LRU,
	NARF_EVICT_NOEVICTION,
};

/* A collection value as a command holds it (coll.h): a copy of its type,
 * encoding and address; p is NULL for a collection with no element yet (a
 * key created by this command). */
struct narf_coll {
	uint8_t type; /* enum narf_type */
	uint8_t enc;  /* enum narf_enc (coll.h) */
	void *p;      /* owned by the entry */
};
struct narf_coll_ctx;
struct narf_coll_limits;

struct narf_store_config {
	uint64_t max_memory; /* bytes; 0 = unlimited */
	enum narf_eviction eviction;
	uint8_t seed[16];     /* SipHash key; random in production */
	unsigned lru_samples; /* keys sampled per eviction, default 5 */
	/* borrowed, copied: collection thresholds; NULL = Redis's */
	const struct narf_coll_limits *coll_limits;
};

/* Why an entry left the store other than by a client's DEL. */
enum narf_store_reason {
	NARF_STORE_EXPIRED,
	NARF_STORE_EVICTED,
};

/* Called for each key removed by expiry or eviction (the cluster issue
 * replicates these as deletes). key is valid only during the call, which
 * must not modify the store. */
typedef void (*narf_store_removed_cb)(void *data,
                                      unsigned slot,
                                      const char *key,
                                      size_t klen,
                                      enum narf_store_reason why);

struct narf_store;
struct narf_entry;

/* Called after every change a caller makes: a set, an expiry change (e is
 * the entry as it now is) or a delete (e is NULL). With the removed
 * callback this sees every change of the store, which is what replication
 * streams. key and e are valid only during the call, which must not modify
 * the store. */
typedef void (*narf_store_write_cb)(void *data,
                                    unsigned slot,
                                    const char *key,
                                    size_t klen,
                                    const struct narf_entry *e);

struct narf_store_stats {
	uint64_t keys;
	uint64_t keys_with_ttl;
	uint64_t used_memory;      /* bytes, allocator usable sizes */
	uint64_t expired;          /* keys removed by expiry, ever */
	uint64_t evicted;          /* keys removed by eviction, ever */
	uint64_t rehashing;        /* slots with a rehash in progress */
	uint64_t lazyfree_pending; /* dropped keys not yet freed */
};

/* Create a store; *out is owned by the caller (narf_store_destroy). */
int narf_store_create(struct narf_store **out,
                      const struct narf_store_config *cfg);
void narf_store_destroy(struct narf_store *s);

void narf_store_set_removed_cb(struct narf_store *s,
                               narf_store_removed_cb cb,
                               void *data);
void narf_store_set_write_cb(struct narf_store *s,
                             narf_store_write_cb cb,
                             void *data);
/* During a write callback: did that change touch only the entry's TTL
 * (narf_store_set_expire)? A collection then streams its new expiry
 * rather than its whole value. */
bool narf_store_write_ttl_only(const struct narf_store *s);
/* Mark slot as a replica slot (on) or one this store owns (off, the
 * default): see the opening comment. Logically expired entries of a slot
 * that stops being a replica slot are then reclaimed as usual (and
 * reported through the removed callback). */
void narf_store_set_replica(struct narf_store *s, unsigned slot, bool on);
bool narf_store_is_replica(const struct narf_store *s, unsigned slot);

/* Change limits at run time (CONFIG SET-like). */
void narf_store_set_limits(struct narf_store *s,
                           uint64_t max_memory,
                           enum narf_eviction eviction);

/* --- entries ------------------------------------------------------------- */

const char *narf_entry_key(const struct narf_entry *e, size_t *len);
/* A string entry's value (asserts the entry holds a string). */
const char *narf_entry_value(const struct narf_entry *e, size_t *len);
enum narf_type narf_entry_type(const struct narf_entry *e);
/* A collection entry's value as a handle (coll.h); false for a string. */
bool narf_entry_coll(const struct narf_entry *e, struct narf_coll *c);
/* TYPE's word for a type: "string", "hash", "list", "set", "zset". */
const char *narf_type_name(enum narf_type t);
/* Absolute expiry in ms since the epoch, or 0 when the key has no TTL. */
int64_t narf_entry_expire(const struct narf_entry *e);
/* Seconds since the entry was last touched (OBJECT IDLETIME). */
uint64_t narf_entry_idle(const struct narf_store *s,
                         const struct narf_entry *e,
                         int64_t now_ms);

/* --- operations (slot = narf_slot_of(key)) ------------------------------- */

/* Look a key up; an expired key is removed and NULL returned (in a replica
 * slot it is only hidden). Touches the entry's LRU clock unless
 * NARF_STORE_NOTOUCH is given. */
#define NARF_STORE_NOTOUCH 1u
/* In a replica slot, also return an entry that has expired by our clock
 * (the primary decides; a replica applying its stream must see it). */
#define NARF_STORE_EXPIRED_TOO 2u
struct narf_entry *narf_store_get(struct narf_store *s,
                                  unsigned slot,
                                  const char *key,
                                  size_t klen,
                                  int64_t now_ms,
                                  unsigned flags);

/*
 * Insert or replace key with value (copied; val may point into another
 * entry). expire_ms: absolute expiry, or 0 for none, or NARF_STORE_KEEPTTL
 * to keep the current one (none for a new key). When the write grows the
 * store past max_memory (net of the value it replaces), evicts first under
 * allkeys-lru (never for a replica slot: see narf_store_set_replica);
 * returns NARF_EOOM (nothing changed) when it cannot make room,
 * NARF_ETOOLARGE for a key or value over 4 GiB, NARF_ENOMEM when malloc
 * fails. *out (may be NULL) receives the entry. Values are stored with a
 * NUL after their last byte (not counted in the length), so they can be
 * parsed as C strings when they hold no NUL themselves.
 */
#define NARF_STORE_KEEPTTL INT64_MIN
int narf_store_set(struct narf_store *s,
                   unsigned slot,
                   const char *key,
                   size_t klen,
                   const char *val,
                   size_t vlen,
                   int64_t expire_ms,
                   int64_t now_ms,
                   struct narf_entry **out);

/* The store's keyed hash of a key (SipHash with the store's seed). */
uint64_t narf_store_hash(const struct narf_store *s,
                         const char *key,
                         size_t klen);

/* narf_store_get() and narf_store_set() for a caller that has the key's
 * hash h (narf_store_hash()) already: one hash per request (issue 18). */
struct narf_entry *narf_store_get_h(struct narf_store *s,
                                    unsigned slot,
                                    const char *key,
                                    size_t klen,
                                    uint64_t h,
                                    int64_t now_ms,
                                    unsigned flags);
int narf_store_set_h(struct narf_store *s,
                     unsigned slot,
                     const char *key,
                     size_t klen,
                     uint64_t h,
                     const char *val,
                     size_t vlen,
                     int64_t expire_ms,
                     int64_t now_ms,
                     struct narf_entry **out);

/*
 * narf_store_set_h() of a key the caller has just looked up, with old the
 * entry narf_store_get_h() returned for it (or NULL), and no store call in
 * between: a string rewritten in its own allocation (a counter, a value of
 * the same size class) needs no second walk of the hash chain. Otherwise
 * it is narf_store_set_h(). Same arguments and results.
 */
int narf_store_update(struct narf_store *s,
                      unsigned slot,
                      const char *key,
                      size_t klen,
                      uint64_t h,
                      struct narf_entry *old,
                      const char *val,
                      size_t vlen,
                      int64_t expire_ms,
                      int64_t now_ms);

/*
 * Prefetch what a lookup of a key with hash h (narf_store_hash()) in slot
 * will read, a stage at a time over a batch of keys: stage 0 the slot's
 * descriptor, 1 its bucket, 2 the bucket's first entry. Each stage reads
 * what the one before brought in, so a batch's cache misses overlap
 * instead of coming one after another (issue 18). Reads only.
 */
void narf_store_prefetch(struct narf_store *s,
                         unsigned slot,
                         uint64_t h,
                         unsigned stage);

/* The live-or-not entry of key (hash h) in slot, found with no side
 * effect at all (no rehash step, no expiry, no LRU touch): for prefetching
 * what a command will read inside it, never to answer with. */
struct narf_entry *narf_store_peek(struct narf_store *s,
                                   unsigned slot,
                                   const char *key,
                                   size_t klen,
                                   uint64_t h);

/* Remove a key; returns true when it existed (and was not expired). A
 * client's delete does not call the removed callback; an expired key found
 * here does (NARF_STORE_EXPIRED), except in a replica slot, where this
 * delete is the one that removes it (no callback, returns false). */
bool narf_store_del(struct narf_store *s,
                    unsigned slot,
                    const char *key,
                    size_t klen,
                    int64_t now_ms);

/*
 * Set or clear (expire_ms = 0) the expiry of an existing entry. The expiry
 * is stored only in entries that have one, so adding or removing it
 * rebuilds the entry: use the returned pointer, not e, afterwards. Returns
 * NULL (nothing changed) only if that allocation fails.
 */
struct narf_entry *narf_store_set_expire(struct narf_store *s,
                                         unsigned slot,
                                         struct narf_entry *e,
                                         int64_t expire_ms);

/* --- collections (coll.h; docs/datatypes-plan.md, section 1) ------------ */

/* What collection encodings borrow from the store (memory counter,
 * thresholds, seed, RNG); valid as long as the store. */
const struct narf_coll_ctx *narf_store_coll_ctx(struct narf_store *s);
/* Replace the thresholds (CONFIG SET); existing values convert lazily, on
 * their next write, and only upwards, as Redis's do. */
void narf_store_set_coll_limits(struct narf_store *s,
                                const struct narf_coll_limits *lim);
const struct narf_coll_limits *narf_store_coll_limits(
        const struct narf_store *s);

/* A collection opened for one command: between open and close, the command
 * mutates r->c through the coll_*.h functions with narf_store_coll_ctx().
 * Nothing else may touch the store in between. */
struct narf_cref {
	struct narf_entry *e; /* borrowed; NULL when the key is absent */
	unsigned slot;
	bool created; /* the key was made by this open */
	struct narf_coll c;
};
#define NARF_COLL_CREATE 1u /* create an empty one of type t if absent */
/*
 * Open key as a collection of type t for a write. An expired key is
 * reclaimed first (in a replica slot: replaced). Before anything changes,
 * `grow` bytes (an estimate of what the command adds) must fit under
 * max_memory: allkeys-lru evicts other keys, never this one;
 * noeviction and replica slots return NARF_EOOM. Returns 0 (r->e NULL when
 * the key is absent and NARF_COLL_CREATE not given), NARF_EWRONGTYPE when
 * the key holds another type, NARF_EOOM, or NARF_ENOMEM. Always pair a 0
 * with narf_store_coll_close().
 */
int narf_store_coll_open(struct narf_store *s,
                         unsigned slot,
                         const char *key,
                         size_t klen,
                         enum narf_type t,
                         size_t grow,
                         unsigned flags,
                         int64_t now_ms,
                         struct narf_cref *r);
/* The same with the key's hash h (narf_store_hash()) given. */
int narf_store_coll_open_h(struct narf_store *s,
                           unsigned slot,
                           const char *key,
                           size_t klen,
                           uint64_t h,
                           enum narf_type t,
                           size_t grow,
                           unsigned flags,
                           int64_t now_ms,
                           struct narf_cref *r);
/*
 * Finish a command's writes: the collection's (possibly new) address and
 * encoding go back into the entry, its LRU clock is touched, and a key left
 * with no element is deleted, as Redis deletes emptied collections (the
 * write callback hears that delete when the key existed before). The
 * command replicates its other changes itself (effects); the write
 * callback does not see them.
 */
void narf_store_coll_close(struct narf_store *s,
                           struct narf_cref *r,
                           int64_t now_ms);

/*
 * RENAME: move src's value, type and TTL to dst, replacing what dst held.
 * A collection moves in O(1) (its object is not copied). Returns 0,
 * NARF_ENOTFOUND when src is absent, NARF_EOOM when the new entry does not
 * fit, NARF_ENOMEM. The write callback hears the new dst and src's delete.
 */
int narf_store_rename(struct narf_store *s,
                      unsigned src_slot,
                      const char *src,
                      size_t src_len,
                      unsigned dst_slot,
                      const char *dst,
                      size_t dst_len,
                      int64_t now_ms);

/* Would a write of this many more bytes fit (after evicting if allowed)?
 * Returns 0 or NARF_EOOM; commands call it before growing a value. With
 * bytes = 0 it answers "is the store within its limit", evicting down to
 * it under allkeys-lru (Redis's check before a deny-oom command). */
int narf_store_make_room(struct narf_store *s, size_t bytes, int64_t now_ms);

/* --- whole store and slots ----------------------------------------------- */

void narf_store_stats(const struct narf_store *s, struct narf_store_stats *st);
uint64_t narf_store_count(const struct narf_store *s);
uint64_t narf_store_slot_count(const struct narf_store *s, unsigned slot);
uint64_t narf_store_used_memory(const struct narf_store *s);

/* Remove every key (FLUSHALL) or every key of one slot. */
void narf_store_flush(struct narf_store *s);
void narf_store_drop_slot(struct narf_store *s, unsigned slot);
/*
 * Empty a slot at once but free its entries later, a few at a time
 * (narf_store_reap), as Redis's lazyfree does with a thread: dropping a
 * copy of a thousand slots frees a hundred thousand entries, which would
 * stall every client of the node for tens of milliseconds. Their memory
 * counts in used_memory until it is freed.
 */
void narf_store_drop_slot_lazy(struct narf_store *s, unsigned slot);
/* Free about budget entries (and empty buckets) of lazily dropped slots;
 * true while some are left. */
bool narf_store_reap(struct narf_store *s, unsigned budget);

/* Visit every live entry of a slot; stop early when cb returns false.
 * Expired entries are skipped, not reclaimed. cb must not modify the
 * store. */
typedef bool (*narf_store_visit_cb)(void *data, const struct narf_entry *e);
void narf_store_foreach_slot(struct narf_store *s,
                             unsigned slot,
                             int64_t now_ms,
                             narf_store_visit_cb cb,
                             void *data);

/*
 * SCAN: visit some entries starting at cursor (0 = start) and return the
 * next cursor (0 = done). A key present for the whole scan is returned at
 * least once, even across rehashes (reverse-binary cursor, as Redis); some
 * may come twice. Visits about `count` buckets' worth of entries; empty
 * slots are skipped for free. The cursor is slot << 48 | bucket cursor.
 * When cb returns false the scan stops and the returned cursor repeats the
 * bucket it stopped in. cb must not modify the store.
 */
uint64_t narf_store_scan(struct narf_store *s,
                         uint64_t cursor,
                         unsigned count,
                         int64_t now_ms,
                         narf_store_visit_cb cb,
                         void *data);

/* A random live key, or NULL when the store is empty. Expired keys drawn
 * are reclaimed; after 100 of them in one call it gives up with NULL, as
 * Redis's RANDOMKEY bounds its own loop. */
struct narf_entry *narf_store_random(struct narf_store *s,
                                     int64_t now_ms,
                                     unsigned *slot);

/* --- periodic work -------------------------------------------------------- */

/* Reclaim expired keys, walking the slots that hold keys with TTLs from
 * where the last call stopped; examines at most max_checks entries (and
 * passes at most 10 x max_checks empty buckets). Returns the number of keys
 * reclaimed. A key that expired is reclaimed within a few full laps. */
unsigned narf_store_active_expire(struct narf_store *s,
                                  int64_t now_ms,
                                  unsigned max_checks);

/* Move rehashing forward on slots that are mid-rehash (at most `steps`
 * buckets in all). */
void narf_store_cron(struct narf_store *s, unsigned steps);

/* --- helpers shared with the command layer ------------------------------- */

/* Redis's glob matching (stringmatchlen): * ? [a-z] [^a] \x, optional
 * case-insensitivity. Iterative: O(plen x slen) at worst, no recursion. */
bool narf_glob_match(const char *pat,
                     size_t plen,
                     const char *str,
                     size_t slen,
                     bool nocase);

/* SipHash-2-4 of data under a 16-byte key. */
uint64_t narf_siphash(const void *data, size_t len, const uint8_t key[16]);

#endif /* NARF_STORE_H */
