/* SPDX-License-Identifier: MIT */
/*
 * GPUs held idle (src/agent/monitor/idle.c): the tracker over synthetic
 * readings at chosen times (transitions, the memory threshold, the two
 * notices, whom reclaim chooses), the webhook's JSON body
 * (src/agent/notify.c) and the members' notices (src/agent/notices.c).
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

#include <jansson.h>

#include "monitor/monitor.h"
#include "notify.h"
#include "cleanup.h"
#include "banned.h"

#define MIB (1024ULL * 1024)
#define GIB (1024 * MIB)
#define SEC 1000LL

static const struct idle_settings test_settings = {
	.after = 60, .memory_min = 256 * MIB, .reclaim_after = 300,
};

struct test_world {
	struct nvml_gpu gpus[2];
	struct sample_process procs[8];
	struct sample s;
	struct idle_tracker *t;
	struct idle_events ev;
};

static void test_gpu(struct test_world *w, unsigned index, int util)
{
	w->gpus[index] = (struct nvml_gpu){ .index = index, .util_gpu = util, .mem_total = 80 * GIB };
	snprintf(w->gpus[index].uuid, sizeof(w->gpus[index].uuid), "GPU-%u", index);
}

static void test_proc(struct test_world *w, size_t i, unsigned gpu, pid_t pid, const char *member,
		      uint64_t mem)
{
	w->procs[i] = (struct sample_process){ .gpu = gpu, .pid = pid, .ns_pid = pid - 1000,
					       .start_ticks = 100 + (unsigned long long)pid,
					       .mem_used = mem, .sm_util = -1 };
	snprintf(w->procs[i].member, sizeof(w->procs[i].member), "%s", member);
	snprintf(w->procs[i].command, sizeof(w->procs[i].command), "job %d", (int)pid);
	if ((size_t)i + 1 > w->s.nprocs)
		w->s.nprocs = i + 1;
}

static struct test_world *test_world_new(const struct idle_settings *settings)
{
	struct test_world *w = calloc(1, sizeof(*w));

	assert_non_null(w);
	w->s.gpu_ok = true;
	w->s.gpus = w->gpus;
	w->s.ngpus = 2;
	w->s.procs = w->procs;
	test_gpu(w, 0, 0);
	test_gpu(w, 1, 50);
	assert_int_equal(idle_tracker_new(settings, &w->t), 0);
	return w;
}

static void test_world_free(struct test_world *w)
{
	idle_tracker_free(w->t);
	idle_events_free(&w->ev);
	free(w);
}

static void test_read(struct test_world *w, long long now)
{
	assert_int_equal(idle_tracker_update(w->t, &w->s, now, &w->ev), 0);
}

/* Readings every second from..to (seconds), inclusive. */
static size_t test_read_span(struct test_world *w, long long from, long long to,
			     size_t *notices, size_t *victims)
{
	size_t n = 0, v = 0;

	for (long long t = from; t <= to; t++) {
		test_read(w, t * SEC);
		n += w->ev.nnotices;
		v += w->ev.nvictims;
	}
	if (notices)
		*notices = n;
	if (victims)
		*victims = v;
	return n;
}

static void test_marks(void **state)
{
	struct test_world *w = test_world_new(&test_settings);

	(void)state;
	test_proc(w, 0, 0, 2001, "alice", 4 * GIB);       /* idle GPU, above the threshold */
	test_proc(w, 1, 0, 2002, "alice", 100 * MIB);     /* below it */
	test_proc(w, 2, 1, 2003, "bob", 4 * GIB);         /* a busy GPU */
	test_proc(w, 3, 0, 2004, "", 4 * GIB);            /* the host's own */
	test_proc(w, 4, 0, 2005, "carol", UINT64_MAX);    /* memory not known */
	test_read(w, 1000 * SEC);
	assert_int_equal(w->procs[0].idle_seconds, 0);
	assert_false(w->procs[0].idle);
	test_read(w, 1059 * SEC + 999);
	assert_int_equal(w->procs[0].idle_seconds, 59);
	assert_false(w->procs[0].idle);
	assert_int_equal(w->ev.nnotices, 0);
	test_read(w, 1060 * SEC);
	assert_int_equal(w->procs[0].idle_seconds, 60);
	assert_true(w->procs[0].idle);
	for (size_t i = 1; i < 5; i++) {
		assert_int_equal(w->procs[i].idle_seconds, 0);
		assert_false(w->procs[i].idle);
	}
	test_world_free(w);
}

