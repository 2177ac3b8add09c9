/*
 * A randomized model check of the replication core (datanode/repl_core.c):
 * one primary (node 1, the core under test), two replicas (nodes 2 and 3)
 * modelled as the sets of writes they applied, a simulated network (each
 * replication link a FIFO of commands that the replica applies and
 * acknowledges in order, lost whole when the link fails), and a simulated
 * coordinator (the real map code, narf_map_apply) that takes ISR drop and
 * add requests (answering at once or later, its map arriving at once or
 * later; an add may also time out at the primary and still be applied
 * later, as a request the network delayed), now and then promotes an
 * ISR member of one of our slots (a role swap: what a failover does), and
 * now and then applies another primary's drop of a replica (its
 * isr_dropped moves, none of our slots changes).
 *
 * Each step is drawn from a seeded generator: a client write (one batch),
 * acks delivered, a link failure, a request answered, a map installed, a
 * role swap, time passing (tick), the loop's step. Checked after every
 * step, for every write whose gate opened:
 *  - while we lead its slot, every ISR member in our map has applied it;
 *  - when a slot is promoted, the new primary has every write of that slot
 *    that was acknowledged (min_isr 1: "no acknowledged write lost" when
 *    the promoted replica is in the ISR).
 * Deterministic: the seeds are fixed; a failure names seed and step.
 *
 * Half the seeds also run a twin core fed the very same events, but every
 * map as a dirty walk (narf_rcore_map with what changed from the map
 * before, found by comparing the two), where the first core walks every
 * slot: it must emit the same actions, one for one, and end every step in
 * the same state (datanode/repl_core.h: the dirty walk changes nothing
 * but its cost).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/errors.h"
#include "datanode/repl_core.h"

#define ME 1u
#define N_NODES 3
#define N_SLOTS 6 /* our slots: 0..N_SLOTS-1 */
#define MAX_WRITES 1500
#define MAX_Q 4096
#define STEPS 3000

enum cmd_kind { CMD_HELLO, CMD_WRITE, CMD_SYNC };

struct cmd {
	enum cmd_kind kind;
	unsigned slot;
	unsigned id;    /* CMD_WRITE */
	uint64_t epoch; /* the slot epoch it is sent under */
	uint8_t *snap;  /* CMD_SYNC: the slot's writes (owned) */
};

struct link {
	struct cmd q[MAX_Q];
	unsigned head, n;
	uint32_t gen;
};

struct pending {
	unsigned id, slot;
	struct narf_gate gate, gate2; /* the core's, the twin's */
};

struct model {
	uint64_t rnd;
	unsigned seed, step;
	struct narf_rcore *rc;
	struct narf_rcore *rc2;     /* the twin (dirty walks), or NULL */
	struct narf_map *map;       /* the coordinator's newest */
	struct narf_map *installed; /* the one the core borrows */
	uint64_t now;
	/* writes applied, per node (1..3) and slot: applied[n][s][id] */
	uint8_t applied[N_NODES + 1][N_SLOTS][MAX_WRITES];
	uint8_t acked[N_SLOTS][MAX_WRITES]; /* acknowledged to clients */
	/* per node and slot: the highest slot epoch it knows (the fence: it
	 * refuses a message below it, answering -STALE) */
	uint64_t hwm[N_NODES + 1][N_SLOTS];
	unsigned n_writes;
	struct link links[N_NODES + 1];
	/* requests the coordinator has not answered yet */
	bool drop_asked[N_NODES + 1], add_asked[N_NODES + 1];
	uint64_t add_slots[N_NODES + 1]; /* bit s: slot s asked */
	uint64_t add_since[N_NODES + 1];
	/* adds the primary gave up on that still reach the coordinator */
	struct {
		uint32_t id;
		uint64_t slots, since;
	} late[64];
	unsigned n_late, late_applied, late_refused;
	struct pending pend[MAX_WRITES];
	unsigned n_pend;
	unsigned opened, broken, swaps, drops, adds, failures, stale;
	unsigned dirty_slots, twin_acts; /* the twin's walks, actions */
	unsigned foreign;                /* other primaries' drops */
};

static uint64_t rnd(struct model *m)
{
	m->rnd ^= m->rnd << 13;
	m->rnd ^= m->rnd >> 7;
	m->rnd ^= m->rnd << 17;
	return m->rnd;
}

static unsigned pick(struct model *m, unsigned n)
{
	return (unsigned)(rnd(m) % n);
}

