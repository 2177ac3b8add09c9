#include "buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"

void narf_buf_init(struct narf_buf *b)
{
	b->data = NULL;
	b->len = b->cap = 0;
}

void narf_buf_close(struct narf_buf *b)
{
	if (b == NULL)
		return;
	free(b->data);
	narf_buf_init(b);
}

int narf_buf_reserve(struct narf_buf *b, size_t extra)
{
	size_t want = b->cap ? b->cap : 256;
	char *p;

	if (extra <= b->cap - b->len)
		return 0;
	if (extra > SIZE_MAX / 2 - b->len)
		return NARF_ENOMEM;
	while (want < b->len + extra)
		want *= 2;
	p = realloc(b->data, want);
	if (p == NULL)
		return NARF_ENOMEM;
	b->data = p;
	b->cap = want;
	return 0;
}

int narf_buf_append(struct narf_buf *b, const void *data, size_t n)
{
	if (n == 0)
		return 0;
	if (narf_buf_reserve(b, n) != 0)
		return NARF_ENOMEM;
	memcpy(b->data + b->len, data, n);
	b->len += n;
	return 0;
}

void narf_buf_consume(struct narf_buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

void narf_buf_shrink(struct narf_buf *b, size_t keep)
{
	char *p;

	if (b->cap <= keep || b->len > keep)
		return;
	if (b->len == 0 && keep == 0) {
		narf_buf_close(b);
		return;
	}
	p = realloc(b->data, keep);
	if (p != NULL) {
		b->data = p;
		b->cap = keep;
	}
}

struct narf_blob *narf_blob_create(size_t len)
{
	struct narf_blob *b = malloc(sizeof(*b) + len);

	if (b == NULL)
		return NULL;
	b->refs = 1;
	b->len = len;
	return b;
}

struct narf_blob *narf_blob_ref(struct narf_blob *b)
{
	b->refs++;
	return b;
}

void narf_blob_unref(struct narf_blob *b)
{
	if (b != NULL && --b->refs == 0)
		free(b);
}
