/* SPDX-License-Identifier: MIT */
/*
 * The agent's side: hubsync_parse() in src/agent/hubsync.c ("members from
 * the hub"), which reads the sync body the agent fetches from the hub:
 * whatever the hub, or whoever answers in its place, sends.  Named after
 * hubsync.c, as its unit test is; the hub's own request bodies are
 * fuzz_apirequest.c.
 */
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
