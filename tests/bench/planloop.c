/*
 * narf-planloop: the leader's rebalance loop in miniature, without
 * processes (docs/scale.md, "After, second round").
 *
 * --first nodes join an empty map (laid out at once, no data), then
 * --per-round more join each round until --nodes are in. Each round the
 * leader plans through its cache (narf_plan_next, plan_cache.c) and
 * commits the step; then each (primary, replica) pair with a replica
 * outside the ISR syncs with probability --sync-pct percent (an `isr add`
 * for all of that pair's slots), and each primary with moving slots hands
 * them over with probability --handoff-pct percent. The loop ends when a
 * plan finds nothing to change, every replica is in sync and no move is
 * pending, or after --rounds rounds.
 *
 * It prints the rounds, the entries committed, the copies placed and
 * dropped, each slot's primary changes against those needed, the slot that
 * changed primary most and its primaries in turn, and the planning time:
 * what shows a planner that sends primaries back and forth.
 * Deterministic for a given --seed. Not installed.
 */
#include <getopt.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/flags.h"
#include "common/map.h"
#include "coordinator/planner.h"
#include "tests/unit/planner_fixture.h"

#define HIST 64 /* primaries remembered per slot */

static struct narf_slot step[NARF_SLOTS];
static unsigned changes[NARF_SLOTS];
static uint32_t hist[NARF_SLOTS][HIST];

struct opts {
	unsigned nodes, first, per_round, sync_pct, handoff_pct, rounds;
	unsigned seed;
};

struct counts {
	unsigned long isr, handoffs, assigns, placed, dropped, dropped_syncing;
	unsigned long step_slots;
	double plan_ms, plan_max_ms;
};

/* Syncs: each (primary, replica) pair outside an ISR, with probability
 * pct percent, reports all of its slots in one `isr add`. */
static unsigned sync_pairs(struct narf_map *m, unsigned pct)
{
	static bool add[NARF_SLOTS];
	unsigned entries = 0;

	for (unsigned i = 0; i < m->n_nodes; i++) {
		for (unsigned k = 0; k < m->n_nodes; k++) {
			uint32_t p = m->nodes[i].id, r = m->nodes[k].id;
			bool any = false;

			if (rnd(100) >= pct)
				continue;
			for (unsigned s = 0; s < NARF_SLOTS; s++) {
				const struct narf_slot *x = &m->slots[s];

				add[s] = x->primary == p && x->move == 0 &&
				         is_replica(x, r) && !in_isr(x, r);
				any = any || add[s];
			}
			if (any) {
				apply_ok(m, narf_cmd_isr(p, r, add, 0));
				entries++;
			}
		}
	}
	return entries;
}

/* Handoffs: each primary with moving slots, with probability pct percent,
 * hands all of them over. */
static unsigned hand_over(struct narf_map *m, unsigned pct)
{
	static bool slots[NARF_SLOTS];
	unsigned entries = 0;

	for (unsigned i = 0; i < m->n_nodes; i++) {
		uint32_t p = m->nodes[i].id;
		bool any = false;

		if (rnd(100) >= pct)
			continue;
		for (unsigned s = 0; s < NARF_SLOTS; s++) {
			slots[s] = m->slots[s].primary == p &&
			           m->slots[s].move != 0;
			any = any || slots[s];
		}
		if (any) {
			apply_ok(m, narf_cmd_handoff(p, slots));
			entries++;
		}
	}
	return entries;
}

/* Note each slot's primary when it differs from the last one noted. */
static void record(const struct narf_map *m)
{
	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		unsigned k = changes[s];
		uint32_t p = m->slots[s].primary;

		if (k == 0 || hist[s][(k - 1) % HIST] != p) {
			hist[s][k % HIST] = p;
			changes[s]++;
		}
	}
}

/* Copies the step places and drops against the map. */
static void count_step(const struct narf_map *m, struct counts *c)
{
	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		const struct narf_slot *x = &m->slots[s], *y = &step[s];

		c->step_slots += !narf_slot_equal(x, y);
		if (x->primary != 0 && !narf_slot_has(y, x->primary))
			c->dropped++;
		for (unsigned j = 0; j < x->n_replicas; j++) {
			if (narf_slot_has(y, x->replicas[j]))
				continue;
			c->dropped++;
			c->dropped_syncing += !in_isr(x, x->replicas[j]);
		}
		if (y->primary != 0 && !narf_slot_has(x, y->primary))
			c->placed++;
		for (unsigned j = 0; j < y->n_replicas; j++)
			c->placed += !narf_slot_has(x, y->replicas[j]);
	}
}

static bool settled(const struct narf_map *m)
{
	for (unsigned s = 0; s < NARF_SLOTS; s++)
		if (m->slots[s].n_isr != m->slots[s].n_replicas ||
		    m->slots[s].move != 0)
			return false;
	return true;
}

