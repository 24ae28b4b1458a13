/* SPDX-License-Identifier: MIT */
/*
 * snapshot.c: a layer survives the round trip through an archive (owners
 * shifted to another member's base, whiteouts, opaque directories,
 * attributes, links, sparse files of any number of regions), and archives
 * built to attack the extraction are refused with nothing written outside
 * the new layer; a snapshot or a restore stops at its limits.
 * Needs root (owners, trusted.* attributes, whiteouts).
 */
#include <endian.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <archive.h>
#include <archive_entry.h>
#include <linux/capability.h>
#include <sodium.h>

#include "testutil.h"
#include "image/digest.h"
#include "image/image.h"
#include "log.h"
#include "banned.h"

#define BASE_A 3000000u
#define BASE_B 4000000u
#define ANY_CONTENT (1ULL << 40)

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

/* A manifest for the archive at file as it is now: its true checksum, and
 * content_size bytes of file data. */
static void manifest_of(const char *file, unsigned long long content_size, struct snapshot_info *m)
{
	unsigned char digest[crypto_hash_sha256_BYTES];
	__do_free char *data = NULL;
	size_t len = 0;

	memset(m, 0, sizeof(*m));
	assert_int_equal(sodium_init() >= 0, 1);
	assert_int_equal(fsutil_read_file(file, 64 << 20, &data, &len), 0);
	crypto_hash_sha256(digest, (const unsigned char *)data, len);
	sodium_bin2hex(m->sha256, sizeof(m->sha256), digest, sizeof(digest));
	m->content_size = content_size;
}

static int extract_with(struct fixture *f, const struct snapshot_info *m, uint32_t base, char *err,
			size_t errlen)
{
	struct snapshot_stats stats;
	__do_close int fd = open(f->archive, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	return snapshot_extract(fd, m, f->target, base, NULL, NULL, &stats, err, errlen);
}

static int extract_file(struct fixture *f, uint32_t base, char *err, size_t errlen)
{
	struct snapshot_info m;

	manifest_of(f->archive, ANY_CONTENT, &m);
	return extract_with(f, &m, base, err, errlen);
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
		assert_int_equal(snapshot_write(f->layer, out, BASE_A, 2, NULL, NULL, &wstats, err, sizeof(err)), 0);
	}
	assert_true(wstats.archive_bytes < 1 << 20);
	{
		__do_close int fd = open(f->archive, O_RDONLY | O_CLOEXEC);
		struct snapshot_info m = { .content_size = wstats.content_bytes };

		/* The manifest the agent writes: exactly the content it holds. */
		snprintf(m.sha256, sizeof(m.sha256), "%s", wstats.sha256);
		assert_true(fd >= 0);
		assert_int_equal(snapshot_extract(fd, &m, f->target, BASE_B, NULL, NULL, &rstats, err, sizeof(err)), 0);
	}
	assert_string_equal(wstats.sha256, rstats.sha256);
	assert_int_equal(wstats.content_bytes, rstats.content_bytes);

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
	const void *caps;         /* a security.capability value */
	size_t caps_size;
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
		if (entries[i].caps)
			archive_entry_xattr_add_entry(e, "security.capability", entries[i].caps,
						      entries[i].caps_size);
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

/* ---- attacks of issue 13: restore trusts nothing in an archive ------------- */

static void assert_caps(const char *dir, const char *rel, uint32_t rootid)
{
	struct vfs_ns_cap_data got;
	char path[PATH_MAX];

	tu_join(path, sizeof(path), dir, rel);
	memset(&got, 0, sizeof(got));
	assert_int_equal(getxattr(path, "security.capability", &got, sizeof(got)), XATTR_CAPS_SZ_3);
	assert_int_equal(le32toh(got.magic_etc) & VFS_CAP_REVISION_MASK, VFS_CAP_REVISION_3);
	assert_int_equal(le32toh(got.rootid), rootid);
}

/* A v2 capability has no root id: written as it is, it would hold in the
 * host's namespace.  It must come back as the container root's v3. */
static void test_attack_caps_v2(void **state)
{
	struct fixture *f = *state;
	struct vfs_cap_data v2 = { .magic_etc = htole32(VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE),
				   .data = { { .permitted = htole32(0xffffffff) } } };
	struct evil entries[] = { { .path = "tool", .type = AE_IFREG, .perm = 0755, .data = "#!",
				    .caps = &v2, .caps_size = XATTR_CAPS_SZ_2 } };
	struct vfs_ns_cap_data got;
	char err[512] = "", path[PATH_MAX];

	write_archive(f->archive, entries, ARRAY_SIZE(entries));
	assert_int_equal(extract_file(f, BASE_B, err, sizeof(err)), 0);
	assert_caps(f->target, "tool", BASE_B);
	tu_join(path, sizeof(path), f->target, "tool");
	assert_int_equal(getxattr(path, "security.capability", &got, sizeof(got)), XATTR_CAPS_SZ_3);
	assert_int_equal(le32toh(got.data[0].permitted), 0xffffffff);
	assert_int_equal(le32toh(got.magic_etc) & VFS_CAP_FLAGS_EFFECTIVE, VFS_CAP_FLAGS_EFFECTIVE);
}

/* v3 inside the container's ids is shifted to the member's; anything else
 * is refused with a reason. */
static void test_attack_caps_v3(void **state)
{
	struct fixture *f = *state;
	struct vfs_ns_cap_data own = { .magic_etc = htole32(VFS_CAP_REVISION_3),
				       .rootid = htole32(1000) };
	struct vfs_ns_cap_data foreign = { .magic_etc = htole32(VFS_CAP_REVISION_3),
					   .rootid = htole32(SUBID_COUNT) };
	struct vfs_ns_cap_data host_root_of_b = { .magic_etc = htole32(VFS_CAP_REVISION_3),
						  .rootid = htole32(BASE_B) };
	struct vfs_cap_data v1 = { .magic_etc = htole32(VFS_CAP_REVISION_1) };
	struct vfs_ns_cap_data unknown = { .magic_etc = htole32(0x04000000) };
	struct vfs_ns_cap_data odd_flags = { .magic_etc = htole32(VFS_CAP_REVISION_3 | 0x10) };
	struct evil ok[] = { { .path = "t", .type = AE_IFREG, .perm = 0755, .data = "#!",
			       .caps = &own, .caps_size = XATTR_CAPS_SZ_3 } };
	struct evil bad[][1] = {
		{ { .path = "t", .type = AE_IFREG, .perm = 0755, .data = "#!", .caps = &foreign, .caps_size = XATTR_CAPS_SZ_3 } },
		{ { .path = "t", .type = AE_IFREG, .perm = 0755, .data = "#!", .caps = &host_root_of_b, .caps_size = XATTR_CAPS_SZ_3 } },
		{ { .path = "t", .type = AE_IFREG, .perm = 0755, .data = "#!", .caps = &own, .caps_size = XATTR_CAPS_SZ_2 } },
		{ { .path = "t", .type = AE_IFREG, .perm = 0755, .data = "#!", .caps = &v1, .caps_size = XATTR_CAPS_SZ_1 } },
		{ { .path = "t", .type = AE_IFREG, .perm = 0755, .data = "#!", .caps = &unknown, .caps_size = XATTR_CAPS_SZ_3 } },
		{ { .path = "t", .type = AE_IFREG, .perm = 0755, .data = "#!", .caps = &odd_flags, .caps_size = XATTR_CAPS_SZ_3 } },
		{ { .path = "t", .type = AE_IFREG, .perm = 0755, .data = "#!", .caps = &own, .caps_size = 2 } },
	};
	char err[512] = "";

	write_archive(f->archive, ok, ARRAY_SIZE(ok));
	assert_int_equal(extract_file(f, BASE_B, err, sizeof(err)), 0);
	assert_caps(f->target, "t", BASE_B + 1000);
	fsutil_empty_dir(f->target);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_refused(f, bad[i], 1, "a file capability");
		/* Refused before anything is written, or dropped with the file. */
	}
	err[0] = '\0';
	write_archive(f->archive, bad[0], 1);
	assert_int_equal(extract_file(f, BASE_B, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "outside the container's ids"));
}

