/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "config.h"

static int parse(struct gpubox_config *cfg, const char *text, char *err, size_t errlen)
{
	config_set_defaults(cfg);
	return config_parse(cfg, text, strlen(text), err, errlen);
}

static void test_defaults(void **state)
{
	struct gpubox_config cfg;
	char err[256] = "";

	(void)state;
	assert_int_equal(parse(&cfg, "", err, sizeof(err)), 0);
	assert_string_equal(cfg.socket_path, "/run/gpubox/gpubox.sock");
	assert_string_equal(cfg.state_dir, "/var/lib/gpubox");
	assert_int_equal(cfg.ssh_port_range.first, 2200);
	assert_string_equal(cfg.template_name, "default");
	assert_true(cfg.server_name[0] != '\0');
}

static void test_values(void **state)
{
	struct gpubox_config cfg;
	char err[256] = "";
	const char *text =
		"# a comment\n"
		"  state_dir =  /srv/gpubox  \n"
		"\n"
		"ssh_port_range = 3000-3099\r\n"
		"start_timeout=5\n"
		"debug = yes\n"
		"template_packages = a b c";

	(void)state;
	assert_int_equal(parse(&cfg, text, err, sizeof(err)), 0);
	assert_string_equal(cfg.state_dir, "/srv/gpubox");
	assert_int_equal(cfg.ssh_port_range.first, 3000);
	assert_int_equal(cfg.ssh_port_range.last, 3099);
	assert_int_equal(cfg.start_timeout, 5);
	assert_true(cfg.debug);
	assert_string_equal(cfg.template_packages, "a b c");
}

static void test_snapshot_keys(void **state)
{
	static const char *const bad[] = {
		"snapshot_quota = 10 G\n", "snapshot_quota = 10g\n", "snapshot_quota = 1.5G\n",
		"snapshot_quota = -1\n", "snapshot_quota = G\n", "snapshot_quota = 10GB\n",
		"snapshot_quota = 99999999999999999999\n", "snapshot_quota = 20000000000T\n",
		"snapshot_quota = \n", "snapshot_max_count = x\n",
	};
	struct gpubox_config cfg;
	char err[256] = "";

	(void)state;
	assert_int_equal(parse(&cfg, "", err, sizeof(err)), 0);
	assert_string_equal(cfg.snapshot_dir, "");
	assert_int_equal(cfg.snapshot_quota, 0);
	assert_int_equal(parse(&cfg, "snapshot_dir = /nas/snap\nsnapshot_quota = 50G\n"
				     "snapshot_max_count = 10\nsnapshot_threads = 4\n"
				     "template_setup = /etc/gpubox/setup\n", err, sizeof(err)), 0);
	assert_string_equal(cfg.snapshot_dir, "/nas/snap");
	assert_true(cfg.snapshot_quota == 50ull << 30);
	assert_int_equal(cfg.snapshot_max_count, 10);
	assert_int_equal(cfg.snapshot_threads, 4);
	assert_string_equal(cfg.template_setup, "/etc/gpubox/setup");
	assert_int_equal(parse(&cfg, "snapshot_quota = 1048576\n", err, sizeof(err)), 0);
	assert_true(cfg.snapshot_quota == 1048576);
	assert_int_equal(parse(&cfg, "snapshot_quota = 3K\n", err, sizeof(err)), 0);
	assert_true(cfg.snapshot_quota == 3072);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(parse(&cfg, bad[i], err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "line 1"));
	}
}

static void test_layers_pool_keys(void **state)
{
	static const char *const bad[] = {
		"layers_pool = yes\n", "layers_pool = relative/dir\n", "layers_pool = /srv/../etc\n",
		"layers_pool = /\n", "layers_pool = /srv/a b\n", "layers_pool_size = 1.5G\n",
		"layers_pool_size = -1\n",
	};
	struct gpubox_config cfg;
	char err[256] = "";

	(void)state;
	assert_int_equal(parse(&cfg, "", err, sizeof(err)), 0);
	assert_string_equal(cfg.layers_pool, "auto");
	assert_int_equal(cfg.layers_pool_size, 0);
	assert_int_equal(parse(&cfg, "layers_pool = none\nlayers_pool_size = 2T\n", err, sizeof(err)), 0);
	assert_string_equal(cfg.layers_pool, "none");
	assert_true(cfg.layers_pool_size == 2ull << 40);
	assert_int_equal(parse(&cfg, "layers_pool = /srv/xfs/layers\n", err, sizeof(err)), 0);
	assert_string_equal(cfg.layers_pool, "/srv/xfs/layers");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(parse(&cfg, bad[i], err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "layers_pool"));
	}
}

