/* SPDX-License-Identifier: MIT */
/*
 * gpubox admin doctor: what this server needs, checked where the agent
 * stands (root, its configuration, its state), one small function per
 * check, run in the order of the table at the end.  Each says what it
 * found and, for what is wrong, what to do.  A missing GPU or hub is a
 * note, not a failure: a server without either is a working server.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/magic.h>
#include <linux/mount.h>

#include <curl/curl.h>
#include <lxc/lxccontainer.h>
#include <sodium.h>

#include "agent.h"
#include "doctor.h"
#include "gpu/gpu.h"
#include "hubsync.h"
#include "image/aptsources.h"
#include "image/image.h"
#include "net/net.h"
#include "ops.h"
#include "state/state.h"
#include "cleanup.h"
#include "fsutil.h"
#include "log.h"
#include "proto.h"
#include "spawn.h"
#include "strutil.h"
#include "banned.h"

#define DOCTOR_KERNEL_MAJOR 5      /* idmapped mounts of ext4, xfs, btrfs: 5.15 */
#define DOCTOR_KERNEL_MINOR 15
#define DOCTOR_LXC_MAJOR 4
#define DOCTOR_HUB_TIMEOUT 5       /* seconds */
#define DOCTOR_APT_CACHE_TIMEOUT 3 /* seconds */
#define DOCTOR_APT_CACHE_FETCH_TIMEOUT 15
#define DOCTOR_SSHD_OUTPUT_MAX 65536
#define DOCTOR_TOKEN_MAX 256

/* ---- the pure helpers (doctor.h) ---------------------------------------- */

const char *doctor_status_name(enum doctor_status status)
{
	switch (status) {
	case DOCTOR_OK: return "ok";
	case DOCTOR_NOTE: return "note";
	case DOCTOR_FAIL: break;
	}
	return "fail";
}

/* A decimal number of at most 6 digits at *p, moving *p past it. */
static bool doctor_read_number(const char **p, unsigned *out)
{
	unsigned value = 0, digits = 0;

	while (isdigit((unsigned char)**p) && digits < 6) {
		value = value * 10 + (unsigned)(**p - '0');
		(*p)++;
		digits++;
	}
	*out = value;
	return digits > 0 && !isdigit((unsigned char)**p);
}

bool doctor_kernel_at_least(const char *release, unsigned major, unsigned minor)
{
	const char *p = release;
	unsigned got_major, got_minor;

	if (!p || !doctor_read_number(&p, &got_major) || *p++ != '.' ||
	    !doctor_read_number(&p, &got_minor))
		return false;
	return got_major > major || (got_major == major && got_minor >= minor);
}

int doctor_sshd_option(const char *text, const char *key, char *buf, size_t len)
{
	size_t keylen = strlen(key);

	for (const char *line = text; line && *line; ) {
		const char *end = strchr(line, '\n');
		size_t linelen = end ? (size_t)(end - line) : strlen(line);

		if (linelen > keylen && strncmp(line, key, keylen) == 0 && line[keylen] == ' ') {
			size_t n = linelen - keylen - 1;

			if (n >= len)
				return -ENAMETOOLONG;
			memcpy(buf, line + keylen + 1, n);
			buf[n] = '\0';
			return 0;
		}
		line = end ? end + 1 : NULL;
	}
	return -ENOENT;
}

int doctor_http_date(const char *value, time_t *out)
{
	struct tm tm = { 0 };
	const char *end;

	if (!value)
		return -EINVAL;
	while (*value == ' ' || *value == '\t')
		value++;
	/* The C locale's day and month names: the agent never sets another. */
	end = strptime(value, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (!end)
		return -EINVAL;
	while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
		end++;
	if (*end)
		return -EINVAL;
	*out = timegm(&tm);
	return *out == (time_t)-1 ? -EINVAL : 0;
}

/* ---- results --------------------------------------------------------------- */

struct doctor_context {
	struct agent *a;
	bool hub_answered;          /* the hub check got an HTTP answer ... */
	time_t hub_date;            /* ... with this Date (0: none) */
	time_t asked_at;
};

__attribute__((format(printf, 3, 4)))
static void doctor_set(struct doctor_result *r, enum doctor_status status, const char *fmt, ...)
{
	va_list ap;

	r->status = status;
	va_start(ap, fmt);
	vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
	va_end(ap);
}

__attribute__((format(printf, 2, 3)))
static void doctor_advise(struct doctor_result *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->advice, sizeof(r->advice), fmt, ap);
	va_end(ap);
}

