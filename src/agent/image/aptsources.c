/* SPDX-License-Identifier: MIT */
/*
 * The Debian mirror the host itself uses, read from its apt sources, so a
 * template is built from the same archive without anyone naming a mirror.
 *
 * Two formats (sources.list(5)):
 *	one-line   deb [ opt=val ... ] URI SUITE [COMPONENT...]
 *	deb822     stanzas of "Field: value" lines (Types, URIs, Suites,
 *	           Components, Enabled), separated by blank lines
 * The text is untrusted in the sense that it may be anything at all: it is
 * also the input of tests/fuzz/fuzz_aptsources.c.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "image/aptsources.h"
#include "array.h"
#include "cleanup.h"
#include "fsutil.h"
#include "log.h"
#include "banned.h"

#define APTSOURCES_FILE_MAX (1024 * 1024)

static bool aptsources_is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static bool aptsources_has_suffix(const char *s, const char *suffix)
{
	size_t len = strlen(s), slen = strlen(suffix);

	return len >= slen && strcmp(s + len - slen, suffix) == 0;
}

bool aptsources_uri_is_valid(const char *uri)
{
	static const char *const schemes[] = { "http://", "https://", "file:/" };
	size_t len = strlen(uri), prefix = 0;

	if (len == 0 || len >= APTSOURCES_URI_MAX)
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(schemes); i++) {
		if (strncasecmp(uri, schemes[i], strlen(schemes[i])) == 0) {
			prefix = strlen(schemes[i]);
			break;
		}
	}
	/* A scheme and something after it: never an option to debootstrap. */
	if (prefix == 0 || len == prefix)
		return false;
	/* What a mirror's URI needs, and nothing a shell or an option parser
	 * might read as something else (debootstrap is a shell script). */
	for (size_t i = 0; i < len; i++) {
		char c = uri[i];

		if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') &&
		    !strchr("-._~:/@%+,=[]", c))
			return false;
	}
	return true;
}

/* The release itself, not an overlay archive on top of it. */
static bool aptsources_suite_is_plain(const char *suite)
{
	static const char *const overlays[] = {
		"-security", "-updates", "-backports", "-backports-sloppy", "-proposed",
	};

	if (!*suite || suite[0] == '-' || strchr(suite, '/') || strchr(suite, '$'))
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(overlays); i++)
		if (aptsources_has_suffix(suite, overlays[i]))
			return false;
	return true;
}

static int aptsources_copy_uri(const char *found, char *uri, size_t urilen)
{
	size_t len = strlen(found);

	if (len >= urilen)
		return -ENAMETOOLONG;
	memcpy(uri, found, len + 1);
	return 0;
}

/* Next blank-separated word of *cursor, NUL-terminated in place. */
static char *aptsources_next_word(char **cursor)
{
	char *s = *cursor, *word;

	while (*s && aptsources_is_blank(*s))
		s++;
	if (!*s) {
		*cursor = s;
		return NULL;
	}
	word = s;
	while (*s && !aptsources_is_blank(*s))
		s++;
	if (*s)
		*s++ = '\0';
	*cursor = s;
	return word;
}

static bool aptsources_list_has_word(const char *list, const char *word)
{
	__do_free char *copy = strdup(list);
	char *cursor = copy, *w;

	if (!copy)
		return false;
	while ((w = aptsources_next_word(&cursor)))
		if (strcmp(w, word) == 0)
			return true;
	return false;
}

/* ---- one-line format ---------------------------------------------------- */

static int aptsources_parse_oneline(char *text, char *uri, size_t urilen)
{
	char *saveptr = NULL;

	for (char *line = strtok_r(text, "\n", &saveptr); line;
	     line = strtok_r(NULL, "\n", &saveptr)) {
		char *hash = strchr(line, '#'), *cursor = line, *type, *word, *suite;

		if (hash)
			*hash = '\0';
		type = aptsources_next_word(&cursor);
		if (!type || strcmp(type, "deb") != 0)
			continue;
		while (*cursor && aptsources_is_blank(*cursor))
			cursor++;
		if (*cursor == '[') {
			char *close = strchr(cursor, ']');

			if (!close)
				continue;
			cursor = close + 1;
		}
		word = aptsources_next_word(&cursor);
		suite = aptsources_next_word(&cursor);
		if (!word || !suite)
			continue;
		if (aptsources_uri_is_valid(word) && aptsources_suite_is_plain(suite))
			return aptsources_copy_uri(word, uri, urilen);
	}
	return -ENOENT;
}

