/* SPDX-License-Identifier: MIT */
/*
 * libgpubox-nvml.so: the NVML a member's container sees.
 *
 * NVIDIA's driver reports GPU processes by host pid, which means nothing
 * in a container's pid namespace.  This library is what the soname
 * libnvidia-ml.so.1 resolves to inside a container (its own soname is
 * libnvidia-ml.so.1, and the agent's loader cache names it); it depends on
 * the real library, which the agent binds under a fixed name
 * (libgpubox-nvml-real.so, found through this library's RUNPATH).  A
 * dlsym() on the handle of libnvidia-ml.so.1 searches this library, then
 * its dependencies: every function the real library exports, of any
 * driver version, is answered by the real one, unchanged.  Only the
 * process queries are defined here; they call the real functions (found
 * with dlsym(RTLD_NEXT)) and rewrite the answer: a process of this
 * container gets its pid inside, another member's is left out (or, in
 * the map's "anonymous" mode, shown with pid 0 so that memory adds up).
 *
 * Which host pid is whose comes from the pid map the agent keeps for the
 * container (pidmap.h), read at most once a second (sooner when an
 * answer holds a pid the map lacks, at most ten times a second), never
 * waited for: no map, an unreadable or stale one, and the answer is the
 * driver's own.  A function the real library lacks answers
 * NVML_ERROR_FUNCTION_NOT_FOUND.
 *
 * It runs inside members' programs, whatever their C library: it needs
 * only libc and libdl of glibc 2.17 or older (no pthread functions, no
 * fortified calls), allocates nothing, takes no lock (two map buffers,
 * reference counts and one try-lock, all atomic), and a nested call (the
 * driver calling its own exported functions) is passed through.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gpu/nvml_abi.h"
#include "pidmap.h"

/* dlsym of glibc's first version: glibc 2.34 moved it into libc under
 * GLIBC_2.34, and containers run older ones too. */
#if defined(__x86_64__)
__asm__(".symver dlsym,dlsym@GLIBC_2.2.5");
#elif defined(__aarch64__)
__asm__(".symver dlsym,dlsym@GLIBC_2.17");
#endif

#define SHIM_PIDMAP_PATH "/dev/gpubox/nvml-pids"
#define SHIM_TTL_MS 1000           /* the map is read again after this */
#define SHIM_MISS_MS 100           /* ... or after this, for a pid it lacks */
#define SHIM_DETAIL_LIST_V1 0x1000018u       /* nvmlProcessDetailList_v1 */
#define SHIM_UTILIZATION_INFO_V1 0x1000018u  /* nvmlProcessesUtilizationInfo_v1 */

/* ---- the layouts this library rewrites (nvml_abi.h has the others) ---- */

typedef struct {
	unsigned version;
	unsigned mode;
	unsigned numProcArrayEntries;
	void *procArray;           /* 32-byte entries, pid first */
} shim_detail_list;

typedef struct {
	unsigned version;
	unsigned processSamplesCount;
	unsigned long long lastSeenTimeStamp;
	void *procUtilArray;       /* 40-byte entries, pid at 8 */
} shim_utilization_info;

_Static_assert(sizeof(shim_detail_list) == 24 && offsetof(shim_detail_list, procArray) == 16,
	       "nvmlProcessDetailList_v1_t");
_Static_assert(sizeof(shim_utilization_info) == 24 &&
	       offsetof(shim_utilization_info, procUtilArray) == 16,
	       "nvmlProcessesUtilizationInfo_v1_t");

enum {
	SHIM_V1_ENTRY = 16,        /* nvmlProcessInfo_v1_t */
	SHIM_V2_ENTRY = 24,        /* nvmlProcessInfo_v2_t = _t */
	SHIM_WIDE_ENTRY = 32,      /* drivers 535.43-535.86 through _v3 */
	SHIM_SAMPLE_ENTRY = 32,    /* nvmlProcessUtilizationSample_t */
	SHIM_UTIL_INFO_ENTRY = 40, /* nvmlProcessUtilizationInfo_v1_t */
	SHIM_DETAIL_ENTRY = 32,    /* nvmlProcessDetail_v1_t */
};

