/*
 * A coordinator at rest: see coord_fixture.h.
 *
 * libraft keeps the role's state in a union (a follower's leader, a
 * leader's progress per server), so every role change clears it and fills
 * in what that role's readers look at. One fixture at a time: the
 * leader's progress array is static.
 */
#include "coord_fixture.h"

#include <stdlib.h>
#include <string.h>

#include "common/clock.h"

/* The follower's leader, known to the coordinator by its flags. */
#define OTHER_ID 2
#define OTHER_RAFT "127.0.0.1:7102"
#define OTHER_API "127.0.0.1:7002"
/* libraft's clock as the fixture's Raft I/O reads it (ms). */
#define RAFT_NOW 1000000

static struct raft_progress progress[NARF_MAX_COORDS + 2];

static raft_time fixture_time(struct raft_io *io)
{
	(void)io;
	return RAFT_NOW;
}

int fixture_init(struct narf_coord *c)
{
	struct narf_raftnode *rn = &c->rn;
	struct narf_map_coord *self = &c->cfg.members[0];
	struct narf_map_result res;
	json_t *cmd;
	int rv;

	memset(c, 0, sizeof(*c));
	memset(progress, 0, sizeof(progress));
	c->cfg.id = FIXTURE_ID;
	*self = (struct narf_map_coord){FIXTURE_ID, FIXTURE_RAFT, FIXTURE_API};
	c->cfg.members[1] =
	        (struct narf_map_coord){OTHER_ID, OTHER_RAFT, OTHER_API};
	c->cfg.n_members = 2;
	c->cfg.self = self;
	c->cfg.election_timeout_ms = FIXTURE_ELECTION_MS;
	c->cfg.heartbeat_timeout_ms = FIXTURE_ELECTION_MS / 4;
	narf_map_settings_default(&c->cfg.settings);
	rv = narf_auth_keys_from_text(&c->cfg.keys, FIXTURE_SECRET,
	                              strlen(FIXTURE_SECRET), NULL);
	if (rv != 0)
		return rv;
	if (narf_leader_init(&c->leader) != 0)
		return NARF_ENOMEM;
	rn->map = malloc(sizeof(*rn->map));
	if (rn->map == NULL)
		goto err_after_leader;
	narf_map_init(rn->map, &c->cfg.settings);
	if (narf_ring_init(&rn->ring, FIXTURE_RING_ENTRIES,
	                   FIXTURE_RING_BYTES) != 0)
		goto err_after_map;
	cmd = narf_cmd_init(self, 1, &c->cfg.settings);
	rv = cmd ? narf_map_apply(rn->map, cmd, &res) : NARF_ENOMEM;
	json_decref(cmd);
	if (rv != 0)
		goto err_after_map;
	/* as if restored from a snapshot at the init entry */
	narf_ring_reset(&rn->ring, rn->map->epoch);
	rn->io.time = fixture_time;
	rn->raft.io = &rn->io;
	rn->raft.id = FIXTURE_ID;
	rn->raft.address = (char *)FIXTURE_RAFT;
	rn->raft.election_timeout = FIXTURE_ELECTION_MS;
	rn->raft.heartbeat_timeout = FIXTURE_ELECTION_MS / 4;
	rn->leader_since_ms = RAFT_NOW;
	raft_configuration_init(&rn->raft.configuration);
	if (fixture_add_member(c, FIXTURE_ID, FIXTURE_RAFT, true, true) != 0)
		goto err_after_conf;
	fixture_set_role(c, FIXTURE_READY, true);
	return 0;
err_after_conf:
	raft_configuration_close(&rn->raft.configuration);
err_after_map:
	narf_ring_close(&rn->ring);
	narf_map_close(rn->map);
	free(rn->map);
	rn->map = NULL;
err_after_leader:
	narf_leader_close(&c->leader);
	return NARF_ENOMEM;
}

void fixture_close(struct narf_coord *c)
{
	raft_configuration_close(&c->rn.raft.configuration);
	narf_map_close(c->rn.map);
	free(c->rn.map);
	c->rn.map = NULL;
	narf_blob_unref(c->full);
	c->full = NULL;
	narf_ring_close(&c->rn.ring);
	narf_leader_close(&c->leader);
}

