/* SPDX-License-Identifier: MIT */
/*
 * The member's overlay of the shared template.  The template's rootfs is
 * unshifted (owned by 0..65535) and read-only; each member sees it through
 * an idmapped mount (0 -> the member's subid base) used as the lower layer
 * of an overlay whose upper layer is a plain directory of the member's own.
 * Creating a container is therefore a few mkdir(), whatever the template's
 * size, and rebuilding it is emptying the upper layer.
 *
 * The idmapped mount needs a user namespace with the member's mapping: a
 * helper child unshares one, we write its maps, keep a descriptor of it and
 * let the child go.  The agent is multithreaded, so the child only makes
 * async-signal-safe calls.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/magic.h>
#include <linux/mount.h>

#include "container/container.h"
#include "cleanup.h"
#include "fsutil.h"
#include "log.h"
#include "spawn.h"
#include "banned.h"

/* Bound on the mounts stacked at one path that unmount will take off. */
#define STORAGE_MAX_STACKED 16

/* upper, work and nested below layer. */
static int storage_set_layer(struct storage_paths *out, const char *layer)
{
	int n = snprintf(out->layer, sizeof(out->layer), "%s", layer);

	if (n < 0 || (size_t)n >= sizeof(out->layer))
		return -ENAMETOOLONG;
	n = snprintf(out->upper, sizeof(out->upper), "%s/upper", layer);
	if (n < 0 || (size_t)n >= sizeof(out->upper))
		return -ENAMETOOLONG;
	n = snprintf(out->work, sizeof(out->work), "%s/work", layer);
	if (n < 0 || (size_t)n >= sizeof(out->work))
		return -ENAMETOOLONG;
	n = snprintf(out->nested, sizeof(out->nested), "%s/nested", layer);
	if (n < 0 || (size_t)n >= sizeof(out->nested))
		return -ENAMETOOLONG;
	return 0;
}

