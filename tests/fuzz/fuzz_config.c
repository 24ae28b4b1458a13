/* SPDX-License-Identifier: MIT */
/* The configuration parser never crashes, whatever the file holds. */
#include <stddef.h>
#include <stdint.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gpubox_config cfg;
	char err[256];

	config_set_defaults(&cfg);
	config_parse(&cfg, (const char *)data, size, err, sizeof(err));
	return 0;
}
