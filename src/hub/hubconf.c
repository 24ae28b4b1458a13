/* SPDX-License-Identifier: MIT */
/*
 * The hub's configuration, /etc/gpubox/hub.conf: "key = value" lines like
 * gpubox.conf, one key per field of struct hub_config.  Every key has a
 * default, so an empty file is a working hub on loopback with local
 * accounts.  After the file is read, the checks that span keys refuse a
 * set-up that would be unsafe (LDAP passwords in clear text off loopback)
 * or that could not work (a filter without its %s), each with a sentence
 * saying what to change.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "hub.h"
#include "keyfile.h"
#include "strutil.h"
#include "validate.h"
#include "banned.h"


#define KEY(field, type) KEYFILE_KEY(struct hub_config, #field, type, field)
#define HUBCONF_STRING KEYFILE_STRING
#define HUBCONF_RANGE KEYFILE_RANGE
#define HUBCONF_UINT KEYFILE_UINT
#define HUBCONF_BOOL KEYFILE_BOOL

static const struct keyfile_key hubconf_keys[] = {
	KEY(listen,                  HUBCONF_STRING),
	KEY(state_dir,               HUBCONF_STRING),
	KEY(tls_cert,                HUBCONF_STRING),
	KEY(tls_key,                 HUBCONF_STRING),
	KEY(public_url,              HUBCONF_STRING),
	KEY(behind_proxy,            HUBCONF_BOOL),
	KEY(connections_per_address, HUBCONF_UINT),
	KEY(lab_name,                HUBCONF_STRING),
	KEY(auth,                    HUBCONF_STRING),
	KEY(ldap_uri,                HUBCONF_STRING),
	KEY(ldap_base,               HUBCONF_STRING),
	KEY(ldap_filter,             HUBCONF_STRING),
	KEY(ldap_dn_template,        HUBCONF_STRING),
	KEY(ldap_bind_dn,            HUBCONF_STRING),
	KEY(ldap_bind_password_file, HUBCONF_STRING),
	KEY(ldap_display_attr,       HUBCONF_STRING),
	KEY(ldap_ca_file,            HUBCONF_STRING),
	KEY(ldap_starttls,           HUBCONF_BOOL),
	KEY(login_fail_limit,        HUBCONF_UINT),
	KEY(login_fail_window,       HUBCONF_UINT),
	KEY(session_hours,           HUBCONF_UINT),
	KEY(monitor_public,          HUBCONF_BOOL),
	KEY(monitor_poll,            HUBCONF_UINT),
	KEY(uid_range,               HUBCONF_RANGE),
	KEY(subid_range,             HUBCONF_RANGE),
	KEY(ssh_port_range,          HUBCONF_RANGE),
	KEY(admin_group,             HUBCONF_STRING),
	KEY(debug,                   HUBCONF_BOOL),
};

void hubconf_set_defaults(struct hub_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->listen, sizeof(cfg->listen), "127.0.0.1:8080");
	snprintf(cfg->state_dir, sizeof(cfg->state_dir), "/var/lib/gpubox-hub");
	snprintf(cfg->lab_name, sizeof(cfg->lab_name), "gpubox");
	snprintf(cfg->auth, sizeof(cfg->auth), "local");
	snprintf(cfg->ldap_filter, sizeof(cfg->ldap_filter), "(uid=%%s)");
	snprintf(cfg->ldap_display_attr, sizeof(cfg->ldap_display_attr), "cn");
	cfg->ldap_starttls = true;
	cfg->login_fail_limit = 5;
	cfg->login_fail_window = 300;
	cfg->connections_per_address = 64;
	cfg->session_hours = 12;
	cfg->monitor_public = false;
	cfg->monitor_poll = 5;
	cfg->uid_range = (struct config_range){ 20000, 29999 };
	cfg->subid_range = (struct config_range){ 1000000, 999999999 };
	cfg->ssh_port_range = (struct config_range){ 2200, 2999 };
	snprintf(cfg->admin_group, sizeof(cfg->admin_group), "gpubox-admin");
}

int hubconf_parse_listen(const char *listen, char *host, size_t hostlen, uint16_t *port)
{
	unsigned char addr[sizeof(struct in6_addr)];
	const char *colon, *start = listen;
	size_t len;

	if (listen[0] == '[') {
		const char *close = strchr(listen, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		start = listen + 1;
		len = (size_t)(close - start);
		colon = close + 1;
	} else {
		colon = strrchr(listen, ':');
		if (!colon)
			return -EINVAL;
		len = (size_t)(colon - listen);
	}
	if (len == 0 || len >= hostlen)
		return -EINVAL;
	memcpy(host, start, len);
	host[len] = '\0';
	if (inet_pton(listen[0] == '[' ? AF_INET6 : AF_INET, host, addr) != 1)
		return -EINVAL;
	return parse_port(colon + 1, port);
}

static bool hubconf_has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

static bool hubconf_absolute_or_empty(const char *path)
{
	return !path[0] || (path[0] == '/' && !hubconf_has_control(path));
}

/* The number of "%s" in text, or -1 when another '%' directive appears. */
static int hubconf_count_placeholders(const char *text)
{
	int count = 0;

	for (const char *p = strchr(text, '%'); p; p = strchr(p + 2, '%')) {
		if (p[1] != 's')
			return -1;
		count++;
	}
	return count;
}

