/*
 * The leader's duties, run from the coordinator's one cron timer.
 *
 * Every tick polls the Raft role. On the leader whose map is current, the
 * tick takes at most one decision and proposes it as one log entry, then
 * waits for that entry before deciding anything else, so every decision is
 * computed against the map it will apply to. In order of urgency:
 *
 *   1. seed the coordinators table from --members when the map has none;
 *   2. mark down a node unseen for the node timeout (its primaries fail over
 *      in the same entry; a new leader first waits one timeout, as it has no
 *      heartbeat history);
 *   3. bring up a joining node that heartbeats, or a down node that
 *      heartbeats again with the same boot id;
 *   4. mark removed a leaving node that holds no copy any more;
 *   5. when the planner's balanced layout differs from the map, commit the
 *      next safe step towards it (new copies sync before a primary moves to
 *      them or an old copy goes, and a live primary hands its slot over
 *      rather than being replaced: see plan_decision());
 *   6. let a removed node that holds nothing leave the map (node_forget)
 *      once this leader has seen it so for the map's removed_retention_ms
 *      (its own clock, restarted by a new leader: retention only gets
 *      longer).
 *
 * Everything is driven by the committed map plus heartbeats, never by
 * memory of earlier decisions, so a new leader picks up where the old one
 * stopped. Each tick also runs narf_members_cron() (members.c), which
 * brings the Raft configuration to the map's coordinators table; its
 * changes are Raft configuration entries, not map entries, so they do not
 * wait for the decision above.
 */
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "coord.h"
#include "planner.h"
#include "zones.h"

const char *const narf_decision_names[NARF_DECISION_COUNT] = {
        "init",         "node_down", "node_up",
        "node_removed", "assign",    "node_forget"};

int narf_leader_init(struct narf_leader *l)
{
	memset(l, 0, sizeof(*l));
	l->target = calloc(NARF_SLOTS, sizeof(*l->target));
	l->step = calloc(NARF_SLOTS, sizeof(*l->step));
	if (l->target == NULL || l->step == NULL) {
		narf_leader_close(l);
		return NARF_ENOMEM;
	}
	return 0;
}

void narf_leader_close(struct narf_leader *l)
{
	if (l == NULL)
		return;
	narf_hbtab_close(&l->hb);
	free(l->target);
	free(l->step);
	memset(l, 0, sizeof(*l));
}

const struct narf_hb *narf_leader_hb(const struct narf_coord *c, uint32_t node)
{
	return narf_hbtab_find(&c->leader.hb, node);
}

int narf_leader_seen(struct narf_coord *c,
                     uint32_t node,
                     bool beat,
                     uint64_t keys,
                     uint64_t used_memory)
{
	struct narf_hb *hb = narf_hbtab_get(&c->leader.hb, node);

	if (hb == NULL)
		return NARF_ENOMEM;
	hb->last_seen_ms = narf_clock_ms();
	if (beat) {
		/* Joining nodes go up only once they have shown they can reach
		 * the leader on their own. */
		hb->beats++;
		hb->keys = keys;
		hb->used_memory = used_memory;
	}
	return 0;
}

const char *narf_coord_leader_api(const struct narf_coord *c)
{
	uint64_t id = narf_raftnode_leader_id(&c->rn);
	const struct narf_map *m = c->rn.map;

	if (id == 0)
		return NULL;
	for (unsigned i = 0; i < m->n_coords; i++)
		if (m->coords[i].id == id)
			return m->coords[i].api;
	for (unsigned i = 0; i < c->cfg.n_members; i++)
		if (c->cfg.members[i].id == id)
			return c->cfg.members[i].api;
	return NULL;
}

static void cron_cb(uv_timer_t *t)
{
	narf_leader_cron(t->data);
}

void narf_leader_start_cron(struct narf_coord *c)
{
	uv_timer_init(&c->loop, &c->cron);
	c->cron.data = c;
	uv_timer_start(&c->cron, cron_cb, NARF_COORD_CRON_MS,
	               NARF_COORD_CRON_MS);
}

