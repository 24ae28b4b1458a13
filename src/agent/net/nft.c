/* SPDX-License-Identifier: MIT */
/*
 * The agent's nftables tables, "ip <table>" (DNAT of forwarded ports,
 * masquerade of outbound container traffic, no routing between containers)
 * and "bridge <table>" (no frames between two containers' ports).  Both are
 * always rewritten whole, in one transaction: each is first created empty
 * (so that deleting it cannot fail) and deleted, then declared in full, so
 * applying the same text twice gives the same ruleset.
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
 * ports; none goes from one container to another. */
static void nft_render_forward_chain(FILE *f, const struct nft_plan *plan)
{
	fprintf(f, "\tchain forward {\n"
		   "\t\ttype filter hook forward priority 0; policy accept;\n"
		   "\t\tiifname \"%s\" oifname \"%s\" counter drop\n"
		   "\t\tct state established,related accept\n"
		   "\t\toifname \"%s\" ct status dnat accept\n"
		   "\t\toifname \"%s\" counter drop\n"
		   "\t\tiifname \"%s\" accept\n"
		   "\t}\n", plan->bridge, plan->bridge, plan->bridge, plan->bridge, plan->bridge);
}

static void nft_render_ip_table(FILE *f, const char *const addrs[], const struct nft_plan *plan,
				const char *network_text, unsigned prefix)
{
	fprintf(f, "table ip %s {}\ndelete table ip %s\n", plan->table, plan->table);
	fprintf(f, "table ip %s {\n", plan->table);
	nft_render_nat_chains(f, addrs, plan, network_text, prefix);
	nft_render_forward_chain(f, plan);
	fprintf(f, "}\n");
}

/* Layer 2: no frame between two containers' ports.  Matched by port
 * name because "meta ibrname" needs a kernel module that is not
 * everywhere (CONFIG_NFT_BRIDGE_META). */
static void nft_render_bridge_table(FILE *f, const struct nft_plan *plan)
{
	fprintf(f, "table bridge %s {}\ndelete table bridge %s\n", plan->table, plan->table);
	fprintf(f, "table bridge %s {\n"
		   "\tchain forward {\n"
		   "\t\ttype filter hook forward priority 0; policy accept;\n"
		   "\t\tiifname \"" NETWORK_VETH_PREFIX "*\" oifname \"" NETWORK_VETH_PREFIX "*\" counter drop\n"
		   "\t}\n"
		   "}\n", plan->table);
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

	if (!plan || (plan->nforwards && !plan->forwards)) {
		errno = EINVAL;
		return NULL;
	}
	ret = nft_check_plan(plan, &network, &mask, &prefix);
	if (ret == 0)
		ret = nft_check_forwards(plan, network, mask, &addrs, &addrs_buf);
	if (ret < 0) {
		errno = -ret;
		return NULL;
	}
	nft_format_address(network, network_text);

	f = open_memstream(&text, &size);
	if (!f)
		return NULL;
	nft_render_ip_table(f, addrs, plan, network_text, prefix);
	nft_render_bridge_table(f, plan);
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
		 "table bridge %s {}\ndelete table bridge %s\n",
		 table, table, table, table);
	return nft_run(ctx, commands, "remove the tables", false);
}

int nft_list(const char *table, char **out)
{
	__do_nft_ctx struct nft_ctx *ctx = NULL;
	char command[128];
	const char *output;
	int ret;

	if (!out || !nft_valid_table(table))
		return -EINVAL;
	ctx = nft_context();
	if (!ctx)
		return log_error_errno(-ENOMEM, ENOMEM, "Could not create an nftables context");
	snprintf(command, sizeof(command), "list table ip %s", table);
	ret = nft_run(ctx, command, "list the table", true);
	if (ret < 0)
		return ret;
	output = nft_ctx_get_output_buffer(ctx);
	*out = strdup(output ? output : "");
	if (!*out)
		return -ENOMEM;
	return 0;
}
