/*
 * Unit tests of the cluster map model (common/map.h): every command applied
 * and rejected (joins, node states, leaves, node_forget, assign, isr,
 * handoff, init and coordinators) and the JSON snapshot round trip. Settings
 * and what a lost node does to its slots (promotion, lineage, held slots,
 * min_isr, on_lost, timing rules) are test_map_safety.c's. Fixture:
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

/* Give every slot primary p with ISR replicas r1 (and r2 when non-zero). */
static void assign_all(struct narf_map *m, uint32_t p, uint32_t r1, uint32_t r2)
{
	struct narf_map_result res;
	struct narf_slot *slots = calloc(NARF_SLOTS, sizeof(*slots));

	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		slots[s].primary = p;
		slots[s].n_replicas = slots[s].n_isr = r2 ? 2 : (r1 ? 1 : 0);
		slots[s].replicas[0] = slots[s].isr[0] = r1;
		slots[s].replicas[1] = slots[s].isr[1] = r2;
	}
	assert_int_equal(
	        apply_cmd(m, narf_cmd_assign(m->epoch, slots, NULL), &res), 0);
	free(slots);
}

/* Ids are assigned in order and never reused; a retried join is a no-op. */
static void test_join_ids(void **state)
{
	struct narf_map *m = new_map();
	struct narf_map_result res;
	uint64_t epoch;

	assert_int_equal(
	        apply_cmd(m, narf_cmd_node_join("127.0.0.1:7201", "a"), &res),
	        0);
	assert_int_equal(res.node, 1);
	assert_true(res.changed);
	assert_int_equal(m->epoch, 1);
	assert_int_equal(m->nodes[0].state, NARF_NODE_JOINING);
	assert_int_equal(
	        apply_cmd(m, narf_cmd_node_join("127.0.0.1:7202", "b"), &res),
	        0);
	assert_int_equal(res.node, 2);
	epoch = m->epoch;
	assert_int_equal(
	        apply_cmd(m, narf_cmd_node_join("127.0.0.1:7201", "a"), &res),
	        0);
	assert_int_equal(res.node, 1);
	assert_false(res.changed);
	assert_int_equal(m->epoch, epoch);
	free_map(m);
}

/* A rejoin with a new boot id is a new incarnation: new id, old one down,
 * and the old one's primaries fail over to its in-sync replica. */
static void test_join_new_incarnation(void **state)
{
	struct narf_map *m = new_map();
	struct narf_map_result res;
	uint32_t a = add_up_node(m, 7201), b = add_up_node(m, 7202);

	assign_all(m, a, b, 0);
	assert_int_equal(
	        apply_cmd(m,
	                  narf_cmd_node_join("127.0.0.1:7201", "second-life"),
	                  &res),
	        0);
	assert_int_equal(res.node, 3);
	assert_int_equal(narf_map_node_get(m, a)->state, NARF_NODE_DOWN);
	assert_int_equal(m->slots[0].primary, b);
	assert_int_equal(m->slots[0].n_replicas, 0);
	assert_int_equal(m->slots[0].epoch, m->epoch);
	assert_int_equal(m->lost_slots, 0);
	free_map(m);
}

/* A retried join of a newer incarnation returns its id (not a new one), and
 * a third incarnation marks every earlier live one down. */
static void test_rejoin_retries(void **state)
{
	struct narf_map *m = new_map();
	struct narf_map_result res;

	assert_int_equal(
	        apply_cmd(m, narf_cmd_node_join("127.0.0.1:7201", "a"), &res),
	        0);
	assert_int_equal(
	        apply_cmd(m, narf_cmd_node_join("127.0.0.1:7201", "b"), &res),
	        0);
	assert_int_equal(res.node, 2);
	assert_int_equal(
	        apply_cmd(m, narf_cmd_node_join("127.0.0.1:7201", "b"), &res),
	        0);
	assert_int_equal(res.node, 2);
	assert_false(res.changed);
	assert_int_equal(
	        apply_cmd(m, narf_cmd_node_join("127.0.0.1:7201", "c"), &res),
	        0);
	assert_int_equal(res.node, 3);
	assert_int_equal(narf_map_node_get(m, 1)->state, NARF_NODE_DOWN);
	assert_int_equal(narf_map_node_get(m, 2)->state, NARF_NODE_DOWN);
	assert_int_equal(narf_map_node_get(m, 3)->state, NARF_NODE_JOINING);
	free_map(m);
}

/* A node_state decided for one incarnation is refused once the node id's
 * boot id differs; a leave of a down node removes it at once. */
static void test_state_incarnation_and_leave_down(void **state)
{
	struct narf_map *m = new_map();
	struct narf_map_result res;
	uint32_t a = add_up_node(m, 7201);

	assert_int_equal(apply_text(m,
	                            "{\"v\":1,\"type\":\"node_state\","
	                            "\"node\":1,\"state\":\"down\","
	                            "\"boot_id\":\"other\"}",
	                            &res),
	                 NARF_ESTALE);
	assert_int_equal(narf_map_node_get(m, a)->state, NARF_NODE_UP);
	assert_int_equal(
	        apply_cmd(m, narf_cmd_node_state(a, NARF_NODE_DOWN), &res), 0);
	assert_int_equal(apply_cmd(m, narf_cmd_leave(a, false), &res), 0);
	assert_int_equal(narf_map_node_get(m, a)->state, NARF_NODE_REMOVED);
	free_map(m);
}

/* node_forget: refused for a node that is not removed, that still holds a
 * copy or a pending move, or that is unknown; accepted for a removed node
 * holding nothing, which then leaves the map (and its JSON) while its id
 * stays used, the epoch moves and the dirty set says nodes. */
