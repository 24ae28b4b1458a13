/* SPDX-License-Identifier: MIT */
/*
 * A member's share of the server (limits_set, limits_rm, limits_ls), and
 * the limits part of a start and of a status.
 *
 * The server's defaults are the configuration's "limits"; an admin's
 * values for one member are recorded in the database (member_limits) and
 * override them key by key.  Memory, CPU, processes and I/O are written
 * into a running container's cgroup at once; every start writes them all
 * again, so a changed default reaches each container at its next start.
 * Disk is the project quota of the member's layer (container/quota.c),
 * set at every start and at once on a change, running or not.
 *
 * A value may be temporary (limits set ... --until TIME): at its end it
 * gives way to the member's own value before it, or to the server's
 * default, and the change is applied at once, as limits rm applies one
 * (ops_limits_expire(), from expiry.c's thread and at the agent's start);
 * the member is told in the last hour before, on their next command, and
 * the lab through notify_webhook (ops_limits_warn(), from the same
 * thread).  Until the thread has run, reading already treats an ended
 * value as gone.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "audit.h"
#include "container/container.h"
#include "monitor/monitor.h"
#include "monitor/procinfo.h"
#include "notify.h"
#include "ops.h"
#include "state/state.h"
#include "cleanup.h"
#include "log.h"
#include "proto.h"
#include "reslimit.h"
#include "strutil.h"
#include "timeparse.h"
#include "validate.h"
#include "banned.h"

/* A member is told of a temporary limit's end this long before it. */
#define LIMITS_WARN_BEFORE 3600

/* Where the notice of a temporary value's end is kept: "limit:memory". */
static void ops_limits_notice_key(const char *key, char buf[static NOTICE_KEY_MAX])
{
	snprintf(buf, NOTICE_KEY_MAX, "limit:%s", key);
}

/* A notice of the member's that no longer holds (the value ended, or an
 * admin changed it), taken back before they read it. */
static void ops_limits_withdraw(struct agent *a, const char *member, const char *key)
{
	char notice[NOTICE_KEY_MAX];

	ops_limits_notice_key(key, notice);
	notices_withdraw(a->notices, member, notice);
}

uint64_t ops_limits_host_memory(void)
{
	struct sysinfo si;

	if (sysinfo(&si) < 0)
		return 0;
	return (uint64_t)si.totalram * si.mem_unit;
}

/* The end of each temporary value, {"memory": unix seconds, ...}, and
 * what each gives way to then, {"memory": "32G" or "default"}; NULL when
 * none is temporary. */
static void ops_limits_ends_json(const struct limit_record *recs, size_t n, json_t **until,
				 json_t **then)
{
	for (size_t i = 0; i < n; i++) {
		if (!recs[i].ends)
			continue;
		if (!*until)
			*until = json_object();
		if (then && !*then)
			*then = json_object();
		json_object_set_new(*until, recs[i].key, json_integer(recs[i].ends));
		if (then)
			json_object_set_new(*then, recs[i].key,
					    json_string(recs[i].has_previous ? recs[i].previous : "default"));
	}
}

/* The member's own values alone (*own) and over the defaults (*out); the
 * ends of temporary ones when until is not NULL (see
 * ops_limits_ends_json()).  A temporary value whose end has come is read
 * as what it gives way to, whether or not the expiry has run. */
static int ops_limits_read_ends(struct agent *a, const char *member, struct limits *own,
				struct limits *out, json_t **until, json_t **then)
{
	__do_free struct limit_record *recs = NULL;
	struct limits defaults;
	long long now = time(NULL);
	size_t n = 0;
	char err[256];
	int ret;

