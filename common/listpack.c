/*
 * The listpack (listpack.h), byte by byte. All multi-byte numbers are
 * little-endian.
 *
 *   offset 0  total   u32  bytes of the whole listpack, this header included
 *   offset 4  count   u32  number of entries (always exact)
 *   offset 8  entries ...
 *   total-1   0xFF         the end byte
 *
 * An entry is [encoding][payload][back-length]. The first byte says what
 * follows (x: bits of the value or length, y: the next byte's bits):
 *
 *   0xxxxxxx                      integer 0..127, no payload
 *   10xxxxxx                      string of 0..63 bytes
 *   110xxxxx yyyyyyyy             integer -4096..4095 (13-bit two's
 *                                 complement, high bits first)
 *   1110xxxx yyyyyyyy             string of 64..4095 bytes (12-bit length,
 *                                 high bits first)
 *   0xF0 len:u32                  string of up to 2^32-1 bytes
 *   0xF1 i16 | 0xF2 i24 | 0xF3 i32 | 0xF4 i64   wider integers
 *   0xF5..0xFE                    invalid; 0xFF is the end byte
 *
 * Writers always pick the shortest form; readers take any form.
 *
 * The back-length is L, the bytes of encoding plus payload, in 1 to 5 bytes
 * of 7 bits each, written so that it can be read from its last byte
 * backwards: the last byte holds L's lowest 7 bits, the byte before it the
 * next 7, and so on; every byte but the entry's first back-length byte has
 * bit 7 set ("more bits precede me"). L = 200 is stored as 0x01 0xC8. So
 * prev(p) reads the back-length ending at p - 1 and steps back over it and L.
 *
 * Only canonical integers are stored as integers ("123", "-7"): a string
 * with a sign other than '-', a leading zero, "-0", spaces or more than
 * int64 range stays a string, so getting an element back always yields the
 * bytes that were stored.
 */
#include <assert.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/errors.h"
#include "common/listpack.h"

#define HDR 8u
#define END 0xFFu
#define BACKLEN_MAX 5u

static_assert(HDR == 2 * sizeof(uint32_t), "header: total u32, count u32");
static_assert(HDR + 1 == NARF_LP_EMPTY_BYTES, "empty: header and end byte");
/* 5 back-length bytes of 7 bits cover any entry of a <= 4 GiB listpack. */
static_assert((uint64_t)NARF_LP_MAX_BYTES < (1ull << (7 * BACKLEN_MAX)),
              "back-lengths must cover every entry size");

/* --- small helpers ------------------------------------------------------- */

static uint32_t rd32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static void wr32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/* Little-endian signed integer of n bytes. */
static int64_t rdint(const unsigned char *p, unsigned n)
{
	uint64_t u = 0;

	for (unsigned i = 0; i < n; i++)
		u |= (uint64_t)p[i] << (8 * i);
	if (n < 8 && (u >> (8 * n - 1)) & 1)
		u |= ~0ull << (8 * n); /* sign-extend */
	return (int64_t)u;
}

static unsigned backlen_size(uint64_t l)
{
	unsigned n = 1;

	while (l >= 128) {
		l >>= 7;
		n++;
	}
	return n;
}

/* Write L's back-length at p; returns the bytes written. */
static unsigned backlen_write(unsigned char *p, uint64_t l)
{
	unsigned n = backlen_size(l);

	for (unsigned i = 0; i < n; i++) {
		unsigned char b =
		        (unsigned char)((l >> (7 * (n - 1 - i))) & 127);
		p[i] = i == 0 ? b : (unsigned char)(b | 128);
	}
	return n;
}

/* Read the back-length whose last byte is p[-1], looking at no byte before
 * lo; 0 on garbage. *n gets the number of bytes it took. */
static uint64_t backlen_read(const unsigned char *lo,
                             const unsigned char *p,
                             unsigned *n)
{
	uint64_t l = 0;

	for (unsigned i = 0; i < BACKLEN_MAX && p - i > lo; i++) {
		unsigned char b = p[-1 - (long)i];
		l |= (uint64_t)(b & 127) << (7 * i);
		if (!(b & 128)) {
			*n = i + 1;
			return l;
		}
	}
	return 0;
}

