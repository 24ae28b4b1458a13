/* SPDX-License-Identifier: MIT */
/*
 * history.c against a real SQLite file in a temporary directory: a
 * synthetic run of three minutes at one tick a second (two GPUs; member a
 * on GPU 0 for 120 s at 2 GiB, member b with two processes on GPU 1 all
 * along, a process of the host on GPU 0), folded into minutes, then read
 * back at sample and at minute resolution, as series and as usage; old
 * rows pruned; the file's size bounded over two simulated days at 8 GPUs;
 * and several threads at once.
 */
#include <pthread.h>

#include <sqlite3.h>

#include "testutil.h"
#include "gpu/gpu.h"
#include "monitor/monitor.h"
#include "banned.h"

#define GIB (1024ULL * 1024 * 1024)
#define MIB (1024ULL * 1024)
/* 2025-11-23 14:00:00 UTC: a minute's start. */
#define T0 1763906400000LL
#define TICKS 180
#define HOUR_MS 3600000LL
#define DAY_MS 86400000LL

struct fixture {
	char dir[PATH_MAX];
	char path[PATH_MAX];
	struct history *h;
};

/* One tick of the synthetic run, in storage that lives as long as it. */
struct tick {
	struct sample s;
	struct nvml_gpu gpus[8];
	struct sample_process procs[64];
};

static int open_history(struct fixture *f, uint32_t full_seconds, uint32_t minute_days)
{
	struct history_limits limits = { .full_seconds = full_seconds, .minute_days = minute_days };

	return history_open(f->path, &limits, &f->h);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f || tu_make_tempdir(f->dir, sizeof(f->dir), "/tmp/test_history.XXXXXX") < 0)
		return -1;
	tu_join(f->path, sizeof(f->path), f->dir, "history.db");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	history_close(f->h);
	tu_remove_tempdir(f->dir);
	free(f);
	return 0;
}

static void add_gpu(struct tick *k, unsigned index, int util, uint64_t mem_total)
{
	struct nvml_gpu *g = &k->gpus[k->s.ngpus++];

	memset(g, 0, sizeof(*g));
	g->index = index;
	g->minor = index;
	snprintf(g->uuid, sizeof(g->uuid), "GPU-%04u", index);
	g->util_gpu = util;
	g->util_mem = -1;
	g->mem_total = mem_total;
	g->temperature = 50;
	g->power_mw = 200000;
}

static void add_process(struct tick *k, unsigned gpu, const char *member, pid_t pid, uint64_t mem,
			int sm_util)
{
	struct sample_process *p = &k->procs[k->s.nprocs++];

	memset(p, 0, sizeof(*p));
	p->gpu = gpu;
	p->pid = pid;
	p->ns_pid = pid;
	snprintf(p->member, sizeof(p->member), "%s", member);
	snprintf(p->command, sizeof(p->command), "python train.py");
	p->mem_used = mem;
	p->sm_util = sm_util;
	for (size_t i = 0; i < k->s.ngpus; i++)
		if (k->gpus[i].index == gpu && mem != UINT64_MAX)
			k->gpus[i].mem_used += mem;
}

static void start_tick(struct tick *k, long long t)
{
	memset(k, 0, sizeof(*k));
	k->s.time_ms = t;
	snprintf(k->s.server, sizeof(k->s.server), "box");
	k->s.gpu_ok = true;
	k->s.gpus = k->gpus;
	k->s.procs = k->procs;
	k->s.host.ncpus = 8;
	k->s.host.cpu_percent = 25.0;
	k->s.host.mem_total = 64 * GIB;
	k->s.host.mem_available = 48 * GIB;
	k->s.host.load[0] = 1.5;
	k->s.host.disk_total = 1000 * GIB;
	k->s.host.disk_used = 100 * GIB;
}

/* Tick i of the run: GPU 0 at 40, 60, then 80 % over the three minutes,
 * GPU 1 with no utilisation known. */
static void run_tick(struct tick *k, int i)
{
	start_tick(k, T0 + i * 1000LL);
	add_gpu(k, 0, i < 60 ? 40 : i < 120 ? 60 : 80, 80 * GIB);
	add_gpu(k, 1, -1, 40 * GIB);
	add_process(k, 0, "", 50, 512 * MIB, -1);
	if (i >= 10 && i < 130)
		add_process(k, 0, "a", 100, 2 * GIB, 30);
	add_process(k, 1, "b", 200, 1 * GIB, -1);
	add_process(k, 1, "b", 201, 512 * MIB, -1);
}

static void record_run(struct history *h, int first, int last)
{
	struct tick k;

	for (int i = first; i < last; i++) {
		run_tick(&k, i);
		assert_int_equal(history_record(h, &k.s), 0);
	}
}

/* A count from the file itself, through a connection of the test's own. */
static long long count_rows(const struct fixture *f, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *stmt = NULL;
	long long n = -1;

	assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(history_attach_views(db), 0);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
	if (sqlite3_step(stmt) == SQLITE_ROW)
		n = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	sqlite3_close(db);
	return n;
}

static double number(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_number(v))
		fail_msg("\"%s\" is not a number", key);
	return json_number_value(v);
}

static double at(json_t *array, size_t i)
{
	json_t *v = json_array_get(array, i);

	if (!json_is_number(v))
		fail_msg("element %zu is not a number", i);
	return json_number_value(v);
}

static void assert_near(double value, double expected, double tolerance)
{
	if (value < expected - tolerance || value > expected + tolerance)
		fail_msg("%.9g is not %.9g (+- %g)", value, expected, tolerance);
}

