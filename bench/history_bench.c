/* SPDX-License-Identifier: MIT */
/*
 * history_range() at full resolution (bench/history runs it): an hour of
 * one server's 8 GPUs, one tick a second, recorded with history_record()
 * into a throw-away history.db, then read back as the monitor's chart
 * asks for it (all GPUs, the default 500 points).  Both are measured in
 * the same run, RUNS times each, alternating, in wall time and in CPU time
 * of the calling thread (which another load on the machine disturbs less):
 *
 *   gpubox:   history_range(), which reads the range's packed ticks (a
 *             row per tick) and groups their rows itself as they come in
 *             the order of time;
 *   baseline: the same call grouping in SQL as it did before
 *             (history_group_in_sql(): a GROUP BY over the views of the
 *             rows, which sorts every one).
 *
 * Both answers are checked to be the same JSON.
 *
 * Usage: bench-history DIR PROCESSES [SECONDS [RUNS]]
 *   PROCESSES: GPU processes per tick, spread over the GPUs and 4 members
 *   (bench/monitor's servers have 6): process p is member p / 8 on GPU p % 8, one
 *   member row per tick each.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpu/gpu.h"
#include "monitor/monitor.h"
#include "cleanup.h"
#include "banned.h"

#define BENCH_GPUS 8
#define BENCH_PROCS_MAX 256
/* 2026-01-05 10:00:00 UTC: a minute's start. */
#define BENCH_T0 1767607200000LL

struct bench_tick {
	struct sample s;
	struct nvml_gpu gpus[BENCH_GPUS];
	struct sample_process procs[BENCH_PROCS_MAX];
};

