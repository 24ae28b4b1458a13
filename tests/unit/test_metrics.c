/* SPDX-License-Identifier: MIT */
/*
 * prometheus_render() on samples built by hand: exact lines, values the
 * driver did not give left out, no pid label ever, show_members off,
 * label escaping, and every line checked against the exposition grammar.
 * Then the HTTP server on a free loopback port, spoken to over a plain
 * socket: the bearer token, the routes, 503 before the first sample, 200
 * after one, and the addresses and tokens it refuses to start with.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>
#include <cmocka.h>

#include "agent.h"
#include "gpu/gpu.h"
#include "monitor/monitor.h"
#include "cleanup.h"
#include "config.h"
#include "strutil.h"
#include "testutil.h"

#include "banned.h"

#define GIB (1024ull * 1024 * 1024)
#define MIB (1024ull * 1024)
#define TEST_TOKEN "s3cret-token-0123456789abcdef"

/* ---- samples ----------------------------------------------------------- */

static struct nvml_gpu test_gpus[3];
static struct sample_process test_procs[6];
static struct sample_container test_containers[2];

static void test_gpu(struct nvml_gpu *g, unsigned index, const char *uuid, const char *name)
{
	memset(g, 0, sizeof(*g));
	g->index = index;
	g->minor = index;
	snprintf(g->uuid, sizeof(g->uuid), "%s", uuid);
	snprintf(g->name, sizeof(g->name), "%s", name);
}

static void test_proc(struct sample_process *p, unsigned gpu, pid_t pid, const char *member,
		      uint64_t mem)
{
	memset(p, 0, sizeof(*p));
	p->gpu = gpu;
	p->pid = pid;
	p->ns_pid = member[0] ? 100 + pid % 7 : pid;
	snprintf(p->member, sizeof(p->member), "%s", member);
	snprintf(p->command, sizeof(p->command), "python train.py");
	p->mem_used = mem;
	p->sm_util = -1;
}

/*
 * GPU 0 answers everything; GPU 1 is in MIG mode (no utilisation) and
 * has no temperature sensor; GPU 2 fell off the bus.  alice runs two
 * processes on GPU 0; bob one on GPU 0 and one on GPU 1 whose memory the
 * driver does not say; the host runs one on GPU 0.
 */
static struct sample test_sample(void)
{
	struct sample s;

	memset(&s, 0, sizeof(s));
	s.time_ms = 1700000000250LL;
	snprintf(s.server, sizeof(s.server), "s");
	s.gpu_ok = true;
	snprintf(s.driver_version, sizeof(s.driver_version), "580.65.06");

	test_gpu(&test_gpus[0], 0, "GPU-a", "Fake H100");
	test_gpus[0].util_gpu = 35;
	test_gpus[0].util_mem = 12;
	test_gpus[0].mem_total = 80 * GIB;
	test_gpus[0].mem_used = 10 * GIB + 512 * 1024;   /* a part of a MiB is not counted */
	test_gpus[0].temperature = 61;
	test_gpus[0].power_mw = 250500;
	test_gpu(&test_gpus[1], 1, "GPU-b", "Fake H100");
	test_gpus[1].mig = true;
	test_gpus[1].util_gpu = -1;
	test_gpus[1].util_mem = -1;
	test_gpus[1].mem_total = 80 * GIB;
	test_gpus[1].mem_used = 0;
	test_gpus[1].temperature = -1;
	test_gpus[1].power_mw = 70000;
	test_gpu(&test_gpus[2], 2, "GPU-c", "Fake H100");
	test_gpus[2].lost = true;
	test_gpus[2].util_gpu = 99;       /* stale numbers of a lost GPU are not shown */
	test_gpus[2].temperature = 80;
	test_gpus[2].power_mw = -1;
	s.gpus = test_gpus;
	s.ngpus = 3;

	test_proc(&test_procs[0], 0, 4242, "alice", GIB);
	test_proc(&test_procs[1], 0, 4243, "alice", 512 * MIB);
	test_proc(&test_procs[2], 0, 5001, "bob", 2 * GIB);
	test_proc(&test_procs[3], 1, 5002, "bob", UINT64_MAX);
	test_proc(&test_procs[4], 0, 777, "", 256 * MIB);
	s.procs = test_procs;
	s.nprocs = 5;

	memset(test_containers, 0, sizeof(test_containers));
	snprintf(test_containers[0].member, sizeof(test_containers[0].member), "alice");
	test_containers[0].cpu_ns = 12500000000ull;
	test_containers[0].mem_used = 3 * GIB;
	test_containers[0].mem_limit = 16 * GIB;
	test_containers[0].pids = 321;
	test_containers[0].oom_kills = 2;
	snprintf(test_containers[1].member, sizeof(test_containers[1].member), "bob");
	test_containers[1].cpu_ns = 1;
	test_containers[1].mem_used = 1000;
	s.containers = test_containers;
	s.ncontainers = 2;

	s.host.ncpus = 2;
	s.host.cpu_percent = 12.5;
	s.host.mem_total = 8 * GIB;
	s.host.mem_available = 5 * GIB;
	s.host.load[0] = 0.5;
	s.host.load[1] = 0.25;
	s.host.load[2] = 1;
	s.host.disk_total = 100 * GIB;
	s.host.disk_used = 40 * GIB;
	s.host.disk_read_bytes = 123456789012ull;
	s.host.disk_write_bytes = 42;
	s.host.net_rx_bytes = 1000;
	s.host.net_tx_bytes = 2000;
	return s;
}

/* ---- checks on the text -------------------------------------------------- */

