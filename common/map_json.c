/*
 * JSON forms of the cluster map: the wire/snapshot form (docs/protocol.md)
 * and the command builders. Slots travel as ranges of equal neighbours, so a
 * balanced map of three nodes is a few dozen ranges, not 16384 rows.
 *
 * Parsing trusts nothing: every field is type- and range-checked, and a map
 * is parsed into a scratch copy that replaces the live one only when all of
 * it is valid.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "map.h"
#include "map_internal.h"

static void set_err(char *errmsg, const char *fmt, const char *what)
{
	if (errmsg != NULL)
		snprintf(errmsg, NARF_ERRMSG_SIZE, fmt, what);
}

static const char *ack_name(enum narf_ack_mode a)
{
	return a == NARF_ACK_PRIMARY ? "primary" : "all";
}

static json_t *ids_to_json(const uint32_t *ids, unsigned n)
{
	json_t *a = json_array();

	for (unsigned i = 0; a && i < n; i++)
		json_array_append_new(a, json_integer(ids[i]));
	return a;
}

static json_t *range_to_json(unsigned from,
                             unsigned to,
                             const struct narf_slot *s)
{
	json_t *r = json_pack(
	        "{s:i,s:i,s:I,s:o,s:o,s:I}", "from", (int)from, "to", (int)to,
	        "primary", (json_int_t)s->primary, "replicas",
	        ids_to_json(s->replicas, s->n_replicas), "isr",
	        ids_to_json(s->isr, s->n_isr), "epoch", (json_int_t)s->epoch);

	if (r != NULL && s->move != 0)
		json_object_set_new(r, "move", json_integer(s->move));
	if (r != NULL && s->born != 0)
		json_object_set_new(r, "born",
		                    json_integer((json_int_t)s->born));
	return r;
}

json_t *narf_map_slots_to_json(const struct narf_slot *slots, const bool *take)
{
	json_t *arr = json_array();
	unsigned s = 0;

	while (arr != NULL && s < NARF_SLOTS) {
		unsigned end = s;

		if (take != NULL && !take[s]) {
			s++;
			continue;
		}
		while (end + 1 < NARF_SLOTS &&
		       (take == NULL || take[end + 1]) &&
		       narf_slot_equal(&slots[s], &slots[end + 1]))
			end++;
		if (json_array_append_new(
		            arr, range_to_json(s, end, &slots[s])) != 0) {
			json_decref(arr);
			return NULL;
		}
		s = end + 1;
	}
	return arr;
}

json_t *narf_map_settings_to_json(const struct narf_map_settings *s)
{
	return json_pack(
	        "{s:i,s:i,s:s,s:i,s:i,s:s,s:I}", "replication",
	        (int)s->replication, "node_timeout_ms", (int)s->node_timeout_ms,
	        "ack", ack_name(s->ack), "moves", (int)s->moves, "min_isr",
	        (int)s->min_isr, "on_lost", narf_lost_policy_name(s->on_lost),
	        "removed_retention_ms", (json_int_t)s->removed_retention_ms);
}

static json_t *coords_to_json(const struct narf_map_coord *c, unsigned n)
{
	json_t *a = json_array();

	for (unsigned i = 0; a && i < n; i++)
		json_array_append_new(
		        a, json_pack("{s:I,s:s,s:s}", "id", (json_int_t)c[i].id,
		                     "raft", c[i].raft, "api", c[i].api));
	return a;
}

json_t *narf_map_to_json(const struct narf_map *m)
{
	json_t *nodes = json_array();

	for (unsigned i = 0; nodes && i < m->n_nodes; i++) {
		const struct narf_map_node *n = &m->nodes[i];

		json_t *o =
		        json_pack("{s:I,s:s,s:s,s:s}", "id", (json_int_t)n->id,
		                  "addr", n->addr, "boot_id", n->boot_id,
		                  "state", narf_node_state_name(n->state));

		/* Written only once set: older readers see the same map. */
		if (o != NULL && n->zone[0] != '\0')
			json_object_set_new(o, "zone", json_string(n->zone));
		if (o != NULL && n->isr_dropped != 0)
			json_object_set_new(
			        o, "isr_dropped",
			        json_integer((json_int_t)n->isr_dropped));
		json_array_append_new(nodes, o);
	}
	/* json_pack's "o" steals references, including on failure. */
	return json_pack(
	        "{s:I,s:I,s:I,s:I,s:o,s:o,s:o,s:o}", "epoch",
	        (json_int_t)m->epoch, "next_node", (json_int_t)m->next_node,
	        "next_coord", (json_int_t)m->next_coord, "lost_slots",
	        (json_int_t)m->lost_slots, "settings",
	        narf_map_settings_to_json(&m->settings), "coordinators",
	        coords_to_json(m->coords, m->n_coords), "nodes", nodes, "slots",
	        narf_map_slots_to_json(m->slots, NULL));
}

