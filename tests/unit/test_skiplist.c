/*
 * Unit tests for common/skiplist.h: the (score, member) order with binary
 * members and signed zeros, ranks, score and lex ranges with Redis's
 * semantics, range deletions through the callback, score updates that keep
 * or change a position, lazy free and the level distribution, with memory
 * accounting checked throughout. test_skiplist_model.c runs random
 * operations against a sorted-array model.
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

#include "common/errors.h"
#include "common/rng.h"
#include "common/skiplist.h"

static uint64_t used, levels_rng, test_rng;

static struct narf_zsl *mk(void)
{
	struct narf_zsl *zsl;

	used = 0;
	levels_rng = 42;
	test_rng = 7;
	zsl = narf_zsl_create(&levels_rng, &used);
	assert_non_null(zsl);
	return zsl;
}

static void drop(struct narf_zsl *zsl)
{
	narf_zsl_destroy(zsl);
	assert_int_equal(used, 0);
}

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

static struct narf_zsl_node *add(struct narf_zsl *zsl, double s, const char *m)
{
	struct narf_zsl_node *x = narf_zsl_insert(zsl, s, m, strlen(m));

	assert_non_null(x);
	return x;
}

static int is(const struct narf_zsl_node *x, const char *m)
{
	return x != NULL && x->len == strlen(m) &&
	       memcmp(narf_zsl_member(x), m, x->len) == 0;
}

/* The list holds exactly want[0..n) (NUL-free members) both ways, and every
 * node's rank and by_rank agree with its index. */
static void expect(const struct narf_zsl *zsl, const char **want, uint64_t n)
{
	struct narf_zsl_node *x = narf_zsl_first(zsl);

	assert_int_equal(narf_zsl_verify(zsl), 0);
	assert_int_equal(narf_zsl_length(zsl), n);
	assert_int_equal(used, usable(zsl));
	for (uint64_t i = 0; i < n; i++, x = narf_zsl_next(x)) {
		assert_true(is(x, want[i]));
		assert_int_equal(narf_zsl_node_rank(zsl, x), i + 1);
		assert_ptr_equal(narf_zsl_by_rank(zsl, i + 1), x);
	}
	assert_null(x);
	x = narf_zsl_last(zsl);
	for (uint64_t i = n; i-- > 0; x = narf_zsl_prev(x))
		assert_true(is(x, want[i]));
	assert_null(x);
}

/* An empty skiplist has no nodes, no ranks, no range, and frees to 0. */
static void test_empty(void **state)
{
	struct narf_zsl *zsl = mk();
	struct narf_zsl_range all = {-INFINITY, INFINITY, 0, 0};

	(void)state;
	expect(zsl, NULL, 0);
	assert_null(narf_zsl_first(zsl));
	assert_null(narf_zsl_last(zsl));
	assert_null(narf_zsl_by_rank(zsl, 0));
	assert_null(narf_zsl_by_rank(zsl, 1));
	assert_int_equal(narf_zsl_rank(zsl, 1, "a", 1), 0);
	assert_null(narf_zsl_find(zsl, 1, "a", 1));
	assert_int_equal(narf_zsl_delete(zsl, 1, "a", 1), 0);
	assert_false(narf_zsl_in_range(zsl, &all));
	assert_null(narf_zsl_first_in_range(zsl, &all, NULL));
	assert_int_equal(narf_zsl_count_in_range(zsl, &all), 0);
	assert_int_equal(narf_zsl_free_step(zsl, 10), 0);
	drop(zsl);
	narf_zsl_destroy(NULL);
}

/* Nodes sort by score, and equal scores by member bytes, whatever the
 * insertion order. */
