/*
 * Unit tests for the collection facades (common/coll*.h): each encoding's
 * operations, the conversions at exactly Redis's thresholds, and memory
 * accounting that returns to zero after a free.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/coll.h"
#include "common/coll_hash.h"
#include "common/coll_list.h"
#include "common/coll_set.h"
#include "common/coll_zset.h"
#include "common/rng.h"

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

/* --- sorted sets ---------------------------------------------------------- */

static struct narf_coll new_zset(void)
{
	struct narf_coll c = {NARF_TYPE_ZSET, NARF_ENC_LISTPACK, NULL};

	return c;
}

static enum narf_zadd_result zadd(struct fixture *f,
                                  struct narf_coll *c,
                                  double score,
                                  const char *m,
                                  unsigned flags,
                                  double *newscore)
{
	enum narf_zadd_result res;

	assert_int_equal(narf_zset_add(&f->ctx, c, score, m, strlen(m), flags,
	                               &res, newscore),
	                 0);
	return res;
}

static double zscore(struct narf_coll *c, const char *m)
{
	double s;

	assert_true(narf_zset_score(c, m, strlen(m), &s));
	return s;
}

/* ZADD's flags do what zsetAdd() does, in both encodings: NX and XX, GT
 * and LT (which still add new members), INCR (NaN refused, nothing
 * changed), an equal score is no update, and -0 equals 0. */
static void test_zset_add_flags_both_encodings(void **state)
{
	(void)state;
	for (int big = 0; big < 2; big++) {
		struct fixture f;
		struct narf_coll c = new_zset();
		enum narf_zadd_result res;
		double ns = -1;

		fixture_init(&f);
		if (big)
			f.lim.zset_lp_entries = 0; /* skiplist at once */
		assert_int_equal(zadd(&f, &c, 1, "a", 0, &ns), NARF_ZADD_ADDED);
		assert_int_equal(c.enc,
		                 big ? NARF_ENC_SKIPLIST : NARF_ENC_LISTPACK);
		assert_true(ns == 1);
		assert_int_equal(zadd(&f, &c, 1, "a", 0, NULL), NARF_ZADD_SAME);
		assert_int_equal(zadd(&f, &c, 2, "a", 0, NULL),
		                 NARF_ZADD_UPDATED);
		assert_int_equal(zadd(&f, &c, 5, "a", NARF_ZADD_NX, NULL),
		                 NARF_ZADD_NOP);
		assert_int_equal(zadd(&f, &c, 5, "b", NARF_ZADD_XX, NULL),
		                 NARF_ZADD_NOP);
		assert_false(narf_zset_score(&c, "b", 1, &ns));
		assert_int_equal(zadd(&f, &c, 1, "a", NARF_ZADD_GT, NULL),
		                 NARF_ZADD_NOP);
		assert_int_equal(zadd(&f, &c, 3, "a", NARF_ZADD_LT, NULL),
		                 NARF_ZADD_NOP);
		assert_int_equal(zadd(&f, &c, 3, "a", NARF_ZADD_GT, NULL),
		                 NARF_ZADD_UPDATED);
		assert_int_equal(zadd(&f, &c, 9, "g", NARF_ZADD_LT, NULL),
		                 NARF_ZADD_ADDED);
		assert_int_equal(zadd(&f, &c, 1.5, "a",
		                      NARF_ZADD_INCR | NARF_ZADD_XX, &ns),
		                 NARF_ZADD_UPDATED);
		assert_true(ns == 4.5 && zscore(&c, "a") == 4.5);
		assert_int_equal(zadd(&f, &c, -1, "a",
		                      NARF_ZADD_INCR | NARF_ZADD_GT, NULL),
		                 NARF_ZADD_NOP);
		assert_int_equal(zadd(&f, &c, 2, "n", NARF_ZADD_INCR, &ns),
		                 NARF_ZADD_ADDED);
		assert_true(ns == 2);
		assert_int_equal(
		        zadd(&f, &c, INFINITY, "n", NARF_ZADD_INCR, &ns),
		        NARF_ZADD_UPDATED);
		assert_true(isinf(ns) && ns > 0);
		assert_int_equal(narf_zset_add(&f.ctx, &c, -INFINITY, "n", 1,
		                               NARF_ZADD_INCR, &res, NULL),
		                 NARF_EINVAL);
		assert_int_equal(res, NARF_ZADD_NOP);
		assert_true(isinf(zscore(&c, "n")));
		assert_int_equal(
		        narf_zset_add(&f.ctx, &c, NAN, "q", 1, 0, &res, NULL),
		        NARF_EINVAL);
		assert_int_equal(zadd(&f, &c, 0.0, "z", 0, NULL),
		                 NARF_ZADD_ADDED);
		assert_int_equal(zadd(&f, &c, -0.0, "z", 0, NULL),
		                 NARF_ZADD_SAME);
		/* a listpack holds -0 as the integer 0; a skiplist keeps it */
		assert_int_equal(zadd(&f, &c, -0.0, "w", 0, &ns),
		                 NARF_ZADD_ADDED);
		assert_true(signbit(ns));
		assert_int_equal(signbit(zscore(&c, "w")) != 0, big);
		assert_true(narf_zset_del(&f.ctx, &c, "w", 1));
		assert_int_equal(narf_zset_len(&c), 4);
		assert_true(narf_zset_del(&f.ctx, &c, "g", 1));
		assert_false(narf_zset_del(&f.ctx, &c, "g", 1));
		assert_int_equal(narf_coll_len(&c), 3);
		narf_coll_free(&f.ctx, &c);
		assert_null(c.p);
		assert_int_equal(f.used, 0);
	}
}