/* A wrong checksum: refused before a single entry is written. */
static void test_attack_checksum(void **state)
{
	struct fixture *f = *state;
	struct evil entries[] = {
		{ .path = "etc", .type = AE_IFDIR, .perm = 0755 },
		{ .path = "etc/big", .type = AE_IFREG, .perm = 0644, .data = "a file written too early" },
	};
	struct snapshot_info m;
	char err[512] = "";

	write_archive(f->archive, entries, ARRAY_SIZE(entries));
	manifest_of(f->archive, ANY_CONTENT, &m);
	m.sha256[0] = m.sha256[0] == '0' ? '1' : '0';
	assert_int_equal(extract_with(f, &m, BASE_B, err, sizeof(err)), -EBADMSG);
	assert_int_equal(tu_count_entries(f->target), 0);
	assert_non_null(strstr(err, "checksum does not match"));
	/* The same archive with its true checksum extracts: the test can fail. */
	manifest_of(f->archive, ANY_CONTENT, &m);
	assert_int_equal(extract_with(f, &m, BASE_B, err, sizeof(err)), 0);
	assert_int_equal(tu_count_entries(f->target), 1);
}

static void on_alarm(int sig)
{
	(void)sig;
	fail_msg("the FIFO made the restore wait");
}

/* A FIFO in the store, in place of an archive or a manifest: refused at
 * once, never opened for a writer that never comes. */
static void test_attack_fifo(void **state)
{
	struct fixture *f = *state;
	__do_free struct gpubox_config *cfg = calloc(1, sizeof(*cfg));
	struct snapshot_info info;
	struct snapshot_stats stats;
	char path[PATH_MAX], store[PATH_MAX], err[512] = "";
	__do_close int fd = -EBADF, rw = -EBADF;

	assert_non_null(cfg);
	tu_join(cfg->snapshot_dir, sizeof(cfg->snapshot_dir), f->dir, "store");
	tu_join(store, sizeof(store), cfg->snapshot_dir, "alice");
	assert_int_equal(fsutil_mkdir_p(store, 0700), 0);
	tu_join(path, sizeof(path), store, "s1.tar.zst");
	assert_int_equal(mkfifo(path, 0600), 0);
	tu_join(path, sizeof(path), store, "s1.json");
	assert_int_equal(mkfifo(path, 0600), 0);
	tu_join(path, sizeof(path), store, "s2.tar.zst");
	assert_int_equal(symlink("/etc/passwd", path), 0);
	tu_write_file(store, "s3.tar.zst", "a regular file");

	signal(SIGALRM, on_alarm);
	alarm(5);
	assert_int_equal(snapshot_open(cfg, "alice", "s1", ".tar.zst"), -EPERM);
	assert_int_equal(snapshot_get(cfg, "alice", "s1", &info), -ENOENT);
	assert_int_equal(snapshot_open(cfg, "alice", "s2", ".tar.zst"), -ELOOP);
	fd = snapshot_open(cfg, "alice", "s3", ".tar.zst");
	assert_true(fd >= 0);
	assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
	/* A FIFO descriptor handed to the extraction itself. */
	tu_join(path, sizeof(path), store, "s1.tar.zst");
	rw = open(path, O_RDWR | O_CLOEXEC);
	assert_true(rw >= 0);
	memset(&info, 0, sizeof(info));
	memset(info.sha256, '0', sizeof(info.sha256) - 1);
	info.content_size = ANY_CONTENT;
	assert_int_equal(snapshot_extract(rw, &info, f->target, BASE_B, NULL, NULL, &stats, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "not a regular file"));
	alarm(0);
	signal(SIGALRM, SIG_DFL);
	assert_int_equal(tu_count_entries(f->target), 0);
}

/* More file data than the manifest's content_size: refused before the file
 * that goes over is created. */
