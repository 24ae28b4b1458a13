/* SPDX-License-Identifier: MIT */
/* Templates without debootstrap: recipes, versions, manifests, the cache,
 * and the post-processing of a hand-made tree.  The real build runs in the
 * system tests. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "image/image.h"
#include "cleanup.h"
#include "fsutil.h"
#include "log.h"
#include "testutil.h"
#include "banned.h"

/* snprintf into a fixed buffer that must not truncate. */
#define PATHF(buf, ...) assert_true(snprintf(buf, sizeof(buf), __VA_ARGS__) < (int)sizeof(buf))

#define MIRROR "http://mirror.invalid/debian"
#define PACKAGES "openssh-server systemd-sysv sudo"

struct fixture {
	char state[64];
	char tdir[PATH_MAX];
	struct gpubox_config cfg;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	if (tu_make_tempdir(f->state, sizeof(f->state), "/tmp/test-template-XXXXXX") < 0)
		return -1;
	PATHF(f->tdir, "%s/templates", f->state);
	if (fsutil_mkdir_p(f->tdir, 0700) < 0)
		return -1;
	config_set_defaults(&f->cfg);
	snprintf(f->cfg.state_dir, sizeof(f->cfg.state_dir), "%s", f->state);
	snprintf(f->cfg.template_mirror, sizeof(f->cfg.template_mirror), "%s", MIRROR);
	snprintf(f->cfg.template_packages, sizeof(f->cfg.template_packages), "%s", PACKAGES);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	tu_remove_tempdir(f->state);
	free(f);
	return 0;
}

/* mkdir -p base/rel, mode 0755. */
static void make_dir(const char *base, const char *rel)
{
	char path[PATH_MAX];

	tu_join(path, sizeof(path), base, rel);
	assert_int_equal(fsutil_mkdir_p(path, 0755), 0);
}

static void make_template(struct fixture *f, const char *name, unsigned version,
			  const char *hash, long long created)
{
	__do_free char *text = NULL;
	char rel[128];

	PATHF(rel, "%s@%u/rootfs/etc", name, version);
	make_dir(f->tdir, rel);
	assert_true(asprintf(&text,
			     "{\"name\": \"%s\", \"version\": %u, \"release\": \"bookworm\","
			     " \"mirror\": \"" MIRROR "\", \"packages\": [\"sudo\"],"
			     " \"recipe\": \"r\", \"recipe_hash\": \"%s\", \"created\": %lld,"
			     " \"size\": 1234}", name, version, hash, created) > 0);
	PATHF(rel, "%s@%u/manifest.json", name, version);
	tu_write_file(f->tdir, rel, text);
}

