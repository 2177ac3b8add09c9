/*
 * The slot-assignment planner (see planner.h for the algorithm).
 *
 * While planning, target[] holds eligible-node indices plus one instead of
 * node ids (0 still means "none"), so the per-node counters below are plain
 * arrays indexed by node; finish() maps the indices back to ids and fills in
 * the ISR, the slot epochs and the move fields. All scans that take slots
 * away from a node run from the highest slot down, so a node loses the end of
 * its ranges and keeps their beginning.
 */
#include "coordinator/planner.h"
#include "coordinator/planner_slot.h"

#include <assert.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct plan {
	const struct narf_map *cur; /* borrowed */
	struct narf_slot *t;        /* borrowed: the caller's target */
	unsigned n;                 /* eligible nodes */
	unsigned c;                 /* copies per slot */
	uint32_t *ids;              /* owned: eligible ids, ascending */
	unsigned *load;             /* owned: copies held, per node */
	unsigned *prim;             /* owned: primaries held, per node */
	unsigned *share;            /* owned: copies a node should hold */
	unsigned *pshare;           /* owned: primaries a node should hold */
	struct edge_list *edges;    /* owned, n lists, NULL until needed: see
	                               balance_primaries() */
	bool edges_oom;             /* an edge list could not grow */
	/* Zones (see "Zones" below). zoned is false when every eligible
	 * node is a zone of its own: the zone rules then say no more than
	 * "one copy per node", and the plan is the one without zones. */
	bool zoned;
	unsigned nz;     /* zones among the eligible nodes */
	unsigned lim;    /* most copies of one slot in one zone */
	unsigned *zone;  /* owned when zoned: zone index per node */
	unsigned *zsize; /* owned when zoned: eligible nodes per zone */
	/* The receivers' order (see pick_receiver()): a binary max-heap of
	 * node indices by gap (share - load) desc, index asc, kept by
	 * load_add() from the shares' setting on (heap_on); hpos[] inverts
	 * it; walk[] is pick_receiver()'s scratch. */
	uint32_t *heap, *hpos, *walk;
	bool heap_on;
	/* Per node, the slots it holds a copy of, ascending (csr_build()):
	 * node i's are csr[csr_off[i] .. csr_off[i + 1]). Role swaps keep
	 * them exact; a node that gives copies away only loses entries. */
	unsigned *csr_off; /* owned: n + 1 */
	uint16_t *csr;     /* owned: NARF_SLOTS x NARF_MAX_COPIES */
};

/*
 * Step 4b's graph: per node x, the nodes y that replicate slots x leads and
 * how many, sorted by y (a breadth-first search then visits them in the
 * order a scan of all nodes would, so the plan stays the same). Sparse:
 * at most slots x (copies - 1) edges in all, where an n x n matrix was 4 MB
 * and an O(n) scan per visited node at 1,000 nodes (issue 17).
 */
struct edge_list {
	uint32_t *to;             /* owned: node indices, ascending */
	struct edge_count *count; /* owned: parallel to to[] (may be 0) */
	unsigned n, cap;
};

/* An edge's slots: all of them, and the cheap ones (a swap that costs no
 * handoff: see enum swap_pass, cheap_swap()). */
struct edge_count {
	unsigned all, cheap;
};

