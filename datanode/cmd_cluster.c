/*
 * Cluster commands clients use (READONLY, READWRITE, ACKMODE, WAIT) and the
 * internal commands peers send over their links (NARF.*, see repl.h). The
 * internal ones run only on a connection that proved the node role with
 * NARF.AUTH (peer_auth.h) and are not listed by COMMAND.
 */
#include <stdio.h>
#include <string.h>

#include "common/errors.h"
#include "common/log.h"
#include "engine.h"
#include "peer_auth.h"
#include "reply.h"
#include "repl.h"

static int cmd_readonly(struct narf_engine *e,
                        struct narf_client *c,
                        int argc,
                        const char **argv,
                        const size_t *len,
                        struct narf_buf *out)
{
	c->readonly = narf_arg_is(argv[0], len[0], "readonly");
	return narf_resp_simple(out, "OK");
}

/* ACKMODE [ALL|PRIMARY]: when this connection's write replies go out
 * (after every in-sync replica has the write, or at once). Without an
 * argument, the current mode. */
static int cmd_ackmode(struct narf_engine *e,
                       struct narf_client *c,
                       int argc,
                       const char **argv,
                       const size_t *len,
                       struct narf_buf *out)
{
	if (argc > 2)
		return narf_reply_wrong_arity(out, "ackmode");
	if (argc == 1)
		return narf_resp_bulk_str(
		        out, narf_client_ack_primary(e, c) ? "primary" : "all");
	if (narf_arg_is(argv[1], len[1], "all"))
		c->ack_primary = false;
	else if (narf_arg_is(argv[1], len[1], "primary"))
		c->ack_primary = true;
	else
		return narf_resp_error(out, "ERR ACKMODE takes ALL or PRIMARY");
	c->ack_set = true;
	return narf_resp_simple(out, "OK");
}

/* WAIT numreplicas timeout: parsed here, answered by the server, which
 * knows what this connection's last writes wait for. */
static int cmd_wait(struct narf_engine *e,
                    struct narf_client *c,
                    int argc,
                    const char **argv,
                    const size_t *len,
                    struct narf_buf *out)
{
	long long n, timeout;

	if (narf_arg_ll(out, argv[1], len[1], &n) != 0 ||
	    narf_arg_ll(out, argv[2], len[2], &timeout) != 0)
		return 0;
	if (timeout < 0)
		return narf_resp_error(out, "ERR timeout is negative");
	c->wait_replicas = n;
	c->wait_timeout_ms = timeout;
	return NARF_EXEC_WAIT;
}

const struct narf_command narf_cluster_commands[] = {
        {"readonly", cmd_readonly, 1, NARF_CMD_FAST, 0, 0, 0},
        {"readwrite", cmd_readonly, 1, NARF_CMD_FAST, 0, 0, 0},
        {"ackmode", cmd_ackmode, -1, NARF_CMD_FAST, 0, 0, 0},
        {"wait", cmd_wait, 3, 0, 0, 0, 0},
        {NULL, NULL, 0, 0, 0, 0, 0},
};

/* --- internal ------------------------------------------------------------ */

static bool parse_u64(const char *s, size_t n, uint64_t *v)
{
	long long x;

	if (!narf_str_to_ll(s, n, &x) || x < 0)
		return false;
	*v = (uint64_t)x;
	return true;
}

static bool parse_slot(const char *s, size_t n, unsigned *slot)
{
	uint64_t v;

	if (!parse_u64(s, n, &v) || v >= NARF_SLOTS)
		return false;
	*slot = (unsigned)v;
	return true;
}

/*
 * NARF.AUTH: a peer link proves the node role (peer_auth.h has the
 * exchange). Step 1, NARF.AUTH <node id> <nonce_c hex>: answered with
 * [nonce_s hex, proof_s hex], our proof over both nonces. Step 2,
 * NARF.AUTH <proof_c hex>: +OK when it is the dialing node's proof, and
 * the connection is a peer link of that node from then on (no AUTH, no
 * idle timeout, the peer budget, the NARF.* commands). A node that holds
 * no node key (--cluster-secret-file) takes no peer links. Every failure
 * closes the connection after the error reply, and is counted and logged
 * (narf_engine_peer_auth_failed); NARF_CMD_NOAUTH, as a peer need not
 * know the client password.
 */
