/* SPDX-License-Identifier: MIT */
/* A urlencoded body or query string from a browser: parsed safely, and
 * every field it yields is a NUL-terminated name found again by name. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct form f;

	/* Not NUL-terminated on purpose: only size bytes may be read. */
	if (form_parse((const char *)data, size, &f) == 0) {
		for (size_t i = 0; i < f.n; i++)
			if (form_get(&f, f.fields[i].name) != f.fields[i].value)
				abort();
	}
	form_free(&f);
	return 0;
}