static void test_errors(void **state)
{
	static const struct { const char *text; const char *words; } cases[] = {
		{ "nokey\n", "line 1: expected" },
		{ "\nfoo = 1\n", "line 2: unknown key \"foo\"" },
		{ "ssh_port_range = 10-5\n", "range" },
		{ "ssh_port_range = 1100-70000\n", "1024-65535" },
		/* A member's DNAT must never take the server's own services. */
		{ "ssh_port_range = 22-22\n", "ssh_port_range 22-22 must lie within 1024-65535" },
		{ "ssh_port_range = 20-3000\n", "ssh_port_range 20-3000 must lie within 1024-65535" },
		{ "ssh_port_range = 1023-2000\n", "below 1024" },
		{ "forward_port_range = 1-100\n", "forward_port_range 1-100 must lie within 1024-65535" },
		{ "forward_port_range = 443-30000\n", "forward_port_range" },
		{ "forward_port_range = 1000-1099\n", "22 among them" },
		{ "ssh_port_range = 30000-30010\n", "overlap" },
		{ "start_timeout = -1\n", "whole number" },
		{ "start_timeout = 99999999999\n", "whole number" },
		{ "debug = maybe\n", "yes or no" },
		{ "subid_range = 0-100000\n", "subid_range" },
		{ "uid_range = 0-10\n", "uid_range" },
		{ "uid_range = 60000-70000\n", "within 1-65535" },
		{ "bridge = averyveryverylongname\n", "longer than" },
	};
	struct gpubox_config cfg;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[256] = "";

		assert_int_equal(parse(&cfg, cases[i].text, err, sizeof(err)), -EINVAL);
		if (!strstr(err, cases[i].words))
			fail_msg("case %zu: \"%s\" does not say \"%s\"", i, err, cases[i].words);
	}
}

static void test_low_ports_edge(void **state)
{
	struct gpubox_config cfg;
	char err[256] = "";

	(void)state;
	assert_int_equal(parse(&cfg, "ssh_port_range = 1024-1100\nforward_port_range = 65000-65535\n",
			       err, sizeof(err)), 0);
	assert_int_equal(cfg.ssh_port_range.first, 1024);
}

/* Plain http:// only to this host's loopback, unless the admin says so. */
static void test_hub_url_transport(void **state)
{
	static const char *const refused[] = {
		"http://hub.lab.example", "http://192.0.2.1:8080/", "http://10.0.0.1",
		"http://[2001:db8::1]:80/hub", "http://127.0.0.1.example.org", "http://127.1",
		"http://localhost.example.org", "http://128.0.0.1", "http://[::2]",
	};
	static const char *const taken[] = {
		"https://hub.lab.example", "https://192.0.2.1:8443/hub", "http://127.0.0.1:8080/",
		"http://127.5.6.7", "http://localhost:9000", "http://LOCALHOST", "http://[::1]:8080",
	};
	struct gpubox_config cfg;
	char text[512], err[512];

	(void)state;
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		err[0] = '\0';
		snprintf(text, sizeof(text), "hub_url = %s\nhub_token_file = /etc/gpubox/hub.token\n",
			 refused[i]);
		if (parse(&cfg, text, err, sizeof(err)) != -EINVAL || !strstr(err, "hub_insecure_http = yes"))
			fail_msg("%s: taken (\"%s\")", refused[i], err);
		assert_true(config_hub_url_insecure(refused[i]));
		snprintf(text, sizeof(text),
			 "hub_url = %s\nhub_token_file = /etc/gpubox/hub.token\nhub_insecure_http = yes\n",
			 refused[i]);
		if (parse(&cfg, text, err, sizeof(err)) != 0)
			fail_msg("%s with hub_insecure_http: %s", refused[i], err);
		assert_true(cfg.hub_insecure_http);
	}
	for (size_t i = 0; i < sizeof(taken) / sizeof(taken[0]); i++) {
		snprintf(text, sizeof(text), "hub_url = %s\nhub_token_file = /etc/gpubox/hub.token\n",
			 taken[i]);
		if (parse(&cfg, text, err, sizeof(err)) != 0)
			fail_msg("%s: %s", taken[i], err);
		assert_false(cfg.hub_insecure_http);
		assert_false(config_hub_url_insecure(taken[i]));
	}
}

static void test_nul_and_long_lines(void **state)
{
	struct gpubox_config cfg;
	char err[256] = "", text[4096];

	(void)state;
	config_set_defaults(&cfg);
	assert_int_equal(config_parse(&cfg, "debug = no\0x\n", 13, err, sizeof(err)), -EINVAL);
	memset(text, 'a', sizeof(text));
	assert_int_equal(config_parse(&cfg, text, sizeof(text), err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "too long"));
}

static void test_load_missing(void **state)
{
	struct gpubox_config cfg;
	char err[256] = "";

	(void)state;
	/* A named file must exist; the default one may be absent. */
	assert_true(config_load(&cfg, "/nonexistent/gpubox.conf", err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "cannot read"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_snapshot_keys),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_low_ports_edge),
		cmocka_unit_test(test_hub_url_transport),
		cmocka_unit_test(test_nul_and_long_lines),
		cmocka_unit_test(test_load_missing),
		cmocka_unit_test(test_layers_pool_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
