/*
 * The Raft port's handshake (coordinator/raft_hs.c), run in memory: the
 * frames' bytes as docs/security.md gives them, both ends of a whole
 * exchange, and every truncated, oversized, malformed or forged frame a
 * stranger can send being refused before libraft would see it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/auth.h"
#include "common/errors.h"
#include "coordinator/raft_hs.h"

static const char secret[] = "correct horse battery staple 42";
static const char other_secret[] = "another cluster's secret, not ours";

static void keys_of(struct narf_auth_keys *k, const char *text)
{
	assert_int_equal(narf_auth_keys_from_text(k, text, strlen(text), NULL),
	                 0);
}

/* A valid HELLO of member 2 at 127.0.0.1:7102, with a fixed nonce. */
static void good_hello(unsigned char *out)
{
	struct narf_raft_hs_hello h = {.role = NARF_AUTH_COORD, .id = 2};

	for (int i = 0; i < NARF_AUTH_NONCE_SIZE; i++)
		h.nonce_c[i] = (unsigned char)(0xa0 + i);
	strcpy(h.address, "127.0.0.1:7102");
	assert_int_equal(narf_raft_hs_encode_hello(&h, out), 0);
}

/* HELLO's bytes are the documented layout: "NRFT", version 1, role, two
 * zero bytes, the id big-endian, nonce_c, the NUL-padded address. */
static void test_hello_layout(void **state)
{
	unsigned char b[NARF_RAFT_HS_HELLO_SIZE];
	static const unsigned char head[16] = {'N', 'R', 'F', 'T', 1, 3, 0, 0,
	                                       0,   0,   0,   0,   0, 0, 0, 2};

	(void)state;
	assert_int_equal(NARF_RAFT_HS_HELLO_SIZE, 96);
	assert_int_equal(NARF_RAFT_HS_CHALLENGE_SIZE, 56);
	assert_int_equal(NARF_RAFT_HS_PROOF_SIZE, 32);
	good_hello(b);
	assert_memory_equal(b, head, sizeof(head));
	assert_int_equal(b[16], 0xa0);
	assert_int_equal(b[31], 0xaf);
	assert_memory_equal(b + 32, "127.0.0.1:7102", 14);
	for (int i = 32 + 14; i < 96; i++)
		assert_int_equal(b[i], 0);
}

/* A HELLO parses back into what was encoded. */
static void test_hello_round_trip(void **state)
{
	unsigned char b[NARF_RAFT_HS_HELLO_SIZE];
	struct narf_raft_hs_hello h;

	(void)state;
	good_hello(b);
	assert_int_equal(narf_raft_hs_parse_hello(b, sizeof(b), &h, NULL), 0);
	assert_int_equal(h.role, NARF_AUTH_COORD);
	assert_int_equal(h.id, 2);
	assert_int_equal(h.nonce_c[0], 0xa0);
	assert_string_equal(h.address, "127.0.0.1:7102");
}

/* Every length but 96 is refused: a truncated or an oversized HELLO. */
static void test_hello_wrong_sizes(void **state)
{
	unsigned char b[NARF_RAFT_HS_HELLO_SIZE + 64];
	struct narf_raft_hs_hello h;
	char err[NARF_ERRMSG_SIZE];

	(void)state;
	memset(b, 0, sizeof(b));
	good_hello(b);
	for (size_t n = 0; n <= sizeof(b); n++) {
		if (n == NARF_RAFT_HS_HELLO_SIZE)
			continue;
		assert_int_equal(narf_raft_hs_parse_hello(b, n, &h, err),
		                 NARF_EPROTO);
	}
	assert_non_null(strstr(err, "size"));
}

/* Parse a good HELLO with byte i set to v; returns the parser's code. */
static int hello_with(size_t i, unsigned char v)
{
	unsigned char b[NARF_RAFT_HS_HELLO_SIZE];
	struct narf_raft_hs_hello h;

	good_hello(b);
	b[i] = v;
	return narf_raft_hs_parse_hello(b, sizeof(b), &h, NULL);
}

/* Bad magic, an unknown version, a reserved byte set, an unknown role and
 * id 0 are each refused; nonce bytes may be anything. */
