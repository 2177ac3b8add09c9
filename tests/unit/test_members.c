/*
 * Unit tests of the order of coordinator membership changes
 * (coordinator/members.h): each test feeds a table, a Raft configuration
 * and the members' liveness to narf_members_plan() and checks the step.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "coordinator/members.h"

#define V NARF_RAFT_VOTER
#define S NARF_RAFT_SPARE
#define YES NARF_REACH_YES
#define NO NARF_REACH_NO
#define UNK NARF_REACH_UNKNOWN

static const struct narf_map_coord c1 = {1, "127.0.0.1:7101", "127.0.0.1:7001"};
static const struct narf_map_coord c2 = {2, "127.0.0.1:7102", "127.0.0.1:7002"};
static const struct narf_map_coord c3 = {3, "127.0.0.1:7103", "127.0.0.1:7003"};
static const struct narf_map_coord c4 = {4, "127.0.0.1:7104", "127.0.0.1:7004"};

static struct narf_raft_member member(const struct narf_map_coord *c,
                                      enum narf_raft_role role)
{
	struct narf_raft_member m = {.id = c->id, .role = role};

	snprintf(m.raft, sizeof(m.raft), "%s", c->raft);
	return m;
}

static struct narf_members_plan plan(const struct narf_map_coord *table,
                                     unsigned n_table,
                                     const struct narf_raft_member *conf,
                                     const enum narf_reach *reach,
                                     unsigned n_conf,
                                     uint64_t self)
{
	struct narf_members_plan p;

	narf_members_plan(table, n_table, conf, reach, n_conf, self, &p);
	assert_true(p.why[0] != '\0');
	return p;
}

/* A configuration that matches the table needs nothing. */
static void test_in_sync(void **state)
{
	struct narf_map_coord t[] = {c1, c2, c3};
	struct narf_raft_member k[] = {member(&c1, V), member(&c2, V),
	                               member(&c3, V)};
	enum narf_reach r[] = {YES, NO, YES};

	assert_int_equal(plan(t, 3, k, r, 3, 1).step, NARF_STEP_NONE);
}

/* Replacing a dead member: remove it first (2 of 2 live voters), then add
 * the new one as a spare, then promote it. */
static void test_replace_dead(void **state)
{
	struct narf_map_coord t[] = {c1, c2, c4};
	struct narf_raft_member k[] = {member(&c1, V), member(&c2, V),
	                               member(&c3, V), member(&c4, S)};
	enum narf_reach r[] = {YES, YES, NO, UNK};
	struct narf_members_plan p = plan(t, 3, k, r, 3, 1);

	assert_int_equal(p.step, NARF_STEP_REMOVE);
	assert_int_equal(p.id, 3);
	/* 3 removed: add 4 at its Raft address. */
	p = plan(t, 3, k, r, 2, 1);
	assert_int_equal(p.step, NARF_STEP_ADD);
	assert_int_equal(p.id, 4);
	assert_string_equal(p.raft, c4.raft);
	/* 4 a spare: promote it. */
	k[2] = k[3];
	p = plan(t, 3, k, r, 3, 1);
	assert_int_equal(p.step, NARF_STEP_PROMOTE);
	assert_int_equal(p.id, 4);
	k[2].role = V;
	assert_int_equal(plan(t, 3, k, r, 3, 1).step, NARF_STEP_NONE);
}

/* Replacing a live member: its successor is added and promoted first, so
 * one failure stays tolerated throughout; then it is removed. */
static void test_replace_live(void **state)
{
	struct narf_map_coord t[] = {c1, c2, c4};
	struct narf_raft_member k[] = {member(&c1, V), member(&c2, V),
	                               member(&c3, V), member(&c4, S)};
	enum narf_reach r[] = {YES, YES, YES, YES};
	struct narf_members_plan p = plan(t, 3, k, r, 3, 1);

	assert_int_equal(p.step, NARF_STEP_ADD);
	assert_int_equal(p.id, 4);
	p = plan(t, 3, k, r, 4, 1);
	assert_int_equal(p.step, NARF_STEP_PROMOTE);
	k[3].role = V;
	p = plan(t, 3, k, r, 4, 1);
	assert_int_equal(p.step, NARF_STEP_REMOVE);
	assert_int_equal(p.id, 3);
}

