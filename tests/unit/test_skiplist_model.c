/*
 * Seeded random runs of common/skiplist.h against a sorted array: after
 * every step the skiplist must hold the model's members in order both ways,
 * with the model's ranks, range ends, range counts and range deletions, and
 * account exactly the memory it holds. test_skiplist.c has the hand-written
 * cases.
 */
#include <malloc.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/rng.h"
#include "common/skiplist.h"

static uint64_t used, levels_rng, test_rng;

static uint64_t rnd(void)
{
	return narf_rng_next(&test_rng);
}

/* The usable size of everything the skiplist holds, recomputed. */
static uint64_t usable(const struct narf_zsl *zsl)
{
	uint64_t n = malloc_usable_size((void *)zsl);

	for (struct narf_zsl_node *x = narf_zsl_first(zsl); x != NULL;
	     x = narf_zsl_next(x))
		n += malloc_usable_size(x);
	return n;
}

#define MODEL_MAX 1024

struct mel {
	double s;
	unsigned char m[8];
	size_t len;
};

struct model {
	struct mel e[MODEL_MAX];
	size_t n;
};

/* The order, written again without the code under test. */
static int mel_cmp(const struct mel *a, const struct mel *b)
{
	size_t n = a->len < b->len ? a->len : b->len;

	if (a->s != b->s)
		return a->s < b->s ? -1 : 1;
	for (size_t i = 0; i < n; i++)
		if (a->m[i] != b->m[i])
			return a->m[i] < b->m[i] ? -1 : 1;
	return (a->len > b->len) - (a->len < b->len);
}

static int mel_is(const struct mel *a, const struct narf_zsl_node *x)
{
	return x != NULL && x->len == a->len &&
	       memcmp(narf_zsl_member(x), a->m, a->len) == 0 &&
	       x->score == a->s && !signbit(x->score) == !signbit(a->s);
}

