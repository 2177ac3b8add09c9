/*
 * Unit tests for cli/parse.h: cachecli's decoders of RESP replies, -MOVED,
 * SCAN replies, INFO text and stdin values take whole, well-formed input and
 * reject truncated, oversized and malformed input without crashing or
 * allocating for lengths that were only declared.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli/parse.h"
#include "common/errors.h"
#include "common/resp.h"

static int parse(const char *s, struct narf_reply *r)
{
	return narf_reply_parse(s, strlen(s), NULL, r, NULL);
}

/* Every reply type decodes, strings point into the input, and what follows
 * the reply is left alone. */
static void test_reply_types(void **state)
{
	static const char in[] =
	        "*6\r\n+OK\r\n-ERR bad\r\n:-42\r\n$3\r\na\0b\r\n$-1\r\n"
	        "*2\r\n$0\r\n\r\n*0\r\n+NEXT\r\n";
	struct narf_reply r;
	size_t used = 0;

	(void)state;
	assert_int_equal(narf_reply_parse(in, sizeof(in) - 1, NULL, &r, &used),
	                 NARF_RESP_DONE);
	assert_int_equal(used, sizeof(in) - 1 - strlen("+NEXT\r\n"));
	assert_int_equal(r.type, NARF_REPLY_ARRAY);
	assert_int_equal(r.n, 6);
	assert_int_equal(r.elems[0].type, NARF_REPLY_STATUS);
	assert_int_equal(r.elems[0].len, 2);
	assert_memory_equal(r.elems[0].str, "OK", 2);
	assert_int_equal(r.elems[1].type, NARF_REPLY_ERROR);
	assert_true(narf_reply_is_error(&r.elems[1], "ERR"));
	assert_false(narf_reply_is_error(&r.elems[1], "ER"));
	assert_int_equal(r.elems[2].type, NARF_REPLY_INT);
	assert_int_equal(r.elems[2].integer, -42);
	assert_int_equal(r.elems[3].type, NARF_REPLY_BULK);
	assert_int_equal(r.elems[3].len, 3);
	assert_memory_equal(r.elems[3].str, "a\0b", 3);
	assert_true(r.elems[3].str > in && r.elems[3].str < in + sizeof(in));
	assert_int_equal(r.elems[4].type, NARF_REPLY_NIL);
	assert_int_equal(r.elems[5].type, NARF_REPLY_ARRAY);
	assert_int_equal(r.elems[5].elems[0].len, 0);
	assert_int_equal(r.elems[5].elems[1].n, 0);
	narf_reply_free(&r);
	assert_int_equal(parse("*-1\r\n", &r), NARF_RESP_DONE);
	assert_int_equal(r.type, NARF_REPLY_NIL);
}

/* A reply cut at any byte is incomplete, never an error or a success. */
static void test_reply_truncated(void **state)
{
	static const char *whole[] = {
	        "+OK\r\n",
	        "-MOVED 1 127.0.0.1:7\r\n",
	        ":12\r\n",
	        "$5\r\nhello\r\n",
	        "*2\r\n$1\r\n0\r\n*2\r\n$1\r\na\r\n$2\r\nbc\r\n",
	};
	struct narf_reply r;

	(void)state;
	for (size_t i = 0; i < sizeof(whole) / sizeof(whole[0]); i++) {
		size_t n = strlen(whole[i]);

		for (size_t k = 0; k < n; k++)
			assert_int_equal(
			        narf_reply_parse(whole[i], k, NULL, &r, NULL),
			        NARF_RESP_INCOMPLETE);
		assert_int_equal(narf_reply_parse(whole[i], n, NULL, &r, NULL),
		                 NARF_RESP_DONE);
		narf_reply_free(&r);
	}
}

/* Malformed replies are errors: unknown types, bad numbers, bare LF or CR,
 * a bulk without its CRLF, negative lengths, leading zeros. */
static void test_reply_malformed(void **state)
{
	static const char *bad[] = {
	        "?x\r\n",
	        "+a\rb\r\n",
	        "+a\n",
	        ":\r\n",
	        ":1x\r\n",
	        ": 1\r\n",
	        "$-2\r\n",
	        "$2\r\nabc\r\n",
	        "$x\r\n",
	        "*-5\r\n",
	        "$01\r\na\r\n",
	        "*1\r\n?\r\n",
	        "\r\n",
	        ":99999999999999999999\r\n",
	        "*2\r\n+a\r\n:z\r\n",
	};
	struct narf_reply r;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(parse(bad[i], &r), NARF_RESP_ERROR);
}

