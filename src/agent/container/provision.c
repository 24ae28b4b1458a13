/* SPDX-License-Identifier: MIT */
/*
 * The member's account inside their container, written before each start
 * into the merged tree.  That tree belongs to the container's root, so
 * every access goes through rootfs.c (confined, no symbolic links).  Ids
 * written to files are the container's own; owners on disk are host ids:
 * the container's root is subid_base, the member subid_base + uid.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "container/container.h"
#include "container/rootfs.h"
#include "cleanup.h"
#include "fsutil.h"
#include "log.h"
#include "strutil.h"
#include "banned.h"

#define PROVISION_DB_MAX (8u << 20)
#define PROVISION_SMALL_MAX (1u << 20)
#define PROVISION_HOST_RESOLV "/etc/resolv.conf"
#define PROVISION_RESOLVED_RESOLV "/run/systemd/resolve/resolv.conf"

struct provision_ctx {
	int rootfd;
	const struct provision_member *m;
	uid_t root_uid;     /* host ids */
	gid_t root_gid;
	uid_t uid;
	gid_t gid;
};

/* A file of the container: its text ("" when absent) and, if present, its stat. */
struct provision_file {
	const char *rel;
	char *text;
	size_t len;
	bool exists;
	struct stat st;
};

static void provision_file_free(struct provision_file *f)
{
	free(f->text);
	f->text = NULL;
}

#define __do_provision_file __attribute__((cleanup(provision_file_free)))

/* A growing string. */
struct provision_buf {
	char *data;
	size_t len, size;
};

static int provision_buf_add(struct provision_buf *b, const char *s, size_t len)
{
	if (b->len + len + 1 > b->size) {
		size_t size = (b->len + len + 1) * 2;
		char *data = realloc(b->data, size);

		if (!data)
			return -ENOMEM;
		b->data = data;
		b->size = size;
	}
	memcpy(b->data + b->len, s, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

static int provision_buf_str(struct provision_buf *b, const char *s)
{
	return provision_buf_add(b, s, strlen(s));
}

static bool provision_valid_name(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > 32)
		return false;
	if (!((name[0] >= 'a' && name[0] <= 'z') || name[0] == '_'))
		return false;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
			return false;
	return true;
}

static bool provision_valid_hostname(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > 64 || name[0] == '-' || name[0] == '.')
		return false;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
			return false;
	return true;
}

static int provision_read(struct provision_ctx *c, struct provision_file *f, const char *rel, size_t max)
{
	int ret;

	f->rel = rel;
	f->text = NULL;
	f->len = 0;
	ret = rootfs_stat(c->rootfd, rel, &f->st);
	if (ret == -ENOENT) {
		f->exists = false;
		f->text = strdup("");
		return f->text ? 0 : -ENOMEM;
	}
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot use /%s in the container%s", rel,
				       ret == -ELOOP ? " (a symbolic link)" : "");
	f->exists = true;
	ret = rootfs_read_file(c->rootfd, rel, max, &f->text, &f->len);
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot read /%s in the container", rel);
	return 0;
}

/* Write text to f's file unless unchanged, keeping an existing file's owner and mode. */
static int provision_update(struct provision_ctx *c, const struct provision_file *f,
			    const char *text, mode_t mode, uid_t uid, gid_t gid)
{
	if (f->exists) {
		if (strcmp(f->text, text) == 0)
			return 0;
		mode = f->st.st_mode & 07777;
		uid = f->st.st_uid;
		gid = f->st.st_gid;
	}
	return rootfs_write_file(c->rootfd, f->rel, text, strlen(text), mode, uid, gid);
}

/* Field number index of a colon-separated line. */
static bool provision_field(const char *line, size_t len, unsigned index, const char **start, size_t *flen)
{
	const char *p = line, *end = line + len;

	for (unsigned i = 0; i < index; i++) {
		const char *colon = memchr(p, ':', (size_t)(end - p));

		if (!colon)
			return false;
		p = colon + 1;
	}
	*start = p;
	{
		const char *colon = memchr(p, ':', (size_t)(end - p));

		*flen = colon ? (size_t)(colon - p) : (size_t)(end - p);
	}
	return true;
}

static bool provision_field_is(const char *field, size_t len, const char *s)
{
	return strlen(s) == len && memcmp(field, s, len) == 0;
}

