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
#include <sys/prctl.h>
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
	{ .host_port = 2201, .container_address = "10.77.0.2", .container_port = 22 },
	{ .host_port = 2202, .container_address = "10.77.0.3", .container_port = 22 },
	{ .host_port = 8080, .container_address = "10.77.1.200", .container_port = 80 },
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

/* 10.77.0.2 and 10.77.0.3: ports gpv0a4d0002 and gpv0a4d0003. */
static const uint32_t test_containers[] = { 0x0a4d0002, 0x0a4d0003 };

static void test_render_containers(void **state)
{
	struct nft_plan plan = test_plan(0);
	__do_free char *text = NULL;

	plan.containers = test_containers;
	plan.ncontainers = ARRAY_SIZE(test_containers);
	text = nft_render(&plan);
	assert_non_null(text);
	/* Each running container's port, MAC and address, as container.c gives them. */
	assert_non_null(strstr(text,
		"table bridge gpubox_test {\n"
		"\tset containers {\n"
		"\t\ttype ifname . ether_addr . ipv4_addr\n"
		"\t\telements = { \"gpv0a4d0002\" . 00:16:3e:4d:00:02 . 10.77.0.2,\n"
		"\t\t\t     \"gpv0a4d0003\" . 00:16:3e:4d:00:03 . 10.77.0.3 }\n"
		"\t}\n"));
	/* From a container's port: IPv4 and ARP from its own MAC and address,
	 * then nothing (IPv6 included).  Other ports (the host's, and another
	 * agent's containers on another subnet) are untouched. */
	assert_non_null(strstr(text,
		"\tchain prerouting {\n"
		"\t\ttype filter hook prerouting priority -200; policy accept;\n"
		"\t\tiifname != \"gpv0a4d*\" accept\n"
		"\t\tether type ip iifname . ether saddr . ip saddr @containers accept\n"
		"\t\tether type arp arp htype 1 arp ptype ip arp hlen 6 arp plen 4 "
		"iifname . ether saddr . arp saddr ip @containers "
		"iifname . arp saddr ether . arp saddr ip @containers accept\n"
		"\t\tcounter drop\n"
		"\t}\n"));
	assert_int_equal(tu_count_substr(strstr(text, "table bridge gpubox_test {\n"), "ip6"), 0);
	assert_int_equal(tu_count_substr(text, "@containers"), 3);
	assert_int_equal(tu_count_substr(text, "gpv0a4d0002"), 1);
	/* Containers are still kept apart. */
	assert_non_null(strstr(text, "iifname \"gpv*\" oifname \"gpv*\" counter drop"));
}

/* The ports this agent's rules hold: its subnet's leading hex digits. */
static void test_render_own_ports(void **state)
{
	static const struct { const char *subnet; const char *ports; } cases[] = {
		{ "10.213.49.1/24", "iifname != \"gpv0ad531*\" accept" },
		{ "10.77.0.1/16", "iifname != \"gpv0a4d*\" accept" },
		/* Not a whole hex digit: the digits the prefix fixes, a wider net. */
		{ "10.213.48.1/22", "iifname != \"gpv0ad53*\" accept" },
		{ "10.0.0.1/8", "iifname != \"gpv0a*\" accept" },
	};
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct nft_plan plan = test_plan(0);
		__do_free char *text = NULL;

		plan.subnet = cases[i].subnet;
		text = nft_render(&plan);
		assert_non_null(text);
		assert_non_null(strstr(text, cases[i].ports));
	}
}

static void test_render_no_container(void **state)
{
	struct nft_plan plan = test_plan(0);
	__do_free char *text = nft_render(&plan);

	/* No running container: an empty set, every container port silent. */
	assert_non_null(text);
	assert_non_null(strstr(text, "\tset containers {\n\t\ttype ifname . ether_addr . ipv4_addr\n\t}\n"));
	assert_int_equal(tu_count_substr(text, "elements"), 0);
	assert_non_null(strstr(text, "@containers accept\n\t\tcounter drop\n"));
	/* No denied network, no resolver: the sets are declared empty. */
	assert_non_null(strstr(text, "\tset egress_deny {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\tauto-merge\n\t}\n"));
	assert_non_null(strstr(text, "\tset resolvers {\n\t\ttype ipv4_addr\n\t}\n"));
}

static const struct config_network test_deny[] = {
	{ 0xa9fe0000, 16 },        /* 169.254.0.0/16 */
	{ 0xc0a80a00, 24 },        /* 192.168.10.0/24 */
	{ 0xc0a80000, 16 },        /* 192.168.0.0/16: overlaps, merged by nft */
	{ 0x0a010203, 32 },
};
static const uint32_t test_resolvers[] = { 0xc0a80a35, 0x08080808 };

