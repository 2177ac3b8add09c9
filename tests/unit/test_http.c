/*
 * Unit tests for common/http.h: the request-head reader behind --metrics
 * (whole, split, truncated, oversized and malformed heads) and the response
 * writer.
 */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/http.h"

static const char scrape[] =
        "GET /metrics HTTP/1.1\r\n"
        "Host: 127.0.0.1:9100\r\n"
        "User-Agent: Prometheus/2.42.0\r\n"
        "Accept: text/plain;version=0.0.4;q=1,*/*;q=0.1\r\n"
        "\r\n";

/* Feed text whole into a fresh request with the given head limit. */
static enum narf_http_state feed_all(struct narf_http_req *r,
                                     size_t head_max,
                                     const char *text,
                                     size_t len)
{
	narf_http_req_init(r, head_max);
	return narf_http_req_feed(r, text, len);
}

/* Expect text to be refused with status. */
static void refused(const char *text, int status)
{
	struct narf_http_req r;

	if (feed_all(&r, NARF_HTTP_HEAD_MAX, text, strlen(text)) !=
	    NARF_HTTP_ERROR)
		fail_msg("'%s' was not refused", text);
	if (r.status != status)
		fail_msg("'%s': status %d, want %d", text, r.status, status);
}

/* A Prometheus scrape parses: GET, path /metrics. */
static void test_scrape(void **state)
{
	struct narf_http_req r;

	(void)state;
	assert_int_equal(
	        feed_all(&r, NARF_HTTP_HEAD_MAX, scrape, strlen(scrape)),
	        NARF_HTTP_DONE);
	assert_int_equal(r.method, NARF_HTTP_GET);
	assert_string_equal(r.path, "/metrics");
}

/* The same head split at every byte boundary (and fed a byte at a time)
 * gives the same result, and nothing is DONE before the last byte. */
static void test_split_everywhere(void **state)
{
	size_t n = strlen(scrape);

	(void)state;
	for (size_t cut = 1; cut < n; cut++) {
		struct narf_http_req r;

		narf_http_req_init(&r, NARF_HTTP_HEAD_MAX);
		assert_int_equal(narf_http_req_feed(&r, scrape, cut),
		                 NARF_HTTP_INCOMPLETE);
		assert_int_equal(narf_http_req_feed(&r, scrape + cut, n - cut),
		                 NARF_HTTP_DONE);
		assert_string_equal(r.path, "/metrics");
	}
	{
		struct narf_http_req r;

		narf_http_req_init(&r, NARF_HTTP_HEAD_MAX);
		for (size_t i = 0; i + 1 < n; i++)
			assert_int_equal(narf_http_req_feed(&r, scrape + i, 1),
			                 NARF_HTTP_INCOMPLETE);
		assert_int_equal(narf_http_req_feed(&r, scrape + n - 1, 1),
		                 NARF_HTTP_DONE);
		assert_string_equal(r.path, "/metrics");
	}
}

/* Truncated heads (every proper prefix, the final blank line missing)
 * wait for more and never complete. */
