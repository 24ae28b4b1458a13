/* SPDX-License-Identifier: MIT */
/*
 * Containers through liblxc: the configuration is generated whole from a
 * container_spec (every field checked against a strict character set, so
 * no value can add a line or a key), written atomically, and handed to LXC.
 *
 * Locking.  liblxc is not thread-safe throughout (its logging and its
 * configuration parser share global state), so making and letting go of a
 * container's handle, and the start, hold container_lxc_lock, each for a
 * short while; what asks a container's monitor, which may wait for it,
 * runs outside (container_open()).  No lock shared by containers is ever
 * held while one container takes its time, so that a member whose init
 * ignores the halt signal, or who loops stop and start, delays nobody
 * else.  A stop sends the halt signal and waits for init to end through a
 * pidfd; a start waits for the container's setup in a child process.
 * Start, stop, freeze and device rules of one container run one at a time
 * (container_hold(): liblxc's own container locks are fcntl() locks, which
 * do not keep two threads of one process apart).  State queries take no
 * hold: they answer at once, during another operation on the container too.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/pidfd.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/magic.h>
#include <lxc/lxccontainer.h>

#include "container/container.h"
#include "net/net.h"
#include "progress.h"
#include "cleanup.h"
#include "fsutil.h"
#include "log.h"
#include "strutil.h"

#include "banned.h"

#define CONTAINER_LOG_TAIL 4096
#define CONTAINER_NAME_MAX 64

/* Seconds a container gets to end after SIGKILL, and for LXC's monitor to
 * report it STOPPED once its init has ended. */
#define CONTAINER_KILL_TIMEOUT 10
/* What container_stop() sends the container's init: the lxc.signal.halt
 * of the configuration (which lxc-stop reads), systemd's clean halt. */
#define CONTAINER_HALT_SIGNAL (SIGRTMIN + 3)
/* How often a wait for a state asks LXC again. */
#define CONTAINER_STATE_POLL_MS 100
#define CONTAINER_SSH_POLL_MS 50

static pthread_mutex_t container_lxc_lock = PTHREAD_MUTEX_INITIALIZER;

static inline void container_putp(struct lxc_container **c)
{
	if (*c)
		lxc_container_put(*c);
}
#define __do_lxc_put __attribute__((cleanup(container_putp)))

/* A handle on the container, made and let go under the liblxc lock (they
 * parse the configuration and set up logging: global state).  The calls
 * in between ask the container's monitor over its socket and may wait for
 * it while it is busy (setting up, tearing down): outside the lock, they
 * make only that container's callers wait.  NULL when out of memory. */
static struct lxc_container *container_open(const char *lxcpath, const char *name)
{
	struct lxc_container *c;

	pthread_mutex_lock(&container_lxc_lock);
	c = lxc_container_new(name, lxcpath);
	pthread_mutex_unlock(&container_lxc_lock);
	return c;
}

static void container_closep(struct lxc_container **c)
{
	if (!*c)
		return;
	pthread_mutex_lock(&container_lxc_lock);
	lxc_container_put(*c);
	pthread_mutex_unlock(&container_lxc_lock);
	*c = NULL;
}
#define __do_lxc_close __attribute__((cleanup(container_closep)))

static long long container_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- one operation at a time per container ------------------------------- */

/* A container under an operation: on the stack of the thread running it. */
struct container_hold {
	const char *lxcpath;
	const char *name;
	struct container_hold *next;
};

static pthread_mutex_t container_holds_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t container_holds_changed = PTHREAD_COND_INITIALIZER;
static struct container_hold *container_holds;

static bool container_is_held(const char *lxcpath, const char *name)
{
	for (const struct container_hold *h = container_holds; h; h = h->next)
		if (strcmp(h->name, name) == 0 && strcmp(h->lxcpath, lxcpath) == 0)
			return true;
	return false;
}

/* Wait until no other operation is under way on lxcpath/name, then mark it
 * held by h; the strings must outlive the hold. */
static void container_hold(struct container_hold *h, const char *lxcpath, const char *name)
{
	*h = (struct container_hold){ .lxcpath = lxcpath, .name = name };
	pthread_mutex_lock(&container_holds_lock);
	while (container_is_held(lxcpath, name))
		pthread_cond_wait(&container_holds_changed, &container_holds_lock);
	h->next = container_holds;
	container_holds = h;
	pthread_mutex_unlock(&container_holds_lock);
}

static void container_release(struct container_hold *h)
{
	pthread_mutex_lock(&container_holds_lock);
	for (struct container_hold **p = &container_holds; *p; p = &(*p)->next) {
		if (*p == h) {
			*p = h->next;
			break;
		}
	}
	pthread_cond_broadcast(&container_holds_changed);
	pthread_mutex_unlock(&container_holds_lock);
}