/* 128 members (zset-max-listpack-entries) stay a listpack, the 129th
 * converts with every score intact, and removing members never converts
 * back; a 64-byte member stays, a 65-byte one converts before the add. */
static void test_zset_converts_at_thresholds(void **state)
{
	struct fixture f;
	struct narf_coll c = new_zset();
	char m[80];

	(void)state;
	fixture_init(&f);
	assert_int_equal(f.lim.zset_lp_entries, 128);
	for (int i = 0; i < 128; i++) {
		snprintf(m, sizeof(m), "m%d", i);
		zadd(&f, &c, i * 0.5, m, 0, NULL);
	}
	assert_int_equal(c.enc, NARF_ENC_LISTPACK);
	zadd(&f, &c, -1, "new", 0, NULL);
	assert_int_equal(c.enc, NARF_ENC_SKIPLIST);
	assert_int_equal(narf_zset_len(&c), 129);
	for (int i = 0; i < 128; i++) {
		snprintf(m, sizeof(m), "m%d", i);
		assert_true(zscore(&c, m) == i * 0.5);
	}
	for (int i = 0; i < 120; i++) {
		snprintf(m, sizeof(m), "m%d", i);
		assert_true(narf_zset_del(&f.ctx, &c, m, strlen(m)));
	}
	assert_int_equal(narf_zset_pop(&f.ctx, &c, true, 3, NULL, NULL), 3);
	assert_int_equal(c.enc, NARF_ENC_SKIPLIST);
	assert_int_equal(narf_zset_len(&c), 6);
	narf_coll_free(&f.ctx, &c);
	assert_int_equal(f.used, 0);

	c = new_zset();
	memset(m, 'x', 65);
	m[64] = '\0';
	zadd(&f, &c, 1, m, 0, NULL);
	assert_int_equal(c.enc, NARF_ENC_LISTPACK);
	m[64] = 'x';
	m[65] = '\0';
	zadd(&f, &c, 2, m, 0, NULL);
	assert_int_equal(c.enc, NARF_ENC_SKIPLIST);
	assert_true(zscore(&c, m) == 2);
	m[64] = '\0';
	assert_true(zscore(&c, m) == 1);
	narf_coll_free(&f.ctx, &c);
	assert_int_equal(f.used, 0);
}

/* Equal scores order by member bytes, a prefix first ("a" < "a\0" <
 * "ab"), integers and infinities included, the same in both encodings and
 * both directions; scores read back as written. */
static void test_zset_ties_order_by_member(void **state)
{
	static const struct {
		double s;
		const char *m;
		size_t len;
	} want[] = {
	        {-INFINITY, "lo", 2}, {-2.5, "x", 1},      {0, "", 0},
	        {0, "10", 2},         {0, "9", 1},         {1, "a", 1},
	        {1, "a\0", 2},        {1, "ab", 2},        {1, "b", 1},
	        {1e20, "e", 1},       {INFINITY, "hi", 2},
	};
	const size_t n = sizeof(want) / sizeof(want[0]);

	(void)state;
	for (int big = 0; big < 2; big++) {
		struct fixture f;
		struct narf_coll c = new_zset();
		struct narf_zset_iter it;
		struct narf_str m;
		enum narf_zadd_result res;
		double s;
		size_t i;

		fixture_init(&f);
		if (big)
			f.lim.zset_lp_entries = 0;
		for (i = n; i-- > 0;)
			assert_int_equal(
			        narf_zset_add(&f.ctx, &c, want[i].s, want[i].m,
			                      want[i].len, 0, &res, NULL),
			        0);
		for (int rev = 0; rev < 2; rev++) {
			narf_zset_iter_init(&it, &c, rev);
			for (i = 0; narf_zset_iter_next(&it, &m, &s); i++) {
				size_t k = rev ? n - 1 - i : i;
				uint64_t rank;

				assert_true(s == want[k].s);
				assert_int_equal(m.len, want[k].len);
				assert_memory_equal(m.s, want[k].m, m.len);
				assert_true(narf_zset_rank(&c, want[k].m,
				                           want[k].len, rev,
				                           &rank));
				assert_int_equal(rank, i);
			}
			assert_int_equal(i, n);
		}
		narf_coll_free(&f.ctx, &c);
		assert_int_equal(f.used, 0);
	}
}

