/* SPDX-License-Identifier: MIT */
/*
 * The NVML loader against tests/fake-nvml: state files in a temporary
 * directory describe the GPUs and processes, and are replaced while the
 * loader reads them.  One program, three meson tests:
 *   (no argument)   the fake of a recent driver (24-byte process entries);
 *   --wide          the fake of drivers 535.43-535.86 (32-byte entries);
 *   --no-library    no libnvidia-ml.so.1 on the library path at all.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "gpu/gpu.h"
#include "cleanup.h"
#include "strutil.h"
#include "testutil.h"

#include "banned.h"

static char workdir[PATH_MAX];
static char state_path[PATH_MAX];
static bool expect_wide;
static void *fake_library;
static unsigned long (*fake_calls)(const char *function);
static unsigned long long (*fake_last_seen)(unsigned index);
static long state_generation;

/* The arrays nvml_sample() fills, kept between calls as the sampler does. */
struct reading {
	struct nvml_gpu *gpus;
	size_t ngpus, gpu_cap;
	struct nvml_process *procs;
	size_t nprocs, proc_cap;
};

static void reading_free(struct reading *r)
{
	free(r->gpus);
	free(r->procs);
	*r = (struct reading){ 0 };
}

static int reading_take(struct nvml *n, struct reading *r)
{
	return nvml_sample(n, &r->gpus, &r->ngpus, &r->gpu_cap, &r->procs, &r->nprocs, &r->proc_cap);
}

static const struct nvml_process *reading_find(const struct reading *r, unsigned gpu, pid_t pid)
{
	for (size_t i = 0; i < r->nprocs; i++)
		if (r->procs[i].gpu == gpu && r->procs[i].pid == pid)
			return &r->procs[i];
	return NULL;
}

static size_t reading_count_on(const struct reading *r, unsigned gpu)
{
	size_t count = 0;

	for (size_t i = 0; i < r->nprocs; i++)
		count += r->procs[i].gpu == gpu;
	return count;
}

/* Replace the state file as the tests are meant to: a new file renamed over
 * the old, with an mtime never used before (a new inode may reuse the old
 * number, and two writes may fall in one clock tick). */
__attribute__((format(printf, 1, 2)))
static void state_write(const char *fmt, ...)
{
	__do_free char *text = NULL;
	struct timespec times[2];
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vasprintf(&text, fmt, ap);
	va_end(ap);
	assert_true(len >= 0);
	assert_int_equal(fsutil_write_atomic(state_path, text, (size_t)len, 0644), 0);
	times[0] = times[1] = (struct timespec){ .tv_sec = 1000000000 + ++state_generation };
	assert_int_equal(utimensat(AT_FDCWD, state_path, times, 0), 0);
}

/* A state of ngpus GPUs, each field derived from its index; extra lines
 * (processes) appended. */
__attribute__((format(printf, 2, 3)))
static void state_write_gpus(unsigned ngpus, const char *extra_fmt, ...)
{
	__do_free char *extra = NULL, *text = NULL;
	size_t len = 0;
	FILE *f;
	va_list ap;

	va_start(ap, extra_fmt);
	assert_true(vasprintf(&extra, extra_fmt, ap) >= 0);
	va_end(ap);
	f = open_memstream(&text, &len);
	assert_non_null(f);
	fprintf(f, "# %u GPUs\ndriver 535.104.05\ninit ok\n", ngpus);
	for (unsigned i = 0; i < ngpus; i++)
		fprintf(f, "gpu %u uuid=GPU-%08x-aaaa name=Fake_H100_80GB_HBM3 minor=%u bus=00000000:%02X:00.0 "
			   "util=%u memutil=%u total=%llu used=%llu temp=%u power=%u\n",
			i, 0xabc0 + i, 7 - i, 0x17 + i, 10 + i, 20 + i, 85899345920ULL, (i + 1ULL) << 30,
			40 + i, 100000 + 1000 * i);
	fprintf(f, "%s", extra);
	assert_true(memstream_close(f));
	state_write("%s", text);
}

