/*
 * RESP, the Redis protocol: request parsing and reply encoding (RESP2, and
 * the types RESP3 adds for replies).
 *
 * The parser is incremental and pure. A connection keeps one
 * struct narf_resp_req per request in progress and calls narf_resp_parse()
 * with everything received so far for that request (buf starts at the
 * request's first byte); the parser remembers how far it got, so a request
 * arriving one byte at a time costs O(n) in total, not O(n^2). Both forms
 * are accepted, told apart by the first byte as Redis does: multibulk
 * (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) and inline (`GET k\r\n`, typed into a
 * terminal; quoting as redis-cli and Redis's sdssplitargs understand it).
 *
 * Limits are checked as soon as the number that could exceed them is read:
 * a declared bulk length beyond max_bulk or an argument count beyond
 * max_multibulk is an error at once, and nothing is ever allocated for a
 * declared length before its bytes arrive (the `need` hint lets the caller
 * grow its input buffer for large bulks as they stream in, not up front).
 * The argument arrays grow by doubling as arguments arrive.
 *
 * Errors carry Redis's wording so clients show familiar messages, e.g.
 * "Protocol error: invalid bulk length". After an error the connection must
 * be closed (Redis does the same): the stream can no longer be framed.
 *
 * A `*<n>` header with n <= 0 (`*0`, `*-1`, `*-10`, down to LLONG_MIN) is
 * skipped as Redis 7.0 skips it: NARF_RESP_EMPTY, and the next request
 * follows. `*-0`, `*00`, `*+1` and `*-` are "invalid multibulk length", as
 * Redis's string2ll() refuses them.
 *
 * Where Redis 7.0 is lax we are strict, on purpose:
 *  - A bulk payload must be followed by CRLF ("Protocol error: expected
 *    CRLF after bulk"); Redis skips any two bytes.
 *  - A `*` or `$` line must end in CRLF: a '\r' followed by anything else
 *    makes the number invalid; Redis skips the byte after the '\r'.
 *  - A line that should start with '$' fails as soon as its first byte
 *    arrives; Redis waits for the whole line first.
 *  - Redis finds line ends with strchr(), so a NUL byte hides the rest of
 *    its query buffer; we search the bytes. In an inline line a NUL still
 *    ends the arguments (as sdssplitargs sees it), the line ends at '\n'.
 * The "too big ... count string" checks use max_inline, as Redis uses
 * PROTO_INLINE_MAX_SIZE for all three.
 */
#ifndef NARF_RESP_H
#define NARF_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct narf_resp_limits {
	size_t max_bulk;      /* longest argument, default 512 MiB */
	size_t max_multibulk; /* most arguments in one request, default 1M */
	size_t max_inline;    /* longest inline request line (or `*`/`$` line
	                         without its CRLF), default 64 KiB */
	/* Redis's limits before AUTH (0: none; the defaults set none): a
	 * multibulk count over noauth_multibulk is "Protocol error:
	 * unauthenticated multibulk length", a bulk over noauth_bulk
	 * "Protocol error: unauthenticated bulk length". As in Redis 7.0,
	 * the count is checked against these before max_multibulk (only a
	 * count that is not a number or over INT_MAX is "invalid" first) and
	 * a bulk after max_bulk. Inline requests have no such limit there
	 * (max_inline bounds them). */
	size_t noauth_multibulk;
	size_t noauth_bulk;
};

void narf_resp_limits_default(struct narf_resp_limits *lim);

enum {
	NARF_RESP_INCOMPLETE = 0, /* need more bytes */
	NARF_RESP_DONE = 1,       /* a whole request: argc/argv are valid */
	NARF_RESP_ERROR = -1,     /* protocol error: errmsg says what */
	NARF_RESP_EMPTY = 2,      /* blank inline line, `*<n>` with n <= 0:
	                             nothing to run; consumed bytes only */
};