static void test_node_forget(void **state)
{
	struct narf_map *m = new_map(), *back = new_map();
	struct narf_map_result res;
	struct narf_map_dirty d;
	uint32_t a = add_up_node(m, 7201), b = add_up_node(m, 7202);
	uint32_t c = add_up_node(m, 7203);
	char errmsg[NARF_ERRMSG_SIZE];
	uint64_t epoch;
	json_t *j;

	assign_all(m, a, b, c);
	/* Up, then leaving and still holding copies: refused. */
	assert_int_equal(apply_cmd(m, narf_cmd_node_forget(b), &res),
	                 NARF_EINVAL);
	assert_int_equal(apply_cmd(m, narf_cmd_leave(b, false), &res), 0);
	assert_int_equal(apply_cmd(m, narf_cmd_node_forget(b), &res),
	                 NARF_EINVAL);
	assert_non_null(strstr(res.errmsg, "leaving"));
	assert_int_equal(apply_cmd(m, narf_cmd_node_forget(99), &res),
	                 NARF_ENOTFOUND);
	assert_int_equal(apply_text(m,
	                            "{\"v\":1,\"type\":\"node_forget\","
	                            "\"node\":\"2\"}",
	                            &res),
	                 NARF_EINVAL);
	/* Removed (it went down and its copies were dropped): accepted. */
	assert_int_equal(
	        apply_cmd(m, narf_cmd_node_state(b, NARF_NODE_DOWN), &res), 0);
	assert_int_equal(apply_cmd(m, narf_cmd_leave(b, false), &res), 0);
	assert_int_equal(narf_map_node_get(m, b)->state, NARF_NODE_REMOVED);
	assert_false(narf_map_node_holds(narf_map_node_get(m, b)));
	epoch = m->epoch;
	narf_map_dirty_clear(&d);
	j = narf_cmd_node_forget(b);
	assert_int_equal(narf_map_apply_dirty(m, j, &res, &d), 0);
	json_decref(j);
	assert_true(res.changed);
	assert_int_equal(m->epoch, epoch + 1);
	assert_true(d.nodes);
	assert_int_equal(d.n_slots, 0);
	assert_null(narf_map_node_get(m, b));
	assert_non_null(narf_map_node_get(m, a));
	assert_non_null(narf_map_node_get(m, c));
	assert_int_equal(m->n_nodes, 2);
	/* Gone: a second forget is refused, and ids are not reused. */
	assert_int_equal(apply_cmd(m, narf_cmd_node_forget(b), &res),
	                 NARF_ENOTFOUND);
	assert_int_equal(
	        apply_cmd(m, narf_cmd_node_join("127.0.0.1:7202", "new"), &res),
	        0);
	assert_int_equal(res.node, 4);
	/* The JSON has no trace of it, and loads back. */
	j = narf_map_to_json(m);
	assert_int_equal(json_array_size(json_object_get(j, "nodes")), 3);
	assert_int_equal(narf_map_from_json(back, j, errmsg), 0);
	assert_null(narf_map_node_get(back, b));
	json_decref(j);
	free_map(m);
	free_map(back);
}

/* A removed node that still holds slots is refused: on_lost wait keeps a
 * down primary's slots held, and a leave of the down node removes it
 * without taking them away. */
static void test_node_forget_holding(void **state)
{
	struct narf_map *m = new_map();
	struct narf_map_result res;
	uint32_t a = add_up_node(m, 7201);

	add_up_node(m, 7202);
	m->settings.on_lost = NARF_LOST_WAIT;
	assign_all(m, a, 0, 0);
	assert_int_equal(
	        apply_cmd(m, narf_cmd_node_state(a, NARF_NODE_DOWN), &res), 0);
	assert_int_equal(apply_cmd(m, narf_cmd_leave(a, false), &res), 0);
	assert_int_equal(narf_map_node_get(m, a)->state, NARF_NODE_REMOVED);
	assert_int_equal(narf_map_node_get(m, a)->primaries, NARF_SLOTS);
	assert_int_equal(apply_cmd(m, narf_cmd_node_forget(a), &res),
	                 NARF_EINVAL);
	assert_non_null(strstr(res.errmsg, "still holds"));
	assert_non_null(narf_map_node_get(m, a));
	free_map(m);
}

/* Joins with bad fields are rejected and change nothing. */
static void test_join_rejected(void **state)
{
	static const char *const bad[] = {
	        "{\"v\":1,\"type\":\"node_join\",\"boot_id\":\"x\"}",
	        "{\"v\":1,\"type\":\"node_join\",\"addr\":\"nohost\","
	        "\"boot_id\":\"x\"}",
	        "{\"v\":1,\"type\":\"node_join\",\"addr\":\"127.0.0.1:0\","
	        "\"boot_id\":\"x\"}",
	        "{\"v\":1,\"type\":\"node_join\",\"addr\":\"127.0.0.1:1\","
	        "\"boot_id\":\"\"}",
	        "{\"v\":1,\"type\":\"node_join\",\"addr\":\"127.0.0.1:1\","
	        "\"boot_id\":\"has space\"}",
	        "{\"v\":1,\"type\":\"node_join\",\"addr\":\"127.0.0.1:1\","
	        "\"boot_id\":\"0123456789012345678901234567890123456789012345"
	        "678901234567890123456789\"}",
	        "{\"v\":1,\"type\":\"node_join\",\"addr\":7,\"boot_id\":\"x\"}",
	};
	struct narf_map *m = new_map();
	struct narf_map_result res;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(apply_text(m, bad[i], &res), NARF_EINVAL);
		assert_true(res.errmsg[0] != '\0');
	}
	assert_int_equal(m->epoch, 0);
	assert_int_equal(m->n_nodes, 0);
	free_map(m);
}

/* Commands without the right version or type are rejected. */
static void test_bad_envelope(void **state)
{
	struct narf_map *m = new_map();
	struct narf_map_result res;

	assert_int_equal(apply_text(m, "{\"type\":\"leave\",\"node\":1}", &res),
	                 NARF_EINVAL);
	assert_int_equal(
	        apply_text(m, "{\"v\":2,\"type\":\"leave\",\"node\":1}", &res),
	        NARF_EINVAL);
	assert_int_equal(apply_text(m, "{\"v\":1,\"type\":\"explode\"}", &res),
	                 NARF_EUNKNOWNOP);
	assert_int_equal(apply_text(m, "{\"v\":1}", &res), NARF_EUNKNOWNOP);
	assert_int_equal(apply_text(m, "[1]", &res), NARF_EINVAL);
	assert_int_equal(m->epoch, 0);
	free_map(m);
}

/* A leave "if_room" (a node stopping on SIGTERM) goes through only while the
 * other nodes up can hold every slot's copies (replication 2 here). */
static void test_leave_if_room(void **state)
{
	struct narf_map *m = new_map();
	struct narf_map_result res;
	uint32_t a = add_up_node(m, 7201);
	uint32_t b = add_up_node(m, 7202);
	uint32_t c = add_up_node(m, 7203);
	uint64_t epoch;

	(void)c;
	assert_int_equal(m->settings.replication, 2);
	assert_int_equal(apply_cmd(m, narf_cmd_leave(a, true), &res), 0);
	assert_int_equal(narf_map_node_get(m, a)->state, NARF_NODE_LEAVING);
	epoch = m->epoch;
	/* b and c would leave one node up for two copies. */
	assert_int_equal(apply_cmd(m, narf_cmd_leave(b, true), &res),
	                 NARF_ENOROOM);
	assert_int_equal(narf_map_node_get(m, b)->state, NARF_NODE_UP);
	assert_int_equal(m->epoch, epoch);
	assert_non_null(strstr(res.errmsg, "1 other nodes up"));
	/* An operator's leave is not bound by it. */
	assert_int_equal(apply_cmd(m, narf_cmd_leave(b, false), &res), 0);
	assert_int_equal(narf_map_node_get(m, b)->state, NARF_NODE_LEAVING);
	/* A leave already under way is no error. */
	assert_int_equal(apply_cmd(m, narf_cmd_leave(a, true), &res), 0);
	free_map(m);
}