static const char hash_a[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
static const char hash_b[] = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/* ---- recipes ---------------------------------------------------------------- */

static void test_recipe_hash(void **state)
{
	__do_free char *recipe = NULL;
	char h1[TEMPLATE_HASH_HEX], h2[TEMPLATE_HASH_HEX], err[256];

	(void)state;
	assert_int_equal(template_recipe("bookworm", MIRROR, "sudo openssh-server", "amd64",
					 &recipe, h1, err, sizeof(err)), 0);
	assert_int_equal(strlen(h1), 64);
	assert_non_null(strstr(recipe, "packages openssh-server,sudo\n"));
	assert_non_null(strstr(recipe, "release bookworm\n"));
	assert_non_null(strstr(recipe, "mirror " MIRROR "\n"));

	/* Order, duplicates and separators do not change the recipe. */
	assert_int_equal(template_recipe("bookworm", MIRROR, " openssh-server,sudo\tsudo ",
					 "amd64", NULL, h2, err, sizeof(err)), 0);
	assert_string_equal(h1, h2);

	/* Every ingredient does. */
	assert_int_equal(template_recipe("trixie", MIRROR, "sudo openssh-server", "amd64",
					 NULL, h2, err, sizeof(err)), 0);
	assert_string_not_equal(h1, h2);
	assert_int_equal(template_recipe("bookworm", "http://other.invalid/debian",
					 "sudo openssh-server", "amd64", NULL, h2, err, sizeof(err)), 0);
	assert_string_not_equal(h1, h2);
	assert_int_equal(template_recipe("bookworm", MIRROR, "sudo", "amd64", NULL, h2, err,
					 sizeof(err)), 0);
	assert_string_not_equal(h1, h2);
	assert_int_equal(template_recipe("bookworm", MIRROR, "sudo openssh-server", "arm64",
					 NULL, h2, err, sizeof(err)), 0);
	assert_string_not_equal(h1, h2);

	/* No packages is a valid recipe too. */
	assert_int_equal(template_recipe("bookworm", MIRROR, "", NULL, NULL, h2, err,
					 sizeof(err)), 0);
}

static void test_recipe_invalid(void **state)
{
	char hash[TEMPLATE_HASH_HEX], err[256];

	(void)state;
	err[0] = '\0';
	assert_int_equal(template_recipe("bookworm", MIRROR, "sudo --force-yes", NULL, NULL,
					 hash, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "--force-yes"));
	assert_int_equal(template_recipe("bookworm", MIRROR, "Sudo", NULL, NULL, hash, err,
					 sizeof(err)), -EINVAL);
	assert_int_equal(template_recipe("bookworm", MIRROR, "a", NULL, NULL, hash, err,
					 sizeof(err)), -EINVAL);
	assert_int_equal(template_recipe("bookworm", MIRROR, "sudo;reboot", NULL, NULL, hash, err,
					 sizeof(err)), -EINVAL);
	assert_int_equal(template_recipe("-bookworm", MIRROR, "sudo", NULL, NULL, hash, err,
					 sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "release"));
	assert_int_equal(template_recipe("book worm", MIRROR, "sudo", NULL, NULL, hash, err,
					 sizeof(err)), -EINVAL);
	assert_int_equal(template_recipe("bookworm", "--no-check-gpg", "sudo", NULL, NULL, hash,
					 err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "template_mirror"));
	assert_int_equal(template_recipe("bookworm", "ftp://mirror.invalid/", "sudo", NULL, NULL,
					 hash, err, sizeof(err)), -EINVAL);
}

/* ---- reading ------------------------------------------------------------------ */

static void test_newest_and_get(void **state)
{
	struct fixture *f = *state;
	struct template_info info;

	assert_int_equal(template_newest(&f->cfg, "default", &info), -ENOENT);

	make_template(f, "default", 1, hash_a, 1000);
	make_template(f, "default", 2, hash_b, 2000);
	/* A newer version with a broken manifest is skipped. */
	make_dir(f->tdir, "default@3/rootfs");
	tu_write_file(f->tdir, "default@3/manifest.json", "{\"name\": \"default\"");
	/* A manifest that describes another template is broken too. */
	make_template(f, "default", 4, hash_a, 4000);
	tu_write_file(f->tdir, "default@4/manifest.json",
		      "{\"name\": \"other\", \"version\": 4, \"recipe_hash\": \"" "aaaa" "\","
		      " \"created\": 1, \"size\": 1}");
	/* Not canonical names, and not templates. */
	make_template(f, "default", 10, hash_a, 10000);
	{
		char from[PATH_MAX], to[PATH_MAX];

		PATHF(from, "%s/default@10", f->tdir);
		PATHF(to, "%s/default@010", f->tdir);
		assert_int_equal(rename(from, to), 0);
	}
	make_dir(f->tdir, ".build-default-abc123/rootfs");
	make_dir(f->tdir, "Default@5/rootfs");
	tu_write_file(f->tdir, "default@6", "not a directory");
	make_template(f, "other", 7, hash_b, 7000);

	assert_int_equal(template_newest(&f->cfg, "default", &info), 0);
	assert_string_equal(info.ref, "default@2");
	assert_string_equal(info.name, "default");
	assert_int_equal(info.version, 2);
	assert_string_equal(info.recipe_hash, hash_b);
	assert_int_equal(info.created, 2000);
	assert_int_equal(info.size, 1234);
	assert_non_null(strstr(info.rootfs, "/templates/default@2/rootfs"));

	/* NULL: the configured default name. */
	assert_int_equal(template_newest(&f->cfg, NULL, &info), 0);
	assert_string_equal(info.ref, "default@2");
	assert_int_equal(template_newest(&f->cfg, "other", &info), 0);
	assert_string_equal(info.ref, "other@7");
	assert_int_equal(template_newest(&f->cfg, "../etc", &info), -EINVAL);

	assert_int_equal(template_get(&f->cfg, "default@1", &info), 0);
	assert_string_equal(info.recipe_hash, hash_a);
	assert_int_equal(template_get(&f->cfg, "default@3", &info), -EBADMSG);
	assert_int_equal(template_get(&f->cfg, "default@4", &info), -EBADMSG);
	assert_int_equal(template_get(&f->cfg, "default@9", &info), -ENOENT);
	assert_int_equal(template_get(&f->cfg, "default@6", &info), -ENOENT);
	assert_int_equal(template_get(&f->cfg, "default@010", &info), -EINVAL);
	assert_int_equal(template_get(&f->cfg, "default", &info), -EINVAL);
	assert_int_equal(template_get(&f->cfg, "../x@1", &info), -EINVAL);
	assert_int_equal(template_get(&f->cfg, "default@0", &info), -EINVAL);
}

static void test_list(void **state)
{
	struct fixture *f = *state;
	__do_json json_t *list = NULL;
	json_t *item;

	assert_int_equal(template_list(&f->cfg, &list), 0);
	assert_int_equal(json_array_size(list), 0);
	json_decref(list);
	list = NULL;

	make_template(f, "zeta", 1, hash_a, 100);
	make_template(f, "alpha", 10, hash_a, 100);
	make_template(f, "alpha", 9, hash_b, 100);
	make_dir(f->tdir, "alpha@11");   /* no manifest: not listed */

	assert_int_equal(template_list(&f->cfg, &list), 0);
	assert_int_equal(json_array_size(list), 3);
	item = json_array_get(list, 0);
	assert_string_equal(json_string_value(json_object_get(item, "ref")), "alpha@9");
	assert_null(json_object_get(item, "recipe"));
	assert_string_equal(json_string_value(json_object_get(item, "recipe_hash")), hash_b);
	item = json_array_get(list, 1);
	assert_string_equal(json_string_value(json_object_get(item, "ref")), "alpha@10");
	item = json_array_get(list, 2);
	assert_string_equal(json_string_value(json_object_get(item, "ref")), "zeta@1");
	assert_int_equal(json_integer_value(json_object_get(item, "size")), 1234);
}

/* ---- building, as far as it goes without debootstrap ------------------------------ */

static void test_build_cached(void **state)
{
	struct fixture *f = *state;
	char hash[TEMPLATE_HASH_HEX], err[256], path[PATH_MAX];
	struct template_info info;
	bool cached = false;

	assert_int_equal(template_recipe(f->cfg.template_release, MIRROR, PACKAGES, NULL, NULL,
					 hash, err, sizeof(err)), 0);
	make_template(f, "default", 1, hash_a, 1000);
	make_template(f, "default", 2, hash, 2000);
	make_dir(f->tdir, ".build-default-XYZ123/rootfs/usr/bin");
	tu_write_file(f->tdir, ".build-default-XYZ123/rootfs/usr/bin/half", "x");

	err[0] = '\0';
	assert_int_equal(template_build(&f->cfg, NULL, NULL, NULL, &info, &cached, err,
					sizeof(err)), 0);
	assert_true(cached);
	assert_string_equal(info.ref, "default@2");
	assert_string_equal(info.recipe_hash, hash);
	assert_string_equal(err, "");

	/* The same again, with the packages in another order. */
	snprintf(f->cfg.template_packages, sizeof(f->cfg.template_packages),
		 "sudo systemd-sysv openssh-server sudo");
	cached = false;
	assert_int_equal(template_build(&f->cfg, "default", "bookworm", NULL, &info, &cached,
					NULL, 0), 0);
	assert_true(cached);
	assert_string_equal(info.ref, "default@2");

	/* A stale build is gone; the lock file stays. */
	PATHF(path, "%s/.build-default-XYZ123", f->tdir);
	assert_false(fsutil_exists(path));
	PATHF(path, "%s/.lock", f->tdir);
	assert_true(fsutil_exists(path));
}

static void test_build_refused(void **state)
{
	struct fixture *f = *state;
	struct template_info info;
	bool cached = true;
	char err[256];

	assert_int_equal(template_build(&f->cfg, "Bad Name", NULL, NULL, &info, &cached, err,
					sizeof(err)), -EINVAL);
	assert_false(cached);
	assert_true(strlen(err) > 0);

	assert_int_equal(template_build(&f->cfg, NULL, "bookworm; reboot", NULL, &info, &cached,
					err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "release"));

	snprintf(f->cfg.template_packages, sizeof(f->cfg.template_packages), "sudo -y");
	assert_int_equal(template_build(&f->cfg, NULL, NULL, NULL, &info, &cached, err,
					sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "template_packages"));

	snprintf(f->cfg.template_packages, sizeof(f->cfg.template_packages), "sudo");
	snprintf(f->cfg.template_mirror, sizeof(f->cfg.template_mirror), "mirror.invalid");
	assert_int_equal(template_build(&f->cfg, NULL, NULL, NULL, &info, &cached, err,
					sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "template_mirror"));
	/* Nothing was built or left behind. */
	assert_int_equal(template_newest(&f->cfg, NULL, &info), -ENOENT);
}

/* ---- post-processing ------------------------------------------------------------ */

static bool link_is(const char *base, const char *rel, const char *target)
{
	char path[PATH_MAX], buf[PATH_MAX];
	ssize_t n;

	tu_join(path, sizeof(path), base, rel);
	n = readlink(path, buf, sizeof(buf) - 1);
	if (n < 0)
		return false;
	buf[n] = '\0';
	return strcmp(buf, target) == 0;
}

static bool exists(const char *base, const char *rel)
{
	char path[PATH_MAX];

	tu_join(path, sizeof(path), base, rel);
	return fsutil_exists(path);
}

static void test_finish_rootfs(void **state)
{
	struct fixture *f = *state;
	__do_close int rootfd = -EBADF;
	__do_free char *locale = NULL, *marker = NULL, *unit = NULL, *outside = NULL, *dropin = NULL;
	char root[PATH_MAX], target[PATH_MAX];

	PATHF(root, "%s/tree", f->state);
	make_dir(root, "etc/ssh");
	make_dir(root, "etc/systemd/system/multi-user.target.wants");
	make_dir(root, "var/cache/apt/archives/partial");
	make_dir(root, "var/lib/apt/lists/partial");
	tu_write_file(root, "etc/ssh/ssh_host_ed25519_key", "secret");
	tu_write_file(root, "etc/ssh/ssh_host_ed25519_key.pub", "public");
	tu_write_file(root, "etc/ssh/ssh_host_rsa_key", "secret");
	tu_write_file(root, "etc/ssh/sshd_config", "Port 22\n");
	tu_write_file(root, "etc/hostname", "builder\n");
	tu_write_file(root, "var/cache/apt/archives/sudo_1.9_amd64.deb", "deb");
	tu_write_file(root, "var/cache/apt/archives/lock", "");
	tu_write_file(root, "var/lib/apt/lists/mirror.invalid_debian_dists_bookworm_InRelease", "x");
	tu_write_file(root, "var/lib/apt/lists/lock", "");
	/* A unit that is already there is replaced by the mask. */
	tu_write_file(root, "etc/systemd/system/sys-kernel-debug.mount", "[Mount]\n");

	/* A file outside the tree that a symbolic link inside points at. */
	tu_write_file(f->state, "outside", "untouched\n");
	PATHF(target, "%s/outside", f->state);
	tu_make_link(root, "etc/gpubox-template", target);

	rootfd = tu_open_dir(root);
	assert_int_equal(template_finish_rootfs(rootfd, "default@3"), 0);

	assert_false(exists(root, "etc/ssh/ssh_host_ed25519_key"));
	assert_false(exists(root, "etc/ssh/ssh_host_ed25519_key.pub"));
	assert_false(exists(root, "etc/ssh/ssh_host_rsa_key"));
	assert_true(exists(root, "etc/ssh/sshd_config"));
	assert_false(exists(root, "etc/hostname"));
	assert_false(exists(root, "var/cache/apt/archives/sudo_1.9_amd64.deb"));
	assert_true(exists(root, "var/cache/apt/archives/partial"));
	assert_true(exists(root, "var/cache/apt/archives/lock"));
	assert_false(exists(root, "var/lib/apt/lists/mirror.invalid_debian_dists_bookworm_InRelease"));
	assert_false(exists(root, "var/lib/apt/lists/lock"));
	assert_true(exists(root, "var/lib/apt/lists/partial"));

	locale = tu_read_text(root, "etc/default/locale");
	assert_non_null(locale);
	assert_string_equal(locale, "LANG=C.UTF-8\n");
	marker = tu_read_text(root, "etc/gpubox-template");
	assert_non_null(marker);
	assert_string_equal(marker, "default@3\n");
	outside = tu_read_text(f->state, "outside");
	assert_string_equal(outside, "untouched\n");

	unit = tu_read_text(root, "etc/systemd/system/gpubox-ssh-keygen.service");
	assert_non_null(unit);
	assert_non_null(strstr(unit, "ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key\n"));
	assert_non_null(strstr(unit, "ExecStart=/usr/bin/ssh-keygen -A\n"));
	assert_non_null(strstr(unit, "Before=ssh.service\n"));
	assert_non_null(strstr(unit, "WantedBy=multi-user.target\n"));
	assert_true(link_is(root, "etc/systemd/system/multi-user.target.wants/gpubox-ssh-keygen.service",
			    "/etc/systemd/system/gpubox-ssh-keygen.service"));
	assert_true(link_is(root, "etc/systemd/system/sys-kernel-debug.mount", "/dev/null"));
	assert_true(link_is(root, "etc/systemd/system/sys-kernel-tracing.mount", "/dev/null"));
	assert_true(link_is(root, "etc/systemd/system/systemd-sysusers.service", "/dev/null"));
	assert_true(link_is(root, "etc/systemd/system/modprobe@.service", "/dev/null"));
	assert_true(link_is(root, "etc/systemd/system/console-getty.service", "/dev/null"));
	assert_false(exists(root, "etc/systemd/system/ssh.service"));
	assert_false(exists(root, "etc/systemd/system/systemd-journald.service"));
	dropin = tu_read_text(root, "etc/systemd/system/ssh.service.d/gpubox.conf");
	assert_non_null(dropin);
	assert_non_null(strstr(dropin, "[Service]\nExecStartPre=\n"));

	/* Idempotent. */
	assert_int_equal(template_finish_rootfs(rootfd, "default@3"), 0);
}

static void test_finish_rootfs_symlinks(void **state)
{
	struct fixture *f = *state;
	__do_close int rootfd = -EBADF;
	__do_free char *outside = NULL;
	char root[PATH_MAX], target[PATH_MAX];
	int ret;

	/* /etc/default is a link out of the tree: refused, nothing written there. */
	PATHF(root, "%s/tree2", f->state);
	make_dir(root, "etc");
	make_dir(f->state, "outside-dir");
	tu_write_file(f->state, "outside-dir/locale", "LANG=fr_FR\n");
	PATHF(target, "%s/outside-dir", f->state);
	tu_make_link(root, "etc/default", target);
	rootfd = tu_open_dir(root);
	ret = template_finish_rootfs(rootfd, "default@1");
	assert_true(ret == -ENOTDIR || ret == -ELOOP);
	outside = tu_read_text(f->state, "outside-dir/locale");
	assert_string_equal(outside, "LANG=fr_FR\n");
	close(rootfd);
	rootfd = -EBADF;

	/* /etc/ssh is a link out of the tree: its keys are not touched. */
	PATHF(root, "%s/tree3", f->state);
	make_dir(root, "etc");
	tu_write_file(f->state, "outside-dir/ssh_host_rsa_key", "host key\n");
	tu_make_link(root, "etc/ssh", target);
	rootfd = tu_open_dir(root);
	ret = template_finish_rootfs(rootfd, "default@1");
	assert_true(ret == -ENOTDIR || ret == -ELOOP);
	assert_true(exists(f->state, "outside-dir/ssh_host_rsa_key"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_recipe_hash),
		cmocka_unit_test(test_recipe_invalid),
		cmocka_unit_test_setup_teardown(test_newest_and_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_build_cached, setup, teardown),
		cmocka_unit_test_setup_teardown(test_build_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_finish_rootfs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_finish_rootfs_symlinks, setup, teardown),
	};

	log_init("test_template", false, LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