static struct narf_map *map_copy(const struct narf_map *src)
{
	struct narf_map *m = calloc(1, sizeof(*m));

	assert_non_null(m);
	narf_map_init(m, NULL);
	assert_int_equal(narf_map_copy(m, src), 0);
	return m;
}

static void map_free(struct narf_map *m)
{
	if (m == NULL)
		return;
	narf_map_close(m);
	free(m);
}

/* The twin's peer for p (the core's). */
static struct narf_rpeer *twin(struct model *m, const struct narf_rpeer *p)
{
	struct narf_rpeer *q = narf_rcore_peer(m->rc2, p->id);

	assert_non_null(q);
	return q;
}

/* What changed from a to b, as narf_map_apply_dirty() would say it. */
static void diff_maps(const struct narf_map *a,
                      const struct narf_map *b,
                      struct narf_map_dirty *d)
{
	narf_map_dirty_clear(d);
	for (unsigned s = 0; s < NARF_SLOTS; s++)
		if (!narf_slot_equal(&a->slots[s], &b->slots[s])) {
			d->slots[s / 64] |= (uint64_t)1 << (s % 64);
			d->n_slots++;
		}
	d->nodes = a->n_nodes != b->n_nodes;
	for (unsigned i = 0; !d->nodes && i < a->n_nodes; i++)
		d->nodes = a->nodes[i].id != b->nodes[i].id ||
		           a->nodes[i].state != b->nodes[i].state ||
		           a->nodes[i].isr_dropped != b->nodes[i].isr_dropped ||
		           strcmp(a->nodes[i].addr, b->nodes[i].addr) != 0;
}

/* Install the coordinator's newest map in the core (if not yet), and in
 * the twin as a dirty walk. */
static void install(struct model *m)
{
	struct narf_map *old = m->installed;
	struct narf_map_dirty d;

	if (m->installed != NULL && m->installed->epoch == m->map->epoch)
		return;
	m->installed = map_copy(m->map);
	assert_true(narf_rcore_map(m->rc, ME, old, m->installed, NULL, m->now));
	if (m->rc2 != NULL) {
		if (old != NULL)
			diff_maps(old, m->installed, &d);
		m->dirty_slots += old != NULL ? d.n_slots : NARF_SLOTS;
		assert_true(narf_rcore_map(m->rc2, ME, old, m->installed,
		                           old != NULL ? &d : NULL, m->now));
	}
	map_free(old);
}

/* The twin's next action is the core's (a), one for one. */
static void twin_action(struct model *m, const struct narf_ract *a, bool got)
{
	struct narf_ract b;
	bool got2;

	if (m->rc2 == NULL)
		return;
	got2 = narf_rcore_next_action(m->rc2, &b);
	if (got != got2)
		fail_msg("seed %u step %u: the twin %s an action (kind %d)",
		         m->seed, m->step, got2 ? "has" : "lacks",
		         got2 ? (int)b.kind : (int)a->kind);
	if (!got)
		return;
	m->twin_acts++;
	if (a->kind != b.kind || (a->peer == NULL) != (b.peer == NULL) ||
	    (a->peer != NULL && a->peer->id != b.peer->id) ||
	    a->slot != b.slot || a->node != b.node ||
	    (a->slots == NULL) != (b.slots == NULL) ||
	    (a->slots != NULL &&
	     memcmp(a->slots, b.slots, NARF_RC_WORDS * sizeof(uint64_t)) != 0))
		fail_msg(
		        "seed %u step %u: the twin's action (kind %d, peer "
		        "%u, slot %u) is not the core's (kind %d, peer %u, "
		        "slot %u)",
		        m->seed, m->step, (int)b.kind,
		        b.peer != NULL ? b.peer->id : 0, b.slot, (int)a->kind,
		        a->peer != NULL ? a->peer->id : 0, a->slot);
	if (a->kind == NARF_RACT_ASK_ADD &&
	    (memcmp(a->peer->asked, b.peer->asked, sizeof(b.peer->asked)) !=
	             0 ||
	     a->peer->add_since != b.peer->add_since))
		fail_msg("seed %u step %u: the twin asks another add", m->seed,
		         m->step);
	free(b.slots);
}

