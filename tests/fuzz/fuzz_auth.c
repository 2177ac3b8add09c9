/*
 * libFuzzer target for the cluster secret's challenge-response
 * (common/auth.h) and the coordinator API's side of it
 * (coordinator/api_auth.h).
 *
 * Input layout: byte 0 picks the role of the exchange (bits 0-1:
 * operator, node, coord, or a value that is no role), its port (bits 2-3:
 * "api", "raft", "peer" or ""), whether the keys are the node keys made
 * from the secrets rather than the secrets themselves (bit 4), whether a
 * genuine caller answers the API's proof (bit 5), whether the key text is
 * two lines, the current and the previous secret of a rotation (bit 6),
 * and which key set the arbitrary exchange below runs on (bit 7); byte 1
 * is the length of the key text that follows (a cluster secret or
 * "node:<hex>", or two of them). Then 72 bytes of exchange material: the
 * claimed id (8 bytes), nonce_c, nonce_s (16 each) and a MAC (32), zeros
 * where the input is short. The rest is request lines for the API's
 * exchange, newline-separated.
 *
 * Besides memory safety (ASan, UBSan) it checks the module against the
 * exchange as docs/protocol.md writes it, recomputed here with OpenSSL:
 * - the key text gives exactly the keys the spec derives (the three role
 *   keys from a secret of 16 bytes or more, the node key alone from
 *   "node:" and 64 hex digits), or NARF_EINVAL; a node key's text reads
 *   back as the same key; hex decodes exactly 2n hex digits and encodes
 *   back; role names parse back;
 * - with the input's nonces, the server accepts a MAC exactly when it is
 *   the client's genuine proof with the exchange's key set and the client
 *   accepts one exactly when it is the server's with one of its sets (so a
 *   MAC made of fuzz bytes never verifies, short of a forgery), never when
 *   the server echoes the client's nonce, and a one-bit change of a
 *   genuine proof fails;
 * - a whole exchange with the input as the secret always verifies, for
 *   every role the keys hold, and never for one they do not; during a
 *   rotation, it verifies exactly when the client holds the key the server
 *   answers with (its first set that holds the role): between processes
 *   one stage apart (the sets in either order), not with a process that
 *   has only the secret the server no longer answers with, never with
 *   another cluster's secret;
 * - the API's exchange: every line gets a reply or a refusal with a
 *   reason and no change of state; the hello's reply carries the
 *   coordinator's genuine proof; the exchange ends proven only on the
 *   caller's genuine proof (made here when bit 5 asks for a genuine
 *   caller), with the role of the hello, and takes no line after that.
 * Built by tests/fuzz/run.sh, not by meson.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/auth.h"
#include "common/errors.h"
#include "coordinator/api_auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define check(cond) ((cond) ? (void)0 : failed(#cond, __LINE__))

static void failed(const char *what, int line)
{
	fprintf(stderr, "fuzz_auth.c:%d: check failed: %s\n", line, what);
	abort();
}

static const char *const ctxs[] = {"api", "raft", "peer", ""};
/* Roles as the input picks them; 7 is no role at all. */
static const int roles[] = {NARF_AUTH_OPERATOR, NARF_AUTH_NODE, NARF_AUTH_COORD,
                            7};
static const char other_secret[] = "not the fuzzer's secret, long enough";

/* --- the exchange as docs/protocol.md writes it ------------------------- */

static void ref_hmac(const void *key,
                     size_t keylen,
                     const void *msg,
                     size_t len,
                     unsigned char *out)
{
	unsigned int n = 0;

	check(HMAC(EVP_sha256(), key, (int)keylen, msg, len, out, &n) != NULL &&
	      n == NARF_AUTH_MAC_SIZE);
}

/* key(role) = HMAC-SHA256(secret, "narf-auth-v1 key " role). */
static void ref_key(const char *secret,
                    size_t len,
                    int role,
                    unsigned char *out)
{
	char label[64];

	snprintf(label, sizeof(label), "narf-auth-v1 key %s",
	         narf_auth_role_name((enum narf_auth_role)role));
	ref_hmac(secret, len, label, strlen(label), out);
}

