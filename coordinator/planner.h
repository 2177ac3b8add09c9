/*
 * The slot-assignment planner: from the committed map, the balanced layout
 * the leader steers the cluster towards.
 *
 * Only nodes in state "up" are eligible; every slot gets c = min(replication,
 * eligible nodes) copies on c distinct nodes, and at the end the primaries per
 * node and the copies per node each differ by at most one between eligible
 * nodes. The plan moves as little data as it can, in five steps over the
 * 16384 slots:
 *
 *  1. Clean: keep every copy that sits on an eligible node (in its position,
 *     so unchanged slots stay byte-identical), drop the others and any copies
 *     beyond c (non-ISR ones first). A slot whose primary is gone promotes its
 *     first eligible ISR replica, else its first eligible replica.
 *  2. Fill: slots short of c copies get new copies on nodes below their
 *     share of copies. A maximum flow from groups of such slots (same holders,
 *     same number missing) to nodes decides how many each node takes, so no
 *     greedy choice paints itself into a corner and forces extra moves later;
 *     each node takes its part as runs of consecutive slots. A map with no
 *     copy at all (the first node or nodes) is instead laid out as Redis
 *     does: node i of n (ascending ids) leads slots [i*16384/n,
 *     (i+1)*16384/n) and the next c-1 nodes hold their replicas.
 *  3. Copies: a node above its share hands copies, replicas first and taken
 *     from the end of its slot space (those it does not hold in sync in cur
 *     first), to nodes below their share that hold no copy of the slot,
 *     preferring a node that holds one in cur (a copy an earlier plan began
 *     to sync). Adding one node to N therefore moves about 1/(N+1) of the
 *     copies, all of them to the new node.
 *  4. Primaries: a node leading too many slots swaps roles with an
 *     under-loaded node that already replicates one of them, which moves no
 *     data. Swaps that cost no handoff against cur come first (a slot back
 *     to its primary in cur, or a slot that changes hands anyway); when no
 *     direct swap exists, a chain of swaps through intermediate nodes is
 *     used, the one with the fewest swaps that cost a handoff, of at most
 *     four links; only when no such chain exists does a primary move to a
 *     node holding no copy.
 *     So over a map whose moves are half done, each plan keeps to the one
 *     before (narf-planloop, 80 nodes joining 20: 1,140 handoffs in 164
 *     rounds, where in-sync-first swaps and unbounded chains took 7,667
 *     in 473; docs/scale.md, test_join_keeps_course).
 *  5. Finish: a kept replica keeps its ISR membership, a demoted primary is in
 *     the ISR (it held every write), a new replica is in the ISR only when the
 *     slot had no copy at all before (nothing to sync).
 *
 * Zones (datanode --zone, the map's nodes[].zone): with Z zones among the
 * eligible nodes and c copies per slot, no two copies of a slot share a zone
 * while Z >= c, and at most ceil(c / Z) do otherwise (best effort: zones too
 * small for that get the least limit they allow). Step 1 drops copies
 * beyond the limit (out-of-sync ones first), steps 2 and 3 (and a relay
 * through a node of the giver's zone, when no receiver has room) give copies
 * only to nodes whose zone has room, and a primary moved with its data
 * (4c) does the same when a slot allows it; role swaps move no copy. Shares
 * of copies are two-level: zone quotas in proportion to their nodes, capped
 * at what the limit lets a zone hold and water-filled, then split among the
 * zone's nodes; primaries stay even per node, so they spread over zones in
 * proportion to their nodes. A node without a zone ("") is a zone of its
 * own, so when every node is, the plan is the one without zones, as it is
 * when the limit is c (one zone: a cluster on one host). Where the
 * limit binds hard (uneven zones, Z < c), a scrambled map may need a second
 * planning round to reach its shares.
 *
 * Each node's share (of copies, then of primaries) is the total divided by
 * the number of eligible nodes, the remainder going to the nodes that already
 * hold the most, so a balanced map is a fixed point: planning it again
 * changes nothing. The cost is about O(slots x copies x nodes): 2 ms to add a
 * node to 50, 10 ms to rebalance a scrambled map of 64 nodes. Everything is
 * deterministic (no clock, no randomness, ties broken by the lowest node id),
 * so any leader computes the same plan from the same map.
 */
