/*
 * libFuzzer target for the quicklist (common/quicklist.h).
 *
 * The input is a program run against the quicklist and an array model at
 * once. Byte 0 picks the fill (small counts and the 4 KiB byte limit, so
 * that nodes split and merge all the time). Then each op is an op byte, two
 * argument bytes and a value (a length byte and that many input bytes; 254:
 * a long string of 60-5160 bytes, more than a 4 KiB node; 255: an int64
 * from 8 bytes, in decimal): push either end, LINSERT before/after, LSET,
 * pop either end into a buffer of some size, LTRIM, LREM of the value from
 * either end, LPOS with a rank and a maxlen, LRANGE, an iterator walk, and
 * a rebuild into a new list (a sync). After every op the list must verify,
 * have the model's count and read the model's elements both ways. At the
 * end it is freed in steps of the last argument and used must be 0.
 * Built by tests/fuzz/run.sh, not by meson.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/errors.h"
#include "common/quicklist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXN 600

static void check(int cond)
{
	if (!cond)
		abort();
}

struct model {
	unsigned char *s[MAXN];
	size_t len[MAXN];
	int64_t n;
};

static void model_ins(struct model *m, int64_t at, const void *s, size_t len)
{
	memmove(m->s + at + 1, m->s + at, (m->n - at) * sizeof(m->s[0]));
	memmove(m->len + at + 1, m->len + at, (m->n - at) * sizeof(m->len[0]));
	m->s[at] = malloc(len + 1);
	check(m->s[at] != NULL);
	memcpy(m->s[at], s, len);
	m->len[at] = len;
	m->n++;
}

static void model_del(struct model *m, int64_t at, int64_t k)
{
	for (int64_t i = at; i < at + k; i++)
		free(m->s[i]);
	memmove(m->s + at, m->s + at + k, (m->n - at - k) * sizeof(m->s[0]));
	memmove(m->len + at, m->len + at + k,
	        (m->n - at - k) * sizeof(m->len[0]));
	m->n -= k;
}

static int model_eq(const struct model *m, int64_t i, const void *s, size_t l)
{
	return m->len[i] == l && memcmp(m->s[i], s, l) == 0;
}

/* The iterator's element is the model's element i. */
static void check_at(const struct narf_ql_iter *it,
                     const struct model *m,
                     int64_t i)
{
	char buf[NARF_LP_INTBUF];
	uint32_t len;
	const unsigned char *s = narf_ql_iter_str(it, buf, &len);

	check(it->node != NULL && it->index == i && model_eq(m, i, s, len));
}

static void compare(struct narf_ql *ql, const struct model *m)
{
	struct narf_ql_iter it;
	int64_t i = 0;
	int ok;

	check(narf_ql_verify(ql) == 0);
	check(narf_ql_count(ql) == (uint64_t)m->n);
	for (ok = narf_ql_first(ql, &it); ok; ok = narf_ql_iter_next(&it))
		check_at(&it, m, i++);
	check(i == m->n);
	for (ok = narf_ql_last(ql, &it); ok; ok = narf_ql_iter_next(&it))
		check_at(&it, m, --i);
	check(i == 0);
}

struct range_ctx {
	const struct model *m;
	int64_t i;
};

static void range_cb(void *arg, const struct narf_lp_val *v)
{
	struct range_ctx *c = arg;
	char buf[NARF_LP_INTBUF];
	int n;

	if (v->s != NULL) {
		check(model_eq(c->m, c->i++, v->s, v->len));
		return;
	}
	n = snprintf(buf, sizeof(buf), "%lld", (long long)v->v);
	check(model_eq(c->m, c->i++, buf, (size_t)n));
}

/* A model index from a Redis index (negative from the tail). */
static int64_t norm(const struct model *m, int64_t i)
{
	return i < 0 ? m->n + i : i;
}

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

/* LREM: up to |count| elements equal to val (all for 0), from the tail
 * when count < 0. */
static void op_lrem(struct narf_ql *ql,
                    struct model *m,
                    int count,
                    const unsigned char *val,
                    size_t len)
{
	struct narf_ql_iter it;
	int left = count < 0 ? -count : count, ok;
	int64_t i;

	ok = count < 0 ? narf_ql_last(ql, &it) : narf_ql_first(ql, &it);
	while (ok && (count == 0 || left > 0)) {
		if (!narf_ql_iter_eq(&it, val, len)) {
			ok = narf_ql_iter_next(&it);
			continue;
		}
		i = it.index;
		check(model_eq(m, i, val, len));
		model_del(m, i, 1);
		ok = narf_ql_iter_del(&it);
		check(!ok || it.index == (count < 0 ? i - 1 : i));
		left--;
	}
	for (i = 0; count == 0 && i < m->n; i++) /* none was missed */
		check(!model_eq(m, i, val, len));
}

/* LPOS: compare narf_ql_find with a scan of the model. */
static void op_lpos(struct narf_ql *ql,
                    const struct model *m,
                    int64_t rank,
                    uint64_t maxlen,
                    const unsigned char *val,
                    size_t len)
{
	struct narf_ql_iter it;
	uint64_t left = rank < 0 ? 0 - (uint64_t)rank : (uint64_t)rank;
	int64_t want = -1, seen = 0;
	int64_t i = rank < 0 ? m->n - 1 : 0, step = rank < 0 ? -1 : 1;

	for (; i >= 0 && i < m->n && (maxlen == 0 || seen < (int64_t)maxlen);
	     i += step, seen++)
		if (model_eq(m, i, val, len) && --left == 0) {
			want = i;
			break;
		}
	if (narf_ql_find(ql, val, len, rank, maxlen, &it))
		check_at(&it, m, want);
	else
		check(want == -1 && it.node == NULL);
}

