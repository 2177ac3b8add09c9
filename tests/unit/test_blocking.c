/*
 * Unit tests for datanode/blocking.h, the loop-free waiter registry of the
 * blocking pops: FIFO per key, the deadline heap's order, the ready list's
 * order and deduplication, removal (a closing client) freeing what it
 * held, per-slot counts, the narrowed request a waiter is served with, and
 * CLIENT UNBLOCK's verdicts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/slot.h"
#include "datanode/blocking.h"

static const uint8_t seed[16] = {1, 2,  3,  4,  5,  6,  7,  8,
                                 9, 10, 11, 12, 13, 14, 15, 16};

/* A waiter for owner on a NULL-terminated argv whose keys are
 * argv[first..last]. */
static struct narf_waiter *add(struct narf_block *b,
                               intptr_t owner,
                               const char **argv,
                               int first,
                               int last,
                               int numkeys_at,
                               uint64_t deadline)
{
	size_t len[32];
	int argc = 0;
	struct narf_waiter *w;

	while (argv[argc] != NULL) {
		len[argc] = strlen(argv[argc]);
		argc++;
	}
	w = narf_block_add(b, (void *)owner, NARF_TYPE_LIST, argc, argv, len,
	                   first, last, numkeys_at, deadline);
	assert_non_null(w);
	return w;
}

static void sig_key(struct narf_block *b, const char *key)
{
	narf_block_signal(b, narf_slot_of(key, strlen(key)), key, strlen(key));
}

/* The owners queued on key, oldest first, into out; returns how many. */
static int queue_of(struct narf_block *b,
                    const char *key,
                    intptr_t *out,
                    int max)
{
	struct narf_bkey *k;
	struct narf_wlink *l;
	int n = 0;

	k = (struct narf_bkey *)narf_dict_find(&b->keys, key, strlen(key));
	if (k == NULL)
		return 0;
	for (l = narf_block_queue(k); l != NULL && n < max; l = l->next)
		out[n++] = (intptr_t)l->w->owner;
	return n;
}

/* Waiters on one key queue in the order they came; removing one from the
 * middle keeps the others' order, and the oldest is first again after the
 * first leaves. */
