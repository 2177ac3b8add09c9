/*
 * Unit tests for the collection facades (common/coll*.h): each encoding's
 * operations, the conversions at exactly Redis's thresholds, and memory
 * accounting that returns to zero after a free.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include <cmocka.h>

#include "common/coll.h"
#include "common/coll_hash.h"
#include "common/coll_set.h"
#include "common/coll_list.h"

static const uint8_t seed[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

struct fixture {
	uint64_t used;
	uint64_t rng;
	struct narf_coll_limits lim;
	struct narf_coll_ctx ctx;
};

static void fixture_init(struct fixture *f)
{
	f->used = 0;
	f->rng = 42;
	narf_coll_limits_default(&f->lim);
	f->ctx.used = &f->used;
	f->ctx.lim = &f->lim;
	f->ctx.seed = seed;
	f->ctx.rng = &f->rng;
}

static struct narf_coll new_hash(void)
{
	struct narf_coll c = {NARF_TYPE_HASH, NARF_ENC_LISTPACK, NULL};

	return c;
}

static void hset(struct fixture *f,
                 struct narf_coll *c,
                 const char *k,
                 const char *v,
                 int want_added)
{
	int added = -1;

	assert_int_equal(narf_hash_set(&f->ctx, c, k, strlen(k), v, strlen(v),
	                               0, &added),
	                 0);
	assert_int_equal(added, want_added);
}

static bool hget_is(struct narf_coll *c, const char *k, const char *v)
{
	struct narf_str s;

	if (!narf_hash_get(c, k, strlen(k), &s))
		return v == NULL;
	return v != NULL && s.len == strlen(v) && memcmp(s.s, v, s.len) == 0;
}

/* Set, replace, NX, get and delete behave the same in both encodings, and
 * an integer-looking value reads back byte for byte. */
static void test_hash_ops_both_encodings(void **state)
{
	(void)state;
	for (int big = 0; big < 2; big++) {
		struct fixture f;
		struct narf_coll c = new_hash();
		int added;

		fixture_init(&f);
		if (big)
			f.lim.hash_lp_entries = 0; /* hashtable at once */
		hset(&f, &c, "a", "1", 1);
		assert_int_equal(c.enc,
		                 big ? NARF_ENC_HASHTABLE : NARF_ENC_LISTPACK);
		hset(&f, &c, "b", "007", 1);
		hset(&f, &c, "a", "a longer value", 0);
		assert_int_equal(narf_hash_set(&f.ctx, &c, "a", 1, "x", 1,
		                               NARF_HASH_NX, &added),
		                 0);
		assert_int_equal(added, 0);
		assert_true(hget_is(&c, "a", "a longer value"));
		assert_true(hget_is(&c, "b", "007"));
		assert_true(hget_is(&c, "zz", NULL));
		assert_int_equal(narf_hash_len(&c), 2);
		assert_true(narf_hash_del(&f.ctx, &c, "a", 1));
		assert_false(narf_hash_del(&f.ctx, &c, "a", 1));
		assert_int_equal(narf_coll_len(&c), 1);
		narf_coll_free(&f.ctx, &c);
		assert_null(c.p);
		assert_int_equal(f.used, 0);
	}
}

/* 512 fields (Redis 7.0.15's hash-max-listpack-entries) stay a listpack,
 * the 513th converts to a hashtable, and every field survives the
 * conversion; deleting back down never converts back. */
