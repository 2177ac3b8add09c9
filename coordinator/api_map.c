/*
 * The map as the API sends it (api_map.h): the whole map's reply line,
 * encoded once per epoch and shared; the map digest; and replies that
 * carry map deltas from the Raft node's ring (docs/protocol.md, "Map
 * deltas"), written as bytes: the fixed part printed, the ring's entries
 * copied, no JSON tree. Pure with respect to I/O: api.c sends what these
 * build, and the unit tests and tests/fuzz/fuzz_api.c read it.
 */
#include "api_map.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The full map as its reply line, {"ok":true,"epoch":E,"map":{...}}\n,
 * encoded once per epoch and shared by every fetch until the epoch moves
 * (op map, cachecli, the laggards a heartbeat told "full"): in steady
 * state nobody is behind and nothing is encoded, and a burst of joiners
 * costs one encode. Borrowed (take a reference to keep it); NULL
 * without memory.
 */
struct narf_blob *narf_api_full_map(struct narf_coord *c)
{
	const struct narf_map *m = c->rn.map;
	struct narf_blob *b;
	char head[64];
	size_t n, hn;
	json_t *obj;
	char *text;

	if (c->full != NULL && c->full_epoch == m->epoch)
		return c->full;
	obj = narf_map_to_json(m);
	text = obj != NULL ? json_dumps(obj, JSON_COMPACT) : NULL;
	json_decref(obj);
	if (text == NULL)
		return NULL;
	n = strlen(text);
	hn = (size_t)snprintf(
	        head, sizeof(head),
	        "{\"ok\":true,\"epoch\":%" PRIu64 ",\"map\":", m->epoch);
	b = narf_blob_create(hn + n + 2);
	if (b == NULL) {
		free(text);
		return NULL;
	}
	memcpy(b->data, head, hn);
	memcpy(b->data + hn, text, n);
	memcpy(b->data + hn + n, "}\n", 2);
	free(text);
	narf_blob_unref(c->full);
	c->full = b;
	c->full_epoch = m->epoch;
	c->map_full_encodes++;
	return b;
}

/* The map's digest (narf_map_digest()) as 16 hex digits, computed once
 * per epoch: every heartbeat reply to a node that applies deltas and
 * every ping carry it. Members whose FSMs hold the same map report the
 * same digest, which is how tests compare followers' state. Borrowed. */
const char *narf_api_map_digest(struct narf_coord *c)
{
	if (c->digest[0] == '\0' || c->digest_epoch != c->rn.map->epoch) {
		snprintf(c->digest, sizeof(c->digest), "%016llx",
		         (unsigned long long)narf_map_digest(c->rn.map));
		c->digest_epoch = c->rn.map->epoch;
	}
	return c->digest;
}

/* Did the caller send "deltas":1 (it applies map deltas)? */
bool narf_api_wants_deltas(const json_t *req)
{
	json_t *v = json_object_get(req, "deltas");

	return json_is_true(v) ||
	       (json_is_integer(v) && json_integer_value(v) >= 1);
}

/* The map epoch the caller says it holds ("epoch"), or 0 (none). */
uint64_t narf_api_have_epoch(const json_t *req)
{
	json_t *v = json_object_get(req, "epoch");

	return json_is_integer(v) && json_integer_value(v) > 0
	               ? (uint64_t)json_integer_value(v)
	               : 0;
}

/* The most delta bytes worth sending instead of the full map: half of
 * it, at most NARF_API_DELTA_MAX. Its size is the last encode's (of any
 * epoch: a map grows slowly), or before any a low guess from its nodes
 * (the first laggard's full fetch corrects it). O(1): a beat never
 * encodes the map to find out. */
static size_t delta_limit(const struct narf_coord *c)
{
	size_t full = c->full != NULL ? c->full->len
	                              : 512 + 200 * (size_t)c->rn.map->n_nodes;

	return full / 2 < NARF_API_DELTA_MAX ? full / 2 : NARF_API_DELTA_MAX;
}

/* The ring's entries that bring a map at epoch have to ours: 0 with *n
 * of them in *iov (owned by the caller, free() it; none when current),
 * NARF_ENOTFOUND when the full map must go instead, or NARF_ENOMEM. */
