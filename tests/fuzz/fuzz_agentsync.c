/* SPDX-License-Identifier: MIT */
/* The hub's sync body as the agent reads it (hubsync_parse): whatever the
 * hub, or whoever answers in its place, sends. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "hubsync.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hubsync_list list;
	char err[512];

	if (hubsync_parse((const char *)data, size, &list, err, sizeof(err)) == 0)
		hubsync_list_free(&list);
	return 0;
}
