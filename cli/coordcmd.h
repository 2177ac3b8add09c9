/*
 * cachecli coord ...: coordinator membership from the command line
 * (docs/coordinators.md).
 */
#ifndef NARF_CLI_COORDCMD_H
#define NARF_CLI_COORDCMD_H

#include <stdint.h>

/*
 * Run `cachecli coord SUBCOMMAND ...`: args[0] is "coord", nargs counts
 * it. coords is the --coord list (borrowed), timeout_ms bounds the whole
 * command, including the wait for a change to finish; json prints the
 * leader's `coords` object instead of a summary. Returns the exit code:
 * 0 done, 1 the cluster refused or did not finish in time, 2 usage (bad
 * arguments exit at once), 3 no coordinator reachable.
 */
int narf_cli_coord(const char *coords,
                   uint64_t timeout_ms,
                   int json,
                   int nargs,
                   char **args);

#endif /* NARF_CLI_COORDCMD_H */
