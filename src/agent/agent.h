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
	const char *const *devices;/* optional, NULL-terminated cgroup2 rules: "c 195:* rwm" */
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

/* ---- member.c: members' host accounts and allocations -------------------- */

struct agent;

/* Allocate ids, port and address, create the host account, record keys. */
int member_add(struct agent *a, const char *name, json_t *keys, struct member_record *out,
	       char *err, size_t errlen);
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
};

/* One operation at a time per member. */
void agent_lock_member(struct agent *a, const char *name);
void agent_unlock_member(struct agent *a, const char *name);

#endif
