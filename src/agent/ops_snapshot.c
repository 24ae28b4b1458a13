/* SPDX-License-Identifier: MIT */
/*
 * The snapshot operations of the protocol: snapshot_create, snapshot_ls,
 * snapshot_rm, restore, and template_rm (which snapshots may hold up).
 *
 * A restore never loses the layer it replaces.  Its steps, in the member's
 * layer directory (storage_paths()'s layer, <state>/layers/<member>):
 *   1. restore.json is written: the marker of a restore under way, with
 *      the template the member was on;
 *   2. the archive is extracted into upper.restore;
 *   3. upper is renamed upper.prev, upper.restore is renamed upper;
 *   4. the container is started on it;
 *   5. the marker is removed, then upper.prev.
 * A failure at 2-4 undoes 3 and removes the marker; an agent killed before
 * 5 finds the marker at its next start and rolls back the same way
 * (ops_snapshot_reconcile).  rebuild --keep-home keeps <layer>/home.keep
 * only while the layer is wiped, and reconcile puts it back as well.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


#include "agent.h"
#include "container/container.h"
#include "image/image.h"
#include "ops.h"
#include "progress.h"
#include "state/state.h"
#include "cleanup.h"
#include "fsutil.h"
#include "log.h"
#include "proto.h"
#include "validate.h"
#include "banned.h"

#define OPS_RESTORE_MARKER "restore.json"
#define OPS_RESTORE_NEW "upper.restore"
#define OPS_RESTORE_PREV "upper.prev"
#define OPS_HOME_KEPT "home.keep"

static int ops_layer_open(const struct storage_paths *paths)
{
	int fd = open(paths->layer, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

static bool ops_exists_at(int dfd, const char *name)
{
	return faccessat(dfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

_Static_assert(sizeof(((struct member_record *)0)->identity) == SNAPSHOT_MEMBER_ID_SIZE,
	       "a member's identity fits a manifest's");

/* A snapshot is its taker's, not its name's: owner is the member's record
 * here (snapshot_check_owner).  A snapshot that is not the caller's is
 * answered like one that does not exist. */
static void ops_snapshot_owner(const struct agent *a, const struct member_record *rec,
			       struct snapshot_owner *owner)
{
	owner->name = rec->name;
	owner->identity = rec->identity;
	owner->created = rec->created;
	owner->server = a->cfg.server_name;
}

/* The caller's snapshot of that name: -ENOENT when there is none, or when
 * the one there is another member's (logged). */
static int ops_snapshot_get_own(struct agent *a, const struct member_record *rec, const char *name,
				struct snapshot_info *info)
{
	struct snapshot_owner owner;
	char why[256];
	int ret = snapshot_get(&a->cfg, rec->name, name, info);

	if (ret < 0)
		return ret;
	ops_snapshot_owner(a, rec, &owner);
	if (snapshot_check_owner(info, &owner, why, sizeof(why)) < 0) {
		log_warn("%s asked for snapshot %s, which is not theirs: %s", rec->name, name, why);
		return -ENOENT;
	}
	return 0;
}

/* ---- snapshot_create ------------------------------------------------------- */

static int ops_snapshot_dirs(struct op_context *ctx, const char *member, char *dir, size_t len)
{
	char root[PATH_MAX];

	if (snapshot_root(&ctx->a->cfg, root, sizeof(root)) < 0 ||
	    snapshot_path(&ctx->a->cfg, member, NULL, NULL, dir, len) < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "the snapshot directory's path is too long");
	/* Members never read the store directly: only through the agent. */
	if (fsutil_mkdir_p(root, 0700) < 0 || (mkdir(dir, 0700) < 0 && errno != EEXIST))
		return ops_fail(ctx, PROTO_E_FAILED, "cannot create the snapshot directory %s", dir);
	return 0;
}

static const char *ops_snapshot_kind(const struct snapshot_info *info)
{
	return info->local ? "local" : "archive";
}

static void ops_default_snapshot_name(char *buf, size_t len)
{
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(buf, len, "%Y%m%d-%H%M%S", &tm);
}

static int ops_snapshot_usage(struct agent *a, const struct member_record *rec, size_t *count,
			      unsigned long long *bytes)
{
	__do_free struct snapshot_info *list = NULL;
	struct snapshot_owner owner;
	size_t n = 0;
	int ret;

	ops_snapshot_owner(a, rec, &owner);
	ret = snapshot_list(&a->cfg, rec->name, &owner, &list, &n);

	*count = n;
	*bytes = 0;
	for (size_t i = 0; i < n; i++)
		*bytes += list[i].size;
	return ret;
}

/* Why snapshot_write() failed (ret), the partial archive removed. */
static int ops_snapshot_failed(struct op_context *ctx, int ret, unsigned long long used,
			       const char *err)
{
	if (ret == -EDQUOT)
		return ops_fail(ctx, PROTO_E_CONFLICT,
				"the snapshot would take you over your snapshot quota of %llu MB (%llu MB used): it was stopped and nothing was kept; remove one first (gpubox snapshot rm NAME)",
				(unsigned long long)(ctx->a->cfg.snapshot_quota >> 20), used >> 20);
	if (ret == -ENOSPC)
		return ops_fail(ctx, PROTO_E_FAILED,
				"the snapshot was stopped and nothing was kept: %s; an admin frees space", err);
	return ops_fail(ctx, PROTO_E_FAILED, "the snapshot was not written: %s",
			err[0] ? err : strerror(-ret));
}

