/*
 * The Raft port's handshake frames: see raft_hs.h.
 *
 * Multi-byte integers are big-endian. Every frame has a fixed size, so a
 * reader knows how much to read before it has parsed anything, and a
 * parser refuses any other length. Reserved bytes and the address's
 * padding must be zero, so each frame has one encoding.
 */
#include "raft_hs.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "common/errors.h"

/* HELLO's layout. */
#define HELLO_MAGIC 0
#define HELLO_VERSION 4
#define HELLO_ROLE 5
#define HELLO_RESERVED 6
#define HELLO_ID 8
#define HELLO_NONCE 16
#define HELLO_ADDR (HELLO_NONCE + NARF_AUTH_NONCE_SIZE)
static_assert(HELLO_ADDR + NARF_RAFT_HS_ADDR_SIZE == NARF_RAFT_HS_HELLO_SIZE,
              "HELLO's fields fill its size");
static_assert(NARF_RAFT_HS_HELLO_SIZE == 96, "HELLO is 96 bytes on the wire");

/* CHALLENGE's layout. */
#define CHAL_MAGIC 0
#define CHAL_VERSION 4
#define CHAL_RESERVED 5
#define CHAL_NONCE 8
#define CHAL_MAC (CHAL_NONCE + NARF_AUTH_NONCE_SIZE)
static_assert(CHAL_MAC + NARF_AUTH_MAC_SIZE == NARF_RAFT_HS_CHALLENGE_SIZE,
              "CHALLENGE's fields fill its size");
static_assert(NARF_RAFT_HS_CHALLENGE_SIZE == 56,
              "CHALLENGE is 56 bytes on the wire");
static_assert(NARF_RAFT_HS_MAX_FRAME >= NARF_RAFT_HS_CHALLENGE_SIZE &&
                      NARF_RAFT_HS_MAX_FRAME >= NARF_RAFT_HS_PROOF_SIZE,
              "MAX_FRAME is the largest frame");

static int fail(char *errmsg, int err, const char *msg)
{
	if (errmsg != NULL)
		snprintf(errmsg, NARF_ERRMSG_SIZE, "%s", msg);
	return err;
}

static void put_u64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (56 - 8 * i));
}

static uint64_t get_u64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static bool all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

int narf_raft_hs_encode_hello(const struct narf_raft_hs_hello *h,
                              unsigned char *out)
{
	size_t alen = strnlen(h->address, NARF_RAFT_HS_ADDR_SIZE);

	if (alen >= NARF_RAFT_HS_ADDR_SIZE || h->id == 0)
		return NARF_EINVAL;
	memset(out, 0, NARF_RAFT_HS_HELLO_SIZE);
	memcpy(out + HELLO_MAGIC, NARF_RAFT_HS_MAGIC, 4);
	out[HELLO_VERSION] = NARF_RAFT_HS_VERSION;
	out[HELLO_ROLE] = (unsigned char)h->role;
	put_u64(out + HELLO_ID, h->id);
	memcpy(out + HELLO_NONCE, h->nonce_c, NARF_AUTH_NONCE_SIZE);
	memcpy(out + HELLO_ADDR, h->address, alen);
	return 0;
}

/* A frame's magic and version; bad_magic says whose frame it was not. */
static int check_head(const unsigned char *magic,
                      unsigned char version,
                      const char *bad_magic,
                      char *errmsg)
{
	if (memcmp(magic, NARF_RAFT_HS_MAGIC, 4) != 0)
		return fail(errmsg, NARF_EPROTO, bad_magic);
	if (version != NARF_RAFT_HS_VERSION)
		return fail(errmsg, NARF_EPROTO,
		            "unknown Raft handshake version");
	return 0;
}

int narf_raft_hs_parse_hello(const unsigned char *buf,
                             size_t len,
                             struct narf_raft_hs_hello *h,
                             char *errmsg)
{
	const unsigned char *addr = buf + HELLO_ADDR;
	size_t alen;

	memset(h, 0, sizeof(*h));
	if (len != NARF_RAFT_HS_HELLO_SIZE)
		return fail(errmsg, NARF_EPROTO, "hello of the wrong size");
	if (check_head(buf + HELLO_MAGIC, buf[HELLO_VERSION],
	               "not a narf Raft handshake (bad magic)", errmsg) != 0)
		return NARF_EPROTO;
	if (!all_zero(buf + HELLO_RESERVED, HELLO_ID - HELLO_RESERVED))
		return fail(errmsg, NARF_EPROTO, "reserved bytes set in hello");
	if (buf[HELLO_ROLE] < NARF_AUTH_OPERATOR ||
	    buf[HELLO_ROLE] > NARF_AUTH_COORD)
		return fail(errmsg, NARF_EPROTO, "unknown role in hello");
	h->role = (enum narf_auth_role)buf[HELLO_ROLE];
	h->id = get_u64(buf + HELLO_ID);
	if (h->id == 0)
		return fail(errmsg, NARF_EPROTO, "id 0 in hello");
	memcpy(h->nonce_c, buf + HELLO_NONCE, NARF_AUTH_NONCE_SIZE);
	alen = strnlen((const char *)addr, NARF_RAFT_HS_ADDR_SIZE);
	if (alen == NARF_RAFT_HS_ADDR_SIZE ||
	    !all_zero(addr + alen, NARF_RAFT_HS_ADDR_SIZE - alen))
		return fail(errmsg, NARF_EPROTO,
		            "hello's address is not NUL-padded");
	memcpy(h->address, addr, alen);
	h->address[alen] = '\0';
	if (!narf_map_valid_addr(h->address))
		return fail(errmsg, NARF_EPROTO,
		            "hello's address is not host:port");
	return 0;
}

