/*
 * Replication, slot sync and proxying: see repl.h for the protocol. The
 * decisions are the core's (repl_core.c: slot rules, gates, ISR, add and
 * handoff requests, link lifecycles); these three files are its I/O:
 * repl_int.h holds the I/O state (struct narf_repl, per peer struct
 * narf_peer and its links); repl_link.c the links; repl_sync.c the syncs
 * pumped every loop iteration; this file the write stream, the actions the
 * core asks for (repl_act), the replica side, proxying and the cron.
 */
#include "repl_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/coll.h"
#include "common/flags.h"
#include "common/log.h"

struct narf_peer *repl_peer_find(const struct narf_repl *r, uint32_t id)
{
	for (unsigned i = 0; i < r->n_peers; i++)
		if (r->peers[i]->id == id)
			return r->peers[i];
	return NULL;
}

struct narf_peer *repl_peer_io(struct narf_repl *r, struct narf_rpeer *rp)
{
	const struct narf_map *map = repl_map(r);
	const struct narf_map_node *n;
	struct narf_peer *p = rp->io;

	if (p != NULL)
		return p;
	if (map == NULL || (n = narf_map_node_get(map, rp->id)) == NULL)
		return NULL;
	if (r->n_peers == r->cap_peers) {
		unsigned cap = r->cap_peers ? 2 * r->cap_peers : 8;
		struct narf_peer **a = realloc(r->peers, cap * sizeof(*a));

		if (a == NULL)
			return NULL;
		r->peers = a;
		r->cap_peers = cap;
	}
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return NULL;
	p->r = r;
	p->rp = rp;
	p->id = rp->id;
	snprintf(p->addr, sizeof(p->addr), "%s", n->addr);
	rp->io = p;
	r->peers[r->n_peers++] = p;
	return p;
}

struct narf_peer *repl_peer_get(struct narf_repl *r,
                                const struct narf_map *map,
                                uint32_t id)
{
	struct narf_rpeer *rp;

	if (narf_map_node_get(map, id) == NULL ||
	    (rp = narf_rcore_peer_get(r->core, id)) == NULL)
		return NULL;
	return repl_peer_io(r, rp);
}

/* --- the core's actions -------------------------------------------------- */

/* The core forgot node id (it left the map): close what links are left
 * to it (a proxy link, say) and free our state for it, keeping the other
 * peers in order. */
static void act_forget(struct narf_repl *r, uint32_t id)
{
	for (unsigned i = 0; i < r->n_peers; i++) {
		struct narf_peer *p = r->peers[i];

		if (p->id != id)
			continue;
		if (p->repl != NULL)
			repl_link_drop(p->repl);
		if (p->proxy != NULL)
			repl_link_drop(p->proxy);
		repl_xfer_drop(p);
		free(p->xfers);
		free(p);
		memmove(&r->peers[i], &r->peers[i + 1],
		        (r->n_peers - i - 1) * sizeof(r->peers[0]));
		r->n_peers--;
		return;
	}
}

static void isr_reply(void *data,
                      uint32_t peer,
                      bool drop,
                      bool ok,
                      uint64_t epoch)
{
	struct narf_repl *r = data;

	narf_rcore_isr_reply(
	        r->core, peer, drop, ok,
	        !ok && epoch == NARF_MEMBER_STALE ? NARF_RREQ_STALE : epoch,
	        uv_now(r->loop));
	repl_act(r);
}

static void handoff_reply(void *data,
                          uint32_t peer,
                          bool drop,
                          bool ok,
                          uint64_t epoch)
{
	struct narf_peer *p = data;

	(void)peer;
	(void)drop;
	narf_rcore_handoff_reply(p->r->core, p->rp, ok, epoch);
	repl_act(p->r);
}

