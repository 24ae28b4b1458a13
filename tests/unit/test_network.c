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
	/* Up; without ports it has no carrier (NO-CARRIER first). */
	assert_non_null(strstr(output, "BROADCAST,MULTICAST,UP"));
	assert_non_null(strstr(output, " bridge "));
	/* Its own MAC, from its address (10.77.0.1), whatever its ports'. */
	assert_non_null(strstr(output, "link/ether 00:16:3e:4d:00:01 "));
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

	/* A port with a lower MAC (as a container's veth may have) does
	 * not become the bridge's. */
	{
		const char *const veth[] = { "/usr/sbin/ip", "link", "add", "gptestport", "address",
					     "00:00:00:00:00:01", "type", "veth", "peer", "name",
					     "gptestpeer", NULL };
		const char *const attach[] = { "/usr/sbin/ip", "link", "set", "gptestport", "master",
					       TEST_BRIDGE, "up", NULL };
		const char *const peer_up[] = { "/usr/sbin/ip", "link", "set", "gptestpeer", "up", NULL };
		const char *const del[] = { "/usr/sbin/ip", "link", "del", "gptestport", NULL };

		assert_int_equal(spawn_quiet(veth), 0);
		assert_int_equal(spawn_quiet(attach), 0);
		assert_int_equal(spawn_quiet(peer_up), 0);
		expect_bridge("inet 10.77.0.1/16 ");
		assert_int_equal(spawn_quiet(del), 0);
	}

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

static void test_veth_and_mac(void **state)
{
	char name[NETWORK_IFNAME_MAX];
	uint8_t mac[6];

	/* What container.c writes: lxc.net.0.veth.pair and lxc.net.0.hwaddr. */
	network_veth_name(0x0a4d0002, name);
	assert_string_equal(name, "gpv0a4d0002");
	network_veth_name(0xffffffff, name);
	assert_string_equal(name, "gpvffffffff");
	network_member_mac(0x0ad53a02, mac);
	assert_memory_equal(mac, ((uint8_t[]){ 0x00, 0x16, 0x3e, 0xd5, 0x3a, 0x02 }), 6);
	network_member_mac(0x0aff0001, mac);
	assert_memory_equal(mac, ((uint8_t[]){ 0x00, 0x16, 0x3e, 0xff, 0x00, 0x01 }), 6);
}

static void test_resolvers_parse(void **state)
{
	static const char text[] =
		"# nameserver 1.1.1.1\n"
		"search lab.example\n"
		"nameserver 192.168.10.53\n"
		"  nameserver\t10.0.0.2   # the second\n"
		"nameserver 192.168.10.53\n"      /* once */
		"nameserver fd00::53\n"           /* IPv6: the containers have none */
		"nameserver 010.0.0.3\n"          /* not strictly dotted */
		"nameserver10.0.0.4\n"
		"nameserver 10.0.0.5\r\n"
		"nameserver 10.0.0.6";             /* no newline at the end */
	uint32_t out[RESOLVERS_MAX];

	assert_int_equal(resolvers_parse(text, strlen(text), out, RESOLVERS_MAX), 4);
	assert_true(out[0] == 0xc0a80a35);
	assert_true(out[1] == 0x0a000002);
	assert_true(out[2] == 0x0a000005);
	assert_true(out[3] == 0x0a000006);
	/* At most max; only len bytes are read. */
	assert_int_equal(resolvers_parse(text, strlen(text), out, 1), 1);
	assert_int_equal(resolvers_parse(text, 10, out, RESOLVERS_MAX), 0);
	assert_int_equal(resolvers_parse("", 0, out, RESOLVERS_MAX), 0);
	assert_int_equal(resolvers_parse(NULL, 5, out, RESOLVERS_MAX), 0);
}

/* The bridge's permanent IPv4 entries, as ip(8) prints them. */
static void neighbours(char *output, size_t len)
{
	const char *const show[] = { "/usr/sbin/ip", "-4", "neigh", "show", "dev", TEST_BRIDGE,
				     "nud", "permanent", NULL };
	struct spawn_options opts = { .capture = output, .capture_size = len };

	output[0] = '\0';
	assert_int_equal(spawn_run(show, &opts), 0);
}