/* What every snapshot's manifest says of its taker, now. */
static void ops_snapshot_describe(struct agent *a, const struct member_record *rec,
				  struct snapshot_info *info)
{
	struct template_info tpl;

	info->created = (long long)time(NULL);
	snprintf(info->member, sizeof(info->member), "%s", rec->name);
	snprintf(info->member_id, sizeof(info->member_id), "%s", rec->identity);
	snprintf(info->template_ref, sizeof(info->template_ref), "%s", rec->template_ref);
	snprintf(info->server, sizeof(info->server), "%s", a->cfg.server_name);
	if (template_get(&a->cfg, rec->template_ref, &tpl) == 0)
		snprintf(info->template_hash, sizeof(info->template_hash), "%s", tpl.recipe_hash);
}

/* Write the archive while the layer holds still; the caller stopped or froze it. */
static int ops_snapshot_take(struct op_context *ctx, const struct member_record *rec,
			     const char *dir, struct snapshot_info *info)
{
	struct agent *a = ctx->a;
	struct storage_paths paths;
	struct snapshot_stats stats;
	struct snapshot_limits limits = { 0 };
	char tmp[PATH_MAX], final[PATH_MAX], err[512] = "", mark[64];
	unsigned long long used;
	size_t count;
	__do_close int fd = -EBADF;
	int ret;

	snapshot_tmp_mark(&a->cfg, mark, sizeof(mark));
	if (storage_paths(a->cfg.state_dir, rec->name, &paths) < 0 ||
	    snapshot_path(&a->cfg, rec->name, info->name, ".tar.zst", final, sizeof(final)) < 0 ||
	    snprintf(tmp, sizeof(tmp), "%s%sXXXXXX", final, mark) >= (int)sizeof(tmp))
		return ops_fail(ctx, PROTO_E_FAILED, "the snapshot's path is too long");
	ops_snapshot_usage(a, rec, &count, &used);
	/* The write stops as it passes what the quota leaves (ops_snapshot_room
	 * saw some left), or the disk's reserve. */
	if (a->cfg.snapshot_quota)   /* 0 would be no limit: 1 byte is none left */
		limits.max_archive = a->cfg.snapshot_quota > used ? a->cfg.snapshot_quota - used : 1;
	limits.disk_reserve = a->cfg.disk_reserve;
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "cannot create a file in %s: %s", dir, strerror(errno));
	progress_say(ctx->progress, "Writing snapshot %s of %s (zstd, %u threads)", info->name,
		     rec->name, snapshot_compress_threads(a->cfg.snapshot_threads));
	ret = snapshot_write(paths.upper, fd, rec->subid_base, a->cfg.snapshot_threads, &limits,
			     ctx->progress, &stats, err, sizeof(err));
	if (ret == 0 && fsync(fd) < 0)
		ret = -errno;
	if (ret < 0) {
		unlink(tmp);
		return ops_snapshot_failed(ctx, ret, used, err);
	}
	if (ops_snapshot_usage(a, rec, &count, &used) == 0 && a->cfg.snapshot_quota &&
	    used + stats.archive_bytes > a->cfg.snapshot_quota) {
		unlink(tmp);
		return ops_fail(ctx, PROTO_E_CONFLICT,
				"the snapshot (%llu MB) would take you over your snapshot quota of %llu MB (%llu MB used); remove one first (gpubox snapshot rm NAME)",
				stats.archive_bytes >> 20, (unsigned long long)(a->cfg.snapshot_quota >> 20),
				used >> 20);
	}
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, final, RENAME_NOREPLACE) < 0) {
		ret = errno;
		unlink(tmp);
		return ops_fail(ctx, PROTO_E_FAILED, "cannot name the snapshot %s: %s", final, strerror(ret));
	}
	ops_snapshot_describe(a, rec, info);
	info->size = stats.archive_bytes;
	info->content_size = stats.content_bytes;
	snprintf(info->sha256, sizeof(info->sha256), "%s", stats.sha256);
	/* The manifest makes the snapshot exist; written last. */
	ret = snapshot_manifest_write(&a->cfg, info);
	if (ret < 0) {
		unlink(final);
		return ops_fail(ctx, PROTO_E_FAILED, "cannot write the snapshot's manifest: %s",
				strerror(-ret));
	}
	{
		__do_close int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (dfd >= 0 && fsync(dfd) < 0)
			log_warn_errno(0, errno, "cannot sync %s", dir);
	}
	progress_say(ctx->progress, "Snapshot %s: %llu MB of changes in %llu MB", info->name,
		     info->content_size >> 20, info->size >> 20);
	return 0;
}

/*
 * A local snapshot: the layer's subvolume snapshotted at one instant
 * (localsnap.c).  A running container goes on running; with freeze it is
 * paused for that instant, so that no process is in the middle of a write.
 */
