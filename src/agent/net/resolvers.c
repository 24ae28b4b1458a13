/* SPDX-License-Identifier: MIT */
/*
 * The DNS servers the containers use: those of the resolv.conf the agent
 * copies into each container (provision.c), so that egress_deny can
 * leave their DNS port open even inside a denied network.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"
#include "cleanup.h"
#include "fsutil.h"

#include "banned.h"

#define RESOLVERS_HOST "/etc/resolv.conf"
#define RESOLVERS_RESOLVED "/run/systemd/resolve/resolv.conf"
#define RESOLVERS_FILE_MAX 65536
#define RESOLVERS_STUB 0x7f000035u        /* 127.0.0.53, systemd-resolved's */

/* The address of one line "nameserver ADDRESS[ anything]", len bytes. */
static bool resolvers_line(const char *line, size_t len, uint32_t *address)
{
	char word[INET_ADDRSTRLEN];
	struct in_addr in;
	size_t skip, n;

	skip = 0;
	while (skip < len && (line[skip] == ' ' || line[skip] == '\t'))
		skip++;
	line += skip;
	len -= skip;
	if (len < 11 || memcmp(line, "nameserver", 10) != 0 || (line[10] != ' ' && line[10] != '\t'))
		return false;
	line += 10;
	len -= 10;
	while (len && (*line == ' ' || *line == '\t')) {
		line++;
		len--;
	}
	for (n = 0; n < len && line[n] != ' ' && line[n] != '\t' && line[n] != '\r'; n++)
		;
	if (n == 0 || n >= sizeof(word))
		return false;
	memcpy(word, line, n);
	word[n] = '\0';
	if (inet_pton(AF_INET, word, &in) != 1)
		return false;
	*address = ntohl(in.s_addr);
	return true;
}

size_t resolvers_parse(const char *text, size_t len, uint32_t *out, size_t max)
{
	size_t n = 0;

	if (!text || !out)
		return 0;
	for (size_t at = 0; at < len && n < max;) {
		const char *end = memchr(text + at, '\n', len - at);
		size_t line_len = end ? (size_t)(end - (text + at)) : len - at;
		uint32_t address;
		bool seen = false;

		if (resolvers_line(text + at, line_len, &address)) {
			for (size_t i = 0; i < n; i++)
				seen |= out[i] == address;
			if (!seen)
				out[n++] = address;
		}
		at += line_len + 1;
	}
	return n;
}

static size_t resolvers_file(const char *path, uint32_t *out, size_t max)
{
	__do_free char *text = NULL;
	size_t len = 0;

	if (fsutil_read_file(path, RESOLVERS_FILE_MAX, &text, &len) < 0)
		return 0;
	return resolvers_parse(text, len, out, max);
}

size_t resolvers_host(uint32_t *out, size_t max)
{
	size_t n = resolvers_file(RESOLVERS_HOST, out, max);

	/* 127.0.0.53 answers on the host only: the containers get the
	 * upstream servers of systemd-resolved instead. */
	if (n > 0) {
		bool stub = true;

		for (size_t i = 0; i < n; i++)
			stub &= out[i] == RESOLVERS_STUB;
		if (stub)
			n = resolvers_file(RESOLVERS_RESOLVED, out, max);
	}
	return n;
}
