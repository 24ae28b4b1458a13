/* SPDX-License-Identifier: MIT */
/*
 * The LXC configuration text, refusals of anything that could inject a
 * line or a key, states of absent containers, and container_wait_ssh()
 * against local listeners.  Starting a real container is a system test.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <sys/sysmacros.h>

#include <lxc/lxccontainer.h>

#include "container/container.h"
#include "net/net.h"
#include "progress.h"
#include "cleanup.h"
#include "config.h"
#include "fsutil.h"
#include "testutil.h"

#include "banned.h"

static struct container_spec test_spec(void)
{
	return (struct container_spec){
		.name = "alice",
		.lxcpath = "/var/lib/gpubox/lxc",
		.rootfs = "/var/lib/gpubox/users/alice/rootfs",
		.hostname = "gpu17-alice",
		.subid_base = 131072,
		.address = "10.77.0.2",
		.prefix = 16,
		.gateway = "10.77.0.1",
		.bridge = "gpbr0",
		.logfile = "/var/log/gpubox/alice.log",
	};
}

static void expect_line(const char *text, const char *line)
{
	char want[512];

	snprintf(want, sizeof(want), "\n%s\n", line);
	if (!strstr(text, want))
		fail_msg("missing line \"%s\" in:\n%s", line, text);
}

static void test_render(void **state)
{
	struct container_spec spec = test_spec();
	__do_free char *text = container_render_config(&spec);

	assert_non_null(text);
	expect_line(text, "lxc.include = /usr/share/lxc/config/common.conf");
	expect_line(text, "lxc.include = /usr/share/lxc/config/userns.conf");
	expect_line(text, "lxc.uts.name = gpu17-alice");
	expect_line(text, "lxc.rootfs.path = dir:/var/lib/gpubox/users/alice/rootfs");
	expect_line(text, "lxc.idmap = u 0 131072 65536");
	expect_line(text, "lxc.idmap = g 0 131072 65536");
	expect_line(text, "lxc.net.0.type = veth");
	expect_line(text, "lxc.net.0.link = gpbr0");
	expect_line(text, "lxc.net.0.flags = up");
	expect_line(text, "lxc.net.0.name = eth0");
	expect_line(text, "lxc.net.0.veth.pair = " NETWORK_VETH_PREFIX "0a4d0002");
	expect_line(text, "lxc.net.0.hwaddr = 00:16:3e:4d:00:02");
	expect_line(text, "lxc.net.0.ipv4.address = 10.77.0.2/16");
	expect_line(text, "lxc.net.0.ipv4.gateway = 10.77.0.1");
	expect_line(text, "lxc.apparmor.profile = generated");
	expect_line(text, "lxc.apparmor.allow_nesting = 0");
	expect_line(text, "lxc.mount.auto = proc:mixed sys:mixed cgroup:mixed");
	expect_line(text, "lxc.log.file = /var/log/gpubox/alice.log");
	expect_line(text, "lxc.log.level = WARN");
	assert_null(strstr(text, "lxc.mount.entry"));
	assert_null(strstr(text, "devices.allow"));
	/* Every line a comment or "key = value". */
	for (const char *line = text; *line; line = strchr(line, '\n') + 1) {
		assert_true(line[0] == '#' || !strncmp(line, "lxc.", 4));
		assert_non_null(strchr(line, '\n'));
	}
}

static void test_render_deterministic(void **state)
{
	struct container_spec spec = test_spec();
	__do_free char *one = container_render_config(&spec);
	__do_free char *two = container_render_config(&spec);
	__do_free char *other = NULL;

	assert_non_null(one);
	assert_non_null(two);
	assert_string_equal(one, two);

	/* Another member, another MAC and veth. */
	spec.name = "bob";
	spec.address = "10.77.1.3";
	other = container_render_config(&spec);
	assert_non_null(other);
	expect_line(other, "lxc.net.0.hwaddr = 00:16:3e:4d:01:03");
	expect_line(other, "lxc.net.0.veth.pair = " NETWORK_VETH_PREFIX "0a4d0103");
}

