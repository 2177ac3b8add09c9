/*
 * Unit tests for common/quicklist.h: node shapes at the byte and count
 * limits, splits and merges, every operation at node boundaries, exact
 * round trips of binary and integer-looking values, memory accounting, and
 * a seeded random run against an array model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/errors.h"
#include "common/quicklist.h"

static uint64_t used;

static struct narf_ql *mk(int fill)
{
	struct narf_ql *ql = NULL;

	used = 0;
	assert_int_equal(narf_ql_create(&ql, fill, &used), 0);
	assert_true(used > 0);
	return ql;
}

static void drop(struct narf_ql *ql)
{
	assert_int_equal(narf_ql_verify(ql), 0);
	narf_ql_destroy(ql);
	assert_int_equal(used, 0);
}

static void push(struct narf_ql *ql, enum narf_ql_end end, const char *s)
{
	assert_int_equal(narf_ql_push(ql, end, s, strlen(s)), 0);
	assert_int_equal(narf_ql_verify(ql), 0);
}

/* "e<i>": small distinct strings. */
static const char *name(unsigned i)
{
	static char buf[8][24];
	static unsigned k;
	char *b = buf[k++ % 8];

	snprintf(b, sizeof(buf[0]), "e%u", i);
	return b;
}

/* The current element's bytes as a C string (values here have no NUL). */
static char *cur(const struct narf_ql_iter *it)
{
	static char out[64 * 1024];
	char buf[NARF_LP_INTBUF];
	uint32_t len;
	const unsigned char *s = narf_ql_iter_str(it, buf, &len);

	assert_true(len < sizeof(out));
	memcpy(out, s, len);
	out[len] = '\0';
	return out;
}

/* The list reads exactly want[0..n) forwards and backwards, and verifies. */
static void expect(struct narf_ql *ql, const char **want, uint64_t n)
{
	struct narf_ql_iter it;
	uint64_t i = 0;
	int ok;

	assert_int_equal(narf_ql_verify(ql), 0);
	assert_int_equal(narf_ql_count(ql), n);
	for (ok = narf_ql_first(ql, &it); ok; ok = narf_ql_iter_next(&it)) {
		assert_true(i < n);
		assert_int_equal(it.index, i);
		assert_string_equal(cur(&it), want[i++]);
	}
	assert_int_equal(i, n);
	for (ok = narf_ql_last(ql, &it); ok; ok = narf_ql_iter_next(&it))
		assert_string_equal(cur(&it), want[--i]);
	assert_int_equal(i, 0);
}

/* The nodes' element counts are want[0..n), head to tail. */
static void expect_shape(const struct narf_ql *ql,
                         const uint32_t *want,
                         unsigned n)
{
	unsigned k = 0;

	assert_int_equal(ql->nodes, n);
	for (const struct narf_ql_node *x = ql->head; x != NULL; x = x->next)
		assert_int_equal(x->count, want[k++]);
	assert_int_equal(k, n);
}

/* Pushing at both ends across thousands of elements and popping them back
 * from both ends gives them in list order, with used exactly 0 at the end. */
static void test_push_pop_ends(void **state)
{
	struct narf_ql *ql = mk(NARF_QL_FILL_DEFAULT);
	char buf[32];
	size_t len;

	(void)state;
	for (unsigned i = 0; i < 5000; i++) {
		assert_int_equal(narf_ql_push(ql, NARF_QL_TAIL, name(i),
		                              strlen(name(i))),
		                 0);
		assert_int_equal(narf_ql_push(ql, NARF_QL_HEAD, name(i),
		                              strlen(name(i))),
		                 0);
	}
	assert_int_equal(narf_ql_verify(ql), 0);
	assert_int_equal(narf_ql_count(ql), 10000);
	assert_true(ql->nodes >= 8); /* 7 B elements, 8 KiB nodes */
	for (unsigned i = 5000; i-- > 0;) {
		assert_int_equal(
		        narf_ql_pop(ql, NARF_QL_HEAD, buf, sizeof(buf), &len),
		        0);
		assert_int_equal(len, strlen(name(i)));
		assert_memory_equal(buf, name(i), len);
		assert_int_equal(
		        narf_ql_pop(ql, NARF_QL_TAIL, buf, sizeof(buf), &len),
		        0);
		assert_memory_equal(buf, name(i), len);
	}
	assert_int_equal(narf_ql_count(ql), 0);
	assert_ptr_equal(ql->head, NULL);
	drop(ql);
}

