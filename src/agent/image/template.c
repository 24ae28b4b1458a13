/* SPDX-License-Identifier: MIT */
/*
 * Templates: versioned, read-only Debian root file systems shared by every
 * member's container (the lower layer of their overlay).
 *
 *	<state_dir>/templates/NAME@VERSION/rootfs/         unshifted, 0..65535
 *	<state_dir>/templates/NAME@VERSION/manifest.json
 *
 * A template never changes once it has its name: a new recipe (release,
 * mirror, packages, arch, post-processing) makes NAME@VERSION+1, built in
 * a ".build-" directory and renamed into place only when complete, so an
 * interrupted build never leaves a half template under a real name.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "image/aptsources.h"
#include "image/image.h"
#include "net/net.h"
#include "progress.h"
#include "array.h"
#include "cleanup.h"
#include "fsutil.h"
#include "log.h"
#include "strutil.h"
#include "spawn.h"
#include "validate.h"
#include "banned.h"

#define TEMPLATE_LOCALE "LANG=C.UTF-8\n"   /* /etc/default/locale */
#define TEMPLATE_MANIFEST_MAX (1024 * 1024)
#define TEMPLATE_BUILD_PREFIX ".build-"
#define TEMPLATE_BUILD_TIMEOUT (2 * 3600)
#define TEMPLATE_PACKAGE_MAX 128

static const char template_keygen_unit[] =
	"# Installed by gpubox: the template carries no SSH host keys, so that\n"
	"# every container makes its own at its first boot.\n"
	"[Unit]\n"
	"Description=Generate this container's SSH host keys\n"
	"ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key\n"
	"Before=ssh.service\n"
	"\n"
	"[Service]\n"
	"Type=oneshot\n"
	"ExecStart=/usr/bin/ssh-keygen -A\n"
	"RemainAfterExit=yes\n"
	"\n"
	"[Install]\n"
	"WantedBy=multi-user.target\n";

#define TEMPLATE_KEYGEN_NAME "gpubox-ssh-keygen.service"

/* Debian's ssh.service runs "sshd -t" before "sshd -D": a second sshd
 * that reads the configuration and the host keys, on the way to the
 * member's first login at every boot.  sshd -D refuses a bad
 * configuration itself (exit 255, which the unit does not restart). */
static const char template_ssh_dropin[] =
	"# Installed by gpubox: sshd checks its configuration when it starts;\n"
	"# the separate check before it only made every boot slower.\n"
	"[Service]\n"
	"ExecStartPre=\n";

#define TEMPLATE_SSH_DROPIN_DIR "ssh.service.d"
#define TEMPLATE_SSH_DROPIN_NAME "gpubox.conf"

/* Units that always fail in an unprivileged container: the kernel refuses
 * these mounts in a user namespace ... */
static const char *const template_masked_units[] = {
	"sys-kernel-debug.mount",
	"sys-kernel-tracing.mount",
	"sys-kernel-config.mount",
	"sys-fs-fuse-connections.mount",
	"dev-hugepages.mount",
	"systemd-journald-audit.socket",
	/* ... and units that wait for nothing a container has, some on the
	 * way to sshd (bench/README.md, "Where a start's time goes").  The
	 * template's users exist and a package's postinst makes its own
	 * (systemd-sysusers); LXC makes /dev (tmpfiles-setup-dev) and the
	 * root mount, and /etc/fstab is empty (remount-fs); a container loads
	 * no kernel module and has no block device of its own (e2scrub,
	 * fstrim); members come by SSH, never to the console. */
	"systemd-sysusers.service",
	"systemd-tmpfiles-setup-dev.service",
	"systemd-remount-fs.service",
	"systemd-modules-load.service",
	"modprobe@.service",
	"e2scrub_reap.service",
	"e2scrub_all.timer",
	"fstrim.timer",
	"console-getty.service",
};