static void act_open(struct narf_repl *r, struct narf_rpeer *rp)
{
	struct narf_peer *p = repl_peer_io(r, rp);

	if (p != NULL && p->repl != NULL) /* an older incarnation */
		repl_link_drop(p->repl);
	if (p == NULL || r->stopping ||
	    (p->repl = repl_link_open(r, p, LINK_REPL)) == NULL) {
		NARF_WARN("repl: cannot open a replication link to node %u%s",
		          rp->id, r->stopping ? " (stopping)" : "");
		narf_rcore_link_failed(r->core, rp, rp->gen, uv_now(r->loop));
	}
}

static void act_ask(struct narf_repl *r, const struct narf_ract *a)
{
	struct narf_rpeer *rp = a->peer;
	bool drop = a->kind == NARF_RACT_ASK_DROP;
	json_t *ranges = NULL;
	uint64_t now = uv_now(r->loop);

	if (!drop && (ranges = repl_ranges_of(rp->asked)) == NULL) {
		narf_rcore_isr_reply(r->core, rp->id, false, false, 0, now);
		return;
	}
	if (narf_member_isr(r->member, rp->id, drop, ranges,
	                    drop ? 0 : rp->add_since, isr_reply, r) != 0)
		narf_rcore_isr_reply(r->core, rp->id, drop, false, 0, now);
}

static void act_handoff(struct narf_repl *r, const struct narf_ract *a)
{
	struct narf_peer *p = repl_peer_io(r, a->peer);
	json_t *ranges = repl_ranges_of(a->slots);

	if (p == NULL || ranges == NULL ||
	    narf_member_handoff(r->member, ranges, handoff_reply, p) != 0) {
		json_decref(ranges);
		narf_rcore_handoff_reply(r->core, a->peer, false, 0);
	}
}

static void act_drop_slot(struct narf_repl *r, const struct narf_ract *a)
{
	uint64_t n = narf_store_slot_count(r->store, a->slot);

	if (n == 0)
		return;
	NARF_WARN(
	        "repl: slot %u began anew at epoch %llu (%s): dropping "
	        "%" PRIu64 " entries",
	        a->slot,
	        (unsigned long long)(repl_map(r) != NULL
	                                     ? repl_map(r)->slots[a->slot].born
	                                     : 0),
	        a->why, n);
	narf_store_drop_slot_lazy(r->store, a->slot);
}

void repl_act(struct narf_repl *r)
{
	struct narf_ract a;

	if (r->acting)
		return; /* the outer call takes what this one would */
	r->acting = true;
	while (narf_rcore_next_action(r->core, &a)) {
		struct narf_peer *p = a.peer != NULL ? a.peer->io : NULL;

		switch (a.kind) {
		case NARF_RACT_OPEN_LINK:
			act_open(r, a.peer);
			break;
		case NARF_RACT_FAIL_LINK:
			if (p != NULL && p->repl != NULL) {
				NARF_WARN(
				        "repl: replication link to node %u "
				        "(%s) failed: %s",
				        p->id, p->addr, a.why);
				repl_link_drop(p->repl);
			}
			break;
		case NARF_RACT_CLOSE_LINK:
			if (p != NULL && p->repl != NULL)
				repl_link_drop(p->repl);
			break;
		case NARF_RACT_ASK_DROP:
		case NARF_RACT_ASK_ADD:
			act_ask(r, &a);
			break;
		case NARF_RACT_HANDOFF:
			act_handoff(r, &a);
			break;
		case NARF_RACT_DROP_SLOT:
			act_drop_slot(r, &a);
			break;
		case NARF_RACT_WANT_MAP:
			narf_member_want_map(r->member);
			break;
		case NARF_RACT_FORGET_PEER:
			act_forget(r, a.node);
			break;
		case NARF_RACT_PROGRESS:
			if (r->progress_cb != NULL)
				r->progress_cb(r->progress_data);
			break;
		}
		free(a.slots);
	}
	r->acting = false;
}

/* --- gates --------------------------------------------------------------- */

