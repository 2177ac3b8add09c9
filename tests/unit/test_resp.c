/*
 * Unit tests for common/resp.h: the incremental RESP2 request parser
 * (multibulk and inline forms, limits, Redis's error strings), the RESP2
 * and RESP3 reply encoders and the reply framer. Expected bytes were
 * checked against redis-server 7.0.15 (RESP3 ones under HELLO 3, from
 * DEBUG PROTOCOL, ZSCORE and INFO).
 */
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/errors.h"
#include "common/map.h"
#include "common/resp.h"

/* A pipeline mixing every request shape the parser accepts. */
static const char pipeline[] =
        "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nva\r\nl\r\n"
        "*0\r\n"
        "PING\r\n"
        "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n"
        "\r\n"
        "set \"a b\" 'c\\'d' \"\\x41\\n\"\n"
        "*-1\r\n"
        "*-10\r\n"
        "*1\r\n$12\r\nbin\0\r\n\r\n\0bin\r\n"
        "   \t \r\n"
        "*2\r\n$3\r\nGET\r\n$10\r\n0123456789\r\n";

/* What the pipeline yields, one line per request, as transcript() writes. */
static const char pipeline_want[] =
        "DONE 3:SET 1:k 5:va\\r\\nl\n"
        "EMPTY 4\n"
        "DONE 4:PING\n"
        "DONE 4:ECHO 0:\n"
        "EMPTY 2\n"
        "DONE 3:set 3:a b 3:c'd 2:A\\n\n"
        "EMPTY 5\n"
        "EMPTY 6\n"
        "DONE 12:bin\\0\\r\\n\\r\\n\\0bin\n"
        "EMPTY 7\n"
        "DONE 3:GET 10:0123456789\n";

/* Append printf output to a growing transcript. */
static void say(struct narf_buf *t, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < sizeof(line));
	assert_int_equal(narf_buf_append(t, line, (size_t)n), 0);
}

/* Describe one argument with C escapes so transcripts are readable. */
static void say_arg(struct narf_buf *t, const char *p, size_t n)
{
	size_t i;

	say(t, " %zu:", n);
	for (i = 0; i < n; i++) {
		if (p[i] == '\r')
			say(t, "\\r");
		else if (p[i] == '\n')
			say(t, "\\n");
		else if (p[i] == '\0')
			say(t, "\\0");
		else
			say(t, "%c", p[i]);
	}
}

/*
 * Feed in[0..len) in pieces whose sizes come from cuts (cycling; 0 ends
 * the list) and run the parse loop a server runs after every read: handle
 * each whole request, drop its bytes, reset. Returns the transcript; stops
 * at the first error. Checks the need hint on every INCOMPLETE.
 */
static char *transcript(const char *in,
                        size_t len,
                        const size_t *cuts,
                        const struct narf_resp_limits *lim)
{
	struct narf_resp_req r;
	struct narf_buf b, t;
	size_t off = 0, k = 0;
	bool failed = false;

	narf_resp_req_init(&r);
	narf_buf_init(&b);
	narf_buf_init(&t);
	while (off < len && !failed) {
		size_t n = cuts[k] ? cuts[k++] : len - off;

		if (cuts[k] == 0)
			k = 0;
		n = n < len - off ? n : len - off;
		assert_int_equal(narf_buf_append(&b, in + off, n), 0);
		off += n;
		for (;;) {
			char err[128] = "";
			size_t need = 99;
			int rc = narf_resp_parse(&r, b.data, b.len, lim, &need,
			                         err);

			if (rc == NARF_RESP_INCOMPLETE) {
				assert_true(need == 0 || need > b.len);
				break;
			}
			assert_int_equal(need, 0);
			if (rc == NARF_RESP_ERROR) {
				say(&t, "ERROR %s\n", err);
				failed = true;
				break;
			}
			if (rc == NARF_RESP_EMPTY) {
				say(&t, "EMPTY %zu\n", r.consumed);
			} else {
				assert_int_equal(rc, NARF_RESP_DONE);
				say(&t, "DONE");
				for (int i = 0; i < r.argc; i++)
					say_arg(&t, r.argv[i], r.argvlen[i]);
				say(&t, "\n");
			}
			assert_true(r.consumed > 0 && r.consumed <= b.len);
			narf_buf_consume(&b, r.consumed);
			narf_resp_req_reset(&r);
		}
	}
	narf_buf_append(&t, "", 1);
	narf_buf_close(&b);
	narf_resp_req_close(&r);
	return t.data;
}

/* Transcript of text fed whole. */
static char *parse_all(const char *text,
                       size_t len,
                       const struct narf_resp_limits *lim)
{
	static const size_t whole[] = {0};

	return transcript(text, len, whole, lim);
}

/* Assert that text fed whole gives the transcript want, and free it. */
static void expect(const char *text, size_t len, const char *want)
{
	char *got = parse_all(text, len, NULL);

	assert_string_equal(got, want);
	free(got);
}

#define EXPECT(text, want) expect(text, sizeof(text) - 1, want)

/* Parse one request from a fresh parser with limits lim; returns the code. */
static int parse_once(const char *text,
                      size_t len,
                      const struct narf_resp_limits *lim,
                      size_t *need,
                      char *err,
                      struct narf_resp_req *r)
{
	narf_resp_req_init(r);
	return narf_resp_parse(r, text, len, lim, need, err);
}

/* The pipeline fed whole gives the expected requests, in order. */
static void test_pipeline_whole(void **state)
{
	(void)state;
	expect(pipeline, sizeof(pipeline) - 1, pipeline_want);
}

/* Cutting the pipeline in two at every byte boundary changes nothing. */
static void test_pipeline_every_split(void **state)
{
	size_t i;

	(void)state;
	for (i = 1; i < sizeof(pipeline) - 1; i++) {
		size_t cuts[] = {i, sizeof(pipeline), 0};
		char *got =
		        transcript(pipeline, sizeof(pipeline) - 1, cuts, NULL);

		assert_string_equal(got, pipeline_want);
		free(got);
	}
}