static void test_hello_malformed_fields(void **state)
{
	(void)state;
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(hello_with(i, 'x'), NARF_EPROTO);
	assert_int_equal(hello_with(4, 0), NARF_EPROTO);
	assert_int_equal(hello_with(4, 2), NARF_EPROTO);
	assert_int_equal(hello_with(5, 0), NARF_EPROTO);
	assert_int_equal(hello_with(5, 4), NARF_EPROTO);
	assert_int_equal(hello_with(5, 255), NARF_EPROTO);
	assert_int_equal(hello_with(6, 1), NARF_EPROTO);
	assert_int_equal(hello_with(7, 1), NARF_EPROTO);
	assert_int_equal(hello_with(15, 0), NARF_EPROTO); /* id 0 */
	assert_int_equal(hello_with(8, 0x80), 0);         /* a large id */
	for (size_t i = 16; i < 32; i++)
		assert_int_equal(hello_with(i, 0xff), 0);
}

/* The address must be a NUL-terminated, zero-padded host:port that narf
 * accepts: no 64 bytes without a NUL, no bytes after the NUL, no names. */
static void test_hello_bad_addresses(void **state)
{
	static const char *const bad[] = {
	        "",        "nohost",           "127.0.0.1",     "127.0.0.1:0",
	        ":7102",   "127.0.0.1:70000",  "example.com:1", "1.2.3.4:x",
	        "1.2.3:9", "127.0.0.1:7102\n",
	};
	unsigned char b[NARF_RAFT_HS_HELLO_SIZE];
	struct narf_raft_hs_hello h;
	char err[NARF_ERRMSG_SIZE];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		good_hello(b);
		memset(b + 32, 0, 64);
		memcpy(b + 32, bad[i], strlen(bad[i]));
		assert_int_equal(
		        narf_raft_hs_parse_hello(b, sizeof(b), &h, err),
		        NARF_EPROTO);
	}
	/* 64 bytes, no terminating NUL */
	good_hello(b);
	memset(b + 32, '1', 64);
	assert_int_equal(narf_raft_hs_parse_hello(b, sizeof(b), &h, err),
	                 NARF_EPROTO);
	assert_non_null(strstr(err, "NUL"));
	/* something after the NUL */
	assert_int_equal(hello_with(95, 'x'), NARF_EPROTO);
	assert_int_equal(hello_with(32 + 15, '7'), NARF_EPROTO);
	/* localhost is an address narf accepts */
	good_hello(b);
	memset(b + 32, 0, 64);
	memcpy(b + 32, "localhost:7102", 14);
	assert_int_equal(narf_raft_hs_parse_hello(b, sizeof(b), &h, NULL), 0);
}

/* libraft's own TCP preamble (little-endian protocol 1, id, address
 * length, address) followed by an AppendEntries is not a HELLO: what a
 * stranger speaking stock libraft sends is refused at its first bytes. */
static void test_stock_libraft_preamble_refused(void **state)
{
	unsigned char b[NARF_RAFT_HS_HELLO_SIZE];
	struct narf_raft_hs_hello h;
	struct narf_raft_hs_server s;
	struct narf_auth_keys k;
	char err[NARF_ERRMSG_SIZE];

	(void)state;
	keys_of(&k, secret);
	memset(b, 0xff, sizeof(b));
	memset(b, 0, 24);
	b[0] = 1;   /* protocol */
	b[8] = 9;   /* server id */
	b[16] = 16; /* address length */
	memcpy(b + 24, "127.0.0.1:9999\0\0", 16);
	b[40] = 1; /* AppendEntries */
	assert_int_equal(narf_raft_hs_parse_hello(b, sizeof(b), &h, err),
	                 NARF_EPROTO);
	assert_non_null(strstr(err, "magic"));
	assert_int_equal(narf_raft_hs_server_hello(&s, &k, b, sizeof(b), err),
	                 NARF_EPROTO);
}

/* Encoding refuses what it could not put on the wire. */
static void test_encode_limits(void **state)
{
	struct narf_raft_hs_hello h = {.role = NARF_AUTH_COORD, .id = 1};
	struct narf_raft_hs_client c;
	unsigned char b[NARF_RAFT_HS_HELLO_SIZE];
	char addr[NARF_RAFT_HS_ADDR_SIZE + 1];

	(void)state;
	memset(h.address, 'a', sizeof(h.address)); /* no NUL */
	assert_int_equal(narf_raft_hs_encode_hello(&h, b), NARF_EINVAL);
	strcpy(h.address, "127.0.0.1:1");
	h.id = 0;
	assert_int_equal(narf_raft_hs_encode_hello(&h, b), NARF_EINVAL);
	memset(addr, '1', sizeof(addr) - 1);
	addr[sizeof(addr) - 1] = '\0';
	assert_int_equal(narf_raft_hs_client_start(&c, 1, addr), NARF_EINVAL);
	assert_int_equal(narf_raft_hs_client_start(&c, 0, "127.0.0.1:1"),
	                 NARF_EINVAL);
	assert_int_equal(narf_raft_hs_client_start(&c, 1, NULL), NARF_EINVAL);
}

