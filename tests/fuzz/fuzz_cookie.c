/* SPDX-License-Identifier: MIT */
/* A Cookie header from anyone: parsed safely for the session cookie and
 * another name, into a small buffer and into a large one. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *header = malloc(size + 1);
	char small[8], large[HUB_TOKEN_HEX];

	if (!header)
		return 0;
	memcpy(header, data, size);
	header[size] = '\0';
	if (form_cookie(header, HTTP_SESSION_COOKIE, large, sizeof(large)) == 0 &&
	    strlen(large) >= sizeof(large))
		abort();
	if (form_cookie(header, "a", small, sizeof(small)) == 0 && strlen(small) >= sizeof(small))
		abort();
	free(header);
	return 0;
}
