/* SPDX-License-Identifier: MIT */
/*
 * A --gpu list as a member types it (gpubox reserve --gpu 1,3), read by
 * the agent against a server of 8 GPUs: any bytes are refused or
 * accepted without crashing, and what is accepted names GPUs that exist,
 * each once; a refusal always says why.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu/gpu.h"
#include "banned.h"

#define FUZZ_GPUS 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct gpu_host fuzz_host;

static void fuzz_host_init(void)
{
	if (fuzz_host.present)
		return;
	fuzz_host.present = true;
	fuzz_host.ngpus = FUZZ_GPUS;
	for (unsigned i = 0; i < FUZZ_GPUS; i++) {
		fuzz_host.gpus[i].index = i;
		snprintf(fuzz_host.gpus[i].uuid, sizeof(fuzz_host.gpus[i].uuid),
			 "GPU-%08x-1111-2222-3333-444444444444", i);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	char err[256] = "", mask_text[RESERVE_MASK_TEXT_MAX];
	uint64_t mask = 0;
	int ret;

	if (!text)
		return 0;
	fuzz_host_init();
	memcpy(text, data, size);
	text[size] = '\0';
	ret = reserve_parse_gpus(&fuzz_host, text, &mask, err, sizeof(err));
	if (ret == 0 && (mask == 0 || (mask & ~reserve_all(FUZZ_GPUS))))
		abort();
	if (ret != 0 && ((ret != -EINVAL && ret != -ENOENT) || !err[0]))
		abort();
	reserve_mask_text(mask, mask_text, sizeof(mask_text));
	free(text);
	return 0;
}