int narf_lp_str_to_int(const void *s, size_t len, int64_t *v)
{
	const unsigned char *p = s;
	size_t i = 0;
	uint64_t u = 0, lim = INT64_MAX;

	if (len == 0 || len > 20)
		return 0;
	if (p[0] == '-') {
		lim = (uint64_t)INT64_MAX + 1;
		if (++i == len)
			return 0;
	}
	if (p[i] == '0' && len > 1) /* "0" alone; "00", "01", "-0" are not */
		return 0;
	for (; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return 0;
		if (u > (lim - (p[i] - '0')) / 10)
			return 0;
		u = u * 10 + (p[i] - '0');
	}
	*v = p[0] == '-' ? (int64_t)(0 - u) : (int64_t)u;
	return 1;
}

/* --- entries ------------------------------------------------------------- */

/* Encoding plus payload of the entry at p; assumes a valid entry. */
static uint32_t entry_len(const unsigned char *p)
{
	unsigned char b = p[0];

	if (b < 0x80)
		return 1;
	if (b < 0xC0)
		return 1 + (b & 0x3F);
	if (b < 0xE0)
		return 2;
	if (b < 0xF0)
		return 2 + ((uint32_t)(b & 0x0F) << 8 | p[1]);
	switch (b) {
	case 0xF0:
		return 5 + rd32(p + 1);
	case 0xF1:
		return 3;
	case 0xF2:
		return 4;
	case 0xF3:
		return 5;
	default:
		return 9;
	}
}

static uint32_t entry_size(const unsigned char *p)
{
	uint32_t l = entry_len(p);

	return l + backlen_size(l);
}

/* How an element will be written: as int iv when isint, else as len bytes. */
struct enc {
	int isint;
	int64_t iv;
	unsigned char hdr[9]; /* encoding byte(s) and an integer's payload */
	unsigned hlen;
	size_t len; /* enc + payload */
};

static void encode(struct enc *e, const void *s, size_t len)
{
	e->isint = narf_lp_str_to_int(s, len, &e->iv);
	if (e->isint) {
		int64_t v = e->iv;
		if (v >= 0 && v <= 127) {
			e->hdr[0] = (unsigned char)v;
			e->hlen = 1;
		} else if (v >= -4096 && v <= 4095) {
			uint16_t u = (uint16_t)v & 0x1FFF;
			e->hdr[0] = (unsigned char)(0xC0 | u >> 8);
			e->hdr[1] = (unsigned char)u;
			e->hlen = 2;
		} else {
			unsigned n = v >= INT16_MIN && v <= INT16_MAX   ? 2
			             : v >= -(1 << 23) && v < (1 << 23) ? 3
			             : v >= INT32_MIN && v <= INT32_MAX ? 4
			                                                : 8;
			e->hdr[0] = n == 2   ? 0xF1
			            : n == 3 ? 0xF2
			            : n == 4 ? 0xF3
			                     : 0xF4;
			for (unsigned i = 0; i < n; i++)
				e->hdr[1 + i] =
				        (unsigned char)((uint64_t)v >> (8 * i));
			e->hlen = 1 + n;
		}
		e->len = e->hlen;
		return;
	}
	if (len < 64) {
		e->hdr[0] = (unsigned char)(0x80 | len);
		e->hlen = 1;
	} else if (len < 4096) {
		e->hdr[0] = (unsigned char)(0xE0 | len >> 8);
		e->hdr[1] = (unsigned char)len;
		e->hlen = 2;
	} else {
		e->hdr[0] = 0xF0;
		wr32(e->hdr + 1,
		     (uint32_t)len); /* len was bounded by the caller */
		e->hlen = 5;
	}
	e->len = e->hlen + len;
}

static void write_entry(unsigned char *p, const struct enc *e, const void *s)
{
	memcpy(p, e->hdr, e->hlen);
	if (!e->isint)
		memcpy(p + e->hlen, s, e->len - e->hlen);
	backlen_write(p + e->len, e->len);
}

/* Resize to size bytes, keeping *used right. Shrinking never fails. */
static int resize(unsigned char **lpp, uint64_t *used, size_t size)
{
	unsigned char *p;
	size_t old = malloc_usable_size(*lpp);

	p = realloc(*lpp, size);
	if (p == NULL)
		return size <= old ? 0 : NARF_ENOMEM;
	*lpp = p;
	if (used != NULL)
		*used = *used - old + malloc_usable_size(p);
	return 0;
}

