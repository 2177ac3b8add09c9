/*
 * Sorted sets (docs/datatypes-plan.md, section 2): members ordered by
 * (score, member) on top of coll.h. A small one is a listpack of member,
 * score, member, score... kept in that order, each score written as Redis
 * 7.0's d2string() writes it (so "3", which the listpack stores as an
 * integer, or "1.5"; narf_zset_score_text); a zset grows into a struct
 * narf_zset, a dict of members plus a skiplist (common/skiplist.h) that share
 * one node per member, when it passes zset-max-listpack-entries members or gets
 * a member longer than zset-max-listpack-value bytes. As in Redis 7.0 it never
 * goes back on its own: removals and pops keep the skiplist. Only a value built
 * whole (the *STORE commands) may take the listpack encoding at the end
 * (narf_zset_shrink).
 *
 * Scores are doubles and never NaN (narf_zset_add refuses one); -0.0 and
 * 0.0 are the same score, as in Redis: an update to an equal score changes
 * nothing, and a listpack, as 7.0's, stores -0 as the integer 0.
 *
 * Every function takes the handle of a sorted set (c->type NARF_TYPE_ZSET;
 * c->p NULL for an empty one). Member views (struct narf_str) are valid
 * until the next mutation of the set.
 */
#ifndef NARF_COLL_ZSET_H
#define NARF_COLL_ZSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coll.h"
#include "dict.h"
#include "skiplist.h"

/* The SKIPLIST encoding's object: the dict finds a member's node, the
 * skiplist orders them; the nodes belong to the skiplist. */
struct narf_zset {
	struct narf_dict dict; /* members -> nodes (narf_zsl_dict_type) */
	struct narf_zsl *zsl;  /* owned */
};

/* ZADD's options (narf_zset_add's flags). */
#define NARF_ZADD_NX 1u    /* only add new members */
#define NARF_ZADD_XX 2u    /* only update existing ones */
#define NARF_ZADD_GT 4u    /* only update to a greater score */
#define NARF_ZADD_LT 8u    /* only update to a lower score */
#define NARF_ZADD_INCR 16u /* add score to the current one (ZINCRBY) */

/* What narf_zset_add did. */
enum narf_zadd_result {
	NARF_ZADD_NOP,     /* refused by NX, XX, GT or LT: nothing changed */
	NARF_ZADD_ADDED,   /* a new member */
	NARF_ZADD_UPDATED, /* an existing member's score changed */
	NARF_ZADD_SAME,    /* an existing member kept its score */
};

/*
 * ZADD and ZINCRBY for one member, with Redis 7.0's zsetAdd() semantics:
 * NX leaves existing members alone, XX never adds, INCR adds score to the
 * current score (0 for a new member), GT/LT update only to a greater /
 * lower score (new members are still added). *res gets what happened and
 * *newscore (may be NULL) the member's score after the call, unless NOP.
 * Returns 0; NARF_EINVAL when score, or the sum INCR makes, is NaN
 * (nothing changed: "resulting score is not a number (NaN)"); NARF_ENOMEM
 * or NARF_ETOOLARGE leaving the set as it was.
 */
int narf_zset_add(const struct narf_coll_ctx *ctx,
                  struct narf_coll *c,
                  double score,
                  const void *m,
                  size_t len,
                  unsigned flags,
                  enum narf_zadd_result *res,
                  double *newscore);
/*
 * Values built whole (the *STORE commands), as Redis 7.0 builds them:
 * narf_zset_create makes *c an empty zset in the encoding that a zset of
 * size_hint members starts in (zsetTypeCreate: a skiplist beyond
 * zset-max-listpack-entries, else a listpack that converts as it grows);
 * narf_zset_shrink gives a finished one the listpack encoding when its
 * size and its members fit the limits (zsetConvertToListpackIfNeeded).
 * Both return 0 or NARF_ENOMEM (a failed shrink leaves the skiplist).
 */
int narf_zset_create(const struct narf_coll_ctx *ctx,
                     struct narf_coll *c,
                     uint64_t size_hint);
int narf_zset_shrink(const struct narf_coll_ctx *ctx, struct narf_coll *c);

/* Remove member m; true when it was there. */
bool narf_zset_del(const struct narf_coll_ctx *ctx,
                   struct narf_coll *c,
                   const void *m,
                   size_t len);
/* m's score in *score; false when m is not a member. */
bool narf_zset_score(const struct narf_coll *c,
                     const void *m,
                     size_t len,
                     double *score);
/* m's 0-based rank in *rank, from the lowest score, or from the highest
 * when rev (ZRANK, ZREVRANK); false when m is not a member. */
bool narf_zset_rank(const struct narf_coll *c,
                    const void *m,
                    size_t len,
                    bool rev,
                    uint64_t *rank);
/* Members in the set (ZCARD). */
uint64_t narf_zset_len(const struct narf_coll *c);

/*
 * Ranges (ZRANGE and friends, ZCOUNT, ZLEXCOUNT, ZREMRANGEBY*). A range
 * names the elements by rank, by score or by member (lex, which as in Redis
 * assumes equal scores), in ascending order or descending (rev). Rank
 * ranges are 0-based, inclusive and already clipped by the caller
 * (start <= stop < len, counted from the highest score when rev), as
 * Redis's zrange normalises them. Score and lex ranges are given as
 * skiplist.h's structs, min first whatever the direction; offset and limit
 * are ZRANGEBYSCORE's LIMIT (offset elements skipped in the walk's
 * direction, at most limit returned; limit UINT64_MAX for all).
 */
