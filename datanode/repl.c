/*
 * Replication, slot sync and proxying: see repl.h for the protocol.
 *
 * Per peer node: a replication link and a proxy link (struct link), and
 * three slot bitsets. `fwd`: the slot's live writes go to the peer (it holds
 * the whole slot, or is being sent it). `counts`: the peer's acks count for
 * clients (it is in the slot's ISR in the map, or we synced it and asked the
 * coordinator to add it). `want`: the slot is to be synced to the peer.
 *
 * A link failure (connection error, -STALE, an ack lagging past the node
 * timeout) ends forwarding to the peer, forgets what was synced to it, and
 * asks the coordinator to drop it from the ISR of our slots; until that
 * entry is applied, clients whose writes need the peer keep waiting. Then
 * the peer is excused, a new link is made, and its slots are synced again.
 *
 * Four files: repl_int.h holds the state (struct narf_repl, narf_peer,
 * link) and what the others share; repl_link.c the links and the peers'
 * ISR requests; repl_sync.c the syncs, ISR joins and handoffs pumped every
 * loop iteration; this file the write stream, the gates clients wait
 * behind, the map's rules, the replica side, proxying and the cron.
 */
#include "repl_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/flags.h"
#include "common/log.h"

void repl_progress(struct narf_repl *r)
{
	if (r->progress_cb != NULL)
		r->progress_cb(r->progress_data);
}

/* --- gates --------------------------------------------------------------- */

void narf_gate_clear(struct narf_gate *g)
{
	g->n = 0;
	g->epoch = 0;
	g->n_slots = 0;
	g->many = false;
}

static void gate_slot(struct narf_gate *g, unsigned slot)
{
	for (unsigned i = 0; i < g->n_slots; i++)
		if (g->slots[i] == slot)
			return;
	if (g->n_slots < NARF_GATE_SLOTS)
		g->slots[g->n_slots++] = (uint16_t)slot;
	else
		g->many = true;
}

/* Did we lose a slot the gate's writes went to, after they ran? */
static bool gate_lost_slot(const struct narf_repl *r, const struct narf_gate *g)
{
	if (g->many) {
		for (unsigned s = 0; s < NARF_SLOTS; s++)
			if (r->lost_at[s] > g->epoch)
				return true;
		return false;
	}
	for (unsigned i = 0; i < g->n_slots; i++)
		if (r->lost_at[g->slots[i]] > g->epoch)
			return true;
	return false;
}

void narf_gate_close(struct narf_gate *g)
{
	free(g->need);
	memset(g, 0, sizeof(*g));
}

/* Record that g needs seq on peer/gen (the highest wins). */
static void gate_need(struct narf_gate *g,
                      uint32_t peer,
                      uint32_t gen,
                      uint64_t seq)
{
	for (unsigned i = 0; i < g->n; i++)
		if (g->need[i].peer == peer && g->need[i].gen == gen) {
			if (seq > g->need[i].seq)
				g->need[i].seq = seq;
			return;
		}
	if (g->n == g->cap) {
		unsigned cap = g->cap ? 2 * g->cap : 4;
		struct narf_need *n = realloc(g->need, cap * sizeof(*n));

		if (n == NULL) {
			/* Cannot remember the exact need: wait for the most
			 * a peer can give, an excuse or everything sent. */
			if (g->n > 0)
				g->need[g->n - 1].seq = UINT64_MAX;
			return;
		}
		g->need = n;
		g->cap = cap;
	}
	g->need[g->n++] = (struct narf_need){peer, gen, seq};
}

struct narf_peer *repl_peer_find(const struct narf_repl *r, uint32_t id)
{
	for (unsigned i = 0; i < r->n_peers; i++)
		if (r->peers[i]->id == id)
			return r->peers[i];
	return NULL;
}

static bool excused(const struct narf_peer *p)
{
	return !p->dropping && p->n_counts == 0;
}

/* Has the peer applied what n needs? */
static bool need_acked(const struct narf_repl *r, const struct narf_need *n)
{
	const struct narf_peer *p = repl_peer_find(r, n->peer);

	return p != NULL && n->seq != UINT64_MAX && p->repl != NULL &&
	       p->gen == n->gen && p->repl->acked >= n->seq;
}