static struct nvml *open_ok(void)
{
	struct nvml *n = NULL;
	char err[256] = "x";

	assert_int_equal(nvml_open(&n, err, sizeof(err)), 0);
	assert_non_null(n);
	assert_int_equal(nvml_wide_process_entries(n), expect_wide);
	return n;
}

static void test_driver_and_gpus(void **state)
{
	struct reading r = { 0 };
	struct nvml *n;

	for (unsigned ngpus = 2; ngpus <= 8; ngpus += 3) {
		state_write_gpus(ngpus, "%s", "");
		n = open_ok();
		assert_string_equal(nvml_driver_version(n), "535.104.05");
		assert_int_equal(nvml_gpu_count(n), ngpus);
		assert_int_equal(reading_take(n, &r), 0);
		assert_int_equal(r.ngpus, ngpus);
		assert_int_equal(r.nprocs, 0);
		for (unsigned i = 0; i < ngpus; i++) {
			const struct nvml_gpu *g = &r.gpus[i];
			char text[64];

			assert_int_equal(g->index, i);
			assert_int_equal(g->minor, 7 - i);
			snprintf(text, sizeof(text), "GPU-%08x-aaaa", 0xabc0 + i);
			assert_string_equal(g->uuid, text);
			assert_string_equal(g->name, "Fake H100 80GB HBM3");
			snprintf(text, sizeof(text), "00000000:%02X:00.0", 0x17 + i);
			assert_string_equal(g->bus_id, text);
			assert_false(g->lost);
			assert_false(g->mig);
			assert_int_equal(g->util_gpu, 10 + i);
			assert_int_equal(g->util_mem, 20 + i);
			assert_int_equal(g->mem_total, 85899345920ULL);
			assert_int_equal(g->mem_used, (i + 1ULL) << 30);
			assert_int_equal(g->temperature, 40 + i);
			assert_int_equal(g->power_mw, 100000 + 1000 * i);
		}
		nvml_close(n);
	}
	reading_free(&r);
}

static void test_processes(void **state)
{
	const struct nvml_process *p;
	struct reading r = { 0 };
	struct nvml *n;

	state_write_gpus(3, "proc 0 pid=1001 mem=1073741824 sm=35\n"
			    "proc 0 pid=1002 mem=536870912 type=graphics sm=5\n"
			    "proc 0 pid=1003 mem=2147483648 type=both\n"
			    "proc 2 pid=1001 mem=na sm=99\n"
			    "proc 2 pid=4194304 mem=1048576000 type=graphics\n");
	n = open_ok();
	assert_int_equal(reading_take(n, &r), 0);
	assert_int_equal(r.ngpus, 3);
	/* 1003 is both compute and graphics: listed once, as compute. */
	assert_int_equal(r.nprocs, 5);
	assert_int_equal(reading_count_on(&r, 0), 3);
	assert_int_equal(reading_count_on(&r, 1), 0);
	p = reading_find(&r, 0, 1001);
	assert_non_null(p);
	assert_int_equal(p->mem_used, 1073741824);
	assert_int_equal(p->sm_util, 35);
	assert_false(p->graphics);
	p = reading_find(&r, 0, 1002);
	assert_non_null(p);
	assert_int_equal(p->mem_used, 536870912);
	assert_int_equal(p->sm_util, 5);
	assert_true(p->graphics);
	p = reading_find(&r, 0, 1003);
	assert_non_null(p);
	assert_int_equal(p->mem_used, 2147483648);
	assert_int_equal(p->sm_util, -1);
	assert_false(p->graphics);
	/* The same pid on another GPU is another entry. */
	p = reading_find(&r, 2, 1001);
	assert_non_null(p);
	assert_int_equal(p->mem_used, UINT64_MAX);
	assert_int_equal(p->sm_util, 99);
	p = reading_find(&r, 2, 4194304);
	assert_non_null(p);
	assert_true(p->graphics);
	assert_int_equal(p->mem_used, 1048576000);
	nvml_close(n);
	reading_free(&r);
}

/* More processes than any first guess: INSUFFICIENT_SIZE, then a steady
 * state in which the caller's arrays stay as they are. */
