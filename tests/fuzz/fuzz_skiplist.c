/*
 * libFuzzer target for the skiplist (common/skiplist.h).
 *
 * The input is a program run against a sorted-array model. Byte 0 sets the
 * mode (bit 0: every score is 0.0 or -0.0, so lex ranges have Redis's
 * meaning; otherwise scores vary and lex operations only have to keep the
 * list sound) and the free-step budget (the other bits, plus 1). Then each
 * operation is an op byte (mod 8: insert or rescore, rescore of an existing
 * member, delete by key, delete a node, range queries, range deletion by
 * score or lex, by rank), an index byte (mod the length) and its arguments:
 * a member is a length byte (mod 16) and that many bytes; a score one byte
 * (0-15 special values such as ±inf, ±0.0 and tiny or huge numbers, 255
 * then 8 raw bytes of a double, a NaN becoming 1, else a small multiple of
 * 1/4); a range a flags byte (1 min exclusive, 2 max exclusive, 4 lex) and
 * two scores, or two lex bounds, each a kind byte (mod 4: "-", "+", "[m",
 * "(m") and for the last two a member; a rank range two bytes (start, count
 * mod 32). After every op the skiplist must pass narf_zsl_verify, hold the
 * model's members both ways with the model's ranks, and account its exact
 * memory; at the end bounded free steps must empty it and the accounting
 * must return to 0. Built by tests/fuzz/run.sh, not by meson.
 */
#include <float.h>
#include <malloc.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/skiplist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXN 512
#define MAXM 16

static void check(int cond)
{
	if (!cond)
		abort();
}

struct mel {
	double s;
	unsigned char m[MAXM];
	size_t len;
};

struct model {
	struct mel e[MAXN];
	size_t n;
};

struct prog {
	const uint8_t *p, *end;
	int lex;
};

static unsigned byte(struct prog *g)
{
	return g->p < g->end ? *g->p++ : 0;
}

/* The order, written again without the code under test. */
static int mel_cmp(const struct mel *a, const struct mel *b)
{
	size_t n = a->len < b->len ? a->len : b->len;
	int c = n ? memcmp(a->m, b->m, n) : 0;

	if (a->s != b->s)
		return a->s < b->s ? -1 : 1;
	if (c != 0)
		return c;
	return (a->len > b->len) - (a->len < b->len);
}

static int mel_is(const struct mel *a, const struct narf_zsl_node *x)
{
	return x != NULL && x->len == a->len &&
	       memcmp(narf_zsl_member(x), a->m, a->len) == 0 &&
	       x->score == a->s && !signbit(x->score) == !signbit(a->s);
}

static size_t model_find(const struct model *m, const void *s, size_t len)
{
	size_t i = 0;

	while (i < m->n && (m->e[i].len != len || memcmp(m->e[i].m, s, len)))
		i++;
	return i;
}

static void model_add(struct model *m, const struct mel *k)
{
	size_t i = 0;

	while (i < m->n && mel_cmp(&m->e[i], k) < 0)
		i++;
	memmove(m->e + i + 1, m->e + i, (m->n - i) * sizeof(m->e[0]));
	m->e[i] = *k;
	m->n++;
}

static void model_del(struct model *m, size_t i, size_t k)
{
	memmove(m->e + i, m->e + i + k, (m->n - i - k) * sizeof(m->e[0]));
	m->n -= k;
}

static double score(struct prog *g)
{
	static const double special[] = {
	        -INFINITY, INFINITY, -0.0,     0.0,      DBL_MIN, -DBL_MIN,
	        DBL_MAX,   -DBL_MAX, 1e-310,   -1e-310,  0.5,     -0.5,
	        1.0,       -1.0,     1e15 + 1, 1e16 + 2,
	};
	unsigned b = byte(g);
	double d;

	if (g->lex)
		return b & 1 ? -0.0 : 0.0;
	if (b < 16)
		return special[b];
	if (b < 255)
		return (double)((int)b - 135) / 4;
	d = 0;
	for (size_t i = 0; i < sizeof(d); i++)
		((unsigned char *)&d)[i] = (unsigned char)byte(g);
	return isnan(d) ? 1 : d;
}

static void member(struct prog *g, struct mel *k)
{
	k->len = byte(g) % MAXM;
	for (size_t i = 0; i < k->len; i++)
		k->m[i] = (unsigned char)byte(g);
}