/* An integer field within [min, max]; absent is an error unless optional. */
static int get_uint(const json_t *obj,
                    const char *key,
                    uint64_t min,
                    uint64_t max,
                    bool optional,
                    uint64_t *out,
                    char *errmsg)
{
	json_t *v = json_object_get(obj, key);

	if (v == NULL && optional)
		return 1;
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) < min ||
	    (uint64_t)json_integer_value(v) > max) {
		set_err(errmsg, "field '%s' is missing or out of range", key);
		return NARF_EINVAL;
	}
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

int narf_map_settings_from_json(struct narf_map_settings *s,
                                const json_t *obj,
                                char *errmsg)
{
	uint64_t v;
	json_t *ack = json_object_get(obj, "ack");
	json_t *lost = json_object_get(obj, "on_lost");
	int rv;

	rv = get_uint(obj, "replication", 1, NARF_MAX_COPIES, true, &v, errmsg);
	if (rv < 0 || rv == NARF_EINVAL)
		return NARF_EINVAL;
	if (rv == 0)
		s->replication = (unsigned)v;
	rv = get_uint(obj, "node_timeout_ms", 100, 60000, true, &v, errmsg);
	if (rv == NARF_EINVAL)
		return NARF_EINVAL;
	if (rv == 0)
		s->node_timeout_ms = (unsigned)v;
	rv = get_uint(obj, "moves", 1, NARF_SLOTS, true, &v, errmsg);
	if (rv == NARF_EINVAL)
		return NARF_EINVAL;
	if (rv == 0)
		s->moves = (unsigned)v;
	rv = get_uint(obj, "min_isr", 1, NARF_MAX_COPIES, true, &v, errmsg);
	if (rv == NARF_EINVAL)
		return NARF_EINVAL;
	if (rv == 0)
		s->min_isr = (unsigned)v;
	/* Up to about 24 days (what a signed 32-bit count of ms holds); 0:
	 * removed nodes stay for ever. A map without it (written before it
	 * existed) keeps the default. */
	rv = get_uint(obj, "removed_retention_ms", 0, INT32_MAX, true, &v,
	              errmsg);
	if (rv == NARF_EINVAL)
		return NARF_EINVAL;
	if (rv == 0)
		s->removed_retention_ms = (unsigned)v;
	if (lost != NULL &&
	    narf_lost_policy_parse(json_string_value(lost), &s->on_lost) != 0) {
		set_err(errmsg, "%s must be \"empty\" or \"wait\"", "on_lost");
		return NARF_EINVAL;
	}
	if (s->min_isr > s->replication) {
		set_err(errmsg,
		        "%s must be at most replication: a slot never has "
		        "more in-sync copies than copies",
		        "min_isr");
		return NARF_EINVAL;
	}
	if (ack != NULL) {
		const char *a = json_string_value(ack);

		if (a != NULL && strcmp(a, "all") == 0) {
			s->ack = NARF_ACK_ALL;
		} else if (a != NULL && strcmp(a, "primary") == 0) {
			s->ack = NARF_ACK_PRIMARY;
		} else {
			set_err(errmsg, "%s must be \"all\" or \"primary\"",
			        "ack");
			return NARF_EINVAL;
		}
	}
	return 0;
}

int narf_map_settings_check(const struct narf_map_settings *current,
                            const json_t *obj,
                            struct narf_map_settings *out,
                            char *errmsg)
{
	*out = *current;
	return narf_map_settings_from_json(out, obj, errmsg);
}

static int get_addr(const json_t *obj, const char *key, char *out, char *errmsg)
{
	const char *a = json_string_value(json_object_get(obj, key));

	if (!narf_map_valid_addr(a)) {
		set_err(errmsg, "field '%s' must be \"host:port\"", key);
		return NARF_EINVAL;
	}
	snprintf(out, NARF_ADDR_SIZE, "%s", a);
	return 0;
}