static void test_many_processes(void **state)
{
	__do_free char *procs = NULL;
	size_t len = 0;
	struct reading r = { 0 };
	struct nvml_gpu *gpus;
	struct nvml_process *list;
	struct nvml *n;
	FILE *f;

	f = open_memstream(&procs, &len);
	assert_non_null(f);
	for (unsigned i = 0; i < 300; i++)
		fprintf(f, "proc 1 pid=%u mem=%u sm=%u%s\n", 20000 + i, (i + 1) << 20, i % 101,
			i % 3 == 0 ? " type=graphics" : "");
	for (unsigned i = 0; i < 5; i++)
		fprintf(f, "proc 0 pid=%u mem=%u\n", 30000 + i, 1u << 30);
	assert_true(memstream_close(f));
	state_write_gpus(2, "%s", procs);
	n = open_ok();
	assert_int_equal(reading_take(n, &r), 0);
	assert_int_equal(r.nprocs, 305);
	assert_int_equal(reading_count_on(&r, 1), 300);
	for (unsigned i = 0; i < 300; i++) {
		const struct nvml_process *p = reading_find(&r, 1, (pid_t)(20000 + i));

		assert_non_null(p);
		assert_int_equal(p->mem_used, (uint64_t)(i + 1) << 20);
		assert_int_equal(p->sm_util, (int)(i % 101));
		assert_int_equal(p->graphics, i % 3 == 0);
	}
	assert_non_null(reading_find(&r, 0, 30004));
	gpus = r.gpus;
	list = r.procs;
	for (int round = 0; round < 3; round++) {
		assert_int_equal(reading_take(n, &r), 0);
		assert_int_equal(r.nprocs, 305);
	}
	assert_ptr_equal(r.gpus, gpus);
	assert_ptr_equal(r.procs, list);
	nvml_close(n);
	reading_free(&r);
}

/* One GPU falls off the bus: the others are read, it is reported lost with
 * what was known of it, and it is read again once it answers. */
static void test_lost_gpu(void **state)
{
	static const char procs[] = "proc 0 pid=500 mem=1000000000\nproc 1 pid=501 mem=1000000000\n"
				    "proc 2 pid=502 mem=1000000000\n";
	struct reading r = { 0 };
	unsigned long handles;
	struct nvml *n;

	state_write_gpus(3, "%s", procs);
	n = open_ok();
	assert_int_equal(reading_take(n, &r), 0);
	assert_int_equal(r.nprocs, 3);

	{
		/* The same GPUs, the second one lost. */
		__do_free char *text = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&text, &len);

		assert_non_null(f);
		fprintf(f, "driver 535.104.05\n");
		for (unsigned i = 0; i < 3; i++)
			fprintf(f, "gpu %u uuid=GPU-%08x-aaaa name=Fake_H100_80GB_HBM3 minor=%u "
				   "bus=00000000:%02X:00.0 util=50 total=1000 used=10 temp=30 power=1000%s\n",
				i, 0xabc0 + i, 7 - i, 0x17 + i, i == 1 ? " lost=1" : "");
		fprintf(f, "%s", procs);
		assert_true(memstream_close(f));
		state_write("%s", text);
	}
	handles = fake_calls("nvmlDeviceGetHandleByIndex_v2");
	for (int round = 0; round < 2; round++) {
		assert_int_equal(reading_take(n, &r), 0);
		assert_int_equal(r.ngpus, 3);
		assert_false(r.gpus[0].lost);
		assert_true(r.gpus[1].lost);
		assert_false(r.gpus[2].lost);
		assert_int_equal(r.gpus[0].util_gpu, 50);
		assert_int_equal(r.gpus[2].util_gpu, 50);
		assert_int_equal(r.gpus[1].util_gpu, -1);
		assert_int_equal(r.gpus[1].temperature, -1);
		assert_int_equal(r.gpus[1].power_mw, -1);
		assert_int_equal(r.gpus[1].mem_total, 0);
		/* What was read before it was lost says which GPU it was. */
		assert_string_equal(r.gpus[1].uuid, "GPU-0000abc1-aaaa");
		assert_int_equal(r.gpus[1].minor, 6);
		assert_int_equal(r.nprocs, 2);
		assert_non_null(reading_find(&r, 0, 500));
		assert_null(reading_find(&r, 1, 501));
		assert_non_null(reading_find(&r, 2, 502));
	}
	/* Only the lost GPU's handle is asked for again, once per reading
	 * after the first that found it lost. */
	assert_int_equal(fake_calls("nvmlDeviceGetHandleByIndex_v2") - handles, 1);

	state_write_gpus(3, "%s", procs);
	assert_int_equal(reading_take(n, &r), 0);
	assert_false(r.gpus[1].lost);
	assert_int_equal(r.gpus[1].util_gpu, 11);
	assert_string_equal(r.gpus[1].name, "Fake H100 80GB HBM3");
	assert_int_equal(r.nprocs, 3);
	nvml_close(n);
	reading_free(&r);
}

