/*
 * How a data node stops and reloads: the signals (datanode(1)). SIGTERM
 * or SIGINT first leave the cluster when the other nodes can hold every
 * copy, then drain (narf_dn_start_drain, server.c); SIGHUP reads the TLS,
 * password, node key and users files again. The connection I/O they act
 * on is server.c's.
 */
#include "conn.h"

#include <signal.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"

/* This node's state in its map, or -1 when it has none. */
static int own_state(const struct narf_dn *dn)
{
	const struct narf_map_node *n;

	if (dn->member.map == NULL || dn->member.node_id == 0)
		return -1;
	n = narf_map_node_get(dn->member.map, dn->member.node_id);
	return n != NULL ? (int)n->state : -1;
}

/* Nodes up other than this one in its map. */
static unsigned others_up(const struct narf_dn *dn)
{
	const struct narf_map *m = dn->member.map;
	unsigned n = 0;

	for (unsigned i = 0; m != NULL && i < m->n_nodes; i++)
		n += m->nodes[i].id != dn->member.node_id &&
		     m->nodes[i].state == NARF_NODE_UP;
	return n;
}

/* Stopping with --on-stop leave: removed from the map (its slots moved
 * away), or waited long enough, or can the leave no longer finish (the
 * others stopping too, or the coordinator out of reach)? Then drain. */
void narf_dn_leave_step(struct narf_dn *dn)
{
	uint64_t now = uv_now(&dn->loop);
	uint64_t waited = now - dn->leave_start_ms;

	if (own_state(dn) == NARF_NODE_REMOVED || dn->member.removed) {
		NARF_INFO(
		        "stop: left the cluster after %llu ms; answering "
		        "requests in flight, then stopping",
		        (unsigned long long)waited);
		narf_dn_start_drain(dn);
	} else if (waited >= dn->leave_timeout_ms) {
		NARF_WARN(
		        "stop: still not removed after %llu ms "
		        "(--leave-timeout); stopping without leaving",
		        (unsigned long long)waited);
		narf_dn_start_drain(dn);
	} else if (dn->member.map != NULL &&
	           others_up(dn) < dn->member.map->settings.replication) {
		NARF_WARN(
		        "stop: only %u other nodes up, too few for the "
		        "copies; stopping without leaving",
		        others_up(dn));
		narf_dn_start_drain(dn);
	} else if (!narf_member_lease_ok(&dn->member, narf_clock_ms())) {
		NARF_WARN(
		        "stop: cut off from the coordinator; stopping "
		        "without leaving");
		narf_dn_start_drain(dn);
	}
}

static void leave_cb(void *data,
                     uint32_t peer,
                     bool drop,
                     bool ok,
                     uint64_t epoch)
{
	struct narf_dn *dn = data;

	(void)peer;
	(void)drop;
	if (!dn->stop_leaving || dn->closing)
		return;
	if (!ok) {
		NARF_INFO(
		        "stop: the cluster did not take the leave; "
		        "answering requests in flight, then stopping");
		narf_dn_start_drain(dn);
		return;
	}
	NARF_INFO(
	        "stop: leaving (epoch %llu): serving until this node's "
	        "slots have moved away",
	        (unsigned long long)epoch);
	narf_member_want_map(&dn->member);
}

/*
 * SIGTERM/SIGINT. In a cluster with --on-stop leave (the default) a node
 * that is up first asks to leave "if room" (the coordinator refuses when the
 * other nodes up cannot hold every slot's copies): it keeps serving while
 * its slots move away, and drains once the map says "removed", so stopping
 * it costs no failover. Otherwise, or when refused, it drains at once. A
 * second signal skips what is left of the leave; a third stops at once.
 */
static void signal_cb(uv_signal_t *s, int signum)
{
	struct narf_dn *dn = s->data;

	if (dn->draining) {
		NARF_INFO("signal %d again: stopping now", signum);
		narf_dn_stop(dn);
		return;
	}
	if (dn->stop_leaving) {
		NARF_INFO(
		        "signal %d again: stopping without waiting for the "
		        "leave; answering requests in flight",
		        signum);
		narf_dn_start_drain(dn);
		return;
	}
	if (dn->cluster && dn->leave_on_stop && own_state(dn) == NARF_NODE_UP &&
	    narf_member_leave(&dn->member, leave_cb, dn) == 0) {
		NARF_INFO(
		        "signal %d: asking to leave the cluster first "
		        "(again: stop without leaving)",
		        signum);
		dn->stop_leaving = true;
		dn->leave_start_ms = uv_now(&dn->loop);
		return;
	}
	NARF_INFO("signal %d: answering requests in flight, then stopping",
	          signum);
	narf_dn_start_drain(dn);
}

/* --- reload (SIGHUP) ------------------------------------------------------ */

/* One context: t (what names it in the log: "TLS" for the port, "TLS
 * cluster" for the internal links' client side). */
static void reload_one(struct narf_tls *t, const char *what)
{
	char errmsg[NARF_ERRMSG_SIZE], desc[256];

	if (narf_tls_reload(t, errmsg) != 0) {
		NARF_ERROR(
		        "%s reload: %s; new connections keep the certificate "
		        "in use",
		        what, errmsg);
		return;
	}
	narf_tls_describe(t, desc, sizeof(desc));
	NARF_INFO(
	        "%s reload: new connections get %s (open connections keep "
	        "theirs)",
	        what, desc);
}

/* The TLS port's context and, with --tls-cluster, the client context of
 * the internal links (peer links and calls to the coordinators dialed
 * from now on present the new certificate and trust the new CA). Each
 * one that fails keeps the one in use. */
static void reload_tls(struct narf_dn *dn)
{
	if (dn->tls_port == 0)
		return;
	reload_one(&dn->tls, "TLS");
	if (dn->tls_cluster)
		reload_one(&dn->tls_client, "TLS cluster (outgoing links)");
}

void narf_dn_reload(struct narf_dn *dn)
{
	NARF_INFO("SIGHUP: reloading");
	reload_tls(dn);
	narf_engine_reload_credentials(&dn->engine);
}

static void sighup_cb(uv_signal_t *s, int signum)
{
	(void)signum;
	narf_dn_reload(s->data);
}

void narf_dn_watch_signals(struct narf_dn *dn)
{
	uv_signal_init(&dn->loop, &dn->sigterm);
	uv_signal_init(&dn->loop, &dn->sigint);
	uv_signal_init(&dn->loop, &dn->sighup);
	dn->sigterm.data = dn->sigint.data = dn->sighup.data = dn;
	uv_signal_start(&dn->sigterm, signal_cb, SIGTERM);
	uv_signal_start(&dn->sigint, signal_cb, SIGINT);
	uv_signal_start(&dn->sighup, sighup_cb, SIGHUP);
}