static void test_attack_content_size(void **state)
{
	struct fixture *f = *state;
	struct evil entries[] = {
		{ .path = "a", .type = AE_IFREG, .perm = 0644, .data = "0123456789" },
		{ .path = "b", .type = AE_IFREG, .perm = 0644, .data = "0123456789" },
	};
	struct snapshot_info m;
	char err[512] = "";

	write_archive(f->archive, entries, ARRAY_SIZE(entries));
	manifest_of(f->archive, 15, &m);
	assert_int_equal(extract_with(f, &m, BASE_B, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "content_size"));
	tu_assert_absent(f->target, "b");
	fsutil_empty_dir(f->target);
	manifest_of(f->archive, 0, &m);
	assert_int_equal(extract_with(f, &m, BASE_B, err, sizeof(err)), -EPERM);
	assert_int_equal(tu_count_entries(f->target), 0);
	/* Exactly what it holds is fine. */
	manifest_of(f->archive, 20, &m);
	assert_int_equal(extract_with(f, &m, BASE_B, err, sizeof(err)), 0);
	tu_assert_text(f->target, "b", "0123456789");
}

/* A manifest without the template's recipe hash is not checked against
 * this server's template: refused. */
static void test_attack_no_recipe_hash(void **state)
{
	struct fixture *f = *state;
	__do_free struct gpubox_config *cfg = calloc(1, sizeof(*cfg));
	static const char sha[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	static const char recipe[] = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
	struct template_info tpl = { 0 };
	struct snapshot_info info;
	char store[PATH_MAX], text[1024], err[512] = "";

	assert_non_null(cfg);
	tu_join(cfg->snapshot_dir, sizeof(cfg->snapshot_dir), f->dir, "store");
	tu_join(store, sizeof(store), cfg->snapshot_dir, "alice");
	assert_int_equal(fsutil_mkdir_p(store, 0700), 0);
	snprintf(tpl.recipe_hash, sizeof(tpl.recipe_hash), "%s", recipe);
	snprintf(text, sizeof(text),
		 "{\"format\":1,\"name\":\"s1\",\"member\":\"alice\",\"template\":\"debian@1\","
		 "\"created\":1,\"size\":10,\"content_size\":0,\"sha256\":\"%s\"}", sha);
	tu_write_file(store, "s1.json", text);
	assert_int_equal(snapshot_get(cfg, "alice", "s1", &info), 0);
	assert_int_equal(snapshot_check_template(&info, &tpl, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "template_recipe_hash"));
	/* Named and equal: accepted; named and different: refused. */
	snprintf(info.template_hash, sizeof(info.template_hash), "%s", recipe);
	assert_int_equal(snapshot_check_template(&info, &tpl, err, sizeof(err)), 0);
	info.template_hash[0] = '0';
	assert_int_equal(snapshot_check_template(&info, &tpl, err, sizeof(err)), -EPERM);
	/* A recipe hash or a content size that is not one: no snapshot. */
	snprintf(text, sizeof(text),
		 "{\"format\":1,\"name\":\"s2\",\"member\":\"alice\",\"template\":\"debian@1\","
		 "\"template_recipe_hash\":\"../x\",\"created\":1,\"size\":10,\"sha256\":\"%s\"}", sha);
	tu_write_file(store, "s2.json", text);
	assert_int_equal(snapshot_get(cfg, "alice", "s2", &info), -EBADMSG);
	snprintf(text, sizeof(text),
		 "{\"format\":1,\"name\":\"s3\",\"member\":\"alice\",\"template\":\"debian@1\","
		 "\"created\":1,\"size\":10,\"content_size\":-1,\"sha256\":\"%s\"}", sha);
	tu_write_file(store, "s3.json", text);
	assert_int_equal(snapshot_get(cfg, "alice", "s3", &info), -EBADMSG);
}

/* ---- whose snapshot: the member's identity in the manifest ----------------- */

#define ID_A "0123456789abcdef0123456789abcdef"
#define ID_B "fedcba9876543210fedcba9876543210"
#define SHA "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* A manifest in alice's store: member_id as given (NULL: none). */
static void owner_manifest(const char *store, const char *name, const char *member_id_json,
			   const char *server, long long created)
{
	char file[64], text[1024];

	snprintf(file, sizeof(file), "%s.json", name);
	snprintf(text, sizeof(text),
		 "{\"format\":1,\"name\":\"%s\",\"member\":\"alice\",%s%s%s\"template\":\"debian@1\","
		 "\"server\":\"%s\",\"created\":%lld,\"size\":10,\"sha256\":\"" SHA "\"}",
		 name, member_id_json ? "\"member_id\":" : "", member_id_json ? member_id_json : "",
		 member_id_json ? "," : "", server, created);
	tu_write_file(store, file, text);
}

static struct gpubox_config *owner_store(struct fixture *f, char *store, size_t len)
{
	struct gpubox_config *cfg = calloc(1, sizeof(*cfg));

	assert_non_null(cfg);
	tu_join(cfg->snapshot_dir, sizeof(cfg->snapshot_dir), f->dir, "store");
	snprintf(cfg->server_name, sizeof(cfg->server_name), "gpu1");
	tu_join(store, len, cfg->snapshot_dir, "alice");
	assert_int_equal(fsutil_mkdir_p(store, 0700), 0);
	return cfg;
}

/* The agent writes the identity and reads it back; only its owner passes. */
static void test_owner_identity(void **state)
{
	struct fixture *f = *state;
	char store[PATH_MAX], err[256] = "";
	__do_free struct gpubox_config *cfg = owner_store(f, store, sizeof(store));
	struct snapshot_info info = { .name = "s1", .member = "alice", .template_ref = "debian@1",
				      .server = "gpu1", .created = 50, .size = 10 };
	struct snapshot_owner alice = { .name = "alice", .identity = ID_A, .created = 100,
					.server = "gpu1" };
	struct snapshot_owner later = alice, bob = alice, none = alice;
	struct snapshot_info got;

	later.identity = ID_B;
	bob.name = "bob";
	none.identity = NULL;
	snprintf(info.sha256, sizeof(info.sha256), SHA);
	/* Never a manifest without identity. */
	assert_int_equal(snapshot_manifest_write(cfg, &info), -EINVAL);
	tu_assert_absent(store, "s1.json");
	snprintf(info.member_id, sizeof(info.member_id), ID_A);
	assert_int_equal(snapshot_manifest_write(cfg, &info), 0);
	assert_int_equal(snapshot_get(cfg, "alice", "s1", &got), 0);
	assert_string_equal(got.member_id, ID_A);
	/* Taken before the record's time: the identity decides, not the time. */
	assert_int_equal(snapshot_check_owner(&got, &alice, err, sizeof(err)), 0);
	assert_int_equal(snapshot_check_owner(&got, &later, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "earlier member"));
	assert_int_equal(snapshot_check_owner(&got, &none, err, sizeof(err)), -EPERM);
	assert_int_equal(snapshot_check_owner(&got, &bob, err, sizeof(err)), -EPERM);
	/* An identity that is not one is no manifest (never read as absent). */
	owner_manifest(store, "s2", "\"\"", "gpu1", 200);
	assert_int_equal(snapshot_get(cfg, "alice", "s2", &got), -EBADMSG);
	owner_manifest(store, "s3", "\"0123456789ABCDEF0123456789ABCDEF\"", "gpu1", 200);
	assert_int_equal(snapshot_get(cfg, "alice", "s3", &got), -EBADMSG);
	owner_manifest(store, "s4", "\"0123456789abcdef0123456789abcde\"", "gpu1", 200);
	assert_int_equal(snapshot_get(cfg, "alice", "s4", &got), -EBADMSG);
	owner_manifest(store, "s5", "null", "gpu1", 200);
	assert_int_equal(snapshot_get(cfg, "alice", "s5", &got), -EBADMSG);
	owner_manifest(store, "s6", "\"" ID_B "\"", "gpu1", 200);
	assert_int_equal(snapshot_get(cfg, "alice", "s6", &got), 0);
	assert_int_equal(snapshot_check_owner(&got, &later, err, sizeof(err)), 0);
	assert_int_equal(snapshot_check_owner(&got, &alice, err, sizeof(err)), -EPERM);
}

/* A local snapshot's manifest: its kind, no archive and no checksum; a
 * manifest that mixes the two kinds, or names another, is none. */
static void test_local_manifest(void **state)
{
	struct fixture *f = *state;
	char store[PATH_MAX], text[1024];
	__do_free struct gpubox_config *cfg = owner_store(f, store, sizeof(store));
	struct snapshot_info info = { .name = "l1", .member = "alice", .member_id = ID_A,
				      .template_ref = "debian@1", .server = "gpu1", .created = 50,
				      .local = true };
	struct snapshot_info got;
	static const char *const damaged[] = {
		"\"kind\":\"local\",\"size\":0,\"sha256\":\"" SHA "\"",
		"\"kind\":\"local\",\"size\":10",
		"\"kind\":\"tape\",\"size\":0",
		"\"kind\":5,\"size\":0",
		"\"kind\":null,\"size\":0",
	};

	assert_int_equal(snapshot_manifest_write(cfg, &info), 0);
	tu_assert_absent(store, "l1.sha256");
	assert_int_equal(snapshot_get(cfg, "alice", "l1", &got), 0);
	assert_true(got.local);
	assert_int_equal(got.size, 0);
	assert_string_equal(got.sha256, "");
	assert_string_equal(got.member_id, ID_A);
	assert_string_equal(got.template_ref, "debian@1");
	/* An archive's manifest says nothing of its kind, or "archive". */
	owner_manifest(store, "a1", "\"" ID_A "\"", "gpu1", 60);
	assert_int_equal(snapshot_get(cfg, "alice", "a1", &got), 0);
	assert_false(got.local);
	for (size_t i = 0; i < ARRAY_SIZE(damaged); i++) {
		snprintf(text, sizeof(text),
			 "{\"format\":1,\"name\":\"d1\",\"member\":\"alice\",\"member_id\":\"" ID_A "\","
			 "\"template\":\"debian@1\",\"server\":\"gpu1\",\"created\":70,%s}", damaged[i]);
		tu_write_file(store, "d1.json", text);
		assert_int_equal(snapshot_get(cfg, "alice", "d1", &got), -EBADMSG);
	}
	/* Out of reach from another server sharing the store. */
	{
		struct snapshot_owner here = { .name = "alice", .identity = ID_A, .server = "gpu1" };
		struct snapshot_owner there = here;
		char err[256] = "";

		there.server = "gpu2";
		assert_int_equal(snapshot_get(cfg, "alice", "l1", &got), 0);
		assert_int_equal(snapshot_check_owner(&got, &here, err, sizeof(err)), 0);
		assert_int_equal(snapshot_check_owner(&got, &there, err, sizeof(err)), -EPERM);
		assert_non_null(strstr(err, "local snapshot of server gpu1"));
		/* The member removed without --purge: the local ones go (their
		 * files went with the layer), the archive stays. */
		tu_write_file(store, "d1.json", "{}");
		assert_int_equal(snapshot_retire(cfg, &here, true), 1);
		tu_assert_absent(store, "l1.json");
		assert_int_equal(snapshot_get(cfg, "alice", "a1", &got), 0);
	}
}

/* A manifest of before identities: this server's, after the member was added. */
static void test_owner_legacy(void **state)
{
	struct fixture *f = *state;
	char store[PATH_MAX], err[256] = "";
	__do_free struct gpubox_config *cfg = owner_store(f, store, sizeof(store));
	struct snapshot_owner alice = { .name = "alice", .identity = ID_A, .created = 100,
					.server = "gpu1" };
	struct snapshot_info got;

	owner_manifest(store, "s1", NULL, "gpu1", 101);
	assert_int_equal(snapshot_get(cfg, "alice", "s1", &got), 0);
	assert_string_equal(got.member_id, "");
	assert_int_equal(snapshot_check_owner(&got, &alice, err, sizeof(err)), 0);
	/* Of the same second as the record, or older: maybe an earlier member's. */
	alice.created = 101;
	assert_int_equal(snapshot_check_owner(&got, &alice, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "older than member"));
	alice.created = 500;
	assert_int_equal(snapshot_check_owner(&got, &alice, err, sizeof(err)), -EPERM);
	/* Another server's: its members are not this server's records. */
	owner_manifest(store, "s2", NULL, "gpu2", 600);
	assert_int_equal(snapshot_get(cfg, "alice", "s2", &got), 0);
	assert_int_equal(snapshot_check_owner(&got, &alice, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "another server"));
	alice.server = NULL;
	owner_manifest(store, "s3", NULL, "gpu1", 600);
	assert_int_equal(snapshot_get(cfg, "alice", "s3", &got), 0);
	assert_int_equal(snapshot_check_owner(&got, &alice, err, sizeof(err)), -EPERM);
}

/* ls shows the owner's only; retiring removes the owner's only. */
static void test_owner_list_retire(void **state)
{
	struct fixture *f = *state;
	char store[PATH_MAX];
	__do_free struct gpubox_config *cfg = owner_store(f, store, sizeof(store));
	__do_free struct snapshot_info *list = NULL;
	struct snapshot_owner alice = { .name = "alice", .identity = ID_A, .created = 100,
					.server = "gpu1" };
	struct snapshot_owner earlier = { .name = "alice", .identity = ID_B, .created = 10,
					  .server = "gpu1" };
	size_t n = 0;

	owner_manifest(store, "mine", "\"" ID_A "\"", "gpu1", 200);
	tu_write_file(store, "mine.tar.zst", "0123456789");
	tu_write_file(store, "mine.sha256", SHA "  mine.tar.zst\n");
	owner_manifest(store, "theirs", "\"" ID_B "\"", "gpu1", 50);
	tu_write_file(store, "theirs.tar.zst", "0123456789");
	owner_manifest(store, "old", NULL, "gpu1", 60);
	assert_int_equal(snapshot_list(cfg, "alice", NULL, &list, &n), 0);
	assert_int_equal(n, 3);
	free(list);
	list = NULL;
	assert_int_equal(snapshot_list(cfg, "alice", &alice, &list, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].name, "mine");
	free(list);
	list = NULL;
	/* The earlier member had "theirs" and, by time, "old". */
	assert_int_equal(snapshot_list(cfg, "alice", &earlier, &list, &n), 0);
	assert_int_equal(n, 2);

	assert_int_equal(snapshot_retire(cfg, &alice, false), 1);
	tu_assert_absent(store, "mine.json");
	tu_assert_absent(store, "mine.tar.zst");
	tu_assert_absent(store, "mine.sha256");
	tu_assert_text(store, "theirs.tar.zst", "0123456789");
	assert_int_equal(access(store, F_OK), 0);
	free(tu_read_text(store, "old.json"));
	assert_int_equal(snapshot_retire(cfg, &alice, false), 0);
	assert_int_equal(snapshot_retire(cfg, &earlier, false), 2);
	assert_int_equal(access(store, F_OK), -1);
	assert_int_equal(errno, ENOENT);
}

static void test_damaged(void **state)
{
	struct fixture *f = *state;
	char err[512] = "";

	assert_int_equal(fsutil_write_atomic(f->archive, "not an archive at all", 21, 0600), 0);
	assert_int_equal(extract_file(f, BASE_B, err, sizeof(err)), -EBADMSG);
	assert_true(err[0] != '\0');
}

/* ---- sparse files, limits ------------------------------------------------- */

#define SPARSE_REGIONS 1000
#define SPARSE_STRIDE (1LL << 30)
#define SPARSE_SIZE (SPARSE_REGIONS * SPARSE_STRIDE + 12345)

/* Region i: 4000 bytes of 1 + i % 250, at a block boundary or 100 bytes
 * past one (a region of a file may start anywhere). */
static off_t sparse_offset(int i)
{
	return i * SPARSE_STRIDE + (i % 2 ? 100 : 0);
}

static void make_sparse(const char *dir, const char *name, uid_t owner)
{
	char path[PATH_MAX], buf[4000];
	__do_close int fd = -EBADF;

	tu_join(path, sizeof(path), dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	for (int i = 0; i < SPARSE_REGIONS; i++) {
		memset(buf, 1 + i % 250, sizeof(buf));
		assert_int_equal(pwrite(fd, buf, sizeof(buf), sparse_offset(i)), sizeof(buf));
	}
	assert_int_equal(ftruncate(fd, SPARSE_SIZE), 0);
	assert_int_equal(fchown(fd, owner, owner), 0);
}

/* Its data, and zeros on both sides of every region; holes kept. */
static void assert_sparse(const char *dir, const char *name)
{
	char path[PATH_MAX], buf[4200];
	__do_close int fd = -EBADF;
	struct stat st;

	tu_join(path, sizeof(path), dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, SPARSE_SIZE);
	/* 1000 regions of at most two 4 KiB blocks: no more than 8 MB. */
	if (st.st_blocks * 512LL > 8LL << 20)
		fail_msg("%s takes %lld bytes on disk: its holes were filled", name,
			 (long long)st.st_blocks * 512);
	for (int i = 0; i < SPARSE_REGIONS; i++) {
		off_t at = sparse_offset(i) - 100;

		if (at < 0)
			at = 0;
		assert_int_equal(pread(fd, buf, sizeof(buf), at), sizeof(buf));
		for (off_t j = 0; j < (off_t)sizeof(buf); j++) {
			off_t pos = at + j;
			char want = pos >= sparse_offset(i) && pos < sparse_offset(i) + 4000 ? 1 + i % 250 : 0;

			if (buf[j] != want)
				fail_msg("region %d: byte %lld is %d, not %d", i, (long long)pos, buf[j], want);
		}
	}
}

/* The data regions the archive declares for path. */
static int sparse_count(const char *file, const char *path)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	int n = -1;

	archive_read_support_format_tar(a);
	archive_read_support_filter_zstd(a);
	assert_int_equal(archive_read_open_filename(a, file, 1 << 16), ARCHIVE_OK);
	while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
		la_int64_t offset, length;

		if (strcmp(archive_entry_pathname(e), path) != 0 || archive_entry_sparse_reset(e) == 0)
			continue;
		/* Not the empty one the reader adds at the end. */
		for (n = 0; archive_entry_sparse_next(e, &offset, &length) == ARCHIVE_OK;)
			n += length > 0;
	}
	archive_read_free(a);
	return n;
}

