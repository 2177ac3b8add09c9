/*
 * cachecli's parsers (see parse.h). Each takes the whole input or rejects
 * it: a reply that is not RESP2, a number with trailing junk, a field
 * without its value. Nothing here trusts a declared length before the
 * bytes are there: an array of a million elements announced in ten bytes
 * costs no allocation until its elements arrive.
 */
#include "parse.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/errors.h"
#include "common/flags.h"
#include "common/resp.h"

/* Longest header, status or error line: a simple string longer than this
 * is a peer that cannot frame (Redis caps inline lines at 64 KiB too). */
#define MAX_LINE 65536

_Static_assert(NARF_REPLY_TOO_BIG != NARF_RESP_ERROR &&
                       NARF_REPLY_TOO_BIG != NARF_RESP_DONE &&
                       NARF_REPLY_TOO_BIG != NARF_RESP_INCOMPLETE &&
                       NARF_REPLY_TOO_BIG != NARF_RESP_EMPTY,
               "NARF_REPLY_TOO_BIG is a result of its own");

const struct narf_reply_limits narf_reply_default_limits = {
        .max_depth = 4,
        .max_elems = 1u << 20,
        .max_bulk = 512u << 20,
};

/* Find the CRLF ending the line at p[0..n): its length without CRLF, -1
 * when incomplete, -2 when malformed (a bare CR or LF, or too long). */
static long long line_end(const char *p, size_t n)
{
	size_t max = n < MAX_LINE ? n : MAX_LINE;

	for (size_t i = 0; i < max; i++) {
		if (p[i] == '\n')
			return -2;
		if (p[i] == '\r') {
			if (i + 1 == n)
				return -1;
			return p[i + 1] == '\n' ? (long long)i : -2;
		}
	}
	return n < MAX_LINE ? -1 : -2;
}

/* A decimal with an optional '-', nothing else, within long long. */
static bool parse_ll(const char *p, size_t n, long long *out)
{
	bool neg = n > 0 && p[0] == '-';
	unsigned long long v = 0;
	size_t i = neg;

	if (n == i || n - i > 19)
		return false;
	for (; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (unsigned)(p[i] - '0');
	}
	if (v > (unsigned long long)LLONG_MAX)
		return false;
	*out = neg ? -(long long)v : (long long)v;
	return true;
}

/* A declared length: as parse_ll, without leading zeros ("$01"). */
static bool parse_length(const char *p, size_t n, long long *out)
{
	if (n > 1 && p[0] == '0')
		return false;
	return parse_ll(p, n, out);
}

static int parse_at(const char *buf,
                    size_t len,
                    size_t *pos,
                    unsigned depth,
                    const struct narf_reply_limits *lim,
                    struct narf_reply *out);

/* The elements of an array of n (> 0) at *pos. */
static int parse_elems(const char *buf,
                       size_t len,
                       size_t *pos,
                       long long n,
                       unsigned depth,
                       const struct narf_reply_limits *lim,
                       struct narf_reply *out)
{
	struct narf_reply *e;
	int rv = NARF_RESP_DONE;
	size_t i;

	/* Every element takes at least 3 bytes ("+\r\n"): do not allocate
	 * for elements that cannot all be there yet. */
	if ((unsigned long long)n > (len - *pos) / 3)
		return NARF_RESP_INCOMPLETE;
	e = calloc((size_t)n, sizeof(*e));
	if (e == NULL)
		return NARF_RESP_ERROR;
	for (i = 0; i < (size_t)n; i++) {
		rv = parse_at(buf, len, pos, depth + 1, lim, &e[i]);
		if (rv != NARF_RESP_DONE)
			break;
	}
	if (rv != NARF_RESP_DONE) {
		struct narf_reply tmp = {
		        .type = NARF_REPLY_ARRAY, .n = i, .elems = e};

		narf_reply_free(&tmp);
		return rv;
	}
	out->type = NARF_REPLY_ARRAY;
	out->n = (size_t)n;
	out->elems = e;
	return NARF_RESP_DONE;
}

static int parse_at(const char *buf,
                    size_t len,
                    size_t *pos,
                    unsigned depth,
                    const struct narf_reply_limits *lim,
                    struct narf_reply *out)
{
	const char *p = buf + *pos;
	long long end, v = 0;
	size_t body;

