/* SPDX-License-Identifier: MIT */
/*
 * monitor.c's handling of what agents send: the overview's form of a
 * reading (members summed per GPU, names left out for the public view,
 * nothing but the named fields), a member's own part, usage summed over
 * servers, names stripped from history.  The live path (a hub reading
 * two real agents) is tests/system/t0120-lab-monitor.sh.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "hub.h"
#include "strutil.h"

static const char reading[] =
	"{\"time\": 1000, \"server\": \"gpu1\", \"gpu_ok\": true, \"gpu_note\": \"\","
	" \"driver_version\": \"550.54.15\","
	" \"host\": {\"ncpus\": 8, \"cpu_percent\": 12.5, \"load\": [1, 2, 3]},"
	" \"gpus\": ["
	"  {\"index\": 0, \"uuid\": \"GPU-0\", \"name\": \"H100\", \"bus_id\": \"0:17\", \"lost\": false,"
	"   \"util\": 90, \"mem_used\": 30, \"mem_total\": 80, \"members\": [\"alice\", \"bob\"]},"
	"  {\"index\": 1, \"uuid\": \"GPU-1\", \"name\": \"H100\", \"lost\": false, \"util\": 0,"
	"   \"mem_used\": 0, \"members\": []}],"
	" \"processes\": ["
	"  {\"gpu\": 0, \"member\": \"alice\", \"pid\": 12, \"host_pid\": 4012, \"command\": \"python a\","
	"   \"started\": 5, \"mem_used\": 10, \"sm_util\": 50},"
	"  {\"gpu\": 0, \"member\": \"alice\", \"pid\": 13, \"host_pid\": 4013, \"command\": \"python b\","
	"   \"started\": 6, \"mem_used\": 5},"
	"  {\"gpu\": 0, \"member\": \"bob\", \"pid\": 7, \"host_pid\": 5007, \"command\": \"run\","
	"   \"started\": 7, \"mem_used\": 15}],"
	" \"containers\": [{\"member\": \"alice\", \"cpu_percent\": 150, \"mem_used\": 1, \"mem_limit\": 2,"
	"   \"pids\": 40, \"oom_kills\": 0},"
	"  {\"member\": \"bob\", \"cpu_percent\": 1, \"mem_used\": 95, \"mem_limit\": 100, \"pids\": 7,"
	"   \"oom_kills\": 3}]}";

static json_t *load(void)
{
	char err[192];
	json_t *sample = monitor_parse_reading(reading, strlen(reading), err, sizeof(err));

	assert_non_null(sample);
	return sample;
}

static json_t *gpu_member(json_t *view, size_t gpu, size_t k)
{
	return json_array_get(json_object_get(json_array_get(json_object_get(view, "gpus"), gpu),
					      "members"), k);
}

static void test_view_sums_members(void **state)
{
	json_t *sample = load(), *view = monitor_reading_view(sample, true), *alice;

	(void)state;
	assert_int_equal(json_array_size(json_object_get(view, "gpus")), 2);
	alice = gpu_member(view, 0, 0);
	assert_string_equal(json_string_value(json_object_get(alice, "member")), "alice");
	assert_int_equal(json_integer_value(json_object_get(alice, "mem_used")), 15);
	assert_int_equal(json_integer_value(json_object_get(alice, "processes")), 2);
	assert_string_equal(json_string_value(json_object_get(gpu_member(view, 0, 1), "member")), "bob");
	assert_int_equal(json_array_size(json_object_get(json_array_get(
		json_object_get(view, "gpus"), 1), "members")), 0);
	assert_int_equal(json_integer_value(json_object_get(view, "containers")), 2);
	/* Use against limits: bob is near his memory limit and had kills. */
	assert_int_equal(json_integer_value(json_object_get(view, "near_memory_limit")), 1);
	assert_int_equal(json_integer_value(json_object_get(view, "oom_kills")), 3);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(
		json_object_get(view, "container_limits"), 1), "pids")), 7);
	/* Only the named fields: no pid, command or bus id reaches a page. */
	{
		char *text = json_dumps(view, JSON_COMPACT);

		assert_null(strstr(text, "host_pid"));
		assert_null(strstr(text, "python"));
		assert_null(strstr(text, "bus_id"));
		free(text);
	}
	json_decref(view);
	json_decref(sample);
}

