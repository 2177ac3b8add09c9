/*
 * The map ring: the last map-changing entries a coordinator applied, kept
 * by the map epoch each one produced, so a data node one or a few epochs
 * behind is sent the entries it missed (docs/protocol.md, "Map deltas")
 * rather than the whole map.
 *
 * The entries are the Raft entries' own text, byte for byte: the same on
 * every member, already validated by the pure apply (common/map.h), and
 * small. The ring holds only entries that moved the epoch (a rejected
 * entry never enters it), so its epochs are contiguous: the entry at epoch
 * e turns a map at e - 1 into the map at e.
 *
 * Two bounds, both fixed at init: a number of entries and a byte arena.
 * A push drops the oldest entries until the new one fits. The arena is
 * circular and an entry's text never wraps (when the tail is too short,
 * the entry goes to the arena's start and the tail is left unused), so
 * every entry is one contiguous run of bytes a reply can copy.
 *
 * Pure: no I/O, no clock, no allocation after narf_ring_init().
 */
#ifndef NARF_MAP_RING_H
#define NARF_MAP_RING_H

#include <stddef.h>
#include <stdint.h>

/* One held entry. */
struct narf_ring_entry {
	uint64_t epoch; /* map epoch after this entry applied */
	uint32_t len;   /* bytes of text, no padding, no NUL */
	uint32_t off;   /* into the byte arena */
};

/* A run of bytes, borrowed. */
struct narf_iov {
	const char *base;
	size_t len;
};

struct narf_ring {
	struct narf_ring_entry *e; /* owned; cap_entries, circular */
	unsigned cap_entries;
	unsigned head; /* index of the oldest entry */
	unsigned n;    /* entries held */
	char *arena;   /* owned; cap_bytes, circular */
	size_t cap_bytes;
	size_t wpos;  /* arena offset the next entry goes to */
	size_t bytes; /* text bytes held (sum of len) */
	/* epoch of the newest entry held, or of the map at the last reset
	 * while the ring is empty: the next push must be last + 1 */
	uint64_t last;
};

/* A ring of at most cap_entries entries (>= 1) and cap_bytes of text
 * (>= 1). 0 or NARF_ENOMEM / NARF_EINVAL. The ring starts empty at
 * epoch 0. */
int narf_ring_init(struct narf_ring *r, unsigned cap_entries, size_t cap_bytes);
/* Free what init allocated; r may be zeroed or already closed. */
void narf_ring_close(struct narf_ring *r);

/* Forget every entry: the map is now at epoch (a snapshot was restored),
 * and a node behind it must fetch the full map. */
void narf_ring_reset(struct narf_ring *r, uint64_t epoch);

/*
 * Append the entry that brought the map to epoch (text: len > 0 bytes,
 * copied). Drops the oldest entries as the bounds need. An entry bigger
 * than the whole arena, or an epoch that is not the newest + 1 (a gap
 * the ring cannot bridge), empties the ring at epoch instead: nodes
 * behind it get the full map. Returns 0, or NARF_EINVAL for len 0 or epoch
 * 0 (the ring is unchanged). Never allocates.
 */
int narf_ring_push(struct narf_ring *r,
                   uint64_t epoch,
                   const char *text,
                   size_t len);

/* The epoch of the oldest entry held (newest + 1 when empty). */
uint64_t narf_ring_first(const struct narf_ring *r);

/*
 * The entries that bring a map at epoch to the newest: epoch + 1 .. last,
 * oldest first, as (pointer, length) runs into out[] (max runs), borrowed
 * until the next push or reset; *n their count (0 when epoch is the
 * newest), *bytes their total length. Returns 0, or NARF_ENOTFOUND
 * ("send the full map") when epoch + 1 is older than the oldest entry
 * held, epoch is ahead of the newest, there are more than max entries, or
 * their bytes exceed max_bytes. O(1) to locate, O(k) to list.
 */
int narf_ring_since(const struct narf_ring *r,
                    uint64_t epoch,
                    size_t max_bytes,
                    struct narf_iov *out,
                    unsigned max,
                    unsigned *n,
                    size_t *bytes);

#endif /* NARF_MAP_RING_H */