	if (*pos >= len)
		return NARF_RESP_INCOMPLETE;
	end = line_end(p, len - *pos);
	if (end == -1)
		return NARF_RESP_INCOMPLETE;
	if (end < 1)
		return NARF_RESP_ERROR;
	memset(out, 0, sizeof(*out));
	body = *pos + (size_t)end + 2;
	switch (p[0]) {
	case '+':
	case '-':
		out->type = p[0] == '+' ? NARF_REPLY_STATUS : NARF_REPLY_ERROR;
		out->str = p + 1;
		out->len = (size_t)end - 1;
		*pos = body;
		return NARF_RESP_DONE;
	case ':':
		if (!parse_ll(p + 1, (size_t)end - 1, &v))
			return NARF_RESP_ERROR;
		out->type = NARF_REPLY_INT;
		out->integer = v;
		*pos = body;
		return NARF_RESP_DONE;
	case '$':
		if (!parse_length(p + 1, (size_t)end - 1, &v) || v < -1)
			return NARF_RESP_ERROR;
		if (v >= 0 && (unsigned long long)v > lim->max_bulk)
			return NARF_REPLY_TOO_BIG;
		if (v == -1) {
			out->type = NARF_REPLY_NIL;
			*pos = body;
			return NARF_RESP_DONE;
		}
		if (len - body < (size_t)v + 2)
			return NARF_RESP_INCOMPLETE;
		if (buf[body + (size_t)v] != '\r' ||
		    buf[body + (size_t)v + 1] != '\n')
			return NARF_RESP_ERROR;
		out->type = NARF_REPLY_BULK;
		out->str = buf + body;
		out->len = (size_t)v;
		*pos = body + (size_t)v + 2;
		return NARF_RESP_DONE;
	case '*':
		if (!parse_length(p + 1, (size_t)end - 1, &v) || v < -1)
			return NARF_RESP_ERROR;
		if (v >= 0 && (unsigned long long)v > lim->max_elems)
			return NARF_REPLY_TOO_BIG;
		if (v > 0 && depth + 1 > lim->max_depth)
			return NARF_RESP_ERROR;
		*pos = body;
		if (v == -1) {
			out->type = NARF_REPLY_NIL;
			return NARF_RESP_DONE;
		}
		if (v == 0) {
			out->type = NARF_REPLY_ARRAY;
			return NARF_RESP_DONE;
		}
		{
			size_t start = *pos;
			int rv = parse_elems(buf, len, pos, v, depth, lim, out);

			if (rv != NARF_RESP_DONE)
				*pos = start;
			return rv;
		}
	default:
		return NARF_RESP_ERROR;
	}
}

int narf_reply_parse(const char *buf,
                     size_t len,
                     const struct narf_reply_limits *lim,
                     struct narf_reply *out,
                     size_t *consumed)
{
	struct narf_reply r;
	size_t pos = 0;
	int rv;

	if (lim == NULL)
		lim = &narf_reply_default_limits;
	if (buf == NULL || len == 0)
		return NARF_RESP_INCOMPLETE;
	rv = parse_at(buf, len, &pos, 0, lim, &r);
	if (rv != NARF_RESP_DONE)
		return rv;
	*out = r;
	if (consumed != NULL)
		*consumed = pos;
	return NARF_RESP_DONE;
}

void narf_reply_free(struct narf_reply *r)
{
	if (r == NULL || r->type != NARF_REPLY_ARRAY)
		return;
	for (size_t i = 0; i < r->n; i++)
		narf_reply_free(&r->elems[i]);
	free(r->elems);
	r->elems = NULL;
	r->n = 0;
}

bool narf_reply_is_error(const struct narf_reply *r, const char *prefix)
{
	size_t n = strlen(prefix);

	return r->type == NARF_REPLY_ERROR && r->len >= n &&
	       memcmp(r->str, prefix, n) == 0 &&
	       (r->len == n || r->str[n] == ' ');
}

int narf_reply_scan(const struct narf_reply *r,
                    uint64_t *cursor,
                    const struct narf_reply **keys)
{
	const struct narf_reply *c, *k;
	char num[24];

	if (r->type != NARF_REPLY_ARRAY || r->n != 2)
		return NARF_EPROTO;
	c = &r->elems[0];
	k = &r->elems[1];
	if (c->type != NARF_REPLY_BULK || c->len == 0 ||
	    c->len >= sizeof(num) || k->type != NARF_REPLY_ARRAY)
		return NARF_EPROTO;
	memcpy(num, c->str, c->len);
	num[c->len] = '\0';
	if (narf_parse_u64(num, 0, UINT64_MAX, cursor) != 0)
		return NARF_EPROTO;
	for (size_t i = 0; i < k->n; i++)
		if (k->elems[i].type != NARF_REPLY_BULK)
			return NARF_EPROTO;
	*keys = k;
	return 0;
}

