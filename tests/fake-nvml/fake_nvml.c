/* SPDX-License-Identifier: MIT */
/*
 * A fake libnvidia-ml.so.1 for the tests, on machines without a GPU: it
 * exports the NVML functions that src/agent/nvml.c uses, with the real
 * signatures, and answers from a text file, so that a test can describe
 * GPUs and processes, and change them while the agent reads them.  The
 * agent's own dlopen() finds it through LD_LIBRARY_PATH.
 *
 * Built twice from this file: the build directory's libnvidia-ml.so.1 is a
 * recent driver (24-byte process entries; exports both
 * nvmlDeviceGetConfComputeMemSizeInfo and
 * nvmlDeviceGetRunningProcessDetailList); wide/libnvidia-ml.so.1, built
 * with -DFAKE_NVML_535, is a driver 535.43-535.86: it writes 32-byte
 * process entries through the _v3 functions and lacks
 * nvmlDeviceGetRunningProcessDetailList.
 *
 * Built a third time, old/libnvidia-ml.so.1 with -DFAKE_NVML_OLD: a driver
 * older than 510, without the _v3 process functions (nor the two symbols
 * above).  Every build also exports nvmlDeviceGetFakeNovelty, a function
 * no other part of gpubox knows of (the NVML interposer must pass it on
 * unchanged), and the process queries the interposer rewrites: the
 * running processes v1 (16-byte entries), _v2 and _v3 of compute,
 * graphics and MPS, process utilisation (both), the accounting pids and
 * stats, and the process detail list.
 *
 * The file is named by $FAKE_NVML_STATE.  It is read again when its name,
 * inode, mtime or size changed, checked in nvmlInit_v2 and
 * nvmlDeviceGetCount_v2 only (as a real GPU's list is fixed between
 * counts); tests replace it atomically with rename().  No $FAKE_NVML_STATE:
 * nvmlInit_v2 says DRIVER_NOT_LOADED.  A file that cannot be read or
 * parsed is reported on stderr and every call answers UNKNOWN.
 *
 * One item a line; '#' starts a comment; words are separated by blanks:
 *
 *   driver 580.65.06        nvmlSystemGetDriverVersion (default 580.65.06)
 *   init ok                 what nvmlInit_v2 answers: ok, or an error name
 *                           (DRIVER_NOT_LOADED, NO_PERMISSION, UNKNOWN...)
 *                           or number
 *   layout 24|32            process entry size written (default 24, 32
 *                           with -DFAKE_NVML_535)
 *   memory_v2 unsupported   nvmlDeviceGetMemoryInfo_v2 answers NOT_SUPPORTED
 *   gpu INDEX uuid=GPU-... name=Fake_H100_80GB minor=N bus=00000000:17:00.0
 *       util=N memutil=N total=BYTES used=BYTES temp=C power=MW [mig=1]
 *       [lost=1]
 *   proc GPU pid=PID mem=BYTES|na sm=PCT [oldsm=PCT]
 *        [type=compute|graphics|both|mps]
 *
 * GPU indexes run from 0 without gaps (64 at most); '_' in a name is a
 * space.  Every key has a default (uuid GPU-fake-INDEX, minor INDEX...).
 * Up to 4096 processes: sm < 0 (the default) means no utilisation sample.
 * lost=1: every call on the device answers GPU_IS_LOST.  mig=1: MIG mode
 * on, utilisation NOT_SUPPORTED.  nvmlDeviceGetProcessUtilization returns
 * one sample per process with sm >= 0, stamped now (µs), NOT_FOUND when
 * there is none or lastSeenTimeStamp is not older than now; oldsm adds
 * a sample 100 ms older, listed after the current one (a driver's samples
 * need not come in order).
 *
 * For the tests' own checks (found with dlsym): fake_nvml_calls(name), how
 * many times an NVML function was called, and fake_nvml_last_seen(index),
 * the lastSeenTimeStamp last passed for a GPU.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "gpu/nvml_abi.h"
#include "banned.h"

/* ---- the NVML declarations: nvml_abi.h, and what only the fake needs ---- */

#define NVML_VALUE_NOT_AVAILABLE (~0ULL)

/* What drivers 535.43-535.86 wrote through the same _v3 functions. */
typedef struct {
	unsigned pid;
	unsigned long long usedGpuMemory;
	unsigned gpuInstanceId, computeInstanceId;
	unsigned long long usedGpuCcProtectedMemory;
} fake_wide_process_info;

/* Exported only for nvml.c to tell the drivers apart, never called by it. */
typedef struct {
	unsigned long long protectedMemSizeKib, unprotectedMemSizeKib;
} nvmlConfComputeMemSizeInfo_t;

typedef struct {
	unsigned version, mode, numProcArrayEntries;
	void *procArray;
} nvmlProcessDetailList_t;

typedef struct {
	unsigned pid;
	unsigned long long usedGpuMemory;
	unsigned gpuInstanceId, computeInstanceId;
	unsigned long long usedGpuCcProtectedMemory;
} fake_process_detail;

typedef struct {
	unsigned pid;
	unsigned long long usedGpuMemory;
} fake_process_info_v1;

typedef struct {
	unsigned version, processSamplesCount;
	unsigned long long lastSeenTimeStamp;
	void *procUtilArray;
} nvmlProcessesUtilizationInfo_t;

typedef struct {
	unsigned long long timeStamp;
	unsigned pid, smUtil, memUtil, encUtil, decUtil, jpgUtil, ofaUtil;
} fake_process_utilization_info;

