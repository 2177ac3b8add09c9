/*
 * libFuzzer target for the RESP request parser and the reply framer
 * (common/resp.h).
 *
 * Input layout: byte 0 gives two chunk sizes (low and high nibble, 0
 * meaning "everything left"), used in turn to feed the stream; byte 1
 * picks small limits (two bits each for max_bulk, max_multibulk and
 * max_inline; its low bit also caps the reply framer's bulks at 64 bytes);
 * the rest is the stream. It is fed as a server reads it:
 * append a chunk, parse every whole request, drop each request's bytes and
 * reset, stop for good at the first error.
 *
 * Besides memory safety (ASan, UBSan) it checks what callers rely on:
 * DONE has argc > 0 within the limits and every argument inside the input
 * buffer (multibulk) or the scratch space (inline); consumed is never 0 or
 * past the data; the need hint points past the data; an error is sticky;
 * every request survives being encoded with the reply encoders and parsed
 * again. And the cut of the stream must not matter: the same stream fed
 * whole gives the same requests, except that a line arriving in pieces may
 * hit a "too big" limit before its end arrives, as in Redis.
 *
 * The same stream is also framed as a peer's reply (RESP2 and RESP3,
 * narf_resp_reply_len()): a reply found whole is found at the same length
 * in its own bytes and is incomplete one byte short, and a stream found
 * incomplete stays incomplete when cut shorter. And every request is
 * re-encoded as a RESP3 push of typed elements, which must frame exactly.
 * Built by tests/fuzz/run.sh, not by meson.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/errors.h"
#include "common/resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DEFAULT ((size_t)-1)
static const size_t bulks[] = {0, 3, 64, DEFAULT};
static const size_t mbulks[] = {1, 2, 16, DEFAULT};
static const size_t inlines[] = {0, 5, 64, DEFAULT};

/* What one run saw: a hash per request, and how it ended. */
struct events {
	uint64_t *h; /* owned */
	size_t n, cap;
	bool toobig; /* ended with a "too big" error */
};

/* Abort (a crash libFuzzer reports) unless cond holds. */
static void check(bool cond)
{
	if (!cond)
		abort();
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;

	while (n-- > 0)
		h = (h ^ *s++) * 1099511628211ULL;
	return h;
}

static void record(struct events *ev, uint64_t h)
{
	if (ev->n == ev->cap) {
		ev->cap = ev->cap ? ev->cap * 2 : 16;
		ev->h = realloc(ev->h, ev->cap * sizeof(*ev->h));
		check(ev->h != NULL);
	}
	ev->h[ev->n++] = h;
}

/* True when p[0..n) lies within base[0..len). */
static bool inside(const char *p, size_t n, const char *base, size_t len)
{
	return p >= base && p <= base + len && n <= len - (size_t)(p - base);
}

/* Encode the request as a client would and check it parses back equal. */
static void check_round_trip(const struct narf_resp_req *r)
{
	struct narf_resp_req back;
	struct narf_buf b;
	char err[128];
	int i;

	narf_buf_init(&b);
	check(narf_resp_array(&b, r->argc) == 0);
	for (i = 0; i < r->argc; i++)
		check(narf_resp_bulk(&b, r->argv[i], r->argvlen[i]) == 0);
	narf_resp_req_init(&back);
	check(narf_resp_parse(&back, b.data, b.len, NULL, NULL, err) ==
	      NARF_RESP_DONE);
	check(back.consumed == b.len && back.argc == r->argc);
	for (i = 0; i < r->argc; i++)
		check(back.argvlen[i] == r->argvlen[i] &&
		      memcmp(back.argv[i], r->argv[i], r->argvlen[i]) == 0);
	narf_resp_req_close(&back);
	narf_buf_close(&b);
}

/* The request as a RESP3 push whose elements' types follow the arguments'
 * lengths; the framer must find exactly its bytes, and not one byte less. */
static void check_resp3_frames(const struct narf_resp_req *r)
{
	struct narf_buf b;
	size_t len = 0;
	int i;

	narf_buf_init(&b);
	check(narf_resp3_push(&b, r->argc) == 0);
	for (i = 0; i < r->argc; i++) {
		const char *p = r->argv[i];
		size_t n = r->argvlen[i];
		char digits[24];

		switch (n % 8) {
		case 0:
			check(narf_resp_bulk(&b, p, n) == 0);
			break;
		case 1:
			check(narf_resp3_verbatim(&b, p, n) == 0);
			break;
		case 2:
			check(narf_resp3_bignum(
			              &b, digits,
			              (size_t)snprintf(digits, sizeof(digits),
			                               "-%zu", n)) == 0);
			break;
		case 3:
			check(narf_resp3_double(
			              &b, n > 0 ? (double)p[0] / 7 : 0) == 0);
			break;
		case 4:
			check(narf_resp3_bool(&b, n & 8) == 0);
			break;
		case 5:
			check(narf_resp3_null(&b) == 0);
			break;
		case 6: /* a set of one, a map of one pair */
			check(narf_resp3_set(&b, 1) == 0);
			check(narf_resp3_map(&b, 1) == 0);
			check(narf_resp_int(&b, (long long)n) == 0);
			check(narf_resp_simple(&b, "x") == 0);
			break;
		default:
			check(narf_resp3_map(&b, 0) == 0);
			break;
		}
	}
	check(narf_resp_reply_len(b.data, b.len, UINT64_MAX, &len) ==
	      NARF_RESP_DONE);
	check(len == b.len);
	check(narf_resp_reply_len(b.data, b.len - 1, UINT64_MAX, &len) ==
	      NARF_RESP_INCOMPLETE);
	narf_buf_close(&b);
}