/* text holds line as a whole line. */
static bool test_has_line(const char *text, const char *line)
{
	size_t len = strlen(line);

	for (const char *p = strstr(text, line); p; p = strstr(p + 1, line))
		if ((p == text || p[-1] == '\n') && p[len] == '\n')
			return true;
	return false;
}

#define assert_line(text, line)                                                  \
	do {                                                                     \
		if (!test_has_line((text), (line)))                              \
			fail_msg("missing line: %s\n--- in ---\n%s", (line), (text)); \
	} while (0)

#define assert_no_line(text, line)                                               \
	do {                                                                     \
		if (test_has_line((text), (line)))                               \
			fail_msg("unexpected line: %s", (line));                 \
	} while (0)

static bool test_name_char(char c, bool first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
	       (!first && c >= '0' && c <= '9');
}

/* A metric or label name at *p; advances past it.  Labels take no ':'. */
static bool test_parse_name(const char **p, bool label, char *name, size_t len)
{
	const char *start = *p;

	if (!test_name_char(**p, true) || (label && **p == ':'))
		return false;
	while (test_name_char(**p, false) && !(label && **p == ':'))
		(*p)++;
	if ((size_t)(*p - start) >= len)
		return false;
	memcpy(name, start, (size_t)(*p - start));
	name[*p - start] = '\0';
	return true;
}

/* "label=\"value\"" with only \\, \" and \n as escapes; no raw newline. */
static bool test_parse_label(const char **p, char *key, size_t keylen)
{
	if (!test_parse_name(p, true, key, keylen) || **p != '=' || (*p)[1] != '"')
		return false;
	for (*p += 2; **p != '"'; (*p)++) {
		if (**p == '\0' || **p == '\n')
			return false;
		if (**p == '\\') {
			(*p)++;
			if (**p != '\\' && **p != '"' && **p != 'n')
				return false;
		}
	}
	(*p)++;
	return true;
}

static bool test_parse_value(const char *p)
{
	char *end;

	if (!strcmp(p, "NaN") || !strcmp(p, "+Inf") || !strcmp(p, "-Inf"))
		return true;
	if (!*p)
		return false;
	errno = 0;
	strtod(p, &end);
	return errno == 0 && *end == '\0';
}

/* One sample line: name{labels} value, no timestamp, no label twice. */
static bool test_parse_sample(const char *line, char *name, size_t namelen)
{
	char keys[16][64];
	size_t nkeys = 0;
	const char *p = line;

	if (!test_parse_name(&p, false, name, namelen))
		return false;
	if (*p == '{') {
		p++;
		while (*p != '}') {
			if (nkeys == ARRAY_SIZE(keys) || !test_parse_label(&p, keys[nkeys], sizeof(keys[0])))
				return false;
			for (size_t i = 0; i < nkeys; i++)
				if (!strcmp(keys[i], keys[nkeys]))
					return false;
			nkeys++;
			if (*p == ',')
				p++;
			else if (*p != '}')
				return false;
		}
		p++;
	}
	if (*p != ' ')
		return false;
	return test_parse_value(p + 1);
}

/*
 * The whole text against format 0.0.4: "# HELP name text" and "# TYPE name
 * gauge|counter" before a family's samples, each family in one group,
 * counters named *_total, every other line a sample of the current family.
 */
static void test_check_exposition(const char *text)
{
	__do_free char *copy = strdup(text);
	char family[128] = "", seen[4096] = " ", name[128];
	char *save = NULL;

	assert_non_null(copy);
	assert_true(text[0] && text[strlen(text) - 1] == '\n');
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char type[16], probe[140];

		if (str_has_prefix(line, "# HELP ")) {
			const char *p = line + 7;

			if (!test_parse_name(&p, false, name, sizeof(name)) || *p != ' ')
				fail_msg("bad HELP line: %s", line);
			snprintf(probe, sizeof(probe), " %s ", name);
			if (strstr(seen, probe))
				fail_msg("family %s comes twice", name);
			snprintf(family, sizeof(family), "%s", name);
			{ size_t l = strlen(seen); snprintf(seen + l, sizeof(seen) - l, "%s ", name); }
			continue;
		}
		if (str_has_prefix(line, "# TYPE ")) {
			if (sscanf(line, "# TYPE %127s %15s", name, type) != 2 || strcmp(name, family))
				fail_msg("bad TYPE line: %s", line);
			if (strcmp(type, "gauge") && strcmp(type, "counter"))
				fail_msg("bad type: %s", line);
			if (!strcmp(type, "counter") &&
			    (strlen(name) < 6 || strcmp(name + strlen(name) - 6, "_total")))
				fail_msg("counter without _total: %s", line);
			continue;
		}
		if (line[0] == '#')
			fail_msg("unknown comment: %s", line);
		if (!test_parse_sample(line, name, sizeof(name)))
			fail_msg("not a sample line: \"%s\"", line);
		if (strcmp(name, family))
			fail_msg("sample outside its family %s: %s", family, line);
	}
}

/* ---- render ------------------------------------------------------------------ */