/* ---- the real functions ---- */

typedef nvmlReturn_t shim_list_fn(nvmlDevice_t, unsigned *, void *);
typedef nvmlReturn_t shim_sample_fn(nvmlDevice_t, void *, unsigned *, unsigned long long);
typedef nvmlReturn_t shim_struct_fn(nvmlDevice_t, void *);
typedef nvmlReturn_t shim_stats_fn(nvmlDevice_t, unsigned, void *);

/* The process lists, all (device, unsigned *count, entries). */
enum shim_list {
	SHIM_COMPUTE, SHIM_COMPUTE_V2, SHIM_COMPUTE_V3,
	SHIM_GRAPHICS, SHIM_GRAPHICS_V2, SHIM_GRAPHICS_V3,
	SHIM_MPS, SHIM_MPS_V2, SHIM_MPS_V3,
	SHIM_ACCOUNTING_PIDS,
	SHIM_LISTS,
};

static const char *const shim_list_names[SHIM_LISTS] = {
	"nvmlDeviceGetComputeRunningProcesses",
	"nvmlDeviceGetComputeRunningProcesses_v2",
	"nvmlDeviceGetComputeRunningProcesses_v3",
	"nvmlDeviceGetGraphicsRunningProcesses",
	"nvmlDeviceGetGraphicsRunningProcesses_v2",
	"nvmlDeviceGetGraphicsRunningProcesses_v3",
	"nvmlDeviceGetMPSComputeRunningProcesses",
	"nvmlDeviceGetMPSComputeRunningProcesses_v2",
	"nvmlDeviceGetMPSComputeRunningProcesses_v3",
	"nvmlDeviceGetAccountingPids",
};

static struct {
	shim_list_fn *list[SHIM_LISTS];
	size_t entry[SHIM_LISTS];  /* bytes of one entry of each list */
	shim_sample_fn *process_utilization;
	shim_struct_fn *processes_utilization_info;
	shim_struct_fn *detail_list;
	shim_stats_fn *accounting_stats;
	char path[256];
} shim;

/* ---- the pid map: two buffers, swapped; never a lock ---- */

static struct pidmap shim_maps[2];
static unsigned shim_readers[2];
static int shim_current = -1;      /* the buffer readers use; -1 none */
static bool shim_refreshing;       /* one reader refreshes at a time */
static long long shim_read_at = -SHIM_TTL_MS;   /* monotonic ms of the last read */
static char shim_text[PIDMAP_TEXT_MAX + 1];     /* under shim_refreshing */
static __thread int shim_depth;    /* inside a real function */