/*
 * Every need acknowledged, or excused: the peer was dropped from the ISR of
 * every slot we lead. An excuse is worth nothing once we have lost a slot
 * since the batch ran: the coordinator may have made that very peer the
 * slot's primary (a role swap) before our drop, and it never applied the
 * write (it refused our stream as stale). Such a gate is broken: the
 * client must see an error, never "OK". Its ack can still come over the
 * same link, though (a handoff: we lost the slot to its target, which
 * acknowledged everything first, while another replica's ack is on its
 * way): while that link lives the gate waits for it; the lag check ends
 * the link if the ack never comes.
 */
/* Does a slot g wrote now have fewer in-sync copies (the primary and its
 * ISR) than the map's min_isr? */
static bool gate_short(const struct narf_repl *r, const struct narf_gate *g)
{
	const struct narf_map *map = repl_map(r);

	if (map == NULL || map->settings.min_isr <= 1)
		return false;
	for (unsigned i = 0; i < (g->many ? NARF_SLOTS : g->n_slots); i++) {
		unsigned s = g->many ? i : g->slots[i];

		if ((!g->many || bit(r->lead, s)) &&
		    1u + map->slots[s].n_isr < map->settings.min_isr)
			return true;
	}
	return false;
}

bool narf_repl_gate_open(const struct narf_repl *r,
                         const struct narf_gate *g,
                         bool *broken)
{
	bool excuse = false;

	*broken = false;
	for (unsigned i = 0; i < g->n; i++) {
		const struct narf_peer *p;

		if (need_acked(r, &g->need[i]))
			continue;
		p = repl_peer_find(r, g->need[i].peer);
		if (gate_lost_slot(r, g)) {
			if (p != NULL && p->repl != NULL &&
			    p->gen == g->need[i].gen &&
			    g->need[i].seq != UINT64_MAX)
				return false; /* the ack may still come */
			*broken = true;
			return false;
		}
		if (p != NULL && !excused(p))
			return false;
		excuse = true;
	}
	/* Excused by an ISR drop that left the slot below min_isr: the write
	 * may be on this node alone, which min_isr promised never to
	 * acknowledge. Its client gets no "OK" (the connection closes: the
	 * write's fate is unknown to it, as after a timeout). */
	if (excuse && gate_short(r, g)) {
		*broken = true;
		return false;
	}
	return true;
}

unsigned narf_repl_gate_acked(const struct narf_repl *r,
                              const struct narf_gate *g)
{
	unsigned n = 0;

	for (unsigned i = 0; i < g->n; i++)
		n += need_acked(r, &g->need[i]);
	return n;
}

void narf_repl_batch_begin(struct narf_repl *r)
{
	r->in_batch = true;
	narf_gate_clear(&r->batch);
}

void narf_gate_merge(struct narf_gate *dst, const struct narf_gate *src)
{
	if (src->n == 0)
		return;
	if (dst->n == 0 || src->epoch < dst->epoch)
		dst->epoch = src->epoch;
	for (unsigned i = 0; i < src->n; i++)
		gate_need(dst, src->need[i].peer, src->need[i].gen,
		          src->need[i].seq);
	dst->many = dst->many || src->many;
	for (unsigned i = 0; i < src->n_slots; i++)
		gate_slot(dst, src->slots[i]);
}

bool narf_repl_batch_end(struct narf_repl *r, struct narf_gate *gate)
{
	r->in_batch = false;
	if (r->batch.n == 0)
		return false;
	r->batch.epoch = r->epoch;
	narf_gate_merge(gate, &r->batch);
	narf_gate_clear(&r->batch);
	return true;
}

void narf_repl_set_progress_cb(struct narf_repl *r,
                               void (*cb)(void *data),
                               void *data)
{
	r->progress_cb = cb;
	r->progress_data = data;
}

/* --- the write stream ---------------------------------------------------- */

/* Send the state of one key of slot s to p (e NULL: deleted). Returns 0,
 * or NARF_ENOMEM when it could not be queued: the link is then broken
 * (repl_link_cmd) and the caller must not count on the peer having it. */