static void test_order(void **state)
{
	struct narf_zsl *zsl = mk();
	static const char *want[] = {"z", "b", "c", "d", "a", "y"};

	(void)state;
	add(zsl, 2, "d");
	add(zsl, 1, "z");
	add(zsl, 2, "b");
	add(zsl, INFINITY, "y");
	add(zsl, 2, "c");
	add(zsl, 3, "a");
	expect(zsl, want, 6);
	assert_int_equal(narf_zsl_rank(zsl, 2, "c", 1), 3);
	assert_int_equal(narf_zsl_rank(zsl, 3, "c", 1), 0);
	assert_int_equal(narf_zsl_rank(zsl, 2, "cc", 2), 0);
	assert_true(is(narf_zsl_find(zsl, INFINITY, "y", 1), "y"));
	assert_null(narf_zsl_find(zsl, 2, "a", 1));
	drop(zsl);
}

/* Members compare as bytes with a prefix first ("" < "a" < "a\0" < "ab"),
 * NULs included, and the dict type's key is exactly the member bytes. */
static void test_binary_members(void **state)
{
	struct narf_zsl *zsl = mk();
	static const struct {
		const char *m;
		size_t len;
	} want[] = {{"", 0},     {"a", 1},  {"a\0", 2}, {"a\0\0", 3},
	            {"a\0b", 3}, {"ab", 2}, {"b\0", 2}, {"\xff", 1}};
	struct narf_zsl_node *x;
	size_t n = sizeof(want) / sizeof(want[0]), len;

	(void)state;
	for (size_t i = n; i-- > 0;)
		assert_non_null(
		        narf_zsl_insert(zsl, 5, want[i].m, want[i].len));
	assert_int_equal(narf_zsl_verify(zsl), 0);
	x = narf_zsl_first(zsl);
	for (size_t i = 0; i < n; i++, x = narf_zsl_next(x)) {
		const unsigned char *k = narf_zsl_dict_type.key(&x->dn, &len);
		assert_int_equal(len, want[i].len);
		assert_memory_equal(k, want[i].m, len + !len);
		assert_ptr_equal((void *)&x->dn, (void *)x);
		assert_int_equal(narf_zsl_rank(zsl, 5, want[i].m, want[i].len),
		                 i + 1);
	}
	assert_int_equal(narf_zsl_delete(zsl, 5, "a", 2), 1); /* "a\0" */
	assert_int_equal(narf_zsl_rank(zsl, 5, "a\0\0", 3), 3);
	assert_int_equal(narf_zsl_delete(zsl, 5, "a", 2), 0);
	assert_int_equal(used, usable(zsl));
	drop(zsl);
}

/* -0.0 and 0.0 are one score: members order between them by bytes, either
 * finds the other, and a [0, 0] range holds both. */
static void test_signed_zero(void **state)
{
	struct narf_zsl *zsl = mk();
	static const char *want[] = {"n", "a", "b", "c", "p"};
	struct narf_zsl_range zero = {0.0, -0.0, 0, 0}, above = {-0.0, 1, 1, 0};
	struct narf_zsl_node *x;
	uint64_t rank;

	(void)state;
	add(zsl, 0.0, "b");
	add(zsl, -0.0, "c");
	add(zsl, -0.0, "a");
	add(zsl, -1, "n");
	add(zsl, 1, "p");
	expect(zsl, want, 5);
	x = narf_zsl_find(zsl, 0.0, "c", 1);
	assert_true(is(x, "c"));
	assert_true(signbit(x->score));
	assert_int_equal(narf_zsl_rank(zsl, -0.0, "b", 1), 3);
	assert_int_equal(narf_zsl_count_in_range(zsl, &zero), 3);
	assert_true(is(narf_zsl_first_in_range(zsl, &zero, &rank), "a"));
	assert_int_equal(rank, 2);
	assert_true(is(narf_zsl_first_in_range(zsl, &above, &rank), "p"));
	assert_int_equal(rank, 5);
	/* 0.0 -> -0.0 keeps the position and the node. */
	narf_zsl_update_score(zsl, narf_zsl_find(zsl, 0, "b", 1), -0.0);
	expect(zsl, want, 5);
	assert_int_equal(narf_zsl_delete(zsl, 0.0, "a", 1), 1);
	drop(zsl);
}

/* Deleting by (score, member) needs both to match; deleting a node by
 * pointer removes exactly it; accounting follows each free. */
