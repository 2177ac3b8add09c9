/*
 * cachecli's data path: one Redis-protocol request to the cluster.
 */
#ifndef NARF_CLI_DATA_H
#define NARF_CLI_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/*
 * Fetch the map from the coordinators (coords: "host:port,..."), send the
 * request argv[0..argc) (argv[1] is the key that picks the node) to the
 * key's primary, else to any other up node (they forward), and read one
 * whole reply into reply, all within timeout_ms. Returns 0 or a NARF_E*
 * code with errmsg (NARF_ERRMSG_SIZE bytes) saying what failed:
 * NARF_ECONNECT/NARF_ETIMEOUT when nothing answered.
 */
int narf_cli_data(const char *coords,
                  uint64_t timeout_ms,
                  int argc,
                  const char *const *argv,
                  const size_t *argvlen,
                  struct narf_buf *reply,
                  char *errmsg);

#endif /* NARF_CLI_DATA_H */
