/*
 * The waiter registry of blocking.h: keys in a dict, each with a FIFO of
 * links; waiters on one list in arrival order and, those with a deadline,
 * in a binary min-heap; a counter of links per slot; the ready list.
 *
 * A key record lives while it has waiters, is on the ready list, or is
 * pinned: whichever of the three ends last frees it (key_gc), so the
 * server may serve a key whose waiters all leave as it does.
 */
#include "blocking.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char *bkey_key(const struct narf_dict_node *n,
                                     size_t *len)
{
	const struct narf_bkey *k = (const struct narf_bkey *)n;

	*len = k->klen;
	return (const unsigned char *)k->key;
}

static const struct narf_dict_type bkey_type = {.key = bkey_key};

void narf_block_init(struct narf_block *b, const uint8_t seed[16])
{
	memset(b, 0, sizeof(*b));
	memcpy(b->seed, seed, sizeof(b->seed));
	narf_dict_init(&b->keys, &bkey_type, b->seed, NULL);
}

void narf_block_close(struct narf_block *b)
{
	if (b == NULL)
		return;
	while (b->first != NULL)
		narf_block_remove(b, b->first);
	/* Keys left are only signalled ones (no waiter): free them. */
	while (b->ready_head != NULL) {
		struct narf_bkey *k = narf_block_take_ready(b);

		narf_block_unpin(b, k);
	}
	narf_dict_close(&b->keys);
	free(b->heap);
	free(b->slot_links);
	b->heap = NULL;
	b->slot_links = NULL;
	b->heap_n = b->heap_cap = 0;
}

/* --- the deadline heap ---------------------------------------------------- */

static bool earlier(const struct narf_waiter *a, const struct narf_waiter *b)
{
	return a->deadline != b->deadline ? a->deadline < b->deadline
	                                  : a->seq < b->seq;
}

static void heap_set(struct narf_block *b, size_t i, struct narf_waiter *w)
{
	b->heap[i] = w;
	w->heap_pos = i;
}

static void heap_up(struct narf_block *b, size_t i)
{
	struct narf_waiter *w = b->heap[i];

	while (i > 0 && earlier(w, b->heap[(i - 1) / 2])) {
		heap_set(b, i, b->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(b, i, w);
}

static void heap_down(struct narf_block *b, size_t i)
{
	struct narf_waiter *w = b->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= b->heap_n)
			break;
		if (c + 1 < b->heap_n && earlier(b->heap[c + 1], b->heap[c]))
			c++;
		if (!earlier(b->heap[c], w))
			break;
		heap_set(b, i, b->heap[c]);
		i = c;
	}
	heap_set(b, i, w);
}

static int heap_push(struct narf_block *b, struct narf_waiter *w)
{
	if (b->heap_n == b->heap_cap) {
		size_t cap = b->heap_cap ? 2 * b->heap_cap : 16;
		struct narf_waiter **h = realloc(b->heap, cap * sizeof(*h));

		if (h == NULL)
			return -1;
		b->heap = h;
		b->heap_cap = cap;
	}
	heap_set(b, b->heap_n++, w);
	heap_up(b, b->heap_n - 1);
	return 0;
}

static void heap_del(struct narf_block *b, struct narf_waiter *w)
{
	size_t i = w->heap_pos;
	struct narf_waiter *last;

	if (i == SIZE_MAX)
		return;
	assert(i < b->heap_n && b->heap[i] == w);
	w->heap_pos = SIZE_MAX;
	last = b->heap[--b->heap_n];
	if (last == w)
		return;
	heap_set(b, i, last);
	heap_up(b, i);
	heap_down(b, last->heap_pos);
}

uint64_t narf_block_next_deadline(const struct narf_block *b)
{
	return b->heap_n > 0 ? b->heap[0]->deadline : 0;
}

struct narf_waiter *narf_block_expired(const struct narf_block *b, uint64_t now)
{
	if (b->heap_n == 0 || b->heap[0]->deadline > now)
		return NULL;
	return b->heap[0];
}

/* --- keys ----------------------------------------------------------------- */

static struct narf_bkey *key_find(struct narf_block *b,
                                  const char *key,
                                  size_t klen)
{
	return (struct narf_bkey *)narf_dict_find(&b->keys, key, klen);
}

