/*
 * libFuzzer target for the intset (common/intset.h).
 *
 * Every input is used twice. (a) As an intset from a peer: validate it and,
 * when it passes, check what validate promised (strictly increasing, every
 * element found at its index, random draws are members), then add to and
 * remove from a copy and check it still validates. (b) As a program of
 * operations against a sorted array model: each op byte picks add, remove,
 * find or get, and a width (1, 2, 4 or 8 input bytes, sign-extended, so
 * small values repeat and every upgrade is reached). After every op the
 * intset must validate and hold the model's elements in order, and the
 * memory counter must match the allocation. Built by tests/fuzz/run.sh, not
 * by meson.
 */
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/intset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXN 1024

static void check(int cond)
{
	if (!cond)
		abort();
}

static void walk_peer(const uint8_t *data, size_t size)
{
	unsigned char *copy;
	uint64_t rng = size, used = 0;
	int64_t v, prev = 0;
	uint32_t n;
	bool added, added2;

	if (narf_intset_validate(data, size) != 0)
		return;
	n = narf_intset_count(data);
	check(narf_intset_bytes(data) == size);
	for (uint32_t i = 0; i < n; i++) {
		check(narf_intset_get(data, i, &v));
		check(i == 0 || v > prev);
		check(narf_intset_find(data, v));
		prev = v;
	}
	check(!narf_intset_get(data, n, &v));
	for (int k = 0; k < 4 && n > 0; k++)
		check(narf_intset_find(data, narf_intset_random(data, &rng)));
	copy = malloc(size);
	check(copy != NULL);
	memcpy(copy, data, size);
	used = malloc_usable_size(copy);
	check(narf_intset_add(&copy, &used, INT64_MIN, &added) == 0);
	check(narf_intset_add(&copy, &used, 12345, &added2) == 0);
	check(added2 == !narf_intset_find(data, 12345));
	check(narf_intset_remove(&copy, &used, INT64_MIN));
	check(narf_intset_count(copy) == n + added + added2 - 1);
	check(narf_intset_validate(copy, narf_intset_bytes(copy)) == 0);
	check(used == malloc_usable_size(copy));
	narf_intset_destroy(copy, &used);
	check(used == 0);
}

struct model {
	int64_t v[MAXN];
	uint32_t n;
};

/* Index of v in the model, or where it belongs; *found. */
static uint32_t model_pos(const struct model *m, int64_t v, int *found)
{
	uint32_t i = 0;

	while (i < m->n && m->v[i] < v)
		i++;
	*found = i < m->n && m->v[i] == v;
	return i;
}

static void compare(const unsigned char *is, const struct model *m)
{
	int64_t v;

	check(narf_intset_validate(is, narf_intset_bytes(is)) == 0);
	check(narf_intset_count(is) == m->n);
	for (uint32_t i = 0; i < m->n; i++)
		check(narf_intset_get(is, i, &v) && v == m->v[i]);
}

/* The next value: width from the op byte's top bits, then that many
 * bytes, little-endian and sign-extended. */
static int64_t value(const uint8_t **p, const uint8_t *end, unsigned width)
{
	unsigned n = 1u << width; /* 1, 2, 4, 8 */
	uint64_t u = 0;
	unsigned i;

	for (i = 0; i < n && *p < end; i++)
		u |= (uint64_t) * (*p)++ << (8 * i);
	if (i < 8 && i > 0 && (u >> (8 * i - 1)) & 1)
		u |= ~0ull << (8 * i);
	return (int64_t)u;
}

static void run_ops(const uint8_t *p, const uint8_t *end)
{
	static struct model m;
	unsigned char *is = NULL;
	uint64_t used = 0, rng = 1;

	m.n = 0;
	check(narf_intset_create(&is, &used) == 0);
	while (p < end) {
		unsigned op = *p & 7, width = (*p >> 3) & 3;
		int64_t v, got;
		uint32_t at;
		int found;
		bool added;

		p++;
		v = value(&p, end, width);
		at = model_pos(&m, v, &found);
		if (op <= 2 && m.n < MAXN) { /* add, more often */
			check(narf_intset_add(&is, &used, v, &added) == 0);
			check(added == !found);
			if (!found) {
				memmove(m.v + at + 1, m.v + at,
				        (m.n - at) * sizeof(m.v[0]));
				m.v[at] = v;
				m.n++;
			}
		} else if (op <= 4) {
			if (op == 4 && m.n > 0) { /* a member, by index */
				v = m.v[(uint64_t)v % m.n];
				at = model_pos(&m, v, &found);
			}
			check(narf_intset_remove(&is, &used, v) == found);
			if (found) {
				memmove(m.v + at, m.v + at + 1,
				        (m.n - at - 1) * sizeof(m.v[0]));
				m.n--;
			}
		} else if (op == 5) {
			check(narf_intset_find(is, v) == found);
		} else if (op == 6) {
			uint32_t i = (uint32_t)v;
			check(narf_intset_get(is, i, &got) == (i < m.n));
			check(i >= m.n || got == m.v[i]);
		} else if (m.n > 0) {
			got = narf_intset_random(is, &rng);
			model_pos(&m, got, &found);
			check(found);
		}
		check(used == malloc_usable_size(is));
		compare(is, &m);
	}
	narf_intset_destroy(is, &used);
	check(used == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	walk_peer(data, size);
	run_ops(data, data + size);
	return 0;
}