static void test_view_without_names(void **state)
{
	json_t *sample = load(), *view = monitor_reading_view(sample, false);
	char *text = json_dumps(view, JSON_COMPACT);

	(void)state;
	assert_null(strstr(text, "alice"));
	assert_null(strstr(text, "\"member\""));
	assert_null(json_object_get(view, "container_limits"));
	assert_int_equal(json_integer_value(json_object_get(view, "near_memory_limit")), 1);
	assert_int_equal(json_integer_value(json_object_get(gpu_member(view, 0, 0), "processes")), 2);
	free(text);
	json_decref(view);
	json_decref(sample);
}

static void test_parse_refuses(void **state)
{
	static const char *const bad[] = {
		"", "[]", "{\"gpus\": [], \"processes\": []}", "{\"host\": 1, \"gpus\": [], \"processes\": []}",
		"{\"host\": {}, \"gpus\": [], \"processes\": [], \"host\": {}}", "{\"host\": {}, \"gpus\": {}}",
	};
	char err[192];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_null(monitor_parse_reading(bad[i], strlen(bad[i]), err, sizeof(err)));
		assert_true(strlen(err) > 10);
	}
}

static void test_member_part(void **state)
{
	json_t *sample = load(), *o = json_object(), *p;

	(void)state;
	monitor_reading_member(sample, "alice", o);
	assert_string_equal(json_string_value(json_object_get(json_object_get(o, "container"), "state")),
			    "running");
	assert_int_equal(json_array_size(json_object_get(o, "gpus")), 1);
	assert_int_equal(json_array_size(json_object_get(o, "processes")), 2);
	p = json_array_get(json_object_get(o, "processes"), 0);
	assert_int_equal(json_integer_value(json_object_get(p, "pid")), 12);
	assert_null(json_object_get(p, "host_pid"));
	json_decref(o);

	o = json_object();
	monitor_reading_member(sample, "carol", o);
	assert_string_equal(json_string_value(json_object_get(json_object_get(o, "container"), "state")),
			    "stopped");
	assert_int_equal(json_array_size(json_object_get(o, "processes")), 0);
	json_decref(o);

	/* Not read yet by the agent's turn over the cgroups, but on a GPU. */
	json_object_set_new(sample, "containers", json_array());
	o = json_object();
	monitor_reading_member(sample, "alice", o);
	assert_string_equal(json_string_value(json_object_get(json_object_get(o, "container"), "state")),
			    "running");
	json_decref(o);

	o = json_object();
	monitor_reading_member(NULL, "alice", o);
	assert_string_equal(json_string_value(json_object_get(json_object_get(o, "container"), "state")),
			    "unknown");
	json_decref(o);
	json_decref(sample);
}

static void test_usage_sums(void **state)
{
	static const char a[] = "{\"members\": [{\"member\": \"alice\", \"gpu_hours\": 2, "
				"\"gpu_mem_gib_hours\": 8}, {\"member\": \"bob\", \"gpu_hours\": 1.5, "
				"\"gpu_mem_gib_hours\": 1}, {\"member\": \"=cmd|x\", \"gpu_hours\": 9, "
				"\"gpu_mem_gib_hours\": 9}]}";
	static const char b[] = "{\"members\": [{\"member\": \"bob\", \"gpu_hours\": 3, "
				"\"gpu_mem_gib_hours\": 2}]}";
	json_t *by_member = json_object(), *list, *first;

	(void)state;
	assert_true(monitor_usage_add(by_member, "gpu1", a, strlen(a)));
	assert_true(monitor_usage_add(by_member, "gpu2", b, strlen(b)));
	assert_false(monitor_usage_add(by_member, "gpu3", "{}", 2));
	list = monitor_usage_list(by_member);
	assert_int_equal(json_array_size(list), 2);      /* the invalid name is left out */
	first = json_array_get(list, 0);
	assert_string_equal(json_string_value(json_object_get(first, "member")), "bob");
	assert_true(json_real_value(json_object_get(first, "gpu_hours")) == 4.5);
	assert_true(json_real_value(json_object_get(first, "gpu_mem_gib_hours")) == 3.0);
	assert_non_null(json_object_get(json_object_get(first, "servers"), "gpu2"));
	json_decref(list);
	json_decref(by_member);
}

