/*
 * The cluster secret's challenge-response (common/auth.c), run in memory:
 * both ends of the exchange, and every way a stranger or a wrong key can
 * get it wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/auth.h"
#include "common/errors.h"

static const char secret[] = "correct horse battery staple 42";

static void keys_of(struct narf_auth_keys *k, const char *text)
{
	char err[NARF_ERRMSG_SIZE];

	assert_int_equal(narf_auth_keys_from_text(k, text, strlen(text), err),
	                 0);
}

/* Run a whole exchange: the client holds ck, the server sk; returns the
 * first failing step's code (0: both proved). */
static int exchange(const struct narf_auth_keys *ck,
                    const struct narf_auth_keys *sk,
                    enum narf_auth_role role,
                    uint64_t id,
                    const char *cctx,
                    const char *sctx)
{
	struct narf_auth c, s;
	unsigned char mac_s[NARF_AUTH_MAC_SIZE], mac_c[NARF_AUTH_MAC_SIZE];
	int rv;

	assert_int_equal(narf_auth_client_begin(&c, role, id, cctx), 0);
	rv = narf_auth_server_answer(&s, sk, role, id, sctx, c.nonce_c, mac_s);
	if (rv != 0)
		return rv;
	rv = narf_auth_client_prove(&c, ck, s.nonce_s, mac_s, mac_c);
	if (rv != 0)
		return rv;
	return narf_auth_server_check(&s, sk, mac_c);
}

/* Both ends holding the cluster secret prove every role to each other. */
static void test_secret_proves_every_role(void **state)
{
	struct narf_auth_keys k;

	(void)state;
	keys_of(&k, secret);
	assert_int_equal(exchange(&k, &k, NARF_AUTH_OPERATOR, 0, "api", "api"),
	                 0);
	assert_int_equal(exchange(&k, &k, NARF_AUTH_NODE, 7, "api", "api"), 0);
	assert_int_equal(exchange(&k, &k, NARF_AUTH_COORD, 2, "raft", "raft"),
	                 0);
}

/* A node key proves the node role and nothing else: a data node cannot
 * act as an operator or a coordinator. */
static void test_node_key_proves_only_the_node_role(void **state)
{
	struct narf_auth_keys full, node;
	char text[80];
	struct narf_auth s;
	unsigned char nonce[NARF_AUTH_NONCE_SIZE] = {1}, mac[32];

	(void)state;
	keys_of(&full, secret);
	assert_int_equal(narf_auth_node_key_text(&full, text, sizeof(text)), 0);
	assert_int_equal(strncmp(text, "node:", 5), 0);
	assert_int_equal(strlen(text), 5 + 64);
	keys_of(&node, text);
	assert_true(narf_auth_keys_can(&node, NARF_AUTH_NODE));
	assert_false(narf_auth_keys_can(&node, NARF_AUTH_OPERATOR));
	assert_false(narf_auth_keys_can(&node, NARF_AUTH_COORD));
	assert_int_equal(narf_auth_node_key_text(&node, text, sizeof(text)), 0);
	/* Node to coordinator, and node to node. */
	assert_int_equal(
	        exchange(&node, &full, NARF_AUTH_NODE, 4, "api", "api"), 0);
	assert_int_equal(
	        exchange(&node, &node, NARF_AUTH_NODE, 4, "peer", "peer"), 0);
	/* The client cannot even start an operator proof... */
	assert_int_equal(
	        exchange(&node, &full, NARF_AUTH_OPERATOR, 0, "api", "api"),
	        NARF_EAUTH);
	/* ... and a node-keyed server refuses to answer for another role. */
	assert_int_equal(narf_auth_server_answer(&s, &node, NARF_AUTH_COORD, 1,
	                                         "raft", nonce, mac),
	                 NARF_EAUTH);
}

/* A wrong secret fails on the first proof the other side checks: the
 * client sees the server does not hold its key, and the server sees the
 * same of a client. */
static void test_wrong_secret_fails_both_ways(void **state)
{
	struct narf_auth_keys good, bad;
	struct narf_auth c, s;
	unsigned char mac_s[32], mac_c[32];

	(void)state;
	keys_of(&good, secret);
	keys_of(&bad, "another secret of enough length");
	assert_int_equal(exchange(&bad, &good, NARF_AUTH_NODE, 1, "api", "api"),
	                 NARF_EAUTH);
	assert_int_equal(exchange(&good, &bad, NARF_AUTH_NODE, 1, "api", "api"),
	                 NARF_EAUTH);
	/* A client that skips checking the server and sends a proof made with
	 * the wrong key is refused by the server. */
	assert_int_equal(narf_auth_client_begin(&c, NARF_AUTH_NODE, 1, "api"),
	                 0);
	assert_int_equal(narf_auth_server_answer(&s, &good, NARF_AUTH_NODE, 1,
	                                         "api", c.nonce_c, mac_s),
	                 0);
	memcpy(c.nonce_s, s.nonce_s, sizeof(c.nonce_s));
	assert_int_equal(
	        narf_auth_client_prove(&c, &bad, s.nonce_s, mac_s, mac_c),
	        NARF_EAUTH);
	memset(mac_c, 0, sizeof(mac_c));
	assert_int_equal(narf_auth_server_check(&s, &good, mac_c), NARF_EAUTH);
}