/* The value of "field:" at the start of a line, up to the line's end. */
static const char *info_value(const char *text,
                              size_t len,
                              const char *field,
                              size_t *vlen)
{
	size_t flen = strlen(field);
	const char *p = text, *end = text + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;

		if (eol > p && eol[-1] == '\r')
			eol--;
		if ((size_t)(eol - p) > flen && memcmp(p, field, flen) == 0 &&
		    p[flen] == ':') {
			*vlen = (size_t)(eol - p) - flen - 1;
			return p + flen + 1;
		}
		p = nl ? nl + 1 : end;
	}
	return NULL;
}

/* Leading digits of v[0..n) (at least one, at most 19), optionally then a
 * '.' and more digits that are ignored; nothing else. */
static int leading_u64(const char *v, size_t n, uint64_t *out)
{
	uint64_t x = 0;
	size_t i = 0;

	while (i < n && v[i] >= '0' && v[i] <= '9' && i < 19)
		x = x * 10 + (uint64_t)(v[i++] - '0');
	if (i == 0)
		return NARF_EINVAL;
	if (i < n && v[i] == '.') {
		size_t j = i + 1;

		while (j < n && v[j] >= '0' && v[j] <= '9')
			j++;
		if (j == i + 1)
			return NARF_EINVAL;
		i = j;
	}
	if (i != n)
		return NARF_EINVAL;
	*out = x;
	return 0;
}

int narf_info_u64(const char *text,
                  size_t len,
                  const char *field,
                  uint64_t *out)
{
	size_t vlen = 0;
	const char *v;

	if (text == NULL)
		return NARF_EINVAL;
	v = info_value(text, len, field, &vlen);
	if (v == NULL)
		return NARF_EINVAL;
	return leading_u64(v, vlen, out);
}

int narf_info_keys(const char *text, size_t len, uint64_t *out)
{
	size_t vlen = 0, n;
	const char *v;

	if (text == NULL)
		return NARF_EINVAL;
	v = info_value(text, len, "db0", &vlen);
	if (v == NULL) {
		*out = 0;
		return 0;
	}
	if (vlen < 6 || memcmp(v, "keys=", 5) != 0)
		return NARF_EINVAL;
	n = 5;
	while (n < vlen && v[n] != ',')
		n++;
	return leading_u64(v + 5, n - 5, out);
}

/* Is every element of the array r a bulk string, and their count a
 * multiple of per_line? */
static bool lines_shape(const struct narf_reply *r, unsigned per_line)
{
	if (r->type != NARF_REPLY_ARRAY || per_line == 0 || r->n % per_line)
		return false;
	for (size_t i = 0; i < r->n; i++)
		if (r->elems[i].type != NARF_REPLY_BULK)
			return false;
	return true;
}

int narf_reply_format_lines(const struct narf_reply *r,
                            unsigned per_line,
                            size_t *next,
                            size_t max,
                            struct narf_buf *out)
{
	size_t i = *next;

	if (i == 0 && !lines_shape(r, per_line))
		return NARF_EPROTO;
	if (i % per_line != 0 || i > r->n)
		return NARF_EINVAL;
	while (i < r->n && out->len < max) {
		for (unsigned k = 0; k < per_line; k++, i++) {
			const struct narf_reply *e = &r->elems[i];

			if (narf_buf_append(out, e->str, e->len) != 0 ||
			    narf_buf_append(out, k + 1 < per_line ? "\t" : "\n",
			                    1) != 0)
				return NARF_ENOMEM;
		}
	}
	*next = i;
	return 0;
}

int narf_cli_read_all(int fd, size_t max, struct narf_buf *out)
{
	size_t got = 0;

	for (;;) {
		ssize_t n;

		if (narf_buf_reserve(out, 64 * 1024) != 0)
			return NARF_ENOMEM;
		n = read(fd, out->data + out->len,
		         out->cap - out->len < max + 1 - got
		                 ? out->cap - out->len
		                 : max + 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return NARF_EIO;
		if (n == 0)
			return 0;
		out->len += (size_t)n;
		got += (size_t)n;
		if (got > max)
			return NARF_ETOOLARGE;
	}
}
