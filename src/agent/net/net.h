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

#include "config.h"

/* ---- network.c: the agent's bridge --------------------------------------- */

/* The host side of every container's veth is named NETWORK_VETH_PREFIX
 * followed by the container's address in hex (unique on the host), so the
 * bridge table can isolate the containers by port name. */
#define NETWORK_VETH_PREFIX "gpv"

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
/* An interface name safe to print anywhere: 1..15 of [A-Za-z0-9_.-], not "." or "..". */
bool network_valid_ifname(const char *name);

/* ---- nft.c: the agent's nftables table ----------------------------------- */

struct nft_forward {
	uint16_t host_port;
	char container_address[16];
	uint16_t container_port;
};

struct nft_plan {
	const char *table;         /* e.g. "gpubox" */
	const char *bridge;        /* e.g. "gpbr0" */
	const char *subnet;        /* e.g. "10.77.0.0/16"; host bits are ignored */
	const struct nft_forward *forwards;
	size_t nforwards;
};

/* The whole table as nft(8) input that replaces it atomically: DNAT of
 * host:port to container:port (no masquerade of inbound), masquerade of
 * outbound container traffic, no traffic between containers (routed, and
 * bridged: a "bridge <table>" dropping frames between NETWORK_VETH_PREFIX
 * ports), nothing into the containers but replies and forwards.  Caller
 * frees.  NULL with errno EINVAL when a field is not valid (each forward's
 * address must be a host of the subnet; a host port may appear once). */
char *nft_render(const struct nft_plan *plan);
/* Apply rendered text in one transaction (libnftables). */
int nft_apply(const char *ruleset);
/* Remove the table (ip and bridge) if it exists; no error if absent. */
int nft_remove(const char *table);
/* The output of "list table ip <table>" into *out (caller frees);
 * -ENOENT (not logged) if the table does not exist. */
int nft_list(const char *table, char **out);
/* A table name: [A-Za-z_][A-Za-z0-9_]{0,62}. */
bool nft_valid_table(const char *table);

#endif
