/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "container/container.h"
#include "config.h"
#include "state/state.h"

static void test_parse(void **state)
{
	struct mounts_entry e[MOUNTS_MAX];
	size_t n = 0;
	char err[512] = "";

	(void)state;
	assert_int_equal(mounts_parse(" /data:/data:ro , /scratch/%u:/scratch:rw,", e, MOUNTS_MAX,
				      &n, err, sizeof(err)), 0);
	assert_int_equal(n, 2);
	assert_string_equal(e[0].host, "/data");
	assert_string_equal(e[0].target, "/data");
	assert_true(e[0].read_only);
	assert_false(e[0].per_member);
	assert_string_equal(e[1].host, "/scratch/%u");
	assert_false(e[1].read_only);
	assert_true(e[1].per_member);
	assert_int_equal(mounts_parse("", e, MOUNTS_MAX, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 0);
}

static void test_refused(void **state)
{
	static const struct { const char *text; const char *words; } cases[] = {
		{ "/data:/data", "HOST:CONTAINER" },
		{ "/data:/data:rw:x", "HOST:CONTAINER" },
		{ "/data:/data:wx", "ro or rw" },
		{ "data:/data:ro", "absolute" },
		{ "/data:data:ro", "absolute" },
		{ "/data/../etc:/data:ro", "absolute" },
		{ "/data:/x/..:ro", "absolute" },
		{ "/da ta:/data:ro", "absolute" },
		{ "/data:/data%u:ro", "absolute" },
		{ "/data;id:/data:ro", "absolute" },
		{ "/data:/etc:ro", "system directory" },
		{ "/data:/:ro", "system directory" },
		{ "/data:/proc/x:ro", "system directory" },
		{ "/data:/usr:rw", "system directory" },
	};
	struct mounts_entry e[MOUNTS_MAX];
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[512] = "";

		assert_int_equal(mounts_parse(cases[i].text, e, MOUNTS_MAX, &n, err, sizeof(err)), -EINVAL);
		if (!strstr(err, cases[i].words))
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].words);
	}
	/* More than the table holds. */
	char many[1024] = "";
	for (int i = 0; i <= MOUNTS_MAX; i++)
		{ size_t l = strlen(many); snprintf(many + l, sizeof(many) - l, "/d:/d:ro,"); }
	char err[512] = "";
	assert_int_equal(mounts_parse(many, e, MOUNTS_MAX, &n, err, sizeof(err)), -EINVAL);
}

/*
 * A per-member directory (%u) that is already there: the member's own
 * (owned by their id inside the container, not writable by others), or
 * refused.  The tests play the member's id with their own uid, so that
 * they run as anyone.
 */
static char prep_dir[256];

static int prep_setup(void **state)
{
	(void)state;
	snprintf(prep_dir, sizeof(prep_dir), "/tmp/gbx-test-mounts.XXXXXX");
	assert_non_null(mkdtemp(prep_dir));
	return 0;
}

static int prep_teardown(void **state)
{
	char cmd[512];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", prep_dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* mounts_prepare for the member "alice" whose id is ours (or another). */
static int prep_run(const char *mounts, uid_t owner, struct mounts_plan *plan,
		    char *err, size_t errlen)
{
	struct gpubox_config cfg;
	struct member_record rec = { .name = "alice", .uid = 1000 };

	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.mounts, sizeof(cfg.mounts), "%s", mounts);
	rec.subid_base = (uint32_t)owner - rec.uid;
	err[0] = '\0';
	return mounts_prepare(&cfg, &rec, plan, err, errlen);
}

static void prep_path(char *out, size_t len, const char *rest)
{
	snprintf(out, len, "%s/%s", prep_dir, rest);
}

