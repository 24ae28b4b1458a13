/* SPDX-License-Identifier: MIT */
/*
 * A member's container: the overlay of the shared template (storage.c),
 * the account inside it (provision.c), host directories bound into it
 * (mounts.c) and LXC itself (container.c).
 * Every function returns 0 or a negative errno unless it says otherwise.
 */
#ifndef GPUBOX_AGENT_CONTAINER_H
#define GPUBOX_AGENT_CONTAINER_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <stdio.h>

#include "config.h"
#include "reslimit.h"
#include "validate.h"

struct member_record;
struct progress;

/* ---- storage.c: the member's overlay of the shared template ------------ */

struct storage_paths {
	char dir[PATH_MAX];      /* <state>/users/<member> */
	char layer[PATH_MAX];    /* the member's layer: pool_layer, or <dir>/layer until moved */
	char pool_layer[PATH_MAX];/* <state>/layers/<member>: where the layer belongs (pool.c) */
	char upper[PATH_MAX];    /* <layer>/upper: the member's own files */
	char work[PATH_MAX];     /* <layer>/work: overlayfs' work dir */
	char nested[PATH_MAX];   /* <layer>/nested: Docker's and Podman's stores (nesting.c) */
	char lower[PATH_MAX];    /* <dir>/lower: where the idmapped template is attached briefly */
	char rootfs[PATH_MAX];   /* <dir>/rootfs: the merged tree given to LXC */
	char image[PATH_MAX];    /* <state>/layer-images/<member>.img: the layer's own
				  * file system, where it has one (layerimg.c) */
};

/* The one place that says where a member's files are.  A layer of an older
 * agent, still in <dir>/layer, is named there until storage_prepare()
 * moves it into the pool. */
int storage_paths(const char *state_dir, const char *member, struct storage_paths *out);
/* Whether the layer is still in <dir>/layer, outside the pool. */
bool storage_layer_is_legacy(const struct storage_paths *paths);
/* How the layer's disk is limited: its project id (quota.c; 0: none), and
 * the size of an image of its own (layerimg.c; 0: none, or the one it has
 * as it is). */
struct storage_disk {
	uint32_t project;
	uint64_t image_bytes;
};
/* Create the directories; upper owned by subid_base:subid_base, 0755; the
 * layer 0710, crossed by the container's root group.  The layer directory
 * gets its image mounted and its project before upper and work exist; a
 * layer in the old place is first moved into the pool (a copy, so that
 * every file is charged to the project), and paths follow it.  disk NULL:
 * neither.  Idempotent. */
int storage_prepare(struct storage_paths *paths, uint32_t subid_base, const struct storage_disk *disk);
/* cp -a of from's contents into the existing directory to; every file's
 * data shared with from's (reflinks) where the file system can (btrfs, XFS,
 * from and to on one), else copied. */
int storage_copy_tree(const char *from, const char *to);
/* The parent directory of path, into buf. */
int storage_parent(const char *path, char *buf, size_t len);
/* For a member removed: their layer in the pool deleted, or moved into the
 * pool's .retired/<member>-<stamp> (kept: where it went; "" if there was
 * none).  <dir> is the caller's. */
int storage_remove_layer(const struct storage_paths *paths);
int storage_retire_layer(const struct storage_paths *paths, const char *stamp, char *kept,
			 size_t keptlen);
/* Mount template_rootfs idmapped (0 -> subid_base, 65536 ids) as the lower
 * layer of an overlay at paths->rootfs.  Idempotent: an existing overlay
 * mount there is kept. */
int storage_mount(const struct storage_paths *paths, const char *template_rootfs,
		  uint32_t subid_base);
/* Read-only layers of the agent's around the template (NULL: none). */
struct storage_extra {
	const char *above;         /* between the member's layer and the template:
				    * the GPU driver's mount points (gpu.c) */
	const char *below;         /* beneath the template: mount points of the agent's
				    * files that templates lack (aptproxy.c) */
};
/* storage_mount() with those layers too. */
int storage_mount_layers(const struct storage_paths *paths, const char *template_rootfs,
			 const struct storage_extra *extra, uint32_t subid_base);
/* Idempotent; a busy mount is detached (MNT_DETACH). */
int storage_unmount(const struct storage_paths *paths);
/* Whether paths->rootfs is an overlay mount point. */
bool storage_is_mounted(const struct storage_paths *paths);
/* Empty the member's layer (upper and work, and the nested stores gone)
 * and give the upper dir back to subid_base, 0755.  -EBUSY while mounted.
 * What was there is discarded (below). */
