/*
 * The Raft member and its FSM.
 *
 * Happy path: narf_raftnode_propose() encodes the command as compact JSON,
 * pads it with zero bytes to a multiple of 8 in a raft_malloc'd buffer and
 * calls raft_apply(). When the entry commits, libraft calls fsm_apply() on
 * every member; it strips the padding, parses the JSON and runs
 * narf_map_apply(). On the proposing leader libraft then calls apply_cb() in
 * the same call stack, which copies the map's verdict into the proposal and
 * queues it; done_cb(), a uv_check handle, hands it to the proposer after
 * libraft has returned. Proposers never run inside a libraft callback:
 * libraft 0.15 fires failure callbacks half-way through a role change (state
 * still LEADER, progress already freed), where a new raft_apply() or a look
 * at the progress array crashes.
 *
 * Failure modes: raft_apply() failing synchronously (not leader, no memory):
 * we free the buffer and report the error without calling back. Leadership
 * lost or member closing while an entry is in flight: apply_cb() fires with
 * RAFT_LEADERSHIPLOST or RAFT_CANCELED, reported as NARF_ENOTLEADER; the
 * entry may still commit under the next leader, so proposals must be safe to
 * retry (node_join is idempotent per boot id, plans carry base_epoch). A
 * malformed entry never stops the log: fsm_apply() always returns 0.
 */
#include "raftnode.h"

#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"

#define APPLY_WINDOW 64
#define SEGMENT_SIZE (1u << 20)
#define SNAPSHOT_THRESHOLD 1024
#define SNAPSHOT_TRAILING 256
#define INSTALL_SNAPSHOT_TIMEOUT_MS 2000
#define CONNECT_RETRY_MS 100
/* How long a stopping member waits for its entries in flight (see
 * narf_raftnode_close()), and how often it looks. */
#define NARF_RAFT_DRAIN_MS 2000
#define DRAIN_POLL_MS 5
/* A new member that makes no progress catching up for this long is not
 * promoted (the change fails with "no connection" and is tried again):
 * libraft's 5 s default would keep every other change waiting. */
#define MAX_CATCH_UP_ROUND_MS 3000

struct proposal {
	struct raft_apply req; /* req.data points back here */
	struct narf_raftnode *rn;
	narf_propose_cb cb;
	void *data;
	int err;                    /* set when the entry is done */
	struct narf_map_result res; /* the map's verdict, when err == 0 */
	struct proposal *next;      /* in rn->done */
};

/* Hand every finished proposal to its proposer, oldest first. */
static void deliver_done(struct narf_raftnode *rn)
{
	while (rn->done != NULL) {
		struct proposal *p = rn->done;

		rn->done = p->next;
		if (rn->done == NULL)
			rn->done_tail = NULL;
		p->cb(p->data, p->err, p->err == 0 ? &p->res : NULL);
		free(p);
	}
}

static void done_cb(uv_check_t *check)
{
	deliver_done(check->data);
}

/* Payload length of a padded buffer: up to the first of the trailing NULs. */
static size_t unpadded_len(const struct raft_buffer *buf)
{
	size_t n = buf->len;

	while (n > 0 && ((const char *)buf->base)[n - 1] == '\0')
		n--;
	return n;
}

/* Copy text into a zero-padded raft_malloc'd buffer (8-byte multiple). */
static int padded_buffer(const char *text, struct raft_buffer *buf)
{
	size_t n = strlen(text);
	size_t padded = (n + 8) & ~(size_t)7; /* at least one NUL */

	buf->base = raft_malloc(padded);
	if (buf->base == NULL)
		return NARF_ENOMEM;
	memset(buf->base, 0, padded);
	memcpy(buf->base, text, n);
	buf->len = padded;
	return 0;
}

/* Applying an entry must give the same result on every member. A member
 * that runs out of memory mid-apply would reject what the others accept and
 * silently diverge, so it stops instead: on restart it replays the log. */
static void fsm_out_of_memory(void)
{
	NARF_ERROR(
	        "fsm: out of memory while applying an entry: exiting so "
	        "the log is replayed on restart");
	abort();
}

