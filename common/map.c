/*
 * The cluster map model and its command interpreter.
 *
 * Every command is validated completely before anything is written, so a
 * rejected command leaves the map as it was; the FSM reports the rejection as
 * the entry's result and the log goes on. Determinism matters more than
 * anything here: all three coordinators run this code on the same entries and
 * must end with identical maps, so nothing below may look at a clock, a random
 * number or an address in memory.
 *
 * JSON conversion lives in map_json.c.
 */
#include "map.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flags.h"
#include "map_internal.h"

static const char *const state_names[] = {"joining", "up", "down", "leaving",
                                          "removed"};

const char *narf_node_state_name(enum narf_node_state st)
{
	if ((unsigned)st >= sizeof(state_names) / sizeof(state_names[0]))
		return "unknown";
	return state_names[st];
}

int narf_node_state_parse(const char *name, enum narf_node_state *out)
{
	for (unsigned i = 0; name && i < 5; i++) {
		if (strcmp(name, state_names[i]) == 0) {
			*out = (enum narf_node_state)i;
			return 0;
		}
	}
	return NARF_EINVAL;
}

void narf_map_settings_default(struct narf_map_settings *s)
{
	s->replication = 2;
	s->node_timeout_ms = 600;
	s->moves = NARF_MAP_DEFAULT_MOVES;
	s->ack = NARF_ACK_ALL;
	s->min_isr = 1;
	s->removed_retention_ms = NARF_MAP_DEFAULT_REMOVED_RETENTION_MS;
}

unsigned narf_reply_timeout_ms(unsigned node_timeout_ms)
{
	unsigned r = node_timeout_ms / 2;

	return r < 50 ? 50 : r > 2000 ? 2000 : r;
}

unsigned narf_lease_ms(unsigned node_timeout_ms)
{
	unsigned guard = node_timeout_ms / 20;

	return node_timeout_ms - (guard < 20 ? 20 : guard);
}

int narf_timing_check(unsigned node_timeout_ms,
                      unsigned election_timeout_ms,
                      char *errmsg)
{
	if (node_timeout_ms < 2 * election_timeout_ms) {
		snprintf(errmsg, NARF_ERRMSG_SIZE,
		         "node timeout %u ms is below twice the election "
		         "timeout (%u ms): a lease must outlast an election "
		         "(docs/safety.md)",
		         node_timeout_ms, election_timeout_ms);
		return NARF_EINVAL;
	}
	if (node_timeout_ms < 4u * NARF_HEARTBEAT_MS) {
		snprintf(errmsg, NARF_ERRMSG_SIZE,
		         "node timeout %u ms is below four heartbeat "
		         "intervals (%u ms) (docs/safety.md)",
		         node_timeout_ms, 4u * NARF_HEARTBEAT_MS);
		return NARF_EINVAL;
	}
	return 0;
}

void narf_map_init(struct narf_map *m, const struct narf_map_settings *s)
{
	memset(m, 0, sizeof(*m));
	m->next_node = 1;
	m->next_coord = 1;
	if (s != NULL)
		m->settings = *s;
	else
		narf_map_settings_default(&m->settings);
}

void narf_map_close(struct narf_map *m)
{
	if (m == NULL)
		return;
	free(m->nodes);
	m->nodes = NULL;
	m->n_nodes = m->cap_nodes = 0;
}

int narf_map_copy(struct narf_map *dst, const struct narf_map *src)
{
	struct narf_map_node *nodes = NULL;

	if (src->n_nodes > 0) {
		nodes = malloc(src->n_nodes * sizeof(*nodes));
		if (nodes == NULL)
			return NARF_ENOMEM;
		memcpy(nodes, src->nodes, src->n_nodes * sizeof(*nodes));
	}
	free(dst->nodes);
	memcpy(dst, src, sizeof(*dst));
	dst->nodes = nodes;
	dst->dirty = NULL;
	dst->cap_nodes = src->n_nodes;
	return 0;
}

struct narf_map_node *narf_map_node_get(const struct narf_map *m, uint32_t id)
{
	unsigned lo = 0, hi = m->n_nodes;

	/* Nodes are appended with increasing ids, so the array is sorted. */
	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;

