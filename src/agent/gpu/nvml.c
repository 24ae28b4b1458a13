/* SPDX-License-Identifier: MIT */
/*
 * NVIDIA's management library (libnvidia-ml.so.1), loaded with dlopen() at
 * run time and declared here from the published layout (no nvml.h): the
 * agent must start on a server without the driver, keep running on a
 * driver that lacks a function, and go on reading the other GPUs when one
 * falls off the bus.  Every symbol is looked up by name; one that is
 * missing is a reading reported as unknown, never a crash.
 *
 * One nvml_sample() asks the GPU count once, reads each GPU (the static
 * name, UUID, bus id and minor are read once per handle), and lists the
 * compute and graphics processes with their SM utilisation.  Handles are
 * kept until the count changes or a GPU answers GPU_IS_LOST.  The scratch
 * buffers live in struct nvml and the output arrays with the caller, so a
 * steady state allocates nothing.
 *
 * Drivers 535.43 to 535.86 write 32-byte process entries through the _v3
 * functions instead of 24.  They are recognised at open by their symbols;
 * the PIDs read are checked as well, and a batch that only makes sense in
 * the other layout switches to it.  The buffer always has room for 32-byte
 * entries, so a driver that was not recognised cannot write past it.
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu/gpu.h"
#include "cleanup.h"
#include "log.h"
#include "gpu/nvml_abi.h"
#include "strutil.h"
#include "banned.h"

/* gpubox's room for nvmlSystemGetDriverVersion(): NVML's documented size. */
#define NVML_DRIVER_VERSION_MAX 80

/* Process entries: 24 bytes, or 32 from drivers 535.43 to 535.86. */
#define NVML_ENTRY_NARROW 24
#define NVML_ENTRY_WIDE 32
/* The kernel's PID_MAX_LIMIT on 64-bit: no pid is larger. */
#define NVML_PID_MAX 4194304u

/* Sanity limits on counts the library reports. */
#define NVML_GPUS_MAX 1024u
#define NVML_PROCESSES_MAX 65536u
/* Room added to a reported count: processes come and go between calls. */
#define NVML_SLACK(count) ((count) / 4 + 16)
#define NVML_ATTEMPTS 4

typedef nvmlDeviceGetRunningProcesses_v3_fn *nvml_processes_fn;

struct nvml_functions {
	nvmlInit_v2_fn *init;
	nvmlShutdown_fn *shutdown;
	nvmlErrorString_fn *error_string;
	nvmlSystemGetDriverVersion_fn *driver_version;
	nvmlDeviceGetCount_v2_fn *device_count;
	nvmlDeviceGetHandleByIndex_v2_fn *handle_by_index;
	nvmlDeviceGetName_fn *name;
	nvmlDeviceGetUUID_fn *uuid;
	nvmlDeviceGetPciInfo_v3_fn *pci_info;
	nvmlDeviceGetMinorNumber_fn *minor;
	nvmlDeviceGetMemoryInfo_fn *memory;
	nvmlDeviceGetMemoryInfo_v2_fn *memory_v2;
	nvmlDeviceGetUtilizationRates_fn *utilization;
	nvmlDeviceGetTemperature_fn *temperature;
	nvmlDeviceGetPowerUsage_fn *power;
	nvmlDeviceGetMigMode_fn *mig_mode;
	nvml_processes_fn compute_processes;
	nvml_processes_fn graphics_processes;
	nvmlDeviceGetProcessUtilization_fn *process_utilization;
};

/* What is kept of one GPU between readings. */
struct nvml_device {
	nvmlDevice_t handle;
	bool have_handle;
	bool lost;                 /* GPU_IS_LOST in this reading */
	bool static_read;          /* name, uuid, bus_id, minor below */
	unsigned minor;
	char name[NVML_TEXT_MAX];
	char uuid[NVML_TEXT_MAX];
	char bus_id[32];
	unsigned long long last_seen;  /* newest utilisation sample, µs */
};

struct nvml {
	pthread_mutex_t lock;
	void *library;
	bool initialised;
	struct nvml_functions fn;
	char driver[NVML_DRIVER_VERSION_MAX];
	bool wide_detected;        /* from the symbols, at open */
	size_t entry_size;         /* in use: NVML_ENTRY_NARROW or _WIDE */
	bool warned_entries;
	int last_count_error;
	struct nvml_device *devices;
	unsigned ndevices;
	size_t devices_cap;
	unsigned char *entries;    /* process entries, room for 32 bytes each */
	unsigned entries_cap;      /* in entries */
	nvmlProcessUtilizationSample_t *samples;
	unsigned samples_cap;
};

