/* SPDX-License-Identifier: MIT */
/*
 * The agent's bridge: one Linux bridge carrying the host's address in the
 * containers' subnet, the containers' gateway.  Changes go through ip(8)
 * with an argument vector (spawn_run), never a shell.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/net.h"
#include "cleanup.h"
#include "log.h"
#include "spawn.h"
#include "strutil.h"

#include "banned.h"

#define NETWORK_IP "/usr/sbin/ip"
#define NETWORK_IP_FORWARD "/proc/sys/net/ipv4/ip_forward"

void network_veth_name(uint32_t address, char name[static NETWORK_IFNAME_MAX])
{
	snprintf(name, NETWORK_IFNAME_MAX, NETWORK_VETH_PREFIX "%08x", address);
}

void network_member_mac(uint32_t address, uint8_t mac[static 6])
{
	static const uint8_t prefix[3] = { NETWORK_MAC_PREFIX };

	memcpy(mac, prefix, sizeof(prefix));
	mac[3] = (address >> 16) & 0xff;
	mac[4] = (address >> 8) & 0xff;
	mac[5] = address & 0xff;
}

void network_gateway_mac_text(const struct network_subnet *subnet, char *buf, size_t len)
{
	uint8_t mac[6];

	network_member_mac(subnet->host_address, mac);
	snprintf(buf, len, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
		 mac[5]);
}

bool network_valid_ifname(const char *name)
{
	size_t len;

	if (!name)
		return false;
	len = strlen(name);
	if (len == 0 || len > 15 || !strcmp(name, ".") || !strcmp(name, ".."))
		return false;
	for (const char *c = name; *c; c++) {
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '_' || *c == '.' || *c == '-'))
			return false;
	}
	return true;
}

int network_parse_address(const char *text, uint32_t *address)
{
	struct in_addr in;

	/* inet_pton takes exactly four decimal parts, no leading zeros or blanks. */
	if (!text || inet_pton(AF_INET, text, &in) != 1)
		return -EINVAL;
	*address = ntohl(in.s_addr);
	return 0;
}

void network_format_address(uint32_t address, char buf[static 16])
{
	struct in_addr in = { .s_addr = htonl(address) };

	inet_ntop(AF_INET, &in, buf, 16);
}

int network_parse_cidr(const char *cidr, uint32_t *address, unsigned *prefix)
{
	char addr[INET_ADDRSTRLEN];
	const char *slash;
	uint32_t p;

	if (!cidr)
		return -EINVAL;
	slash = strchr(cidr, '/');
	if (!slash || (size_t)(slash - cidr) >= sizeof(addr))
		return -EINVAL;
	memcpy(addr, cidr, slash - cidr);
	addr[slash - cidr] = '\0';
	if (network_parse_address(addr, address) < 0)
		return -EINVAL;
	if (parse_uint32(slash + 1, &p) < 0 || p > 32)
		return -EINVAL;
	*prefix = p;
	return 0;
}

static uint32_t network_mask(unsigned prefix)
{
	return prefix == 0 ? 0 : UINT32_MAX << (32 - prefix);
}

int network_parse_subnet(const char *cidr, struct network_subnet *out)
{
	uint32_t address, mask;
	unsigned prefix;

	if (!out || network_parse_cidr(cidr, &address, &prefix) < 0)
		return -EINVAL;
	if (prefix < 8 || prefix > 30)
		return -EINVAL;
	mask = network_mask(prefix);
	/* The bridge's address must be a usable host address. */
	if ((address & ~mask) == 0 || (address & ~mask) == ~mask)
		return -EINVAL;
	out->host_address = address;
	out->network = address & mask;
	out->prefix = prefix;
	return 0;
}

int network_member_address(const struct network_subnet *subnet, uint32_t n, char *buf, size_t len)
{
	struct in_addr in;
	uint64_t broadcast, candidate;

	if (!subnet || !buf || subnet->prefix < 8 || subnet->prefix > 30)
		return -EINVAL;
	broadcast = (uint64_t)subnet->network | ~network_mask(subnet->prefix);
	candidate = (uint64_t)subnet->network + 1 + n;
	if (candidate >= subnet->host_address)
		candidate++;
	if (candidate >= broadcast)
		return -ERANGE;
	in.s_addr = htonl((uint32_t)candidate);
	if (!inet_ntop(AF_INET, &in, buf, len))
		return -ENOSPC;
	return 0;
}

/* Through the current network namespace: /sys/class/net shows the one
 * sysfs was mounted in. */
static bool network_link_exists(const char *name)
{
	return if_nametoindex(name) != 0;
}

