/* SPDX-License-Identifier: MIT */
/*
 * The agent's reading of the server, every sample_interval: NVML's GPUs
 * and their processes, each process attributed to a member's container,
 * the host's CPU, memory, disk and network, each container's CPU and
 * memory.  The newest reading is kept for readers; each one is appended to
 * the history.
 *
 * The goal is well under a millisecond of CPU per tick, so what does not
 * change is not read again: a GPU process's container, in-container pid,
 * command and start are read once, and the process is then followed with a
 * pidfd (a reused pid gets a new entry, never the old one's owner).
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "gpu/gpu.h"
#include "monitor/monitor.h"
#include "monitor/procinfo.h"
#include "state/state.h"
#include "array.h"
#include "cleanup.h"
#include "log.h"
#include "banned.h"

#define COLLECTOR_NVML_RETRY_MS 60000      /* a driver loaded later is found */
#define COLLECTOR_MEMBERS_REFRESH_MS 5000  /* which containers to read */
#define COLLECTOR_COMPACT_MS 10000
#define COLLECTOR_CONTAINER_READS 4       /* cgroups read per tick, in turn */

struct collector_known {
	pid_t pid;                 /* 0: free slot */
	int pidfd;
	uint64_t seen;             /* tick of the last sighting */
	struct procinfo info;
};

struct collector_container {
	char member[MEMBER_NAME_SIZE];
	bool running;              /* at the last read */
	struct container_stats stats;
	double cpu_percent;
	long long time_ms;         /* of the last read; 0 never */
};

struct collector {
	struct agent *agent;
	struct history *history;
	pthread_t thread;
	bool running;

	pthread_mutex_t lock;      /* latest, have_latest, stop */
	pthread_cond_t wake;
	bool stop;
	struct sample latest;
	bool have_latest;

	/* Below: the tick's own state, under tick_lock. */
	pthread_mutex_t tick_lock;
	uint64_t tick;
	struct nvml *nvml;
	char nvml_note[160];
	long long nvml_next_try;
	struct nvml_gpu *gpus;
	size_t ngpus, gpu_cap;
	struct nvml_process *nprocs;
	size_t nnprocs, nproc_cap;
	struct procinfo_host *host;
	struct collector_known *known;   /* open addressing by pid */
	size_t known_cap;              /* a power of two */
	size_t known_used;
	char (*members)[MEMBER_NAME_SIZE];
	size_t nmembers;
	long long members_time;
	struct collector_container *containers;
	size_t ncontainers;
	size_t container_cursor;   /* the next container to read */
	long long last_compact;
	struct sample next;            /* built here, then swapped with latest */
	struct nvmlpids *nvmlpids;     /* each container's pid map (agent only) */
	size_t next_proc_cap, next_container_cap, next_gpu_cap;
};

static long long collector_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t collector_thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- processes we know ------------------------------------------------ */

static size_t collector_slot(const struct collector *s, pid_t pid)
{
	return ((size_t)pid * 2654435761u) & (s->known_cap - 1);
}

static struct collector_known *collector_find(struct collector *s, pid_t pid)
{
	for (size_t i = collector_slot(s, pid), n = 0; n < s->known_cap;
	     i = (i + 1) & (s->known_cap - 1), n++) {
		if (s->known[i].pid == pid)
			return &s->known[i];
		if (s->known[i].pid == 0)
			return NULL;
	}
	return NULL;
}

static int collector_grow_known(struct collector *s);

static struct collector_known *collector_insert(struct collector *s, pid_t pid)
{
	size_t i;

	if ((s->known_used + 1) * 2 > s->known_cap && collector_grow_known(s) < 0)
		return NULL;
	for (i = collector_slot(s, pid); s->known[i].pid != 0; i = (i + 1) & (s->known_cap - 1))
		;
	s->known[i] = (struct collector_known){ .pid = pid, .pidfd = -EBADF };
	s->known_used++;
	return &s->known[i];
}

