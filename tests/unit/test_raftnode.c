/*
 * The coordinator's proof that it still leads (narf_raftnode_leads(),
 * docs/safety.md): when a leader may renew a data node's lease. The raft
 * struct's fields are set by hand; no libraft instance runs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "coordinator/raftnode.h"

/* A ready leader of term 5, election timeout 300 ms, whose last barrier
 * was proposed at 1000 ms and has committed. */
static void ready_leader(struct narf_raftnode *rn)
{
	memset(rn, 0, sizeof(*rn));
	rn->raft.state = RAFT_LEADER;
	rn->raft.current_term = 5;
	rn->raft.election_timeout = 300;
	rn->ready_term = 5;
	rn->proof_term = 5;
	rn->proof_ms = 1000;
}

/* The window is half an election timeout plus the slack (the new leader's
 * extra wait), counted from the barrier's proposal. */
static void test_window(void **state)
{
	struct narf_raftnode rn;
	uint64_t age = 0;

	ready_leader(&rn);
	assert_true(narf_raftnode_leads(&rn, 1000, 150, &age));
	assert_int_equal(age, 0);
	assert_true(narf_raftnode_leads(&rn, 1299, 150, &age));
	assert_int_equal(age, 299);
	assert_false(narf_raftnode_leads(&rn, 1300, 150, &age));
	assert_false(narf_raftnode_leads(&rn, 1149 + 1, 0, NULL));
	assert_true(narf_raftnode_leads(&rn, 1149, 0, NULL));
	/* A clock reading older than the proof (never on one monotonic
	 * clock, but harmless) counts as fresh. */
	assert_true(narf_raftnode_leads(&rn, 999, 0, &age));
	assert_int_equal(age, 0);
}

/* No proof at all: a follower, a candidate, a leader of a newer term whose
 * proof is from an older one, a leader not yet ready, or one handing
 * leadership over renews nothing. */
static void test_no_proof(void **state)
{
	struct narf_raftnode rn;
	struct raft_transfer t;
	uint64_t age = 0;

	ready_leader(&rn);
	rn.raft.state = RAFT_FOLLOWER;
	assert_false(narf_raftnode_leads(&rn, 1000, 150, NULL));
	rn.raft.state = RAFT_CANDIDATE;
	assert_false(narf_raftnode_leads(&rn, 1000, 150, NULL));

	ready_leader(&rn);
	rn.raft.current_term = 6; /* deposed and re-elected */
	rn.ready_term = 6;
	assert_false(narf_raftnode_leads(&rn, 1000, 150, &age));
	assert_int_equal(age, UINT64_MAX);

	ready_leader(&rn);
	rn.ready_term = 0;
	assert_false(narf_raftnode_leads(&rn, 1000, 150, NULL));

	ready_leader(&rn);
	rn.raft.transfer = &t;
	assert_false(narf_raftnode_leads(&rn, 1000, 150, NULL));

	ready_leader(&rn);
	rn.proof_term = 0;
	assert_false(narf_raftnode_leads(&rn, 1000, 150, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_window),
	        cmocka_unit_test(test_no_proof),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
