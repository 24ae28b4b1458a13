/* SPDX-License-Identifier: MIT */
/* IPv4 and IPv6 networks and lists of them (cidr.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"
#include "strutil.h"
#include "banned.h"

/* How much of a bad item an error quotes. */
#define CIDR_QUOTE_MAX 64

static unsigned cidr_bits(const struct cidr *c)
{
	return c->family == CIDR_IPV4 ? 32 : 128;
}

/* The prefix: 1..3 decimal digits, no sign, no leading zero. */
static int cidr_parse_prefix(const char *text, size_t len, unsigned *out)
{
	unsigned value = 0;

	if (len == 0 || len > 3 || (len > 1 && text[0] == '0'))
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (text[i] < '0' || text[i] > '9')
			return -EINVAL;
		value = value * 10 + (unsigned)(text[i] - '0');
	}
	*out = value;
	return 0;
}

static bool cidr_is_v4_mapped(const uint8_t a[16])
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	return memcmp(a, mapped, sizeof(mapped)) == 0;
}

/* The address with the bits past prefix cleared. */
static void cidr_mask(struct cidr *c)
{
	for (unsigned i = 0; i < 16; i++) {
		unsigned first = i * 8;

		if (first >= c->prefix)
			c->address[i] = 0;
		else if (first + 8 > c->prefix)
			c->address[i] &= (uint8_t)(0xff << (first + 8 - c->prefix));
	}
}

/* The address part: IPv6 when it holds a colon, else IPv4.  -EINVAL for
 * no address, -EAFNOSUPPORT for an IPv4-mapped IPv6 one. */
static int cidr_parse_address(const char *text, size_t len, struct cidr *out)
{
	char address[INET6_ADDRSTRLEN];
	bool v6 = memchr(text, ':', len) != NULL;

	memset(out, 0, sizeof(*out));
	if (len == 0 || len >= sizeof(address) || memchr(text, '\0', len))
		return -EINVAL;
	memcpy(address, text, len);
	address[len] = '\0';
	if (inet_pton(v6 ? AF_INET6 : AF_INET, address, out->address) != 1)
		return -EINVAL;
	out->family = v6 ? CIDR_IPV6 : CIDR_IPV4;
	return v6 && cidr_is_v4_mapped(out->address) ? -EAFNOSUPPORT : 0;
}

/* Whether the address has no bit set past the prefix; if not, the
 * network it probably meant into exact. */
static bool cidr_is_network(const struct cidr *c, char exact[static CIDR_TEXT_MAX])
{
	struct cidr masked = *c;

	cidr_mask(&masked);
	cidr_format(&masked, exact);
	return memcmp(masked.address, c->address, sizeof(c->address)) == 0;
}

static int cidr_quoted(size_t len)
{
	return (int)(len > CIDR_QUOTE_MAX ? CIDR_QUOTE_MAX : len);
}

int cidr_parse(const char *text, size_t len, struct cidr *out, char *err, size_t errlen)
{
	const char *slash = memchr(text, '/', len);
	size_t addrlen = slash ? (size_t)(slash - text) : len;
	char exact[CIDR_TEXT_MAX];
	struct cidr c;
	unsigned prefix;
	int ret = cidr_parse_address(text, addrlen, &c);

	if (ret == -EAFNOSUPPORT) {
		set_error(err, errlen, "\"%.*s\" is an IPv4 address written as IPv6: write it as %u.%u.%u.%u",
			  cidr_quoted(len), text, c.address[12], c.address[13], c.address[14], c.address[15]);
		return -EINVAL;
	}
	if (ret < 0) {
		if (slash)
			set_error(err, errlen, "\"%.*s\" is not a network: \"%.*s\" is not an IPv4 or IPv6 address",
				  cidr_quoted(len), text, cidr_quoted(addrlen), text);
		else
			set_error(err, errlen, "\"%.*s\" is not an IPv4 or IPv6 address or network",
				  cidr_quoted(len), text);
		return -EINVAL;
	}
	c.prefix = (uint8_t)cidr_bits(&c);
	if (slash) {
		if (cidr_parse_prefix(slash + 1, len - addrlen - 1, &prefix) < 0 ||
		    prefix > cidr_bits(&c)) {
			set_error(err, errlen, "\"%.*s\": an %s prefix length is a number from 0 to %u",
				  cidr_quoted(len), text, c.family == CIDR_IPV4 ? "IPv4" : "IPv6",
				  cidr_bits(&c));
			return -EINVAL;
		}
		c.prefix = (uint8_t)prefix;
	}
	if (!cidr_is_network(&c, exact)) {
		set_error(err, errlen, "%.*s has host bits set: did you mean %s?", cidr_quoted(len), text,
			  exact);
		return -EINVAL;
	}
	*out = c;
	return 0;
}

