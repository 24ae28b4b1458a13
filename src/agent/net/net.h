/* SPDX-License-Identifier: MIT */
/*
 * The containers' network: the agent's bridge and addresses (network.c)
 * and its nftables table (nft.c).
 * Every function returns 0 or a negative errno unless it says otherwise.
 */
#ifndef GPUBOX_AGENT_NET_H
#define GPUBOX_AGENT_NET_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cidr.h"
#include "config.h"

/* ---- network.c: the agent's bridge --------------------------------------- */

/* The host side of every container's veth is named NETWORK_VETH_PREFIX
 * followed by the container's address in hex (unique on the host), so the
 * bridge table can isolate the containers by port name. */
#define NETWORK_VETH_PREFIX "gpv"
/* Its MAC is this prefix followed by the low 24 bits of its address
 * (unique in a subnet of prefix 8 or longer). */
#define NETWORK_MAC_PREFIX 0x00, 0x16, 0x3e
#define NETWORK_IFNAME_MAX 16          /* IFNAMSIZ */

struct network_subnet {
	uint32_t host_address;     /* host order: the bridge's own address */
	uint32_t network;          /* host order */
	unsigned prefix;           /* 8..30 */
};

int network_parse_subnet(const char *cidr, struct network_subnet *out);
/* The address of the n-th member (n >= 0), as dotted text; -ERANGE if the
 * subnet is too small.  Skips the bridge's own address. */
int network_member_address(const struct network_subnet *subnet, uint32_t n, char *buf, size_t len);
/* Bridge exists, is up, has its address; IPv4 forwarding on.  Idempotent. */
int network_setup(const struct gpubox_config *cfg);
/* Delete the bridge if it exists (tests, uninstall). */
int network_teardown(const char *bridge);
/* "A.B.C.D/P" with P 0..32, any host bits; address in host order. */
int network_parse_cidr(const char *cidr, uint32_t *address, unsigned *prefix);
/* Dotted IPv4 text, strictly (inet_pton); address in host order. */
int network_parse_address(const char *text, uint32_t *address);
/* The same back: address (host order) as dotted text. */
void network_format_address(uint32_t address, char buf[static 16]);
/* The host-side veth name and the MAC of the container at address (host
 * order), as its LXC configuration gives them (container.c). */
void network_veth_name(uint32_t address, char name[static NETWORK_IFNAME_MAX]);
void network_member_mac(uint32_t address, uint8_t mac[static 6]);
/* The bridge's own MAC, made the same way from the host's address in the
 * subnet ("00:16:3e:..."), as text. */
void network_gateway_mac_text(const struct network_subnet *subnet, char *buf, size_t len);
/* An interface name safe to print anywhere: 1..15 of [A-Za-z0-9_.-], not "." or "..". */
bool network_valid_ifname(const char *name);

/* ---- neighbour.c: the bridge's neighbour table --------------------------- */

/*
 * One permanent neighbour entry on the bridge per address given (a running
 * container: its address, its MAC), so that no ARP a container sends can
 * move where the host delivers another container's traffic; the permanent
 * entries of other addresses of the subnet (stopped or removed containers)
 * are deleted.  Through rtnetlink.
 */
int neighbour_sync(const char *bridge, const struct network_subnet *subnet,
		   const uint32_t *addresses, size_t n);

/* ---- resolvers.c: the containers' DNS servers ----------------------------- */

#define RESOLVERS_MAX 8

/* The IPv4 nameservers of resolv.conf text, in order and each once, at
 * most max; others (IPv6, malformed) are skipped.  Returns how many. */
size_t resolvers_parse(const char *text, size_t len, uint32_t *out, size_t max);
/* The nameservers the containers are given (provision.c): the host's
 * /etc/resolv.conf, or systemd-resolved's upstream list when the host's
 * names only its stub.  0 when there are none or the files cannot be read. */
size_t resolvers_host(uint32_t *out, size_t max);

/* ---- nft.c: the agent's nftables table ----------------------------------- */

struct nft_forward {
	uint16_t host_port;
	char container_address[16];
	uint16_t container_port;
	/* The networks the port takes connections from (IPv4 and IPv6, at
	 * most CIDR_LIST_MAX); nfrom 0: every address. */
	const struct cidr *from;
	size_t nfrom;
};

struct nft_plan {
	const char *table;         /* e.g. "gpubox" */
	const char *bridge;        /* e.g. "gpbr0" */
	const char *subnet;        /* e.g. "10.77.0.0/16"; host bits are ignored */
	const struct nft_forward *forwards;
	size_t nforwards;
	const uint32_t *containers;        /* running containers' addresses, host order */
	size_t ncontainers;
	const struct config_network *egress_deny;   /* what containers may not reach */
	size_t negress_deny;
	const uint32_t *resolvers;         /* DNS to these passes egress_deny; host order */
	size_t nresolvers;
	uint32_t apt_cache;                /* the package cache's address, host order; 0: none */
	uint16_t apt_cache_port;           /* ... and port: TCP to it passes egress_deny */
};

/* The whole table as nft(8) input that replaces it atomically: DNAT of
 * host:port to container:port (no masquerade of inbound), masquerade of
 * outbound container traffic, no traffic between containers (routed, and
 * bridged: a "bridge <table>" dropping frames between NETWORK_VETH_PREFIX
 * ports), nothing into the containers but replies and forwards; from a
 * container's port only IPv4 and ARP with its own MAC and address; no new
 * connection from a container into egress_deny (but DNS to the resolvers,
 * and TCP to the package cache's address and port); to a forwarded port
 * with an allow-list, nothing from outside its networks, IPv4 in the ip
 * table and IPv6 in an "ip6 <table>", before the DNAT, whether the
 * connection is new or not.
 * Caller frees.  NULL with errno EINVAL when a field is not valid (each
 * forward's and container's address must be a host of the subnet; a host
 * port, a container, a resolver may appear once; a denied network has no
 * host bits set; a package cache has a port; an allow-list holds at most
 * CIDR_LIST_MAX valid networks). */
char *nft_render(const struct nft_plan *plan);
/* Apply rendered text in one transaction (libnftables). */
int nft_apply(const char *ruleset);
/* Remove the table (ip, ip6 and bridge) if it exists; no error if absent. */
int nft_remove(const char *table);
/* The output of "list table <family> <table>" into *out (caller frees),
 * family "ip", "ip6" or "bridge"; -ENOENT (not logged) if the table does
 * not exist, -EINVAL for another family. */
int nft_list(const char *family, const char *table, char **out);
/* A table name: [A-Za-z_][A-Za-z0-9_]{0,62}. */
bool nft_valid_table(const char *table);

#endif