/* ---- deb822 format ------------------------------------------------------ */

struct aptsources_stanza {
	char *types;
	char *uris;
	char *suites;
	char *enabled;
	char **current;    /* the field a continuation line adds to */
};

static void aptsources_stanza_clear(struct aptsources_stanza *st)
{
	free(st->types);
	free(st->uris);
	free(st->suites);
	free(st->enabled);
	*st = (struct aptsources_stanza){ 0 };
}

static int aptsources_field_append(char **field, const char *value)
{
	size_t old = *field ? strlen(*field) : 0, add = strlen(value);
	char *grown;

	grown = realloc(*field, old + add + 2);
	if (!grown)
		return -ENOMEM;
	if (old)
		grown[old++] = ' ';
	memcpy(grown + old, value, add + 1);
	*field = grown;
	return 0;
}

static bool aptsources_is_false(const char *value)
{
	static const char *const no[] = { "no", "false", "off", "0", "disable", "without" };
	__do_free char *copy = strdup(value);
	char *cursor = copy, *word;

	if (!copy)
		return false;
	word = aptsources_next_word(&cursor);
	if (!word)
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(no); i++)
		if (strcasecmp(word, no[i]) == 0)
			return true;
	return false;
}

/* The stanza's mirror, if it has one: copied into uri and 0, else -ENOENT. */
static int aptsources_stanza_mirror(const struct aptsources_stanza *st, char *uri, size_t urilen)
{
	__do_free char *suites = NULL, *uris = NULL;
	char *cursor, *word;
	bool plain = false;

	if (!st->types || !st->uris || !st->suites)
		return -ENOENT;
	if (st->enabled && aptsources_is_false(st->enabled))
		return -ENOENT;
	if (!aptsources_list_has_word(st->types, "deb"))
		return -ENOENT;

	suites = strdup(st->suites);
	uris = strdup(st->uris);
	if (!suites || !uris)
		return -ENOMEM;
	cursor = suites;
	while (!plain && (word = aptsources_next_word(&cursor)))
		plain = aptsources_suite_is_plain(word);
	if (!plain)
		return -ENOENT;
	cursor = uris;
	while ((word = aptsources_next_word(&cursor)))
		if (aptsources_uri_is_valid(word))
			return aptsources_copy_uri(word, uri, urilen);
	return -ENOENT;
}

static int aptsources_deb822_line(struct aptsources_stanza *st, char *line)
{
	char *colon, *name, *value;

	if (line[0] == '#')
		return 0;
	if (aptsources_is_blank(line[0])) {
		/* A continuation line: more of the previous field's value. */
		value = line;
		while (*value && aptsources_is_blank(*value))
			value++;
		if (!st->current)
			return 0;
		return aptsources_field_append(st->current, value);
	}
	colon = strchr(line, ':');
	st->current = NULL;
	if (!colon)
		return 0; /* not a field: ignored, as is any unknown field */
	*colon = '\0';
	name = line;
	value = colon + 1;
	while (*value && aptsources_is_blank(*value))
		value++;
	if (strcasecmp(name, "Types") == 0)
		st->current = &st->types;
	else if (strcasecmp(name, "URIs") == 0)
		st->current = &st->uris;
	else if (strcasecmp(name, "Suites") == 0)
		st->current = &st->suites;
	else if (strcasecmp(name, "Enabled") == 0)
		st->current = &st->enabled;
	else
		return 0;
	/* A repeated field replaces the earlier one. */
	free(*st->current);
	*st->current = NULL;
	return aptsources_field_append(st->current, value);
}

static bool aptsources_line_is_empty(const char *line)
{
	for (; *line; line++)
		if (!aptsources_is_blank(*line))
			return false;
	return true;
}

static int aptsources_parse_deb822(char *text, char *uri, size_t urilen)
{
	struct aptsources_stanza st = { 0 };
	char *line = text;
	int ret = -ENOENT;

	for (;;) {
		char *nl = strchr(line, '\n');
		bool last = !nl;

		if (nl)
			*nl = '\0';
		if (aptsources_line_is_empty(line)) {
			ret = aptsources_stanza_mirror(&st, uri, urilen);
			aptsources_stanza_clear(&st);
			if (ret != -ENOENT)
				break;
		} else {
			ret = aptsources_deb822_line(&st, line);
			if (ret < 0)
				break;
			ret = -ENOENT;
		}
		if (last) {
			ret = aptsources_stanza_mirror(&st, uri, urilen);
			break;
		}
		line = nl + 1;
	}
	aptsources_stanza_clear(&st);
	return ret;
}