static int collector_grow_known(struct collector *s)
{
	struct collector_known *old = s->known;
	size_t old_cap = s->known_cap;
	size_t cap = old_cap ? old_cap * 2 : 512;

	s->known = calloc(cap, sizeof(*s->known));
	if (!s->known) {
		s->known = old;
		return -ENOMEM;
	}
	s->known_cap = cap;
	s->known_used = 0;
	for (size_t i = 0; i < old_cap; i++) {
		struct collector_known *k;

		if (old[i].pid == 0)
			continue;
		for (k = &s->known[collector_slot(s, old[i].pid)]; k->pid != 0;
		     k = &s->known[((size_t)(k - s->known) + 1) & (cap - 1)])
			;
		*k = old[i];
		s->known_used++;
	}
	free(old);
	return 0;
}

/* Entries not seen this tick are gone: rebuild the table without them
 * (open addressing cannot simply clear a slot). */
static void collector_forget_unseen(struct collector *s)
{
	bool any = false;

	for (size_t i = 0; i < s->known_cap && !any; i++)
		any = s->known[i].pid != 0 && s->known[i].seen != s->tick;
	if (!any)
		return;
	for (size_t i = 0; i < s->known_cap; i++) {
		if (s->known[i].pid != 0 && s->known[i].seen != s->tick) {
			if (s->known[i].pidfd >= 0)
				close(s->known[i].pidfd);
			s->known[i].pid = 0;
			s->known_used--;
		}
	}
	/* Reinsert the survivors so that every probe chain is whole again. */
	for (size_t i = 0; i < s->known_cap; i++) {
		struct collector_known entry = s->known[i];
		size_t j;

		if (entry.pid == 0)
			continue;
		s->known[i].pid = 0;
		for (j = collector_slot(s, entry.pid); s->known[j].pid != 0; j = (j + 1) & (s->known_cap - 1))
			;
		s->known[j] = entry;
	}
}

static bool collector_alive(const struct collector_known *k)
{
	return k->pidfd >= 0 && pidfd_send_signal(k->pidfd, 0, NULL, 0) == 0;
}

/* What we know of pid, read once per process; NULL if it is gone. */
static const struct procinfo *collector_process(struct collector *s, pid_t pid)
{
	struct collector_known *k = collector_find(s, pid);
	int fd;

	if (k && k->seen == s->tick)
		return k->info.pid ? &k->info : NULL;
	if (k && collector_alive(k)) {
		k->seen = s->tick;
		return &k->info;
	}
	if (!k) {
		k = collector_insert(s, pid);
		if (!k)
			return NULL;
	} else if (k->pidfd >= 0) {
		close(k->pidfd);
		k->pidfd = -EBADF;
	}
	k->seen = s->tick;
	memset(&k->info, 0, sizeof(k->info));
	/* The pidfd first: what is read after it is this process's. */
	fd = pidfd_open(pid, 0);
	if (fd < 0)
		return NULL;
	if (procinfo_read(pid, &k->info) < 0) {
		close(fd);
		memset(&k->info, 0, sizeof(k->info));
		return NULL;
	}
	k->pidfd = fd;
	return &k->info;
}

/* ---- the parts of a tick ------------------------------------------------ */

static void collector_read_gpus(struct collector *s, long long now)
{
	char note[160];
	int ret;

	s->ngpus = s->nnprocs = 0;
	if (!s->nvml) {
		if (now < s->nvml_next_try)
			return;
		s->nvml_next_try = now + COLLECTOR_NVML_RETRY_MS;
		ret = nvml_open(&s->nvml, note, sizeof(note));
		if (ret < 0) {
			if (strcmp(note, s->nvml_note) != 0)
				log_info("GPU readings: %s", note);
			snprintf(s->nvml_note, sizeof(s->nvml_note), "%s", note);
			return;
		}
		s->nvml_note[0] = '\0';
		log_info("GPU readings: NVML %s, %u GPUs", nvml_driver_version(s->nvml),
			 nvml_gpu_count(s->nvml));
	}
	ret = nvml_sample(s->nvml, &s->gpus, &s->ngpus, &s->gpu_cap, &s->nprocs, &s->nnprocs,
			  &s->nproc_cap);
	if (ret < 0) {
		/* The driver went away (unloaded, upgraded): start again later. */
		snprintf(s->nvml_note, sizeof(s->nvml_note), "NVML stopped answering (%s)",
			 strerror(-ret));
		log_warn("GPU readings: %s", s->nvml_note);
		nvml_close(s->nvml);
		s->nvml = NULL;
		s->ngpus = s->nnprocs = 0;
		s->nvml_next_try = now + COLLECTOR_NVML_RETRY_MS / 6;
	}
}

