/* SPDX-License-Identifier: MIT */
/*
 * The newest sample of the server in Prometheus' text format (version
 * 0.0.4), for GET /metrics (httpd.c serves it).
 *
 * The GPU gauges carry the names and labels of NVIDIA's DCGM exporter, so
 * that dashboards and alerts made for it work here; gpubox adds what DCGM
 * cannot know: which member uses how much of each GPU, the host, and the
 * members' containers.  A value the driver did not give is left out, never
 * written as 0, so that a graph shows a gap rather than a false reading.
 * No metric carries a pid: each run of a program would be a new series,
 * and Prometheus' index would grow without bound.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>

#include "gpu/gpu.h"
#include "monitor/monitor.h"
#include "array.h"
#include "cleanup.h"
#include "strutil.h"
#include "banned.h"

#define PROMETHEUS_LABEL_MAX 256
#define PROMETHEUS_INDEX_MAX 12      /* a GPU index as text */
#define PROMETHEUS_MIB ((uint64_t)1024 * 1024)

struct prometheus_label {
	const char *key;
	const char *value;
};

/* A family's header is written with its first sample, so a family with
 * nothing to say leaves no trace. */
struct prometheus_out {
	FILE *f;
	const char *name;
	const char *type;
	const char *help;
	bool header_done;
};

static void prometheus_family(struct prometheus_out *o, const char *name, const char *type,
			   const char *help)
{
	o->name = name;
	o->type = type;
	o->help = help;
	o->header_done = false;
}

/* A label value with backslash, double quote and line feed escaped, as
 * the format asks; other control bytes and every byte outside ASCII
 * become '?', so that no name from the driver or the configuration can
 * break a line or make Prometheus refuse the scrape as invalid UTF-8.
 * Plain runs are written whole (this is the bulk of a scrape). */
static void prometheus_escape(FILE *f, const char *value)
{
	size_t len = strnlen(value, PROMETHEUS_LABEL_MAX), start = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)value[i];

		if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"')
			continue;
		fwrite(value + start, 1, i - start, f);
		start = i + 1;
		if (c == '\\')
			fputs("\\\\", f);
		else if (c == '"')
			fputs("\\\"", f);
		else if (c == '\n')
			fputs("\\n", f);
		else
			putc('?', f);
	}
	fwrite(value + start, 1, len - start, f);
}

static void prometheus_begin_sample(struct prometheus_out *o, const struct prometheus_label *labels,
				 size_t nlabels)
{
	if (!o->header_done) {
		fprintf(o->f, "# HELP %s %s\n# TYPE %s %s\n", o->name, o->help, o->name, o->type);
		o->header_done = true;
	}
	fputs(o->name, o->f);
	for (size_t i = 0; i < nlabels; i++) {
		putc(i ? ',' : '{', o->f);
		fputs(labels[i].key, o->f);
		fputs("=\"", o->f);
		prometheus_escape(o->f, labels[i].value);
		putc('"', o->f);
	}
	fputs(nlabels ? "} " : " ", o->f);
}

static void prometheus_put_uint(struct prometheus_out *o, const struct prometheus_label *labels,
			     size_t nlabels, uint64_t value)
{
	char buf[24];
	size_t at = sizeof(buf);

	prometheus_begin_sample(o, labels, nlabels);
	buf[--at] = '\n';
	do {
		buf[--at] = (char)('0' + value % 10);
		value /= 10;
	} while (value);
	fwrite(buf + at, 1, sizeof(buf) - at, o->f);
}

/* The shortest of %.15g and %.17g that reads back as the same double:
 * "250.5", not "250.50000000000000". */
static void prometheus_put_double(struct prometheus_out *o, const struct prometheus_label *labels,
			       size_t nlabels, double value)
{
	char buf[40];

	prometheus_begin_sample(o, labels, nlabels);
	if (isnan(value)) {
		fputs("NaN\n", o->f);
		return;
	}
	if (isinf(value)) {
		fputs(value > 0 ? "+Inf\n" : "-Inf\n", o->f);
		return;
	}
	snprintf(buf, sizeof(buf), "%.15g", value);
	if (strtod(buf, NULL) != value)
		snprintf(buf, sizeof(buf), "%.17g", value);
	fprintf(o->f, "%s\n", buf);
}