static void test_fold(void **state)
{
	struct fixture *f = *state;
	struct stat st;

	assert_int_equal(open_history(f, 3600, 30), 0);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	record_run(f->h, 0, TICKS);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM gpu_samples"), 2 * TICKS);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM member_samples"), 3 * TICKS - 60);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM host_samples"), TICKS);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM member_samples WHERE mem_used IS NULL"
					" OR (member = 'b' AND (mem_used <> 1610612736 OR processes <> 2))"), 0);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM gpu_samples WHERE gpu = 1 AND util IS NOT NULL"), 0);

	/* Within the third minute: two minutes are complete. */
	assert_int_equal(history_compact(f->h, T0 + 150000), 0);
	assert_int_equal(count_rows(f, "SELECT value FROM meta WHERE key = 'aggregated_until'"), T0 + 120000);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM gpu_minutes"), 4);
	assert_int_equal(history_compact(f->h, T0 + 180000), 0);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM gpu_minutes"), 6);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM member_minutes"), 9);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM host_minutes"), 3);
	/* a was there 50, 60 and 10 s; b all along but the very first tick. */
	assert_int_equal(count_rows(f, "SELECT sum(seconds) FROM member_minutes WHERE member = 'a'"), 120);
	assert_int_equal(count_rows(f, "SELECT seconds FROM member_minutes WHERE member = 'a' AND t = " "1763906400000"), 50);
	assert_int_equal(count_rows(f, "SELECT sum(seconds) FROM member_minutes WHERE member = 'b'"), 179);
	assert_int_equal(count_rows(f, "SELECT samples FROM gpu_minutes WHERE gpu = 0 AND t = 1763906460000"), 60);
	assert_int_equal(count_rows(f, "SELECT util_max FROM gpu_minutes WHERE gpu = 0 AND t = 1763906460000"), 60);

	/* Folding again changes nothing. */
	assert_int_equal(history_compact(f->h, T0 + 180000), 0);
	assert_int_equal(history_compact(f->h, T0 + 185000), 0);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM gpu_minutes"), 6);
	assert_int_equal(count_rows(f, "SELECT sum(seconds) FROM member_minutes WHERE member = 'a'"), 120);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM gpu_samples"), 2 * TICKS);
}

static void check_members_at(json_t *o, const char *const *names, const double *mem, size_t n)
{
	json_t *members = json_object_get(o, "members");

	assert_int_equal(json_array_size(members), n);
	for (size_t i = 0; i < n; i++) {
		json_t *m = json_array_get(members, i);

		assert_string_equal(json_string_value(json_object_get(m, "member")), names[i]);
		assert_near(number(m, "mem_used"), mem[i], 1);
	}
}

static void test_gpu_at(void **state)
{
	struct fixture *f = *state;
	static const char *const names[] = { "", "a" };
	const double mem[] = { 512.0 * MIB, 2.0 * GIB };
	__do_json json_t *o = NULL, *o1 = NULL, *m = NULL;

	assert_int_equal(open_history(f, 3600, 30), 0);
	assert_int_equal(history_gpu_at(f->h, 0, T0, &o), -ENOENT);
	record_run(f->h, 0, TICKS);
	assert_int_equal(history_compact(f->h, T0 + 180000), 0);

	assert_int_equal(history_gpu_at(f->h, 0, T0 + 30000, &o), 0);
	assert_string_equal(json_string_value(json_object_get(o, "resolution")), "sample");
	assert_int_equal(number(o, "time"), T0 + 30000);
	assert_int_equal(number(o, "gpu"), 0);
	assert_string_equal(json_string_value(json_object_get(o, "uuid")), "GPU-0000");
	assert_true(json_is_integer(json_object_get(o, "util")));
	assert_int_equal(number(o, "util"), 40);
	assert_near(number(o, "mem_used"), 2.5 * GIB, 0);
	assert_near(number(o, "mem_total"), 80.0 * GIB, 0);
	assert_near(number(o, "power_w"), 200, 0);
	check_members_at(o, names, mem, 2);
	assert_int_equal(number(json_array_get(json_object_get(o, "members"), 1), "sm_util"), 30);

	/* The nearest sample, and nulls for what the GPU did not say. */
	assert_int_equal(history_gpu_at(f->h, 1, T0 + 30400, &o1), 0);
	assert_int_equal(number(o1, "time"), T0 + 30000);
	assert_true(json_is_null(json_object_get(o1, "util")));
	m = json_incref(json_array_get(json_object_get(o1, "members"), 0));
	assert_string_equal(json_string_value(json_object_get(m, "member")), "b");
	assert_int_equal(number(m, "processes"), 2);
	assert_near(number(m, "mem_used"), 1.5 * GIB, 0);
	assert_true(json_is_null(json_object_get(m, "sm_util")));

	/* Nothing near, nothing folded yet, or nothing at all. */
	json_t *none = NULL;
	assert_int_equal(history_gpu_at(f->h, 0, T0 + 185000, &none), -ENOENT);
	assert_int_equal(history_gpu_at(f->h, 0, T0 - 60000, &none), -ENOENT);
	assert_int_equal(history_gpu_at(f->h, 5, T0 + 30000, &none), -ENOENT);
	assert_int_equal(history_gpu_at(f->h, 0, -1, &none), -EINVAL);
	assert_null(none);
}

/* Minutes only, once the full rows are pruned. */
static void test_gpu_at_minute(void **state)
{
	struct fixture *f = *state;
	static const char *const names[] = { "", "a" };
	const double mem[] = { 512.0 * MIB, 2.0 * GIB };
	__do_json json_t *o = NULL, *o2 = NULL;

	assert_int_equal(open_history(f, 60, 1), 0);
	record_run(f->h, 0, TICKS);
	assert_int_equal(history_compact(f->h, T0 + 180000), 0);
	assert_int_equal(count_rows(f, "SELECT min(t) FROM gpu_samples"), T0 + 120000);

	assert_int_equal(history_gpu_at(f->h, 0, T0 + 30000, &o), 0);
	assert_string_equal(json_string_value(json_object_get(o, "resolution")), "minute");
	assert_int_equal(number(o, "time"), T0);
	assert_int_equal(number(o, "util"), 40);
	/* Ten ticks without a (0.5 GiB), fifty with (2.5 GiB). */
	assert_near(number(o, "mem_used"), 130.0 / 60 * GIB, 1);
	assert_int_equal(number(o, "temperature"), 50);
	check_members_at(o, names, mem, 2);
	assert_int_equal(number(json_array_get(json_object_get(o, "members"), 1), "processes"), 1);

	/* The second minute: no sample kept within 2 s. */
	assert_int_equal(history_gpu_at(f->h, 0, T0 + 100000, &o2), 0);
	assert_string_equal(json_string_value(json_object_get(o2, "resolution")), "minute");
	assert_int_equal(number(o2, "time"), T0 + 60000);
	assert_int_equal(number(o2, "util"), 60);
}