static void leader_proposal_cb(void *data,
                               int err,
                               const struct narf_map_result *res)
{
	struct narf_coord *c = data;

	c->leader.proposing = false;
	if (err == 0 && res->err == 0) {
		c->leader.decisions[c->leader.pending_kind]++;
		if (c->leader.pending_kind == NARF_DECISION_NODE_DOWN)
			c->leader.failover_slots += c->leader.pending_slots;
	}
	/* What this leader remembers of a node that left the map. */
	if (c->leader.pending_kind == NARF_DECISION_NODE_FORGET &&
	    narf_map_node_get(c->rn.map, c->leader.pending_node) == NULL)
		narf_hbtab_remove(&c->leader.hb, c->leader.pending_node);
	/* Take the next decision now rather than a tick later, so several
	 * nodes lost at once are all marked down within milliseconds. */
	if (!c->closing)
		uv_timer_start(&c->cron, cron_cb, 0, NARF_COORD_CRON_MS);
	if (err != 0)
		NARF_WARN("leader: decision not applied: %s",
		          narf_strerror(err));
	else if (res->err == NARF_ESTALE)
		/* An isr entry from a data node got in first: plan again. */
		NARF_INFO("leader: decision overtaken: %s", res->errmsg);
	else if (res->err != 0)
		NARF_WARN("leader: decision rejected: %s", res->errmsg);
}

/*
 * Age of a node's last sign of life, counted from when this member became
 * leader plus one reply timeout at the earliest. A new leader has no
 * heartbeat history, and a node may have been waiting on the old leader
 * when it was elected: it gives up within the reply timeout and finds us
 * (membership.h), so it gets that long on top of the node timeout. Every
 * lease the old leader granted ends within a node timeout of our election
 * (docs/safety.md), so waiting longer only costs failover time.
 */
static uint64_t silence_ms(const struct narf_coord *c,
                           uint32_t node,
                           uint64_t now)
{
	const struct narf_hb *hb = narf_leader_hb(c, node);
	uint64_t since =
	        c->leader.since_ms +
	        narf_reply_timeout_ms(c->rn.map->settings.node_timeout_ms);

	if (hb != NULL && hb->last_seen_ms > since)
		since = hb->last_seen_ms;
	return now > since ? now - since : 0;
}

/* From the map's derived counts: O(log nodes). */
static bool node_holds_copies(const struct narf_map *m, uint32_t id)
{
	const struct narf_map_node *n = narf_map_node_get(m, id);

	return n != NULL && n->primaries + n->replicas + n->moves_in != 0;
}

/* A node_state entry bound to the incarnation it was decided for: if the
 * node re-joined meanwhile, the FSM refuses it. */
static json_t *state_cmd(const struct narf_map_node *n, enum narf_node_state st)
{
	json_t *cmd = narf_cmd_node_state(n->id, st);

	if (cmd != NULL)
		json_object_set_new(cmd, "boot_id", json_string(n->boot_id));
	return cmd;
}

/* Remember when this leader marked a node down and how many slots it led
 * then (they fail over in that entry), for status: "node 4 down for 12 s:
 * 5461 slots failed over". Memory only, like heartbeats: a new leader
 * does not know. */
static void note_down(struct narf_coord *c, uint32_t node, uint64_t now)
{
	struct narf_hb *hb = narf_hbtab_find(&c->leader.hb, node);
	unsigned primaries = 0, replicas = 0;

	if (hb == NULL)
		return;
	narf_map_node_counts(c->rn.map, node, &primaries, &replicas);
	hb->down_ms = now;
	hb->down_primaries = primaries;
}

/* Steps 2 to 4 of the header: one node state change, or NULL. */
static json_t *node_decision(struct narf_coord *c, uint64_t now)
{
	const struct narf_map *m = c->rn.map;
	uint64_t timeout = m->settings.node_timeout_ms;

	/* A drained leaving node is removed before its silence is judged:
	 * stopping it once drained must not leave it "down" for ever. */
	for (unsigned i = 0; i < m->n_nodes; i++) {
		const struct narf_map_node *n = &m->nodes[i];

		if (n->state == NARF_NODE_LEAVING &&
		    !node_holds_copies(m, n->id)) {
			NARF_INFO("leader: node %u (%s) drained: removed",
			          n->id, n->addr);
			c->leader.pending_kind = NARF_DECISION_NODE_REMOVED;
			return state_cmd(n, NARF_NODE_REMOVED);
		}
	}
	for (unsigned i = 0; i < m->n_nodes; i++) {
		const struct narf_map_node *n = &m->nodes[i];
		uint64_t quiet = silence_ms(c, n->id, now);
		bool live = n->state == NARF_NODE_JOINING ||
		            n->state == NARF_NODE_UP ||
		            n->state == NARF_NODE_LEAVING;

		if (live && quiet > timeout) {
			unsigned replicas;

			NARF_WARN(
			        "leader: node %u (%s) unseen for %llu ms: "
			        "marking it down",
			        n->id, n->addr, (unsigned long long)quiet);
			c->leader.pending_kind = NARF_DECISION_NODE_DOWN;
			narf_map_node_counts(m, n->id, &c->leader.pending_slots,
			                     &replicas);
			note_down(c, n->id, now);
			return state_cmd(n, NARF_NODE_DOWN);
		}
	}
	for (unsigned i = 0; i < m->n_nodes; i++) {
		const struct narf_map_node *n = &m->nodes[i];
		const struct narf_hb *hb = narf_leader_hb(c, n->id);
		bool beating = hb != NULL && hb->beats > 0 &&
		               now - hb->last_seen_ms <= timeout;

		if ((n->state == NARF_NODE_JOINING ||
		     n->state == NARF_NODE_DOWN) &&
		    beating) {
			NARF_INFO("leader: node %u (%s) heartbeats: up", n->id,
			          n->addr);
			c->leader.pending_kind = NARF_DECISION_NODE_UP;
			return state_cmd(n, NARF_NODE_UP);
		}
	}
	return NULL;
}

