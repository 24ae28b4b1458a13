/* SPDX-License-Identifier: MIT */
/*
 * apt_cache: the key's syntax (config_apt_cache), the proxy's URL, the
 * line of apt configuration containers get (aptproxy_render), and the
 * files the agent keeps for it (aptproxy_setup).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "container/container.h"
#include "config.h"
#include "testutil.h"
#include "banned.h"

static int parse(struct gpubox_config *cfg, const char *text, char *err, size_t errlen)
{
	config_set_defaults(cfg);
	return config_parse(cfg, text, strlen(text), err, errlen);
}

/* The proxy's URL of text, the bridge's address standing for a local cache. */
static int proxy_of(const char *text, char *url, size_t len)
{
	struct config_apt_cache cache;
	char err[256];
	int ret = config_apt_cache(text, &cache, err, sizeof(err));

	return ret < 0 ? ret : config_apt_cache_proxy(&cache, "10.77.0.1", url, len);
}

static void test_accepted(void **state)
{
	static const struct { const char *text, *url; } cases[] = {
		{ "local", "http://10.77.0.1:3142" },
		{ "local:3143", "http://10.77.0.1:3143" },
		{ "http://cache.example.org", "http://cache.example.org:3142" },
		{ "http://cache.example.org:8000/", "http://cache.example.org:8000" },
		{ "http://Cache-1.lab:1", "http://Cache-1.lab:1" },
		{ "http://192.0.2.7:65535", "http://192.0.2.7:65535" },
		{ "http://cache", "http://cache:3142" },
	};
	char url[300];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		if (proxy_of(cases[i].text, url, sizeof(url)) < 0)
			fail_msg("\"%s\" is refused", cases[i].text);
		assert_string_equal(url, cases[i].url);
	}
	assert_int_equal(proxy_of("off", url, sizeof(url)), -ENOENT);
	assert_int_equal(proxy_of("http://cache.example.org", url, 10), -ENAMETOOLONG);
}

/* The longest name a URL may hold still makes an apt line. */
static void test_longest_name(void **state)
{
	char text[CONFIG_APT_CACHE_HOST_MAX + 32], url[300], line[512];
	size_t n = (size_t)snprintf(text, sizeof(text), "http://");

	(void)state;
	for (int label = 0; label < 4; label++) {
		memset(text + n, 'a' + label, label < 3 ? 63 : 61);
		n += label < 3 ? 63 : 61;
		text[n++] = label < 3 ? '.' : ':';
	}
	snprintf(text + n, sizeof(text) - n, "65535");
	assert_int_equal(strlen(text) - strlen("http://:65535"), CONFIG_APT_CACHE_HOST_MAX);
	assert_int_equal(proxy_of(text, url, sizeof(url)), 0);
	assert_string_equal(url, text);
	assert_int_equal(aptproxy_render(url, line, sizeof(line)), 0);
	/* One more character: a label and the name too long. */
	memmove(text + 8, text + 7, strlen(text + 7) + 1);
	assert_int_equal(proxy_of(text, url, sizeof(url)), -EINVAL);
}

/* Everything else, each with its sentence: nothing that could close
 * apt's quotes or start another statement ever gets through. */