static json_t *gpu_entry(json_t *range, size_t i)
{
	return json_array_get(json_object_get(range, "gpus"), i);
}

static json_t *member_series(json_t *range, size_t gpu_i, const char *member)
{
	return json_object_get(json_object_get(gpu_entry(range, gpu_i), "members"), member);
}

/* Three one-minute points per GPU, whichever rows they come from. */
static void check_three_minutes(json_t *r)
{
	json_t *points = json_object_get(gpu_entry(r, 0), "points");
	json_t *a = member_series(r, 0, "a");
	json_t *host = json_object_get(r, "host");

	assert_int_equal(number(r, "step_ms"), 60000);
	assert_int_equal(json_array_size(json_object_get(r, "gpus")), 2);
	assert_int_equal(json_array_size(points), 3);
	assert_int_equal(at(json_array_get(points, 0), 0), T0);
	assert_int_equal(at(json_array_get(points, 0), 1), 40);
	assert_int_equal(at(json_array_get(points, 1), 1), 60);
	assert_int_equal(at(json_array_get(points, 2), 0), T0 + 120000);
	assert_int_equal(at(json_array_get(points, 2), 1), 80);
	assert_near(at(json_array_get(points, 0), 2), 130.0 / 60 * GIB, 1);
	assert_near(at(json_array_get(points, 1), 2), 2.5 * GIB, 1);
	assert_near(at(json_array_get(points, 0), 3), 80.0 * GIB, 0);
	assert_near(at(json_array_get(points, 0), 5), 200, 0);
	assert_int_equal(json_array_size(a), 3);
	assert_near(at(json_array_get(a, 2), 1), 2.0 * GIB, 1);
	assert_int_equal(at(json_array_get(a, 2), 2), 30);
	assert_true(json_is_null(json_array_get(json_array_get(json_object_get(gpu_entry(r, 1), "points"), 0), 1)));
	assert_int_equal(json_array_size(host), 3);
	assert_int_equal(at(json_array_get(host, 1), 1), 25);
	assert_near(at(json_array_get(host, 1), 2), 16.0 * GIB, 1);
	assert_near(at(json_array_get(host, 1), 4), 1.5, 0.001);
}

static void test_range_samples(void **state)
{
	struct fixture *f = *state;
	__do_json json_t *r = NULL, *r3 = NULL, *r1 = NULL, *r10 = NULL;
	json_t *points, *p0;

	assert_int_equal(open_history(f, 3600, 30), 0);
	record_run(f->h, 0, TICKS);
	assert_int_equal(history_compact(f->h, T0 + 180000), 0);

	assert_int_equal(history_range(f->h, -1, T0, T0 + 180000, 0, &r), 0);
	assert_string_equal(json_string_value(json_object_get(r, "resolution")), "sample");
	assert_int_equal(number(r, "from"), T0);
	assert_int_equal(number(r, "to"), T0 + 180000);
	assert_int_equal(number(r, "step_ms"), 360);
	points = json_object_get(gpu_entry(r, 0), "points");
	assert_int_equal(json_array_size(points), TICKS);
	p0 = json_array_get(points, 0);
	assert_int_equal(json_array_size(p0), 6);
	assert_int_equal(at(p0, 0), T0);
	assert_int_equal(at(p0, 1), 40);
	assert_near(at(p0, 2), 512.0 * MIB, 0);
	assert_near(at(p0, 4), 50, 0);
	assert_string_equal(json_string_value(json_object_get(gpu_entry(r, 0), "uuid")), "GPU-0000");
	assert_int_equal(number(gpu_entry(r, 1), "gpu"), 1);
	assert_int_equal(json_array_size(member_series(r, 0, "a")), 120);
	assert_int_equal(json_array_size(member_series(r, 0, "")), TICKS);
	assert_int_equal(json_array_size(member_series(r, 1, "b")), TICKS);
	assert_null(member_series(r, 1, "a"));
	assert_int_equal(json_array_size(json_object_get(r, "host")), TICKS);

	/* Ten samples a bucket. */
	assert_int_equal(history_range(f->h, -1, T0, T0 + 180000, 18, &r10), 0);
	assert_string_equal(json_string_value(json_object_get(r10, "resolution")), "sample");
	assert_int_equal(number(r10, "step_ms"), 10000);
	points = json_object_get(gpu_entry(r10, 0), "points");
	assert_int_equal(json_array_size(points), 18);
	assert_int_equal(at(json_array_get(points, 6), 0), T0 + 60000);
	assert_int_equal(at(json_array_get(points, 6), 1), 60);
	assert_near(at(json_array_get(points, 12), 2), 2.5 * GIB, 1);
	assert_near(at(json_array_get(points, 13), 2), 0.5 * GIB, 1);
	assert_int_equal(json_array_size(member_series(r10, 0, "a")), 12);
	assert_int_equal(at(json_array_get(member_series(r10, 0, "a"), 0), 0), T0 + 10000);

	/* Buckets of a minute or more: from the minutes. */
	assert_int_equal(history_range(f->h, -1, T0, T0 + 180000, 3, &r3), 0);
	assert_string_equal(json_string_value(json_object_get(r3, "resolution")), "minute");
	check_three_minutes(r3);

	/* One GPU. */
	assert_int_equal(history_range(f->h, 1, T0, T0 + 180000, 5000, &r1), 0);
	assert_int_equal(json_array_size(json_object_get(r1, "gpus")), 1);
	assert_int_equal(number(gpu_entry(r1, 0), "gpu"), 1);
	assert_int_equal(json_array_size(json_object_get(gpu_entry(r1, 0), "points")), TICKS);

	json_t *bad = NULL;
	assert_int_equal(history_range(f->h, -1, T0, T0, 0, &bad), -EINVAL);
	assert_int_equal(history_range(f->h, -1, T0 + 1, T0, 0, &bad), -EINVAL);
	assert_null(bad);
}

