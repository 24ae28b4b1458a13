/* SPDX-License-Identifier: MIT */
/*
 * storage.c: a member's overlay of an idmapped template, for real (needs
 * root, overlayfs and idmapped mounts).  A tiny template in a temporary
 * directory stands in for a real one.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <sched.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/fs.h>

#include <cmocka.h>

#include "container/container.h"
#include "cleanup.h"
#include "spawn.h"
#include "testutil.h"
#include "banned.h"

struct fixture {
	char top[64];
	char state[128];
	char template[128];
	uint32_t base;
	struct storage_paths paths;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	*state = f;
	if (tu_make_tempdir(f->top, sizeof(f->top), "/tmp/gpubox-test-storage-XXXXXX") < 0)
		return -1;
	snprintf(f->state, sizeof(f->state), "%s/state", f->top);
	snprintf(f->template, sizeof(f->template), "%s/template", f->top);
	/* A block of ids of our own, so parallel runs do not meet. */
	f->base = 1000000u + ((uint32_t)getpid() % 4096u) * SUBID_COUNT;

	if (mkdir(f->state, 0700) < 0 || mkdir(f->template, 0755) < 0 ||
	    tu_make_dir(f->template, "etc", 0, 0, 0755) < 0 ||
	    tu_make_file(f->template, "etc/hostname", "template\n", 0, 0, 0644) < 0 ||
	    tu_make_file(f->template, "etc/shadow", "root:*:1::::::\n", 0, 42, 0640) < 0 ||
	    tu_make_dir(f->template, "bin", 0, 0, 0755) < 0 ||
	    tu_make_file(f->template, "bin/sudo", "#!/bin/true\n", 0, 0, 04755) < 0 ||
	    tu_make_dir(f->template, "home", 0, 0, 0755) < 0 ||
	    tu_make_dir(f->template, "home/alice", 1000, 1000, 0750) < 0 ||
	    tu_make_file(f->template, "home/alice/notes", "hello\n", 1000, 1000, 0644) < 0)
		return -1;
	if (storage_paths(f->state, "alice", &f->paths) < 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (!f)
		return 0;
	if (f->paths.rootfs[0]) {
		char layers[PATH_MAX];

		umount2(f->paths.rootfs, MNT_DETACH);
		umount2(f->paths.lower, MNT_DETACH);
		/* A pool's image, when a test made one: its loop device goes
		 * with the mount (autoclear). */
		tu_join(layers, sizeof(layers), f->state, "layers");
		umount2(f->paths.pool_layer, MNT_DETACH);
		tu_join(layers, sizeof(layers), f->state, "layer-images/.moving-alice");
		umount2(layers, MNT_DETACH);
		tu_join(layers, sizeof(layers), f->state, "layers");
		umount2(layers, MNT_DETACH);
	}
	tu_remove_tempdir(f->top);
	free(f);
	return 0;
}

/* How many mounts /proc/self/mountinfo lists at path. */
static int count_mounts(const char *path)
{
	__do_fclose FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096];
	int count = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *save = NULL, *field = strtok_r(line, " ", &save);

		for (int i = 0; field && i < 4; i++)
			field = strtok_r(NULL, " ", &save);
		if (field && strcmp(field, path) == 0)
			count++;
	}
	return count;
}

static void assert_template_untouched(struct fixture *f)
{
	tu_assert_owner(f->template, "etc", 0, 0, 0755);
	tu_assert_owner(f->template, "etc/hostname", 0, 0, 0644);
	tu_assert_text(f->template, "etc/hostname", "template\n");
	tu_assert_owner(f->template, "etc/shadow", 0, 42, 0640);
	tu_assert_owner(f->template, "bin/sudo", 0, 0, 04755);
	tu_assert_owner(f->template, "home/alice", 1000, 1000, 0750);
	tu_assert_owner(f->template, "home/alice/notes", 1000, 1000, 0644);
	tu_assert_absent(f->template, "new-file");
	assert_int_equal(tu_count_entries(f->template), 3);
}

static void test_paths(void **state)
{
	struct storage_paths p;

	(void)state;
	assert_int_equal(storage_paths("/var/lib/gpubox", "alice", &p), 0);
	assert_string_equal(p.dir, "/var/lib/gpubox/users/alice");
	assert_string_equal(p.layer, "/var/lib/gpubox/layers/alice");
	assert_string_equal(p.pool_layer, "/var/lib/gpubox/layers/alice");
	assert_false(storage_layer_is_legacy(&p));
	assert_string_equal(p.upper, "/var/lib/gpubox/layers/alice/upper");
	assert_string_equal(p.work, "/var/lib/gpubox/layers/alice/work");
	assert_string_equal(p.lower, "/var/lib/gpubox/users/alice/lower");
	assert_string_equal(p.rootfs, "/var/lib/gpubox/users/alice/rootfs");
	assert_int_equal(storage_paths("/var/lib/gpubox", "../x", &p), -EINVAL);
	assert_int_equal(storage_paths("/var/lib/gpubox", "a/b", &p), -EINVAL);
	assert_int_equal(storage_paths("/var/lib/gpubox", "", &p), -EINVAL);
	assert_int_equal(storage_paths("/var/lib/gpubox", "..", &p), -EINVAL);
}

