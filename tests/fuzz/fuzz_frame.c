/*
 * libFuzzer target for the newline-delimited JSON decoder (common/frame.h).
 *
 * Input layout: byte 0 picks the line limit (bits 0-1) and how many of the
 * following bytes are chunk sizes (bits 2-3, one to four); the rest is the
 * stream. The stream is fed in chunks of those sizes, cycling, and drained
 * after every feed, as the coordinator does after every read. A size of 0
 * feeds nothing, so zero-length reads and draining a decoder that has never
 * buffered a byte are exercised too.
 *
 * Besides memory safety (ASan, UBSan) it checks what callers rely on: every
 * message is an object, an error ends the stream for good, and every message
 * survives narf_frame_encode() and a fresh decode unchanged, on one line.
 * Built by tests/fuzz/run.sh, not by meson.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/errors.h"
#include "common/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const size_t limits[] = {8, 64, 4096, NARF_FRAME_MAX_REQUEST};

/* Abort (a crash libFuzzer reports) unless cond holds. */
static void check(int cond)
{
	if (!cond)
		abort();
}

/* Encode msg, check it is one line, decode it again and compare. */
static void check_round_trip(const json_t *msg)
{
	struct narf_frame_decoder d;
	json_t *back = NULL;
	size_t len = 0;
	char *line = narf_frame_encode(msg, &len);

	check(line != NULL && len > 0);
	check(line[len - 1] == '\n' &&
	      memchr(line, '\n', len) == line + len - 1);
	narf_frame_decoder_init(&d, NARF_FRAME_MAX_REPLY);
	check(narf_frame_feed(&d, line, len) == 0);
	check(narf_frame_next(&d, &back, NULL) == 0 && back != NULL);
	check(json_equal(msg, back));
	json_decref(back);
	check(narf_frame_next(&d, &back, NULL) == 0 && back == NULL);
	narf_frame_decoder_close(&d);
	free(line);
}

/* Take every whole message buffered; returns the first error, or 0. */
static int drain(struct narf_frame_decoder *d)
{
	char errmsg[NARF_ERRMSG_SIZE];

	for (;;) {
		json_t *msg = (json_t *)1;
		int rc = narf_frame_next(d, &msg, errmsg);

		if (rc != 0) {
			check(msg == NULL);
			check(rc == NARF_EPROTO || rc == NARF_ETOODEEP ||
			      rc == NARF_ETOOLARGE);
			return rc;
		}
		if (msg == NULL)
			return 0;
		check(json_is_object(msg));
		check_round_trip(msg);
		json_decref(msg);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct narf_frame_decoder d;
	const uint8_t *sizes;
	size_t nsizes, off, i = 0, idle = 0;
	json_t *msg = NULL;
	int rc = 0;

	if (size < 1)
		return 0;
	nsizes = 1 + ((data[0] >> 2) & 3);
	if (size < 1 + nsizes)
		return 0;
	sizes = data + 1;
	off = 1 + nsizes;
	narf_frame_decoder_init(&d, limits[data[0] & 3]);
	while (rc == 0 && off < size) {
		size_t n = sizes[i++ % nsizes];

		/* All sizes zero: after one round of empty feeds, feed the
		 * rest so the loop ends. */
		if (n == 0 && ++idle > nsizes)
			n = size - off;
		else if (n != 0)
			idle = 0;
		if (n > size - off)
			n = size - off;
		rc = narf_frame_feed(&d, (const char *)data + off, n);
		off += n;
		if (rc != 0)
			check(rc == NARF_ETOOLARGE || rc == NARF_ENOMEM);
		else
			rc = drain(&d);
	}
	if (rc == 0)
		rc = drain(&d);
	if (rc != 0) {
		/* Sticky: the stream stays failed whatever comes next. */
		check(narf_frame_next(&d, &msg, NULL) != 0 && msg == NULL);
		check(narf_frame_feed(&d, "{}\n", 3) != 0);
	}
	narf_frame_decoder_close(&d);
	return 0;
}