bool narf_repl_gate_open(const struct narf_repl *r,
                         const struct narf_gate *g,
                         bool *broken)
{
	return narf_rcore_gate_open(r->core, g, broken);
}

unsigned narf_repl_gate_acked(const struct narf_repl *r,
                              const struct narf_gate *g)
{
	return narf_rcore_gate_acked(r->core, g);
}

void narf_repl_batch_begin(struct narf_repl *r)
{
	narf_rcore_batch_begin(r->core);
}

bool narf_repl_batch_end(struct narf_repl *r, struct narf_gate *gate)
{
	return narf_rcore_batch_end(r->core, gate);
}

void narf_repl_set_progress_cb(struct narf_repl *r,
                               void (*cb)(void *data),
                               void *data)
{
	r->progress_cb = cb;
	r->progress_data = data;
}

/* --- the write stream ---------------------------------------------------- */

int repl_coll_msg(struct link *l,
                  bool load,
                  const char *ep,
                  size_t eplen,
                  const char *key,
                  size_t klen,
                  enum narf_type type,
                  int64_t pxat,
                  int64_t count,
                  const char *payload,
                  size_t plen,
                  uint64_t nbulks,
                  struct narf_buf *msg)
{
	const char *tname = narf_type_name(type);
	char cnt[24], px[24];
	size_t cntlen = count < 0 ? (size_t)snprintf(cnt, sizeof(cnt), "-1")
	                          : narf_format_u64(cnt, (uint64_t)count);
	size_t pxlen = narf_format_u64(px, pxat > 0 ? (uint64_t)pxat : 0);

	msg->len = 0;
	if (narf_resp_array(msg, (load ? 6 : 5) + (long long)nbulks) != 0 ||
	    narf_resp_bulk(msg, load ? "NARF.CLOAD" : "NARF.CAPPEND",
	                   load ? 10 : 12) != 0 ||
	    narf_resp_bulk(msg, ep, eplen) != 0 ||
	    narf_resp_bulk(msg, key, klen) != 0 ||
	    narf_resp_bulk(msg, tname, strlen(tname)) != 0 ||
	    (load && narf_resp_bulk(msg, px, pxlen) != 0) ||
	    narf_resp_bulk(msg, cnt, cntlen) != 0 ||
	    narf_buf_append(msg, payload, plen) != 0 ||
	    repl_link_raw(l, msg->data, msg->len) != 0)
		return NARF_ENOMEM;
	return 0;
}

/* The end of the RESP bulk at p (one this node encoded). */
static const char *bulk_end(const char *p)
{
	size_t len = 0;

	for (p++; *p != '\r'; p++)
		len = len * 10 + (size_t)(*p - '0');
	return p + 2 + len + 2;
}

/*
 * A whole value as bounded messages: NARF.CLOAD with the first slice of
 * the payload, then NARF.CAPPEND for the rest, NARF_CLOAD_SLICE_ELEMS
 * elements or about NARF_CLOAD_SLICE_BYTES each; only the last carries
 * the true count (the others -1). payload holds bulks, `per` to an
 * element. All are queued at once: a sync sends a big value as a
 * transfer instead (repl_xfer.c).
 */
static int send_slices(struct link *l,
                       const char *ep,
                       size_t eplen,
                       const char *key,
                       size_t klen,
                       enum narf_type type,
                       int64_t pxat,
                       uint64_t count,
                       const struct narf_buf *payload,
                       unsigned per,
                       struct narf_buf *msg)
{
	const char *p = payload->data, *end = p + payload->len;
	bool first = true;

	do {
		const char *start = p;
		uint64_t bulks = 0;

		while (p < end &&
		       bulks < (uint64_t)NARF_CLOAD_SLICE_ELEMS * per &&
		       (size_t)(p - start) < NARF_CLOAD_SLICE_BYTES) {
			for (unsigned k = 0; k < per; k++)
				p = bulk_end(p);
			bulks += per;
		}
		if (repl_coll_msg(l, first, ep, eplen, key, klen, type, pxat,
		                  p >= end ? (int64_t)count : -1, start,
		                  (size_t)(p - start), bulks, msg) != 0)
			return NARF_ENOMEM;
		first = false;
	} while (p < end);
	return 0;
}