static bool provision_field_id(const char *field, size_t len, uint32_t *id)
{
	char buf[16];

	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, field, len);
	buf[len] = '\0';
	return parse_uint32(buf, id) == 0;
}

/*
 * Look for name (and, if id_field > 0, the id) in an account database
 * (passwd, group, shadow, gshadow).  *present when an entry has this name
 * and this id; -EEXIST when the name or the id belongs to another entry.
 * *found_id receives the id of the entry named name, if any.
 */
static int provision_db_find(const struct provision_file *f, const char *name, unsigned id_field,
			     uint32_t id, bool check_id, bool *present, uint32_t *found_id)
{
	const char *line = f->text, *end = f->text + f->len;

	*present = false;
	while (line < end) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		size_t len = nl ? (size_t)(nl - line) : (size_t)(end - line);
		const char *field, *idf = "?";
		size_t flen, idlen = 1;
		uint32_t entry_id = 0;
		bool has_id = false;

		if (len == 0 || line[0] == '#' || line[0] == '+' || line[0] == '-' ||
		    !provision_field(line, len, 0, &field, &flen))
			goto next;
		if (id_field > 0 && provision_field(line, len, id_field, &idf, &idlen))
			has_id = provision_field_id(idf, idlen, &entry_id);

		if (provision_field_is(field, flen, name)) {
			if (found_id && has_id)
				*found_id = entry_id;
			if (check_id && (!has_id || entry_id != id))
				return log_error_errno(-EEXIST, 0,
					"/%s in the container already has \"%s\" with id %.*s, not %u; "
					"remove that entry from the template or the container",
					f->rel, name, has_id ? (int)idlen : 1, has_id ? idf : "?", id);
			*present = true;
		} else if (check_id && has_id && entry_id == id) {
			return log_error_errno(-EEXIST, 0,
				"/%s in the container already gives id %u to \"%.*s\", not to \"%s\"; "
				"remove that entry from the template or the container",
				f->rel, id, (int)flen, field, name);
		}
next:
		line += len + 1;
	}
	return 0;
}

/* f's text with line appended (and a newline before it if needed). */
static char *provision_append(const struct provision_file *f, const char *line)
{
	struct provision_buf b = { 0 };

	if (provision_buf_add(&b, f->text, f->len) < 0 ||
	    (f->len > 0 && f->text[f->len - 1] != '\n' && provision_buf_str(&b, "\n") < 0) ||
	    provision_buf_str(&b, line) < 0) {
		free(b.data);
		return NULL;
	}
	return b.data;
}

/* Add line to f's file unless an entry for the name is already there. */
static int provision_db_add(struct provision_ctx *c, const struct provision_file *f, bool present,
			    const char *line, mode_t mode, uid_t uid, gid_t gid)
{
	__do_free char *text = NULL;

	if (present)
		return 0;
	text = provision_append(f, line);
	if (!text)
		return -ENOMEM;
	return provision_update(c, f, text, mode, uid, gid);
}

/* /etc/hosts: every other line kept, one "127.0.1.1 <hostname>" line. */
static char *provision_hosts_text(const struct provision_file *f, const char *hostname)
{
	const char *line = f->text, *end = f->text + f->len;
	struct provision_buf b = { 0 };
	char entry[128];
	bool placed = false;
	int ret = 0;

	snprintf(entry, sizeof(entry), "127.0.1.1\t%s\n", hostname);
	if (!f->exists)
		ret = provision_buf_str(&b, "127.0.0.1\tlocalhost\n"
					    "::1\t\tlocalhost ip6-localhost ip6-loopback\n");
	while (ret == 0 && line < end) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		size_t len = nl ? (size_t)(nl - line) : (size_t)(end - line);
		const char *p = line;

		while (p < line + len && (*p == ' ' || *p == '\t'))
			p++;
		if ((size_t)(line + len - p) > 9 && memcmp(p, "127.0.1.1", 9) == 0 &&
		    (p[9] == ' ' || p[9] == '\t')) {
			if (!placed)
				ret = provision_buf_str(&b, entry);
			placed = true;
		} else {
			ret = provision_buf_add(&b, line, len);
			if (ret == 0)
				ret = provision_buf_str(&b, "\n");
		}
		line += len + 1;
	}
	if (ret == 0 && !placed)
		ret = provision_buf_str(&b, entry);
	if (ret < 0 || !b.data) {
		free(b.data);
		return NULL;
	}
	return b.data;
}

