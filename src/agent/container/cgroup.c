/* SPDX-License-Identifier: MIT */
/*
 * A container's limits in its cgroup, on cgroup v1 (one hierarchy per
 * controller) and v2 (one tree).  The same items serve twice: the ones
 * every kernel has go into the LXC configuration, so the container never
 * runs a moment without them; then all of them are written into the
 * running container's cgroup, after a start and on every
 * `gpubox admin limits set`, a key not given written back to the kernel's
 * default.
 *
 * The container's cgroup is found from its init's /proc/PID/cgroup and
 * cut at "/lxc.payload.NAME": the container may make cgroups below (its
 * systemd does), never above, and the limit files of its own cgroup
 * belong to the host's root, so no one inside can raise them.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <linux/magic.h>

#include "container/container.h"
#include "cleanup.h"
#include "fsutil.h"
#include "log.h"
#include "strutil.h"

#include "banned.h"

#define CGROUP_ROOT "/sys/fs/cgroup"
/* cpu.cfs_period_us / cpu.max's period: the kernel's default, 100 ms. */
#define CGROUP_CPU_PERIOD 100000u

bool cgroup_is_v1(void)
{
	struct statfs sf;

	return !(statfs(CGROUP_ROOT, &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC);
}

static struct cgroup_item *cgroup_item(struct cgroup_items *items, const char *controller,
				       const char *file, bool in_config, const char *value)
{
	struct cgroup_item *it;

	if (items->n >= CGROUP_ITEMS_MAX)
		return NULL;
	it = &items->item[items->n++];
	snprintf(it->controller, sizeof(it->controller), "%s", controller);
	snprintf(it->file, sizeof(it->file), "%s", file);
	snprintf(it->value, sizeof(it->value), "%s", value);
	it->in_config = in_config;
	it->optional = false;
	return it;
}

/* A limit: its number, in the configuration too; LIMIT_NONE writes the
 * kernel's "no limit" (unlimited) and stays out of the configuration. */
static void cgroup_limit(struct cgroup_items *items, const char *controller, const char *file,
			 uint64_t value, const char *unlimited)
{
	char text[32];

	if (value == LIMIT_NONE) {
		cgroup_item(items, controller, file, false, unlimited);
		return;
	}
	snprintf(text, sizeof(text), "%" PRIu64, value);
	cgroup_item(items, controller, file, true, text);
}

/* A value that only some kernels have a file for: never in the
 * configuration, where a missing file would stop the start. */
static void cgroup_optional(struct cgroup_items *items, const char *controller, const char *file,
			    const char *prefix, uint64_t value, const char *unlimited)
{
	struct cgroup_item *it;
	char text[48];

	if (value == LIMIT_NONE)
		snprintf(text, sizeof(text), "%s", unlimited);
	else
		snprintf(text, sizeof(text), "%s%" PRIu64, prefix, value);
	it = cgroup_item(items, controller, file, false, text);
	if (it)
		it->optional = true;
}

/* A v2 weight (1..10000, 100 the default) on v1's scales. */
static uint64_t cgroup_v1_shares(uint64_t weight)
{
	uint64_t shares = weight * 1024 / 100;

	return shares < 2 ? 2 : shares > 262144 ? 262144 : shares;
}

static uint64_t cgroup_v1_blkio_weight(uint64_t weight)
{
	uint64_t w = weight * 5;

	return w < 10 ? 10 : w > 1000 ? 1000 : w;
}

/* The numbers both versions start from. */
struct cgroup_numbers {
	uint64_t memory, high, swap, cpus, pids, cpu_weight, io_weight;
	bool weight_given;
};

static void cgroup_numbers(const struct limits *l, uint64_t host_memory, struct cgroup_numbers *n)
{
	n->memory = limits_resolve(l, LIMIT_MEMORY, host_memory);
	n->high = limits_resolve(l, LIMIT_MEMORY_HIGH, host_memory);
	n->swap = limits_resolve(l, LIMIT_SWAP, host_memory);
	n->cpus = limits_resolve(l, LIMIT_CPUS, host_memory);
	n->pids = limits_resolve(l, LIMIT_PIDS, host_memory);
	n->weight_given = limits_given(l, LIMIT_CPU_WEIGHT);
	n->cpu_weight = n->weight_given ? l->value[LIMIT_CPU_WEIGHT] : 100;
	n->io_weight = limits_given(l, LIMIT_IO_WEIGHT) ? l->value[LIMIT_IO_WEIGHT] : 100;
}

static void cgroup_items_v1(const struct cgroup_numbers *n, struct cgroup_items *items)
{
	char text[32];

	/* v1 has no level that slows; the soft limit is where reclaim under
	 * pressure starts first. */
	cgroup_limit(items, "memory", "memory.soft_limit_in_bytes", n->high, "-1");
	cgroup_limit(items, "memory", "memory.limit_in_bytes", n->memory, "-1");
	/* memory+swap exists only with swap accounting (swapaccount=1). */
	cgroup_optional(items, "memory", "memory.memsw.limit_in_bytes", "",
			n->memory == LIMIT_NONE || n->swap == LIMIT_NONE ? LIMIT_NONE : n->memory + n->swap,
			"-1");
	snprintf(text, sizeof(text), "%" PRIu64, cgroup_v1_shares(n->cpu_weight));
	cgroup_item(items, "cpu", "cpu.shares", n->weight_given, text);
	snprintf(text, sizeof(text), "%u", CGROUP_CPU_PERIOD);
	cgroup_item(items, "cpu", "cpu.cfs_period_us", n->cpus != LIMIT_NONE, text);
	cgroup_limit(items, "cpu", "cpu.cfs_quota_us",
		     n->cpus == LIMIT_NONE ? LIMIT_NONE : n->cpus * CGROUP_CPU_PERIOD / 1000, "-1");
	cgroup_limit(items, "pids", "pids.max", n->pids, "max");
	/* Only with the BFQ or CFQ scheduler. */
	cgroup_optional(items, "blkio", "blkio.weight", "", cgroup_v1_blkio_weight(n->io_weight), "");
}

static void cgroup_items_v2(const struct cgroup_numbers *n, struct cgroup_items *items)
{
	char text[48];

	cgroup_limit(items, "memory", "memory.high", n->high, "max");
	cgroup_limit(items, "memory", "memory.max", n->memory, "max");
	/* Only with swap accounting. */
	cgroup_optional(items, "memory", "memory.swap.max", "", n->swap, "max");
	snprintf(text, sizeof(text), "%" PRIu64, n->cpu_weight);
	cgroup_item(items, "cpu", "cpu.weight", n->weight_given, text);
	if (n->cpus == LIMIT_NONE)
		snprintf(text, sizeof(text), "max %u", CGROUP_CPU_PERIOD);
	else
		snprintf(text, sizeof(text), "%" PRIu64 " %u", n->cpus * CGROUP_CPU_PERIOD / 1000,
			 CGROUP_CPU_PERIOD);
	cgroup_item(items, "cpu", "cpu.max", n->cpus != LIMIT_NONE, text);
	cgroup_limit(items, "pids", "pids.max", n->pids, "max");
	/* Only with the io cost model. */
	cgroup_optional(items, "io", "io.weight", "default ", n->io_weight, "");
}

void cgroup_limit_items(const struct limits *l, uint64_t host_memory, bool v1,
			struct cgroup_items *out)
{
	struct cgroup_numbers n;

	cgroup_numbers(l, host_memory, &n);
	out->n = 0;
	out->v1 = v1;
	if (v1)
		cgroup_items_v1(&n, out);
	else
		cgroup_items_v2(&n, out);
}

void cgroup_render_items(FILE *f, const struct cgroup_items *items)
{
	for (size_t i = 0; i < items->n; i++) {
		const struct cgroup_item *it = &items->item[i];

		if (it->in_config)
			fprintf(f, "lxc.cgroup%s.%s = %s\n", items->v1 ? "" : "2", it->file, it->value);
	}
}

/* Where the "/lxc.payload.NAME" part of a cgroup path ends.  The first
 * payload component must be the container's own: one the container made
 * below its cgroup may carry any name. */
static int cgroup_cut_payload(const char *path, size_t len, const char *name, size_t *cut)
{
	static const char payload[] = "/lxc.payload.";
	size_t plen = sizeof(payload) - 1, nlen = strlen(name);
	const char *p = memmem(path, len, payload, plen);
	size_t at;

	if (!p)
		return -ENOENT;
	at = (size_t)(p - path) + plen;
	if (at + nlen > len || memcmp(path + at, name, nlen) != 0 ||
	    (at + nlen < len && path[at + nlen] != '/'))
		return -ENOENT;
	*cut = at + nlen;
	return 0;
}

/* Whether the comma-separated controller list holds controller. */
static bool cgroup_list_has(const char *list, size_t len, const char *controller)
{
	size_t clen = strlen(controller);

	for (size_t i = 0; i < len;) {
		size_t n = 0;

		while (i + n < len && list[i + n] != ',')
			n++;
		if (n == clen && memcmp(list + i, controller, n) == 0)
			return true;
		i += n + 1;
	}
	return false;
}

/*
 * The directory of the container's cgroup for controller (v1), or of its
 * one cgroup (v2), from the lines of /proc/PID/cgroup:
 *   v1: "4:memory:/lxc.payload.ann/init.scope" -> /sys/fs/cgroup/memory/lxc.payload.ann
 *   v2: "0::/lxc.payload.ann/init.scope"       -> /sys/fs/cgroup/lxc.payload.ann
 */
int cgroup_dir_from(const char *proc_cgroup, const char *name, bool v1, const char *controller,
		    char *out, size_t len)
{
	for (const char *line = proc_cgroup; *line;) {
		const char *end = strchrnul(line, '\n');
		const char *c1 = memchr(line, ':', (size_t)(end - line));
		const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(end - c1 - 1)) : NULL;
		size_t cut;

		if (c2 && (v1 ? cgroup_list_has(c1 + 1, (size_t)(c2 - c1 - 1), controller)
			      : c2 == c1 + 1 && line[0] == '0')) {
			const char *path = c2 + 1;

			if (cgroup_cut_payload(path, (size_t)(end - path), name, &cut) < 0 ||
			    memmem(path, cut, "/..", 3))
				return -ENOENT;
			if (v1 && snprintf(out, len, CGROUP_ROOT "/%.*s%.*s", (int)(c2 - c1 - 1), c1 + 1,
					   (int)cut, path) >= (int)len)
				return -ENAMETOOLONG;
			if (!v1 && snprintf(out, len, CGROUP_ROOT "%.*s", (int)cut, path) >= (int)len)
				return -ENAMETOOLONG;
			return 0;
		}
		line = *end ? end + 1 : end;
	}
	return -ENOENT;
}