static void test_prepare_creates(void **state)
{
	struct mounts_plan plan;
	char mounts[512], path[512], err[512];
	struct stat st;

	(void)state;
	snprintf(mounts, sizeof(mounts), "%s/%%u:/scratch:rw", prep_dir);
	assert_int_equal(prep_run(mounts, getuid(), &plan, err, sizeof(err)), 0);
	prep_path(path, sizeof(path), "alice");
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(st.st_uid, getuid());
	assert_int_equal(plan.n, 1);
	assert_string_equal(plan.mounts[0].source, path);
	/* Made once, the same directory is taken again. */
	assert_int_equal(prep_run(mounts, getuid(), &plan, err, sizeof(err)), 0);
}

static void prep_refused(const char *mounts, uid_t owner, const char *path, const char *words)
{
	struct mounts_plan plan;
	char err[512];
	int ret = prep_run(mounts, owner, &plan, err, sizeof(err));

	if (ret >= 0)
		fail_msg("%s was accepted", path);
	if (!strstr(err, path) || !strstr(err, words))
		fail_msg("\"%s\" lacks \"%s\" or \"%s\"", err, path, words);
}

static void test_prepare_symlink(void **state)
{
	char mounts[512], path[512], outside[512];

	(void)state;
	snprintf(mounts, sizeof(mounts), "%s/%%u:/scratch:rw", prep_dir);
	prep_path(path, sizeof(path), "alice");
	assert_int_equal(symlink("/etc", path), 0);
	prep_refused(mounts, getuid(), path, "symbolic link");

	/* A link above the member's directory: /x/%u/ssh with %u -> /etc. */
	assert_int_equal(unlink(path), 0);
	prep_path(outside, sizeof(outside), "outside");
	assert_int_equal(mkdir(outside, 0700), 0);
	prep_path(outside, sizeof(outside), "outside/ssh");
	assert_int_equal(mkdir(outside, 0700), 0);
	assert_int_equal(symlink("outside", path), 0);
	snprintf(mounts, sizeof(mounts), "%s/%%u/ssh:/scratch:rw", prep_dir);
	prep_path(path, sizeof(path), "alice/ssh");
	prep_refused(mounts, getuid(), path, "symbolic link");
}

static void test_prepare_not_directory(void **state)
{
	char mounts[512], path[512];
	FILE *f;

	(void)state;
	snprintf(mounts, sizeof(mounts), "%s/%%u:/scratch:rw", prep_dir);
	prep_path(path, sizeof(path), "alice");
	f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	prep_refused(mounts, getuid(), path, "not a directory");
}

static void test_prepare_owner(void **state)
{
	char mounts[512], path[512];

	(void)state;
	snprintf(mounts, sizeof(mounts), "%s/%%u:/scratch:rw", prep_dir);
	prep_path(path, sizeof(path), "alice");
	assert_int_equal(mkdir(path, 0700), 0);
	/* Ours, but the member's id is another. */
	prep_refused(mounts, getuid() + 1, path, "owned by");
}

static void test_prepare_writable(void **state)
{
	char mounts[512], path[512];

	(void)state;
	snprintf(mounts, sizeof(mounts), "%s/%%u:/scratch:rw", prep_dir);
	prep_path(path, sizeof(path), "alice");
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(chmod(path, 0770), 0);
	prep_refused(mounts, getuid(), path, "writable");
	assert_int_equal(chmod(path, 0707), 0);
	prep_refused(mounts, getuid(), path, "writable");
	assert_int_equal(chmod(path, 0755), 0);
	struct mounts_plan plan;
	char err[512];
	assert_int_equal(prep_run(mounts, getuid(), &plan, err, sizeof(err)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_refused),
		cmocka_unit_test_setup_teardown(test_prepare_creates, prep_setup, prep_teardown),
		cmocka_unit_test_setup_teardown(test_prepare_symlink, prep_setup, prep_teardown),
		cmocka_unit_test_setup_teardown(test_prepare_not_directory, prep_setup, prep_teardown),
		cmocka_unit_test_setup_teardown(test_prepare_owner, prep_setup, prep_teardown),
		cmocka_unit_test_setup_teardown(test_prepare_writable, prep_setup, prep_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