static int collector_reserve(void **array, size_t *cap, size_t want, size_t size)
{
	void *p;

	if (want <= *cap)
		return 0;
	p = realloc(*array, want * size);
	if (!p)
		return -ENOMEM;
	*array = p;
	*cap = want;
	return 0;
}

static bool collector_is_member(const struct collector *s, const char *name, size_t len)
{
	for (size_t i = 0; i < s->nmembers; i++)
		if (strlen(s->members[i]) == len && strncmp(s->members[i], name, len) == 0)
			return true;
	return false;
}

/*
 * The member a container name stands for.  LXC names a container's cgroup
 * "lxc.payload.NAME-1" (-2, ...) when a stale "lxc.payload.NAME" is still
 * there, so a name that is no member's but is a member's followed by
 * "-<digits>" is that member's.
 */
static void collector_member_name(const struct collector *s, const char *name, char *out, size_t len)
{
	const char *dash = strrchr(name, '-');

	if (dash && dash[1] && strspn(dash + 1, "0123456789") == strlen(dash + 1) &&
	    !collector_is_member(s, name, strlen(name)) &&
	    collector_is_member(s, name, (size_t)(dash - name))) {
		snprintf(out, len, "%.*s", (int)(dash - name), name);
		return;
	}
	snprintf(out, len, "%s", name);
}

static int collector_fill_processes(struct collector *s, struct sample *out)
{
	if (collector_reserve((void **)&out->procs, &s->next_proc_cap, s->nnprocs + 1,
			    sizeof(*out->procs)) < 0)
		return -ENOMEM;
	out->nprocs = 0;
	for (size_t i = 0; i < s->nnprocs; i++) {
		const struct nvml_process *np = &s->nprocs[i];
		const struct procinfo *info = collector_process(s, np->pid);
		struct sample_process *p;

		if (!info)
			continue;   /* ended between NVML's list and now */
		p = &out->procs[out->nprocs++];
		p->gpu = np->gpu;
		p->pid = np->pid;
		p->ns_pid = info->in_container ? info->ns_pid : np->pid;
		collector_member_name(s, info->member, p->member, sizeof(p->member));
		memcpy(p->command, info->command, sizeof(p->command));
		p->started = info->started;
		p->start_ticks = info->start_ticks;
		p->mem_used = np->mem_used;
		p->sm_util = np->sm_util;
		p->idle_seconds = 0;
		p->idle = false;
	}
	collector_forget_unseen(s);
	return 0;
}

static void collector_refresh_members(struct collector *s, long long now)
{
	__do_free struct member_record *list = NULL;
	size_t n = 0;
	char (*names)[MEMBER_NAME_SIZE];

	if (s->members && now - s->members_time < COLLECTOR_MEMBERS_REFRESH_MS)
		return;
	if (!s->agent || db_member_list(s->agent->db, &list, &n) < 0)
		return;
	names = calloc(n + 1, sizeof(*names));
	if (!names)
		return;
	for (size_t i = 0; i < n; i++)
		memcpy(names[i], list[i].name, sizeof(names[i]));
	free(s->members);
	s->members = names;
	s->nmembers = n;
	s->members_time = now;
}

static struct collector_container *collector_container_entry(struct collector *s, const char *member)
{
	struct collector_container *p;

	for (size_t i = 0; i < s->ncontainers; i++)
		if (strcmp(s->containers[i].member, member) == 0)
			return &s->containers[i];
	p = realloc(s->containers, (s->ncontainers + 1) * sizeof(*s->containers));
	if (!p)
		return NULL;
	s->containers = p;
	p = &s->containers[s->ncontainers++];
	memset(p, 0, sizeof(*p));
	snprintf(p->member, sizeof(p->member), "%s", member);
	return p;
}

/* Read one container's cgroup, with its CPU share since the last read. */
static void collector_read_container(struct collector_container *c, long long now)
{
	struct container_stats st;

	if (procinfo_container(c->member, &st) < 0) {
		c->running = false;
		c->time_ms = 0;
		return;
	}
	c->cpu_percent = 0;
	if (c->running && c->time_ms && now > c->time_ms && st.cpu_ns >= c->stats.cpu_ns)
		c->cpu_percent = (double)(st.cpu_ns - c->stats.cpu_ns) / 1e4 /
				 (double)(now - c->time_ms);
	c->stats = st;
	c->time_ms = now;
	c->running = true;
}