static void test_neighbours(void **state)
{
	static const uint32_t two[] = { 0x0a4d0002, 0x0a4d0003 };
	const char *const stale[] = { "/usr/sbin/ip", "neigh", "replace", "10.77.0.9", "lladdr",
				      "02:00:00:00:00:09", "dev", TEST_BRIDGE, "nud", "permanent", NULL };
	const char *const learnt[] = { "/usr/sbin/ip", "neigh", "replace", "10.77.0.2", "lladdr",
				       "00:16:3e:4d:00:03", "dev", TEST_BRIDGE, "nud", "stale", NULL };
	const char *const foreign[] = { "/usr/sbin/ip", "neigh", "replace", "192.168.1.5", "lladdr",
					"02:00:00:00:01:05", "dev", TEST_BRIDGE, "nud", "permanent", NULL };
	struct network_subnet subnet;
	struct gpubox_config cfg;
	char out[2048];

	test_config(&cfg);
	assert_int_equal(network_setup(&cfg), 0);
	assert_int_equal(network_parse_subnet(cfg.bridge_address, &subnet), 0);
	/* A container stopped since (its entry stays pinned), an entry the
	 * bridge learnt from a forged ARP, and an admin's own entry. */
	assert_int_equal(spawn_quiet(stale), 0);
	assert_int_equal(spawn_quiet(learnt), 0);
	assert_int_equal(spawn_quiet(foreign), 0);

	assert_int_equal(neighbour_sync(TEST_BRIDGE, &subnet, two, 2), 0);
	neighbours(out, sizeof(out));
	assert_non_null(strstr(out, "10.77.0.2 lladdr 00:16:3e:4d:00:02 PERMANENT"));
	assert_non_null(strstr(out, "10.77.0.3 lladdr 00:16:3e:4d:00:03 PERMANENT"));
	assert_null(strstr(out, "10.77.0.9"));
	assert_non_null(strstr(out, "192.168.1.5 lladdr 02:00:00:00:01:05 PERMANENT"));

	/* Again: nothing doubled.  Then one stops, then the last. */
	assert_int_equal(neighbour_sync(TEST_BRIDGE, &subnet, two, 2), 0);
	assert_int_equal(neighbour_sync(TEST_BRIDGE, &subnet, two + 1, 1), 0);
	neighbours(out, sizeof(out));
	assert_null(strstr(out, "10.77.0.2 "));
	assert_non_null(strstr(out, "10.77.0.3 lladdr 00:16:3e:4d:00:03 PERMANENT"));
	assert_int_equal(neighbour_sync(TEST_BRIDGE, &subnet, NULL, 0), 0);
	neighbours(out, sizeof(out));
	assert_null(strstr(out, "10.77.0."));
	assert_non_null(strstr(out, "192.168.1.5 "));

	assert_int_equal(neighbour_sync("br;x", &subnet, two, 2), -EINVAL);
	assert_int_equal(neighbour_sync(TEST_BRIDGE, &subnet, NULL, 1), -EINVAL);
	assert_int_equal(network_teardown(TEST_BRIDGE), 0);
	assert_true(neighbour_sync(TEST_BRIDGE, &subnet, two, 2) < 0);
}

/* A hundred containers pinned and unpinned: the cost of one sync. */
static void test_neighbours_many(void **state)
{
	uint32_t many[100];
	struct network_subnet subnet;
	struct gpubox_config cfg;
	char out[16384];

	test_config(&cfg);
	assert_int_equal(network_setup(&cfg), 0);
	assert_int_equal(network_parse_subnet(cfg.bridge_address, &subnet), 0);
	for (size_t i = 0; i < ARRAY_SIZE(many); i++)
		many[i] = 0x0a4d0100 + (uint32_t)i;
	assert_int_equal(neighbour_sync(TEST_BRIDGE, &subnet, many, ARRAY_SIZE(many)), 0);
	neighbours(out, sizeof(out));
	assert_int_equal(tu_count_substr(out, "PERMANENT"), 100);
	assert_non_null(strstr(out, "10.77.1.99 lladdr 00:16:3e:4d:01:63 PERMANENT"));
	assert_int_equal(neighbour_sync(TEST_BRIDGE, &subnet, many, 1), 0);
	neighbours(out, sizeof(out));
	assert_int_equal(tu_count_substr(out, "PERMANENT"), 1);
	assert_int_equal(network_teardown(TEST_BRIDGE), 0);
}

int main(void)
{
	const struct CMUnitTest pure[] = {
		cmocka_unit_test(test_parse_subnet),
		cmocka_unit_test(test_parse_subnet_refused),
		cmocka_unit_test(test_member_address),
		cmocka_unit_test(test_valid_ifname),
		cmocka_unit_test(test_veth_and_mac),
		cmocka_unit_test(test_resolvers_parse),
	};
	const struct CMUnitTest netns[] = {
		cmocka_unit_test(test_setup),
		cmocka_unit_test(test_setup_refused),
		cmocka_unit_test(test_neighbours),
		cmocka_unit_test(test_neighbours_many),
	};
	int failed;

	failed = cmocka_run_group_tests_name("arithmetic", pure, NULL, NULL);
	failed += cmocka_run_group_tests_name("netns", netns, tu_setup_netns, NULL);
	return failed;
}
