/* SPDX-License-Identifier: MIT */
/* File-system helpers for paths the agent owns (never a container's tree:
 * for that, see rootfs.h in the agent). */
#ifndef GPUBOX_FSUTIL_H
#define GPUBOX_FSUTIL_H

#include <stdbool.h>
#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
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
/* Whether path is a directory with no entries (false if it cannot be read). */
bool fsutil_dir_is_empty(const char *path);

/*
 * The reserve guard of the agent's long writes (snapshots, restores, and
 * any other write of member data): whether the file system holding fd can
 * take `more` bytes and still keep `reserve` bytes free.  Free is what an
 * unprivileged writer may use (statvfs f_bavail, never f_bfree): the
 * agent, running as root, must not eat root's reserved blocks either.
 *
 * fd is any descriptor on that file system: the file being written, or a
 * directory (O_PATH will do).  Returns 0 when there is room; -ENOSPC when
 * there is not; another negative errno when fstatvfs() fails.  *avail (may
 * be NULL) gets the bytes free now, to say so in a message.
 *
 * Call it before the write with what the first stretch will take, and
 * again every FSUTIL_RESERVE_STEP bytes written with the next stretch (a
 * statvfs() per buffer costs a round trip on NFS); abort on -ENOSPC and
 * remove what was written.  Others write to the disk meanwhile: the guard
 * bounds what the agent takes, not the disk's free space.
 */
#define FSUTIL_RESERVE_STEP (64ULL << 20)
int fsutil_space_left(int fd, uint64_t reserve, uint64_t more, uint64_t *avail);

#endif