int storage_wipe(const struct storage_paths *paths, uint32_t subid_base);
/* Take <layer>/name out of the way at once (renamed to .discard-...) and
 * remove it in a thread of the agent's: a large tree costs the caller a
 * rename.  Until it is gone it still takes its disk space. */
int storage_discard(const struct storage_paths *paths, const char *name);
/* At the agent's start: what an agent stopped meanwhile did not finish
 * removing, removed (in the background). */
void storage_discard_leftovers(const struct storage_paths *paths);

/* ---- pool.c: the file system of members' layers ------------------------- */

/* <state_dir>/layers, where pool_setup() puts the members' layers. */
int pool_dir(const char *state_dir, char *buf, size_t len);
/* The image's size when layers_pool_size is 0: 80% of free_bytes, in MiB. */
uint64_t pool_default_size(uint64_t free_bytes);
/* At the agent's start, idempotent: layers/ on a file system with project
 * quotas, per cfg->layers_pool.  0 when quotas are enforced there;
 * -EOPNOTSUPP or another negative errno (logged) when layers/ is a plain
 * directory without them. */
int pool_setup(const struct gpubox_config *cfg);
/* Whether members' disk limits are their own layer images (layerimg.c):
 * layers_pool = auto where layers/ has no project quotas. */
bool pool_layer_images(const struct gpubox_config *cfg);

/* ---- loopimg.c: ext4 in sparse image files on loop devices --------------- */

/* Make image, size bytes, sparse: mkfs.ext4 -q -F with mkfs_options
 * (NULL-terminated), under a temporary name renamed into place whole. */
int loopimg_make(const char *image, uint64_t size, const char *const mkfs_options[]);
/* The loop device (into dev) the image is attached to; -ENOENT if none. */
int loopimg_find(const char *image, char *dev, size_t len);
/* Mount the image, attached or not yet, at dir. */
int loopimg_mount(const char *image, const char *dir, unsigned long flags, const char *options);
/* The image's size in bytes; 0 if it is not a regular file. */
uint64_t loopimg_size(const char *image);
/* Grow the attached, mounted image to size, online.  Never shrinks. */
int loopimg_grow(const char *image, uint64_t size);
/* Resize the image, attached nowhere, to size (e2fsck, resize2fs);
 * fails, changing nothing, where its files would not fit. */
int loopimg_resize_offline(const char *image, uint64_t size);

/* ---- localsnap.c: copy-on-write snapshots of a layer on btrfs ----------- */

/* Whether fd is the root of a btrfs subvolume. */
bool localsnap_is_subvolume_fd(int fd);
/* Make path (absent) a btrfs subvolume where its parent is on btrfs, else a
 * plain directory, with mode; an existing path is left as it is. */
int localsnap_make_dir(const char *path, mode_t mode);
/* 0 when the member's layer can take local snapshots; else -EOPNOTSUPP
 * (or another negative errno) and why, in words for the member. */
int localsnap_supported(const struct storage_paths *paths, char *why, size_t whylen);
/* Snapshot the layer as <layer>/local/<name>; -EEXIST if there is one. */
int localsnap_take(const struct storage_paths *paths, const char *name);
/* <layer>/local/<name>/upper: the snapshot's copy of the member's files. */
int localsnap_upper(const struct storage_paths *paths, const char *name, char *buf, size_t len);
/* Delete <layer>/local/<name>; 0 if there is none. */
int localsnap_remove(const struct storage_paths *paths, const char *name);

/* ---- layerimg.c: a member's layer in an image of its own ----------------- */

struct quota_usage;
/* <state_dir>/layer-images/<member>.img */
int layerimg_path(const char *state_dir, const char *member, char *buf, size_t len);
/* Whether any member has an image under state_dir. */
bool layerimg_in_use(const char *state_dir);
bool layerimg_exists(const struct storage_paths *paths);
/* Whether the layer directory is the image's mount. */
bool layerimg_mounted(const struct storage_paths *paths);
/* Before anything uses the layer: its image made (bytes > 0, with what
 * the layer held copied in), mounted at the layer, and fitted to bytes of
 * usable space (0: as it is).  Nothing to do without an image or bytes. */
