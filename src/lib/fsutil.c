/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "cleanup.h"
#include "fsutil.h"
#include "banned.h"

int fsutil_mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = saved;
		if (!saved)
			break;
	}
	return 0;
}

int fsutil_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int fsutil_write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	char tmp[PATH_MAX];
	__do_close int fd = -EBADF;
	int ret;

	/* A unique temporary name: two threads may write the same file. */
	ret = snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path);
	if (ret < 0 || (size_t)ret >= sizeof(tmp))
		return -ENAMETOOLONG;
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = fsutil_write_all(fd, data, len);
	if (ret < 0) {
		unlink(tmp);
		return ret;
	}
	if (fchmod(fd, mode) < 0 || fsync(fd) < 0 || rename(tmp, path) < 0) {
		ret = -errno;
		unlink(tmp);
		return ret;
	}
	return 0;
}

int fsutil_read_fd(int fd, size_t max, char **data, size_t *len)
{
	__do_free char *buf = malloc(max + 1);
	size_t used = 0;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n = read(fd, buf + used, max + 1 - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		used += (size_t)n;
		if (used > max)
			return -EFBIG;
	}
	buf[used] = '\0';
	*data = move_ptr(buf);
	if (len)
		*len = used;
	return 0;
}

int fsutil_read_file(const char *path, size_t max, char **data, size_t *len)
{
	__do_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		return -errno;
	return fsutil_read_fd(fd, max, data, len);
}

DIR *fsutil_fdopendir(int fd)
{
	DIR *dir = fdopendir(fd);

	if (!dir) {
		int err = errno;

		close(fd);
		errno = err;
	}
	return dir;
}

/* Remove everything inside the open directory dfd (which is consumed). */
static int fsutil_empty_dirfd(int dfd)
{
	__do_closedir DIR *dir = fsutil_fdopendir(dfd);
	struct dirent *de;
	int ret = 0;

	if (!dir)
		return -errno;
	while ((de = readdir(dir))) {
		int r;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		r = fsutil_remove_tree_at(dirfd(dir), de->d_name);
		if (r < 0 && ret == 0)
			ret = r;
	}
	return ret;
}

/* The id of the mount fd is on (proc(5): /proc/self/fdinfo's mnt_id). */
static int fsutil_mount_id(int fd, unsigned long long *id)
{
	__do_free char *text = NULL;
	char path[64], *line;
	int ret;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	ret = fsutil_read_file(path, 4096, &text, NULL);
	if (ret < 0)
		return ret;
	line = strstr(text, "\nmnt_id:");
	return line && sscanf(line, "\nmnt_id: %llu", id) == 1 ? 0 : -EINVAL;
}

/* Whether dfd, a directory below parent on another device, is on another
 * mount.  A btrfs subvolume has a device number of its own, but is on its
 * parent's mount: it may be removed with it. */
static bool fsutil_other_mount(int parent, int dfd)
{
	unsigned long long a, b;

	if (fsutil_mount_id(parent, &a) < 0 || fsutil_mount_id(dfd, &b) < 0)
		return true;
	return a != b;
}

int fsutil_remove_tree_at(int parent, const char *name)
{
	struct stat st, parent_st;
	int dfd, ret;

	if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode)) {
		if (unlinkat(parent, name, 0) < 0 && errno != ENOENT)
			return -errno;
		return 0;
	}
	if (fstat(parent, &parent_st) < 0)
		return -errno;
	dfd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	/* A mount point: never descend into another file system. */
	if (st.st_dev != parent_st.st_dev && fsutil_other_mount(parent, dfd)) {
		close(dfd);
		return -EXDEV;
	}
	ret = fsutil_empty_dirfd(dfd);
	if (ret < 0)
		return ret;
	if (unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int fsutil_remove_tree(const char *path)
{
	char buf[PATH_MAX];
	char *slash;
	__do_close int parent = -EBADF;

	if (strlen(path) >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, strlen(path) + 1);
	slash = strrchr(buf, '/');
	if (!slash)
		return fsutil_remove_tree_at(AT_FDCWD, buf);
	if (slash == buf) {
		parent = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	} else {
		*slash = '\0';
		parent = open(buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (parent < 0)
		return errno == ENOENT ? 0 : -errno;
	return fsutil_remove_tree_at(parent, slash + 1);
}

bool fsutil_dir_is_empty(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	__do_closedir DIR *dir = fd < 0 ? NULL : fsutil_fdopendir(fd);
	struct dirent *de;

	if (!dir)
		return false;
	while ((de = readdir(dir)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			return false;
	return true;
}

int fsutil_empty_dir(const char *path)
{
	int dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (dfd < 0)
		return -errno;
	return fsutil_empty_dirfd(dfd);
}

bool fsutil_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

int fsutil_space_left(int fd, uint64_t reserve, uint64_t more, uint64_t *avail)
{
	struct statvfs sv;
	uint64_t free_bytes;

	if (avail)
		*avail = 0;
	if (fstatvfs(fd, &sv) < 0)
		return -errno;
	/* f_bavail, not f_bfree: root's reserved blocks are not ours. */
	free_bytes = (uint64_t)sv.f_bavail * (sv.f_frsize ? sv.f_frsize : sv.f_bsize);
	if (sv.f_frsize && free_bytes / sv.f_frsize != (uint64_t)sv.f_bavail)
		free_bytes = UINT64_MAX;
	if (avail)
		*avail = free_bytes;
	if (reserve > free_bytes || more > free_bytes - reserve)
		return -ENOSPC;
	return 0;
}