/* ---- the kernel --------------------------------------------------------- */

static void doctor_check_kernel_release(struct doctor_context *ctx, struct doctor_result *r)
{
	struct utsname u;

	(void)ctx;
	uname(&u);
	if (doctor_kernel_at_least(u.release, DOCTOR_KERNEL_MAJOR, DOCTOR_KERNEL_MINOR)) {
		doctor_set(r, DOCTOR_OK, "Linux %s", u.release);
		return;
	}
	doctor_set(r, DOCTOR_FAIL, "Linux %s is older than %d.%d", u.release, DOCTOR_KERNEL_MAJOR,
		   DOCTOR_KERNEL_MINOR);
	doctor_advise(r, "boot Debian 12's kernel (6.1) or newer: idmapped mounts of the template need it");
}

/* One line of uid_map or gid_map for the probe's namespace. */
static int doctor_write_map(pid_t pid, const char *file)
{
	__do_close int fd = -EBADF;
	char path[64];
	static const char map[] = "0 100000 65536\n";

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return fsutil_write_all(fd, map, strlen(map));
}

/* A user namespace with a mapping, held open by a child that waits; the
 * child only calls what is safe after fork() in a threaded process. */
static int doctor_userns_fd(void)
{
	int ready[2], hold[2], fd = -ENOSYS;
	char path[64], c;
	pid_t pid;

	if (pipe2(ready, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(hold, O_CLOEXEC) < 0) {
		close(ready[0]);
		close(ready[1]);
		return -errno;
	}
	pid = fork();
	if (pid == 0) {
		close(ready[0]);
		close(hold[1]);
		if (unshare(CLONE_NEWUSER) < 0)
			_exit(1);
		(void)!write(ready[1], "u", 1);
		(void)!read(hold[0], &c, 1);
		_exit(0);
	}
	close(ready[1]);
	close(hold[0]);
	if (pid > 0 && read(ready[0], &c, 1) == 1 && doctor_write_map(pid, "uid_map") == 0 &&
	    doctor_write_map(pid, "gid_map") == 0) {
		snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			fd = -errno;
	}
	close(hold[1]);
	close(ready[0]);
	if (pid > 0)
		waitpid(pid, NULL, 0);
	return pid < 0 ? -errno : fd;
}

/* The real thing, as a member's start does it: an idmapped clone of the
 * folder the templates live in, never attached anywhere. */
static void doctor_check_idmapped_mounts(struct doctor_context *ctx, struct doctor_result *r)
{
	const char *dir = ctx->a->cfg.state_dir;
	struct mount_attr attr = { .attr_set = MOUNT_ATTR_IDMAP };
	__do_close int nsfd = doctor_userns_fd(), treefd = -EBADF;

	doctor_advise(r, "the file system of %s must support idmapped mounts (ext4, xfs or btrfs on Linux 5.15 or newer)",
		      dir);
	if (nsfd < 0) {
		doctor_set(r, DOCTOR_FAIL, "cannot make a user namespace: %s", strerror(-nsfd));
		return;
	}
	treefd = (int)syscall(SYS_open_tree, AT_FDCWD, dir, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	if (treefd < 0) {
		doctor_set(r, DOCTOR_FAIL, "cannot clone the mount of %s: %s", dir, strerror(errno));
		return;
	}
	attr.userns_fd = (uint64_t)nsfd;
	if (syscall(SYS_mount_setattr, treefd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0) {
		doctor_set(r, DOCTOR_FAIL, "no idmapped mount of %s: %s", dir, strerror(errno));
		return;
	}
	doctor_set(r, DOCTOR_OK, "%s can be mounted idmapped", dir);
	r->advice[0] = '\0';
}

static bool doctor_file_has(const char *path, const char *needle)
{
	__do_free char *data = NULL;
	size_t len = 0;

	return fsutil_read_file(path, 1 << 20, &data, &len) == 0 && strstr(data, needle);
}

static void doctor_check_overlayfs(struct doctor_context *ctx, struct doctor_result *r)
{
	struct utsname u;
	char path[PATH_MAX];
	struct stat st;

	(void)ctx;
	if (doctor_file_has("/proc/filesystems", "\toverlay\n")) {
		doctor_set(r, DOCTOR_OK, "overlay is in /proc/filesystems");
		return;
	}
	uname(&u);
	snprintf(path, sizeof(path), "/lib/modules/%s/kernel/fs/overlayfs", u.release);
	if (stat(path, &st) == 0) {
		doctor_set(r, DOCTOR_OK, "the overlay module is loaded at the first start");
		return;
	}
	doctor_set(r, DOCTOR_FAIL, "this kernel has no overlay file system");
	doctor_advise(r, "boot a kernel with CONFIG_OVERLAY_FS (Debian's have it as a module)");
}

static void doctor_check_user_namespaces(struct doctor_context *ctx, struct doctor_result *r)
{
	__do_free char *data = NULL;
	size_t len = 0;
	long max = 0;

	(void)ctx;
	if (fsutil_read_file("/proc/sys/user/max_user_namespaces", 64, &data, &len) == 0)
		max = strtol(data, NULL, 10);
	if (max > 0) {
		doctor_set(r, DOCTOR_OK, "user.max_user_namespaces = %ld", max);
		return;
	}
	doctor_set(r, DOCTOR_FAIL, "user namespaces are off (user.max_user_namespaces = %ld)", max);
	doctor_advise(r, "sysctl -w user.max_user_namespaces=63000, and the same in /etc/sysctl.d/");
}

static void doctor_check_cgroup_version(struct doctor_context *ctx, struct doctor_result *r)
{
	struct statfs fs;

	(void)ctx;
	if (statfs("/sys/fs/cgroup", &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC) {
		doctor_set(r, DOCTOR_OK, "cgroup v2 (unified)");
		return;
	}
	doctor_set(r, DOCTOR_NOTE, "cgroup v1 (hybrid): supported, but Debian 12 boots with v2");
	doctor_advise(r, "for v2, remove systemd.unified_cgroup_hierarchy=0 from the kernel's command line");
}

/* ---- what the containers run on ------------------------------------------ */

static void doctor_check_lxc(struct doctor_context *ctx, struct doctor_result *r)
{
	const char *version = lxc_get_version();

	(void)ctx;
	if (version && doctor_kernel_at_least(version, DOCTOR_LXC_MAJOR, 0)) {
		doctor_set(r, DOCTOR_OK, "liblxc %s", version);
		return;
	}
	doctor_set(r, DOCTOR_FAIL, "liblxc %s is older than %d.0", version ? version : "(unknown)",
		   DOCTOR_LXC_MAJOR);
	doctor_advise(r, "install Debian 12's lxc (5.0)");
}

static void doctor_check_lxcfs(struct doctor_context *ctx, struct doctor_result *r)
{
	(void)ctx;
	switch (cgroup_lxcfs_state()) {
	case LXCFS_RUNNING:
		doctor_set(r, DOCTOR_OK, "lxcfs is mounted at /var/lib/lxcfs and answers");
		return;
	case LXCFS_STALE:
		doctor_set(r, DOCTOR_FAIL, "lxcfs's mount at /var/lib/lxcfs does not answer (lxcfs died): "
			   "containers cannot read their /proc/meminfo, new ones see the server's");
		doctor_advise(r, "umount -l /var/lib/lxcfs; systemctl restart lxcfs; then restart running containers");
		return;
	case LXCFS_ABSENT:
		break;
	}
	doctor_set(r, DOCTOR_FAIL, "lxcfs is not running: containers see the server's memory and CPUs in /proc");
	doctor_advise(r, "apt install lxcfs; systemctl enable --now lxcfs; then restart running containers");
}

/* All three of the agent's tables: "ip" forwards and NATs, "ip6" holds
 * the allow-lists' IPv6 networks, "bridge" stops one container spoofing
 * another's MAC or address.  A flush of the ruleset loses them all. */
static void doctor_check_nftables(struct doctor_context *ctx, struct doctor_result *r)
{
	static const struct {
		const char *family, *loses;
	} tables[] = {
		{ "ip",     "no port forwards, no NAT, no allow-lists" },
		{ "ip6",    "the forwards' IPv6 allow-lists are not enforced" },
		{ "bridge", "no anti-spoofing: a container can take another's address" },
	};
	const char *table = ctx->a->cfg.nft_table;

	for (size_t i = 0; i < ARRAY_SIZE(tables); i++) {
		__do_free char *rules = NULL;

		if (nft_list(tables[i].family, table, &rules) == 0)
			continue;
		doctor_set(r, DOCTOR_FAIL, "the agent's nftables table %s %s is missing: %s",
			   tables[i].family, table, tables[i].loses);
		doctor_advise(r, "systemctl restart gpuboxd (it loads its tables at start); if nftables.service "
			      "flushed them, keep gpuboxd ordered after nftables.service");
		return;
	}
	doctor_set(r, DOCTOR_OK, "the tables ip, ip6 and bridge %s are loaded", table);
}

/* The bridge's own IPv4 address, as text; "" when it has none. */
static void doctor_bridge_address(const char *bridge, char *buf, size_t len)
{
	struct ifaddrs *list = NULL;

	buf[0] = '\0';
	if (getifaddrs(&list) < 0)
		return;
	for (struct ifaddrs *i = list; i; i = i->ifa_next)
		if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET && strcmp(i->ifa_name, bridge) == 0) {
			inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr, buf,
				  (socklen_t)len);
			break;
		}
	freeifaddrs(list);
}

static void doctor_check_bridge(struct doctor_context *ctx, struct doctor_result *r)
{
	const struct gpubox_config *cfg = &ctx->a->cfg;
	char want[INET_ADDRSTRLEN], have[INET_ADDRSTRLEN], flags_path[64];
	__do_free char *flags = NULL;
	uint32_t address;
	unsigned prefix;
	size_t len;

	doctor_advise(r, "systemctl restart gpuboxd: it sets up the bridge %s (%s) at start", cfg->bridge,
		      cfg->bridge_address);
	if (network_parse_cidr(cfg->bridge_address, &address, &prefix) < 0 ||
	    !inet_ntop(AF_INET, &(struct in_addr){ .s_addr = htonl(address) }, want, sizeof(want)))
		want[0] = '\0';
	snprintf(flags_path, sizeof(flags_path), "/sys/class/net/%s/flags", cfg->bridge);
	if (if_nametoindex(cfg->bridge) == 0 || fsutil_read_file(flags_path, 32, &flags, &len) < 0) {
		doctor_set(r, DOCTOR_FAIL, "there is no interface %s", cfg->bridge);
		return;
	}
	if (!(strtoul(flags, NULL, 16) & IFF_UP)) {
		doctor_set(r, DOCTOR_FAIL, "the bridge %s is down", cfg->bridge);
		return;
	}
	doctor_bridge_address(cfg->bridge, have, sizeof(have));
	if (strcmp(have, want) != 0) {
		doctor_set(r, DOCTOR_FAIL, "the bridge %s has the address %s, not %s", cfg->bridge,
			   have[0] ? have : "(none)", want);
		return;
	}
	doctor_set(r, DOCTOR_OK, "%s is up with %s", cfg->bridge, cfg->bridge_address);
	r->advice[0] = '\0';
}

/* ---- members' logins ------------------------------------------------------ */

/* What sshd would apply to member's login: "sshd -T" for that user. */
static int doctor_sshd_effective(const char *member, char **out)
{
	__do_free char *capture = malloc(DOCTOR_SSHD_OUTPUT_MAX);
	char spec[128];
	const char *argv[] = { "sshd", "-T", "-C", spec, NULL };
	struct spawn_options opts = { .capture_size = DOCTOR_SSHD_OUTPUT_MAX, .timeout = 10 };
	int ret;

	if (!capture)
		return -ENOMEM;
	snprintf(spec, sizeof(spec), "user=%s,host=gpubox-doctor,addr=127.0.0.1", member);
	opts.capture = capture;
	ret = spawn_run(argv, &opts);
	if (ret != 0)
		return ret < 0 ? ret : -EINVAL;
	*out = move_ptr(capture);
	return 0;
}

/* The first word of a ForceCommand, its folders left out. */
static bool doctor_forces_gpubox(const char *command)
{
	const char *slash = strrchr(command, '/');
	const char *name = slash && !strchr(slash, ' ') ? slash + 1 : command;

	return strcmp(name, "gpubox") == 0 || strncmp(name, "gpubox ", 7) == 0;
}

static void doctor_check_sshd(struct doctor_context *ctx, struct doctor_result *r)
{
	const struct gpubox_config *cfg = &ctx->a->cfg;
	__do_free struct member_record *members = NULL;
	__do_free char *effective = NULL;
	char force[256] = "", keys[PATH_MAX + 8] = "", want_keys[PATH_MAX + 8];
	size_t n = 0;

	doctor_advise(r, "install /etc/ssh/sshd_config.d/gpubox.conf (the package's, or etc/sshd-gpubox.conf) with Match Group %s, check with sshd -t, then systemctl reload ssh",
		      cfg->member_group);
	if (db_member_list(ctx->a->db, &members, &n) < 0 || n == 0) {
		const char *argv[] = { "sshd", "-t", NULL };

		if (spawn_quiet(argv) != 0) {
			doctor_set(r, DOCTOR_FAIL, "sshd -t fails: sshd will not start with its configuration");
			return;
		}
		doctor_set(r, DOCTOR_NOTE, "no member yet: members' logins are checked once there is one");
		return;
	}
	if (doctor_sshd_effective(members[0].name, &effective) < 0) {
		doctor_set(r, DOCTOR_FAIL, "sshd -T fails: sshd will not start with its configuration");
		return;
	}
	doctor_sshd_option(effective, "forcecommand", force, sizeof(force));
	doctor_sshd_option(effective, "authorizedkeysfile", keys, sizeof(keys));
	snprintf(want_keys, sizeof(want_keys), "%s/%%u", cfg->authorized_keys_dir);
	if (!doctor_forces_gpubox(force)) {
		doctor_set(r, DOCTOR_FAIL, "a member's login (%s) has no ForceCommand gpubox", members[0].name);
		return;
	}
	if (strcmp(keys, want_keys) != 0) {
		doctor_set(r, DOCTOR_FAIL, "a member's login (%s) reads keys from %s, not %s", members[0].name,
			   keys[0] ? keys : "(nothing)", want_keys);
		return;
	}
	doctor_set(r, DOCTOR_OK, "members' logins run gpubox, with the agent's keys");
	r->advice[0] = '\0';
}

/* ---- templates and GPUs ------------------------------------------------- */

static void doctor_check_template(struct doctor_context *ctx, struct doctor_result *r)
{
	struct template_info tpl;

	if (template_newest(&ctx->a->cfg, NULL, &tpl) == 0) {
		doctor_set(r, DOCTOR_OK, "%s is built", tpl.ref);
		return;
	}
	doctor_set(r, DOCTOR_FAIL, "the template %s is not built: no container can start",
		   ctx->a->cfg.template_name);
	doctor_advise(r, "gpubox admin template build");
}

static void doctor_check_nvidia(struct doctor_context *ctx, struct doctor_result *r)
{
	const char *root = ctx->a->cfg.gpu_root;
	__do_free struct gpu_host *host = calloc(1, sizeof(*host));

	if (!host || gpu_discover(root[0] ? root : NULL, 0, host) < 0) {
		doctor_set(r, DOCTOR_FAIL, "cannot look for NVIDIA GPUs");
		return;
	}
	if (host->present) {
		doctor_set(r, DOCTOR_OK, "driver %s, %zu GPU%s", host->version, host->ngpus,
			   host->ngpus == 1 ? "" : "s");
		return;
	}
	/* A loaded driver whose GPUs lack their nodes is broken; no driver
	 * at all is a server without GPUs. */
	if (host->version[0] && host->ngpus > 0) {
		doctor_set(r, DOCTOR_FAIL, "%s", host->reason);
		doctor_advise(r, "run nvidia-smi once (or nvidia-modprobe -u -c=0) to create the device nodes, or enable nvidia-persistenced");
		return;
	}
	doctor_set(r, DOCTOR_NOTE, "%s: containers run without GPUs", host->reason);
}

/* ---- the hub -------------------------------------------------------------- */

/* Where an answer's headers go: only the Date is kept, when asked for. */
static size_t doctor_on_header(char *data, size_t size, size_t n, void *userdata)
{
	time_t *date = userdata;
	size_t len = size * n;
	char line[128];

	if (date && len > 5 && len < sizeof(line) && strncasecmp(data, "Date:", 5) == 0) {
		memcpy(line, data + 5, len - 5);
		line[len - 5] = '\0';
		if (doctor_http_date(line, date) < 0)
			*date = 0;
	}
	return len;
}

static size_t doctor_on_body(char *data, size_t size, size_t n, void *userdata)
{
	(void)data;
	(void)userdata;
	return size * n;
}

/* The token the agent uses (the file was checked the same way at start). */
static int doctor_read_token(const char *path, char *authorization, size_t len)
{
	__do_free char *data = NULL;
	struct hubsync *checked = NULL;
	size_t n = 0;
	int ret;

	ret = hubsync_token_load(path, &checked);
	free(checked);
	if (ret < 0)
		return ret;
	ret = fsutil_read_file(path, DOCTOR_TOKEN_MAX, &data, &n);
	if (ret < 0)
		return ret;
	while (n > 0 && (data[n - 1] == '\n' || data[n - 1] == '\r'))
		data[--n] = '\0';
	snprintf(authorization, len, "Authorization: Bearer %s", data);
	sodium_memzero(data, n);
	return 0;
}

struct doctor_request {
	const char *url;
	struct curl_slist *headers;    /* NULL: none */
	long timeout;                  /* seconds */
	const char *proxy;             /* NULL: the environment's; "": none; else through it */
	bool head;                     /* HEAD, not GET */
	time_t *date;                  /* the answer's Date; NULL: not kept */
};

/* One GET (or HEAD), its body dropped: the HTTP status, or -1 (the curl
 * error's text in err). */
static long doctor_http_get(const struct doctor_request *req, char *err, size_t errlen)
{
	CURL *c = curl_easy_init();
	long code = -1;
	CURLcode res;

	if (!c) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	curl_easy_setopt(c, CURLOPT_URL, req->url);
	if (req->headers)
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, req->headers);
	if (req->proxy)
		curl_easy_setopt(c, CURLOPT_PROXY, req->proxy);
	if (req->head)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, req->timeout);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "gpuboxd-doctor/" GPUBOX_VERSION);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, doctor_on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, req->date);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, doctor_on_body);
	res = curl_easy_perform(c);
	if (res == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	else
		snprintf(err, errlen, "%s", curl_easy_strerror(res));
	curl_easy_cleanup(c);
	return code;
}

