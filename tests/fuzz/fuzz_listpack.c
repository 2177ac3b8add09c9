/*
 * libFuzzer target for the listpack (common/listpack.h).
 *
 * Every input is used twice. (a) As a listpack from a peer: validate it and,
 * when it passes, walk it forwards and backwards (the same positions both
 * ways, as many as the header counts), read and find every element, then
 * append to and delete from a copy and check it still validates. (b) As a
 * program of operations against an array model: each byte picks an op
 * (append, prepend, insert before/after, replace, delete, delete range,
 * find), the next an index, then a value (a length byte and that many input
 * bytes; 254: a long string; 255: an int64 from 8 bytes, in decimal). After
 * every op the listpack must validate and read the model's elements back
 * both ways. Built by tests/fuzz/run.sh, not by meson.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/listpack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXN 256

static void check(int cond)
{
	if (!cond)
		abort();
}

static void walk_peer(const uint8_t *data, size_t size)
{
	uint32_t *fwd, n = 0, pos, len;
	char buf[NARF_LP_INTBUF];
	unsigned char *copy;

	if (narf_lp_validate(data, size) != 0)
		return;
	fwd = malloc((size / 2 + 1) * sizeof(*fwd)); /* entries take >= 2 B */
	check(fwd != NULL);
	for (pos = narf_lp_first(data); pos != NARF_LP_NONE;
	     pos = narf_lp_next(data, pos)) {
		const unsigned char *s = narf_lp_get_str(data, pos, buf, &len);
		check(n < narf_lp_count(data) && n < size / 2 + 1);
		fwd[n++] = pos;
		check(narf_lp_find(data, narf_lp_first(data), s, len, 0) <=
		      pos);
	}
	check(n == narf_lp_count(data));
	for (pos = narf_lp_last(data); pos != NARF_LP_NONE;
	     pos = narf_lp_prev(data, pos))
		check(n > 0 && fwd[--n] == pos);
	check(n == 0);
	free(fwd);
	copy = malloc(size);
	check(copy != NULL);
	memcpy(copy, data, size);
	check(narf_lp_append(&copy, NULL, "tail", 4) == 0);
	pos = narf_lp_first(copy);
	narf_lp_delete(&copy, NULL, &pos);
	check(narf_lp_validate(copy, narf_lp_bytes(copy)) == 0);
	narf_lp_destroy(copy, NULL);
}

struct model {
	unsigned char *s[MAXN];
	size_t len[MAXN];
	uint32_t n;
};

static void model_ins(struct model *m, uint32_t at, const void *s, size_t len)
{
	memmove(m->s + at + 1, m->s + at, (m->n - at) * sizeof(m->s[0]));
	memmove(m->len + at + 1, m->len + at, (m->n - at) * sizeof(m->len[0]));
	m->s[at] = malloc(len + 1);
	check(m->s[at] != NULL);
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

static void compare(const unsigned char *lp, const struct model *m)
{
	uint32_t pos = narf_lp_first(lp), len;
	char buf[NARF_LP_INTBUF];
	const unsigned char *s;

	check(narf_lp_validate(lp, narf_lp_bytes(lp)) == 0);
	check(narf_lp_count(lp) == m->n);
	for (uint32_t i = 0; i < m->n; i++, pos = narf_lp_next(lp, pos)) {
		s = narf_lp_get_str(lp, pos, buf, &len);
		check(len == m->len[i] && memcmp(s, m->s[i], len) == 0);
	}
	check(pos == NARF_LP_NONE);
	pos = narf_lp_last(lp);
	for (uint32_t i = m->n; i-- > 0; pos = narf_lp_prev(lp, pos)) {
		s = narf_lp_get_str(lp, pos, buf, &len);
		check(len == m->len[i] && memcmp(s, m->s[i], len) == 0);
	}
	check(pos == NARF_LP_NONE);
}

/* The next value of the program into val; its length. */
static size_t value(const uint8_t **p, const uint8_t *end, unsigned char *val)
{
	size_t len = *p < end ? *(*p)++ : 0;

	if (len == 255) {
		uint64_t u = 0;
		for (int i = 0; i < 8 && *p < end; i++)
			u = u << 8 | *(*p)++;
		return (size_t)sprintf((char *)val, "%lld", (long long)u);
	}
	if (len == 254) {
		len = 60 + (size_t)(*p < end ? *(*p)++ : 0) * 20;
		memset(val, 'L', len);
		return len;
	}
	if (len > (size_t)(end - *p))
		len = (size_t)(end - *p);
	memcpy(val, *p, len);
	*p += len;
	return len;
}

static void run_ops(const uint8_t *p, const uint8_t *end)
{
	static unsigned char val[6000];
	struct model m = {.n = 0};
	unsigned char *lp = NULL;
	uint64_t used = 0;

	check(narf_lp_create(&lp, &used) == 0);
	while (p < end) {
		unsigned op = *p++ % 8;
		uint32_t at = p < end ? *p++ : 0, pos;
		size_t len = value(&p, end, val);

		at = m.n ? at % m.n : 0;
		if (m.n == 0 && op >= 2)
			op = 0;
		if (m.n == MAXN && op < 4)
			op = 5;
		if (op == 0 || op == 1) {
			check((op ? narf_lp_prepend : narf_lp_append)(
			              &lp, &used, val, len) == 0);
			model_ins(&m, op ? 0 : m.n, val, len);
		} else if (op == 2 || op == 3) {
			check(narf_lp_insert(
			              &lp, &used, narf_lp_seek(lp, at),
			              op == 3 ? NARF_LP_AFTER : NARF_LP_BEFORE,
			              val, len, &pos) == 0);
			model_ins(&m, at + (op == 3), val, len);
			check(pos == narf_lp_seek(lp, at + (op == 3)));
		} else if (op == 4) {
			check(narf_lp_replace(&lp, &used, narf_lp_seek(lp, at),
			                      val, len) == 0);
			model_del(&m, at, 1);
			model_ins(&m, at, val, len);
		} else if (op == 5) {
			pos = narf_lp_seek(lp, (int64_t)at - m.n);
			narf_lp_delete(&lp, &used, &pos);
			check(pos == narf_lp_seek(lp, at));
			model_del(&m, at, 1);
		} else if (op == 6) {
			uint32_t k = (uint32_t)len % 5;
			k = k > m.n - at ? m.n - at : k;
			check(narf_lp_delete_range(&lp, &used, at,
			                           (uint32_t)len % 5) == k);
			model_del(&m, at, k);
		} else {
			uint32_t i = 0;
			while (i < m.n && (m.len[i] != len ||
			                   memcmp(m.s[i], val, len) != 0))
				i++;
			pos = narf_lp_find(lp, narf_lp_first(lp), val, len, 0);
			check(pos ==
			      (i < m.n ? narf_lp_seek(lp, i) : NARF_LP_NONE));
		}
		compare(lp, &m);
	}
	model_del(&m, 0, m.n);
	narf_lp_destroy(lp, &used);
	check(used == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	walk_peer(data, size);
	run_ops(data, data + size);
	return 0;
}