static bool any_node_up(const struct narf_map *m)
{
	for (unsigned i = 0; i < m->n_nodes; i++)
		if (m->nodes[i].state == NARF_NODE_UP)
			return true;
	return false;
}

/*
 * Step 5: an assign entry for the next safe step towards the planner's
 * balanced layout, or NULL when there is none. The planner says where to go;
 * narf_plan_step() (planner.h) says how far the map may go now that slots
 * hold data: a new copy first joins as a replica outside the ISR and syncs,
 * a primary moves only to a node in sync, and a copy is dropped only once
 * the copies that replace it are in sync. What must wait for a sync is
 * picked up when the primary's `isr add` entry moves the epoch. A live
 * primary is not replaced by the assign: the slot gets a pending move, and
 * the primary's `handoff` entry (which moves the epoch too) switches it.
 */
static json_t *plan_decision(struct narf_coord *c)
{
	struct narf_leader *l = &c->leader;
	const struct narf_map *m = c->rn.map;
	bool take[NARF_SLOTS];
	unsigned changed, staged, moves = 0;

	if (l->idle_epoch == m->epoch && m->epoch != 0)
		return NULL;
	/* With no node up, a plan could only take copies away (a leaving
	 * node's last copies, say): keep the map as it is and wait for one. */
	if (!any_node_up(m))
		return NULL;
	changed =
	        narf_plan_next(m, l->target, l->step, &l->plan_cache, &staged);
	l->plan_remaining = changed;
	l->plan_epoch = m->epoch;
	if (changed > l->plan_total)
		l->plan_total = changed;
	if (changed == 0) {
		l->plan_total = 0;
		l->idle_epoch = m->epoch;
		return NULL;
	}
	if (staged == 0) {
		NARF_INFO(
		        "leader: %u slots to rebalance wait for new copies "
		        "to sync or for handoffs (epoch %llu)",
		        changed, (unsigned long long)m->epoch);
		l->idle_epoch = m->epoch;
		return NULL;
	}
	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		take[s] = !narf_slot_equal(&l->step[s], &m->slots[s]);
		moves += take[s] && l->step[s].move != 0;
	}
	NARF_INFO(
	        "leader: rebalancing: %u slots change now (%u handed over "
	        "by their primaries), %u to go (epoch %llu)",
	        staged, moves, changed, (unsigned long long)m->epoch);
	l->pending_kind = NARF_DECISION_ASSIGN;
	return narf_cmd_assign(m->epoch, l->step, take);
}

/*
 * Step 6: note since when each removed node that holds nothing has been
 * so (every tick, whatever else is decided), and return the first whose
 * retention is over, or 0. O(nodes), with a table lookup per removed one.
 */
static uint32_t forget_due(struct narf_coord *c, uint64_t now)
{
	const struct narf_map *m = c->rn.map;
	uint64_t keep = m->settings.removed_retention_ms;
	uint32_t due = 0;

	for (unsigned i = 0; i < m->n_nodes; i++) {
		const struct narf_map_node *n = &m->nodes[i];
		struct narf_hb *hb;

		if (n->state != NARF_NODE_REMOVED || narf_map_node_holds(n) ||
		    (hb = narf_hbtab_get(&c->leader.hb, n->id)) == NULL)
			continue;
		if (hb->removed_ms == 0)
			hb->removed_ms = now;
		else if (due == 0 && keep != 0 && now - hb->removed_ms >= keep)
			due = n->id;
	}
	return due;
}