/* Feeding the pipeline one byte (or a few bytes) at a time changes nothing. */
static void test_pipeline_byte_by_byte(void **state)
{
	static const size_t ones[] = {1, 0};
	static const size_t mixed[] = {1, 2, 3, 5, 7, 0};
	char *got;

	(void)state;
	got = transcript(pipeline, sizeof(pipeline) - 1, ones, NULL);
	assert_string_equal(got, pipeline_want);
	free(got);
	got = transcript(pipeline, sizeof(pipeline) - 1, mixed, NULL);
	assert_string_equal(got, pipeline_want);
	free(got);
}

/*
 * A 4 MiB bulk and a 64 KiB inline line fed one byte per call finish at
 * once: no call rescans what earlier calls saw (O(n^2) would take minutes).
 */
static void test_byte_by_byte_is_linear(void **state)
{
	size_t big = 4 * 1024 * 1024, line = 64 * 1024, hdr, i;
	struct narf_resp_req r;
	char *in = malloc(big + 64);
	char err[128];
	size_t need = 0;

	(void)state;
	if (in == NULL) { /* explicit, so gcc's bounds analysis sees it */
		fail();
		return;
	}
	hdr = (size_t)sprintf(in, "*1\r\n$%zu\r\n", big);
	memset(in + hdr, 'v', big);
	memcpy(in + hdr + big, "\r\n", 2);
	narf_resp_req_init(&r);
	for (i = 1; i < hdr + big + 2; i++) {
		assert_int_equal(narf_resp_parse(&r, in, i, NULL, &need, err),
		                 NARF_RESP_INCOMPLETE);
		assert_true(i < hdr || need == hdr + big + 2);
	}
	assert_int_equal(narf_resp_parse(&r, in, i, NULL, &need, err),
	                 NARF_RESP_DONE);
	assert_int_equal(r.argvlen[0], big);
	narf_resp_req_reset(&r);
	memset(in, 'a', line);
	in[line - 1] = '\n';
	for (i = 1; i < line; i++)
		assert_int_equal(narf_resp_parse(&r, in, i, NULL, &need, err),
		                 NARF_RESP_INCOMPLETE);
	assert_int_equal(narf_resp_parse(&r, in, i, NULL, &need, err),
	                 NARF_RESP_DONE);
	assert_int_equal(r.argvlen[0], line - 1);
	narf_resp_req_close(&r);
	free(in);
}

/* Bulks carry any bytes, NUL, CR and LF included, and may be empty. */
static void test_binary_and_empty_bulks(void **state)
{
	(void)state;
	EXPECT("*3\r\n$3\r\n\0\r\n\r\n$0\r\n\r\n$2\r\n\r\n\r\n",
	       "DONE 3:\\0\\r\\n 0: 2:\\r\\n\n");
	EXPECT("*1\r\n$0\r\n\r\n", "DONE 0:\n");
}

/* Multibulk arguments point into the caller's buffer; consumed is exact. */
static void test_multibulk_pointers(void **state)
{
	static const char req[] = "*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n";
	struct narf_resp_req r;
	char err[128];

	(void)state;
	assert_int_equal(parse_once(req, sizeof(req) - 1, NULL, NULL, err, &r),
	                 NARF_RESP_DONE);
	assert_int_equal(r.argc, 2);
	assert_ptr_equal(r.argv[0], req + 8);
	assert_ptr_equal(r.argv[1], req + 17);
	assert_int_equal(r.consumed, 20);
	narf_resp_req_close(&r);
}

/* Inline requests split and unquote exactly as redis-server 7.0 does. */
static void test_inline_quoting(void **state)
{
	(void)state;
	EXPECT("echo 'a\\'b'\r\n", "DONE 4:echo 3:a'b\n");
	EXPECT("echo \"a\\x41\\n\\q\\x4\"\r\n", "DONE 4:echo 6:aA\\nqx4\n");
	EXPECT("echo \"a\\\"b\"\r\n", "DONE 4:echo 3:a\"b\n");
	EXPECT("echo x'a b'\r\n", "DONE 4:echo 4:xa b\n");
	EXPECT("echo 'a\\x41'\r\n", "DONE 4:echo 5:a\\x41\n");
	EXPECT("echo \"\" ''\r\n", "DONE 4:echo 0: 0:\n");
	EXPECT("echo \"\\r\\t\\b\\a\\\\\"\r\n", "DONE 4:echo 5:\\r\t\b\a\\\n");
	EXPECT("echo \"\\xfF\"\r\n", "DONE 4:echo 1:\xff\n");
	/* \v and \f separate arguments only between them, as isspace(). */
	EXPECT("\fecho\v a\vb\r\n", "DONE 5:echo\v 3:a\vb\n");
	EXPECT("echo \"a\"\v\r\n", "DONE 4:echo 1:a\n");
}

/* Inline lines end at LF with or without CR; a NUL ends the arguments. */
static void test_inline_line_ends(void **state)
{
	(void)state;
	EXPECT("PING\n", "DONE 4:PING\n");
	EXPECT("PING\r\n", "DONE 4:PING\n");
	EXPECT("echo a\r\r\n", "DONE 4:echo 1:a\n");
	EXPECT("a\nb\r\n", "DONE 1:a\nDONE 1:b\n");
	EXPECT("echo a\0b c\r\nPING\r\n", "DONE 4:echo 1:a\nDONE 4:PING\n");
	EXPECT("PING", "");
}

/* `*0`, `*-1`, blank and all-space lines are skipped with their bytes. */
static void test_empty_requests(void **state)
{
	(void)state;
	EXPECT("*0\r\n*-1\r\n\r\n\n \t\r\n",
	       "EMPTY 4\nEMPTY 5\nEMPTY 2\nEMPTY 1\nEMPTY 4\n");
}