/* node_state follows the allowed transitions and knows its nodes. */
static void test_node_state(void **state)
{
	struct narf_map *m = new_map();
	struct narf_map_result res;
	uint32_t a = add_up_node(m, 7201);
	uint64_t epoch = m->epoch;

	assert_int_equal(
	        apply_cmd(m, narf_cmd_node_state(a, NARF_NODE_UP), &res), 0);
	assert_false(res.changed);
	assert_int_equal(m->epoch, epoch);
	assert_int_equal(
	        apply_cmd(m, narf_cmd_node_state(99, NARF_NODE_UP), &res),
	        NARF_ENOTFOUND);
	assert_int_equal(apply_text(m,
	                            "{\"v\":1,\"type\":\"node_state\","
	                            "\"node\":1,\"state\":\"sleepy\"}",
	                            &res),
	                 NARF_EINVAL);
	assert_int_equal(apply_text(m,
	                            "{\"v\":1,\"type\":\"node_state\","
	                            "\"node\":-1,\"state\":\"up\"}",
	                            &res),
	                 NARF_EINVAL);
	/* up -> removed must go through leaving or down. */
	assert_int_equal(
	        apply_cmd(m, narf_cmd_node_state(a, NARF_NODE_REMOVED), &res),
	        NARF_EINVAL);
	assert_int_equal(
	        apply_cmd(m, narf_cmd_node_state(a, NARF_NODE_DOWN), &res), 0);
	assert_int_equal(
	        apply_cmd(m, narf_cmd_node_state(a, NARF_NODE_UP), &res), 0);
	assert_int_equal(apply_cmd(m, narf_cmd_leave(a, false), &res), 0);
	assert_int_equal(narf_map_node_get(m, a)->state, NARF_NODE_LEAVING);
	assert_int_equal(
	        apply_cmd(m, narf_cmd_node_state(a, NARF_NODE_REMOVED), &res),
	        0);
	assert_int_equal(
	        apply_cmd(m, narf_cmd_node_state(a, NARF_NODE_UP), &res),
	        NARF_EINVAL);
	assert_int_equal(apply_cmd(m, narf_cmd_leave(a, false), &res),
	                 NARF_ENOTFOUND);
	assert_int_equal(apply_cmd(m, narf_cmd_leave(42, false), &res),
	                 NARF_ENOTFOUND);
	free_map(m);
}

/* An assign planned against an older epoch is refused and changes nothing. */
static void test_assign_stale(void **state)
{
	struct narf_map *m = new_map();
	struct narf_map_result res;
	uint32_t a = add_up_node(m, 7201);
	struct narf_slot *slots = calloc(NARF_SLOTS, sizeof(*slots));
	uint64_t epoch = m->epoch;

	slots[0].primary = a;
	assert_int_equal(
	        apply_cmd(m, narf_cmd_assign(epoch - 1, slots, NULL), &res),
	        NARF_ESTALE);
	assert_int_equal(m->epoch, epoch);
	assert_int_equal(m->slots[0].primary, 0);
	free(slots);
	free_map(m);
}

/* Assign rejects co-located copies, nodes that are not up, ISR members that
 * are not replicas, more copies than a slot holds, and bad ranges. */
static void test_assign_rejected(void **state)
{
	static const char *const bad[] = {
	        /* two copies on node 1 */
	        "[{\"from\":0,\"to\":1,\"primary\":1,\"replicas\":[1],"
	        "\"isr\":[]}]",
	        /* node 3 is joining, not up */
	        "[{\"from\":0,\"to\":1,\"primary\":3,\"replicas\":[],"
	        "\"isr\":[]}]",
	        /* unknown node */
	        "[{\"from\":0,\"to\":1,\"primary\":1,\"replicas\":[9],"
	        "\"isr\":[]}]",
	        /* isr member not a replica */
	        "[{\"from\":0,\"to\":1,\"primary\":1,\"replicas\":[],"
	        "\"isr\":[2]}]",
	        /* six copies: more than a slot can hold */
	        "[{\"from\":0,\"to\":1,\"primary\":1,"
	        "\"replicas\":[2,4,5,6,7],\"isr\":[]}]",
	        /* range out of order and past the end */
	        "[{\"from\":5,\"to\":1,\"primary\":1,\"replicas\":[],"
	        "\"isr\":[]}]",
	        "[{\"from\":0,\"to\":16384,\"primary\":1,\"replicas\":[],"
	        "\"isr\":[]}]",
	        /* replicas without a primary */
	        "[{\"from\":0,\"to\":1,\"primary\":0,\"replicas\":[1],"
	        "\"isr\":[]}]",
	        /* not an array of objects */
	        "[7]",
	        "[{\"from\":0,\"to\":1,\"primary\":1,\"replicas\":[2,2],"
	        "\"isr\":[]}]",
	};
	struct narf_map *m = new_map();
	struct narf_map_result res;

	add_up_node(m, 7201);
	add_up_node(m, 7202);
	assert_int_equal(
	        apply_cmd(m, narf_cmd_node_join("127.0.0.1:7203", "j"), &res),
	        0);
	add_up_node(m, 7204);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[512];
		uint64_t epoch = m->epoch;

		snprintf(text, sizeof(text),
		         "{\"v\":1,\"type\":\"assign\",\"base_epoch\":%llu,"
		         "\"slots\":%s}",
		         (unsigned long long)m->epoch, bad[i]);
		assert_int_not_equal(apply_text(m, text, &res), 0);
		assert_int_equal(m->epoch, epoch);
		assert_int_equal(m->slots[0].primary, 0);
	}
	free_map(m);
}

/* A valid assign sets slot epochs where the primary changed; repeating it
 * changes nothing and does not move the epoch. */
static void test_assign_idempotent(void **state)
{
	struct narf_map *m = new_map();
	uint32_t a = add_up_node(m, 7201), b = add_up_node(m, 7202);
	uint64_t epoch;

	assign_all(m, a, b, 0);
	epoch = m->epoch;
	assert_int_equal(m->slots[100].epoch, epoch);
	assert_int_equal(m->slots[100].n_isr, 1);
	assign_all(m, a, b, 0);
	assert_int_equal(m->epoch, epoch);
	assign_all(m, b, a, 0);
	assert_int_equal(m->epoch, epoch + 1);
	assert_int_equal(m->slots[100].epoch, epoch + 1);
	free_map(m);
}

/* A slot may hold more copies than the replication factor (a new copy
 * syncing next to the one it replaces), up to NARF_MAX_COPIES. */
static void test_assign_extra_copy(void **state)
{
	struct narf_map *m = new_map();
	uint32_t a = add_up_node(m, 7201), b = add_up_node(m, 7202);
	uint32_t c = add_up_node(m, 7203);

	assert_int_equal(m->settings.replication, 2);
	assign_all(m, a, b, c);
	assert_int_equal(m->slots[0].n_replicas, 2);
	assert_int_equal(narf_slot_copies(&m->slots[16383]), 3);
	free_map(m);
}

/* Slots 0..99: primary a, replicas [b, c]; 100..199: primary b, replica a;
 * the rest: primary a, replica c. No ISR anywhere. */