static void test_delete(void **state)
{
	struct narf_zsl *zsl = mk();
	static const char *want[] = {"a", "c"};
	struct narf_zsl_node *b;

	(void)state;
	add(zsl, 1, "a");
	b = add(zsl, 2, "b");
	add(zsl, 3, "c");
	add(zsl, 4, "d");
	assert_int_equal(narf_zsl_delete(zsl, 1, "d", 1), 0);
	assert_int_equal(narf_zsl_delete(zsl, 4, "dd", 2), 0);
	assert_int_equal(narf_zsl_delete(zsl, 4, "d", 1), 1);
	narf_zsl_delete_node(zsl, b);
	expect(zsl, want, 2);
	assert_true(is(narf_zsl_last(zsl), "c"));
	drop(zsl);
}

/* A score change that keeps the order is done in place; one that moves the
 * node relinks the same node (the dict's element stays valid), including
 * ties decided by the member and moves to either end. */
static void test_update_score(void **state)
{
	struct narf_zsl *zsl = mk();
	struct narf_zsl_node *a, *b, *c, *d;
	static const char *w1[] = {"a", "b", "c", "d"};
	static const char *w2[] = {"a", "c", "b", "d"};
	static const char *w3[] = {"b", "a", "c", "d"};
	static const char *w4[] = {"a", "c", "d", "b"};

	(void)state;
	a = add(zsl, 10, "a");
	b = add(zsl, 20, "b");
	c = add(zsl, 30, "c");
	d = add(zsl, 40, "d");
	narf_zsl_update_score(zsl, b, 29); /* between a and c: in place */
	expect(zsl, w1, 4);
	narf_zsl_update_score(zsl, b, 30); /* ties c, "b" < "c": stays */
	expect(zsl, w1, 4);
	narf_zsl_update_score(zsl, c, 30); /* no change at all */
	expect(zsl, w1, 4);
	narf_zsl_update_score(zsl, c, 10); /* ties a, "c" > "a": moves */
	expect(zsl, w2, 4);
	assert_ptr_equal(narf_zsl_by_rank(zsl, 2), c);
	narf_zsl_update_score(zsl, b, -INFINITY); /* to the front */
	narf_zsl_update_score(zsl, c, 11);
	expect(zsl, w3, 4);
	assert_ptr_equal(narf_zsl_first(zsl), b);
	narf_zsl_update_score(zsl, b, INFINITY); /* to the back */
	expect(zsl, w4, 4);
	assert_ptr_equal(narf_zsl_last(zsl), b);
	assert_ptr_equal(narf_zsl_find(zsl, 40, "d", 1), d);
	assert_ptr_equal(narf_zsl_find(zsl, 10, "a", 1), a);
	drop(zsl);
}

/* Scores 1..10 for members "01".."10", one node each. */
static struct narf_zsl *ten(void)
{
	struct narf_zsl *zsl = mk();
	char m[3];

	for (int i = 1; i <= 10; i++) {
		snprintf(m, sizeof(m), "%02d", i);
		add(zsl, i, m);
	}
	return zsl;
}

/* Score ranges follow ZRANGEBYSCORE: each end inclusive or exclusive,
 * ±inf ends, empty intervals, ranges outside the list; ranks of the ends
 * and counts match. */