static const char *nvml_error_text(struct nvml *n, nvmlReturn_t r)
{
	const char *text = n->fn.error_string ? n->fn.error_string(r) : NULL;

	return text && text[0] ? text : "unknown NVML error";
}

/* The errno for an NVML error: no driver or no GPU is a state of the
 * server (-ENODEV); anything else is a failure (-EIO). */
static int nvml_errno(nvmlReturn_t r)
{
	if (r == NVML_ERROR_DRIVER_NOT_LOADED || r == NVML_ERROR_GPU_NOT_FOUND)
		return -ENODEV;
	return -EIO;
}

_Static_assert(sizeof(void *) == sizeof(nvmlReturn_t (*)(void)), "dlsym() can give a function");

/* A function of the library into *fn (a function pointer); whether it is
 * there.  POSIX makes dlsym()'s pointer a function's; ISO C has no
 * conversion for it, hence the copy. */
static bool nvml_symbol(void *library, const char *symbol, void *fn)
{
	void *found = dlsym(library, symbol);

	memcpy(fn, &found, sizeof(found));
	return found != NULL;
}

/* Look up every symbol; the three without which nothing can be read are
 * required, the others leave their function NULL ("not supported"). */
static int nvml_resolve(struct nvml *n, char *err, size_t errlen)
{
	struct nvml_functions *f = &n->fn;

#define NVML_SYMBOL(field, symbol) nvml_symbol(n->library, symbol, &f->field)
	NVML_SYMBOL(init, "nvmlInit_v2");
	NVML_SYMBOL(shutdown, "nvmlShutdown");
	NVML_SYMBOL(error_string, "nvmlErrorString");
	NVML_SYMBOL(driver_version, "nvmlSystemGetDriverVersion");
	NVML_SYMBOL(device_count, "nvmlDeviceGetCount_v2");
	NVML_SYMBOL(handle_by_index, "nvmlDeviceGetHandleByIndex_v2");
	NVML_SYMBOL(name, "nvmlDeviceGetName");
	NVML_SYMBOL(uuid, "nvmlDeviceGetUUID");
	NVML_SYMBOL(pci_info, "nvmlDeviceGetPciInfo_v3");
	NVML_SYMBOL(minor, "nvmlDeviceGetMinorNumber");
	NVML_SYMBOL(memory, "nvmlDeviceGetMemoryInfo");
	NVML_SYMBOL(memory_v2, "nvmlDeviceGetMemoryInfo_v2");
	NVML_SYMBOL(utilization, "nvmlDeviceGetUtilizationRates");
	NVML_SYMBOL(temperature, "nvmlDeviceGetTemperature");
	NVML_SYMBOL(power, "nvmlDeviceGetPowerUsage");
	NVML_SYMBOL(mig_mode, "nvmlDeviceGetMigMode");
	NVML_SYMBOL(process_utilization, "nvmlDeviceGetProcessUtilization");
	/* _v2 has the same 24-byte entries; drivers before 510 lack _v3. */
	if (!NVML_SYMBOL(compute_processes, "nvmlDeviceGetComputeRunningProcesses_v3"))
		NVML_SYMBOL(compute_processes, "nvmlDeviceGetComputeRunningProcesses_v2");
	if (!NVML_SYMBOL(graphics_processes, "nvmlDeviceGetGraphicsRunningProcesses_v3"))
		NVML_SYMBOL(graphics_processes, "nvmlDeviceGetGraphicsRunningProcesses_v2");
#undef NVML_SYMBOL

	if (!f->init || !f->device_count || !f->handle_by_index) {
		set_error(err, errlen, "%s lacks %s: the NVIDIA driver is too old or the file is damaged",
			 NVML_LIBRARY, !f->init ? "nvmlInit_v2" :
			 !f->device_count ? "nvmlDeviceGetCount_v2" : "nvmlDeviceGetHandleByIndex_v2");
		return -EIO;
	}
	/* The 535.43-535.86 signature: confidential-computing memory info
	 * without the process detail list that came after the fix. */
	n->wide_detected = dlsym(n->library, "nvmlDeviceGetConfComputeMemSizeInfo") &&
			   !dlsym(n->library, "nvmlDeviceGetRunningProcessDetailList");
	n->entry_size = n->wide_detected ? NVML_ENTRY_WIDE : NVML_ENTRY_NARROW;
	return 0;
}