static void test_prepare(void **state)
{
	struct fixture *f = *state;
	char users[PATH_MAX];

	assert_int_equal(storage_prepare(&f->paths, f->base, NULL), 0);
	assert_int_equal(storage_prepare(&f->paths, f->base, NULL), 0);
	tu_join(users, sizeof(users), f->state, "users");
	tu_assert_owner(users, "", 0, 0, 0711);
	tu_assert_owner(f->paths.dir, "", 0, f->base, 0710);
	tu_assert_owner(f->paths.layer, "", 0, f->base, 0710);
	tu_assert_owner(f->paths.upper, "", f->base, f->base, 0755);
	tu_assert_owner(f->paths.work, "", 0, 0, 0700);
	tu_assert_owner(f->paths.lower, "", 0, 0, 0700);
	tu_assert_owner(f->paths.rootfs, "", 0, 0, 0755);
	assert_false(storage_is_mounted(&f->paths));
	assert_int_equal(storage_prepare(&f->paths, 0, NULL), -ERANGE);
}

static void test_mount_cycle(void **state)
{
	struct fixture *f = *state;
	struct storage_paths *p = &f->paths;
	uint32_t base = f->base;
	int fds = tu_count_entries("/proc/self/fd");

	assert_int_equal(storage_prepare(p, base, NULL), 0);
	assert_int_equal(storage_mount(p, f->template, base), 0);
	/* The helper child is reaped and no descriptor is left open. */
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
	assert_int_equal(tu_count_entries("/proc/self/fd"), fds);
	assert_true(storage_is_mounted(p));
	assert_int_equal(count_mounts(p->rootfs), 1);
	/* The idmapped lower mount is only a step. */
	assert_int_equal(count_mounts(p->lower), 0);

	/* Owners shifted by the idmapped lower layer, modes kept. */
	tu_assert_owner(p->rootfs, "etc", base, base, 0755);
	tu_assert_owner(p->rootfs, "etc/hostname", base, base, 0644);
	tu_assert_owner(p->rootfs, "etc/shadow", base, base + 42, 0640);
	tu_assert_owner(p->rootfs, "bin/sudo", base, base, 04755);
	tu_assert_owner(p->rootfs, "home/alice", base + 1000, base + 1000, 0750);
	tu_assert_owner(p->rootfs, "home/alice/notes", base + 1000, base + 1000, 0644);
	tu_assert_owner(p->rootfs, "", base, base, 0755);
	tu_assert_text(p->rootfs, "etc/hostname", "template\n");

	/* Writes land in the upper layer; the template stays as it was. */
	assert_int_equal(tu_make_file(p->rootfs, "new-file", "mine\n", base + 1000, base + 1000, 0600), 0);
	tu_assert_owner(p->upper, "new-file", base + 1000, base + 1000, 0600);
	tu_assert_text(p->upper, "new-file", "mine\n");
	assert_int_equal(tu_make_file(p->rootfs, "etc/hostname", "changed\n", base, base, 0644), 0);
	tu_assert_text(p->upper, "etc/hostname", "changed\n");
	tu_assert_owner(p->upper, "etc/hostname", base, base, 0644);
	tu_assert_text(p->rootfs, "etc/hostname", "changed\n");
	assert_template_untouched(f);

	/* Idempotent mount: nothing stacked. */
	assert_int_equal(storage_mount(p, f->template, base), 0);
	assert_int_equal(count_mounts(p->rootfs), 1);
	assert_int_equal(storage_wipe(p, base), -EBUSY);

	/* Unmount twice, still the user's file. */
	assert_int_equal(storage_unmount(p), 0);
	assert_false(storage_is_mounted(p));
	assert_int_equal(count_mounts(p->rootfs), 0);
	assert_int_equal(storage_unmount(p), 0);
	tu_assert_text(p->upper, "new-file", "mine\n");

	/* Remount keeps the member's changes. */
	assert_int_equal(storage_mount(p, f->template, base), 0);
	tu_assert_text(p->rootfs, "new-file", "mine\n");
	tu_assert_text(p->rootfs, "etc/hostname", "changed\n");
	assert_int_equal(storage_unmount(p), 0);

	/* Wipe: back to the template, Docker's and Podman's stores gone. */
	assert_int_equal(chmod(p->upper, 0777), 0);
	assert_int_equal(mkdir(p->nested, 0711), 0);
	assert_int_equal(tu_make_dir(p->nested, "docker", base, base, 0710), 0);
	assert_int_equal(tu_make_file(p->nested, "docker/image", "layer\n", base + 5, base + 5, 0), 0);
	assert_int_equal(storage_wipe(p, base), 0);
	assert_int_equal(tu_count_entries(p->upper), 0);
	assert_int_equal(tu_count_entries(p->work), 0);
	tu_assert_absent(p->layer, "nested");
	tu_assert_owner(p->upper, "", base, base, 0755);
	assert_int_equal(storage_wipe(p, base), 0);
	/* What was wiped goes in the background: the layer holds upper and
	 * work alone once it is gone. */
	for (int i = 0; i < 100 && tu_count_entries(p->layer) > 2; i++)
		usleep(50 * 1000);
	assert_int_equal(tu_count_entries(p->layer), 2);
	/* Left by an agent stopped half-way: removed at the next start. */
	assert_int_equal(tu_make_dir(p->layer, ".discard-upper-1-0", 0, 0, 0700), 0);
	assert_int_equal(tu_make_file(p->layer, ".discard-upper-1-0/f", "x\n", 0, 0, 0600), 0);
	storage_discard_leftovers(p);
	for (int i = 0; i < 100 && tu_count_entries(p->layer) > 2; i++)
		usleep(50 * 1000);
	tu_assert_absent(p->layer, ".discard-upper-1-0");

	assert_int_equal(storage_prepare(p, base, NULL), 0);
	assert_int_equal(storage_mount(p, f->template, base), 0);
	tu_assert_absent(p->rootfs, "new-file");
	tu_assert_text(p->rootfs, "etc/hostname", "template\n");
	assert_int_equal(storage_unmount(p), 0);
	assert_template_untouched(f);
}

