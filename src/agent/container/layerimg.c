/* SPDX-License-Identifier: MIT */
/*
 * A member's layer in an ext4 image of its own, sized to their disk limit:
 * the disk quota where the members' layers have no project quotas (a
 * kernel built without quota formats, CONFIG_QFMT_V2, cannot mount the
 * layers' pool with prjquota; pool.c).
 *
 * <state>/layer-images/<member>.img, sparse, is mounted at the member's
 * layer directory (<state>/layers/<member>) before upper and work exist,
 * and stays mounted while the agent runs: every step that reads or writes
 * the layer (start, snapshot, restore, rebuild) finds it there.  The
 * kernel answers ENOSPC ("No space left on device") past the limit, only
 * to that member; statfs() of the upper directory, which overlayfs asks
 * for `df /`, reports the image's file system: its size is fitted so
 * that df shows the limit.  It is mounted with discard, so that what the
 * member deletes goes back to the host's file system as holes.
 *
 * A larger limit grows the image at once, online; a smaller one shrinks
 * it at the next start, while nothing has it open (e2fsck, resize2fs),
 * and not below what the member holds.  A member's layer made before
 * their limit is copied into a new image at their next start.  Images
 * are sparse: the sum of members' limits may pass the host's free space,
 * which the agent's disk_reserve guards (the agent refuses to start
 * containers below it).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/capability.h>

#include "container/container.h"
#include "cleanup.h"
#include "fsutil.h"
#include "log.h"
#include "banned.h"

#define LAYERIMG_DIR "layer-images"
#define LAYERIMG_BLOCK 4096ull
/* Growing adds block groups, each with its own metadata: a few rounds
 * bring the usable size to the limit. */
#define LAYERIMG_FIT_ROUNDS 4
/* A usable size this much above the limit is left as it is. */
#define LAYERIMG_SLACK (1ull << 20)

static const char *const layerimg_mkfs_options[] = {
	/* -T default: 4 KiB blocks and an inode per 16 KiB even for small
	 * images; lazy_*_init leaves the image sparse. */
	"-m", "0", "-T", "default", "-L", "gpubox-layer",
	"-E", "root_owner=0:0,nodiscard,lazy_itable_init=1,lazy_journal_init=1", NULL
};