/* Forget every handle and make room for count GPUs: a changed count may
 * have renumbered them all. */
static int nvml_devices_reset(struct nvml *n, unsigned count)
{
	if (count > n->devices_cap) {
		struct nvml_device *grown = realloc(n->devices, count * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		n->devices = grown;
		n->devices_cap = count;
	}
	for (unsigned i = 0; i < count; i++)
		n->devices[i] = (struct nvml_device){ .minor = UINT_MAX };
	n->ndevices = count;
	return 0;
}

static int nvml_start(struct nvml *n, char *err, size_t errlen)
{
	nvmlReturn_t r;
	unsigned count = 0;

	r = n->fn.init();
	if (r != NVML_SUCCESS) {
		if (r == NVML_ERROR_LIB_RM_VERSION_MISMATCH)
			set_error(err, errlen, "NVML could not start: %s (driver upgraded without a reboot?)",
				 nvml_error_text(n, r));
		else if (nvml_errno(r) == -ENODEV)
			set_error(err, errlen, "the NVIDIA driver is not loaded or sees no GPU: %s",
				 nvml_error_text(n, r));
		else
			set_error(err, errlen, "NVML could not start: %s", nvml_error_text(n, r));
		return nvml_errno(r);
	}
	n->initialised = true;
	r = n->fn.device_count(&count);
	if (r != NVML_SUCCESS) {
		set_error(err, errlen, "NVML could not count the GPUs: %s", nvml_error_text(n, r));
		return nvml_errno(r);
	}
	if (count == 0) {
		set_error(err, errlen, "the NVIDIA driver is loaded but sees no GPU on this server");
		return -ENODEV;
	}
	if (count > NVML_GPUS_MAX) {
		set_error(err, errlen, "NVML reports %u GPUs, more than the %u believable", count,
			 NVML_GPUS_MAX);
		return -EIO;
	}
	if (n->fn.driver_version &&
	    n->fn.driver_version(n->driver, sizeof(n->driver)) == NVML_SUCCESS)
		n->driver[sizeof(n->driver) - 1] = '\0';
	else
		n->driver[0] = '\0';
	return nvml_devices_reset(n, count);
}

int nvml_open(struct nvml **out, char *err, size_t errlen)
{
	struct nvml *n;
	int ret;

	if (err && errlen)
		err[0] = '\0';
	if (!out)
		return -EINVAL;
	*out = NULL;
	n = calloc(1, sizeof(*n));
	if (!n) {
		set_error(err, errlen, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&n->lock, NULL);
	n->library = dlopen(NVML_LIBRARY, RTLD_NOW | RTLD_LOCAL);
	if (!n->library) {
		const char *why = dlerror();

		/* Absent is the normal case; a library that fails to load is not. */
		if (why && !strstr(why, "No such file"))
			log_warn("dlopen %s: %s", NVML_LIBRARY, why);
		set_error(err, errlen, "no NVIDIA driver library (%s) on this server", NVML_LIBRARY);
		nvml_close(n);
		return -ENOENT;
	}
	ret = nvml_resolve(n, err, errlen);
	if (ret == 0)
		ret = nvml_start(n, err, errlen);
	if (ret < 0) {
		if (ret == -ENOMEM)
			set_error(err, errlen, "out of memory");
		nvml_close(n);
		return ret;
	}
	if (n->wide_detected)
		log_info("NVML %s: reading 32-byte process entries (drivers 535.43 to 535.86)", n->driver);
	*out = n;
	return 0;
}

void nvml_close(struct nvml *n)
{
	if (!n)
		return;
	if (n->initialised && n->fn.shutdown)
		n->fn.shutdown();
	if (n->library)
		dlclose(n->library);
	pthread_mutex_destroy(&n->lock);
	free(n->devices);
	free(n->entries);
	free(n->samples);
	free(n);
}

const char *nvml_driver_version(struct nvml *n)
{
	const char *version;

	pthread_mutex_lock(&n->lock);
	version = n->driver;
	pthread_mutex_unlock(&n->lock);
	return version;
}

unsigned nvml_gpu_count(struct nvml *n)
{
	unsigned count;

	pthread_mutex_lock(&n->lock);
	count = n->ndevices;
	pthread_mutex_unlock(&n->lock);
	return count;
}

bool nvml_wide_process_entries(struct nvml *n)
{
	bool wide;

	pthread_mutex_lock(&n->lock);
	wide = n->wide_detected;
	pthread_mutex_unlock(&n->lock);
	return wide;
}

/* ---- one GPU ---- */

/* Whether a device call succeeded; GPU_IS_LOST marks the GPU lost. */
static bool nvml_ok(struct nvml_device *d, nvmlReturn_t r)
{
	if (r == NVML_ERROR_GPU_IS_LOST)
		d->lost = true;
	return r == NVML_SUCCESS;
}

/* A driver's text made printable and NUL-terminated in place: it goes on
 * into JSON, logs and terminals. */
static void nvml_printable(char *text, size_t len)
{
	text[len - 1] = '\0';
	for (char *p = text; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
}

/* Name, UUID, bus id and minor: read once per handle, and kept only when
 * the GPU answered (a lost GPU keeps what was known of it). */
static void nvml_read_static(struct nvml *n, struct nvml_device *d)
{
	struct nvml_device now = { .handle = d->handle, .minor = UINT_MAX };
	nvmlPciInfo_t pci;
	unsigned minor;

	if (n->fn.name && nvml_ok(&now, n->fn.name(d->handle, now.name, sizeof(now.name))))
		nvml_printable(now.name, sizeof(now.name));
	else
		now.name[0] = '\0';
	if (n->fn.uuid && nvml_ok(&now, n->fn.uuid(d->handle, now.uuid, sizeof(now.uuid))))
		nvml_printable(now.uuid, sizeof(now.uuid));
	else
		now.uuid[0] = '\0';
	if (n->fn.pci_info && nvml_ok(&now, n->fn.pci_info(d->handle, &pci))) {
		snprintf(now.bus_id, sizeof(now.bus_id), "%.*s", (int)sizeof(pci.busId), pci.busId);
		nvml_printable(now.bus_id, sizeof(now.bus_id));
	}
	if (n->fn.minor && nvml_ok(&now, n->fn.minor(d->handle, &minor)))
		now.minor = minor;
	if (now.lost) {
		d->lost = true;
		return;
	}
	d->minor = now.minor;
	memcpy(d->name, now.name, sizeof(d->name));
	memcpy(d->uuid, now.uuid, sizeof(d->uuid));
	memcpy(d->bus_id, now.bus_id, sizeof(d->bus_id));
	d->static_read = true;
}

/* A percentage from the driver, -1 when it is not one. */
static int nvml_percent(unsigned value)
{
	return value <= 100 ? (int)value : -1;
}

static void nvml_read_memory(struct nvml *n, struct nvml_device *d, struct nvml_gpu *g)
{
	nvmlMemory_v2_t v2 = { .version = NVML_MEMORY_V2_VERSION };
	nvmlMemory_t v1;
	nvmlReturn_t r;

	if (n->fn.memory_v2) {
		r = n->fn.memory_v2(d->handle, &v2);
		if (nvml_ok(d, r)) {
			g->mem_total = v2.total;
			g->mem_used = v2.used;
			return;
		}
		if (d->lost)
			return;
	}
	if (n->fn.memory && nvml_ok(d, n->fn.memory(d->handle, &v1))) {
		g->mem_total = v1.total;
		g->mem_used = v1.used;
	}
}

/* The readings of one GPU that change; a lost GPU stops at the first call
 * that says so. */
static void nvml_read_dynamic(struct nvml *n, struct nvml_device *d, struct nvml_gpu *g)
{
	nvmlUtilization_t util;
	unsigned value, pending;

	if (n->fn.mig_mode && nvml_ok(d, n->fn.mig_mode(d->handle, &value, &pending)))
		g->mig = value == 1;
	if (!d->lost && n->fn.utilization && nvml_ok(d, n->fn.utilization(d->handle, &util))) {
		g->util_gpu = nvml_percent(util.gpu);
		g->util_mem = nvml_percent(util.memory);
	}
	if (!d->lost)
		nvml_read_memory(n, d, g);
	if (!d->lost && n->fn.temperature &&
	    nvml_ok(d, n->fn.temperature(d->handle, NVML_TEMPERATURE_GPU, &value)) && value < 1000)
		g->temperature = (int)value;
	if (!d->lost && n->fn.power && nvml_ok(d, n->fn.power(d->handle, &value)) && value <= INT_MAX)
		g->power_mw = (int)value;
}

static void nvml_gpu_unknown(struct nvml_gpu *g, unsigned index)
{
	memset(g, 0, sizeof(*g));
	g->index = index;
	g->minor = UINT_MAX;
	g->util_gpu = g->util_mem = g->temperature = g->power_mw = -1;
}

/* Read GPU index into g; false when it is lost (its handle is then
 * dropped, to be fetched again at the next reading). */
static bool nvml_read_gpu(struct nvml *n, unsigned index, struct nvml_gpu *g)
{
	struct nvml_device *d = &n->devices[index];

	nvml_gpu_unknown(g, index);
	d->lost = false;
	if (!d->have_handle) {
		d->have_handle = n->fn.handle_by_index(index, &d->handle) == NVML_SUCCESS;
		d->lost = !d->have_handle;
		d->static_read = false;
	}
	if (!d->lost && !d->static_read)
		nvml_read_static(n, d);
	if (!d->lost)
		nvml_read_dynamic(n, d, g);
	if (d->lost) {
		nvml_gpu_unknown(g, index);
		g->lost = true;
		d->have_handle = false;
	}
	/* What is known of a lost GPU stays: it says which one is gone. */
	g->minor = d->minor;
	memcpy(g->name, d->name, sizeof(g->name));
	memcpy(g->uuid, d->uuid, sizeof(g->uuid));
	memcpy(g->bus_id, d->bus_id, sizeof(g->bus_id));
	return !g->lost;
}

/* ---- processes ---- */

static unsigned nvml_entry_pid(const unsigned char *entries, size_t stride, unsigned i)
{
	unsigned pid;

	memcpy(&pid, entries + i * stride + offsetof(nvmlProcessInfo_t, pid), sizeof(pid));
	return pid;
}

static uint64_t nvml_entry_memory(const unsigned char *entries, size_t stride, unsigned i)
{
	unsigned long long used;

	memcpy(&used, entries + i * stride + offsetof(nvmlProcessInfo_t, usedGpuMemory), sizeof(used));
	return used;
}

static bool nvml_entries_sane(const unsigned char *entries, size_t stride, unsigned count)
{
	for (unsigned i = 0; i < count; i++) {
		unsigned pid = nvml_entry_pid(entries, stride, i);

		if (pid == 0 || pid > NVML_PID_MAX)
			return false;
	}
	return true;
}

/* The entry size to read a batch with, 0 to drop it: PIDs that are no
 * PIDs mean the layout guessed at open is wrong (then the other one is
 * tried, and kept if it makes sense) or the driver wrote garbage. */
static size_t nvml_entry_stride(struct nvml *n, unsigned count)
{
	size_t other = n->entry_size == NVML_ENTRY_WIDE ? NVML_ENTRY_NARROW : NVML_ENTRY_WIDE;

	if (nvml_entries_sane(n->entries, n->entry_size, count))
		return n->entry_size;
	if (count > 1 && nvml_entries_sane(n->entries, other, count)) {
		log_warn("NVML %s: process entries read as %zu bytes give impossible PIDs; reading %zu-byte entries from now on",
			 n->driver, n->entry_size, other);
		n->entry_size = other;
		return other;
	}
	if (!n->warned_entries)
		log_warn("NVML %s: process list with impossible PIDs ignored (logged once)", n->driver);
	n->warned_entries = true;
	return 0;
}

/* Room for count process entries of either size, zeroed so that reading
 * a batch in the other layout reads nothing undefined. */
static int nvml_grow_entries(struct nvml *n, unsigned count)
{
	unsigned char *grown;

	if (count <= n->entries_cap)
		return 0;
	grown = realloc(n->entries, (size_t)count * NVML_ENTRY_WIDE);
	if (!grown)
		return -ENOMEM;
	memset(grown, 0, (size_t)count * NVML_ENTRY_WIDE);
	n->entries = grown;
	n->entries_cap = count;
	return 0;
}

/* One list of running processes into n->entries: their number, 0 for none
 * or for a list that could not be read, -ENOMEM. */
static long nvml_list_processes(struct nvml *n, struct nvml_device *d, nvml_processes_fn fn)
{
	for (int attempt = 0; attempt < NVML_ATTEMPTS; attempt++) {
		unsigned count = n->entries_cap;
		/* A byte buffer: the driver may write 32-byte entries (see above). */
		nvmlReturn_t r = fn(d->handle, &count,
				    count ? (nvmlProcessInfo_t *)(void *)n->entries : NULL);

		if (r == NVML_SUCCESS)
			return count <= n->entries_cap ? (long)count : 0;
		if (r != NVML_ERROR_INSUFFICIENT_SIZE || count > NVML_PROCESSES_MAX) {
			nvml_ok(d, r);
			return 0;
		}
		if (nvml_grow_entries(n, count + NVML_SLACK(count)) < 0)
			return -ENOMEM;
	}
	log_debug("NVML: the process list kept growing; read at the next sample");
	return 0;
}

static int nvml_grow_procs(struct nvml_process **procs, size_t *cap, size_t need)
{
	struct nvml_process *grown;
	size_t want;

	if (need <= *cap)
		return 0;
	want = *cap ? *cap : 64;
	while (want < need)
		want *= 2;
	grown = realloc(*procs, want * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	*procs = grown;
	*cap = want;
	return 0;
}

/* A process already listed for this GPU (from first on), or NULL. */
static struct nvml_process *nvml_find_process(struct nvml_process *procs, size_t first, size_t end,
					      pid_t pid)
{
	for (size_t i = first; i < end; i++)
		if (procs[i].pid == pid)
			return &procs[i];
	return NULL;
}

/* Append one list (compute or graphics) of GPU index; a process already
 * there from the other list stays one entry. */
static int nvml_add_processes(struct nvml *n, unsigned index, nvml_processes_fn fn, bool graphics,
			      struct nvml_process **procs, size_t *nprocs, size_t *proc_cap, size_t first)
{
	struct nvml_device *d = &n->devices[index];
	long count;
	size_t stride;
	int ret;

	if (!fn || d->lost)
		return 0;
	count = nvml_list_processes(n, d, fn);
	if (count <= 0)
		return (int)count;
	stride = nvml_entry_stride(n, (unsigned)count);
	if (stride == 0)
		return 0;
	ret = nvml_grow_procs(procs, proc_cap, *nprocs + (size_t)count);
	if (ret < 0)
		return ret;
	for (unsigned i = 0; i < (unsigned)count; i++) {
		pid_t pid = (pid_t)nvml_entry_pid(n->entries, stride, i);
		uint64_t used = nvml_entry_memory(n->entries, stride, i);
		struct nvml_process *p = nvml_find_process(*procs, first, *nprocs, pid);

		if (p) {
			if (p->mem_used == UINT64_MAX || (used != UINT64_MAX && used > p->mem_used))
				p->mem_used = used;
			continue;
		}
		p = &(*procs)[(*nprocs)++];
		*p = (struct nvml_process){
			.gpu = index, .pid = pid, .mem_used = used, .sm_util = -1, .graphics = graphics,
		};
	}
	return 0;
}

/* Oldest first, so that the newest sample of a process is applied last.
 * An insertion sort: the driver's samples come nearly in order, and
 * qsort() may allocate. */
static void nvml_sort_samples(nvmlProcessUtilizationSample_t *samples, size_t count)
{
	for (size_t i = 1; i < count; i++) {
		nvmlProcessUtilizationSample_t s = samples[i];
		size_t j = i;

		for (; j > 0 && samples[j - 1].timeStamp > s.timeStamp; j--)
			samples[j] = samples[j - 1];
		samples[j] = s;
	}
}

/* The utilisation samples since the last reading into n->samples: their
 * number, 0 for none, -ENOMEM. */
static long nvml_list_samples(struct nvml *n, struct nvml_device *d)
{
	for (int attempt = 0; attempt < NVML_ATTEMPTS; attempt++) {
		unsigned count = n->samples_cap;
		nvmlProcessUtilizationSample_t *grown;
		nvmlReturn_t r;

		/* With no buffer yet, a NULL one asks for the count. */
		r = n->fn.process_utilization(d->handle, count ? n->samples : NULL, &count, d->last_seen);
		if (r == NVML_SUCCESS && n->samples_cap)
			return count <= n->samples_cap ? (long)count : 0;
		if (r == NVML_SUCCESS && count == 0)
			return 0;
		if ((r != NVML_SUCCESS && r != NVML_ERROR_INSUFFICIENT_SIZE) || count > NVML_PROCESSES_MAX) {
			/* NOT_FOUND: no sample since last_seen. */
			nvml_ok(d, r);
			return 0;
		}
		count += NVML_SLACK(count);
		grown = realloc(n->samples, count * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		n->samples = grown;
		n->samples_cap = count;
	}
	return 0;
}

/* The SM utilisation of the processes of GPU index listed from first on:
 * the newest sample of each; a process without one keeps -1. */
static int nvml_add_utilisation(struct nvml *n, unsigned index, struct nvml_process *procs,
				size_t first, size_t end)
{
	struct nvml_device *d = &n->devices[index];
	long count;

	if (!n->fn.process_utilization || d->lost || first == end)
		return 0;
	count = nvml_list_samples(n, d);
	if (count <= 0)
		return (int)count;
	nvml_sort_samples(n->samples, (size_t)count);
	for (long i = 0; i < count; i++) {
		const nvmlProcessUtilizationSample_t *s = &n->samples[i];
		struct nvml_process *p = nvml_find_process(procs, first, end, (pid_t)s->pid);

		if (p)
			p->sm_util = nvml_percent(s->smUtil);
		if (s->timeStamp > d->last_seen)
			d->last_seen = s->timeStamp;
	}
	return 0;
}

static int nvml_read_processes(struct nvml *n, unsigned index, struct nvml_process **procs,
			       size_t *nprocs, size_t *proc_cap)
{
	size_t first = *nprocs;
	int ret;

	ret = nvml_add_processes(n, index, n->fn.compute_processes, false, procs, nprocs, proc_cap, first);
	if (ret == 0)
		ret = nvml_add_processes(n, index, n->fn.graphics_processes, true, procs, nprocs, proc_cap,
					 first);
	if (ret == 0)
		ret = nvml_add_utilisation(n, index, *procs, first, *nprocs);
	return ret;
}

/* ---- one reading ---- */

/* The current GPU count, the device table made to match. */
static int nvml_count(struct nvml *n, unsigned *count)
{
	nvmlReturn_t r = n->fn.device_count(count);

	if (r != NVML_SUCCESS || *count > NVML_GPUS_MAX) {
		int ret = r != NVML_SUCCESS ? nvml_errno(r) : -EIO;

		/* Said once per change: the sampler asks every second. */
		if (r != n->last_count_error)
			log_warn("NVML could not count the GPUs: %s",
				 r != NVML_SUCCESS ? nvml_error_text(n, r) : "an unbelievable count");
		n->last_count_error = r != NVML_SUCCESS ? r : -1;
		return ret;
	}
	n->last_count_error = 0;
	if (*count != n->ndevices)
		return nvml_devices_reset(n, *count);
	return 0;
}

static int nvml_sample_locked(struct nvml *n, struct nvml_gpu **gpus, size_t *ngpus, size_t *gpu_cap,
			      struct nvml_process **procs, size_t *nprocs, size_t *proc_cap)
{
	unsigned count;
	int ret;

	ret = nvml_count(n, &count);
	if (ret < 0)
		return ret;
	if (count > *gpu_cap) {
		struct nvml_gpu *grown = realloc(*gpus, count * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		*gpus = grown;
		*gpu_cap = count;
	}
	for (unsigned i = 0; i < count; i++) {
		if (!nvml_read_gpu(n, i, &(*gpus)[i]))
			continue;
		ret = nvml_read_processes(n, i, procs, nprocs, proc_cap);
		if (ret < 0)
			return ret;
		/* Lost while its processes were read. */
		if (n->devices[i].lost) {
			(*gpus)[i].lost = true;
			n->devices[i].have_handle = false;
		}
	}
	*ngpus = count;
	return 0;
}

int nvml_sample(struct nvml *n, struct nvml_gpu **gpus, size_t *ngpus, size_t *gpu_cap,
		struct nvml_process **procs, size_t *nprocs, size_t *proc_cap)
{
	int ret;

	if (!n || !gpus || !ngpus || !gpu_cap || !procs || !nprocs || !proc_cap)
		return -EINVAL;
	*ngpus = 0;
	*nprocs = 0;
	pthread_mutex_lock(&n->lock);
	ret = nvml_sample_locked(n, gpus, ngpus, gpu_cap, procs, nprocs, proc_cap);
	pthread_mutex_unlock(&n->lock);
	if (ret < 0) {
		*ngpus = 0;
		*nprocs = 0;
	}
	return ret;
}