/* The agent's layers around the template: above it wins over the
 * template, beneath it only adds what the template lacks, and neither
 * puts anything into the member's layer. */
static void test_mount_extra_layers(void **state)
{
	struct fixture *f = *state;
	struct storage_paths *p = &f->paths;
	char above[256], below[256];
	uint32_t base = f->base;

	tu_join(above, sizeof(above), f->top, "above");
	tu_join(below, sizeof(below), f->top, "below");
	assert_int_equal(mkdir(above, 0755), 0);
	assert_int_equal(mkdir(below, 0755), 0);
	assert_int_equal(tu_make_dir(above, "etc", base, base, 0755), 0);
	assert_int_equal(tu_make_file(above, "etc/hostname", "above\n", base, base, 0644), 0);
	/* Beneath: a directory of another owner and mode, a file the
	 * template has, one it lacks. */
	assert_int_equal(tu_make_dir(below, "etc", 0, 0, 0700), 0);
	assert_int_equal(tu_make_file(below, "etc/shadow", "below\n", 0, 0, 0644), 0);
	assert_int_equal(tu_make_file(below, "etc/mount-point", "", 0, 0, 0644), 0);

	assert_int_equal(storage_prepare(p, base, NULL), 0);
	assert_int_equal(storage_mount_layers(p, f->template, &(struct storage_extra){ .above = above,
				.below = below }, base), 0);
	tu_assert_text(p->rootfs, "etc/hostname", "above\n");
	tu_assert_owner(p->rootfs, "etc", base, base, 0755);
	tu_assert_owner(p->rootfs, "etc/shadow", base, base + 42, 0640);
	tu_assert_owner(p->rootfs, "etc/mount-point", 0, 0, 0644);
	assert_int_equal(tu_count_entries(p->upper), 0);
	assert_int_equal(storage_unmount(p), 0);

	/* Without them, the template alone. */
	assert_int_equal(storage_mount(p, f->template, base), 0);
	tu_assert_absent(p->rootfs, "etc/mount-point");
	tu_assert_text(p->rootfs, "etc/hostname", "template\n");
	assert_int_equal(storage_unmount(p), 0);
	assert_template_untouched(f);
}

static void test_busy_and_leftovers(void **state)
{
	struct fixture *f = *state;
	struct storage_paths *p = &f->paths;
	char path[PATH_MAX];
	int fd;

	assert_int_equal(storage_prepare(p, f->base, NULL), 0);
	/* A lower mount left by an agent killed half-way is cleared. */
	assert_int_equal(mount(f->template, p->lower, NULL, MS_BIND, NULL), 0);
	assert_int_equal(storage_mount(p, f->template, f->base), 0);
	assert_int_equal(count_mounts(p->lower), 0);

	/* A busy overlay is detached. */
	tu_join(path, sizeof(path), p->rootfs, "etc");
	fd = tu_open_dir(path);
	assert_int_equal(fchdir(fd), 0);
	assert_int_equal(storage_unmount(p), 0);
	assert_false(storage_is_mounted(p));
	assert_int_equal(chdir("/"), 0);
	close(fd);

	/* Something other than an overlay at the mount point is refused. */
	assert_int_equal(mount(f->template, p->rootfs, NULL, MS_BIND, NULL), 0);
	assert_false(storage_is_mounted(p));
	assert_int_equal(storage_mount(p, f->template, f->base), -EBUSY);
	assert_int_equal(storage_unmount(p), 0);
	assert_int_equal(count_mounts(p->rootfs), 0);
	assert_template_untouched(f);
}

