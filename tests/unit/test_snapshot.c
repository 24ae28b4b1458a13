/* SPDX-License-Identifier: MIT */
/*
 * snapshot.c: a layer survives the round trip through an archive (owners
 * shifted to another member's base, whiteouts, opaque directories,
 * attributes, links, a sparse file), and archives built to attack the
 * extraction are refused with nothing written outside the new layer.
 * Needs root (owners, trusted.* attributes, whiteouts).
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <archive.h>
#include <archive_entry.h>

#include "testutil.h"
#include "image/image.h"
#include "log.h"
#include "banned.h"

#define BASE_A 3000000u
#define BASE_B 4000000u

struct fixture {
	char dir[PATH_MAX];       /* everything below */
	char layer[PATH_MAX];     /* the layer archived */
	char target[PATH_MAX];    /* the new layer */
	char outside[PATH_MAX];   /* must stay as it is */
	char archive[PATH_MAX];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f || tu_make_tempdir(f->dir, sizeof(f->dir), "/var/tmp/test_snapshot.XXXXXX") < 0)
		return -1;
	tu_join(f->layer, sizeof(f->layer), f->dir, "layer");
	tu_join(f->target, sizeof(f->target), f->dir, "target");
	tu_join(f->outside, sizeof(f->outside), f->dir, "outside");
	tu_join(f->archive, sizeof(f->archive), f->dir, "a.tar.zst");
	if (mkdir(f->layer, 0755) < 0 || chown(f->layer, BASE_A, BASE_A) < 0 ||
	    mkdir(f->target, 0755) < 0 || chown(f->target, BASE_B, BASE_B) < 0 ||
	    mkdir(f->outside, 0755) < 0 || tu_make_file(f->outside, "sentinel", "x", 0, 0, 0644) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	tu_remove_tempdir(f->dir);
	free(f);
	return 0;
}

