/* SPDX-License-Identifier: MIT */
/*
 * The processes of a container that hold one of a GPU's devices, and
 * their end.
 *
 * The device cgroup is asked when a device is opened, and taking a node
 * away removes a name, not an open file: a process that opened a GPU
 * keeps it after a detach.  So a detach looks for every process of the
 * container that still holds the GPU: the processes whose cgroup is the
 * container's (nested namespaces included; never one of the host's pid
 * namespace, such as LXC's monitor), by the device's number (st_rdev),
 * never by a path that the member can rename or bind elsewhere, in
 *  - the descriptors of each of its threads (a thread may have a table of
 *    its own after unshare(CLONE_FILES));
 *  - its mappings (/proc/<pid>/map_files): a mapping keeps the device
 *    open after its descriptor is closed.  A process whose mappings
 *    cannot be read while it runs (its first thread has exited, others
 *    have not) cannot be shown not to hold the GPU, and counts.
 *
 * Reading another process's /proc files may wait on it (its memory map's
 * lock, a FUSE server behind a file it holds): the scan runs in a child,
 * killed at GPU_HOLDERS_SCAN_MS, and stats with AT_STATX_DONT_SYNC.  The
 * child reports each holder's pid and start time; the agent then opens a
 * pidfd for it and checks the start time again, so that a pid reused in
 * between is never signalled, and signals and waits through the pidfd.
 *
 * What no /proc file shows cannot be found: a descriptor in flight in a
 * Unix socket's queue (SCM_RIGHTS), or registered with an io_uring.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/kcmp.h>

#include "gpu/gpu.h"
#include "monitor/procinfo.h"
#include "cleanup.h"
#include "log.h"
#include "strutil.h"
#include "banned.h"

#define GPU_HOLDERS_SCAN_MS 30000
#define GPU_HOLDERS_REAP_MS 5000
#define GPU_HOLDERS_DENTS 32768
#define GPU_HOLDERS_CGROUP_MAX 16384
#define GPU_HOLDERS_STAT_MAX 4096

/* What the scanning child and the agent share: a mapping made before the
 * fork, so that the child needs no pipe and allocates nothing. */
struct gpu_holders_scan {
	int error;                       /* the child's: 0 or a negative errno */
	size_t n;
	bool more;                       /* holders beyond GPU_HOLDERS_MAX */
	struct stat host_pidns;          /* the agent's pid namespace */
	char cgroup[GPU_HOLDERS_CGROUP_MAX];
	/* One per directory depth; aligned for the records getdents64() packs
	 * (each padded to keep the next aligned). */
	_Alignas(struct dirent64) char dents[3][GPU_HOLDERS_DENTS];
	struct gpu_holder list[GPU_HOLDERS_MAX];
};

struct gpu_holders_query {
	const char *member;
	const dev_t *devs;
	size_t ndevs;
};

static long gpu_holders_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

size_t gpu_holders_devices(const struct gpu_host *host, size_t index, dev_t *devs, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < host->nnodes && n < max; i++)
		if (host->nodes[i].gpu == (int)index)
			devs[n++] = makedev(host->nodes[i].major, host->nodes[i].minor);
	return n;
}

/* ---- the child: system calls and the parsers, nothing that locks ------- */

/* Whether the entry name of dirfd (a magic link of fd/ or map_files/) is
 * one of the devices. */
static bool gpu_holders_link_matches(int dirfd, const char *name, const struct gpu_holders_query *q)
{
	struct statx stx;
	dev_t rdev;

	if (statx(dirfd, name, AT_STATX_DONT_SYNC | AT_NO_AUTOMOUNT, STATX_TYPE, &stx) < 0 ||
	    !S_ISCHR(stx.stx_mode))
		return false;
	rdev = makedev(stx.stx_rdev_major, stx.stx_rdev_minor);
	for (size_t i = 0; i < q->ndevs; i++)
		if (q->devs[i] == rdev)
			return true;
	return false;
}

