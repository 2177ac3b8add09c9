/*
 * Coordinator membership changes (members.h for the order of the steps,
 * docs/coordinators.md for the operator's side).
 *
 * Happy path of a replace: cachecli sends coord_replace to the leader, which
 * checks it and proposes one coords_set entry with the new member in the
 * old one's place; the reply goes out once it applied. From then on the
 * leader's cron compares the table with the Raft configuration every tick
 * and starts the next change (narf_members_plan()) whenever none is in
 * flight: remove the dead member, add the new one as a spare, promote it
 * to voter (libraft lets it catch up from a snapshot and the log first).
 * cachecli polls `coords` until the configuration matches the table.
 *
 * Failure modes: a change whose leader steps down may still commit, and a
 * failed one may have committed anyway (libraft 0.15), so nothing is
 * retried from memory: the next tick plans again from the configuration,
 * after a pause of RETRY_MS when the last change failed. A new leader plans
 * from the same committed table and goes on. A promotion of a member that
 * never catches up (not running, wrong address) fails after libraft's
 * catch-up bound and is tried again; the operator can take such a member
 * out of the table with coord_remove even while it is in flight. A removed
 * member is never told: removal.c is how it finds out and stops.
 */
#include "members.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "coord.h"

#define RETRY_MS 1000
/* A member silent for this many election timeouts counts as dead. */
#define UNREACHABLE_TIMEOUTS 3
#define MAX_ID 1000000 /* as coord --id */

/* --- the leader's side --------------------------------------------------- */

static uint64_t unreachable_ms(const struct narf_coord *c)
{
	return (uint64_t)UNREACHABLE_TIMEOUTS * c->cfg.election_timeout_ms;
}

/*
 * libraft marks a member "heard" (recent_recv) when a message arrives and
 * clears the mark once per election timeout, and the cron looks every
 * 50 ms: a live member is seen heard at least every election timeout plus
 * a few heartbeats, while a dead one stays marked until the next clearing.
 * So "answers" means heard within an election timeout plus four
 * heartbeats, "dead" means silent for UNREACHABLE_TIMEOUTS election
 * timeouts, and in between the plan waits rather than guess.
 */
static enum narf_reach reach_of(const struct narf_coord *c, uint64_t id)
{
	uint64_t age;
	bool heard = narf_raftnode_contact(&c->rn, id, &age);
	uint64_t live_ms =
	        c->cfg.election_timeout_ms + 4ull * c->cfg.heartbeat_timeout_ms;

	if (age > unreachable_ms(c))
		return NARF_REACH_NO;
	return heard && age <= live_ms ? NARF_REACH_YES : NARF_REACH_UNKNOWN;
}

/* The configuration and each server's liveness; returns its size. */
static unsigned read_conf(const struct narf_coord *c,
                          struct narf_raft_member *conf,
                          enum narf_reach *reach)
{
	unsigned n = narf_raftnode_members(&c->rn, conf, NARF_MAX_COORDS + 2);

	if (n > NARF_MAX_COORDS + 2)
		n = NARF_MAX_COORDS + 2;
	for (unsigned i = 0; i < n; i++)
		reach[i] = reach_of(c, conf[i].id);
	return n;
}

/* Does the configuration hold exactly the table, every member a voter? */
static bool conf_matches(const struct narf_coord *c)
{
	const struct narf_map *m = c->rn.map;
	struct narf_raft_member conf[NARF_MAX_COORDS + 2];
	unsigned n = narf_raftnode_members(&c->rn, conf, NARF_MAX_COORDS + 2);

	if (n != m->n_coords)
		return false;
	for (unsigned t = 0; t < m->n_coords; t++)
		if (narf_raftnode_role_of(&c->rn, m->coords[t].id) !=
		    NARF_RAFT_VOTER)
			return false;
	return true;
}

static bool changing(const struct narf_coord *c)
{
	return c->members.proposing || narf_raftnode_changing(&c->rn) ||
	       !conf_matches(c);
}