static void test_render_egress(void **state)
{
	struct nft_plan plan = test_plan(0);
	__do_free char *text = NULL;
	const char *forward, *jump, *established, *accept;

	plan.egress_deny = test_deny;
	plan.negress_deny = ARRAY_SIZE(test_deny);
	plan.resolvers = test_resolvers;
	plan.nresolvers = ARRAY_SIZE(test_resolvers);
	text = nft_render(&plan);
	assert_non_null(text);
	assert_non_null(strstr(text,
		"\tset egress_deny {\n"
		"\t\ttype ipv4_addr\n"
		"\t\tflags interval\n"
		"\t\tauto-merge\n"
		"\t\telements = { 169.254.0.0/16, 192.168.10.0/24, 192.168.0.0/16, 10.1.2.3/32 }\n"
		"\t}\n"
		"\tset resolvers {\n"
		"\t\ttype ipv4_addr\n"
		"\t\telements = { 192.168.10.53, 8.8.8.8 }\n"
		"\t}\n"
		"\tchain egress {\n"
		"\t\tct state established,related accept\n"
		"\t\tip daddr @resolvers meta l4proto { tcp, udp } th dport 53 accept\n"
		"\t\tip daddr @egress_deny counter reject with icmp admin-prohibited\n"
		"\t}\n"
		"\tchain input {\n"
		"\t\ttype filter hook input priority 0; policy accept;\n"
		"\t\tiifname \"gptestbr0\" jump egress\n"
		"\t}\n"));
	/* Routed: after the replies are let through, before the rest of the
	 * containers' traffic is. */
	forward = strstr(text, "\tchain forward {\n\t\ttype filter hook forward");
	assert_non_null(forward);
	established = strstr(forward, "ct state established,related accept\n");
	jump = strstr(forward, "\t\tiifname \"gptestbr0\" jump egress\n");
	accept = strstr(forward, "\t\tiifname \"gptestbr0\" accept\n");
	assert_non_null(established);
	assert_non_null(jump);
	assert_non_null(accept);
	assert_true(established < jump && jump < accept);
	assert_int_equal(tu_count_substr(text, "jump egress"), 2);
}

/* Networks as cidr_parse_list() gives them; the test fails on a bad list. */
static size_t test_networks(const char *text, struct cidr out[static CIDR_LIST_MAX])
{
	char err[256];
	size_t n = 0;

	if (cidr_parse_list(text, out, &n, err, sizeof(err)) != 0)
		fail_msg("%s: %s", text, err);
	return n;
}

/* Ports with a list, in a set; each port with each of its networks, IPv4
 * in the ip table and IPv6 in the ip6 table; dropped before the DNAT. */
static void test_render_allow(void **state)
{
	struct cidr mixed[CIDR_LIST_MAX], v6[CIDR_LIST_MAX];
	struct nft_forward fwd[3] = {
		{ .host_port = 2201, .container_address = "10.77.0.2", .container_port = 22 },
		{ .host_port = 2202, .container_address = "10.77.0.3", .container_port = 22 },
		{ .host_port = 8080, .container_address = "10.77.1.200", .container_port = 80 },
	};
	struct nft_plan plan = test_plan(0);
	__do_free char *text = NULL;
	const char *ip6, *bridge;

	(void)state;
	fwd[0].nfrom = test_networks("192.168.1.0/24,10.9.9.9,2001:db8::/32", mixed);
	fwd[0].from = mixed;
	fwd[2].nfrom = test_networks("fd00::/8", v6);
	fwd[2].from = v6;
	plan.forwards = fwd;
	plan.nforwards = ARRAY_SIZE(fwd);
	text = nft_render(&plan);
	assert_non_null(text);
	ip6 = strstr(text, "table ip6 gpubox_test {}\ndelete table ip6 gpubox_test\ntable ip6 gpubox_test {\n");
	bridge = strstr(text, "table bridge gpubox_test {}");
	assert_non_null(ip6);
	assert_non_null(bridge);
	assert_true(ip6 < bridge);
	/* IPv4: port 8080's list has no IPv4 network, so it takes none. */
	assert_non_null(strstr(text,
		"\tset allowed_ports {\n"
		"\t\ttype inet_service\n"
		"\t\telements = { 2201, 8080 }\n"
		"\t}\n"
		"\tset allowed_from {\n"
		"\t\ttype inet_service . ipv4_addr\n"
		"\t\tflags interval\n"
		"\t\telements = { 2201 . 10.9.9.9,\n"
		"\t\t\t     2201 . 192.168.1.0/24 }\n"
		"\t}\n"
		"\tchain allow {\n"
		"\t\ttype filter hook prerouting priority -110; policy accept;\n"
		"\t\tfib daddr type local ct direction original tcp dport @allowed_ports "
		"tcp dport . ip saddr != @allowed_from counter drop\n"
		"\t}\n"));
	assert_true(strstr(text, "type inet_service . ipv4_addr") < ip6);
	assert_non_null(strstr(ip6,
		"\t\telements = { 2201, 8080 }\n"
		"\t}\n"
		"\tset allowed_from {\n"
		"\t\ttype inet_service . ipv6_addr\n"
		"\t\tflags interval\n"
		"\t\telements = { 2201 . 2001:db8::/32,\n"
		"\t\t\t     8080 . fd00::/8 }\n"
		"\t}\n"));
	assert_non_null(strstr(ip6, "tcp dport . ip6 saddr != @allowed_from counter drop\n"));
	/* Port 2202 has no list: every address. */
	assert_null(strstr(text, "2202 ."));
	assert_int_equal(tu_count_substr(text, "chain allow {"), 2);
}