/* With a byte fill, nodes are packed to the exact byte limit: 100-byte
 * strings take 103 listpack bytes, so 39 fit in 4 KiB (9 + 39 * 103 =
 * 4026) and 79 in 8 KiB, whichever end they are pushed at. */
static void test_split_bytes(void **state)
{
	static const struct {
		int fill;
		uint32_t per;
	} cases[] = {{-1, 39}, {-2, 79}, {-3, 158}, {-5, 636}, {-9, 636}};
	char v[101];

	(void)state;
	memset(v, 'v', 100);
	v[100] = '\0';
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		for (int end = 0; end < 2; end++) {
			struct narf_ql *ql = mk(cases[c].fill);
			uint32_t per = cases[c].per;
			/* The partial node is at the pushing end. */
			uint32_t want[2][4] = {{1, per, per, per},
			                       {per, per, per, 1}};

			for (unsigned i = 0; i < 3 * per + 1; i++)
				assert_int_equal(narf_ql_push(ql, end, v, 100),
				                 0);
			expect_shape(ql, want[end], 4);
			assert_int_equal(narf_lp_bytes(ql->head->next->lp),
			                 9 + per * 103);
			drop(ql);
		}
	}
}

/* With a count fill, nodes hold at most that many elements, and at most
 * 8 KiB however large the count (Redis's safety limit). */
static void test_split_count(void **state)
{
	struct narf_ql *ql = mk(5);
	static const uint32_t five[] = {5, 5, 5, 5, 3};
	static const uint32_t one[] = {1, 1, 1};
	char v[1001];

	(void)state;
	for (unsigned i = 0; i < 23; i++)
		push(ql, NARF_QL_TAIL, name(i));
	expect_shape(ql, five, 5);
	drop(ql);

	ql = mk(0); /* 0 and 1 keep one element a node */
	for (unsigned i = 0; i < 3; i++)
		push(ql, NARF_QL_HEAD, name(i));
	expect_shape(ql, one, 3);
	drop(ql);

	ql = mk(1000);
	memset(v, 'w', 1000);
	v[1000] = '\0';
	for (unsigned i = 0; i < 41; i++) /* 1004 B each: 8 fit in 8 KiB */
		push(ql, NARF_QL_TAIL, v);
	for (const struct narf_ql_node *n = ql->head; n; n = n->next) {
		assert_true(narf_lp_bytes(n->lp) <= 8192);
		assert_int_equal(n->count, n->next ? 8 : 1);
	}
	drop(ql);
}

/* A list of 4-element nodes e0..e11, in three full nodes. */
static struct narf_ql *twelve(const char **want)
{
	struct narf_ql *ql = mk(4);
	static char names[12][8];

	for (unsigned i = 0; i < 12; i++) {
		snprintf(names[i], sizeof(names[i]), "e%u", i);
		want[i] = names[i];
		push(ql, NARF_QL_TAIL, names[i]);
	}
	return ql;
}

/* Insert into want[0..*n) at i, keeping a model. */
static void model_ins(const char **want, uint64_t *n, uint64_t i, const char *s)
{
	memmove(want + i + 1, want + i, (*n - i) * sizeof(*want));
	want[i] = s;
	(*n)++;
}

static void linsert(struct narf_ql *ql, int64_t at, int after, const char *s)
{
	struct narf_ql_iter it;

	assert_true(narf_ql_index(ql, at, NARF_QL_FORWARD, &it));
	assert_int_equal(
	        narf_ql_insert(ql, &it, after ? NARF_LP_AFTER : NARF_LP_BEFORE,
	                       s, strlen(s)),
	        0);
}

/* LINSERT at a full node's edges goes to a neighbour with room or a new
 * node, and inside a full node splits it there: node shapes show which. */
