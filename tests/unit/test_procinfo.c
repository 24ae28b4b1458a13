/* SPDX-License-Identifier: MIT */
/*
 * procinfo: every parser on literal texts (good, edge, malformed,
 * truncated, huge numbers), then the live readings: this process, a
 * child, a child in a pid namespace of its own, the host twice, and as
 * root a real cgroup named like an LXC container's with a child in it.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "monitor/procinfo.h"
#include "testutil.h"
#include "banned.h"

/* A literal's length without its terminating NUL: the parsers take lengths. */
#define TEXT(s) (s), (sizeof(s) - 1)

/* ---- /proc/<pid>/cgroup ------------------------------------------------- */

static const char cgroup_v1_host[] =
	"12:pids:/system.slice/ssh.service\n"
	"11:memory:/system.slice/ssh.service\n"
	"10:cpu,cpuacct:/system.slice/ssh.service\n"
	"1:name=systemd:/system.slice/ssh.service\n"
	"0::/system.slice/ssh.service\n";

static const char cgroup_v1_alice[] =
	"12:pids:/lxc.payload.alice/system.slice/foo.service\n"
	"11:memory:/lxc.payload.alice/system.slice/foo.service\n"
	"10:cpu,cpuacct:/lxc.payload.alice/system.slice/foo.service\n"
	"9:devices:/lxc.payload.alice\n"
	"1:name=systemd:/lxc.payload.alice/system.slice/foo.service\n"
	"0::/lxc.payload.alice/system.slice/foo.service\n";

static void expect_member(const char *text, size_t len, const char *member)
{
	char got[40] = "unchanged";

	assert_int_equal(procinfo_parse_cgroup(text, len, got, sizeof(got)), 1);
	assert_string_equal(got, member);
}

static void expect_host(const char *text, size_t len)
{
	char got[40] = "unchanged";

	assert_int_equal(procinfo_parse_cgroup(text, len, got, sizeof(got)), 0);
	assert_string_equal(got, "unchanged");
}

static void test_parse_cgroup(void **state)
{
	(void)state;
	expect_host(TEXT(cgroup_v1_host));
	expect_host(TEXT("0::/\n"));
	expect_host(TEXT("0::/init.scope"));
	expect_host(TEXT(""));
	expect_host(TEXT("\n\n"));
	expect_host(TEXT("0::/lxc.pivot\n"));
	expect_host(TEXT("0::/lxc.payloadx.alice\n"));
	expect_host(TEXT("0::/x/lxc.payload\n"));
	expect_member(TEXT(cgroup_v1_alice), "alice");
	/* Any one line naming it is enough. */
	expect_member(TEXT("4:memory:/\n3:cpuacct:/lxc.payload.bob\n0::/\n"), "bob");
	expect_member(TEXT("0::/lxc.payload.alice/system.slice/foo.service\n"), "alice");
	expect_member(TEXT("0::/lxc.payload.alice"), "alice");
	expect_member(TEXT("0::/lxc.monitor.carol-2\n"), "carol-2");
	expect_member(TEXT("0::/lxc.payload.alice (deleted)\n"), "alice");
	/* Below another directory, and a container nested in a container: the outer one. */
	expect_member(TEXT("0::/machine.slice/lxc.payload.dave/init.scope\n"), "dave");
	expect_member(TEXT("0::/lxc.payload.alice/lxc.payload.inner\n"), "alice");
	/* The longest member name. */
	expect_member(TEXT("0::/lxc.payload.abcdefghijklmnopqrstuvwxyz012345\n"),
		      "abcdefghijklmnopqrstuvwxyz012345");
}

static void test_parse_cgroup_refused(void **state)
{
	static const char *const texts[] = {
		"garbage\n",
		"0:/lxc.payload.alice\n",
		"x::/lxc.payload.alice\n",
		":memory:/\n",
		"0::relative/lxc.payload.alice\n",
		"0::\n",
		"0::/lxc.payload.\n",
		"0::/lxc.payload.Alice\n",
		"0::/lxc.payload.alice.scope\n",
		"0::/lxc.payload.-alice\n",
		"0::/lxc.payload.alice-\n",
		"0::/lxc.payload.../etc\n",
		"0::/lxc.monitor.al ice\n",
		"0::/lxc.payload.abcdefghijklmnopqrstuvwxyz0123456\n",
		/* Two containers for one process. */
		"4:memory:/lxc.payload.alice\n0::/lxc.payload.bob\n",
		"0::/\ngarbage\n",
	};
	char member[40];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(texts); i++)
		if (procinfo_parse_cgroup(texts[i], strlen(texts[i]), member, sizeof(member)) != -EINVAL)
			fail_msg("case %zu (%s) was not refused", i, texts[i]);
	/* A NUL inside the name never shortens it into another member's. */
	assert_int_equal(procinfo_parse_cgroup(TEXT("0::/lxc.payload.ali\0ce\n"), member, sizeof(member)),
			 -EINVAL);
	/* The name and its NUL must fit. */
	assert_int_equal(procinfo_parse_cgroup(TEXT("0::/lxc.payload.alice\n"), member, 5), -ENOBUFS);
	assert_int_equal(procinfo_parse_cgroup(TEXT("0::/lxc.payload.alice\n"), member, 6), 1);
	assert_string_equal(member, "alice");
}