/* No list anywhere: the sets are declared empty, nothing is dropped. */
static void test_render_allow_none(void **state)
{
	struct nft_plan plan = test_plan(ARRAY_SIZE(test_forwards));
	__do_free char *text = nft_render(&plan);

	(void)state;
	assert_non_null(text);
	assert_non_null(strstr(text, "\tset allowed_ports {\n\t\ttype inet_service\n\t}\n"));
	assert_non_null(strstr(text, "\t\ttype inet_service . ipv4_addr\n\t\tflags interval\n\t}\n"));
	assert_non_null(strstr(text, "\t\ttype inet_service . ipv6_addr\n\t\tflags interval\n\t}\n"));
	assert_int_equal(tu_count_substr(text, "elements = { 22"), 0);
}

static void expect_refused(const struct nft_plan *plan)
{
	char *text = nft_render(plan);

	assert_null(text);
	assert_int_equal(errno, EINVAL);
}

/* The package cache: exactly its address and port, after DNS and before
 * egress_deny's reject; no line without one. */
static void test_render_apt_cache(void **state)
{
	struct nft_plan plan = test_plan(0);
	__do_free char *without = NULL, *with = NULL;

	(void)state;
	plan.egress_deny = test_deny;
	plan.negress_deny = ARRAY_SIZE(test_deny);
	without = nft_render(&plan);
	assert_non_null(without);
	assert_null(strstr(without, "tcp dport 3142"));
	plan.apt_cache = 0xc0a80a07;        /* 192.168.10.7, inside a denied network */
	plan.apt_cache_port = 3142;
	with = nft_render(&plan);
	assert_non_null(with);
	assert_non_null(strstr(with,
		"\t\tip daddr @resolvers meta l4proto { tcp, udp } th dport 53 accept\n"
		"\t\tip daddr 192.168.10.7 tcp dport 3142 accept\n"
		"\t\tip daddr @egress_deny counter reject with icmp admin-prohibited\n"));
	assert_int_equal(tu_count_substr(with, "3142"), 1);
	plan.apt_cache_port = 0;
	expect_refused(&plan);
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
	struct nft_forward fwd[2] = {
		{ .host_port = 2201, .container_address = "10.77.0.2", .container_port = 22 },
		{ .host_port = 2202, .container_address = "10.77.0.3", .container_port = 22 },
	};
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

static void test_render_refuses_allow(void **state)
{
	struct cidr nets[CIDR_LIST_MAX + 1];
	struct nft_forward fwd = { .host_port = 2201, .container_address = "10.77.0.2",
				   .container_port = 22, .from = nets };
	struct nft_plan plan = test_plan(0);

	(void)state;
	plan.forwards = &fwd;
	plan.nforwards = 1;
	fwd.nfrom = test_networks("10.0.0.0/8", nets);
	{
		__do_free char *ok = nft_render(&plan);

		assert_non_null(ok);
	}
	nets[0].address[3] = 1;                  /* a host bit */
	expect_refused(&plan);
	nets[0].address[3] = 0;
	nets[0].prefix = 33;
	expect_refused(&plan);
	nets[0].prefix = 8;
	nets[0].family = 5;
	expect_refused(&plan);
	nets[0].family = CIDR_IPV4;
	for (size_t i = 1; i < ARRAY_SIZE(nets); i++)
		nets[i] = nets[0];
	fwd.nfrom = CIDR_LIST_MAX + 1;           /* too many */
	expect_refused(&plan);
	fwd.nfrom = 1;
	fwd.from = NULL;                          /* a count without its array */
	expect_refused(&plan);
}

static void test_render_refuses_containers_egress(void **state)
{
	static const uint32_t bad_containers[][2] = {
		{ 0x0a4d0002, 0x0a4e0002 },      /* outside the subnet */
		{ 0x0a4d0002, 0x0a4d0000 },      /* the network */
		{ 0x0a4d0002, 0x0a4dffff },      /* the broadcast */
		{ 0x0a4d0002, 0x0a4d0002 },      /* twice */
	};
	static const struct config_network bad_deny[] = {
		{ 0x0a010203, 8 }, { 0x0a000000, 33 }, { 0x00000001, 0 },
	};
	static const uint32_t twice[] = { 0x08080808, 0x08080808 };
	struct nft_plan plan;

	for (size_t i = 0; i < ARRAY_SIZE(bad_containers); i++) {
		plan = test_plan(0);
		plan.containers = bad_containers[i];
		plan.ncontainers = 2;
		expect_refused(&plan);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad_deny); i++) {
		plan = test_plan(0);
		plan.egress_deny = &bad_deny[i];
		plan.negress_deny = 1;
		expect_refused(&plan);
	}
	plan = test_plan(0);
	plan.resolvers = twice;
	plan.nresolvers = 2;
	expect_refused(&plan);
	plan.nresolvers = 1;
	{
		__do_free char *ok = nft_render(&plan);

		assert_non_null(ok);
	}
	/* A count without its array. */
	plan = test_plan(0);
	plan.ncontainers = 1;
	expect_refused(&plan);
	plan = test_plan(0);
	plan.negress_deny = 1;
	expect_refused(&plan);
	plan = test_plan(0);
	plan.nresolvers = 1;
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
	assert_int_equal(nft_list("ip", "gpubox_test", &listed), -ENOENT);
	assert_int_equal(nft_apply(text), 0);
	assert_int_equal(nft_list("ip", "gpubox_test", &listed), 0);
	assert_non_null(strstr(listed, "table ip gpubox_test"));
	assert_int_equal(tu_count_substr(listed, "dnat to 10.77.0.2:22"), 2);
	assert_int_equal(tu_count_substr(listed, "dnat to 10.77.1.200:80"), 2);
	assert_int_equal(tu_count_substr(listed, "masquerade"), 1);
	assert_int_equal(tu_count_substr(listed, "ct status dnat accept"), 1);
	/* The other two families are there too, and a family nft_list does not
	 * know is refused before anything reaches nftables. */
	assert_int_equal(nft_list("ip6", "gpubox_test", &again), 0);
	assert_non_null(strstr(again, "table ip6 gpubox_test"));
	free(again);
	again = NULL;
	assert_int_equal(nft_list("bridge", "gpubox_test", &again), 0);
	assert_non_null(strstr(again, "table bridge gpubox_test"));
	free(again);
	again = NULL;
	assert_int_equal(nft_list("inet", "gpubox_test", &again), -EINVAL);
	assert_int_equal(nft_list("ip; flush ruleset", "gpubox_test", &again), -EINVAL);

	/* Applying the same text again gives the same ruleset, nothing doubled. */
	assert_int_equal(nft_apply(text), 0);
	assert_int_equal(nft_list("ip", "gpubox_test", &again), 0);
	assert_string_equal(listed, again);
	free(again);
	again = NULL;

	/* A smaller plan replaces the table: the old forwards are gone. */
	{
		struct nft_plan one = test_plan(1);
		__do_free char *text1 = nft_render(&one);

		assert_non_null(text1);
		assert_int_equal(nft_apply(text1), 0);
		assert_int_equal(nft_list("ip", "gpubox_test", &again), 0);
		assert_int_equal(tu_count_substr(again, "dnat to"), 2);
		assert_int_equal(tu_count_substr(again, "10.77.1.200"), 0);
	}

	assert_int_equal(nft_remove("gpubox_test"), 0);
	free(listed);
	listed = NULL;
	assert_int_equal(nft_list("ip", "gpubox_test", &listed), -ENOENT);
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
 * A peer: a child in its own network namespace.  It serves TCP ports 22
 * and 53, answering "SSH-2.0-from-<client address>", and on request (a
 * line on its command pipe) replies with one line:
 *   "ADDRESS PORT [SOURCE]"  connects there (from SOURCE) and replies with
 *                            the first line it read, or "FAIL";
 *   "ip ARGS..."             runs ip(8) on its eth0, as the container's
 *                            root would: "OK" or "FAIL".
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

/* Connect (from source, if not NULL) with a 1 s limit and read one line;
 * "FAIL" if anything goes wrong. */
static void probe_from(const char *source, const char *address, unsigned port, char *line,
		       size_t len)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct sockaddr_in from = { .sin_family = AF_INET };
	__do_close int fd = -EBADF;
	struct pollfd pfd;
	size_t got = 0;
	int err = 0;
	socklen_t errlen = sizeof(err);

	snprintf(line, len, "FAIL");
	inet_pton(AF_INET, address, &sa.sin_addr);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (source && (inet_pton(AF_INET, source, &from.sin_addr) != 1 ||
		       bind(fd, (struct sockaddr *)&from, sizeof(from)) < 0))
		return;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
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

static void probe(const char *address, unsigned port, char *line, size_t len)
{
	probe_from(NULL, address, port, line, len);
}

static void serve_one(int listener)
{
	struct sockaddr_in from;
	socklen_t fromlen = sizeof(from);
	char banner[64], addr[16];
	int fd = accept(listener, (struct sockaddr *)&from, &fromlen);

	if (fd < 0)
		return;
	inet_ntop(AF_INET, &from.sin_addr, addr, sizeof(addr));
	snprintf(banner, sizeof(banner), "SSH-2.0-from-%s\r\n", addr);
	if (write(fd, banner, strlen(banner)) < 0)
		_exit(1);
	close(fd);
}

/* "ip" and up to five words, on eth0 (the request names it). */
static void peer_run_ip(char *request, char *line, size_t len)
{
	const char *argv[8] = { IP };
	char *save = NULL;
	size_t n = 1;

	strtok_r(request, " \n", &save);
	for (char *w = strtok_r(NULL, " \n", &save); w && n < 7; w = strtok_r(NULL, " \n", &save))
		argv[n++] = w;
	snprintf(line, len, "%s", run_ip(argv) == 0 ? "OK" : "FAIL");
}

static void peer_command(int cmd, int reply)
{
	char request[128] = "", source[32] = "", address[32], line[128];
	unsigned port;
	ssize_t n = read(cmd, request, sizeof(request) - 1);
	size_t l;

	if (n <= 0)
		_exit(0);
	if (strncmp(request, "ip ", 3) == 0)
		peer_run_ip(request, line, sizeof(line) - 1);
	else if (sscanf(request, "%31s %u %31s", address, &port, source) >= 2)
		probe_from(source[0] ? source : NULL, address, port, line, sizeof(line) - 1);
	else
		_exit(1);
	l = strlen(line);
	line[l] = '\n';
	if (write(reply, line, l + 1) < 0)
		_exit(1);
}

/* Serve listeners (-1: none) and, if cmd >= 0, requests on cmd; until cmd closes or a kill. */
static void peer_serve(const int listeners[2], int cmd, int reply)
{
	for (;;) {
		struct pollfd pfd[3] = { { .fd = listeners[0], .events = POLLIN },
					 { .fd = listeners[1], .events = POLLIN },
					 { .fd = cmd, .events = POLLIN } };

		if (poll(pfd, 3, -1) < 0)
			_exit(1);
		for (size_t i = 0; i < 2; i++)
			if (pfd[i].revents & POLLIN)
				serve_one(listeners[i]);
		if (pfd[2].revents & (POLLIN | POLLHUP))
			peer_command(cmd, reply);
	}
}

static int listen_on(unsigned port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0)
		_exit(1);
	return fd;
}