static json_t *forget_decision(struct narf_coord *c, uint32_t node)
{
	const struct narf_map_node *n = narf_map_node_get(c->rn.map, node);

	NARF_INFO("leader: node %u (%s) removed for %u ms: leaves the map",
	          node, n != NULL ? n->addr : "?",
	          c->rn.map->settings.removed_retention_ms);
	c->leader.pending_kind = NARF_DECISION_NODE_FORGET;
	c->leader.pending_node = node;
	return narf_cmd_node_forget(node);
}

static json_t *next_decision(struct narf_coord *c, uint64_t now)
{
	const struct narf_map *m = c->rn.map;
	uint32_t forget;
	json_t *cmd;

	/* A member started with --join has no --members: it only leads once
	 * it holds the map, whose init entry came from the first leader. */
	if (m->n_coords == 0 && c->cfg.n_members == 0)
		return NULL;
	if (m->n_coords == 0) {
		NARF_INFO("leader: initialising the map of a new cluster");
		c->leader.pending_kind = NARF_DECISION_INIT;
		return narf_cmd_init(c->cfg.members, c->cfg.n_members,
		                     &c->cfg.settings);
	}
	forget = forget_due(c, now);
	cmd = node_decision(c, now);
	if (cmd == NULL)
		cmd = plan_decision(c);
	if (cmd == NULL && forget != 0)
		cmd = forget_decision(c, forget);
	return cmd;
}

void narf_leader_cron(struct narf_coord *c)
{
	struct narf_leader *l = &c->leader;
	uint64_t now = narf_clock_ms();
	struct narf_hb *hb;
	json_t *cmd;
	int rv;

	/* A loop stall (a flood of requests, a paused process) delays the
	 * reading of heartbeats as much as the cron: do not count it
	 * against the nodes. */
	if (l->last_tick_ms != 0 &&
	    now - l->last_tick_ms > 4 * NARF_COORD_CRON_MS) {
		uint64_t stall = now - l->last_tick_ms - NARF_COORD_CRON_MS;

		NARF_WARN(
		        "leader: loop stalled %llu ms; extending node "
		        "deadlines",
		        (unsigned long long)stall);
		/* Never into the future: a beat read just before this tick
		 * is already fresh (an unsigned age would wrap). */
		for (unsigned pos = 0; (hb = narf_hbtab_next(&l->hb, &pos));) {
			if (hb->last_seen_ms == 0)
				continue; /* never seen (a removed node) */
			hb->last_seen_ms += stall;
			if (hb->last_seen_ms > now)
				hb->last_seen_ms = now;
		}
		if (l->since_ms != 0) {
			l->since_ms += stall;
			if (l->since_ms > now)
				l->since_ms = now;
		}
	}
	l->last_tick_ms = now;
	if (narf_raftnode_poll(&c->rn)) {
		/* Heartbeat history does not survive a role change: a new
		 * leader starts every node's clock at its election. */
		narf_hbtab_clear(&l->hb);
		l->idle_epoch = 0;
		/* Nor does the last plan: status says "planning" until this
		 * member plans the current map. */
		l->plan_epoch = 0;
		l->plan_cache.valid = false;
		l->since_ms = narf_raftnode_is_leader(&c->rn) ? now : 0;
	}
	narf_members_cron(c);
	if (!narf_raftnode_is_ready(&c->rn) || l->proposing)
		return;
	cmd = next_decision(c, now);
	if (cmd == NULL)
		return;
	rv = narf_raftnode_propose(&c->rn, cmd, 0, leader_proposal_cb, c);
	json_decref(cmd);
	if (rv == 0)
		l->proposing = true;
	else
		NARF_WARN("leader: cannot propose: %s", narf_strerror(rv));
}

/* --- status -------------------------------------------------------------- */