/*
 * Any count below zero that Redis's string2ll() reads, down to LLONG_MIN,
 * is skipped as redis-server 7.0.15 skips it (the next request runs, even
 * before AUTH); what string2ll() refuses stays an error; and a header not
 * yet whole waits, whatever its sign.
 */
static void test_negative_counts(void **state)
{
	static const char *const mbulk =
	        "ERROR Protocol error: invalid "
	        "multibulk length\n";
	struct narf_resp_limits lim;
	struct narf_resp_req r;
	char err[128];
	char *got;

	(void)state;
	EXPECT("*-10\r\n*1\r\n$4\r\nPING\r\n", "EMPTY 6\nDONE 4:PING\n");
	EXPECT("*-2\r\nPING\r\n", "EMPTY 5\nDONE 4:PING\n");
	EXPECT("*-2147483649\r\n", "EMPTY 14\n");
	EXPECT("*-9223372036854775808\r\n", "EMPTY 23\n");
	EXPECT("*-\r\n", mbulk);
	EXPECT("*--1\r\n", mbulk);
	EXPECT("*-01\r\n", mbulk);
	EXPECT("*-1 \r\n", mbulk);
	EXPECT("*-1\rX", mbulk);
	EXPECT("*-5x\r\n", mbulk);
	EXPECT("*-9223372036854775809\r\n", mbulk);
	EXPECT("*-99999999999999999999\r\n", mbulk);
	/* Truncated: no verdict until the LF after the CR is in. */
	EXPECT("*0", "");
	EXPECT("*-", "");
	EXPECT("*-10", "");
	EXPECT("*-10\r", "");
	EXPECT("*0\r", "");
	assert_int_equal(parse_once("*-10\r", 5, NULL, NULL, err, &r),
	                 NARF_RESP_INCOMPLETE);
	assert_int_equal(narf_resp_parse(&r, "*-10\r\n", 6, NULL, NULL, err),
	                 NARF_RESP_EMPTY);
	assert_int_equal(r.consumed, 6);
	narf_resp_req_close(&r);
	/* Oversized: a header line with no end is too big, sign or not. */
	{
		size_t max = 64 * 1024;
		char *big = malloc(max + 2);

		assert_non_null(big);
		memset(big, '9', max + 2);
		big[0] = '*';
		big[1] = '-';
		got = parse_all(big, max + 2, NULL);
		assert_string_equal(
		        got,
		        "ERROR Protocol error: too big mbulk count string\n");
		free(got);
		free(big);
	}
	/* Before AUTH too: Redis checks only counts over 10. */
	narf_resp_limits_default(&lim);
	lim.noauth_multibulk = 10;
	got = parse_all("*-100\r\nPING\r\n", 13, &lim);
	assert_string_equal(got, "EMPTY 7\nDONE 4:PING\n");
	free(got);
}

/* Each malformed multibulk form fails with Redis's message. */
static void test_malformed_multibulk(void **state)
{
	static const char *const mbulk =
	        "ERROR Protocol error: invalid "
	        "multibulk length\n";
	static const char *const blen =
	        "ERROR Protocol error: invalid bulk "
	        "length\n";

	(void)state;
	EXPECT("*-0\r\n", mbulk);
	EXPECT("*00\r\n", mbulk);
	EXPECT("*abc\r\n", mbulk);
	EXPECT("*\r\n", mbulk);
	EXPECT("*01\r\n", mbulk);
	EXPECT("*+1\r\n", mbulk);
	EXPECT("* 1\r\n", mbulk);
	EXPECT("*1 \r\n", mbulk);
	EXPECT("*1\rX$4\r\nPING\r\n", mbulk);
	EXPECT("*9223372036854775808\r\n", mbulk);
	EXPECT("*99999999999999999999999\r\n", mbulk);
	EXPECT("*1\r\n$-1\r\n", blen);
	EXPECT("*1\r\n$-2\r\n", blen);
	EXPECT("*1\r\n$abc\r\n", blen);
	EXPECT("*1\r\n$\r\n", blen);
	EXPECT("*1\r\n$ 3\r\nfoo\r\n", blen);
	EXPECT("*1\r\n$04\r\nPING\r\n", blen);
	EXPECT("*1\r\n$4\rXPING\r\n", blen);
	EXPECT("*1\r\n$9223372036854775808\r\n", blen);
	EXPECT("*1\r\n$18446744073709551616\r\n", blen);
	EXPECT("*1\r\n$3\r\nfooXY",
	       "ERROR Protocol error: expected CRLF after bulk\n");
	EXPECT("*1\r\n$3\r\nfoo\rX",
	       "ERROR Protocol error: expected CRLF after bulk\n");
	EXPECT("*1\r\n*1\r\n$1\r\na\r\n",
	       "ERROR Protocol error: expected '$', got '*'\n");
	EXPECT("*1\r\n:1\r\n", "ERROR Protocol error: expected '$', got ':'\n");
	EXPECT("*1\r\n\r\n", "ERROR Protocol error: expected '$', got ' '\n");
	/* The request before the bad one is still delivered. */
	EXPECT("PING\r\n*2\r\n$1\r\na\r\nx",
	       "DONE 4:PING\nERROR Protocol error: expected '$', got 'x'\n");
}

/* Unbalanced quotes and a closing quote glued to text are errors. */
static void test_unbalanced_quotes(void **state)
{
	static const char *const bad =
	        "ERROR Protocol error: unbalanced "
	        "quotes in request\n";

	(void)state;
	EXPECT("GET \"abc\r\n", bad);
	EXPECT("GET 'abc\r\n", bad);
	EXPECT("GET \"a\"b\r\n", bad);
	EXPECT("GET 'a'b\r\n", bad);
	EXPECT("GET \"abc\\\r\n", bad);
	EXPECT("GET \"a\0\"\r\n", bad);
}