/* GET <hub_url>/api/v1/sync as the agent asks it: the HTTP status, or a
 * negative curl error (its text in err). */
static long doctor_ask_hub(struct doctor_context *ctx, const char *authorization, char *err, size_t errlen)
{
	const struct gpubox_config *cfg = &ctx->a->cfg;
	struct curl_slist *headers = curl_slist_append(NULL, authorization);
	char url[CONFIG_TEXT_MAX + 16];
	size_t len = strlen(cfg->hub_url);
	long code = -1;

	while (len > 0 && cfg->hub_url[len - 1] == '/')
		len--;
	snprintf(url, sizeof(url), "%.*s/api/v1/sync", (int)len, cfg->hub_url);
	if (!headers) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	ctx->asked_at = time(NULL);
	code = doctor_http_get(&(struct doctor_request){ .url = url, .headers = headers,
							 .timeout = DOCTOR_HUB_TIMEOUT,
							 .date = &ctx->hub_date }, err, errlen);
	curl_slist_free_all(headers);
	return code;
}

static void doctor_check_hub(struct doctor_context *ctx, struct doctor_result *r)
{
	const struct gpubox_config *cfg = &ctx->a->cfg;
	char authorization[DOCTOR_TOKEN_MAX + 32], err[CURL_ERROR_SIZE] = "";
	long code;

	if (!cfg->hub_url[0]) {
		doctor_set(r, DOCTOR_NOTE, "no hub_url: members and keys are this server's own");
		return;
	}
	if (doctor_read_token(cfg->hub_token_file, authorization, sizeof(authorization)) < 0) {
		doctor_set(r, DOCTOR_FAIL, "hub_token_file %s cannot be used (see the agent's log)",
			   cfg->hub_token_file);
		doctor_advise(r, "write the token \"gpubox-hub server add\" printed into it, root's, mode 0600");
		return;
	}
	code = doctor_ask_hub(ctx, authorization, err, sizeof(err));
	sodium_memzero(authorization, sizeof(authorization));
	ctx->hub_answered = code > 0;
	if (code == 200 || code == 304) {
		doctor_set(r, DOCTOR_OK, "%s answers and knows this server's token", cfg->hub_url);
		return;
	}
	if (code == 401 || code == 403) {
		doctor_set(r, DOCTOR_FAIL, "%s refuses this server's token (HTTP %ld)", cfg->hub_url, code);
		doctor_advise(r, "on the hub: gpubox-hub server ls; gpubox-hub server add prints a new token for %s",
			      cfg->hub_token_file);
		return;
	}
	if (code > 0)
		doctor_set(r, DOCTOR_FAIL, "%s answers HTTP %ld to /api/v1/sync", cfg->hub_url, code);
	else
		doctor_set(r, DOCTOR_FAIL, "cannot reach %s: %s", cfg->hub_url, err);
	doctor_advise(r, "check hub_url, this server's network, and that gpubox-hub runs on the hub");
}

