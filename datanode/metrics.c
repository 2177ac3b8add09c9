/*
 * The data node's /metrics (--metrics ADDR): docs/observability.md lists
 * every family. Built on the loop thread at each scrape from the counters
 * the engine, the store, replication and membership keep anyway; nothing
 * here costs anything between scrapes.
 */
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/metrics.h"
#include "server.h"

#define C NARF_METRIC_COUNTER
#define G NARF_METRIC_GAUGE

static void engine_metrics(struct narf_dn *dn, struct narf_metrics *m)
{
	const struct narf_engine *e = &dn->engine;
	struct narf_store_stats st;

	narf_store_stats(e->store, &st);
	narf_metrics_family(m, "narf_commands_total", C,
	                    "Commands run, by command (forwarded ones "
	                    "included; peer commands are narf.*).");
	for (unsigned i = 0; i < NARF_CMD_SLOTS; i++) {
		const struct narf_command *cmd = narf_engine_command_at(i);

		if (cmd != NULL)
			narf_metrics_sample_u64(m, "narf_commands_total",
			                        "command", cmd->name,
			                        e->stats.calls[i]);
	}
	narf_metrics_one_u64(m, "narf_unknown_commands_total", C,
	                     "Requests naming no known command.",
	                     e->stats.unknown_commands);
	narf_metrics_one_u64(m, "narf_keyspace_hits_total", C,
	                     "Key lookups that found the key.", e->stats.hits);
	narf_metrics_one_u64(m, "narf_keyspace_misses_total", C,
	                     "Key lookups that did not find the key.",
	                     e->stats.misses);
	narf_metrics_one_u64(m, "narf_keys", G,
	                     "Keys held (primary and replica copies).",
	                     st.keys);
	narf_metrics_one_u64(m, "narf_keys_with_expiry", G,
	                     "Keys held that have a TTL.", st.keys_with_ttl);
	narf_metrics_one_u64(m, "narf_used_memory_bytes", G,
	                     "Memory the data uses (allocator usable sizes; "
	                     "what --max-memory limits).",
	                     st.used_memory);
	narf_metrics_one_u64(m, "narf_max_memory_bytes", G,
	                     "--max-memory (0: no limit).", e->cfg.max_memory);
	narf_metrics_one_u64(m, "narf_evicted_keys_total", C,
	                     "Keys evicted to stay under --max-memory.",
	                     st.evicted);
	narf_metrics_one_u64(m, "narf_expired_keys_total", C,
	                     "Keys removed because their TTL passed.",
	                     st.expired);
	narf_metrics_one_u64(m, "narf_connected_clients", G,
	                     "Open client connections (--max-clients).",
	                     e->connected_clients);
	narf_metrics_one_u64(m, "narf_blocked_clients", G,
	                     "Clients blocked on keys (BLPOP and the like).",
	                     narf_block_count(&e->block));
	narf_metrics_one_u64(m, "narf_peer_links", G,
	                     "Open connections of other nodes that proved the "
	                     "node role (--max-peer-links).",
	                     e->peer_links);
	narf_metrics_one_u64(m, "narf_peer_links_pending", G,
	                     "Connections beyond --max-clients given a moment "
	                     "to prove the node role (the peer reserve).",
	                     e->peer_pending);
	narf_metrics_one_u64(m, "narf_peer_auth_failures_total", C,
	                     "NARF.AUTH refused (the connection was closed).",
	                     e->stats.peer_auth_failures);
	narf_metrics_one_u64(m, "narf_connections_received_total", C,
	                     "RESP connections accepted.",
	                     e->stats.connections);
	narf_metrics_one_u64(m, "narf_rejected_connections_total", C,
	                     "RESP connections refused (--max-clients, "
	                     "protected mode, and the peer reserve's "
	                     "connections that did not prove the node role).",
	                     e->stats.rejected_connections);
	narf_metrics_one_u64(m, "narf_auth_failures_total", C,
	                     "AUTH (and HELLO AUTH) attempts refused: a wrong "
	                     "password or user (INFO's "
	                     "acl_access_denied_auth).",
	                     e->stats.auth_failures);
	narf_metrics_one_u64(m, "narf_tls_handshake_failures_total", C,
	                     "TLS handshakes that failed on --tls-port (a "
	                     "plain-text client, a missing, bad or expired "
	                     "client certificate; INFO's "
	                     "tls_handshake_failures).",
	                     e->stats.tls_handshake_failures);
	narf_metrics_one_u64(m, "narf_net_input_bytes_total", C,
	                     "Bytes read from RESP connections.",
	                     e->stats.net_input_bytes);
	narf_metrics_one_u64(m, "narf_net_output_bytes_total", C,
	                     "Bytes of replies built for RESP connections.",
	                     e->stats.net_output_bytes);
}