int layerimg_prepare(const struct storage_paths *paths, uint64_t bytes);
/* A new limit while the layer may be in use: grown now; *later when it
 * applies at the next start (smaller, or not mounted). */
int layerimg_grow_live(const struct storage_paths *paths, uint64_t bytes, bool *later);
/* Used and usable bytes of the mounted image; -ENOENT if not mounted. */
int layerimg_usage(const struct storage_paths *paths, struct quota_usage *out);
/* Unmount the image from the layer (for removal). */
int layerimg_release(const struct storage_paths *paths);

/* ---- quota.c: project quotas of members' layers -------------------------- */

#define QUOTA_NONE UINT64_MAX

struct quota_usage {
	uint64_t bytes;          /* charged to the project */
	uint64_t limit;          /* QUOTA_NONE: no limit */
};

/* Whether the file system of fd enforces project quotas. */
bool quota_enforced(int fd);
int quota_get_project(int fd, uint32_t *project);
/* The directory fd's project id, and PROJINHERIT so that what is created
 * below it inherits the id.  -EOPNOTSUPP (or -ENOTTY) where the file
 * system has no project ids. */
int quota_set_project(int fd, uint32_t project);
/* bytes in the quota interface's 1 KiB blocks, rounded up; 0 (no limit)
 * for 0 and QUOTA_NONE. */
uint64_t quota_blocks(uint64_t bytes);
/* The project's limit (QUOTA_NONE or 0: none) on the file system of fd. */
int quota_set_limit(int fd, uint32_t project, uint64_t bytes);
int quota_get(int fd, uint32_t project, struct quota_usage *out);

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

/* ---- cgroup.c: a container's limits in its cgroup ------------------------ */

struct cgroup_item {
	char controller[8];   /* v1's hierarchy: memory, cpu, pids, blkio (v2: for the name) */
	char file[32];        /* memory.max, pids.max, ... */
	char value[48];
	bool in_config;       /* a limit every kernel has: in the LXC configuration too */
	bool optional;        /* only some kernels have it: a failure is logged, not fatal */
};

#define CGROUP_ITEMS_MAX 12

struct cgroup_items {
	struct cgroup_item item[CGROUP_ITEMS_MAX];
	size_t n;
	bool v1;
};

/* Whether the host runs cgroup v1 (else the unified v2 tree). */
bool cgroup_is_v1(void);
/* The items for limits l, percentages of host_memory resolved: every
 * limit the member has, and for every one they have not, the kernel's
 * default ("max", -1, a weight of 100). */
void cgroup_limit_items(const struct limits *l, uint64_t host_memory, bool v1,
			struct cgroup_items *out);
/* "lxc.cgroup.FILE = VALUE" (v1) or "lxc.cgroup2...." for the items every
 * kernel has. */
void cgroup_render_items(FILE *f, const struct cgroup_items *items);
/* Write every item into the cgroup of the running container whose init
 * is pid; an optional item that fails is logged and skipped. */
int cgroup_apply(pid_t pid, const char *name, const struct cgroup_items *items, char *err,
		 size_t errlen);
/* Whether lxcfs serves /var/lib/lxcfs, whose files LXC's mount hook puts
 * over each new container's /proc/meminfo, cpuinfo, stat, uptime and
 * loadavg, so that free and top inside show the container's limits. */
bool cgroup_lxcfs_running(void);
enum lxcfs_state { LXCFS_ABSENT, LXCFS_STALE, LXCFS_RUNNING };
/* Not mounted; mounted but not answering (lxcfs died); serving. */
enum lxcfs_state cgroup_lxcfs_state(void);
/* The cgroup directory of container name for controller, from the text of
 * its init's /proc/PID/cgroup (for the tests). */
int cgroup_dir_from(const char *proc_cgroup, const char *name, bool v1, const char *controller,
		    char *out, size_t len);

/* ---- container.c: LXC ----------------------------------------------------- */

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
	const struct cgroup_items *limits;  /* optional: memory, CPU, processes */
	bool nesting;              /* Docker and Podman inside: AppArmor's nesting rules, LXC's
				    * pure /proc and /sys at /dev/.lxc (nesting.c has the stores) */
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
 * once LXC reports it RUNNING.  Start, stop, freeze and device rules of
 * one container run one at a time; of different containers, side by side. */
