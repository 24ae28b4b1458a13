/* SPDX-License-Identifier: MIT */
/*
 * The string helpers of src/lib/strutil.c: trimming, strict whole numbers
 * at and past their bounds, sizes, ranges, booleans, ports, the growing
 * buffer (its limit, its growth, and a failed allocation), closing a stream
 * whose writes failed, and errors into short or absent buffers.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "config.h"
#include "strutil.h"
#include "banned.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* The failed allocation below asks for 2^62 bytes: let ASan return NULL
 * as the C library does, rather than stop the test. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "allocator_may_return_null=1";
}

static void test_strip(void **state)
{
	static const struct { const char *text, *want; } cases[] = {
		{ "", "" }, { "a", "a" }, { "  a", "a" }, { "a  ", "a" }, { " \t\r\n\v\fa b\f\v\n\r\t ", "a b" },
		{ " \t \n", "" }, { "a \t b", "a \t b" }, { "\xc2\xa0x\xc2\xa0", "\xc2\xa0x\xc2\xa0" },
	};
	char buf[64];

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		snprintf(buf, sizeof(buf), "%s", cases[i].text);
		assert_string_equal(strip(buf), cases[i].want);
	}
	/* In place: the result points into the buffer, which is cut short. */
	snprintf(buf, sizeof(buf), "  ab  ");
	assert_ptr_equal(strip(buf), buf + 2);
	assert_memory_equal(buf, "  ab\0", 5);
}

static void test_uint_max(void **state)
{
	static const char *const refused[] = {
		"", "-1", "+1", " 1", "1 ", "0x10", "1e3", "1.0", "12a", "a12", "\xd9\xa1",
	};
	uint64_t value = 42;

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(refused); i++)
		if (parse_uint_max(refused[i], UINT64_MAX, &value) != -EINVAL)
			fail_msg("\"%s\" was not refused", refused[i]);
	assert_int_equal(parse_uint_max(NULL, UINT64_MAX, &value), -EINVAL);
	assert_int_equal(value, 42);

	assert_int_equal(parse_uint_max("0", 0, &value), 0);
	assert_int_equal(value, 0);
	assert_int_equal(parse_uint_max("000123", 1000, &value), 0);
	assert_int_equal(value, 123);
	assert_int_equal(parse_uint_max("1000", 1000, &value), 0);
	assert_int_equal(value, 1000);
	value = 42;
	assert_int_equal(parse_uint_max("1001", 1000, &value), -ERANGE);
	assert_int_equal(parse_uint_max("1", 0, &value), -ERANGE);
	/* A single digit above a bound under 10. */
	assert_int_equal(parse_uint_max("5", 5, &value), 0);
	assert_int_equal(value, 5);
	value = 42;
	assert_int_equal(parse_uint_max("6", 5, &value), -ERANGE);
	assert_int_equal(parse_uint_max("9", 0, &value), -ERANGE);
	assert_int_equal(parse_uint_max("10", 9, &value), -ERANGE);
	assert_int_equal(value, 42);

	/* The whole 64-bit range, and one past it however many digits. */
	assert_int_equal(parse_uint_max("18446744073709551615", UINT64_MAX, &value), 0);
	assert_true(value == UINT64_MAX);
	assert_int_equal(parse_uint_max("18446744073709551616", UINT64_MAX, &value), -ERANGE);
	assert_int_equal(parse_uint_max("99999999999999999999999", UINT64_MAX, &value), -ERANGE);
	assert_int_equal(parse_uint_max("18446744073709551614", UINT64_MAX - 1, &value), 0);
	assert_true(value == UINT64_MAX - 1);
	assert_int_equal(parse_uint_max("18446744073709551615", UINT64_MAX - 1, &value), -ERANGE);
	/* A bad character after an overflow is still refused, as either. */
	assert_true(parse_uint_max("99999999999999999999x", UINT64_MAX, &value) < 0);
}

static void test_uint32(void **state)
{
	uint32_t value = 42;

	(void)state;
	assert_int_equal(parse_uint32("0", &value), 0);
	assert_int_equal(value, 0);
	assert_int_equal(parse_uint32("4294967295", &value), 0);
	assert_true(value == UINT32_MAX);
	value = 42;
	assert_int_equal(parse_uint32("4294967296", &value), -ERANGE);
	assert_int_equal(parse_uint32("18446744073709551616", &value), -ERANGE);
	assert_int_equal(parse_uint32("", &value), -EINVAL);
	assert_int_equal(parse_uint32("-1", &value), -EINVAL);
	assert_int_equal(parse_uint32("1 ", &value), -EINVAL);
	assert_int_equal(value, 42);
}