static void test_cost_does_not_grow(void **state)
{
	struct fixture *f = *state;
	struct storage_paths *p = &f->paths;
	char dir[PATH_MAX], name[64];

	/* A bigger template: creating a container still writes nothing but
	 * the member's own (empty) directories. */
	tu_join(dir, sizeof(dir), f->template, "usr");
	assert_int_equal(mkdir(dir, 0755), 0);
	for (int i = 0; i < 200; i++) {
		snprintf(name, sizeof(name), "file%d", i);
		assert_int_equal(tu_make_file(dir, name, "x\n", 0, 0, 0644), 0);
	}
	assert_int_equal(storage_prepare(p, f->base, NULL), 0);
	assert_int_equal(storage_mount(p, f->template, f->base), 0);
	tu_assert_owner(p->rootfs, "usr/file199", f->base, f->base, 0644);
	assert_int_equal(tu_count_entries(p->upper), 0);
	assert_int_equal(storage_unmount(p), 0);
	tu_assert_owner(f->template, "usr/file199", 0, 0, 0644);
}


/* An older agent's layer in <dir>/layer is named there until the next
 * prepare moves it into the pool, whole. */
static void test_legacy_layer_moved(void **state)
{
	struct fixture *f = *state;
	struct storage_paths *p = &f->paths;
	char legacy[PATH_MAX], upper[PATH_MAX];

	tu_join(legacy, sizeof(legacy), f->state, "users");
	assert_int_equal(mkdir(legacy, 0711), 0);
	tu_join(legacy, sizeof(legacy), p->dir, "");
	assert_int_equal(mkdir(p->dir, 0710), 0);
	tu_join(legacy, sizeof(legacy), p->dir, "layer");
	assert_int_equal(tu_make_dir(p->dir, "layer", 0, 0, 0700), 0);
	assert_int_equal(tu_make_dir(legacy, "upper", f->base, f->base, 0755), 0);
	assert_int_equal(tu_make_dir(legacy, "work", 0, 0, 0700), 0);
	tu_join(upper, sizeof(upper), legacy, "upper");
	assert_int_equal(tu_make_file(upper, "kept", "mine\n", f->base + 1000, f->base + 1000, 0600), 0);

	assert_int_equal(storage_paths(f->state, "alice", p), 0);
	assert_true(storage_layer_is_legacy(p));
	assert_string_equal(p->layer, legacy);
	assert_string_equal(p->upper, upper);

	assert_int_equal(storage_prepare(p, f->base, &(struct storage_disk){ .project = 4242 }), 0);
	assert_false(storage_layer_is_legacy(p));
	assert_string_equal(p->layer, p->pool_layer);
	tu_assert_text(p->upper, "kept", "mine\n");
	tu_assert_owner(p->upper, "kept", f->base + 1000, f->base + 1000, 0600);
	tu_assert_absent(p->dir, "layer");
	/* Named in the pool from now on. */
	assert_int_equal(storage_paths(f->state, "alice", p), 0);
	assert_false(storage_layer_is_legacy(p));
	assert_int_equal(storage_mount(p, f->template, f->base), 0);
	tu_assert_text(p->rootfs, "kept", "mine\n");
	assert_int_equal(storage_unmount(p), 0);
}

static void test_retire_and_remove(void **state)
{
	struct fixture *f = *state;
	struct storage_paths *p = &f->paths;
	char kept[PATH_MAX], want[PATH_MAX];

	assert_int_equal(storage_retire_layer(p, "1", kept, sizeof(kept)), 0);
	assert_string_equal(kept, "");
	assert_int_equal(storage_prepare(p, f->base, NULL), 0);
	assert_int_equal(tu_make_file(p->upper, "work", "x\n", f->base, f->base, 0644), 0);
	assert_int_equal(storage_retire_layer(p, "1700000000", kept, sizeof(kept)), 0);
	snprintf(want, sizeof(want), "%s/layers/.retired/alice-1700000000", f->state);
	assert_string_equal(kept, want);
	tu_assert_text(want, "upper/work", "x\n");
	tu_assert_absent(p->pool_layer, "");

	assert_int_equal(storage_prepare(p, f->base, NULL), 0);
	assert_int_equal(storage_remove_layer(p), 0);
	tu_assert_absent(p->pool_layer, "");
	assert_int_equal(storage_remove_layer(p), 0);
}

static void test_pure_sizes(void **state)
{
	(void)state;
	assert_int_equal(quota_blocks(0), 0);
	assert_int_equal(quota_blocks(QUOTA_NONE), 0);
	assert_int_equal(quota_blocks(1), 1);
	assert_int_equal(quota_blocks(1024), 1);
	assert_int_equal(quota_blocks(1025), 2);
	assert_int_equal(quota_blocks(300ull << 20), 300 * 1024);
	assert_true(pool_default_size(100ull << 30) == 80ull << 30);
	assert_int_equal(pool_default_size(1000) % (1 << 20), 0);
	assert_true(pool_default_size((10ull << 30) + 12345) <= (8ull << 30) + 12345);
}