/* ---- /proc/<pid>/status ------------------------------------------------- */

static void test_parse_nspid(void **state)
{
	static const char status[] =
		"Name:\tbash\n"
		"Umask:\t0022\n"
		"State:\tS (sleeping)\n"
		"Tgid:\t4242\n"
		"Ngid:\t0\n"
		"Pid:\t4242\n"
		"PPid:\t4000\n"
		"NStgid:\t4242\t17\t1\n"
		"NSpid:\t4242\t17\t1\n"
		"NSpgid:\t4242\t17\t1\n"
		"VmRSS:\t    1234 kB\n";
	pid_t inner = 0;

	(void)state;
	assert_int_equal(procinfo_parse_nspid(TEXT(status), &inner), 0);
	assert_int_equal(inner, 1);
	assert_int_equal(procinfo_parse_nspid(TEXT("NSpid:\t4242\n"), &inner), 0);
	assert_int_equal(inner, 4242);
	assert_int_equal(procinfo_parse_nspid(TEXT("NSpid:\t4242\t2147483647"), &inner), 0);
	assert_int_equal(inner, 2147483647);
	assert_int_equal(procinfo_parse_nspid(TEXT("Name:\tx\nNSpid: 9  8 \nNSpid:\t1\n"), &inner), 0);
	assert_int_equal(inner, 8);
	/* Missing, empty, malformed, out of range. */
	assert_int_equal(procinfo_parse_nspid(TEXT("Name:\tx\nPid:\t3\n"), &inner), -ENOENT);
	assert_int_equal(procinfo_parse_nspid(TEXT(""), &inner), -ENOENT);
	assert_int_equal(procinfo_parse_nspid(TEXT("NStgid:\t5\n"), &inner), -ENOENT);
	assert_int_equal(procinfo_parse_nspid(TEXT("NSpid:\n"), &inner), -EINVAL);
	assert_int_equal(procinfo_parse_nspid(TEXT("NSpid:\t \t\n"), &inner), -EINVAL);
	assert_int_equal(procinfo_parse_nspid(TEXT("NSpid:\t12x\n"), &inner), -EINVAL);
	assert_int_equal(procinfo_parse_nspid(TEXT("NSpid:\t12\t-1\n"), &inner), -EINVAL);
	assert_int_equal(procinfo_parse_nspid(TEXT("NSpid:\t12\t0\n"), &inner), -EINVAL);
	assert_int_equal(procinfo_parse_nspid(TEXT("NSpid:\t2147483648\n"), &inner), -EINVAL);
	assert_int_equal(procinfo_parse_nspid(TEXT("NSpid:\t99999999999999999999999\n"), &inner), -EINVAL);
	assert_int_equal(inner, 8);
}

/* ---- /proc/<pid>/stat --------------------------------------------------- */

static void test_parse_stat(void **state)
{
	unsigned long long ticks = 0;
	char comm[64];

	(void)state;
	assert_int_equal(procinfo_parse_stat(TEXT(
		"4242 (bash) S 4000 4242 4242 34816 4300 4194304 3183 27311 0 3 4 2 31 10 20 0 1 0 "
		"987654 9105408 1338 18446744073709551615 1 1 0 0 0 0 65536 3686404 1266761467 0 0 0 "
		"17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"), &ticks, comm, sizeof(comm)), 0);
	assert_int_equal(ticks, 987654);
	assert_string_equal(comm, "bash");
	/* comm with spaces and parentheses ends at the last ')'. */
	assert_int_equal(procinfo_parse_stat(TEXT(
		"77 (a) b (c) ) R 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 555 1 2 3\n"), &ticks, comm,
		sizeof(comm)), 0);
	assert_int_equal(ticks, 555);
	assert_string_equal(comm, "a) b (c) ");
	assert_int_equal(procinfo_parse_stat(TEXT("1 () S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 9"),
					     &ticks, comm, sizeof(comm)), 0);
	assert_int_equal(ticks, 9);
	assert_string_equal(comm, "");
	/* Unprintable bytes shown as '?', a short buffer cut, no buffer at all. */
	assert_int_equal(procinfo_parse_stat(TEXT("1 (x\ny\x7f) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 9"),
					     &ticks, comm, sizeof(comm)), 0);
	assert_string_equal(comm, "x?y?");
	assert_int_equal(procinfo_parse_stat(TEXT("1 (kworker/0:1H) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 9"),
					     &ticks, comm, 5), 0);
	assert_string_equal(comm, "kwor");
	assert_int_equal(procinfo_parse_stat(TEXT("1 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 "
						  "18446744073709551615"), &ticks, NULL, 0), 0);
	assert_true(ticks == 18446744073709551615ULL);
}