static void test_busy_resets(void **state)
{
	struct test_world *w = test_world_new(&test_settings);

	(void)state;
	test_proc(w, 0, 0, 2001, "alice", GIB);
	test_read(w, 0);
	test_read(w, 50 * SEC);
	assert_int_equal(w->procs[0].idle_seconds, 50);
	/* One busy reading ends the period: the count starts again. */
	w->gpus[0].util_gpu = 3;
	test_read(w, 51 * SEC);
	assert_int_equal(w->procs[0].idle_seconds, 0);
	assert_int_equal(w->ev.nended, 1);
	assert_string_equal(w->ev.ended[0].member, "alice");
	assert_int_equal(w->ev.ended[0].gpu, 0);
	w->gpus[0].util_gpu = 0;
	test_read(w, 52 * SEC);
	test_read(w, 100 * SEC);
	assert_int_equal(w->procs[0].idle_seconds, 48);
	assert_false(w->procs[0].idle);
	/* Unknown utilisation (MIG) and a lost GPU are never idle. */
	w->gpus[0].util_gpu = -1;
	test_read(w, 200 * SEC);
	assert_int_equal(w->procs[0].idle_seconds, 0);
	w->gpus[0].util_gpu = 0;
	w->gpus[0].lost = true;
	test_read(w, 201 * SEC);
	assert_int_equal(w->procs[0].idle_seconds, 0);
	test_world_free(w);
}

static void test_reused_pid(void **state)
{
	struct test_world *w = test_world_new(&test_settings);

	(void)state;
	test_proc(w, 0, 0, 2001, "alice", GIB);
	test_read(w, 0);
	test_read(w, 70 * SEC);
	assert_true(w->procs[0].idle);
	/* The same pid, another process: idle from now only. */
	w->procs[0].start_ticks++;
	test_read(w, 71 * SEC);
	assert_int_equal(w->procs[0].idle_seconds, 0);
	assert_false(w->procs[0].idle);
	test_world_free(w);
}

static void test_two_notices(void **state)
{
	struct test_world *w = test_world_new(&(struct idle_settings){ .after = 60, .memory_min = 256 * MIB });
	size_t notices;

	(void)state;
	test_proc(w, 0, 0, 2001, "alice", GIB);
	test_proc(w, 1, 0, 2002, "alice", 2 * GIB);
	test_read_span(w, 0, 59, &notices, NULL);
	assert_int_equal(notices, 0);
	test_read(w, 60 * SEC);
	assert_int_equal(w->ev.nnotices, 1);
	assert_string_equal(w->ev.notices[0].member, "alice");
	assert_int_equal(w->ev.notices[0].gpu, 0);
	assert_int_equal(w->ev.notices[0].number, 1);
	assert_int_equal(w->ev.notices[0].idle_seconds, 60);
	assert_int_equal(w->ev.notices[0].processes, 2);
	assert_true(w->ev.notices[0].mem_used == 3 * GIB);
	assert_int_equal(w->ev.notices[0].reclaim_in, 0);
	test_read_span(w, 61, 119, &notices, NULL);
	assert_int_equal(notices, 0);
	test_read(w, 120 * SEC);
	assert_int_equal(w->ev.nnotices, 1);
	assert_int_equal(w->ev.notices[0].number, 2);
	/* Two per period, however long it lasts. */
	test_read_span(w, 121, 1000, &notices, NULL);
	assert_int_equal(notices, 0);
	/* A new period after a busy spell: notices again. */
	w->gpus[0].util_gpu = 10;
	test_read(w, 1001 * SEC);
	w->gpus[0].util_gpu = 0;
	test_read_span(w, 1002, 1062, &notices, NULL);
	assert_int_equal(notices, 1);
	test_world_free(w);
}

