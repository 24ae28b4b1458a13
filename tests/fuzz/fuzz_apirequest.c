/* SPDX-License-Identifier: MIT */
/*
 * The hub's side: the JSON request bodies its API (src/hub/api.c) accepts
 * from members and admins, api_parse_key_request() and
 * api_parse_flag_request() ({"key": "..."}, {"enabled": bool},
 * {"disabled": bool}): parsed safely, and a key that passes goes on to the
 * SSH key check as in api.c.  Not the sync body the agents fetch: the
 * agent's parser of that, hubsync_parse(), has a target of its own.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub.h"
#include "validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ssh_key *key = malloc(sizeof(*key));
	char *line = malloc(SSH_KEY_MAX);
	char err[256];
	bool flag;

	if (key && line &&
	    api_parse_key_request((const char *)data, size, line, SSH_KEY_MAX, err, sizeof(err)) == 0)
		ssh_key_parse(line, key, err, sizeof(err));
	api_parse_flag_request((const char *)data, size, "enabled", &flag, err, sizeof(err));
	api_parse_flag_request((const char *)data, size, "disabled", &flag, err, sizeof(err));
	free(line);
	free(key);
	return 0;
}