static void test_render_gpus(void **state)
{
	struct sample s = test_sample();
	__do_free char *text = prometheus_render(&s, true);

	(void)state;
	assert_non_null(text);
	test_check_exposition(text);
	assert_line(text, "# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).");
	assert_line(text, "# TYPE DCGM_FI_DEV_GPU_UTIL gauge");
	assert_line(text, "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",uuid=\"GPU-a\",server=\"s\",modelName=\"Fake H100\"} 35");
	assert_line(text, "DCGM_FI_DEV_MEM_COPY_UTIL{gpu=\"0\",uuid=\"GPU-a\",server=\"s\",modelName=\"Fake H100\"} 12");
	assert_line(text, "DCGM_FI_DEV_FB_USED{gpu=\"0\",uuid=\"GPU-a\",server=\"s\",modelName=\"Fake H100\"} 10240");
	assert_line(text, "DCGM_FI_DEV_FB_FREE{gpu=\"0\",uuid=\"GPU-a\",server=\"s\",modelName=\"Fake H100\"} 71679");
	assert_line(text, "DCGM_FI_DEV_GPU_TEMP{gpu=\"0\",uuid=\"GPU-a\",server=\"s\",modelName=\"Fake H100\"} 61");
	assert_line(text, "DCGM_FI_DEV_POWER_USAGE{gpu=\"0\",uuid=\"GPU-a\",server=\"s\",modelName=\"Fake H100\"} 250.5");
	/* GPU 1: unknown utilisation and temperature left out, never 0. */
	assert_null(strstr(text, "DCGM_FI_DEV_GPU_UTIL{gpu=\"1\""));
	assert_null(strstr(text, "DCGM_FI_DEV_MEM_COPY_UTIL{gpu=\"1\""));
	assert_null(strstr(text, "DCGM_FI_DEV_GPU_TEMP{gpu=\"1\""));
	assert_line(text, "DCGM_FI_DEV_FB_USED{gpu=\"1\",uuid=\"GPU-b\",server=\"s\",modelName=\"Fake H100\"} 0");
	assert_line(text, "DCGM_FI_DEV_FB_FREE{gpu=\"1\",uuid=\"GPU-b\",server=\"s\",modelName=\"Fake H100\"} 81920");
	assert_line(text, "DCGM_FI_DEV_POWER_USAGE{gpu=\"1\",uuid=\"GPU-b\",server=\"s\",modelName=\"Fake H100\"} 70");
	/* GPU 2 is lost: said so, and no DCGM reading of it. */
	assert_null(strstr(text, "DCGM_FI_DEV_GPU_UTIL{gpu=\"2\""));
	assert_null(strstr(text, "DCGM_FI_DEV_GPU_TEMP{gpu=\"2\""));
	assert_null(strstr(text, "DCGM_FI_DEV_FB_USED{gpu=\"2\""));
	assert_line(text, "gpubox_gpu_lost{gpu=\"0\",uuid=\"GPU-a\",server=\"s\"} 0");
	assert_line(text, "gpubox_gpu_lost{gpu=\"2\",uuid=\"GPU-c\",server=\"s\"} 1");
	assert_line(text, "gpubox_nvml_up{server=\"s\"} 1");
	assert_line(text, "gpubox_gpu_driver_info{server=\"s\",driver_version=\"580.65.06\"} 1");
	assert_line(text, "gpubox_sample_timestamp_seconds{server=\"s\"} 1700000000.25");
}

static void test_render_members(void **state)
{
	struct sample s = test_sample();
	__do_free char *text = prometheus_render(&s, true);

	(void)state;
	assert_non_null(text);
	assert_line(text, "# TYPE gpubox_member_gpu_memory_bytes gauge");
	assert_line(text, "gpubox_member_gpu_memory_bytes{member=\"alice\",gpu=\"0\",uuid=\"GPU-a\",server=\"s\"} 1610612736");
	assert_line(text, "gpubox_member_gpu_processes{member=\"alice\",gpu=\"0\",uuid=\"GPU-a\",server=\"s\"} 2");
	assert_line(text, "gpubox_member_gpu_memory_bytes{member=\"bob\",gpu=\"0\",uuid=\"GPU-a\",server=\"s\"} 2147483648");
	assert_line(text, "gpubox_member_gpu_processes{member=\"bob\",gpu=\"1\",uuid=\"GPU-b\",server=\"s\"} 1");
	/* bob's process on GPU 1 has no known memory: no line, not 0. */
	assert_null(strstr(text, "gpubox_member_gpu_memory_bytes{member=\"bob\",gpu=\"1\""));
	/* Sorted by GPU then member. */
	assert_true(strstr(text, "processes{member=\"alice\",gpu=\"0\"") <
		    strstr(text, "processes{member=\"bob\",gpu=\"0\""));
	assert_true(strstr(text, "processes{member=\"bob\",gpu=\"0\"") <
		    strstr(text, "processes{member=\"bob\",gpu=\"1\""));
	assert_line(text, "gpubox_gpu_members{gpu=\"0\",uuid=\"GPU-a\",server=\"s\"} 2");
	assert_line(text, "gpubox_gpu_members{gpu=\"1\",uuid=\"GPU-b\",server=\"s\"} 1");
	/* The host's own processes, apart from the members'. */
	assert_line(text, "gpubox_host_gpu_memory_bytes{gpu=\"0\",uuid=\"GPU-a\",server=\"s\"} 268435456");
	assert_line(text, "gpubox_host_gpu_processes{gpu=\"0\",uuid=\"GPU-a\",server=\"s\"} 1");
	assert_line(text, "gpubox_host_gpu_memory_bytes{gpu=\"1\",uuid=\"GPU-b\",server=\"s\"} 0");
	assert_line(text, "gpubox_host_gpu_processes{gpu=\"1\",uuid=\"GPU-b\",server=\"s\"} 0");
	assert_null(strstr(text, "member=\"\""));
	/* Never a pid, as a label or otherwise. */
	assert_null(strstr(text, "pid"));
	assert_null(strstr(text, "4242"));
	assert_null(strstr(text, "python"));
}