/* CHALLENGE: round trip, then wrong sizes, magic, version and reserved
 * bytes are refused. */
static void test_challenge_frames(void **state)
{
	struct narf_raft_hs_challenge c, d;
	unsigned char b[NARF_RAFT_HS_CHALLENGE_SIZE + 8];

	(void)state;
	memset(b, 0, sizeof(b));
	for (int i = 0; i < NARF_AUTH_NONCE_SIZE; i++)
		c.nonce_s[i] = (unsigned char)i;
	for (int i = 0; i < NARF_AUTH_MAC_SIZE; i++)
		c.mac[i] = (unsigned char)(100 + i);
	narf_raft_hs_encode_challenge(&c, b);
	assert_memory_equal(b, "NRFT\x01\0\0\0", 8);
	assert_int_equal(narf_raft_hs_parse_challenge(
	                         b, NARF_RAFT_HS_CHALLENGE_SIZE, &d, NULL),
	                 0);
	assert_memory_equal(&c, &d, sizeof(c));
	for (size_t n = 0; n <= sizeof(b); n++)
		if (n != NARF_RAFT_HS_CHALLENGE_SIZE)
			assert_int_equal(
			        narf_raft_hs_parse_challenge(b, n, &d, NULL),
			        NARF_EPROTO);
	for (size_t i = 0; i < 8; i++) {
		unsigned char x[NARF_RAFT_HS_CHALLENGE_SIZE];

		memcpy(x, b, sizeof(x));
		x[i] ^= 0x40;
		assert_int_equal(
		        narf_raft_hs_parse_challenge(x, sizeof(x), &d, NULL),
		        NARF_EPROTO);
	}
}

/* The OK byte is exactly one 0x06. */
static void test_ok_byte(void **state)
{
	unsigned char ok[2] = {NARF_RAFT_HS_OK, NARF_RAFT_HS_OK};
	unsigned char no = 0;

	(void)state;
	assert_int_equal(narf_raft_hs_client_ok(ok, 1), 0);
	assert_int_equal(narf_raft_hs_client_ok(ok, 0), NARF_EPROTO);
	assert_int_equal(narf_raft_hs_client_ok(ok, 2), NARF_EPROTO);
	assert_int_equal(narf_raft_hs_client_ok(&no, 1), NARF_EPROTO);
}

/* One exchange: client holds ck, server sk. Returns the first failing
 * step's code, 0 when both proved; s is the server's state after. */
static int exchange(const struct narf_auth_keys *ck,
                    const struct narf_auth_keys *sk,
                    struct narf_raft_hs_server *s)
{
	struct narf_raft_hs_client c;
	int rv;

	assert_int_equal(narf_raft_hs_client_start(&c, 7, "127.0.0.1:7107"), 0);
	rv = narf_raft_hs_server_hello(s, sk, c.hello, sizeof(c.hello), NULL);
	if (rv != 0)
		return rv;
	rv = narf_raft_hs_client_challenge(&c, ck, s->challenge,
	                                   sizeof(s->challenge), NULL);
	if (rv != 0)
		return rv;
	return narf_raft_hs_server_proof(s, sk, c.proof, sizeof(c.proof), NULL);
}

/* Two holders of the secret prove themselves to each other; the server
 * learns the id and address the client claimed inside the transcript. */
static void test_exchange(void **state)
{
	struct narf_auth_keys k;
	struct narf_raft_hs_server s;

	(void)state;
	keys_of(&k, secret);
	assert_int_equal(exchange(&k, &k, &s), 0);
	assert_int_equal(s.hello.id, 7);
	assert_string_equal(s.hello.address, "127.0.0.1:7107");
}

/* A server of another secret (a stranger on a member's address) fails the
 * client's check; a client of another secret fails the server's. */