static bool container_char_in(char c, const char *extra)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr(extra, c));
}

/* An LXC name: it becomes a directory name and part of LXC's paths. */
static bool container_valid_name(const char *name)
{
	size_t len;

	if (!name)
		return false;
	len = strlen(name);
	if (len == 0 || len > CONTAINER_NAME_MAX || !container_char_in(name[0], ""))
		return false;
	for (const char *c = name; *c; c++)
		if (!container_char_in(*c, "_.-"))
			return false;
	return true;
}

/* A path: absolute or relative, [A-Za-z0-9_./@+-], no "." or ".." component. */
static bool container_valid_path(const char *path, bool absolute)
{
	size_t len;
	const char *component;

	if (!path)
		return false;
	len = strlen(path);
	if (len == 0 || len >= PATH_MAX || (path[0] == '/') != absolute)
		return false;
	for (const char *c = path; *c; c++)
		if (!container_char_in(*c, "_./@+-"))
			return false;
	component = path;
	while (*component) {
		size_t clen = strcspn(component, "/");

		if ((clen == 1 && component[0] == '.') ||
		    (clen == 2 && component[0] == '.' && component[1] == '.'))
			return false;
		component += clen;
		while (*component == '/')
			component++;
	}
	return true;
}

/* A host name: dot-separated labels of [A-Za-z0-9-], not starting or ending in '-'. */
static bool container_valid_hostname(const char *name)
{
	size_t len, label = 0;

	if (!name)
		return false;
	len = strlen(name);
	if (len == 0 || len > 63)
		return false;
	for (size_t i = 0; i <= len; i++) {
		char c = name[i];

		if (c == '.' || c == '\0') {
			if (label == 0 || name[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!container_char_in(c, "-") || (label == 0 && c == '-'))
			return false;
		label++;
	}
	return true;
}

static bool container_valid_options(const char *options)
{
	if (!options || !*options || strlen(options) > 256)
		return false;
	for (const char *c = options; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || strchr(",=_-", *c)))
			return false;
	return true;
}

/* "c|b MAJOR|*:MINOR|* [rwm]+" */
static bool container_valid_device_rule(const char *rule)
{
	const char *p = rule;

	if (!rule || (p[0] != 'c' && p[0] != 'b') || p[1] != ' ')
		return false;
	p += 2;
	for (int part = 0; part < 2; part++) {
		if (*p == '*') {
			p++;
		} else {
			size_t digits = strspn(p, "0123456789");

			if (digits == 0 || digits > 10)
				return false;
			p += digits;
		}
		if (*p++ != (part == 0 ? ':' : ' '))
			return false;
	}
	if (*p == '\0' || strspn(p, "rwm") != strlen(p))
		return false;
	return true;
}

static int container_check_spec(const struct container_spec *spec, uint32_t *address,
				uint32_t *gateway)
{
	uint32_t mask;

	if (!spec)
		return -EINVAL;
	if (!container_valid_name(spec->name))
		return log_error_errno(-EINVAL, EINVAL, "Container name is not valid");
	if (!container_valid_path(spec->lxcpath, true))
		return log_error_errno(-EINVAL, EINVAL, "LXC path of %s is not valid", spec->name);
	if (!container_valid_path(spec->rootfs, true))
		return log_error_errno(-EINVAL, EINVAL, "Root file system path of %s is not valid",
				       spec->name);
	if (spec->logfile && !container_valid_path(spec->logfile, true))
		return log_error_errno(-EINVAL, EINVAL, "Log file path of %s is not valid", spec->name);
	if (!container_valid_hostname(spec->hostname))
		return log_error_errno(-EINVAL, EINVAL, "Host name of %s is not valid", spec->name);
	if (spec->subid_base == 0 || spec->subid_base > UINT32_MAX - SUBID_COUNT + 1)
		return log_error_errno(-EINVAL, EINVAL, "Subordinate id base of %s is not valid",
				       spec->name);
	if (!network_valid_ifname(spec->bridge))
		return log_error_errno(-EINVAL, EINVAL, "Bridge name of %s is not valid", spec->name);
	if (spec->prefix < 8 || spec->prefix > 30)
		return log_error_errno(-EINVAL, EINVAL, "Prefix /%u of %s is not 8..30", spec->prefix,
				       spec->name);
	if (network_parse_address(spec->address, address) < 0 ||
	    network_parse_address(spec->gateway, gateway) < 0)
		return log_error_errno(-EINVAL, EINVAL, "Address or gateway of %s is not IPv4",
				       spec->name);
	mask = UINT32_MAX << (32 - spec->prefix);
	if ((*address & mask) != (*gateway & mask) || *address == *gateway ||
	    (*address & ~mask) == 0 || (*address & ~mask) == ~mask ||
	    (*gateway & ~mask) == 0 || (*gateway & ~mask) == ~mask)
		return log_error_errno(-EINVAL, EINVAL,
				       "Address and gateway of %s are not two hosts of one subnet",
				       spec->name);
	if (spec->nmounts && !spec->mounts)
		return -EINVAL;
	for (size_t i = 0; i < spec->nmounts; i++) {
		const struct container_mount *m = &spec->mounts[i];

		bool tmpfs = m->fstype && strcmp(m->fstype, "tmpfs") == 0;

		if ((m->fstype && !tmpfs) ||
		    !(tmpfs ? strcmp(m->source, "tmpfs") == 0 : container_valid_path(m->source, true)) ||
		    !container_valid_path(m->target, false) || !container_valid_options(m->options))
			return log_error_errno(-EINVAL, EINVAL, "Mount %zu of %s is not valid", i,
					       spec->name);
	}
	for (size_t i = 0; spec->devices && spec->devices[i]; i++)
		if (!container_valid_device_rule(spec->devices[i]))
			return log_error_errno(-EINVAL, EINVAL, "Device rule %zu of %s is not valid",
					       i, spec->name);
	return 0;
}

static void container_format_address(uint32_t address, char buf[static INET_ADDRSTRLEN])
{
	struct in_addr in = { .s_addr = htonl(address) };

	inet_ntop(AF_INET, &in, buf, INET_ADDRSTRLEN);
}

static void container_render_identity(FILE *f, const struct container_spec *spec)
{
	fprintf(f, "# Generated by gpuboxd at every start: changes here are lost.\n"
		   "lxc.include = /usr/share/lxc/config/common.conf\n"
		   "lxc.include = /usr/share/lxc/config/userns.conf\n"
		   "lxc.uts.name = %s\n"
		   "lxc.rootfs.path = dir:%s\n"
		   "lxc.idmap = u 0 %u %u\n"
		   "lxc.idmap = g 0 %u %u\n",
		spec->hostname, spec->rootfs, spec->subid_base, SUBID_COUNT, spec->subid_base,
		SUBID_COUNT);
}

static void container_render_network(FILE *f, const struct container_spec *spec,
				     uint32_t address, uint32_t gateway)
{
	char address_text[INET_ADDRSTRLEN], gateway_text[INET_ADDRSTRLEN];
	char veth[NETWORK_IFNAME_MAX];
	uint8_t mac[6];

	container_format_address(address, address_text);
	container_format_address(gateway, gateway_text);
	/* The MAC and the host-side veth name come from the address, unique in
	 * the subnet: stable across restarts, never shared by two members, and
	 * the same the bridge's anti-spoofing rules hold the port to. */
	network_veth_name(address, veth);
	network_member_mac(address, mac);
	fprintf(f, "lxc.net.0.type = veth\n"
		   "lxc.net.0.link = %s\n"
		   "lxc.net.0.flags = up\n"
		   "lxc.net.0.name = eth0\n"
		   "lxc.net.0.veth.pair = %s\n"
		   "lxc.net.0.hwaddr = %02x:%02x:%02x:%02x:%02x:%02x\n"
		   "lxc.net.0.ipv4.address = %s/%u\n"
		   "lxc.net.0.ipv4.gateway = %s\n",
		spec->bridge, veth, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5],
		address_text, spec->prefix, gateway_text);
}

