/* SPDX-License-Identifier: MIT */
/*
 * A member's limits: every value an admin may type, the ones refused with
 * nothing changed, the text read back, the defaults under a member's own
 * values, and the cgroup files both cgroup versions get (v2's rendering is
 * checked here; the system test runs on what the machine has).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "container/container.h"
#include "monitor/monitor.h"
#include "cleanup.h"
#include "config.h"
#include "reslimit.h"
#include "banned.h"

#define GIB (1024ull * 1024 * 1024)

static void test_parse_values(void **state)
{
	static const struct { const char *text; enum limit_key key; uint64_t value; const char *back; } cases[] = {
		{ "memory=64G", LIMIT_MEMORY, 64 * GIB, "64G" },
		{ "memory=1536M", LIMIT_MEMORY, 1536ull << 20, "1536M" },
		{ "memory=75%", LIMIT_MEMORY, 75, "75%" },
		{ "memory=none", LIMIT_MEMORY, LIMIT_NONE, "none" },
		{ "memory_high=56G", LIMIT_MEMORY_HIGH, 56 * GIB, "56G" },
		{ "swap=0", LIMIT_SWAP, 0, "0" },
		{ "cpus=16", LIMIT_CPUS, 16000, "16" },
		{ "cpus=0.5", LIMIT_CPUS, 500, "0.5" },
		{ "cpus=2.25", LIMIT_CPUS, 2250, "2.25" },
		{ "cpu_weight=300", LIMIT_CPU_WEIGHT, 300, "300" },
		{ "pids=20000", LIMIT_PIDS, 20000, "20000" },
		{ "io_weight=10000", LIMIT_IO_WEIGHT, 10000, "10000" },
		{ "disk=500G", LIMIT_DISK, 500 * GIB, "500G" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct limits l = { 0 }, again = { 0 };
		char err[256], text[LIMIT_TEXT_MAX], line[64];

		assert_int_equal(limits_parse_assignment(cases[i].text, &l, err, sizeof(err)), 0);
		assert_true(limits_given(&l, cases[i].key));
		assert_true(l.value[cases[i].key] == cases[i].value);
		limits_format_value(&l, cases[i].key, text, sizeof(text));
		assert_string_equal(text, cases[i].back);
		/* What is shown reads back the same. */
		snprintf(line, sizeof(line), "%s=%s", limits_key_name(cases[i].key), text);
		assert_int_equal(limits_parse_assignment(line, &again, err, sizeof(err)), 0);
		assert_memory_equal(&l, &again, sizeof(l));
	}
}

