/* SPDX-License-Identifier: MIT */
/*
 * Snapshots of a member's own layer: the upper directory of their overlay
 * (what they changed against their template) as a pax archive compressed
 * with zstd, and its extraction into a fresh upper directory.
 *
 * Sparse files keep their holes: every data region is found with
 * SEEK_DATA/SEEK_HOLE, however many, and stored as a GNU sparse 1.0 entry
 * of the pax archive (its map heads the entry's data, which is why the
 * regions are found before the entry is written).  Past a million regions
 * in one file, the shortest holes are stored as zeros (a file refused when
 * they would be more than 16 times its data).  A restore writes
 * the data only: holes, and any 4 KiB block of zeros (as archives of an
 * earlier version stored the holes of a file of more than 256 regions),
 * are left as holes, the file's size set at its end.  The manifest's
 * content_size counts files' apparent sizes, holes included; the disk a
 * restore takes is the data's.
 *
 * Both directions keep disk_reserve free on the disk they write to
 * (fsutil_space_left(), before the first byte and every 64 MiB), and a
 * snapshot stops as its archive passes the member's quota.
 *
 * Owners are stored relative to the container (host id - subid base), so
 * an archive restores under any member's base, on any server.  An id the
 * container cannot own is stored as 65534 (nobody) without set-id bits.
 *
 * Extraction trusts nothing in the archive: every entry is created by us,
 * from descriptors, below the new layer (openat2 RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV), owned by
 * the member's mapped ids.  Refused: absolute paths, "..", ids outside
 * 0..65535, devices, FIFOs and sockets (an overlay whiteout, a character
 * device 0:0, is kept), hard links to anything outside the layer, more file
 * data than the manifest's content_size, file capabilities other than a
 * revision 2 or 3 for a root id in 0..65535.  Symbolic links are created as
 * links and never followed.  The archive's checksum is verified before its
 * first entry is read, and again over the bytes the extraction read.
 */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <search.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <linux/capability.h>
#include <linux/openat2.h>

#include "image/digest.h"
#include "image/image.h"
#include "progress.h"
#include "array.h"
#include "cleanup.h"
#include "fsutil.h"
#include "log.h"
#include "strutil.h"
#include "banned.h"

#define SNAPSHOT_BUFFER (1024 * 1024)
#define SNAPSHOT_NOBODY 65534u
#define SNAPSHOT_MAX_DEPTH 512
#define SNAPSHOT_XATTR_LIST_MAX (64 * 1024)
#define SNAPSHOT_XATTR_VALUE_MAX (64 * 1024)
#define SNAPSHOT_XATTR_CAPS "security.capability"
#define SNAPSHOT_RESOLVE (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | \
			  RESOLVE_NO_XDEV)

