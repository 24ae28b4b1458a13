/* SPDX-License-Identifier: MIT */
/*
 * What the user sees: aligned "Label: value" blocks and tables for people,
 * the agent's result object as JSON for programs (--json).  Tables take
 * their columns from the rows themselves, so a field the agent adds later
 * shows up without a change here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "cli.h"

#include "banned.h"

void output_json(json_t *value)
{
	json_dumpf(value, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY);
	fputc('\n', stdout);
}

void output_sanitized(FILE *out, const char *text)
{
	for (const unsigned char *p = (const unsigned char *)text; *p; p++)
		fputc((*p < 0x20 && *p != '\t') || *p == 0x7f ? '?' : *p, out);
}

static char *output_scalar_text(json_t *value)
{
	char *text = NULL;

	switch (json_typeof(value)) {
	case JSON_STRING:
		return strdup(json_string_value(value));
	case JSON_INTEGER:
		if (asprintf(&text, "%" JSON_INTEGER_FORMAT, json_integer_value(value)) < 0)
			return NULL;
		return text;
	case JSON_REAL:
		if (asprintf(&text, "%g", json_real_value(value)) < 0)
			return NULL;
		return text;
	case JSON_TRUE:
		return strdup("yes");
	case JSON_FALSE:
		return strdup("no");
	case JSON_NULL:
		return strdup("");
	default:
		return json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
	}
}

char *output_value_text(json_t *value)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f;
	size_t i;
	json_t *item;

	if (!value)
		return strdup("");
	if (!json_is_array(value))
		return output_scalar_text(value);

	/* A list of scalars reads best as "a, b, c". */
	f = open_memstream(&text, &len);
	if (!f)
		return NULL;
	json_array_foreach(value, i, item) {
		__do_free char *part = output_scalar_text(item);

		fprintf(f, "%s%s", i ? ", " : "", part ? part : "?");
	}
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

static void output_padded(FILE *out, const char *text, size_t width, bool last)
{
	size_t len = strlen(text);

	output_sanitized(out, text);
	if (last)
		return;
	for (size_t i = len; i < width + 2; i++)
		fputc(' ', out);
}

/* Print a finished table line without the padding of empty last cells. */
static void output_line(char *line, size_t len)
{
	while (len > 0 && line[len - 1] == ' ')
		len--;
	fwrite(line, 1, len, stdout);
	fputc('\n', stdout);
}

static const char *output_field_label(const struct output_field *fields, size_t nfields,
				      const char *key)
{
	for (size_t i = 0; i < nfields; i++)
		if (strcmp(fields[i].key, key) == 0)
			return fields[i].label;
	return NULL;
}

void output_fields(json_t *obj, const struct output_field *fields, size_t nfields)
{
	const char *key;
	json_t *value;
	size_t width = 0;

	for (size_t i = 0; i < nfields; i++)
		if (json_object_get(obj, fields[i].key) && strlen(fields[i].label) > width)
			width = strlen(fields[i].label);
	json_object_foreach(obj, key, value)
		if (!output_field_label(fields, nfields, key) && strlen(key) > width)
			width = strlen(key);
	width++;   /* the colon */

	for (size_t i = 0; i < nfields; i++) {
		__do_free char *label = NULL;
		__do_free char *text = NULL;

		value = json_object_get(obj, fields[i].key);
		if (!value)
			continue;
		text = output_value_text(value);
		if (asprintf(&label, "%s:", fields[i].label) < 0)
			return;
		output_padded(stdout, label, width, false);
		output_sanitized(stdout, text ? text : "?");
		fputc('\n', stdout);
	}
	json_object_foreach(obj, key, value) {
		__do_free char *label = NULL;
		__do_free char *text = NULL;

		if (output_field_label(fields, nfields, key))
			continue;
		text = output_value_text(value);
		if (asprintf(&label, "%s:", key) < 0)
			return;
		output_padded(stdout, label, width, false);
		output_sanitized(stdout, text ? text : "?");
		fputc('\n', stdout);
	}
}

