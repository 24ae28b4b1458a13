/* SPDX-License-Identifier: MIT */
/* The "mounts" configuration key: parsed safely, whatever it holds. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "container/container.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mounts_entry *entries = calloc(MOUNTS_MAX, sizeof(*entries));
	char *text = malloc(size + 1);
	char err[512];
	size_t n;

	if (entries && text) {
		memcpy(text, data, size);
		text[size] = '\0';
		mounts_parse(text, entries, MOUNTS_MAX, &n, err, sizeof(err));
	}
	free(text);
	free(entries);
	return 0;
}