/* The entry in buf moved the map's epoch: keep its text for deltas. A
 * reply carries entries verbatim inside one line, so an entry with a line
 * break (compact JSON has none; only a hand-made log could) empties the
 * ring rather than break the line: nodes behind it get the full map. */
static void ring_push(struct narf_raftnode *rn, const struct raft_buffer *buf)
{
	size_t len = unpadded_len(buf);

	if (memchr(buf->base, '\n', len) != NULL ||
	    memchr(buf->base, '\r', len) != NULL)
		narf_ring_reset(&rn->ring, rn->map->epoch);
	else
		narf_ring_push(&rn->ring, rn->map->epoch, buf->base, len);
}

static int fsm_apply(struct raft_fsm *fsm,
                     const struct raft_buffer *buf,
                     void **result)
{
	struct narf_raftnode *rn = fsm->data;
	struct narf_map_result *res = &rn->last_result;
	json_error_t jerr;
	json_t *cmd;

	memset(res, 0, sizeof(*res));
	*result = res;
	/* libraft sets last_applied after this call returns. */
	rn->cmd_applied = rn->raft.last_applied + 1;
	rn->cmd_count++;
	cmd = json_loadb(buf->base, unpadded_len(buf), 0, &jerr);
	if (cmd == NULL && json_error_code(&jerr) == json_error_out_of_memory)
		fsm_out_of_memory();
	if (cmd == NULL) {
		res->err = NARF_EINVAL;
		snprintf(res->errmsg, sizeof(res->errmsg),
		         "entry is not JSON: %s", jerr.text);
		NARF_ERROR("fsm: skipped undecodable entry: %s", jerr.text);
		return 0;
	}
	narf_map_apply(rn->map, cmd, res);
	if (res->err == NARF_ENOMEM)
		fsm_out_of_memory();
	if (res->changed)
		ring_push(rn, buf);
	if (res->err != 0)
		NARF_INFO("fsm: rejected %s: %s",
		          json_string_value(json_object_get(cmd, "type")),
		          res->errmsg);
	else if (res->changed)
		NARF_DEBUG("fsm: applied %s, epoch %llu",
		           json_string_value(json_object_get(cmd, "type")),
		           (unsigned long long)rn->map->epoch);
	json_decref(cmd);
	return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm,
                        struct raft_buffer *bufs[],
                        unsigned *n_bufs)
{
	struct narf_raftnode *rn = fsm->data;
	json_t *obj = narf_map_to_json(rn->map);
	char *text;
	int rv;

	if (obj == NULL)
		return RAFT_NOMEM;
	json_object_set_new(obj, "v", json_integer(NARF_MAP_VERSION));
	json_object_set_new(obj, "cmd_applied",
	                    json_integer((json_int_t)rn->cmd_applied));
	text = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);
	if (text == NULL)
		return RAFT_NOMEM;
	/* FSM version 1: libraft frees bufs and their bases. */
	*bufs = raft_malloc(sizeof(**bufs));
	if (*bufs == NULL) {
		free(text);
		return RAFT_NOMEM;
	}
	rv = padded_buffer(text, *bufs);
	free(text);
	if (rv != 0) {
		raft_free(*bufs);
		return RAFT_NOMEM;
	}
	*n_bufs = 1;
	NARF_INFO("fsm: snapshot at epoch %llu (%zu bytes)",
	          (unsigned long long)rn->map->epoch, (*bufs)[0].len);
	return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
	struct narf_raftnode *rn = fsm->data;
	char errmsg[NARF_ERRMSG_SIZE];
	json_error_t jerr;
	json_t *obj;
	int rv = 0;

	obj = json_loadb(buf->base, unpadded_len(buf), 0, &jerr);
	if (obj == NULL) {
		NARF_ERROR("fsm: snapshot is not JSON: %s", jerr.text);
		rv = RAFT_CORRUPT;
	} else if (narf_map_from_json(rn->map, obj, errmsg) != 0) {
		NARF_ERROR("fsm: bad snapshot: %s", errmsg);
		rv = RAFT_CORRUPT;
	} else {
		json_t *v = json_object_get(obj, "cmd_applied");

		rn->cmd_applied =
		        json_is_integer(v) && json_integer_value(v) > 0
		                ? (uint64_t)json_integer_value(v)
		                : 0;
		narf_ring_reset(&rn->ring, rn->map->epoch);
		NARF_INFO("fsm: restored snapshot at epoch %llu",
		          (unsigned long long)rn->map->epoch);
	}
	json_decref(obj);
	if (rv == 0)
		raft_free(buf->base); /* restore owns the buffer on success */
	return rv;
}

