/*
 * narf's libraft transport: TCP connections between coordinators that
 * prove the cluster secret before libraft sees a byte (DESIGN.md,
 * "Security"; docs/security.md, "Raft transport").
 *
 * libraft's own TCP transport opens each connection with an unauthenticated
 * preamble (version, server id, address) and feeds whatever follows to a
 * message decoder that trusts lengths it reads off the wire. This one
 * implements the same struct raft_uv_transport, but every connection first
 * runs the handshake of raft_hs.h: the connecting member claims its Raft id
 * inside the authenticated transcript, both ends prove the coordinator
 * role's key, and only then does libraft get the stream, with the id the
 * proof carried (never one libraft read off the wire). A connection that
 * fails, sends a malformed frame or stalls past the deadline is closed and
 * logged, and libraft never hears of it; at most max_pending handshakes
 * wait at once, so a flood of strangers cannot exhaust memory.
 *
 * With --tls-cluster yes (tls_server and tls_client set) every connection
 * is a TLS tunnel first (mutual TLS, common/tls_relay.h), and the
 * handshake above runs inside it; libraft's stream is the tunnel's
 * plaintext end. TLS keeps the traffic private and whole; the cluster
 * secret still decides who is a member. With TLS the transport also watches
 * the streams it hands libraft for its connects, and makes libraft's next
 * write fail as soon as the member is gone (transport.c says why).
 *
 * Streams handed to libraft are uv_tcp_t handles allocated with
 * raft_malloc(): libraft uv_close()s them and releases them with
 * raft_free() (canonical/raft src/uv_recv.c, uv_send.c).
 */
#ifndef NARF_TRANSPORT_H
#define NARF_TRANSPORT_H

#include <raft.h>
#include <raft/uv.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/auth.h"
#include "common/map.h"
#include "common/tls.h"

/* A handshake (TLS's included) not done within this long is abandoned
 * (both sides). */
#define NARF_TRANSPORT_HANDSHAKE_MS 2000
/* At most this many incoming connections may be mid-handshake (TLS's
 * or ours). */
#define NARF_TRANSPORT_MAX_PENDING 64
/* At most this many refusal lines per window of WARN_WINDOW_MS, for each
 * direction; the rest are counted (a misconfigured member retries ten
 * times a second). */
#define NARF_TRANSPORT_WARN_LINES 5
#define NARF_TRANSPORT_WARN_WINDOW_MS 10000

struct narf_transport_in;
struct narf_transport_out;

struct narf_transport {
	/* What raft_uv_init() takes. libraft owns iface.data; iface.impl
	 * points back here. */
	struct raft_uv_transport iface;
	uv_loop_t *loop;                   /* borrowed */
	const struct narf_auth_keys *keys; /* borrowed; must hold coord */
	raft_id id;                        /* ours, from iface.init */
	char address[NARF_ADDR_SIZE];      /* ours: what we listen on */
	unsigned handshake_ms;             /* deadline of one handshake */
	unsigned max_pending;              /* incoming handshakes at once */
	/* TLS: both set, or neither (plain TCP); borrowed, set after init
	 * and before libraft listens; they must outlive t */
	struct narf_tls *tls_server; /* accepts (client certificates) */
	struct narf_tls *tls_client; /* dials */
	uv_tcp_t listener;
	bool listening; /* listener initialised and not closed yet */
	raft_uv_accept_cb accept_cb;
	struct narf_transport_in *in;   /* owned: incoming, doubly linked */
	struct narf_transport_out *out; /* owned: outgoing, doubly linked */
	unsigned n_in;                  /* entries in in (the cap's count) */
	unsigned n_dropping;            /* over-cap handles being closed */
	bool closing;
	raft_uv_transport_close_cb close_cb;
	/* WARN lines of incoming refusals and of outgoing handshake
	 * failures, limited apart: a flood of strangers must not hide that
	 * a member's address answers without the secret. */
	struct narf_transport_warn {
		uint64_t window;  /* uv_now() / NARF_TRANSPORT_WARN_WINDOW_MS */
		unsigned lines;   /* logged in this window */
		uint64_t skipped; /* not logged since the last line */
	} warn_in, warn_out;
	/* Counters (metrics). */
	uint64_t accepted;       /* incoming that proved themselves */
	uint64_t refused;        /* incoming closed before that */
	uint64_t tls_failed;     /* ... of which in their TLS handshake */
	uint64_t connected;      /* outgoing handed to libraft */
	uint64_t connect_failed; /* outgoing that failed */
};

/*
 * Set t up on loop with keys (borrowed; they must hold the coordinator
 * role's key and outlive t). Nothing is opened yet: libraft calls
 * iface.init, iface.listen and iface.connect. Returns 0 or NARF_EINVAL
 * (keys cannot prove the coordinator role).
 */
int narf_transport_init(struct narf_transport *t,
                        uv_loop_t *loop,
                        const struct narf_auth_keys *keys);

/* Release what init set up, after libraft's raft_close() has completed
 * (its transport close callback has fired) or when raft_uv_init() was
 * never called. Nothing to free today; kept for the paired lifecycle.
 * Accepts NULL. */
void narf_transport_close(struct narf_transport *t);

#endif /* NARF_TRANSPORT_H */
