/* SPDX-License-Identifier: MIT */
/* resolv.conf's nameservers: any bytes, never past the input, never more
 * than asked for, never one twice. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"
#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t out[RESOLVERS_MAX + 1];
	size_t n;
	char *copy;

	/* An exact-size copy, not terminated, so that a read past the end is
	 * caught by ASan. */
	copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	out[RESOLVERS_MAX] = 0xdeadbeef;
	n = resolvers_parse(copy, size, out, RESOLVERS_MAX);
	if (n > RESOLVERS_MAX || out[RESOLVERS_MAX] != 0xdeadbeef)
		abort();
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < i; j++)
			if (out[i] == out[j])
				abort();
	free(copy);
	return 0;
}
