/*
 * A coordinator at rest, for the API's unit tests (test_api.c) and its
 * fuzzer (tests/fuzz/fuzz_api.c): a struct narf_coord with a map in memory
 * and the Raft state set by hand, as test_raftnode.c does, with no loop,
 * no socket and no libraft instance running. narf_api_request() and
 * narf_api_auth_step() run against it; nothing may propose (the API hands
 * its commands back instead) or start a timer.
 *
 * It links what the API reaches (api.c, leader.c, members.c and what they
 * call) but not coordinator/main.c, whose narf_coord_stop() it stands in
 * for. It uses no cmocka, so the fuzzer builds it too. Test code only: the
 * names are plain, as in a test file.
 */
#ifndef NARF_TEST_COORD_FIXTURE_H
#define NARF_TEST_COORD_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "coordinator/coord.h"

/* The fixture's cluster secret (its keys are in c->cfg.keys) and the
 * coordinator's own id and addresses. */
#define FIXTURE_SECRET "the fixture's cluster secret, 42"
#define FIXTURE_ID 1
#define FIXTURE_RAFT "127.0.0.1:7101"
#define FIXTURE_API "127.0.0.1:7001"
/* Its election timeout (ms): settings may set node_timeout_ms >= 400. */
#define FIXTURE_ELECTION_MS 100
/* Its delta ring's bounds (small, so tests can outrun it). */
#define FIXTURE_RING_ENTRIES 64
#define FIXTURE_RING_BYTES 65536

/* Where the member stands in Raft, as the API sees it. */
enum fixture_role {
	FIXTURE_READY,     /* leader, its term's barrier applied */
	FIXTURE_NOT_READY, /* leader, barrier not applied yet */
	FIXTURE_FOLLOWER,  /* follower of coordinator 2 */
	FIXTURE_CANDIDATE,
};

/*
 * Set c up (c is only written): coordinator FIXTURE_ID alone in its map
 * (an init entry applied with default settings) and in its Raft
 * configuration, the ready leader of term 1 with a fresh proof that it
 * leads. Returns 0 or NARF_ENOMEM; fixture_close() undoes it.
 */
int fixture_init(struct narf_coord *c);
void fixture_close(struct narf_coord *c);

/* Set the Raft role; leads: whether a leader has a fresh proof of its
 * majority (heartbeats are renewed only then), taken now. */
void fixture_set_role(struct narf_coord *c, enum fixture_role role, bool leads);

/* Put coordinator id into the Raft configuration (as a voter, or a spare
 * when !voter), heard from (reachable) or not. 0 or NARF_ENOMEM. */
int fixture_add_member(struct narf_coord *c,
                       uint64_t id,
                       const char *raft,
                       bool voter,
                       bool heard);

/* Empty the Raft configuration (then fixture_add_member() fills it). */
void fixture_clear_members(struct narf_coord *c);

/* A configuration change in flight (or not), as libraft reports one. */
void fixture_set_changing(struct narf_coord *c, bool changing);

/* Apply a map command (borrowed) as the FSM does once it committed,
 * keeping it in the delta ring when it moved the epoch; returns
 * narf_map_apply()'s code, with *res. */
int fixture_apply(struct narf_coord *c,
                  const json_t *cmd,
                  struct narf_map_result *res);

/* Join a data node at addr with boot id boot and set its state (up,
 * down, leaving, removed through the entries the leader would commit);
 * returns its id, or 0 when an entry was refused. */
uint32_t fixture_node(struct narf_coord *c,
                      const char *addr,
                      const char *boot,
                      enum narf_node_state state);

#endif /* NARF_TEST_COORD_FIXTURE_H */
