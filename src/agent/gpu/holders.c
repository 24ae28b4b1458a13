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
 *
 * The mappings cost most: a statx per mapping, and a process maps hundreds
 * of libraries.  A quick search (gpu_holders_usage() without mappings)
 * reads the descriptors only, for a first decision that a whole search
 * then confirms.
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

/* What to look for: devs[i] is a node of GPU gpu_of[i] (by index); member
 * NULL: in every member's container.  The search of a process stops once
 * it holds every GPU of want. */
struct gpu_holders_query {
	const char *member;
	const dev_t *devs;
	const unsigned *gpu_of;
	size_t ndevs;
	uint64_t want;
	bool descriptors_only;     /* mappings are not looked at */
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

/* The GPUs (bits by index) whose device the entry name of dirfd (a magic
 * link of fd/ or map_files/) is; 0 when none. */
static uint64_t gpu_holders_link_matches(int dirfd, const char *name, const struct gpu_holders_query *q)
{
	struct statx stx;
	dev_t rdev;

	if (statx(dirfd, name, AT_STATX_DONT_SYNC | AT_NO_AUTOMOUNT, STATX_TYPE, &stx) < 0 ||
	    !S_ISCHR(stx.stx_mode))
		return 0;
	rdev = makedev(stx.stx_rdev_major, stx.stx_rdev_minor);
	for (size_t i = 0; i < q->ndevs; i++)
		if (q->devs[i] == rdev)
			return (uint64_t)1 << q->gpu_of[i];
	return 0;
}

/* Add to *held the GPUs a directory of magic links (rel below dirfd)
 * names; 0, or a negative errno when it cannot be read. */
static int gpu_holders_scan_links(int dirfd, const char *rel, const struct gpu_holders_query *q,
				  char *buf, uint64_t *held)
{
	__do_close int fd = openat(dirfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ssize_t len;

	if (fd < 0)
		return -errno;
	while ((len = getdents64(fd, buf, GPU_HOLDERS_DENTS)) > 0) {
		for (ssize_t off = 0; off < len;) {
			const struct dirent64 *d = (const void *)(buf + off);

			off += d->d_reclen;
			if (d->d_name[0] != '.')
				*held |= gpu_holders_link_matches(fd, d->d_name, q);
			if ((*held & q->want) == q->want)
				return 0;
		}
	}
	return len < 0 ? -errno : 0;
}

/* Add to *held the GPUs in the descriptor tables of the threads of the
 * process at piddir; threads sharing the first one's table are read once. */
static int gpu_holders_scan_threads(int piddir, pid_t pid, const struct gpu_holders_query *q,
				    struct gpu_holders_scan *s, uint64_t *held)
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
			gpu_holders_scan_links(taskfd, rel, q, s->dents[2], held);
			if ((*held & q->want) == q->want)
				return 0;
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

/* Whether the process at piddir runs in the container of q->member (any
 * member's when NULL: its name into member) and not in the host's pid
 * namespace. */
static bool gpu_holders_in_container(int piddir, const struct gpu_holders_query *q,
				     struct gpu_holders_scan *s, char member[static MEMBER_NAME_SIZE])
{
	__do_close int fd = openat(piddir, "cgroup", O_RDONLY | O_CLOEXEC);
	struct stat st;
	size_t used = 0;
	ssize_t n;

	if (fd < 0)
		return false;
	while (used < sizeof(s->cgroup) && (n = read(fd, s->cgroup + used, sizeof(s->cgroup) - used)) > 0)
		used += (size_t)n;
	if (procinfo_parse_cgroup(s->cgroup, used, member, MEMBER_NAME_SIZE) != 1 ||
	    (q->member && strcmp(member, q->member) != 0))
		return false;
	if (fstatat(piddir, "ns/pid", &st, 0) < 0)
		return false;
	return st.st_ino != s->host_pidns.st_ino || st.st_dev != s->host_pidns.st_dev;
}

/* The GPUs the process pid (its /proc directory open at piddir) holds:
 * open or mapped.  One whose mappings cannot be read while it runs counts
 * as holding every GPU looked for. */
static uint64_t gpu_holders_process(int piddir, pid_t pid, const struct gpu_holders_query *q,
				    struct gpu_holders_scan *s)
{
	uint64_t held = 0;

	gpu_holders_scan_threads(piddir, pid, q, s, &held);
	if ((held & q->want) == q->want || q->descriptors_only)
		return held;
	if (gpu_holders_scan_links(piddir, "map_files", q, s->dents[1], &held) >= 0)
		return held;
	return gpu_holders_exited(pid) ? held : q->want;
}

static void gpu_holders_add(pid_t pid, const char *member, uint64_t gpus, struct gpu_holders_scan *s)
{
	struct procinfo info;

	if (s->n == GPU_HOLDERS_MAX) {
		s->more = true;
		return;
	}
	if (procinfo_read(pid, &info) < 0)
		return;
	s->list[s->n] = (struct gpu_holder){ .pid = pid, .ns_pid = info.ns_pid,
					     .start_ticks = info.start_ticks, .pidfd = -EBADF,
					     .gpus = gpus };
	snprintf(s->list[s->n].command, sizeof(s->list[s->n].command), "%s", info.command);
	snprintf(s->list[s->n].member, sizeof(s->list[s->n].member), "%s", member);
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
			char member[MEMBER_NAME_SIZE];
			uint64_t held;
			uint32_t pid;

			off += d->d_reclen;
			if (parse_uint32(d->d_name, &pid) < 0 || pid == 0)
				continue;
			piddir = openat(procfd, d->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (piddir < 0 || !gpu_holders_in_container(piddir, q, s, member))
				continue;
			held = gpu_holders_process(piddir, (pid_t)pid, q, s);
			if (held)
				gpu_holders_add((pid_t)pid, member, held, s);
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

/* The holders the child found, as found: for a decision, never a signal. */
static int gpu_holders_copy(const struct gpu_holders_scan *s, struct gpu_holders *out)
{
	out->list = calloc(s->n ? s->n : 1, sizeof(*out->list));
	if (!out->list)
		return -ENOMEM;
	memcpy(out->list, s->list, s->n * sizeof(*out->list));
	out->n = s->n;
	out->more = s->more;
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

/* Search /proc in a child (see the top of the file) for q; the holders
 * found into out, each pinned by a pidfd when pin. */
static int gpu_holders_search(const struct gpu_holders_query *q, bool pin, struct gpu_holders *out)
{
	struct gpu_holders_scan *s;
	pid_t child;
	int ret;

	s = mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (s == MAP_FAILED)
		return log_error_errno(-errno, errno, "cannot map the search for a GPU's holders");
	child = fork();
	if (child < 0) {
		ret = log_error_errno(-errno, errno, "cannot fork to look for a GPU's holders");
	} else if (child == 0) {
		s->error = gpu_holders_scan_proc(q, s);
		_exit(s->error < 0 ? 1 : 0);
	} else {
		ret = gpu_holders_wait_child(child);
		if (ret == 0 && pin)
			ret = gpu_holders_pin(s, out);
		else if (ret == 0)
			ret = gpu_holders_copy(s, out);
	}
	munmap(s, sizeof(*s));
	return ret;
}

int gpu_holders_find(const char *member, const dev_t *devs, size_t ndevs, struct gpu_holders *out)
{
	unsigned gpu_of[GPU_NODES_MAX] = { 0 };
	struct gpu_holders_query q = { .member = member, .devs = devs, .gpu_of = gpu_of,
				       .ndevs = ndevs, .want = 1 };

	memset(out, 0, sizeof(*out));
	if (!member || !member[0] || ndevs == 0 || ndevs > GPU_NODES_MAX)
		return -EINVAL;
	return gpu_holders_search(&q, true, out);
}

int gpu_holders_usage(const struct gpu_host *host, bool mappings, struct gpu_holders *out)
{
	dev_t devs[GPU_NODES_MAX];
	unsigned gpu_of[GPU_NODES_MAX];
	struct gpu_holders_query q = { .devs = devs, .gpu_of = gpu_of, .descriptors_only = !mappings };

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < host->nnodes && q.ndevs < GPU_NODES_MAX; i++) {
		const struct gpu_node *node = &host->nodes[i];

		if (node->gpu < 0 || node->gpu >= GPU_MAX)
			continue;
		devs[q.ndevs] = makedev(node->major, node->minor);
		gpu_of[q.ndevs++] = (unsigned)node->gpu;
		q.want |= (uint64_t)1 << node->gpu;
	}
	if (q.ndevs == 0) {
		out->list = calloc(1, sizeof(*out->list));
		return out->list ? 0 : -ENOMEM;
	}
	return gpu_holders_search(&q, false, out);
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