int repl_send_key(struct narf_repl *r,
                  struct link *l,
                  uint64_t slot_epoch,
                  const char *key,
                  size_t klen,
                  const struct narf_entry *e)
{
	char ep[24], px[24];
	const char *argv[5];
	size_t argvlen[5];
	size_t before = l->out.len;
	int rv;

	argvlen[1] = narf_format_u64(ep, slot_epoch);
	argv[1] = ep;
	argv[2] = key;
	argvlen[2] = klen;
	if (e != NULL) {
		int64_t exp = narf_entry_expire(e);

		argv[0] = "NARF.SET";
		argvlen[0] = 8;
		argv[3] = narf_entry_value(e, &argvlen[3]);
		argvlen[4] = narf_format_u64(px, exp > 0 ? (uint64_t)exp : 0);
		argv[4] = px;
		rv = repl_link_cmd(l, 5, argv, argvlen);
	} else {
		argv[0] = "NARF.DEL";
		argvlen[0] = 8;
		rv = repl_link_cmd(l, 3, argv, argvlen);
	}
	if (rv != 0)
		return rv;
	r->stream_msgs++;
	r->stream_bytes += l->out.len - before;
	return 0;
}

static void stream_change(struct narf_repl *r,
                          unsigned slot,
                          const char *key,
                          size_t klen,
                          const struct narf_entry *e)
{
	const struct narf_map *map = repl_map(r);

	if (map == NULL || !bit(r->lead, slot) || r->applying)
		return;
	for (unsigned i = 0; i < r->n_peers; i++) {
		struct narf_peer *p = r->peers[i];
		/* Queued to the peer: only then can its ack release the
		 * write; otherwise only an excuse (the ISR drop that the
		 * broken or missing link leads to) can. */
		bool sent = bit(p->fwd, slot) && p->repl != NULL &&
		            repl_send_key(r, p->repl, map->slots[slot].epoch,
		                          key, klen, e) == 0;

		if (r->in_batch && bit(p->counts, slot)) {
			gate_need(&r->batch, p->id, sent ? p->gen : 0,
			          sent ? p->repl->sent : UINT64_MAX);
			gate_slot(&r->batch, slot);
		}
	}
}

void narf_repl_store_write(void *data,
                           unsigned slot,
                           const char *key,
                           size_t klen,
                           const struct narf_entry *e)
{
	stream_change(data, slot, key, klen, e);
}

void narf_repl_store_removed(void *data,
                             unsigned slot,
                             const char *key,
                             size_t klen,
                             enum narf_store_reason why)
{
	stream_change(data, slot, key, klen, NULL);
}

/* --- the map ------------------------------------------------------------- */

static bool in_list(const uint32_t *list, unsigned n, uint32_t id)
{
	for (unsigned i = 0; i < n; i++)
		if (list[i] == id)
			return true;
	return false;
}

/*
 * What peer p should be for slot s under map: nothing unless we lead s and
 * p replicates it; an ISR member counts for acks and is forwarded to (one
 * we did not sync ourselves, after a promotion, already holds the slot);
 * another replica is synced, unless that is under way (then its acks count
 * already, see sync_slot).
 */
void repl_peer_slot_rule(struct narf_repl *r,
                         struct narf_peer *p,
                         const struct narf_map *map,
                         unsigned s)
{
	const struct narf_slot *slot = &map->slots[s];

	if (!bit(r->lead, s) ||
	    !in_list(slot->replicas, slot->n_replicas, p->id)) {
		bit_clear(p->fwd, s);
		bit_clear(p->counts, s);
		bit_clear(p->want, s);
		bit_clear(p->ready, s);
		return;
	}
	if (in_list(slot->isr, slot->n_isr, p->id)) {
		bit_set(p->counts, s);
		bit_clear(p->want, s);
		if (p->repl != NULL)
			bit_set(p->fwd, s);
	} else if (!bit(p->fwd, s)) {
		bit_clear(p->counts, s);
		bit_set(p->want, s);
	}
}

/* Every slot handed to t is settled: it leads them, or the moves were
 * cancelled. Writes to them waited since the first stopped. */