static void apply_cb(struct raft_apply *req, int status, void *result)
{
	struct proposal *p = req->data;
	struct narf_raftnode *rn = p->rn;

	rn->inflight--;
	if (status != 0) {
		NARF_DEBUG("raft: proposal failed: %s", raft_strerror(status));
		p->err = NARF_ENOTLEADER;
	} else {
		p->res = *(const struct narf_map_result *)result;
	}
	p->next = NULL;
	if (rn->done_tail != NULL)
		rn->done_tail->next = p;
	else
		rn->done = p;
	rn->done_tail = p;
}

int narf_raftnode_propose(struct narf_raftnode *rn,
                          const json_t *cmd,
                          unsigned reserve,
                          narf_propose_cb cb,
                          void *data)
{
	struct raft_buffer buf;
	struct proposal *p;
	char *text;
	int rv;

	if (rn->raft.state != RAFT_LEADER || rn->stopping)
		return NARF_ENOTLEADER;
	if (rn->inflight + reserve >= rn->window)
		return NARF_EBUSY;
	text = json_dumps(cmd, JSON_COMPACT);
	if (text == NULL)
		return NARF_ENOMEM;
	rv = padded_buffer(text, &buf);
	free(text);
	if (rv != 0)
		return rv;
	p = calloc(1, sizeof(*p));
	if (p == NULL) {
		raft_free(buf.base);
		return NARF_ENOMEM;
	}
	p->rn = rn;
	p->cb = cb;
	p->data = data;
	p->req.data = p;
	rv = raft_apply(&rn->raft, &p->req, &buf, 1, apply_cb);
	if (rv != 0) {
		/* On error we still own the buffer. */
		NARF_WARN("raft_apply: %s", raft_strerror(rv));
		raft_free(buf.base);
		free(p);
		return rv == RAFT_NOTLEADER || rv == RAFT_LEADERSHIPLOST
		               ? NARF_ENOTLEADER
		               : NARF_EINTERNAL;
	}
	rn->inflight++;
	return 0;
}

static const char *state_name(int state)
{
	static const char *const names[] = {"unavailable", "follower",
	                                    "candidate", "leader"};

	return (state >= 0 && state <= RAFT_LEADER) ? names[state] : "unknown";
}

static void barrier_cb(struct raft_barrier *req, int status)
{
	struct narf_raftnode *rn = req->data;

	rn->barrier_pending = false;
	/* rn->map is NULL once closed: a callback after that changes nothing.
	 */
	if (status != 0 || rn->map == NULL || rn->raft.state != RAFT_LEADER ||
	    rn->raft.current_term != rn->barrier_term)
		return;
	rn->proof_ms = rn->barrier_sent_ms;
	rn->barrier_ms = narf_clock_ms() - rn->barrier_sent_ms;
	if (rn->barrier_ms > rn->barrier_max_ms)
		rn->barrier_max_ms = rn->barrier_ms;
	rn->proof_term = rn->barrier_term;
	rn->barriers++;
	if (rn->ready_term != rn->raft.current_term) {
		rn->ready_term = rn->raft.current_term;
		NARF_INFO("leader ready: term %llu, epoch %llu",
		          (unsigned long long)rn->ready_term,
		          (unsigned long long)rn->map->epoch);
	}
}

/* Propose the next barrier: the first of a term makes the map current, and
 * every later one renews the majority proof. One at a time; each is a tiny
 * log entry (measured in docs/safety.md). */