/* The project id of path, or UINT32_MAX. */
static uint32_t project_of(const char *dir, const char *rel)
{
	char path[PATH_MAX];
	__do_close int fd = -EBADF;
	uint32_t project;

	tu_join(path, sizeof(path), dir, rel);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 || quota_get_project(fd, &project) < 0)
		return UINT32_MAX;
	return project;
}

/* Write mib MiB to dir/rel; 0, or the errno that stopped it. */
static int write_mib(const char *dir, const char *rel, int mib)
{
	static char block[1 << 20];
	char path[PATH_MAX];
	__do_close int fd = -EBADF;

	tu_join(path, sizeof(path), dir, rel);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return errno;
	memset(block, 'x', sizeof(block));
	for (int i = 0; i < mib; i++) {
		/* A write cut short by the quota returns what it wrote; the
		 * next one says why. */
		for (size_t done = 0; done < sizeof(block);) {
			ssize_t n = write(fd, block + done, sizeof(block) - done);

			if (n < 0)
				return errno;
			if (n == 0)
				return EIO;
			done += (size_t)n;
		}
	}
	if (fsync(fd) < 0)
		return errno;
	return 0;
}

/*
 * In a child in a user namespace of its own (root there is host root,
 * as a container's root is its own files' owner): FS_IOC_FSSETXATTR on
 * path with what change() makes of the current attributes; the child's
 * errno, or 0.
 */
static int setxattr_in_userns(const char *path, void (*change)(struct fsxattr *))
{
	int to_child[2], to_parent[2], status;
	char byte = 0, map[64];
	pid_t pid;

	if (pipe(to_child) < 0 || pipe(to_parent) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		struct fsxattr fsx;
		int fd, ret = 0;

		if (unshare(CLONE_NEWUSER) < 0)
			_exit(100);
		if (write(to_parent[1], "1", 1) != 1 || read(to_child[0], &byte, 1) != 1)
			_exit(101);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || ioctl(fd, FS_IOC_FSGETXATTR, &fsx) < 0)
			_exit(102);
		change(&fsx);
		if (ioctl(fd, FS_IOC_FSSETXATTR, &fsx) < 0)
			ret = errno;
		_exit(ret);
	}
	if (read(to_parent[0], &byte, 1) != 1)
		return -1;
	snprintf(map, sizeof(map), "0 0 1\n");
	{
		char file[64];
		int fd;

		snprintf(file, sizeof(file), "/proc/%d/uid_map", (int)pid);
		fd = open(file, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, map, strlen(map)) < 0)
			return -1;
		close(fd);
	}
	if (write(to_child[1], "1", 1) != 1)
		return -1;
	waitpid(pid, &status, 0);
	close(to_child[0]);
	close(to_child[1]);
	close(to_parent[0]);
	close(to_parent[1]);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void change_project(struct fsxattr *fsx)
{
	fsx->fsx_projid = 0;
}

static void drop_inherit(struct fsxattr *fsx)
{
	fsx->fsx_xflags &= ~(uint32_t)FS_XFLAG_PROJINHERIT;
}

static void set_noatime(struct fsxattr *fsx)
{
	fsx->fsx_xflags |= FS_XFLAG_NOATIME;
}

/*
 * The pool for real: an ext4 image with project quotas on a loop device,
 * a layer moved into it, a quota that stops writes through the overlay,
 * df's size, a live change, and a member root who cannot leave the
 * project.  Skipped where the kernel has no ext4 quotas.
 */