static void log_handoffs_over(const struct narf_repl *r,
                              const struct narf_peer *t)
{
	NARF_INFO(
	        "repl: handoffs to node %u over (it leads the slots, or the "
	        "moves were cancelled); writes to them waited %llu ms",
	        t->id, (unsigned long long)(uv_now(r->loop) - t->handoff_ms));
}

/* May our map's lack of a copy of slot s on this node drop the slot's
 * entries? Not while it is older than the map the last sync to us was sent
 * under: that sync made us a copy in a newer map. */
bool repl_may_drop(const struct narf_repl *r,
                   const struct narf_map *map,
                   unsigned s)
{
	return map->epoch >= r->sync_epoch[s];
}

/*
 * The slot's data began anew after the map we had (born: no in-sync copy
 * survived a failure; we may have skipped the maps in between). Entries we
 * hold from before are of the old lineage: serving them, or promoting us
 * with them, would bring back overwritten values and deleted keys. Keep
 * them only when a stream of the new lineage already reached us (its slot
 * epoch is above born, and the new primary's sync began by emptying the
 * slot).
 */
static void drop_old_lineage(struct narf_repl *r,
                             const struct narf_map *old,
                             const struct narf_map *map,
                             unsigned s)
{
	uint64_t born = map->slots[s].born;
	uint64_t n;

	if (born == 0 || born <= (old != NULL ? old->epoch : 0) ||
	    r->hwm[s] >= born || (n = narf_store_slot_count(r->store, s)) == 0)
		return;
	NARF_WARN(
	        "repl: slot %u began anew at epoch %llu (its in-sync copies "
	        "were lost): dropping %" PRIu64 " entries of its old data",
	        s, (unsigned long long)born, n);
	narf_store_drop_slot_lazy(r->store, s);
}

void narf_repl_map_changed(struct narf_repl *r,
                           const struct narf_map *old,
                           const struct narf_map *map)
{
	uint32_t me = r->member->node_id;

	r->epoch = map->epoch;
	r->node_timeout_ms = map->settings.node_timeout_ms;
	{
		const struct narf_map_node *self = narf_map_node_get(map, me);

		r->leaving =
		        self != NULL && (self->state == NARF_NODE_LEAVING ||
		                         self->state == NARF_NODE_REMOVED);
	}
	/* Drops this map carries are done: those peers may be linked to
	 * again below (they may be ISR members of slots new to us). */
	for (unsigned i = 0; i < r->n_peers; i++) {
		struct narf_peer *p = r->peers[i];

		if (p->dropping && p->drop_epoch != UINT64_MAX &&
		    map->epoch >= p->drop_epoch)
			p->dropping = false;
	}
	/* Peers of every slot we lead, with a link to each ISR member. */
	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		const struct narf_slot *slot = &map->slots[s];

		if (slot->primary != me)
			continue;
		for (unsigned j = 0; j < slot->n_replicas; j++) {
			struct narf_peer *p =
			        repl_peer_get(r, map, slot->replicas[j]);

			if (p != NULL && p->repl == NULL && !p->dropping &&
			    in_list(slot->isr, slot->n_isr, p->id) &&
			    (p->repl = repl_link_open(r, p, LINK_REPL)) == NULL)
				repl_ask_drop(r, p);
		}
	}
	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		const struct narf_slot *slot = &map->slots[s];
		bool lead = slot->primary == me;

		if (bit(r->lead, s) && !lead) {
			r->lost_at[s] = map->epoch;
			bit_clear(r->lead, s);
		}
		if (lead)
			bit_set(r->lead, s);
		/* Only the primary's stream changes a slot we do not lead:
		 * no local expiry or eviction there (DESIGN.md). */
		narf_store_set_replica(r->store, s, !lead);
		drop_old_lineage(r, old, map, s);
		if (slot->epoch > r->hwm[s])
			r->hwm[s] = slot->epoch;
		/* A sync in progress ends when we lead the slot or drop it
		 * (a map older than the sync does not count). */
		if (lead ||
		    (!narf_slot_has(slot, me) && repl_may_drop(r, map, s)))
			bit_clear(r->syncing, s);
		if (lead && slot->move != 0 && slot->move != me) {
			struct narf_peer *t = repl_peer_get(r, map, slot->move);

			/* Writes stop now; what was sent before must be acked
			 * by the target before we report ready. */
			if (t != NULL && !bit(r->handing, s)) {
				if (t->n_handoff++ == 0)
					t->handoff_ms = uv_now(r->loop);
				bit_set(r->handing, s);
				bit_set(t->handoff, s);
				t->handoff_seq = t->repl ? t->repl->sent : 0;
			}
		} else if (bit(r->handing, s)) {
			bit_clear(r->handing, s);
			for (unsigned i = 0; i < r->n_peers; i++) {
				struct narf_peer *t = r->peers[i];

				if (!bit(t->handoff, s))
					continue;
				bit_clear(t->handoff, s);
				if (--t->n_handoff == 0)
					log_handoffs_over(r, t);
			}
		}
		/* A copy we no longer hold is dropped. */
		if (!narf_slot_has(slot, me) && repl_may_drop(r, map, s) &&
		    narf_store_slot_count(r->store, s) > 0)
			narf_store_drop_slot_lazy(r->store, s);
		for (unsigned i = 0; i < r->n_peers; i++)
			repl_peer_slot_rule(r, r->peers[i], map, s);
	}
	for (unsigned i = 0; i < r->n_peers; i++) {
		struct narf_peer *p = r->peers[i];
		const struct narf_map_node *n = narf_map_node_get(map, p->id);

		repl_recount(p);
		/* A handoff request ends with the map its entry made, not with
		 * any map: another node's entry would have us send the same
		 * slots again (a second entry, and "not taken"). */
		if (p->handoff_inflight && p->handoff_epoch != 0 &&
		    map->epoch >= p->handoff_epoch)
			p->handoff_inflight = false;
		p->work = true;
		if (p->dropping && p->drop_epoch != UINT64_MAX &&
		    map->epoch >= p->drop_epoch)
			p->dropping = false;
		if (n != NULL && strcmp(n->addr, p->addr) != 0)
			snprintf(p->addr, sizeof(p->addr), "%s", n->addr);
	}
	repl_progress(r);
}

