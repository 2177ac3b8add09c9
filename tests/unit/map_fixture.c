/*
 * The map tests' fixture: see map_fixture.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/map.h"
#include "map_fixture.h"

/* The map is ~1 MiB: tests keep it on the heap. */
struct narf_map *new_map(void)
{
	struct narf_map *m = malloc(sizeof(*m));

	assert_non_null(m);
	narf_map_init(m, NULL);
	return m;
}

void free_map(struct narf_map *m)
{
	narf_map_close(m);
	free(m);
}

/* Apply a command given as JSON text; returns the error code. */
int apply_text(struct narf_map *m,
               const char *text,
               struct narf_map_result *res)
{
	json_error_t jerr;
	json_t *cmd = json_loads(text, 0, &jerr);
	int rv;

	assert_non_null(cmd);
	rv = narf_map_apply(m, cmd, res);
	json_decref(cmd);
	return rv;
}

int apply_cmd(struct narf_map *m, json_t *cmd, struct narf_map_result *res)
{
	int rv;

	assert_non_null(cmd);
	rv = narf_map_apply(m, cmd, res);
	json_decref(cmd);
	return rv;
}

/* Join a node and bring it up; returns its id. */
uint32_t add_up_node(struct narf_map *m, int port)
{
	struct narf_map_result res;
	char addr[32], boot[32];

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	snprintf(boot, sizeof(boot), "boot-%d", port);
	assert_int_equal(apply_cmd(m, narf_cmd_node_join(addr, boot), &res), 0);
	assert_int_equal(
	        apply_cmd(m, narf_cmd_node_state(res.node, NARF_NODE_UP), &res),
	        0);
	return res.node;
}