/* A leaving member not heard from yet (a new leader): wait, do not guess
 * the order. */
static void test_unknown_waits(void **state)
{
	struct narf_map_coord t[] = {c1, c2, c4};
	struct narf_raft_member k[] = {member(&c1, V), member(&c2, V),
	                               member(&c3, V)};
	enum narf_reach r[] = {YES, YES, UNK};

	assert_int_equal(plan(t, 3, k, r, 3, 1).step, NARF_STEP_WAIT);
	r[2] = NO;
	assert_int_equal(plan(t, 3, k, r, 3, 1).step, NARF_STEP_REMOVE);
}

/* The leader itself leaves: once its successor is a voter, it hands
 * leadership to a listed voter that answers; none answering, it waits. */
static void test_leader_leaves(void **state)
{
	struct narf_map_coord t[] = {c2, c3, c4};
	struct narf_raft_member k[] = {member(&c1, V), member(&c2, V),
	                               member(&c3, V), member(&c4, V)};
	enum narf_reach r[] = {YES, NO, YES, YES};
	struct narf_members_plan p = plan(t, 3, k, r, 4, 1);

	assert_int_equal(p.step, NARF_STEP_TRANSFER);
	assert_int_equal(p.id, 3);
	r[2] = r[3] = NO;
	/* 2, 3 and 4 silent: the dead ones are not removed by this leader
	 * since they are listed; it cannot hand over, so it waits. */
	p = plan(t, 3, k, r, 4, 1);
	assert_int_equal(p.step, NARF_STEP_WAIT);
	/* Seen from the new leader 3, 1 still answers: remove it. */
	r[0] = r[2] = YES;
	p = plan(t, 3, k, r, 4, 3);
	assert_int_equal(p.step, NARF_STEP_REMOVE);
	assert_int_equal(p.id, 1);
}

/* A new member at the Raft address of the one it replaces: the old entry
 * goes first, even if something answers there (the new member does). */
static void test_address_reused(void **state)
{
	struct narf_map_coord n4 = c4, t[3];
	struct narf_raft_member k[] = {member(&c1, V), member(&c2, V),
	                               member(&c3, V)};
	enum narf_reach r[] = {YES, YES, YES};
	struct narf_members_plan p;

	snprintf(n4.raft, sizeof(n4.raft), "%s", c3.raft);
	t[0] = c1;
	t[1] = c2;
	t[2] = n4;
	p = plan(t, 3, k, r, 3, 1);
	assert_int_equal(p.step, NARF_STEP_REMOVE);
	assert_int_equal(p.id, 3);
}

/* An add that an operator took back (the member is out of the table) is
 * undone: the spare is removed. */
static void test_backed_out_add(void **state)
{
	struct narf_map_coord t[] = {c1, c2, c3};
	struct narf_raft_member k[] = {member(&c1, V), member(&c2, V),
	                               member(&c3, V), member(&c4, S)};
	enum narf_reach r[] = {YES, YES, YES, NO};
	struct narf_members_plan p = plan(t, 3, k, r, 4, 1);

	assert_int_equal(p.step, NARF_STEP_REMOVE);
	assert_int_equal(p.id, 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_in_sync),
	        cmocka_unit_test(test_replace_dead),
	        cmocka_unit_test(test_replace_live),
	        cmocka_unit_test(test_unknown_waits),
	        cmocka_unit_test(test_leader_leaves),
	        cmocka_unit_test(test_address_reused),
	        cmocka_unit_test(test_backed_out_add),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
