/* SPDX-License-Identifier: MIT */
/*
 * The host's NVIDIA GPUs: the driver injected into containers (gpu.c) and
 * NVML, loaded at run time (nvml.c).
 * Every function returns 0 or a negative errno unless it says otherwise.
 */
#ifndef GPUBOX_AGENT_GPU_H
#define GPUBOX_AGENT_GPU_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "container/container.h"

struct ldcache_entry;

/* ---- gpu.c: the host's NVIDIA driver, injected into containers ------------ */

#define GPU_MAX 64
#define GPU_NODES_MAX 160
#define GPU_FILES_MAX 128
#define GPU_VERSION_MAX 32
#define GPU_UUID_MAX 64
#define GPU_NAME_MAX 128
#define GPU_RULE_MAX 40
#define GPU_PLAN_MOUNTS (GPU_FILES_MAX + GPU_NODES_MAX + 8)
/* Inside the container (and in the agent's layer), relative to its root. */
#define GPU_LIB_DIR "usr/lib/gpubox-nvidia"
#define GPU_BIN_DIR "usr/bin"
#define GPU_CONF_FILE "etc/ld.so.conf.d/gpubox-nvidia.conf"
/* The container's GPUs for Podman inside it (cdi.c). */
#define GPU_CDI_DIR "etc/cdi"
#define GPU_CDI_FILE GPU_CDI_DIR "/gpubox-nvidia.json"
#define GPU_CDI_DOCKER_FILE GPU_CDI_DIR "/gpubox-nvidia.docker-args"
/* The NVML interposer (src/nvmlshim): bound at GPU_LIB_DIR/GPU_NVML_INTERPOSER,
 * where libnvidia-ml.so.1 points; the real library is bound into
 * GPU_NVML_REAL_DIR (no loader cache lists it), where GPU_NVML_REAL_LINK,
 * the interposer's dependency, points to it. */
#define GPU_NVML_SONAME "libnvidia-ml.so.1"
#define GPU_NVML_INTERPOSER "libgpubox-nvml.so"
#define GPU_NVML_REAL_DIR GPU_LIB_DIR "/real"
#define GPU_NVML_REAL_LINK "libgpubox-nvml-real.so"

enum {
	GPU_CAP_UTILITY  = 1 << 0,
	GPU_CAP_COMPUTE  = 1 << 1,
	GPU_CAP_VIDEO    = 1 << 2,
	GPU_CAP_GRAPHICS = 1 << 3,
	GPU_CAP_ALL      = 15,
};

struct gpu_device {
	unsigned index;            /* in PCI bus order, as nvidia-smi numbers them */
	unsigned minor;            /* /dev/nvidia<minor> */
	char bus_id[32];
	char uuid[GPU_UUID_MAX];
	char model[96];
};

struct gpu_node {
	char host[PATH_MAX];       /* the node on the host (below gpu_root) */
	char target[64];           /* "dev/nvidia0" */
	unsigned major, minor;
	int gpu;                   /* index of its GPU; -1: every container needs it */
};

struct gpu_file {
	char host[PATH_MAX];       /* the real file on the host, links resolved */
	char name[GPU_NAME_MAX];   /* its file name: "libcuda.so.580.65.06", "nvidia-smi" */
	char soname[GPU_NAME_MAX]; /* libraries: "libcuda.so.1" */
	unsigned caps;
	bool binary;
};

struct gpu_host {
	bool present;
	char reason[160];          /* when not present: one sentence */
	char root[PATH_MAX];
	char version[GPU_VERSION_MAX];
	struct gpu_device gpus[GPU_MAX];
	size_t ngpus;
	struct gpu_node nodes[GPU_NODES_MAX];
	size_t nnodes;
	struct gpu_file files[GPU_FILES_MAX];
	size_t nfiles;
	char persistenced_socket[PATH_MAX];
};

struct gpu_plan_mount {
	char source[PATH_MAX];
	char target[PATH_MAX];
	char options[96];
};