static void test_hash_converts_at_entries(void **state)
{
	struct fixture f;
	struct narf_coll c = new_hash();
	char k[16], v[16];

	(void)state;
	fixture_init(&f);
	assert_int_equal(f.lim.hash_lp_entries, 512);
	for (int i = 0; i < 512; i++) {
		snprintf(k, sizeof(k), "f%d", i);
		snprintf(v, sizeof(v), "%d", i * 3);
		hset(&f, &c, k, v, 1);
	}
	assert_int_equal(c.enc, NARF_ENC_LISTPACK);
	hset(&f, &c, "f512", "x", 1);
	assert_int_equal(c.enc, NARF_ENC_HASHTABLE);
	assert_int_equal(narf_hash_len(&c), 513);
	for (int i = 0; i < 512; i++) {
		snprintf(k, sizeof(k), "f%d", i);
		snprintf(v, sizeof(v), "%d", i * 3);
		assert_true(hget_is(&c, k, v));
	}
	for (int i = 0; i < 500; i++) {
		snprintf(k, sizeof(k), "f%d", i);
		assert_true(narf_hash_del(&f.ctx, &c, k, strlen(k)));
	}
	assert_int_equal(c.enc, NARF_ENC_HASHTABLE);
	narf_coll_free(&f.ctx, &c);
	assert_int_equal(f.used, 0);
}

/* A 64-byte field or value keeps the listpack; 65 bytes in either
 * converts before the write. */
static void test_hash_converts_at_value_size(void **state)
{
	char b64[65], b65[66];

	(void)state;
	memset(b64, 'x', 64);
	b64[64] = '\0';
	memset(b65, 'y', 65);
	b65[65] = '\0';
	for (int which = 0; which < 2; which++) {
		struct fixture f;
		struct narf_coll c = new_hash();

		fixture_init(&f);
		hset(&f, &c, b64, b64, 1);
		assert_int_equal(c.enc, NARF_ENC_LISTPACK);
		if (which == 0)
			hset(&f, &c, b65, "v", 1);
		else
			hset(&f, &c, "k", b65, 1);
		assert_int_equal(c.enc, NARF_ENC_HASHTABLE);
		assert_true(hget_is(&c, b64, b64));
		narf_coll_free(&f.ctx, &c);
		assert_int_equal(f.used, 0);
	}
}

/* The iterator and a full HSCAN each see every field exactly once (scan:
 * at least once) in both encodings, and random picks return real fields. */
static void test_hash_walks(void **state)
{
	(void)state;
	for (int n = 10; n <= 1000; n += 990) {
		struct fixture f;
		struct narf_coll c = new_hash();
		struct narf_hash_iter it;
		struct narf_str fs, vs;
		char k[16];
		int seen = 0;

		fixture_init(&f);
		for (int i = 0; i < n; i++) {
			snprintf(k, sizeof(k), "k%d", i);
			hset(&f, &c, k, k, 1);
		}
		narf_hash_iter_init(&it, &c);
		while (narf_hash_iter_next(&it, &fs, &vs)) {
			assert_int_equal(fs.len, vs.len);
			assert_memory_equal(fs.s, vs.s, fs.len);
			seen++;
		}
		narf_hash_iter_close(&it);
		assert_int_equal(seen, n);
		for (int i = 0; i < 50; i++) {
			char key[16];

			narf_hash_random(&f.ctx, &c, &fs, &vs);
			assert_true(fs.len < sizeof(key));
			memcpy(key, fs.s, fs.len);
			key[fs.len] = '\0';
			assert_true(hget_is(&c, key, key));
		}
		narf_coll_free(&f.ctx, &c);
		assert_int_equal(f.used, 0);
	}
}

static void count_cb(void *arg,
                     const struct narf_str *f,
                     const struct narf_str *v)
{
	(void)f;
	(void)v;
	(*(int *)arg)++;
}

/* HSCAN over a big hash ends with cursor 0 having passed every field. */
static void test_hash_scan(void **state)
{
	struct fixture f;
	struct narf_coll c = new_hash();
	uint64_t cursor = 0;
	char k[16];
	int seen = 0, calls = 0;

	(void)state;
	fixture_init(&f);
	for (int i = 0; i < 500; i++) {
		snprintf(k, sizeof(k), "k%d", i);
		hset(&f, &c, k, "v", 1);
	}
	do {
		cursor = narf_hash_scan(&c, cursor, 10, count_cb, &seen);
		calls++;
	} while (cursor != 0 && calls < 10000);
	assert_int_equal(cursor, 0);
	assert_true(seen >= 500);
	narf_coll_free(&f.ctx, &c);
	assert_int_equal(f.used, 0);
}

