/* SPDX-License-Identifier: MIT */
/*
 * The ABI of NVIDIA's management library, libnvidia-ml.so.1: the types,
 * return codes, constants and function signatures of NVML as NVIDIA
 * documents them (NVML API reference; the public nvml.h of NVML 13,
 * x86_64), declared here without nvml.h.  Only NVML's own names: what
 * gpubox does with them lives in nvml.c.  Shared by src/agent/nvml.c,
 * which loads the library with dlopen(), and tests/fake-nvml/fake_nvml.c,
 * which stands in for it, so the two cannot disagree.
 *
 * Each function's type is declared once (nvmlXxx_fn): nvml.c keeps
 * pointers to them, the fake declares its exports with them.
 */
#ifndef GPUBOX_NVML_ABI_H
#define GPUBOX_NVML_ABI_H

#include <stddef.h>

typedef int nvmlReturn_t;   /* an enum: 4 bytes */
typedef struct nvmlDevice_st *nvmlDevice_t;

enum {
	NVML_SUCCESS = 0,
	NVML_ERROR_UNINITIALIZED = 1,
	NVML_ERROR_INVALID_ARGUMENT = 2,
	NVML_ERROR_NOT_SUPPORTED = 3,
	NVML_ERROR_NO_PERMISSION = 4,
	NVML_ERROR_ALREADY_INITIALIZED = 5,
	NVML_ERROR_NOT_FOUND = 6,
	NVML_ERROR_INSUFFICIENT_SIZE = 7,
	NVML_ERROR_DRIVER_NOT_LOADED = 9,
	NVML_ERROR_TIMEOUT = 10,
	NVML_ERROR_LIBRARY_NOT_FOUND = 12,
	NVML_ERROR_FUNCTION_NOT_FOUND = 13,
	NVML_ERROR_GPU_IS_LOST = 15,
	NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18,
	NVML_ERROR_MEMORY = 20,
	NVML_ERROR_NO_DATA = 21,
	NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
	NVML_ERROR_DEPRECATED = 26,
	NVML_ERROR_NOT_READY = 27,
	NVML_ERROR_GPU_NOT_FOUND = 28,
	NVML_ERROR_UNKNOWN = 999,
};

/* nvmlDeviceGetTemperature()'s sensor: the GPU die. */
#define NVML_TEMPERATURE_GPU 0
/* nvmlMemory_v2_t.version: its size and version 2. */
#define NVML_MEMORY_V2_VERSION (40u | (2u << 24))

typedef struct {
	unsigned long long total;
	unsigned long long free;
	unsigned long long used;
} nvmlMemory_t;

typedef struct {
	unsigned version;
	unsigned long long total;
	unsigned long long reserved;
	unsigned long long free;
	unsigned long long used;
} nvmlMemory_v2_t;

typedef struct {
	unsigned gpu;      /* percent */
	unsigned memory;   /* percent */
} nvmlUtilization_t;

/* v2 and v3 alike.  GI/CI ids are 0xFFFFFFFF when MIG is off. */
typedef struct {
	unsigned pid;
	unsigned long long usedGpuMemory;
	unsigned gpuInstanceId;
	unsigned computeInstanceId;
} nvmlProcessInfo_t;

typedef struct {
	unsigned pid;
	unsigned long long timeStamp;   /* µs */
	unsigned smUtil;
	unsigned memUtil;
	unsigned encUtil;
	unsigned decUtil;
} nvmlProcessUtilizationSample_t;

typedef struct {
	char busIdLegacy[16];
	unsigned domain;
	unsigned bus;
	unsigned device;
	unsigned pciDeviceId;
	unsigned pciSubSystemId;
	char busId[32];
} nvmlPciInfo_t;

_Static_assert(sizeof(nvmlReturn_t) == 4, "nvmlReturn_t is a 4-byte enum");
_Static_assert(sizeof(nvmlMemory_t) == 24 && offsetof(nvmlMemory_t, used) == 16, "nvmlMemory_t");
_Static_assert(sizeof(nvmlMemory_v2_t) == 40 && offsetof(nvmlMemory_v2_t, total) == 8 &&
	       offsetof(nvmlMemory_v2_t, used) == 32, "nvmlMemory_v2_t");