/* The run of run_tick(), more varied: GPU 1 changes its uuid, member c
 * on a GPU of no rows of its own (5) from 90 s, member d's memory unknown. */
static void record_varied(struct history *h)
{
	struct tick k;

	for (int i = 0; i < TICKS; i++) {
		run_tick(&k, i);
		if (i >= 100)
			snprintf(k.gpus[1].uuid, sizeof(k.gpus[1].uuid), "GPU-%s", i < 150 ? "b" : "a");
		if (i >= 90)
			add_process(&k, 5, "c", 300, (uint64_t)i * MIB, i % 7);
		if (i % 3 == 0)
			add_process(&k, 0, "d", 400, UINT64_MAX, 10);
		k.s.host.cpu_percent = 10.0 + i / 7.0;
		k.s.host.load[0] = i / 3.0;
		assert_int_equal(history_record(h, &k.s), 0);
	}
}

/* range_text(h, gpu, from, to, points, in_sql): the range as compact JSON. */
static char *range_text(struct history *h, int gpu, long long from, long long to, unsigned points,
			bool in_sql)
{
	__do_json json_t *r = NULL;

	history_group_in_sql(h, in_sql);
	assert_int_equal(history_range(h, gpu, from, to, points, &r), 0);
	history_group_in_sql(h, false);
	return json_dumps(r, JSON_COMPACT);
}

/* At full resolution the rows grouped here give what SQLite's GROUP BY
 * gave, to the byte (the order of GPUs and members included). */
static void test_range_folded(void **state)
{
	static const unsigned points[] = { 0, 4, 7, 18, 179, 181, 5000 };
	static const int gpus[] = { -1, 0, 1, 5, 3 };
	struct fixture *f = *state;

	assert_int_equal(open_history(f, 3600, 30), 0);
	record_varied(f->h);
	for (size_t i = 0; i < ARRAY_SIZE(points); i++) {
		for (size_t g = 0; g < ARRAY_SIZE(gpus); g++) {
			long long from = T0 + (long long)(g * 1700), to = T0 + 180000 - (long long)(i * 900);
			__do_free char *folded = range_text(f->h, gpus[g], from, to, points[i], false);
			__do_free char *sql = range_text(f->h, gpus[g], from, to, points[i], true);

			assert_non_null(folded);
			assert_non_null(strstr(folded, "\"resolution\":\"sample\""));
			assert_string_equal(folded, sql);
		}
	}
	__do_free char *all = range_text(f->h, -1, T0, T0 + 180000, 0, false);
	assert_non_null(strstr(all, "\"uuid\":\"GPU-a\""));
	assert_non_null(strstr(all, "\"gpu\":5,\"uuid\":null,\"points\":[],\"members\":{\"c\":"));
}

static void test_range_minutes(void **state)
{
	struct fixture *f = *state;
	__do_json json_t *r = NULL, *tail = NULL, *many = NULL;

	assert_int_equal(open_history(f, 60, 1), 0);
	record_run(f->h, 0, TICKS);
	/* Two minutes folded, the third still in full rows only. */
	assert_int_equal(history_compact(f->h, T0 + 150000), 0);
	assert_int_equal(history_range(f->h, -1, T0, T0 + 180000, 3, &tail), 0);
	assert_string_equal(json_string_value(json_object_get(tail, "resolution")), "minute");
	check_three_minutes(tail);

	assert_int_equal(history_compact(f->h, T0 + 180000), 0);
	assert_int_equal(history_range(f->h, -1, T0 + 5000, T0 + 180000, 0, &r), 0);
	assert_string_equal(json_string_value(json_object_get(r, "resolution")), "minute");
	assert_int_equal(number(r, "from"), T0);
	check_three_minutes(r);

	/* A long range: at most max_points buckets, each whole minutes. */
	assert_int_equal(history_range(f->h, -1, T0 - 30 * DAY_MS, T0 + 180000, 7, &many), 0);
	assert_true(json_array_size(json_object_get(gpu_entry(many, 0), "points")) <= 7);
	assert_int_equal((long long)number(many, "step_ms") % 60000, 0);
	assert_true(number(many, "step_ms") * 7 >= 30 * DAY_MS + 180000);
}

static json_t *usage_row(json_t *rows, const char *member)
{
	json_t *row;
	size_t i;

	json_array_foreach(rows, i, row)
		if (strcmp(json_string_value(json_object_get(row, "member")), member) == 0)
			return row;
	return NULL;
}

static void check_usage(struct history *h)
{
	__do_json json_t *rows = NULL;
	json_t *a, *b;

	assert_int_equal(history_usage(h, T0, T0 + 180000, &rows), 0);
	assert_int_equal(json_array_size(rows), 2);
	b = json_array_get(rows, 0);
	a = json_array_get(rows, 1);
	assert_string_equal(json_string_value(json_object_get(b, "member")), "b");
	assert_string_equal(json_string_value(json_object_get(a, "member")), "a");
	assert_null(usage_row(rows, ""));
	assert_near(number(a, "gpu_hours"), 120.0 / 3600, 1e-9);
	assert_near(number(a, "gpu_mem_gib_hours"), 240.0 / 3600, 1e-9);
	assert_near(number(a, "max_mem_used"), 2.0 * GIB, 0);
	assert_near(number(b, "gpu_hours"), 179.0 / 3600, 1e-9);
	assert_near(number(b, "gpu_mem_gib_hours"), 1.5 * 179 / 3600, 1e-9);
	assert_near(number(b, "max_mem_used"), 1.5 * GIB, 0);
}