static void test_render_idle(void **state)
{
	struct sample s = test_sample();
	__do_free char *text = NULL, *hidden = NULL;

	(void)state;
	test_procs[0].idle_seconds = 40;
	test_procs[1].idle_seconds = 7300;
	test_procs[1].idle = true;
	text = prometheus_render(&s, true);
	hidden = prometheus_render(&s, false);
	test_procs[0].idle_seconds = test_procs[1].idle_seconds = 0;
	test_procs[1].idle = false;
	assert_non_null(text);
	assert_non_null(hidden);
	test_check_exposition(text);
	assert_line(text, "# TYPE gpubox_gpu_idle_seconds gauge");
	/* The longest of the member's processes on the GPU; 0 for a busy one. */
	assert_line(text, "gpubox_gpu_idle_seconds{member=\"alice\",gpu=\"0\",uuid=\"GPU-a\",server=\"s\"} 7300");
	assert_line(text, "gpubox_gpu_idle_seconds{member=\"bob\",gpu=\"0\",uuid=\"GPU-a\",server=\"s\"} 0");
	assert_line(hidden, "gpubox_gpu_idle_seconds{gpu=\"0\",uuid=\"GPU-a\",server=\"s\"} 7300");
	assert_line(hidden, "gpubox_gpu_idle_seconds{gpu=\"1\",uuid=\"GPU-b\",server=\"s\"} 0");
	assert_int_equal(tu_count_substr(hidden, "gpubox_gpu_idle_seconds{member="), 0);
}

static void test_render_host(void **state)
{
	struct sample s = test_sample();
	__do_free char *text = prometheus_render(&s, true);

	(void)state;
	assert_non_null(text);
	assert_line(text, "gpubox_host_cpus{server=\"s\"} 2");
	assert_line(text, "gpubox_host_cpu_percent{server=\"s\"} 12.5");
	assert_line(text, "gpubox_host_memory_total_bytes{server=\"s\"} 8589934592");
	assert_line(text, "gpubox_host_memory_available_bytes{server=\"s\"} 5368709120");
	assert_line(text, "gpubox_host_load1{server=\"s\"} 0.5");
	assert_line(text, "gpubox_host_load5{server=\"s\"} 0.25");
	assert_line(text, "gpubox_host_load15{server=\"s\"} 1");
	assert_line(text, "gpubox_host_disk_total_bytes{server=\"s\"} 107374182400");
	assert_line(text, "gpubox_host_disk_used_bytes{server=\"s\"} 42949672960");
	assert_line(text, "# TYPE gpubox_host_disk_read_bytes_total counter");
	assert_line(text, "gpubox_host_disk_read_bytes_total{server=\"s\"} 123456789012");
	assert_line(text, "gpubox_host_disk_written_bytes_total{server=\"s\"} 42");
	assert_line(text, "# TYPE gpubox_host_network_receive_bytes_total counter");
	assert_line(text, "gpubox_host_network_receive_bytes_total{server=\"s\"} 1000");
	assert_line(text, "gpubox_host_network_transmit_bytes_total{server=\"s\"} 2000");
	assert_line(text, "# TYPE gpubox_container_cpu_seconds_total counter");
	assert_line(text, "gpubox_container_cpu_seconds_total{member=\"alice\",server=\"s\"} 12.5");
	assert_line(text, "gpubox_container_cpu_seconds_total{member=\"bob\",server=\"s\"} 1e-09");
	assert_line(text, "gpubox_container_memory_bytes{member=\"alice\",server=\"s\"} 3221225472");
	assert_line(text, "gpubox_container_memory_bytes{member=\"bob\",server=\"s\"} 1000");
	assert_line(text, "gpubox_container_memory_limit_bytes{member=\"alice\",server=\"s\"} 17179869184");
	/* bob has no limit: no line rather than 0. */
	assert_null(strstr(text, "gpubox_container_memory_limit_bytes{member=\"bob\""));
	assert_line(text, "gpubox_member_memory_limit_bytes{member=\"alice\",server=\"s\"} 17179869184");
	assert_null(strstr(text, "gpubox_member_memory_limit_bytes{member=\"bob\""));
	assert_line(text, "gpubox_member_processes{member=\"alice\",server=\"s\"} 321");
	assert_line(text, "# TYPE gpubox_member_oom_kills_total counter");
	assert_line(text, "gpubox_member_oom_kills_total{member=\"alice\",server=\"s\"} 2");
	assert_line(text, "gpubox_member_oom_kills_total{member=\"bob\",server=\"s\"} 0");
}

static void test_render_hidden_members(void **state)
{
	struct sample s = test_sample();
	__do_free char *text = prometheus_render(&s, false);

	(void)state;
	assert_non_null(text);
	test_check_exposition(text);
	/* Summed per GPU, nobody named. */
	assert_line(text, "gpubox_member_gpu_memory_bytes{gpu=\"0\",uuid=\"GPU-a\",server=\"s\"} 3758096384");
	assert_line(text, "gpubox_member_gpu_processes{gpu=\"0\",uuid=\"GPU-a\",server=\"s\"} 3");
	assert_line(text, "gpubox_member_gpu_processes{gpu=\"1\",uuid=\"GPU-b\",server=\"s\"} 1");
	assert_null(strstr(text, "gpubox_member_gpu_memory_bytes{gpu=\"1\""));
	assert_line(text, "gpubox_gpu_members{gpu=\"0\",uuid=\"GPU-a\",server=\"s\"} 2");
	assert_line(text, "gpubox_gpu_members{gpu=\"1\",uuid=\"GPU-b\",server=\"s\"} 1");
	assert_null(strstr(text, "gpu{member"));
	assert_int_equal(tu_count_substr(text, "gpubox_member_gpu_memory_bytes{member="), 0);
	assert_int_equal(tu_count_substr(text, "gpubox_member_gpu_processes{member="), 0);
	/* Lost GPU: nothing known of its users. */
	assert_null(strstr(text, "gpubox_member_gpu_processes{gpu=\"2\""));
	/* The containers are the members' own on this server: still labelled. */
	assert_line(text, "gpubox_container_memory_bytes{member=\"alice\",server=\"s\"} 3221225472");
	assert_null(strstr(text, "pid"));
}