		if (m->nodes[mid].id == id)
			return &m->nodes[mid];
		if (m->nodes[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const struct narf_map_node *narf_map_node_by_addr(const struct narf_map *m,
                                                  const char *addr)
{
	for (unsigned i = 0; i < m->n_nodes; i++)
		if (m->nodes[i].state != NARF_NODE_REMOVED &&
		    strcmp(m->nodes[i].addr, addr) == 0)
			return &m->nodes[i];
	return NULL;
}

bool narf_slot_has(const struct narf_slot *s, uint32_t id)
{
	if (id == 0)
		return false;
	if (s->primary == id)
		return true;
	for (unsigned i = 0; i < s->n_replicas; i++)
		if (s->replicas[i] == id)
			return true;
	return false;
}

bool narf_slot_equal(const struct narf_slot *a, const struct narf_slot *b)
{
	return a->primary == b->primary && a->move == b->move &&
	       a->epoch == b->epoch && a->born == b->born &&
	       a->n_replicas == b->n_replicas && a->n_isr == b->n_isr &&
	       memcmp(a->replicas, b->replicas,
	              a->n_replicas * sizeof(a->replicas[0])) == 0 &&
	       memcmp(a->isr, b->isr, a->n_isr * sizeof(a->isr[0])) == 0;
}

unsigned narf_slot_copies(const struct narf_slot *s)
{
	return (s->primary != 0 ? 1u : 0u) + s->n_replicas;
}

void narf_map_node_counts(const struct narf_map *m,
                          uint32_t id,
                          unsigned *primaries,
                          unsigned *replicas)
{
	const struct narf_map_node *n = narf_map_node_get(m, id);

	*primaries = n != NULL ? n->primaries : 0;
	*replicas = n != NULL ? n->replicas : 0;
}

bool narf_map_same_zone(const struct narf_map_node *a,
                        const struct narf_map_node *b)
{
	return a->zone[0] != '\0' && strcmp(a->zone, b->zone) == 0;
}

/* Do two copies of slot s sit in one zone? Each node holding the first
 * copy of such a pair counts the slot (sign as for count_slot). At most
 * NARF_MAX_COPIES lookups and 10 comparisons. */
static bool shares_zone(struct narf_map *m,
                        const struct narf_slot *s,
                        unsigned sign)
{
	struct narf_map_node *n[NARF_MAX_COPIES];
	bool shared = false;
	unsigned k = 0;

	if ((n[k] = narf_map_node_get(m, s->primary)) != NULL)
		k++;
	for (unsigned i = 0; i < s->n_replicas && i < NARF_MAX_REPLICAS; i++)
		if ((n[k] = narf_map_node_get(m, s->replicas[i])) != NULL)
			k++;
	for (unsigned i = 0; i < k; i++) {
		bool first = true;

		for (unsigned j = 0; j < k; j++) {
			if (j == i || !narf_map_same_zone(n[i], n[j]))
				continue;
			shared = true;
			first = first && j > i;
		}
		for (unsigned j = i + 1; first && j < k; j++)
			if (narf_map_same_zone(n[i], n[j])) {
				n[i]->zone_shared += sign;
				break;
			}
	}
	return shared;
}

/*
 * Add (sign +1) or take away (sign -1) slot s's part of the derived
 * counts. Unsigned arithmetic wraps back on the way down, so one function
 * serves both directions.
 */
static void count_slot(struct narf_map *m,
                       const struct narf_slot *s,
                       unsigned sign)
{
	struct narf_map_counts *c = &m->counts;
	struct narf_map_node *n;

	if (s->primary != 0) {
		unsigned isr = 1u + s->n_isr;

		c->assigned += sign;
		c->moving += s->move != 0 ? sign : 0;
		c->syncing += s->n_isr < s->n_replicas ? sign : 0;
		c->by_isr[isr <= NARF_MAX_COPIES ? isr : NARF_MAX_COPIES] +=
		        sign;
		if ((n = narf_map_node_get(m, s->primary)) != NULL)
			n->primaries += sign;
	}
	if (s->primary != 0 && shares_zone(m, s, sign))
		c->zone_shared += sign;
	for (unsigned i = 0; i < s->n_replicas && i < NARF_MAX_REPLICAS; i++) {
		if ((n = narf_map_node_get(m, s->replicas[i])) == NULL)
			continue;
		n->replicas += sign;
		for (unsigned j = 0; j < s->n_isr && j < NARF_MAX_REPLICAS; j++)
			n->in_sync += s->isr[j] == s->replicas[i] ? sign : 0;
	}
	if (s->move != 0 && (n = narf_map_node_get(m, s->move)) != NULL)
		n->moves_in += sign;
}

/* splitmix64's finalizer: every input bit moves every output bit. */
static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Fold v into the running hash h (order matters). */
static uint64_t fold(uint64_t h, uint64_t v)
{
	return mix64(h + 0x9e3779b97f4a7c15ULL + v);
}

static uint64_t fold_str(uint64_t h, const char *str)
{
	uint64_t f = 14695981039346656037ULL; /* FNV-1a, then folded */

	for (; *str != '\0'; str++) {
		f ^= (unsigned char)*str;
		f *= 1099511628211ULL;
	}
	return fold(h, f);
}

/* Slot s's term of m->slot_sum: 0 for a slot with nothing in it, so an
 * empty map's sum is 0; else a hash of its index and of every field the
 * JSON form carries (unused array entries left out). */
static uint64_t slot_term(unsigned s, const struct narf_slot *v)
{
	uint64_t h;

	if (v->primary == 0 && v->move == 0 && v->epoch == 0 && v->born == 0 &&
	    v->n_replicas == 0 && v->n_isr == 0)
		return 0;
	h = fold(fold(fold(fold(fold(s, v->primary), v->move), v->epoch),
	              v->born),
	         ((uint64_t)v->n_replicas << 8) | v->n_isr);
	for (unsigned i = 0; i < v->n_replicas && i < NARF_MAX_REPLICAS; i++)
		h = fold(h, v->replicas[i]);
	for (unsigned i = 0; i < v->n_isr && i < NARF_MAX_REPLICAS; i++)
		h = fold(h, v->isr[i]);
	return h;
}

uint64_t narf_map_digest(const struct narf_map *m)
{
	const struct narf_map_settings *st = &m->settings;
	uint64_t h = fold(0, m->epoch);

	h = fold(fold(fold(h, m->next_node), m->lost_slots), m->next_coord);
	h = fold(fold(fold(h, st->replication), st->node_timeout_ms), st->ack);
	h = fold(fold(fold(h, st->moves), st->min_isr), st->on_lost);
	h = fold(h, st->removed_retention_ms);
	h = fold(h, m->n_coords);
	for (unsigned i = 0; i < m->n_coords; i++)
		h = fold_str(
		        fold_str(fold(h, m->coords[i].id), m->coords[i].raft),
		        m->coords[i].api);
	h = fold(h, m->n_nodes);
	for (unsigned i = 0; i < m->n_nodes; i++) {
		const struct narf_map_node *n = &m->nodes[i];

		h = fold_str(fold_str(fold(h, n->id), n->addr), n->boot_id);
		h = fold_str(fold(fold(h, n->state), n->isr_dropped), n->zone);
	}
	return fold(h, m->slot_sum);
}

/*
 * The one place a slot of a live map changes: every command's slot writes
 * come through here, so the derived counts follow them. Returns whether
 * the slot changed.
 */
static bool slot_put(struct narf_map *m, unsigned s, const struct narf_slot *v)
{
	if (narf_slot_equal(&m->slots[s], v))
		return false;
	count_slot(m, &m->slots[s], (unsigned)-1);
	m->slot_sum -= slot_term(s, &m->slots[s]);
	m->slots[s] = *v;
	m->slot_sum += slot_term(s, &m->slots[s]);
	count_slot(m, &m->slots[s], 1);
	if (m->dirty != NULL && !narf_map_dirty_slot(m->dirty, s)) {
		m->dirty->slots[s / 64] |= (uint64_t)1 << (s % 64);
		m->dirty->n_slots++;
	}
	return true;
}

void narf_map_dirty_clear(struct narf_map_dirty *d)
{
	memset(d, 0, sizeof(*d));
}

void narf_map_recount(struct narf_map *m)
{
	memset(&m->counts, 0, sizeof(m->counts));
	for (unsigned i = 0; i < m->n_nodes; i++) {
		struct narf_map_node *n = &m->nodes[i];

		n->primaries = n->replicas = n->in_sync = n->moves_in = 0;
		n->zone_shared = 0;
	}
	m->slot_sum = 0;
	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		count_slot(m, &m->slots[s], 1);
		m->slot_sum += slot_term(s, &m->slots[s]);
	}
}

unsigned narf_map_held_slots(const struct narf_map *m)
{
	unsigned held = 0;

	if (m->settings.on_lost != NARF_LOST_WAIT)
		return 0;
	for (unsigned i = 0; i < m->n_nodes; i++)
		if (m->nodes[i].state == NARF_NODE_DOWN)
			held += m->nodes[i].primaries;
	return held;
}

int narf_map_fail(struct narf_map_result *res, int err, const char *fmt, ...)
{
	va_list ap;

	res->err = err;
	va_start(ap, fmt);
	vsnprintf(res->errmsg, sizeof(res->errmsg), fmt, ap);
	va_end(ap);
	return err;
}

/* Remove id from a list of n ids, keeping order; returns the new length. */
static uint8_t list_remove(uint32_t *list, uint8_t n, uint32_t id)
{
	uint8_t out = 0;

	for (uint8_t i = 0; i < n; i++)
		if (list[i] != id)
			list[out++] = list[i];
	/* Keep unused entries zero so equal slots are equal bytes. */
	for (uint8_t i = out; i < n; i++)
		list[i] = 0;
	return out;
}

static bool node_live(const struct narf_map *m, uint32_t id)
{
	const struct narf_map_node *n = narf_map_node_get(m, id);

	return n != NULL &&
	       (n->state == NARF_NODE_UP || n->state == NARF_NODE_LEAVING);
}

static bool list_has(const uint32_t *ids, unsigned n, uint32_t id);

int narf_lost_policy_parse(const char *name, enum narf_lost_policy *out)
{
	if (name != NULL && strcmp(name, "empty") == 0)
		*out = NARF_LOST_EMPTY;
	else if (name != NULL && strcmp(name, "wait") == 0)
		*out = NARF_LOST_WAIT;
	else
		return NARF_EINVAL;
	return 0;
}

const char *narf_lost_policy_name(enum narf_lost_policy p)
{
	return p == NARF_LOST_WAIT ? "wait" : "empty";
}

bool narf_slot_held(const struct narf_map *m, unsigned s)
{
	const struct narf_map_node *p =
	        narf_map_node_get(m, m->slots[s].primary);

	return m->settings.on_lost == NARF_LOST_WAIT && p != NULL &&
	       p->state == NARF_NODE_DOWN;
}

/* Keep only the ISR members among a slot's replicas. */
static void keep_isr_only(struct narf_slot *slot)
{
	memcpy(slot->replicas, slot->isr, slot->n_isr * sizeof(slot->isr[0]));
	slot->n_replicas = slot->n_isr;
}

/*
 * Take node id out of every slot (it went down, or was removed). For each
 * slot it led, promote the first live ISR replica (it holds every
 * acknowledged write). With none:
 * - on_lost wait, and the node is only down: the slot is held, its primary
 *   and ISR kept, until one of them is up again (apply_node_state); a held
 *   slot also keeps the ISR members that go down after it;
 * - else the slot starts over, empty: no copies, `born` set, counted lost
 *   (a replica outside the ISR may miss acknowledged writes: serving it
 *   would bring back overwritten values and deleted keys). The planner
 *   gives it a primary.
 * Promotions take the epoch the entry will produce. A pending move of a
 * slot it led, or to it, is cleared.
 */
static void drop_node_from_slots(struct narf_map *m, uint32_t id, bool removed)
{
	uint64_t new_epoch = m->epoch + 1;
	bool wait = m->settings.on_lost == NARF_LOST_WAIT && !removed;
	const struct narf_map_node *n = narf_map_node_get(m, id);

	/* The derived counts say when the node holds nothing more: no slot
	 * after that names it, so the walk can stop (a node that led few
	 * slots, low in the table, costs little). Held slots keep it, so
	 * then the walk goes to the end. */
	for (unsigned s = 0;
	     s < NARF_SLOTS && n != NULL && narf_map_node_holds(n); s++) {
		struct narf_slot next = m->slots[s], *slot = &next;
		uint32_t heir = 0;

		if (!narf_slot_has(slot, id) && slot->move != id)
			continue;
		if (slot->move == id)
			slot->move = 0;
		if (slot->primary != id) {
			if (!(wait && narf_slot_held(m, s))) {
				slot->n_replicas = list_remove(
				        slot->replicas, slot->n_replicas, id);
				slot->n_isr =
				        list_remove(slot->isr, slot->n_isr, id);
			}
			slot_put(m, s, slot);
			continue;
		}
		/* The handoff it was making dies with it: failover picks
		 * the heir. */
		slot->move = 0;
		for (unsigned i = 0; heir == 0 && i < slot->n_isr; i++)
			if (node_live(m, slot->isr[i]))
				heir = slot->isr[i];
		if (heir == 0 && wait) {
			keep_isr_only(slot);
			slot_put(m, s, slot);
			continue;
		}
		slot->epoch = new_epoch;
		if (heir == 0) {
			m->lost_slots++;
			slot->primary = 0;
			slot->born = new_epoch;
			slot->n_replicas = 0;
			slot->n_isr = 0;
			slot_put(m, s, slot);
			continue;
		}
		slot->primary = heir;
		slot->n_replicas =
		        list_remove(slot->replicas, slot->n_replicas, heir);
		slot->n_isr = list_remove(slot->isr, slot->n_isr, heir);
		slot_put(m, s, slot);
	}
}

/* Node id is up again: every held slot it is an in-sync replica of gets it
 * as primary (its primary, down, leaves the slot: it may have writes no
 * client was told about, and the new primary is the reference now). A
 * held slot it leads is simply served again. */
static void release_held_slots(struct narf_map *m, uint32_t id)
{
	uint64_t new_epoch = m->epoch + 1;

	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		struct narf_slot next = m->slots[s], *slot = &next;

		if (slot->primary == id || !narf_slot_held(m, s) ||
		    !list_has(slot->isr, slot->n_isr, id))
			continue;
		slot->primary = id;
		slot->epoch = new_epoch;
		slot->move = 0;
		slot->n_replicas =
		        list_remove(slot->replicas, slot->n_replicas, id);
		slot->n_isr = list_remove(slot->isr, slot->n_isr, id);
		slot_put(m, s, slot);
	}
}

bool narf_map_valid_boot_id(const char *b)
{
	size_t n = strlen(b);

	if (n == 0 || n >= NARF_BOOT_ID_SIZE)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isgraph((unsigned char)b[i]))
			return false;
	return true;
}

