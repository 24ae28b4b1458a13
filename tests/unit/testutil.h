/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the unit tests: paths below a directory, files,
 * directories and links made with a given owner and mode, checks on them,
 * the temporary directory a fixture works in, and the guards of tests that
 * need root or a network namespace.  All static inline, so that each test
 * takes what it uses.  Include it before "banned.h".
 */
#ifndef GPUBOX_TESTUTIL_H
#define GPUBOX_TESTUTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cleanup.h"
#include "fsutil.h"

/* The exit status that tells meson a test was skipped. */
#define TU_SKIP 77

/* buf = a/b; the test fails if it does not fit. */
static inline void tu_join(char *buf, size_t len, const char *a, const char *b)
{
	int n = snprintf(buf, len, "%s/%s", a, b);

	assert_true(n > 0 && (size_t)n < len);
}

/* A new directory named after tmpl (ending in XXXXXX) in buf; on failure
 * buf is left empty, so that tu_remove_tempdir() does nothing.  0 or -1. */
static inline int tu_make_tempdir(char *buf, size_t len, const char *tmpl)
{
	int n = snprintf(buf, len, "%s", tmpl);

	if (n < 0 || (size_t)n >= len || !mkdtemp(buf)) {
		buf[0] = '\0';
		return -1;
	}
	return 0;
}

/* A fixture's cleanup: dir and all below it, never crossing into a mount
 * that a failed test left behind (fsutil_remove_tree() stops there). */
static inline void tu_remove_tempdir(const char *dir)
{
	if (dir[0])
		fsutil_remove_tree(dir);
}

/* Write text to dir/rel, created or truncated in place, then give it uid:gid
 * and mode (after the chown, which may clear set-id bits).  0 or -1. */
static inline int tu_make_file(const char *dir, const char *rel, const char *text, uid_t uid, gid_t gid,
			       mode_t mode)
{
	__do_close int fd = -EBADF;
	char path[PATH_MAX];

	tu_join(path, sizeof(path), dir, rel);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -1;
	if (fsutil_write_all(fd, text, strlen(text)) < 0 || fchown(fd, uid, gid) < 0 || fchmod(fd, mode) < 0)
		return -1;
	return 0;
}

/* Write text to dir/rel with mode 0644 and the caller's ids (atomically,
 * with fsutil_write_atomic()): for tests that need not run as root. */
static inline void tu_write_file(const char *dir, const char *rel, const char *text)
{
	char path[PATH_MAX];

	tu_join(path, sizeof(path), dir, rel);
	assert_int_equal(fsutil_write_atomic(path, text, strlen(text), 0644), 0);
}

/* Make the directory dir/rel, which must not exist yet, owned by uid:gid
 * with mode (whatever the umask).  0 or -1. */
static inline int tu_make_dir(const char *dir, const char *rel, uid_t uid, gid_t gid, mode_t mode)
{
	char path[PATH_MAX];

	tu_join(path, sizeof(path), dir, rel);
	if (mkdir(path, mode) < 0 || chown(path, uid, gid) < 0 || chmod(path, mode) < 0)
		return -1;
	return 0;
}

/* A symbolic link dir/rel to target. */
static inline void tu_make_link(const char *dir, const char *rel, const char *target)
{
	char path[PATH_MAX];

	tu_join(path, sizeof(path), dir, rel);
	assert_int_equal(symlink(target, path), 0);
}

/* A read-only descriptor of the directory at path, for the *at() calls. */
static inline int tu_open_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	assert_true(fd >= 0);
	return fd;
}

/* The whole of dir/rel (1 MiB at most), NUL-terminated; the caller frees it.
 * Not inline: inlined, gcc's -Wdangling-pointer takes the text returned for
 * a pointer to the local that fsutil_read_file() fills in. */
__attribute__((unused)) static char *tu_read_text(const char *dir, const char *rel)
{
	char path[PATH_MAX];
	char *data = NULL;

	tu_join(path, sizeof(path), dir, rel);
	assert_int_equal(fsutil_read_file(path, 1 << 20, &data, NULL), 0);
	return data;
}

/* dir/rel holds exactly text. */
static inline void tu_assert_text(const char *dir, const char *rel, const char *text)
{
	__do_free char *data = tu_read_text(dir, rel);

	assert_string_equal(data, text);
}

/* dir/rel itself (a link not followed) is owned by uid:gid, with mode as its
 * permission and set-id bits. */
static inline void tu_assert_owner(const char *dir, const char *rel, uid_t uid, gid_t gid, mode_t mode)
{
	char path[PATH_MAX];
	struct stat st;

	tu_join(path, sizeof(path), dir, rel);
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_uid, uid);
	assert_int_equal(st.st_gid, gid);
	assert_int_equal(st.st_mode & 07777, mode);
}

/* Nothing at dir/rel, not even a dangling link. */
static inline void tu_assert_absent(const char *dir, const char *rel)
{
	char path[PATH_MAX];
	struct stat st;

	tu_join(path, sizeof(path), dir, rel);
	assert_int_equal(lstat(path, &st), -1);
	assert_int_equal(errno, ENOENT);
}

/* How many entries the directory at path holds, "." and ".." aside; -1 if
 * it cannot be read. */
static inline int tu_count_entries(const char *path)
{
	__do_closedir DIR *d = opendir(path);
	struct dirent *e;
	int count = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			count++;
	return count;
}

/* How many times needle occurs in text, overlapping occurrences included. */
static inline size_t tu_count_substr(const char *text, const char *needle)
{
	size_t count = 0;

	for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
		count++;
	return count;
}

/* Whether the test runs as root; if not it says so, and main() returns
 * TU_SKIP. */
static inline bool tu_have_root(const char *prog)
{
	if (geteuid() == 0)
		return true;
	fprintf(stderr, "%s: needs root, skipped\n", prog);
	return false;
}

/* A group setup: this test process into a network namespace of its own,
 * so that the host's network is never touched. */
static inline int tu_setup_netns(void **state)
{
	(void)state;
	if (unshare(CLONE_NEWNET) < 0) {
		print_error("unshare(CLONE_NEWNET): %s (run as root)\n", strerror(errno));
		return -1;
	}
	return 0;
}

#endif
