/* SPDX-License-Identifier: MIT */
/*
 * Which process the kernel killed for a member's memory limit, and when.
 * The cgroup only counts the kills (memory.events, memory.oom_control);
 * the kernel's log names each one, in a line of its own:
 *
 *   oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=...,
 *     mems_allowed=0,oom_memcg=/lxc.payload.ann,task_memcg=/lxc.payload.ann/
 *     system.slice/job.service,task=python3,pid=41122,uid=2000001000
 *
 * A thread reads /dev/kmsg from its end at the agent's start (what came
 * before is history the log keeps) and remembers the last kill per member.
 * The line's fields come from the member's own processes (the task's name
 * is theirs to choose): each is held to a strict form before it is kept.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "monitor/monitor.h"
#include "cleanup.h"
#include "log.h"
#include "strutil.h"
#include "validate.h"
#include "banned.h"

#define OOMWATCH_MEMBERS 256
#define OOMWATCH_RECORD_MAX 8192   /* /dev/kmsg hands out one record a read, at most this */

struct oomwatch {
	pthread_t thread;
	int fd;
	int stop_pipe[2];
	pthread_mutex_t lock;
	struct oom_event last[OOMWATCH_MEMBERS];
	size_t n;
};

/* The value of "key=" in a comma-separated list, up to the next comma. */
static const char *oomwatch_field(const char *text, size_t len, const char *key, size_t *vlen)
{
	size_t klen = strlen(key);

	for (size_t i = 0; i + klen <= len; i++) {
		if ((i == 0 || text[i - 1] == ',' || text[i - 1] == ':') &&
		    memcmp(text + i, key, klen) == 0) {
			const char *v = text + i + klen;
			const char *end = memchr(v, ',', len - i - klen);

			*vlen = end ? (size_t)(end - v) : len - i - klen;
			return v;
		}
	}
	return NULL;
}

static int oomwatch_number(const char *v, size_t vlen, uint64_t max, uint64_t *out)
{
	char digits[24];

	if (!v || vlen == 0 || vlen >= sizeof(digits))
		return -EINVAL;
	memcpy(digits, v, vlen);
	digits[vlen] = '\0';
	return parse_uint_max(digits, max, out);
}

/* The member of "/lxc.payload.NAME[/...]": the container's own cgroup. */
static int oomwatch_member(const char *v, size_t vlen, char *member, size_t len)
{
	static const char prefix[] = "/lxc.payload.";
	size_t plen = sizeof(prefix) - 1, n;
	char err[128];

	if (!v || vlen <= plen || memcmp(v, prefix, plen) != 0)
		return -ENOENT;
	for (n = 0; plen + n < vlen && v[plen + n] != '/'; n++)
		;
	if (n == 0 || n >= len)
		return -EINVAL;
	memcpy(member, v + plen, n);
	member[n] = '\0';
	return validate_member_name(member, err, sizeof(err)) < 0 ? -EINVAL : 0;
}

int oomwatch_parse(const char *record, size_t len, struct oom_event *out)
{
	const char *msg = memchr(record, ';', len), *v, *nl;
	uint64_t usec, pid, uid;
	size_t vlen, mlen;

	*out = (struct oom_event){ 0 };
	if (!msg)
		return -EINVAL;
	/* "PRIORITY,SEQUENCE,MICROSECONDS,FLAGS;MESSAGE\n" and continuation lines. */
	v = memchr(record, ',', (size_t)(msg - record));
	v = v ? memchr(v + 1, ',', (size_t)(msg - v - 1)) : NULL;
	if (!v)
		return -EINVAL;
	/* Facility 0, the kernel's: what a program writes to the log (as
	 * /dev/kmsg or syslog) has another, and cannot pose as a kill. */
	if (oomwatch_number(record, (size_t)((const char *)memchr(record, ',', len) - record), 7,
			    &usec) < 0)
		return -EPERM;
	{
		const char *end = memchr(v + 1, ',', (size_t)(msg - v - 1));

		if (oomwatch_number(v + 1, end ? (size_t)(end - v - 1) : (size_t)(msg - v - 1), UINT64_MAX,
				    &usec) < 0)
			return -EINVAL;
	}
	msg++;
	nl = memchr(msg, '\n', len - (size_t)(msg - record));
	mlen = nl ? (size_t)(nl - msg) : len - (size_t)(msg - record);
	if (mlen < 9 || memcmp(msg, "oom-kill:", 9) != 0)
		return -ENOENT;
	v = oomwatch_field(msg, mlen, "oom_memcg=", &vlen);
	if (oomwatch_member(v, vlen, out->member, sizeof(out->member)) < 0)
		return -ENOENT;
	v = oomwatch_field(msg, mlen, "task=", &vlen);
	if (!v || vlen == 0 || vlen >= sizeof(out->command))
		return -EINVAL;
	for (size_t i = 0; i < vlen; i++)
		out->command[i] = (v[i] >= 0x20 && v[i] < 0x7f) ? v[i] : '?';
	out->command[vlen] = '\0';
	v = oomwatch_field(msg, mlen, "pid=", &vlen);
	if (oomwatch_number(v, vlen, INT32_MAX, &pid) < 0)
		return -EINVAL;
	/* The kernel prints the uid with %d: a host id past 2^31 is negative. */
	v = oomwatch_field(msg, mlen, "uid=", &vlen);
	if (v && vlen > 1 && v[0] == '-') {
		if (oomwatch_number(v + 1, vlen - 1, (uint64_t)INT32_MAX + 1, &uid) < 0)
			return -EINVAL;
		uid = (uint64_t)(uint32_t)-(int64_t)uid;
	} else if (oomwatch_number(v, vlen, UINT32_MAX, &uid) < 0) {
		return -EINVAL;
	}
	out->boot_usec = usec;
	out->host_pid = (pid_t)pid;
	out->host_uid = (uint32_t)uid;
	return 0;
}

