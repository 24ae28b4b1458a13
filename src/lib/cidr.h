/* SPDX-License-Identifier: MIT */
/*
 * Networks as people write them, IPv4 or IPv6: "192.168.1.0/24",
 * "2001:db8::/32", or a bare address (one host: /32 or /128).  The
 * allow-lists of forwarded ports (gpubox port add PORT --from ...) and the
 * configuration's forward_default_from are lists of them.
 *
 * Strict: an address is what inet_pton() reads (four decimal parts, no
 * leading zeros, no zone), a prefix is decimal without a sign or leading
 * zeros, and a network with host bits set is refused with the network
 * it probably meant ("10.0.0.5/8: did you mean 10.0.0.0/8?") rather
 * than masked in silence.  IPv4-mapped IPv6 addresses are refused: the
 * rules match IPv4 traffic by its IPv4 address.
 */
#ifndef GPUBOX_CIDR_H
#define GPUBOX_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Networks in one list, after duplicates are dropped. */
#define CIDR_LIST_MAX 32
/* The longest text cidr_format() writes, with its NUL: 39 + "/128". */
#define CIDR_TEXT_MAX 44

enum cidr_family { CIDR_IPV4 = 4, CIDR_IPV6 = 6 };

struct cidr {
	uint8_t family;          /* enum cidr_family */
	uint8_t prefix;          /* 0..32 or 0..128 */
	uint8_t address[16];     /* network order; IPv4 in the first four bytes, the rest 0 */
};

/* One network, len bytes at text (not NUL-terminated).  On error, one
 * sentence in err that quotes the text and says what is wrong. */
int cidr_parse(const char *text, size_t len, struct cidr *out, char *err, size_t errlen);

/*
 * A list separated by commas or blanks, or the word "any" alone (every
 * address: *n is 0).  The list is sorted (IPv4 first), each network once,
 * and a network inside another of the list is dropped.  Refused: an empty
 * list, "any" among networks, more than CIDR_LIST_MAX networks, and any
 * network cidr_parse() refuses.  On error out and *n are unchanged.
 */
int cidr_parse_list(const char *text, struct cidr out[static CIDR_LIST_MAX], size_t *n,
		    char *err, size_t errlen);

/* "10.0.0.0/8", "2001:db8::/32"; a single host without its prefix. */
void cidr_format(const struct cidr *c, char buf[static CIDR_TEXT_MAX]);

/* Whether c is a network as cidr_parse() gives them: a family, a prefix
 * within it, no host bits set. */
bool cidr_valid(const struct cidr *c);

/* Whether inner lies within outer (same family, outer's prefix no longer). */
bool cidr_contains(const struct cidr *outer, const struct cidr *inner);

/* Order: family, address, then prefix. */
int cidr_compare(const struct cidr *a, const struct cidr *b);

#endif