/* What one start injects; large: allocate it. */
struct gpu_plan {
	char dir[PATH_MAX];        /* <state>/users/<m>/gpu */
	char layer[PATH_MAX];      /* <dir>/layer: stacked under the member's layer */
	char version[GPU_VERSION_MAX];
	uint64_t mask;             /* the container's GPUs, by index */
	struct gpu_plan_mount mount_text[GPU_PLAN_MOUNTS];
	struct container_mount mounts[GPU_PLAN_MOUNTS];
	size_t nmounts;
	char device_text[GPU_NODES_MAX][GPU_RULE_MAX];
	const char *devices[GPU_NODES_MAX + 1];
	size_t ndevices;
	struct {                   /* the GPUs' own nodes, bound after the start */
		char host[PATH_MAX];
		char target[64];
	} late[GPU_NODES_MAX];
	size_t nlate;
	char nvml_interposer[PATH_MAX];  /* the host's interposer; "": not injected */
	char nvml_real[GPU_NAME_MAX];    /* the real libnvidia-ml's file name */
};

/* Parsers of the driver's /proc files; -EINVAL when malformed. */
int gpu_parse_version(const char *text, char *out, size_t outlen);
int gpu_parse_information(const char *text, struct gpu_device *out);
/* "utility compute ..." (blanks or commas) to GPU_CAP_* bits. */
int gpu_parse_capabilities(const char *text, unsigned *caps, char *err, size_t errlen);
/* The capability of a driver library's file name if it ends in version, else 0. */
unsigned gpu_library_caps(const char *name, const char *version);
/* Everything below root ("" = the host); host->present false, with a
 * reason, on a server without the driver or a GPU (not an error). */
int gpu_discover(const char *root, unsigned caps, struct gpu_host *host);
/* An index or a UUID to the GPU's index; -ENOENT, -EINVAL. */
int gpu_find(const struct gpu_host *host, const char *selector, size_t *index);
/* A set ("all", "none", or indices and UUIDs) to a mask of indices; GPUs
 * not on this server are left out with a warning. */
int gpu_select(const struct gpu_host *host, const char *set, uint64_t *mask, char *err,
	       size_t errlen);
/* "c MAJOR:MINOR rwm" */
int gpu_node_rule(const struct gpu_node *node, char *buf, size_t len);
/* Whether the devices cgroup is v1 here (cgroup2 not mounted at /sys/fs/cgroup). */
bool gpu_cgroup_v1(void);
/* The mounts and device rules for the GPUs in mask, files kept in dir.
 * proc_exists: the kernel's /proc/driver/nvidia exists (a real driver). */
int gpu_plan_build(const struct gpu_host *host, uint64_t mask, const char *dir,
		   bool proc_exists, struct gpu_plan *plan);
/* Interpose NVML in the plan: the real libnvidia-ml bound into
 * GPU_NVML_REAL_DIR, the interposer at the host path interposer bound in
 * its place.  -ENOENT when the driver's files have no libnvidia-ml. */
int gpu_plan_nvml(const struct gpu_host *host, struct gpu_plan *plan, const char *interposer);
/* Write the agent's files of a start: dir, the /proc copy, the layer. */
int gpu_prepare(const struct gpu_host *host, const struct gpu_plan *plan, uint32_t subid_base);
/* The loader cache for the container's merged tree (mounted with the
 * layer), by the host's static ldconfig, written into the layer. */
int gpu_ldconfig(const struct gpu_host *host, const struct gpu_plan *plan, const char *rootfs,
		 uint32_t subid_base, const char *ldconfig);
int gpu_check_entry(const struct ldcache_entry *entry, void *data);
/* Add (bind) or remove the node at target ("dev/nvidia1") in the mount
 * namespace of a running container's init pid. */
int gpu_live_node(pid_t pid, const char *host_path, const char *target, bool add);
/* The same in two halves, so that changes of several containers overlap
 * (a mount's end waits for the kernel's grace period): start (a child
 * does the change), then finish (wait for it; every started job must be
 * finished). */
struct gpu_live_job {
	pid_t child;
	bool add;
	char target[64];
};
int gpu_live_start(pid_t pid, const char *host_path, const char *target, bool add,
		   struct gpu_live_job *job);
int gpu_live_finish(struct gpu_live_job *job);
/* Whether the node at target ("dev/nvidia1") is a character device in
 * the container of init pid now: 1, 0, or a negative errno. */
int gpu_live_node_present(pid_t pid, const char *target);
/* Whether GPU index's own node is in the container of pid now. */
bool gpu_live_gpu_present(const struct gpu_host *host, pid_t pid, size_t index);
/* Bind the plan's GPU nodes into the container just started. */
int gpu_start_nodes(const struct gpu_plan *plan, pid_t pid);

/* In a child about to run a program on a container's tree: no network,
 * no host IPC or host name, no capability to regain, no inherited
 * descriptor.  0 or -1 (errno set); system calls only. */
