/* SPDX-License-Identifier: MIT */
/*
 * What the hub reads from agents for its monitor: a reading (the
 * overview's form of it, with and without names, and a member's part),
 * and a usage answer summed into the report.  An agent is trusted with
 * nothing but being an HTTP server: any bytes must be refused or shown
 * safely.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "hub.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;
	json_t *by_member = json_object(), *list, *mine = json_object();
	json_t *sample;
	char err[192];

	sample = monitor_parse_reading(body, size, err, sizeof(err));
	if (sample) {
		json_decref(monitor_reading_view(sample, true));
		json_decref(monitor_reading_view(sample, false));
		monitor_reading_member(sample, "alice", mine);
		json_decref(sample);
	}
	monitor_usage_add(by_member, "gpu1", body, size);
	monitor_usage_add(by_member, "gpu2", body, size);
	list = monitor_usage_list(by_member);
	json_decref(list);
	json_decref(by_member);
	json_decref(mine);
	return 0;
}
