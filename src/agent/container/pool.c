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
 *     with mkfs.ext4 -O quota,project, attached to a loop device
 *     (loopimg.c) and mounted at layers/ with prjquota.  Its size is
 *     layers_pool_size, or 80% of the free space when it is made; a larger
 *     layers_pool_size grows it (resize2fs, online) at the agent's next
 *     start.  It is never shrunk;
 *   - where the kernel cannot mount it with prjquota (built without quota
 *     formats), layers/ is a plain directory and each member with a disk
 *     limit gets an image of their own at their layer (layerimg.c).
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
 * on with layers/ a plain directory and says so in its log.
 *
 * layers/ is crossed, never listed, by containers' roots: LXC binds a
 * member's nested stores (nesting.c) from their layer as that user.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "container/container.h"
#include "cleanup.h"
#include "fsutil.h"
#include "log.h"
#include "banned.h"

#define POOL_DIR "layers"
#define POOL_IMAGE "layers.img"
/* The smallest image worth making: ext4's journal and metadata alone take
 * tens of megabytes. */
#define POOL_MIN_SIZE (256ull << 20)
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

static const char *const pool_mkfs_options[] = {
	"-m", "0", "-L", "gpubox-layers", "-O", "quota,project",
	"-E", "quotatype=prjquota,root_owner=0:0,nodiscard,lazy_journal_init=1", NULL
};

/* A new sparse image of size bytes (0: 80% of the free space). */
static int pool_create_image(const char *state_dir, const char *image, uint64_t size)
{
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
	ret = loopimg_make(image, size, pool_mkfs_options);
	if (ret == 0)
		log_info("made the layers' image %s (%llu MiB, sparse)", image,
			 (unsigned long long)(size >> 20));
	return ret;
}

/* Grow the attached image to size when asked for more than it has. */
static void pool_grow(const char *image, uint64_t size)
{
	uint64_t now = loopimg_size(image);

	if (size == 0 || now == size)
		return;
	if (now > size) {
		log_warn("layers_pool_size is below the size of %s (%llu MiB): it is never shrunk", image,
			 (unsigned long long)(now >> 20));
		return;
	}
	if (loopimg_grow(image, size) == 0)
		log_info("grew the layers' image %s to %llu MiB", image, (unsigned long long)(size >> 20));
}

/* Mount the image (attached or not yet) at dir with project quotas. */
static int pool_mount_image(const char *image, const char *dir)
{
	__do_close int fd = -EBADF;
	int ret = loopimg_mount(image, dir, MS_NOATIME, "prjquota");

	if (ret < 0)
		return ret;
	fd = pool_open_dir(dir);
	if (fd < 0 || fchmod(fd, POOL_MODE) < 0)
		log_warn_errno(0, errno, "cannot make %s %o", dir, POOL_MODE);
	log_info("members' layers: %s, mounted at %s", image, dir);
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
	char image[PATH_MAX];
	int ret;

	if (snprintf(image, sizeof(image), "%s/" POOL_IMAGE, cfg->state_dir) >= (int)sizeof(image))
		return -ENAMETOOLONG;
	if (!pool_is_mount_root(dir_fd)) {
		if (!fsutil_dir_is_empty(dir))
			return log_error_errno(-ENOTEMPTY, 0, "%s holds layers already, outside a pool with quotas; "
					       "not mounting the layers' image over them (see gpubox.conf(5), layers_pool)", dir);
		bool made = access(image, F_OK) < 0;

		if (made) {
			ret = pool_create_image(cfg->state_dir, image, cfg->layers_pool_size);
			if (ret < 0)
				return ret;
		}
		ret = pool_mount_image(image, dir);
		/* EINVAL: a kernel without quota formats (CONFIG_QFMT_V2) does
		 * not know prjquota.  The image is no use to it. */
		if (ret < 0 && made)
			unlink(image);
		if (ret < 0)
			return ret;
	}
	pool_grow(image, cfg->layers_pool_size);
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
	if (!fsutil_dir_is_empty(dir))
		return log_error_errno(-ENOTEMPTY, 0, "%s holds layers already; not mounting %s over them", dir, source);
	if (mount(source, dir, NULL, MS_BIND, NULL) < 0)
		return log_error_errno(-errno, errno, "cannot bind %s at %s", source, dir);
	log_info("members' layers: %s, bound at %s", source, dir);
	return 0;
}

bool pool_layer_images(const struct gpubox_config *cfg)
{
	__do_close int fd = -EBADF;
	char dir[PATH_MAX];

	if (strcmp(cfg->layers_pool, "auto") != 0 || pool_dir(cfg->state_dir, dir, sizeof(dir)) < 0)
		return false;
	fd = pool_open_dir(dir);
	return fd >= 0 && !quota_enforced(fd);
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
	else if (!pool_has_image(cfg->state_dir) && layerimg_in_use(cfg->state_dir))
		ret = -EOPNOTSUPP;                      /* members' own images, as before */
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
	if (strcmp(cfg->layers_pool, "auto") == 0) {
		log_info("%s has no project quotas: each member with a disk limit gets a layer image "
			 "of their own, sized to it (see gpubox.conf(5), layers_pool)", dir);
		return 0;
	}
	log_warn("%s has no project quotas: members' disk limits are not applied", dir);
	return ret < 0 ? ret : -EOPNOTSUPP;
}