bool narf_map_valid_zone(const char *z)
{
	size_t n = strlen(z);

	if (n == 0 || n >= NARF_ZONE_SIZE)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isgraph((unsigned char)z[i]))
			return false;
	return true;
}

bool narf_map_valid_addr(const char *addr)
{
	char host[NARF_ADDR_SIZE];
	int port;

	return addr != NULL && strlen(addr) < NARF_ADDR_SIZE &&
	       narf_parse_hostport(addr, host, sizeof(host), &port) == 0;
}

static struct narf_map_node *add_node(struct narf_map *m)
{
	if (m->n_nodes == m->cap_nodes) {
		unsigned cap = m->cap_nodes ? 2 * m->cap_nodes : 16;
		struct narf_map_node *p = realloc(m->nodes, cap * sizeof(*p));

		if (p == NULL)
			return NULL;
		m->nodes = p;
		m->cap_nodes = cap;
	}
	memset(&m->nodes[m->n_nodes], 0, sizeof(m->nodes[0]));
	return &m->nodes[m->n_nodes++];
}

static int apply_node_join(struct narf_map *m,
                           const json_t *cmd,
                           struct narf_map_result *res)
{
	const char *addr = json_string_value(json_object_get(cmd, "addr"));
	const char *boot = json_string_value(json_object_get(cmd, "boot_id"));
	const json_t *zone = json_object_get(cmd, "zone");
	const struct narf_map_node *old;
	struct narf_map_node *n;

