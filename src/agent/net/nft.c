/* SPDX-License-Identifier: MIT */
/*
 * The agent's nftables tables, "ip <table>" (DNAT of forwarded ports,
 * masquerade of outbound container traffic, no routing between containers,
 * no new connection from a container into egress_deny, the forwards'
 * allow-lists), "ip6 <table>" (the allow-lists' IPv6 networks) and
 * "bridge <table>" (no frames between two containers' ports; from a
 * container's port only IPv4 and ARP with its own MAC and address).  All
 * are always rewritten whole, in one transaction: each is first created
 * empty (so that deleting it cannot fail) and deleted, then declared in
 * full, so applying the same text twice gives the same ruleset.
 *
 * Everything printed into the ruleset is checked first: names against a
 * strict character set, addresses re-printed from their binary form.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nftables/libnftables.h>

#include "net/net.h"
#include "cleanup.h"
#include "log.h"
#include "strutil.h"

#include "banned.h"

static inline void nft_ctx_freep(struct nft_ctx **ctx)
{
	if (*ctx)
		nft_ctx_free(*ctx);
}
#define __do_nft_ctx __attribute__((cleanup(nft_ctx_freep)))

bool nft_valid_table(const char *table)
{
	size_t len;

	if (!table)
		return false;
	len = strlen(table);
	if (len == 0 || len > 63 || (table[0] >= '0' && table[0] <= '9'))
		return false;
	for (const char *c = table; *c; c++) {
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '_'))
			return false;
	}
	return true;
}

static void nft_format_address(uint32_t address, char buf[static INET_ADDRSTRLEN])
{
	struct in_addr in = { .s_addr = htonl(address) };

	inet_ntop(AF_INET, &in, buf, INET_ADDRSTRLEN);
}

/* Check one forward against the subnet; its destination re-printed into addr. */
static int nft_check_forward(const struct nft_forward *fwd, uint32_t network, uint32_t mask,
			     char addr[static INET_ADDRSTRLEN])
{
	uint32_t address;

	if (!memchr(fwd->container_address, '\0', sizeof(fwd->container_address)))
		return log_error_errno(-EINVAL, EINVAL, "Forward of port %u: address is not terminated",
				       fwd->host_port);
	if (fwd->host_port == 0 || fwd->container_port == 0)
		return log_error_errno(-EINVAL, EINVAL, "Forward %u -> %u: port 0 is not valid",
				       fwd->host_port, fwd->container_port);
	if (fwd->nfrom > CIDR_LIST_MAX || (fwd->nfrom && !fwd->from))
		return log_error_errno(-EINVAL, EINVAL, "Forward of port %u: %zu networks in its allow-list",
				       fwd->host_port, fwd->nfrom);
	for (size_t i = 0; i < fwd->nfrom; i++)
		if (!cidr_valid(&fwd->from[i]))
			return log_error_errno(-EINVAL, EINVAL, "Forward of port %u: its allow-list holds a bad network",
					       fwd->host_port);
	if (network_parse_address(fwd->container_address, &address) < 0)
		return log_error_errno(-EINVAL, EINVAL, "Forward of port %u: \"%.15s\" is not an IPv4 address",
				       fwd->host_port, fwd->container_address);
	if ((address & mask) != network || (address & ~mask) == 0 || (address & ~mask) == ~mask)
		return log_error_errno(-EINVAL, EINVAL,
				       "Forward of port %u: %.15s is not a host of the containers' subnet",
				       fwd->host_port, fwd->container_address);
	nft_format_address(address, addr);
	return 0;
}

static void nft_render_dnat(FILE *f, const char *const addrs[], const struct nft_plan *plan)
{
	for (size_t i = 0; i < plan->nforwards; i++)
		fprintf(f, "\t\tfib daddr type local tcp dport %u dnat to %s:%u\n",
			plan->forwards[i].host_port, addrs[i], plan->forwards[i].container_port);
}

