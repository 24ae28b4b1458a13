/* SPDX-License-Identifier: MIT */
/*
 * Where members' layers live: <state_dir>/layers, on a file system with
 * project quotas (quota.c) wherever the agent can arrange one.
 *
 * layers_pool = auto (the default):
 *   - the state directory's own file system when it enforces project
 *     quotas (XFS mounted with prjquota, ext4 with the project and quota
 *     features mounted with prjquota): layers/ is a plain directory;
 *   - otherwise (a plain ext4 root, as on a fresh Debian 12 machine) an
 *     ext4 image of the agent's, <state_dir>/layers.img: a sparse file made
 *     with mkfs.ext4 -O quota,project, attached to a free loop device
 *     (LOOP_CTL_GET_FREE, LOOP_CONFIGURE with LO_FLAGS_AUTOCLEAR, so that the
 *     device goes when the file system is unmounted) and mounted at layers/
 *     with prjquota.  Its size is layers_pool_size, or 80% of the free space
 *     when it is made; a larger layers_pool_size grows it (resize2fs, online)
 *     at the agent's next start.  It is never shrunk.
 * layers_pool = none: a plain directory; quotas only if the state
 *   directory's file system has them.
 * layers_pool = DIRECTORY: that directory, which must be on a file system
 *   that enforces project quotas, bind-mounted at layers/.
 *
 * Set up at every agent start, idempotently: a pool already mounted (the
 * agent restarted) is kept as it is, an image already attached to a loop
 * device (mounted elsewhere, or left by a crash) is mounted from that
 * device rather than attached twice, and nothing is ever mounted over a
 * layers/ that already holds files.  When no pool can be had the agent goes
 * on with layers/ a plain directory and says so in its log: members' layers
 * then have no quota.
 *
 * layers/ is crossed, never listed, by containers' roots: LXC binds a
 * member's nested stores (nesting.c) from their layer as that user.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <linux/loop.h>

#include "container/container.h"
#include "cleanup.h"
#include "fsutil.h"
#include "log.h"
#include "spawn.h"
#include "banned.h"

#define POOL_DIR "layers"
#define POOL_IMAGE "layers.img"
/* The smallest image worth making: ext4's journal and metadata alone take
 * tens of megabytes. */
#define POOL_MIN_SIZE (256ull << 20)
#define POOL_MKFS_TIMEOUT 600
#define POOL_ATTACH_TRIES 16
#define POOL_MODE 0711