/* Whether a directory of magic links (rel below dirfd) names one of the
 * devices: 1, 0, or a negative errno when it cannot be read. */
static int gpu_holders_scan_links(int dirfd, const char *rel, const struct gpu_holders_query *q,
				  char *buf)
{
	__do_close int fd = openat(dirfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ssize_t len;

	if (fd < 0)
		return -errno;
	while ((len = getdents64(fd, buf, GPU_HOLDERS_DENTS)) > 0) {
		for (ssize_t off = 0; off < len;) {
			const struct dirent64 *d = (const void *)(buf + off);

			off += d->d_reclen;
			if (d->d_name[0] != '.' && gpu_holders_link_matches(fd, d->d_name, q))
				return 1;
		}
	}
	return len < 0 ? -errno : 0;
}

/* Whether some thread of the process at piddir has one of the devices in
 * its descriptor table; threads sharing the first one's table are read
 * once. */
static int gpu_holders_scan_threads(int piddir, pid_t pid, const struct gpu_holders_query *q,
				    struct gpu_holders_scan *s)
{
	__do_close int taskfd = openat(piddir, "task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ssize_t len;

	if (taskfd < 0)
		return -errno;
	while ((len = getdents64(taskfd, s->dents[1], GPU_HOLDERS_DENTS)) > 0) {
		for (ssize_t off = 0; off < len;) {
			const struct dirent64 *d = (const void *)(s->dents[1] + off);
			char rel[64];
			uint32_t tid;

			off += d->d_reclen;
			if (parse_uint32(d->d_name, &tid) < 0)
				continue;
			if ((pid_t)tid != pid && syscall(SYS_kcmp, pid, (pid_t)tid, KCMP_FILES, 0, 0) == 0)
				continue;
			snprintf(rel, sizeof(rel), "%u/fd", tid);
			/* A thread that exits meanwhile holds nothing. */
			if (gpu_holders_scan_links(taskfd, rel, q, s->dents[2]) == 1)
				return 1;
		}
	}
	return len < 0 ? -errno : 0;
}

/* Whether the thread group of pidfd has ended (a zombie, or reaped). */
static bool gpu_holders_pidfd_exited(int pidfd)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };

	return poll(&p, 1, 0) != 0;
}

static bool gpu_holders_exited(pid_t pid)
{
	__do_close int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);

	return pidfd < 0 || gpu_holders_pidfd_exited(pidfd);
}

/* Whether the process at piddir runs in the container of q->member and
 * not in the host's pid namespace. */
static bool gpu_holders_in_container(int piddir, const struct gpu_holders_query *q,
				     struct gpu_holders_scan *s)
{
	__do_close int fd = openat(piddir, "cgroup", O_RDONLY | O_CLOEXEC);
	char member[MEMBER_NAME_SIZE];
	struct stat st;
	size_t used = 0;
	ssize_t n;

	if (fd < 0)
		return false;
	while (used < sizeof(s->cgroup) && (n = read(fd, s->cgroup + used, sizeof(s->cgroup) - used)) > 0)
		used += (size_t)n;
	if (procinfo_parse_cgroup(s->cgroup, used, member, sizeof(member)) != 1 ||
	    strcmp(member, q->member) != 0)
		return false;
	if (fstatat(piddir, "ns/pid", &st, 0) < 0)
		return false;
	return st.st_ino != s->host_pidns.st_ino || st.st_dev != s->host_pidns.st_dev;
}

/* 1 when the process pid (its /proc directory open at piddir) holds one
 * of the devices, 0 when not. */
static int gpu_holders_process(int piddir, pid_t pid, const struct gpu_holders_query *q,
			       struct gpu_holders_scan *s)
{
	int ret = gpu_holders_scan_threads(piddir, pid, q, s);

	if (ret == 1)
		return 1;
	ret = gpu_holders_scan_links(piddir, "map_files", q, s->dents[1]);
	if (ret >= 0)
		return ret;
	return gpu_holders_exited(pid) ? 0 : 1;
}

