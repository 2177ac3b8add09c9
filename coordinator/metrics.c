/*
 * The coordinator's /metrics (--metrics ADDR): docs/observability.md lists
 * every family. Every member serves its own Raft view and the map it has
 * applied; the heartbeat ages, reachability of the other members and
 * rebalance progress exist only on the leader (they are its soft state),
 * so followers list none.
 */
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/metrics.h"
#include "coord.h"

#define C NARF_METRIC_COUNTER
#define G NARF_METRIC_GAUGE

/* The Raft port's handshakes (docs/security.md, "Raft transport"). */
static void raft_transport_metrics(const struct narf_transport *t,
                                   struct narf_metrics *m)
{
	static const char *const name = "narf_raft_handshakes_total";

	narf_metrics_family(m, name, C,
	                    "Raft connections by direction and handshake "
	                    "outcome: incoming accepted (the peer proved the "
	                    "cluster secret) or refused, outgoing connected "
	                    "or failed.");
	narf_metrics_sample(m, name, "direction", "in", "result", "accepted",
	                    (double)t->accepted);
	narf_metrics_sample(m, name, "direction", "in", "result", "refused",
	                    (double)t->refused);
	narf_metrics_sample(m, name, "direction", "out", "result", "connected",
	                    (double)t->connected);
	narf_metrics_sample(m, name, "direction", "out", "result", "failed",
	                    (double)t->connect_failed);
}

