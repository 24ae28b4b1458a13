/* SPDX-License-Identifier: MIT */
/*
 * gpuboxd's private header: the prototypes of every file of the agent,
 * grouped under the file that defines them.  Function prefix = file name.
 * Every function returns 0 or a negative errno unless it says otherwise.
 */
#ifndef GPUBOX_AGENT_H
#define GPUBOX_AGENT_H

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/types.h>

#include <jansson.h>

#include "config.h"

#define SUBID_COUNT 65536u

struct agent;

/*
 * Progress of long work, passed down from a request to the code doing the
 * work; NULL when nobody is listening.
 */
struct progress {
	void (*emit)(struct progress *p, const char *text);
};

__attribute__((format(printf, 2, 3)))
void progress_say(struct progress *p, const char *fmt, ...);

/* ---- storage.c: the member's overlay of the shared template ------------ */

struct storage_paths {
	char dir[PATH_MAX];      /* <state>/users/<member> */
	char upper[PATH_MAX];    /* <dir>/layer/upper: the member's own files */
	char work[PATH_MAX];     /* <dir>/layer/work: overlayfs' work dir */
	char lower[PATH_MAX];    /* <dir>/lower: where the idmapped template is attached briefly */
	char rootfs[PATH_MAX];   /* <dir>/rootfs: the merged tree given to LXC */
};

int storage_paths(const char *state_dir, const char *member, struct storage_paths *out);
/* Create the directories; upper owned by subid_base:subid_base, 0755. Idempotent. */
int storage_prepare(const struct storage_paths *paths, uint32_t subid_base);
/* Mount template_rootfs idmapped (0 -> subid_base, 65536 ids) as the lower
 * layer of an overlay at paths->rootfs.  Idempotent: an existing overlay
 * mount there is kept. */
int storage_mount(const struct storage_paths *paths, const char *template_rootfs,
		  uint32_t subid_base);
/* The same with one more read-only layer (NULL: none) between the member's
 * layer and the template: the GPU driver's mount points (gpu.c). */
int storage_mount_layers(const struct storage_paths *paths, const char *template_rootfs,
			 const char *extra_lower, uint32_t subid_base);
/* Idempotent; a busy mount is detached (MNT_DETACH). */
int storage_unmount(const struct storage_paths *paths);
/* Whether paths->rootfs is an overlay mount point. */
bool storage_is_mounted(const struct storage_paths *paths);
/* Empty the member's layer (upper and work) and give the upper dir back
 * to subid_base, 0755.  -EBUSY while mounted. */
int storage_wipe(const struct storage_paths *paths, uint32_t subid_base);

/* ---- rootfs.c: writes into a container's tree, confined to it ---------- */

/* Every path below is relative to the tree's root; no component may be a
 * symbolic link and none may leave the tree (openat2 RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV).
 * uid/gid are host ids (already shifted). */
struct stat;
/* A descriptor (O_PATH) of the tree's root at path, or a negative errno. */
int rootfs_open(const char *path);
/* Like lstat(); a symbolic link anywhere, the last component included,
 * is -ELOOP. */
int rootfs_stat(int rootfd, const char *rel, struct stat *st);
/* Create each missing component; owner and mode are set on the ones
 * created and on the last one.  An existing non-directory is -ENOTDIR. */
int rootfs_mkdir(int rootfd, const char *rel, mode_t mode, uid_t uid, gid_t gid);
/* Replace rel atomically (temporary file, fsync, rename).  A symbolic
 * link at rel is refused with -ELOOP. */
int rootfs_write_file(int rootfd, const char *rel, const void *data, size_t len,
		      mode_t mode, uid_t uid, gid_t gid);
/* A regular file of at most max bytes; *data is NUL-terminated, caller
 * frees.  -EFBIG if larger, -EINVAL if not a regular file. */
int rootfs_read_file(int rootfd, const char *rel, size_t max, char **data, size_t *len);
/* Remove a file (a symbolic link itself, never its target); a missing
 * entry is success. */
int rootfs_unlink(int rootfd, const char *rel);

/* ---- provision.c: the member's account inside the container ------------- */

struct provision_member {
	const char *name;
	uint32_t uid;               /* the same number inside as on the host */
	uint32_t gid;
	uint32_t subid_base;        /* host id of the container's root */
	const char *hostname;       /* <server>-<member> */
	const char *authorized_keys;/* the whole file's text */
};

/* Hostname, /etc/hosts, account, passwordless sudo, home and keys,
 * resolv.conf.  Idempotent; run before every start. */
int provision_container(const char *rootfs_path, const struct provision_member *m);
/* Only the member's ~/.ssh/authorized_keys (m->authorized_keys), with the
 * same confinement: for key changes while the container runs.  -ENOENT
 * when the member's home is not there yet (the next start writes it). */
int provision_keys(const char *rootfs_path, const struct provision_member *m);

/* ---- template.c: versioned, read-only, unshifted root file systems ------ */

/*
 * Layout: <state_dir>/templates/NAME@VERSION/{rootfs/,manifest.json}.  A
 * build runs in <state_dir>/templates/.build-NAME-XXXXXX and is renamed to
 * its real name only when complete; builds are serialized by flock() on
 * <state_dir>/templates/.lock.
 */

