/*
 * Newline-delimited JSON framing for the coordinator API (docs/protocol.md).
 *
 * The decoder is pure: bytes go in with narf_frame_feed() as they arrive from
 * the socket, split anywhere, and whole messages come out of
 * narf_frame_next(). It enforces the limits before parsing anything: a line
 * longer than the maximum is rejected as soon as the maximum is passed
 * (nothing grows without bound waiting for a newline), and the nesting depth
 * is checked with a byte scan so jansson never recurses deeply.
 */
#ifndef NARF_FRAME_H
#define NARF_FRAME_H

#include <jansson.h>
#include <stddef.h>

#define NARF_FRAME_MAX_REQUEST (1u << 20)
#define NARF_FRAME_MAX_REPLY (64u << 20)
#define NARF_FRAME_MAX_DEPTH 16

struct narf_frame_decoder {
	char *buf; /* owned */
	size_t len;
	size_t cap;
	size_t scanned; /* bytes of buf already known to hold no newline */
	size_t max;     /* longest accepted line, newline excluded */
	int failed; /* sticky NARF_E* code: the stream is unusable after it */
};

void narf_frame_decoder_init(struct narf_frame_decoder *d, size_t max);
void narf_frame_decoder_close(struct narf_frame_decoder *d);

/* Append received bytes. Returns NARF_ETOOLARGE when the line in progress
 * already exceeds the maximum, NARF_ENOMEM on allocation failure. */
int narf_frame_feed(struct narf_frame_decoder *d, const char *data, size_t n);

/*
 * Take the next whole message. On success *out is a new reference to a JSON
 * object (the caller decrefs it), or NULL when no complete line is buffered.
 * Errors: NARF_EPROTO (not JSON, or not an object), NARF_ETOODEEP,
 * NARF_ETOOLARGE; errmsg (NARF_ERRMSG_SIZE bytes, may be NULL) says why.
 * Empty lines are skipped.
 */
int narf_frame_next(struct narf_frame_decoder *d, json_t **out, char *errmsg);

/* Nesting depth of a JSON text by a byte scan that respects strings; returns
 * 0 when depth <= max, NARF_ETOODEEP otherwise. */
int narf_frame_check_depth(const char *text, size_t len, int max);

/* Encode one message as a line ending in '\n'. Returns a malloc'd buffer the
 * caller frees, with its length in *len; NULL on allocation failure. */
char *narf_frame_encode(const json_t *msg, size_t *len);

#endif /* NARF_FRAME_H */
