/* SPDX-License-Identifier: MIT */
/*
 * What a client sends that ends up in the audit log: any bytes as the
 * arguments (when they are JSON) are redacted into a copy whose text stays
 * within AUDIT_ARGS_MAX's order and never holds a key named like a secret
 * with its value; any bytes as a log value come out as one line of
 * printable ASCII, within the buffer, whatever they held.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "audit.h"
#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check_escape(const char *text)
{
	char out[256];
	size_t len;

	audit_escape(text, out, sizeof(out));
	len = strlen(out);
	if (len >= sizeof(out))
		abort();
	for (size_t i = 0; i < len; i++)
		if (out[i] < 0x20 || out[i] > 0x7e)
			abort();
}

static void fuzz_check_redact(const char *text, size_t size)
{
	json_t *args = json_loadb(text, size, JSON_DECODE_ANY, NULL);
	json_t *out = audit_redact(args);
	char target[AUDIT_TARGET_MAX];

	if (args && !out)
		abort();
	if (out && json_is_object(out) && json_is_string(json_object_get(out, "token")) &&
	    strcmp(json_string_value(json_object_get(out, "token")), "(hidden)") != 0)
		abort();
	audit_target("member port name", args, "alice", target, sizeof(target));
	if (strlen(target) >= sizeof(target))
		abort();
	json_decref(out);
	json_decref(args);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	fuzz_check_escape(text);
	fuzz_check_redact(text, size);
	free(text);
	return 0;
}