/* The plan's names and subnet, checked before anything is printed. */
static int nft_check_plan(const struct nft_plan *plan, uint32_t *network, uint32_t *mask,
			  unsigned *prefix)
{
	uint32_t address;

	if (!nft_valid_table(plan->table)) {
		log_error("nftables table name \"%.64s\" is not valid", plan->table ? plan->table : "");
		return -EINVAL;
	}
	if (!network_valid_ifname(plan->bridge)) {
		log_error("Bridge name \"%.16s\" is not valid", plan->bridge ? plan->bridge : "");
		return -EINVAL;
	}
	if (network_parse_cidr(plan->subnet, &address, prefix) < 0 || *prefix < 8 || *prefix > 30) {
		log_error("Subnet \"%.64s\" is not an address/prefix (8..30)",
			  plan->subnet ? plan->subnet : "");
		return -EINVAL;
	}
	*mask = UINT32_MAX << (32 - *prefix);
	*network = address & *mask;
	return 0;
}

/*
 * Every forward checked against the subnet and each host port forwarded
 * once; their destinations re-printed into addrs (pointing into *buf).
 */
static int nft_check_forwards(const struct nft_plan *plan, uint32_t network, uint32_t mask,
			      const char ***addrs, char **buf)
{
	if (plan->nforwards) {
		*addrs = calloc(plan->nforwards, sizeof(**addrs));
		*buf = calloc(plan->nforwards, INET_ADDRSTRLEN);
		if (!*addrs || !*buf)
			return -ENOMEM;
	}
	for (size_t i = 0; i < plan->nforwards; i++) {
		char *addr = *buf + i * INET_ADDRSTRLEN;

		if (nft_check_forward(&plan->forwards[i], network, mask, addr) < 0)
			return -EINVAL;
		(*addrs)[i] = addr;
		for (size_t j = 0; j < i; j++) {
			if (plan->forwards[j].host_port == plan->forwards[i].host_port) {
				log_error("Host port %u is forwarded twice", plan->forwards[i].host_port);
				return -EINVAL;
			}
		}
	}
	return 0;
}

/* Each container a host of the subnet, and there once. */
static int nft_check_containers(const struct nft_plan *plan, uint32_t network, uint32_t mask)
{
	for (size_t i = 0; i < plan->ncontainers; i++) {
		uint32_t address = plan->containers[i];

		if ((address & mask) != network || (address & ~mask) == 0 || (address & ~mask) == ~mask)
			return log_error_errno(-EINVAL, EINVAL,
					       "Container address %08x is not a host of the containers' subnet",
					       address);
		for (size_t j = 0; j < i; j++)
			if (plan->containers[j] == address)
				return log_error_errno(-EINVAL, EINVAL, "Container address %08x appears twice",
						       address);
	}
	return 0;
}

/* Denied networks without host bits; each resolver once. */
static int nft_check_egress(const struct nft_plan *plan)
{
	for (size_t i = 0; i < plan->negress_deny; i++) {
		const struct config_network *net = &plan->egress_deny[i];

		if (net->prefix > 32 ||
		    (net->prefix < 32 && (net->address & (UINT32_MAX >> net->prefix))))
			return log_error_errno(-EINVAL, EINVAL, "Denied network %08x/%u is not a network",
					       net->address, net->prefix);
	}
	for (size_t i = 0; i < plan->nresolvers; i++)
		for (size_t j = 0; j < i; j++)
			if (plan->resolvers[j] == plan->resolvers[i])
				return log_error_errno(-EINVAL, EINVAL, "Resolver %08x appears twice",
						       plan->resolvers[i]);
	if (plan->apt_cache && !plan->apt_cache_port)
		return log_error_errno(-EINVAL, EINVAL, "The package cache %08x has no port",
				       plan->apt_cache);
	return 0;
}

