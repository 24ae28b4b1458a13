/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "strutil.h"
#include "banned.h"

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

char *strip(char *s)
{
	size_t len;

	while (is_blank(*s))
		s++;
	len = strlen(s);
	while (len > 0 && is_blank(s[len - 1]))
		s[--len] = '\0';
	return s;
}

int buf_append(char **buf, size_t *len, size_t *cap, const char *data, size_t n, size_t max)
{
	if (n > max || *len > max - n)
		return -EFBIG;
	if (*len + n + 1 > *cap) {
		size_t grown_cap = *cap ? *cap : 1024;
		char *grown;

		while (grown_cap < *len + n + 1) {
			if (grown_cap > SIZE_MAX / 2)
				return -ENOMEM;
			grown_cap *= 2;
		}
		grown = realloc(*buf, grown_cap);
		if (!grown)
			return -ENOMEM;
		*buf = grown;
		*cap = grown_cap;
	}
	memcpy(*buf + *len, data, n);
	*len += n;
	(*buf)[*len] = '\0';
	return 0;
}

int parse_uint_max(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t value = 0;

	if (!s || !*s)
		return -EINVAL;
	for (const char *p = s; *p; p++) {
		uint64_t digit;

		if (*p < '0' || *p > '9')
			return -EINVAL;
		digit = (uint64_t)(*p - '0');
		if (digit > max || value > (max - digit) / 10)
			return -ERANGE;
		value = value * 10 + digit;
	}
	*out = value;
	return 0;
}

int parse_uint32(const char *s, uint32_t *out)
{
	uint64_t value;
	int ret = parse_uint_max(s, UINT32_MAX, &value);

	if (ret == 0)
		*out = (uint32_t)value;
	return ret;
}

int parse_size(const char *s, uint64_t *out)
{
	static const char units[] = "KMGT";
	uint64_t value = 0, scale = 1;
	const char *p = s;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		uint64_t digit = (uint64_t)(*p - '0');

		if (value > (UINT64_MAX - digit) / 10)
			return -ERANGE;
		value = value * 10 + digit;
	}
	if (*p) {
		const char *u = strchr(units, *p);

		if (!u || p[1])
			return -EINVAL;
		for (const char *q = units; q <= u; q++)
			scale *= 1024;
	}
	if (value > UINT64_MAX / scale)
		return -ERANGE;
	*out = value * scale;
	return 0;
}

int parse_range(const char *s, struct config_range *out)
{
	char first[16], last[16];
	const char *dash = strchr(s, '-');
	size_t len;

	if (!dash)
		return -EINVAL;
	len = (size_t)(dash - s);
	if (len == 0 || len >= sizeof(first) || strlen(dash + 1) >= sizeof(last))
		return -EINVAL;
	memcpy(first, s, len);
	first[len] = '\0';
	memcpy(last, dash + 1, strlen(dash + 1) + 1);
	if (parse_uint32(first, &out->first) < 0 || parse_uint32(last, &out->last) < 0)
		return -EINVAL;
	if (out->first > out->last)
		return -EINVAL;
	return 0;
}

int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

int parse_port(const char *s, uint16_t *out)
{
	uint32_t value;
	int ret = parse_uint32(s, &value);

	if (ret < 0)
		return ret;
	if (value == 0 || value > 65535)
		return -ERANGE;
	*out = (uint16_t)value;
	return 0;
}

bool memstream_close(FILE *f)
{
	bool failed = ferror(f) != 0;

	if (fclose(f) != 0)
		failed = true;
	if (failed)
		errno = ENOMEM;
	return !failed;
}

bool str_has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

void set_error(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

void set_first_error(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0 || err[0])
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}
