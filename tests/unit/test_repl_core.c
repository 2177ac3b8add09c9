/*
 * Unit tests of the replication core (datanode/repl_core.c): no sockets,
 * no loop. A simulated clock (sim.now) and a simulated network: the test
 * carries out the core's actions itself (a link it is asked to open comes
 * up at once unless the test says otherwise; acks arrive when the test
 * delivers them) and feeds the core the events the I/O layer would.
 *
 * Node 1 is us throughout; nodes 2 and 3 are peers.
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

#include "datanode/membership.h"
#include "datanode/repl_core.h"

#define ME 1u
#define MAX_MAPS 16
#define MAX_ACTS 256

struct sim {
	struct narf_rcore *rc;
	struct narf_map *maps[MAX_MAPS]; /* kept alive: the core borrows */
	unsigned n_maps;
	uint64_t now;
	/* actions taken so far (slots freed, pointer cleared) */
	struct narf_ract acts[MAX_ACTS];
	unsigned n_acts;
	bool links_fail_to_open; /* OPEN_LINK: the connect cannot start */
};

static struct narf_map *map_new(struct sim *sim, uint64_t epoch)
{
	struct narf_map *m = calloc(1, sizeof(*m));

	assert_non_null(m);
	assert_true(sim->n_maps < MAX_MAPS);
	narf_map_init(m, NULL);
	m->epoch = epoch;
	m->n_nodes = m->cap_nodes = 3;
	m->nodes = calloc(3, sizeof(*m->nodes));
	assert_non_null(m->nodes);
	for (unsigned i = 0; i < 3; i++) {
		m->nodes[i].id = i + 1;
		snprintf(m->nodes[i].addr, sizeof(m->nodes[i].addr),
		         "127.0.0.1:%u", 7000 + i);
		m->nodes[i].state = NARF_NODE_UP;
	}
	sim->maps[sim->n_maps++] = m;
	return m;
}

/* Slot s: primary, one replica (0: none), in the ISR or not. */
static void slot_set(struct narf_map *m,
                     unsigned s,
                     uint32_t primary,
                     uint32_t replica,
                     bool in_isr,
                     uint64_t slot_epoch)
{
	struct narf_slot *sl = &m->slots[s];

	memset(sl, 0, sizeof(*sl));
	sl->primary = primary;
	sl->epoch = slot_epoch;
	if (replica != 0) {
		sl->replicas[sl->n_replicas++] = replica;
		if (in_isr)
			sl->isr[sl->n_isr++] = replica;
	}
}

static void all_slots(struct narf_map *m,
                      uint32_t primary,
                      uint32_t replica,
                      bool in_isr,
                      uint64_t slot_epoch)
{
	for (unsigned s = 0; s < NARF_SLOTS; s++)
		slot_set(m, s, primary, replica, in_isr, slot_epoch);
}

/* Carry out the queued actions as a healthy network would. */
static void carry(struct sim *sim)
{
	struct narf_ract a;

	while (narf_rcore_next_action(sim->rc, &a)) {
		free(a.slots);
		a.slots = NULL;
		assert_true(sim->n_acts < MAX_ACTS);
		sim->acts[sim->n_acts++] = a;
		if (a.kind != NARF_RACT_OPEN_LINK)
			continue;
		if (sim->links_fail_to_open) {
			narf_rcore_link_failed(sim->rc, a.peer, a.peer->gen,
			                       sim->now);
			continue;
		}
		/* The handshake (NARF.AUTH) is queued first; the link is up
		 * once the peer proved the node key. */
		narf_rcore_link_queued(sim->rc, a.peer, true, sim->now);
		narf_rcore_link_up(sim->rc, a.peer);
	}
}

static unsigned acts_of(const struct sim *sim,
                        enum narf_ract_kind kind,
                        uint32_t peer)
{
	unsigned n = 0;

	for (unsigned i = 0; i < sim->n_acts; i++)
		if (sim->acts[i].kind == kind &&
		    (peer == 0 || (sim->acts[i].peer != NULL &&
		                   sim->acts[i].peer->id == peer)))
			n++;
	return n;
}

static void install(struct sim *sim,
                    const struct narf_map *old,
                    const struct narf_map *m)
{
	assert_true(narf_rcore_map(sim->rc, ME, old, m, NULL, sim->now));
	carry(sim);
}

/* A client batch writing one key of slot s: what its replies wait for. */
static bool write_key(struct sim *sim, unsigned s, struct narf_gate *gate)
{
	bool wait;

	narf_rcore_batch_begin(sim->rc);
	if (narf_rcore_streams(sim->rc, s)) {
		for (unsigned i = 0; i < sim->rc->n_peers; i++) {
			struct narf_rpeer *p = sim->rc->peers[i];
			bool q = narf_rcore_forwards(sim->rc, p, s);

			if (q)
				narf_rcore_link_queued(sim->rc, p, true,
				                       sim->now);
			narf_rcore_wrote(sim->rc, p, s, q);
		}
	}
	wait = narf_rcore_batch_end(sim->rc, gate);
	carry(sim);
	return wait;
}

/* Deliver every outstanding ack of peer id. */
static void ack_all(struct sim *sim, uint32_t id)
{
	struct narf_rpeer *p = narf_rcore_peer(sim->rc, id);

	assert_non_null(p);
	narf_rcore_link_acked(sim->rc, p, p->sent - p->acked, sim->now);
	carry(sim);
}

static bool gate_open(struct sim *sim, const struct narf_gate *g, bool *broken)
{
	return narf_rcore_gate_open(sim->rc, g, broken);
}

static int setup(void **state)
{
	struct sim *sim = calloc(1, sizeof(*sim));

	assert_non_null(sim);
	sim->rc = narf_rcore_create();
	assert_non_null(sim->rc);
	sim->now = 1000000;
	*state = sim;
	return 0;
}

static int teardown(void **state)
{
	struct sim *sim = *state;

	narf_rcore_destroy(sim->rc);
	for (unsigned i = 0; i < sim->n_maps; i++) {
		narf_map_close(sim->maps[i]);
		free(sim->maps[i]);
	}
	free(sim);
	return 0;
}