/* Runs after doctor_check_hub, from the Date of its answer. */
static void doctor_check_clock(struct doctor_context *ctx, struct doctor_result *r)
{
	long long skew;

	if (!ctx->a->cfg.hub_url[0] || !ctx->hub_answered || !ctx->hub_date) {
		doctor_set(r, DOCTOR_NOTE, "no hub's clock to compare with");
		return;
	}
	skew = (long long)ctx->asked_at - (long long)ctx->hub_date;
	if (llabs(skew) <= DOCTOR_CLOCK_SKEW_MAX) {
		doctor_set(r, DOCTOR_OK, "%+lld s from the hub's clock", skew);
		return;
	}
	doctor_set(r, DOCTOR_FAIL, "this server's clock is %+lld s from the hub's", skew);
	doctor_advise(r, "synchronise both clocks with NTP: apt install systemd-timesyncd (or chrony); timedatectl set-ntp true");
}

/* ---- the package cache ----------------------------------------------------- */

/* Whether an address (host order) lies in one of the denied networks. */
static bool doctor_denied(uint32_t address, const struct config_network *deny, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t mask = deny[i].prefix ? UINT32_MAX << (32 - deny[i].prefix) : 0;

		if ((address & mask) == deny[i].address)
			return true;
	}
	return false;
}