/* HMAC-SHA256(key, dir role id nonce_c nonce_s ctx), id big-endian. */
static void ref_proof(const unsigned char *key,
                      char dir,
                      const struct narf_auth *a,
                      unsigned char *out)
{
	unsigned char msg[2 + 8 + 2 * NARF_AUTH_NONCE_SIZE + 64];
	size_t n = 0, clen = strlen(a->ctx);

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
	ref_hmac(key, NARF_AUTH_KEY_SIZE, msg, n, out);
}

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	       (c >= 'A' && c <= 'F');
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* --- keys, hex, names ---------------------------------------------------- */

/* narf_auth_unhex() of text as n bytes, against a plain reading. */
static void check_unhex(const char *text, size_t len, size_t n)
{
	unsigned char *out = malloc(n + 1);
	char *back = malloc(2 * n + 1);
	bool valid = len == 2 * n;
	int rv;

	check(out != NULL && back != NULL);
	for (size_t i = 0; valid && i < len; i++)
		valid = is_hex(text[i]);
	rv = narf_auth_unhex(text, len, out, n);
	check(rv == (valid ? 0 : -1));
	if (rv == 0) {
		narf_auth_hex(out, n, back);
		check(strlen(back) == 2 * n);
		for (size_t i = 0; i < len; i++)
			check(back[i] == lower(text[i]));
	}
	free(out);
	free(back);
}

/* Keys from one line of text, against the spec; returns whether text is
 * valid (then k holds one set). */
static bool check_keys(struct narf_auth_keys *k, const char *text, size_t len)
{
	const size_t plen = strlen(NARF_AUTH_NODE_KEY_PREFIX);
	char errmsg[NARF_ERRMSG_SIZE] = "";
	bool node = len >= plen && memcmp(text, "node:", plen) == 0;
	unsigned char want[NARF_AUTH_KEY_SIZE];
	int rv = narf_auth_keys_from_text(k, text, len, errmsg);
	const struct narf_auth_keyset *set = &k->set[0];

	check(rv == 0 || rv == NARF_EINVAL);
	if (rv != 0) {
		check(errmsg[0] != '\0' && k->n == 0);
		for (int r = 0; r < 8; r++)
			check(!narf_auth_keys_can(k, (enum narf_auth_role)r));
		check(node || len < NARF_AUTH_MIN_SECRET);
		return false;
	}
	check(k->n == 1 && !set->have[0]);
	for (int r = 0; r < 4; r++)
		check(!k->set[1].have[r]);
	if (node) {
		check(len == plen + 2 * NARF_AUTH_KEY_SIZE);
		check(narf_auth_unhex(text + plen, len - plen, want,
		                      sizeof(want)) == 0);
		check(memcmp(set->key[NARF_AUTH_NODE], want, sizeof(want)) ==
		      0);
		check(set->have[NARF_AUTH_NODE] &&
		      !set->have[NARF_AUTH_OPERATOR] &&
		      !set->have[NARF_AUTH_COORD]);
		return true;
	}
	check(len >= NARF_AUTH_MIN_SECRET);
	for (int r = NARF_AUTH_OPERATOR; r <= NARF_AUTH_COORD; r++) {
		check(set->have[r] &&
		      narf_auth_keys_can(k, (enum narf_auth_role)r));
		ref_key(text, len, r, want);
		check(memcmp(set->key[r], want, sizeof(want)) == 0);
	}
	return true;
}

/* Keys from the text: one line, or with two (bit 6), the two sets of a
 * rotation (as narf_auth_keys_from_file() reads a file's two lines).
 * Returns whether the text is valid. */
