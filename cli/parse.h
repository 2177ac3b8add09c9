/*
 * Everything cachecli reads from outside that is not JSON: RESP replies from
 * data nodes (decoded into a small tree), the text of INFO, a -MOVED error,
 * the shape of a SCAN reply, and a value read from standard input.
 *
 * This module does no networking and keeps no state, so the unit tests
 * (tests/unit/test_cliparse.c) feed it truncated, oversized and malformed
 * input directly. Decoded strings point into the caller's buffer: the buffer
 * must outlive the tree.
 */
#ifndef NARF_CLI_PARSE_H
#define NARF_CLI_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/map.h"

enum narf_reply_type {
	NARF_REPLY_STATUS, /* +OK */
	NARF_REPLY_ERROR,  /* -ERR ...: str is the text after '-' */
	NARF_REPLY_INT,    /* :42 */
	NARF_REPLY_BULK,   /* $3 foo */
	NARF_REPLY_NIL,    /* $-1 or *-1 */
	NARF_REPLY_ARRAY,  /* *2 ... */
};

/* One decoded reply. */
struct narf_reply {
	enum narf_reply_type type;
	long long integer;        /* INT */
	const char *str;          /* borrowed (points into the input):
	                             STATUS, ERROR, BULK */
	size_t len;               /* of str */
	size_t n;                 /* ARRAY: elements */
	struct narf_reply *elems; /* owned: ARRAY elements */
};

/* Limits of narf_reply_parse(): nesting, elements per array, bytes per
 * bulk. cachecli's replies are at most two levels deep (SCAN). */
struct narf_reply_limits {
	unsigned max_depth; /* arrays within arrays: [[x]] is 2 */
	size_t max_elems;
	size_t max_bulk;
};

/* The limits cachecli uses: depth 4, 1M elements, 512 MiB per bulk. */
extern const struct narf_reply_limits narf_reply_default_limits;

/* narf_reply_parse()'s result for RESP2 that is well formed so far but
 * announces an array of more than lim->max_elems elements or a bulk longer
 * than lim->max_bulk: a reply too big for cachecli, not a peer speaking
 * nonsense (distinct from every NARF_RESP_* result). */
#define NARF_REPLY_TOO_BIG (-2)

/*
 * Decode the reply at buf[0..len). Returns NARF_RESP_DONE with *out filled
 * (free it with narf_reply_free()) and *consumed (may be NULL) set to the
 * reply's length; NARF_RESP_INCOMPLETE when buf ends before the reply does;
 * NARF_REPLY_TOO_BIG (above) as soon as an over-limit header is read;
 * NARF_RESP_ERROR for anything that is not RESP2, nests deeper than lim
 * allows (lim NULL: the default limits), or when out of memory. *out is
 * untouched unless DONE.
 */
int narf_reply_parse(const char *buf,
                     size_t len,
                     const struct narf_reply_limits *lim,
                     struct narf_reply *out,
                     size_t *consumed);

/* Free what r owns (its array elements); r itself may be on the stack. */
void narf_reply_free(struct narf_reply *r);

/* Is r an error reply whose text starts with the word prefix ("MOVED")? */
bool narf_reply_is_error(const struct narf_reply *r, const char *prefix);

/*
 * A SCAN reply: [cursor as a decimal bulk, [key, ...]]. Sets *cursor and
 * *keys (borrowed: an ARRAY whose elements are all BULK). Returns 0 or
 * NARF_EPROTO for any other shape.
 */
int narf_reply_scan(const struct narf_reply *r,
                    uint64_t *cursor,
                    const struct narf_reply **keys);

/*
 * A numeric field of INFO's text ("name:value" lines ending in CRLF or LF):
 * "used_memory:1234" -> 1234. A fraction ("12.50", as Redis prints some
 * rates) is cut to its integer part. Returns 0, or NARF_EINVAL when the
 * field is absent or its value is not a number.
 */
int narf_info_u64(const char *text,
                  size_t len,
                  const char *field,
                  uint64_t *out);

/* Keys in INFO keyspace's "db0:keys=N,expires=..." line; an INFO without
 * the line (an empty node) has 0 keys. NARF_EINVAL when the line is
 * there but malformed. */
int narf_info_keys(const char *text, size_t len, uint64_t *out);

/*
 * The lines `cachecli get` prints for a collection: r is the reply of
 * HGETALL or ZRANGE ... WITHSCORES (per_line 2: "field<TAB>value\n",
 * "member<TAB>score\n") or of SMEMBERS or LRANGE (per_line 1:
 * "member\n"). Bytes are copied as they are: a newline or tab inside an
 * element is not escaped (docs/cachecli.md says why).
 *
 * Appends to out the lines from element *next on, stopping at the end of
 * the first line that takes out->len to max or beyond (so a caller prints
 * a large reply in pieces), and advances *next; r is done when *next ==
 * r->n. Start with *next = 0: that first call checks the whole shape
 * before anything is appended. Returns 0; NARF_EPROTO when r is not an
 * array of bulk strings whose count is a multiple of per_line;
 * NARF_EINVAL for a *next that is not the start of a line of r;
 * NARF_ENOMEM (out then holds part of a line).
 */
int narf_reply_format_lines(const struct narf_reply *r,
                            unsigned per_line,
                            size_t *next,
                            size_t max,
                            struct narf_buf *out);

/*
 * Read everything from fd into out (appended), at most max bytes. Returns 0,
 * NARF_ETOOLARGE when fd holds more than max bytes (out then holds max + 1
 * bytes: what was read before giving up), NARF_EIO on a read error, or
 * NARF_ENOMEM.
 */
int narf_cli_read_all(int fd, size_t max, struct narf_buf *out);

#endif /* NARF_CLI_PARSE_H */
