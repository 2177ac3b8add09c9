/*
 * The quicklist (quicklist.h): nodes, their limits, and how inserts split
 * and deletes merge them.
 *
 * Invariants (narf_ql_verify checks them all): the nodes are linked both
 * ways from head to tail; no node is empty; a node's cached count is its
 * listpack's; the counts sum to ql->count; and every node of more than one
 * element is within the fill (fits()). The last one is kept by deciding
 * before every insert with entry_bound(), which is exact for a string and
 * an upper bound for an integer, so a node may end a few bytes short of
 * full but never over.
 *
 * Positions inside a node are listpack byte offsets. The only operations
 * that move elements between nodes are narf_lp_split (the elements before
 * the cut keep their offsets) and narf_lp_concat (the right node's elements
 * shift by a known amount), so a place held across a merge (struct loc) is
 * moved along with its element and an iterator survives narf_ql_iter_del.
 */
#include <assert.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "common/errors.h"
#include "common/quicklist.h"

/* list-max-listpack-size -1..-5 (Redis's optimization_level). */
static const size_t byte_limit[] = {4096, 8192, 16384, 32768, 65536};
/* A count-limited node's byte cap (Redis's SIZE_SAFETY_LIMIT): without it,
 * a fill of 10000 with 1 KiB elements would make 10 MB nodes, each insert
 * a 10 MB memmove. */
#define SAFETY_LIMIT 8192u

/* An element's place that must survive merges (node NULL: none). */
struct loc {
	struct narf_ql_node *node;
	uint32_t off;
};

/* --- memory and limits ---------------------------------------------------- */

static void *mem_alloc(uint64_t *used, size_t size)
{
	void *p = malloc(size);

	if (p != NULL && used != NULL)
		*used += malloc_usable_size(p);
	return p;
}

static void mem_free(uint64_t *used, void *p)
{
	if (p != NULL && used != NULL)
		*used -= malloc_usable_size(p);
	free(p);
}

/* Whether a node of `bytes` listpack bytes and `count` elements is within
 * the fill. */
static int fits(const struct narf_ql *ql, size_t bytes, uint64_t count)
{
	if (ql->fill < 0) {
		size_t i = ql->fill < -5 ? 4 : (size_t)(-ql->fill - 1);
		return bytes <= byte_limit[i];
	}
	return count <= (uint64_t)ql->fill && bytes <= SAFETY_LIMIT;
}

/* The bytes an element of len bytes takes in a listpack (encoding, payload,
 * back-length; listpack.c's layout): exact for a string, more than an
 * integer takes. */
static size_t entry_bound(size_t len)
{
	size_t l = len + (len < 64 ? 1 : len < 4096 ? 2 : 5), bl = 1;

	for (size_t x = l; x >= 128; x >>= 7)
		bl++;
	return l + bl;
}

/* The bytes of the element at off. */
static size_t entry_bytes(const unsigned char *lp, uint32_t off)
{
	uint32_t next = narf_lp_next(lp, off);

	return (next != NARF_LP_NONE ? next : narf_lp_end(lp)) - off;
}

/* Whether n can take one more element of len bytes. */
static int allow(const struct narf_ql *ql,
                 const struct narf_ql_node *n,
                 size_t len)
{
	return n != NULL && fits(ql, narf_lp_bytes(n->lp) + entry_bound(len),
	                         (uint64_t)n->count + 1);
}

/* --- nodes ---------------------------------------------------------------- */

/* Link n after `at`, or at the head when at is NULL. */
static void link_after(struct narf_ql *ql,
                       struct narf_ql_node *at,
                       struct narf_ql_node *n)
{
	n->prev = at;
	n->next = at != NULL ? at->next : ql->head;
	if (n->next != NULL)
		n->next->prev = n;
	else
		ql->tail = n;
	if (at != NULL)
		at->next = n;
	else
		ql->head = n;
	ql->nodes++;
}

/* Unlink and free n; ql->count is the caller's business. */
static void unlink_free(struct narf_ql *ql, struct narf_ql_node *n)
{
	if (n->prev != NULL)
		n->prev->next = n->next;
	else
		ql->head = n->next;
	if (n->next != NULL)
		n->next->prev = n->prev;
	else
		ql->tail = n->prev;
	ql->nodes--;
	narf_lp_destroy(n->lp, ql->used);
	mem_free(ql->used, n);
}