	if (!narf_map_valid_addr(addr))
		return narf_map_fail(res, NARF_EINVAL,
		                     "addr must be \"host:port\"");
	if (boot == NULL || !narf_map_valid_boot_id(boot))
		return narf_map_fail(res, NARF_EINVAL,
		                     "boot_id must be 1 to 64 printable "
		                     "characters");
	/* Entries of older leaders have no zone: "" */
	if (zone != NULL && (!json_is_string(zone) ||
	                     !narf_map_valid_zone(json_string_value(zone))))
		return narf_map_fail(res, NARF_EINVAL,
		                     "zone must be 1 to 63 printable "
		                     "characters, no spaces");
	for (unsigned i = 0; i < m->n_nodes; i++) {
		old = &m->nodes[i];
		if (old->state != NARF_NODE_REMOVED &&
		    strcmp(old->addr, addr) == 0 &&
		    strcmp(old->boot_id, boot) == 0) {
			res->node = old->id; /* a retried join */
			return 0;
		}
	}
	if (m->next_node == UINT32_MAX)
		return narf_map_fail(res, NARF_EINVAL, "node ids exhausted");
	/* Reserve the slot in the array first so a failed allocation leaves
	 * the map untouched. */
	if (m->n_nodes == m->cap_nodes) {
		n = add_node(m);
		if (n == NULL)
			return narf_map_fail(res, NARF_ENOMEM, "out of memory");
		m->n_nodes--;
	}
	/* Every live incarnation at this address is gone: the process that
	 * held their memory has been replaced by this one. */
	for (unsigned i = 0; i < m->n_nodes; i++) {
		struct narf_map_node *o = &m->nodes[i];

		if (strcmp(o->addr, addr) == 0 &&
		    o->state != NARF_NODE_REMOVED &&
		    o->state != NARF_NODE_DOWN) {
			o->state = NARF_NODE_DOWN;
			o->isr_dropped = m->epoch + 1;
			drop_node_from_slots(m, o->id, true);
		}
	}
	n = add_node(m);
	n->id = m->next_node++;
	snprintf(n->addr, sizeof(n->addr), "%s", addr);
	snprintf(n->boot_id, sizeof(n->boot_id), "%s", boot);
	if (zone != NULL)
		snprintf(n->zone, sizeof(n->zone), "%s",
		         json_string_value(zone));
	n->state = NARF_NODE_JOINING;
	res->node = n->id;
	res->changed = true;
	return 0;
}