static bool hubconf_url_ok(const char *url)
{
	if (!str_has_prefix(url, "http://") && !str_has_prefix(url, "https://"))
		return false;
	return !hubconf_has_control(url) && !strpbrk(url, " \"'<>\\`");
}

static int hubconf_check_paths(const struct hub_config *cfg, char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN];
	uint16_t port;

	if (hubconf_parse_listen(cfg->listen, host, sizeof(host), &port) < 0) {
		set_error(err, errlen, "listen must be ADDRESS:PORT with an IP address, such as 127.0.0.1:8080 or [::1]:8080");
		return -EINVAL;
	}
	if (cfg->state_dir[0] != '/' || hubconf_has_control(cfg->state_dir)) {
		set_error(err, errlen, "state_dir must be an absolute path");
		return -EINVAL;
	}
	if (!cfg->tls_cert[0] != !cfg->tls_key[0]) {
		set_error(err, errlen, "tls_cert and tls_key go together: set both (HTTPS) or neither (plain HTTP behind a proxy or on loopback)");
		return -EINVAL;
	}
	if (!hubconf_absolute_or_empty(cfg->tls_cert) || !hubconf_absolute_or_empty(cfg->tls_key) ||
	    !hubconf_absolute_or_empty(cfg->ldap_ca_file) ||
	    !hubconf_absolute_or_empty(cfg->ldap_bind_password_file)) {
		set_error(err, errlen, "tls_cert, tls_key, ldap_ca_file and ldap_bind_password_file must be absolute paths");
		return -EINVAL;
	}
	if (cfg->public_url[0] && !hubconf_url_ok(cfg->public_url)) {
		set_error(err, errlen, "public_url must be empty or an http:// or https:// address without blanks or quotes");
		return -EINVAL;
	}
	if (!cfg->lab_name[0] || hubconf_has_control(cfg->lab_name)) {
		set_error(err, errlen, "lab_name must be a non-empty line of text");
		return -EINVAL;
	}
	return 0;
}

/* "ldap://host:389/" -> whether host is the loopback interface. */
static bool hubconf_ldap_uri_is_loopback(const char *uri, size_t len)
{
	static const char *const loopback[] = { "127.0.0.1", "[::1]", "localhost" };
	const char *host = uri + strlen("ldap://");
	size_t hostlen = len - strlen("ldap://");

	hostlen = strcspn(host, "/") < hostlen ? strcspn(host, "/") : hostlen;
	for (size_t i = 0; i < ARRAY_SIZE(loopback); i++) {
		size_t l = strlen(loopback[i]);

		if (hostlen >= l && strncmp(host, loopback[i], l) == 0 &&
		    (hostlen == l || host[l] == ':'))
			return true;
	}
	return false;
}

/* Each URI of the blank-separated list: a known scheme, and no clear-text
 * password over the network. */
