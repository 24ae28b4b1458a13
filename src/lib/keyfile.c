/* SPDX-License-Identifier: MIT */
/*
 * The reader of "key = value" files behind config.c and the hub's
 * hubconf.c: lines, comments, the typed fields, the errors that name the
 * line, and the dump that --print-config shows.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "config.h"
#include "keyfile.h"
#include "strutil.h"
#include "timeparse.h"
#include "banned.h"

static const struct keyfile_key *keyfile_find(const struct keyfile_spec *spec, const char *name)
{
	for (size_t i = 0; i < spec->nkeys; i++)
		if (strcmp(spec->keys[i].name, name) == 0)
			return &spec->keys[i];
	return NULL;
}

/* "off" or 0 is 0; bare digits are seconds; else a duration ("1h30m"). */
static int keyfile_parse_duration(const char *value, uint32_t *seconds)
{
	long long parsed;

	if (strcmp(value, "off") == 0)
		return *seconds = 0, 0;
	if (value[strspn(value, "0123456789")] == '\0')
		return parse_uint32(value, seconds);
	if (parse_duration(value, &parsed) < 0 || parsed > UINT32_MAX)
		return -EINVAL;
	*seconds = (uint32_t)parsed;
	return 0;
}

static int keyfile_set(void *base, const struct keyfile_key *key, const char *value, char *why,
		       size_t whylen)
{
	char *field = (char *)base + key->offset;
	struct config_range range;
	uint32_t number;
	uint64_t size;
	bool flag;

	switch (key->type) {
	case KEYFILE_STRING:
		if (strlen(value) >= key->size) {
			snprintf(why, whylen, "the value is longer than %zu characters", key->size - 1);
			return -EINVAL;
		}
		snprintf(field, key->size, "%s", value);
		return 0;
	case KEYFILE_RANGE:
		if (parse_range(value, &range) < 0) {
			snprintf(why, whylen, "expected a range FIRST-LAST of numbers, FIRST <= LAST");
			return -EINVAL;
		}
		memcpy(field, &range, sizeof(range));
		return 0;
	case KEYFILE_UINT:
		if (parse_uint32(value, &number) < 0) {
			snprintf(why, whylen, "expected a whole number");
			return -EINVAL;
		}
		memcpy(field, &number, sizeof(number));
		return 0;
	case KEYFILE_SIZE:
		if (parse_size(value, &size) < 0) {
			snprintf(why, whylen, "expected a size: a whole number of bytes, or with K, M, G or T");
			return -EINVAL;
		}
		memcpy(field, &size, sizeof(size));
		return 0;
	case KEYFILE_BOOL:
		if (parse_bool(value, &flag) < 0) {
			snprintf(why, whylen, "expected yes or no");
			return -EINVAL;
		}
		memcpy(field, &flag, sizeof(flag));
		return 0;
	case KEYFILE_DURATION:
		if (keyfile_parse_duration(value, &number) < 0) {
			snprintf(why, whylen, "expected a duration such as 30s, 15m, 1h or 1h30m, or off");
			return -EINVAL;
		}
		memcpy(field, &number, sizeof(number));
		return 0;
	}
	return -EINVAL;
}

static int keyfile_line(void *base, const struct keyfile_spec *spec, char *line, unsigned lineno,
			char *err, size_t errlen)
{
	const struct keyfile_key *key;
	char why[160] = "";
	char *name, *value, *eq;

	name = strip(line);
	if (!*name || *name == '#')
		return 0;
	eq = strchr(name, '=');
	if (!eq) {
		set_error(err, errlen, "line %u: expected \"key = value\"", lineno);
		return -EINVAL;
	}
	*eq = '\0';
	name = strip(name);
	value = strip(eq + 1);
	key = keyfile_find(spec, name);
	if (!key) {
		set_error(err, errlen, "line %u: unknown key \"%.64s\" (see %s)", lineno, name,
			 spec->manual);
		return -EINVAL;
	}
	if (keyfile_set(base, key, value, why, sizeof(why)) < 0) {
		set_error(err, errlen, "line %u: %s: %s", lineno, key->name, why);
		return -EINVAL;
	}
	return 0;
}

