#include "slot.h"

#include <string.h>

/* Byte-at-a-time CRC16/XMODEM: the table is built on first use from the
 * bitwise definition, which the unit tests check against known values. */
static uint16_t crc_table[256];
static int crc_table_ready;

static void build_table(void)
{
	for (unsigned b = 0; b < 256; b++) {
		uint16_t crc = (uint16_t)(b << 8);

		for (int bit = 0; bit < 8; bit++)
			crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021)
			                     : (uint16_t)(crc << 1);
		crc_table[b] = crc;
	}
	crc_table_ready = 1;
}

uint16_t narf_crc16(const char *buf, size_t len)
{
	uint16_t crc = 0;

	if (!crc_table_ready)
		build_table();
	for (size_t i = 0; i < len; i++)
		crc = (uint16_t)((crc << 8) ^
		                 crc_table[((crc >> 8) ^
		                            (unsigned char)buf[i]) &
		                           0xff]);
	return crc;
}

unsigned narf_slot_of(const char *key, size_t len)
{
	const char *open = memchr(key, '{', len);

	if (open != NULL) {
		size_t start = (size_t)(open - key) + 1;
		const char *close = memchr(open + 1, '}', len - start);

		if (close != NULL && close > open + 1)
			return narf_crc16(open + 1,
			                  (size_t)(close - open - 1)) &
			       (NARF_SLOTS - 1);
	}
	return narf_crc16(key, len) & (NARF_SLOTS - 1);
}