/* The core and the twin are in the same state. */
static void twin_check(struct model *m)
{
	const struct narf_rcore *a = m->rc, *b = m->rc2;

	if (b == NULL)
		return;
	if (memcmp(a->lead, b->lead, sizeof(a->lead)) != 0 ||
	    memcmp(a->handing, b->handing, sizeof(a->handing)) != 0 ||
	    memcmp(a->syncing, b->syncing, sizeof(a->syncing)) != 0 ||
	    memcmp(a->lost_at, b->lost_at, N_SLOTS * sizeof(a->lost_at[0])) !=
	            0 ||
	    memcmp(a->hwm, b->hwm, N_SLOTS * sizeof(a->hwm[0])) != 0 ||
	    a->n_peers != b->n_peers || a->n_in_links != b->n_in_links ||
	    a->leaving != b->leaving)
		fail_msg("seed %u step %u: the twin's slots differ", m->seed,
		         m->step);
	for (unsigned i = 0; i < a->n_peers; i++) {
		const struct narf_rpeer *p = a->peers[i], *q = b->peers[i];

		if (p->id != q->id || p->link != q->link || p->gen != q->gen ||
		    p->sent != q->sent || p->acked != q->acked ||
		    memcmp(p->fwd, q->fwd, sizeof(p->fwd)) != 0 ||
		    memcmp(p->counts, q->counts, sizeof(p->counts)) != 0 ||
		    memcmp(p->want, q->want, sizeof(p->want)) != 0 ||
		    memcmp(p->ready, q->ready, sizeof(p->ready)) != 0 ||
		    memcmp(p->asked, q->asked, sizeof(p->asked)) != 0 ||
		    memcmp(p->handoff, q->handoff, sizeof(p->handoff)) != 0 ||
		    p->n_counts != q->n_counts || p->n_joins != q->n_joins ||
		    p->n_handoff != q->n_handoff ||
		    p->drop.state != q->drop.state ||
		    p->drop.epoch != q->drop.epoch ||
		    p->add.state != q->add.state ||
		    p->hand.state != q->hand.state || p->open != q->open ||
		    p->work != q->work)
			fail_msg("seed %u step %u: the twin's peer %u differs",
			         m->seed, m->step, p->id);
	}
}

static void check_gates(struct model *m);

/* Carry the core's actions out. */
static void carry(struct model *m)
{
	struct narf_ract a;

	for (;;) {
		bool got = narf_rcore_next_action(m->rc, &a);
		struct link *l;

		twin_action(m, &a, got);
		if (!got)
			break;
		l = a.peer != NULL ? &m->links[a.peer->id] : NULL;
		free(a.slots);
		switch (a.kind) {
		case NARF_RACT_OPEN_LINK:
			for (unsigned i = 0; i < l->n; i++)
				free(l->q[(l->head + i) % MAX_Q].snap);
			l->head = l->n = 0;
			l->gen = a.peer->gen;
			l->q[0] = (struct cmd){.kind = CMD_HELLO};
			l->n = 1;
			narf_rcore_link_queued(m->rc, a.peer, true, m->now);
			narf_rcore_link_up(m->rc, a.peer);
			if (m->rc2 != NULL) {
				narf_rcore_link_queued(m->rc2, twin(m, a.peer),
				                       true, m->now);
				narf_rcore_link_up(m->rc2, twin(m, a.peer));
			}
			break;
		case NARF_RACT_FAIL_LINK:
		case NARF_RACT_CLOSE_LINK:
			for (unsigned i = 0; i < l->n; i++)
				free(l->q[(l->head + i) % MAX_Q].snap);
			l->head = l->n = 0;
			break;
		case NARF_RACT_ASK_DROP:
			m->drop_asked[a.peer->id] = true;
			break;
		case NARF_RACT_ASK_ADD:
			m->add_asked[a.peer->id] = true;
			m->add_since[a.peer->id] = a.peer->add_since;
			m->add_slots[a.peer->id] = 0;
			for (unsigned s = 0; s < N_SLOTS; s++)
				if (narf_rc_bit(a.peer->asked, s))
					m->add_slots[a.peer->id] |= 1ull << s;
			break;
		default:
			break;
		}
	}
}

static void enqueue(struct model *m, struct narf_rpeer *p, struct cmd c)
{
	struct link *l = &m->links[p->id];

	assert_true(l->n < MAX_Q);
	l->q[(l->head + l->n) % MAX_Q] = c;
	l->n++;
	narf_rcore_link_queued(m->rc, p, true, m->now);
	if (m->rc2 != NULL)
		narf_rcore_link_queued(m->rc2, twin(m, p), true, m->now);
}