/* ---- GPUs ---- */

/* gpu, uuid, server and, like DCGM's exporter, modelName. */
struct prometheus_gpu_labels {
	char index[PROMETHEUS_INDEX_MAX];
	struct prometheus_label labels[4];
};

static void prometheus_gpu_labels(const struct sample *s, unsigned index, const char *uuid,
			       const char *model, struct prometheus_gpu_labels *out)
{
	snprintf(out->index, sizeof(out->index), "%u", index);
	out->labels[0] = (struct prometheus_label){ "gpu", out->index };
	out->labels[1] = (struct prometheus_label){ "uuid", uuid };
	out->labels[2] = (struct prometheus_label){ "server", s->server };
	out->labels[3] = (struct prometheus_label){ "modelName", model };
}

static const struct nvml_gpu *prometheus_find_gpu(const struct sample *s, unsigned index)
{
	for (size_t i = 0; i < s->ngpus; i++)
		if (s->gpus[i].index == index)
			return &s->gpus[i];
	return NULL;
}

static bool prometheus_gpu_util(const struct nvml_gpu *g, double *v)
{
	*v = g->util_gpu;
	return g->util_gpu >= 0;
}

static bool prometheus_gpu_mem_util(const struct nvml_gpu *g, double *v)
{
	*v = g->util_mem;
	return g->util_mem >= 0;
}

/* Frame buffer in whole MiB, as DCGM gives it; a total of 0 means the
 * driver did not answer for the memory at all. */
static bool prometheus_gpu_fb_used(const struct nvml_gpu *g, double *v)
{
	*v = (double)(g->mem_used / PROMETHEUS_MIB);
	return g->mem_total > 0;
}

static bool prometheus_gpu_fb_free(const struct nvml_gpu *g, double *v)
{
	uint64_t free_bytes = g->mem_total > g->mem_used ? g->mem_total - g->mem_used : 0;

	*v = (double)(free_bytes / PROMETHEUS_MIB);
	return g->mem_total > 0;
}

static bool prometheus_gpu_temperature(const struct nvml_gpu *g, double *v)
{
	*v = g->temperature;
	return g->temperature >= 0;
}

static bool prometheus_gpu_power(const struct nvml_gpu *g, double *v)
{
	*v = g->power_mw / 1000.0;
	return g->power_mw >= 0;
}

static const struct {
	const char *name;
	const char *help;
	bool (*read)(const struct nvml_gpu *g, double *v);
} prometheus_gpu_fields[] = {
	{ "DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", prometheus_gpu_util },
	{ "DCGM_FI_DEV_MEM_COPY_UTIL", "Memory utilization (in %).", prometheus_gpu_mem_util },
	{ "DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", prometheus_gpu_fb_used },
	{ "DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB).", prometheus_gpu_fb_free },
	{ "DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C).", prometheus_gpu_temperature },
	{ "DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).", prometheus_gpu_power },
};

static void prometheus_render_gpus(struct prometheus_out *o, const struct sample *s)
{
	struct prometheus_gpu_labels l;

	for (size_t f = 0; f < ARRAY_SIZE(prometheus_gpu_fields); f++) {
		prometheus_family(o, prometheus_gpu_fields[f].name, "gauge", prometheus_gpu_fields[f].help);
		for (size_t i = 0; i < s->ngpus; i++) {
			const struct nvml_gpu *g = &s->gpus[i];
			double v;

			/* A lost GPU's last numbers are not a reading. */
			if (g->lost || !prometheus_gpu_fields[f].read(g, &v))
				continue;
			prometheus_gpu_labels(s, g->index, g->uuid, g->name, &l);
			prometheus_put_double(o, l.labels, 4, v);
		}
	}
	prometheus_family(o, "gpubox_gpu_lost", "gauge",
		       "1 when the GPU fell off the bus or stopped answering the driver.");
	for (size_t i = 0; i < s->ngpus; i++) {
		prometheus_gpu_labels(s, s->gpus[i].index, s->gpus[i].uuid, "", &l);
		prometheus_put_uint(o, l.labels, 3, s->gpus[i].lost);
	}
}

/* ---- GPU use, by member and by the host ---- */

