/*
 * RESP2, the Redis protocol: request parsing and reply encoding.
 *
 * The parser is incremental and pure. A connection keeps one
 * struct narf_resp_req per request in progress and calls narf_resp_parse()
 * with everything received so far for that request (buf starts at the
 * request's first byte); the parser remembers how far it got, so a request
 * arriving one byte at a time costs O(n) in total, not O(n^2). Both forms
 * are accepted: multibulk (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) and inline
 * (`GET k\r\n`, typed into a terminal; quoting as redis-cli and Redis's
 * sdssplitargs understand it).
 *
 * Limits are checked as soon as the number that could exceed them is read:
 * a declared bulk length beyond max_bulk or an argument count beyond
 * max_multibulk is an error at once, and nothing is ever allocated for a
 * declared length before its bytes arrive (the `need` hint lets the caller
 * grow its input buffer for large bulks as they stream in, not up front).
 *
 * Errors carry Redis's wording so clients show familiar messages, e.g.
 * "Protocol error: invalid bulk length". After an error the connection must
 * be closed (Redis does the same): the stream can no longer be framed.
 */
#ifndef NARF_RESP_H
#define NARF_RESP_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct narf_resp_limits {
	size_t max_bulk;      /* longest argument, default 512 MiB */
	size_t max_multibulk; /* most arguments in one request, default 1M */
	size_t max_inline;    /* longest inline request line, default 64 KiB */
};

void narf_resp_limits_default(struct narf_resp_limits *lim);

enum {
	NARF_RESP_INCOMPLETE = 0, /* need more bytes */
	NARF_RESP_DONE = 1,       /* a whole request: argc/argv are valid */
	NARF_RESP_ERROR = -1,     /* protocol error: errmsg says what */
	NARF_RESP_EMPTY = 2,      /* a blank inline line; consumed bytes only */
};

/* One request being parsed. Zero-initialise with narf_resp_req_init(). */
struct narf_resp_req {
	/* Results, valid after NARF_RESP_DONE until the next parse/reset: */
	int argc;
	const char **argv; /* owned array; entries point into buf (multibulk)
	                      or into scratch (inline) */
	size_t *argvlen;   /* owned */
	size_t consumed;   /* bytes of buf this request occupied */

	/* Parser state (private). */
	size_t cap;          /* capacity of argv/argvlen */
	size_t *offs;        /* owned: argument offsets into buf */
	size_t pos;          /* bytes of buf already parsed */
	long long multibulk; /* arguments announced, -1 before the header */
	long long bulk;      /* length of the argument being read, or -1 */
	struct narf_buf scratch; /* owned: unescaped inline arguments */
};

void narf_resp_req_init(struct narf_resp_req *r);
/* Forget the finished (or failed) request, keep the allocations. */
void narf_resp_req_reset(struct narf_resp_req *r);
void narf_resp_req_close(struct narf_resp_req *r);

/*
 * Continue parsing the request that starts at buf[0]; len is everything
 * received so far. Returns one of the NARF_RESP_* codes. On INCOMPLETE,
 * *need (may be NULL) receives the total buffer length that would let the
 * parse progress when it is known (a bulk being read), else 0. On ERROR,
 * errmsg (at least 128 bytes) receives the message without the leading '-'
 * ("Protocol error: ..."). buf must not move between calls for one request
 * unless its content up to len is preserved (the parser keeps offsets, not
 * pointers, until DONE).
 */
int narf_resp_parse(struct narf_resp_req *r, const char *buf, size_t len,
                    const struct narf_resp_limits *lim, size_t *need,
                    char *errmsg);

/* --- reply encoding (each returns 0 or NARF_ENOMEM) --------------------- */

int narf_resp_simple(struct narf_buf *b, const char *s);         /* +s */
int narf_resp_error(struct narf_buf *b, const char *s);          /* -s */
int narf_resp_errorf(struct narf_buf *b, const char *fmt, ...)   /* -... */
        __attribute__((format(printf, 2, 3)));
int narf_resp_int(struct narf_buf *b, long long v);              /* :v */
int narf_resp_bulk(struct narf_buf *b, const void *p, size_t n); /* $n */
int narf_resp_bulk_str(struct narf_buf *b, const char *s);
int narf_resp_null(struct narf_buf *b);                          /* $-1 */
int narf_resp_null_array(struct narf_buf *b);                    /* *-1 */
int narf_resp_array(struct narf_buf *b, long long n);            /* *n */
/* A double as Redis prints it for INCRBYFLOAT (%.17Lg, no trailing 0s). */
int narf_resp_bulk_double(struct narf_buf *b, long double v);

#endif /* NARF_RESP_H */