static void test_render_escaping(void **state)
{
	struct sample s = test_sample();
	__do_free char *text = NULL;

	(void)state;
	snprintf(s.server, sizeof(s.server), "lab\\1 \"east\"\nrack");
	snprintf(test_gpus[0].name, sizeof(test_gpus[0].name), "Fake \"X\"\\GPU\n2\t\xff");
	text = prometheus_render(&s, true);
	assert_non_null(text);
	test_check_exposition(text);
	assert_line(text, "gpubox_nvml_up{server=\"lab\\\\1 \\\"east\\\"\\nrack\"} 1");
	assert_line(text, "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",uuid=\"GPU-a\",server=\"lab\\\\1 \\\"east\\\"\\nrack\",modelName=\"Fake \\\"X\\\"\\\\GPU\\n2??\"} 35");
}

static void test_render_no_nvml(void **state)
{
	struct sample s;
	__do_free char *text = NULL;

	(void)state;
	memset(&s, 0, sizeof(s));
	snprintf(s.server, sizeof(s.server), "s");
	snprintf(s.gpu_note, sizeof(s.gpu_note), "no driver");
	s.time_ms = 1000;
	text = prometheus_render(&s, true);
	assert_non_null(text);
	test_check_exposition(text);
	assert_line(text, "gpubox_nvml_up{server=\"s\"} 0");
	assert_line(text, "gpubox_gpu_driver_info{server=\"s\",driver_version=\"\"} 1");
	assert_line(text, "gpubox_sample_timestamp_seconds{server=\"s\"} 1");
	assert_null(strstr(text, "DCGM_"));
	assert_null(strstr(text, "gpubox_gpu_lost"));
	/* Host unread (no CPU counted): none of its gauges. */
	assert_null(strstr(text, "gpubox_host_load1"));
	/* No family header without a sample under it. */
	assert_null(strstr(text, "# TYPE gpubox_container_memory_bytes"));
}

static void test_render_values(void **state)
{
	struct sample s = test_sample();
	__do_free char *text = NULL;

	(void)state;
	s.host.cpu_percent = NAN;
	s.host.load[0] = 1.0 / 3.0;
	s.host.disk_read_bytes = UINT64_MAX;
	text = prometheus_render(&s, true);
	assert_non_null(text);
	test_check_exposition(text);
	/* An unknown CPU share is left out; a third reads back exactly. */
	assert_null(strstr(text, "gpubox_host_cpu_percent{"));
	assert_line(text, "gpubox_host_load1{server=\"s\"} 0.33333333333333331");
	assert_line(text, "gpubox_host_disk_read_bytes_total{server=\"s\"} 18446744073709551615");
}

/* Many processes: the grouping stays right and the text valid. */
static void test_render_many(void **state)
{
	struct sample s = test_sample();
	__do_free struct sample_process *procs = calloc(2000, sizeof(*procs));
	__do_free char *text = NULL;
	char line[200];

	(void)state;
	assert_non_null(procs);
	for (size_t i = 0; i < 2000; i++) {
		char member[16];

		snprintf(member, sizeof(member), "m%zu", i % 50);
		test_proc(&procs[i], (unsigned)(i % 2), (pid_t)(10000 + i), member, MIB);
	}
	s.procs = procs;
	s.nprocs = 2000;
	text = prometheus_render(&s, true);
	assert_non_null(text);
	test_check_exposition(text);
	snprintf(line, sizeof(line),
		 "gpubox_member_gpu_processes{member=\"m7\",gpu=\"1\",uuid=\"GPU-b\",server=\"s\"} 40");
	assert_line(text, line);
	assert_int_equal(tu_count_substr(text, "gpubox_member_gpu_processes{"), 50);
	assert_line(text, "gpubox_gpu_members{gpu=\"0\",uuid=\"GPU-a\",server=\"s\"} 25");
}

/* ---- the server -------------------------------------------------------------- */

struct test_server {
	char dir[128];
	char token_path[256];
	uint16_t port;
	struct agent agent;
	struct httpd *httpd;
	struct collector *collector;
};

/* A port free right now on loopback (the kernel's choice for port 0). */
static uint16_t test_free_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	__do_close int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	return ntohs(sin.sin_port);
}

static int test_server_setup(void **state)
{
	struct test_server *t = calloc(1, sizeof(*t));

	if (!t || tu_make_tempdir(t->dir, sizeof(t->dir), "/tmp/gpubox-test-metrics-XXXXXX") < 0) {
		free(t);
		return -1;
	}
	tu_join(t->token_path, sizeof(t->token_path), t->dir, "token");
	config_set_defaults(&t->agent.cfg);
	t->port = test_free_port();
	*state = t;
	return 0;
}