static void test_insert_boundaries(void **state)
{
	const char *want[32];
	uint64_t n = 12;
	struct narf_ql *ql = twelve(want);
	static const uint32_t s1[] = {4, 1, 4, 4};
	static const uint32_t s2[] = {1, 4, 2, 4, 4};
	static const uint32_t s3[] = {1, 4, 2, 4, 1, 4};
	static const uint32_t s4[] = {1, 4, 2, 4, 2, 4};

	(void)state;
	linsert(ql, 3, 1, "A"); /* after e3: next node full, so a new one */
	model_ins(want, &n, 4, "A");
	expect(ql, want, n);
	expect_shape(ql, s1, 4);
	linsert(ql, 4, 1, "B"); /* after A: into A's node, which has room */
	model_ins(want, &n, 5, "B");
	linsert(ql, 0, 0, "C"); /* before e0: head full, so a new head */
	model_ins(want, &n, 0, "C");
	expect(ql, want, n);
	expect_shape(ql, s2, 5);
	/* after e6, inside a full node: split into e4-e6 and e7, and D
	 * joins the left part */
	linsert(ql, 9, 1, "D");
	model_ins(want, &n, 10, "D");
	expect(ql, want, n);
	expect_shape(ql, s3, 6);
	linsert(ql, 10, 1, "E"); /* after D, the full left part: into e7's */
	model_ins(want, &n, 11, "E");
	expect(ql, want, n);
	expect_shape(ql, s4, 6);
	linsert(ql, -1, 1, "F"); /* after the last: a new tail */
	model_ins(want, &n, n, "F");
	linsert(ql, -1, 0, "G"); /* before F, F's node has room */
	model_ins(want, &n, n - 1, "G");
	expect(ql, want, n);
	drop(ql);
}

/* LSET in place at nodes' first and last elements; a value too big for its
 * full node moves to a node of its own; a one-element node takes anything. */
static void test_lset(void **state)
{
	const char *want[32];
	struct narf_ql *ql = twelve(want);
	static char big[5000];
	static const uint32_t split[] = {5, 1, 6};

	(void)state;
	for (int64_t i = 0; i < 12; i += 3) {
		assert_int_equal(narf_ql_set(ql, i, "x", 1), 0);
		want[i] = "x";
	}
	assert_int_equal(narf_ql_set(ql, -1, "-0", 2), 0);
	want[11] = "-0";
	expect(ql, want, 12);
	drop(ql);

	ql = twelve(want);
	/* 4 KiB nodes: the big value splits e4-e7 around a node of its
	 * own, and the halves, far from full now, merge with e0-e3 and e8-e11
	 * before e5 goes. */
	narf_ql_set_fill(ql, -1);
	memset(big, 'b', sizeof(big) - 1);
	assert_int_equal(narf_ql_set(ql, 5, big, strlen(big)), 0);
	want[5] = big;
	expect(ql, want, 12);
	expect_shape(ql, split, 3);
	assert_int_equal(narf_ql_set(ql, 5, "small", 5), 0); /* alone: ok */
	want[5] = "small";
	expect(ql, want, 12);
	drop(ql);
}

/* Deleting merges a node with a neighbour as soon as the two fit in one,
 * by count and by bytes, after iterator deletes, pops and range deletes,
 * and frees an emptied node. */