/* One request being parsed. Zero-initialise with narf_resp_req_init(). */
struct narf_resp_req {
	/* Results, valid after NARF_RESP_DONE until the next parse/reset: */
	int argc;          /* while parsing: arguments read so far */
	const char **argv; /* owned array; entries point into buf (multibulk,
	                      not NUL-terminated) or into scratch (inline,
	                      NUL-terminated) */
	size_t *argvlen;   /* owned */
	size_t consumed;   /* bytes of buf this request occupied (also after
	                      NARF_RESP_EMPTY) */

	/* Parser state (private). */
	size_t cap;          /* capacity of argv/argvlen/offs */
	size_t *offs;        /* owned: argument offsets into buf or scratch */
	size_t pos;          /* bytes of buf already parsed */
	size_t scan;         /* end of the part of the current line already
	                        searched for its terminator */
	long long multibulk; /* arguments announced, -1 before the header,
	                        -2 after an error */
	long long bulk;      /* length of the argument being read, or -1 */
	struct narf_buf scratch; /* owned: unescaped inline arguments */
};

void narf_resp_req_init(struct narf_resp_req *r);
/* Has r nothing parsed (just initialised or reset)? */
bool narf_resp_req_fresh(const struct narf_resp_req *r);
/*
 * Forget the finished (or failed) request so r can parse the next one.
 * Small allocations are kept for reuse; argument arrays and scratch space
 * grown by an unusually large request are freed, so one huge request does
 * not pin memory for the rest of the connection.
 */
void narf_resp_req_reset(struct narf_resp_req *r);
/* Free everything r owns; r may be NULL. r can be initialised again. */
void narf_resp_req_close(struct narf_resp_req *r);

/*
 * Continue parsing the request that starts at buf[0]; len is everything
 * received so far (bytes of following pipelined requests may be present
 * and are left alone). lim may be NULL for the defaults. Returns one of the
 * NARF_RESP_* codes. On INCOMPLETE, *need (may be NULL) receives the total
 * buffer length that would let the parse progress when it is known (a bulk
 * being read: its payload offset + its length + 2), else 0. On ERROR,
 * errmsg (at least 128 bytes) receives the message without the leading '-'
 * or "ERR " ("Protocol error: ..."); running out of memory is an ERROR too,
 * "out of memory parsing the request". An ERROR is sticky until reset.
 * buf must not move between calls for one request unless its content up to
 * len is preserved (the parser keeps offsets, not pointers, until DONE).
 */
int narf_resp_parse(struct narf_resp_req *r,
                    const char *buf,
                    size_t len,
                    const struct narf_resp_limits *lim,
                    size_t *need,
                    char *errmsg);

/*
 * --- replies from a peer -------------------------------------------------
 * The length of the whole reply at buf[0], RESP2 or RESP3 (simple string,
 * error, integer, bulk, array; null `_`, boolean `#t`/`#f`, double `,`, big
 * number `(`, blob error `!`, verbatim `=`, map `%`, set `~`, push `>` and
 * attribute `|`, which frames with the reply after it), aggregates to any
 * depth: an aggregate only adds its elements to those still to read, so
 * nesting costs no stack. Returns NARF_RESP_DONE with *len set,
 * NARF_RESP_INCOMPLETE, or NARF_RESP_ERROR for bytes that are not RESP or
 * declare more than max_bulk bytes or elements (a peer that cannot frame).
 * Only framing is checked: a double's text is not parsed.
 */
int narf_resp_reply_len(const char *buf,
                        size_t n,
                        uint64_t max_bulk,
                        size_t *len);

/* A request as a multibulk array (how peers forward commands). */
int narf_resp_command(struct narf_buf *b,
                      int argc,
                      const char *const *argv,
                      const size_t *argvlen);

/*
 * --- reply encoding -----------------------------------------------------
 * Each appends one reply to b and returns 0, or NARF_ENOMEM leaving b
 * unchanged. '\r' and '\n' in simple strings and errors become spaces (as
 * Redis's addReplyErrorFormat does), so a reply can never break framing.
 */

