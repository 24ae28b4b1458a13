/* SPDX-License-Identifier: MIT */
/*
 * Times and durations as typed on the command line, against a fixed "now"
 * in UTC (and in one test a zone with summer time, given as a POSIX TZ
 * string so that no time zone database is needed).
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "timeparse.h"
#include "banned.h"

/* 2025-11-23 14:00:00 UTC. */
#define NOW 1763906400LL

static void use_zone(const char *tz)
{
	assert_int_equal(setenv("TZ", tz, 1), 0);
	tzset();
}

static int setup_utc(void **state)
{
	(void)state;
	use_zone("UTC");
	return 0;
}

static void test_durations(void **state)
{
	static const struct { const char *text; long long seconds; } cases[] = {
		{ "90s", 90 }, { "15m", 900 }, { "4h", 14400 }, { "7d", 604800 },
		{ "2w", 1209600 }, { "1h30m", 5400 }, { "1h 30m", 5400 }, { "3d 4h", 273600 },
		{ "1w2d3h4m5s", 788645 }, { "0h5m", 300 }, { "007s", 7 },
		{ "1y", 365 * 86400 }, { "10y", 3650LL * 86400 }, { "1y2w", 379 * 86400 },
	};
	long long seconds;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		seconds = -1;
		if (parse_duration(cases[i].text, &seconds) != 0 || seconds != cases[i].seconds)
			fail_msg("\"%s\" gave %lld, not %lld", cases[i].text, seconds, cases[i].seconds);
	}
}

static void test_durations_refused(void **state)
{
	static const char *const refused[] = {
		"", "90", "s", "h1", "4H", "4 h", " 4h", "4h ", "1h  30m", "30m1h", "1h1h", "1h,30m",
		"-4h", "+4h", "4hours", "4.5h", "0s", "0h0m", "1x", "4h ago", "1h\t30m", "\xef\xbc\x94h",
		"1h 30", "1h ", "2w1y", "1Y", "0y",
	};
	long long seconds = 42;

	(void)state;
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (parse_duration(refused[i], &seconds) != -EINVAL)
			fail_msg("\"%s\" was not refused", refused[i]);
	assert_int_equal(seconds, 42);
	assert_int_equal(parse_duration(NULL, &seconds), -EINVAL);
	/* Overflow is caught however many digits. */
	assert_int_equal(parse_duration("99999999999999999999999s", &seconds), -ERANGE);
	assert_int_equal(parse_duration("9223372036854775807s", &seconds), -ERANGE);
	assert_int_equal(parse_duration("5300w", &seconds), -ERANGE);
	assert_int_equal(parse_duration("101y", &seconds), -ERANGE);
	assert_int_equal(parse_duration("5000w", &seconds), 0);
	assert_int_equal(parse_duration("5000w36600d", &seconds), -ERANGE);
}

static void test_relative(void **state)
{
	static const struct { const char *text; long long t; } cases[] = {
		{ "now", NOW }, { "NOW", NOW },
		{ "4 hours ago", NOW - 4 * 3600 }, { "1 hour ago", NOW - 3600 },
		{ "4h ago", NOW - 4 * 3600 }, { "-4h", NOW - 4 * 3600 },
		{ "2 days ago", NOW - 2 * 86400 }, { "1 Day Ago", NOW - 86400 },
		{ "1 year ago", NOW - 365 * 86400 },
		{ "1h30m ago", NOW - 5400 }, { "-1h 30m", NOW - 5400 },
		{ "90 seconds ago", NOW - 90 }, { "3 weeks ago", NOW - 21 * 86400 },
		{ "15 minutes ago", NOW - 900 },
	};
	long long t;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		t = -1;
		if (parse_time(cases[i].text, NOW, &t) != 0 || t != cases[i].t)
			fail_msg("\"%s\" gave %lld, not %lld", cases[i].text, t, cases[i].t);
	}
}