int container_start(const struct container_spec *spec);
/* Send the halt signal to the container's init and wait up to timeout
 * seconds for it to end, then kill it.  Operations on other containers,
 * and state queries, do not wait for it. */
int container_stop(const char *lxcpath, const char *name, unsigned timeout);
/* Send signal (0: none) to the process of pidfd and wait up to timeout_ms
 * for it to end, holding no lock: 0 once it ended, -ETIMEDOUT, or a
 * negative errno.  How container_stop() waits for a container's init. */
int container_signal_wait(int pidfd, int signal, unsigned timeout_ms);
/* Freeze (true) or thaw a running container's processes. */
int container_freeze(const char *lxcpath, const char *name, bool freeze);
enum container_state container_get_state(const char *lxcpath, const char *name);
const char *container_state_name(enum container_state state);
/* Wait until host:port answers with an SSH banner; -ETIMEDOUT. */
int container_wait_ssh(const char *address, uint16_t port, unsigned timeout,
		       struct progress *progress);

/* The init process of a running container (host pid), or a negative errno. */
int container_init_pid(const char *lxcpath, const char *name, pid_t *pid);
/* Allow or deny one device rule ("c 195:1 rwm") in a running container's
 * device cgroup, and in every cgroup below it (cgroup v1 copies rules down
 * only when a cgroup is made).  init: the container's init, as
 * container_init_pid() gave it (cgroup v1 finds the cgroup from it). */
int container_device_rule(const char *lxcpath, const char *name, pid_t init, const char *rule,
			  bool allow);

/* ---- aptproxy.c: the package cache's proxy setting in every container ---- */

/* Where containers find it (and where the agent's layer has its mount point). */
#define APTPROXY_TARGET "etc/apt/apt.conf.d/01gpubox-proxy"

struct aptproxy {
	char file[PATH_MAX];       /* the setting, bound read-only; "" when apt_cache is off */
	char layer[PATH_MAX];      /* the layer beneath the template with its mount point */
};

/* The file's text for proxy_url ("http://HOST:PORT"): -EINVAL unless the
 * URL is only letters, digits and .:/- after http://. */
int aptproxy_render(const char *proxy_url, char *buf, size_t len);
/* At the agent's start, from cfg's checked apt_cache: the file and its
 * layer written (a local cache named by gateway, the bridge's address),
 * or with apt_cache off the file removed and *out empty. */
int aptproxy_setup(const struct gpubox_config *cfg, const char *gateway, struct aptproxy *out);
/* The container's mount of the setting; false when there is none. */
bool aptproxy_mount(const struct aptproxy *proxy, struct container_mount *out);
/* The layer to stack beneath the template; NULL when there is none. */
const char *aptproxy_layer(const struct aptproxy *proxy);

/* ---- nesting.c: Docker and Podman inside -------------------------------- */

#define NESTING_MOUNTS 3

/* The container's mounts of nesting: the stores, /dev/fuse. */
struct nesting_plan {
	char source[NESTING_MOUNTS][PATH_MAX];
	struct container_mount mounts[NESTING_MOUNTS];
	size_t n;
};

/* The nested stores below paths->nested (made if absent, owned by
 * subid_base, in the layer's project) and the agent's /dev/fuse in
 * paths->dir, with their mounts in plan.  After storage_prepare(). */
int nesting_prepare(const struct storage_paths *paths, uint32_t subid_base,
		    struct nesting_plan *plan);

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
	/* A member's own directory: the one checked, for mounts_harden(). */
	bool checked[MOUNTS_MAX];
	dev_t dev[MOUNTS_MAX];
	ino_t ino[MOUNTS_MAX];
	size_t n;
};

/* Parse the "mounts" key: "HOST:CONTAINER:ro|rw, ...". */
int mounts_parse(const char *text, struct mounts_entry *entries, size_t max, size_t *n,
		 char *err, size_t errlen);
/* The member's mounts, with per-member host directories created, or, if
 * there, refused unless a directory (no symbolic link on the way) owned by
 * the member's id and writable by no one else. */
int mounts_prepare(const struct gpubox_config *cfg, const struct member_record *rec,
		   struct mounts_plan *plan, char *err, size_t errlen);
/* Make the writable mounts nosuid,nodev in the running container of init
 * pid, and check that each per-member mount is the directory checked. */
int mounts_harden(const struct mounts_plan *plan, pid_t pid);

#endif