static void test_score_ranges(void **state)
{
	struct narf_zsl *zsl = ten();
	static const struct {
		struct narf_zsl_range r;
		uint64_t first, last; /* ranks, 0: empty */
		int in;               /* narf_zsl_in_range */
	} cases[] = {
	        {{3, 5, 0, 0}, 3, 5, 1},
	        {{3, 5, 1, 0}, 4, 5, 1},
	        {{3, 5, 0, 1}, 3, 4, 1},
	        {{3, 5, 1, 1}, 4, 4, 1},
	        {{3, 4, 1, 1}, 0, 0, 1}, /* a gap, but not an empty interval */
	        {{5, 5, 0, 0}, 5, 5, 1},
	        {{5, 5, 1, 0}, 0, 0, 0},
	        {{5, 5, 0, 1}, 0, 0, 0},
	        {{6, 5, 0, 0}, 0, 0, 0},
	        {{-INFINITY, INFINITY, 0, 0}, 1, 10, 1},
	        {{-INFINITY, INFINITY, 1, 1}, 1, 10, 1},
	        {{-INFINITY, 1, 0, 0}, 1, 1, 1},
	        {{-INFINITY, 1, 0, 1}, 0, 0, 0},
	        {{10, INFINITY, 1, 0}, 0, 0, 0},
	        {{9.5, INFINITY, 0, 0}, 10, 10, 1},
	        {{2.5, 3.5, 0, 0}, 3, 3, 1},
	        {{2.2, 2.8, 0, 0}, 0, 0, 1},
	        {{11, 20, 0, 0}, 0, 0, 0},
	        {{-5, 0.5, 0, 0}, 0, 0, 0},
	        {{INFINITY, INFINITY, 0, 0}, 0, 0, 0},
	};
	uint64_t rank;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct narf_zsl_range *r = &cases[i].r;
		struct narf_zsl_node *f =
		        narf_zsl_first_in_range(zsl, r, &rank);
		uint64_t want =
		        cases[i].first ? cases[i].last - cases[i].first + 1 : 0;

		if (cases[i].first == 0) {
			assert_null(f);
			assert_null(narf_zsl_last_in_range(zsl, r, NULL));
		} else {
			assert_int_equal(rank, cases[i].first);
			assert_ptr_equal(f, narf_zsl_by_rank(zsl, rank));
			assert_ptr_equal(narf_zsl_last_in_range(zsl, r, &rank),
			                 narf_zsl_by_rank(zsl, cases[i].last));
			assert_int_equal(rank, cases[i].last);
		}
		assert_int_equal(narf_zsl_count_in_range(zsl, r), want);
		assert_int_equal(narf_zsl_in_range(zsl, r), cases[i].in);
	}
	drop(zsl);
}

static struct narf_zsl_lexrange lex(const char *min, const char *max)
{
	struct narf_zsl_lexrange r;

	assert_int_equal(narf_zsl_parse_lex(min, strlen(min), &r.min), 0);
	assert_int_equal(narf_zsl_parse_lex(max, strlen(max), &r.max), 0);
	return r;
}

/* Lex bounds parse as ZRANGEBYLEX's ("[", "(", a lone "-" or "+") and
 * ranges over equal scores follow its semantics, "- -" and "[a (a" empty. */
static void test_lex_ranges(void **state)
{
	struct narf_zsl *zsl = mk();
	static const char *bad[] = {"", "a", "--", "+a", "-a", "{a", "]"};
	static const struct {
		const char *min, *max;
		const char *first, *last; /* NULL: empty */
		uint64_t count;
		int in; /* narf_zsl_in_lex_range */
	} cases[] = {
	        {"-", "+", "a", "d", 5, 1},
	        {"[b", "[c", "b", "c", 3, 1},
	        {"(b", "[c", "ba", "c", 2, 1},
	        {"[b", "(c", "b", "ba", 2, 1},
	        {"(b", "(ba", NULL, NULL, 0, 1}, /* nothing between */
	        {"[", "+", "a", "d", 5, 1},
	        {"(", "(b", "a", "a", 1, 1},
	        {"-", "[a", "a", "a", 1, 1},
	        {"-", "(a", NULL, NULL, 0, 0},
	        {"(d", "+", NULL, NULL, 0, 0},
	        {"[a", "(a", NULL, NULL, 0, 0},
	        {"(b", "[b", NULL, NULL, 0, 0}, /* empty, inside the list */
	        {"[a", "[a", "a", "a", 1, 1},
	        {"-", "-", NULL, NULL, 0, 0},
	        {"+", "+", NULL, NULL, 0, 0},
	        {"+", "-", NULL, NULL, 0, 0},
	        {"[c", "[b", NULL, NULL, 0, 0},
	        {"[bb", "[bz", NULL, NULL, 0, 1},
	        {"[e", "+", NULL, NULL, 0, 0},
	};
	struct narf_zsl_lex_bound b;
	uint64_t rank;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(narf_zsl_parse_lex(bad[i], strlen(bad[i]), &b),
		                 NARF_EINVAL);
	assert_int_equal(narf_zsl_parse_lex("(x\0y", 4, &b), 0);
	assert_true(b.inf == 0 && b.ex == 1 && b.len == 3);
	add(zsl, 0, "c");
	add(zsl, 0, "a");
	add(zsl, -0.0, "ba");
	add(zsl, 0, "d");
	add(zsl, 0, "b");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct narf_zsl_lexrange r = lex(cases[i].min, cases[i].max);
		struct narf_zsl_node *f, *l;

		f = narf_zsl_first_in_lex_range(zsl, &r, &rank);
		l = narf_zsl_last_in_lex_range(zsl, &r, NULL);
		assert_int_equal(narf_zsl_count_in_lex_range(zsl, &r),
		                 cases[i].count);
		assert_int_equal(narf_zsl_in_lex_range(zsl, &r), cases[i].in);
		if (cases[i].first == NULL) {
			assert_null(f);
			assert_null(l);
			continue;
		}
		assert_true(is(f, cases[i].first));
		assert_true(is(l, cases[i].last));
		assert_ptr_equal(narf_zsl_by_rank(zsl, rank), f);
	}
	drop(zsl);
}

