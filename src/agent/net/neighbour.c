/* SPDX-License-Identifier: MIT */
/*
 * The bridge's neighbour table, the second line behind the bridge table's
 * ARP rules: a permanent entry per running container, which no ARP
 * message changes.  Spoken through rtnetlink (one request per entry, each
 * acknowledged), so that a hundred containers cost no hundred processes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/net.h"
#include "cleanup.h"
#include "log.h"

#include "banned.h"

#define NEIGHBOUR_BUFFER 32768

struct neighbour_request {
	struct nlmsghdr header;
	struct ndmsg ndm;
	char attributes[64];
};

struct neighbour_link {
	int fd;
	int ifindex;
	uint32_t seq;
};

static uint32_t neighbour_mask(unsigned prefix)
{
	return prefix == 0 ? 0 : UINT32_MAX << (32 - prefix);
}

/* The next message of a datagram of len bytes at buf (malloc'ed, so
 * aligned), or NULL at its end.  Instead of NLMSG_OK and NLMSG_NEXT, whose
 * casts -Wcast-align refuses. */
static const struct nlmsghdr *neighbour_message(const char *buf, size_t len, size_t *offset)
{
	const struct nlmsghdr *h;

	if (*offset > len || len - *offset < sizeof(*h))
		return NULL;
	h = (const void *)(buf + *offset);
	if (h->nlmsg_len < sizeof(*h) || h->nlmsg_len > len - *offset)
		return NULL;
	*offset += NLMSG_ALIGN(h->nlmsg_len);
	return h;
}

/* The same for the attributes after a message's struct ndmsg. */
static const struct rtattr *neighbour_next_attribute(const struct nlmsghdr *h, size_t *offset)
{
	size_t len = h->nlmsg_len;
	const struct rtattr *rta;

	if (*offset > len || len - *offset < sizeof(*rta))
		return NULL;
	rta = (const void *)((const char *)h + *offset);
	if (rta->rta_len < sizeof(*rta) || rta->rta_len > len - *offset)
		return NULL;
	*offset += RTA_ALIGN(rta->rta_len);
	return rta;
}

static int neighbour_error(const struct nlmsghdr *h)
{
	if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr)))
		return -EPROTO;
	return ((const struct nlmsgerr *)NLMSG_DATA(h))->error;
}

static void neighbour_attribute(struct neighbour_request *req, unsigned short type, const void *data,
				size_t len)
{
	struct rtattr *rta = (void *)((char *)req + NLMSG_ALIGN(req->header.nlmsg_len));

	rta->rta_type = type;
	rta->rta_len = (unsigned short)RTA_LENGTH(len);
	memcpy(RTA_DATA(rta), data, len);
	req->header.nlmsg_len = NLMSG_ALIGN(req->header.nlmsg_len) + RTA_ALIGN(rta->rta_len);
}

/* The kernel's answer to request seq: 0, or its negative errno. */
static int neighbour_ack(struct neighbour_link *link, uint32_t seq)
{
	__do_free char *buf = malloc(NEIGHBOUR_BUFFER);

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n = recv(link->fd, buf, NEIGHBOUR_BUFFER, 0);
		const struct nlmsghdr *h;
		size_t offset = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		while ((h = neighbour_message(buf, (size_t)n, &offset)))
			if (h->nlmsg_seq == seq && h->nlmsg_type == NLMSG_ERROR)
				return neighbour_error(h);
	}
}

/* Add (replacing) or delete the entry of address; mac only to add. */
static int neighbour_change(struct neighbour_link *link, uint16_t type, uint32_t address,
			    const uint8_t *mac)
{
	struct neighbour_request req = {
		.header = {
			.nlmsg_len = NLMSG_LENGTH(sizeof(struct ndmsg)),
			.nlmsg_type = type,
			.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK |
				       (type == RTM_NEWNEIGH ? NLM_F_CREATE | NLM_F_REPLACE : 0),
			.nlmsg_seq = ++link->seq,
		},
		.ndm = {
			.ndm_family = AF_INET,
			.ndm_ifindex = link->ifindex,
			.ndm_state = NUD_PERMANENT,
		},
	};
	uint32_t destination = htonl(address);

	neighbour_attribute(&req, NDA_DST, &destination, sizeof(destination));
	if (mac)
		neighbour_attribute(&req, NDA_LLADDR, mac, 6);
	if (send(link->fd, &req, req.header.nlmsg_len, 0) < 0)
		return -errno;
	return neighbour_ack(link, req.header.nlmsg_seq);
}

static bool neighbour_listed(uint32_t address, const uint32_t *addresses, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (addresses[i] == address)
			return true;
	return false;
}

/* One message of the dump: a permanent IPv4 entry of the bridge in the
 * subnet, its address into *address; false for any other. */
