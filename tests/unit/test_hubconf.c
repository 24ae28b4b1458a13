/* SPDX-License-Identifier: MIT */
/* hub.conf: every default, every key read, and every bad value or
 * combination refused with a sentence that names what to change. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "hub.h"
#include "testutil.h"
#include "banned.h"

static int parse(struct hub_config *cfg, const char *text, char *err, size_t errlen)
{
	hubconf_set_defaults(cfg);
	return hubconf_parse(cfg, text, strlen(text), err, errlen);
}

static void test_defaults(void **state)
{
	struct hub_config cfg;
	char err[512] = "";

	(void)state;
	assert_int_equal(parse(&cfg, "", err, sizeof(err)), 0);
	assert_string_equal(cfg.listen, "127.0.0.1:8080");
	assert_string_equal(cfg.state_dir, "/var/lib/gpubox-hub");
	assert_string_equal(cfg.auth, "local");
	assert_string_equal(cfg.ldap_filter, "(uid=%s)");
	assert_string_equal(cfg.ldap_display_attr, "cn");
	assert_true(cfg.ldap_starttls);
	assert_int_equal(cfg.login_fail_limit, 5);
	assert_int_equal(cfg.login_fail_window, 300);
	assert_int_equal(cfg.session_hours, 12);
	assert_int_equal(cfg.uid_range.first, 20000);
	assert_int_equal(cfg.uid_range.last, 29999);
	assert_int_equal(cfg.subid_range.first, 1000000);
	assert_int_equal(cfg.subid_range.last, 999999999);
	assert_int_equal(cfg.ssh_port_range.first, 2200);
	assert_int_equal(cfg.ssh_port_range.last, 2999);
	assert_string_equal(cfg.admin_group, "gpubox-admin");
	assert_string_equal(cfg.lab_name, "gpubox");
	assert_false(cfg.behind_proxy);
	assert_int_equal(cfg.connections_per_address, 64);
	assert_false(cfg.monitor_public);
	assert_string_equal(cfg.tls_cert, "");
	assert_string_equal(cfg.public_url, "");
}

static void test_values(void **state)
{
	struct hub_config cfg;
	char err[512] = "";
	const char *text =
		"# the lab's hub\n"
		"listen = [::1]:9443\n"
		"state_dir = /srv/hub\r\n"
		"tls_cert = /etc/ssl/hub.pem\n"
		"tls_key = /etc/ssl/hub.key\n"
		"public_url = https://hub.lab.example\n"
		"behind_proxy = yes\n"
		"connections_per_address = 16\n"
		"lab_name = Vision Lab\n"
		"auth = ldap\n"
		"ldap_uri = ldaps://ldap.lab.example ldap://127.0.0.1:389\n"
		"ldap_base = dc=lab,dc=example\n"
		"ldap_filter = (&(objectClass=posixAccount)(uid=%s))\n"
		"ldap_dn_template = uid=%s,ou=people,dc=lab,dc=example\n"
		"ldap_bind_dn = cn=reader,dc=lab,dc=example\n"
		"ldap_bind_password_file = /etc/gpubox/ldap.secret\n"
		"ldap_display_attr = displayName\n"
		"ldap_ca_file = /etc/ssl/lab-ca.pem\n"
		"ldap_starttls = yes\n"
		"login_fail_limit = 3\n"
		"login_fail_window = 600\n"
		"session_hours = 8\n"
		"monitor_public = on\n"
		"uid_range = 30000-30999\n"
		"subid_range = 2000000-2999999\n"
		"ssh_port_range = 4000-4999\n"
		"admin_group = lab-admins\n"
		"debug = true";

	(void)state;
	assert_int_equal(parse(&cfg, text, err, sizeof(err)), 0);
	assert_string_equal(cfg.listen, "[::1]:9443");
	assert_string_equal(cfg.state_dir, "/srv/hub");
	assert_string_equal(cfg.tls_key, "/etc/ssl/hub.key");
	assert_string_equal(cfg.public_url, "https://hub.lab.example");
	assert_true(cfg.behind_proxy);
	assert_int_equal(cfg.connections_per_address, 16);
	assert_string_equal(cfg.lab_name, "Vision Lab");
	assert_string_equal(cfg.auth, "ldap");
	assert_string_equal(cfg.ldap_display_attr, "displayName");
	assert_int_equal(cfg.login_fail_limit, 3);
	assert_int_equal(cfg.session_hours, 8);
	assert_true(cfg.monitor_public);
	assert_int_equal(cfg.uid_range.first, 30000);
	assert_int_equal(cfg.ssh_port_range.last, 4999);
	assert_true(cfg.debug);
}

static void test_ldap_loopback_without_tls(void **state)
{
	static const char *const ok[] = {
		"auth = ldap\nldap_uri = ldap://127.0.0.1\nldap_base = dc=x\nldap_starttls = no\n",
		"auth = ldap\nldap_uri = ldap://localhost:389/\nldap_base = dc=x\nldap_starttls = no\n",
		"auth = ldap\nldap_uri = ldap://[::1]:3890\nldap_base = dc=x\nldap_starttls = no\n",
		"auth = ldap\nldap_uri = ldapi://%2frun%2fslapd%2fldapi\nldap_base = dc=x\nldap_starttls = no\n",
		"auth = ldap\nldap_uri = ldaps://ldap.example.org\nldap_base = dc=x\nldap_starttls = no\n",
	};
	struct hub_config cfg;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		char err[512] = "";

		if (parse(&cfg, ok[i], err, sizeof(err)) != 0)
			fail_msg("case %zu refused: %s", i, err);
	}
}

static void test_refused(void **state)
{
	static const struct { const char *text; const char *words; } cases[] = {
		{ "nonsense\n", "key = value" },
		{ "colour = blue\n", "unknown key \"colour\"" },
		{ "debug = maybe\n", "yes or no" },
		{ "session_hours = -1\n", "whole number" },
		{ "uid_range = 5-1\n", "FIRST-LAST" },
		{ "listen = localhost:8080\n", "IP address" },
		{ "listen = 127.0.0.1\n", "ADDRESS:PORT" },
		{ "listen = 127.0.0.1:0\n", "ADDRESS:PORT" },
		{ "listen = 127.0.0.1:70000\n", "ADDRESS:PORT" },
		{ "listen = ::1:8080\n", "ADDRESS:PORT" },
		{ "state_dir = var/lib/hub\n", "absolute" },
		{ "tls_cert = /etc/ssl/hub.pem\n", "tls_cert and tls_key go together" },
		{ "tls_key = /etc/ssl/hub.key\n", "tls_cert and tls_key go together" },
		{ "tls_cert = hub.pem\ntls_key = hub.key\n", "absolute" },
		{ "public_url = hub.lab.example\n", "public_url" },
		{ "public_url = https://hub.lab/\"><script>\n", "public_url" },
		{ "lab_name =\n", "lab_name" },
		{ "auth = kerberos\n", "auth takes local" },
		{ "auth = ldap\nldap_base = dc=x\n", "needs ldap_uri" },
		{ "auth = ldap\nldap_uri = ldaps://ldap.example.org\n", "needs ldap_base" },
		{ "auth = ldap\nldap_uri = http://ldap.example.org\nldap_base = dc=x\n", "ldap://, ldaps:// or ldapi://" },
		{ "auth = ldap\nldap_uri = ldap://ldap.example.org\nldap_base = dc=x\nldap_starttls = no\n", "clear text" },
		{ "auth = ldap\nldap_uri = ldaps://a ldap://10.0.0.1\nldap_base = dc=x\nldap_starttls = no\n", "clear text" },
		{ "auth = ldap\nldap_uri = ldap://127.0.0.1.evil.org\nldap_base = dc=x\nldap_starttls = no\n", "clear text" },
		{ "auth = ldap\nldap_uri = ldap://localhostx\nldap_base = dc=x\nldap_starttls = no\n", "clear text" },
		{ "ldap_filter = (uid=admin)\n", "exactly one %s" },
		{ "ldap_filter = (|(uid=%s)(mail=%s))\n", "exactly one %s" },
		{ "ldap_filter = (uid=%s)(x=%d)\n", "exactly one %s" },
		{ "ldap_filter = uid=%s\n", "parentheses" },
		{ "ldap_dn_template = uid=admin,dc=x\n", "ldap_dn_template" },
		{ "ldap_dn_template = uid=%s,cn=%s\n", "ldap_dn_template" },
		{ "ldap_display_attr = cn)(x\n", "ldap_display_attr" },
		{ "ldap_bind_dn = cn=reader,dc=x\n", "go together" },
		{ "ldap_bind_password_file = /etc/secret\n", "go together" },
		{ "ldap_bind_dn = cn=r\nldap_bind_password_file = secret\n", "absolute" },
		{ "login_fail_limit = 0\n", "login_fail_limit" },
		{ "connections_per_address = 0\n", "connections_per_address" },
		{ "connections_per_address = 1001\n", "connections_per_address" },
		{ "login_fail_window = 0\n", "login_fail_window" },
		{ "login_fail_window = 100000\n", "login_fail_window" },
		{ "session_hours = 0\n", "session_hours" },
		{ "session_hours = 1000\n", "session_hours" },
		{ "uid_range = 0-100\n", "uid_range" },
		{ "uid_range = 60000-70000\n", "uid_range" },
		{ "subid_range = 0-65535\n", "subid_range" },
		{ "subid_range = 100-70000\n", "subid_range" },
		{ "subid_range = 10000-200000\nuid_range = 20000-29999\n", "overlap" },
		{ "ssh_port_range = 0-100\n", "ssh_port_range" },
		{ "ssh_port_range = 2000-70000\n", "ssh_port_range" },
		{ "ssh_port_range = 20-30\n", "port 22" },
		{ "admin_group = lab admins\n", "admin_group" },
		{ "admin_group =\n", "admin_group" },
	};
	struct hub_config cfg;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char err[512] = "";

		assert_int_equal(parse(&cfg, cases[i].text, err, sizeof(err)), -EINVAL);
		if (!strstr(err, cases[i].words))
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].words);
	}
}

static void test_hostile_text(void **state)
{
	struct hub_config cfg;
	char err[512] = "", line[CONFIG_TEXT_MAX + 256];
	const char nul[] = "debug = no\0debug = yes\n";

	(void)state;
	assert_int_equal(hubconf_parse(&cfg, nul, sizeof(nul) - 1, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "NUL"));
	memset(line, 'a', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\0';
	assert_int_equal(parse(&cfg, line, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "too long"));
	/* A value one byte too long for its field. */
	snprintf(line, sizeof(line), "lab_name = %0*d\n", CONFIG_NAME_MAX, 0);
	assert_int_equal(parse(&cfg, line, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "longer than 63"));
	assert_int_equal(parse(&cfg, "lab_name = a\tb\n", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "lab_name"));
}