static void test_usage(void **state)
{
	struct fixture *f = *state;
	__do_json json_t *part = NULL, *empty = NULL;

	assert_int_equal(open_history(f, 3600, 30), 0);
	record_run(f->h, 0, TICKS);
	/* Full rows only, then part folded, then all: never counted twice. */
	check_usage(f->h);
	assert_int_equal(history_compact(f->h, T0 + 150000), 0);
	check_usage(f->h);
	assert_int_equal(history_compact(f->h, T0 + 180000), 0);
	check_usage(f->h);

	assert_int_equal(history_usage(f->h, T0 + 60000, T0 + 120000, &part), 0);
	assert_near(number(usage_row(part, "a"), "gpu_hours"), 60.0 / 3600, 1e-9);
	assert_near(number(usage_row(part, "b"), "gpu_hours"), 60.0 / 3600, 1e-9);
	assert_int_equal(history_usage(f->h, T0 - DAY_MS, T0 - HOUR_MS, &empty), 0);
	assert_int_equal(json_array_size(empty), 0);
	json_t *bad = NULL;
	assert_int_equal(history_usage(f->h, T0, T0 - 1, &bad), -EINVAL);
	assert_null(bad);
}

/* a holds GPU 0 idle for ticks [10, 70) of 100 (marked by idle.c), b busy
 * beside it on GPU 1: 60 idle seconds for a, none for b, before and after
 * the minutes are folded. */
static void test_idle_usage(void **state)
{
	struct fixture *f = *state;
	struct tick k;

	assert_int_equal(open_history(f, 3600, 30), 0);
	for (int i = 0; i < 100; i++) {
		start_tick(&k, T0 + i * 1000LL);
		add_gpu(&k, 0, i >= 10 && i < 70 ? 0 : 50, 80 * GIB);
		add_gpu(&k, 1, 50, 80 * GIB);
		add_process(&k, 0, "a", 100, GIB, -1);
		k.procs[0].idle = i >= 10 && i < 70;
		add_process(&k, 1, "b", 200, GIB, 50);
		assert_int_equal(history_record(f->h, &k.s), 0);
	}
	for (int pass = 0; pass < 2; pass++) {
		__do_json json_t *rows = NULL;

		assert_int_equal(history_usage(f->h, T0, T0 + HOUR_MS, &rows), 0);
		assert_near(number(usage_row(rows, "a"), "gpu_hours"), 99.0 / 3600, 1e-9);
		assert_near(number(usage_row(rows, "a"), "idle_gpu_hours"), 60.0 / 3600, 1e-9);
		assert_near(number(usage_row(rows, "b"), "idle_gpu_hours"), 0, 0);
		assert_int_equal(history_compact(f->h, T0 + 120000), 0);
	}
	assert_int_equal(count_rows(f, "SELECT sum(idle_seconds) FROM member_minutes WHERE member = 'a'"), 60);
}

/* The schema of version 1 (before idle time), as such a file holds it. */
static const char history_v1_schema[] =
	"CREATE TABLE meta (key TEXT PRIMARY KEY, value);"
	"CREATE TABLE gpu_samples (t INTEGER NOT NULL, gpu INTEGER NOT NULL, uuid TEXT, util INTEGER,"
	"  mem_used INTEGER, mem_total INTEGER, temperature INTEGER, power_mw INTEGER,"
	"  PRIMARY KEY (t, gpu)) WITHOUT ROWID;"
	"CREATE TABLE member_samples (t INTEGER NOT NULL, gpu INTEGER NOT NULL, member TEXT NOT NULL,"
	"  mem_used INTEGER, sm_util INTEGER, processes INTEGER NOT NULL DEFAULT 1,"
	"  interval_ms INTEGER NOT NULL DEFAULT 1000, PRIMARY KEY (t, gpu, member)) WITHOUT ROWID;"
	"CREATE TABLE host_samples (t INTEGER PRIMARY KEY, cpu_percent REAL, mem_used INTEGER,"
	"  mem_total INTEGER, load1 REAL, disk_used INTEGER, net_rx_rate REAL, net_tx_rate REAL);"
	"CREATE TABLE gpu_minutes (t INTEGER NOT NULL, gpu INTEGER NOT NULL, uuid TEXT, util_avg REAL,"
	"  util_max INTEGER, mem_used_avg REAL, mem_used_max INTEGER, mem_total INTEGER,"
	"  temperature_max INTEGER, power_mw_avg REAL, samples INTEGER NOT NULL DEFAULT 60,"
	"  PRIMARY KEY (t, gpu)) WITHOUT ROWID;"
	"CREATE TABLE member_minutes (t INTEGER NOT NULL, gpu INTEGER NOT NULL, member TEXT NOT NULL,"
	"  mem_used_avg REAL, mem_used_max INTEGER, sm_util_avg REAL, processes_max INTEGER,"
	"  seconds REAL NOT NULL DEFAULT 60, samples INTEGER NOT NULL DEFAULT 60,"
	"  PRIMARY KEY (t, gpu, member)) WITHOUT ROWID;"
	"CREATE TABLE host_minutes (t INTEGER PRIMARY KEY, cpu_avg REAL, mem_used_avg REAL,"
	"  mem_total INTEGER, load1_avg REAL, disk_used INTEGER, net_rx_avg REAL, net_tx_avg REAL,"
	"  samples INTEGER NOT NULL DEFAULT 60);"
	"INSERT INTO member_minutes (t, gpu, member, mem_used_avg, mem_used_max)"
	" VALUES (1763906400000, 0, 'c', 1073741824, 1073741824);"
	/* Full rows, a row per GPU and per member: a tick with both, one
	 * with GPUs alone, one with members alone; NULLs; the host's ''. */
	"INSERT INTO gpu_samples VALUES (1763906401000, 0, 'GPU-a', 50, 1000, 2000, 40, 100000),"
	" (1763906401000, 1, NULL, NULL, NULL, NULL, NULL, NULL),"
	" (1763906402000, 0, 'GPU-a', 60, 1100, 2000, -41, 110000);"
	"INSERT INTO member_samples VALUES (1763906401000, 0, 'b', NULL, NULL, 2, 1000),"
	" (1763906401000, 0, 'a', 500, 20, 1, 1000), (1763906401000, 1, '', 300, 5, 1, 1000),"
	" (1763906403000, 0, 'a', 600, 30, 1, 1000);"
	"PRAGMA user_version = 1;";