int keyfile_parse(void *base, const struct keyfile_spec *spec, const char *text, size_t len,
		  char *err, size_t errlen)
{
	size_t pos = 0;
	unsigned lineno = 0;

	while (pos < len) {
		char line[CONFIG_TEXT_MAX + 128];
		size_t end = pos, linelen;

		while (end < len && text[end] != '\n')
			end++;
		linelen = end - pos;
		lineno++;
		if (linelen >= sizeof(line)) {
			set_error(err, errlen, "line %u: the line is too long", lineno);
			return -EINVAL;
		}
		if (memchr(text + pos, '\0', linelen)) {
			set_error(err, errlen, "line %u: the line holds a NUL byte", lineno);
			return -EINVAL;
		}
		memcpy(line, text + pos, linelen);
		line[linelen] = '\0';
		pos = end + 1;
		if (keyfile_line(base, spec, line, lineno, err, errlen) < 0)
			return -EINVAL;
	}
	return spec->check ? spec->check(base, err, errlen) : 0;
}

int keyfile_load(void *base, const struct keyfile_spec *spec, const char *path, bool named,
		 char *err, size_t errlen)
{
	__do_close int fd = -EBADF;
	__do_free char *text = NULL;
	char sub[512];
	size_t len = 0;
	ssize_t n;
	int ret;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		ret = -errno;
		if (ret == -ENOENT && !named)
			return spec->check ? spec->check(base, err, errlen) : 0;
		set_error(err, errlen, "cannot read %s: %s", path, strerror(-ret));
		return ret;
	}
	text = malloc(KEYFILE_MAX);
	if (!text)
		return -ENOMEM;
	while ((n = read(fd, text + len, KEYFILE_MAX - len)) > 0)
		len += (size_t)n;
	if (n < 0) {
		ret = -errno;
		set_error(err, errlen, "cannot read %s: %s", path, strerror(-ret));
		return ret;
	}
	if (len == KEYFILE_MAX) {
		set_error(err, errlen, "%s is larger than %d bytes", path, KEYFILE_MAX);
		return -EFBIG;
	}
	ret = keyfile_parse(base, spec, text, len, sub, sizeof(sub));
	if (ret < 0)
		set_error(err, errlen, "%s: %s", path, sub);
	return ret;
}

void keyfile_dump(const void *base, const struct keyfile_spec *spec, FILE *out)
{
	for (size_t i = 0; i < spec->nkeys; i++) {
		const struct keyfile_key *key = &spec->keys[i];
		const char *field = (const char *)base + key->offset;
		const struct config_range *range = (const void *)field;

		switch (key->type) {
		case KEYFILE_STRING:
			fprintf(out, "%s = %s\n", key->name, field);
			break;
		case KEYFILE_RANGE:
			fprintf(out, "%s = %u-%u\n", key->name, range->first, range->last);
			break;
		case KEYFILE_UINT:
			fprintf(out, "%s = %u\n", key->name, *(const uint32_t *)(const void *)field);
			break;
		case KEYFILE_BOOL:
			fprintf(out, "%s = %s\n", key->name,
				*(const bool *)(const void *)field ? "yes" : "no");
			break;
		case KEYFILE_SIZE:
			fprintf(out, "%s = %llu\n", key->name,
				(unsigned long long)*(const uint64_t *)(const void *)field);
			break;
		case KEYFILE_DURATION:
			if (*(const uint32_t *)(const void *)field == 0)
				fprintf(out, "%s = off\n", key->name);
			else
				fprintf(out, "%s = %us\n", key->name, *(const uint32_t *)(const void *)field);
			break;
		}
	}
}
