/* SPDX-License-Identifier: MIT */
/*
 * Allow-lists of forwarded ports (--from, forward_default_from): any
 * bytes, taken as text, are parsed without crashing, and what is accepted
 * obeys what the agent's rules rely on: at most CIDR_LIST_MAX networks,
 * sorted, none inside another, no host bits, and each one written back by
 * cidr_format() reads back as itself.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"
#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check_list(const struct cidr *list, size_t n)
{
	char text[CIDR_TEXT_MAX], err[256];
	struct cidr back;

	if (n > CIDR_LIST_MAX)
		abort();
	for (size_t i = 0; i < n; i++) {
		cidr_format(&list[i], text);
		if (cidr_parse(text, strlen(text), &back, err, sizeof(err)) != 0 ||
		    cidr_compare(&back, &list[i]) != 0)
			abort();
		if (i && (cidr_compare(&list[i - 1], &list[i]) >= 0 ||
			  cidr_contains(&list[i - 1], &list[i])))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cidr list[CIDR_LIST_MAX], one;
	char *text = malloc(size + 1), err[256];
	size_t n;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (cidr_parse(text, size, &one, err, sizeof(err)) == 0)
		fuzz_check_list(&one, 1);
	if (cidr_parse_list(text, list, &n, err, sizeof(err)) == 0)
		fuzz_check_list(list, n);
	free(text);
	return 0;
}