static void propose_barrier(struct narf_raftnode *rn)
{
	int rv;

	if (rn->barrier_pending || rn->stopping)
		return;
	rn->barrier.data = rn;
	rn->barrier_sent_ms = narf_clock_ms();
	rn->barrier_term = rn->raft.current_term;
	rv = raft_barrier(&rn->raft, &rn->barrier, barrier_cb);
	if (rv == 0)
		rn->barrier_pending = true;
	else
		NARF_WARN("raft_barrier: %s", raft_strerror(rv));
}

bool narf_raftnode_leads(const struct narf_raftnode *rn,
                         uint64_t now_ms,
                         uint64_t slack_ms,
                         uint64_t *age_ms)
{
	bool proof = rn->raft.state == RAFT_LEADER &&
	             rn->proof_term == rn->raft.current_term &&
	             rn->proof_term != 0;
	uint64_t age = proof && now_ms >= rn->proof_ms ? now_ms - rn->proof_ms
	               : proof                         ? 0
	                                               : UINT64_MAX;

	if (age_ms != NULL)
		*age_ms = age;
	return proof && narf_raftnode_is_ready(rn) &&
	       age < rn->raft.election_timeout / 2 + slack_ms;
}

static uint64_t io_now(const struct narf_raftnode *rn)
{
	return rn->raft.io->time(rn->raft.io);
}

/* Note which members answered within the last election timeout. */
static void track_contact(struct narf_raftnode *rn)
{
	const struct raft_configuration *c = &rn->raft.configuration;
	uint64_t now = io_now(rn);

	for (unsigned i = 0; i < c->n; i++) {
		unsigned k;

		if (!rn->raft.leader_state.progress[i].recent_recv &&
		    c->servers[i].id != rn->raft.id)
			continue;
		for (k = 0; k < rn->n_contact; k++)
			if (rn->contact[k].id == c->servers[i].id)
				break;
		if (k == rn->n_contact) {
			if (k == sizeof(rn->contact) / sizeof(rn->contact[0]))
				continue;
			rn->n_contact++;
			rn->contact[k].id = c->servers[i].id;
		}
		rn->contact[k].last_ms = now;
	}
}

bool narf_raftnode_poll(struct narf_raftnode *rn)
{
	int role = raft_state(&rn->raft);
	bool changed = role != rn->role;

	if (changed) {
		NARF_INFO("raft: role %s -> %s, term %llu",
		          state_name(rn->role), state_name(role),
		          (unsigned long long)rn->raft.current_term);
		rn->role = role;
		rn->n_contact = 0;
		rn->leader_since_ms = io_now(rn);
	}
	if (role != RAFT_LEADER) {
		rn->ready_term = 0;
		return changed;
	}
	track_contact(rn);
	propose_barrier(rn);
	return changed;
}

bool narf_raftnode_is_leader(const struct narf_raftnode *rn)
{
	return rn->raft.state == RAFT_LEADER;
}

bool narf_raftnode_is_ready(const struct narf_raftnode *rn)
{
	/* While a transfer is in flight libraft refuses every apply. */
	return rn->raft.state == RAFT_LEADER &&
	       rn->ready_term == rn->raft.current_term &&
	       rn->raft.transfer == NULL;
}

const char *narf_raftnode_role_name(const struct narf_raftnode *rn)
{
	return state_name(rn->raft.state);
}

uint64_t narf_raftnode_term(const struct narf_raftnode *rn)
{
	return rn->raft.current_term;
}

uint64_t narf_raftnode_applied(const struct narf_raftnode *rn)
{
	return rn->cmd_applied;
}

uint64_t narf_raftnode_commit_index(const struct narf_raftnode *rn)
{
	return rn->raft.commit_index;
}

uint64_t narf_raftnode_last_index(const struct narf_raftnode *rn)
{
	return raft_last_index((struct raft *)&rn->raft);
}

uint64_t narf_raftnode_leader_id(const struct narf_raftnode *rn)
{
	raft_id id = 0;
	const char *addr = NULL;

	raft_leader((struct raft *)&rn->raft, &id, &addr);
	return id;
}