static void test_merge_on_delete(void **state)
{
	static const char *want[] = {"e0", "e5", "e6", "e7", "e8", "e9"};
	struct narf_ql *ql = twelve((const char *[12]){0});
	struct narf_ql_iter it;
	static const uint32_t m1[] = {1, 4, 4};
	static const uint32_t m2[] = {4, 4};
	static const uint32_t m3[] = {4, 2};
	static const uint32_t m4[] = {3, 2};
	static const uint32_t m5[] = {4};
	static const uint32_t r[] = {10, 10};
	char v[101];

	(void)state;
	assert_true(narf_ql_index(ql, 1, NARF_QL_FORWARD, &it));
	for (int i = 0; i < 3; i++)
		assert_int_equal(narf_ql_iter_del(&it), 1);
	expect_shape(ql, m1, 3); /* e0 alone: 1 + 4 > 4, no merge yet */
	assert_int_equal(narf_ql_iter_del(&it), 1); /* e4 goes: 1 + 3 fit */
	expect_shape(ql, m2, 2);
	assert_string_equal(cur(&it), "e5"); /* followed into the merge */
	assert_int_equal(it.index, 1);
	assert_int_equal(narf_ql_del_range(ql, -2, 2), 2);
	expect(ql, want, 6);
	expect_shape(ql, m3, 2);
	assert_int_equal(narf_ql_pop(ql, NARF_QL_HEAD, NULL, 0, NULL), 0);
	expect_shape(ql, m4, 2); /* 3 + 2 > 4 */
	assert_int_equal(narf_ql_pop(ql, NARF_QL_HEAD, NULL, 0, NULL), 0);
	expect_shape(ql, m5, 1);
	expect(ql, want + 2, 4);
	drop(ql);

	/* A range across a node edge leaves two parts that fit in one. */
	ql = mk(10);
	for (unsigned i = 0; i < 30; i++)
		push(ql, NARF_QL_TAIL, name(i));
	assert_int_equal(narf_ql_del_range(ql, 5, 10), 10);
	expect_shape(ql, r, 2);

	drop(ql);

	/* An emptied node goes and its neighbours merge if they fit. */
	ql = mk(1);
	for (unsigned i = 0; i < 3; i++) /* [0][1][2] */
		push(ql, NARF_QL_TAIL, name(i));
	narf_ql_set_fill(ql, 2);
	assert_true(narf_ql_index(ql, 1, NARF_QL_BACKWARD, &it));
	assert_int_equal(narf_ql_iter_del(&it), 1); /* [0 2] */
	assert_int_equal(ql->nodes, 1);
	assert_string_equal(cur(&it), "e0");
	drop(ql);

	/* A deleted element's node merges with the next that fits. */
	ql = mk(2);
	for (unsigned i = 0; i < 5; i++) /* [0 1][2 3][4] */
		push(ql, NARF_QL_TAIL, name(i));
	assert_true(narf_ql_index(ql, 2, NARF_QL_FORWARD, &it));
	assert_int_equal(narf_ql_iter_del(&it), 1); /* [0 1][3][4] -> [3 4] */
	assert_int_equal(ql->nodes, 2);
	assert_string_equal(cur(&it), "e3");
	assert_int_equal(narf_ql_iter_del(&it), 1); /* [0 1][4] */
	assert_int_equal(narf_ql_iter_del(&it), 0); /* [0 1] */
	assert_int_equal(ql->nodes, 1);
	drop(ql);

	/* Bytes: 4 KiB nodes of 39 and 1 merge once 38 + 1 fit. */
	ql = mk(-1);
	memset(v, 'v', 100);
	v[100] = '\0';
	for (int i = 0; i < 40; i++)
		push(ql, NARF_QL_TAIL, v);
	assert_int_equal(ql->nodes, 2);
	assert_int_equal(narf_ql_pop(ql, NARF_QL_HEAD, NULL, 0, NULL), 0);
	assert_int_equal(ql->nodes, 1);
	assert_int_equal(ql->head->count, 39);
	drop(ql);
}

/* LTRIM as two range deletes, across and inside nodes, agrees with the
 * model, frees whole nodes and merges the edges left behind. */
static void test_del_range(void **state)
{
	static const struct {
		int64_t start, stop;
	} trims[] = {{3, 96}, {10, -10}, {0, -1}, {-50, -3}, {5, 5}, {2, 1}};
	const char *want[100];

	(void)state;
	for (size_t t = 0; t < sizeof(trims) / sizeof(trims[0]); t++) {
		struct narf_ql *ql = mk(10);
		int64_t start = trims[t].start, stop = trims[t].stop, n = 100;
		uint64_t keep, rem;

		for (unsigned i = 0; i < 100; i++) {
			push(ql, NARF_QL_TAIL, name(i));
			want[i] = strdup(name(i));
		}
		start = start < 0 ? n + start : start;
		stop = stop < 0 ? n + stop : stop;
		keep = start > stop ? 0 : (uint64_t)(stop - start + 1);
		/* LTRIM: what is after stop, then what is before start */
		assert_int_equal(narf_ql_del_range(ql, stop + 1, UINT64_MAX),
		                 stop + 1 < n ? (uint64_t)(n - stop - 1) : 0);
		rem = narf_ql_count(ql);
		assert_int_equal(narf_ql_del_range(ql, 0, (uint64_t)start),
		                 (uint64_t)start < rem ? (uint64_t)start : rem);
		if (keep == 0) /* Redis empties the list */
			narf_ql_del_range(ql, 0, UINT64_MAX);
		expect(ql, want + start, keep);
		assert_true(ql->nodes <= (keep + 9) / 10 + 1);
		for (unsigned i = 0; i < 100; i++)
			free((char *)want[i]);
		drop(ql);
	}
}

