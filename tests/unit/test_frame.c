/*
 * Unit tests for common/frame.h: the newline-delimited JSON decoder and
 * encoder of the coordinator API (docs/protocol.md, "Framing").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/errors.h"
#include "common/frame.h"

/* A small limit keeps the size tests fast; one test uses the real one. */
#define SMALL_MAX 64

/* A message exercising nesting, arrays, escapes and brackets in strings. */
static const char sample[] =
        "{\"op\":\"join\",\"addr\":\"127.0.0.1:7201\",\"n\":-12.5,"
        "\"x\":{\"a\":[1,2,{\"b\":\"q\\\"}{[\\\\\"}],\"t\":true,\"z\":null},"
        "\"u\":\"\\u00e9\\n\"}\n";

/* Feed text and expect the feed to succeed. */
static void feed_ok(struct narf_frame_decoder *d, const char *text, size_t n)
{
	assert_int_equal(narf_frame_feed(d, text, n), 0);
}

/* Take the next message, expecting success; returns NULL when none. */
static json_t *next_ok(struct narf_frame_decoder *d)
{
	char errmsg[NARF_ERRMSG_SIZE] = "";
	json_t *msg = (json_t *)1;
	int rc = narf_frame_next(d, &msg, errmsg);

	if (rc != 0)
		fail_msg("narf_frame_next: %s (%s)", narf_strerror(rc), errmsg);
	return msg;
}

/* Take the next message expecting error err with a non-empty errmsg. */
static void next_err(struct narf_frame_decoder *d, int err)
{
	char errmsg[NARF_ERRMSG_SIZE] = "";
	json_t *msg = (json_t *)1;

	assert_int_equal(narf_frame_next(d, &msg, errmsg), err);
	assert_null(msg);
	assert_true(errmsg[0] != '\0');
}

/* Assert that the next message equals the JSON text want, and consume it. */
static void expect_msg(struct narf_frame_decoder *d, const char *want)
{
	json_t *expected = json_loads(want, 0, NULL);
	json_t *msg = next_ok(d);

	assert_non_null(expected);
	assert_non_null(msg);
	assert_true(json_equal(msg, expected));
	json_decref(msg);
	json_decref(expected);
}

/* Assert that no whole message is buffered. */
static void expect_none(struct narf_frame_decoder *d)
{
	assert_null(next_ok(d));
}

/* Decode one line from a fresh decoder and expect error err. */
static void line_fails(const char *line, int err)
{
	struct narf_frame_decoder d;

	narf_frame_decoder_init(&d, NARF_FRAME_MAX_REQUEST);
	feed_ok(&d, line, strlen(line));
	next_err(&d, err);
	narf_frame_decoder_close(&d);
}

/* Decode one line from a fresh decoder and expect it to equal want. */
static void line_parses(const char *line, const char *want)
{
	struct narf_frame_decoder d;

	narf_frame_decoder_init(&d, NARF_FRAME_MAX_REQUEST);
	feed_ok(&d, line, strlen(line));
	expect_msg(&d, want);
	expect_none(&d);
	narf_frame_decoder_close(&d);
}

/* Build "{"k":"xxx...x"}" of exactly len bytes (len >= 8) into a malloc'd
 * buffer with room for a trailing newline and NUL. */
static char *object_of_len(size_t len)
{
	char *s = malloc(len + 2);

	assert_non_null(s);
	assert_true(len >= 8);
	memcpy(s, "{\"k\":\"", 6);
	memset(s + 6, 'x', len - 8);
	memcpy(s + len - 2, "\"}", 2);
	s[len] = '\0';
	return s;
}

/* Build an object nested depth levels deep ({"a":{"a":...1...}}) as one
 * line; the caller frees it. */
static char *nested_object(int depth)
{
	char *s = malloc((size_t)depth * 6 + 3);
	char *p = s;

	assert_non_null(s);
	for (int i = 0; i < depth; i++)
		p += sprintf(p, "{\"a\":");
	*p++ = '1';
	memset(p, '}', (size_t)depth);
	strcpy(p + depth, "\n");
	return s;
}

/* A message split at every possible byte boundary, and fed one byte at a
 * time, decodes to the same object as when fed whole. */