static void nft_render_nat_chains(FILE *f, const char *const addrs[], const struct nft_plan *plan,
				  const char *network_text, unsigned prefix)
{
	fprintf(f, "\tchain prerouting {\n"
		   "\t\ttype nat hook prerouting priority dstnat; policy accept;\n");
	nft_render_dnat(f, addrs, plan);
	fprintf(f, "\t}\n");

	/* The host's own connections to host:port take the output hook. */
	fprintf(f, "\tchain output {\n"
		   "\t\ttype nat hook output priority -100; policy accept;\n");
	nft_render_dnat(f, addrs, plan);
	fprintf(f, "\t}\n");

	/* Outbound only: the container's sshd must see the client's real address. */
	fprintf(f, "\tchain postrouting {\n"
		   "\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
		   "\t\tip saddr %s/%u oifname != \"%s\" masquerade\n"
		   "\t}\n", network_text, prefix, plan->bridge);
}

/* Routed traffic into the containers is only replies and forwarded
 * ports; none goes from one container to another; none from a container
 * into egress_deny. */
static void nft_render_forward_chain(FILE *f, const struct nft_plan *plan)
{
	fprintf(f, "\tchain forward {\n"
		   "\t\ttype filter hook forward priority 0; policy accept;\n"
		   "\t\tiifname \"%s\" oifname \"%s\" counter drop\n"
		   "\t\tct state established,related accept\n"
		   "\t\toifname \"%s\" ct status dnat accept\n"
		   "\t\toifname \"%s\" counter drop\n"
		   "\t\tiifname \"%s\" jump egress\n"
		   "\t\tiifname \"%s\" accept\n"
		   "\t}\n", plan->bridge, plan->bridge, plan->bridge, plan->bridge, plan->bridge,
		plan->bridge);
}

/* The elements of a set of networks or addresses; nothing when there are
 * none (an empty "elements = { }" is a syntax error). */
static void nft_render_networks(FILE *f, const struct config_network *nets, size_t n)
{
	char text[INET_ADDRSTRLEN];

	for (size_t i = 0; i < n; i++) {
		nft_format_address(nets[i].address, text);
		fprintf(f, "%s%s/%u%s", i ? ", " : "\t\telements = { ", text, nets[i].prefix,
			i + 1 == n ? " }\n" : "");
	}
}

static void nft_render_addresses(FILE *f, const uint32_t *addresses, size_t n)
{
	char text[INET_ADDRSTRLEN];

	for (size_t i = 0; i < n; i++) {
		nft_format_address(addresses[i], text);
		fprintf(f, "%s%s%s", i ? ", " : "\t\telements = { ", text, i + 1 == n ? " }\n" : "");
	}
}

/* The package cache named in the configuration: exactly its address and
 * port, whatever egress_deny covers. */
static void nft_render_apt_cache(FILE *f, const struct nft_plan *plan)
{
	char address[INET_ADDRSTRLEN];

	if (!plan->apt_cache)
		return;
	nft_format_address(plan->apt_cache, address);
	fprintf(f, "\t\tip daddr %s tcp dport %u accept\n", address, plan->apt_cache_port);
}

/*
 * egress_deny: nothing new from a container into those networks, the
 * host's own addresses there included (the input hook), except DNS to the
 * resolvers the containers were given and the package cache.  Overlapping
 * networks are merged.  Rejected, not dropped: apt and the like fail at
 * once instead of hanging.
 */
static void nft_render_egress(FILE *f, const struct nft_plan *plan)
{
	fprintf(f, "\tset egress_deny {\n"
		   "\t\ttype ipv4_addr\n"
		   "\t\tflags interval\n"
		   "\t\tauto-merge\n");
	nft_render_networks(f, plan->egress_deny, plan->negress_deny);
	fprintf(f, "\t}\n"
		   "\tset resolvers {\n"
		   "\t\ttype ipv4_addr\n");
	nft_render_addresses(f, plan->resolvers, plan->nresolvers);
	fprintf(f, "\t}\n"
		   "\tchain egress {\n"
		   "\t\tct state established,related accept\n"
		   "\t\tip daddr @resolvers meta l4proto { tcp, udp } th dport 53 accept\n");
	nft_render_apt_cache(f, plan);
	fprintf(f, "\t\tip daddr @egress_deny counter reject with icmp admin-prohibited\n"
		   "\t}\n"
		   "\tchain input {\n"
		   "\t\ttype filter hook input priority 0; policy accept;\n"
		   "\t\tiifname \"%s\" jump egress\n"
		   "\t}\n", plan->bridge);
}