/* Limits: a bulk or array over the limit is too big (not malformed) as
 * soon as the header is read, also inside an array; nesting too deep and a
 * long simple string line are errors. */
static void test_reply_oversized(void **state)
{
	struct narf_reply_limits lim = {
	        .max_depth = 2, .max_elems = 3, .max_bulk = 4};
	struct narf_reply r;
	char *line;

	(void)state;
	assert_int_equal(narf_reply_parse("$5\r\n", 4, &lim, &r, NULL),
	                 NARF_REPLY_TOO_BIG);
	assert_int_equal(narf_reply_parse("*4\r\n", 4, &lim, &r, NULL),
	                 NARF_REPLY_TOO_BIG);
	assert_int_equal(
	        narf_reply_parse("*2\r\n$1\r\na\r\n$5\r\n", 17, &lim, &r, NULL),
	        NARF_REPLY_TOO_BIG);
	/* a malformed header is an error whatever its size */
	assert_int_equal(narf_reply_parse("*04\r\n", 5, &lim, &r, NULL),
	                 NARF_RESP_ERROR);
	assert_int_equal(narf_reply_parse("$4\r\nabcd\r\n", 10, &lim, &r, NULL),
	                 NARF_RESP_DONE);
	assert_int_equal(
	        narf_reply_parse("*1\r\n*1\r\n:1\r\n", 12, &lim, &r, NULL),
	        NARF_RESP_DONE);
	narf_reply_free(&r);
	assert_int_equal(narf_reply_parse("*1\r\n*1\r\n*1\r\n:1\r\n", 16, &lim,
	                                  &r, NULL),
	                 NARF_RESP_ERROR);
	/* the defaults: 1M elements, 512 MiB bulks */
	assert_int_equal(parse("*1048577\r\n", &r), NARF_REPLY_TOO_BIG);
	assert_int_equal(parse("$536870913\r\n", &r), NARF_REPLY_TOO_BIG);
	/* a huge announced array with nothing behind it allocates nothing
	 * and waits (valgrind/ASan would show a 48 MB calloc otherwise) */
	assert_int_equal(parse("*1048576\r\n", &r), NARF_RESP_INCOMPLETE);
	line = malloc(70000);
	assert_non_null(line);
	memset(line, 'x', 70000);
	line[0] = '+';
	assert_int_equal(narf_reply_parse(line, 70000, NULL, &r, NULL),
	                 NARF_RESP_ERROR);
	free(line);
}

/* SCAN: [cursor, [keys]]; other shapes are protocol errors. */
static void test_scan_reply(void **state)
{
	static const char *bad[] = {
	        "*1\r\n$1\r\n0\r\n",
	        "*2\r\n:0\r\n*0\r\n",
	        "*2\r\n$1\r\nx\r\n*0\r\n",
	        "*2\r\n$0\r\n\r\n*0\r\n",
	        "*2\r\n$1\r\n0\r\n$1\r\na\r\n",
	        "*2\r\n$1\r\n0\r\n*1\r\n:1\r\n",
	        "*2\r\n$21\r\n184467440737095516160\r\n*0\r\n",
	        "+OK\r\n",
	};
	const struct narf_reply *keys;
	struct narf_reply r;
	uint64_t cursor = 0;

	(void)state;
	assert_int_equal(
	        parse("*2\r\n$2\r\n17\r\n*2\r\n$1\r\na\r\n$0\r\n\r\n", &r),
	        NARF_RESP_DONE);
	assert_int_equal(narf_reply_scan(&r, &cursor, &keys), 0);
	assert_int_equal(cursor, 17);
	assert_int_equal(keys->n, 2);
	assert_memory_equal(keys->elems[0].str, "a", 1);
	narf_reply_free(&r);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse(bad[i], &r), NARF_RESP_DONE);
		assert_int_equal(narf_reply_scan(&r, &cursor, &keys),
		                 NARF_EPROTO);
		narf_reply_free(&r);
	}
}

/* INFO: fields at line starts, CRLF or LF, fractions cut; absent and
 * malformed fields are errors; keyspace counts keys. */