/* The first column of the first row as text ("" for none), in dst. */
static void text_of(const struct fixture *f, const char *sql, char *dst, size_t size)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *stmt = NULL;

	dst[0] = '\0';
	assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(history_attach_views(db), 0);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
	if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0))
		snprintf(dst, size, "%s", (const char *)sqlite3_column_text(stmt, 0));
	sqlite3_finalize(stmt);
	sqlite3_close(db);
}

/* c holds GPU 0 idle at t. */
static void record_idle_c(struct history *h, long long t)
{
	struct tick k;

	start_tick(&k, t);
	add_gpu(&k, 0, 0, 80 * GIB);
	add_process(&k, 0, "c", 100, GIB, -1);
	k.procs[0].idle = true;
	assert_int_equal(history_record(h, &k.s), 0);
}

/* A version 1 file is upgraded in place: its past kept, idle time 0. */
static void test_upgrade_v1(void **state)
{
	struct fixture *f = *state;
	__do_json json_t *rows = NULL;
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, history_v1_schema, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	char text[512];

	assert_int_equal(open_history(f, 3600, 30), 0);
	assert_int_equal(count_rows(f, "PRAGMA user_version"), 3);
	/* Version 3 packs a tick's rows into one (tickpack.h), in the order
	 * of GPU and member; the views show them as before. */
	assert_int_equal(count_rows(f, "SELECT count(*) FROM gpu_ticks"), 3);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM sqlite_master WHERE name LIKE '%_samples'"), 1);
	text_of(f, "SELECT group_concat((t - 1763906400000) || ':' || gpu || ':' || ifnull(uuid, '-') || ':'"
		" || ifnull(util, '-') || ':' || ifnull(mem_used, '-') || ':' || ifnull(mem_total, '-')"
		" || ':' || ifnull(temperature, '-') || ':' || ifnull(power_mw, '-'), ' ') FROM gpu_samples",
		text, sizeof(text));
	assert_string_equal(text, "1000:0:GPU-a:50:1000:2000:40:100000 1000:1:-:-:-:-:-:- "
			    "2000:0:GPU-a:60:1100:2000:-41:110000");
	text_of(f, "SELECT group_concat((t - 1763906400000) || ':' || gpu || ':' || member || ':'"
		" || ifnull(mem_used, '-') || ':' || ifnull(sm_util, '-') || ':' || processes || ':'"
		" || interval_ms || ':' || idle_ms, ' ') FROM member_samples", text, sizeof(text));
	assert_string_equal(text, "1000:0:a:500:20:1:1000:0 1000:0:b:-:-:2:1000:0 1000:1::300:5:1:1000:0 "
			    "3000:0:a:600:30:1:1000:0");
	assert_int_equal(count_rows(f, "SELECT count(*) FROM gpu_ticks WHERE t = 1763906402000 AND members IS NULL"), 1);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM gpu_ticks WHERE t = 1763906403000 AND gpus IS NULL"), 1);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM member_minutes WHERE idle_seconds = 0"), 1);
	record_idle_c(f->h, T0 + 120000);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM member_samples WHERE idle_ms > 0"), 0);
	record_idle_c(f->h, T0 + 121000);
	assert_int_equal(count_rows(f, "SELECT idle_ms FROM member_samples WHERE t = 1763906521000"), 1000);
	assert_int_equal(history_usage(f->h, T0, T0 + HOUR_MS, &rows), 0);
	assert_near(number(usage_row(rows, "c"), "gpu_hours"), 61.0 / 3600, 1e-9);
	assert_near(number(usage_row(rows, "c"), "idle_gpu_hours"), 1.0 / 3600, 1e-9);
}

static void record_a(struct history *h, long long t)
{
	struct tick k;

	start_tick(&k, t);
	add_gpu(&k, 0, 50, 80 * GIB);
	add_process(&k, 0, "a", 100, 1 * GIB, 10);
	assert_int_equal(history_record(h, &k.s), 0);
}

static double a_seconds(struct history *h, long long from, long long to)
{
	__do_json json_t *rows = NULL;

	assert_int_equal(history_usage(h, from, to, &rows), 0);
	return number(usage_row(rows, "a"), "gpu_hours") * 3600;
}

/* A gap (the agent stopped, across a restart) counts 5 s, not its length;
 * ticks a minute apart count whole, but for the first gap after the
 * restart. */
static void test_gaps(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(open_history(f, 3600, 30), 0);
	for (int i = 0; i < 10; i++)
		record_a(f->h, T0 + i * 1000LL);
	history_close(f->h);
	f->h = NULL;
	assert_int_equal(open_history(f, 3600, 30), 0);
	record_a(f->h, T0 + 600000);
	record_a(f->h, T0 + 601000);
	assert_near(a_seconds(f->h, T0, T0 + HOUR_MS), 9 + 5 + 1, 1e-6);

	for (int i = 0; i < 5; i++)
		record_a(f->h, T0 + 2 * HOUR_MS + i * 60000LL);
	assert_near(a_seconds(f->h, T0 + 2 * HOUR_MS, T0 + 3 * HOUR_MS), 5 + 4 * 60, 1e-6);
}