/* A client batch of one write to slot s. */
static void client_write(struct model *m, unsigned s)
{
	struct pending *pd;
	unsigned id;

	if (m->rc2 != NULL &&
	    narf_rcore_streams(m->rc, s) != narf_rcore_streams(m->rc2, s))
		fail_msg("seed %u step %u: the twin streams otherwise", m->seed,
		         m->step);
	if (m->n_writes >= MAX_WRITES || m->n_pend >= MAX_WRITES ||
	    !narf_rcore_streams(m->rc, s) || narf_rc_bit(m->rc->handing, s))
		return;
	id = m->n_writes++;
	m->applied[ME][s][id] = 1;
	pd = &m->pend[m->n_pend];
	memset(pd, 0, sizeof(*pd));
	pd->id = id;
	pd->slot = s;
	narf_rcore_batch_begin(m->rc);
	if (m->rc2 != NULL)
		narf_rcore_batch_begin(m->rc2);
	for (unsigned i = 0; i < m->rc->n_peers; i++) {
		struct narf_rpeer *p = m->rc->peers[i];
		bool q = narf_rcore_forwards(m->rc, p, s);

		if (m->rc2 != NULL &&
		    narf_rcore_forwards(m->rc2, twin(m, p), s) != q)
			fail_msg("seed %u step %u: the twin forwards otherwise",
			         m->seed, m->step);

		if (q)
			enqueue(m, p,
			        (struct cmd){
			                .kind = CMD_WRITE,
			                .slot = s,
			                .id = id,
			                .epoch = m->installed->slots[s].epoch});
		narf_rcore_wrote(m->rc, p, s, q);
		if (m->rc2 != NULL)
			narf_rcore_wrote(m->rc2, twin(m, p), s, q);
	}
	if (m->rc2 != NULL &&
	    narf_rcore_batch_end(m->rc2, &pd->gate2) != (m->rc->batch.n != 0))
		fail_msg("seed %u step %u: the twin's batch waits otherwise",
		         m->seed, m->step);
	if (narf_rcore_batch_end(m->rc, &pd->gate)) {
		m->n_pend++;
	} else {
		/* Nobody to wait for: acknowledged at once. */
		m->acked[s][id] = 1;
		narf_gate_close(&pd->gate);
		narf_gate_close(&pd->gate2);
	}
	carry(m);
}

/* Deliver up to n commands on p's link: applied in order, then acked. */
static void deliver(struct model *m, struct narf_rpeer *p, unsigned n)
{
	struct link *l = &m->links[p->id];

	if (p->link == NARF_RLINK_DOWN || l->gen != p->gen)
		return;
	while (n-- > 0 && l->n > 0) {
		struct cmd *c = &l->q[l->head];

		if (c->kind != CMD_HELLO) {
			uint64_t *hwm = &m->hwm[p->id][c->slot];

			if (c->epoch < *hwm) { /* -STALE: the link fails */
				for (unsigned i = 0; i < l->n; i++)
					free(l->q[(l->head + i) % MAX_Q].snap);
				l->head = l->n = 0;
				m->stale++;
				if (m->rc2 != NULL)
					narf_rcore_link_failed(m->rc2,
					                       twin(m, p),
					                       p->gen, m->now);
				narf_rcore_link_failed(m->rc, p, p->gen,
				                       m->now);
				break;
			}
			*hwm = c->epoch;
		}
		if (c->kind == CMD_WRITE)
			m->applied[p->id][c->slot][c->id] = 1;
		if (c->kind == CMD_SYNC) {
			memcpy(m->applied[p->id][c->slot], c->snap, MAX_WRITES);
			free(c->snap);
			c->snap = NULL;
		}
		l->head = (l->head + 1) % MAX_Q;
		l->n--;
		narf_rcore_link_acked(m->rc, p, 1, m->now);
		if (m->rc2 != NULL)
			narf_rcore_link_acked(m->rc2, twin(m, p), 1, m->now);
	}
	carry(m);
}