/* Index plus one of node id among the eligible nodes, 0 when ineligible. */
static uint32_t eligible(const struct plan *p, uint32_t id)
{
	unsigned lo = 0, hi = p->n;

	while (id != 0 && lo < hi) {
		unsigned mid = (lo + hi) / 2;

		if (p->ids[mid] == id)
			return mid + 1;
		if (p->ids[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

/* was_in_sync() for node v (index plus one) of slot s. */
static bool in_sync(const struct plan *p, unsigned s, uint32_t v)
{
	return was_in_sync(&p->cur->slots[s], p->ids[v - 1]);
}

/* Is v (index plus one) slot s's primary in cur? */
static bool cur_primary(const struct plan *p, unsigned s, uint32_t v)
{
	return p->cur->slots[s].primary == p->ids[v - 1];
}

/* Position of v in slot t: &t->primary, a replica entry, or NULL. */
static uint32_t *position_of(struct narf_slot *t, uint32_t v)
{
	if (t->primary == v)
		return &t->primary;
	for (unsigned j = 0; j < t->n_replicas; j++)
		if (t->replicas[j] == v)
			return &t->replicas[j];
	return NULL;
}

/*
 * Zones. With Z zones among the eligible nodes and c copies per slot, a
 * slot keeps at most lim copies in one zone: 1 when Z >= c (no two copies
 * of a slot share a zone), else ceil(c / Z), best effort. Every step that
 * places a copy asks zone_room(): the clean step drops copies beyond the
 * limit (out-of-sync ones first) so the fill places them elsewhere; the
 * fill and the copy balance pick only receivers whose zone has room (the
 * fill, which must give every slot c copies, falls back to any node when
 * none has); a primary moved with its data (step 4c) does the same. Role
 * swaps move no copy, so they change no zone. Shares are two-level
 * (set_zone_shares()). Nodes without a zone ("", older clusters) are a
 * zone each.
 */

/* Copies of slot t in zone z, not counting node skip (index plus one; 0
 * for none). */
static unsigned zone_copies(const struct plan *p,
                            const struct narf_slot *t,
                            unsigned z,
                            uint32_t skip)
{
	unsigned k = 0;

	if (t->primary != 0 && t->primary != skip &&
	    p->zone[t->primary - 1] == z)
		k++;
	for (unsigned j = 0; j < t->n_replicas; j++)
		if (t->replicas[j] != skip && p->zone[t->replicas[j] - 1] == z)
			k++;
	return k;
}

/* May node v take a copy of slot t, in place of skip's copy when skip is
 * not 0, within the zone limit? Always without zones. */
static bool zone_room(const struct plan *p,
                      const struct narf_slot *t,
                      uint32_t v,
                      uint32_t skip)
{
	return !p->zoned || zone_copies(p, t, p->zone[v - 1], skip) < p->lim;
}

/*
 * Drop replicas of slot s (primary and reps[nr]) beyond the zone limit:
 * in a zone over it, its last out-of-sync replica, else its last replica
 * (the primary stays). Returns the replicas left.
 */
static unsigned zone_trim(const struct plan *p,
                          unsigned s,
                          uint32_t primary,
                          uint32_t *reps,
                          unsigned nr)
{
	for (unsigned i = nr; i-- > 0;) {
		unsigned z = p->zone[reps[i] - 1], k = 0, drop = nr;

		k += primary != 0 && p->zone[primary - 1] == z;
		for (unsigned j = 0; j < nr; j++)
			k += p->zone[reps[j] - 1] == z;
		if (k <= p->lim)
			continue;
		for (unsigned j = nr; j-- > 0 && drop == nr;)
			if (p->zone[reps[j] - 1] == z &&
			    !in_sync(p, s, reps[j]))
				drop = j;
		for (unsigned j = nr; j-- > 0 && drop == nr;)
			if (p->zone[reps[j] - 1] == z)
				drop = j;
		memmove(&reps[drop], &reps[drop + 1],
		        (nr - drop - 1) * sizeof(reps[0]));
		nr--;
		i = nr; /* the zones again, from the end */
	}
	return nr;
}

/*
 * Step 1. Keep slot s's copies on eligible nodes, in their positions.
 * Promote the first in-sync replica if the primary is gone (else the first
 * replica: part of the data beats none), then drop copies beyond c, the last
 * out-of-sync replica first.
 */
static void clean_slot(struct plan *p, unsigned s)
{
	const struct narf_slot *c = &p->cur->slots[s];
	struct narf_slot *t = &p->t[s];
	unsigned nr = 0, max = c->n_replicas;
	uint32_t reps[NARF_MAX_REPLICAS];
	uint32_t primary = eligible(p, c->primary);

	if (max > NARF_MAX_REPLICAS)
		max = NARF_MAX_REPLICAS;
	for (unsigned i = 0; i < max; i++) {
		uint32_t v = eligible(p, c->replicas[i]);
		bool dup = v == primary;

		for (unsigned j = 0; j < nr; j++)
			dup = dup || reps[j] == v;
		if (v != 0 && !dup)
			reps[nr++] = v;
	}
	if (primary == 0 && nr > 0) {
		unsigned heir = 0;

		while (heir < nr && !in_sync(p, s, reps[heir]))
			heir++;
		if (heir == nr)
			heir = 0;
		primary = reps[heir];
		memmove(&reps[heir], &reps[heir + 1],
		        (nr - heir - 1) * sizeof(reps[0]));
		nr--;
	}
	if (p->zoned)
		nr = zone_trim(p, s, primary, reps, nr);
	while (nr > 0 && 1 + nr > p->c) {
		unsigned drop = nr - 1;

		while (drop > 0 && in_sync(p, s, reps[drop]))
			drop--;
		if (in_sync(p, s, reps[drop]))
			drop = nr - 1;
		memmove(&reps[drop], &reps[drop + 1],
		        (nr - drop - 1) * sizeof(reps[0]));
		nr--;
	}
	memset(t, 0, sizeof(*t));
	t->primary = primary;
	t->n_replicas = (uint8_t)nr;
	memcpy(t->replicas, reps, nr * sizeof(reps[0]));
}

static void count_loads(struct plan *p)
{
	memset(p->load, 0, p->n * sizeof(p->load[0]));
	memset(p->prim, 0, p->n * sizeof(p->prim[0]));
	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		const struct narf_slot *t = &p->t[s];

		if (t->primary != 0) {
			p->load[t->primary - 1]++;
			p->prim[t->primary - 1]++;
		}
		for (unsigned j = 0; j < t->n_replicas; j++)
			p->load[t->replicas[j] - 1]++;
	}
}

/*
 * Split total into per-node shares: total / n each, and one more for the
 * total % n nodes that hold the most now (lowest index on ties), so a
 * balanced layout is its own target.
 */
static void set_shares(unsigned n,
                       unsigned total,
                       const unsigned *have,
                       unsigned *share)
{
	unsigned base = total / n, rem = total % n;

	for (unsigned i = 0; i < n; i++)
		share[i] = base;
	for (unsigned k = 0; k < rem; k++) {
		unsigned best = n;

		for (unsigned i = 0; i < n; i++)
			if (share[i] == base &&
			    (best == n || have[i] > have[best]))
				best = i;
		share[best]++;
	}
}

/* The most copies zone z can hold: lim per slot, one per node. */
static uint64_t zone_cap(const struct plan *p, unsigned z)
{
	unsigned k = p->zsize[z];

	return (uint64_t)NARF_SLOTS * (k < p->lim ? k : p->lim);
}

/*
 * Two-level shares of the copies: each zone's quota first, total copies
 * divided among zones in proportion to their eligible nodes, but at most
 * S x min(lim, nodes) for a zone (it holds at most lim copies of a slot,
 * and a node one), the excess water-filled to the other zones; the
 * remainder of the division goes to the zones holding the most now. Then
 * each zone's quota is split among its nodes as set_shares() does. zq[]
 * and idx[] are scratch space for nz and n entries.
 */
static void set_zone_shares(struct plan *p,
                            unsigned total,
                            uint64_t *zq,
                            unsigned *idx)
{
	unsigned nz = p->nz;
	uint64_t rest = total;
	bool again = true;

	/* zq[z]: UINT64_MAX while open, else the zone's capped quota. */
	for (unsigned z = 0; z < nz; z++)
		zq[z] = UINT64_MAX;
	while (again) {
		uint64_t open_nodes = 0;

		again = false;
		for (unsigned i = 0; i < p->n; i++)
			open_nodes += zq[p->zone[i]] == UINT64_MAX;
		for (unsigned z = 0; z < nz && open_nodes > 0; z++) {
			uint64_t k = p->zsize[z], cap = zone_cap(p, z);

			if (zq[z] != UINT64_MAX)
				continue;
			if (rest * k / open_nodes > cap) {
				zq[z] = cap;
				rest -= cap;
				again = true;
				break;
			}
		}
	}
	/* The open zones: proportional shares, floored, then the
	 * remainder one each to the most loaded (lowest index on ties). */
	{
		uint64_t open_nodes = 0, given = 0;
		uint64_t *open = calloc(nz, sizeof(*open));
		int64_t *have = calloc(nz, sizeof(*have));

		if (open == NULL || have == NULL) {
			free(open);
			free(have);
			set_shares(p->n, total, p->load, p->share);
			return;
		}
		for (unsigned i = 0; i < p->n; i++) {
			have[p->zone[i]] += (int64_t)p->load[i];
			if (zq[p->zone[i]] == UINT64_MAX) {
				open[p->zone[i]]++;
				open_nodes++;
			}
		}
		for (unsigned z = 0; z < nz; z++)
			if (open[z] > 0) {
				open[z] = rest * open[z] / open_nodes;
				given += open[z];
			} else {
				open[z] = UINT64_MAX;
			}
		/* have[z]: how far z holds more than its floored share
		 * (so a balanced layout keeps its remainder where it is),
		 * INT64_MIN once z took its one of the remainder, or when
		 * it is at its cap. */
		for (unsigned z = 0; z < nz; z++)
			have[z] = open[z] == UINT64_MAX ||
			                          open[z] >= zone_cap(p, z)
			                  ? INT64_MIN
			                  : have[z] - (int64_t)open[z];
		while (given < rest) {
			unsigned best = nz;

			for (unsigned z = 0; z < nz; z++)
				if (have[z] != INT64_MIN &&
				    (best == nz || have[z] > have[best]))
					best = z;
			if (best == nz)
				break; /* cannot happen: the caps hold total */
			open[best]++;
			have[best] = INT64_MIN;
			given++;
		}
		for (unsigned z = 0; z < nz; z++)
			if (zq[z] == UINT64_MAX)
				zq[z] = open[z];
		free(open);
		free(have);
	}
	/* Each zone's quota among its nodes (set_shares() on a subset). */
	for (unsigned z = 0; z < nz; z++) {
		unsigned k = 0, base, rem;

		for (unsigned i = 0; i < p->n; i++)
			if (p->zone[i] == z)
				idx[k++] = i;
		if (k == 0)
			continue;
		base = (unsigned)(zq[z] / k);
		rem = (unsigned)(zq[z] % k);
		for (unsigned j = 0; j < k; j++)
			p->share[idx[j]] = base;
		for (unsigned r = 0; r < rem; r++) {
			unsigned best = k;

			for (unsigned j = 0; j < k; j++)
				if (p->share[idx[j]] == base &&
				    (best == k ||
				     p->load[idx[j]] > p->load[idx[best]]))
					best = j;
			p->share[idx[best]]++;
		}
	}
}

static long gap_of(const struct plan *p, uint32_t i)
{
	return (long)p->share[i] - (long)p->load[i];
}

/* Does node index a come before b as a receiver (bigger gap, then lower
 * index)? */
static bool before(const struct plan *p, uint32_t a, uint32_t b)
{
	long ga = gap_of(p, a), gb = gap_of(p, b);

	return ga > gb || (ga == gb && a < b);
}

static void heap_set(struct plan *p, unsigned q, uint32_t i)
{
	p->heap[q] = i;
	p->hpos[i] = q;
}

/* Move node i, at heap position q, down to its place. */
static void heap_down(struct plan *p, unsigned q, uint32_t i)
{
	for (;;) {
		unsigned l = 2 * q + 1, r = l + 1, m = q;
		uint32_t best = i;

		if (l < p->n && before(p, p->heap[l], best)) {
			m = l;
			best = p->heap[l];
		}
		if (r < p->n && before(p, p->heap[r], best))
			m = r;
		if (m == q)
			break;
		heap_set(p, q, p->heap[m]);
		q = m;
	}
	heap_set(p, q, i);
}

/* Node i's key changed: move it up or down to its place. */
static void heap_fix(struct plan *p, uint32_t i)
{
	unsigned q = p->hpos[i];

	while (q > 0 && before(p, i, p->heap[(q - 1) / 2])) {
		heap_set(p, q, p->heap[(q - 1) / 2]);
		q = (q - 1) / 2;
	}
	heap_down(p, q, i);
}

/* Order every node by its gap, once the shares are set (O(n)). */
static void heap_build(struct plan *p)
{
	if (p->heap == NULL)
		return;
	for (unsigned i = 0; i < p->n; i++)
		heap_set(p, i, i);
	for (unsigned q = p->n / 2; q-- > 0;)
		heap_down(p, q, p->heap[q]);
	p->heap_on = true;
}

/* Node index i holds d more copies. */
static void load_add(struct plan *p, uint32_t i, int d)
{
	p->load[i] = (unsigned)((int)p->load[i] + d);
	if (p->heap_on)
		heap_fix(p, i);
}

/* Would node v (index plus one) take a copy of slot s (see
 * pick_receiver())? */
static bool can_receive(const struct plan *p,
                        unsigned s,
                        uint32_t v,
                        bool under_only,
                        uint32_t skip,
                        bool zones)
{
	return !(under_only && gap_of(p, v - 1) <= 0) &&
	       position_of(&p->t[s], v) == NULL &&
	       !(zones && !zone_room(p, &p->t[s], v, skip));
}

/*
 * The node that should receive a new copy of slot s: among the nodes holding
 * no copy of it, the one furthest below its share, lowest index on ties; but
 * hint (the previous slot's choice) while it is below its share, or while
 * nobody is, so that consecutive slots go to the same node and form ranges.
 * With under_only, only a node below its share qualifies; with zones, only
 * one whose zone has room for the copy (in place of skip's, when skip
 * moves it: 0 for a new copy). 0 when none qualifies.
 */
static uint32_t pick_receiver(const struct plan *p,
                              unsigned s,
                              uint32_t hint,
                              bool under_only,
                              uint32_t skip,
                              bool zones)
{
	long best_gap = LONG_MIN, hint_gap = LONG_MIN;
	uint32_t best = 0;

	if (p->heap_on) {
		/* Best first through the heap: a small heap (walk[]) of heap
		 * positions yields the nodes in receiver order, so the first
		 * that qualifies is the scan's answer below, in O(k log k)
		 * for the k nodes looked at (those holding the slot, or
		 * whose zone is full, come first at worst). */
		uint32_t *w = p->walk;
		unsigned nw = 0;

		w[nw++] = 0;
		while (nw > 0 && best == 0) {
			unsigned q = w[0], k = 0;
			uint32_t i = p->heap[q];

			/* pop the best position */
			w[0] = w[--nw];
			for (;;) {
				unsigned l = 2 * k + 1, r = l + 1, m = k;

				if (l < nw &&
				    before(p, p->heap[w[l]], p->heap[w[m]]))
					m = l;
				if (r < nw &&
				    before(p, p->heap[w[r]], p->heap[w[m]]))
					m = r;
				if (m == k)
					break;
				uint32_t t = w[k];

				w[k] = w[m];
				w[m] = t;
				k = m;
			}
			if (under_only && gap_of(p, i) <= 0)
				break; /* the rest are no better */
			if (can_receive(p, s, i + 1, under_only, skip, zones)) {
				best = i + 1;
				best_gap = gap_of(p, i);
				break;
			}
			for (unsigned c = 2 * q + 1; c <= 2 * q + 2 && c < p->n;
			     c++) {
				/* push child position c */
				unsigned k2 = nw++;

				w[k2] = c;
				while (k2 > 0 &&
				       before(p, p->heap[w[k2]],
				              p->heap[w[(k2 - 1) / 2]])) {
					uint32_t t = w[k2];

					w[k2] = w[(k2 - 1) / 2];
					w[(k2 - 1) / 2] = t;
					k2 = (k2 - 1) / 2;
				}
			}
		}
		if (hint != 0 &&
		    can_receive(p, s, hint, under_only, skip, zones))
			hint_gap = gap_of(p, hint - 1);
	} else {
		for (unsigned i = 0; i < p->n; i++) {
			long gap = gap_of(p, i);

			if (!can_receive(p, s, i + 1, under_only, skip, zones))
				continue;
			if (i + 1 == hint)
				hint_gap = gap;
			if (gap > best_gap) {
				best = i + 1;
				best_gap = gap;
			}
		}
	}
	if (hint_gap != LONG_MIN && (hint_gap > 0 || best_gap <= 0))
		return hint;
	return best;
}

/* The first node (of many at once) lays out a Redis-like contiguous map.
 * With zones, only the primaries: the fill then places the replicas by
 * the zone rules. */
static void lay_out(struct plan *p)
{
	unsigned c = p->zoned ? 1 : p->c;

	for (unsigned i = 0; i < p->n; i++) {
		unsigned from = (unsigned)((uint64_t)i * NARF_SLOTS / p->n);
		unsigned to = (unsigned)((uint64_t)(i + 1) * NARF_SLOTS / p->n);

		for (unsigned s = from; s < to; s++) {
			struct narf_slot *t = &p->t[s];

			t->primary = i + 1;
			for (unsigned k = 1; k < c; k++)
				t->replicas[k - 1] = (i + k) % p->n + 1;
			t->n_replicas = (uint8_t)(c - 1);
		}
	}
}

static void add_copy(struct plan *p, unsigned s, uint32_t v)
{
	struct narf_slot *t = &p->t[s];

	if (t->primary == 0) {
		t->primary = v;
		p->prim[v - 1]++;
	} else {
		t->replicas[t->n_replicas++] = v;
	}
	load_add(p, v - 1, 1);
}

/*
 * Step 2a. Placing new copies slot by slot can paint itself into a corner:
 * with four nodes going from two copies to three, the last range's only
 * candidates may already be full, and step 3 then moves data that a better
 * placement would not have moved. So the slots short of copies are grouped
 * by the nodes holding them and by how many copies they miss (a map this
 * planner made has a handful of such groups), and a maximum flow decides
 * how many copies each group gives each node:
 *
 *	source -> group  capacity: copies the group misses
 *	group -> node    capacity: the group's slot count (one copy per slot),
 *	                 for every node holding none of the group's copies
 *	node -> sink     capacity: how far the node is below its share
 *
 * A group's copies then go out node by node, in slot order, position by
 * position (the first missing copy of every slot, then the second), so no
 * slot gets two copies on one node and each node receives a run of slots.
 * Copies the flow could not place are left to step 2b.
 */
#define FLOW_MAX_ARCS (1u << 18) /* beyond this, step 2b does it all */
#define FLOW_NONE UINT_MAX
#define FLOW_SOURCE 0u
#define FLOW_SINK 1u

struct fill_key {
	uint32_t holders[NARF_MAX_COPIES]; /* ascending, 0-padded */
	unsigned missing;
	unsigned slot;
};

/* A flow network: arc e runs to to[e] with residual cap[e]; e ^ 1 is its
 * reverse. All arrays are owned. */
struct flow {
	unsigned nv, na;
	unsigned *head, *level, *iter, *queue; /* per vertex */
	unsigned *next, *to, *cap;             /* per arc */
};

static int key_cmp(const void *x, const void *y)
{
	const struct fill_key *a = x, *b = y;
	int d = memcmp(a->holders, b->holders, sizeof(a->holders));

	if (d != 0)
		return d;
	if (a->missing != b->missing)
		return a->missing < b->missing ? -1 : 1;
	return a->slot < b->slot ? -1 : a->slot > b->slot;
}

static bool same_group(const struct fill_key *a, const struct fill_key *b)
{
	return a->missing == b->missing &&
	       memcmp(a->holders, b->holders, sizeof(a->holders)) == 0;
}

static void flow_free(struct flow *f)
{
	free(f->head);
	free(f->level);
	free(f->iter);
	free(f->queue);
	free(f->next);
	free(f->to);
	free(f->cap);
}

static bool flow_init(struct flow *f, unsigned nv, unsigned max_arcs)
{
	memset(f, 0, sizeof(*f));
	f->nv = nv;
	f->head = malloc(nv * sizeof(unsigned));
	f->level = malloc(nv * sizeof(unsigned));
	f->iter = malloc(nv * sizeof(unsigned));
	f->queue = malloc(nv * sizeof(unsigned));
	f->next = malloc(max_arcs * sizeof(unsigned));
	f->to = malloc(max_arcs * sizeof(unsigned));
	f->cap = malloc(max_arcs * sizeof(unsigned));
	if (f->head == NULL || f->level == NULL || f->iter == NULL ||
	    f->queue == NULL || f->next == NULL || f->to == NULL ||
	    f->cap == NULL) {
		flow_free(f);
		return false;
	}
	for (unsigned v = 0; v < nv; v++)
		f->head[v] = FLOW_NONE;
	return true;
}

static void flow_arc(struct flow *f, unsigned u, unsigned v, unsigned cap)
{
	f->to[f->na] = v;
	f->cap[f->na] = cap;
	f->next[f->na] = f->head[u];
	f->head[u] = f->na++;
	f->to[f->na] = u;
	f->cap[f->na] = 0;
	f->next[f->na] = f->head[v];
	f->head[v] = f->na++;
}

/* Dinic's algorithm: level the residual graph, then push blocking flows. */
static bool flow_levels(struct flow *f)
{
	unsigned qh = 0, qt = 0;

	for (unsigned v = 0; v < f->nv; v++)
		f->level[v] = FLOW_NONE;
	f->level[FLOW_SOURCE] = 0;
	f->queue[qt++] = FLOW_SOURCE;
	while (qh < qt) {
		unsigned u = f->queue[qh++];

		for (unsigned e = f->head[u]; e != FLOW_NONE; e = f->next[e]) {
			if (f->cap[e] == 0 || f->level[f->to[e]] != FLOW_NONE)
				continue;
			f->level[f->to[e]] = f->level[u] + 1;
			f->queue[qt++] = f->to[e];
		}
	}
	return f->level[FLOW_SINK] != FLOW_NONE;
}

static unsigned flow_push(struct flow *f, unsigned u, unsigned limit)
{
	if (u == FLOW_SINK)
		return limit;
	for (; f->iter[u] != FLOW_NONE; f->iter[u] = f->next[f->iter[u]]) {
		unsigned e = f->iter[u], v = f->to[e], got;

		if (f->cap[e] == 0 || f->level[v] != f->level[u] + 1)
			continue;
		got = flow_push(f, v, limit < f->cap[e] ? limit : f->cap[e]);
		if (got > 0) {
			f->cap[e] -= got;
			f->cap[e ^ 1] += got;
			return got;
		}
	}
	return 0;
}

static void flow_max(struct flow *f)
{
	while (flow_levels(f)) {
		memcpy(f->iter, f->head, f->nv * sizeof(unsigned));
		while (flow_push(f, FLOW_SOURCE, UINT_MAX) > 0)
			;
	}
}

/* Sorted keys of the slots short of copies; returns their number. */
static unsigned fill_keys(const struct plan *p, struct fill_key *keys)
{
	unsigned nk = 0;

	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		const struct narf_slot *t = &p->t[s];
		struct fill_key *k = &keys[nk];
		unsigned h = 0;

		if (slot_copies(t) >= p->c)
			continue;
		memset(k, 0, sizeof(*k));
		if (t->primary != 0)
			k->holders[h++] = t->primary;
		for (unsigned j = 0; j < t->n_replicas; j++)
			k->holders[h++] = t->replicas[j];
		for (unsigned i = 1; i < h; i++) /* insertion sort, h <= 5 */
			for (unsigned j = i;
			     j > 0 && k->holders[j - 1] > k->holders[j]; j--) {
				uint32_t x = k->holders[j];

				k->holders[j] = k->holders[j - 1];
				k->holders[j - 1] = x;
			}
		k->missing = p->c - h;
		k->slot = s;
		nk++;
	}
	qsort(keys, nk, sizeof(keys[0]), key_cmp);
	return nk;
}

static bool key_holds(const struct fill_key *k, uint32_t v)
{
	for (unsigned i = 0; i < NARF_MAX_COPIES; i++)
		if (k->holders[i] == v)
			return true;
	return false;
}

/* May node v take a copy of the slots of group k within the zone limit? */
static bool key_zone_room(const struct plan *p,
                          const struct fill_key *k,
                          uint32_t v)
{
	unsigned n = 0;

	if (!p->zoned)
		return true;
	for (unsigned i = 0; i < NARF_MAX_COPIES; i++)
		n += k->holders[i] != 0 &&
		     p->zone[k->holders[i] - 1] == p->zone[v - 1];
	return n < p->lim;
}

/* Hand out group g's copies as the flow decided (see step 2a above). A
 * group missing two copies or more may find two of them in one zone: the
 * second is left to step 2b. */
static void fill_group(struct plan *p,
                       const struct flow *f,
                       unsigned g,
                       const struct fill_key *keys,
                       unsigned m)
{
	unsigned q = 0;

	for (unsigned e = f->head[2 + g]; e != FLOW_NONE; e = f->next[e]) {
		unsigned v = f->to[e];

		/* Arcs to nodes were added last-first: walk them as they
		 * come, forward arcs only (their reverse holds the flow). */
		if ((e & 1) != 0 || v == FLOW_SOURCE)
			continue;
		for (unsigned r = 0; r < f->cap[e ^ 1]; r++, q++) {
			unsigned s = keys[q % m].slot;
			uint32_t w = v - (f->nv - p->n) + 1;

			if (zone_room(p, &p->t[s], w, 0))
				add_copy(p, s, w);
		}
	}
}

/* Push x units along arc e (a pre-flow set before the maximum flow). */
static void flow_use(struct flow *f, unsigned e, unsigned x)
{
	f->cap[e] -= x;
	f->cap[e ^ 1] += x;
}

/*
 * Add group g (m slots, keyed by k) to the network, with a starting flow:
 * the group's copies go to the nodes furthest below their share in blocks as
 * large as possible, so that the maximum flow only reroutes what this greedy
 * choice got wrong and groups stay in few pieces (few ranges). sink_arc[v]
 * is node v's arc to the sink (FLOW_NONE when it has none); arc[] is scratch
 * space for n entries.
 */
static void flow_group(const struct plan *p,
                       struct flow *f,
                       unsigned g,
                       const struct fill_key *k,
                       unsigned m,
                       const unsigned *sink_arc,
                       unsigned *arc)
{
	unsigned ng = f->nv - 2 - p->n, src = f->na, left = m * k->missing;

	flow_arc(f, FLOW_SOURCE, 2 + g, left);
	/* Highest index first: a group's arc list (last added first) then
	 * meets the nodes in ascending order. */
	for (unsigned v = p->n; v-- > 0;) {
		arc[v] = FLOW_NONE;
		if (!key_holds(k, v + 1) && key_zone_room(p, k, v + 1)) {
			arc[v] = f->na;
			flow_arc(f, 2 + g, 2 + ng + v, m);
		}
	}
	while (left > 0) {
		unsigned best = p->n, x;

		for (unsigned v = 0; v < p->n; v++) {
			if (arc[v] == FLOW_NONE || f->cap[arc[v]] == 0 ||
			    sink_arc[v] == FLOW_NONE ||
			    f->cap[sink_arc[v]] == 0)
				continue;
			if (best == p->n ||
			    f->cap[sink_arc[v]] > f->cap[sink_arc[best]])
				best = v;
		}
		if (best == p->n)
			break;
		x = left;
		if (f->cap[arc[best]] < x)
			x = f->cap[arc[best]];
		if (f->cap[sink_arc[best]] < x)
			x = f->cap[sink_arc[best]];
		flow_use(f, src, x);
		flow_use(f, arc[best], x);
		flow_use(f, sink_arc[best], x);
		left -= x;
	}
}

static void fill_by_flow(struct plan *p)
{
	struct fill_key *keys = malloc(NARF_SLOTS * sizeof(*keys));
	unsigned *sink_arc = malloc(2 * p->n * sizeof(unsigned));
	unsigned nk = 0, ng = 0, g;
	struct flow f;

	if (keys != NULL && sink_arc != NULL)
		nk = fill_keys(p, keys);
	for (unsigned i = 0; i < nk; i++)
		ng += i == 0 || !same_group(&keys[i - 1], &keys[i]);
	if (nk == 0 || (size_t)ng * p->n > FLOW_MAX_ARCS ||
	    !flow_init(&f, 2 + ng + p->n, 2 * (ng + ng * p->n + p->n))) {
		free(sink_arc);
		free(keys);
		return;
	}
	/* Vertices: source, sink, the groups, then the nodes. */
	for (unsigned v = 0; v < p->n; v++) {
		sink_arc[v] = FLOW_NONE;
		if (p->load[v] < p->share[v]) {
			sink_arc[v] = f.na;
			flow_arc(&f, 2 + ng + v, FLOW_SINK,
			         p->share[v] - p->load[v]);
		}
	}
	g = 0;
	for (unsigned i = 0, m; i < nk; i += m, g++) {
		for (m = 1; i + m < nk && same_group(&keys[i], &keys[i + m]);)
			m++;
		flow_group(p, &f, g, &keys[i], m, sink_arc, sink_arc + p->n);
	}
	flow_max(&f);
	g = 0;
	for (unsigned i = 0, m; i < nk; i += m, g++) {
		for (m = 1; i + m < nk && same_group(&keys[i], &keys[i + m]);)
			m++;
		fill_group(p, &f, g, &keys[i], m);
	}
	flow_free(&f);
	free(sink_arc);
	free(keys);
}

/*
 * Step 2b. Whatever step 2a left (nodes below their share ran out, or the
 * map was too fragmented for it) goes to the node furthest below its share,
 * one hint per copy position so that runs still form.
 */
static void fill(struct plan *p)
{
	uint32_t hint[NARF_MAX_COPIES] = {0};

	fill_by_flow(p);
	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		unsigned k;

		while ((k = slot_copies(&p->t[s])) < p->c) {
			uint32_t v =
			        pick_receiver(p, s, hint[k], false, 0, true);

			/* Zones too few or too small: best effort. */
			if (v == 0)
				v = pick_receiver(p, s, hint[k], false, 0,
				                  false);
			assert(v != 0); /* c <= n, so someone holds no copy */
			hint[k] = v;
			add_copy(p, s, v);
		}
	}
}

/* Index every node's slots (O(slots x copies)). */
static void csr_build(struct plan *p)
{
	unsigned *off = p->csr_off;

	memset(off, 0, (p->n + 1) * sizeof(off[0]));
	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		const struct narf_slot *t = &p->t[s];

		if (t->primary != 0)
			off[t->primary - 1]++;
		for (unsigned j = 0; j < t->n_replicas; j++)
			off[t->replicas[j] - 1]++;
	}
	/* off[i]: the end of node i's run; off[n]: the total */
	for (unsigned i = 1; i < p->n; i++)
		off[i] += off[i - 1];
	off[p->n] = p->n > 0 ? off[p->n - 1] : 0;
	/* filled backwards, off[i] ends at the start of node i's run */
	for (unsigned s = NARF_SLOTS; s-- > 0;) {
		const struct narf_slot *t = &p->t[s];

		if (t->primary != 0)
			p->csr[--off[t->primary - 1]] = (uint16_t)s;
		for (unsigned j = 0; j < t->n_replicas; j++)
			p->csr[--off[t->replicas[j] - 1]] = (uint16_t)s;
	}
}