/* Bump when the post-processing of a fresh tree changes: every template
 * is then rebuilt at the next template_build. */
#define TEMPLATE_SETUP_VERSION 1
#define TEMPLATE_HASH_HEX 65       /* SHA-256 in hex, with its NUL */

struct template_info {
	char name[64];
	uint32_t version;
	char ref[80];              /* NAME@VERSION */
	char rootfs[PATH_MAX];
	char recipe_hash[72];
	long long created;         /* unix time */
	unsigned long long size;   /* bytes, as measured at build */
};

/* Build NAME (NULL: the configured default) for release (NULL: the
 * configured one).  When the newest version's recipe is the same, returns
 * it with *cached = true and builds nothing.  Otherwise builds the next
 * version, saying each line of debootstrap's output to progress.  On error
 * writes one sentence for the admin into err (may be NULL). */
int template_build(const struct gpubox_config *cfg, const char *name, const char *release,
		   struct progress *progress, struct template_info *out, bool *cached,
		   char *err, size_t errlen);
/* The newest version of name; -ENOENT if none. */
int template_newest(const struct gpubox_config *cfg, const char *name, struct template_info *out);
/* A given NAME@VERSION; -ENOENT if absent, -EINVAL if ref is not one. */
int template_get(const struct gpubox_config *cfg, const char *ref, struct template_info *out);
/* All templates, as a JSON array of objects (each manifest without its
 * recipe text, plus "ref"), sorted by name then version. */
int template_list(const struct gpubox_config *cfg, json_t **out);

/*
 * The recipe of a build: release, mirror, the package list (blank- or
 * comma-separated; sorted and deduplicated here), arch (NULL: the host's)
 * and TEMPLATE_SETUP_VERSION, as text (*recipe, caller frees; may be NULL)
 * and its SHA-256 in hex.  -EINVAL with a sentence in err for a bad
 * release, mirror or package name.
 */
int template_recipe(const char *release, const char *mirror, const char *packages,
		    const char *arch, char **recipe, char hash[TEMPLATE_HASH_HEX],
		    char *err, size_t errlen);
/* The post-processing of a fresh rootfs opened at rootfd (host keys
 * removed, key generation unit, apt caches emptied, hostname removed,
 * locale, failing units masked, /etc/gpubox-template = ref).  Never
 * follows a symbolic link in the tree. */
int template_finish_rootfs(int rootfd, const char *ref);

/* A template that a newer version of the same name replaces: the newest
 * ref into newer and 1; 0 when ref is the newest (or not a ref). */
int template_newer(const struct gpubox_config *cfg, const char *ref, char *newer, size_t len);
/* Delete NAME@VERSION unless in_use(ref) says something uses it (then
 * -EBUSY, with who into err).  -ENOENT if absent. */
int template_remove(const struct gpubox_config *cfg, const char *ref,
		    int (*in_use)(void *data, const char *ref, char *who, size_t wholen),
		    void *data, char *err, size_t errlen);

/* ---- snapshot.c: archives of a member's own layer ----------------------- */

/*
 * Layout: <snapshot_dir>/<member>/<name>.tar.zst (pax, zstd), <name>.json
 * (the manifest: a snapshot exists when its manifest does) and
 * <name>.sha256 (sha256sum's format).  Written as *.tmp-XXXXXX, synced,
 * then renamed; stale temporary files are removed by snapshot_clean().
 */
#define SNAPSHOT_NAME_MAX 40

struct snapshot_stats {
	unsigned long long entries;
	unsigned long long content_bytes;     /* file data in the layer */
	unsigned long long archive_bytes;     /* the archive's size */
	char sha256[TEMPLATE_HASH_HEX];       /* of the archive's bytes */
};

struct snapshot_info {
	char name[SNAPSHOT_NAME_MAX + 1];
	char member[40];
	char template_ref[80];
	char template_hash[72];
	char server[64];
	long long created;
	unsigned long long size;              /* the archive's bytes */
	unsigned long long content_size;
	char sha256[TEMPLATE_HASH_HEX];
};

/* Archive the layer at upper_dir into out_fd: owners relative to
 * subid_base, zstd with threads (0: one per core), progress in percent. */
int snapshot_write(const char *upper_dir, int out_fd, uint32_t subid_base, unsigned threads,
		   struct progress *progress, struct snapshot_stats *stats, char *err, size_t errlen);
/* Extract an archive into the empty directory new_upper_dir as the ids of
 * subid_base, refusing what does not belong in a layer (see the file's
 * head); -EPERM with a sentence in err for a refused archive, -EBADMSG for
 * a damaged one.  stats->sha256 is the checksum of every byte read. */
int snapshot_extract(int archive_fd, const char *new_upper_dir, uint32_t subid_base,
		     struct progress *progress, struct snapshot_stats *stats, char *err, size_t errlen);