static bool neighbour_permanent(const struct nlmsghdr *h, int ifindex,
				const struct network_subnet *subnet, uint32_t *address)
{
	const struct ndmsg *ndm = NLMSG_DATA(h);
	size_t offset = NLMSG_LENGTH(NLMSG_ALIGN(sizeof(*ndm)));
	const struct rtattr *rta;

	if (h->nlmsg_type != RTM_NEWNEIGH || h->nlmsg_len < NLMSG_LENGTH(sizeof(*ndm)) ||
	    ndm->ndm_family != AF_INET || ndm->ndm_ifindex != ifindex ||
	    !(ndm->ndm_state & NUD_PERMANENT))
		return false;
	while ((rta = neighbour_next_attribute(h, &offset))) {
		uint32_t value;

		if (rta->rta_type != NDA_DST || RTA_PAYLOAD(rta) != sizeof(value))
			continue;
		memcpy(&value, RTA_DATA(rta), sizeof(value));
		*address = ntohl(value);
		return (*address & neighbour_mask(subnet->prefix)) == subnet->network;
	}
	return false;
}

/* The permanent entries of the subnet on the bridge that are not in
 * addresses: into *stale (caller frees), their number into *nstale. */
static int neighbour_find_stale(struct neighbour_link *link, const struct network_subnet *subnet,
				const uint32_t *addresses, size_t n, uint32_t **stale, size_t *nstale)
{
	struct neighbour_request req = {
		.header = {
			.nlmsg_len = NLMSG_LENGTH(sizeof(struct ndmsg)),
			.nlmsg_type = RTM_GETNEIGH,
			.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
			.nlmsg_seq = ++link->seq,
		},
		.ndm = { .ndm_family = AF_INET, .ndm_ifindex = link->ifindex },
	};
	__do_free char *buf = malloc(NEIGHBOUR_BUFFER);
	size_t cap = 0;

	if (!buf)
		return -ENOMEM;
	if (send(link->fd, &req, req.header.nlmsg_len, 0) < 0)
		return -errno;
	for (;;) {
		ssize_t got = recv(link->fd, buf, NEIGHBOUR_BUFFER, 0);
		const struct nlmsghdr *h;
		size_t offset = 0;

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -errno;
		while ((h = neighbour_message(buf, (size_t)got, &offset))) {
			uint32_t address;

			if (h->nlmsg_seq != req.header.nlmsg_seq)
				continue;
			if (h->nlmsg_type == NLMSG_DONE)
				return 0;
			if (h->nlmsg_type == NLMSG_ERROR)
				return neighbour_error(h);
			if (!neighbour_permanent(h, link->ifindex, subnet, &address) ||
			    neighbour_listed(address, addresses, n))
				continue;
			if (*nstale == cap) {
				uint32_t *grown = reallocarray(*stale, cap ? cap * 2 : 16, sizeof(**stale));

				if (!grown)
					return -ENOMEM;
				*stale = grown;
				cap = cap ? cap * 2 : 16;
			}
			(*stale)[(*nstale)++] = address;
		}
	}
}

int neighbour_sync(const char *bridge, const struct network_subnet *subnet,
		   const uint32_t *addresses, size_t n)
{
	__do_close int fd = -EBADF;
	__do_free uint32_t *stale = NULL;
	struct neighbour_link link = { .seq = 0 };
	size_t nstale = 0;
	int ret;

	if (!subnet || (n && !addresses) || !network_valid_ifname(bridge))
		return -EINVAL;
	link.ifindex = (int)if_nametoindex(bridge);
	if (link.ifindex == 0)
		return log_error_errno(-errno, errno, "Bridge %s is missing", bridge);
	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return log_error_errno(-errno, errno, "Could not open a netlink socket");
	link.fd = fd;

	for (size_t i = 0; i < n; i++) {
		uint8_t mac[6];

		network_member_mac(addresses[i], mac);
		ret = neighbour_change(&link, RTM_NEWNEIGH, addresses[i], mac);
		if (ret < 0)
			return log_error_errno(ret, -ret, "Could not pin the neighbour entry of %u.%u.%u.%u on %s",
					       addresses[i] >> 24, (addresses[i] >> 16) & 255,
					       (addresses[i] >> 8) & 255, addresses[i] & 255, bridge);
	}
	ret = neighbour_find_stale(&link, subnet, addresses, n, &stale, &nstale);
	if (ret < 0)
		return log_error_errno(ret, -ret, "Could not list the neighbour entries of %s", bridge);
	for (size_t i = 0; i < nstale; i++) {
		ret = neighbour_change(&link, RTM_DELNEIGH, stale[i], NULL);
		if (ret < 0 && ret != -ENOENT)
			return log_error_errno(ret, -ret, "Could not remove the neighbour entry of %u.%u.%u.%u on %s",
					       stale[i] >> 24, (stale[i] >> 16) & 255, (stale[i] >> 8) & 255,
					       stale[i] & 255, bridge);
	}
	return 0;
}