/*
 * Step 3. Nodes above their share of copies hand copies to nodes below it.
 * The first pass moves replicas only; the second may move primaries (with
 * one copy per slot there is nothing else to move). An over-loaded node
 * always holds a slot an under-loaded one lacks (it holds more slots), so
 * both passes together leave every node within its share.
 */
/*
 * The receiver of a's copy of slot s in step 3: a node that holds a copy of
 * s in cur that the plan has dropped (a copy an earlier plan started to
 * sync, or one clean_slot() trimmed), when it is below its share and has
 * room, so that successive plans over a changing map (copies syncing,
 * handoffs landing) keep sending a copy where its data already goes; else
 * pick_receiver()'s choice.
 */
static uint32_t pick_copy_receiver(const struct plan *p,
                                   unsigned s,
                                   uint32_t hint,
                                   uint32_t a)
{
	const struct narf_slot *c = &p->cur->slots[s];

	for (unsigned j = 0; j < c->n_replicas + 1u; j++) {
		uint32_t v =
		        eligible(p, j == 0 ? c->primary : c->replicas[j - 1]);

		if (v != 0 && v != a && can_receive(p, s, v, true, a, true))
			return v;
	}
	return pick_receiver(p, s, hint, true, a, true);
}

static void balance_copies(struct plan *p, unsigned passes)
{
	for (unsigned pass = 0; pass < passes; pass++) {
		csr_build(p);
		for (unsigned a = 0; a < p->n; a++) {
			uint32_t hint = 0;

			/* a's slots from the end of its slot space: the ones
			 * it held at the start of the pass (an over-loaded
			 * node receives nothing meanwhile). First the copies
			 * a does not hold in sync in cur (placed by this plan
			 * or still syncing: giving them away moves no data
			 * a holds), then the others. */
			for (unsigned k = p->csr_off[a + 1], held = 0;
			     p->load[a] > p->share[a];) {
				unsigned s;
				uint32_t *pos, v;

				if (k == p->csr_off[a]) {
					if (held++ > 0)
						break;
					k = p->csr_off[a + 1];
					hint = 0;
				}
				s = p->csr[--k];
				pos = position_of(&p->t[s], a + 1);
				if (pos == NULL ||
				    (pass == 0 && pos == &p->t[s].primary) ||
				    (held == 0 && in_sync(p, s, a + 1)))
					continue;
				v = pick_copy_receiver(p, s, hint, a + 1);
				if (v == 0)
					continue;
				if (pos == &p->t[s].primary) {
					p->prim[a]--;
					p->prim[v - 1]++;
				}
				*pos = v;
				load_add(p, a, -1);
				load_add(p, v - 1, 1);
				hint = v;
			}
		}
	}
}

