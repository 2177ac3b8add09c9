/*
 * The map tests' fixture (test_map.c: the commands; test_map_safety.c:
 * settings and lost nodes): maps on the heap, commands applied from JSON
 * text or from the narf_cmd_* builders, and nodes joined and brought up.
 * Test code only: the names are plain, as in a test file.
 */
#ifndef NARF_TEST_MAP_FIXTURE_H
#define NARF_TEST_MAP_FIXTURE_H

#include <stdint.h>

#include <jansson.h>

#include "common/map.h"

/* A fresh default map on the heap (it is ~1 MiB); free_map() frees it. */
struct narf_map *new_map(void);
void free_map(struct narf_map *m);
/* Apply a command given as JSON text, or built (the reference is stolen);
 * both return narf_map_apply()'s error code. */
int apply_text(struct narf_map *m,
               const char *text,
               struct narf_map_result *res);
int apply_cmd(struct narf_map *m, json_t *cmd, struct narf_map_result *res);
/* Join a node at 127.0.0.1:port and bring it up; returns its id. */
uint32_t add_up_node(struct narf_map *m, int port);

#endif /* NARF_TEST_MAP_FIXTURE_H */