/* --- lists ---------------------------------------------------------------- */

static struct narf_coll new_list(void)
{
	/* as the store hands out a key it just created: no quicklist yet */
	struct narf_coll c = {NARF_TYPE_LIST, NARF_ENC_LISTPACK, NULL};

	return c;
}

static void pop_is(struct narf_coll *c, enum narf_ql_end end, const char *want)
{
	char buf[64];
	size_t n = 0;

	assert_int_equal(
	        narf_ql_pop(narf_list_ql(c), end, buf, sizeof(buf), &n), 0);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(buf, want, n);
}

/* Pushes at both ends create the quicklist on the first one (encoding
 * quicklist), pops come back from the right ends in order, integer-looking
 * elements keep their bytes, the length follows, and freeing returns the
 * counted memory to zero. */
static void test_list_push_pop_len(void **state)
{
	struct fixture f;
	struct narf_coll c = new_list();
	char k[32];

	(void)state;
	fixture_init(&f);
	assert_int_equal(narf_list_len(&c), 0);
	assert_int_equal(narf_list_push(&f.ctx, &c, NARF_QL_TAIL, "b", 1), 0);
	assert_int_equal(c.enc, NARF_ENC_QUICKLIST);
	assert_non_null(narf_list_ql(&c));
	assert_true(f.used > 0);
	assert_int_equal(narf_list_push(&f.ctx, &c, NARF_QL_HEAD, "a", 1), 0);
	assert_int_equal(narf_list_push(&f.ctx, &c, NARF_QL_TAIL, "007", 3), 0);
	assert_int_equal(narf_list_push(&f.ctx, &c, NARF_QL_TAIL, "-0", 2), 0);
	assert_int_equal(narf_list_push(&f.ctx, &c, NARF_QL_TAIL, "12", 2), 0);
	assert_int_equal(narf_list_len(&c), 5);
	assert_int_equal(narf_coll_len(&c), 5);
	pop_is(&c, NARF_QL_HEAD, "a");
	pop_is(&c, NARF_QL_TAIL, "12");
	pop_is(&c, NARF_QL_TAIL, "-0");
	pop_is(&c, NARF_QL_TAIL, "007");
	pop_is(&c, NARF_QL_HEAD, "b");
	assert_int_equal(narf_list_len(&c), 0);
	/* many nodes' worth, then pops from both ends */
	for (int i = 0; i < 20000; i++) {
		snprintf(k, sizeof(k), "element-%d", i);
		assert_int_equal(
		        narf_list_push(&f.ctx, &c,
		                       i % 2 ? NARF_QL_HEAD : NARF_QL_TAIL, k,
		                       strlen(k)),
		        0);
	}
	assert_int_equal(narf_list_len(&c), 20000);
	assert_true(narf_list_ql(&c)->nodes > 10);
	assert_int_equal(narf_ql_verify(narf_list_ql(&c)), 0);
	pop_is(&c, NARF_QL_HEAD, "element-19999");
	pop_is(&c, NARF_QL_TAIL, "element-19998");
	assert_int_equal(narf_list_len(&c), 19998);
	narf_coll_free(&f.ctx, &c);
	assert_null(c.p);
	assert_int_equal(f.used, 0);
}

/* The fill comes from the limits (list-max-listpack-size): 2 elements a
 * node with a fill of 2. */
static void test_list_fill_from_limits(void **state)
{
	struct fixture f;
	struct narf_coll c = new_list();

	(void)state;
	fixture_init(&f);
	f.lim.list_lp_size = 2;
	for (int i = 0; i < 10; i++)
		assert_int_equal(
		        narf_list_push(&f.ctx, &c, NARF_QL_TAIL, "x", 1), 0);
	assert_int_equal(narf_list_ql(&c)->nodes, 5);
	narf_coll_free(&f.ctx, &c);
	assert_int_equal(f.used, 0);
}

/* A big list frees in bounded steps (a few nodes a call), stays a valid
 * list in between, and ends with no memory counted; an empty handle is
 * freed at once. */
