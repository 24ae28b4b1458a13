/* SPDX-License-Identifier: MIT */
/*
 * Local snapshots: copy-on-write snapshots of a member's layer, kept on
 * this server, where the members' layers are on btrfs.
 *
 * On btrfs a new member's layer directory (<state>/layers/<member>) is made
 * a subvolume, and its nested stores (nesting.c) a subvolume of their own.
 * A local snapshot is then one ioctl: <layer>/local/<name>, a snapshot of
 * the layer subvolume, taken in milliseconds at one instant, that takes no
 * disk until the member changes what it shares.  The layer is snapshotted
 * whole, not its upper directory alone, because overlayfs renames from
 * its work directory into the upper one and btrfs refuses renames between
 * subvolumes (EXDEV): both must stay in one.  Subvolumes below the layer
 * (nested/, local/'s earlier snapshots) are not part of a snapshot; they
 * appear in it as empty directories.
 *
 * Snapshots are writable subvolumes, so that every way a layer is removed
 * (rm -r of a retired member's layer included) can take them: an empty
 * subvolume goes with rmdir().  Nothing writes into them: local/ is root's,
 * 0700, where the container's root, who may cross the layer directory,
 * cannot look.  A restore copies <snapshot>/upper back with reflinks
 * (storage_copy_tree()), a copy of the tree that shares every
 * file's data.
 *
 * The snapshot's manifest is kept with the archives' (snapshot.c, "kind"
 * "local"); this file knows only the subvolumes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <btrfsutil.h>
#include <linux/magic.h>

#include "container/container.h"
#include "cleanup.h"
#include "fsutil.h"
#include "log.h"
#include "banned.h"

#define LOCALSNAP_DIR "local"

/* btrfsutil's errors set errno; EIO where one did not. */
static int localsnap_errno(enum btrfs_util_error err)
{
	return err == BTRFS_UTIL_OK ? 0 : errno ? -errno : -EIO;
}

static int localsnap_open_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

/* The file system's name, for a member's message. */
static const char *localsnap_fs_name(int fd)
{
	struct statfs sf;

	if (fstatfs(fd, &sf) < 0)
		return "another file system";
	switch (sf.f_type) {
	case EXT4_SUPER_MAGIC:
		return "ext4";
	case XFS_SUPER_MAGIC:
		return "XFS";
	case TMPFS_MAGIC:
		return "tmpfs";
	default:
		return "another file system";
	}
}

bool localsnap_is_subvolume_fd(int fd)
{
	return btrfs_util_is_subvolume_fd(fd) == BTRFS_UTIL_OK;
}

int localsnap_make_dir(const char *path, mode_t mode)
{
	char parent[PATH_MAX];
	const char *name = strrchr(path, '/');
	__do_close int pfd = -EBADF;
	enum btrfs_util_error err;
	struct statfs sf;
	int ret = storage_parent(path, parent, sizeof(parent));

	if (ret < 0)
		return ret;
	if (!*++name)
		return -EINVAL;
	pfd = localsnap_open_dir(parent);
	if (pfd < 0)
		return pfd;
	if (faccessat(pfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	if (fstatfs(pfd, &sf) == 0 && sf.f_type == BTRFS_SUPER_MAGIC) {
		errno = 0;
		err = btrfs_util_create_subvolume_fd(pfd, name, 0, NULL, NULL);
		if (err == BTRFS_UTIL_OK)
			return fchmodat(pfd, name, mode, 0) < 0 ? -errno : 0;
		/* The member's start goes on; only local snapshots are lost. */
		log_warn("cannot make %s a btrfs subvolume (%s): a plain directory, without local snapshots",
			 path, btrfs_util_strerror(err));
	}
	if (mkdirat(pfd, name, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int localsnap_supported(const struct storage_paths *paths, char *why, size_t whylen)
{
	__do_close int fd = localsnap_open_dir(paths->layer);
	enum btrfs_util_error err;

	if (fd < 0) {
		snprintf(why, whylen, "your container's layer cannot be opened: %s", strerror(-fd));
		return fd;
	}
	errno = 0;
	err = btrfs_util_is_subvolume_fd(fd);
	if (err == BTRFS_UTIL_OK)
		return 0;
	if (err == BTRFS_UTIL_ERROR_NOT_BTRFS) {
		snprintf(why, whylen,
			 "local snapshots need the members' layers on btrfs, and this server keeps yours on %s",
			 localsnap_fs_name(fd));
		return -EOPNOTSUPP;
	}
	if (err == BTRFS_UTIL_ERROR_NOT_SUBVOLUME) {
		snprintf(why, whylen,
			 "your container's layer was made before this server could take local snapshots (it is not a btrfs subvolume)");
		return -EOPNOTSUPP;
	}
	snprintf(why, whylen, "cannot tell whether your layer is a btrfs subvolume: %s",
		 btrfs_util_strerror(err));
	return localsnap_errno(err);
}

/* <layer>/local below the layer's lfd, opened; made if missing. */
static int localsnap_open_store(int lfd, bool create)
{
	int fd;

	if (create && mkdirat(lfd, LOCALSNAP_DIR, 0700) < 0 && errno != EEXIST)
		return -errno;
	fd = openat(lfd, LOCALSNAP_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int localsnap_take(const struct storage_paths *paths, const char *name)
{
	__do_close int lfd = localsnap_open_dir(paths->layer), sfd = -EBADF;
	enum btrfs_util_error err;
	struct stat st;

	if (lfd < 0)
		return lfd;
	sfd = localsnap_open_store(lfd, true);
	if (sfd < 0)
		return sfd;
	/* The store must be the agent's own: never a member's directory. */
	if (fstat(sfd, &st) < 0)
		return -errno;
	if (st.st_uid != 0 || (st.st_mode & 0077))
		return log_error_errno(-EPERM, 0, "%s/" LOCALSNAP_DIR " is not root's alone; refused", paths->layer);
	if (faccessat(sfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return -EEXIST;
	errno = 0;
	err = btrfs_util_create_snapshot_fd2(lfd, sfd, name, 0, NULL, NULL);
	if (err != BTRFS_UTIL_OK)
		return log_error_errno(localsnap_errno(err), 0, "cannot snapshot %s as %s: %s", paths->layer,
				       name, btrfs_util_strerror(err));
	if (fsync(sfd) < 0)
		log_warn_errno(0, errno, "cannot sync %s/" LOCALSNAP_DIR, paths->layer);
	return 0;
}

int localsnap_upper(const struct storage_paths *paths, const char *name, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/" LOCALSNAP_DIR "/%s/upper", paths->layer, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int localsnap_remove(const struct storage_paths *paths, const char *name)
{
	__do_close int lfd = localsnap_open_dir(paths->layer), sfd = -EBADF, fd = -EBADF;
	enum btrfs_util_error err;

	if (lfd < 0)
		return lfd == -ENOENT ? 0 : lfd;
	sfd = localsnap_open_store(lfd, false);
	if (sfd == -ENOENT)
		return 0;
	if (sfd < 0)
		return sfd;
	fd = openat(sfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!localsnap_is_subvolume_fd(fd))
		return fsutil_remove_tree_at(sfd, name);
	errno = 0;
	err = btrfs_util_delete_subvolume_fd(sfd, name, 0);
	if (err != BTRFS_UTIL_OK)
		return log_error_errno(localsnap_errno(err), 0, "cannot delete %s/" LOCALSNAP_DIR "/%s: %s",
				       paths->layer, name, btrfs_util_strerror(err));
	return 0;
}