bool narf_repl_leads(const struct narf_repl *r, unsigned slot)
{
	return bit(r->lead, slot);
}

bool narf_repl_handing_off(const struct narf_repl *r, unsigned slot)
{
	return bit(r->handing, slot);
}

bool narf_repl_replica_ready(const struct narf_repl *r, unsigned slot)
{
	return !bit(r->syncing, slot);
}

/* --- replica side -------------------------------------------------------- */

/*
 * The epoch fence with its high-water mark. A slot's epoch only grows (it
 * is the map epoch at which the slot's primary last changed), so the
 * highest one seen, in our maps or in any stream we accepted, names the
 * newest primary we know of, and a message below it comes from a primary
 * that has since been replaced. Checking only our map's epoch would let a
 * replica whose map is one change behind apply the new primary's stream
 * (newer than its map: accepted) and then the old primary's (equal to its
 * map: accepted too), older data over newer.
 */
enum narf_fence narf_fence_check(uint64_t *hwm,
                                 uint64_t map_epoch,
                                 bool we_lead,
                                 uint64_t epoch)
{
	if (epoch < *hwm || (epoch == map_epoch && we_lead))
		return NARF_FENCE_STALE;
	*hwm = epoch;
	return epoch > map_epoch ? NARF_FENCE_NEWER : NARF_FENCE_APPLY;
}

bool narf_repl_accept(struct narf_repl *r,
                      uint32_t sender,
                      unsigned slot,
                      uint64_t epoch)
{
	const struct narf_map *map = repl_map(r);
	enum narf_fence f;

	(void)sender;
	if (map == NULL)
		f = narf_fence_check(&r->hwm[slot], 0, false, epoch);
	else
		f = narf_fence_check(
		        &r->hwm[slot], map->slots[slot].epoch,
		        map->slots[slot].primary == r->member->node_id, epoch);
	if (f == NARF_FENCE_NEWER && map != NULL)
		narf_member_want_map(r->member);
	return f != NARF_FENCE_STALE;
}