static bool read_keys(struct narf_auth_keys *k,
                      const char *text,
                      size_t len,
                      bool two)
{
	const char *nl = two ? memchr(text, '\n', len) : NULL;
	struct narf_auth_keys b;
	bool first, second;

	if (nl == NULL)
		return check_keys(k, text, len);
	first = check_keys(k, text, (size_t)(nl - text));
	second = check_keys(&b, nl + 1, len - (size_t)(nl - text) - 1);
	if (!first || !second)
		return false;
	k->set[1] = b.set[0];
	k->n = 2;
	for (int r = 0; r < 8; r++)
		check(narf_auth_keys_can(k, (enum narf_auth_role)r) ==
		      (r >= NARF_AUTH_OPERATOR && r <= NARF_AUTH_COORD &&
		       (k->set[0].have[r] || k->set[1].have[r])));
	return true;
}

/* Can set i of k prove role? */
static bool set_can(const struct narf_auth_keys *k, unsigned i, int role)
{
	return i < k->n && role >= NARF_AUTH_OPERATOR &&
	       role <= NARF_AUTH_COORD && k->set[i].have[role];
}

/* The set a server holding k answers role with (its first that holds
 * it), or -1. */
static int answering_set(const struct narf_auth_keys *k, int role)
{
	return set_can(k, 0, role) ? 0 : set_can(k, 1, role) ? 1 : -1;
}

/* A node key's text reads back as the same node key, and nothing else;
 * returns the keys read back. */
static struct narf_auth_keyset node_key_text(const struct narf_auth_keys *k)
{
	struct narf_auth_keys back;
	char text[80];

	memset(&back, 0, sizeof(back));
	if (k->n == 0 || !k->set[0].have[NARF_AUTH_NODE]) {
		check(narf_auth_node_key_text(k, text, sizeof(text)) ==
		      NARF_EINVAL);
		return back.set[0];
	}
	check(narf_auth_node_key_text(k, text, sizeof(text)) == 0);
	check(check_keys(&back, text, strlen(text)));
	check(memcmp(back.set[0].key[NARF_AUTH_NODE],
	             k->set[0].key[NARF_AUTH_NODE], NARF_AUTH_KEY_SIZE) == 0);
	return back.set[0];
}

/* The keys of a data node holding the node keys of k's secrets, set by
 * set (each through its text, as cachecli node-key writes it). */
static void node_keys(const struct narf_auth_keys *k,
                      struct narf_auth_keys *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < k->n; i++) {
		struct narf_auth_keys one = {.n = 1};

		one.set[0] = k->set[i];
		out->set[i] = node_key_text(&one);
	}
	out->n = k->n;
}

static void check_names(const char *text, size_t len)
{
	char name[16];
	enum narf_auth_role r;

	if (len >= sizeof(name))
		return;
	memcpy(name, text, len);
	name[len] = '\0';
	if (narf_auth_role_parse(name, &r) == 0)
		check(strcmp(narf_auth_role_name(r), name) == 0);
	else
		check(strcmp(name, "operator") != 0 &&
		      strcmp(name, "node") != 0 && strcmp(name, "coord") != 0);
}

/* --- the exchange with the input's nonces and MACs ----------------------- */

/* The exchange material of the input. */
struct material {
	uint64_t id;
	unsigned char nonce_c[NARF_AUTH_NONCE_SIZE];
	unsigned char nonce_s[NARF_AUTH_NONCE_SIZE];
	unsigned char mac[NARF_AUTH_MAC_SIZE];
};