static double bench_ms(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double bench_now_ms(void)
{
	return bench_ms(CLOCK_MONOTONIC);
}

/* One measurement: wall and CPU milliseconds. */
struct bench_time {
	double wall, cpu;
};

static int bench_compare(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void bench_fill(struct bench_tick *k, int i, unsigned procs)
{
	memset(k, 0, sizeof(*k));
	k->s.time_ms = BENCH_T0 + i * 1000LL;
	snprintf(k->s.server, sizeof(k->s.server), "bench");
	k->s.gpu_ok = true;
	k->s.gpus = k->gpus;
	k->s.procs = k->procs;
	k->s.host.ncpus = 64;
	k->s.host.cpu_percent = 20.0 + i % 50;
	k->s.host.mem_total = 512ULL << 30;
	k->s.host.mem_available = 300ULL << 30;
	k->s.host.load[0] = 3.0 + (i % 10) / 10.0;
	k->s.ngpus = BENCH_GPUS;
	for (unsigned g = 0; g < BENCH_GPUS; g++) {
		struct nvml_gpu *gpu = &k->gpus[g];

		gpu->index = g;
		gpu->minor = g;
		snprintf(gpu->uuid, sizeof(gpu->uuid), "GPU-%08u-bench", g);
		gpu->util_gpu = (int)((i * 7 + g * 13) % 101);
		gpu->util_mem = -1;
		gpu->mem_total = 80ULL << 30;
		gpu->temperature = 40 + (int)((i + g) % 30);
		gpu->power_mw = 100000 + (unsigned)((i * 31 + g) % 500) * 1000;
	}
	k->s.nprocs = procs;
	for (unsigned p = 0; p < procs; p++) {
		struct sample_process *sp = &k->procs[p];

		sp->gpu = p % BENCH_GPUS;
		sp->pid = sp->ns_pid = 1000 + (pid_t)p;
		snprintf(sp->member, sizeof(sp->member), "member%u", p / BENCH_GPUS);
		snprintf(sp->command, sizeof(sp->command), "python train.py");
		sp->mem_used = (uint64_t)(1 + (i + p) % 40) << 30;
		sp->sm_util = (int)((i + p * 3) % 100);
		k->gpus[sp->gpu].mem_used += sp->mem_used;
	}
}

static int bench_record(struct history *h, int seconds, unsigned procs)
{
	struct bench_tick *k = calloc(1, sizeof(*k));
	int ret = k ? 0 : -ENOMEM;

	for (int i = 0; ret == 0 && i < seconds; i++) {
		bench_fill(k, i, procs);
		ret = history_record(h, &k->s);
	}
	free(k);
	return ret;
}

/* One timed range, grouped here or in SQL; *text: its JSON. */
static int bench_range(struct history *h, int seconds, bool in_sql, struct bench_time *t,
		       char **text)
{
	json_t *r = NULL;
	double wall, cpu;
	int ret;

	history_group_in_sql(h, in_sql);
	wall = bench_now_ms();
	cpu = bench_ms(CLOCK_THREAD_CPUTIME_ID);
	ret = history_range(h, -1, BENCH_T0, BENCH_T0 + seconds * 1000LL, 0, &r);
	t->cpu = bench_ms(CLOCK_THREAD_CPUTIME_ID) - cpu;
	t->wall = bench_now_ms() - wall;
	if (ret == 0) {
		*text = json_dumps(r, JSON_COMPACT);
		ret = *text ? 0 : -ENOMEM;
	}
	json_decref(r);
	return ret;
}

static int bench_runs(struct history *h, int seconds, unsigned runs, struct bench_time *ours,
		      struct bench_time *sql)
{
	for (unsigned i = 0; i < runs; i++) {
		__do_free char *a = NULL, *b = NULL;

		if (bench_range(h, seconds, false, &ours[i], &a) < 0 ||
		    bench_range(h, seconds, true, &sql[i], &b) < 0)
			return -EIO;
		if (strcmp(a, b) != 0) {
			fprintf(stderr, "bench-history: the two answers differ\n");
			return -EPROTO;
		}
	}
	return 0;
}

/* The median of one of the two clocks; sorts ms. */
static double bench_median(const struct bench_time *t, bool cpu, double *ms, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		ms[i] = cpu ? t[i].cpu : t[i].wall;
	qsort(ms, n, sizeof(*ms), bench_compare);
	return ms[n / 2];
}

static void bench_report(const char *what, const struct bench_time *t, double *ms, unsigned n,
			 double *wall, double *cpu)
{
	*cpu = bench_median(t, true, ms, n);
	*wall = bench_median(t, false, ms, n);
	printf("%s median_ms=%.2f min_ms=%.2f max_ms=%.2f cpu_median_ms=%.2f\n", what, *wall, ms[0],
	       ms[n - 1], *cpu);
}

int main(int argc, char **argv)
{
	struct history_limits limits = { .full_seconds = 86400, .minute_days = 30 };
	struct history *h = NULL;
	char path[4096];
	unsigned procs, runs;
	int seconds;
	struct bench_time *ours, *sql;
	double *ms, t0, ow, oc, bw, bc;

	if (argc < 3 || argc > 5) {
		fprintf(stderr, "usage: bench-history DIR PROCESSES [SECONDS [RUNS]]\n");
		return 2;
	}
	procs = (unsigned)strtoul(argv[2], NULL, 10);
	seconds = argc > 3 ? atoi(argv[3]) : 3600;
	runs = argc > 4 ? (unsigned)strtoul(argv[4], NULL, 10) : 15;
	if (procs > BENCH_PROCS_MAX || seconds < 60 || runs < 1 || runs > 1000 ||
	    snprintf(path, sizeof(path), "%s/history.db", argv[1]) >= (int)sizeof(path))
		return 2;
	ours = calloc(runs, sizeof(*ours));
	sql = calloc(runs, sizeof(*sql));
	ms = calloc(runs, sizeof(*ms));
	if (!ours || !sql || !ms || history_open(path, &limits, &h) < 0)
		return 1;
	t0 = bench_now_ms();
	if (bench_record(h, seconds, procs) < 0)
		return 1;
	printf("shape gpus=%d processes=%u seconds=%d rows=%d record_s=%.1f\n", BENCH_GPUS, procs,
	       seconds, seconds * (BENCH_GPUS + (int)procs + 1), (bench_now_ms() - t0) / 1e3);
	if (bench_runs(h, seconds, runs, ours, sql) < 0)
		return 1;
	bench_report("gpubox", ours, ms, runs, &ow, &oc);
	bench_report("baseline", sql, ms, runs, &bw, &bc);
	printf("ratio (baseline / gpubox, median): wall %.2f, cpu %.2f\n", bw / ow, bc / oc);
	history_close(h);
	free(ours);
	free(sql);
	free(ms);
	return 0;
}