static void test_list_free_step(void **state)
{
	struct fixture f;
	struct narf_coll c = new_list();
	char v[100];
	int steps = 0;

	(void)state;
	fixture_init(&f);
	assert_true(narf_list_free_step(&f.ctx, &c, 1));
	memset(v, 'v', sizeof(v));
	for (int i = 0; i < 10000; i++)
		assert_int_equal(
		        narf_list_push(&f.ctx, &c, NARF_QL_TAIL, v, sizeof(v)),
		        0);
	uint64_t nodes = narf_list_ql(&c)->nodes;

	assert_true(nodes > 100);
	while (!narf_list_free_step(&f.ctx, &c, 16)) {
		steps++;
		assert_non_null(c.p);
		assert_int_equal(narf_ql_verify(narf_list_ql(&c)), 0);
	}
	assert_int_equal(steps, (int)((nodes + 15) / 16 - 1));
	assert_null(c.p);
	assert_int_equal(f.used, 0);
}

/* --- sets ----------------------------------------------------------------- */

static void sadd(struct fixture *f,
                 struct narf_coll *c,
                 const char *m,
                 int want_added)
{
	int added = -1;

	assert_int_equal(narf_set_add(&f->ctx, c, m, strlen(m), &added), 0);
	assert_int_equal(added, want_added);
}

static bool sis(struct narf_coll *c, const char *m)
{
	return narf_set_ismember(c, m, strlen(m));
}

/* Add, re-add, membership and remove behave the same in both encodings,
 * integers and strings alike, and the set frees to zero bytes. */
static void test_set_ops_both_encodings(void **state)
{
	(void)state;
	for (int big = 0; big < 2; big++) {
		struct fixture f;
		struct narf_coll c = narf_set_empty();

		fixture_init(&f);
		if (big)
			f.lim.set_intset_entries = 0; /* hashtable at once */
		sadd(&f, &c, "12", 1);
		assert_int_equal(c.enc,
		                 big ? NARF_ENC_HASHTABLE : NARF_ENC_INTSET);
		sadd(&f, &c, "-5", 1);
		sadd(&f, &c, "12", 0);
		assert_true(sis(&c, "12"));
		assert_true(sis(&c, "-5"));
		assert_false(sis(&c, "5"));
		assert_false(sis(&c, "012"));
		assert_false(sis(&c, "abc"));
		assert_int_equal(narf_set_len(&c), 2);
		assert_false(narf_set_remove(&f.ctx, &c, "012", 3));
		assert_false(narf_set_remove(&f.ctx, &c, "x", 1));
		assert_true(narf_set_remove(&f.ctx, &c, "12", 2));
		assert_false(narf_set_remove(&f.ctx, &c, "12", 2));
		assert_int_equal(narf_coll_len(&c), 1);
		sadd(&f, &c, "", 1); /* the empty string is no integer */
		assert_int_equal(c.enc, NARF_ENC_HASHTABLE);
		assert_true(sis(&c, ""));
		assert_true(sis(&c, "-5"));
		narf_coll_free(&f.ctx, &c);
		assert_null(c.p);
		assert_int_equal(f.used, 0);
	}
}

/* 512 integers (set-max-intset-entries) stay an intset, the 513th converts
 * to a hashtable with every member, and removing back down never converts
 * back. */