/*
 * A collection's state (docs/protocol.md): after a change of its TTL alone,
 * NARF.PEXPIREAT <epoch> <key> <pxat> (0: none); otherwise the whole value,
 * NARF.CLOAD <epoch> <key> <type> <pxat> <count> <payload...>, which
 * replaces the key on the replica (a sync, a RENAME's destination), in
 * bounded slices (send_slices). Every
 * other change of a collection travels as its command's effect
 * (narf_repl_effect), in proportion to what it changed.
 */
static int send_coll(struct narf_repl *r,
                     struct link *l,
                     const char *ep,
                     size_t eplen,
                     const char *key,
                     size_t klen,
                     const struct narf_entry *e)
{
	int64_t exp = narf_entry_expire(e);
	char px[24];
	size_t pxlen = narf_format_u64(px, exp > 0 ? (uint64_t)exp : 0);
	struct narf_coll c;
	struct narf_buf payload, msg;
	uint64_t n = 0;
	int rv;

	if (narf_store_write_ttl_only(r->store)) {
		const char *argv[] = {"NARF.PEXPIREAT", ep, key, px};
		size_t argvlen[] = {14, eplen, klen, pxlen};

		return repl_link_cmd(l, 4, argv, argvlen);
	}
	narf_entry_coll(e, &c);
	narf_buf_init(&payload);
	narf_buf_init(&msg);
	rv = narf_coll_encode(&c, &payload, &n);
	if (rv == 0)
		rv = send_slices(
		        l, ep, eplen, key, klen, (enum narf_type)c.type, exp,
		        narf_coll_len(&c), &payload,
		        c.type == NARF_TYPE_HASH || c.type == NARF_TYPE_ZSET
		                ? 2
		                : 1,
		        &msg);
	narf_buf_close(&payload);
	narf_buf_close(&msg);
	return rv == 0 ? 0 : NARF_ENOMEM; /* the link must not count on it */
}

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
	if (e != NULL && narf_entry_type(e) != NARF_TYPE_STRING) {
		rv = send_coll(r, l, argv[1], argvlen[1], key, klen, e);
		goto sent;
	}
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
sent:
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

	if (map == NULL || !narf_rcore_streams(r->core, slot))
		return;
	bool ttl_only = narf_store_write_ttl_only(r->store);

	for (unsigned i = 0; i < r->core->n_peers; i++) {
		struct narf_rpeer *rp = r->core->peers[i];
		struct narf_peer *p = rp->io;
		bool fwd = p != NULL && p->repl != NULL &&
		           narf_rcore_forwards(r->core, rp, slot);
		struct xfer *x =
		        fwd ? repl_xfer_find(p, slot, key, klen) : NULL;
		bool queued;

		if (x != NULL && ttl_only) {
			/* Mid-transfer the peer may not hold the key yet (no
			 * CLOAD sent) or may have deleted its partial copy
			 * (emptied by removals), and would refuse a
			 * NARF.PEXPIREAT: the transfer's CLOAD or its closing
			 * NARF.PEXPIREAT carries the TTL instead. */
			queued = true;
		} else {
			queued = fwd && repl_send_key(r, p->repl,
			                              map->slots[slot].epoch,
			                              key, klen, e) == 0;
			/* The key's new state went whole: its transfer is
			 * over. */
			if (queued && x != NULL)
				repl_xfer_cancel(p, x);
		}
		narf_rcore_wrote(r->core, rp, slot, queued);
	}
}