static int extract_file(struct fixture *f, uint32_t base, char *err, size_t errlen)
{
	struct snapshot_stats stats;
	__do_close int fd = open(f->archive, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	return snapshot_extract(fd, f->target, base, NULL, &stats, err, errlen);
}

static void test_round_trip(void **state)
{
	struct fixture *f = *state;
	struct snapshot_stats wstats, rstats;
	char path[PATH_MAX], other[PATH_MAX], err[512] = "", buf[64];
	struct stat st, st2;
	ssize_t n;

	assert_int_equal(tu_make_dir(f->layer, "etc", BASE_A, BASE_A, 0755), 0);
	assert_int_equal(tu_make_file(f->layer, "etc/hostname", "box\n", BASE_A, BASE_A, 0644), 0);
	assert_int_equal(tu_make_file(f->layer, "etc/sudo-like", "#!\n", BASE_A, BASE_A, 04755), 0);
	assert_int_equal(tu_make_dir(f->layer, "home", BASE_A, BASE_A, 0755), 0);
	assert_int_equal(tu_make_dir(f->layer, "home/m", BASE_A + 1000, BASE_A + 1000, 0700), 0);
	assert_int_equal(tu_make_file(f->layer, "home/m/notes", "hello", BASE_A + 1000, BASE_A + 1000, 0600), 0);
	/* Not the container's: stored as nobody, without its set-id bit. */
	assert_int_equal(tu_make_file(f->layer, "home/m/foreign", "?", 0, 0, 04755), 0);
	tu_make_link(f->layer, "home/m/link", "/etc/hostname");
	tu_join(path, sizeof(path), f->layer, "home/m/link");
	assert_int_equal(lchown(path, BASE_A + 1000, BASE_A + 1000), 0);
	tu_join(path, sizeof(path), f->layer, "home/m/notes");
	tu_join(other, sizeof(other), f->layer, "home/m/notes-hard");
	assert_int_equal(link(path, other), 0);
	assert_int_equal(setxattr(path, "user.tag", "blue", 4, 0), 0);
	/* A whiteout and an opaque directory, as overlayfs makes them. */
	tu_join(path, sizeof(path), f->layer, "etc/motd");
	assert_int_equal(mknod(path, S_IFCHR | 0, makedev(0, 0)), 0);
	assert_int_equal(lchown(path, BASE_A, BASE_A), 0);
	assert_int_equal(tu_make_dir(f->layer, "opt", BASE_A, BASE_A, 0755), 0);
	tu_join(path, sizeof(path), f->layer, "opt");
	assert_int_equal(setxattr(path, "trusted.overlay.opaque", "y", 1, 0), 0);
	assert_int_equal(setxattr(path, "trusted.overlay.origin", "zz", 2, 0), 0);
	/* A large sparse file: 1 GiB with 4 KiB of data in the middle. */
	{
		__do_close int fd = -EBADF;

		tu_join(path, sizeof(path), f->layer, "sparse");
		fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		assert_true(fd >= 0);
		assert_int_equal(ftruncate(fd, 1LL << 30), 0);
		memset(buf, 'S', sizeof(buf));
		assert_int_equal(pwrite(fd, buf, sizeof(buf), 512LL << 20), sizeof(buf));
		assert_int_equal(fchown(fd, BASE_A, BASE_A), 0);
	}
	{
		__do_close int out = open(f->archive, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		assert_true(out >= 0);
		assert_int_equal(snapshot_write(f->layer, out, BASE_A, 2, NULL, &wstats, err, sizeof(err)), 0);
	}
	assert_true(wstats.archive_bytes < 1 << 20);
	{
		__do_close int fd = open(f->archive, O_RDONLY | O_CLOEXEC);

		assert_true(fd >= 0);
		assert_int_equal(snapshot_extract(fd, f->target, BASE_B, NULL, &rstats, err, sizeof(err)), 0);
	}
	assert_string_equal(wstats.sha256, rstats.sha256);

	/* Owners move from one base to the other. */
	tu_assert_owner(f->target, "etc", BASE_B, BASE_B, 0755);
	tu_assert_text(f->target, "etc/hostname", "box\n");
	tu_assert_owner(f->target, "etc/sudo-like", BASE_B, BASE_B, 04755);
	tu_assert_owner(f->target, "home/m", BASE_B + 1000, BASE_B + 1000, 0700);
	tu_assert_text(f->target, "home/m/notes", "hello");
	tu_assert_owner(f->target, "home/m/foreign", BASE_B + 65534, BASE_B + 65534, 0755);
	tu_join(path, sizeof(path), f->target, "home/m/link");
	n = readlink(path, buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf, "/etc/hostname");
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_uid, BASE_B + 1000);
	tu_join(path, sizeof(path), f->target, "home/m/notes");
	tu_join(other, sizeof(other), f->target, "home/m/notes-hard");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(stat(other, &st2), 0);
	assert_int_equal(st.st_ino, st2.st_ino);
	assert_int_equal(getxattr(path, "user.tag", buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "blue", 4);
	tu_join(path, sizeof(path), f->target, "etc/motd");
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0));
	tu_join(path, sizeof(path), f->target, "opt");
	assert_int_equal(getxattr(path, "trusted.overlay.opaque", buf, sizeof(buf)), 1);
	assert_int_equal(getxattr(path, "trusted.overlay.origin", buf, sizeof(buf)), -1);
	tu_join(path, sizeof(path), f->target, "sparse");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 1LL << 30);
	assert_true(st.st_blocks * 512 < (1 << 20));
	{
		__do_close int fd = open(path, O_RDONLY | O_CLOEXEC);

		assert_int_equal(pread(fd, buf, sizeof(buf), 512LL << 20), sizeof(buf));
		assert_int_equal(buf[0], 'S');
		assert_int_equal(pread(fd, buf, 1, 1), 1);
		assert_int_equal(buf[0], 0);
	}
}

/* ---- hostile archives ------------------------------------------------------ */

struct evil {
	const char *path;
	mode_t type;
	mode_t perm;
	int64_t uid;
	const char *symlink;      /* for AE_IFLNK */
	const char *hardlink;
	unsigned rmajor, rminor;
	const char *data;
};