static void isr_layout(struct narf_map *m, uint32_t a, uint32_t b, uint32_t c)
{
	struct narf_map_result res;
	struct narf_slot *slots = calloc(NARF_SLOTS, sizeof(*slots));

	assert_non_null(slots);
	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		slots[s].primary = a;
		slots[s].n_replicas = 1;
		slots[s].replicas[0] = c;
		if (s < 100) {
			slots[s].n_replicas = 2;
			slots[s].replicas[0] = b;
			slots[s].replicas[1] = c;
		} else if (s < 200) {
			slots[s].primary = b;
			slots[s].replicas[0] = a;
		}
	}
	assert_int_equal(
	        apply_cmd(m, narf_cmd_assign(m->epoch, slots, NULL), &res), 0);
	free(slots);
}

static int isr_text(struct narf_map *m,
                    uint32_t p,
                    uint32_t r,
                    const char *tail,
                    struct narf_map_result *res)
{
	char text[256];

	snprintf(text, sizeof(text),
	         "{\"v\":1,\"type\":\"isr\",\"primary\":%u,\"node\":%u,%s}", p,
	         r, tail);
	return apply_text(m, text, res);
}

static void assert_isr(const struct narf_slot *s, unsigned n, ...)
{
	va_list ap;

	assert_int_equal(s->n_isr, n);
	va_start(ap, n);
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(s->isr[i], va_arg(ap, unsigned));
	va_end(ap);
}

/* isr add puts a replica in the ISR of the listed slots its primary leads,
 * in replicas[] order, skipping slots that do not match; drop takes it out
 * of every slot the primary leads; the epoch moves only on a change. */
static void test_isr_add_drop(void **state)
{
	struct narf_map *m = new_map();
	struct narf_map_result res;
	uint32_t a = add_up_node(m, 7201), b = add_up_node(m, 7202);
	uint32_t c = add_up_node(m, 7203);
	uint64_t epoch;

	isr_layout(m, a, b, c);
	epoch = m->epoch;
	/* 150..160 are led by b: skipped. */
	assert_int_equal(
	        isr_text(m, a, b, "\"add\":[[0,9],[50,50],[150,160]]", &res),
	        0);
	assert_true(res.changed);
	assert_int_equal(m->epoch, epoch + 1);
	assert_isr(&m->slots[0], 1, b);
	assert_isr(&m->slots[9], 1, b);
	assert_isr(&m->slots[10], 0);
	assert_isr(&m->slots[50], 1, b);
	assert_isr(&m->slots[150], 0);
	/* c before b in time, yet the ISR keeps replicas[] order. */
	assert_int_equal(isr_text(m, a, c, "\"add\":[[20,20],[5,5]]", &res), 0);
	assert_isr(&m->slots[5], 2, b, c);
	assert_isr(&m->slots[20], 1, c);
	assert_int_equal(isr_text(m, a, b, "\"add\":[[20,20]]", &res), 0);
	assert_isr(&m->slots[20], 2, b, c);
	assert_int_equal(m->epoch, epoch + 3);
	/* Again, overlapping ranges, and a node that replicates none of the
	 * slots (c in b's slots): nothing changes, the epoch stays. */
	assert_int_equal(isr_text(m, a, b, "\"add\":[[0,5],[3,9]]", &res), 0);
	assert_false(res.changed);
	assert_int_equal(isr_text(m, b, c, "\"add\":[[100,199]]", &res), 0);
	assert_false(res.changed);
	assert_int_equal(isr_text(m, a, b, "\"add\":[]", &res), 0);
	assert_false(res.changed);
	assert_int_equal(m->epoch, epoch + 3);
	/* b leads 100..199 with replica a. */
	assert_int_equal(
	        apply_cmd(
	                m,
	                narf_cmd_isr(b, a, (bool[NARF_SLOTS]){[120] = true}, 0),
	                &res),
	        0);
	assert_isr(&m->slots[120], 1, a);
	assert_int_equal(m->epoch, epoch + 4);
	/* Drop b from every slot a leads; b's own slots are untouched. */
	assert_int_equal(apply_cmd(m, narf_cmd_isr(a, b, NULL, 0), &res), 0);
	assert_true(res.changed);
	assert_int_equal(m->epoch, epoch + 5);
	assert_isr(&m->slots[0], 0);
	assert_isr(&m->slots[5], 1, c);
	assert_isr(&m->slots[20], 1, c);
	assert_isr(&m->slots[120], 1, a);
	/* Unused entries are zero: slots 0 and 1 are equal again. */
	assert_true(narf_slot_equal(&m->slots[0], &m->slots[1]));
	assert_true(narf_slot_equal(&m->slots[5], &m->slots[20]));
	/* Dropping it again changes no ISR, but records the drop (an add
	 * sent before it may still come): a new epoch. */
	assert_int_equal(apply_cmd(m, narf_cmd_isr(a, b, NULL, 0), &res), 0);
	assert_true(res.changed);
	assert_int_equal(m->epoch, epoch + 6);
	assert_int_equal(narf_map_node_get(m, b)->isr_dropped, epoch + 6);
	free_map(m);
}

/* An add says since when its syncs ran ("since"): refused (stale_epoch)
 * when the node left an ISR after that, and a slot whose primary changed
 * after it is skipped. The drop's record survives the map's JSON. */
static void test_isr_add_since(void **state)
{
	struct narf_map *m = new_map(), *back = new_map();
	struct narf_map_result res;
	uint32_t a = add_up_node(m, 7201), b = add_up_node(m, 7202);
	uint32_t c = add_up_node(m, 7203);
	uint64_t synced, dropped;
	char text[128];
	json_t *j;

	(void)state;
	isr_layout(m, a, b, c);
	synced = m->epoch;
	assert_int_equal(apply_cmd(m, narf_cmd_isr(a, b, NULL, 0), &res), 0);
	dropped = m->epoch;
	assert_int_equal(narf_map_node_get(m, b)->isr_dropped, dropped);
	assert_int_equal(narf_map_node_get(m, c)->isr_dropped, 0);
	/* Syncs from before the drop: refused whole, nothing changes. */
	snprintf(text, sizeof(text), "\"add\":[[0,20]],\"since\":%llu",
	         (unsigned long long)synced);
	assert_int_equal(isr_text(m, a, b, text, &res), NARF_ESTALE);
	assert_int_equal(m->epoch, dropped);
	assert_isr(&m->slots[0], 0);
	/* From after it: taken, but slot 10 changed primary after the
	 * syncs (its slot epoch is newer): skipped. */
	m->slots[10].epoch = dropped + 1;
	snprintf(text, sizeof(text), "\"add\":[[0,20]],\"since\":%llu",
	         (unsigned long long)dropped);
	assert_int_equal(isr_text(m, a, b, text, &res), 0);
	assert_true(res.changed);
	assert_isr(&m->slots[0], 1, b);
	assert_isr(&m->slots[11], 1, b);
	assert_isr(&m->slots[10], 0);
	/* Without since (older primaries): no check. */
	assert_int_equal(isr_text(m, a, b, "\"add\":[[10,10]]", &res), 0);
	assert_isr(&m->slots[10], 1, b);
	/* Malformed since. */
	assert_int_equal(
	        isr_text(m, a, c, "\"add\":[[0,0]],\"since\":-1", &res),
	        NARF_EINVAL);
	assert_int_equal(
	        isr_text(m, a, c, "\"add\":[[0,0]],\"since\":\"1\"", &res),
	        NARF_EINVAL);
	/* The record in JSON, and a record from the future refused. */
	j = narf_map_to_json(m);
	assert_non_null(j);
	assert_int_equal(narf_map_from_json(back, j, NULL), 0);
	assert_int_equal(narf_map_node_get(back, b)->isr_dropped, dropped);
	assert_int_equal(narf_map_node_get(back, c)->isr_dropped, 0);
	json_object_set_new(json_array_get(json_object_get(j, "nodes"), 1),
	                    "isr_dropped",
	                    json_integer((json_int_t)m->epoch + 1));
	assert_int_equal(narf_map_from_json(back, j, NULL), NARF_EINVAL);
	json_decref(j);
	free_map(back);
	free_map(m);
}

