/*
 * The skiplist (skiplist.h), after Redis's t_zset.c zskiplist.
 *
 * Layout. The struct narf_zsl and its header node share one allocation;
 * the header is a node of NARF_ZSL_MAXLEVEL levels, no score and no member,
 * that is never returned. Each member is one allocation:
 *
 *   [dn][score][backward][len][nlevels][levels[nlevels]: forward, span]
 *   [member bytes]
 *
 * The levels end 8-aligned and the bytes need no alignment, so nothing is
 * padded between them and the member is found from nlevels alone.
 *
 * Spans. levels[i].span is rank(levels[i].forward) - rank(node), the header
 * having rank 0 and a NULL forward counting as rank `length`. Adding the
 * spans of the links a search takes gives the rank of where it stops, which
 * is how ranks, ZRANGE by index and ZCOUNT stay O(log n). Every mutation
 * keeps the identity exactly (narf_zsl_verify checks it) by first finding
 * update[i], the last node at level i before the place it changes, as
 * zslInsert and zslDeleteNode do.
 *
 * Levels above zsl->level are unused: their forward is NULL and their span
 * is stale until link_node raises the level and resets it.
 */
#include <assert.h>
#include <malloc.h>
#include <math.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "common/errors.h"
#include "common/rng.h"
#include "common/skiplist.h"

static_assert(offsetof(struct narf_zsl_node, dn) == 0,
              "the dict casts its element to the skiplist node");
static_assert(sizeof(struct narf_zsl) % alignof(struct narf_zsl_node) == 0,
              "the header node follows struct narf_zsl in its allocation");
static_assert(NARF_ZSL_MAXLEVEL <= UINT8_MAX, "nlevels is a uint8_t");
static_assert(NARF_ZSL_P == 4, "random_level draws two bits per level");

/* --- helpers ------------------------------------------------------------- */

static void account_add(uint64_t *used, void *p)
{
	if (used != NULL)
		*used += malloc_usable_size(p);
}

static void account_sub(uint64_t *used, void *p)
{
	if (used != NULL)
		*used -= malloc_usable_size(p);
}

/* memcmp order, a prefix before the longer string (Redis's sdscmp). */
static int bytes_cmp(const void *a, size_t la, const void *b, size_t lb)
{
	size_t n = la < lb ? la : lb;
	int c = n ? memcmp(a, b, n) : 0;

	if (c != 0)
		return c;
	return la < lb ? -1 : la > lb;
}

int narf_zsl_cmp(double s1,
                 const void *m1,
                 size_t l1,
                 double s2,
                 const void *m2,
                 size_t l2)
{
	if (s1 < s2)
		return -1;
	if (s1 > s2)
		return 1;
	return bytes_cmp(m1, l1, m2, l2);
}

static int node_cmp(const struct narf_zsl_node *x,
                    double score,
                    const void *m,
                    size_t len)
{
	return narf_zsl_cmp(x->score, narf_zsl_member(x), x->len, score, m,
	                    len);
}

static const unsigned char *dict_key(const struct narf_dict_node *dn,
                                     size_t *len)
{
	const struct narf_zsl_node *n = (const struct narf_zsl_node *)dn;

	*len = n->len;
	return narf_zsl_member(n);
}

const struct narf_dict_type narf_zsl_dict_type = {.key = dict_key};

/* 1 + k with probability (1/4)^k (1 - 1/4), capped: each level takes two
 * fresh bits, and 31 levels' worth fit in one draw. */
static unsigned random_level(uint64_t *rng)
{
	uint64_t r = narf_rng_next(rng);
	unsigned level = 1;

	while (level < NARF_ZSL_MAXLEVEL && (r & (NARF_ZSL_P - 1)) == 0) {
		level++;
		r >>= 2;
	}
	return level;
}

static size_t node_size(unsigned nlevels, size_t len)
{
	return sizeof(struct narf_zsl_node) +
	       nlevels * sizeof(struct narf_zsl_level) + len;
}

static void free_node(struct narf_zsl *zsl, struct narf_zsl_node *x)
{
	account_sub(zsl->used, x);
	free(x);
}

/* --- the two mutations everything else is made of ------------------------ */

/* Fill update[i] with the last node at level i before (score, m), the
 * header when none, and rank[i] (may be NULL) with its rank. */
