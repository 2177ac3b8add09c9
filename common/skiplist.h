/*
 * The skiplist of a big sorted set (docs/datatypes-plan.md, section 2): the
 * members in (score, member) order, with Redis's zskiplist design. Levels
 * carry spans (how many nodes a link jumps over), so ranks, ZRANGE by index
 * and ZCOUNT cost O(log n); each node points back to its predecessor for
 * reverse walks; a node's level is random with p = 1/4, at most 32.
 *
 * Order: by score, then by member bytes with memcmp, a shorter member first
 * when it is a prefix of the other ("a" < "a\0" < "ab"), as Redis's sdscmp.
 * Scores compare as doubles, so -0.0 and 0.0 are the same score. NaN is
 * never a score: callers reject it (it would break the order; asserted).
 *
 * The node is also the element of the zset's member index: a struct
 * narf_dict_node is its FIRST member and narf_zsl_dict_type gives the dict
 * its key (the member bytes), so a member costs one allocation, which holds
 * the node, its levels and then its bytes. The skiplist does not know the
 * dict: callers keep the two in step (add to the dict after insert, unlink
 * from it before a node is freed; the range deletions call back for that).
 * Uniqueness of members is the dict's to check; a member inserted twice
 * breaks the strict order, which narf_zsl_verify reports.
 *
 * Ranks are 1-based as Redis's zslGetRank (ZRANK answers rank - 1); 0 means
 * "absent".
 *
 * Memory accounting: the skiplist keeps the `uint64_t *used` given to
 * narf_zsl_create (may be NULL) and adds to it the allocator's usable size
 * of everything it allocates (its struct with the header, every node), and
 * subtracts it when freed, so *used returns to its old value after
 * narf_zsl_destroy or after narf_zsl_free_step has emptied the list and
 * narf_zsl_destroy freed the rest.
 */
#ifndef NARF_SKIPLIST_H
#define NARF_SKIPLIST_H

#include <stddef.h>
#include <stdint.h>

#include "common/dict.h"

#define NARF_ZSL_MAXLEVEL 32
/* A node reaches level k + 1 with probability 1/NARF_ZSL_P given level k. */
#define NARF_ZSL_P 4

struct narf_zsl_node;

struct narf_zsl_level {
	struct narf_zsl_node *forward; /* borrowed: next node at this level */
	/* rank(forward) - rank(this node), where a NULL forward counts as
	 * the list's length: the nodes a link jumps over, plus one */
	uint64_t span;
};

/* One member. Allocated and freed by the skiplist; the dict only links the
 * embedded dn. The member bytes follow levels[nlevels]. */
struct narf_zsl_node {
	struct narf_dict_node dn; /* FIRST: the zset's dict links this */
	double score;
	struct narf_zsl_node *backward; /* borrowed: previous node, or NULL */
	uint32_t len;                   /* member bytes */
	uint8_t nlevels;                /* 1..NARF_ZSL_MAXLEVEL */
	struct narf_zsl_level levels[];
};

struct narf_zsl {
	struct narf_zsl_node *header; /* owned, in this struct's allocation */
	struct narf_zsl_node *tail;   /* borrowed: the last node, or NULL */
	uint64_t length;
	int level;      /* levels in use, 1..NARF_ZSL_MAXLEVEL */
	uint64_t *rng;  /* borrowed: splitmix64 state (common/rng.h) */
	uint64_t *used; /* borrowed: memory accounting, may be NULL */
};

/* A score interval as Redis's zrangespec: each end inclusive unless its
 * `ex` is set; ±INFINITY are fine ends, NaN is not. */
struct narf_zsl_range {
	double min, max;
	int minex, maxex;
};

/* One end of a lex interval (ZRANGEBYLEX): "[m" (inclusive), "(m"
 * (exclusive), "-" (inf -1) or "+" (inf 1). As Redis, "-" and "+" are
 * exclusive (ex 1), so "- -" and "+ +" are empty. */
