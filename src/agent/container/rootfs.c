/* SPDX-License-Identifier: MIT */
/*
 * Writes into a container's tree.  The container's root owns that tree and
 * may have planted symbolic links anywhere in it, so every path is resolved
 * with openat2() from a descriptor of the tree's root, refusing symbolic
 * links, magic links, ".." above the root and other mounts.  Files are
 * written under a temporary name in an already confined directory and
 * renamed into place: rename() replaces a symbolic link at the target
 * rather than following it, so even a link planted after our checks
 * cannot redirect the write.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/openat2.h>

#include "container/rootfs.h"
#include "cleanup.h"
#include "fsutil.h"
#include "log.h"
#include "banned.h"

#define ROOTFS_RESOLVE (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | \
			RESOLVE_NO_XDEV)

/*
 * openat2() confined below dirfd; returns a descriptor or a negative errno.
 * No O_NOFOLLOW: with it openat2 would open a trailing link itself (or
 * fail with ENOTDIR); without it RESOLVE_NO_SYMLINKS makes any link -ELOOP.
 */
static int rootfs_openat(int dirfd, const char *rel, int flags, mode_t mode)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0,
		.resolve = ROOTFS_RESOLVE,
	};
	long fd;

	do
		fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
	while (fd < 0 && (errno == EINTR || errno == EAGAIN));
	if (fd < 0)
		return -errno;
	return (int)fd;
}

/* A relative path: not empty, not absolute. */
static int rootfs_check_rel(const char *rel)
{
	if (!rel || !*rel)
		return log_error_errno(-EINVAL, 0, "empty path inside a container's tree");
	if (rel[0] == '/')
		return log_error_errno(-EINVAL, 0, "path \"%s\" inside a container's tree must be relative", rel);
	if (strlen(rel) >= PATH_MAX)
		return -ENAMETOOLONG;
	return 0;
}

/*
 * Split rel into its parent directory (a new string, "." for none) and its
 * last component, which must be a plain name.
 */
static int rootfs_split(const char *rel, char **parent, const char **base)
{
	const char *slash = strrchr(rel, '/');
	const char *name = slash ? slash + 1 : rel;

	if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return log_error_errno(-EINVAL, 0, "\"%s\" does not name a file", rel);
	*parent = slash ? strndup(rel, (size_t)(slash - rel)) : strdup(".");
	if (!*parent)
		return -ENOMEM;
	if (!**parent) {
		free(*parent);
		*parent = strdup(".");
		if (!*parent)
			return -ENOMEM;
	}
	*base = name;
	return 0;
}

/* Open rel's parent directory, confined; returns a descriptor or -errno. */
static int rootfs_open_parent(int rootfd, const char *rel, const char **base)
{
	__do_free char *parent = NULL;
	int ret, fd;

	ret = rootfs_check_rel(rel);
	if (ret < 0)
		return ret;
	ret = rootfs_split(rel, &parent, base);
	if (ret < 0)
		return ret;
	fd = rootfs_openat(rootfd, parent, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0)
		return log_error_errno(fd, -fd, "cannot open directory \"%s\" in a container's tree", parent);
	return fd;
}

int rootfs_open(const char *path)
{
	int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return log_error_errno(-errno, errno, "cannot open the container tree %s", path);
	return fd;
}

int rootfs_stat(int rootfd, const char *rel, struct stat *st)
{
	__do_close int fd = -EBADF;
	int ret = rootfs_check_rel(rel);

	if (ret < 0)
		return ret;
	fd = rootfs_openat(rootfd, rel, O_PATH, 0);
	if (fd < 0)
		return fd;
	if (fstat(fd, st) < 0)
		return -errno;
	return 0;
}

/* Make the directory open at fd owned by uid:gid with mode. */
static int rootfs_set_owner_mode(int fd, const char *what, mode_t mode, uid_t uid, gid_t gid)
{
	if (fchown(fd, uid, gid) < 0)
		return log_error_errno(-errno, errno, "cannot chown \"%s\" in a container's tree", what);
	if (fchmod(fd, mode) < 0)
		return log_error_errno(-errno, errno, "cannot chmod \"%s\" in a container's tree", what);
	return 0;
}