static int write_layer(struct fixture *f, const struct snapshot_limits *limits,
		       struct snapshot_stats *stats, char *err, size_t errlen)
{
	__do_close int out = open(f->archive, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(out >= 0);
	return snapshot_write(f->layer, out, BASE_A, 0, limits, NULL, stats, err, errlen);
}

static int extract_limited(struct fixture *f, const struct snapshot_stats *wstats,
			   const struct snapshot_limits *limits, char *err, size_t errlen)
{
	struct snapshot_info m = { .content_size = wstats->content_bytes };
	struct snapshot_stats rstats;
	__do_close int fd = open(f->archive, O_RDONLY | O_CLOEXEC);

	snprintf(m.sha256, sizeof(m.sha256), "%s", wstats->sha256);
	assert_true(fd >= 0);
	return snapshot_extract(fd, &m, f->target, BASE_B, limits, NULL, &rstats, err, errlen);
}

/* A sparse file of 1000 data regions (an earlier version stored the first
 * 255 and the rest of the file in full, holes as zeros) over 1 TiB: every
 * region is in the archive, every hole comes back as a hole. */
static void test_sparse_regions(void **state)
{
	struct fixture *f = *state;
	struct snapshot_stats wstats;
	char err[512] = "";

	make_sparse(f->layer, "sparse", BASE_A);
	assert_int_equal(write_layer(f, NULL, &wstats, err, sizeof(err)), 0);
	/* The data (4 MB of 250 patterns) and the map: not 1 TiB of zeros. */
	assert_true(wstats.archive_bytes < 2 << 20);
	assert_true(wstats.content_bytes == (unsigned long long)SPARSE_SIZE);
	assert_int_equal(sparse_count(f->archive, "sparse"), SPARSE_REGIONS);
	assert_int_equal(extract_limited(f, &wstats, NULL, err, sizeof(err)), 0);
	assert_sparse(f->target, "sparse");
	tu_assert_owner(f->target, "sparse", BASE_B, BASE_B, 0644);
}

/* What an earlier version wrote for the tail of a file of many regions, or
 * any file of zeros: stored in full, it restores as holes around its data. */
static void test_sparse_zeros_in_archive(void **state)
{
	struct fixture *f = *state;
	const size_t size = 16 << 20;
	__do_free char *data = calloc(1, size);
	struct archive *a = archive_write_new();
	struct archive_entry *e = archive_entry_new();
	char err[512] = "", path[PATH_MAX];
	struct stat st;

	assert_non_null(data);
	memset(data + (8 << 20) + 10, 'z', 5000);   /* across two blocks */
	data[size - 1] = 'e';
	assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
	assert_int_equal(archive_write_open_filename(a, f->archive), ARCHIVE_OK);
	archive_entry_set_pathname(e, "zeros");
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0600);
	archive_entry_set_size(e, (la_int64_t)size);
	assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
	assert_int_equal(archive_write_data(a, data, size), (la_ssize_t)size);
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	archive_entry_free(e);

