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

/*
 * Decode the reply at buf[0..len). Returns NARF_RESP_DONE with *out filled
 * (free it with narf_reply_free()) and *consumed (may be NULL) set to the
 * reply's length; NARF_RESP_INCOMPLETE when buf ends before the reply does;
 * NARF_RESP_ERROR for anything that is not RESP2 or exceeds lim (NULL: the
 * default limits), or when out of memory. *out is untouched unless DONE.
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
 * Read everything from fd into out (appended), at most max bytes. Returns 0,
 * NARF_ETOOLARGE when fd holds more than max bytes (out then holds max + 1
 * bytes: what was read before giving up), NARF_EIO on a read error, or
 * NARF_ENOMEM.
 */
int narf_cli_read_all(int fd, size_t max, struct narf_buf *out);

#endif /* NARF_CLI_PARSE_H */