static void test_bad_values_change_nothing(void **state)
{
	static const struct { const char *text; const char *says; } cases[] = {
		{ "memory=-1", "memory is a size" },
		{ "memory=1e99", "memory is a size" },
		{ "memory=99999999999999999999999", "memory is a size" },
		{ "memory=2P", "memory is a size" },       /* not a unit */
		{ "memory=16M", "from 64M" },              /* below the floor */
		{ "memory=0%", "memory is a size" },
		{ "memory=101%", "memory is a size" },
		{ "swap=10%", "swap is a size" },          /* no percentage for swap */
		{ "cpus=0", "from 0.01" },
		{ "cpus=0.001", "from 0.01" },
		{ "cpus=1.2345", "cpus is" },
		{ "cpus=-2", "cpus is" },
		{ "cpus=.5", "cpus is" },
		{ "cpus=5000", "cpus is" },
		{ "cpu_weight=0", "1 to 10000" },
		{ "cpu_weight=none", "1 to 10000" },
		{ "io_weight=10001", "1 to 10000" },
		{ "pids=10", "from 64" },
		{ "pids=", "pids is" },
		{ "disk=1M", "from 256M" },
		{ "colour=blue", "no limit called \"colour\"" },
		{ "memory", "KEY=VALUE" },
		{ "=64G", "no limit called" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct limits l = { 0 }, before;
		char err[256] = "";

		assert_int_equal(limits_parse_assignment("pids=500", &l, err, sizeof(err)), 0);
		before = l;
		assert_int_equal(limits_parse_assignment(cases[i].text, &l, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, cases[i].says));
		assert_memory_equal(&l, &before, sizeof(l));
	}
}

static void test_list_all_or_nothing(void **state)
{
	struct limits l = { 0 };
	char err[256];

	(void)state;
	assert_int_equal(limits_parse_list("memory=64G, cpus=16  pids=20000", &l, err, sizeof(err)), 0);
	assert_true(l.value[LIMIT_MEMORY] == 64 * GIB && l.value[LIMIT_CPUS] == 16000 &&
		    l.value[LIMIT_PIDS] == 20000);
	/* One bad word leaves the whole list out. */
	assert_int_equal(limits_parse_list("memory=8G cpus=0", &l, err, sizeof(err)), -EINVAL);
	assert_true(l.value[LIMIT_MEMORY] == 64 * GIB);
}

static void test_merge_and_resolve(void **state)
{
	struct limits defaults = { 0 }, own = { 0 }, out;
	char err[256];

	(void)state;
	assert_int_equal(limits_parse_list("memory=75% pids=10000", &defaults, err, sizeof(err)), 0);
	assert_int_equal(limits_parse_list("memory=8G cpus=2", &own, err, sizeof(err)), 0);
	limits_merge(&defaults, &own, &out);
	assert_true(limits_resolve(&out, LIMIT_MEMORY, 100 * GIB) == 8 * GIB);
	assert_true(limits_resolve(&out, LIMIT_PIDS, 0) == 10000);
	assert_true(limits_resolve(&out, LIMIT_CPUS, 0) == 2000);
	assert_true(limits_resolve(&out, LIMIT_SWAP, 0) == LIMIT_NONE);
	/* The default's percentage, of the server's memory. */
	assert_true(limits_resolve(&defaults, LIMIT_MEMORY, 100 * GIB) == 75 * GIB);
	limits_unset(&own, LIMIT_MEMORY);
	limits_merge(&defaults, &own, &out);
	assert_true(limits_resolve(&out, LIMIT_MEMORY, 100 * GIB) == 75 * GIB);
}

static void test_check_soft_below_hard(void **state)
{
	struct limits l = { 0 };
	char err[256];

	(void)state;
	assert_int_equal(limits_parse_list("memory=8G memory_high=16G", &l, err, sizeof(err)), 0);
	assert_int_equal(limits_check(&l, 64 * GIB, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "memory_high"));
	assert_int_equal(limits_parse_list("memory_high=6G", &l, err, sizeof(err)), 0);
	assert_int_equal(limits_check(&l, 64 * GIB, err, sizeof(err)), 0);
}

static const struct cgroup_item *find_item(const struct cgroup_items *items, const char *file)
{
	for (size_t i = 0; i < items->n; i++)
		if (strcmp(items->item[i].file, file) == 0)
			return &items->item[i];
	fail_msg("no item %s", file);
	return NULL;
}

static char *render(const struct cgroup_items *items)
{
	char *text = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&text, &size);

	assert_non_null(f);
	cgroup_render_items(f, items);
	assert_int_equal(fclose(f), 0);
	return text;
}

static void test_cgroup_v2(void **state)
{
	struct limits l = { 0 };
	struct cgroup_items items;
	__do_free char *text = NULL;
	char err[256];

	(void)state;
	assert_int_equal(limits_parse_list("memory=50% memory_high=28G swap=4G cpus=1.5 cpu_weight=300 pids=20000 io_weight=200",
					   &l, err, sizeof(err)), 0);
	cgroup_limit_items(&l, 64 * GIB, false, &items);
	assert_string_equal(find_item(&items, "memory.max")->value, "34359738368");
	assert_string_equal(find_item(&items, "memory.high")->value, "30064771072");
	assert_string_equal(find_item(&items, "memory.swap.max")->value, "4294967296");
	assert_string_equal(find_item(&items, "cpu.max")->value, "150000 100000");
	assert_string_equal(find_item(&items, "cpu.weight")->value, "300");
	assert_string_equal(find_item(&items, "pids.max")->value, "20000");
	assert_string_equal(find_item(&items, "io.weight")->value, "default 200");
	/* What only some kernels have fails softly; the rest stops a start. */
	assert_true(find_item(&items, "memory.swap.max")->optional);
	assert_true(find_item(&items, "io.weight")->optional);
	assert_false(find_item(&items, "memory.max")->optional);
	assert_false(find_item(&items, "pids.max")->optional);
	text = render(&items);
	assert_non_null(strstr(text, "lxc.cgroup2.memory.max = 34359738368\n"));
	assert_non_null(strstr(text, "lxc.cgroup2.cpu.max = 150000 100000\n"));
	assert_non_null(strstr(text, "lxc.cgroup2.pids.max = 20000\n"));
	/* Only some kernels have these: never where a missing file stops a start. */
	assert_null(strstr(text, "swap"));
	assert_null(strstr(text, "io.weight"));
}