static void test_absolute(void **state)
{
	static const struct { const char *text; long long t; } cases[] = {
		{ "@1763906400", 1763906400 }, { "@0", 0 },
		{ "2025-11-23", 1763856000 }, { "2025-11-23 14:00", 1763906400 },
		{ "2025-11-23T14:00:30", 1763906430 }, { "2025-11-23 14:00:30", 1763906430 },
		{ "2024-02-29", 1709164800 }, { "1970-01-01 00:00:00", 0 },
		{ "2030-01-01", 1893456000 },
		/* A clock time today, or yesterday when today's is still to come. */
		{ "14:00", NOW }, { "13:59:59", NOW - 1 }, { "9:30", NOW - 4 * 3600 - 1800 },
		{ "00:00", 1763856000 }, { "14:00:01", NOW + 1 - 86400 }, { "23:59", 1763855940 },
	};
	long long t;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		t = -1;
		if (parse_time(cases[i].text, NOW, &t) != 0 || t != cases[i].t)
			fail_msg("\"%s\" gave %lld, not %lld", cases[i].text, t, cases[i].t);
	}
	/* Just after midnight, a later clock time is yesterday's, across a month. */
	assert_int_equal(parse_time("23:00", 1761955260 /* 2025-11-01 00:01 */, &t), 0);
	assert_int_equal(t, 1761955260 - 60 - 3600);
	assert_int_equal(parse_time("23:00", 1767225660 /* 2026-01-01 00:01 */, &t), 0);
	assert_int_equal(t, 1767225660 - 60 - 3600);
}

/* The end of an exception: ahead of now, or refused. */
static void test_until(void **state)
{
	static const struct { const char *text; long long t; } cases[] = {
		{ "2h", NOW + 7200 }, { "+2h", NOW + 7200 }, { "1d12h", NOW + 129600 },
		{ "90s", NOW + 90 }, { "1w", NOW + 7 * 86400 },
		/* A clock time today, or tomorrow when today's has passed. */
		{ "18:00", NOW + 4 * 3600 }, { "14:00:01", NOW + 1 }, { "14:00", NOW + 86400 },
		{ "9:30", NOW + 86400 - 4 * 3600 - 1800 },
		{ "2025-11-24", NOW + 10 * 3600 }, { "2025-11-23 18:00", NOW + 4 * 3600 },
		{ "2025-11-23T14:00:30", NOW + 30 }, { "@1763906401", NOW + 1 },
	};
	static const char *const refused[] = {
		"", "+", "2", "-2h", "2h ago", "now", "tomorrow", "+ 2h", "2h ", "25:00", "@x",
		"2025-11-23 14:00 ", "in 2h",
	};
	static const char *const past[] = {
		"2025-11-23", "2025-11-23 14:00", "@1763906400", "@0", "2020-01-01",
	};
	long long t;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		t = -1;
		if (parse_until(cases[i].text, NOW, &t) != 0 || t != cases[i].t)
			fail_msg("\"%s\" gave %lld, not %lld", cases[i].text, t, cases[i].t);
	}
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (parse_until(refused[i], NOW, &t) != -EINVAL)
			fail_msg("\"%s\" was not refused as malformed", refused[i]);
	for (size_t i = 0; i < sizeof(past) / sizeof(past[0]); i++)
		if (parse_until(past[i], NOW, &t) != -ERANGE)
			fail_msg("\"%s\" was not refused as past", past[i]);
	assert_int_equal(parse_until(NULL, NOW, &t), -EINVAL);
	/* Late on the last day of a year, an earlier clock time is next year's. */
	assert_int_equal(parse_until("01:00", 1767222000 /* 2025-12-31 23:00 */, &t), 0);
	assert_int_equal(t, 1767222000 + 7200);
}

static void test_time_refused(void **state)
{
	static const char *const refused[] = {
		"", " now", "now ", "nowish", "yesterday", "4 hours", "4 hour ago ", "4  hours ago",
		"4 hours  ago", "hours ago", " ago", "ago", "4 hrs ago", "4hago", "- 4h", "--4h",
		"-0s", "@", "@-1", "@12x", "@ 12", "@1.5", "24:00", "14:60", "14:00:60", "14:0",
		"140:00", "14:00:", "14", ":14", "14:00 ", "2026-11-31", "2025-02-29", "2026-13-01",
		"2026-00-10", "2026-11-00", "26-11-23", "2026-1-23", "2026/11/23", "2026-11-23 ",
		"2026-11-23x14:00", "2026-11-23 14", "2026-11-23  14:00", "1969-12-31", "+2026-11-23",
		"2026-11-23T", "0 hours ago", "\xd9\xa4 hours ago",
	};
	long long t = 42;

	(void)state;
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (parse_time(refused[i], NOW, &t) != -EINVAL)
			fail_msg("\"%s\" was not refused", refused[i]);
	assert_int_equal(t, 42);
	assert_int_equal(parse_time(NULL, NOW, &t), -EINVAL);
	assert_int_equal(parse_time("@253402300800", NOW, &t), -ERANGE);
	assert_int_equal(parse_time("@99999999999999999999999", NOW, &t), -ERANGE);
	assert_int_equal(parse_time("99999999999 weeks ago", NOW, &t), -ERANGE);
	assert_int_equal(parse_time("-5000w", LLONG_MIN + 5, &t), -ERANGE);
	assert_int_equal(parse_time("@253402300799", NOW, &t), 0);
	assert_int_equal(t, 253402300799LL);
}

