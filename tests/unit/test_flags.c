/*
 * Unit tests for common/flags.h: every parser takes the whole string or
 * nothing, and leaves its outputs untouched on failure.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/errors.h"
#include "common/flags.h"

/* A value no parser should ever produce, to detect writes on failure. */
#define SENTINEL UINT64_C(0xdeadbeefcafef00d)

/* Assert that narf_parse_u64 rejects text and leaves *out alone. */
static void u64_bad(const char *text, uint64_t min, uint64_t max)
{
	uint64_t v = SENTINEL;

	assert_int_equal(narf_parse_u64(text, min, max, &v), NARF_EINVAL);
	assert_true(v == SENTINEL);
}

/* Return the value narf_parse_u64 gives text, failing the test on error. */
static uint64_t u64_ok(const char *text, uint64_t min, uint64_t max)
{
	uint64_t v = SENTINEL;

	assert_int_equal(narf_parse_u64(text, min, max, &v), 0);
	return v;
}

/* Decimal integers parse exactly, including both ends of the range and the
 * largest uint64_t. */
static void test_u64_valid(void **state)
{
	(void)state;
	assert_true(u64_ok("0", 0, 10) == 0);
	assert_true(u64_ok("10", 0, 10) == 10);
	assert_true(u64_ok("5", 5, 5) == 5);
	assert_true(u64_ok("007", 0, 10) == 7);
	assert_true(u64_ok("18446744073709551615", 0, UINT64_MAX) ==
	            UINT64_MAX);
}

/* Values outside [min, max] are rejected even when well formed. */
static void test_u64_range(void **state)
{
	(void)state;
	u64_bad("11", 0, 10);
	u64_bad("4", 5, 10);
	u64_bad("0", 1, 65535);
	u64_bad("65536", 1, 65535);
}

/* Anything but plain decimal digits is rejected: empty, signs, spaces,
 * trailing garbage, hex and values that overflow 64 bits. */
static void test_u64_garbage(void **state)
{
	(void)state;
	u64_bad("", 0, UINT64_MAX);
	u64_bad("-1", 0, UINT64_MAX);
	u64_bad("+1", 0, UINT64_MAX);
	u64_bad(" 1", 0, UINT64_MAX);
	u64_bad("1 ", 0, UINT64_MAX);
	u64_bad("12x", 0, UINT64_MAX);
	u64_bad("x12", 0, UINT64_MAX);
	u64_bad("0x10", 0, UINT64_MAX);
	u64_bad("1.5", 0, UINT64_MAX);
	u64_bad("18446744073709551616", 0, UINT64_MAX);
	u64_bad("99999999999999999999", 0, UINT64_MAX);
	u64_bad(NULL, 0, UINT64_MAX);
}

/* Return the milliseconds narf_parse_ms gives text, failing on error. */
static uint64_t ms_ok(const char *text)
{
	uint64_t v = SENTINEL;

	assert_int_equal(narf_parse_ms(text, 0, UINT64_MAX, &v), 0);
	return v;
}

/* Assert that narf_parse_ms rejects text within [min, max]. */
static void ms_bad(const char *text, uint64_t min, uint64_t max)
{
	uint64_t v = SENTINEL;

	assert_int_equal(narf_parse_ms(text, min, max, &v), NARF_EINVAL);
	assert_true(v == SENTINEL);
}

/* Bare numbers are milliseconds and the ms, s and m suffixes scale. */
static void test_ms_units(void **state)
{
	(void)state;
	assert_true(ms_ok("250") == 250);
	assert_true(ms_ok("250ms") == 250);
	assert_true(ms_ok("2s") == 2000);
	assert_true(ms_ok("1m") == 60000);
	assert_true(ms_ok("0s") == 0);
}

/* Unknown or malformed suffixes are rejected: units are lower case and
 * glued to the number. */
static void test_ms_bad_suffix(void **state)
{
	(void)state;
	ms_bad("", 0, UINT64_MAX);
	ms_bad("ms", 0, UINT64_MAX);
	ms_bad("1h", 0, UINT64_MAX);
	ms_bad("1S", 0, UINT64_MAX);
	ms_bad("1 s", 0, UINT64_MAX);
	ms_bad("1sec", 0, UINT64_MAX);
	ms_bad("1.5s", 0, UINT64_MAX);
	ms_bad("-1s", 0, UINT64_MAX);
	ms_bad(NULL, 0, UINT64_MAX);
}