static void write_archive(const char *file, const struct evil *entries, size_t n)
{
	struct archive *a = archive_write_new();

	assert_non_null(a);
	assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
	assert_int_equal(archive_write_open_filename(a, file), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		struct archive_entry *e = archive_entry_new();
		size_t len = entries[i].data ? strlen(entries[i].data) : 0;

		archive_entry_set_pathname(e, entries[i].path);
		archive_entry_set_filetype(e, entries[i].type);
		archive_entry_set_perm(e, entries[i].perm);
		archive_entry_set_uid(e, entries[i].uid);
		archive_entry_set_gid(e, entries[i].uid);
		archive_entry_set_size(e, (la_int64_t)len);
		if (entries[i].symlink)
			archive_entry_set_symlink(e, entries[i].symlink);
		if (entries[i].hardlink)
			archive_entry_set_hardlink(e, entries[i].hardlink);
		archive_entry_set_rdevmajor(e, entries[i].rmajor);
		archive_entry_set_rdevminor(e, entries[i].rminor);
		if (archive_write_header(a, e) < ARCHIVE_WARN)
			fail_msg("cannot write %s: %s", entries[i].path, archive_error_string(a));
		if (len)
			assert_int_equal(archive_write_data(a, entries[i].data, len), (la_ssize_t)len);
		archive_entry_free(e);
	}
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
}

/* Refused, and nothing outside the new layer was touched. */
static void assert_refused(struct fixture *f, const struct evil *entries, size_t n, const char *what)
{
	char err[512] = "";
	int ret;

	write_archive(f->archive, entries, n);
	ret = extract_file(f, BASE_B, err, sizeof(err));
	if (ret != -EPERM)
		fail_msg("%s: extraction returned %d (%s), expected -EPERM", what, ret, err);
	assert_true(err[0] != '\0');
	assert_int_equal(tu_count_entries(f->outside), 1);
	assert_int_equal(tu_count_entries(f->dir), 4);   /* layer, target, outside, archive */
	fsutil_empty_dir(f->target);
}

static void test_hostile(void **state)
{
	struct fixture *f = *state;
	char abs_outside[PATH_MAX + 16], rel_outside[64];
	struct evil absolute[] = { { .path = abs_outside, .type = AE_IFREG, .perm = 0644, .data = "x" } };
	struct evil dotdot[] = { { .path = "etc/../../outside/pwned", .type = AE_IFREG, .perm = 0644, .data = "x" } };
	struct evil dotdot2[] = { { .path = "../outside/pwned", .type = AE_IFREG, .perm = 0644, .data = "x" } };
	struct evil chardev[] = { { .path = "null", .type = AE_IFCHR, .perm = 0666, .rmajor = 1, .rminor = 3 } };
	struct evil blockdev[] = { { .path = "sda", .type = AE_IFBLK, .perm = 0666, .rmajor = 8 } };
	struct evil fifo[] = { { .path = "pipe", .type = AE_IFIFO, .perm = 0666 } };
	struct evil setuid_outside[] = { { .path = "su", .type = AE_IFREG, .perm = 04755, .uid = 70000, .data = "x" } };
	struct evil huge_id[] = { { .path = "huge", .type = AE_IFREG, .perm = 0644, .uid = 1LL << 33, .data = "x" } };
	struct evil symlink_escape[] = {
		{ .path = "evil", .type = AE_IFLNK, .perm = 0777, .symlink = f->outside },
		{ .path = "evil/pwned", .type = AE_IFREG, .perm = 0644, .data = "x" },
	};
	struct evil symlink_escape_rel[] = {
		{ .path = "evil", .type = AE_IFLNK, .perm = 0777, .symlink = "../outside" },
		{ .path = "evil/pwned", .type = AE_IFREG, .perm = 0644, .data = "x" },
	};
	struct evil symlink_then_replace[] = {
		{ .path = "evil", .type = AE_IFLNK, .perm = 0777, .symlink = "../outside/sentinel" },
		{ .path = "evil", .type = AE_IFREG, .perm = 0644, .data = "overwritten" },
	};
	struct evil hardlink_escape[] = { { .path = "h", .type = AE_IFREG, .perm = 0644, .hardlink = rel_outside } };
	struct evil hardlink_abs[] = { { .path = "h", .type = AE_IFREG, .perm = 0644, .hardlink = "/etc/passwd" } };

	snprintf(abs_outside, sizeof(abs_outside), "%s/pwned", f->outside);
	snprintf(rel_outside, sizeof(rel_outside), "../outside/sentinel");

	assert_refused(f, absolute, ARRAY_SIZE(absolute), "absolute path");
	assert_refused(f, dotdot, ARRAY_SIZE(dotdot), "a .. inside");
	assert_refused(f, dotdot2, ARRAY_SIZE(dotdot2), "a leading ..");
	assert_refused(f, chardev, ARRAY_SIZE(chardev), "character device");
	assert_refused(f, blockdev, ARRAY_SIZE(blockdev), "block device");
	assert_refused(f, fifo, ARRAY_SIZE(fifo), "FIFO");
	assert_refused(f, setuid_outside, ARRAY_SIZE(setuid_outside), "set-uid, owner out of range");
	assert_refused(f, huge_id, ARRAY_SIZE(huge_id), "an owner beyond 32 bits");
	assert_refused(f, symlink_escape, ARRAY_SIZE(symlink_escape), "write through an absolute link");
	assert_refused(f, symlink_escape_rel, ARRAY_SIZE(symlink_escape_rel), "write through a relative link");
	assert_refused(f, symlink_then_replace, ARRAY_SIZE(symlink_then_replace), "a link replaced");
	assert_refused(f, hardlink_escape, ARRAY_SIZE(hardlink_escape), "hard link out by ..");
	assert_refused(f, hardlink_abs, ARRAY_SIZE(hardlink_abs), "hard link to an absolute path");
	tu_assert_text(f->outside, "sentinel", "x");
}