/* --- lifecycle and header ------------------------------------------------ */

int narf_lp_create(unsigned char **lpp, uint64_t *used)
{
	unsigned char *lp = malloc(HDR + 1);

	if (lp == NULL)
		return NARF_ENOMEM;
	wr32(lp, HDR + 1);
	wr32(lp + 4, 0);
	lp[HDR] = END;
	if (used != NULL)
		*used += malloc_usable_size(lp);
	*lpp = lp;
	return 0;
}

void narf_lp_destroy(unsigned char *lp, uint64_t *used)
{
	if (lp != NULL && used != NULL)
		*used -= malloc_usable_size(lp);
	free(lp);
}

uint32_t narf_lp_count(const unsigned char *lp)
{
	return rd32(lp + 4);
}

size_t narf_lp_bytes(const unsigned char *lp)
{
	return rd32(lp);
}

/* --- walks --------------------------------------------------------------- */

uint32_t narf_lp_end(const unsigned char *lp)
{
	return rd32(lp) - 1;
}

uint32_t narf_lp_first(const unsigned char *lp)
{
	return lp[HDR] == END ? NARF_LP_NONE : HDR;
}

uint32_t narf_lp_next(const unsigned char *lp, uint32_t pos)
{
	pos += entry_size(lp + pos);
	return lp[pos] == END ? NARF_LP_NONE : pos;
}

/* The entry ending just before offset `at`, or NONE at the first. */
static uint32_t prev_of(const unsigned char *lp, uint32_t at)
{
	unsigned n = 0;
	uint64_t l;

	if (at <= HDR)
		return NARF_LP_NONE;
	l = backlen_read(lp + HDR, lp + at, &n);
	return at - n - (uint32_t)l;
}

uint32_t narf_lp_prev(const unsigned char *lp, uint32_t pos)
{
	return prev_of(lp, pos);
}

uint32_t narf_lp_last(const unsigned char *lp)
{
	return prev_of(lp, narf_lp_end(lp));
}

uint32_t narf_lp_seek(const unsigned char *lp, int64_t index)
{
	uint32_t n = narf_lp_count(lp), pos;

	if (index < 0)
		index += n;
	if (index < 0 || index >= n)
		return NARF_LP_NONE;
	if (index < n / 2) { /* walk from the nearer end */
		pos = HDR;
		while (index-- > 0)
			pos += entry_size(lp + pos);
	} else {
		pos = narf_lp_last(lp);
		for (int64_t i = n - 1; i > index; i--)
			pos = prev_of(lp, pos);
	}
	return pos;
}

/* --- reads --------------------------------------------------------------- */

void narf_lp_get(const unsigned char *lp, uint32_t pos, struct narf_lp_val *v)
{
	const unsigned char *p = lp + pos;
	unsigned char b = p[0];

	v->s = NULL;
	v->len = 0;
	v->v = 0;
	if (b < 0x80) {
		v->v = b;
	} else if (b < 0xC0) {
		v->s = p + 1;
		v->len = b & 0x3F;
	} else if (b < 0xE0) {
		int64_t u = (int64_t)(b & 0x1F) << 8 | p[1];
		v->v = u >= 4096 ? u - 8192 : u;
	} else if (b < 0xF0) {
		v->s = p + 2;
		v->len = (uint32_t)(b & 0x0F) << 8 | p[1];
	} else if (b == 0xF0) {
		v->s = p + 5;
		v->len = rd32(p + 1);
	} else {
		v->v = rdint(p + 1, entry_len(p) - 1);
	}
}

const unsigned char *narf_lp_get_str(const unsigned char *lp,
                                     uint32_t pos,
                                     char *buf,
                                     uint32_t *len)
{
	struct narf_lp_val v;

	narf_lp_get(lp, pos, &v);
	if (v.s != NULL) {
		*len = v.len;
		return v.s;
	}
	*len = (uint32_t)snprintf(buf, NARF_LP_INTBUF, "%lld", (long long)v.v);
	return (const unsigned char *)buf;
}