static void test_render_defaults_and_extras(void **state)
{
	static const struct container_mount mounts[] = {
		{ "/dev/nvidia0", "dev/nvidia0", "bind,optional,create=file", NULL },
		{ "/usr/local/nvidia/lib64", "usr/local/nvidia/lib64", "rbind,ro,nosuid,nodev,create=dir", NULL },
		{ "tmpfs", "proc/driver", "nosuid,nodev,mode=755", "tmpfs" },
	};
	static const char *const devices[] = { "c 195:* rwm", "c 507:0 rw", NULL };
	struct container_spec spec = test_spec();
	__do_free char *text = NULL;

	spec.logfile = NULL;
	spec.mounts = mounts;
	spec.nmounts = ARRAY_SIZE(mounts);
	spec.devices = devices;
	text = container_render_config(&spec);
	assert_non_null(text);
	expect_line(text, "lxc.log.file = /var/lib/gpubox/lxc/alice/lxc.log");
	expect_line(text, "lxc.mount.entry = /dev/nvidia0 dev/nvidia0 none bind,optional,create=file 0 0");
	expect_line(text, "lxc.mount.entry = /usr/local/nvidia/lib64 usr/local/nvidia/lib64 none rbind,ro,nosuid,nodev,create=dir 0 0");
	expect_line(text, "lxc.cgroup2.devices.allow = c 195:* rwm");
	expect_line(text, "lxc.cgroup2.devices.allow = c 507:0 rw");
	expect_line(text, "lxc.mount.entry = tmpfs proc/driver tmpfs nosuid,nodev,mode=755 0 0");
	spec.cgroup_v1 = true;
	free(text);
	text = container_render_config(&spec);
	assert_non_null(text);
	expect_line(text, "lxc.cgroup.devices.allow = c 195:* rwm");
}

/* The config item key of the container whose config file is path, as
 * liblxc reads it (the parser is the same on every host: with AppArmor
 * it makes the generated profile's nesting rules from these). */
static char *lxc_item(const char *dir, const char *path, const char *key)
{
	struct lxc_container *c = lxc_container_new("alice", dir);
	char *value = NULL;
	int len;

	assert_non_null(c);
	assert_true(c->load_config(c, path));
	len = c->get_config_item(c, key, NULL, 0);
	if (len > 0) {
		value = calloc(1, (size_t)len + 1);
		assert_non_null(value);
		c->get_config_item(c, key, value, len + 1);
	}
	lxc_container_put(c);
	return value;
}

/* Nesting on a cgroup v2 host with GPUs: the stores and /dev/fuse from
 * nesting_prepare(), LXC's nesting settings, /dev/fuse allowed. */