int narf_repl_effect(struct narf_repl *r,
                     unsigned slot,
                     int argc,
                     const char **argv,
                     size_t *argvlen)
{
	const struct narf_map *map = repl_map(r);
	char ep[24];

	if (map == NULL || !narf_rcore_streams(r->core, slot))
		return 0;
	argvlen[1] = narf_format_u64(ep, map->slots[slot].epoch);
	argv[1] = ep;
	for (unsigned i = 0; i < r->core->n_peers; i++) {
		struct narf_rpeer *rp = r->core->peers[i];
		struct narf_peer *p = rp->io;
		size_t before;
		bool queued = false;

		if (p != NULL && p->repl != NULL &&
		    narf_rcore_forwards(r->core, rp, slot)) {
			struct xfer *x =
			        repl_xfer_find(p, slot, argv[2], argvlen[2]);
			const char *cnt = argv[3];
			size_t cntlen = argvlen[3];

			/* A key mid-transfer: the peer's copy is partial, so
			 * it must not check the count (the transfer's last
			 * slice does), or the effect waits for the slice
			 * that carries it. */
			if (x != NULL && !repl_xfer_effect(p, x)) {
				narf_rcore_wrote(r->core, rp, slot, false);
				continue;
			}
			if (x != NULL) {
				argv[3] = "-1";
				argvlen[3] = 2;
			}
			before = p->repl->out.len;
			queued = repl_link_cmd(p->repl, argc, argv, argvlen) ==
			         0;
			argv[3] = cnt;
			argvlen[3] = cntlen;
			if (queued) {
				r->stream_msgs++;
				r->stream_bytes += p->repl->out.len - before;
			}
		}
		narf_rcore_wrote(r->core, rp, slot, queued);
	}
	argv[1] = NULL; /* ep dies here */
	argvlen[1] = 0;
	return 0;
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

/* Entries in slot s that are not ours to keep: we hold no copy of it in
 * map, nobody is syncing it to us, and map is as new as the last sync's
 * sender's was (0 when none, or when they stay). */
static uint64_t stray_entries(const struct narf_repl *r,
                              const struct narf_map *map,
                              unsigned s)
{
	uint32_t me = r->member->node_id;

	if (me == 0 || narf_slot_has(&map->slots[s], me) ||
	    bit(r->core->syncing, s) || !narf_rcore_may_drop(r->core, map, s))
		return 0;
	return narf_store_slot_count(r->store, s);
}

/* Slot s under map: a replica slot unless we lead it (only the primary's
 * stream changes those: no local expiry or eviction there, DESIGN.md),
 * and its entries dropped when they are not ours to keep. Returns those
 * entries' count. */
static uint64_t map_slot(struct narf_repl *r,
                         const struct narf_map *map,
                         unsigned s)
{
	uint64_t n;

	narf_store_set_replica(r->store, s, !narf_rcore_leads(r->core, s));
	n = stray_entries(r, map, s);
	if (n > 0)
		narf_store_drop_slot_lazy(r->store, s);
	return n;
}

void narf_repl_map_changed(struct narf_repl *r,
                           const struct narf_map *old,
                           const struct narf_map *map,
                           const struct narf_map_dirty *dirty)
{
	uint32_t me = r->member->node_id;
	uint64_t syncing[WORDS];

	/* A new node id (a re-join) changes every slot's meaning. */
	if (me != r->core->me)
		dirty = NULL;
	memcpy(syncing, r->core->syncing, sizeof(syncing));
	if (!narf_rcore_map(r->core, me, old, map, dirty, uv_now(r->loop))) {
		/* Membership never installs an older map, so this does not
		 * happen; if it did, the core must still not keep a pointer
		 * to the map about to be freed: it reads this one, and its
		 * decisions stay those of the newer map it had. */
		r->core->map = map;
		return;
	}
	for (unsigned i = 0; (dirty == NULL || dirty->nodes) && i < r->n_peers;
	     i++) {
		struct narf_peer *p = r->peers[i];
		const struct narf_map_node *n = narf_map_node_get(map, p->id);

		if (n != NULL && strcmp(n->addr, p->addr) != 0)
			snprintf(p->addr, sizeof(p->addr), "%s", n->addr);
	}
	/* Lineage drops first (the core's actions), then copies we no
	 * longer hold: in the slots that changed, and those whose sync to
	 * us the map ended. */
	repl_act(r);
	for (unsigned w = 0; w < WORDS; w++) {
		uint64_t b = dirty == NULL
		                     ? ~(uint64_t)0
		                     : dirty->slots[w] | (syncing[w] &
		                                          ~r->core->syncing[w]);

		for (; b != 0; b &= b - 1)
			map_slot(r, map, w * 64 + (unsigned)__builtin_ctzll(b));
	}
}

bool narf_repl_leads(const struct narf_repl *r, unsigned slot)
{
	return narf_rcore_leads(r->core, slot);
}

bool narf_repl_handing_off(const struct narf_repl *r, unsigned slot)
{
	return bit(r->core->handing, slot);
}

bool narf_repl_replica_ready(const struct narf_repl *r, unsigned slot)
{
	return !bit(r->core->syncing, slot);
}

/* --- replica side -------------------------------------------------------- */

bool narf_repl_accept(struct narf_repl *r,
                      uint32_t sender,
                      unsigned slot,
                      uint64_t epoch)
{
	enum narf_fence f = narf_rcore_accept(r->core, slot, epoch);

	(void)sender;
	repl_act(r);
	return f != NARF_FENCE_STALE;
}

bool narf_repl_stream_conn(struct narf_repl *r, uint32_t sender, uint64_t conn)
{
	return narf_rcore_stream_conn(r->core, sender, conn);
}

uint64_t narf_repl_epoch_hwm(const struct narf_repl *r, unsigned slot)
{
	return slot < NARF_SLOTS ? r->core->hwm[slot] : 0;
}

void narf_repl_diverged(struct narf_repl *r, uint32_t peer)
{
	narf_rcore_diverged(r->core, peer, uv_now(r->loop));
	repl_act(r);
}

void narf_repl_set_keys(struct narf_repl *r, const struct narf_auth_keys *keys)
{
	r->keys = keys;
}

void narf_repl_set_tls(struct narf_repl *r, struct narf_tls *tls)
{
	r->tls = tls;
}

void narf_repl_set_sync_rate(struct narf_repl *r, uint64_t bytes_per_s)
{
	r->sync_rate = bytes_per_s;
	r->budget = 0;
	r->budget_ms = uv_now(r->loop);
}

bool narf_repl_leaving(const struct narf_repl *r)
{
	return r->core->leaving;
}

void narf_repl_applying(struct narf_repl *r, bool on)
{
	if (r != NULL)
		narf_rcore_applying(r->core, on);
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
	narf_rcore_sync_begin(r->core, slot, map_epoch);
	narf_store_drop_slot_lazy(r->store, slot);
}

void narf_repl_sync_end(struct narf_repl *r, unsigned slot)
{
	narf_rcore_sync_end(r->core, slot);
}

/* --- proxying ------------------------------------------------------------ */

struct narf_proxy *narf_repl_proxy(struct narf_repl *r,
                                   uint32_t node,
                                   const struct narf_proxy_req *req,
                                   narf_proxy_done done,
                                   void *data)
{
	const struct narf_map *map = repl_map(r);
	struct narf_peer *p = map ? repl_peer_get(r, map, node) : NULL;
	const struct narf_map_node *self =
	        map ? narf_map_node_get(map, r->member->node_id) : NULL;
	struct narf_proxy *px;

	/* Never to our own address (an older incarnation of this node, at
	 * the same host and port): the request would come back here. */
	if (p == NULL || node == r->member->node_id ||
	    (self != NULL && strcmp(self->addr, p->addr) == 0))
		return NULL;
	if (p->proxy == NULL &&
	    (p->proxy = repl_link_open(r, p, LINK_PROXY)) == NULL)
		return NULL;
	px = calloc(1, sizeof(*px));
	if (px == NULL || repl_link_req(p->proxy, req) != 0) {
		free(px);
		return NULL;
	}
	px->done = done;
	px->data = data;
	px->l = p->proxy;
	px->token = req->token;
	r->proxied++;
	if (p->proxy->tail != NULL)
		p->proxy->tail->next = px;
	else
		p->proxy->head = px;
	p->proxy->tail = px;
	return px;
}

/* NARF.UNBLOCK <token> on l, its +OK awaited by nobody. */
static void send_unblock(struct link *l, uint64_t token)
{
	struct narf_proxy *px = calloc(1, sizeof(*px));
	char num[24];
	const char *argv[2] = {"NARF.UNBLOCK", num};
	size_t argvlen[2] = {12, 0};
	struct narf_proxy_req q = {2, argv, argvlen, 2, 0, 0};

	argvlen[1] = (size_t)snprintf(num, sizeof(num), "%" PRIu64, token);
	/* Without memory the owner keeps the waiter until its timeout,
	 * or until the link closes. */
	if (px == NULL || repl_link_req(l, &q) != 0) {
		free(px);
		return;
	}
	px->l = l;
	if (l->tail != NULL)
		l->tail->next = px;
	else
		l->head = px;
	l->tail = px;
}

void narf_repl_proxy_cancel(struct narf_proxy *px)
{
	struct link *l = px->l;

	if (px->token != 0)
		send_unblock(l, px->token);
	if (!px->parked) {
		px->done = NULL;
		px->data = NULL;
		return;
	}
	repl_link_unpark(l, px);
	free(px);
}

/* --- cron, lifecycle ----------------------------------------------------- */

/*
 * Entries can land in a slot we do not hold after the map change that
 * dropped it: a stream message from a primary that had not seen that map
 * yet. Nothing would remove them (they would show in DBSIZE, SCAN, KEYS
 * and memory), so the cron looks at NARF_SWEEP_SLOTS slots per tick (all
 * of them every ~800 ms) and drops those we do not hold and nobody is
 * syncing to us, once our map is as new as the last sync's sender's was.
 * It is also the backstop of narf_repl_map_changed(), which looks only at
 * the slots a map changed: each swept slot is what a full walk would make
 * it (a replica slot unless we lead it).
 * A new copy always starts with NARF.SYNC, which marks the slot syncing
 * before any entry arrives, even when our map lags.
 */
#define NARF_SWEEP_SLOTS 2048

static void sweep(struct narf_repl *r, const struct narf_map *map)
{
	for (unsigned i = 0; i < NARF_SWEEP_SLOTS; i++) {
		unsigned s = r->sweep;
		uint64_t n = map_slot(r, map, s);

		r->sweep = (r->sweep + 1) % NARF_SLOTS;
		if (n == 0)
			continue;
		NARF_INFO(
		        "repl: slot %u is not ours (epoch %llu): dropped "
		        "%" PRIu64 " entries left in it",
		        s, (unsigned long long)map->epoch, n);
		r->swept += n;
	}
}

void narf_repl_cron(struct narf_repl *r)
{
	uint64_t now = uv_now(r->loop);
	const struct narf_map *map = repl_map(r);
	unsigned lag =
	        r->core->node_timeout_ms ? r->core->node_timeout_ms : 600;

	if (map == NULL || r->stopping)
		return;
	sweep(r, map);
	/* A forwarded request unanswered for this long will not be: the
	 * node is paused or cut off (and failed over by now). */
	for (unsigned i = 0; i < r->n_peers; i++) {
		struct narf_peer *p = r->peers[i];

		if (p->proxy != NULL && p->proxy->sent > p->proxy->acked &&
		    now - p->proxy->progress_ms > 2 * lag + 1000)
			repl_link_fail(p->proxy,
			               "no reply to forwarded requests");
	}
	narf_rcore_tick(r->core, now);
	repl_act(r);
}

static const char *link_name(const struct narf_rpeer *rp)
{
	switch (rp->link) {
	case NARF_RLINK_DOWN:
		return "down";
	case NARF_RLINK_CONNECTING:
		return "connecting";
	case NARF_RLINK_UP:
		return "up";
	case NARF_RLINK_BROKEN:
		return "broken";
	}
	return "?";
}

void narf_repl_info(const struct narf_repl *r, struct narf_buf *out)
{
	const struct narf_rcore *rc = r->core;
	char line[512]; /* each line fits; a cut one would still be bounded */
	unsigned n;

	n = (unsigned)snprintf(
	        line, sizeof(line),
	        "slots_led:%u\r\nslots_syncing_here:%u\r\n"
	        "stream_messages:%" PRIu64 "\r\nstream_bytes:%" PRIu64
	        "\r\nstream_acks:%" PRIu64 "\r\nstray_entries_dropped:%" PRIu64
	        "\r\nproxied_requests:%" PRIu64 "\r\nsync_transfers:%" PRIu64
	        "\r\nsync_transfer_slices:%" PRIu64
	        "\r\nsync_step_bytes_max:%" PRIu64 "\r\n",
	        bits_count(rc->lead), bits_count(rc->syncing), r->stream_msgs,
	        r->stream_bytes, rc->acks, r->swept, r->proxied, r->xfers_begun,
	        r->xfer_slices, r->sync_step_max);
	narf_buf_append(out, line, n < sizeof(line) ? n : sizeof(line) - 1);
	for (unsigned i = 0; i < rc->n_peers; i++) {
		const struct narf_rpeer *rp = rc->peers[i];
		const struct narf_peer *p = rp->io;

		n = (unsigned)snprintf(
		        line, sizeof(line),
		        "peer%u:addr=%s,link=%s,sent=%" PRIu64 ",acked=%" PRIu64
		        ",forwarded_slots=%u,isr_slots=%u,syncing=%u,"
		        "dropping=%d\r\n",
		        rp->id, p != NULL ? p->addr : "?", link_name(rp),
		        rp->sent, rp->acked, bits_count(rp->fwd), rp->n_counts,
		        bits_count(rp->want), rp->drop.state != NARF_RREQ_IDLE);
		narf_buf_append(out, line,
		                n < sizeof(line) ? n : sizeof(line) - 1);
	}
}

void narf_repl_stats(const struct narf_repl *r, struct narf_repl_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->slots_led = bits_count(r->core->lead);
	out->slots_syncing_here = bits_count(r->core->syncing);
	out->stream_msgs = r->stream_msgs;
	out->stream_bytes = r->stream_bytes;
	out->acks = r->core->acks;
	out->proxied = r->proxied;
	out->n_peers = r->n_peers;
}

void narf_repl_peer_stats(const struct narf_repl *r,
                          unsigned i,
                          struct narf_repl_peer_stats *out)
{
	const struct narf_peer *p = r->peers[i];
	const struct narf_rpeer *rp = p->rp;
	uint64_t now = uv_now(r->loop);

	memset(out, 0, sizeof(*out));
	out->id = p->id;
	out->addr = p->addr;
	out->link_up = rp->link == NARF_RLINK_UP;
	if (rp->link != NARF_RLINK_DOWN) {
		out->sent = rp->sent;
		out->acked = rp->acked;
		if (rp->sent > rp->acked && now > rp->progress_ms)
			out->lag_ms = now - rp->progress_ms;
	}
	out->fwd_slots = bits_count(rp->fwd);
	out->isr_slots = rp->n_counts;
	out->syncing_slots = bits_count(rp->want);
	out->synced = rp->synced;
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
	r->core = narf_rcore_create();
	if (r->core == NULL) {
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
		repl_xfer_drop(r->peers[i]);
		free(r->peers[i]->xfers);
		free(r->peers[i]);
	}
	free(r->peers);
	narf_rcore_destroy(r->core);
	free(r);
}
