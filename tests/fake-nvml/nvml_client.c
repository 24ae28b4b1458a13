/* SPDX-License-Identifier: MIT */
/*
 * An NVML client as nvidia-smi is one: it dlopen()s libnvidia-ml.so.1 by
 * its soname, looks every function up with dlsym() on that handle, asks
 * for the running processes with a count of 0 first, then with room for
 * more, and prints one line per answer for the tests to compare:
 *
 *   interposer yes|no              gpubox_nvml_interposer is in the way
 *   driver VERSION
 *   gpu I name=NAME uuid=UUID mem_used=N mem_total=N util=N
 *   novelty I rc=RC value=N        nvmlDeviceGetFakeNovelty (unknown to gpubox)
 *   QUERY I rc=RC pids=PID/MEM,... the process queries (pids in order)
 *   acct_stats I PID rc=RC mem=N   for each pid of acct_pids, and PID 1
 *
 * A function the library does not export prints rc=missing.  Exit 0
 * unless the library cannot be loaded or initialised.
 */
#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu/nvml_abi.h"
#include "banned.h"

#define CLIENT_MAX 256

typedef nvmlReturn_t list_fn(nvmlDevice_t, unsigned *, void *);
typedef nvmlReturn_t novelty_fn(nvmlDevice_t, unsigned long long *);
typedef nvmlReturn_t stats_fn(nvmlDevice_t, unsigned, void *);
typedef nvmlReturn_t sample_fn(nvmlDevice_t, void *, unsigned *, unsigned long long);
typedef nvmlReturn_t struct_fn(nvmlDevice_t, void *);

static void *lib;

static void *client_fn(const char *name)
{
	return dlsym(lib, name);
}

/* Print entries of size bytes: the pid at pid_at, the memory at mem_at
 * (mem_at < 0: none). */
static void client_print(const char *query, unsigned gpu, nvmlReturn_t rc, const unsigned char *entries,
			 unsigned count, size_t size, size_t pid_at, long mem_at)
{
	printf("%s %u rc=%d pids=", query, gpu, rc);
	for (unsigned i = 0; rc == NVML_SUCCESS && i < count; i++) {
		unsigned pid;
		unsigned long long mem = 0;

		memcpy(&pid, entries + i * size + pid_at, sizeof(pid));
		if (mem_at >= 0)
			memcpy(&mem, entries + i * size + (size_t)mem_at, sizeof(mem));
		printf("%s%u/%llu", i ? "," : "", pid, mem);
	}
	putchar('\n');
}

/* A running-process list, as nvidia-smi asks: how many, then with room. */
static void client_list(const char *query, const char *name, nvmlDevice_t dev, unsigned gpu,
			size_t size, long mem_at)
{
	static unsigned char entries[CLIENT_MAX * 40];
	list_fn *fn = (list_fn *)client_fn(name);
	unsigned count = 0;
	nvmlReturn_t rc;

	if (!fn) {
		printf("%s %u rc=missing\n", query, gpu);
		return;
	}
	rc = fn(dev, &count, NULL);
	if (rc == NVML_ERROR_INSUFFICIENT_SIZE) {
		count = count + 8 < CLIENT_MAX ? count + 8 : CLIENT_MAX;
		rc = fn(dev, &count, entries);
	}
	client_print(query, gpu, rc, entries, count, size, 0, mem_at);
}

static void client_samples(nvmlDevice_t dev, unsigned gpu)
{
	static unsigned char samples[CLIENT_MAX * 32];
	sample_fn *fn = (sample_fn *)client_fn("nvmlDeviceGetProcessUtilization");
	unsigned count = 0;
	nvmlReturn_t rc;

	if (!fn) {
		printf("util %u rc=missing\n", gpu);
		return;
	}
	rc = fn(dev, NULL, &count, 0);
	if (rc == NVML_ERROR_INSUFFICIENT_SIZE) {
		count = count + 8 < CLIENT_MAX ? count + 8 : CLIENT_MAX;
		rc = fn(dev, samples, &count, 0);
	}
	client_print("util", gpu, rc, samples, count, 32, 0, -1);
}

/* The struct-taking queries: {version, count, ..., array}. */
static void client_struct(const char *query, const char *name, nvmlDevice_t dev, unsigned gpu,
			  unsigned mode)
{
	static unsigned char entries[CLIENT_MAX * 40];
	struct_fn *fn = (struct_fn *)client_fn(name);
	bool detail = strcmp(query, "detail") == 0;
	struct {
		unsigned version, a, b;
		void *array;
	} detail_list = { 0x1000018u, mode, 0, NULL };
	struct {
		unsigned version, count;
		unsigned long long last_seen;
		void *array;
	} util_info = { 0x1000018u, 0, 0, NULL };
	unsigned *count = detail ? &detail_list.b : &util_info.count;
	void **array = detail ? &detail_list.array : &util_info.array;
	void *arg = detail ? (void *)&detail_list : (void *)&util_info;
	nvmlReturn_t rc;

	if (!fn) {
		printf("%s %u rc=missing\n", query, gpu);
		return;
	}
	rc = fn(dev, arg);
	if (rc == NVML_ERROR_INSUFFICIENT_SIZE) {
		*count = *count + 8 < CLIENT_MAX ? *count + 8 : CLIENT_MAX;
		*array = entries;
		rc = fn(dev, arg);
	}
	client_print(query, gpu, rc, entries, *count, detail ? 32 : 40, detail ? 0 : 8, detail ? 8 : -1);
}