bool narf_raftnode_member_reachable(const struct narf_raftnode *rn, uint64_t id)
{
	const struct raft_configuration *c = &rn->raft.configuration;

	if (id == rn->raft.id)
		return true;
	if (rn->raft.state != RAFT_LEADER)
		return false;
	/* progress[] is indexed like configuration.servers[]. libraft
	 * clears recent_recv at every contact check, so a member that
	 * answered just before a check would read as unreachable until its
	 * next answer: count the contacts track_contact() saw within an
	 * election timeout too. */
	for (unsigned i = 0; i < c->n; i++) {
		uint64_t age;

		if (c->servers[i].id != id)
			continue;
		return rn->raft.leader_state.progress[i].recent_recv ||
		       (narf_raftnode_contact(rn, id, &age) &&
		        age <= rn->raft.election_timeout);
	}
	return false;
}

uint64_t narf_raftnode_id(const struct narf_raftnode *rn)
{
	return rn->raft.id;
}

static enum narf_raft_role role_from_raft(int role)
{
	switch (role) {
	case RAFT_VOTER:
		return NARF_RAFT_VOTER;
	case RAFT_STANDBY:
		return NARF_RAFT_STANDBY;
	default:
		return NARF_RAFT_SPARE;
	}
}

const char *narf_raft_role_name(enum narf_raft_role role)
{
	static const char *const names[] = {"absent", "spare", "standby",
	                                    "voter"};

	return role <= NARF_RAFT_VOTER ? names[role] : "unknown";
}

unsigned narf_raftnode_members(const struct narf_raftnode *rn,
                               struct narf_raft_member *out,
                               unsigned max)
{
	const struct raft_configuration *c = &rn->raft.configuration;

	for (unsigned i = 0; i < c->n && i < max; i++) {
		out[i].id = c->servers[i].id;
		snprintf(out[i].raft, sizeof(out[i].raft), "%s",
		         c->servers[i].address);
		out[i].role = role_from_raft(c->servers[i].role);
	}
	return c->n;
}

enum narf_raft_role narf_raftnode_role_of(const struct narf_raftnode *rn,
                                          uint64_t id)
{
	const struct raft_configuration *c = &rn->raft.configuration;

	for (unsigned i = 0; i < c->n; i++)
		if (c->servers[i].id == id)
			return role_from_raft(c->servers[i].role);
	return NARF_RAFT_ABSENT;
}

bool narf_raftnode_changing(const struct narf_raftnode *rn)
{
	const struct raft *r = &rn->raft;

	return rn->change_pending || rn->transfer_pending ||
	       r->transfer != NULL || r->configuration_uncommitted_index != 0 ||
	       (r->state == RAFT_LEADER && (r->leader_state.change != NULL ||
	                                    r->leader_state.promotee_id != 0));
}

/* Runs inside libraft: only record what happened. */
static void change_cb(struct raft_change *req, int status)
{
	struct narf_raftnode *rn = req->data;

	rn->change_pending = false;
	if (status == 0) {
		rn->change_errmsg[0] = '\0';
		NARF_INFO("raft: %s: done", rn->change_what);
		return;
	}
	/* Maybe not a failure at all: a change whose leader stepped down
	 * can still commit under the next one. */
	snprintf(rn->change_errmsg, sizeof(rn->change_errmsg), "%s: %s",
	         rn->change_what, raft_strerror(status));
	NARF_WARN(
	        "raft: %s: %s (the configuration is read again before "
	        "anything is retried)",
	        rn->change_what, raft_strerror(status));
}

static int change_error(struct narf_raftnode *rn, int rv)
{
	snprintf(rn->errmsg, sizeof(rn->errmsg), "%s: %s", rn->change_what,
	         raft_strerror(rv));
	switch (rv) {
	case RAFT_NOTLEADER:
	case RAFT_LEADERSHIPLOST:
		return NARF_ENOTLEADER;
	case RAFT_CANTCHANGE:
		return NARF_ECHANGING;
	case RAFT_BADID:
	case RAFT_NOTFOUND:
	case RAFT_DUPLICATEID:
	case RAFT_DUPLICATEADDRESS:
	case RAFT_BADROLE:
		return NARF_EINVAL;
	case RAFT_NOMEM:
		return NARF_ENOMEM;
	default:
		return NARF_EINTERNAL;
	}
}