/* A new node holding just s[0..len), linked after `at` (NULL: the head). */
static int node_add(struct narf_ql *ql,
                    struct narf_ql_node *at,
                    const void *s,
                    size_t len)
{
	struct narf_ql_node *n = mem_alloc(ql->used, sizeof(*n));
	int rc;

	if (n == NULL)
		return NARF_ENOMEM;
	rc = narf_lp_create(&n->lp, ql->used);
	if (rc == 0) {
		rc = narf_lp_append(&n->lp, ql->used, s, len);
		if (rc != 0)
			narf_lp_destroy(n->lp, ql->used);
	}
	if (rc != 0) {
		mem_free(ql->used, n);
		return rc;
	}
	n->count = 1;
	link_after(ql, at, n);
	ql->count++;
	return 0;
}

/* Put s[0..len) into n's listpack at off (where as narf_lp_insert). */
static int node_put(struct narf_ql *ql,
                    struct narf_ql_node *n,
                    uint32_t off,
                    enum narf_lp_where where,
                    const void *s,
                    size_t len)
{
	int rc = narf_lp_insert(&n->lp, ql->used, off, where, s, len, NULL);

	if (rc != 0)
		return rc;
	n->count++;
	ql->count++;
	return 0;
}

static int put_head(struct narf_ql *ql,
                    struct narf_ql_node *n,
                    const void *s,
                    size_t len)
{
	return node_put(ql, n, narf_lp_first(n->lp), NARF_LP_BEFORE, s, len);
}

static int put_tail(struct narf_ql *ql,
                    struct narf_ql_node *n,
                    const void *s,
                    size_t len)
{
	return node_put(ql, n, narf_lp_end(n->lp), NARF_LP_BEFORE, s, len);
}

/* Move n's elements from cut on into a new node after it, *rightp. */
static int node_split(struct narf_ql *ql,
                      struct narf_ql_node *n,
                      uint32_t cut,
                      struct narf_ql_node **rightp)
{
	struct narf_ql_node *r = mem_alloc(ql->used, sizeof(*r));
	int rc;

	if (r == NULL)
		return NARF_ENOMEM;
	rc = narf_lp_split(&n->lp, ql->used, cut, &r->lp);
	if (rc != 0) {
		mem_free(ql->used, r);
		return rc;
	}
	r->count = narf_lp_count(r->lp);
	n->count -= r->count;
	link_after(ql, n, r);
	*rightp = r;
	return 0;
}

/* Merge b (a's next) into a when the two fit in one node, moving loc along
 * with its element. 1 when merged; a merge that cannot allocate is left
 * undone, which breaks no invariant. */
static int try_merge(struct narf_ql *ql,
                     struct narf_ql_node *a,
                     struct narf_ql_node *b,
                     struct loc *loc)
{
	uint32_t shift;

	if (a == NULL || b == NULL)
		return 0;
	assert(a->next == b);
	if (!fits(ql,
	          narf_lp_bytes(a->lp) + narf_lp_bytes(b->lp) -
	                  NARF_LP_EMPTY_BYTES,
	          (uint64_t)a->count + b->count))
		return 0;
	if (narf_lp_concat(&a->lp, ql->used, b->lp, &shift) != 0)
		return 0;
	a->count += b->count;
	if (loc != NULL && loc->node == b) {
		loc->node = a;
		loc->off += shift;
	}
	unlink_free(ql, b);
	return 1;
}

/* Merge n with either neighbour it fits with. */
static void merge_around(struct narf_ql *ql,
                         struct narf_ql_node *n,
                         struct loc *loc)
{
	struct narf_ql_node *p = n->prev;

	if (try_merge(ql, p, n, loc))
		n = p;
	try_merge(ql, n, n->next, loc);
}

/* --- lifecycle ------------------------------------------------------------ */

int narf_ql_create(struct narf_ql **qlp, int fill, uint64_t *used)
{
	struct narf_ql *ql = mem_alloc(used, sizeof(*ql));

	if (ql == NULL)
		return NARF_ENOMEM;
	memset(ql, 0, sizeof(*ql));
	ql->used = used;
	ql->fill = fill;
	*qlp = ql;
	return 0;
}

int narf_ql_free_step(struct narf_ql *ql, size_t budget)
{
	for (; budget > 0 && ql->head != NULL; budget--) {
		ql->count -= ql->head->count;
		unlink_free(ql, ql->head);
	}
	if (ql->head != NULL)
		return 0;
	mem_free(ql->used, ql);
	return 1;
}

void narf_ql_destroy(struct narf_ql *ql)
{
	if (ql != NULL)
		(void)narf_ql_free_step(ql, SIZE_MAX);
}

void narf_ql_set_fill(struct narf_ql *ql, int fill)
{
	ql->fill = fill;
}

