/*
 * Unit tests for common/log.h: text lines carry time, level, process and id
 * on one line; JSON lines parse as JSON objects with ts, level, process,
 * node and msg whatever the message holds.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/errors.h"
#include "common/log.h"

/* Run one log call with stderr sent to a pipe; the bytes written. */
static size_t capture(char *buf, size_t size, const char *fmt, const char *arg)
{
	int fds[2], saved;
	ssize_t n;

	assert_int_equal(pipe(fds), 0);
	saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fds[1], STDERR_FILENO) >= 0);
	narf_log(NARF_LOG_WARN, fmt, arg);
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	close(fds[1]);
	n = read(fds[0], buf, size - 1);
	close(fds[0]);
	assert_true(n > 0);
	buf[n] = '\0';
	return (size_t)n;
}

/* Parse one JSON line; checks the fields every line has. */
static json_t *json_line(const char *line, size_t n)
{
	json_error_t err;
	json_t *o;

	assert_true(n > 0 && line[n - 1] == '\n');
	assert_null(memchr(line, '\n', n - 1)); /* one line */
	o = json_loadb(line, n, 0, &err);
	if (o == NULL)
		fail_msg("not JSON (%s): %s", err.text, line);
	assert_string_equal(json_string_value(json_object_get(o, "level")),
	                    "warn");
	assert_string_equal(json_string_value(json_object_get(o, "process")),
	                    "testproc");
	assert_int_equal(strlen(json_string_value(json_object_get(o, "ts"))),
	                 strlen("2026-11-23T09:40:00.123Z"));
	return o;
}

/* A text line: ISO-8601 UTC time with ms, level, process[id], message,
 * and a newline in the message does not split the line. */
static void test_text(void **state)
{
	char buf[4096];
	size_t n;

	(void)state;
	narf_log_init("testproc", NARF_LOG_INFO);
	narf_log_set_format(NARF_LOG_TEXT);
	narf_log_set_id(7);
	n = capture(buf, sizeof(buf), "hello %s", "a\nb");
	assert_int_equal(buf[4], '-');
	assert_int_equal(buf[10], 'T');
	assert_int_equal(buf[23], 'Z');
	assert_non_null(strstr(buf, " WARN  testproc[7] hello a b\n"));
	assert_null(memchr(buf, '\n', n - 1));
	narf_log_set_id(0);
}

/* JSON lines: node is null before the id is known and a number after;
 * quotes, backslashes, control bytes and broken UTF-8 come out as a valid
 * string; valid UTF-8 is kept. */
static void test_json(void **state)
{
	char buf[8192];
	size_t n;
	json_t *o;

	(void)state;
	narf_log_init("testproc", NARF_LOG_INFO);
	narf_log_set_format(NARF_LOG_JSON);
	narf_log_set_id(0);
	n = capture(buf, sizeof(buf), "%s", "plain");
	o = json_line(buf, n);
	assert_true(json_is_null(json_object_get(o, "node")));
	assert_string_equal(json_string_value(json_object_get(o, "msg")),
	                    "plain");
	json_decref(o);

	narf_log_set_id(3);
	n = capture(buf, sizeof(buf), "%s",
	            "q\"b\\s\nnl\ttab\x01\x7f bad\xff\xc3 ok\xc3\xa9");
	o = json_line(buf, n);
	assert_int_equal(json_integer_value(json_object_get(o, "node")), 3);
	assert_string_equal(json_string_value(json_object_get(o, "msg")),
	                    "q\"b\\s\nnl\ttab\x01\x7f bad\xef\xbf\xbd"
	                    "\xef\xbf\xbd ok\xc3\xa9");
	json_decref(o);
	narf_log_set_id(0);
	narf_log_set_format(NARF_LOG_TEXT);
}

/* A message longer than the line buffer is cut, still one valid line. */
static void test_json_long(void **state)
{
	static char big[3000];
	char buf[16384];
	size_t n;
	json_t *o;

	(void)state;
	memset(big, '"', sizeof(big) - 1);
	narf_log_init("testproc", NARF_LOG_INFO);
	narf_log_set_format(NARF_LOG_JSON);
	n = capture(buf, sizeof(buf), "%s", big);
	o = json_line(buf, n);
	assert_true(strlen(json_string_value(json_object_get(o, "msg"))) > 500);
	json_decref(o);
	narf_log_set_format(NARF_LOG_TEXT);
}

/* Level and format names parse; anything else is NARF_EINVAL. */
static void test_parse(void **state)
{
	enum narf_log_format f;
	enum narf_log_level l;

	(void)state;
	assert_int_equal(narf_log_parse_format("json", &f), 0);
	assert_int_equal(f, NARF_LOG_JSON);
	assert_int_equal(narf_log_parse_format("text", &f), 0);
	assert_int_equal(f, NARF_LOG_TEXT);
	assert_int_equal(narf_log_parse_format("JSON", &f), NARF_EINVAL);
	assert_int_equal(narf_log_parse_format("", &f), NARF_EINVAL);
	assert_int_equal(narf_log_parse_level("warn", &l), 0);
	assert_int_equal(l, NARF_LOG_WARN);
	assert_int_equal(narf_log_parse_level("loud", &l), NARF_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_text),
	        cmocka_unit_test(test_json),
	        cmocka_unit_test(test_json_long),
	        cmocka_unit_test(test_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
