/* SPDX-License-Identifier: MIT */
/*
 * nft_render() text, then the real thing: the ruleset applied with
 * libnftables inside a private network namespace of this test process,
 * and its effect checked with "containers": child processes in network
 * namespaces of their own, attached to a test bridge by veth pairs.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "container/container.h"
#include "net/net.h"
#include "cleanup.h"
#include "config.h"
#include "spawn.h"
#include "testutil.h"

#include "banned.h"

static const struct nft_forward test_forwards[] = {
	{ 2201, "10.77.0.2", 22 },
	{ 2202, "10.77.0.3", 22 },
	{ 8080, "10.77.1.200", 80 },
};

static struct nft_plan test_plan(size_t n)
{
	return (struct nft_plan){
		.table = "gpubox_test",
		.bridge = "gptestbr0",
		.subnet = "10.77.0.1/16",
		.forwards = test_forwards,
		.nforwards = n,
	};
}

static void test_render_none(void **state)
{
	struct nft_plan plan = test_plan(0);
	__do_free char *text = nft_render(&plan);

	assert_non_null(text);
	/* Replaced atomically: declared, deleted, declared whole. */
	assert_non_null(strstr(text, "table ip gpubox_test {}\ndelete table ip gpubox_test\ntable ip gpubox_test {\n"));
	assert_non_null(strstr(text, "table bridge gpubox_test {}\ndelete table bridge gpubox_test\n"));
	assert_int_equal(tu_count_substr(text, "dnat to"), 0);
	assert_non_null(strstr(text, "type nat hook prerouting priority dstnat;"));
	assert_non_null(strstr(text, "type nat hook output priority -100;"));
	assert_non_null(strstr(text, "type nat hook postrouting priority srcnat;"));
	/* The subnet printed as its network, whatever host address was given. */
	assert_non_null(strstr(text, "ip saddr 10.77.0.0/16 oifname != \"gptestbr0\" masquerade\n"));
	assert_int_equal(tu_count_substr(text, "masquerade"), 1);
	assert_non_null(strstr(text, "iifname \"gptestbr0\" oifname \"gptestbr0\" counter drop\n"));
	assert_non_null(strstr(text, "oifname \"gptestbr0\" counter drop\n"));
	assert_non_null(strstr(text, "oifname \"gptestbr0\" ct status dnat accept\n"));
	assert_non_null(strstr(text, "ct state established,related accept\n"));
	assert_non_null(strstr(text, "iifname \"" NETWORK_VETH_PREFIX "*\" oifname \"" NETWORK_VETH_PREFIX "*\" counter drop"));
}

static void test_render_one(void **state)
{
	struct nft_plan plan = test_plan(1);
	__do_free char *text = nft_render(&plan);

	assert_non_null(text);
	/* In prerouting and in output. */
	assert_int_equal(tu_count_substr(text, "fib daddr type local tcp dport 2201 dnat to 10.77.0.2:22\n"), 2);
	assert_int_equal(tu_count_substr(text, "dnat to"), 2);
}

static void test_render_several(void **state)
{
	struct nft_plan plan = test_plan(ARRAY_SIZE(test_forwards));
	__do_free char *text = nft_render(&plan);

	assert_non_null(text);
	assert_int_equal(tu_count_substr(text, "tcp dport 2201 dnat to 10.77.0.2:22\n"), 2);
	assert_int_equal(tu_count_substr(text, "tcp dport 2202 dnat to 10.77.0.3:22\n"), 2);
	assert_int_equal(tu_count_substr(text, "tcp dport 8080 dnat to 10.77.1.200:80\n"), 2);
	assert_int_equal(tu_count_substr(text, "dnat to"), 6);
}

static void expect_refused(const struct nft_plan *plan)
{
	char *text = nft_render(plan);

	assert_null(text);
	assert_int_equal(errno, EINVAL);
}

