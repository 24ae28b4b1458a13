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
		"snapshot_quota = \n", "snapshot_max_count = x\n", "disk_reserve = 5%\n",
	};
	struct gpubox_config cfg;
	char err[256] = "";

	(void)state;
	assert_int_equal(parse(&cfg, "", err, sizeof(err)), 0);
	assert_string_equal(cfg.snapshot_dir, "");
	/* Limits by default: a member cannot fill the disk with snapshots. */
	assert_true(cfg.snapshot_quota == 50ull << 30);
	assert_int_equal(cfg.snapshot_max_count, 20);
	assert_int_equal(cfg.snapshot_threads, 0);
	assert_true(cfg.disk_reserve == 2ull << 30);
	assert_int_equal(parse(&cfg, "disk_reserve = 0\n", err, sizeof(err)), 0);
	assert_true(cfg.disk_reserve == 0);
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

static void test_idle_keys(void **state)
{
	static const char *const bad[] = {
		"idle_after = 0\n", "idle_after = off\n", "idle_after = 1 hour\n", "idle_after = 1.5h\n",
		"idle_after = 31d\n", "idle_after = -5\n", "idle_memory_min = 1000\n",
		"idle_reclaim_after = 90m\n", "idle_reclaim_grace = 0\n", "idle_reclaim_grace = 2h\n",
		"notify_webhook = ftp://hooks.example.org/x\n",
		"notify_webhook = https://user@hooks.example.org/x\n",
		"notify_webhook = https://hooks.example.org/x#frag\n",
		"notify_webhook = https://hooks.example.org/a b\n",
		"notify_webhook = https://hooks.example.org:0/x\n",
		"notify_webhook = https://hooks.example.org/x?a=\"b\"\n",
		"notify_webhook = hooks.example.org/x\n", "notify_webhook = /etc/../x\n",
	};
	struct gpubox_config cfg;
	char err[512] = "";

	(void)state;
	assert_int_equal(parse(&cfg, "", err, sizeof(err)), 0);
	assert_int_equal(cfg.idle_after, 3600);
	assert_true(cfg.idle_memory_min == 256ULL << 20);
	assert_int_equal(cfg.idle_reclaim_after, 0);
	assert_int_equal(cfg.idle_reclaim_grace, 30);
	assert_string_equal(cfg.notify_webhook, "");
	assert_int_equal(parse(&cfg, "idle_after = 1h30m\nidle_reclaim_after = 3h\nidle_reclaim_grace = 45\n"
			       "idle_memory_min = 1G\n", err, sizeof(err)), 0);
	assert_int_equal(cfg.idle_after, 5400);
	assert_int_equal(cfg.idle_reclaim_after, 10800);
	assert_int_equal(cfg.idle_reclaim_grace, 45);
	assert_true(cfg.idle_memory_min == 1ULL << 30);
	assert_int_equal(parse(&cfg, "idle_after = 2s\nidle_reclaim_after = 4s\nidle_reclaim_after = off\n",
			       err, sizeof(err)), 0);
	assert_int_equal(cfg.idle_reclaim_after, 0);
	assert_int_equal(parse(&cfg, "notify_webhook = https://hooks.slack.com/services/T00/B00/XXXX\n",
			       err, sizeof(err)), 0);
	assert_int_equal(parse(&cfg, "notify_webhook = http://127.0.0.1:8065/hooks/abc-def_1\n",
			       err, sizeof(err)), 0);
	assert_int_equal(parse(&cfg, "notify_webhook = https://matrix.example.org/webhook/x?token=a%2Bb&v=1\n",
			       err, sizeof(err)), 0);
	assert_int_equal(parse(&cfg, "notify_webhook = /etc/gpubox/notify-webhook\n", err, sizeof(err)), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (parse(&cfg, bad[i], err, sizeof(err)) != -EINVAL)
			fail_msg("accepted: %s", bad[i]);
		if (!strstr(err, "idle_") && !strstr(err, "notify_webhook"))
			fail_msg("\"%s\" does not name the key for %s", err, bad[i]);
	}
	assert_false(config_webhook_url_ok("https://hooks.example.org/x?y#z"));
	assert_true(config_webhook_url_ok("https://[::1]:8443/x"));
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

static void test_audit_retention(void **state)
{
	static const struct { const char *text; long long seconds; } good[] = {
		{ "", 365LL * 86400 },
		{ "audit_retention = 30d\n", 30LL * 86400 },
		{ "audit_retention = 26w\n", 26LL * 7 * 86400 },
		{ "audit_retention = 1h\n", 3600 },
		{ "audit_retention = 0\n", 0 },
		{ "audit_retention = forever\n", 0 },
		{ "audit_retention = 1y\n", 365LL * 86400 },
	};
	static const char *const bad[] = {
		"audit_retention = 30m\n", "audit_retention = 101y\n", "audit_retention = -1d\n",
		"audit_retention = never\n", "audit_retention = 36501d\n", "audit_retention = 00\n",
	};
	struct gpubox_config cfg;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		char err[256] = "";

		assert_int_equal(parse(&cfg, good[i].text, err, sizeof(err)), 0);
		assert_int_equal(config_audit_retention(&cfg), good[i].seconds);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char err[256] = "";

		assert_int_equal(parse(&cfg, bad[i], err, sizeof(err)), -EINVAL);
		if (!strstr(err, "audit_retention is a duration from 1h to 36500d"))
			fail_msg("\"%s\": %s", bad[i], err);
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

static void test_forward_default_from(void **state)
{
	static const struct { const char *text; const char *words; } refused[] = {
		{ "forward_default_from = 300.1.1.1/8\n", "forward_default_from: \"300.1.1.1/8\" is not a network" },
		{ "forward_default_from = 10.0.0.0/33\n", "forward_default_from: \"10.0.0.0/33\": an IPv4 prefix length" },
		{ "forward_default_from = ::1/129\n", "an IPv6 prefix length is a number from 0 to 128" },
		{ "forward_default_from = 10.0.0.5/8\n", "did you mean 10.0.0.0/8?" },
		{ "forward_default_from =\n", "forward_default_from: the list of networks is empty" },
		{ "forward_default_from = any, 10.0.0.0/8\n", "\"any\" stands alone" },
	};
	struct gpubox_config cfg;
	char err[256] = "";

	(void)state;
	assert_int_equal(parse(&cfg, "", err, sizeof(err)), 0);
	assert_string_equal(cfg.forward_default_from, "any");
	assert_int_equal(parse(&cfg, "forward_default_from = 10.0.0.0/8, 2001:db8::/32 192.168.1.7\n",
			       err, sizeof(err)), 0);
	assert_string_equal(cfg.forward_default_from, "10.0.0.0/8, 2001:db8::/32 192.168.1.7");
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		err[0] = '\0';
		assert_int_equal(parse(&cfg, refused[i].text, err, sizeof(err)), -EINVAL);
		if (!strstr(err, refused[i].words))
			fail_msg("%s: \"%s\" does not say \"%s\"", refused[i].text, err, refused[i].words);
	}
}

static void test_egress_deny(void **state)
{
	static const struct { const char *text; const char *words; } refused[] = {
		{ "egress_deny = 10.0.0.300/8\n", "egress_deny: \"10.0.0.300/8\" is not an IPv4 network" },
		{ "egress_deny = 10.0.0.0/33\n", "\"10.0.0.0/33\" is not an IPv4 network" },
		{ "egress_deny = 10.0.0.0/\n", "\"10.0.0.0/\" is not" },
		{ "egress_deny = 10.0.0.0/+8\n", "\"10.0.0.0/+8\" is not" },
		{ "egress_deny = 10.0.0.0/008\n", "\"10.0.0.0/008\" is not" },
		{ "egress_deny = 10.1/16\n", "\"10.1/16\" is not" },
		{ "egress_deny = 192.168.0.0/16; 10.0.0.0/8\n", "\"192.168.0.0/16;\" is not" },
		{ "egress_deny = fd00::/8\n", "\"fd00::/8\" is not" },
		{ "egress_deny = storage\n", "\"storage\" is not" },
		{ "egress_deny = 10.1.2.3/8\n", "egress_deny: 10.1.2.3/8 has host bits set; the network is 10.0.0.0/8" },
		/* The containers' subnet is 10.77.0.0/16 by default. */
		{ "egress_deny = 10.0.0.0/8\n", "egress_deny: 10.0.0.0/8 overlaps the containers' own subnet 10.77.0.0/16" },
		{ "egress_deny = 10.77.3.4\n", "10.77.3.4/32 overlaps the containers' own subnet" },
		{ "egress_deny = 0.0.0.0/0\n", "0.0.0.0/0 overlaps" },
		{ "bridge_address = 192.168.7.1/24\negress_deny = 192.168.0.0/16\n", "192.168.0.0/16 overlaps the containers' own subnet 192.168.7.0/24" },
	};
	struct config_network nets[CONFIG_EGRESS_DENY_MAX];
	struct gpubox_config cfg;
	char err[256] = "", text[1024];
	size_t n = 0, len = 0;

	(void)state;
	/* The default: link-local, the cloud metadata services. */
	assert_int_equal(parse(&cfg, "", err, sizeof(err)), 0);
	assert_string_equal(cfg.egress_deny, "169.254.0.0/16");
	assert_int_equal(config_egress_deny(cfg.egress_deny, nets, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 1);
	assert_true(nets[0].address == 0xa9fe0000u);
	assert_int_equal(nets[0].prefix, 16);

	assert_int_equal(parse(&cfg, "egress_deny = 192.168.10.0/24, 172.16.0.0/12 10.1.2.3\t169.254.0.0/16\n",
			       err, sizeof(err)), 0);
	assert_int_equal(config_egress_deny(cfg.egress_deny, nets, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 4);
	assert_true(nets[0].address == 0xc0a80a00u && nets[0].prefix == 24);
	assert_true(nets[1].address == 0xac100000u && nets[1].prefix == 12);
	assert_true(nets[2].address == 0x0a010203u && nets[2].prefix == 32);
	assert_true(nets[3].address == 0xa9fe0000u && nets[3].prefix == 16);
	/* Empty: nothing denied.  A denied network beside the subnet is fine. */
	assert_int_equal(parse(&cfg, "egress_deny =\n", err, sizeof(err)), 0);
	assert_int_equal(config_egress_deny(cfg.egress_deny, nets, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 0);
	assert_int_equal(parse(&cfg, "egress_deny = 10.76.0.0/16 10.78.0.0/15\n", err, sizeof(err)), 0);

	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		err[0] = '\0';
		assert_int_equal(parse(&cfg, refused[i].text, err, sizeof(err)), -EINVAL);
		if (!strstr(err, refused[i].words))
			fail_msg("case %zu: \"%s\" does not say \"%s\"", i, err, refused[i].words);
	}
	/* At most CONFIG_EGRESS_DENY_MAX networks. */
	len = (size_t)snprintf(text, sizeof(text), "egress_deny =");
	for (int i = 0; i <= CONFIG_EGRESS_DENY_MAX; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len, " 192.0.%d.0/24", i);
	assert_true(len < sizeof(text));
	assert_int_equal(config_egress_deny(text + 13, nets, &n, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "at most 64 networks"));
}

/* The reservations' keys: durations, their order, GPUs named. */
static void test_reserve_keys(void **state)
{
	static const char *const bad[] = {
		"reserve_max_duration = 0\n", "reserve_max_duration = forever\n",
		"reserve_default_duration = 1 h\n", "reserve_default_duration = 8d\n",
		"reserve_max_duration = 30m\n", "reserve_shared_gpus = 0;1\n",
		"reserve_idle_release = 31d\n", "reserve_idle_release = -1\n",
		"reserve_idle_release = 2 hours\n", "reserve_idle_release = yes\n",
	};
	struct gpubox_config cfg;
	char err[256];

	(void)state;
	assert_int_equal(parse(&cfg, "", err, sizeof(err)), 0);
	assert_int_equal(config_reserve_default_seconds(&cfg), 3600);
	assert_int_equal(config_reserve_max_seconds(&cfg), 7 * 86400);
	assert_int_equal(cfg.reserve_max_gpus, 0);
	assert_int_equal(cfg.gpu_cap, 0);
	assert_int_equal(cfg.reserve_idle_release, 0);
	assert_string_equal(cfg.reserve_shared_gpus, "");
	assert_int_equal(parse(&cfg, "reserve_default_duration = 30m\nreserve_max_duration = 1y\n"
			       "reserve_max_gpus = 4\ngpu_cap = 2\nreserve_shared_gpus = 0, 7\n",
			       err, sizeof(err)), 0);
	assert_int_equal(config_reserve_default_seconds(&cfg), 1800);
	assert_int_equal(config_reserve_max_seconds(&cfg), 365 * 86400);
	assert_int_equal(cfg.reserve_max_gpus, 4);
	assert_int_equal(cfg.gpu_cap, 2);
	assert_string_equal(cfg.reserve_shared_gpus, "0, 7");
	assert_int_equal(parse(&cfg, "reserve_idle_release = 2h\n", err, sizeof(err)), 0);
	assert_int_equal(cfg.reserve_idle_release, 7200);
	assert_int_equal(parse(&cfg, "reserve_idle_release = 2h\nreserve_idle_release = off\n",
			       err, sizeof(err)), 0);
	assert_int_equal(cfg.reserve_idle_release, 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (parse(&cfg, bad[i], err, sizeof(err)) != -EINVAL || !strstr(err, "reserve_"))
			fail_msg("\"%s\" was taken (%s)", bad[i], err);
	}
}

/* nvml_interposer: a mode, then optionally the library. */
static void test_nvml_interposer(void **state)
{
	static const char *const bad[] = {
		"nvml_interposer = mine\n", "nvml_interposer = own lib.so\n",
		"nvml_interposer = own /a/../b.so\n", "nvml_interposer = own /a.so /b.so\n",
		"nvml_interposer = /lib/x.so\n",
	};
	struct gpubox_config cfg;
	char err[256], path[CONFIG_PATH_MAX];

	(void)state;
	assert_int_equal(parse(&cfg, "", err, sizeof(err)), 0);
	assert_int_equal(config_nvml_interposer(&cfg, path, sizeof(path)), CONFIG_NVML_OWN);
	assert_string_equal(path, GPUBOX_NVML_INTERPOSER);
	assert_int_equal(parse(&cfg, "nvml_interposer = anonymous  /opt/g/libgpubox-nvml.so\n", err,
			       sizeof(err)), 0);
	assert_int_equal(config_nvml_interposer(&cfg, path, sizeof(path)), CONFIG_NVML_ANONYMOUS);
	assert_string_equal(path, "/opt/g/libgpubox-nvml.so");
	assert_int_equal(parse(&cfg, "nvml_interposer = off\n", err, sizeof(err)), 0);
	assert_int_equal(config_nvml_interposer(&cfg, NULL, 0), CONFIG_NVML_OFF);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(parse(&cfg, bad[i], err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "nvml_interposer"));
	}
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
		cmocka_unit_test(test_idle_keys),
		cmocka_unit_test(test_low_ports_edge),
		cmocka_unit_test(test_audit_retention),
		cmocka_unit_test(test_hub_url_transport),
		cmocka_unit_test(test_nul_and_long_lines),
		cmocka_unit_test(test_egress_deny),
		cmocka_unit_test(test_forward_default_from),
		cmocka_unit_test(test_nvml_interposer),
		cmocka_unit_test(test_reserve_keys),
		cmocka_unit_test(test_load_missing),
		cmocka_unit_test(test_layers_pool_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