/* <dir>/layer: where agents before the pool kept the layer. */
static int storage_legacy_layer(const struct storage_paths *paths, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/layer", paths->dir);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static bool storage_is_dir(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int storage_paths(const char *state_dir, const char *member, struct storage_paths *out)
{
	char pool[PATH_MAX], legacy[PATH_MAX];
	int n, ret;

	if (!state_dir || !*state_dir || !member || !*member || member[0] == '.' ||
	    strchr(member, '/'))
		return log_error_errno(-EINVAL, 0, "invalid member name \"%s\" for storage", member ? member : "");

	n = snprintf(out->dir, sizeof(out->dir), "%s/users/%s", state_dir, member);
	if (n < 0 || (size_t)n >= sizeof(out->dir))
		return -ENAMETOOLONG;
	ret = pool_dir(state_dir, pool, sizeof(pool));
	if (ret < 0)
		return ret;
	n = snprintf(out->pool_layer, sizeof(out->pool_layer), "%s/%s", pool, member);
	if (n < 0 || (size_t)n >= sizeof(out->pool_layer))
		return -ENAMETOOLONG;
	ret = storage_legacy_layer(out, legacy, sizeof(legacy));
	if (ret < 0)
		return ret;
	/* An older agent's layer is used where it is until it is moved. */
	if (!storage_is_dir(out->pool_layer) && storage_is_dir(legacy))
		ret = storage_set_layer(out, legacy);
	else
		ret = storage_set_layer(out, out->pool_layer);
	if (ret < 0)
		return ret;
	n = snprintf(out->lower, sizeof(out->lower), "%s/lower", out->dir);
	if (n < 0 || (size_t)n >= sizeof(out->lower))
		return -ENAMETOOLONG;
	n = snprintf(out->rootfs, sizeof(out->rootfs), "%s/rootfs", out->dir);
	if (n < 0 || (size_t)n >= sizeof(out->rootfs))
		return -ENAMETOOLONG;
	return layerimg_path(state_dir, member, out->image, sizeof(out->image));
}

bool storage_layer_is_legacy(const struct storage_paths *paths)
{
	return strcmp(paths->layer, paths->pool_layer) != 0;
}

/*
 * Make sure path is a directory (created with mode if absent, never a
 * symbolic link) owned by uid:gid with mode.
 */
static int storage_ensure_dir(const char *path, mode_t mode, uid_t uid, gid_t gid)
{
	__do_close int fd = -EBADF;
	struct stat st;

	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return log_error_errno(-errno, errno, "cannot create %s", path);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return log_error_errno(-errno, errno, "cannot open directory %s", path);
	if (fstat(fd, &st) < 0)
		return log_error_errno(-errno, errno, "cannot stat %s", path);
	if ((st.st_uid != uid || st.st_gid != gid) && fchown(fd, uid, gid) < 0)
		return log_error_errno(-errno, errno, "cannot chown %s", path);
	if ((st.st_mode & 07777) != mode && fchmod(fd, mode) < 0)
		return log_error_errno(-errno, errno, "cannot chmod %s", path);
	return 0;
}

int storage_parent(const char *path, char *buf, size_t len)
{
	const char *slash = strrchr(path, '/');
	size_t n;

	if (!slash || slash == path)
		return -EINVAL;
	n = (size_t)(slash - path);
	if (n >= len)
		return -ENAMETOOLONG;
	memcpy(buf, path, n);
	buf[n] = '\0';
	return 0;
}

/* The member's name: the last part of the layer's place in the pool. */
static const char *storage_member(const struct storage_paths *paths)
{
	return strrchr(paths->pool_layer, '/') + 1;
}

/* An entry of the pool beside the layers, for work on a layer
 * (".moving-<member>", ".retired/..."): names no member can have. */
__attribute__((format(printf, 4, 5)))
static int storage_pool_entry(const struct storage_paths *paths, char *buf, size_t len,
			      const char *fmt, ...)
{
	char parent[PATH_MAX];
	va_list ap;
	int n, m, ret = storage_parent(paths->pool_layer, parent, sizeof(parent));

	if (ret < 0)
		return ret;
	n = snprintf(buf, len, "%s/", parent);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	va_start(ap, fmt);
	m = vsnprintf(buf + n, len - (size_t)n, fmt, ap);
	va_end(ap);
	return m < 0 || (size_t)m >= len - (size_t)n ? -ENAMETOOLONG : 0;
}

/* The project id on the layer directory at path, before anything is
 * created in it; nothing to do where the file system has no project ids. */
static int storage_tag_layer(const char *path, uint32_t project)
{
	__do_close int fd = -EBADF;
	int ret;

	if (project == 0)
		return 0;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return log_error_errno(-errno, errno, "cannot open %s", path);
	ret = quota_set_project(fd, project);
	if (ret == -EOPNOTSUPP || ret == -ENOTTY || ret == -EINVAL) {
		log_debug("%s: no project ids on this file system", path);
		return 0;
	}
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot set project %u on %s", project, path);
	return 0;
}

int storage_copy_tree(const char *from, const char *to)
{
	/* cp -a keeps owners, modes, links, sparse files, device nodes (the
	 * overlay's whiteouts) and extended attributes (its trusted.overlay.*
	 * markers); -T copies from's contents into the existing to.  Where the
	 * file system can, a file's data is shared rather than written again
	 * (reflinks); a file it will not share (btrfs' NOCOW files, such as
	 * systemd's journals) is copied. */
	const char *argv[] = { "cp", "-a", "-T", "--reflink=auto", "--", from, to, NULL };
	char out[1024] = "";
	int ret = spawn_run(argv, &(struct spawn_options){ .capture = out, .capture_size = sizeof(out) });

	if (ret != 0)
		return log_error_errno(ret < 0 ? ret : -EIO, 0, "cannot copy %s to %s (%d): %s", from, to, ret, out);
	return 0;
}

/*
 * Move an older agent's layer (<dir>/layer) into the pool.  A copy into a
 * directory that already has the member's project, so that every file is
 * charged to it (a rename keeps the files' old project id), made under a
 * temporary name and renamed into place whole; the old layer is removed
 * only then.  A rename where the pool has no quotas to charge.
 */
static int storage_move_layer(struct storage_paths *paths, uint32_t project)
{
	char moving[PATH_MAX], parent[PATH_MAX];
	__do_close int pool_fd = -EBADF, fd = -EBADF;
	int ret;

	ret = storage_pool_entry(paths, moving, sizeof(moving), ".moving-%s", storage_member(paths));
	if (ret == 0)
		ret = storage_parent(paths->pool_layer, parent, sizeof(parent));
	if (ret == 0)
		ret = fsutil_mkdir_p(parent, 0700);
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot create %s", parent);
	pool_fd = open(parent, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (pool_fd < 0)
		return log_error_errno(-errno, errno, "cannot open %s", parent);
	if (!quota_enforced(pool_fd) && rename(paths->layer, paths->pool_layer) == 0)
		goto moved;

	log_info("copying the layer %s into %s", paths->layer, paths->pool_layer);
	/* Left by an agent stopped half-way through an earlier copy. */
	ret = fsutil_remove_tree(moving);
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot remove %s", moving);
	ret = storage_ensure_dir(moving, 0700, 0, 0);
	if (ret == 0)
		ret = storage_tag_layer(moving, project);
	if (ret == 0)
		ret = storage_copy_tree(paths->layer, moving);
	if (ret == 0) {
		fd = open(moving, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 || syncfs(fd) < 0)
			ret = log_error_errno(-errno, errno, "cannot sync %s", moving);
	}
	if (ret == 0 && rename(moving, paths->pool_layer) < 0)
		ret = log_error_errno(-errno, errno, "cannot rename %s", moving);
	if (ret < 0) {
		fsutil_remove_tree(moving);
		return ret;
	}
	fsync(pool_fd);
	ret = fsutil_remove_tree(paths->layer);
	if (ret < 0)
		log_warn_errno(0, -ret, "the old layer %s was copied but not removed", paths->layer);
moved:
	log_info("the layer %s is now %s", paths->layer, paths->pool_layer);
	return storage_set_layer(paths, paths->pool_layer);
}

/* The layer directory, moved into the pool if it is not there yet, with
 * its image and project id before upper and work are made. */
static int storage_prepare_layer(struct storage_paths *paths, uint32_t subid_base,
				 const struct storage_disk *disk)
{
	char parent[PATH_MAX];
	int ret;

	if (storage_layer_is_legacy(paths)) {
		ret = storage_move_layer(paths, disk->project);
		if (ret < 0)
			return ret;
	}
	ret = storage_parent(paths->layer, parent, sizeof(parent));
	if (ret == 0 && !storage_is_dir(parent))
		ret = fsutil_mkdir_p(parent, 0700);
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot create %s", parent);
	/* A new layer on btrfs is a subvolume, for local snapshots (localsnap.c). */
	ret = localsnap_make_dir(paths->layer, 0700);
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot create %s", paths->layer);
	/* LXC binds the nested stores from here as the container's root. */
	ret = storage_ensure_dir(paths->layer, 0710, 0, subid_base);
	if (ret < 0)
		return ret;
	ret = layerimg_prepare(paths, disk->image_bytes);
	/* The image's root is the layer directory now. */
	if (ret == 0 && layerimg_mounted(paths))
		ret = storage_ensure_dir(paths->layer, 0710, 0, subid_base);
	if (ret < 0)
		return ret;
	return storage_tag_layer(paths->layer, disk->project);
}

int storage_prepare(struct storage_paths *paths, uint32_t subid_base, const struct storage_disk *disk)
{
	static const struct storage_disk unlimited;
	char users[PATH_MAX];
	int ret;

	if (subid_base == 0 || subid_base > UINT32_MAX - SUBID_COUNT)
		return log_error_errno(-ERANGE, 0, "subordinate id base %u is out of range", subid_base);

	ret = storage_parent(paths->dir, users, sizeof(users));
	if (ret < 0)
		return ret;

	ret = fsutil_mkdir_p(users, 0711);
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot create %s", users);
	/*
	 * LXC mounts the root file system as the container's root, who must
	 * be able to walk to it: users/ may be crossed, not listed, and a
	 * member's directory only by root and the container's root group.
	 */
	ret = storage_ensure_dir(users, 0711, 0, 0);
	if (ret < 0)
		return ret;
	ret = storage_ensure_dir(paths->dir, 0710, 0, subid_base);
	if (ret < 0)
		return ret;
	/* The layers of a mounted overlay must not be changed under it. */
	if (storage_is_mounted(paths))
		return 0;
	ret = storage_prepare_layer(paths, subid_base, disk ? disk : &unlimited);
	if (ret < 0)
		return ret;
	ret = storage_ensure_dir(paths->upper, 0755, subid_base, subid_base);
	if (ret < 0)
		return ret;
	ret = storage_ensure_dir(paths->work, 0700, 0, 0);
	if (ret < 0)
		return ret;
	ret = storage_ensure_dir(paths->lower, 0700, 0, 0);
	if (ret < 0)
		return ret;
	return storage_ensure_dir(paths->rootfs, 0755, 0, 0);
}

int storage_remove_layer(const struct storage_paths *paths)
{
	char moving[PATH_MAX];
	int ret = storage_pool_entry(paths, moving, sizeof(moving), ".moving-%s", storage_member(paths));

	if (ret == 0)
		ret = fsutil_remove_tree(moving);
	if (ret == 0)
		ret = layerimg_release(paths);
	if (ret == 0 && unlink(paths->image) < 0 && errno != ENOENT)
		ret = -errno;
	if (ret == 0)
		ret = fsutil_remove_tree(paths->pool_layer);
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot remove %s", paths->pool_layer);
	return 0;
}

/* A layer in an image of its own: the image moved aside into
 * layer-images/.retired/<member>-<stamp>.img, the empty mount point gone. */
static int storage_retire_image(const struct storage_paths *paths, const char *stamp, char *kept,
				size_t keptlen)
{
	char retired[PATH_MAX], name[PATH_MAX];
	int n, ret = layerimg_release(paths);

	if (ret < 0)
		return ret;
	ret = storage_parent(paths->image, retired, sizeof(retired));
	if (ret < 0)
		return ret;
	n = (int)strlen(retired);
	if (snprintf(retired + n, sizeof(retired) - (size_t)n, "/.retired") >= (int)sizeof(retired) - n ||
	    snprintf(name, sizeof(name), "%s/%s-%s.img", retired, storage_member(paths), stamp) >= (int)sizeof(name))
		return -ENAMETOOLONG;
	if (mkdir(retired, 0700) < 0 && errno != EEXIST)
		return log_error_errno(-errno, errno, "cannot create %s", retired);
	if (rename(paths->image, name) < 0)
		return log_error_errno(-errno, errno, "cannot move %s aside", paths->image);
	if (rmdir(paths->pool_layer) < 0 && errno != ENOENT)
		log_warn_errno(0, errno, "cannot remove %s", paths->pool_layer);
	snprintf(kept, keptlen, "%s", name);
	return 0;
}

int storage_retire_layer(const struct storage_paths *paths, const char *stamp, char *kept,
			 size_t keptlen)
{
	char retired[PATH_MAX], name[PATH_MAX];
	int ret;

	kept[0] = '\0';
	if (layerimg_exists(paths))
		return storage_retire_image(paths, stamp, kept, keptlen);
	if (!storage_is_dir(paths->pool_layer))
		return 0;
	/* Kept in the pool: a rename, whatever its size.  It keeps its
	 * project id and so counts for a later member given the same uid
	 * until an admin deletes it. */
	ret = storage_pool_entry(paths, retired, sizeof(retired), ".retired");
	if (ret == 0)
		ret = storage_pool_entry(paths, name, sizeof(name), ".retired/%s-%s", storage_member(paths), stamp);
	if (ret < 0)
		return ret;
	if (mkdir(retired, 0700) < 0 && errno != EEXIST)
		return log_error_errno(-errno, errno, "cannot create %s", retired);
	if (rename(paths->pool_layer, name) < 0)
		return log_error_errno(-errno, errno, "cannot move %s aside", paths->pool_layer);
	snprintf(kept, keptlen, "%s", name);
	return 0;
}

/* Whether path is the root of a mount (and not a symbolic link). */
static bool storage_is_mount_point(const char *path, bool *overlay)
{
	struct statx stx, parent;
	char up[PATH_MAX];
	struct statfs sfs;

	if (overlay)
		*overlay = false;
	if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT,
		  STATX_TYPE | STATX_MNT_ID, &stx) < 0)
		return false;
	if (!S_ISDIR(stx.stx_mode))
		return false;
	if (overlay && statfs(path, &sfs) == 0 && sfs.f_type == OVERLAYFS_SUPER_MAGIC)
		*overlay = true;
	if (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT)
		return stx.stx_attributes & STATX_ATTR_MOUNT_ROOT;

	/* Older kernels: compare with the parent directory. */
	if (snprintf(up, sizeof(up), "%s/..", path) >= (int)sizeof(up))
		return false;
	if (statx(AT_FDCWD, up, AT_NO_AUTOMOUNT, STATX_TYPE | STATX_MNT_ID, &parent) < 0)
		return false;
	if ((stx.stx_mask & STATX_MNT_ID) && (parent.stx_mask & STATX_MNT_ID))
		return stx.stx_mnt_id != parent.stx_mnt_id;
	return stx.stx_dev_major != parent.stx_dev_major || stx.stx_dev_minor != parent.stx_dev_minor;
}