bool narf_repl_stream_conn(struct narf_repl *r, uint32_t sender, uint64_t conn)
{
	struct narf_in_link *l;

	for (unsigned i = 0; i < r->n_in_links; i++) {
		l = &r->in_links[i];
		if (l->node != sender)
			continue;
		if (conn < l->conn) {
			r->stale_links++;
			return false;
		}
		l->conn = conn;
		return true;
	}
	if (r->n_in_links == r->cap_in_links) {
		unsigned cap = r->cap_in_links ? 2 * r->cap_in_links : 8;

		l = realloc(r->in_links, cap * sizeof(*l));
		if (l == NULL)
			return true; /* cannot remember: the epoch fence only */
		r->in_links = l;
		r->cap_in_links = cap;
	}
	r->in_links[r->n_in_links++] = (struct narf_in_link){sender, conn};
	return true;
}

uint64_t narf_repl_epoch_hwm(const struct narf_repl *r, unsigned slot)
{
	return slot < NARF_SLOTS ? r->hwm[slot] : 0;
}

void narf_repl_diverged(struct narf_repl *r, uint32_t peer)
{
	struct narf_peer *p = repl_peer_find(r, peer);

	if (p == NULL || p->n_counts == 0)
		return;
	if (p->repl != NULL)
		repl_link_fail(p->repl,
		               "it wrote to our slots as a stale primary");
	else
		repl_ask_drop(r, p);
}

void narf_repl_set_secret(struct narf_repl *r, const char *secret)
{
	r->secret = secret;
}

void narf_repl_set_sync_rate(struct narf_repl *r, uint64_t bytes_per_s)
{
	r->sync_rate = bytes_per_s;
	r->budget = 0;
	r->budget_ms = uv_now(r->loop);
}

bool narf_repl_leaving(const struct narf_repl *r)
{
	return r->leaving;
}

void narf_repl_applying(struct narf_repl *r, bool on)
{
	if (r != NULL)
		r->applying = on;
}

void narf_repl_refresh_map(struct narf_repl *r)
{
	narf_member_want_map(r->member);
}

uint64_t narf_repl_map_checks(const struct narf_repl *r)
{
	return r->member->maps_checked;
}

void narf_repl_sync_begin(struct narf_repl *r,
                          unsigned slot,
                          uint64_t map_epoch)
{
	bit_set(r->syncing, slot);
	if (map_epoch > r->sync_epoch[slot])
		r->sync_epoch[slot] = map_epoch;
	narf_store_drop_slot_lazy(r->store, slot);
}

void narf_repl_sync_end(struct narf_repl *r, unsigned slot)
{
	bit_clear(r->syncing, slot);
}

/* --- proxying ------------------------------------------------------------ */

struct narf_proxy *narf_repl_proxy(struct narf_repl *r,
                                   uint32_t node,
                                   int argc,
                                   const char *const *argv,
                                   const size_t *argvlen,
                                   narf_proxy_done done,
                                   void *data)
{
	const struct narf_map *map = repl_map(r);
	struct narf_peer *p = map ? repl_peer_get(r, map, node) : NULL;
	struct narf_proxy *px;

	if (p == NULL)
		return NULL;
	if (p->proxy == NULL &&
	    (p->proxy = repl_link_open(r, p, LINK_PROXY)) == NULL)
		return NULL;
	px = calloc(1, sizeof(*px));
	if (px == NULL || repl_link_cmd(p->proxy, argc, argv, argvlen) != 0) {
		free(px);
		return NULL;
	}
	px->done = done;
	px->data = data;
	r->proxied++;
	if (p->proxy->tail != NULL)
		p->proxy->tail->next = px;
	else
		p->proxy->head = px;
	p->proxy->tail = px;
	return px;
}

void narf_repl_proxy_cancel(struct narf_proxy *px)
{
	px->done = NULL;
	px->data = NULL;
}

/* --- cron, lifecycle ----------------------------------------------------- */

/*
 * Entries can land in a slot we do not hold after the map change that
 * dropped it: a stream message from a primary that had not seen that map
 * yet. Nothing would remove them (they would show in DBSIZE, SCAN, KEYS
 * and memory), so the cron looks at NARF_SWEEP_SLOTS slots per tick (all
 * of them every ~800 ms) and drops those we do not hold and nobody is
 * syncing to us, once our map is as new as the last sync's sender's was.
 * A new copy always starts with NARF.SYNC, which marks the slot syncing
 * before any entry arrives, even when our map lags.
 */