/* A GPU lost from the start: nothing known of it, the others read. */
static void test_lost_from_start(void **state)
{
	struct reading r = { 0 };
	struct nvml *n;

	state_write("gpu 0 name=A util=1\ngpu 1 name=B lost=1\ngpu 2 name=C util=3\n");
	n = open_ok();
	assert_int_equal(reading_take(n, &r), 0);
	assert_int_equal(r.ngpus, 3);
	assert_true(r.gpus[1].lost);
	assert_string_equal(r.gpus[1].name, "");
	assert_int_equal(r.gpus[1].minor, UINT_MAX);
	assert_string_equal(r.gpus[0].name, "A");
	assert_int_equal(r.gpus[2].util_gpu, 3);
	nvml_close(n);
	reading_free(&r);
}

static void test_mig(void **state)
{
	struct reading r = { 0 };
	struct nvml *n;

	state_write("gpu 0 util=40 memutil=30 total=2000 used=1000 temp=50 power=200000 mig=1\n"
		    "gpu 1 util=40\n");
	n = open_ok();
	assert_int_equal(reading_take(n, &r), 0);
	assert_true(r.gpus[0].mig);
	assert_int_equal(r.gpus[0].util_gpu, -1);
	assert_int_equal(r.gpus[0].util_mem, -1);
	assert_int_equal(r.gpus[0].mem_total, 2000);
	assert_int_equal(r.gpus[0].mem_used, 1000);
	assert_int_equal(r.gpus[0].temperature, 50);
	assert_false(r.gpus[1].mig);
	assert_int_equal(r.gpus[1].util_gpu, 40);
	nvml_close(n);
	reading_free(&r);
}

static void test_open_errors(void **state)
{
	static const struct {
		const char *text;
		int ret;
		const char *words;
	} cases[] = {
		{ "init DRIVER_NOT_LOADED\ngpu 0\n", -ENODEV, "not loaded" },
		{ "init GPU_NOT_FOUND\n", -ENODEV, "GPU not found" },
		{ "init NO_PERMISSION\ngpu 0\n", -EIO, "Insufficient Permissions" },
		{ "init LIB_RM_VERSION_MISMATCH\ngpu 0\n", -EIO, "reboot" },
		{ "init UNKNOWN\ngpu 0\n", -EIO, "Unknown Error" },
		{ "driver 580.65.06\n", -ENODEV, "no GPU" },
		{ "gpu 0 colour=green\n", -EIO, "Unknown Error" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		unsigned long shutdowns = fake_calls("nvmlShutdown");
		/* Anything but NULL: a failed open must leave NULL behind. */
		struct nvml *n = (struct nvml *)&shutdowns;
		char err[256] = "";

		state_write("%s", cases[i].text);
		assert_int_equal(nvml_open(&n, err, sizeof(err)), cases[i].ret);
		assert_null(n);
		if (!strstr(err, cases[i].words))
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].words);
		/* Once initialised (a server without GPUs), it is shut down. */
		assert_int_equal(fake_calls("nvmlShutdown") - shutdowns, strstr(cases[i].text, "driver") ? 1 : 0);
	}
	assert_int_equal(nvml_open(NULL, NULL, 0), -EINVAL);
}