static int template_dir_path(const struct gpubox_config *cfg, char *buf, size_t len)
{
	int ret = snprintf(buf, len, "%s/templates", cfg->state_dir);

	if (ret < 0 || (size_t)ret >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* ---- the recipe ---------------------------------------------------------- */

static const char *template_host_arch(void)
{
#if defined(__x86_64__)
	return "amd64";
#elif defined(__aarch64__)
	return "arm64";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return "ppc64el";
#elif defined(__riscv) && __riscv_xlen == 64
	return "riscv64";
#elif defined(__s390x__)
	return "s390x";
#elif defined(__i386__)
	return "i386";
#else
	return NULL;
#endif
}

/* Lower-case letters and digits, and after the first character also the
 * bytes of punct; min to max characters. */
static bool template_token_is_valid(const char *s, size_t min, size_t max, const char *punct)
{
	size_t len = strlen(s);

	if (len < min || len > max)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');

		if (!alnum && (i == 0 || !strchr(punct, c)))
			return false;
	}
	return true;
}

/* Debian policy: lower-case letters, digits, '+', '-', '.'; at least two
 * characters, starting with a letter or digit. */
static bool template_package_is_valid(const char *name)
{
	return template_token_is_valid(name, 2, TEMPLATE_PACKAGE_MAX, "+-.");
}

/* A suite or codename: "bookworm", "stable", "noble"; one argv word. */
static bool template_word_is_valid(const char *word)
{
	return template_token_is_valid(word, 1, 64, "-._");
}

static int template_compare_strings(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Split, validate, sort and deduplicate: a NULL-terminated vector. */
static int template_package_list(const char *packages, char ***out, size_t *count,
				 char *err, size_t errlen)
{
	__do_free char *copy = strdup(packages ? packages : "");
	__do_strv char **list = NULL;
	char *saveptr = NULL;
	size_t n = 0, cap = 0, kept = 0;

	if (!copy)
		return -ENOMEM;
	for (char *w = strtok_r(copy, " \t\n,", &saveptr); w; w = strtok_r(NULL, " \t\n,", &saveptr)) {
		if (!template_package_is_valid(w)) {
			char shown[48];

			snprintf(shown, sizeof(shown), "%.40s", w);
			set_error(err, errlen,
					 "\"%s\" in template_packages is not a Debian package name", shown);
			return -EINVAL;
		}
		if (strv_append(&list, &n, &cap, w) < 0)
			return -ENOMEM;
	}
	if (!list) {
		list = calloc(1, sizeof(*list));
		if (!list)
			return -ENOMEM;
	}
	qsort(list, n, sizeof(*list), template_compare_strings);
	for (size_t i = 0; i < n; i++) {
		if (kept > 0 && strcmp(list[kept - 1], list[i]) == 0) {
			free(list[i]);
			continue;
		}
		list[kept++] = list[i];
	}
	list[kept] = NULL;
	*count = kept;
	*out = move_ptr(list);
	return 0;
}

static char *template_join(char *const *list, char sep)
{
	size_t len = 1;
	char *joined, *p;

	for (size_t i = 0; list[i]; i++)
		len += strlen(list[i]) + 1;
	joined = malloc(len);
	if (!joined)
		return NULL;
	p = joined;
	for (size_t i = 0; list[i]; i++) {
		size_t l = strlen(list[i]);

		if (i > 0)
			*p++ = sep;
		memcpy(p, list[i], l);
		p += l;
	}
	*p = '\0';
	return joined;
}

int template_recipe(const char *release, const char *mirror, const char *packages,
		    const char *arch, char **recipe, char hash[TEMPLATE_HASH_HEX],
		    char *err, size_t errlen)
{
	__do_strv char **list = NULL;
	__do_free char *joined = NULL, *text = NULL;
	unsigned char digest[crypto_hash_sha256_BYTES];
	size_t count = 0;
	int ret;

	if (!release || !template_word_is_valid(release)) {
		set_error(err, errlen,
				 "the release \"%.40s\" is not a Debian suite name such as bookworm",
				 release ? release : "");
		return -EINVAL;
	}
	if (!mirror || !aptsources_uri_is_valid(mirror)) {
		set_error(err, errlen,
				 "the mirror \"%.80s\" is not an http://, https:// or file:/ URI; fix template_mirror in gpubox.conf",
				 mirror ? mirror : "");
		return -EINVAL;
	}
	if (!arch)
		arch = template_host_arch();
	if (!arch)
		arch = "host";
	if (!template_word_is_valid(arch)) {
		set_error(err, errlen, "the architecture \"%.40s\" is not valid", arch);
		return -EINVAL;
	}
	ret = template_package_list(packages, &list, &count, err, errlen);
	if (ret < 0)
		return ret;
	joined = template_join(list, ',');
	if (!joined)
		return -ENOMEM;
	if (asprintf(&text, "gpubox template recipe\nsetup %d\nrelease %s\nmirror %s\narch %s\npackages %s\n",
		     TEMPLATE_SETUP_VERSION, release, mirror, arch, joined) < 0) {
		text = NULL;
		return -ENOMEM;
	}
	if (sodium_init() < 0)
		return -EIO;
	crypto_hash_sha256(digest, (const unsigned char *)text, strlen(text));
	sodium_bin2hex(hash, TEMPLATE_HASH_HEX, digest, sizeof(digest));
	if (recipe)
		*recipe = move_ptr(text);
	return 0;
}

/* ---- reading templates ---------------------------------------------------- */

struct template_entry {
	char name[TEMPLATE_NAME_MAX + 1];
	uint32_t version;
};

static int template_entry_compare(const void *a, const void *b)
{
	const struct template_entry *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return x->version < y->version ? -1 : x->version > y->version;
}

/* Parse a directory entry's name as a canonical NAME@VERSION. */
static bool template_entry_parse(const char *d_name, struct template_entry *e)
{
	char err[256], canonical[128];
	int ret;

	if (validate_template_ref(d_name, e->name, sizeof(e->name), &e->version,
				  err, sizeof(err)) < 0)
		return false;
	/* "name@01" would be a second name for version 1. */
	ret = snprintf(canonical, sizeof(canonical), "%s@%u", e->name, e->version);
	return ret > 0 && (size_t)ret < sizeof(canonical) && strcmp(canonical, d_name) == 0;
}

/* Every NAME@VERSION directory (of only_name if not NULL), sorted. */
static int template_scan(const char *tdir, const char *only_name, struct template_entry **out,
			 size_t *count)
{
	__do_closedir DIR *dir = opendir(tdir);
	__do_free struct template_entry *list = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;

	*count = 0;
	*out = NULL;
	if (!dir)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(dir))) {
		struct template_entry e;
		struct stat st;

		if (!template_entry_parse(de->d_name, &e))
			continue;
		if (only_name && strcmp(e.name, only_name) != 0)
			continue;
		if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(st.st_mode))
			continue;
		if (ARRAY_RESERVE(list, cap, n) < 0)
			return -ENOMEM;
		list[n++] = e;
	}
	if (n)
		qsort(list, n, sizeof(*list), template_entry_compare);
	*out = move_ptr(list);
	*count = n;
	return 0;
}

