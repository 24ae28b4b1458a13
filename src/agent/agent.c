/* SPDX-License-Identifier: MIT */
/*
 * What belongs to the agent as a whole rather than to one subsystem: the
 * per-member lock, which makes operations on one member's container (a
 * start, a restore, a key change from the hub) run one at a time.
 *
 * Here rather than in main.c: every user of the lock (ops*.c, hubsync.c)
 * is in the agent's library, and so are the tests that link them.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "cleanup.h"
#include "banned.h"

struct member_lock agent_lock_member(struct agent *a, const char *name)
{
	struct member_lock lock = { .a = a };

	snprintf(lock.name, sizeof(lock.name), "%s", name);
	pthread_mutex_lock(&a->busy_lock);
	for (;;) {
		bool busy = false;
		size_t slot = ARRAY_SIZE(a->busy);

		for (size_t i = 0; i < ARRAY_SIZE(a->busy); i++) {
			if (strcmp(a->busy[i], lock.name) == 0)
				busy = true;
			else if (!a->busy[i][0] && slot == ARRAY_SIZE(a->busy))
				slot = i;
		}
		if (!busy && slot < ARRAY_SIZE(a->busy)) {
			snprintf(a->busy[slot], sizeof(a->busy[slot]), "%s", lock.name);
			break;
		}
		pthread_cond_wait(&a->busy_changed, &a->busy_lock);
	}
	pthread_mutex_unlock(&a->busy_lock);
	return lock;
}

/* Also the cleanup of __do_unlock_member: a lock let go already is left alone. */
void agent_unlock_member(struct member_lock *lock)
{
	struct agent *a = lock->a;

	if (!a)
		return;
	lock->a = NULL;
	pthread_mutex_lock(&a->busy_lock);
	for (size_t i = 0; i < ARRAY_SIZE(a->busy); i++)
		if (strcmp(a->busy[i], lock->name) == 0)
			a->busy[i][0] = '\0';
	pthread_cond_broadcast(&a->busy_changed);
	pthread_mutex_unlock(&a->busy_lock);
}