/* ---- entry points ------------------------------------------------------- */

static bool aptsources_looks_deb822(const char *text)
{
	const char *line = text;

	for (;;) {
		const char *p = line;

		while (*p && (aptsources_is_blank(*p) || *p == '\n'))
			p++;
		if (*p == '#') {
			const char *nl = strchr(p, '\n');

			if (!nl)
				return false;
			line = nl + 1;
			continue;
		}
		/* The first line that says something: a field name or "deb ...". */
		for (; *p && *p != '\n'; p++) {
			if (*p == ':')
				return true;
			if (aptsources_is_blank(*p))
				return false;
		}
		return false;
	}
}

int aptsources_parse(const char *text, size_t len, enum aptsources_format format,
		     char *uri, size_t urilen)
{
	__do_free char *copy = NULL;

	if (!text || !uri || urilen == 0)
		return -EINVAL;
	copy = malloc(len + 1);
	if (!copy)
		return -ENOMEM;
	/* A NUL byte would end the text early; it is garbage either way. */
	for (size_t i = 0; i < len; i++)
		copy[i] = text[i] ? text[i] : ' ';
	copy[len] = '\0';

	if (format == APTSOURCES_AUTO)
		format = aptsources_looks_deb822(copy) ? APTSOURCES_DEB822 : APTSOURCES_ONE_LINE;
	if (format == APTSOURCES_DEB822)
		return aptsources_parse_deb822(copy, uri, urilen);
	return aptsources_parse_oneline(copy, uri, urilen);
}

int aptsources_parse_mirror(const char *text, size_t len, char *uri, size_t urilen)
{
	return aptsources_parse(text, len, APTSOURCES_AUTO, uri, urilen);
}

static int aptsources_parse_file(const char *path, enum aptsources_format format,
				 char *uri, size_t urilen)
{
	__do_free char *text = NULL;
	size_t len = 0;
	int ret;

	ret = fsutil_read_file(path, APTSOURCES_FILE_MAX, &text, &len);
	if (ret == -ENOENT || ret == -ENOTDIR)
		return -ENOENT;
	if (ret < 0)
		return log_warn_errno(-ENOENT, -ret, "cannot read %s; skipping it", path);
	return aptsources_parse(text, len, format, uri, urilen);
}

static int aptsources_compare(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int aptsources_find_mirror(const char *root, char *uri, size_t urilen)
{
	__do_closedir DIR *dir = NULL;
	__do_strv char **names = NULL;
	char path[PATH_MAX];
	size_t count = 0, cap = 0;
	struct dirent *de;
	int ret;

	if (!root || !*root || strcmp(root, "/") == 0)
		root = "";

	ret = snprintf(path, sizeof(path), "%s/etc/apt/sources.list", root);
	if (ret < 0 || (size_t)ret >= sizeof(path))
		return -ENAMETOOLONG;
	ret = aptsources_parse_file(path, APTSOURCES_ONE_LINE, uri, urilen);
	if (ret != -ENOENT)
		return ret;

	ret = snprintf(path, sizeof(path), "%s/etc/apt/sources.list.d", root);
	if (ret < 0 || (size_t)ret >= sizeof(path))
		return -ENAMETOOLONG;
	dir = opendir(path);
	if (!dir)
		return -ENOENT;
	while ((de = readdir(dir))) {
		if (de->d_name[0] == '.')
			continue;
		if (!aptsources_has_suffix(de->d_name, ".list") &&
		    !aptsources_has_suffix(de->d_name, ".sources"))
			continue;
		if (strv_append(&names, &count, &cap, de->d_name) < 0)
			return -ENOMEM;
	}
	if (count == 0)
		return -ENOENT;
	qsort(names, count, sizeof(*names), aptsources_compare);

	for (size_t i = 0; i < count; i++) {
		enum aptsources_format format = aptsources_has_suffix(names[i], ".sources")
						? APTSOURCES_DEB822 : APTSOURCES_ONE_LINE;

		ret = snprintf(path, sizeof(path), "%s/etc/apt/sources.list.d/%s", root, names[i]);
		if (ret < 0 || (size_t)ret >= sizeof(path))
			continue;
		ret = aptsources_parse_file(path, format, uri, urilen);
		if (ret != -ENOENT)
			return ret;
	}
	return -ENOENT;
}