int narf_raftnode_change(struct narf_raftnode *rn,
                         enum narf_raft_change kind,
                         uint64_t id,
                         const char *raft_addr)
{
	int rv;

	if (kind == NARF_RAFT_ADD)
		snprintf(rn->change_what, sizeof(rn->change_what),
		         "add %llu at %s", (unsigned long long)id, raft_addr);
	else
		snprintf(rn->change_what, sizeof(rn->change_what), "%s %llu",
		         kind == NARF_RAFT_PROMOTE ? "promote to voter"
		                                   : "remove",
		         (unsigned long long)id);
	if (rn->raft.state != RAFT_LEADER || rn->stopping)
		return change_error(rn, RAFT_NOTLEADER);
	if (narf_raftnode_changing(rn))
		return change_error(rn, RAFT_CANTCHANGE);
	rn->change.data = rn;
	switch (kind) {
	case NARF_RAFT_ADD:
		rv = raft_add(&rn->raft, &rn->change, id, raft_addr, change_cb);
		break;
	case NARF_RAFT_PROMOTE:
		rv = raft_assign(&rn->raft, &rn->change, id, RAFT_VOTER,
		                 change_cb);
		break;
	default:
		rv = raft_remove(&rn->raft, &rn->change, id, change_cb);
		break;
	}
	if (rv != 0)
		return change_error(rn, rv);
	rn->change_pending = true;
	NARF_INFO("raft: %s: started", rn->change_what);
	return 0;
}

/* Runs inside libraft when the transfer ends, either way. */
static void transfer_cb(struct raft_transfer *req)
{
	struct narf_raftnode *rn = req->data;

	rn->transfer_pending = false;
	if (rn->raft.state == RAFT_LEADER)
		NARF_WARN("raft: leadership transfer to %llu timed out",
		          (unsigned long long)req->id);
	else
		NARF_INFO("raft: leadership handed over to %llu",
		          (unsigned long long)req->id);
}

int narf_raftnode_transfer(struct narf_raftnode *rn, uint64_t id)
{
	int rv;

	snprintf(rn->change_what, sizeof(rn->change_what),
	         "transfer leadership to %llu", (unsigned long long)id);
	if (rn->raft.state != RAFT_LEADER || rn->stopping)
		return change_error(rn, RAFT_NOTLEADER);
	if (narf_raftnode_changing(rn))
		return change_error(rn, RAFT_CANTCHANGE);
	rn->transfer.data = rn;
	rv = raft_transfer(&rn->raft, &rn->transfer, id, transfer_cb);
	if (rv != 0)
		return change_error(rn, rv);
	rn->transfer_pending = true;
	NARF_INFO("raft: %s: started", rn->change_what);
	return 0;
}

bool narf_raftnode_contact(const struct narf_raftnode *rn,
                           uint64_t id,
                           uint64_t *age_ms)
{
	uint64_t now = io_now(rn);

	for (unsigned k = 0; k < rn->n_contact; k++)
		if (rn->contact[k].id == id) {
			*age_ms = now - rn->contact[k].last_ms;
			return true;
		}
	*age_ms = now - rn->leader_since_ms;
	return false;
}

/* The data dir must not hold this id at another address: that is another
 * member's dir, or the wrong --id. */
static int check_own_address(struct narf_raftnode *rn,
                             const struct narf_raftnode_config *cfg)
{
	const struct raft_configuration *c = &rn->raft.configuration;

	for (unsigned i = 0; i < c->n; i++)
		if (c->servers[i].id == cfg->id &&
		    strcmp(c->servers[i].address, cfg->raft_addr) != 0) {
			snprintf(
			        rn->errmsg, sizeof(rn->errmsg),
			        "--data-dir %s holds member %llu at %s, not at "
			        "%s: wrong --data-dir or --id?",
			        cfg->data_dir, (unsigned long long)cfg->id,
			        c->servers[i].address, cfg->raft_addr);
			return NARF_EINVAL;
		}
	return 0;
}