enum narf_zrange_by { NARF_ZRANGE_RANK, NARF_ZRANGE_SCORE, NARF_ZRANGE_LEX };

struct narf_zrange {
	enum narf_zrange_by by;
	bool rev;
	uint64_t start, stop;         /* NARF_ZRANGE_RANK */
	struct narf_zsl_range score;  /* NARF_ZRANGE_SCORE */
	struct narf_zsl_lexrange lex; /* NARF_ZRANGE_LEX (borrows bytes) */
	uint64_t offset, limit;       /* SCORE and LEX only */
};

/*
 * Walks the members in order. narf_zset_iter_init walks them all (rev: from
 * the highest); narf_zset_iter_range positions it at the first element of
 * a range, with it->left the exact count it will yield (the reply's length,
 * known before the walk). The set must not change during a walk. O(log n)
 * to position a skiplist's walk, O(n) a listpack's.
 */
struct narf_zset_iter {
	const struct narf_coll *c; /* borrowed */
	bool rev;
	uint64_t left;              /* elements still to yield */
	uint32_t pos;               /* listpack: the next member's position */
	struct narf_zsl_node *node; /* skiplist: the next node */
};
void narf_zset_iter_init(struct narf_zset_iter *it,
                         const struct narf_coll *c,
                         bool rev);
void narf_zset_iter_range(struct narf_zset_iter *it,
                          const struct narf_coll *c,
                          const struct narf_zrange *r);
/* The next member and its score; false at the end. */
bool narf_zset_iter_next(struct narf_zset_iter *it,
                         struct narf_str *m,
                         double *score);

/* How many members are in r, without offset and limit (ZCOUNT,
 * ZLEXCOUNT): O(log n) in a skiplist. */
uint64_t narf_zset_count(const struct narf_coll *c,
                         const struct narf_zrange *r);

/* Called with each member a removal takes, before it goes; the view is
 * valid for the call only. */
typedef void (*narf_zset_removed_cb)(void *arg,
                                     const struct narf_str *m,
                                     double score);
/* ZREMRANGEBYRANK/SCORE/LEX: remove the members of r (offset and limit
 * ignored), calling cb (may be NULL) on each in ascending order. Returns
 * how many went. */
uint64_t narf_zset_delete_range(const struct narf_coll_ctx *ctx,
                                struct narf_coll *c,
                                const struct narf_zrange *r,
                                narf_zset_removed_cb cb,
                                void *arg);
/* ZPOPMIN (max false) / ZPOPMAX: remove up to n members from that end,
 * calling cb on each in pop order (lowest first, or highest first).
 * Returns how many went. */
uint64_t narf_zset_pop(const struct narf_coll_ctx *ctx,
                       struct narf_coll *c,
                       bool max,
                       uint64_t n,
                       narf_zset_removed_cb cb,
                       void *arg);

/* A random member and its score (ZRANDMEMBER); the set must not be empty. */
void narf_zset_random(const struct narf_coll_ctx *ctx,
                      const struct narf_coll *c,
                      struct narf_str *m,
                      double *score);

/* ZSCAN: call cb on some members from cursor on and return the next cursor
 * (0: done). A listpack is returned whole in one call, as Redis does; a
 * skiplist's dict walks a bucket at a time until about `count` members
 * were passed, with the dict's guarantee (a member present throughout is
 * returned). */
typedef void (*narf_zset_scan_cb)(void *arg,
                                  const struct narf_str *m,
                                  double score);
uint64_t narf_zset_scan(const struct narf_coll *c,
                        uint64_t cursor,
                        unsigned count,
                        narf_zset_scan_cb cb,
                        void *arg);

/* A score as text the way an encoding holds it in Redis 7.0, which is how
 * ZSCAN shows it: a listpack keeps an integral score within +-2^62 as an
 * integer (so -0 reads "0") and any other as "%.17g"; a skiplist's prints
 * with "%.17g" ("-0", "1e+20"); infinities are "inf" and "-inf". buf needs
 * NARF_ZSET_SCOREBUF bytes; returns the length. */
#define NARF_ZSET_SCOREBUF 32
size_t narf_zset_score_text(enum narf_enc enc, char *buf, double score);

/* Free what the set holds (coll.c dispatches here). The dict goes first,
 * without touching its elements, then the skiplist frees the nodes
 * (skiplist.h's order). */
void narf_zset_free(const struct narf_coll_ctx *ctx, struct narf_coll *c);

/* Lazy free (coll.h): free up to budget members; true, with c->p NULL,
 * once all went. The first step drops the dict whole (its buckets; the
 * members are the skiplist's), later ones free the skiplist's nodes from
 * the front (skiplist.h's order): in between the set only counts, nothing
 * may look a member up. */
bool narf_zset_free_step(const struct narf_coll_ctx *ctx,
                         struct narf_coll *c,
                         size_t budget);

#endif /* NARF_COLL_ZSET_H */