_Static_assert(sizeof(nvmlUtilization_t) == 8 && offsetof(nvmlUtilization_t, memory) == 4,
	       "nvmlUtilization_t");
_Static_assert(sizeof(nvmlProcessInfo_t) == 24 && offsetof(nvmlProcessInfo_t, usedGpuMemory) == 8 &&
	       offsetof(nvmlProcessInfo_t, computeInstanceId) == 20, "nvmlProcessInfo_t");
_Static_assert(sizeof(nvmlProcessUtilizationSample_t) == 32 &&
	       offsetof(nvmlProcessUtilizationSample_t, timeStamp) == 8 &&
	       offsetof(nvmlProcessUtilizationSample_t, smUtil) == 16 &&
	       offsetof(nvmlProcessUtilizationSample_t, decUtil) == 28, "nvmlProcessUtilizationSample_t");
_Static_assert(sizeof(nvmlPciInfo_t) == 68 && offsetof(nvmlPciInfo_t, domain) == 16 &&
	       offsetof(nvmlPciInfo_t, busId) == 36, "nvmlPciInfo_t");

/* ---- the functions, by their exported names ---- */

typedef nvmlReturn_t nvmlInit_v2_fn(void);   /* reference counted */
typedef nvmlReturn_t nvmlShutdown_fn(void);
typedef const char *nvmlErrorString_fn(nvmlReturn_t result);
typedef nvmlReturn_t nvmlSystemGetDriverVersion_fn(char *version, unsigned length);
typedef nvmlReturn_t nvmlDeviceGetCount_v2_fn(unsigned *count);
typedef nvmlReturn_t nvmlDeviceGetHandleByIndex_v2_fn(unsigned index, nvmlDevice_t *device);
typedef nvmlReturn_t nvmlDeviceGetName_fn(nvmlDevice_t device, char *name, unsigned length);
typedef nvmlReturn_t nvmlDeviceGetUUID_fn(nvmlDevice_t device, char *uuid, unsigned length);
typedef nvmlReturn_t nvmlDeviceGetPciInfo_v3_fn(nvmlDevice_t device, nvmlPciInfo_t *pci);
/* The N of /dev/nvidiaN. */
typedef nvmlReturn_t nvmlDeviceGetMinorNumber_fn(nvmlDevice_t device, unsigned *minor);
typedef nvmlReturn_t nvmlDeviceGetMemoryInfo_fn(nvmlDevice_t device, nvmlMemory_t *memory);
/* memory->version set to NVML_MEMORY_V2_VERSION first. */
typedef nvmlReturn_t nvmlDeviceGetMemoryInfo_v2_fn(nvmlDevice_t device, nvmlMemory_v2_t *memory);
typedef nvmlReturn_t nvmlDeviceGetUtilizationRates_fn(nvmlDevice_t device,
						      nvmlUtilization_t *utilization);
typedef nvmlReturn_t nvmlDeviceGetTemperature_fn(nvmlDevice_t device, int sensor, unsigned *temp);
typedef nvmlReturn_t nvmlDeviceGetPowerUsage_fn(nvmlDevice_t device, unsigned *milliwatts);
typedef nvmlReturn_t nvmlDeviceGetMigMode_fn(nvmlDevice_t device, unsigned *current,
					     unsigned *pending);
/* nvmlDeviceGet{Compute,Graphics}RunningProcesses_v3 (and _v2). */
typedef nvmlReturn_t nvmlDeviceGetRunningProcesses_v3_fn(nvmlDevice_t device, unsigned *count,
							 nvmlProcessInfo_t *infos);
typedef nvmlReturn_t nvmlDeviceGetProcessUtilization_fn(nvmlDevice_t device,
							nvmlProcessUtilizationSample_t *utilization,
							unsigned *count,
							unsigned long long lastSeenTimeStamp);

#endif
