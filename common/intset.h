/*
 * The intset: a sorted array of distinct integers in one allocation, the
 * small encoding of sets whose members are all integers
 * (docs/datatypes-plan.md, section 2; set-max-intset-entries is the
 * caller's limit, the intset itself takes any count up to UINT32_MAX).
 *
 * As Redis's intset: every element has the width of the widest one (2, 4
 * or 8 bytes). Adding a value that needs more widens all of them in place
 * (an "upgrade"); nothing ever narrows them again. Lookups are a binary
 * search. The bytes are the format, the same on every host:
 *
 *   offset 0  enc    u32  bytes per element: 2, 4 or 8
 *   offset 4  count  u32  number of elements
 *   offset 8  count elements, strictly increasing, little-endian two's
 *             complement of enc bytes each
 *
 * so an intset can be sent to a peer as it is, and narf_intset_validate()
 * checks bytes that come back. An intset is handled as `unsigned char *`
 * like a listpack; mutations may realloc it, hence the `unsigned char **`.
 *
 * Memory accounting: every function that allocates takes `uint64_t *used`
 * (may be NULL), to which it adds the allocator's usable size of what it
 * holds and from which it subtracts what it gives back, as listpack.h.
 * NARF_ENOMEM leaves the intset unchanged.
 */
#ifndef NARF_INTSET_H
#define NARF_INTSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NARF_INTSET_HDR 8u

/* A new empty intset (2-byte elements) in *isp; the caller frees it with
 * narf_intset_destroy. NARF_ENOMEM. */
int narf_intset_create(unsigned char **isp, uint64_t *used);
/* Free an intset; NULL is fine. */
void narf_intset_destroy(unsigned char *is, uint64_t *used);

uint32_t narf_intset_count(const unsigned char *is);
/* Bytes per element: 2, 4 or 8. */
unsigned narf_intset_enc(const unsigned char *is);
/* Bytes of the format (header and elements), what a peer is sent. */
size_t narf_intset_bytes(const unsigned char *is);

/* Add v; *added (may be NULL) says whether it was absent. Upgrades the
 * width when v needs it. NARF_ENOMEM; NARF_ETOOLARGE at UINT32_MAX
 * elements. */
int narf_intset_add(unsigned char **isp,
                    uint64_t *used,
                    int64_t v,
                    bool *added);
/* Remove v; returns whether it was there. Never fails (the width stays). */
bool narf_intset_remove(unsigned char **isp, uint64_t *used, int64_t v);
bool narf_intset_find(const unsigned char *is, int64_t v);

/* The element at index (0 is the smallest) in *v; false when index >=
 * count. */
bool narf_intset_get(const unsigned char *is, uint32_t index, int64_t *v);
/* A uniformly random element; the intset must not be empty. *rng is a
 * splitmix64 state (narf_rng_next). */
int64_t narf_intset_random(const unsigned char *is, uint64_t *rng);

/* Check that buf[0..size) is a well-formed intset: a known width, exactly
 * count elements of it, strictly increasing. An empty intset is well formed
 * (a set key that is empty is the caller's to refuse). Never reads outside
 * buf. 0 or NARF_EPROTO. */
int narf_intset_validate(const unsigned char *buf, size_t size);

#endif /* NARF_INTSET_H */