static int test_server_teardown(void **state)
{
	struct test_server *t = *state;

	httpd_stop(t->httpd);
	t->agent.collector = NULL;
	collector_stop(t->collector);
	tu_remove_tempdir(t->dir);
	free(t);
	return 0;
}

static void test_listen(struct test_server *t, const char *host)
{
	snprintf(t->agent.cfg.metrics_listen, sizeof(t->agent.cfg.metrics_listen), "%s:%u", host,
		 t->port);
}

static void test_token_file(struct test_server *t, const char *text, mode_t mode)
{
	assert_int_equal(tu_make_file(t->dir, "token", text, getuid(), getgid(), mode), 0);
	snprintf(t->agent.cfg.metrics_token_file, sizeof(t->agent.cfg.metrics_token_file), "%s",
		 t->token_path);
}

struct test_reply {
	int status;
	char head[2048];
	char body[65536];
	size_t body_len;
};

/* One HTTP/1.1 request over a plain socket; the whole reply, read until
 * the server closes (Connection: close). */
static void test_http(const struct test_server *t, const char *method, const char *path,
		      const char *token, struct test_reply *r)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(t->port) };
	struct timeval timeout = { .tv_sec = 10 };
	__do_close int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	__do_free char *all = malloc(sizeof(r->head) + sizeof(r->body));
	char request[512], auth[256] = "";
	size_t used = 0;
	char *split;
	bool body;

	assert_true(fd >= 0);
	assert_non_null(all);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)), 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	if (token)
		snprintf(auth, sizeof(auth), "Authorization: %s\r\n", token);
	/* POST and GETBODY (a GET) send a body. */
	body = !strcmp(method, "POST") || !strcmp(method, "GETBODY");
	snprintf(request, sizeof(request),
		 "%s %s HTTP/1.1\r\nHost: localhost\r\n%sConnection: close\r\n%s\r\n%s",
		 strcmp(method, "GETBODY") ? method : "GET", path, auth,
		 body ? "Content-Length: 5\r\n" : "", body ? "hello" : "");
	assert_int_equal(fsutil_write_all(fd, request, strlen(request)), 0);
	for (;;) {
		ssize_t n = read(fd, all + used, sizeof(r->head) + sizeof(r->body) - 1 - used);

		assert_true(n >= 0);
		if (n == 0)
			break;
		used += (size_t)n;
		assert_true(used < sizeof(r->head) + sizeof(r->body) - 1);
	}
	all[used] = '\0';
	assert_int_equal(sscanf(all, "HTTP/1.1 %d ", &r->status), 1);
	split = strstr(all, "\r\n\r\n");
	assert_non_null(split);
	assert_true((size_t)(split - all) < sizeof(r->head));
	memcpy(r->head, all, (size_t)(split - all) + 2);
	r->head[split - all + 2] = '\0';
	r->body_len = used - (size_t)(split + 4 - all);
	assert_true(r->body_len < sizeof(r->body));
	memcpy(r->body, split + 4, r->body_len);
	r->body[r->body_len] = '\0';
}

/* The reply's head holds the header line (case as the server sends it). */
static void assert_header(const struct test_reply *r, const char *line)
{
	char want[300];

	snprintf(want, sizeof(want), "\r\n%s\r\n", line);
	if (!strstr(r->head, want))
		fail_msg("header \"%s\" missing in:\n%s", line, r->head);
}

static void test_server_token(void **state)
{
	struct test_server *t = *state;
	struct test_reply *r = calloc(1, sizeof(*r));

	assert_non_null(r);
	test_listen(t, "127.0.0.1");
	test_token_file(t, TEST_TOKEN "\n", 0600);
	assert_int_equal(httpd_start(&t->agent, &t->httpd), 0);
	assert_non_null(t->httpd);

	test_http(t, "GET", "/metrics", NULL, r);
	assert_int_equal(r->status, 401);
	assert_header(r, "WWW-Authenticate: Bearer realm=\"gpubox\"");
	assert_null(strstr(r->body, "gpubox_"));

	test_http(t, "GET", "/metrics", "Bearer wrong-token-0123456789abcdef", r);
	assert_int_equal(r->status, 401);
	test_http(t, "GET", "/metrics", "Bearer " TEST_TOKEN "x", r);
	assert_int_equal(r->status, 401);
	test_http(t, "GET", "/metrics", "Basic " TEST_TOKEN, r);
	assert_int_equal(r->status, 401);
	test_http(t, "GET", "/metrics", "Bearer ", r);
	assert_int_equal(r->status, 401);
	/* Unknown paths are not told apart from known ones without the token. */
	test_http(t, "GET", "/nope", NULL, r);
	assert_int_equal(r->status, 401);

	/* The right token, without a collector: no sample yet. */
	test_http(t, "GET", "/metrics", "Bearer " TEST_TOKEN, r);
	assert_int_equal(r->status, 503);
	assert_string_equal(r->body, "no sample yet\n");
	test_http(t, "GET", "/metrics", "bearer " TEST_TOKEN, r);
	assert_int_equal(r->status, 503);
	test_http(t, "HEAD", "/metrics", "Bearer " TEST_TOKEN, r);
	assert_int_equal(r->status, 503);
	assert_int_equal(r->body_len, 0);

	test_http(t, "GET", "/nope", "Bearer " TEST_TOKEN, r);
	assert_int_equal(r->status, 404);
	test_http(t, "GET", "/metrics/", "Bearer " TEST_TOKEN, r);
	assert_int_equal(r->status, 404);
	test_http(t, "POST", "/metrics", "Bearer " TEST_TOKEN, r);
	assert_int_equal(r->status, 405);
	assert_header(r, "Allow: GET, HEAD");
	test_http(t, "DELETE", "/nope", "Bearer " TEST_TOKEN, r);
	assert_int_equal(r->status, 405);
	free(r);
}