/* Malformed isr entries are rejected and change nothing. */
static void test_isr_rejected(void **state)
{
	static const char *const bad[] = {
	        "\"type\":\"isr\",\"node\":2,\"drop\":true",
	        "\"type\":\"isr\",\"primary\":1,\"drop\":true",
	        "\"type\":\"isr\",\"primary\":0,\"node\":2,\"drop\":true",
	        "\"type\":\"isr\",\"primary\":\"1\",\"node\":2,\"drop\":true",
	        "\"type\":\"isr\",\"primary\":1,\"node\":9,\"drop\":true",
	        "\"type\":\"isr\",\"primary\":1,\"node\":1,\"drop\":true",
	        "\"type\":\"isr\",\"primary\":1,\"node\":2",
	        "\"type\":\"isr\",\"primary\":1,\"node\":2,\"drop\":false",
	        "\"type\":\"isr\",\"primary\":1,\"node\":2,\"drop\":1",
	        "\"type\":\"isr\",\"primary\":1,\"node\":2,\"drop\":true,"
	        "\"add\":[[0,1]]",
	        "\"type\":\"isr\",\"primary\":1,\"node\":2,\"add\":{}",
	        "\"type\":\"isr\",\"primary\":1,\"node\":2,\"add\":[[5,1]]",
	        "\"type\":\"isr\",\"primary\":1,\"node\":2,"
	        "\"add\":[[0,1],[0,16384]]",
	        "\"type\":\"isr\",\"primary\":1,\"node\":2,\"add\":[[-1,3]]",
	        "\"type\":\"isr\",\"primary\":1,\"node\":2,\"add\":[[1]]",
	        "\"type\":\"isr\",\"primary\":1,\"node\":2,\"add\":[[1,2,3]]",
	        "\"type\":\"isr\",\"primary\":1,\"node\":2,\"add\":[[\"0\",2]]",
	        "\"type\":\"isr\",\"primary\":1,\"node\":2,\"add\":[0,2]",
	        "\"type\":\"isr\",\"primary\":1,\"node\":2,\"add\":[[0.5,2]]",
	};
	struct narf_map *m = new_map();
	struct narf_map_result res;
	uint32_t a = add_up_node(m, 7201), b = add_up_node(m, 7202);
	uint32_t c = add_up_node(m, 7203);
	json_t *many, *cmd;
	uint64_t epoch;

	isr_layout(m, a, b, c);
	epoch = m->epoch;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[256];

		snprintf(text, sizeof(text), "{\"v\":1,%s}", bad[i]);
		assert_int_not_equal(apply_text(m, text, &res), 0);
		assert_true(res.errmsg[0] != '\0');
		assert_false(res.changed);
		assert_int_equal(m->epoch, epoch);
		assert_isr(&m->slots[0], 0);
	}
	/* 16384 ranges are fine, one more is not. */
	many = json_array();
	for (unsigned s = 0; s < NARF_SLOTS; s++)
		json_array_append_new(many, json_pack("[i,i]", (int)s, (int)s));
	cmd = json_pack("{s:i,s:s,s:i,s:i,s:O}", "v", 1, "type", "isr",
	                "primary", (int)a, "node", (int)b, "add", many);
	assert_int_equal(apply_cmd(m, json_deep_copy(cmd), &res), 0);
	assert_isr(&m->slots[99], 1, b);
	epoch = m->epoch;
	json_array_append_new(many, json_pack("[i,i]", 0, 0));
	json_object_set(cmd, "add", many);
	assert_int_equal(apply_cmd(m, narf_cmd_isr(a, b, NULL, 0), &res), 0);
	assert_int_equal(apply_cmd(m, cmd, &res), NARF_EINVAL);
	assert_int_equal(m->epoch, epoch + 1);
	assert_isr(&m->slots[99], 0);
	json_decref(many);
	free_map(m);
}