/* LXC's generated AppArmor profile either way (on hosts without AppArmor
 * LXC skips it).  Nesting is what Incus' security.nesting and LXC's
 * nesting.conf give: the profile's nesting rules (mount, pivot_root, a
 * stacked profile for nested containers) and, from allow_nesting too,
 * LXC's pure proc and sysfs at /dev/.lxc/{proc,sys} (which the profile
 * denies to the container's users), without which the kernel refuses a
 * nested container its own /proc.  The container stays unprivileged with
 * the same id map: the user namespace is the boundary. */
static void container_render_confinement(FILE *f, const struct container_spec *spec)
{
	fprintf(f, "lxc.apparmor.profile = generated\n"
		   "lxc.apparmor.allow_nesting = %d\n"
		   "lxc.mount.auto = proc:mixed sys:mixed cgroup:mixed\n",
		spec->nesting ? 1 : 0);
}

static void container_render_devices(FILE *f, const struct container_spec *spec)
{
	/* userns.conf empties the device rules (an unprivileged user could not
	 * set them); the agent is root and can.  With devices to grant, the
	 * container gets common.conf's list back, then those devices. */
	if (spec->devices && spec->devices[0]) {
		static const char *const standard[] = {
			"c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 5:0 rwm",
			"c 5:1 rwm", "c 5:2 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 136:* rwm",
			"c 10:229 rwm", "c 10:200 rwm",
		};
		const char *key = spec->cgroup_v1 ? "lxc.cgroup" : "lxc.cgroup2";

		fprintf(f, "%s.devices.deny = a\n", key);
		for (size_t i = 0; i < ARRAY_SIZE(standard); i++)
			fprintf(f, "%s.devices.allow = %s\n", key, standard[i]);
	}
	for (size_t i = 0; spec->devices && spec->devices[i]; i++)
		fprintf(f, "lxc.cgroup%s.devices.allow = %s\n", spec->cgroup_v1 ? "" : "2",
			spec->devices[i]);
}