#ifndef NARF_PLANNER_H
#define NARF_PLANNER_H

#include "common/map.h"

/*
 * Compute the balanced target layout for `cur` into target[NARF_SLOTS]
 * (caller-provided array). Returns the number of slots whose target differs
 * from cur->slots (field by field: primary, replicas, isr). Pure and
 * deterministic.
 *
 * A slot whose primary changes gets epoch cur->epoch + 1 (the epoch at which
 * the assign entry applies); other slots keep their slot epoch. move is 0 in
 * every changed slot; unchanged slots are copied from cur as they are. With no
 * eligible node every slot is unassigned.
 *
 * A slot with a pending move is planned as if its handoff were done (the
 * move target leading, the old primary in its place among the in-sync
 * replicas), so it counts as changed until the handoff applies. It is
 * frozen until then (narf_plan_step()), and planning it as it stands would
 * ask for copies elsewhere that the handoff makes needless.
 *
 * The target is where to go, not a safe single step: a new copy is not in the
 * ISR until it has synced, and a role swap may make such a replica primary
 * (that is how a new node gets its primaries). narf_plan_step() stages the
 * way there (sync as an extra replica, join the ISR, then switch). If memory
 * for the plan's working state (a few arrays per eligible node) cannot be
 * allocated, target is a copy of cur->slots and 0 is returned: nothing is
 * planned this round.
 */
unsigned narf_plan(const struct narf_map *cur, struct narf_slot *target);

/*
 * One safe step from cur towards target (narf_plan()'s output for cur), into
 * step[NARF_SLOTS] (caller-provided): what the leader commits as an assign
 * entry now that slots hold data. Returns the number of slots whose step
 * differs from cur->slots. Pure and deterministic.
 *
 * A node is "in sync" for a slot when it is the slot's primary or in its
 * ISR, or when the slot holds no copy at all (there is nothing to sync).
 * Per slot:
 *
 *  - When every copy of the target is in sync (this includes an unchanged
 *    slot and an empty one), the step is the target: its primary (in sync,
 *    so nothing acknowledged is lost) with the planner's ISR, and copies the
 *    target does not want are dropped now that the ones it wants hold every
 *    acknowledged write.
 *  - Otherwise the step keeps every copy, its primary, its ISR and its slot
 *    epoch, and adds each copy the target wants and the slot lacks as a
 *    replica outside the ISR (the target primary first). The node syncs, its
 *    primary sends `isr add`, and a later step makes the target, primary
 *    change included, take effect. Meanwhile the slot holds more copies than
 *    the replication factor.
 *  - A slot already at NARF_MAX_COPIES (replication 5) that must take one
 *    more gives a copy up first: an unwanted out-of-sync replica, else an
 *    unwanted in-sync one, else the unwanted primary in favour of a wanted
 *    in-sync replica (a handoff when the primary is live, below). Only here
 *    can a step lower a slot's in-sync copies.
 *  - A target with no copy (no eligible node) leaves the slot as it is.
 *
 * So a primary only ever moves to a node in sync, and no step leaves a slot
 * with fewer in-sync copies than min(those it had, the target's copies),
 * except as said for replication 5.
 *
 * Handoffs: a primary is never changed directly while it is live (state up
 * or leaving): the old primary would take writes until it sees the new map
 * while the new one already does. Where the rules above change the primary
 * of such a slot from A to B (B is then in the ISR), the step instead sets
 * move = B and leaves everything else (primary, replicas, ISR, slot epoch)
 * as it is; A stops taking writes for the slot, waits until B has
 * acknowledged everything, and sends `handoff`, whose entry makes B primary
 * and A an in-sync replica. The rest of the target follows in later steps.
 * A slot with a pending move is left as it is until the move completes or
 * is cleared (failover of A, B down or dropped from the ISR).
 *
 * Moves in flight: at most max_moves slots are busy at once, a slot being
 * busy while it has a pending move or a copy outside its ISR (syncing);
 * those already busy count. A slot that would become busy over the bound
 * (a new copy to sync, a swap) waits for a later step, so a large
 * rebalance proceeds in waves and streams a bounded number of slots at a
 * time. A slot whose primary is not live is never held back. A slot whose
 * primary is not live (no primary, or down/removed) changes its primary
 * directly, as nobody takes its writes.
 *
 * No churn: the copies a step appends are the last replicas of their slot,
 * which step 1 of the planner drops first (out-of-sync ones before in-sync
 * ones), so planning again from the step's map sees the slot as it was,
 * asks for the same copies, and they stay until synced instead of being
 * dropped and added again. (A copy can still be dropped unsynced when the
 * target itself moves, say after an ISR drop elsewhere: it costs a sync,
 * never data; tests/unit/test_planner.c measures it.)
 */
