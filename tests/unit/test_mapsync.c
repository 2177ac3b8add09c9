/*
 * Unit tests for datanode/mapsync.h: a data node's twin maps kept current
 * from the map deltas in coordinator replies, without sockets. A
 * "coordinator" here is a map plus the log of the entries that moved its
 * epoch, as compact text (what the coordinator's ring holds); replies are
 * written as text the way api.c writes them and parsed as a node parses
 * them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"
#include "datanode/mapsync.h"

#define MAX_LOG 64

struct coord {
	struct narf_map *map;
	char *log[MAX_LOG]; /* owned: log[e] is the entry of epoch e */
	uint64_t n;         /* epochs logged: 1..n */
};

/* What the node's on_map saw. */
struct seen {
	unsigned calls;
	uint64_t old_epoch, new_epoch;
	bool full; /* dirty was NULL */
	bool any_slot, nodes, settings;
	unsigned n_slots;
};

static void on_map(void *data,
                   const struct narf_map *old,
                   const struct narf_map *map,
                   const struct narf_map_dirty *dirty)
{
	struct seen *s = data;

	s->calls++;
	s->old_epoch = old != NULL ? old->epoch : 0;
	s->new_epoch = map->epoch;
	s->full = dirty == NULL;
	if (dirty != NULL) {
		s->n_slots = dirty->n_slots;
		s->nodes = dirty->nodes;
		s->settings = dirty->settings;
	}
}

static struct coord *coord_new(void)
{
	struct coord *k = calloc(1, sizeof(*k));

	assert_non_null(k);
	k->map = malloc(sizeof(*k->map));
	assert_non_null(k->map);
	narf_map_init(k->map, NULL);
	return k;
}

static void coord_free(struct coord *k)
{
	for (unsigned i = 0; i < MAX_LOG; i++)
		free(k->log[i]);
	narf_map_close(k->map);
	free(k->map);
	free(k);
}

/* Commit cmd (stolen): it must move the epoch; its text is logged. */
static void commit(struct coord *k, json_t *cmd)
{
	struct narf_map_result res;
	char *text;

	assert_non_null(cmd);
	text = json_dumps(cmd, JSON_COMPACT);
	assert_int_equal(narf_map_apply(k->map, cmd, &res), 0);
	assert_true(res.changed);
	json_decref(cmd);
	assert_true(k->map->epoch < MAX_LOG);
	k->log[k->map->epoch] = text;
	k->n = k->map->epoch;
}

static json_t *parse(const char *text)
{
	json_error_t jerr;
	json_t *v = json_loads(text, 0, &jerr);

	if (v == NULL)
		fail_msg("not JSON (%s): %s", jerr.text, text);
	return v;
}

/* The heartbeat reply to a node at epoch have, as api.c writes it:
 * deltas when have is behind (from have + 1), the reply's epoch being
 * `epoch` (the coordinator's unless a test lies). */
static json_t *beat_reply(const struct coord *k, uint64_t have, uint64_t epoch)
{
	struct narf_buf b;
	char head[128];
	json_t *v;
	int n = snprintf(head, sizeof(head),
	                 "{\"ok\":true,\"epoch\":%llu,\"term\":1,"
	                 "\"state\":\"up\"",
	                 (unsigned long long)epoch);

	narf_buf_init(&b);
	assert_int_equal(narf_buf_append(&b, head, (size_t)n), 0);
	if (have < k->n) {
		n = snprintf(head, sizeof(head), ",\"from\":%llu,\"deltas\":[",
		             (unsigned long long)have + 1);
		assert_int_equal(narf_buf_append(&b, head, (size_t)n), 0);
		for (uint64_t e = have + 1; e <= k->n; e++) {
			assert_int_equal(narf_buf_append(&b, k->log[e],
			                                 strlen(k->log[e])),
			                 0);
			assert_int_equal(
			        narf_buf_append(&b, e < k->n ? "," : "]", 1),
			        0);
		}
	}
	assert_int_equal(narf_buf_append(&b, "}", 2), 0); /* with the NUL */
	v = parse(b.data);
	narf_buf_close(&b);
	return v;
}