/* [A-Za-z0-9][A-Za-z0-9_-]{0,39}: a file name, never a path. */
int snapshot_check_name(const char *name, char *err, size_t errlen);
/* <snapshot_dir> (the configured one, or <state_dir>/snapshots). */
int snapshot_root(const struct gpubox_config *cfg, char *buf, size_t len);
/* <snapshot_dir>/<member>[/<name><suffix>]; name may be NULL. */
int snapshot_path(const struct gpubox_config *cfg, const char *member, const char *name,
		  const char *suffix, char *buf, size_t len);
/* The member's snapshots, oldest first (caller frees). */
int snapshot_list(const struct gpubox_config *cfg, const char *member,
		  struct snapshot_info **out, size_t *n);
/* -ENOENT when the member has no snapshot of that name. */
int snapshot_get(const struct gpubox_config *cfg, const char *member, const char *name,
		 struct snapshot_info *out);
int snapshot_manifest_write(const struct gpubox_config *cfg, const struct snapshot_info *info);
/* Manifest first (the snapshot is gone), then the archive. */
int snapshot_remove(const struct gpubox_config *cfg, const char *member, const char *name);
/* ".tmp-<server>-": the mark of this server's temporary files. */
void snapshot_tmp_mark(const struct gpubox_config *cfg, char *buf, size_t len);
/* Remove the member's temporary files of this server (those of another
 * server sharing the store after a day), and archives left without a
 * manifest for an hour. */
void snapshot_clean(const struct gpubox_config *cfg, const char *member);
/* 1 (and "member/name" into who) when a snapshot of any member uses ref. */
int snapshot_uses_template(const struct gpubox_config *cfg, const char *ref, char *who,
			   size_t wholen);

/* ---- aptsources.c: the Debian mirror, from the host's apt sources ------- */

#define APTSOURCES_URI_MAX 1024

enum aptsources_format {
	APTSOURCES_AUTO,           /* deb822 if the first field line looks like "Key: value" */
	APTSOURCES_ONE_LINE,       /* sources.list, *.list */
	APTSOURCES_DEB822,         /* *.sources */
};

/* Parse one sources file's text (one-line or deb822 format) and return the
 * URI of the first Debian archive entry: type "deb", enabled, a plain suite
 * (not -security, -updates, -backports, -proposed), an http://, https:// or
 * file:/ URI.  -ENOENT if there is none, -ENAMETOOLONG if it does not fit. */
int aptsources_parse_mirror(const char *text, size_t len, char *uri, size_t urilen);
int aptsources_parse(const char *text, size_t len, enum aptsources_format format,
		     char *uri, size_t urilen);
/* root (NULL or "/": the host) + /etc/apt/sources.list, then
 * the *.list and *.sources files of /etc/apt/sources.list.d, sorted. */
int aptsources_find_mirror(const char *root, char *uri, size_t urilen);
/* An http://, https:// or file:/ URI shorter than APTSOURCES_URI_MAX, of
 * letters, digits and -._~:/@%+,=[] only: safe as one argument. */
bool aptsources_uri_is_valid(const char *uri);

/* ---- network.c: the agent's bridge --------------------------------------- */

struct network_subnet {
	uint32_t host_address;     /* host order: the bridge's own address */
	uint32_t network;          /* host order */
	unsigned prefix;           /* 8..30 */
};

int network_parse_subnet(const char *cidr, struct network_subnet *out);
/* The address of the n-th member (n >= 0), as dotted text; -ERANGE if the
 * subnet is too small.  Skips the bridge's own address. */
int network_member_address(const struct network_subnet *subnet, uint32_t n, char *buf, size_t len);
/* Bridge exists, is up, has its address; IPv4 forwarding on.  Idempotent. */
int network_setup(const struct gpubox_config *cfg);
/* Delete the bridge if it exists (tests, uninstall). */
int network_teardown(const char *bridge);
/* "A.B.C.D/P" with P 0..32, any host bits; address in host order. */
int network_parse_cidr(const char *cidr, uint32_t *address, unsigned *prefix);
/* Dotted IPv4 text, strictly (inet_pton); address in host order. */
int network_parse_address(const char *text, uint32_t *address);
/* An interface name safe to print anywhere: 1..15 of [A-Za-z0-9_.-], not "." or "..". */
bool network_valid_ifname(const char *name);

/* ---- nft.c: the agent's nftables table ----------------------------------- */

struct nft_forward {
	uint16_t host_port;
	char container_address[16];
	uint16_t container_port;
};

struct nft_plan {
	const char *table;         /* e.g. "gpubox" */
	const char *bridge;        /* e.g. "gpbr0" */
	const char *subnet;        /* e.g. "10.77.0.0/16"; host bits are ignored */
	const struct nft_forward *forwards;
	size_t nforwards;
};

/* The whole table as nft(8) input that replaces it atomically: DNAT of
 * host:port to container:port (no masquerade of inbound), masquerade of
 * outbound container traffic, no traffic between containers (routed, and
 * bridged: a "bridge <table>" dropping frames between CONTAINER_VETH_PREFIX
 * ports), nothing into the containers but replies and forwards.  Caller
 * frees.  NULL with errno EINVAL when a field is not valid (each forward's
 * address must be a host of the subnet; a host port may appear once). */