/* Create rel as a directory if absent; an existing one is left as it is. */
static int provision_ensure_dir(struct provision_ctx *c, const char *rel, mode_t mode,
				uid_t uid, gid_t gid, bool *created)
{
	struct stat st;
	int ret = rootfs_stat(c->rootfd, rel, &st);

	if (created)
		*created = false;
	if (ret == 0) {
		if (!S_ISDIR(st.st_mode))
			return log_error_errno(-ENOTDIR, 0, "/%s in the container is not a directory", rel);
		return 0;
	}
	if (ret != -ENOENT)
		return log_error_errno(ret, -ret, "cannot use /%s in the container%s", rel,
				       ret == -ELOOP ? " (a symbolic link)" : "");
	ret = rootfs_mkdir(c->rootfd, rel, mode, uid, gid);
	if (ret < 0)
		return ret;
	if (created)
		*created = true;
	return 0;
}

static int provision_accounts(struct provision_ctx *c)
{
	__do_provision_file struct provision_file passwd = { 0 }, group = { 0 };
	__do_provision_file struct provision_file shadow = { 0 }, gshadow = { 0 };
	const struct provision_member *m = c->m;
	bool in_passwd, in_group, in_shadow, in_gshadow, unused;
	uint32_t shadow_gid = UINT32_MAX;
	char line[512];
	int ret;

	ret = provision_read(c, &passwd, "etc/passwd", PROVISION_DB_MAX);
	if (ret == 0)
		ret = provision_read(c, &group, "etc/group", PROVISION_DB_MAX);
	if (ret == 0)
		ret = provision_read(c, &shadow, "etc/shadow", PROVISION_DB_MAX);
	if (ret == 0)
		ret = provision_read(c, &gshadow, "etc/gshadow", PROVISION_DB_MAX);
	if (ret < 0)
		return ret;

	/* Every check before any write: a clash leaves the files as they were. */
	ret = provision_db_find(&passwd, m->name, 2, m->uid, true, &in_passwd, NULL);
	if (ret == 0)
		ret = provision_db_find(&group, m->name, 2, m->gid, true, &in_group, NULL);
	if (ret == 0)
		ret = provision_db_find(&shadow, m->name, 0, 0, false, &in_shadow, NULL);
	if (ret == 0)
		ret = provision_db_find(&gshadow, m->name, 0, 0, false, &in_gshadow, NULL);
	if (ret == 0)
		ret = provision_db_find(&group, "shadow", 2, 0, false, &unused, &shadow_gid);
	if (ret < 0)
		return ret;
	if (shadow_gid >= SUBID_COUNT)
		shadow_gid = 0;

	snprintf(line, sizeof(line), "%s:x:%u:%u::/home/%s:/bin/bash\n", m->name, m->uid, m->gid, m->name);
	ret = provision_db_add(c, &passwd, in_passwd, line, 0644, c->root_uid, c->root_gid);
	if (ret < 0)
		return ret;
	snprintf(line, sizeof(line), "%s:x:%u:\n", m->name, m->gid);
	ret = provision_db_add(c, &group, in_group, line, 0644, c->root_uid, c->root_gid);
	if (ret < 0)
		return ret;
	snprintf(line, sizeof(line), "%s:*:%lld:0:99999:7:::\n", m->name, (long long)(time(NULL) / 86400));
	ret = provision_db_add(c, &shadow, in_shadow, line, 0640, c->root_uid, c->m->subid_base + shadow_gid);
	if (ret < 0)
		return ret;
	snprintf(line, sizeof(line), "%s:!::\n", m->name);
	return provision_db_add(c, &gshadow, in_gshadow, line, 0640, c->root_uid, c->m->subid_base + shadow_gid);
}

static int provision_identity(struct provision_ctx *c)
{
	__do_provision_file struct provision_file hostname = { 0 }, hosts = { 0 };
	__do_free char *text = NULL;
	int ret;

	ret = provision_read(c, &hostname, "etc/hostname", PROVISION_SMALL_MAX);
	if (ret < 0)
		return ret;
	if (asprintf(&text, "%s\n", c->m->hostname) < 0)
		return -ENOMEM;
	ret = provision_update(c, &hostname, text, 0644, c->root_uid, c->root_gid);
	if (ret < 0)
		return ret;
	free(text);
	text = NULL;

	ret = provision_read(c, &hosts, "etc/hosts", PROVISION_SMALL_MAX);
	if (ret < 0)
		return ret;
	text = provision_hosts_text(&hosts, c->m->hostname);
	if (!text)
		return -ENOMEM;
	return provision_update(c, &hosts, text, 0644, c->root_uid, c->root_gid);
}

