/* SPDX-License-Identifier: MIT */
/*
 * bench-nvmlshim FAKE INTERPOSER [CALLS]: one NVML process query,
 * nvmlDeviceGetComputeRunningProcesses_v3 as nvidia-smi asks it (a count,
 * then the entries), on the fake library directly (the baseline) and
 * through the interposer, in the same process, in alternating rounds;
 * the median of CALLS (10000) timed calls of each.
 *
 * Both are loaded by their paths: the interposer's dependency
 * (libgpubox-nvml-real.so, found through LD_LIBRARY_PATH) is the fake
 * already loaded, so both measure the same fake.  The environment names
 * the fake's state and the pid map (FAKE_NVML_STATE, GPUBOX_NVML_PIDMAP);
 * bench/nvmlshim sets them up.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpu/nvml_abi.h"
#include "banned.h"

#define ROUNDS 10

typedef nvmlReturn_t list_fn(nvmlDevice_t, unsigned *, nvmlProcessInfo_t *);

struct side {
	const char *name;
	list_fn *query;
	nvmlDevice_t dev;
	unsigned long long *ns;
	size_t n;
	unsigned last_count;
};

static unsigned long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec;
}

static int open_side(struct side *s, const char *path)
{
	void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	nvmlInit_v2_fn *init;
	nvmlDeviceGetHandleByIndex_v2_fn *handle;

	if (!lib) {
		fprintf(stderr, "bench-nvmlshim: %s\n", dlerror());
		return -1;
	}
	init = (nvmlInit_v2_fn *)dlsym(lib, "nvmlInit_v2");
	handle = (nvmlDeviceGetHandleByIndex_v2_fn *)dlsym(lib, "nvmlDeviceGetHandleByIndex_v2");
	s->query = (list_fn *)dlsym(lib, "nvmlDeviceGetComputeRunningProcesses_v3");
	if (!init || !handle || !s->query || init() != NVML_SUCCESS || handle(0, &s->dev) != NVML_SUCCESS) {
		fprintf(stderr, "bench-nvmlshim: %s does not answer\n", path);
		return -1;
	}
	return 0;
}

/* One query as nvidia-smi makes it, timed. */
static void one_call(struct side *s)
{
	nvmlProcessInfo_t infos[64];
	unsigned count = 0;
	unsigned long long t0 = now_ns();

	if (s->query(s->dev, &count, NULL) == NVML_ERROR_INSUFFICIENT_SIZE) {
		count = 64;
		s->query(s->dev, &count, infos);
	}
	s->ns[s->n++] = now_ns() - t0;
	s->last_count = count;
}

static int compare(const void *a, const void *b)
{
	unsigned long long x = *(const unsigned long long *)a, y = *(const unsigned long long *)b;

	return x < y ? -1 : x > y;
}

static double median_us(struct side *s)
{
	qsort(s->ns, s->n, sizeof(*s->ns), compare);
	return (double)s->ns[s->n / 2] / 1000.0;
}

int main(int argc, char **argv)
{
	struct side direct = { .name = "fake library directly" }, shim = { .name = "through the interposer" };
	size_t calls = argc > 3 ? strtoul(argv[3], NULL, 10) : 10000;
	double base, through, goal;

	if (argc < 3 || calls < ROUNDS) {
		fprintf(stderr, "usage: bench-nvmlshim FAKE INTERPOSER [CALLS]\n");
		return 2;
	}
	direct.ns = calloc(calls, sizeof(*direct.ns));
	shim.ns = calloc(calls, sizeof(*shim.ns));
	if (!direct.ns || !shim.ns || open_side(&direct, argv[1]) < 0 || open_side(&shim, argv[2]) < 0)
		return 1;
	if (direct.query == shim.query) {
		fprintf(stderr, "bench-nvmlshim: the interposer is not in the way\n");
		return 1;
	}
	for (int r = 0; r < ROUNDS; r++)
		for (size_t i = 0; i < calls / ROUNDS; i++) {
			one_call(&direct);
			one_call(&shim);
		}
	base = median_us(&direct);
	through = median_us(&shim);
	goal = 1.2 * base + 20.0;
	printf("processes listed: %u directly, %u through the interposer\n", direct.last_count,
	       shim.last_count);
	printf("%-24s median %8.3f us of %zu calls\n", direct.name, base, direct.n);
	printf("%-24s median %8.3f us of %zu calls\n", shim.name, through, shim.n);
	printf("ratio %.2fx the baseline; goal <= 1.2x + 20 us = %.3f us: %s\n", through / base, goal,
	       through <= goal ? "met" : "NOT met");
	return 0;
}