static void set_step(struct narf_members *ms, const char *why)
{
	if (strcmp(ms->step, why) != 0 && why[0] != '\0')
		NARF_INFO("members: %s", why);
	snprintf(ms->step, sizeof(ms->step), "%s", why);
}

/*
 * A removed member learns that it is unlisted only by applying the table
 * entry, and a follower applies an entry only once a later message from
 * the leader tells it the entry committed; after the removal the leader
 * sends it nothing more. So a member that still answers is removed only
 * once the table has been applied here for a few heartbeats, long enough
 * for the news to reach it, so that its log says why nobody talks to it
 * any more (it stops once it has asked a leader, removal.c).
 */
static bool told_unlisted(const struct narf_coord *c,
                          const struct narf_members_plan *p,
                          uint64_t now)
{
	uint64_t settle = 4ull * c->cfg.heartbeat_timeout_ms;

	return p->step != NARF_STEP_REMOVE ||
	       reach_of(c, p->id) != NARF_REACH_YES ||
	       now - c->members.table_ms >= settle;
}

/* Note when the applied table last changed (a new leader counts from its
 * election: it does not know when its predecessor's table reached the
 * others). */
static void watch_table(struct narf_coord *c, uint64_t now, bool new_leader)
{
	struct narf_members *ms = &c->members;
	const struct narf_map *m = c->rn.map;

	if (!new_leader && ms->n_table == m->n_coords &&
	    memcmp(ms->table, m->coords, m->n_coords * sizeof(ms->table[0])) ==
	            0)
		return;
	memcpy(ms->table, m->coords, m->n_coords * sizeof(ms->table[0]));
	ms->n_table = m->n_coords;
	ms->table_ms = now;
}

/* Start the change the plan asks for; 0 or NARF_E* (rn->errmsg). */
static int start_step(struct narf_coord *c, const struct narf_members_plan *p)
{
	switch (p->step) {
	case NARF_STEP_ADD:
		return narf_raftnode_change(&c->rn, NARF_RAFT_ADD, p->id,
		                            p->raft);
	case NARF_STEP_PROMOTE:
		return narf_raftnode_change(&c->rn, NARF_RAFT_PROMOTE, p->id,
		                            NULL);
	case NARF_STEP_REMOVE:
		return narf_raftnode_change(&c->rn, NARF_RAFT_REMOVE, p->id,
		                            NULL);
	case NARF_STEP_TRANSFER:
		return narf_raftnode_transfer(&c->rn, p->id);
	default:
		return 0;
	}
}

static void leader_step(struct narf_coord *c, uint64_t now)
{
	struct narf_members *ms = &c->members;
	struct narf_raft_member conf[NARF_MAX_COORDS + 2];
	enum narf_reach reach[NARF_MAX_COORDS + 2];
	bool busy = narf_raftnode_changing(&c->rn);
	struct narf_members_plan plan;
	unsigned n;

	/* A change just ended in failure: pause before planning again. */
	if (ms->was_changing && !busy && c->rn.change_errmsg[0] != '\0')
		ms->retry_at_ms = now + RETRY_MS;
	ms->was_changing = busy;
	if (!narf_raftnode_is_ready(&c->rn) || c->rn.map->n_coords == 0 ||
	    busy || now < ms->retry_at_ms)
		return;
	n = read_conf(c, conf, reach);
	narf_members_plan(c->rn.map->coords, c->rn.map->n_coords, conf, reach,
	                  n, c->cfg.id, &plan);
	if (plan.step == NARF_STEP_NONE) {
		if (ms->step[0] != '\0')
			NARF_INFO("members: %s", plan.why);
		ms->step[0] = '\0';
		return;
	}
	if (!told_unlisted(c, &plan, now))
		return;
	set_step(ms, plan.why);
	if (start_step(c, &plan) != 0) {
		NARF_WARN("members: %s", c->rn.errmsg);
		snprintf(c->rn.change_errmsg, sizeof(c->rn.change_errmsg), "%s",
		         c->rn.errmsg);
		ms->retry_at_ms = now + RETRY_MS;
	}
}