#define NARF_SWEEP_SLOTS 2048

static void sweep(struct narf_repl *r, const struct narf_map *map)
{
	uint32_t me = r->member->node_id;

	for (unsigned i = 0; i < NARF_SWEEP_SLOTS; i++) {
		unsigned s = r->sweep;
		uint64_t n;

		r->sweep = (r->sweep + 1) % NARF_SLOTS;
		if (me == 0 || narf_slot_has(&map->slots[s], me) ||
		    bit(r->syncing, s) || !repl_may_drop(r, map, s))
			continue;
		n = narf_store_slot_count(r->store, s);
		if (n == 0)
			continue;
		NARF_INFO(
		        "repl: slot %u is not ours (epoch %llu): dropping "
		        "%" PRIu64 " entries left in it",
		        s, (unsigned long long)map->epoch, n);
		narf_store_drop_slot_lazy(r->store, s);
		r->swept += n;
	}
}

void narf_repl_cron(struct narf_repl *r)
{
	uint64_t now = uv_now(r->loop);
	const struct narf_map *map = repl_map(r);
	unsigned lag = r->node_timeout_ms ? r->node_timeout_ms : 600;

	if (map == NULL || r->stopping)
		return;
	sweep(r, map);
	for (unsigned i = 0; i < r->n_peers; i++) {
		struct narf_peer *p = r->peers[i];
		const struct narf_map_node *n = narf_map_node_get(map, p->id);
		bool needed = bits_count(p->want) > 0 || p->n_counts > 0;

		if (p->repl != NULL && p->repl->sent > p->repl->acked &&
		    now - p->repl->progress_ms > lag) {
			repl_link_fail(p->repl, "acknowledgements lag behind");
			continue;
		}
		/* A forwarded request unanswered for this long will not be:
		 * the node is paused or cut off (and failed over by now). */
		if (p->proxy != NULL && p->proxy->sent > p->proxy->acked &&
		    now - p->proxy->progress_ms > 2 * lag + 1000)
			repl_link_fail(p->proxy,
			               "no reply to forwarded requests");
		if (p->dropping && !p->drop_inflight)
			repl_ask_drop(r, p);
		/* (Re)connect when there is something to send, after a
		 * pause when the last attempt failed. */
		if (p->repl == NULL && needed && !p->dropping && n != NULL &&
		    (n->state == NARF_NODE_UP ||
		     n->state == NARF_NODE_LEAVING ||
		     n->state == NARF_NODE_JOINING) &&
		    now - p->failed_ms >= NARF_LINK_RETRY_MS) {
			p->repl = repl_link_open(r, p, LINK_REPL);
			if (p->repl == NULL)
				p->failed_ms = now;
		}
		if (p->repl != NULL && p->n_counts == 0 &&
		    bits_count(p->want) == 0 && bits_count(p->fwd) == 0 &&
		    p->repl->sent == p->repl->acked) {
			/* Nothing of ours there any more. */
			struct link *l = p->repl;

			p->repl = NULL;
			repl_link_free(l);
		}
	}
}

void narf_repl_info(const struct narf_repl *r, struct narf_buf *out)
{
	char line[512]; /* each line fits; a cut one would still be bounded */
	unsigned lead = bits_count(r->lead);
	unsigned n;

	n = (unsigned)snprintf(
	        line, sizeof(line),
	        "slots_led:%u\r\nslots_syncing_here:%u\r\n"
	        "stream_messages:%" PRIu64 "\r\nstream_bytes:%" PRIu64
	        "\r\nstream_acks:%" PRIu64 "\r\nstray_entries_dropped:%" PRIu64
	        "\r\nproxied_requests:%" PRIu64 "\r\n",
	        lead, bits_count(r->syncing), r->stream_msgs, r->stream_bytes,
	        r->acks, r->swept, r->proxied);
	narf_buf_append(out, line, n < sizeof(line) ? n : sizeof(line) - 1);
	for (unsigned i = 0; i < r->n_peers; i++) {
		const struct narf_peer *p = r->peers[i];

		n = (unsigned)snprintf(
		        line, sizeof(line),
		        "peer%u:addr=%s,link=%s,sent=%" PRIu64 ",acked=%" PRIu64
		        ",forwarded_slots=%u,isr_slots=%u,syncing=%u,"
		        "dropping=%d\r\n",
		        p->id, p->addr,
		        p->repl == NULL      ? "down"
		        : p->repl->connected ? "up"
		                             : "connecting",
		        p->repl ? p->repl->sent : 0,
		        p->repl ? p->repl->acked : 0, bits_count(p->fwd),
		        p->n_counts, bits_count(p->want), p->dropping);
		narf_buf_append(out, line,
		                n < sizeof(line) ? n : sizeof(line) - 1);
	}
}