	assert_int_equal(extract_file(f, BASE_B, err, sizeof(err)), 0);
	tu_join(path, sizeof(path), f->target, "zeros");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, (off_t)size);
	/* Three 4 KiB blocks of data (two for 'z', one for 'e'). */
	if (st.st_blocks * 512LL > 64 << 10)
		fail_msg("the zeros took %lld bytes on disk", (long long)st.st_blocks * 512);
	{
		__do_free char *back = malloc(size);
		__do_close int fd = open(path, O_RDONLY | O_CLOEXEC);

		assert_non_null(back);
		assert_int_equal(pread(fd, back, size, 0), (ssize_t)size);
		assert_memory_equal(back, data, size);
	}
}

/* The reserve guard: f_bavail against the reserve and what comes next. */
static void test_space_left(void **state)
{
	struct fixture *f = *state;
	__do_close int fd = open(f->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	struct statvfs sv;
	uint64_t avail = 0, bavail;

	assert_true(fd >= 0);
	assert_int_equal(fsutil_space_left(fd, 0, 0, &avail), 0);
	assert_int_equal(statvfs(f->dir, &sv), 0);
	bavail = (uint64_t)sv.f_bavail * sv.f_frsize;
	/* Others write to this disk meanwhile: roughly the same. */
	assert_true(avail + (256 << 20) > bavail && avail < bavail + (256 << 20));
	assert_int_equal(fsutil_space_left(fd, avail + (1ULL << 40), 0, NULL), -ENOSPC);
	assert_int_equal(fsutil_space_left(fd, 0, avail + (1ULL << 40), NULL), -ENOSPC);
	assert_int_equal(fsutil_space_left(fd, UINT64_MAX, UINT64_MAX, NULL), -ENOSPC);
	assert_int_equal(fsutil_space_left(fd, 1 << 20, 1 << 20, NULL), 0);
}

/* A snapshot stops as its archive passes its limit, or as the disk would
 * keep less than its reserve; a restore does not write under the reserve. */
static void test_limits(void **state)
{
	struct fixture *f = *state;
	struct snapshot_stats wstats;
	struct snapshot_limits limits = { 0 };
	char err[512] = "", path[PATH_MAX];
	__do_free char *noise = malloc(8 << 20);
	uint64_t avail;
	struct stat st;

	assert_non_null(noise);
	assert_true(sodium_init() >= 0);
	randombytes_buf(noise, 8 << 20);
	tu_join(path, sizeof(path), f->layer, "noise");
	assert_int_equal(fsutil_write_atomic(path, noise, 8 << 20, 0644), 0);

	limits.max_archive = 1 << 20;
	assert_int_equal(write_layer(f, &limits, &wstats, err, sizeof(err)), -EDQUOT);
	assert_non_null(strstr(err, "1 MB"));
	/* Stopped as it passed the limit, not after the whole layer. */
	assert_int_equal(stat(f->archive, &st), 0);
	assert_true(st.st_size <= 1 << 20);

	{
		__do_close int dfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		assert_int_equal(fsutil_space_left(dfd, 0, 0, &avail), 0);
	}
	limits.max_archive = 0;
	limits.disk_reserve = avail + (1ULL << 40);
	err[0] = '\0';
	assert_int_equal(write_layer(f, &limits, &wstats, err, sizeof(err)), -ENOSPC);
	assert_non_null(strstr(err, "disk_reserve"));
	assert_int_equal(stat(f->archive, &st), 0);
	assert_int_equal(st.st_size, 0);

	assert_int_equal(write_layer(f, NULL, &wstats, err, sizeof(err)), 0);
	err[0] = '\0';
	assert_int_equal(extract_limited(f, &wstats, &limits, err, sizeof(err)), -ENOSPC);
	assert_non_null(strstr(err, "disk_reserve"));
	assert_int_equal(tu_count_entries(f->target), 0);
	limits.disk_reserve = 1 << 20;
	assert_int_equal(extract_limited(f, &wstats, &limits, err, sizeof(err)), 0);
	tu_join(path, sizeof(path), f->target, "noise");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 8 << 20);
}