static void test_periods_per_member(void **state)
{
	struct test_world *w = test_world_new(&test_settings);

	(void)state;
	test_gpu(w, 1, 0);
	test_proc(w, 0, 0, 2001, "alice", GIB);
	test_proc(w, 1, 1, 2002, "alice", GIB);
	test_proc(w, 2, 0, 2003, "bob", GIB);
	test_read(w, 0);
	test_read(w, 60 * SEC);
	assert_int_equal(w->ev.nnotices, 3);
	test_world_free(w);
}

static void test_reclaim_choice(void **state)
{
	struct test_world *w = test_world_new(&test_settings);
	size_t victims;

	(void)state;
	test_proc(w, 0, 0, 2001, "alice", GIB);           /* idle: to be ended */
	test_proc(w, 1, 0, 2002, "alice", 100 * MIB);     /* below the threshold: spared */
	test_proc(w, 2, 1, 2003, "alice", GIB);           /* on the busy GPU: spared */
	test_proc(w, 3, 0, 2004, "bob", GIB);             /* idle too, but it also... */
	test_proc(w, 4, 1, 2004, "bob", GIB);             /* ...holds the busy GPU: spared */
	test_read_span(w, 0, 299, NULL, &victims);
	assert_int_equal(victims, 0);
	test_read(w, 300 * SEC);
	assert_int_equal(w->ev.nvictims, 1);
	assert_int_equal(w->ev.victims[0].pid, 2001);
	assert_int_equal(w->ev.victims[0].ns_pid, 1001);
	assert_int_equal(w->ev.victims[0].start_ticks, 2101);
	assert_string_equal(w->ev.victims[0].member, "alice");
	assert_string_equal(w->ev.victims[0].command, "job 2001");
	/* Once: it is ending. */
	test_read_span(w, 301, 400, NULL, &victims);
	assert_int_equal(victims, 0);
	test_world_free(w);
}

/* With reclaim_after at twice idle_after, the second notice and its
 * reading come before any end. */
static void test_reclaim_after_notices(void **state)
{
	struct test_world *w = test_world_new(&(struct idle_settings){
		.after = 60, .memory_min = 256 * MIB, .reclaim_after = 120 });
	size_t notices, victims;

	(void)state;
	test_proc(w, 0, 0, 2001, "alice", GIB);
	test_read_span(w, 0, 119, &notices, &victims);
	assert_int_equal(notices, 1);
	assert_int_equal(victims, 0);
	test_read(w, 120 * SEC);
	assert_int_equal(w->ev.nnotices, 1);
	assert_int_equal(w->ev.notices[0].number, 2);
	assert_int_equal(w->ev.nvictims, 0);
	test_read(w, 121 * SEC);
	assert_int_equal(w->ev.nvictims, 1);
	/* A process that joined the period later waits for its own time. */
	test_proc(w, 1, 0, 2002, "alice", GIB);
	test_read_span(w, 122, 241, NULL, &victims);
	assert_int_equal(victims, 0);
	test_read(w, 242 * SEC);
	assert_int_equal(w->ev.nvictims, 1);
	assert_int_equal(w->ev.victims[0].pid, 2002);
	test_world_free(w);
}

static void test_no_gpu_reading(void **state)
{
	struct test_world *w = test_world_new(&test_settings);

	(void)state;
	test_proc(w, 0, 0, 2001, "alice", GIB);
	w->s.gpu_ok = false;
	test_read(w, 0);
	test_read(w, 500 * SEC);
	assert_int_equal(w->procs[0].idle_seconds, 0);
	assert_int_equal(w->ev.nnotices + w->ev.nvictims, 0);
	test_world_free(w);
}

/* ---- the webhook's body and the members' notices ------------------------------ */

static void test_webhook_body(void **state)
{
	__do_free char *body = notify_body("a \"quoted\" back\\slash\nline\ttab \x01 caf\xc3\xa9 <b>&");
	__do_json json_t *parsed = NULL;
	char plain[8];

	(void)state;
	assert_non_null(body);
	assert_string_equal(body, "{\"text\":\"a \\\"quoted\\\" back\\\\slash\\nline?tab ? caf?? <b>&\"}");
	parsed = json_loads(body, 0, NULL);
	assert_non_null(parsed);
	assert_int_equal(json_object_size(parsed), 1);
	assert_string_equal(json_string_value(json_object_get(parsed, "text")),
			    "a \"quoted\" back\\slash\nline?tab ? caf?? <b>&");
	notify_plain_text(plain, sizeof(plain), "abcdefghij");
	assert_string_equal(plain, "abcdefg");
}

