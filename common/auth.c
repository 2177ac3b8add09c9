/*
 * The cluster secret's challenge-response: see auth.h.
 */
#include "auth.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "errors.h"

/* The labels the role keys are derived under: HMAC(secret, label). */
static const char *const role_label[4] = {NULL, "narf-auth-v1 key operator",
                                          "narf-auth-v1 key node",
                                          "narf-auth-v1 key coord"};

static const char *const role_names[4] = {NULL, "operator", "node", "coord"};

const char *narf_auth_role_name(enum narf_auth_role r)
{
	return r >= NARF_AUTH_OPERATOR && r <= NARF_AUTH_COORD ? role_names[r]
	                                                       : "?";
}

int narf_auth_role_parse(const char *name, enum narf_auth_role *out)
{
	for (int r = NARF_AUTH_OPERATOR; name && r <= NARF_AUTH_COORD; r++)
		if (strcmp(name, role_names[r]) == 0) {
			*out = (enum narf_auth_role)r;
			return 0;
		}
	return -1;
}

static void set_err(char *errmsg, const char *msg)
{
	if (errmsg != NULL)
		snprintf(errmsg, NARF_ERRMSG_SIZE, "%s", msg);
}

static int hmac(const unsigned char *key,
                size_t keylen,
                const unsigned char *data,
                size_t len,
                unsigned char *out)
{
	unsigned int n = 0;

	if (HMAC(EVP_sha256(), key, (int)keylen, data, len, out, &n) == NULL ||
	    n != NARF_AUTH_MAC_SIZE)
		return NARF_EINTERNAL;
	return 0;
}