static void container_render_mounts(FILE *f, const struct container_spec *spec)
{
	for (size_t i = 0; i < spec->nmounts; i++)
		fprintf(f, "lxc.mount.entry = %s %s %s %s 0 0\n", spec->mounts[i].source,
			spec->mounts[i].target, spec->mounts[i].fstype ? spec->mounts[i].fstype : "none",
			spec->mounts[i].options);
}

static void container_render_log(FILE *f, const struct container_spec *spec)
{
	if (spec->logfile)
		fprintf(f, "lxc.log.file = %s\n", spec->logfile);
	else
		fprintf(f, "lxc.log.file = %s/%s/lxc.log\n", spec->lxcpath, spec->name);
	fprintf(f, "lxc.log.level = WARN\n");
}

char *container_render_config(const struct container_spec *spec)
{
	__do_free char *text = NULL;
	uint32_t address, gateway;
	size_t size = 0;
	FILE *f;

	if (container_check_spec(spec, &address, &gateway) < 0) {
		errno = EINVAL;
		return NULL;
	}
	f = open_memstream(&text, &size);
	if (!f)
		return NULL;
	container_render_identity(f, spec);
	container_render_network(f, spec, address, gateway);
	/* The agent's lowered OOM score is not the container's (main.c);
	 * systemd halts cleanly on SIGRTMIN+3, LXC's default SIGPWR is ignored. */
	fprintf(f, "lxc.proc.oom_score_adj = 0\n"
		   "lxc.signal.halt = SIGRTMIN+3\n");
	container_render_confinement(f, spec);
	container_render_devices(f, spec);
	if (spec->limits)
		cgroup_render_items(f, spec->limits);
	container_render_mounts(f, spec);
	container_render_log(f, spec);
	if (!memstream_close(f))
		return NULL;
	return move_ptr(text);
}

static off_t container_file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_size : 0;
}

