/* SPDX-License-Identifier: MIT */
/*
 * Host directories in every container: the "mounts" key of gpubox.conf,
 * e.g. "/data:/data:ro, /scratch/%u:/scratch:rw".  A %u in the host path
 * becomes the member's name, and such a per-member directory is created
 * for the member (owned by their id inside the container) on first use,
 * or, if it is there, must be theirs (mounts_open_member_dir()); any
 * other host directory must exist.  Each is bind-mounted nosuid,nodev.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "container/container.h"
#include "state/state.h"
#include "cleanup.h"
#include "log.h"
#include "strutil.h"
#include "banned.h"

/* Container paths a mount may never cover: the system's own trees. */
static const char *const mounts_forbidden[] = {
	"/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/run", "/sbin",
	"/sys", "/usr", "/var",
};

static bool mounts_valid_path(const char *path, bool allow_member)
{
	if (path[0] != '/' || strlen(path) >= MOUNTS_PATH_MAX)
		return false;
	for (const char *c = path; *c; c++) {
		bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
			  (*c >= '0' && *c <= '9') || strchr("_./@+-", *c);

		if (allow_member && c[0] == '%' && c[1] == 'u') {
			c++;
			continue;
		}
		if (!ok)
			return false;
	}
	/* No "..", no "." component, no "//", no trailing "/". */
	if (strstr(path, "/../") || strstr(path, "/./") || strstr(path, "//"))
		return false;
	if ((strlen(path) >= 3 && strcmp(path + strlen(path) - 3, "/..") == 0) ||
	    (strlen(path) >= 2 && strcmp(path + strlen(path) - 2, "/.") == 0) ||
	    (strlen(path) > 1 && path[strlen(path) - 1] == '/'))
		return false;
	return true;
}

static bool mounts_forbidden_target(const char *target)
{
	for (size_t i = 0; i < ARRAY_SIZE(mounts_forbidden); i++)
		if (strcmp(target, mounts_forbidden[i]) == 0)
			return true;
	return str_has_prefix(target, "/proc/") || str_has_prefix(target, "/sys/") ||
	       str_has_prefix(target, "/dev/");
}

int mounts_parse(const char *text, struct mounts_entry *entries, size_t max, size_t *n,
		 char *err, size_t errlen)
{
	char buf[CONFIG_TEXT_MAX];
	char *item, *save = NULL;

	*n = 0;
	if (strlen(text) >= sizeof(buf)) {
		set_error(err, errlen, "mounts is too long");
		return -EINVAL;
	}
	memcpy(buf, text, strlen(text) + 1);
	for (item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *host = strip(item), *target, *mode;
		struct mounts_entry *e;

		if (!*host)
			continue;
		if (*n == max) {
			set_error(err, errlen, "mounts names more than %zu directories", max);
			return -EINVAL;
		}
		target = strchr(host, ':');
		mode = target ? strchr(target + 1, ':') : NULL;
		if (!target || !mode || strchr(mode + 1, ':')) {
			set_error(err, errlen, "mounts: \"%.80s\" is not HOST:CONTAINER:ro or HOST:CONTAINER:rw",
				 host);
			return -EINVAL;
		}
		*target++ = '\0';
		*mode++ = '\0';
		e = &entries[*n];
		if (!mounts_valid_path(host, true) || !mounts_valid_path(target, false)) {
			set_error(err, errlen,
				 "mounts: \"%.80s:%.80s\" needs absolute paths of letters, digits and _./@+- (and %%u on the host side)",
				 host, target);
			return -EINVAL;
		}
		if (mounts_forbidden_target(target)) {
			set_error(err, errlen, "mounts: %.80s is a system directory of the container; choose another place",
				 target);
			return -EINVAL;
		}
		if (strcmp(mode, "ro") != 0 && strcmp(mode, "rw") != 0) {
			set_error(err, errlen, "mounts: the mode of %.80s must be ro or rw", target);
			return -EINVAL;
		}
		snprintf(e->host, sizeof(e->host), "%s", host);
		snprintf(e->target, sizeof(e->target), "%s", target);
		e->read_only = strcmp(mode, "ro") == 0;
		e->per_member = strstr(host, "%u") != NULL;
		(*n)++;
	}
	return 0;
}

/* The host path with every %u replaced by the member's name. */
static int mounts_expand(const char *host, const char *member, char *out, size_t len)
{
	size_t o = 0;

	for (const char *c = host; *c; c++) {
		const char *piece = c;
		size_t plen = 1;

		if (c[0] == '%' && c[1] == 'u') {
			piece = member;
			plen = strlen(member);
			c++;
		}
		if (o + plen >= len)
			return -ENAMETOOLONG;
		memcpy(out + o, piece, plen);
		o += plen;
	}
	out[o] = '\0';
	return 0;
}

/*
 * The member's own directory (a host path with %u), opened as a
 * descriptor and checked on that, never by its path: the part before the
 * first %u is the admin's (opened as written), the rest is resolved
 * beneath it without following any symbolic link, so neither a link left
 * by someone else nor one the member made inside their directory can take
 * the mount elsewhere.  It is created if absent, 0700 and owned by the
 * member's id inside the container; one that is there must be a directory
 * owned by that id and writable by no one else.  Its device and inode are
 * kept, so that mounts_harden() can check that LXC mounted this one.
 */
