/*
 * What the set commands' two files share: cmd_set.c (one set at a time:
 * SADD .. SSCAN) and cmd_setalg.c (the algebra over several: SINTER,
 * SUNION, SDIFF, their STORE forms, SINTERCARD and SMEMBERS, which Redis
 * 7.0 runs as a one-key SINTER).
 */
#ifndef NARF_DN_CMD_SET_H
#define NARF_DN_CMD_SET_H

#include "common/coll_set.h"
#include "engine.h"

/* Until set effects are replicated (slices 22-23 of
 * docs/datatypes-plan.md) a node in a cluster refuses set writes, so no
 * replica can miss one: true after that error reply. */
/* Send a set command's effect for key (cmd_effect.c applies it):
 * NARF.<op> <epoch> <key> <size now> <members...>; nothing when the set
 * is gone (its delete goes out when it closes) or outside a cluster. */
void narf_set_effect(struct narf_engine *e,
                     const struct narf_cref *r,
                     const char *key,
                     size_t klen,
                     const char *op,
                     int n,
                     const char *const *args,
                     const size_t *lens);

/* The reply for a store error: WRONGTYPE, OOM, "value is too large"; a
 * NARF_ENOMEM is returned (the connection closes). */
int narf_set_reply_error(struct narf_buf *out, int rv);

/* Every member of s as a set reply (`~n`, RESP2 `*n`), in s's order. */
int narf_set_reply_members(const struct narf_client *c,
                           struct narf_buf *out,
                           struct narf_coll *s);

/* A copy of src's members added one by one to an empty set (*dst), as
 * Redis 7.0 builds the result of SUNION: an intset when every member is an
 * integer and they are few enough, whatever src's encoding. On an error
 * *dst is freed. NARF_ENOMEM. */
int narf_set_copy(const struct narf_coll_ctx *ctx,
                  struct narf_coll *src,
                  struct narf_coll *dst);

#endif /* NARF_DN_CMD_SET_H */