static void test_listen(void **state)
{
	char host[64];
	uint16_t port;

	(void)state;
	assert_int_equal(hubconf_parse_listen("0.0.0.0:443", host, sizeof(host), &port), 0);
	assert_string_equal(host, "0.0.0.0");
	assert_int_equal(port, 443);
	assert_int_equal(hubconf_parse_listen("[2001:db8::1]:8080", host, sizeof(host), &port), 0);
	assert_string_equal(host, "2001:db8::1");
	assert_int_equal(port, 8080);
	assert_int_equal(hubconf_parse_listen("[::1]8080", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(hubconf_parse_listen("[::1:8080", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(hubconf_parse_listen(":8080", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(hubconf_parse_listen("1.2.3.4:", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(hubconf_parse_listen("1.2.3.4:+80", host, sizeof(host), &port), -EINVAL);
}

static void test_load(void **state)
{
	char dir[PATH_MAX], path[PATH_MAX], err[1024] = "";
	struct hub_config cfg;

	(void)state;
	assert_int_equal(tu_make_tempdir(dir, sizeof(dir), "/tmp/test-hubconf-XXXXXX"), 0);
	tu_write_file(dir, "hub.conf", "lab_name = Test Lab\nsession_hours = 2\n");
	tu_join(path, sizeof(path), dir, "hub.conf");
	assert_int_equal(hubconf_load(&cfg, path, err, sizeof(err)), 0);
	assert_string_equal(cfg.lab_name, "Test Lab");
	assert_int_equal(cfg.session_hours, 2);

	/* $GPUBOX_HUB_CONFIG when no path is given. */
	setenv("GPUBOX_HUB_CONFIG", path, 1);
	assert_int_equal(hubconf_load(&cfg, NULL, err, sizeof(err)), 0);
	assert_string_equal(cfg.lab_name, "Test Lab");
	unsetenv("GPUBOX_HUB_CONFIG");

	/* A file named on purpose must exist; the error names it. */
	tu_join(path, sizeof(path), dir, "missing.conf");
	assert_int_equal(hubconf_load(&cfg, path, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "missing.conf"));

	tu_write_file(dir, "bad.conf", "\n\nsession_hours = soon\n");
	tu_join(path, sizeof(path), dir, "bad.conf");
	assert_int_equal(hubconf_load(&cfg, path, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "bad.conf: line 3: session_hours"));
	tu_remove_tempdir(dir);
}

static void test_dump_round_trip(void **state)
{
	struct hub_config cfg, again;
	char err[512] = "", *text = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	assert_int_equal(parse(&cfg, "lab_name = Round Trip\nbehind_proxy = yes\nuid_range = 21000-21999\n",
			       err, sizeof(err)), 0);
	f = open_memstream(&text, &len);
	assert_non_null(f);
	hubconf_dump(&cfg, f);
	fclose(f);
	assert_non_null(strstr(text, "lab_name = Round Trip\n"));
	assert_non_null(strstr(text, "behind_proxy = yes\n"));
	assert_non_null(strstr(text, "uid_range = 21000-21999\n"));
	assert_int_equal(parse(&again, text, err, sizeof(err)), 0);
	assert_memory_equal(&cfg, &again, sizeof(cfg));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_ldap_loopback_without_tls),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_hostile_text),
		cmocka_unit_test(test_listen),
		cmocka_unit_test(test_load),
		cmocka_unit_test(test_dump_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