/* The file changed under a running loader: seen at the next reading, with
 * one count per reading and handles fetched again only when it changed. */
static void test_live_change(void **state)
{
	struct reading r = { 0 };
	unsigned long counts, handles, names;
	struct nvml *n;

	state_write_gpus(2, "proc 0 pid=700 mem=1000000000 sm=10\n");
	n = open_ok();
	assert_int_equal(reading_take(n, &r), 0);
	counts = fake_calls("nvmlDeviceGetCount_v2");
	handles = fake_calls("nvmlDeviceGetHandleByIndex_v2");
	names = fake_calls("nvmlDeviceGetName");
	for (int i = 0; i < 3; i++)
		assert_int_equal(reading_take(n, &r), 0);
	assert_int_equal(fake_calls("nvmlDeviceGetCount_v2") - counts, 3);
	assert_int_equal(fake_calls("nvmlDeviceGetHandleByIndex_v2") - handles, 0);
	assert_int_equal(fake_calls("nvmlDeviceGetName") - names, 0);
	assert_int_equal(r.ngpus, 2);
	assert_int_equal(r.gpus[1].util_gpu, 11);
	assert_int_equal(reading_find(&r, 0, 700)->sm_util, 10);

	state_write("driver 535.104.05\ngpu 0 util=77\ngpu 1 util=78\ngpu 2 name=New_one util=79\n"
		    "proc 2 pid=800 mem=5 sm=60\nproc 0 pid=700 mem=6 sm=20\n");
	assert_int_equal(reading_take(n, &r), 0);
	assert_int_equal(r.ngpus, 3);
	assert_int_equal(nvml_gpu_count(n), 3);
	assert_int_equal(r.gpus[0].util_gpu, 77);
	assert_int_equal(r.gpus[2].util_gpu, 79);
	assert_string_equal(r.gpus[2].name, "New one");
	assert_int_equal(reading_find(&r, 0, 700)->mem_used, 6);
	assert_int_equal(reading_find(&r, 0, 700)->sm_util, 20);
	assert_int_equal(reading_find(&r, 2, 800)->sm_util, 60);
	assert_int_equal(fake_calls("nvmlDeviceGetHandleByIndex_v2") - handles, 3);

	/* Without GPUs any more: a reading of none. */
	state_write("driver 535.104.05\n");
	assert_int_equal(reading_take(n, &r), 0);
	assert_int_equal(r.ngpus, 0);
	assert_int_equal(r.nprocs, 0);
	/* A file the library cannot read: an error, and nothing returned. */
	state_write("gpu 0 colour=green\n");
	assert_int_equal(reading_take(n, &r), -EIO);
	assert_int_equal(r.ngpus, 0);
	nvml_close(n);
	reading_free(&r);
}

/* The newest sample's time is passed back, so that values never lag; a
 * process without a sample keeps -1. */
static void test_utilisation_timestamp(void **state)
{
	struct reading r = { 0 };
	struct nvml *n;

	/* 900's older sample comes after its newer one. */
	state_write_gpus(2, "proc 0 pid=900 mem=1 sm=42 oldsm=7\nproc 0 pid=902 mem=1 oldsm=8\n"
			    "proc 1 pid=901 mem=1\n");
	n = open_ok();
	assert_int_equal(reading_take(n, &r), 0);
	assert_int_equal(fake_last_seen(0), 0);
	assert_int_equal(reading_find(&r, 0, 900)->sm_util, 42);
	assert_int_equal(reading_find(&r, 0, 902)->sm_util, 8);
	assert_int_equal(reading_find(&r, 1, 901)->sm_util, -1);
	assert_int_equal(reading_take(n, &r), 0);
	assert_true(fake_last_seen(0) > 0);
	assert_int_equal(fake_last_seen(1), 0);
	assert_int_equal(reading_find(&r, 0, 900)->sm_util, 42);
	/* 902's only sample is older than the last reading: none new. */
	assert_int_equal(reading_find(&r, 0, 902)->sm_util, -1);
	nvml_close(n);
	reading_free(&r);
}