/* Map 10: we lead every slot, node 2 is in every ISR. */
static struct narf_map *lead_with_isr(struct sim *sim, uint32_t replica)
{
	struct narf_map *m = map_new(sim, 10);

	all_slots(m, ME, replica, true, 5);
	install(sim, NULL, m);
	return m;
}

/* The I/O's sync of slot s to p: the next slot the core wants synced,
 * one command queued (SYNC, entries and SYNCED as one), reported. */
static void sync_slot(struct sim *sim, struct narf_rpeer *p, unsigned s)
{
	assert_int_equal(narf_rcore_sync_next(sim->rc, p), (int)s);
	narf_rcore_link_queued(sim->rc, p, true, sim->now);
	narf_rcore_synced(sim->rc, p, s, true, p->sent);
}

/* m (epoch 10, installed here): node 3 leads every slot but 7, which we
 * lead with node 2 as a replica outside the ISR. The tick opens the link
 * and slot 7 is synced to node 2 (not yet acknowledged). Node 2's peer. */
static struct narf_rpeer *synced_slot7(struct sim *sim, struct narf_map *m)
{
	struct narf_rpeer *p;

	all_slots(m, 3, 0, false, 5);
	slot_set(m, 7, ME, 2, false, 5);
	install(sim, NULL, m);
	p = narf_rcore_peer(sim->rc, 2);
	assert_non_null(p);
	narf_rcore_tick(sim->rc, sim->now);
	carry(sim);
	sync_slot(sim, p, 7);
	return p;
}

/* --- the happy path --------------------------------------------------------
 */

static void test_write_waits_for_isr_ack(void **state)
{
	struct sim *sim = *state;
	struct narf_gate g = {0};
	struct narf_map *m, *m2;
	bool broken;

	m = lead_with_isr(sim, 2);
	assert_int_equal(acts_of(sim, NARF_RACT_OPEN_LINK, 2), 1);
	assert_true(write_key(sim, 7, &g));
	assert_false(gate_open(sim, &g, &broken));
	assert_false(broken);
	assert_int_equal(narf_rcore_gate_acked(sim->rc, &g), 0);
	ack_all(sim, 2);
	assert_true(gate_open(sim, &g, &broken));
	assert_int_equal(narf_rcore_gate_acked(sim->rc, &g), 1);
	/* A slot nobody replicates needs nothing. */
	m2 = map_new(sim, 11);
	all_slots(m2, ME, 2, true, 5);
	slot_set(m2, 9, ME, 0, false, 5);
	install(sim, m, m2);
	narf_gate_clear(&g);
	assert_false(write_key(sim, 9, &g));
	narf_gate_close(&g);
}

/* A replica's stream message we apply is not ours to stream. */
static void test_applying_is_not_streamed(void **state)
{
	struct sim *sim = *state;

	lead_with_isr(sim, 2);
	narf_rcore_applying(sim->rc, true);
	assert_false(narf_rcore_streams(sim->rc, 3));
	narf_rcore_applying(sim->rc, false);
	assert_true(narf_rcore_streams(sim->rc, 3));
}

/* --- link failures, excuses, min ISR ---------------------------------------
 */

/* The replica's link fails while a write waits: the core asks for the
 * drop, the gate stays closed until the drop is in our map, then opens
 * (excused). */
static void test_failure_excused_by_drop(void **state)
{
	struct sim *sim = *state;
	struct narf_map *m = lead_with_isr(sim, 2), *m2;
	struct narf_rpeer *p = narf_rcore_peer(sim->rc, 2);
	struct narf_gate g = {0};
	bool broken;

	assert_true(write_key(sim, 7, &g));
	narf_rcore_link_failed(sim->rc, p, p->gen, sim->now);
	carry(sim);
	assert_int_equal(acts_of(sim, NARF_RACT_ASK_DROP, 2), 1);
	assert_int_equal(p->drop.state, NARF_RREQ_ASKED);
	assert_false(gate_open(sim, &g, &broken));
	/* Taken at epoch 11; our map is 10: still waiting. */
	narf_rcore_isr_reply(sim->rc, 2, true, true, 11, sim->now);
	carry(sim);
	assert_int_equal(p->drop.state, NARF_RREQ_TAKEN);
	assert_false(gate_open(sim, &g, &broken));
	assert_false(broken);
	m2 = map_new(sim, 11);
	all_slots(m2, ME, 2, false, 5);
	install(sim, m, m2);
	assert_int_equal(p->drop.state, NARF_RREQ_IDLE);
	assert_true(gate_open(sim, &g, &broken));
	/* Node 2 is out of the ISR now: it is to be synced again. */
	assert_true(narf_rc_bit(p->want, 7));
	assert_false(narf_rc_bit(p->counts, 7));
	narf_gate_close(&g);
}

/* The same with min_isr 2: the excuse leaves the slot with one copy, so
 * the write is never acknowledged (broken: the client's connection
 * closes). A failed drop request is asked again by the tick. */
static void test_excuse_below_min_isr_breaks(void **state)
{
	struct sim *sim = *state;
	struct narf_map *m = map_new(sim, 10), *m2;
	struct narf_rpeer *p;
	struct narf_gate g = {0};
	bool broken;

	m->settings.min_isr = 2;
	all_slots(m, ME, 2, true, 5);
	install(sim, NULL, m);
	p = narf_rcore_peer(sim->rc, 2);
	assert_true(write_key(sim, 7, &g));
	narf_rcore_link_failed(sim->rc, p, p->gen, sim->now);
	carry(sim);
	narf_rcore_isr_reply(sim->rc, 2, true, false, 0,
	                     sim->now); /* not taken */
	carry(sim);
	assert_int_equal(p->drop.state, NARF_RREQ_WANTED);
	narf_rcore_tick(sim->rc, sim->now);
	carry(sim);
	assert_int_equal(acts_of(sim, NARF_RACT_ASK_DROP, 2), 2);
	narf_rcore_isr_reply(sim->rc, 2, true, true, 11, sim->now);
	m2 = map_new(sim, 11);
	m2->settings.min_isr = 2;
	all_slots(m2, ME, 2, false, 5);
	install(sim, m, m2);
	assert_false(gate_open(sim, &g, &broken));
	assert_true(broken);
	narf_gate_close(&g);
}

