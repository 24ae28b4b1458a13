/* SPDX-License-Identifier: MIT */
/*
 * Subnet arithmetic, then network_setup() for real inside a private
 * network namespace of this test process (the host's network is never
 * touched).
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "net/net.h"
#include "cleanup.h"
#include "config.h"
#include "fsutil.h"
#include "spawn.h"
#include "testutil.h"

#include "banned.h"

#define TEST_BRIDGE "gptestbr0"

static void test_parse_subnet(void **state)
{
	struct network_subnet s;

	assert_int_equal(network_parse_subnet("10.77.0.1/16", &s), 0);
	assert_int_equal(s.host_address, 0x0a4d0001);
	assert_int_equal(s.network, 0x0a4d0000);
	assert_int_equal(s.prefix, 16);

	assert_int_equal(network_parse_subnet("192.168.5.130/25", &s), 0);
	assert_int_equal(s.network, 0xc0a80580);
	assert_int_equal(network_parse_subnet("10.0.0.1/8", &s), 0);
	assert_int_equal(network_parse_subnet("10.0.0.2/30", &s), 0);
	assert_int_equal(s.network, 0x0a000000);
}

static void test_parse_subnet_refused(void **state)
{
	static const char *const bad[] = {
		"", "10.77.0.1", "10.77.0.1/", "/16", "10.77.0.1/7", "10.77.0.1/31",
		"10.77.0.1/32", "10.77.0.1/33", "10.77.0.1/-1", "10.77.0.1/+16", "10.77.0.1/16x",
		"10.77.0.1/ 16", " 10.77.0.1/16", "10.77.0.1 /16", "10.77.1/16", "10.77.0.256/16",
		"010.77.0.1/16", "10.77.0.1/016x", "10.77.0.1/16/16", "a.b.c.d/16",
		"10.77.0.0/16",   /* the network itself is not a host address */
		"10.77.255.255/16", /* nor the broadcast */
		"10.0.0.3/30",
		"10.77.0.1/99999999999",
	};
	struct network_subnet s;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		if (network_parse_subnet(bad[i], &s) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
	}
	assert_int_equal(network_parse_subnet(NULL, &s), -EINVAL);
}

static void expect_address(const struct network_subnet *s, uint32_t n, const char *want)
{
	char buf[16];

	assert_int_equal(network_member_address(s, n, buf, sizeof(buf)), 0);
	assert_string_equal(buf, want);
}

static void test_member_address(void **state)
{
	struct network_subnet s;
	char buf[16];

	/* The bridge first: members from .2 on. */
	assert_int_equal(network_parse_subnet("10.77.0.1/16", &s), 0);
	expect_address(&s, 0, "10.77.0.2");
	expect_address(&s, 253, "10.77.0.255");
	expect_address(&s, 254, "10.77.1.0");
	expect_address(&s, 65532, "10.77.255.254");
	assert_int_equal(network_member_address(&s, 65533, buf, sizeof(buf)), -ERANGE);
	assert_int_equal(network_member_address(&s, UINT32_MAX, buf, sizeof(buf)), -ERANGE);

	/* The bridge in the middle is skipped. */
	assert_int_equal(network_parse_subnet("192.168.1.5/24", &s), 0);
	expect_address(&s, 0, "192.168.1.1");
	expect_address(&s, 3, "192.168.1.4");
	expect_address(&s, 4, "192.168.1.6");
	expect_address(&s, 252, "192.168.1.254");
	assert_int_equal(network_member_address(&s, 253, buf, sizeof(buf)), -ERANGE);

	/* The bridge last. */
	assert_int_equal(network_parse_subnet("192.168.1.254/24", &s), 0);
	expect_address(&s, 252, "192.168.1.253");
	assert_int_equal(network_member_address(&s, 253, buf, sizeof(buf)), -ERANGE);

	/* /30: two hosts, one of them the bridge. */
	assert_int_equal(network_parse_subnet("10.0.0.1/30", &s), 0);
	expect_address(&s, 0, "10.0.0.2");
	assert_int_equal(network_member_address(&s, 1, buf, sizeof(buf)), -ERANGE);
	assert_int_equal(network_parse_subnet("10.0.0.2/30", &s), 0);
	expect_address(&s, 0, "10.0.0.1");
	assert_int_equal(network_member_address(&s, 1, buf, sizeof(buf)), -ERANGE);

	/* The top of the address space does not wrap. */
	assert_int_equal(network_parse_subnet("255.255.255.253/30", &s), 0);
	expect_address(&s, 0, "255.255.255.254");
	assert_int_equal(network_member_address(&s, 1, buf, sizeof(buf)), -ERANGE);

	/* Too small a buffer. */
	assert_int_equal(network_parse_subnet("10.77.0.1/16", &s), 0);
	assert_int_equal(network_member_address(&s, 0, buf, 4), -ENOSPC);
}