/* A GPU held idle, reservations well and badly formed. */
static const char reserved_reading[] =
	"{\"time\": 1000, \"host\": {},"
	" \"gpus\": [{\"index\": 0, \"util\": 0}, {\"index\": 1, \"util\": 0}, {\"index\": 2}],"
	" \"processes\": ["
	"  {\"gpu\": 0, \"member\": \"alice\", \"mem_used\": 4, \"idle\": true, \"idle_seconds\": 90},"
	"  {\"gpu\": 0, \"member\": \"alice\", \"mem_used\": 4, \"idle\": true, \"idle_seconds\": 300},"
	"  {\"gpu\": 1, \"member\": \"bob\", \"mem_used\": 4, \"idle\": 1, \"idle_seconds\": 500}],"
	" \"reservations\": ["
	"  {\"id\": 1, \"member\": \"bob\", \"gpus\": [1, 2], \"until_ms\": 9000, \"state\": \"active\"},"
	"  {\"id\": 2, \"member\": \"carol\", \"gpus\": [0], \"until_ms\": 9500, \"state\": \"queued\"},"
	"  {\"id\": 3, \"member\": \"<i>x\", \"gpus\": [0], \"until_ms\": 1, \"state\": \"active\"},"
	"  {\"id\": 4, \"member\": \"dave\", \"gpus\": [64], \"until_ms\": 1, \"state\": \"active\"},"
	"  {\"id\": 5, \"member\": \"dave\", \"gpus\": [0], \"until_ms\": 1, \"state\": \"done\"},"
	"  {\"id\": \"6\", \"member\": \"dave\", \"gpus\": [0], \"until_ms\": 1, \"state\": \"active\"},"
	"  {\"id\": 7, \"member\": \"alice\", \"gpus\": [], \"count\": 1, \"state\": \"queued\", \"position\": 2},"
	"  {\"id\": 8, \"member\": \"alice\", \"gpus\": [], \"state\": \"active\"}]}";

static void test_idle_and_reservations(void **state)
{
	char err[192];
	json_t *sample = monitor_parse_reading(reserved_reading, strlen(reserved_reading), err, sizeof(err));
	json_t *view, *hidden, *list, *gpus;
	char *text;

	(void)state;
	assert_non_null(sample);
	view = monitor_reading_view(sample, true);
	hidden = monitor_reading_view(sample, false);
	gpus = json_object_get(view, "gpus");
	/* alice's entry is idle for her longest; bob's "idle": 1 is no mark. */
	assert_true(json_is_true(json_object_get(gpu_member(view, 0, 0), "idle")));
	assert_int_equal(json_integer_value(json_object_get(gpu_member(view, 0, 0), "idle_seconds")), 300);
	assert_null(json_object_get(gpu_member(view, 1, 0), "idle"));
	list = json_object_get(view, "reservations");
	assert_int_equal(json_array_size(list), 3);
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "member")), "bob");
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 1), "state")), "queued");
	/* The active reservation's GPUs are held; the queued one's GPU is not. */
	assert_null(json_object_get(json_array_get(gpus, 0), "reserved"));
	assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(gpus, 2),
		"reserved"), "member")), "bob");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(json_array_get(gpus, 1),
		"reserved"), "until_ms")), 9000);
	/* Without names: the reservations and marks, nobody named. */
	text = json_dumps(hidden, JSON_COMPACT);
	assert_null(strstr(text, "bob"));
	assert_null(strstr(text, "carol"));
	assert_int_equal(json_array_size(json_object_get(hidden, "reservations")), 3);
	assert_true(json_is_true(json_object_get(gpu_member(hidden, 0, 0), "idle")));
	free(text);
	/* A queued request as the agent sends it (no end, any GPU), on its
	 * member's own page; an active one without an end is dropped. */
	json_decref(hidden);
	hidden = json_object();
	monitor_reading_member(sample, "alice", hidden);
	list = json_object_get(hidden, "reservations");
	assert_int_equal(json_array_size(list), 1);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 0), "count")), 1);
	assert_null(json_object_get(json_array_get(list, 0), "until_ms"));
	assert_null(json_object_get(json_array_get(list, 0), "member"));
	assert_true(json_is_true(json_object_get(json_array_get(json_object_get(hidden, "processes"), 0), "idle")));
	json_decref(hidden);
	json_decref(view);
	json_decref(sample);
}

