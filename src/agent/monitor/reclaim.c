/* SPDX-License-Identifier: MIT */
/*
 * Idle processes ended (idle_reclaim_after): SIGTERM, then SIGKILL to one
 * still running idle_reclaim_grace later.  Nothing here waits: the
 * collector's every tick sends what is due (reclaim_tick()), so a reading
 * is never late for a process that takes its time to end.
 *
 * A process is signalled only through a pidfd opened before it is checked
 * to be the one idle.c chose (its start time and its container), so that
 * a pid reused in between is never signalled.  Every signal and every end
 * is logged.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <unistd.h>

#include "monitor/monitor.h"
#include "monitor/procinfo.h"
#include "array.h"
#include "log.h"
#include "banned.h"

/* After SIGKILL, a process that has still not ended (stuck in the
 * kernel) is left to the log after this long. */
#define RECLAIM_KILL_WAIT_MS 60000LL

struct reclaim_entry {
	int pidfd;
	struct idle_victim victim;
	long long term_ms;         /* when SIGTERM went */
	long long kill_ms;         /* when SIGKILL went; 0: not yet */
};

struct reclaim {
	long long grace_ms;
	struct reclaim_entry *list;
	size_t n, cap;
};

int reclaim_new(uint32_t grace_seconds, struct reclaim **out)
{
	struct reclaim *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	r->grace_ms = (long long)grace_seconds * 1000;
	*out = r;
	return 0;
}

void reclaim_free(struct reclaim *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		close(r->list[i].pidfd);
	free(r->list);
	free(r);
}

/* LXC names a container's cgroup NAME-1 (-2, ...) when a stale one is
 * still there: that is the member's too. */
static bool reclaim_same_member(const char *seen, const char *member)
{
	size_t len = strlen(member);

	if (strncmp(seen, member, len) != 0)
		return false;
	return !seen[len] || (seen[len] == '-' && seen[len + 1] &&
			      strspn(seen + len + 1, "0123456789") == strlen(seen + len + 1));
}

/* A pidfd for v's process, or -ESRCH when it ended or its pid is another's. */
static int reclaim_open(const struct idle_victim *v)
{
	struct procinfo info;
	int fd = pidfd_open(v->pid, 0);

	if (fd < 0)
		return -ESRCH;
	/* Read after the pidfd: what is read is the process the pidfd holds. */
	if (procinfo_read(v->pid, &info) < 0 || info.start_ticks != v->start_ticks ||
	    !info.in_container || !reclaim_same_member(info.member, v->member)) {
		close(fd);
		return -ESRCH;
	}
	return fd;
}

int reclaim_start(struct reclaim *r, const struct idle_victim *v, long long now_ms)
{
	int fd;

	if (ARRAY_RESERVE(r->list, r->cap, r->n) < 0)
		return -ENOMEM;
	fd = reclaim_open(v);
	if (fd < 0) {
		log_info("idle: %s's process %d (host pid %d) ended before it was reclaimed", v->member,
			 (int)v->ns_pid, (int)v->pid);
		return fd;
	}
	if (pidfd_send_signal(fd, SIGTERM, NULL, 0) < 0) {
		close(fd);
		return log_warn_errno(-errno, errno, "idle: cannot send SIGTERM to %s's process %d (host pid %d)",
				      v->member, (int)v->ns_pid, (int)v->pid);
	}
	log_warn("idle: SIGTERM to %s's process %d (host pid %d, %.80s) on GPU %u: idle for %u s, after two notices",
		 v->member, (int)v->ns_pid, (int)v->pid, v->command, v->gpu, v->idle_seconds);
	r->list[r->n++] = (struct reclaim_entry){ .pidfd = fd, .victim = *v, .term_ms = now_ms };
	return 0;
}

static bool reclaim_exited(int pidfd)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };

	return poll(&p, 1, 0) != 0;
}

/* true when e is done with: ended, or past hope. */
static bool reclaim_step(struct reclaim *r, struct reclaim_entry *e, long long now)
{
	const struct idle_victim *v = &e->victim;

	if (reclaim_exited(e->pidfd)) {
		log_warn("idle: %s's process %d (host pid %d) ended after %s", v->member, (int)v->ns_pid,
			 (int)v->pid, e->kill_ms ? "SIGKILL" : "SIGTERM");
		return true;
	}
	if (!e->kill_ms && now - e->term_ms >= r->grace_ms) {
		log_warn("idle: SIGKILL to %s's process %d (host pid %d): still running %lld s after SIGTERM",
			 v->member, (int)v->ns_pid, (int)v->pid, r->grace_ms / 1000);
		if (pidfd_send_signal(e->pidfd, SIGKILL, NULL, 0) < 0 && errno != ESRCH)
			log_warn_errno(0, errno, "idle: cannot send SIGKILL to host pid %d", (int)v->pid);
		e->kill_ms = now;
		return false;
	}
	if (e->kill_ms && now - e->kill_ms >= RECLAIM_KILL_WAIT_MS) {
		log_error("idle: %s's process %d (host pid %d) has not ended %lld s after SIGKILL; left as it is",
			  v->member, (int)v->ns_pid, (int)v->pid, RECLAIM_KILL_WAIT_MS / 1000);
		return true;
	}
	return false;
}

void reclaim_tick(struct reclaim *r, long long now_ms)
{
	for (size_t i = 0; i < r->n;) {
		if (!reclaim_step(r, &r->list[i], now_ms)) {
			i++;
			continue;
		}
		close(r->list[i].pidfd);
		r->list[i] = r->list[--r->n];
	}
}