bool storage_is_mounted(const struct storage_paths *paths)
{
	bool overlay;

	return storage_is_mount_point(paths->rootfs, &overlay) && overlay;
}

/* Take every mount off path; returns 0 once nothing is mounted there. */
static int storage_unmount_path(const char *path)
{
	for (int i = 0; i < STORAGE_MAX_STACKED; i++) {
		if (!storage_is_mount_point(path, NULL))
			return 0;
		if (umount2(path, UMOUNT_NOFOLLOW) == 0)
			continue;
		if (errno == EINVAL || errno == ENOENT)
			return 0;
		if (errno != EBUSY)
			return log_error_errno(-errno, errno, "cannot unmount %s", path);
		/* Busy (a process still has its cwd or files there): detach it
		 * from the tree now; the kernel frees it when the last user goes. */
		log_warn("%s is busy, detaching it", path);
		if (umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) < 0 && errno != EINVAL)
			return log_error_errno(-errno, errno, "cannot detach %s", path);
	}
	return log_error_errno(-EBUSY, 0, "%s: too many mounts stacked", path);
}

int storage_unmount(const struct storage_paths *paths)
{
	int ret = storage_unmount_path(paths->rootfs);

	/* The lower mount only lives between two steps of storage_mount(), but
	 * an agent killed in between leaves it behind. */
	if (storage_unmount_path(paths->lower) < 0 && ret == 0)
		ret = -EBUSY;
	return ret;
}

