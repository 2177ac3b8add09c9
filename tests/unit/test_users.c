/*
 * The data port's users file (common/users.c): hashes that check, and
 * every malformed, truncated or oversized file refused with its line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/errors.h"
#include "common/users.h"

static int parse(struct narf_users *u, const char *text, char *err)
{
	return narf_users_parse(u, text, strlen(text), err);
}

/* A hash made by narf_users_hash checks its password and no other, and
 * two hashes of one password differ (the salt). */
static void test_hash_checks_only_its_password(void **state)
{
	char h1[NARF_USER_HASH_TEXT], h2[NARF_USER_HASH_TEXT], text[400];
	struct narf_users u;
	char err[NARF_ERRMSG_SIZE];
	const struct narf_user *a;

	(void)state;
	assert_int_equal(narf_users_hash("s3cret-long", 11, h1), 0);
	assert_int_equal(narf_users_hash("s3cret-long", 11, h2), 0);
	assert_int_equal(strlen(h1), NARF_USER_HASH_TEXT - 1);
	assert_string_not_equal(h1, h2);
	snprintf(text, sizeof(text),
	         "# users\n\napp readwrite %s\r\n"
	         "  ops\tadmin\t%s  \n",
	         h1, h2);
	assert_int_equal(parse(&u, text, err), 0);
	assert_int_equal(u.n, 2);
	a = narf_users_find(&u, "app", 3);
	assert_non_null(a);
	assert_int_equal(a->perm, NARF_PERM_READWRITE);
	assert_true(narf_user_password_ok(a, "s3cret-long", 11));
	assert_false(narf_user_password_ok(a, "s3cret-lonG", 11));
	assert_false(narf_user_password_ok(a, "s3cret-lon", 10));
	assert_false(narf_user_password_ok(a, "", 0));
	assert_int_equal(narf_users_find(&u, "ops", 3)->perm, NARF_PERM_ADMIN);
	assert_null(narf_users_find(&u, "op", 2));
	assert_null(narf_users_find(&u, "nobody", 6));
	narf_users_free(&u);
	narf_users_free(&u); /* twice is harmless */
}

/* Each malformed line is refused with its line number and what is wrong;
 * nothing is kept. */
static void test_bad_lines_name_their_line(void **state)
{
	static const char good[] =
	        "sha256$000102030405060708090a0b0c0d0e0f$"
	        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e"
	        "1f";
	struct {
		const char *fmt;
		const char *want;
	} cases[] = {
	        {"a read %s\nb superuser %s\n", "line 2: the permission"},
	        {"a read\n", "line 1: the password hash"},
	        {"a read sha256$00$00\n", "line 1: the password hash"},
	        {"a read md5$%s\n", "line 1: the password hash"},
	        {"a read %s extra\n", "line 1: more than three"},
	        {"a read %s\na admin %s\n", "line 2: that user twice"},
	        {"b/ad read %s\n", "line 1: a user name"},
	        {"\n\n#x\n"
	         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	         "aaaa"
	         " read %s\n",
	         "line 4: a user name is 1 to 64"},
	};
	char text[600], err[NARF_ERRMSG_SIZE];
	struct narf_users u;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), cases[i].fmt, good, good);
		assert_int_equal(parse(&u, text, err), NARF_EINVAL);
		assert_non_null(strstr(err, cases[i].want));
		assert_int_equal(u.n, 0);
		assert_null(u.v);
	}
	/* A hash with a non-hex digit, at the salt and at the digest. */
	snprintf(text, sizeof(text), "a read %s\n", good);
	text[7 + 7] = 'g';
	assert_int_equal(parse(&u, text, err), NARF_EINVAL);
	snprintf(text, sizeof(text), "a read %s\n", good);
	text[strlen(text) - 2] = 'z';
	assert_int_equal(parse(&u, text, err), NARF_EINVAL);
	/* A NUL inside a line. */
	assert_int_equal(narf_users_parse(&u, "a\0 read x\n", 10, err),
	                 NARF_EINVAL);
	assert_non_null(strstr(err, "NUL"));
}

/* Truncated input: a last line without its newline still parses when it
 * is whole, and fails when the hash is cut. Empty input is no users. */
static void test_truncated_and_empty(void **state)
{
	char h[NARF_USER_HASH_TEXT], text[200], err[NARF_ERRMSG_SIZE];
	struct narf_users u;

	(void)state;
	assert_int_equal(narf_users_hash("pw-pw-pw-pw", 11, h), 0);
	snprintf(text, sizeof(text), "app read %s", h);
	assert_int_equal(parse(&u, text, err), 0);
	assert_int_equal(u.n, 1);
	narf_users_free(&u);
	text[strlen(text) - 5] = '\0';
	assert_int_equal(parse(&u, text, err), NARF_EINVAL);
	assert_int_equal(parse(&u, "", err), 0);
	assert_int_equal(u.n, 0);
	assert_int_equal(parse(&u, "   \n# only a comment", err), 0);
	assert_int_equal(u.n, 0);
}

/* Oversized input: a file over 1 MiB is refused whole; many users just
 * under it are fine. */
static void test_oversized(void **state)
{
	char h[NARF_USER_HASH_TEXT], err[NARF_ERRMSG_SIZE];
	char *text = malloc(NARF_USERS_FILE_MAX + 200);
	size_t len = 0;
	struct narf_users u;
	int n = 0;

	(void)state;
	assert_non_null(text);
	memset(text, '#', NARF_USERS_FILE_MAX + 1);
	assert_int_equal(
	        narf_users_parse(&u, text, NARF_USERS_FILE_MAX + 1, err),
	        NARF_EINVAL);
	assert_non_null(strstr(err, "1 MiB"));
	assert_int_equal(narf_users_hash("x", 1, h), 0);
	while (len + 140 < NARF_USERS_FILE_MAX)
		len += (size_t)sprintf(text + len, "u%d read %s\n", n++, h);
	assert_int_equal(narf_users_parse(&u, text, len, err), 0);
	assert_int_equal(u.n, (size_t)n);
	assert_true(narf_user_password_ok(&u.v[n - 1], "x", 1));
	narf_users_free(&u);
	free(text);
}

/* Permission names round-trip. */
static void test_perm_names(void **state)
{
	enum narf_perm p;

	(void)state;
	assert_int_equal(narf_perm_parse("readwrite", 9, &p), 0);
	assert_int_equal(p, NARF_PERM_READWRITE);
	assert_string_equal(narf_perm_name(NARF_PERM_ADMIN), "admin");
	assert_int_equal(narf_perm_parse("rea", 3, &p), -1);
	assert_int_equal(narf_perm_parse("none", 4, &p), -1);
}

/* Loading a file that is not there names it. */
static void test_load_missing(void **state)
{
	struct narf_users u;
	char err[NARF_ERRMSG_SIZE];

	(void)state;
	assert_int_equal(narf_users_load(&u, "/nonexistent/users", err),
	                 NARF_EIO);
	assert_non_null(strstr(err, "/nonexistent/users"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_hash_checks_only_its_password),
	        cmocka_unit_test(test_bad_lines_name_their_line),
	        cmocka_unit_test(test_truncated_and_empty),
	        cmocka_unit_test(test_oversized),
	        cmocka_unit_test(test_perm_names),
	        cmocka_unit_test(test_load_missing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