/* The lines LXC logged since offset (at most the last CONTAINER_LOG_TAIL bytes). */
static void container_log_tail(const char *name, const char *logfile, off_t offset)
{
	char buf[CONTAINER_LOG_TAIL + 1];
	__do_close int fd = -EBADF;
	off_t size = container_file_size(logfile);
	ssize_t n;
	char *line, *save = NULL;

	if (size <= offset)
		return;
	if (size - offset > CONTAINER_LOG_TAIL)
		offset = size - CONTAINER_LOG_TAIL;
	fd = open(logfile, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return;
	n = pread(fd, buf, CONTAINER_LOG_TAIL, offset);
	if (n <= 0)
		return;
	buf[n] = '\0';
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		log_error("%s: lxc: %s", name, line);
}

/* LXC's start waits in the calling process until the monitor reports the
 * container RUNNING (its whole setup).  It runs in a child of the agent,
 * forked under the liblxc lock (no other thread is inside liblxc then),
 * so that the lock is let go at once and only this start waits.  *child:
 * the child's pid, 0 when the container runs already. */
static int container_start_locked(const struct container_spec *spec, const char *config_path,
				  pid_t *child)
{
	__do_lxc_put struct lxc_container *c = NULL;

	*child = 0;
	c = lxc_container_new(spec->name, spec->lxcpath);
	if (!c)
		return log_error_errno(-ENOMEM, ENOMEM, "Could not create the LXC handle of %s",
				       spec->name);
	if (c->is_running(c))
		return 0;
	/* lxc_container_new() loaded the previous file, if any; loading on top
	 * of it would add its lists (idmaps, mounts) twice. */
	c->clear_config(c);
	if (!c->load_config(c, config_path))
		return log_error_errno(-EINVAL, EINVAL, "LXC could not load the configuration of %s",
				       spec->name);
	c->want_daemonize(c, true);
	/* The agent's sockets and files must not live on in LXC's monitor. */
	c->want_close_all_fds(c, true);
	*child = fork();
	if (*child < 0)
		return log_error_errno(-errno, errno, "Could not fork to start %s", spec->name);
	if (*child == 0)
		_exit(c->start(c, 0, NULL) ? 0 : 1);
	return 0;
}

/* The child's LXC start, bounded: a start that hangs (LXC's own wait on
 * its monitor never answered, seen with several big templates starting
 * at once on a loaded machine) would keep the member's hold, and with it
 * every later call for that member, for ever.  Past the start timeout
 * the child is killed; what LXC set up meanwhile is left to the member's
 * stop (a stop through a monitor that does not answer could hang too). */
static int container_start_wait(const struct container_spec *spec, pid_t child)
{
	__do_close int pidfd = pidfd_open(child, 0);
	int status, ret = 0;

	if (pidfd >= 0) {
		ret = container_signal_wait(pidfd, 0, CONTAINER_START_TIMEOUT * 1000);
		if (ret == -ETIMEDOUT) {
			log_error("%s: LXC's start did not return in %u s: ended", spec->name,
				  CONTAINER_START_TIMEOUT);
			pidfd_send_signal(pidfd, SIGKILL, NULL, 0);
		}
	}
	while (waitpid(child, &status, 0) < 0) {
		if (errno != EINTR)
			return log_error_errno(-errno, errno, "Could not wait for the start of %s",
					       spec->name);
	}
	if (ret == -ETIMEDOUT)
		return -ETIMEDOUT;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return log_error_errno(-EIO, EIO, "LXC could not start %s", spec->name);
	return 0;
}

/* Wait until LXC reports the container in state want, holding the liblxc
 * lock only while asking: 0, or -ETIMEDOUT. */
static int container_wait_state(const char *lxcpath, const char *name,
				enum container_state want, unsigned timeout_s)
{
	long long deadline = container_now_ms() + (long long)timeout_s * 1000;

	for (;;) {
		long long left;

		if (container_get_state(lxcpath, name) == want)
			return 0;
		left = deadline - container_now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		poll(NULL, 0, left < CONTAINER_STATE_POLL_MS ? (int)left : CONTAINER_STATE_POLL_MS);
	}
}

static int container_start_held(const struct container_spec *spec, const char *dir,
				const char *config_path, const char *config)
{
	pid_t child;
	int ret;

	ret = fsutil_mkdir_p(dir, 0755);
	if (ret < 0)
		return log_error_errno(ret, -ret, "Could not create %s", dir);
	ret = fsutil_write_atomic(config_path, config, strlen(config), 0644);
	if (ret < 0)
		return log_error_errno(ret, -ret, "Could not write %s", config_path);
	pthread_mutex_lock(&container_lxc_lock);
	ret = container_start_locked(spec, config_path, &child);
	pthread_mutex_unlock(&container_lxc_lock);
	if (ret == 0 && child > 0)
		ret = container_start_wait(spec, child);
	if (ret < 0)
		return ret;
	if (container_wait_state(spec->lxcpath, spec->name, CONTAINER_RUNNING,
				 CONTAINER_START_TIMEOUT) < 0)
		return log_error_errno(-ETIMEDOUT, ETIMEDOUT, "%s did not reach RUNNING in %u s",
				       spec->name, CONTAINER_START_TIMEOUT);
	return 0;
}

int container_start(const struct container_spec *spec)
{
	__do_free char *config = NULL;
	char dir[PATH_MAX], config_path[PATH_MAX], logfile[PATH_MAX];
	struct container_hold hold;
	off_t log_offset;
	int ret;

	config = container_render_config(spec);
	if (!config)
		return -errno;
	if (snprintf(dir, sizeof(dir), "%s/%s", spec->lxcpath, spec->name) >= (int)sizeof(dir) ||
	    snprintf(config_path, sizeof(config_path), "%s/config", dir) >= (int)sizeof(config_path) ||
	    snprintf(logfile, sizeof(logfile), "%s", spec->logfile ? spec->logfile : "") >=
		    (int)sizeof(logfile))
		return -ENAMETOOLONG;
	if (!spec->logfile &&
	    snprintf(logfile, sizeof(logfile), "%s/lxc.log", dir) >= (int)sizeof(logfile))
		return -ENAMETOOLONG;

	log_offset = container_file_size(logfile);
	container_hold(&hold, spec->lxcpath, spec->name);
	ret = container_start_held(spec, dir, config_path, config);
	container_release(&hold);
	if (ret < 0)
		container_log_tail(spec->name, logfile, log_offset);
	return ret;
}

static bool container_config_exists(const char *lxcpath, const char *name)
{
	char path[PATH_MAX];

	if (snprintf(path, sizeof(path), "%s/%s/config", lxcpath, name) >= (int)sizeof(path))
		return false;
	return fsutil_exists(path);
}

/* The init of a running container as a pidfd, from LXC's monitor, which
 * is its parent: no race with a pid used again.  -ESRCH: it does not run. */
static int container_init_pidfd(const char *lxcpath, const char *name)
{
	__do_lxc_close struct lxc_container *c = container_open(lxcpath, name);
	int pidfd;
	pid_t pid;

	if (!c)
		return log_error_errno(-ENOMEM, ENOMEM, "Could not create the LXC handle of %s", name);
	if (!c->is_running(c))
		return -ESRCH;
	pidfd = c->init_pidfd(c);
	if (pidfd >= 0)
		return pidfd;
	/* A monitor without a pidfd of its own: the pid it reports names the
	 * container's init as long as the container runs. */
	pid = c->init_pid(c);
	if (pid <= 0)
		return -ESRCH;
	pidfd = pidfd_open(pid, 0);
	if (pidfd < 0)
		return log_error_errno(-errno, errno, "Could not open the init of %s", name);
	return pidfd;
}

int container_signal_wait(int pidfd, int signal, unsigned timeout_ms)
{
	long long deadline = container_now_ms() + timeout_ms;
	struct pollfd pfd = { .fd = pidfd, .events = POLLIN };

	if (signal && pidfd_send_signal(pidfd, signal, NULL, 0) < 0)
		return errno == ESRCH ? 0 : -errno;
	for (;;) {
		long long left = deadline - container_now_ms();
		int ret;

		ret = poll(&pfd, 1, left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left);
		if (ret > 0)
			return 0;
		if (ret < 0 && errno != EINTR)
			return -errno;
		if (ret == 0 && left <= 0)
			return -ETIMEDOUT;
	}
}

/* SIGKILL through LXC, which also thaws a frozen container first. */
static int container_kill(const char *lxcpath, const char *name)
{
	__do_lxc_close struct lxc_container *c = container_open(lxcpath, name);

	if (!c)
		return log_error_errno(-ENOMEM, ENOMEM, "Could not create the LXC handle of %s", name);
	if (!c->stop(c) && c->is_running(c))
		return log_error_errno(-EIO, EIO, "LXC could not stop %s", name);
	return 0;
}

/* The halt signal, then the wait for init to end, hold no lock that
 * another container's operation needs: that wait is the member's. */
static int container_stop_held(const char *lxcpath, const char *name, unsigned timeout)
{
	__do_close int pidfd = -EBADF;
	int ret;

	pidfd = container_init_pidfd(lxcpath, name);
	if (pidfd == -ESRCH)
		return 0;
	if (pidfd < 0)
		return pidfd;
	ret = container_signal_wait(pidfd, CONTAINER_HALT_SIGNAL,
				    timeout > UINT_MAX / 1000 ? UINT_MAX : timeout * 1000);
	if (ret == -ETIMEDOUT) {
		log_warn("%s did not shut down in %u s; stopping it", name, timeout);
		ret = container_kill(lxcpath, name);
		if (ret == 0)
			ret = container_signal_wait(pidfd, 0, CONTAINER_KILL_TIMEOUT * 1000);
	}
	if (ret < 0)
		return log_error_errno(ret, -ret, "%s did not stop", name);
	/* Its init has ended; the monitor cleans up (network, cgroups) and
	 * then reports STOPPED. */
	if (container_wait_state(lxcpath, name, CONTAINER_STOPPED, CONTAINER_KILL_TIMEOUT) < 0)
		return log_error_errno(-ETIMEDOUT, ETIMEDOUT, "%s did not stop", name);
	return 0;
}

int container_stop(const char *lxcpath, const char *name, unsigned timeout)
{
	struct container_hold hold;
	int ret;

	if (!container_valid_path(lxcpath, true) || !container_valid_name(name))
		return -EINVAL;
	if (!container_config_exists(lxcpath, name))
		return 0;
	container_hold(&hold, lxcpath, name);
	ret = container_stop_held(lxcpath, name, timeout);
	container_release(&hold);
	return ret;
}

/* Freezing waits, without a limit, until every process of the container
 * is frozen, which the member can put off: like every call on a handle,
 * outside the liblxc lock (LXD's go-lxc calls liblxc on different
 * containers at once the same way, with a lock per container only). */
static int container_freeze_held(const char *lxcpath, const char *name, bool freeze)
{
	__do_lxc_close struct lxc_container *c = container_open(lxcpath, name);

	if (!c)
		return -ENOENT;
	return (freeze ? c->freeze(c) : c->unfreeze(c)) ? 0 : -EIO;
}

int container_freeze(const char *lxcpath, const char *name, bool freeze)
{
	struct container_hold hold;
	int ret;

	if (!container_valid_path(lxcpath, true) || !container_valid_name(name))
		return -EINVAL;
	container_hold(&hold, lxcpath, name);
	ret = container_freeze_held(lxcpath, name, freeze);
	container_release(&hold);
	return ret;
}

static enum container_state container_get_state_of(const char *lxcpath, const char *name)
{
	__do_lxc_close struct lxc_container *c = container_open(lxcpath, name);
	const char *state;

	if (!c)
		return CONTAINER_STOPPED;
	state = c->state(c);
	if (!state)
		return CONTAINER_STOPPED;
	if (!strcmp(state, "RUNNING") || !strcmp(state, "FROZEN") || !strcmp(state, "FREEZING") ||
	    !strcmp(state, "THAWED"))
		return CONTAINER_RUNNING;
	if (!strcmp(state, "STARTING"))
		return CONTAINER_STARTING;
	if (!strcmp(state, "STOPPING") || !strcmp(state, "ABORTING"))
		return CONTAINER_STOPPING;
	return CONTAINER_STOPPED;
}

enum container_state container_get_state(const char *lxcpath, const char *name)
{
	if (!container_valid_path(lxcpath, true) || !container_valid_name(name) ||
	    !container_config_exists(lxcpath, name))
		return CONTAINER_ABSENT;
	return container_get_state_of(lxcpath, name);
}

const char *container_state_name(enum container_state state)
{
	switch (state) {
	case CONTAINER_STOPPED:  return "stopped";
	case CONTAINER_STARTING: return "starting";
	case CONTAINER_RUNNING:  return "running";
	case CONTAINER_STOPPING: return "stopping";
	case CONTAINER_ABSENT:   return "absent";
	}
	return "unknown";
}

static int container_poll_ms(long long deadline)
{
	long long left = deadline - container_now_ms();

	if (left <= 0)
		return 0;
	return left > 1000 ? 1000 : (int)left;
}

/* One attempt: connect and read the first bytes.  1: an SSH banner, 0: not (yet). */
static int container_try_ssh(const struct sockaddr_in *sa, long long deadline)
{
	__do_close int fd = -EBADF;
	struct pollfd pfd;
	char banner[8];
	size_t got = 0;
	int err = 0;
	socklen_t errlen = sizeof(err);

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 && errno != EINPROGRESS)
		return 0;
	pfd = (struct pollfd){ .fd = fd, .events = POLLOUT };
	if (poll(&pfd, 1, container_poll_ms(deadline)) <= 0)
		return 0;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) < 0 || err)
		return 0;

	/* sshd sends "SSH-2.0-..." first; a listener that is not yet sshd
	 * (or a half-started one that closes) is not success. */
	while (got < 4) {
		ssize_t n;
		int timeout = container_poll_ms(deadline);

		if (timeout <= 0)
			return 0;
		pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
		if (poll(&pfd, 1, timeout) <= 0)
			continue;
		n = read(fd, banner + got, 4 - got);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0)
			return 0;
		got += (size_t)n;
	}
	return memcmp(banner, "SSH-", 4) == 0;
}