static void test_refused(void **state)
{
	static const struct { const char *text, *words; } cases[] = {
		{ "on", "apt_cache is off, local, local:PORT or http://HOST[:PORT]" },
		{ "", "apt_cache is off, local" },
		{ "Local", "apt_cache is off, local" },
		{ "local:", "the port of local:PORT must be a number from 1 to 65535" },
		{ "local:0", "the port of local:PORT" },
		{ "local:65536", "the port of local:PORT" },
		{ "local:+80", "the port of local:PORT" },
		{ "local:3142x", "the port of local:PORT" },
		{ "https://cache.example.org", "apt_cache takes http://" },
		{ "ftp://cache.example.org", "apt_cache is off, local" },
		{ "cache.example.org:3142", "apt_cache is off, local" },
		{ "http://", "apt_cache is off, local" },
		{ "http://:3142", "apt_cache is off, local" },
		{ "http://cache.example.org:", "the port must be a number from 1 to 65535" },
		{ "http://cache.example.org:99999", "the port must be" },
		{ "http://cache.example.org/debian", "apt_cache is off, local" },
		{ "http://cache.example.org//", "apt_cache is off, local" },
		{ "http://cache.example.org?x", "apt_cache is off, local" },
		{ "http://user@cache.example.org", "apt_cache is off, local" },
		{ "http://cache.example.org\";", "apt_cache is off, local" },
		{ "http://ca\"che", "apt_cache is off, local" },
		{ "http://cache;x", "apt_cache is off, local" },
		{ "http://cache:3142;", "the port must be" },
		{ "http://cache\n", "apt_cache is off, local" },
		{ "http://cache}", "apt_cache is off, local" },
		{ "http://-cache", "apt_cache is off, local" },
		{ "http://cache..lab", "apt_cache is off, local" },
		{ "http://[2001:db8::1]:3142", "containers have no IPv6" },
		{ "http://10.1", "10.1 is neither a host name nor an IPv4 address" },
		{ "http://192.0.2.300", "neither a host name nor an IPv4 address" },
		{ "http://3142", "neither a host name nor an IPv4 address" },
		{ "http://127.0.0.1:3142", "containers cannot reach 127.0.0.1; for a cache on this server write apt_cache = local" },
		{ "http://localhost", "containers cannot reach localhost" },
		{ "http://cache.LocalHost", "containers cannot reach cache.LocalHost" },
		{ "http://0.0.0.0", "containers cannot reach 0.0.0.0" },
		{ "http://224.0.0.1", "containers cannot reach 224.0.0.1" },
	};
	struct config_apt_cache cache;
	char err[256];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		err[0] = '\0';
		if (config_apt_cache(cases[i].text, &cache, err, sizeof(err)) != -EINVAL)
			fail_msg("\"%s\" is taken", cases[i].text);
		if (!strstr(err, cases[i].words))
			fail_msg("\"%s\": \"%s\" does not say \"%s\"", cases[i].text, err, cases[i].words);
		assert_int_equal(cache.mode, CONFIG_APT_CACHE_OFF);
	}
}

/* In gpubox.conf: off by default; a bad value stops the whole file with
 * one sentence naming the key; an address of the containers' subnet is
 * the server or a member's container. */
static void test_in_the_file(void **state)
{
	struct gpubox_config cfg;
	char err[512] = "";

	(void)state;
	assert_int_equal(parse(&cfg, "", err, sizeof(err)), 0);
	assert_string_equal(cfg.apt_cache, "off");
	assert_int_equal(parse(&cfg, "apt_cache = http://cache.lab:3142/\n", err, sizeof(err)), 0);
	assert_string_equal(cfg.apt_cache, "http://cache.lab:3142/");
	assert_int_equal(parse(&cfg, "apt_cache = http://cache.lab:3142/x\n", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "apt_cache is off, local"));
	assert_int_equal(parse(&cfg, "apt_cache = http://10.77.8.9\n", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "apt_cache: 10.77.8.9 is in the containers' own subnet (bridge_address 10.77.0.1/16); for a cache on this server write apt_cache = local"));
	assert_int_equal(parse(&cfg, "apt_cache = http://10.77.0.1\n", err, sizeof(err)), -EINVAL);
	assert_int_equal(parse(&cfg, "bridge_address = 10.78.0.1/16\napt_cache = http://10.77.8.9\n", err,
			       sizeof(err)), 0);
}

