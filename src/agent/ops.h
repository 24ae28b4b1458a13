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
struct sample;

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

/* Whether an operation changes anything: what the audit log keeps
 * (ops_audit.c).  A table's entries name it (the compiler wants every
 * field of a positional initializer); the zero value, where it is left
 * out anyway, is the safe one: audited. */
enum op_kind {
	OP_CHANGES = 0,                /* every request is recorded */
	OP_READ_ONLY,                  /* recorded only when denied */
};

/* One operation of the protocol; tables end with a NULL name. */
struct op_entry {
	const char *name;
	int (*run)(struct op_context *ctx, json_t **result);
	enum op_kind kind;
	/* The arguments naming what it acts on, for the audit log's target
	 * (audit_target()): "member port"; NULL: "member". */
	const char *target;
};

/* ops_gpu.c and ops_snapshot.c: their areas' operations. */
extern const struct op_entry ops_gpu_table[];
extern const struct op_entry ops_snapshot_table[];
/* ops_monitor.c: ps, gpus, history, usage. */
extern const struct op_entry ops_monitor_table[];
/* ops_reserve.c: reserve, reserve_extend, reservations, release. */
extern const struct op_entry ops_reserve_table[];
/* gpu_cap for member as gpus and status report it: {"cap", "held", "in_use",
 * "reserved", "state": "under"|"at"|"over", "text" (at or over)}, the GPUs
 * in use from the reading s (NULL: none); NULL without a cap.  Reported,
 * never enforced on what runs: reserve refuses what would pass it. */
json_t *ops_reserve_cap_json(struct agent *a, const char *member, const struct sample *s);

/* ops_doctor.c: doctor, what the server needs (gpubox admin doctor). */
extern const struct op_entry ops_doctor_table[];

/* ops_audit.c: log, the audit log's entries. */
extern const struct op_entry ops_audit_table[];
/* Record one request in the audit log, when it is to be: entry is NULL
 * for an unknown operation, ret and ctx->error are the request's
 * outcome, started_ms when it arrived. */
void ops_audit_request(struct op_context *ctx, const struct op_entry *entry, const char *op,
		       int ret, long long started_ms);

/* ops_allow.c: port_set, and the allow-lists of port_add, port_ls and
 * the rules. */
extern const struct op_entry ops_allow_table[];

/* A port's list as given: "default" (none of its own), "any", networks. */
enum ops_allow_kind { OPS_ALLOW_DEFAULT, OPS_ALLOW_ANY, OPS_ALLOW_LIST };
struct ops_allow {
	enum ops_allow_kind kind;
	struct cidr nets[CIDR_LIST_MAX];
	size_t n;
};
/* The request's "from" (*given false when absent: kind DEFAULT); -1
 * after ops_fail() with one sentence on a bad list. */
int ops_allow_arg(struct op_context *ctx, struct ops_allow *out, bool *given);
/* Record it for the member's container_port (22: the SSH port). */
int ops_allow_record(struct agent *a, const char *member, uint32_t container_port,
		     const struct ops_allow *allow);
/* "from" and "from_default" on each of forwards' entries (by their
 * "container_port"), and "ssh_from", "ssh_from_default" on ssh when not
 * NULL; for one port, on obj. */
void ops_allow_annotate(struct agent *a, const char *member, json_t *forwards, json_t *ssh);
void ops_allow_annotate_port(struct agent *a, const char *member, uint32_t container_port,
			     json_t *obj);

/* Every recorded list and the default, read once for ops_sync_rules(),
 * with room for nrules rules' networks. */
struct nft_forward;
struct ops_allow_rules {
	struct forward_from_record *rows;
	size_t nrows;
	struct cidr defaults[CIDR_LIST_MAX];
	size_t ndefaults;
	struct cidr *nets;             /* CIDR_LIST_MAX per rule */
	size_t nrules;
};
int ops_allow_rules_load(struct agent *a, size_t nrules, struct ops_allow_rules *r);
/* The rule's from and nfrom: its port's own list, or the default; it
 * points into r, the index-th rule's room. */
void ops_allow_rules_fill(struct ops_allow_rules *r, const char *member, uint32_t container_port,
			  size_t index, struct nft_forward *rule);
void ops_allow_rules_free(struct ops_allow_rules *r);

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
/* The CDI spec in the container's GPU layer written again for the GPUs
 * whose node the running container of rec (init pid) has now; a failure
 * is logged. */
void ops_gpu_cdi_refresh(struct agent *a, const struct member_record *rec,
			 const struct gpu_host *host, pid_t pid);
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
/* Whether the member's container nests (Docker and Podman inside). */
int ops_limits_nesting(struct agent *a, const char *member, bool *nesting);
/* Write them into the member's running container. */
int ops_limits_apply(struct agent *a, const char *member, char *err, size_t errlen);
/* How storage_prepare() limits the member's layer: their project, and
 * their own layer image's size where the layers have no project quotas. */
int ops_limits_disk(struct agent *a, const struct member_record *rec, struct storage_disk *disk);
/* Add "limits", "limits_until" and "limits_then" when some are
 * temporary and, when running, "usage". */
int ops_limits_status(struct agent *a, const struct member_record *rec, bool running,
		      json_t *status);
/* Temporary limits whose end is at or before now give way (to the
 * member's own value before them, or the default), applied at once,
 * logged and audited.  *next: the next end still to come, 0 when none. */
int ops_limits_expire(struct agent *a, long long now, long long *next);
/* The members whose temporary limits end within the hour are told (a
 * notice for their next command; the lab through notify_webhook), each
 * end once; again: the notices once more, not the webhook (after the
 * agent's restart, which forgot them). */
void ops_limits_warn(struct agent *a, long long now, bool again);
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
