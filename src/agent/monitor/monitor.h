/* SPDX-License-Identifier: MIT */
/*
 * Who uses which GPU, now and in the past: one reading of the server
 * (sample.c) taken every interval (collector.c), kept in the history
 * (history.c) and served over HTTP (httpd.c: /metrics in Prometheus'
 * format from prometheus.c, and the hub's API).
 * Every function returns 0 or a negative errno unless it says otherwise.
 */
#ifndef GPUBOX_AGENT_MONITOR_H
#define GPUBOX_AGENT_MONITOR_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "gpu/gpu.h"
#include "monitor/procinfo.h"

struct agent;

/* ---- oomwatch.c: processes killed for a member's memory limit ------------- */

struct oom_event {
	char member[MEMBER_NAME_SIZE];
	char command[16];          /* the kernel's name of the task (TASK_COMM_LEN) */
	pid_t host_pid;
	uint32_t host_uid;
	uint64_t boot_usec;        /* the log's time: microseconds since boot */
	long long time;            /* unix time */
};

struct oomwatch;
/* One record of /dev/kmsg: 0 and *out for a kernel's oom-kill line in a
 * member's container, -ENOENT for any other line, -EINVAL or -EPERM for
 * one that is not what the kernel writes. */
int oomwatch_parse(const char *record, size_t len, struct oom_event *out);
/* Watch the kernel's log from now on; *out NULL (and a warning) when it
 * cannot be read. */
int oomwatch_start(struct oomwatch **out);
/* The thread ends; what it kept stays readable until the process exits. */
void oomwatch_stop(struct oomwatch *w);
/* The member's last kill since the agent started; -ENOENT when none. */
int oomwatch_last(struct oomwatch *w, const char *member, struct oom_event *out);
void oomwatch_forget(struct oomwatch *w, const char *member);

/* ---- sample.c: one reading of the whole server ---------------------------- */

struct sample_process {
	unsigned gpu;
	pid_t pid;                 /* host */
	pid_t ns_pid;              /* inside the container; = pid for the host */
	char member[MEMBER_NAME_SIZE];           /* "" for a process of the host */
	char command[PROCINFO_COMMAND_MAX];
	long long started;         /* unix time */
	unsigned long long start_ticks;          /* after boot: with pid, this process */
	uint64_t mem_used;         /* bytes; UINT64_MAX unknown */
	int sm_util;               /* percent; -1 unknown */
	uint32_t idle_seconds;     /* held at least idle_memory_min on a GPU at 0 %
				    * this long (idle.c); 0: not idle */
	bool idle;                 /* ... for idle_after at least: the GPU is idle */
};

struct sample_container {
	char member[MEMBER_NAME_SIZE];
	double cpu_percent;        /* of one CPU, since the previous tick */
	uint64_t cpu_ns;
	uint64_t mem_used;
	uint64_t mem_limit;
	uint64_t pids;
	uint64_t oom_kills;        /* since the container started */
};

struct sample {
	long long time_ms;         /* unix time of the reading, ms */
	char server[64];
	bool gpu_ok;               /* NVML answered */
	char gpu_note[160];        /* why not, when !gpu_ok */
	char driver_version[32];
	struct host_stats host;
	struct nvml_gpu *gpus;
	size_t ngpus;
	struct sample_process *procs;
	size_t nprocs;
	struct sample_container *containers;
	size_t ncontainers;
};

void sample_free(struct sample *s);       /* the arrays; s itself is the caller's */
int sample_copy(const struct sample *from, struct sample *to);
/* The members using GPU index (mem > 0 or a process), as a JSON array of
 * names, sorted, each once. */
json_t *sample_gpu_members(const struct sample *s, unsigned gpu);
/* The same for the members whose processes hold GPU index idle. */
json_t *sample_gpu_idle_members(const struct sample *s, unsigned gpu);
/* The whole reading for the hub: {"time", "server", "gpu_ok", "gpu_note",
 * "driver_version", "host": {...}, "gpus": [...], "processes": [{"gpu",
 * "member", "pid" (inside), "host_pid", ..., "idle_seconds", "idle"}],
 * "containers": [...]}; values not known are left out. */
json_t *sample_json(const struct sample *s);
/* One GPU of it: {"index", "uuid", "name", "bus_id", "lost", "util",
 * "mem_used", "mem_total", "temperature", "power_w", "members"}. */
json_t *sample_gpu_json(const struct sample *s, const struct nvml_gpu *g);

/* ---- history.c: the past, in <state_dir>/history.db ------------------------ */