static void test_quota_pool(void **state)
{
	struct fixture *f = *state;
	struct storage_paths *p = &f->paths;
	struct gpubox_config cfg;
	struct quota_usage use;
	struct statfs sfs;
	char layers[PATH_MAX], legacy[PATH_MAX], upper[PATH_MAX], path[PATH_MAX];
	__do_close int fd = -EBADF;
	const uint32_t project = 4242;

	config_set_defaults(&cfg);
	snprintf(cfg.state_dir, sizeof(cfg.state_dir), "%s", f->state);
	cfg.layers_pool_size = 300ull << 20;
	tu_join(layers, sizeof(layers), f->state, "layers");
	if (pool_setup(&cfg) < 0 || pool_layer_images(&cfg)) {
		print_message("no ext4 project quotas on this kernel (CONFIG_QFMT_V2?): skipped; "
			      "test_layer_image tests what the agent does instead\n");
		skip();
	}
	assert_int_equal(count_mounts(layers), 1);
	/* The agent restarted: the pool mounted once, still. */
	assert_int_equal(pool_setup(&cfg), 0);
	assert_int_equal(count_mounts(layers), 1);

	/* An older agent's layer, with an overlay whiteout and an opaque
	 * directory, copied into the pool and charged to the project. */
	tu_join(legacy, sizeof(legacy), f->state, "users");
	assert_int_equal(mkdir(legacy, 0711), 0);
	assert_int_equal(mkdir(p->dir, 0710), 0);
	tu_join(legacy, sizeof(legacy), p->dir, "layer");
	assert_int_equal(tu_make_dir(p->dir, "layer", 0, 0, 0700), 0);
	assert_int_equal(tu_make_dir(legacy, "upper", f->base, f->base, 0755), 0);
	assert_int_equal(tu_make_dir(legacy, "work", 0, 0, 0700), 0);
	tu_join(upper, sizeof(upper), legacy, "upper");
	assert_int_equal(write_mib(upper, "old", 2), 0);
	tu_join(path, sizeof(path), upper, "gone");
	assert_int_equal(mknod(path, S_IFCHR | 0000, makedev(0, 0)), 0);
	assert_int_equal(tu_make_dir(upper, "etc", f->base, f->base, 0755), 0);
	tu_join(path, sizeof(path), upper, "etc");
	assert_int_equal(setxattr(path, "trusted.overlay.opaque", "y", 1, 0), 0);
	assert_int_equal(storage_paths(f->state, "alice", p), 0);
	assert_true(storage_layer_is_legacy(p));

	assert_int_equal(storage_prepare(p, f->base, &(struct storage_disk){ .project = project }), 0);
	assert_false(storage_layer_is_legacy(p));
	tu_assert_absent(p->dir, "layer");
	assert_int_equal(project_of(p->layer, ""), project);
	assert_int_equal(project_of(p->upper, ""), project);
	assert_int_equal(project_of(p->work, ""), project);
	assert_int_equal(project_of(p->upper, "old"), project);
	tu_join(path, sizeof(path), p->upper, "etc");
	assert_int_equal(getxattr(path, "trusted.overlay.opaque", (char[4]){ 0 }, 4), 1);
	tu_join(path, sizeof(path), p->upper, "gone");
	{
		struct stat st;

		assert_int_equal(lstat(path, &st), 0);
		assert_true(S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0));
	}
	fd = open(p->layer, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_true(quota_enforced(fd));
	assert_int_equal(quota_get(fd, project, &use), 0);
	assert_true(use.bytes >= 2u << 20);
	assert_true(use.limit == QUOTA_NONE);

	/* 8 MiB: a write through the overlay stops at it, df shows it. */
	assert_int_equal(quota_set_limit(fd, project, 8u << 20), 0);
	assert_int_equal(storage_mount(p, f->template, f->base), 0);
	assert_int_equal(statfs(p->rootfs, &sfs), 0);
	assert_true((uint64_t)sfs.f_blocks * sfs.f_bsize == 8u << 20);
	assert_int_equal(write_mib(p->rootfs, "big", 16), EDQUOT);
	assert_int_equal(project_of(p->upper, "big"), project);
	assert_int_equal(quota_get(fd, project, &use), 0);
	assert_true(use.bytes <= 8u << 20);
	assert_true(use.limit == 8u << 20);

	/* Raised while mounted: the next write goes through. */
	assert_int_equal(quota_set_limit(fd, project, 64u << 20), 0);
	assert_int_equal(write_mib(p->rootfs, "big", 16), 0);
	assert_int_equal(statfs(p->rootfs, &sfs), 0);
	assert_true((uint64_t)sfs.f_blocks * sfs.f_bsize == 64u << 20);

	/* Root of another user namespace, owner of the file: may change its
	 * flags, not its project nor a directory's inheritance. */
	tu_join(path, sizeof(path), p->rootfs, "big");
	assert_int_equal(chown(path, 0, 0), 0);
	assert_int_equal(setxattr_in_userns(path, set_noatime), 0);
	assert_int_equal(setxattr_in_userns(path, change_project), EINVAL);
	assert_int_equal(project_of(p->upper, "big"), project);
	tu_join(path, sizeof(path), p->rootfs, "newdir");
	assert_int_equal(mkdir(path, 0755), 0);
	assert_int_equal(setxattr_in_userns(path, drop_inherit), EINVAL);
	assert_int_equal(project_of(p->upper, "newdir"), project);
	assert_int_equal(storage_unmount(p), 0);

	/* After a reboot (unmounted, loop device gone): mounted again, the
	 * files and the quota where they were. */
	close(fd);
	fd = -EBADF;
	assert_int_equal(umount2(layers, 0), 0);
	tu_assert_absent(layers, "alice");
	assert_int_equal(pool_setup(&cfg), 0);
	assert_int_equal(count_mounts(layers), 1);
	assert_int_equal(project_of(p->upper, "old"), project);
	fd = open(p->layer, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_int_equal(quota_get(fd, project, &use), 0);
	assert_true(use.limit == 64u << 20);
	assert_true(use.bytes >= 18u << 20);

	/* A larger size asked for: grown at the next start, online. */
	cfg.layers_pool_size = 400ull << 20;
	assert_int_equal(pool_setup(&cfg), 0);
	assert_int_equal(statfs(layers, &sfs), 0);
	assert_true((uint64_t)sfs.f_blocks * sfs.f_bsize > 320ull << 20);
}

/* Usable bytes of the file system at path. */
static uint64_t fs_size(const char *path)
{
	struct statfs sfs;

	assert_int_equal(statfs(path, &sfs), 0);
	return (uint64_t)sfs.f_blocks * sfs.f_bsize;
}

/*
 * A layer in an image of its own (where the layers have no project
 * quotas): what the layer held is copied in, df shows the limit, a write
 * past it gets ENOSPC, a larger limit applies at once and a smaller one
 * at the next prepare, the image is mounted again after a reboot, and
 * removing the layer takes the image too.
 */
static void test_layer_image(void **state)
{
	struct fixture *f = *state;
	struct storage_paths *p = &f->paths;
	const uint64_t mib = 1ull << 20;
	struct storage_disk disk = { .image_bytes = 64 * mib };
	struct quota_usage use;
	struct stat st;
	char path[PATH_MAX];
	bool later;

	/* Made before any limit: a plain directory with a file. */
	assert_int_equal(storage_prepare(p, f->base, NULL), 0);
	assert_false(layerimg_exists(p));
	assert_int_equal(write_mib(p->upper, "before", 2), 0);

	assert_int_equal(storage_prepare(p, f->base, &disk), 0);
	assert_true(layerimg_exists(p));
	assert_true(layerimg_mounted(p));
	tu_join(path, sizeof(path), p->upper, "before");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 2 * mib);
	tu_assert_owner(p->layer, "upper", f->base, f->base, 0755);
	tu_assert_owner(p->pool_layer, "", 0, f->base, 0710);

	/* df through the overlay shows the limit; a write past it stops. */
	assert_int_equal(storage_mount(p, f->template, f->base), 0);
	assert_true(fs_size(p->rootfs) >= 64 * mib && fs_size(p->rootfs) < 65 * mib);
	assert_int_equal(write_mib(p->rootfs, "big", 80), ENOSPC);
	assert_int_equal(layerimg_usage(p, &use), 0);
	assert_true(use.bytes > 60 * mib && use.limit == fs_size(p->rootfs));

	/* Raised while in use: at once where the kernel lets the agent
	 * resize a mounted file system (CAP_SYS_RESOURCE), else at the next
	 * prepare; lowered: at the next prepare. */
	assert_int_equal(layerimg_grow_live(p, 128 * mib, &later), 0);
	if (later) {
		print_message("no CAP_SYS_RESOURCE: the image grows at the next prepare\n");
		assert_int_equal(storage_unmount(p), 0);
		disk.image_bytes = 128 * mib;
		assert_int_equal(storage_prepare(p, f->base, &disk), 0);
		assert_int_equal(storage_mount(p, f->template, f->base), 0);
	}
	assert_true(fs_size(p->rootfs) >= 128 * mib && fs_size(p->rootfs) < 129 * mib);
	assert_int_equal(write_mib(p->rootfs, "big", 80), 0);
	assert_int_equal(layerimg_grow_live(p, 96 * mib, &later), 0);
	assert_true(later);
	assert_int_equal(storage_unmount(p), 0);
	/* Not below what it holds: kept as it was, still mounted. */
	disk.image_bytes = 64 * mib;
	assert_int_equal(storage_prepare(p, f->base, &disk), 0);
	assert_true(layerimg_mounted(p));
	assert_true(fs_size(p->layer) >= 128 * mib);
	tu_join(path, sizeof(path), p->upper, "big");
	assert_int_equal(unlink(path), 0);
	assert_int_equal(storage_prepare(p, f->base, &disk), 0);
	assert_true(fs_size(p->layer) >= 64 * mib && fs_size(p->layer) < 65 * mib);
	tu_join(path, sizeof(path), p->upper, "before");
	assert_int_equal(stat(path, &st), 0);

	/* A reboot: mounted again, as it is, before anything reads it. */
	assert_int_equal(umount2(p->pool_layer, 0), 0);
	assert_false(layerimg_mounted(p));
	assert_true(layerimg_in_use(f->state));
	assert_int_equal(layerimg_prepare(p, 0), 0);
	assert_true(layerimg_mounted(p));
	assert_int_equal(count_mounts(p->pool_layer), 1);
	assert_int_equal(stat(path, &st), 0);

	assert_int_equal(storage_remove_layer(p), 0);
	assert_false(layerimg_mounted(p));
	assert_false(layerimg_exists(p));
	tu_assert_absent(f->state, "layers/alice");
}