static int cgroup_write(const char *dir, const char *file, const char *value)
{
	__do_close int fd = -EBADF;
	char path[PATH_MAX];

	if (snprintf(path, sizeof(path), "%s/%s", dir, file) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	return fsutil_write_all(fd, value, strlen(value));
}

/* One pass over the items not yet written, the init's /proc/PID/cgroup
 * read once by the caller; *left counts the failures. */
static void cgroup_apply_pass(const char *proc_cgroup, const char *name,
			      const struct cgroup_items *items, bool *done, int *errors, size_t *left)
{
	*left = 0;
	for (size_t i = 0; i < items->n; i++) {
		const struct cgroup_item *it = &items->item[i];
		char dir[PATH_MAX];
		int ret;

		if (done[i])
			continue;
		ret = cgroup_dir_from(proc_cgroup, name, items->v1, it->controller, dir, sizeof(dir));
		if (ret == 0)
			ret = cgroup_write(dir, it->file, it->value);
		errors[i] = ret;
		done[i] = ret == 0;
		*left += ret != 0;
	}
}

int cgroup_apply(pid_t pid, const char *name, const struct cgroup_items *items, char *err,
		 size_t errlen)
{
	bool done[CGROUP_ITEMS_MAX] = { false };
	int errors[CGROUP_ITEMS_MAX] = { 0 };
	__do_free char *text = NULL;
	char path[64];
	size_t left, size = 0;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	if (fsutil_read_file(path, 65536, &text, &size) < 0) {
		set_error(err, errlen, "the container of %s is not running", name);
		return -ESRCH;
	}
	/* v1 keeps memory+swap at or above memory: lowering writes memory
	 * first, raising memory+swap first.  A second pass settles either. */
	cgroup_apply_pass(text, name, items, done, errors, &left);
	if (left)
		cgroup_apply_pass(text, name, items, done, errors, &left);
	for (size_t i = 0; i < items->n; i++) {
		const struct cgroup_item *it = &items->item[i];

		if (errors[i] == 0)
			continue;
		/* A file this kernel lacks, or a weight its I/O scheduler does
		 * not take, limits nothing: said, not fatal. */
		if (it->optional) {
			if (errors[i] == -ENOENT)
				log_debug("%s: this kernel has no %s; not set", name, it->file);
			else
				log_warn("%s: %s could not be set to %s: %s", name, it->file, it->value,
					 strerror(-errors[i]));
			continue;
		}
		set_error(err, errlen, "cannot set %s to %s for %s: %s", it->file, it->value, name,
			  strerror(-errors[i]));
		return errors[i];
	}
	return 0;
}

enum lxcfs_state cgroup_lxcfs_state(void)
{
	__do_fclose FILE *f = fopen("/proc/self/mountinfo", "re");
	__do_close int fd = -EBADF;
	char line[1024], byte;
	bool mounted = false;

	/* "... /var/lib/lxcfs rw,... - fuse.lxcfs lxcfs rw,..." */
	while (f && !mounted && fgets(line, sizeof(line), f))
		mounted = strstr(line, " /var/lib/lxcfs ") && strstr(line, " - fuse.lxcfs ");
	if (!mounted)
		return LXCFS_ABSENT;
	/* A crashed lxcfs leaves its mount behind, answering ENOTCONN: LXC's
	 * hook then mounts nothing, and the containers it already served
	 * cannot read their /proc/meminfo at all. */
	fd = open("/var/lib/lxcfs/proc/uptime", O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 || read(fd, &byte, 1) != 1)
		return LXCFS_STALE;
	return LXCFS_RUNNING;
}

bool cgroup_lxcfs_running(void)
{
	return cgroup_lxcfs_state() == LXCFS_RUNNING;
}