/* Move the copy at pos in slot s from node a to node v (indices plus one). */
static void move_copy(struct plan *p, unsigned s, uint32_t *pos, uint32_t v)
{
	uint32_t a = *pos;

	if (pos == &p->t[s].primary) {
		p->prim[a - 1]--;
		p->prim[v - 1]++;
	}
	*pos = v;
	load_add(p, a - 1, -1);
	load_add(p, v - 1, 1);
}

/*
 * Step 3b, with zones only. A node a above its share whose slots all keep
 * as many copies in the zones below their quotas as the limit allows
 * cannot hand a copy to any of them (node 5 of zone b, every slot of it
 * with two copies in zone a, limit 2): a node w of a's own zone hands one
 * of its copies to such a node instead (w's slot has room there), and a
 * gives w a copy in its place (within one zone the limit always holds).
 * Two scans per pair (a, w), each from the end of the slot space; the
 * visits are bounded, so a layout this cannot fix costs a bounded time.
 */
#define RELAY_BUDGET (8u * NARF_SLOTS)

static void relay_copies(struct plan *p)
{
	unsigned budget = RELAY_BUDGET;

	for (unsigned a = 0; a < p->n && budget > 0; a++) {
		for (unsigned w = 0;
		     w < p->n && budget > 0 && p->load[a] > p->share[a]; w++) {
			unsigned s1 = NARF_SLOTS, s2 = NARF_SLOTS;

			if (w == a || p->zone[w] != p->zone[a])
				continue;
			while (p->load[a] > p->share[a] && budget > 0) {
				uint32_t *from = NULL, *to = NULL, v = 0;

				/* a's next copy that w could take */
				while (s2-- > 0 && budget-- > 0) {
					from = position_of(&p->t[s2], a + 1);
					if (from != NULL &&
					    position_of(&p->t[s2], w + 1) ==
					            NULL)
						break;
					from = NULL;
				}
				/* w's next copy that a node below its
				 * share, in a zone with room, could take */
				while (from != NULL && s1-- > 0 &&
				       budget-- > 0) {
					to = position_of(&p->t[s1], w + 1);
					if (to == NULL || s1 == s2)
						continue;
					v = pick_receiver(p, s1, 0, true, w + 1,
					                  true);
					if (v != 0 && v != a + 1)
						break;
					to = NULL;
				}
				if (from == NULL || to == NULL)
					break;
				move_copy(p, s1, to, v);
				move_copy(p, s2, from, w + 1);
			}
		}
	}
}