/* A server of port 22 in the test's own namespace: the host's services. */
static pid_t host_server_start(void)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		int listeners[2] = { -1, -1 };

		/* Gone with the test, also when an assertion ends it early. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
			_exit(1);
		listeners[0] = listen_on(22);
		peer_serve(listeners, -1, -1);
	}
	return pid;
}

static void peer_child(int cmd, int reply, const char *cidr, const char *gateway, const char *mac)
{
	const char *const lo[] = { IP, "link", "set", "dev", "lo", "up", NULL };
	const char *const hwaddr[] = { IP, "link", "set", "dev", "gptestpeer", "address",
				       mac ? mac : "", NULL };
	const char *const rename[] = { IP, "link", "set", "dev", "gptestpeer", "name", "eth0", NULL };
	const char *const addr[] = { IP, "address", "add", cidr, "dev", "eth0", NULL };
	const char *const up[] = { IP, "link", "set", "dev", "eth0", "up", NULL };
	const char *const route[] = { IP, "route", "add", "default", "via", gateway, NULL };
	int listeners[2];
	char c;

	if (unshare(CLONE_NEWNET) < 0 || write(reply, "r", 1) != 1)
		_exit(1);
	/* The parent moves the interface in. */
	if (read(cmd, &c, 1) != 1)
		_exit(1);
	if (run_ip(lo) || (mac && run_ip(hwaddr)) || run_ip(rename) || run_ip(addr) || run_ip(up) ||
	    run_ip(route))
		_exit(1);
	listeners[0] = listen_on(22);
	listeners[1] = listen_on(53);
	if (write(reply, "r", 1) != 1)
		_exit(1);
	peer_serve(listeners, cmd, reply);
	_exit(0);
}

