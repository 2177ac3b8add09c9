/*
 * What the two halves of the list family (cmd_list.c: pushes, pops, reads
 * and edits; cmd_list_move.c: LPOS, LMOVE, RPOPLPUSH, LMPOP and their
 * blocking forms) share: opening a list for a write, sending effects,
 * error replies, and replying with
 * elements. Internal to the data node.
 */
#ifndef NARF_DN_CMD_LIST_H
#define NARF_DN_CMD_LIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/quicklist.h"
#include "engine.h"

/* Per element pushed, on top of its bytes: the memory check's estimate (a
 * listpack entry's encoding and back-length, a share of a node). */
#define NARF_LIST_ELEM_OVERHEAD 16

/* Send a list command's effect for key (cmd_effect.c applies it):
 * NARF.<op> <epoch> <key> <length now> <args...>; nothing when the list
 * is gone (its delete goes out when it closes) or outside a cluster. */
void narf_list_effect(struct narf_engine *e,
                      const struct narf_cref *r,
                      const char *key,
                      size_t klen,
                      const char *op,
                      int n,
                      const char *const *args,
                      const size_t *lens);
/* An end's word for an effect: "LEFT" or "RIGHT". */
const char *narf_list_end_word(enum narf_ql_end end);

/* Open key as a list for a write (created when create), `grow` bytes
 * checked against max-memory: 0, with r->e NULL when the key is absent
 * and not created, or -1 after an error reply (WRONGTYPE, OOM). Pair a 0 with
 * narf_list_close. */
int narf_list_open(struct narf_engine *e,
                   const char *key,
                   size_t klen,
                   size_t grow,
                   bool create,
                   struct narf_cref *r,
                   struct narf_buf *out);
/* Write the list back; an emptied one is deleted. */
void narf_list_close(struct narf_engine *e, struct narf_cref *r);

/* The reply to a store error (NARF_EWRONGTYPE, NARF_EOOM, NARF_ETOOLARGE);
 * NARF_ENOMEM is returned for the connection to close. */
int narf_list_reply_error(struct narf_buf *out, int rv);

/* The element under it as a bulk. */
int narf_list_reply_elem(struct narf_buf *out, const struct narf_ql_iter *it);

/* Pop up to n elements from end, replying with an array of them in pop
 * order (LPOP/RPOP count, LMPOP). 0 or NARF_ENOMEM. */
int narf_list_pop_reply(struct narf_buf *out,
                        struct narf_ql *ql,
                        enum narf_ql_end end,
                        uint64_t n);

/* cmd_list_move.c's commands, in cmd_list.c's table. */
int narf_cmd_lpos(struct narf_engine *e,
                  struct narf_client *c,
                  int argc,
                  const char **argv,
                  const size_t *len,
                  struct narf_buf *out);
int narf_cmd_lmove(struct narf_engine *e,
                   struct narf_client *c,
                   int argc,
                   const char **argv,
                   const size_t *len,
                   struct narf_buf *out);
int narf_cmd_rpoplpush(struct narf_engine *e,
                       struct narf_client *c,
                       int argc,
                       const char **argv,
                       const size_t *len,
                       struct narf_buf *out);
int narf_cmd_lmpop(struct narf_engine *e,
                   struct narf_client *c,
                   int argc,
                   const char **argv,
                   const size_t *len,
                   struct narf_buf *out);
int narf_cmd_blmove(struct narf_engine *e,
                    struct narf_client *c,
                    int argc,
                    const char **argv,
                    const size_t *len,
                    struct narf_buf *out);
int narf_cmd_brpoplpush(struct narf_engine *e,
                        struct narf_client *c,
                        int argc,
                        const char **argv,
                        const size_t *len,
                        struct narf_buf *out);
int narf_cmd_blmpop(struct narf_engine *e,
                    struct narf_client *c,
                    int argc,
                    const char **argv,
                    const size_t *len,
                    struct narf_buf *out);

#endif /* NARF_DN_CMD_LIST_H */
