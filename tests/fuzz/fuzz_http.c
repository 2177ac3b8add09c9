/*
 * libFuzzer target for the /metrics request-head reader (common/http.h).
 *
 * Input layout: byte 0 picks the head limit (bits 0-1: 16, 64, 1024 or
 * NARF_HTTP_HEAD_MAX bytes) and the read size (bits 2-7: 1 to 63 bytes, or
 * 0 = everything at once); the rest is what the client sends. It is fed
 * whole to one request and in reads of that size to another, as the server
 * does after every read.
 *
 * Besides memory safety (ASan, UBSan) it checks what the server relies on:
 * both feeds end in the same state, status and path; DONE and ERROR are
 * final; an error's status is one the server may answer (400, 414, 431,
 * 505); a parsed path is NUL-terminated within NARF_HTTP_PATH_MAX; no more
 * than the limit is ever read. Built by tests/fuzz/run.sh, not by meson.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const size_t limits[] = {16, 64, 1024, NARF_HTTP_HEAD_MAX};

/* Abort (a crash libFuzzer reports) unless cond holds. */
static void check(int cond)
{
	if (!cond)
		abort();
}

static void check_final(const struct narf_http_req *r)
{
	check(r->seen <= r->head_max);
	if (r->state == NARF_HTTP_ERROR)
		check(r->status == 400 || r->status == 414 ||
		      r->status == 431 || r->status == 505);
	if (r->state == NARF_HTTP_DONE) {
		check(memchr(r->path, '\0', sizeof(r->path)) != NULL);
		check(r->method == NARF_HTTP_GET ||
		      r->method == NARF_HTTP_HEAD ||
		      r->method == NARF_HTTP_OTHER);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct narf_http_req whole, parts;
	size_t limit, step, pos = 0;
	const char *text;
	enum narf_http_state st = NARF_HTTP_INCOMPLETE;

	if (size < 1)
		return 0;
	limit = limits[data[0] & 3];
	step = data[0] >> 2;
	text = (const char *)data + 1;
	size--;

	narf_http_req_init(&whole, limit);
	narf_http_req_feed(&whole, text, size);
	check_final(&whole);

	narf_http_req_init(&parts, limit);
	while (pos < size) {
		size_t n = step == 0 || size - pos < step ? size - pos : step;
		enum narf_http_state next =
		        narf_http_req_feed(&parts, text + pos, n);

		if (st != NARF_HTTP_INCOMPLETE)
			check(next == st);
		st = next;
		pos += n;
	}
	check_final(&parts);
	check(parts.state == whole.state);
	if (whole.state == NARF_HTTP_ERROR)
		check(parts.status == whole.status);
	if (whole.state == NARF_HTTP_DONE)
		check(strcmp(parts.path, whole.path) == 0 &&
		      parts.method == whole.method);
	return 0;
}