static int provision_sudo(struct provision_ctx *c)
{
	char rel[128], text[128];
	int ret;

	ret = provision_ensure_dir(c, "etc/sudoers.d", 0755, c->root_uid, c->root_gid, NULL);
	if (ret < 0)
		return ret;
	snprintf(rel, sizeof(rel), "etc/sudoers.d/gpubox-%s", c->m->name);
	snprintf(text, sizeof(text), "%s ALL=(ALL:ALL) NOPASSWD:ALL\n", c->m->name);
	return rootfs_write_file(c->rootfd, rel, text, strlen(text), 0440, c->root_uid, c->root_gid);
}

static int provision_home(struct provision_ctx *c)
{
	static const char *const skel[] = { ".bashrc", ".profile" };
	const char *keys = c->m->authorized_keys ? c->m->authorized_keys : "";
	char home[128], rel[192];
	bool created;
	int ret;

	ret = provision_ensure_dir(c, "home", 0755, c->root_uid, c->root_gid, NULL);
	if (ret < 0)
		return ret;
	snprintf(home, sizeof(home), "home/%s", c->m->name);
	ret = provision_ensure_dir(c, home, 0755, c->uid, c->gid, &created);
	if (ret < 0)
		return ret;

	for (size_t i = 0; created && i < ARRAY_SIZE(skel); i++) {
		__do_free char *data = NULL;
		char from[64];
		size_t len;

		snprintf(from, sizeof(from), "etc/skel/%s", skel[i]);
		ret = rootfs_read_file(c->rootfd, from, PROVISION_SMALL_MAX, &data, &len);
		if (ret == -ENOENT)
			continue;
		if (ret < 0) {
			log_warn("skipping /%s of the container: %s", from, strerror(-ret));
			continue;
		}
		snprintf(rel, sizeof(rel), "%s/%s", home, skel[i]);
		ret = rootfs_write_file(c->rootfd, rel, data, len, 0644, c->uid, c->gid);
		if (ret < 0)
			return ret;
	}

	/* sshd refuses keys under a directory that others can write. */
	snprintf(rel, sizeof(rel), "%s/.ssh", home);
	ret = rootfs_mkdir(c->rootfd, rel, 0700, c->uid, c->gid);
	if (ret < 0)
		return ret;
	snprintf(rel, sizeof(rel), "%s/.ssh/authorized_keys", home);
	return rootfs_write_file(c->rootfd, rel, keys, strlen(keys), 0600, c->uid, c->gid);
}

/* Whether every nameserver of a resolv.conf is systemd-resolved's stub. */
static bool provision_resolv_is_stub(const char *text)
{
	__do_free char *copy = strdup(text);
	char *save = NULL, *line;
	bool any = false;

	if (!copy)
		return false;
	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *p = strip(line);

		if (!str_has_prefix(p, "nameserver") || (p[10] != ' ' && p[10] != '\t'))
			continue;
		p = strip(p + 10);
		if (strcmp(p, "127.0.0.53") != 0)
			return false;
		any = true;
	}
	return any;
}

static int provision_resolv(struct provision_ctx *c)
{
	__do_free char *text = NULL;
	struct stat st;
	size_t len;
	int ret;

	ret = rootfs_stat(c->rootfd, "etc/resolv.conf", &st);
	if (ret == 0 && !S_ISREG(st.st_mode))
		ret = -EINVAL;
	if (ret < 0 && ret != -ENOENT) {
		/* A link (to systemd-resolved's file, say): the container's own business. */
		log_debug("leaving /etc/resolv.conf of the container as it is: %s", strerror(-ret));
		return 0;
	}

	ret = fsutil_read_file(PROVISION_HOST_RESOLV, PROVISION_SMALL_MAX, &text, &len);
	if (ret == 0 && provision_resolv_is_stub(text)) {
		/* 127.0.0.53 answers on the host only. */
		free(text);
		text = NULL;
		ret = fsutil_read_file(PROVISION_RESOLVED_RESOLV, PROVISION_SMALL_MAX, &text, &len);
	}
	if (ret < 0) {
		log_warn("not writing /etc/resolv.conf of the container: cannot read the host's: %s",
			 strerror(-ret));
		return 0;
	}
	return rootfs_write_file(c->rootfd, "etc/resolv.conf", text, len, 0644,
				 c->root_uid, c->root_gid);
}

