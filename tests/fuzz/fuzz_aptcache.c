/* SPDX-License-Identifier: MIT */
/*
 * The apt_cache key: parsed safely whatever it holds, and whatever it
 * takes becomes a proxy URL that the apt line renders, of nothing but
 * letters, digits and .:/- (no quote, semicolon, brace or line break
 * reaches apt's configuration).  A disagreement aborts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "container/container.h"
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check_taken(const struct config_apt_cache *cache)
{
	char url[CONFIG_APT_CACHE_HOST_MAX + 32], text[512];

	if (config_apt_cache_proxy(cache, "10.77.0.1", url, sizeof(url)) < 0 ||
	    strspn(url, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.:/-") !=
		    strlen(url) ||
	    aptproxy_render(url, text, sizeof(text)) < 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config_apt_cache cache;
	char *text = malloc(size + 1);
	char err[512];

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (config_apt_cache(text, &cache, err, sizeof(err)) == 0) {
		if (cache.mode != CONFIG_APT_CACHE_OFF)
			fuzz_check_taken(&cache);
	} else if (!err[0] || cache.mode != CONFIG_APT_CACHE_OFF) {
		abort();
	}
	free(text);
	return 0;
}