static void test_usage_idle(void **state)
{
	static const char a[] = "{\"members\": [{\"member\": \"alice\", \"gpu_hours\": 2, "
				"\"gpu_mem_gib_hours\": 8, \"idle_gpu_hours\": 0.5}]}";
	/* An agent from before idle time: none counted. */
	static const char b[] = "{\"members\": [{\"member\": \"alice\", \"gpu_hours\": 1, "
				"\"gpu_mem_gib_hours\": 1}]}";
	json_t *by_member = json_object(), *list, *alice;

	(void)state;
	assert_true(monitor_usage_add(by_member, "gpu1", a, strlen(a)));
	assert_true(monitor_usage_add(by_member, "gpu2", b, strlen(b)));
	list = monitor_usage_list(by_member);
	alice = json_array_get(list, 0);
	assert_true(json_real_value(json_object_get(alice, "idle_gpu_hours")) == 0.5);
	assert_true(json_real_value(json_object_get(json_object_get(json_object_get(alice, "servers"),
		"gpu2"), "idle_gpu_hours")) == 0.0);
	json_decref(list);
	json_decref(by_member);
}

static void test_strip_names(void **state)
{
	json_t *history = json_pack("{s:[{s:i, s:{s:[[i, i]]}}]}", "gpus", "gpu", 0, "members", "alice",
				    1, 2);
	json_t *at = json_pack("{s:[{s:s, s:i}]}", "members", "member", "alice", "mem_used", 3);
	char *h, *a;

	(void)state;
	monitor_strip_names(history);
	monitor_strip_names(at);
	h = json_dumps(history, JSON_COMPACT);
	a = json_dumps(at, JSON_COMPACT);
	assert_null(strstr(h, "alice"));
	assert_null(strstr(a, "alice"));
	assert_non_null(strstr(a, "mem_used"));
	free(h);
	free(a);
	json_decref(history);
	json_decref(at);
}

static void test_parse_uint_max(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(parse_uint_max("18446744073709551615", UINT64_MAX, &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(parse_uint_max("18446744073709551616", UINT64_MAX, &v), -ERANGE);
	assert_int_equal(parse_uint_max("2000", 2000, &v), 0);
	assert_int_equal(parse_uint_max("2001", 2000, &v), -ERANGE);
	assert_int_equal(parse_uint_max("-1", 2000, &v), -EINVAL);
	assert_int_equal(parse_uint_max("", 2000, &v), -EINVAL);
	assert_int_equal(parse_uint_max("1 ", 2000, &v), -EINVAL);
}

/* The growing buffer behind the agents' answers and request bodies. */
static void test_buf_append(void **state)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	char chunk[700];

	(void)state;
	memset(chunk, 'x', sizeof(chunk));
	assert_int_equal(buf_append(&buf, &len, &cap, "", 0, 10), 0);
	assert_string_equal(buf, "");
	for (int i = 0; i < 4; i++)
		assert_int_equal(buf_append(&buf, &len, &cap, chunk, sizeof(chunk), 2800), 0);
	assert_int_equal(len, 2800);
	assert_true(cap > len);
	assert_int_equal(buf[len], '\0');
	assert_int_equal(buf_append(&buf, &len, &cap, "y", 1, 2800), -EFBIG);
	assert_int_equal(len, 2800);
	assert_int_equal(buf_append(&buf, &len, &cap, "y", SIZE_MAX, SIZE_MAX - 1), -EFBIG);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_view_sums_members),
		cmocka_unit_test(test_view_without_names),
		cmocka_unit_test(test_parse_refuses),
		cmocka_unit_test(test_member_part),
		cmocka_unit_test(test_usage_sums),
		cmocka_unit_test(test_idle_and_reservations),
		cmocka_unit_test(test_usage_idle),
		cmocka_unit_test(test_strip_names),
		cmocka_unit_test(test_parse_uint_max),
		cmocka_unit_test(test_buf_append),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