static void test_render(void **state)
{
	static const char *const refused[] = {
		"http://cache\";Acquire::http::Proxy \"http://evil", "http://cache\n", "http://c a",
		"https://cache:3142", "cache:3142", "http://cache:3142;", "http://{cache}", "",
	};
	char text[512];

	(void)state;
	assert_int_equal(aptproxy_render("http://10.77.0.1:3142", text, sizeof(text)), 0);
	assert_string_equal(text,
		"// Written by gpuboxd (apt_cache in gpubox.conf): the server's package cache.\n"
		"Acquire::http::Proxy \"http://10.77.0.1:3142\";\n");
	for (size_t i = 0; i < ARRAY_SIZE(refused); i++)
		if (aptproxy_render(refused[i], text, sizeof(text)) != -EINVAL)
			fail_msg("\"%s\" is rendered", refused[i]);
	assert_int_equal(aptproxy_render(NULL, text, sizeof(text)), -EINVAL);
	assert_int_equal(aptproxy_render("http://10.77.0.1:3142", text, 40), -ENAMETOOLONG);
}

static int setup_dir(void **state)
{
	static char dir[PATH_MAX];

	if (tu_make_tempdir(dir, sizeof(dir), "/tmp/gpubox-aptcache-XXXXXX") < 0)
		return -1;
	*state = dir;
	return 0;
}

static int teardown_dir(void **state)
{
	tu_remove_tempdir(*state);
	return 0;
}

/* The file, its mount point beneath the template, and both gone (the
 * file) or kept (the layer, which running containers may stack) with
 * apt_cache turned off. */
static void test_setup(void **state)
{
	const char *dir = *state;
	__do_free char *text = NULL;
	struct gpubox_config cfg;
	struct aptproxy proxy;
	struct container_mount mount;
	char err[256], path[PATH_MAX];
	struct stat st, again;
	size_t len = 0;

	assert_int_equal(parse(&cfg, "apt_cache = local:3199\n", err, sizeof(err)), 0);
	snprintf(cfg.state_dir, sizeof(cfg.state_dir), "%s", dir);
	assert_int_equal(aptproxy_setup(&cfg, "10.77.0.1", &proxy), 0);
	tu_join(path, sizeof(path), dir, "apt-proxy.conf");
	assert_string_equal(proxy.file, path);
	assert_int_equal(fsutil_read_file(path, 4096, &text, &len), 0);
	assert_non_null(strstr(text, "\nAcquire::http::Proxy \"http://10.77.0.1:3199\";\n"));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	tu_join(path, sizeof(path), dir, "mountpoints/" APTPROXY_TARGET);
	assert_int_equal(stat(path, &again), 0);
	assert_true(S_ISREG(again.st_mode) && again.st_size == 0);
	assert_string_equal(aptproxy_layer(&proxy), proxy.layer);

	assert_true(aptproxy_mount(&proxy, &mount));
	assert_string_equal(mount.source, proxy.file);
	assert_string_equal(mount.target, "etc/apt/apt.conf.d/01gpubox-proxy");
	assert_non_null(strstr(mount.options, "bind,ro,"));

	/* The same setting again leaves the file a running container has. */
	assert_int_equal(aptproxy_setup(&cfg, "10.77.0.1", &proxy), 0);
	assert_int_equal(stat(proxy.file, &again), 0);
	assert_true(again.st_ino == st.st_ino);

	assert_int_equal(parse(&cfg, "", err, sizeof(err)), 0);
	snprintf(cfg.state_dir, sizeof(cfg.state_dir), "%s", dir);
	assert_int_equal(aptproxy_setup(&cfg, "10.77.0.1", &proxy), 0);
	assert_false(aptproxy_mount(&proxy, &mount));
	assert_null(aptproxy_layer(&proxy));
	tu_join(path, sizeof(path), dir, "apt-proxy.conf");
	assert_false(fsutil_exists(path));
	tu_join(path, sizeof(path), dir, "mountpoints/" APTPROXY_TARGET);
	assert_true(fsutil_exists(path));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepted),
		cmocka_unit_test(test_longest_name),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_in_the_file),
		cmocka_unit_test(test_render),
		cmocka_unit_test_setup_teardown(test_setup, setup_dir, teardown_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
