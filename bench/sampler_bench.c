/* SPDX-License-Identifier: MIT */
/*
 * The sampler's cost per tick (bench/sampler runs it).  The GPUs and their
 * processes come from the fake libnvidia-ml.so.1 (FAKE_NVML_STATE), the
 * processes are real and sit in real cgroups named like LXC's, and the
 * members are real records in a throw-away database.  Both are measured in
 * the same run, in CPU time of the calling thread:
 *
 *   gpubox:   collector_tick(), which reads what does not change once per
 *             process and follows the process with a pidfd;
 *   baseline: the same tick reading every process's /proc files again
 *             (what a script polling /proc does), i.e. procinfo_read()
 *             per process per tick on top of everything else.
 *
 * Usage: bench-sampler STATE_DIR MEMBER_PREFIX MEMBERS TICKS
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "monitor/monitor.h"
#include "monitor/procinfo.h"
#include "state/state.h"
#include "banned.h"

static uint64_t bench_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int bench_compare(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void bench_report(const char *what, uint64_t *ns, size_t n)
{
	uint64_t sum = 0;

	qsort(ns, n, sizeof(*ns), bench_compare);
	for (size_t i = 0; i < n; i++)
		sum += ns[i];
	printf("%s median_us=%.1f mean_us=%.1f p99_us=%.1f\n", what, ns[n / 2] / 1000.0,
	       (double)sum / (double)n / 1000.0, ns[n * 99 / 100] / 1000.0);
}

static int bench_members(struct agent *a, const char *prefix, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		struct member_record rec = { .uid = 60000 + i, .subid_base = 3000000000u + i * 65536u,
					     .ssh_port = 60000 + i, .address_index = i };

		snprintf(rec.name, sizeof(rec.name), "%s%u", prefix, i);
		if (db_member_insert(a->db, &rec) < 0)
			return -EIO;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static struct agent agent;
	struct collector *sampler;
	struct sample s;
	uint64_t *gpubox_ns, *baseline_ns;
	char path[PATH_MAX];
	unsigned members, ticks;
	size_t procs = 0, attributed = 0;

	if (argc != 5 || (members = (unsigned)atoi(argv[3])) == 0 || (ticks = (unsigned)atoi(argv[4])) < 10) {
		fprintf(stderr, "usage: bench-sampler STATE_DIR MEMBER_PREFIX MEMBERS TICKS\n");
		return 2;
	}
	config_set_defaults(&agent.cfg);
	snprintf(agent.cfg.state_dir, sizeof(agent.cfg.state_dir), "%s", argv[1]);
	snprintf(path, sizeof(path), "%s/state.db", argv[1]);
	if (db_open(path, &agent.db) < 0 || bench_members(&agent, argv[2], members) < 0)
		return 1;
	if (collector_open(&agent, NULL, &sampler) < 0)
		return 1;
	gpubox_ns = calloc(ticks, sizeof(*gpubox_ns));
	baseline_ns = calloc(ticks, sizeof(*baseline_ns));
	if (!gpubox_ns || !baseline_ns)
		return 1;
	/* Warm up: NVML opened, processes known, member list read. */
	for (int i = 0; i < 3; i++)
		collector_tick(sampler, NULL);
	for (unsigned i = 0; i < ticks; i++)
		collector_tick(sampler, &gpubox_ns[i]);
	for (unsigned i = 0; i < ticks; i++) {
		uint64_t before, tick_ns;

		collector_tick(sampler, &tick_ns);
		if (collector_latest(sampler, &s) < 0)
			return 1;
		before = bench_cpu_ns();
		for (size_t p = 0; p < s.nprocs; p++) {
			struct procinfo info;

			procinfo_read(s.procs[p].pid, &info);
		}
		baseline_ns[i] = tick_ns + bench_cpu_ns() - before;
		sample_free(&s);
	}
	if (collector_latest(sampler, &s) < 0)
		return 1;
	procs = s.nprocs;
	for (size_t p = 0; p < s.nprocs; p++)
		attributed += s.procs[p].member[0] != '\0';
	printf("gpus=%zu processes=%zu attributed=%zu containers=%zu ticks=%u\n", s.ngpus, procs,
	       attributed, s.ncontainers, ticks);
	sample_free(&s);
	bench_report("gpubox", gpubox_ns, ticks);
	bench_report("baseline", baseline_ns, ticks);
	collector_stop(sampler);
	db_close(agent.db);
	return 0;
}