static void test_split_at_every_boundary(void **state)
{
	size_t len = strlen(sample);
	struct narf_frame_decoder d;

	(void)state;
	for (size_t cut = 0; cut <= len; cut++) {
		narf_frame_decoder_init(&d, NARF_FRAME_MAX_REQUEST);
		feed_ok(&d, sample, cut);
		if (cut < len)
			expect_none(&d);
		feed_ok(&d, sample + cut, len - cut);
		expect_msg(&d, sample);
		expect_none(&d);
		narf_frame_decoder_close(&d);
	}

	narf_frame_decoder_init(&d, NARF_FRAME_MAX_REQUEST);
	for (size_t i = 0; i < len; i++) {
		feed_ok(&d, sample + i, 1);
		if (i + 1 < len)
			expect_none(&d);
	}
	expect_msg(&d, sample);
	expect_none(&d);
	narf_frame_decoder_close(&d);
}

/* Several messages in one feed come out one by one, in order. */
static void test_several_messages_in_one_feed(void **state)
{
	static const char text[] = "{\"a\":1}\n{\"b\":2}\n{\"c\":[3]}\n{\"d\"";
	struct narf_frame_decoder d;

	(void)state;
	narf_frame_decoder_init(&d, NARF_FRAME_MAX_REQUEST);
	feed_ok(&d, text, strlen(text));
	expect_msg(&d, "{\"a\":1}");
	expect_msg(&d, "{\"b\":2}");
	expect_msg(&d, "{\"c\":[3]}");
	expect_none(&d);
	feed_ok(&d, ":4}\n", 4);
	expect_msg(&d, "{\"d\":4}");
	expect_none(&d);
	narf_frame_decoder_close(&d);
}

/* Empty lines (bare "\n" or "\r\n") are skipped without error. */
static void test_empty_lines_skipped(void **state)
{
	static const char text[] = "\n\n{\"a\":1}\n\n\r\n\n{\"b\":2}\n\n";
	struct narf_frame_decoder d;

	(void)state;
	narf_frame_decoder_init(&d, NARF_FRAME_MAX_REQUEST);
	feed_ok(&d, "\n", 1);
	expect_none(&d);
	feed_ok(&d, text, strlen(text));
	expect_msg(&d, "{\"a\":1}");
	expect_msg(&d, "{\"b\":2}");
	expect_none(&d);
	narf_frame_decoder_close(&d);
}

/* CRLF line endings parse, also when "\r" and "\n" arrive in two feeds. */
static void test_crlf_accepted(void **state)
{
	struct narf_frame_decoder d;

	(void)state;
	line_parses("{\"a\":1}\r\n", "{\"a\":1}");
	line_parses("  {\"a\":1} \t\r\n", "{\"a\":1}");

	narf_frame_decoder_init(&d, NARF_FRAME_MAX_REQUEST);
	feed_ok(&d, "{\"a\":1}\r\n{\"b\":2}\r", 17);
	expect_msg(&d, "{\"a\":1}");
	expect_none(&d);
	feed_ok(&d, "\n", 1);
	expect_msg(&d, "{\"b\":2}");
	expect_none(&d);
	narf_frame_decoder_close(&d);
}

/* A line without its newline yields nothing and no error, however it is
 * cut, until the newline arrives. */
static void test_truncated_input_waits(void **state)
{
	struct narf_frame_decoder d;

	(void)state;
	narf_frame_decoder_init(&d, NARF_FRAME_MAX_REQUEST);
	expect_none(&d);
	feed_ok(&d, "", 0);
	expect_none(&d);
	feed_ok(&d, "{\"a\":", 5);
	expect_none(&d);
	expect_none(&d);
	/* Even text that can never become valid is not judged early. */
	feed_ok(&d, "1}}}", 4);
	expect_none(&d);
	feed_ok(&d, "\n", 1);
	next_err(&d, NARF_EPROTO);
	narf_frame_decoder_close(&d);
}

/* Malformed JSON is NARF_EPROTO and the decoder stays failed: later calls
 * and feeds fail too, even with valid messages buffered behind it. */
static void test_malformed_json_is_sticky(void **state)
{
	static const char text[] = "{\"a\":}\n{\"b\":1}\n";
	struct narf_frame_decoder d;
	json_t *msg = (json_t *)1;

	(void)state;
	narf_frame_decoder_init(&d, NARF_FRAME_MAX_REQUEST);
	feed_ok(&d, text, strlen(text));
	next_err(&d, NARF_EPROTO);
	assert_int_equal(narf_frame_next(&d, &msg, NULL), NARF_EPROTO);
	assert_null(msg);
	assert_int_not_equal(narf_frame_feed(&d, "{}\n", 3), 0);
	assert_int_equal(narf_frame_next(&d, &msg, NULL), NARF_EPROTO);
	assert_null(msg);
	narf_frame_decoder_close(&d);

	line_fails("{\n", NARF_EPROTO);
	line_fails("{\"a\":1,}\n", NARF_EPROTO);
	line_fails("{'a':1}\n", NARF_EPROTO);
	line_fails("{\"a\":1}x\n", NARF_EPROTO);
	line_fails("{\"a\":1}{\"b\":2}\n", NARF_EPROTO);
	line_fails("{\"a\":\"\xff\"}\n", NARF_EPROTO);
}

