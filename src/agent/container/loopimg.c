/* SPDX-License-Identifier: MIT */
/*
 * ext4 file systems in sparse image files of the agent's, attached to loop
 * devices: the layers' pool (pool.c) and a member's own layer image
 * (layerimg.c).
 *
 * An image is made whole under a temporary name and renamed into place,
 * so that a crash never leaves half an image at the real one.  It is
 * attached to a free loop device (LOOP_CTL_GET_FREE, LOOP_CONFIGURE with
 * LO_FLAGS_AUTOCLEAR, so that the device goes when the file system is
 * unmounted), or mounted from the device it is attached to already (the
 * same block device mounted twice is one file system).  mkfs.ext4,
 * e2fsck and resize2fs are e2fsprogs' own: run without a shell, their
 * output kept for the log.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/loop.h>

#include "container/container.h"
#include "cleanup.h"
#include "log.h"
#include "spawn.h"
#include "banned.h"

/* mkfs, e2fsck and resize2fs of a large image take minutes on slow disks. */
#define LOOPIMG_TOOL_TIMEOUT 600
#define LOOPIMG_ATTACH_TRIES 16
#define LOOPIMG_ARGS_MAX 24

/* Run an e2fsprogs tool; 0 or a negative errno (logged with its output).
 * e2fsck's exit status 1 (errors fixed) is success. */
static int loopimg_tool(const char *const argv[], bool fsck)
{
	char out[1024] = "";
	int ret = spawn_run(argv, &(struct spawn_options){ .capture = out, .capture_size = sizeof(out),
							   .timeout = LOOPIMG_TOOL_TIMEOUT });

	if (ret == 0 || (fsck && ret == 1))
		return 0;
	return log_error_errno(ret < 0 ? ret : -EIO, 0, "%s failed (%d): %s", argv[0], ret, out);
}

int loopimg_find(const char *image, char *dev, size_t len)
{
	__do_closedir DIR *dir = opendir("/sys/block");
	struct stat want;
	struct dirent *de;

	if (stat(image, &want) < 0)
		return -errno;
	if (!dir)
		return -errno;
	while ((de = readdir(dir))) {
		char path[300], backing[PATH_MAX];
		__do_close int fd = -EBADF;
		struct stat st;
		ssize_t n;

		if (strncmp(de->d_name, "loop", 4) != 0)
			continue;
		snprintf(path, sizeof(path), "/sys/block/%s/loop/backing_file", de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, backing, sizeof(backing) - 1);
		if (n <= 0)
			continue;
		backing[n] = '\0';
		backing[strcspn(backing, "\n")] = '\0';
		if (stat(backing, &st) == 0 && st.st_dev == want.st_dev && st.st_ino == want.st_ino) {
			int m = snprintf(dev, len, "/dev/%s", de->d_name);

			return m < 0 || (size_t)m >= len ? -ENAMETOOLONG : 0;
		}
	}
	return -ENOENT;
}

/* Configure the free loop device dev_fd with the image; -EBUSY when another
 * took it first. */
static int loopimg_configure(int dev_fd, int image_fd, const char *image)
{
	struct loop_config lc = { .fd = (uint32_t)image_fd };

	/* Direct I/O keeps the image's pages out of the host's page cache,
	 * which already caches the files inside. */
	lc.info.lo_flags = LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO;
	/* Only shown by losetup; sysfs' backing_file is what loopimg_find() reads. */
	memcpy(lc.info.lo_file_name, image, strnlen(image, sizeof(lc.info.lo_file_name) - 1));
	if (ioctl(dev_fd, LOOP_CONFIGURE, &lc) == 0)
		return 0;
	if (errno != EINVAL)
		return -errno;
	lc.info.lo_flags = LO_FLAGS_AUTOCLEAR;
	return ioctl(dev_fd, LOOP_CONFIGURE, &lc) == 0 ? 0 : -errno;
}

/*
 * Attach the image to a free loop device; returns its open descriptor (the
 * device stays attached while it or a mount holds it: LO_FLAGS_AUTOCLEAR),
 * its path in dev.
 */