static void test_memory_v1(void **state)
{
	struct reading r = { 0 };
	unsigned long v1;
	struct nvml *n;

	state_write("memory_v2 unsupported\ngpu 0 total=4000 used=1500\n");
	n = open_ok();
	v1 = fake_calls("nvmlDeviceGetMemoryInfo");
	assert_int_equal(reading_take(n, &r), 0);
	assert_int_equal(fake_calls("nvmlDeviceGetMemoryInfo") - v1, 1);
	assert_int_equal(r.gpus[0].mem_total, 4000);
	assert_int_equal(r.gpus[0].mem_used, 1500);
	nvml_close(n);
	reading_free(&r);
}

/* A driver that writes 32-byte entries without the symbols that give it
 * away: the PIDs read as 24-byte entries are impossible, the loader
 * switches; a batch impossible either way is dropped. */
static void test_entry_layout_checked(void **state)
{
	struct reading r = { 0 };
	struct nvml *n;

	state_write("layout 32\ngpu 0\ngpu 1\n"
		    "proc 0 pid=100 mem=1073741824 sm=1\nproc 0 pid=101 mem=2147483648 sm=2\n"
		    "proc 0 pid=102 mem=3221225472\n"
		    "proc 1 pid=200 mem=1073741824\n");
	n = open_ok();
	assert_int_equal(reading_take(n, &r), 0);
	assert_int_equal(r.nprocs, 4);
	assert_int_equal(reading_find(&r, 0, 101)->mem_used, 2147483648);
	assert_int_equal(reading_find(&r, 0, 101)->sm_util, 2);
	assert_int_equal(reading_find(&r, 0, 102)->mem_used, 3221225472);
	assert_int_equal(reading_find(&r, 1, 200)->mem_used, 1073741824);

	/* And back, when the driver writes 24 bytes again. */
	state_write("layout 24\ngpu 0\ngpu 1\n"
		    "proc 0 pid=100 mem=1073741824\nproc 0 pid=101 mem=2147483648\n");
	assert_int_equal(reading_take(n, &r), 0);
	assert_int_equal(r.nprocs, 2);
	assert_non_null(reading_find(&r, 0, 100));
	assert_int_equal(reading_find(&r, 0, 101)->mem_used, 2147483648);

	/* A pid above the kernel's limit: GPU 0's list is dropped, GPU 1's kept. */
	state_write("gpu 0\ngpu 1\nproc 0 pid=100 mem=na\nproc 0 pid=5000000 mem=na\n"
		    "proc 1 pid=300 mem=1073741824\n");
	assert_int_equal(reading_take(n, &r), 0);
	assert_int_equal(r.nprocs, 1);
	assert_non_null(reading_find(&r, 1, 300));
	nvml_close(n);
	reading_free(&r);
}

struct sampler_thread {
	struct nvml *n;
	int failures;
};

static void *sample_often(void *data)
{
	struct sampler_thread *t = data;
	struct reading r = { 0 };

	for (int i = 0; i < 200; i++)
		if (reading_take(t->n, &r) != 0 || r.ngpus != 2 || r.nprocs != 2 || nvml_gpu_count(t->n) != 2)
			t->failures++;
	reading_free(&r);
	return NULL;
}

/* Two threads reading through one handle: the lock keeps them apart. */
static void test_threads(void **state)
{
	struct sampler_thread t[2];
	pthread_t id[2];
	struct nvml *n;

	state_write_gpus(2, "proc 0 pid=10 mem=1 sm=1\nproc 1 pid=11 mem=2 type=graphics\n");
	n = open_ok();
	for (int i = 0; i < 2; i++) {
		t[i] = (struct sampler_thread){ .n = n };
		assert_int_equal(pthread_create(&id[i], NULL, sample_often, &t[i]), 0);
	}
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(id[i], NULL), 0);
		assert_int_equal(t[i].failures, 0);
	}
	nvml_close(n);
}