static void check_arbitrary(const struct narf_auth_keys *k,
                            int role,
                            const char *ctx,
                            unsigned set,
                            const struct material *mt)
{
	bool can = set_can(k, set, role);
	unsigned char want_c[NARF_AUTH_MAC_SIZE], want_s[2][NARF_AUTH_MAC_SIZE];
	unsigned char out[NARF_AUTH_MAC_SIZE], flipped[NARF_AUTH_MAC_SIZE];
	bool echo = memcmp(mt->nonce_c, mt->nonce_s, NARF_AUTH_NONCE_SIZE) == 0;
	struct narf_auth a = {.role = (enum narf_auth_role)role,
	                      .id = mt->id,
	                      .ctx = ctx,
	                      .set = set};
	struct narf_auth c;
	int rv, match = -1;

	memcpy(a.nonce_c, mt->nonce_c, sizeof(a.nonce_c));
	memcpy(a.nonce_s, mt->nonce_s, sizeof(a.nonce_s));
	if (can)
		ref_proof(k->set[set].key[role], 'C', &a, want_c);
	for (unsigned i = 0; i < k->n; i++)
		if (set_can(k, i, role)) {
			ref_proof(k->set[i].key[role], 'S', &a, want_s[i]);
			if (match < 0 && memcmp(mt->mac, want_s[i], 32) == 0)
				match = (int)i;
		}
	/* The server's check of the input's MAC, and of the genuine one. */
	rv = narf_auth_server_check(&a, k, mt->mac);
	check(rv == 0 || rv == NARF_EAUTH);
	check((rv == 0) == (can && memcmp(mt->mac, want_c, 32) == 0));
	check(narf_auth_server_check(&a, k, can ? want_c : mt->mac) ==
	      (can ? 0 : NARF_EAUTH));
	if (can) {
		memcpy(flipped, want_c, sizeof(flipped));
		flipped[mt->mac[0] % 32] ^=
		        (unsigned char)(1u << (mt->mac[1] % 8));
		check(narf_auth_server_check(&a, k, flipped) == NARF_EAUTH);
	}
	/* The client's check of the input's MAC as the server's proof: it
	 * takes the proof of any of its sets, and proves with that one. */
	c = a;
	rv = narf_auth_client_prove(&c, k, mt->nonce_s, mt->mac, out);
	check(rv == 0 || rv == NARF_EAUTH);
	check((rv == 0) == (!echo && match >= 0));
	if (rv == 0)
		check(c.set == (unsigned)match);
	if (!can)
		return;
	c = a;
	rv = narf_auth_client_prove(&c, k, mt->nonce_s, want_s[set], out);
	check(rv == (echo ? NARF_EAUTH : 0));
	if (rv == 0)
		check(memcmp(out, want_c, sizeof(out)) == 0);
}

/* A whole exchange, the server holding sk and the client ck: it
 * verifies exactly when the client holds the key the server answers
 * with. */
static void check_genuine(const struct narf_auth_keys *sk,
                          const struct narf_auth_keys *ck,
                          int role,
                          const char *ctx,
                          const struct material *mt)
{
	int answer = answering_set(sk, role);
	unsigned char mac_s[NARF_AUTH_MAC_SIZE], mac_c[NARF_AUTH_MAC_SIZE];
	unsigned char want[NARF_AUTH_MAC_SIZE];
	struct narf_auth c, s;
	bool shared = false;
	int rv;

	check(narf_auth_client_begin(&c, (enum narf_auth_role)role, mt->id,
	                             ctx) == 0);
	memcpy(c.nonce_c, mt->nonce_c, sizeof(c.nonce_c));
	rv = narf_auth_server_answer(&s, sk, (enum narf_auth_role)role, mt->id,
	                             ctx, c.nonce_c, mac_s);
	check(rv == (answer >= 0 ? 0 : NARF_EAUTH));
	if (answer < 0)
		return;
	check(s.set == (unsigned)answer);
	ref_proof(sk->set[answer].key[role], 'S', &s, want);
	check(memcmp(mac_s, want, sizeof(want)) == 0);
	for (unsigned i = 0; i < ck->n; i++)
		shared |=
		        set_can(ck, i, role) &&
		        memcmp(ck->set[i].key[role], sk->set[answer].key[role],
		               NARF_AUTH_KEY_SIZE) == 0;
	/* (A server nonce equal to ours: 2^-128, refused as an echo.) */
	if (memcmp(s.nonce_s, c.nonce_c, NARF_AUTH_NONCE_SIZE) == 0)
		shared = false;
	rv = narf_auth_client_prove(&c, ck, s.nonce_s, mac_s, mac_c);
	check(rv == (shared ? 0 : NARF_EAUTH));
	if (rv == 0)
		check(narf_auth_server_check(&s, sk, mac_c) == 0);
}