/* Swap roles in slot s: replica j becomes primary, the primary replica j. */
/* Position of y in x's edge list, or where it would go. */
/*
 * The passes of the role swaps (steps 4a and 4b), cheapest first, judged
 * against cur, where a swap can cost a handoff. The cheap ones cost none:
 * SWAP_RETURN gives a slot back to its primary in cur (one handoff fewer);
 * SWAP_NEW gives a slot the plan has already taken from its primary in
 * cur to an in-sync heir (it changes hands either way), SWAP_NEW_ANY to
 * any heir when the plan's primary is not in sync either (it waits for a
 * sync either way). SWAP_SYNCED takes
 * any in-sync heir (a handoff more), SWAP_ANY any heir (one still to sync
 * last). Over a map whose moves are half done, each plan so stays close to
 * the one before instead of sending primaries back and forth (issue 17: a
 * 1,000-node join never settled).
 */
enum swap_pass {
	SWAP_RETURN,
	SWAP_NEW,
	SWAP_NEW_ANY,
	SWAP_CHEAP, /* the passes before this one are the cheap ones */
	SWAP_SYNCED = SWAP_CHEAP,
	SWAP_ANY,
	SWAP_PASSES
};

/* May slot s, led by x in the plan, go to its replica y in this pass? */
static bool swap_allowed(const struct plan *p,
                         enum swap_pass pass,
                         unsigned s,
                         uint32_t x,
                         uint32_t y)
{
	switch (pass) {
	case SWAP_RETURN:
		return cur_primary(p, s, y);
	case SWAP_NEW:
		return !cur_primary(p, s, x) && in_sync(p, s, y);
	case SWAP_NEW_ANY:
		return !cur_primary(p, s, x) && !in_sync(p, s, x);
	case SWAP_SYNCED:
		return in_sync(p, s, y);
	default:
		return true;
	}
}