int rootfs_mkdir(int rootfd, const char *rel, mode_t mode, uid_t uid, gid_t gid)
{
	__do_free char *copy = NULL;
	__do_close int dirfd = -EBADF;
	char *component, *next, *save = NULL;
	int ret;

	ret = rootfs_check_rel(rel);
	if (ret < 0)
		return ret;
	copy = strdup(rel);
	if (!copy)
		return -ENOMEM;
	dirfd = rootfs_openat(rootfd, ".", O_RDONLY | O_DIRECTORY, 0);
	if (dirfd < 0)
		return log_error_errno(dirfd, -dirfd, "cannot open a container's tree");

	component = strtok_r(copy, "/", &save);
	while (component) {
		__do_close int fd = -EBADF;
		bool created = false;

		next = strtok_r(NULL, "/", &save);
		if (strcmp(component, ".") == 0) {
			component = next;
			continue;
		}
		if (strcmp(component, "..") == 0)
			return log_error_errno(-EXDEV, 0, "\"%s\": \"..\" is not allowed in a container's tree", rel);

		fd = rootfs_openat(dirfd, component, O_RDONLY | O_DIRECTORY, 0);
		if (fd == -ENOENT) {
			/* Created private to root first, so that nothing can be
			 * put into it before it gets its final owner and mode. */
			if (mkdirat(dirfd, component, 0700) < 0 && errno != EEXIST)
				return log_error_errno(-errno, errno, "cannot create \"%s\" in a container's tree", rel);
			created = true;
			fd = rootfs_openat(dirfd, component, O_RDONLY | O_DIRECTORY, 0);
		}
		if (fd < 0)
			return log_error_errno(fd, -fd, "cannot open \"%s\" (at \"%s\") in a container's tree%s",
					       rel, component,
					       fd == -ELOOP ? " (a symbolic link is in the way)" :
					       fd == -ENOTDIR ? " (not a directory)" : "");
		if (created || !next) {
			ret = rootfs_set_owner_mode(fd, rel, mode, uid, gid);
			if (ret < 0)
				return ret;
		}
		close(dirfd);
		dirfd = move_fd(fd);
		component = next;
	}
	return 0;
}

int rootfs_write_file(int rootfd, const char *rel, const void *data, size_t len,
		      mode_t mode, uid_t uid, gid_t gid)
{
	__do_close int dirfd = -EBADF, fd = -EBADF, target = -EBADF;
	const char *base;
	char tmp[64];
	int ret;

	dirfd = rootfs_open_parent(rootfd, rel, &base);
	if (dirfd < 0)
		return dirfd;

	/* A symbolic link at the target would be replaced, not followed, by
	 * the rename below; refusing it keeps "no component is a link" one
	 * rule for every function here. */
	target = rootfs_openat(dirfd, base, O_PATH, 0);
	if (target == -ELOOP)
		return log_error_errno(-ELOOP, ELOOP, "refusing to write \"%s\" in a container's tree: it is a symbolic link", rel);
	if (target < 0 && target != -ENOENT)
		return log_error_errno(target, -target, "cannot check \"%s\" in a container's tree", rel);

	for (int attempt = 0;; attempt++) {
		unsigned long long r;

		if (getrandom(&r, sizeof(r), 0) != sizeof(r))
			return log_error_errno(-EIO, errno, "getrandom");
		snprintf(tmp, sizeof(tmp), ".gpubox-%016llx", r);
		fd = rootfs_openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
		if (fd >= 0)
			break;
		if (fd != -EEXIST || attempt >= 10)
			return log_error_errno(fd, -fd, "cannot create a temporary file next to \"%s\" in a container's tree", rel);
	}

	ret = fsutil_write_all(fd, data, len);
	if (ret < 0) {
		log_error_errno(ret, -ret, "cannot write \"%s\" in a container's tree", rel);
		goto fail;
	}
	/* chown first: it clears set-id bits that the chmod then sets. */
	if (fchown(fd, uid, gid) < 0 || fchmod(fd, mode) < 0) {
		ret = log_error_errno(-errno, errno, "cannot set the owner or mode of \"%s\" in a container's tree", rel);
		goto fail;
	}
	if (fsync(fd) < 0) {
		ret = log_error_errno(-errno, errno, "cannot sync \"%s\" in a container's tree", rel);
		goto fail;
	}
	if (renameat(dirfd, tmp, dirfd, base) < 0) {
		ret = log_error_errno(-errno, errno, "cannot put \"%s\" in place in a container's tree", rel);
		goto fail;
	}
	return 0;

fail:
	unlinkat(dirfd, tmp, 0);
	return ret;
}

int rootfs_read_file(int rootfd, const char *rel, size_t max, char **data, size_t *len)
{
	__do_close int fd = -EBADF;
	__do_free char *buf = NULL;
	struct stat st;
	size_t used = 0;
	int ret;

	ret = rootfs_check_rel(rel);
	if (ret < 0)
		return ret;
	/* O_NONBLOCK: a FIFO planted by the container must not hang us. */
	fd = rootfs_openat(rootfd, rel, O_RDONLY | O_NOCTTY | O_NONBLOCK, 0);
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return log_error_errno(-EINVAL, 0, "\"%s\" in a container's tree is not a regular file", rel);
	if (max == SIZE_MAX)
		return -EINVAL;

	buf = malloc(max + 1);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n;

		if (used > max)
			return log_error_errno(-EFBIG, 0, "\"%s\" in a container's tree is larger than %zu bytes", rel, max);
		n = read(fd, buf + used, max + 1 - used);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		used += (size_t)n;
	}
	buf[used] = '\0';
	*data = move_ptr(buf);
	if (len)
		*len = used;
	return 0;
}

int rootfs_unlink(int rootfd, const char *rel)
{
	__do_close int dirfd = -EBADF;
	const char *base;

	dirfd = rootfs_open_parent(rootfd, rel, &base);
	if (dirfd < 0)
		return dirfd;
	if (unlinkat(dirfd, base, 0) < 0 && errno != ENOENT)
		return log_error_errno(-errno, errno, "cannot remove \"%s\" in a container's tree", rel);
	return 0;
}