/* The coordinator's map as the "map" of an op map reply. */
static void install_full(struct narf_mapsync *s, const struct coord *k)
{
	json_t *obj = narf_map_to_json(k->map);

	assert_int_equal(narf_mapsync_install(s, obj, NULL), 0);
	json_decref(obj);
}

/* The map's JSON form, compact (freed by the caller). */
static char *text_of(const struct narf_map *m)
{
	json_t *obj = narf_map_to_json(m);
	char *t = json_dumps(obj, JSON_COMPACT);

	json_decref(obj);
	assert_non_null(t);
	return t;
}

static void assert_same(const struct narf_map *a, const struct narf_map *b)
{
	char *ta = text_of(a), *tb = text_of(b);

	assert_string_equal(ta, tb);
	free(ta);
	free(tb);
}

/* The twins are equal (between calls) and the node's map is k's. */
static void assert_synced(const struct narf_mapsync *s, const struct coord *k)
{
	assert_same(s->cur, k->map);
	if (s->shadow != NULL)
		assert_same(s->shadow, s->cur);
}

/* A cluster of three nodes up, one coordinator; slots 0-8191 led by 1
 * with 2 as replica, the rest by 2 with 3 (neither replica in sync). */
static void build_cluster(struct coord *k)
{
	struct narf_map_coord co = {1, "127.0.0.1:7101", "127.0.0.1:7001"};
	struct narf_slot *slots = calloc(NARF_SLOTS, sizeof(*slots));
	struct narf_map_settings set;
	char addr[32];

	assert_non_null(slots);
	narf_map_settings_default(&set);
	commit(k, narf_cmd_init(&co, 1, &set));
	for (unsigned i = 1; i <= 3; i++) {
		char boot[8];

		snprintf(addr, sizeof(addr), "127.0.0.1:%u", 7200 + i);
		snprintf(boot, sizeof(boot), "b%u", i);
		commit(k, narf_cmd_node_join(addr, boot));
		commit(k, narf_cmd_node_state(i, NARF_NODE_UP));
	}
	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		slots[s].primary = s < 8192 ? 1 : 2;
		slots[s].n_replicas = 1;
		slots[s].replicas[0] = s < 8192 ? 2 : 3;
	}
	commit(k, narf_cmd_assign(k->map->epoch, slots, NULL));
	free(slots);
}

/* Range flags [lo, hi] (caller frees). */
static bool *range(unsigned lo, unsigned hi)
{
	bool *f = calloc(NARF_SLOTS, sizeof(*f));

	assert_non_null(f);
	for (unsigned s = lo; s <= hi; s++)
		f[s] = true;
	return f;
}

/* ISR adds, a settings change and a failover after the cluster is built:
 * 4 entries of every kind a node must run. */
static void more_history(struct coord *k)
{
	bool *a = range(0, 8191), *b = range(8192, 16383);

	commit(k, narf_cmd_isr(1, 2, a, 0));
	commit(k, narf_cmd_isr(2, 3, b, 0));
	commit(k, parse("{\"v\":1,\"type\":\"settings\",\"moves\":7}"));
	commit(k, narf_cmd_node_state(1, NARF_NODE_DOWN));
	free(a);
	free(b);
}

/* A node that installed the map once and then applies the deltas of
 * every later beat ends byte-identical (narf_map_to_json) to a node that
 * installed the final map whole, and to the coordinator's; on_map saw
 * the old and new epochs and a dirty set, the lease condition (our map
 * at the reply's epoch) holds in the same round trip. */