static void test_truncated(void **state)
{
	static const char no_blank[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n";
	struct narf_http_req r;

	(void)state;
	for (size_t cut = 0; cut < strlen(scrape); cut++)
		assert_int_equal(feed_all(&r, NARF_HTTP_HEAD_MAX, scrape, cut),
		                 NARF_HTTP_INCOMPLETE);
	assert_int_equal(
	        feed_all(&r, NARF_HTTP_HEAD_MAX, no_blank, strlen(no_blank)),
	        NARF_HTTP_INCOMPLETE);
}

/* Query strings and the absolute form reduce to the path; HEAD and other
 * methods parse (the server answers 405 for the latter). */
static void test_targets_and_methods(void **state)
{
	static const char query[] = "GET /metrics?name[]=x HTTP/1.0\r\n\r\n";
	static const char absolute[] =
	        "GET http://127.0.0.1:9100/metrics HTTP/1.1\r\n\r\n";
	static const char head[] = "HEAD /metrics HTTP/1.1\r\n\r\n";
	static const char post[] =
	        "POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
	struct narf_http_req r;

	(void)state;
	assert_int_equal(feed_all(&r, NARF_HTTP_HEAD_MAX, query, strlen(query)),
	                 NARF_HTTP_DONE);
	assert_string_equal(r.path, "/metrics");
	assert_int_equal(
	        feed_all(&r, NARF_HTTP_HEAD_MAX, absolute, strlen(absolute)),
	        NARF_HTTP_DONE);
	assert_string_equal(r.path, "/metrics");
	assert_int_equal(feed_all(&r, NARF_HTTP_HEAD_MAX, head, strlen(head)),
	                 NARF_HTTP_DONE);
	assert_int_equal(r.method, NARF_HTTP_HEAD);
	assert_int_equal(feed_all(&r, NARF_HTTP_HEAD_MAX, post, strlen(post)),
	                 NARF_HTTP_DONE);
	assert_int_equal(r.method, NARF_HTTP_OTHER);
}

/* A head of exactly the limit is read; one byte more is 431, whether the
 * excess is in a header or the request never ends. */
static void test_oversized(void **state)
{
	char text[256];
	struct narf_http_req r;
	size_t n;

	(void)state;
	/* "GET / HTTP/1.1\r\nX: aaa...\r\n\r\n" of exactly 100 bytes */
	n = (size_t)snprintf(text, sizeof(text), "GET / HTTP/1.1\r\nX: ");
	memset(text + n, 'a', 100 - n - 4);
	memcpy(text + 96, "\r\n\r\n", 4);
	assert_int_equal(feed_all(&r, 100, text, 100), NARF_HTTP_DONE);
	assert_int_equal(feed_all(&r, 99, text, 100), NARF_HTTP_ERROR);
	assert_int_equal(r.status, 431);
	/* Fed in small pieces, the limit holds across feeds. */
	narf_http_req_init(&r, 99);
	for (size_t i = 0; i < 90; i += 10)
		assert_int_equal(narf_http_req_feed(&r, text + i, 10),
		                 NARF_HTTP_INCOMPLETE);
	assert_int_equal(narf_http_req_feed(&r, text + 90, 10),
	                 NARF_HTTP_ERROR);
	assert_int_equal(r.status, 431);
	/* The real limit: 9000 bytes of header and no end. */
	{
		size_t big = 9000;
		char *flood = malloc(big);

		assert_non_null(flood);
		memcpy(flood, "GET /metrics HTTP/1.1\r\nX-Big: ", 30);
		memset(flood + 30, 'b', big - 30);
		assert_int_equal(feed_all(&r, NARF_HTTP_HEAD_MAX, flood, big),
		                 NARF_HTTP_ERROR);
		assert_int_equal(r.status, 431);
		free(flood);
	}
}

/* A request target longer than NARF_HTTP_PATH_MAX is 414, even when the
 * head fits. */
static void test_long_target(void **state)
{
	char text[NARF_HTTP_PATH_MAX + 64];
	struct narf_http_req r;
	size_t n = 0;

	(void)state;
	n += (size_t)snprintf(text, sizeof(text), "GET /");
	memset(text + n, 'p', NARF_HTTP_PATH_MAX);
	n += NARF_HTTP_PATH_MAX;
	n += (size_t)snprintf(text + n, sizeof(text) - n, " HTTP/1.1\r\n\r\n");
	assert_int_equal(feed_all(&r, NARF_HTTP_HEAD_MAX, text, n),
	                 NARF_HTTP_ERROR);
	assert_int_equal(r.status, 414);
}

/* Malformed request lines and headers are 400; another HTTP version
 * (0.9, 2.0) is 505. */
static void test_malformed(void **state)
{
	(void)state;
	refused("garbage\r\n\r\n", 400);
	/* (libhttp-parser, built lenient, checks the "HTTP" token only
	 * loosely; the version digits it checks.) */
	refused("GET /metrics HTTP/x.1\r\n\r\n", 400);
	refused("GET /metrics HTTP/1.1x\r\n\r\n", 400);
	refused("GET /metrics HTTP/1.1 extra\r\n\r\n", 400);
	refused("GET\r\n\r\n", 400);
	refused("FROB /metrics HTTP/1.1\r\n\r\n", 400);
	refused("GET /metrics HTTP/1.1\r\nNo colon here\r\n\r\n", 400);
	refused("GET /metrics HTTP/1.1\r\nBad\x01Name: x\r\n\r\n", 400);
	refused("GET /metrics HTTP/1.1\r\nA: b\r\nContent-Length: x\r\n\r\n",
	        400);
	refused("GET /me\x01trics HTTP/1.1\r\n\r\n", 400);
	refused("\x16\x03\x01\x02", 400); /* a TLS client hello */
	refused("GET /metrics HTTP/2.0\r\n\r\n", 505);
	refused("GET /metrics\r\n\r\n", 505); /* HTTP/0.9 */
	{
		/* A NUL byte in the request line. */
		static const char nul[] = "GET /met\0rics HTTP/1.1\r\n\r\n";
		struct narf_http_req r;

		assert_int_equal(
		        feed_all(&r, NARF_HTTP_HEAD_MAX, nul, sizeof(nul) - 1),
		        NARF_HTTP_ERROR);
		assert_int_equal(r.status, 400);
	}
}

/* DONE and ERROR are final: later input is ignored. */
static void test_sticky(void **state)
{
	struct narf_http_req r;

	(void)state;
	assert_int_equal(
	        feed_all(&r, NARF_HTTP_HEAD_MAX, scrape, strlen(scrape)),
	        NARF_HTTP_DONE);
	assert_int_equal(narf_http_req_feed(&r, "garbage", 7), NARF_HTTP_DONE);
	assert_string_equal(r.path, "/metrics");
	assert_int_equal(feed_all(&r, NARF_HTTP_HEAD_MAX, "x y\r\n\r\n", 7),
	                 NARF_HTTP_ERROR);
	assert_int_equal(narf_http_req_feed(&r, scrape, strlen(scrape)),
	                 NARF_HTTP_ERROR);
	assert_int_equal(r.status, 400);
}

/* Responses carry status line, type, length and Connection: close; HEAD
 * leaves the body out; 405 says what is allowed. */
static void test_response(void **state)
{
	struct narf_buf b;

	(void)state;
	narf_buf_init(&b);
	assert_int_equal(
	        narf_http_response(&b, 200, "text/x", "hi\n", 3, false), 0);
	assert_int_equal(b.len, strlen("HTTP/1.1 200 OK\r\n"
	                               "Content-Type: text/x\r\n"
	                               "Content-Length: 3\r\n"
	                               "Connection: close\r\n\r\nhi\n"));
	assert_memory_equal(b.data,
	                    "HTTP/1.1 200 OK\r\n"
	                    "Content-Type: text/x\r\n"
	                    "Content-Length: 3\r\n"
	                    "Connection: close\r\n\r\nhi\n",
	                    b.len);
	b.len = 0;
	assert_int_equal(narf_http_response(&b, 200, NULL, "hi\n", 3, true), 0);
	assert_memory_equal(b.data + b.len - 4, "\r\n\r\n", 4);
	assert_non_null(memmem(b.data, b.len, "Content-Length: 3\r\n", 19));
	b.len = 0;
	assert_int_equal(narf_http_response(&b, 405, NULL, "", 0, false), 0);
	assert_non_null(memmem(b.data, b.len, "Allow: GET, HEAD\r\n", 18));
	assert_non_null(memmem(b.data, b.len, "405 Method Not Allowed", 22));
	narf_buf_close(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_scrape),
	        cmocka_unit_test(test_split_everywhere),
	        cmocka_unit_test(test_truncated),
	        cmocka_unit_test(test_targets_and_methods),
	        cmocka_unit_test(test_oversized),
	        cmocka_unit_test(test_long_target),
	        cmocka_unit_test(test_malformed),
	        cmocka_unit_test(test_sticky),
	        cmocka_unit_test(test_response),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