/* --- the API's exchange -------------------------------------------------- */

/* The caller's genuine proof for the server's side a, as a request. */
static json_t *genuine_proof(const struct narf_auth_keys *k,
                             const struct narf_auth *a)
{
	unsigned char mac[NARF_AUTH_MAC_SIZE];
	char hex[NARF_AUTH_MAC_HEX + 1];

	ref_proof(k->set[a->set].key[a->role], 'C', a, mac);
	narf_auth_hex(mac, sizeof(mac), hex);
	return json_pack("{s:s,s:s}", "op", "auth", "proof", hex);
}

/* One line of the API's exchange; returns false once it failed. */
static bool api_line(const struct narf_auth_keys *k,
                     enum narf_api_auth_state *st,
                     struct narf_auth *a,
                     const json_t *req)
{
	enum narf_api_auth_state was = *st;
	unsigned char mac[NARF_AUTH_MAC_SIZE], want[NARF_AUTH_MAC_SIZE];
	unsigned char nonce[NARF_AUTH_NONCE_SIZE];
	const char *why = (const char *)1;
	json_t *reply = (json_t *)1;
	const char *proof, *nonce_hex;
	int rv = narf_api_auth_step(k, st, a, req, &reply, &why);

	if (rv != 0) {
		check(rv == NARF_EAUTH && reply == NULL && why != NULL &&
		      why[0] != '\0' && *st == was);
		return false;
	}
	check(why == NULL && json_is_object(reply) &&
	      json_is_true(json_object_get(reply, "ok")));
	check(was != NARF_API_AUTH_DONE);
	check(a->role == NARF_AUTH_OPERATOR || a->role == NARF_AUTH_NODE);
	check(strcmp(a->ctx, "api") == 0);
	check(a->set == (unsigned)answering_set(k, a->role));
	if (was == NARF_API_AUTH_HELLO) {
		json_t *id = json_object_get(req, "id");

		check(*st == NARF_API_AUTH_PROOF);
		check(a->id == (id ? (uint64_t)json_integer_value(id) : 0));
		check(narf_auth_unhex(
		              json_string_value(json_object_get(req, "nonce")),
		              NARF_AUTH_NONCE_HEX, nonce, sizeof(nonce)) == 0);
		check(memcmp(nonce, a->nonce_c, sizeof(nonce)) == 0);
		nonce_hex = json_string_value(json_object_get(reply, "nonce"));
		proof = json_string_value(json_object_get(reply, "proof"));
		check(nonce_hex && strlen(nonce_hex) == NARF_AUTH_NONCE_HEX &&
		      narf_auth_unhex(nonce_hex, NARF_AUTH_NONCE_HEX, nonce,
		                      sizeof(nonce)) == 0 &&
		      memcmp(nonce, a->nonce_s, sizeof(nonce)) == 0);
		check(proof && narf_auth_unhex(proof, strlen(proof), mac,
		                               sizeof(mac)) == 0);
		ref_proof(k->set[a->set].key[a->role], 'S', a, want);
		check(memcmp(mac, want, sizeof(mac)) == 0);
	} else {
		check(*st == NARF_API_AUTH_DONE);
		proof = json_string_value(json_object_get(req, "proof"));
		check(proof && narf_auth_unhex(proof, strlen(proof), mac,
		                               sizeof(mac)) == 0);
		ref_proof(k->set[a->set].key[a->role], 'C', a, want);
		check(memcmp(mac, want, sizeof(mac)) == 0);
		check(strcmp(json_string_value(json_object_get(reply, "role")),
		             narf_auth_role_name(a->role)) == 0);
	}
	json_decref(reply);
	return true;
}