void narf_auth_hex(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int narf_auth_unhex(const char *in, size_t len, unsigned char *out, size_t n)
{
	if (in == NULL || len != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(in[2 * i]), lo = hexval(in[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

bool narf_auth_equal(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}

static int keyset_from_text(struct narf_auth_keyset *keys,
                            const char *text,
                            size_t len,
                            char *errmsg)
{
	size_t plen = strlen(NARF_AUTH_NODE_KEY_PREFIX);

	memset(keys, 0, sizeof(*keys));
	if (len >= plen && memcmp(text, NARF_AUTH_NODE_KEY_PREFIX, plen) == 0) {
		if (narf_auth_unhex(text + plen, len - plen,
		                    keys->key[NARF_AUTH_NODE],
		                    NARF_AUTH_KEY_SIZE) != 0) {
			set_err(errmsg,
			        "a node key is \"node:\" and 64 hex "
			        "digits");
			return NARF_EINVAL;
		}
		keys->have[NARF_AUTH_NODE] = true;
		return 0;
	}
	if (len < NARF_AUTH_MIN_SECRET) {
		set_err(errmsg,
		        "the cluster secret is too short (at least 16 "
		        "bytes; `openssl rand -hex 32` makes one)");
		return NARF_EINVAL;
	}
	for (int r = NARF_AUTH_OPERATOR; r <= NARF_AUTH_COORD; r++) {
		if (hmac((const unsigned char *)text, len,
		         (const unsigned char *)role_label[r],
		         strlen(role_label[r]), keys->key[r]) != 0) {
			memset(keys, 0, sizeof(*keys));
			set_err(errmsg, "HMAC-SHA256 failed (OpenSSL)");
			return NARF_EINTERNAL;
		}
		keys->have[r] = true;
	}
	return 0;
}

int narf_auth_keys_from_text(struct narf_auth_keys *keys,
                             const char *text,
                             size_t len,
                             char *errmsg)
{
	int rv;

	memset(keys, 0, sizeof(*keys));
	rv = keyset_from_text(&keys->set[0], text, len, errmsg);
	keys->n = rv == 0 ? 1 : 0;
	return rv;
}

/* Read one line of f into keys->set[i]; 1 at the end of the file. */
static int read_line_set(FILE *f,
                         struct narf_auth_keys *keys,
                         unsigned i,
                         char *why)
{
	char line[NARF_AUTH_MAX_SECRET + 3];
	size_t len;
	int rv;

	if (fgets(line, sizeof(line), f) == NULL)
		return i == 0 ? keyset_from_text(&keys->set[0], "", 0, why) : 1;
	len = strcspn(line, "\r\n");
	if (len > NARF_AUTH_MAX_SECRET) {
		explicit_bzero(line, sizeof(line));
		snprintf(why, NARF_ERRMSG_SIZE, "line %u is over %d bytes",
		         i + 1, NARF_AUTH_MAX_SECRET);
		return NARF_EINVAL;
	}
	if (i > 0 && len == 0) {
		explicit_bzero(line, sizeof(line));
		return 1; /* a trailing empty line */
	}
	rv = keyset_from_text(&keys->set[i], line, len, why);
	explicit_bzero(line, sizeof(line));
	return rv;
}

int narf_auth_keys_from_file(struct narf_auth_keys *keys,
                             const char *path,
                             char *errmsg)
{
	char why[NARF_ERRMSG_SIZE] = "";
	FILE *f = fopen(path, "r");
	int rv = 0;

	memset(keys, 0, sizeof(*keys));
	if (f == NULL) {
		if (errmsg != NULL)
			snprintf(errmsg, NARF_ERRMSG_SIZE, "%s: %s", path,
			         strerror(errno));
		return NARF_EIO;
	}
	for (unsigned i = 0; i < 2 && rv == 0; i++) {
		rv = read_line_set(f, keys, i, why);
		if (rv == 0)
			keys->n = i + 1;
	}
	fclose(f);
	if (rv == 1)
		rv = 0;
	if (rv == 0 && keys->n == 2 &&
	    keys->set[0].have[NARF_AUTH_OPERATOR] !=
	            keys->set[1].have[NARF_AUTH_OPERATOR]) {
		rv = NARF_EINVAL;
		snprintf(why, sizeof(why),
		         "its two lines must both be secrets "
		         "or both node keys");
	}
	if (rv != 0) {
		explicit_bzero(keys, sizeof(*keys));
		if (errmsg != NULL)
			snprintf(errmsg, NARF_ERRMSG_SIZE, "%s: %s", path, why);
	}
	return rv;
}

int narf_auth_node_key_text(const struct narf_auth_keys *keys,
                            char *out,
                            size_t size)
{
	size_t plen = strlen(NARF_AUTH_NODE_KEY_PREFIX);

	if (keys->n == 0 || !keys->set[0].have[NARF_AUTH_NODE] ||
	    size < plen + 2 * NARF_AUTH_KEY_SIZE + 1)
		return NARF_EINVAL;
	memcpy(out, NARF_AUTH_NODE_KEY_PREFIX, plen);
	narf_auth_hex(keys->set[0].key[NARF_AUTH_NODE], NARF_AUTH_KEY_SIZE,
	              out + plen);
	return 0;
}

static bool set_can(const struct narf_auth_keys *keys,
                    unsigned i,
                    enum narf_auth_role role)
{
	return i < keys->n && role >= NARF_AUTH_OPERATOR &&
	       role <= NARF_AUTH_COORD && keys->set[i].have[role];
}

bool narf_auth_keys_can(const struct narf_auth_keys *keys,
                        enum narf_auth_role role)
{
	return set_can(keys, 0, role) || set_can(keys, 1, role);
}

/* MAC(key of a->role in set a->set, dir role id nonce_c nonce_s ctx). */
static int transcript_mac(const struct narf_auth *a,
                          const struct narf_auth_keys *keys,
                          char dir,
                          unsigned char *out)
{
	unsigned char msg[2 + 8 + 2 * NARF_AUTH_NONCE_SIZE + 64];
	size_t n = 0, clen = strlen(a->ctx);

	if (!set_can(keys, a->set, a->role) || clen > 64)
		return NARF_EAUTH;
	msg[n++] = (unsigned char)dir;
	msg[n++] = (unsigned char)a->role;
	for (int i = 7; i >= 0; i--)
		msg[n++] = (unsigned char)(a->id >> (8 * i));
	memcpy(msg + n, a->nonce_c, NARF_AUTH_NONCE_SIZE);
	n += NARF_AUTH_NONCE_SIZE;
	memcpy(msg + n, a->nonce_s, NARF_AUTH_NONCE_SIZE);
	n += NARF_AUTH_NONCE_SIZE;
	memcpy(msg + n, a->ctx, clen);
	n += clen;
	return hmac(keys->set[a->set].key[a->role], NARF_AUTH_KEY_SIZE, msg, n,
	            out);
}

int narf_auth_client_begin(struct narf_auth *a,
                           enum narf_auth_role role,
                           uint64_t id,
                           const char *ctx)
{
	memset(a, 0, sizeof(*a));
	a->role = role;
	a->id = id;
	a->ctx = ctx;
	return RAND_bytes(a->nonce_c, NARF_AUTH_NONCE_SIZE) == 1
	               ? 0
	               : NARF_EINTERNAL;
}

int narf_auth_server_answer(struct narf_auth *a,
                            const struct narf_auth_keys *keys,
                            enum narf_auth_role role,
                            uint64_t id,
                            const char *ctx,
                            const unsigned char *nonce_c,
                            unsigned char *mac)
{
	memset(a, 0, sizeof(*a));
	a->role = role;
	a->id = id;
	a->ctx = ctx;
	memcpy(a->nonce_c, nonce_c, NARF_AUTH_NONCE_SIZE);
	/* Answer with the current set (the previous one when only it can
	 * prove the role): the client accepts either of its own. */
	a->set = set_can(keys, 0, role) ? 0 : 1;
	if (!set_can(keys, a->set, role))
		return NARF_EAUTH;
	if (RAND_bytes(a->nonce_s, NARF_AUTH_NONCE_SIZE) != 1)
		return NARF_EINTERNAL;
	return transcript_mac(a, keys, 'S', mac);
}

int narf_auth_client_prove(struct narf_auth *a,
                           const struct narf_auth_keys *keys,
                           const unsigned char *nonce_s,
                           const unsigned char *mac,
                           unsigned char *mac_out)
{
	unsigned char want[NARF_AUTH_MAC_SIZE];
	int rv;

	memcpy(a->nonce_s, nonce_s, NARF_AUTH_NONCE_SIZE);
	/* A server echoing our own nonce is replaying us. */
	if (narf_auth_equal(a->nonce_s, a->nonce_c, NARF_AUTH_NONCE_SIZE))
		return NARF_EAUTH;
	/* Whichever of our sets the server answered with is the one we
	 * prove with. */
	for (a->set = 0; a->set < keys->n; a->set++) {
		rv = transcript_mac(a, keys, 'S', want);
		if (rv == NARF_EINTERNAL)
			return rv;
		if (rv == 0 && narf_auth_equal(want, mac, NARF_AUTH_MAC_SIZE))
			return transcript_mac(a, keys, 'C', mac_out);
	}
	return NARF_EAUTH;
}

int narf_auth_server_check(const struct narf_auth *a,
                           const struct narf_auth_keys *keys,
                           const unsigned char *mac)
{
	unsigned char want[NARF_AUTH_MAC_SIZE];

	if (transcript_mac(a, keys, 'C', want) != 0)
		return NARF_EAUTH;
	return narf_auth_equal(want, mac, NARF_AUTH_MAC_SIZE) ? 0 : NARF_EAUTH;
}
