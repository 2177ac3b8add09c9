/*
 * The API's auth exchange without the connection: see api_auth.h.
 */
#include "api_auth.h"

#include <string.h>

#include "common/errors.h"

static bool hex_field(const json_t *req,
                      const char *key,
                      unsigned char *out,
                      size_t n)
{
	json_t *v = json_object_get(req, key);

	return json_is_string(v) &&
	       narf_auth_unhex(json_string_value(v), json_string_length(v), out,
	                       n) == 0;
}

/* {"op":"auth","proof":H}: the caller's proof over the transcript. */
static int check_proof(const struct narf_auth_keys *keys,
                       enum narf_api_auth_state *state,
                       const struct narf_auth *a,
                       const json_t *req,
                       json_t **reply,
                       const char **why)
{
	unsigned char mac[NARF_AUTH_MAC_SIZE];

	if (!hex_field(req, "proof", mac, sizeof(mac)) ||
	    narf_auth_server_check(a, keys, mac) != 0) {
		*why = "wrong proof: not the cluster's secret";
		return NARF_EAUTH;
	}
	*state = NARF_API_AUTH_DONE;
	*reply = json_pack("{s:b,s:s}", "ok", 1, "role",
	                   narf_auth_role_name(a->role));
	return 0;
}

/* {"op":"auth","role":R,"id":N,"nonce":H}: our nonce and proof. */
static int answer_hello(const struct narf_auth_keys *keys,
                        enum narf_api_auth_state *state,
                        struct narf_auth *a,
                        const json_t *req,
                        json_t **reply,
                        const char **why)
{
	unsigned char nonce[NARF_AUTH_NONCE_SIZE], mac[NARF_AUTH_MAC_SIZE];
	char nonce_hex[NARF_AUTH_NONCE_HEX + 1], mac_hex[NARF_AUTH_MAC_HEX + 1];
	enum narf_auth_role role;
	json_t *id = json_object_get(req, "id");

	if (narf_auth_role_parse(
	            json_string_value(json_object_get(req, "role")), &role) !=
	            0 ||
	    role == NARF_AUTH_COORD ||
	    (id != NULL &&
	     (!json_is_integer(id) || json_integer_value(id) < 0)) ||
	    !hex_field(req, "nonce", nonce, sizeof(nonce))) {
		*why = "auth needs role (operator or node), nonce (32 hex "
		       "digits) and an optional id";
		return NARF_EAUTH;
	}
	if (narf_auth_server_answer(a, keys, role,
	                            (uint64_t)json_integer_value(id), "api",
	                            nonce, mac) != 0) {
		*why = "cannot answer for that role";
		return NARF_EAUTH;
	}
	*state = NARF_API_AUTH_PROOF;
	narf_auth_hex(a->nonce_s, NARF_AUTH_NONCE_SIZE, nonce_hex);
	narf_auth_hex(mac, NARF_AUTH_MAC_SIZE, mac_hex);
	*reply = json_pack("{s:b,s:s,s:s}", "ok", 1, "nonce", nonce_hex,
	                   "proof", mac_hex);
	return 0;
}

int narf_api_auth_step(const struct narf_auth_keys *keys,
                       enum narf_api_auth_state *state,
                       struct narf_auth *a,
                       const json_t *req,
                       json_t **reply,
                       const char **why)
{
	const char *op = json_string_value(json_object_get(req, "op"));

	*reply = NULL;
	*why = NULL;
	if (*state == NARF_API_AUTH_DONE) {
		*why = "already authenticated";
		return NARF_EAUTH;
	}
	if (op == NULL || strcmp(op, "auth") != 0) {
		*why = "authenticate first: {\"op\":\"auth\",...} "
		       "(docs/protocol.md)";
		return NARF_EAUTH;
	}
	if (*state == NARF_API_AUTH_PROOF)
		return check_proof(keys, state, a, req, reply, why);
	return answer_hello(keys, state, a, req, reply, why);
}