static void test_cgroup_v1(void **state)
{
	struct limits l = { 0 };
	struct cgroup_items items;
	__do_free char *text = NULL;
	char err[256];

	(void)state;
	assert_int_equal(limits_parse_list("memory=8G memory_high=6G swap=2G cpus=0.5 cpu_weight=50 pids=300",
					   &l, err, sizeof(err)), 0);
	cgroup_limit_items(&l, 64 * GIB, true, &items);
	assert_string_equal(find_item(&items, "memory.limit_in_bytes")->value, "8589934592");
	assert_string_equal(find_item(&items, "memory.soft_limit_in_bytes")->value, "6442450944");
	assert_string_equal(find_item(&items, "memory.memsw.limit_in_bytes")->value, "10737418240");
	assert_string_equal(find_item(&items, "cpu.cfs_quota_us")->value, "50000");
	assert_string_equal(find_item(&items, "cpu.cfs_period_us")->value, "100000");
	assert_string_equal(find_item(&items, "cpu.shares")->value, "512");
	assert_string_equal(find_item(&items, "pids.max")->value, "300");
	assert_string_equal(find_item(&items, "blkio.weight")->value, "500");
	text = render(&items);
	assert_non_null(strstr(text, "lxc.cgroup.memory.limit_in_bytes = 8589934592\n"));
	/* The period before the quota, which LXC writes in this order. */
	assert_true(strstr(text, "cpu.cfs_period_us") < strstr(text, "cpu.cfs_quota_us"));
	assert_null(strstr(text, "memsw"));
	assert_null(strstr(text, "lxc.cgroup2"));
}

/* Keys not given are written back to the kernel's "no limit", live only. */
static void test_cgroup_resets(void **state)
{
	struct limits none = { 0 };
	struct cgroup_items items;
	__do_free char *text = NULL;

	(void)state;
	cgroup_limit_items(&none, 64 * GIB, false, &items);
	assert_string_equal(find_item(&items, "memory.max")->value, "max");
	assert_string_equal(find_item(&items, "cpu.max")->value, "max 100000");
	assert_string_equal(find_item(&items, "cpu.weight")->value, "100");
	assert_string_equal(find_item(&items, "pids.max")->value, "max");
	text = render(&items);
	assert_string_equal(text, "");
	cgroup_limit_items(&none, 64 * GIB, true, &items);
	assert_string_equal(find_item(&items, "memory.limit_in_bytes")->value, "-1");
	assert_string_equal(find_item(&items, "cpu.cfs_quota_us")->value, "-1");
	assert_string_equal(find_item(&items, "cpu.shares")->value, "1024");
}