/*
 * A container's cgroup costs tens of microseconds to read (four files), so
 * a tick reads at most COLLECTOR_CONTAINER_READS of them, in turn, and
 * reports the others' last values: with 64 containers at 1 Hz each is
 * read every 16 s, and the tick stays well under a millisecond.
 */
static int collector_fill_containers(struct collector *s, struct sample *out, long long now)
{
	size_t reads = 0;

	if (collector_reserve((void **)&out->containers, &s->next_container_cap, s->nmembers + 1,
			    sizeof(*out->containers)) < 0)
		return -ENOMEM;
	out->ncontainers = 0;
	for (size_t k = 0; k < s->nmembers; k++) {
		size_t i = (s->container_cursor + k) % s->nmembers;
		struct collector_container *c = collector_container_entry(s, s->members[i]);
		struct sample_container *o;

		if (!c)
			return -ENOMEM;
		if (reads < COLLECTOR_CONTAINER_READS && (!c->time_ms || now != c->time_ms)) {
			collector_read_container(c, now);
			reads++;
			s->container_cursor = (i + 1) % s->nmembers;
		}
		if (!c->running)
			continue;
		o = &out->containers[out->ncontainers++];
		memcpy(o->member, c->member, sizeof(o->member));
		o->cpu_percent = c->cpu_percent;
		o->cpu_ns = c->stats.cpu_ns;
		o->mem_used = c->stats.mem_used;
		o->mem_limit = c->stats.mem_limit;
		o->pids = c->stats.pids;
		o->oom_kills = c->stats.oom_kills;
	}
	return 0;
}

/* The new reading becomes the latest; the previous one is freed outside
 * the lock.  (Three allocations a tick: cheaper than tracking capacities
 * across the swap.) */
static void collector_publish(struct collector *s)
{
	struct sample old;

	pthread_mutex_lock(&s->lock);
	old = s->latest;
	s->latest = s->next;
	s->have_latest = true;
	pthread_mutex_unlock(&s->lock);
	sample_free(&old);
	memset(&s->next, 0, sizeof(s->next));
	s->next_proc_cap = s->next_container_cap = s->next_gpu_cap = 0;
}

static int collector_fill_gpus(struct collector *s, struct sample *out)
{
	if (collector_reserve((void **)&out->gpus, &s->next_gpu_cap, s->ngpus + 1,
			    sizeof(*out->gpus)) < 0)
		return -ENOMEM;
	if (s->ngpus)
		memcpy(out->gpus, s->gpus, s->ngpus * sizeof(*out->gpus));
	out->ngpus = s->ngpus;
	out->gpu_ok = s->nvml != NULL;
	snprintf(out->gpu_note, sizeof(out->gpu_note), "%s", s->nvml_note);
	snprintf(out->driver_version, sizeof(out->driver_version), "%s",
		 s->nvml ? nvml_driver_version(s->nvml) : "");
	return 0;
}

static int collector_tick_locked(struct collector *s)
{
	struct sample *out = &s->next;
	long long now = collector_now_ms();
	int ret;

	s->tick++;
	out->time_ms = now;
	if (s->agent)
		snprintf(out->server, sizeof(out->server), "%s", s->agent->cfg.server_name);
	collector_read_gpus(s, now);
	collector_refresh_members(s, now);
	ret = collector_fill_gpus(s, out);
	if (ret == 0)
		ret = collector_fill_processes(s, out);
	if (ret == 0)
		ret = collector_fill_containers(s, out, now);
	if (ret < 0)
		return ret;
	if (s->host && procinfo_host_read(s->host, &out->host) < 0)
		memset(&out->host, 0, sizeof(out->host));
	/* Before it is published: every reader sees the idle marks. */
	if (s->agent && s->agent->idle)
		idle_observe(s->agent->idle, out);
	if (s->nvmlpids)
		nvmlpids_publish(s->nvmlpids, &s->agent->cfg, out);
	collector_publish(s);
	return 0;
}