uint64_t narf_ql_count(const struct narf_ql *ql)
{
	return ql->count;
}

/* --- iterators ------------------------------------------------------------ */

int narf_ql_index(struct narf_ql *ql,
                  int64_t index,
                  enum narf_ql_dir dir,
                  struct narf_ql_iter *it)
{
	struct narf_ql_node *n;
	uint64_t i;

	it->ql = ql;
	it->dir = dir;
	it->node = NULL;
	it->off = NARF_LP_NONE;
	if (index < 0)
		index += (int64_t)ql->count;
	it->index = index;
	if (index < 0 || (uint64_t)index >= ql->count)
		return 0;
	/* Count whole nodes from the nearer end, then seek inside one. */
	if ((uint64_t)index < ql->count / 2) {
		i = (uint64_t)index;
		for (n = ql->head; i >= n->count; n = n->next)
			i -= n->count;
		it->off = narf_lp_seek(n->lp, (int64_t)i);
	} else {
		i = ql->count - 1 - (uint64_t)index;
		for (n = ql->tail; i >= n->count; n = n->prev)
			i -= n->count;
		it->off = narf_lp_seek(n->lp, -1 - (int64_t)i);
	}
	it->node = n;
	return 1;
}

int narf_ql_first(struct narf_ql *ql, struct narf_ql_iter *it)
{
	return narf_ql_index(ql, 0, NARF_QL_FORWARD, it);
}

int narf_ql_last(struct narf_ql *ql, struct narf_ql_iter *it)
{
	return narf_ql_index(ql, -1, NARF_QL_BACKWARD, it);
}

int narf_ql_iter_next(struct narf_ql_iter *it)
{
	struct narf_ql_node *n = it->node;

	if (n == NULL)
		return 0;
	if (it->dir == NARF_QL_FORWARD) {
		it->index++;
		it->off = narf_lp_next(n->lp, it->off);
		if (it->off == NARF_LP_NONE && (it->node = n->next) != NULL)
			it->off = narf_lp_first(it->node->lp);
	} else {
		it->index--;
		it->off = narf_lp_prev(n->lp, it->off);
		if (it->off == NARF_LP_NONE && (it->node = n->prev) != NULL)
			it->off = narf_lp_last(it->node->lp);
	}
	return it->node != NULL;
}

void narf_ql_iter_get(const struct narf_ql_iter *it, struct narf_lp_val *v)
{
	narf_lp_get(it->node->lp, it->off, v);
}

const unsigned char *narf_ql_iter_str(const struct narf_ql_iter *it,
                                      char *buf,
                                      uint32_t *len)
{
	return narf_lp_get_str(it->node->lp, it->off, buf, len);
}

/* Whether v holds s[0..len); isint and iv are s as narf_lp_str_to_int
 * reads it. As narf_lp_find: an integer entry matches only the canonical
 * form of its value, which is the only form it can come from. */
static int val_eq(const struct narf_lp_val *v,
                  const void *s,
                  size_t len,
                  int isint,
                  int64_t iv)
{
	if (v->s == NULL)
		return isint && v->v == iv;
	return v->len == len && memcmp(v->s, s, len) == 0;
}

int narf_ql_iter_eq(const struct narf_ql_iter *it, const void *s, size_t len)
{
	struct narf_lp_val v;
	int64_t iv = 0;
	int isint = narf_lp_str_to_int(s, len, &iv);

	narf_ql_iter_get(it, &v);
	return val_eq(&v, s, len, isint, iv);
}

/* --- deletes -------------------------------------------------------------- */

/* Delete the element at *loc; *loc becomes the element that followed it in
 * direction dir (node NULL past the end). An emptied node is freed and the
 * neighbours are merged where they fit. */
static void delete_at(struct narf_ql *ql, struct loc *loc, enum narf_ql_dir dir)
{
	struct narf_ql_node *n = loc->node, *p = n->prev, *nx = n->next;
	uint32_t off = loc->off, back = narf_lp_prev(n->lp, off);

	narf_lp_delete(&n->lp, ql->used, &off);
	n->count--;
	ql->count--;
	if (dir == NARF_QL_FORWARD) {
		loc->node = off != NARF_LP_NONE ? n : nx;
		loc->off = off != NARF_LP_NONE ? off
		           : nx != NULL        ? narf_lp_first(nx->lp)
		                               : NARF_LP_NONE;
	} else {
		loc->node = back != NARF_LP_NONE ? n : p;
		loc->off = back != NARF_LP_NONE ? back
		           : p != NULL          ? narf_lp_last(p->lp)
		                                : NARF_LP_NONE;
	}
	if (n->count == 0) {
		unlink_free(ql, n);
		try_merge(ql, p, nx, loc);
	} else {
		merge_around(ql, n, loc);
	}
}