void cidr_format(const struct cidr *c, char buf[static CIDR_TEXT_MAX])
{
	char address[INET6_ADDRSTRLEN] = "?";

	inet_ntop(c->family == CIDR_IPV4 ? AF_INET : AF_INET6, c->address, address, sizeof(address));
	if (c->prefix == cidr_bits(c))
		snprintf(buf, CIDR_TEXT_MAX, "%s", address);
	else
		snprintf(buf, CIDR_TEXT_MAX, "%s/%u", address, c->prefix);
}

bool cidr_valid(const struct cidr *c)
{
	char exact[CIDR_TEXT_MAX];

	/* Masked at the prefix, an IPv4 network's last twelve bytes are 0 too. */
	return (c->family == CIDR_IPV4 || c->family == CIDR_IPV6) && c->prefix <= cidr_bits(c) &&
	       cidr_is_network(c, exact);
}

bool cidr_contains(const struct cidr *outer, const struct cidr *inner)
{
	struct cidr cut = *inner;

	if (outer->family != inner->family || outer->prefix > inner->prefix)
		return false;
	cut.prefix = outer->prefix;
	cidr_mask(&cut);
	return memcmp(cut.address, outer->address, sizeof(cut.address)) == 0;
}

int cidr_compare(const struct cidr *a, const struct cidr *b)
{
	int ret;

	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	ret = memcmp(a->address, b->address, sizeof(a->address));
	if (ret)
		return ret < 0 ? -1 : 1;
	return a->prefix < b->prefix ? -1 : a->prefix > b->prefix;
}

static int cidr_compare_qsort(const void *a, const void *b)
{
	return cidr_compare(a, b);
}

/* Sorted; each network once, none inside another. */
static size_t cidr_normalise(struct cidr *list, size_t n)
{
	size_t kept = 0;

	qsort(list, n, sizeof(*list), cidr_compare_qsort);
	/* Sorted by address then prefix, a network's wider neighbour comes
	 * first: comparing with the last one kept is enough. */
	for (size_t i = 0; i < n; i++) {
		if (kept && cidr_contains(&list[kept - 1], &list[i]))
			continue;
		list[kept++] = list[i];
	}
	return kept;
}

#define CIDR_SEPARATORS " \t,"

int cidr_parse_list(const char *text, struct cidr out[static CIDR_LIST_MAX], size_t *n,
		    char *err, size_t errlen)
{
	struct cidr list[CIDR_LIST_MAX];
	size_t count = 0;
	bool any = false;

	for (const char *p = text + strspn(text, CIDR_SEPARATORS); *p;
	     p += strspn(p, CIDR_SEPARATORS)) {
		size_t len = strcspn(p, CIDR_SEPARATORS);

		if (len == 3 && strncmp(p, "any", 3) == 0) {
			any = true;
		} else {
			if (count == CIDR_LIST_MAX) {
				set_error(err, errlen, "a list takes at most %d networks; give wider ones",
					  CIDR_LIST_MAX);
				return -EINVAL;
			}
			if (cidr_parse(p, len, &list[count], err, errlen) < 0)
				return -EINVAL;
			count++;
		}
		p += len;
	}
	if (any && count) {
		set_error(err, errlen, "\"any\" stands alone: it lets every address in; name networks or any, not both");
		return -EINVAL;
	}
	if (!any && !count) {
		set_error(err, errlen, "the list of networks is empty: name at least one, such as 192.168.1.0/24, or any");
		return -EINVAL;
	}
	count = cidr_normalise(list, count);
	memcpy(out, list, count * sizeof(*list));
	*n = count;
	return 0;
}