/* What the node knows of its cluster: id, map, lease, its slots. */
static void cluster_metrics(struct narf_dn *dn, struct narf_metrics *m)
{
	const struct narf_member *mb = &dn->member;
	const struct narf_map *map = mb->map;
	const struct narf_map_node *self = NULL;
	unsigned primaries = 0, replicas = 0;
	uint64_t now = uv_now(&dn->loop);
	static const char *const states[] = {"joining", "up", "down", "leaving",
	                                     "removed"};

	if (map != NULL) {
		narf_map_node_counts(map, mb->node_id, &primaries, &replicas);
		self = narf_map_node_get(map, mb->node_id);
	}
	narf_metrics_one_u64(m, "narf_map_epoch", G,
	                     "Epoch of the cluster map this node holds.",
	                     map ? map->epoch : 0);
	narf_metrics_one_u64(m, "narf_lease_valid", G,
	                     "1 while this node may serve its slots (its "
	                     "lease with the coordinator leader holds).",
	                     narf_member_lease_ok(mb, narf_clock_ms()) ? 1 : 0);
	narf_metrics_one(
	        m, "narf_lease_remaining_seconds", G, "Time left on the lease.",
	        (double)narf_member_lease_left_ms(mb, narf_clock_ms()) /
	                1000.0);
	narf_metrics_one_u64(m, "narf_coordinator_leader_known", G,
	                     "1 when a coordinator leader answered a "
	                     "heartbeat within the last second.",
	                     narf_member_leader(mb, now) ? 1 : 0);
	narf_metrics_family(m, "narf_node_state", G,
	                    "This node's state in its map (1 for the "
	                    "current one).");
	for (unsigned i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		narf_metrics_sample(m, "narf_node_state", "state", states[i],
		                    NULL, NULL,
		                    self != NULL && (unsigned)self->state == i);
	narf_metrics_family(m, "narf_slots", G,
	                    "Slots this node holds, per the map, by role.");
	narf_metrics_sample_u64(m, "narf_slots", "role", "primary", primaries);
	narf_metrics_sample_u64(m, "narf_slots", "role", "replica", replicas);
	narf_metrics_one_u64(m, "narf_map_installs_total", C,
	                     "Cluster maps fetched and installed.",
	                     mb->maps_installed);
	narf_metrics_one_u64(m, "narf_map_deltas_applied_total", C,
	                     "Map entries applied from coordinator replies "
	                     "(map deltas).",
	                     mb->sync.deltas_applied);
	narf_metrics_one_u64(m, "narf_map_full_installs_total", C,
	                     "Whole maps installed (join, behind the "
	                     "coordinators' ring, older coordinator).",
	                     mb->sync.full_installs);
	narf_metrics_one_u64(m, "narf_map_digest_mismatch_total", C,
	                     "Epochs at which this node's map digest differed "
	                     "from the coordinator's (each answered with the "
	                     "whole map).",
	                     mb->sync.digest_mismatches);
}

/* Replication per peer: lag, links, slots; and the totals. */
static void repl_metrics(struct narf_dn *dn, struct narf_metrics *m)
{
	struct narf_repl_stats rs;
	static const struct {
		const char *name, *help;
	} peer_fams[] = {
	        {"narf_replication_unacked_commands",
	         "Write-stream commands sent to the peer and not yet "
	         "acknowledged."},
	        {"narf_replication_lag_seconds",
	         "Age of the oldest unacknowledged write-stream command (0 "
	         "when all are acknowledged)."},
	        {"narf_replication_link_up",
	         "1 while the replication link to the peer is connected."},
	        {"narf_replication_forwarded_slots",
	         "Slots this node leads whose writes go to the peer."},
	        {"narf_replication_isr_slots",
	         "Slots this node leads whose write acks wait for the peer."},
	        {"narf_replication_pending_sync_slots",
	         "Slots waiting to be synced to the peer."},
	        {"narf_replication_synced_slots_total",
	         "Slots synced (sent whole) to the peer."},
	};

	narf_repl_stats(dn->repl, &rs);
	narf_metrics_one_u64(m, "narf_slots_led", G,
	                     "Slots this node leads, per its map.",
	                     rs.slots_led);
	narf_metrics_one_u64(m, "narf_slots_syncing_here", G,
	                     "Replica slots being synced to this node.",
	                     rs.slots_syncing_here);
	narf_metrics_one_u64(m, "narf_replication_stream_commands_total", C,
	                     "Write-stream and sync commands sent to "
	                     "replicas.",
	                     rs.stream_msgs);
	narf_metrics_one_u64(m, "narf_replication_stream_bytes_total", C,
	                     "Bytes of write-stream and sync commands sent "
	                     "to replicas.",
	                     rs.stream_bytes);
	narf_metrics_one_u64(m, "narf_replication_acks_total", C,
	                     "Acknowledgements received from replicas.",
	                     rs.acks);
	narf_metrics_one_u64(m, "narf_proxied_requests_total", C,
	                     "Requests (or parts of split requests) "
	                     "forwarded to the node that leads their slot.",
	                     rs.proxied);
	for (unsigned f = 0; f < sizeof(peer_fams) / sizeof(peer_fams[0]);
	     f++) {
		bool counter = strstr(peer_fams[f].name, "_total") != NULL;

		narf_metrics_family(m, peer_fams[f].name, counter ? C : G,
		                    peer_fams[f].help);
		for (unsigned i = 0; i < rs.n_peers; i++) {
			struct narf_repl_peer_stats ps;
			char peer[16];
			double v;

			narf_repl_peer_stats(dn->repl, i, &ps);
			snprintf(peer, sizeof(peer), "%u", ps.id);
			switch (f) {
			case 0:
				v = (double)(ps.sent - ps.acked);
				break;
			case 1:
				v = (double)ps.lag_ms / 1000.0;
				break;
			case 2:
				v = ps.link_up;
				break;
			case 3:
				v = ps.fwd_slots;
				break;
			case 4:
				v = ps.isr_slots;
				break;
			case 5:
				v = ps.syncing_slots;
				break;
			default:
				v = (double)ps.synced;
			}
			narf_metrics_sample(m, peer_fams[f].name, "peer", peer,
			                    NULL, NULL, v);
		}
	}
}

int narf_dn_metrics_handler(void *data,
                            const char *path,
                            struct narf_buf *body,
                            const char **content_type)
{
	struct narf_dn *dn = data;
	struct narf_metrics m;

	if (strcmp(path, "/metrics") != 0)
		return 404;
	narf_metrics_begin(&m, body, "datanode");
	narf_metrics_one_u64(&m, "narf_node_id", G,
	                     "This data node's id in the cluster map (0 "
	                     "before it joins, and standalone).",
	                     dn->cluster ? dn->member.node_id : 0);
	narf_metrics_one_u64(&m, "narf_cluster_enabled", G,
	                     "1 for a cluster member (--join), 0 standalone.",
	                     dn->cluster ? 1 : 0);
	engine_metrics(dn, &m);
	if (dn->cluster) {
		cluster_metrics(dn, &m);
		if (dn->repl != NULL)
			repl_metrics(dn, &m);
	}
	narf_httpd_metrics(&dn->metrics, &m);
	narf_metrics_process(&m, dn->engine.start_ms);
	if (narf_metrics_failed(&m))
		return 500;
	*content_type = NARF_METRICS_CONTENT_TYPE;
	return 200;
}