/* narf_cmd_isr writes the flagged slots as merged ranges, or drop. */
static void test_isr_builder(void **state)
{
	static bool add[NARF_SLOTS];
	json_t *cmd;
	char *text;

	add[0] = add[1] = add[2] = add[7] = add[16383] = true;
	cmd = narf_cmd_isr(4, 5, add, 0);
	text = json_dumps(cmd, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(text,
	                    "{\"add\":[[0,2],[7,7],[16383,16383]],\"node\":5,"
	                    "\"primary\":4,\"type\":\"isr\",\"v\":1}");
	free(text);
	json_decref(cmd);
	cmd = narf_cmd_isr(4, 5, NULL, 0);
	text = json_dumps(cmd, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(text,
	                    "{\"drop\":true,\"node\":5,\"primary\":4,"
	                    "\"type\":\"isr\",\"v\":1}");
	free(text);
	json_decref(cmd);
}

/* Assign a pending move to target on slots [lo, hi] (the rest as they are). */
static int set_moves(struct narf_map *m,
                     unsigned lo,
                     unsigned hi,
                     uint32_t target,
                     struct narf_map_result *res)
{
	static bool take[NARF_SLOTS];
	struct narf_slot *slots = malloc(sizeof(m->slots));
	int rv;

	assert_non_null(slots);
	memcpy(slots, m->slots, sizeof(m->slots));
	memset(take, 0, sizeof(take));
	for (unsigned s = lo; s <= hi; s++) {
		slots[s].move = target;
		take[s] = true;
	}
	rv = apply_cmd(m, narf_cmd_assign(m->epoch, slots, take), res);
	free(slots);
	return rv;
}

/* Apply a handoff entry from primary for n ranges given as lo, hi pairs. */
static int handoff(struct narf_map *m,
                   uint32_t primary,
                   struct narf_map_result *res,
                   unsigned n,
                   ...)
{
	static bool slots[NARF_SLOTS];
	va_list ap;

	memset(slots, 0, sizeof(slots));
	va_start(ap, n);
	for (unsigned i = 0; i < n; i++) {
		unsigned lo = va_arg(ap, unsigned), hi = va_arg(ap, unsigned);

		for (unsigned s = lo; s <= hi; s++)
			slots[s] = true;
	}
	va_end(ap);
	return apply_cmd(m, narf_cmd_handoff(primary, slots), res);
}

static void assert_slot(const struct narf_slot *s,
                        uint32_t primary,
                        uint32_t move,
                        uint64_t epoch,
                        uint32_t r1,
                        uint32_t r2)
{
	assert_int_equal(s->primary, primary);
	assert_int_equal(s->move, move);
	assert_int_equal(s->epoch, epoch);
	assert_int_equal(s->n_replicas, 2);
	assert_int_equal(s->replicas[0], r1);
	assert_int_equal(s->replicas[1], r2);
	assert_isr(s, 2, r1, r2);
}

/* A move set by assign keeps primary, copies and slot epoch; the handoff
 * entry makes the target primary (new slot epoch) with the old primary in
 * its place among the in-sync replicas, only on listed slots that match,
 * and repeating it changes nothing. */
static void test_handoff(void **state)
{
	struct narf_map *m = new_map();
	struct narf_map_result res;
	uint32_t a = add_up_node(m, 7201), b = add_up_node(m, 7202);
	uint32_t c = add_up_node(m, 7203);
	uint64_t e0, epoch;

	assign_all(m, a, b, c);
	e0 = m->epoch;
	assert_int_equal(set_moves(m, 0, 99, b, &res), 0);
	assert_int_equal(set_moves(m, 100, 109, c, &res), 0);
	epoch = m->epoch;
	assert_int_equal(epoch, e0 + 2);
	assert_slot(&m->slots[0], a, b, e0, b, c);
	assert_slot(&m->slots[100], a, c, e0, b, c);
	/* 50..99 are not listed, 200 has no move. */
	assert_int_equal(handoff(m, a, &res, 3, 0, 49, 100, 100, 200, 200), 0);
	assert_true(res.changed);
	assert_int_equal(m->epoch, epoch + 1);
	assert_slot(&m->slots[0], b, 0, epoch + 1, a, c);
	assert_slot(&m->slots[49], b, 0, epoch + 1, a, c);
	assert_slot(&m->slots[50], a, b, e0, b, c);
	assert_slot(&m->slots[100], c, 0, epoch + 1, b, a);
	assert_slot(&m->slots[101], a, c, e0, b, c);
	assert_slot(&m->slots[200], a, 0, e0, b, c);
	/* The same request again, and one from a node that leads none of
	 * the moving slots: nothing changes, the epoch stays. */
	assert_int_equal(handoff(m, a, &res, 2, 0, 49, 100, 100), 0);
	assert_false(res.changed);
	assert_int_equal(handoff(m, b, &res, 1, 50, 99), 0);
	assert_false(res.changed);
	assert_int_equal(m->epoch, epoch + 1);
	assert_slot(&m->slots[50], a, b, e0, b, c);
	/* Moved slots survive the JSON round trip with their moves. */
	{
		struct narf_map *copy = new_map();
		json_t *obj = narf_map_to_json(m);

		assert_int_equal(narf_map_from_json(copy, obj, NULL), 0);
		assert_int_equal(
		        memcmp(copy->slots, m->slots, sizeof(m->slots)), 0);
		json_decref(obj);
		free_map(copy);
	}
	free_map(m);
}

/* A pending move ends without a handoff when its target leaves the ISR (isr
 * drop), goes down, or its primary goes down (failover picks the heir). */
static void test_handoff_cleared(void **state)
{
	struct narf_map *m = new_map();
	struct narf_map_result res;
	uint32_t a = add_up_node(m, 7201), b = add_up_node(m, 7202);
	uint32_t c = add_up_node(m, 7203), d = add_up_node(m, 7204);
	uint64_t epoch;

	assign_all(m, a, b, c);
	assert_int_equal(set_moves(m, 0, 9, b, &res), 0);
	assert_int_equal(set_moves(m, 10, 19, c, &res), 0);
	/* a drops b: b's moves end, c's stay. */
	assert_int_equal(apply_cmd(m, narf_cmd_isr(a, b, NULL, 0), &res), 0);
	assert_int_equal(m->slots[0].move, 0);
	assert_isr(&m->slots[0], 1, c);
	assert_int_equal(m->slots[10].move, c);
	epoch = m->epoch;
	assert_int_equal(handoff(m, a, &res, 1, 0, 9), 0);
	assert_false(res.changed);
	assert_int_equal(m->slots[0].primary, a);
	/* c goes down: its moves end. */
	assert_int_equal(
	        apply_cmd(m, narf_cmd_node_state(c, NARF_NODE_DOWN), &res), 0);
	assert_int_equal(m->slots[10].move, 0);
	assert_int_equal(m->slots[10].primary, a);
	/* A primary going down mid-handoff: the failover promotes its first
	 * live ISR replica, whatever the move said. */
	assign_all(m, a, b, d);
	assert_int_equal(set_moves(m, 0, 9, d, &res), 0);
	epoch = m->epoch;
	assert_int_equal(
	        apply_cmd(m, narf_cmd_node_state(a, NARF_NODE_DOWN), &res), 0);
	assert_int_equal(m->slots[0].primary, b);
	assert_int_equal(m->slots[0].move, 0);
	assert_int_equal(m->slots[0].epoch, epoch + 1);
	assert_isr(&m->slots[0], 1, d);
	free_map(m);
}

/* Malformed handoff entries, and assigns whose move target is not an up
 * node in the slot's ISR, are rejected and change nothing. */
static void test_handoff_rejected(void **state)
{
	static const char *const bad[] = {
	        "\"type\":\"handoff\",\"slots\":[[0,1]]",
	        "\"type\":\"handoff\",\"primary\":0,\"slots\":[[0,1]]",
	        "\"type\":\"handoff\",\"primary\":\"1\",\"slots\":[[0,1]]",
	        "\"type\":\"handoff\",\"primary\":9,\"slots\":[[0,1]]",
	        "\"type\":\"handoff\",\"primary\":1",
	        "\"type\":\"handoff\",\"primary\":1,\"slots\":{}",
	        "\"type\":\"handoff\",\"primary\":1,\"slots\":[[5,1]]",
	        "\"type\":\"handoff\",\"primary\":1,\"slots\":[[0,16384]]",
	        "\"type\":\"handoff\",\"primary\":1,\"slots\":[[-1,3]]",
	        "\"type\":\"handoff\",\"primary\":1,\"slots\":[0,2]",
	};
	static const char *const bad_assign[] = {
	        /* move target outside the ISR */
	        "[{\"from\":0,\"to\":1,\"primary\":1,\"replicas\":[2,3],"
	        "\"isr\":[2],\"move\":3}]",
	        /* move target holding no copy */
	        "[{\"from\":0,\"to\":1,\"primary\":1,\"replicas\":[2],"
	        "\"isr\":[2],\"move\":3}]",
	        /* move target down */
	        "[{\"from\":0,\"to\":1,\"primary\":1,\"replicas\":[2],"
	        "\"isr\":[2],\"move\":4}]",
	        /* move to the primary itself */
	        "[{\"from\":0,\"to\":1,\"primary\":1,\"replicas\":[2],"
	        "\"isr\":[2],\"move\":1}]",
	};
	struct narf_map *m = new_map();
	struct narf_map_result res;
	uint32_t a = add_up_node(m, 7201), b = add_up_node(m, 7202);
	uint32_t c = add_up_node(m, 7203), d = add_up_node(m, 7204);
	uint64_t epoch;

	assert_int_equal(
	        apply_cmd(m, narf_cmd_node_state(d, NARF_NODE_DOWN), &res), 0);
	assign_all(m, a, b, c);
	assert_int_equal(set_moves(m, 0, 9, b, &res), 0);
	epoch = m->epoch;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[256];

		snprintf(text, sizeof(text), "{\"v\":1,%s}", bad[i]);
		assert_int_not_equal(apply_text(m, text, &res), 0);
		assert_true(res.errmsg[0] != '\0');
		assert_false(res.changed);
		assert_int_equal(m->epoch, epoch);
		assert_int_equal(m->slots[0].move, b);
	}
	for (size_t i = 0; i < sizeof(bad_assign) / sizeof(bad_assign[0]);
	     i++) {
		char text[512];

		snprintf(text, sizeof(text),
		         "{\"v\":1,\"type\":\"assign\",\"base_epoch\":%llu,"
		         "\"slots\":%s}",
		         (unsigned long long)m->epoch, bad_assign[i]);
		assert_int_not_equal(apply_text(m, text, &res), 0);
		assert_true(res.errmsg[0] != '\0');
		assert_int_equal(m->epoch, epoch);
		assert_int_equal(m->slots[0].move, b);
	}
	free_map(m);
}

/* narf_cmd_handoff writes the flagged slots as merged ranges. */
static void test_handoff_builder(void **state)
{
	static bool slots[NARF_SLOTS];
	json_t *cmd;
	char *text;

	slots[0] = slots[1] = slots[7] = slots[16383] = true;
	cmd = narf_cmd_handoff(4, slots);
	text = json_dumps(cmd, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(text,
	                    "{\"primary\":4,\"slots\":[[0,1],[7,7],[16383,"
	                    "16383]],\"type\":\"handoff\",\"v\":1}");
	free(text);
	json_decref(cmd);
}

/* init seeds coordinators and settings once; coords_set validates ids. */
static void test_init_and_coords(void **state)
{
	struct narf_map *m = new_map();
	struct narf_map_result res;
	struct narf_map_coord c[3] = {
	        {1, "127.0.0.1:7101", "127.0.0.1:7001"},
	        {2, "127.0.0.1:7102", "127.0.0.1:7002"},
	        {3, "127.0.0.1:7103", "127.0.0.1:7003"},
	};
	struct narf_map_settings s = {
	        3, 900, NARF_ACK_ALL, 64, 2, NARF_LOST_EMPTY, 60000};

	assert_int_equal(apply_cmd(m, narf_cmd_init(c, 3, &s), &res), 0);
	assert_int_equal(m->n_coords, 3);
	assert_int_equal(m->settings.replication, 3);
	assert_int_equal(m->settings.node_timeout_ms, 900);
	assert_int_equal(m->settings.moves, 64);
	assert_int_equal(apply_cmd(m, narf_cmd_init(c, 3, &s), &res),
	                 NARF_EEXISTS);
	c[2].id = 1;
	assert_int_equal(apply_cmd(m, narf_cmd_coords_set(c, 3), &res),
	                 NARF_EINVAL);
	c[2].id = 4;
	assert_int_equal(apply_cmd(m, narf_cmd_coords_set(c, 3), &res), 0);
	assert_int_equal(m->coords[2].id, 4);
	free_map(m);
}

/* Coordinator ids are never reused: a removed member's id is refused, the
 * next free id survives a JSON round trip, and an old map without the
 * field counts from its table. */
static void test_coord_ids_never_reused(void **state)
{
	struct narf_map *m = new_map(), *back = new_map();
	struct narf_map_result res;
	struct narf_map_coord c[3] = {
	        {1, "127.0.0.1:7101", "127.0.0.1:7001"},
	        {2, "127.0.0.1:7102", "127.0.0.1:7002"},
	        {3, "127.0.0.1:7103", "127.0.0.1:7003"},
	};
	struct narf_map_settings s = {2,
	                              600,
	                              NARF_ACK_ALL,
	                              NARF_MAP_DEFAULT_MOVES,
	                              1,
	                              NARF_LOST_EMPTY,
	                              NARF_MAP_DEFAULT_REMOVED_RETENTION_MS};
	char errmsg[NARF_ERRMSG_SIZE];
	json_t *j;

	assert_int_equal(m->next_coord, 1);
	assert_int_equal(apply_cmd(m, narf_cmd_init(c, 3, &s), &res), 0);
	assert_int_equal(m->next_coord, 4);
	/* Remove 3: the table shrinks, the next free id stays 4. */
	assert_int_equal(apply_cmd(m, narf_cmd_coords_set(c, 2), &res), 0);
	assert_int_equal(m->n_coords, 2);
	assert_int_equal(m->next_coord, 4);
	/* 3 cannot come back, nor can anything below 4 not in the table. */
	assert_int_equal(apply_cmd(m, narf_cmd_coords_set(c, 3), &res),
	                 NARF_EEXISTS);
	assert_non_null(strstr(res.errmsg, "never reused"));
	assert_int_equal(m->n_coords, 2);
	c[2].id = 7;
	assert_int_equal(apply_cmd(m, narf_cmd_coords_set(c, 3), &res), 0);
	assert_int_equal(m->next_coord, 8);
	/* Round trip. */
	j = narf_map_to_json(m);
	assert_int_equal(json_integer_value(json_object_get(j, "next_coord")),
	                 8);
	assert_int_equal(narf_map_from_json(back, j, errmsg), 0);
	assert_int_equal(back->next_coord, 8);
	/* Without the field: one more than the highest id in the table. */
	json_object_del(j, "next_coord");
	assert_int_equal(narf_map_from_json(back, j, errmsg), 0);
	assert_int_equal(back->next_coord, 8);
	/* Not above an id in the table: refused. */
	json_object_set_new(j, "next_coord", json_integer(7));
	assert_int_equal(narf_map_from_json(back, j, errmsg), NARF_EINVAL);
	assert_non_null(strstr(errmsg, "next_coord"));
	json_decref(j);
	free_map(back);
	free_map(m);
}

/* A map survives JSON and back unchanged, and the slot table is stored as a
 * handful of ranges. */
static void test_snapshot_round_trip(void **state)
{
	struct narf_map *m = new_map(), *back = new_map();
	struct narf_map_result res;
	uint32_t a = add_up_node(m, 7201), b = add_up_node(m, 7202);
	json_t *j1, *j2, *loaded;
	char *t1, *t2;
	char errmsg[NARF_ERRMSG_SIZE];

	assign_all(m, a, b, 0);
	assert_int_equal(
	        apply_cmd(m, narf_cmd_node_join("127.0.0.1:7203", "z"), &res),
	        0);
	assert_int_equal(apply_cmd(m, narf_cmd_leave(b, false), &res), 0);
	j1 = narf_map_to_json(m);
	assert_non_null(j1);
	assert_int_equal(json_array_size(json_object_get(j1, "slots")), 1);
	t1 = json_dumps(j1, JSON_COMPACT);
	loaded = json_loads(t1, 0, NULL);
	assert_int_equal(narf_map_from_json(back, loaded, errmsg), 0);
	j2 = narf_map_to_json(back);
	t2 = json_dumps(j2, JSON_COMPACT);
	assert_string_equal(t1, t2);
	assert_int_equal(back->epoch, m->epoch);
	assert_int_equal(back->next_node, m->next_node);
	for (unsigned s = 0; s < NARF_SLOTS; s++)
		assert_true(narf_slot_equal(&back->slots[s], &m->slots[s]));
	/* The restored map keeps working: a new join gets the next id. */
	assert_int_equal(
	        apply_cmd(back, narf_cmd_node_join("127.0.0.1:7209", "q"),
	                  &res),
	        0);
	assert_int_equal(res.node, 4);
	free(t1);
	free(t2);
	json_decref(j1);
	json_decref(j2);
	json_decref(loaded);
	free_map(m);
	free_map(back);
}

/* Malformed snapshots are refused and leave the target map untouched. */
static void test_snapshot_rejected(void **state)
{
	static const char *const bad[] = {
	        "{}",
	        /* Not an object (found by tests/fuzz/fuzz_map_json.c: it
	         * got no message). */
	        "[1]",
	        "{\"epoch\":1,\"next_node\":1,\"nodes\":[],\"slots\":[]}",
	        "{\"epoch\":1,\"next_node\":1,\"nodes\":[],\"slots\":[{"
	        "\"from\":"
	        "0,\"to\":100,\"primary\":0,\"replicas\":[],\"isr\":[]}]}",
	        "{\"epoch\":1,\"next_node\":1,\"nodes\":[],\"slots\":[{"
	        "\"from\":"
	        "1,\"to\":16383,\"primary\":0,\"replicas\":[],\"isr\":[]}]}",
	        "{\"epoch\":1,\"next_node\":2,\"nodes\":[{\"id\":5,\"addr\":"
	        "\"127.0.0.1:1\",\"boot_id\":\"x\",\"state\":\"up\"}],"
	        "\"slots\":[{\"from\":0,\"to\":16383,\"primary\":0,"
	        "\"replicas\":[],\"isr\":[]}]}",
	        "{\"epoch\":-1,\"next_node\":1,\"nodes\":[],\"slots\":[]}",
	        "{\"epoch\":1,\"next_node\":1,\"settings\":{\"replication\":0},"
	        "\"nodes\":[],\"slots\":[{\"from\":0,\"to\":16383,\"primary\":"
	        "0,\"replicas\":[],\"isr\":[]}]}",
	        /* A pending move to a replica outside the ISR (found by
	         * tests/fuzz/fuzz_map_json.c), and one without any copy. */
	        "{\"epoch\":1,\"next_node\":3,\"nodes\":[],\"slots\":[{"
	        "\"from\":0,\"to\":16383,\"primary\":1,\"replicas\":[2],"
	        "\"isr\":[],\"move\":2}]}",
	        "{\"epoch\":1,\"next_node\":3,\"nodes\":[],\"slots\":[{"
	        "\"from\":0,\"to\":16383,\"primary\":0,\"replicas\":[],"
	        "\"isr\":[],\"move\":2}]}",
	        /* A slot epoch or a born epoch the map has not reached. */
	        "{\"epoch\":1,\"next_node\":1,\"nodes\":[],\"slots\":[{"
	        "\"from\":0,\"to\":16383,\"primary\":0,\"replicas\":[],"
	        "\"isr\":[],\"epoch\":2}]}",
	        "{\"epoch\":1,\"next_node\":1,\"nodes\":[],\"slots\":[{"
	        "\"from\":0,\"to\":16383,\"primary\":0,\"replicas\":[],"
	        "\"isr\":[],\"born\":2}]}",
	};
	struct narf_map *m = new_map();
	char errmsg[NARF_ERRMSG_SIZE];

	add_up_node(m, 7201);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *obj = json_loads(bad[i], 0, NULL);

		assert_non_null(obj);
		errmsg[0] = '\0';
		assert_int_not_equal(narf_map_from_json(m, obj, errmsg), 0);
		assert_true(errmsg[0] != '\0');
		assert_int_equal(m->n_nodes, 1);
		assert_int_equal(m->epoch, 2);
		json_decref(obj);
	}
	free_map(m);
}

/* Two maps fed the same commands end byte-identical (the FSM contract). */
static void test_deterministic(void **state)
{
	struct narf_map *m1 = new_map(), *m2 = new_map();
	struct narf_map *maps[2] = {m1, m2};
	char *t1, *t2;
	json_t *j1, *j2;

	for (int i = 0; i < 2; i++) {
		uint32_t a = add_up_node(maps[i], 7201);
		uint32_t b = add_up_node(maps[i], 7202);
		struct narf_map_result res;

		assign_all(maps[i], a, b, 0);
		apply_cmd(maps[i], narf_cmd_node_state(a, NARF_NODE_DOWN),
		          &res);
	}
	j1 = narf_map_to_json(m1);
	j2 = narf_map_to_json(m2);
	t1 = json_dumps(j1, JSON_COMPACT);
	t2 = json_dumps(j2, JSON_COMPACT);
	assert_string_equal(t1, t2);
	free(t1);
	free(t2);
	json_decref(j1);
	json_decref(j2);
	free_map(m1);
	free_map(m2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_join_ids),
	        cmocka_unit_test(test_leave_if_room),
	        cmocka_unit_test(test_join_new_incarnation),
	        cmocka_unit_test(test_join_rejected),
	        cmocka_unit_test(test_rejoin_retries),
	        cmocka_unit_test(test_state_incarnation_and_leave_down),
	        cmocka_unit_test(test_node_forget),
	        cmocka_unit_test(test_node_forget_holding),
	        cmocka_unit_test(test_bad_envelope),
	        cmocka_unit_test(test_node_state),
	        cmocka_unit_test(test_assign_stale),
	        cmocka_unit_test(test_assign_rejected),
	        cmocka_unit_test(test_assign_idempotent),
	        cmocka_unit_test(test_assign_extra_copy),
	        cmocka_unit_test(test_isr_add_drop),
	        cmocka_unit_test(test_isr_add_since),
	        cmocka_unit_test(test_isr_rejected),
	        cmocka_unit_test(test_isr_builder),
	        cmocka_unit_test(test_handoff),
	        cmocka_unit_test(test_handoff_cleared),
	        cmocka_unit_test(test_handoff_rejected),
	        cmocka_unit_test(test_handoff_builder),
	        cmocka_unit_test(test_init_and_coords),
	        cmocka_unit_test(test_coord_ids_never_reused),
	        cmocka_unit_test(test_snapshot_round_trip),
	        cmocka_unit_test(test_snapshot_rejected),
	        cmocka_unit_test(test_deterministic),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