/* Lines without their end fail once longer than max_inline, not before. */
static void test_too_long_lines(void **state)
{
	size_t max = 64 * 1024;
	char *big = malloc(max + 16);
	char *got;

	(void)state;
	assert_non_null(big);
	memset(big, 'a', max + 16);
	got = parse_all(big, max, NULL);
	assert_string_equal(got, "");
	free(got);
	got = parse_all(big, max + 1, NULL);
	assert_string_equal(got,
	                    "ERROR Protocol error: too big inline request\n");
	free(got);
	memset(big, '1', max + 16);
	big[0] = '*';
	got = parse_all(big, max + 1, NULL);
	assert_string_equal(
	        got, "ERROR Protocol error: too big mbulk count string\n");
	free(got);
	memcpy(big, "*1\r\n$", 5);
	got = parse_all(big, max + 5, NULL);
	assert_string_equal(
	        got, "ERROR Protocol error: too big bulk count string\n");
	free(got);
	free(big);
}

/* A count over max_multibulk fails as soon as its header line is in. */
static void test_limit_multibulk_early(void **state)
{
	struct narf_resp_req r;
	char err[128];
	size_t need = 1;

	(void)state;
	assert_int_equal(parse_once("*2000000\r\n", 10, NULL, &need, err, &r),
	                 NARF_RESP_ERROR);
	assert_string_equal(err, "Protocol error: invalid multibulk length");
	narf_resp_req_close(&r);
	/* At the limit the header is accepted, and nothing is allocated. */
	assert_int_equal(parse_once("*1048576\r\n", 10, NULL, &need, err, &r),
	                 NARF_RESP_INCOMPLETE);
	assert_int_equal(need, 0);
	assert_int_equal(r.cap, 0);
	narf_resp_req_close(&r);
}

/* A bulk over max_bulk fails as soon as its length line is in. */
static void test_limit_bulk_early(void **state)
{
	static const char req[] = "*1\r\n$600000000\r\n";
	struct narf_resp_req r;
	char err[128];

	(void)state;
	assert_int_equal(parse_once(req, sizeof(req) - 1, NULL, NULL, err, &r),
	                 NARF_RESP_ERROR);
	assert_string_equal(err, "Protocol error: invalid bulk length");
	narf_resp_req_close(&r);
}

/* A big declared bulk waits with the exact need and allocates nothing. */
static void test_big_bulk_need(void **state)
{
	static const char req[] = "*1000000\r\n$1000000\r\n";
	struct narf_resp_req r;
	char err[128];
	size_t need = 0;

	(void)state;
	assert_int_equal(parse_once(req, sizeof(req) - 1, NULL, &need, err, &r),
	                 NARF_RESP_INCOMPLETE);
	assert_int_equal(need, 20 + 1000000 + 2);
	assert_int_equal(r.cap, 0);
	assert_null(r.argv);
	assert_int_equal(r.scratch.cap, 0);
	narf_resp_req_close(&r);
}

/* Argument arrays grow by doubling as arguments arrive, not up front. */
static void test_args_grow_geometrically(void **state)
{
	struct narf_resp_req r;
	struct narf_buf b;
	char err[128];
	int i;

	(void)state;
	narf_buf_init(&b);
	narf_resp_req_init(&r);
	assert_int_equal(narf_buf_append(&b, "*1000000\r\n", 10), 0);
	for (i = 1; i <= 100; i++) {
		assert_int_equal(narf_buf_append(&b, "$1\r\nx\r\n", 7), 0);
		assert_int_equal(
		        narf_resp_parse(&r, b.data, b.len, NULL, NULL, err),
		        NARF_RESP_INCOMPLETE);
		assert_int_equal(r.argc, i);
		assert_true(r.cap >= (size_t)i && r.cap <= 2 * (size_t)i + 8);
	}
	narf_resp_req_close(&r);
	narf_buf_close(&b);
}

/* One parser handles request after request; big arrays go at reset. */
static void test_reset_reuse(void **state)
{
	struct narf_resp_req r;
	struct narf_buf b;
	char err[128];
	int i;

	(void)state;
	narf_resp_req_init(&r);
	assert_int_equal(narf_resp_parse(&r, "PING\r\n", 6, NULL, NULL, err),
	                 NARF_RESP_DONE);
	narf_resp_req_reset(&r);
	assert_int_equal(narf_resp_parse(&r, "*1\r\n$4\r\nPING\r\n", 14, NULL,
	                                 NULL, err),
	                 NARF_RESP_DONE);
	assert_int_equal(r.argc, 1);
	assert_memory_equal(r.argv[0], "PING", 4);
	narf_resp_req_reset(&r);
	assert_true(r.cap > 0 && r.cap <= 8);

	narf_buf_init(&b);
	assert_int_equal(narf_buf_append(&b, "*2000\r\n", 7), 0);
	for (i = 0; i < 2000; i++)
		assert_int_equal(narf_buf_append(&b, "$1\r\nx\r\n", 7), 0);
	assert_int_equal(narf_resp_parse(&r, b.data, b.len, NULL, NULL, err),
	                 NARF_RESP_DONE);
	assert_int_equal(r.argc, 2000);
	assert_int_equal(r.consumed, b.len);
	narf_resp_req_reset(&r);
	assert_int_equal(r.cap, 0);
	assert_int_equal(narf_resp_parse(&r, "GET k\n", 6, NULL, NULL, err),
	                 NARF_RESP_DONE);
	assert_int_equal(r.argc, 2);
	assert_string_equal(r.argv[1], "k");
	narf_resp_req_close(&r);
	narf_buf_close(&b);
}