/* One member's processes on one GPU. */
struct prometheus_usage {
	unsigned gpu;
	const char *member;
	uint64_t mem;              /* bytes, of the processes whose use is known */
	unsigned processes;
	unsigned unknown_mem;      /* processes whose use the driver did not say */
	unsigned idle_seconds;     /* the longest any of them has held the GPU idle */
	unsigned members;          /* in a GPU's total: how many members */
};

static void prometheus_usage_add(struct prometheus_usage *u, const struct sample_process *p)
{
	u->processes++;
	if (p->idle_seconds > u->idle_seconds)
		u->idle_seconds = p->idle_seconds;
	if (p->mem_used == UINT64_MAX)
		u->unknown_mem++;
	else
		u->mem += p->mem_used;
}

/* Memory is a reading when at least one process had its use known, or
 * when there is no process at all (then it is 0). */
static bool prometheus_usage_mem_known(const struct prometheus_usage *u)
{
	return u->processes == 0 || u->unknown_mem < u->processes;
}

static int prometheus_usage_compare(const void *a, const void *b)
{
	const struct prometheus_usage *x = a, *y = b;

	if (x->gpu != y->gpu)
		return x->gpu < y->gpu ? -1 : 1;
	return strcmp(x->member, y->member);
}

/* The members' processes grouped by (GPU, member), sorted; NULL with
 * *n = 0 when there are none. */
static int prometheus_member_usage(const struct sample *s, struct prometheus_usage **out, size_t *n)
{
	__do_free struct prometheus_usage *usage = NULL;
	size_t used = 0;

	*out = NULL;
	*n = 0;
	if (s->nprocs == 0)
		return 0;
	usage = calloc(s->nprocs, sizeof(*usage));
	if (!usage)
		return -ENOMEM;
	for (size_t i = 0; i < s->nprocs; i++) {
		const struct sample_process *p = &s->procs[i];
		size_t j;

		if (!p->member[0] || memchr(p->member, '\0', sizeof(p->member)) == NULL)
			continue;
		for (j = 0; j < used; j++)
			if (usage[j].gpu == p->gpu && strcmp(usage[j].member, p->member) == 0)
				break;
		if (j == used)
			usage[used++] = (struct prometheus_usage){ .gpu = p->gpu, .member = p->member };
		prometheus_usage_add(&usage[j], p);
	}
	qsort(usage, used, sizeof(*usage), prometheus_usage_compare);
	*out = move_ptr(usage);
	*n = used;
	return 0;
}

static void prometheus_member_labels(const struct sample *s, const struct prometheus_usage *u,
				  char index[PROMETHEUS_INDEX_MAX], struct prometheus_label labels[4])
{
	const struct nvml_gpu *g = prometheus_find_gpu(s, u->gpu);

	snprintf(index, PROMETHEUS_INDEX_MAX, "%u", u->gpu);
	labels[0] = (struct prometheus_label){ "member", u->member };
	labels[1] = (struct prometheus_label){ "gpu", index };
	labels[2] = (struct prometheus_label){ "uuid", g ? g->uuid : "" };
	labels[3] = (struct prometheus_label){ "server", s->server };
}

static void prometheus_render_members(struct prometheus_out *o, const struct sample *s,
				   const struct prometheus_usage *usage, size_t n)
{
	struct prometheus_label labels[4];
	char index[PROMETHEUS_INDEX_MAX];

	prometheus_family(o, "gpubox_member_gpu_memory_bytes", "gauge",
		       "GPU memory used by the member's processes on the GPU.");
	for (size_t i = 0; i < n; i++) {
		if (!prometheus_usage_mem_known(&usage[i]))
			continue;
		prometheus_member_labels(s, &usage[i], index, labels);
		prometheus_put_uint(o, labels, 4, usage[i].mem);
	}
	prometheus_family(o, "gpubox_member_gpu_processes", "gauge",
		       "Processes of the member on the GPU.");
	for (size_t i = 0; i < n; i++) {
		prometheus_member_labels(s, &usage[i], index, labels);
		prometheus_put_uint(o, labels, 4, usage[i].processes);
	}
	prometheus_family(o, "gpubox_gpu_idle_seconds", "gauge",
		       "How long the member's processes have held the GPU idle: idle_memory_min or more of its memory at 0 % utilisation; 0 when they do not.");
	for (size_t i = 0; i < n; i++) {
		prometheus_member_labels(s, &usage[i], index, labels);
		prometheus_put_uint(o, labels, 4, usage[i].idle_seconds);
	}
}