/* The texts of scores: a listpack's integers (-0 and 2^62 included) and
 * "%.17g" beyond, a skiplist's "%.17g" throughout; infinities. */
static void test_zset_score_text(void **state)
{
	static const struct {
		double d;
		const char *lp, *sl;
	} t[] = {
	        {3, "3", "3"},
	        {-0.0, "0", "-0"},
	        {1.1, "1.1000000000000001", "1.1000000000000001"},
	        {1e20, "1e+20", "1e+20"},
	        {4611686018427387904.0, "4611686018427387904",
	         "4.6116860184273879e+18"},
	        {9223372036854775808.0, "9.2233720368547758e+18",
	         "9.2233720368547758e+18"},
	        {-INFINITY, "-inf", "-inf"},
	        {INFINITY, "inf", "inf"},
	};
	char b[NARF_ZSET_SCOREBUF];

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		narf_zset_score_text(NARF_ENC_LISTPACK, b, t[i].d);
		assert_string_equal(b, t[i].lp);
		narf_zset_score_text(NARF_ENC_SKIPLIST, b, t[i].d);
		assert_string_equal(b, t[i].sl);
	}
}

/* The model: a sorted array of (score, member), what the facade must
 * agree with after every step. */
struct zmodel {
	double s[64];
	char m[64][8];
	int n;
};

static int zm_find(const struct zmodel *z, const char *m)
{
	for (int i = 0; i < z->n; i++)
		if (strcmp(z->m[i], m) == 0)
			return i;
	return -1;
}

static void zm_remove(struct zmodel *z, int i)
{
	memmove(&z->s[i], &z->s[i + 1],
	        (size_t)(z->n - i - 1) * sizeof(double));
	memmove(z->m[i], z->m[i + 1], (size_t)(z->n - i - 1) * sizeof(z->m[0]));
	z->n--;
}

static void zm_insert(struct zmodel *z, double s, const char *m)
{
	int i = 0;

	while (i < z->n && narf_zsl_cmp(z->s[i], z->m[i], strlen(z->m[i]), s, m,
	                                strlen(m)) < 0)
		i++;
	memmove(&z->s[i + 1], &z->s[i], (size_t)(z->n - i) * sizeof(double));
	memmove(z->m[i + 1], z->m[i], (size_t)(z->n - i) * sizeof(z->m[0]));
	z->s[i] = s;
	snprintf(z->m[i], sizeof(z->m[i]), "%s", m);
	z->n++;
}

/* Remove the k model indexes in idx (a contiguous block, any order). */
static void zm_remove_range(struct zmodel *z, const int *idx, int k)
{
	int lo = z->n;

	for (int j = 0; j < k; j++)
		lo = idx[j] < lo ? idx[j] : lo;
	for (int j = 0; j < k; j++)
		zm_remove(z, lo);
}

static bool zm_in(const struct narf_zrange *r, double s, const char *m)
{
	if (r->by == NARF_ZRANGE_SCORE)
		return (r->score.minex ? s > r->score.min
		                       : s >= r->score.min) &&
		       (r->score.maxex ? s < r->score.max : s <= r->score.max);
	const struct narf_zsl_lex_bound *a = &r->lex.min, *b = &r->lex.max;
	int ca = a->inf ? -a->inf : strcmp(m, (const char *)a->s);
	int cb = b->inf ? -b->inf : strcmp(m, (const char *)b->s);

	return (a->ex ? ca > 0 : ca >= 0) && (b->ex ? cb < 0 : cb <= 0);
}

/* The model's indexes of r, in r's direction, after offset and limit. */
static int zm_range(const struct zmodel *z,
                    const struct narf_zrange *r,
                    int *out)
{
	int k = 0, skip = (int)r->offset;
	uint64_t lim = r->limit;

	for (int j = 0; j < z->n; j++) {
		int i = r->rev ? z->n - 1 - j : j;

		if (r->by == NARF_ZRANGE_RANK) {
			if ((uint64_t)j >= r->start && (uint64_t)j <= r->stop)
				out[k++] = i;
			continue;
		}
		if (!zm_in(r, z->s[i], z->m[i]))
			continue;
		if (skip > 0) {
			skip--;
			continue;
		}
		if (lim-- == 0)
			break;
		out[k++] = i;
	}
	return k;
}

static double rand_score(uint64_t *rng)
{
	uint64_t r = narf_rng_next(rng) % 24;

	if (r == 22)
		return INFINITY;
	if (r == 23)
		return -INFINITY;
	return (double)r / 4.0 - 2.0;
}