/* Indexes count from the tail when negative; out of range finds nothing;
 * seeks land right whichever end they start from. */
static void test_index(void **state)
{
	struct narf_ql *ql = mk(3);
	struct narf_ql_iter it;

	(void)state;
	for (unsigned i = 0; i < 100; i++)
		push(ql, NARF_QL_TAIL, name(i));
	for (int64_t i = -100; i < 100; i++) {
		assert_true(narf_ql_index(ql, i, NARF_QL_BACKWARD, &it));
		assert_string_equal(cur(&it),
		                    name((unsigned)(i < 0 ? i + 100 : i)));
		assert_int_equal(it.index, i < 0 ? i + 100 : i);
	}
	assert_false(narf_ql_index(ql, 100, NARF_QL_FORWARD, &it));
	assert_false(narf_ql_index(ql, -101, NARF_QL_FORWARD, &it));
	assert_false(narf_ql_index(ql, INT64_MIN, NARF_QL_FORWARD, &it));
	assert_ptr_equal(it.node, NULL);
	drop(ql);
}

/* Elements bigger than a node get a node of their own, and pushes and
 * inserts around them go to other nodes. */
static void test_big_elements(void **state)
{
	struct narf_ql *ql = mk(NARF_QL_FILL_DEFAULT);
	static char big[20000];
	const char *want[8] = {"h", "a", big, "b", big, "z", "t"};
	static const uint32_t s[] = {2, 1, 1, 1, 2};

	(void)state;
	memset(big, 'B', sizeof(big) - 1);
	push(ql, NARF_QL_TAIL, "a");
	push(ql, NARF_QL_TAIL, big);
	push(ql, NARF_QL_TAIL, "b");
	push(ql, NARF_QL_TAIL, big);
	push(ql, NARF_QL_HEAD, "h");
	push(ql, NARF_QL_TAIL, "t");
	linsert(ql, 4, 1, "z"); /* after the second big one */
	expect(ql, want, 7);
	expect_shape(ql, s, 5);
	assert_true(narf_lp_bytes(ql->head->next->lp) > 8192);
	drop(ql);
}

/* Binary values and integer-looking strings come back byte for byte:
 * canonical integers are stored as integers, other forms as strings. */
static void test_exact_bytes(void **state)
{
	static const struct {
		const char *s;
		size_t len;
	} vals[] = {
	        /* clang-format off */
	        {"007", 3}, {"-0", 2}, {"12", 2}, {"0", 1}, {"", 0},
	        {"a\0b", 3}, {"\0", 1}, {"+1", 2}, {" 1", 2}, {"1 ", 2},
	        {"-1", 2}, {"4096", 4}, {"01", 2}, {"1e3", 3}, {"0x10", 4},
	        {"-", 1}, {"\377\0\n", 3},
	        {"9223372036854775807", 19}, {"-9223372036854775808", 20},
	        {"9223372036854775808", 19},
	        /* clang-format on */
	};
	size_t nv = sizeof(vals) / sizeof(vals[0]);
	struct narf_ql *ql = mk(3);
	struct narf_ql_iter it;
	char buf[64], ib[NARF_LP_INTBUF];
	uint32_t l;
	size_t len;

	(void)state;
	for (size_t i = 0; i < nv; i++)
		assert_int_equal(
		        narf_ql_push(ql, NARF_QL_TAIL, vals[i].s, vals[i].len),
		        0);
	for (size_t i = 0; i < nv; i++) {
		assert_true(narf_ql_index(ql, (int64_t)i, 0, &it));
		const unsigned char *p = narf_ql_iter_str(&it, ib, &l);
		assert_int_equal(l, vals[i].len);
		assert_memory_equal(p, vals[i].s, l);
		assert_true(narf_ql_iter_eq(&it, vals[i].s, vals[i].len));
		assert_true(
		        narf_ql_find(ql, vals[i].s, vals[i].len, 1, 0, &it));
		assert_int_equal(it.index, i);
	}
	assert_false(narf_ql_find(ql, "12 ", 3, 1, 0, &it));
	assert_false(narf_ql_find(ql, "a", 1, 1, 0, &it));
	for (size_t i = 0; i < nv; i++) {
		assert_int_equal(
		        narf_ql_pop(ql, NARF_QL_HEAD, buf, sizeof(buf), &len),
		        0);
		assert_int_equal(len, vals[i].len);
		assert_memory_equal(buf, vals[i].s, len);
	}
	drop(ql);
}