static void lex_bound(struct prog *g,
                      struct narf_zsl_lex_bound *b,
                      unsigned char *buf)
{
	unsigned kind = byte(g) % 4;
	struct mel k;

	if (kind < 2) {
		*b = (struct narf_zsl_lex_bound){NULL, 0, kind ? 1 : -1, 1};
		return;
	}
	member(g, &k);
	memcpy(buf, k.m, k.len);
	*b = (struct narf_zsl_lex_bound){buf, k.len, 0, kind == 3};
}

struct range {
	int lex;
	struct narf_zsl_range s;
	struct narf_zsl_lexrange l;
	unsigned char buf[2][MAXM];
};

static void range(struct prog *g, struct range *r)
{
	unsigned ex = byte(g);

	r->lex = ex & 4 ? 1 : 0;
	if (r->lex) {
		lex_bound(g, &r->l.min, r->buf[0]);
		lex_bound(g, &r->l.max, r->buf[1]);
	} else {
		r->s.min = score(g);
		r->s.max = score(g);
		r->s.minex = ex & 1;
		r->s.maxex = (ex >> 1) & 1;
	}
}

static int lex_side(const struct mel *e, const struct narf_zsl_lex_bound *b)
{
	struct mel k = {.s = e->s, .len = b->len};

	if (b->inf != 0)
		return -b->inf;
	if (b->len > 0)
		memcpy(k.m, b->s, b->len);
	return mel_cmp(e, &k);
}

static int in_min(const struct mel *e, const struct range *r)
{
	if (r->lex)
		return r->l.min.ex ? lex_side(e, &r->l.min) > 0
		                   : lex_side(e, &r->l.min) >= 0;
	return r->s.minex ? e->s > r->s.min : e->s >= r->s.min;
}

static int in_max(const struct mel *e, const struct range *r)
{
	if (r->lex)
		return r->l.max.ex ? lex_side(e, &r->l.max) < 0
		                   : lex_side(e, &r->l.max) <= 0;
	return r->s.maxex ? e->s < r->s.max : e->s <= r->s.max;
}

/* The model's first index in r and how many follow; meaningful for a lex
 * range only when every score is equal. */
static size_t model_range(const struct model *m,
                          const struct range *r,
                          size_t *lo)
{
	size_t i = 0, n = 0;

	while (i < m->n && !in_min(&m->e[i], r))
		i++;
	while (i + n < m->n && in_max(&m->e[i + n], r))
		n++;
	*lo = i;
	return n;
}

static void query(const struct narf_zsl *zsl,
                  const struct model *m,
                  const struct range *r,
                  int exact)
{
	struct narf_zsl_node *f, *l;
	uint64_t fr = 0, lr = 0, count;
	size_t lo, n = model_range(m, r, &lo);

	if (r->lex) {
		f = narf_zsl_first_in_lex_range(zsl, &r->l, &fr);
		l = narf_zsl_last_in_lex_range(zsl, &r->l, &lr);
		count = narf_zsl_count_in_lex_range(zsl, &r->l);
	} else {
		f = narf_zsl_first_in_range(zsl, &r->s, &fr);
		l = narf_zsl_last_in_range(zsl, &r->s, &lr);
		count = narf_zsl_count_in_range(zsl, &r->s);
	}
	if (!exact) /* a lex range over unequal scores: only no crash */
		return;
	check((f == NULL) == (l == NULL) && (f == NULL) == (count == 0));
	if (f != NULL)
		check(narf_zsl_by_rank(zsl, fr) == f &&
		      narf_zsl_by_rank(zsl, lr) == l && lr - fr + 1 == count);
	check(count == n);
	if (n > 0)
		check(mel_is(&m->e[lo], f) && mel_is(&m->e[lo + n - 1], l) &&
		      fr == lo + 1);
}

/* A range deletion's callback: the model drops each node it reports. */
static void gone_cb(struct narf_zsl_node *x, void *arg)
{
	struct model *m = arg;
	size_t i = model_find(m, narf_zsl_member(x), x->len);

	check(i < m->n && mel_is(&m->e[i], x));
	model_del(m, i, 1);
}

static uint64_t usable(const struct narf_zsl *zsl)
{
	uint64_t n = malloc_usable_size((void *)zsl);

	for (struct narf_zsl_node *x = narf_zsl_first(zsl); x != NULL;
	     x = narf_zsl_next(x))
		n += malloc_usable_size(x);
	return n;
}

/* The model's members both ways; the ranks of all of them when full, else
 * of the ends and one more (narf_zsl_verify checks every span anyway). */