static void test_fifo_per_key(void **state)
{
	struct narf_block b;
	const char *argv[] = {"blpop", "k", "0", NULL};
	struct narf_waiter *w[4];
	intptr_t q[8];

	(void)state;
	narf_block_init(&b, seed);
	for (int i = 0; i < 4; i++)
		w[i] = add(&b, i + 1, argv, 1, 1, 0, 0);
	assert_int_equal(narf_block_count(&b), 4);
	assert_int_equal(queue_of(&b, "k", q, 8), 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(q[i], i + 1);
	narf_block_remove(&b, w[1]);
	assert_int_equal(queue_of(&b, "k", q, 8), 3);
	assert_int_equal(q[0], 1);
	assert_int_equal(q[1], 3);
	assert_int_equal(q[2], 4);
	narf_block_remove(&b, w[0]);
	assert_int_equal(queue_of(&b, "k", q, 8), 2);
	assert_int_equal(q[0], 3);
	narf_block_close(&b);
}

/* One waiter on several keys (a repeated key counted once) is queued on
 * each, in each key's own order. */
static void test_several_keys(void **state)
{
	struct narf_block b;
	const char *a1[] = {"blpop", "a", "b", "a", "0", NULL};
	const char *a2[] = {"blpop", "b", "0", NULL};
	struct narf_waiter *w1;
	intptr_t q[8];

	(void)state;
	narf_block_init(&b, seed);
	add(&b, 2, a2, 1, 1, 0, 0);
	w1 = add(&b, 1, a1, 1, 3, 0, 0);
	assert_int_equal(w1->nlinks, 2);
	assert_int_equal(queue_of(&b, "a", q, 8), 1);
	assert_int_equal(q[0], 1);
	assert_int_equal(queue_of(&b, "b", q, 8), 2);
	assert_int_equal(q[0], 2);
	assert_int_equal(q[1], 1);
	assert_int_equal(b.links, 3);
	narf_block_close(&b);
}

/* Deadlines come out earliest first whatever the order they were added
 * in; equal ones in arrival order; waiters without one never; a removed
 * waiter's deadline is gone from the heap. */
static void test_deadline_heap(void **state)
{
	static const uint64_t dl[] = {50, 10, 0, 40, 10, 30, 20, 0, 60, 5};
	struct narf_block b;
	const char *argv[] = {"blpop", "k", "1", NULL};
	struct narf_waiter *w[10], *x;
	uint64_t last = 0;
	intptr_t last_owner = 0;
	int n = 0;

	(void)state;
	narf_block_init(&b, seed);
	for (int i = 0; i < 10; i++)
		w[i] = add(&b, i + 1, argv, 1, 1, 0, dl[i]);
	assert_int_equal(narf_block_next_deadline(&b), 5);
	narf_block_remove(&b, w[9]); /* the 5 */
	assert_int_equal(narf_block_next_deadline(&b), 10);
	narf_block_remove(&b, w[3]); /* the 40, from the middle */
	assert_null(narf_block_expired(&b, 9));
	while ((x = narf_block_expired(&b, 1000)) != NULL) {
		assert_true(x->deadline >= last);
		if (x->deadline == last)
			assert_true((intptr_t)x->owner > last_owner);
		assert_int_not_equal(x->deadline, 40);
		last = x->deadline;
		last_owner = (intptr_t)x->owner;
		narf_block_remove(&b, x);
		n++;
	}
	assert_int_equal(n, 6); /* 10 10 20 30 50 60 */
	assert_int_equal(narf_block_next_deadline(&b), 0);
	assert_int_equal(narf_block_count(&b), 2); /* the two forever */
	narf_block_close(&b);
}

/* A heap of many random deadlines with random removals pops in order. */
static void test_deadline_heap_random(void **state)
{
	struct narf_block b;
	const char *argv[] = {"blpop", "k", "1", NULL};
	struct narf_waiter *w[500];
	uint64_t last = 0;
	unsigned seedv = 7;
	int left = 0;

	(void)state;
	narf_block_init(&b, seed);
	for (int i = 0; i < 500; i++)
		w[i] = add(&b, i + 1, argv, 1, 1, 0,
		           1 + (uint64_t)(rand_r(&seedv) % 1000));
	for (int i = 0; i < 500; i += 3)
		narf_block_remove(&b, w[i]);
	for (struct narf_waiter *x; (x = narf_block_expired(&b, 5000));) {
		assert_true(x->deadline >= last);
		last = x->deadline;
		narf_block_remove(&b, x);
		left++;
	}
	assert_int_equal(left, 500 - 167);
	assert_int_equal(narf_block_count(&b), 0);
	narf_block_close(&b);
}

/* Signalled keys are served in signal order, each once however often it
 * was signalled; a key nobody waits for is not queued; a key taken off the
 * list may be signalled again while pinned. */
static void test_ready_list(void **state)
{
	struct narf_block b;
	const char *a[] = {"blpop", "a", "b", "c", "0", NULL};
	struct narf_bkey *k;

	(void)state;
	narf_block_init(&b, seed);
	assert_false(narf_block_any_ready(&b));
	add(&b, 1, a, 1, 3, 0, 0);
	sig_key(&b, "nobody");
	assert_false(narf_block_any_ready(&b));
	sig_key(&b, "c");
	sig_key(&b, "a");
	sig_key(&b, "c");
	sig_key(&b, "b");
	sig_key(&b, "a");
	k = narf_block_take_ready(&b);
	assert_memory_equal(k->key, "c", 1);
	sig_key(&b, "c"); /* while pinned: queued again, after b */
	narf_block_unpin(&b, k);
	k = narf_block_take_ready(&b);
	assert_memory_equal(k->key, "a", 1);
	narf_block_unpin(&b, k);
	k = narf_block_take_ready(&b);
	assert_memory_equal(k->key, "b", 1);
	narf_block_unpin(&b, k);
	k = narf_block_take_ready(&b);
	assert_memory_equal(k->key, "c", 1);
	narf_block_unpin(&b, k);
	assert_null(narf_block_take_ready(&b));
	narf_block_close(&b);
}

/* Removing a waiter (its client closed) takes it off every key, the heap
 * and the counts; a key left without waiters is forgotten, unless it is on
 * the ready list or pinned, until that ends; a later signal of it then
 * queues nothing. */
static void test_remove_on_close(void **state)
{
	struct narf_block b;
	const char *a[] = {"blpop", "x", "y", "5", NULL};
	unsigned sx = narf_slot_of("x", 1), sy = narf_slot_of("y", 1);
	struct narf_waiter *w;
	struct narf_bkey *k;

	(void)state;
	narf_block_init(&b, seed);
	w = add(&b, 1, a, 1, 2, 0, 5000);
	assert_int_equal(narf_block_slot_links(&b, sx), sx == sy ? 2u : 1u);
	sig_key(&b, "y");
	sig_key(&b, "x");
	k = narf_block_take_ready(&b); /* y, pinned */
	narf_block_remove(&b, w);
	assert_int_equal(narf_block_count(&b), 0);
	assert_int_equal(b.links, 0);
	assert_int_equal(narf_block_slot_links(&b, sx), 0);
	assert_int_equal(narf_block_slot_links(&b, sy), 0);
	assert_int_equal(narf_block_next_deadline(&b), 0);
	assert_null(narf_block_queue(k));
	assert_int_equal(narf_dict_count(&b.keys), 2); /* y pinned, x ready */
	narf_block_unpin(&b, k);
	k = narf_block_take_ready(&b); /* x */
	assert_non_null(k);
	narf_block_unpin(&b, k);
	assert_int_equal(narf_dict_count(&b.keys), 0);
	sig_key(&b, "x");
	assert_false(narf_block_any_ready(&b));
	narf_block_close(&b);
}

/* Per-slot counts follow adds and removes, key by key, so that a push to a
 * slot nobody waits in costs only the count's load. */
static void test_slot_counts(void **state)
{
	struct narf_block b;
	const char *a1[] = {"blpop", "{s}1", "{s}2", "0", NULL};
	const char *a2[] = {"brpop", "{s}1", "0", NULL};
	const char *a3[] = {"blpop", "{t}1", "0", NULL};
	unsigned s = narf_slot_of("{s}", 3), t = narf_slot_of("{t}", 3);
	struct narf_waiter *w1, *w2, *w3;

	(void)state;
	narf_block_init(&b, seed);
	assert_int_equal(narf_block_slot_links(&b, s), 0);
	w1 = add(&b, 1, a1, 1, 2, 0, 0);
	w2 = add(&b, 2, a2, 1, 1, 0, 0);
	w3 = add(&b, 3, a3, 1, 1, 0, 0);
	assert_int_equal(narf_block_slot_links(&b, s), 3);
	assert_int_equal(narf_block_slot_links(&b, t), 1);
	narf_block_remove(&b, w1);
	assert_int_equal(narf_block_slot_links(&b, s), 1);
	narf_block_remove(&b, w3);
	assert_int_equal(narf_block_slot_links(&b, t), 0);
	sig_key(&b, "{t}1");
	assert_false(narf_block_any_ready(&b));
	narf_block_remove(&b, w2);
	assert_int_equal(narf_block_slot_links(&b, s), 0);
	narf_block_close(&b);
}

/* The request a waiter is served with names only the key being served:
 * BLPOP's key run shrinks to it, BLMPOP's count becomes 1, BLMOVE's one
 * key stays; the arguments are the waiter's own copy. */
static void test_narrowed_argv(void **state)
{
	struct narf_block b;
	const char *a1[] = {"blpop", "a", "b", "c", "0", NULL};
	const char *a2[] = {"blmpop", "0",    "3",     "a", "b",
	                    "c",      "LEFT", "COUNT", "2", NULL};
	const char *a3[] = {"blmove", "a", "b", "LEFT", "RIGHT", "0", NULL};
	const char *argv[16];
	size_t len[16];
	struct narf_waiter *w;
	struct narf_bkey *k;
	int n;

	(void)state;
	narf_block_init(&b, seed);
	w = add(&b, 1, a1, 1, 3, 0, 0);
	k = w->links[1].k; /* b */
	n = narf_waiter_argv(w, k, argv, len);
	assert_int_equal(n, 3);
	assert_string_equal(argv[0], "blpop");
	assert_string_equal(argv[1], "b");
	assert_int_equal(len[1], 1);
	assert_string_equal(argv[2], "0");
	w = add(&b, 2, a2, 3, 5, 2, 0);
	n = narf_waiter_argv(w, w->links[2].k, argv, len);
	assert_int_equal(n, 7);
	assert_string_equal(argv[2], "1");
	assert_string_equal(argv[3], "c");
	assert_string_equal(argv[4], "LEFT");
	assert_string_equal(argv[6], "2");
	w = add(&b, 3, a3, 1, 1, 0, 0);
	n = narf_waiter_argv(w, w->links[0].k, argv, len);
	assert_int_equal(n, 6);
	for (int i = 0; i < 6; i++)
		assert_string_equal(argv[i], a3[i]);
	assert_ptr_not_equal(argv[0], a3[0]);
	narf_block_close(&b);
}

/* CLIENT UNBLOCK: the verdict goes to the named client's waiter only,
 * once; narf_block_unblocked finds it until it is removed, and removing
 * it (answered, or closed) clears the count. */
static void test_unblock_verdict(void **state)
{
	struct narf_block b;
	const char *argv[] = {"blpop", "k", "0", NULL};
	struct narf_waiter *w1, *w2;

	(void)state;
	narf_block_init(&b, seed);
	w1 = add(&b, 1, argv, 1, 1, 0, 0);
	w2 = add(&b, 2, argv, 1, 1, 0, 0);
	w1->client = 11;
	w2->client = 12;
	assert_null(narf_block_unblocked(&b));
	assert_false(narf_block_unblock(&b, 13, NARF_UNBLOCK_TIMEOUT));
	assert_true(narf_block_unblock(&b, 12, NARF_UNBLOCK_ERROR));
	assert_false(narf_block_unblock(&b, 12, NARF_UNBLOCK_TIMEOUT));
	assert_ptr_equal(narf_block_unblocked(&b), w2);
	assert_int_equal(w2->unblock, NARF_UNBLOCK_ERROR);
	narf_block_remove(&b, w2);
	assert_null(narf_block_unblocked(&b));
	assert_int_equal(b.unblocked, 0);
	assert_int_equal(w1->unblock, NARF_UNBLOCK_NONE);
	narf_block_close(&b);
}

/* NARF.UNBLOCK: a peer's waiter is found by its link's client id and
 * its token together, never another link's under the same token. */
static void test_find_token(void **state)
{
	struct narf_block b;
	const char *argv[] = {"blpop", "k", "0", NULL};
	struct narf_waiter *w1, *w2, *w3;

	(void)state;
	narf_block_init(&b, seed);
	w1 = add(&b, 1, argv, 1, 1, 0, 0);
	w2 = add(&b, 2, argv, 1, 1, 0, 0);
	w3 = add(&b, 3, argv, 1, 1, 0, 0);
	w1->client = 7;
	w1->token = 5;
	w2->client = 8;
	w2->token = 5;
	w3->client = 7; /* a client of this node: token 0 */
	assert_ptr_equal(narf_block_find_token(&b, 7, 5), w1);
	assert_ptr_equal(narf_block_find_token(&b, 8, 5), w2);
	assert_null(narf_block_find_token(&b, 7, 6));
	assert_null(narf_block_find_token(&b, 9, 5));
	narf_block_remove(&b, w1);
	assert_null(narf_block_find_token(&b, 7, 5));
	narf_block_close(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_fifo_per_key),
	        cmocka_unit_test(test_several_keys),
	        cmocka_unit_test(test_deadline_heap),
	        cmocka_unit_test(test_deadline_heap_random),
	        cmocka_unit_test(test_ready_list),
	        cmocka_unit_test(test_remove_on_close),
	        cmocka_unit_test(test_slot_counts),
	        cmocka_unit_test(test_narrowed_argv),
	        cmocka_unit_test(test_unblock_verdict),
	        cmocka_unit_test(test_find_token),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