static void test_size(void **state)
{
	static const struct { const char *text; uint64_t bytes; } cases[] = {
		{ "0", 0 }, { "0K", 0 }, { "1", 1 }, { "1K", 1024 }, { "1M", 1024 * 1024 },
		{ "1G", 1024ULL * 1024 * 1024 }, { "1T", 1024ULL * 1024 * 1024 * 1024 },
		{ "10G", 10 * 1024ULL * 1024 * 1024 }, { "007M", 7 * 1024 * 1024 },
		{ "16777215T", 16777215ULL << 40 },
		{ "18446744073709551615", UINT64_MAX },
	};
	static const char *const refused[] = {
		"", "K", "-1", "+1", " 1", "1 ", "1k", "1m", "1KB", "1KK", "1P", "1E", "1B", "1.5G",
		"1 K", "0x10", "1K ", "\xef\xbc\x91",
	};
	uint64_t value;

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		value = 42;
		if (parse_size(cases[i].text, &value) != 0 || value != cases[i].bytes)
			fail_msg("\"%s\" gave %llu", cases[i].text, (unsigned long long)value);
	}
	value = 42;
	for (size_t i = 0; i < ARRAY_LEN(refused); i++)
		if (parse_size(refused[i], &value) != -EINVAL)
			fail_msg("\"%s\" was not refused", refused[i]);
	assert_int_equal(parse_size(NULL, &value), -EINVAL);
	assert_int_equal(parse_size("18446744073709551616", &value), -ERANGE);
	assert_int_equal(parse_size("99999999999999999999999", &value), -ERANGE);
	assert_int_equal(parse_size("18014398509481984K", &value), -ERANGE);
	assert_int_equal(parse_size("16777216T", &value), -ERANGE);
	assert_int_equal(value, 42);
	assert_int_equal(parse_size("18014398509481983K", &value), 0);
	assert_true(value == UINT64_MAX - 1023);
}

static void test_range(void **state)
{
	static const char *const refused[] = {
		"", "-", "1", "1-", "-1", "1--2", "1-2-3", "2-1", " 1-2", "1-2 ", "1 -2", "a-b", "+1-2",
		"0x1-0x2", "4294967296-4294967297", "0-4294967296",
		"0000000000000001-2", "1-0000000000000002",
	};
	struct config_range range;

	(void)state;
	assert_int_equal(parse_range("1-2", &range), 0);
	assert_int_equal(range.first, 1);
	assert_int_equal(range.last, 2);
	assert_int_equal(parse_range("7-7", &range), 0);
	assert_int_equal(range.first, 7);
	assert_int_equal(range.last, 7);
	assert_int_equal(parse_range("0-4294967295", &range), 0);
	assert_int_equal(range.first, 0);
	assert_true(range.last == UINT32_MAX);
	/* Each side may take 15 characters. */
	assert_int_equal(parse_range("000000000100000-000000000200000", &range), 0);
	assert_int_equal(range.first, 100000);
	assert_int_equal(range.last, 200000);
	for (size_t i = 0; i < ARRAY_LEN(refused); i++)
		if (parse_range(refused[i], &range) != -EINVAL)
			fail_msg("\"%s\" was not refused", refused[i]);
}

static void test_bool(void **state)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	static const char *const refused[] = {
		"", "y", "n", "Yes", "TRUE", "On", "2", "01", "yes ", " no", "nope", "truefalse", "of",
	};
	bool value;

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
		value = false;
		assert_int_equal(parse_bool(yes[i], &value), 0);
		assert_true(value);
	}
	for (size_t i = 0; i < ARRAY_LEN(no); i++) {
		value = true;
		assert_int_equal(parse_bool(no[i], &value), 0);
		assert_false(value);
	}
	for (size_t i = 0; i < ARRAY_LEN(refused); i++) {
		value = true;
		if (parse_bool(refused[i], &value) != -EINVAL || !value)
			fail_msg("\"%s\" was not refused", refused[i]);
	}
}