/* Every member's use of one GPU together, and how many members share it. */
static void prometheus_gpu_total(const struct prometheus_usage *usage, size_t n, unsigned gpu,
			      struct prometheus_usage *total)
{
	*total = (struct prometheus_usage){ .gpu = gpu };
	for (size_t i = 0; i < n; i++) {
		if (usage[i].gpu != gpu)
			continue;
		total->members++;
		total->mem += usage[i].mem;
		total->processes += usage[i].processes;
		total->unknown_mem += usage[i].unknown_mem;
		if (usage[i].idle_seconds > total->idle_seconds)
			total->idle_seconds = usage[i].idle_seconds;
	}
}

#define TOTAL_FIELD(f) offsetof(struct prometheus_usage, f)

/* One sample per GPU (lost ones left out) of an unsigned field of the
 * members' total on it. */
static void prometheus_put_gpu_totals(struct prometheus_out *o, const struct sample *s,
				      const struct prometheus_usage *usage, size_t n, size_t field)
{
	struct prometheus_gpu_labels l;
	struct prometheus_usage total;
	unsigned value;

	for (size_t i = 0; i < s->ngpus; i++) {
		if (s->gpus[i].lost)
			continue;
		prometheus_gpu_total(usage, n, s->gpus[i].index, &total);
		memcpy(&value, (const char *)&total + field, sizeof(value));
		prometheus_gpu_labels(s, s->gpus[i].index, s->gpus[i].uuid, "", &l);
		prometheus_put_uint(o, l.labels, 3, value);
	}
}

/* show_members off: the same families without the member label, summed
 * over the members of each GPU. */
static void prometheus_render_members_summed(struct prometheus_out *o, const struct sample *s,
					  const struct prometheus_usage *usage, size_t n)
{
	struct prometheus_gpu_labels l;
	struct prometheus_usage total;

	prometheus_family(o, "gpubox_member_gpu_memory_bytes", "gauge",
		       "GPU memory used by members' processes on the GPU, all members together.");
	for (size_t i = 0; i < s->ngpus; i++) {
		if (s->gpus[i].lost)
			continue;
		prometheus_gpu_total(usage, n, s->gpus[i].index, &total);
		if (!prometheus_usage_mem_known(&total))
			continue;
		prometheus_gpu_labels(s, s->gpus[i].index, s->gpus[i].uuid, "", &l);
		prometheus_put_uint(o, l.labels, 3, total.mem);
	}
	prometheus_family(o, "gpubox_member_gpu_processes", "gauge",
		       "Processes of members on the GPU, all members together.");
	prometheus_put_gpu_totals(o, s, usage, n, TOTAL_FIELD(processes));
	prometheus_family(o, "gpubox_gpu_idle_seconds", "gauge",
		       "How long members' processes have held the GPU idle, the longest of them; 0 when none does.");
	prometheus_put_gpu_totals(o, s, usage, n, TOTAL_FIELD(idle_seconds));
}

/* How many members use each GPU: written whatever show_members says, as
 * it names nobody. */
static void prometheus_render_member_count(struct prometheus_out *o, const struct sample *s,
					const struct prometheus_usage *usage, size_t n)
{
	prometheus_family(o, "gpubox_gpu_members", "gauge",
		       "Members with a process on the GPU.");
	prometheus_put_gpu_totals(o, s, usage, n, TOTAL_FIELD(members));
}

/* Processes of the host itself (outside every container) on one GPU. */
static void prometheus_host_usage(const struct sample *s, unsigned gpu, struct prometheus_usage *out)
{
	*out = (struct prometheus_usage){ .gpu = gpu };
	for (size_t i = 0; i < s->nprocs; i++)
		if (s->procs[i].gpu == gpu && !s->procs[i].member[0])
			prometheus_usage_add(out, &s->procs[i]);
}