/*
 * The forwards' allow-lists, of one family: the host ports that have one,
 * and each port with each of its networks.  A port with networks of the
 * other family alone takes nothing of this one.
 *
 * Checked before the DNAT (priority -110, the DNAT's is -100), so that a
 * refused source is never translated, and on every packet the client
 * sends ("ct direction original"), not only a connection's first: a list
 * that shrinks cuts the connections already open from a source it no
 * longer holds.  Replies to the containers' own outbound connections
 * (whose masqueraded port may be a forwarded one) are another direction,
 * and pass.  The host's own connections take the output hook and are
 * not checked: whoever has a shell on the server is trusted with it.
 */
static void nft_render_allow(FILE *f, const struct nft_plan *plan, enum cidr_family family)
{
	const char *type = family == CIDR_IPV4 ? "ipv4_addr" : "ipv6_addr";
	const char *saddr = family == CIDR_IPV4 ? "ip saddr" : "ip6 saddr";
	bool first = true;

	fprintf(f, "\tset allowed_ports {\n"
		   "\t\ttype inet_service\n");
	for (size_t i = 0; i < plan->nforwards; i++) {
		if (!plan->forwards[i].nfrom)
			continue;
		fprintf(f, "%s%u", first ? "\t\telements = { " : ", ", plan->forwards[i].host_port);
		first = false;
	}
	fprintf(f, "%s\t}\n"
		   "\tset allowed_from {\n"
		   "\t\ttype inet_service . %s\n"
		   "\t\tflags interval\n", first ? "" : " }\n", type);
	first = true;
	for (size_t i = 0; i < plan->nforwards; i++) {
		for (size_t j = 0; j < plan->forwards[i].nfrom; j++) {
			const struct cidr *net = &plan->forwards[i].from[j];
			char text[CIDR_TEXT_MAX];

			if (net->family != family)
				continue;
			cidr_format(net, text);
			fprintf(f, "%s%u . %s", first ? "\t\telements = { " : ",\n\t\t\t     ",
				plan->forwards[i].host_port, text);
			first = false;
		}
	}
	fprintf(f, "%s\t}\n"
		   "\tchain allow {\n"
		   "\t\ttype filter hook prerouting priority -110; policy accept;\n"
		   "\t\tfib daddr type local ct direction original tcp dport @allowed_ports "
		   "tcp dport . %s != @allowed_from counter drop\n"
		   "\t}\n", first ? "" : " }\n", saddr);
}

static void nft_render_ip_table(FILE *f, const char *const addrs[], const struct nft_plan *plan,
				const char *network_text, unsigned prefix)
{
	fprintf(f, "table ip %s {}\ndelete table ip %s\n", plan->table, plan->table);
	fprintf(f, "table ip %s {\n", plan->table);
	nft_render_nat_chains(f, addrs, plan, network_text, prefix);
	nft_render_egress(f, plan);
	nft_render_forward_chain(f, plan);
	nft_render_allow(f, plan, CIDR_IPV4);
	fprintf(f, "}\n");
}

/* The containers have no IPv6 (the bridge table drops it), but a server
 * that forwards IPv6 to them keeps the allow-lists' IPv6 networks. */
static void nft_render_ip6_table(FILE *f, const struct nft_plan *plan)
{
	fprintf(f, "table ip6 %s {}\ndelete table ip6 %s\n", plan->table, plan->table);
	fprintf(f, "table ip6 %s {\n", plan->table);
	nft_render_allow(f, plan, CIDR_IPV6);
	fprintf(f, "}\n");
}

