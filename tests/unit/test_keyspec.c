/*
 * Unit tests for datanode/keyspec.h: every shape of key positions a command
 * can declare (fixed, stepped, up to the end, all but the last, counted,
 * fixed then counted), counts that are malformed, and the set commands'
 * rows.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "datanode/engine.h"
#include "datanode/keyspec.h"

/* The key indexes of argv (a NULL-terminated list of C strings) under cmd,
 * written to idx; returns how many. */
static int keys_of(const struct narf_command *cmd,
                   const char **argv,
                   int *idx,
                   int max)
{
	size_t len[32];
	int argc = 0, n = 0, i;
	struct narf_keyiter it;

	while (argv[argc] != NULL) {
		len[argc] = strlen(argv[argc]);
		argc++;
	}
	narf_keys_begin(&it, cmd, argc, argv, len);
	while ((i = narf_keys_next(&it)) >= 0 && n < max)
		idx[n++] = i;
	return n;
}

/* GET k: one key at position 1. */
static void test_single(void **state)
{
	const struct narf_command c = {"get", NULL, 2, 0, 1, 1, 1};
	const char *argv[] = {"get", "k", NULL};
	int idx[8];

	(void)state;
	assert_int_equal(keys_of(&c, argv, idx, 8), 1);
	assert_int_equal(idx[0], 1);
	assert_true(narf_keys_any(&c));
}

/* MSET k v k v: every other argument to the end. */
static void test_stepped_to_end(void **state)
{
	const struct narf_command c = {"mset", NULL, -3, 0, 1, -1, 2};
	const char *argv[] = {"mset", "a", "1", "b", "2", "c", "3", NULL};
	int idx[8];

	(void)state;
	assert_int_equal(keys_of(&c, argv, idx, 8), 3);
	assert_int_equal(idx[0], 1);
	assert_int_equal(idx[1], 3);
	assert_int_equal(idx[2], 5);
}

/* BLPOP a b c 0: every argument but the last (last_key -2). */
static void test_all_but_last(void **state)
{
	const struct narf_command c = {"blpop", NULL, -3, 0, 1, -2, 1};
	const char *argv[] = {"blpop", "a", "b", "c", "0", NULL};
	int idx[8];

	(void)state;
	assert_int_equal(keys_of(&c, argv, idx, 8), 3);
	assert_int_equal(idx[2], 3);
}

/* SINTERCARD 2 a b LIMIT 1: the counted keys only, options after them are
 * not keys. */
static void test_counted(void **state)
{
	const struct narf_command c = {
	        "sintercard", NULL, -3, NARF_CMD_NUMKEYS_AT(1), 0, 0, 0};
	const char *argv[] = {"sintercard", "2", "a", "b", "LIMIT", "1", NULL};
	int idx[8];

	(void)state;
	assert_true(narf_keys_any(&c));
	assert_int_equal(keys_of(&c, argv, idx, 8), 2);
	assert_int_equal(idx[0], 2);
	assert_int_equal(idx[1], 3);
}

/* ZUNIONSTORE dst 2 a b WEIGHTS 1 2: the fixed destination, then the
 * counted sources. */
static void test_fixed_then_counted(void **state)
{
	const struct narf_command c = {
	        "zunionstore", NULL, -4, NARF_CMD_NUMKEYS_AT(2), 1, 1, 1};
	const char *argv[] = {"zunionstore", "dst", "2", "a", "b",
	                      "WEIGHTS",     "1",   "2", NULL};
	int idx[8];

	(void)state;
	assert_int_equal(keys_of(&c, argv, idx, 8), 3);
	assert_int_equal(idx[0], 1);
	assert_int_equal(idx[1], 3);
	assert_int_equal(idx[2], 4);
}

/* BLMPOP 0 2 a b LEFT: the count at position 2, after the timeout. */
static void test_count_after_timeout(void **state)
{
	const struct narf_command c = {
	        "blmpop", NULL, -5, NARF_CMD_NUMKEYS_AT(2), 0, 0, 0};
	const char *argv[] = {"blmpop", "0", "2", "a", "b", "LEFT", NULL};
	int idx[8];

	(void)state;
	assert_int_equal(keys_of(&c, argv, idx, 8), 2);
	assert_int_equal(idx[0], 3);
}

/* A count that is not a positive integer, or that runs past the
 * arguments, names no key (the command answers the error itself); the
 * fixed keys are still walked. */
static void test_malformed_counts(void **state)
{
	const struct narf_command c = {
	        "zunionstore", NULL, -4, NARF_CMD_NUMKEYS_AT(2), 1, 1, 1};
	const char *bad[][6] = {
	        {"zunionstore", "d", "x", "a", NULL},
	        {"zunionstore", "d", "0", "a", NULL},
	        {"zunionstore", "d", "-1", "a", NULL},
	        {"zunionstore", "d", "3", "a", "b", NULL},
	        {"zunionstore", "d", "99999999999999999999", "a", NULL},
	        {"zunionstore", "d", NULL},
	};
	int idx[8];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(keys_of(&c, bad[i], idx, 8), 1);
		assert_int_equal(idx[0], 1);
	}
}