static void test_prune(void **state)
{
	struct fixture *f = *state;
	__do_json json_t *rows = NULL;

	assert_int_equal(open_history(f, 60, 1), 0);
	record_run(f->h, 0, TICKS);
	assert_int_equal(history_compact(f->h, T0 + 180000), 0);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM gpu_samples"), 2 * 60);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM host_samples"), 60);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM member_samples WHERE t < 1763906520000"), 0);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM gpu_minutes"), 6);
	/* The usage survives the pruning of the rows it came from. */
	check_usage(f->h);

	/* Two days on: the minutes of the run are gone too. */
	record_a(f->h, T0 + 2 * DAY_MS);
	assert_int_equal(history_compact(f->h, T0 + 2 * DAY_MS + 1000), 0);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM gpu_minutes"), 0);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM member_minutes"), 0);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM host_minutes"), 0);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM gpu_samples"), 1);
	assert_int_equal(history_usage(f->h, T0, T0 + 180000, &rows), 0);
	assert_int_equal(json_array_size(rows), 0);
}

static void test_reopen(void **state)
{
	struct fixture *f = *state;
	__do_json json_t *o = NULL;
	char wal[PATH_MAX + 8];
	struct stat st;

	assert_int_equal(open_history(f, 3600, 30), 0);
	record_run(f->h, 0, 120);
	assert_int_equal(history_compact(f->h, T0 + 100000), 0);
	history_close(f->h);
	f->h = NULL;
	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	assert_int_equal(chmod(f->path, 0644), 0);

	assert_int_equal(open_history(f, 3600, 30), 0);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	if (stat(wal, &st) == 0)
		assert_int_equal(st.st_mode & 0777, 0600);
	record_run(f->h, 120, TICKS);
	assert_int_equal(history_compact(f->h, T0 + 180000), 0);
	check_usage(f->h);
	assert_int_equal(history_gpu_at(f->h, 0, T0 + 1000, &o), 0);
	assert_int_equal(number(o, "time"), T0 + 1000);

	/* A file of a newer schema version is left alone. */
	history_close(f->h);
	f->h = NULL;
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99",
				      NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(open_history(f, 3600, 30), -EPROTONOSUPPORT);
	assert_null(f->h);
}

/* The system tests write a past with the sqlite3 shell: minute rows with
 * the defaults of their columns are read back. */
static void test_synthetic_past(void **state)
{
	struct fixture *f = *state;
	__do_json json_t *rows = NULL, *o = NULL, *r = NULL;
	sqlite3 *db = NULL;

	assert_int_equal(open_history(f, 3600, 30), 0);
	history_close(f->h);
	f->h = NULL;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
		"DELETE FROM meta WHERE key = 'aggregated_until';"
		"INSERT INTO gpu_minutes (t, gpu, uuid, util_avg, mem_used_avg, mem_total)"
		" VALUES (1763906400000, 0, 'GPU-x', 75, 1073741824, 85899345920);"
		"INSERT INTO member_minutes (t, gpu, member, mem_used_avg, mem_used_max)"
		" VALUES (1763906400000, 0, 'c', 1073741824, 1073741824),"
		" (1763906460000, 0, 'c', 1073741824, 1073741824);",
		NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(open_history(f, 3600, 30), 0);
	assert_int_equal(history_usage(f->h, T0, T0 + HOUR_MS, &rows), 0);
	assert_near(number(usage_row(rows, "c"), "gpu_hours"), 120.0 / 3600, 1e-9);
	assert_near(number(usage_row(rows, "c"), "gpu_mem_gib_hours"), 120.0 / 3600, 1e-9);
	assert_int_equal(history_gpu_at(f->h, 0, T0 + 59000, &o), 0);
	assert_int_equal(number(o, "util"), 75);
	assert_int_equal(history_range(f->h, 0, T0, T0 + HOUR_MS, 0, &r), 0);
	assert_string_equal(json_string_value(json_object_get(r, "resolution")), "minute");
	assert_int_equal(json_array_size(json_object_get(gpu_entry(r, 0), "points")), 1);
	assert_int_equal(json_array_size(member_series(r, 0, "c")), 2);
}

static long long file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (long long)st.st_size : 0;
}

static long long history_size(const struct fixture *f)
{
	char other[PATH_MAX + 8];
	long long size = file_size(f->path);

	snprintf(other, sizeof(other), "%s-wal", f->path);
	size += file_size(other);
	snprintf(other, sizeof(other), "%s-shm", f->path);
	return size + file_size(other);
}

/* A day of ticks 20 s apart at 8 GPUs, 4 members on each, folded every
 * simulated minute. */
static void record_day(struct history *h, long long start)
{
	static const char *const members[] = { "alice", "bob", "carol", "dave" };
	struct tick k;

	for (long long t = start; t < start + DAY_MS; t += 20000) {
		start_tick(&k, t);
		for (unsigned g = 0; g < 8; g++)
			add_gpu(&k, g, (int)((t / 20000 + g) % 100), 80 * GIB);
		for (unsigned g = 0; g < 8; g++)
			for (size_t m = 0; m < ARRAY_SIZE(members); m++)
				if (k.s.nprocs < ARRAY_SIZE(k.procs))
					add_process(&k, g, members[(g + m) % 4], (pid_t)(1000 + g * 4 + m),
						    (g + 1) * GIB, 20);
		assert_int_equal(history_record(h, &k.s), 0);
		if (t % 60000 == 0)
			assert_int_equal(history_compact(h, t), 0);
	}
}

