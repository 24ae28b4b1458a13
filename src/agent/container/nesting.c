/* SPDX-License-Identifier: MIT */
/*
 * Docker and Podman inside a member's container (the limit nesting=yes).
 *
 * Their stores cannot live on the container's root: overlayfs will not
 * stack an upper directory on another overlay, so Docker falls back to its
 * vfs driver (a full copy of every layer) and Podman to fuse-overlayfs.
 * Each store is a directory beside the member's upper layer instead
 * (<layer>/nested/docker, <layer>/nested/containers), bound at
 * /var/lib/docker and /var/lib/containers: on the pool's file system, under
 * the layer's project id (inherited, so it counts in the member's disk
 * quota), owned by the container's root.  A rebuild removes them
 * (storage_wipe()), user rm --purge with the whole layer; snapshots hold
 * the upper layer only, never them.
 *
 * /dev/fuse is a node of the agent's (10:229, 0666 as Debian's udev makes
 * the host's): fuse-overlayfs and rootless Podman open it as the
 * container's users, to whom the host's node may be closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "container/container.h"
#include "cleanup.h"
#include "log.h"
#include "banned.h"

#define NESTING_FUSE_MAJOR 10
#define NESTING_FUSE_MINOR 229

static const struct {
	const char *name;          /* below <layer>/nested */
	const char *target;        /* inside the container */
} nesting_stores[] = {
	{ "docker", "var/lib/docker" },
	{ "containers", "var/lib/containers" },
};

/* path a directory (never a link) owned by uid:uid with mode. */
static int nesting_dir(const char *path, mode_t mode, uid_t uid)
{
	__do_close int fd = -EBADF;

	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return log_error_errno(-errno, errno, "cannot create %s", path);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return log_error_errno(-errno, errno, "cannot open directory %s", path);
	if (fchown(fd, uid, uid) < 0)
		return log_error_errno(-errno, errno, "cannot chown %s", path);
	return 0;
}

/* The agent's /dev/fuse at path: made again unless it is the node. */
static int nesting_fuse_node(const char *path)
{
	struct stat st;

	if (lstat(path, &st) == 0 && S_ISCHR(st.st_mode) &&
	    st.st_rdev == makedev(NESTING_FUSE_MAJOR, NESTING_FUSE_MINOR) &&
	    (st.st_mode & 07777) == 0666 && st.st_uid == 0)
		return 0;
	if (unlink(path) < 0 && errno != ENOENT)
		return log_error_errno(-errno, errno, "cannot remove %s", path);
	if (mknod(path, S_IFCHR | 0600, makedev(NESTING_FUSE_MAJOR, NESTING_FUSE_MINOR)) < 0)
		return log_error_errno(-errno, errno, "cannot make the fuse node %s", path);
	if (chown(path, 0, 0) < 0 || chmod(path, 0666) < 0)
		return log_error_errno(-errno, errno, "cannot set the mode of %s", path);
	return 0;
}

static int nesting_add(struct nesting_plan *plan, const char *source, const char *target,
		       const char *options)
{
	size_t i = plan->n;

	if (i == NESTING_MOUNTS)
		return -ENOSPC;
	if (snprintf(plan->source[i], sizeof(plan->source[i]), "%s", source) >=
	    (int)sizeof(plan->source[i]))
		return -ENAMETOOLONG;
	plan->mounts[i] = (struct container_mount){ .source = plan->source[i], .target = target,
						    .options = options };
	plan->n++;
	return 0;
}

int nesting_prepare(const struct storage_paths *paths, uint32_t subid_base,
		    struct nesting_plan *plan)
{
	char path[PATH_MAX];
	int ret;

	*plan = (struct nesting_plan){ 0 };
	/* The layer's project id passes down to what is made below it.  On
	 * btrfs the stores are a subvolume of their own, which the layer's
	 * local snapshots leave out (localsnap.c). */
	ret = localsnap_make_dir(paths->nested, 0711);
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot create %s", paths->nested);
	ret = nesting_dir(paths->nested, 0711, subid_base);
	for (size_t i = 0; ret == 0 && i < ARRAY_SIZE(nesting_stores); i++) {
		if (snprintf(path, sizeof(path), "%s/%s", paths->nested, nesting_stores[i].name) >=
		    (int)sizeof(path))
			return -ENAMETOOLONG;
		ret = nesting_dir(path, 0711, subid_base);
		/* Images hold set-user-ID programs and overlayfs' whiteouts:
		 * neither nosuid nor nodev here. */
		if (ret == 0)
			ret = nesting_add(plan, path, nesting_stores[i].target, "bind,create=dir");
	}
	if (ret < 0)
		return ret;
	if (snprintf(path, sizeof(path), "%s/fuse", paths->dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	ret = nesting_fuse_node(path);
	if (ret == 0)
		ret = nesting_add(plan, path, "dev/fuse", "bind,nosuid,noexec,create=file");
	return ret;
}
