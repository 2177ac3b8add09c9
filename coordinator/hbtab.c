/*
 * The leader's heartbeat table (struct narf_hbtab, coord.h): what it knows
 * of each data node between heartbeats, keyed by node id.
 *
 * Every heartbeat looks its node up, and the cron looks up every node each
 * tick, so lookup and insert must not grow with the cluster: open
 * addressing with linear probing, at most three quarters full, grown by
 * doubling. Node id 0 is never a node's (ids start at 1), so it marks a
 * free entry. Removal shifts the entries of the probe run back over the
 * hole (no tombstones), so a table with churn never fills with them.
 */
#include <stdlib.h>
#include <string.h>

#include "coord.h"

/* Home position of a node id. Ids are small and dense: a multiplicative
 * hash spreads neighbours, and its high half mixed in keeps the low bits
 * (the ones the mask keeps) from depending on the low bits of id alone. */
static unsigned home(const struct narf_hbtab *t, uint32_t node)
{
	uint32_t h = node * 0x9E3779B1u;

	return (h ^ (h >> 16)) & (t->cap - 1);
}

struct narf_hb *narf_hbtab_find(const struct narf_hbtab *t, uint32_t node)
{
	if (t->n == 0 || node == 0)
		return NULL;
	for (unsigned i = home(t, node);; i = (i + 1) & (t->cap - 1)) {
		if (t->hb[i].node == node)
			return &t->hb[i];
		if (t->hb[i].node == 0)
			return NULL;
	}
}

/* Put a copy of e (not in t, node not 0) in t, which has room. */
static void place(struct narf_hbtab *t, const struct narf_hb *e)
{
	unsigned i = home(t, e->node);

	while (t->hb[i].node != 0)
		i = (i + 1) & (t->cap - 1);
	t->hb[i] = *e;
}

static int grow(struct narf_hbtab *t)
{
	unsigned cap = t->cap ? 2 * t->cap : 16;
	struct narf_hbtab next = {
	        .hb = calloc(cap, sizeof(*next.hb)), .n = t->n, .cap = cap};

	if (next.hb == NULL)
		return NARF_ENOMEM;
	for (unsigned i = 0; i < t->cap; i++)
		if (t->hb[i].node != 0)
			place(&next, &t->hb[i]);
	free(t->hb);
	*t = next;
	return 0;
}

struct narf_hb *narf_hbtab_get(struct narf_hbtab *t, uint32_t node)
{
	struct narf_hb *hb = narf_hbtab_find(t, node);
	struct narf_hb e = {.node = node};

	if (hb != NULL || node == 0)
		return hb;
	if (4 * (t->n + 1) > 3 * t->cap && grow(t) != 0)
		return NULL;
	place(t, &e);
	t->n++;
	return narf_hbtab_find(t, node);
}

/*
 * Backward-shift deletion: walk the run after the hole; an entry whose
 * home is not cyclically within (hole, its position] would be cut off
 * from its home by the hole, so it moves into the hole, which moves to
 * where it was.
 */
void narf_hbtab_remove(struct narf_hbtab *t, uint32_t node)
{
	struct narf_hb *hb = narf_hbtab_find(t, node);
	unsigned mask = t->cap - 1, hole;

	if (hb == NULL)
		return;
	hole = (unsigned)(hb - t->hb);
	for (unsigned i = (hole + 1) & mask; t->hb[i].node != 0;
	     i = (i + 1) & mask) {
		unsigned h = home(t, t->hb[i].node);

		if (((i - h) & mask) >= ((i - hole) & mask)) {
			t->hb[hole] = t->hb[i];
			hole = i;
		}
	}
	memset(&t->hb[hole], 0, sizeof(t->hb[hole]));
	t->n--;
}

struct narf_hb *narf_hbtab_next(const struct narf_hbtab *t, unsigned *pos)
{
	while (*pos < t->cap) {
		struct narf_hb *hb = &t->hb[(*pos)++];

		if (hb->node != 0)
			return hb;
	}
	return NULL;
}

void narf_hbtab_clear(struct narf_hbtab *t)
{
	if (t->cap > 0)
		memset(t->hb, 0, t->cap * sizeof(*t->hb));
	t->n = 0;
}

void narf_hbtab_close(struct narf_hbtab *t)
{
	if (t == NULL)
		return;
	free(t->hb);
	memset(t, 0, sizeof(*t));
}