int narf_resp_simple(struct narf_buf *b, const char *s);       /* +s */
int narf_resp_error(struct narf_buf *b, const char *s);        /* -s */
int narf_resp_errorf(struct narf_buf *b, const char *fmt, ...) /* -... */
        __attribute__((format(printf, 2, 3)));
int narf_resp_int(struct narf_buf *b, long long v);              /* :v */
int narf_resp_bulk(struct narf_buf *b, const void *p, size_t n); /* $n */
int narf_resp_bulk_str(struct narf_buf *b, const char *s);
/* Write u in decimal at dst (room for 20 digits, no terminator); returns
 * the length. snprintf's speed matters on the replication stream. */
size_t narf_format_u64(char *dst, uint64_t u);
/* The same for a signed value (up to 20 bytes, with the sign). */
size_t narf_format_ll(char *dst, long long v);
int narf_resp_null(struct narf_buf *b);               /* $-1 */
int narf_resp_null_array(struct narf_buf *b);         /* *-1 */
int narf_resp_array(struct narf_buf *b, long long n); /* *n */
/*
 * A long double as a bulk, printed as Redis prints INCRBYFLOAT results
 * (ld2string with LD_STR_HUMAN): "%.17Lf", then trailing zeros and a
 * trailing '.' removed, "-0" written as "0"; 10.5 -> "10.5", 3e3 -> "3000".
 * Infinities are "inf"/"-inf" (INCRBYFLOAT refuses them before this).
 */
int narf_resp_bulk_double(struct narf_buf *b, long double v);

/*
 * A double as Redis 7.0's addReplyDouble() gives it to a RESP2 client (ZSCORE
 * and the like): a bulk of "%.17g" (1.1 -> "1.1000000000000001", 1e20 ->
 * "1e+20", -0.0 -> "-0"), infinities "inf"/"-inf", NaN as glibc spells it.
 * Integral values below 2^52 are written as integers without snprintf, as
 * 7.0's d2string() does; "%.17g" writes the same digits for them.
 */
int narf_resp2_double(struct narf_buf *b, double v);

/*
 * --- RESP3 reply encoding --------------------------------------------------
 * The types RESP3 adds, as Redis 7.0 writes them to a client that said
 * HELLO 3. Same contract as above: 0, or NARF_ENOMEM leaving b unchanged.
 * Aggregate headers announce elements the caller appends next; requests
 * stay RESP2 arrays in both protocols, so the parser above is unchanged.
 */
int narf_resp3_null(struct narf_buf *b);                 /* _ */
int narf_resp3_map(struct narf_buf *b, long long pairs); /* %pairs */
int narf_resp3_set(struct narf_buf *b, long long n);     /* ~n */
int narf_resp3_push(struct narf_buf *b, long long n);    /* >n */
int narf_resp3_bool(struct narf_buf *b, bool v);         /* #t or #f */
/*
 * ,<v> as Redis 7.0's addReplyDouble(): "%.17g" (1.1 -> 1.1000000000000001,
 * 3 -> 3, 1e20 -> 1e+20, -0.0 -> -0), infinities "inf"/"-inf", NaN
 * "nan"/"-nan" (glibc's spelling).
 */
int narf_resp3_double(struct narf_buf *b, double v);
/* (<digits>: digits is the number's decimal text, an optional '-' and
 * digits (not checked; '\r' and '\n' become spaces as in simple strings). */
int narf_resp3_bignum(struct narf_buf *b, const char *digits, size_t n);
/* =<n+4>\r\ntxt:<p>\r\n, a verbatim string of plain text (INFO's form). */
int narf_resp3_verbatim(struct narf_buf *b, const void *p, size_t n);

/*
 * "MOVED 3999 127.0.0.1:7201" (the error text without '-') -> slot and
 * address (addr: room for NARF_ADDR_SIZE bytes, common/map.h). Returns 0,
 * or NARF_EINVAL for anything else (a slot over 16383, an address that is
 * not host:port, extra words). Every -MOVED is read through this.
 */
int narf_reply_moved(const char *text, size_t len, unsigned *slot, char *addr);

#endif /* NARF_RESP_H */