static void rand_range(uint64_t *rng,
                       const struct zmodel *z,
                       struct narf_zrange *r,
                       char lexbuf[2][8],
                       bool lex_ok)
{
	uint64_t x = narf_rng_next(rng);

	memset(r, 0, sizeof(*r));
	r->rev = x & 1;
	r->by = (enum narf_zrange_by)((x >> 1) % (lex_ok ? 3 : 2));
	r->offset = (x >> 4) % 4 == 0 ? (x >> 8) % 5 : 0;
	r->limit = (x >> 12) % 3 == 0 ? (x >> 16) % 6 : UINT64_MAX;
	if (r->by == NARF_ZRANGE_RANK) {
		uint64_t a = (x >> 20) % (uint64_t)(z->n + 2);
		uint64_t b = (x >> 28) % (uint64_t)(z->n + 2);

		r->start = a;
		r->stop = b < (uint64_t)z->n ? b : (uint64_t)z->n - 1;
		if (z->n == 0 || r->start > r->stop)
			r->start = r->stop = 0, r->offset = 99;
		if (r->offset == 99)
			r->start = 1, r->stop = 0;
		r->offset = 0;
		r->limit = UINT64_MAX;
		return;
	}
	if (r->by == NARF_ZRANGE_SCORE) {
		r->score.min = rand_score(rng);
		r->score.max = rand_score(rng);
		r->score.minex = (x >> 36) & 1;
		r->score.maxex = (x >> 37) & 1;
		return;
	}
	for (int e = 0; e < 2; e++) {
		struct narf_zsl_lex_bound *b = e ? &r->lex.max : &r->lex.min;
		uint64_t y = narf_rng_next(rng);

		snprintf(lexbuf[e], 8, "m%d", (int)(y % 40));
		b->s = (const unsigned char *)lexbuf[e];
		b->len = strlen(lexbuf[e]);
		b->ex = (y >> 8) & 1;
		b->inf = (y >> 9) % 8 == 0 ? ((y >> 12) & 1 ? 1 : -1) : 0;
		if (b->inf)
			b->ex = 1;
	}
}

static void zm_check(struct fixture *f,
                     struct narf_coll *c,
                     const struct zmodel *z,
                     uint64_t *rng,
                     bool lex_ok)
{
	struct narf_zset_iter it;
	struct narf_str m;
	double s;
	int idx[64];

	(void)f;
	assert_int_equal(narf_zset_len(c), z->n);
	narf_zset_iter_init(&it, c, false);
	for (int i = 0; i < z->n; i++) {
		uint64_t rank;

		assert_true(narf_zset_iter_next(&it, &m, &s));
		assert_int_equal(m.len, strlen(z->m[i]));
		assert_memory_equal(m.s, z->m[i], m.len);
		assert_true(s == z->s[i]);
		assert_true(narf_zset_rank(c, z->m[i], m.len, false, &rank));
		assert_int_equal(rank, i);
		assert_true(narf_zset_rank(c, z->m[i], m.len, true, &rank));
		assert_int_equal(rank, z->n - 1 - i);
		assert_true(zscore(c, z->m[i]) == z->s[i]);
	}
	assert_false(narf_zset_iter_next(&it, &m, &s));
	for (int q = 0; q < 8; q++) {
		struct narf_zrange r;
		char lexbuf[2][8];
		int k;

		rand_range(rng, z, &r, lexbuf, lex_ok);
		k = zm_range(z, &r, idx);
		narf_zset_iter_range(&it, c, &r);
		assert_int_equal(it.left, k);
		for (int j = 0; j < k; j++) {
			assert_true(narf_zset_iter_next(&it, &m, &s));
			assert_int_equal(m.len, strlen(z->m[idx[j]]));
			assert_memory_equal(m.s, z->m[idx[j]], m.len);
			assert_true(s == z->s[idx[j]]);
		}
		assert_false(narf_zset_iter_next(&it, &m, &s));
		r.offset = 0;
		r.limit = UINT64_MAX;
		assert_int_equal(narf_zset_count(c, &r), zm_range(z, &r, idx));
	}
}

struct popped {
	char m[64][8];
	double s[64];
	int n;
};

static void popped_cb(void *arg, const struct narf_str *m, double score)
{
	struct popped *p = arg;

	assert_true(m->len < 8);
	memcpy(p->m[p->n], m->s, m->len);
	p->m[p->n][m->len] = '\0';
	p->s[p->n++] = score;
}

/* Random adds (every flag), removals, range deletions and pops against the
 * sorted-array model, with the listpack limit at 128 (listpack only), 16
 * (converting midway) and 0 (skiplist only): contents, ranks both ways,
 * scores and every kind of range with LIMIT agree after each step, and
 * memory returns to zero. Lex ranges run with all scores equal, as their
 * contract wants. */