static void test_port(void **state)
{
	uint16_t port = 42;

	(void)state;
	assert_int_equal(parse_port("1", &port), 0);
	assert_int_equal(port, 1);
	assert_int_equal(parse_port("22", &port), 0);
	assert_int_equal(port, 22);
	assert_int_equal(parse_port("65535", &port), 0);
	assert_int_equal(port, 65535);
	port = 42;
	assert_int_equal(parse_port("0", &port), -ERANGE);
	assert_int_equal(parse_port("65536", &port), -ERANGE);
	assert_int_equal(parse_port("131073", &port), -ERANGE);
	assert_int_equal(parse_port("4294967296", &port), -ERANGE);
	assert_int_equal(parse_port("", &port), -EINVAL);
	assert_int_equal(parse_port("-1", &port), -EINVAL);
	assert_int_equal(parse_port("80 ", &port), -EINVAL);
	assert_int_equal(parse_port("http", &port), -EINVAL);
	assert_int_equal(port, 42);
}

static void test_has_prefix(void **state)
{
	(void)state;
	assert_true(str_has_prefix("abc", ""));
	assert_true(str_has_prefix("", ""));
	assert_true(str_has_prefix("abc", "a"));
	assert_true(str_has_prefix("abc", "abc"));
	assert_false(str_has_prefix("abc", "abcd"));
	assert_false(str_has_prefix("", "a"));
	assert_false(str_has_prefix("abc", "b"));
	assert_false(str_has_prefix("abc", "A"));
	assert_false(str_has_prefix("/gpus", "/gpus/"));
}

static void test_buf_append(void **state)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;

	(void)state;
	/* Nothing yet: still a string. */
	assert_int_equal(buf_append(&buf, &len, &cap, "", 0, 100), 0);
	assert_non_null(buf);
	assert_int_equal(len, 0);
	assert_true(cap >= 1);
	assert_string_equal(buf, "");

	assert_int_equal(buf_append(&buf, &len, &cap, "hello", 5, 100), 0);
	assert_int_equal(buf_append(&buf, &len, &cap, ", world!!", 7, 100), 0);
	assert_int_equal(len, 12);
	assert_true(cap > len);
	assert_string_equal(buf, "hello, world");

	/* Bytes, not strings: a NUL inside is kept and counted. */
	assert_int_equal(buf_append(&buf, &len, &cap, "a\0b", 3, 100), 0);
	assert_int_equal(len, 15);
	assert_memory_equal(buf, "hello, worlda\0b", 16);
	free(buf);
}

static void test_buf_append_limit(void **state)
{
	char *buf = NULL, *before;
	size_t len = 0, cap = 0, cap_before;

	(void)state;
	/* Exactly max bytes fit, one more does not, and nothing changes. */
	assert_int_equal(buf_append(&buf, &len, &cap, "abcdefgh", 8, 10), 0);
	assert_int_equal(buf_append(&buf, &len, &cap, "ij", 2, 10), 0);
	assert_int_equal(len, 10);
	before = buf;
	cap_before = cap;
	assert_int_equal(buf_append(&buf, &len, &cap, "k", 1, 10), -EFBIG);
	assert_ptr_equal(buf, before);
	assert_int_equal(cap, cap_before);
	assert_int_equal(len, 10);
	assert_string_equal(buf, "abcdefghij");
	/* Still room for nothing more. */
	assert_int_equal(buf_append(&buf, &len, &cap, "", 0, 10), 0);
	assert_string_equal(buf, "abcdefghij");
	free(buf);

	/* n alone past max, and a length the sum would wrap around. */
	buf = NULL;
	len = cap = 0;
	assert_int_equal(buf_append(&buf, &len, &cap, "abc", 3, 2), -EFBIG);
	assert_null(buf);
	assert_int_equal(len, 0);
	assert_int_equal(cap, 0);
	assert_int_equal(buf_append(&buf, &len, &cap, "abc", SIZE_MAX, SIZE_MAX - 1), -EFBIG);
	assert_null(buf);
	assert_int_equal(buf_append(&buf, &len, &cap, "", 0, 0), 0);
	assert_string_equal(buf, "");
	assert_int_equal(buf_append(&buf, &len, &cap, "x", 1, 0), -EFBIG);
	len = 5;
	assert_int_equal(buf_append(&buf, &len, &cap, "x", SIZE_MAX - 4, SIZE_MAX), -EFBIG);
	assert_int_equal(len, 5);
	free(buf);
}