static bool test_have_pidfd(void)
{
	int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/* On loopback without a token: open; and 200 once a sample exists. */
static void test_server_sample(void **state)
{
	struct test_server *t = *state;
	struct test_reply *r = calloc(1, sizeof(*r));
	char fake[512], path[PATH_MAX];

	assert_non_null(r);
	test_listen(t, "localhost");
	assert_int_equal(httpd_start(&t->agent, &t->httpd), 0);
	test_http(t, "GET", "/metrics", NULL, r);
	assert_int_equal(r->status, 503);

	/* A collector of its own (no agent: no members, no database), reading
	 * the fake NVML of tests/fake-nvml when meson put it on the library
	 * path: one GPU, and this test process on it. */
	snprintf(fake, sizeof(fake),
		 "gpu 0 uuid=GPU-fake-0 name=Fake_H100 util=42 memutil=5 total=85899345920 used=1073741824 temp=55 power=300000\n"
		 "proc 0 pid=%d mem=1048576\n", (int)getpid());
	tu_write_file(t->dir, "nvml", fake);
	tu_join(path, sizeof(path), t->dir, "nvml");
	assert_int_equal(setenv("FAKE_NVML_STATE", path, 1), 0);
	assert_int_equal(collector_open(NULL, NULL, &t->collector), 0);
	t->agent.collector = t->collector;
	test_http(t, "GET", "/metrics", NULL, r);
	assert_int_equal(r->status, 503);
	assert_int_equal(collector_tick(t->collector, NULL), 0);
	test_http(t, "GET", "/metrics", NULL, r);
	assert_int_equal(r->status, 200);
	assert_header(r, "Content-Type: text/plain; version=0.0.4; charset=utf-8");
	test_check_exposition(r->body);
	assert_non_null(strstr(r->body, "# TYPE gpubox_nvml_up gauge\n"));
	assert_non_null(strstr(r->body, "\ngpubox_sample_timestamp_seconds{server=\"\"} "));
	if (strstr(r->body, "\ngpubox_nvml_up{server=\"\"} 1\n")) {
		assert_line(r->body, "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",uuid=\"GPU-fake-0\",server=\"\",modelName=\"Fake H100\"} 42");
		assert_line(r->body, "DCGM_FI_DEV_POWER_USAGE{gpu=\"0\",uuid=\"GPU-fake-0\",server=\"\",modelName=\"Fake H100\"} 300");
		/* The collector follows processes with pidfds, which valgrind
		 * 3.19 does not know: there it sees none. */
		if (test_have_pidfd()) {
			assert_line(r->body, "gpubox_host_gpu_processes{gpu=\"0\",uuid=\"GPU-fake-0\",server=\"\"} 1");
			assert_line(r->body, "gpubox_host_gpu_memory_bytes{gpu=\"0\",uuid=\"GPU-fake-0\",server=\"\"} 1048576");
		}
		assert_non_null(strstr(r->body, "\ngpubox_host_gpu_processes{gpu=\"0\",uuid=\"GPU-fake-0\",server=\"\"} "));
	} else {
		print_message("no fake NVML on the library path: GPU lines not checked\n");
	}
	test_http(t, "HEAD", "/metrics", NULL, r);
	assert_int_equal(r->status, 200);
	assert_int_equal(r->body_len, 0);
	/* A body is never read, and is no reason to fail. */
	test_http(t, "GETBODY", "/metrics", NULL, r);
	assert_int_equal(r->status, 200);
	unsetenv("FAKE_NVML_STATE");
	free(r);
}

static void test_server_ipv6(void **state)
{
	struct test_server *t = *state;
	__do_close int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };

	if (fd < 0 || bind(fd, (struct sockaddr *)&sin6, sizeof(sin6)) < 0)
		skip();    /* no IPv6 loopback on this machine */
	snprintf(t->agent.cfg.metrics_listen, sizeof(t->agent.cfg.metrics_listen), "[::1]:%u",
		 t->port);
	assert_int_equal(httpd_start(&t->agent, &t->httpd), 0);
	assert_non_null(t->httpd);
}

/* Every address: a token from a file, which must be good. */
static void test_server_public(void **state)
{
	struct test_server *t = *state;
	struct test_reply *r = calloc(1, sizeof(*r));

	assert_non_null(r);
	test_listen(t, "0.0.0.0");
	assert_int_equal(httpd_start(&t->agent, &t->httpd), -EINVAL);
	assert_null(t->httpd);
	/* Named but missing. */
	snprintf(t->agent.cfg.metrics_token_file, sizeof(t->agent.cfg.metrics_token_file), "%s/none",
		 t->dir);
	assert_int_equal(httpd_start(&t->agent, &t->httpd), -EINVAL);
	/* Too short, blank inside, a directory. */
	test_token_file(t, "short\n", 0600);
	assert_int_equal(httpd_start(&t->agent, &t->httpd), -EINVAL);
	test_token_file(t, "two words in one token line\n", 0600);
	assert_int_equal(httpd_start(&t->agent, &t->httpd), -EINVAL);
	test_token_file(t, "\n\n", 0600);
	assert_int_equal(httpd_start(&t->agent, &t->httpd), -EINVAL);
	snprintf(t->agent.cfg.metrics_token_file, sizeof(t->agent.cfg.metrics_token_file), "%s",
		 t->dir);
	assert_int_equal(httpd_start(&t->agent, &t->httpd), -EINVAL);
	/* A bad token file is refused on loopback too: asked for, it is required. */
	test_token_file(t, "short\n", 0600);
	test_listen(t, "127.0.0.1");
	assert_int_equal(httpd_start(&t->agent, &t->httpd), -EINVAL);
	assert_null(t->httpd);

	/* A good one, open to others (a warning, not a refusal), CRLF ended. */
	test_listen(t, "0.0.0.0");
	test_token_file(t, TEST_TOKEN "\r\n", 0644);
	assert_int_equal(httpd_start(&t->agent, &t->httpd), 0);
	test_http(t, "GET", "/metrics", NULL, r);
	assert_int_equal(r->status, 401);
	test_http(t, "GET", "/metrics", "Bearer  " TEST_TOKEN " ", r);
	assert_int_equal(r->status, 503);
	free(r);
}