static void test_zset_against_model(void **state)
{
	(void)state;
	for (int run = 0; run < 6; run++) {
		static const uint32_t limits[3] = {128, 16, 0};
		bool lex = run >= 3;
		struct fixture f;
		struct narf_coll c = new_zset();
		struct zmodel z = {.n = 0};
		uint64_t rng = 1000 + (uint64_t)run;

		fixture_init(&f);
		f.lim.zset_lp_entries = limits[run % 3];
		for (int step = 0; step < 600; step++) {
			uint64_t x = narf_rng_next(&rng);
			char m[8];
			int op = (int)(x % 16);

			snprintf(m, sizeof(m), "m%d", (int)((x >> 8) % 40));
			if (op < 9) {
				static const unsigned fl[] = {
				        0,
				        NARF_ZADD_NX,
				        NARF_ZADD_XX,
				        NARF_ZADD_GT,
				        NARF_ZADD_LT,
				        NARF_ZADD_INCR,
				        NARF_ZADD_INCR | NARF_ZADD_XX,
				        NARF_ZADD_GT | NARF_ZADD_XX,
				        0};
				unsigned flags = fl[op];
				double sc = lex ? 0 : rand_score(&rng);
				int i = zm_find(&z, m);
				double want = sc, cur = i >= 0 ? z.s[i] : 0;
				enum narf_zadd_result res;
				int rv = narf_zset_add(&f.ctx, &c, sc, m,
				                       strlen(m), flags, &res,
				                       NULL);

				if (flags & NARF_ZADD_INCR && i >= 0)
					want = cur + sc;
				if (isnan(want)) {
					assert_int_equal(rv, NARF_EINVAL);
				} else if (i < 0) {
					assert_int_equal(rv, 0);
					if (!(flags & NARF_ZADD_XX))
						zm_insert(&z, want, m);
				} else if (!(flags & NARF_ZADD_NX) &&
				           !(flags & NARF_ZADD_GT &&
				             want <= cur) &&
				           !(flags & NARF_ZADD_LT &&
				             want >= cur) &&
				           want != cur) {
					assert_int_equal(res,
					                 NARF_ZADD_UPDATED);
					zm_remove(&z, i);
					zm_insert(&z, want, m);
				}
			} else if (op < 11) {
				int i = zm_find(&z, m);

				assert_int_equal(
				        narf_zset_del(&f.ctx, &c, m, strlen(m)),
				        i >= 0);
				if (i >= 0)
					zm_remove(&z, i);
			} else if (op < 13) {
				struct popped p = {.n = 0};
				uint64_t n = (x >> 16) % 4;
				bool max = (x >> 20) & 1;
				uint64_t got = narf_zset_pop(&f.ctx, &c, max, n,
				                             popped_cb, &p);

				assert_int_equal(got, (uint64_t)z.n < n
				                              ? (uint64_t)z.n
				                              : n);
				for (int j = 0; j < p.n; j++) {
					int i = max ? z.n - 1 : 0;

					assert_string_equal(p.m[j], z.m[i]);
					assert_true(p.s[j] == z.s[i]);
					zm_remove(&z, i);
				}
			} else if (op < 14) {
				struct narf_zrange r;
				struct popped p = {.n = 0};
				char lexbuf[2][8];
				int idx[64], k;

				rand_range(&rng, &z, &r, lexbuf, lex);
				r.offset = 0;
				r.limit = UINT64_MAX;
				k = zm_range(&z, &r, idx);
				assert_int_equal(
				        narf_zset_delete_range(&f.ctx, &c, &r,
				                               popped_cb, &p),
				        k);
				/* removed in ascending order */
				for (int j = 0; j < k; j++)
					assert_string_equal(
					        p.m[j],
					        z.m[idx[r.rev ? k - 1 - j
					                      : j]]);
				zm_remove_range(&z, idx, k);
			} else {
				zm_check(&f, &c, &z, &rng, lex);
			}
		}
		zm_check(&f, &c, &z, &rng, lex);
		if (f.lim.zset_lp_entries == 0 && z.n > 0)
			assert_int_equal(c.enc, NARF_ENC_SKIPLIST);
		narf_coll_free(&f.ctx, &c);
		assert_int_equal(f.used, 0);
	}
}

static void zcount_cb(void *arg, const struct narf_str *m, double score)
{
	(void)m;
	(void)score;
	(*(int *)arg)++;
}

/* ZSCAN over a big set ends at cursor 0 having passed every member, a
 * small one comes whole; random picks are members with their scores. */
