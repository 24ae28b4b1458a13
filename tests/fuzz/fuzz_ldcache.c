/* SPDX-License-Identifier: MIT */
/* The ld.so.cache reader: any bytes, every entry's strings inside the input. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gpu/ldcache.h"
#include "log.h"
#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_span {
	const char *start;
	size_t size;
	size_t seen;
};

static int fuzz_entry(const struct ldcache_entry *e, void *arg)
{
	struct fuzz_span *span = arg;

	/* Both strings lie inside the input and end there. */
	if (e->key < span->start || e->key >= span->start + span->size ||
	    e->value < span->start || e->value >= span->start + span->size ||
	    !memchr(e->key, '\0', (size_t)(span->start + span->size - e->key)) ||
	    !memchr(e->value, '\0', (size_t)(span->start + span->size - e->value)))
		abort();
	span->seen++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool quiet;
	struct fuzz_span span;
	char *copy;

	if (!quiet) {
		log_init("fuzz_ldcache", false, LOG_LEVEL_ERROR);
		quiet = true;
	}
	/* An exact-size copy, so that a read past the end is caught by ASan. */
	copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	span = (struct fuzz_span){ .start = copy, .size = size };
	ldcache_parse(copy, size, fuzz_entry, &span);
	free(copy);
	return 0;
}
