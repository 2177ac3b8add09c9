/*
 * Unit tests of zones in the cluster map (common/map.h, docs/protocol.md):
 * a node_join entry with and without a zone, the zone in the map's JSON
 * (snapshots, map replies) both ways, maps of older clusters without zones,
 * refused zone names, and the derived count of slots keeping two copies in
 * one zone; and slot node ids a decoded map must have issued. Fixture:
 * map_fixture.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/map.h"
#include "map_fixture.h"

/* Join a node at 127.0.0.1:port in zone (NULL: none) and bring it up. */
static uint32_t join_up(struct narf_map *m, int port, const char *zone)
{
	struct narf_map_result res;
	char addr[32], boot[16];

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	snprintf(boot, sizeof(boot), "b%d", port);
	assert_int_equal(
	        apply_cmd(m, narf_cmd_node_join_zone(addr, boot, zone), &res),
	        0);
	assert_int_equal(
	        apply_cmd(m, narf_cmd_node_state(res.node, NARF_NODE_UP), &res),
	        0);
	return m->nodes[m->n_nodes - 1].id;
}

/* Encode m, decode it into a fresh map; returns the new map. */
static struct narf_map *round_trip(const struct narf_map *m, char **text)
{
	struct narf_map *back = new_map();
	json_t *obj = narf_map_to_json(m);
	char errmsg[NARF_ERRMSG_SIZE] = "";

	assert_non_null(obj);
	*text = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
	assert_int_equal(narf_map_from_json(back, obj, errmsg), 0);
	json_decref(obj);
	return back;
}

/* A zone given at join is in the node's record, in the entry the builder
 * makes, and survives the JSON form; a node without one has "" and no
 * "zone" field, so an older reader sees the map it knows. */
static void test_zone_round_trip(void **state)
{
	struct narf_map *m = new_map(), *back;
	json_t *cmd = narf_cmd_node_join_zone("127.0.0.1:1", "x", "rack-a");
	char *t1, *t2;
	json_t *again;

	(void)state;
	assert_string_equal(json_string_value(json_object_get(cmd, "zone")),
	                    "rack-a");
	json_decref(cmd);
	cmd = narf_cmd_node_join_zone("127.0.0.1:1", "x", "");
	assert_null(json_object_get(cmd, "zone"));
	json_decref(cmd);

	join_up(m, 7201, "rack-a");
	join_up(m, 7202, NULL);
	assert_string_equal(m->nodes[0].zone, "rack-a");
	assert_string_equal(m->nodes[1].zone, "");
	back = round_trip(m, &t1);
	assert_non_null(strstr(t1, "\"zone\":\"rack-a\""));
	assert_int_equal(strstr(strstr(t1, "rack-a") + 1, "\"zone\""), NULL);
	assert_string_equal(back->nodes[0].zone, "rack-a");
	assert_string_equal(back->nodes[1].zone, "");
	again = narf_map_to_json(back);
	t2 = json_dumps(again, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(t1, t2);
	free(t1);
	free(t2);
	json_decref(again);
	free_map(back);
	free_map(m);
}

/* A snapshot and a node_join entry of an older cluster (no zone at all)
 * load, with zone "" for every node. */
static void test_old_map_loads(void **state)
{
	static const char old[] =
	        "{\"epoch\":3,\"next_node\":3,\"nodes\":["
	        "{\"id\":1,\"addr\":\"127.0.0.1:1\",\"boot_id\":\"a\","
	        "\"state\":\"up\"},"
	        "{\"id\":2,\"addr\":\"127.0.0.1:2\",\"boot_id\":\"b\","
	        "\"state\":\"up\"}],"
	        "\"slots\":[{\"from\":0,\"to\":16383,\"primary\":1,"
	        "\"replicas\":[2],\"isr\":[2]}]}";
	struct narf_map *m = new_map();
	struct narf_map_result res;
	json_t *obj = json_loads(old, 0, NULL);
	char errmsg[NARF_ERRMSG_SIZE] = "";

	(void)state;
	assert_int_equal(narf_map_from_json(m, obj, errmsg), 0);
	json_decref(obj);
	assert_string_equal(m->nodes[0].zone, "");
	assert_string_equal(m->nodes[1].zone, "");
	assert_int_equal(m->counts.zone_shared, 0);
	assert_int_equal(apply_text(m,
	                            "{\"v\":1,\"type\":\"node_join\",\"addr\":"
	                            "\"127.0.0.1:3\",\"boot_id\":\"c\"}",
	                            &res),
	                 0);
	assert_string_equal(m->nodes[2].zone, "");
	free_map(m);
}

/* A zone name that is empty, too long, not a string or holds a space is
 * refused by node_join and by the map decoder, which leave the map as it
 * was. */
static void test_zone_rejected(void **state)
{
	static const char *const bad[] = {
	        "\"\"",
	        "\"has space\"",
	        "7",
	        "null",
	        "\"0123456789012345678901234567890123456789012345678901234567"
	        "890123\"",
	};
	struct narf_map *m = new_map();
	char text[512], errmsg[NARF_ERRMSG_SIZE];
	struct narf_map_result res;

	(void)state;
	assert_true(narf_map_valid_zone("z"));
	assert_true(narf_map_valid_zone("eu-west-1a"));
	assert_false(narf_map_valid_zone(""));
	assert_false(narf_map_valid_zone("a\tb"));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *obj;

		snprintf(text, sizeof(text),
		         "{\"v\":1,\"type\":\"node_join\",\"addr\":"
		         "\"127.0.0.1:1\",\"boot_id\":\"x\",\"zone\":%s}",
		         bad[i]);
		assert_int_equal(apply_text(m, text, &res), NARF_EINVAL);
		assert_int_equal(m->n_nodes, 0);
		assert_int_equal(m->epoch, 0);
		snprintf(text, sizeof(text),
		         "{\"epoch\":1,\"next_node\":2,\"nodes\":[{\"id\":1,"
		         "\"addr\":\"127.0.0.1:1\",\"boot_id\":\"x\","
		         "\"state\":\"up\",\"zone\":%s}],\"slots\":[{\"from\":"
		         "0,\"to\":16383,\"primary\":0,\"replicas\":[],"
		         "\"isr\":[]}]}",
		         bad[i]);
		obj = json_loads(text, 0, NULL);
		assert_non_null(obj);
		errmsg[0] = '\0';
		assert_int_equal(narf_map_from_json(m, obj, errmsg),
		                 NARF_EINVAL);
		assert_true(errmsg[0] != '\0');
		assert_int_equal(m->n_nodes, 0);
		json_decref(obj);
	}
	free_map(m);
}