static int hubconf_check_ldap_uris(const struct hub_config *cfg, char *err, size_t errlen)
{
	const char *p = cfg->ldap_uri;
	bool any = false;

	if (hubconf_has_control(p)) {
		set_error(err, errlen, "ldap_uri holds a control character");
		return -EINVAL;
	}
	for (p += strspn(p, " "); *p; p += strspn(p, " ")) {
		size_t len = strcspn(p, " ");

		any = true;
		if (strncmp(p, "ldaps://", 8) == 0 || strncmp(p, "ldapi://", 8) == 0) {
			p += len;
			continue;
		}
		if (strncmp(p, "ldap://", 7) != 0) {
			set_error(err, errlen, "ldap_uri takes ldap://, ldaps:// or ldapi:// addresses, not \"%.*s\"",
				 (int)(len > 80 ? 80 : len), p);
			return -EINVAL;
		}
		if (!cfg->ldap_starttls && !hubconf_ldap_uri_is_loopback(p, len)) {
			set_error(err, errlen, "ldap_starttls = no would send passwords in clear text to %.*s: "
				 "use ldaps://, or keep ldap_starttls = yes (allowed off only for 127.0.0.1, ::1 or localhost)",
				 (int)(len > 80 ? 80 : len), p);
			return -EINVAL;
		}
		p += len;
	}
	if (!any) {
		set_error(err, errlen, "auth = ldap needs ldap_uri, such as ldaps://ldap.example.org");
		return -EINVAL;
	}
	return 0;
}

static bool hubconf_word_ok(const char *word, const char *extra)
{
	if (!word[0])
		return false;
	for (const char *p = word; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr(extra, *p))
			return false;
	return true;
}

static int hubconf_check_ldap(const struct hub_config *cfg, char *err, size_t errlen)
{
	const char *f = cfg->ldap_filter;
	size_t flen = strlen(f);

	if (hubconf_count_placeholders(f) != 1 || flen < 2 || f[0] != '(' || f[flen - 1] != ')' ||
	    hubconf_has_control(f)) {
		set_error(err, errlen, "ldap_filter must be a filter in parentheses with exactly one %%s and no other %%, such as (uid=%%s)");
		return -EINVAL;
	}
	if (cfg->ldap_dn_template[0] &&
	    (hubconf_count_placeholders(cfg->ldap_dn_template) != 1 ||
	     hubconf_has_control(cfg->ldap_dn_template))) {
		set_error(err, errlen, "ldap_dn_template must hold exactly one %%s and no other %%, such as uid=%%s,ou=people,dc=example,dc=org");
		return -EINVAL;
	}
	if (!hubconf_word_ok(cfg->ldap_display_attr, "-;")) {
		set_error(err, errlen, "ldap_display_attr must be an attribute name, such as cn or displayName");
		return -EINVAL;
	}
	if (!cfg->ldap_bind_dn[0] != !cfg->ldap_bind_password_file[0]) {
		set_error(err, errlen, "ldap_bind_dn and ldap_bind_password_file go together: set both, or neither for an anonymous search");
		return -EINVAL;
	}
	if (hubconf_has_control(cfg->ldap_base) || hubconf_has_control(cfg->ldap_bind_dn)) {
		set_error(err, errlen, "ldap_base and ldap_bind_dn must not hold control characters");
		return -EINVAL;
	}
	if (strcmp(cfg->auth, "ldap") != 0)
		return 0;
	if (!cfg->ldap_base[0]) {
		set_error(err, errlen, "auth = ldap needs ldap_base, such as dc=example,dc=org");
		return -EINVAL;
	}
	return hubconf_check_ldap_uris(cfg, err, errlen);
}

static bool hubconf_overlap(const struct config_range *a, const struct config_range *b)
{
	return a->first <= b->last && b->first <= a->last;
}

/* Whether the range holds one 65536-aligned block that does not hold id 0. */
static bool hubconf_subid_range_usable(const struct config_range *r)
{
	uint64_t base = ((uint64_t)r->first + SUBID_COUNT - 1) / SUBID_COUNT * SUBID_COUNT;

	if (base == 0)
		base = SUBID_COUNT;
	return base + SUBID_COUNT - 1 <= r->last;
}