/* A link that cannot even be opened is a failure too: the peer in our
 * ISR is asked out, and writes never count its (impossible) acks. */
static void test_open_failure_asks_drop(void **state)
{
	struct sim *sim = *state;
	struct narf_gate g = {0};
	bool broken;

	sim->links_fail_to_open = true;
	lead_with_isr(sim, 2);
	assert_int_equal(acts_of(sim, NARF_RACT_ASK_DROP, 2), 1);
	assert_true(write_key(sim, 7, &g));
	assert_int_equal(g.need[0].seq, UINT64_MAX);
	assert_false(gate_open(sim, &g, &broken));
	/* The tick does not reopen while the drop is out. */
	sim->now += 1000;
	narf_rcore_tick(sim->rc, sim->now);
	carry(sim);
	assert_int_equal(acts_of(sim, NARF_RACT_OPEN_LINK, 2), 1);
	narf_gate_close(&g);
}

/* Out of memory queueing a command breaks the link: a later ack must
 * not release the write that was never queued. The next step fails it. */
static void test_broken_link_never_acks_missing_write(void **state)
{
	struct sim *sim = *state;
	struct narf_rpeer *p;
	struct narf_gate g = {0};
	bool broken;

	lead_with_isr(sim, 2);
	p = narf_rcore_peer(sim->rc, 2);
	narf_rcore_batch_begin(sim->rc);
	assert_true(narf_rcore_forwards(sim->rc, p, 7));
	narf_rcore_link_queued(sim->rc, p, false, sim->now);
	narf_rcore_wrote(sim->rc, p, 7, false);
	assert_true(narf_rcore_batch_end(sim->rc, &g));
	assert_int_equal(p->link, NARF_RLINK_BROKEN);
	assert_false(narf_rcore_forwards(sim->rc, p, 8));
	ack_all(sim, 2); /* the HELLO's */
	assert_false(gate_open(sim, &g, &broken));
	narf_rcore_step(sim->rc, sim->now);
	carry(sim);
	assert_int_equal(acts_of(sim, NARF_RACT_FAIL_LINK, 2), 1);
	assert_int_equal(p->link, NARF_RLINK_DOWN);
	assert_int_equal(acts_of(sim, NARF_RACT_ASK_DROP, 2), 1);
	narf_gate_close(&g);
}

/* --- stalls ------------------------------------------------------------------
 */

/* The replica stalls (SIGSTOP): acks stop. Within the node timeout the
 * link lives; past it, the tick fails the link and asks for the drop.
 * A stall of ours (no tick for a long time) is judged on the clock the
 * tick is given, not on ticks counted. */
static void test_ack_lag_past_node_timeout_fails_link(void **state)
{
	struct sim *sim = *state;
	struct narf_map *m = map_new(sim, 10);
	struct narf_gate g = {0};

	m->settings.node_timeout_ms = 600;
	all_slots(m, ME, 2, true, 5);
	install(sim, NULL, m);
	ack_all(sim, 2);
	assert_true(write_key(sim, 7, &g));
	sim->now += 600;
	narf_rcore_tick(sim->rc, sim->now);
	carry(sim);
	assert_int_equal(acts_of(sim, NARF_RACT_FAIL_LINK, 2), 0);
	sim->now += 5000; /* a long stall, then one tick */
	narf_rcore_tick(sim->rc, sim->now);
	carry(sim);
	assert_int_equal(acts_of(sim, NARF_RACT_FAIL_LINK, 2), 1);
	assert_int_equal(acts_of(sim, NARF_RACT_ASK_DROP, 2), 1);
	narf_gate_close(&g);
}

/* The lease (membership.c): counted from the heartbeat's send time; it
 * lapses during a stall however few ticks ran, and a reply older than
 * the lease does not bring it back. */
static void test_lease_lapses_during_stall(void **state)
{
	struct sim *sim = *state;
	struct narf_map *m = map_new(sim, 10);
	struct narf_member mb;
	uint64_t sent = 50000, lease;

	m->settings.node_timeout_ms = 600;
	lease = narf_lease_ms(600);
	assert_true(lease < 600);
	memset(&mb, 0, sizeof(mb));
	mb.map = m;
	mb.node_id = ME;
	mb.lease_ms = sent;
	assert_true(narf_member_lease_ok(&mb, sent));
	assert_true(narf_member_lease_ok(&mb, sent + lease - 1));
	assert_false(narf_member_lease_ok(&mb, sent + lease));
	assert_false(narf_member_lease_ok(&mb, sent + 10000));
}

/* --- role swaps, stale primaries, rollbacks ------------------------------- */

/* A write waits for node 2; the coordinator then makes node 2 the slot's
 * primary (a role swap). If node 2's ack can still come over the same
 * link, the gate waits for it; once the link is gone, it is broken (the
 * write may be nowhere but here, and we no longer lead the slot), never
 * excused. */
static void test_role_swap_while_write_waits(void **state)
{
	struct sim *sim = *state;
	struct narf_map *m = lead_with_isr(sim, 2), *m2;
	struct narf_rpeer *p = narf_rcore_peer(sim->rc, 2);
	struct narf_gate g = {0};
	bool broken;

	assert_true(write_key(sim, 7, &g));
	m2 = map_new(sim, 12);
	all_slots(m2, ME, 2, true, 5);
	slot_set(m2, 7, 2, ME, true, 12); /* swapped */
	install(sim, m, m2);
	assert_false(narf_rcore_leads(sim->rc, 7));
	assert_false(gate_open(sim, &g, &broken));
	assert_false(broken); /* the ack may still come */
	narf_rcore_link_failed(sim->rc, p, p->gen, sim->now);
	carry(sim);
	narf_rcore_isr_reply(sim->rc, 2, true, true, 12, sim->now);
	carry(sim);
	assert_false(gate_open(sim, &g, &broken));
	assert_true(broken);
	narf_gate_close(&g);
}