/* Which state changes node_state may make. */
static bool state_change_allowed(enum narf_node_state from,
                                 enum narf_node_state to)
{
	switch (to) {
	case NARF_NODE_UP:
		return from == NARF_NODE_JOINING || from == NARF_NODE_DOWN;
	case NARF_NODE_DOWN:
		return from == NARF_NODE_JOINING || from == NARF_NODE_UP ||
		       from == NARF_NODE_LEAVING;
	case NARF_NODE_REMOVED:
		return from == NARF_NODE_LEAVING || from == NARF_NODE_DOWN;
	default:
		return false;
	}
}

static int get_node_field(const struct narf_map *m,
                          const json_t *cmd,
                          struct narf_map_node **out,
                          struct narf_map_result *res)
{
	json_t *v = json_object_get(cmd, "node");
	json_int_t id;

	if (!json_is_integer(v) || (id = json_integer_value(v)) <= 0 ||
	    id > UINT32_MAX)
		return narf_map_fail(res, NARF_EINVAL,
		                     "node must be a positive integer");
	*out = narf_map_node_get(m, (uint32_t)id);
	if (*out == NULL)
		return narf_map_fail(res, NARF_ENOTFOUND, "no node %lld",
		                     (long long)id);
	return 0;
}

static int apply_node_state(struct narf_map *m,
                            const json_t *cmd,
                            struct narf_map_result *res)
{
	const char *name = json_string_value(json_object_get(cmd, "state"));
	const char *boot = json_string_value(json_object_get(cmd, "boot_id"));
	enum narf_node_state to;
	struct narf_map_node *n;

	if (get_node_field(m, cmd, &n, res) != 0)
		return res->err;
	if (narf_node_state_parse(name, &to) != 0 ||
	    (to != NARF_NODE_UP && to != NARF_NODE_DOWN &&
	     to != NARF_NODE_REMOVED))
		return narf_map_fail(res, NARF_EINVAL,
		                     "state must be up, down or removed");
	res->node = n->id;
	if (boot != NULL && strcmp(boot, n->boot_id) != 0)
		return narf_map_fail(res, NARF_ESTALE,
		                     "node %u is another incarnation now",
		                     n->id);
	if (n->state == to)
		return 0;
	if (!state_change_allowed(n->state, to))
		return narf_map_fail(res, NARF_EINVAL,
		                     "node %u cannot go from %s to %s", n->id,
		                     narf_node_state_name(n->state),
		                     narf_node_state_name(to));
	/* Held slots are released before the node counts as up, so a slot
	 * it is an in-sync replica of is not seen as held by itself. */
	if (to == NARF_NODE_UP && n->state == NARF_NODE_DOWN)
		release_held_slots(m, n->id);
	n->state = to;
	/* Down is a drop from every ISR (but a held slot's): a primary
	 * that missed this epoch learns from isr_dropped that what it
	 * synced to the node before is stale (repl_core.c, slot_rule). */
	if (to == NARF_NODE_DOWN)
		n->isr_dropped = m->epoch + 1;
	if (to != NARF_NODE_UP)
		drop_node_from_slots(m, n->id, to == NARF_NODE_REMOVED);
	res->changed = true;
	return 0;
}

static int apply_leave(struct narf_map *m,
                       const json_t *cmd,
                       struct narf_map_result *res)
{
	struct narf_map_node *n;

	if (get_node_field(m, cmd, &n, res) != 0)
		return res->err;
	res->node = n->id;
	if (n->state == NARF_NODE_LEAVING)
		return 0;
	if (n->state == NARF_NODE_REMOVED)
		return narf_map_fail(res, NARF_ENOTFOUND, "node %u is removed",
		                     n->id);
	/* if_room (a node stopping on SIGTERM): only when the other nodes
	 * up can hold every slot's copies, so that nodes stopping together
	 * do not all wait for a drain nobody can take. */
	if (n->state == NARF_NODE_UP &&
	    json_is_true(json_object_get(cmd, "if_room"))) {
		unsigned others = 0;

		for (unsigned i = 0; i < m->n_nodes; i++)
			others += m->nodes[i].id != n->id &&
			          m->nodes[i].state == NARF_NODE_UP;
		if (others < m->settings.replication)
			return narf_map_fail(
			        res, NARF_ENOROOM,
			        "node %u stays: %u other nodes up for %u "
			        "copies per slot",
			        n->id, others, m->settings.replication);
	}
	/* A down node holds no copies any more: nothing to drain. */
	n->state = n->state == NARF_NODE_DOWN ? NARF_NODE_REMOVED
	                                      : NARF_NODE_LEAVING;
	res->changed = true;
	return 0;
}

/*
 * A removed node that holds nothing leaves the map (the leader proposes it
 * once its retention is over). Its id stays used: next_node is untouched,
 * so no later node can be mistaken for it. Refused for any other state,
 * and while a slot still names it (a copy, or a pending move to it).
 */
static int apply_node_forget(struct narf_map *m,
                             const json_t *cmd,
                             struct narf_map_result *res)
{
	struct narf_map_node *n;
	unsigned i;

	if (get_node_field(m, cmd, &n, res) != 0)
		return res->err;
	res->node = n->id;
	if (n->state != NARF_NODE_REMOVED)
		return narf_map_fail(
		        res, NARF_EINVAL,
		        "node %u is %s: only a removed node leaves "
		        "the map",
		        n->id, narf_node_state_name(n->state));
	if (narf_map_node_holds(n))
		return narf_map_fail(res, NARF_EINVAL,
		                     "node %u still holds %u primaries, %u "
		                     "replicas and %u moves",
		                     n->id, n->primaries, n->replicas,
		                     n->moves_in);
	i = (unsigned)(n - m->nodes);
	memmove(&m->nodes[i], &m->nodes[i + 1],
	        (m->n_nodes - i - 1) * sizeof(*n));
	m->n_nodes--;
	res->changed = true;
	return 0;
}

