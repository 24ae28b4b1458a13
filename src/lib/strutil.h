/* SPDX-License-Identifier: MIT */
/* Small string helpers: strict number parsing and trimming. */
#ifndef GPUBOX_STRUTIL_H
#define GPUBOX_STRUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct config_range;

/* Trim ASCII white space in place; returns the first non-blank character. */
char *strip(char *s);

/* Decimal only, no sign, no blanks, no leading '+'; -EINVAL, or -ERANGE
 * above max. */
int parse_uint_max(const char *s, uint64_t max, uint64_t *out);
int parse_uint32(const char *s, uint32_t *out);

/* A size in bytes: decimal digits, then optionally one of K, M, G, T
 * (powers of 1024); nothing else.  -EINVAL or -ERANGE. */
int parse_size(const char *s, uint64_t *out);

/* "FIRST-LAST" with FIRST <= LAST. */
int parse_range(const char *s, struct config_range *out);

/* yes/no, true/false, on/off, 1/0. */
int parse_bool(const char *s, bool *out);

/* A TCP port, 1..65535. */
int parse_port(const char *s, uint16_t *out);

bool str_has_prefix(const char *s, const char *prefix);

/* Append n bytes to a growing buffer that stays NUL-terminated: *buf holds
 * *len bytes in *cap (all 0 to start; the caller frees *buf).  -EFBIG when
 * it would pass max bytes, -ENOMEM; nothing is appended then. */
int buf_append(char **buf, size_t *len, size_t *cap, const char *data, size_t n, size_t max);

/* Close a stream from open_memstream(); false when any write to it failed
 * (the text is then incomplete and the caller frees it). */
bool memstream_close(FILE *f);

/* One sentence into err (which may be NULL or of length 0: then nothing).
 * Every human-readable reason of an "err, errlen" pair is written here. */
__attribute__((format(printf, 3, 4)))
void set_error(char *err, size_t errlen, const char *fmt, ...);
/* The same, unless err already holds a reason: where a failure deep in
 * some work is followed by others it caused, the first is worth telling. */
__attribute__((format(printf, 3, 4)))
void set_first_error(char *err, size_t errlen, const char *fmt, ...);

#endif