int provision_container(const char *rootfs_path, const struct provision_member *m)
{
	__do_close int rootfd = -EBADF;
	struct provision_ctx c;
	int ret;

	if (!m->name || !provision_valid_name(m->name))
		return log_error_errno(-EINVAL, 0, "invalid member name \"%s\"", m->name ? m->name : "");
	if (!m->hostname || !provision_valid_hostname(m->hostname))
		return log_error_errno(-EINVAL, 0, "invalid host name \"%s\"", m->hostname ? m->hostname : "");
	if (m->uid == 0 || m->uid >= SUBID_COUNT || m->gid == 0 || m->gid >= SUBID_COUNT)
		return log_error_errno(-ERANGE, 0, "member %s: uid %u and gid %u must be within 1..%u",
				       m->name, m->uid, m->gid, SUBID_COUNT - 1);
	if (m->subid_base == 0 || m->subid_base > UINT32_MAX - SUBID_COUNT)
		return log_error_errno(-ERANGE, 0, "subordinate id base %u is out of range", m->subid_base);

	rootfd = rootfs_open(rootfs_path);
	if (rootfd < 0)
		return rootfd;
	c = (struct provision_ctx){
		.rootfd = rootfd,
		.m = m,
		.root_uid = m->subid_base,
		.root_gid = m->subid_base,
		.uid = m->subid_base + m->uid,
		.gid = m->subid_base + m->gid,
	};

	/* Accounts first: a clash stops everything before any write. */
	ret = provision_ensure_dir(&c, "etc", 0755, c.root_uid, c.root_gid, NULL);
	if (ret == 0)
		ret = provision_accounts(&c);
	if (ret == 0)
		ret = provision_identity(&c);
	if (ret == 0)
		ret = provision_sudo(&c);
	if (ret == 0)
		ret = provision_home(&c);
	if (ret == 0)
		ret = provision_resolv(&c);
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot provision %s's container at %s", m->name, rootfs_path);
	return 0;
}

/*
 * A key change while the container runs: only ~/.ssh/authorized_keys is
 * rewritten (atomically, confined like every other write here).  The
 * home must exist already; .ssh is made again if the member removed it.
 */
int provision_keys(const char *rootfs_path, const struct provision_member *m)
{
	__do_close int rootfd = -EBADF;
	const char *keys = m->authorized_keys ? m->authorized_keys : "";
	char rel[192];
	struct stat st;
	uid_t uid;
	gid_t gid;
	int ret;

	if (!m->name || !provision_valid_name(m->name))
		return log_error_errno(-EINVAL, 0, "invalid member name \"%s\"", m->name ? m->name : "");
	if (m->uid == 0 || m->uid >= SUBID_COUNT || m->gid == 0 || m->gid >= SUBID_COUNT ||
	    m->subid_base == 0 || m->subid_base > UINT32_MAX - SUBID_COUNT)
		return log_error_errno(-ERANGE, 0, "member %s: ids out of range", m->name);
	uid = m->subid_base + m->uid;
	gid = m->subid_base + m->gid;
	rootfd = rootfs_open(rootfs_path);
	if (rootfd < 0)
		return rootfd;
	snprintf(rel, sizeof(rel), "home/%s", m->name);
	ret = rootfs_stat(rootfd, rel, &st);
	if (ret == 0 && !S_ISDIR(st.st_mode))
		ret = -ENOTDIR;
	if (ret < 0)
		return ret == -ENOENT ? ret : log_error_errno(ret, -ret, "cannot use /%s in %s's container", rel, m->name);
	snprintf(rel, sizeof(rel), "home/%s/.ssh", m->name);
	ret = rootfs_stat(rootfd, rel, &st);
	if (ret == -ENOENT)
		ret = rootfs_mkdir(rootfd, rel, 0700, uid, gid);
	else if (ret == 0 && !S_ISDIR(st.st_mode))
		ret = -ENOTDIR;
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot use /%s in %s's container", rel, m->name);
	snprintf(rel, sizeof(rel), "home/%s/.ssh/authorized_keys", m->name);
	ret = rootfs_write_file(rootfd, rel, keys, strlen(keys), 0600, uid, gid);
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot write /%s in %s's container", rel, m->name);
	return 0;
}