/* The I/O's sync pump: whole slots, as repl_sync.c sends them. */
static void pump(struct model *m, struct narf_rpeer *p)
{
	int s;

	while (p->link == NARF_RLINK_UP &&
	       (s = narf_rcore_sync_next(m->rc, p)) >= 0) {
		if (m->rc2 != NULL &&
		    narf_rcore_sync_next(m->rc2, twin(m, p)) != s)
			fail_msg("seed %u step %u: the twin syncs another slot",
			         m->seed, m->step);
		struct cmd c = {.kind = CMD_SYNC,
		                .slot = (unsigned)s,
		                .epoch = m->installed->slots[s].epoch};

		c.snap = malloc(MAX_WRITES);
		assert_non_null(c.snap);
		memcpy(c.snap, m->applied[ME][s], MAX_WRITES);
		enqueue(m, p, c); /* SYNC + entries + SYNCED, as one */
		narf_rcore_synced(m->rc, p, (unsigned)s, true, p->sent);
		if (m->rc2 != NULL)
			narf_rcore_synced(m->rc2, twin(m, p), (unsigned)s, true,
			                  p->sent);
	}
}

static void new_epoch(struct model *m)
{
	m->map->epoch++;
}

/* The coordinator applies an isr entry (the real map code): 0 or its
 * error. */
static int coord_isr(struct model *m,
                     uint32_t id,
                     uint64_t slots,
                     uint64_t since)
{
	bool *take = NULL;
	struct narf_map_result res;
	json_t *cmd;
	int rv;

	if (slots != 0) {
		take = calloc(NARF_SLOTS, sizeof(*take));
		assert_non_null(take);
		for (unsigned s = 0; s < N_SLOTS; s++)
			take[s] = slots >> s & 1;
	}
	cmd = narf_cmd_isr(ME, id, take, since);
	assert_non_null(cmd);
	rv = narf_map_apply(m->map, cmd, &res);
	json_decref(cmd);
	free(take);
	return rv;
}

/* The coordinator takes p's drop: p leaves the ISR of our slots. The map
 * reaches us now or later. */
static void answer_drop(struct model *m, uint32_t id)
{
	assert_int_equal(coord_isr(m, id, 0, 0), 0);
	m->drop_asked[id] = false;
	m->drops++;
	narf_rcore_isr_reply(m->rc, id, true, true, m->map->epoch, m->now);
	if (m->rc2 != NULL)
		narf_rcore_isr_reply(m->rc2, id, true, true, m->map->epoch,
		                     m->now);
	carry(m);
	if (pick(m, 2) == 0)
		install(m);
	carry(m);
}

static void answer_add(struct model *m, uint32_t id)
{
	int rv = coord_isr(m, id, m->add_slots[id], m->add_since[id]);

	m->add_asked[id] = false;
	m->adds++;
	narf_rcore_isr_reply(
	        m->rc, id, false, rv == 0,
	        rv == NARF_ESTALE ? NARF_RREQ_STALE : m->map->epoch, m->now);
	if (m->rc2 != NULL)
		narf_rcore_isr_reply(
		        m->rc2, id, false, rv == 0,
		        rv == NARF_ESTALE ? NARF_RREQ_STALE : m->map->epoch,
		        m->now);
	carry(m);
}

/* The primary gives up on an add (its reply timed out); the request still
 * reaches the coordinator later. */
static void time_out_add(struct model *m, uint32_t id)
{
	if (m->n_late < sizeof(m->late) / sizeof(m->late[0])) {
		m->late[m->n_late].id = id;
		m->late[m->n_late].slots = m->add_slots[id];
		m->late[m->n_late].since = m->add_since[id];
		m->n_late++;
	}
	m->add_asked[id] = false;
	narf_rcore_isr_reply(m->rc, id, false, false, 0, m->now);
	if (m->rc2 != NULL)
		narf_rcore_isr_reply(m->rc2, id, false, false, 0, m->now);
	carry(m);
}

static void apply_late_add(struct model *m)
{
	unsigned i;

	if (m->n_late == 0)
		return;
	i = pick(m, m->n_late);
	if (coord_isr(m, m->late[i].id, m->late[i].slots, m->late[i].since) ==
	    0)
		m->late_applied++;
	else
		m->late_refused++;
	m->late[i] = m->late[--m->n_late];
}

/* Another primary's isr drop of node id (it led none of our slots): only
 * the node's isr_dropped moves, which a sync of ours to it that began
 * before makes stale (repl_core.c, dropped_since_sync). */
static void foreign_drop(struct model *m, uint32_t id)
{
	new_epoch(m);
	m->map->nodes[id - 1].isr_dropped = m->map->epoch;
	m->foreign++;
}

/* A failover of slot s to an ISR member: it must hold every write of s
 * that was acknowledged. Then it gives the slot back to us (as a later
 * rebalance would), syncing us its data: a new lineage of writes. */