static void seek(const struct narf_zsl *zsl,
                 double score,
                 const void *m,
                 size_t len,
                 struct narf_zsl_node **update,
                 uint64_t *rank)
{
	struct narf_zsl_node *x = zsl->header;
	uint64_t r = 0;

	for (int i = zsl->level - 1; i >= 0; i--) {
		while (x->levels[i].forward != NULL &&
		       node_cmp(x->levels[i].forward, score, m, len) < 0) {
			r += x->levels[i].span;
			x = x->levels[i].forward;
		}
		update[i] = x;
		if (rank != NULL)
			rank[i] = r;
	}
}

/* Link x, which is in no list, where its (score, member) goes, at its own
 * x->nlevels levels (zslInsert without the allocation). */
static void link_node(struct narf_zsl *zsl, struct narf_zsl_node *x)
{
	struct narf_zsl_node *update[NARF_ZSL_MAXLEVEL];
	uint64_t rank[NARF_ZSL_MAXLEVEL];
	int level = x->nlevels;

	seek(zsl, x->score, narf_zsl_member(x), x->len, update, rank);
	for (int i = zsl->level; i < level; i++) {
		rank[i] = 0;
		update[i] = zsl->header;
		update[i]->levels[i].span = zsl->length;
	}
	if (level > zsl->level)
		zsl->level = level;
	for (int i = 0; i < level; i++) {
		struct narf_zsl_level *u = &update[i]->levels[i];

		x->levels[i].forward = u->forward;
		u->forward = x;
		x->levels[i].span = u->span - (rank[0] - rank[i]);
		u->span = rank[0] - rank[i] + 1;
	}
	for (int i = level; i < zsl->level; i++)
		update[i]->levels[i].span++;
	x->backward = update[0] == zsl->header ? NULL : update[0];
	if (x->levels[0].forward != NULL)
		x->levels[0].forward->backward = x;
	else
		zsl->tail = x;
	zsl->length++;
}

/* Take x out of the list; update[] is what seek() gives for x (its
 * predecessors) and stays right for x's successor (zslDeleteNode). */
static void unlink_node(struct narf_zsl *zsl,
                        struct narf_zsl_node *x,
                        struct narf_zsl_node **update)
{
	for (int i = 0; i < zsl->level; i++) {
		struct narf_zsl_level *u = &update[i]->levels[i];

		if (u->forward == x) {
			u->span += x->levels[i].span - 1;
			u->forward = x->levels[i].forward;
		} else {
			u->span--;
		}
	}
	if (x->levels[0].forward != NULL)
		x->levels[0].forward->backward = x->backward;
	else
		zsl->tail = x->backward;
	while (zsl->level > 1 &&
	       zsl->header->levels[zsl->level - 1].forward == NULL)
		zsl->level--;
	zsl->length--;
}

/* seek() for node x, which must be in the list. */
static void seek_node(const struct narf_zsl *zsl,
                      const struct narf_zsl_node *x,
                      struct narf_zsl_node **update)
{
	seek(zsl, x->score, narf_zsl_member(x), x->len, update, NULL);
	assert(update[0]->levels[0].forward == x);
}

/* --- lifecycle ----------------------------------------------------------- */

struct narf_zsl *narf_zsl_create(uint64_t *rng, uint64_t *used)
{
	struct narf_zsl *zsl =
	        calloc(1, sizeof(*zsl) + node_size(NARF_ZSL_MAXLEVEL, 0));

	if (zsl == NULL)
		return NULL;
	zsl->header = (struct narf_zsl_node *)(zsl + 1);
	zsl->header->nlevels = NARF_ZSL_MAXLEVEL;
	zsl->level = 1;
	zsl->rng = rng;
	zsl->used = used;
	account_add(used, zsl);
	return zsl;
}

void narf_zsl_destroy(struct narf_zsl *zsl)
{
	struct narf_zsl_node *x, *next;

	if (zsl == NULL)
		return;
	for (x = narf_zsl_first(zsl); x != NULL; x = next) {
		next = x->levels[0].forward;
		free_node(zsl, x);
	}
	account_sub(zsl->used, zsl);
	free(zsl);
}

uint64_t narf_zsl_free_step(struct narf_zsl *zsl, uint64_t budget)
{
	struct narf_zsl_node *update[NARF_ZSL_MAXLEVEL];

	/* The first node's predecessor is the header at every level. */
	for (int i = 0; i < NARF_ZSL_MAXLEVEL; i++)
		update[i] = zsl->header;
	for (; budget > 0 && zsl->length > 0; budget--) {
		struct narf_zsl_node *x = narf_zsl_first(zsl);

		unlink_node(zsl, x, update);
		free_node(zsl, x);
	}
	return zsl->length;
}