/* PING: no keys, and the iterator says so. */
static void test_no_keys(void **state)
{
	const struct narf_command c = {"ping", NULL, -1, 0, 0, 0, 0};
	const char *argv[] = {"ping", "hello", NULL};
	int idx[8];

	(void)state;
	assert_false(narf_keys_any(&c));
	assert_int_equal(keys_of(&c, argv, idx, 8), 0);
}

/* A row of the set tables by name. */
static const struct narf_command *set_command(const char *name)
{
	const struct narf_command *const tables[] = {narf_set_commands,
	                                             narf_setalg_commands};

	for (size_t t = 0; t < 2; t++)
		for (const struct narf_command *c = tables[t]; c->name; c++)
			if (strcmp(c->name, name) == 0)
				return c;
	fail_msg("no command %s", name);
	return NULL;
}

/* The set commands' rows name every key, so routing sees them all (one
 * slot or CROSSSLOT): the STORE destination, both SMOVE keys, SINTERCARD's
 * counted keys and not its LIMIT. */
static void test_set_commands_name_every_key(void **state)
{
	static struct {
		const char *argv[8];
		int keys[4];
		int n;
	} cases[] = {
	        {{"sinterstore", "d", "a", "b", NULL}, {1, 2, 3}, 3},
	        {{"sunionstore", "d", "a", NULL}, {1, 2}, 2},
	        {{"sdiffstore", "d", "a", "b", NULL}, {1, 2, 3}, 3},
	        {{"sunion", "a", "b", "c", NULL}, {1, 2, 3}, 3},
	        {{"smove", "s", "d", "m", NULL}, {1, 2}, 2},
	        {{"sintercard", "2", "a", "b", "LIMIT", "1", NULL}, {2, 3}, 2},
	        {{"smembers", "s", NULL}, {1}, 1},
	        {{"sadd", "s", "m1", "m2", NULL}, {1}, 1},
	};
	int idx[8];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct narf_command *c = set_command(cases[i].argv[0]);

		assert_int_equal(keys_of(c, cases[i].argv, idx, 8), cases[i].n);
		for (int k = 0; k < cases[i].n; k++)
			assert_int_equal(idx[k], cases[i].keys[k]);
	}
}

/* A row of the zset tables by name. */
static const struct narf_command *zset_command(const char *name)
{
	const struct narf_command *const tables[] = {narf_zset_commands,
	                                             narf_zrange_commands};

	for (size_t t = 0; t < 2; t++)
		for (const struct narf_command *c = tables[t]; c->name; c++)
			if (strcmp(c->name, name) == 0)
				return c;
	fail_msg("no command %s", name);
	return NULL;
}

/* The zset commands' rows name every key: a STORE's destination and its
 * counted inputs, ZRANGESTORE's destination and source, ZMPOP's and
 * ZINTERCARD's counted keys and not their options. */
static void test_zset_commands_name_every_key(void **state)
{
	static struct {
		const char *argv[9];
		int keys[4];
		int n;
	} cases[] = {
	        {{"zunionstore", "d", "2", "a", "b", "WEIGHTS", "1", "2", NULL},
	         {1, 3, 4},
	         3},
	        {{"zdiffstore", "d", "1", "a", NULL}, {1, 3}, 2},
	        {{"zinter", "2", "a", "b", "WITHSCORES", NULL}, {2, 3}, 2},
	        {{"zintercard", "2", "a", "b", "LIMIT", "1", NULL}, {2, 3}, 2},
	        {{"zmpop", "2", "a", "b", "MIN", "COUNT", "2", NULL},
	         {2, 3},
	         2},
	        {{"zrangestore", "d", "s", "0", "-1", NULL}, {1, 2}, 2},
	        {{"zadd", "z", "1", "m", NULL}, {1}, 1},
	        {{"zrangebyscore", "z", "0", "1", NULL}, {1}, 1},
	};
	int idx[8];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct narf_command *c = zset_command(cases[i].argv[0]);

		assert_int_equal(keys_of(c, cases[i].argv, idx, 8), cases[i].n);
		for (int k = 0; k < cases[i].n; k++)
			assert_int_equal(idx[k], cases[i].keys[k]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_single),
	        cmocka_unit_test(test_stepped_to_end),
	        cmocka_unit_test(test_all_but_last),
	        cmocka_unit_test(test_counted),
	        cmocka_unit_test(test_fixed_then_counted),
	        cmocka_unit_test(test_count_after_timeout),
	        cmocka_unit_test(test_malformed_counts),
	        cmocka_unit_test(test_no_keys),
	        cmocka_unit_test(test_set_commands_name_every_key),
	        cmocka_unit_test(test_zset_commands_name_every_key),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