static void prometheus_render_host_gpu(struct prometheus_out *o, const struct sample *s)
{
	struct prometheus_gpu_labels l;
	struct prometheus_usage u;

	prometheus_family(o, "gpubox_host_gpu_memory_bytes", "gauge",
		       "GPU memory used by processes of the host, outside the containers.");
	for (size_t i = 0; i < s->ngpus; i++) {
		if (s->gpus[i].lost)
			continue;
		prometheus_host_usage(s, s->gpus[i].index, &u);
		if (!prometheus_usage_mem_known(&u))
			continue;
		prometheus_gpu_labels(s, s->gpus[i].index, s->gpus[i].uuid, "", &l);
		prometheus_put_uint(o, l.labels, 3, u.mem);
	}
	prometheus_family(o, "gpubox_host_gpu_processes", "gauge",
		       "Processes of the host, outside the containers, on the GPU.");
	for (size_t i = 0; i < s->ngpus; i++) {
		if (s->gpus[i].lost)
			continue;
		prometheus_host_usage(s, s->gpus[i].index, &u);
		prometheus_gpu_labels(s, s->gpus[i].index, s->gpus[i].uuid, "", &l);
		prometheus_put_uint(o, l.labels, 3, u.processes);
	}
}

/* ---- the host and the containers ---- */

static void prometheus_render_host(struct prometheus_out *o, const struct sample *s)
{
	const struct host_stats *h = &s->host;
	const struct prometheus_label server[] = { { "server", s->server } };
	static const char *const load_names[3] = {
		"gpubox_host_load1", "gpubox_host_load5", "gpubox_host_load15",
	};
	static const char *const load_help[3] = {
		"Load average over 1 minute.", "Load average over 5 minutes.",
		"Load average over 15 minutes.",
	};

	/* No CPU counted: /proc could not be read, nothing below is a reading. */
	if (h->ncpus == 0)
		return;
	prometheus_family(o, "gpubox_host_cpus", "gauge", "CPUs of the host.");
	prometheus_put_uint(o, server, 1, h->ncpus);
	prometheus_family(o, "gpubox_host_cpu_percent", "gauge",
		       "CPU use of the host, in percent of all CPUs.");
	if (isfinite(h->cpu_percent))
		prometheus_put_double(o, server, 1, h->cpu_percent);
	if (h->mem_total > 0) {
		prometheus_family(o, "gpubox_host_memory_total_bytes", "gauge", "Memory of the host.");
		prometheus_put_uint(o, server, 1, h->mem_total);
		prometheus_family(o, "gpubox_host_memory_available_bytes", "gauge",
			       "Memory available for new work without swapping.");
		prometheus_put_uint(o, server, 1, h->mem_available);
	}
	for (size_t i = 0; i < 3; i++) {
		prometheus_family(o, load_names[i], "gauge", load_help[i]);
		prometheus_put_double(o, server, 1, h->load[i]);
	}
	if (h->disk_total > 0) {
		prometheus_family(o, "gpubox_host_disk_total_bytes", "gauge",
			       "Size of the file system holding gpubox's state.");
		prometheus_put_uint(o, server, 1, h->disk_total);
		prometheus_family(o, "gpubox_host_disk_used_bytes", "gauge",
			       "Bytes used on the file system holding gpubox's state.");
		prometheus_put_uint(o, server, 1, h->disk_used);
	}
	prometheus_family(o, "gpubox_host_disk_read_bytes_total", "counter",
		       "Bytes read from the host's disks.");
	prometheus_put_uint(o, server, 1, h->disk_read_bytes);
	prometheus_family(o, "gpubox_host_disk_written_bytes_total", "counter",
		       "Bytes written to the host's disks.");
	prometheus_put_uint(o, server, 1, h->disk_write_bytes);
	prometheus_family(o, "gpubox_host_network_receive_bytes_total", "counter",
		       "Bytes received on the host's interfaces but loopback.");
	prometheus_put_uint(o, server, 1, h->net_rx_bytes);
	prometheus_family(o, "gpubox_host_network_transmit_bytes_total", "counter",
		       "Bytes sent on the host's interfaces but loopback.");
	prometheus_put_uint(o, server, 1, h->net_tx_bytes);
}

/* One gauge or counter per container from a field of struct
 * sample_container; with skip_zero, a container whose field is 0 (no
 * limit) has no line rather than a false 0. */
