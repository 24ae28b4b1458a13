/* SPDX-License-Identifier: MIT */
/*
 * Times and durations as people type them (the forms are listed in
 * timeparse.h).  Parsed by hand, character by character: strtol() skips
 * blanks and takes signs, strptime() depends on the locale and stops
 * anywhere, and a command such as "gpubox usage --since 4hr" must be
 * refused rather than read as something the user did not mean.  Every
 * number is range-checked before it is used, so no input overflows.
 *
 * Grammar (exactly; no leading or trailing blanks):
 *   duration  TERM { [" "] TERM }, TERM = DIGITS UNIT, UNIT one of y w d h m s
 *             (a year is 365 days),
 *             each unit at most once and largest first ("1h30m", "3d 4h")
 *   relative  "-" duration | duration " ago" | DIGITS " " WORD " ago",
 *             WORD = year(s), week(s), day(s), hour(s), minute(s), second(s)
 *   clock     H[H]:MM[:SS]
 *   date      YYYY-MM-DD [(" " | "T") clock]
 *   unix      "@" DIGITS
 *   until     ["+"] duration | clock | date [clock] | unix   (all ahead of now)
 * Words are matched without regard to ASCII case.  Local times go through
 * mktime() with tm_isdst = -1, and a local time that does not exist (the
 * hour skipped when clocks go forward) is refused rather than moved.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "timeparse.h"
#include "banned.h"

/* A hundred years: anything longer is a typo, and now - duration stays far
 * from overflowing. */
#define TIMEPARSE_DURATION_MAX (100LL * 366 * 86400)
/* 9999-12-31 23:59:59 UTC: the last second a four-digit year can name. */
#define TIMEPARSE_UNIX_MAX 253402300799LL
/* Room for the text before " ago". */
#define TIMEPARSE_RELATIVE_MAX 64

struct timeparse_unit {
	char letter;
	const char *singular;
	const char *plural;
	long long seconds;
};

/* Largest first: a duration names its units in this order. */
static const struct timeparse_unit timeparse_units[] = {
	{ 'y', "year", "years", 365 * 86400 },
	{ 'w', "week", "weeks", 7 * 86400 },
	{ 'd', "day", "days", 86400 },
	{ 'h', "hour", "hours", 3600 },
	{ 'm', "minute", "minutes", 60 },
	{ 's', "second", "seconds", 1 },
};

#define TIMEPARSE_NUNITS (sizeof(timeparse_units) / sizeof(timeparse_units[0]))

static bool timeparse_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* ASCII only: tolower() would consult the locale. */
static bool timeparse_word_equal(const char *a, size_t alen, const char *word)
{
	if (alen != strlen(word))
		return false;
	for (size_t i = 0; i < alen; i++) {
		char c = a[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c != word[i])
			return false;
	}
	return true;
}

/* One or more digits at *p, at most max; *p moves past them. */
static int timeparse_number(const char **p, long long max, long long *out)
{
	long long value = 0;
	const char *c = *p;

	if (!timeparse_is_digit(*c))
		return -EINVAL;
	for (; timeparse_is_digit(*c); c++) {
		int digit = *c - '0';

		if (value > (max - digit) / 10)
			return -ERANGE;
		value = value * 10 + digit;
	}
	*p = c;
	*out = value;
	return 0;
}

