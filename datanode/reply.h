/*
 * Replies whose bytes depend on the client's protocol (HELLO 2 or 3).
 *
 * A connection speaks RESP2 until it says HELLO 3 (c->resp, engine.h).
 * RESP3 gives a reply types RESP2 spells with the few it has: a null is
 * `_` rather than `$-1` or `*-1`, a map `%n` rather than an array of 2n, a
 * set `~n` rather than `*n`, a double `,v` rather than a bulk of its
 * digits, a boolean `#t`/`#f` rather than `:1`/`:0`, and text meant for
 * people (INFO) a verbatim string `=n txt:...` rather than a bulk. Each
 * helper below writes what Redis 7.0 writes to a client of c's protocol:
 * one predictable branch, taken only in replies that differ, so a RESP2
 * client's bytes are exactly what they were before RESP3 (the existing
 * suites hold them) and the string path pays nothing more.
 *
 * Replies that are the same in both protocols (simple strings, errors,
 * integers, bulks, arrays) keep using common/resp.h directly. All helpers
 * return 0, or NARF_ENOMEM leaving out unchanged (common/resp.h's
 * contract); aggregate headers announce elements the caller appends next.
 */
#ifndef NARF_DN_REPLY_H
#define NARF_DN_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#include "engine.h"

/* No value: `_` (RESP3) or `$-1` (RESP2): GET of a missing key. */
static inline int narf_reply_null(const struct narf_client *c,
                                  struct narf_buf *out)
{
	return c->resp == 3 ? narf_resp3_null(out) : narf_resp_null(out);
}

/* No array: `_` (RESP3) or `*-1` (RESP2): COMMAND INFO of an unknown name. */
static inline int narf_reply_null_array(const struct narf_client *c,
                                        struct narf_buf *out)
{
	return c->resp == 3 ? narf_resp3_null(out) : narf_resp_null_array(out);
}

/* A map of pairs key/value pairs: `%pairs` (RESP3) or `*2pairs` (RESP2,
 * keys and values alternating): HELLO, CONFIG GET, CLUSTER SHARDS. */
static inline int narf_reply_map(const struct narf_client *c,
                                 struct narf_buf *out,
                                 long long pairs)
{
	return c->resp == 3 ? narf_resp3_map(out, pairs)
	                    : narf_resp_array(out, 2 * pairs);
}

/* A set of n elements: `~n` (RESP3) or `*n` (RESP2): COMMAND's flags. */
static inline int narf_reply_set(const struct narf_client *c,
                                 struct narf_buf *out,
                                 long long n)
{
	return c->resp == 3 ? narf_resp3_set(out, n) : narf_resp_array(out, n);
}

/* A double: `,%.17g` (RESP3) or a bulk of the same digits (RESP2), as
 * Redis 7.0's addReplyDouble() (common/resp.h has the spellings). */
static inline int narf_reply_double(const struct narf_client *c,
                                    struct narf_buf *out,
                                    double v)
{
	return c->resp == 3 ? narf_resp3_double(out, v)
	                    : narf_resp2_double(out, v);
}

/* A boolean: `#t`/`#f` (RESP3) or `:1`/`:0` (RESP2), as addReplyBool(). */
static inline int narf_reply_bool(const struct narf_client *c,
                                  struct narf_buf *out,
                                  bool v)
{
	return c->resp == 3 ? narf_resp3_bool(out, v)
	                    : narf_resp_int(out, v ? 1 : 0);
}

/* Plain text: a verbatim string `=n+4 txt:...` (RESP3) or a bulk (RESP2):
 * INFO, CLIENT INFO, CLUSTER INFO and NODES. */
static inline int narf_reply_verbatim(const struct narf_client *c,
                                      struct narf_buf *out,
                                      const void *p,
                                      size_t n)
{
	return c->resp == 3 ? narf_resp3_verbatim(out, p, n)
	                    : narf_resp_bulk(out, p, n);
}

/* A reply of n (member, score) pairs, WITHSCORES's form: flat `*2n` in
 * RESP2, `*n` of `*2` pairs in RESP3 (each pair then starts with
 * narf_reply_pair); without scores, `*n` members in both. */
static inline int narf_reply_pairs(const struct narf_client *c,
                                   struct narf_buf *out,
                                   long long n,
                                   bool withscores)
{
	return narf_resp_array(out, withscores && c->resp != 3 ? 2 * n : n);
}

/* Opens one pair of narf_reply_pairs: `*2` in RESP3, nothing in RESP2. */
static inline int narf_reply_pair(const struct narf_client *c,
                                  struct narf_buf *out)
{
	return c->resp == 3 ? narf_resp_array(out, 2) : 0;
}

#endif /* NARF_DN_REPLY_H */