/* After an error the parser keeps failing until it is reset. */
static void test_error_sticky(void **state)
{
	struct narf_resp_req r;
	char err[128];

	(void)state;
	assert_int_equal(parse_once("*x\r\n", 4, NULL, NULL, err, &r),
	                 NARF_RESP_ERROR);
	assert_int_equal(narf_resp_parse(&r, "PING\r\n", 6, NULL, NULL, err),
	                 NARF_RESP_ERROR);
	narf_resp_req_reset(&r);
	assert_int_equal(narf_resp_parse(&r, "PING\r\n", 6, NULL, NULL, err),
	                 NARF_RESP_DONE);
	narf_resp_req_close(&r);
}

/* Small limits apply to all three numbers, each at its boundary. */
static void test_custom_limits(void **state)
{
	struct narf_resp_limits lim = {
	        .max_bulk = 3, .max_multibulk = 2, .max_inline = 8};
	char *got;

	(void)state;
	got = parse_all("*2\r\n$3\r\nabc\r\n$0\r\n\r\n", 19, &lim);
	assert_string_equal(got, "DONE 3:abc 0:\n");
	free(got);
	got = parse_all("*3\r\n", 4, &lim);
	assert_string_equal(got,
	                    "ERROR Protocol error: invalid multibulk length\n");
	free(got);
	got = parse_all("*1\r\n$4\r\n", 8, &lim);
	assert_string_equal(got, "ERROR Protocol error: invalid bulk length\n");
	free(got);
	got = parse_all("12345678", 8, &lim);
	assert_string_equal(got, "");
	free(got);
	got = parse_all("123456789", 9, &lim);
	assert_string_equal(got,
	                    "ERROR Protocol error: too big inline request\n");
	free(got);
}

/* Redis's limits before AUTH: 10 arguments of 16 KiB, each refused with
 * its "unauthenticated" error at its header, at the boundary exactly; a
 * count over INT_MAX stays "invalid" (checked first, as Redis 7.0 does), a
 * count over max_multibulk is "unauthenticated" (checked after), and
 * inline requests are not limited by them. */
#define PARSE_LIM(text) parse_all(text, sizeof(text) - 1, &lim)
static void test_noauth_limits(void **state)
{
	static char big[16384 + 32];
	struct narf_resp_limits lim;
	struct narf_resp_req r;
	char err[128];
	char *got;
	size_t n;

	(void)state;
	narf_resp_limits_default(&lim);
	lim.noauth_multibulk = 10;
	lim.noauth_bulk = 16384;
	got = PARSE_LIM("*11\r\n");
	assert_string_equal(got,
	                    "ERROR Protocol error: unauthenticated "
	                    "multibulk length\n");
	free(got);
	got = PARSE_LIM("*2000000\r\n");
	assert_string_equal(got,
	                    "ERROR Protocol error: unauthenticated "
	                    "multibulk length\n");
	free(got);
	got = PARSE_LIM("*3000000000\r\n");
	assert_string_equal(got,
	                    "ERROR Protocol error: invalid multibulk length\n");
	free(got);
	assert_int_equal(parse_once("*10\r\n", 5, &lim, NULL, err, &r),
	                 NARF_RESP_INCOMPLETE);
	narf_resp_req_close(&r);
	got = PARSE_LIM("*1\r\n$16385\r\n");
	assert_string_equal(
	        got, "ERROR Protocol error: unauthenticated bulk length\n");
	free(got);
	got = PARSE_LIM("*1\r\n$600000000\r\n");
	assert_string_equal(got, "ERROR Protocol error: invalid bulk length\n");
	free(got);
	/* 16 KiB exactly is taken. */
	n = (size_t)sprintf(big, "*1\r\n$16384\r\n");
	memset(big + n, 'x', 16384);
	memcpy(big + n + 16384, "\r\n", 2);
	assert_int_equal(parse_once(big, n + 16386, &lim, NULL, err, &r),
	                 NARF_RESP_DONE);
	assert_int_equal(r.argvlen[0], 16384);
	narf_resp_req_close(&r);
	/* Eleven inline arguments are fine. */
	got = PARSE_LIM("a b c d e f g h i j k\r\n");
	assert_string_equal(got,
	                    "DONE 1:a 1:b 1:c 1:d 1:e 1:f 1:g 1:h 1:i "
	                    "1:j 1:k\n");
	free(got);
}

/* Assert that the encoded bytes in b equal want, then empty b. */
static void expect_bytes(struct narf_buf *b, const char *want, size_t n)
{
	assert_int_equal(b->len, n);
	assert_memory_equal(b->data, want, n);
	b->len = 0;
}

#define EXPECT_BYTES(b, want) expect_bytes(b, want, sizeof(want) - 1)

/* Every encoder writes exactly the bytes Redis writes. */
static void test_encoders(void **state)
{
	struct narf_buf b;

	(void)state;
	narf_buf_init(&b);
	assert_int_equal(narf_resp_simple(&b, "OK"), 0);
	EXPECT_BYTES(&b, "+OK\r\n");
	assert_int_equal(narf_resp_error(&b, "ERR bad\r\nthing"), 0);
	EXPECT_BYTES(&b, "-ERR bad  thing\r\n");
	assert_int_equal(narf_resp_errorf(&b, "ERR %s %d", "x", 42), 0);
	EXPECT_BYTES(&b, "-ERR x 42\r\n");
	assert_int_equal(narf_resp_int(&b, 0), 0);
	EXPECT_BYTES(&b, ":0\r\n");
	assert_int_equal(narf_resp_int(&b, -1), 0);
	EXPECT_BYTES(&b, ":-1\r\n");
	assert_int_equal(narf_resp_int(&b, LLONG_MAX), 0);
	EXPECT_BYTES(&b, ":9223372036854775807\r\n");
	assert_int_equal(narf_resp_int(&b, LLONG_MIN), 0);
	EXPECT_BYTES(&b, ":-9223372036854775808\r\n");
	assert_int_equal(narf_resp_bulk(&b, "a\0\r\n", 4), 0);
	EXPECT_BYTES(&b, "$4\r\na\0\r\n\r\n");
	assert_int_equal(narf_resp_bulk(&b, NULL, 0), 0);
	EXPECT_BYTES(&b, "$0\r\n\r\n");
	assert_int_equal(narf_resp_bulk_str(&b, "hello"), 0);
	EXPECT_BYTES(&b, "$5\r\nhello\r\n");
	assert_int_equal(narf_resp_null(&b), 0);
	EXPECT_BYTES(&b, "$-1\r\n");
	assert_int_equal(narf_resp_null_array(&b), 0);
	EXPECT_BYTES(&b, "*-1\r\n");
	assert_int_equal(narf_resp_array(&b, 0), 0);
	assert_int_equal(narf_resp_array(&b, 2), 0);
	assert_int_equal(narf_resp_int(&b, 7), 0);
	assert_int_equal(narf_resp_bulk_str(&b, "x"), 0);
	EXPECT_BYTES(&b, "*0\r\n*2\r\n:7\r\n$1\r\nx\r\n");
	narf_buf_close(&b);
}