/* Each running container as "port . MAC . address". */
static void nft_render_container_set(FILE *f, const struct nft_plan *plan)
{
	fprintf(f, "\tset containers {\n"
		   "\t\ttype ifname . ether_addr . ipv4_addr\n");
	for (size_t i = 0; i < plan->ncontainers; i++) {
		char port[NETWORK_IFNAME_MAX], address[INET_ADDRSTRLEN];
		uint8_t mac[6];

		network_veth_name(plan->containers[i], port);
		network_member_mac(plan->containers[i], mac);
		nft_format_address(plan->containers[i], address);
		fprintf(f, "%s\"%s\" . %02x:%02x:%02x:%02x:%02x:%02x . %s%s",
			i ? ",\n\t\t\t     " : "\t\telements = { ", port, mac[0], mac[1], mac[2], mac[3],
			mac[4], mac[5], address, i + 1 == plan->ncontainers ? " }\n" : "");
	}
	fprintf(f, "\t}\n");
}

/*
 * Layer 2.  What enters from a container's port carries the container's
 * MAC and, as IPv4 source or ARP sender, its address: the bridge learns
 * no other container's MAC there, the host's neighbour table no other
 * address (addresses are static: no DHCP to let through).  Nothing else
 * enters, IPv6 included (the bridge has none: no router advertisements, no
 * redirects, no link-local path around the ip table).  A port of no
 * running container sends nothing.
 *
 * And no frame between two containers' ports.  Ports are matched by name
 * because "meta ibrname" needs a kernel module that is not everywhere
 * (CONFIG_NFT_BRIDGE_META).  A bridge table sees every bridge of the host,
 * so the rules hold only this agent's ports: a port's name is its
 * address in hex (network_veth_name()), and the subnet's leading hex
 * digits name them all; another agent's containers, on another subnet,
 * are its table's business.
 */
static void nft_port_pattern(uint32_t network, unsigned prefix, char *out, size_t len)
{
	unsigned digits = prefix / 4;

	snprintf(out, len, NETWORK_VETH_PREFIX "%08x", network);
	out[strlen(NETWORK_VETH_PREFIX) + digits] = '*';
	out[strlen(NETWORK_VETH_PREFIX) + digits + 1] = '\0';
}

static void nft_render_bridge_table(FILE *f, const struct nft_plan *plan, uint32_t network,
				    unsigned prefix)
{
	char ports[NETWORK_IFNAME_MAX + 2];

	nft_port_pattern(network, prefix, ports, sizeof(ports));
	fprintf(f, "table bridge %s {}\ndelete table bridge %s\n", plan->table, plan->table);
	fprintf(f, "table bridge %s {\n", plan->table);
	nft_render_container_set(f, plan);
	fprintf(f, "\tchain prerouting {\n"
		   "\t\ttype filter hook prerouting priority -200; policy accept;\n"
		   "\t\tiifname != \"%s\" accept\n"
		   "\t\tether type ip iifname . ether saddr . ip saddr @containers accept\n"
		   "\t\tether type arp arp htype 1 arp ptype ip arp hlen 6 arp plen 4 "
		   "iifname . ether saddr . arp saddr ip @containers "
		   "iifname . arp saddr ether . arp saddr ip @containers accept\n"
		   "\t\tcounter drop\n"
		   "\t}\n"
		   "\tchain forward {\n"
		   "\t\ttype filter hook forward priority 0; policy accept;\n"
		   "\t\tiifname \"" NETWORK_VETH_PREFIX "*\" oifname \"" NETWORK_VETH_PREFIX "*\" counter drop\n"
		   "\t}\n"
		   "}\n", ports);
}