/* Well-formed JSON that is not an object is NARF_EPROTO. */
static void test_non_object_rejected(void **state)
{
	(void)state;
	line_fails("[]\n", NARF_EPROTO);
	line_fails("[{\"op\":\"ping\"}]\n", NARF_EPROTO);
	line_fails("42\n", NARF_EPROTO);
	line_fails("\"op\"\n", NARF_EPROTO);
	line_fails("true\n", NARF_EPROTO);
	line_fails("null\n", NARF_EPROTO);
}

/* Duplicate keys are rejected at any depth rather than silently merged. */
static void test_duplicate_keys_rejected(void **state)
{
	(void)state;
	line_fails("{\"a\":1,\"a\":2}\n", NARF_EPROTO);
	line_fails("{\"x\":{\"a\":1,\"a\":1}}\n", NARF_EPROTO);
	line_parses("{\"x\":{\"a\":1},\"y\":{\"a\":1}}\n",
	            "{\"x\":{\"a\":1},\"y\":{\"a\":1}}");
}

/* A line of exactly the maximum length is accepted, also when its newline
 * arrives in a later feed. */
static void test_line_at_max_accepted(void **state)
{
	struct narf_frame_decoder d;
	char *line = object_of_len(SMALL_MAX);

	(void)state;
	narf_frame_decoder_init(&d, SMALL_MAX);
	feed_ok(&d, line, SMALL_MAX);
	expect_none(&d);
	feed_ok(&d, "\n", 1);
	expect_msg(&d, line);
	narf_frame_decoder_close(&d);
	free(line);
}

/* An overlong line without a newline is rejected by the feed that passes
 * the maximum, whether it comes whole or in chunks, and the decoder stays
 * failed. */
static void test_oversized_without_newline(void **state)
{
	struct narf_frame_decoder d;
	char *line = object_of_len(SMALL_MAX + 1);
	json_t *msg = (json_t *)1;
	size_t off = 0;

	(void)state;
	narf_frame_decoder_init(&d, SMALL_MAX);
	assert_int_equal(narf_frame_feed(&d, line, SMALL_MAX + 1),
	                 NARF_ETOOLARGE);
	assert_int_not_equal(narf_frame_next(&d, &msg, NULL), 0);
	assert_null(msg);
	narf_frame_decoder_close(&d);

	narf_frame_decoder_init(&d, SMALL_MAX);
	for (; off + 7 <= SMALL_MAX; off += 7) {
		feed_ok(&d, line + off, 7);
		expect_none(&d);
	}
	assert_int_equal(narf_frame_feed(&d, line + off, SMALL_MAX + 1 - off),
	                 NARF_ETOOLARGE);
	assert_int_not_equal(narf_frame_feed(&d, "\n", 1), 0);
	assert_int_not_equal(narf_frame_next(&d, &msg, NULL), 0);
	assert_null(msg);
	narf_frame_decoder_close(&d);
	free(line);
}

/* An overlong line whose newline comes in the same feed is rejected by
 * narf_frame_next, whole or with the last chunk carrying the newline. */
static void test_oversized_with_newline(void **state)
{
	struct narf_frame_decoder d;
	char *line = object_of_len(SMALL_MAX + 1);
	json_t *msg = (json_t *)1;

	(void)state;
	strcat(line, "\n");
	narf_frame_decoder_init(&d, SMALL_MAX);
	feed_ok(&d, line, SMALL_MAX + 2);
	next_err(&d, NARF_ETOOLARGE);
	assert_int_not_equal(narf_frame_next(&d, &msg, NULL), 0);
	narf_frame_decoder_close(&d);

	narf_frame_decoder_init(&d, SMALL_MAX);
	feed_ok(&d, line, SMALL_MAX);
	expect_none(&d);
	feed_ok(&d, line + SMALL_MAX, 2);
	next_err(&d, NARF_ETOOLARGE);
	narf_frame_decoder_close(&d);

	/* A valid line ahead of the overlong one is still delivered. */
	narf_frame_decoder_init(&d, SMALL_MAX);
	feed_ok(&d, "{}\n", 3);
	feed_ok(&d, line, SMALL_MAX + 2);
	expect_msg(&d, "{}");
	next_err(&d, NARF_ETOOLARGE);
	narf_frame_decoder_close(&d);
	free(line);
}