void narf_repl_stats(const struct narf_repl *r, struct narf_repl_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->slots_led = bits_count(r->lead);
	out->slots_syncing_here = bits_count(r->syncing);
	out->stream_msgs = r->stream_msgs;
	out->stream_bytes = r->stream_bytes;
	out->acks = r->acks;
	out->proxied = r->proxied;
	out->n_peers = r->n_peers;
}

void narf_repl_peer_stats(const struct narf_repl *r,
                          unsigned i,
                          struct narf_repl_peer_stats *out)
{
	const struct narf_peer *p = r->peers[i];
	const struct link *l = p->repl;
	uint64_t now = uv_now(r->loop);

	memset(out, 0, sizeof(*out));
	out->id = p->id;
	out->addr = p->addr;
	out->link_up = l != NULL && l->connected;
	if (l != NULL) {
		out->sent = l->sent;
		out->acked = l->acked;
		if (l->sent > l->acked && now > l->progress_ms)
			out->lag_ms = now - l->progress_ms;
	}
	out->fwd_slots = bits_count(p->fwd);
	out->isr_slots = p->n_counts;
	out->syncing_slots = bits_count(p->want);
	out->synced = p->synced;
	if (p->proxy != NULL) {
		out->proxy_sent = p->proxy->sent;
		out->proxy_answered = p->proxy->acked;
	}
}

struct narf_repl *narf_repl_create(uv_loop_t *loop,
                                   struct narf_store *store,
                                   struct narf_member *member)
{
	struct narf_repl *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->lost_at = calloc(NARF_SLOTS, sizeof(r->lost_at[0]));
	r->sync_epoch = calloc(NARF_SLOTS, sizeof(r->sync_epoch[0]));
	r->hwm = calloc(NARF_SLOTS, sizeof(r->hwm[0]));
	if (r->lost_at == NULL || r->sync_epoch == NULL || r->hwm == NULL) {
		free(r->lost_at);
		free(r->sync_epoch);
		free(r->hwm);
		free(r);
		return NULL;
	}
	r->loop = loop;
	r->store = store;
	r->member = member;
	uv_idle_init(loop, &r->idle);
	r->idle.data = r;
	uv_timer_init(loop, &r->pace);
	r->pace.data = r;
	uv_prepare_init(loop, &r->prepare);
	r->prepare.data = r;
	uv_prepare_start(&r->prepare, repl_prepare_cb);
	return r;
}

void narf_repl_stop(struct narf_repl *r)
{
	if (r == NULL || r->stopping)
		return;
	r->stopping = true;
	for (unsigned i = 0; i < r->n_peers; i++) {
		struct narf_peer *p = r->peers[i];

		if (p->repl != NULL)
			repl_link_free(p->repl);
		if (p->proxy != NULL)
			repl_link_free(p->proxy);
		p->repl = p->proxy = NULL;
	}
	uv_close((uv_handle_t *)&r->prepare, NULL);
	uv_close((uv_handle_t *)&r->idle, NULL);
	uv_close((uv_handle_t *)&r->pace, NULL);
}

void narf_repl_destroy(struct narf_repl *r)
{
	if (r == NULL)
		return;
	for (unsigned i = 0; i < r->n_peers; i++) {
		free(r->peers[i]->joins);
		free(r->peers[i]);
	}
	free(r->peers);
	free(r->lost_at);
	free(r->sync_epoch);
	free(r->hwm);
	free(r->in_links);
	narf_gate_close(&r->batch);
	free(r);
}