/* A proof is bound to its port, its role, its claimed id and its
 * direction: replaying the server's proof as the client's, or a proof
 * for one id as another's, fails. */
static void test_proof_is_bound_to_its_transcript(void **state)
{
	struct narf_auth_keys k;
	struct narf_auth c, s, s2;
	unsigned char mac_s[32], mac_c[32];

	(void)state;
	keys_of(&k, secret);
	assert_int_equal(exchange(&k, &k, NARF_AUTH_NODE, 1, "api", "peer"),
	                 NARF_EAUTH);
	assert_int_equal(narf_auth_client_begin(&c, NARF_AUTH_NODE, 5, "api"),
	                 0);
	assert_int_equal(narf_auth_server_answer(&s, &k, NARF_AUTH_NODE, 5,
	                                         "api", c.nonce_c, mac_s),
	                 0);
	/* Reflection: the server's own proof sent back. */
	assert_int_equal(narf_auth_server_check(&s, &k, mac_s), NARF_EAUTH);
	assert_int_equal(
	        narf_auth_client_prove(&c, &k, s.nonce_s, mac_s, mac_c), 0);
	assert_int_equal(narf_auth_server_check(&s, &k, mac_c), 0);
	/* The same proof against a server that was told id 6 instead. */
	s2 = s;
	s2.id = 6;
	assert_int_equal(narf_auth_server_check(&s2, &k, mac_c), NARF_EAUTH);
	/* Or the node role's proof taken as the coordinator role's. */
	s2 = s;
	s2.role = NARF_AUTH_COORD;
	assert_int_equal(narf_auth_server_check(&s2, &k, mac_c), NARF_EAUTH);
	/* A fresh server nonce makes the old proof worthless (replay). */
	assert_int_equal(narf_auth_server_answer(&s2, &k, NARF_AUTH_NODE, 5,
	                                         "api", c.nonce_c, mac_s),
	                 0);
	assert_int_equal(narf_auth_server_check(&s2, &k, mac_c), NARF_EAUTH);
}

/* A server that echoes the client's nonce is refused (it could be the
 * client's own proof reflected). */
static void test_echoed_nonce_is_refused(void **state)
{
	struct narf_auth_keys k;
	struct narf_auth c;
	unsigned char mac[32] = {0}, out[32];

	(void)state;
	keys_of(&k, secret);
	assert_int_equal(narf_auth_client_begin(&c, NARF_AUTH_NODE, 1, "api"),
	                 0);
	assert_int_equal(narf_auth_client_prove(&c, &k, c.nonce_c, mac, out),
	                 NARF_EAUTH);
}

/* Key files: short secrets, malformed node keys, over-long lines and
 * missing files get a clear error; a trailing newline is not part of the
 * secret. */
static void test_key_text_and_files(void **state)
{
	struct narf_auth_keys a, b;
	char err[NARF_ERRMSG_SIZE], path[] = "/tmp/narf-auth-XXXXXX";
	int fd;
	char big[NARF_AUTH_MAX_SECRET + 10];

	(void)state;
	assert_int_equal(narf_auth_keys_from_text(&a, "short", 5, err),
	                 NARF_EINVAL);
	assert_non_null(strstr(err, "too short"));
	assert_int_equal(narf_auth_keys_from_text(&a, "node:abc", 8, err),
	                 NARF_EINVAL);
	assert_int_equal(
	        narf_auth_keys_from_text(
	                &a,
	                "node:"
	                "zz0102030405060708090a0b0c0d0e0f101112131415161718"
	                "191a1b1c1d1e1f",
	                69, err),
	        NARF_EINVAL);
	assert_int_equal(narf_auth_keys_from_file(&a, "/nonexistent/x", err),
	                 NARF_EIO);
	assert_non_null(strstr(err, "/nonexistent/x"));

	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, secret, strlen(secret)), strlen(secret));
	assert_int_equal(write(fd, "\r\n\n", 3), 3);
	close(fd);
	assert_int_equal(narf_auth_keys_from_file(&a, path, err), 0);
	keys_of(&b, secret);
	assert_int_equal(a.n, 1);
	assert_memory_equal(&a.set[0], &b.set[0], sizeof(a.set[0]));

	/* A second line too short to be a secret is refused, naming it. */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, secret, strlen(secret)), strlen(secret));
	assert_int_equal(write(fd, "\nshort\n", 7), 7);
	close(fd);
	assert_int_equal(narf_auth_keys_from_file(&a, path, err), NARF_EINVAL);
	assert_non_null(strstr(err, "too short"));

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, big, strlen(big)), strlen(big));
	close(fd);
	assert_int_equal(narf_auth_keys_from_file(&a, path, err), NARF_EINVAL);
	assert_non_null(strstr(err, "over"));
	unlink(path);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	fclose(f);
}

