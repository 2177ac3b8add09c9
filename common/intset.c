/*
 * The intset (intset.h). Reads and writes go through rd/wr of an explicit
 * little-endian width, which compilers turn into plain loads and stores on
 * little-endian hosts, so the bytes are the format everywhere.
 */
#include <assert.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "common/errors.h"
#include "common/intset.h"
#include "common/rng.h"

#define HDR NARF_INTSET_HDR

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

/* Little-endian signed integer of n bytes at p. */
static int64_t rdint(const unsigned char *p, unsigned n)
{
	uint64_t u = 0;

	for (unsigned i = 0; i < n; i++)
		u |= (uint64_t)p[i] << (8 * i);
	if (n < 8 && (u >> (8 * n - 1)) & 1)
		u |= ~0ull << (8 * n); /* sign-extend */
	return (int64_t)u;
}

static void wrint(unsigned char *p, unsigned n, int64_t v)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (unsigned char)((uint64_t)v >> (8 * i));
}

/* The width v needs. */
static unsigned enc_for(int64_t v)
{
	if (v >= INT16_MIN && v <= INT16_MAX)
		return 2;
	if (v >= INT32_MIN && v <= INT32_MAX)
		return 4;
	return 8;
}

static int64_t at(const unsigned char *is, unsigned enc, uint32_t i)
{
	return rdint(is + HDR + (size_t)i * enc, enc);
}

/* Binary search: true when v is there, *pos its index; else false and *pos
 * the index where it belongs. */
static bool search(const unsigned char *is, int64_t v, uint32_t *pos)
{
	unsigned enc = narf_intset_enc(is);
	uint32_t lo = 0, hi = narf_intset_count(is);

	if (enc_for(v) > enc) { /* beyond every element: first or last */
		*pos = v < 0 ? 0 : hi;
		return false;
	}
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int64_t m = at(is, enc, mid);

		if (m == v) {
			*pos = mid;
			return true;
		}
		if (m < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	*pos = lo;
	return false;
}

/* Resize to size bytes, keeping *used right. Shrinking never fails. */
static int resize(unsigned char **isp, uint64_t *used, size_t size)
{
	unsigned char *p;
	size_t old = malloc_usable_size(*isp);

	p = realloc(*isp, size);
	if (p == NULL)
		return size <= old ? 0 : NARF_ENOMEM;
	*isp = p;
	if (used != NULL)
		*used = *used - old + malloc_usable_size(p);
	return 0;
}

/* --- lifecycle and header ------------------------------------------------ */

int narf_intset_create(unsigned char **isp, uint64_t *used)
{
	unsigned char *is = malloc(HDR);

	if (is == NULL)
		return NARF_ENOMEM;
	wr32(is, 2);
	wr32(is + 4, 0);
	if (used != NULL)
		*used += malloc_usable_size(is);
	*isp = is;
	return 0;
}

void narf_intset_destroy(unsigned char *is, uint64_t *used)
{
	if (is != NULL && used != NULL)
		*used -= malloc_usable_size(is);
	free(is);
}

uint32_t narf_intset_count(const unsigned char *is)
{
	return rd32(is + 4);
}

unsigned narf_intset_enc(const unsigned char *is)
{
	return rd32(is);
}

size_t narf_intset_bytes(const unsigned char *is)
{
	return HDR + (size_t)narf_intset_count(is) * narf_intset_enc(is);
}

/* --- mutations ----------------------------------------------------------- */

/* Widen every element to enc and put v (beyond them all) first or last. */
static int upgrade_add(unsigned char **isp, uint64_t *used, int64_t v)
{
	unsigned old = narf_intset_enc(*isp), enc = enc_for(v);
	uint32_t n = narf_intset_count(*isp);
	size_t first = v < 0 ? 1 : 0; /* v < every element, or > every one */
	unsigned char *is;
	int rc;

	rc = resize(isp, used, HDR + ((size_t)n + 1) * enc);
	if (rc != 0)
		return rc;
	is = *isp;
	/* From the back, so no element is overwritten before it is read. */
	for (uint32_t i = n; i-- > 0;)
		wrint(is + HDR + (i + first) * enc, enc, at(is, old, i));
	wrint(is + HDR + (first ? 0 : (size_t)n * enc), enc, v);
	wr32(is, enc);
	wr32(is + 4, n + 1);
	return 0;
}

int narf_intset_add(unsigned char **isp, uint64_t *used, int64_t v, bool *added)
{
	unsigned enc = narf_intset_enc(*isp);
	uint32_t n = narf_intset_count(*isp), pos;
	unsigned char *is;
	int rc;

	if (added != NULL)
		*added = false;
	if (search(*isp, v, &pos))
		return 0;
	if (n == UINT32_MAX)
		return NARF_ETOOLARGE;
	if (enc_for(v) > enc) {
		rc = upgrade_add(isp, used, v);
	} else {
		rc = resize(isp, used, HDR + ((size_t)n + 1) * enc);
		if (rc == 0) {
			is = *isp;
			memmove(is + HDR + ((size_t)pos + 1) * enc,
			        is + HDR + (size_t)pos * enc,
			        (size_t)(n - pos) * enc);
			wrint(is + HDR + (size_t)pos * enc, enc, v);
			wr32(is + 4, n + 1);
		}
	}
	if (rc == 0 && added != NULL)
		*added = true;
	return rc;
}

bool narf_intset_remove(unsigned char **isp, uint64_t *used, int64_t v)
{
	unsigned enc = narf_intset_enc(*isp);
	uint32_t n = narf_intset_count(*isp), pos;
	unsigned char *is = *isp;

	if (!search(is, v, &pos))
		return false;
	memmove(is + HDR + (size_t)pos * enc,
	        is + HDR + ((size_t)pos + 1) * enc,
	        (size_t)(n - pos - 1) * enc);
	wr32(is + 4, n - 1);
	(void)resize(isp, used, HDR + (size_t)(n - 1) * enc);
	return true;
}

/* --- reads --------------------------------------------------------------- */

bool narf_intset_find(const unsigned char *is, int64_t v)
{
	uint32_t pos;

	return search(is, v, &pos);
}

bool narf_intset_get(const unsigned char *is, uint32_t index, int64_t *v)
{
	if (index >= narf_intset_count(is))
		return false;
	*v = at(is, narf_intset_enc(is), index);
	return true;
}

int64_t narf_intset_random(const unsigned char *is, uint64_t *rng)
{
	uint32_t n = narf_intset_count(is);

	assert(n > 0);
	return at(is, narf_intset_enc(is), (uint32_t)(narf_rng_next(rng) % n));
}

/* --- validation ---------------------------------------------------------- */

int narf_intset_validate(const unsigned char *buf, size_t size)
{
	uint32_t enc, n;
	int64_t prev = 0;

	if (buf == NULL || size < HDR)
		return NARF_EPROTO;
	enc = rd32(buf);
	n = rd32(buf + 4);
	if (enc != 2 && enc != 4 && enc != 8)
		return NARF_EPROTO;
	if ((uint64_t)n * enc != (uint64_t)size - HDR)
		return NARF_EPROTO;
	for (uint32_t i = 0; i < n; i++) {
		int64_t v = at(buf, enc, i);

		if (i > 0 && v <= prev)
			return NARF_EPROTO;
		prev = v;
	}
	return 0;
}
