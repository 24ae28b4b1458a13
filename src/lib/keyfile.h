/* SPDX-License-Identifier: MIT */
/*
 * Files of "key = value" lines ('#' starts a comment line), read into a
 * struct through a table of its fields: gpubox.conf and the hub's
 * hub.conf share this reader, each with its own keys and checks.
 */
#ifndef GPUBOX_KEYFILE_H
#define GPUBOX_KEYFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define KEYFILE_MAX (256 * 1024)     /* bytes of a file */

enum keyfile_type {
	KEYFILE_STRING,            /* char[size] */
	KEYFILE_RANGE,             /* struct config_range: "FIRST-LAST" */
	KEYFILE_UINT,              /* uint32_t */
	KEYFILE_BOOL,              /* bool: yes/no, true/false, on/off, 1/0 */
	KEYFILE_SIZE,              /* uint64_t: bytes, with K/M/G/T */
	KEYFILE_DURATION,          /* uint32_t seconds: "90s", "15m", "1h30m", bare
				    * seconds; "0" or "off" is 0 */
};

struct keyfile_key {
	const char *name;
	enum keyfile_type type;
	size_t offset;
	size_t size;
};

/* A key of struct TYPE's FIELD. */
#define KEYFILE_KEY(TYPE, NAME, KIND, FIELD) \
	{ NAME, KIND, offsetof(TYPE, FIELD), sizeof(((TYPE *)0)->FIELD) }

struct keyfile_spec {
	const struct keyfile_key *keys;
	size_t nkeys;
	const char *manual;        /* named in "unknown key" errors: "gpubox.conf(5)" */
	/* Checks across keys, after the whole text is read. */
	int (*check)(const void *base, char *err, size_t errlen);
};

/* Parse text over the values already at base, then spec->check.  On
 * error -EINVAL with one sentence naming the line in err. */
int keyfile_parse(void *base, const struct keyfile_spec *spec, const char *text, size_t len,
		  char *err, size_t errlen);
/* Read path and parse it; a missing file is not an error unless named
 * (spec->check still runs).  Errors name the file. */
int keyfile_load(void *base, const struct keyfile_spec *spec, const char *path, bool named,
		 char *err, size_t errlen);
/* Every key with its value, in the file's own syntax. */
void keyfile_dump(const void *base, const struct keyfile_spec *spec, FILE *out);

#endif