static void test_deltas_equal_full(void **state)
{
	struct coord *k = coord_new();
	struct narf_mapsync a, b;
	struct seen seen = {0};
	uint64_t base;
	json_t *r;

	(void)state;
	build_cluster(k);
	narf_mapsync_init(&a);
	narf_mapsync_init(&b);
	a.on_map = on_map;
	a.cb_data = &seen;
	install_full(&a, k);
	assert_int_equal(seen.calls, 1);
	assert_true(seen.full);
	assert_int_equal(seen.old_epoch, 0);
	base = k->n;
	more_history(k);

	r = beat_reply(k, base, k->n);
	assert_int_equal(narf_mapsync_reply(&a, r), NARF_MAPSYNC_APPLIED);
	json_decref(r);
	assert_int_equal(narf_mapsync_epoch(&a), k->n); /* renews now */
	assert_int_equal(seen.calls, 2);
	assert_false(seen.full);
	assert_int_equal(seen.old_epoch, base);
	assert_int_equal(seen.new_epoch, k->n);
	assert_int_equal(seen.n_slots, NARF_SLOTS); /* ISRs, failover */
	assert_true(seen.nodes && seen.settings);
	assert_int_equal(a.deltas_applied, 4);
	assert_int_equal(a.full_installs, 1);
	assert_synced(&a, k);

	install_full(&b, k);
	assert_same(a.cur, b.cur);
	/* current: nothing happens */
	r = beat_reply(k, k->n, k->n);
	assert_int_equal(narf_mapsync_reply(&a, r), NARF_MAPSYNC_SAME);
	json_decref(r);
	assert_int_equal(seen.calls, 2);
	narf_mapsync_close(&a);
	narf_mapsync_close(&b);
	coord_free(k);
}

/* One entry at a time, every epoch of the history: the twins stay equal
 * to the coordinator's map after each. */
static void test_one_by_one(void **state)
{
	struct coord *k = coord_new();
	struct narf_mapsync a;
	uint64_t e;

	(void)state;
	build_cluster(k);
	narf_mapsync_init(&a);
	install_full(&a, k);
	e = k->n;
	more_history(k);
	{
		/* replay: a coordinator that had only reached epoch x */
		uint64_t last = k->n;

		for (uint64_t x = e + 1; x <= last; x++) {
			json_t *r;

			k->n = x;
			r = beat_reply(k, x - 1, x);
			assert_int_equal(narf_mapsync_reply(&a, r),
			                 NARF_MAPSYNC_APPLIED);
			json_decref(r);
			assert_int_equal(narf_mapsync_epoch(&a), x);
		}
		k->n = last;
	}
	assert_synced(&a, k);
	narf_mapsync_close(&a);
	coord_free(k);
}

/* Replies that cannot continue our map are discarded whole (on_map not
 * called, both twins unchanged, so the lease cannot renew on them) and
 * ask for the whole map: from not our epoch + 1, an entry that changes
 * nothing, one that is rejected, a batch that does not land on the
 * reply's epoch. A good batch afterwards still applies, and so does one
 * that starts before our epoch + 1 (the entries we hold skipped). */
