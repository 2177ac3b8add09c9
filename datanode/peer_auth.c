/*
 * The dialing side of the peer-link handshake: see peer_auth.h.
 */
#include "peer_auth.h"

#include <stdio.h>
#include <string.h>

#include "common/errors.h"
#include "common/resp.h"

int narf_peer_auth_hello(struct narf_auth *a, uint32_t me, struct narf_buf *out)
{
	char id[16], nonce[NARF_AUTH_NONCE_HEX + 1];
	const char *argv[] = {"NARF.AUTH", id, nonce};
	size_t argvlen[3];
	int rv;

	if (me == 0)
		return NARF_EINVAL;
	rv = narf_auth_client_begin(a, NARF_AUTH_NODE, me, NARF_PEER_AUTH_CTX);
	if (rv != 0)
		return rv;
	snprintf(id, sizeof(id), "%u", me);
	narf_auth_hex(a->nonce_c, NARF_AUTH_NONCE_SIZE, nonce);
	argvlen[0] = strlen(argv[0]);
	argvlen[1] = strlen(id);
	argvlen[2] = NARF_AUTH_NONCE_HEX;
	return narf_resp_command(out, 3, argv, argvlen);
}

/* One "$<n>\r\n<n bytes>\r\n" at *p, decoded from hex into bin (n/2
 * bytes); advances *p. */
static bool hex_bulk(const char **p,
                     const char *end,
                     size_t n,
                     unsigned char *bin)
{
	char head[8];
	int hl = snprintf(head, sizeof(head), "$%zu\r\n", n);

	if (end - *p < (ptrdiff_t)(hl + n + 2) ||
	    memcmp(*p, head, (size_t)hl) != 0 ||
	    memcmp(*p + hl + n, "\r\n", 2) != 0 ||
	    narf_auth_unhex(*p + hl, n, bin, n / 2) != 0)
		return false;
	*p += hl + n + 2;
	return true;
}

/* The answer's exact bytes: "*2\r\n", then the nonce and the proof. */
static bool parse_answer(const char *p,
                         size_t len,
                         unsigned char *nonce_s,
                         unsigned char *mac)
{
	const char *end = p + len;

	if (len != NARF_PEER_AUTH_ANSWER_LEN || memcmp(p, "*2\r\n", 4) != 0)
		return false;
	p += 4;
	return hex_bulk(&p, end, NARF_AUTH_NONCE_HEX, nonce_s) &&
	       hex_bulk(&p, end, NARF_AUTH_MAC_HEX, mac) && p == end;
}

int narf_peer_auth_answer(struct narf_auth *a,
                          const struct narf_auth_keys *keys,
                          const char *reply,
                          size_t len,
                          struct narf_buf *out,
                          char *why,
                          size_t why_size)
{
	unsigned char nonce_s[NARF_AUTH_NONCE_SIZE], mac[NARF_AUTH_MAC_SIZE];
	unsigned char proof[NARF_AUTH_MAC_SIZE];
	char hex[NARF_AUTH_MAC_HEX + 1];
	const char *argv[] = {"NARF.AUTH", hex};
	size_t argvlen[] = {strlen(argv[0]), NARF_AUTH_MAC_HEX};
	int rv;

	if (len >= 3 && reply[0] == '-') {
		size_t n = len - 3; /* without '-' and "\r\n" */

		snprintf(why, why_size, "refused: %.*s",
		         (int)(n > 100 ? 100 : n), reply + 1);
		return NARF_EAUTH;
	}
	if (!parse_answer(reply, len, nonce_s, mac)) {
		snprintf(why, why_size,
		         "NARF.AUTH answered with something else than "
		         "[nonce, proof]: not a narf data node");
		return NARF_EPROTO;
	}
	rv = narf_auth_client_prove(a, keys, nonce_s, mac, proof);
	if (rv == NARF_EAUTH)
		snprintf(why, why_size,
		         "it did not prove the node key (a stranger at its "
		         "address, or one of us holds another cluster's "
		         "secret)");
	else if (rv != 0)
		snprintf(why, why_size, "cannot make our proof: %s",
		         narf_strerror(rv));
	if (rv != 0)
		return rv;
	narf_auth_hex(proof, NARF_AUTH_MAC_SIZE, hex);
	return narf_resp_command(out, 2, argv, argvlen);
}