static void compare(const struct narf_zsl *zsl,
                    const struct model *m,
                    uint64_t used,
                    size_t full)
{
	struct narf_zsl_node *x = narf_zsl_first(zsl);

	check(narf_zsl_verify(zsl) == 0);
	check(narf_zsl_length(zsl) == m->n && used == usable(zsl));
	for (size_t i = 0; i < m->n; i++, x = narf_zsl_next(x)) {
		const struct mel *k = &m->e[i];
		check(mel_is(k, x));
		if (full % 8 != 0 && i != 0 && i != m->n - 1 &&
		    i != full % m->n)
			continue;
		check(narf_zsl_by_rank(zsl, i + 1) == x);
		check(narf_zsl_rank(zsl, k->s, k->m, k->len) == i + 1);
	}
	check(x == NULL && narf_zsl_by_rank(zsl, m->n + 1) == NULL);
	x = narf_zsl_last(zsl);
	for (size_t i = m->n; i-- > 0; x = narf_zsl_prev(x))
		check(mel_is(&m->e[i], x));
	check(x == NULL);
}

static void step(struct prog *g, struct narf_zsl *zsl, struct model *m)
{
	unsigned op = byte(g) % 8;
	size_t i = byte(g); /* every op has an index byte, used or not */
	struct narf_zsl_node *x;
	struct mel k;
	struct range r;

	i = m->n ? i % m->n : 0;
	if (m->n == 0 && op >= 2 && op <= 4)
		op = 0;
	if (op <= 1) { /* insert, or rescore when present */
		member(g, &k);
		k.s = score(g);
		i = model_find(m, k.m, k.len);
		if (i == m->n && m->n == MAXN)
			return;
		if (i == m->n) {
			x = narf_zsl_insert(zsl, k.s, k.m, k.len);
			check(x != NULL);
		} else {
			x = narf_zsl_find(zsl, m->e[i].s, k.m, k.len);
			narf_zsl_update_score(zsl, x, k.s);
			model_del(m, i, 1);
		}
		check(narf_zsl_find(zsl, k.s, k.m, k.len) == x);
		model_add(m, &k);
	} else if (op == 2) { /* rescore an existing member */
		k = m->e[i];
		k.s = score(g);
		x = narf_zsl_by_rank(zsl, i + 1);
		narf_zsl_update_score(zsl, x, k.s);
		check(narf_zsl_node_rank(zsl, x) > 0);
		model_del(m, i, 1);
		model_add(m, &k);
	} else if (op == 3) { /* delete by key, which may be absent */
		member(g, &k);
		k.s = score(g);
		if (k.len == 0 && m->n > 0)
			k = m->e[i];
		i = model_find(m, k.m, k.len);
		int hit = i < m->n && m->e[i].s == k.s;
		check(narf_zsl_delete(zsl, k.s, k.m, k.len) == hit);
		if (hit)
			model_del(m, i, 1);
	} else if (op == 4) {
		narf_zsl_delete_node(zsl, narf_zsl_by_rank(zsl, i + 1));
		model_del(m, i, 1);
	} else if (op == 5) {
		range(g, &r);
		query(zsl, m, &r, g->lex || !r.lex);
	} else if (op == 6) {
		size_t lo, n, before = m->n;
		range(g, &r);
		n = model_range(m, &r, &lo);
		uint64_t got =
		        r.lex ? narf_zsl_delete_lex_range(zsl, &r.l, gone_cb, m)
		              : narf_zsl_delete_range(zsl, &r.s, gone_cb, m);
		check(got == before - m->n);
		check(got == n || (r.lex && !g->lex));
	} else {
		size_t before = m->n;
		uint64_t start = byte(g), end = start + byte(g) % 32;
		uint64_t got =
		        narf_zsl_delete_rank_range(zsl, start, end, gone_cb, m);
		uint64_t lo = start ? start : 1;
		uint64_t hi = end < before ? end : before;
		check(got == before - m->n &&
		      got == (hi >= lo ? hi - lo + 1 : 0));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct model m;
	struct prog g = {data, data + size, 0};
	uint64_t used = 0, rng = 0, budget;
	unsigned mode = byte(&g);
	struct narf_zsl *zsl = narf_zsl_create(&rng, &used);

	check(zsl != NULL);
	g.lex = mode & 1;
	budget = (mode >> 1) + 1;
	rng = size;
	m.n = 0;
	for (size_t ops = 1; g.p < g.end; ops++) {
		step(&g, zsl, &m);
		compare(zsl, &m, used, g.p < g.end ? ops : 0);
	}
	while (narf_zsl_free_step(zsl, budget) > 0)
		check(narf_zsl_verify(zsl) == 0 && used == usable(zsl));
	narf_zsl_destroy(zsl);
	check(used == 0);
	return 0;
}