static int ops_snapshot_take_local(struct op_context *ctx, const struct member_record *rec,
				   bool freeze, struct snapshot_info *info, bool *frozen)
{
	struct agent *a = ctx->a;
	struct storage_paths paths;
	char why[256] = "";
	int ret;

	*frozen = false;
	if (storage_paths(a->cfg.state_dir, rec->name, &paths) < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "the layer's path is too long");
	if (localsnap_supported(&paths, why, sizeof(why)) < 0)
		return ops_fail(ctx, PROTO_E_UNAVAILABLE,
				"%s; gpubox snapshot %s (without --local) writes an archive instead",
				why, info->name);
	if (freeze && container_get_state(a->lxcpath, rec->name) == CONTAINER_RUNNING)
		*frozen = container_freeze(a->lxcpath, rec->name, true) == 0;
	progress_say(ctx->progress, "Taking local snapshot %s of %s", info->name, rec->name);
	ret = localsnap_take(&paths, info->name);
	/* One without a manifest is no snapshot: what an agent killed between
	 * the two left (ops_snapshot_room saw no manifest of the name). */
	if (ret == -EEXIST && localsnap_remove(&paths, info->name) == 0)
		ret = localsnap_take(&paths, info->name);
	if (*frozen && container_freeze(a->lxcpath, rec->name, false) < 0)
		log_error("cannot thaw the container of %s", rec->name);
	if (ret < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "the local snapshot was not taken: %s", strerror(-ret));
	ops_snapshot_describe(a, rec, info);
	info->local = true;
	ret = snapshot_manifest_write(&a->cfg, info);
	if (ret < 0) {
		localsnap_remove(&paths, info->name);
		return ops_fail(ctx, PROTO_E_FAILED, "cannot write the snapshot's manifest: %s",
				strerror(-ret));
	}
	progress_say(ctx->progress, "Local snapshot %s: copy-on-write, on this server", info->name);
	return 0;
}

/* Room for one more snapshot: its name free, the count and the quota not
 * reached.  What a write cut short left behind is cleaned first, so that
 * it counts for nothing. */
static int ops_snapshot_room(struct op_context *ctx, const struct member_record *rec,
			     const char *name)
{
	struct agent *a = ctx->a;
	struct snapshot_info existing;
	unsigned long long used;
	size_t count;

	snapshot_clean(&a->cfg, rec->name);
	if (ops_snapshot_get_own(a, rec, name, &existing) == 0)
		return ops_fail(ctx, PROTO_E_CONFLICT,
				"you have a snapshot named %s already; choose another name or remove it (gpubox snapshot rm %s)",
				name, name);
	/* Someone else's (an earlier member of the name): kept, never replaced. */
	if (snapshot_get(&a->cfg, rec->name, name, &existing) == 0)
		return ops_fail(ctx, PROTO_E_CONFLICT,
				"a snapshot named %s that is not yours exists in the store; choose another name",
				name);
	ops_snapshot_usage(a, rec, &count, &used);
	if (a->cfg.snapshot_max_count && count >= a->cfg.snapshot_max_count)
		return ops_fail(ctx, PROTO_E_CONFLICT,
				"you have %zu snapshots, the most allowed; remove one first (gpubox snapshot rm NAME)",
				count);
	if (a->cfg.snapshot_quota && used >= a->cfg.snapshot_quota)
		return ops_fail(ctx, PROTO_E_CONFLICT,
				"your snapshots use %llu MB, your whole quota; remove one first (gpubox snapshot rm NAME)",
				used >> 20);
	return 0;
}

/* A running container's layer held still for the snapshot: frozen when
 * asked and possible, else stopped. */
static int ops_snapshot_hold(struct op_context *ctx, const struct member_record *rec, bool freeze,
			     bool *frozen)
{
	*frozen = false;
	if (freeze) {
		/* Frozen, the layer holds still: overlayfs copies a file up in
		 * its work dir and renames it in whole, so no half-copied file
		 * is ever in the layer. */
		progress_say(ctx->progress, "Freezing the container of %s", rec->name);
		*frozen = container_freeze(ctx->a->lxcpath, rec->name, true) == 0;
		if (*frozen)
			return 0;
		progress_say(ctx->progress, "The container cannot be frozen; stopping it instead");
	}
	progress_say(ctx->progress, "Stopping the container of %s for the snapshot", rec->name);
	if (ops_stop_member(ctx->a, rec) < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "the container did not stop; no snapshot was taken");
	return 0;
}

/* The container held still goes on: thawed, or started again.  ret is the
 * snapshot's result; a failed snapshot's error stays the reply's. */
static int ops_snapshot_release(struct op_context *ctx, struct member_record *rec,
				const char *name, bool frozen, int ret)
{
	struct reply_error saved = *ctx->error;
	json_t *started = NULL;

	if (frozen) {
		if (container_freeze(ctx->a->lxcpath, rec->name, false) < 0)
			log_error("cannot thaw the container of %s", rec->name);
		return ret;
	}
	progress_say(ctx->progress, "Starting the container of %s again", rec->name);
	if (ops_start_member(ctx, rec, &started) < 0 && ret == 0) {
		/* ops_fail() writes the text it reads: a copy first. */
		struct reply_error why = *ctx->error;

		ret = ops_fail(ctx, PROTO_E_FAILED,
			       "snapshot %s was saved, but the container did not start again: %s",
			       name, why.text);
	} else if (ret < 0) {
		*ctx->error = saved;
	}
	json_decref(started);
	return ret;
}