char *nft_render(const struct nft_plan *plan)
{
	__do_free char *text = NULL;
	__do_free char *addrs_buf = NULL;
	__do_free const char **addrs = NULL;
	char network_text[INET_ADDRSTRLEN];
	uint32_t mask, network;
	unsigned prefix;
	size_t size = 0;
	FILE *f;
	int ret;

	if (!plan || (plan->nforwards && !plan->forwards) ||
	    (plan->ncontainers && !plan->containers) ||
	    (plan->negress_deny && !plan->egress_deny) || (plan->nresolvers && !plan->resolvers)) {
		errno = EINVAL;
		return NULL;
	}
	ret = nft_check_plan(plan, &network, &mask, &prefix);
	if (ret == 0)
		ret = nft_check_forwards(plan, network, mask, &addrs, &addrs_buf);
	if (ret == 0)
		ret = nft_check_containers(plan, network, mask);
	if (ret == 0)
		ret = nft_check_egress(plan);
	if (ret < 0) {
		errno = -ret;
		return NULL;
	}
	nft_format_address(network, network_text);

	f = open_memstream(&text, &size);
	if (!f)
		return NULL;
	nft_render_ip_table(f, addrs, plan, network_text, prefix);
	nft_render_ip6_table(f, plan);
	nft_render_bridge_table(f, plan, network, prefix);
	if (!memstream_close(f))
		return NULL;
	return move_ptr(text);
}

static struct nft_ctx *nft_context(void)
{
	struct nft_ctx *ctx;

	ctx = nft_ctx_new(NFT_CTX_DEFAULT);
	if (!ctx)
		return NULL;
	if (nft_ctx_buffer_output(ctx) < 0 || nft_ctx_buffer_error(ctx) < 0) {
		nft_ctx_free(ctx);
		return NULL;
	}
	return ctx;
}

/* -ENOENT, not logged, when missing_ok and the table does not exist. */
static int nft_run(struct nft_ctx *ctx, const char *commands, const char *what, bool missing_ok)
{
	if (nft_run_cmd_from_buffer(ctx, commands) != 0) {
		const char *error = nft_ctx_get_error_buffer(ctx);
		size_t len = error ? strlen(error) : 0;

		if (missing_ok && len && strstr(error, "No such file or directory"))
			return -ENOENT;
		while (len && error[len - 1] == '\n')
			len--;
		log_error("nftables refused to %s: %.*s", what, (int)len, error ? error : "");
		return -EIO;
	}
	return 0;
}

int nft_apply(const char *ruleset)
{
	__do_nft_ctx struct nft_ctx *ctx = NULL;

	if (!ruleset)
		return -EINVAL;
	ctx = nft_context();
	if (!ctx)
		return log_error_errno(-ENOMEM, ENOMEM, "Could not create an nftables context");
	return nft_run(ctx, ruleset, "apply the ruleset", false);
}

int nft_remove(const char *table)
{
	__do_nft_ctx struct nft_ctx *ctx = NULL;
	char commands[512];

	if (!nft_valid_table(table))
		return -EINVAL;
	ctx = nft_context();
	if (!ctx)
		return log_error_errno(-ENOMEM, ENOMEM, "Could not create an nftables context");
	/* Declaring each table first makes the deletion succeed when it is absent. */
	snprintf(commands, sizeof(commands),
		 "table ip %s {}\ndelete table ip %s\n"
		 "table ip6 %s {}\ndelete table ip6 %s\n"
		 "table bridge %s {}\ndelete table bridge %s\n",
		 table, table, table, table, table, table);
	return nft_run(ctx, commands, "remove the tables", false);
}

int nft_list(const char *family, const char *table, char **out)
{
	__do_nft_ctx struct nft_ctx *ctx = NULL;
	char command[128];
	const char *output;
	int ret;

	if (!out || !nft_valid_table(table) || !family ||
	    (strcmp(family, "ip") && strcmp(family, "ip6") && strcmp(family, "bridge")))
		return -EINVAL;
	ctx = nft_context();
	if (!ctx)
		return log_error_errno(-ENOMEM, ENOMEM, "Could not create an nftables context");
	snprintf(command, sizeof(command), "list table %s %s", family, table);
	ret = nft_run(ctx, command, "list the table", true);
	if (ret < 0)
		return ret;
	output = nft_ctx_get_output_buffer(ctx);
	*out = strdup(output ? output : "");
	if (!*out)
		return -ENOMEM;
	return 0;
}