static int apply_settings(struct narf_map *m,
                          const json_t *cmd,
                          struct narf_map_result *res)
{
	struct narf_map_settings s = m->settings;

	if (narf_map_settings_from_json(&s, cmd, res->errmsg) != 0)
		return res->err = NARF_EINVAL;
	if (memcmp(&s, &m->settings, sizeof(s)) != 0) {
		m->settings = s;
		res->changed = true;
	}
	return 0;
}

/* The first entry of a new cluster: the coordinators table and the settings
 * given on the command line, so every member starts from the same map. */
static int apply_init(struct narf_map *m,
                      const json_t *cmd,
                      struct narf_map_result *res)
{
	struct narf_map_settings s = m->settings;
	struct narf_map_coord coords[NARF_MAX_COORDS];
	unsigned n;

	if (m->n_coords != 0)
		return narf_map_fail(res, NARF_EEXISTS,
		                     "the map is already initialised");
	if (narf_map_coords_from_json(coords, &n,
	                              json_object_get(cmd, "coords"),
	                              res->errmsg) != 0 ||
	    narf_map_settings_from_json(&s, json_object_get(cmd, "settings"),
	                                res->errmsg) != 0)
		return res->err = NARF_EINVAL;
	memcpy(m->coords, coords, sizeof(coords));
	m->n_coords = n;
	m->next_coord = narf_map_coords_next(coords, n);
	m->settings = s;
	res->changed = true;
	return 0;
}

uint64_t narf_map_coords_next(const struct narf_map_coord *coords, unsigned n)
{
	uint64_t next = 1;

	for (unsigned i = 0; i < n; i++)
		if (coords[i].id >= next)
			next = coords[i].id + 1;
	return next;
}

static bool coords_have(const struct narf_map *m, uint64_t id)
{
	for (unsigned i = 0; i < m->n_coords; i++)
		if (m->coords[i].id == id)
			return true;
	return false;
}

static int apply_coords_set(struct narf_map *m,
                            const json_t *cmd,
                            struct narf_map_result *res)
{
	struct narf_map_coord coords[NARF_MAX_COORDS];
	unsigned n;

	if (narf_map_coords_from_json(coords, &n,
	                              json_object_get(cmd, "coords"),
	                              res->errmsg) != 0)
		return res->err = NARF_EINVAL;
	if (n == m->n_coords &&
	    memcmp(coords, m->coords, n * sizeof(coords[0])) == 0)
		return 0;
	for (unsigned i = 0; i < n; i++)
		if (coords[i].id < m->next_coord &&
		    !coords_have(m, coords[i].id))
			return narf_map_fail(
			        res, NARF_EEXISTS,
			        "coordinator id %llu was used before "
			        "and ids are never reused (next "
			        "free id: %llu)",
			        (unsigned long long)coords[i].id,
			        (unsigned long long)m->next_coord);
	memcpy(m->coords, coords, sizeof(coords));
	m->n_coords = n;
	if (narf_map_coords_next(coords, n) > m->next_coord)
		m->next_coord = narf_map_coords_next(coords, n);
	res->changed = true;
	return 0;
}

/* Check one slot of an assign command against the map's nodes. */
static int check_assigned_slot(const struct narf_map *m,
                               const struct narf_slot *s,
                               struct narf_map_result *res)
{
	uint32_t ids[NARF_MAX_COPIES];
	unsigned n = 0;

	/* No check against the replication factor: while a new copy syncs,
	 * the leader keeps the copy it replaces (docs/protocol.md, "Leader
	 * duties"), so a slot may hold more copies than the factor for a
	 * while. The slot's arrays bound it to NARF_MAX_COPIES. */
	if (s->primary != 0)
		ids[n++] = s->primary;
	for (unsigned i = 0; i < s->n_replicas; i++)
		ids[n++] = s->replicas[i];
	for (unsigned i = 0; i < n; i++) {
		if (!node_live(m, ids[i]))
			return narf_map_fail(res, NARF_ENOTFOUND,
			                     "node %u is not up", ids[i]);
		for (unsigned j = 0; j < i; j++)
			if (ids[i] == ids[j])
				return narf_map_fail(res, NARF_EINVAL,
				                     "two copies on node %u",
				                     ids[i]);
	}
	if (s->move == 0)
		return 0;
	if (!node_live(m, s->move))
		return narf_map_fail(res, NARF_ENOTFOUND,
		                     "move target %u is not up", s->move);
	/* Only a replica holding every acknowledged write may take over. */
	for (unsigned i = 0; i < s->n_isr; i++)
		if (s->isr[i] == s->move)
			return 0;
	return narf_map_fail(res, NARF_EINVAL,
	                     "move target %u is not in the ISR", s->move);
}

static int apply_assign(struct narf_map *m,
                        const json_t *cmd,
                        struct narf_map_result *res)
{
	json_t *base = json_object_get(cmd, "base_epoch");
	json_t *ranges = json_object_get(cmd, "slots");
	struct narf_slot *next;
	size_t i;
	json_t *r;