/* Where the member is (whatever its score), or n. */
static size_t model_find(const struct model *m, const struct mel *k)
{
	size_t i = 0;

	while (i < m->n &&
	       (m->e[i].len != k->len || memcmp(m->e[i].m, k->m, k->len)))
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

static void gen(struct mel *k, int zero_scores)
{
	static const double scores[] = {-INFINITY, -2.5, -1, -0.0, 0.0,
	                                1,         1.5,  2,  3,    INFINITY};

	k->len = rnd() % 8;
	for (size_t i = 0; i < k->len; i++)
		k->m[i] = (unsigned char)"ab\0c"[rnd() % 4];
	if (zero_scores)
		k->s = rnd() % 2 ? 0.0 : -0.0;
	else if (rnd() % 2)
		k->s = scores[rnd() % 10];
	else
		k->s = (double)(rnd() % 40) / 2;
}

/* Each node in model order both ways; a few ranks (all of them when full);
 * the accounting. */
static void model_check(const struct narf_zsl *zsl,
                        const struct model *m,
                        int full)
{
	struct narf_zsl_node *x = narf_zsl_first(zsl);

	assert_int_equal(narf_zsl_verify(zsl), 0);
	assert_int_equal(narf_zsl_length(zsl), m->n);
	assert_int_equal(used, usable(zsl));
	for (size_t i = 0; i < m->n; i++, x = narf_zsl_next(x))
		assert_true(mel_is(&m->e[i], x));
	assert_null(x);
	x = narf_zsl_last(zsl);
	for (size_t i = m->n; i-- > 0; x = narf_zsl_prev(x))
		assert_true(mel_is(&m->e[i], x));
	for (size_t t = 0; m->n > 0 && t < (full ? m->n : 3); t++) {
		size_t i = full ? t : rnd() % m->n;
		const struct mel *k = &m->e[i];
		x = narf_zsl_by_rank(zsl, i + 1);
		assert_true(mel_is(k, x));
		assert_int_equal(narf_zsl_rank(zsl, k->s, k->m, k->len), i + 1);
		assert_int_equal(narf_zsl_node_rank(zsl, x), i + 1);
	}
	assert_null(narf_zsl_by_rank(zsl, m->n + 1));
}

/* A range in both forms: as the skiplist's and as predicates on the model.
 */
struct mrange {
	int lex;
	struct narf_zsl_range s;
	struct narf_zsl_lexrange l;
	unsigned char buf[2][8];
};

static int lex_side(const struct mel *e, const struct narf_zsl_lex_bound *b)
{
	struct mel k = {.s = e->s, .len = b->len};

	if (b->inf != 0)
		return -b->inf;
	memcpy(k.m, b->s, b->len);
	return mel_cmp(e, &k);
}

static int m_gte(const struct mel *e, const struct mrange *r)
{
	int c = r->lex ? lex_side(e, &r->l.min) : 0;

	if (r->lex)
		return r->l.min.ex ? c > 0 : c >= 0;
	return r->s.minex ? e->s > r->s.min : e->s >= r->s.min;
}

static int m_lte(const struct mel *e, const struct mrange *r)
{
	int c = r->lex ? lex_side(e, &r->l.max) : 0;

	if (r->lex)
		return r->l.max.ex ? c < 0 : c <= 0;
	return r->s.maxex ? e->s < r->s.max : e->s <= r->s.max;
}

static void gen_lex(struct narf_zsl_lex_bound *b, unsigned char *buf)
{
	struct mel k;
	unsigned kind = (unsigned)(rnd() % 8);

	gen(&k, 1);
	memcpy(buf, k.m, k.len);
	*b = (struct narf_zsl_lex_bound){buf, k.len, 0, kind % 2};
	if (kind == 6 || kind == 7)
		*b = (struct narf_zsl_lex_bound){NULL, 0, kind == 6 ? -1 : 1,
		                                 1};
}

static void gen_range(struct mrange *r, int lex)
{
	struct mel a, b;

	r->lex = lex;
	if (lex) {
		gen_lex(&r->l.min, r->buf[0]);
		gen_lex(&r->l.max, r->buf[1]);
		return;
	}
	gen(&a, 0);
	gen(&b, 0);
	r->s = (struct narf_zsl_range){a.s, b.s, (int)(rnd() % 2),
	                               (int)(rnd() % 2)};
}

/* The model's answer: the first index in r and how many follow. */
static size_t model_range(const struct model *m,
                          const struct mrange *r,
                          size_t *lo)
{
	size_t i = 0, n = 0;

	while (i < m->n && !m_gte(&m->e[i], r))
		i++;
	while (i + n < m->n && m_lte(&m->e[i + n], r))
		n++;
	*lo = i;
	return n;
}

static void check_range(const struct narf_zsl *zsl,
                        const struct model *m,
                        const struct mrange *r)
{
	struct narf_zsl_node *f, *l;
	uint64_t fr = 0, lr = 0, count;
	size_t lo, n = model_range(m, r, &lo);
	int in;

	if (r->lex) {
		f = narf_zsl_first_in_lex_range(zsl, &r->l, &fr);
		l = narf_zsl_last_in_lex_range(zsl, &r->l, &lr);
		count = narf_zsl_count_in_lex_range(zsl, &r->l);
		in = narf_zsl_in_lex_range(zsl, &r->l);
	} else {
		f = narf_zsl_first_in_range(zsl, &r->s, &fr);
		l = narf_zsl_last_in_range(zsl, &r->s, &lr);
		count = narf_zsl_count_in_range(zsl, &r->s);
		in = narf_zsl_in_range(zsl, &r->s);
	}
	assert_int_equal(count, n);
	if (n == 0) {
		assert_null(f);
		assert_null(l);
		assert_true(m->n > 0 || !in);
		return;
	}
	assert_true(in);
	assert_true(mel_is(&m->e[lo], f) && mel_is(&m->e[lo + n - 1], l));
	assert_int_equal(fr, lo + 1);
	assert_int_equal(lr, lo + n);
}

struct gone {
	const struct model *m;
	size_t at, n;
};

/* Each removed node is the model's next one in the range. */
static void gone_cb(struct narf_zsl_node *x, void *arg)
{
	struct gone *g = arg;

	assert_true(mel_is(&g->m->e[g->at + g->n], x));
	g->n++;
}

/* Insert k, or give the member k's score when it is in already. */
static void upsert(struct narf_zsl *zsl, struct model *m, const struct mel *k)
{
	size_t i = model_find(m, k);
	struct narf_zsl_node *x;

	if (i == m->n) {
		x = narf_zsl_insert(zsl, k->s, k->m, k->len);
		assert_non_null(x);
	} else {
		x = narf_zsl_find(zsl, m->e[i].s, m->e[i].m, m->e[i].len);
		assert_true(mel_is(&m->e[i], x));
		narf_zsl_update_score(zsl, x, k->s);
		model_del(m, i, 1);
	}
	/* The node, old or new, is found under the new score. */
	assert_ptr_equal(narf_zsl_find(zsl, k->s, k->m, k->len), x);
	model_add(m, k);
}

/* Remove model[lo, lo + n) by a score or lex range (kind 0) or by ranks
 * (kind 1), checking each node the callback gets. */
static void delete_range(struct narf_zsl *zsl,
                         struct model *m,
                         const struct mrange *r,
                         size_t lo,
                         size_t n,
                         uint64_t last)
{
	struct gone g = {m, lo, 0};
	uint64_t got;

	if (r == NULL)
		got = narf_zsl_delete_rank_range(zsl, lo + 1, last, gone_cb,
		                                 &g);
	else if (r->lex)
		got = narf_zsl_delete_lex_range(zsl, &r->l, gone_cb, &g);
	else
		got = narf_zsl_delete_range(zsl, &r->s, gone_cb, &g);
	assert_int_equal(got, n);
	assert_int_equal(g.n, n);
	model_del(m, lo, n);
}

/* One random step on both; lex selects the equal-score workload. Inserts
 * outweigh deletions, so the list grows to several hundred members (the
 * model's capacity bounds it). */
static void model_step(struct narf_zsl *zsl, struct model *m, int lex)
{
	unsigned op = (unsigned)(rnd() % 1000);
	struct mel k;
	struct mrange r;
	size_t i = m->n ? rnd() % m->n : 0, lo, n;

	gen(&k, lex);
	if (m->n == 0 || (op >= 500 && op < 800 && m->n < 8))
		op = 0;
	if (op < 500 && m->n >= MODEL_MAX - 24)
		op = 999; /* full: delete a few instead */
	if (op < 500) {
		upsert(zsl, m, &k);
	} else if (op < 650) {
		memcpy(k.m, m->e[i].m, m->e[i].len);
		k.len = m->e[i].len;
		if (op < 550) /* same score, or -0.0 for 0.0: in place */
			k.s = m->e[i].s == 0 ? -m->e[i].s : m->e[i].s;
		upsert(zsl, m, &k);
	} else if (op < 750) {
		if (op < 720)
			k = m->e[i];
		i = model_find(m, &k);
		int hit = i < m->n && m->e[i].s == k.s;
		assert_int_equal(narf_zsl_delete(zsl, k.s, k.m, k.len), hit);
		if (hit)
			model_del(m, i, 1);
	} else if (op < 800) {
		narf_zsl_delete_node(zsl, narf_zsl_by_rank(zsl, i + 1));
		model_del(m, i, 1);
	} else if (op < 990) {
		gen_range(&r, lex && rnd() % 2);
		check_range(zsl, m, &r);
	} else if (op < 991) {
		gen_range(&r, lex && rnd() % 2);
		n = model_range(m, &r, &lo);
		delete_range(zsl, m, &r, lo, n, 0);
	} else {
		uint64_t last = i + rnd() % 24; /* under i + 1: none */
		n = last - i > m->n - i ? m->n - i : last - i;
		delete_range(zsl, m, NULL, i, n, last);
	}
}

static void run_model(int lex, int steps)
{
	static struct model m;
	struct narf_zsl *zsl;
	size_t peak = 0;

	used = 0;
	levels_rng = 42;
	test_rng = 7 + (uint64_t)lex;
	zsl = narf_zsl_create(&levels_rng, &used);
	assert_non_null(zsl);
	m.n = 0;
	for (int step = 0; step < steps; step++) {
		model_step(zsl, &m, lex);
		model_check(zsl, &m, step % 100 == 0);
		peak = m.n > peak ? m.n : peak;
	}
	model_check(zsl, &m, 1);
	assert_true(peak > 300); /* the run did reach a big list */
	narf_zsl_destroy(zsl);
	assert_int_equal(used, 0);
}

/* 20,000 seeded random inserts, deletes (by key, node, score range and
 * rank range) and score updates, on few distinct scores and binary members,
 * agree with a sorted array after every step: order both ways, ranks, range
 * ends and counts, accounting. */
static void test_random_model(void **state)
{
	(void)state;
	run_model(0, 20000);
}

/* The same with every score 0.0 or -0.0, adding lex range queries and lex
 * range deletions with every kind of bound. */
static void test_random_lex_model(void **state)
{
	(void)state;
	run_model(1, 20000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_random_model),
	        cmocka_unit_test(test_random_lex_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
