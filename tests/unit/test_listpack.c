/*
 * Unit tests for common/listpack.h: exact bytes of the integer and string
 * encodings at their boundaries, walks both ways, every mutation, validate on
 * broken input, and a seeded random run against a plain array model.
 */
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/errors.h"
#include "common/listpack.h"

static uint64_t used;

static unsigned char *mk(void)
{
	unsigned char *lp = NULL;

	used = 0;
	assert_int_equal(narf_lp_create(&lp, &used), 0);
	return lp;
}

static void drop(unsigned char *lp)
{
	narf_lp_destroy(lp, &used);
	assert_int_equal(used, 0);
}

static void push(unsigned char **lp, const char *s)
{
	assert_int_equal(narf_lp_append(lp, &used, s, strlen(s)), 0);
	assert_int_equal(used, malloc_usable_size(*lp));
}

/* The element at pos printed as bytes, for comparisons. */
static char *str_at(const unsigned char *lp, uint32_t pos)
{
	static char out[8192];
	char buf[NARF_LP_INTBUF];
	uint32_t len;
	const unsigned char *s = narf_lp_get_str(lp, pos, buf, &len);

	assert_true(len < sizeof(out));
	memcpy(out, s, len);
	out[len] = '\0';
	return out;
}

/* Forwards and backwards walks both give exactly want[0..n). */
static void expect(const unsigned char *lp, const char **want, uint32_t n)
{
	uint32_t pos = narf_lp_first(lp), i = 0;

	assert_int_equal(narf_lp_validate(lp, narf_lp_bytes(lp)), 0);
	assert_int_equal(narf_lp_count(lp), n);
	for (; pos != NARF_LP_NONE; pos = narf_lp_next(lp, pos), i++) {
		assert_true(i < n);
		assert_string_equal(str_at(lp, pos), want[i]);
	}
	assert_int_equal(i, n);
	for (pos = narf_lp_last(lp); pos != NARF_LP_NONE;
	     pos = narf_lp_prev(lp, pos))
		assert_string_equal(str_at(lp, pos), want[--i]);
	assert_int_equal(i, 0);
}

/* An empty listpack is the 8-byte header and the end byte; nothing walks. */
static void test_empty(void **state)
{
	unsigned char *lp = mk();
	static const unsigned char want[] = {9, 0, 0, 0, 0, 0, 0, 0, 0xFF};

	(void)state;
	assert_memory_equal(lp, want, sizeof(want));
	assert_int_equal(narf_lp_first(lp), NARF_LP_NONE);
	assert_int_equal(narf_lp_last(lp), NARF_LP_NONE);
	assert_int_equal(narf_lp_seek(lp, 0), NARF_LP_NONE);
	assert_int_equal(narf_lp_seek(lp, -1), NARF_LP_NONE);
	assert_int_equal(narf_lp_validate(lp, 9), 0);
	assert_int_equal(used, malloc_usable_size(lp));
	drop(lp);
}

/* Each value takes exactly the encoding the layout comment gives it: entry
 * bytes (encoding, payload, back-length) and whether it reads as an int. */