static int deltas_for(struct narf_coord *c,
                      uint64_t have,
                      struct narf_iov **iov,
                      unsigned *n,
                      size_t *bytes)
{
	const struct narf_ring *r = &c->rn.ring;
	uint64_t epoch = c->rn.map->epoch;

	*iov = NULL;
	*n = 0;
	*bytes = 0;
	if (have == epoch)
		return 0;
	/* (a node without a map, or ahead of us, or further behind than
	 * the ring reaches; the ring always ends at the map's epoch, but
	 * never trust a mismatch) */
	if (have == 0 || have > epoch || epoch - have > r->n ||
	    r->last != epoch)
		return NARF_ENOTFOUND;
	*iov = malloc((size_t)(epoch - have) * sizeof(**iov));
	if (*iov == NULL)
		return NARF_ENOMEM;
	if (narf_ring_since(r, have, delta_limit(c), *iov,
	                    (unsigned)(epoch - have), n, bytes) != 0) {
		free(*iov);
		*iov = NULL;
		return NARF_ENOTFOUND;
	}
	return 0;
}

/* head (head_len bytes, a reply without its closing brace) + the tail
 * deltas_for() chose + "}\n", as one line: snprintf of the fixed part and
 * memcpy of the ring's bytes, no JSON tree. */
static struct narf_blob *delta_line(struct narf_coord *c,
                                    const char *head,
                                    size_t head_len,
                                    bool full,
                                    uint64_t have,
                                    const struct narf_iov *iov,
                                    unsigned n,
                                    size_t bytes)
{
	struct narf_blob *b;
	char mid[64] = "";
	size_t mid_len = 0, len, off;

	if (full)
		mid_len = (size_t)snprintf(mid, sizeof(mid), ",\"full\":true");
	else if (n > 0)
		mid_len = (size_t)snprintf(mid, sizeof(mid),
		                           ",\"from\":%" PRIu64 ",\"deltas\":[",
		                           have + 1);
	/* the entries, n - 1 commas and "]", then "}\n" */
	len = head_len + mid_len + (n > 0 ? bytes + n : 0) + 2;
	b = narf_blob_create(len);
	if (b == NULL)
		return NULL;
	memcpy(b->data, head, head_len);
	off = head_len;
	memcpy(b->data + off, mid, mid_len);
	off += mid_len;
	for (unsigned i = 0; i < n; i++) {
		memcpy(b->data + off, iov[i].base, iov[i].len);
		off += iov[i].len;
		b->data[off++] = i + 1 < n ? ',' : ']';
	}
	memcpy(b->data + off, "}\n", 2);
	c->map_delta_bytes += bytes;
	return b;
}

struct narf_blob *narf_api_delta_reply(struct narf_coord *c,
                                       const char *head,
                                       size_t head_len,
                                       uint64_t have)
{
	struct narf_iov *iov;
	struct narf_blob *b;
	size_t bytes;
	unsigned n;
	int rv = deltas_for(c, have, &iov, &n, &bytes);

	if (rv == NARF_ENOMEM)
		return NULL;
	b = delta_line(c, head, head_len, rv != 0, have, iov, n, bytes);
	free(iov);
	return b;
}

struct narf_blob *narf_api_map_line(struct narf_coord *c,
                                    uint64_t have,
                                    bool deltas)
{
	struct narf_blob *full;

	if (deltas) {
		struct narf_iov *iov;
		size_t bytes;
		unsigned n;
		int rv = deltas_for(c, have, &iov, &n, &bytes);

		if (rv == NARF_ENOMEM)
			return NULL;
		if (rv == 0 && n > 0) {
			struct narf_blob *b;
			char head[64];
			int hn = snprintf(head, sizeof(head),
			                  "{\"ok\":true,\"epoch\":%" PRIu64,
			                  c->rn.map->epoch);

			b = delta_line(c, head, (size_t)hn, false, have, iov, n,
			               bytes);
			free(iov);
			return b;
		}
		free(iov);
	}
	full = narf_api_full_map(c);
	if (full == NULL)
		return NULL;
	c->map_full_bytes += full->len;
	return narf_blob_ref(full);
}