/* The same swap, but node 2 acknowledged before the link went: open. */
static void test_role_swap_after_ack_opens(void **state)
{
	struct sim *sim = *state;
	struct narf_map *m = lead_with_isr(sim, 2), *m2;
	struct narf_gate g = {0};
	bool broken;

	assert_true(write_key(sim, 7, &g));
	m2 = map_new(sim, 12);
	all_slots(m2, ME, 2, true, 5);
	slot_set(m2, 7, 2, ME, true, 12);
	install(sim, m, m2);
	ack_all(sim, 2);
	assert_true(gate_open(sim, &g, &broken));
	narf_gate_close(&g);
}

/* A stale primary writes to a slot we lead now (same epoch as ours):
 * refused; a newer epoch than our map's applies and fetches the map;
 * after that, the old primary's epoch is below the mark. */
static void test_stale_primary_fenced(void **state)
{
	struct sim *sim = *state;
	struct narf_map *m = map_new(sim, 20);

	all_slots(m, 2, ME, true, 15);
	slot_set(m, 7, ME, 2, true, 20); /* we were promoted at 20 */
	install(sim, NULL, m);
	sim->n_acts = 0;
	assert_int_equal(narf_rcore_accept(sim->rc, 7, 15), NARF_FENCE_STALE);
	assert_int_equal(narf_rcore_accept(sim->rc, 7, 20), NARF_FENCE_STALE);
	assert_int_equal(narf_rcore_accept(sim->rc, 8, 15), NARF_FENCE_APPLY);
	assert_int_equal(narf_rcore_accept(sim->rc, 8, 18), NARF_FENCE_NEWER);
	carry(sim);
	assert_int_equal(acts_of(sim, NARF_RACT_WANT_MAP, 0), 1);
	assert_int_equal(narf_rcore_accept(sim->rc, 8, 15), NARF_FENCE_STALE);
	assert_int_equal(sim->rc->hwm[8], 18);
}

/* A peer that wrote to our slots as a stale primary may hold writes we
 * lack: its link fails and it is asked out of our ISRs. */
static void test_diverged_peer_dropped(void **state)
{
	struct sim *sim = *state;

	lead_with_isr(sim, 2);
	narf_rcore_diverged(sim->rc, 2, sim->now);
	carry(sim);
	assert_int_equal(acts_of(sim, NARF_RACT_FAIL_LINK, 2), 1);
	assert_int_equal(acts_of(sim, NARF_RACT_ASK_DROP, 2), 1);
	/* An unknown or non-ISR peer: nothing. */
	narf_rcore_diverged(sim->rc, 3, sim->now);
	carry(sim);
	assert_int_equal(acts_of(sim, NARF_RACT_FAIL_LINK, 3), 0);
}

/* A map older than ours (a deposed leader's) is ignored: nothing we lead
 * changes, nothing is dropped. */
static void test_map_rollback_ignored(void **state)
{
	struct sim *sim = *state;
	struct narf_map *m = lead_with_isr(sim, 2), *old = map_new(sim, 9);

	(void)m;
	all_slots(old, 2, ME, true, 9);
	assert_false(narf_rcore_map(sim->rc, ME, m, old, NULL, sim->now));
	assert_true(narf_rcore_leads(sim->rc, 7));
	assert_int_equal(sim->rc->epoch, 10);
	assert_int_equal(sim->rc->lost_at[7], 0);
}

/* A slot that began anew (born) after the map we had: entries of its old
 * lineage are dropped, unless the new lineage's stream already reached
 * us. */
static void test_new_lineage_drops_old_entries(void **state)
{
	struct sim *sim = *state;
	struct narf_map *m = map_new(sim, 10), *m2;

	all_slots(m, 2, ME, true, 5);
	install(sim, NULL, m);
	/* A stream of the new lineage for slot 8 came before the map. */
	assert_int_equal(narf_rcore_accept(sim->rc, 8, 13), NARF_FENCE_NEWER);
	m2 = map_new(sim, 14);
	all_slots(m2, 2, ME, true, 5);
	slot_set(m2, 7, 3, ME, false, 13);
	m2->slots[7].born = 13;
	slot_set(m2, 8, 3, ME, false, 13);
	m2->slots[8].born = 13;
	sim->n_acts = 0;
	install(sim, m, m2);
	assert_int_equal(acts_of(sim, NARF_RACT_DROP_SLOT, 0), 1);
	for (unsigned i = 0; i < sim->n_acts; i++)
		if (sim->acts[i].kind == NARF_RACT_DROP_SLOT)
			assert_int_equal(sim->acts[i].slot, 7);
}

/* --- syncs and joins ---------------------------------------------------------
 */

/* A replica outside the ISR is synced; its acks count from NARF.SYNCED;
 * once it acked that, the next step asks it into the ISR. */
static void test_sync_then_join(void **state)
{
	struct sim *sim = *state;
	struct narf_map *m = map_new(sim, 10);
	struct narf_rpeer *p;
	struct narf_gate g = {0};
	bool broken;
	int s;

	all_slots(m, 3, 0, false, 5);
	slot_set(m, 7, ME, 2, false, 5);
	install(sim, NULL, m);
	p = narf_rcore_peer(sim->rc, 2);
	assert_non_null(p);
	assert_true(narf_rc_bit(p->want, 7));
	/* No link yet (nothing in an ISR): the tick opens one. */
	narf_rcore_tick(sim->rc, sim->now);
	carry(sim);
	assert_int_equal(p->link, NARF_RLINK_UP);
	s = narf_rcore_sync_next(sim->rc, p);
	assert_int_equal(s, 7);
	/* SYNC, two entries, SYNCED */
	for (int i = 0; i < 4; i++)
		narf_rcore_link_queued(sim->rc, p, true, sim->now);
	narf_rcore_synced(sim->rc, p, 7, true, p->sent);
	assert_int_equal(narf_rcore_sync_next(sim->rc, p), -1);
	assert_true(narf_rc_bit(p->counts, 7));
	assert_true(write_key(sim, 7, &g));
	narf_rcore_step(sim->rc, sim->now);
	carry(sim);
	assert_int_equal(acts_of(sim, NARF_RACT_ASK_ADD, 2), 0);
	ack_all(sim, 2);
	assert_true(gate_open(sim, &g, &broken));
	narf_rcore_step(sim->rc, sim->now);
	carry(sim);
	assert_int_equal(acts_of(sim, NARF_RACT_ASK_ADD, 2), 1);
	assert_true(narf_rc_bit(p->asked, 7));
	/* Refused: asked again at the next step. */
	narf_rcore_isr_reply(sim->rc, 2, false, false, 0, sim->now);
	narf_rcore_step(sim->rc, sim->now);
	carry(sim);
	assert_int_equal(acts_of(sim, NARF_RACT_ASK_ADD, 2), 2);
	narf_rcore_isr_reply(sim->rc, 2, false, true, 11, sim->now);
	assert_int_equal(p->add.state, NARF_RREQ_IDLE);
	narf_gate_close(&g);
}