static void role_swap(struct model *m, unsigned s)
{
	struct narf_slot *sl = &m->map->slots[s];
	uint32_t to;

	if (sl->primary != ME || sl->n_isr == 0)
		return;
	to = sl->isr[pick(m, sl->n_isr)];
	for (unsigned id = 0; id < m->n_writes; id++)
		if (m->acked[s][id] && !m->applied[to][s][id])
			fail_msg(
			        "seed %u step %u: slot %u promoted to node %u, "
			        "which lacks acknowledged write %u",
			        m->seed, m->step, s, to, id);
	new_epoch(m);
	sl->primary = to;
	sl->epoch = m->map->epoch;
	m->hwm[to][s] = sl->epoch + 1; /* it leads at this epoch: ours and
	                                  older are refused */
	sl->n_replicas = 0;
	sl->n_isr = 0;
	for (uint32_t n = 1; n <= N_NODES; n++)
		if (n != to)
			sl->replicas[sl->n_replicas++] = n;
	m->swaps++;
	install(m);
	carry(m);
	/* Back to us at once, our copy the new primary's (a sync to us),
	 * every other replica outside the ISR until synced again. */
	memcpy(m->applied[ME][s], m->applied[to][s], MAX_WRITES);
	new_epoch(m);
	sl->primary = ME;
	sl->epoch = m->map->epoch;
	sl->n_replicas = 0;
	for (uint32_t n = 2; n <= N_NODES; n++)
		sl->replicas[sl->n_replicas++] = n;
	sl->n_isr = 0;
}

static void check_gates(struct model *m)
{
	unsigned k = 0;

	for (unsigned i = 0; i < m->n_pend; i++) {
		struct pending *pd = &m->pend[i];
		bool broken;

		bool open = narf_rcore_gate_open(m->rc, &pd->gate, &broken);

		if (m->rc2 != NULL) {
			bool broken2;

			if (narf_rcore_gate_open(m->rc2, &pd->gate2,
			                         &broken2) != open ||
			    broken2 != broken)
				fail_msg(
				        "seed %u step %u: the twin's gate of "
				        "write %u differs",
				        m->seed, m->step, pd->id);
		}
		if (!open) {
			if (broken) {
				m->broken++;
				narf_gate_close(&pd->gate);
				narf_gate_close(&pd->gate2);
			} else {
				m->pend[k++] = *pd;
			}
			continue;
		}
		m->opened++;
		m->acked[pd->slot][pd->id] = 1;
		narf_gate_close(&pd->gate);
		narf_gate_close(&pd->gate2);
		/* Every ISR member of our map has it, while we lead. */
		if (narf_rcore_leads(m->rc, pd->slot)) {
			const struct narf_slot *sl =
			        &m->installed->slots[pd->slot];

			for (unsigned j = 0; j < sl->n_isr; j++)
				if (!m->applied[sl->isr[j]][pd->slot][pd->id])
					fail_msg(
					        "seed %u step %u: write %u "
					        "acknowledged, ISR member %u "
					        "of slot %u lacks it",
					        m->seed, m->step, pd->id,
					        sl->isr[j], pd->slot);
		}
	}
	m->n_pend = k;
}