static void test_render_refuses(void **state)
{
	static const char *const bad_names[] = {
		"", "a b", "gp;x", "x\ny", "t}", "9table", "a\"b", "a-b",
		"0123456789012345678901234567890123456789012345678901234567890123",
	};
	static const char *const bad_bridges[] = {
		"", "br\"0", "br 0", "br0\n", "0123456789abcdef", ".", "..", "br*", "br}",
	};
	static const char *const bad_subnets[] = {
		"10.77.0.0", "10.77.0.0/", "10.77.0.0/31", "10.77.0.0/7", "10.77.0/16",
		"10.77.0.0/16 ", "10.77.0.0/16;", "010.77.0.0/16", "10.77.0.256/16", "x/16",
		"10.77.0.0/+16", "",
	};
	struct nft_forward fwd[2] = { { 2201, "10.77.0.2", 22 }, { 2202, "10.77.0.3", 22 } };
	struct nft_plan plan;

	for (size_t i = 0; i < ARRAY_SIZE(bad_names); i++) {
		plan = test_plan(0);
		plan.table = bad_names[i];
		expect_refused(&plan);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad_bridges); i++) {
		plan = test_plan(0);
		plan.bridge = bad_bridges[i];
		expect_refused(&plan);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad_subnets); i++) {
		plan = test_plan(0);
		plan.subnet = bad_subnets[i];
		expect_refused(&plan);
	}
	plan = test_plan(0);
	plan.table = NULL;
	expect_refused(&plan);

	plan = test_plan(0);
	plan.forwards = fwd;
	plan.nforwards = 2;
	{
		__do_free char *ok = nft_render(&plan);

		assert_non_null(ok);
	}
	static const char *const bad_addresses[] = {
		"10.78.0.2",          /* outside the subnet */
		"10.77.0.0",          /* the network */
		"10.77.255.255",      /* the broadcast */
		"10.77.0.2;drop",
		"10.77.0.2 ",
		"10.77.0.2:22",
		"",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad_addresses); i++) {
		snprintf(fwd[1].container_address, sizeof(fwd[1].container_address), "%s",
			 bad_addresses[i]);
		expect_refused(&plan);
	}
	snprintf(fwd[1].container_address, sizeof(fwd[1].container_address), "10.77.0.3");
	fwd[1].container_port = 0;
	expect_refused(&plan);
	fwd[1].container_port = 22;
	fwd[1].host_port = 0;
	expect_refused(&plan);
	fwd[1].host_port = 2201;   /* twice */
	expect_refused(&plan);
	fwd[1].host_port = 2202;
	memset(fwd[1].container_address, 'x', sizeof(fwd[1].container_address));
	expect_refused(&plan);
}

static int setup_netns(void **state)
{
	const char *const up[] = { "/usr/sbin/ip", "link", "set", "dev", "lo", "up", NULL };

	if (tu_setup_netns(state) < 0)
		return -1;
	return spawn_quiet(up) == 0 ? 0 : -1;
}

static void test_apply_list_remove(void **state)
{
	struct nft_plan plan = test_plan(ARRAY_SIZE(test_forwards));
	__do_free char *text = nft_render(&plan);
	__do_free char *listed = NULL;
	__do_free char *again = NULL;

	assert_non_null(text);
	assert_int_equal(nft_list("gpubox_test", &listed), -ENOENT);
	assert_int_equal(nft_apply(text), 0);
	assert_int_equal(nft_list("gpubox_test", &listed), 0);
	assert_non_null(strstr(listed, "table ip gpubox_test"));
	assert_int_equal(tu_count_substr(listed, "dnat to 10.77.0.2:22"), 2);
	assert_int_equal(tu_count_substr(listed, "dnat to 10.77.1.200:80"), 2);
	assert_int_equal(tu_count_substr(listed, "masquerade"), 1);
	assert_int_equal(tu_count_substr(listed, "ct status dnat accept"), 1);

	/* Applying the same text again gives the same ruleset, nothing doubled. */
	assert_int_equal(nft_apply(text), 0);
	assert_int_equal(nft_list("gpubox_test", &again), 0);
	assert_string_equal(listed, again);
	free(again);
	again = NULL;

	/* A smaller plan replaces the table: the old forwards are gone. */
	{
		struct nft_plan one = test_plan(1);
		__do_free char *text1 = nft_render(&one);

		assert_non_null(text1);
		assert_int_equal(nft_apply(text1), 0);
		assert_int_equal(nft_list("gpubox_test", &again), 0);
		assert_int_equal(tu_count_substr(again, "dnat to"), 2);
		assert_int_equal(tu_count_substr(again, "10.77.1.200"), 0);
	}

	assert_int_equal(nft_remove("gpubox_test"), 0);
	free(listed);
	listed = NULL;
	assert_int_equal(nft_list("gpubox_test", &listed), -ENOENT);
	/* Removing what is absent is not an error. */
	assert_int_equal(nft_remove("gpubox_test"), 0);
	assert_int_equal(nft_remove("bad name"), -EINVAL);
}