int gpu_ldconfig_confine(void);

/* ---- cdi.c: the container's GPUs as a CDI spec, for Podman inside -------- */

/* For the GPUs of mask, the spec's JSON text (devices by index, by UUID
 * and "all") in *spec_text, and its device "all" as Docker's options, one
 * a line (--device=, --volume=, --env=; Docker 20.10 has no CDI), in
 * *docker_args; nvml_real: the real libnvidia-ml's file name where the
 * interposer stands in its place ("" or NULL: none).  Both the caller's;
 * -ENOMEM (both NULL) when memory ran out. */
int gpu_cdi_render(const struct gpu_host *host, uint64_t mask, const char *nvml_real,
		   char **spec_text, char **docker_args);
/* Both rendered and written at GPU_CDI_FILE and GPU_CDI_DOCKER_FILE below
 * the layer directory layer_fd (whose GPU_CDI_DIR exists), owned by uid,
 * in place. */
int gpu_cdi_write(int layer_fd, const struct gpu_host *host, uint64_t mask, const char *nvml_real,
		  uid_t uid);

/* ---- holders.c: the processes of a container holding a GPU --------------- */

#define GPU_HOLDERS_MAX 1024       /* found in one search; more are "more" */
#define GPU_HOLDERS_SHOWN 8        /* named in one sentence */
#define GPU_HOLDERS_TEXT_MAX 1024

struct gpu_holder {
	pid_t pid;                 /* on the host */
	pid_t ns_pid;              /* inside the container */
	unsigned long long start_ticks;
	char command[128];
	int pidfd;                 /* the agent's handle: never a pid to signal */
	bool ended;
	uint64_t gpus;             /* the GPUs it holds, by index (gpu_holders_usage) */
	char member[MEMBER_NAME_SIZE];   /* whose container it runs in */
};

struct gpu_holders {
	struct gpu_holder *list;
	size_t n;
	bool more;                 /* more than GPU_HOLDERS_MAX were found */
};

/* The device numbers of GPU index's own nodes (its /dev/nvidiaN, its MIG
 * capabilities), at most max; how many. */
size_t gpu_holders_devices(const struct gpu_host *host, size_t index, dev_t *devs, size_t max);
/* The processes of member's container that hold one of the character
 * devices devs open or mapped, each held by a pidfd.  Bounded in time:
 * -ETIMEDOUT when the search does not end. */
int gpu_holders_find(const char *member, const dev_t *devs, size_t ndevs, struct gpu_holders *out);
/* Every process of any member's container holding a GPU of host, in one
 * search (bounded as above), each with its member and the GPUs it holds:
 * open, and mapped when mappings (the search's costly part).  Not held by
 * pidfds: to decide on, never to signal. */
int gpu_holders_usage(const struct gpu_host *host, bool mappings, struct gpu_holders *out);
void gpu_holders_clear(struct gpu_holders *h);
/* Send sig to each holder not yet ended. */
void gpu_holders_signal(struct gpu_holders *h, int sig);
/* Wait up to timeout_ms for the holders to end; how many still run. */
size_t gpu_holders_wait(struct gpu_holders *h, unsigned timeout_ms);
/* "pid 42 (python3 train.py), pid 57 (sleep 100) and 3 more": pids as
 * seen inside the container; running_only leaves out those ended. */
void gpu_holders_describe(const struct gpu_holders *h, bool running_only, char *buf, size_t len);

/* ---- reserve.c: the rules of GPU reservations (no system calls) ---------- */

/*
 * A reservation makes GPUs one member's alone for a time; a request that
 * cannot be granted may wait in a queue, served in order of arrival.
 * These are the rules only, on masks of GPU indices: the agent's
 * reservations.c reads the records and the processes and applies them.
 */

#define RESERVE_GPU_LIST_MAX 1024  /* the text of a --gpu list */
#define RESERVE_MASK_TEXT_MAX 256  /* "GPUs 0, 1 and 3" */

/* One reservation, granted (active) or waiting (queued). */
struct reserve_entry {
	long long id;              /* in order of arrival */
	char member[MEMBER_NAME_SIZE];
	uint64_t mask;             /* its GPUs; a queued request for any GPUs: 0 */
	unsigned count;            /* how many GPUs it has or asks for */
	bool active;
	uint64_t recorded;         /* queued: the member's own GPU set */
	bool served;               /* set by reserve_serve_queue() */
};