static void test_encodings(void **state)
{
	static const struct {
		const char *s;
		int isint;
		int64_t v;
		size_t size;
	} cases[] = {
	        {"0", 1, 0, 2},
	        {"127", 1, 127, 2},
	        {"128", 1, 128, 3},
	        {"-1", 1, -1, 3},
	        {"4095", 1, 4095, 3},
	        {"-4096", 1, -4096, 3},
	        {"4096", 1, 4096, 4},
	        {"-4097", 1, -4097, 4},
	        {"32767", 1, 32767, 4},
	        {"32768", 1, 32768, 5},
	        {"-8388608", 1, -8388608, 5},
	        {"8388608", 1, 8388608, 6},
	        {"2147483647", 1, INT32_MAX, 6},
	        {"-2147483649", 1, (int64_t)INT32_MIN - 1, 10},
	        {"9223372036854775807", 1, INT64_MAX, 10},
	        {"-9223372036854775808", 1, INT64_MIN, 10},
	        {"9223372036854775808", 0, 0, 21},
	        {"-9223372036854775809", 0, 0, 22},
	        {"-0", 0, 0, 4},
	        {"00", 0, 0, 4},
	        {"0123", 0, 0, 6},
	        {"+1", 0, 0, 4},
	        {" 1", 0, 0, 4},
	        {"1 ", 0, 0, 4},
	        {"-", 0, 0, 3},
	        {"", 0, 0, 2},
	        {"abc", 0, 0, 5},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned char *lp = mk();
		struct narf_lp_val v;

		push(&lp, cases[i].s);
		assert_int_equal(narf_lp_bytes(lp), 9 + cases[i].size);
		narf_lp_get(lp, narf_lp_first(lp), &v);
		if (cases[i].isint) {
			assert_null(v.s);
			assert_true(v.v == cases[i].v);
		} else {
			assert_non_null(v.s);
			assert_int_equal(v.len, strlen(cases[i].s));
		}
		assert_string_equal(str_at(lp, narf_lp_first(lp)), cases[i].s);
		assert_int_equal(narf_lp_validate(lp, narf_lp_bytes(lp)), 0);
		drop(lp);
	}
}

/* The wire bytes of a few entries, pinned: 13-bit int, a 200-byte string
 * (two back-length bytes, 0x01 0xCA for L = 202), an int64. */
static void test_exact_bytes(void **state)
{
	unsigned char *lp = mk();
	char big[201];
	static const unsigned char i13[] = {0xDF, 0xFF, 0x02}; /* -1 */
	static const unsigned char i64[] = {0xF4, 0, 0, 0,    0,
	                                    0,    0, 0, 0x80, 0x09};

	(void)state;
	memset(big, 'x', 200);
	big[200] = '\0';
	push(&lp, "-1");
	push(&lp, big);
	push(&lp, "-9223372036854775808");
	assert_memory_equal(lp + 8, i13, 3);
	assert_int_equal(lp[11], 0xE0);
	assert_int_equal(lp[12], 200);
	assert_int_equal(lp[13 + 200], 0x01);
	assert_int_equal(lp[14 + 200], 0xCA);
	assert_memory_equal(lp + 15 + 200, i64, sizeof(i64));
	assert_int_equal(lp[narf_lp_bytes(lp) - 1], 0xFF);
	assert_int_equal(narf_lp_bytes(lp), 8 + 3 + 204 + 10 + 1);
	drop(lp);
}

/* Appends, prepends and inserts before and after land where asked. */
static void test_insert(void **state)
{
	unsigned char *lp = mk();
	uint32_t pos;

	(void)state;
	push(&lp, "b");
	assert_int_equal(narf_lp_prepend(&lp, &used, "a", 1), 0);
	push(&lp, "d");
	pos = narf_lp_seek(lp, 1);
	assert_int_equal(
	        narf_lp_insert(&lp, &used, pos, NARF_LP_AFTER, "c", 1, &pos),
	        0);
	assert_string_equal(str_at(lp, pos), "c");
	pos = narf_lp_first(lp);
	assert_int_equal(
	        narf_lp_insert(&lp, &used, pos, NARF_LP_BEFORE, "7", 1, NULL),
	        0);
	assert_int_equal(narf_lp_append_int(&lp, &used, -42), 0);
	expect(lp, (const char *[]){"7", "a", "b", "c", "d", "-42"}, 6);
	assert_string_equal(str_at(lp, narf_lp_seek(lp, -1)), "-42");
	assert_string_equal(str_at(lp, narf_lp_seek(lp, -6)), "7");
	assert_string_equal(str_at(lp, narf_lp_seek(lp, 4)), "d");
	assert_int_equal(narf_lp_seek(lp, 6), NARF_LP_NONE);
	assert_int_equal(narf_lp_seek(lp, -7), NARF_LP_NONE);
	drop(lp);
}

