/* SPDX-License-Identifier: MIT */
/*
 * reserve_idle_release: a reservation whose GPUs all stay idle that long
 * is released.  This is the clock alone, on masks and a monotonic time
 * that the caller passes (the collector's readings and which GPUs they
 * show idle: monitor/idle.c); no system call, so that it is tested on its
 * own.
 *
 * A reservation's clock starts at the first reading where every one of
 * its GPUs is idle and is dropped at the first where one is not: it
 * counts only idle time without a break.  A clock that reaches the
 * release time is handed out once (due); it goes when its reservation
 * leaves the list.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gpu/gpu.h"
#include "array.h"
#include "banned.h"

void reserve_idle_free(struct reserve_idle_clocks *c)
{
	free(c->list);
	memset(c, 0, sizeof(*c));
}

static struct reserve_idle_clock *reserve_idle_find(struct reserve_idle_clocks *c, long long id)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->list[i].id == id)
			return &c->list[i];
	return NULL;
}

/* Whether entries has an active reservation id whose GPUs are all idle. */
static bool reserve_idle_still(const struct reserve_entry *entries, size_t n, long long id,
			       uint64_t idle)
{
	for (size_t i = 0; i < n; i++)
		if (entries[i].id == id)
			return entries[i].active && entries[i].mask && !(entries[i].mask & ~idle);
	return false;
}

/* Clocks of reservations gone or no longer idle dropped. */
static void reserve_idle_drop(struct reserve_idle_clocks *c, const struct reserve_entry *entries,
			      size_t n, uint64_t idle)
{
	for (size_t i = 0; i < c->n;) {
		if (reserve_idle_still(entries, n, c->list[i].id, idle))
			i++;
		else
			c->list[i] = c->list[--c->n];
	}
}

int reserve_idle_update(struct reserve_idle_clocks *c, const struct reserve_entry *entries,
			size_t n, uint64_t idle, long long now_ms, long long release_ms,
			struct reserve_idle_due *due, size_t *ndue)
{
	int ret = 0;

	*ndue = 0;
	reserve_idle_drop(c, entries, n, idle);
	for (size_t i = 0; i < n; i++) {
		const struct reserve_entry *e = &entries[i];
		struct reserve_idle_clock *k;

		if (!reserve_idle_still(entries, n, e->id, idle))
			continue;
		k = reserve_idle_find(c, e->id);
		if (!k) {
			/* Started at a later reading, then. */
			if (ARRAY_RESERVE(c->list, c->cap, c->n) < 0) {
				ret = -ENOMEM;
				continue;
			}
			k = &c->list[c->n++];
			*k = (struct reserve_idle_clock){ .id = e->id, .since_ms = now_ms };
		}
		if (k->due || now_ms - k->since_ms < release_ms)
			continue;
		k->due = true;
		due[*ndue] = (struct reserve_idle_due){ .id = e->id, .mask = e->mask,
							.idle_seconds = (now_ms - k->since_ms) / 1000 };
		memcpy(due[(*ndue)++].member, e->member, sizeof(e->member));
	}
	return ret;
}