/* Does the swap of slot s from x to its replica y cost no handoff? */
static bool cheap_swap(const struct plan *p, unsigned s, uint32_t x, uint32_t y)
{
	for (unsigned pass = 0; pass < SWAP_CHEAP; pass++)
		if (swap_allowed(p, (enum swap_pass)pass, s, x, y))
			return true;
	return false;
}

static unsigned edge_pos(const struct edge_list *e, uint32_t y)
{
	unsigned lo = 0, hi = e->n;

	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;

		if (e->to[mid] < y)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* An edge's count: all its slots, or the cheap ones only. */
static unsigned edge_slots(const struct edge_count *c, bool cheap_only)
{
	return cheap_only ? c->cheap : c->all;
}

/* Slots led by node x (index) that node y replicates (the cheap ones only,
 * with cheap_only). */
static unsigned edge_get(const struct plan *p,
                         uint32_t x,
                         uint32_t y,
                         bool cheap_only)
{
	const struct edge_list *e = &p->edges[x];
	unsigned i = edge_pos(e, y);

	return i < e->n && e->to[i] == y ? edge_slots(&e->count[i], cheap_only)
	                                 : 0;
}

/* Add d (+1 or -1) to edge x -> y for slot s; on ENOMEM sets edges_oom
 * (the chains are then given up: step 4c still balances). */
static void edge_add(struct plan *p, unsigned s, uint32_t x, uint32_t y, int d)
{
	struct edge_list *e = &p->edges[x];
	unsigned i = edge_pos(e, y);
	int cheap = cheap_swap(p, s, x + 1, y + 1) ? d : 0;

	if (i < e->n && e->to[i] == y) {
		e->count[i].all = (unsigned)((int)e->count[i].all + d);
		e->count[i].cheap = (unsigned)((int)e->count[i].cheap + cheap);
		return;
	}
	if (d < 0) { /* only after an insert failed */
		p->edges_oom = true;
		return;
	}
	if (e->n == e->cap) {
		unsigned cap = e->cap ? 2 * e->cap : 4;
		uint32_t *to = realloc(e->to, cap * sizeof(*to));
		struct edge_count *count;

		if (to == NULL) {
			p->edges_oom = true;
			return;
		}
		e->to = to;
		count = realloc(e->count, cap * sizeof(*count));
		if (count == NULL) {
			p->edges_oom = true;
			return;
		}
		e->count = count;
		e->cap = cap;
	}
	memmove(&e->to[i + 1], &e->to[i], (e->n - i) * sizeof(e->to[0]));
	memmove(&e->count[i + 1], &e->count[i],
	        (e->n - i) * sizeof(e->count[0]));
	e->to[i] = y;
	e->count[i].all = (unsigned)d;
	e->count[i].cheap = (unsigned)cheap;
	e->n++;
}

static void edges_free(struct plan *p)
{
	if (p->edges == NULL)
		return;
	for (unsigned i = 0; i < p->n; i++) {
		free(p->edges[i].to);
		free(p->edges[i].count);
	}
	free(p->edges);
	p->edges = NULL;
}

static void swap_roles(struct plan *p, unsigned s, unsigned j)
{
	struct narf_slot *t = &p->t[s];
	uint32_t x = t->primary, y = t->replicas[j];

	if (p->edges != NULL) {
		for (unsigned k = 0; k < t->n_replicas; k++) {
			uint32_t z = t->replicas[k];

			edge_add(p, s, x - 1, z - 1, -1);
			if (z != y)
				edge_add(p, s, y - 1, z - 1, 1);
		}
		edge_add(p, s, y - 1, x - 1, 1);
	}
	t->primary = y;
	t->replicas[j] = x;
	p->prim[x - 1]--;
	p->prim[y - 1]++;
}

static long primary_gap(const struct plan *p, uint32_t v)
{
	return (long)p->pshare[v - 1] - (long)p->prim[v - 1];
}

/*
 * The replica of slot s (led by x) that should take over as primary: one
 * below its share of primaries that the pass allows (swap_allowed()), hint
 * if it qualifies, else the one furthest below its share. -1 when none
 * qualifies.
 */
static int pick_heir(const struct plan *p,
                     unsigned s,
                     uint32_t hint,
                     unsigned pass,
                     uint32_t x)
{
	const struct narf_slot *t = &p->t[s];
	int best = -1;

	for (unsigned j = 0; j < t->n_replicas; j++) {
		uint32_t v = t->replicas[j];

		if (primary_gap(p, v) <= 0 ||
		    !swap_allowed(p, (enum swap_pass)pass, s, x, v))
			continue;
		if (v == hint)
			return (int)j;
		if (best < 0 ||
		    primary_gap(p, v) > primary_gap(p, t->replicas[best]) ||
		    (primary_gap(p, v) == primary_gap(p, t->replicas[best]) &&
		     v < t->replicas[best]))
			best = (int)j;
	}
	return best;
}

/* Step 4a. Direct role swaps, in passes first to last (enum swap_pass). */
static void swap_primaries(struct plan *p, unsigned first, unsigned last)
{
	for (unsigned pass = first; pass < last; pass++) {
		for (unsigned a = 0; a < p->n; a++) {
			uint32_t hint = 0;

			for (unsigned k = p->csr_off[a + 1];
			     k-- > p->csr_off[a] &&
			     p->prim[a] > p->pshare[a];) {
				unsigned s = p->csr[k];
				int j;

				if (p->t[s].primary != a + 1)
					continue;
				j = pick_heir(p, s, hint, pass, a + 1);
				if (j < 0)
					continue;
				hint = p->t[s].replicas[j];
				swap_roles(p, s, (unsigned)j);
			}
		}
	}
}

/* Swap up to k slots led by x and replicated by y, the cheap ones only
 * with cheap_only; returns how many. */
static unsigned swap_pair(struct plan *p,
                          unsigned x,
                          unsigned y,
                          unsigned k,
                          bool cheap_only)
{
	unsigned done = 0;

	for (unsigned pass = 0; pass < (cheap_only ? SWAP_CHEAP : SWAP_PASSES);
	     pass++) {
		for (unsigned c = p->csr_off[x + 1];
		     c-- > p->csr_off[x] && done < k;) {
			unsigned s = p->csr[c];
			struct narf_slot *t = &p->t[s];

			if (t->primary != x + 1)
				continue;
			for (unsigned j = 0; j < t->n_replicas; j++) {
				if (t->replicas[j] != y + 1 ||
				    !swap_allowed(p, (enum swap_pass)pass, s,
				                  x + 1, y + 1))
					continue;
				swap_roles(p, s, j);
				done++;
				break;
			}
		}
	}
	return done;
}

/*
 * Step 4b. edge x -> y counts the slots led by x that y replicates. A
 * search from every over-loaded node finds a chain x0 -> x1 -> ... -> xk
 * to an under-loaded node; swapping one slot along each link moves one
 * primary from x0 to xk and leaves the nodes between as they were, without
 * moving data. As many units as the chain allows move at once.
 *
 * The chain is the one with the fewest costly links (links with no cheap
 * slot, enum swap_pass), then the fewest links: a breadth-first search
 * over cheap links, level by level, where level L + 1 starts from the
 * nodes one costly link away from level L. A cheap link swaps only its
 * cheap slots.
 *
 * A chain has at most CHAIN_MAX links: each is a handoff, and past a few
 * of them moving the slot's data (step 4c) costs less. Without the bound,
 * one node joining 1,000 laid out by lay_out() (each node's replicas on the
 * next nodes, a ring) took chains of ~60 links: 976 handoffs where 16
 * primaries had to move.
 *
 * parent[], queue[] and depth[] are n entries each. Returns false when no
 * chain exists (or, defensively, when it moved nothing).
 */
#define CHAIN_MAX 4u

static bool chain_swaps(struct plan *p,
                        unsigned *parent,
                        unsigned *queue,
                        unsigned *depth)
{
	unsigned n = p->n, head = 0, tail = 0, level = 0, sink = n, src;
	unsigned k = UINT_MAX;

	for (unsigned i = 0; i < n; i++) {
		parent[i] = n;
		if (p->prim[i] > p->pshare[i]) {
			parent[i] = i;
			depth[i] = 0;
			queue[tail++] = i;
		}
	}
	for (bool cheap = true; sink == n;) {
		unsigned end = tail;

		/* cheap: the links of level's nodes and those they reach;
		 * else the costly links of level's nodes */
		for (head = level; head < (cheap ? tail : end) && sink == n;
		     head++) {
			unsigned x = queue[head];
			const struct edge_list *e = &p->edges[x];

			for (unsigned i = 0; i < e->n && depth[x] < CHAIN_MAX;
			     i++) {
				unsigned y = e->to[i];

				if (parent[y] != n ||
				    edge_slots(&e->count[i], cheap) == 0)
					continue;
				parent[y] = x;
				depth[y] = depth[x] + 1;
				queue[tail++] = y;
				if (p->prim[y] < p->pshare[y]) {
					sink = y;
					break;
				}
			}
		}
		if (!cheap) {
			if (tail == end)
				return false;
			level = end;
		}
		cheap = !cheap;
	}
	/* Walk back from the sink to the source, collecting the chain. */
	tail = 0;
	for (unsigned y = sink;; y = parent[y]) {
		unsigned c;

		queue[tail++] = y;
		if (parent[y] == y)
			break;
		c = edge_get(p, parent[y], y, true);
		if (c == 0)
			c = edge_get(p, parent[y], y, false);
		if (c < k)
			k = c;
	}
	src = queue[tail - 1];
	if (p->prim[src] - p->pshare[src] < k)
		k = p->prim[src] - p->pshare[src];
	if (p->pshare[sink] - p->prim[sink] < k)
		k = p->pshare[sink] - p->prim[sink];
	/* Links from the source end first: no swap can lower the count of a
	 * later link, since the nodes of a chain are distinct. */
	for (unsigned i = tail - 1; i > 0 && k > 0; i--)
		k = swap_pair(p, queue[i], queue[i - 1], k,
		              edge_get(p, queue[i], queue[i - 1], true) > 0);
	return k > 0;
}

/*
 * Step 4c. No chain of swaps leads from an over-loaded node a to an
 * under-loaded node b, so b replicates none of a's slots: b takes over a's
 * last slot, data and all. To keep copy counts where step 3 left them, a then
 * takes over b's last replica of a slot a holds no copy of, if any.
 */
static void move_primary(struct plan *p)
{
	unsigned a = 0, b = 0, s;

	while (a < p->n && p->prim[a] <= p->pshare[a])
		a++;
	while (b < p->n && p->prim[b] >= p->pshare[b])
		b++;
	assert(a < p->n && b < p->n);
	/* Within the zone limit if a slot allows it, else anyhow: every call
	 * must move a primary. */
	for (s = NARF_SLOTS; s-- > 0;)
		if (p->t[s].primary == a + 1 &&
		    position_of(&p->t[s], b + 1) == NULL &&
		    zone_room(p, &p->t[s], b + 1, a + 1))
			break;
	for (s = s < NARF_SLOTS ? s + 1 : NARF_SLOTS; s-- > 0;) {
		struct narf_slot *t = &p->t[s];

		if (t->primary == a + 1 && position_of(t, b + 1) == NULL) {
			t->primary = b + 1;
			p->prim[a]--;
			p->prim[b]++;
			load_add(p, a, -1);
			load_add(p, b, 1);
			break;
		}
	}
	for (s = NARF_SLOTS; s-- > 0;) {
		struct narf_slot *t = &p->t[s];
		uint32_t *pos = position_of(t, b + 1);

		if (pos != NULL && pos != &t->primary &&
		    position_of(t, a + 1) == NULL &&
		    zone_room(p, t, a + 1, b + 1)) {
			*pos = a + 1;
			load_add(p, a, 1);
			load_add(p, b, -1);
			break;
		}
	}
}

static bool primaries_balanced(const struct plan *p)
{
	for (unsigned i = 0; i < p->n; i++)
		if (p->prim[i] != p->pshare[i])
			return false;
	return true;
}

/*
 * Step 4: every node ends with exactly its share of primaries. The direct
 * swaps that cost no handoff against cur go first (4a), then chains with
 * as few costly links as there can be (4b), then step 4c. Without memory
 * for the chains' graph, the direct swaps that cost a handoff stand in.
 */
static void balance_primaries(struct plan *p)
{
	unsigned n = p->n, *parent, *queue, *depth;

	/* Role swaps only, until step 4c: the slot lists stay exact. */
	csr_build(p);
	swap_primaries(p, 0, SWAP_CHEAP);
	if (primaries_balanced(p))
		return;
	p->edges = calloc(n, sizeof(p->edges[0]));
	p->edges_oom = false;
	parent = calloc(n, sizeof(parent[0]));
	queue = calloc(n, sizeof(queue[0]));
	depth = calloc(n, sizeof(depth[0]));
	if (p->edges != NULL && parent != NULL && queue != NULL &&
	    depth != NULL) {
		for (unsigned s = 0; s < NARF_SLOTS; s++) {
			const struct narf_slot *t = &p->t[s];

			for (unsigned j = 0; j < t->n_replicas; j++)
				edge_add(p, s, t->primary - 1,
				         t->replicas[j] - 1, 1);
		}
		while (!p->edges_oom && !primaries_balanced(p) &&
		       chain_swaps(p, parent, queue, depth))
			;
	}
	edges_free(p);
	free(parent);
	free(queue);
	free(depth);
	swap_primaries(p, SWAP_CHEAP, SWAP_PASSES);
	/* Every step of this loop moves one primary from an over-loaded node
	 * to an under-loaded one, so it ends. */
	while (!primaries_balanced(p))
		move_primary(p);
}

/* Step 5. Back to node ids; ISR, epochs and moves; count the changes. */
static unsigned finish(struct plan *p)
{
	unsigned changed = 0;

	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		const struct narf_slot *c = &p->cur->slots[s];
		struct narf_slot *t = &p->t[s];
		struct narf_slot out;

		memset(&out, 0, sizeof(out));
		if (t->primary != 0)
			out.primary = p->ids[t->primary - 1];
		out.n_replicas = t->n_replicas;
		for (unsigned j = 0; j < t->n_replicas; j++) {
			uint32_t id = p->ids[t->replicas[j] - 1];

			out.replicas[j] = id;
			if (was_in_sync(c, id))
				out.isr[out.n_isr++] = id;
		}
		if (narf_slot_same(c, &out)) {
			*t = *c;
			continue;
		}
		out.epoch = out.primary == c->primary ? c->epoch
		                                      : p->cur->epoch + 1;
		out.born = c->born;
		*t = out;
		changed++;
	}
	return changed;
}