typedef struct {
	unsigned gpuUtilization, memoryUtilization;
	unsigned long long maxMemoryUsage, time, startTime;
	unsigned isRunning, reserved[5];
} nvmlAccountingStats_t;

#define FAKE_DETAIL_LIST_V1 0x1000018u
#define FAKE_UTILIZATION_INFO_V1 0x1000018u

_Static_assert(sizeof(fake_process_detail) == 32, "nvmlProcessDetail_v1_t");
_Static_assert(sizeof(fake_process_info_v1) == 16, "nvmlProcessInfo_v1_t");
_Static_assert(sizeof(fake_process_utilization_info) == 40, "nvmlProcessUtilizationInfo_v1_t");
_Static_assert(sizeof(nvmlAccountingStats_t) == 56, "nvmlAccountingStats_t");

_Static_assert(sizeof(fake_wide_process_info) == 32, "32-byte entries");

nvmlInit_v2_fn nvmlInit_v2;
nvmlShutdown_fn nvmlShutdown;
nvmlErrorString_fn nvmlErrorString;
nvmlSystemGetDriverVersion_fn nvmlSystemGetDriverVersion;
nvmlDeviceGetCount_v2_fn nvmlDeviceGetCount_v2;
nvmlDeviceGetHandleByIndex_v2_fn nvmlDeviceGetHandleByIndex_v2;
nvmlDeviceGetName_fn nvmlDeviceGetName;
nvmlDeviceGetUUID_fn nvmlDeviceGetUUID;
nvmlDeviceGetPciInfo_v3_fn nvmlDeviceGetPciInfo_v3;
nvmlDeviceGetMinorNumber_fn nvmlDeviceGetMinorNumber;
nvmlDeviceGetMemoryInfo_fn nvmlDeviceGetMemoryInfo;
nvmlDeviceGetMemoryInfo_v2_fn nvmlDeviceGetMemoryInfo_v2;
nvmlDeviceGetUtilizationRates_fn nvmlDeviceGetUtilizationRates;
nvmlDeviceGetTemperature_fn nvmlDeviceGetTemperature;
nvmlDeviceGetPowerUsage_fn nvmlDeviceGetPowerUsage;
nvmlDeviceGetMigMode_fn nvmlDeviceGetMigMode;
#ifndef FAKE_NVML_OLD
nvmlDeviceGetRunningProcesses_v3_fn nvmlDeviceGetComputeRunningProcesses_v3;
nvmlDeviceGetRunningProcesses_v3_fn nvmlDeviceGetGraphicsRunningProcesses_v3;
nvmlDeviceGetRunningProcesses_v3_fn nvmlDeviceGetMPSComputeRunningProcesses_v3;
#endif
nvmlDeviceGetRunningProcesses_v3_fn nvmlDeviceGetComputeRunningProcesses_v2;
nvmlDeviceGetRunningProcesses_v3_fn nvmlDeviceGetGraphicsRunningProcesses_v2;
nvmlDeviceGetRunningProcesses_v3_fn nvmlDeviceGetMPSComputeRunningProcesses_v2;
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t device, unsigned *count,
						  fake_process_info_v1 *infos);
nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses(nvmlDevice_t device, unsigned *count,
						   fake_process_info_v1 *infos);
nvmlReturn_t nvmlDeviceGetMPSComputeRunningProcesses(nvmlDevice_t device, unsigned *count,
						     fake_process_info_v1 *infos);
nvmlDeviceGetProcessUtilization_fn nvmlDeviceGetProcessUtilization;
nvmlReturn_t nvmlDeviceGetProcessesUtilizationInfo(nvmlDevice_t device, nvmlProcessesUtilizationInfo_t *info);
nvmlReturn_t nvmlDeviceGetAccountingPids(nvmlDevice_t device, unsigned *count, unsigned *pids);
nvmlReturn_t nvmlDeviceGetAccountingStats(nvmlDevice_t device, unsigned pid, nvmlAccountingStats_t *stats);
nvmlReturn_t nvmlDeviceGetFakeNovelty(nvmlDevice_t device, unsigned long long *value);
#ifndef FAKE_NVML_OLD
nvmlReturn_t nvmlDeviceGetConfComputeMemSizeInfo(nvmlDevice_t device, nvmlConfComputeMemSizeInfo_t *info);
#endif
#if !defined(FAKE_NVML_535) && !defined(FAKE_NVML_OLD)
nvmlReturn_t nvmlDeviceGetRunningProcessDetailList(nvmlDevice_t device, nvmlProcessDetailList_t *list);
#endif

unsigned long fake_nvml_calls(const char *function);
unsigned long long fake_nvml_last_seen(unsigned index);

/* ---- the state ---- */

#define FAKE_GPUS_MAX 64
#define FAKE_PROCS_MAX 4096
#define FAKE_TEXT 96
#define FAKE_LINE_MAX 1024

#ifdef FAKE_NVML_535
#define FAKE_LAYOUT_DEFAULT 32
#else
#define FAKE_LAYOUT_DEFAULT 24
#endif

enum { FAKE_COMPUTE = 1, FAKE_GRAPHICS = 2, FAKE_MPS = 4 };

struct fake_gpu {
	char uuid[FAKE_TEXT];
	char name[FAKE_TEXT];
	char bus[32];
	unsigned minor, util, memutil, temp, power;
	unsigned long long total, used;
	bool mig, lost;
	unsigned long long last_seen;
};

struct fake_proc {
	unsigned gpu, pid;
	unsigned long long mem;
	int sm, oldsm;
	unsigned types;
};

