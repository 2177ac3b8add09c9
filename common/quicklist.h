/*
 * The quicklist: the encoding of every list (Redis 7.0 keeps no other), a
 * doubly linked list of listpack nodes (docs/datatypes-plan.md, section 2).
 *
 * A node's size is bounded by `fill`, Redis's list-max-listpack-size: -1 to
 * -5 cap a node's listpack at 4, 8, 16, 32 or 64 KiB (below -5 counts as
 * -5; the default -2 is 8 KiB); N >= 0 caps it at N elements and, as Redis's
 * SIZE_SAFETY_LIMIT, also at 8 KiB (0 keeps one element a node). A node over
 * the cap holds exactly one element: an element too big for any node gets a
 * node of its own (Redis's "plain" nodes, here a one-element listpack).
 * Inserting into a full node puts the element in a neighbour with room or a
 * new node when it goes at the node's edge, and otherwise splits the node
 * there (as Redis's _quicklistInsert). Deletes free emptied nodes and merge
 * a node with a neighbour when the two fit in one. Compression
 * (list-compress-depth) is not supported.
 *
 * Reads go through an iterator (struct narf_ql_iter): a place in the list
 * that narf_ql_index (O(nodes) to the node, counting node element counts,
 * then O(node) inside it), narf_ql_first/last and narf_ql_find set, and
 * that steps forwards or backwards. Values are views (struct narf_lp_val,
 * listpack.h) into a node, valid until the next mutation; strings that look
 * like canonical integers come back as integers, which narf_ql_iter_str or
 * narf_lp_get_str's printing turns back into the very bytes pushed. Every
 * mutation invalidates every iterator and view, except the iterator that
 * narf_ql_iter_del is given.
 *
 * A sync or a rebuild needs nothing more: walk from narf_ql_first and
 * narf_ql_push each element at the tail of a new list, which packs its nodes
 * full.
 *
 * Memory: the list, its nodes and their listpacks are all added to *used
 * (malloc_usable_size, as listpack.h), which the list borrows. After
 * narf_ql_destroy, or the narf_ql_free_step that reports it is done, *used
 * is back to what it was before narf_ql_create.
 *
 * Errors: NARF_ENOMEM and NARF_ETOOLARGE (an element of 4 GiB) leave the
 * list's elements unchanged; a failed insert may leave a node split where it
 * would have gone, which is still a valid list. Deletes never fail (a merge
 * that cannot allocate is skipped).
 */
#ifndef NARF_QUICKLIST_H
#define NARF_QUICKLIST_H

#include <stddef.h>
#include <stdint.h>

#include "common/listpack.h"

/* Redis's default list-max-listpack-size: 8 KiB nodes. */
#define NARF_QL_FILL_DEFAULT (-2)

/* Read-only outside quicklist.c (tests walk the nodes). */
struct narf_ql_node {
	struct narf_ql_node *prev, *next; /* borrowed: the list owns nodes */
	unsigned char *lp;                /* owned; never empty */
	uint32_t count;                   /* == narf_lp_count(lp) */
};

struct narf_ql {
	struct narf_ql_node *head, *tail; /* owned */
	uint64_t count;                   /* elements */
	uint64_t nodes;
	uint64_t *used; /* borrowed: memory accounting */
	int fill;       /* list-max-listpack-size */
};

enum narf_ql_end { NARF_QL_HEAD, NARF_QL_TAIL };
enum narf_ql_dir { NARF_QL_FORWARD, NARF_QL_BACKWARD };

/* A place in a list: the element at `index` (from the head), at offset off
 * of node's listpack, or past an end when node is NULL. Plain data on the
 * caller's stack; no cleanup. */
struct narf_ql_iter {
	struct narf_ql *ql;        /* borrowed */
	struct narf_ql_node *node; /* borrowed, NULL when done */
	uint32_t off;
	int64_t index;
	enum narf_ql_dir dir; /* where narf_ql_iter_next goes */
};

/* --- lifecycle ------------------------------------------------------------ */

/* A new empty list in *qlp (the caller frees it with narf_ql_destroy or
 * narf_ql_free_step), whose memory counts in *used (borrowed, must outlive
 * the list; may be NULL). NARF_ENOMEM. */
int narf_ql_create(struct narf_ql **qlp, int fill, uint64_t *used);
/* Free the list and everything in it; NULL is fine. */
void narf_ql_destroy(struct narf_ql *ql);
/* Lazy free: free up to budget nodes from the head; when none is left, free
 * the list itself and return 1 (ql is then gone), else 0. */
int narf_ql_free_step(struct narf_ql *ql, size_t budget);
/* A new list-max-listpack-size (CONFIG SET) for later inserts and merges;
 * existing nodes keep their size until an insert splits them. */
