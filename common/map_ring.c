/*
 * The map ring: see map_ring.h. Entries sit in the arena in push order,
 * wrapping at most once: the oldest starts at e[head].off, the newest ends
 * at wpos. While wpos > e[head].off the held text is one run and the free
 * space is the arena's tail plus its start; otherwise it has wrapped and
 * the free space is the gap between wpos and the oldest entry.
 */
#include "map_ring.h"

#include <stdlib.h>
#include <string.h>

#include "errors.h"

#define NO_ROOM ((size_t)-1)

int narf_ring_init(struct narf_ring *r, unsigned cap_entries, size_t cap_bytes)
{
	memset(r, 0, sizeof(*r));
	/* off and len are 32-bit: an arena past 4 GiB could not be
	 * addressed */
	if (cap_entries == 0 || cap_bytes == 0 || cap_bytes > UINT32_MAX)
		return NARF_EINVAL;
	r->e = calloc(cap_entries, sizeof(*r->e));
	r->arena = malloc(cap_bytes);
	if (r->e == NULL || r->arena == NULL) {
		narf_ring_close(r);
		return NARF_ENOMEM;
	}
	r->cap_entries = cap_entries;
	r->cap_bytes = cap_bytes;
	return 0;
}

void narf_ring_close(struct narf_ring *r)
{
	if (r == NULL)
		return;
	free(r->e);
	free(r->arena);
	memset(r, 0, sizeof(*r));
}

void narf_ring_reset(struct narf_ring *r, uint64_t epoch)
{
	r->head = 0;
	r->n = 0;
	r->wpos = 0;
	r->bytes = 0;
	r->last = epoch;
}

static void drop_oldest(struct narf_ring *r)
{
	r->bytes -= r->e[r->head].len;
	r->head = (r->head + 1) % r->cap_entries;
	if (--r->n == 0)
		r->wpos = 0;
}

/* Where len bytes fit without dropping anything, or NO_ROOM. */
static size_t fit(const struct narf_ring *r, size_t len)
{
	size_t tail;

	if (r->n == 0)
		return 0;
	tail = r->e[r->head].off;
	if (r->wpos > tail) {
		if (r->cap_bytes - r->wpos >= len)
			return r->wpos;
		return tail >= len ? 0 : NO_ROOM;
	}
	return tail - r->wpos >= len ? r->wpos : NO_ROOM;
}

int narf_ring_push(struct narf_ring *r,
                   uint64_t epoch,
                   const char *text,
                   size_t len)
{
	struct narf_ring_entry *slot;
	size_t off;

	if (len == 0 || epoch == 0)
		return NARF_EINVAL;
	if (len > r->cap_bytes) {
		narf_ring_reset(r, epoch);
		return 0;
	}
	if (epoch != r->last + 1)
		narf_ring_reset(r, epoch - 1);
	if (r->n == r->cap_entries)
		drop_oldest(r);
	while ((off = fit(r, len)) == NO_ROOM)
		drop_oldest(r); /* terminates: an empty ring fits len */
	slot = &r->e[(r->head + r->n) % r->cap_entries];
	slot->epoch = epoch;
	slot->len = (uint32_t)len;
	slot->off = (uint32_t)off;
	memcpy(r->arena + off, text, len);
	r->wpos = off + len;
	r->n++;
	r->bytes += len;
	r->last = epoch;
	return 0;
}

uint64_t narf_ring_first(const struct narf_ring *r)
{
	return r->last - r->n + 1;
}

int narf_ring_since(const struct narf_ring *r,
                    uint64_t epoch,
                    size_t max_bytes,
                    struct narf_iov *out,
                    unsigned max,
                    unsigned *n,
                    size_t *bytes)
{
	uint64_t k;
	size_t sum = 0;

	*n = 0;
	*bytes = 0;
	if (epoch == r->last)
		return 0;
	if (epoch > r->last)
		return NARF_ENOTFOUND;
	k = r->last - epoch;
	if (k > r->n || k > max)
		return NARF_ENOTFOUND;
	for (unsigned i = 0; i < (unsigned)k; i++) {
		const struct narf_ring_entry *x =
		        &r->e[(r->head + r->n - (unsigned)k + i) %
		              r->cap_entries];

		sum += x->len;
		if (sum > max_bytes)
			return NARF_ENOTFOUND;
		out[i].base = r->arena + x->off;
		out[i].len = x->len;
	}
	*n = (unsigned)k;
	*bytes = sum;
	return 0;
}