static void test_zset_scan_and_random(void **state)
{
	(void)state;
	for (int n = 10; n <= 1000; n += 990) {
		struct fixture f;
		struct narf_coll c = new_zset();
		uint64_t cursor = 0;
		int seen = 0, calls = 0;
		char m[16];

		fixture_init(&f);
		for (int i = 0; i < n; i++) {
			snprintf(m, sizeof(m), "k%d", i);
			zadd(&f, &c, i, m, 0, NULL);
		}
		do {
			cursor = narf_zset_scan(&c, cursor, 10, zcount_cb,
			                        &seen);
			calls++;
		} while (cursor != 0 && calls < 10000);
		assert_int_equal(cursor, 0);
		assert_true(seen >= n);
		if (n == 10)
			assert_int_equal(calls, 1);
		for (int i = 0; i < 50; i++) {
			struct narf_str ms;
			double s;

			narf_zset_random(&f.ctx, &c, &ms, &s);
			snprintf(m, sizeof(m), "k%d", (int)s);
			assert_int_equal(ms.len, strlen(m));
			assert_memory_equal(ms.s, m, ms.len);
		}
		narf_coll_free(&f.ctx, &c);
		assert_int_equal(f.used, 0);
	}
}

/* Values built whole: narf_zset_create picks the encoding of the size
 * hint, narf_zset_shrink turns a finished skiplist that fits into a
 * listpack with the same members (a -0 becoming 0, as a listpack holds
 * it), and leaves one with a long member alone. */
static void test_zset_create_and_shrink(void **state)
{
	struct fixture f;
	struct narf_coll c;
	char m[80];

	(void)state;
	fixture_init(&f);
	assert_int_equal(narf_zset_create(&f.ctx, &c, 128), 0);
	assert_int_equal(c.enc, NARF_ENC_LISTPACK);
	assert_null(c.p);
	assert_int_equal(narf_zset_create(&f.ctx, &c, 129), 0);
	assert_int_equal(c.enc, NARF_ENC_SKIPLIST);
	assert_int_equal(narf_zset_len(&c), 0);
	zadd(&f, &c, 2, "b", 0, NULL);
	zadd(&f, &c, -0.0, "z", 0, NULL);
	zadd(&f, &c, 1.5, "a", 0, NULL);
	assert_true(signbit(zscore(&c, "z")));
	assert_int_equal(narf_zset_shrink(&f.ctx, &c), 0);
	assert_int_equal(c.enc, NARF_ENC_LISTPACK);
	assert_int_equal(narf_zset_len(&c), 3);
	assert_false(signbit(zscore(&c, "z")));
	assert_true(zscore(&c, "a") == 1.5 && zscore(&c, "b") == 2);
	narf_coll_free(&f.ctx, &c);
	assert_int_equal(f.used, 0);

	assert_int_equal(narf_zset_create(&f.ctx, &c, UINT64_MAX), 0);
	memset(m, 'x', 65);
	m[65] = '\0';
	zadd(&f, &c, 1, m, 0, NULL);
	assert_int_equal(narf_zset_shrink(&f.ctx, &c), 0);
	assert_int_equal(c.enc, NARF_ENC_SKIPLIST);
	narf_coll_free(&f.ctx, &c);
	assert_int_equal(narf_zset_create(&f.ctx, &c, UINT64_MAX), 0);
	assert_int_equal(narf_zset_shrink(&f.ctx, &c), 0);
	assert_int_equal(narf_zset_len(&c), 0);
	narf_coll_free(&f.ctx, &c);
	assert_int_equal(f.used, 0);
}

/* A big zset is freed lazily in bounded steps (the dict at once, then the
 * nodes from the front), a small one at once; either way every byte comes
 * back. */
static void test_zset_free_step(void **state)
{
	(void)state;
	for (int n = 10; n <= 1000; n += 990) {
		struct fixture f;
		struct narf_coll c = new_zset();
		int steps = 0;
		char m[16];

		fixture_init(&f);
		for (int i = 0; i < n; i++) {
			snprintf(m, sizeof(m), "k%d", i);
			zadd(&f, &c, i, m, 0, NULL);
		}
		assert_int_equal(narf_coll_lazy(&c), n > 128);
		while (!narf_coll_free_step(&f.ctx, &c, 100))
			steps++;
		assert_int_equal(steps, n > 128 ? 9 : 0);
		assert_null(c.p);
		assert_int_equal(f.used, 0);
	}
}

/* A zset's payload (score, member pairs, as NARF.CLOAD carries it) loads
 * back into the same set in either encoding, scores exact: 1.1, -0 in a
 * skiplist, infinities; a NaN or a half pair is refused. */