/* A replica went down and came back while we missed every map that said
 * so: the next map shows it outside the ISR of slots we forwarded to it,
 * with isr_dropped past our sync. The core fails the link (without asking
 * a drop: it is in no ISR of ours) and syncs the slots again over a new
 * one, never counting the old copies; a peer synced after the drop is
 * left alone. */
static void test_missed_down_resyncs_over_a_new_link(void **state)
{
	struct sim *sim = *state;
	struct narf_map *m = lead_with_isr(sim, 2);
	struct narf_map *m2 = map_new(sim, 14);
	struct narf_rpeer *p = narf_rcore_peer(sim->rc, 2);
	uint64_t gen;

	assert_non_null(p);
	assert_int_equal(p->link, NARF_RLINK_UP);
	assert_true(narf_rc_bit(p->fwd, 7) && narf_rc_bit(p->counts, 7));
	gen = p->gen;
	/* Epochs 11-13 (node 2 down, then up) never reached us. */
	all_slots(m2, ME, 2, false, 5);
	m2->nodes[1].isr_dropped = 12;
	install(sim, NULL, m2);
	assert_int_equal(acts_of(sim, NARF_RACT_FAIL_LINK, 2), 1);
	assert_int_equal(acts_of(sim, NARF_RACT_ASK_DROP, 2), 0);
	assert_false(narf_rc_bit(p->counts, 7));
	assert_false(narf_rc_bit(p->fwd, 7));
	assert_true(narf_rc_bit(p->want, 7));
	/* A new link (after the retry pause), and a slot synced over it;
	 * a later map with the same drop keeps it. */
	sim->now += 5000;
	narf_rcore_tick(sim->rc, sim->now);
	carry(sim);
	assert_int_equal(p->link, NARF_RLINK_UP);
	assert_true(p->gen > gen);
	sync_slot(sim, p, 0);
	assert_true(narf_rc_bit(p->fwd, 0));
	m = map_new(sim, 15);
	all_slots(m, ME, 2, false, 5);
	m->nodes[1].isr_dropped = 12;
	install(sim, NULL, m);
	assert_true(narf_rc_bit(p->fwd, 0));
	assert_int_equal(acts_of(sim, NARF_RACT_FAIL_LINK, 2), 1);
}

/* A link failure mid-join: the slot is synced again, the join dies, and
 * (its acks counted) the peer is asked out first. */
static void test_link_failure_mid_join(void **state)
{
	struct sim *sim = *state;
	struct narf_map *m = map_new(sim, 10);
	struct narf_rpeer *p;

	p = synced_slot7(sim, m);
	assert_int_equal(p->n_joins, 1);
	narf_rcore_link_failed(sim->rc, p, p->gen, sim->now);
	carry(sim);
	assert_int_equal(p->n_joins, 0);
	assert_true(narf_rc_bit(p->want, 7));
	assert_false(narf_rc_bit(p->counts, 7));
	assert_int_equal(acts_of(sim, NARF_RACT_ASK_DROP, 2), 1);
	/* A report about the dead incarnation changes nothing. */
	narf_rcore_link_failed(sim->rc, p, p->gen - 1, sim->now);
	carry(sim);
	assert_int_equal(acts_of(sim, NARF_RACT_ASK_DROP, 2), 1);
}

/* m (epoch 10, installed here): as synced_slot7, but slot 7's sync is
 * left open (big collections still being sent, repl_xfer.c). */
static struct narf_rpeer *open_slot7(struct sim *sim, struct narf_map *m)
{
	struct narf_rpeer *p;

	all_slots(m, 3, 0, false, 5);
	slot_set(m, 7, ME, 2, false, 5);
	install(sim, NULL, m);
	p = narf_rcore_peer(sim->rc, 2);
	assert_non_null(p);
	narf_rcore_tick(sim->rc, sim->now);
	carry(sim);
	assert_int_equal(narf_rcore_sync_next(sim->rc, p), 7);
	narf_rcore_link_queued(sim->rc, p, true, sim->now); /* SYNC, .. */
	narf_rcore_sync_open(sim->rc, p, 7);
	return p;
}

/* An open sync forwards the slot's writes to the peer without counting
 * its acks (a write waits for nobody), keeps the peer's work going and
 * comes back from sync_next before any other wanted slot; nothing joins
 * until NARF.SYNCED, after which its acks count and it is asked in. */
static void test_open_sync_forwards_without_counting(void **state)
{
	struct sim *sim = *state;
	struct narf_map *m = map_new(sim, 10);
	struct narf_gate g = {0};
	struct narf_rpeer *p;
	uint64_t sent;

	p = open_slot7(sim, m);
	assert_true(p->open);
	assert_true(narf_rc_bit(p->fwd, 7));
	assert_false(narf_rc_bit(p->want, 7));
	assert_false(narf_rc_bit(p->counts, 7));
	sent = p->sent;
	assert_false(write_key(sim, 7, &g)); /* forwarded, not waited for */
	assert_int_equal(p->sent, sent + 1);
	ack_all(sim, 2);
	narf_rcore_step(sim->rc, sim->now);
	carry(sim);
	assert_true(p->work);
	assert_int_equal(acts_of(sim, NARF_RACT_ASK_ADD, 2), 0);
	assert_int_equal(narf_rcore_sync_next(sim->rc, p), 7);
	/* the idle-link rule leaves an open link alone */
	narf_rcore_tick(sim->rc, sim->now);
	carry(sim);
	assert_int_equal(acts_of(sim, NARF_RACT_CLOSE_LINK, 2), 0);
	/* the transfers end: NARF.SYNCED */
	narf_rcore_link_queued(sim->rc, p, true, sim->now);
	narf_rcore_synced(sim->rc, p, 7, true, p->sent);
	assert_false(p->open);
	assert_true(narf_rc_bit(p->counts, 7));
	assert_int_equal(narf_rcore_sync_next(sim->rc, p), -1);
	assert_true(write_key(sim, 7, &g));
	ack_all(sim, 2);
	narf_rcore_step(sim->rc, sim->now);
	carry(sim);
	assert_int_equal(acts_of(sim, NARF_RACT_ASK_ADD, 2), 1);
	narf_gate_close(&g);
}