	*own = (struct limits){ 0 };
	ret = db_limit_list(a->db, member, &recs, &n);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < n; i++) {
		const char *value = recs[i].value;
		char text[64];

		if (recs[i].ends && recs[i].ends <= now) {
			if (!recs[i].has_previous)
				continue;
			value = recs[i].previous;
			recs[i].ends = 0;
		}
		snprintf(text, sizeof(text), "%s=%s", recs[i].key, value);
		/* Recorded only once checked; one that no longer reads is skipped. */
		if (limits_parse_assignment(text, own, err, sizeof(err)) < 0)
			log_warn("%s: ignoring the recorded limit %s: %s", member, text, err);
	}
	if (until)
		ops_limits_ends_json(recs, n, until, then);
	config_limits(&a->cfg, &defaults);
	limits_merge(&defaults, own, out);
	return 0;
}

static int ops_limits_read(struct agent *a, const char *member, struct limits *own,
			   struct limits *out)
{
	return ops_limits_read_ends(a, member, own, out, NULL, NULL);
}

int ops_limits_items(struct agent *a, const char *member, struct cgroup_items *items)
{
	struct limits own, effective;
	int ret = ops_limits_read(a, member, &own, &effective);

	if (ret < 0)
		return ret;
	cgroup_limit_items(&effective, ops_limits_host_memory(), cgroup_is_v1(), items);
	return 0;
}

int ops_limits_nesting(struct agent *a, const char *member, bool *nesting)
{
	struct limits own, effective;
	int ret = ops_limits_read(a, member, &own, &effective);

	if (ret < 0)
		return ret;
	*nesting = limits_flag(&effective, LIMIT_NESTING, true);
	return 0;
}

/* A descriptor of the member's layer; -ENOENT before its first start. */
/* What the member's layer holds against its limit: from its own image, or
 * from the project quota. */