/* The GPUs the processes of one member's container hold. */
struct reserve_usage {
	char member[MEMBER_NAME_SIZE];
	uint64_t mask;
};

/* The server's rules, from its configuration. */
struct reserve_rules {
	unsigned ngpus;
	uint64_t shared;           /* reserve_shared_gpus: never reservable */
	unsigned max_gpus;         /* reserve_max_gpus, per reservation and per member (0: ngpus) */
	unsigned cap;              /* gpu_cap: GPUs held at once, reserved or in use (0: none) */
};

/* Everything a decision looks at; entries in order of arrival. */
struct reserve_world {
	struct reserve_rules rules;
	struct reserve_entry *entries;
	size_t nentries;
	const struct reserve_usage *usage;
	size_t nusage;
};

struct reserve_request {
	const char *member;
	uint64_t recorded;         /* the member's GPU set */
	uint64_t want;             /* the GPUs named; 0: any, count of them */
	unsigned count;
};

enum reserve_verdict {
	RESERVE_GRANTED,
	/* Never, whatever happens meanwhile: refused, not queued. */
	RESERVE_NOT_IN_SET,        /* a GPU named is not in the member's set */
	RESERVE_SHARED,            /* ... is never reservable */
	RESERVE_OWN,               /* ... is reserved by the member already */
	RESERVE_TOO_MANY,          /* more GPUs than limit could ever allow */
	/* Not now: a request may wait for these. */
	RESERVE_RESERVED,          /* a GPU is reserved by another member */
	RESERVE_IN_USE,            /* ... is held by another member's process */
	RESERVE_PROMISED,          /* ... is waited for by an earlier queued request */
	RESERVE_TOO_FEW,           /* fewer free GPUs than count */
	RESERVE_OVER_MAX,          /* the member's reserved GPUs would pass max_gpus */
	RESERVE_OVER_CAP,          /* reserved and in use would pass cap */
};

struct reserve_decision {
	enum reserve_verdict verdict;
	uint64_t grant;            /* GRANTED: the GPUs */
	uint64_t culprits;         /* the GPUs the verdict is about */
	const char *other;         /* RESERVED, IN_USE, PROMISED: the other member concerned
				    * (points into the world) */
	long long other_id;        /* RESERVED, OWN, PROMISED: the reservation */
	uint64_t held;             /* OVER_MAX, OVER_CAP: what the member holds already */
	uint64_t free;             /* the GPUs free for the request */
	unsigned limit;            /* TOO_MANY, OVER_MAX, OVER_CAP: the bound */
};

/* Whether a request refused with v may wait in the queue. */
bool reserve_may_wait(enum reserve_verdict v);
/* Decide a request now.  claimed: GPUs earlier queued requests wait for
 * (reserve_claims()), which a later request may not take.  A request for
 * any GPUs takes those the member's processes hold first, then the lowest
 * indices. */
void reserve_decide(const struct reserve_world *w, const struct reserve_request *req,
		    uint64_t claimed, struct reserve_decision *out);
/* The GPUs the queued entries before entries[end] wait for: a named
 * request its GPUs, a request for any GPUs the free ones it would take. */
uint64_t reserve_claims(const struct reserve_world *w, size_t end);
/* Grant, in order of arrival, every queued entry that can be granted now:
 * its mask set, active and served made true; later ones see it granted.
 * How many were. */
size_t reserve_serve_queue(struct reserve_world *w);
/* The GPUs of member's container: its recorded set less the GPUs other
 * members' active reservations hold. */
uint64_t reserve_effective(const struct reserve_entry *entries, size_t n, const char *member,
			   uint64_t recorded);
/* The GPUs of member's active reservations. */
uint64_t reserve_of_member(const struct reserve_entry *entries, size_t n, const char *member);
/* The GPUs the processes of members other than member hold (member NULL: any). */
uint64_t reserve_used_by_others(const struct reserve_usage *usage, size_t n, const char *member);
/* The count lowest bits of from, those of prefer first; -ENOSPC when from
 * has fewer. */
int reserve_pick(uint64_t from, uint64_t prefer, unsigned count, uint64_t *out);
/* until_ms extended by seconds, as long as no more than max_seconds are
 * left after now_ms: 0, or -ERANGE. */
int reserve_extend_until(long long now_ms, long long until_ms, long long seconds,
			 long long max_seconds, long long *out);
/* A --gpu list: indices or UUIDs, separated by commas, each once.  -EINVAL
 * (malformed) or -ENOENT (no such GPU here) with one sentence in err. */