/* Refusals change nothing: pops from an empty list or into a short buffer
 * (which says the size needed), LSET out of range, and 4 GiB elements
 * pushed, inserted (a split made for it is merged back) or set. */
static void test_errors(void **state)
{
	const char *want[12];
	struct narf_ql *ql = mk(NARF_QL_FILL_DEFAULT);
	struct narf_ql_iter it;
	static const uint32_t full[] = {4, 4, 4};
	char buf[4];
	size_t len = 0;

	(void)state;
	assert_int_equal(narf_ql_pop(ql, NARF_QL_HEAD, NULL, 0, NULL),
	                 NARF_EINVAL);
	assert_int_equal(narf_ql_push(ql, NARF_QL_TAIL, "", UINT32_MAX),
	                 NARF_ETOOLARGE);
	push(ql, NARF_QL_TAIL, "hello");
	assert_int_equal(narf_ql_pop(ql, NARF_QL_TAIL, buf, 4, &len),
	                 NARF_ETOOLARGE);
	assert_int_equal(len, 5);
	assert_int_equal(narf_ql_set(ql, 0, "", UINT32_MAX), NARF_ETOOLARGE);
	expect(ql, (const char *[]){"hello"}, 1);
	drop(ql);

	ql = twelve(want);
	for (int end = 0; end < 2; end++)
		assert_int_equal(narf_ql_push(ql, end, "", UINT32_MAX),
		                 NARF_ETOOLARGE);
	for (int64_t i = 0; i < 12; i++) {
		assert_true(narf_ql_index(ql, i, NARF_QL_FORWARD, &it));
		assert_int_equal(narf_ql_insert(ql, &it, i % 2, "", UINT32_MAX),
		                 NARF_ETOOLARGE);
		assert_int_equal(narf_ql_set(ql, i, "", UINT32_MAX),
		                 NARF_ETOOLARGE);
		expect_shape(ql, full, 3);
	}
	assert_int_equal(narf_ql_set(ql, 12, "y", 1), NARF_EINVAL);
	assert_int_equal(narf_ql_set(ql, -13, "y", 1), NARF_EINVAL);
	expect(ql, want, 12);
	drop(ql);
}

/* LREM through the iterator: deleting while walking either way visits each
 * element once, across node boundaries and emptied nodes. */
static void test_iter_delete(void **state)
{
	struct narf_ql *ql = mk(3);
	struct narf_ql_iter it;
	const char *want[64];
	uint64_t n = 0;
	int ok, seen = 0, left = 5;

	(void)state;
	/* x at every index divisible by 2 or 3, in runs that empty nodes */
	for (unsigned i = 0; i < 60; i++)
		push(ql, NARF_QL_TAIL, i % 2 == 0 || i % 3 == 0 ? "x" : "y");
	for (ok = narf_ql_first(ql, &it); ok; seen++) {
		if (narf_ql_iter_eq(&it, "x", 1))
			ok = narf_ql_iter_del(&it);
		else
			ok = narf_ql_iter_next(&it);
		assert_int_equal(narf_ql_verify(ql), 0);
	}
	assert_int_equal(seen, 60);
	for (unsigned i = 0; i < 20; i++)
		want[n++] = "y";
	expect(ql, want, n);
	/* LREM k -5 "y": the last five, walking back */
	for (ok = narf_ql_last(ql, &it); ok && left > 0;) {
		assert_int_equal(it.index, (int64_t)n - 1);
		ok = narf_ql_iter_del(&it);
		n--;
		left--;
	}
	assert_int_equal(it.index, 14);
	expect(ql, want, n);
	drop(ql);
}

struct collect {
	char out[256];
	size_t len;
};

