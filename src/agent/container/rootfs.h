/* SPDX-License-Identifier: MIT */
/*
 * Writes into a container's tree, confined to it (used by provision.c).
 */
#ifndef GPUBOX_AGENT_ROOTFS_H
#define GPUBOX_AGENT_ROOTFS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- rootfs.c: writes into a container's tree, confined to it ---------- */

/* Every path below is relative to the tree's root; no component may be a
 * symbolic link and none may leave the tree (openat2 RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV).
 * uid/gid are host ids (already shifted). */
struct stat;
/* A descriptor (O_PATH) of the tree's root at path, or a negative errno. */
int rootfs_open(const char *path);
/* Like lstat(); a symbolic link anywhere, the last component included,
 * is -ELOOP. */
int rootfs_stat(int rootfd, const char *rel, struct stat *st);
/* Create each missing component; owner and mode are set on the ones
 * created and on the last one.  An existing non-directory is -ENOTDIR. */
int rootfs_mkdir(int rootfd, const char *rel, mode_t mode, uid_t uid, gid_t gid);
/* Replace rel atomically (temporary file, fsync, rename).  A symbolic
 * link at rel is refused with -ELOOP. */
int rootfs_write_file(int rootfd, const char *rel, const void *data, size_t len,
		      mode_t mode, uid_t uid, gid_t gid);
/* A regular file of at most max bytes; *data is NUL-terminated, caller
 * frees.  -EFBIG if larger, -EINVAL if not a regular file. */
int rootfs_read_file(int rootfd, const char *rel, size_t max, char **data, size_t *len);
/* Remove a file (a symbolic link itself, never its target); a missing
 * entry is success. */
int rootfs_unlink(int rootfd, const char *rel);

#endif