static void test_apply_bad_text(void **state)
{
	/* libnftables' own refusal comes back as an error, nothing applied. */
	assert_int_equal(nft_apply("table ip gpubox_bad { chain c { nonsense } }"), -EIO);
	assert_int_equal(nft_apply(NULL), -EINVAL);
}

#define E2E_BRIDGE "gptestbr0"
#define IP "/usr/sbin/ip"

/*
 * A peer: a child in its own network namespace.  It serves TCP port 22,
 * answering "SSH-2.0-from-<client address>", and on request (a line
 * "ADDRESS PORT" on its command pipe) connects somewhere and replies with
 * the first line it read, or "FAIL".
 */
struct peer {
	pid_t pid;
	int cmd;
	int reply;
};

#define BR_NF_CALL_IPTABLES "/proc/sys/net/bridge/bridge-nf-call-iptables"

/* This network namespace's own value (net sysctls follow the opener's namespace). */
static int write_sysctl(const char *path, const char *value)
{
	__do_close int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	return write(fd, value, strlen(value)) == (ssize_t)strlen(value) ? 0 : -EIO;
}

static int run_ip(const char *const argv[])
{
	int ret = spawn_quiet(argv);

	if (ret != 0)
		print_error("%s %s %s %s: %d\n", argv[1], argv[2], argv[3], argv[4] ? argv[4] : "", ret);
	return ret;
}

/* Connect with a 1 s limit and read one line; "FAIL" if anything goes wrong. */
static void probe(const char *address, unsigned port, char *line, size_t len)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	__do_close int fd = -EBADF;
	struct pollfd pfd;
	size_t got = 0;
	int err = 0;
	socklen_t errlen = sizeof(err);

	snprintf(line, len, "FAIL");
	inet_pton(AF_INET, address, &sa.sin_addr);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS))
		return;
	pfd = (struct pollfd){ .fd = fd, .events = POLLOUT };
	if (poll(&pfd, 1, 1000) <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) < 0 || err)
		return;
	char buf[128];
	while (got < sizeof(buf) - 1) {
		ssize_t n;

		pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
		if (poll(&pfd, 1, 1000) <= 0)
			return;
		n = read(fd, buf + got, sizeof(buf) - 1 - got);
		if (n <= 0)
			return;
		got += (size_t)n;
		buf[got] = '\0';
		if (strchr(buf, '\n')) {
			buf[strcspn(buf, "\r\n")] = '\0';
			snprintf(line, len, "%s", buf);
			return;
		}
	}
}

static void peer_serve(int listener, int cmd, int reply)
{
	for (;;) {
		struct pollfd pfd[2] = { { .fd = listener, .events = POLLIN },
					 { .fd = cmd, .events = POLLIN } };

		if (poll(pfd, 2, -1) < 0)
			_exit(1);
		if (pfd[0].revents & POLLIN) {
			struct sockaddr_in from;
			socklen_t fromlen = sizeof(from);
			char banner[64], addr[16];
			int fd = accept(listener, (struct sockaddr *)&from, &fromlen);

			if (fd >= 0) {
				inet_ntop(AF_INET, &from.sin_addr, addr, sizeof(addr));
				snprintf(banner, sizeof(banner), "SSH-2.0-from-%s\r\n", addr);
				if (write(fd, banner, strlen(banner)) < 0)
					_exit(1);
				close(fd);
			}
		}
		if (pfd[1].revents & (POLLIN | POLLHUP)) {
			char request[64] = "", address[32], line[128];
			unsigned port;
			ssize_t n = read(cmd, request, sizeof(request) - 1);

			if (n <= 0)
				_exit(0);
			if (sscanf(request, "%31s %u", address, &port) != 2)
				_exit(1);
			probe(address, port, line, sizeof(line) - 1);
			{
				size_t l = strlen(line);

				line[l] = '\n';
				if (write(reply, line, l + 1) < 0)
					_exit(1);
			}
		}
	}
}

