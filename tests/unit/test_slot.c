/*
 * Unit tests for common/slot.h.
 *
 * Every expected slot below was produced by Redis itself (CLUSTER KEYSLOT on
 * a redis-server with cluster-enabled), not by our code, so these tests pin
 * narf to the routing that cluster-aware Redis clients compute.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/slot.h"

/* Slot of a NUL-terminated key. */
static unsigned slot(const char *key)
{
	return narf_slot_of(key, strlen(key));
}

/* The CRC is CRC16/XMODEM: its catalogue check value for "123456789" is
 * 0x31C3, and the empty input hashes to 0. */
static void test_crc16_check_value(void **state)
{
	(void)state;
	assert_int_equal(narf_crc16("123456789", 9), 0x31C3);
	assert_int_equal(narf_crc16("", 0), 0);
	assert_int_equal(narf_crc16("123456789", 9) & (NARF_SLOTS - 1),
	                 slot("123456789"));
}

/* CRC16/XMODEM straight from its definition, one bit at a time. */
static uint16_t crc16_bitwise(const unsigned char *p, size_t n)
{
	uint16_t crc = 0;

	for (size_t i = 0; i < n; i++) {
		crc ^= (uint16_t)(p[i] << 8);
		for (int bit = 0; bit < 8; bit++)
			crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021)
			                     : (uint16_t)(crc << 1);
	}
	return crc;
}

/* The table-driven CRC (eight bytes a step, then one) agrees with the
 * bitwise definition at every length across the block boundaries, from
 * every offset (alignment), on bytes of all values. */
static void test_crc16_matches_definition(void **state)
{
	unsigned char buf[80];
	uint32_t x = 2463534242u;

	(void)state;
	for (size_t i = 0; i < sizeof(buf); i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf[i] = (unsigned char)x;
	}
	for (size_t off = 0; off < 8; off++)
		for (size_t n = 0; n + off <= 72; n++)
			assert_int_equal(narf_crc16((const char *)buf + off, n),
			                 crc16_bitwise(buf + off, n));
}

/* Plain keys land in the slots Redis's CLUSTER KEYSLOT reports. */
static void test_known_redis_slots(void **state)
{
	(void)state;
	assert_int_equal(slot("foo"), 12182);
	assert_int_equal(slot("bar"), 5061);
	assert_int_equal(slot("hello"), 866);
	assert_int_equal(slot("user1000"), 3443);
	assert_int_equal(slot("123456789"), 12739);
	assert_int_equal(slot(""), 0);
}

/* Keys sharing a non-empty hash tag share the slot of the tag itself. */
static void test_hashtag_groups_keys(void **state)
{
	(void)state;
	assert_int_equal(slot("{user1000}.following"), 3443);
	assert_int_equal(slot("{user1000}.followers"), 3443);
	assert_int_equal(slot("{user1000}.following"), slot("user1000"));
}

/* An empty tag "{}" makes the whole key hashed, as in Redis. */
static void test_empty_hashtag_hashes_whole_key(void **state)
{
	(void)state;
	assert_int_equal(slot("foo{}{bar}"), 8363);
	assert_int_not_equal(slot("foo{}{bar}"), slot("bar"));
	assert_int_equal(slot("{}"), 15257);
	assert_int_equal(slot("a{}"), 6082);
}

/* Only the first '{' opens a tag, and it closes at the next '}'. */
static void test_hashtag_first_brace_wins(void **state)
{
	(void)state;
	assert_int_equal(slot("foo{{bar}}zap"), 4015);
	assert_int_equal(slot("foo{{bar}}zap"), slot("{bar"));
	assert_int_equal(slot("foo{bar}{zap}"), 5061);
	assert_int_equal(slot("foo{bar}{zap}"), slot("bar"));
}

/* Unbalanced braces (a lone '{', a '}' before any '{') hash the whole key. */
static void test_unbalanced_braces(void **state)
{
	(void)state;
	assert_int_equal(slot("{"), 4092);
	assert_int_equal(slot("}"), 12090);
	assert_int_equal(slot("{bar"), 4015);
	assert_int_equal(slot("abc}{def}"), 16148);
	assert_int_equal(slot("abc}{def}"), slot("def"));
}

/* Keys are binary: NUL bytes are hashed like any other byte, inside and
 * before a tag. */
static void test_binary_keys(void **state)
{
	static const char nul[] = {'\0'};
	static const char a_nul_b[] = {'a', '\0', 'b'};
	static const char tag_nul[] = {'{', 'a', '\0', 'b', '}', 'x'};
	static const char nul_then_tag[] = {'x', '\0', '{', 't', 'a', 'g', '}'};

	(void)state;
	assert_int_equal(narf_slot_of(nul, sizeof(nul)), 0);
	assert_int_equal(narf_slot_of(a_nul_b, sizeof(a_nul_b)), 8383);
	assert_int_equal(narf_slot_of(tag_nul, sizeof(tag_nul)), 8383);
	assert_int_equal(narf_slot_of(nul_then_tag, sizeof(nul_then_tag)),
	                 8338);
	assert_int_equal(slot("tag"), 8338);
	/* Truncating at the NUL would give the slot of "a" instead. */
	assert_int_not_equal(narf_slot_of(a_nul_b, sizeof(a_nul_b)), slot("a"));
}

/* The length argument bounds the scan: bytes past it are never read, so a
 * closing brace beyond the length does not form a tag. */
static void test_length_bounds_tag_scan(void **state)
{
	(void)state;
	assert_int_equal(narf_slot_of("{bar}", 4), slot("{bar"));
	assert_int_equal(narf_slot_of("foox", 3), slot("foo"));
}

/* Every slot is below NARF_SLOTS. */
static void test_slot_in_range(void **state)
{
	char key[16];

	(void)state;
	for (unsigned i = 0; i < 100000; i++) {
		int n = snprintf(key, sizeof(key), "key:%u", i);

		assert_true(narf_slot_of(key, (size_t)n) < NARF_SLOTS);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_crc16_check_value),
	        cmocka_unit_test(test_crc16_matches_definition),
	        cmocka_unit_test(test_known_redis_slots),
	        cmocka_unit_test(test_hashtag_groups_keys),
	        cmocka_unit_test(test_empty_hashtag_hashes_whole_key),
	        cmocka_unit_test(test_hashtag_first_brace_wins),
	        cmocka_unit_test(test_unbalanced_braces),
	        cmocka_unit_test(test_binary_keys),
	        cmocka_unit_test(test_length_bounds_tag_scan),
	        cmocka_unit_test(test_slot_in_range),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