/* Exactly n digits at *p (n <= 4, so no overflow); *p moves past them. */
static int timeparse_fixed_digits(const char **p, int n, int *out)
{
	int value = 0;

	for (int i = 0; i < n; i++) {
		if (!timeparse_is_digit((*p)[i]))
			return -EINVAL;
		value = value * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = value;
	return 0;
}

static int timeparse_unit_index(char letter)
{
	for (size_t i = 0; i < TIMEPARSE_NUNITS; i++)
		if (timeparse_units[i].letter == letter)
			return (int)i;
	return -1;
}

/* count units of unit, added to *total within TIMEPARSE_DURATION_MAX. */
static int timeparse_add(long long *total, long long count, long long unit_seconds)
{
	if (count > (TIMEPARSE_DURATION_MAX - *total) / unit_seconds)
		return -ERANGE;
	*total += count * unit_seconds;
	return 0;
}

int parse_duration(const char *text, long long *seconds)
{
	const char *p = text;
	long long total = 0;
	int previous = -1;

	if (!text || !*text)
		return -EINVAL;
	while (*p) {
		long long count;
		int unit, ret;

		ret = timeparse_number(&p, TIMEPARSE_DURATION_MAX, &count);
		if (ret < 0)
			return ret;
		unit = timeparse_unit_index(*p);
		if (unit < 0 || unit <= previous)
			return -EINVAL;
		p++;
		previous = unit;
		ret = timeparse_add(&total, count, timeparse_units[unit].seconds);
		if (ret < 0)
			return ret;
		/* One blank may separate terms, as format_duration() writes them. */
		if (*p == ' ' && timeparse_is_digit(p[1]))
			p++;
	}
	if (total == 0)
		return -EINVAL;
	*seconds = total;
	return 0;
}

/* "4 hours", "1 day": a count, one blank and a unit's word. */
static int timeparse_words(const char *text, long long *seconds)
{
	const char *p = text;
	long long count, total = 0;
	int ret;

	ret = timeparse_number(&p, TIMEPARSE_DURATION_MAX, &count);
	if (ret < 0)
		return ret;
	if (*p++ != ' ')
		return -EINVAL;
	for (size_t i = 0; i < TIMEPARSE_NUNITS; i++) {
		const struct timeparse_unit *u = &timeparse_units[i];

		if (timeparse_word_equal(p, strlen(p), u->singular) ||
		    timeparse_word_equal(p, strlen(p), u->plural)) {
			ret = timeparse_add(&total, count, u->seconds);
			if (ret < 0)
				return ret;
			if (total == 0)
				return -EINVAL;
			*seconds = total;
			return 0;
		}
	}
	return -EINVAL;
}

static int timeparse_before(long long now, long long seconds, long long *out)
{
	if (__builtin_sub_overflow(now, seconds, out))
		return -ERANGE;
	return 0;
}

/* duration " ago" or DIGITS " " WORD " ago". */
static int timeparse_ago(const char *text, long long now, long long *out)
{
	static const char suffix[] = " ago";
	size_t len = strlen(text), slen = sizeof(suffix) - 1;
	char span[TIMEPARSE_RELATIVE_MAX];
	long long seconds;
	int ret;

	if (len <= slen || len - slen >= sizeof(span) ||
	    !timeparse_word_equal(text + len - slen, slen, suffix))
		return -EINVAL;
	memcpy(span, text, len - slen);
	span[len - slen] = '\0';
	ret = parse_duration(span, &seconds);
	if (ret == -EINVAL)
		ret = timeparse_words(span, &seconds);
	if (ret < 0)
		return ret;
	return timeparse_before(now, seconds, out);
}

struct timeparse_fields {
	int year, month, day;
	int hour, minute, second;
};

/* H[H]:MM[:SS] at *p; *p moves past it. */
static int timeparse_clock(const char **p, struct timeparse_fields *f)
{
	const char *c = *p;

	if (!timeparse_is_digit(c[0]))
		return -EINVAL;
	if (timeparse_is_digit(c[1])) {
		f->hour = (c[0] - '0') * 10 + (c[1] - '0');
		c += 2;
	} else {
		f->hour = c[0] - '0';
		c++;
	}
	if (*c++ != ':' || timeparse_fixed_digits(&c, 2, &f->minute) < 0)
		return -EINVAL;
	f->second = 0;
	if (*c == ':') {
		c++;
		if (timeparse_fixed_digits(&c, 2, &f->second) < 0)
			return -EINVAL;
	}
	if (f->hour > 23 || f->minute > 59 || f->second > 59)
		return -EINVAL;
	*p = c;
	return 0;
}

static bool timeparse_leap_year(int year)
{
	return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static int timeparse_days_in_month(int year, int month)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	if (month == 2 && timeparse_leap_year(year))
		return 29;
	return days[month - 1];
}

/* YYYY-MM-DD at *p, a real day from 1970 on; *p moves past it. */
static int timeparse_date(const char **p, struct timeparse_fields *f)
{
	const char *c = *p;

	if (timeparse_fixed_digits(&c, 4, &f->year) < 0 || *c++ != '-' ||
	    timeparse_fixed_digits(&c, 2, &f->month) < 0 || *c++ != '-' ||
	    timeparse_fixed_digits(&c, 2, &f->day) < 0)
		return -EINVAL;
	if (f->year < 1970 || f->month < 1 || f->month > 12 || f->day < 1 ||
	    f->day > timeparse_days_in_month(f->year, f->month))
		return -EINVAL;
	*p = c;
	return 0;
}

/* The day before, by the calendar alone (a local day may last 23 or 25 hours). */
static void timeparse_previous_day(struct timeparse_fields *f)
{
	if (--f->day > 0)
		return;
	if (--f->month == 0) {
		f->month = 12;
		f->year--;
	}
	f->day = timeparse_days_in_month(f->year, f->month);
}

/* The day after, by the calendar alone. */
static void timeparse_next_day(struct timeparse_fields *f)
{
	if (++f->day <= timeparse_days_in_month(f->year, f->month))
		return;
	f->day = 1;
	if (++f->month == 13) {
		f->month = 1;
		f->year++;
	}
}

/* Local time to unix seconds; -EINVAL for a time the clocks skip. */
static int timeparse_local(const struct timeparse_fields *f, long long *out)
{
	struct tm tm = {
		.tm_year = f->year - 1900, .tm_mon = f->month - 1, .tm_mday = f->day,
		.tm_hour = f->hour, .tm_min = f->minute, .tm_sec = f->second,
		.tm_isdst = -1,
	};
	time_t t;

	errno = 0;
	t = mktime(&tm);
	if (t == (time_t)-1 && errno)
		return -ERANGE;
	/* mktime() moves a skipped time; the fields then differ. */
	if (tm.tm_year != f->year - 1900 || tm.tm_mon != f->month - 1 || tm.tm_mday != f->day ||
	    tm.tm_hour != f->hour || tm.tm_min != f->minute || tm.tm_sec != f->second)
		return -EINVAL;
	*out = (long long)t;
	return 0;
}

/* A clock time alone: today's, or yesterday's if today's is still to
 * come (ahead false); today's, or tomorrow's if today's has passed (ahead
 * true). */
static int timeparse_clock_day(const struct timeparse_fields *clock, long long now, bool ahead,
			       long long *out)
{
	struct timeparse_fields f = *clock;
	time_t now_t = (time_t)now;
	struct tm tm;
	int ret;

	if (!localtime_r(&now_t, &tm))
		return -ERANGE;
	f.year = tm.tm_year + 1900;
	f.month = tm.tm_mon + 1;
	f.day = tm.tm_mday;
	ret = timeparse_local(&f, out);
	if (ret < 0 || (ahead ? *out > now : *out <= now))
		return ret;
	if (ahead)
		timeparse_next_day(&f);
	else
		timeparse_previous_day(&f);
	return timeparse_local(&f, out);
}

/* YYYY-MM-DD, with a clock time after " " or "T". */
static int timeparse_datetime(const char *text, long long *out)
{
	struct timeparse_fields f = { 0 };
	const char *p = text;

	if (timeparse_date(&p, &f) < 0)
		return -EINVAL;
	if (*p == ' ' || *p == 'T') {
		p++;
		if (timeparse_clock(&p, &f) < 0)
			return -EINVAL;
	}
	if (*p)
		return -EINVAL;
	return timeparse_local(&f, out);
}

static int timeparse_unix(const char *text, long long *out)
{
	const char *p = text + 1;
	long long value;
	int ret;

	ret = timeparse_number(&p, TIMEPARSE_UNIX_MAX, &value);
	if (ret < 0)
		return ret;
	if (*p)
		return -EINVAL;
	*out = value;
	return 0;
}

int parse_time(const char *text, long long now, long long *out)
{
	struct timeparse_fields clock = { 0 };
	const char *p = text;
	long long seconds;
	int ret;

	if (!text || !*text)
		return -EINVAL;
	if ((long long)(time_t)now != now)
		return -ERANGE;
	if (timeparse_word_equal(text, strlen(text), "now")) {
		*out = now;
		return 0;
	}
	if (text[0] == '@')
		return timeparse_unix(text, out);
	if (text[0] == '-') {
		ret = parse_duration(text + 1, &seconds);
		if (ret < 0)
			return ret;
		return timeparse_before(now, seconds, out);
	}
	if (timeparse_clock(&p, &clock) == 0 && *p == '\0')
		return timeparse_clock_day(&clock, now, false, out);
	if (timeparse_datetime(text, out) == 0)
		return 0;
	return timeparse_ago(text, now, out);
}

int parse_until(const char *text, long long now, long long *out)
{
	struct timeparse_fields clock = { 0 };
	const char *p = text;
	long long seconds, t;
	int ret;

	if (!text || !*text)
		return -EINVAL;
	if ((long long)(time_t)now != now || now < 0 || now > TIMEPARSE_UNIX_MAX)
		return -ERANGE;
	if (text[0] == '@') {
		ret = timeparse_unix(text, &t);
	} else if (timeparse_clock(&p, &clock) == 0 && *p == '\0') {
		ret = timeparse_clock_day(&clock, now, true, &t);
	} else if (timeparse_datetime(text, &t) == 0) {
		ret = 0;
	} else {
		/* A duration from now: now is at most TIMEPARSE_UNIX_MAX and a
		 * duration at most TIMEPARSE_DURATION_MAX, so the sum fits. */
		ret = parse_duration(text[0] == '+' ? text + 1 : text, &seconds);
		if (ret == 0)
			t = now + seconds;
	}
	if (ret < 0)
		return ret;
	if (t <= now)
		return -ERANGE;
	*out = t;
	return 0;
}

void format_time(long long t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (len == 0)
		return;
	if ((long long)tt != t || !localtime_r(&tt, &tm) ||
	    strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, len, "@%lld", t);
}

void format_duration(long long seconds, char *buf, size_t len)
{
	/* Unsigned, so that LLONG_MIN has a magnitude too. */
	unsigned long long left = seconds < 0 ? -(unsigned long long)seconds : (unsigned long long)seconds;
	static const struct { char letter; unsigned long long seconds; } units[] = {
		{ 'd', 86400 }, { 'h', 3600 }, { 'm', 60 }, { 's', 1 },
	};
	const char *sign = seconds < 0 ? "-" : "";

	if (len == 0)
		return;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		unsigned long long major = left / units[i].seconds, minor;

		if (major == 0 && units[i].seconds > 1)
			continue;
		if (units[i].seconds == 1) {
			snprintf(buf, len, "%s%llus", sign, major);
			return;
		}
		minor = left % units[i].seconds / units[i + 1].seconds;
		if (minor)
			snprintf(buf, len, "%s%llu%c %llu%c", sign, major, units[i].letter, minor,
				 units[i + 1].letter);
		else
			snprintf(buf, len, "%s%llu%c", sign, major, units[i].letter);
		return;
	}
}