/* What a layer may hold: a whiteout, a set-uid file of the container's
 * root (the host's id of that is the member's base, never 0). */
static void test_allowed(void **state)
{
	struct fixture *f = *state;
	struct evil fine[] = {
		{ .path = "./etc/", .type = AE_IFDIR, .perm = 0755 },
		{ .path = "etc/motd", .type = AE_IFCHR, .perm = 0 },
		{ .path = "usr/bin/sudo", .type = AE_IFREG, .perm = 04755, .uid = 0, .data = "#!" },
		{ .path = "etc/link", .type = AE_IFLNK, .perm = 0777, .symlink = "/../../../etc/shadow" },
		{ .path = "etc/hard", .type = AE_IFREG, .perm = 0644, .hardlink = "usr/bin/sudo" },
	};
	char err[512] = "";

	write_archive(f->archive, fine, ARRAY_SIZE(fine));
	assert_int_equal(extract_file(f, BASE_B, err, sizeof(err)), 0);
	tu_assert_owner(f->target, "usr/bin/sudo", BASE_B, BASE_B, 04755);
	tu_assert_owner(f->target, "usr", BASE_B, BASE_B, 0755);
	tu_assert_text(f->target, "etc/hard", "#!");
	assert_int_equal(tu_count_entries(f->outside), 1);
}

static void test_damaged(void **state)
{
	struct fixture *f = *state;
	char err[512] = "";

	assert_int_equal(fsutil_write_atomic(f->archive, "not an archive at all", 21, 0600), 0);
	assert_int_equal(extract_file(f, BASE_B, err, sizeof(err)), -EBADMSG);
	assert_true(err[0] != '\0');
}

static void test_names(void **state)
{
	char err[256];

	(void)state;
	assert_int_equal(snapshot_check_name("before-upgrade_2", err, sizeof(err)), 0);
	assert_int_equal(snapshot_check_name("20250101-120000", err, sizeof(err)), 0);
	assert_int_equal(snapshot_check_name("../alice/x", err, sizeof(err)), -EINVAL);
	assert_int_equal(snapshot_check_name("alice/x", err, sizeof(err)), -EINVAL);
	assert_int_equal(snapshot_check_name("x.tar", err, sizeof(err)), -EINVAL);
	assert_int_equal(snapshot_check_name("-x", err, sizeof(err)), -EINVAL);
	assert_int_equal(snapshot_check_name("", err, sizeof(err)), -EINVAL);
	assert_int_equal(snapshot_check_name("01234567890123456789012345678901234567890", err, sizeof(err)), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allowed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged, setup, teardown),
	};

	log_init("test_snapshot", false, LOG_LEVEL_ERROR);
	if (!tu_have_root("test_snapshot"))
		return TU_SKIP;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