static int auth_fail(struct narf_engine *e,
                     struct narf_client *c,
                     uint64_t claimed,
                     const char *why,
                     struct narf_buf *out)
{
	narf_engine_peer_auth_failed(e, c, claimed, why);
	return narf_resp_errorf(out, "NOPERM NARF.AUTH: %s", why);
}

static int auth_hello(struct narf_engine *e,
                      struct narf_client *c,
                      const char **argv,
                      const size_t *len,
                      struct narf_buf *out)
{
	unsigned char nonce_c[NARF_AUTH_NONCE_SIZE], mac[NARF_AUTH_MAC_SIZE];
	char nonce_hex[NARF_AUTH_NONCE_HEX + 1], mac_hex[NARF_AUTH_MAC_HEX + 1];
	uint64_t id = 0;
	int rv;

	if (!narf_auth_keys_can(&e->cfg.keys, NARF_AUTH_NODE))
		return auth_fail(e, c, 0,
		                 "this node takes no peer links (it holds no "
		                 "node key: --cluster-secret-file)",
		                 out);
	if (!parse_u64(argv[1], len[1], &id) || id == 0 || id > UINT32_MAX)
		return auth_fail(e, c, 0, "bad node id", out);
	if (narf_auth_unhex(argv[2], len[2], nonce_c, sizeof(nonce_c)) != 0)
		return auth_fail(e, c, id, "bad nonce", out);
	rv = narf_auth_server_answer(&c->peer_auth, &e->cfg.keys,
	                             NARF_AUTH_NODE, id, NARF_PEER_AUTH_CTX,
	                             nonce_c, mac);
	if (rv != 0)
		return auth_fail(e, c, id, narf_strerror(rv), out);
	c->peer_challenged = true;
	narf_auth_hex(c->peer_auth.nonce_s, NARF_AUTH_NONCE_SIZE, nonce_hex);
	narf_auth_hex(mac, NARF_AUTH_MAC_SIZE, mac_hex);
	if (narf_resp_array(out, 2) != 0 ||
	    narf_resp_bulk(out, nonce_hex, NARF_AUTH_NONCE_HEX) != 0 ||
	    narf_resp_bulk(out, mac_hex, NARF_AUTH_MAC_HEX) != 0)
		return NARF_ENOMEM;
	return 0;
}

static int auth_proof(struct narf_engine *e,
                      struct narf_client *c,
                      const char **argv,
                      const size_t *len,
                      struct narf_buf *out)
{
	unsigned char mac[NARF_AUTH_MAC_SIZE];
	uint64_t id = c->peer_auth.id;

	if (!c->peer_challenged)
		return auth_fail(e, c, 0,
		                 "a proof without NARF.AUTH <node id> "
		                 "<nonce> first",
		                 out);
	if (narf_auth_unhex(argv[1], len[1], mac, sizeof(mac)) != 0 ||
	    narf_auth_server_check(&c->peer_auth, &e->cfg.keys, mac) != 0)
		return auth_fail(e, c, id, "wrong proof", out);
	narf_engine_client_proven(e, c, (uint32_t)id);
	NARF_DEBUG("peer link from %s: node %u proved the node role", c->addr,
	           (unsigned)id);
	return narf_resp_simple(out, "OK");
}

static int cmd_auth(struct narf_engine *e,
                    struct narf_client *c,
                    int argc,
                    const char **argv,
                    const size_t *len,
                    struct narf_buf *out)
{
	if (c->peer)
		return narf_resp_error(out,
		                       "ERR NARF.AUTH: this connection "
		                       "already proved the node role");
	if (argc > 3)
		return auth_fail(e, c, 0, "wrong number of arguments", out);
	if (argc == 3 && !c->peer_challenged)
		return auth_hello(e, c, argv, len, out);
	if (argc == 2)
		return auth_proof(e, c, argv, len, out);
	return auth_fail(e, c, c->peer_auth.id,
	                 "a second NARF.AUTH <node id> <nonce>", out);
}

/* The slot epoch of a stream message, checked against ours. */
int narf_peer_fence(struct narf_engine *e,
                    struct narf_client *c,
                    unsigned slot,
                    const char *s,
                    size_t n,
                    struct narf_buf *out)
{
	uint64_t epoch;