static void peer_child(int cmd, int reply, const char *cidr, const char *gateway)
{
	const char *const lo[] = { IP, "link", "set", "dev", "lo", "up", NULL };
	const char *const rename[] = { IP, "link", "set", "dev", "gptestpeer", "name", "eth0", NULL };
	const char *const addr[] = { IP, "address", "add", cidr, "dev", "eth0", NULL };
	const char *const up[] = { IP, "link", "set", "dev", "eth0", "up", NULL };
	const char *const route[] = { IP, "route", "add", "default", "via", gateway, NULL };
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(22) };
	int one = 1, listener;
	char c;

	if (unshare(CLONE_NEWNET) < 0 || write(reply, "r", 1) != 1)
		_exit(1);
	/* The parent moves the interface in. */
	if (read(cmd, &c, 1) != 1)
		_exit(1);
	if (run_ip(lo) || run_ip(rename) || run_ip(addr) || run_ip(up) || run_ip(route))
		_exit(1);
	listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (listener < 0 || setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(listener, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(listener, 8) < 0)
		_exit(1);
	if (write(reply, "r", 1) != 1)
		_exit(1);
	peer_serve(listener, cmd, reply);
	_exit(0);
}

/* host_if: the host side of the veth; attached to the bridge if bridge != NULL,
 * else given host_cidr. */
static void peer_start(struct peer *p, const char *host_if, const char *bridge,
		       const char *host_cidr, const char *cidr, const char *gateway)
{
	int to_child[2], from_child[2];
	char pid_text[16], c;

	assert_int_equal(pipe2(to_child, O_CLOEXEC), 0);
	assert_int_equal(pipe2(from_child, O_CLOEXEC), 0);
	p->pid = fork();
	assert_true(p->pid >= 0);
	if (p->pid == 0) {
		close(to_child[1]);
		close(from_child[0]);
		peer_child(to_child[0], from_child[1], cidr, gateway);
	}
	close(to_child[0]);
	close(from_child[1]);
	p->cmd = to_child[1];
	p->reply = from_child[0];
	assert_int_equal(read(p->reply, &c, 1), 1);

	snprintf(pid_text, sizeof(pid_text), "%d", (int)p->pid);
	{
		const char *const add[] = { IP, "link", "add", host_if, "type", "veth", "peer",
					    "name", "gptestpeer", NULL };
		const char *const move[] = { IP, "link", "set", "dev", "gptestpeer", "netns",
					     pid_text, NULL };
		const char *const master[] = { IP, "link", "set", "dev", host_if, "master",
					       bridge ? bridge : "", NULL };
		const char *const addr[] = { IP, "address", "add", host_cidr ? host_cidr : "",
					     "dev", host_if, NULL };
		const char *const up[] = { IP, "link", "set", "dev", host_if, "up", NULL };

		assert_int_equal(run_ip(add), 0);
		assert_int_equal(run_ip(move), 0);
		assert_int_equal(run_ip(bridge ? master : addr), 0);
		assert_int_equal(run_ip(up), 0);
	}
	assert_int_equal(write(p->cmd, "g", 1), 1);
	assert_int_equal(read(p->reply, &c, 1), 1);
}

/* From inside the peer: the first line answered by address:port, or "FAIL". */
static void peer_probe(struct peer *p, const char *address, unsigned port, char *line, size_t len)
{
	char request[64];
	size_t got = 0;

	snprintf(request, sizeof(request), "%s %u", address, port);
	assert_int_equal(write(p->cmd, request, strlen(request)), (ssize_t)strlen(request));
	while (got < len - 1) {
		ssize_t n = read(p->reply, line + got, 1);

		assert_int_equal(n, 1);
		if (line[got] == '\n')
			break;
		got++;
	}
	line[got] = '\0';
}

static void peer_stop(struct peer *p)
{
	close(p->cmd);
	close(p->reply);
	kill(p->pid, SIGKILL);
	waitpid(p->pid, NULL, 0);
}