static struct narf_bkey *key_get(struct narf_block *b,
                                 unsigned slot,
                                 const char *key,
                                 size_t klen)
{
	struct narf_bkey *k = key_find(b, key, klen);

	if (k != NULL)
		return k;
	k = calloc(1, sizeof(*k) + klen + 1); /* NUL-terminated too */
	if (k == NULL)
		return NULL;
	k->slot = slot;
	k->klen = klen;
	memcpy(k->key, key, klen);
	if (narf_dict_add(&b->keys, &k->node) != 0) {
		free(k);
		return NULL;
	}
	return k;
}

/* Free k once nothing holds it: no waiter, not ready, not pinned. */
static void key_gc(struct narf_block *b, struct narf_bkey *k)
{
	if (k->head != NULL || k->ready || k->pinned)
		return;
	narf_dict_unlink(&b->keys, k->key, k->klen);
	free(k);
}

void narf_block_signal_key(struct narf_block *b,
                           unsigned slot,
                           const char *key,
                           size_t klen)
{
	struct narf_bkey *k = key_find(b, key, klen);

	(void)slot;
	if (k == NULL || k->head == NULL || k->ready)
		return;
	k->ready = true;
	k->rnext = NULL;
	if (b->ready_tail != NULL)
		b->ready_tail->rnext = k;
	else
		b->ready_head = k;
	b->ready_tail = k;
}

struct narf_bkey *narf_block_take_ready(struct narf_block *b)
{
	struct narf_bkey *k = b->ready_head;

	if (k == NULL)
		return NULL;
	b->ready_head = k->rnext;
	if (b->ready_head == NULL)
		b->ready_tail = NULL;
	k->rnext = NULL;
	k->ready = false;
	k->pinned = true;
	return k;
}

void narf_block_unpin(struct narf_block *b, struct narf_bkey *k)
{
	k->pinned = false;
	key_gc(b, k);
}

/* --- waiters -------------------------------------------------------------- */

/* One allocation: the pointers, the lengths, then the bytes (each argument
 * NUL-terminated as well). */
static int copy_argv(struct narf_waiter *w,
                     int argc,
                     const char *const *argv,
                     const size_t *argvlen)
{
	size_t bytes = 0;
	char *p;

	for (int i = 0; i < argc; i++)
		bytes += argvlen[i] + 1;
	w->argv = malloc((sizeof(char *) + sizeof(size_t)) * (size_t)argc +
	                 bytes);
	if (w->argv == NULL)
		return -1;
	w->argvlen = (size_t *)(w->argv + argc);
	p = (char *)(w->argvlen + argc);
	for (int i = 0; i < argc; i++) {
		memcpy(p, argv[i], argvlen[i]);
		p[argvlen[i]] = '\0';
		w->argv[i] = p;
		w->argvlen[i] = argvlen[i];
		p += argvlen[i] + 1;
	}
	w->argc = argc;
	return 0;
}

static void link_key(struct narf_block *b,
                     struct narf_wlink *l,
                     struct narf_waiter *w,
                     struct narf_bkey *k)
{
	l->w = w;
	l->k = k;
	l->next = NULL;
	l->prev = k->tail;
	if (k->tail != NULL)
		k->tail->next = l;
	else
		k->head = l;
	k->tail = l;
	b->slot_links[k->slot]++;
	b->links++;
}

static void unlink_key(struct narf_block *b, struct narf_wlink *l)
{
	struct narf_bkey *k = l->k;

	if (l->prev != NULL)
		l->prev->next = l->next;
	else
		k->head = l->next;
	if (l->next != NULL)
		l->next->prev = l->prev;
	else
		k->tail = l->prev;
	b->slot_links[k->slot]--;
	b->links--;
	key_gc(b, k);
}

/* Is argv[i] the same key as an earlier one of the run? */
static bool seen_before(const char *const *argv,
                        const size_t *argvlen,
                        int first,
                        int i)
{
	for (int j = first; j < i; j++)
		if (argvlen[j] == argvlen[i] &&
		    memcmp(argv[j], argv[i], argvlen[i]) == 0)
			return true;
	return false;
}