struct fake_state {
	bool loaded;
	bool broken;
	char path[4096];
	struct stat st;
	char driver[80];
	nvmlReturn_t init_result;
	unsigned layout;
	bool memory_v2_unsupported;
	unsigned ngpus;
	struct fake_gpu gpus[FAKE_GPUS_MAX];
	unsigned nprocs;
	struct fake_proc procs[FAKE_PROCS_MAX];
};

static struct fake_state fake;
static unsigned fake_init_count;
static pthread_mutex_t fake_lock = PTHREAD_MUTEX_INITIALIZER;

static const struct {
	nvmlReturn_t code;
	const char *name;
	const char *text;
} fake_errors[] = {
	{ 0, "SUCCESS", "Success" },
	{ 1, "UNINITIALIZED", "Uninitialized" },
	{ 2, "INVALID_ARGUMENT", "Invalid Argument" },
	{ 3, "NOT_SUPPORTED", "Not Supported" },
	{ 4, "NO_PERMISSION", "Insufficient Permissions" },
	{ 5, "ALREADY_INITIALIZED", "Already Initialized" },
	{ 6, "NOT_FOUND", "Not Found" },
	{ 7, "INSUFFICIENT_SIZE", "Insufficient Size" },
	{ 9, "DRIVER_NOT_LOADED", "Driver Not Loaded" },
	{ 10, "TIMEOUT", "Timeout" },
	{ 12, "LIBRARY_NOT_FOUND", "NVML Shared Library Not Found" },
	{ 13, "FUNCTION_NOT_FOUND", "Function Not Found" },
	{ 15, "GPU_IS_LOST", "GPU is lost" },
	{ 18, "LIB_RM_VERSION_MISMATCH", "RM has detected an NVML/RM version mismatch." },
	{ 20, "MEMORY", "Insufficient Memory" },
	{ 21, "NO_DATA", "No data" },
	{ 28, "GPU_NOT_FOUND", "GPU not found" },
	{ 999, "UNKNOWN", "Unknown Error" },
};

/* Calls counted for fake_nvml_calls(). */
static const char *const fake_counted[] = {
	"nvmlInit_v2", "nvmlShutdown", "nvmlDeviceGetCount_v2", "nvmlDeviceGetHandleByIndex_v2",
	"nvmlDeviceGetName", "nvmlDeviceGetMemoryInfo", "nvmlDeviceGetMemoryInfo_v2",
	"nvmlDeviceGetComputeRunningProcesses_v3", "nvmlDeviceGetGraphicsRunningProcesses_v3",
	"nvmlDeviceGetProcessUtilization",
};
static unsigned long fake_counts[sizeof(fake_counted) / sizeof(fake_counted[0])];

static void fake_count(const char *function)
{
	for (size_t i = 0; i < sizeof(fake_counted) / sizeof(fake_counted[0]); i++)
		if (strcmp(fake_counted[i], function) == 0)
			fake_counts[i]++;
}

/* ---- parsing the file ---- */

__attribute__((format(printf, 2, 3)))
static bool fake_complain(unsigned line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fake_nvml: %s:%u: ", fake.path, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return false;
}

static bool fake_number(const char *text, unsigned long long max, unsigned long long *out)
{
	char *end;

	errno = 0;
	*out = strtoull(text, &end, 0);
	return text[0] >= '0' && text[0] <= '9' && !*end && errno == 0 && *out <= max;
}

static bool fake_text(char *out, size_t len, const char *value, bool spaces)
{
	if (strlen(value) >= len)
		return false;
	snprintf(out, len, "%s", value);
	for (char *p = out; spaces && *p; p++)
		if (*p == '_')
			*p = ' ';
	return true;
}

static bool fake_gpu_key(struct fake_gpu *g, const char *key, const char *value)
{
	unsigned long long v;

	if (strcmp(key, "uuid") == 0)
		return fake_text(g->uuid, sizeof(g->uuid), value, false);
	if (strcmp(key, "name") == 0)
		return fake_text(g->name, sizeof(g->name), value, true);
	if (strcmp(key, "bus") == 0)
		return fake_text(g->bus, sizeof(g->bus), value, false);
	if (!fake_number(value, ULLONG_MAX, &v))
		return false;
	if (strcmp(key, "total") == 0)
		g->total = v;
	else if (strcmp(key, "used") == 0)
		g->used = v;
	else if (v > UINT_MAX)
		return false;
	else if (strcmp(key, "minor") == 0)
		g->minor = (unsigned)v;
	else if (strcmp(key, "util") == 0)
		g->util = (unsigned)v;
	else if (strcmp(key, "memutil") == 0)
		g->memutil = (unsigned)v;
	else if (strcmp(key, "temp") == 0)
		g->temp = (unsigned)v;
	else if (strcmp(key, "power") == 0)
		g->power = (unsigned)v;
	else if (strcmp(key, "mig") == 0)
		g->mig = v != 0;
	else if (strcmp(key, "lost") == 0)
		g->lost = v != 0;
	else
		return false;
	return true;
}