uint32_t narf_lp_find(const unsigned char *lp,
                      uint32_t pos,
                      const void *s,
                      size_t len,
                      uint32_t skip)
{
	int64_t iv = 0;
	int isint = narf_lp_str_to_int(s, len, &iv);
	struct narf_lp_val v;

	while (pos != NARF_LP_NONE) {
		narf_lp_get(lp, pos, &v);
		/* An integer entry matches a query of the same value; a string
		 * entry (even a non-canonical one from a peer) by bytes. */
		if (v.s == NULL ? isint && v.v == iv
		                : v.len == len && memcmp(v.s, s, len) == 0)
			return pos;
		pos = narf_lp_next(lp, pos);
		for (uint32_t i = 0; i < skip && pos != NARF_LP_NONE; i++)
			pos = narf_lp_next(lp, pos);
	}
	return NARF_LP_NONE;
}

/* --- mutations ----------------------------------------------------------- */

int narf_lp_insert(unsigned char **lpp,
                   uint64_t *used,
                   uint32_t pos,
                   enum narf_lp_where where,
                   const void *s,
                   size_t len,
                   uint32_t *newpos)
{
	uint32_t total = rd32(*lpp), count = rd32(*lpp + 4);
	struct enc e;
	size_t esize;
	int rc;

	assert(pos >= HDR && pos < total);
	if (len >= NARF_LP_MAX_BYTES || count == UINT32_MAX)
		return NARF_ETOOLARGE;
	encode(&e, s, len);
	esize = e.len + backlen_size(e.len);
	if (esize > NARF_LP_MAX_BYTES - total)
		return NARF_ETOOLARGE;
	if (where == NARF_LP_AFTER)
		pos += entry_size(*lpp + pos);
	rc = resize(lpp, used, total + esize);
	if (rc != 0)
		return rc;
	memmove(*lpp + pos + esize, *lpp + pos, total - pos);
	write_entry(*lpp + pos, &e, s);
	wr32(*lpp, (uint32_t)(total + esize));
	wr32(*lpp + 4, count + 1);
	if (newpos != NULL)
		*newpos = pos;
	return 0;
}

int narf_lp_append(unsigned char **lpp,
                   uint64_t *used,
                   const void *s,
                   size_t len)
{
	return narf_lp_insert(lpp, used, narf_lp_end(*lpp), NARF_LP_BEFORE, s,
	                      len, NULL);
}

int narf_lp_prepend(unsigned char **lpp,
                    uint64_t *used,
                    const void *s,
                    size_t len)
{
	return narf_lp_insert(lpp, used, HDR, NARF_LP_BEFORE, s, len, NULL);
}

int narf_lp_append_int(unsigned char **lpp, uint64_t *used, int64_t v)
{
	char buf[NARF_LP_INTBUF];
	int n = snprintf(buf, sizeof(buf), "%lld", (long long)v);

	return narf_lp_append(lpp, used, buf, (size_t)n);
}

int narf_lp_replace(unsigned char **lpp,
                    uint64_t *used,
                    uint32_t pos,
                    const void *s,
                    size_t len)
{
	uint32_t total = rd32(*lpp), osize = entry_size(*lpp + pos);
	uint32_t tail = pos + osize;
	struct enc e;
	size_t nsize, ntotal;
	int rc;

	if (len >= NARF_LP_MAX_BYTES)
		return NARF_ETOOLARGE;
	encode(&e, s, len);
	nsize = e.len + backlen_size(e.len);
	if (nsize > osize && nsize - osize > NARF_LP_MAX_BYTES - total)
		return NARF_ETOOLARGE;
	ntotal = total - osize + nsize;
	if (nsize > osize) {
		rc = resize(lpp, used, ntotal);
		if (rc != 0)
			return rc;
	}
	memmove(*lpp + pos + nsize, *lpp + tail, total - tail);
	write_entry(*lpp + pos, &e, s);
	wr32(*lpp, (uint32_t)ntotal);
	if (nsize < osize)
		(void)resize(lpp, used, ntotal);
	return 0;
}

/* Remove the n entries in bytes [from, to). */
static void cut(unsigned char **lpp,
                uint64_t *used,
                uint32_t from,
                uint32_t to,
                uint32_t n)
{
	uint32_t total = rd32(*lpp);

	memmove(*lpp + from, *lpp + to, total - to);
	wr32(*lpp, total - (to - from));
	wr32(*lpp + 4, rd32(*lpp + 4) - n);
	(void)resize(lpp, used, total - (to - from));
}