static void test_set_converts_at_entries(void **state)
{
	struct fixture f;
	struct narf_coll c = narf_set_empty();
	char m[24];

	(void)state;
	fixture_init(&f);
	assert_int_equal(f.lim.set_intset_entries, 512);
	for (int i = 0; i < 512; i++) {
		snprintf(m, sizeof(m), "%d", i * 1000 - 100000);
		sadd(&f, &c, m, 1);
	}
	assert_int_equal(c.enc, NARF_ENC_INTSET);
	sadd(&f, &c, "0", 0); /* present already: no conversion */
	assert_int_equal(c.enc, NARF_ENC_INTSET);
	sadd(&f, &c, "9223372036854775807", 1);
	assert_int_equal(c.enc, NARF_ENC_HASHTABLE);
	assert_int_equal(narf_set_len(&c), 513);
	for (int i = 0; i < 512; i++) {
		snprintf(m, sizeof(m), "%d", i * 1000 - 100000);
		assert_true(sis(&c, m));
	}
	assert_true(sis(&c, "9223372036854775807"));
	for (int i = 0; i < 510; i++) {
		snprintf(m, sizeof(m), "%d", i * 1000 - 100000);
		assert_true(narf_set_remove(&f.ctx, &c, m, strlen(m)));
	}
	assert_int_equal(c.enc, NARF_ENC_HASHTABLE);
	assert_int_equal(narf_set_len(&c), 3);
	narf_coll_free(&f.ctx, &c);
	assert_int_equal(f.used, 0);
}

/* The first member that is not an integer converts an intset, whose
 * integers all survive as their decimal strings. */
static void test_set_converts_at_first_string(void **state)
{
	struct fixture f;
	struct narf_coll c = narf_set_empty();

	(void)state;
	fixture_init(&f);
	sadd(&f, &c, "-9223372036854775808", 1);
	sadd(&f, &c, "7", 1);
	sadd(&f, &c, "70000", 1);
	assert_int_equal(c.enc, NARF_ENC_INTSET);
	sadd(&f, &c, "x", 1);
	assert_int_equal(c.enc, NARF_ENC_HASHTABLE);
	assert_true(sis(&c, "-9223372036854775808"));
	assert_true(sis(&c, "7"));
	assert_true(sis(&c, "70000"));
	assert_true(sis(&c, "x"));
	assert_int_equal(narf_set_len(&c), 4);
	narf_coll_free(&f.ctx, &c);
	assert_int_equal(f.used, 0);
}

/* Only canonical int64s (Redis's string2ll) make an intset: "007", "-0",
 * "+1", " 1", "1 ", "1.0" and 2^63 are strings and give a hashtable, as
 * the first member or added to an intset, and read back byte for byte. */
static void test_set_noncanonical_ints_are_strings(void **state)
{
	static const char *const strs[] = {
	        "007", "-0",  "+1", " 1",
	        "1 ",  "1.0", "-",  "9223372036854775808"};

	(void)state;
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		for (int second = 0; second < 2; second++) {
			struct fixture f;
			struct narf_coll c = narf_set_empty();
			struct narf_set_iter it;
			struct narf_str m;
			bool found = false;

			fixture_init(&f);
			if (second)
				sadd(&f, &c, "1", 1);
			sadd(&f, &c, strs[i], 1);
			assert_int_equal(c.enc, NARF_ENC_HASHTABLE);
			assert_true(sis(&c, strs[i]));
			narf_set_iter_init(&it, &c);
			while (narf_set_iter_next(&it, &m))
				found |= m.len == strlen(strs[i]) &&
				         memcmp(m.s, strs[i], m.len) == 0;
			narf_set_iter_close(&it);
			assert_true(found);
			narf_coll_free(&f.ctx, &c);
			assert_int_equal(f.used, 0);
		}
	}
}

/* Pop n members out of c, each once: members are "<prefix><i>" with
 * 0 <= i < n, prefix "m" when strings. */
static void pop_all(struct fixture *f, struct narf_coll *c, int n, int strings)
{
	static char popped[1000];
	struct narf_set_popped p;
	char num[24];

	memset(popped, 0, sizeof(popped));
	for (int i = 0; i < n; i++) {
		narf_set_pop(&f->ctx, c, &p);
		assert_false(narf_set_ismember(c, p.m.s, p.m.len));
		assert_true(p.m.len < sizeof(num));
		memcpy(num, p.m.s, p.m.len);
		num[p.m.len] = '\0';
		int v = atoi(num + (strings ? 1 : 0));

		assert_true(v >= 0 && v < n);
		assert_false(popped[v]);
		popped[v] = 1;
		narf_set_popped_free(&f->ctx, &p);
	}
}

