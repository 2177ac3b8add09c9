/*
 * Which arguments of a request are keys (slice 4 of
 * docs/datatypes-plan.md).
 *
 * Most commands name their keys by position, as Redis's legacy
 * (first_key, last_key, key_step) triple that COMMAND INFO reports: GET's
 * key is argument 1, MSET's are 1, 3, 5.., BLPOP's every argument but the
 * last (last_key -2). Commands such as ZUNIONSTORE, SINTERCARD, LMPOP and
 * BLMPOP carry a count instead ("movable keys"): the keys are the `numkeys`
 * arguments after the one at position NARF_CMD_NUMKEYS_AT (engine.h). A command
 * has either or both (ZUNIONSTORE: a destination at 1, then numkeys at 2).
 *
 * Routing, the key size limit and the blocking machinery all walk the keys
 * through this one iterator, so a new command only has to describe them.
 * The iterator never fails: a count that is not a positive integer or that
 * runs past the arguments yields no key from the count (the command itself
 * then answers Redis's error).
 */
#ifndef NARF_KEYSPEC_H
#define NARF_KEYSPEC_H

#include <stdbool.h>
#include <stddef.h>

struct narf_command;

struct narf_keyiter {
	int next;  /* next fixed-position key, or the next counted one */
	int last;  /* last index of the current run */
	int step;  /* distance between keys of the current run */
	int count; /* counted keys: [count_first, count_last], 0 when none */
	int count_first;
	int count_last;
};

/* Start walking the keys of cmd in argv[0..argc). */
void narf_keys_begin(struct narf_keyiter *it,
                     const struct narf_command *cmd,
                     int argc,
                     const char **argv,
                     const size_t *argvlen);
/* The index of the next key in argv, or -1 after the last. */
int narf_keys_next(struct narf_keyiter *it);
/* Does cmd take keys at all (so it routes by them)? */
bool narf_keys_any(const struct narf_command *cmd);

#endif /* NARF_KEYSPEC_H */