static void test_arguments(void **state)
{
	struct reading r = { 0 };
	struct nvml *n;

	nvml_close(NULL);
	state_write_gpus(2, "%s", "");
	n = open_ok();
	assert_int_equal(nvml_sample(n, NULL, &r.ngpus, &r.gpu_cap, &r.procs, &r.nprocs, &r.proc_cap),
			 -EINVAL);
	assert_int_equal(nvml_sample(NULL, &r.gpus, &r.ngpus, &r.gpu_cap, &r.procs, &r.nprocs, &r.proc_cap),
			 -EINVAL);
	/* Two handles at once: NVML counts its initialisations. */
	{
		struct nvml *second = open_ok();

		nvml_close(second);
	}
	assert_int_equal(reading_take(n, &r), 0);
	assert_int_equal(r.ngpus, 2);
	nvml_close(n);
	reading_free(&r);
}

static void test_no_library(void **state)
{
	struct nvml *n = NULL;
	char err[256] = "";
	int ret = nvml_open(&n, err, sizeof(err));

	if (ret != -ENOENT) {
		/* A host with a real driver: its library is found anyway. */
		nvml_close(n);
		skip();
	}
	assert_null(n);
	assert_string_equal(err, "no NVIDIA driver library (libnvidia-ml.so.1) on this server");
}

static int group_setup(void **state)
{
	if (tu_make_tempdir(workdir, sizeof(workdir), "/tmp/gpubox-test-nvml-XXXXXX") < 0)
		return -1;
	tu_join(state_path, sizeof(state_path), workdir, "state");
	return setenv("FAKE_NVML_STATE", state_path, 1);
}

static int group_teardown(void **state)
{
	unsetenv("FAKE_NVML_STATE");
	tu_remove_tempdir(workdir);
	return 0;
}

/* The fake, found through LD_LIBRARY_PATH, with its checks; false (and
 * why) when another library is found. */
static bool find_fake(const char *prog)
{
	fake_library = dlopen(NVML_LIBRARY, RTLD_NOW | RTLD_LOCAL);
	if (fake_library) {
		*(void **)&fake_calls = dlsym(fake_library, "fake_nvml_calls");
		*(void **)&fake_last_seen = dlsym(fake_library, "fake_nvml_last_seen");
	}
	if (fake_calls && fake_last_seen)
		return true;
	fprintf(stderr, "%s: %s is not tests/fake-nvml's (run through meson test, or set LD_LIBRARY_PATH), "
			"skipped\n", prog, NVML_LIBRARY);
	return false;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_driver_and_gpus),
		cmocka_unit_test(test_processes),
		cmocka_unit_test(test_many_processes),
		cmocka_unit_test(test_lost_gpu),
		cmocka_unit_test(test_lost_from_start),
		cmocka_unit_test(test_mig),
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_live_change),
		cmocka_unit_test(test_utilisation_timestamp),
		cmocka_unit_test(test_memory_v1),
		cmocka_unit_test(test_entry_layout_checked),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_arguments),
	};
	/* The 535 fake: what its layout changes. */
	const struct CMUnitTest wide_tests[] = {
		cmocka_unit_test(test_driver_and_gpus),
		cmocka_unit_test(test_processes),
		cmocka_unit_test(test_many_processes),
		cmocka_unit_test(test_live_change),
	};
	const struct CMUnitTest no_library_tests[] = {
		cmocka_unit_test(test_no_library),
	};
	const char *mode = argc > 1 ? argv[1] : "";
	int ret;

	if (strcmp(mode, "--no-library") == 0)
		return cmocka_run_group_tests(no_library_tests, NULL, NULL);
	if (mode[0] && strcmp(mode, "--wide") != 0) {
		fprintf(stderr, "usage: %s [--wide | --no-library]\n", argv[0]);
		return 2;
	}
	if (!find_fake(argv[0]))
		return TU_SKIP;
	expect_wide = strcmp(mode, "--wide") == 0;
	if (expect_wide)
		ret = cmocka_run_group_tests(wide_tests, group_setup, group_teardown);
	else
		ret = cmocka_run_group_tests(tests, group_setup, group_teardown);
	dlclose(fake_library);
	return ret;
}
