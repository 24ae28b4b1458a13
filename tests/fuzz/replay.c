/* SPDX-License-Identifier: MIT */
/*
 * Without libFuzzer, a fuzz target is built with this driver: it feeds
 * every file of the directories (or the files) named on the command line
 * to LLVMFuzzerTestOneInput, in sorted order, so every build runs the
 * seed corpus.  A crash or an abort() in the target fails the test.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "fsutil.h"
#include "banned.h"

#define REPLAY_INPUT_MAX (16 * 1024 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* libFuzzer's optional hook; a target defines it only when it needs it. */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int replay_file(const char *path)
{
	__do_free char *data = NULL;
	size_t len = 0;
	int ret;

	ret = fsutil_read_file(path, REPLAY_INPUT_MAX, &data, &len);
	if (ret < 0) {
		fprintf(stderr, "replay: cannot read %s: %s\n", path, strerror(-ret));
		return ret;
	}
	LLVMFuzzerTestOneInput((const uint8_t *)data, len);
	return 0;
}

static int replay_dir(const char *dir, unsigned *count)
{
	struct dirent **names = NULL;
	int n, ret = 0;

	n = scandir(dir, &names, NULL, alphasort);
	if (n < 0) {
		fprintf(stderr, "replay: cannot read the directory %s: %s\n", dir, strerror(errno));
		return -errno;
	}
	for (int i = 0; i < n; i++) {
		char path[4096];
		struct stat st;

		if (names[i]->d_name[0] != '.' &&
		    snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name) < (int)sizeof(path) &&
		    stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			if (replay_file(path) < 0)
				ret = -EIO;
			else
				(*count)++;
		}
		free(names[i]);
	}
	free(names);
	return ret;
}

int main(int argc, char **argv)
{
	unsigned count = 0;
	int ret = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s CORPUS-DIR|FILE...\n", argv[0]);
		return 2;
	}
	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc; i++) {
		struct stat st;

		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
			ret = 1;
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			if (replay_dir(argv[i], &count) < 0)
				ret = 1;
		} else if (replay_file(argv[i]) < 0) {
			ret = 1;
		} else {
			count++;
		}
	}
	printf("replayed %u input%s\n", count, count == 1 ? "" : "s");
	return ret;
}