int narf_ql_iter_del(struct narf_ql_iter *it)
{
	struct loc loc = {it->node, it->off};

	delete_at(it->ql, &loc, it->dir);
	it->node = loc.node;
	it->off = loc.off;
	if (it->dir == NARF_QL_BACKWARD)
		it->index--;
	return it->node != NULL;
}

uint64_t narf_ql_del_range(struct narf_ql *ql, int64_t index, uint64_t n)
{
	struct narf_ql_iter it;
	struct narf_ql_node *node, *next, *x;
	uint32_t local = 0;
	uint64_t done = 0, k;

	if (n == 0 || !narf_ql_index(ql, index, NARF_QL_FORWARD, &it))
		return 0;
	node = it.node;
	x = node->prev;
	for (uint32_t p = narf_lp_first(node->lp); p != it.off;
	     p = narf_lp_next(node->lp, p))
		local++;
	for (; n > done && node != NULL; node = next, local = 0) {
		next = node->next;
		k = node->count - local;
		if (k > n - done)
			k = n - done;
		if (k == node->count) {
			unlink_free(ql, node); /* whole nodes go unread */
		} else {
			narf_lp_delete_range(&node->lp, ql->used, local,
			                     (uint32_t)k);
			node->count -= (uint32_t)k;
		}
		ql->count -= k;
		done += k;
	}
	/* Only the range's edges changed: the node before it and partly
	 * deleted first and last nodes, now adjacent. Merge among those. */
	x = x != NULL ? x : ql->head;
	for (int i = 0; i < 2 && x != NULL; i++)
		if (!try_merge(ql, x, x->next, NULL))
			x = x->next;
	return done;
}

/* --- inserts -------------------------------------------------------------- */

int narf_ql_push(struct narf_ql *ql,
                 enum narf_ql_end end,
                 const void *s,
                 size_t len)
{
	if (end == NARF_QL_HEAD)
		return allow(ql, ql->head, len) ? put_head(ql, ql->head, s, len)
		                                : node_add(ql, NULL, s, len);
	return allow(ql, ql->tail, len) ? put_tail(ql, ql->tail, s, len)
	                                : node_add(ql, ql->tail, s, len);
}

/* Insert s[0..len) before or after the element at off of n (Redis's
 * _quicklistInsert): into n when it has room; at n's edge, into the
 * neighbour there when it has room, else into a new node; inside a full n,
 * split n at the place and put the element at the end of the left part or
 * the start of the right, or between them in a node of its own, then merge
 * what fits. */
static int insert_at(struct narf_ql *ql,
                     struct narf_ql_node *n,
                     uint32_t off,
                     int after,
                     const void *s,
                     size_t len)
{
	struct narf_ql_node *right;
	uint32_t cut;
	int rc;

	if (allow(ql, n, len))
		return node_put(ql, n, off,
		                after ? NARF_LP_AFTER : NARF_LP_BEFORE, s, len);
	cut = after ? narf_lp_next(n->lp, off) : off; /* right part's first */
	if (cut == NARF_LP_NONE)
		return allow(ql, n->next, len) ? put_head(ql, n->next, s, len)
		                               : node_add(ql, n, s, len);
	if (cut == narf_lp_first(n->lp))
		return allow(ql, n->prev, len) ? put_tail(ql, n->prev, s, len)
		                               : node_add(ql, n->prev, s, len);
	rc = node_split(ql, n, cut, &right);
	if (rc != 0)
		return rc;
	if (allow(ql, n, len))
		rc = put_tail(ql, n, s, len);
	else if (allow(ql, right, len))
		rc = put_head(ql, right, s, len);
	else
		rc = node_add(ql, n, s, len);
	/* After a failure this merges the split back. */
	merge_around(ql, right, NULL);
	merge_around(ql, n, NULL);
	return rc;
}

int narf_ql_insert(struct narf_ql *ql,
                   const struct narf_ql_iter *pivot,
                   enum narf_lp_where where,
                   const void *s,
                   size_t len)
{
	assert(pivot->ql == ql && pivot->node != NULL);
	return insert_at(ql, pivot->node, pivot->off, where == NARF_LP_AFTER, s,
	                 len);
}