/* Frame the stream as a reply; check the answer against its own prefixes. */
static void check_reply_len(const char *s, size_t n, uint64_t max)
{
	size_t len = 0, again = 0;
	int rc = narf_resp_reply_len(s, n, max, &len);

	if (rc == NARF_RESP_DONE) {
		check(len > 0 && len <= n);
		check(narf_resp_reply_len(s, len, max, &again) ==
		      NARF_RESP_DONE);
		check(again == len);
		check(narf_resp_reply_len(s, len - 1, max, &again) ==
		      NARF_RESP_INCOMPLETE);
	} else if (rc == NARF_RESP_INCOMPLETE) {
		check(narf_resp_reply_len(s, n / 2, max, &again) ==
		      NARF_RESP_INCOMPLETE);
	} else {
		check(rc == NARF_RESP_ERROR);
	}
}

/* Check a whole request and fold it into a hash. */
static uint64_t check_done(const struct narf_resp_req *r,
                           const struct narf_buf *in,
                           const struct narf_resp_limits *lim)
{
	uint64_t h = fnv(14695981039346656037ULL, "D", 1);
	int i;

	check(r->argc > 0 && (size_t)r->argc <= r->cap);
	for (i = 0; i < r->argc; i++) {
		const char *p = r->argv[i];
		size_t n = r->argvlen[i];

		check(inside(p, n, in->data, r->consumed) ||
		      inside(p, n, r->scratch.data, r->scratch.len));
		h = fnv(h, &n, sizeof(n));
		h = fnv(h, p, n);
	}
	/* Limits bind multibulk requests; inline ones are bounded by their
	 * line, which Redis only limits while its end is missing. */
	if (in->data[0] == '*') {
		check((size_t)r->argc <= lim->max_multibulk);
		for (i = 0; i < r->argc; i++)
			check(r->argvlen[i] <= lim->max_bulk);
	}
	check_round_trip(r);
	check_resp3_frames(r);
	return fnv(h, &r->consumed, sizeof(r->consumed));
}

/*
 * Feed stream in chunks of sizes[0], sizes[1], sizes[0], ... (0 = the
 * rest), parsing after every chunk like a server, and record what comes.
 */
static void run(const char *stream,
                size_t len,
                const size_t sizes[2],
                const struct narf_resp_limits *lim,
                struct events *ev)
{
	struct narf_resp_req r;
	struct narf_buf in;
	size_t off = 0, k = 0;
	bool failed = false;

	narf_resp_req_init(&r);
	narf_buf_init(&in);
	while (off < len && !failed) {
		size_t n = sizes[k++ % 2];

		if (n == 0 || n > len - off)
			n = len - off;
		check(narf_buf_append(&in, stream + off, n) == 0);
		off += n;
		for (;;) {
			char err[128] = "";
			size_t need = 1;
			int rc = narf_resp_parse(&r, in.data, in.len, lim,
			                         &need, err);

			if (rc == NARF_RESP_INCOMPLETE) {
				check(need == 0 || need > in.len);
				break;
			}
			check(need == 0);
			if (rc == NARF_RESP_ERROR) {
				check(strncmp(err, "Protocol error: ", 16) ==
				      0);
				ev->toobig = strstr(err, "too big") != NULL;
				record(ev, fnv(14695981039346656037ULL, err,
				               strlen(err)));
				/* Sticky until reset. */
				check(narf_resp_parse(&r, "PING\r\n", 6, lim,
				                      NULL,
				                      err) == NARF_RESP_ERROR);
				failed = true;
				break;
			}
			check(r.consumed > 0 && r.consumed <= in.len);
			if (rc == NARF_RESP_DONE) {
				record(ev, check_done(&r, &in, lim));
			} else {
				check(rc == NARF_RESP_EMPTY);
				record(ev, r.consumed);
			}
			narf_buf_consume(&in, r.consumed);
			narf_resp_req_reset(&r);
		}
	}
	narf_buf_close(&in);
	narf_resp_req_close(&r);
}

static size_t pick(const size_t *table, unsigned bits, size_t dflt)
{
	return table[bits & 3] == DEFAULT ? dflt : table[bits & 3];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct narf_resp_limits lim, def;
	struct events cut = {0}, whole = {0};
	size_t sizes[2], all[2] = {0, 0};
	const char *stream = (const char *)data + 2;
	size_t i;

	if (size < 2)
		return 0;
	sizes[0] = data[0] & 15;
	sizes[1] = data[0] >> 4;
	narf_resp_limits_default(&def);
	lim.max_bulk = pick(bulks, data[1], def.max_bulk);
	lim.max_multibulk = pick(mbulks, data[1] >> 2, def.max_multibulk);
	lim.max_inline = pick(inlines, data[1] >> 4, def.max_inline);

	check_reply_len(stream, size - 2, data[1] & 1 ? 64 : UINT64_MAX);
	run(stream, size - 2, sizes, &lim, &cut);
	run(stream, size - 2, all, &lim, &whole);
	if (cut.toobig) {
		/* Cut earlier, the same requests up to the error. */
		check(cut.n <= whole.n + 1);
		for (i = 0; i + 1 < cut.n; i++)
			check(cut.h[i] == whole.h[i]);
	} else {
		check(cut.n == whole.n);
		for (i = 0; i < cut.n; i++)
			check(cut.h[i] == whole.h[i]);
	}
	free(cut.h);
	free(whole.h);
	return 0;
}