/* The limit applies per line: drained lines do not count against the line
 * in progress. */
static void test_limit_is_per_line(void **state)
{
	struct narf_frame_decoder d;
	char *line = object_of_len(SMALL_MAX);

	(void)state;
	narf_frame_decoder_init(&d, SMALL_MAX);
	for (int i = 0; i < 10; i++) {
		feed_ok(&d, "{}\n", 3);
		feed_ok(&d, line, SMALL_MAX - 1);
		expect_msg(&d, "{}");
		expect_none(&d);
		feed_ok(&d, line + SMALL_MAX - 1, 1);
		feed_ok(&d, "\n", 1);
		expect_msg(&d, line);
		expect_none(&d);
	}
	narf_frame_decoder_close(&d);
	free(line);
}

/* With the real 1 MiB request limit, a line fed in 64 KiB reads is
 * rejected by the read that passes 1 MiB, not buffered further. */
static void test_oversized_real_limit(void **state)
{
	enum { CHUNK = 64 * 1024 };
	struct narf_frame_decoder d;
	char *chunk = malloc(CHUNK);
	size_t fed = 0;
	int rc = 0;

	(void)state;
	assert_non_null(chunk);
	memset(chunk, ' ', CHUNK);
	chunk[0] = '{';
	narf_frame_decoder_init(&d, NARF_FRAME_MAX_REQUEST);
	while (rc == 0 && fed <= 2 * NARF_FRAME_MAX_REQUEST) {
		rc = narf_frame_feed(&d, chunk, CHUNK);
		fed += CHUNK;
		if (rc == 0)
			expect_none(&d);
		chunk[0] = ' ';
	}
	assert_int_equal(rc, NARF_ETOOLARGE);
	assert_true(fed == NARF_FRAME_MAX_REQUEST + CHUNK);
	narf_frame_decoder_close(&d);
	free(chunk);
}

/* Nesting of exactly 16 levels parses, and 17 levels is NARF_ETOODEEP. */
static void test_depth_limit(void **state)
{
	char *ok = nested_object(NARF_FRAME_MAX_DEPTH);
	char *deep = nested_object(NARF_FRAME_MAX_DEPTH + 1);
	char arrays[64];
	char *p = arrays;

	(void)state;
	line_parses(ok, ok);
	line_fails(deep, NARF_ETOODEEP);
	assert_int_equal(narf_frame_check_depth(ok, strlen(ok), 16), 0);
	assert_int_equal(narf_frame_check_depth(deep, strlen(deep), 16),
	                 NARF_ETOODEEP);

	/* Arrays count like objects: {"a":[[...]]} with 17 levels in all. */
	p += sprintf(p, "{\"a\":");
	memset(p, '[', 16);
	memset(p + 16, ']', 16);
	strcpy(p + 32, "}\n");
	line_fails(arrays, NARF_ETOODEEP);
	p[15] = ' ';
	p[16] = ' ';
	line_parses(arrays, "{\"a\":[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]}");

	/* Depth is the maximum reached, not the total number of brackets. */
	line_parses(
	        "{\"a\":[[[[[[[[[[[[[[]]]]]]]]]]]]]],"
	        "\"b\":{\"c\":{\"d\":[[[[[[[[[[[[[1]]]]]]]]]]]]]}}}\n",
	        "{\"a\":[[[[[[[[[[[[[[]]]]]]]]]]]]]],"
	        "\"b\":{\"c\":{\"d\":[[[[[[[[[[[[[1]]]]]]]]]]]]]}}}");
	free(ok);
	free(deep);
}

/* Brackets inside strings, including after escaped quotes, do not count
 * toward the depth, while an escaped backslash does end the string. */
static void test_brackets_in_strings(void **state)
{
	static const char brackets[] =
	        "{\"s\":\"[[[[[[[[[[[[[[[[[[[[{{{{{{{{{{{{{{{{{{{{\"}\n";
	static const char after_quote[] =
	        "{\"s\":\"\\\"[[[[[[[[[[[[[[[[[[[[\\\"{{{{{{{{{{{{{{{{{{\"}\n";
	static const char after_backslash[] =
	        "{\"s\":\"\\\\\",\"t\":[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]}\n";
	static const char key[] =
	        "{\"[[[[[[[[[[[[[[[[[[[[\":{\"{{{{{{{{{{{{{{{{{{{{\":1}}\n";

	(void)state;
	line_parses(brackets, brackets);
	line_parses(after_quote, after_quote);
	line_parses(key, key);
	line_fails(after_backslash, NARF_ETOODEEP);
	assert_int_equal(narf_frame_check_depth(brackets, strlen(brackets), 1),
	                 0);
	assert_int_equal(
	        narf_frame_check_depth(after_quote, strlen(after_quote), 1), 0);
}