static void test_buf_append_grows(void **state)
{
	char *buf = NULL, chunk[1000];
	size_t len = 0, cap = 0;

	(void)state;
	/* 100 kB in pieces: every byte where it belongs, the capacity always
	 * above the length. */
	for (size_t i = 0; i < 100; i++) {
		memset(chunk, 'a' + (int)(i % 26), sizeof(chunk));
		assert_int_equal(buf_append(&buf, &len, &cap, chunk, sizeof(chunk), 1 << 20), 0);
		assert_int_equal(len, (i + 1) * sizeof(chunk));
		assert_true(cap > len);
		assert_int_equal(buf[len], '\0');
	}
	for (size_t i = 0; i < 100; i++)
		for (size_t j = 0; j < sizeof(chunk); j++)
			if (buf[i * sizeof(chunk) + j] != 'a' + (int)(i % 26))
				fail_msg("byte %zu of piece %zu is wrong", j, i);
	free(buf);

	/* One piece much larger than the first allocation. */
	buf = NULL;
	len = cap = 0;
	{
		char *big = malloc(70000);

		assert_non_null(big);
		memset(big, 'z', 70000);
		assert_int_equal(buf_append(&buf, &len, &cap, big, 70000, 70000), 0);
		assert_int_equal(len, 70000);
		assert_true(cap > 70000);
		assert_memory_equal(buf, big, 70000);
		assert_int_equal(buf[70000], '\0');
		free(big);
	}
	free(buf);
}

static void test_buf_append_no_memory(void **state)
{
	char *buf = NULL, *before;
	size_t len = 0, cap = 0, cap_before;

	(void)state;
	assert_int_equal(buf_append(&buf, &len, &cap, "abc", 3, SIZE_MAX), 0);
	before = buf;
	cap_before = cap;
	/* 2^62 bytes in all: more than any address space holds (the data is
	 * never read, since the buffer cannot grow first). */
	assert_int_equal(buf_append(&buf, &len, &cap, "x", ((size_t)1 << 62) - 4, SIZE_MAX), -ENOMEM);
	assert_ptr_equal(buf, before);
	assert_int_equal(cap, cap_before);
	assert_int_equal(len, 3);
	assert_string_equal(buf, "abc");
	/* 2^63 + 3 bytes: no capacity doubles up to it without wrapping. */
	assert_int_equal(buf_append(&buf, &len, &cap, "x", SIZE_MAX / 2 + 1, SIZE_MAX), -ENOMEM);
	assert_ptr_equal(buf, before);
	assert_int_equal(cap, cap_before);
	assert_int_equal(len, 3);
	free(buf);
}

static void test_memstream_close(void **state)
{
	char *text = NULL;
	size_t size = 0;
	FILE *f;

	(void)state;
	f = open_memstream(&text, &size);
	assert_non_null(f);
	assert_true(fputs("hello", f) >= 0);
	assert_true(memstream_close(f));
	assert_string_equal(text, "hello");
	assert_int_equal(size, 5);
	free(text);

	/* A write that failed before the close (the error is on the stream)... */
	f = fopen("/dev/full", "we");
	if (!f) {
		print_message("no /dev/full: the failed writes are not tested\n");
		return;
	}
	setvbuf(f, NULL, _IONBF, 0);
	assert_true(fputs("x", f) < 0);
	assert_true(ferror(f));
	errno = 0;
	assert_false(memstream_close(f));
	assert_int_equal(errno, ENOMEM);

	/* ...and one that failed only when the close flushed the stream. */
	f = fopen("/dev/full", "we");
	assert_non_null(f);
	assert_true(fputs("x", f) >= 0);
	assert_false(ferror(f));
	errno = 0;
	assert_false(memstream_close(f));
	assert_int_equal(errno, ENOMEM);
}

static void test_set_error(void **state)
{
	char err[8];

	(void)state;
	set_error(err, sizeof(err), "%s %d", "no", 42);
	assert_string_equal(err, "no 42");
	/* Cut short, but always terminated. */
	set_error(err, sizeof(err), "%s", "a long sentence");
	assert_string_equal(err, "a long ");
	set_error(err, 1, "%s", "abc");
	assert_string_equal(err, "");
	/* No room at all, or no buffer: nothing is written. */
	memcpy(err, "intact", 7);
	set_error(err, 0, "%s", "abc");
	assert_string_equal(err, "intact");
	set_error(NULL, 0, "%s", "abc");
	set_error(NULL, sizeof(err), "%s", "abc");
	assert_string_equal(err, "intact");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strip),
		cmocka_unit_test(test_uint_max),
		cmocka_unit_test(test_uint32),
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_range),
		cmocka_unit_test(test_bool),
		cmocka_unit_test(test_port),
		cmocka_unit_test(test_has_prefix),
		cmocka_unit_test(test_buf_append),
		cmocka_unit_test(test_buf_append_limit),
		cmocka_unit_test(test_buf_append_grows),
		cmocka_unit_test(test_buf_append_no_memory),
		cmocka_unit_test(test_memstream_close),
		cmocka_unit_test(test_set_error),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
