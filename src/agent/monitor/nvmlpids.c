/* SPDX-License-Identifier: MIT */
/*
 * The pid map of each running container (src/nvmlshim/pidmap.h), kept
 * current from the collector's readings: which GPU processes are the
 * container's, by host pid, and their pids inside.  The NVML interposer
 * in the container reads it as /dev/gpubox/nvml-pids (the container's
 * guest directory, bound read-only) to show the container's processes
 * with the pids it can use.
 *
 * A map is rewritten (a new file renamed over the old one, so that a
 * reader sees one whole map or the other) when it changed, and at least
 * every NVMLPIDS_HEARTBEAT_MS: it says how long it may be trusted, so a
 * map the agent stopped keeping (crashed, nvml_interposer turned off) is
 * soon no map, and the interposer answers what the driver answers; so is
 * a map while the agent cannot read NVML itself.  Not
 * synced to disk: it means nothing after a reboot.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "monitor/monitor.h"
#include "nvmlshim/pidmap.h"
#include "cleanup.h"
#include "fsutil.h"
#include "log.h"
#include "banned.h"

#define NVMLPIDS_FILE "nvml-pids"
#define NVMLPIDS_TEMP "nvml-pids.tmp"
#define NVMLPIDS_HEARTBEAT_MS 1000

struct nvmlpids_member {
	char member[MEMBER_NAME_SIZE];
	uint64_t digest;           /* of the entries and mode last written */
	long long written_ms;      /* 0: nothing written */
};

struct nvmlpids {
	struct pidmap map;         /* built here for each container in turn */
	char text[PIDMAP_TEXT_MAX];
	struct nvmlpids_member *members;
	size_t nmembers;
};

int nvmlpids_open(struct nvmlpids **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

/* The maps written go at once: readers pass the driver's answer on. */
void nvmlpids_close(struct nvmlpids *p, const struct gpubox_config *cfg)
{
	if (!p)
		return;
	for (size_t i = 0; cfg && i < p->nmembers; i++) {
		char dir[PATH_MAX], path[PATH_MAX + 16];

		if (p->members[i].written_ms && guest_dir(cfg, p->members[i].member, dir, sizeof(dir)) == 0 &&
		    snprintf(path, sizeof(path), "%s/%s", dir, NVMLPIDS_FILE) < (int)sizeof(path))
			unlink(path);
	}
	free(p->members);
	free(p);
}

static struct nvmlpids_member *nvmlpids_member(struct nvmlpids *p, const char *member)
{
	struct nvmlpids_member *m;

	for (size_t i = 0; i < p->nmembers; i++)
		if (strcmp(p->members[i].member, member) == 0)
			return &p->members[i];
	m = realloc(p->members, (p->nmembers + 1) * sizeof(*m));
	if (!m)
		return NULL;
	p->members = m;
	m = &p->members[p->nmembers++];
	memset(m, 0, sizeof(*m));
	snprintf(m->member, sizeof(m->member), "%s", member);
	return m;
}

/* The member's processes of the reading into p->map, sorted, each once
 * (a process on two GPUs is listed twice). */
static void nvmlpids_collect(struct nvmlpids *p, const struct sample *s, const char *member)
{
	struct pidmap *map = &p->map;
	uint32_t kept = 0;

	map->n = 0;
	for (size_t i = 0; i < s->nprocs && map->n < PIDMAP_MAX; i++) {
		const struct sample_process *sp = &s->procs[i];

		if (strcmp(sp->member, member) != 0 || sp->pid <= 0 || sp->ns_pid <= 0 ||
		    (uint32_t)sp->pid > PIDMAP_PID_MAX || (uint32_t)sp->ns_pid > PIDMAP_PID_MAX)
			continue;
		map->entries[map->n++] = (struct pidmap_entry){ (uint32_t)sp->pid, (uint32_t)sp->ns_pid };
	}
	pidmap_sort(map->entries, map->n);
	for (uint32_t i = 0; i < map->n; i++)
		if (kept == 0 || map->entries[i].host != map->entries[kept - 1].host)
			map->entries[kept++] = map->entries[i];
	map->n = kept;
}

/* FNV-1a of the mode and the entries: whether the map changed. */
static uint64_t nvmlpids_digest(const struct pidmap *map)
{
	uint64_t h = 14695981039346656037ULL ^ (uint64_t)map->mode;
	const unsigned char *b = (const unsigned char *)map->entries;

	for (size_t i = 0; i < map->n * sizeof(map->entries[0]); i++)
		h = (h ^ b[i]) * 1099511628211ULL;
	return h ^ map->n;
}

/* Write len bytes of text as the member's map, whole or not at all. */
static int nvmlpids_write(const struct gpubox_config *cfg, const char *member, const char *text,
			  size_t len)
{
	char dir[PATH_MAX];
	__do_close int dirfd = -EBADF, fd = -EBADF;
	int ret = guest_dir(cfg, member, dir, sizeof(dir));

	if (ret < 0)
		return ret;
	/* The container's directory exists while it runs; never made here. */
	dirfd = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dirfd < 0)
		return -errno;
	fd = openat(dirfd, NVMLPIDS_TEMP, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	ret = fsutil_write_all(fd, text, len);
	if (ret == 0 && fchmod(fd, 0644) < 0)
		ret = -errno;
	if (ret == 0 && renameat(dirfd, NVMLPIDS_TEMP, dirfd, NVMLPIDS_FILE) < 0)
		ret = -errno;
	if (ret < 0)
		unlinkat(dirfd, NVMLPIDS_TEMP, 0);
	return ret;
}

void nvmlpids_publish(struct nvmlpids *p, const struct gpubox_config *cfg, const struct sample *s)
{
	enum config_nvml mode = config_nvml_interposer(cfg, NULL, 0);
	uint32_t interval = cfg->sample_interval;

	/* Without NVML's readings no process is known to be anyone's: no map
	 * (the last ones expire), rather than one that hides every process. */
	if (mode == CONFIG_NVML_OFF || !s->gpu_ok)
		return;
	for (size_t i = 0; i < s->ncontainers; i++) {
		struct nvmlpids_member *m = nvmlpids_member(p, s->containers[i].member);
		uint64_t digest;
		int len, ret;

		if (!m)
			return;
		nvmlpids_collect(p, s, m->member);
		p->map.mode = mode == CONFIG_NVML_ANONYMOUS ? PIDMAP_ANONYMOUS : PIDMAP_OWN;
		digest = nvmlpids_digest(&p->map);
		if (m->written_ms && digest == m->digest && s->time_ms - m->written_ms < NVMLPIDS_HEARTBEAT_MS)
			continue;
		p->map.time_ms = s->time_ms;
		/* Three heartbeats and two readings late: the agent is gone. */
		p->map.valid_ms = 3 * NVMLPIDS_HEARTBEAT_MS + 2 * interval;
		len = pidmap_render(&p->map, p->text, sizeof(p->text));
		if (len < 0)
			continue;
		ret = nvmlpids_write(cfg, m->member, p->text, (size_t)len);
		if (ret < 0) {
			if (ret != -ENOENT)
				log_debug("cannot write the pid map of %s: %s", m->member, strerror(-ret));
			continue;
		}
		m->digest = digest;
		m->written_ms = s->time_ms;
	}
}
