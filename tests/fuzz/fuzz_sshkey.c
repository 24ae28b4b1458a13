/* SPDX-License-Identifier: MIT */
/*
 * An authorized_keys line from a member: parsed safely, whatever it is.
 * A key accepted is accepted again as the servers get it ("type base64
 * comment"), with the same fingerprint: one key, one canonical form.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ssh_key *key = malloc(sizeof(*key)), *again = malloc(sizeof(*again));
	char *line = malloc(size + 1), *canonical = malloc(SSH_KEY_MAX + 512);
	char err[256];

	if (key && again && line && canonical) {
		memcpy(line, data, size);
		line[size] = '\0';
		if (ssh_key_parse(line, key, err, sizeof(err)) == 0) {
			snprintf(canonical, SSH_KEY_MAX + 512, "%s %s%s%s", key->type, key->base64,
				 key->comment[0] ? " " : "", key->comment);
			if (ssh_key_parse(canonical, again, err, sizeof(err)) != 0 ||
			    strcmp(key->fingerprint, again->fingerprint) != 0 ||
			    strcmp(key->comment, again->comment) != 0)
				abort();
		}
	}
	free(canonical);
	free(line);
	free(again);
	free(key);
	return 0;
}