static void test_cgroup_dir(void **state)
{
	static const char v1[] =
		"12:pids:/lxc.payload.ann/init.scope\n"
		"4:cpu,cpuacct:/lxc.payload.ann/system.slice/ssh.service\n"
		"3:memory:/lxc.payload.ann\n"
		"0::/lxc.payload.ann/init.scope\n";
	static const char v2[] = "0::/lxc.payload.ann/init.scope\n";
	/* A container's own cgroup named after another member, below its own. */
	static const char nested[] = "0::/lxc.payload.ann/lxc.payload.bob\n";
	static const char other[] = "0::/lxc.payload.annex/init.scope\n";
	static const char up[] = "0::/../lxc.payload.ann\n";
	char dir[256];

	(void)state;
	assert_int_equal(cgroup_dir_from(v1, "ann", true, "cpu", dir, sizeof(dir)), 0);
	assert_string_equal(dir, "/sys/fs/cgroup/cpu,cpuacct/lxc.payload.ann");
	assert_int_equal(cgroup_dir_from(v1, "ann", true, "memory", dir, sizeof(dir)), 0);
	assert_string_equal(dir, "/sys/fs/cgroup/memory/lxc.payload.ann");
	assert_int_equal(cgroup_dir_from(v1, "ann", true, "pids", dir, sizeof(dir)), 0);
	assert_string_equal(dir, "/sys/fs/cgroup/pids/lxc.payload.ann");
	assert_int_equal(cgroup_dir_from(v1, "ann", true, "blkio", dir, sizeof(dir)), -ENOENT);
	assert_int_equal(cgroup_dir_from(v2, "ann", false, "memory", dir, sizeof(dir)), 0);
	assert_string_equal(dir, "/sys/fs/cgroup/lxc.payload.ann");
	assert_int_equal(cgroup_dir_from(nested, "bob", false, "memory", dir, sizeof(dir)), -ENOENT);
	assert_int_equal(cgroup_dir_from(nested, "ann", false, "memory", dir, sizeof(dir)), 0);
	assert_string_equal(dir, "/sys/fs/cgroup/lxc.payload.ann");
	assert_int_equal(cgroup_dir_from(other, "ann", false, "memory", dir, sizeof(dir)), -ENOENT);
	assert_int_equal(cgroup_dir_from(up, "ann", false, "memory", dir, sizeof(dir)), -ENOENT);
}

static void test_config_key(void **state)
{
	static const char good[] = "limits = memory=32G cpus=8\n";
	static const char bad[] = "limits = memory=lots\n";
	struct gpubox_config cfg;
	struct limits l;
	char err[512];

	(void)state;
	config_set_defaults(&cfg);
	config_limits(&cfg, &l);
	/* The built-in default protects a fresh server. */
	assert_true(limits_given(&l, LIMIT_MEMORY) && limits_given(&l, LIMIT_PIDS));
	assert_int_equal(config_parse(&cfg, good, strlen(good), err, sizeof(err)), 0);
	config_limits(&cfg, &l);
	assert_true(l.value[LIMIT_MEMORY] == 32 * GIB && l.value[LIMIT_CPUS] == 8000);
	assert_false(limits_given(&l, LIMIT_PIDS));
	config_set_defaults(&cfg);
	assert_int_equal(config_parse(&cfg, bad, strlen(bad), err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "memory is a size"));
}

/* nesting: yes or no, from the key "nesting" unless "limits" names it,
 * a member's own value over it. */
static void test_nesting(void **state)
{
	static const char off[] = "nesting = no\n";
	static const char both[] = "nesting = no\nlimits = nesting=yes\n";
	struct gpubox_config cfg;
	struct limits l, own = { 0 }, merged;
	char err[512], text[LIMIT_TEXT_MAX];

	(void)state;
	config_set_defaults(&cfg);
	config_limits(&cfg, &l);
	assert_true(limits_flag(&l, LIMIT_NESTING, false));
	limits_format_value(&l, LIMIT_NESTING, text, sizeof(text));
	assert_string_equal(text, "yes");
	assert_int_equal(config_parse(&cfg, off, strlen(off), err, sizeof(err)), 0);
	config_limits(&cfg, &l);
	assert_false(limits_flag(&l, LIMIT_NESTING, true));
	config_set_defaults(&cfg);
	assert_int_equal(config_parse(&cfg, both, strlen(both), err, sizeof(err)), 0);
	config_limits(&cfg, &l);
	assert_true(limits_flag(&l, LIMIT_NESTING, false));

	assert_int_equal(limits_parse_assignment("nesting=no", &own, err, sizeof(err)), 0);
	limits_merge(&l, &own, &merged);
	assert_false(limits_flag(&merged, LIMIT_NESTING, true));
	limits_format_value(&merged, LIMIT_NESTING, text, sizeof(text));
	assert_string_equal(text, "no");
	assert_true(limits_flag(&(struct limits){ 0 }, LIMIT_NESTING, true));
	for (const char *const *bad = (const char *const[]){ "nesting=maybe", "nesting=none",
							       "nesting=1", "nesting=", NULL };
	     *bad; bad++) {
		assert_int_equal(limits_parse_assignment(*bad, &own, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "nesting is yes"));
	}
	assert_false(limits_flag(&own, LIMIT_NESTING, true));
	assert_int_equal(limits_parse_assignment("nest=yes", &own, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "disk and nesting"));
}

