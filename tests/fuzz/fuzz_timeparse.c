/* SPDX-License-Identifier: MIT */
/*
 * Times and durations as typed on the command line: any bytes, taken as
 * text, are parsed without crashing, and what is accepted obeys the rules
 * the callers rely on: a duration is positive, an end is after now, and a
 * time written back by format_time() reads back as the same second.  The
 * zone is UTC so that a run does not depend on the machine.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "timeparse.h"
#include "banned.h"

/* 2025-11-23 14:00:00 UTC. */
#define FUZZ_NOW 1763906400LL
/* The last second of a four-digit year. */
#define FUZZ_YEAR_9999 253402300799LL

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	setenv("TZ", "UTC", 1);
	tzset();
	return 0;
}

static void fuzz_check_time(long long t)
{
	char buf[64];
	long long back;

	if (t < 0 || t > FUZZ_YEAR_9999)
		return;
	format_time(t, buf, sizeof(buf));
	if (parse_time(buf, FUZZ_NOW, &back) != 0 || back != t)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	long long seconds, t;
	char buf[64];

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (parse_duration(text, &seconds) == 0) {
		if (seconds <= 0)
			abort();
		format_duration(seconds, buf, sizeof(buf));
	}
	if (parse_time(text, FUZZ_NOW, &t) == 0)
		fuzz_check_time(t);
	if (parse_until(text, FUZZ_NOW, &t) == 0) {
		if (t <= FUZZ_NOW)
			abort();
		fuzz_check_time(t);
	}
	free(text);
	return 0;
}
