/* SPDX-License-Identifier: MIT */
/* rootfs.c: confined writes into a tree whose owner may plant symbolic links.  Run as root. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "container/rootfs.h"
#include "cleanup.h"
#include "testutil.h"
#include "banned.h"

struct fixture {
	char top[64];            /* mkdtemp */
	char root[PATH_MAX];     /* top/root: the container's tree */
	char outside[128];       /* top/outside: must never be written */
	int rootfd;
};

/* A new directory of the tree, root's, mode 0755. */
static void make_dir(struct fixture *f, const char *rel)
{
	assert_int_equal(tu_make_dir(f->root, rel, 0, 0, 0755), 0);
}

/* outside/ holds exactly one file, "sentinel", unchanged. */
static void assert_outside_untouched(struct fixture *f)
{
	assert_int_equal(tu_count_entries(f->outside), 1);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	if (tu_make_tempdir(f->top, sizeof(f->top), "/tmp/gpubox-test-rootfs-XXXXXX") < 0)
		return -1;
	snprintf(f->root, sizeof(f->root), "%s/root", f->top);
	snprintf(f->outside, sizeof(f->outside), "%s/outside", f->top);
	if (mkdir(f->root, 0755) < 0 || mkdir(f->outside, 0755) < 0)
		return -1;
	assert_int_equal(tu_make_file(f->outside, "sentinel", "outside\n", 0, 0, 0644), 0);
	f->rootfd = rootfs_open(f->root);
	if (f->rootfd < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (!f)
		return 0;
	if (f->rootfd >= 0)
		close(f->rootfd);
	tu_remove_tempdir(f->top);
	free(f);
	return 0;
}

static void test_write_and_read(void **state)
{
	struct fixture *f = *state;
	__do_free char *data = NULL;
	char path[PATH_MAX];
	struct stat st;
	size_t len;

	assert_int_equal(rootfs_mkdir(f->rootfd, "etc", 0755, 1000000, 1000000), 0);
	assert_int_equal(rootfs_write_file(f->rootfd, "etc/hostname", "box\n", 4, 0644, 1000000, 1000042), 0);
	tu_join(path, sizeof(path), f->root, "etc/hostname");
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_int_equal(st.st_uid, 1000000);
	assert_int_equal(st.st_gid, 1000042);

	/* Replaced atomically, new owner and mode. */
	assert_int_equal(rootfs_write_file(f->rootfd, "etc/hostname", "other\n", 6, 0600, 1001000, 1001000), 0);
	assert_int_equal(rootfs_read_file(f->rootfd, "etc/hostname", 100, &data, &len), 0);
	assert_int_equal(len, 6);
	assert_string_equal(data, "other\n");
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_uid, 1001000);

	/* A setuid mode survives the chown. */
	assert_int_equal(rootfs_write_file(f->rootfd, "etc/suid", "x", 1, 04755, 1000000, 1000000), 0);
	tu_join(path, sizeof(path), f->root, "etc/suid");
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 04755);

	/* No temporary file left behind. */
	{
		__do_closedir DIR *d = NULL;
		struct dirent *e;
		char etc[PATH_MAX];

		tu_join(etc, sizeof(etc), f->root, "etc");
		d = opendir(etc);
		assert_non_null(d);
		while ((e = readdir(d)))
			assert_false(strncmp(e->d_name, ".gpubox-", 8) == 0);
	}

	assert_int_equal(rootfs_stat(f->rootfd, "etc/hostname", &st), 0);
	assert_int_equal(rootfs_stat(f->rootfd, "etc/absent", &st), -ENOENT);
	assert_int_equal(rootfs_unlink(f->rootfd, "etc/hostname"), 0);
	assert_int_equal(rootfs_unlink(f->rootfd, "etc/hostname"), 0);
	assert_int_equal(rootfs_stat(f->rootfd, "etc/hostname", &st), -ENOENT);
}