static void report(const struct narf_map *m,
                   const struct narf_plan_cache *pc,
                   const struct counts *c,
                   unsigned rounds,
                   bool done)
{
	unsigned long total = 0, needed = 0;
	unsigned worst = 0;

	printf("%s after %u rounds (epoch %llu): %lu assigns (%lu slot "
	       "steps), %lu isr adds, %lu handoffs; %lu copies placed, %lu "
	       "dropped (%lu of them still syncing); %llu plans, %llu "
	       "refreshes; planning %.1f ms per round, max %.1f\n",
	       done ? "settled" : "NOT settled", rounds,
	       (unsigned long long)m->epoch, c->assigns, c->step_slots, c->isr,
	       c->handoffs, c->placed, c->dropped, c->dropped_syncing,
	       (unsigned long long)pc->plans, (unsigned long long)pc->refreshes,
	       c->plan_ms / (rounds + 1), c->plan_max_ms);
	for (unsigned s = 0; s < NARF_SLOTS; s++) {
		total += changes[s] - 1;
		needed += hist[s][0] != m->slots[s].primary;
		if (changes[s] > changes[worst])
			worst = s;
	}
	printf("primary changes %lu for %lu slots whose primary differs from "
	       "round 0's; slot %u changed most (%u):",
	       total, needed, worst, changes[worst] - 1);
	for (unsigned k = 0; k < changes[worst] && k < HIST; k++)
		printf(" %u", hist[worst][k]);
	printf("\n");
}

static unsigned number(const char *flag,
                       const char *v,
                       unsigned lo,
                       unsigned hi)
{
	uint64_t x;

	if (narf_parse_u64(v, lo, hi, &x) != 0) {
		fprintf(stderr, "narf-planloop: %s must be %u..%u, not '%s'\n",
		        flag, lo, hi, v);
		exit(2);
	}
	return (unsigned)x;
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: narf-planloop [options]\n"
	        "  --nodes N         nodes in the end (default 100, 1..1000)\n"
	        "  --first N         nodes at round 0 (default 20)\n"
	        "  --per-round N     nodes joining per round after (default "
	        "N - first)\n"
	        "  --sync-pct P      chance a pair syncs per round (default "
	        "30)\n"
	        "  --handoff-pct P   chance a primary hands over per round "
	        "(default 50)\n"
	        "  --rounds N        give up after N rounds (default 2000)\n"
	        "  --seed N          random seed (default 42)\n"
	        "  --help            this text\n");
}

static void parse(int argc, char **argv, struct opts *o)
{
	static const struct option longs[] = {{"nodes", 1, NULL, 'n'},
	                                      {"first", 1, NULL, 'f'},
	                                      {"per-round", 1, NULL, 'p'},
	                                      {"sync-pct", 1, NULL, 's'},
	                                      {"handoff-pct", 1, NULL, 'o'},
	                                      {"rounds", 1, NULL, 'r'},
	                                      {"seed", 1, NULL, 'e'},
	                                      {"help", 0, NULL, 'h'},
	                                      {NULL, 0, NULL, 0}};
	int c;

	*o = (struct opts){100, 20, 0, 30, 50, 2000, 42};
	while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		switch (c) {
		case 'n':
			o->nodes = number("--nodes", optarg, 1, 1000);
			break;
		case 'f':
			o->first = number("--first", optarg, 1, 1000);
			break;
		case 'p':
			o->per_round = number("--per-round", optarg, 1, 1000);
			break;
		case 's':
			o->sync_pct = number("--sync-pct", optarg, 1, 100);
			break;
		case 'o':
			o->handoff_pct =
			        number("--handoff-pct", optarg, 1, 100);
			break;
		case 'r':
			o->rounds = number("--rounds", optarg, 1, 1000000);
			break;
		case 'e':
			o->seed = number("--seed", optarg, 0, ~0u);
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "narf-planloop: unexpected argument '%s'\n",
		        argv[optind]);
		exit(2);
	}
	if (o->first > o->nodes)
		o->first = o->nodes;
	if (o->per_round == 0)
		o->per_round =
		        o->nodes - o->first > 0 ? o->nodes - o->first : 1;
}

int main(int argc, char **argv)
{
	struct narf_plan_cache pc;
	struct counts c;
	struct narf_map m;
	struct opts o;
	unsigned joined = 0, round;
	bool done = false;

	parse(argc, argv, &o);
	memset(&pc, 0, sizeof(pc));
	memset(&c, 0, sizeof(c));
	rnd_seed(o.seed);
	map_with_nodes(&m, 2, 0);
	for (round = 0; round < o.rounds && !done; round++) {
		unsigned staged, changed,
		        n = round == 0 ? o.first : o.per_round;
		double t0;

		for (unsigned i = 0; i < n && joined < o.nodes; i++, joined++)
			add_node(&m, NARF_NODE_UP);
		t0 = now_ms();
		changed = narf_plan_next(&m, target, step, &pc, &staged);
		t0 = now_ms() - t0;
		c.plan_ms += t0;
		c.plan_max_ms = t0 > c.plan_max_ms ? t0 : c.plan_max_ms;
		if (changed == 0 && joined == o.nodes && settled(&m)) {
			done = true;
			break;
		}
		if (staged > 0) {
			if (round > 0) /* round 0 lays out an empty map */
				count_step(&m, &c);
			carry_out(&m, step);
			c.assigns++;
		}
		record(&m);
		c.isr += sync_pairs(&m, o.sync_pct);
		c.handoffs += hand_over(&m, o.handoff_pct);
		record(&m);
	}
	report(&m, &pc, &c, round, done);
	narf_map_close(&m);
	return done ? 0 : 1;
}