static long long shim_ms(clockid_t clock)
{
	struct timespec ts;

	if (clock_gettime(clock, &ts) < 0)
		return 0;
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The map file's text into shim_text: its length, or -1. */
static ssize_t shim_read_file(void)
{
	int fd = open(shim.path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	size_t used = 0;

	if (fd < 0)
		return -1;
	while (used < sizeof(shim_text)) {
		ssize_t n = read(fd, shim_text + used, sizeof(shim_text) - used);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			return n == 0 ? (ssize_t)used : -1;
		}
		used += (size_t)n;
	}
	close(fd);
	return -1;      /* larger than any map */
}

/* Read the map again into the buffer no reader holds, and make it the
 * current one; skipped while another thread does it or a reader still
 * holds the other buffer. */
static void shim_refresh(long long now)
{
	ssize_t len;
	int next;

	if (__atomic_test_and_set(&shim_refreshing, __ATOMIC_ACQUIRE))
		return;
	next = __atomic_load_n(&shim_current, __ATOMIC_SEQ_CST) == 0 ? 1 : 0;
	if (__atomic_load_n(&shim_readers[next], __ATOMIC_SEQ_CST) == 0) {
		len = shim_read_file();
		if (len < 0 || pidmap_parse(shim_text, (size_t)len, &shim_maps[next]) < 0)
			next = -1;
		__atomic_store_n(&shim_current, next, __ATOMIC_SEQ_CST);
		__atomic_store_n(&shim_read_at, now, __ATOMIC_SEQ_CST);
	}
	__atomic_clear(&shim_refreshing, __ATOMIC_RELEASE);
}

/* Read the map again when it is older than ttl_ms. */
static void shim_refresh_older(long long now, long long ttl_ms)
{
	if (now - __atomic_load_n(&shim_read_at, __ATOMIC_SEQ_CST) >= ttl_ms)
		shim_refresh(now);
}

/* The current map, held until shim_release(); NULL when there is none or
 * it is stale. */
static const struct pidmap *shim_acquire(int *held)
{
	for (;;) {
		int i = __atomic_load_n(&shim_current, __ATOMIC_SEQ_CST);

		if (i < 0)
			return NULL;
		__atomic_add_fetch(&shim_readers[i], 1, __ATOMIC_SEQ_CST);
		if (__atomic_load_n(&shim_current, __ATOMIC_SEQ_CST) == i) {
			*held = i;
			if (!pidmap_fresh(&shim_maps[i], shim_ms(CLOCK_REALTIME))) {
				__atomic_sub_fetch(&shim_readers[i], 1, __ATOMIC_SEQ_CST);
				return NULL;
			}
			return &shim_maps[i];
		}
		__atomic_sub_fetch(&shim_readers[i], 1, __ATOMIC_SEQ_CST);
	}
}

static void shim_release(int held)
{
	__atomic_sub_fetch(&shim_readers[held], 1, __ATOMIC_SEQ_CST);
}

static uint32_t shim_pid_at(const unsigned char *entry, size_t offset)
{
	uint32_t pid;

	memcpy(&pid, entry + offset, sizeof(pid));
	return pid;
}

/* Whether any pid of the entries is missing from the map. */
static bool shim_has_unknown(const struct pidmap *map, const unsigned char *entries,
			     unsigned count, size_t size, size_t offset)
{
	for (unsigned i = 0; i < count; i++)
		if (!pidmap_lookup(map, shim_pid_at(entries + (size_t)i * size, offset)))
			return true;
	return false;
}

/* Rewrite the entries in place (each size bytes, its pid at offset) by
 * map: this container's get their pid inside, the others are left out,
 * or kept with pid 0 when keep_others; how many remain. */
static unsigned shim_rewrite(const struct pidmap *map, unsigned char *entries, unsigned count,
			     size_t size, size_t offset, bool keep_others)
{
	unsigned kept = 0;

	for (unsigned i = 0; i < count; i++) {
		unsigned char *e = entries + (size_t)i * size;
		uint32_t ns = pidmap_lookup(map, shim_pid_at(e, offset));

		if (!ns && !keep_others)
			continue;
		memcpy(e + offset, &ns, sizeof(ns));
		if (kept != i)
			memmove(entries + (size_t)kept * size, e, size);
		kept++;
	}
	return kept;
}

/* The driver's answer of count entries, as this container sees it; the
 * new count (count itself when there is no map to go by). */
static unsigned shim_translate(void *entries, unsigned count, size_t size, size_t offset,
			       bool pids_only)
{
	long long now = shim_ms(CLOCK_MONOTONIC);
	const struct pidmap *map;
	int held = -1;

	if (!entries || count == 0)
		return count;
	shim_refresh_older(now, SHIM_TTL_MS);
	map = shim_acquire(&held);
	if (map && now - __atomic_load_n(&shim_read_at, __ATOMIC_SEQ_CST) >= SHIM_MISS_MS &&
	    shim_has_unknown(map, entries, count, size, offset)) {
		/* A process newer than the map, maybe: read it again once. */
		shim_release(held);
		shim_refresh(now);
		map = shim_acquire(&held);
	}
	if (!map)
		return count;
	count = shim_rewrite(map, entries, count, size, offset,
			     !pids_only && map->mode == PIDMAP_ANONYMOUS);
	shim_release(held);
	return count;
}

/* ---- the overrides ---- */

static nvmlReturn_t shim_list(enum shim_list which, nvmlDevice_t device, unsigned *count,
			      void *entries)
{
	shim_list_fn *real = shim.list[which];
	nvmlReturn_t r;

	if (!real)
		return NVML_ERROR_FUNCTION_NOT_FOUND;
	if (shim_depth)
		return real(device, count, entries);
	shim_depth++;
	r = real(device, count, entries);
	shim_depth--;
	if (r == NVML_SUCCESS && count)
		*count = shim_translate(entries, *count, shim.entry[which], 0,
					which == SHIM_ACCOUNTING_PIDS);
	return r;
}

#define SHIM_LIST(name, which) \
	nvmlReturn_t name(nvmlDevice_t device, unsigned *count, void *entries); \
	nvmlReturn_t name(nvmlDevice_t device, unsigned *count, void *entries) \
	{ \
		return shim_list(which, device, count, entries); \
	}

SHIM_LIST(nvmlDeviceGetComputeRunningProcesses, SHIM_COMPUTE)
SHIM_LIST(nvmlDeviceGetComputeRunningProcesses_v2, SHIM_COMPUTE_V2)
SHIM_LIST(nvmlDeviceGetComputeRunningProcesses_v3, SHIM_COMPUTE_V3)
SHIM_LIST(nvmlDeviceGetGraphicsRunningProcesses, SHIM_GRAPHICS)
SHIM_LIST(nvmlDeviceGetGraphicsRunningProcesses_v2, SHIM_GRAPHICS_V2)
SHIM_LIST(nvmlDeviceGetGraphicsRunningProcesses_v3, SHIM_GRAPHICS_V3)
SHIM_LIST(nvmlDeviceGetMPSComputeRunningProcesses, SHIM_MPS)
SHIM_LIST(nvmlDeviceGetMPSComputeRunningProcesses_v2, SHIM_MPS_V2)
SHIM_LIST(nvmlDeviceGetMPSComputeRunningProcesses_v3, SHIM_MPS_V3)
SHIM_LIST(nvmlDeviceGetAccountingPids, SHIM_ACCOUNTING_PIDS)

nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t device, void *samples, unsigned *count,
					     unsigned long long last_seen);
nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t device, void *samples, unsigned *count,
					     unsigned long long last_seen)
{
	nvmlReturn_t r;

	if (!shim.process_utilization)
		return NVML_ERROR_FUNCTION_NOT_FOUND;
	if (shim_depth)
		return shim.process_utilization(device, samples, count, last_seen);
	shim_depth++;
	r = shim.process_utilization(device, samples, count, last_seen);
	shim_depth--;
	if (r == NVML_SUCCESS && count && samples)
		*count = shim_translate(samples, *count, SHIM_SAMPLE_ENTRY, 0, false);
	return r;
}

nvmlReturn_t nvmlDeviceGetProcessesUtilizationInfo(nvmlDevice_t device, void *info);
nvmlReturn_t nvmlDeviceGetProcessesUtilizationInfo(nvmlDevice_t device, void *info)
{
	shim_utilization_info *u = info;
	nvmlReturn_t r;

	if (!shim.processes_utilization_info)
		return NVML_ERROR_FUNCTION_NOT_FOUND;
	if (shim_depth)
		return shim.processes_utilization_info(device, info);
	shim_depth++;
	r = shim.processes_utilization_info(device, info);
	shim_depth--;
	/* A later version of the struct may lay its entries out otherwise:
	 * only the one known is rewritten. */
	if (r == NVML_SUCCESS && u && u->version == SHIM_UTILIZATION_INFO_V1 && u->procUtilArray)
		u->processSamplesCount = shim_translate(u->procUtilArray, u->processSamplesCount,
							SHIM_UTIL_INFO_ENTRY, 8, false);
	return r;
}