/* A long error message is formatted whole, past any fixed buffer. */
static void test_errorf_long(void **state)
{
	struct narf_buf b;
	char big[1000];

	(void)state;
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	narf_buf_init(&b);
	assert_int_equal(narf_resp_errorf(&b, "ERR %s!", big), 0);
	assert_int_equal(b.len, 1 + 4 + 999 + 1 + 2);
	assert_memory_equal(b.data + b.len - 5, "zz!\r\n", 5);
	narf_buf_close(&b);
}

/* Assert the bulk narf_resp_bulk_double() writes for v is want. */
static void expect_double(long double v, const char *want)
{
	struct narf_buf b;
	char line[6000];
	int n;

	narf_buf_init(&b);
	assert_int_equal(narf_resp_bulk_double(&b, v), 0);
	n = snprintf(line, sizeof(line), "$%zu\r\n%s\r\n", strlen(want), want);
	expect_bytes(&b, line, (size_t)n);
	narf_buf_close(&b);
}

/* Doubles print as redis-cli INCRBYFLOAT showed on redis-server 7.0.15. */
static void test_bulk_double(void **state)
{
	(void)state;
	expect_double(strtold("10.5", NULL), "10.5");
	expect_double(strtold("3.0e3", NULL), "3000");
	expect_double(strtold("5.0e-1", NULL), "0.5");
	expect_double(strtold("0.1", NULL) + strtold("0.2", NULL), "0.3");
	expect_double(strtold("1e-20", NULL), "0");
	expect_double(strtold("-1e-20", NULL), "0");
	expect_double(strtold("1.23456789012345678", NULL),
	              "1.23456789012345678");
	expect_double(strtold("1e30", NULL), "1000000000000000000024696061952");
	expect_double(strtold("-2.5", NULL), "-2.5");
	expect_double(strtold("100000000000000000.5", NULL),
	              "100000000000000000.5");
	expect_double(1.0L - 1.0L, "0");
	expect_double(strtold("1.5e-17", NULL), "0.00000000000000002");
	expect_double(strtold("123456789.123456789", NULL),
	              "123456789.12345678899873747");
	expect_double(strtold("-0.0000001", NULL), "-0.0000001");
	expect_double(-0.0L, "0");
	expect_double(1.0L / 0.0L, "inf");
	expect_double(-1.0L / 0.0L, "-inf");
}

/* Every RESP3 encoder writes the bytes redis-server 7.0.15 writes under
 * HELLO 3 (DEBUG PROTOCOL map/set/null/true/false/bignum/verbatim/push). */
