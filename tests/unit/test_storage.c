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
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "container/container.h"
#include "cleanup.h"
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
		umount2(f->paths.rootfs, MNT_DETACH);
		umount2(f->paths.lower, MNT_DETACH);
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
	assert_string_equal(p.upper, "/var/lib/gpubox/users/alice/layer/upper");
	assert_string_equal(p.work, "/var/lib/gpubox/users/alice/layer/work");
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

	assert_int_equal(storage_prepare(&f->paths, f->base), 0);
	assert_int_equal(storage_prepare(&f->paths, f->base), 0);
	tu_join(users, sizeof(users), f->state, "users");
	tu_assert_owner(users, "", 0, 0, 0711);
	tu_assert_owner(f->paths.dir, "", 0, f->base, 0710);
	tu_assert_owner(f->paths.upper, "", f->base, f->base, 0755);
	tu_assert_owner(f->paths.work, "", 0, 0, 0700);
	tu_assert_owner(f->paths.lower, "", 0, 0, 0700);
	tu_assert_owner(f->paths.rootfs, "", 0, 0, 0755);
	assert_false(storage_is_mounted(&f->paths));
	assert_int_equal(storage_prepare(&f->paths, 0), -ERANGE);
}

static void test_mount_cycle(void **state)
{
	struct fixture *f = *state;
	const struct storage_paths *p = &f->paths;
	uint32_t base = f->base;
	int fds = tu_count_entries("/proc/self/fd");

	assert_int_equal(storage_prepare(p, base), 0);
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

	/* Wipe: back to the template. */
	assert_int_equal(chmod(p->upper, 0777), 0);
	assert_int_equal(storage_wipe(p, base), 0);
	assert_int_equal(tu_count_entries(p->upper), 0);
	assert_int_equal(tu_count_entries(p->work), 0);
	tu_assert_owner(p->upper, "", base, base, 0755);
	assert_int_equal(storage_wipe(p, base), 0);

	assert_int_equal(storage_prepare(p, base), 0);
	assert_int_equal(storage_mount(p, f->template, base), 0);
	tu_assert_absent(p->rootfs, "new-file");
	tu_assert_text(p->rootfs, "etc/hostname", "template\n");
	assert_int_equal(storage_unmount(p), 0);
	assert_template_untouched(f);
}

static void test_busy_and_leftovers(void **state)
{
	struct fixture *f = *state;
	const struct storage_paths *p = &f->paths;
	char path[PATH_MAX];
	int fd;

	assert_int_equal(storage_prepare(p, f->base), 0);
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
	const struct storage_paths *p = &f->paths;
	char dir[PATH_MAX], name[64];

	/* A bigger template: creating a container still writes nothing but
	 * the member's own (empty) directories. */
	tu_join(dir, sizeof(dir), f->template, "usr");
	assert_int_equal(mkdir(dir, 0755), 0);
	for (int i = 0; i < 200; i++) {
		snprintf(name, sizeof(name), "file%d", i);
		assert_int_equal(tu_make_file(dir, name, "x\n", 0, 0, 0644), 0);
	}
	assert_int_equal(storage_prepare(p, f->base), 0);
	assert_int_equal(storage_mount(p, f->template, f->base), 0);
	tu_assert_owner(p->rootfs, "usr/file199", f->base, f->base, 0644);
	assert_int_equal(tu_count_entries(p->upper), 0);
	assert_int_equal(storage_unmount(p), 0);
	tu_assert_owner(f->template, "usr/file199", 0, 0, 0644);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_paths),
		cmocka_unit_test_setup_teardown(test_prepare, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mount_cycle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy_and_leftovers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cost_does_not_grow, setup, teardown),
	};

	if (!tu_have_root("test_storage"))
		return TU_SKIP;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