struct narf_zsl_lex_bound {
	const unsigned char *s; /* borrowed, unless inf */
	size_t len;
	int inf; /* -1: below every member, 1: above every member, 0: s */
	int ex;
};

struct narf_zsl_lexrange {
	struct narf_zsl_lex_bound min, max;
};

/* Called for each node a range deletion removes, after it left the
 * skiplist and before it is freed, so the zset can unlink it from its
 * dict. The node is valid for the call only. */
typedef void narf_zsl_removed_cb(struct narf_zsl_node *n, void *arg);

/* The dict element type of a zset's member index: its key is a node's
 * member bytes. */
extern const struct narf_dict_type narf_zsl_dict_type;

/* A node's member bytes (len of them; not NUL-terminated). */
static inline const unsigned char *narf_zsl_member(
        const struct narf_zsl_node *n)
{
	return (const unsigned char *)(n->levels + n->nlevels);
}

/* Walks: NULL past either end. */
static inline struct narf_zsl_node *narf_zsl_first(const struct narf_zsl *zsl)
{
	return zsl->header->levels[0].forward;
}
static inline struct narf_zsl_node *narf_zsl_last(const struct narf_zsl *zsl)
{
	return zsl->tail;
}
static inline struct narf_zsl_node *narf_zsl_next(const struct narf_zsl_node *n)
{
	return n->levels[0].forward;
}
static inline struct narf_zsl_node *narf_zsl_prev(const struct narf_zsl_node *n)
{
	return n->backward;
}
static inline uint64_t narf_zsl_length(const struct narf_zsl *zsl)
{
	return zsl->length;
}

/* An empty skiplist (caller frees with narf_zsl_destroy). rng and used are
 * borrowed for its whole life (used may be NULL). NULL when out of
 * memory. */
struct narf_zsl *narf_zsl_create(uint64_t *rng, uint64_t *used);
/* Free every node and the skiplist; NULL is fine. Does not call back: a
 * dict indexing the nodes must be dropped without touching them. */
void narf_zsl_destroy(struct narf_zsl *zsl);
/* Lazy free: free up to budget nodes from the front (no callbacks, as
 * destroy); returns how many are left. The list stays a valid skiplist of the
 * rest, so the grave can interleave steps with nothing else needed; when it
 * returns 0, narf_zsl_destroy frees the struct in O(1). */
uint64_t narf_zsl_free_step(struct narf_zsl *zsl, uint64_t budget);

/* Insert member[0..len) with score; the caller has checked that the member
 * is absent (the dict's job) and that score is not NaN. Returns the new
 * node (owned by the skiplist), NULL when out of memory (nothing changed).
 */
struct narf_zsl_node *narf_zsl_insert(struct narf_zsl *zsl,
                                      double score,
                                      const void *member,
                                      size_t len);
/* Remove and free the node with this score and member: 1, or 0 when there
 * is none (nothing changed). A dict linking it must unlink it first. */
int narf_zsl_delete(struct narf_zsl *zsl,
                    double score,
                    const void *member,
                    size_t len);
/* Remove and free node n, which is in zsl. */
void narf_zsl_delete_node(struct narf_zsl *zsl, struct narf_zsl_node *n);
/* Give n (in zsl) a new score (not NaN) and move it where that puts it.
 * Unlike Redis's zslUpdateScore, which frees the node and inserts a new
 * one when the position changes, the node itself is relinked (it keeps its
 * level): n stays valid and stays the dict's element, so the dict needs no
 * relink. O(1) when the order is unchanged, else O(log n). */
void narf_zsl_update_score(struct narf_zsl *zsl,
                           struct narf_zsl_node *n,
                           double score);

/* The node with this score and member, or NULL. O(log n). */
struct narf_zsl_node *narf_zsl_find(const struct narf_zsl *zsl,
                                    double score,
                                    const void *member,
                                    size_t len);
/* The first node after (score, member) in the set's order, whether that
 * pair is in it or not; NULL when none. O(log n). */
struct narf_zsl_node *narf_zsl_first_after(const struct narf_zsl *zsl,
                                           double score,
                                           const void *member,
                                           size_t len);