static void test_bounded_size(void **state)
{
	struct fixture *f = *state;
	long long first, second;

	assert_int_equal(open_history(f, 60, 1), 0);
	record_day(f->h, T0);
	first = history_size(f);
	record_day(f->h, T0 + DAY_MS);
	second = history_size(f);
	print_message("history: %lld bytes after a day, %lld after two (db %lld)\n", first, second, file_size(f->path));
	assert_true(second <= first + first / 4 + 256 * 1024);
	assert_true(second < 64LL * 1024 * 1024);
	/* A day of minutes at most (and the minute being filled). */
	assert_true(count_rows(f, "SELECT count(*) FROM gpu_minutes") <= 8 * 1441);
	/* A minute of full rows, and those recorded since the last compaction. */
	assert_true(count_rows(f, "SELECT count(*) FROM gpu_samples") <= 8 * 6);
}

struct worker {
	struct history *h;
	int failures;
};

static void *reader(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < 100; i++) {
		json_t *o = NULL;
		int ret = history_gpu_at(w->h, 0, T0 + (i % TICKS) * 1000LL, &o);

		json_decref(o);
		o = NULL;
		if (ret < 0 && ret != -ENOENT)
			w->failures++;
		if (history_range(w->h, -1, T0, T0 + 180000, 50, &o) < 0)
			w->failures++;
		json_decref(o);
		o = NULL;
		if (history_usage(w->h, T0, T0 + 180000, &o) < 0)
			w->failures++;
		json_decref(o);
	}
	return NULL;
}

/* The sampler records and compacts while requests read. */
static void test_threads(void **state)
{
	struct fixture *f = *state;
	struct worker w[2];
	pthread_t threads[2];

	assert_int_equal(open_history(f, 60, 1), 0);
	for (size_t i = 0; i < ARRAY_SIZE(w); i++) {
		w[i] = (struct worker){ .h = f->h };
		assert_int_equal(pthread_create(&threads[i], NULL, reader, &w[i]), 0);
	}
	for (int i = 0; i < TICKS; i++) {
		struct tick k;

		run_tick(&k, i);
		assert_int_equal(history_record(f->h, &k.s), 0);
		if (i % 10 == 0)
			assert_int_equal(history_compact(f->h, k.s.time_ms), 0);
	}
	for (size_t i = 0; i < ARRAY_SIZE(w); i++) {
		assert_int_equal(pthread_join(threads[i], NULL), 0);
		assert_int_equal(w[i].failures, 0);
	}
	assert_int_equal(history_compact(f->h, T0 + 180000), 0);
	check_usage(f->h);
}

/* A damaged packed tick (history.db is not the members', but a disk may
 * fail): an error of the query that reads it, never a shorter answer. */
static void test_damaged_tick(void **state)
{
	struct fixture *f = *state;
	json_t *r = NULL;
	sqlite3 *db = NULL;
	struct tick k;

	assert_int_equal(open_history(f, 3600, 30), 0);
	start_tick(&k, T0);
	add_gpu(&k, 0, 50, 80 * GIB);
	assert_int_equal(history_record(f->h, &k.s), 0);
	assert_int_equal(history_range(f->h, -1, T0, T0 + 10000, 0, &r), 0);
	json_decref(r);
	r = NULL;
	/* GPU 2's row cut short after its index. */
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "INSERT INTO gpu_ticks VALUES (1763906405000, x'010705', NULL)",
				      NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(history_range(f->h, -1, T0, T0 + 10000, 0, &r), -EIO);
	assert_null(r);
	assert_true(history_gpu_at(f->h, 2, T0 + 5000, &r) < 0);
	assert_null(r);
	/* The ticks before it still read one at a time. */
	assert_int_equal(history_gpu_at(f->h, 0, T0, &r), 0);
	json_decref(r);
}

static void test_refused(void **state)
{
	struct fixture *f = *state;
	struct history_limits limits = { .full_seconds = 10, .minute_days = 1 };
	struct history *h = NULL;
	struct tick k;
	char linkpath[PATH_MAX];

	assert_int_equal(history_open(f->path, &limits, &h), -EINVAL);
	limits = (struct history_limits){ .full_seconds = 60, .minute_days = 0 };
	assert_int_equal(history_open(f->path, &limits, &h), -EINVAL);
	tu_join(linkpath, sizeof(linkpath), f->dir, "link.db");
	tu_make_link(f->dir, "link.db", "history.db");
	limits.minute_days = 1;
	assert_true(history_open(linkpath, &limits, &h) < 0);
	assert_null(h);

	assert_int_equal(open_history(f, 60, 1), 0);
	start_tick(&k, -5);
	assert_int_equal(history_record(f->h, &k.s), -EINVAL);
	start_tick(&k, T0);
	k.s.ngpus = 1;
	k.s.gpus = NULL;
	assert_int_equal(history_record(f->h, &k.s), -EINVAL);
	assert_int_equal(history_record(NULL, &k.s), -EINVAL);
	assert_int_equal(history_compact(f->h, -1), -EINVAL);

	/* A GPU that NVML lost, and a reading without NVML. */
	start_tick(&k, T0);
	add_gpu(&k, 0, 30, 80 * GIB);
	k.gpus[0].lost = true;
	add_process(&k, 0, "a", 100, UINT64_MAX, -1);
	assert_int_equal(history_record(f->h, &k.s), 0);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM gpu_samples WHERE util IS NULL AND mem_used IS NULL"), 1);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM member_samples WHERE mem_used IS NULL AND sm_util IS NULL"), 1);
	start_tick(&k, T0 + 1000);
	add_gpu(&k, 0, 30, 80 * GIB);
	k.s.gpu_ok = false;
	assert_int_equal(history_record(f->h, &k.s), 0);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM gpu_samples"), 1);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM host_samples"), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fold, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gpu_at, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gpu_at_minute, setup, teardown),
		cmocka_unit_test_setup_teardown(test_range_samples, setup, teardown),
		cmocka_unit_test_setup_teardown(test_range_minutes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_range_folded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_usage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_usage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upgrade_v1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gaps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_synthetic_past, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bounded_size, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_tick, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
