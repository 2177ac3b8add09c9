/*
 * Unit tests for common/metrics.h: the Prometheus text exposition builder
 * writes families and samples in format 0.0.4 with the format's escaping.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/metrics.h"

/* Assert that the buffer holds exactly want. */
static void holds(const struct narf_buf *b, const char *want)
{
	if (b->len != strlen(want) || memcmp(b->data, want, b->len) != 0)
		fail_msg("got:\n%.*s\nwant:\n%s", (int)b->len, b->data, want);
}

/* A family and labelled samples come out as the format shows them. */
static void test_family_and_samples(void **state)
{
	struct narf_buf b;
	struct narf_metrics m;

	(void)state;
	narf_buf_init(&b);
	narf_metrics_init(&m, &b);
	narf_metrics_family(&m, "narf_commands_total", NARF_METRIC_COUNTER,
	                    "Commands run, by command.");
	narf_metrics_sample_u64(&m, "narf_commands_total", "command", "get",
	                        12);
	narf_metrics_sample(&m, "narf_commands_total", "command", "set", NULL,
	                    NULL, 3);
	narf_metrics_one(&m, "narf_up", NARF_METRIC_GAUGE, "Up.", 1);
	narf_metrics_family(&m, "narf_x", NARF_METRIC_GAUGE, "Two labels.");
	narf_metrics_sample(&m, "narf_x", "node", "3", "state", "up", 0.25);
	assert_false(narf_metrics_failed(&m));
	holds(&b,
	      "# HELP narf_commands_total Commands run, by command.\n"
	      "# TYPE narf_commands_total counter\n"
	      "narf_commands_total{command=\"get\"} 12\n"
	      "narf_commands_total{command=\"set\"} 3\n"
	      "# HELP narf_up Up.\n"
	      "# TYPE narf_up gauge\n"
	      "narf_up 1\n"
	      "# HELP narf_x Two labels.\n"
	      "# TYPE narf_x gauge\n"
	      "narf_x{node=\"3\",state=\"up\"} 0.25\n");
	narf_buf_close(&b);
}

/* Label values escape backslash, quote and newline; help text escapes
 * backslash and newline only. */
static void test_escaping(void **state)
{
	struct narf_buf b;
	struct narf_metrics m;

	(void)state;
	narf_buf_init(&b);
	narf_metrics_init(&m, &b);
	narf_metrics_family(&m, "a", NARF_METRIC_GAUGE, "x\\y\n\"z\"");
	narf_metrics_sample(&m, "a", "l", "q\"b\\n\nend", NULL, NULL, 1);
	holds(&b,
	      "# HELP a x\\\\y\\n\"z\"\n"
	      "# TYPE a gauge\n"
	      "a{l=\"q\\\"b\\\\n\\nend\"} 1\n");
	narf_buf_close(&b);
}

/* Values: integers exact to 2^64-1, fractions, NaN and infinities. */
static void test_values(void **state)
{
	struct narf_buf b;
	struct narf_metrics m;

	(void)state;
	narf_buf_init(&b);
	narf_metrics_init(&m, &b);
	narf_metrics_sample_u64(&m, "u", NULL, NULL, UINT64_MAX);
	narf_metrics_sample(&m, "d", NULL, NULL, NULL, NULL, 0.125);
	narf_metrics_sample(&m, "n", NULL, NULL, NULL, NULL, NAN);
	narf_metrics_sample(&m, "i", NULL, NULL, NULL, NULL, INFINITY);
	narf_metrics_sample(&m, "j", NULL, NULL, NULL, NULL, -INFINITY);
	narf_metrics_sample(&m, "z", "l", NULL, NULL, NULL, 0);
	holds(&b,
	      "u 18446744073709551615\n"
	      "d 0.125\n"
	      "n NaN\n"
	      "i +Inf\n"
	      "j -Inf\n"
	      "z{l=\"\"} 0\n");
	narf_buf_close(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_family_and_samples),
	        cmocka_unit_test(test_escaping),
	        cmocka_unit_test(test_values),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