static void test_mkdir(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX];
	struct stat st;

	make_dir(f, "home");
	assert_int_equal(rootfs_mkdir(f->rootfd, "home/x/.ssh", 0700, 1001000, 1001000), 0);
	/* Existing intermediate untouched; created ones and the last one set. */
	tu_join(path, sizeof(path), f->root, "home");
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_uid, 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	tu_join(path, sizeof(path), f->root, "home/x");
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_uid, 1001000);
	assert_int_equal(st.st_mode & 07777, 0700);
	tu_join(path, sizeof(path), f->root, "home/x/.ssh");
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_uid, 1001000);
	assert_int_equal(st.st_gid, 1001000);
	assert_int_equal(st.st_mode & 07777, 0700);

	/* The last one is reset when it exists already. */
	assert_int_equal(chmod(path, 0777), 0);
	assert_int_equal(rootfs_mkdir(f->rootfd, "home/x/.ssh", 0700, 1001000, 1001000), 0);
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);

	/* A regular file in the way. */
	assert_int_equal(tu_make_file(f->root, "home/file", "x", 0, 0, 0644), 0);
	assert_int_equal(rootfs_mkdir(f->rootfd, "home/file", 0755, 0, 0), -ENOTDIR);
	assert_int_equal(rootfs_mkdir(f->rootfd, "home/file/sub", 0755, 0, 0), -ENOTDIR);
}

static void test_symlink_in_the_middle(void **state)
{
	struct fixture *f = *state;
	char target[PATH_MAX];

	/* The classic: ~/.ssh -> /etc (here: a directory outside the tree). */
	make_dir(f, "home");
	make_dir(f, "home/x");
	tu_make_link(f->root, "home/x/.ssh", f->outside);

	assert_int_equal(rootfs_mkdir(f->rootfd, "home/x/.ssh", 0700, 1001000, 1001000), -ELOOP);
	assert_int_equal(rootfs_write_file(f->rootfd, "home/x/.ssh/authorized_keys", "k\n", 2, 0600,
					   1001000, 1001000), -ELOOP);
	assert_int_equal(rootfs_write_file(f->rootfd, "home/x/.ssh/sentinel", "k\n", 2, 0600,
					   1001000, 1001000), -ELOOP);
	assert_int_equal(rootfs_unlink(f->rootfd, "home/x/.ssh/sentinel"), -ELOOP);
	{
		char *data = NULL;

		assert_int_equal(rootfs_read_file(f->rootfd, "home/x/.ssh/sentinel", 100, &data, NULL), -ELOOP);
		assert_null(data);
	}

	/* A relative link that stays inside the tree is refused too. */
	make_dir(f, "etc");
	tu_make_link(f->root, "etc2", "etc");
	assert_int_equal(rootfs_write_file(f->rootfd, "etc2/passwd", "x", 1, 0644, 0, 0), -ELOOP);
	assert_int_equal(rootfs_mkdir(f->rootfd, "etc2/sub", 0755, 0, 0), -ELOOP);

	/* An absolute link to "/". */
	tu_make_link(f->root, "slash", "/");
	tu_join(target, sizeof(target), f->outside + 1, "evil");
	assert_int_equal(rootfs_mkdir(f->rootfd, "slash/tmp", 0755, 0, 0), -ELOOP);
	{
		char rel[PATH_MAX];

		tu_join(rel, sizeof(rel), "slash", target);
		assert_int_equal(rootfs_write_file(f->rootfd, rel, "x", 1, 0644, 0, 0), -ELOOP);
	}
	assert_outside_untouched(f);
}

