/*
 * The listpack: a compact packed array of strings and integers in one
 * contiguous allocation, the small encoding of hashes and sorted sets and
 * the node of a quicklist (docs/datatypes-plan.md, section 2).
 *
 * Our own code of the format idea of Redis's listpack (decision 1 of the
 * plan): a header with the total size and the element count, then entries
 * that can be walked forwards (each starts with its encoding) and backwards
 * (each ends with its own length), then an end byte. Strings that look like
 * canonical integers ("123", "-5", never "0123", "+1" or "-0") are stored
 * as integers in as few bytes as fit. listpack.c opens with the byte-level
 * layout.
 *
 * Positions are byte offsets into the listpack (uint32_t), not pointers, so
 * they survive the realloc of a mutation; 0 (NARF_LP_NONE) means "no
 * element", as no entry starts inside the header. A mutation invalidates
 * every position but the ones it hands back.
 *
 * Memory accounting: every function that allocates takes `uint64_t *used`
 * (may be NULL), to which it adds the allocator's usable size of what it
 * holds and from which it subtracts what it gives back, as the store's
 * narf_store_malloc() does for used_memory. When slice 1's struct narf_mem
 * lands this pointer becomes &mem->used (or the struct itself).
 *
 * Sizes are bounded: a listpack never grows past NARF_LP_MAX_BYTES; a
 * mutation that would returns NARF_ETOOLARGE and leaves it unchanged, as does
 * NARF_ENOMEM.
 */
#ifndef NARF_LISTPACK_H
#define NARF_LISTPACK_H

#include <stddef.h>
#include <stdint.h>

#define NARF_LP_NONE 0u
#define NARF_LP_MAX_BYTES UINT32_MAX
/* Bytes of an empty listpack (header and end byte): what two listpacks save
 * when narf_lp_concat joins them. */
#define NARF_LP_EMPTY_BYTES 9u
/* Longest decimal form of an int64 ("-9223372036854775808"), plus a NUL. */
#define NARF_LP_INTBUF 21

/* One element as read: a string view into the listpack (valid until the next
 * mutation) when s != NULL, else the integer v. */
struct narf_lp_val {
	const unsigned char *s; /* borrowed from the listpack, or NULL */
	uint32_t len;
	int64_t v;
};

enum narf_lp_where { NARF_LP_BEFORE, NARF_LP_AFTER };

/* A new empty listpack in *lpp (caller frees with narf_lp_destroy).
 * NARF_ENOMEM. */
int narf_lp_create(unsigned char **lpp, uint64_t *used);
/* Free a listpack; NULL is fine. */
void narf_lp_destroy(unsigned char *lp, uint64_t *used);

uint32_t narf_lp_count(const unsigned char *lp);
/* Bytes of the format (the header's total), not the allocation's size. */
size_t narf_lp_bytes(const unsigned char *lp);

/* Insert s[0..len) before or after the element at pos; pos may also be the
 * end byte's offset (narf_lp_end) with NARF_LP_BEFORE, which appends. s must
 * not point into *lpp. The new element's position goes to *newpos (may be
 * NULL). NARF_ENOMEM, NARF_ETOOLARGE. */
int narf_lp_insert(unsigned char **lpp,
                   uint64_t *used,
                   uint32_t pos,
                   enum narf_lp_where where,
                   const void *s,
                   size_t len,
                   uint32_t *newpos);
int narf_lp_append(unsigned char **lpp,
                   uint64_t *used,
                   const void *s,
                   size_t len);
int narf_lp_prepend(unsigned char **lpp,
                    uint64_t *used,
                    const void *s,
                    size_t len);
/* Same as the string forms, for an integer. */
int narf_lp_append_int(unsigned char **lpp, uint64_t *used, int64_t v);

/* Replace the element at pos with s[0..len) (not pointing into *lpp); pos
 * stays its position. NARF_ENOMEM, NARF_ETOOLARGE. */
int narf_lp_replace(unsigned char **lpp,
                    uint64_t *used,
                    uint32_t pos,
                    const void *s,
                    size_t len);
/* Delete the element at *pos; *pos becomes the next element's position or
 * NARF_LP_NONE when it was the last. Never fails. */
void narf_lp_delete(unsigned char **lpp, uint64_t *used, uint32_t *pos);
/* Delete up to n elements from index (negative counts from the tail, -1 the
 * last); an index out of range deletes nothing. Returns how many went. */
uint32_t narf_lp_delete_range(unsigned char **lpp,
                              uint64_t *used,
                              int64_t index,
                              uint32_t n);

/* Append all of src's elements to *dstp (src is unchanged and must not be
 * *dstp). A position p of src is p + *shift in *dstp afterwards (shift may be
 * NULL). NARF_ENOMEM, NARF_ETOOLARGE leave *dstp unchanged. */
int narf_lp_concat(unsigned char **dstp,
                   uint64_t *used,
                   const unsigned char *src,
                   uint32_t *shift);
/* Move the elements from pos on (pos may also be narf_lp_end: none) into a
 * new listpack *tailp (caller frees with narf_lp_destroy); *lpp keeps those
 * before pos, at their positions. NARF_ENOMEM leaves *lpp unchanged. */
int narf_lp_split(unsigned char **lpp,
                  uint64_t *used,
                  uint32_t pos,
                  unsigned char **tailp);

/* Walks: each returns a position or NARF_LP_NONE. */
uint32_t narf_lp_first(const unsigned char *lp);
uint32_t narf_lp_last(const unsigned char *lp);
uint32_t narf_lp_next(const unsigned char *lp, uint32_t pos);
uint32_t narf_lp_prev(const unsigned char *lp, uint32_t pos);
/* The element at index, negative from the tail (-1 the last). */
uint32_t narf_lp_seek(const unsigned char *lp, int64_t index);
/* The end byte's offset, for appending with narf_lp_insert. */
uint32_t narf_lp_end(const unsigned char *lp);

/* Read the element at pos. */
void narf_lp_get(const unsigned char *lp, uint32_t pos, struct narf_lp_val *v);
/* The element's bytes whatever its encoding: an integer is printed into buf
 * (NARF_LP_INTBUF bytes). Returns a pointer to the bytes; *len their count. */
const unsigned char *narf_lp_get_str(const unsigned char *lp,
                                     uint32_t pos,
                                     char *buf,
                                     uint32_t *len);

/* The first element from pos on whose bytes equal s[0..len), comparing one
 * element and then skipping `skip` (1 for a hash's fields, whose values sit
 * between them). NARF_LP_NONE when none does. */
uint32_t narf_lp_find(const unsigned char *lp,
                      uint32_t pos,
                      const void *s,
                      size_t len,
                      uint32_t skip);

/* Check that buf[0..size) is a well-formed listpack: header, every entry's
 * encoding, length and back-length, the count and the end byte; never reads
 * outside buf. 0 or NARF_EPROTO. */
int narf_lp_validate(const unsigned char *buf, size_t size);

/* Whether s[0..len) is a canonical int64 as Redis's string2ll takes it (no
 * sign but '-', no leading zero, no "-0"); its value in *v. */
int narf_lp_str_to_int(const void *s, size_t len, int64_t *v);

#endif /* NARF_LISTPACK_H */