/* Deletes at the head, the tail and the middle, single and ranged. */
static void test_delete(void **state)
{
	unsigned char *lp = mk();
	uint32_t pos;

	(void)state;
	for (int i = 0; i < 8; i++)
		assert_int_equal(narf_lp_append_int(&lp, &used, i), 0);
	pos = narf_lp_first(lp);
	narf_lp_delete(&lp, &used, &pos);
	assert_string_equal(str_at(lp, pos), "1");
	pos = narf_lp_last(lp);
	narf_lp_delete(&lp, &used, &pos);
	assert_int_equal(pos, NARF_LP_NONE);
	pos = narf_lp_seek(lp, 2);
	narf_lp_delete(&lp, &used, &pos);
	assert_string_equal(str_at(lp, pos), "4");
	expect(lp, (const char *[]){"1", "2", "4", "5", "6"}, 5);
	assert_int_equal(narf_lp_delete_range(&lp, &used, 1, 2), 2);
	expect(lp, (const char *[]){"1", "5", "6"}, 3);
	assert_int_equal(narf_lp_delete_range(&lp, &used, -1, 5), 1);
	assert_int_equal(narf_lp_delete_range(&lp, &used, 2, 1), 0);
	assert_int_equal(narf_lp_delete_range(&lp, &used, 0, 0), 0);
	assert_int_equal(narf_lp_delete_range(&lp, &used, -2, 99), 2);
	expect(lp, NULL, 0);
	assert_int_equal(narf_lp_bytes(lp), 9);
	assert_int_equal(used, malloc_usable_size(lp));
	drop(lp);
}

/* Replace grows an int into a long string and shrinks it back, with the
 * neighbours intact on both sides. */
