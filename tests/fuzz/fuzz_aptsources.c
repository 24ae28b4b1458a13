/* SPDX-License-Identifier: MIT */
/* The apt sources parser, in both formats and with format detection. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image/aptsources.h"
#include "log.h"
#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum aptsources_format formats[] = {
		APTSOURCES_AUTO, APTSOURCES_ONE_LINE, APTSOURCES_DEB822,
	};
	static bool quiet;
	char uri[APTSOURCES_URI_MAX];
	char small[16];

	if (!quiet) {
		log_init("fuzz_aptsources", false, LOG_LEVEL_ERROR);
		quiet = true;
	}
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		memset(uri, 0, sizeof(uri));
		if (aptsources_parse((const char *)data, size, formats[i], uri, sizeof(uri)) == 0) {
			/* Whatever it returns must be safe to hand to debootstrap. */
			if (!aptsources_uri_is_valid(uri) || !memchr(uri, '\0', sizeof(uri)))
				abort();
		}
		if (aptsources_parse((const char *)data, size, formats[i], small, sizeof(small)) == 0 &&
		    !memchr(small, '\0', sizeof(small)))
			abort();
	}
	return 0;
}
