/*
 * Clients blocked on keys (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP; the
 * sorted-set pops BZPOPMIN, BZPOPMAX, BZMPOP plug in the same way): the
 * loop-free core of docs/datatypes-plan.md, section 4.
 *
 * A command that finds nothing to pop returns NARF_EXEC_BLOCK after
 * narf_block_wait() noted what it waits for in the client (the argv
 * indexes of its keys, the type it pops, its timeout). The server then
 * makes a waiter of it here (narf_block_add): a copy of the request, the
 * connection it names (an opaque `owner`), one link per distinct key, and
 * its deadline. The core keeps, all of it without I/O:
 *
 *  - per key, its waiters first come first served (FIFO, as Redis 7.0);
 *  - a min-heap of deadlines, ties in the order the waiters came;
 *  - per slot, how many links wait there, so that a push pays one load
 *    when nobody waits (narf_block_signal is inline);
 *  - the ready list: keys a write may have made poppable, each once, in
 *    the order signalled (a key taken off it may be signalled again while
 *    it is served: a BLMOVE from a key onto itself).
 *
 * The server serves the ready list after each command (not each batch,
 * so a pipelined `RPUSH k a; LPOP k` loses `a` to an earlier BLPOP): for
 * each key taken, its waiters in order, each by running its request again
 * narrowed to that key (narf_waiter_argv), until one finds nothing; the
 * waiters it served it removes. Which types a waiter may be served from is
 * its own (a list waiter skips a key that became a set and stays blocked),
 * so the registry itself knows no types beyond comparing them.
 *
 * Ownership: the core owns waiters, their argv copies, and the key
 * records; owners are borrowed and never looked into.
 */
#ifndef NARF_BLOCKING_H
#define NARF_BLOCKING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/dict.h"
#include "common/slot.h"
#include "common/store.h"

struct narf_bkey;
struct narf_wlink;

/* CLIENT UNBLOCK's verdict on a waiter, for the server to answer. */
enum narf_unblock {
	NARF_UNBLOCK_NONE = 0,
	NARF_UNBLOCK_TIMEOUT, /* answered as if it timed out */
	NARF_UNBLOCK_ERROR,   /* answered -UNBLOCKED */
};

struct narf_waiter {
	void *owner;     /* borrowed: who waits (a server connection) */
	uint64_t client; /* its client id (CLIENT UNBLOCK) */
	/* A peer's blocking pop (NARF.REQ): owner is the peer's link, which
	 * gets the reply in a push frame under token, in protocol resp;
	 * token is 0 for a client of this node. */
	uint64_t token;
	uint8_t resp;
	enum narf_unblock unblock; /* set: never served, answered so */
	enum narf_type type; /* what it pops: served only from such a key */
	int argc;
	char **argv; /* owned: the request, one allocation with argvlen */
	size_t *argvlen;
	/* argv[key_first..key_last] are its keys (one run, as every
	 * blocking command has); numkeys_at, when > 0, the argument that
	 * counts them (BLMPOP) */
	int key_first, key_last, numkeys_at;
	uint64_t deadline; /* ms on the caller's clock; 0: none */
	uint64_t seq;      /* order of arrival */
	size_t heap_pos;   /* in the deadline heap; SIZE_MAX when not */
	unsigned nlinks;
	struct narf_wlink *links;        /* owned: one per distinct key */
	struct narf_waiter *prev, *next; /* every waiter, oldest first */
};

/* A waiter's place in one key's queue. */
struct narf_wlink {
	struct narf_waiter *w;
	struct narf_bkey *k;
	struct narf_wlink *prev, *next;
};

/* A key somebody waits for (or that is signalled or pinned). */
struct narf_bkey {
	struct narf_dict_node node;     /* first: the dict's */
	struct narf_wlink *head, *tail; /* its waiters, oldest first */
	struct narf_bkey *rnext;        /* on the ready list */
	bool ready;                     /* on the ready list */
	bool pinned;                    /* being served */
	unsigned slot;
	size_t klen;
	char key[]; /* klen bytes and a NUL */
};

