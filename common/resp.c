/*
 * RESP request parser and RESP2/RESP3 reply encoders (see resp.h).
 *
 * The parser follows Redis 7.0's processMultibulkBuffer() and
 * processInlineBuffer() (networking.c) and sdssplitargs() (sds.c), with
 * the stricter choices listed in resp.h. Redis parses into objects as it
 * goes; we only record where each argument lies (offsets, because the
 * caller may grow and so move its buffer between calls) and build the argv
 * pointers once the request is whole.
 *
 * Every call resumes where the previous one stopped: r->pos is the start
 * of the element being read (a `*`/`$` line or a bulk payload) and r->scan
 * how far the current line has been searched for its end, so no byte is
 * examined more than a constant number of times however the input is cut.
 */
#include "resp.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "flags.h"
#include "map.h"

/* Redis's proto-max-bulk-len, the 1M argument cap Redis had before 7.0
 * raised it to INT_MAX, and PROTO_INLINE_MAX_SIZE. */
#define DEFAULT_MAX_BULK ((size_t)512 * 1024 * 1024)
#define DEFAULT_MAX_MULTIBULK ((size_t)1024 * 1024)
#define DEFAULT_MAX_INLINE ((size_t)64 * 1024)

/* First size of the argument arrays; they double from there. */
#define FIRST_ARGS 8
/* Arrays and scratch space beyond these are freed by a reset. */
#define KEEP_ARGS 1024
#define KEEP_SCRATCH ((size_t)64 * 1024)

/* multibulk after an error, so that further calls fail too. */
#define FAILED (-2)
/* Internal result of a parsing step: progress made, keep going. */
#define STEP 100

#define ENOMEM_MSG "out of memory parsing the request"

void narf_resp_limits_default(struct narf_resp_limits *lim)
{
	lim->max_bulk = DEFAULT_MAX_BULK;
	lim->max_multibulk = DEFAULT_MAX_MULTIBULK;
	lim->max_inline = DEFAULT_MAX_INLINE;
	lim->noauth_multibulk = 0;
	lim->noauth_bulk = 0;
}

void narf_resp_req_init(struct narf_resp_req *r)
{
	memset(r, 0, sizeof(*r));
	r->multibulk = -1;
	r->bulk = -1;
	narf_buf_init(&r->scratch);
}

static void free_args(struct narf_resp_req *r)
{
	free(r->argv);
	free(r->argvlen);
	free(r->offs);
	r->argv = NULL;
	r->argvlen = NULL;
	r->offs = NULL;
	r->cap = 0;
}

void narf_resp_req_reset(struct narf_resp_req *r)
{
	if (r->cap > KEEP_ARGS)
		free_args(r);
	if (r->scratch.cap > KEEP_SCRATCH)
		narf_buf_close(&r->scratch);
	r->scratch.len = 0;
	r->argc = 0;
	r->consumed = 0;
	r->pos = 0;
	r->scan = 0;
	r->multibulk = -1;
	r->bulk = -1;
}

bool narf_resp_req_fresh(const struct narf_resp_req *r)
{
	return r->argc == 0 && r->pos == 0 && r->scan == 0 &&
	       r->consumed == 0 && r->multibulk == -1 && r->bulk == -1;
}

void narf_resp_req_close(struct narf_resp_req *r)
{
	if (r == NULL)
		return;
	free_args(r);
	narf_buf_close(&r->scratch);
	narf_resp_req_reset(r);
}