static void run(unsigned seed, bool with_twin)
{
	struct model *m = calloc(1, sizeof(*m));

	assert_non_null(m);
	m->seed = seed;
	m->rnd = 0x9e3779b97f4a7c15ull ^ seed;
	m->now = 1000000;
	m->rc = narf_rcore_create();
	assert_non_null(m->rc);
	if (with_twin) {
		m->rc2 = narf_rcore_create();
		assert_non_null(m->rc2);
	}
	m->map = calloc(1, sizeof(*m->map));
	assert_non_null(m->map);
	narf_map_init(m->map, NULL);
	m->map->epoch = 10;
	m->map->settings.node_timeout_ms = 600;
	m->map->n_nodes = m->map->cap_nodes = N_NODES;
	m->map->nodes = calloc(N_NODES, sizeof(*m->map->nodes));
	assert_non_null(m->map->nodes);
	for (unsigned i = 0; i < N_NODES; i++) {
		m->map->nodes[i].id = i + 1;
		snprintf(m->map->nodes[i].addr, sizeof(m->map->nodes[i].addr),
		         "127.0.0.1:%u", 7000 + i);
		m->map->nodes[i].state = NARF_NODE_UP;
	}
	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		struct narf_slot *sl = &m->map->slots[s];

		sl->primary = s < N_SLOTS ? ME : 3;
		sl->epoch = 5;
		if (s < N_SLOTS) {
			sl->n_replicas = sl->n_isr = 2;
			sl->replicas[0] = sl->isr[0] = 2;
			sl->replicas[1] = sl->isr[1] = 3;
		}
	}
	install(m);
	carry(m);
	for (m->step = 0; m->step < STEPS; m->step++) {
		unsigned what = pick(m, 100);
		struct narf_rpeer *p =
		        m->rc->n_peers > 0
		                ? m->rc->peers[pick(m, m->rc->n_peers)]
		                : NULL;

		if (what < 35) {
			client_write(m, pick(m, N_SLOTS));
		} else if (what < 60) {
			if (p != NULL)
				deliver(m, p, 1 + pick(m, 4));
		} else if (what < 64) {
			if (p != NULL && p->link != NARF_RLINK_DOWN) {
				struct link *l = &m->links[p->id];

				for (unsigned i = 0; i < l->n; i++)
					free(l->q[(l->head + i) % MAX_Q].snap);
				l->head = l->n = 0;
				m->failures++;
				if (m->rc2 != NULL)
					narf_rcore_link_failed(m->rc2,
					                       twin(m, p),
					                       p->gen, m->now);
				narf_rcore_link_failed(m->rc, p, p->gen,
				                       m->now);
				carry(m);
			}
		} else if (what < 72) {
			if (p != NULL && m->drop_asked[p->id])
				answer_drop(m, p->id);
		} else if (what < 76) {
			if (p != NULL && m->add_asked[p->id])
				answer_add(m, p->id);
		} else if (what < 77) {
			if (p != NULL && m->add_asked[p->id])
				time_out_add(m, p->id);
		} else if (what < 78) {
			if (pick(m, 2) == 0)
				apply_late_add(m);
			else
				foreign_drop(m, 2 + pick(m, N_NODES - 1));
		} else if (what < 84) {
			install(m);
			carry(m);
		} else if (what < 86) {
			role_swap(m, pick(m, N_SLOTS));
		} else if (what < 93) {
			m->now += pick(m, 400);
			narf_rcore_tick(m->rc, m->now);
			if (m->rc2 != NULL)
				narf_rcore_tick(m->rc2, m->now);
			carry(m);
		} else {
			narf_rcore_step(m->rc, m->now);
			if (m->rc2 != NULL)
				narf_rcore_step(m->rc2, m->now);
			carry(m);
			for (unsigned i = 0; i < m->rc->n_peers; i++)
				pump(m, m->rc->peers[i]);
			carry(m);
		}
		check_gates(m);
		twin_check(m);
	}
	print_message(
	        "seed %u: %u writes, %u acknowledged, %u broken, "
	        "%u waiting; %u link failures, %u refused stale, "
	        "%u drops, %u adds, %u late adds applied, %u refused, "
	        "%u role swaps\n",
	        seed, m->n_writes, m->opened, m->broken, m->n_pend, m->failures,
	        m->stale, m->drops, m->adds, m->late_applied, m->late_refused,
	        m->swaps);
	/* The model must have exercised what it checks. */
	assert_true(m->opened > 0);
	assert_true(m->swaps > 0);
	assert_true(m->drops > 0);
	if (m->rc2 != NULL) {
		print_message(
		        "seed %u: the twin took %u actions, walked %u "
		        "slots\n",
		        seed, m->twin_acts, m->dirty_slots);
		assert_true(m->twin_acts > 0);
	}
	for (unsigned i = 0; i < m->n_pend; i++) {
		narf_gate_close(&m->pend[i].gate);
		narf_gate_close(&m->pend[i].gate2);
	}
	for (unsigned n = 0; n <= N_NODES; n++)
		for (unsigned i = 0; i < m->links[n].n; i++)
			free(m->links[n]
			             .q[(m->links[n].head + i) % MAX_Q]
			             .snap);
	narf_rcore_destroy(m->rc);
	narf_rcore_destroy(m->rc2);
	map_free(m->installed);
	map_free(m->map);
	free(m);
}

static void test_model_seeds(void **state)
{
	(void)state;
	for (unsigned seed = 1; seed <= 12; seed++)
		run(seed, seed % 2 == 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_model_seeds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