static void test_zset_encode_load(void **state)
{
	(void)state;
	for (int big = 0; big < 2; big++) {
		struct fixture f;
		struct narf_coll c = new_zset(), d = new_zset();
		struct narf_buf b;
		const char *argv[16];
		size_t argvlen[16];
		uint64_t n = 0;
		int argc = 0;

		fixture_init(&f);
		if (big)
			f.lim.zset_lp_entries = 0;
		zadd(&f, &c, 1.1, "a", 0, NULL);
		zadd(&f, &c, -0.0, "z", 0, NULL);
		zadd(&f, &c, -INFINITY, "lo", 0, NULL);
		zadd(&f, &c, 1e20, "", 0, NULL);
		narf_buf_init(&b);
		assert_int_equal(narf_coll_encode(&c, &b, &n), 0);
		assert_int_equal(n, 8);
		for (size_t at = 0; at < b.len;) {
			char *end;
			long len = strtol(b.data + at + 1, &end, 10);

			argv[argc] = end + 2;
			argvlen[argc++] = (size_t)len;
			at = (size_t)(end + 2 + len + 2 - b.data);
		}
		assert_int_equal(argc, 8);
		assert_int_equal(
		        narf_coll_load(&f.ctx, &d, argc, argv, argvlen), 0);
		assert_int_equal(narf_zset_len(&d), 4);
		assert_true(zscore(&d, "a") == 1.1);
		assert_true(zscore(&d, "") == 1e20);
		assert_true(isinf(zscore(&d, "lo")));
		assert_int_equal(signbit(zscore(&d, "z")) != 0, big);
		assert_int_equal(narf_coll_load(&f.ctx, &d, 3, argv, argvlen),
		                 NARF_EPROTO);
		argv[0] = "nan";
		argvlen[0] = 3;
		assert_int_equal(narf_coll_load(&f.ctx, &d, 2, argv, argvlen),
		                 NARF_EPROTO);
		narf_buf_close(&b);
		narf_coll_free(&f.ctx, &c);
		narf_coll_free(&f.ctx, &d);
		assert_int_equal(f.used, 0);
	}
}

/* The bulks of a payload this node encoded, as argv (pointers into b). */
static int payload_argv(const struct narf_buf *b,
                        const char **argv,
                        size_t *argvlen,
                        int max)
{
	int argc = 0;

	for (size_t at = 0; at < b->len;) {
		char *end;
		long len = strtol(b->data + at + 1, &end, 10);

		assert_true(argc < max);
		argv[argc] = end + 2;
		argvlen[argc++] = (size_t)len;
		at = (size_t)(end + 2 + len + 2 - b->data);
	}
	return argc;
}

/* One write to the source and the same one to the copy, as the effect a
 * sync's peer would get (an upsert or a delete of one element). */
static void slice_write(struct fixture *f,
                        struct narf_coll *src,
                        struct narf_coll *dst,
                        unsigned i)
{
	char m[32], v[32];
	size_t ml = (size_t)snprintf(m, sizeof(m), "m%u", i % 9000);
	size_t vl = (size_t)snprintf(v, sizeof(v), "w%u", i);
	bool del = i % 3 == 0;
	enum narf_zadd_result res;

	for (int k = 0; k < 2; k++) {
		struct narf_coll *c = k ? dst : src;

		switch ((enum narf_type)c->type) {
		case NARF_TYPE_HASH:
			if (del)
				narf_hash_del(&f->ctx, c, m, ml);
			else
				assert_int_equal(
				        narf_hash_set(&f->ctx, c, m, ml, v, vl,
				                      0, NULL),
				        0);
			break;
		case NARF_TYPE_SET:
			if (del)
				narf_set_remove(&f->ctx, c, m, ml);
			else
				assert_int_equal(
				        narf_set_add(&f->ctx, c, m, ml, NULL),
				        0);
			break;
		default:
			if (del)
				narf_zset_del(&f->ctx, c, m, ml);
			else
				assert_int_equal(
				        narf_zset_add(
				                &f->ctx, c,
				                (double)(i * 7919u % 10007u), m,
				                ml, 0, &res, NULL),
				        0);
		}
	}
}

/* A dict-encoded hash or set, or a skiplist sorted set, sent in slices
 * (narf_coll_slice) while it changes: each slice loaded into the copy,
 * each write between slices applied to both (upserts and deletes, growing
 * and shrinking the dict through rehashes, scores moving members across
 * the cursor) leaves a copy equal to the source, element for element. */
