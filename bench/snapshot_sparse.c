/* SPDX-License-Identifier: MIT */
/*
 * bench-snapshot-sparse DIR REGIONS SIZE: a layer of one sparse file,
 * REGIONS data regions of 4 KiB spread evenly over SIZE bytes (K/M/G/T),
 * archived with snapshot_write() and extracted with snapshot_extract() in
 * DIR (removed after).  Prints the times, the archive's size and the disk
 * the restored file takes.  Needs root (owners).  Built with
 * -DSNAPSHOT_OLD_API, it measures the version before snapshot limits.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "image/image.h"
#include "fsutil.h"
#include "log.h"
#include "strutil.h"

#define BASE 3000000u

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int make_sparse(const char *path, unsigned regions, unsigned long long size)
{
	char block[4096];
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

	if (fd < 0)
		return -errno;
	for (unsigned i = 0; i < regions; i++) {
		off_t at = (off_t)(size / regions * i) & ~(off_t)4095;

		memset(block, 1 + i % 250, sizeof(block));
		if (pwrite(fd, block, sizeof(block), at) != (ssize_t)sizeof(block))
			return -errno;
	}
	if (ftruncate(fd, (off_t)size) < 0 || fchown(fd, BASE, BASE) < 0)
		return -errno;
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	char layer[4096], target[4096], archive[4096], file[4200], err[512] = "";
	struct snapshot_stats wstats, rstats;
	struct snapshot_info m = { 0 };
	uint64_t size;
	double t0, t1, t2;
	struct stat st;
	int fd, ret;

	if (argc != 4) {
		fprintf(stderr, "usage: %s DIR REGIONS SIZE\n", argv[0]);
		return 2;
	}
	log_init("bench-snapshot-sparse", false, LOG_LEVEL_ERROR);
	if (parse_size(argv[3], &size) < 0) {
		fprintf(stderr, "%s: SIZE is a whole number with K, M, G or T, such as 1T\n", argv[0]);
		return 2;
	}
	snprintf(layer, sizeof(layer), "%s/layer", argv[1]);
	snprintf(target, sizeof(target), "%s/target", argv[1]);
	snprintf(archive, sizeof(archive), "%s/a.tar.zst", argv[1]);
	snprintf(file, sizeof(file), "%s/sparse", layer);
	if (fsutil_mkdir_p(layer, 0755) < 0 || fsutil_mkdir_p(target, 0755) < 0 ||
	    chown(layer, BASE, BASE) < 0 || chown(target, BASE, BASE) < 0 ||
	    make_sparse(file, (unsigned)atoi(argv[2]), size) < 0) {
		perror("setting up");
		return 1;
	}
	fd = open(archive, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	t0 = now();
#ifdef SNAPSHOT_OLD_API
	ret = snapshot_write(layer, fd, BASE, 0, NULL, &wstats, err, sizeof(err));
#else
	ret = snapshot_write(layer, fd, BASE, 0, NULL, NULL, &wstats, err, sizeof(err));
#endif
	close(fd);
	t1 = now();
	if (ret < 0) {
		fprintf(stderr, "snapshot: %s\n", err[0] ? err : strerror(-ret));
		return 1;
	}
	m.content_size = wstats.content_bytes;
	snprintf(m.sha256, sizeof(m.sha256), "%s", wstats.sha256);
	fd = open(archive, O_RDONLY | O_CLOEXEC);
#ifdef SNAPSHOT_OLD_API
	ret = snapshot_extract(fd, &m, target, BASE, NULL, &rstats, err, sizeof(err));
#else
	ret = snapshot_extract(fd, &m, target, BASE, NULL, NULL, &rstats, err, sizeof(err));
#endif
	close(fd);
	t2 = now();
	if (ret < 0) {
		fprintf(stderr, "restore: %s\n", err[0] ? err : strerror(-ret));
		return 1;
	}
	snprintf(file, sizeof(file), "%s/sparse", target);
	if (stat(file, &st) < 0)
		return 1;
	printf("%s regions over %llu bytes: snapshot %.2f s, archive %llu bytes; restore %.2f s, "
	       "%lld bytes apparent, %lld bytes on disk\n", argv[2], (unsigned long long)size, t1 - t0,
	       wstats.archive_bytes, t2 - t1, (long long)st.st_size, (long long)st.st_blocks * 512);
	fsutil_remove_tree(argv[1]);
	return 0;
}