int narf_map_coords_from_json(struct narf_map_coord *out,
                              unsigned *n,
                              const json_t *arr,
                              char *errmsg)
{
	size_t i;
	json_t *c;

	if (!json_is_array(arr) || json_array_size(arr) == 0 ||
	    json_array_size(arr) > NARF_MAX_COORDS) {
		set_err(errmsg, "%s must list 1 to 7 coordinators", "coords");
		return NARF_EINVAL;
	}
	memset(out, 0, NARF_MAX_COORDS * sizeof(*out));
	json_array_foreach(arr, i, c)
	{
		uint64_t id;

		if (get_uint(c, "id", 1, UINT32_MAX, false, &id, errmsg) != 0 ||
		    get_addr(c, "raft", out[i].raft, errmsg) != 0 ||
		    get_addr(c, "api", out[i].api, errmsg) != 0)
			return NARF_EINVAL;
		out[i].id = id;
		for (size_t j = 0; j < i; j++)
			if (out[j].id == id) {
				set_err(errmsg, "duplicate %s id",
				        "coordinator");
				return NARF_EINVAL;
			}
	}
	*n = (unsigned)json_array_size(arr);
	return 0;
}

static int ids_from_json(const json_t *arr,
                         uint32_t *ids,
                         uint8_t *n,
                         const char *what,
                         char *errmsg)
{
	size_t i;
	json_t *v;

	if (!json_is_array(arr) || json_array_size(arr) > NARF_MAX_REPLICAS) {
		set_err(errmsg, "'%s' must be an array of at most 4 node ids",
		        what);
		return NARF_EINVAL;
	}
	json_array_foreach(arr, i, v)
	{
		json_int_t id = json_integer_value(v);

		if (!json_is_integer(v) || id <= 0 || id > UINT32_MAX) {
			set_err(errmsg, "'%s' holds a bad node id", what);
			return NARF_EINVAL;
		}
		ids[i] = (uint32_t)id;
		for (size_t j = 0; j < i; j++)
			if (ids[j] == ids[i]) {
				set_err(errmsg, "'%s' repeats a node id", what);
				return NARF_EINVAL;
			}
	}
	*n = (uint8_t)json_array_size(arr);
	return 0;
}

static bool list_has(const uint32_t *ids, unsigned n, uint32_t id)
{
	for (unsigned i = 0; i < n; i++)
		if (ids[i] == id)
			return true;
	return false;
}

int narf_map_range_from_json(const json_t *r,
                             unsigned *from,
                             unsigned *to,
                             struct narf_slot *s,
                             char *errmsg)
{
	uint64_t f, t, p, e = 0, mv = 0, born = 0;

	memset(s, 0, sizeof(*s));
	if (!json_is_object(r) ||
	    get_uint(r, "from", 0, NARF_SLOTS - 1, false, &f, errmsg) != 0 ||
	    get_uint(r, "to", f, NARF_SLOTS - 1, false, &t, errmsg) != 0 ||
	    get_uint(r, "primary", 0, UINT32_MAX, false, &p, errmsg) != 0 ||
	    get_uint(r, "epoch", 0, INT64_MAX, true, &e, errmsg) ==
	            NARF_EINVAL ||
	    get_uint(r, "move", 0, UINT32_MAX, true, &mv, errmsg) ==
	            NARF_EINVAL ||
	    get_uint(r, "born", 0, INT64_MAX, true, &born, errmsg) ==
	            NARF_EINVAL ||
	    ids_from_json(json_object_get(r, "replicas"), s->replicas,
	                  &s->n_replicas, "replicas", errmsg) != 0 ||
	    ids_from_json(json_object_get(r, "isr"), s->isr, &s->n_isr, "isr",
	                  errmsg) != 0) {
		if (errmsg != NULL && errmsg[0] == '\0')
			set_err(errmsg, "%s is not a valid slot range",
			        "range");
		return NARF_EINVAL;
	}
	s->primary = (uint32_t)p;
	s->epoch = e;
	s->move = (uint32_t)mv;
	s->born = born;
	if (s->primary == 0 && s->n_replicas > 0) {
		set_err(errmsg, "%s: replicas without a primary", "range");
		return NARF_EINVAL;
	}
	if (list_has(s->replicas, s->n_replicas, s->primary)) {
		set_err(errmsg, "%s: primary is also a replica", "range");
		return NARF_EINVAL;
	}
	for (unsigned i = 0; i < s->n_isr; i++)
		if (!list_has(s->replicas, s->n_replicas, s->isr[i])) {
			set_err(errmsg, "%s: isr member is not a replica",
			        "range");
			return NARF_EINVAL;
		}
	/* Only a replica holding every acknowledged write may take over: a
	 * data node holds the slot's writes for the handoff, which the FSM
	 * would skip for a target outside the ISR. */
	if (s->move != 0 && !list_has(s->isr, s->n_isr, s->move)) {
		set_err(errmsg, "%s: move target is not in the isr", "range");
		return NARF_EINVAL;
	}
	*from = (unsigned)f;
	*to = (unsigned)t;
	return 0;
}

