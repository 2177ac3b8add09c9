#include "slot.h"

#include <string.h>

/*
 * CRC16/XMODEM eight bytes at a time ("slicing-by-8"): crc_table[k][b] is
 * the register after byte b followed by k zero bytes, starting from zero.
 * The register (16 bits) folds into the first two bytes of a block, and the
 * CRC is linear, so a block's result is the XOR of its eight bytes' table
 * entries. The tables are built on first use from the bitwise definition;
 * the unit tests check the result against that definition byte by byte.
 * Keys are short, so this matters: the byte-at-a-time loop was 12% of a
 * node's CPU at INCR, pipeline 16.
 */
static uint16_t crc_table[8][256];
static int crc_table_ready;

static void build_table(void)
{
	for (unsigned b = 0; b < 256; b++) {
		uint16_t crc = (uint16_t)(b << 8);

		for (int bit = 0; bit < 8; bit++)
			crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021)
			                     : (uint16_t)(crc << 1);
		crc_table[0][b] = crc;
	}
	for (int k = 1; k < 8; k++)
		for (unsigned b = 0; b < 256; b++) {
			uint16_t prev = crc_table[k - 1][b];

			crc_table[k][b] = (uint16_t)((prev << 8) ^
			                             crc_table[0][prev >> 8]);
		}
	crc_table_ready = 1;
}

uint16_t narf_crc16(const char *buf, size_t len)
{
	const unsigned char *p = (const unsigned char *)buf;
	uint16_t crc = 0;

	if (!crc_table_ready)
		build_table();
	for (; len >= 8; p += 8, len -= 8)
		crc = (uint16_t)(crc_table[7][p[0] ^ (crc >> 8)] ^
		                 crc_table[6][p[1] ^ (crc & 0xff)] ^
		                 crc_table[5][p[2]] ^ crc_table[4][p[3]] ^
		                 crc_table[3][p[4]] ^ crc_table[2][p[5]] ^
		                 crc_table[1][p[6]] ^ crc_table[0][p[7]]);
	for (; len > 0; p++, len--)
		crc = (uint16_t)((crc << 8) ^ crc_table[0][(crc >> 8) ^ *p]);
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