int container_wait_ssh(const char *address, uint16_t port, unsigned timeout,
		       struct progress *progress)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	long long start = container_now_ms();
	long long deadline = start + (long long)timeout * 1000;
	long long next_say = start + 5000;

	if (!address || port == 0 || inet_pton(AF_INET, address, &sa.sin_addr) != 1)
		return -EINVAL;

	for (;;) {
		int ret = container_try_ssh(&sa, deadline);
		long long now;

		if (ret < 0)
			return log_error_errno(ret, -ret, "Could not create a socket");
		if (ret > 0)
			return 0;
		now = container_now_ms();
		if (now >= deadline)
			return -ETIMEDOUT;
		if (now >= next_say) {
			progress_say(progress, "Waiting for the SSH server at %s:%u (%lld s)", address,
				     port, (now - start) / 1000);
			next_say = now + 5000;
		}
		/* Short: a container's sshd comes up within a second, and each
		 * step here is time the member waits after it is up. */
		poll(NULL, 0, deadline - now < CONTAINER_SSH_POLL_MS ? (int)(deadline - now) :
		     CONTAINER_SSH_POLL_MS);
	}
}

static int container_init_pid_of(const char *lxcpath, const char *name, pid_t *pid)
{
	__do_lxc_close struct lxc_container *c = container_open(lxcpath, name);

	if (!c)
		return -ENOMEM;
	if (!c->is_running(c))
		return -ESRCH;
	*pid = c->init_pid(c);
	return *pid > 0 ? 0 : -ESRCH;
}