static int nodes_from_json(struct narf_map *m, const json_t *arr, char *errmsg)
{
	size_t i;
	json_t *o;

	if (!json_is_array(arr)) {
		set_err(errmsg, "'%s' must be an array", "nodes");
		return NARF_EINVAL;
	}
	m->nodes = calloc(json_array_size(arr) + 1, sizeof(*m->nodes));
	if (m->nodes == NULL)
		return NARF_ENOMEM;
	m->cap_nodes = (unsigned)json_array_size(arr) + 1;
	json_array_foreach(arr, i, o)
	{
		struct narf_map_node *n = &m->nodes[i];
		const char *boot =
		        json_string_value(json_object_get(o, "boot_id"));
		const json_t *zone = json_object_get(o, "zone");
		uint64_t id;

		if (get_uint(o, "id", 1, UINT32_MAX, false, &id, errmsg) != 0 ||
		    get_addr(o, "addr", n->addr, errmsg) != 0 ||
		    get_uint(o, "isr_dropped", 1, m->epoch, true,
		             &n->isr_dropped, errmsg) == NARF_EINVAL)
			return NARF_EINVAL;
		if (boot == NULL || strlen(boot) >= NARF_BOOT_ID_SIZE ||
		    narf_node_state_parse(
		            json_string_value(json_object_get(o, "state")),
		            &n->state) != 0 ||
		    (i > 0 && id <= m->nodes[i - 1].id) || id >= m->next_node ||
		    (zone != NULL &&
		     (!json_is_string(zone) ||
		      !narf_map_valid_zone(json_string_value(zone))))) {
			set_err(errmsg, "%s entry is invalid", "node");
			return NARF_EINVAL;
		}
		n->id = (uint32_t)id;
		snprintf(n->boot_id, sizeof(n->boot_id), "%s", boot);
		/* A map of an older cluster has no zones: "" */
		if (zone != NULL)
			snprintf(n->zone, sizeof(n->zone), "%s",
			         json_string_value(zone));
		m->n_nodes++;
	}
	return 0;
}

/* Does slot s name only node ids below next_node (or none)? */
static bool ids_issued(const struct narf_map *m, const struct narf_slot *s)
{
	bool ok = s->primary < m->next_node && s->move < m->next_node;

	for (unsigned i = 0; i < s->n_replicas && i < NARF_MAX_REPLICAS; i++)
		ok = ok && s->replicas[i] < m->next_node;
	return ok;
}

static int slots_from_json(struct narf_map *m, const json_t *arr, char *errmsg)
{
	unsigned expect = 0;
	size_t i;
	json_t *r;

	if (!json_is_array(arr)) {
		set_err(errmsg, "'%s' must be an array", "slots");
		return NARF_EINVAL;
	}
	json_array_foreach(arr, i, r)
	{
		struct narf_slot s;
		unsigned from, to;

		if (narf_map_range_from_json(r, &from, &to, &s, errmsg) != 0)
			return NARF_EINVAL;
		/* Epochs the map has not reached yet, as for a node's
		 * isr_dropped: a data node's fence would keep a future slot
		 * epoch as its high-water mark and refuse the streams of the
		 * slot's real primary. */
		if (s.epoch > m->epoch || s.born > m->epoch) {
			set_err(errmsg,
			        "%s: epoch or born above the map's epoch",
			        "range");
			return NARF_EINVAL;
		}
		if (from != expect) {
			set_err(errmsg, "%s ranges must be contiguous",
			        "slots");
			return NARF_EINVAL;
		}
		/* A node id never given out: when a node joins with it,
		 * its derived counts would miss these slots (found by
		 * tests/fuzz/fuzz_map_json.c). */
		if (!ids_issued(m, &s)) {
			set_err(errmsg, "%s: a node id not below next_node",
			        "range");
			return NARF_EINVAL;
		}
		for (unsigned k = from; k <= to; k++)
			m->slots[k] = s;
		expect = to + 1;
	}
	if (expect != NARF_SLOTS) {
		set_err(errmsg, "%s ranges must cover 0..16383", "slots");
		return NARF_EINVAL;
	}
	return 0;
}