	if (!json_is_integer(base) || !json_is_array(ranges))
		return narf_map_fail(res, NARF_EINVAL,
		                     "assign needs base_epoch and slots");
	if ((uint64_t)json_integer_value(base) != m->epoch)
		return narf_map_fail(res, NARF_ESTALE,
		                     "planned at epoch %lld, map is at %llu",
		                     (long long)json_integer_value(base),
		                     (unsigned long long)m->epoch);
	/* Build the new slot table aside; swap it in only when all is valid. */
	next = malloc(sizeof(m->slots));
	if (next == NULL)
		return narf_map_fail(res, NARF_ENOMEM, "out of memory");
	memcpy(next, m->slots, sizeof(m->slots));
	json_array_foreach(ranges, i, r)
	{
		struct narf_slot s;
		unsigned from, to;

		if (narf_map_range_from_json(r, &from, &to, &s, res->errmsg) !=
		            0 ||
		    check_assigned_slot(m, &s, res) != 0) {
			if (res->err == 0)
				res->err = NARF_EINVAL;
			free(next);
			return res->err;
		}
		for (unsigned k = from; k <= to; k++) {
			/* A held slot waits for its copies, whatever the
			 * planner thought (narf_slot_held). */
			if (narf_slot_held(m, k))
				continue;
			s.epoch = (s.primary == m->slots[k].primary)
			                  ? m->slots[k].epoch
			                  : m->epoch + 1;
			/* Only a loss starts a lineage (drop_node_from_slots).
			 */
			s.born = m->slots[k].born;
			next[k] = s;
		}
	}
	/* Valid as a whole: now through slot_put, which skips equal slots. */
	for (unsigned k = 0; k < NARF_SLOTS; k++)
		if (slot_put(m, k, &next[k]))
			res->changed = true;
	free(next);
	return 0;
}

static bool list_has(const uint32_t *ids, unsigned n, uint32_t id)
{
	for (unsigned i = 0; i < n; i++)
		if (ids[i] == id)
			return true;
	return false;
}

/* A node id field that names a node of the map (any state). */
static int get_id_field(const struct narf_map *m,
                        const json_t *cmd,
                        const char *key,
                        uint32_t *out,
                        struct narf_map_result *res)
{
	json_t *v = json_object_get(cmd, key);
	json_int_t id;

	if (!json_is_integer(v) || (id = json_integer_value(v)) <= 0 ||
	    id > UINT32_MAX)
		return narf_map_fail(res, NARF_EINVAL,
		                     "%s must be a positive integer", key);
	if (narf_map_node_get(m, (uint32_t)id) == NULL)
		return narf_map_fail(res, NARF_ENOTFOUND, "no node %lld",
		                     (long long)id);
	*out = (uint32_t)id;
	return 0;
}

/*
 * ISR change reported by a primary: add node to the ISR of the listed slots
 * it leads and replicates (a sync finished), or drop it from the ISR of
 * every slot it leads (the replica is lost or lags). Slots that no longer
 * match are skipped: the request was made against an older map. The ISR
 * stays in the order of replicas[], so equal slots stay equal bytes.
 *
 * A drop records its epoch on the node (isr_dropped). An add says since
 * which map epoch the syncs it reports ran ("since": the oldest of them),
 * and is taken only for what is still true of that time: it is refused
 * (NARF_ESTALE) when the node was dropped from an ISR after it, and a slot
 * whose primary changed after it (its slot epoch is newer) is skipped.
 * Either way the request is older than writes the node may lack: one the
 * network held past the primary's timeout, or one from before the slot
 * left the primary and came back. The primary syncs the node again (a
 * refused add fails its link). Any primary's drop counts (the map keeps
 * one epoch per node): a primary whose own link was fine pays one resync.
 */
static int apply_isr(struct narf_map *m,
                     const json_t *cmd,
                     struct narf_map_result *res)
{
	json_t *add = json_object_get(cmd, "add");
	json_t *drop = json_object_get(cmd, "drop");
	bool *take = NULL;
	uint32_t primary, node;
	uint64_t since = UINT64_MAX; /* an add without one: no check */

	if (get_id_field(m, cmd, "primary", &primary, res) != 0 ||
	    get_id_field(m, cmd, "node", &node, res) != 0)
		return res->err;
	if (primary == node)
		return narf_map_fail(res, NARF_EINVAL,
		                     "node %u cannot replicate itself", node);
	if ((add == NULL) == (drop == NULL) ||
	    (drop != NULL && !json_is_true(drop)))
		return narf_map_fail(res, NARF_EINVAL,
		                     "isr needs \"add\" ranges or \"drop\": "
		                     "true");
	if (add != NULL) {
		const struct narf_map_node *n = narf_map_node_get(m, node);
		json_t *since_v = json_object_get(cmd, "since");

		if (since_v != NULL && (!json_is_integer(since_v) ||
		                        json_integer_value(since_v) < 0))
			return narf_map_fail(
			        res, NARF_EINVAL,
			        "isr \"since\" must be a map epoch");
		if (since_v != NULL && n != NULL &&
		    (uint64_t)json_integer_value(since_v) < n->isr_dropped)
			return narf_map_fail(
			        res, NARF_ESTALE,
			        "node %u left an ISR at epoch %llu, after this "
			        "add's syncs began (epoch %lld): sync it again",
			        node, (unsigned long long)n->isr_dropped,
			        (long long)json_integer_value(since_v));
		if (since_v != NULL)
			since = (uint64_t)json_integer_value(since_v);
		take = malloc(NARF_SLOTS * sizeof(*take));
		if (take == NULL)
			return narf_map_fail(res, NARF_ENOMEM, "out of memory");
		if (narf_map_slot_ranges(add, "add", take, res->errmsg) != 0) {
			free(take);
			return res->err = NARF_EINVAL;
		}
	}
	for (unsigned k = 0; k < NARF_SLOTS; k++) {
		struct narf_slot next = m->slots[k], *s = &next;
		bool in = list_has(s->isr, s->n_isr, node);
		uint32_t isr[NARF_MAX_REPLICAS] = {0};
		uint8_t n = 0;

		if (s->primary != primary || (take != NULL && !take[k]) ||
		    (take != NULL) == in ||
		    !list_has(s->replicas, s->n_replicas, node) ||
		    (take != NULL && s->epoch > since))
			continue;
		/* Rebuild the ISR in replicas[] order, with or without node. */
		for (unsigned i = 0; i < s->n_replicas; i++) {
			uint32_t r = s->replicas[i];

			if (r == node ? take != NULL
			              : list_has(s->isr, s->n_isr, r))
				isr[n++] = r;
		}
		memcpy(s->isr, isr, sizeof(isr));
		s->n_isr = n;
		/* A dropped replica may miss writes: no handoff to it. */
		if (take == NULL && s->move == node)
			s->move = 0;
		slot_put(m, k, s);
		res->changed = true;
	}
	free(take);
	if (add == NULL) {
		struct narf_map_node *n = narf_map_node_get(m, node);

		/* Recorded even when the node was in no ISR of primary's: an
		 * add sent before may still come (this entry's epoch). */
		if (n != NULL) {
			n->isr_dropped = m->epoch + 1;
			res->changed = true;
		}
	}
	res->node = node;
	return 0;
}