struct removed {
	char m[64][8];
	int n;
};

static void removed_cb(struct narf_zsl_node *n, void *arg)
{
	struct removed *r = arg;

	assert_true(r->n < 64 && n->len < 8);
	memcpy(r->m[r->n], narf_zsl_member(n), n->len);
	r->m[r->n++][n->len] = '\0';
}

static void expect_removed(const struct removed *r, const char **want, int n)
{
	assert_int_equal(r->n, n);
	for (int i = 0; i < n; i++)
		assert_string_equal(r->m[i], want[i]);
}

/* ZREMRANGEBYSCORE, BYLEX and BYRANK remove exactly their range, in order
 * through the callback, and leave a consistent list behind. */
static void test_delete_ranges(void **state)
{
	struct narf_zsl *zsl = ten();
	struct narf_zsl_range r1 = {3, 5, 1, 0}, none = {5, 5, 0, 1};
	struct narf_zsl_range all = {-INFINITY, INFINITY, 0, 0};
	struct narf_zsl_lexrange lx;
	struct removed rm = {.n = 0};
	static const char *g1[] = {"04", "05"};
	static const char *k1[] = {"01", "02", "03", "06",
	                           "07", "08", "09", "10"};
	static const char *g2[] = {"01", "02"};
	static const char *k2[] = {"03", "06", "07", "08", "09", "10"};
	static const char *g3[] = {"08", "09", "10"};
	static const char *k3[] = {"03", "06", "07"};
	static const char *g4[] = {"06", "07"};
	static const char *k4[] = {"03"};

	(void)state;
	assert_int_equal(narf_zsl_delete_range(zsl, &r1, removed_cb, &rm), 2);
	expect_removed(&rm, g1, 2);
	expect(zsl, k1, 8);
	assert_int_equal(narf_zsl_delete_range(zsl, &none, removed_cb, &rm), 0);
	rm.n = 0;
	assert_int_equal(narf_zsl_delete_rank_range(zsl, 1, 2, removed_cb, &rm),
	                 2);
	expect_removed(&rm, g2, 2);
	expect(zsl, k2, 6);
	rm.n = 0;
	assert_int_equal(
	        narf_zsl_delete_rank_range(zsl, 4, 100, removed_cb, &rm), 3);
	expect_removed(&rm, g3, 3);
	expect(zsl, k3, 3);
	assert_int_equal(narf_zsl_delete_rank_range(zsl, 3, 2, NULL, NULL), 0);
	assert_int_equal(narf_zsl_delete_rank_range(zsl, 4, 9, NULL, NULL), 0);
	/* Lex over what is left, after making the scores equal (in place:
	 * the order does not change). */
	for (struct narf_zsl_node *x = narf_zsl_first(zsl); x != NULL;
	     x = narf_zsl_next(x))
		narf_zsl_update_score(zsl, x, 0);
	lx = lex("(03", "+");
	rm.n = 0;
	assert_int_equal(narf_zsl_delete_lex_range(zsl, &lx, removed_cb, &rm),
	                 2);
	expect_removed(&rm, g4, 2);
	expect(zsl, k4, 1);
	lx = lex("+", "-");
	assert_int_equal(narf_zsl_delete_lex_range(zsl, &lx, NULL, NULL), 0);
	assert_int_equal(narf_zsl_delete_range(zsl, &all, NULL, NULL), 1);
	expect(zsl, NULL, 0);
	drop(zsl);
}