/* --- members ------------------------------------------------------------- */

struct narf_zsl_node *narf_zsl_insert(struct narf_zsl *zsl,
                                      double score,
                                      const void *member,
                                      size_t len)
{
	unsigned level;
	struct narf_zsl_node *x;

	assert(!isnan(score));
	assert(len <= UINT32_MAX);
	level = random_level(zsl->rng);
	x = malloc(node_size(level, len));
	if (x == NULL)
		return NULL;
	account_add(zsl->used, x);
	x->dn.next = NULL;
	x->score = score;
	x->len = (uint32_t)len;
	x->nlevels = (uint8_t)level;
	if (len > 0)
		memcpy(x->levels + level, member, len);
	link_node(zsl, x);
	return x;
}

/* The first node at or after (score, member), or NULL. */
static struct narf_zsl_node *at_or_after(const struct narf_zsl *zsl,
                                         double score,
                                         const void *member,
                                         size_t len)
{
	struct narf_zsl_node *update[NARF_ZSL_MAXLEVEL];

	seek(zsl, score, member, len, update, NULL);
	return update[0]->levels[0].forward;
}

struct narf_zsl_node *narf_zsl_find(const struct narf_zsl *zsl,
                                    double score,
                                    const void *member,
                                    size_t len)
{
	struct narf_zsl_node *x = at_or_after(zsl, score, member, len);

	return x != NULL && node_cmp(x, score, member, len) == 0 ? x : NULL;
}

struct narf_zsl_node *narf_zsl_first_after(const struct narf_zsl *zsl,
                                           double score,
                                           const void *member,
                                           size_t len)
{
	struct narf_zsl_node *x = at_or_after(zsl, score, member, len);

	if (x != NULL && node_cmp(x, score, member, len) == 0)
		x = x->levels[0].forward;
	return x;
}

int narf_zsl_delete(struct narf_zsl *zsl,
                    double score,
                    const void *member,
                    size_t len)
{
	struct narf_zsl_node *update[NARF_ZSL_MAXLEVEL], *x;

	seek(zsl, score, member, len, update, NULL);
	x = update[0]->levels[0].forward;
	if (x == NULL || node_cmp(x, score, member, len) != 0)
		return 0;
	unlink_node(zsl, x, update);
	free_node(zsl, x);
	return 1;
}

void narf_zsl_delete_node(struct narf_zsl *zsl, struct narf_zsl_node *n)
{
	struct narf_zsl_node *update[NARF_ZSL_MAXLEVEL];

	seek_node(zsl, n, update);
	unlink_node(zsl, n, update);
	free_node(zsl, n);
}

void narf_zsl_update_score(struct narf_zsl *zsl,
                           struct narf_zsl_node *n,
                           double score)
{
	struct narf_zsl_node *update[NARF_ZSL_MAXLEVEL];
	const struct narf_zsl_node *prev = n->backward;
	const struct narf_zsl_node *next = n->levels[0].forward;
	const unsigned char *m = narf_zsl_member(n);

	assert(!isnan(score));
	/* Still strictly between its neighbours: only the score changes. */
	if ((prev == NULL || node_cmp(prev, score, m, n->len) < 0) &&
	    (next == NULL || node_cmp(next, score, m, n->len) > 0)) {
		n->score = score;
		return;
	}
	seek_node(zsl, n, update);
	unlink_node(zsl, n, update);
	n->score = score;
	link_node(zsl, n);
}

/* --- ranks --------------------------------------------------------------- */

uint64_t narf_zsl_rank(const struct narf_zsl *zsl,
                       double score,
                       const void *member,
                       size_t len)
{
	const struct narf_zsl_node *x = zsl->header;
	uint64_t r = 0;

	for (int i = zsl->level - 1; i >= 0; i--) {
		while (x->levels[i].forward != NULL &&
		       node_cmp(x->levels[i].forward, score, member, len) <=
		               0) {
			r += x->levels[i].span;
			x = x->levels[i].forward;
		}
		if (x != zsl->header && node_cmp(x, score, member, len) == 0)
			return r;
	}
	return 0;
}

uint64_t narf_zsl_node_rank(const struct narf_zsl *zsl,
                            const struct narf_zsl_node *n)
{
	uint64_t r = narf_zsl_rank(zsl, n->score, narf_zsl_member(n), n->len);

	assert(r != 0);
	return r;
}