void fixture_set_role(struct narf_coord *c, enum fixture_role role, bool leads)
{
	struct raft *r = &c->rn.raft;

	memset(&r->follower_state, 0, sizeof(r->follower_state));
	memset(&r->candidate_state, 0, sizeof(r->candidate_state));
	memset(&r->leader_state, 0, sizeof(r->leader_state));
	r->current_term = 1;
	c->rn.ready_term = 0;
	switch (role) {
	case FIXTURE_READY:
	case FIXTURE_NOT_READY:
		r->state = RAFT_LEADER;
		r->leader_state.progress = progress;
		c->rn.ready_term = role == FIXTURE_READY ? 1 : 0;
		break;
	case FIXTURE_FOLLOWER:
		r->state = RAFT_FOLLOWER;
		r->follower_state.current_leader.id = OTHER_ID;
		r->follower_state.current_leader.address = (char *)OTHER_RAFT;
		break;
	case FIXTURE_CANDIDATE:
		r->state = RAFT_CANDIDATE;
		break;
	}
	c->rn.role = r->state;
	c->rn.proof_term = leads && r->state == RAFT_LEADER ? 1 : 0;
	c->rn.proof_ms = narf_clock_ms();
}

int fixture_add_member(struct narf_coord *c,
                       uint64_t id,
                       const char *raft,
                       bool voter,
                       bool heard)
{
	struct narf_raftnode *rn = &c->rn;
	struct raft_configuration *conf = &rn->raft.configuration;

	if (conf->n >= sizeof(progress) / sizeof(progress[0]) ||
	    raft_configuration_add(conf, id, raft,
	                           voter ? RAFT_VOTER : RAFT_SPARE) != 0)
		return NARF_ENOMEM;
	progress[conf->n - 1] = (struct raft_progress){.recent_recv = heard};
	if (heard &&
	    rn->n_contact < sizeof(rn->contact) / sizeof(rn->contact[0]))
		rn->contact[rn->n_contact++] =
		        (struct narf_raft_contact){id, RAFT_NOW};
	return 0;
}

void fixture_clear_members(struct narf_coord *c)
{
	raft_configuration_close(&c->rn.raft.configuration);
	raft_configuration_init(&c->rn.raft.configuration);
	c->rn.n_contact = 0;
	memset(progress, 0, sizeof(progress));
}

void fixture_set_changing(struct narf_coord *c, bool changing)
{
	c->rn.raft.configuration_uncommitted_index = changing ? 7 : 0;
}

int fixture_apply(struct narf_coord *c,
                  const json_t *cmd,
                  struct narf_map_result *res)
{
	/* Every command moves the applied index, as in the FSM: the API's
	 * cached map JSON and digest are keyed on it. */
	int rv;

	c->rn.cmd_applied++;
	c->rn.cmd_count++;
	rv = narf_map_apply(c->rn.map, cmd, res);
	/* and, as fsm_apply(), keep an entry that moved the epoch for
	 * deltas, as the compact text raftnode proposes */
	if (rv == 0 && res->changed) {
		char *text = json_dumps(cmd, JSON_COMPACT);

		if (text == NULL)
			return NARF_ENOMEM;
		narf_ring_push(&c->rn.ring, c->rn.map->epoch, text,
		               strlen(text));
		free(text);
	}
	return rv;
}

/* Apply a built command (stolen); 0 or its error. */
static int apply_built(struct narf_coord *c,
                       json_t *cmd,
                       struct narf_map_result *res)
{
	int rv = cmd ? fixture_apply(c, cmd, res) : NARF_ENOMEM;

	json_decref(cmd);
	return rv;
}

/* main.c's, which the fixture does not link: removal.c (linked through
 * members.c) stops a removed member. Nothing here runs its cron. */
void narf_coord_stop(struct narf_coord *c, const char *why)
{
	(void)why;
	c->closing = true;
}

uint32_t fixture_node(struct narf_coord *c,
                      const char *addr,
                      const char *boot,
                      enum narf_node_state state)
{
	struct narf_map_result res;
	uint32_t id;
	int rv;

	if (apply_built(c, narf_cmd_node_join(addr, boot), &res) != 0)
		return 0;
	id = res.node;
	if (state == NARF_NODE_JOINING)
		return id;
	rv = apply_built(c, narf_cmd_node_state(id, NARF_NODE_UP), &res);
	if (rv == 0 && state == NARF_NODE_DOWN)
		rv = apply_built(c, narf_cmd_node_state(id, NARF_NODE_DOWN),
		                 &res);
	if (rv == 0 &&
	    (state == NARF_NODE_LEAVING || state == NARF_NODE_REMOVED))
		rv = apply_built(c, narf_cmd_leave(id, false), &res);
	if (rv == 0 && state == NARF_NODE_REMOVED)
		rv = apply_built(c, narf_cmd_node_state(id, NARF_NODE_REMOVED),
		                 &res);
	return rv == 0 ? id : 0;
}