static void test_wrong_secret(void **state)
{
	struct narf_auth_keys k, other;
	struct narf_raft_hs_server s;
	struct narf_raft_hs_client c;
	char err[NARF_ERRMSG_SIZE];

	(void)state;
	keys_of(&k, secret);
	keys_of(&other, other_secret);
	assert_int_equal(exchange(&k, &other, &s), NARF_EAUTH);
	/* a client of another secret: the server's check fails */
	assert_int_equal(narf_raft_hs_client_start(&c, 7, "127.0.0.1:7107"), 0);
	assert_int_equal(narf_raft_hs_server_hello(&s, &k, c.hello,
	                                           sizeof(c.hello), NULL),
	                 0);
	/* the client cannot check the server's proof either, but a
	 * stranger sends some 32 bytes anyway */
	assert_int_equal(
	        narf_raft_hs_client_challenge(&c, &other, s.challenge,
	                                      sizeof(s.challenge), err),
	        NARF_EAUTH);
	assert_non_null(strstr(err, "secret"));
	memset(c.proof, 0x5a, sizeof(c.proof));
	assert_int_equal(narf_raft_hs_server_proof(&s, &k, c.proof,
	                                           sizeof(c.proof), err),
	                 NARF_EAUTH);
}

/* A secret file of two lines (docs/security.md, "Rotating the secret"). */
static void keys_two(struct narf_auth_keys *k,
                     const char *first,
                     const char *second)
{
	struct narf_auth_keys b;

	keys_of(k, first);
	keys_of(&b, second);
	k->set[1] = b.set[0];
	k->n = 2;
}

/* The rotation's stages (old; old+new; new+old; new): members one stage
 * apart connect either way round, as the auth core promises; two stages
 * apart a client still on the old secret alone cannot check a server that
 * answers with the new one. */
static void test_rotation(void **state)
{
	struct narf_auth_keys stage[4];
	struct narf_raft_hs_server s;

	(void)state;
	keys_of(&stage[0], secret);
	keys_two(&stage[1], secret, other_secret);
	keys_two(&stage[2], other_secret, secret);
	keys_of(&stage[3], other_secret);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(exchange(&stage[i], &stage[i + 1], &s), 0);
		assert_int_equal(exchange(&stage[i + 1], &stage[i], &s), 0);
		assert_int_equal(s.hello.id, 7);
	}
	assert_int_equal(exchange(&stage[0], &stage[2], &s), NARF_EAUTH);
	assert_int_equal(exchange(&stage[0], &stage[3], &s), NARF_EAUTH);
}

/* Only the coordinator role speaks Raft: a HELLO claiming the node or the
 * operator role is refused even by a server that could answer it, and a
 * server holding only a node key cannot answer at all. */
static void test_roles(void **state)
{
	unsigned char b[NARF_RAFT_HS_HELLO_SIZE];
	struct narf_auth_keys k, node;
	struct narf_raft_hs_server s;
	char text[80], err[NARF_ERRMSG_SIZE];

	(void)state;
	keys_of(&k, secret);
	for (int role = NARF_AUTH_OPERATOR; role < NARF_AUTH_COORD; role++) {
		good_hello(b);
		b[5] = (unsigned char)role;
		assert_int_equal(
		        narf_raft_hs_server_hello(&s, &k, b, sizeof(b), err),
		        NARF_EAUTH);
		assert_non_null(strstr(err, "may not speak Raft"));
	}
	assert_int_equal(narf_auth_node_key_text(&k, text, sizeof(text)), 0);
	keys_of(&node, text);
	good_hello(b);
	assert_int_equal(
	        narf_raft_hs_server_hello(&s, &node, b, sizeof(b), err),
	        NARF_EAUTH);
}

/* Forgeries from what crossed the wire: a proof from another exchange,
 * the server's own MAC sent back as the client's, and a server echoing the
 * client's nonce are all refused; a proof of the wrong size too. */