struct narf_zsl_node *narf_zsl_by_rank(const struct narf_zsl *zsl,
                                       uint64_t rank)
{
	struct narf_zsl_node *x = zsl->header;
	uint64_t r = 0;

	if (rank == 0 || rank > zsl->length)
		return NULL;
	for (int i = zsl->level - 1; i >= 0; i--) {
		while (x->levels[i].forward != NULL &&
		       r + x->levels[i].span <= rank) {
			r += x->levels[i].span;
			x = x->levels[i].forward;
		}
		if (r == rank)
			return x;
	}
	return NULL;
}

/* --- ranges, score and lex alike ----------------------------------------- */

/* A range's two ends as predicates on a node, so that one walk serves
 * ZRANGEBYSCORE and ZRANGEBYLEX. */
struct ends {
	int (*gte_min)(const struct narf_zsl_node *x, const void *r);
	int (*lte_max)(const struct narf_zsl_node *x, const void *r);
	const void *r;
};

static struct narf_zsl_node *first_in(const struct narf_zsl *zsl,
                                      const struct ends *e,
                                      uint64_t *rank)
{
	struct narf_zsl_node *x = zsl->header;
	uint64_t r = 0;

	for (int i = zsl->level - 1; i >= 0; i--) {
		while (x->levels[i].forward != NULL &&
		       !e->gte_min(x->levels[i].forward, e->r)) {
			r += x->levels[i].span;
			x = x->levels[i].forward;
		}
	}
	x = x->levels[0].forward;
	if (x == NULL || !e->lte_max(x, e->r))
		return NULL;
	if (rank != NULL)
		*rank = r + 1;
	return x;
}

static struct narf_zsl_node *last_in(const struct narf_zsl *zsl,
                                     const struct ends *e,
                                     uint64_t *rank)
{
	struct narf_zsl_node *x = zsl->header;
	uint64_t r = 0;

	for (int i = zsl->level - 1; i >= 0; i--) {
		while (x->levels[i].forward != NULL &&
		       e->lte_max(x->levels[i].forward, e->r)) {
			r += x->levels[i].span;
			x = x->levels[i].forward;
		}
	}
	if (x == zsl->header || !e->gte_min(x, e->r))
		return NULL;
	if (rank != NULL)
		*rank = r;
	return x;
}

static uint64_t count_in(const struct narf_zsl *zsl, const struct ends *e)
{
	uint64_t lo, hi;

	if (first_in(zsl, e, &lo) == NULL || last_in(zsl, e, &hi) == NULL)
		return 0;
	return hi - lo + 1;
}

static uint64_t delete_in(struct narf_zsl *zsl,
                          const struct ends *e,
                          narf_zsl_removed_cb *cb,
                          void *arg)
{
	struct narf_zsl_node *update[NARF_ZSL_MAXLEVEL], *x = zsl->header;
	uint64_t removed = 0;

	for (int i = zsl->level - 1; i >= 0; i--) {
		while (x->levels[i].forward != NULL &&
		       !e->gte_min(x->levels[i].forward, e->r))
			x = x->levels[i].forward;
		update[i] = x;
	}
	x = x->levels[0].forward;
	while (x != NULL && e->lte_max(x, e->r)) {
		struct narf_zsl_node *next = x->levels[0].forward;

		unlink_node(zsl, x, update);
		if (cb != NULL)
			cb(x, arg);
		free_node(zsl, x);
		removed++;
		x = next;
	}
	return removed;
}

/* Score ends (zslValueGteMin, zslValueLteMax). */
static int score_gte_min(const struct narf_zsl_node *x, const void *rv)
{
	const struct narf_zsl_range *r = rv;

	return r->minex ? x->score > r->min : x->score >= r->min;
}

static int score_lte_max(const struct narf_zsl_node *x, const void *rv)
{
	const struct narf_zsl_range *r = rv;

	return r->maxex ? x->score < r->max : x->score <= r->max;
}

/* The range's ends, or 0 when it is empty whatever the list holds. */
static int score_ends(const struct narf_zsl_range *r, struct ends *e)
{
	assert(!isnan(r->min) && !isnan(r->max));
	e->gte_min = score_gte_min;
	e->lte_max = score_lte_max;
	e->r = r;
	return !(r->min > r->max ||
	         (r->min == r->max && (r->minex || r->maxex)));
}

/* Member against a lex bound: < 0, 0, > 0; the infinities are beyond
 * every member. */