void narf_raft_hs_encode_challenge(const struct narf_raft_hs_challenge *c,
                                   unsigned char *out)
{
	memset(out, 0, NARF_RAFT_HS_CHALLENGE_SIZE);
	memcpy(out + CHAL_MAGIC, NARF_RAFT_HS_MAGIC, 4);
	out[CHAL_VERSION] = NARF_RAFT_HS_VERSION;
	memcpy(out + CHAL_NONCE, c->nonce_s, NARF_AUTH_NONCE_SIZE);
	memcpy(out + CHAL_MAC, c->mac, NARF_AUTH_MAC_SIZE);
}

int narf_raft_hs_parse_challenge(const unsigned char *buf,
                                 size_t len,
                                 struct narf_raft_hs_challenge *c,
                                 char *errmsg)
{
	memset(c, 0, sizeof(*c));
	if (len != NARF_RAFT_HS_CHALLENGE_SIZE)
		return fail(errmsg, NARF_EPROTO, "challenge of the wrong size");
	if (check_head(buf + CHAL_MAGIC, buf[CHAL_VERSION],
	               "not a narf Raft port (bad magic)", errmsg) != 0)
		return NARF_EPROTO;
	if (!all_zero(buf + CHAL_RESERVED, CHAL_NONCE - CHAL_RESERVED))
		return fail(errmsg, NARF_EPROTO,
		            "reserved bytes set in challenge");
	memcpy(c->nonce_s, buf + CHAL_NONCE, NARF_AUTH_NONCE_SIZE);
	memcpy(c->mac, buf + CHAL_MAC, NARF_AUTH_MAC_SIZE);
	return 0;
}

int narf_raft_hs_client_start(struct narf_raft_hs_client *c,
                              uint64_t id,
                              const char *address)
{
	struct narf_raft_hs_hello h = {.role = NARF_AUTH_COORD, .id = id};
	int rv;

	memset(c, 0, sizeof(*c));
	if (address == NULL ||
	    strnlen(address, NARF_RAFT_HS_ADDR_SIZE) >= NARF_RAFT_HS_ADDR_SIZE)
		return NARF_EINVAL;
	rv = narf_auth_client_begin(&c->auth, NARF_AUTH_COORD, id,
	                            NARF_RAFT_HS_CTX);
	if (rv != 0)
		return rv;
	memcpy(h.nonce_c, c->auth.nonce_c, NARF_AUTH_NONCE_SIZE);
	memcpy(h.address, address, strlen(address) + 1);
	return narf_raft_hs_encode_hello(&h, c->hello);
}

int narf_raft_hs_client_challenge(struct narf_raft_hs_client *c,
                                  const struct narf_auth_keys *keys,
                                  const unsigned char *buf,
                                  size_t len,
                                  char *errmsg)
{
	struct narf_raft_hs_challenge ch;
	int rv;

	rv = narf_raft_hs_parse_challenge(buf, len, &ch, errmsg);
	if (rv != 0)
		return rv;
	rv = narf_auth_client_prove(&c->auth, keys, ch.nonce_s, ch.mac,
	                            c->proof);
	if (rv == NARF_EAUTH)
		return fail(errmsg, rv,
		            "the server did not prove the cluster secret (a "
		            "stranger, or another cluster's secret)");
	if (rv != 0)
		return fail(errmsg, rv, "HMAC-SHA256 failed (OpenSSL)");
	return 0;
}

int narf_raft_hs_client_ok(const unsigned char *buf, size_t len)
{
	return len == NARF_RAFT_HS_OK_SIZE && buf[0] == NARF_RAFT_HS_OK
	               ? 0
	               : NARF_EPROTO;
}

int narf_raft_hs_server_hello(struct narf_raft_hs_server *s,
                              const struct narf_auth_keys *keys,
                              const unsigned char *buf,
                              size_t len,
                              char *errmsg)
{
	struct narf_raft_hs_challenge ch;
	int rv;

	memset(s, 0, sizeof(*s));
	rv = narf_raft_hs_parse_hello(buf, len, &s->hello, errmsg);
	if (rv != 0)
		return rv;
	/* Only coordinators speak Raft: a data node's or an operator's key
	 * proves nothing here, whatever the server could check. */
	if (s->hello.role != NARF_AUTH_COORD) {
		if (errmsg != NULL)
			snprintf(errmsg, NARF_ERRMSG_SIZE,
			         "role %s may not speak Raft",
			         narf_auth_role_name(s->hello.role));
		return NARF_EAUTH;
	}
	rv = narf_auth_server_answer(&s->auth, keys, s->hello.role, s->hello.id,
	                             NARF_RAFT_HS_CTX, s->hello.nonce_c,
	                             ch.mac);
	if (rv == NARF_EAUTH)
		return fail(errmsg, rv, "this server holds no coordinator key");
	if (rv != 0)
		return fail(errmsg, rv, "no randomness or HMAC (OpenSSL)");
	memcpy(ch.nonce_s, s->auth.nonce_s, NARF_AUTH_NONCE_SIZE);
	narf_raft_hs_encode_challenge(&ch, s->challenge);
	return 0;
}

int narf_raft_hs_server_proof(const struct narf_raft_hs_server *s,
                              const struct narf_auth_keys *keys,
                              const unsigned char *buf,
                              size_t len,
                              char *errmsg)
{
	if (len != NARF_RAFT_HS_PROOF_SIZE)
		return fail(errmsg, NARF_EPROTO, "proof of the wrong size");
	if (narf_auth_server_check(&s->auth, keys, buf) != 0)
		return fail(errmsg, NARF_EAUTH,
		            "wrong proof: the client does not hold the cluster "
		            "secret");
	return 0;
}