static bool template_is_hex_hash(const char *s)
{
	if (strlen(s) != TEMPLATE_HASH_HEX - 1)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

/* Read and check NAME@VERSION's manifest; -ENOENT if the template is not
 * there, -EBADMSG if its manifest does not describe it. */
static int template_read(const char *tdir, const char *name, uint32_t version,
			 struct template_info *out, json_t **manifest_out)
{
	__do_free char *text = NULL;
	__do_json json_t *manifest = NULL;
	char dir[PATH_MAX], path[PATH_MAX];
	json_t *jname, *jversion, *jhash, *jcreated, *jsize;
	struct template_info info = { 0 };
	json_error_t jerr;
	struct stat st;
	int ret;

	ret = snprintf(dir, sizeof(dir), "%s/%s@%u", tdir, name, version);
	if (ret < 0 || (size_t)ret >= sizeof(dir))
		return -ENAMETOOLONG;
	ret = snprintf(path, sizeof(path), "%s/manifest.json", dir);
	if (ret < 0 || (size_t)ret >= sizeof(path))
		return -ENAMETOOLONG;
	if (lstat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOENT;
	ret = fsutil_read_file(path, TEMPLATE_MANIFEST_MAX, &text, NULL);
	if (ret == -ENOENT)
		return log_warn_errno(-EBADMSG, 0, "template %s@%u has no manifest.json", name, version);
	if (ret < 0)
		return log_warn_errno(ret, -ret, "cannot read %s", path);
	manifest = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	if (!manifest || !json_is_object(manifest))
		return log_warn_errno(-EBADMSG, 0, "%s is not a JSON object: %s", path, jerr.text);

	jname = json_object_get(manifest, "name");
	jversion = json_object_get(manifest, "version");
	jhash = json_object_get(manifest, "recipe_hash");
	jcreated = json_object_get(manifest, "created");
	jsize = json_object_get(manifest, "size");
	if (!json_is_string(jname) || strcmp(json_string_value(jname), name) != 0 ||
	    !json_is_integer(jversion) || json_integer_value(jversion) != (json_int_t)version ||
	    !json_is_string(jhash) || !template_is_hex_hash(json_string_value(jhash)) ||
	    !json_is_integer(jcreated) || !json_is_integer(jsize) || json_integer_value(jsize) < 0)
		return log_warn_errno(-EBADMSG, 0, "%s does not describe template %s@%u", path,
				      name, version);

	ret = snprintf(info.rootfs, sizeof(info.rootfs), "%s/rootfs", dir);
	if (ret < 0 || (size_t)ret >= sizeof(info.rootfs))
		return -ENAMETOOLONG;
	if (lstat(info.rootfs, &st) < 0 || !S_ISDIR(st.st_mode))
		return log_warn_errno(-EBADMSG, 0, "template %s@%u has no rootfs directory", name,
				      version);
	snprintf(info.name, sizeof(info.name), "%s", name);
	info.version = version;
	snprintf(info.ref, sizeof(info.ref), "%s@%u", name, version);
	snprintf(info.recipe_hash, sizeof(info.recipe_hash), "%s", json_string_value(jhash));
	info.created = (long long)json_integer_value(jcreated);
	info.size = (unsigned long long)json_integer_value(jsize);
	if (out)
		*out = info;
	if (manifest_out)
		*manifest_out = move_ptr(manifest);
	return 0;
}

static int template_newest_in(const char *tdir, const char *name, struct template_info *out)
{
	__do_free struct template_entry *list = NULL;
	size_t count = 0;
	int ret;

	ret = template_scan(tdir, name, &list, &count);
	if (ret < 0)
		return ret;
	/* A broken newest version is skipped: the one before it still works. */
	for (size_t i = count; i-- > 0;)
		if (template_read(tdir, name, list[i].version, out, NULL) == 0)
			return 0;
	return -ENOENT;
}

int template_newest(const struct gpubox_config *cfg, const char *name, struct template_info *out)
{
	char tdir[PATH_MAX], err[256];
	int ret;

	if (!name)
		name = cfg->template_name;
	if (validate_template_name(name, err, sizeof(err)) < 0)
		return -EINVAL;
	ret = template_dir_path(cfg, tdir, sizeof(tdir));
	if (ret < 0)
		return ret;
	return template_newest_in(tdir, name, out);
}

int template_get(const struct gpubox_config *cfg, const char *ref, struct template_info *out)
{
	struct template_entry e;
	char tdir[PATH_MAX];
	int ret;

	if (!ref || !template_entry_parse(ref, &e))
		return -EINVAL;
	ret = template_dir_path(cfg, tdir, sizeof(tdir));
	if (ret < 0)
		return ret;
	ret = template_read(tdir, e.name, e.version, out, NULL);
	if (ret == -ENOTDIR)
		return -ENOENT;
	return ret;
}

int template_list(const struct gpubox_config *cfg, json_t **out)
{
	__do_free struct template_entry *list = NULL;
	__do_json json_t *array = json_array();
	char tdir[PATH_MAX];
	size_t count = 0;
	int ret;

	if (!array)
		return -ENOMEM;
	ret = template_dir_path(cfg, tdir, sizeof(tdir));
	if (ret < 0)
		return ret;
	ret = template_scan(tdir, NULL, &list, &count);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < count; i++) {
		__do_json json_t *manifest = NULL;
		struct template_info info;

		if (template_read(tdir, list[i].name, list[i].version, &info, &manifest) < 0)
			continue;
		json_object_del(manifest, "recipe");
		if (json_object_set_new(manifest, "ref", json_string(info.ref)) < 0 ||
		    json_array_append(array, manifest) < 0)
			return -ENOMEM;
	}
	*out = move_ptr(array);
	return 0;
}

/* ---- post-processing of a fresh tree -------------------------------------- */

/*
 * Open (and with create, make) the directory rel below rootfd one
 * component at a time, refusing a symbolic link anywhere on the way.
 */
static int template_open_dir(int rootfd, const char *rel, bool create)
{
	__do_free char *copy = strdup(rel);
	__do_close int fd = -EBADF;
	char *saveptr = NULL;

	if (!copy)
		return -ENOMEM;
	fd = openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (char *c = strtok_r(copy, "/", &saveptr); c; c = strtok_r(NULL, "/", &saveptr)) {
		int next;

		if (strcmp(c, "..") == 0 || strcmp(c, ".") == 0)
			return -EINVAL;
		if (create && mkdirat(fd, c, 0755) < 0 && errno != EEXIST)
			return -errno;
		next = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0)
			return -errno;
		close(fd);
		fd = next;
	}
	return move_fd(fd);
}

/* Replace name in dirfd by a new regular file of data, with mode.  Made
 * 0600 and given its mode once whole, so no one reads it half written. */
static int template_write_at(int dirfd, const char *name, const void *data, size_t len,
			     mode_t mode)
{
	__do_close int fd = -EBADF;
	int ret;

	if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
		return -errno;
	fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	ret = fsutil_write_all(fd, data, len);
	if (ret < 0)
		return ret;
	if (fchmod(fd, mode) < 0)
		return -errno;
	return 0;
}

static int template_symlink_at(int dirfd, const char *name, const char *target)
{
	if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
		return -errno;
	if (symlinkat(target, dirfd, name) < 0)
		return -errno;
	return 0;
}

static bool template_is_host_key(const char *name)
{
	return strncmp(name, "ssh_host_", strlen("ssh_host_")) == 0;
}

static bool template_is_deb(const char *name)
{
	size_t len = strlen(name);

	return len > 4 && strcmp(name + len - 4, ".deb") == 0;
}

static bool template_is_not_partial(const char *name)
{
	return strcmp(name, "partial") != 0;
}

/* Remove the entries of rel (below rootfd) that match; a missing rel is fine. */
static int template_remove_matching(int rootfd, const char *rel, bool (*match)(const char *))
{
	__do_closedir DIR *dir = NULL;
	struct dirent *de;
	int fd, ret = 0;

	fd = template_open_dir(rootfd, rel, false);
	if (fd == -ENOENT)
		return 0;
	if (fd < 0)
		return fd;
	dir = fsutil_fdopendir(fd);
	if (!dir)
		return -errno;
	while ((de = readdir(dir))) {
		int r;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    !match(de->d_name))
			continue;
		r = fsutil_remove_tree_at(dirfd(dir), de->d_name);
		if (r < 0 && ret == 0)
			ret = r;
	}
	return ret;
}

static int template_finish_ssh(int sysfd)
{
	__do_close int dropfd = template_open_dir(sysfd, TEMPLATE_SSH_DROPIN_DIR, true);

	if (dropfd < 0)
		return dropfd;
	return template_write_at(dropfd, TEMPLATE_SSH_DROPIN_NAME, template_ssh_dropin,
				 strlen(template_ssh_dropin), 0644);
}