unsigned narf_plan_step(const struct narf_map *cur,
                        const struct narf_slot *target,
                        unsigned max_moves,
                        struct narf_slot *step);

/*
 * The leader's target between epochs (plan_cache.c). A move takes tens of
 * epochs; planning from scratch at each costs ~30 ms at 1,000 nodes. So:
 *
 * narf_plan_layout_sig(): a hash of what decides the plan beyond where the
 * copies are: the settings, and each node's id, state and isr_dropped (an
 * ISR drop can change which replica the plan prefers to promote).
 *
 * narf_plan_refresh(): re-derive a target made for an earlier map against
 * cur, as narf_plan() would derive its per-slot fields (the ISR from who is
 * in sync, slot epoch cur->epoch + 1 where the primary changes, lineage,
 * held slots frozen, a pending move seen as done); returns the slots whose
 * target differs from cur->slots. O(slots).
 *
 * narf_plan_cached(): the refreshed target while the layout signature is
 * the one planned for, the last full plan is less than
 * NARF_PLAN_FULL_EPOCHS epochs old and the target is not reached;
 * otherwise (first call, full, signature changed, plan too old, or the
 * refreshed target reached) a full narf_plan(), so 0 is only ever returned
 * by narf_plan() itself: the map settles on its fixed point. The kept
 * target chose its new primaries among copies as they were in sync when it
 * was planned; a fresh plan prefers those in sync now, so when the kept
 * target allows no step the leader asks again with full set. Pure and
 * deterministic given pc.
 */
#define NARF_PLAN_FULL_EPOCHS 8

struct narf_plan_cache {
	bool valid;         /* target holds a plan made for sig */
	uint64_t sig;       /* narf_plan_layout_sig() of that plan's map */
	uint64_t epoch;     /* map epoch of that plan */
	bool refreshed;     /* the last call was served by a refresh */
	uint64_t plans;     /* full plans made */
	uint64_t refreshes; /* epochs served by a refresh */
};
uint64_t narf_plan_layout_sig(const struct narf_map *m);
unsigned narf_plan_refresh(const struct narf_map *cur,
                           struct narf_slot *target);
unsigned narf_plan_cached(const struct narf_map *cur,
                          struct narf_slot *target,
                          struct narf_plan_cache *pc,
                          bool full);

/*
 * The leader's planning round: narf_plan_cached(), then narf_plan_step()
 * into step with the map's `moves` bound (*staged: the slots the step
 * changes; 0 when changed is 0); when a refreshed target allows no step,
 * once more with a full plan. Returns the slots whose target differs from
 * cur.
 */
unsigned narf_plan_next(const struct narf_map *cur,
                        struct narf_slot *target,
                        struct narf_slot *step,
                        struct narf_plan_cache *pc,
                        unsigned *staged);

#endif /* NARF_PLANNER_H */
