/* SPDX-License-Identifier: MIT */
/* rootfs.c: confined writes into a tree whose owner may plant symbolic links.  Run as root. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
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

#include "agent.h"
#include "cleanup.h"
#include "banned.h"

struct fixture {
	char top[64];            /* mkdtemp */
	char root[PATH_MAX];     /* top/root: the container's tree */
	char outside[128];       /* top/outside: must never be written */
	int rootfd;
};

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

static void remove_tree(const char *path)
{
	nftw(path, remove_entry, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

static void path_join(char *buf, size_t len, const char *a, const char *b)
{
	int n = snprintf(buf, len, "%s/%s", a, b);

	assert_true(n > 0 && (size_t)n < len);
}

static void make_dir(struct fixture *f, const char *rel)
{
	char path[PATH_MAX];

	path_join(path, sizeof(path), f->root, rel);
	assert_int_equal(mkdir(path, 0755), 0);
}

static void make_link(struct fixture *f, const char *rel, const char *target)
{
	char path[PATH_MAX];

	path_join(path, sizeof(path), f->root, rel);
	assert_int_equal(symlink(target, path), 0);
}

static void make_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/* outside/ holds exactly one file, "sentinel", unchanged. */
static void assert_outside_untouched(struct fixture *f)
{
	__do_closedir DIR *d = opendir(f->outside);
	struct dirent *e;
	int count = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			count++;
	assert_int_equal(count, 1);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char sentinel[PATH_MAX];

	if (!f)
		return -1;
	snprintf(f->top, sizeof(f->top), "/tmp/gpubox-test-rootfs-XXXXXX");
	if (!mkdtemp(f->top))
		return -1;
	snprintf(f->root, sizeof(f->root), "%s/root", f->top);
	snprintf(f->outside, sizeof(f->outside), "%s/outside", f->top);
	if (mkdir(f->root, 0755) < 0 || mkdir(f->outside, 0755) < 0)
		return -1;
	snprintf(sentinel, sizeof(sentinel), "%s/sentinel", f->outside);
	make_file(sentinel, "outside\n");
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
	remove_tree(f->top);
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
	path_join(path, sizeof(path), f->root, "etc/hostname");
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
	path_join(path, sizeof(path), f->root, "etc/suid");
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 04755);

	/* No temporary file left behind. */
	{
		__do_closedir DIR *d = NULL;
		struct dirent *e;
		char etc[PATH_MAX];

		path_join(etc, sizeof(etc), f->root, "etc");
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
	path_join(path, sizeof(path), f->root, "home");
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_uid, 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	path_join(path, sizeof(path), f->root, "home/x");
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_uid, 1001000);
	assert_int_equal(st.st_mode & 07777, 0700);
	path_join(path, sizeof(path), f->root, "home/x/.ssh");
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
	path_join(path, sizeof(path), f->root, "home/file");
	make_file(path, "x");
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
	make_link(f, "home/x/.ssh", f->outside);

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
	make_link(f, "etc2", "etc");
	assert_int_equal(rootfs_write_file(f->rootfd, "etc2/passwd", "x", 1, 0644, 0, 0), -ELOOP);
	assert_int_equal(rootfs_mkdir(f->rootfd, "etc2/sub", 0755, 0, 0), -ELOOP);

	/* An absolute link to "/". */
	make_link(f, "slash", "/");
	path_join(target, sizeof(target), f->outside + 1, "evil");
	assert_int_equal(rootfs_mkdir(f->rootfd, "slash/tmp", 0755, 0, 0), -ELOOP);
	{
		char rel[PATH_MAX];

		path_join(rel, sizeof(rel), "slash", target);
		assert_int_equal(rootfs_write_file(f->rootfd, rel, "x", 1, 0644, 0, 0), -ELOOP);
	}
	assert_outside_untouched(f);
}

static void test_symlink_at_the_end(void **state)
{
	struct fixture *f = *state;
	char sentinel[PATH_MAX], path[PATH_MAX];
	__do_free char *data = NULL;
	struct stat st;

	make_dir(f, "etc");
	path_join(sentinel, sizeof(sentinel), f->outside, "sentinel");
	make_link(f, "etc/passwd", sentinel);

	assert_int_equal(rootfs_write_file(f->rootfd, "etc/passwd", "x\n", 2, 0644, 0, 0), -ELOOP);
	assert_int_equal(rootfs_read_file(f->rootfd, "etc/passwd", 100, &data, NULL), -ELOOP);
	assert_int_equal(rootfs_stat(f->rootfd, "etc/passwd", &st), -ELOOP);
	assert_int_equal(rootfs_mkdir(f->rootfd, "etc/passwd", 0755, 0, 0), -ELOOP);
	/* A dangling link is still a link. */
	make_link(f, "etc/shadow", "/nonexistent/gpubox");
	assert_int_equal(rootfs_write_file(f->rootfd, "etc/shadow", "x\n", 2, 0640, 0, 0), -ELOOP);
	assert_int_equal(rootfs_mkdir(f->rootfd, "etc/shadow", 0755, 0, 0), -ELOOP);
	/* Removing the link removes the link, not its target. */
	assert_int_equal(rootfs_unlink(f->rootfd, "etc/passwd"), 0);
	path_join(path, sizeof(path), f->root, "etc/passwd");
	assert_int_equal(lstat(path, &st), -1);
	assert_int_equal(errno, ENOENT);
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
	path_join(path, sizeof(path), f->root, "etc/fifo");
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

	if (geteuid() != 0) {
		fprintf(stderr, "test_rootfs: needs root, skipped\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