int narf_map_from_json(struct narf_map *m, const json_t *obj, char *errmsg)
{
	struct narf_map *tmp;
	uint64_t epoch, next, lost = 0, next_coord = 0;
	int rv = NARF_EINVAL;

	if (errmsg != NULL)
		errmsg[0] = '\0';
	if (!json_is_object(obj)) {
		set_err(errmsg, "%s is not a JSON object", "the map");
		return NARF_EINVAL;
	}
	if (get_uint(obj, "epoch", 0, INT64_MAX, false, &epoch, errmsg) != 0 ||
	    get_uint(obj, "next_node", 1, UINT32_MAX, false, &next, errmsg) !=
	            0 ||
	    get_uint(obj, "lost_slots", 0, INT64_MAX, true, &lost, errmsg) ==
	            NARF_EINVAL ||
	    get_uint(obj, "next_coord", 1, UINT32_MAX + 1ull, true, &next_coord,
	             errmsg) == NARF_EINVAL)
		return NARF_EINVAL;
	tmp = malloc(sizeof(*tmp));
	if (tmp == NULL)
		return NARF_ENOMEM;
	narf_map_init(tmp, NULL);
	tmp->epoch = epoch;
	tmp->next_node = (uint32_t)next;
	tmp->lost_slots = lost;
	if (narf_map_settings_from_json(&tmp->settings,
	                                json_object_get(obj, "settings"),
	                                errmsg) != 0)
		goto out;
	if (json_array_size(json_object_get(obj, "coordinators")) > 0 &&
	    narf_map_coords_from_json(tmp->coords, &tmp->n_coords,
	                              json_object_get(obj, "coordinators"),
	                              errmsg) != 0)
		goto out;
	/* Maps written before next_coord existed: the table's ids are the
	 * only ones known to have been used. */
	tmp->next_coord = narf_map_coords_next(tmp->coords, tmp->n_coords);
	if (next_coord != 0 && next_coord < tmp->next_coord) {
		set_err(errmsg, "field '%s' is not above every coordinator id",
		        "next_coord");
		goto out;
	}
	if (next_coord != 0)
		tmp->next_coord = next_coord;
	rv = nodes_from_json(tmp, json_object_get(obj, "nodes"), errmsg);
	if (rv != 0)
		goto out;
	rv = slots_from_json(tmp, json_object_get(obj, "slots"), errmsg);
	if (rv != 0)
		goto out;
	/* Derived state is never trusted from outside: rebuilt here. */
	narf_map_recount(tmp);
	narf_map_close(m);
	memcpy(m, tmp, sizeof(*m));
	free(tmp);
	return 0;
out:
	narf_map_close(tmp);
	free(tmp);
	return rv;
}

json_t *narf_cmd_node_join(const char *addr, const char *boot_id)
{
	return narf_cmd_node_join_zone(addr, boot_id, NULL);
}

json_t *narf_cmd_node_join_zone(const char *addr,
                                const char *boot_id,
                                const char *zone)
{
	json_t *cmd =
	        json_pack("{s:i,s:s,s:s,s:s}", "v", NARF_MAP_VERSION, "type",
	                  "node_join", "addr", addr, "boot_id", boot_id);

	/* No zone, no field: the entry an older leader wrote. */
	if (cmd != NULL && zone != NULL && zone[0] != '\0' &&
	    json_object_set_new(cmd, "zone", json_string(zone)) != 0) {
		json_decref(cmd);
		return NULL;
	}
	return cmd;
}

json_t *narf_cmd_node_state(uint32_t node, enum narf_node_state st)
{
	return json_pack("{s:i,s:s,s:I,s:s}", "v", NARF_MAP_VERSION, "type",
	                 "node_state", "node", (json_int_t)node, "state",
	                 narf_node_state_name(st));
}

json_t *narf_cmd_leave(uint32_t node, bool if_room)
{
	json_t *cmd = json_pack("{s:i,s:s,s:I}", "v", NARF_MAP_VERSION, "type",
	                        "leave", "node", (json_int_t)node);

	if (cmd != NULL && if_room)
		json_object_set_new(cmd, "if_room", json_true());
	return cmd;
}