/* A link failure mid-transfer closes the open sync and wants the slot
 * again (never counted: no ISR drop is asked); losing the slot closes it
 * and forgets it. */
static void test_open_sync_ends_on_failure_or_loss(void **state)
{
	struct sim *sim = *state;
	struct narf_map *m = map_new(sim, 10);
	struct narf_map *m2 = map_new(sim, 11);
	struct narf_rpeer *p;

	p = open_slot7(sim, m);
	narf_rcore_link_failed(sim->rc, p, p->gen, sim->now);
	carry(sim);
	assert_false(p->open);
	assert_true(narf_rc_bit(p->want, 7));
	assert_false(narf_rc_bit(p->fwd, 7));
	assert_int_equal(acts_of(sim, NARF_RACT_ASK_DROP, 2), 0);
	/* A new link, the slot open again, then node 3 takes it. */
	sim->now += NARF_LINK_RETRY_MS;
	narf_rcore_tick(sim->rc, sim->now);
	carry(sim);
	assert_int_equal(narf_rcore_sync_next(sim->rc, p), 7);
	narf_rcore_sync_open(sim->rc, p, 7);
	assert_true(p->open);
	all_slots(m2, 3, 0, false, 5);
	slot_set(m2, 7, 3, 2, false, 11);
	install(sim, m, m2);
	assert_false(p->open);
	assert_false(narf_rc_bit(p->fwd, 7));
	assert_false(narf_rc_bit(p->want, 7));
	assert_int_equal(narf_rcore_sync_next(sim->rc, p), -1);
}

/* The link fails while an add is out (the peer synced, acked, was asked
 * into the ISR). The drop waits for the add's answer, so the coordinator
 * cannot apply it first and the add after it; meanwhile, writes to the
 * slot wait for the peer's excuse (it may be in the ISR once the add
 * applies) instead of being acknowledged without it. Found by the model
 * check (test_repl_model.c). */
static void test_drop_waits_for_add_answer(void **state)
{
	struct sim *sim = *state;
	struct narf_map *m = map_new(sim, 10), *m2, *m3;
	struct narf_rpeer *p;
	struct narf_gate g = {0};
	bool broken;

	p = synced_slot7(sim, m);
	ack_all(sim, 2);
	narf_rcore_step(sim->rc, sim->now);
	carry(sim);
	assert_int_equal(acts_of(sim, NARF_RACT_ASK_ADD, 2), 1);
	narf_rcore_link_failed(sim->rc, p, p->gen, sim->now);
	carry(sim);
	assert_int_equal(p->drop.state, NARF_RREQ_WANTED);
	assert_int_equal(acts_of(sim, NARF_RACT_ASK_DROP, 2), 0);
	narf_rcore_tick(sim->rc, sim->now); /* not even the tick asks */
	carry(sim);
	assert_int_equal(acts_of(sim, NARF_RACT_ASK_DROP, 2), 0);
	/* A write now waits for node 2's excuse. */
	assert_true(write_key(sim, 7, &g));
	assert_int_equal(g.need[0].seq, UINT64_MAX);
	/* The add was taken (epoch 11): now the drop goes. */
	narf_rcore_isr_reply(sim->rc, 2, false, true, 11, sim->now);
	carry(sim);
	assert_int_equal(acts_of(sim, NARF_RACT_ASK_DROP, 2), 1);
	m2 = map_new(sim, 11);
	all_slots(m2, 3, 0, false, 5);
	slot_set(m2, 7, ME, 2, true, 5); /* the add applied */
	install(sim, m, m2);
	assert_false(gate_open(sim, &g, &broken));
	narf_rcore_isr_reply(sim->rc, 2, true, true, 12, sim->now);
	carry(sim);
	assert_false(gate_open(sim, &g, &broken));
	m3 = map_new(sim, 12);
	all_slots(m3, 3, 0, false, 5);
	slot_set(m3, 7, ME, 2, false, 5); /* and the drop after it */
	install(sim, m2, m3);
	assert_true(gate_open(sim, &g, &broken));
	narf_gate_close(&g);
}

/* An add says since when its syncs ran (the oldest of its slots'); a slot
 * whose slot epoch is newer than that waits for the next add. An add the
 * coordinator refuses as stale fails the link: the peer is synced again. */
static void test_add_since_and_stale_refusal(void **state)
{
	struct sim *sim = *state;
	struct narf_map *m = map_new(sim, 10), *m2;
	struct narf_rpeer *p;

	p = synced_slot7(sim, m);
	/* Slot 8 becomes ours at epoch 12 and is synced then. */
	m2 = map_new(sim, 12);
	all_slots(m2, 3, 0, false, 5);
	slot_set(m2, 7, ME, 2, false, 5);
	slot_set(m2, 8, ME, 2, false, 12);
	install(sim, m, m2);
	sync_slot(sim, p, 8);
	ack_all(sim, 2);
	narf_rcore_step(sim->rc, sim->now);
	carry(sim);
	/* Slot 7 (synced at 10) goes first, since 10; slot 8 waits. */
	assert_int_equal(acts_of(sim, NARF_RACT_ASK_ADD, 2), 1);
	assert_int_equal(p->add_since, 10);
	assert_true(narf_rc_bit(p->asked, 7));
	assert_false(narf_rc_bit(p->asked, 8));
	narf_rcore_isr_reply(sim->rc, 2, false, true, 13, sim->now);
	narf_rcore_step(sim->rc, sim->now);
	carry(sim);
	assert_int_equal(acts_of(sim, NARF_RACT_ASK_ADD, 2), 2);
	assert_int_equal(p->add_since, 12);
	assert_true(narf_rc_bit(p->asked, 8));
	/* Refused as stale: the link fails, slot 8 is to be synced again. */
	narf_rcore_isr_reply(sim->rc, 2, false, false, NARF_RREQ_STALE,
	                     sim->now);
	carry(sim);
	assert_int_equal(acts_of(sim, NARF_RACT_FAIL_LINK, 2), 1);
	assert_int_equal(p->link, NARF_RLINK_DOWN);
	assert_true(narf_rc_bit(p->want, 8));
}