static bool output_has_column(json_t *columns, const char *key)
{
	size_t i;
	json_t *c;

	json_array_foreach(columns, i, c)
		if (strcmp(json_string_value(c), key) == 0)
			return true;
	return false;
}

/* A header reads "SSH PORT" for the key "ssh_port". */
static char *output_header(const char *key)
{
	char *h = strdup(key);

	for (char *p = h; p && *p; p++)
		*p = *p == '_' ? ' ' : (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
	return h;
}

/* Rows that are plain values (a list of names) make one column. */
static void output_plain_rows(json_t *rows)
{
	size_t i;
	json_t *row;

	json_array_foreach(rows, i, row) {
		__do_free char *text = output_value_text(row);

		output_sanitized(stdout, text ? text : "?");
		fputc('\n', stdout);
	}
}

/* Into columns, the keys of rows: the preferred ones present in some row,
 * then the others in the order first seen. */
static void output_table_columns(json_t *rows, const char *const preferred[], json_t *columns)
{
	size_t i;
	json_t *row, *value;
	const char *key;

	for (size_t p = 0; preferred && preferred[p]; p++)
		json_array_foreach(rows, i, row)
			if (json_object_get(row, preferred[p])) {
				json_array_append_new(columns, json_string(preferred[p]));
				break;
			}
	json_array_foreach(rows, i, row)
		json_object_foreach(row, key, value)
			if (!output_has_column(columns, key))
				json_array_append_new(columns, json_string(key));
}

/* The width of each column: its widest text, header included.  The caller
 * frees the result; NULL when out of memory. */
static size_t *output_column_widths(json_t *rows, json_t *columns)
{
	size_t ncols = json_array_size(columns), i, col;
	size_t *widths = calloc(ncols ? ncols : 1, sizeof(*widths));
	json_t *row, *c;

	if (!widths)
		return NULL;
	json_array_foreach(columns, col, c) {
		widths[col] = strlen(json_string_value(c));
		json_array_foreach(rows, i, row) {
			__do_free char *text =
				output_value_text(json_object_get(row, json_string_value(c)));

			if (text && strlen(text) > widths[col])
				widths[col] = strlen(text);
		}
	}
	return widths;
}

/* One line of the table, the header when row is NULL.  It is built whole
 * first so that output_line() can drop the padding of empty last cells. */
static int output_table_line(json_t *row, json_t *columns, const size_t *widths)
{
	__do_free char *line = NULL;
	size_t len = 0, ncols = json_array_size(columns), col;
	FILE *out = open_memstream(&line, &len);
	json_t *c;

	if (!out)
		return -ENOMEM;
	json_array_foreach(columns, col, c) {
		__do_free char *text = row ?
			output_value_text(json_object_get(row, json_string_value(c))) :
			output_header(json_string_value(c));

		output_padded(out, text ? text : "?", widths[col], col + 1 == ncols);
	}
	if (fclose(out) != 0)
		return -EIO;
	output_line(line, len);
	return 0;
}

void output_table(json_t *rows, const char *const preferred[], const char *empty)
{
	__do_json json_t *columns = json_array();
	__do_free size_t *widths = NULL;

	if (!json_is_array(rows) || json_array_size(rows) == 0) {
		if (empty)
			printf("%s\n", empty);
		return;
	}
	if (!columns)
		return;
	if (!json_is_object(json_array_get(rows, 0))) {
		output_plain_rows(rows);
		return;
	}
	output_table_columns(rows, preferred, columns);
	widths = output_column_widths(rows, columns);
	if (!widths)
		return;
	/* Line 0 is the header, line i the row i - 1. */
	for (size_t i = 0; i <= json_array_size(rows); i++)
		if (output_table_line(i ? json_array_get(rows, i - 1) : NULL, columns, widths) < 0)
			return;
}
