/*
 * What the sorted-set command files share (cmd_zset.c, cmd_zrange.c): the
 * way a command opens a zset, parses scores and ranges as Redis 7.0 does,
 * writes an element of a WITHSCORES reply, and stores a result built whole
 * (the *STORE commands). Internal to the data node.
 */
#ifndef NARF_DN_CMD_ZSET_H
#define NARF_DN_CMD_ZSET_H

#include <stdbool.h>
#include <stddef.h>

#include "common/coll_zset.h"
#include "engine.h"
#include "reply.h"

/* Per member stored, on top of its bytes: the memory check's estimate. */
#define NARF_ZMEMBER_OVERHEAD 48

/* Reply to a store error (WRONGTYPE, OOM, value too large); NARF_ENOMEM
 * comes back (the connection closes). */
int narf_zcmd_store_error(struct narf_buf *out, int rv);

/* Open key as a zset for a write (created when create); -1 after an error
 * reply (a node in a cluster, WRONGTYPE, OOM). Pair a 0 with
 * narf_store_coll_close(). */
int narf_zcmd_open(struct narf_engine *e,
                   const char *key,
                   size_t klen,
                   size_t grow,
                   bool create,
                   struct narf_cref *r,
                   struct narf_buf *out);

/* A score as Redis's string2d() takes it (ZADD, ZINCRBY, WEIGHTS): strtod
 * of the whole argument, no leading space, no overflow or underflow to
 * zero, no NaN; "inf", "+inf", "-inf" are fine. */
bool narf_zcmd_parse_score(const char *s, size_t n, double *d);
/* ZRANGEBYSCORE's min and max as zslParseRange() takes them: "(" makes an
 * end exclusive; then strtod, which here allows leading spaces, an empty
 * string (0) and infinities but not NaN. false: "min or max is not a
 * float". */
bool narf_zcmd_parse_range(const char *min,
                           size_t minlen,
                           const char *max,
                           size_t maxlen,
                           struct narf_zsl_range *r);
/* ZRANGEBYLEX's ends ("[a", "(a", "-", "+"); false: "min or max not valid
 * string range item". The range borrows the argument bytes. */
bool narf_zcmd_parse_lex(const char *min,
                         size_t minlen,
                         const char *max,
                         size_t maxlen,
                         struct narf_zsl_lexrange *r);

/* One element of a narf_reply_pairs reply: the member, and with scores its
 * score (a pair in RESP3). */
static inline int narf_zcmd_reply_elem(const struct narf_client *c,
                                       struct narf_buf *out,
                                       const struct narf_str *m,
                                       double score,
                                       bool withscores)
{
	if (withscores)
		narf_reply_pair(c, out);
	narf_resp_bulk(out, m->s, m->len);
	return withscores ? narf_reply_double(c, out, score) : 0;
}

/* A *STORE's end: dst takes the zset in *result (ownership moves, in
 * the encoding it was built in), replacing whatever dst held, TTL
 * included; an empty result deletes dst. Replies with the result's size,
 * or OOM, leaving dst as it was, when the result took the store past
 * max-memory under noeviction. */
int narf_zcmd_store(struct narf_engine *e,
                    const char *dst,
                    size_t dlen,
                    struct narf_coll *result,
                    struct narf_buf *out);

/* Effects (cmd_effect.c applies them): collect a removed member into a
 * struct narf_fx (a narf_zset_removed_cb), and send what was collected
 * with the zset's size now, unless the zset is gone (its delete goes out
 * when it closes). */
void narf_zcmd_fx_member(void *arg, const struct narf_str *m, double score);
void narf_zcmd_send(struct narf_engine *e,
                    struct narf_cref *r,
                    const char *key,
                    size_t klen,
                    const char *op,
                    struct narf_fx *fx);

#endif /* NARF_DN_CMD_ZSET_H */