static void check_api(const struct narf_auth_keys *k,
                      bool genuine,
                      const char *pos,
                      const char *end)
{
	enum narf_api_auth_state st = NARF_API_AUTH_HELLO;
	struct narf_auth a;
	bool ok = true;

	memset(&a, 0, sizeof(a));
	while (ok && pos < end) {
		const char *nl = memchr(pos, '\n', (size_t)(end - pos));
		size_t len = nl ? (size_t)(nl - pos) : (size_t)(end - pos);
		json_error_t jerr;
		json_t *req = json_loadb(pos, len, 0, &jerr);

		pos = nl ? nl + 1 : end;
		if (!json_is_object(req)) {
			json_decref(req); /* the frame decoder's business */
			continue;
		}
		ok = api_line(k, &st, &a, req);
		json_decref(req);
		if (ok && genuine && st == NARF_API_AUTH_PROOF) {
			req = genuine_proof(k, &a);
			check(req != NULL);
			ok = api_line(k, &st, &a, req);
			check(ok && st == NARF_API_AUTH_DONE);
			json_decref(req);
		}
	}
}

/* The whole exchange between k and the clients a process may meet: one
 * holding the same keys, one a rotation stage apart (the sets the other
 * way round), one that has only the previous secret, and a stranger. */
static void check_clients(const struct narf_auth_keys *k,
                          const struct narf_auth_keys *other,
                          int role,
                          const char *ctx,
                          const struct material *mt)
{
	struct narf_auth_keys swapped = *k, old = *k;

	check_genuine(k, k, role, ctx, mt);
	check_genuine(k, other, role, ctx, mt);
	check_genuine(other, k, role, ctx, mt);
	if (k->n < 2)
		return;
	swapped.set[0] = k->set[1];
	swapped.set[1] = k->set[0];
	check_genuine(k, &swapped, role, ctx, mt);
	check_genuine(&swapped, k, role, ctx, mt);
	old.set[0] = k->set[1];
	memset(&old.set[1], 0, sizeof(old.set[1]));
	old.n = 1;
	check_genuine(k, &old, role, ctx, mt);
	check_genuine(&old, k, role, ctx, mt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct narf_auth_keys other, fallback;
	struct narf_auth_keys k, node;
	struct material mt;
	const char *text, *pos, *end = (const char *)data + size;
	size_t len, have;
	int role;
	const char *ctx;
	bool valid;

	if (size < 2)
		return 0;
	if (fallback.n == 0) {
		check(check_keys(&other, other_secret, strlen(other_secret)));
		check(check_keys(&fallback, "the fallback secret, 16+",
		                 strlen("the fallback secret, 16+")));
	}
	role = roles[data[0] & 3];
	ctx = ctxs[(data[0] >> 2) & 3];
	text = (const char *)data + 2;
	len = data[1] < size - 2 ? data[1] : size - 2;
	pos = text + len;
	memset(&mt, 0, sizeof(mt));
	have = (size_t)(end - pos) < sizeof(mt) ? (size_t)(end - pos)
	                                        : sizeof(mt);
	memcpy(&mt, pos, have);
	pos += have;

	check_unhex(text, len, len / 2);
	check_unhex(text, len, NARF_AUTH_NONCE_SIZE);
	check_names(text, len);
	valid = read_keys(&k, text, len, data[0] & 64);
	if (valid) {
		node_key_text(&k);
		/* Bit 4: the keys of a data node holding these secrets' node
		 * keys. */
		if ((data[0] & 16) && k.set[0].have[NARF_AUTH_OPERATOR] &&
		    (k.n < 2 || k.set[1].have[NARF_AUTH_OPERATOR])) {
			node_keys(&k, &node);
			k = node;
		}
		check_arbitrary(&k, role, ctx, (data[0] >> 7) % k.n, &mt);
		check_clients(&k, &other, role, ctx, &mt);
	}
	check_api(valid ? &k : &fallback, data[0] & 32, pos, end);
	return 0;
}