char *nft_render(const struct nft_plan *plan);
/* Apply rendered text in one transaction (libnftables). */
int nft_apply(const char *ruleset);
/* Remove the table (ip and bridge) if it exists; no error if absent. */
int nft_remove(const char *table);
/* The output of "list table ip <table>" into *out (caller frees);
 * -ENOENT (not logged) if the table does not exist. */
int nft_list(const char *table, char **out);
/* A table name: [A-Za-z_][A-Za-z0-9_]{0,62}. */
bool nft_valid_table(const char *table);

/* ---- container.c: LXC ----------------------------------------------------- */

/* The host side of every container's veth is named CONTAINER_VETH_PREFIX
 * followed by the container's address in hex (unique on the host), so the
 * bridge table can isolate the containers by port name. */
#define CONTAINER_VETH_PREFIX "gpv"

/* A bind mount into the container: lxc.mount.entry = SOURCE TARGET none OPTIONS 0 0. */
struct container_mount {
	const char *source;        /* absolute host path */
	const char *target;        /* path inside the container, without the leading '/' */
	const char *options;       /* e.g. "bind,ro,nosuid,nodev,create=file"; [a-z0-9,=_-] */
	const char *fstype;        /* NULL: a bind mount; "tmpfs": source is "tmpfs" */
};

struct container_spec {
	const char *name;          /* LXC name: the member name */
	const char *lxcpath;       /* <state>/lxc */
	const char *rootfs;        /* merged overlay */
	const char *hostname;
	uint32_t subid_base;
	const char *address;       /* dotted IPv4 */
	unsigned prefix;
	const char *gateway;
	const char *bridge;
	const char *logfile;       /* NULL: <lxcpath>/<name>/lxc.log */
	const struct container_mount *mounts;  /* optional: GPU devices, driver files, socket */
	size_t nmounts;
	const char *const *devices;/* optional, NULL-terminated device rules: "c 195:* rwm" */
	bool cgroup_v1;            /* devices under lxc.cgroup (v1), not lxc.cgroup2 */
};

/* Seconds container_start() waits for LXC to report the container RUNNING. */
#define CONTAINER_START_TIMEOUT 60

enum container_state { CONTAINER_STOPPED, CONTAINER_STARTING, CONTAINER_RUNNING,
		       CONTAINER_STOPPING, CONTAINER_ABSENT };

/* The LXC configuration text for spec.  Caller frees.  NULL with errno
 * EINVAL when a field is not valid: names, hostnames, paths and options are
 * held to strict character sets, so nothing can break out of its line. */
char *container_render_config(const struct container_spec *spec);
/* Write the config and start the container in the background; returns
 * once LXC reports it RUNNING. */
int container_start(const struct container_spec *spec);
int container_stop(const char *lxcpath, const char *name, unsigned timeout);
enum container_state container_get_state(const char *lxcpath, const char *name);
const char *container_state_name(enum container_state state);
/* Wait until host:port answers with an SSH banner; -ETIMEDOUT. */
int container_wait_ssh(const char *address, uint16_t port, unsigned timeout,
		       struct progress *progress);

/* The init process of a running container (host pid), or a negative errno. */
int container_init_pid(const char *lxcpath, const char *name, pid_t *pid);
/* Allow or deny one device rule ("c 195:1 rwm") in a running container's
 * device cgroup, and in every cgroup below it (cgroup v1 copies rules down
 * only when a cgroup is made). */
int container_device_rule(const char *lxcpath, const char *name, const char *rule, bool allow);

/* ---- ldcache.c: glibc's /etc/ld.so.cache ---------------------------------- */

struct ldcache_entry {
	int32_t flags;             /* FLAG_ELF_LIBC6 | the architecture's flag */
	const char *key;           /* the soname: "libcuda.so.1" */
	const char *value;         /* its path: "/usr/lib/x86_64-linux-gnu/libcuda.so.1" */
	uint64_t hwcap;
};

/* Called for each entry; a non-zero return stops the walk and is returned. */
typedef int (*ldcache_fn)(const struct ldcache_entry *entry, void *data);

/* Walk the entries of a cache ("glibc-ld.so.cache1.1", alone or after an
 * "ld.so-1.7.0" table).  -EINVAL for anything malformed (every offset is
 * checked), -EPROTONOSUPPORT for an old-only or foreign-endian cache. */
int ldcache_parse(const void *data, size_t len, ldcache_fn fn, void *userdata);

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
/* Bind the plan's GPU nodes into the container just started. */
int gpu_start_nodes(const struct gpu_plan *plan, pid_t pid);

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

/* ---- procinfo.c: what /proc and the cgroups say about processes --------- */

#define PROCINFO_COMMAND_MAX 128

/* The member whose container a /proc/<pid>/cgroup text names (LXC's
 * "lxc.payload.<name>" or "lxc.monitor.<name>" component, cgroup v1 or
 * v2): 1 and the name into member; 0 for a process of the host; -EINVAL
 * for malformed text or a name that is not a valid member name. */
int procinfo_parse_cgroup(const char *text, size_t len, char *member, size_t memberlen);
/* The pid in the innermost namespace from a /proc/<pid>/status text's
 * "NSpid:" line; -ENOENT without one. */