static void collect_cb(void *arg, const struct narf_lp_val *v)
{
	struct collect *c = arg;

	c->len += v->s ? (size_t)snprintf(c->out + c->len, 256 - c->len,
	                                  "%.*s,", (int)v->len, v->s)
	               : (size_t)snprintf(c->out + c->len, 256 - c->len,
	                                  "%lld,", (long long)v->v);
}

/* LRANGE clamps both ends as Redis does and reads across nodes. */
static void test_range(void **state)
{
	static const struct {
		int64_t start, stop;
		const char *want;
	} cases[] = {
	        /* clang-format off */
	        {0, -1, "0,1,2,3,4,5,6,"}, {2, 4, "2,3,4,"}, {-3, -1, "4,5,6,"},
	        {-100, 1, "0,1,"}, {5, 100, "5,6,"}, {4, 3, ""}, {7, 9, ""},
	        {-100, -8, ""}, {6, -1, "6,"},
	        {INT64_MIN, INT64_MAX, "0,1,2,3,4,5,6,"},
	        /* clang-format on */
	};
	struct narf_ql *ql = mk(2);

	(void)state;
	for (unsigned i = 0; i < 7; i++) {
		char d[2] = {(char)('0' + i), 0};
		push(ql, NARF_QL_TAIL, d);
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct collect c = {.len = 0};
		c.out[0] = '\0';
		uint64_t n = narf_ql_range(ql, cases[i].start, cases[i].stop,
		                           collect_cb, &c);
		assert_string_equal(c.out, cases[i].want);
		assert_int_equal(n, strlen(cases[i].want) / 2);
	}
	drop(ql);
}

/* LPOS: the rank-th match from either end, within maxlen comparisons,
 * and the next match from where the last one was found. */
static void test_find(void **state)
{
	struct narf_ql *ql = mk(2);
	struct narf_ql_iter it;
	static const char *v[] = {"a", "b", "c", "1", "2", "3",
	                          "c", "c", "a", "b", "c", "3"};

	(void)state;
	for (unsigned i = 0; i < 12; i++)
		push(ql, NARF_QL_TAIL, v[i]);
	assert_true(narf_ql_find(ql, "c", 1, 1, 0, &it));
	assert_int_equal(it.index, 2);
	assert_true(narf_ql_find(ql, "c", 1, 3, 0, &it));
	assert_int_equal(it.index, 7);
	assert_true(narf_ql_find(ql, "c", 1, -1, 0, &it));
	assert_int_equal(it.index, 10);
	assert_true(narf_ql_find(ql, "c", 1, -2, 0, &it));
	assert_int_equal(it.index, 7);
	assert_false(narf_ql_find(ql, "c", 1, 5, 0, &it));
	assert_false(narf_ql_find(ql, "c", 1, 1, 2, &it));
	assert_true(narf_ql_find(ql, "c", 1, 1, 3, &it));
	assert_true(narf_ql_find(ql, "3", 1, -1, 1, &it));
	assert_int_equal(it.index, 11);
	assert_true(narf_ql_find(ql, "3", 1, 1, 0, &it));
	assert_int_equal(it.index, 5);
	assert_false(narf_ql_find(ql, "03", 2, 1, 0, &it));
	assert_false(narf_ql_find(ql, "c", 1, INT64_MIN, 0, &it));
	/* LPOS COUNT 0: every match, continuing the walk */
	int64_t at[4];
	int k = 0, ok = narf_ql_find(ql, "c", 1, 1, 0, &it);
	for (; ok; ok = narf_ql_iter_next(&it))
		if (narf_ql_iter_eq(&it, "c", 1))
			at[k++] = it.index;
	assert_int_equal(k, 4);
	assert_int_equal(at[0], 2);
	assert_int_equal(at[3], 10);
	drop(ql);
}

/* free_step frees at most budget nodes a call, the list itself last, and
 * leaves used exactly where it started. */