static void raft_metrics(struct narf_coord *c, struct narf_metrics *m)
{
	static const char *const roles[] = {"follower", "candidate", "leader",
	                                    "unavailable"};
	const char *role = narf_raftnode_role_name(&c->rn);
	bool leader = narf_raftnode_is_leader(&c->rn);

	narf_metrics_one_u64(m, "narf_raft_term", G, "Current Raft term.",
	                     narf_raftnode_term(&c->rn));
	narf_metrics_one_u64(m, "narf_raft_commit_index", G,
	                     "Highest Raft log index known committed.",
	                     narf_raftnode_commit_index(&c->rn));
	narf_metrics_one_u64(m, "narf_raft_applied_index", G,
	                     "Log index of the last map command applied "
	                     "(barriers do not count).",
	                     narf_raftnode_applied(&c->rn));
	narf_metrics_one_u64(m, "narf_raft_last_index", G,
	                     "Last index in this member's Raft log.",
	                     narf_raftnode_last_index(&c->rn));
	narf_metrics_family(m, "narf_raft_role", G,
	                    "This member's Raft role (1 for the current one).");
	for (unsigned i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
		narf_metrics_sample(m, "narf_raft_role", "role", roles[i], NULL,
		                    NULL, strcmp(role, roles[i]) == 0);
	narf_metrics_one_u64(m, "narf_is_leader", G,
	                     "1 on the Raft leader, 0 elsewhere.", leader);
	narf_metrics_one_u64(m, "narf_leader_ready", G,
	                     "1 on a leader whose map is current (its term's "
	                     "barrier applied): it serves the API.",
	                     narf_raftnode_is_ready(&c->rn));
	narf_metrics_one_u64(m, "narf_raft_leader_id", G,
	                     "The leader's member id as this member knows it "
	                     "(0: unknown).",
	                     narf_raftnode_leader_id(&c->rn));
	narf_metrics_one_u64(m, "narf_raft_proposals_in_flight", G,
	                     "Map commands proposed and not yet applied.",
	                     c->rn.inflight);
	raft_transport_metrics(&c->rn.transport, m);
	if (!leader)
		return;
	narf_metrics_family(m, "narf_raft_member_reachable", G,
	                    "Leader only: 1 when the member answered within "
	                    "an election timeout.");
	for (unsigned i = 0; i < c->cfg.n_members; i++) {
		char id[24];

		snprintf(id, sizeof(id), "%llu",
		         (unsigned long long)c->cfg.members[i].id);
		narf_metrics_sample(m, "narf_raft_member_reachable", "member",
		                    id, NULL, NULL,
		                    narf_raftnode_member_reachable(
		                            &c->rn, c->cfg.members[i].id));
	}
}

/* The replicated map: epoch, nodes by state, slots. */
static void map_metrics(struct narf_coord *c, struct narf_metrics *m)
{
	const struct narf_map *map = c->rn.map;
	unsigned by_state[5] = {0};
	unsigned assigned = 0, moving = 0, under = 0, syncing = 0;
	static const char *const states[] = {"joining", "up", "down", "leaving",
	                                     "removed"};

	narf_metrics_one_u64(m, "narf_map_epoch", G,
	                     "Epoch of the map this member has applied.",
	                     map->epoch);
	for (unsigned i = 0; i < map->n_nodes; i++)
		if ((unsigned)map->nodes[i].state < 5)
			by_state[map->nodes[i].state]++;
	narf_metrics_family(m, "narf_nodes", G,
	                    "Data nodes in the map, by state.");
	for (unsigned i = 0; i < 5; i++)
		narf_metrics_sample_u64(m, "narf_nodes", "state", states[i],
		                        by_state[i]);
	narf_metrics_family(m, "narf_node_state", G,
	                    "Each data node not removed, with its state in "
	                    "the map (always 1).");
	for (unsigned i = 0; i < map->n_nodes; i++) {
		const struct narf_map_node *n = &map->nodes[i];
		char id[16];

		if (n->state == NARF_NODE_REMOVED || (unsigned)n->state >= 5)
			continue;
		snprintf(id, sizeof(id), "%u", n->id);
		narf_metrics_sample(m, "narf_node_state", "node", id, "state",
		                    states[n->state], 1);
	}
	/* From the map's derived counts: O(1) per scrape. */
	assigned = map->counts.assigned;
	moving = map->counts.moving;
	syncing = map->counts.syncing;
	for (unsigned i = 0;
	     i < map->settings.replication && i <= NARF_MAX_COPIES; i++)
		under += map->counts.by_isr[i];
	narf_metrics_one_u64(m, "narf_slots_assigned", G,
	                     "Slots with a primary.", assigned);
	narf_metrics_one_u64(m, "narf_slots_moving", G,
	                     "Slots with a pending handoff.", moving);
	narf_metrics_one_u64(m, "narf_slots_under_replicated", G,
	                     "Slots with fewer in-sync copies than the "
	                     "replication factor.",
	                     under);
	narf_metrics_one_u64(m, "narf_slots_syncing", G,
	                     "Slots with a replica still syncing.", syncing);
	narf_metrics_one_u64(m, "narf_slots_lost_total", C,
	                     "Slots whose data died with their primary (empty "
	                     "in-sync set), ever.",
	                     map->lost_slots);
	narf_metrics_one_u64(m, "narf_replication_factor", G,
	                     "Copies per slot, primary included.",
	                     map->settings.replication);
}

/* Leader only: heartbeat ages and what the nodes last reported. */
static void heartbeat_metrics(struct narf_coord *c, struct narf_metrics *m)
{
	const struct narf_map *map = c->rn.map;
	uint64_t now = narf_clock_ms();
	bool planning, balanced;
	unsigned remaining;
	static const struct {
		const char *name, *help;
	} fams[] = {
	        {"narf_node_heartbeat_age_seconds",
	         "Leader only: time since the node's last heartbeat (or "
	         "join) reached this leader."},
	        {"narf_node_keys",
	         "Leader only: keys the node reported in its last heartbeat."},
	        {"narf_node_used_memory_bytes",
	         "Leader only: data memory the node reported in its last "
	         "heartbeat."},
	};

	if (!narf_raftnode_is_leader(&c->rn))
		return;
	for (unsigned f = 0; f < 3; f++) {
		narf_metrics_family(m, fams[f].name, G, fams[f].help);
		for (unsigned i = 0; i < map->n_nodes; i++) {
			const struct narf_map_node *n = &map->nodes[i];
			const struct narf_hb *hb = narf_leader_hb(c, n->id);
			char id[16];
			double v;

			if (hb == NULL || n->state == NARF_NODE_REMOVED)
				continue;
			snprintf(id, sizeof(id), "%u", n->id);
			v = f == 0 ? (double)(now > hb->last_seen_ms
			                              ? now - hb->last_seen_ms
			                              : 0) /
			                     1000.0
			    : f == 1 ? (double)hb->keys
			             : (double)hb->used_memory;
			narf_metrics_sample(m, fams[f].name, "node", id, NULL,
			                    NULL, v);
		}
	}
	remaining = narf_leader_remaining(c, &planning, &balanced);
	/* As status says it: never 0 between planning rounds while the map
	 * is not balanced. */
	narf_metrics_one_u64(m, "narf_rebalance_remaining_slots", G,
	                     "Leader only: slots whose layout still differs "
	                     "from the balanced one.",
	                     remaining);
}

static void decision_metrics(struct narf_coord *c, struct narf_metrics *m)
{
	narf_metrics_family(m, "narf_leader_decisions_total", C,
	                    "Decisions this member took as leader and saw "
	                    "applied, by kind.");
	for (unsigned i = 0; i < NARF_DECISION_COUNT; i++)
		narf_metrics_sample_u64(m, "narf_leader_decisions_total",
		                        "decision", narf_decision_names[i],
		                        c->leader.decisions[i]);
	narf_metrics_one_u64(m, "narf_failovers_total", C,
	                     "Data nodes this member marked down as leader "
	                     "(each promotes in-sync replicas for the slots "
	                     "it led).",
	                     c->leader.decisions[NARF_DECISION_NODE_DOWN]);
	narf_metrics_one_u64(m, "narf_failover_slots_total", C,
	                     "Primary slots of the nodes marked down: slots "
	                     "failed over to a replica (or lost).",
	                     c->leader.failover_slots);
	narf_metrics_family(m, "narf_api_requests_total", C,
	                    "API requests received, by op.");
	for (unsigned i = 0; i < NARF_API_OPS; i++)
		narf_metrics_sample_u64(m, "narf_api_requests_total", "op",
		                        narf_api_op_names[i],
		                        c->api_requests[i]);
	narf_metrics_one_u64(m, "narf_api_connections", G,
	                     "Open API connections.", narf_api_connections(c));
	narf_metrics_one_u64(m, "narf_api_auth_failures_total", C,
	                     "API connections closed for a missing, malformed "
	                     "or wrong proof of the cluster secret.",
	                     c->auth_failures);
	narf_metrics_family(m, "narf_tls_handshake_failures_total", C,
	                    "Incoming connections whose TLS handshake failed "
	                    "(--tls-cluster yes: a plain-text caller, a "
	                    "missing, expired or foreign certificate), by "
	                    "port.");
	narf_metrics_sample_u64(m, "narf_tls_handshake_failures_total", "port",
	                        "api", c->tls_failures);
	narf_metrics_sample_u64(m, "narf_tls_handshake_failures_total", "port",
	                        "raft", c->rn.transport.tls_failed);
	narf_metrics_one_u64(m, "narf_api_refused_total", C,
	                     "API connections closed at a limit: over 4096 "
	                     "open, or the oldest of 128 not yet "
	                     "authenticated when another arrives.",
	                     c->api_refused);
	narf_metrics_one_u64(m, "narf_lease_refusals_total", C,
	                     "Heartbeats refused (no_quorum) because no "
	                     "barrier of this term committed within half an "
	                     "election timeout (docs/safety.md).",
	                     c->lease_refusals);
	narf_metrics_one_u64(m, "narf_leader_barriers_total", C,
	                     "Barriers committed as leader: each renews the "
	                     "proof that no other leader exists.",
	                     c->rn.barriers);
}

/* Map traffic to data nodes (docs/protocol.md, "Map deltas"). */
static void delta_metrics(struct narf_coord *c, struct narf_metrics *m)
{
	narf_metrics_one_u64(m, "narf_map_delta_bytes_total", C,
	                     "Bytes of map entries sent as deltas in "
	                     "heartbeat, isr, handoff and map replies.",
	                     c->map_delta_bytes);
	narf_metrics_one_u64(m, "narf_map_full_bytes_total", C,
	                     "Bytes of full map replies sent (joiners, "
	                     "laggards, older nodes, cachecli).",
	                     c->map_full_bytes);
	narf_metrics_one_u64(m, "narf_map_full_encodes_total", C,
	                     "Full map encodes: at most one per epoch, shared "
	                     "by every fetch of it.",
	                     c->map_full_encodes);
	narf_metrics_one_u64(m, "narf_map_ring_entries", G,
	                     "Map entries held for deltas (the oldest is the "
	                     "furthest back a node can be sent deltas from).",
	                     c->rn.ring.n);
}

int narf_coord_metrics_handler(void *data,
                               const char *path,
                               struct narf_buf *body,
                               const char **content_type)
{
	struct narf_coord *c = data;
	struct narf_metrics m;

	if (strcmp(path, "/metrics") != 0)
		return 404;
	narf_metrics_begin(&m, body, "coord");
	narf_metrics_one_u64(&m, "narf_coord_id", G,
	                     "This coordinator's Raft member id.", c->cfg.id);
	raft_metrics(c, &m);
	map_metrics(c, &m);
	heartbeat_metrics(c, &m);
	decision_metrics(c, &m);
	delta_metrics(c, &m);
	narf_httpd_metrics(&c->metrics, &m);
	narf_metrics_process(&m, c->start_ms);
	if (narf_metrics_failed(&m))
		return 500;
	*content_type = NARF_METRICS_CONTENT_TYPE;
	return 200;
}