static void gpu_holders_add(pid_t pid, struct gpu_holders_scan *s)
{
	struct procinfo info;

	if (s->n == GPU_HOLDERS_MAX) {
		s->more = true;
		return;
	}
	if (procinfo_read(pid, &info) < 0)
		return;
	s->list[s->n] = (struct gpu_holder){ .pid = pid, .ns_pid = info.ns_pid,
					     .start_ticks = info.start_ticks, .pidfd = -EBADF };
	snprintf(s->list[s->n].command, sizeof(s->list[s->n].command), "%s", info.command);
	s->n++;
}

static int gpu_holders_scan_proc(const struct gpu_holders_query *q, struct gpu_holders_scan *s)
{
	__do_close int procfd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ssize_t len;

	if (procfd < 0 || fstatat(procfd, "self/ns/pid", &s->host_pidns, 0) < 0)
		return -errno;
	while ((len = getdents64(procfd, s->dents[0], GPU_HOLDERS_DENTS)) > 0) {
		for (ssize_t off = 0; off < len;) {
			const struct dirent64 *d = (const void *)(s->dents[0] + off);
			__do_close int piddir = -EBADF;
			uint32_t pid;

			off += d->d_reclen;
			if (parse_uint32(d->d_name, &pid) < 0 || pid == 0)
				continue;
			piddir = openat(procfd, d->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (piddir < 0 || !gpu_holders_in_container(piddir, q, s))
				continue;
			if (gpu_holders_process(piddir, (pid_t)pid, q, s) == 1)
				gpu_holders_add((pid_t)pid, s);
		}
	}
	return len < 0 ? -errno : 0;
}

/* ---- the agent's side ------------------------------------------------------ */

/* The start time of pid now, from its stat file; -ESRCH when gone. */
static int gpu_holders_start_ticks(pid_t pid, unsigned long long *ticks)
{
	__do_close int fd = -EBADF;
	char path[64], text[GPU_HOLDERS_STAT_MAX];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -ESRCH;
	n = read(fd, text, sizeof(text));
	if (n <= 0)
		return -ESRCH;
	return procinfo_parse_stat(text, (size_t)n, ticks, NULL, 0);
}

/* Hold each process the child found by a pidfd, if it is still the one
 * found (same pid, same start time); drop the others. */
static int gpu_holders_pin(const struct gpu_holders_scan *s, struct gpu_holders *out)
{
	out->list = calloc(s->n ? s->n : 1, sizeof(*out->list));
	if (!out->list)
		return -ENOMEM;
	out->more = s->more;
	for (size_t i = 0; i < s->n; i++) {
		struct gpu_holder h = s->list[i];
		unsigned long long ticks = 0;

		h.pidfd = (int)syscall(SYS_pidfd_open, h.pid, 0);
		if (h.pidfd < 0)
			continue;
		if (gpu_holders_start_ticks(h.pid, &ticks) < 0 || ticks != h.start_ticks ||
		    gpu_holders_pidfd_exited(h.pidfd)) {
			close(h.pidfd);
			continue;
		}
		out->list[out->n++] = h;
	}
	return 0;
}

/* Wait for the scanning child until the deadline, then kill it. */
static int gpu_holders_wait_child(pid_t child)
{
	long deadline = gpu_holders_now_ms() + GPU_HOLDERS_SCAN_MS;
	__do_close int pidfd = (int)syscall(SYS_pidfd_open, child, 0);
	int status = 0;

	if (pidfd >= 0) {
		struct pollfd p = { .fd = pidfd, .events = POLLIN };
		long left;

		while ((left = deadline - gpu_holders_now_ms()) > 0 && poll(&p, 1, (int)left) == 0)
			;
		if (poll(&p, 1, 0) != 1) {
			syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
			p.revents = 0;
			if (poll(&p, 1, GPU_HOLDERS_REAP_MS) != 1)
				return log_error_errno(-ETIMEDOUT, 0,
						       "the search for a GPU's holders did not end; its process %d is left",
						       (int)child);
			waitpid(child, &status, 0);
			return log_error_errno(-ETIMEDOUT, 0, "the search for a GPU's holders took more than %d s",
					       GPU_HOLDERS_SCAN_MS / 1000);
		}
	}
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return log_error_errno(-EIO, 0, "the search for a GPU's holders failed (status %d)",
				       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return 0;
}

int gpu_holders_find(const char *member, const dev_t *devs, size_t ndevs, struct gpu_holders *out)
{
	struct gpu_holders_query q = { .member = member, .devs = devs, .ndevs = ndevs };
	struct gpu_holders_scan *s;
	pid_t child;
	int ret;

	memset(out, 0, sizeof(*out));
	if (!member || !member[0] || ndevs == 0)
		return -EINVAL;
	s = mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (s == MAP_FAILED)
		return log_error_errno(-errno, errno, "cannot map the search for a GPU's holders");
	child = fork();
	if (child < 0) {
		ret = log_error_errno(-errno, errno, "cannot fork to look for a GPU's holders");
	} else if (child == 0) {
		s->error = gpu_holders_scan_proc(&q, s);
		_exit(s->error < 0 ? 1 : 0);
	} else {
		ret = gpu_holders_wait_child(child);
		if (ret == 0)
			ret = gpu_holders_pin(s, out);
	}
	munmap(s, sizeof(*s));
	return ret;
}

void gpu_holders_clear(struct gpu_holders *h)
{
	for (size_t i = 0; h->list && i < h->n; i++)
		if (h->list[i].pidfd >= 0)
			close(h->list[i].pidfd);
	free(h->list);
	memset(h, 0, sizeof(*h));
}

void gpu_holders_signal(struct gpu_holders *h, int sig)
{
	for (size_t i = 0; i < h->n; i++)
		if (!h->list[i].ended &&
		    syscall(SYS_pidfd_send_signal, h->list[i].pidfd, sig, NULL, 0) < 0 && errno == ESRCH)
			h->list[i].ended = true;
}

size_t gpu_holders_wait(struct gpu_holders *h, unsigned timeout_ms)
{
	long deadline = gpu_holders_now_ms() + timeout_ms;
	__do_free struct pollfd *fds = calloc(h->n ? h->n : 1, sizeof(*fds));
	__do_free size_t *which = calloc(h->n ? h->n : 1, sizeof(*which));
	size_t left = 0;

	if (!fds || !which)
		return h->n;
	for (;;) {
		long ms = deadline - gpu_holders_now_ms();
		nfds_t n = 0;

		for (size_t i = 0; i < h->n; i++) {
			if (h->list[i].ended)
				continue;
			fds[n] = (struct pollfd){ .fd = h->list[i].pidfd, .events = POLLIN };
			which[n++] = i;
		}
		left = n;
		if (n == 0 || ms <= 0 || poll(fds, n, (int)ms) < 0)
			break;
		for (nfds_t i = 0; i < n; i++)
			if (fds[i].revents)
				h->list[which[i]].ended = true;
	}
	return left;
}

void gpu_holders_describe(const struct gpu_holders *h, bool running_only, char *buf, size_t len)
{
	size_t used = 0, shown = 0, skipped = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < h->n; i++) {
		const struct gpu_holder *p = &h->list[i];
		int n;

		if (running_only && p->ended)
			continue;
		if (shown == GPU_HOLDERS_SHOWN || used >= len) {
			skipped++;
			continue;
		}
		n = snprintf(buf + used, len - used, "%spid %d (%.60s)", shown ? ", " : "",
			     (int)p->ns_pid, p->command);
		used += n > 0 ? (size_t)n : 0;
		shown++;
	}
	if (used < len && h->more)
		snprintf(buf + used, len - used, " and more");
	else if (used < len && skipped)
		snprintf(buf + used, len - used, " and %zu more", skipped);
}
