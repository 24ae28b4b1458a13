/* SPDX-License-Identifier: MIT */
/*
 * The snapshot extraction: any bytes, taken as an archive, are extracted
 * into a fresh directory over a previous layer (whose unchanged files a
 * restore links); whatever they hold must never crash the extraction, put
 * anything beside that directory, or change the previous layer's files.
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "image/image.h"
#include "cleanup.h"
#include "fsutil.h"
#include "log.h"
#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_count_entries(const char *path)
{
	__do_closedir DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	return n;
}

/* The previous layer: a file a seed archive holds the same (etc/hostname,
 * "box\n", 0644, owned by the base, modified at 1700000000: previous.tar). */
static int fuzz_make_previous(const char *prev, uint32_t base)
{
	static const struct timespec times[2] = { { .tv_sec = 1700000000 }, { .tv_sec = 1700000000 } };
	char path[96];
	__do_close int fd = -EBADF;

	snprintf(path, sizeof(path), "%s/etc", prev);
	if (mkdir(prev, 0755) < 0 || mkdir(path, 0755) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/etc/hostname", prev);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || fsutil_write_all(fd, "box\n", 4) < 0 || futimens(fd, times) < 0)
		return -1;
	if (geteuid() == 0 && fchown(fd, base, base) < 0)
		return -1;
	return 0;
}

static bool fuzz_previous_intact(const char *prev)
{
	char path[96];
	__do_free char *text = NULL;
	size_t len = 0;

	snprintf(path, sizeof(path), "%s/etc/hostname", prev);
	return fsutil_read_file(path, 64, &text, &len) == 0 && len == 4 && memcmp(text, "box\n", 4) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool quiet;
	char dir[] = "/tmp/fuzz_snapshot.XXXXXX", target[64], prev[64];
	struct snapshot_limits limits = { .previous_upper = prev };
	struct snapshot_stats stats;
	struct snapshot_info manifest = { .content_size = 64ULL << 20 };
	unsigned char digest[crypto_hash_sha256_BYTES];
	char err[512];
	__do_close int fd = -EBADF;
	/* Root maps to a base of ids; anyone else can only own files as themselves. */
	uint32_t base = geteuid() == 0 ? 3000000u : (uint32_t)geteuid();

	if (!quiet) {
		log_init("fuzz_snapshot", false, LOG_LEVEL_ERROR);
		quiet = true;
		if (sodium_init() < 0)
			abort();
	}
	/* The manifest's checksum is right: the extraction itself is fuzzed. */
	crypto_hash_sha256(digest, data, size);
	sodium_bin2hex(manifest.sha256, sizeof(manifest.sha256), digest, sizeof(digest));
	if (base == 0 || !mkdtemp(dir))
		return 0;
	snprintf(target, sizeof(target), "%s/layer", dir);
	snprintf(prev, sizeof(prev), "%s/prev", dir);
	fd = memfd_create("archive", MFD_CLOEXEC);
	if (fd >= 0 && mkdir(target, 0755) == 0 && fuzz_make_previous(prev, base) == 0 &&
	    fsutil_write_all(fd, data, size) == 0 && lseek(fd, 0, SEEK_SET) == 0) {
		snapshot_extract(fd, &manifest, target, base, &limits, NULL, &stats, err, sizeof(err));
		/* Nothing beside the layers, and the previous one as it was. */
		if (fuzz_count_entries(dir) != 2 || !fuzz_previous_intact(prev))
			abort();
	}
	fsutil_remove_tree(dir);
	return 0;
}
