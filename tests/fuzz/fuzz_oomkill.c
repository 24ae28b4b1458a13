/* SPDX-License-Identifier: MIT */
/*
 * Records of the kernel's log (/dev/kmsg) as oomwatch.c reads them: any
 * bytes are parsed without crashing or reading past them, and a record
 * taken as a kill names a valid member and a printable command.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "monitor/monitor.h"
#include "validate.h"
#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A copy of exactly size bytes, so that a read past them is caught. */
	char *record = malloc(size ? size : 1);
	struct oom_event e;
	char err[128];

	if (!record)
		return 0;
	memcpy(record, data, size);
	if (oomwatch_parse(record, size, &e) == 0) {
		if (validate_member_name(e.member, err, sizeof(err)) < 0)
			abort();
		for (const char *c = e.command; *c; c++)
			if (*c < 0x20 || *c >= 0x7f)
				abort();
	}
	free(record);
	return 0;
}