static int storage_write_proc(pid_t pid, const char *name, const char *text)
{
	__do_close int fd = -EBADF;
	char path[64];
	size_t len = strlen(text);
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return log_error_errno(-errno, errno, "cannot open %s", path);
	n = write(fd, text, len);
	if (n < 0)
		return log_error_errno(-errno, errno, "cannot write %s", path);
	if ((size_t)n != len)
		return log_error_errno(-EIO, 0, "short write to %s", path);
	return 0;
}

static void storage_reap(pid_t pid)
{
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

static int storage_pipe(int *read_end, int *write_end)
{
	int fds[2];

	if (pipe2(fds, O_CLOEXEC) < 0)
		return log_error_errno(-errno, errno, "pipe2");
	*read_end = fds[0];
	*write_end = fds[1];
	return 0;
}

/*
 * In the helper child only (async-signal-safe calls): unshare a user
 * namespace, say so on ready_write, and hold the namespace until the
 * parent closes its end of the done pipe.
 */
__attribute__((noreturn))
static void storage_userns_child(int ready_read, int ready_write, int done_read, int done_write)
{
	char byte;

	close(ready_read);
	close(done_write);
	if (unshare(CLONE_NEWUSER) < 0)
		_exit(1);
	if (write(ready_write, "1", 1) != 1)
		_exit(1);
	while (read(done_read, &byte, 1) < 0 && errno == EINTR)
		;
	_exit(0);
}

/* Once the helper pid says it has its namespace: write the namespace's
 * maps, and return a descriptor of it. */
static int storage_userns_map(pid_t pid, int ready_read, uint32_t subid_base)
{
	char map[64], path[64], byte;
	ssize_t n;
	int fd, ret;

	do
		n = read(ready_read, &byte, 1);
	while (n < 0 && errno == EINTR);
	if (n != 1)
		return log_error_errno(-EPERM, 0, "the id-mapping helper could not create a user namespace");

	snprintf(map, sizeof(map), "0 %u %u\n", subid_base, SUBID_COUNT);
	ret = storage_write_proc(pid, "setgroups", "deny");
	if (ret == 0)
		ret = storage_write_proc(pid, "uid_map", map);
	if (ret == 0)
		ret = storage_write_proc(pid, "gid_map", map);
	if (ret < 0)
		return ret;

	snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return log_error_errno(-errno, errno, "cannot open %s", path);
	return fd;
}

/*
 * A descriptor of a new user namespace mapping 0..65535 to
 * subid_base..subid_base+65535 (uids and gids), or a negative errno.
 */
static int storage_userns(uint32_t subid_base)
{
	__do_close int ready_read = -EBADF, ready_write = -EBADF;
	__do_close int done_read = -EBADF, done_write = -EBADF;
	int nsfd, ret;
	pid_t pid;

	ret = storage_pipe(&ready_read, &ready_write);
	if (ret == 0)
		ret = storage_pipe(&done_read, &done_write);
	if (ret < 0)
		return ret;

	pid = fork();
	if (pid < 0)
		return log_error_errno(-errno, errno, "fork");
	if (pid == 0)
		storage_userns_child(ready_read, ready_write, done_read, done_write);

	/* The child's ends: without a writer left here, a child that dies
	 * before it writes makes the read of the ready pipe see end of file. */
	close(ready_write);
	ready_write = -EBADF;
	close(done_read);
	done_read = -EBADF;

	nsfd = storage_userns_map(pid, ready_read, subid_base);

	/* Closing the done pipe lets the child go; the descriptor keeps its
	 * namespace alive. */
	close(done_write);
	done_write = -EBADF;
	storage_reap(pid);
	return nsfd;
}

/* Overlay options are comma-separated and lowerdir is colon-separated. */
static bool storage_path_fits_options(const char *path)
{
	return !strpbrk(path, ",:\\\n");
}

int storage_mount(const struct storage_paths *paths, const char *template_rootfs,
		  uint32_t subid_base)
{
	return storage_mount_layers(paths, template_rootfs, NULL, subid_base);
}

/* lowerdir=[ABOVE:]LOWER[:BELOW],upperdir=UPPER,workdir=WORK */
static int storage_overlay_options(const struct storage_paths *paths,
				   const struct storage_extra *extra, char *buf, size_t len)
{
	const char *above = extra ? extra->above : NULL, *below = extra ? extra->below : NULL;
	int n;

	if (!storage_path_fits_options(paths->lower) || !storage_path_fits_options(paths->upper) ||
	    !storage_path_fits_options(paths->work))
		return log_error_errno(-EINVAL, 0, "%s: a storage path may not hold ',', ':' or '\\'", paths->dir);
	if ((above && !storage_path_fits_options(above)) || (below && !storage_path_fits_options(below)))
		return log_error_errno(-EINVAL, 0, "%s: a layer path may not hold ',', ':' or '\\'",
				       above && !storage_path_fits_options(above) ? above : below);
	n = snprintf(buf, len, "lowerdir=%s%s%s%s%s,upperdir=%s,workdir=%s", above ? above : "",
		     above ? ":" : "", paths->lower, below ? ":" : "", below ? below : "", paths->upper,
		     paths->work);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int storage_mount_layers(const struct storage_paths *paths, const char *template_rootfs,
			 const struct storage_extra *extra, uint32_t subid_base)
{
	__do_close int nsfd = -EBADF, treefd = -EBADF;
	struct mount_attr attr = { 0 };
	char options[5 * PATH_MAX + 64];
	bool overlay;
	int ret;

	if (storage_is_mount_point(paths->rootfs, &overlay)) {
		if (overlay)
			return 0;
		return log_error_errno(-EBUSY, 0, "%s is already a mount point, and not an overlay", paths->rootfs);
	}
	if (subid_base == 0 || subid_base > UINT32_MAX - SUBID_COUNT)
		return log_error_errno(-ERANGE, 0, "subordinate id base %u is out of range", subid_base);
	ret = storage_overlay_options(paths, extra, options, sizeof(options));
	if (ret < 0)
		return ret;

	/* Left behind by an agent killed half-way. */
	ret = storage_unmount_path(paths->lower);
	if (ret < 0)
		return ret;

	nsfd = storage_userns(subid_base);
	if (nsfd < 0)
		return nsfd;

	treefd = (int)syscall(SYS_open_tree, AT_FDCWD, template_rootfs,
			      OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	if (treefd < 0)
		return log_error_errno(-errno, errno, "cannot clone the template %s", template_rootfs);

	attr.attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY;
	attr.userns_fd = (uint64_t)nsfd;
	if (syscall(SYS_mount_setattr, treefd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0)
		return log_error_errno(-errno, errno, "cannot make an idmapped mount of %s", template_rootfs);

	if (syscall(SYS_move_mount, treefd, "", AT_FDCWD, paths->lower, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return log_error_errno(-errno, errno, "cannot attach the idmapped template at %s", paths->lower);

	ret = 0;
	if (mount("overlay", paths->rootfs, "overlay", 0, options) < 0)
		ret = log_error_errno(-errno, errno, "cannot mount the overlay at %s (%s)", paths->rootfs, options);

	/* overlayfs keeps private clones of its layers: the lower mount is
	 * not needed any more, and must not stay reachable. */
	if (umount2(paths->lower, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
		log_warn_errno(0, errno, "cannot detach %s", paths->lower);
	return ret;
}

/* ---- discarding: what is deleted, out of the way at once, removed later -- */

#define STORAGE_DISCARD_PREFIX ".discard-"

static void *storage_discard_thread(void *arg)
{
	char *path = arg;
	int ret = fsutil_remove_tree(path);

	if (ret < 0)
		log_warn_errno(0, -ret, "cannot remove %s; the agent tries again at its next start", path);
	free(path);
	return NULL;
}

/* Remove path in a thread of its own; here, when none can be had. */
static void storage_remove_later(const char *path)
{
	char *copy = strdup(path);
	pthread_attr_t attr;
	pthread_t thread;
	int ret = -1;

	if (copy && pthread_attr_init(&attr) == 0) {
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		ret = pthread_create(&thread, &attr, storage_discard_thread, copy);
		pthread_attr_destroy(&attr);
	}
	if (ret != 0) {
		free(copy);
		fsutil_remove_tree(path);
	}
}

int storage_discard(const struct storage_paths *paths, const char *name)
{
	static atomic_uint seq;
	char from[PATH_MAX], to[PATH_MAX];
	struct stat st;
	int n;

	n = snprintf(from, sizeof(from), "%s/%s", paths->layer, name);
	if (n < 0 || (size_t)n >= sizeof(from))
		return -ENAMETOOLONG;
	if (lstat(from, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	n = snprintf(to, sizeof(to), "%s/" STORAGE_DISCARD_PREFIX "%s-%lld-%u", paths->layer, name,
		     (long long)time(NULL), atomic_fetch_add(&seq, 1));
	if (n < 0 || (size_t)n >= sizeof(to))
		return -ENAMETOOLONG;
	if (rename(from, to) < 0) {
		int ret = fsutil_remove_tree(from);

		return ret < 0 ? log_error_errno(ret, -ret, "cannot remove %s", from) : 0;
	}
	storage_remove_later(to);
	return 0;
}

void storage_discard_leftovers(const struct storage_paths *paths)
{
	__do_closedir DIR *dir = opendir(paths->layer);
	struct dirent *de;

	if (!dir)
		return;
	while ((de = readdir(dir))) {
		char path[PATH_MAX];

		if (strncmp(de->d_name, STORAGE_DISCARD_PREFIX, strlen(STORAGE_DISCARD_PREFIX)) != 0)
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", paths->layer, de->d_name) < (int)sizeof(path))
			storage_remove_later(path);
	}
}

int storage_wipe(const struct storage_paths *paths, uint32_t subid_base)
{
	int ret;

	if (storage_is_mounted(paths))
		return log_error_errno(-EBUSY, 0, "cannot wipe %s: it is mounted", paths->dir);
	if (storage_is_mount_point(paths->lower, NULL))
		return log_error_errno(-EBUSY, 0, "cannot wipe %s: %s is mounted", paths->dir, paths->lower);

	/* A rename each: the member waits for none of the deleting. */
	ret = storage_discard(paths, "upper");
	if (ret == 0)
		ret = storage_discard(paths, "nested");
	if (ret < 0)
		return ret;
	ret = fsutil_empty_dir(paths->work);
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot empty %s", paths->work);
	/* The container's root may have changed the owner or mode of its "/". */
	ret = storage_ensure_dir(paths->upper, 0755, subid_base, subid_base);
	if (ret < 0)
		return ret;
	return storage_ensure_dir(paths->work, 0700, 0, 0);
}