static json_t *coordinators_status(struct narf_coord *c)
{
	const struct narf_map *m = c->rn.map;
	const struct narf_map_coord *list =
	        m->n_coords ? m->coords : c->cfg.members;
	unsigned n = m->n_coords ? m->n_coords : c->cfg.n_members;
	json_t *arr = json_array();

	for (unsigned i = 0; arr && i < n; i++) {
		bool self = list[i].id == c->cfg.id;
		bool reachable =
		        narf_raftnode_member_reachable(&c->rn, list[i].id);
		const char *role = self        ? narf_raftnode_role_name(&c->rn)
		                   : reachable ? "follower"
		                               : "unknown";

		json_array_append_new(
		        arr, json_pack("{s:I,s:s,s:s,s:s,s:b}", "id",
		                       (json_int_t)list[i].id, "api",
		                       list[i].api, "raft", list[i].raft,
		                       "role", role, "reachable", reachable));
	}
	return arr;
}

static json_t *nodes_status(struct narf_coord *c, uint64_t now)
{
	const struct narf_map *m = c->rn.map;
	json_t *arr = json_array();

	for (unsigned i = 0; arr && i < m->n_nodes; i++) {
		const struct narf_map_node *n = &m->nodes[i];
		const struct narf_hb *hb = narf_leader_hb(c, n->id);
		unsigned primaries = n->primaries, replicas = n->replicas;
		json_t *o;

		o = json_pack("{s:I,s:s,s:s,s:i,s:i,s:I,s:I}", "id",
		              (json_int_t)n->id, "addr", n->addr, "state",
		              narf_node_state_name(n->state), "primaries",
		              (int)primaries, "replicas", (int)replicas, "keys",
		              (json_int_t)(hb ? hb->keys : 0), "used_memory",
		              (json_int_t)(hb ? hb->used_memory : 0));
		if (o != NULL)
			json_object_set_new(o, "zone", json_string(n->zone));
		if (o != NULL && hb != NULL && hb->last_seen_ms != 0)
			json_object_set_new(
			        o, "last_seen_ms",
			        json_integer(
			                (json_int_t)(now - hb->last_seen_ms)));
		if (o != NULL && hb != NULL && hb->down_ms != 0 &&
		    n->state == NARF_NODE_DOWN) {
			json_object_set_new(
			        o, "down_ms",
			        json_integer((json_int_t)(now - hb->down_ms)));
			json_object_set_new(
			        o, "down_primaries",
			        json_integer((json_int_t)hb->down_primaries));
		}
		json_array_append_new(arr, o);
	}
	return arr;
}

/* The slot counters, from the map's derived counts: O(nodes). */
static json_t *slots_status(const struct narf_map *m)
{
	const struct narf_map_counts *k = &m->counts;
	unsigned under = 0;

	/* Fewer in-sync copies than the factor: a copy short of the
	 * replication factor, or one that has not synced yet. */
	for (unsigned i = 0; i <= NARF_MAX_COPIES; i++)
		if (i < m->settings.replication)
			under += k->by_isr[i];
	/* moving: pending handoffs; syncing: slots with a replica outside
	 * the ISR (a new copy, the one it replaces kept until then); held:
	 * waiting for an in-sync copy to come back (on_lost wait). */
	return json_pack(
	        "{s:i,s:i,s:i,s:i,s:i,s:I,s:i}", "assigned", (int)k->assigned,
	        "unassigned", (int)(NARF_SLOTS - k->assigned), "moving",
	        (int)k->moving, "under_replicated", (int)under, "syncing",
	        (int)k->syncing, "lost", (json_int_t)m->lost_slots, "held",
	        (int)narf_map_held_slots(m));
}

/* Add how far x is below lo to *below, and above hi to *above. */
static void outside(unsigned x,
                    unsigned lo,
                    unsigned hi,
                    unsigned *below,
                    unsigned *above)
{
	*below += x < lo ? lo - x : 0;
	*above += x > hi ? x - hi : 0;
}

static unsigned max_u(unsigned a, unsigned b)
{
	return a > b ? a : b;
}

/*
 * The map as the planner's shares judge it, from the derived counts in
 * O(nodes): *balanced when no slot is busy (a pending handoff, a copy
 * syncing), none is unassigned or held, no node other than an up one
 * holds a copy, and every up node holds its share of primaries and of
 * copies, to within the one the planner's rounding allows. *lower is a
 * lower bound of the slots that must still change (at least 1 when not
 * balanced): changing one slot moves one primary, and at most c copies,
 * from one node to another.
 */