static int bootstrap_if_pristine(struct narf_raftnode *rn,
                                 const struct narf_raftnode_config *cfg)
{
	struct raft_configuration conf;
	int rv = 0;

	raft_configuration_init(&conf);
	for (unsigned i = 0; rv == 0 && i < cfg->n_members; i++)
		rv = raft_configuration_add(&conf, cfg->members[i].id,
		                            cfg->members[i].raft, RAFT_VOTER);
	if (rv == 0) {
		rv = raft_bootstrap(&rn->raft, &conf);
		if (rv == 0)
			NARF_INFO("raft: bootstrapped a %u-voter configuration",
			          cfg->n_members);
		else if (rv == RAFT_CANTBOOTSTRAP)
			rv = 0; /* not pristine: recover from the data dir */
	}
	raft_configuration_close(&conf);
	if (rv != 0)
		snprintf(rn->errmsg, sizeof(rn->errmsg), "raft_bootstrap: %s",
		         raft_strerror(rv));
	return rv;
}

int narf_raftnode_start(struct narf_raftnode *rn,
                        uv_loop_t *loop,
                        const struct narf_raftnode_config *cfg)
{
	int rv;

	memset(rn, 0, sizeof(*rn));
	rn->window = APPLY_WINDOW;
	rn->map = malloc(sizeof(*rn->map));
	if (rn->map == NULL) {
		snprintf(rn->errmsg, sizeof(rn->errmsg), "out of memory");
		return NARF_ENOMEM;
	}
	narf_map_init(rn->map, NULL);
	if (narf_ring_init(&rn->ring,
	                   cfg->ring_entries ? cfg->ring_entries
	                                     : NARF_RING_DEFAULT_ENTRIES,
	                   cfg->ring_bytes ? cfg->ring_bytes
	                                   : NARF_RING_DEFAULT_BYTES) != 0) {
		snprintf(rn->errmsg, sizeof(rn->errmsg),
		         "delta ring: out of memory");
		rv = NARF_ENOMEM;
		goto err_after_map;
	}
	rn->fsm.version = 1;
	rn->fsm.data = rn;
	rn->fsm.apply = fsm_apply;
	rn->fsm.snapshot = fsm_snapshot;
	rn->fsm.restore = fsm_restore;

	rv = narf_transport_init(&rn->transport, loop, cfg->keys);
	if (rv != 0) {
		snprintf(rn->errmsg, sizeof(rn->errmsg),
		         "raft transport: no coordinator key to prove");
		goto err_after_map;
	}
	rn->transport.tls_server = cfg->tls_server;
	rn->transport.tls_client = cfg->tls_client;
	rv = raft_uv_init(&rn->io, loop, cfg->data_dir, &rn->transport.iface);
	if (rv != 0) {
		snprintf(rn->errmsg, sizeof(rn->errmsg), "raft_uv_init %s: %s",
		         cfg->data_dir, rn->io.errmsg);
		goto err_after_transport;
	}
	raft_uv_set_segment_size(&rn->io, SEGMENT_SIZE);
	raft_uv_set_connect_retry_delay(&rn->io, CONNECT_RETRY_MS);
	rv = raft_init(&rn->raft, &rn->io, &rn->fsm, cfg->id, cfg->raft_addr);
	if (rv != 0) {
		snprintf(rn->errmsg, sizeof(rn->errmsg), "raft_init: %s",
		         raft_strerror(rv));
		goto err_after_io;
	}
	rn->raft.data = rn;
	raft_set_election_timeout(&rn->raft, cfg->election_timeout_ms);
	raft_set_heartbeat_timeout(&rn->raft, cfg->heartbeat_timeout_ms);
	raft_set_pre_vote(&rn->raft, true);
	raft_set_install_snapshot_timeout(&rn->raft,
	                                  INSTALL_SNAPSHOT_TIMEOUT_MS);
	raft_set_snapshot_threshold(&rn->raft, SNAPSHOT_THRESHOLD);
	raft_set_snapshot_trailing(&rn->raft, SNAPSHOT_TRAILING);
	raft_set_max_catch_up_round_duration(&rn->raft, MAX_CATCH_UP_ROUND_MS);
	if (!cfg->join) {
		rv = bootstrap_if_pristine(rn, cfg);
		if (rv != 0)
			goto err_after_raft;
	}
	rv = raft_start(&rn->raft);
	if (rv != 0) {
		/* libraft does not pass the transport's message on (a Raft
		 * port in use fails here). */
		const char *why = raft_errmsg(&rn->raft);

		if (why == NULL || why[0] == '\0')
			why = rn->transport.iface.errmsg[0] != '\0'
			              ? rn->transport.iface.errmsg
			              : raft_strerror(rv);
		snprintf(rn->errmsg, sizeof(rn->errmsg), "raft_start: %s", why);
		goto err_after_raft;
	}
	if (check_own_address(rn, cfg) != 0)
		goto err_after_raft;
	if (rn->raft.configuration.n == 0)
		NARF_INFO(
		        "raft: no configuration yet: waiting for the leader "
		        "to add member %llu at %s",
		        (unsigned long long)cfg->id, cfg->raft_addr);
	uv_check_init(loop, &rn->done_check);
	rn->done_check.data = rn;
	uv_check_start(&rn->done_check, done_cb);
	uv_timer_init(loop, &rn->drain_timer);
	rn->drain_timer.data = rn;
	rn->role = raft_state(&rn->raft);
	return 0;

	/* After raft_init, raft_close() owns tearing down io and transport;
	 * it completes asynchronously, so the caller must still run the loop
	 * (the process exits right after, which is the only caller). */
err_after_raft:
	raft_close(&rn->raft, NULL);
	return NARF_EIO;
err_after_io:
	raft_uv_close(&rn->io);
err_after_transport:
	narf_transport_close(&rn->transport);
err_after_map:
	narf_ring_close(&rn->ring);
	narf_map_close(rn->map);
	free(rn->map);
	rn->map = NULL;
	return NARF_EIO;
}

