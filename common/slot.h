/*
 * Hash slots, exactly as Redis Cluster computes them: CRC16/XMODEM of the key
 * (or of its {hashtag}, when the key holds a non-empty one) modulo 16384, so
 * cluster-aware clients route straight to the owner.
 */
#ifndef NARF_SLOT_H
#define NARF_SLOT_H

#include <stddef.h>
#include <stdint.h>

#define NARF_SLOTS 16384

/* CRC16/XMODEM (poly 0x1021, init 0), the variant Redis Cluster uses. */
uint16_t narf_crc16(const char *buf, size_t len);

/* Slot of a key: only the part between the first '{' and the next '}' is
 * hashed when that part is non-empty. */
unsigned narf_slot_of(const char *key, size_t len);

#endif /* NARF_SLOT_H */