/* A cache named by host name: the rules let through only a cache named
 * by address, so an address of the name inside egress_deny is one the
 * containers cannot reach.  True (and r set) when so. */
static bool doctor_apt_cache_denied(struct doctor_context *ctx, struct doctor_result *r)
{
	const struct agent *a = ctx->a;
	struct config_network deny[CONFIG_EGRESS_DENY_MAX];
	struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *list = NULL;
	char err[256], text[INET_ADDRSTRLEN];
	uint32_t address;
	size_t n = 0;
	bool denied = false;

	if (a->apt_cache.mode != CONFIG_APT_CACHE_URL ||
	    network_parse_address(a->apt_cache.host, &address) == 0 ||
	    config_egress_deny(a->cfg.egress_deny, deny, &n, err, sizeof(err)) < 0 ||
	    getaddrinfo(a->apt_cache.host, NULL, &hints, &list) != 0)
		return false;
	for (struct addrinfo *i = list; i && !denied; i = i->ai_next) {
		address = ntohl(((struct sockaddr_in *)(void *)i->ai_addr)->sin_addr.s_addr);
		denied = doctor_denied(address, deny, n);
	}
	freeaddrinfo(list);
	if (!denied)
		return false;
	network_format_address(address, text);
	doctor_set(r, DOCTOR_FAIL, "the package cache %s is at %s, which egress_deny keeps containers from",
		   a->apt_cache.host, text);
	doctor_advise(r, "name the cache by its address (apt_cache = http://%s:%u: the agent then lets exactly that address and port through), or take its network out of egress_deny",
		      text, (unsigned)a->apt_cache.port);
	return true;
}