/* A btrfs file system of 256 MiB on a loop device at <state>/layers, as a
 * server whose layers are on btrfs has; false (and why) where it cannot be. */
static bool mount_btrfs_layers(struct fixture *f)
{
	char image[PATH_MAX], layers[PATH_MAX];
	const char *mkfs[] = { "mkfs.btrfs", "-q", "-f", image, NULL };
	const char *mnt[] = { "mount", "-o", "loop", image, layers, NULL };
	__do_close int fd = -EBADF;

	if (access("/sbin/mkfs.btrfs", X_OK) < 0 && access("/usr/sbin/mkfs.btrfs", X_OK) < 0) {
		print_message("mkfs.btrfs is missing (btrfs-progs; scripts/install-deps --test): skipped\n");
		return false;
	}
	tu_join(image, sizeof(image), f->top, "btrfs.img");
	tu_join(layers, sizeof(layers), f->state, "layers");
	fd = open(image, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 256ll << 20), 0);
	assert_true(mkdir(layers, 0711) == 0 || errno == EEXIST);
	assert_int_equal(spawn_run(mkfs, NULL), 0);
	if (spawn_run(mnt, NULL) != 0) {
		print_message("this kernel cannot mount btrfs: skipped\n");
		return false;
	}
	return true;
}

/* Local snapshots (localsnap.c): a layer on btrfs is a subvolume; the
 * overlay works in it; a snapshot keeps the files as they were, whiteouts
 * and owners included; a restore's reflinked copy gets them back; a
 * removed snapshot is gone, and so is a layer holding one. */