struct narf_block {
	struct narf_dict keys; /* struct narf_bkey, by key */
	uint8_t seed[16];
	uint32_t *slot_links; /* owned, NARF_SLOTS entries, NULL until used */
	uint64_t links;       /* all links */
	unsigned waiters;
	struct narf_waiter *first, *last; /* every waiter, oldest first */
	struct narf_waiter **heap;        /* owned: waiters with a deadline */
	size_t heap_n, heap_cap;
	struct narf_bkey *ready_head, *ready_tail;
	unsigned unblocked; /* waiters with an unblock verdict */
	uint64_t seq;
};

/* An empty registry; seed (16 bytes, copied) keys its hash. */
void narf_block_init(struct narf_block *b, const uint8_t seed[16]);
/* Free every waiter and key; NULL is fine. */
void narf_block_close(struct narf_block *b);

/*
 * A waiter for owner: a copy of argv[0..argc), waiting on the distinct
 * keys argv[key_first..key_last] (numkeys_at as struct narf_waiter says)
 * for a value of type `type`, until deadline (0: forever). Returns it
 * (owned by b until narf_block_remove), or NULL when out of memory.
 */
struct narf_waiter *narf_block_add(struct narf_block *b,
                                   void *owner,
                                   enum narf_type type,
                                   int argc,
                                   const char *const *argv,
                                   const size_t *argvlen,
                                   int key_first,
                                   int key_last,
                                   int numkeys_at,
                                   uint64_t deadline);
/* Unlink w from its keys and the heap and free it. */
void narf_block_remove(struct narf_block *b, struct narf_waiter *w);

/*
 * CLIENT UNBLOCK id: the waiter of client `client` gets verdict how (not
 * NARF_UNBLOCK_NONE) and is never served again; the server answers it
 * (narf_block_unblocked) and removes it. false when that client waits for
 * no key (or already has a verdict).
 */
bool narf_block_unblock(struct narf_block *b,
                        uint64_t client,
                        enum narf_unblock how);
/* The waiter of client `client` under token (a peer's), or NULL. */
struct narf_waiter *narf_block_find_token(const struct narf_block *b,
                                          uint64_t client,
                                          uint64_t token);
/* A waiter with a verdict, or NULL (it stays registered until removed). */
struct narf_waiter *narf_block_unblocked(const struct narf_block *b);

/* Blocked clients (INFO blocked_clients). */
static inline unsigned narf_block_count(const struct narf_block *b)
{
	return b->waiters;
}

void narf_block_signal_key(struct narf_block *b,
                           unsigned slot,
                           const char *key,
                           size_t klen);
/* A write may have made key (of slot) poppable: queue it if anybody waits
 * for it. Costs one load when nobody waits in the slot. */
static inline void narf_block_signal(struct narf_block *b,
                                     unsigned slot,
                                     const char *key,
                                     size_t klen)
{
	if (b->links != 0 && b->slot_links[slot] != 0)
		narf_block_signal_key(b, slot, key, klen);
}

/* Are keys signalled and not served yet? */
static inline bool narf_block_any_ready(const struct narf_block *b)
{
	return b->ready_head != NULL;
}

/* The oldest signalled key, taken off the ready list and pinned (it stays,
 * waiters or not, until narf_block_unpin), or NULL. */
struct narf_bkey *narf_block_take_ready(struct narf_block *b);
void narf_block_unpin(struct narf_block *b, struct narf_bkey *k);

/* Its oldest waiter's link, or NULL; the next one with link->next. */
static inline struct narf_wlink *narf_block_queue(const struct narf_bkey *k)
{
	return k->head;
}

/*
 * w's request narrowed to key k (one of its keys), to serve it from k: the
 * key run replaced by k alone and a count, if any, by 1. argv and argvlen
 * get at most w->argc entries, borrowed from w and k; returns their count.
 */
int narf_waiter_argv(const struct narf_waiter *w,
                     const struct narf_bkey *k,
                     const char **argv,
                     size_t *argvlen);

/* The earliest deadline, or 0 when no waiter has one. */
uint64_t narf_block_next_deadline(const struct narf_block *b);
/* A waiter whose deadline is <= now, earliest (then oldest) first, or
 * NULL. It stays registered: the caller answers and removes it. */
struct narf_waiter *narf_block_expired(const struct narf_block *b,
                                       uint64_t now);

/* Links waiting in slot s (tests, and whether a map change concerns us). */
static inline uint32_t narf_block_slot_links(const struct narf_block *b,
                                             unsigned s)
{
	return b->slot_links != NULL ? b->slot_links[s] : 0;
}

#endif /* NARF_BLOCKING_H */
