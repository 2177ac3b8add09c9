/*
 * A growable byte buffer: connection input and output, reply building.
 *
 * Growth doubles the capacity, so appending n bytes in any pieces costs
 * O(n). narf_buf_reserve() fails with NARF_ENOMEM rather than aborting; the
 * buffer is then unchanged.
 */
#ifndef NARF_BUF_H
#define NARF_BUF_H

#include <stddef.h>

struct narf_buf {
	char *data; /* owned; NULL while cap == 0 */
	size_t len;
	size_t cap;
};

void narf_buf_init(struct narf_buf *b);
void narf_buf_close(struct narf_buf *b); /* frees data; b is reusable */

/* Make room for at least extra more bytes after len. */
int narf_buf_reserve(struct narf_buf *b, size_t extra);
int narf_buf_append(struct narf_buf *b, const void *data, size_t n);
/* Drop the first n bytes (n <= len), moving the rest to the front. */
void narf_buf_consume(struct narf_buf *b, size_t n);
/* Give back memory when a big buffer has drained (keeps at most keep). */
void narf_buf_shrink(struct narf_buf *b, size_t keep);

/*
 * A byte string shared by several writers without copies: one reply line
 * queued on many connections (the full map of an epoch, api.c). Each
 * holder owns one reference; the last narf_blob_unref() frees it. Single
 * threaded (the loop's), so the count is a plain integer.
 */
struct narf_blob {
	unsigned refs;
	size_t len;
	char data[]; /* len bytes */
};

/* A blob of len bytes (contents unset) with one reference; NULL on ENOMEM. */
struct narf_blob *narf_blob_create(size_t len);
/* One more reference to b (returned). */
struct narf_blob *narf_blob_ref(struct narf_blob *b);
/* Drop a reference; frees b with the last one. NULL is a no-op. */
void narf_blob_unref(struct narf_blob *b);

#endif /* NARF_BUF_H */