static void judge_balance(const struct narf_map *m,
                          bool *balanced,
                          unsigned *lower)
{
	const struct narf_map_counts *k = &m->counts;
	unsigned up = 0, c, away = 0;
	unsigned pbelow = 0, pabove = 0, cbelow = 0, cabove = 0;
	bool zoned;

	for (unsigned i = 0; i < m->n_nodes; i++)
		up += m->nodes[i].state == NARF_NODE_UP;
	c = m->settings.replication < up ? m->settings.replication : up;
	/* Zones that change the shares of copies (zones.h): the copies per
	 * node are then not judged here, only by the planner. */
	zoned = narf_zones_bind(m);
	for (unsigned i = 0; up > 0 && i < m->n_nodes; i++) {
		const struct narf_map_node *n = &m->nodes[i];
		unsigned copies = n->primaries + n->replicas;
		unsigned plo = NARF_SLOTS / up, clo = NARF_SLOTS * c / up;

		if (n->state != NARF_NODE_UP) {
			away += copies;
			continue;
		}
		outside(n->primaries, plo, plo + (NARF_SLOTS % up != 0),
		        &pbelow, &pabove);
		if (!zoned)
			outside(copies, clo, clo + (NARF_SLOTS * c % up != 0),
			        &cbelow, &cabove);
	}
	*lower = max_u(pbelow, pabove);
	if (c > 0) {
		*lower = max_u(*lower, (max_u(cbelow, cabove) + c - 1) / c);
		*lower = max_u(*lower, (away + c - 1) / c);
	}
	if (up > 0)
		*lower = max_u(*lower, NARF_SLOTS - k->assigned);
	*balanced = up > 0 && *lower == 0 && away == 0 && k->moving == 0 &&
	            k->syncing == 0 && narf_map_held_slots(m) == 0;
	if (!*balanced && *lower == 0)
		*lower = 1;
}

/*
 * rebalance: slots whose layout still differs from the balanced one
 * (remaining) out of the most seen since the map was last balanced
 * (total). remaining is the last plan's count when this leader planned
 * the current map; between planning rounds (a node just up, an entry just
 * applied, a new leader) it is "planning", and remaining is at least what
 * the counts show must still move, never 0 for a map that is not balanced.
 * waiting_nodes: joining nodes, placed once they are up.
 */
unsigned narf_leader_remaining(const struct narf_coord *c,
                               bool *planning,
                               bool *balanced)
{
	const struct narf_leader *l = &c->leader;
	const struct narf_map *m = c->rn.map;
	unsigned remaining = l->plan_remaining, lower;

	judge_balance(m, balanced, &lower);
	*planning = l->plan_epoch != m->epoch && any_node_up(m);
	if (*planning && remaining < lower)
		remaining = lower;
	if (*balanced && *planning)
		remaining = 0;
	*balanced = *balanced && remaining == 0;
	return remaining;
}

static json_t *rebalance_status(const struct narf_coord *c)
{
	const struct narf_map *m = c->rn.map;
	unsigned total = c->leader.plan_total, remaining, waiting = 0;
	bool balanced, planning;

	remaining = narf_leader_remaining(c, &planning, &balanced);
	for (unsigned i = 0; i < m->n_nodes; i++)
		waiting += m->nodes[i].state == NARF_NODE_JOINING;
	if (total < remaining)
		total = remaining;
	return json_pack("{s:i,s:i,s:b,s:b,s:i}", "remaining", (int)remaining,
	                 "total", (int)total, "planning", planning, "balanced",
	                 balanced, "waiting_nodes", (int)waiting);
}

json_t *narf_leader_status(struct narf_coord *c)
{
	const struct narf_map *m = c->rn.map;
	uint64_t now = narf_clock_ms();
	struct narf_zones_status z;
	json_t *st;

	if (narf_zones_status(m, &z) != 0)
		return NULL;
	st = json_pack("{s:I,s:I,s:I,s:i,s:i,s:o,s:o,s:o,s:o,s:o,s:o}",
	               "leader", (json_int_t)narf_raftnode_leader_id(&c->rn),
	               "term", (json_int_t)narf_raftnode_term(&c->rn), "epoch",
	               (json_int_t)m->epoch, "replication",
	               (int)m->settings.replication, "node_timeout_ms",
	               (int)m->settings.node_timeout_ms, "coordinators",
	               coordinators_status(c), "nodes", nodes_status(c, now),
	               "slots", slots_status(m), "rebalance",
	               rebalance_status(c), "zones", z.zones, "warnings",
	               z.warnings);
	/* slots with two copies in one zone, while the zones allow none */
	if (st != NULL)
		json_object_set_new(json_object_get(st, "slots"), "zone_shared",
		                    json_integer((json_int_t)z.zone_shared));
	return st;
}