static void raft_closed_cb(struct raft *r)
{
	struct narf_raftnode *rn = r->data;

	raft_uv_close(&rn->io);
	narf_transport_close(&rn->transport);
	/* Raft is closed: proposers may run now (new proposals fail with
	 * not_leader), before the map they look at goes away. */
	deliver_done(rn);
	uv_close((uv_handle_t *)&rn->done_check, NULL);
	uv_close((uv_handle_t *)&rn->drain_timer, NULL);
	narf_ring_close(&rn->ring);
	narf_map_close(rn->map);
	free(rn->map);
	rn->map = NULL;
	if (rn->close_cb != NULL)
		rn->close_cb(rn);
}

/* Requests of ours libraft still holds. */
static bool in_flight(const struct narf_raftnode *rn)
{
	return rn->inflight > 0 || rn->barrier_pending || rn->change_pending ||
	       rn->transfer_pending;
}

static void drain_cb(uv_timer_t *t)
{
	struct narf_raftnode *rn = t->data;

	if (in_flight(rn) && rn->raft.state == RAFT_LEADER &&
	    narf_clock_ms() - rn->drain_start_ms < NARF_RAFT_DRAIN_MS)
		return;
	uv_timer_stop(t);
	if (in_flight(rn))
		NARF_INFO("raft: closing with %u proposal%s still in flight",
		          rn->inflight, rn->inflight == 1 ? "" : "s");
	raft_close(&rn->raft, raft_closed_cb);
}

/*
 * libraft 0.15 can crash inside raft_close() when a leader closes with
 * entries still in flight (seen as a SIGSEGV under raft_close() with
 * several proposals failing just before it; a flood of settings writes
 * and a SIGTERM to the leader reproduce it within a few tries). So a
 * stopping leader first lets what it proposed commit: no new proposal is
 * taken, and raft_close() waits until ours have called back, at most
 * NARF_RAFT_DRAIN_MS (a leader without a majority never commits them).
 */
void narf_raftnode_close(struct narf_raftnode *rn,
                         void (*cb)(struct narf_raftnode *rn))
{
	rn->close_cb = cb;
	rn->stopping = true;
	if (rn->raft.state == RAFT_LEADER && in_flight(rn)) {
		rn->drain_start_ms = narf_clock_ms();
		uv_timer_start(&rn->drain_timer, drain_cb, DRAIN_POLL_MS,
		               DRAIN_POLL_MS);
		return;
	}
	raft_close(&rn->raft, raft_closed_cb);
}