/* Escaped quotes and backslashes inside strings decode to the intended
 * characters. */
static void test_escaped_quotes(void **state)
{
	struct narf_frame_decoder d;
	static const char text[] =
	        "{\"a\":\"say \\\"hi\\\" {\",\"b\":\"\\\\\",\"c\\\"\":\"}\"}\n";
	json_t *msg;

	(void)state;
	narf_frame_decoder_init(&d, NARF_FRAME_MAX_REQUEST);
	feed_ok(&d, text, strlen(text));
	msg = next_ok(&d);
	assert_non_null(msg);
	assert_string_equal(json_string_value(json_object_get(msg, "a")),
	                    "say \"hi\" {");
	assert_string_equal(json_string_value(json_object_get(msg, "b")), "\\");
	assert_string_equal(json_string_value(json_object_get(msg, "c\"")),
	                    "}");
	json_decref(msg);
	expect_none(&d);
	narf_frame_decoder_close(&d);
}

/* narf_frame_encode emits one line ending in exactly one '\n', with
 * newlines inside strings escaped, that the decoder turns back into an
 * equal object. */
static void test_encode_round_trip(void **state)
{
	struct narf_frame_decoder d;
	json_t *msg, *back;
	char *line;
	size_t len = 0;

	(void)state;
	msg = json_pack("{s:s, s:s, s:i, s:b, s:n, s:[i, {s:s}], s:f}", "op",
	                "join", "text", "multi\nline\r\nvalue\n",
	                "key\nwith\nnewline", 42, "flag", 1, "none", "list", 1,
	                "x", "{[\"]}\n", "pi", 3.25);
	assert_non_null(msg);
	line = narf_frame_encode(msg, &len);
	assert_non_null(line);
	assert_true(len > 1);
	assert_int_equal(strlen(line), len);
	assert_int_equal(line[len - 1], '\n');
	assert_ptr_equal(memchr(line, '\n', len), line + len - 1);
	assert_null(memchr(line, '\r', len));

	narf_frame_decoder_init(&d, NARF_FRAME_MAX_REQUEST);
	feed_ok(&d, line, len);
	back = next_ok(&d);
	assert_non_null(back);
	assert_true(json_equal(msg, back));
	expect_none(&d);
	narf_frame_decoder_close(&d);

	json_decref(back);
	json_decref(msg);
	free(line);
}

/* An empty object encodes to "{}\n". */
static void test_encode_empty_object(void **state)
{
	json_t *msg = json_object();
	size_t len = 0;
	char *line = narf_frame_encode(msg, &len);

	(void)state;
	assert_non_null(line);
	assert_int_equal(len, 3);
	assert_string_equal(line, "{}\n");
	free(line);
	json_decref(msg);
}

/* Closing a decoder twice, or a NULL one, is harmless. */
static void test_close_idempotent(void **state)
{
	struct narf_frame_decoder d;

	(void)state;
	narf_frame_decoder_init(&d, SMALL_MAX);
	feed_ok(&d, "{\"a\"", 4);
	narf_frame_decoder_close(&d);
	narf_frame_decoder_close(&d);
	narf_frame_decoder_close(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_split_at_every_boundary),
	        cmocka_unit_test(test_several_messages_in_one_feed),
	        cmocka_unit_test(test_empty_lines_skipped),
	        cmocka_unit_test(test_crlf_accepted),
	        cmocka_unit_test(test_truncated_input_waits),
	        cmocka_unit_test(test_malformed_json_is_sticky),
	        cmocka_unit_test(test_non_object_rejected),
	        cmocka_unit_test(test_duplicate_keys_rejected),
	        cmocka_unit_test(test_line_at_max_accepted),
	        cmocka_unit_test(test_oversized_without_newline),
	        cmocka_unit_test(test_oversized_with_newline),
	        cmocka_unit_test(test_limit_is_per_line),
	        cmocka_unit_test(test_oversized_real_limit),
	        cmocka_unit_test(test_depth_limit),
	        cmocka_unit_test(test_brackets_in_strings),
	        cmocka_unit_test(test_escaped_quotes),
	        cmocka_unit_test(test_encode_round_trip),
	        cmocka_unit_test(test_encode_empty_object),
	        cmocka_unit_test(test_close_idempotent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