static bool fake_proc_key(struct fake_proc *p, const char *key, const char *value)
{
	unsigned long long v;

	if (strcmp(key, "type") == 0) {
		if (strcmp(value, "compute") == 0)
			p->types = FAKE_COMPUTE;
		else if (strcmp(value, "graphics") == 0)
			p->types = FAKE_GRAPHICS;
		else if (strcmp(value, "both") == 0)
			p->types = FAKE_COMPUTE | FAKE_GRAPHICS;
		else if (strcmp(value, "mps") == 0)
			p->types = FAKE_MPS;
		else
			return false;
		return true;
	}
	if (strcmp(key, "mem") == 0 && strcmp(value, "na") == 0) {
		p->mem = NVML_VALUE_NOT_AVAILABLE;
		return true;
	}
	if (strcmp(key, "sm") == 0 && value[0] == '-') {
		p->sm = -1;
		return true;
	}
	if (!fake_number(value, ULLONG_MAX, &v))
		return false;
	if (strcmp(key, "mem") == 0)
		p->mem = v;
	else if (strcmp(key, "pid") == 0 && v <= UINT_MAX)
		p->pid = (unsigned)v;
	else if (strcmp(key, "sm") == 0 && v <= 100)
		p->sm = (int)v;
	else if (strcmp(key, "oldsm") == 0 && v <= 100)
		p->oldsm = (int)v;
	else
		return false;
	return true;
}

/* The key=value words after "gpu INDEX" or "proc GPU". */
static bool fake_keys(char **save, unsigned line, struct fake_gpu *g, struct fake_proc *p)
{
	for (char *word; (word = strtok_r(NULL, " \t", save));) {
		char *eq = strchr(word, '=');
		bool ok;

		if (!eq)
			return fake_complain(line, "\"%s\" is not key=value", word);
		*eq = '\0';
		ok = g ? fake_gpu_key(g, word, eq + 1) : fake_proc_key(p, word, eq + 1);
		if (!ok)
			return fake_complain(line, "bad %s=%s", word, eq + 1);
	}
	return true;
}

static bool fake_parse_gpu(char **save, unsigned line)
{
	const char *word = strtok_r(NULL, " \t", save);
	unsigned long long index;
	struct fake_gpu *g;

	if (!word || !fake_number(word, FAKE_GPUS_MAX - 1, &index) || index != fake.ngpus)
		return fake_complain(line, "gpu indexes must run 0, 1, 2... up to %d", FAKE_GPUS_MAX - 1);
	g = &fake.gpus[fake.ngpus++];
	*g = (struct fake_gpu){ .minor = (unsigned)index, .total = 80ULL << 30 };
	snprintf(g->uuid, sizeof(g->uuid), "GPU-fake-%llu", index);
	snprintf(g->name, sizeof(g->name), "Fake GPU");
	snprintf(g->bus, sizeof(g->bus), "00000000:%02llX:00.0", index + 1);
	return fake_keys(save, line, g, NULL);
}

static bool fake_parse_proc(char **save, unsigned line)
{
	const char *word = strtok_r(NULL, " \t", save);
	unsigned long long gpu;
	struct fake_proc *p;

	if (!word || !fake_number(word, FAKE_GPUS_MAX - 1, &gpu))
		return fake_complain(line, "proc needs a GPU index");
	if (fake.nprocs == FAKE_PROCS_MAX)
		return fake_complain(line, "more than %d processes", FAKE_PROCS_MAX);
	p = &fake.procs[fake.nprocs++];
	*p = (struct fake_proc){ .gpu = (unsigned)gpu, .sm = -1, .oldsm = -1,
				  .types = FAKE_COMPUTE };
	if (!fake_keys(save, line, NULL, p))
		return false;
	return p->pid ? true : fake_complain(line, "proc needs pid=");
}

static bool fake_parse_result(const char *word, nvmlReturn_t *out)
{
	unsigned long long v;

	if (strcmp(word, "ok") == 0) {
		*out = NVML_SUCCESS;
		return true;
	}
	for (size_t i = 0; i < sizeof(fake_errors) / sizeof(fake_errors[0]); i++)
		if (strcmp(word, fake_errors[i].name) == 0) {
			*out = fake_errors[i].code;
			return true;
		}
	if (!fake_number(word, INT_MAX, &v))
		return false;
	*out = (nvmlReturn_t)v;
	return true;
}

static bool fake_parse_line(char *text, unsigned line)
{
	char *save = NULL, *hash = strchr(text, '#');
	const char *word, *value;

	if (hash)
		*hash = '\0';
	word = strtok_r(text, " \t\r\n", &save);
	if (!word)
		return true;
	if (strcmp(word, "gpu") == 0)
		return fake_parse_gpu(&save, line);
	if (strcmp(word, "proc") == 0)
		return fake_parse_proc(&save, line);
	value = strtok_r(NULL, " \t\r\n", &save);
	if (!value || strtok_r(NULL, " \t\r\n", &save))
		return fake_complain(line, "\"%s\" takes one value", word);
	if (strcmp(word, "driver") == 0 && fake_text(fake.driver, sizeof(fake.driver), value, false))
		return true;
	if (strcmp(word, "init") == 0 && fake_parse_result(value, &fake.init_result))
		return true;
	if (strcmp(word, "layout") == 0 && (!strcmp(value, "24") || !strcmp(value, "32"))) {
		fake.layout = (unsigned)atoi(value);
		return true;
	}
	if (strcmp(word, "memory_v2") == 0 && strcmp(value, "unsupported") == 0) {
		fake.memory_v2_unsupported = true;
		return true;
	}
	return fake_complain(line, "cannot read \"%s %s\"", word, value);
}

static bool fake_parse_file(FILE *f)
{
	char text[FAKE_LINE_MAX];
	unsigned line = 0;

	while (fgets(text, sizeof(text), f)) {
		line++;
		/* The blanks before the line ends are trimmed by strtok_r. */
		text[strcspn(text, "\n")] = '\0';
		if (!fake_parse_line(text, line))
			return false;
	}
	for (unsigned i = 0; i < fake.nprocs; i++)
		if (fake.procs[i].gpu >= fake.ngpus)
			return fake_complain(0, "a process on GPU %u of %u", fake.procs[i].gpu, fake.ngpus);
	return true;
}