static void test_discards(void **state)
{
	struct coord *k = coord_new();
	struct seen seen = {0};
	struct narf_mapsync a;
	char *before;
	uint64_t base;
	json_t *r;

	(void)state;
	build_cluster(k);
	narf_mapsync_init(&a);
	a.on_map = on_map;
	a.cb_data = &seen;
	install_full(&a, k);
	base = k->n;
	before = text_of(a.cur);
	more_history(k);

	/* from one too far */
	r = beat_reply(k, base + 1, k->n);
	assert_int_equal(narf_mapsync_reply(&a, r), NARF_MAPSYNC_FETCH_FULL);
	json_decref(r);
	/* landing short of the reply's epoch */
	r = beat_reply(k, base, k->n + 1);
	assert_int_equal(narf_mapsync_reply(&a, r), NARF_MAPSYNC_FETCH_FULL);
	json_decref(r);
	/* an entry that changes nothing (the same ISR add twice) */
	r = parse("{\"ok\":true,\"epoch\":999,\"from\":0,\"deltas\":[]}");
	json_object_set_new(r, "from", json_integer((json_int_t)base + 1));
	json_object_set_new(r, "epoch", json_integer((json_int_t)base + 2));
	json_array_append_new(json_object_get(r, "deltas"),
	                      parse(k->log[base + 1]));
	json_array_append_new(json_object_get(r, "deltas"),
	                      parse(k->log[base + 1]));
	assert_int_equal(narf_mapsync_reply(&a, r), NARF_MAPSYNC_FETCH_FULL);
	json_decref(r);
	/* a rejected entry */
	r =
	        parse("{\"ok\":true,\"epoch\":999,\"from\":0,\"deltas\":["
	              "{\"v\":1,\"type\":\"no_such_entry\"}]}");
	json_object_set_new(r, "from", json_integer((json_int_t)base + 1));
	json_object_set_new(r, "epoch", json_integer((json_int_t)base + 1));
	assert_int_equal(narf_mapsync_reply(&a, r), NARF_MAPSYNC_FETCH_FULL);
	json_decref(r);
	assert_int_equal(a.discards, 4);
	assert_int_equal(seen.calls, 1); /* the install only */
	{
		char *now = text_of(a.cur), *sh = text_of(a.shadow);

		assert_string_equal(now, before);
		assert_string_equal(sh, before);
		free(now);
		free(sh);
	}
	assert_int_equal(narf_mapsync_epoch(&a), base);
	r = beat_reply(k, base, k->n);
	assert_int_equal(narf_mapsync_reply(&a, r), NARF_MAPSYNC_APPLIED);
	json_decref(r);
	assert_synced(&a, k);
	/* a batch from before our epoch (a request stamped before our map
	 * moved): the entries we hold are skipped, the rest applied */
	base = k->n;
	commit(k, parse("{\"v\":1,\"type\":\"settings\",\"moves\":9}"));
	commit(k, parse("{\"v\":1,\"type\":\"settings\",\"moves\":11}"));
	assert_true(base >= 2);
	r = beat_reply(k, base - 2, k->n);
	assert_int_equal(narf_mapsync_reply(&a, r), NARF_MAPSYNC_APPLIED);
	json_decref(r);
	assert_synced(&a, k);
	assert_int_equal(a.discards, 4);
	free(before);
	narf_mapsync_close(&a);
	coord_free(k);
}

/* What to fetch: "full" from the coordinator, a newer epoch without
 * deltas (an older coordinator), or no map yet: op map; no newer epoch:
 * nothing. A full map no newer than ours is refused. */
static void test_fetch_and_stale(void **state)
{
	struct coord *k = coord_new();
	struct narf_mapsync a;
	json_t *r, *obj;

	(void)state;
	build_cluster(k);
	narf_mapsync_init(&a);
	r = beat_reply(k, 0, k->n);
	assert_int_equal(narf_mapsync_reply(&a, r), NARF_MAPSYNC_FETCH);
	json_decref(r);
	install_full(&a, k);
	r =
	        parse("{\"ok\":true,\"epoch\":99,\"term\":1,\"state\":\"up\","
	              "\"full\":true}");
	assert_int_equal(narf_mapsync_reply(&a, r), NARF_MAPSYNC_FETCH);
	json_decref(r);
	r = parse("{\"ok\":true,\"epoch\":99,\"term\":1,\"state\":\"up\"}");
	assert_int_equal(narf_mapsync_reply(&a, r), NARF_MAPSYNC_FETCH);
	json_decref(r);
	r = parse("{\"ok\":true,\"epoch\":1,\"term\":1,\"state\":\"up\"}");
	assert_int_equal(narf_mapsync_reply(&a, r), NARF_MAPSYNC_SAME);
	json_decref(r);
	r = parse("{\"ok\":true,\"current\":true,\"epoch\":1}");
	assert_int_equal(narf_mapsync_reply(&a, r), NARF_MAPSYNC_SAME);
	json_decref(r);
	obj = narf_map_to_json(k->map);
	assert_int_equal(narf_mapsync_install(&a, obj, NULL), NARF_ESTALE);
	json_decref(obj);
	assert_int_equal(a.full_installs, 1);
	assert_synced(&a, k);
	narf_mapsync_close(&a);
	coord_free(k);
}