/* --- handoffs ----------------------------------------------------------------
 */

/* The map moves slot 7 to node 2: writes stop (handing), and the handoff
 * is reported only once node 2 acked everything sent before. A map made
 * by another node's entry does not end the request; the one its entry
 * made does. */
static void test_handoff_waits_for_acks_and_its_map(void **state)
{
	struct sim *sim = *state;
	struct narf_map *m = lead_with_isr(sim, 2), *m2, *m3, *m4;
	struct narf_rpeer *p = narf_rcore_peer(sim->rc, 2);
	struct narf_gate g = {0};

	assert_true(write_key(sim, 7, &g));
	m2 = map_new(sim, 11);
	all_slots(m2, ME, 2, true, 5);
	m2->slots[7].move = 2;
	install(sim, m, m2);
	assert_true(narf_rc_bit(sim->rc->handing, 7));
	narf_rcore_step(sim->rc, sim->now);
	carry(sim);
	assert_int_equal(acts_of(sim, NARF_RACT_HANDOFF, 2), 0); /* acks */
	ack_all(sim, 2);
	narf_rcore_step(sim->rc, sim->now);
	carry(sim);
	assert_int_equal(acts_of(sim, NARF_RACT_HANDOFF, 2), 1);
	narf_rcore_handoff_reply(sim->rc, p, true, 13);
	assert_int_equal(p->hand.state, NARF_RREQ_TAKEN);
	/* Epoch 12, another node's entry: still taken, not asked again. */
	m3 = map_new(sim, 12);
	all_slots(m3, ME, 2, true, 5);
	m3->slots[7].move = 2;
	install(sim, m2, m3);
	narf_rcore_step(sim->rc, sim->now);
	carry(sim);
	assert_int_equal(acts_of(sim, NARF_RACT_HANDOFF, 2), 1);
	/* Epoch 13: node 2 leads slot 7. */
	m4 = map_new(sim, 13);
	all_slots(m4, ME, 2, true, 5);
	slot_set(m4, 7, 2, ME, true, 13);
	install(sim, m3, m4);
	assert_int_equal(p->hand.state, NARF_RREQ_IDLE);
	assert_false(narf_rc_bit(sim->rc->handing, 7));
	assert_int_equal(p->n_handoff, 0);
	narf_gate_close(&g);
}

/* A handoff refused (the moves changed under it) is asked again; one
 * cancelled by the map (move cleared) ends without a request. */
static void test_handoff_refused_then_cancelled(void **state)
{
	struct sim *sim = *state;
	struct narf_map *m = lead_with_isr(sim, 2), *m2, *m3;
	struct narf_rpeer *p = narf_rcore_peer(sim->rc, 2);

	ack_all(sim, 2);
	m2 = map_new(sim, 11);
	all_slots(m2, ME, 2, true, 5);
	m2->slots[7].move = 2;
	install(sim, m, m2);
	narf_rcore_step(sim->rc, sim->now);
	carry(sim);
	assert_int_equal(acts_of(sim, NARF_RACT_HANDOFF, 2), 1);
	narf_rcore_handoff_reply(sim->rc, p, false, 0);
	narf_rcore_step(sim->rc, sim->now);
	carry(sim);
	assert_int_equal(acts_of(sim, NARF_RACT_HANDOFF, 2), 2);
	narf_rcore_handoff_reply(sim->rc, p, false, 0);
	m3 = map_new(sim, 12);
	all_slots(m3, ME, 2, true, 5); /* the move was cancelled */
	install(sim, m2, m3);
	assert_false(narf_rc_bit(sim->rc->handing, 7));
	narf_rcore_step(sim->rc, sim->now);
	carry(sim);
	assert_int_equal(acts_of(sim, NARF_RACT_HANDOFF, 2), 2);
}

/* --- links' lifecycle, the replica side --------------------------------------
 */

/* A link with nothing of ours left on it is closed by the tick. */
static void test_idle_link_closed(void **state)
{
	struct sim *sim = *state;
	struct narf_map *m = lead_with_isr(sim, 2), *m2;
	struct narf_rpeer *p = narf_rcore_peer(sim->rc, 2);

	ack_all(sim, 2);
	m2 = map_new(sim, 11);
	all_slots(m2, ME, 0, false, 5);
	install(sim, m, m2);
	narf_rcore_tick(sim->rc, sim->now);
	carry(sim);
	assert_int_equal(acts_of(sim, NARF_RACT_CLOSE_LINK, 2), 1);
	assert_int_equal(p->link, NARF_RLINK_DOWN);
}

/* Stream messages on a sender's older inbound connection (what TCP
 * retransmitted after a partition healed) are refused once a newer one
 * carried the stream. */
static void test_superseded_stream_connection(void **state)
{
	struct sim *sim = *state;

	assert_true(narf_rcore_stream_conn(sim->rc, 2, 5));
	assert_true(narf_rcore_stream_conn(sim->rc, 3, 4));
	assert_true(narf_rcore_stream_conn(sim->rc, 2, 9));
	assert_false(narf_rcore_stream_conn(sim->rc, 2, 5));
	assert_true(narf_rcore_stream_conn(sim->rc, 3, 4));
	assert_int_equal(sim->rc->stale_links, 1);
	/* Node 3 is removed from the cluster: its entry goes. */
	{
		struct narf_map *m = map_new(sim, 10);

		m->nodes[2].state = NARF_NODE_REMOVED;
		install(sim, NULL, m);
		assert_int_equal(sim->rc->n_in_links, 1);
		assert_int_equal(sim->rc->in_links[0].node, 2);
	}
}

