/* SPDX-License-Identifier: MIT */
/*
 * Allocation of uids, ports and subordinate id blocks: pure functions over
 * what is already taken, so the caller decides where "taken" comes from
 * (the database, /etc/subuid, the ports in use).
 */
#include <errno.h>
#include <stdint.h>

#include "state/state.h"

#include "banned.h"

static bool ids_is_used(uint32_t value, const uint32_t *used, size_t nused)
{
	for (size_t i = 0; i < nused; i++)
		if (used[i] == value)
			return true;
	return false;
}

int ids_lowest_free(const struct config_range *range, const uint32_t *used, size_t nused,
		      uint32_t *out)
{
	if (!range || !out || (nused && !used) || range->first > range->last)
		return -EINVAL;

	/* At most nused values can be taken, so this ends after nused + 1 tries. */
	for (uint64_t v = range->first; v <= range->last; v++) {
		if (!ids_is_used((uint32_t)v, used, nused)) {
			*out = (uint32_t)v;
			return 0;
		}
	}
	return -ENOSPC;
}

static uint64_t ids_align_up(uint64_t value)
{
	return (value + SUBID_COUNT - 1) / SUBID_COUNT * SUBID_COUNT;
}

int ids_subid_block(const struct config_range *range, const struct id_range *taken,
		      size_t ntaken, uint32_t *out)
{
	uint64_t start;
	bool moved;

	if (!range || !out || (ntaken && !taken) || range->first > range->last)
		return -EINVAL;

	/* Aligned, so a block starting at 0 is the only one holding id 0. */
	start = ids_align_up(range->first);
	if (start == 0)
		start = SUBID_COUNT;

	do {
		moved = false;
		if (start + SUBID_COUNT - 1 > range->last)
			return -ENOSPC;
		for (size_t i = 0; i < ntaken; i++) {
			uint64_t first = taken[i].first;
			uint64_t end = first + taken[i].count; /* exclusive */

			if (taken[i].count == 0)
				continue;
			if (first < start + SUBID_COUNT && start < end) {
				start = ids_align_up(end);
				moved = true;
				break;
			}
		}
	} while (moved);

	*out = (uint32_t)start;
	return 0;
}