	if (!parse_u64(s, n, &epoch)) {
		narf_resp_error(out, "ERR bad slot epoch");
		return -1;
	}
	/* A superseded link of the same sender: what it carries now is what
	 * TCP delivered late, from before the sync over the newer link. */
	if (e->repl != NULL &&
	    !narf_repl_stream_conn(e->repl, c->peer_node, c->id)) {
		narf_resp_errorf(out,
		                 "STALELINK slot %u: node %u has a newer "
		                 "replication link to this node",
		                 slot, (unsigned)c->peer_node);
		return -1;
	}
	if (e->repl != NULL &&
	    !narf_repl_accept(e->repl, c->peer_node, slot, epoch)) {
		/* The sender took writes for a slot it no longer leads; if we
		 * lead it now, its copies may hold writes ours lack. */
		if (narf_repl_leads(e->repl, slot))
			narf_repl_diverged(e->repl, c->peer_node);
		narf_resp_errorf(out,
		                 "STALE slot %u: epoch %llu is older than "
		                 "this node's",
		                 slot, (unsigned long long)epoch);
		return -1;
	}
	return 0;
}

/* Why a replica could not apply a stream message, as the -NOTAPPLIED
 * error says it: the primary fails the link on it (never counts it as an
 * ack) and has the coordinator drop this node from its ISRs. */
int narf_reply_not_applied(struct narf_buf *out, unsigned slot, int rv)
{
	const char *why = rv == NARF_EOOM ? "max-memory reached (replicas "
	                                    "do not evict)"
	                                  : narf_strerror(rv);

	return narf_resp_errorf(out, "NOTAPPLIED slot %u: %s", slot, why);
}

/* NARF.SET <slot epoch> <key> <value> <pxat>: the key's state on the
 * primary (pxat 0: no expiry). Stored as sent, even when pxat has passed
 * by our clock: a replica hides an expired key from reads but removes it
 * only when the primary's NARF.DEL comes, so it never differs from the
 * primary for longer than the stream takes. */
static int cmd_nset(struct narf_engine *e,
                    struct narf_client *c,
                    int argc,
                    const char **argv,
                    const size_t *len,
                    struct narf_buf *out)
{
	unsigned slot = narf_key_slot(argv[2], len[2]);
	int64_t now = narf_engine_now(e);
	uint64_t pxat;
	int rv;

	if (narf_peer_fence(e, c, slot, argv[1], len[1], out))
		return 0;
	if (!parse_u64(argv[4], len[4], &pxat) || pxat > INT64_MAX)
		return narf_resp_error(out, "ERR bad expiry");
	narf_repl_applying(e->repl, true);
	rv = narf_store_set(e->store, slot, argv[2], len[2], argv[3], len[3],
	                    (int64_t)pxat, now, NULL);
	narf_repl_applying(e->repl, false);
	if (rv != 0)
		return narf_reply_not_applied(out, slot, rv);
	return narf_resp_simple(out, "OK");
}

/* NARF.DEL <slot epoch> <key>: deleting needs no memory, so it always
 * applies once past the fence. */
static int cmd_ndel(struct narf_engine *e,
                    struct narf_client *c,
                    int argc,
                    const char **argv,
                    const size_t *len,
                    struct narf_buf *out)
{
	unsigned slot = narf_key_slot(argv[2], len[2]);

	if (narf_peer_fence(e, c, slot, argv[1], len[1], out))
		return 0;
	narf_repl_applying(e->repl, true);
	narf_store_del(e->store, slot, argv[2], len[2], narf_engine_now(e));
	narf_repl_applying(e->repl, false);
	return narf_resp_simple(out, "OK");
}

/* NARF.SYNC <slot> <epoch> [<map epoch>] / NARF.SYNCED <slot> <epoch>. */
static int cmd_nsync(struct narf_engine *e,
                     struct narf_client *c,
                     int argc,
                     const char **argv,
                     const size_t *len,
                     struct narf_buf *out)
{
	bool end = len[0] == strlen("narf.synced");
	unsigned slot;
	uint64_t map_epoch = 0;

	if (argc > (end ? 3 : 4))
		return narf_reply_wrong_arity(
		        out, end ? "narf.synced" : "narf.sync");
	if (!parse_slot(argv[1], len[1], &slot))
		return narf_resp_error(out, "ERR bad slot");
	if (argc == 4 && !parse_u64(argv[3], len[3], &map_epoch))
		return narf_resp_error(out, "ERR bad map epoch");
	if (narf_peer_fence(e, c, slot, argv[2], len[2], out))
		return 0;
	if (e->repl != NULL) {
		if (end)
			narf_repl_sync_end(e->repl, slot);
		else
			narf_repl_sync_begin(e->repl, slot, map_epoch);
	}
	return narf_resp_simple(out, "OK");
}