static int hubconf_check_ranges(const struct hub_config *cfg, char *err, size_t errlen)
{
	/* A member has the same uid inside the container, which maps 65536 ids. */
	if (cfg->uid_range.first == 0 || cfg->uid_range.last > 65535) {
		set_error(err, errlen, "uid_range must lie within 1-65535 (a member has the same uid inside the container)");
		return -EINVAL;
	}
	if (!hubconf_subid_range_usable(&cfg->subid_range)) {
		set_error(err, errlen, "subid_range must hold at least one whole block of 65536 ids starting at a multiple of 65536 above 0");
		return -EINVAL;
	}
	if (hubconf_overlap(&cfg->uid_range, &cfg->subid_range)) {
		set_error(err, errlen, "uid_range and subid_range overlap");
		return -EINVAL;
	}
	if (cfg->ssh_port_range.first == 0 || cfg->ssh_port_range.last > 65535) {
		set_error(err, errlen, "ssh_port_range must lie within 1-65535");
		return -EINVAL;
	}
	if (cfg->ssh_port_range.first <= 22 && 22 <= cfg->ssh_port_range.last) {
		set_error(err, errlen, "ssh_port_range must not hold port 22, the servers' own SSH");
		return -EINVAL;
	}
	return 0;
}

static int hubconf_check_limits(const struct hub_config *cfg, char *err, size_t errlen)
{
	if (cfg->login_fail_limit < 1 || cfg->login_fail_limit > 1000) {
		set_error(err, errlen, "login_fail_limit takes 1 to 1000 failures");
		return -EINVAL;
	}
	if (cfg->login_fail_window < 1 || cfg->login_fail_window > 86400) {
		set_error(err, errlen, "login_fail_window takes 1 to 86400 seconds");
		return -EINVAL;
	}
	if (cfg->connections_per_address < 1 || cfg->connections_per_address > 1000) {
		set_error(err, errlen, "connections_per_address takes 1 to 1000 connections");
		return -EINVAL;
	}
	if (cfg->monitor_poll > 3600) {
		set_error(err, errlen, "monitor_poll takes 0 (no monitor) to 3600 seconds");
		return -EINVAL;
	}
	if (cfg->session_hours < 1 || cfg->session_hours > 24 * 30) {
		set_error(err, errlen, "session_hours takes 1 to 720 hours");
		return -EINVAL;
	}
	if (!hubconf_word_ok(cfg->admin_group, "-_.")) {
		set_error(err, errlen, "admin_group must be a group name of letters, digits, '-', '_' or '.'");
		return -EINVAL;
	}
	return 0;
}

/* Checks that span keys, after the whole file is read. */
static int hubconf_check(const struct hub_config *cfg, char *err, size_t errlen)
{
	if (strcmp(cfg->auth, "local") != 0 && strcmp(cfg->auth, "ldap") != 0) {
		set_error(err, errlen, "auth takes local (accounts made with gpubox-hub user add) or ldap");
		return -EINVAL;
	}
	if (hubconf_check_paths(cfg, err, errlen) < 0 || hubconf_check_ldap(cfg, err, errlen) < 0 ||
	    hubconf_check_ranges(cfg, err, errlen) < 0 || hubconf_check_limits(cfg, err, errlen) < 0)
		return -EINVAL;
	return 0;
}

static int hubconf_check_any(const void *cfg, char *err, size_t errlen)
{
	return hubconf_check(cfg, err, errlen);
}

static const struct keyfile_spec hubconf_spec = {
	.keys = hubconf_keys,
	.nkeys = ARRAY_SIZE(hubconf_keys),
	.manual = "gpubox-hub(8)",
	.check = hubconf_check_any,
};

int hubconf_parse(struct hub_config *cfg, const char *text, size_t len, char *err, size_t errlen)
{
	return keyfile_parse(cfg, &hubconf_spec, text, len, err, errlen);
}

int hubconf_load(struct hub_config *cfg, const char *path, char *err, size_t errlen)
{
	bool named = path != NULL;

	hubconf_set_defaults(cfg);
	if (!path)
		path = getenv("GPUBOX_HUB_CONFIG");
	if (path && *path)
		named = true;
	else
		path = HUBCONF_DEFAULT_PATH;
	return keyfile_load(cfg, &hubconf_spec, path, named, err, errlen);
}

void hubconf_dump(const struct hub_config *cfg, FILE *out)
{
	keyfile_dump(cfg, &hubconf_spec, out);
}