static void test_parse_stat_refused(void **state)
{
	static const char *const texts[] = {
		"",
		"4242 bash S 1 2 3",
		"4242 (bash S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 9",
		"4242 )bash( S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 9",
		/* Truncated before field 22. */
		"4242 (bash) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18",
		"4242 (bash) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 \n99",
		"4242 (bash) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 x9",
		"4242 (bash) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 -9",
		"4242 (bash) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 18446744073709551616",
	};
	unsigned long long ticks = 7;
	char comm[16];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(texts); i++)
		if (procinfo_parse_stat(texts[i], strlen(texts[i]), &ticks, comm, sizeof(comm)) != -EINVAL)
			fail_msg("case %zu (%s) was not refused", i, texts[i]);
	assert_int_equal(ticks, 7);
}

/* ---- /proc/<pid>/cmdline ------------------------------------------------ */

static void expect_cmdline(const char *raw, size_t len, size_t outlen, const char *want)
{
	char out[PROCINFO_COMMAND_MAX];

	assert_true(outlen <= sizeof(out));
	memset(out, 'X', sizeof(out));
	procinfo_format_cmdline(raw, len, out, outlen);
	assert_string_equal(out, want);
}

static void test_format_cmdline(void **state)
{
	char out[4] = "abc", long_raw[400], got[PROCINFO_COMMAND_MAX];

	(void)state;
	expect_cmdline(TEXT("sleep\0" "30\0"), 128, "sleep 30");
	expect_cmdline(TEXT("python3\0-c\0print(1)\0\0\0"), 128, "python3 -c print(1)");
	expect_cmdline(TEXT("no-final-nul"), 128, "no-final-nul");
	expect_cmdline(TEXT("a\0\0b\0"), 128, "a  b");
	expect_cmdline(TEXT(""), 128, "");
	expect_cmdline(TEXT("\0\0"), 128, "");
	expect_cmdline(TEXT("tab\there\nnl\x1b[31m\x7f"), 128, "tab?here?nl?[31m?");
	/* UTF-8 kept when valid; stray bytes, C1 controls, overlong and surrogate encodings not. */
	expect_cmdline(TEXT("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), 128,
		       "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	expect_cmdline(TEXT("\xff\xfe"), 128, "??");
	expect_cmdline(TEXT("\xc2\x85"), 128, "??");
	expect_cmdline(TEXT("\xc0\xaf"), 128, "??");
	expect_cmdline(TEXT("\xed\xa0\x80"), 128, "???");
	expect_cmdline(TEXT("\xf4\x90\x80\x80"), 128, "????");
	expect_cmdline(TEXT("truncated \xe2\x82"), 128, "truncated ??");
	/* Cut at outlen - 1, never inside a character. */
	expect_cmdline(TEXT("abcdef\0"), 4, "abc");
	expect_cmdline(TEXT("ab\xc3\xa9"), 4, "ab");
	expect_cmdline(TEXT("ab\xc3\xa9"), 5, "ab\xc3\xa9");
	expect_cmdline(TEXT("abc"), 1, "");
	procinfo_format_cmdline("abc", 3, out, 0);
	assert_string_equal(out, "abc");
	memset(long_raw, 'a', sizeof(long_raw));
	procinfo_format_cmdline(long_raw, sizeof(long_raw), got, sizeof(got));
	assert_int_equal(strlen(got), PROCINFO_COMMAND_MAX - 1);
}

/* ---- the host's files --------------------------------------------------- */

static void test_parse_cpu(void **state)
{
	static const char stat[] =
		"cpu  10132153 290696 3084719 46828483 16683 0 25195 0 175628 0\n"
		"cpu0 1393280 32966 572056 13343292 6130 0 17875 0 23933 0\n"
		"cpu1 1335185 33007 512353 13364745 5549 0 3920 0 23102 0\n"
		"intr 1462898 21 9 0 0\n"
		"ctxt 215768432\n"
		"btime 1700000000\n"
		"processes 3180\n";
	uint64_t busy = 0, total = 0;

	(void)state;
	assert_int_equal(procinfo_parse_cpu(TEXT(stat), &busy, &total), 0);
	assert_true(total == 10132153ULL + 290696 + 3084719 + 46828483 + 16683 + 0 + 25195 + 0);
	assert_true(busy == total - 46828483ULL - 16683);
	/* Old kernels: four fields; no final newline. */
	assert_int_equal(procinfo_parse_cpu(TEXT("cpu 1 2 3 4"), &busy, &total), 0);
	assert_true(total == 10 && busy == 6);
	/* Fields past steal (guest, guest_nice) are inside user and nice already. */
	assert_int_equal(procinfo_parse_cpu(TEXT("cpu 1 1 1 1 1 1 1 1 100 100\n"), &busy, &total), 0);
	assert_true(total == 8 && busy == 6);
	assert_int_equal(procinfo_parse_cpu(TEXT("cpu 18446744073709551615 0 0 0\n"), &busy, &total), 0);
	assert_true(busy == UINT64_MAX);
	/* Missing, malformed, huge. */
	assert_int_equal(procinfo_parse_cpu(TEXT(""), &busy, &total), -ENOENT);
	assert_int_equal(procinfo_parse_cpu(TEXT("cpu0 1 2 3 4\nintr 5\n"), &busy, &total), -ENOENT);
	assert_int_equal(procinfo_parse_cpu(TEXT("cpu 1 2 3\n"), &busy, &total), -EINVAL);
	assert_int_equal(procinfo_parse_cpu(TEXT("cpu\n"), &busy, &total), -ENOENT);
	assert_int_equal(procinfo_parse_cpu(TEXT("cpu 1 2 x 4\n"), &busy, &total), -EINVAL);
	assert_int_equal(procinfo_parse_cpu(TEXT("cpu 1 2 3 4x\n"), &busy, &total), -EINVAL);
	assert_int_equal(procinfo_parse_cpu(TEXT("cpu 18446744073709551616 0 0 0\n"), &busy, &total), -ERANGE);
	assert_int_equal(procinfo_parse_cpu(TEXT("cpu 18446744073709551615 1 0 0\n"), &busy, &total), -ERANGE);
}

static void test_parse_meminfo(void **state)
{
	static const char meminfo[] =
		"MemTotal:       16303428 kB\n"
		"MemFree:         1016324 kB\n"
		"MemAvailable:   11203676 kB\n"
		"Buffers:          519996 kB\n"
		"HugePages_Total:       0\n";
	uint64_t total = 0, available = 0;

	(void)state;
	assert_int_equal(procinfo_parse_meminfo(TEXT(meminfo), &total, &available), 0);
	assert_true(total == 16303428ULL * 1024);
	assert_true(available == 11203676ULL * 1024);
	assert_int_equal(procinfo_parse_meminfo(TEXT("MemAvailable: 1 kB\nMemTotal: 2"), &total, &available), 0);
	assert_true(total == 2048 && available == 1024);
	/* Missing, malformed, a prefix of another key, huge. */
	assert_int_equal(procinfo_parse_meminfo(TEXT("MemTotal: 5 kB\n"), &total, &available), -ENOENT);
	assert_int_equal(procinfo_parse_meminfo(TEXT("MemTotalX: 5 kB\nMemAvailable: 1 kB\n"), &total, &available),
			 -ENOENT);
	assert_int_equal(procinfo_parse_meminfo(TEXT(""), &total, &available), -ENOENT);
	assert_int_equal(procinfo_parse_meminfo(TEXT("MemTotal: kB\nMemAvailable: 1 kB\n"), &total, &available),
			 -EINVAL);
	assert_int_equal(procinfo_parse_meminfo(TEXT("MemTotal:\nMemAvailable: 1 kB\n"), &total, &available),
			 -EINVAL);
	assert_int_equal(procinfo_parse_meminfo(TEXT("MemTotal: 0x10 kB\nMemAvailable: 1 kB\n"), &total,
						&available), -EINVAL);
	assert_int_equal(procinfo_parse_meminfo(TEXT("MemTotal: 18014398509481984 kB\nMemAvailable: 1 kB\n"),
						&total, &available), -ERANGE);
	assert_int_equal(procinfo_parse_meminfo(TEXT("MemTotal: 99999999999999999999 kB\nMemAvailable: 1 kB\n"),
						&total, &available), -ERANGE);
	assert_true(total == 2048 && available == 1024);
}

static void test_parse_loadavg(void **state)
{
	double load[3] = { -1, -1, -1 };

	(void)state;
	assert_int_equal(procinfo_parse_loadavg(TEXT("0.52 0.58 0.59 1/123 4567\n"), load), 0);
	assert_true(load[0] > 0.519 && load[0] < 0.521);
	assert_true(load[1] > 0.579 && load[1] < 0.581);
	assert_true(load[2] > 0.589 && load[2] < 0.591);
	assert_int_equal(procinfo_parse_loadavg(TEXT("128.00 3 0.123456789123"), load), 0);
	assert_true(load[0] == 128.0 && load[1] == 3.0 && load[2] > 0.1234 && load[2] < 0.1235);
	static const char *const bad[] = {
		"", "\n", "0.52 0.58\n", "0.52\n0.58 0.59\n", "-1.00 0.5 0.5\n", "1.2.3 0.5 0.5\n",
		"nan 1 1\n", "inf 1 1\n", "1e3 1 1\n", ". 1 1\n", "1. 1 1\n", "0x10 1 1\n",
		"99999999999999999999.0 1 1\n",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (procinfo_parse_loadavg(bad[i], strlen(bad[i]), load) >= 0)
			fail_msg("case %zu (%s) was not refused", i, bad[i]);
	assert_true(load[0] == 128.0);
}

static const char netdev[] =
	"Inter-|   Receive                                                |  Transmit\n"
	" face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n"
	"    lo:  658616   11187    0    0    0     0          0         0   658616   11187    0    0    0     0       0          0\n"
	"  eth0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n"
	"lxcbr0:100 1 0 0 0 0 0 0 200 2 0 0 0 0 0 0\n"
	"vethAbC: 10 1 0 0 0 0 0 0 20 2 0 0 0 0 0 0\n";

static void test_parse_netdev(void **state)
{
	uint64_t rx = 0, tx = 0;

	(void)state;
	assert_int_equal(procinfo_parse_netdev(TEXT(netdev), &rx, &tx), 0);
	assert_true(rx == 1110 && tx == 2220);
	/* Only the headers and lo: nothing counted. */
	assert_int_equal(procinfo_parse_netdev(netdev, (size_t)(strstr(netdev, "  eth0") - netdev), &rx, &tx), 0);
	assert_true(rx == 0 && tx == 0);
	assert_int_equal(procinfo_parse_netdev(TEXT(""), &rx, &tx), 0);
	assert_true(rx == 0 && tx == 0);
	assert_int_equal(procinfo_parse_netdev(TEXT("lo0: 5 0 0 0 0 0 0 0 6"), &rx, &tx), 0);
	assert_true(rx == 5 && tx == 6);
	/* Malformed: no name, too few numbers, not numbers, huge. */
	assert_int_equal(procinfo_parse_netdev(TEXT(": 1 0 0 0 0 0 0 0 2\n"), &rx, &tx), -EINVAL);
	assert_int_equal(procinfo_parse_netdev(TEXT("eth0: 1 0 0 0 0 0 0 0\n"), &rx, &tx), -EINVAL);
	assert_int_equal(procinfo_parse_netdev(TEXT("eth0: 1 0 0 0 0 0 0 0 -2\n"), &rx, &tx), -EINVAL);
	assert_int_equal(procinfo_parse_netdev(TEXT("eth0: 1 0 0 0 0 0 0 0 99999999999999999999\n"), &rx, &tx),
			 -EINVAL);
	assert_int_equal(procinfo_parse_netdev(TEXT("a: 18446744073709551615 0 0 0 0 0 0 0 0\n"
						    "b: 1 0 0 0 0 0 0 0 0\n"), &rx, &tx), -ERANGE);
	assert_true(rx == 5 && tx == 6);
}

static const char diskstats[] =
	"   7       0 loop0 100 0 800 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
	"   8       0 sda 1 0 10 0 2 0 20 0 0 0 0 0 0 0 0 0 0\n"
	"   8       1 sda1 1 0 7 0 2 0 7 0 0 0 0 0 0 0 0 0 0\n"
	"   8      10 sda10 1 0 3 0 2 0 3 0 0 0 0 0 0 0 0 0 0\n"
	"   8      16 sdb 1 0 100 0 2 0 200 0 0 0 0 0 0 0 0 0 0\n"
	" 259       0 nvme0n1 1 0 1000 0 2 0 2000 0 0 0 0 0 0 0 0 0 0\n"
	" 259       1 nvme0n1p1 1 0 999 0 2 0 999 0 0 0 0 0 0 0 0 0 0\n"
	" 259       2 nvme0n10 1 0 10000 0 2 0 20000 0 0 0 0 0 0 0 0 0 0\n"
	" 179       0 mmcblk0 1 0 100000 0 2 0 200000 0 0 0 0 0 0 0 0 0 0\n"
	" 179       1 mmcblk0p1 1 0 5 0 2 0 5 0 0 0 0 0 0 0 0 0 0\n"
	" 253       0 dm-0 1 0 5 0 2 0 5 0 0 0 0 0 0 0 0 0 0\n"
	"   9       0 md0 1 0 5 0 2 0 5 0 0 0 0 0 0 0 0 0 0\n"
	"   1       0 ram0 1 0 5 0 2 0 5 0 0 0 0 0 0 0 0 0 0\n"
	" 252       0 zram0 1 0 5 0 2 0 5 0 0 0 0 0 0 0 0 0 0\n"
	" 254       0 vda 1 0 1000000 0 2 0 2000000 0 0 0 0 0 0 0 0 0 0\n";

static void test_parse_diskstats(void **state)
{
	uint64_t rd = 0, wr = 0;

	(void)state;
	assert_int_equal(procinfo_parse_diskstats(TEXT(diskstats), &rd, &wr), 0);
	assert_true(rd == 512ULL * (10 + 100 + 1000 + 10000 + 100000 + 1000000));
	assert_true(wr == 512ULL * (20 + 200 + 2000 + 20000 + 200000 + 2000000));
	/* Old kernels: 11 fields after the name (7 are needed); no final newline. */
	assert_int_equal(procinfo_parse_diskstats(TEXT("8 0 sda 1 0 4 0 2 0 6 0 0 0 0"), &rd, &wr), 0);
	assert_true(rd == 2048 && wr == 3072);
	assert_int_equal(procinfo_parse_diskstats(TEXT("8 0 sda 1 0 4 0 2 0 6"), &rd, &wr), 0);
	assert_int_equal(procinfo_parse_diskstats(TEXT(""), &rd, &wr), 0);
	assert_true(rd == 0 && wr == 0);
	assert_int_equal(procinfo_parse_diskstats(TEXT("\n  \n"), &rd, &wr), 0);
	/* Malformed: missing fields, no name, not numbers, a name too long, huge. */
	static const char *const bad[] = {
		"8 0 sda 1 0 4 0 2 0\n",
		"8 0\n",
		"8 sda 1 0 4 0 2 0 6\n",
		"x 0 sda 1 0 4 0 2 0 6\n",
		"8 0 sda 1 0 4x 0 2 0 6\n",
		"8 0 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 1 0 4 0 2 0 6\n",
		"8 0 sda 1 0 99999999999999999999 0 2 0 6\n",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (procinfo_parse_diskstats(bad[i], strlen(bad[i]), &rd, &wr) != -EINVAL)
			fail_msg("case %zu (%s) was not refused", i, bad[i]);
	assert_int_equal(procinfo_parse_diskstats(TEXT("8 0 sda 1 0 36028797018963968 0 2 0 6\n"), &rd, &wr),
			 -ERANGE);
	assert_int_equal(procinfo_parse_diskstats(TEXT("8 0 sda 1 0 36028797018963967 0 2 0 6\n"
						       "8 16 sdb 1 0 36028797018963967 0 2 0 6\n"), &rd, &wr), -ERANGE);
	assert_true(rd == 0 && wr == 0);
}

/* ---- live processes ------------------------------------------------------ */

static void test_read_self(void **state)
{
	__do_free char *cgroup = NULL;
	struct procinfo p;
	char member[40] = "";
	size_t len = 0;
	time_t now = time(NULL);
	int in;

	(void)state;
	assert_int_equal(procinfo_read(getpid(), &p), 0);
	assert_int_equal(p.pid, getpid());
	assert_int_equal(p.ns_pid, getpid());
	/* This program, or valgrind running it (its long command line cut). */
	assert_true(strstr(p.command, "test_procinfo") || strstr(p.command, "valgrind"));
	assert_true(p.started <= now + 1 && p.started >= now - 600);
	assert_true(p.start_ticks > 0);
	/* Whatever the machine running the test is: as its own cgroup file says. */
	assert_int_equal(fsutil_read_file("/proc/self/cgroup", 1 << 16, &cgroup, &len), 0);
	in = procinfo_parse_cgroup(cgroup, len, member, sizeof(member));
	assert_true(in >= 0);
	assert_int_equal(p.in_container, in == 1);
	assert_string_equal(p.member, member);
	/* Not a process. */
	assert_int_equal(procinfo_read(0, &p), -EINVAL);
	assert_int_equal(procinfo_read(-1, &p), -EINVAL);
}

/* The stat comm of pid 2, kthreadd on a host's pid namespace. */
static bool is_kthreadd(void)
{
	__do_free char *stat = NULL;

	return fsutil_read_file("/proc/2/stat", 4096, &stat, NULL) == 0 && strstr(stat, "(kthreadd)");
}

static void kill_and_reap(pid_t pid)
{
	if (pid > 0) {
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
}

static void test_read_child(void **state)
{
	struct procinfo p;
	pid_t child;
	time_t now;

	(void)state;
	if (access("/bin/sleep", X_OK) != 0) {
		fprintf(stderr, "test_read_child: no /bin/sleep, skipped\n");
		skip();
	}
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execl("/bin/sleep", "sleep", "30", (char *)NULL);
		_exit(127);
	}
	/* Until the child has run exec. */
	for (int i = 0; i < 200; i++) {
		assert_int_equal(procinfo_read(child, &p), 0);
		if (strcmp(p.command, "sleep 30") == 0)
			break;
		usleep(10000);
	}
	now = time(NULL);
	kill_and_reap(child);
	assert_string_equal(p.command, "sleep 30");
	assert_int_equal(p.pid, child);
	assert_int_equal(p.ns_pid, child);
	assert_true(p.started <= now + 1 && p.started >= now - 10);
	/* Gone, reaped. */
	assert_int_equal(procinfo_read(child, &p), -ESRCH);
	assert_int_equal(p.pid, 0);
	/* A kernel thread has no command line. */
	if (is_kthreadd()) {
		assert_int_equal(procinfo_read(2, &p), 0);
		assert_string_equal(p.command, "[kthreadd]");
		assert_false(p.in_container);
	}
}

static char pidns_stack[256 * 1024] __attribute__((aligned(16)));

static int pidns_child(void *arg)
{
	(void)arg;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	for (;;)
		pause();
	return 0;
}

/* As root: a child that is pid 1 of a pid namespace of its own. */
static void test_read_pidns(void **state)
{
	struct procinfo p;
	pid_t child;

	(void)state;
	if (!tu_have_root("test_read_pidns"))
		skip();
	child = clone(pidns_child, pidns_stack + sizeof(pidns_stack), CLONE_NEWPID | SIGCHLD, NULL);
	if (child < 0 && (errno == EPERM || errno == EINVAL)) {
		fprintf(stderr, "test_read_pidns: no new pid namespace here (%s), skipped\n", strerror(errno));
		skip();
	}
	assert_true(child > 0);
	assert_int_equal(procinfo_read(child, &p), 0);
	kill_and_reap(child);
	assert_int_equal(p.pid, child);
	assert_int_equal(p.ns_pid, 1);
	assert_true(p.pid != p.ns_pid);
}

/* ---- the host ------------------------------------------------------------ */

static void burn_cpu(long ms)
{
	struct timespec start, now;
	volatile unsigned long sink = 0;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &start);
	do {
		for (int i = 0; i < 100000; i++)
			sink += (unsigned long)i;
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
	} while ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 < ms);
	(void)sink;   /* read only to keep the loop */
}

static void assert_host_sane(const struct host_stats *s)
{
	assert_true(s->ncpus > 0);
	assert_true(s->ncpus <= 65536);
	assert_true(s->mem_total > 0);
	assert_true(s->mem_available <= s->mem_total);
	for (int i = 0; i < 3; i++)
		assert_true(s->load[i] >= 0);
	assert_true(s->disk_total > 0);
	assert_true(s->disk_used <= s->disk_total);
	assert_true(s->cpu_percent >= 0 && s->cpu_percent <= 100);
	assert_true(s->disk_read_rate >= 0 && s->disk_write_rate >= 0);
	assert_true(s->net_rx_rate >= 0 && s->net_tx_rate >= 0);
}

static void test_host(void **state)
{
	struct procinfo_host *h = NULL;
	struct host_stats first, second;

	(void)state;
	assert_int_equal(procinfo_host_open("/nonexistent-gpubox-procinfo", &h), -ENOENT);
	assert_null(h);
	assert_int_equal(procinfo_host_open("/", &h), 0);
	assert_int_equal(procinfo_host_read(h, &first), 0);
	assert_host_sane(&first);
	/* The first reading has nothing to compare with. */
	assert_true(first.cpu_percent == 0);
	assert_true(first.disk_read_rate == 0 && first.disk_write_rate == 0);
	assert_true(first.net_rx_rate == 0 && first.net_tx_rate == 0);
	burn_cpu(200);
	assert_int_equal(procinfo_host_read(h, &second), 0);
	procinfo_host_close(h);
	assert_host_sane(&second);
	/* This process kept a CPU busy, of ncpus. */
	assert_true(second.cpu_percent > 0);
	assert_true(second.disk_read_bytes >= first.disk_read_bytes);
	assert_true(second.disk_write_bytes >= first.disk_write_bytes);
	assert_int_equal(second.ncpus, first.ncpus);
	assert_true(second.mem_total == first.mem_total);
	assert_int_equal(second.ncpus, (unsigned)sysconf(_SC_NPROCESSORS_ONLN));
	procinfo_host_close(NULL);
}

/* ---- a container's cgroup ----------------------------------------------- */

struct cgroup_fixture {
	char name[32];
	char dirs[2][128];
	size_t ndirs;
	pid_t child;
	int go[2], ready[2];
};

static bool cgroup_unified(void)
{
	return access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0;
}

static int cgroup_setup(void **state)
{
	struct cgroup_fixture *f = calloc(1, sizeof(*f));
	uint32_t random = 0;

	if (!f)
		return -1;
	f->go[0] = f->go[1] = f->ready[0] = f->ready[1] = -EBADF;
	if (getrandom(&random, sizeof(random), 0) != sizeof(random))
		random = (uint32_t)getpid() ^ (uint32_t)time(NULL);
	snprintf(f->name, sizeof(f->name), "gbxt%08x", random);
	if (cgroup_unified()) {
		snprintf(f->dirs[0], sizeof(f->dirs[0]), "/sys/fs/cgroup/lxc.payload.%s", f->name);
		f->ndirs = 1;
	} else {
		snprintf(f->dirs[0], sizeof(f->dirs[0]), "/sys/fs/cgroup/cpuacct/lxc.payload.%s", f->name);
		snprintf(f->dirs[1], sizeof(f->dirs[1]), "/sys/fs/cgroup/memory/lxc.payload.%s", f->name);
		f->ndirs = 2;
	}
	*state = f;
	return 0;
}

/* Whatever the test did: the child killed, its cgroups removed. */
static int cgroup_teardown(void **state)
{
	struct cgroup_fixture *f = *state;

	kill_and_reap(f->child);
	for (int i = 0; i < 2; i++) {
		if (f->go[i] >= 0)
			close(f->go[i]);
		if (f->ready[i] >= 0)
			close(f->ready[i]);
	}
	for (size_t i = 0; i < f->ndirs; i++)
		/* An exited task may leave its cgroup busy for a moment. */
		for (int tries = 0; tries < 100 && rmdir(f->dirs[i]) < 0 && errno == EBUSY; tries++)
			usleep(10000);
	for (size_t i = 0; i < f->ndirs; i++)
		if (access(f->dirs[i], F_OK) == 0)
			fprintf(stderr, "test_procinfo: could not remove %s\n", f->dirs[i]);
	free(f);
	return 0;
}

/* The child: waits to be moved into the cgroup, then uses memory and CPU
 * there (charges stay where they were made), says so, and waits. */
static void cgroup_child(struct cgroup_fixture *f)
{
	size_t size = 32 << 20;
	char c;
	char *mem;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (read(f->go[0], &c, 1) != 1)
		_exit(1);
	mem = malloc(size);
	if (!mem)
		_exit(2);
	memset(mem, 0x5a, size);
	/* The pages escape: the compiler may not drop the stores. */
	__asm__ volatile("" : : "r"(mem) : "memory");
	burn_cpu(100);
	if (write(f->ready[1], "r", 1) != 1)
		_exit(3);
	for (;;)
		pause();
}

static void write_text(const char *dir, const char *file, const char *text)
{
	char path[256];

	tu_join(path, sizeof(path), dir, file);
	__do_close int fd = open(path, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
}

static void test_container(void **state)
{
	struct cgroup_fixture *f = *state;
	struct container_stats c = { .cpu_ns = 1, .mem_used = 1, .mem_limit = 1, .pids = 1, .oom_kills = 1 };
	struct procinfo p;
	char pid[32], path[256];
	const char *limit_file;
	char c1;

	if (!tu_have_root("test_container"))
		skip();
	/* Refused before any path is made. */
	assert_int_equal(procinfo_container("../../etc", &c), -EINVAL);
	assert_int_equal(procinfo_container("", &c), -EINVAL);
	assert_int_equal(procinfo_container("Alice", &c), -EINVAL);
	assert_int_equal(procinfo_container("a/b", &c), -EINVAL);
	assert_true(c.cpu_ns == 0 && c.mem_used == 0 && c.mem_limit == 0 && c.pids == 0 && c.oom_kills == 0);
	assert_int_equal(procinfo_container(f->name, &c), -ENOENT);

	for (size_t i = 0; i < f->ndirs; i++) {
		if (mkdir(f->dirs[i], 0755) < 0 && (errno == EROFS || errno == EACCES || errno == EPERM)) {
			fprintf(stderr, "test_procinfo: cannot create cgroups here (%s), skipped\n",
				strerror(errno));
			skip();
		}
		assert_true(access(f->dirs[i], F_OK) == 0);
	}
	assert_int_equal(pipe2(f->go, O_CLOEXEC), 0);
	assert_int_equal(pipe2(f->ready, O_CLOEXEC), 0);
	f->child = fork();
	assert_true(f->child >= 0);
	if (f->child == 0)
		cgroup_child(f);
	close(f->go[0]);
	close(f->ready[1]);
	f->go[0] = f->ready[1] = -EBADF;
	snprintf(pid, sizeof(pid), "%d", (int)f->child);
	for (size_t i = 0; i < f->ndirs; i++)
		write_text(f->dirs[i], "cgroup.procs", pid);
	assert_int_equal(write(f->go[1], "g", 1), 1);
	assert_int_equal(read(f->ready[0], &c1, 1), 1);

	assert_int_equal(procinfo_read(f->child, &p), 0);
	assert_true(p.in_container);
	assert_string_equal(p.member, f->name);
	assert_int_equal(procinfo_container(f->name, &c), 0);
	assert_true(c.cpu_ns >= 50 * 1000000ULL);
	assert_true(c.mem_limit == 0);
	/* Memory is known where the memory controller is on for the cgroup. */
	limit_file = cgroup_unified() ? "memory.max" : "memory.limit_in_bytes";
	tu_join(path, sizeof(path), f->dirs[f->ndirs - 1], limit_file);
	if (access(path, F_OK) == 0) {
		assert_true(c.mem_used >= 16 << 20);
		write_text(f->dirs[f->ndirs - 1], limit_file, "1073741824");
		assert_int_equal(procinfo_container(f->name, &c), 0);
		assert_true(c.mem_limit == 1073741824);
	} else {
		fprintf(stderr, "test_procinfo: no memory controller on %s, memory not checked\n", f->dirs[0]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_cgroup),
		cmocka_unit_test(test_parse_cgroup_refused),
		cmocka_unit_test(test_parse_nspid),
		cmocka_unit_test(test_parse_stat),
		cmocka_unit_test(test_parse_stat_refused),
		cmocka_unit_test(test_format_cmdline),
		cmocka_unit_test(test_parse_cpu),
		cmocka_unit_test(test_parse_meminfo),
		cmocka_unit_test(test_parse_loadavg),
		cmocka_unit_test(test_parse_netdev),
		cmocka_unit_test(test_parse_diskstats),
		cmocka_unit_test(test_read_self),
		cmocka_unit_test(test_read_child),
		cmocka_unit_test(test_read_pidns),
		cmocka_unit_test(test_host),
		cmocka_unit_test_setup_teardown(test_container, cgroup_setup, cgroup_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