int procinfo_parse_nspid(const char *text, size_t len, pid_t *inner);
/* From a /proc/<pid>/stat text: the start time in clock ticks after boot
 * (field 22) and comm (between the first '(' and the last ')'). */
int procinfo_parse_stat(const char *text, size_t len, unsigned long long *start_ticks,
			char *comm, size_t commlen);
/* A /proc/<pid>/cmdline (NUL-separated) as one printable line: NULs to
 * spaces, control bytes to '?', cut at outlen - 1. */
void procinfo_format_cmdline(const char *raw, size_t len, char *out, size_t outlen);

struct procinfo {
	pid_t pid;                 /* host */
	pid_t ns_pid;              /* inside its pid namespace (= pid on the host) */
	bool in_container;
	char member[40];           /* "" for the host */
	char command[PROCINFO_COMMAND_MAX];
	long long started;         /* unix time, seconds */
	unsigned long long start_ticks;
};

/* Everything above for a live process; -ESRCH if it is gone. */
int procinfo_read(pid_t pid, struct procinfo *out);

struct host_stats {
	unsigned ncpus;
	double cpu_percent;        /* of all CPUs, since the previous reading */
	uint64_t mem_total;        /* bytes */
	uint64_t mem_available;
	double load[3];
	uint64_t disk_total;       /* of the file system holding state_dir */
	uint64_t disk_used;
	uint64_t disk_read_bytes;  /* cumulative, every whole disk */
	uint64_t disk_write_bytes;
	uint64_t net_rx_bytes;     /* cumulative, every interface but lo */
	uint64_t net_tx_bytes;
	double disk_read_rate;     /* bytes per second since the previous reading */
	double disk_write_rate;
	double net_rx_rate;
	double net_tx_rate;
};

/* State kept between readings (previous counters, open descriptors). */
struct procinfo_host;
int procinfo_host_open(const char *disk_path, struct procinfo_host **out);
void procinfo_host_close(struct procinfo_host *h);
int procinfo_host_read(struct procinfo_host *h, struct host_stats *out);

/* Parsers behind procinfo_host_read, for tests and fuzzing. */
int procinfo_parse_cpu(const char *text, size_t len, uint64_t *busy, uint64_t *total);
int procinfo_parse_meminfo(const char *text, size_t len, uint64_t *total, uint64_t *available);
int procinfo_parse_loadavg(const char *text, size_t len, double load[3]);
int procinfo_parse_netdev(const char *text, size_t len, uint64_t *rx, uint64_t *tx);
int procinfo_parse_diskstats(const char *text, size_t len, uint64_t *read_bytes,
			     uint64_t *write_bytes);

struct container_stats {
	uint64_t cpu_ns;           /* cumulative CPU time of the container */
	uint64_t mem_used;         /* bytes, page cache excluded where the kernel says */
	uint64_t mem_limit;        /* bytes; 0 no limit */
};

/* A running container's usage from its cgroup (v1 cpuacct + memory, or
 * v2), LXC's "lxc.payload.<name>" directory; -ENOENT if not running. */
int procinfo_container(const char *name, struct container_stats *out);

/* ---- sample.c: one reading of the whole server ---------------------------- */

struct sample_process {
	unsigned gpu;
	pid_t pid;                 /* host */
	pid_t ns_pid;              /* inside the container; = pid for the host */
	char member[40];           /* "" for a process of the host */
	char command[PROCINFO_COMMAND_MAX];
	long long started;         /* unix time */
	uint64_t mem_used;         /* bytes; UINT64_MAX unknown */
	int sm_util;               /* percent; -1 unknown */
};