json_t *narf_cmd_node_forget(uint32_t node)
{
	return json_pack("{s:i,s:s,s:I}", "v", NARF_MAP_VERSION, "type",
	                 "node_forget", "node", (json_int_t)node);
}

json_t *narf_cmd_assign(uint64_t base_epoch,
                        const struct narf_slot *slots,
                        const bool *take)
{
	return json_pack("{s:i,s:s,s:I,s:o}", "v", NARF_MAP_VERSION, "type",
	                 "assign", "base_epoch", (json_int_t)base_epoch,
	                 "slots", narf_map_slots_to_json(slots, take));
}

json_t *narf_cmd_init(const struct narf_map_coord *coords,
                      unsigned n,
                      const struct narf_map_settings *s)
{
	return json_pack("{s:i,s:s,s:o,s:o}", "v", NARF_MAP_VERSION, "type",
	                 "init", "coords", coords_to_json(coords, n),
	                 "settings", narf_map_settings_to_json(s));
}

json_t *narf_cmd_coords_set(const struct narf_map_coord *coords, unsigned n)
{
	return json_pack("{s:i,s:s,s:o}", "v", NARF_MAP_VERSION, "type",
	                 "coords_set", "coords", coords_to_json(coords, n));
}

int narf_map_slot_ranges(const json_t *arr,
                         const char *field,
                         bool *slots,
                         char *errmsg)
{
	size_t i;
	json_t *r;

	if (errmsg != NULL)
		errmsg[0] = '\0';
	if (!json_is_array(arr) || json_array_size(arr) > NARF_SLOTS) {
		set_err(errmsg, "'%s' must be an array of at most 16384 ranges",
		        field);
		return NARF_EINVAL;
	}
	memset(slots, 0, NARF_SLOTS * sizeof(*slots));
	json_array_foreach(arr, i, r)
	{
		json_t *lo = json_array_get(r, 0), *hi = json_array_get(r, 1);
		json_int_t a = json_integer_value(lo),
		           b = json_integer_value(hi);

		if (!json_is_array(r) || json_array_size(r) != 2 ||
		    !json_is_integer(lo) || !json_is_integer(hi) || a < 0 ||
		    b >= NARF_SLOTS || a > b) {
			set_err(errmsg,
			        "'%s' ranges must be [lo,hi] with 0 <= lo <= "
			        "hi <= 16383",
			        field);
			return NARF_EINVAL;
		}
		for (json_int_t s = a; s <= b; s++)
			slots[s] = true;
	}
	return 0;
}

/* The flagged slots of slots[NARF_SLOTS] as merged [lo,hi] ranges; a new
 * reference, NULL on ENOMEM. */
static json_t *ranges_to_json(const bool *slots)
{
	json_t *ranges = json_array();

	for (unsigned s = 0; ranges != NULL && s < NARF_SLOTS;) {
		unsigned lo = s;

		if (!slots[s]) {
			s++;
			continue;
		}
		while (s < NARF_SLOTS && slots[s])
			s++;
		if (json_array_append_new(ranges, json_pack("[i,i]", (int)lo,
		                                            (int)s - 1)) != 0) {
			json_decref(ranges);
			ranges = NULL;
		}
	}
	return ranges;
}

json_t *narf_cmd_isr(uint32_t primary,
                     uint32_t node,
                     const bool *add,
                     uint64_t since)
{
	json_t *cmd = json_pack("{s:i,s:s,s:I,s:I}", "v", NARF_MAP_VERSION,
	                        "type", "isr", "primary", (json_int_t)primary,
	                        "node", (json_int_t)node);

	if (cmd == NULL)
		return NULL;
	if (json_object_set_new(
	            cmd, add != NULL ? "add" : "drop",
	            add != NULL ? ranges_to_json(add) : json_true()) != 0 ||
	    (add != NULL && since != 0 &&
	     json_object_set_new(cmd, "since",
	                         json_integer((json_int_t)since)) != 0)) {
		json_decref(cmd);
		return NULL;
	}
	return cmd;
}

json_t *narf_cmd_handoff(uint32_t primary, const bool *slots)
{
	return json_pack("{s:i,s:s,s:I,s:o}", "v", NARF_MAP_VERSION, "type",
	                 "handoff", "primary", (json_int_t)primary, "slots",
	                 ranges_to_json(slots));
}