static void test_threads(void **state)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);

	(void)state;
	assert_int_equal(snapshot_compress_threads(3), 3);
	assert_true(snapshot_compress_threads(0) >= 1);
	assert_true(snapshot_compress_threads(0) == (cores >= 2 ? (unsigned)(cores / 2) : 1u));
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

/* The archives' digest (OpenSSL) is the SHA-256 that archives written
 * with libsodium's recorded: the standard's vector, and a megabyte hashed
 * in uneven pieces against libsodium's one call. */
static void test_digest(void **state)
{
	static const char abc_hex[] =
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
	unsigned char *data = malloc(1 << 20), expect[crypto_hash_sha256_BYTES];
	char hex[TEMPLATE_HASH_HEX], want[TEMPLATE_HASH_HEX];
	struct digest d = { 0 };
	size_t off = 0, step = 1;

	(void)state;
	assert_non_null(data);
	assert_int_equal(sodium_init() < 0, 0);
	assert_int_equal(digest_init(&d), 0);
	digest_update(&d, "abc", 3);
	assert_int_equal(digest_final_hex(&d, hex), 0);
	assert_string_equal(hex, abc_hex);
	assert_null(d.ctx);

	randombytes_buf(data, 1 << 20);
	crypto_hash_sha256(expect, data, 1 << 20);
	sodium_bin2hex(want, sizeof(want), expect, sizeof(expect));
	assert_int_equal(digest_init(&d), 0);
	while (off < (1 << 20)) {
		size_t n = step < (1 << 20) - off ? step : (1 << 20) - off;

		digest_update(&d, data + off, n);
		off += n;
		step = step * 3 + 1;
	}
	assert_int_equal(digest_final_hex(&d, hex), 0);
	assert_string_equal(hex, want);
	/* Finished: a second final fails, updates and frees do nothing. */
	digest_update(&d, "x", 1);
	assert_int_equal(digest_final_hex(&d, hex), -EIO);
	digest_free(&d);
	free(data);
}

