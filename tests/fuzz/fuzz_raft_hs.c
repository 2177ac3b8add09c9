/*
 * libFuzzer target for the Raft port's handshake frames
 * (coordinator/raft_hs.h): what a stranger can send before libraft would
 * see a byte.
 *
 * Input layout: byte 0 picks the step (bits 0-1): the server reading a
 * HELLO and then a PROOF, the client reading a CHALLENGE and then the OK
 * byte, or the bare HELLO and CHALLENGE parsers; the rest is what the peer
 * sent, split at the first frame's size. Besides memory safety (ASan,
 * UBSan) it checks that a frame that parses re-encodes to the very bytes
 * it came from (one encoding per frame) and that nothing the fuzzer makes
 * up passes a proof. Built by tests/fuzz/run.sh, not by meson.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/auth.h"
#include "common/errors.h"
#include "coordinator/raft_hs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char secret[] = "the fuzzer's cluster secret, 42";

/* Abort (a crash libFuzzer reports) unless cond holds. */
static void check(int cond)
{
	if (!cond)
		abort();
}

static size_t min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

static void server_side(const struct narf_auth_keys *k,
                        const uint8_t *in,
                        size_t n)
{
	struct narf_raft_hs_server s;
	size_t first = min_size(n, NARF_RAFT_HS_HELLO_SIZE);
	char err[NARF_ERRMSG_SIZE];
	int rv;

	rv = narf_raft_hs_server_hello(&s, k, in, first, err);
	check(rv == 0 || rv == NARF_EPROTO || rv == NARF_EAUTH);
	if (rv != 0)
		return;
	check(s.hello.role == NARF_AUTH_COORD && s.hello.id != 0);
	check(strlen(s.hello.address) < NARF_RAFT_HS_ADDR_SIZE);
	/* The fuzzer never sees nonce_s before it "answers". */
	rv = narf_raft_hs_server_proof(&s, k, in + first, n - first, err);
	check(rv == NARF_EPROTO || rv == NARF_EAUTH);
}

static void client_side(const struct narf_auth_keys *k,
                        const uint8_t *in,
                        size_t n)
{
	struct narf_raft_hs_client c;
	size_t first = min_size(n, NARF_RAFT_HS_CHALLENGE_SIZE);
	char err[NARF_ERRMSG_SIZE];
	int rv;

	check(narf_raft_hs_client_start(&c, 3, "127.0.0.1:7103") == 0);
	rv = narf_raft_hs_client_challenge(&c, k, in, first, err);
	/* A MAC over a nonce_c drawn just now cannot be guessed. */
	check(rv == NARF_EPROTO || rv == NARF_EAUTH);
	(void)narf_raft_hs_client_ok(in + first, n - first);
}

static void parsers(const uint8_t *in, size_t n)
{
	struct narf_raft_hs_hello h;
	struct narf_raft_hs_challenge c;
	unsigned char out[NARF_RAFT_HS_MAX_FRAME];

	if (narf_raft_hs_parse_hello(in, n, &h, NULL) == 0) {
		check(n == NARF_RAFT_HS_HELLO_SIZE);
		check(narf_raft_hs_encode_hello(&h, out) == 0);
		check(memcmp(out, in, n) == 0);
	}
	if (narf_raft_hs_parse_challenge(in, n, &c, NULL) == 0) {
		check(n == NARF_RAFT_HS_CHALLENGE_SIZE);
		narf_raft_hs_encode_challenge(&c, out);
		check(memcmp(out, in, n) == 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct narf_auth_keys k;
	static int have_keys;

	if (size < 1)
		return 0;
	if (!have_keys) {
		check(narf_auth_keys_from_text(&k, secret, strlen(secret),
		                               NULL) == 0);
		have_keys = 1;
	}
	switch (data[0] & 3) {
	case 0:
		server_side(&k, data + 1, size - 1);
		break;
	case 1:
		client_side(&k, data + 1, size - 1);
		break;
	default:
		parsers(data + 1, size - 1);
		break;
	}
	return 0;
}