int collector_tick(struct collector *s, uint64_t *cpu_ns)
{
	uint64_t before = collector_thread_cpu_ns();
	int ret;

	pthread_mutex_lock(&s->tick_lock);
	ret = collector_tick_locked(s);
	pthread_mutex_unlock(&s->tick_lock);
	if (cpu_ns)
		*cpu_ns = collector_thread_cpu_ns() - before;
	return ret;
}

int collector_latest(struct collector *s, struct sample *out)
{
	int ret = -EAGAIN;

	if (!s)
		return -EAGAIN;
	pthread_mutex_lock(&s->lock);
	if (s->have_latest)
		ret = sample_copy(&s->latest, out);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

/* The history gets the newest reading; minutes are folded every 10 s. */
static void collector_record(struct collector *s)
{
	struct sample copy;
	long long now;

	if (!s->history || collector_latest(s, &copy) < 0)
		return;
	if (history_record(s->history, &copy) < 0)
		log_warn("cannot append to the history; see above");
	now = copy.time_ms;
	sample_free(&copy);
	if (now - s->last_compact >= COLLECTOR_COMPACT_MS) {
		s->last_compact = now;
		history_compact(s->history, now);
	}
}

static void *collector_thread(void *arg)
{
	struct collector *s = arg;
	unsigned interval = s->agent ? s->agent->cfg.sample_interval : 1000;
	struct timespec next;

	clock_gettime(CLOCK_REALTIME, &next);
	pthread_mutex_lock(&s->lock);
	while (!s->stop) {
		pthread_mutex_unlock(&s->lock);
		if (collector_tick(s, NULL) < 0)
			log_warn("a reading of the server failed (out of memory?)");
		collector_record(s);
		next.tv_nsec += (long)(interval % 1000) * 1000000L;
		next.tv_sec += interval / 1000 + next.tv_nsec / 1000000000L;
		next.tv_nsec %= 1000000000L;
		pthread_mutex_lock(&s->lock);
		while (!s->stop && pthread_cond_timedwait(&s->wake, &s->lock, &next) == 0)
			;
		/* After a long stall (suspend, clock step) start afresh. */
		{
			struct timespec now;

			clock_gettime(CLOCK_REALTIME, &now);
			if (now.tv_sec > next.tv_sec + 5 || now.tv_sec < next.tv_sec - 5)
				next = now;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int collector_open(struct agent *a, struct history *history, struct collector **out)
{
	__do_free struct collector *s = calloc(1, sizeof(*s));
	const char *disk = a ? a->cfg.state_dir : "/";
	int ret;

	if (!s)
		return -ENOMEM;
	s->agent = a;
	s->history = history;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->tick_lock, NULL);
	pthread_cond_init(&s->wake, NULL);
	ret = collector_grow_known(s);
	if (ret < 0)
		return ret;
	ret = procinfo_host_open(disk, &s->host);
	if (ret < 0)
		log_warn_errno(0, -ret, "host readings unavailable");
	if (a && nvmlpids_open(&s->nvmlpids) < 0)
		log_warn("the containers' NVML pid maps cannot be kept (out of memory)");
	*out = move_ptr(s);
	return 0;
}

int collector_start(struct agent *a, struct history *history, struct collector **out)
{
	struct collector *s;
	int ret = collector_open(a, history, &s);

	if (ret < 0)
		return ret;
	ret = pthread_create(&s->thread, NULL, collector_thread, s);
	if (ret != 0) {
		collector_stop(s);
		return log_error_errno(-ret, ret, "cannot start the collector");
	}
	s->running = true;
	*out = s;
	return 0;
}

void collector_stop(struct collector *s)
{
	if (!s)
		return;
	if (s->running) {
		pthread_mutex_lock(&s->lock);
		s->stop = true;
		pthread_cond_broadcast(&s->wake);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->thread, NULL);
	}
	for (size_t i = 0; i < s->known_cap; i++)
		if (s->known[i].pid && s->known[i].pidfd >= 0)
			close(s->known[i].pidfd);
	free(s->known);
	nvmlpids_close(s->nvmlpids, s->agent ? &s->agent->cfg : NULL);
	if (s->nvml)
		nvml_close(s->nvml);
	procinfo_host_close(s->host);
	sample_free(&s->latest);
	sample_free(&s->next);
	free(s->gpus);
	free(s->nprocs);
	free(s->members);
	free(s->containers);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->tick_lock);
	pthread_cond_destroy(&s->wake);
	free(s);
}