/* A link as the last name is opened as itself, and refused by the checks. */
static const struct open_how mounts_beneath = {
	.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
	.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
};

static int mounts_openat2(int dirfd, const char *rel, unsigned long long flags)
{
	struct open_how how = mounts_beneath;

	how.flags |= flags;
	return (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
}

/* The admin's part of a %u path: up to the last '/' before the first %u.
 * Its descriptor, and in *rest what lies below it in source. */
static int mounts_open_base(const char *host, const char *source, const char **rest,
			    char *err, size_t errlen)
{
	char base[MOUNTS_PATH_MAX + 64];
	size_t cut = (size_t)(strstr(host, "%u") - host);
	int fd;

	while (cut > 0 && host[cut - 1] != '/')
		cut--;
	snprintf(base, sizeof(base), "%.*s", (int)cut, host);
	*rest = source + cut;
	fd = open(base, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		int ret = -errno;

		set_error(err, errlen, "the host directory %s (mounts in gpubox.conf) cannot be opened: %s",
			  base, strerror(-ret));
		return log_error_errno(ret, -ret, "mounts: cannot open %s", base);
	}
	return fd;
}

/* Create the missing member's directory rel beneath basefd, 0700 and the
 * member's; its descriptor, or a negative errno: *reported when the
 * failure is said (err) and logged here, else the caller refuses it as
 * what it is (-EEXIST: something appeared there in between). */
static int mounts_create_member_dir(int basefd, const char *rel, const char *source, uid_t owner,
				    bool *reported, char *err, size_t errlen)
{
	__do_close int parentfd = -EBADF, fd = -EBADF;
	const char *slash = strrchr(rel, '/');
	const char *name = slash ? slash + 1 : rel;
	char parent[MOUNTS_PATH_MAX + 64];

	if (slash) {
		snprintf(parent, sizeof(parent), "%.*s", (int)(slash - rel), rel);
		parentfd = mounts_openat2(basefd, parent, O_DIRECTORY);
	} else {
		parentfd = dup(basefd);
	}
	if (parentfd < 0)
		return -errno;
	if (mkdirat(parentfd, name, 0700) < 0) {
		int ret = -errno;

		if (ret == -EEXIST)
			return ret;
		set_error(err, errlen, "cannot create %s: %s", source, strerror(-ret));
		*reported = true;
		return log_error_errno(ret, -ret, "mounts: cannot create %s", source);
	}
	fd = mounts_openat2(parentfd, name, 0);
	if (fd < 0)
		return -errno;
	if (fchownat(fd, "", owner, owner, AT_EMPTY_PATH) < 0) {
		int ret = -errno;

		set_error(err, errlen, "cannot create %s: %s", source, strerror(-ret));
		*reported = true;
		return log_error_errno(ret, -ret, "mounts: cannot give %s to %u", source,
				       (unsigned)owner);
	}
	log_info("created %s (uid %u)", source, (unsigned)owner);
	return move_fd(fd);
}

/* The refusal of a member's directory that could not be opened (ret). */
static int mounts_refuse_open(const char *source, int ret, char *err, size_t errlen)
{
	const char *why = ret == -ELOOP || ret == -EXDEV ? "is (or lies under) a symbolic link"
			: ret == -ENOTDIR ? "is not a directory"
			: ret == -EEXIST ? "appeared while it was being created"
			: strerror(-ret);

	set_error(err, errlen, "the member's host directory %s %s; it was not made by gpubox, "
		  "an admin must remove or fix it", source, why);
	return log_error_errno(ret == -ENOENT ? -ENOENT : -EPERM, -ret,
			       "mounts: refused %s: it %s", source, why);
}

/* A directory owned by the member's id and writable by no one else. */
static int mounts_check_member_dir(int fd, const char *source, uid_t owner, struct stat *st,
				   char *err, size_t errlen)
{
	if (fstat(fd, st) < 0) {
		int ret = -errno;

		set_error(err, errlen, "cannot check %s: %s", source, strerror(-ret));
		return log_error_errno(ret, -ret, "mounts: cannot check %s", source);
	}
	if (!S_ISDIR(st->st_mode)) {
		const char *why = S_ISLNK(st->st_mode) ? "is a symbolic link" : "is not a directory";

		set_error(err, errlen, "the member's host directory %s %s; it was not made by gpubox, "
			  "an admin must remove or fix it", source, why);
		return log_error_errno(-EPERM, EPERM, "mounts: refused %s: it %s", source, why);
	}
	if (st->st_uid != owner) {
		set_error(err, errlen, "the member's host directory %s is owned by uid %u, not by "
			  "the member (uid %u); an admin must remove or fix it",
			  source, (unsigned)st->st_uid, (unsigned)owner);
		return log_error_errno(-EPERM, EPERM, "mounts: refused %s: owned by uid %u, not %u",
				       source, (unsigned)st->st_uid, (unsigned)owner);
	}
	if (st->st_mode & (S_IWGRP | S_IWOTH)) {
		set_error(err, errlen, "the member's host directory %s is writable by others "
			  "(mode %04o); an admin must remove or fix it",
			  source, (unsigned)(st->st_mode & 07777));
		return log_error_errno(-EPERM, EPERM, "mounts: refused %s: writable by others (mode %04o)",
				       source, (unsigned)(st->st_mode & 07777));
	}
	return 0;
}

static int mounts_open_member_dir(const char *host, const char *source, uid_t owner,
				  struct stat *st, char *err, size_t errlen)
{
	__do_close int basefd = -EBADF, fd = -EBADF;
	bool reported = false;
	const char *rest;

	basefd = mounts_open_base(host, source, &rest, err, errlen);
	if (basefd < 0)
		return basefd;
	fd = mounts_openat2(basefd, rest, 0);
	if (fd < 0 && errno == ENOENT) {
		fd = mounts_create_member_dir(basefd, rest, source, owner, &reported, err, errlen);
		if (reported)
			return fd;
	} else if (fd < 0) {
		fd = -errno;
	}
	if (fd < 0)
		return mounts_refuse_open(source, fd, err, errlen);
	return mounts_check_member_dir(fd, source, owner, st, err, errlen);
}

int mounts_prepare(const struct gpubox_config *cfg, const struct member_record *rec,
		   struct mounts_plan *plan, char *err, size_t errlen)
{
	struct mounts_entry entries[MOUNTS_MAX];
	size_t n = 0;
	int ret;

	memset(plan, 0, sizeof(*plan));
	ret = mounts_parse(cfg->mounts, entries, MOUNTS_MAX, &n, err, errlen);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < n; i++) {
		struct mounts_entry *e = &entries[i];
		char *source = plan->source[i];
		struct stat st;

		ret = mounts_expand(e->host, rec->name, source, sizeof(plan->source[i]));
		if (ret < 0) {
			set_error(err, errlen, "mounts: %s is too long for %s", e->host, rec->name);
			return ret;
		}
		if (e->per_member) {
			ret = mounts_open_member_dir(e->host, source, rec->subid_base + rec->uid,
						     &st, err, errlen);
			if (ret < 0)
				return ret;
			plan->checked[i] = true;
			plan->dev[i] = st.st_dev;
			plan->ino[i] = st.st_ino;
		} else if (lstat(source, &st) < 0 || !S_ISDIR(st.st_mode)) {
			set_error(err, errlen, "the host directory %s (mounts in gpubox.conf) does not exist", source);
			return -ENOENT;
		}
		snprintf(plan->target[i], sizeof(plan->target[i]), "%s", e->target + 1);
		plan->mounts[i] = (struct container_mount){
			.source = source, .target = plan->target[i],
			.options = e->read_only ? "rbind,ro,nosuid,nodev,create=dir"
						: "bind,nosuid,nodev,create=dir",
		};
	}
	plan->n = n;
	return 0;
}