/* The range applies to the scaled value, and scaling that overflows 64 bits
 * is an error rather than a wrapped small number. */
static void test_ms_range(void **state)
{
	uint64_t v = SENTINEL;

	(void)state;
	assert_int_equal(narf_parse_ms("100", 100, 60000, &v), 0);
	assert_true(v == 100);
	assert_int_equal(narf_parse_ms("1m", 100, 60000, &v), 0);
	assert_true(v == 60000);
	ms_bad("99", 100, 60000);
	ms_bad("60001", 100, 60000);
	ms_bad("61s", 100, 60000);
	ms_bad("2m", 100, 60000);
	/* 307445734561826 * 60000 exceeds UINT64_MAX. */
	ms_bad("307445734561826m", 0, UINT64_MAX);
	ms_bad("18446744073709552s", 0, UINT64_MAX);
	ms_bad("99999999999999999999", 0, UINT64_MAX);
}

/* Return the bytes narf_parse_bytes gives text, failing on error. */
static uint64_t bytes_ok(const char *text)
{
	uint64_t v = SENTINEL;

	assert_int_equal(narf_parse_bytes(text, &v), 0);
	return v;
}

/* Assert that narf_parse_bytes rejects text and leaves *out alone. */
static void bytes_bad(const char *text)
{
	uint64_t v = SENTINEL;

	assert_int_equal(narf_parse_bytes(text, &v), NARF_EINVAL);
	assert_true(v == SENTINEL);
}

/* Size suffixes are powers of 1024, with or without 'b', in any case. */
static void test_bytes_units(void **state)
{
	(void)state;
	assert_true(bytes_ok("0") == 0);
	assert_true(bytes_ok("1048576") == 1048576);
	assert_true(bytes_ok("100b") == 100);
	assert_true(bytes_ok("1k") == 1024);
	assert_true(bytes_ok("512kb") == 512 * 1024);
	assert_true(bytes_ok("512mb") == UINT64_C(512) << 20);
	assert_true(bytes_ok("512MB") == UINT64_C(512) << 20);
	assert_true(bytes_ok("3m") == UINT64_C(3) << 20);
	assert_true(bytes_ok("2GB") == UINT64_C(2) << 30);
	assert_true(bytes_ok("2gB") == UINT64_C(2) << 30);
	assert_true(bytes_ok("1g") == UINT64_C(1) << 30);
	/* The largest representable gigabyte count. */
	assert_true(bytes_ok("17179869183gb") == UINT64_MAX - ((1u << 30) - 1));
}

/* Sizes that overflow 64 bits after scaling, and malformed sizes, are
 * rejected. */
static void test_bytes_bad(void **state)
{
	(void)state;
	bytes_bad("17179869184gb");
	bytes_bad("18014398509481984k");
	bytes_bad("18446744073709551616");
	bytes_bad("99999999999999999999");
	bytes_bad("");
	bytes_bad("mb");
	bytes_bad("1tb");
	bytes_bad("1.5g");
	bytes_bad("1 mb");
	bytes_bad("-1");
	bytes_bad("12x");
	bytes_bad("1kbb");
	bytes_bad(NULL);
}

/* Assert that narf_parse_hostport rejects text, leaving host and port alone. */
static void hostport_bad(const char *text, unsigned host_size)
{
	char host[128];
	int port = -7;

	memset(host, 'Z', sizeof(host));
	host[sizeof(host) - 1] = '\0';
	assert_true(host_size <= sizeof(host));
	assert_int_equal(narf_parse_hostport(text, host, host_size, &port),
	                 NARF_EINVAL);
	assert_int_equal(port, -7);
	assert_int_equal(host[0], 'Z');
}

/* Numeric IPv4 hosts and "localhost" with ports 1..65535 parse into their
 * parts. */