static void test_resp3_encoders(void **state)
{
	static const char text[] = "This is a verbatim\nstring";
	struct narf_buf b;

	(void)state;
	narf_buf_init(&b);
	assert_int_equal(narf_resp3_null(&b), 0);
	EXPECT_BYTES(&b, "_\r\n");
	assert_int_equal(narf_resp3_bool(&b, true), 0);
	assert_int_equal(narf_resp3_bool(&b, false), 0);
	EXPECT_BYTES(&b, "#t\r\n#f\r\n");
	assert_int_equal(narf_resp3_map(&b, 3), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(narf_resp_int(&b, i), 0);
		assert_int_equal(narf_resp3_bool(&b, i == 1), 0);
	}
	EXPECT_BYTES(&b, "%3\r\n:0\r\n#f\r\n:1\r\n#t\r\n:2\r\n#f\r\n");
	assert_int_equal(narf_resp3_map(&b, 0), 0);
	EXPECT_BYTES(&b, "%0\r\n");
	assert_int_equal(narf_resp3_set(&b, 3), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(narf_resp_int(&b, i), 0);
	EXPECT_BYTES(&b, "~3\r\n:0\r\n:1\r\n:2\r\n");
	assert_int_equal(narf_resp3_set(&b, 0), 0);
	EXPECT_BYTES(&b, "~0\r\n");
	assert_int_equal(narf_resp3_push(&b, 2), 0);
	assert_int_equal(narf_resp_bulk_str(&b, "server-cpu-usage"), 0);
	assert_int_equal(narf_resp_int(&b, 42), 0);
	EXPECT_BYTES(&b, ">2\r\n$16\r\nserver-cpu-usage\r\n:42\r\n");
	assert_int_equal(
	        narf_resp3_bignum(&b, "1234567999999999999999999999999999999",
	                          37),
	        0);
	EXPECT_BYTES(&b, "(1234567999999999999999999999999999999\r\n");
	assert_int_equal(narf_resp3_bignum(&b, "-1\r\n2", 5), 0);
	EXPECT_BYTES(&b, "(-1  2\r\n");
	assert_int_equal(narf_resp3_verbatim(&b, text, sizeof(text) - 1), 0);
	EXPECT_BYTES(&b, "=29\r\ntxt:This is a verbatim\nstring\r\n");
	assert_int_equal(narf_resp3_verbatim(&b, NULL, 0), 0);
	EXPECT_BYTES(&b, "=4\r\ntxt:\r\n");
	assert_int_equal(narf_resp3_verbatim(&b, "a\0\r\n", 4), 0);
	EXPECT_BYTES(&b, "=8\r\ntxt:a\0\r\n\r\n");
	narf_buf_close(&b);
}

/* Assert the RESP3 double narf_resp3_double() writes for v is want. */
static void expect_double3(double v, const char *want)
{
	struct narf_buf b;
	char line[64];
	int n;

	narf_buf_init(&b);
	assert_int_equal(narf_resp3_double(&b, v), 0);
	n = snprintf(line, sizeof(line), ",%s\r\n", want);
	expect_bytes(&b, line, (size_t)n);
	narf_buf_close(&b);
}

/* Doubles are "%.17g" as 7.0's addReplyDouble(): the ZSCOREs and DEBUG
 * PROTOCOL double of redis-server 7.0.15 under HELLO 3, and the edges. */
static void test_resp3_double(void **state)
{
	(void)state;
	expect_double3(1.1, "1.1000000000000001");
	expect_double3(3, "3");
	expect_double3(3.5, "3.5");
	expect_double3(3.141, "3.141");
	expect_double3(0.1, "0.10000000000000001");
	expect_double3(100, "100");
	expect_double3(0, "0");
	expect_double3(-0.0, "-0");
	expect_double3(-2.5, "-2.5");
	expect_double3(1e20, "1e+20");
	expect_double3(1e300, "1.0000000000000001e+300");
	expect_double3(1e-7, "9.9999999999999995e-08");
	expect_double3(123456789012345678.0, "1.2345678901234568e+17");
	expect_double3(-1.7976931348623157e308, "-1.7976931348623157e+308");
	expect_double3(4.9406564584124654e-324, "4.9406564584124654e-324");
	expect_double3(HUGE_VAL, "inf");
	expect_double3(-HUGE_VAL, "-inf");
	expect_double3(NAN, "nan");
	expect_double3(-NAN, "-nan");
}

/* Assert the RESP2 bulk narf_resp2_double() writes for v is want. */
static void expect_double2(double v, const char *want)
{
	struct narf_buf b;
	char line[64];
	int n;

	narf_buf_init(&b);
	assert_int_equal(narf_resp2_double(&b, v), 0);
	n = snprintf(line, sizeof(line), "$%zu\r\n%s\r\n", strlen(want), want);
	expect_bytes(&b, line, (size_t)n);
	narf_buf_close(&b);
}

/* RESP2 doubles are bulks of the same digits: redis-server 7.0.15's
 * ZSCOREs without HELLO 3, the integer fast path's bounds (2^52 - 1 and
 * 2^52 are integral either way), and the edges. */
static void test_resp2_double(void **state)
{
	(void)state;
	expect_double2(1.1, "1.1000000000000001");
	expect_double2(3, "3");
	expect_double2(-3, "-3");
	expect_double2(2.5, "2.5");
	expect_double2(0.1, "0.10000000000000001");
	expect_double2(0, "0");
	expect_double2(-0.0, "-0");
	expect_double2(1e17, "1e+17");
	expect_double2(1e20, "1e+20");
	expect_double2(123456789012345678.0, "1.2345678901234568e+17");
	expect_double2(4503599627370495.0, "4503599627370495");
	expect_double2(4503599627370496.0, "4503599627370496");
	expect_double2(-4503599627370495.0, "-4503599627370495");
	expect_double2(-4503599627370496.0, "-4503599627370496");
	expect_double2(1.5e-300, "1.5000000000000001e-300");
	expect_double2(HUGE_VAL, "inf");
	expect_double2(-HUGE_VAL, "-inf");
	expect_double2(NAN, "nan");
}

/* A peer's replies: whole, split at every byte, nested, and malformed. */
static void test_reply_len(void **state)
{
	static const char *whole[] = {
	        "+OK\r\n",
	        "-ERR x\r\n",
	        ":-12\r\n",
	        "$3\r\nabc\r\n",
	        "$-1\r\n",
	        "*-1\r\n",
	        "*0\r\n",
	        "*2\r\n$1\r\na\r\n*2\r\n:1\r\n$-1\r\n",
	        "$0\r\n\r\n",
	        /* RESP3: redis-server 7.0.15's bytes, the spec's other forms */
	        "_\r\n",
	        "#t\r\n",
	        "#f\r\n",
	        ",1.1000000000000001\r\n",
	        ",-inf\r\n",
	        "(1234567999999999999999999999999999999\r\n",
	        "(-12\r\n",
	        "(0\r\n",
	        "!21\r\nSYNTAX invalid syntax\r\n",
	        "!0\r\n\r\n",
	        "=29\r\ntxt:This is a verbatim\nstring\r\n",
	        "=4\r\ntxt:\r\n",
	        "%3\r\n:0\r\n#f\r\n:1\r\n#t\r\n:2\r\n#f\r\n",
	        "%0\r\n",
	        "~3\r\n:0\r\n:1\r\n:2\r\n",
	        ">2\r\n$16\r\nserver-cpu-usage\r\n:42\r\n",
	        "|1\r\n$14\r\nkey-popularity\r\n*2\r\n$7\r\nkey:123\r\n:90\r\n"
	        "$39\r\nSome real reply following the attribute\r\n",
	        "%1\r\n~1\r\n_\r\n*1\r\n%1\r\n,0\r\n=5\r\ntxt:x\r\n",
	};
	static const char *bad[] = {
	        "?x\r\n",
	        "+a\rb\r\n",
	        ":\r\n",
	        ":1x\r\n",
	        "$-2\r\n",
	        "$2\r\nabc\r\n",
	        "*-5\r\n",
	        "$01\r\na\r\n",
	        "+a\n",
	        "$999999999\r\n",
	        ":99999999999999999999\r\n",
	        "_x\r\n",
	        "#\r\n",
	        "#x\r\n",
	        "#tt\r\n",
	        ",\r\n",
	        "(\r\n",
	        "(-\r\n",
	        "(01\r\n",
	        "(-0\r\n",
	        "(1x\r\n",
	        "!-1\r\n",
	        "=-1\r\n",
	        "=3\r\ntxt\r\n",
	        "=4\r\ntxt;\r\n",
	        "=5\r\ntxt:xY\n",
	        "%-1\r\n",
	        "~-1\r\n",
	        ">-1\r\n",
	        "|-1\r\n",
	        "%x\r\n",
	        "%999999999\r\n",
	};
	size_t len;

	for (size_t i = 0; i < sizeof(whole) / sizeof(whole[0]); i++) {
		size_t n = strlen(whole[i]);
		char buf[256];

		/* followed by another reply, which is left alone */
		snprintf(buf, sizeof(buf), "%s+NEXT\r\n", whole[i]);
		assert_int_equal(
		        narf_resp_reply_len(buf, strlen(buf), 1024, &len),
		        NARF_RESP_DONE);
		assert_int_equal(len, n);
		for (size_t k = 0; k < n; k++)
			assert_int_equal(
			        narf_resp_reply_len(whole[i], k, 1024, &len),
			        NARF_RESP_INCOMPLETE);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(
		        narf_resp_reply_len(bad[i], strlen(bad[i]), 1024, &len),
		        NARF_RESP_ERROR);
	/* Counts near LLONG_MAX cannot wrap the elements still to read. */
	{
		static const char huge[] =
		        "%9223372036854775807\r\n"
		        "%9223372036854775807\r\n"
		        "*9223372036854775807\r\n+x\r\n";

		assert_int_equal(narf_resp_reply_len(huge, sizeof(huge) - 1,
		                                     UINT64_MAX, &len),
		                 NARF_RESP_ERROR);
	}
}

static void test_command_encoding(void **state)
{
	const char *argv[] = {"SET", "k", ""};
	size_t argvlen[] = {3, 1, 0};
	struct narf_buf b;

	narf_buf_init(&b);
	assert_int_equal(narf_resp_command(&b, 3, argv, argvlen), 0);
	assert_int_equal(b.len,
	                 strlen("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"));
	assert_memory_equal(b.data, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n",
	                    b.len);
	narf_buf_close(&b);
}

static void test_format_u64(void **state)
{
	char buf[24];
	const struct {
		uint64_t v;
		const char *s;
	} cases[] = {{0, "0"},
	             {7, "7"},
	             {10, "10"},
	             {1700000000123ULL, "1700000000123"},
	             {UINT64_MAX, "18446744073709551615"}};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = narf_format_u64(buf, cases[i].v);

		assert_int_equal(n, strlen(cases[i].s));
		assert_memory_equal(buf, cases[i].s, n);
	}
}

/* -MOVED: slot and address; anything else is refused. */
static void test_moved(void **state)
{
	static const char *bad[] = {
	        "MOVED",
	        "MOVED 1",
	        "MOVED 16384 127.0.0.1:7001",
	        "MOVED -1 127.0.0.1:7001",
	        "MOVED x 127.0.0.1:7001",
	        "MOVED 1 127.0.0.1",
	        "MOVED 1 127.0.0.1:7001 extra",
	        "MOVED 1 127.0.0.1:0",
	        "ASK 1 127.0.0.1:7001",
	        "MOVED 1 "
	        "127.0.0.1:7001xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	        "xxxxxxxxx",
	};
	char addr[NARF_ADDR_SIZE];
	unsigned slot = 99;

	(void)state;
	assert_int_equal(
	        narf_reply_moved("MOVED 3999 127.0.0.1:7201", 25, &slot, addr),
	        0);
	assert_int_equal(slot, 3999);
	assert_string_equal(addr, "127.0.0.1:7201");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(
		        narf_reply_moved(bad[i], strlen(bad[i]), &slot, addr),
		        NARF_EINVAL);
	/* truncated: the same text cut short */
	assert_int_equal(
	        narf_reply_moved("MOVED 3999 127.0.0.1:7201", 12, &slot, addr),
	        NARF_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_pipeline_whole),
	        cmocka_unit_test(test_pipeline_every_split),
	        cmocka_unit_test(test_pipeline_byte_by_byte),
	        cmocka_unit_test(test_byte_by_byte_is_linear),
	        cmocka_unit_test(test_binary_and_empty_bulks),
	        cmocka_unit_test(test_multibulk_pointers),
	        cmocka_unit_test(test_inline_quoting),
	        cmocka_unit_test(test_inline_line_ends),
	        cmocka_unit_test(test_empty_requests),
	        cmocka_unit_test(test_negative_counts),
	        cmocka_unit_test(test_malformed_multibulk),
	        cmocka_unit_test(test_unbalanced_quotes),
	        cmocka_unit_test(test_too_long_lines),
	        cmocka_unit_test(test_limit_multibulk_early),
	        cmocka_unit_test(test_limit_bulk_early),
	        cmocka_unit_test(test_big_bulk_need),
	        cmocka_unit_test(test_args_grow_geometrically),
	        cmocka_unit_test(test_reset_reuse),
	        cmocka_unit_test(test_error_sticky),
	        cmocka_unit_test(test_custom_limits),
	        cmocka_unit_test(test_noauth_limits),
	        cmocka_unit_test(test_encoders),
	        cmocka_unit_test(test_errorf_long),
	        cmocka_unit_test(test_bulk_double),
	        cmocka_unit_test(test_resp3_encoders),
	        cmocka_unit_test(test_resp3_double),
	        cmocka_unit_test(test_resp2_double),
	        cmocka_unit_test(test_reply_len),
	        cmocka_unit_test(test_command_encoding),
	        cmocka_unit_test(test_format_u64),
	        cmocka_unit_test(test_moved),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
