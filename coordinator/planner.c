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
	unsigned *edges; /* owned, NULL until needed: see balance_primaries() */
};

static unsigned slot_copies(const struct narf_slot *t)
{
	return (t->primary != 0 ? 1u : 0u) + t->n_replicas;
}

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

/*
 * Did node id hold every acknowledged write of slot c before the plan? Its
 * primary and its ISR members do, and so does anyone when the slot held no
 * copy at all (there was nothing to write).
 */
static bool was_in_sync(const struct narf_slot *c, uint32_t id)
{
	if (c->primary == 0 && c->n_replicas == 0)
		return true;
	if (c->primary == id)
		return true;
	for (unsigned i = 0; i < c->n_isr && i < NARF_MAX_REPLICAS; i++)
		if (c->isr[i] == id)
			return true;
	return false;
}

/* was_in_sync() for node v (index plus one) of slot s. */
static bool in_sync(const struct plan *p, unsigned s, uint32_t v)
{
	return was_in_sync(&p->cur->slots[s], p->ids[v - 1]);
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
static void set_shares(unsigned n, unsigned total, const unsigned *have,
		       unsigned *share)
{
	unsigned base = total / n, rem = total % n;

	for (unsigned i = 0; i < n; i++)
		share[i] = base;
	for (unsigned k = 0; k < rem; k++) {
		unsigned best = n;

		for (unsigned i = 0; i < n; i++)
			if (share[i] == base && (best == n || have[i] > have[best]))
				best = i;
		share[best]++;
	}
}

/*
 * The node that should receive a new copy of slot s: hint while it holds no
 * copy and is below its share (so consecutive slots go to the same node and
 * form ranges), else the node furthest below its share holding no copy,
 * lowest index on ties. With under_only, only nodes below their share; 0 when
 * there is none.
 */
static uint32_t pick_receiver(const struct plan *p, unsigned s, uint32_t hint,
			      bool under_only)
{
	long best_gap = LONG_MIN;
	uint32_t best = 0;

	if (hint != 0 && position_of(&p->t[s], hint) == NULL &&
	    p->load[hint - 1] < p->share[hint - 1])
		return hint;
	for (unsigned i = 0; i < p->n; i++) {
		long gap = (long)p->share[i] - (long)p->load[i];

		if ((under_only && gap <= 0) || gap <= best_gap)
			continue;
		if (position_of(&p->t[s], i + 1) != NULL)
			continue;
		best = i + 1;
		best_gap = gap;
	}
	return best;
}

/* The first node (of many at once) lays out a Redis-like contiguous map. */
static void lay_out(struct plan *p)
{
	for (unsigned i = 0; i < p->n; i++) {
		unsigned from = (unsigned)((uint64_t)i * NARF_SLOTS / p->n);
		unsigned to = (unsigned)((uint64_t)(i + 1) * NARF_SLOTS / p->n);

		for (unsigned s = from; s < to; s++) {
			struct narf_slot *t = &p->t[s];

			t->primary = i + 1;
			for (unsigned k = 1; k < p->c; k++)
				t->replicas[k - 1] = (i + k) % p->n + 1;
			t->n_replicas = (uint8_t)(p->c - 1);
		}
	}
}

/* Step 2. Give every slot short of c copies new ones. */
static void fill(struct plan *p)
{
	uint32_t hint[NARF_MAX_COPIES] = {0};

	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		struct narf_slot *t = &p->t[s];
		unsigned k;

		/* One hint per position, so that an empty slot's primaries
		 * and replicas each form their own runs. */
		while ((k = slot_copies(t)) < p->c) {
			uint32_t v = pick_receiver(p, s, hint[k], false);

			assert(v != 0); /* c <= n, so someone holds no copy */
			hint[k] = v;
			if (t->primary == 0) {
				t->primary = v;
				p->prim[v - 1]++;
			} else {
				t->replicas[t->n_replicas++] = v;
			}
			p->load[v - 1]++;
		}
	}
}

/*
 * Step 3. Nodes above their share of copies hand copies to nodes below it.
 * The first pass moves replicas only; the second may move primaries (with
 * one copy per slot there is nothing else to move). An over-loaded node
 * always holds a slot an under-loaded one lacks (it holds more slots), so
 * both passes together leave every node within its share.
 */
static void balance_copies(struct plan *p, unsigned passes)
{
	for (unsigned pass = 0; pass < passes; pass++) {
		for (unsigned a = 0; a < p->n; a++) {
			uint32_t hint = 0;

			for (unsigned s = NARF_SLOTS;
			     s-- > 0 && p->load[a] > p->share[a];) {
				uint32_t *pos = position_of(&p->t[s], a + 1);
				uint32_t v;

				if (pos == NULL ||
				    (pass == 0 && pos == &p->t[s].primary))
					continue;
				v = pick_receiver(p, s, hint, true);
				if (v == 0)
					continue;
				if (pos == &p->t[s].primary) {
					p->prim[a]--;
					p->prim[v - 1]++;
				}
				*pos = v;
				p->load[a]--;
				p->load[v - 1]++;
				hint = v;
			}
		}
	}
}