/*
 * The cache answers at proxy; now what apt inside asks of it: the
 * mirror's InRelease (HEAD).  apt-cacher-ng as Debian installs it on a
 * server whose apt sources are only deb822 .sources files has an empty
 * backends_debian, and answers every Debian file "503 Host not found".
 */
static void doctor_apt_cache_fetch(struct doctor_context *ctx, const char *proxy,
				   struct doctor_result *r)
{
	const struct gpubox_config *cfg = &ctx->a->cfg;
	char mirror[APTSOURCES_URI_MAX], url[APTSOURCES_URI_MAX + 96], err[CURL_ERROR_SIZE] = "";
	size_t len;
	long code;

	if (template_mirror(cfg, mirror, sizeof(mirror), err, sizeof(err)) < 0 ||
	    !str_has_prefix(mirror, "http://")) {
		doctor_set(r, DOCTOR_OK, "the package cache answers at %s (no http:// mirror to fetch through it)",
			   proxy);
		return;
	}
	len = strlen(mirror);
	while (len > 0 && mirror[len - 1] == '/')
		len--;
	snprintf(url, sizeof(url), "%.*s/dists/%s/InRelease", (int)len, mirror, cfg->template_release);
	code = doctor_http_get(&(struct doctor_request){ .url = url, .proxy = proxy, .head = true,
							 .timeout = DOCTOR_APT_CACHE_FETCH_TIMEOUT },
			       err, sizeof(err));
	if (code == 200) {
		doctor_set(r, DOCTOR_OK, "the package cache at %s fetches the mirror's InRelease", proxy);
		return;
	}
	if (code > 0)
		doctor_set(r, DOCTOR_FAIL, "the package cache at %s answers HTTP %ld for %s", proxy, code, url);
	else
		doctor_set(r, DOCTOR_FAIL, "the package cache at %s cannot fetch %s: %s", proxy, url, err);
	doctor_advise(r, "apt-cacher-ng: if /etc/apt-cacher-ng/backends_debian is empty (a server whose apt sources are deb822 .sources files only), write the mirror's URL into it, then restart apt-cacher-ng; see its log in /var/log/apt-cacher-ng");
}