/* Rotating the secret (docs/security.md) goes through four stages, each
 * finished on every process before the next: [old], [old, new],
 * [new, old], [new]. Processes one stage apart prove themselves to each
 * other in both directions, whatever the role; disjoint secrets never do.
 * Mixed lines (a secret and a node key) are refused. */
static void test_rotation_with_two_secrets(void **state)
{
	struct narf_auth_keys old_only, new_only, both, rev, other;
	char err[NARF_ERRMSG_SIZE], path[] = "/tmp/narf-auth-XXXXXX";
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	keys_of(&old_only, "the old secret, long enough");
	keys_of(&new_only, "the new secret, long enough");
	keys_of(&other, "somebody else's secret, long");
	write_file(path,
	           "the new secret, long enough\n"
	           "the old secret, long enough\n");
	assert_int_equal(narf_auth_keys_from_file(&both, path, err), 0);
	assert_int_equal(both.n, 2);
	write_file(path,
	           "the old secret, long enough\n"
	           "the new secret, long enough\n");
	assert_int_equal(narf_auth_keys_from_file(&rev, path, err), 0);
	for (int role = NARF_AUTH_OPERATOR; role <= NARF_AUTH_COORD; role++) {
		/* stages: old_only, rev = [old, new], both = [new, old],
		 * new_only */
		const struct narf_auth_keys *pairs[][2] = {
		        {&old_only, &rev},  {&rev, &old_only},
		        {&rev, &both},      {&both, &rev},
		        {&both, &new_only}, {&new_only, &both},
		        {&rev, &rev},       {&both, &both}};

		for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++)
			assert_int_equal(exchange(pairs[i][0], pairs[i][1],
			                          (enum narf_auth_role)role, 3,
			                          "api", "api"),
			                 0);
		assert_int_equal(
		        exchange(&old_only, &new_only,
		                 (enum narf_auth_role)role, 3, "api", "api"),
		        NARF_EAUTH);
		assert_int_equal(
		        exchange(&other, &both, (enum narf_auth_role)role, 3,
		                 "api", "api"),
		        NARF_EAUTH);
		assert_int_equal(
		        exchange(&both, &other, (enum narf_auth_role)role, 3,
		                 "api", "api"),
		        NARF_EAUTH);
	}
	write_file(path,
	           "the new secret, long enough\nnode:"
	           "000102030405060708090a0b0c0d0e0f"
	           "101112131415161718191a1b1c1d1e1f\n");
	assert_int_equal(narf_auth_keys_from_file(&both, path, err),
	                 NARF_EINVAL);
	assert_non_null(strstr(err, "both"));
	write_file(path, "");
	assert_int_equal(narf_auth_keys_from_file(&both, path, err),
	                 NARF_EINVAL);
	unlink(path);
}

/* Hex round trip, and decoding refuses wrong lengths and non-digits. */
static void test_hex(void **state)
{
	unsigned char in[4] = {0x00, 0xab, 0x7f, 0xff}, out[4];
	char hex[9];

	(void)state;
	narf_auth_hex(in, 4, hex);
	assert_string_equal(hex, "00ab7fff");
	assert_int_equal(narf_auth_unhex("00AB7fff", 8, out, 4), 0);
	assert_memory_equal(in, out, 4);
	assert_int_equal(narf_auth_unhex("00ab7ff", 7, out, 4), -1);
	assert_int_equal(narf_auth_unhex("00ab7fgf", 8, out, 4), -1);
	assert_int_equal(narf_auth_unhex(NULL, 0, out, 4), -1);
}

/* Role names round-trip; unknown ones are refused. */
static void test_role_names(void **state)
{
	enum narf_auth_role r;

	(void)state;
	assert_int_equal(narf_auth_role_parse("node", &r), 0);
	assert_int_equal(r, NARF_AUTH_NODE);
	assert_string_equal(narf_auth_role_name(NARF_AUTH_COORD), "coord");
	assert_int_equal(narf_auth_role_parse("root", &r), -1);
	assert_int_equal(narf_auth_role_parse(NULL, &r), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_secret_proves_every_role),
	        cmocka_unit_test(test_node_key_proves_only_the_node_role),
	        cmocka_unit_test(test_wrong_secret_fails_both_ways),
	        cmocka_unit_test(test_proof_is_bound_to_its_transcript),
	        cmocka_unit_test(test_echoed_nonce_is_refused),
	        cmocka_unit_test(test_key_text_and_files),
	        cmocka_unit_test(test_rotation_with_two_secrets),
	        cmocka_unit_test(test_hex),
	        cmocka_unit_test(test_role_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