/* A time since boot (the log's clock) as the wall clock's. */
static long long oomwatch_wall(uint64_t boot_usec)
{
	struct timespec mono, wall;
	long long ago_usec;

	clock_gettime(CLOCK_MONOTONIC, &mono);
	clock_gettime(CLOCK_REALTIME, &wall);
	ago_usec = (long long)mono.tv_sec * 1000000 + mono.tv_nsec / 1000 - (long long)boot_usec;
	return wall.tv_sec - (ago_usec > 0 ? ago_usec / 1000000 : 0);
}

static void oomwatch_keep(struct oomwatch *w, struct oom_event *e)
{
	size_t i;

	e->time = oomwatch_wall(e->boot_usec);
	log_info("%s: the kernel killed %s (pid %d) for the container's memory limit", e->member,
		 e->command, (int)e->host_pid);
	pthread_mutex_lock(&w->lock);
	for (i = 0; i < w->n && strcmp(w->last[i].member, e->member) != 0; i++)
		;
	if (i == w->n && w->n < OOMWATCH_MEMBERS)
		w->n++;
	if (i < w->n)
		w->last[i] = *e;
	pthread_mutex_unlock(&w->lock);
}

static void *oomwatch_run(void *arg)
{
	struct oomwatch *w = arg;
	char record[OOMWATCH_RECORD_MAX];

	for (;;) {
		struct pollfd fds[2] = { { .fd = w->fd, .events = POLLIN },
					 { .fd = w->stop_pipe[0], .events = POLLIN } };
		struct oom_event e;
		ssize_t n;

		if (poll(fds, 2, -1) < 0 && errno != EINTR)
			break;
		if (fds[1].revents)
			break;
		/* EPIPE: records were overwritten before we read them; go on. */
		while ((n = read(w->fd, record, sizeof(record))) > 0 || (n < 0 && errno == EPIPE))
			if (n > 0 && oomwatch_parse(record, (size_t)n, &e) == 0)
				oomwatch_keep(w, &e);
	}
	return NULL;
}

int oomwatch_start(struct oomwatch **out)
{
	__do_free struct oomwatch *w = calloc(1, sizeof(*w));

	*out = NULL;
	if (!w)
		return -ENOMEM;
	w->fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (w->fd < 0)
		return log_warn_errno(-errno, errno, "cannot read the kernel's log (/dev/kmsg): gpubox status will count memory kills without naming them");
	if (lseek(w->fd, 0, SEEK_END) < 0 || pipe2(w->stop_pipe, O_CLOEXEC) < 0) {
		close(w->fd);
		return -errno;
	}
	pthread_mutex_init(&w->lock, NULL);
	if (pthread_create(&w->thread, NULL, oomwatch_run, w) != 0) {
		close(w->fd);
		close(w->stop_pipe[0]);
		close(w->stop_pipe[1]);
		return -EAGAIN;
	}
	*out = move_ptr(w);
	return 0;
}

void oomwatch_stop(struct oomwatch *w)
{
	if (!w)
		return;
	if (write(w->stop_pipe[1], "x", 1) < 0)
		log_warn("cannot stop the OOM watch: %s", strerror(errno));
	pthread_join(w->thread, NULL);
	close(w->fd);
	close(w->stop_pipe[0]);
	close(w->stop_pipe[1]);
	/* The last kills stay readable: requests still served at the agent's
	 * exit may ask; the process's end frees them. */
}

int oomwatch_last(struct oomwatch *w, const char *member, struct oom_event *out)
{
	int ret = -ENOENT;

	if (!w)
		return -ENOENT;
	pthread_mutex_lock(&w->lock);
	for (size_t i = 0; i < w->n; i++) {
		if (strcmp(w->last[i].member, member) == 0) {
			*out = w->last[i];
			ret = 0;
			break;
		}
	}
	pthread_mutex_unlock(&w->lock);
	return ret;
}

void oomwatch_forget(struct oomwatch *w, const char *member)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	for (size_t i = 0; i < w->n; i++) {
		if (strcmp(w->last[i].member, member) == 0) {
			w->last[i] = w->last[--w->n];
			break;
		}
	}
	pthread_mutex_unlock(&w->lock);
}
