/*
 * Unit tests of the cluster map's settings and of what the map does to the
 * slots of a lost node (common/map.h): promotion of an in-sync replica,
 * a new lineage (born) when none is left, slots held under on_lost wait,
 * the settings entry's ranges, and narf_map_settings_check()'s min_isr,
 * on_lost and timing rules (narf_timing_check, reply timeout, lease).
 * The other commands are test_map.c's. Fixture: map_fixture.c.
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

/* A down primary is replaced by an ISR replica with a new slot epoch; with
 * no live ISR member the slot starts a new lineage, unassigned and with no
 * copies (a replica outside the ISR may miss acknowledged writes, so it is
 * never promoted), and is counted lost; an assign keeps the lineage. */
static void test_down_promotion(void **state)
{
	struct narf_map *m = new_map();
	struct narf_map_result res;
	uint32_t a = add_up_node(m, 7201), b = add_up_node(m, 7202),
	         c = add_up_node(m, 7203);
	struct narf_slot *slots = calloc(NARF_SLOTS, sizeof(*slots));

	for (unsigned s = 0; s < NARF_SLOTS; s++)
		slots[s].primary = a;
	/* slot 0: ISR replica c after non-ISR b; slot 1: replica b not in
	 * ISR; slot 2: no replica. */
	slots[0].n_replicas = 2;
	slots[0].replicas[0] = b;
	slots[0].replicas[1] = c;
	slots[0].n_isr = 1;
	slots[0].isr[0] = c;
	slots[1].n_replicas = 1;
	slots[1].replicas[0] = b;
	m->settings.replication = 3;
	assert_int_equal(
	        apply_cmd(m, narf_cmd_assign(m->epoch, slots, NULL), &res), 0);
	free(slots);
	assert_int_equal(
	        apply_cmd(m, narf_cmd_node_state(a, NARF_NODE_DOWN), &res), 0);
	assert_int_equal(m->slots[0].primary, c);
	assert_int_equal(m->slots[0].n_replicas, 1);
	assert_int_equal(m->slots[0].replicas[0], b);
	assert_int_equal(m->slots[0].n_isr, 0);
	assert_int_equal(m->slots[0].epoch, m->epoch);
	assert_int_equal(m->slots[0].born, 0);
	assert_int_equal(m->slots[1].primary, 0);
	assert_int_equal(m->slots[1].n_replicas, 0);
	assert_int_equal(m->slots[1].n_isr, 0);
	assert_int_equal(m->slots[1].born, m->epoch);
	assert_int_equal(m->slots[2].primary, 0);
	assert_int_equal(m->slots[2].born, m->epoch);
	assert_int_equal(m->lost_slots, NARF_SLOTS - 1);

	/* The planner's empty primary for slot 1 keeps the lineage, whatever
	 * born the assign carries; the map's JSON carries it too. */
	{
		uint64_t born = m->slots[1].born;
		struct narf_slot *t = calloc(NARF_SLOTS, sizeof(*t));
		struct narf_map back;
		char errmsg[NARF_ERRMSG_SIZE] = "";
		json_t *j;

		memcpy(t, m->slots, NARF_SLOTS * sizeof(*t));
		t[1].primary = b;
		t[1].born = 0;
		assert_int_equal(
		        apply_cmd(m, narf_cmd_assign(m->epoch, t, NULL), &res),
		        0);
		free(t);
		assert_int_equal(m->slots[1].primary, b);
		assert_int_equal(m->slots[1].born, born);
		j = narf_map_to_json(m);
		narf_map_init(&back, NULL);
		assert_int_equal(narf_map_from_json(&back, j, errmsg), 0);
		assert_int_equal(back.slots[1].born, born);
		assert_int_equal(back.slots[0].born, 0);
		narf_map_close(&back);
		json_decref(j);
	}
	free_map(m);
}

/* With on_lost wait, a slot whose primary goes down with no live ISR
 * member is held (not lost, not reassigned, its epoch kept) until the
 * primary is up again; an in-sync replica is still promoted when there is
 * one; removing the held primary loses the slot after all. */
