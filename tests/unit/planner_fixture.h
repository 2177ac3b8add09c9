/*
 * The planner tests' fixture (test_planner.c: narf_plan(); test_stage.c:
 * narf_plan_step()): maps built by direct edits and by narf_map_apply(),
 * targets carried out as the leader commits them, and the checks every
 * layout must pass. Test code only: the names are plain, as in a test file.
 */
#ifndef NARF_TEST_PLANNER_FIXTURE_H
#define NARF_TEST_PLANNER_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "common/map.h"

/* The brief: well under 100 ms for 16384 slots and up to 64 nodes. */
#define PLAN_MS_LIMIT 100.0

/* Slots with a pending move at once: as the leader allows, unless a test
 * says otherwise. */
extern unsigned max_moves;
/* The target the last plan wrote. */
extern struct narf_slot target[NARF_SLOTS];

uint32_t add_node(struct narf_map *m, enum narf_node_state st);
void map_with_nodes(struct narf_map *m, unsigned replication, unsigned n_up);
void apply_ok(struct narf_map *m, json_t *cmd);
void set_down(struct narf_map *m, uint32_t id);
void set_leaving(struct narf_map *m, uint32_t id);
void carry_out(struct narf_map *m, const struct narf_slot *t);
bool node_up(const struct narf_map *m, uint32_t id);
bool live(const struct narf_map *m, uint32_t id);
unsigned n_up(const struct narf_map *m);
void check_target(const struct narf_map *m, const struct narf_slot *t);
unsigned new_copies(const struct narf_map *m, const struct narf_slot *t);
unsigned dropped_live_copies(const struct narf_map *m,
                             const struct narf_slot *t);
bool in_isr(const struct narf_slot *x, uint32_t id);
bool is_replica(const struct narf_slot *x, uint32_t id);
void check_isr_and_epochs(const struct narf_map *m, const struct narf_slot *t);
unsigned count_ranges(const struct narf_slot *t);
double now_ms(void);
unsigned plan_apply(struct narf_map *m);
unsigned ceil_div(unsigned a, unsigned b);
unsigned rnd(unsigned n);
/* Restart rnd()'s sequence from a seed (its own per seed). */
void rnd_seed(uint64_t seed);
uint32_t random_node(const struct narf_map *m, enum narf_node_state st);

#endif /* NARF_TEST_PLANNER_FIXTURE_H */