static void plan_free(struct plan *p)
{
	free(p->zone);
	free(p->zsize);
	free(p->ids);
	free(p->load);
	free(p->prim);
	free(p->share);
	free(p->pshare);
	free(p->heap);
	free(p->hpos);
	free(p->walk);
	free(p->csr_off);
	free(p->csr);
}

/* Steps 1 to 4, on p->t (node indices), with at least one copy per slot. */
static void plan_slots(struct plan *p)
{
	bool empty = true;

	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		clean_slot(p, s);
		empty = empty && p->t[s].primary == 0;
	}
	if (empty) {
		lay_out(p);
		if (!p->zoned)
			return;
	}
	count_loads(p);
	if (p->zoned) {
		uint64_t *zq = malloc(p->nz * sizeof(*zq));
		unsigned *idx = malloc(p->n * sizeof(*idx));

		if (zq != NULL && idx != NULL)
			set_zone_shares(p, NARF_SLOTS * p->c, zq, idx);
		else
			set_shares(p->n, NARF_SLOTS * p->c, p->load, p->share);
		free(zq);
		free(idx);
	} else {
		set_shares(p->n, NARF_SLOTS * p->c, p->load, p->share);
	}
	heap_build(p);
	fill(p);
	balance_copies(p, 2);
	if (p->zoned)
		relay_copies(p);
	set_shares(p->n, NARF_SLOTS, p->prim, p->pshare);
	balance_primaries(p);
	/* A primary moved with its data (step 4c) can leave copies uneven;
	 * moving replicas evens them out again without touching primaries. */
	balance_copies(p, 1);
}