/* A sync: read every element out and push it into a new list. */
static struct narf_ql *rebuild(struct narf_ql *ql, uint64_t *used)
{
	struct narf_ql *copy = NULL;
	struct narf_ql_iter it;
	char buf[NARF_LP_INTBUF];
	const unsigned char *s;
	uint32_t len;

	check(narf_ql_create(&copy, ql->fill, used) == 0);
	for (int ok = narf_ql_first(ql, &it); ok; ok = narf_ql_iter_next(&it)) {
		s = narf_ql_iter_str(&it, buf, &len);
		check(narf_ql_push(copy, NARF_QL_TAIL, s, len) == 0);
	}
	narf_ql_destroy(ql);
	return copy;
}

static void run_op(struct narf_ql **qlp,
                   struct model *m,
                   unsigned op,
                   uint8_t a,
                   uint8_t b,
                   const unsigned char *val,
                   size_t len)
{
	static unsigned char out[6000];
	struct narf_ql *ql = *qlp;
	struct narf_ql_iter it;
	int64_t at = m->n ? (a | b << 8) % m->n : 0, sa = (int8_t)a;
	int64_t sb = (int8_t)b, s, e;
	size_t got;

	if (m->n == 0 && op >= 2 && op <= 4)
		op = op % 2;
	if (m->n == MAXN && op <= 3)
		op = 7;
	switch (op) {
	case 0:
	case 1:
		check(narf_ql_push(ql, op, val, len) == 0);
		model_ins(m, op ? m->n : 0, val, len);
		break;
	case 2:
	case 3:
		check(narf_ql_index(ql, at, a & 1, &it));
		check(narf_ql_insert(ql, &it, op == 3, val, len) == 0);
		model_ins(m, at + (op == 3), val, len);
		break;
	case 4:
		check(narf_ql_set(ql, at - (b & 1 ? m->n : 0), val, len) == 0);
		model_del(m, at, 1);
		model_ins(m, at, val, len);
		break;
	case 5:
	case 6: { /* pop into a buffer of len * 20 bytes */
		int64_t i = op == 5 ? 0 : m->n - 1;
		int rc = narf_ql_pop(ql, op - 5, a & 1 ? out : NULL, len * 20,
		                     &got);
		if (m->n == 0) {
			check(rc == NARF_EINVAL);
		} else if ((a & 1) && m->len[i] > len * 20) {
			check(rc == NARF_ETOOLARGE && got == m->len[i]);
		} else {
			check(rc == 0 &&
			      (!(a & 1) || model_eq(m, i, out, got)));
			model_del(m, i, 1);
		}
		break;
	}
	case 7: /* LTRIM sa sb */
		s = norm(m, sa) < 0 ? 0 : norm(m, sa);
		e = norm(m, sb) >= m->n ? m->n - 1 : norm(m, sb);
		if (s > e || s >= m->n) {
			check(narf_ql_del_range(ql, 0, UINT64_MAX) ==
			      (uint64_t)m->n);
			model_del(m, 0, m->n);
			break;
		}
		check(narf_ql_del_range(ql, e + 1, UINT64_MAX) ==
		      (uint64_t)(m->n - e - 1));
		model_del(m, e + 1, m->n - e - 1);
		check(narf_ql_del_range(ql, 0, (uint64_t)s) == (uint64_t)s);
		model_del(m, 0, s);
		break;
	case 8:
		op_lrem(ql, m, (int)sa % 4, val, len);
		break;
	case 9:
		op_lpos(ql, m, sa ? sa : INT64_MIN, b % 8, val, len);
		break;
	case 10: { /* LRANGE sa sb */
		struct range_ctx c = {m, 0};
		s = norm(m, sa) < 0 ? 0 : norm(m, sa);
		e = norm(m, sb) >= m->n ? m->n - 1 : norm(m, sb);
		c.i = s;
		check(narf_ql_range(ql, sa, sb, range_cb, &c) ==
		      (uint64_t)(s > e ? 0 : e - s + 1));
		break;
	}
	case 11: { /* walk b % 16 steps from at, either way */
		int ok = narf_ql_index(ql, at, a & 1, &it);
		for (int k = 0; ok && k < b % 16; k++) {
			check_at(&it, m, at);
			at += a & 1 ? -1 : 1;
			ok = narf_ql_iter_next(&it);
		}
		check(ok || (m->n ? at < 0 || at >= m->n : at == 0));
		break;
	}
	default:
		*qlp = rebuild(ql, ql->used);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int fills[] = {1, 2, 3, 4, 7, 0, -1, -2};
	static unsigned char val[6000];
	const uint8_t *p = data, *end = data + size;
	struct model m = {.n = 0};
	struct narf_ql *ql = NULL;
	uint64_t used = 0;
	uint8_t a = 0, b = 0;

	if (size == 0)
		return 0;
	check(narf_ql_create(&ql, fills[*p++ % 8], &used) == 0);
	while (p < end) {
		unsigned op = *p++ % 13;
		size_t len;

		a = p < end ? *p++ : 0;
		b = p < end ? *p++ : 0;
		len = value(&p, end, val);
		run_op(&ql, &m, op, a, b, val, len);
		compare(ql, &m);
	}
	model_del(&m, 0, m.n);
	while (!narf_ql_free_step(ql, b % 4 + 1u))
		;
	check(used == 0);
	return 0;
}