int reserve_parse_gpus(const struct gpu_host *host, const char *text, uint64_t *mask, char *err,
		       size_t errlen);
/* "GPU 3", "GPUs 0 and 3", "GPUs 0, 1 and 3"; "no GPU" for 0. */
void reserve_mask_text(uint64_t mask, char *buf, size_t len);
/* The mask of the GPUs 0..n-1. */
uint64_t reserve_all(unsigned n);

/* ---- reserveidle.c: reservations released when idle (no system calls) ---- */

/* A reservation's idle time, on a monotonic clock. */
struct reserve_idle_clock {
	long long id;
	long long since_ms;        /* every GPU of it idle since */
	bool due;                  /* handed out to be released */
};

struct reserve_idle_clocks {
	struct reserve_idle_clock *list;
	size_t n, cap;
};

/* A reservation to release. */
struct reserve_idle_due {
	long long id;
	char member[MEMBER_NAME_SIZE];
	uint64_t mask;
	long long idle_seconds;
};

void reserve_idle_free(struct reserve_idle_clocks *c);
/*
 * One reading at now_ms: the active entries whose GPUs are all in idle
 * keep their clock (or start one), the others lose it; each clock
 * release_ms old goes into due (room for n) once.  -ENOMEM: a clock
 * could not start (it starts at a later reading); due is still filled.
 */
int reserve_idle_update(struct reserve_idle_clocks *c, const struct reserve_entry *entries,
			size_t n, uint64_t idle, long long now_ms, long long release_ms,
			struct reserve_idle_due *due, size_t *ndue);

/* ---- nvml.c: NVIDIA's management library, loaded at run time ------------ */

/*
 * libnvidia-ml.so.1 is opened with dlopen() and declared by the project
 * itself (no nvml.h): a server without the driver, an old driver lacking a
 * symbol, or a GPU that falls off the bus are states to report, never
 * crashes.  Thread-safe after nvml_open(): each call takes the handle's lock.
 */
#define NVML_LIBRARY "libnvidia-ml.so.1"
#define NVML_TEXT_MAX 96

struct nvml;

struct nvml_gpu {
	unsigned index;
	unsigned minor;            /* N of /dev/nvidiaN; UINT_MAX unknown */
	char uuid[NVML_TEXT_MAX];
	char name[NVML_TEXT_MAX];
	char bus_id[32];
	bool lost;                 /* GPU_IS_LOST, or no handle any more */
	bool mig;                  /* MIG mode on: no utilisation */
	int util_gpu;              /* percent; -1 unknown */
	int util_mem;              /* percent; -1 unknown */
	uint64_t mem_total;        /* bytes; 0 unknown */
	uint64_t mem_used;         /* bytes */
	int temperature;           /* degrees C; -1 unknown */
	int power_mw;              /* milliwatts; -1 unknown */
};

struct nvml_process {
	unsigned gpu;              /* index of the GPU */
	pid_t pid;                 /* host pid: the driver knows no namespaces */
	uint64_t mem_used;         /* bytes; UINT64_MAX unknown */
	int sm_util;               /* percent; -1 no sample */
	bool graphics;             /* a graphics context, not compute */
};

/* Load the library by its soname and initialise it.  -ENOENT: no library
 * (no driver installed); -ENODEV: driver not loaded or no GPU; -EIO other
 * NVML errors.  err gets one sentence in every case. */
int nvml_open(struct nvml **out, char *err, size_t errlen);
void nvml_close(struct nvml *n);
/* "580.65.06"; "" unknown. */
const char *nvml_driver_version(struct nvml *n);
unsigned nvml_gpu_count(struct nvml *n);
/* One reading of every GPU into *gpus (*ngpus of them) and every process
 * on them into *procs (*nprocs).  Both arrays are grown with realloc and
 * kept by the caller between calls (*gpu_cap, *proc_cap: their capacity),
 * so a steady state allocates nothing.  The GPU count is asked once per
 * call.  A GPU that fails is marked lost; the others are read. */
int nvml_sample(struct nvml *n, struct nvml_gpu **gpus, size_t *ngpus, size_t *gpu_cap,
		struct nvml_process **procs, size_t *nprocs, size_t *proc_cap);
/* Whether the process entries are the 32-byte layout of drivers 535.43 to
 * 535.86 (detected from the symbols present at open). */
bool nvml_wide_process_entries(struct nvml *n);

#endif
