/* SPDX-License-Identifier: MIT */
/*
 * The operations of the protocol, in tables per area (ops.c, ops_gpu.c,
 * ops_snapshot.c, ops_monitor.c), and the helpers they share.
 * Every function returns 0 or a negative errno unless it says otherwise.
 */
#ifndef GPUBOX_AGENT_OPS_H
#define GPUBOX_AGENT_OPS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "container/container.h"
#include "image/image.h"
#include "state/state.h"

struct agent;
struct progress;
struct gpu_plan;
struct gpu_host;

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
/* ops_reserve.c: reserve, reserve_extend, reservations, release. */
extern const struct op_entry ops_reserve_table[];

/* ops_doctor.c: doctor, what the server needs (gpubox admin doctor). */
extern const struct op_entry ops_doctor_table[];

/* ops_gpu.c: mount the member's tree for a start, with the host driver's
 * layer when the server has GPUs; *plan (caller frees; NULL without GPU)
 * holds the container's mounts and device rules. */
struct gpu_plan;
int ops_gpu_mount(struct op_context *ctx, const struct member_record *rec,
		  const struct storage_paths *paths, const char *template_rootfs,
		  struct gpu_plan **plan);
/* A member's own GPU set (gpu_sets, else gpu_default) as a mask of host's
 * GPUs. */
int ops_gpu_mask(struct agent *a, const struct gpu_host *host, const char *member, uint64_t *mask);
/* The GPUs of mask as the set recorded: their UUIDs, or "none". */
void ops_gpu_set_from_mask(const struct gpu_host *host, uint64_t mask, char *set, size_t len);
/* GPU index's device nodes and device-cgroup rules into (attach) or out of
 * the running container of rec, whose init is pid. */
int ops_gpu_live(struct agent *a, const struct member_record *rec, const struct gpu_host *host,
		 size_t index, bool attach, pid_t pid);
/* Each half alone: the rules (allowed or denied), the nodes (added or
 * removed). */
int ops_gpu_live_rules(struct agent *a, const struct member_record *rec,
		       const struct gpu_host *host, size_t index, bool allow, pid_t pid);
int ops_gpu_live_nodes(const struct gpu_host *host, size_t index, bool add, pid_t pid);
/* After the start: the GPUs' own nodes into the running container. */
int ops_gpu_started(struct agent *a, const struct member_record *rec, const struct gpu_plan *plan);
/* Add "driver", "gpus" and, when there is something to say, "gpu_note". */
int ops_gpu_status(struct agent *a, const struct member_record *rec, bool running, json_t *status);
/* ops_limits.c: limits_set, limits_rm, limits_ls, and the limits of a
 * start and a status. */
extern const struct op_entry ops_limits_table[];
uint64_t ops_limits_host_memory(void);
/* The member's limits (the server's defaults under the member's own) as
 * cgroup items. */
int ops_limits_items(struct agent *a, const char *member, struct cgroup_items *items);
/* Write them into the member's running container. */
int ops_limits_apply(struct agent *a, const char *member, char *err, size_t errlen);
/* Add "limits" and, when running, "usage". */
int ops_limits_status(struct agent *a, const struct member_record *rec, bool running,
		      json_t *status);
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
/* Whether the caller may see other members' names (admin, or show_members). */
bool ops_names_visible(const struct op_context *ctx);
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

#endif