struct narf_waiter *narf_block_add(struct narf_block *b,
                                   void *owner,
                                   enum narf_type type,
                                   int argc,
                                   const char *const *argv,
                                   const size_t *argvlen,
                                   int key_first,
                                   int key_last,
                                   int numkeys_at,
                                   uint64_t deadline)
{
	struct narf_waiter *w;
	unsigned n = 0;

	assert(key_first >= 1 && key_first <= key_last && key_last < argc);
	if (b->slot_links == NULL) {
		b->slot_links = calloc(NARF_SLOTS, sizeof(*b->slot_links));
		if (b->slot_links == NULL)
			return NULL;
	}
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return NULL;
	w->links =
	        calloc((size_t)(key_last - key_first + 1), sizeof(*w->links));
	if (w->links == NULL || copy_argv(w, argc, argv, argvlen) != 0)
		goto err_after_alloc;
	w->owner = owner;
	w->type = type;
	w->key_first = key_first;
	w->key_last = key_last;
	w->numkeys_at = numkeys_at;
	w->deadline = deadline;
	w->seq = ++b->seq;
	w->heap_pos = SIZE_MAX;
	if (deadline != 0 && heap_push(b, w) != 0)
		goto err_after_alloc;
	for (int i = key_first; i <= key_last; i++) {
		struct narf_bkey *k;

		if (seen_before(argv, argvlen, key_first, i))
			continue;
		k = key_get(b, narf_slot_of(argv[i], argvlen[i]), argv[i],
		            argvlen[i]);
		if (k == NULL)
			goto err_after_links;
		link_key(b, &w->links[n++], w, k);
		w->nlinks = n;
	}
	w->prev = b->last;
	if (b->last != NULL)
		b->last->next = w;
	else
		b->first = w;
	b->last = w;
	b->waiters++;
	return w;

err_after_links:
	for (unsigned i = 0; i < w->nlinks; i++)
		unlink_key(b, &w->links[i]);
	heap_del(b, w);
err_after_alloc:
	free(w->argv);
	free(w->links);
	free(w);
	return NULL;
}

bool narf_block_unblock(struct narf_block *b,
                        uint64_t client,
                        enum narf_unblock how)
{
	for (struct narf_waiter *w = b->first; w != NULL; w = w->next) {
		if (w->client != client)
			continue;
		if (w->unblock != NARF_UNBLOCK_NONE)
			return false;
		w->unblock = how;
		b->unblocked++;
		return true;
	}
	return false;
}

struct narf_waiter *narf_block_find_token(const struct narf_block *b,
                                          uint64_t client,
                                          uint64_t token)
{
	for (struct narf_waiter *w = b->first; w != NULL; w = w->next)
		if (w->client == client && w->token == token)
			return w;
	return NULL;
}

struct narf_waiter *narf_block_unblocked(const struct narf_block *b)
{
	if (b->unblocked == 0)
		return NULL;
	for (struct narf_waiter *w = b->first; w != NULL; w = w->next)
		if (w->unblock != NARF_UNBLOCK_NONE)
			return w;
	return NULL;
}

void narf_block_remove(struct narf_block *b, struct narf_waiter *w)
{
	if (w->unblock != NARF_UNBLOCK_NONE)
		b->unblocked--;
	for (unsigned i = 0; i < w->nlinks; i++)
		unlink_key(b, &w->links[i]);
	heap_del(b, w);
	if (w->prev != NULL)
		w->prev->next = w->next;
	else
		b->first = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	else
		b->last = w->prev;
	b->waiters--;
	free(w->argv);
	free(w->links);
	free(w);
}

int narf_waiter_argv(const struct narf_waiter *w,
                     const struct narf_bkey *k,
                     const char **argv,
                     size_t *argvlen)
{
	int n = 0;

	for (int i = 0; i < w->argc; i++) {
		if (i == w->key_first) {
			argv[n] = k->key;
			argvlen[n++] = k->klen;
			i = w->key_last;
		} else if (w->numkeys_at > 0 && i == w->numkeys_at) {
			argv[n] = "1";
			argvlen[n++] = 1;
		} else {
			argv[n] = w->argv[i];
			argvlen[n++] = w->argvlen[i];
		}
	}
	return n;
}