static void fake_reset(void)
{
	fake.loaded = true;
	fake.broken = false;
	snprintf(fake.driver, sizeof(fake.driver), "580.65.06");
	fake.init_result = NVML_SUCCESS;
	fake.layout = FAKE_LAYOUT_DEFAULT;
	fake.memory_v2_unsupported = false;
	fake.ngpus = 0;
	fake.nprocs = 0;
}

/* Read $FAKE_NVML_STATE again if it is another file than last time. */
static void fake_reload(void)
{
	const char *path = getenv("FAKE_NVML_STATE");
	struct stat st;
	FILE *f;

	if (!path || !path[0]) {
		fake_reset();
		fake.init_result = NVML_ERROR_DRIVER_NOT_LOADED;
		fake.path[0] = '\0';
		return;
	}
	if (stat(path, &st) == 0 && fake.loaded && strcmp(path, fake.path) == 0 &&
	    st.st_ino == fake.st.st_ino && st.st_dev == fake.st.st_dev && st.st_size == fake.st.st_size &&
	    st.st_mtim.tv_sec == fake.st.st_mtim.tv_sec && st.st_mtim.tv_nsec == fake.st.st_mtim.tv_nsec)
		return;
	fake_reset();
	snprintf(fake.path, sizeof(fake.path), "%s", path);
	f = fopen(path, "re");
	if (!f || fstat(fileno(f), &fake.st) < 0) {
		fprintf(stderr, "fake_nvml: %s: %s\n", path, strerror(errno));
		memset(&fake.st, 0, sizeof(fake.st));
		fake.broken = true;
	} else if (!fake_parse_file(f)) {
		fake.broken = true;
	}
	if (f)
		fclose(f);
}

static unsigned long long fake_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000;
}

/* ---- the exported functions ---- */

/* Every device call: the GPU behind a handle, or the error to answer. */
static nvmlReturn_t fake_device(nvmlDevice_t device, struct fake_gpu **out)
{
	struct fake_gpu *g = (struct fake_gpu *)device;

	if (fake.broken)
		return NVML_ERROR_UNKNOWN;
	if (fake_init_count == 0)
		return NVML_ERROR_UNINITIALIZED;
	if (!g || g < fake.gpus || g >= fake.gpus + fake.ngpus)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (g->lost)
		return NVML_ERROR_GPU_IS_LOST;
	*out = g;
	return NVML_SUCCESS;
}

#define FAKE_ENTER(function) \
	pthread_mutex_lock(&fake_lock); \
	fake_count(function)
#define FAKE_RETURN(r) \
	do { \
		nvmlReturn_t r_ = (r); \
		pthread_mutex_unlock(&fake_lock); \
		return r_; \
	} while (0)
/* The start of a device call: the lock taken, g the GPU (or an answer). */
#define FAKE_DEVICE(function, device, g) \
	struct fake_gpu *g = NULL; \
	FAKE_ENTER(function); \
	do { \
		nvmlReturn_t d_ = fake_device(device, &g); \
		if (d_ != NVML_SUCCESS) \
			FAKE_RETURN(d_); \
	} while (0)

nvmlReturn_t nvmlInit_v2(void)
{
	FAKE_ENTER("nvmlInit_v2");
	fake_reload();
	if (fake.broken)
		FAKE_RETURN(NVML_ERROR_UNKNOWN);
	if (fake.init_result != NVML_SUCCESS)
		FAKE_RETURN(fake.init_result);
	fake_init_count++;
	FAKE_RETURN(NVML_SUCCESS);
}

nvmlReturn_t nvmlShutdown(void)
{
	FAKE_ENTER("nvmlShutdown");
	if (fake_init_count == 0)
		FAKE_RETURN(NVML_ERROR_UNINITIALIZED);
	fake_init_count--;
	FAKE_RETURN(NVML_SUCCESS);
}