static void doctor_check_apt_cache(struct doctor_context *ctx, struct doctor_result *r)
{
	const struct agent *a = ctx->a;
	char gateway[INET_ADDRSTRLEN], url[CONFIG_APT_CACHE_HOST_MAX + 32], err[CURL_ERROR_SIZE] = "";
	long code;

	if (a->apt_cache.mode == CONFIG_APT_CACHE_OFF) {
		doctor_set(r, DOCTOR_NOTE, "apt_cache = off: every container fetches its packages from the mirror itself");
		return;
	}
	network_format_address(a->subnet.host_address, gateway);
	if (config_apt_cache_proxy(&a->apt_cache, gateway, url, sizeof(url)) < 0 ||
	    doctor_apt_cache_denied(ctx, r))
		return;
	code = doctor_http_get(&(struct doctor_request){ .url = url, .timeout = DOCTOR_APT_CACHE_TIMEOUT,
							 .proxy = "" }, err, sizeof(err));
	if (code > 0) {
		doctor_apt_cache_fetch(ctx, url, r);
		return;
	}
	doctor_set(r, DOCTOR_FAIL, "the package cache does not answer at %s: %s", url, err);
	if (a->apt_cache.mode == CONFIG_APT_CACHE_LOCAL)
		doctor_advise(r, "apt install apt-cacher-ng; systemctl enable --now apt-cacher-ng; it must listen on %s port %u (Port and BindAddress in /etc/apt-cacher-ng/acng.conf; by default every address, port 3142); or set apt_cache = off",
			      gateway, (unsigned)a->apt_cache.port);
	else
		doctor_advise(r, "check that the cache runs at %s and that this server reaches it; or set apt_cache = off",
			      url);
}