/* The longest time left a NARF.REQ may carry: 100 years. */
#define NARF_REQ_MAX_MS (100ull * 365 * 24 * 3600 * 1000)

/*
 * NARF.REQ <proto> <token> <ms> <command> [<arg>..]: a client's request a
 * peer forwards with what the bare request cannot say: the client's
 * protocol (2 or 3), which its replies here are written in, and for a
 * blocking pop a token (else 0) and the ms it may still wait (0:
 * forever). A pop that finds nothing blocks here under the token (the
 * server answers +NARF.BLOCKED and later a push frame, blocking_io.c);
 * without a token it answers as if it timed out (a peer link never
 * blocks). Counted once, as the request it carries.
 */
static int cmd_nreq(struct narf_engine *e,
                    struct narf_client *c,
                    int argc,
                    const char **argv,
                    const size_t *len,
                    struct narf_buf *out)
{
	uint64_t proto, token, ms;
	size_t before = out->len;
	int rv;

	if (!parse_u64(argv[1], len[1], &proto) || (proto != 2 && proto != 3) ||
	    !parse_u64(argv[2], len[2], &token) ||
	    !parse_u64(argv[3], len[3], &ms))
		return narf_resp_error(out, "ERR bad NARF.REQ header");
	if (narf_arg_is(argv[4], len[4], "narf.req"))
		return narf_resp_error(out, "ERR NARF.REQ in NARF.REQ");
	e->stats.commands--;
	c->resp = (uint8_t)proto;
	/* A peer's time left is bounded like a client's timeout (Redis
	 * caps those far below this): a huge one must not wrap the deadline
	 * into "now" or into 0, "forever". */
	if (ms > NARF_REQ_MAX_MS)
		ms = NARF_REQ_MAX_MS;
	rv = narf_engine_exec(e, c, argc - 4, argv + 4, len + 4, out);
	if (rv == NARF_EXEC_BLOCK) {
		/* The pop counts once it is served (or answered here), but
		 * the dispatch of this NARF.REQ uncounts it too when it sees
		 * NARF_EXEC_BLOCK: give one back. */
		e->stats.commands++;
	}
	if (rv == NARF_EXEC_BLOCK && token == 0)
		rv = narf_reply_null_array(c, out);
	else if (rv == NARF_EXEC_BLOCK) {
		c->req_token = token;
		c->req_ms = ms;
		c->req_resp = (uint8_t)proto;
	}
	c->resp = 2;
	e->stats.net_output_bytes -= out->len - before; /* counted outside */
	return rv;
}

/* NARF.UNBLOCK <token>: the forwarding node's client of the blocking pop
 * under token (on this link) went away: forget it, popping nothing. +OK
 * whether or not it still waited (its reply may be on its way). */
static int cmd_nunblock(struct narf_engine *e,
                        struct narf_client *c,
                        int argc,
                        const char **argv,
                        const size_t *len,
                        struct narf_buf *out)
{
	uint64_t token;
	struct narf_waiter *w;

	if (!parse_u64(argv[1], len[1], &token) || token == 0)
		return narf_resp_error(out, "ERR bad token");
	w = narf_block_find_token(&e->block, c->id, token);
	if (w != NULL)
		narf_block_remove(&e->block, w);
	return narf_resp_simple(out, "OK");
}

/* Not in narf_command_tables: COMMAND does not list them. Every one but
 * NARF.AUTH is NARF_CMD_PEER: the dispatch refuses it on a connection
 * that has not proven the node role (engine.c). */
const struct narf_command narf_peer_commands[] = {
        {"narf.auth", cmd_auth, -2, NARF_CMD_NOAUTH | NARF_CMD_PEER_AUTH, 0, 0,
         0},
        {"narf.set", cmd_nset, 5, NARF_CMD_PEER, 0, 0, 0},
        {"narf.del", cmd_ndel, 3, NARF_CMD_PEER, 0, 0, 0},
        {"narf.sync", cmd_nsync, -3, NARF_CMD_PEER, 0, 0, 0},
        {"narf.synced", cmd_nsync, 3, NARF_CMD_PEER, 0, 0, 0},
        {"narf.req", cmd_nreq, -5, NARF_CMD_PEER, 0, 0, 0},
        {"narf.unblock", cmd_nunblock, 2, NARF_CMD_PEER, 0, 0, 0},
        {NULL, NULL, 0, 0, 0, 0, 0},
};