static int loopimg_attach(const char *image, char *dev, size_t len)
{
	__do_close int ctl = -EBADF, image_fd = -EBADF;

	image_fd = open(image, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (image_fd < 0)
		return log_error_errno(-errno, errno, "cannot open %s", image);
	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return log_error_errno(-errno, errno, "cannot open /dev/loop-control");
	for (int i = 0; i < LOOPIMG_ATTACH_TRIES; i++) {
		__do_close int dev_fd = -EBADF;
		int n = ioctl(ctl, LOOP_CTL_GET_FREE), ret;

		if (n < 0)
			return log_error_errno(-errno, errno, "no free loop device");
		snprintf(dev, len, "/dev/loop%d", n);
		dev_fd = open(dev, O_RDWR | O_CLOEXEC);
		if (dev_fd < 0)
			return log_error_errno(-errno, errno, "cannot open %s", dev);
		ret = loopimg_configure(dev_fd, image_fd, image);
		if (ret == 0)
			return move_fd(dev_fd);
		/* Taken by someone else between the two calls: ask again. */
		if (ret != -EBUSY)
			return log_error_errno(ret, -ret, "cannot attach %s to %s", image, dev);
	}
	return log_error_errno(-EBUSY, 0, "cannot attach %s: every free loop device was taken first", image);
}

int loopimg_make(const char *image, uint64_t size, const char *const mkfs_options[])
{
	const char *argv[LOOPIMG_ARGS_MAX] = { "mkfs.ext4", "-q", "-F" };
	size_t argc = 3;
	char tmp[PATH_MAX];
	__do_close int fd = -EBADF;
	int ret;

	if (snprintf(tmp, sizeof(tmp), "%s.new", image) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	for (size_t i = 0; mkfs_options[i]; i++) {
		if (argc >= LOOPIMG_ARGS_MAX - 2)
			return -E2BIG;
		argv[argc++] = mkfs_options[i];
	}
	argv[argc++] = tmp;
	argv[argc] = NULL;

	unlink(tmp);
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return log_error_errno(-errno, errno, "cannot create %s", tmp);
	if (ftruncate(fd, (off_t)size) < 0) {
		ret = log_error_errno(-errno, errno, "cannot size %s", tmp);
		unlink(tmp);
		return ret;
	}
	ret = loopimg_tool(argv, false);
	if (ret == 0 && fsync(fd) < 0)
		ret = -errno;
	if (ret == 0 && rename(tmp, image) < 0)
		ret = log_error_errno(-errno, errno, "cannot rename %s", tmp);
	if (ret < 0)
		unlink(tmp);
	return ret;
}

int loopimg_mount(const char *image, const char *dir, unsigned long flags, const char *options)
{
	__do_close int dev_fd = -EBADF;
	char dev[64];

	if (loopimg_find(image, dev, sizeof(dev)) == 0) {
		log_info("%s is attached to %s already: mounting that", image, dev);
	} else {
		dev_fd = loopimg_attach(image, dev, sizeof(dev));
		if (dev_fd < 0)
			return dev_fd;
	}
	/* The device's descriptor is held until the mount holds it too:
	 * with autoclear, its last close would detach it. */
	if (mount(dev, dir, "ext4", flags, options) < 0)
		return log_error_errno(-errno, errno, "cannot mount %s (%s) at %s with %s", image, dev, dir,
				       options ? options : "no options");
	return 0;
}

uint64_t loopimg_size(const char *image)
{
	struct stat st;

	return stat(image, &st) == 0 && S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
}

int loopimg_grow(const char *image, uint64_t size)
{
	__do_close int fd = -EBADF, dev_fd = -EBADF;
	char dev[64];
	const char *argv[] = { "resize2fs", dev, NULL };
	struct stat st;
	int ret;

	fd = open(image, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		return log_error_errno(-errno, errno, "cannot open %s", image);
	if ((uint64_t)st.st_size >= size)
		return 0;
	ret = loopimg_find(image, dev, sizeof(dev));
	if (ret < 0)
		return log_error_errno(ret, -ret, "%s is not attached to a loop device", image);
	dev_fd = open(dev, O_RDWR | O_CLOEXEC);
	if (dev_fd < 0)
		return log_error_errno(-errno, errno, "cannot open %s", dev);
	if (ftruncate(fd, (off_t)size) < 0)
		return log_error_errno(-errno, errno, "cannot grow %s", image);
	if (ioctl(dev_fd, LOOP_SET_CAPACITY, 0) < 0)
		return log_error_errno(-errno, errno, "cannot tell %s its new size", dev);
	/* resize2fs grows a mounted ext4 online (EXT4_IOC_RESIZE_FS), which
	 * takes CAP_SYS_RESOURCE; without it the file stays larger than its
	 * file system until an offline resize. */
	return loopimg_tool(argv, false);
}

int loopimg_resize_offline(const char *image, uint64_t size)
{
	char kib[32];
	const char *fsck[] = { "e2fsck", "-f", "-p", image, NULL };
	const char *resize[] = { "resize2fs", image, kib, NULL };
	uint64_t now = loopimg_size(image);
	char dev[64];
	int ret;

	if (loopimg_find(image, dev, sizeof(dev)) == 0)
		return log_error_errno(-EBUSY, 0, "cannot resize %s offline: it is attached to %s", image, dev);
	snprintf(kib, sizeof(kib), "%lluK", (unsigned long long)(size >> 10));
	/* resize2fs insists on a checked file system before it moves blocks. */
	ret = loopimg_tool(fsck, true);
	if (ret == 0 && size > now && truncate(image, (off_t)size) < 0)
		ret = log_error_errno(-errno, errno, "cannot grow %s", image);
	if (ret == 0)
		ret = loopimg_tool(resize, false);
	if (ret == 0 && size < now && truncate(image, (off_t)size) < 0)
		ret = log_error_errno(-errno, errno, "cannot shrink %s", image);
	return ret;
}