/* host_if: the host side of the veth; attached to the bridge if bridge != NULL,
 * else given host_cidr.  mac: its eth0's, or NULL for the kernel's choice. */
static void peer_start(struct peer *p, const char *host_if, const char *bridge,
		       const char *host_cidr, const char *cidr, const char *gateway, const char *mac)
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
		peer_child(to_child[0], from_child[1], cidr, gateway, mac);
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

/* A request to the peer (see struct peer) and its one-line answer. */
static void peer_ask(struct peer *p, const char *request, char *line, size_t len)
{
	size_t got = 0;

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

/* From inside the peer: the first line answered by address:port, or "FAIL". */
static void peer_probe(struct peer *p, const char *address, unsigned port, char *line, size_t len)
{
	char request[64];

	snprintf(request, sizeof(request), "%s %u", address, port);
	peer_ask(p, request, line, len);
}

static void peer_stop(struct peer *p)
{
	close(p->cmd);
	close(p->reply);
	kill(p->pid, SIGKILL);
	waitpid(p->pid, NULL, 0);
}

/* Two containers on the test bridge, with the MACs container.c gives
 * them, and a host outside on a link of its own. */
struct e2e {
	struct peer a, b, outside;
};

static const uint32_t e2e_containers[] = { 0x0a4d0002, 0x0a4d0003 };
static const struct nft_forward e2e_forwards[] = {
	{ .host_port = 2201, .container_address = "10.77.0.3", .container_port = 22 },
};

static struct nft_plan e2e_plan(void)
{
	return (struct nft_plan){
		.table = "gpubox_test", .bridge = E2E_BRIDGE, .subnet = "10.77.0.0/16",
		.forwards = e2e_forwards, .nforwards = ARRAY_SIZE(e2e_forwards),
		.containers = e2e_containers, .ncontainers = ARRAY_SIZE(e2e_containers),
	};
}

static void e2e_start(struct e2e *e)
{
	struct gpubox_config cfg;

	config_set_defaults(&cfg);
	snprintf(cfg.bridge, sizeof(cfg.bridge), E2E_BRIDGE);
	snprintf(cfg.bridge_address, sizeof(cfg.bridge_address), "10.77.0.1/16");
	assert_int_equal(network_setup(&cfg), 0);
	peer_start(&e->a, NETWORK_VETH_PREFIX "0a4d0002", E2E_BRIDGE, NULL, "10.77.0.2/16", "10.77.0.1",
		   "00:16:3e:4d:00:02");
	peer_start(&e->b, NETWORK_VETH_PREFIX "0a4d0003", E2E_BRIDGE, NULL, "10.77.0.3/16", "10.77.0.1",
		   "00:16:3e:4d:00:03");
	peer_start(&e->outside, "gptestout", NULL, "192.168.200.1/24", "192.168.200.2/24",
		   "192.168.200.1", NULL);
}

static void e2e_apply(const struct nft_plan *plan)
{
	__do_free char *text = nft_render(plan);

	assert_non_null(text);
	assert_int_equal(nft_apply(text), 0);
}

static void e2e_stop(struct e2e *e)
{
	/* The peers' namespaces go away in the background: their veths are
	 * deleted now, so that the next test can make them again. */
	const char *const links[] = { NETWORK_VETH_PREFIX "0a4d0002", NETWORK_VETH_PREFIX "0a4d0003",
				      "gptestout" };

	peer_stop(&e->a);
	peer_stop(&e->b);
	peer_stop(&e->outside);
	for (size_t i = 0; i < ARRAY_SIZE(links); i++) {
		const char *const del[] = { IP, "link", "delete", "dev", links[i], NULL };

		spawn_quiet(del);
	}
	assert_int_equal(nft_remove("gpubox_test"), 0);
	assert_int_equal(network_teardown(E2E_BRIDGE), 0);
}

static void test_end_to_end(void **state)
{
	struct nft_plan plan = e2e_plan();
	struct e2e e;
	char line[128];

	e2e_start(&e);
	/* Without the table, containers reach each other: the baseline. */
	peer_probe(&e.a, "10.77.0.3", 22, line, sizeof(line));
	assert_string_equal(line, "SSH-2.0-from-10.77.0.2");

	e2e_apply(&plan);

	/* A client outside reaches the forwarded port; the container sees the
	 * client's own address, not the host's. */
	peer_probe(&e.outside, "192.168.200.1", 2201, line, sizeof(line));
	assert_string_equal(line, "SSH-2.0-from-192.168.200.2");

	/* The host itself reaches host:port (the output chain). */
	probe("192.168.200.1", 2201, line, sizeof(line));
	assert_string_equal(line, "SSH-2.0-from-192.168.200.1");
	assert_int_equal(container_wait_ssh("10.77.0.1", 2201, 5, NULL), 0);

	/* Outbound traffic of a container is masqueraded. */
	peer_probe(&e.b, "192.168.200.2", 22, line, sizeof(line));
	assert_string_equal(line, "SSH-2.0-from-192.168.200.1");

	/* Containers cannot reach each other: not on the bridge (layer 2),
	 * not through the host's forwarded port (layer 3). */
	peer_probe(&e.a, "10.77.0.3", 22, line, sizeof(line));
	assert_string_equal(line, "FAIL");
	peer_probe(&e.a, "10.77.0.1", 2201, line, sizeof(line));
	assert_string_equal(line, "FAIL");
	/* br_netfilter (built in on this kernel; Docker loads it elsewhere)
	 * bridges such a hairpin, and the bridge table drops it.  Without it
	 * the packet is routed, and the routed rule must drop it. */
	if (write_sysctl(BR_NF_CALL_IPTABLES, "0") == 0) {
		__do_free char *listed = NULL;
		const char *counter;

		peer_probe(&e.a, "10.77.0.1", 2201, line, sizeof(line));
		assert_string_equal(line, "FAIL");
		assert_int_equal(nft_list("ip", "gpubox_test", &listed), 0);
		counter = strstr(listed, "iifname \"" E2E_BRIDGE "\" oifname \"" E2E_BRIDGE "\" counter packets ");
		assert_non_null(counter);
		assert_true(strtoul(strstr(counter, "packets ") + 8, NULL, 10) > 0);
		assert_int_equal(write_sysctl(BR_NF_CALL_IPTABLES, "1"), 0);
	}
	/* Nor is a container reachable from outside except through a forward. */
	peer_probe(&e.outside, "10.77.0.3", 22, line, sizeof(line));
	assert_string_equal(line, "FAIL");
	e2e_stop(&e);
}

/*
 * A forward with an allow-list: a source inside reaches the container, one
 * outside does not (nor is its connection translated), the host itself
 * still does, and a list of IPv6 networks alone takes no IPv4 client.
 * Without the list the port is open to all again.
 */
static void test_allow(void **state)
{
	struct cidr inside[CIDR_LIST_MAX], v6[CIDR_LIST_MAX];
	struct nft_forward fwd = e2e_forwards[0];
	struct nft_plan plan = e2e_plan();
	struct e2e e;
	char line[128];

	(void)state;
	e2e_start(&e);
	peer_ask(&e.outside, "ip address add 192.168.200.3/24 dev eth0", line, sizeof(line));
	assert_string_equal(line, "OK");
	fwd.nfrom = test_networks("192.168.200.2,10.0.0.0/8", inside);
	fwd.from = inside;
	plan.forwards = &fwd;
	plan.nforwards = 1;
	e2e_apply(&plan);
	peer_ask(&e.outside, "192.168.200.1 2201 192.168.200.2", line, sizeof(line));
	assert_string_equal(line, "SSH-2.0-from-192.168.200.2");
	peer_ask(&e.outside, "192.168.200.1 2201 192.168.200.3", line, sizeof(line));
	assert_string_equal(line, "FAIL");
	probe("192.168.200.1", 2201, line, sizeof(line));
	assert_string_equal(line, "SSH-2.0-from-192.168.200.1");
	{
		__do_free char *listed = NULL;
		const char *counter;

		assert_int_equal(nft_list("ip", "gpubox_test", &listed), 0);
		counter = strstr(listed, "@allowed_from counter packets ");
		assert_non_null(counter);
		assert_true(strtoul(strstr(counter, "packets ") + 8, NULL, 10) > 0);
	}

	fwd.nfrom = test_networks("2001:db8::/32", v6);
	fwd.from = v6;
	e2e_apply(&plan);
	peer_ask(&e.outside, "192.168.200.1 2201 192.168.200.2", line, sizeof(line));
	assert_string_equal(line, "FAIL");

	fwd.nfrom = 0;
	e2e_apply(&plan);
	peer_ask(&e.outside, "192.168.200.1 2201 192.168.200.3", line, sizeof(line));
	assert_string_equal(line, "SSH-2.0-from-192.168.200.3");
	e2e_stop(&e);
}

/* A container that takes an address or a MAC not its own is cut off;
 * with its own it works.  Each attack succeeds without the table. */
static void test_spoofing(void **state)
{
	struct nft_plan plan = e2e_plan();
	pid_t host = host_server_start();
	struct e2e e;
	char line[128];

	e2e_start(&e);
	/* 10.77.0.9 belongs to no container: the host asks who has it, and
	 * a answers.  A MAC of another container. */
	peer_ask(&e.a, "ip address add 10.77.0.9/32 dev eth0", line, sizeof(line));
	assert_string_equal(line, "OK");
	peer_ask(&e.a, "10.77.0.1 22 10.77.0.9", line, sizeof(line));
	assert_string_equal(line, "SSH-2.0-from-10.77.0.9");
	peer_ask(&e.a, "ip link set dev eth0 address 00:16:3e:4d:00:03", line, sizeof(line));
	assert_string_equal(line, "OK");
	peer_probe(&e.a, "192.168.200.2", 22, line, sizeof(line));
	assert_string_equal(line, "SSH-2.0-from-10.77.0.2");    /* no table: no masquerade */
	peer_ask(&e.a, "ip link set dev eth0 address 00:16:3e:4d:00:02", line, sizeof(line));
	assert_string_equal(line, "OK");

	e2e_apply(&plan);
	peer_ask(&e.a, "10.77.0.1 22 10.77.0.9", line, sizeof(line));
	assert_string_equal(line, "FAIL");
	peer_ask(&e.a, "ip link set dev eth0 address 00:16:3e:4d:00:03", line, sizeof(line));
	assert_string_equal(line, "OK");
	peer_probe(&e.a, "192.168.200.2", 22, line, sizeof(line));
	assert_string_equal(line, "FAIL");
	peer_ask(&e.a, "ip link set dev eth0 address 00:16:3e:4d:00:02", line, sizeof(line));
	assert_string_equal(line, "OK");
	/* Its own address and MAC: the gateway, the host, the world. */
	peer_ask(&e.a, "10.77.0.1 22 10.77.0.2", line, sizeof(line));
	assert_string_equal(line, "SSH-2.0-from-10.77.0.2");
	peer_probe(&e.a, "192.168.200.2", 22, line, sizeof(line));
	assert_string_equal(line, "SSH-2.0-from-192.168.200.1");

	/* A container not running (not in the plan) sends nothing at all. */
	plan.ncontainers = 1;
	e2e_apply(&plan);
	peer_probe(&e.b, "10.77.0.1", 22, line, sizeof(line));
	assert_string_equal(line, "FAIL");
	peer_probe(&e.a, "10.77.0.1", 22, line, sizeof(line));
	assert_string_equal(line, "SSH-2.0-from-10.77.0.2");

	e2e_stop(&e);
	kill(host, SIGKILL);
	waitpid(host, NULL, 0);
}

/* egress_deny: the outside link denied, its resolver's DNS port not. */
static void test_egress(void **state)
{
	static const struct config_network deny[] = { { 0xc0a8c800, 24 } };   /* 192.168.200.0/24 */
	static const uint32_t resolvers[] = { 0xc0a8c802 };                    /* 192.168.200.2 */
	struct nft_plan plan = e2e_plan();
	pid_t host = host_server_start();
	struct e2e e;
	char line[128];

	e2e_start(&e);
	e2e_apply(&plan);
	peer_probe(&e.b, "192.168.200.2", 22, line, sizeof(line));
	assert_string_equal(line, "SSH-2.0-from-192.168.200.1");
	peer_probe(&e.b, "192.168.200.1", 22, line, sizeof(line));
	assert_string_equal(line, "SSH-2.0-from-10.77.0.3");

	plan.egress_deny = deny;
	plan.negress_deny = ARRAY_SIZE(deny);
	plan.resolvers = resolvers;
	plan.nresolvers = ARRAY_SIZE(resolvers);
	e2e_apply(&plan);
	/* Routed, and the host's own address there (the input hook). */
	peer_probe(&e.b, "192.168.200.2", 22, line, sizeof(line));
	assert_string_equal(line, "FAIL");
	peer_probe(&e.b, "192.168.200.1", 22, line, sizeof(line));
	assert_string_equal(line, "FAIL");
	/* The resolver's DNS port, the gateway, and the way in stay open. */
	peer_probe(&e.b, "192.168.200.2", 53, line, sizeof(line));
	assert_string_equal(line, "SSH-2.0-from-192.168.200.1");
	peer_probe(&e.b, "10.77.0.1", 22, line, sizeof(line));
	assert_string_equal(line, "SSH-2.0-from-10.77.0.3");
	peer_probe(&e.outside, "192.168.200.1", 2201, line, sizeof(line));
	assert_string_equal(line, "SSH-2.0-from-192.168.200.2");

	e2e_stop(&e);
	kill(host, SIGKILL);
	waitpid(host, NULL, 0);
}

/* A package cache inside egress_deny: its address and port get through,
 * not its other ports, not the rest of the denied network. */
static void test_egress_apt_cache(void **state)
{
	static const struct config_network deny[] = { { 0xc0a8c800, 24 } };   /* 192.168.200.0/24 */
	struct nft_plan plan = e2e_plan();
	pid_t host = host_server_start();
	struct e2e e;
	char line[128];

	(void)state;
	e2e_start(&e);
	plan.egress_deny = deny;
	plan.negress_deny = ARRAY_SIZE(deny);
	plan.apt_cache = 0xc0a8c802;       /* 192.168.200.2 */
	plan.apt_cache_port = 22;
	e2e_apply(&plan);
	peer_probe(&e.b, "192.168.200.2", 22, line, sizeof(line));
	assert_string_equal(line, "SSH-2.0-from-192.168.200.1");
	peer_probe(&e.b, "192.168.200.2", 53, line, sizeof(line));
	assert_string_equal(line, "FAIL");
	peer_probe(&e.b, "192.168.200.1", 22, line, sizeof(line));
	assert_string_equal(line, "FAIL");

	e2e_stop(&e);
	kill(host, SIGKILL);
	waitpid(host, NULL, 0);
}

int main(void)
{
	const struct CMUnitTest render[] = {
		cmocka_unit_test(test_render_none),
		cmocka_unit_test(test_render_one),
		cmocka_unit_test(test_render_several),
		cmocka_unit_test(test_render_refuses),
		cmocka_unit_test(test_render_containers),
		cmocka_unit_test(test_render_own_ports),
		cmocka_unit_test(test_render_no_container),
		cmocka_unit_test(test_render_egress),
		cmocka_unit_test(test_render_refuses_containers_egress),
		cmocka_unit_test(test_render_apt_cache),
		cmocka_unit_test(test_render_allow),
		cmocka_unit_test(test_render_allow_none),
		cmocka_unit_test(test_render_refuses_allow),
	};
	const struct CMUnitTest apply[] = {
		cmocka_unit_test(test_apply_list_remove),
		cmocka_unit_test(test_apply_bad_text),
		cmocka_unit_test(test_end_to_end),
		cmocka_unit_test(test_spoofing),
		cmocka_unit_test(test_allow),
		cmocka_unit_test(test_egress),
		cmocka_unit_test(test_egress_apt_cache),
	};
	int failed;

	failed = cmocka_run_group_tests_name("render", render, NULL, NULL);
	failed += cmocka_run_group_tests_name("apply", apply, setup_netns, NULL);
	return failed;
}