static void test_valid_ifname(void **state)
{
	assert_true(network_valid_ifname("gpbr0"));
	assert_true(network_valid_ifname("a.b-c_d"));
	assert_true(network_valid_ifname("012345678901234"));
	assert_false(network_valid_ifname("0123456789012345"));
	assert_false(network_valid_ifname(""));
	assert_false(network_valid_ifname("."));
	assert_false(network_valid_ifname(".."));
	assert_false(network_valid_ifname("br 0"));
	assert_false(network_valid_ifname("br/0"));
	assert_false(network_valid_ifname("br\"0"));
	assert_false(network_valid_ifname("br0\n"));
	assert_false(network_valid_ifname(NULL));
}

static void test_config(struct gpubox_config *cfg)
{
	config_set_defaults(cfg);
	snprintf(cfg->bridge, sizeof(cfg->bridge), TEST_BRIDGE);
	snprintf(cfg->bridge_address, sizeof(cfg->bridge_address), "10.77.0.1/16");
}

static void expect_bridge(const char *address)
{
	__do_free char *forward = NULL;
	char output[2048] = "";
	const char *const show[] = { "/usr/sbin/ip", "-o", "-4", "address", "show", "dev",
				     TEST_BRIDGE, NULL };
	const char *const link[] = { "/usr/sbin/ip", "-o", "-d", "link", "show", "dev",
				     TEST_BRIDGE, NULL };
	struct spawn_options opts = { .capture = output, .capture_size = sizeof(output) };
	size_t len;

	/* ip(8), not /sys/class/net: sysfs shows the namespace it was mounted in. */
	assert_int_equal(spawn_run(link, &opts), 0);
	assert_non_null(strstr(output, "<BROADCAST,MULTICAST,UP"));
	assert_non_null(strstr(output, " bridge "));
	assert_int_equal(fsutil_read_file("/proc/sys/net/ipv4/ip_forward", 64, &forward, &len), 0);
	assert_int_equal(forward[0], '1');

	output[0] = '\0';
	assert_int_equal(spawn_run(show, &opts), 0);
	assert_non_null(strstr(output, address));
	/* One address, not one per call. */
	assert_null(strstr(strstr(output, "inet ") + 1, "inet "));
}

static void test_setup(void **state)
{
	struct gpubox_config cfg;

	test_config(&cfg);
	assert_int_equal(if_nametoindex(TEST_BRIDGE), 0);
	assert_int_equal(network_setup(&cfg), 0);
	expect_bridge("inet 10.77.0.1/16 ");

	/* Idempotent. */
	assert_int_equal(network_setup(&cfg), 0);
	expect_bridge("inet 10.77.0.1/16 ");

	assert_int_equal(network_teardown(TEST_BRIDGE), 0);
	assert_int_equal(if_nametoindex(TEST_BRIDGE), 0);
	assert_int_equal(network_teardown(TEST_BRIDGE), 0);
}

static void test_setup_refused(void **state)
{
	const char *const veth[] = { "/usr/sbin/ip", "link", "add", TEST_BRIDGE, "type", "veth",
				     "peer", "name", "gptestpeer", NULL };
	const char *const del[] = { "/usr/sbin/ip", "link", "del", TEST_BRIDGE, NULL };
	struct gpubox_config cfg;

	test_config(&cfg);
	snprintf(cfg.bridge, sizeof(cfg.bridge), "br;x");
	assert_int_equal(network_setup(&cfg), -EINVAL);

	test_config(&cfg);
	snprintf(cfg.bridge_address, sizeof(cfg.bridge_address), "10.77.0.0/16");
	assert_int_equal(network_setup(&cfg), -EINVAL);
	assert_int_equal(if_nametoindex(TEST_BRIDGE), 0);

	/* An interface of that name that is no bridge is left alone. */
	test_config(&cfg);
	assert_int_equal(spawn_quiet(veth), 0);
	assert_int_equal(network_setup(&cfg), -EEXIST);
	assert_int_equal(network_teardown(TEST_BRIDGE), -EINVAL);
	assert_int_equal(spawn_quiet(del), 0);
}

int main(void)
{
	const struct CMUnitTest pure[] = {
		cmocka_unit_test(test_parse_subnet),
		cmocka_unit_test(test_parse_subnet_refused),
		cmocka_unit_test(test_member_address),
		cmocka_unit_test(test_valid_ifname),
	};
	const struct CMUnitTest netns[] = {
		cmocka_unit_test(test_setup),
		cmocka_unit_test(test_setup_refused),
	};
	int failed;

	failed = cmocka_run_group_tests_name("arithmetic", pure, NULL, NULL);
	failed += cmocka_run_group_tests_name("netns", netns, tu_setup_netns, NULL);
	return failed;
}
