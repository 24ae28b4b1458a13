/* SPDX-License-Identifier: MIT */
/*
 * The ~/.ssh/config a member downloads: for each server they enabled, one
 * entry for their container ("ssh gpu17", the member's own forwarded port)
 * and one for the server's login shell ("ssh gpu17-manage", port 22).
 * Every word written is checked again here, although the database holds
 * only checked names: a line break in a host name would let the file say
 * more than it should (ProxyCommand runs a shell).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "hub.h"
#include "strutil.h"
#include "validate.h"
#include "banned.h"

bool sshconfig_host_ok(const char *host)
{
	if (!host[0] || host[0] == '-' || strlen(host) > 253)
		return false;
	for (const char *p = host; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '.' || *p == '-' || *p == ':'))
			return false;
	return true;
}

static bool sshconfig_name_ok(const char *name)
{
	char err[160];

	return validate_member_name(name, err, sizeof(err)) == 0;
}

/* The lab's name in a comment: one line of printable text. */
static void sshconfig_clean_comment(const char *in, char *out, size_t len)
{
	size_t n = 0;

	for (const char *p = in; *p && n + 1 < len; p++)
		out[n++] = (unsigned char)*p < 0x20 || *p == 0x7f ? ' ' : *p;
	out[n] = '\0';
}

static void sshconfig_host_entry(FILE *f, const char *alias, const char *host, unsigned port,
				 const char *user)
{
	fprintf(f, "\nHost %s\n", alias);
	fprintf(f, "    HostName %s\n", host);
	fprintf(f, "    Port %u\n", port);
	fprintf(f, "    User %s\n", user);
}

char *sshconfig_render_lab(const char *lab_name, const struct hub_member *m,
			   const struct hub_server *servers, size_t n)
{
	char *text = NULL, lab[CONFIG_NAME_MAX], date[32];
	size_t len = 0;
	time_t now = time(NULL);
	struct tm tm;
	FILE *f;

	if (!m || !sshconfig_name_ok(m->name) || m->ssh_port == 0 || m->ssh_port > 65535) {
		errno = EINVAL;
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		const char *host = servers[i].ssh_host[0] ? servers[i].ssh_host : servers[i].name;

		if (!sshconfig_name_ok(servers[i].name) || !sshconfig_host_ok(host)) {
			errno = EINVAL;
			return NULL;
		}
	}
	sshconfig_clean_comment(lab_name ? lab_name : "gpubox", lab, sizeof(lab));
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M UTC", &tm);

	f = open_memstream(&text, &len);
	if (!f)
		return NULL;
	fprintf(f, "# SSH configuration of %s for the %s servers, made by gpubox-hub on %s.\n",
		m->name, lab, date);
	fprintf(f, "# Save it as ~/.ssh/config, or as ~/.ssh/config.d/gpubox with the line\n"
		   "# \"Include config.d/gpubox\" at the top of ~/.ssh/config.\n"
		   "# \"ssh SERVER\" reaches your container, \"ssh SERVER-manage\" starts, stops\n"
		   "# and manages it.\n");
	if (n == 0)
		fprintf(f, "#\n# You have enabled no server yet: choose some on the hub's page.\n");
	for (size_t i = 0; i < n; i++) {
		const char *host = servers[i].ssh_host[0] ? servers[i].ssh_host : servers[i].name;
		char alias[HUB_NAME_MAX + 16];

		sshconfig_host_entry(f, servers[i].name, host, m->ssh_port, m->name);
		snprintf(alias, sizeof(alias), "%s-manage", servers[i].name);
		sshconfig_host_entry(f, alias, host, 22, m->name);
	}
	if (!memstream_close(f)) {
		free(text);
		errno = ENOMEM;
		return NULL;
	}
	return text;
}

char *sshconfig_render(const struct hub_member *m, const struct hub_server *servers, size_t n)
{
	return sshconfig_render_lab(NULL, m, servers, n);
}