static int op_snapshot_create(struct op_context *ctx, json_t **result)
{
	static const char *const allowed[] = { "member", "name", "freeze", "local", NULL };
	struct agent *a = ctx->a;
	__do_unlock_member struct member_lock lock = { 0 };
	struct member_record rec;
	struct snapshot_info info = { 0 };
	const char *name = NULL;
	char err[256], dir[PATH_MAX];
	bool freeze = false, local = false, running, frozen = false;
	int ret;

	if (ops_check_args(ctx, allowed) < 0 || ops_target(ctx, &rec) < 0)
		return -1;
	if (proto_arg_string(ctx->args, "name", false, &name, err, sizeof(err)) < 0 ||
	    proto_arg_bool(ctx->args, "freeze", &freeze, err, sizeof(err)) < 0 ||
	    proto_arg_bool(ctx->args, "local", &local, err, sizeof(err)) < 0)
		return ops_usage(ctx, err);
	if (name && snapshot_check_name(name, err, sizeof(err)) < 0)
		return ops_usage(ctx, err);
	if (name)
		snprintf(info.name, sizeof(info.name), "%s", name);
	else
		ops_default_snapshot_name(info.name, sizeof(info.name));
	if (!rec.template_ref[0])
		return ops_fail(ctx, PROTO_E_USAGE,
				"your container has never been started: there is nothing to snapshot yet");
	if (!rec.identity[0])
		return ops_fail(ctx, PROTO_E_FAILED,
				"the agent's database holds no identity for %s; no snapshot was taken", rec.name);
	if (ops_snapshot_dirs(ctx, rec.name, dir, sizeof(dir)) < 0)
		return -1;

	lock = agent_lock_member(a, rec.name);
	if (ops_snapshot_room(ctx, &rec, info.name) < 0)
		return -1;
	if (local) {
		ret = ops_snapshot_take_local(ctx, &rec, freeze, &info, &frozen);
	} else {
		running = container_get_state(a->lxcpath, rec.name) == CONTAINER_RUNNING;
		if (running && ops_snapshot_hold(ctx, &rec, freeze, &frozen) < 0)
			return -1;
		ret = ops_snapshot_take(ctx, &rec, dir, &info);
		if (running)
			ret = ops_snapshot_release(ctx, &rec, info.name, frozen, ret);
	}
	if (ret < 0)
		return -1;
	*result = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:b}", "name", info.name,
			    "kind", ops_snapshot_kind(&info), "member", rec.name,
			    "template", info.template_ref, "created", (json_int_t)info.created,
			    "size", (json_int_t)info.size, "content_size", (json_int_t)info.content_size,
			    "sha256", info.sha256, "frozen", frozen);
	return 0;
}

/* ---- snapshot_ls, snapshot_rm ---------------------------------------------- */

static int op_snapshot_ls(struct op_context *ctx, json_t **result)
{
	static const char *const allowed[] = { "member", NULL };
	__do_free struct snapshot_info *list = NULL;
	struct member_record rec;
	struct snapshot_owner owner;
	unsigned long long used = 0;
	json_t *array;
	size_t n = 0;

	if (ops_check_args(ctx, allowed) < 0 || ops_target(ctx, &rec) < 0)
		return -1;
	ops_snapshot_owner(ctx->a, &rec, &owner);
	if (snapshot_list(&ctx->a->cfg, rec.name, &owner, &list, &n) < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "cannot read the snapshot directory; see the agent's log");
	array = json_array();
	for (size_t i = 0; i < n; i++) {
		used += list[i].size;
		json_array_append_new(array, json_pack("{s:s, s:s, s:I, s:I, s:I, s:s, s:s}",
			"name", list[i].name, "kind", ops_snapshot_kind(&list[i]),
			"created", (json_int_t)list[i].created,
			"size", (json_int_t)list[i].size, "content_size", (json_int_t)list[i].content_size,
			"template", list[i].template_ref, "server", list[i].server));
	}
	*result = json_pack("{s:s, s:o, s:I, s:I, s:i}", "member", rec.name, "snapshots", array,
			    "used", (json_int_t)used, "quota", (json_int_t)ctx->a->cfg.snapshot_quota,
			    "max_count", (int)ctx->a->cfg.snapshot_max_count);
	return 0;
}

static void ops_snapshot_remove_local(struct agent *a, const struct member_record *rec,
				      const char *name)
{
	struct storage_paths paths;
	int ret = storage_paths(a->cfg.state_dir, rec->name, &paths);

	if (ret == 0)
		ret = localsnap_remove(&paths, name);
	if (ret < 0)
		log_warn_errno(0, -ret, "cannot delete the local snapshot %s of %s; it is taken again if the name is",
			       name, rec->name);
}

static int op_snapshot_rm(struct op_context *ctx, json_t **result)
{
	static const char *const allowed[] = { "member", "name", NULL };
	__do_unlock_member struct member_lock lock = { 0 };
	struct member_record rec;
	struct snapshot_info info;
	const char *name = NULL;
	char err[256];
	int ret;

	if (ops_check_args(ctx, allowed) < 0 || ops_target(ctx, &rec) < 0)
		return -1;
	if (proto_arg_string(ctx->args, "name", true, &name, err, sizeof(err)) < 0 ||
	    snapshot_check_name(name, err, sizeof(err)) < 0)
		return ops_usage(ctx, err);
	lock = agent_lock_member(ctx->a, rec.name);
	ret = ops_snapshot_get_own(ctx->a, &rec, name, &info);
	if (ret == 0)
		ret = snapshot_remove(&ctx->a->cfg, rec.name, name);
	/* The manifest gone, the snapshot is; its subvolume goes after. */
	if (ret == 0 && info.local)
		ops_snapshot_remove_local(ctx->a, &rec, name);
	if (ret == -ENOENT)
		return ops_fail(ctx, PROTO_E_NOTFOUND, "you have no snapshot named %s (see gpubox snapshot ls)", name);
	if (ret < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "cannot remove snapshot %s: %s", name, strerror(-ret));
	*result = json_pack("{s:s, s:s}", "member", rec.name, "name", name);
	return 0;
}