static void test_symlink_at_the_end(void **state)
{
	struct fixture *f = *state;
	char sentinel[PATH_MAX];
	__do_free char *data = NULL;
	struct stat st;

	make_dir(f, "etc");
	tu_join(sentinel, sizeof(sentinel), f->outside, "sentinel");
	tu_make_link(f->root, "etc/passwd", sentinel);

	assert_int_equal(rootfs_write_file(f->rootfd, "etc/passwd", "x\n", 2, 0644, 0, 0), -ELOOP);
	assert_int_equal(rootfs_read_file(f->rootfd, "etc/passwd", 100, &data, NULL), -ELOOP);
	assert_int_equal(rootfs_stat(f->rootfd, "etc/passwd", &st), -ELOOP);
	assert_int_equal(rootfs_mkdir(f->rootfd, "etc/passwd", 0755, 0, 0), -ELOOP);
	/* A dangling link is still a link. */
	tu_make_link(f->root, "etc/shadow", "/nonexistent/gpubox");
	assert_int_equal(rootfs_write_file(f->rootfd, "etc/shadow", "x\n", 2, 0640, 0, 0), -ELOOP);
	assert_int_equal(rootfs_mkdir(f->rootfd, "etc/shadow", 0755, 0, 0), -ELOOP);
	/* Removing the link removes the link, not its target. */
	assert_int_equal(rootfs_unlink(f->rootfd, "etc/passwd"), 0);
	tu_assert_absent(f->root, "etc/passwd");
	assert_int_equal(lstat(sentinel, &st), 0);

	assert_outside_untouched(f);
	assert_int_equal(lstat(sentinel, &st), 0);
	assert_int_equal(st.st_size, 8);
}

static void test_dotdot_and_absolute(void **state)
{
	struct fixture *f = *state;
	__do_free char *data = NULL;

	make_dir(f, "etc");
	assert_int_equal(rootfs_write_file(f->rootfd, "../outside/evil", "x", 1, 0644, 0, 0), -EXDEV);
	assert_int_equal(rootfs_write_file(f->rootfd, "etc/../../outside/evil", "x", 1, 0644, 0, 0), -EXDEV);
	assert_int_equal(rootfs_read_file(f->rootfd, "../outside/sentinel", 100, &data, NULL), -EXDEV);
	assert_int_equal(rootfs_mkdir(f->rootfd, "../outside/evil", 0755, 0, 0), -EXDEV);
	assert_int_equal(rootfs_unlink(f->rootfd, "../outside/sentinel"), -EXDEV);
	assert_int_equal(rootfs_write_file(f->rootfd, "/etc/evil", "x", 1, 0644, 0, 0), -EINVAL);
	assert_int_equal(rootfs_write_file(f->rootfd, "etc/..", "x", 1, 0644, 0, 0), -EINVAL);
	assert_int_equal(rootfs_write_file(f->rootfd, "", "x", 1, 0644, 0, 0), -EINVAL);
	assert_int_equal(rootfs_write_file(f->rootfd, "etc/", "x", 1, 0644, 0, 0), -EINVAL);
	/* ".." that stays beneath the root is fine for openat2, and harmless. */
	assert_int_equal(rootfs_write_file(f->rootfd, "etc/../etc/ok", "x", 1, 0644, 0, 0), 0);
	assert_outside_untouched(f);
}

static void test_read_limits(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX];
	char *data = NULL;
	size_t len;

	make_dir(f, "etc");
	assert_int_equal(rootfs_write_file(f->rootfd, "etc/big", "0123456789", 10, 0644, 0, 0), 0);
	assert_int_equal(rootfs_read_file(f->rootfd, "etc/big", 9, &data, &len), -EFBIG);
	assert_null(data);
	assert_int_equal(rootfs_read_file(f->rootfd, "etc/big", 10, &data, &len), 0);
	assert_int_equal(len, 10);
	free(data);
	data = NULL;

	/* A FIFO must not block the agent. */
	tu_join(path, sizeof(path), f->root, "etc/fifo");
	assert_int_equal(mkfifo(path, 0644), 0);
	assert_int_equal(rootfs_read_file(f->rootfd, "etc/fifo", 100, &data, &len), -EINVAL);
	/* A directory is not a file. */
	assert_int_equal(rootfs_read_file(f->rootfd, "etc", 100, &data, &len), -EINVAL);
	assert_int_equal(rootfs_write_file(f->rootfd, "etc", "x", 1, 0644, 0, 0) < 0, 1);
	assert_null(data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_write_and_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mkdir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlink_in_the_middle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlink_at_the_end, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dotdot_and_absolute, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_limits, setup, teardown),
	};

	if (!tu_have_root("test_rootfs"))
		return TU_SKIP;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