/* Record an error message and mark the request failed. */
static int fail(struct narf_resp_req *r, char *errmsg, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int fail(struct narf_resp_req *r, char *errmsg, const char *fmt, ...)
{
	va_list ap;

	if (errmsg != NULL) {
		va_start(ap, fmt);
		vsnprintf(errmsg, 128, fmt, ap);
		va_end(ap);
	}
	r->multibulk = FAILED;
	return NARF_RESP_ERROR;
}

/*
 * Make room for argument number r->argc. The arrays double, starting
 * small, and never grow past the count the client announced (max is
 * SIZE_MAX for inline requests, whose arguments all exist already), so a
 * `*1000000` header costs nothing until the arguments are really sent.
 */
static int grow_args(struct narf_resp_req *r, size_t max)
{
	size_t want = r->cap ? r->cap * 2 : FIRST_ARGS;
	void *p;

	if ((size_t)r->argc < r->cap)
		return 0;
	if (want > max)
		want = max;
	if (want > SIZE_MAX / sizeof(size_t))
		return NARF_ENOMEM;
	/* Each array is replaced as soon as it is reallocated, so a failure
	 * half way leaves them all valid, merely some larger than cap. */
	if ((p = realloc(r->argv, want * sizeof(*r->argv))) == NULL)
		return NARF_ENOMEM;
	r->argv = p;
	if ((p = realloc(r->argvlen, want * sizeof(*r->argvlen))) == NULL)
		return NARF_ENOMEM;
	r->argvlen = p;
	if ((p = realloc(r->offs, want * sizeof(*r->offs))) == NULL)
		return NARF_ENOMEM;
	r->offs = p;
	r->cap = want;
	return 0;
}

static int push_arg(struct narf_resp_req *r, size_t off, size_t n, size_t max)
{
	if (grow_args(r, max) != 0)
		return NARF_ENOMEM;
	r->offs[r->argc] = off;
	r->argvlen[r->argc] = n;
	r->argc++;
	return 0;
}

/* Turn the recorded offsets into pointers into base. */
static void build_argv(struct narf_resp_req *r, const char *base)
{
	int i;

	for (i = 0; i < r->argc; i++)
		r->argv[i] = base + r->offs[i];
}

/*
 * Parse a length as Redis's string2ll() accepts it, minus the sign: "0" or
 * a digit 1-9 followed by digits, nothing else (no '+', no spaces, no
 * leading zeros), and no overflow.
 */
static bool parse_len(const char *s, size_t n, unsigned long long *v)
{
	unsigned long long x = 0;
	size_t i;

	if (n == 0 || (s[0] == '0' && n > 1))
		return false;
	for (i = 0; i < n; i++) {
		unsigned d = (unsigned char)s[i] - '0';

		if (d > 9 || x > (ULLONG_MAX - d) / 10)
			return false;
		x = x * 10 + d;
	}
	*v = x;
	return true;
}

/*
 * Find the '\r' ending the `*` or `$` line that starts at r->pos, searching
 * only bytes not searched before. Returns STEP with *cr set once the byte
 * after the '\r' has arrived too, INCOMPLETE before, ERROR (toobig) when
 * more than max_inline bytes are buffered without a '\r', as Redis does.
 */
static int find_cr(struct narf_resp_req *r,
                   const char *buf,
                   size_t len,
                   const struct narf_resp_limits *lim,
                   const char *toobig,
                   char *errmsg,
                   size_t *cr)
{
	const char *p;

	if (r->scan < r->pos)
		r->scan = r->pos;
	p = memchr(buf + r->scan, '\r', len - r->scan);
	if (p == NULL) {
		r->scan = len;
		if (len - r->pos > lim->max_inline)
			return fail(r, errmsg, "Protocol error: %s", toobig);
		return NARF_RESP_INCOMPLETE;
	}
	r->scan = (size_t)(p - buf);
	if (r->scan + 1 == len)
		return NARF_RESP_INCOMPLETE;
	*cr = r->scan;
	return STEP;
}

/* Read the `*<n>` line: the number of arguments that follow. */
static int read_count(struct narf_resp_req *r,
                      const char *buf,
                      size_t len,
                      const struct narf_resp_limits *lim,
                      char *errmsg)
{
	unsigned long long n = 0;
	size_t cr = 0;
	bool ok;
	int rc;

	rc = find_cr(r, buf, len, lim, "too big mbulk count string", errmsg,
	             &cr);
	if (rc != STEP)
		return rc;
	ok = buf[cr + 1] == '\n';
	if (ok && cr > 1 && buf[1] == '-') {
		/* Any count below zero that string2ll() reads (1-9 first,
		 * down to LLONG_MIN; not "-0") means no arguments: Redis 7.0
		 * skips `*-10` like `*-1` (a null array) and `*0`. */
		if (!parse_len(buf + 2, cr - 2, &n) || n == 0 ||
		    n > (unsigned long long)LLONG_MAX + 1)
			return fail(r, errmsg,
			            "Protocol error: invalid multibulk length");
		n = 0;
	} else if (!ok || !parse_len(buf + 1, cr - 1, &n) || n > INT_MAX) {
		return fail(r, errmsg,
		            "Protocol error: invalid multibulk length");
	} else if (lim->noauth_multibulk != 0 && n > lim->noauth_multibulk) {
		return fail(r, errmsg,
		            "Protocol error: unauthenticated multibulk length");
	} else if (n > lim->max_multibulk) {
		return fail(r, errmsg,
		            "Protocol error: invalid multibulk length");
	}
	if (n == 0) {
		/* pos stays put, so a repeated call answers the same. */
		r->consumed = cr + 2;
		return NARF_RESP_EMPTY;
	}
	r->pos = r->scan = cr + 2;
	r->multibulk = (long long)n;
	return STEP;
}

/* Read a `$<len>` line: the length of the next argument. */
static int read_bulk_len(struct narf_resp_req *r,
                         const char *buf,
                         size_t len,
                         const struct narf_resp_limits *lim,
                         char *errmsg)
{
	unsigned long long n = 0;
	size_t cr = 0;
	int rc;

	if (buf[r->pos] != '$') {
		char c = buf[r->pos];

		/* Redis turns line breaks in error messages into spaces. */
		return fail(r, errmsg, "Protocol error: expected '$', got '%c'",
		            c == '\r' || c == '\n' ? ' ' : c);
	}
	rc = find_cr(r, buf, len, lim, "too big bulk count string", errmsg,
	             &cr);
	if (rc != STEP)
		return rc;
	if (buf[cr + 1] != '\n' ||
	    !parse_len(buf + r->pos + 1, cr - r->pos - 1, &n) ||
	    n > lim->max_bulk || n > LLONG_MAX)
		return fail(r, errmsg, "Protocol error: invalid bulk length");
	if (lim->noauth_bulk != 0 && n > lim->noauth_bulk)
		return fail(r, errmsg,
		            "Protocol error: unauthenticated bulk length");
	r->pos = r->scan = cr + 2;
	r->bulk = (long long)n;
	return STEP;
}

/* Take the payload of the bulk whose length was read, once all there. */
static int read_bulk(struct narf_resp_req *r,
                     const char *buf,
                     size_t len,
                     size_t *need,
                     char *errmsg)
{
	size_t n = (size_t)r->bulk;
	size_t end;

	if (len - r->pos < 2 || len - r->pos - 2 < n) {
		if (need != NULL)
			*need = r->pos + n < SIZE_MAX - 2 ? r->pos + n + 2
			                                  : SIZE_MAX;
		return NARF_RESP_INCOMPLETE;
	}
	end = r->pos + n;
	if (buf[end] != '\r' || buf[end + 1] != '\n')
		return fail(r, errmsg,
		            "Protocol error: expected CRLF after bulk");
	if (push_arg(r, r->pos, n, (size_t)r->multibulk) != 0)
		return fail(r, errmsg, ENOMEM_MSG);
	r->pos = r->scan = end + 2;
	r->bulk = -1;
	return STEP;
}

static int parse_multibulk(struct narf_resp_req *r,
                           const char *buf,
                           size_t len,
                           const struct narf_resp_limits *lim,
                           size_t *need,
                           char *errmsg)
{
	int rc = STEP;

	if (r->multibulk < 0)
		rc = read_count(r, buf, len, lim, errmsg);
	while (rc == STEP && r->argc < r->multibulk) {
		if (r->bulk >= 0)
			rc = read_bulk(r, buf, len, need, errmsg);
		else if (r->pos == len)
			rc = NARF_RESP_INCOMPLETE;
		else
			rc = read_bulk_len(r, buf, len, lim, errmsg);
	}
	if (rc != STEP)
		return rc;
	build_argv(r, buf);
	r->consumed = r->pos;
	return NARF_RESP_DONE;
}

/* isspace() in the C locale, which sdssplitargs() relies on. */
static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' ||
	       c == '\r';
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* s[i], or the NUL that would end the C string sdssplitargs() reads. */
static char at(const char *s, size_t n, size_t i)
{
	return i < n ? s[i] : '\0';
}

static char unescape(char c)
{
	switch (c) {
	case 'n':
		return '\n';
	case 'r':
		return '\r';
	case 't':
		return '\t';
	case 'b':
		return '\b';
	case 'a':
		return '\a';
	default:
		return c;
	}
}

/*
 * Copy the argument starting at s[*i] into out, unquoted as
 * sdssplitargs() does, and move *i past it. Quotes may open anywhere in an
 * argument (x"a b" is `xa b`) but a closing quote must end it. Returns
 * false for unbalanced quotes. Never writes more bytes than it reads.
 */
static bool split_token(const char *s,
                        size_t n,
                        size_t *i,
                        char *out,
                        size_t *olen)
{
	bool inq = false, insq = false;
	size_t k = *i, o = 0;

	for (;; k++) {
		char c = at(s, n, k);

		if (inq) {
			if (c == '\\' && at(s, n, k + 1) == 'x' &&
			    hex_value(at(s, n, k + 2)) >= 0 &&
			    hex_value(at(s, n, k + 3)) >= 0) {
				out[o++] = (char)(hex_value(s[k + 2]) * 16 +
				                  hex_value(s[k + 3]));
				k += 3;
			} else if (c == '\\' && at(s, n, k + 1) != '\0') {
				out[o++] = unescape(s[++k]);
			} else if (c == '"') {
				k++;
				break;
			} else if (c == '\0') {
				return false;
			} else {
				out[o++] = c;
			}
		} else if (insq) {
			if (c == '\\' && at(s, n, k + 1) == '\'') {
				out[o++] = s[++k];
			} else if (c == '\'') {
				k++;
				break;
			} else if (c == '\0') {
				return false;
			} else {
				out[o++] = c;
			}
		} else if (c == ' ' || c == '\n' || c == '\r' || c == '\t' ||
		           c == '\0') {
			break;
		} else if (c == '"') {
			inq = true;
		} else if (c == '\'') {
			insq = true;
		} else {
			out[o++] = c;
		}
	}
	/* After a closing quote: only a space or the end of the line. */
	if ((inq || insq) && k < n && !is_space(s[k]))
		return false;
	*i = k;
	*olen = o;
	return true;
}

/*
 * Split an inline line (without its line break) into arguments in
 * scratch, each followed by a NUL. Every argument is separated from the
 * next by at least one byte and is no longer than its source, so n + 1
 * bytes of scratch always suffice.
 */
static int split_args(struct narf_resp_req *r,
                      const char *s,
                      size_t n,
                      char *errmsg)
{
	size_t i = 0, o = 0, olen = 0;

	if (narf_buf_reserve(&r->scratch, n + 1) != 0)
		return fail(r, errmsg, ENOMEM_MSG);
	for (;;) {
		while (i < n && is_space(s[i]))
			i++;
		if (i == n)
			break;
		if (!split_token(s, n, &i, r->scratch.data + o, &olen))
			return fail(r, errmsg,
			            "Protocol error: unbalanced "
			            "quotes in request");
		r->scratch.data[o + olen] = '\0';
		if (push_arg(r, o, olen, SIZE_MAX) != 0)
			return fail(r, errmsg, ENOMEM_MSG);
		o += olen + 1;
	}
	r->scratch.len = o;
	return STEP;
}

static int parse_inline(struct narf_resp_req *r,
                        const char *buf,
                        size_t len,
                        const struct narf_resp_limits *lim,
                        char *errmsg)
{
	const char *p;
	size_t end;
	int rc;

	p = memchr(buf + r->scan, '\n', len - r->scan);
	if (p == NULL) {
		r->scan = len;
		if (len > lim->max_inline)
			return fail(r, errmsg,
			            "Protocol error: too big inline request");
		return NARF_RESP_INCOMPLETE;
	}
	r->scan = end = (size_t)(p - buf);
	r->consumed = end + 1;
	if (end > 0 && buf[end - 1] == '\r')
		end--;
	/* sdssplitargs() reads a C string: a NUL ends the arguments. */
	if ((p = memchr(buf, '\0', end)) != NULL)
		end = (size_t)(p - buf);
	r->argc = 0;
	rc = split_args(r, buf, end, errmsg);
	if (rc != STEP)
		return rc;
	if (r->argc == 0)
		return NARF_RESP_EMPTY;
	build_argv(r, r->scratch.data);
	return NARF_RESP_DONE;
}

int narf_resp_parse(struct narf_resp_req *r,
                    const char *buf,
                    size_t len,
                    const struct narf_resp_limits *lim,
                    size_t *need,
                    char *errmsg)
{
	struct narf_resp_limits def;

	if (need != NULL)
		*need = 0;
	if (lim == NULL) {
		narf_resp_limits_default(&def);
		lim = &def;
	}
	if (r->multibulk == FAILED)
		return fail(r, errmsg,
		            "Protocol error: request already failed");
	if (len == 0)
		return NARF_RESP_INCOMPLETE;
	if (buf[0] == '*')
		return parse_multibulk(r, buf, len, lim, need, errmsg);
	return parse_inline(r, buf, len, lim, errmsg);
}

/* --- reply encoding ------------------------------------------------------ */

size_t narf_format_u64(char *dst, uint64_t u)
{
	char tmp[24];
	size_t n = 0, len = 0;

	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	while (n > 0)
		dst[len++] = tmp[--n];
	return len;
}

/* Write v in decimal at dst (room for 20 digits and a sign); returns the
 * length. Works for LLONG_MIN, whose magnitude a long long cannot hold. */
size_t narf_format_ll(char *dst, long long v)
{
	if (v >= 0)
		return narf_format_u64(dst, (uint64_t)v);
	dst[0] = '-';
	return 1 + narf_format_u64(dst + 1, 0ULL - (unsigned long long)v);
}

/*
 * Append `<type><v>\r\n` and reserve room for extra more bytes in the same
 * step, so a bulk header is never left behind without its payload.
 */
static int put_header(struct narf_buf *b, char type, long long v, size_t extra)
{
	char line[32];
	size_t n = 0;

	line[n++] = type;
	n += narf_format_ll(line + n, v);
	line[n++] = '\r';
	line[n++] = '\n';
	if (extra > SIZE_MAX - n || narf_buf_reserve(b, n + extra) != 0)
		return NARF_ENOMEM;
	memcpy(b->data + b->len, line, n);
	b->len += n;
	return 0;
}

/* Append type, s with line breaks blanked out, and CRLF. */
static int put_line(struct narf_buf *b, char type, const char *s, size_t n)
{
	char *p;
	size_t i;

	if (n > SIZE_MAX - 3 || narf_buf_reserve(b, n + 3) != 0)
		return NARF_ENOMEM;
	p = b->data + b->len;
	p[0] = type;
	for (i = 0; i < n; i++)
		p[i + 1] = s[i] == '\r' || s[i] == '\n' ? ' ' : s[i];
	p[n + 1] = '\r';
	p[n + 2] = '\n';
	b->len += n + 3;
	return 0;
}

int narf_resp_simple(struct narf_buf *b, const char *s)
{
	return put_line(b, '+', s, strlen(s));
}

int narf_resp_error(struct narf_buf *b, const char *s)
{
	return put_line(b, '-', s, strlen(s));
}

int narf_resp_errorf(struct narf_buf *b, const char *fmt, ...)
{
	char small[256];
	char *big = NULL; /* owned: for messages that do not fit small */
	va_list ap;
	int n, rc;

	/* Format aside first: put_line() then blanks line breaks and
	 * appends in one step, leaving b untouched on failure. */
	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return NARF_ENOMEM;
	if ((size_t)n >= sizeof(small)) {
		if ((big = malloc((size_t)n + 1)) == NULL)
			return NARF_ENOMEM;
		va_start(ap, fmt);
		vsnprintf(big, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	rc = put_line(b, '-', big != NULL ? big : small, (size_t)n);
	free(big);
	return rc;
}

int narf_resp_int(struct narf_buf *b, long long v)
{
	return put_header(b, ':', v, 0);
}

int narf_resp_bulk(struct narf_buf *b, const void *p, size_t n)
{
	if (n > LLONG_MAX || put_header(b, '$', (long long)n, n + 2) != 0)
		return NARF_ENOMEM;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	memcpy(b->data + b->len + n, "\r\n", 2);
	b->len += n + 2;
	return 0;
}

int narf_resp_bulk_str(struct narf_buf *b, const char *s)
{
	return narf_resp_bulk(b, s, strlen(s));
}

int narf_resp_null(struct narf_buf *b)
{
	return narf_buf_append(b, "$-1\r\n", 5);
}

int narf_resp_null_array(struct narf_buf *b)
{
	return narf_buf_append(b, "*-1\r\n", 5);
}

int narf_resp_array(struct narf_buf *b, long long n)
{
	return put_header(b, '*', n, 0);
}

/*
 * Redis's MAX_LONG_DOUBLE_CHARS: "%.17Lf" of the largest finite long
 * double takes 4951 bytes with its sign and NUL, so this always fits.
 */
#define LD_CHARS (5 * 1024)

int narf_resp_bulk_double(struct narf_buf *b, long double v)
{
	char s[LD_CHARS];
	int n;

	/* Spelled out, as Redis does, rather than trusting libc's form. */
	if (isinf(v))
		return narf_resp_bulk_str(b, v > 0 ? "inf" : "-inf");
	/* Fixed point with 17 digits after the point, the precision at which
	 * 80- and 128-bit long doubles give back most short decimals as
	 * typed; then the zeros the fixed format padded with are dropped. */
	n = snprintf(s, sizeof(s), "%.17Lf", v);
	if (n < 0 || (size_t)n >= sizeof(s))
		return NARF_ENOMEM;
	if (memchr(s, '.', (size_t)n) != NULL) {
		while (s[n - 1] == '0')
			n--;
		if (s[n - 1] == '.')
			n--;
	}
	if (n == 2 && s[0] == '-' && s[1] == '0')
		return narf_resp_bulk(b, "0", 1);
	return narf_resp_bulk(b, s, (size_t)n);
}

int narf_resp2_double(struct narf_buf *b, double v)
{
	char s[40];
	int n;

	if (isinf(v))
		return narf_resp_bulk_str(b, v > 0 ? "inf" : "-inf");
	/* d2string()'s fast path: inside (-(2^52 - 1), 2^52) a double with no
	 * fraction is an exact long long. Zero keeps its sign through
	 * snprintf ("-0"), as "%.17g" writes it. */
	if (v > -4503599627370495.0 && v < 4503599627370496.0 && v != 0 &&
	    v == (double)(long long)v) {
		long long ll = (long long)v;

		n = 0;
		if (ll < 0)
			s[n++] = '-';
		n += (int)narf_format_u64(
		        s + n, ll < 0 ? (uint64_t)-ll : (uint64_t)ll);
		return narf_resp_bulk(b, s, (size_t)n);
	}
	n = snprintf(s, sizeof(s), "%.17g", v);
	if (n < 0 || (size_t)n >= sizeof(s))
		return NARF_ENOMEM;
	return narf_resp_bulk(b, s, (size_t)n);
}

/* --- RESP3 reply encoding ----------------------------------------------- */

int narf_resp3_null(struct narf_buf *b)
{
	return narf_buf_append(b, "_\r\n", 3);
}

int narf_resp3_map(struct narf_buf *b, long long pairs)
{
	return put_header(b, '%', pairs, 0);
}

int narf_resp3_set(struct narf_buf *b, long long n)
{
	return put_header(b, '~', n, 0);
}

int narf_resp3_push(struct narf_buf *b, long long n)
{
	return put_header(b, '>', n, 0);
}

int narf_resp3_bool(struct narf_buf *b, bool v)
{
	return narf_buf_append(b, v ? "#t\r\n" : "#f\r\n", 4);
}

int narf_resp3_double(struct narf_buf *b, double v)
{
	/* ',', a sign, 17 digits, a point, "e-308" and CRLF: 40 is ample. */
	char line[40];
	int n;

	/* Redis 7.0's addReplyDouble() spells infinities out rather than
	 * trusting libc; NaN (no Redis command replies one) is spelled as
	 * glibc's "%.17g" spells it, the bytes 7.0 sends on Linux. */
	if (isinf(v))
		return v > 0 ? narf_buf_append(b, ",inf\r\n", 6)
		             : narf_buf_append(b, ",-inf\r\n", 7);
	if (isnan(v))
		return signbit(v) ? narf_buf_append(b, ",-nan\r\n", 7)
		                  : narf_buf_append(b, ",nan\r\n", 6);
	n = snprintf(line, sizeof(line), ",%.17g\r\n", v);
	if (n < 0 || (size_t)n >= sizeof(line))
		return NARF_ENOMEM;
	return narf_buf_append(b, line, (size_t)n);
}

int narf_resp3_bignum(struct narf_buf *b, const char *digits, size_t n)
{
	return put_line(b, '(', digits, n);
}

int narf_resp3_verbatim(struct narf_buf *b, const void *p, size_t n)
{
	/* The payload is "txt:" and the text: 4 bytes more than it. */
	if (n > LLONG_MAX - 4 || n > SIZE_MAX - 6 ||
	    put_header(b, '=', (long long)n + 4, n + 6) != 0)
		return NARF_ENOMEM;
	memcpy(b->data + b->len, "txt:", 4);
	if (n > 0)
		memcpy(b->data + b->len + 4, p, n);
	memcpy(b->data + b->len + 4 + n, "\r\n", 2);
	b->len += n + 6;
	return 0;
}

/* --- replies from a peer ------------------------------------------------- */

/* One line's length including CRLF, 0 when incomplete, -1 when malformed
 * (a bare CR or LF, or a line longer than 64 KiB). */
static long long reply_line(const char *p, size_t n)
{
	size_t max = n < 65536 ? n : 65536;

	for (size_t i = 0; i < max; i++) {
		if (p[i] == '\r')
			return i + 1 < n ? (p[i + 1] == '\n' ? (long long)i + 2
			                                     : -1)
			                 : 0;
		if (p[i] == '\n')
			return -1;
	}
	return n < 65536 ? 0 : -1;
}

/* The signed decimal of the header line p[0..end) after its type byte. */
static bool reply_number(const char *p, size_t end, long long *v)
{
	unsigned long long x;
	bool neg = end > 3 && p[1] == '-';

	if (end < 4 || !parse_len(p + 1 + neg, end - 3 - neg, &x) ||
	    x > (unsigned long long)LLONG_MAX)
		return false;
	*v = neg ? -(long long)x : (long long)x;
	return true;
}

/* The payload of a `$`, `!` or `=` header line of length line at p, whose
 * number is v: checks its CRLF; returns its length with the CRLF, 0 when
 * incomplete, -1 when malformed. */
static long long reply_blob(const char *p, size_t n, size_t line, long long v)
{
	size_t len = (size_t)v;

	if (n - line < len + 2)
		return 0;
	if (p[line + len] != '\r' || p[line + len + 1] != '\n')
		return -1;
	return (long long)len + 2;
}

/* `(`: an optional '-' and digits, no leading zeros, of any length. */
static bool reply_bignum(const char *p, size_t end)
{
	size_t i = p[1] == '-' ? 2 : 1;

	if (end - 2 <= i || (p[i] == '0' && end - 2 > i + 1) ||
	    (p[i] == '0' && i == 2))
		return false;
	for (; i < end - 2; i++)
		if (p[i] < '0' || p[i] > '9')
			return false;
	return true;
}

int narf_resp_reply_len(const char *buf,
                        size_t n,
                        uint64_t max_bulk,
                        size_t *len)
{
	uint64_t todo = 1;
	size_t pos = 0;

	while (todo > 0) {
		long long line = reply_line(buf + pos, n - pos), v, blob = 0;
		const char *p = buf + pos;
		uint64_t add;

		if (line <= 0)
			return line == 0 ? NARF_RESP_INCOMPLETE
			                 : NARF_RESP_ERROR;
		todo--;
		switch (p[0]) {
		case '+':
		case '-':
			break;
		case ':':
			if (!reply_number(p, (size_t)line, &v))
				return NARF_RESP_ERROR;
			break;
		case '_': /* RESP3 null */
			if (line != 3)
				return NARF_RESP_ERROR;
			break;
		case '#': /* RESP3 boolean */
			if (line != 4 || (p[1] != 't' && p[1] != 'f'))
				return NARF_RESP_ERROR;
			break;
		case ',': /* RESP3 double: any text, as "inf" or "1e+20" */
			if (line < 4)
				return NARF_RESP_ERROR;
			break;
		case '(': /* RESP3 big number */
			if (!reply_bignum(p, (size_t)line))
				return NARF_RESP_ERROR;
			break;
		case '$':
		case '!': /* RESP3 blob error */
		case '=': /* RESP3 verbatim string: "txt:" and the text */
			if (!reply_number(p, (size_t)line, &v) ||
			    v < (p[0] == '$'   ? -1
			         : p[0] == '=' ? 4
			                       : 0) ||
			    (v >= 0 && (uint64_t)v > max_bulk))
				return NARF_RESP_ERROR;
			if (v >= 0) {
				blob = reply_blob(p, n - pos, (size_t)line, v);
				if (blob <= 0)
					return blob == 0 ? NARF_RESP_INCOMPLETE
					                 : NARF_RESP_ERROR;
				if (p[0] == '=' && p[line + 3] != ':')
					return NARF_RESP_ERROR;
			}
			break;
		case '*':
		case '%': /* RESP3 map: n pairs */
		case '~': /* RESP3 set */
		case '>': /* RESP3 push */
		case '|': /* RESP3 attribute: n pairs before the reply */
			if (!reply_number(p, (size_t)line, &v) ||
			    v < (p[0] == '*' ? -1 : 0) ||
			    (v >= 0 && (uint64_t)v > max_bulk))
				return NARF_RESP_ERROR;
			/* Counts near LLONG_MAX could wrap todo (and end
			 * the reply early) when max_bulk is UINT64_MAX. */
			add = (p[0] == '%' || p[0] == '|' ? 2 : 1) *
			      (uint64_t)(v > 0 ? v : 0);
			if (p[0] == '|')
				add++; /* the reply it describes */
			if (add > UINT64_MAX - todo)
				return NARF_RESP_ERROR;
			todo += add;
			break;
		default:
			return NARF_RESP_ERROR;
		}
		pos += (size_t)line + (size_t)blob;
	}
	*len = pos;
	return NARF_RESP_DONE;
}

int narf_resp_command(struct narf_buf *b,
                      int argc,
                      const char *const *argv,
                      const size_t *argvlen)
{
	size_t before = b->len;

	if (narf_resp_array(b, argc) != 0)
		return NARF_ENOMEM;
	for (int i = 0; i < argc; i++)
		if (narf_resp_bulk(b, argv[i], argvlen[i]) != 0) {
			b->len = before;
			return NARF_ENOMEM;
		}
	return 0;
}

int narf_reply_moved(const char *text, size_t len, unsigned *slot, char *addr)
{
	const char *p = text, *end = text + len, *sp;
	char host[NARF_ADDR_SIZE];
	int port;

	char num[8];
	uint64_t s;

	if (len < 6 || memcmp(p, "MOVED ", 6) != 0)
		return NARF_EINVAL;
	p += 6;
	sp = memchr(p, ' ', (size_t)(end - p));
	if (sp == NULL || sp == p || (size_t)(sp - p) >= sizeof(num))
		return NARF_EINVAL;
	memcpy(num, p, (size_t)(sp - p));
	num[sp - p] = '\0';
	if (narf_parse_u64(num, 0, NARF_SLOTS - 1, &s) != 0)
		return NARF_EINVAL;
	p = sp + 1;
	if (end - p <= 0 || end - p >= NARF_ADDR_SIZE ||
	    memchr(p, ' ', (size_t)(end - p)) != NULL ||
	    memchr(p, '\0', (size_t)(end - p)) != NULL)
		return NARF_EINVAL;
	memcpy(addr, p, (size_t)(end - p));
	addr[end - p] = '\0';
	if (narf_parse_hostport(addr, host, sizeof(host), &port) != 0)
		return NARF_EINVAL;
	*slot = (unsigned)s;
	return 0;
}