/*
 * LXC 5.0 applies nosuid and nodev to a bind mount only when it is also
 * read-only.  Set them on the writable ones in the running container's
 * mount namespace, from a child that joins it; the mount is reached with
 * openat2 beneath the container's root, never through a symbolic link.
 * A member's own directory was checked by its descriptor but LXC mounts
 * it by its path: check there that the mount is the directory checked.
 */
static int mounts_harden_one(int nsfd, const struct mounts_plan *plan, size_t i, bool harden)
{
	const char *target = plan->target[i];

	int status = 0;
	pid_t child = fork();

	if (child < 0)
		return -errno;
	if (child == 0) {
		struct open_how how = {
			.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
			.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
		};
		struct mount_attr attr = { .attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV };
		struct stat st;
		int rootfd, fd;

		if (setns(nsfd, CLONE_NEWNS) < 0)
			_exit(1);
		rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (rootfd < 0)
			_exit(2);
		fd = (int)syscall(SYS_openat2, rootfd, target, &how, sizeof(how));
		if (fd < 0)
			_exit(3);
		if (plan->checked[i] && (fstat(fd, &st) < 0 || st.st_dev != plan->dev[i] ||
					 st.st_ino != plan->ino[i]))
			_exit(5);
		if (harden && syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0)
			_exit(4);
		_exit(0);
	}
	while (waitpid(child, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

int mounts_harden(const struct mounts_plan *plan, pid_t pid)
{
	__do_close int nsfd = -EBADF;
	char ns[64];

	snprintf(ns, sizeof(ns), "/proc/%d/ns/mnt", (int)pid);
	nsfd = open(ns, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0)
		return log_error_errno(-errno, errno, "cannot open the mount namespace of %d", (int)pid);
	for (size_t i = 0; i < plan->n; i++) {
		bool harden = !strstr(plan->mounts[i].options, ",ro,");
		int ret;

		if (!harden && !plan->checked[i])
			continue;
		ret = mounts_harden_one(nsfd, plan, i, harden);
		if (ret < 0)
			return log_error_errno(ret, -ret, "cannot make /%s nosuid,nodev in the container, "
					       "or it is not %s as checked", plan->target[i],
					       plan->source[i]);
	}
	return 0;
}