/* A sync to us made under a newer map than ours: our older map's lack of
 * a copy does not drop the slot until our map is that new. */
static void test_sync_epoch_keeps_copy(void **state)
{
	struct sim *sim = *state;
	struct narf_map *m = map_new(sim, 10), *m2;

	all_slots(m, 2, 0, false, 5);
	install(sim, NULL, m);
	narf_rcore_sync_begin(sim->rc, 7, 12);
	assert_true(narf_rc_bit(sim->rc->syncing, 7));
	assert_false(narf_rcore_may_drop(sim->rc, m, 7));
	m2 = map_new(sim, 11);
	all_slots(m2, 2, 0, false, 5);
	install(sim, m, m2);
	assert_true(narf_rc_bit(sim->rc->syncing, 7)); /* not yet */
	narf_rcore_sync_end(sim->rc, 7);
	assert_false(narf_rc_bit(sim->rc->syncing, 7));
}

/* A node that leaves the map (node_forget): its in-link is forgotten with
 * the map, and its peer once the link to it is closed and nothing of ours
 * is in flight to it; the I/O hears FORGET_PEER naming it. Only then: a
 * removed node still in the map keeps its peer. */
static void test_forgotten_node_peer_freed(void **state)
{
	struct sim *sim = *state;
	struct narf_map *m = lead_with_isr(sim, 2), *m2, *m3;

	assert_true(narf_rcore_stream_conn(sim->rc, 2, 5));
	assert_true(narf_rcore_stream_conn(sim->rc, 3, 6));
	ack_all(sim, 2);
	/* Removed, still in the map: the peer stays. */
	m2 = map_new(sim, 11);
	all_slots(m2, ME, 0, false, 5);
	m2->nodes[1].state = NARF_NODE_REMOVED;
	install(sim, m, m2);
	for (unsigned i = 0; i < 3; i++) {
		narf_rcore_tick(sim->rc, sim->now);
		carry(sim);
	}
	assert_int_equal(acts_of(sim, NARF_RACT_CLOSE_LINK, 2), 1);
	assert_non_null(narf_rcore_peer(sim->rc, 2));
	assert_int_equal(sim->rc->n_in_links, 1);
	/* Forgotten: gone from the nodes. */
	m3 = map_new(sim, 12);
	all_slots(m3, ME, 0, false, 5);
	m3->nodes[1] = m3->nodes[2];
	m3->n_nodes = 2;
	install(sim, m2, m3);
	assert_int_equal(acts_of(sim, NARF_RACT_FORGET_PEER, 0), 0);
	narf_rcore_tick(sim->rc, sim->now);
	sim->n_acts = 0; /* earlier actions name the peer about to go */
	carry(sim);
	assert_null(narf_rcore_peer(sim->rc, 2));
	assert_int_equal(acts_of(sim, NARF_RACT_FORGET_PEER, 0), 1);
	assert_int_equal(sim->acts[0].node, 2);
	assert_null(sim->acts[0].peer);
	/* The other sender's in-link stays. */
	assert_int_equal(sim->rc->n_in_links, 1);
	assert_false(narf_rcore_stream_conn(sim->rc, 3, 5));
}

/* A dirty walk (a map with what changed from the one before) ends a sync
 * to us as a full walk does, though the slot did not change: slot 9,
 * which we do not hold, synced to us under the sender's map 12, stays
 * syncing with map 11 and is over with map 12, whose dirty set names
 * slot 8 only. */
static void test_dirty_walk_ends_sync(void **state)
{
	struct sim *sim = *state;
	struct narf_map *m = map_new(sim, 10), *m2 = map_new(sim, 11);
	struct narf_map *m3 = map_new(sim, 12);
	struct narf_map_dirty d;

	all_slots(m, 3, 0, false, 5);
	all_slots(m2, 3, 0, false, 5);
	all_slots(m3, 3, 0, false, 5);
	slot_set(m3, 8, 3, 2, true, 5);
	install(sim, NULL, m);
	narf_rcore_sync_begin(sim->rc, 9, 12);
	narf_map_dirty_clear(&d);
	assert_true(narf_rcore_map(sim->rc, ME, m, m2, &d, sim->now));
	assert_true(narf_rc_bit(sim->rc->syncing, 9));
	d.slots[0] = (uint64_t)1 << 8;
	d.n_slots = 1;
	assert_true(narf_rcore_map(sim->rc, ME, m2, m3, &d, sim->now));
	assert_false(narf_rc_bit(sim->rc->syncing, 9));
	carry(sim);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	        T(test_write_waits_for_isr_ack),
	        T(test_applying_is_not_streamed),
	        T(test_failure_excused_by_drop),
	        T(test_excuse_below_min_isr_breaks),
	        T(test_open_failure_asks_drop),
	        T(test_broken_link_never_acks_missing_write),
	        T(test_ack_lag_past_node_timeout_fails_link),
	        T(test_lease_lapses_during_stall),
	        T(test_role_swap_while_write_waits),
	        T(test_role_swap_after_ack_opens),
	        T(test_stale_primary_fenced),
	        T(test_diverged_peer_dropped),
	        T(test_map_rollback_ignored),
	        T(test_new_lineage_drops_old_entries),
	        T(test_sync_then_join),
	        T(test_missed_down_resyncs_over_a_new_link),
	        T(test_link_failure_mid_join),
	        T(test_open_sync_forwards_without_counting),
	        T(test_open_sync_ends_on_failure_or_loss),
	        T(test_drop_waits_for_add_answer),
	        T(test_add_since_and_stale_refusal),
	        T(test_handoff_waits_for_acks_and_its_map),
	        T(test_handoff_refused_then_cancelled),
	        T(test_idle_link_closed),
	        T(test_superseded_stream_connection),
	        T(test_sync_epoch_keeps_copy),
	        T(test_forgotten_node_peer_freed),
	        T(test_dirty_walk_ends_sync),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