static void test_render_nesting(void **state)
{
	static const char *const devices[] = { "c 195:0 rwm", NULL };
	struct container_spec spec = test_spec();
	struct storage_paths paths;
	struct nesting_plan plan;
	__do_free char *text = NULL, *nesting = NULL, *profile = NULL, *entries = NULL;
	char dir[PATH_MAX], want[PATH_MAX * 2], conf[PATH_MAX];
	struct stat st;

	if (!tu_have_root("test_render_nesting"))
		return;
	assert_int_equal(tu_make_tempdir(dir, sizeof(dir), "/tmp/gpubox-test-nest-XXXXXX"), 0);
	assert_int_equal(storage_paths(dir, "alice", &paths), 0);
	assert_int_equal(fsutil_mkdir_p(paths.dir, 0710), 0);
	assert_int_equal(fsutil_mkdir_p(paths.layer, 0710), 0);
	assert_int_equal(nesting_prepare(&paths, 131072, &plan), 0);
	assert_int_equal(nesting_prepare(&paths, 131072, &plan), 0);     /* again: the same */
	assert_int_equal(plan.n, 3);
	tu_assert_owner(paths.nested, "docker", 131072, 131072, 0711);
	tu_assert_owner(paths.nested, "containers", 131072, 131072, 0711);
	tu_join(conf, sizeof(conf), paths.dir, "fuse");
	assert_int_equal(lstat(conf, &st), 0);
	assert_true(S_ISCHR(st.st_mode) && st.st_rdev == makedev(10, 229));
	assert_int_equal(st.st_mode & 07777, 0666);

	spec.nesting = true;
	spec.mounts = plan.mounts;
	spec.nmounts = plan.n;
	spec.devices = devices;
	text = container_render_config(&spec);
	assert_non_null(text);
	expect_line(text, "lxc.apparmor.profile = generated");
	expect_line(text, "lxc.apparmor.allow_nesting = 1");
	expect_line(text, "lxc.mount.auto = proc:mixed sys:mixed cgroup:mixed");
	expect_line(text, "lxc.cgroup2.devices.allow = c 10:229 rwm");
	snprintf(want, sizeof(want), "lxc.mount.entry = %s/docker var/lib/docker none bind,create=dir 0 0",
		 paths.nested);
	expect_line(text, want);
	snprintf(want, sizeof(want), "lxc.mount.entry = %s/containers var/lib/containers none bind,create=dir 0 0",
		 paths.nested);
	expect_line(text, want);
	snprintf(want, sizeof(want), "lxc.mount.entry = %s/fuse dev/fuse none bind,nosuid,noexec,create=file 0 0",
		 paths.dir);
	expect_line(text, want);
	/* Still unprivileged, with the same map. */
	expect_line(text, "lxc.idmap = u 0 131072 65536");
	expect_line(text, "lxc.include = /usr/share/lxc/config/userns.conf");

	tu_join(conf, sizeof(conf), dir, "config");
	tu_write_file(dir, "config", text);
	nesting = lxc_item(dir, conf, "lxc.apparmor.allow_nesting");
	profile = lxc_item(dir, conf, "lxc.apparmor.profile");
	entries = lxc_item(dir, conf, "lxc.mount.entry");
	assert_non_null(nesting);
	assert_string_equal(nesting, "1");
	assert_non_null(profile);
	assert_string_equal(profile, "generated");
	assert_non_null(entries);
	assert_non_null(strstr(entries, " var/lib/docker none bind,create=dir"));

	/* nesting = no: LXC's default confinement, on cgroup v1 too. */
	free(text);
	spec.nesting = false;
	spec.cgroup_v1 = true;
	spec.mounts = NULL;
	spec.nmounts = 0;
	text = container_render_config(&spec);
	assert_non_null(text);
	expect_line(text, "lxc.apparmor.allow_nesting = 0");
	expect_line(text, "lxc.cgroup.devices.allow = c 10:229 rwm");
	assert_null(strstr(text, "var/lib/docker"));
	tu_remove_tempdir(dir);
}

static void expect_refused(const struct container_spec *spec, const char *what)
{
	char *text = container_render_config(spec);

	if (text) {
		free(text);
		fail_msg("accepted %s", what);
	}
	assert_int_equal(errno, EINVAL);
}