/* 1-based rank of (score, member), 0 when absent. */
uint64_t narf_zsl_rank(const struct narf_zsl *zsl,
                       double score,
                       const void *member,
                       size_t len);
/* 1-based rank of node n, which is in zsl. */
uint64_t narf_zsl_node_rank(const struct narf_zsl *zsl,
                            const struct narf_zsl_node *n);
/* The node of 1-based rank, NULL outside 1..length. */
struct narf_zsl_node *narf_zsl_by_rank(const struct narf_zsl *zsl,
                                       uint64_t rank);

/* Score ranges (ZRANGEBYSCORE, ZCOUNT). Whether any node is in r (false
 * also for an empty interval such as min > max or (5 (5). */
int narf_zsl_in_range(const struct narf_zsl *zsl,
                      const struct narf_zsl_range *r);
/* The first / last node in r, or NULL; its 1-based rank to *rank (may be
 * NULL) at no extra cost. */
struct narf_zsl_node *narf_zsl_first_in_range(const struct narf_zsl *zsl,
                                              const struct narf_zsl_range *r,
                                              uint64_t *rank);
struct narf_zsl_node *narf_zsl_last_in_range(const struct narf_zsl *zsl,
                                             const struct narf_zsl_range *r,
                                             uint64_t *rank);
/* How many nodes are in r, from the ranks of the ends: O(log n). */
uint64_t narf_zsl_count_in_range(const struct narf_zsl *zsl,
                                 const struct narf_zsl_range *r);

/* Lex ranges (ZRANGEBYLEX, ZLEXCOUNT), which as in Redis assume that all
 * scores are equal (otherwise the result is unspecified). Parse one end:
 * 0, or NARF_EINVAL for anything but "[..", "(..", "-" and "+" (b->s then
 * borrows s). */
int narf_zsl_parse_lex(const void *s, size_t len, struct narf_zsl_lex_bound *b);
int narf_zsl_in_lex_range(const struct narf_zsl *zsl,
                          const struct narf_zsl_lexrange *r);
struct narf_zsl_node *narf_zsl_first_in_lex_range(
        const struct narf_zsl *zsl,
        const struct narf_zsl_lexrange *r,
        uint64_t *rank);
struct narf_zsl_node *narf_zsl_last_in_lex_range(
        const struct narf_zsl *zsl,
        const struct narf_zsl_lexrange *r,
        uint64_t *rank);
uint64_t narf_zsl_count_in_lex_range(const struct narf_zsl *zsl,
                                     const struct narf_zsl_lexrange *r);

/* ZREMRANGEBYSCORE / BYLEX / BYRANK: remove the nodes in the range,
 * calling cb (may be NULL) with each, in order, before freeing it. Return
 * how many went. Ranks are 1-based and inclusive: start 0 counts as 1, an
 * end past the length stops there, start > end removes nothing. */
uint64_t narf_zsl_delete_range(struct narf_zsl *zsl,
                               const struct narf_zsl_range *r,
                               narf_zsl_removed_cb *cb,
                               void *arg);
uint64_t narf_zsl_delete_lex_range(struct narf_zsl *zsl,
                                   const struct narf_zsl_lexrange *r,
                                   narf_zsl_removed_cb *cb,
                                   void *arg);
uint64_t narf_zsl_delete_rank_range(struct narf_zsl *zsl,
                                    uint64_t start,
                                    uint64_t end,
                                    narf_zsl_removed_cb *cb,
                                    void *arg);

/* Compare (score, member) pairs in the skiplist's order: < 0, 0, > 0. */
int narf_zsl_cmp(double s1,
                 const void *m1,
                 size_t l1,
                 double s2,
                 const void *m2,
                 size_t l2);

/* Check every invariant (strict order, spans against ranks, backward
 * pointers, tail, length, level, no NaN): 0, or NARF_EINTERNAL. O(n *
 * levels); for tests and fuzzing. */
int narf_zsl_verify(const struct narf_zsl *zsl);

#endif /* NARF_SKIPLIST_H */