static void test_replace(void **state)
{
	unsigned char *lp = mk();
	char big[5000];
	size_t before;

	(void)state;
	memset(big, 'q', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	push(&lp, "x");
	push(&lp, "1");
	push(&lp, "y");
	before = narf_lp_bytes(lp);
	assert_int_equal(
	        narf_lp_replace(&lp, &used, narf_lp_seek(lp, 1), big, 4999), 0);
	expect(lp, (const char *[]){"x", big, "y"}, 3);
	assert_int_equal(narf_lp_bytes(lp), before - 2 + 5 + 4999 + 2);
	assert_int_equal(
	        narf_lp_replace(&lp, &used, narf_lp_seek(lp, 1), "-300", 4), 0);
	expect(lp, (const char *[]){"x", "-300", "y"}, 3);
	assert_int_equal(narf_lp_bytes(lp), before + 1);
	assert_int_equal(used, malloc_usable_size(lp));
	drop(lp);
}

/* find compares by bytes whatever the encoding, and skip steps over the
 * values of field/value pairs. */
static void test_find(void **state)
{
	unsigned char *lp = mk();
	uint32_t first;

	(void)state;
	push(&lp, "f1");
	push(&lp, "10");
	push(&lp, "10");
	push(&lp, "v");
	push(&lp, "010");
	push(&lp, "x");
	first = narf_lp_first(lp);
	assert_int_equal(narf_lp_find(lp, first, "10", 2, 1),
	                 narf_lp_seek(lp, 2));
	assert_int_equal(narf_lp_find(lp, first, "10", 2, 0),
	                 narf_lp_seek(lp, 1));
	assert_int_equal(narf_lp_find(lp, first, "010", 3, 1),
	                 narf_lp_seek(lp, 4));
	assert_int_equal(narf_lp_find(lp, first, "v", 1, 1), NARF_LP_NONE);
	assert_int_equal(narf_lp_find(lp, first, "x", 1, 1), NARF_LP_NONE);
	assert_int_equal(narf_lp_find(lp, first, "x", 1, 0),
	                 narf_lp_seek(lp, 5));
	assert_int_equal(narf_lp_find(lp, first, "+10", 3, 0), NARF_LP_NONE);
	drop(lp);
}

/* Sizes past the format's bound are refused before any byte is read. */
static void test_too_large(void **state)
{
	unsigned char *lp = mk();

	(void)state;
	push(&lp, "a");
	assert_int_equal(narf_lp_append(&lp, &used, "", UINT32_MAX),
	                 NARF_ETOOLARGE);
	assert_int_equal(narf_lp_append(&lp, &used, "", UINT32_MAX - 12),
	                 NARF_ETOOLARGE);
	assert_int_equal(narf_lp_replace(&lp, &used, narf_lp_first(lp), "",
	                                 (size_t)UINT32_MAX + 7),
	                 NARF_ETOOLARGE);
	expect(lp, (const char *[]){"a"}, 1);
	drop(lp);
}

/* concat appends another listpack's elements as bytes (positions shift by
 * the reported amount, the source is untouched) and split moves a suffix
 * out and back, at every cut point, with memory accounted exactly. */
static void test_concat_split(void **state)
{
	static const char *all[] = {"a", "-4096", "",
	                            "7", "x y",   "12345678901"};
	unsigned char *lp = mk(), *b = NULL, *t = NULL;
	uint32_t shift = 0, pos;

	(void)state;
	for (int i = 0; i < 3; i++)
		push(&lp, all[i]);
	assert_int_equal(narf_lp_create(&b, &used), 0);
	for (int i = 3; i < 6; i++)
		assert_int_equal(
		        narf_lp_append(&b, &used, all[i], strlen(all[i])), 0);
	pos = narf_lp_seek(b, 1);
	assert_int_equal(narf_lp_concat(&lp, &used, b, &shift), 0);
	expect(lp, all, 6);
	expect(b, all + 3, 3);
	assert_string_equal(str_at(lp, pos + shift), "x y");
	narf_lp_destroy(b, &used);
	for (uint32_t at = 0; at <= 6; at++) {
		pos = at < 6 ? narf_lp_seek(lp, at) : narf_lp_end(lp);
		assert_int_equal(narf_lp_split(&lp, &used, pos, &t), 0);
		expect(lp, all, at);
		expect(t, all + at, 6 - at);
		assert_int_equal(
		        used, malloc_usable_size(lp) + malloc_usable_size(t));
		assert_int_equal(narf_lp_concat(&lp, &used, t, NULL), 0);
		narf_lp_destroy(t, &used);
		expect(lp, all, 6);
	}
	/* A split at the first element empties it; concat refills it. */
	assert_int_equal(narf_lp_split(&lp, &used, narf_lp_first(lp), &t), 0);
	assert_int_equal(narf_lp_concat(&lp, &used, t, NULL), 0);
	narf_lp_destroy(t, &used);
	expect(lp, all, 6);
	assert_int_equal(narf_lp_split(&lp, &used, narf_lp_first(lp), &t), 0);
	narf_lp_destroy(t, &used);
	assert_int_equal(narf_lp_bytes(lp), NARF_LP_EMPTY_BYTES);
	drop(lp);
}

/* validate accepts every prefix-free valid listpack and refuses each
 * truncation and each single-byte corruption that breaks the format,
 * without reading out of bounds (ASan checks the last part). */
static void test_validate(void **state)
{
	unsigned char *lp = mk();
	char big[300];
	size_t n;

	(void)state;
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	push(&lp, "hello");
	push(&lp, "-5000");
	push(&lp, big);
	push(&lp, "123456789012");
	n = narf_lp_bytes(lp);
	assert_int_equal(narf_lp_validate(lp, n), 0);
	assert_int_equal(narf_lp_validate(NULL, 0), NARF_EPROTO);
	for (size_t cut = 0; cut < n; cut++) {
		unsigned char *c = malloc(cut + 1);
		memcpy(c, lp, cut);
		/* a truncated copy, even with its header fixed up */
		assert_int_equal(narf_lp_validate(c, cut), NARF_EPROTO);
		if (cut >= 9) {
			c[0] = (unsigned char)cut;
			c[1] = (unsigned char)(cut >> 8);
			c[cut - 1] = 0xFF;
			assert_int_equal(narf_lp_validate(c, cut), NARF_EPROTO);
		}
		free(c);
	}
	lp[4] = 5; /* count off by one */
	assert_int_equal(narf_lp_validate(lp, n), NARF_EPROTO);
	lp[4] = 4;
	lp[8] = 0xF7; /* unused encoding */
	assert_int_equal(narf_lp_validate(lp, n), NARF_EPROTO);
	lp[8] = 0x85;
	lp[14] = 7; /* wrong back-length of "hello" */
	assert_int_equal(narf_lp_validate(lp, n), NARF_EPROTO);
	lp[14] = 6;
	lp[8] = 0xFF; /* end byte in the middle */
	assert_int_equal(narf_lp_validate(lp, n), NARF_EPROTO);
	lp[8] = 0x85;
	assert_int_equal(narf_lp_validate(lp, n), 0);
	/* every byte flipped to every value: never a crash */
	for (size_t i = 0; i < n; i++) {
		unsigned char keep = lp[i];
		for (int b = 0; b < 256; b++) {
			lp[i] = (unsigned char)b;
			(void)narf_lp_validate(lp, n);
		}
		lp[i] = keep;
	}
	drop(lp);
}

/* --- randomized model ---------------------------------------------------- */

struct model {
	char *s[512];
	size_t len[512];
	uint32_t n;
};

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* A value near one of the encodings' edges, or random bytes. */
static size_t gen(char *buf)
{
	static const char *odd[] = {"-0",   "00", "+1",
	                            "0123", "-",  "9223372036854775808",
	                            "1e3",  ""};
	int64_t edges[] = {0,         127,       128,      -1,
	                   4095,      -4096,     32767,    8388607,
	                   INT32_MAX, INT64_MAX, INT64_MIN};

	switch (rnd() % 6) {
	case 0:
		return (size_t)sprintf(
		        buf, "%lld",
		        (long long)(int64_t)((uint64_t)edges[rnd() % 11] +
		                             rnd() % 3 - 1));
	case 1:
		return (size_t)sprintf(buf, "%lld", (long long)rnd());
	case 2:
		return (size_t)sprintf(buf, "%s", odd[rnd() % 8]);
	default: {
		size_t len = rnd() % 16 == 0 ? 60 + rnd() % 4100 : rnd() % 70;
		for (size_t i = 0; i < len; i++)
			buf[i] = (char)rnd();
		return len;
	}
	}
}

static void check_model(const unsigned char *lp, const struct model *m)
{
	uint32_t pos = narf_lp_first(lp), len;
	char buf[NARF_LP_INTBUF];

	assert_int_equal(narf_lp_validate(lp, narf_lp_bytes(lp)), 0);
	assert_int_equal(narf_lp_count(lp), m->n);
	assert_int_equal(used, malloc_usable_size((void *)lp));
	for (uint32_t i = 0; i < m->n; i++, pos = narf_lp_next(lp, pos)) {
		const unsigned char *s = narf_lp_get_str(lp, pos, buf, &len);
		assert_int_equal(len, m->len[i]);
		assert_memory_equal(s, m->s[i], len);
	}
	assert_int_equal(pos, NARF_LP_NONE);
	pos = narf_lp_last(lp);
	for (uint32_t i = m->n; i-- > 0; pos = narf_lp_prev(lp, pos)) {
		const unsigned char *s = narf_lp_get_str(lp, pos, buf, &len);
		assert_int_equal(len, m->len[i]);
		assert_memory_equal(s, m->s[i], len);
	}
	assert_int_equal(pos, NARF_LP_NONE);
}

static void model_ins(struct model *m, uint32_t at, const char *s, size_t len)
{
	memmove(m->s + at + 1, m->s + at, (m->n - at) * sizeof(m->s[0]));
	memmove(m->len + at + 1, m->len + at, (m->n - at) * sizeof(m->len[0]));
	m->s[at] = malloc(len + 1);
	memcpy(m->s[at], s, len);
	m->len[at] = len;
	m->n++;
}

static void model_del(struct model *m, uint32_t at, uint32_t k)
{
	for (uint32_t i = at; i < at + k; i++)
		free(m->s[i]);
	memmove(m->s + at, m->s + at + k, (m->n - at - k) * sizeof(m->s[0]));
	memmove(m->len + at, m->len + at + k,
	        (m->n - at - k) * sizeof(m->len[0]));
	m->n -= k;
}

/* 100,000 random operations from a fixed seed agree with an array model
 * after every step: contents both ways, count, validity, accounting. */
static void test_random_model(void **state)
{
	static char buf[4200];
	struct model m = {.n = 0};
	unsigned char *lp = mk();

	(void)state;
	for (int step = 0; step < 100000; step++) {
		size_t len = gen(buf);
		uint32_t at = m.n ? (uint32_t)(rnd() % m.n) : 0, pos;
		unsigned op = (unsigned)(rnd() % 8);

		if (m.n >= 200 || (m.n > 0 && op >= 6)) {
			uint32_t k = (uint32_t)(rnd() % 4);
			if (k > m.n - at)
				k = m.n - at;
			if (rnd() % 2) {
				assert_int_equal(
				        narf_lp_delete_range(&lp, &used, at, k),
				        k);
			} else {
				k = k ? 1 : 0;
				pos = narf_lp_seek(lp, (int64_t)at - m.n);
				if (k)
					narf_lp_delete(&lp, &used, &pos);
			}
			model_del(&m, at, k);
		} else if (op == 0 || m.n == 0) {
			assert_int_equal(narf_lp_append(&lp, &used, buf, len),
			                 0);
			model_ins(&m, m.n, buf, len);
		} else if (op == 1) {
			assert_int_equal(narf_lp_prepend(&lp, &used, buf, len),
			                 0);
			model_ins(&m, 0, buf, len);
		} else if (op <= 3) {
			int after = op == 3;
			assert_int_equal(
			        narf_lp_insert(
			                &lp, &used, narf_lp_seek(lp, at),
			                after ? NARF_LP_AFTER : NARF_LP_BEFORE,
			                buf, len, &pos),
			        0);
			assert_int_equal(pos, narf_lp_seek(lp, at + after));
			model_ins(&m, at + after, buf, len);
		} else if (op == 4) {
			pos = narf_lp_seek(lp, at);
			assert_int_equal(
			        narf_lp_replace(&lp, &used, pos, buf, len), 0);
			free(m.s[at]);
			m.s[at] = malloc(len + 1);
			memcpy(m.s[at], buf, len);
			m.len[at] = len;
		} else {
			pos = narf_lp_find(lp, narf_lp_first(lp), m.s[at],
			                   m.len[at], 0);
			uint32_t i = 0;
			while (m.len[i] != m.len[at] ||
			       memcmp(m.s[i], m.s[at], m.len[at]) != 0)
				i++;
			assert_int_equal(pos, narf_lp_seek(lp, i));
		}
		check_model(lp, &m);
	}
	model_del(&m, 0, m.n);
	drop(lp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_empty),
	        cmocka_unit_test(test_encodings),
	        cmocka_unit_test(test_exact_bytes),
	        cmocka_unit_test(test_insert),
	        cmocka_unit_test(test_delete),
	        cmocka_unit_test(test_replace),
	        cmocka_unit_test(test_find),
	        cmocka_unit_test(test_too_large),
	        cmocka_unit_test(test_concat_split),
	        cmocka_unit_test(test_validate),
	        cmocka_unit_test(test_random_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