int layerimg_path(const char *state_dir, const char *member, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/" LAYERIMG_DIR "/%s.img", state_dir, member);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

bool layerimg_in_use(const char *state_dir)
{
	char dir[PATH_MAX];
	int n = snprintf(dir, sizeof(dir), "%s/" LAYERIMG_DIR, state_dir);

	return n > 0 && (size_t)n < sizeof(dir) && fsutil_exists(dir) && !fsutil_dir_is_empty(dir);
}

bool layerimg_exists(const struct storage_paths *paths)
{
	return loopimg_size(paths->image) > 0;
}

/* Whether the layer directory is the root of a mount (the image's). */
bool layerimg_mounted(const struct storage_paths *paths)
{
	struct statx stx;

	if (statx(AT_FDCWD, paths->pool_layer, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_TYPE, &stx) < 0)
		return false;
	return (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
	       (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

/* The usable size of the file system mounted at dir. */
static uint64_t layerimg_fs_size(const char *dir)
{
	struct statfs sfs;

	if (statfs(dir, &sfs) < 0)
		return 0;
	return (uint64_t)sfs.f_blocks * (uint64_t)sfs.f_bsize;
}

static uint64_t layerimg_round(uint64_t bytes)
{
	return (bytes + LAYERIMG_BLOCK - 1) / LAYERIMG_BLOCK * LAYERIMG_BLOCK;
}

static int layerimg_mount_at(const char *image, const char *dir)
{
	return loopimg_mount(image, dir, MS_NOATIME, "discard");
}

/* Unmount the image from dir, if it is there. */
static int layerimg_unmount_at(const char *dir)
{
	if (umount2(dir, UMOUNT_NOFOLLOW) < 0 && errno != EINVAL && errno != ENOENT)
		return log_error_errno(-errno, errno, "cannot unmount %s", dir);
	return 0;
}

/* Whether the agent may resize a mounted ext4: EXT4_IOC_RESIZE_FS takes
 * CAP_SYS_RESOURCE, which a root confined by its own container lacks. */
static bool layerimg_can_resize_online(void)
{
	struct __user_cap_header_struct head = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = { 0 };

	if (syscall(SYS_capget, &head, data) < 0)
		return false;
	return data[CAP_TO_INDEX(CAP_SYS_RESOURCE)].effective & CAP_TO_MASK(CAP_SYS_RESOURCE);
}

/*
 * Grow the image mounted at dir until df there shows at least bytes.
 * Online where the kernel lets the agent (resizing a mounted ext4 takes
 * CAP_SYS_RESOURCE); otherwise, when nothing uses it (may_unmount),
 * unmounted and resized offline.  -EPERM when it is in use and cannot grow
 * online.
 */
static int layerimg_fit(const char *image, const char *dir, uint64_t bytes, bool may_unmount)
{
	for (int i = 0; i < LAYERIMG_FIT_ROUNDS; i++) {
		uint64_t fs = layerimg_fs_size(dir), want;
		int ret;

		if (fs == 0)
			return log_error_errno(-EIO, 0, "cannot read the size of %s", dir);
		if (fs >= bytes)
			return 0;
		want = loopimg_size(image) + layerimg_round(bytes - fs);
		if (layerimg_can_resize_online()) {
			ret = loopimg_grow(image, want);
			if (ret < 0)
				return ret;
			continue;
		}
		if (!may_unmount)
			return -EPERM;
		ret = layerimg_unmount_at(dir);
		if (ret == 0)
			ret = loopimg_resize_offline(image, want);
		if (layerimg_mount_at(image, dir) < 0 && ret == 0)
			ret = -EIO;
		if (ret < 0)
			return ret;
	}
	return 0;
}

int layerimg_release(const struct storage_paths *paths)
{
	if (!layerimg_mounted(paths))
		return 0;
	if (umount2(paths->pool_layer, UMOUNT_NOFOLLOW) == 0)
		return 0;
	if (errno != EBUSY)
		return log_error_errno(-errno, errno, "cannot unmount %s", paths->pool_layer);
	/* A discard still removing files there: the image goes when it is
	 * done (the loop device clears itself). */
	if (umount2(paths->pool_layer, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
		return log_error_errno(-errno, errno, "cannot detach %s", paths->pool_layer);
	return 0;
}

static int layerimg_sync(const char *dir)
{
	__do_close int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || syncfs(fd) < 0)
		return log_error_errno(-errno, errno, "cannot sync %s", dir);
	return 0;
}

/* A new image of the member's, holding what their layer holds already:
 * filled at <image>.fill under .moving-<member> and renamed into place
 * whole, so that a crash leaves the plain layer as it was. */
static int layerimg_create(const struct storage_paths *paths, uint64_t bytes)
{
	char fill[PATH_MAX], moving[PATH_MAX], dir[PATH_MAX];
	const char *member = strrchr(paths->pool_layer, '/') + 1;
	int ret;

	if (snprintf(fill, sizeof(fill), "%s.fill", paths->image) >= (int)sizeof(fill) ||
	    snprintf(dir, sizeof(dir), "%s", paths->image) >= (int)sizeof(dir))
		return -ENAMETOOLONG;
	*strrchr(dir, '/') = '\0';
	if (snprintf(moving, sizeof(moving), "%s/.moving-%s", dir, member) >= (int)sizeof(moving))
		return -ENAMETOOLONG;
	ret = fsutil_mkdir_p(dir, 0700);
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot create %s", dir);
	/* Left by an agent stopped half-way through an earlier fill. */
	layerimg_unmount_at(moving);
	unlink(fill);
	if (mkdir(moving, 0700) < 0 && errno != EEXIST)
		return log_error_errno(-errno, errno, "cannot create %s", moving);

	ret = loopimg_make(fill, layerimg_round(bytes), layerimg_mkfs_options);
	if (ret == 0)
		ret = layerimg_mount_at(fill, moving);
	if (ret < 0)
		goto out;
	ret = layerimg_fit(fill, moving, bytes, true);
	if (ret == 0 && !fsutil_dir_is_empty(paths->pool_layer)) {
		log_info("copying the layer %s into its own image %s", paths->pool_layer, paths->image);
		ret = storage_copy_tree(paths->pool_layer, moving);
	}
	if (ret == 0)
		ret = layerimg_sync(moving);
	if (layerimg_unmount_at(moving) < 0 && ret == 0)
		ret = -EBUSY;
	if (ret == 0 && rename(fill, paths->image) < 0)
		ret = log_error_errno(-errno, errno, "cannot rename %s", fill);
	/* The image has them now; the directory is its mount point. */
	if (ret == 0)
		ret = fsutil_empty_dir(paths->pool_layer);
out:
	rmdir(moving);
	if (ret < 0)
		unlink(fill);
	else
		log_info("%s: own layer image %s (%llu MiB, sparse)", member, paths->image,
			 (unsigned long long)(loopimg_size(paths->image) >> 20));
	return ret;
}

/* Shrink the unmounted image towards bytes of usable space, keeping the
 * file system's own overhead (measured while it was mounted). */
static int layerimg_shrink(const struct storage_paths *paths, uint64_t bytes, uint64_t overhead)
{
	uint64_t want = layerimg_round(bytes + overhead);
	int ret = loopimg_resize_offline(paths->image, want);

	if (ret < 0)
		log_warn("%s stays at %llu MiB: it holds more than the new disk limit, or could not be checked",
			 paths->image, (unsigned long long)(loopimg_size(paths->image) >> 20));
	else
		log_info("shrank %s to %llu MiB", paths->image, (unsigned long long)(want >> 20));
	return ret;
}

/* Mount the existing image at the layer directory. */
static int layerimg_mount_layer(const struct storage_paths *paths)
{
	int ret;

	/* What an earlier crash between the fill's rename and this mount
	 * left in the plain directory is in the image already. */
	if (!fsutil_dir_is_empty(paths->pool_layer)) {
		log_warn("%s holds files under its image's mount point: removing them (the image has them)",
			 paths->pool_layer);
		ret = fsutil_empty_dir(paths->pool_layer);
		if (ret < 0)
			return log_error_errno(ret, -ret, "cannot empty %s", paths->pool_layer);
	}
	return layerimg_mount_at(paths->image, paths->pool_layer);
}

int layerimg_prepare(const struct storage_paths *paths, uint64_t bytes)
{
	uint64_t fs;
	int ret;

	if (!layerimg_exists(paths)) {
		if (bytes == 0)
			return 0;
		ret = layerimg_create(paths, bytes);
		if (ret < 0)
			return ret;
	}
	if (!layerimg_mounted(paths)) {
		ret = layerimg_mount_layer(paths);
		if (ret < 0)
			return ret;
	}
	fs = layerimg_fs_size(paths->pool_layer);
	if (bytes == 0 || (fs >= bytes && fs - bytes < LAYERIMG_SLACK))
		return 0;
	/* Smaller: nothing has the layer open before the start.  The
	 * journal keeps its size, the inode tables shrink: a few rounds. */
	for (int i = 0; fs > bytes + LAYERIMG_SLACK && i < LAYERIMG_FIT_ROUNDS; i++) {
		ret = layerimg_unmount_at(paths->pool_layer);
		if (ret < 0)
			return ret;
		ret = layerimg_shrink(paths, bytes, loopimg_size(paths->image) - fs);
		if (layerimg_mount_layer(paths) < 0)
			return -EIO;
		if (ret < 0)
			return 0;
		fs = layerimg_fs_size(paths->pool_layer);
	}
	return layerimg_fit(paths->image, paths->pool_layer, bytes, true);
}

int layerimg_grow_live(const struct storage_paths *paths, uint64_t bytes, bool *later)
{
	uint64_t fs;
	int ret;

	*later = false;
	if (!layerimg_mounted(paths)) {
		*later = true;
		return 0;
	}
	fs = layerimg_fs_size(paths->pool_layer);
	if (fs >= bytes) {
		/* Shrinking waits for the next start; equal is done. */
		*later = fs - bytes >= LAYERIMG_SLACK;
		return 0;
	}
	ret = layerimg_fit(paths->image, paths->pool_layer, bytes, false);
	/* A kernel that does not let the agent resize a mounted file system
	 * gets it at the next start. */
	if (ret == -EPERM) {
		*later = true;
		return 0;
	}
	return ret;
}

int layerimg_usage(const struct storage_paths *paths, struct quota_usage *out)
{
	struct statfs sfs;

	if (!layerimg_mounted(paths))
		return -ENOENT;
	if (statfs(paths->pool_layer, &sfs) < 0)
		return -errno;
	out->bytes = (uint64_t)(sfs.f_blocks - sfs.f_bfree) * (uint64_t)sfs.f_bsize;
	out->limit = (uint64_t)sfs.f_blocks * (uint64_t)sfs.f_bsize;
	return 0;
}
