/*
 * A data node's membership in a cluster: registration with the coordinator,
 * heartbeats to its leader, and the cluster map.
 *
 * One connection to one coordinator at a time, one request in flight on it.
 * The happy path: connect to a coordinator from --join, send `join` (our RESP
 * address and a boot id new for this process) and receive a node id; then
 * every NARF_HEARTBEAT_MS send `heartbeat`; when its reply carries an epoch
 * newer than our map, send `map` and install the reply.
 *
 * Failure modes: `not_leader` moves us to the leader it names (or the next
 * coordinator); a connection error, a reply timeout or garbage moves us to
 * the next coordinator; `unknown_node` (we were removed, or the map lost our
 * incarnation) makes us join again. None of this touches the data path: the
 * node serves with the map it has (the cluster issue adds leases).
 */
#ifndef NARF_MEMBERSHIP_H
#define NARF_MEMBERSHIP_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/frame.h"
#include "common/map.h"

#define NARF_HEARTBEAT_MS 100
#define NARF_MEMBER_REPLY_TIMEOUT_MS 1000
#define NARF_MEMBER_MAX_COORDS 7

struct narf_engine;

enum narf_member_state {
	NARF_MEMBER_IDLE, /* not connected; the timer reconnects */
	NARF_MEMBER_CONNECTING,
	NARF_MEMBER_JOINING, /* join sent */
	NARF_MEMBER_MEMBER,  /* joined: heartbeats and map fetches */
	NARF_MEMBER_CLOSING,
};

struct narf_member {
	uv_loop_t *loop;            /* borrowed */
	struct narf_engine *engine; /* borrowed: keys, memory for heartbeats */
	char coords[NARF_MEMBER_MAX_COORDS][NARF_ADDR_SIZE];
	unsigned n_coords;
	unsigned next_coord;            /* round-robin position */
	char target[NARF_ADDR_SIZE];    /* coordinator we talk to */
	char self_addr[NARF_ADDR_SIZE]; /* our RESP address */
	char boot_id[NARF_BOOT_ID_SIZE];
	uint32_t node_id;     /* 0 until joined */
	struct narf_map *map; /* owned; NULL until the first fetch */
	enum narf_member_state state;
	const char *pending;  /* op awaiting a reply, or NULL */
	uint64_t sent_ms;     /* when the pending request was sent */
	uint64_t last_ack_ms; /* send time of the last acked beat: what
	                         the lease of the cluster issue builds on */
	uv_tcp_t *tcp;        /* owned while connected */
	struct narf_frame_decoder dec;
	uv_timer_t timer; /* heartbeat and reconnect tick */
	uint64_t maps_installed;
	bool closing;
};

/* Parse "host:port,host:port" into m->coords; 0 or NARF_EINVAL. */
int narf_member_parse_coords(struct narf_member *m, const char *list);

/* Start joining; self_addr is the address peers and clients reach us at. */
int narf_member_start(struct narf_member *m,
                      uv_loop_t *loop,
                      struct narf_engine *engine,
                      const char *self_addr);

/* Stop: close the connection and the timer (asynchronous; the loop ends
 * once they are closed). */
void narf_member_stop(struct narf_member *m);

#endif /* NARF_MEMBERSHIP_H */