/* path's inode number and link count. */
static void inode_of(const char *dir, const char *rel, ino_t *ino, nlink_t *links)
{
	char path[PATH_MAX];
	struct stat st;

	tu_join(path, sizeof(path), dir, rel);
	assert_int_equal(lstat(path, &st), 0);
	*ino = st.st_ino;
	*links = st.st_nlink;
}

/* dir/rel's modification time. */
static struct timespec mtime_of(const char *dir, const char *rel)
{
	char path[PATH_MAX];
	struct stat st;

	tu_join(path, sizeof(path), dir, rel);
	assert_int_equal(lstat(path, &st), 0);
	return st.st_mtim;
}

static void set_mtime(const char *dir, const char *rel, struct timespec mtime)
{
	char path[PATH_MAX];
	struct timespec times[2] = { { .tv_nsec = UTIME_OMIT }, mtime };

	tu_join(path, sizeof(path), dir, rel);
	assert_int_equal(utimensat(AT_FDCWD, path, times, AT_SYMLINK_NOFOLLOW), 0);
}

/*
 * A restore over the layer it replaces links the files that layer still
 * has unchanged, and writes every other: one changed in its last byte
 * (its mtime put back, so only the bytes tell), one touched 10 s on, one whose
 * mode changed, one with an attribute, hard links, and one reached
 * through a directory the member replaced with a symbolic link to a
 * look-alike outside the layer.  The replaced layer is left as it was.
 */
