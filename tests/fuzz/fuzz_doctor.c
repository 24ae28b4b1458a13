/* SPDX-License-Identifier: MIT */
/*
 * What gpubox admin doctor reads from other programs (ops_doctor.c): "sshd
 * -T" output, a hub's Date header, a kernel or LXC release.  Any bytes,
 * taken as text, are read without crashing, and what is accepted obeys
 * what the checks rely on: a value found fits its buffer and holds no
 * line end, a date read is one a hub can send (after 1970, before 10000).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "doctor.h"
#include "banned.h"

#define FUZZ_YEAR_10000 253402300800LL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_sshd_option(const char *text, const char *key)
{
	char value[32];

	if (doctor_sshd_option(text, key, value, sizeof(value)) == 0 &&
	    (strlen(value) >= sizeof(value) || strchr(value, '\n')))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	time_t t;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	fuzz_sshd_option(text, "forcecommand");
	fuzz_sshd_option(text, "authorizedkeysfile");
	if (doctor_http_date(text, &t) == 0 && ((long long)t < 0 || (long long)t >= FUZZ_YEAR_10000))
		abort();
	if (doctor_kernel_at_least(text, 5, 15) && !doctor_kernel_at_least(text, 0, 0))
		abort();
	free(text);
	return 0;
}
