/*
 * libFuzzer target for the cluster map's JSON decoders (common/map_json.c)
 * and the Raft log entries the FSM applies to a map (common/map.c).
 *
 * Input layout: lines. The first is a map in its JSON form
 * (docs/protocol.md, "The cluster map"), decoded by narf_map_from_json()
 * as a data node, cachecli or a coordinator restoring a snapshot decodes
 * it. Every further line is a log entry applied to the decoded map by
 * narf_map_apply(), as the FSM does (docs/protocol.md, "Raft log
 * entries"), which runs map_json.c's other decoders: settings,
 * coordinators, slot ranges and [lo,hi] lists. A line that is not JSON is
 * skipped.
 *
 * Besides memory safety (ASan, UBSan) it checks what readers of a map rely
 * on (map_check.h): a refused map leaves the target untouched; a decoded
 * map is well formed and survives its JSON form (encode, decode: the same
 * map; encode again: the same JSON). An entry returns a known error code;
 * a refused one leaves the map as it was, epoch included; an applied one
 * moves the epoch by one exactly when it changed the map (data nodes
 * fetch a map only when the epoch moved) and leaves it well formed; the
 * same entries applied to a copy give the same map (every member must end
 * with the same map); the last map survives its JSON form too. Built by
 * tests/fuzz/run.sh, not by meson.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "common/errors.h"
#include "common/map.h"
#include "map_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The next line of [*pos, end) as a JSON value (a new reference), or
 * NULL when it is not JSON; *pos moves past the line. */
static json_t *next_line(const char **pos, const char *end)
{
	const char *start = *pos;
	const char *nl = memchr(start, '\n', (size_t)(end - start));
	size_t len = nl ? (size_t)(nl - start) : (size_t)(end - start);
	json_error_t jerr;

	*pos = nl ? nl + 1 : end;
	return json_loadb(start, len, JSON_DECODE_ANY, &jerr);
}

/* Apply cmd to m and to its twin, checking the entry's contract. */
static void apply(struct narf_map *m,
                  struct narf_map *twin,
                  struct narf_map *before,
                  const json_t *cmd)
{
	struct narf_map_result res, res2;
	int rv, rv2;

	check(narf_map_copy(before, m) == 0);
	rv = narf_map_apply(m, cmd, &res);
	check(rv == res.err && rv >= 0 && rv < NARF_E_COUNT);
	if (rv != 0) {
		check(res.errmsg[0] != '\0');
		check(maps_equal(m, before));
	} else {
		check(m->epoch == before->epoch + (res.changed ? 1 : 0));
		if (!res.changed)
			check(maps_equal(m, before));
		check_map(m);
	}
	rv2 = narf_map_apply(twin, cmd, &res2);
	check(rv2 == rv && res2.changed == res.changed &&
	      res2.node == res.node && strcmp(res2.errmsg, res.errmsg) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct narf_map *m, *twin, *before, *empty;
	const char *pos = (const char *)data, *end = pos + size;
	char errmsg[NARF_ERRMSG_SIZE];
	json_t *obj;
	int rv;

	if (m == NULL) {
		m = new_map();
		twin = new_map();
		before = new_map();
		empty = new_map();
	}
	narf_map_close(m);
	narf_map_init(m, NULL);
	obj = next_line(&pos, end);
	if (obj == NULL)
		return 0;
	errmsg[0] = '\0';
	rv = narf_map_from_json(m, obj, errmsg);
	json_decref(obj);
	check(rv == 0 || rv == NARF_EINVAL || rv == NARF_ENOMEM);
	if (rv != 0) {
		check(rv == NARF_ENOMEM || errmsg[0] != '\0');
		check(maps_equal(m, empty));
		return 0;
	}
	check_map(m);
	check_map_round_trip(m);
	check(narf_map_copy(twin, m) == 0);
	while (pos < end) {
		json_t *cmd = next_line(&pos, end);

		if (cmd == NULL)
			continue;
		apply(m, twin, before, cmd);
		json_decref(cmd);
	}
	check(maps_equal(m, twin));
	check_map_round_trip(m);
	return 0;
}