void narf_members_cron(struct narf_coord *c)
{
	uint64_t now = uv_now(&c->loop);
	bool leader = narf_raftnode_is_leader(&c->rn);

	if (c->closing)
		return;
	watch_table(c, now, leader && !c->members.was_leader);
	c->members.was_leader = leader;
	if (leader)
		leader_step(c, now);
	else
		c->members.was_changing = false;
	narf_members_removal_cron(c, now);
}

/* --- API ----------------------------------------------------------------- */

/* An error reply (a new reference) with a formatted message. */
static json_t *fail(int err, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static json_t *fail(int err, const char *fmt, ...)
{
	char msg[NARF_ERRMSG_SIZE];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return json_pack("{s:b,s:s,s:s}", "ok", 0, "error", narf_errcode(err),
	                 "message", msg);
}

json_t *narf_members_table_json(const struct narf_coord *c)
{
	const struct narf_map *m = c->rn.map;
	json_t *arr = json_array();

	for (unsigned i = 0; arr && i < m->n_coords; i++)
		json_array_append_new(
		        arr,
		        json_pack("{s:I,s:s,s:s}", "id",
		                  (json_int_t)m->coords[i].id, "raft",
		                  m->coords[i].raft, "api", m->coords[i].api));
	return arr;
}

/* The `coords` reply (a new reference): the table with each member's
 * Raft role and liveness, the servers on their way out, and the change in
 * progress. */
static json_t *op_coords(struct narf_coord *c)
{
	const struct narf_map *m = c->rn.map;
	struct narf_raft_member conf[NARF_MAX_COORDS + 2];
	enum narf_reach reach[NARF_MAX_COORDS + 2];
	unsigned n = read_conf(c, conf, reach);
	json_t *table = json_array(), *leaving = json_array(), *r;

	for (unsigned t = 0; table && t < m->n_coords; t++) {
		const struct narf_map_coord *e = &m->coords[t];

		json_array_append_new(
		        table,
		        json_pack("{s:I,s:s,s:s,s:s,s:b}", "id",
		                  (json_int_t)e->id, "raft", e->raft, "api",
		                  e->api, "raft_role",
		                  narf_raft_role_name(
		                          narf_raftnode_role_of(&c->rn, e->id)),
		                  "reachable",
		                  reach_of(c, e->id) == NARF_REACH_YES));
	}
	for (unsigned i = 0; leaving && i < n; i++)
		if (narf_members_find(m->coords, m->n_coords, conf[i].id) ==
		    NULL)
			json_array_append_new(
			        leaving,
			        json_pack("{s:I,s:s,s:s,s:b}", "id",
			                  (json_int_t)conf[i].id, "raft",
			                  conf[i].raft, "raft_role",
			                  narf_raft_role_name(conf[i].role),
			                  "reachable",
			                  reach[i] == NARF_REACH_YES));
	r = json_pack("{s:b,s:I,s:I,s:I,s:o,s:o,s:b}", "ok", 1, "epoch",
	              (json_int_t)m->epoch, "leader", (json_int_t)c->cfg.id,
	              "next_coord", (json_int_t)m->next_coord, "coordinators",
	              table, "leaving", leaving, "changing", changing(c));
	if (r != NULL && c->members.step[0] != '\0' && changing(c))
		json_object_set_new(r, "step", json_string(c->members.step));
	if (r != NULL && c->rn.change_errmsg[0] != '\0')
		json_object_set_new(r, "last_error",
		                    json_string(c->rn.change_errmsg));
	return r;
}

/* Parse a positive id field; 0 when absent or bad. */
static uint64_t id_field(const json_t *req, const char *key)
{
	json_t *v = json_object_get(req, key);

	if (!json_is_integer(v) || json_integer_value(v) < 1 ||
	    json_integer_value(v) > MAX_ID)
		return 0;
	return (uint64_t)json_integer_value(v);
}

/* Read {id, raft, api} of a new member into out and check it against the
 * table (ignoring entry `old`, the member it replaces) and the Raft
 * configuration. Returns an error reply or NULL. */
static json_t *new_member(const struct narf_coord *c,
                          const json_t *req,
                          uint64_t old,
                          struct narf_map_coord *out)
{
	const struct narf_map *m = c->rn.map;
	json_t *id = json_object_get(req, "id");
	const char *raft = json_string_value(json_object_get(req, "raft"));
	const char *api = json_string_value(json_object_get(req, "api"));

	if (!json_is_integer(id) || json_integer_value(id) < 1 ||
	    json_integer_value(id) > MAX_ID)
		return fail(NARF_EINVAL, "id must be an integer from 1 to %d",
		            MAX_ID);
	if (!narf_map_valid_addr(raft) || !narf_map_valid_addr(api))
		return fail(NARF_EINVAL,
		            "raft and api must be \"host:port\" addresses");
	if (strcmp(raft, api) == 0)
		return fail(NARF_EINVAL,
		            "raft and api must be different addresses");
	out->id = (uint64_t)json_integer_value(id);
	snprintf(out->raft, sizeof(out->raft), "%s", raft);
	snprintf(out->api, sizeof(out->api), "%s", api);
	for (unsigned t = 0; t < m->n_coords; t++) {
		const struct narf_map_coord *e = &m->coords[t];

		if (e->id == old)
			continue;
		if (e->id == out->id)
			return fail(NARF_EEXISTS,
			            "coordinator %llu is already a member",
			            (unsigned long long)e->id);
		if (strcmp(e->raft, raft) == 0 || strcmp(e->api, raft) == 0 ||
		    strcmp(e->raft, api) == 0 || strcmp(e->api, api) == 0)
			return fail(NARF_EEXISTS,
			            "an address of %s/%s is already used by "
			            "coordinator %llu (%s/%s)",
			            raft, api, (unsigned long long)e->id,
			            e->raft, e->api);
	}
	if (out->id < m->next_coord ||
	    narf_raftnode_role_of(&c->rn, out->id) != NARF_RAFT_ABSENT)
		return fail(NARF_EEXISTS,
		            "coordinator id %llu was used before and ids are "
		            "never reused: start the new member with --id "
		            "%llu or higher",
		            (unsigned long long)out->id,
		            (unsigned long long)m->next_coord);
	return NULL;
}

/* Is the member that req describes ({id, raft, api}) listed exactly so?
 * Then a retried request (its first try applied, but the reply was lost
 * to a leader change) is done. */
static bool already_listed(const struct narf_map *m, const json_t *req)
{
	const struct narf_map_coord *have =
	        narf_members_find(m->coords, m->n_coords, id_field(req, "id"));
	const char *raft = json_string_value(json_object_get(req, "raft"));
	const char *api = json_string_value(json_object_get(req, "api"));

	return have != NULL && raft != NULL && api != NULL &&
	       strcmp(have->raft, raft) == 0 && strcmp(have->api, api) == 0;
}

static json_t *done_reply(const struct narf_coord *c)
{
	return json_pack("{s:b,s:I,s:o,s:b}", "ok", 1, "epoch",
	                 (json_int_t)c->rn.map->epoch, "coordinators",
	                 narf_members_table_json(c), "done", 1);
}

static json_t *busy_reply(const struct narf_coord *c)
{
	return fail(NARF_ECHANGING,
	            "a coordinator change is in progress (%s): wait until "
	            "'cachecli coord status' shows it done, then retry",
	            c->members.step[0] ? c->members.step : "starting");
}

static json_t *op_add(struct narf_coord *c, const json_t *req, json_t **cmd)
{
	const struct narf_map *m = c->rn.map;
	struct narf_map_coord table[NARF_MAX_COORDS], e;
	json_t *err;

	if (already_listed(m, req))
		return done_reply(c);
	err = new_member(c, req, 0, &e);
	if (err != NULL)
		return err;
	if (m->n_coords == NARF_MAX_COORDS)
		return fail(NARF_EINVAL, "at most %d coordinators",
		            NARF_MAX_COORDS);
	if (changing(c))
		return busy_reply(c);
	memcpy(table, m->coords, m->n_coords * sizeof(table[0]));
	table[m->n_coords] = e;
	NARF_INFO("members: add %llu (raft %s, api %s) asked",
	          (unsigned long long)e.id, e.raft, e.api);
	*cmd = narf_cmd_coords_set(table, m->n_coords + 1);
	return NULL;
}

static json_t *op_remove(struct narf_coord *c, const json_t *req, json_t **cmd)
{
	const struct narf_map *m = c->rn.map;
	struct narf_map_coord table[NARF_MAX_COORDS];
	uint64_t id = id_field(req, "id");
	unsigned n = 0;

	if (id == 0)
		return fail(NARF_EINVAL, "coord_remove needs id, 1 to %d",
		            MAX_ID);
	if (narf_members_find(m->coords, m->n_coords, id) == NULL)
		return fail(NARF_ENOTFOUND,
		            "no coordinator %llu in the table (see "
		            "'cachecli coord status')",
		            (unsigned long long)id);
	if (m->n_coords == 1)
		return fail(NARF_EINVAL, "cannot remove the last coordinator");
	/* Taking out a member that is not a voter yet (an add that cannot
	 * finish: not started, wrong address) is how an operator backs out,
	 * so it is allowed while that change is in flight. */
	if (changing(c) &&
	    (c->members.proposing ||
	     narf_raftnode_role_of(&c->rn, id) == NARF_RAFT_VOTER))
		return busy_reply(c);
	for (unsigned t = 0; t < m->n_coords; t++)
		if (m->coords[t].id != id)
			table[n++] = m->coords[t];
	NARF_INFO("members: remove %llu asked", (unsigned long long)id);
	*cmd = narf_cmd_coords_set(table, n);
	return NULL;
}

static json_t *op_replace(struct narf_coord *c, const json_t *req, json_t **cmd)
{
	const struct narf_map *m = c->rn.map;
	struct narf_map_coord table[NARF_MAX_COORDS], e;
	uint64_t old = id_field(req, "old");
	json_t *err;

	if (old == 0)
		return fail(NARF_EINVAL,
		            "coord_replace needs old, the id to replace");
	if (narf_members_find(m->coords, m->n_coords, old) == NULL) {
		if (old < m->next_coord && already_listed(m, req))
			return done_reply(c);
		return fail(NARF_ENOTFOUND,
		            "no coordinator %llu in the table (see "
		            "'cachecli coord status')",
		            (unsigned long long)old);
	}
	err = new_member(c, req, old, &e);
	if (err != NULL)
		return err;
	if (changing(c))
		return busy_reply(c);
	memcpy(table, m->coords, m->n_coords * sizeof(table[0]));
	for (unsigned t = 0; t < m->n_coords; t++)
		if (table[t].id == old)
			table[t] = e;
	NARF_INFO("members: replace %llu by %llu (raft %s, api %s) asked",
	          (unsigned long long)old, (unsigned long long)e.id, e.raft,
	          e.api);
	*cmd = narf_cmd_coords_set(table, m->n_coords);
	return NULL;
}

json_t *narf_members_request(struct narf_coord *c,
                             const char *op,
                             const json_t *req,
                             json_t **cmd)
{
	json_t *reply;

	*cmd = NULL;
	if (strcmp(op, "coords") == 0)
		return op_coords(c);
	if (strcmp(op, "coord_add") == 0)
		reply = op_add(c, req, cmd);
	else if (strcmp(op, "coord_remove") == 0)
		reply = op_remove(c, req, cmd);
	else
		reply = op_replace(c, req, cmd);
	if (reply == NULL && *cmd == NULL)
		return fail(NARF_ENOMEM, "out of memory");
	if (*cmd != NULL)
		c->members.proposing = true;
	return reply;
}

void narf_members_proposed(struct narf_coord *c)
{
	c->members.proposing = false;
}