static void test_info(void **state)
{
	static const char text[] =
	        "# Memory\r\nused_memory:1234\r\nused_memory_human:1.2K\r\n"
	        "# Stats\ntotal_commands_processed:99\n"
	        "instantaneous_ops_per_sec:12.50\r\nbad:12x\r\nempty:\r\n"
	        "xused:5\r\n# Keyspace\r\ndb0:keys=42,expires=1,avg_ttl=0";
	uint64_t v = 7;

	(void)state;
	assert_int_equal(
	        narf_info_u64(text, sizeof(text) - 1, "used_memory", &v), 0);
	assert_int_equal(v, 1234);
	assert_int_equal(narf_info_u64(text, sizeof(text) - 1,
	                               "total_commands_processed", &v),
	                 0);
	assert_int_equal(v, 99);
	assert_int_equal(narf_info_u64(text, sizeof(text) - 1,
	                               "instantaneous_ops_per_sec", &v),
	                 0);
	assert_int_equal(v, 12);
	v = 7;
	assert_int_equal(narf_info_u64(text, sizeof(text) - 1, "bad", &v),
	                 NARF_EINVAL);
	assert_int_equal(narf_info_u64(text, sizeof(text) - 1, "empty", &v),
	                 NARF_EINVAL);
	assert_int_equal(narf_info_u64(text, sizeof(text) - 1, "used", &v),
	                 NARF_EINVAL);
	assert_int_equal(
	        narf_info_u64(text, sizeof(text) - 1, "used_memory_human", &v),
	        NARF_EINVAL);
	assert_int_equal(v, 7);
	assert_int_equal(narf_info_keys(text, sizeof(text) - 1, &v), 0);
	assert_int_equal(v, 42);
	/* truncated: the text cut inside the field name or its value */
	assert_int_equal(narf_info_u64(text, 14, "used_memory", &v),
	                 NARF_EINVAL);
	assert_int_equal(narf_info_u64(text, 24, "used_memory", &v), 0);
	assert_int_equal(v, 12);
	/* oversized: 20 digits do not fit */
	assert_int_equal(narf_info_u64("n:99999999999999999999", 22, "n", &v),
	                 NARF_EINVAL);
	/* no keyspace line: an empty node */
	assert_int_equal(narf_info_keys("# Keyspace\r\n", 12, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(narf_info_keys("db0:expires=1\r\n", 15, &v),
	                 NARF_EINVAL);
	assert_int_equal(narf_info_keys("db0:keys=\r\n", 11, &v), NARF_EINVAL);
	assert_int_equal(narf_info_keys(NULL, 0, &v), NARF_EINVAL);
}

/* Write n bytes of 'v' to a pipe from a child and read them back with
 * narf_cli_read_all(fd, max). */
static int read_pipe(size_t n, size_t max, struct narf_buf *out)
{
	int fds[2], rv;
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char chunk[4096];

		close(fds[0]);
		memset(chunk, 'v', sizeof(chunk));
		while (n > 0) {
			size_t k = n < sizeof(chunk) ? n : sizeof(chunk);
			ssize_t w = write(fds[1], chunk, k);

			if (w <= 0)
				_exit(0); /* the reader gave up: fine */
			n -= (size_t)w;
		}
		_exit(0);
	}
	close(fds[1]);
	rv = narf_cli_read_all(fds[0], max, out);
	close(fds[0]);
	waitpid(pid, NULL, 0);
	return rv;
}

/* A stdin value: empty, exactly at the limit, and one byte over it. */
static void test_read_all(void **state)
{
	struct narf_buf b;

	(void)state;
	narf_buf_init(&b);
	assert_int_equal(read_pipe(0, 100, &b), 0);
	assert_int_equal(b.len, 0);
	assert_int_equal(read_pipe(100000, 100000, &b), 0);
	assert_int_equal(b.len, 100000);
	b.len = 0;
	assert_int_equal(read_pipe(100001, 100000, &b), NARF_ETOOLARGE);
	assert_int_equal(b.len, 100001);
	b.len = 0;
	assert_int_equal(read_pipe(5000000, 100, &b), NARF_ETOOLARGE);
	assert_true(b.len <= 101);
	assert_int_equal(narf_cli_read_all(-1, 10, &b), NARF_EIO);
	narf_buf_close(&b);
}

/* The whole output of narf_reply_format_lines() for the reply in, with
 * pieces of at most max bytes (plus a line); its result. */
static int format_all(const char *in,
                      unsigned per_line,
                      size_t max,
                      struct narf_buf *out,
                      unsigned *calls)
{
	struct narf_reply r;
	struct narf_buf piece;
	size_t next = 0;
	int rv = 0;

	assert_int_equal(parse(in, &r), NARF_RESP_DONE);
	narf_buf_init(&piece);
	*calls = 0;
	do {
		piece.len = 0;
		rv = narf_reply_format_lines(&r, per_line, &next, max, &piece);
		(*calls)++;
		if (rv == 0)
			assert_int_equal(
			        narf_buf_append(out, piece.data, piece.len), 0);
	} while (rv == 0 && next < r.n);
	narf_buf_close(&piece);
	narf_reply_free(&r);
	return rv;
}

/* get's lines for a collection: pairs joined by a tab, singles alone,
 * bytes as they are (tabs, newlines, NULs), in pieces when asked; a reply
 * of another shape is refused before anything is written. */
static void test_format_lines(void **state)
{
	static const char hash[] =
	        "*4\r\n$1\r\nf\r\n$1\r\nv\r\n"
	        "$3\r\nt\tx\r\n$4\r\na\nb\0\r\n";
	static const char list[] = "*3\r\n$1\r\na\r\n$0\r\n\r\n$5\r\nhello\r\n";
	struct narf_buf out;
	struct narf_reply r;
	unsigned calls;
	size_t next;

	(void)state;
	narf_buf_init(&out);
	assert_int_equal(
	        narf_reply_parse(hash, sizeof(hash) - 1, NULL, &r, NULL),
	        NARF_RESP_DONE);
	next = 0;
	assert_int_equal(narf_reply_format_lines(&r, 2, &next, 1 << 20, &out),
	                 0);
	assert_int_equal(next, 4);
	assert_int_equal(out.len, 13);
	assert_memory_equal(out.data, "f\tv\nt\tx\ta\nb\0\n", 13);
	/* a next inside a line, or past the end, is a caller's bug */
	next = 1;
	assert_int_equal(narf_reply_format_lines(&r, 2, &next, 100, &out),
	                 NARF_EINVAL);
	next = 6;
	assert_int_equal(narf_reply_format_lines(&r, 2, &next, 100, &out),
	                 NARF_EINVAL);
	narf_reply_free(&r);

	/* singles; a piece ends after the line that reaches max */
	out.len = 0;
	assert_int_equal(format_all(list, 1, 1, &out, &calls), 0);
	assert_int_equal(calls, 3);
	assert_int_equal(out.len, 9);
	assert_memory_equal(out.data, "a\n\nhello\n", 9);
	out.len = 0;
	assert_int_equal(format_all(list, 1, 3, &out, &calls), 0);
	assert_int_equal(calls, 2);
	assert_memory_equal(out.data, "a\n\nhello\n", 9);
	/* zset pairs: a score as the node wrote it */
	out.len = 0;
	assert_int_equal(format_all("*4\r\n$3\r\none\r\n$1\r\n1\r\n"
	                            "$3\r\ntwo\r\n$3\r\ninf\r\n",
	                            2, 1 << 20, &out, &calls),
	                 0);
	assert_int_equal(out.len, 14);
	assert_memory_equal(out.data, "one\t1\ntwo\tinf\n", 14);

	/* wrong shapes: nothing written */
	out.len = 0;
	assert_int_equal(format_all("*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n",
	                            2, 100, &out, &calls),
	                 NARF_EPROTO);
	assert_int_equal(
	        format_all("*2\r\n$1\r\na\r\n:1\r\n", 1, 100, &out, &calls),
	        NARF_EPROTO);
	assert_int_equal(format_all("*1\r\n*0\r\n", 1, 100, &out, &calls),
	                 NARF_EPROTO);
	assert_int_equal(format_all("$1\r\na\r\n", 1, 100, &out, &calls),
	                 NARF_EPROTO);
	assert_int_equal(format_all("*1\r\n$1\r\na\r\n", 0, 100, &out, &calls),
	                 NARF_EPROTO);
	assert_int_equal(out.len, 0);
	/* an empty array has no lines */
	assert_int_equal(format_all("*0\r\n", 2, 100, &out, &calls), 0);
	assert_int_equal(out.len, 0);
	narf_buf_close(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_reply_types),
	        cmocka_unit_test(test_reply_truncated),
	        cmocka_unit_test(test_reply_malformed),
	        cmocka_unit_test(test_reply_oversized),
	        cmocka_unit_test(test_scan_reply),
	        cmocka_unit_test(test_format_lines),
	        cmocka_unit_test(test_info),
	        cmocka_unit_test(test_read_all),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
