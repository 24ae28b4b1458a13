/* SPDX-License-Identifier: MIT */
/* An authorized_keys line from a member: parsed safely, whatever it is. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ssh_key *key = malloc(sizeof(*key));
	char *line = malloc(size + 1);
	char err[256];

	if (key && line) {
		memcpy(line, data, size);
		line[size] = '\0';
		ssh_key_parse(line, key, err, sizeof(err));
	}
	free(line);
	free(key);
	return 0;
}