static void test_hostport_valid(void **state)
{
	char host[64];
	int port = 0;

	(void)state;
	assert_int_equal(narf_parse_hostport("127.0.0.1:7001", host,
	                                     sizeof(host), &port),
	                 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 7001);
	assert_int_equal(
	        narf_parse_hostport("localhost:1", host, sizeof(host), &port),
	        0);
	assert_string_equal(host, "localhost");
	assert_int_equal(port, 1);
	assert_int_equal(
	        narf_parse_hostport("0.0.0.0:65535", host, sizeof(host), &port),
	        0);
	assert_string_equal(host, "0.0.0.0");
	assert_int_equal(port, 65535);
	/* A buffer just large enough for the host and its NUL is enough. */
	assert_int_equal(narf_parse_hostport("10.0.0.1:80", host, 9, &port), 0);
	assert_string_equal(host, "10.0.0.1");
}

/* Missing, zero, out-of-range and non-numeric ports are rejected. */
static void test_hostport_bad_port(void **state)
{
	(void)state;
	hostport_bad("127.0.0.1", 64);
	hostport_bad("127.0.0.1:", 64);
	hostport_bad("127.0.0.1:0", 64);
	hostport_bad("127.0.0.1:65536", 64);
	hostport_bad("127.0.0.1:99999999999999999999", 64);
	hostport_bad("127.0.0.1:http", 64);
	hostport_bad("127.0.0.1:80x", 64);
	hostport_bad("127.0.0.1:-80", 64);
	hostport_bad("127.0.0.1: 80", 64);
	hostport_bad(NULL, 64);
}

/* Empty, overlong, malformed and non-IPv4 hosts are rejected, including
 * hostnames other than "localhost". */
static void test_hostport_bad_host(void **state)
{
	char longhost[100];

	(void)state;
	hostport_bad(":7001", 64);
	hostport_bad("", 64);
	hostport_bad("example.com:80", 64);
	hostport_bad("localhost.localdomain:80", 64);
	hostport_bad("LOCALHOST:80", 64);
	hostport_bad("256.0.0.1:80", 64);
	hostport_bad("1.2.3:80", 64);
	hostport_bad(" 127.0.0.1:80", 64);
	hostport_bad("::1:80", 64);
	hostport_bad("[::1]:80", 64);
	hostport_bad("127.0.0.1:80:80", 64);
	/* 90 bytes of host: longer than any IPv4 address and any buffer. */
	memset(longhost, '1', 90);
	strcpy(longhost + 90, ":80");
	hostport_bad(longhost, 128);
	/* A valid host that does not fit the caller's buffer. */
	hostport_bad("10.0.0.1:80", 8);
	hostport_bad("localhost:80", 9);
	hostport_bad("127.0.0.1:80", 0);
}

/* narf_usage_error prints "PROG: MESSAGE" and a --help hint on stderr and
 * exits with status 2. */
static void test_usage_error_exits_2(void **state)
{
	int fds[2], status;
	char out[512];
	ssize_t n;
	size_t len = 0;
	pid_t pid;

	(void)state;
	assert_int_equal(pipe(fds), 0);
	/* The child's exit() flushes stdio: empty the buffers first so
	 * cmocka's output is not printed twice. */
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		dup2(fds[1], STDERR_FILENO);
		narf_usage_error("narfd", "bad --port '%s'", "x");
	}
	close(fds[1]);
	while (len < sizeof(out) - 1 &&
	       (n = read(fds[0], out + len, sizeof(out) - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 2);
	assert_string_equal(out,
	                    "narfd: bad --port 'x'\n"
	                    "Try 'narfd --help' for the list of flags.\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_u64_valid),
	        cmocka_unit_test(test_u64_range),
	        cmocka_unit_test(test_u64_garbage),
	        cmocka_unit_test(test_ms_units),
	        cmocka_unit_test(test_ms_bad_suffix),
	        cmocka_unit_test(test_ms_range),
	        cmocka_unit_test(test_bytes_units),
	        cmocka_unit_test(test_bytes_bad),
	        cmocka_unit_test(test_hostport_valid),
	        cmocka_unit_test(test_hostport_bad_port),
	        cmocka_unit_test(test_hostport_bad_host),
	        cmocka_unit_test(test_usage_error_exits_2),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