static bool network_is_bridge(const char *name)
{
	struct ethtool_drvinfo info = { .cmd = ETHTOOL_GDRVINFO };
	struct ifreq ifr = { .ifr_data = (void *)&info };
	__do_close int fd = -EBADF;

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || ioctl(fd, SIOCETHTOOL, &ifr) < 0)
		return false;
	return strcmp(info.driver, "bridge") == 0;
}

static int network_ip(const char *const argv[])
{
	char output[1024] = "";
	struct spawn_options opts = {
		.capture = output,
		.capture_size = sizeof(output),
		.timeout = 30,
	};
	int ret;

	ret = spawn_run(argv, &opts);
	if (ret < 0)
		return log_error_errno(ret, -ret, "Could not run %s %s %s", argv[0], argv[1],
				       argv[2]);
	if (ret > 0) {
		char *end = output + strlen(output);

		while (end > output && (end[-1] == '\n' || end[-1] == ' '))
			*--end = '\0';
		log_error("%s %s %s failed (exit status %d): %s", argv[0], argv[1], argv[2], ret,
			  output);
		return -EIO;
	}
	return 0;
}

static int network_enable_forwarding(void)
{
	char value[4] = "";
	__do_close int fd = -EBADF;
	ssize_t n;

	fd = open(NETWORK_IP_FORWARD, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return log_error_errno(-errno, errno, "Could not open %s", NETWORK_IP_FORWARD);
	n = read(fd, value, sizeof(value) - 1);
	if (n > 0 && value[0] == '1')
		return 0;
	if (pwrite(fd, "1\n", 2, 0) != 2)
		return log_error_errno(-errno, errno, "Could not enable IPv4 forwarding");
	return 0;
}

int network_setup(const struct gpubox_config *cfg)
{
	struct network_subnet subnet;
	char cidr[INET_ADDRSTRLEN + 4];
	char address[INET_ADDRSTRLEN];
	struct in_addr in;
	int ret;

	if (!cfg)
		return -EINVAL;
	if (!network_valid_ifname(cfg->bridge))
		return log_error_errno(-EINVAL, EINVAL, "Bridge name \"%.16s\" is not valid",
				       cfg->bridge);
	if (network_parse_subnet(cfg->bridge_address, &subnet) < 0)
		return log_error_errno(-EINVAL, EINVAL,
				       "Bridge address \"%.64s\" is not an address/prefix (8..30)",
				       cfg->bridge_address);
	in.s_addr = htonl(subnet.host_address);
	inet_ntop(AF_INET, &in, address, sizeof(address));
	snprintf(cidr, sizeof(cidr), "%s/%u", address, subnet.prefix);

	if (!network_link_exists(cfg->bridge)) {
		const char *const add[] = { NETWORK_IP, "link", "add", "name", cfg->bridge,
					    "type", "bridge", NULL };

		ret = network_ip(add);
		if (ret < 0)
			return ret;
		log_info("Created bridge %s", cfg->bridge);
	} else if (!network_is_bridge(cfg->bridge)) {
		return log_error_errno(-EEXIST, EEXIST, "Interface %s exists and is not a bridge",
				       cfg->bridge);
	}

	{
		char mac[18];
		/* A bridge whose MAC was never set takes the lowest of its
		 * ports' (the containers' veths): it would change as containers
		 * come and go, and every container's ARP entry for its gateway
		 * would go stale with it.  Set, it stays. */
		const char *const lladdr[] = { NETWORK_IP, "link", "set", "dev", cfg->bridge,
					       "address", mac, NULL };
		const char *const addr[] = { NETWORK_IP, "address", "replace", cidr, "dev",
					     cfg->bridge, NULL };
		const char *const up[] = { NETWORK_IP, "link", "set", "dev", cfg->bridge, "up",
					   NULL };

		network_gateway_mac_text(&subnet, mac, sizeof(mac));
		ret = network_ip(lladdr);
		if (ret == 0)
			ret = network_ip(addr);
		if (ret < 0)
			return ret;
		ret = network_ip(up);
		if (ret < 0)
			return ret;
	}

	return network_enable_forwarding();
}

int network_teardown(const char *bridge)
{
	if (!network_valid_ifname(bridge))
		return -EINVAL;
	if (!network_link_exists(bridge))
		return 0;
	if (!network_is_bridge(bridge))
		return log_error_errno(-EINVAL, EINVAL, "Interface %s is not a bridge", bridge);
	{
		const char *const del[] = { NETWORK_IP, "link", "delete", "dev", bridge, NULL };

		return network_ip(del);
	}
}
