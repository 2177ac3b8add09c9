/*
 * The order of coordinator membership changes: see members.h. Pure: no
 * I/O, no libraft, no clock.
 */
#include "members.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const struct narf_map_coord *
narf_members_find(const struct narf_map_coord *table, unsigned n, uint64_t id)
{
	for (unsigned i = 0; i < n; i++)
		if (table[i].id == id)
			return &table[i];
	return NULL;
}

static int conf_index(const struct narf_raft_member *conf,
                      unsigned n,
                      uint64_t id)
{
	for (unsigned i = 0; i < n; i++)
		if (conf[i].id == id)
			return (int)i;
	return -1;
}

static void plan_set(struct narf_members_plan *out,
                     enum narf_members_step step,
                     uint64_t id,
                     const char *fmt,
                     ...) __attribute__((format(printf, 4, 5)));

static void plan_set(struct narf_members_plan *out,
                     enum narf_members_step step,
                     uint64_t id,
                     const char *fmt,
                     ...)
{
	va_list ap;

	out->step = step;
	out->id = id;
	va_start(ap, fmt);
	vsnprintf(out->why, sizeof(out->why), fmt, ap);
	va_end(ap);
}

/* Step 4 for the leader itself: a listed voter that answers takes over. */
static void plan_transfer(const struct narf_map_coord *table,
                          unsigned n_table,
                          const struct narf_raft_member *conf,
                          const enum narf_reach *reach,
                          unsigned n_conf,
                          uint64_t self,
                          struct narf_members_plan *out)
{
	for (unsigned i = 0; i < n_conf; i++)
		if (conf[i].id != self && conf[i].role == NARF_RAFT_VOTER &&
		    reach[i] == NARF_REACH_YES &&
		    narf_members_find(table, n_table, conf[i].id) != NULL) {
			plan_set(out, NARF_STEP_TRANSFER, conf[i].id,
			         "hand leadership to %llu before this "
			         "member (%llu) is removed",
			         (unsigned long long)conf[i].id,
			         (unsigned long long)self);
			return;
		}
	plan_set(out, NARF_STEP_WAIT, self,
	         "this leader (%llu) is to be removed, but no listed voter "
	         "answers to take over",
	         (unsigned long long)self);
}

void narf_members_plan(const struct narf_map_coord *table,
                       unsigned n_table,
                       const struct narf_raft_member *conf,
                       const enum narf_reach *reach,
                       unsigned n_conf,
                       uint64_t self,
                       struct narf_members_plan *out)
{
	memset(out, 0, sizeof(*out));
	/* 1. Dead members first; and one whose address a listed member
	 * takes over (libraft refuses two servers at one address). */
	for (unsigned i = 0; i < n_conf; i++) {
		bool listed =
		        narf_members_find(table, n_table, conf[i].id) != NULL;
		bool taken = false;

		for (unsigned t = 0; !listed && t < n_table; t++)
			taken |= conf_index(conf, n_conf, table[t].id) < 0 &&
			         strcmp(table[t].raft, conf[i].raft) == 0;
		if (listed || conf[i].id == self)
			continue;
		if (reach[i] == NARF_REACH_NO || taken) {
			plan_set(out, NARF_STEP_REMOVE, conf[i].id,
			         "remove %llu (%s), %s",
			         (unsigned long long)conf[i].id, conf[i].raft,
			         taken ? "whose address a new member takes"
			               : "unlisted and silent, before adding");
			return;
		}
		if (reach[i] == NARF_REACH_UNKNOWN) {
			plan_set(out, NARF_STEP_WAIT, conf[i].id,
			         "waiting to hear from %llu (%s) to choose "
			         "the order of the changes",
			         (unsigned long long)conf[i].id, conf[i].raft);
			return;
		}
	}
	/* 2. and 3. */
	for (unsigned t = 0; t < n_table; t++) {
		int i = conf_index(conf, n_conf, table[t].id);

		if (i < 0) {
			plan_set(out, NARF_STEP_ADD, table[t].id,
			         "add %llu at %s as a spare",
			         (unsigned long long)table[t].id,
			         table[t].raft);
			snprintf(out->raft, sizeof(out->raft), "%s",
			         table[t].raft);
			return;
		}
		if (conf[i].role != NARF_RAFT_VOTER) {
			plan_set(out, NARF_STEP_PROMOTE, table[t].id,
			         "promote %llu (%s) to voter once caught up",
			         (unsigned long long)table[t].id,
			         table[t].raft);
			return;
		}
	}
	/* 4. */
	for (unsigned i = 0; i < n_conf; i++) {
		if (narf_members_find(table, n_table, conf[i].id) != NULL)
			continue;
		if (conf[i].id == self) {
			plan_transfer(table, n_table, conf, reach, n_conf, self,
			              out);
			return;
		}
		plan_set(out, NARF_STEP_REMOVE, conf[i].id,
		         "remove %llu (%s), replaced or unlisted",
		         (unsigned long long)conf[i].id, conf[i].raft);
		return;
	}
	plan_set(out, NARF_STEP_NONE, 0, "the configuration matches the table");
}