void narf_ql_set_fill(struct narf_ql *ql, int fill);

/* Elements, in O(1). */
uint64_t narf_ql_count(const struct narf_ql *ql);

/* --- ends ----------------------------------------------------------------- */

/* LPUSH/RPUSH one element s[0..len) (copied). NARF_ENOMEM, NARF_ETOOLARGE. */
int narf_ql_push(struct narf_ql *ql,
                 enum narf_ql_end end,
                 const void *s,
                 size_t len);
/* LPOP/RPOP: remove the element at `end`, first copying its bytes to
 * buf[0..cap) and their count to *len when buf is not NULL (buf NULL drops
 * it; read it first with narf_ql_first/last for a view). NARF_EINVAL on an
 * empty list; NARF_ETOOLARGE when cap is short (nothing is removed, *len
 * says what is needed). */
int narf_ql_pop(struct narf_ql *ql,
                enum narf_ql_end end,
                void *buf,
                size_t cap,
                size_t *len);

/* --- iterators ------------------------------------------------------------ */

/* Point it at the element at index (negative counts from the tail, -1 the
 * last), to step in direction dir. 1 when there is one, else 0 (it->node is
 * NULL). */
int narf_ql_index(struct narf_ql *ql,
                  int64_t index,
                  enum narf_ql_dir dir,
                  struct narf_ql_iter *it);
/* narf_ql_index at the head going forwards, at the tail going backwards. */
int narf_ql_first(struct narf_ql *ql, struct narf_ql_iter *it);
int narf_ql_last(struct narf_ql *ql, struct narf_ql_iter *it);
/* Step in it->dir; 1 while on an element, 0 once past the end. */
int narf_ql_iter_next(struct narf_ql_iter *it);
/* The current element: a view valid until the next mutation. */
void narf_ql_iter_get(const struct narf_ql_iter *it, struct narf_lp_val *v);
/* Its bytes, an integer printed into buf (NARF_LP_INTBUF bytes). */
const unsigned char *narf_ql_iter_str(const struct narf_ql_iter *it,
                                      char *buf,
                                      uint32_t *len);
/* Whether its bytes equal s[0..len). */
int narf_ql_iter_eq(const struct narf_ql_iter *it, const void *s, size_t len);
/* LREM: delete the current element and move to the next one in it->dir;
 * it stays valid (returns as narf_ql_iter_next). Never fails. */
int narf_ql_iter_del(struct narf_ql_iter *it);

/* --- by position ---------------------------------------------------------- */

/* LINSERT: insert s[0..len) before or after the element at pivot (an
 * iterator on an element, invalid afterwards). NARF_ENOMEM,
 * NARF_ETOOLARGE. */
int narf_ql_insert(struct narf_ql *ql,
                   const struct narf_ql_iter *pivot,
                   enum narf_lp_where where,
                   const void *s,
                   size_t len);
/* LSET: replace the element at index (negative from the tail) with
 * s[0..len). NARF_EINVAL when out of range, NARF_ENOMEM, NARF_ETOOLARGE. */
int narf_ql_set(struct narf_ql *ql, int64_t index, const void *s, size_t len);
/* Delete up to n elements from index on (negative from the tail; out of
 * range deletes nothing), freeing whole nodes without reading them: LTRIM
 * is two calls. Returns how many went. */
uint64_t narf_ql_del_range(struct narf_ql *ql, int64_t index, uint64_t n);

/* --- reads ---------------------------------------------------------------- */

/* LRANGE start stop, with Redis's clamping of both (negative from the
 * tail): fn(arg, v) for each element in order, v a view valid during the
 * call, which must not change the list. Returns the number of elements. */
uint64_t narf_ql_range(struct narf_ql *ql,
                       int64_t start,
                       int64_t stop,
                       void (*fn)(void *arg, const struct narf_lp_val *v),
                       void *arg);
/* LPOS's search: the rank-th element equal to s[0..len), counting from the
 * head when rank > 0 and from the tail when rank < 0 (not 0: the caller
 * refuses RANK 0 as Redis does), looking at no more than maxlen elements
 * (0: all). On a match it points there (it->index is its index, it->dir
 * the search's direction, so narf_ql_iter_next and another compare go on
 * to LPOS's next match) and 1 is returned; else 0. */
int narf_ql_find(struct narf_ql *ql,
                 const void *s,
                 size_t len,
                 int64_t rank,
                 uint64_t maxlen,
                 struct narf_ql_iter *it);

/* Check every invariant: links, counts, non-empty valid listpacks, and each
 * node within the fill (assuming it did not shrink since the nodes were
 * made). 0 or NARF_EINTERNAL; O(bytes), for tests and fuzzing. */
int narf_ql_verify(const struct narf_ql *ql);

#endif /* NARF_QUICKLIST_H */