int pool_dir(const char *state_dir, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/" POOL_DIR, state_dir);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

uint64_t pool_default_size(uint64_t free_bytes)
{
	uint64_t size = free_bytes / 10 * 8;

	return size & ~((1ull << 20) - 1);
}

/* Whether the directory at fd has no entries. */
static bool pool_dir_empty(int fd)
{
	__do_closedir DIR *dir = NULL;
	struct dirent *de;
	int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);

	if (copy < 0)
		return false;
	dir = fsutil_fdopendir(copy);
	if (!dir)
		return false;
	while ((de = readdir(dir)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			return false;
	return true;
}

/* Whether fd is the root of a mount. */
static bool pool_is_mount_root(int fd)
{
	struct statx stx;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_TYPE, &stx) < 0)
		return false;
	return (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
	       (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

static int pool_open_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

/* The loop device (into dev) the image st is attached to; -ENOENT if none. */
static int pool_loop_find(const struct stat *image, char *dev, size_t len)
{
	__do_closedir DIR *dir = opendir("/sys/block");
	struct dirent *de;

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
		if (stat(backing, &st) == 0 && st.st_dev == image->st_dev && st.st_ino == image->st_ino) {
			int m = snprintf(dev, len, "/dev/%s", de->d_name);

			return m < 0 || (size_t)m >= len ? -ENAMETOOLONG : 0;
		}
	}
	return -ENOENT;
}

/* Configure the free loop device dev_fd with the image; -EBUSY when another
 * took it first. */
static int pool_loop_configure(int dev_fd, int image_fd, const char *image)
{
	struct loop_config lc = { .fd = (uint32_t)image_fd };

	/* Direct I/O keeps the image's pages out of the host's page cache,
	 * which already caches the layers' own files. */
	lc.info.lo_flags = LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO;
	/* Only shown by losetup; sysfs' backing_file is what pool_loop_find() reads. */
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
static int pool_loop_attach(const char *image, char *dev, size_t len)
{
	__do_close int ctl = -EBADF, image_fd = -EBADF;

	image_fd = open(image, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (image_fd < 0)
		return log_error_errno(-errno, errno, "cannot open %s", image);
	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return log_error_errno(-errno, errno, "cannot open /dev/loop-control");
	for (int i = 0; i < POOL_ATTACH_TRIES; i++) {
		__do_close int dev_fd = -EBADF;
		int n = ioctl(ctl, LOOP_CTL_GET_FREE), ret;

		if (n < 0)
			return log_error_errno(-errno, errno, "no free loop device");
		snprintf(dev, len, "/dev/loop%d", n);
		dev_fd = open(dev, O_RDWR | O_CLOEXEC);
		if (dev_fd < 0)
			return log_error_errno(-errno, errno, "cannot open %s", dev);
		ret = pool_loop_configure(dev_fd, image_fd, image);
		if (ret == 0)
			return move_fd(dev_fd);
		/* Taken by someone else between the two calls: ask again. */
		if (ret != -EBUSY)
			return log_error_errno(ret, -ret, "cannot attach %s to %s", image, dev);
	}
	return log_error_errno(-EBUSY, 0, "cannot attach %s: every free loop device was taken first", image);
}

static int pool_mkfs(const char *image)
{
	const char *argv[] = { "mkfs.ext4", "-q", "-F", "-m", "0", "-L", "gpubox-layers",
			       "-O", "quota,project", "-E", "quotatype=prjquota,root_owner=0:0,nodiscard",
			       image, NULL };
	char out[1024] = "";
	int ret = spawn_run(argv, &(struct spawn_options){ .capture = out, .capture_size = sizeof(out),
							   .timeout = POOL_MKFS_TIMEOUT });

	if (ret != 0)
		return log_error_errno(ret < 0 ? ret : -EIO, 0, "mkfs.ext4 %s failed (%d): %s", image, ret, out);
	return 0;
}

/* A new sparse image of size bytes, made whole under a temporary name so
 * that a crash never leaves half an image at the real one. */
static int pool_create_image(const char *state_dir, const char *image, uint64_t size)
{
	char tmp[PATH_MAX];
	__do_close int fd = -EBADF;
	struct statvfs sv;
	int ret;

	if (size == 0) {
		if (statvfs(state_dir, &sv) < 0)
			return log_error_errno(-errno, errno, "cannot read the free space of %s", state_dir);
		size = pool_default_size((uint64_t)sv.f_bavail * sv.f_frsize);
	}
	if (size < POOL_MIN_SIZE)
		return log_error_errno(-ENOSPC, 0, "the layers' image would be %llu bytes; it needs at least %llu (layers_pool_size)",
				       (unsigned long long)size, POOL_MIN_SIZE);
	if (snprintf(tmp, sizeof(tmp), "%s.new", image) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	unlink(tmp);
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return log_error_errno(-errno, errno, "cannot create %s", tmp);
	if (ftruncate(fd, (off_t)size) < 0) {
		ret = log_error_errno(-errno, errno, "cannot size %s", tmp);
		unlink(tmp);
		return ret;
	}
	ret = pool_mkfs(tmp);
	if (ret == 0 && fsync(fd) < 0)
		ret = -errno;
	if (ret == 0 && rename(tmp, image) < 0)
		ret = log_error_errno(-errno, errno, "cannot rename %s", tmp);
	if (ret < 0)
		unlink(tmp);
	else
		log_info("made the layers' image %s (%llu MiB, sparse)", image,
			 (unsigned long long)(size >> 20));
	return ret;
}

/* Grow the attached image to size when asked for more than it has. */
static int pool_grow(const char *image, const char *dev, uint64_t size)
{
	const char *argv[] = { "resize2fs", dev, NULL };
	__do_close int fd = -EBADF, dev_fd = -EBADF;
	char out[1024] = "";
	struct stat st;
	int ret;

	fd = open(image, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		return log_error_errno(-errno, errno, "cannot open %s", image);
	if (size == 0 || (uint64_t)st.st_size == size)
		return 0;
	if ((uint64_t)st.st_size > size) {
		log_warn("layers_pool_size is below the size of %s (%llu MiB): it is never shrunk", image,
			 (unsigned long long)((uint64_t)st.st_size >> 20));
		return 0;
	}
	dev_fd = open(dev, O_RDWR | O_CLOEXEC);
	if (dev_fd < 0)
		return log_error_errno(-errno, errno, "cannot open %s", dev);
	if (ftruncate(fd, (off_t)size) < 0)
		return log_error_errno(-errno, errno, "cannot grow %s", image);
	if (ioctl(dev_fd, LOOP_SET_CAPACITY, 0) < 0)
		return log_error_errno(-errno, errno, "cannot tell %s its new size", dev);
	ret = spawn_run(argv, &(struct spawn_options){ .capture = out, .capture_size = sizeof(out),
						       .timeout = POOL_MKFS_TIMEOUT });
	if (ret != 0)
		return log_error_errno(ret < 0 ? ret : -EIO, 0, "resize2fs %s failed (%d): %s", dev, ret, out);
	log_info("grew the layers' image %s to %llu MiB", image, (unsigned long long)(size >> 20));
	return 0;
}

/* Mount the image (attached or not yet) at dir with project quotas. */
static int pool_mount_image(const char *image, const char *dir)
{
	__do_close int dev_fd = -EBADF, fd = -EBADF;
	char dev[64];
	struct stat st;

	if (stat(image, &st) < 0)
		return log_error_errno(-errno, errno, "cannot stat %s", image);
	if (pool_loop_find(&st, dev, sizeof(dev)) == 0) {
		/* The same block device mounted twice is one file system. */
		log_info("%s is attached to %s already: mounting that", image, dev);
	} else {
		dev_fd = pool_loop_attach(image, dev, sizeof(dev));
		if (dev_fd < 0)
			return dev_fd;
	}
	/* The device's descriptor is held until the mount holds it too:
	 * with autoclear, its last close would detach it. */
	if (mount(dev, dir, "ext4", MS_NOATIME, "prjquota") < 0)
		return log_error_errno(-errno, errno, "cannot mount %s (%s) at %s with prjquota", image, dev, dir);
	fd = pool_open_dir(dir);
	if (fd < 0 || fchmod(fd, POOL_MODE) < 0)
		log_warn_errno(0, errno, "cannot make %s %o", dir, POOL_MODE);
	log_info("members' layers: %s on %s, mounted at %s", image, dev, dir);
	return 0;
}

static bool pool_has_image(const char *state_dir)
{
	char image[PATH_MAX];

	if (snprintf(image, sizeof(image), "%s/" POOL_IMAGE, state_dir) >= (int)sizeof(image))
		return false;
	return access(image, F_OK) == 0;
}

/* layers_pool = auto, where the state directory has no project quotas (or
 * had none when the image was made). */
static int pool_setup_image(const struct gpubox_config *cfg, const char *dir, int dir_fd)
{
	char image[PATH_MAX], dev[64];
	struct stat st;
	int ret;

	if (snprintf(image, sizeof(image), "%s/" POOL_IMAGE, cfg->state_dir) >= (int)sizeof(image))
		return -ENAMETOOLONG;
	if (!pool_is_mount_root(dir_fd)) {
		if (!pool_dir_empty(dir_fd))
			return log_error_errno(-ENOTEMPTY, 0, "%s holds layers already, outside a pool with quotas; "
					       "not mounting the layers' image over them (see gpubox.conf(5), layers_pool)", dir);
		if (access(image, F_OK) < 0) {
			ret = pool_create_image(cfg->state_dir, image, cfg->layers_pool_size);
			if (ret < 0)
				return ret;
		}
		ret = pool_mount_image(image, dir);
		if (ret < 0)
			return ret;
	}
	if (stat(image, &st) == 0 && pool_loop_find(&st, dev, sizeof(dev)) == 0)
		pool_grow(image, dev, cfg->layers_pool_size);
	return 0;
}

/* layers_pool = DIRECTORY: bind-mounted at dir unless it is there already. */
static int pool_setup_bind(const char *source, const char *dir, int dir_fd)
{
	__do_close int src_fd = pool_open_dir(source);
	struct stat src, cur;

	if (src_fd < 0)
		return log_error_errno(src_fd, -src_fd, "layers_pool %s is not a directory", source);
	if (!quota_enforced(src_fd))
		return log_error_errno(-EOPNOTSUPP, 0, "layers_pool %s is not on a file system that enforces project quotas", source);
	if (fstat(src_fd, &src) < 0 || fstat(dir_fd, &cur) < 0)
		return -errno;
	if (src.st_dev == cur.st_dev && src.st_ino == cur.st_ino)
		return 0;
	if (!pool_dir_empty(dir_fd))
		return log_error_errno(-ENOTEMPTY, 0, "%s holds layers already; not mounting %s over them", dir, source);
	if (mount(source, dir, NULL, MS_BIND, NULL) < 0)
		return log_error_errno(-errno, errno, "cannot bind %s at %s", source, dir);
	log_info("members' layers: %s, bound at %s", source, dir);
	return 0;
}

int pool_setup(const struct gpubox_config *cfg)
{
	__do_close int fd = -EBADF, check = -EBADF;
	char dir[PATH_MAX];
	int ret;

	ret = pool_dir(cfg->state_dir, dir, sizeof(dir));
	if (ret < 0)
		return ret;
	if (mkdir(dir, POOL_MODE) < 0 && errno != EEXIST)
		return log_error_errno(-errno, errno, "cannot create %s", dir);
	fd = pool_open_dir(dir);
	if (fd < 0)
		return log_error_errno(fd, -fd, "cannot open %s", dir);

	if (strcmp(cfg->layers_pool, "none") == 0)
		ret = 0;
	else if (strcmp(cfg->layers_pool, "auto") != 0)
		ret = pool_setup_bind(cfg->layers_pool, dir, fd);
	else if (pool_has_image(cfg->state_dir) || !quota_enforced(fd))
		ret = pool_setup_image(cfg, dir, fd);   /* made, mounted, grown */
	else
		ret = 0;                                /* the state directory's own quotas */

	/* What is mounted there now, if anything, decides. */
	check = pool_open_dir(dir);
	if (check >= 0 && fchmod(check, POOL_MODE) < 0)
		log_warn_errno(0, errno, "cannot make %s %o", dir, POOL_MODE);
	if (ret == 0 && check >= 0 && quota_enforced(check))
		return 0;
	log_warn("%s has no project quotas: members' disk limits are not applied", dir);
	return ret < 0 ? ret : -EOPNOTSUPP;
}