const char *nvmlErrorString(nvmlReturn_t result)
{
	for (size_t i = 0; i < sizeof(fake_errors) / sizeof(fake_errors[0]); i++)
		if (fake_errors[i].code == result)
			return fake_errors[i].text;
	return "Unknown Error";
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned length)
{
	FAKE_ENTER("nvmlSystemGetDriverVersion");
	if (fake_init_count == 0)
		FAKE_RETURN(NVML_ERROR_UNINITIALIZED);
	if (!version)
		FAKE_RETURN(NVML_ERROR_INVALID_ARGUMENT);
	if (strlen(fake.driver) >= length)
		FAKE_RETURN(NVML_ERROR_INSUFFICIENT_SIZE);
	snprintf(version, length, "%s", fake.driver);
	FAKE_RETURN(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned *count)
{
	FAKE_ENTER("nvmlDeviceGetCount_v2");
	if (fake_init_count == 0)
		FAKE_RETURN(NVML_ERROR_UNINITIALIZED);
	if (!count)
		FAKE_RETURN(NVML_ERROR_INVALID_ARGUMENT);
	fake_reload();
	if (fake.broken)
		FAKE_RETURN(NVML_ERROR_UNKNOWN);
	*count = fake.ngpus;
	FAKE_RETURN(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned index, nvmlDevice_t *device)
{
	FAKE_ENTER("nvmlDeviceGetHandleByIndex_v2");
	if (fake_init_count == 0)
		FAKE_RETURN(NVML_ERROR_UNINITIALIZED);
	if (!device || index >= fake.ngpus)
		FAKE_RETURN(NVML_ERROR_INVALID_ARGUMENT);
	*device = (nvmlDevice_t)&fake.gpus[index];
	FAKE_RETURN(NVML_SUCCESS);
}

static nvmlReturn_t fake_copy_text(char *out, unsigned length, const char *text)
{
	if (!out)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (strlen(text) >= length)
		return NVML_ERROR_INSUFFICIENT_SIZE;
	snprintf(out, length, "%s", text);
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned length)
{
	FAKE_DEVICE("nvmlDeviceGetName", device, g);
	FAKE_RETURN(fake_copy_text(name, length, g->name));
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned length)
{
	FAKE_DEVICE("nvmlDeviceGetUUID", device, g);
	FAKE_RETURN(fake_copy_text(uuid, length, g->uuid));
}

nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci)
{
	FAKE_DEVICE("nvmlDeviceGetPciInfo_v3", device, g);
	if (!pci)
		FAKE_RETURN(NVML_ERROR_INVALID_ARGUMENT);
	memset(pci, 0, sizeof(*pci));
	snprintf(pci->busId, sizeof(pci->busId), "%s", g->bus);
	/* The legacy field has room for 16: the domain cut to 4 digits. */
	snprintf(pci->busIdLegacy, sizeof(pci->busIdLegacy), "%s", g->bus + (strlen(g->bus) > 12 ? 4 : 0));
	FAKE_RETURN(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetMinorNumber(nvmlDevice_t device, unsigned *minor)
{
	FAKE_DEVICE("nvmlDeviceGetMinorNumber", device, g);
	if (!minor)
		FAKE_RETURN(NVML_ERROR_INVALID_ARGUMENT);
	*minor = g->minor;
	FAKE_RETURN(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory)
{
	FAKE_DEVICE("nvmlDeviceGetMemoryInfo", device, g);
	if (!memory)
		FAKE_RETURN(NVML_ERROR_INVALID_ARGUMENT);
	memory->total = g->total;
	memory->used = g->used;
	memory->free = g->total > g->used ? g->total - g->used : 0;
	FAKE_RETURN(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory)
{
	FAKE_DEVICE("nvmlDeviceGetMemoryInfo_v2", device, g);
	if (fake.memory_v2_unsupported)
		FAKE_RETURN(NVML_ERROR_NOT_SUPPORTED);
	if (!memory)
		FAKE_RETURN(NVML_ERROR_INVALID_ARGUMENT);
	if (memory->version != NVML_MEMORY_V2_VERSION)
		FAKE_RETURN(25); /* ARGUMENT_VERSION_MISMATCH */
	memory->total = g->total;
	memory->reserved = 0;
	memory->used = g->used;
	memory->free = g->total > g->used ? g->total - g->used : 0;
	FAKE_RETURN(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization)
{
	FAKE_DEVICE("nvmlDeviceGetUtilizationRates", device, g);
	if (!utilization)
		FAKE_RETURN(NVML_ERROR_INVALID_ARGUMENT);
	if (g->mig)
		FAKE_RETURN(NVML_ERROR_NOT_SUPPORTED);
	utilization->gpu = g->util;
	utilization->memory = g->memutil;
	FAKE_RETURN(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, int sensor, unsigned *temp)
{
	FAKE_DEVICE("nvmlDeviceGetTemperature", device, g);
	if (!temp || sensor != 0)
		FAKE_RETURN(NVML_ERROR_INVALID_ARGUMENT);
	*temp = g->temp;
	FAKE_RETURN(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned *power)
{
	FAKE_DEVICE("nvmlDeviceGetPowerUsage", device, g);
	if (!power)
		FAKE_RETURN(NVML_ERROR_INVALID_ARGUMENT);
	*power = g->power;
	FAKE_RETURN(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned *current, unsigned *pending)
{
	FAKE_DEVICE("nvmlDeviceGetMigMode", device, g);
	if (!current || !pending)
		FAKE_RETURN(NVML_ERROR_INVALID_ARGUMENT);
	*current = *pending = g->mig ? 1 : 0;
	FAKE_RETURN(NVML_SUCCESS);
}

/* Write one process entry of size bytes: 16 (v1), 24 (v2, v3) or 32
 * (v3 of drivers 535.43-535.86, the detail list). */
static void fake_put_entry(void *infos, unsigned i, const struct fake_proc *p, unsigned size)
{
	if (size == 32) {
		fake_wide_process_info *e = (fake_wide_process_info *)infos + i;

		*e = (fake_wide_process_info){ p->pid, p->mem, ~0u, ~0u, 0 };
	} else if (size == 16) {
		fake_process_info_v1 *e = (fake_process_info_v1 *)infos + i;

		*e = (fake_process_info_v1){ p->pid, p->mem };
	} else {
		nvmlProcessInfo_t *e = (nvmlProcessInfo_t *)infos + i;

		*e = (nvmlProcessInfo_t){ p->pid, p->mem, ~0u, ~0u };
	}
}

/* The running-process calls: *count = 0 asks how many (SUCCESS: none,
 * INSUFFICIENT_SIZE: *count of them); a buffer too small is refused the
 * same way.  size: of one entry; 0 for the _v3 layout of this driver. */
static nvmlReturn_t fake_processes(struct fake_gpu *g, unsigned type, unsigned *count, void *infos,
				   unsigned size)
{
	unsigned gpu = (unsigned)(g - fake.gpus), have = 0;

	if (!count || (*count && !infos))
		return NVML_ERROR_INVALID_ARGUMENT;
	for (unsigned i = 0; i < fake.nprocs; i++)
		have += fake.procs[i].gpu == gpu && (fake.procs[i].types & type);
	if (have > *count) {
		*count = have;
		return NVML_ERROR_INSUFFICIENT_SIZE;
	}
	*count = 0;
	for (unsigned i = 0; i < fake.nprocs; i++)
		if (fake.procs[i].gpu == gpu && (fake.procs[i].types & type))
			fake_put_entry(infos, (*count)++, &fake.procs[i], size ? size : fake.layout);
	return NVML_SUCCESS;
}

/* One exported process list: name, the process type, the entry size. */
#define FAKE_PROCESS_LIST(name, type, size, entry_t) \
	nvmlReturn_t name(nvmlDevice_t device, unsigned *count, entry_t *infos) \
	{ \
		FAKE_DEVICE(#name, device, g); \
		FAKE_RETURN(fake_processes(g, type, count, infos, size)); \
	}

#ifndef FAKE_NVML_OLD
FAKE_PROCESS_LIST(nvmlDeviceGetComputeRunningProcesses_v3, FAKE_COMPUTE, 0, nvmlProcessInfo_t)
FAKE_PROCESS_LIST(nvmlDeviceGetGraphicsRunningProcesses_v3, FAKE_GRAPHICS, 0, nvmlProcessInfo_t)
FAKE_PROCESS_LIST(nvmlDeviceGetMPSComputeRunningProcesses_v3, FAKE_MPS, 0, nvmlProcessInfo_t)
#endif
FAKE_PROCESS_LIST(nvmlDeviceGetComputeRunningProcesses_v2, FAKE_COMPUTE, 24, nvmlProcessInfo_t)
FAKE_PROCESS_LIST(nvmlDeviceGetGraphicsRunningProcesses_v2, FAKE_GRAPHICS, 24, nvmlProcessInfo_t)
FAKE_PROCESS_LIST(nvmlDeviceGetMPSComputeRunningProcesses_v2, FAKE_MPS, 24, nvmlProcessInfo_t)
FAKE_PROCESS_LIST(nvmlDeviceGetComputeRunningProcesses, FAKE_COMPUTE, 16, fake_process_info_v1)
FAKE_PROCESS_LIST(nvmlDeviceGetGraphicsRunningProcesses, FAKE_GRAPHICS, 16, fake_process_info_v1)
FAKE_PROCESS_LIST(nvmlDeviceGetMPSComputeRunningProcesses, FAKE_MPS, 16, fake_process_info_v1)

/* The utilisation samples of GPU gpu newer than last_seen, into out (when
 * not NULL); their number. */
static unsigned fake_samples(unsigned gpu, unsigned long long now, unsigned long long last_seen,
			     nvmlProcessUtilizationSample_t *out)
{
	unsigned long long old = now - 100000;
	unsigned count = 0;

	for (unsigned i = 0; i < fake.nprocs; i++) {
		const struct fake_proc *p = &fake.procs[i];

		if (p->gpu != gpu)
			continue;
		if (p->sm >= 0 && now > last_seen) {
			if (out)
				out[count] = (nvmlProcessUtilizationSample_t){
					.pid = p->pid, .timeStamp = now, .smUtil = (unsigned)p->sm,
				};
			count++;
		}
		if (p->oldsm >= 0 && old > last_seen) {
			if (out)
				out[count] = (nvmlProcessUtilizationSample_t){
					.pid = p->pid, .timeStamp = old, .smUtil = (unsigned)p->oldsm,
				};
			count++;
		}
	}
	return count;
}

nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t device, nvmlProcessUtilizationSample_t *utilization,
					     unsigned *count, unsigned long long lastSeenTimeStamp)
{
	unsigned long long now = fake_now_us();
	unsigned gpu, have;

	FAKE_DEVICE("nvmlDeviceGetProcessUtilization", device, g);
	if (!count)
		FAKE_RETURN(NVML_ERROR_INVALID_ARGUMENT);
	gpu = (unsigned)(g - fake.gpus);
	g->last_seen = lastSeenTimeStamp;
	have = fake_samples(gpu, now, lastSeenTimeStamp, NULL);
	if (have == 0)
		FAKE_RETURN(NVML_ERROR_NOT_FOUND);
	if (!utilization || have > *count) {
		*count = have;
		FAKE_RETURN(NVML_ERROR_INSUFFICIENT_SIZE);
	}
	*count = fake_samples(gpu, now, lastSeenTimeStamp, utilization);
	FAKE_RETURN(NVML_SUCCESS);
}

/* Present in both recent builds: only the pair tells 535.43-535.86 apart. */
#ifndef FAKE_NVML_OLD
nvmlReturn_t nvmlDeviceGetConfComputeMemSizeInfo(nvmlDevice_t device, nvmlConfComputeMemSizeInfo_t *info)
{
	FAKE_DEVICE("nvmlDeviceGetConfComputeMemSizeInfo", device, g);
	(void)g;
	(void)info;
	FAKE_RETURN(NVML_ERROR_NOT_SUPPORTED);
}
#endif

#if !defined(FAKE_NVML_535) && !defined(FAKE_NVML_OLD)
nvmlReturn_t nvmlDeviceGetRunningProcessDetailList(nvmlDevice_t device, nvmlProcessDetailList_t *list)
{
	static const unsigned types[] = { FAKE_COMPUTE, FAKE_GRAPHICS, FAKE_MPS };

	FAKE_DEVICE("nvmlDeviceGetRunningProcessDetailList", device, g);
	if (!list || list->mode > 2)
		FAKE_RETURN(NVML_ERROR_INVALID_ARGUMENT);
	if (list->version != FAKE_DETAIL_LIST_V1)
		FAKE_RETURN(NVML_ERROR_ARGUMENT_VERSION_MISMATCH);
	if (!list->procArray)
		list->numProcArrayEntries = 0;
	FAKE_RETURN(fake_processes(g, types[list->mode], &list->numProcArrayEntries, list->procArray, 32));
}
#endif

/* Per-process utilisation, the newer way: one struct with the count and
 * the array (40-byte entries, the pid at 8). */
nvmlReturn_t nvmlDeviceGetProcessesUtilizationInfo(nvmlDevice_t device, nvmlProcessesUtilizationInfo_t *info)
{
	unsigned long long now = fake_now_us();
	unsigned have, n = 0;

	FAKE_DEVICE("nvmlDeviceGetProcessesUtilizationInfo", device, g);
	if (!info)
		FAKE_RETURN(NVML_ERROR_INVALID_ARGUMENT);
	if (info->version != FAKE_UTILIZATION_INFO_V1)
		FAKE_RETURN(NVML_ERROR_ARGUMENT_VERSION_MISMATCH);
	have = fake_samples((unsigned)(g - fake.gpus), now, info->lastSeenTimeStamp, NULL);
	if (have == 0)
		FAKE_RETURN(NVML_ERROR_NOT_FOUND);
	if (!info->procUtilArray || have > info->processSamplesCount) {
		info->processSamplesCount = have;
		FAKE_RETURN(NVML_ERROR_INSUFFICIENT_SIZE);
	}
	for (unsigned i = 0; i < fake.nprocs; i++) {
		const struct fake_proc *p = &fake.procs[i];

		if (p->gpu != (unsigned)(g - fake.gpus) || p->sm < 0 || now <= info->lastSeenTimeStamp)
			continue;
		((fake_process_utilization_info *)info->procUtilArray)[n++] =
			(fake_process_utilization_info){ .timeStamp = now, .pid = p->pid,
							  .smUtil = (unsigned)p->sm };
	}
	info->processSamplesCount = n;
	FAKE_RETURN(NVML_SUCCESS);
}

/* Accounting: every process on the GPU counts, of any type. */
nvmlReturn_t nvmlDeviceGetAccountingPids(nvmlDevice_t device, unsigned *count, unsigned *pids)
{
	unsigned gpu, have = 0;

	FAKE_DEVICE("nvmlDeviceGetAccountingPids", device, g);
	gpu = (unsigned)(g - fake.gpus);
	if (!count || (*count && !pids))
		FAKE_RETURN(NVML_ERROR_INVALID_ARGUMENT);
	for (unsigned i = 0; i < fake.nprocs; i++)
		have += fake.procs[i].gpu == gpu;
	if (have > *count) {
		*count = have;
		FAKE_RETURN(NVML_ERROR_INSUFFICIENT_SIZE);
	}
	*count = 0;
	for (unsigned i = 0; i < fake.nprocs; i++)
		if (fake.procs[i].gpu == gpu)
			pids[(*count)++] = fake.procs[i].pid;
	FAKE_RETURN(NVML_SUCCESS);
}

/* The stats of a host pid on the GPU: its memory as maxMemoryUsage. */
nvmlReturn_t nvmlDeviceGetAccountingStats(nvmlDevice_t device, unsigned pid, nvmlAccountingStats_t *stats)
{
	FAKE_DEVICE("nvmlDeviceGetAccountingStats", device, g);
	if (!stats)
		FAKE_RETURN(NVML_ERROR_INVALID_ARGUMENT);
	for (unsigned i = 0; i < fake.nprocs; i++) {
		const struct fake_proc *p = &fake.procs[i];

		if (p->gpu != (unsigned)(g - fake.gpus) || p->pid != pid)
			continue;
		*stats = (nvmlAccountingStats_t){ .gpuUtilization = p->sm < 0 ? 0 : (unsigned)p->sm,
						  .maxMemoryUsage = p->mem, .isRunning = 1 };
		FAKE_RETURN(NVML_SUCCESS);
	}
	FAKE_RETURN(NVML_ERROR_NOT_FOUND);
}

/* A function of a driver newer than anything gpubox knows: 4242000 plus
 * the GPU's index, so that a caller can tell it was answered here. */
nvmlReturn_t nvmlDeviceGetFakeNovelty(nvmlDevice_t device, unsigned long long *value)
{
	FAKE_DEVICE("nvmlDeviceGetFakeNovelty", device, g);
	if (!value)
		FAKE_RETURN(NVML_ERROR_INVALID_ARGUMENT);
	*value = 4242000ULL + (unsigned long long)(g - fake.gpus);
	FAKE_RETURN(NVML_SUCCESS);
}

/* ---- for the tests ---- */

unsigned long fake_nvml_calls(const char *function)
{
	unsigned long count = 0;

	pthread_mutex_lock(&fake_lock);
	for (size_t i = 0; i < sizeof(fake_counted) / sizeof(fake_counted[0]); i++)
		if (strcmp(fake_counted[i], function) == 0)
			count = fake_counts[i];
	pthread_mutex_unlock(&fake_lock);
	return count;
}

unsigned long long fake_nvml_last_seen(unsigned index)
{
	unsigned long long seen;

	pthread_mutex_lock(&fake_lock);
	seen = index < FAKE_GPUS_MAX ? fake.gpus[index].last_seen : 0;
	pthread_mutex_unlock(&fake_lock);
	return seen;
}