static void test_on_lost_wait(void **state)
{
	struct narf_map *m = new_map();
	struct narf_map_result res;
	uint32_t a = add_up_node(m, 7201), b = add_up_node(m, 7202),
	         c = add_up_node(m, 7203);
	struct narf_slot *slots = calloc(NARF_SLOTS, sizeof(*slots));
	uint64_t epoch;

	m->settings.on_lost = NARF_LOST_WAIT;
	m->settings.replication = 3;
	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		slots[s].primary = c;
		slots[s].n_replicas = slots[s].n_isr = 1;
		slots[s].replicas[0] = slots[s].isr[0] = a;
	}
	/* slot 0: a leads, b in sync, c a copy outside the ISR */
	slots[0].primary = a;
	slots[0].n_replicas = 2;
	slots[0].replicas[0] = b;
	slots[0].replicas[1] = c;
	slots[0].isr[0] = b;
	assert_int_equal(
	        apply_cmd(m, narf_cmd_assign(m->epoch, slots, NULL), &res), 0);
	/* a down: b is in sync and up, so it takes slot 0 as usual. */
	assert_int_equal(
	        apply_cmd(m, narf_cmd_node_state(a, NARF_NODE_DOWN), &res), 0);
	assert_int_equal(m->slots[0].primary, b);
	assert_false(narf_slot_held(m, 0));
	/* b down: slot 0 has no live in-sync copy (c is outside the ISR):
	 * held on b, c dropped, nothing lost. */
	epoch = m->slots[0].epoch;
	assert_int_equal(
	        apply_cmd(m, narf_cmd_node_state(b, NARF_NODE_DOWN), &res), 0);
	assert_int_equal(m->slots[0].primary, b);
	assert_int_equal(m->slots[0].n_replicas, 0);
	assert_int_equal(m->slots[0].epoch, epoch);
	assert_true(narf_slot_held(m, 0));
	assert_false(narf_slot_held(m, 1));
	assert_int_equal(m->lost_slots, 0);
	/* An assign cannot take the held slot away. */
	memcpy(slots, m->slots, NARF_SLOTS * sizeof(*slots));
	slots[0].primary = c;
	slots[0].n_replicas = slots[0].n_isr = 0;
	assert_int_equal(
	        apply_cmd(m, narf_cmd_assign(m->epoch, slots, NULL), &res), 0);
	assert_int_equal(m->slots[0].primary, b);
	/* b back (the same incarnation): it serves slot 0 again. */
	assert_int_equal(
	        apply_cmd(m, narf_cmd_node_state(b, NARF_NODE_UP), &res), 0);
	assert_int_equal(m->slots[0].primary, b);
	assert_false(narf_slot_held(m, 0));
	/* Held again, then b is removed: lost after all, empty. */
	assert_int_equal(
	        apply_cmd(m, narf_cmd_node_state(b, NARF_NODE_DOWN), &res), 0);
	assert_true(narf_slot_held(m, 0));
	assert_int_equal(
	        apply_cmd(m, narf_cmd_node_state(b, NARF_NODE_REMOVED), &res),
	        0);
	assert_int_equal(m->slots[0].primary, 0);
	assert_int_equal(m->slots[0].born, m->epoch);
	assert_int_equal(m->lost_slots, 1);
	free(slots);
	free_map(m);
}

/* min_isr is read, shown and kept within 1..replication; the node timeout
 * must be at least twice the election timeout and four heartbeats. */