static void test_server_addresses(void **state)
{
	static const char *const bad[] = {
		"nonsense", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
		"127.0.0.1:80x", "127.0.0.1: 80", " 127.0.0.1:80", ":9400", "::1:9400", "[::1]",
		"[::1]9400", "[::1]:", "[127.0.0.1]:9400", "[fe80::1%eth0]:9400", "256.1.1.1:80",
		"1.2.3:80", "host.example:80", "localhost.:80", "127.0.0.1:+80", "127.0.0.1:-1",
	};
	struct test_server *t = *state;
	struct httpd *m = NULL;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		snprintf(t->agent.cfg.metrics_listen, sizeof(t->agent.cfg.metrics_listen), "%s", bad[i]);
		if (httpd_start(&t->agent, &m) != -EINVAL)
			fail_msg("\"%s\" was not refused", bad[i]);
		assert_null(m);
	}
	/* Empty: no server, and no error. */
	t->agent.cfg.metrics_listen[0] = '\0';
	assert_int_equal(httpd_start(&t->agent, &m), 0);
	assert_null(m);
	httpd_stop(NULL);
	/* Off loopback in IPv6 too. */
	snprintf(t->agent.cfg.metrics_listen, sizeof(t->agent.cfg.metrics_listen), "[::]:%u", t->port);
	assert_int_equal(httpd_start(&t->agent, &m), -EINVAL);
	snprintf(t->agent.cfg.metrics_listen, sizeof(t->agent.cfg.metrics_listen), "10.1.2.3:%u",
		 t->port);
	assert_int_equal(httpd_start(&t->agent, &m), -EINVAL);
}

/* Bytes of one reply on a kept connection: its head, then Content-Length
 * bytes of body.  The status, or -1. */
static int test_read_reply(int fd, char *buf, size_t len)
{
	size_t used = 0;
	int status = -1;

	for (;;) {
		const char *end = used ? strstr(buf, "\r\n\r\n") : NULL;
		const char *length = end ? strcasestr(buf, "\r\nContent-Length: ") : NULL;
		ssize_t n;

		if (end && length && length < end &&
		    used >= (size_t)(end + 4 - buf) + strtoul(length + 18, NULL, 10))
			break;
		n = read(fd, buf + used, len - 1 - used);
		if (n <= 0)
			return -1;
		used += (size_t)n;
		buf[used] = '\0';
	}
	if (sscanf(buf, "HTTP/1.1 %d ", &status) != 1)
		return -1;
	return status;
}

/* Prometheus keeps its connection between scrapes: so does the server. */
static void test_server_keepalive(void **state)
{
	static const char request[] = "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n";
	struct test_server *t = *state;
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(t->port) };
	struct timeval timeout = { .tv_sec = 10 };
	__do_close int fd = -EBADF;
	char buf[4096];

	test_listen(t, "127.0.0.1");
	assert_int_equal(httpd_start(&t->agent, &t->httpd), 0);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)), 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(fsutil_write_all(fd, request, strlen(request)), 0);
		assert_int_equal(test_read_reply(fd, buf, sizeof(buf)), 503);
		assert_null(strcasestr(buf, "Connection: close"));
	}
}

/* A port already taken: an error, not a crash. */
static void test_server_busy(void **state)
{
	struct test_server *t = *state;
	struct httpd *second = NULL;

	test_listen(t, "127.0.0.1");
	assert_int_equal(httpd_start(&t->agent, &t->httpd), 0);
	assert_true(httpd_start(&t->agent, &second) < 0);
	assert_null(second);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render_gpus),
		cmocka_unit_test(test_render_members),
		cmocka_unit_test(test_render_idle),
		cmocka_unit_test(test_render_host),
		cmocka_unit_test(test_render_hidden_members),
		cmocka_unit_test(test_render_escaping),
		cmocka_unit_test(test_render_no_nvml),
		cmocka_unit_test(test_render_values),
		cmocka_unit_test(test_render_many),
		cmocka_unit_test_setup_teardown(test_server_token, test_server_setup, test_server_teardown),
		cmocka_unit_test_setup_teardown(test_server_sample, test_server_setup, test_server_teardown),
		cmocka_unit_test_setup_teardown(test_server_ipv6, test_server_setup, test_server_teardown),
		cmocka_unit_test_setup_teardown(test_server_public, test_server_setup, test_server_teardown),
		cmocka_unit_test_setup_teardown(test_server_addresses, test_server_setup, test_server_teardown),
		cmocka_unit_test_setup_teardown(test_server_keepalive, test_server_setup, test_server_teardown),
		cmocka_unit_test_setup_teardown(test_server_busy, test_server_setup, test_server_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