static void test_replays(void **state)
{
	struct narf_auth_keys k;
	struct narf_raft_hs_client c1, c2;
	struct narf_raft_hs_server s1, s2;
	unsigned char echo[NARF_RAFT_HS_CHALLENGE_SIZE];

	(void)state;
	keys_of(&k, secret);
	/* a complete, honest exchange 1 */
	assert_int_equal(narf_raft_hs_client_start(&c1, 7, "127.0.0.1:7107"),
	                 0);
	assert_int_equal(narf_raft_hs_server_hello(&s1, &k, c1.hello,
	                                           sizeof(c1.hello), NULL),
	                 0);
	assert_int_equal(
	        narf_raft_hs_client_challenge(&c1, &k, s1.challenge,
	                                      sizeof(s1.challenge), NULL),
	        0);
	/* the attacker replays c1's HELLO and proof on a new connection */
	assert_int_equal(narf_raft_hs_server_hello(&s2, &k, c1.hello,
	                                           sizeof(c1.hello), NULL),
	                 0);
	assert_int_equal(narf_raft_hs_server_proof(&s2, &k, c1.proof,
	                                           sizeof(c1.proof), NULL),
	                 NARF_EAUTH);
	/* ... or reflects the server's MAC as the client's proof */
	assert_int_equal(
	        narf_raft_hs_server_proof(&s2, &k, s2.challenge + 24,
	                                  NARF_RAFT_HS_PROOF_SIZE, NULL),
	        NARF_EAUTH);
	/* a proof of the wrong size */
	assert_int_equal(narf_raft_hs_server_proof(&s1, &k, c1.proof, 31, NULL),
	                 NARF_EPROTO);
	/* a server that echoes the client's nonce as its own */
	assert_int_equal(narf_raft_hs_client_start(&c2, 7, "127.0.0.1:7107"),
	                 0);
	memcpy(echo, s1.challenge, sizeof(echo));
	memcpy(echo + 8, c2.hello + 16, NARF_AUTH_NONCE_SIZE);
	assert_int_equal(narf_raft_hs_client_challenge(&c2, &k, echo,
	                                               sizeof(echo), NULL),
	                 NARF_EAUTH);
	/* the honest exchange 1 still completes */
	assert_int_equal(narf_raft_hs_server_proof(&s1, &k, c1.proof,
	                                           sizeof(c1.proof), NULL),
	                 0);
}

/* The id is inside the MACs: a HELLO whose id was changed in flight (the
 * proof then made for the changed id by a client that never saw it) does
 * not check out. */
static void test_id_is_proven(void **state)
{
	struct narf_auth_keys k;
	struct narf_raft_hs_client c;
	struct narf_raft_hs_server s;
	unsigned char forged[NARF_RAFT_HS_HELLO_SIZE];

	(void)state;
	keys_of(&k, secret);
	assert_int_equal(narf_raft_hs_client_start(&c, 7, "127.0.0.1:7107"), 0);
	memcpy(forged, c.hello, sizeof(forged));
	forged[15] = 1; /* claims member 1 */
	assert_int_equal(
	        narf_raft_hs_server_hello(&s, &k, forged, sizeof(forged), NULL),
	        0);
	assert_int_equal(s.hello.id, 1);
	/* the client checks the server's MAC over id 1 against id 7 */
	assert_int_equal(
	        narf_raft_hs_client_challenge(&c, &k, s.challenge,
	                                      sizeof(s.challenge), NULL),
	        NARF_EAUTH);
}

/* Single-bit corruptions of a valid HELLO never crash the parser, and
 * those of its magic, version and reserved bytes are always refused. */
static void test_hello_byte_flips(void **state)
{
	unsigned char b[NARF_RAFT_HS_HELLO_SIZE];
	struct narf_raft_hs_hello h;

	(void)state;
	for (size_t i = 0; i < sizeof(b); i++)
		for (int bit = 0; bit < 8; bit++) {
			int rv;

			good_hello(b);
			b[i] ^= (unsigned char)(1 << bit);
			rv = narf_raft_hs_parse_hello(b, sizeof(b), &h, NULL);
			assert_true(rv == 0 || rv == NARF_EPROTO);
			/* magic, version, reserved: always refused (a
			 * flipped role may name another role, which
			 * server_hello refuses) */
			if (i < 8 && i != 5)
				assert_int_equal(rv, NARF_EPROTO);
			if (rv == 0)
				assert_true(strlen(h.address) <
				            NARF_RAFT_HS_ADDR_SIZE);
		}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_hello_layout),
	        cmocka_unit_test(test_hello_round_trip),
	        cmocka_unit_test(test_hello_wrong_sizes),
	        cmocka_unit_test(test_hello_malformed_fields),
	        cmocka_unit_test(test_hello_bad_addresses),
	        cmocka_unit_test(test_stock_libraft_preamble_refused),
	        cmocka_unit_test(test_encode_limits),
	        cmocka_unit_test(test_challenge_frames),
	        cmocka_unit_test(test_ok_byte),
	        cmocka_unit_test(test_exchange),
	        cmocka_unit_test(test_wrong_secret),
	        cmocka_unit_test(test_rotation),
	        cmocka_unit_test(test_roles),
	        cmocka_unit_test(test_replays),
	        cmocka_unit_test(test_id_is_proven),
	        cmocka_unit_test(test_hello_byte_flips),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