void narf_lp_delete(unsigned char **lpp, uint64_t *used, uint32_t *pos)
{
	cut(lpp, used, *pos, *pos + entry_size(*lpp + *pos), 1);
	if ((*lpp)[*pos] == END)
		*pos = NARF_LP_NONE;
}

uint32_t narf_lp_delete_range(unsigned char **lpp,
                              uint64_t *used,
                              int64_t index,
                              uint32_t n)
{
	uint32_t from = narf_lp_seek(*lpp, index), to, k = 0;

	if (from == NARF_LP_NONE || n == 0)
		return 0;
	for (to = from; k < n && (*lpp)[to] != END; k++)
		to += entry_size(*lpp + to);
	cut(lpp, used, from, to, k);
	return k;
}

int narf_lp_concat(unsigned char **dstp,
                   uint64_t *used,
                   const unsigned char *src,
                   uint32_t *shift)
{
	uint32_t total = rd32(*dstp), count = rd32(*dstp + 4);
	uint32_t add = rd32(src) - NARF_LP_EMPTY_BYTES, n = rd32(src + 4);
	int rc;

	assert(src != *dstp);
	if (add > NARF_LP_MAX_BYTES - total || n > UINT32_MAX - count)
		return NARF_ETOOLARGE;
	rc = resize(dstp, used, (size_t)total + add);
	if (rc != 0)
		return rc;
	/* Entries carry only their own lengths, so they move as bytes. */
	memcpy(*dstp + total - 1, src + HDR, add);
	(*dstp)[total - 1 + add] = END;
	wr32(*dstp, total + add);
	wr32(*dstp + 4, count + n);
	if (shift != NULL)
		*shift = total - 1 - HDR;
	return 0;
}

int narf_lp_split(unsigned char **lpp,
                  uint64_t *used,
                  uint32_t pos,
                  unsigned char **tailp)
{
	uint32_t total = rd32(*lpp), n = 0, moved = total - 1 - pos;
	unsigned char *t;

	assert(pos >= HDR && pos < total);
	for (uint32_t p = pos; (*lpp)[p] != END; p += entry_size(*lpp + p))
		n++;
	t = malloc(NARF_LP_EMPTY_BYTES + (size_t)moved);
	if (t == NULL)
		return NARF_ENOMEM;
	wr32(t, NARF_LP_EMPTY_BYTES + moved);
	wr32(t + 4, n);
	memcpy(t + HDR, *lpp + pos, moved);
	t[HDR + moved] = END;
	if (used != NULL)
		*used += malloc_usable_size(t);
	cut(lpp, used, pos, total - 1, n);
	*tailp = t;
	return 0;
}

/* --- validation ---------------------------------------------------------- */

/* L of the entry at buf[pos..end), or 0 when its encoding is invalid or runs
 * past end. */
static uint64_t checked_len(const unsigned char *buf, size_t pos, size_t end)
{
	size_t avail = end - pos;
	unsigned char b = buf[pos];
	uint64_t l;

	if (b >= 0xF5)
		return 0;
	if ((b >= 0xC0 && b < 0xF0 && avail < 2) || (b == 0xF0 && avail < 5))
		return 0;
	if (b >= 0xF1 && b <= 0xF4)
		l = b == 0xF4 ? 9 : (uint64_t)b - 0xEE;
	else if (b == 0xF0) /* entry_len's u32 sum could wrap here */
		l = 5 + (uint64_t)rd32(buf + pos + 1);
	else
		l = entry_len(buf + pos);
	return l <= avail ? l : 0;
}

int narf_lp_validate(const unsigned char *buf, size_t size)
{
	size_t pos = HDR, end;
	uint32_t n = 0;

	if (buf == NULL || size < HDR + 1 || rd32(buf) != size ||
	    buf[size - 1] != END)
		return NARF_EPROTO;
	end = size - 1;
	while (pos < end) {
		uint64_t l = checked_len(buf, pos, end);
		unsigned bl, got = 0;

		if (l == 0)
			return NARF_EPROTO;
		bl = backlen_size(l);
		if (bl > end - pos - l)
			return NARF_EPROTO;
		pos += l + bl;
		if (backlen_read(buf + HDR, buf + pos, &got) != l || got != bl)
			return NARF_EPROTO;
		if (n++ == UINT32_MAX)
			return NARF_EPROTO;
	}
	return n == rd32(buf + 4) ? 0 : NARF_EPROTO;
}