/*
 * A primary reports that it has stopped taking writes for the listed slots
 * with a pending move and that each target has acknowledged every write it
 * sent: the target becomes primary (new slot epoch), the old primary takes
 * the target's place among the replicas and in the ISR (it held every
 * write), and the move is done. Slots where that no longer holds (not led
 * by primary, no move, target out of the ISR) are skipped, so a repeated
 * request changes nothing.
 */
static int apply_handoff(struct narf_map *m,
                         const json_t *cmd,
                         struct narf_map_result *res)
{
	bool *take;
	uint32_t primary;

	if (get_id_field(m, cmd, "primary", &primary, res) != 0)
		return res->err;
	take = malloc(NARF_SLOTS * sizeof(*take));
	if (take == NULL)
		return narf_map_fail(res, NARF_ENOMEM, "out of memory");
	if (narf_map_slot_ranges(json_object_get(cmd, "slots"), "slots", take,
	                         res->errmsg) != 0) {
		free(take);
		return res->err = NARF_EINVAL;
	}
	for (unsigned k = 0; k < NARF_SLOTS; k++) {
		struct narf_slot next = m->slots[k], *s = &next;
		uint32_t to = s->move;

		if (!take[k] || s->primary != primary || to == 0 ||
		    !list_has(s->isr, s->n_isr, to) || !node_live(m, to))
			continue;
		/* The ISR is in replicas[] order, so swapping ids in place
		 * keeps both lists ordered alike. */
		for (unsigned i = 0; i < s->n_replicas; i++)
			if (s->replicas[i] == to)
				s->replicas[i] = primary;
		for (unsigned i = 0; i < s->n_isr; i++)
			if (s->isr[i] == to)
				s->isr[i] = primary;
		s->primary = to;
		s->move = 0;
		s->epoch = m->epoch + 1;
		slot_put(m, k, s);
		res->changed = true;
	}
	free(take);
	res->node = primary;
	return 0;
}

int narf_map_apply(struct narf_map *m,
                   const json_t *cmd,
                   struct narf_map_result *res)
{
	return narf_map_apply_dirty(m, cmd, res, NULL);
}

/* The dirty flags of an accepted command of this type that changed the
 * map (its slots are marked by slot_put). */
static void mark_dirty(struct narf_map_dirty *d,
                       const char *type,
                       const json_t *cmd)
{
	if (strcmp(type, "node_join") == 0 || strcmp(type, "node_state") == 0 ||
	    strcmp(type, "leave") == 0 || strcmp(type, "node_forget") == 0 ||
	    (strcmp(type, "isr") == 0 && json_object_get(cmd, "drop")))
		d->nodes = true;
	if (strcmp(type, "settings") == 0 || strcmp(type, "init") == 0)
		d->settings = true;
	if (strcmp(type, "coords_set") == 0 || strcmp(type, "init") == 0)
		d->coords = true;
}

int narf_map_apply_dirty(struct narf_map *m,
                         const json_t *cmd,
                         struct narf_map_result *res,
                         struct narf_map_dirty *dirty)
{
	static const struct {
		const char *type;
		int (*fn)(struct narf_map *,
		          const json_t *,
		          struct narf_map_result *);
	} handlers[] = {
	        {"node_join", apply_node_join},
	        {"node_state", apply_node_state},
	        {"leave", apply_leave},
	        {"node_forget", apply_node_forget},
	        {"assign", apply_assign},
	        {"isr", apply_isr},
	        {"handoff", apply_handoff},
	        {"settings", apply_settings},
	        {"coords_set", apply_coords_set},
	        {"init", apply_init},
	};
	json_t *v = json_object_get(cmd, "v");
	const char *type = json_string_value(json_object_get(cmd, "type"));

	memset(res, 0, sizeof(*res));
	if (!json_is_object(cmd))
		return narf_map_fail(res, NARF_EINVAL,
		                     "command is not an object");
	if (!json_is_integer(v) || json_integer_value(v) != NARF_MAP_VERSION)
		return narf_map_fail(res, NARF_EINVAL,
		                     "unsupported command version");
	for (size_t i = 0; type && i < sizeof(handlers) / sizeof(handlers[0]);
	     i++) {
		if (strcmp(type, handlers[i].type) != 0)
			continue;
		m->dirty = dirty;
		if (handlers[i].fn(m, cmd, res) == 0 && res->changed) {
			m->epoch++;
			if (dirty != NULL)
				mark_dirty(dirty, type, cmd);
		}
		m->dirty = NULL;
		return res->err;
	}
	return narf_map_fail(res, NARF_EUNKNOWNOP, "unknown command type '%s'",
	                     type ? type : "(none)");
}