static void prometheus_container_family(struct prometheus_out *o, const struct sample *s,
					const char *name, const char *type, const char *help,
					size_t field, bool skip_zero)
{
	struct prometheus_label labels[2] = { { "member", NULL }, { "server", s->server } };

	prometheus_family(o, name, type, help);
	for (size_t i = 0; i < s->ncontainers; i++) {
		uint64_t value;

		memcpy(&value, (const char *)&s->containers[i] + field, sizeof(value));
		if (skip_zero && value == 0)
			continue;
		labels[0].value = s->containers[i].member;
		prometheus_put_uint(o, labels, 2, value);
	}
}

#define CONTAINER_FIELD(f) offsetof(struct sample_container, f)

static void prometheus_render_containers(struct prometheus_out *o, const struct sample *s)
{
	struct prometheus_label labels[2] = { { "member", NULL }, { "server", s->server } };

	prometheus_family(o, "gpubox_container_cpu_seconds_total", "counter",
		       "CPU time used by the member's container.");
	for (size_t i = 0; i < s->ncontainers; i++) {
		labels[0].value = s->containers[i].member;
		prometheus_put_double(o, labels, 2, (double)s->containers[i].cpu_ns / 1e9);
	}
	prometheus_container_family(o, s, "gpubox_container_memory_bytes", "gauge",
				    "Memory used by the member's container.", CONTAINER_FIELD(mem_used), false);
	prometheus_container_family(o, s, "gpubox_container_memory_limit_bytes", "gauge",
				    "Memory limit of the member's container, when it has one.",
				    CONTAINER_FIELD(mem_limit), true);
	/* Use against limits, under the member's name: what an alert on a
	 * member close to their share watches. */
	prometheus_container_family(o, s, "gpubox_member_memory_limit_bytes", "gauge",
				    "The member's memory limit (gpubox admin limits), when there is one.",
				    CONTAINER_FIELD(mem_limit), true);
	prometheus_container_family(o, s, "gpubox_member_processes", "gauge",
				    "Processes and threads in the member's container, held to their process limit.",
				    CONTAINER_FIELD(pids), false);
	prometheus_container_family(o, s, "gpubox_member_oom_kills_total", "counter",
				    "Processes the kernel killed in the member's container for its memory limit, since it started.",
				    CONTAINER_FIELD(oom_kills), false);
}

static void prometheus_render_state(struct prometheus_out *o, const struct sample *s)
{
	const struct prometheus_label server[] = { { "server", s->server } };
	const struct prometheus_label driver[] = {
		{ "server", s->server }, { "driver_version", s->driver_version },
	};

	prometheus_family(o, "gpubox_nvml_up", "gauge", "1 when NVIDIA's management library answered.");
	prometheus_put_uint(o, server, 1, s->gpu_ok);
	prometheus_family(o, "gpubox_gpu_driver_info", "gauge",
		       "The NVIDIA driver's version (\"\" when unknown); always 1.");
	prometheus_put_uint(o, driver, 2, 1);
	prometheus_family(o, "gpubox_sample_timestamp_seconds", "gauge",
		       "When the server was read, in seconds since the epoch.");
	prometheus_put_double(o, server, 1, (double)s->time_ms / 1000.0);
}

char *prometheus_render(const struct sample *s, bool show_members)
{
	__do_free struct prometheus_usage *usage = NULL;
	__do_free char *text = NULL;
	struct prometheus_out o = { 0 };
	size_t n = 0, size = 0;

	if (prometheus_member_usage(s, &usage, &n) < 0) {
		errno = ENOMEM;
		return NULL;
	}
	o.f = open_memstream(&text, &size);
	if (!o.f)
		return NULL;
	/* The stream is this call's alone: no lock around each write. */
	__fsetlocking(o.f, FSETLOCKING_BYCALLER);
	prometheus_render_state(&o, s);
	prometheus_render_gpus(&o, s);
	if (show_members)
		prometheus_render_members(&o, s, usage, n);
	else
		prometheus_render_members_summed(&o, s, usage, n);
	prometheus_render_member_count(&o, s, usage, n);
	prometheus_render_host_gpu(&o, s);
	prometheus_render_host(&o, s);
	prometheus_render_containers(&o, s);
	if (!memstream_close(o.f))
		return NULL;
	return move_ptr(text);
}