/* Swap roles in slot s: replica j becomes primary, the primary replica j. */
static void swap_roles(struct plan *p, unsigned s, unsigned j)
{
	struct narf_slot *t = &p->t[s];
	uint32_t x = t->primary, y = t->replicas[j];

	if (p->edges != NULL) {
		unsigned n = p->n;

		for (unsigned k = 0; k < t->n_replicas; k++) {
			uint32_t z = t->replicas[k];

			p->edges[(x - 1) * n + (z - 1)]--;
			if (z != y)
				p->edges[(y - 1) * n + (z - 1)]++;
		}
		p->edges[(y - 1) * n + (x - 1)]++;
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
 * The replica of slot s that should take over as primary: one below its
 * share of primaries (and in sync, with sync_only), hint if it qualifies,
 * else the one furthest below its share. -1 when none qualifies.
 */
static int pick_heir(const struct plan *p, unsigned s, uint32_t hint,
		     bool sync_only)
{
	const struct narf_slot *t = &p->t[s];
	int best = -1;

	for (unsigned j = 0; j < t->n_replicas; j++) {
		uint32_t v = t->replicas[j];

		if (primary_gap(p, v) <= 0 || (sync_only && !in_sync(p, s, v)))
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

/* Step 4a. Direct role swaps, to in-sync replicas first. */
static void swap_primaries(struct plan *p)
{
	for (unsigned pass = 0; pass < 2; pass++) {
		for (unsigned a = 0; a < p->n; a++) {
			uint32_t hint = 0;

			for (unsigned s = NARF_SLOTS;
			     s-- > 0 && p->prim[a] > p->pshare[a];) {
				int j;

				if (p->t[s].primary != a + 1)
					continue;
				j = pick_heir(p, s, hint, pass == 0);
				if (j < 0)
					continue;
				hint = p->t[s].replicas[j];
				swap_roles(p, s, (unsigned)j);
			}
		}
	}
}

/* Swap up to k slots led by x and replicated by y; returns how many. */
static unsigned swap_pair(struct plan *p, unsigned x, unsigned y, unsigned k)
{
	unsigned done = 0;

	for (unsigned pass = 0; pass < 2; pass++) {
		for (unsigned s = NARF_SLOTS; s-- > 0 && done < k;) {
			struct narf_slot *t = &p->t[s];

			if (t->primary != x + 1)
				continue;
			for (unsigned j = 0; j < t->n_replicas; j++) {
				if (t->replicas[j] != y + 1 ||
				    (pass == 0 && !in_sync(p, s, y + 1)))
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
 * Step 4b. edges[x * n + y] counts the slots led by x that y replicates. A
 * breadth-first search from every over-loaded node finds the shortest chain
 * x0 -> x1 -> ... -> xk to an under-loaded node; swapping one slot along each
 * link moves one primary from x0 to xk and leaves the nodes between as they
 * were, without moving data. As many units as the chain allows move at once.
 * parent[] and queue[] are n entries each. Returns false when no chain
 * exists (or, defensively, when it moved nothing).
 */
static bool chain_swaps(struct plan *p, unsigned *parent, unsigned *queue)
{
	unsigned n = p->n, head = 0, tail = 0, sink = n, src, k = UINT_MAX;

	for (unsigned i = 0; i < n; i++) {
		parent[i] = n;
		if (p->prim[i] > p->pshare[i]) {
			parent[i] = i;
			queue[tail++] = i;
		}
	}
	while (head < tail && sink == n) {
		unsigned x = queue[head++];

		for (unsigned y = 0; y < n; y++) {
			if (parent[y] != n || p->edges[x * n + y] == 0)
				continue;
			parent[y] = x;
			queue[tail++] = y;
			if (p->prim[y] < p->pshare[y]) {
				sink = y;
				break;
			}
		}
	}
	if (sink == n)
		return false;
	/* Walk back from the sink to the source, collecting the chain. */
	tail = 0;
	for (unsigned y = sink;; y = parent[y]) {
		queue[tail++] = y;
		if (parent[y] == y)
			break;
		if (p->edges[parent[y] * n + y] < k)
			k = p->edges[parent[y] * n + y];
	}
	src = queue[tail - 1];
	if (p->prim[src] - p->pshare[src] < k)
		k = p->prim[src] - p->pshare[src];
	if (p->pshare[sink] - p->prim[sink] < k)
		k = p->pshare[sink] - p->prim[sink];
	/* Links from the source end first: no swap can lower the count of a
	 * later link, since the nodes of a chain are distinct. */
	for (unsigned i = tail - 1; i > 0 && k > 0; i--)
		k = swap_pair(p, queue[i], queue[i - 1], k);
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
	for (s = NARF_SLOTS; s-- > 0;) {
		struct narf_slot *t = &p->t[s];

		if (t->primary == a + 1 && position_of(t, b + 1) == NULL) {
			t->primary = b + 1;
			p->prim[a]--;
			p->prim[b]++;
			p->load[a]--;
			p->load[b]++;
			break;
		}
	}
	for (s = NARF_SLOTS; s-- > 0;) {
		struct narf_slot *t = &p->t[s];
		uint32_t *pos = position_of(t, b + 1);

		if (pos != NULL && pos != &t->primary &&
		    position_of(t, a + 1) == NULL) {
			*pos = a + 1;
			p->load[a]++;
			p->load[b]--;
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

/* Step 4: every node ends with exactly its share of primaries. */
static void balance_primaries(struct plan *p)
{
	unsigned n = p->n, *parent, *queue;

	swap_primaries(p);
	if (primaries_balanced(p))
		return;
	p->edges = calloc((size_t)n * n, sizeof(p->edges[0]));
	parent = calloc(n, sizeof(parent[0]));
	queue = calloc(n, sizeof(queue[0]));
	if (p->edges != NULL && parent != NULL && queue != NULL) {
		for (unsigned s = 0; s < NARF_SLOTS; s++) {
			const struct narf_slot *t = &p->t[s];

			for (unsigned j = 0; j < t->n_replicas; j++)
				p->edges[(t->primary - 1) * n +
					 (t->replicas[j] - 1)]++;
		}
		while (!primaries_balanced(p) && chain_swaps(p, parent, queue))
			;
	}
	free(p->edges);
	p->edges = NULL;
	free(parent);
	free(queue);
	/* Every step of this loop moves one primary from an over-loaded node
	 * to an under-loaded one, so it ends. */
	while (!primaries_balanced(p))
		move_primary(p);
}

static bool same_slot(const struct narf_slot *a, const struct narf_slot *b)
{
	if (a->primary != b->primary || a->n_replicas != b->n_replicas ||
	    a->n_isr != b->n_isr)
		return false;
	for (unsigned j = 0; j < a->n_replicas; j++)
		if (a->replicas[j] != b->replicas[j])
			return false;
	for (unsigned j = 0; j < a->n_isr; j++)
		if (a->isr[j] != b->isr[j])
			return false;
	return true;
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
		if (same_slot(c, &out)) {
			*t = *c;
			continue;
		}
		out.epoch = out.primary == c->primary ? c->epoch
						      : p->cur->epoch + 1;
		*t = out;
		changed++;
	}
	return changed;
}

static void plan_free(struct plan *p)
{
	free(p->ids);
	free(p->load);
	free(p->prim);
	free(p->share);
	free(p->pshare);
}

unsigned narf_plan(const struct narf_map *cur, struct narf_slot *target)
{
	struct plan p = {.cur = cur, .t = target};
	bool empty = true;
	unsigned changed;

	for (unsigned i = 0; i < cur->n_nodes; i++)
		p.n += cur->nodes[i].state == NARF_NODE_UP;
	p.c = cur->settings.replication < p.n ? cur->settings.replication
					       : p.n;
	if (p.c > NARF_MAX_COPIES)
		p.c = NARF_MAX_COPIES;
	if (p.n > 0) {
		p.ids = malloc(p.n * sizeof(p.ids[0]));
		p.load = calloc(p.n, sizeof(p.load[0]));
		p.prim = calloc(p.n, sizeof(p.prim[0]));
		p.share = calloc(p.n, sizeof(p.share[0]));
		p.pshare = calloc(p.n, sizeof(p.pshare[0]));
		if (p.ids == NULL || p.load == NULL || p.prim == NULL ||
		    p.share == NULL || p.pshare == NULL) {
			plan_free(&p);
			memcpy(target, cur->slots, sizeof(cur->slots));
			return 0;
		}
		p.n = 0;
		for (unsigned i = 0; i < cur->n_nodes; i++)
			if (cur->nodes[i].state == NARF_NODE_UP)
				p.ids[p.n++] = cur->nodes[i].id;
	}
	memset(target, 0, NARF_SLOTS * sizeof(target[0]));
	if (p.c > 0) {
		for (unsigned s = 0; s < NARF_SLOTS; s++) {
			clean_slot(&p, s);
			empty = empty && target[s].primary == 0;
		}
		if (empty) {
			lay_out(&p);
		} else {
			count_loads(&p);
			set_shares(p.n, NARF_SLOTS * p.c, p.load, p.share);
			fill(&p);
			balance_copies(&p, 2);
			set_shares(p.n, NARF_SLOTS, p.prim, p.pshare);
			balance_primaries(&p);
			/* A primary moved with its data (step 4c) can leave
			 * copies uneven; replicas can still even them out. */
			balance_copies(&p, 1);
		}
	}
	changed = finish(&p);
	plan_free(&p);
	return changed;
}