static int template_finish_systemd(int rootfd)
{
	__do_close int sysfd = -EBADF, wantsfd = -EBADF;
	int ret;

	sysfd = template_open_dir(rootfd, "etc/systemd/system", true);
	if (sysfd < 0)
		return sysfd;
	ret = template_write_at(sysfd, TEMPLATE_KEYGEN_NAME, template_keygen_unit,
				strlen(template_keygen_unit), 0644);
	if (ret < 0)
		return ret;
	wantsfd = template_open_dir(sysfd, "multi-user.target.wants", true);
	if (wantsfd < 0)
		return wantsfd;
	ret = template_symlink_at(wantsfd, TEMPLATE_KEYGEN_NAME,
				  "/etc/systemd/system/" TEMPLATE_KEYGEN_NAME);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < ARRAY_SIZE(template_masked_units); i++) {
		ret = template_symlink_at(sysfd, template_masked_units[i], "/dev/null");
		if (ret < 0)
			return ret;
	}
	return template_finish_ssh(sysfd);
}

int template_finish_rootfs(int rootfd, const char *ref)
{
	__do_close int etcfd = -EBADF, defaultfd = -EBADF;
	__do_free char *marker = NULL;
	int ret;

	/* Every container makes its own host keys at its first boot. */
	ret = template_remove_matching(rootfd, "etc/ssh", template_is_host_key);
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot remove the template's SSH host keys");
	ret = template_finish_systemd(rootfd);
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot install the template's systemd units");
	ret = template_remove_matching(rootfd, "var/cache/apt/archives", template_is_deb);
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot empty the template's apt archive cache");
	ret = template_remove_matching(rootfd, "var/lib/apt/lists", template_is_not_partial);
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot empty the template's apt lists");

	etcfd = template_open_dir(rootfd, "etc", true);
	if (etcfd < 0)
		return log_error_errno(etcfd, -etcfd, "cannot open the template's /etc");
	/* Each container gets its own name from provisioning. */
	if (unlinkat(etcfd, "hostname", 0) < 0 && errno != ENOENT)
		return log_error_errno(-errno, errno, "cannot remove the template's /etc/hostname");
	defaultfd = template_open_dir(etcfd, "default", true);
	if (defaultfd < 0)
		return log_error_errno(defaultfd, -defaultfd, "cannot open the template's /etc/default");
	ret = template_write_at(defaultfd, "locale", TEMPLATE_LOCALE, sizeof(TEMPLATE_LOCALE) - 1, 0644);
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot write the template's /etc/default/locale");
	if (asprintf(&marker, "%s\n", ref) < 0) {
		marker = NULL;
		return -ENOMEM;
	}
	ret = template_write_at(etcfd, "gpubox-template", marker, strlen(marker), 0644);
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot write the template's /etc/gpubox-template");
	return 0;
}

/* ---- measuring ------------------------------------------------------------- */

static int template_compare_inode(const void *a, const void *b)
{
	ino_t x = *(const ino_t *)a, y = *(const ino_t *)b;

	return x < y ? -1 : x > y;
}

static void template_free_node(void *p)
{
	free(p);
}

/* Disk usage like du(1): blocks, hard links once, one file system. */
static int template_measure_dir(int dfd, dev_t dev, void **seen, unsigned long long *total,
				unsigned depth)
{
	__do_closedir DIR *dir = fsutil_fdopendir(dfd);
	struct dirent *de;

	if (!dir)
		return -errno;
	if (depth > 256)
		return -ELOOP;
	while ((de = readdir(dir))) {
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
		if (st.st_dev != dev)
			continue;
		if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
			ino_t *key = malloc(sizeof(*key));
			void *node;

			if (!key)
				return -ENOMEM;
			*key = st.st_ino;
			node = tsearch(key, seen, template_compare_inode);
			if (!node) {
				free(key);
				return -ENOMEM;
			}
			if (*(ino_t **)node != key) {
				free(key);
				continue;
			}
		}
		*total += (unsigned long long)st.st_blocks * 512;
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd(dir), de->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			int ret;

			if (sub < 0)
				return -errno;
			ret = template_measure_dir(sub, dev, seen, total, depth + 1);
			if (ret < 0)
				return ret;
		}
	}
	return 0;
}

static int template_measure(int rootfd, unsigned long long *total)
{
	void *seen = NULL;
	struct stat st;
	int fd, ret;

	*total = 0;
	if (fstat(rootfd, &st) < 0)
		return -errno;
	*total = (unsigned long long)st.st_blocks * 512;
	fd = openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = template_measure_dir(fd, st.st_dev, &seen, total, 0);
	tdestroy(seen, template_free_node);
	return ret;
}

/* ---- building -------------------------------------------------------------- */

/* A dead build's directory: debootstrap may have left proc and sys mounted. */
static void template_remove_build(int tdfd, const char *tdir, const char *name)
{
	static const char *const mounts[] = { "rootfs/proc", "rootfs/sys", "rootfs/dev/pts",
					      "rootfs/dev" };
	char path[PATH_MAX];
	int ret;

	for (size_t i = 0; i < ARRAY_SIZE(mounts); i++) {
		ret = snprintf(path, sizeof(path), "%s/%s/%s", tdir, name, mounts[i]);
		if (ret > 0 && (size_t)ret < sizeof(path))
			(void)umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW);
	}
	ret = fsutil_remove_tree_at(tdfd, name);
	if (ret < 0)
		log_warn_errno(ret, -ret, "cannot remove the unfinished template build %s/%s",
			       tdir, name);
}

