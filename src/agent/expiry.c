/* SPDX-License-Identifier: MIT */
/*
 * The end of temporary exceptions (limits set ... --until TIME): one
 * thread that sleeps until the next end recorded in the database, or at
 * most EXPIRY_RECHECK_S, and has ops_limits_expire() give way to every
 * value whose end has come and ops_limits_warn() tell the members whose
 * end is within the hour (at most EXPIRY_RECHECK_S late).  A new end
 * wakes it (expiry_wake()), so an end a few seconds ahead is kept to the
 * second, and told at once.
 *
 * The ends are in the database, not here: an agent killed and started
 * again finds them there, and expiry_start() applies the ones that passed
 * while it was down before the agent serves its first request.  The
 * clock is the wall clock (ends are dates); the recheck bounds how late
 * an end can be when the clock is stepped.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "agent.h"
#include "ops.h"
#include "log.h"
#include "banned.h"

#define EXPIRY_RECHECK_S 60

struct expiry {
	struct agent *agent;
	pthread_t thread;
	pthread_mutex_t lock;      /* stop, woken */
	pthread_cond_t wake;
	bool stop, woken, running;
};

/* One pass: what has ended gives way, what ends within the hour is told
 * (again: the notices the agent forgot when it stopped); the time to look
 * again. */
static long long expiry_pass(struct expiry *e, bool again)
{
	long long now = time(NULL), next = 0;

	if (ops_limits_expire(e->agent, now, &next) < 0)
		log_warn("the ends of temporary limits could not be read; the agent tries again in %d s",
			 EXPIRY_RECHECK_S);
	ops_limits_warn(e->agent, now, again);
	if (next <= 0 || next > now + EXPIRY_RECHECK_S)
		next = now + EXPIRY_RECHECK_S;
	return next;
}

static void *expiry_thread(void *arg)
{
	struct expiry *e = arg;

	pthread_mutex_lock(&e->lock);
	while (!e->stop) {
		struct timespec until = { 0 };

		e->woken = false;
		pthread_mutex_unlock(&e->lock);
		until.tv_sec = (time_t)expiry_pass(e, false);
		pthread_mutex_lock(&e->lock);
		while (!e->stop && !e->woken &&
		       pthread_cond_timedwait(&e->wake, &e->lock, &until) == 0)
			;
	}
	pthread_mutex_unlock(&e->lock);
	return NULL;
}

int expiry_start(struct agent *a, struct expiry **out)
{
	struct expiry *e = calloc(1, sizeof(*e));
	int ret;

	if (!e)
		return -ENOMEM;
	e->agent = a;
	pthread_mutex_init(&e->lock, NULL);
	pthread_cond_init(&e->wake, NULL);
	/* What ended while the agent was down, before the first request. */
	expiry_pass(e, true);
	ret = pthread_create(&e->thread, NULL, expiry_thread, e);
	if (ret != 0) {
		expiry_stop(e);
		return log_error_errno(-ret, ret, "cannot start the thread that ends temporary limits");
	}
	e->running = true;
	*out = e;
	return 0;
}

void expiry_wake(struct expiry *e)
{
	if (!e)
		return;
	pthread_mutex_lock(&e->lock);
	e->woken = true;
	pthread_cond_signal(&e->wake);
	pthread_mutex_unlock(&e->lock);
}

void expiry_stop(struct expiry *e)
{
	if (!e)
		return;
	if (e->running) {
		pthread_mutex_lock(&e->lock);
		e->stop = true;
		pthread_cond_signal(&e->wake);
		pthread_mutex_unlock(&e->lock);
		pthread_join(e->thread, NULL);
	}
	pthread_cond_destroy(&e->wake);
	pthread_mutex_destroy(&e->lock);
	free(e);
}