static void test_render_refuses(void **state)
{
	static const char *const names[] = {
		"", "alice\nlxc.idmap = u 0 0 65536", "a=b", "a b", "../x", "a/b", "-x", ".x",
		"alice\r", "x\"",
	};
	static const char *const paths[] = {
		"", "relative/path", "/a b", "/a\nlxc.include = /etc/evil", "/a=b", "/a/../b",
		"/a/./b", "/a:b", "/a#b", "/a\tb", "/a\\b", "/..",
	};
	static const char *const hostnames[] = {
		"", "-a", "a-", "a..b", ".a", "a.", "a_b", "a b", "a\nb",
		"0123456789012345678901234567890123456789012345678901234567890123",
	};
	static const char *const addresses[] = {
		"", "10.77.0", "10.77.0.2\n", "10.77.0.2/16", " 10.77.0.2", "10.78.0.2",
		"10.77.0.1" /* the gateway */, "10.77.0.0", "10.77.255.255", "::1",
	};
	static const char *const bad_options[] = {
		"", "bind ro", "bind\n", "bind,ro 0 0\nlxc.include = /x", "BIND", "bind;x",
	};
	static const char *const bad_devices[] = {
		"", "a 1:2 rwm", "c 1:2", "c 1:2 rwx", "c 1 rwm", "c :2 rwm", "c 1:2 rwm\n",
		"c 1:2  rwm", "c 1:2 rwm x", "c 12345678901:2 rwm", "c *:* rwm\nlxc.x = y",
	};
	struct container_spec spec;
	char what[160];

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		spec = test_spec();
		spec.name = names[i];
		expect_refused(&spec, "a bad name");
	}
	for (size_t i = 0; i < ARRAY_SIZE(paths); i++) {
		snprintf(what, sizeof(what), "path \"%s\"", paths[i]);
		spec = test_spec();
		spec.rootfs = paths[i];
		expect_refused(&spec, what);
		spec = test_spec();
		spec.lxcpath = paths[i];
		expect_refused(&spec, what);
		spec = test_spec();
		spec.logfile = paths[i];
		expect_refused(&spec, what);
	}
	for (size_t i = 0; i < ARRAY_SIZE(hostnames); i++) {
		spec = test_spec();
		spec.hostname = hostnames[i];
		expect_refused(&spec, hostnames[i]);
	}
	for (size_t i = 0; i < ARRAY_SIZE(addresses); i++) {
		spec = test_spec();
		spec.address = addresses[i];
		expect_refused(&spec, addresses[i]);
		spec = test_spec();
		if (strcmp(addresses[i], "10.77.0.1")) {
			spec.gateway = addresses[i];
			expect_refused(&spec, addresses[i]);
		}
	}
	spec = test_spec();
	spec.bridge = "gpbr0\nlxc.net.1.type = phys";
	expect_refused(&spec, "a bad bridge");
	spec = test_spec();
	spec.bridge = NULL;
	expect_refused(&spec, "no bridge");
	spec = test_spec();
	spec.prefix = 7;
	expect_refused(&spec, "prefix 7");
	spec.prefix = 31;
	expect_refused(&spec, "prefix 31");
	spec = test_spec();
	spec.subid_base = 0;
	expect_refused(&spec, "subid 0 (host root)");
	spec.subid_base = UINT32_MAX - 65534;
	expect_refused(&spec, "subid range past 2^32");

	for (size_t i = 0; i < ARRAY_SIZE(bad_options); i++) {
		struct container_mount m = { "/dev/nvidia0", "dev/nvidia0", bad_options[i], NULL };

		spec = test_spec();
		spec.mounts = &m;
		spec.nmounts = 1;
		expect_refused(&spec, "bad mount options");
		m.options = "bind";
		m.target = "/dev/nvidia0";
		expect_refused(&spec, "absolute mount target");
		m.target = "dev/../../etc";
		expect_refused(&spec, "mount target with ..");
		m.target = "dev/nvidia0";
		m.fstype = "ext4";
		expect_refused(&spec, "a file system type other than tmpfs");
		m.fstype = "tmpfs";
		expect_refused(&spec, "tmpfs with a path as source");
		m.fstype = NULL;
		m.source = "dev/nvidia0";
		expect_refused(&spec, "relative mount source");
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad_devices); i++) {
		const char *devices[] = { "c 195:* rwm", bad_devices[i], NULL };

		spec = test_spec();
		spec.devices = devices;
		expect_refused(&spec, bad_devices[i]);
	}
	expect_refused(NULL, "NULL");
}

static void test_state_absent(void **state)
{
	char dir[] = "/tmp/gpubox-test-lxc-XXXXXX";

	assert_non_null(mkdtemp(dir));
	assert_int_equal(container_get_state(dir, "nobody"), CONTAINER_ABSENT);
	assert_int_equal(container_stop(dir, "nobody", 1), 0);
	assert_int_equal(container_get_state(dir, "bad name"), CONTAINER_ABSENT);
	assert_int_equal(container_stop(dir, "bad/name", 1), -EINVAL);
	assert_string_equal(container_state_name(CONTAINER_RUNNING), "running");
	assert_string_equal(container_state_name(CONTAINER_ABSENT), "absent");
	assert_string_equal(container_state_name(CONTAINER_STOPPED), "stopped");
	assert_int_equal(rmdir(dir), 0);
}

