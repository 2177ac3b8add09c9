/*
 * Coordinator membership: the pure part (no I/O, no libraft), so unit tests
 * drive it directly. docs/coordinators.md tells the whole story.
 *
 * The map's coordinators table is the membership the operator asked for;
 * the Raft configuration follows it, one change at a time, driven by the
 * leader's cron (members.c). narf_members_plan() picks that next change
 * from the table, the configuration and what the leader knows of each
 * member's liveness. Being computed from the committed table and the
 * current configuration only, it picks up where a previous leader stopped,
 * and it never trusts the outcome of an earlier change (libraft 0.15 can
 * commit a change whose callback failed).
 *
 * The order, and why:
 *   1. remove a member the table no longer lists and that does not answer
 *      (a dead one): with 3 voters and one dead, removing first leaves 2 of
 *      2 live voters (quorum 2); adding first would make 4 voters whose
 *      quorum of 3 needs the new member, caught up, as well as both
 *      survivors;
 *   2. add a listed member missing from the configuration, as a spare;
 *   3. promote a listed spare or standby to voter (libraft lets it catch up
 *      first);
 *   4. only then remove a listed-no-more member that still answers (a live
 *      member replaced: adding first keeps one failure tolerated all the
 *      way), after handing leadership to a listed voter when it is the
 *      leader itself.
 * While a member to remove is neither known to answer nor silent long
 * enough (a new leader has not heard from it yet), nothing is decided.
 */
#ifndef NARF_MEMBERS_H
#define NARF_MEMBERS_H

#include <stdint.h>

#include "common/map.h"
#include "raftnode.h"

/* What the leader knows of a member's liveness. */
enum narf_reach {
	NARF_REACH_UNKNOWN, /* not heard since this leader took over, yet */
	NARF_REACH_YES,     /* answered recently */
	NARF_REACH_NO,      /* silent for longer than the unreachable bound */
};

enum narf_members_step {
	NARF_STEP_NONE, /* the configuration matches the table */
	NARF_STEP_WAIT, /* nothing to do now: see why */
	NARF_STEP_ADD,
	NARF_STEP_PROMOTE,
	NARF_STEP_REMOVE,
	NARF_STEP_TRANSFER, /* hand leadership to id, then a new leader goes on
	                     */
};

struct narf_members_plan {
	enum narf_members_step step;
	uint64_t id;
	char raft[NARF_ADDR_SIZE]; /* NARF_STEP_ADD: its Raft address */
	char why[128];             /* one line for logs and `coords` */
};

/* The entry of table with this id, or NULL. */
const struct narf_map_coord *
narf_members_find(const struct narf_map_coord *table, unsigned n, uint64_t id);

/*
 * The next step from table (the map's coordinators, n_table entries), conf
 * (the Raft configuration, n_conf servers, with reach[i] the liveness of
 * conf[i]) and self (the leader's id).
 */
void narf_members_plan(const struct narf_map_coord *table,
                       unsigned n_table,
                       const struct narf_raft_member *conf,
                       const enum narf_reach *reach,
                       unsigned n_conf,
                       uint64_t self,
                       struct narf_members_plan *out);

#endif /* NARF_MEMBERS_H */