/* ---- restore ------------------------------------------------------------------ */

/* Put the layer back as it was before a restore began; idempotent. */
static int ops_restore_undo(struct agent *a, const struct member_record *rec,
			    const struct storage_paths *paths)
{
	__do_close int lfd = ops_layer_open(paths);
	__do_free char *text = NULL;
	__do_json json_t *marker = NULL;
	const char *previous = NULL;
	char path[PATH_MAX];
	int ret;

	if (lfd < 0)
		return lfd;
	if (snprintf(path, sizeof(path), "%s/" OPS_RESTORE_MARKER, paths->layer) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	if (fsutil_read_file(path, 64 * 1024, &text, NULL) == 0)
		marker = json_loads(text, 0, NULL);
	previous = json_string_value(json_object_get(marker, "template"));

	if (ops_exists_at(lfd, OPS_RESTORE_PREV)) {
		ret = fsutil_remove_tree_at(lfd, "upper");
		if (ret < 0)
			return log_error_errno(ret, -ret, "cannot remove the restored layer of %s", rec->name);
		if (renameat(lfd, OPS_RESTORE_PREV, lfd, "upper") < 0)
			return log_error_errno(-errno, errno, "cannot put back the layer of %s", rec->name);
	}
	ret = fsutil_remove_tree_at(lfd, OPS_RESTORE_NEW);
	if (ret < 0)
		log_warn_errno(0, -ret, "cannot remove %s/" OPS_RESTORE_NEW, paths->layer);
	fsutil_empty_dir(paths->work);
	if (previous && db_member_set_template(a->db, rec->name, previous) < 0)
		return -EIO;
	if (fsync(lfd) < 0)
		log_warn_errno(0, errno, "cannot sync %s", paths->layer);
	if (unlinkat(lfd, OPS_RESTORE_MARKER, 0) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

/* A restore that failed before its renames: the layer is put back as it was. */
static int ops_restore_unchanged(struct op_context *ctx, const struct member_record *rec,
				 const struct storage_paths *paths, const char *snapshot, int ret,
				 const char *why)
{
	ops_restore_undo(ctx->a, rec, paths);
	return ops_fail(ctx, ret == -EPERM || ret == -EBADMSG ? PROTO_E_DENIED : PROTO_E_FAILED,
			"snapshot %s was not restored, your container is unchanged: %s", snapshot, why);
}

/* 2. The archive, extracted; the files the member still has as the
 * snapshot holds them are kept rather than written again. */
static int ops_restore_fill_archive(struct op_context *ctx, const struct member_record *rec,
				    const struct storage_paths *paths,
				    const struct snapshot_info *info, int archive_fd,
				    const char *restore, char *err, size_t errlen)
{
	struct snapshot_stats stats;
	struct snapshot_limits limits = { 0 };
	int ret;

	progress_say(ctx->progress, "Restoring snapshot %s (%llu MB)", info->name, info->size >> 20);
	limits.disk_reserve = ctx->a->cfg.disk_reserve;
	limits.previous_upper = paths->upper;
	ret = snapshot_extract(archive_fd, info, restore, rec->subid_base, &limits, ctx->progress,
			       &stats, err, errlen);
	if (ret == 0 && stats.reused_files)
		progress_say(ctx->progress, "Restore: %llu files (%llu MB) were unchanged and kept",
			     stats.reused_files, stats.reused_bytes >> 20);
	return ret;
}

/* 2, for a local snapshot: its files copied with reflinks, every file's
 * data shared with the snapshot's. */
static int ops_restore_fill_local(struct op_context *ctx, const struct storage_paths *paths,
				  const struct snapshot_info *info, const char *restore, char *err,
				  size_t errlen)
{
	char from[PATH_MAX];
	int ret = localsnap_upper(paths, info->name, from, sizeof(from));

	progress_say(ctx->progress, "Restoring local snapshot %s", info->name);
	if (ret == 0)
		ret = storage_copy_tree(from, restore);
	if (ret < 0)
		snprintf(err, errlen, "its files could not be copied back; see the agent's log");
	return ret;
}

static int ops_restore_swap(struct op_context *ctx, const struct member_record *rec,
			    const struct storage_paths *paths, const struct snapshot_info *info,
			    int archive_fd)
{
	__do_close int lfd = ops_layer_open(paths);
	__do_json json_t *marker = NULL;
	__do_free char *text = NULL;
	char path[PATH_MAX], restore[PATH_MAX], err[512] = "";
	int ret;

	if (lfd < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "cannot open the layer of %s", rec->name);
	/* 1. The marker: an agent killed from here on rolls back at its next start. */
	marker = json_pack("{s:s, s:s, s:I}", "snapshot", info->name, "template", rec->template_ref,
			   "started", (json_int_t)time(NULL));
	text = marker ? json_dumps(marker, 0) : NULL;
	if (snprintf(path, sizeof(path), "%s/" OPS_RESTORE_MARKER, paths->layer) >= (int)sizeof(path) ||
	    snprintf(restore, sizeof(restore), "%s/" OPS_RESTORE_NEW, paths->layer) >= (int)sizeof(restore))
		return ops_fail(ctx, PROTO_E_FAILED, "the layer's path is too long");
	if (!text || fsutil_write_atomic(path, text, strlen(text), 0600) < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "cannot write %s", path);

	/* 2. The snapshot's files, into a fresh directory of the member's. */
	fsutil_remove_tree_at(lfd, OPS_RESTORE_NEW);
	if (mkdirat(lfd, OPS_RESTORE_NEW, 0755) < 0 ||
	    fchownat(lfd, OPS_RESTORE_NEW, rec->subid_base, rec->subid_base, AT_SYMLINK_NOFOLLOW) < 0) {
		ret = errno;
		ops_restore_undo(ctx->a, rec, paths);
		return ops_fail(ctx, PROTO_E_FAILED, "cannot create %s: %s", restore, strerror(ret));
	}
	if (info->local)
		ret = ops_restore_fill_local(ctx, paths, info, restore, err, sizeof(err));
	else
		ret = ops_restore_fill_archive(ctx, rec, paths, info, archive_fd, restore, err, sizeof(err));
	if (ret == 0 && syncfs(lfd) < 0)
		ret = -errno;
	if (ret < 0)
		return ops_restore_unchanged(ctx, rec, paths, info->name, ret,
					     err[0] ? err : strerror(-ret));

	/* 3. Two renames: the old layer aside, the new one in place. */
	fsutil_remove_tree_at(lfd, OPS_RESTORE_PREV);
	if (renameat(lfd, "upper", lfd, OPS_RESTORE_PREV) < 0 ||
	    renameat(lfd, OPS_RESTORE_NEW, lfd, "upper") < 0) {
		ret = errno;
		ops_restore_undo(ctx->a, rec, paths);
		return ops_fail(ctx, PROTO_E_FAILED, "cannot put the restored layer in place: %s",
				strerror(ret));
	}
	fsutil_empty_dir(paths->work);
	if (fsync(lfd) < 0)
		log_warn_errno(0, errno, "cannot sync %s", paths->layer);
	return 0;
}

/*
 * Everything a restore needs, checked before anything changes: the
 * caller's own snapshot, confirmed, and the template it was taken on, as
 * it was built then.
 */
static int ops_restore_check(struct op_context *ctx, const struct member_record *rec,
			     const char **name, struct snapshot_info *info)
{
	struct agent *a = ctx->a;
	struct template_info tpl;
	char err[256];
	bool confirm = false;
	int ret;

	if (proto_arg_string(ctx->args, "name", true, name, err, sizeof(err)) < 0 ||
	    proto_arg_bool(ctx->args, "confirm", &confirm, err, sizeof(err)) < 0)
		return ops_usage(ctx, err);
	/* A name, never a path: only the caller's own snapshots can be named. */
	if (snapshot_check_name(*name, err, sizeof(err)) < 0)
		return ops_usage(ctx, err);
	/* Not the caller's (another member's, an earlier member's of the same
	 * name): as if it did not exist, as snapshot ls shows it. */
	ret = ops_snapshot_get_own(a, rec, *name, info);
	if (ret == -ENOENT)
		return ops_fail(ctx, PROTO_E_NOTFOUND, "you have no snapshot named %s (see gpubox snapshot ls)", *name);
	if (ret < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "snapshot %s cannot be read; see the agent's log", *name);
	if (!confirm)
		return ops_usage(ctx, "restore replaces every file of your container with the snapshot's; confirm it (gpubox restore NAME --yes)");
	ret = template_get(&a->cfg, info->template_ref, &tpl);
	if (ret < 0)
		return ops_fail(ctx, PROTO_E_FAILED,
				"snapshot %s was taken on template %s, which this server does not have; an admin builds or copies it",
				*name, info->template_ref);
	if (snapshot_check_template(info, &tpl, err, sizeof(err)) < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "%s", err);
	return 0;
}

/* The archive, opened while nothing has changed yet: a missing or truncated
 * file fails the restore before the container is stopped.  Returns the
 * descriptor. */
static int ops_restore_open(struct op_context *ctx, const struct member_record *rec,
			    const char *name, const struct snapshot_info *info)
{
	__do_close int fd = snapshot_open(&ctx->a->cfg, rec->name, name, ".tar.zst");
	struct stat st;

	if (fd == -EPERM)
		return ops_fail(ctx, PROTO_E_DENIED, "the archive of snapshot %s is not a regular file; refused", name);
	if (fd < 0 || fstat(fd, &st) < 0 || (unsigned long long)st.st_size != info->size)
		return ops_fail(ctx, PROTO_E_FAILED, "the archive of snapshot %s is missing or damaged", name);
	return move_fd(fd);
}

/* A local snapshot's files, there while nothing has changed yet. */
static int ops_restore_check_local(struct op_context *ctx, const struct storage_paths *paths,
				   const struct snapshot_info *info)
{
	char upper[PATH_MAX];
	struct stat st;

	if (localsnap_upper(paths, info->name, upper, sizeof(upper)) < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "the layer's path is too long");
	if (lstat(upper, &st) < 0 || !S_ISDIR(st.st_mode))
		return ops_fail(ctx, PROTO_E_FAILED,
				"the files of local snapshot %s are missing from this server's disk", info->name);
	return 0;
}

/* The disk of the member's files has room above disk_reserve, checked
 * before the container is stopped; the extraction checks again as it
 * writes. */
static int ops_restore_room(struct op_context *ctx, const struct storage_paths *paths,
			    const char *name)
{
	__do_close int fd = open(paths->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	unsigned long long reserve = ctx->a->cfg.disk_reserve;
	uint64_t avail;

	if (fd < 0 || !reserve)
		return 0;   /* no directory yet: the extraction checks */
	if (fsutil_space_left(fd, reserve, FSUTIL_RESERVE_STEP, &avail) != -ENOSPC)
		return 0;
	return ops_fail(ctx, PROTO_E_FAILED,
			"snapshot %s was not restored, your container is unchanged: the disk of your container's files has %llu MB free, and the agent keeps %llu MB of it free (disk_reserve); an admin frees space",
			name, (unsigned long long)(avail >> 20), reserve >> 20);
}

/* Start a container that ran before a restore that failed; the reply keeps
 * the restore's failure, whatever the start says. */
static void ops_restore_restart(struct op_context *ctx, struct member_record *rec)
{
	struct reply_error failed = *ctx->error;
	json_t *started = NULL;

	ops_start_member(ctx, rec, &started);
	json_decref(started);
	*ctx->error = failed;
}

/*
 * 4. The member's layer sits on the snapshot's template now: start it
 * there.  A container that does not start gets its previous files (and
 * template) back, and runs again if it ran before.
 */
static int ops_restore_start(struct op_context *ctx, struct member_record *rec,
			     const struct storage_paths *paths, const struct snapshot_info *info,
			     bool was_running, json_t **result)
{
	struct agent *a = ctx->a;
	struct reply_error failed;
	struct member_record old;

	if (db_member_set_template(a->db, rec->name, info->template_ref) < 0) {
		ops_restore_undo(a, rec, paths);
		return ops_fail(ctx, PROTO_E_FAILED, "the agent's database failed; nothing was restored");
	}
	snprintf(rec->template_ref, sizeof(rec->template_ref), "%s", info->template_ref);
	if (ops_start_member(ctx, rec, result) == 0)
		return 0;
	failed = *ctx->error;
	ops_stop_member(a, rec);
	ops_restore_undo(a, rec, paths);
	if (was_running && db_member_get(a->db, rec->name, &old) == 0)
		ops_restore_restart(ctx, &old);
	return ops_fail(ctx, PROTO_E_FAILED,
			"the restored container did not start, so your previous files were put back: %s",
			failed.text);
}

/* 5. Done: the marker first, then the old layer.  A failure here leaves
 * leftovers that ops_snapshot_reconcile() removes at the next start. */
static void ops_restore_finish(const struct member_record *rec, const struct storage_paths *paths)
{
	__do_close int lfd = ops_layer_open(paths);
	int ret;

	if (lfd < 0)
		return;
	if (unlinkat(lfd, OPS_RESTORE_MARKER, 0) < 0 && errno != ENOENT)
		log_warn_errno(0, errno, "cannot remove the restore marker of %s", rec->name);
	fsync(lfd);
	ret = storage_discard(paths, OPS_RESTORE_PREV);
	if (ret < 0)
		log_warn_errno(0, -ret, "cannot remove the previous layer of %s", rec->name);
}

static int op_restore(struct op_context *ctx, json_t **result)
{
	static const char *const allowed[] = { "member", "name", "confirm", NULL };
	struct agent *a = ctx->a;
	__do_unlock_member struct member_lock lock = { 0 };
	__do_close int fd = -EBADF;
	struct member_record rec;
	struct snapshot_info info;
	struct storage_paths paths;
	struct storage_disk disk;
	const char *name = NULL;
	bool was_running;

	if (ops_check_args(ctx, allowed) < 0 || ops_target(ctx, &rec) < 0 ||
	    ops_restore_check(ctx, &rec, &name, &info) < 0)
		return -1;
	if (storage_paths(a->cfg.state_dir, rec.name, &paths) < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "cannot work out the container's paths");
	if (info.local) {
		if (ops_restore_check_local(ctx, &paths, &info) < 0)
			return -1;
	} else {
		fd = ops_restore_open(ctx, &rec, name, &info);
		if (fd < 0)
			return -1;
	}
	if (ops_restore_room(ctx, &paths, name) < 0)
		return -1;

	lock = agent_lock_member(a, rec.name);
	was_running = container_get_state(a->lxcpath, rec.name) == CONTAINER_RUNNING;
	progress_say(ctx->progress, "Stopping the container of %s for the restore", rec.name);
	if (ops_stop_member(a, &rec) < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "the container did not stop; nothing was restored");
	if (ops_limits_disk(a, &rec, &disk) < 0 || storage_prepare(&paths, rec.subid_base, &disk) < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "cannot prepare the container's layer; see the agent's log");
	/* 1-3; a failure there has put the layer back already. */
	if (ops_restore_swap(ctx, &rec, &paths, &info, fd) < 0) {
		if (was_running)
			ops_restore_restart(ctx, &rec);
		return -1;
	}
	if (ops_restore_start(ctx, &rec, &paths, &info, was_running, result) < 0)
		return -1;
	ops_restore_finish(&rec, &paths);
	if (*result)
		json_object_set_new(*result, "restored", json_string(info.name));
	return 0;
}

/* ---- rebuild --keep-home, and recovery ------------------------------------ */

int ops_snapshot_keep_home(const struct storage_paths *paths)
{
	__do_close int lfd = ops_layer_open(paths);
	__do_close int ufd = -EBADF;

	if (lfd < 0)
		return lfd;
	ufd = openat(lfd, "upper", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (ufd < 0)
		return -errno;
	if (ops_exists_at(lfd, OPS_HOME_KEPT))
		return log_error_errno(-EEXIST, 0, "%s/" OPS_HOME_KEPT " exists already", paths->layer);
	/* An unchanged /home has no entry in the layer: nothing to keep. */
	if (!ops_exists_at(ufd, "home"))
		return 0;
	if (renameat(ufd, "home", lfd, OPS_HOME_KEPT) < 0)
		return -errno;
	return fsync(lfd) < 0 ? -errno : 0;
}

int ops_snapshot_return_home(const struct storage_paths *paths)
{
	__do_close int lfd = ops_layer_open(paths);
	__do_close int ufd = -EBADF;

	if (lfd < 0)
		return lfd;
	if (!ops_exists_at(lfd, OPS_HOME_KEPT))
		return 0;
	ufd = openat(lfd, "upper", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (ufd < 0)
		return -errno;
	if (renameat2(lfd, OPS_HOME_KEPT, ufd, "home", RENAME_NOREPLACE) < 0)
		return log_error_errno(-errno, errno, "cannot put /home back into %s", paths->upper);
	return fsync(lfd) < 0 ? -errno : 0;
}

int ops_snapshot_reconcile(struct agent *a, const struct member_record *rec)
{
	__do_close int lfd = -EBADF;
	struct storage_paths paths;
	int ret = 0;

	snapshot_clean(&a->cfg, rec->name);
	if (storage_paths(a->cfg.state_dir, rec->name, &paths) < 0)
		return -EINVAL;
	lfd = ops_layer_open(&paths);
	if (lfd < 0)
		return 0;   /* never started: no layer */
	if (ops_exists_at(lfd, OPS_RESTORE_MARKER)) {
		log_warn("a restore of %s was cut short; putting the previous layer back", rec->name);
		if (container_get_state(a->lxcpath, rec->name) != CONTAINER_STOPPED &&
		    container_get_state(a->lxcpath, rec->name) != CONTAINER_ABSENT)
			ops_stop_member(a, rec);
		storage_unmount(&paths);
		ret = ops_restore_undo(a, rec, &paths);
	} else if (ops_exists_at(lfd, OPS_RESTORE_PREV)) {
		/* A restore that finished but for removing the old layer. */
		fsutil_remove_tree_at(lfd, OPS_RESTORE_PREV);
	} else if (ops_exists_at(lfd, OPS_RESTORE_NEW)) {
		fsutil_remove_tree_at(lfd, OPS_RESTORE_NEW);
	}
	if (ops_exists_at(lfd, OPS_HOME_KEPT)) {
		log_warn("a rebuild of %s keeping /home was cut short; putting /home back", rec->name);
		if (ops_snapshot_return_home(&paths) < 0)
			log_error("%s/" OPS_HOME_KEPT " is kept: the layer has a /home of its own",
				  paths.layer);
	}
	return ret;
}

/* ---- template_rm ---------------------------------------------------------- */

static int ops_template_in_use(void *data, const char *ref, char *who, size_t wholen)
{
	struct agent *a = data;
	__do_free struct member_record *list = NULL;
	size_t n = 0;
	int ret;

	ret = db_member_list(a->db, &list, &n);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(list[i].template_ref, ref) == 0) {
			snprintf(who, wholen, "the container of %s", list[i].name);
			return 1;
		}
	}
	return snapshot_uses_template(&a->cfg, ref, who, wholen);
}

static int op_template_rm(struct op_context *ctx, json_t **result)
{
	static const char *const allowed[] = { "ref", NULL };
	const char *ref = NULL;
	char err[512] = "";
	int ret;

	if (ops_require_admin(ctx) < 0 || ops_check_args(ctx, allowed) < 0)
		return -1;
	if (proto_arg_string(ctx->args, "ref", true, &ref, err, sizeof(err)) < 0)
		return ops_usage(ctx, err);
	/* Members pick their template when they start: none may start meanwhile. */
	pthread_mutex_lock(&ctx->a->members_lock);
	ret = template_remove(&ctx->a->cfg, ref, ops_template_in_use, ctx->a, err, sizeof(err));
	pthread_mutex_unlock(&ctx->a->members_lock);
	switch (ret) {
	case 0:
		break;
	case -EINVAL:
		return ops_usage(ctx, err);
	case -ENOENT:
		return ops_fail(ctx, PROTO_E_NOTFOUND, "%s", err);
	case -EBUSY:
		return ops_fail(ctx, PROTO_E_CONFLICT, "%s", err);
	default:
		return ops_fail(ctx, PROTO_E_FAILED, "%s", err[0] ? err : "the template could not be removed");
	}
	*result = json_pack("{s:s}", "ref", ref);
	return 0;
}

const struct op_entry ops_snapshot_table[] = {
	{ "snapshot_create", op_snapshot_create, OP_CHANGES,   "member name" },
	{ "snapshot_ls",     op_snapshot_ls,     OP_READ_ONLY, NULL },
	{ "snapshot_rm",     op_snapshot_rm,     OP_CHANGES,   "member name" },
	{ "restore",         op_restore,         OP_CHANGES,   "member name" },
	{ "template_rm",     op_template_rm,     OP_CHANGES,   "ref" },
	{ 0 },
};