/* Central European time: the clocks skip 02:00-03:00 on 2026-03-29 and
 * go back from 03:00 to 02:00 on 2026-10-25. */
static void test_summer_time(void **state)
{
	long long t;

	(void)state;
	use_zone("CET-1CEST,M3.5.0,M10.5.0/3");
	assert_int_equal(parse_time("2026-03-29 02:30", NOW, &t), -EINVAL);
	assert_int_equal(parse_time("2026-03-29 01:59:59", NOW, &t), 0);
	assert_int_equal(t, 1774745999);
	assert_int_equal(parse_time("2026-03-29 03:00", NOW, &t), 0);
	assert_int_equal(t, 1774746000);
	assert_int_equal(parse_time("2026-07-01 12:00", NOW, &t), 0);
	assert_int_equal(t, 1782900000);
	/* An hour that happens twice is taken once, either way. */
	assert_int_equal(parse_time("2026-10-25 02:30", NOW, &t), 0);
	assert_true(t == 1792888200 || t == 1792891800);
	/* The day after the skipped hour: "yesterday" is the calendar's. */
	assert_int_equal(parse_time("23:30", 1774821600 /* 2026-03-30 00:00 CEST */, &t), 0);
	assert_int_equal(t, 1774819800);
	use_zone("UTC");
}

static void test_format(void **state)
{
	char buf[64];

	(void)state;
	format_time(NOW, buf, sizeof(buf));
	assert_string_equal(buf, "2025-11-23 14:00:00");
	format_time(0, buf, sizeof(buf));
	assert_string_equal(buf, "1970-01-01 00:00:00");
	format_time(NOW + 5, buf, 8);
	assert_int_equal(strlen(buf), 7);
	format_time(NOW, buf, 0);

	static const struct { long long seconds; const char *text; } durations[] = {
		{ 0, "0s" }, { 12, "12s" }, { 250, "4m 10s" }, { 240, "4m" }, { 7500, "2h 5m" },
		{ 7200, "2h" }, { 273600, "3d 4h" }, { 259200, "3d" }, { 273659, "3d 4h" },
		{ -90, "-1m 30s" }, { 86399, "23h 59m" },
	};
	for (size_t i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
		format_duration(durations[i].seconds, buf, sizeof(buf));
		assert_string_equal(buf, durations[i].text);
	}
	format_duration(LLONG_MIN, buf, sizeof(buf));
	assert_string_equal(buf, "-106751991167300d 15h");
	format_duration(273600, buf, 3);
	assert_string_equal(buf, "3d");
}

/* What format_duration() and format_time() write reads back. */
static void test_round_trip(void **state)
{
	static const long long durations[] = { 12, 250, 7500, 273600, 86399, 604800 };
	static const long long times[] = { NOW, 0, 1709164800, 253402300799LL };
	char buf[64];
	long long back;

	(void)state;
	for (size_t i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
		format_duration(durations[i], buf, sizeof(buf));
		assert_int_equal(parse_duration(buf, &back), 0);
		assert_true(back <= durations[i] && back > durations[i] - 60);
	}
	for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
		format_time(times[i], buf, sizeof(buf));
		assert_int_equal(parse_time(buf, NOW, &back), 0);
		assert_int_equal(back, times[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_durations_refused),
		cmocka_unit_test(test_relative),
		cmocka_unit_test(test_absolute),
		cmocka_unit_test(test_time_refused),
		cmocka_unit_test(test_until),
		cmocka_unit_test(test_summer_time),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_round_trip),
	};
	return cmocka_run_group_tests(tests, setup_utc, NULL);
}