/* A configured but never started container is STOPPED; stopping it is a no-op. */
static void test_state_stopped(void **state)
{
	char dir[] = "/tmp/gpubox-test-lxc-XXXXXX";
	char path[128];
	struct container_spec spec = test_spec();
	__do_free char *text = NULL;

	assert_non_null(mkdtemp(dir));
	spec.lxcpath = dir;
	text = container_render_config(&spec);
	assert_non_null(text);
	snprintf(path, sizeof(path), "%s/alice", dir);
	assert_int_equal(fsutil_mkdir_p(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/alice/config", dir);
	assert_int_equal(fsutil_write_atomic(path, text, strlen(text), 0644), 0);

	assert_int_equal(container_get_state(dir, "alice"), CONTAINER_STOPPED);
	assert_int_equal(container_stop(dir, "alice", 1), 0);
	assert_int_equal(fsutil_remove_tree(dir), 0);
}

/* ---- container_signal_wait(): how a stop waits for a container's init ---- */

static long long test_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A child that ignores the halt signal (ignore) or keeps its default (it
 * ends on it), ready once it says so; its pidfd in *pidfd. */
static pid_t test_child(bool ignore, int *pidfd)
{
	int ready[2];
	char c;
	pid_t pid;

	assert_int_equal(pipe(ready), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (ignore)
			signal(SIGRTMIN + 3, SIG_IGN);
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	*pidfd = pidfd_open(pid, 0);
	assert_true(*pidfd >= 0);
	return pid;
}

static void test_signal_wait_ignored(void **state)
{
	int pidfd, status;
	pid_t pid = test_child(true, &pidfd);
	long long start = test_now_ms();

	/* An init that ignores the halt signal: the whole timeout, no more. */
	assert_int_equal(container_signal_wait(pidfd, SIGRTMIN + 3, 800), -ETIMEDOUT);
	assert_true(test_now_ms() - start >= 790);
	assert_true(test_now_ms() - start < 3000);
	/* Waiting without a signal times out the same. */
	assert_int_equal(container_signal_wait(pidfd, 0, 100), -ETIMEDOUT);
	/* What the kill that follows looks like. */
	start = test_now_ms();
	assert_int_equal(container_signal_wait(pidfd, SIGKILL, 5000), 0);
	assert_true(test_now_ms() - start < 3000);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	/* Reaped: nothing to signal, nothing to wait for. */
	assert_int_equal(container_signal_wait(pidfd, SIGRTMIN + 3, 5000), 0);
	close(pidfd);
}

static void test_signal_wait_obeyed(void **state)
{
	int pidfd, status;
	pid_t pid = test_child(false, &pidfd);
	long long start = test_now_ms();

	/* One that ends on it: as soon as it ended, long before the limit. */
	assert_int_equal(container_signal_wait(pidfd, SIGRTMIN + 3, 10000), 0);
	assert_true(test_now_ms() - start < 3000);
	/* Ended but not yet reaped (LXC's monitor reaps a container's init). */
	assert_int_equal(container_signal_wait(pidfd, 0, 0), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGRTMIN + 3);
	assert_int_equal(container_signal_wait(-1, SIGRTMIN + 3, 0), -EBADF);
	close(pidfd);
}

struct server {
	int listener;
	uint16_t port;
	const char *greeting;   /* NULL: accept and close at once */
	unsigned delay_ms;      /* before listening */
	pthread_t thread;
};

static void *server_run(void *data)
{
	struct server *s = data;

	if (s->delay_ms) {
		struct timespec ts = { s->delay_ms / 1000, (long)(s->delay_ms % 1000) * 1000000 };

		nanosleep(&ts, NULL);
	}
	if (listen(s->listener, 8) < 0)
		return NULL;
	for (;;) {
		int fd = accept(s->listener, NULL, NULL);

		if (fd < 0)
			return NULL;
		if (s->greeting && write(fd, s->greeting, strlen(s->greeting)) < 0) {
			close(fd);
			return NULL;
		}
		close(fd);
	}
}

static void server_start(struct server *s, const char *greeting, unsigned delay_ms)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);

	s->greeting = greeting;
	s->delay_ms = delay_ms;
	s->listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s->listener >= 0);
	assert_int_equal(bind(s->listener, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(s->listener, (struct sockaddr *)&sa, &len), 0);
	s->port = ntohs(sa.sin_port);
	assert_int_equal(pthread_create(&s->thread, NULL, server_run, s), 0);
}

static void server_stop(struct server *s)
{
	shutdown(s->listener, SHUT_RDWR);
	pthread_join(s->thread, NULL);
	close(s->listener);
}

struct said {
	struct progress progress;
	unsigned count;
};

static void said_emit(struct progress *p, const char *text)
{
	struct said *s = (struct said *)p;

	assert_non_null(strstr(text, "SSH"));
	s->count++;
}

static void test_wait_ssh(void **state)
{
	struct server s;
	struct said said = { .progress.emit = said_emit };

	/* Bound but not listening for 1.5 s: refused first, then a banner. */
	server_start(&s, "SSH-2.0-OpenSSH_9.2\r\n", 1500);
	assert_int_equal(container_wait_ssh("127.0.0.1", s.port, 10, &said.progress), 0);
	server_stop(&s);
}

static void test_wait_ssh_not_ssh(void **state)
{
	struct server s;
	struct said said = { .progress.emit = said_emit };
	time_t start = time(NULL);

	/* Something answers, but it is not sshd: wait until the limit. */
	server_start(&s, "HTTP/1.0 400 Bad Request\r\n", 0);
	assert_int_equal(container_wait_ssh("127.0.0.1", s.port, 6, &said.progress), -ETIMEDOUT);
	assert_true(time(NULL) - start >= 5);
	assert_true(said.count >= 1);
	server_stop(&s);

	/* Accepts and closes at once. */
	server_start(&s, NULL, 0);
	assert_int_equal(container_wait_ssh("127.0.0.1", s.port, 1, NULL), -ETIMEDOUT);
	server_stop(&s);
}

static void test_wait_ssh_bad(void **state)
{
	assert_int_equal(container_wait_ssh("127.0.0.1x", 22, 1, NULL), -EINVAL);
	assert_int_equal(container_wait_ssh(NULL, 22, 1, NULL), -EINVAL);
	assert_int_equal(container_wait_ssh("127.0.0.1", 0, 1, NULL), -EINVAL);
}

struct test_stop {
	const char *lxcpath;
	unsigned timeout;
	int ret;
	long long ms;
};

static void *test_stop_run(void *data)
{
	struct test_stop *t = data;
	long long start = test_now_ms();

	t->ret = container_stop(t->lxcpath, "gptest", t->timeout);
	t->ms = test_now_ms() - start;
	return NULL;
}

/* busybox's init ignores the halt signal: the stop waits the whole timeout,
 * and the container's state is asked and answered meanwhile. */
static void test_slow_stop(const char *lxcpath)
{
	struct test_stop t = { .lxcpath = lxcpath, .timeout = 3 };
	pthread_t thread;
	long long start;

	assert_int_equal(pthread_create(&thread, NULL, test_stop_run, &t), 0);
	poll(NULL, 0, 500);
	start = test_now_ms();
	assert_int_equal(container_get_state(lxcpath, "gptest"), CONTAINER_RUNNING);
	assert_true(test_now_ms() - start < 500);
	assert_int_equal(pthread_join(thread, NULL), 0);
	assert_int_equal(t.ret, 0);
	assert_true(t.ms >= 2900);
}

/*
 * A real start and stop: a busybox root file system (its init keeps
 * running), on a bridge in a private network namespace.  Skipped where
 * there is no static busybox.
 */
#define TEST_SUBID_BASE (40 * SUBID_COUNT)
#define TEST_INITTAB "::respawn:/bin/busybox nc -ll -p 22 -e /bin/banner\n"
#define TEST_BANNER "#!/bin/sh\necho SSH-2.0-busybox\n"

static void test_start_stop(void **state)
{
	static const char *const dirs[] = { "bin", "sbin", "dev", "proc", "sys", "tmp", "etc",
					    "lxc", "rootfs/bin", "rootfs/sbin", "rootfs/dev",
					    "rootfs/proc", "rootfs/sys", "rootfs/tmp", "rootfs/etc",
					    "rootfs/root", "rootfs/run" };
	char dir[] = "/tmp/gpubox-test-lxc-XXXXXX";
	char path[256], rootfs[128], lxcpath[128], subid[128], sysfs[128];
	__do_free char *busybox = NULL;
	struct gpubox_config cfg;
	struct container_spec spec = test_spec();
	size_t len;

	if (fsutil_read_file("/bin/busybox", 8 << 20, &busybox, &len) < 0) {
		skip();
		return;
	}
	assert_non_null(mkdtemp(dir));
	/* LXC maps ids with newuidmap, which wants /etc/subuid to grant root
	 * the range: granted here by files bound over them in a private mount
	 * namespace, the host's files untouched. */
	assert_int_equal(unshare(CLONE_NEWNET | CLONE_NEWNS), 0);
	assert_int_equal(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
	snprintf(subid, sizeof(subid), "%s.subid", dir);
	snprintf(path, sizeof(path), "root:%u:%u\n", TEST_SUBID_BASE, SUBID_COUNT);
	assert_int_equal(fsutil_write_atomic(subid, path, strlen(path), 0644), 0);
	if (mount(subid, "/etc/subuid", NULL, MS_BIND, NULL) < 0 ||
	    mount(subid, "/etc/subgid", NULL, MS_BIND, NULL) < 0) {
		unlink(subid);
		skip();
		return;
	}
	/* LXC finds the bridge in /sys/class/net, which shows the network
	 * namespace sysfs was mounted in: show it ours. */
	snprintf(sysfs, sizeof(sysfs), "%s/sys", dir);
	assert_int_equal(fsutil_mkdir_p(sysfs, 0755), 0);
	assert_int_equal(mount("sysfs", sysfs, "sysfs", 0, NULL), 0);
	snprintf(path, sizeof(path), "%s/class/net", sysfs);
	assert_int_equal(mount(path, "/sys/class/net", NULL, MS_BIND, NULL), 0);
	snprintf(path, sizeof(path), "%s/devices/virtual/net", sysfs);
	assert_int_equal(mount(path, "/sys/devices/virtual/net", NULL, MS_BIND, NULL), 0);

	config_set_defaults(&cfg);
	snprintf(cfg.bridge, sizeof(cfg.bridge), "gptestbr1");
	snprintf(cfg.bridge_address, sizeof(cfg.bridge_address), "10.79.0.1/16");
	assert_int_equal(network_setup(&cfg), 0);

	assert_int_equal(chmod(dir, 0755), 0);
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, dirs[i]);
		assert_int_equal(fsutil_mkdir_p(path, 0755), 0);
	}
	snprintf(path, sizeof(path), "%s/rootfs/bin/busybox", dir);
	assert_int_equal(fsutil_write_atomic(path, busybox, len, 0755), 0);
	snprintf(path, sizeof(path), "%s/rootfs/sbin/init", dir);
	assert_int_equal(symlink("/bin/busybox", path), 0);
	snprintf(path, sizeof(path), "%s/rootfs/bin/sh", dir);
	assert_int_equal(symlink("/bin/busybox", path), 0);
	snprintf(path, sizeof(path), "%s/rootfs/etc/inittab", dir);
	/* An sshd stand-in: its banner on port 22. */
	assert_int_equal(fsutil_write_atomic(path, TEST_INITTAB, strlen(TEST_INITTAB), 0644), 0);
	snprintf(path, sizeof(path), "%s/rootfs/bin/banner", dir);
	assert_int_equal(fsutil_write_atomic(path, TEST_BANNER, strlen(TEST_BANNER), 0755), 0);

	snprintf(rootfs, sizeof(rootfs), "%s/rootfs", dir);
	snprintf(lxcpath, sizeof(lxcpath), "%s/lxc", dir);
	spec.name = "gptest";
	spec.lxcpath = lxcpath;
	spec.rootfs = rootfs;
	spec.hostname = "gptest";
	spec.subid_base = TEST_SUBID_BASE;
	spec.address = "10.79.0.2";
	spec.gateway = "10.79.0.1";
	spec.bridge = "gptestbr1";
	spec.logfile = NULL;

	assert_int_equal(container_get_state(lxcpath, "gptest"), CONTAINER_ABSENT);
	assert_int_equal(container_start(&spec), 0);
	assert_int_equal(container_get_state(lxcpath, "gptest"), CONTAINER_RUNNING);
	/* Its network is up: on the bridge, with its address. */
	assert_int_equal(container_wait_ssh("10.79.0.2", 22, 20, NULL), 0);
	/* Starting a running container is not an error. */
	assert_int_equal(container_start(&spec), 0);
	test_slow_stop(lxcpath);
	assert_int_equal(container_get_state(lxcpath, "gptest"), CONTAINER_STOPPED);
	assert_int_equal(container_stop(lxcpath, "gptest", 2), 0);

	assert_int_equal(network_teardown("gptestbr1"), 0);
	assert_int_equal(umount2(sysfs, MNT_DETACH), 0);
	assert_int_equal(fsutil_remove_tree(dir), 0);
	unlink(subid);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render),
		cmocka_unit_test(test_render_deterministic),
		cmocka_unit_test(test_render_defaults_and_extras),
		cmocka_unit_test(test_render_refuses),
		cmocka_unit_test(test_render_nesting),
		cmocka_unit_test(test_state_absent),
		cmocka_unit_test(test_state_stopped),
		cmocka_unit_test(test_signal_wait_ignored),
		cmocka_unit_test(test_signal_wait_obeyed),
		cmocka_unit_test(test_wait_ssh),
		cmocka_unit_test(test_wait_ssh_not_ssh),
		cmocka_unit_test(test_wait_ssh_bad),
		cmocka_unit_test(test_start_stop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