int narf_ql_set(struct narf_ql *ql, int64_t index, const void *s, size_t len)
{
	struct narf_ql_iter it;
	struct narf_ql_node *n;
	struct loc loc;
	size_t bytes;
	int rc;

	if (!narf_ql_index(ql, index, NARF_QL_FORWARD, &it))
		return NARF_EINVAL;
	n = it.node;
	bytes = narf_lp_bytes(n->lp) - entry_bytes(n->lp, it.off) +
	        entry_bound(len);
	if (n->count == 1 || fits(ql, bytes, n->count))
		return narf_lp_replace(&n->lp, ql->used, it.off, s, len);
	/* Too big for its node: insert after the old one (splitting as any
	 * insert), then delete the old one, which never fails. */
	rc = insert_at(ql, n, it.off, 1, s, len);
	if (rc != 0)
		return rc;
	narf_ql_index(ql, it.index, NARF_QL_FORWARD, &it);
	loc = (struct loc){it.node, it.off};
	delete_at(ql, &loc, NARF_QL_FORWARD);
	return 0;
}

int narf_ql_pop(struct narf_ql *ql,
                enum narf_ql_end end,
                void *buf,
                size_t cap,
                size_t *len)
{
	struct narf_ql_iter it;
	char ibuf[NARF_LP_INTBUF];
	const unsigned char *p;
	struct loc loc;
	uint32_t n;

	if (!(end == NARF_QL_HEAD ? narf_ql_first(ql, &it)
	                          : narf_ql_last(ql, &it)))
		return NARF_EINVAL;
	if (buf != NULL) {
		p = narf_ql_iter_str(&it, ibuf, &n);
		if (len != NULL)
			*len = n;
		if (n > cap)
			return NARF_ETOOLARGE;
		memcpy(buf, p, n);
	}
	loc = (struct loc){it.node, it.off};
	delete_at(ql, &loc, it.dir);
	return 0;
}

/* --- reads ---------------------------------------------------------------- */

uint64_t narf_ql_range(struct narf_ql *ql,
                       int64_t start,
                       int64_t stop,
                       void (*fn)(void *arg, const struct narf_lp_val *v),
                       void *arg)
{
	int64_t llen = (int64_t)ql->count;
	struct narf_ql_iter it;
	struct narf_lp_val v;
	uint64_t n = 0;
	int ok;

	/* Redis's LRANGE: negative from the tail, then clamped. */
	if (start < 0)
		start = start < -llen ? 0 : llen + start;
	if (stop < 0)
		stop = stop < -llen ? -1 : llen + stop;
	if (stop >= llen)
		stop = llen - 1;
	if (start > stop)
		return 0;
	for (ok = narf_ql_index(ql, start, NARF_QL_FORWARD, &it);
	     ok && it.index <= stop; ok = narf_ql_iter_next(&it), n++) {
		narf_ql_iter_get(&it, &v);
		fn(arg, &v);
	}
	return n;
}

int narf_ql_find(struct narf_ql *ql,
                 const void *s,
                 size_t len,
                 int64_t rank,
                 uint64_t maxlen,
                 struct narf_ql_iter *it)
{
	/* |rank| without overflowing at INT64_MIN. */
	uint64_t left = rank > 0 ? (uint64_t)rank : 0 - (uint64_t)rank;
	struct narf_lp_val v;
	int64_t iv = 0;
	int isint = narf_lp_str_to_int(s, len, &iv), ok;

	assert(rank != 0);
	ok = rank > 0 ? narf_ql_first(ql, it) : narf_ql_last(ql, it);
	for (uint64_t seen = 0; ok && (maxlen == 0 || seen < maxlen);
	     seen++, ok = narf_ql_iter_next(it)) {
		narf_ql_iter_get(it, &v);
		if (val_eq(&v, s, len, isint, iv) && --left == 0)
			return 1;
	}
	it->node = NULL;
	return 0;
}

int narf_ql_verify(const struct narf_ql *ql)
{
	const struct narf_ql_node *n, *prev = NULL;
	uint64_t count = 0, nodes = 0;
	size_t bytes;

	for (n = ql->head; n != NULL; prev = n, n = n->next) {
		bytes = narf_lp_bytes(n->lp);
		if (n->prev != prev || n->count == 0 ||
		    n->count != narf_lp_count(n->lp) ||
		    narf_lp_validate(n->lp, bytes) != 0 ||
		    (n->count > 1 && !fits(ql, bytes, n->count)))
			return NARF_EINTERNAL;
		count += n->count;
		nodes++;
	}
	if (prev != ql->tail || count != ql->count || nodes != ql->nodes)
		return NARF_EINTERNAL;
	return 0;
}
