/* SPDX-License-Identifier: MIT */
/* The ~/.ssh/config a member downloads: two entries per enabled server,
 * and nothing written that ssh could read as more than a host name. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "hub.h"
#include "strutil.h"
#include "testutil.h"
#include "banned.h"

static void member(struct hub_member *m, const char *name, uint32_t port)
{
	memset(m, 0, sizeof(*m));
	snprintf(m->name, sizeof(m->name), "%s", name);
	m->uid = 20001;
	m->subid_base = 1048576;
	m->ssh_port = port;
}

static void server(struct hub_server *s, const char *name, const char *ssh_host)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->name, sizeof(s->name), "%s", name);
	snprintf(s->ssh_host, sizeof(s->ssh_host), "%s", ssh_host);
	snprintf(s->url, sizeof(s->url), "http://%s:9401", name);
}

static void test_render(void **state)
{
	struct hub_member m;
	struct hub_server s[2];
	char *text;

	(void)state;
	member(&m, "alice", 2201);
	server(&s[0], "gpu17", "gpu17.lab.example");
	server(&s[1], "gpu18", "");
	text = sshconfig_render_lab("Vision Lab", &m, s, 2);
	assert_non_null(text);
	assert_true(str_has_prefix(text, "# SSH configuration of alice for the Vision Lab servers, made by gpubox-hub on "));
	assert_non_null(strstr(text,
		"\nHost gpu17\n"
		"    HostName gpu17.lab.example\n"
		"    Port 2201\n"
		"    User alice\n"
		"\nHost gpu17-manage\n"
		"    HostName gpu17.lab.example\n"
		"    Port 22\n"
		"    User alice\n"));
	/* No ssh host: the server's name. */
	assert_non_null(strstr(text,
		"\nHost gpu18\n"
		"    HostName gpu18\n"
		"    Port 2201\n"
		"    User alice\n"
		"\nHost gpu18-manage\n"
		"    HostName gpu18\n"
		"    Port 22\n"
		"    User alice\n"));
	assert_int_equal(tu_count_substr(text, "\nHost "), 4);
	/* Every line is a comment, blank, or one of the four keywords. */
	for (char *line = text; *line;) {
		size_t len = strcspn(line, "\n");

		assert_true(len == 0 || line[0] == '#' || str_has_prefix(line, "Host ") ||
			    str_has_prefix(line, "    HostName ") || str_has_prefix(line, "    Port ") ||
			    str_has_prefix(line, "    User "));
		line += len + (line[len] == '\n');
	}
	free(text);

	/* The lab's default name, and the date in the header. */
	text = sshconfig_render(&m, s, 1);
	assert_non_null(text);
	assert_non_null(strstr(text, "for the gpubox servers, made by gpubox-hub on 20"));
	assert_non_null(strstr(text, " UTC.\n"));
	free(text);
}

static void test_no_servers(void **state)
{
	struct hub_member m;
	char *text;

	(void)state;
	member(&m, "bob", 2202);
	text = sshconfig_render_lab("Lab", &m, NULL, 0);
	assert_non_null(text);
	assert_null(strstr(text, "\nHost "));
	assert_non_null(strstr(text, "no server"));
	free(text);
}

static void test_refused(void **state)
{
	static const char *const bad_hosts[] = {
		"gpu17\n    ProxyCommand sh -c id",
		"gpu17 other",
		"-oProxyCommand=id",
		"gpu17;id",
		"gpu17\"",
	};
	struct hub_member m;
	struct hub_server s;

	(void)state;
	member(&m, "alice", 2201);
	for (size_t i = 0; i < ARRAY_SIZE(bad_hosts); i++) {
		server(&s, "gpu17", bad_hosts[i]);
		errno = 0;
		assert_null(sshconfig_render_lab("Lab", &m, &s, 1));
		assert_int_equal(errno, EINVAL);
	}
	server(&s, "gpu 17", "");
	assert_null(sshconfig_render_lab("Lab", &m, &s, 1));
	server(&s, "gpu17", "");
	member(&m, "Alice\nHost *", 2201);
	assert_null(sshconfig_render_lab("Lab", &m, &s, 1));
	member(&m, "alice", 0);
	assert_null(sshconfig_render_lab("Lab", &m, &s, 1));
	assert_null(sshconfig_render_lab("Lab", NULL, &s, 1));

	/* A line break in the lab's name stays inside the comment. */
	member(&m, "alice", 2201);
	{
		char *text = sshconfig_render_lab("Lab\nHost *\n  ProxyCommand id", &m, &s, 1);

		assert_non_null(text);
		assert_null(strstr(text, "\nHost *"));
		assert_null(strstr(text, "\n  ProxyCommand"));
		free(text);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render),
		cmocka_unit_test(test_no_servers),
		cmocka_unit_test(test_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