nvmlReturn_t nvmlDeviceGetRunningProcessDetailList(nvmlDevice_t device, void *list);
nvmlReturn_t nvmlDeviceGetRunningProcessDetailList(nvmlDevice_t device, void *list)
{
	shim_detail_list *l = list;
	nvmlReturn_t r;

	if (!shim.detail_list)
		return NVML_ERROR_FUNCTION_NOT_FOUND;
	if (shim_depth)
		return shim.detail_list(device, list);
	shim_depth++;
	r = shim.detail_list(device, list);
	shim_depth--;
	if (r == NVML_SUCCESS && l && l->version == SHIM_DETAIL_LIST_V1 && l->procArray)
		l->numProcArrayEntries = shim_translate(l->procArray, l->numProcArrayEntries,
							SHIM_DETAIL_ENTRY, 0, false);
	return r;
}

/* The one query that takes a pid: the caller's is a pid inside, the
 * driver's a host pid.  Another member's process is not found. */
nvmlReturn_t nvmlDeviceGetAccountingStats(nvmlDevice_t device, unsigned pid, void *stats);
nvmlReturn_t nvmlDeviceGetAccountingStats(nvmlDevice_t device, unsigned pid, void *stats)
{
	const struct pidmap *map;
	int held = -1;
	nvmlReturn_t r;

	if (!shim.accounting_stats)
		return NVML_ERROR_FUNCTION_NOT_FOUND;
	if (shim_depth)
		return shim.accounting_stats(device, pid, stats);
	shim_refresh_older(shim_ms(CLOCK_MONOTONIC), SHIM_TTL_MS);
	map = shim_acquire(&held);
	if (map) {
		uint32_t host = pidmap_reverse(map, pid);

		shim_release(held);
		if (!host)
			return NVML_ERROR_NOT_FOUND;
		pid = host;
	}
	shim_depth++;
	r = shim.accounting_stats(device, pid, stats);
	shim_depth--;
	return r;
}

/* Found by tools and tests with dlsym(): this library is in the way. */
extern const char gpubox_nvml_interposer[];
const char gpubox_nvml_interposer[] = "gpubox " GPUBOX_VERSION;

/* ---- set up at load, before any call ---- */

static void *shim_real(const char *name)
{
	return dlsym(RTLD_NEXT, name);
}

__attribute__((constructor))
static void shim_init(void)
{
	const char *path = secure_getenv("GPUBOX_NVML_PIDMAP");
	/* Drivers 535.43-535.86 write 32-byte entries through _v3, found as
	 * the agent's nvml.c finds them. */
	bool wide = shim_real("nvmlDeviceGetConfComputeMemSizeInfo") &&
		    !shim_real("nvmlDeviceGetRunningProcessDetailList");

	if (!path || !path[0] || strlen(path) >= sizeof(shim.path))
		path = SHIM_PIDMAP_PATH;
	memcpy(shim.path, path, strlen(path) + 1);
	for (int i = 0; i < SHIM_LISTS; i++) {
		shim.list[i] = (shim_list_fn *)shim_real(shim_list_names[i]);
		shim.entry[i] = SHIM_V2_ENTRY;
	}
	shim.entry[SHIM_COMPUTE] = shim.entry[SHIM_GRAPHICS] = shim.entry[SHIM_MPS] = SHIM_V1_ENTRY;
	if (wide)
		shim.entry[SHIM_COMPUTE_V3] = shim.entry[SHIM_GRAPHICS_V3] =
			shim.entry[SHIM_MPS_V3] = SHIM_WIDE_ENTRY;
	shim.entry[SHIM_ACCOUNTING_PIDS] = sizeof(unsigned);
	shim.process_utilization = (shim_sample_fn *)shim_real("nvmlDeviceGetProcessUtilization");
	shim.processes_utilization_info =
		(shim_struct_fn *)shim_real("nvmlDeviceGetProcessesUtilizationInfo");
	shim.detail_list = (shim_struct_fn *)shim_real("nvmlDeviceGetRunningProcessDetailList");
	shim.accounting_stats = (shim_stats_fn *)shim_real("nvmlDeviceGetAccountingStats");
}