/* Bounded free steps empty a big list a few nodes at a time, leaving a
 * valid skiplist after each, and the accounting ends at 0. */
static void test_free_step(void **state)
{
	struct narf_zsl *zsl = mk();
	char m[16];
	uint64_t left = 5000, prev;

	(void)state;
	for (int i = 0; i < 5000; i++) {
		int len = snprintf(m, sizeof(m), "m%d", (int)(rnd() % 100000));
		if (narf_zsl_find(zsl, i % 7, m, (size_t)len) == NULL)
			assert_non_null(
			        narf_zsl_insert(zsl, i % 7, m, (size_t)len));
		else
			left--;
	}
	assert_int_equal(narf_zsl_length(zsl), left);
	do {
		prev = left;
		left = narf_zsl_free_step(zsl, 37);
		assert_int_equal(left, prev > 37 ? prev - 37 : 0);
		assert_int_equal(narf_zsl_length(zsl), left);
		if (left % 10 == 0)
			assert_int_equal(narf_zsl_verify(zsl), 0);
		assert_int_equal(used, usable(zsl));
	} while (left > 0);
	assert_int_equal(narf_zsl_free_step(zsl, 1), 0);
	assert_int_equal(used, malloc_usable_size(zsl));
	drop(zsl);
}

/* Levels are geometric with p = 1/4, capped at 32, and the same rng seed
 * gives the same levels. */
static void test_levels(void **state)
{
	struct narf_zsl *zsl = mk();
	uint64_t at[NARF_ZSL_MAXLEVEL + 1] = {0}, seed = levels_rng;
	char m[16];
	int n = 100000;

	(void)state;
	for (int i = 0; i < n; i++) {
		int len = snprintf(m, sizeof(m), "%d", i);
		struct narf_zsl_node *x =
		        narf_zsl_insert(zsl, 0, m, (size_t)len);
		assert_non_null(x);
		assert_true(x->nlevels >= 1 && x->nlevels <= NARF_ZSL_MAXLEVEL);
		for (int l = 1; l <= x->nlevels; l++)
			at[l]++;
	}
	assert_int_equal(at[1], n);
	/* Expected 25,000 and 6,250: five standard deviations of slack. */
	assert_in_range(at[2], 25000 - 700, 25000 + 700);
	assert_in_range(at[3], 6250 - 400, 6250 + 400);
	assert_int_equal(narf_zsl_verify(zsl), 0);
	drop(zsl);

	levels_rng = seed;
	zsl = narf_zsl_create(&levels_rng, &used);
	struct narf_zsl *z2 = narf_zsl_create(&seed, &used);
	for (int i = 0; i < 100; i++)
		assert_int_equal(add(zsl, i, "x")->nlevels,
		                 add(z2, i, "x")->nlevels);
	narf_zsl_destroy(z2);
	drop(zsl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_empty),
	        cmocka_unit_test(test_order),
	        cmocka_unit_test(test_binary_members),
	        cmocka_unit_test(test_signed_zero),
	        cmocka_unit_test(test_delete),
	        cmocka_unit_test(test_update_score),
	        cmocka_unit_test(test_score_ranges),
	        cmocka_unit_test(test_lex_ranges),
	        cmocka_unit_test(test_delete_ranges),
	        cmocka_unit_test(test_free_step),
	        cmocka_unit_test(test_levels),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