/*
 * Full resolution rows (one per GPU per tick, one per member per GPU per
 * tick, one for the host per tick) kept history_full seconds; one-minute
 * aggregates of each kept history_days days.  A minute is aggregated once
 * it is complete and older rows are pruned in history_compact(), so the
 * file's size is bounded by the GPUs and members, never by the uptime.
 */
struct history;

struct history_limits {
	uint32_t full_seconds;     /* history_full */
	uint32_t minute_days;      /* history_days */
};

int history_open(const char *path, const struct history_limits *limits, struct history **out);
void history_close(struct history *h);
/* On a connection of one's own to history.db (the tests; history_open()'s
 * do it themselves): the functions and TEMP views that show its packed
 * full rows as the tables gpu_samples and member_samples.  0, or a
 * negative errno. */
struct sqlite3;
int history_attach_views(struct sqlite3 *handle);
/* Append one tick's rows (in one transaction). */
int history_record(struct history *h, const struct sample *s);
/* Aggregate every complete minute not yet aggregated, prune old rows. */
int history_compact(struct history *h, long long now_ms);
/*
 * The state of GPU gpu (index) at time t (unix ms): the nearest full
 * sample within 2 intervals, else the minute holding t.  *out:
 * {"time", "resolution": "sample"|"minute", "gpu", "uuid", "util", "mem_used",
 *  "mem_total", "temperature", "power_w", "members": [{"member", "mem_used",
 *  "sm_util", "processes"}]}; -ENOENT when nothing was recorded then.
 */
int history_gpu_at(struct history *h, unsigned gpu, long long t_ms, json_t **out);
/*
 * A series from..to (unix ms) for one GPU (gpu >= 0) or all (gpu < 0),
 * at most max_points points per GPU (averaged into buckets): full rows
 * when the range lies in the full-resolution window, else minutes.
 * *out: {"from", "to", "step_ms", "resolution", "gpus": [{"gpu", "uuid",
 * "points": [[t, util, mem_used, mem_total, temperature, power_w], ...],
 * "members": {"name": [[t, mem_used, sm_util], ...]}}], "host": [[t,
 * cpu_percent, mem_used, mem_total, load1], ...]}.
 */
int history_range(struct history *h, int gpu, long long from_ms, long long to_ms,
		  unsigned max_points, json_t **out);
/* At full resolution history_range() groups the rows itself; on, SQLite
 * groups them as before (a GROUP BY that sorts every row).  For the tests,
 * which compare both, and bench-history. */
void history_group_in_sql(struct history *h, bool on);
/* GPU-hours and GPU-memory-hours (GiB x hours) per member between from
 * and to: [{"member", "gpu_hours", "gpu_mem_gib_hours", "max_mem_used",
 * "idle_gpu_hours"}], largest first.  A member counts on a GPU while it
 * has a process there; idle_gpu_hours, while the GPU was marked idle for
 * the member. */
int history_usage(struct history *h, long long from_ms, long long to_ms, json_t **out);

/* ---- idle.c: GPUs held idle ------------------------------------------------- */

/*
 * A member's process holds a GPU idle while it holds at least
 * idle_memory_min of the GPU's memory and the GPU's utilisation is 0 %.
 * After idle_after of it the GPU is marked idle for the member, who is
 * told (on their next command, and through the webhook), and told a
 * second time after twice idle_after.  With idle_reclaim_after, a process
 * idle that long is ended once both notices were given (reclaim.c), and
 * only if it holds no GPU that is busy.
 */
struct idle_settings {
	uint32_t after;            /* seconds */
	uint64_t memory_min;       /* bytes */
	uint32_t reclaim_after;    /* seconds; 0: never */
};

/* A member's idle time on a GPU reached its first or second notice. */
struct idle_notice {
	char member[MEMBER_NAME_SIZE];
	unsigned gpu;
	unsigned number;           /* 1 or 2 */
	uint32_t idle_seconds;
	uint64_t mem_used;         /* held by the idle processes */
	unsigned processes;
	uint32_t reclaim_in;       /* seconds until the first is ended; 0: never */
};

/* A process to end. */
struct idle_victim {
	char member[MEMBER_NAME_SIZE];
	unsigned gpu;
	pid_t pid;                 /* host */
	pid_t ns_pid;              /* inside the container */
	unsigned long long start_ticks;
	char command[PROCINFO_COMMAND_MAX];
	uint32_t idle_seconds;
};

/* A member's idle time on a GPU that ended: the GPU is used, or let go. */
struct idle_ended {
	char member[MEMBER_NAME_SIZE];
	unsigned gpu;
};

