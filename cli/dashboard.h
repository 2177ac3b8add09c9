/*
 * The human form of `cachecli status` (dashboard.c): drawn from a status
 * object, printed on stdout with narf_cli_sty's colours.
 */
#ifndef NARF_CLI_DASHBOARD_H
#define NARF_CLI_DASHBOARD_H

#include <jansson.h>

#include "cli.h"

/* The whole dashboard: header, coordinators, data nodes, slots, warnings. */
void narf_cli_print_dashboard(const json_t *st);

/* The coordinators table alone (when no leader answers, status.c draws
 * what the members said to their pings). */
void narf_cli_print_coordinators(const json_t *st);

/* Warning lines about each part; each returns how many it printed. */
int narf_cli_warn_coordinators(const json_t *st);
int narf_cli_warn_nodes(const json_t *st);
int narf_cli_warn_slots(const json_t *st);

#endif /* NARF_CLI_DASHBOARD_H */
