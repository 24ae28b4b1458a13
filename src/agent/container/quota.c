/* SPDX-License-Identifier: MIT */
/*
 * Project quotas on members' layers (ext4 with the project and quota
 * features mounted with prjquota, or XFS with prjquota).
 *
 * A member's layer directory carries a project id (the member's uid: unique
 * on the server and stable for the member's life) and the PROJINHERIT
 * flag, set before anything is created below it, so that every file and
 * directory made in it later, by overlayfs on the member's behalf, is
 * charged to the project.  The limit is set on the project with
 * quotactl_fd(2) on any descriptor of the file system; the kernel then
 * answers EDQUOT past it, and statfs() of a PROJINHERIT directory (the
 * overlay's upper directory, which overlayfs asks for `df /`) reports the
 * limit as the size.
 *
 * The member cannot move their files out of the project: the kernel lets
 * only a caller in the initial user namespace change a project id or
 * PROJINHERIT (fileattr_set_prepare()), and the container's root is not one.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/quota.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/dqblk_xfs.h>
#include <linux/fs.h>

#include "container/container.h"
#include "log.h"
#include "banned.h"

#ifndef PRJQUOTA
#define PRJQUOTA 2
#endif
#ifndef SYS_quotactl_fd
#define SYS_quotactl_fd 443
#endif

/* The unit of the generic quota interface's block limits. */
#define QUOTA_BLOCK 1024u

static int quota_ctl(int fd, unsigned cmd, uint32_t id, void *addr)
{
	/* QCMD() shifts an int: the XFS-style commands (Q_XGETQSTAT, 0x580005)
	 * would overflow it.  The same bits, unsigned. */
	unsigned full = (cmd << SUBCMDSHIFT) | (PRJQUOTA & SUBCMDMASK);

	if (syscall(SYS_quotactl_fd, (unsigned)fd, full, (unsigned)id, addr) < 0)
		return -errno;
	return 0;
}

bool quota_enforced(int fd)
{
	struct fs_quota_stat st = { .qs_version = FS_QSTAT_VERSION };
	struct if_dqinfo info;

	if (quota_ctl(fd, Q_XGETQSTAT, 0, &st) == 0)
		return (st.qs_flags & FS_QUOTA_PDQ_ENFD) && (st.qs_flags & FS_QUOTA_PDQ_ACCT);
	/* A file system without the XFS-style state call: project quotas
	 * switched on at all is the best one can tell. */
	return quota_ctl(fd, Q_GETINFO, 0, &info) == 0;
}

int quota_get_project(int fd, uint32_t *project)
{
	struct fsxattr fsx;

	if (ioctl(fd, FS_IOC_FSGETXATTR, &fsx) < 0)
		return -errno;
	*project = fsx.fsx_projid;
	return 0;
}

int quota_set_project(int fd, uint32_t project)
{
	struct fsxattr fsx;

	if (ioctl(fd, FS_IOC_FSGETXATTR, &fsx) < 0)
		return -errno;
	if (fsx.fsx_projid == project && (fsx.fsx_xflags & FS_XFLAG_PROJINHERIT))
		return 0;
	fsx.fsx_projid = project;
	fsx.fsx_xflags |= FS_XFLAG_PROJINHERIT;
	if (ioctl(fd, FS_IOC_FSSETXATTR, &fsx) < 0)
		return -errno;
	return 0;
}

uint64_t quota_blocks(uint64_t bytes)
{
	if (bytes == QUOTA_NONE || bytes == 0)
		return 0;
	return bytes / QUOTA_BLOCK + (bytes % QUOTA_BLOCK != 0);
}

int quota_set_limit(int fd, uint32_t project, uint64_t bytes)
{
	struct dqblk dq = { 0 };

	if (project == 0)
		return -EINVAL;
	/* The soft limit too: ext4's statfs() reports the lower of the two. */
	dq.dqb_bhardlimit = quota_blocks(bytes);
	dq.dqb_bsoftlimit = dq.dqb_bhardlimit;
	dq.dqb_valid = QIF_BLIMITS;
	return quota_ctl(fd, Q_SETQUOTA, project, &dq);
}

int quota_get(int fd, uint32_t project, struct quota_usage *out)
{
	struct dqblk dq = { 0 };
	int ret = quota_ctl(fd, Q_GETQUOTA, project, &dq);

	if (ret < 0)
		return ret;
	out->bytes = dq.dqb_curspace;
	out->limit = dq.dqb_bhardlimit ? dq.dqb_bhardlimit * QUOTA_BLOCK : QUOTA_NONE;
	return 0;
}