static int ops_limits_disk_usage(struct agent *a, const struct member_record *rec, struct quota_usage *out)
{
	__do_close int fd = -EBADF;
	struct storage_paths paths;
	int ret = storage_paths(a->cfg.state_dir, rec->name, &paths);

	if (ret < 0)
		return ret;
	if (layerimg_usage(&paths, out) == 0)
		return 0;
	fd = open(paths.layer, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (!quota_enforced(fd))
		return -EOPNOTSUPP;
	return quota_get(fd, rec->uid, out);
}

int ops_limits_disk(struct agent *a, const struct member_record *rec, struct storage_disk *disk)
{
	struct limits own, effective;
	uint64_t bytes;

	disk->project = rec->uid;
	disk->image_bytes = 0;
	if (!pool_layer_images(&a->cfg))
		return 0;
	if (ops_limits_read(a, rec->name, &own, &effective) < 0)
		return -EIO;
	bytes = limits_resolve(&effective, LIMIT_DISK, ops_limits_host_memory());
	disk->image_bytes = bytes == LIMIT_NONE ? 0 : bytes;
	return 0;
}

/* The disk limit as the size of the member's own layer image: grown now,
 * shrunk (or made) at the next start (*later).  No limit: the image, if
 * any, keeps its size. */
static int ops_limits_apply_image(const struct storage_paths *paths, uint64_t bytes, bool *later,
				  char *err, size_t errlen)
{
	int ret;

	if (bytes == LIMIT_NONE)
		return 0;
	ret = layerimg_grow_live(paths, bytes, later);
	if (ret < 0)
		set_error(err, errlen, "cannot grow the layer image %s (error %d)", paths->image, -ret);
	return ret;
}

/*
 * The member's disk limit as the project quota of their layer (project:
 * their uid, which storage_prepare() put on the layer), or as the size of
 * their layer's own image where the layers have no project quotas.  No
 * layer yet: the first start sets it (*later).
 */
static int ops_limits_apply_disk(struct agent *a, const char *member, bool *later, char *err,
				 size_t errlen)
{
	__do_close int fd = -EBADF;
	struct storage_paths paths;
	struct limits own, effective;
	struct member_record rec;
	uint64_t bytes;
	int ret;

	*later = false;
	ret = ops_limits_read(a, member, &own, &effective);
	if (ret == 0)
		ret = db_member_get(a->db, member, &rec);
	if (ret < 0) {
		set_error(err, errlen, "the agent's database failed");
		return ret;
	}
	bytes = limits_resolve(&effective, LIMIT_DISK, ops_limits_host_memory());
	ret = storage_paths(a->cfg.state_dir, member, &paths);
	if (ret < 0) {
		set_error(err, errlen, "cannot work out the layer of %s", member);
		return ret;
	}
	if (layerimg_exists(&paths) || pool_layer_images(&a->cfg))
		return ops_limits_apply_image(&paths, bytes, later, err, errlen);
	fd = open(paths.layer, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0) {
		set_error(err, errlen, "cannot open the layer of %s", member);
		return -errno;
	}
	if (!quota_enforced(fd)) {
		if (bytes == LIMIT_NONE)
			return 0;
		set_error(err, errlen, "the file system of the members' layers has no project quotas (see layers_pool in gpubox.conf(5))");
		return -EOPNOTSUPP;
	}
	ret = quota_set_limit(fd, rec.uid, bytes);
	if (ret < 0) {
		set_error(err, errlen, "cannot set the disk quota of %s (error %d)", member, -ret);
		return ret;
	}
	return 0;
}

int ops_limits_apply(struct agent *a, const char *member, char *err, size_t errlen)
{
	struct cgroup_items items;
	pid_t pid;
	int ret;

	bool later;

	/* A server without project quotas still starts its containers. */
	ret = ops_limits_apply_disk(a, member, &later, err, errlen);
	if (ret == -EOPNOTSUPP)
		log_warn("%s: disk limit not applied: %s", member, err);
	else if (ret < 0)
		return ret;
	ret = ops_limits_items(a, member, &items);
	if (ret < 0) {
		set_error(err, errlen, "the agent's database failed");
		return ret;
	}
	ret = container_init_pid(a->lxcpath, member, &pid);
	if (ret < 0) {
		set_error(err, errlen, "the container of %s is not running", member);
		return ret;
	}
	return cgroup_apply(pid, member, &items, err, errlen);
}

/* {"memory": "64G", ...} for every key given; origin "member" or
 * "default" per key in *origin when asked. */
static json_t *ops_limits_json(const struct limits *l, const struct limits *own, json_t **origin)
{
	json_t *values = json_object();

	if (origin)
		*origin = json_object();
	for (size_t k = 0; values && k < LIMIT_COUNT; k++) {
		char text[LIMIT_TEXT_MAX];

		if (!limits_given(l, (enum limit_key)k))
			continue;
		limits_format_value(l, (enum limit_key)k, text, sizeof(text));
		json_object_set_new(values, limits_key_name((enum limit_key)k), json_string(text));
		if (origin && *origin)
			json_object_set_new(*origin, limits_key_name((enum limit_key)k),
					    json_string(limits_given(own, (enum limit_key)k) ? "member" : "default"));
	}
	return values;
}

/* The last process the kernel killed for the memory limit, with its uid
 * as the container knows it. */
static void ops_limits_last_kill(struct agent *a, const struct member_record *rec, json_t *usage)
{
	struct oom_event e;
	uint32_t uid;

	if (!usage || oomwatch_last(a->oomwatch, rec->name, &e) < 0)
		return;
	uid = e.host_uid - rec->subid_base;
	if (e.host_uid < rec->subid_base || uid >= SUBID_COUNT)
		return;
	json_object_set_new(usage, "last_oom_kill", json_pack("{s:I, s:s, s:I}", "time",
			    (json_int_t)e.time, "command", e.command, "uid", (json_int_t)uid));
}

int ops_limits_status(struct agent *a, const struct member_record *rec, bool running,
		      json_t *status)
{
	struct limits own, effective;
	struct container_stats use;
	struct quota_usage disk;
	uint64_t host = ops_limits_host_memory();
	json_t *limits, *usage, *until = NULL, *then = NULL;

	if (ops_limits_read_ends(a, rec->name, &own, &effective, &until, &then) < 0)
		return -EIO;
	if (until)
		json_object_set_new(status, "limits_until", until);
	if (then)
		json_object_set_new(status, "limits_then", then);
	limits = ops_limits_json(&effective, &own, NULL);
	if (limits && limits_resolve(&effective, LIMIT_MEMORY, host) != LIMIT_NONE)
		json_object_set_new(limits, "memory_bytes",
				    json_integer((json_int_t)limits_resolve(&effective, LIMIT_MEMORY, host)));
	json_object_set_new(status, "limits", limits ? limits : json_object());
	if (!running || procinfo_container(rec->name, &use) < 0)
		return 0;
	usage = json_pack("{s:I, s:I, s:I, s:I}", "memory_bytes", (json_int_t)use.mem_used,
			  "pids", (json_int_t)use.pids, "oom_kills", (json_int_t)use.oom_kills,
			  "cpu_seconds", (json_int_t)(use.cpu_ns / 1000000000ull));
	if (ops_limits_disk_usage(a, rec, &disk) == 0 && usage)
		json_object_set_new(usage, "disk_bytes", json_integer((json_int_t)disk.bytes));
	if (usage)
		json_object_set_new(status, "usage", usage);
	ops_limits_last_kill(a, rec, usage);
	return 0;
}

/* ---- the admin's operations ---------------------------------------------- */

static int ops_limits_member(struct op_context *ctx, const char *const allowed[],
			     struct member_record *rec)
{
	const char *name;
	char err[256];
	int ret;

	if (ops_require_admin(ctx) < 0 || ops_check_args(ctx, allowed) < 0)
		return -1;
	if (proto_arg_string(ctx->args, "member", true, &name, err, sizeof(err)) < 0 ||
	    validate_member_name(name, err, sizeof(err)) < 0)
		return ops_usage(ctx, err);
	ret = db_member_get(ctx->a->db, name, rec);
	if (ret == -ENOENT)
		return ops_fail(ctx, PROTO_E_NOTFOUND, "there is no member %s (see gpubox admin user ls)", name);
	if (ret < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "the agent's database failed; see the agent's log");
	return 0;
}

/* Record every key given in l for the member, in one transaction; until
 * > 0: as temporary values ending then. */
static int ops_limits_record(struct agent *a, const char *member, const struct limits *l,
			     long long until)
{
	int ret = db_begin(a->db);

	for (size_t k = 0; ret == 0 && k < LIMIT_COUNT; k++) {
		char text[LIMIT_TEXT_MAX];

		if (!limits_given(l, (enum limit_key)k))
			continue;
		limits_format_value(l, (enum limit_key)k, text, sizeof(text));
		ret = db_limit_put(a->db, member, limits_key_name((enum limit_key)k), text, until);
		/* A new end is told anew. */
		ops_limits_withdraw(a, member, limits_key_name((enum limit_key)k));
	}
	if (ret < 0) {
		db_rollback(a->db);
		return ret;
	}
	return db_commit(a->db);
}

/* After a change: the running container gets it now, but nesting, which
 * is the container's confinement, only at its next start (said in
 * "next_start"). */
static int ops_limits_live(struct op_context *ctx, const struct member_record *rec, bool nesting_changed,
			   json_t **result)
{
	struct agent *a = ctx->a;
	char err[512];
	bool running = container_get_state(a->lxcpath, rec->name) == CONTAINER_RUNNING;
	bool disk_later;
	json_t *next;

	/* The quota is the layer's: it changes whether the container runs or not. */
	if (ops_limits_apply_disk(a, rec->name, &disk_later, err, sizeof(err)) < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "the limits were recorded but the disk limit was not applied: %s",
				err);
	if (running && ops_limits_apply(a, rec->name, err, sizeof(err)) < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "the limits were recorded but not applied: %s; they apply at the next start",
				err);
	*result = json_object();
	if (*result)
		ops_limits_status(a, rec, running, *result);
	json_object_set_new(*result, "member", json_string(rec->name));
	json_object_set_new(*result, "applied", json_boolean(running));
	next = json_array();
	if (running && nesting_changed)
		json_array_append_new(next, json_string("nesting"));
	if (disk_later)
		json_array_append_new(next, json_string("disk"));
	if (json_array_size(next))
		json_object_set_new(*result, "next_start", next);
	else
		json_decref(next);
	return 0;
}

/* "until": unix seconds, after now (a limit cannot end in the past) and
 * within a four-digit year. */
static int ops_limits_until(struct op_context *ctx, long long *until)
{
	long long now = time(NULL);
	char err[256], when[64];

	*until = 0;
	if (proto_arg_int(ctx->args, "until", false, 1, 253402300799LL, until, err, sizeof(err)) < 0)
		return ops_usage(ctx, err);
	if (*until && *until <= now) {
		format_time(*until, when, sizeof(when));
		return ops_fail(ctx, PROTO_E_USAGE, "the end given with --until must be ahead; %s has passed",
				when);
	}
	return 0;
}

static int op_limits_set(struct op_context *ctx, json_t **result)
{
	static const char *const allowed[] = { "member", "set", "until", NULL };
	__do_unlock_member struct member_lock lock = { 0 };
	struct member_record rec;
	struct limits given = { 0 }, own, effective;
	const char *text;
	long long until;
	char err[512], when[64];

	if (ops_limits_member(ctx, allowed, &rec) < 0 || ops_limits_until(ctx, &until) < 0)
		return -1;
	if (proto_arg_string(ctx->args, "set", true, &text, err, sizeof(err)) < 0 ||
	    limits_parse_list(text, &given, err, sizeof(err)) < 0)
		return ops_usage(ctx, err);
	if (!given.given)
		return ops_usage(ctx, "name at least one limit, such as memory=64G");
	lock = agent_lock_member(ctx->a, rec.name);
	if (ops_limits_read(ctx->a, rec.name, &own, &effective) < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "the agent's database failed; see the agent's log");
	limits_merge(&effective, &given, &effective);
	if (limits_check(&effective, ops_limits_host_memory(), err, sizeof(err)) < 0)
		return ops_usage(ctx, err);
	if (ops_limits_record(ctx->a, rec.name, &given, until) < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "the agent's database failed; see the agent's log");
	if (until) {
		format_time(until, when, sizeof(when));
		log_info("limits of %s set until %s: %s", rec.name, when, text);
		expiry_wake(ctx->a->expiry);
	} else {
		log_info("limits of %s set: %s", rec.name, text);
	}
	return ops_limits_live(ctx, &rec, limits_given(&given, LIMIT_NESTING), result);
}

static int op_limits_rm(struct op_context *ctx, json_t **result)
{
	static const char *const allowed[] = { "member", "key", NULL };
	__do_unlock_member struct member_lock lock = { 0 };
	struct member_record rec;
	enum limit_key key;
	const char *name;
	char err[256];
	int ret;

	if (ops_limits_member(ctx, allowed, &rec) < 0)
		return -1;
	if (proto_arg_string(ctx->args, "key", true, &name, err, sizeof(err)) < 0)
		return ops_usage(ctx, err);
	if (limits_key_find(name, &key) < 0)
		return ops_usage(ctx, "the keys are memory, memory_high, swap, cpu_weight, cpus, pids, io_weight, disk and nesting");
	lock = agent_lock_member(ctx->a, rec.name);
	ret = db_limit_remove(ctx->a->db, rec.name, name);
	if (ret == -ENOENT)
		return ops_fail(ctx, PROTO_E_NOTFOUND, "%s has no limit of its own for %s (the server's default applies)",
				rec.name, name);
	if (ret < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "the agent's database failed; see the agent's log");
	ops_limits_withdraw(ctx->a, rec.name, name);
	log_info("limit %s of %s removed: the server's default applies", name, rec.name);
	return ops_limits_live(ctx, &rec, key == LIMIT_NESTING, result);
}

static json_t *ops_limits_entry(struct agent *a, const struct member_record *rec)
{
	struct limits own, effective;
	json_t *values, *origin = NULL, *until = NULL, *then = NULL;

	if (ops_limits_read_ends(a, rec->name, &own, &effective, &until, &then) < 0)
		return NULL;
	values = ops_limits_json(&effective, &own, &origin);
	return json_pack("{s:s, s:o, s:o*, s:o*, s:o*}", "member", rec->name, "limits",
			 values ? values : json_object(), "origin", origin, "until", until, "then", then);
}

static int op_limits_ls(struct op_context *ctx, json_t **result)
{
	static const char *const allowed[] = { "member", NULL };
	__do_free struct member_record *members = NULL;
	struct limits defaults;
	size_t n = 0;
	json_t *list;

	if (ops_require_admin(ctx) < 0 || ops_check_args(ctx, allowed) < 0)
		return -1;
	if (json_object_get(ctx->args, "member")) {
		struct member_record rec;
		json_t *entry;

		if (ops_limits_member(ctx, allowed, &rec) < 0)
			return -1;
		entry = ops_limits_entry(ctx->a, &rec);
		if (!entry)
			return ops_fail(ctx, PROTO_E_FAILED, "the agent's database failed; see the agent's log");
		list = json_array();
		json_array_append_new(list, entry);
	} else {
		if (db_member_list(ctx->a->db, &members, &n) < 0)
			return ops_fail(ctx, PROTO_E_FAILED, "the agent's database failed; see the agent's log");
		list = json_array();
		for (size_t i = 0; list && i < n; i++)
			json_array_append_new(list, ops_limits_entry(ctx->a, &members[i]));
	}
	config_limits(&ctx->a->cfg, &defaults);
	*result = json_pack("{s:o, s:o}", "defaults", ops_limits_json(&defaults, &defaults, NULL),
			    "members", list ? list : json_array());
	return *result ? 0 : ops_fail(ctx, PROTO_E_FAILED, "the agent ran out of memory");
}

/* ---- temporary limits end ------------------------------------------------ */

/* "the server's default (64G)" or "32G (their own)" into buf: what an
 * ended value gives way to. */
static void ops_limits_then_text(struct agent *a, const struct limit_record *rec, char *buf,
				 size_t len)
{
	struct limits defaults;
	enum limit_key key;
	char text[LIMIT_TEXT_MAX] = "";

	if (rec->has_previous) {
		snprintf(buf, len, "%s", rec->previous);
		return;
	}
	config_limits(&a->cfg, &defaults);
	if (limits_key_find(rec->key, &key) == 0)
		limits_format_value(&defaults, key, text, sizeof(text));
	snprintf(buf, len, "the server's default (%s)", text[0] ? text : "none");
}

/* What an end leaves in the audit log: the agent's own change, as root's. */
static void ops_limits_audit_end(struct agent *a, const struct limit_record *rec, const char *then,
				 const char *error)
{
	__do_json json_t *args = json_pack("{s:s, s:s, s:I, s:s}", "key", rec->key, "value", rec->value,
					   "until", (json_int_t)rec->ends, "then", then);
	char target[AUDIT_TARGET_MAX];

	snprintf(target, sizeof(target), "%s key=%s", rec->member, rec->key);
	audit_record(a->audit, &(struct audit_entry){
		.time_ms = audit_now_ms(), .uid = 0, .admin = true, .op = "limits_end",
		.target = target, .args = args, .result = error ? PROTO_E_FAILED : "ok", .error = error,
	});
}

/* One member's ended values, under the member's lock: each gives way in
 * the database, then the container gets them all at once. */
static void ops_limits_end_member(struct agent *a, const char *member, long long now)
{
	__do_unlock_member struct member_lock lock = { 0 };
	__do_free struct limit_record *ended = NULL;
	char err[512] = "", then[64], when[64];
	bool later;
	size_t n = 0;
	int ret;

	lock = agent_lock_member(a, member);
	/* Read again under the lock: an admin may have changed them since. */
	ret = db_limit_ended(a->db, now, &ended, &n);
	if (ret == 0)
		ret = db_begin(a->db);
	for (size_t i = 0; ret == 0 && i < n; i++) {
		if (strcmp(ended[i].member, member) != 0)
			continue;
		ret = ended[i].has_previous ?
			db_limit_put(a->db, member, ended[i].key, ended[i].previous, 0) :
			db_limit_remove(a->db, member, ended[i].key);
	}
	if (ret == 0)
		ret = db_commit(a->db);
	if (ret < 0) {
		db_rollback(a->db);
		log_error("%s: the ended limits could not be given way; the agent tries again", member);
		return;
	}
	/* As limits rm applies them; a stopped container gets the rest at its start. */
	if (container_get_state(a->lxcpath, member) == CONTAINER_RUNNING)
		ret = ops_limits_apply(a, member, err, sizeof(err));
	else
		ret = ops_limits_apply_disk(a, member, &later, err, sizeof(err));
	if (ret == 0)
		err[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (strcmp(ended[i].member, member) != 0)
			continue;
		ops_limits_then_text(a, &ended[i], then, sizeof(then));
		format_time(ended[i].ends, when, sizeof(when));
		log_info("limit %s of %s ended at %s: %s gives way to %s%s%s", ended[i].key, member, when,
			 ended[i].value, then, err[0] ? "; not applied: " : "", err);
		ops_limits_audit_end(a, &ended[i], then, err[0] ? err : NULL);
		ops_limits_withdraw(a, member, ended[i].key);
	}
}

int ops_limits_expire(struct agent *a, long long now, long long *next)
{
	__do_free struct limit_record *ended = NULL;
	size_t n = 0;
	int ret = db_limit_ended(a->db, now, &ended, &n);

	for (size_t i = 0; ret == 0 && i < n; i++) {
		bool done = false;

		/* Each member once (the list is in order of the ends). */
		for (size_t j = 0; j < i && !done; j++)
			done = strcmp(ended[j].member, ended[i].member) == 0;
		if (!done)
			ops_limits_end_member(a, ended[i].member, now);
	}
	*next = 0;
	if (ret == 0) {
		ret = db_limit_next_end(a->db, next);
		if (ret == -ENOENT)
			ret = 0;
	}
	return ret;
}

void ops_limits_warn(struct agent *a, long long now, bool again)
{
	__do_free struct limit_record *soon = NULL;
	size_t n = 0;

	if (db_limit_ended(a->db, now + LIMITS_WARN_BEFORE, &soon, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		const struct limit_record *r = &soon[i];
		char then[64], when[64], left[32], text[NOTICE_TEXT_MAX], notice[NOTICE_KEY_MAX];

		if (r->ends <= now || (r->warned && !again))
			continue;
		ops_limits_then_text(a, r, then, sizeof(then));
		format_time(r->ends, when, sizeof(when));
		format_duration(r->ends - now, left, sizeof(left));
		snprintf(text, sizeof(text),
			 "your %s limit of %s ends at %s (in %s); then it is %s (ask an admin to extend it)",
			 r->key, r->value, when, left, then);
		ops_limits_notice_key(r->key, notice);
		notices_post(a->notices, r->member, notice, text);
		if (r->warned)
			continue;
		snprintf(text, sizeof(text), "the %s limit of %s (%s) ends at %s (in %s); then it is %s",
			 r->key, r->member, r->value, when, left, then);
		notify_event(a, "limit-ending", r->member, text);
		db_limit_set_warned(a->db, r->member, r->key, r->ends);
	}
}

const struct op_entry ops_limits_table[] = {
	{ "limits_set", op_limits_set, OP_CHANGES,   "member set" },
	{ "limits_rm",  op_limits_rm,  OP_CHANGES,   "member key" },
	{ "limits_ls",  op_limits_ls,  OP_READ_ONLY, NULL },
	{ 0 },
};