int container_init_pid(const char *lxcpath, const char *name, pid_t *pid)
{
	if (!container_valid_path(lxcpath, true) || !container_valid_name(name))
		return -EINVAL;
	if (!container_config_exists(lxcpath, name))
		return -ESRCH;
	return container_init_pid_of(lxcpath, name, pid);
}

/* Write rule to devices.allow or devices.deny of dir and, for allow, of
 * every cgroup below it (a v1 child keeps the rules it was made with). */
static int container_v1_rule(const char *dir, const char *rule, bool allow, int depth)
{
	__do_closedir DIR *d = NULL;
	__do_close int fd = -EBADF;
	char path[PATH_MAX];
	struct dirent *e;

	if (snprintf(path, sizeof(path), "%s/%s", dir, allow ? "devices.allow" : "devices.deny") >=
	    (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fsutil_write_all(fd, rule, strlen(rule)) < 0)
		return log_error_errno(-errno, errno, "cannot write %s", path);
	if (!allow || depth > 8)
		return 0;
	d = opendir(dir);
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		if (e->d_type != DT_DIR || e->d_name[0] == '.' ||
		    snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= (int)sizeof(path))
			continue;
		/* A cgroup the container made may refuse what its parent allows. */
		container_v1_rule(path, rule, allow, depth + 1);
	}
	return 0;
}