/* The iterator sees every member once (an intset in ascending order),
 * random picks are members, and popping drains the set with each member
 * once, back to zero bytes. */
static void test_set_walks_and_pops(void **state)
{
	(void)state;
	for (int n = 10; n <= 1000; n += 990) {
		for (int strings = 0; strings < 2; strings++) {
			struct fixture f;
			struct narf_coll c = narf_set_empty();
			struct narf_set_iter it;
			struct narf_str m;
			char buf[24];
			long long last = -1;
			int seen = 0;

			fixture_init(&f);
			for (int i = 0; i < n; i++) {
				snprintf(buf, sizeof(buf), "%s%d",
				         strings ? "m" : "", i);
				sadd(&f, &c, buf, 1);
			}
			assert_int_equal(c.enc, n <= 512 && !strings
			                                ? NARF_ENC_INTSET
			                                : NARF_ENC_HASHTABLE);
			narf_set_iter_init(&it, &c);
			while (narf_set_iter_next(&it, &m)) {
				if (c.enc == NARF_ENC_INTSET) {
					long long v = strtoll((const char *)m.s,
					                      NULL, 10);

					assert_true(v > last);
					last = v;
				}
				seen++;
			}
			narf_set_iter_close(&it);
			assert_int_equal(seen, n);
			for (int i = 0; i < 50; i++) {
				narf_set_random(&f.ctx, &c, &m);
				assert_true(narf_set_ismember(&c, m.s, m.len));
			}
			pop_all(&f, &c, n, strings);
			assert_int_equal(narf_set_len(&c), 0);
			narf_coll_free(&f.ctx, &c);
			assert_int_equal(f.used, 0);
		}
	}
}

static void set_count_cb(void *arg, const struct narf_str *m)
{
	(void)m;
	(*(int *)arg)++;
}

/* SSCAN: an intset comes whole in one call with cursor 0 whatever the
 * cursor given; a big dict ends at cursor 0 having passed every member. */
static void test_set_scan(void **state)
{
	struct fixture f;
	struct narf_coll c = narf_set_empty();
	uint64_t cursor = 0;
	char m[16];
	int seen = 0, calls = 0;

	(void)state;
	fixture_init(&f);
	for (int i = 0; i < 100; i++) {
		snprintf(m, sizeof(m), "%d", i);
		sadd(&f, &c, m, 1);
	}
	assert_int_equal(narf_set_scan(&c, 12345, 10, set_count_cb, &seen), 0);
	assert_int_equal(seen, 100);
	for (int i = 0; i < 900; i++) {
		snprintf(m, sizeof(m), "k%d", i);
		sadd(&f, &c, m, 1);
	}
	assert_int_equal(c.enc, NARF_ENC_HASHTABLE);
	seen = 0;
	do {
		cursor = narf_set_scan(&c, cursor, 10, set_count_cb, &seen);
		calls++;
	} while (cursor != 0 && calls < 10000);
	assert_int_equal(cursor, 0);
	assert_true(seen >= 1000);
	assert_true(calls > 10);
	narf_coll_free(&f.ctx, &c);
	assert_int_equal(f.used, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_hash_ops_both_encodings),
	        cmocka_unit_test(test_hash_converts_at_entries),
	        cmocka_unit_test(test_hash_converts_at_value_size),
	        cmocka_unit_test(test_hash_walks),
	        cmocka_unit_test(test_hash_scan),
	        cmocka_unit_test(test_list_push_pop_len),
	        cmocka_unit_test(test_list_fill_from_limits),
	        cmocka_unit_test(test_list_free_step),
	        cmocka_unit_test(test_set_ops_both_encodings),
	        cmocka_unit_test(test_set_converts_at_entries),
	        cmocka_unit_test(test_set_converts_at_first_string),
	        cmocka_unit_test(test_set_noncanonical_ints_are_strings),
	        cmocka_unit_test(test_set_walks_and_pops),
	        cmocka_unit_test(test_set_scan),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
