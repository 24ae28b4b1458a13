/* SPDX-License-Identifier: MIT */
/*
 * The snapshot extraction: any bytes, taken as an archive, are extracted
 * into a fresh directory; whatever they hold must never crash the
 * extraction nor put anything beside that directory.
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool quiet;
	char dir[] = "/tmp/fuzz_snapshot.XXXXXX", target[64];
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
	fd = memfd_create("archive", MFD_CLOEXEC);
	if (fd >= 0 && mkdir(target, 0755) == 0 && fsutil_write_all(fd, data, size) == 0 &&
	    lseek(fd, 0, SEEK_SET) == 0) {
		snapshot_extract(fd, &manifest, target, base, NULL, NULL, &stats, err, sizeof(err));
		/* Nothing beside the layer: only "layer" in the directory. */
		if (fuzz_count_entries(dir) != 1)
			abort();
	}
	fsutil_remove_tree(dir);
	return 0;
}
