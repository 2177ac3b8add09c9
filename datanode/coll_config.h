/*
 * The collection thresholds as options with Redis 7.0's names (CONFIG
 * GET/SET and the datanode flags of the same names): which encoding a
 * hash, set, list or sorted set takes at which size (common/coll.h).
 */
#ifndef NARF_COLL_CONFIG_H
#define NARF_COLL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "common/coll.h"

/* How many options there are, and the i-th's name (0 <= i < count). */
int narf_coll_option_count(void);
const char *narf_coll_option_name(int i);
/* The option named name[0..n) (its 7.0 name or its old ziplist alias), or
 * -1. */
int narf_coll_option_find(const char *name, size_t n);
/* The i-th option's value of lim as text. */
void narf_coll_option_get(const struct narf_coll_limits *lim,
                          int i,
                          char *buf,
                          size_t size);
/* Parse v[0..n) into the i-th option of lim. false with *why (Redis's
 * wording: "argument couldn't be parsed into an integer", "argument must
 * be between ...") when it does not fit; lim is then unchanged. */
bool narf_coll_option_set(struct narf_coll_limits *lim,
                          int i,
                          const char *v,
                          size_t n,
                          char *why,
                          size_t whysize);

#endif /* NARF_COLL_CONFIG_H */