static void test_notices(void **state)
{
	struct notices *b = NULL;
	__do_json json_t *alice = NULL, *again = NULL, *bob = NULL;
	char key[16];

	(void)state;
	assert_int_equal(notices_new(&b), 0);
	assert_null(notices_take(b, "alice"));
	notices_post(b, "alice", "idle:0", "GPU 0, first");
	notices_post(b, "alice", "idle:1", "GPU 1");
	notices_post(b, "alice", "idle:0", "GPU 0, second \xff");
	notices_post(b, "bob", "idle:0", "bob's");
	notices_withdraw(b, "alice", "idle:1");
	alice = notices_take(b, "alice");
	assert_int_equal(json_array_size(alice), 1);
	assert_string_equal(json_string_value(json_array_get(alice, 0)), "GPU 0, second ?");
	/* Once only. */
	again = notices_take(b, "alice");
	assert_null(again);
	/* Bounded: the newest eight of a member who never asks. */
	for (int i = 0; i < 20; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		notices_post(b, "bob", key, key);
	}
	bob = notices_take(b, "bob");
	assert_int_equal(json_array_size(bob), 8);
	assert_string_equal(json_string_value(json_array_get(bob, 0)), "k12");
	assert_string_equal(json_string_value(json_array_get(bob, 7)), "k19");
	notices_free(b);
}

/* Which GPUs a reservation counts idle (idle_gpus()): a process marked
 * idle or a small one leaves a GPU idle; one not marked yet, a GPU at
 * work, one lost or a reading without NVML do not. */
static void test_idle_gpus(void **state)
{
	struct test_world *w = test_world_new(&test_settings);

	(void)state;
	assert_int_equal(idle_gpus(&w->s, 256 * MIB), 1);           /* no process; GPU 1 at 50 % */
	test_proc(w, 0, 0, 2001, "alice", 4 * GIB);
	test_read(w, 0);
	assert_int_equal(idle_gpus(&w->s, 256 * MIB), 0);           /* not marked yet */
	test_read(w, 60 * SEC);
	assert_true(w->procs[0].idle);
	assert_int_equal(idle_gpus(&w->s, 256 * MIB), 1);
	test_proc(w, 1, 0, 2002, "alice", 100 * MIB);
	test_read(w, 61 * SEC);
	assert_int_equal(idle_gpus(&w->s, 256 * MIB), 1);           /* the small one too */
	w->procs[1].mem_used = UINT64_MAX;
	test_read(w, 62 * SEC);
	assert_int_equal(idle_gpus(&w->s, 256 * MIB), 0);           /* memory not known */
	w->procs[1].mem_used = 100 * MIB;
	w->gpus[0].lost = true;
	assert_int_equal(idle_gpus(&w->s, 256 * MIB), 0);
	w->gpus[0].lost = false;
	w->gpus[1].util_gpu = 0;
	assert_int_equal(idle_gpus(&w->s, 256 * MIB), 3);
	w->gpus[1].util_gpu = -1;                                   /* MIG: not known */
	assert_int_equal(idle_gpus(&w->s, 256 * MIB), 1);
	w->s.gpu_ok = false;
	assert_int_equal(idle_gpus(&w->s, 256 * MIB), 0);
	test_world_free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_marks),
		cmocka_unit_test(test_busy_resets),
		cmocka_unit_test(test_reused_pid),
		cmocka_unit_test(test_two_notices),
		cmocka_unit_test(test_periods_per_member),
		cmocka_unit_test(test_reclaim_choice),
		cmocka_unit_test(test_reclaim_after_notices),
		cmocka_unit_test(test_no_gpu_reading),
		cmocka_unit_test(test_idle_gpus),
		cmocka_unit_test(test_webhook_body),
		cmocka_unit_test(test_notices),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