static void test_slices_under_writes(void **state)
{
	static const enum narf_type types[] = {NARF_TYPE_HASH, NARF_TYPE_SET,
	                                       NARF_TYPE_ZSET};

	(void)state;
	for (unsigned t = 0; t < 3; t++) {
		struct fixture f;
		struct narf_coll src = {types[t], NARF_ENC_LISTPACK, NULL};
		struct narf_coll dst = src;
		struct narf_buf b, all_src, all_dst;
		enum { MAXV = 32768 };
		const char **argv = malloc(MAXV * sizeof(*argv));
		size_t *argvlen = malloc(MAXV * sizeof(*argvlen));
		struct narf_coll_cursor cursor = {0};
		uint64_t n, slices = 0;
		unsigned w = 0;
		bool done = false;

		fixture_init(&f);
		assert_non_null(argv);
		assert_non_null(argvlen);
		for (unsigned i = 0; i < 3000; i++)
			slice_write(&f, &src, &dst, 3 * i + 1);
		narf_coll_free(&f.ctx, &dst);
		dst = (struct narf_coll){types[t], NARF_ENC_LISTPACK, NULL};
		assert_true(narf_coll_sliceable(&src));
		narf_buf_init(&b);
		while (!done) {
			int argc;

			b.len = 0;
			n = 0;
			assert_int_equal(narf_coll_slice(&src, &cursor, 100,
			                                 4096, &b, &n, &done),
			                 0);
			argc = payload_argv(&b, argv, argvlen, MAXV);
			assert_int_equal((uint64_t)argc, n);
			assert_int_equal(narf_coll_load(&f.ctx, &dst, argc,
			                                argv, argvlen),
			                 0);
			slices++;
			for (unsigned k = 0; k < 40; k++)
				slice_write(&f, &src, &dst, 9000 + w++ * 7);
		}
		assert_true(slices > 10);
		assert_int_equal(narf_coll_len(&dst), narf_coll_len(&src));
		/* equal element for element: same payload once sorted */
		narf_buf_init(&all_src);
		narf_buf_init(&all_dst);
		assert_int_equal(narf_coll_encode(&src, &all_src, &n), 0);
		assert_int_equal(narf_coll_encode(&dst, &all_dst, &n), 0);
		if (types[t] == NARF_TYPE_SET) {
			int na = payload_argv(&all_src, argv, argvlen, MAXV);

			for (int i = 0; i < na; i++)
				assert_true(narf_set_ismember(&dst, argv[i],
				                              argvlen[i]));
		} else if (types[t] == NARF_TYPE_HASH) {
			int na = payload_argv(&all_src, argv, argvlen, MAXV);

			for (int i = 0; i < na; i += 2) {
				struct narf_str v;

				assert_true(narf_hash_get(&dst, argv[i],
				                          argvlen[i], &v));
				assert_int_equal(v.len, argvlen[i + 1]);
				assert_memory_equal(v.s, argv[i + 1], v.len);
			}
		} else {
			/* score order: the encodings are equal */
			assert_int_equal(all_src.len, all_dst.len);
			assert_memory_equal(all_src.data, all_dst.data,
			                    all_src.len);
		}
		narf_buf_close(&all_src);
		narf_buf_close(&all_dst);
		narf_buf_close(&b);
		free(argv);
		free(argvlen);
		narf_coll_cursor_close(&cursor);
		narf_coll_free(&f.ctx, &src);
		narf_coll_free(&f.ctx, &dst);
		assert_int_equal(f.used, 0);
	}
}

/* A list's slices, from index 0 on, are its elements head to tail. */
static void test_list_slices(void **state)
{
	struct fixture f;
	struct narf_coll c = {NARF_TYPE_LIST, NARF_ENC_QUICKLIST, NULL};
	struct narf_buf b, whole;
	struct narf_coll_cursor cursor = {0};
	uint64_t n = 0, slices = 0;
	bool done = false;

	(void)state;
	fixture_init(&f);
	for (unsigned i = 0; i < 5000; i++) {
		char e[16];

		assert_int_equal(
		        narf_list_push(&f.ctx, &c, NARF_QL_TAIL, e,
		                       (size_t)snprintf(e, sizeof(e), "%s%u",
		                                        i % 2 ? "e" : "", i)),
		        0);
	}
	assert_true(narf_coll_sliceable(&c));
	narf_buf_init(&b);
	narf_buf_init(&whole);
	while (!done) {
		size_t before = b.len;

		assert_int_equal(narf_coll_slice(&c, &cursor, 300, 1 << 20, &b,
		                                 &n, &done),
		                 0);
		assert_true(b.len > before);
		slices++;
	}
	assert_int_equal(slices, 17); /* 16 of 300 and one of 200 */
	assert_int_equal(n, 5000);
	assert_int_equal(narf_coll_encode(&c, &whole, &n), 0);
	assert_int_equal(whole.len, b.len);
	assert_memory_equal(whole.data, b.data, b.len);
	narf_buf_close(&b);
	narf_buf_close(&whole);
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
	        cmocka_unit_test(test_zset_add_flags_both_encodings),
	        cmocka_unit_test(test_zset_converts_at_thresholds),
	        cmocka_unit_test(test_zset_ties_order_by_member),
	        cmocka_unit_test(test_zset_score_text),
	        cmocka_unit_test(test_zset_against_model),
	        cmocka_unit_test(test_zset_scan_and_random),
	        cmocka_unit_test(test_zset_create_and_shrink),
	        cmocka_unit_test(test_zset_free_step),
	        cmocka_unit_test(test_zset_encode_load),
	        cmocka_unit_test(test_slices_under_writes),
	        cmocka_unit_test(test_list_slices),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