static unsigned plan_map(const struct narf_map *cur, struct narf_slot *target);

unsigned narf_plan_freeze_held(const struct narf_map *cur,
                               struct narf_slot *target)
{
	unsigned changed = 0;

	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		if (narf_slot_held(cur, s))
			target[s] = cur->slots[s];
		changed += !narf_slot_equal(&target[s], &cur->slots[s]);
	}
	return changed;
}

unsigned narf_plan(const struct narf_map *cur, struct narf_slot *target)
{
	struct narf_map *view;
	unsigned changed = 0;
	bool moving = false;

	for (unsigned s = 0; s < NARF_SLOTS && !moving; s++)
		moving = cur->slots[s].move != 0;
	if (!moving) {
		changed = plan_map(cur, target);
		return cur->settings.on_lost == NARF_LOST_WAIT
		               ? narf_plan_freeze_held(cur, target)
		               : changed;
	}
	/* Plan as if every pending move were done: a moving slot is frozen
	 * until its handoff (narf_plan_step), and planning it as it stands
	 * would ask for copies elsewhere that the handoff makes needless. */
	view = malloc(sizeof(*view));
	if (view == NULL) {
		memcpy(target, cur->slots, sizeof(cur->slots));
		return 0;
	}
	memcpy(view, cur, sizeof(*view)); /* nodes stay borrowed from cur */
	for (unsigned s = 0; s < NARF_SLOTS; s++)
		if (view->slots[s].move != 0)
			narf_slot_settle_move(&view->slots[s], cur->epoch + 1);
	plan_map(view, target);
	free(view);
	return narf_plan_freeze_held(cur, target);
}

struct zone_key {
	const char *name; /* borrowed: the node's zone */
	unsigned node;    /* index among the eligible nodes */
};

static int zone_key_cmp(const void *x, const void *y)
{
	const struct zone_key *a = x, *b = y;
	int d = strcmp(a->name, b->name);

	if (d != 0)
		return d;
	return a->node < b->node ? -1 : a->node > b->node;
}

/*
 * Number the zones of the eligible nodes (in name order, so every member
 * numbers them alike) into p->zone; a node without a zone is one of its
 * own. Sets nz, zsize, zoned and lim: the least L such that zones holding
 * at most L copies of a slot each (and one per node) can hold c, which is
 * 1 when Z >= c and ceil(c / Z) when the zones are large enough. Returns
 * false when out of memory.
 */
static bool zones_init(struct plan *p)
{
	struct zone_key *keys;

	p->nz = p->n;
	if (p->n < 2)
		return true;
	keys = malloc(p->n * sizeof(*keys));
	p->zone = malloc(p->n * sizeof(p->zone[0]));
	p->zsize = calloc(p->n, sizeof(p->zsize[0]));
	if (keys == NULL || p->zone == NULL || p->zsize == NULL) {
		free(keys);
		return false;
	}
	for (unsigned i = 0; i < p->n; i++) {
		keys[i].name = narf_map_node_get(p->cur, p->ids[i])->zone;
		keys[i].node = i;
	}
	qsort(keys, p->n, sizeof(keys[0]), zone_key_cmp);
	p->nz = 0;
	for (unsigned i = 0; i < p->n; i++) {
		if (i == 0 || keys[i].name[0] == '\0' ||
		    strcmp(keys[i].name, keys[i - 1].name) != 0)
			p->nz++;
		p->zone[keys[i].node] = p->nz - 1;
		p->zsize[p->nz - 1]++;
	}
	free(keys);
	for (p->lim = p->nz >= p->c ? 1 : (p->c + p->nz - 1) / p->nz;;
	     p->lim++) {
		unsigned room = 0;

		for (unsigned z = 0; z < p->nz; z++)
			room += p->zsize[z] < p->lim ? p->zsize[z] : p->lim;
		if (room >= p->c)
			break;
	}
	/* A limit of c (one zone, say) limits nothing. */
	p->zoned = p->nz < p->n && p->lim < p->c;
	if (!p->zoned) {
		free(p->zone);
		free(p->zsize);
		p->zone = p->zsize = NULL;
	}
	return true;
}

static unsigned plan_map(const struct narf_map *cur, struct narf_slot *target)
{
	struct plan p = {.cur = cur, .t = target};
	unsigned changed;

	for (unsigned i = 0; i < cur->n_nodes; i++)
		p.n += cur->nodes[i].state == NARF_NODE_UP;
	p.c = cur->settings.replication < p.n ? cur->settings.replication : p.n;
	if (p.c > NARF_MAX_COPIES)
		p.c = NARF_MAX_COPIES;
	if (p.n > 0) {
		p.ids = malloc(p.n * sizeof(p.ids[0]));
		p.load = calloc(p.n, sizeof(p.load[0]));
		p.prim = calloc(p.n, sizeof(p.prim[0]));
		p.share = calloc(p.n, sizeof(p.share[0]));
		p.pshare = calloc(p.n, sizeof(p.pshare[0]));
		p.csr_off = calloc(p.n + 1, sizeof(p.csr_off[0]));
		p.csr = malloc(NARF_SLOTS * NARF_MAX_COPIES * sizeof(p.csr[0]));
		/* The receivers' heap is an accelerator: without memory for
		 * it, pick_receiver() scans. */
		p.heap = malloc(p.n * sizeof(p.heap[0]));
		p.hpos = malloc(p.n * sizeof(p.hpos[0]));
		p.walk = malloc((p.n + 1) * sizeof(p.walk[0]));
		if (p.heap == NULL || p.hpos == NULL || p.walk == NULL) {
			free(p.heap);
			free(p.hpos);
			free(p.walk);
			p.heap = p.hpos = p.walk = NULL;
		}
		if (p.ids == NULL || p.load == NULL || p.prim == NULL ||
		    p.share == NULL || p.pshare == NULL || p.csr_off == NULL ||
		    p.csr == NULL) {
			plan_free(&p);
			memcpy(target, cur->slots, sizeof(cur->slots));
			return 0;
		}
		/* cur->nodes is sorted by id, so ids[] is too. */
		p.n = 0;
		for (unsigned i = 0; i < cur->n_nodes; i++)
			if (cur->nodes[i].state == NARF_NODE_UP)
				p.ids[p.n++] = cur->nodes[i].id;
		if (!zones_init(&p)) {
			plan_free(&p);
			memcpy(target, cur->slots, sizeof(cur->slots));
			return 0;
		}
	}
	memset(target, 0, NARF_SLOTS * sizeof(target[0]));
	if (p.c > 0)
		plan_slots(&p);
	changed = finish(&p);
	plan_free(&p);
	return changed;
}
