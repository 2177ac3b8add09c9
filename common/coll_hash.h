/*
 * Hashes (docs/datatypes-plan.md, section 2): field -> value maps on top of
 * coll.h. Small ones are a listpack of alternating fields and values; one
 * grows into a dict of {field, value} elements (one allocation each) when
 * it passes hash-max-listpack-entries fields or gets a field or value
 * longer than hash-max-listpack-value, and never goes back, as in Redis
 * 7.0.
 *
 * Every function takes the handle of a hash (c->type NARF_TYPE_HASH; c->p
 * NULL for an empty one). Views (struct narf_str) are valid until the next
 * mutation of the hash.
 */
#ifndef NARF_COLL_HASH_H
#define NARF_COLL_HASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coll.h"
#include "dict.h"

#define NARF_HASH_NX 1u /* HSETNX: leave an existing field alone */

/* Set field f to v. *added (may be NULL) gets 1 for a new field, 0 for an
 * existing one (changed, or left alone under NARF_HASH_NX). NARF_ENOMEM or
 * NARF_ETOOLARGE leave the hash as it was. */
int narf_hash_set(const struct narf_coll_ctx *ctx,
                  struct narf_coll *c,
                  const void *f,
                  size_t flen,
                  const void *v,
                  size_t vlen,
                  unsigned flags,
                  int *added);
/* The value of f in *v; false when there is no such field. */
bool narf_hash_get(struct narf_coll *c,
                   const void *f,
                   size_t flen,
                   struct narf_str *v);
/* Delete f; true when it was there. */
bool narf_hash_del(const struct narf_coll_ctx *ctx,
                   struct narf_coll *c,
                   const void *f,
                   size_t flen);

/* Walk every field once, in the encoding's order. The hash must not change
 * during the walk. */
struct narf_hash_iter {
	struct narf_coll *c; /* borrowed */
	uint32_t pos;        /* listpack: the next field's position */
	struct narf_dict_iter di;
};
void narf_hash_iter_init(struct narf_hash_iter *it, struct narf_coll *c);
bool narf_hash_iter_next(struct narf_hash_iter *it,
                         struct narf_str *f,
                         struct narf_str *v);
void narf_hash_iter_close(struct narf_hash_iter *it);

/* HSCAN: call cb on some fields from cursor on and return the next cursor
 * (0: done). A listpack hash is returned whole in one call, as Redis does;
 * a dict walks a bucket at a time until about `count` fields were passed,
 * with the dict's guarantee (a field present throughout is returned). */
typedef void (*narf_hash_scan_cb)(void *arg,
                                  const struct narf_str *f,
                                  const struct narf_str *v);
uint64_t narf_hash_scan(struct narf_coll *c,
                        uint64_t cursor,
                        unsigned count,
                        narf_hash_scan_cb cb,
                        void *arg);

/* A random field and its value (HRANDFIELD); the hash must not be empty. */
void narf_hash_random(const struct narf_coll_ctx *ctx,
                      struct narf_coll *c,
                      struct narf_str *f,
                      struct narf_str *v);

/* Fields in the hash (HLEN). */
uint64_t narf_hash_len(const struct narf_coll *c);

/* Free what the hash holds (coll.c dispatches here). */
void narf_hash_free(const struct narf_coll_ctx *ctx, struct narf_coll *c);
/* Lazy free: free up to budget fields; true (c->p NULL) once all went. */
bool narf_hash_free_step(const struct narf_coll_ctx *ctx,
                         struct narf_coll *c,
                         size_t budget);

#endif /* NARF_COLL_HASH_H */