static void test_min_isr_and_timing(void **state)
{
	struct narf_map_settings cur, next;
	char errmsg[NARF_ERRMSG_SIZE] = "";
	json_t *req;

	narf_map_settings_default(&cur);
	assert_int_equal(cur.min_isr, 1);
	req = json_pack("{s:i}", "min_isr", 2);
	assert_int_equal(narf_map_settings_check(&cur, req, &next, errmsg), 0);
	assert_int_equal(next.min_isr, 2);
	json_decref(req);
	req = json_pack("{s:i}", "min_isr", 3); /* above replication 2 */
	assert_int_equal(narf_map_settings_check(&cur, req, &next, errmsg),
	                 NARF_EINVAL);
	assert_non_null(strstr(errmsg, "min_isr"));
	json_decref(req);
	req = json_pack("{s:i,s:i}", "min_isr", 2, "replication", 1);
	assert_int_equal(narf_map_settings_check(&cur, req, &next, errmsg),
	                 NARF_EINVAL);
	json_decref(req);
	req = json_pack("{s:i}", "min_isr", 0);
	assert_int_equal(narf_map_settings_check(&cur, req, &next, errmsg),
	                 NARF_EINVAL);
	json_decref(req);
	req = json_pack("{s:s}", "min_isr", "2");
	assert_int_equal(narf_map_settings_check(&cur, req, &next, errmsg),
	                 NARF_EINVAL);
	json_decref(req);
	req = narf_map_settings_to_json(&cur);
	assert_int_equal(json_integer_value(json_object_get(req, "min_isr")),
	                 1);
	assert_string_equal(json_string_value(json_object_get(req, "on_lost")),
	                    "empty");
	json_decref(req);
	req = json_pack("{s:s}", "on_lost", "wait");
	assert_int_equal(narf_map_settings_check(&cur, req, &next, errmsg), 0);
	assert_int_equal(next.on_lost, NARF_LOST_WAIT);
	json_decref(req);
	req = json_pack("{s:s}", "on_lost", "maybe");
	assert_int_equal(narf_map_settings_check(&cur, req, &next, errmsg),
	                 NARF_EINVAL);
	assert_non_null(strstr(errmsg, "on_lost"));
	json_decref(req);
	req = json_pack("{s:i}", "on_lost", 1);
	assert_int_equal(narf_map_settings_check(&cur, req, &next, errmsg),
	                 NARF_EINVAL);
	json_decref(req);

	assert_int_equal(narf_timing_check(600, 300, errmsg), 0);
	assert_int_equal(narf_timing_check(599, 300, errmsg), NARF_EINVAL);
	assert_non_null(strstr(errmsg, "election"));
	assert_int_equal(narf_timing_check(399, 100, errmsg), NARF_EINVAL);
	assert_int_equal(narf_timing_check(400, 200, errmsg), 0);
	assert_int_equal(narf_reply_timeout_ms(600), 300);
	assert_true(narf_lease_ms(600) < 600);
	assert_true(narf_lease_ms(100) >= 50);
}

/* Settings change within their ranges and reject everything else. */
static void test_settings(void **state)
{
	struct narf_map *m = new_map();
	struct narf_map_result res;

	assert_int_equal(apply_text(m,
	                            "{\"v\":1,\"type\":\"settings\","
	                            "\"replication\":3,\"ack\":\"primary\"}",
	                            &res),
	                 0);
	assert_int_equal(m->settings.replication, 3);
	assert_int_equal(m->settings.ack, NARF_ACK_PRIMARY);
	assert_int_equal(m->epoch, 1);
	assert_int_equal(apply_text(m,
	                            "{\"v\":1,\"type\":\"settings\","
	                            "\"replication\":6}",
	                            &res),
	                 NARF_EINVAL);
	assert_int_equal(apply_text(m,
	                            "{\"v\":1,\"type\":\"settings\","
	                            "\"node_timeout_ms\":99}",
	                            &res),
	                 NARF_EINVAL);
	assert_int_equal(apply_text(m,
	                            "{\"v\":1,\"type\":\"settings\","
	                            "\"ack\":\"some\"}",
	                            &res),
	                 NARF_EINVAL);
	assert_int_equal(apply_text(m,
	                            "{\"v\":1,\"type\":\"settings\","
	                            "\"replication\":\"2\"}",
	                            &res),
	                 NARF_EINVAL);
	assert_int_equal(m->settings.replication, 3);
	assert_int_equal(m->epoch, 1);
	free_map(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_down_promotion),
	        cmocka_unit_test(test_min_isr_and_timing),
	        cmocka_unit_test(test_on_lost_wait),
	        cmocka_unit_test(test_settings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
