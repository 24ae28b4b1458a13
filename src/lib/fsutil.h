/* SPDX-License-Identifier: MIT */
/* File-system helpers for paths the agent owns (never a container's tree:
 * for that, see rootfs.h in the agent). */
#ifndef GPUBOX_FSUTIL_H
#define GPUBOX_FSUTIL_H

#include <stdbool.h>
#include <dirent.h>
#include <stddef.h>
#include <sys/types.h>

/* write() until all of buf is written, retrying on EINTR. */
int fsutil_write_all(int fd, const void *buf, size_t len);

/* mkdir -p with the given mode for created components. */
int fsutil_mkdir_p(const char *path, mode_t mode);

/* Write path atomically (temporary file, fsync, rename). */
int fsutil_write_atomic(const char *path, const void *data, size_t len, mode_t mode);

/* Read a whole file of at most max bytes; *data is NUL-terminated. */
/* A directory stream of fd, which it then owns.  On failure fd is closed
 * and NULL returned, errno kept for the caller. */
DIR *fsutil_fdopendir(int fd);
/* The same from an open descriptor, read to its end. */
int fsutil_read_fd(int fd, size_t max, char **data, size_t *len);
int fsutil_read_file(const char *path, size_t max, char **data, size_t *len);

/*
 * Remove name below dirfd and everything under it, never following a
 * symbolic link and never crossing into another mount.  A missing entry
 * is success.
 */
int fsutil_remove_tree_at(int dirfd, const char *name);
int fsutil_remove_tree(const char *path);

/* Remove everything inside the directory at path, keeping the directory. */
int fsutil_empty_dir(const char *path);

bool fsutil_exists(const char *path);

#endif