static void template_remove_stale(int tdfd, const char *tdir)
{
	__do_closedir DIR *dir = NULL;
	struct dirent *de;
	int fd;

	fd = openat(tdfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	dir = fsutil_fdopendir(fd);
	if (!dir)
		return;
	while ((de = readdir(dir))) {
		if (strncmp(de->d_name, TEMPLATE_BUILD_PREFIX, strlen(TEMPLATE_BUILD_PREFIX)) != 0)
			continue;
		log_info("removing the unfinished template build %s/%s", tdir, de->d_name);
		template_remove_build(tdfd, tdir, de->d_name);
	}
}

static int template_lock(int tdfd, struct progress *progress)
{
	__do_close int fd = -EBADF;

	fd = openat(tdfd, ".lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) == 0)
		return move_fd(fd);
	if (errno != EWOULDBLOCK)
		return -errno;
	progress_say(progress, "Waiting for another template build to finish");
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return move_fd(fd);
}

struct template_line_ctx {
	struct progress *progress;
	const char *ref;
};

static void template_forward_line(const char *line, void *data)
{
	struct template_line_ctx *ctx = data;

	progress_say(ctx->progress, "Building %s: %s", ctx->ref, line);
}

/* ---- site files (template_setup) ------------------------------------------- */

#define TEMPLATE_SETUP_FILE_MAX (16 * 1024 * 1024)
#define TEMPLATE_SETUP_DEPTH 32

/* The entry names of a directory, sorted: the recipe's hash must not
 * depend on the order readdir() happens to give. */
static int template_sorted_names(int dfd, char ***out, size_t *count)
{
	__do_closedir DIR *dir = NULL;
	__do_strv char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	dir = fsutil_fdopendir(fd);
	if (!dir)
		return -errno;
	while ((de = readdir(dir))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (strv_append(&names, &n, &cap, de->d_name) < 0)
			return -ENOMEM;
	}
	if (!names && !(names = calloc(1, sizeof(*names))))
		return -ENOMEM;
	qsort(names, n, sizeof(*names), template_compare_strings);
	*out = move_ptr(names);
	*count = n;
	return 0;
}

/* The directory of the template's tree that site directory rel goes to. */
static int template_setup_open_dest(int rootfd, const char *rel, char *err, size_t errlen)
{
	int fd;

	/* template_open_dir() returns -errno (-EPERM is -1), openat() -1 and errno. */
	if (*rel)
		fd = template_open_dir(rootfd, rel, true);
	else if ((fd = openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		fd = -errno;
	if (fd < 0)
		set_error(err, errlen, "template_setup: cannot create /%s in the template: %s",
				 rel, strerror(-fd));
	return fd;
}

/* Replace name in dstfd by a new file of data, with mode. */
static int template_setup_write(int dstfd, const char *name, const char *path, const char *data,
				size_t len, mode_t mode, char *err, size_t errlen)
{
	int ret = template_write_at(dstfd, name, data, len, mode);

	if (ret < 0)
		set_error(err, errlen, "template_setup: cannot replace /%s: %s", path, strerror(-ret));
	return ret;
}

/* One site file: its line and content into sha, copied to dstfd when >= 0. */
static int template_setup_file(int srcfd, int dstfd, const char *name, const char *path,
			       const struct stat *st, const char *line,
			       crypto_hash_sha256_state *sha, char *err, size_t errlen)
{
	__do_close int in = openat(srcfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	__do_free char *data = NULL;
	size_t len = 0;
	ssize_t r;

	if (in < 0)
		return -errno;
	if (st->st_size > TEMPLATE_SETUP_FILE_MAX) {
		set_error(err, errlen, "template_setup: %s is larger than 16 MiB", path);
		return -EFBIG;
	}
	data = malloc((size_t)st->st_size + 1);
	if (!data)
		return -ENOMEM;
	while (len < (size_t)st->st_size &&
	       (r = read(in, data + len, (size_t)st->st_size - len)) > 0)
		len += (size_t)r;
	crypto_hash_sha256_update(sha, (const unsigned char *)line, strlen(line));
	crypto_hash_sha256_update(sha, (const unsigned char *)data, len);
	if (dstfd < 0)
		return 0;
	return template_setup_write(dstfd, name, path, data, len, st->st_mode & 0777, err, errlen);
}

/*
 * Walk the site directory src (files and directories only): hash every
 * path, mode and content into sha, and with rootfd >= 0 copy each into
 * the template's tree (owned by its root, never through a link).
 */
static int template_setup_walk(int srcfd, const char *rel, int rootfd,
			       crypto_hash_sha256_state *sha, unsigned depth, char *err, size_t errlen)
{
	__do_strv char **names = NULL;
	__do_close int dstfd = -EBADF;
	size_t n = 0;
	int ret;

	if (depth > TEMPLATE_SETUP_DEPTH)
		return -ELOOP;
	ret = template_sorted_names(srcfd, &names, &n);
	if (ret < 0)
		return ret;
	if (rootfd >= 0) {
		dstfd = template_setup_open_dest(rootfd, rel, err, errlen);
		if (dstfd < 0)
			return dstfd;
	}
	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX], line[PATH_MAX + 64];
		struct stat st;

		if (snprintf(path, sizeof(path), "%s%s%s", rel, *rel ? "/" : "", names[i]) >= (int)sizeof(path))
			return -ENAMETOOLONG;
		if (fstatat(srcfd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
		snprintf(line, sizeof(line), "%c %o %s\n", S_ISDIR(st.st_mode) ? 'd' : 'f',
			 (unsigned)(st.st_mode & 0777), path);
		if (S_ISDIR(st.st_mode)) {
			__do_close int sub = openat(srcfd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			if (sub < 0)
				return -errno;
			crypto_hash_sha256_update(sha, (const unsigned char *)line, strlen(line));
			ret = template_setup_walk(sub, path, rootfd, sha, depth + 1, err, errlen);
		} else if (S_ISREG(st.st_mode)) {
			ret = template_setup_file(srcfd, dstfd, names[i], path, &st, line, sha, err, errlen);
		} else {
			set_error(err, errlen,
					 "template_setup: %s is neither a file nor a directory (links are not copied)",
					 path);
			return -EINVAL;
		}
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* The hash of the site directory's content, in hex; copied into rootfd when >= 0. */
static int template_setup_apply(const char *dir, int rootfd, char hash[TEMPLATE_HASH_HEX],
				char *err, size_t errlen)
{
	__do_close int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	unsigned char digest[crypto_hash_sha256_BYTES];
	crypto_hash_sha256_state sha;
	int ret;

	if (fd < 0) {
		ret = -errno;
		set_error(err, errlen, "template_setup: cannot open the directory %s: %s", dir,
				 strerror(-ret));
		return ret;
	}
	if (sodium_init() < 0)
		return -EIO;
	crypto_hash_sha256_init(&sha);
	ret = template_setup_walk(fd, "", rootfd, &sha, 0, err, errlen);
	if (ret < 0) {
		set_error(err, errlen, "template_setup: cannot read %s: %s", dir, strerror(-ret));
		return ret;
	}
	crypto_hash_sha256_final(&sha, digest);
	sodium_bin2hex(hash, TEMPLATE_HASH_HEX, digest, sizeof(digest));
	return 0;
}

struct template_job {
	const char *name;
	uint32_t version;
	const char *ref;
	const char *release;
	const char *mirror;
	const char *arch;
	char **packages;
	const char *recipe;
	const char *hash;
	const char *setup_dir;   /* NULL: no site files */
	const char *http_proxy;  /* "http_proxy=URL" of the package cache; NULL: none */
};

static int template_debootstrap(const struct template_job *job, const char *rootfs,
				struct progress *progress, char *err, size_t errlen)
{
	__do_free char *include = NULL, *include_opt = NULL, *arch_opt = NULL;
	const char *argv[8];
	size_t argc = 0;
	struct template_line_ctx ctx = { .progress = progress, .ref = job->ref };
	struct spawn_options opts = {
		.on_line = template_forward_line,
		.data = &ctx,
		.timeout = TEMPLATE_BUILD_TIMEOUT,
		.extra_env = job->http_proxy,
	};
	int status;

	argv[argc++] = "debootstrap";
	argv[argc++] = "--variant=minbase";
	if (strcmp(job->arch, "host") != 0) {
		if (asprintf(&arch_opt, "--arch=%s", job->arch) < 0) {
			arch_opt = NULL;
			return -ENOMEM;
		}
		argv[argc++] = arch_opt;
	}
	if (job->packages[0]) {
		include = template_join(job->packages, ',');
		if (!include || asprintf(&include_opt, "--include=%s", include) < 0) {
			include_opt = NULL;
			return -ENOMEM;
		}
		argv[argc++] = include_opt;
	}
	argv[argc++] = job->release;
	argv[argc++] = rootfs;
	argv[argc++] = job->mirror;
	argv[argc] = NULL;

	status = spawn_run(argv, &opts);
	if (status == 0)
		return 0;
	if (status == -ETIMEDOUT) {
		set_error(err, errlen, "debootstrap did not finish within %d hours and was stopped",
				 TEMPLATE_BUILD_TIMEOUT / 3600);
		return -ETIMEDOUT;
	}
	if (status == -ENOENT || status == 127) {
		set_error(err, errlen, "debootstrap could not be run; install the debootstrap package");
		return -ENOENT;
	}
	if (status == -ECHILD) {
		set_error(err, errlen, "debootstrap was killed by a signal; see the lines above");
		return -EIO;
	}
	if (status < 0) {
		set_error(err, errlen, "debootstrap could not be started: %s", strerror(-status));
		return status;
	}
	set_error(err, errlen, "debootstrap failed (exit %d); see the lines above", status);
	return -EIO;
}

static char *template_manifest_text(const struct template_job *job, unsigned long long size)
{
	__do_json json_t *manifest = NULL, *packages = json_array();

	if (!packages)
		return NULL;
	for (size_t i = 0; job->packages[i]; i++)
		if (json_array_append_new(packages, json_string(job->packages[i])) < 0)
			return NULL;
	manifest = json_pack("{s:s, s:I, s:s, s:s, s:s, s:O, s:s, s:s, s:I, s:I, s:i}",
			     "name", job->name,
			     "version", (json_int_t)job->version,
			     "release", job->release,
			     "mirror", job->mirror,
			     "arch", job->arch,
			     "packages", packages,
			     "recipe", job->recipe,
			     "recipe_hash", job->hash,
			     "created", (json_int_t)time(NULL),
			     "size", (json_int_t)size,
			     "setup_version", TEMPLATE_SETUP_VERSION);
	if (!manifest)
		return NULL;
	return json_dumps(manifest, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
}

/* Everything in the build directory; the caller removes it on failure. */
static int template_build_tree(const struct template_job *job, int tdfd, const char *tdir,
			       const char *build_name, struct progress *progress,
			       char *err, size_t errlen)
{
	__do_close int buildfd = -EBADF, rootfd = -EBADF;
	__do_free char *manifest = NULL;
	char build_path[PATH_MAX], rootfs[PATH_MAX], path[PATH_MAX];
	unsigned long long size = 0;
	int ret;

	if (snprintf(build_path, sizeof(build_path), "%s/%s", tdir, build_name) >= (int)sizeof(build_path) ||
	    snprintf(rootfs, sizeof(rootfs), "%s/rootfs", build_path) >= (int)sizeof(rootfs) ||
	    snprintf(path, sizeof(path), "%s/manifest.json", build_path) >= (int)sizeof(path))
		return -ENAMETOOLONG;

	progress_say(progress, "Building template %s: %s %s from %s%s%s", job->ref, job->release,
		     job->arch, job->mirror, job->http_proxy ? " through the package cache at " : "",
		     job->http_proxy ? job->http_proxy + strlen("http_proxy=") : "");
	ret = template_debootstrap(job, rootfs, progress, err, errlen);
	if (ret < 0)
		return ret;

	progress_say(progress, "Building template %s: preparing the tree for containers", job->ref);
	buildfd = openat(tdfd, build_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (buildfd < 0)
		return -errno;
	rootfd = openat(buildfd, "rootfs", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rootfd < 0) {
		ret = -errno;
		set_error(err, errlen, "debootstrap left no root file system at %s", rootfs);
		return ret;
	}
	ret = template_finish_rootfs(rootfd, job->ref);
	if (ret < 0) {
		set_error(err, errlen, "cannot prepare the template's tree: %s", strerror(-ret));
		return ret;
	}
	if (job->setup_dir) {
		char setup_hash[TEMPLATE_HASH_HEX];

		progress_say(progress, "Building template %s: copying the site files of %s", job->ref,
			     job->setup_dir);
		ret = template_setup_apply(job->setup_dir, rootfd, setup_hash, err, errlen);
		if (ret < 0)
			return ret;
	}
	ret = template_measure(rootfd, &size);
	if (ret < 0) {
		set_error(err, errlen, "cannot measure the template's tree: %s", strerror(-ret));
		return ret;
	}
	manifest = template_manifest_text(job, size);
	if (!manifest)
		return -ENOMEM;
	ret = fsutil_write_atomic(path, manifest, strlen(manifest), 0644);
	if (ret < 0) {
		set_error(err, errlen, "cannot write %s: %s", path, strerror(-ret));
		return ret;
	}
	if (fchmod(buildfd, 0755) < 0)
		return -errno;
	/* Everything on disk before the name says the template is complete. */
	if (syncfs(buildfd) < 0)
		return -errno;
	return 0;
}

int template_mirror(const struct gpubox_config *cfg, char *mirror, size_t len, char *err,
		    size_t errlen)
{
	if (cfg->template_mirror[0]) {
		snprintf(mirror, len, "%s", cfg->template_mirror);
		return 0;
	}
	if (aptsources_find_mirror("/", mirror, len) < 0) {
		set_error(err, errlen,
				 "no Debian mirror found in /etc/apt/sources.list*; set template_mirror in gpubox.conf");
		return -ENOENT;
	}
	return 0;
}

/*
 * debootstrap's downloads through the package cache (apt_cache), by its
 * wget's http_proxy: "http_proxy=URL" into buf, or "" when it is off.  A
 * local cache is asked at the bridge's address, where containers ask it.
 * Not part of the recipe, and not written into the tree: the template's
 * apt sources name the mirror itself (containers get the proxy at start).
 */
static int template_http_proxy(const struct gpubox_config *cfg, char *buf, size_t len)
{
	struct config_apt_cache cache;
	struct network_subnet subnet;
	char gateway[16], url[CONFIG_APT_CACHE_HOST_MAX + 32];
	int ret;

	buf[0] = '\0';
	if (config_apt_cache(cfg->apt_cache, &cache, NULL, 0) < 0 ||
	    cache.mode == CONFIG_APT_CACHE_OFF)
		return 0;
	ret = network_parse_subnet(cfg->bridge_address, &subnet);
	if (ret < 0)
		return ret;
	network_format_address(subnet.host_address, gateway);
	ret = config_apt_cache_proxy(&cache, gateway, url, sizeof(url));
	if (ret == 0 && snprintf(buf, len, "http_proxy=%s", url) >= (int)len)
		ret = -ENAMETOOLONG;
	return ret;
}

/*
 * Site files are part of the recipe: a change makes a new version.
 * Without any, the recipe (and its hash) is what it always was.
 */
static int template_add_setup_files(const char *setup_dir, char **recipe,
				    char hash[TEMPLATE_HASH_HEX], char *err, size_t errlen)
{
	char setup_hash[TEMPLATE_HASH_HEX];
	unsigned char digest[crypto_hash_sha256_BYTES];
	char *longer = NULL;
	int ret;

	ret = template_setup_apply(setup_dir, -1, setup_hash, err, errlen);
	if (ret < 0)
		return ret;
	if (asprintf(&longer, "%ssetup-files %s\n", *recipe, setup_hash) < 0)
		return -ENOMEM;
	free(*recipe);
	*recipe = longer;
	crypto_hash_sha256(digest, (const unsigned char *)longer, strlen(longer));
	sodium_bin2hex(hash, TEMPLATE_HASH_HEX, digest, sizeof(digest));
	return 0;
}

/*
 * The recipe of this configuration, its hash and its package list, with
 * the mirror and architecture it names (*arch is static).
 */
static int template_build_recipe(const struct gpubox_config *cfg, const char *release,
				 char *mirror, size_t mirrorlen, const char **arch, char **recipe,
				 char hash[TEMPLATE_HASH_HEX], char ***packages,
				 char *err, size_t errlen)
{
	size_t npackages = 0;
	int ret;

	ret = template_mirror(cfg, mirror, mirrorlen, err, errlen);
	if (ret < 0)
		return ret;
	*arch = template_host_arch();
	if (!*arch)
		*arch = "host";
	ret = template_recipe(release, mirror, cfg->template_packages, *arch, recipe, hash,
			      err, errlen);
	if (ret < 0)
		return ret;
	ret = template_package_list(cfg->template_packages, packages, &npackages, err, errlen);
	if (ret < 0)
		return ret;
	if (!cfg->template_setup[0])
		return 0;
	return template_add_setup_files(cfg->template_setup, recipe, hash, err, errlen);
}

/*
 * The templates' directory (its path in tdir), open and locked against
 * other builds (*lockfd), cleared of the builds that were interrupted.
 */
static int template_open_store(const struct gpubox_config *cfg, char *tdir, size_t len,
			       struct progress *progress, int *lockfd, char *err, size_t errlen)
{
	__do_close int tdfd = -EBADF;
	int ret;

	ret = template_dir_path(cfg, tdir, len);
	if (ret < 0)
		return ret;
	ret = fsutil_mkdir_p(tdir, 0700);
	if (ret < 0) {
		set_error(err, errlen, "cannot create %s: %s", tdir, strerror(-ret));
		return ret;
	}
	tdfd = open(tdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (tdfd < 0)
		return log_error_errno(-errno, errno, "cannot open %s", tdir);
	*lockfd = template_lock(tdfd, progress);
	if (*lockfd < 0) {
		set_error(err, errlen, "cannot lock %s/.lock: %s", tdir, strerror(-*lockfd));
		return *lockfd;
	}
	template_remove_stale(tdfd, tdir);
	return move_fd(tdfd);
}

/* One more than the newest version of the template, 1 for the first. */
static int template_next_version(const char *tdir, const char *name, uint32_t *version,
				 char *err, size_t errlen)
{
	__do_free struct template_entry *list = NULL;
	size_t count = 0;
	int ret;

	ret = template_scan(tdir, name, &list, &count);
	if (ret < 0)
		return ret;
	*version = 1;
	if (count == 0)
		return 0;
	if (list[count - 1].version == UINT32_MAX) {
		set_error(err, errlen, "template %s has no version number left", name);
		return -ERANGE;
	}
	*version = list[count - 1].version + 1;
	return 0;
}

/* Whether the newest version of the template was built from this recipe. */
static bool template_is_built(const char *tdir, const char *name, const char *hash,
			      struct template_info *newest)
{
	return template_newest_in(tdir, name, newest) == 0 &&
	       strcmp(newest->recipe_hash, hash) == 0;
}

/* A fresh build directory: its path in build_path, its name in build_name. */
static int template_make_build_dir(const char *tdir, const char *name, char *build_path,
				   size_t pathlen, char *build_name, size_t namelen,
				   char *err, size_t errlen)
{
	int ret;

	ret = snprintf(build_path, pathlen, "%s/" TEMPLATE_BUILD_PREFIX "%s-XXXXXX", tdir, name);
	if (ret < 0 || (size_t)ret >= pathlen)
		return -ENAMETOOLONG;
	if (!mkdtemp(build_path)) {
		ret = -errno;
		set_error(err, errlen, "cannot create a build directory in %s: %s", tdir,
				 strerror(-ret));
		return ret;
	}
	snprintf(build_name, namelen, "%s", strrchr(build_path, '/') + 1);
	return 0;
}

/*
 * Build the tree in its build directory and only then give it the
 * template's name; a failed build is removed (err says why).
 */
static int template_build_and_rename(const struct template_job *job, int tdfd, const char *tdir,
				     const char *build_name, const char *build_path,
				     struct progress *progress, char *err, size_t errlen)
{
	int ret;

	ret = template_build_tree(job, tdfd, tdir, build_name, progress, err, errlen);
	if (ret == 0 && renameat2(tdfd, build_name, tdfd, job->ref, RENAME_NOREPLACE) < 0) {
		ret = -errno;
		set_error(err, errlen, "cannot rename %s to %s/%s: %s", build_path, tdir, job->ref,
				 strerror(-ret));
	}
	if (ret < 0) {
		if (!err[0])
			set_error(err, errlen, "building template %s failed: %s", job->ref,
					 strerror(-ret));
		log_error("%s", err);
		template_remove_build(tdfd, tdir, build_name);
		return ret;
	}
	if (fsync(tdfd) < 0)
		log_warn_errno(0, errno, "cannot sync %s", tdir);
	return 0;
}

/* The template's next version, from job (its version and ref, in ref, set here). */
static int template_build_next(struct template_job *job, int tdfd, const char *tdir, char *ref,
			       size_t reflen, struct progress *progress, char *err, size_t errlen)
{
	char build_name[128], build_path[PATH_MAX];
	int ret;

	ret = template_next_version(tdir, job->name, &job->version, err, errlen);
	if (ret < 0)
		return ret;
	snprintf(ref, reflen, "%s@%u", job->name, job->version);
	job->ref = ref;
	ret = template_make_build_dir(tdir, job->name, build_path, sizeof(build_path), build_name,
				      sizeof(build_name), err, errlen);
	if (ret < 0)
		return ret;
	return template_build_and_rename(job, tdfd, tdir, build_name, build_path, progress,
					 err, errlen);
}

int template_build(const struct gpubox_config *cfg, const char *name, const char *release,
		   struct progress *progress, struct template_info *out, bool *cached,
		   char *err, size_t errlen)
{
	__do_strv char **packages = NULL;
	__do_free char *recipe = NULL;
	__do_close int tdfd = -EBADF, lockfd = -EBADF;
	char tdir[PATH_MAX], mirror[APTSOURCES_URI_MAX], hash[TEMPLATE_HASH_HEX];
	char ref[TEMPLATE_REF_SIZE], http_proxy[CONFIG_APT_CACHE_HOST_MAX + 48];
	const char *arch;
	struct template_info newest;
	struct template_job job;
	char local_err[512];
	int ret;

	if (!err || errlen == 0) {
		err = local_err;
		errlen = sizeof(local_err);
	}
	err[0] = '\0';
	if (cached)
		*cached = false;
	if (!name)
		name = cfg->template_name;
	if (!release)
		release = cfg->template_release;
	ret = validate_template_name(name, err, errlen);
	if (ret < 0)
		return ret;
	ret = template_build_recipe(cfg, release, mirror, sizeof(mirror), &arch, &recipe, hash,
				    &packages, err, errlen);
	if (ret < 0)
		return ret;

	tdfd = template_open_store(cfg, tdir, sizeof(tdir), progress, &lockfd, err, errlen);
	if (tdfd < 0)
		return tdfd;
	if (template_is_built(tdir, name, hash, &newest)) {
		if (out)
			*out = newest;
		if (cached)
			*cached = true;
		return 0;
	}
	ret = template_http_proxy(cfg, http_proxy, sizeof(http_proxy));
	if (ret < 0) {
		set_error(err, errlen, "bridge_address %s does not name the server for apt_cache",
			  cfg->bridge_address);
		return ret;
	}
	job = (struct template_job){
		.name = name, .release = release, .mirror = mirror, .arch = arch,
		.packages = packages, .recipe = recipe, .hash = hash,
		.setup_dir = cfg->template_setup[0] ? cfg->template_setup : NULL,
		.http_proxy = http_proxy[0] ? http_proxy : NULL,
	};
	ret = template_build_next(&job, tdfd, tdir, ref, sizeof(ref), progress, err, errlen);
	if (ret < 0)
		return ret;
	ret = template_read(tdir, name, job.version, out ? out : &newest, NULL);
	if (ret < 0) {
		set_error(err, errlen, "template %s was built but cannot be read back", ref);
		return ret;
	}
	progress_say(progress, "Template %s is ready (%llu MB)", ref,
		     (out ? out->size : newest.size) / (1024 * 1024));
	return 0;
}

/* ---- versions in use ------------------------------------------------------- */

int template_newer(const struct gpubox_config *cfg, const char *ref, char *newer, size_t len)
{
	struct template_entry e;
	struct template_info newest;

	if (!ref || !template_entry_parse(ref, &e))
		return 0;
	if (template_newest(cfg, e.name, &newest) < 0 || newest.version <= e.version)
		return 0;
	snprintf(newer, len, "%s", newest.ref);
	return 1;
}

int template_remove(const struct gpubox_config *cfg, const char *ref,
		    int (*in_use)(void *data, const char *ref, char *who, size_t wholen),
		    void *data, char *err, size_t errlen)
{
	__do_close int tdfd = -EBADF, lockfd = -EBADF;
	struct template_entry e;
	char tdir[PATH_MAX], doomed[160], who[256] = "";
	int ret;

	if (!err || errlen == 0)
		return -EINVAL;
	err[0] = '\0';
	if (!ref || !template_entry_parse(ref, &e)) {
		set_error(err, errlen, "name a template with its version, as NAME@VERSION (see gpubox admin template ls)");
		return -EINVAL;
	}
	ret = template_dir_path(cfg, tdir, sizeof(tdir));
	if (ret < 0)
		return ret;
	tdfd = open(tdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (tdfd < 0) {
		set_error(err, errlen, "there is no template %s on this server", ref);
		return -ENOENT;
	}
	/* No build starts or finishes meanwhile. */
	lockfd = template_lock(tdfd, NULL);
	if (lockfd < 0)
		return lockfd;
	if (faccessat(tdfd, ref, F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
		set_error(err, errlen, "there is no template %s on this server", ref);
		return -ENOENT;
	}
	ret = in_use(data, ref, who, sizeof(who));
	if (ret < 0) {
		set_error(err, errlen, "cannot tell whether template %s is in use: %s", ref,
				 strerror(-ret));
		return ret;
	}
	if (ret > 0) {
		set_error(err, errlen, "template %s is in use (%s); it can be removed once nothing uses it",
				 ref, who);
		return -EBUSY;
	}
	/* Renamed to a build's name first: gone at once, and a removal cut
	 * short is finished by the next build like any unfinished build. */
	snprintf(doomed, sizeof(doomed), TEMPLATE_BUILD_PREFIX "rm-%s", ref);
	if (renameat2(tdfd, ref, tdfd, doomed, RENAME_NOREPLACE) < 0) {
		ret = -errno;
		set_error(err, errlen, "cannot remove template %s: %s", ref, strerror(-ret));
		return ret;
	}
	if (fsync(tdfd) < 0)
		log_warn_errno(0, errno, "cannot sync %s", tdir);
	template_remove_build(tdfd, tdir, doomed);
	log_info("removed template %s", ref);
	return 0;
}
