/*
 * The data node's RESP server: one libuv loop, a plain listener (--port)
 * and a TLS one (--tls-port), the client connections, and one cron timer
 * for periodic work.
 */
#ifndef NARF_SERVER_H
#define NARF_SERVER_H

#include <stdbool.h>
#include <uv.h>

#include "common/httpd.h"
#include "engine.h"
#include "membership.h"
#include "repl.h"
#include "common/tls.h"

#define NARF_DN_CRON_MS 100
#define NARF_DEFAULT_SYNC_RATE 0             /* --sync-rate default: no limit */
#define NARF_DEFAULT_LEAVE_TIMEOUT_MS 120000 /* --leave-timeout default */

struct narf_rconn;

struct narf_dn {
	uv_loop_t loop;
	struct narf_engine engine;
	uv_tcp_t listener; /* cfg.port, unless it is 0 */
	uv_timer_t cron;
	uv_signal_t sigterm;
	uv_signal_t sigint;
	uv_signal_t sighup; /* narf_dn_reload() */
	/* --tls-port: 0 for none; else main() has initialised tls (its
	 * files read and checked) before narf_dn_start() */
	int tls_port;
	struct narf_tls tls;
	uv_tcp_t tls_listener;
	/* --tls-cluster yes: the internal links (peer links, calls to the
	 * coordinators) go through TLS relays on this client context (same
	 * certificate, key and CA as tls); the map has us at the TLS port */
	bool tls_cluster;
	struct narf_tls tls_client;
	char *tls_rbuf;             /* owned: ciphertext just read (server.c) */
	struct narf_rconn *conns;   /* owned; doubly linked */
	struct narf_rconn *blocked; /* conns waiting (see server.c) */
	uv_check_t check;           /* resumes conns that can go on */
	uv_idle_t reap;             /* spins the loop while values are buried */
	bool reaping;
	bool progress;      /* something blocked may go on */
	uint64_t iter;      /* loop iterations (check phases) */
	unsigned throttled; /* conns that read their share */
	/* conns whose replies go out in this iteration's check phase (each
	 * once: its flush_queued) */
	struct narf_rconn **flushq;
	size_t flushq_n, flushq_cap;
	struct narf_member member; /* used with --join */
	struct narf_repl *repl;    /* owned, with --join */
	uint64_t sync_rate;        /* --sync-rate, bytes per second */
	bool cluster;              /* --join given */
	uint64_t cron_ticks;
	/* clients blocked on keys (blocking_io.c): the timer of the earliest
	 * timeout, when it fires (loop ms, 0: stopped), and whether waiters
	 * must run again (a map change) */
	uv_timer_t block_timer;
	uint64_t block_timer_at;
	bool block_recheck;
	uint64_t block_tokens; /* the last token of a forwarded blocking pop */
	/* SIGTERM in a cluster: leave first (--on-stop leave), waiting at
	 * most leave_timeout_ms for the map to say "removed". */
	bool leave_on_stop;
	unsigned leave_timeout_ms;
	bool stop_leaving; /* asked to leave; draining once removed */
	uint64_t leave_start_ms;
	bool draining; /* finishing requests in flight, then stopping */
	uint64_t drain_start_ms;
	bool closing;
	const char *metrics_addr;  /* --metrics, borrowed (argv), or NULL */
	struct narf_httpd metrics; /* GET /metrics, with --metrics */
};

/* Listen on cfg.bind:cfg.port and start the cron and signal handlers; the
 * engine must be initialised. errmsg gets NARF_ERRMSG_SIZE bytes. */
int narf_dn_start(struct narf_dn *dn, char *errmsg);

/* Close the listeners, every connection, the cron and the signals; the
 * loop then ends by itself. Safe to call twice. */
void narf_dn_stop(struct narf_dn *dn);

/* SIGHUP: read again what can be reloaded without a restart (the TLS
 * certificate, key and CA, for the TLS port and, with --tls-cluster, the
 * internal links' client side; the credentials); what fails to load is
 * logged and the old one kept. */
void narf_dn_reload(struct narf_dn *dn);

/* A new map is in (after narf_repl_map_changed): clients blocked on keys
 * of slots this node no longer leads are run again from the check handle,
 * so they are forwarded to the new owner, or get -MOVED (blocking_io.c). */
void narf_dn_block_map_changed(struct narf_dn *dn);

/* The /metrics handler (metrics.c; data = the narf_dn). */
int narf_dn_metrics_handler(void *data,
                            const char *path,
                            struct narf_buf *body,
                            const char **content_type);

#endif /* NARF_SERVER_H */