static int lex_cmp(const struct narf_zsl_node *x,
                   const struct narf_zsl_lex_bound *b)
{
	if (b->inf != 0)
		return -b->inf;
	return bytes_cmp(narf_zsl_member(x), x->len, b->s, b->len);
}

static int lex_gte_min(const struct narf_zsl_node *x, const void *rv)
{
	const struct narf_zsl_lexrange *r = rv;
	int c = lex_cmp(x, &r->min);

	return r->min.ex ? c > 0 : c >= 0;
}

static int lex_lte_max(const struct narf_zsl_node *x, const void *rv)
{
	const struct narf_zsl_lexrange *r = rv;
	int c = lex_cmp(x, &r->max);

	return r->max.ex ? c < 0 : c <= 0;
}

static int lex_ends(const struct narf_zsl_lexrange *r, struct ends *e)
{
	const struct narf_zsl_lex_bound *a = &r->min, *b = &r->max;
	int c;

	e->gte_min = lex_gte_min;
	e->lte_max = lex_lte_max;
	e->r = r;
	if (a->inf != 0 || b->inf != 0)
		c = (a->inf > b->inf) - (a->inf < b->inf);
	else
		c = bytes_cmp(a->s, a->len, b->s, b->len);
	return !(c > 0 || (c == 0 && (a->ex || b->ex)));
}

int narf_zsl_parse_lex(const void *s, size_t len, struct narf_zsl_lex_bound *b)
{
	const unsigned char *p = s;

	if (len == 0)
		return NARF_EINVAL;
	switch (p[0]) {
	case '+':
	case '-':
		if (len != 1)
			return NARF_EINVAL;
		*b = (struct narf_zsl_lex_bound){.s = NULL,
		                                 .len = 0,
		                                 .inf = p[0] == '+' ? 1 : -1,
		                                 .ex = 1};
		return 0;
	case '[':
	case '(':
		*b = (struct narf_zsl_lex_bound){.s = p + 1,
		                                 .len = len - 1,
		                                 .inf = 0,
		                                 .ex = p[0] == '('};
		return 0;
	default:
		return NARF_EINVAL;
	}
}

/* Non-empty, and the list reaches it at both ends (zslIsInRange). */
static int in_range(const struct narf_zsl *zsl,
                    int nonempty,
                    const struct ends *e)
{
	return nonempty && zsl->tail != NULL && e->gte_min(zsl->tail, e->r) &&
	       e->lte_max(narf_zsl_first(zsl), e->r);
}

int narf_zsl_in_range(const struct narf_zsl *zsl,
                      const struct narf_zsl_range *r)
{
	struct ends e;
	int ok = score_ends(r, &e);

	return in_range(zsl, ok, &e);
}

struct narf_zsl_node *narf_zsl_first_in_range(const struct narf_zsl *zsl,
                                              const struct narf_zsl_range *r,
                                              uint64_t *rank)
{
	struct ends e;
	int ok = score_ends(r, &e);

	return in_range(zsl, ok, &e) ? first_in(zsl, &e, rank) : NULL;
}

struct narf_zsl_node *narf_zsl_last_in_range(const struct narf_zsl *zsl,
                                             const struct narf_zsl_range *r,
                                             uint64_t *rank)
{
	struct ends e;
	int ok = score_ends(r, &e);

	return in_range(zsl, ok, &e) ? last_in(zsl, &e, rank) : NULL;
}

uint64_t narf_zsl_count_in_range(const struct narf_zsl *zsl,
                                 const struct narf_zsl_range *r)
{
	struct ends e;
	int ok = score_ends(r, &e);

	return in_range(zsl, ok, &e) ? count_in(zsl, &e) : 0;
}

uint64_t narf_zsl_delete_range(struct narf_zsl *zsl,
                               const struct narf_zsl_range *r,
                               narf_zsl_removed_cb *cb,
                               void *arg)
{
	struct ends e;

	return score_ends(r, &e) ? delete_in(zsl, &e, cb, arg) : 0;
}

int narf_zsl_in_lex_range(const struct narf_zsl *zsl,
                          const struct narf_zsl_lexrange *r)
{
	struct ends e;
	int ok = lex_ends(r, &e);

	return in_range(zsl, ok, &e);
}

struct narf_zsl_node *narf_zsl_first_in_lex_range(
        const struct narf_zsl *zsl,
        const struct narf_zsl_lexrange *r,
        uint64_t *rank)
{
	struct ends e;
	int ok = lex_ends(r, &e);

	return in_range(zsl, ok, &e) ? first_in(zsl, &e, rank) : NULL;
}