static void test_restore_reuse(void **state)
{
	struct fixture *f = *state;
	const size_t big = 3u << 20;
	__do_free char *text = malloc(big + 1), *late = malloc(big + 1);
	char prev[PATH_MAX], path[PATH_MAX], other[PATH_MAX], err[512] = "";
	struct snapshot_limits limits = { 0 };
	struct snapshot_stats wstats, rstats;
	struct snapshot_info m = { 0 };
	struct timespec mtime;
	ino_t ino, ino2;
	nlink_t links, links2;

	assert_non_null(text);
	assert_non_null(late);
	for (size_t i = 0; i < big; i++)
		text[i] = (char)('a' + (i * 7 + i / 4096) % 26);
	text[big] = '\0';
	memcpy(late, text, big + 1);
	late[big - 1] = late[big - 1] == 'z' ? 'y' : 'z';

	assert_int_equal(tu_make_file(f->layer, "keep", text, BASE_A, BASE_A, 0644), 0);
	assert_int_equal(tu_make_file(f->layer, "small", "hi\n", BASE_A + 7, BASE_A + 7, 0600), 0);
	assert_int_equal(tu_make_file(f->layer, "empty", "", BASE_A, BASE_A, 0644), 0);
	assert_int_equal(tu_make_file(f->layer, "late", text, BASE_A, BASE_A, 0644), 0);
	assert_int_equal(tu_make_file(f->layer, "touched", "tt", BASE_A, BASE_A, 0644), 0);
	assert_int_equal(tu_make_file(f->layer, "moded", "mm", BASE_A, BASE_A, 0644), 0);
	assert_int_equal(tu_make_file(f->layer, "attr", "xx", BASE_A, BASE_A, 0644), 0);
	tu_join(path, sizeof(path), f->layer, "attr");
	assert_int_equal(setxattr(path, "user.tag", "blue", 4, 0), 0);
	assert_int_equal(tu_make_file(f->layer, "hard1", "hh", BASE_A, BASE_A, 0644), 0);
	tu_join(other, sizeof(other), f->layer, "hard2");
	tu_join(path, sizeof(path), f->layer, "hard1");
	assert_int_equal(link(path, other), 0);
	assert_int_equal(tu_make_dir(f->layer, "d", BASE_A, BASE_A, 0755), 0);
	assert_int_equal(tu_make_file(f->layer, "d/inner", "in", BASE_A, BASE_A, 0644), 0);
	{
		__do_close int out = open(f->archive, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		assert_true(out >= 0);
		assert_int_equal(snapshot_write(f->layer, out, BASE_A, 1, NULL, NULL, &wstats, err, sizeof(err)), 0);
	}
	snprintf(m.sha256, sizeof(m.sha256), "%s", wstats.sha256);
	m.content_size = wstats.content_bytes;

	/* The layer to replace: the snapshot restored, then changed. */
	{
		__do_close int fd = open(f->archive, O_RDONLY | O_CLOEXEC);

		assert_int_equal(snapshot_extract(fd, &m, f->target, BASE_B, &limits, NULL, &rstats, err, sizeof(err)), 0);
		assert_int_equal(rstats.reused_files, 0);
	}
	mtime = mtime_of(f->target, "late");
	assert_int_equal(tu_make_file(f->target, "late", late, BASE_B, BASE_B, 0644), 0);
	set_mtime(f->target, "late", mtime);
	mtime = mtime_of(f->target, "touched");
	mtime.tv_sec += 10;
	set_mtime(f->target, "touched", mtime);
	/* A fraction of a second apart, as a file of a live layer is from
	 * an archive of an earlier version (which kept whole seconds): still
	 * the same file. */
	mtime = mtime_of(f->target, "keep");
	mtime.tv_nsec = 500000000;
	set_mtime(f->target, "keep", mtime);
	tu_join(path, sizeof(path), f->target, "moded");
	assert_int_equal(chmod(path, 0600), 0);
	/* d becomes a link to a directory outside with the same inner file. */
	tu_join(path, sizeof(path), f->target, "d");
	tu_join(other, sizeof(other), f->target, "d.moved");
	assert_int_equal(rename(path, other), 0);
	tu_make_link(f->target, "d", f->outside);
	assert_int_equal(tu_make_file(f->outside, "inner", "in", BASE_B, BASE_B, 0644), 0);
	set_mtime(f->outside, "inner", mtime_of(f->target, "d.moved/inner"));

	tu_join(prev, sizeof(prev), f->dir, "restored");
	assert_int_equal(mkdir(prev, 0755), 0);
	assert_int_equal(chown(prev, BASE_B, BASE_B), 0);
	limits.previous_upper = f->target;
	{
		__do_close int fd = open(f->archive, O_RDONLY | O_CLOEXEC);

		assert_int_equal(snapshot_extract(fd, &m, prev, BASE_B, &limits, NULL, &rstats, err, sizeof(err)), 0);
	}
	assert_string_equal(rstats.sha256, wstats.sha256);
	/* keep, small and empty only. */
	assert_int_equal(rstats.reused_files, 3);
	assert_int_equal(rstats.reused_bytes, big + 3);
	inode_of(f->target, "keep", &ino, &links);
	inode_of(prev, "keep", &ino2, &links2);
	assert_true(ino == ino2 && links == 2);
	/* The archive's times, to the nanosecond, linked or written. */
	assert_int_equal(mtime_of(prev, "keep").tv_nsec, mtime_of(f->layer, "keep").tv_nsec);
	assert_int_equal(mtime_of(prev, "late").tv_sec, mtime_of(f->layer, "late").tv_sec);
	assert_int_equal(mtime_of(prev, "late").tv_nsec, mtime_of(f->layer, "late").tv_nsec);
	tu_assert_owner(prev, "small", BASE_B + 7, BASE_B + 7, 0600);
	tu_assert_text(prev, "small", "hi\n");
	tu_assert_text(prev, "empty", "");

	/* Everything else written from the archive, as it was archived. */
	{
		__do_free char *data = NULL;

		tu_join(path, sizeof(path), prev, "late");
		assert_int_equal(fsutil_read_file(path, 8 << 20, &data, NULL), 0);
		assert_true(strcmp(data, text) == 0);
	}
	inode_of(prev, "late", &ino, &links);
	assert_int_equal(links, 1);
	tu_assert_owner(prev, "moded", BASE_B, BASE_B, 0644);
	tu_assert_text(prev, "touched", "tt");
	tu_join(path, sizeof(path), prev, "attr");
	assert_int_equal(getxattr(path, "user.tag", other, sizeof(other)), 4);
	inode_of(prev, "hard1", &ino, &links);
	inode_of(prev, "hard2", &ino2, &links2);
	assert_true(ino == ino2 && links == 2);
	inode_of(prev, "d/inner", &ino, &links);
	inode_of(f->outside, "inner", &ino2, &links2);
	assert_true(ino != ino2 && links == 1 && links2 == 1);
	tu_assert_text(prev, "d/inner", "in");

	/* The replaced layer as it was left. */
	{
		__do_free char *data = NULL;

		tu_join(path, sizeof(path), f->target, "late");
		assert_int_equal(fsutil_read_file(path, 8 << 20, &data, NULL), 0);
		assert_true(strcmp(data, late) == 0);
	}
	tu_assert_owner(f->target, "moded", BASE_B, BASE_B, 0600);
	tu_assert_text(f->target, "d.moved/inner", "in");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_digest),
		cmocka_unit_test_setup_teardown(test_sparse_regions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sparse_zeros_in_archive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_space_left, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restore_reuse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allowed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attack_caps_v2, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attack_caps_v3, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attack_checksum, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attack_fifo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attack_content_size, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attack_no_recipe_hash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_owner_identity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_local_manifest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_owner_legacy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_owner_list_retire, setup, teardown),
	};

	log_init("test_snapshot", false, LOG_LEVEL_ERROR);
	if (!tu_have_root("test_snapshot"))
		return TU_SKIP;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