static void test_local_snapshot(void **state)
{
	struct fixture *f = *state;
	struct storage_paths *p = &f->paths;
	uint32_t base = f->base;
	char why[256] = "", upper[PATH_MAX], back[PATH_MAX];
	struct stat st;

	/* Elsewhere: refused, with the reason. */
	assert_int_equal(storage_prepare(p, base, NULL), 0);
	assert_int_equal(localsnap_supported(p, why, sizeof(why)), -EOPNOTSUPP);
	assert_non_null(strstr(why, "btrfs"));
	assert_int_equal(storage_remove_layer(p), 0);

	if (!mount_btrfs_layers(f))
		skip();
	assert_int_equal(storage_prepare(p, base, NULL), 0);
	{
		__do_close int fd = tu_open_dir(p->layer);

		assert_true(localsnap_is_subvolume_fd(fd));
	}
	assert_int_equal(localsnap_supported(p, why, sizeof(why)), 0);

	/* Copy-up and whiteouts rename from work into upper: one subvolume. */
	assert_int_equal(storage_mount(p, f->template, base), 0);
	assert_int_equal(tu_make_file(p->rootfs, "etc/hostname", "changed\n", base, base, 0644), 0);
	assert_int_equal(tu_make_file(p->rootfs, "new-file", "mine\n", base + 1000, base + 1000, 0600), 0);
	tu_join(back, sizeof(back), p->rootfs, "etc/shadow");
	assert_int_equal(unlink(back), 0);

	assert_int_equal(localsnap_take(p, "s1"), 0);
	assert_int_equal(localsnap_take(p, "s1"), -EEXIST);
	tu_assert_owner(p->layer, "local", 0, 0, 0700);
	/* Changed after the snapshot: the snapshot keeps what was. */
	assert_int_equal(tu_make_file(p->rootfs, "etc/hostname", "later\n", base, base, 0644), 0);
	tu_join(back, sizeof(back), p->rootfs, "new-file");
	assert_int_equal(unlink(back), 0);
	assert_int_equal(storage_unmount(p), 0);

	assert_int_equal(localsnap_upper(p, "s1", upper, sizeof(upper)), 0);
	tu_assert_text(upper, "etc/hostname", "changed\n");
	tu_assert_owner(upper, "new-file", base + 1000, base + 1000, 0600);
	tu_join(back, sizeof(back), upper, "etc/shadow");
	assert_int_equal(lstat(back, &st), 0);
	assert_true(S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0));

	/* A restore's copy: the same files, the same whiteout. */
	tu_join(back, sizeof(back), p->layer, "upper.restore");
	assert_int_equal(mkdir(back, 0755), 0);
	assert_int_equal(storage_copy_tree(upper, back), 0);
	tu_assert_text(back, "etc/hostname", "changed\n");
	tu_assert_owner(back, "new-file", base + 1000, base + 1000, 0600);
	tu_assert_owner(back, "", base, base, 0755);
	tu_join(why, sizeof(why), back, "etc/shadow");
	assert_int_equal(lstat(why, &st), 0);
	assert_true(S_ISCHR(st.st_mode));

	assert_int_equal(localsnap_remove(p, "s1"), 0);
	tu_assert_absent(p->layer, "local/s1");
	assert_int_equal(localsnap_remove(p, "s1"), 0);

	/* A layer holding a snapshot is removed whole. */
	assert_int_equal(localsnap_take(p, "s2"), 0);
	assert_int_equal(storage_remove_layer(p), 0);
	tu_assert_absent(f->state, "layers/alice");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_paths),
		cmocka_unit_test_setup_teardown(test_prepare, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mount_cycle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mount_extra_layers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy_and_leftovers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cost_does_not_grow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_legacy_layer_moved, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retire_and_remove, setup, teardown),
		cmocka_unit_test(test_pure_sizes),
		cmocka_unit_test_setup_teardown(test_quota_pool, setup, teardown),
		cmocka_unit_test_setup_teardown(test_layer_image, setup, teardown),
		cmocka_unit_test_setup_teardown(test_local_snapshot, setup, teardown),
	};

	if (!tu_have_root("test_storage"))
		return TU_SKIP;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
