/* SPDX-License-Identifier: MIT */
/*
 * The pid map's parser (src/nvmlshim/pidmap.c) on any input: the NVML
 * interposer runs it inside members' programs on a file a member, root in
 * the container, can put in its place.  A map it accepts must render back
 * to the same text, and every lookup must stay within it.  The input is
 * copied into a buffer of exactly its size, so that a read past the
 * length given is caught by the sanitizers.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nvmlshim/pidmap.h"
#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct pidmap map;
	static char again[PIDMAP_TEXT_MAX];
	char *text = malloc(size ? size : 1);
	int len;

	if (!text)
		return 0;
	memcpy(text, data, size);
	if (pidmap_parse(text, size, &map) == 0) {
		len = pidmap_render(&map, again, sizeof(again));
		if (len < 0 || (size_t)len != size || memcmp(again, text, size) != 0)
			abort();
		for (uint32_t i = 0; i < map.n; i++)
			if (pidmap_lookup(&map, map.entries[i].host) != map.entries[i].ns ||
			    pidmap_reverse(&map, map.entries[i].ns) == 0)
				abort();
		(void)pidmap_fresh(&map, 0);
	}
	free(text);
	return 0;
}