/* A path from an archive, made printable for a message. */
static void snapshot_shown(const char *path, char *buf, size_t len)
{
	size_t j = 0;

	for (size_t i = 0; path[i] && j + 1 < len && i < 80; i++) {
		unsigned char c = (unsigned char)path[i];

		buf[j++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	buf[j] = '\0';
}

/*
 * The extended attributes a layer may carry: overlayfs' own markers of
 * opaque and renamed directories (the origin file handles are specific to
 * one server's template and are dropped), user attributes, and file
 * capabilities (whose root id is stored relative, like owners).
 */
static bool snapshot_xattr_kept(const char *name)
{
	return strcmp(name, "trusted.overlay.opaque") == 0 ||
	       strcmp(name, "trusted.overlay.redirect") == 0 ||
	       strncmp(name, "user.", 5) == 0 ||
	       strcmp(name, SNAPSHOT_XATTR_CAPS) == 0;
}

/*
 * A namespaced (version 3) file capability names the host id of the
 * namespace's root: stored relative to the member's base, like owners.
 * false (left out) when it is no capability of the container's.  Version 2
 * is stored as it is; a restore makes it the container root's.
 */
static bool snapshot_caps_relative(void *value, size_t size, uint32_t base)
{
	struct vfs_ns_cap_data caps;
	uint32_t rootid;

	if (size < sizeof(uint32_t))
		return false;
	memcpy(&caps, value, size < sizeof(caps) ? size : sizeof(caps));
	if ((le32toh(caps.magic_etc) & VFS_CAP_REVISION_MASK) != VFS_CAP_REVISION_3)
		return size == XATTR_CAPS_SZ_2;
	if (size != XATTR_CAPS_SZ_3)
		return false;
	rootid = le32toh(caps.rootid);
	if (rootid < base || rootid - base >= SUBID_COUNT)
		return false;
	caps.rootid = htole32(rootid - base);
	memcpy(value, &caps, size);
	return true;
}

/*
 * A file capability from an archive, as the kernel stores one that the
 * container's root sets (cap_convert_nscap()): revision 3, its root id the
 * member's host id.  Written unchanged, a revision 2 capability (no root id)
 * would hold in every namespace, the host's own too: it becomes the
 * container root's.  Returns NULL, or why the archive is refused.
 */
static const char *snapshot_caps_restore(const void *value, size_t size, uint32_t base,
					 struct vfs_ns_cap_data *out)
{
	uint32_t magic, rootid;

	memset(out, 0, sizeof(*out));
	if (size < sizeof(magic))
		return "a file capability of a bad length";
	memcpy(&magic, value, sizeof(magic));
	magic = le32toh(magic);
	if (magic & ~(uint32_t)(VFS_CAP_REVISION_MASK | VFS_CAP_FLAGS_EFFECTIVE))
		return "a file capability with unknown flags";
	switch (magic & VFS_CAP_REVISION_MASK) {
	case VFS_CAP_REVISION_2:
		if (size != XATTR_CAPS_SZ_2)
			return "a file capability of a bad length";
		memcpy(out, value, size);
		rootid = 0;
		break;
	case VFS_CAP_REVISION_3:
		if (size != XATTR_CAPS_SZ_3)
			return "a file capability of a bad length";
		memcpy(out, value, size);
		rootid = le32toh(out->rootid);
		break;
	default:
		return "a file capability of an unknown revision";
	}
	if (rootid >= SUBID_COUNT)
		return "a file capability for a root id outside the container's ids 0-65535";
	out->magic_etc = htole32(VFS_CAP_REVISION_3 | (magic & VFS_CAP_FLAGS_EFFECTIVE));
	out->rootid = htole32(base + rootid);
	return NULL;
}

/* ---- writing ----------------------------------------------------------- */

struct snapshot_link {
	dev_t dev;
	ino_t ino;
	char *path;
};

struct snapshot_writer {
	struct archive *ar;
	int out_fd;
	uint32_t base;
	void *links;
	struct digest sha;
	unsigned long long written;           /* archive bytes */
	struct snapshot_limits limits;
	unsigned long long next_space_check;  /* archive bytes */
	int stopped;                          /* -EDQUOT, -ENOSPC: a limit was met */
	unsigned long long total, done;       /* file data */
	unsigned next_percent;
	unsigned skipped;
	struct progress *progress;
	struct snapshot_stats *stats;
	char *buffer;
	const char *zeros;
	char *err;
	size_t errlen;
};

static int snapshot_link_compare(const void *a, const void *b)
{
	const struct snapshot_link *x = a, *y = b;

	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

static void snapshot_link_free(void *p)
{
	struct snapshot_link *l = p;

	free(l->path);
	free(l);
}

/*
 * The reserve guard of the disk written to (fd's), before the first byte
 * and every FSUTIL_RESERVE_STEP bytes since (*next_check, advanced here).
 * -ENOSPC with a sentence naming disk_reserve in err.
 */
static int snapshot_guard_reserve(int fd, unsigned long long reserve, unsigned long long written,
				  unsigned long long *next_check, const char *what, char *err,
				  size_t errlen)
{
	uint64_t avail;
	int ret;

	if (!reserve || written < *next_check)
		return 0;
	ret = fsutil_space_left(fd, reserve, FSUTIL_RESERVE_STEP, &avail);
	if (ret == -ENOSPC) {
		set_first_error(err, errlen,
				"the disk of %s has %llu MB free, and the agent keeps %llu MB of it free (disk_reserve)",
				what, (unsigned long long)(avail >> 20), reserve >> 20);
		return ret;
	}
	if (ret < 0) {
		set_first_error(err, errlen, "cannot tell the free space of the disk of %s: %s", what,
				strerror(-ret));
		return ret;
	}
	*next_check = written + FSUTIL_RESERVE_STEP;
	return 0;
}

/* The archive may take len more bytes: under its limit, and the disk
 * keeps its reserve.  Otherwise w->stopped says which, err why. */
static int snapshot_check_limits(struct snapshot_writer *w, size_t len)
{
	int ret;

	if (w->limits.max_archive && w->written + len > w->limits.max_archive) {
		set_first_error(w->err, w->errlen, "the archive would pass %llu MB, the most it may take",
				w->limits.max_archive >> 20);
		w->stopped = -EDQUOT;
		return w->stopped;
	}
	ret = snapshot_guard_reserve(w->out_fd, w->limits.disk_reserve, w->written + len,
				     &w->next_space_check, "the snapshot store", w->err, w->errlen);
	if (ret < 0)
		w->stopped = ret == -ENOSPC ? -ENOSPC : -EIO;
	return ret;
}

static la_ssize_t snapshot_write_cb(struct archive *ar, void *data, const void *buf, size_t len)
{
	struct snapshot_writer *w = data;
	int ret;

	ret = snapshot_check_limits(w, len);
	if (ret < 0) {
		archive_set_error(ar, -ret, "a limit was met");
		return -1;
	}
	digest_update(&w->sha, buf, len);
	ret = fsutil_write_all(w->out_fd, buf, len);
	if (ret < 0) {
		archive_set_error(ar, -ret, "cannot write the archive");
		return -1;
	}
	w->written += len;
	return (la_ssize_t)len;
}

/* Bytes of file data under dfd (for the progress percentage). */
static unsigned long long snapshot_measure(int dfd, unsigned depth)
{
	__do_closedir DIR *dir = NULL;
	unsigned long long total = 0;
	struct dirent *de;
	int fd;

	if (depth > SNAPSHOT_MAX_DEPTH)
		return 0;
	fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	dir = fsutil_fdopendir(fd);
	if (!dir)
		return 0;
	while ((de = readdir(dir))) {
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISREG(st.st_mode)) {
			/* A sparse file: its data regions are what is read. */
			unsigned long long used = (unsigned long long)st.st_blocks * 512;

			total += used < (unsigned long long)st.st_size ? used : (unsigned long long)st.st_size;
		} else if (S_ISDIR(st.st_mode)) {
			__do_close int sub = openat(dirfd(dir), de->d_name,
						    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			if (sub >= 0)
				total += snapshot_measure(sub, depth + 1);
		}
	}
	return total;
}

static void snapshot_report(struct snapshot_writer *w)
{
	unsigned percent;

	if (!w->progress || w->total == 0)
		return;
	percent = (unsigned)(w->done * 100 / w->total);
	if (percent > 100)
		percent = 100;
	if (percent < w->next_percent)
		return;
	progress_say(w->progress, "Snapshot: %u%% (%llu of %llu MB read, %llu MB written)", percent,
		     w->done / (1024 * 1024), w->total / (1024 * 1024), w->written / (1024 * 1024));
	w->next_percent = (percent / 10 + 1) * 10;
}

/* The kept extended attributes of the entry (at dfd/name, or dfd itself). */
static int snapshot_read_xattrs(struct snapshot_writer *w, int dfd, const char *name,
				struct archive_entry *entry)
{
	__do_free char *list = malloc(SNAPSHOT_XATTR_LIST_MAX);
	__do_free char *value = malloc(SNAPSHOT_XATTR_VALUE_MAX);
	char path[64];
	ssize_t n;

	if (!list || !value)
		return -ENOMEM;
	if (name)
		snprintf(path, sizeof(path), "/proc/self/fd/%d/", dfd);
	else
		snprintf(path, sizeof(path), "/proc/self/fd/%d", dfd);
	{
		char full[PATH_MAX];

		if (snprintf(full, sizeof(full), "%s%s", path, name ? name : "") >= (int)sizeof(full))
			return -ENAMETOOLONG;
		/* The l-variants never follow the entry itself; the directory
		 * is pinned by its descriptor. */
		n = llistxattr(full, list, SNAPSHOT_XATTR_LIST_MAX);
		if (n < 0)
			return errno == ENOTSUP || errno == ENODATA ? 0 : -errno;
		for (ssize_t off = 0; off < n; off += (ssize_t)strlen(list + off) + 1) {
			const char *x = list + off;
			ssize_t len;

			if (!snapshot_xattr_kept(x))
				continue;
			len = lgetxattr(full, x, value, SNAPSHOT_XATTR_VALUE_MAX);
			if (len < 0)
				continue;
			if (strcmp(x, SNAPSHOT_XATTR_CAPS) == 0 &&
			    !snapshot_caps_relative(value, (size_t)len, w->base))
				continue;
			archive_entry_xattr_add_entry(entry, x, value, (size_t)len);
		}
	}
	return 0;
}

struct snapshot_region {
	off_t start, end;
};

/* The data regions of one file, found by SEEK_DATA/SEEK_HOLE. */
struct snapshot_regions {
	struct snapshot_region *v;
	size_t n, cap;
	unsigned long long data;    /* the bytes they span */
	unsigned long long zeros;   /* of which holes taken into them */
};

/*
 * The most regions kept for one file: the archive's sparse map of a file,
 * and libarchive's lists of it, grow with them (about 150 bytes each).  A
 * file of more has its shortest holes stored as zeros instead, which a
 * restore turns into holes again (snapshot_write_at), as long as they are
 * not more than SNAPSHOT_ZEROS_RATIO times its data: wide holes would be
 * read and compressed for hours.
 */
#define SNAPSHOT_REGIONS_MAX (1u << 20)
#define SNAPSHOT_MIN_HOLE_FIRST (64 * 1024)
#define SNAPSHOT_ZEROS_RATIO 16

/* One data region or more into r: holes shorter than min_hole are taken
 * into the data around them.  -E2BIG past SNAPSHOT_REGIONS_MAX. */
static int snapshot_add_region(struct snapshot_regions *r, off_t start, off_t end, off_t min_hole)
{
	if (r->n > 0 && start - r->v[r->n - 1].end < min_hole) {
		r->data += (unsigned long long)(end - r->v[r->n - 1].end);
		r->zeros += (unsigned long long)(start - r->v[r->n - 1].end);
		r->v[r->n - 1].end = end;
		return 0;
	}
	if (r->n == SNAPSHOT_REGIONS_MAX)
		return -E2BIG;
	if (ARRAY_RESERVE(r->v, r->cap, r->n) < 0)
		return -ENOMEM;
	r->v[r->n].start = start;
	r->v[r->n].end = end;
	r->n++;
	r->data += (unsigned long long)(end - start);
	return 0;
}

/* Every data region of fd up to size, from its start to its end. */
static int snapshot_scan_regions(int fd, off_t size, off_t min_hole, struct snapshot_regions *r)
{
	off_t pos = 0;
	int ret;

	r->n = 0;
	r->data = 0;
	r->zeros = 0;
	while (pos < size) {
		off_t start = lseek(fd, pos, SEEK_DATA), end;

		if (start < 0 && errno == ENXIO)
			break;   /* only a hole is left */
		if (start < 0)
			return -errno;
		if (start >= size)
			break;
		end = lseek(fd, start, SEEK_HOLE);
		/* Changed under us: the rest is data, read as it is. */
		if (end <= start || end > size)
			end = size;
		ret = snapshot_add_region(r, start, end, min_hole);
		if (ret < 0)
			return ret;
		pos = end;
	}
	return 0;
}

/*
 * The data regions of the file at fd (of size bytes): every one of them,
 * however many; past SNAPSHOT_REGIONS_MAX, holes of less than 64 KiB, then
 * 128 KiB and so on, are counted as data until they fit.  -E2BIG when that
 * takes more than SNAPSHOT_ZEROS_RATIO times the file's data in holes.
 */
static int snapshot_find_regions(int fd, off_t size, struct snapshot_regions *r)
{
	off_t min_hole = 0;
	int ret;

	for (;;) {
		ret = snapshot_scan_regions(fd, size, min_hole, r);
		if (ret != -E2BIG)
			break;
		min_hole = min_hole ? min_hole * 2 : SNAPSHOT_MIN_HOLE_FIRST;
	}
	if (ret == 0 && r->zeros / SNAPSHOT_ZEROS_RATIO > r->data - r->zeros)
		return -E2BIG;
	return ret;
}

static void snapshot_declare_sparse(struct archive_entry *entry,
				    const struct snapshot_region *regions, size_t n, off_t size)
{
	for (size_t i = 0; i < n; i++)
		archive_entry_sparse_add_entry(entry, regions[i].start,
					       regions[i].end - regions[i].start);
	/* A file that is one hole: without an entry it would not be sparse. */
	if (n == 0)
		archive_entry_sparse_add_entry(entry, size, 0);
}

/*
 * libarchive takes the whole logical file of a sparse entry and skips the
 * holes itself: zeros for them, from *pos up to end, from memory that
 * costs nothing.
 */
static int snapshot_write_hole(struct snapshot_writer *w, off_t *pos, off_t end)
{
	while (*pos < end) {
		size_t want = (size_t)(end - *pos) > SNAPSHOT_BUFFER ? SNAPSHOT_BUFFER : (size_t)(end - *pos);

		if (archive_write_data(w->ar, w->zeros, want) < 0)
			return -EIO;
		*pos += (off_t)want;
	}
	return 0;
}

/* The bytes of one region of fd; *pos follows what was written. */
static int snapshot_write_region(struct snapshot_writer *w, int fd,
				 const struct snapshot_region *region, off_t *pos)
{
	off_t off = region->start;

	while (off < region->end) {
		size_t want = (size_t)(region->end - off);
		ssize_t n;

		if (want > SNAPSHOT_BUFFER)
			want = SNAPSHOT_BUFFER;
		n = pread(fd, w->buffer, want, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) {
			/* Shrunk under us: keep the declared size. */
			memset(w->buffer, 0, want);
			n = (ssize_t)want;
		}
		if (archive_write_data(w->ar, w->buffer, (size_t)n) < 0)
			return -EIO;
		off += n;
		*pos = off;
		w->done += (unsigned long long)n;
		snapshot_report(w);
	}
	return 0;
}

static int snapshot_write_data(struct snapshot_writer *w, int fd, struct archive_entry *entry,
			       const struct stat *st)
{
	__do_free struct snapshot_region *found = NULL;
	struct snapshot_regions r = { 0 };
	off_t size = st->st_size, pos = 0;
	struct snapshot_region all = { 0, size };
	const struct snapshot_region *v = &all;
	size_t n = 1;
	bool sparse;
	int ret;

	/* Holes: a sparse file is stored as its data regions only. */
	ret = snapshot_find_regions(fd, size, &r);
	found = r.v;
	if (ret < 0)
		return ret;
	sparse = r.data < (unsigned long long)size;
	if (sparse) {
		snapshot_declare_sparse(entry, r.v, r.n, size);
		v = r.v;
		n = r.n;
	}
	if (archive_write_header(w->ar, entry) < ARCHIVE_WARN)
		return -EIO;
	for (size_t i = 0; i < n; i++) {
		ret = sparse ? snapshot_write_hole(w, &pos, v[i].start) : 0;
		if (ret == 0)
			ret = snapshot_write_region(w, fd, &v[i], &pos);
		if (ret < 0)
			return ret;
	}
	ret = sparse ? snapshot_write_hole(w, &pos, size) : 0;
	if (ret < 0)
		return ret;
	w->stats->content_bytes += (unsigned long long)size;
	return 0;
}

/* Owners relative to the container; an id not the container's is nobody,
 * without the set-id bit it would have granted. */
static void snapshot_entry_owner_relative(struct snapshot_writer *w, struct archive_entry *entry,
					  const struct stat *st)
{
	uint32_t uid = st->st_uid, gid = st->st_gid;
	mode_t mode = st->st_mode;

	if (uid >= w->base && uid - w->base < SUBID_COUNT) {
		uid -= w->base;
	} else {
		uid = SNAPSHOT_NOBODY;
		mode &= ~(mode_t)(S_ISUID | S_ISGID);
	}
	if (gid >= w->base && gid - w->base < SUBID_COUNT) {
		gid -= w->base;
	} else {
		gid = SNAPSHOT_NOBODY;
		mode &= ~(mode_t)S_ISGID;
	}
	archive_entry_set_uid(entry, uid);
	archive_entry_set_gid(entry, gid);
	archive_entry_set_mode(entry, mode);
}

/*
 * A file with several links: the first one met is stored with its data
 * (0, remembered by its inode), the others as hard links to it (1, the
 * header written here).
 */
static int snapshot_write_hardlink(struct snapshot_writer *w, struct archive_entry *entry,
				   const char *rel, const struct stat *st)
{
	struct snapshot_link *key = calloc(1, sizeof(*key)), **found;

	if (!key)
		return -ENOMEM;
	key->dev = st->st_dev;
	key->ino = st->st_ino;
	found = tsearch(key, &w->links, snapshot_link_compare);
	if (!found) {
		free(key);
		return -ENOMEM;
	}
	if (*found != key) {
		free(key);
		archive_entry_set_hardlink(entry, (*found)->path);
		archive_entry_set_size(entry, 0);
		if (archive_write_header(w->ar, entry) < ARCHIVE_WARN)
			return -EIO;
		return 1;
	}
	key->path = strdup(rel);
	if (!key->path)
		return -ENOMEM;
	return 0;
}

static int snapshot_write_file(struct snapshot_writer *w, int dfd, const char *name,
			       struct archive_entry *entry, const struct stat *st)
{
	__do_close int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK |
				   O_CLOEXEC);

	if (fd < 0)
		return -errno;
	return snapshot_write_data(w, fd, entry, st);
}

static int snapshot_write_symlink(struct snapshot_writer *w, int dfd, const char *name,
				  struct archive_entry *entry)
{
	char target[PATH_MAX];
	ssize_t n = readlinkat(dfd, name, target, sizeof(target) - 1);

	if (n < 0)
		return -errno;
	target[n] = '\0';
	archive_entry_set_symlink(entry, target);
	archive_entry_set_size(entry, 0);
	if (archive_write_header(w->ar, entry) < ARCHIVE_WARN)
		return -EIO;
	return 0;
}

/* One entry of the layer into the archive: its header, xattrs and data. */
static int snapshot_write_one(struct snapshot_writer *w, int dfd, const char *name,
			      const char *rel, const struct stat *st, struct archive_entry *entry)
{
	int ret;

	archive_entry_copy_stat(entry, st);
	archive_entry_set_pathname(entry, rel);
	snapshot_entry_owner_relative(w, entry, st);
	archive_entry_set_dev(entry, 0);
	archive_entry_set_ino(entry, 0);
	archive_entry_set_nlink(entry, 1);

	ret = snapshot_read_xattrs(w, dfd, name, entry);
	if (ret < 0)
		return ret;
	if (S_ISREG(st->st_mode) && st->st_nlink > 1) {
		ret = snapshot_write_hardlink(w, entry, rel, st);
		if (ret != 0)
			return ret < 0 ? ret : 0;
	}
	if (S_ISREG(st->st_mode)) {
		char shown[96];

		ret = snapshot_write_file(w, dfd, name, entry, st);
		snapshot_shown(rel, shown, sizeof(shown));
		if (ret == -E2BIG)
			set_first_error(w->err, w->errlen,
					"/%s has more than %u data regions, far apart: it cannot be archived with its holes (remove it, or write its holes out)",
					shown, SNAPSHOT_REGIONS_MAX);
		return ret;
	}
	if (S_ISLNK(st->st_mode))
		return snapshot_write_symlink(w, dfd, name, entry);
	archive_entry_set_size(entry, 0);
	if (archive_write_header(w->ar, entry) < ARCHIVE_WARN)
		return -EIO;
	return 0;
}

static int snapshot_write_entry(struct snapshot_writer *w, int dfd, const char *name,
				const char *rel, const struct stat *st)
{
	struct archive_entry *entry = archive_entry_new();
	int ret;

	if (!entry)
		return -ENOMEM;
	ret = snapshot_write_one(w, dfd, name, rel, st, entry);
	if (ret == 0)
		w->stats->entries++;
	archive_entry_free(entry);
	return ret;
}

static int snapshot_walk(struct snapshot_writer *w, int dfd, char *rel, size_t rellen,
			 unsigned depth)
{
	__do_closedir DIR *dir = NULL;
	struct dirent *de;
	int fd, ret;

	if (depth > SNAPSHOT_MAX_DEPTH) {
		set_first_error(w->err, w->errlen, "your layer is nested more than %d directories deep",
				 SNAPSHOT_MAX_DEPTH);
		return -ELOOP;
	}
	fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	dir = fsutil_fdopendir(fd);
	if (!dir)
		return -errno;
	while ((de = readdir(dir))) {
		struct stat st;
		size_t len;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
		len = strlen(de->d_name);
		if (rellen + len + 2 >= PATH_MAX) {
			set_first_error(w->err, w->errlen, "a path in your layer is longer than %d bytes",
					 PATH_MAX);
			return -ENAMETOOLONG;
		}
		if (rellen)
			rel[rellen] = '/';
		memcpy(rel + rellen + (rellen ? 1 : 0), de->d_name, len + 1);

		if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || S_ISBLK(st.st_mode) ||
		    (S_ISCHR(st.st_mode) && st.st_rdev != makedev(0, 0))) {
			/* Nothing a restore would accept, nothing worth keeping. */
			w->skipped++;
			rel[rellen] = '\0';
			continue;
		}
		ret = snapshot_write_entry(w, dirfd(dir), de->d_name, rel, &st);
		if (ret == 0 && S_ISDIR(st.st_mode)) {
			__do_close int sub = openat(dirfd(dir), de->d_name,
						    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			if (sub < 0)
				ret = -errno;
			else
				ret = snapshot_walk(w, sub, rel, rellen + len + (rellen ? 1 : 0),
						    depth + 1);
		}
		rel[rellen] = '\0';
		if (ret < 0)
			return ret;
	}
	return 0;
}

unsigned snapshot_compress_threads(unsigned configured)
{
	long n;

	if (configured)
		return configured;
	/* Half the cores: members' jobs keep the rest. */
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n >= 2 ? (unsigned)(n / 2) : 1;
}

/* A zstd-compressed pax archive through snapshot_write_cb(), compressed
 * on threads cores (snapshot_compress_threads()). */
static int snapshot_open_archive(struct snapshot_writer *w, unsigned threads)
{
	char option[32];

	snprintf(option, sizeof(option), "%u", snapshot_compress_threads(threads));
	/* Full pax, not pax_restricted: every entry's times to the
	 * nanosecond (restricted pax keeps whole seconds unless an entry needs
	 * a pax header anyway), so a restore gives back what make and rsync
	 * compare.  About 1 KiB more per entry before compression. */
	if (archive_write_set_format_pax(w->ar) != ARCHIVE_OK ||
	    archive_write_add_filter_zstd(w->ar) != ARCHIVE_OK)
		return log_error_errno(-ENOTSUP, 0, "libarchive cannot write zstd-compressed pax: %s",
				       archive_error_string(w->ar));
	if (archive_write_set_filter_option(w->ar, "zstd", "threads", option) != ARCHIVE_OK)
		log_warn("libarchive's zstd filter takes no threads option; compressing on one core");
	archive_write_set_bytes_in_last_block(w->ar, 1);
	if (archive_write_open(w->ar, w, NULL, snapshot_write_cb, NULL) != ARCHIVE_OK)
		return log_error_errno(-EIO, 0, "cannot start the archive: %s",
				       archive_error_string(w->ar));
	return 0;
}

/* The whole layer from rootfd (whose stat is st) into the open archive, and
 * the archive's end; why it failed goes to the member, through w->err. */
static int snapshot_write_layer(struct snapshot_writer *w, int rootfd, const struct stat *st,
				char *rel)
{
	int ret;

	/* The layer's root itself: its owner, mode and attributes. */
	ret = snapshot_write_entry(w, rootfd, NULL, ".", st);
	if (ret == 0)
		ret = snapshot_walk(w, rootfd, rel, 0, 0);
	if (ret == 0 && archive_write_close(w->ar) != ARCHIVE_OK) {
		if (!w->stopped)
			log_error("cannot finish the archive: %s", archive_error_string(w->ar));
		ret = -EIO;
	}
	if (ret < 0)
		set_first_error(w->err, w->errlen, "cannot write the snapshot: %s",
				 ret == -EIO && archive_error_string(w->ar) ? archive_error_string(w->ar)
									   : strerror(-ret));
	return ret;
}

/* The finished archive's digest and size, and its last progress line. */
static int snapshot_write_done(struct snapshot_writer *w, const char *upper_dir)
{
	if (digest_final_hex(&w->sha, w->stats->sha256) < 0)
		return -EIO;
	w->stats->archive_bytes = w->written;
	if (w->skipped)
		log_warn("%s: %u FIFOs, sockets or devices were left out of the snapshot", upper_dir,
			 w->skipped);
	w->done = w->total;
	w->next_percent = 0;
	snapshot_report(w);
	return 0;
}

int snapshot_write(const char *upper_dir, int out_fd, uint32_t subid_base, unsigned threads,
		   const struct snapshot_limits *limits, struct progress *progress,
		   struct snapshot_stats *stats, char *err, size_t errlen)
{
	__do_close int rootfd = -EBADF;
	__do_free char *buffer = malloc(SNAPSHOT_BUFFER);
	__do_free char *rel = calloc(1, PATH_MAX);
	__do_free char *zeros = calloc(1, SNAPSHOT_BUFFER);
	struct snapshot_writer w = { 0 };
	struct stat st;
	int ret;

	if (err && errlen)
		err[0] = '\0';
	memset(stats, 0, sizeof(*stats));
	if (!buffer || !rel || !zeros)
		return -ENOMEM;
	rootfd = open(upper_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rootfd < 0)
		return log_error_errno(-errno, errno, "cannot open %s", upper_dir);
	if (fstat(rootfd, &st) < 0)
		return -errno;

	w.out_fd = out_fd;
	w.base = subid_base;
	w.progress = progress;
	w.stats = stats;
	w.buffer = buffer;
	w.zeros = zeros;
	w.err = err;
	w.errlen = errlen;
	if (limits)
		w.limits = *limits;
	/* Not a byte read while the disk is short already. */
	ret = snapshot_check_limits(&w, 0);
	if (ret < 0)
		return w.stopped;
	w.total = snapshot_measure(rootfd, 0);
	ret = digest_init(&w.sha);
	if (ret < 0)
		return ret;

	w.ar = archive_write_new();
	if (!w.ar) {
		digest_free(&w.sha);
		return -ENOMEM;
	}
	ret = snapshot_open_archive(&w, threads);
	if (ret == 0)
		ret = snapshot_write_layer(&w, rootfd, &st, rel);
	if (ret == 0)
		ret = snapshot_write_done(&w, upper_dir);
	archive_write_free(w.ar);
	digest_free(&w.sha);
	tdestroy(w.links, snapshot_link_free);
	return ret < 0 && w.stopped ? w.stopped : ret;
}

/* ---- extraction ---------------------------------------------------------- */

struct snapshot_dirtime {
	char *path;
	struct timespec times[2];
};

struct snapshot_reader {
	int fd;
	char *buffer;
	struct digest sha;
	unsigned long long bytes;
	int rootfd;
	uint32_t base;
	unsigned long long content_limit;     /* the manifest's content_size */
	unsigned long long disk_reserve;      /* bytes the layer's disk keeps free */
	unsigned long long written;           /* file data written (holes left out) */
	unsigned long long next_space_check;
	/* The last parent directory opened, reused by its siblings. */
	char cached_parent[PATH_MAX];
	int cached_fd;
	/* The layer the restore replaces (-EBADF: none), and a buffer to
	 * read its files into for the comparison. */
	int prevfd;
	char *compare;
	struct snapshot_dirtime *dirs;
	size_t ndirs, capdirs;
	struct snapshot_stats *stats;
	struct progress *progress;
	unsigned long long next_report;
	char *err;
	size_t errlen;
};

/* The next block of the archive into r->buffer, added to sha and *bytes:
 * its length, 0 at the end, or a negative errno. */
static ssize_t snapshot_read_block(struct snapshot_reader *r, struct digest *sha,
				   unsigned long long *bytes)
{
	ssize_t n;

	do
		n = read(r->fd, r->buffer, SNAPSHOT_BUFFER);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	digest_update(sha, r->buffer, (size_t)n);
	*bytes += (unsigned long long)n;
	return n;
}

static la_ssize_t snapshot_read_cb(struct archive *ar, void *data, const void **buf)
{
	struct snapshot_reader *r = data;
	ssize_t n = snapshot_read_block(r, &r->sha, &r->bytes);

	if (n < 0) {
		archive_set_error(ar, (int)-n, "cannot read the archive");
		return -1;
	}
	*buf = r->buffer;
	if (r->progress && r->bytes >= r->next_report) {
		progress_say(r->progress, "Restore: %llu MB of the archive read", r->bytes / (1024 * 1024));
		r->next_report = r->bytes + 64ull * 1024 * 1024;
	}
	return n;
}

/*
 * An archive path as a clean relative path: leading "./" dropped, trailing
 * '/' dropped; "" is the layer's root.  Refused: absolute, empty, "." or
 * ".." components.
 */
static int snapshot_clean_path(const char *path, char *out, size_t outlen)
{
	const char *p = path;
	size_t len;

	while (p[0] == '.' && p[1] == '/')
		p += 2;
	if (*p == '/')
		return -EPERM;
	if (strcmp(p, ".") == 0)
		p = "";
	len = strlen(p);
	while (len > 0 && p[len - 1] == '/')
		len--;
	if (len >= outlen)
		return -ENAMETOOLONG;
	memcpy(out, p, len);
	out[len] = '\0';
	if (len == 0)
		return 0;
	for (char *c = out;;) {
		char *slash = strchr(c, '/');
		size_t clen = slash ? (size_t)(slash - c) : strlen(c);

		if (clen == 0 || (clen == 1 && c[0] == '.') || (clen == 2 && c[0] == '.' && c[1] == '.'))
			return -EPERM;
		if (!slash)
			break;
		c = slash + 1;
	}
	return 0;
}

static int snapshot_openat2(int dirfd, const char *rel, int flags)
{
	struct open_how how = { .flags = (uint64_t)(flags | O_CLOEXEC), .resolve = SNAPSHOT_RESOLVE };
	int fd;

	do
		fd = (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
	while (fd < 0 && (errno == EAGAIN || errno == EINTR));
	return fd < 0 ? -errno : fd;
}

/*
 * A descriptor (O_PATH) of the directory parent below the root, created
 * (owned by the container's root, 0755) where missing; never through a
 * symbolic link.  Owned by the reader's cache: do not close.
 */
static int snapshot_parent(struct snapshot_reader *r, const char *parent, bool create)
{
	__do_free char *copy = NULL;
	__do_close int fd = -EBADF;
	char *saveptr = NULL;

	if (r->cached_fd >= 0 && strcmp(r->cached_parent, parent) == 0)
		return r->cached_fd;
	if (!*parent)
		return r->rootfd;
	fd = snapshot_openat2(r->rootfd, parent, O_PATH | O_DIRECTORY);
	if (fd == -ENOENT && create) {
		copy = strdup(parent);
		if (!copy)
			return -ENOMEM;
		fd = fcntl(r->rootfd, F_DUPFD_CLOEXEC, 3);
		if (fd < 0)
			return -errno;
		for (char *c = strtok_r(copy, "/", &saveptr); c; c = strtok_r(NULL, "/", &saveptr)) {
			int next = snapshot_openat2(fd, c, O_PATH | O_DIRECTORY);

			if (next == -ENOENT) {
				if (mkdirat(fd, c, 0755) < 0)
					return -errno;
				if (fchownat(fd, c, r->base, r->base, AT_SYMLINK_NOFOLLOW) < 0)
					return -errno;
				next = snapshot_openat2(fd, c, O_PATH | O_DIRECTORY);
			}
			if (next < 0)
				return next;
			close(fd);
			fd = next;
		}
	}
	if (fd < 0)
		return fd;
	if (r->cached_fd >= 0)
		close(r->cached_fd);
	snprintf(r->cached_parent, sizeof(r->cached_parent), "%s", parent);
	r->cached_fd = move_fd(fd);
	return r->cached_fd;
}

static int snapshot_refuse(struct snapshot_reader *r, const char *path, const char *why);

static int snapshot_set_xattrs(struct snapshot_reader *r, struct archive_entry *entry, int fd,
			       int dfd, const char *name)
{
	const char *xname;
	const void *value;
	size_t size;
	char path[PATH_MAX];

	if (archive_entry_xattr_reset(entry) == 0)
		return 0;
	if (fd < 0 && snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dfd, name) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	while (archive_entry_xattr_next(entry, &xname, &value, &size) == ARCHIVE_OK) {
		__do_free void *copy = NULL;
		struct vfs_ns_cap_data caps;
		int ret;

		if (!xname || !snapshot_xattr_kept(xname) || size > SNAPSHOT_XATTR_VALUE_MAX)
			continue;
		if (strcmp(xname, SNAPSHOT_XATTR_CAPS) == 0) {
			const char *why = snapshot_caps_restore(value, size, r->base, &caps);

			if (why)
				return snapshot_refuse(r, archive_entry_pathname(entry), why);
			value = &caps;
			size = XATTR_CAPS_SZ_3;
		}
		copy = malloc(size ? size : 1);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, value, size);
		if (fd >= 0)
			ret = fsetxattr(fd, xname, copy, size, 0);
		else
			ret = lsetxattr(path, xname, copy, size, 0);
		if (ret < 0 && errno != ENOTSUP && errno != EPERM)
			return -errno;
	}
	return 0;
}

static int snapshot_refuse(struct snapshot_reader *r, const char *path, const char *why)
{
	char shown[96];

	snapshot_shown(path, shown, sizeof(shown));
	set_first_error(r->err, r->errlen, "the archive is refused: %s (%s)", why, shown);
	return -EPERM;
}

#define SNAPSHOT_ZERO_BLOCK 4096

static bool snapshot_is_zero(const char *p, size_t len)
{
	return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

/* The bytes from p (at offset of the file) that are zeros, by blocks of
 * the file, or (zeros false) that are not. */
static size_t snapshot_span(const char *p, size_t size, off_t offset, bool zeros)
{
	size_t len = 0;

	while (len < size) {
		size_t chunk = SNAPSHOT_ZERO_BLOCK - (size_t)((offset + (off_t)len) % SNAPSHOT_ZERO_BLOCK);

		if (chunk > size - len)
			chunk = size - len;
		if (snapshot_is_zero(p + len, chunk) != zeros)
			break;
		len += chunk;
	}
	return len;
}

static int snapshot_pwrite_all(int fd, const char *p, size_t size, off_t offset)
{
	while (size > 0) {
		ssize_t n = pwrite(fd, p, size, offset);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		size -= (size_t)n;
		offset += n;
	}
	return 0;
}

/*
 * A block of a new file's data at offset: what is not zeros is written,
 * under the reserve guard; zeros (by 4 KiB blocks of the file) are left as
 * holes, read back as zeros, the file's size set by ftruncate() at its end.
 * So a restore takes no more disk than the data: the holes of a sparse
 * file stay holes, also those an archive stores as zeros (an archive of
 * an earlier version, which stored at most 256 regions of a file).
 */
static int snapshot_write_at(struct snapshot_reader *r, int fd, const char *p, size_t size,
			     off_t offset)
{
	while (size > 0) {
		size_t run = snapshot_span(p, size, offset, false);
		size_t skip = snapshot_span(p + run, size - run, offset + (off_t)run, true);
		int ret;

		if (run) {
			ret = snapshot_guard_reserve(r->rootfd, r->disk_reserve, r->written,
						     &r->next_space_check, "your container's files",
						     r->err, r->errlen);
			if (ret == 0)
				ret = snapshot_pwrite_all(fd, p, run, offset);
			if (ret < 0)
				return ret;
			r->written += run;
		}
		p += run + skip;
		offset += (off_t)(run + skip);
		size -= run + skip;
	}
	return 0;
}

/* A block of a file's data lies within the size its header declared
 * (which was counted against the manifest's content_size). */
static int snapshot_check_block(struct snapshot_reader *r, struct archive_entry *entry,
				la_int64_t declared, la_int64_t offset, size_t size)
{
	if (offset < 0 || offset > declared || size > (size_t)(declared - offset))
		return snapshot_refuse(r, archive_entry_pathname(entry),
				       "a file holds more data than its header says");
	return 0;
}

/* The end of a new file's data: its size, and its writing out begun. */
static int snapshot_finish_data(int fd, la_int64_t declared)
{
	if (ftruncate(fd, (off_t)declared) < 0)
		return -errno;
	/* Start writing it out now, while the next files are unpacked: the
	 * restore's one sync at the end then waits for little.  Only a hint
	 * (some file systems ignore it). */
	sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	return 0;
}

/* A regular file's declared size, refused once the files so far hold more
 * than the manifest's content_size: checked before the file is created. */
static int snapshot_count_content(struct snapshot_reader *r, struct archive_entry *entry,
				  const char *raw, la_int64_t *declared)
{
	unsigned long long size;

	*declared = archive_entry_size_is_set(entry) ? archive_entry_size(entry) : 0;
	if (*declared < 0)
		return snapshot_refuse(r, raw, "a file of a negative size");
	size = (unsigned long long)*declared;
	if (size > r->content_limit || r->stats->content_bytes > r->content_limit - size) {
		char why[128];

		snprintf(why, sizeof(why), "more file data than its manifest's content_size (%llu bytes)",
			 r->content_limit);
		return snapshot_refuse(r, raw, why);
	}
	r->stats->content_bytes += size;
	return 0;
}

static void snapshot_entry_times(struct archive_entry *entry, struct timespec times[2])
{
	times[0].tv_sec = archive_entry_atime_is_set(entry) ? archive_entry_atime(entry) : 0;
	times[0].tv_nsec = archive_entry_atime_is_set(entry) ? archive_entry_atime_nsec(entry) : UTIME_OMIT;
	times[1].tv_sec = archive_entry_mtime_is_set(entry) ? archive_entry_mtime(entry) : 0;
	times[1].tv_nsec = archive_entry_mtime_is_set(entry) ? archive_entry_mtime_nsec(entry) : UTIME_OMIT;
	for (int i = 0; i < 2; i++)
		if (times[i].tv_nsec != UTIME_OMIT && (times[i].tv_nsec < 0 || times[i].tv_nsec > 999999999))
			times[i].tv_nsec = 0;
}

/* Split a clean relative path into its directory ("" for the layer's
 * root) and its last component; path fits parent (both PATH_MAX). */
static const char *snapshot_split_path(const char *path, char *parent)
{
	const char *slash = strrchr(path, '/');

	if (!slash) {
		parent[0] = '\0';
		return path;
	}
	memcpy(parent, path, (size_t)(slash - path));
	parent[slash - path] = '\0';
	return slash + 1;
}

/* Where an entry goes and what it becomes, once its header is checked. */
struct snapshot_target {
	const char *raw;          /* the archive's path, for messages */
	const char *path;         /* clean, relative to the layer */
	const char *name;         /* its last component */
	int pfd;                  /* its parent, owned by the reader's cache */
	uid_t uid;
	gid_t gid;
	mode_t perm;
	struct timespec times[2];
};

/* The entry's owner, shifted to the member's ids; refused outside 0-65535. */
static int snapshot_entry_owner(struct snapshot_reader *r, struct archive_entry *entry,
				struct snapshot_target *t)
{
	la_int64_t auid = archive_entry_uid(entry), agid = archive_entry_gid(entry);

	if (auid < 0 || auid >= SUBID_COUNT || agid < 0 || agid >= SUBID_COUNT)
		return snapshot_refuse(r, t->raw, "an owner outside the container's ids 0-65535");
	t->uid = r->base + (uid_t)auid;
	t->gid = r->base + (gid_t)agid;
	return 0;
}

/* Owner first: chown clears set-id bits. */
static int snapshot_set_owner_mode(int fd, const struct snapshot_target *t)
{
	if (fchown(fd, t->uid, t->gid) < 0 || fchmod(fd, t->perm) < 0)
		return -errno;
	return 0;
}

/* Owner, mode and extended attributes of an entry open as fd. */
static int snapshot_set_metadata(struct snapshot_reader *r, struct archive_entry *entry, int fd,
				 const struct snapshot_target *t)
{
	int ret = snapshot_set_owner_mode(fd, t);

	if (ret < 0)
		return ret;
	return snapshot_set_xattrs(r, entry, fd, -1, NULL);
}

/* The layer's root already exists: its metadata only. */
static int snapshot_extract_root(struct snapshot_reader *r, struct archive_entry *entry,
				 const struct snapshot_target *t)
{
	int ret;

	if (archive_entry_filetype(entry) != AE_IFDIR)
		return snapshot_refuse(r, t->raw, "the root is not a directory");
	ret = snapshot_set_metadata(r, entry, r->rootfd, t);
	if (ret < 0)
		return ret;
	r->stats->entries++;
	return 0;
}

/*
 * A hard link to an entry already extracted.  The target is looked up
 * through its own descriptor: the cache holds the link's parent.
 */
static int snapshot_extract_hardlink(struct snapshot_reader *r, const char *link,
				     const struct snapshot_target *t, const char *parent)
{
	char target[PATH_MAX], tparent[PATH_MAX];
	__do_close int tfd = -EBADF;
	const char *tname;
	struct stat st;
	int pfd, ret;

	if (snapshot_clean_path(link, target, sizeof(target)) < 0 || !target[0])
		return snapshot_refuse(r, link, "a hard link to a path outside the layer");
	tname = snapshot_split_path(target, tparent);
	tfd = *tparent ? snapshot_openat2(r->rootfd, tparent, O_PATH | O_DIRECTORY)
		       : fcntl(r->rootfd, F_DUPFD_CLOEXEC, 3);
	if (tfd < 0)
		return snapshot_refuse(r, link, "a hard link to a path outside the layer");
	if (fstatat(tfd, tname, &st, AT_SYMLINK_NOFOLLOW) < 0 || S_ISDIR(st.st_mode))
		return snapshot_refuse(r, link, "a hard link to a missing file or a directory");
	pfd = snapshot_parent(r, parent, true);
	if (pfd < 0)
		return snapshot_refuse(r, t->raw, "a path through a symbolic link");
	ret = linkat(tfd, tname, pfd, t->name, 0) < 0 ? -errno : 0;
	if (ret == -EEXIST)
		return snapshot_refuse(r, t->raw, "an entry that appears twice");
	if (ret == 0)
		r->stats->entries++;
	return ret;
}

/* Only files, directories, symbolic links and overlay whiteouts come in. */
static int snapshot_check_type(struct snapshot_reader *r, struct archive_entry *entry,
			       const char *raw)
{
	switch (archive_entry_filetype(entry)) {
	case AE_IFREG:
	case AE_IFDIR:
	case AE_IFLNK:
		return 0;
	case AE_IFCHR:
		if (archive_entry_rdevmajor(entry) == 0 && archive_entry_rdevminor(entry) == 0)
			return 0;   /* an overlay whiteout */
		return snapshot_refuse(r, raw, "a device node");
	case AE_IFBLK:
		return snapshot_refuse(r, raw, "a device node");
	default:
		return snapshot_refuse(r, raw, "a FIFO, socket or unknown file type");
	}
}

/*
 * Open the entry's parent (t->pfd) and make sure its name is free; a
 * directory may appear again (its parent was created for an earlier
 * entry) and is created here when missing.
 */
static int snapshot_prepare_slot(struct snapshot_reader *r, struct snapshot_target *t,
				 const char *parent, mode_t type)
{
	struct stat st;

	t->pfd = snapshot_parent(r, parent, true);
	if (t->pfd == -ELOOP || t->pfd == -EXDEV || t->pfd == -ENOTDIR)
		return snapshot_refuse(r, t->raw, "a path through a symbolic link or a non-directory");
	if (t->pfd < 0)
		return t->pfd;
	if (fstatat(t->pfd, t->name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (!(type == AE_IFDIR && S_ISDIR(st.st_mode)))
			return snapshot_refuse(r, t->raw, "an entry that appears twice");
	} else if (errno != ENOENT) {
		return -errno;
	} else if (type == AE_IFDIR && mkdirat(t->pfd, t->name, 0700) < 0) {
		return -errno;
	}
	return 0;
}

/* ---- reuse of the replaced layer's unchanged files ---------------------- */

/*
 * A restore most often goes back to a snapshot the member's layer still
 * largely is: the files it has not changed since need not be written
 * again (which costs the disk's writes, an inode each, and the sync
 * before the swap).  Such a file is recognised by its content, never by
 * its times alone: the same path in the replaced layer (no symbolic link
 * on the way), a regular file with one link, the same size, owner, mode and
 * modification time to the second (archives of earlier versions kept
 * whole seconds), no extended attributes (the entry has none either), and
 * the same bytes, compared block by block as the archive is read.  It is then linked into
 * the new layer with the entry's times, and the old layer's name goes with
 * the discard.  So a restore that fails before the swap leaves the old
 * layer as it was but for those files' times within the second; one whose
 * container then fails to start puts back an old layer whose shared files
 * carry what that start wrote to them.  The container is stopped: nothing
 * writes to either layer meanwhile.
 */

/* The replaced layer's file at t's path, open for reading, where it may be
 * the same file as the entry's: else -ENOENT. */
static int snapshot_reuse_open(struct snapshot_reader *r, struct archive_entry *entry,
			       const struct snapshot_target *t, la_int64_t declared)
{
	__do_close int fd = -EBADF;
	struct stat st;
	ssize_t names;

	if (r->prevfd < 0 || archive_entry_xattr_count(entry) > 0)
		return -ENOENT;
	/* O_NONBLOCK: a FIFO of that name opens without a writer, and is
	 * then refused as not a regular file. */
	fd = snapshot_openat2(r->prevfd, t->path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &st) < 0)
		return -ENOENT;
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1 || st.st_size != (off_t)declared ||
	    st.st_uid != t->uid || st.st_gid != t->gid || (st.st_mode & 07777) != t->perm ||
	    st.st_mtim.tv_sec != t->times[1].tv_sec)
		return -ENOENT;
	names = flistxattr(fd, NULL, 0);
	if (names != 0 && !(names < 0 && errno == ENOTSUP))
		return -ENOENT;
	return move_fd(fd);
}

/* Whether prev holds buf's bytes at offset. */
static bool snapshot_reuse_same(struct snapshot_reader *r, int prev, const char *buf, size_t size,
				off_t offset)
{
	while (size > 0) {
		size_t want = size < SNAPSHOT_BUFFER ? size : SNAPSHOT_BUFFER;
		ssize_t n = pread(prev, r->compare, want, offset);

		if (n <= 0 || memcmp(r->compare, buf, (size_t)n) != 0)
			return false;
		buf += n;
		size -= (size_t)n;
		offset += n;
	}
	return true;
}

/* The first length bytes of prev (found equal to the archive's) into the
 * new file fd, as the archive's would have been written. */
static int snapshot_reuse_copy(struct snapshot_reader *r, int prev, int fd, off_t length)
{
	for (off_t offset = 0; offset < length;) {
		size_t want = length - offset < SNAPSHOT_BUFFER ? (size_t)(length - offset) : SNAPSHOT_BUFFER;
		ssize_t n = pread(prev, r->compare, want, offset);
		int ret;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		ret = snapshot_write_at(r, fd, r->compare, (size_t)n, offset);
		if (ret < 0)
			return ret;
		offset += n;
	}
	return 0;
}

/* The entry's file, new in the new layer (its mode set with its owner). */
static int snapshot_create_file(const struct snapshot_target *t)
{
	int fd = openat(t->pfd, t->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY |
			O_CLOEXEC, 0600);

	return fd < 0 ? -errno : fd;
}

/* The new file, once prev turned out to differ at offset same: what came
 * before from prev. */
static int snapshot_reuse_diverge(struct snapshot_reader *r, const struct snapshot_target *t,
				  int prev, off_t same, int *fd)
{
	*fd = snapshot_create_file(t);
	if (*fd < 0)
		return *fd;
	return snapshot_reuse_copy(r, prev, *fd, same);
}

/*
 * The data of a regular file, never past the size its header declared,
 * into *fd.  With a previous file prev (>= 0), compared first: 1 when every
 * byte matched (nothing is written; the caller links prev), else 0, the new
 * file opened into *fd where they first differ.
 */
static int snapshot_extract_data(struct snapshot_reader *r, struct archive *ar,
				 struct archive_entry *entry, const struct snapshot_target *t,
				 la_int64_t declared, int prev, int *fd)
{
	/* prev equals the archive up to here; -1: writing */
	off_t same = prev >= 0 ? 0 : -1;
	const void *buf;
	size_t size;
	la_int64_t offset;
	int status, ret;

	while ((status = archive_read_data_block(ar, &buf, &size, &offset)) == ARCHIVE_OK) {
		ret = snapshot_check_block(r, entry, declared, offset, size);
		if (ret < 0)
			return ret;
		if (same >= 0 && offset == same && snapshot_reuse_same(r, prev, buf, size, offset)) {
			same += (off_t)size;
			continue;
		}
		if (same >= 0) {
			ret = snapshot_reuse_diverge(r, t, prev, same, fd);
			same = -1;
			if (ret < 0)
				return ret;
		}
		ret = snapshot_write_at(r, *fd, buf, size, (off_t)offset);
		if (ret < 0)
			return ret;
	}
	if (status != ARCHIVE_EOF)
		return -EBADMSG;
	if (same == (off_t)declared)
		return 1;
	/* A tail the archive leaves as a hole: prev's may not be one. */
	if (same >= 0) {
		ret = snapshot_reuse_diverge(r, t, prev, same, fd);
		if (ret < 0)
			return ret;
	}
	ret = snapshot_finish_data(*fd, declared);
	return ret < 0 ? ret : 0;
}

/* prev, found equal, as the new layer's file: linked (a hard link by its
 * descriptor), with the entry's times. */
static int snapshot_reuse_link(struct snapshot_reader *r, int prev, const struct snapshot_target *t,
			       la_int64_t declared)
{
	char proc[64];

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", prev);
	if (linkat(AT_FDCWD, proc, t->pfd, t->name, AT_SYMLINK_FOLLOW) < 0)
		return -errno;
	if (futimens(prev, t->times) < 0)
		return -errno;
	r->stats->reused_files++;
	r->stats->reused_bytes += (unsigned long long)declared;
	return 0;
}

static int snapshot_extract_file(struct snapshot_reader *r, struct archive *ar,
				 struct archive_entry *entry, const struct snapshot_target *t,
				 la_int64_t declared)
{
	__do_close int prev = snapshot_reuse_open(r, entry, t, declared);
	__do_close int fd = -EBADF;
	int ret;

	if (prev < 0) {
		fd = snapshot_create_file(t);
		if (fd < 0)
			return fd;
	}
	ret = snapshot_extract_data(r, ar, entry, t, declared, prev, &fd);
	if (ret == 1) {
		ret = snapshot_reuse_link(r, prev, t, declared);
		if (ret != -EXDEV && ret != -EPERM && ret != -EMLINK)
			return ret;
		/* Not linkable here: written from prev after all. */
		ret = snapshot_reuse_diverge(r, t, prev, (off_t)declared, &fd);
		if (ret == 0)
			ret = snapshot_finish_data(fd, declared);
	}
	if (ret == -EBADMSG)
		set_first_error(r->err, r->errlen, "the archive is damaged: %s",
				 archive_error_string(ar) ? archive_error_string(ar) : "bad data");
	if (ret < 0)
		return ret;
	ret = snapshot_set_metadata(r, entry, fd, t);
	if (ret < 0)
		return ret;
	if (futimens(fd, t->times) < 0)
		return -errno;
	return 0;
}

/* A directory's times are set once its entries are in: they change them. */
static int snapshot_remember_dir_times(struct snapshot_reader *r, const struct snapshot_target *t)
{
	struct snapshot_dirtime *d;

	if (r->ndirs == r->capdirs) {
		size_t cap = r->capdirs ? r->capdirs * 2 : 256;
		struct snapshot_dirtime *grown = realloc(r->dirs, cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		r->dirs = grown;
		r->capdirs = cap;
	}
	d = &r->dirs[r->ndirs];
	d->path = strdup(t->path);
	if (!d->path)
		return -ENOMEM;
	memcpy(d->times, t->times, sizeof(d->times));
	r->ndirs++;
	return 0;
}

static int snapshot_extract_dir(struct snapshot_reader *r, struct archive_entry *entry,
				const struct snapshot_target *t)
{
	__do_close int fd = openat(t->pfd, t->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int ret;

	if (fd < 0)
		return -errno;
	ret = snapshot_set_metadata(r, entry, fd, t);
	if (ret < 0)
		return ret;
	return snapshot_remember_dir_times(r, t);
}

/* Created as a link, never followed: owner, xattrs and times by name. */
static int snapshot_extract_symlink(struct snapshot_reader *r, struct archive_entry *entry,
				    const struct snapshot_target *t)
{
	const char *target = archive_entry_symlink(entry);
	int ret;

	if (!target || !*target || strlen(target) >= PATH_MAX)
		return snapshot_refuse(r, t->raw, "a symbolic link without a valid target");
	if (symlinkat(target, t->pfd, t->name) < 0)
		return -errno;
	if (fchownat(t->pfd, t->name, t->uid, t->gid, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	ret = snapshot_set_xattrs(r, entry, -1, t->pfd, t->name);
	if (ret < 0)
		return ret;
	if (utimensat(t->pfd, t->name, t->times, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return 0;
}

/* A whiteout: hides the template's file of that name. */
static int snapshot_extract_whiteout(const struct snapshot_target *t)
{
	if (mknodat(t->pfd, t->name, S_IFCHR | (t->perm & 0777), makedev(0, 0)) < 0)
		return -errno;
	if (fchownat(t->pfd, t->name, t->uid, t->gid, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (utimensat(t->pfd, t->name, t->times, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return 0;
}

/* The archive's path as a clean relative path, or a refusal that says why. */
static int snapshot_entry_path(struct snapshot_reader *r, const char *raw, char *path, size_t len)
{
	int ret;

	if (!raw)
		return snapshot_refuse(r, "", "an entry has no name");
	ret = snapshot_clean_path(raw, path, len);
	if (ret == -ENAMETOOLONG)
		return snapshot_refuse(r, raw, "a path is too long");
	if (ret < 0)
		return snapshot_refuse(r, raw, raw[0] == '/' ? "an absolute path" : "a path with \"..\" or an empty part");
	return 0;
}

static int snapshot_extract_entry(struct snapshot_reader *r, struct archive *ar,
				  struct archive_entry *entry)
{
	char path[PATH_MAX], parent[PATH_MAX];
	struct snapshot_target t = { .raw = archive_entry_pathname(entry), .path = path,
				     .pfd = -EBADF };
	mode_t type = archive_entry_filetype(entry);
	la_int64_t declared = 0;
	const char *link;
	int ret;

	t.perm = archive_entry_perm(entry) & 07777;
	ret = snapshot_entry_path(r, t.raw, path, sizeof(path));
	if (ret < 0)
		return ret;
	ret = snapshot_entry_owner(r, entry, &t);
	if (ret < 0)
		return ret;
	snapshot_entry_times(entry, t.times);
	if (!path[0])
		return snapshot_extract_root(r, entry, &t);

	t.name = snapshot_split_path(path, parent);
	if (strlen(t.name) > NAME_MAX)
		return snapshot_refuse(r, t.raw, "a name is too long");
	link = archive_entry_hardlink(entry);
	if (link)
		return snapshot_extract_hardlink(r, link, &t, parent);
	ret = snapshot_check_type(r, entry, t.raw);
	if (ret == 0 && type == AE_IFREG)
		ret = snapshot_count_content(r, entry, t.raw, &declared);
	if (ret < 0)
		return ret;
	ret = snapshot_prepare_slot(r, &t, parent, type);
	if (ret < 0)
		return ret;

	if (type == AE_IFREG)
		ret = snapshot_extract_file(r, ar, entry, &t, declared);
	else if (type == AE_IFDIR)
		ret = snapshot_extract_dir(r, entry, &t);
	else if (type == AE_IFLNK)
		ret = snapshot_extract_symlink(r, entry, &t);
	else
		ret = snapshot_extract_whiteout(&t);
	if (ret < 0)
		return ret;
	r->stats->entries++;
	return 0;
}

/* Every entry of the archive, in order; err says why one failed. */
static int snapshot_extract_entries(struct snapshot_reader *r, struct archive *ar)
{
	struct archive_entry *entry;
	int ret, status;

	for (;;) {
		status = archive_read_next_header(ar, &entry);
		if (status == ARCHIVE_EOF)
			return 0;
		if (status < ARCHIVE_WARN) {
			set_first_error(r->err, r->errlen, "the archive is damaged: %s",
					 archive_error_string(ar) ? archive_error_string(ar) : "bad header");
			return -EBADMSG;
		}
		ret = snapshot_extract_entry(r, ar, entry);
		if (ret < 0) {
			char shown[96];

			snapshot_shown(archive_entry_pathname(entry) ? archive_entry_pathname(entry) : "",
				       shown, sizeof(shown));
			set_first_error(r->err, r->errlen, "cannot restore %s: %s", shown, strerror(-ret));
			return ret;
		}
	}
}

/* Directory times last, deepest first: their entries changed them. */
static void snapshot_set_dir_times(struct snapshot_reader *r)
{
	for (size_t i = r->ndirs; i-- > 0;) {
		int fd = snapshot_openat2(r->rootfd, r->dirs[i].path, O_RDONLY | O_DIRECTORY);

		if (fd >= 0) {
			(void)futimens(fd, r->dirs[i].times);
			close(fd);
		}
	}
}

/* The checksum covers the whole file, padding included: hash what
 * libarchive left unread. */
static void snapshot_hash_rest(struct snapshot_reader *r)
{
	while (snapshot_read_block(r, &r->sha, &r->bytes) > 0)
		;
}

/* The SHA-256 of the whole file at fd, in hex, read from its start. */
static int snapshot_hash_file(struct snapshot_reader *r, char hex[TEMPLATE_HASH_HEX])
{
	unsigned long long next_report = 256ull * 1024 * 1024, bytes = 0;
	struct digest sha;
	int ret;

	if (lseek(r->fd, 0, SEEK_SET) < 0)
		return -errno;
	ret = digest_init(&sha);
	if (ret < 0)
		return ret;
	for (;;) {
		ssize_t n = snapshot_read_block(r, &sha, &bytes);

		if (n < 0) {
			digest_free(&sha);
			return (int)n;
		}
		if (n == 0)
			break;
		if (r->progress && bytes >= next_report) {
			progress_say(r->progress, "Restore: checksum of %llu MB of the archive verified",
				     bytes / (1024 * 1024));
			next_report = bytes + 256ull * 1024 * 1024;
		}
	}
	return digest_final_hex(&sha, hex);
}

/*
 * The archive's checksum against its manifest's, before a single entry is
 * read: a damaged or altered file writes nothing.  The same descriptor is
 * then rewound for the extraction, which hashes again what it reads.
 */
static int snapshot_verify(struct snapshot_reader *r, const char *expected)
{
	char actual[TEMPLATE_HASH_HEX];
	struct stat st;
	int ret;

	if (fstat(r->fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode)) {
		set_first_error(r->err, r->errlen, "the archive is not a regular file");
		return -EPERM;
	}
	ret = snapshot_hash_file(r, actual);
	if (ret < 0) {
		set_first_error(r->err, r->errlen, "cannot read the archive: %s", strerror(-ret));
		return ret;
	}
	if (!expected || strcmp(actual, expected) != 0) {
		set_first_error(r->err, r->errlen,
				"its checksum does not match its manifest (the file is damaged or was altered)");
		return -EBADMSG;
	}
	if (lseek(r->fd, 0, SEEK_SET) < 0)
		return -errno;
	return 0;
}

int snapshot_extract(int archive_fd, const struct snapshot_info *manifest,
		     const char *new_upper_dir, uint32_t subid_base,
		     const struct snapshot_limits *limits, struct progress *progress,
		     struct snapshot_stats *stats, char *err, size_t errlen)
{
	__do_free char *buffer = malloc(SNAPSHOT_BUFFER);
	__do_close int rootfd = -EBADF, prevfd = -EBADF;
	__do_free char *compare = NULL;
	struct snapshot_reader r = { .cached_fd = -EBADF, .prevfd = -EBADF };
	struct archive *ar = NULL;
	int ret = 0;

	if (err && errlen)
		err[0] = '\0';
	memset(stats, 0, sizeof(*stats));
	if (!buffer)
		return -ENOMEM;
	if (subid_base == 0 || subid_base > UINT32_MAX - SUBID_COUNT)
		return -ERANGE;
	rootfd = open(new_upper_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rootfd < 0)
		return log_error_errno(-errno, errno, "cannot open %s", new_upper_dir);

	r.fd = archive_fd;
	r.buffer = buffer;
	r.rootfd = rootfd;
	r.base = subid_base;
	r.content_limit = manifest->content_size;
	r.stats = stats;
	r.progress = progress;
	r.next_report = 64ull * 1024 * 1024;
	r.err = err;
	r.errlen = errlen;
	r.disk_reserve = limits ? limits->disk_reserve : 0;
	if (limits && limits->previous_upper) {
		compare = malloc(SNAPSHOT_BUFFER);
		if (!compare)
			return -ENOMEM;
		/* Missing or unreadable: nothing is reused. */
		prevfd = open(limits->previous_upper, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		r.prevfd = prevfd;
		r.compare = compare;
	}
	/* A disk short already: refused before the archive is even read. */
	ret = snapshot_guard_reserve(rootfd, r.disk_reserve, 0, &r.next_space_check,
				     "your container's files", err, errlen);
	if (ret < 0)
		return ret;
	ret = snapshot_verify(&r, manifest->sha256);
	if (ret < 0)
		return ret;
	ret = digest_init(&r.sha);
	if (ret < 0)
		return ret;

	ar = archive_read_new();
	if (!ar) {
		digest_free(&r.sha);
		return -ENOMEM;
	}
	/* Only what gpubox writes: tar (pax), plain or zstd. */
	archive_read_support_format_tar(ar);
	archive_read_support_filter_zstd(ar);
	if (archive_read_open(ar, &r, NULL, snapshot_read_cb, NULL) != ARCHIVE_OK) {
		set_first_error(err, errlen, "the archive cannot be read: %s",
				 archive_error_string(ar) ? archive_error_string(ar) : "unknown format");
		ret = -EBADMSG;
		goto out;
	}
	ret = snapshot_extract_entries(&r, ar);
	if (ret < 0)
		goto out;
	snapshot_set_dir_times(&r);
	snapshot_hash_rest(&r);
	stats->archive_bytes = r.bytes;
	if (digest_final_hex(&r.sha, stats->sha256) < 0) {
		ret = -EIO;
	} else if (strcmp(stats->sha256, manifest->sha256) != 0) {
		set_first_error(err, errlen, "the archive changed while it was restored");
		ret = -EBADMSG;
	}
out:
	archive_read_free(ar);
	digest_free(&r.sha);
	if (r.cached_fd >= 0)
		close(r.cached_fd);
	for (size_t i = 0; i < r.ndirs; i++)
		free(r.dirs[i].path);
	free(r.dirs);
	return ret;
}

/* ---- the store: <snapshot_dir>/<member>/<name>.{tar.zst,json,sha256} ---- */

#define SNAPSHOT_MANIFEST_MAX (64 * 1024)
#define SNAPSHOT_TMP_MARK ".tmp-"

int snapshot_check_name(const char *name, char *err, size_t errlen)
{
	size_t len = name ? strlen(name) : 0;

	if (len == 0 || len > SNAPSHOT_NAME_MAX) {
		set_error(err, errlen, "a snapshot name has 1 to %d characters", SNAPSHOT_NAME_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');

		if (!alnum && (i == 0 || (c != '-' && c != '_'))) {
			set_error(err, errlen,
				 "a snapshot name is letters, digits, '-' and '_', starting with a letter or digit (not a path)");
			return -EINVAL;
		}
	}
	return 0;
}

int snapshot_root(const struct gpubox_config *cfg, char *buf, size_t len)
{
	int n = cfg->snapshot_dir[0] ? snprintf(buf, len, "%s", cfg->snapshot_dir)
				     : snprintf(buf, len, "%s/snapshots", cfg->state_dir);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int snapshot_path(const struct gpubox_config *cfg, const char *member, const char *name,
		  const char *suffix, char *buf, size_t len)
{
	char root[PATH_MAX];
	int n, ret = snapshot_root(cfg, root, sizeof(root));

	if (ret < 0)
		return ret;
	if (!member || !*member || member[0] == '.' || strchr(member, '/'))
		return -EINVAL;
	if (name)
		n = snprintf(buf, len, "%s/%s/%s%s", root, member, name, suffix ? suffix : "");
	else
		n = snprintf(buf, len, "%s/%s", root, member);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int snapshot_open(const struct gpubox_config *cfg, const char *member, const char *name,
		  const char *suffix)
{
	__do_close int dfd = -EBADF, fd = -EBADF;
	char dir[PATH_MAX], file[NAME_MAX + 1], err[128];
	struct stat st;
	int flags, ret;

	if (snapshot_check_name(name, err, sizeof(err)) < 0)
		return -EINVAL;
	ret = snapshot_path(cfg, member, NULL, NULL, dir, sizeof(dir));
	if (ret < 0)
		return ret;
	if (snprintf(file, sizeof(file), "%s%s", name, suffix) >= (int)sizeof(file))
		return -ENAMETOOLONG;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	/* O_NONBLOCK: opening a FIFO must not wait for a writer. */
	fd = openat(dfd, file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return log_warn_errno(-EPERM, 0, "%s/%s is not a regular file; refused", dir, file);
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
		return -errno;
	return move_fd(fd);
}

/* Exactly size - 1 lower-case hex digits. */
static bool snapshot_is_hex(const char *text, size_t size)
{
	if (strlen(text) != size - 1)
		return false;
	for (const char *c = text; *c; c++)
		if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
			return false;
	return true;
}

static int snapshot_parse(const char *text, const char *name, struct snapshot_info *out)
{
	__do_json json_t *m = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
	const char *member, *ref, *hash, *sha, *server, *mname, *member_id, *kind;
	json_t *id_value, *kind_value;
	bool local;
	json_t *created, *size, *content;
	char err[128];

	if (!json_is_object(m))
		return -EBADMSG;
	mname = json_string_value(json_object_get(m, "name"));
	member = json_string_value(json_object_get(m, "member"));
	ref = json_string_value(json_object_get(m, "template"));
	hash = json_string_value(json_object_get(m, "template_recipe_hash"));
	sha = json_string_value(json_object_get(m, "sha256"));
	server = json_string_value(json_object_get(m, "server"));
	created = json_object_get(m, "created");
	size = json_object_get(m, "size");
	content = json_object_get(m, "content_size");
	/* Absent: an archive, as every snapshot was before local ones. */
	kind_value = json_object_get(m, "kind");
	kind = json_string_value(kind_value);
	if (kind_value && (!kind || (strcmp(kind, "archive") != 0 && strcmp(kind, "local") != 0)))
		return -EBADMSG;
	local = kind && strcmp(kind, "local") == 0;
	/* A local snapshot has no archive: no checksum, no bytes. */
	if (local && (sha || json_integer_value(size) != 0))
		return -EBADMSG;
	if (local)
		sha = "";
	/* Absent: a manifest of before identities.  Present, it must be one:
	 * an empty or damaged one would pass for absent. */
	id_value = json_object_get(m, "member_id");
	member_id = json_string_value(id_value);
	if (id_value && (!member_id || !snapshot_is_hex(member_id, SNAPSHOT_MEMBER_ID_SIZE)))
		return -EBADMSG;
	if (!mname || strcmp(mname, name) != 0 || snapshot_check_name(mname, err, sizeof(err)) < 0 ||
	    !member || strlen(member) >= sizeof(out->member) || !ref ||
	    strlen(ref) >= sizeof(out->template_ref) || !sha ||
	    (!local && !snapshot_is_hex(sha, TEMPLATE_HASH_HEX)) ||
	    (hash && *hash && !snapshot_is_hex(hash, TEMPLATE_HASH_HEX)) ||
	    !json_is_integer(created) || !json_is_integer(size) || json_integer_value(size) < 0 ||
	    (content && (!json_is_integer(content) || json_integer_value(content) < 0)))
		return -EBADMSG;
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", mname);
	snprintf(out->member, sizeof(out->member), "%s", member);
	snprintf(out->member_id, sizeof(out->member_id), "%s", member_id ? member_id : "");
	snprintf(out->template_ref, sizeof(out->template_ref), "%s", ref);
	snprintf(out->template_hash, sizeof(out->template_hash), "%s", hash ? hash : "");
	snprintf(out->server, sizeof(out->server), "%s", server ? server : "");
	snprintf(out->sha256, sizeof(out->sha256), "%s", sha);
	out->created = (long long)json_integer_value(created);
	out->size = (unsigned long long)json_integer_value(size);
	/* Absent: no file data at all is restored. */
	out->content_size = content ? (unsigned long long)json_integer_value(content) : 0;
	out->local = local;
	return 0;
}

int snapshot_check_owner(const struct snapshot_info *info, const struct snapshot_owner *owner,
			 char *err, size_t errlen)
{
	/* A local snapshot's files are on the disk of the server that took
	 * it: from another server sharing the store it is out of reach. */
	if (info->local && (!owner->server || strcmp(info->server, owner->server) != 0)) {
		set_error(err, errlen, "snapshot %s is a local snapshot of server %s", info->name,
			  info->server);
		return -EPERM;
	}
	if (strcmp(info->member, owner->name) != 0) {
		set_error(err, errlen, "snapshot %s was taken by %s, not %s", info->name, info->member,
			  owner->name);
		return -EPERM;
	}
	if (info->member_id[0]) {
		if (!owner->identity || strcmp(info->member_id, owner->identity) != 0) {
			set_error(err, errlen, "snapshot %s was taken by an earlier member named %s",
				  info->name, owner->name);
			return -EPERM;
		}
		return 0;
	}
	/* Before identities: only this server's, made since owner was added.
	 * A later member of the name is added after every snapshot of the
	 * earlier one; strictly after, as both may fall in one second. */
	if (!owner->server || strcmp(info->server, owner->server) != 0) {
		set_error(err, errlen,
			  "snapshot %s names no member identity and was taken on another server (%s)",
			  info->name, info->server);
		return -EPERM;
	}
	if (info->created <= owner->created) {
		set_error(err, errlen,
			  "snapshot %s names no member identity and is older than member %s here",
			  info->name, owner->name);
		return -EPERM;
	}
	return 0;
}

int snapshot_check_template(const struct snapshot_info *info, const struct template_info *tpl,
			    char *err, size_t errlen)
{
	if (!info->template_hash[0]) {
		set_error(err, errlen,
			  "snapshot %s's manifest does not name the recipe of template %s (template_recipe_hash), so it cannot be checked against this server's",
			  info->name, info->template_ref);
		return -EPERM;
	}
	if (strcmp(info->template_hash, tpl->recipe_hash) != 0) {
		set_error(err, errlen,
			  "template %s on this server was built from another recipe than the one snapshot %s was taken on",
			  info->template_ref, info->name);
		return -EPERM;
	}
	return 0;
}

int snapshot_get(const struct gpubox_config *cfg, const char *member, const char *name,
		 struct snapshot_info *out)
{
	__do_free char *text = NULL;
	__do_close int fd = -EBADF;
	char path[PATH_MAX], err[128];
	int ret;

	if (snapshot_check_name(name, err, sizeof(err)) < 0)
		return -EINVAL;
	ret = snapshot_path(cfg, member, name, ".json", path, sizeof(path));
	if (ret < 0)
		return ret;
	fd = snapshot_open(cfg, member, name, ".json");
	if (fd == -EPERM || fd == -ELOOP)
		return -ENOENT;   /* not a manifest: no snapshot */
	if (fd < 0)
		return fd;
	ret = fsutil_read_fd(fd, SNAPSHOT_MANIFEST_MAX, &text, NULL);
	if (ret < 0)
		return ret;
	ret = snapshot_parse(text, name, out);
	if (ret < 0)
		return log_warn_errno(ret, 0, "%s is not a snapshot manifest", path);
	return 0;
}

static int snapshot_compare(const void *a, const void *b)
{
	const struct snapshot_info *x = a, *y = b;

	if (x->created != y->created)
		return x->created < y->created ? -1 : 1;
	return strcmp(x->name, y->name);
}

int snapshot_list(const struct gpubox_config *cfg, const char *member,
		  const struct snapshot_owner *owner, struct snapshot_info **out, size_t *n)
{
	__do_closedir DIR *dir = NULL;
	__do_free struct snapshot_info *list = NULL;
	char path[PATH_MAX];
	size_t count = 0, cap = 0;
	struct dirent *de;
	int ret;

	*out = NULL;
	*n = 0;
	ret = snapshot_path(cfg, member, NULL, NULL, path, sizeof(path));
	if (ret < 0)
		return ret;
	dir = opendir(path);
	if (!dir)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(dir))) {
		size_t len = strlen(de->d_name);
		char name[SNAPSHOT_NAME_MAX + 8];
		struct snapshot_info info;

		if (len <= 5 || len - 5 > SNAPSHOT_NAME_MAX || strcmp(de->d_name + len - 5, ".json") != 0)
			continue;
		memcpy(name, de->d_name, len - 5);
		name[len - 5] = '\0';
		if (snapshot_get(cfg, member, name, &info) < 0)
			continue;
		if (owner && snapshot_check_owner(&info, owner, NULL, 0) < 0)
			continue;
		if (ARRAY_RESERVE(list, cap, count) < 0)
			return -ENOMEM;
		list[count++] = info;
	}
	if (count)
		qsort(list, count, sizeof(*list), snapshot_compare);
	*out = move_ptr(list);
	*n = count;
	return 0;
}

/* <name>.json, written whole or not at all. */
static int snapshot_manifest_put(const struct gpubox_config *cfg, const struct snapshot_info *info,
				 json_t *m)
{
	__do_free char *text = NULL;
	char path[PATH_MAX];
	int ret;

	if (!m)
		return -ENOMEM;
	text = json_dumps(m, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (!text)
		return -ENOMEM;
	ret = snapshot_path(cfg, info->member, info->name, ".json", path, sizeof(path));
	if (ret < 0)
		return ret;
	return fsutil_write_atomic(path, text, strlen(text), 0600);
}

static int snapshot_manifest_write_local(const struct gpubox_config *cfg,
					 const struct snapshot_info *info)
{
	__do_json json_t *m = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I}",
		"format", 1, "kind", "local", "name", info->name, "member", info->member,
		"member_id", info->member_id, "template", info->template_ref,
		"template_recipe_hash", info->template_hash, "server", info->server,
		"created", (json_int_t)info->created, "size", (json_int_t)0);

	return snapshot_manifest_put(cfg, info, m);
}

int snapshot_manifest_write(const struct gpubox_config *cfg, const struct snapshot_info *info)
{
	__do_json json_t *m = NULL;
	char path[PATH_MAX], line[PATH_MAX];
	int ret;

	/* Never a manifest without identity: it would be read as one of before. */
	if (!snapshot_is_hex(info->member_id, SNAPSHOT_MEMBER_ID_SIZE))
		return -EINVAL;
	if (info->local)
		return snapshot_manifest_write_local(cfg, info);
	ret = snapshot_path(cfg, info->member, info->name, ".sha256", path, sizeof(path));
	if (ret < 0)
		return ret;
	snprintf(line, sizeof(line), "%s  %s.tar.zst\n", info->sha256, info->name);
	ret = fsutil_write_atomic(path, line, strlen(line), 0600);
	if (ret < 0)
		return ret;
	m = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s}",
		      "format", 1, "name", info->name, "member", info->member,
		      "member_id", info->member_id,
		      "template", info->template_ref, "template_recipe_hash", info->template_hash,
		      "server", info->server, "created", (json_int_t)info->created,
		      "size", (json_int_t)info->size, "content_size", (json_int_t)info->content_size,
		      "sha256", info->sha256, "compression", "zstd");
	return snapshot_manifest_put(cfg, info, m);
}

int snapshot_remove(const struct gpubox_config *cfg, const char *member, const char *name)
{
	static const char *const suffixes[] = { ".json", ".tar.zst", ".sha256" };
	char path[PATH_MAX], err[128];
	int ret;

	if (snapshot_check_name(name, err, sizeof(err)) < 0)
		return -EINVAL;
	for (size_t i = 0; i < ARRAY_SIZE(suffixes); i++) {
		ret = snapshot_path(cfg, member, name, suffixes[i], path, sizeof(path));
		if (ret < 0)
			return ret;
		if (unlink(path) < 0 && errno != ENOENT)
			return -errno;
	}
	return 0;
}

int snapshot_retire(const struct gpubox_config *cfg, const struct snapshot_owner *owner,
		    bool local_only)
{
	__do_free struct snapshot_info *list = NULL;
	char dir[PATH_MAX];
	size_t n = 0;
	int ret, removed = 0;

	ret = snapshot_path(cfg, owner->name, NULL, NULL, dir, sizeof(dir));
	if (ret < 0)
		return ret;
	snapshot_clean(cfg, owner->name);
	ret = snapshot_list(cfg, owner->name, owner, &list, &n);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < n; i++) {
		if (local_only && !list[i].local)
			continue;
		ret = snapshot_remove(cfg, owner->name, list[i].name);
		if (ret < 0)
			return log_error_errno(ret, -ret, "cannot remove snapshot %s of %s", list[i].name,
					       owner->name);
		removed++;
	}
	if (rmdir(dir) < 0 && errno != ENOENT && errno != ENOTEMPTY && errno != EEXIST)
		log_warn_errno(0, errno, "cannot remove %s", dir);
	return removed;
}

void snapshot_tmp_mark(const struct gpubox_config *cfg, char *buf, size_t len)
{
	size_t j;

	/* The server's name: with a store shared by several servers, each
	 * cleans up only after itself (and after the others only much later). */
	j = (size_t)snprintf(buf, len, SNAPSHOT_TMP_MARK);
	for (size_t i = 0; cfg->server_name[i] && j + 2 < len && i < 32; i++) {
		char c = cfg->server_name[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			  c == '-' || c == '_';

		buf[j++] = ok ? c : '_';
	}
	buf[j++] = '-';
	buf[j] = '\0';
}

/* Seconds after which another server's temporary file, or an archive
 * without its manifest, is taken for a leftover. */
#define SNAPSHOT_FOREIGN_TMP_AGE (24 * 3600)
#define SNAPSHOT_ORPHAN_AGE 3600

void snapshot_clean(const struct gpubox_config *cfg, const char *member)
{
	__do_closedir DIR *dir = NULL;
	char path[PATH_MAX], mark[64];
	struct dirent *de;
	time_t now = time(NULL);

	if (snapshot_path(cfg, member, NULL, NULL, path, sizeof(path)) < 0)
		return;
	snapshot_tmp_mark(cfg, mark, sizeof(mark));
	dir = opendir(path);
	if (!dir)
		return;
	while ((de = readdir(dir))) {
		size_t len = strlen(de->d_name);
		bool stale = false;
		struct stat st;

		if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (strstr(de->d_name, mark))
			stale = true;
		else if (strstr(de->d_name, SNAPSHOT_TMP_MARK))
			stale = now - st.st_mtime > SNAPSHOT_FOREIGN_TMP_AGE;
		else if (strstr(de->d_name, ".tmp."))   /* fsutil_write_atomic()'s, of a manifest */
			stale = now - st.st_mtime > SNAPSHOT_ORPHAN_AGE;
		else if (len > 8 && strcmp(de->d_name + len - 8, ".tar.zst") == 0) {
			char manifest[NAME_MAX + 8];

			snprintf(manifest, sizeof(manifest), "%.*s.json", (int)(len - 8), de->d_name);
			stale = faccessat(dirfd(dir), manifest, F_OK, AT_SYMLINK_NOFOLLOW) < 0 &&
				errno == ENOENT && now - st.st_mtime > SNAPSHOT_ORPHAN_AGE;
		}
		if (!stale)
			continue;
		log_info("removing the unfinished snapshot file %s/%s", path, de->d_name);
		if (unlinkat(dirfd(dir), de->d_name, 0) < 0)
			log_warn_errno(0, errno, "cannot remove %s/%s", path, de->d_name);
	}
}

int snapshot_uses_template(const struct gpubox_config *cfg, const char *ref, char *who,
			   size_t wholen)
{
	__do_closedir DIR *dir = NULL;
	char root[PATH_MAX];
	struct dirent *de;
	int ret;

	ret = snapshot_root(cfg, root, sizeof(root));
	if (ret < 0)
		return ret;
	dir = opendir(root);
	if (!dir)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(dir))) {
		__do_free struct snapshot_info *list = NULL;
		size_t n = 0;

		if (de->d_name[0] == '.')
			continue;
		if (snapshot_list(cfg, de->d_name, NULL, &list, &n) < 0)
			continue;
		for (size_t i = 0; i < n; i++) {
			if (strcmp(list[i].template_ref, ref) == 0) {
				snprintf(who, wholen, "snapshot %s of %s", list[i].name, de->d_name);
				return 1;
			}
		}
	}
	return 0;
}