static int parse_line(const char *line, struct oom_event *e)
{
	return oomwatch_parse(line, strlen(line), e);
}

static void test_oom_line(void **state)
{
	struct oom_event e;

	(void)state;
	assert_int_equal(parse_line("6,41250,8215326381,-;oom-kill:constraint=CONSTRAINT_MEMCG,"
				    "nodemask=(null),cpuset=lxc.payload.ann,mems_allowed=0,"
				    "oom_memcg=/lxc.payload.ann,task_memcg=/lxc.payload.ann/system.slice/x.service,"
				    "task=python3,pid=41122,uid=2000001000\n", &e), 0);
	assert_string_equal(e.member, "ann");
	assert_string_equal(e.command, "python3");
	assert_int_equal(e.host_pid, 41122);
	assert_int_equal(e.host_uid, 2000001000u);
	assert_true(e.boot_usec == 8215326381ull);
	/* A host id past 2^31, as the kernel prints it (%d). */
	assert_int_equal(parse_line("6,1,2,-;oom-kill:oom_memcg=/lxc.payload.ann,task=tail,pid=24754,uid=-2060058624", &e), 0);
	assert_int_equal(e.host_uid, 2234908672u);
	assert_int_equal(parse_line("6,1,2,-;oom-kill:oom_memcg=/lxc.payload.ann,task=tail,pid=1,uid=-2147483649", &e), -EINVAL);
	assert_int_equal(parse_line("6,1,2,-;oom-kill:oom_memcg=/lxc.payload.ann,task=tail,pid=1,uid=-", &e), -EINVAL);
	/* Another line of the kernel's, a kill on the host, no record at all. */
	assert_int_equal(parse_line("6,41251,8215326399,-;Memory cgroup out of memory: Killed process 41122 (tail)", &e), -ENOENT);
	assert_int_equal(parse_line("6,1,2,-;oom-kill:constraint=CONSTRAINT_NONE,global_oom,task_memcg=/user.slice,task=chrome,pid=5,uid=1000", &e), -ENOENT);
	assert_int_equal(parse_line("oom-kill:oom_memcg=/lxc.payload.ann,task=x,pid=1,uid=0", &e), -EINVAL);
	/* A program's line (facility user) cannot pose as the kernel's. */
	assert_int_equal(parse_line("12,5,6,-;oom-kill:oom_memcg=/lxc.payload.ann,task=fake,pid=1,uid=0", &e), -EPERM);
	/* The task's name is the member's to choose: kept printable. */
	assert_int_equal(parse_line("6,5,6,-;oom-kill:oom_memcg=/lxc.payload.ann,task=a\033[2Jb,pid=1,uid=0", &e), 0);
	assert_string_equal(e.command, "a?[2Jb");
	/* Not a member's cgroup, or not a number. */
	assert_int_equal(parse_line("6,5,6,-;oom-kill:oom_memcg=/lxc.payload.../x,task=a,pid=1,uid=0", &e), -ENOENT);
	assert_int_equal(parse_line("6,5,6,-;oom-kill:oom_memcg=/lxc.payload.ann,task=a,pid=-1,uid=0", &e), -EINVAL);
	assert_int_equal(parse_line("6,5,6,-;oom-kill:oom_memcg=/lxc.payload.ann,task=a,pid=1", &e), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_values),
		cmocka_unit_test(test_bad_values_change_nothing),
		cmocka_unit_test(test_list_all_or_nothing),
		cmocka_unit_test(test_merge_and_resolve),
		cmocka_unit_test(test_check_soft_below_hard),
		cmocka_unit_test(test_cgroup_v2),
		cmocka_unit_test(test_cgroup_v1),
		cmocka_unit_test(test_cgroup_resets),
		cmocka_unit_test(test_cgroup_dir),
		cmocka_unit_test(test_config_key),
		cmocka_unit_test(test_nesting),
		cmocka_unit_test(test_oom_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