struct narf_zsl_node *narf_zsl_last_in_lex_range(
        const struct narf_zsl *zsl,
        const struct narf_zsl_lexrange *r,
        uint64_t *rank)
{
	struct ends e;
	int ok = lex_ends(r, &e);

	return in_range(zsl, ok, &e) ? last_in(zsl, &e, rank) : NULL;
}

uint64_t narf_zsl_count_in_lex_range(const struct narf_zsl *zsl,
                                     const struct narf_zsl_lexrange *r)
{
	struct ends e;
	int ok = lex_ends(r, &e);

	return in_range(zsl, ok, &e) ? count_in(zsl, &e) : 0;
}

uint64_t narf_zsl_delete_lex_range(struct narf_zsl *zsl,
                                   const struct narf_zsl_lexrange *r,
                                   narf_zsl_removed_cb *cb,
                                   void *arg)
{
	struct ends e;

	return lex_ends(r, &e) ? delete_in(zsl, &e, cb, arg) : 0;
}

uint64_t narf_zsl_delete_rank_range(struct narf_zsl *zsl,
                                    uint64_t start,
                                    uint64_t end,
                                    narf_zsl_removed_cb *cb,
                                    void *arg)
{
	struct narf_zsl_node *update[NARF_ZSL_MAXLEVEL], *x = zsl->header;
	uint64_t r = 0, removed = 0;

	for (int i = zsl->level - 1; i >= 0; i--) {
		while (x->levels[i].forward != NULL &&
		       r + x->levels[i].span < start) {
			r += x->levels[i].span;
			x = x->levels[i].forward;
		}
		update[i] = x;
	}
	x = x->levels[0].forward;
	for (r++; x != NULL && r <= end; r++) {
		struct narf_zsl_node *next = x->levels[0].forward;

		unlink_node(zsl, x, update);
		if (cb != NULL)
			cb(x, arg);
		free_node(zsl, x);
		removed++;
		x = next;
	}
	return removed;
}

/* --- checking ------------------------------------------------------------ */

/* Level i: every node of more than i levels is linked, in order, and each
 * span is the ranks between its ends (counted along level 0). */
static int verify_level(const struct narf_zsl *zsl, int i, uint64_t want)
{
	const struct narf_zsl_node *a = zsl->header, *y;
	uint64_t ra = 0, ry, n = 0;

	for (;;) {
		const struct narf_zsl_node *b = a->levels[i].forward;

		for (y = a, ry = ra; y != b; ry++) {
			if (y == NULL)
				return NARF_EINTERNAL; /* b is not after a */
			y = y->levels[0].forward;
		}
		if (b == NULL) {
			if (a->levels[i].span != zsl->length - ra || n != want)
				return NARF_EINTERNAL;
			return 0;
		}
		if (a->levels[i].span != ry - ra || b->nlevels <= i)
			return NARF_EINTERNAL;
		a = b;
		ra = ry;
		n++;
	}
}

int narf_zsl_verify(const struct narf_zsl *zsl)
{
	const struct narf_zsl_node *x, *prev = NULL;
	uint64_t n = 0, at[NARF_ZSL_MAXLEVEL] = {0};

	if (zsl->level < 1 || zsl->level > NARF_ZSL_MAXLEVEL ||
	    (zsl->level > 1 &&
	     zsl->header->levels[zsl->level - 1].forward == NULL))
		return NARF_EINTERNAL;
	for (int i = zsl->level; i < NARF_ZSL_MAXLEVEL; i++)
		if (zsl->header->levels[i].forward != NULL)
			return NARF_EINTERNAL;
	for (x = narf_zsl_first(zsl); x != NULL; x = x->levels[0].forward) {
		if (n == zsl->length) /* more nodes than counted, or a loop */
			return NARF_EINTERNAL;
		if (isnan(x->score) || x->backward != prev || x->nlevels < 1 ||
		    x->nlevels > zsl->level ||
		    (prev != NULL &&
		     node_cmp(prev, x->score, narf_zsl_member(x), x->len) >= 0))
			return NARF_EINTERNAL;
		for (int i = 0; i < x->nlevels; i++)
			at[i]++;
		prev = x;
		n++;
	}
	if (n != zsl->length || zsl->tail != prev)
		return NARF_EINTERNAL;
	for (int i = 0; i < zsl->level; i++)
		if (verify_level(zsl, i, at[i]) != 0)
			return NARF_EINTERNAL;
	return 0;
}