/* zone_shared counts the slots with two copies in one named zone, kept by
 * every slot write and rebuilt by a decode; nodes without a zone never
 * share one. The per-node count sums to it over a zone's nodes. */
static void test_zone_shared_count(void **state)
{
	struct narf_map *m = new_map(), *back;
	struct narf_map_result res;
	struct narf_slot *slots = calloc(NARF_SLOTS, sizeof(*slots));
	uint32_t a1, a2, b1, n1, n2;
	char *text;

	(void)state;
	assert_non_null(slots);
	a1 = join_up(m, 7201, "a");
	a2 = join_up(m, 7202, "a");
	b1 = join_up(m, 7203, "b");
	n1 = join_up(m, 7204, NULL);
	n2 = join_up(m, 7205, NULL);
	/* 100 slots on a1+a2 (shared), 200 on a1+b1, the rest n1+n2. */
	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		slots[s].primary = s < 300 ? a1 : n1;
		slots[s].replicas[0] = s < 100 ? a2 : s < 300 ? b1 : n2;
		slots[s].n_replicas = 1;
	}
	assert_int_equal(
	        apply_cmd(m, narf_cmd_assign(m->epoch, slots, NULL), &res), 0);
	assert_int_equal(m->counts.zone_shared, 100);
	assert_int_equal(narf_map_node_get(m, a1)->zone_shared, 100);
	assert_int_equal(narf_map_node_get(m, a2)->zone_shared, 0);
	back = round_trip(m, &text);
	free(text);
	assert_int_equal(back->counts.zone_shared, 100);
	assert_int_equal(narf_map_node_get(back, a1)->zone_shared, 100);
	free_map(back);
	/* a2 down: its copies go, nothing shares a zone any more. */
	assert_int_equal(
	        apply_cmd(m, narf_cmd_node_state(a2, NARF_NODE_DOWN), &res), 0);
	assert_int_equal(m->counts.zone_shared, 0);
	assert_int_equal(narf_map_node_get(m, a1)->zone_shared, 0);
	free(slots);
	free_map(m);
}

/* A map whose slots name a node id never given out (not below next_node)
 * is refused: once a node joined with that id its derived counts would
 * miss those slots (found by tests/fuzz/fuzz_map_json.c from the zones
 * seed). */
static void test_slot_ids_issued(void **state)
{
	static const char text[] =
	        "{\"epoch\":1,\"next_node\":3,\"nodes\":[],\"slots\":[{"
	        "\"from\":0,\"to\":16383,\"primary\":1,\"replicas\":[3],"
	        "\"isr\":[]}]}";
	struct narf_map *m = new_map();
	json_t *obj = json_loads(text, 0, NULL);
	char errmsg[NARF_ERRMSG_SIZE] = "";

	(void)state;
	assert_int_equal(narf_map_from_json(m, obj, errmsg), NARF_EINVAL);
	assert_non_null(strstr(errmsg, "next_node"));
	json_decref(obj);
	free_map(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_zone_round_trip),
	        cmocka_unit_test(test_old_map_loads),
	        cmocka_unit_test(test_zone_rejected),
	        cmocka_unit_test(test_zone_shared_count),
	        cmocka_unit_test(test_slot_ids_issued),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