/* The container's own cgroup in the v1 devices hierarchy, from its init's
 * /proc/PID/cgroup: the path up to and including the "lxc.payload." part. */
static int container_v1_devices_dir(pid_t pid, char *out, size_t len)
{
	__do_free char *text = NULL;
	char path[64];
	size_t size = 0;
	const char *line;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	if (fsutil_read_file(path, 65536, &text, &size) < 0)
		return -ESRCH;
	for (line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		const char *c = strstr(line, ":devices:");
		const char *end, *payload, *cut;

		if (!c || (strchr(line, '\n') && c > strchr(line, '\n')))
			continue;
		c += strlen(":devices:");
		end = strchr(c, '\n');
		if (!end)
			end = c + strlen(c);
		payload = strstr(c, "/lxc.payload.");
		if (!payload || payload > end)
			return -ENOENT;
		cut = strchr(payload + 1, '/');
		if (!cut || cut > end)
			cut = end;
		if (snprintf(out, len, "/sys/fs/cgroup/devices%.*s", (int)(cut - c), c) >= (int)len)
			return -ENAMETOOLONG;
		if (strstr(out, "/../") || strstr(out, "/./"))
			return -EINVAL;
		return 0;
	}
	return -ENOENT;
}

/* cgroup v2: through LXC's monitor, which holds the device program. */
static int container_device_rule_v2(const char *lxcpath, const char *name, const char *rule,
				    bool allow)
{
	__do_lxc_close struct lxc_container *c = container_open(lxcpath, name);

	if (!c)
		return -ENOMEM;
	if (!c->is_running(c))
		return -ESRCH;
	if (!c->set_cgroup_item(c, allow ? "devices.allow" : "devices.deny", rule))
		return log_error_errno(-EIO, 0, "LXC could not %s %s in %s", allow ? "allow" : "deny",
				       rule, name);
	return 0;
}

/* cgroup v1: the files of the container's cgroup and of those it made
 * below, as many as the member likes: written outside the liblxc lock.
 * The cgroup is init's, checked to be the container's own (a pid the
 * caller found a moment ago may have been used again since). */
static int container_device_rule_v1(const char *name, pid_t init, const char *rule, bool allow)
{
	char dir[PATH_MAX];
	const char *own;
	int ret;

	ret = container_v1_devices_dir(init, dir, sizeof(dir));
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot find the device cgroup of %s", name);
	own = strrchr(dir, '/');
	if (!own || strncmp(own + 1, "lxc.payload.", 12) != 0 || strcmp(own + 13, name) != 0)
		return log_error_errno(-ESRCH, 0, "process %d is no longer the init of %s", (int)init, name);
	return container_v1_rule(dir, rule, allow, 0);
}

int container_device_rule(const char *lxcpath, const char *name, pid_t init, const char *rule,
			  bool allow)
{
	struct container_hold hold;
	struct statfs sf;
	int ret;

	if (!container_valid_path(lxcpath, true) || !container_valid_name(name) ||
	    !container_valid_device_rule(rule))
		return -EINVAL;
	container_hold(&hold, lxcpath, name);
	if (statfs("/sys/fs/cgroup", &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC) {
		ret = container_device_rule_v2(lxcpath, name, rule, allow);
	} else {
		ret = container_device_rule_v1(name, init, rule, allow);
	}
	container_release(&hold);
	return ret;
}