/* ---- the table ------------------------------------------------------------ */

struct doctor_check {
	const char *name;
	void (*run)(struct doctor_context *ctx, struct doctor_result *r);
};

static const struct doctor_check doctor_checks[] = {
	{ "kernel",          doctor_check_kernel_release },
	{ "idmapped-mounts", doctor_check_idmapped_mounts },
	{ "overlayfs",       doctor_check_overlayfs },
	{ "user-namespaces", doctor_check_user_namespaces },
	{ "cgroup",          doctor_check_cgroup_version },
	{ "lxc",             doctor_check_lxc },
	{ "lxcfs",           doctor_check_lxcfs },
	{ "nftables",        doctor_check_nftables },
	{ "bridge",          doctor_check_bridge },
	{ "sshd",            doctor_check_sshd },
	{ "template",        doctor_check_template },
	{ "nvidia",          doctor_check_nvidia },
	{ "hub",             doctor_check_hub },
	{ "clock",           doctor_check_clock },
	{ "apt-cache",       doctor_check_apt_cache },
};

static int op_doctor(struct op_context *ctx, json_t **result)
{
	static const char *const allowed[] = { NULL };
	struct doctor_context dctx = { .a = ctx->a };
	__do_json json_t *checks = json_array();
	bool failed = false;

	if (ops_require_admin(ctx) < 0 || ops_check_args(ctx, allowed) < 0)
		return -1;
	for (size_t i = 0; checks && i < ARRAY_SIZE(doctor_checks); i++) {
		struct doctor_result r = { 0 };

		doctor_checks[i].run(&dctx, &r);
		failed |= r.status == DOCTOR_FAIL;
		if (json_array_append_new(checks, json_pack("{s:s, s:s, s:s, s:s?}", "name", doctor_checks[i].name,
							    "status", doctor_status_name(r.status), "detail", r.detail,
							    "advice", r.advice[0] ? r.advice : NULL)) < 0)
			return ops_fail(ctx, PROTO_E_FAILED, "the agent ran out of memory");
	}
	if (!checks)
		return ops_fail(ctx, PROTO_E_FAILED, "the agent ran out of memory");
	*result = json_pack("{s:O, s:b}", "checks", checks, "ok", !failed);
	return 0;
}

const struct op_entry ops_doctor_table[] = {
	{ "doctor", op_doctor, OP_READ_ONLY, NULL },
	{ 0 },
};