static void client_accounting(nvmlDevice_t dev, unsigned gpu)
{
	static unsigned pids[CLIENT_MAX];
	list_fn *fn = (list_fn *)client_fn("nvmlDeviceGetAccountingPids");
	stats_fn *stats = (stats_fn *)client_fn("nvmlDeviceGetAccountingStats");
	unsigned count = CLIENT_MAX;
	unsigned char st[56];
	nvmlReturn_t rc;

	if (!fn || !stats) {
		printf("acct_pids %u rc=missing\n", gpu);
		return;
	}
	rc = fn(dev, &count, pids);
	client_print("acct_pids", gpu, rc, (unsigned char *)pids, count, sizeof(unsigned), 0, -1);
	for (unsigned i = 0; rc == NVML_SUCCESS && i <= count && i < CLIENT_MAX; i++) {
		unsigned pid = i < count ? pids[i] : 1;
		unsigned long long mem = 0;
		nvmlReturn_t r = stats(dev, pid, st);

		if (r == NVML_SUCCESS)
			memcpy(&mem, st + 8, sizeof(mem));
		printf("acct_stats %u %u rc=%d mem=%llu\n", gpu, pid, r, mem);
	}
}

static void client_gpu(nvmlDevice_t dev, unsigned gpu)
{
	nvmlDeviceGetName_fn *name_fn = (nvmlDeviceGetName_fn *)client_fn("nvmlDeviceGetName");
	nvmlDeviceGetUUID_fn *uuid_fn = (nvmlDeviceGetUUID_fn *)client_fn("nvmlDeviceGetUUID");
	nvmlDeviceGetMemoryInfo_fn *mem_fn = (nvmlDeviceGetMemoryInfo_fn *)client_fn("nvmlDeviceGetMemoryInfo");
	nvmlDeviceGetUtilizationRates_fn *util_fn =
		(nvmlDeviceGetUtilizationRates_fn *)client_fn("nvmlDeviceGetUtilizationRates");
	novelty_fn *novelty = (novelty_fn *)client_fn("nvmlDeviceGetFakeNovelty");
	char name[96] = "", uuid[96] = "";
	nvmlMemory_t mem = { 0 };
	nvmlUtilization_t util = { 0 };
	unsigned long long value = 0;

	if (name_fn)
		name_fn(dev, name, sizeof(name));
	if (uuid_fn)
		uuid_fn(dev, uuid, sizeof(uuid));
	if (mem_fn)
		mem_fn(dev, &mem);
	if (util_fn)
		util_fn(dev, &util);
	printf("gpu %u name=%s uuid=%s mem_used=%llu mem_total=%llu util=%u\n", gpu, name, uuid,
	       mem.used, mem.total, util.gpu);
	if (novelty) {
		nvmlReturn_t rc = novelty(dev, &value);

		printf("novelty %u rc=%d value=%llu\n", gpu, rc, value);
	} else
		printf("novelty %u rc=missing\n", gpu);
}

int main(void)
{
	nvmlInit_v2_fn *init;
	nvmlDeviceGetCount_v2_fn *count_fn;
	nvmlDeviceGetHandleByIndex_v2_fn *handle_fn;
	nvmlSystemGetDriverVersion_fn *version_fn;
	char version[80] = "";
	unsigned count = 0;

	lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		fprintf(stderr, "nvml_client: %s\n", dlerror());
		return 1;
	}
	init = (nvmlInit_v2_fn *)client_fn("nvmlInit_v2");
	count_fn = (nvmlDeviceGetCount_v2_fn *)client_fn("nvmlDeviceGetCount_v2");
	handle_fn = (nvmlDeviceGetHandleByIndex_v2_fn *)client_fn("nvmlDeviceGetHandleByIndex_v2");
	version_fn = (nvmlSystemGetDriverVersion_fn *)client_fn("nvmlSystemGetDriverVersion");
	if (!init || !count_fn || !handle_fn || !version_fn || init() != NVML_SUCCESS ||
	    count_fn(&count) != NVML_SUCCESS) {
		fprintf(stderr, "nvml_client: NVML cannot be initialised\n");
		return 1;
	}
	printf("interposer %s\n", client_fn("gpubox_nvml_interposer") ? "yes" : "no");
	version_fn(version, sizeof(version));
	printf("driver %s\n", version);
	for (unsigned i = 0; i < count; i++) {
		nvmlDevice_t dev;

		if (handle_fn(i, &dev) != NVML_SUCCESS)
			continue;
		client_gpu(dev, i);
		client_list("compute_v3", "nvmlDeviceGetComputeRunningProcesses_v3", dev, i, 24, 8);
		client_list("compute_v2", "nvmlDeviceGetComputeRunningProcesses_v2", dev, i, 24, 8);
		client_list("compute_v1", "nvmlDeviceGetComputeRunningProcesses", dev, i, 16, 8);
		client_list("graphics_v3", "nvmlDeviceGetGraphicsRunningProcesses_v3", dev, i, 24, 8);
		client_list("mps_v3", "nvmlDeviceGetMPSComputeRunningProcesses_v3", dev, i, 24, 8);
		client_samples(dev, i);
		client_struct("utilinfo", "nvmlDeviceGetProcessesUtilizationInfo", dev, i, 0);
		client_struct("detail", "nvmlDeviceGetRunningProcessDetailList", dev, i, 0);
		client_accounting(dev, i);
	}
	((nvmlShutdown_fn *)client_fn("nvmlShutdown"))();
	return 0;
}