/* What one reading brought; the arrays grow and are reused. */
struct idle_events {
	struct idle_notice *notices;
	size_t nnotices, notices_cap;
	struct idle_victim *victims;
	size_t nvictims, victims_cap;
	struct idle_ended *ended;
	size_t nended, ended_cap;
};
void idle_events_free(struct idle_events *ev);

struct idle_tracker;
int idle_tracker_new(const struct idle_settings *settings, struct idle_tracker **out);
void idle_tracker_free(struct idle_tracker *t);
/* One reading, at now_ms of a monotonic clock: s's processes get
 * idle_seconds and idle; what follows from it replaces ev's contents.
 * -ENOMEM leaves the tracker as it was. */
int idle_tracker_update(struct idle_tracker *t, struct sample *s, long long now_ms,
			struct idle_events *ev);

/* The GPUs of s (by index) a reservation counts idle: read, at 0 %
 * utilisation, and every process on it marked idle or holding less than
 * memory_min (idle_memory_min).  Call after idle_tracker_update(). */
uint64_t idle_gpus(const struct sample *s, uint64_t memory_min);

/* The agent's side: the tracker fed by the collector's every reading,
 * its notices posted to the member and the webhook, its victims ended. */
struct idle;
int idle_open(struct agent *a, struct idle **out);
void idle_close(struct idle *i);
/* Before s is published: mark its idle processes, and act on them; tell
 * the reservations which GPUs are idle (reserve_idle_release). */
void idle_observe(struct idle *i, struct sample *s);

/* ---- reclaim.c: idle processes ended --------------------------------------- */

struct reclaim;
int reclaim_new(uint32_t grace_seconds, struct reclaim **out);
void reclaim_free(struct reclaim *r);
/* SIGTERM to v's process, through a pidfd, if it is still that process
 * (its pid, start time and container); logged.  -ESRCH when it is gone. */
int reclaim_start(struct reclaim *r, const struct idle_victim *v, long long now_ms);
/* SIGKILL to each one still running grace seconds after its SIGTERM;
 * each end logged, then forgotten. */
void reclaim_tick(struct reclaim *r, long long now_ms);

/* ---- collector.c: the agent's reading of the server, every interval -------- */

struct collector;

/* Start the sampling thread (NVML opened there; a server without it is
 * sampled without GPUs).  history may be NULL. */
int collector_start(struct agent *a, struct history *history, struct collector **out);
/* The same without the thread: the caller ticks (benchmarks, tests). */
int collector_open(struct agent *a, struct history *history, struct collector **out);
void collector_stop(struct collector *s);
/* A copy of the newest reading (caller calls sample_free); -EAGAIN before
 * the first. */
int collector_latest(struct collector *s, struct sample *out);
/* One tick, as the thread does it (benchmarks, tests): read, attribute,
 * store as the newest.  CPU time of the call into *cpu_ns when not NULL. */
int collector_tick(struct collector *s, uint64_t *cpu_ns);

/* ---- nvmlpids.c: each container's pid map for the NVML interposer -------- */

struct nvmlpids;
struct gpubox_config;
int nvmlpids_open(struct nvmlpids **out);
/* Remove the maps written (cfg may be NULL: none removed), then free p. */
void nvmlpids_close(struct nvmlpids *p, const struct gpubox_config *cfg);
/* Write the map of every running container of the reading s into its
 * guest directory, when it changed or at the heartbeat (nvml_interposer
 * off: none). */
void nvmlpids_publish(struct nvmlpids *p, const struct gpubox_config *cfg, const struct sample *s);

/* ---- prometheus.c: /metrics in Prometheus' text format -------------------- */

/* The exposition text of a sample (caller frees): DCGM-like GPU metrics
 * (DCGM_FI_DEV_GPU_UTIL, DCGM_FI_DEV_FB_USED, ...) labelled gpu, uuid,
 * server; per member gpubox_member_gpu_memory_bytes and
 * gpubox_member_gpu_processes (labels member, gpu, uuid, server; never a
 * pid); host and container gauges.  show_members false: member labels are
 * left out of the per-member metrics (summed per GPU instead). */
char *prometheus_render(const struct sample *s, bool show_members);

/* ---- httpd.c: the agent's HTTP server ------------------------------------- */

struct httpd;
/* Serve GET /metrics and the hub's /api/v1 on cfg->metrics_listen ("HOST:PORT"); a bearer token
 * (cfg->metrics_token_file) is required unless the address is loopback.
 * Errors are logged and returned. */
int httpd_start(struct agent *a, struct httpd **out);
void httpd_stop(struct httpd *m);

#endif
