/* SPDX-License-Identifier: MIT */
/* provision.c: the member's account written into a fake container tree.  Run as root. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "container/container.h"
#include "cleanup.h"
#include "testutil.h"
#include "banned.h"

#define BASE 1200000u
#define KEY1 "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGpubox0000000000000000000000000000000000000 alice@laptop\n"
#define KEY2 "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGpubox1111111111111111111111111111111111111 alice@desk\n"

#define PASSWD "root:x:0:0:root:/root:/bin/bash\n" \
	"daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n" \
	"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin"   /* no final newline */
#define GROUP "root:x:0:\nshadow:x:42:\nsudo:x:27:\n"
#define SHADOW "root:*:19000:0:99999:7:::\n"
#define GSHADOW "root:*::\nshadow:*::\n"
#define HOSTS "127.0.0.1\tlocalhost\n127.0.1.1\ttemplate\n::1\tlocalhost ip6-localhost\n# keep me\n"

struct fixture {
	char top[64];
	char root[128];
	char outside[128];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *r;

	if (!f)
		return -1;
	*state = f;
	if (tu_make_tempdir(f->top, sizeof(f->top), "/tmp/gpubox-test-provision-XXXXXX") < 0)
		return -1;
	snprintf(f->root, sizeof(f->root), "%s/root", f->top);
	snprintf(f->outside, sizeof(f->outside), "%s/outside", f->top);
	r = f->root;
	if (mkdir(f->outside, 0755) < 0 || tu_make_dir(f->top, "root", BASE, BASE, 0755) < 0 ||
	    tu_make_dir(r, "etc", BASE, BASE, 0755) < 0 ||
	    tu_make_file(r, "etc/passwd", PASSWD, BASE, BASE, 0644) < 0 ||
	    tu_make_file(r, "etc/group", GROUP, BASE, BASE, 0644) < 0 ||
	    tu_make_file(r, "etc/shadow", SHADOW, BASE, BASE + 42, 0640) < 0 ||
	    tu_make_file(r, "etc/gshadow", GSHADOW, BASE, BASE + 42, 0640) < 0 ||
	    tu_make_file(r, "etc/hosts", HOSTS, BASE, BASE, 0644) < 0 ||
	    tu_make_file(r, "etc/hostname", "template\n", BASE, BASE, 0644) < 0 ||
	    tu_make_dir(r, "etc/skel", BASE, BASE, 0755) < 0 ||
	    tu_make_file(r, "etc/skel/.bashrc", "# bashrc\n", BASE, BASE, 0644) < 0 ||
	    tu_make_file(r, "etc/skel/.profile", "# profile\n", BASE, BASE, 0644) < 0 ||
	    tu_make_dir(r, "etc/sudoers.d", BASE, BASE, 0755) < 0 ||
	    tu_make_dir(r, "home", BASE, BASE, 0755) < 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (!f)
		return 0;
	tu_remove_tempdir(f->top);
	free(f);
	return 0;
}

static struct provision_member alice(const char *keys)
{
	return (struct provision_member){
		.name = "alice",
		.uid = 1000,
		.gid = 1000,
		.subid_base = BASE,
		.hostname = "gpu17-alice",
		.authorized_keys = keys,
	};
}

static void check_alice(struct fixture *f, const char *keys)
{
	const char *r = f->root;
	__do_free char *passwd = tu_read_text(r, "etc/passwd");
	__do_free char *group = tu_read_text(r, "etc/group");
	__do_free char *shadow = tu_read_text(r, "etc/shadow");
	__do_free char *gshadow = tu_read_text(r, "etc/gshadow");
	__do_free char *hosts = tu_read_text(r, "etc/hosts");

	assert_true(strncmp(passwd, PASSWD "\n", strlen(PASSWD) + 1) == 0);
	assert_int_equal(tu_count_substr(passwd, "\nalice:"), 1);
	assert_non_null(strstr(passwd, "\nalice:x:1000:1000::/home/alice:/bin/bash\n"));
	assert_true(strncmp(group, GROUP, strlen(GROUP)) == 0);
	assert_int_equal(tu_count_substr(group, "\nalice:"), 1);
	assert_non_null(strstr(group, "\nalice:x:1000:\n"));
	assert_true(strncmp(shadow, SHADOW "alice:*:", strlen(SHADOW) + 8) == 0);
	assert_int_equal(tu_count_substr(shadow, "\nalice:"), 1);
	assert_non_null(strstr(shadow, ":0:99999:7:::\n"));
	assert_string_equal(gshadow, GSHADOW "alice:!::\n");

	tu_assert_owner(r, "etc/passwd", BASE, BASE, 0644);
	tu_assert_owner(r, "etc/group", BASE, BASE, 0644);
	tu_assert_owner(r, "etc/shadow", BASE, BASE + 42, 0640);
	tu_assert_owner(r, "etc/gshadow", BASE, BASE + 42, 0640);

	tu_assert_text(r, "etc/hostname", "gpu17-alice\n");
	tu_assert_owner(r, "etc/hostname", BASE, BASE, 0644);
	assert_string_equal(hosts, "127.0.0.1\tlocalhost\n127.0.1.1\tgpu17-alice\n"
			    "::1\tlocalhost ip6-localhost\n# keep me\n");

	tu_assert_text(r, "etc/sudoers.d/gpubox-alice", "alice ALL=(ALL:ALL) NOPASSWD:ALL\n");
	tu_assert_owner(r, "etc/sudoers.d/gpubox-alice", BASE, BASE, 0440);

	tu_assert_owner(r, "home/alice", BASE + 1000, BASE + 1000, 0755);
	tu_assert_owner(r, "home/alice/.ssh", BASE + 1000, BASE + 1000, 0700);
	tu_assert_owner(r, "home/alice/.ssh/authorized_keys", BASE + 1000, BASE + 1000, 0600);
	tu_assert_text(r, "home/alice/.ssh/authorized_keys", keys);
	tu_assert_text(r, "home/alice/.bashrc", "# bashrc\n");
	tu_assert_owner(r, "home/alice/.bashrc", BASE + 1000, BASE + 1000, 0644);
	tu_assert_text(r, "home/alice/.profile", "# profile\n");
}

static void test_provision_idempotent(void **state)
{
	struct fixture *f = *state;
	struct provision_member m = alice(KEY1);
	char path[PATH_MAX];

	assert_int_equal(provision_container(f->root, &m), 0);
	check_alice(f, KEY1);
	assert_int_equal(provision_container(f->root, &m), 0);
	check_alice(f, KEY1);

	/* Keys are rewritten each time; the member's own dotfiles are theirs. */
	assert_int_equal(tu_make_file(f->root, "home/alice/.bashrc", "# mine\n", BASE + 1000, BASE + 1000, 0644), 0);
	snprintf(path, sizeof(path), "%s/home/alice/.ssh", f->root);
	assert_int_equal(chmod(path, 0777), 0);
	m = alice(KEY2);
	assert_int_equal(provision_container(f->root, &m), 0);
	tu_assert_text(f->root, "home/alice/.ssh/authorized_keys", KEY2);
	tu_assert_text(f->root, "home/alice/.bashrc", "# mine\n");
	tu_assert_owner(f->root, "home/alice/.ssh", BASE + 1000, BASE + 1000, 0700);
	assert_int_equal(tu_count_entries(f->outside), 0);
}

static void test_resolv_conf(void **state)
{
	struct fixture *f = *state;
	struct provision_member m = alice(KEY1);
	char path[PATH_MAX];
	struct stat st;

	assert_int_equal(provision_container(f->root, &m), 0);
	if (access("/etc/resolv.conf", R_OK) == 0) {
		__do_free char *host = tu_read_text("/", "etc/resolv.conf");
		__do_free char *ours = tu_read_text(f->root, "etc/resolv.conf");

		if (!strstr(host, "127.0.0.53"))
			assert_string_equal(ours, host);
		assert_null(strstr(ours, "nameserver 127.0.0.53"));
		tu_assert_owner(f->root, "etc/resolv.conf", BASE, BASE, 0644);
	}

	/* The container's own link is left alone. */
	snprintf(path, sizeof(path), "%s/etc/resolv.conf", f->root);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(symlink("../run/systemd/resolve/stub-resolv.conf", path), 0);
	assert_int_equal(provision_container(f->root, &m), 0);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
}

static void test_fresh_tree(void **state)
{
	struct fixture *f = *state;
	struct provision_member m = alice("");
	char path[PATH_MAX];
	__do_free char *hosts = NULL;

	/* No hosts, no sudoers.d, no home, no skel: created as needed. */
	snprintf(path, sizeof(path), "%s/etc/hosts", f->root);
	assert_int_equal(unlink(path), 0);
	snprintf(path, sizeof(path), "%s/etc/sudoers.d", f->root);
	assert_int_equal(rmdir(path), 0);
	snprintf(path, sizeof(path), "%s/home", f->root);
	assert_int_equal(rmdir(path), 0);
	snprintf(path, sizeof(path), "%s/etc/skel/.bashrc", f->root);
	assert_int_equal(unlink(path), 0);

	assert_int_equal(provision_container(f->root, &m), 0);
	hosts = tu_read_text(f->root, "etc/hosts");
	assert_non_null(strstr(hosts, "127.0.0.1\tlocalhost\n"));
	assert_int_equal(tu_count_substr(hosts, "127.0.1.1\tgpu17-alice\n"), 1);
	tu_assert_owner(f->root, "etc/hosts", BASE, BASE, 0644);
	tu_assert_owner(f->root, "etc/sudoers.d", BASE, BASE, 0755);
	tu_assert_owner(f->root, "home", BASE, BASE, 0755);
	tu_assert_owner(f->root, "home/alice", BASE + 1000, BASE + 1000, 0755);
	tu_assert_text(f->root, "home/alice/.ssh/authorized_keys", "");
	tu_assert_text(f->root, "home/alice/.profile", "# profile\n");
	snprintf(path, sizeof(path), "%s/home/alice/.bashrc", f->root);
	assert_int_equal(access(path, F_OK), -1);
}

static void test_clash(void **state)
{
	struct fixture *f = *state;
	struct provision_member m = alice(KEY1);
	__do_free char *passwd = NULL;

	/* uid 1 belongs to daemon. */
	m.uid = 1;
	assert_int_equal(provision_container(f->root, &m), -EEXIST);
	/* "daemon" is taken with another uid. */
	m = alice(KEY1);
	m.name = "daemon";
	assert_int_equal(provision_container(f->root, &m), -EEXIST);
	/* gid 27 is sudo's. */
	m = alice(KEY1);
	m.gid = 27;
	assert_int_equal(provision_container(f->root, &m), -EEXIST);
	/* Nothing written. */
	passwd = tu_read_text(f->root, "etc/passwd");
	assert_string_equal(passwd, PASSWD);
	tu_assert_text(f->root, "etc/group", GROUP);
	tu_assert_text(f->root, "etc/hostname", "template\n");

	/* An account already there with the same ids is kept as it is. */
	assert_int_equal(tu_make_file(f->root, "etc/passwd", PASSWD "\nalice:x:1000:1000:Alice:/home/alice:/bin/zsh\n",
				      BASE, BASE, 0644), 0);
	m = alice(KEY1);
	assert_int_equal(provision_container(f->root, &m), 0);
	tu_assert_text(f->root, "etc/passwd", PASSWD "\nalice:x:1000:1000:Alice:/home/alice:/bin/zsh\n");

	/* Bad input. */
	m.name = "Alice;rm";
	assert_int_equal(provision_container(f->root, &m), -EINVAL);
	m = alice(KEY1);
	m.hostname = "a b";
	assert_int_equal(provision_container(f->root, &m), -EINVAL);
	m = alice(KEY1);
	m.uid = 70000;
	assert_int_equal(provision_container(f->root, &m), -ERANGE);
}

static void test_planted_symlink(void **state)
{
	struct fixture *f = *state;
	struct provision_member m = alice(KEY1);
	char path[PATH_MAX];

	/* The member (root inside) plants ~/.ssh -> a directory of the host. */
	assert_int_equal(tu_make_dir(f->root, "home/alice", BASE + 1000, BASE + 1000, 0755), 0);
	snprintf(path, sizeof(path), "%s/home/alice/.ssh", f->root);
	assert_int_equal(symlink(f->outside, path), 0);
	assert_int_equal(provision_container(f->root, &m), -ELOOP);
	assert_int_equal(tu_count_entries(f->outside), 0);
	tu_assert_owner(f->top, "outside", 0, 0, 0755);

	/* ~ itself a link to the host's directory. */
	assert_int_equal(unlink(path), 0);
	snprintf(path, sizeof(path), "%s/home/alice", f->root);
	assert_int_equal(rmdir(path), 0);
	assert_int_equal(symlink(f->outside, path), 0);
	assert_int_equal(provision_container(f->root, &m), -ELOOP);
	assert_int_equal(tu_count_entries(f->outside), 0);

	/* /etc/shadow a link to a host file. */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(tu_make_file(f->outside, "shadow", "host\n", 0, 0, 0600), 0);
	snprintf(path, sizeof(path), "%s/etc/shadow", f->root);
	assert_int_equal(unlink(path), 0);
	snprintf(path, sizeof(path), "%s/shadow", f->outside);
	tu_make_link(f->root, "etc/shadow", path);
	assert_int_equal(provision_container(f->root, &m), -ELOOP);
	tu_assert_text(f->outside, "shadow", "host\n");
	tu_assert_owner(f->outside, "shadow", 0, 0, 0600);
	assert_int_equal(tu_count_entries(f->outside), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_provision_idempotent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resolv_conf, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fresh_tree, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_planted_symlink, setup, teardown),
	};

	if (!tu_have_root("test_provision"))
		return TU_SKIP;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