/* A reply at k's epoch that says "digest": hex (the right one when hex
 * is NULL), with the deltas since have. */
static json_t *digest_reply(const struct coord *k,
                            uint64_t have,
                            const char *hex)
{
	json_t *r = beat_reply(k, have, k->n);
	char right[17];

	snprintf(right, sizeof(right), "%016llx",
	         (unsigned long long)narf_map_digest(k->map));
	json_object_set_new(r, "digest", json_string(hex ? hex : right));
	return r;
}

/* The digest is checked whenever the epochs match, also right after
 * deltas: equal, nothing happens; different, counted once per epoch and
 * the whole map asked for, which may then replace ours at the same epoch
 * (once); a reply without a digest (an older coordinator) is not
 * checked. */
static void test_digest(void **state)
{
	struct coord *k = coord_new();
	struct seen seen = {0};
	struct narf_mapsync a;
	uint64_t base;
	json_t *r, *obj;

	(void)state;
	build_cluster(k);
	narf_mapsync_init(&a);
	a.on_map = on_map;
	a.cb_data = &seen;
	install_full(&a, k);
	base = k->n;
	r = digest_reply(k, k->n, NULL);
	assert_int_equal(narf_mapsync_reply(&a, r), NARF_MAPSYNC_SAME);
	json_decref(r);
	r = digest_reply(k, k->n, "0123456789abcdef");
	assert_int_equal(narf_mapsync_reply(&a, r), NARF_MAPSYNC_FETCH_FULL);
	assert_true(a.repair);
	/* until the whole map is in, each beat asks again (a fetch lost to
	 * a hop must not leave a map known to differ in place) */
	assert_int_equal(narf_mapsync_reply(&a, r), NARF_MAPSYNC_FETCH_FULL);
	assert_int_equal(a.digest_mismatches, 1);
	/* the repair: the whole map at our own epoch, once */
	obj = narf_map_to_json(k->map);
	assert_int_equal(narf_mapsync_install(&a, obj, NULL), 0);
	assert_false(a.repair);
	assert_int_equal(narf_mapsync_install(&a, obj, NULL), NARF_ESTALE);
	json_decref(obj);
	/* the coordinator's digest still differs (its bug, say): counted
	 * once per epoch, no fetch at every beat */
	assert_int_equal(narf_mapsync_reply(&a, r), NARF_MAPSYNC_SAME);
	json_decref(r);
	assert_int_equal(a.digest_mismatches, 1);
	assert_int_equal(seen.calls, 2);
	assert_true(seen.full);
	/* after deltas */
	more_history(k);
	r = digest_reply(k, base, NULL);
	assert_int_equal(narf_mapsync_reply(&a, r), NARF_MAPSYNC_APPLIED);
	json_decref(r);
	assert_int_equal(a.digest_mismatches, 1);
	assert_synced(&a, k);
	commit(k, narf_cmd_node_state(1, NARF_NODE_UP));
	r = digest_reply(k, k->n - 1, "fedcba9876543210");
	assert_int_equal(narf_mapsync_reply(&a, r), NARF_MAPSYNC_FETCH_FULL);
	json_decref(r);
	assert_int_equal(a.digest_mismatches, 2);
	assert_int_equal(narf_mapsync_epoch(&a), k->n); /* applied, though */
	r = beat_reply(k, k->n, k->n); /* no digest: nothing to compare */
	assert_int_equal(narf_mapsync_reply(&a, r), NARF_MAPSYNC_SAME);
	json_decref(r);
	narf_mapsync_close(&a);
	coord_free(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_deltas_equal_full),
	        cmocka_unit_test(test_one_by_one),
	        cmocka_unit_test(test_discards),
	        cmocka_unit_test(test_fetch_and_stale),
	        cmocka_unit_test(test_digest),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