struct sample_container {
	char member[40];
	double cpu_percent;        /* of one CPU, since the previous tick */
	uint64_t cpu_ns;
	uint64_t mem_used;
	uint64_t mem_limit;
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
/* The whole reading for the hub: {"time", "server", "gpu_ok", "gpu_note",
 * "driver_version", "host": {...}, "gpus": [...], "processes": [{"gpu",
 * "member", "pid" (inside), "host_pid", ...}], "containers": [...]}; values
 * not known are left out. */
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
/* GPU-hours and GPU-memory-hours (GiB x hours) per member between from
 * and to: [{"member", "gpu_hours", "gpu_mem_gib_hours", "max_mem_used"}],
 * largest first.  A member counts on a GPU while it has a process there. */
int history_usage(struct history *h, long long from_ms, long long to_ms, json_t **out);

/* ---- sampler.c: the agent's reading of the server, every interval -------- */

struct sampler;

/* Start the sampling thread (NVML opened there; a server without it is
 * sampled without GPUs).  history may be NULL. */
int sampler_start(struct agent *a, struct history *history, struct sampler **out);
/* The same without the thread: the caller ticks (benchmarks, tests). */
int sampler_open(struct agent *a, struct history *history, struct sampler **out);
void sampler_stop(struct sampler *s);
/* A copy of the newest reading (caller calls sample_free); -EAGAIN before
 * the first. */
int sampler_latest(struct sampler *s, struct sample *out);
/* One tick, as the thread does it (benchmarks, tests): read, attribute,
 * store as the newest.  CPU time of the call into *cpu_ns when not NULL. */
int sampler_tick(struct sampler *s, uint64_t *cpu_ns);

/* ---- metrics.c: /metrics in Prometheus' text format ---------------------- */

/* The exposition text of a sample (caller frees): DCGM-like GPU metrics
 * (DCGM_FI_DEV_GPU_UTIL, DCGM_FI_DEV_FB_USED, ...) labelled gpu, uuid,
 * server; per member gpubox_member_gpu_memory_bytes and
 * gpubox_member_gpu_processes (labels member, gpu, uuid, server; never a
 * pid); host and container gauges.  show_members false: member labels are
 * left out of the per-member metrics (summed per GPU instead). */
char *metrics_render(const struct sample *s, bool show_members);

struct metrics_server;
/* Serve GET /metrics on cfg->metrics_listen ("HOST:PORT"); a bearer token
 * (cfg->metrics_token_file) is required unless the address is loopback.
 * Errors are logged and returned. */
int metrics_start(struct agent *a, struct metrics_server **out);
void metrics_stop(struct metrics_server *m);

/* ---- guest.c: each container's own socket --------------------------------- */

/*
 * <state_dir>/users/<member>/guest/sock, bound read-only into the
 * container at /dev/gpubox (where LXD keeps its own guest socket too).  The
 * agent knows which container asks from the socket that accepted the
 * connection, never from anything the container says.
 */
#define GUEST_TARGET "dev/gpubox"
#define GUEST_SOCKET_NAME "sock"
#define GUEST_CLI_TARGET "usr/local/bin/gpubox"

struct guests;

int guests_new(struct guests **out);
void guests_free(struct guests *g);
/* <state_dir>/users/<member>/guest */
int guest_dir(const struct gpubox_config *cfg, const char *member, char *buf, size_t len);
/* Listen on the member's socket (a new one replaces the old); the
 * directory is created 0755 root, the socket 0666. */
int guest_listen(struct agent *a, const char *member);
void guest_close(struct agent *a, const char *member);
/* The descriptors to poll, with their members; at most max.  Closes the
 * retired ones: only the request loop calls it. */
size_t guest_poll_set(struct guests *g, int *fds, char (*members)[40], size_t max);
/* Readable when the set changed (the poll loop then rebuilds its set). */
int guest_wake_fd(struct guests *g);
void guest_drain_wake(struct guests *g);

/* ---- alloc.c: ids, ports and addresses, never overlapping ---------------- */

struct id_range {
	uint32_t first;
	uint32_t count;
};

/* Lowest value in [range] not in used[]; -ENOSPC if none. */
int alloc_lowest_free(const struct config_range *range, const uint32_t *used, size_t nused,
		      uint32_t *out);
/* Lowest 65536-aligned block of SUBID_COUNT ids inside range overlapping
 * none of taken[] and never including id 0. */
int alloc_subid_block(const struct config_range *range, const struct id_range *taken,
		      size_t ntaken, uint32_t *out);

/* ---- db.c: the agent's state in SQLite ------------------------------------ */

struct db;

struct member_record {
	char name[40];
	uint32_t uid;
	uint32_t subid_base;
	uint32_t ssh_port;
	uint32_t address_index;
	char template_ref[80];     /* the template the member's layer sits on; "" before the first start */
	long long created;
};

struct forward_record {
	char member[40];
	uint32_t container_port;
	uint32_t host_port;
};

int db_open(const char *path, struct db **out);
void db_close(struct db *db);
/* A transaction around several changes (the agent serialises writers). */
int db_begin(struct db *db);
int db_commit(struct db *db);
void db_rollback(struct db *db);

int db_member_get(struct db *db, const char *name, struct member_record *out);
int db_member_by_uid(struct db *db, uint32_t uid, struct member_record *out);
int db_member_list(struct db *db, struct member_record **out, size_t *n);
int db_member_insert(struct db *db, const struct member_record *rec);
int db_member_delete(struct db *db, const char *name);
int db_member_set_template(struct db *db, const char *name, const char *ref);

/* Replace the member's keys with lines[0..n). */
int db_keys_set(struct db *db, const char *member, const char *const *lines,
		const char *const *fingerprints, size_t n);
/* The keys as authorized_keys text, each line prefixed with prefix. */
int db_keys_text(struct db *db, const char *member, const char *prefix, char **out);

int db_forward_add(struct db *db, const char *member, uint32_t container_port, uint32_t host_port);
int db_forward_remove(struct db *db, const char *member, uint32_t container_port);
/* member NULL: every member's. */
int db_forward_list(struct db *db, const char *member, struct forward_record **out, size_t *n);
int db_forward_by_host_port(struct db *db, uint32_t host_port, struct forward_record *out);

/* A member's GPU set as text ("all", "none", UUIDs); -ENOENT: none recorded
 * (the configured gpu_default applies). */
int db_gpu_set_get(struct db *db, const char *member, char *out, size_t len);
int db_gpu_set_put(struct db *db, const char *member, const char *gpus);

/* Members the hub manages (hubsync.c); the mark goes with the member. */
int db_hub_member_add(struct db *db, const char *member);
/* 1 when hub-managed, 0 when not, or a negative errno. */
int db_hub_member_is(struct db *db, const char *member);
int db_hub_member_list(struct db *db, char (**names)[40], size_t *n);

/* ---- member.c: members' host accounts and allocations -------------------- */

struct agent;

/* Allocate ids, port and address, create the host account, record keys. */
int member_add(struct agent *a, const char *name, json_t *keys, struct member_record *out,
	       char *err, size_t errlen);
/* The same with the allocations decided elsewhere (the hub): want's name,
 * uid, subid_base and ssh_port are kept, the address is allocated here.
 * A clash with a local record, a host account or group, an
 * /etc/subuid or /etc/subgid range, or a forwarded port is -EEXIST with a
 * sentence for the admin in err.  Keys (lines and fingerprints as
 * ssh_key_parse() gives them) may be none.  The member is recorded as
 * hub-managed in the same transaction. */
int member_add_allocated(struct agent *a, const struct member_record *want,
			 const char *const *lines, const char *const *fingerprints, size_t nkeys,
			 struct member_record *out, char *err, size_t errlen);
/* Remove the host account and records; the layer is kept unless purge. */
int member_remove(struct agent *a, const char *name, bool purge, char *kept, size_t keptlen,
		  char *err, size_t errlen);
/* Make the host's files match the records: /etc/subuid and /etc/subgid
 * ranges for root, the host login's authorized_keys. */
int member_sync_host(struct agent *a, const struct member_record *rec);

/* ---- ops.c: the operations of the protocol -------------------------------- */

struct caller {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	bool admin;
	bool is_member;
	bool guest;                    /* asked from inside the member's container */
	struct member_record member;   /* valid when is_member */
};

struct reply_error {
	const char *code;              /* PROTO_E_* */
	char text[1024];
};

struct op_context {
	struct agent *a;
	const struct caller *who;
	json_t *args;
	struct progress *progress;
	struct reply_error *error;
};

/* One operation of the protocol; tables end with a NULL name. */
struct op_entry {
	const char *name;
	int (*run)(struct op_context *ctx, json_t **result);
};

/* ops_gpu.c and ops_snapshot.c: their areas' operations. */
extern const struct op_entry ops_gpu_table[];
extern const struct op_entry ops_snapshot_table[];
/* ops_monitor.c: ps, gpus, history, usage. */
extern const struct op_entry ops_monitor_table[];

/* ops_gpu.c: mount the member's tree for a start, with the host driver's
 * layer when the server has GPUs; *plan (caller frees; NULL without GPU)
 * holds the container's mounts and device rules. */
struct gpu_plan;
int ops_gpu_mount(struct op_context *ctx, const struct member_record *rec,
		  const struct storage_paths *paths, const char *template_rootfs,
		  struct gpu_plan **plan);
/* After the start: the GPUs' own nodes into the running container. */
int ops_gpu_started(struct agent *a, const struct member_record *rec, const struct gpu_plan *plan);
/* Add "driver", "gpus" and, when there is something to say, "gpu_note". */
int ops_gpu_status(struct agent *a, const struct member_record *rec, bool running, json_t *status);
/* ops_snapshot.c: finish or undo what a killed agent left half-done in a
 * member's layer (a restore, a rebuild keeping /home); at start-up. */
int ops_snapshot_reconcile(struct agent *a, const struct member_record *rec);
/* rebuild --keep-home: move <layer>/upper/home aside before the wipe, and
 * back after it. */
int ops_snapshot_keep_home(const struct storage_paths *paths);
int ops_snapshot_return_home(const struct storage_paths *paths);

struct member_view {
	struct storage_paths paths;
	char address[16];
	char gateway[16];
	char hostname[128];
	char logfile[PATH_MAX + 16];
};

/* Helpers for operations in any ops_*.c file.  ops_fail() fills the
 * reply's error and returns -1. */
__attribute__((format(printf, 3, 4)))
int ops_fail(struct op_context *ctx, const char *code, const char *fmt, ...);
int ops_usage(struct op_context *ctx, const char *text);
int ops_check_args(struct op_context *ctx, const char *const allowed[]);
/* The member acted on: the caller, or for an admin args' "member". */
int ops_target(struct op_context *ctx, struct member_record *rec);
int ops_require_admin(struct op_context *ctx);
int ops_member_view(struct agent *a, const struct member_record *rec, struct member_view *v);
const char *ops_ssh_host(const struct agent *a);
json_t *ops_status_json(struct agent *a, const struct member_record *rec);
int ops_member_template(struct op_context *ctx, struct member_record *rec,
			struct template_info *tpl);
/* Start (idempotent, waits for sshd) and stop a member's container; the
 * caller holds the member's lock (agent_lock_member). */
int ops_start_member(struct op_context *ctx, struct member_record *rec, json_t **result);
int ops_stop_member(struct agent *a, const struct member_record *rec);

/* One operation at a time per member (defined in ops.c, named for the
 * agent whose busy[] it guards).  Held by a variable that lets go when it
 * goes out of scope:
 *	__do_unlock_member struct member_lock lock = agent_lock_member(a, name);
 * agent_unlock_member(&lock) lets go earlier; letting go twice is harmless. */
struct member_lock {
	struct agent *a;        /* NULL once let go */
	char name[40];
};
struct member_lock agent_lock_member(struct agent *a, const char *name);
void agent_unlock_member(struct member_lock *lock);
#define __do_unlock_member __attribute__((cleanup(agent_unlock_member)))

/* Run one request.  On success *result is set (may be an empty object);
 * on failure returns negative and fills *error. */
int ops_dispatch(struct agent *a, const struct caller *who, const char *op, json_t *args,
		 struct progress *progress, json_t **result, struct reply_error *error);
/* Bring the system in line with the records: bridge, mounts, rules. */
int ops_reconcile(struct agent *a);
/* Recompute and apply the nftables table from the running containers. */
int ops_sync_rules(struct agent *a);

/* ---- control.c: the Unix socket ------------------------------------------- */

int control_listen(const char *path);
/* Accept and serve until *stop becomes true. */
int control_serve(struct agent *a, int listen_fd, volatile int *stop);

/* ---- main.c: the agent itself ---------------------------------------------- */

struct agent {
	struct gpubox_config cfg;
	struct db *db;
	struct network_subnet subnet;
	char lxcpath[PATH_MAX];
	pthread_mutex_t members_lock;   /* allocation, add and remove */
	pthread_mutex_t rules_lock;     /* the nftables table */
	pthread_mutex_t busy_lock;      /* guards busy[] */
	pthread_cond_t busy_changed;
	char busy[64][40];              /* members with an operation under way */
	struct history *history;        /* NULL if it could not be opened */
	struct sampler *sampler;
	struct metrics_server *metrics; /* NULL when metrics_listen is empty */
	struct guests *guests;          /* the containers' own sockets (guest.c) */
	struct hubsync *hubsync;        /* NULL without hub_url */
};


/* ---- hubsync.c: members from the hub --------------------------------------- */

/*
 * The hub's GET /api/v1/sync body: {"generation", "server", "members":
 * [{"name", "display_name", "uid", "subid_base", "ssh_port", "disabled",
 * "keys": ["type base64 [comment]", ...]}]}.  Fields this agent does not
 * know are ignored; every field it uses is checked.
 */
#define HUBSYNC_MEMBERS_MAX 10000
#define HUBSYNC_KEYS_MAX 64
#define HUBSYNC_BODY_MAX (16u << 20)

struct hubsync_member {
	char name[40];
	uint32_t uid;                  /* 1..65535 */
	uint32_t subid_base;           /* 65536-aligned, not 0 */
	uint32_t ssh_port;             /* 1..65535 */
	bool disabled;                 /* then nkeys is 0, whatever the hub sent */
	char **keys;                   /* "type base64 [comment]", as ssh_key_parse() reads them */
	char **fingerprints;
	size_t nkeys;
};

struct hubsync_list {
	uint64_t generation;
	char server[40];
	struct hubsync_member *members;
	size_t n;
};

/* Parse and check a sync body (a pure function: fuzzed).  Names, uids,
 * subid blocks and ports must each appear once.  -EINVAL with one
 * sentence in err; *out is then empty. */
int hubsync_parse(const char *text, size_t len, struct hubsync_list *out, char *err, size_t errlen);
void hubsync_list_free(struct hubsync_list *list);

struct hubsync;

/* Start the thread that follows the hub (*out NULL without hub_url).  A
 * token file that is missing, malformed or open to group or others is
 * -EINVAL: the agent refuses to start. */
int hubsync_start(struct agent *a, struct hubsync **out);
void hubsync_stop(struct hubsync *h);
/* Sync now (the hub's POST /api/v1/poke). */
void hubsync_poke(struct hubsync *h);
/* Whether "Bearer <token>" holds this server's hub token (constant time). */
bool hubsync_token_ok(struct hubsync *h, const char *authorization);

/* ---- mounts.c: host directories in every container ---------------------- */

#define MOUNTS_MAX 16
#define MOUNTS_PATH_MAX 256

struct mounts_entry {
	char host[MOUNTS_PATH_MAX];    /* may hold %u: the member's name */
	char target[MOUNTS_PATH_MAX];
	bool read_only;
	bool per_member;
};

struct mounts_plan {
	struct container_mount mounts[MOUNTS_MAX];
	char source[MOUNTS_MAX][MOUNTS_PATH_MAX + 64];
	char target[MOUNTS_MAX][MOUNTS_PATH_MAX];
	size_t n;
};

/* Parse the "mounts" key: "HOST:CONTAINER:ro|rw, ...". */
int mounts_parse(const char *text, struct mounts_entry *entries, size_t max, size_t *n,
		 char *err, size_t errlen);
/* The member's mounts, with per-member host directories created. */
int mounts_prepare(const struct gpubox_config *cfg, const struct member_record *rec,
		   struct mounts_plan *plan, char *err, size_t errlen);
/* Make the writable mounts nosuid,nodev in the running container of init pid. */
int mounts_harden(const struct mounts_plan *plan, pid_t pid);

#endif