static void test_end_to_end(void **state)
{
	/* 10.77.0.2 and .3 in hex: the names container.c gives the veths. */
	static const struct nft_forward forwards[] = { { 2201, "10.77.0.3", 22 } };
	struct nft_plan plan = {
		.table = "gpubox_test", .bridge = E2E_BRIDGE, .subnet = "10.77.0.0/16",
		.forwards = forwards, .nforwards = 1,
	};
	struct gpubox_config cfg;
	struct peer a, b, outside;
	__do_free char *text = NULL;
	char line[128];

	config_set_defaults(&cfg);
	snprintf(cfg.bridge, sizeof(cfg.bridge), E2E_BRIDGE);
	snprintf(cfg.bridge_address, sizeof(cfg.bridge_address), "10.77.0.1/16");
	assert_int_equal(network_setup(&cfg), 0);

	peer_start(&a, NETWORK_VETH_PREFIX "0a4d0002", E2E_BRIDGE, NULL, "10.77.0.2/16", "10.77.0.1");
	peer_start(&b, NETWORK_VETH_PREFIX "0a4d0003", E2E_BRIDGE, NULL, "10.77.0.3/16", "10.77.0.1");
	peer_start(&outside, "gptestout", NULL, "192.168.200.1/24", "192.168.200.2/24",
		   "192.168.200.1");

	/* Without the table, containers reach each other: the baseline. */
	peer_probe(&a, "10.77.0.3", 22, line, sizeof(line));
	assert_string_equal(line, "SSH-2.0-from-10.77.0.2");

	text = nft_render(&plan);
	assert_non_null(text);
	assert_int_equal(nft_apply(text), 0);

	/* A client outside reaches the forwarded port; the container sees the
	 * client's own address, not the host's. */
	peer_probe(&outside, "192.168.200.1", 2201, line, sizeof(line));
	assert_string_equal(line, "SSH-2.0-from-192.168.200.2");

	/* The host itself reaches host:port (the output chain). */
	probe("192.168.200.1", 2201, line, sizeof(line));
	assert_string_equal(line, "SSH-2.0-from-192.168.200.1");
	assert_int_equal(container_wait_ssh("10.77.0.1", 2201, 5, NULL), 0);

	/* Outbound traffic of a container is masqueraded. */
	peer_probe(&b, "192.168.200.2", 22, line, sizeof(line));
	assert_string_equal(line, "SSH-2.0-from-192.168.200.1");

	/* Containers cannot reach each other: not on the bridge (layer 2),
	 * not through the host's forwarded port (layer 3). */
	peer_probe(&a, "10.77.0.3", 22, line, sizeof(line));
	assert_string_equal(line, "FAIL");
	peer_probe(&a, "10.77.0.1", 2201, line, sizeof(line));
	assert_string_equal(line, "FAIL");
	/* br_netfilter (built in on this kernel; Docker loads it elsewhere)
	 * bridges such a hairpin, and the bridge table drops it.  Without it
	 * the packet is routed, and the routed rule must drop it. */
	if (write_sysctl(BR_NF_CALL_IPTABLES, "0") == 0) {
		__do_free char *listed = NULL;
		const char *counter;

		peer_probe(&a, "10.77.0.1", 2201, line, sizeof(line));
		assert_string_equal(line, "FAIL");
		assert_int_equal(nft_list("gpubox_test", &listed), 0);
		counter = strstr(listed, "iifname \"" E2E_BRIDGE "\" oifname \"" E2E_BRIDGE "\" counter packets ");
		assert_non_null(counter);
		assert_true(strtoul(strstr(counter, "packets ") + 8, NULL, 10) > 0);
		assert_int_equal(write_sysctl(BR_NF_CALL_IPTABLES, "1"), 0);
	}
	/* Nor is a container reachable from outside except through a forward. */
	peer_probe(&outside, "10.77.0.3", 22, line, sizeof(line));
	assert_string_equal(line, "FAIL");

	peer_stop(&a);
	peer_stop(&b);
	peer_stop(&outside);
	assert_int_equal(nft_remove("gpubox_test"), 0);
	assert_int_equal(network_teardown(E2E_BRIDGE), 0);
}

int main(void)
{
	const struct CMUnitTest render[] = {
		cmocka_unit_test(test_render_none),
		cmocka_unit_test(test_render_one),
		cmocka_unit_test(test_render_several),
		cmocka_unit_test(test_render_refuses),
	};
	const struct CMUnitTest apply[] = {
		cmocka_unit_test(test_apply_list_remove),
		cmocka_unit_test(test_apply_bad_text),
		cmocka_unit_test(test_end_to_end),
	};
	int failed;

	failed = cmocka_run_group_tests_name("render", render, NULL, NULL);
	failed += cmocka_run_group_tests_name("apply", apply, setup_netns, NULL);
	return failed;
}