static void test_free_step(void **state)
{
	struct narf_ql *ql;
	uint64_t nodes, steps = 0;

	(void)state;
	for (size_t budget = 1; budget <= 64; budget *= 4) {
		ql = mk(16);
		for (unsigned i = 0; i < 20000; i++)
			assert_int_equal(
			        narf_ql_push(ql, NARF_QL_TAIL, "abc", 3), 0);
		nodes = ql->nodes;
		assert_int_equal(nodes, 1250);
		used += 1000; /* another object's memory stays counted */
		for (steps = 1; !narf_ql_free_step(ql, budget); steps++) {
			assert_int_equal(ql->nodes, nodes - steps * budget);
			assert_int_equal(narf_ql_verify(ql), 0);
		}
		assert_int_equal(steps, (nodes + budget - 1) / budget);
		assert_int_equal(used, 1000);
	}
	narf_ql_destroy(NULL);
	ql = mk(16); /* an empty list goes in one step, even of 0 */
	assert_true(narf_ql_free_step(ql, 0));
	assert_int_equal(used, 0);
}

/* Delete want[at..at+k) of *n, freeing them (strdup'd). */
static void model_del(const char **want, uint64_t *n, uint64_t at, uint64_t k)
{
	for (uint64_t i = at; i < at + k; i++)
		free((char *)want[i]);
	memmove(want + at, want + at + k, (*n - at - k) * sizeof(*want));
	*n -= k;
}

/* A seeded random mix of every mutation at several fills keeps the list
 * equal to an array model and every invariant true after each step
 * (fuzz_quicklist does the same from fuzzed programs). */
static void test_random_model(void **state)
{
	static const int fills[] = {1, 2, 3, 7, -1};
	static const char *m[3000];
	static char val[6000];

	(void)state;
	srand(7);
	for (size_t f = 0; f < sizeof(fills) / sizeof(fills[0]); f++) {
		struct narf_ql *ql = mk(fills[f]);
		struct narf_ql_iter it;
		uint64_t n = 0;

		for (int step = 0; step < 3000; step++) {
			int op = rand() % 8;
			uint64_t at = n ? (uint64_t)rand() % n : 0, k = 1;
			size_t len = (size_t)rand() % (rand() % 10 ? 12 : 5999);

			for (size_t i = 0; i < len; i++)
				val[i] = (char)('0' + rand() % 3);
			val[len] = '\0';
			if (n == 0 && op >= 2)
				op = rand() % 2;
			if (op == 0 || op == 1) {
				assert_int_equal(narf_ql_push(ql, op, val, len),
				                 0);
				at = op ? n : 0;
			} else if (op == 2 || op == 3) {
				assert_true(narf_ql_index(
				        ql, (int64_t)at, NARF_QL_FORWARD, &it));
				assert_int_equal(
				        narf_ql_insert(ql, &it, op == 3, val,
				                       len),
				        0);
				at += op == 3;
			} else if (op == 4) {
				assert_int_equal(
				        narf_ql_set(ql, (int64_t)at, val, len),
				        0);
				model_del(m, &n, at, 1);
			} else if (op == 5) {
				at = at % 2 ? n - 1 : 0;
				assert_int_equal(narf_ql_pop(ql, at ? 1 : 0,
				                             NULL, 0, NULL),
				                 0);
			} else if (op == 6) {
				k = (uint64_t)rand() % 30;
				k = k > n - at ? n - at : k;
				assert_int_equal(
				        narf_ql_del_range(ql, (int64_t)(at - n),
				                          k),
				        k);
			} else {
				assert_true(narf_ql_index(ql, (int64_t)at,
				                          rand() % 2, &it));
				narf_ql_iter_del(&it);
			}
			if (op <= 4)
				model_ins(m, &n, at, strdup(val));
			else
				model_del(m, &n, at, k);
			expect(ql, m, n);
		}
		model_del(m, &n, 0, n);
		drop(ql);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_push_pop_ends),
	        cmocka_unit_test(test_split_bytes),
	        cmocka_unit_test(test_split_count),
	        cmocka_unit_test(test_insert_boundaries),
	        cmocka_unit_test(test_lset),
	        cmocka_unit_test(test_merge_on_delete),
	        cmocka_unit_test(test_del_range),
	        cmocka_unit_test(test_index),
	        cmocka_unit_test(test_big_elements),
	        cmocka_unit_test(test_exact_bytes),
	        cmocka_unit_test(test_errors),
	        cmocka_unit_test(test_iter_delete),
	        cmocka_unit_test(test_range),
	        cmocka_unit_test(test_find),
	        cmocka_unit_test(test_free_step),
	        cmocka_unit_test(test_random_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
