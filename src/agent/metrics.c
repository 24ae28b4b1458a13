/* SPDX-License-Identifier: MIT */
/*
 * /metrics: the newest sample of the server in Prometheus' text format
 * (version 0.0.4), served by libmicrohttpd on metrics_listen.
 *
 * The GPU gauges carry the names and labels of NVIDIA's DCGM exporter, so
 * that dashboards and alerts made for it work here; gpubox adds what DCGM
 * cannot know: which member uses how much of each GPU, the host, and the
 * members' containers.  A value the driver did not give is left out, never
 * written as 0, so that a graph shows a gap rather than a false reading.
 * No metric carries a pid: each run of a program would be a new series,
 * and Prometheus' index would grow without bound.
 *
 * Who uses which GPU is the members' business: off loopback the server
 * refuses to start without a bearer token (metrics_token_file), and once
 * a token is configured it is required on loopback too.  The token is
 * read once; only its BLAKE2b hash is kept, and hashes are compared in
 * constant time, so neither the token's bytes nor its length leak
 * through timing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <time.h>
#include <limits.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <microhttpd.h>
#include <sodium.h>

#include "agent.h"
#include "cleanup.h"
#include "fsutil.h"
#include "log.h"
#include "strutil.h"
#include "banned.h"

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define METRICS_TEXT_TYPE "text/plain; charset=utf-8"
#define METRICS_TOKEN_MIN 16
#define METRICS_TOKEN_MAX 4096
#define METRICS_CONNECTION_LIMIT 32u
#define METRICS_PER_IP_LIMIT 8u
#define METRICS_TIMEOUT_SECONDS 15u
#define METRICS_MEMORY_LIMIT ((size_t)32 * 1024)
#define METRICS_LABEL_MAX 256
#define METRICS_INDEX_MAX 12         /* a GPU index as text */
#define METRICS_MIB ((uint64_t)1024 * 1024)

/* ---- the exposition text -------------------------------------------------- */

struct metrics_label {
	const char *key;
	const char *value;
};

/* A family's header is written with its first sample, so a family with
 * nothing to say leaves no trace. */
struct metrics_out {
	FILE *f;
	const char *name;
	const char *type;
	const char *help;
	bool header_done;
};

static void metrics_family(struct metrics_out *o, const char *name, const char *type,
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
static void metrics_escape(FILE *f, const char *value)
{
	size_t len = strnlen(value, METRICS_LABEL_MAX), start = 0;

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

static void metrics_begin_sample(struct metrics_out *o, const struct metrics_label *labels,
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
		metrics_escape(o->f, labels[i].value);
		putc('"', o->f);
	}
	fputs(nlabels ? "} " : " ", o->f);
}

static void metrics_put_uint(struct metrics_out *o, const struct metrics_label *labels,
			     size_t nlabels, uint64_t value)
{
	char buf[24];
	size_t at = sizeof(buf);

	metrics_begin_sample(o, labels, nlabels);
	buf[--at] = '\n';
	do {
		buf[--at] = (char)('0' + value % 10);
		value /= 10;
	} while (value);
	fwrite(buf + at, 1, sizeof(buf) - at, o->f);
}

/* The shortest of %.15g and %.17g that reads back as the same double:
 * "250.5", not "250.50000000000000". */
static void metrics_put_double(struct metrics_out *o, const struct metrics_label *labels,
			       size_t nlabels, double value)
{
	char buf[40];

	metrics_begin_sample(o, labels, nlabels);
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
struct metrics_gpu_labels {
	char index[METRICS_INDEX_MAX];
	struct metrics_label labels[4];
};

static void metrics_gpu_labels(const struct sample *s, unsigned index, const char *uuid,
			       const char *model, struct metrics_gpu_labels *out)
{
	snprintf(out->index, sizeof(out->index), "%u", index);
	out->labels[0] = (struct metrics_label){ "gpu", out->index };
	out->labels[1] = (struct metrics_label){ "uuid", uuid };
	out->labels[2] = (struct metrics_label){ "server", s->server };
	out->labels[3] = (struct metrics_label){ "modelName", model };
}

static const struct nvml_gpu *metrics_find_gpu(const struct sample *s, unsigned index)
{
	for (size_t i = 0; i < s->ngpus; i++)
		if (s->gpus[i].index == index)
			return &s->gpus[i];
	return NULL;
}

static bool metrics_gpu_util(const struct nvml_gpu *g, double *v)
{
	*v = g->util_gpu;
	return g->util_gpu >= 0;
}

static bool metrics_gpu_mem_util(const struct nvml_gpu *g, double *v)
{
	*v = g->util_mem;
	return g->util_mem >= 0;
}

/* Frame buffer in whole MiB, as DCGM gives it; a total of 0 means the
 * driver did not answer for the memory at all. */
static bool metrics_gpu_fb_used(const struct nvml_gpu *g, double *v)
{
	*v = (double)(g->mem_used / METRICS_MIB);
	return g->mem_total > 0;
}

static bool metrics_gpu_fb_free(const struct nvml_gpu *g, double *v)
{
	uint64_t free_bytes = g->mem_total > g->mem_used ? g->mem_total - g->mem_used : 0;

	*v = (double)(free_bytes / METRICS_MIB);
	return g->mem_total > 0;
}

static bool metrics_gpu_temperature(const struct nvml_gpu *g, double *v)
{
	*v = g->temperature;
	return g->temperature >= 0;
}

static bool metrics_gpu_power(const struct nvml_gpu *g, double *v)
{
	*v = g->power_mw / 1000.0;
	return g->power_mw >= 0;
}

static const struct {
	const char *name;
	const char *help;
	bool (*read)(const struct nvml_gpu *g, double *v);
} metrics_gpu_fields[] = {
	{ "DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", metrics_gpu_util },
	{ "DCGM_FI_DEV_MEM_COPY_UTIL", "Memory utilization (in %).", metrics_gpu_mem_util },
	{ "DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", metrics_gpu_fb_used },
	{ "DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB).", metrics_gpu_fb_free },
	{ "DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C).", metrics_gpu_temperature },
	{ "DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).", metrics_gpu_power },
};

static void metrics_render_gpus(struct metrics_out *o, const struct sample *s)
{
	struct metrics_gpu_labels l;

	for (size_t f = 0; f < ARRAY_SIZE(metrics_gpu_fields); f++) {
		metrics_family(o, metrics_gpu_fields[f].name, "gauge", metrics_gpu_fields[f].help);
		for (size_t i = 0; i < s->ngpus; i++) {
			const struct nvml_gpu *g = &s->gpus[i];
			double v;

			/* A lost GPU's last numbers are not a reading. */
			if (g->lost || !metrics_gpu_fields[f].read(g, &v))
				continue;
			metrics_gpu_labels(s, g->index, g->uuid, g->name, &l);
			metrics_put_double(o, l.labels, 4, v);
		}
	}
	metrics_family(o, "gpubox_gpu_lost", "gauge",
		       "1 when the GPU fell off the bus or stopped answering the driver.");
	for (size_t i = 0; i < s->ngpus; i++) {
		metrics_gpu_labels(s, s->gpus[i].index, s->gpus[i].uuid, "", &l);
		metrics_put_uint(o, l.labels, 3, s->gpus[i].lost);
	}
}

/* ---- GPU use, by member and by the host ---- */

/* One member's processes on one GPU. */
struct metrics_usage {
	unsigned gpu;
	const char *member;
	uint64_t mem;              /* bytes, of the processes whose use is known */
	unsigned processes;
	unsigned unknown_mem;      /* processes whose use the driver did not say */
};

static void metrics_usage_add(struct metrics_usage *u, const struct sample_process *p)
{
	u->processes++;
	if (p->mem_used == UINT64_MAX)
		u->unknown_mem++;
	else
		u->mem += p->mem_used;
}

/* Memory is a reading when at least one process had its use known, or
 * when there is no process at all (then it is 0). */
static bool metrics_usage_mem_known(const struct metrics_usage *u)
{
	return u->processes == 0 || u->unknown_mem < u->processes;
}

static int metrics_usage_compare(const void *a, const void *b)
{
	const struct metrics_usage *x = a, *y = b;

	if (x->gpu != y->gpu)
		return x->gpu < y->gpu ? -1 : 1;
	return strcmp(x->member, y->member);
}

/* The members' processes grouped by (GPU, member), sorted; NULL with
 * *n = 0 when there are none. */
static int metrics_member_usage(const struct sample *s, struct metrics_usage **out, size_t *n)
{
	__do_free struct metrics_usage *usage = NULL;
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
			usage[used++] = (struct metrics_usage){ .gpu = p->gpu, .member = p->member };
		metrics_usage_add(&usage[j], p);
	}
	qsort(usage, used, sizeof(*usage), metrics_usage_compare);
	*out = move_ptr(usage);
	*n = used;
	return 0;
}

static void metrics_member_labels(const struct sample *s, const struct metrics_usage *u,
				  char index[METRICS_INDEX_MAX], struct metrics_label labels[4])
{
	const struct nvml_gpu *g = metrics_find_gpu(s, u->gpu);

	snprintf(index, METRICS_INDEX_MAX, "%u", u->gpu);
	labels[0] = (struct metrics_label){ "member", u->member };
	labels[1] = (struct metrics_label){ "gpu", index };
	labels[2] = (struct metrics_label){ "uuid", g ? g->uuid : "" };
	labels[3] = (struct metrics_label){ "server", s->server };
}

static void metrics_render_members(struct metrics_out *o, const struct sample *s,
				   const struct metrics_usage *usage, size_t n)
{
	struct metrics_label labels[4];
	char index[METRICS_INDEX_MAX];

	metrics_family(o, "gpubox_member_gpu_memory_bytes", "gauge",
		       "GPU memory used by the member's processes on the GPU.");
	for (size_t i = 0; i < n; i++) {
		if (!metrics_usage_mem_known(&usage[i]))
			continue;
		metrics_member_labels(s, &usage[i], index, labels);
		metrics_put_uint(o, labels, 4, usage[i].mem);
	}
	metrics_family(o, "gpubox_member_gpu_processes", "gauge",
		       "Processes of the member on the GPU.");
	for (size_t i = 0; i < n; i++) {
		metrics_member_labels(s, &usage[i], index, labels);
		metrics_put_uint(o, labels, 4, usage[i].processes);
	}
}

/* Every member's use of one GPU together, and how many members share it. */
static void metrics_gpu_total(const struct metrics_usage *usage, size_t n, unsigned gpu,
			      struct metrics_usage *total, unsigned *members)
{
	*total = (struct metrics_usage){ .gpu = gpu };
	*members = 0;
	for (size_t i = 0; i < n; i++) {
		if (usage[i].gpu != gpu)
			continue;
		(*members)++;
		total->mem += usage[i].mem;
		total->processes += usage[i].processes;
		total->unknown_mem += usage[i].unknown_mem;
	}
}

/* show_members off: the same families without the member label, summed
 * over the members of each GPU. */
static void metrics_render_members_summed(struct metrics_out *o, const struct sample *s,
					  const struct metrics_usage *usage, size_t n)
{
	struct metrics_gpu_labels l;
	struct metrics_usage total;
	unsigned members;

	metrics_family(o, "gpubox_member_gpu_memory_bytes", "gauge",
		       "GPU memory used by members' processes on the GPU, all members together.");
	for (size_t i = 0; i < s->ngpus; i++) {
		if (s->gpus[i].lost)
			continue;
		metrics_gpu_total(usage, n, s->gpus[i].index, &total, &members);
		if (!metrics_usage_mem_known(&total))
			continue;
		metrics_gpu_labels(s, s->gpus[i].index, s->gpus[i].uuid, "", &l);
		metrics_put_uint(o, l.labels, 3, total.mem);
	}
	metrics_family(o, "gpubox_member_gpu_processes", "gauge",
		       "Processes of members on the GPU, all members together.");
	for (size_t i = 0; i < s->ngpus; i++) {
		if (s->gpus[i].lost)
			continue;
		metrics_gpu_total(usage, n, s->gpus[i].index, &total, &members);
		metrics_gpu_labels(s, s->gpus[i].index, s->gpus[i].uuid, "", &l);
		metrics_put_uint(o, l.labels, 3, total.processes);
	}
}

/* How many members use each GPU: written whatever show_members says, as
 * it names nobody. */
static void metrics_render_member_count(struct metrics_out *o, const struct sample *s,
					const struct metrics_usage *usage, size_t n)
{
	struct metrics_gpu_labels l;
	struct metrics_usage total;
	unsigned members;

	metrics_family(o, "gpubox_gpu_members", "gauge",
		       "Members with a process on the GPU.");
	for (size_t i = 0; i < s->ngpus; i++) {
		if (s->gpus[i].lost)
			continue;
		metrics_gpu_total(usage, n, s->gpus[i].index, &total, &members);
		metrics_gpu_labels(s, s->gpus[i].index, s->gpus[i].uuid, "", &l);
		metrics_put_uint(o, l.labels, 3, members);
	}
}

/* Processes of the host itself (outside every container) on one GPU. */
static void metrics_host_usage(const struct sample *s, unsigned gpu, struct metrics_usage *out)
{
	*out = (struct metrics_usage){ .gpu = gpu };
	for (size_t i = 0; i < s->nprocs; i++)
		if (s->procs[i].gpu == gpu && !s->procs[i].member[0])
			metrics_usage_add(out, &s->procs[i]);
}

static void metrics_render_host_gpu(struct metrics_out *o, const struct sample *s)
{
	struct metrics_gpu_labels l;
	struct metrics_usage u;

	metrics_family(o, "gpubox_host_gpu_memory_bytes", "gauge",
		       "GPU memory used by processes of the host, outside the containers.");
	for (size_t i = 0; i < s->ngpus; i++) {
		if (s->gpus[i].lost)
			continue;
		metrics_host_usage(s, s->gpus[i].index, &u);
		if (!metrics_usage_mem_known(&u))
			continue;
		metrics_gpu_labels(s, s->gpus[i].index, s->gpus[i].uuid, "", &l);
		metrics_put_uint(o, l.labels, 3, u.mem);
	}
	metrics_family(o, "gpubox_host_gpu_processes", "gauge",
		       "Processes of the host, outside the containers, on the GPU.");
	for (size_t i = 0; i < s->ngpus; i++) {
		if (s->gpus[i].lost)
			continue;
		metrics_host_usage(s, s->gpus[i].index, &u);
		metrics_gpu_labels(s, s->gpus[i].index, s->gpus[i].uuid, "", &l);
		metrics_put_uint(o, l.labels, 3, u.processes);
	}
}

/* ---- the host and the containers ---- */

static void metrics_render_host(struct metrics_out *o, const struct sample *s)
{
	const struct host_stats *h = &s->host;
	const struct metrics_label server[] = { { "server", s->server } };
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
	metrics_family(o, "gpubox_host_cpus", "gauge", "CPUs of the host.");
	metrics_put_uint(o, server, 1, h->ncpus);
	metrics_family(o, "gpubox_host_cpu_percent", "gauge",
		       "CPU use of the host, in percent of all CPUs.");
	if (isfinite(h->cpu_percent))
		metrics_put_double(o, server, 1, h->cpu_percent);
	if (h->mem_total > 0) {
		metrics_family(o, "gpubox_host_memory_total_bytes", "gauge", "Memory of the host.");
		metrics_put_uint(o, server, 1, h->mem_total);
		metrics_family(o, "gpubox_host_memory_available_bytes", "gauge",
			       "Memory available for new work without swapping.");
		metrics_put_uint(o, server, 1, h->mem_available);
	}
	for (size_t i = 0; i < 3; i++) {
		metrics_family(o, load_names[i], "gauge", load_help[i]);
		metrics_put_double(o, server, 1, h->load[i]);
	}
	if (h->disk_total > 0) {
		metrics_family(o, "gpubox_host_disk_total_bytes", "gauge",
			       "Size of the file system holding gpubox's state.");
		metrics_put_uint(o, server, 1, h->disk_total);
		metrics_family(o, "gpubox_host_disk_used_bytes", "gauge",
			       "Bytes used on the file system holding gpubox's state.");
		metrics_put_uint(o, server, 1, h->disk_used);
	}
	metrics_family(o, "gpubox_host_disk_read_bytes_total", "counter",
		       "Bytes read from the host's disks.");
	metrics_put_uint(o, server, 1, h->disk_read_bytes);
	metrics_family(o, "gpubox_host_disk_written_bytes_total", "counter",
		       "Bytes written to the host's disks.");
	metrics_put_uint(o, server, 1, h->disk_write_bytes);
	metrics_family(o, "gpubox_host_network_receive_bytes_total", "counter",
		       "Bytes received on the host's interfaces but loopback.");
	metrics_put_uint(o, server, 1, h->net_rx_bytes);
	metrics_family(o, "gpubox_host_network_transmit_bytes_total", "counter",
		       "Bytes sent on the host's interfaces but loopback.");
	metrics_put_uint(o, server, 1, h->net_tx_bytes);
}

static void metrics_render_containers(struct metrics_out *o, const struct sample *s)
{
	struct metrics_label labels[2] = { { "member", NULL }, { "server", s->server } };

	metrics_family(o, "gpubox_container_cpu_seconds_total", "counter",
		       "CPU time used by the member's container.");
	for (size_t i = 0; i < s->ncontainers; i++) {
		labels[0].value = s->containers[i].member;
		metrics_put_double(o, labels, 2, (double)s->containers[i].cpu_ns / 1e9);
	}
	metrics_family(o, "gpubox_container_memory_bytes", "gauge",
		       "Memory used by the member's container.");
	for (size_t i = 0; i < s->ncontainers; i++) {
		labels[0].value = s->containers[i].member;
		metrics_put_uint(o, labels, 2, s->containers[i].mem_used);
	}
	metrics_family(o, "gpubox_container_memory_limit_bytes", "gauge",
		       "Memory limit of the member's container, when it has one.");
	for (size_t i = 0; i < s->ncontainers; i++) {
		if (s->containers[i].mem_limit == 0)
			continue;
		labels[0].value = s->containers[i].member;
		metrics_put_uint(o, labels, 2, s->containers[i].mem_limit);
	}
}

static void metrics_render_state(struct metrics_out *o, const struct sample *s)
{
	const struct metrics_label server[] = { { "server", s->server } };
	const struct metrics_label driver[] = {
		{ "server", s->server }, { "driver_version", s->driver_version },
	};

	metrics_family(o, "gpubox_nvml_up", "gauge", "1 when NVIDIA's management library answered.");
	metrics_put_uint(o, server, 1, s->gpu_ok);
	metrics_family(o, "gpubox_gpu_driver_info", "gauge",
		       "The NVIDIA driver's version (\"\" when unknown); always 1.");
	metrics_put_uint(o, driver, 2, 1);
	metrics_family(o, "gpubox_sample_timestamp_seconds", "gauge",
		       "When the server was read, in seconds since the epoch.");
	metrics_put_double(o, server, 1, (double)s->time_ms / 1000.0);
}

char *metrics_render(const struct sample *s, bool show_members)
{
	__do_free struct metrics_usage *usage = NULL;
	__do_free char *text = NULL;
	struct metrics_out o = { 0 };
	size_t n = 0, size = 0;

	if (metrics_member_usage(s, &usage, &n) < 0) {
		errno = ENOMEM;
		return NULL;
	}
	o.f = open_memstream(&text, &size);
	if (!o.f)
		return NULL;
	/* The stream is this call's alone: no lock around each write. */
	__fsetlocking(o.f, FSETLOCKING_BYCALLER);
	metrics_render_state(&o, s);
	metrics_render_gpus(&o, s);
	if (show_members)
		metrics_render_members(&o, s, usage, n);
	else
		metrics_render_members_summed(&o, s, usage, n);
	metrics_render_member_count(&o, s, usage, n);
	metrics_render_host_gpu(&o, s);
	metrics_render_host(&o, s);
	metrics_render_containers(&o, s);
	if (!memstream_close(o.f))
		return NULL;
	return move_ptr(text);
}

/* ---- the HTTP server ------------------------------------------------------ */

struct metrics_server {
	struct agent *agent;
	struct MHD_Daemon *daemon;
	bool token_required;
	unsigned char token_hash[crypto_generichash_BYTES];
};

/* What a route answers: a status, a body (malloc'd; NULL: out of memory)
 * and its type. */
struct metrics_reply {
	unsigned status;
	char *body;
	const char *content_type;
	const char *allow;             /* the Allow header of a 405; NULL: GET, HEAD */
};

/*
 * The routes.  Every route is read-only, behind the token when one is
 * configured, and answers GET and HEAD (HEAD by libmicrohttpd, which
 * leaves the body out); any other method is 405.  serve() may read the
 * query with MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key).
 */
struct metrics_route {
	const char *path;
	void (*serve)(struct metrics_server *m, struct MHD_Connection *c,
		      struct metrics_reply *reply);
};

static void metrics_reply_text(struct metrics_reply *reply, unsigned status, const char *text)
{
	reply->status = status;
	reply->body = strdup(text);
	reply->content_type = METRICS_TEXT_TYPE;
}

static void metrics_serve_metrics(struct metrics_server *m, struct MHD_Connection *c,
				  struct metrics_reply *reply)
{
	/* main.c may set the sampler after the server started. */
	struct sampler *sampler = __atomic_load_n(&m->agent->sampler, __ATOMIC_ACQUIRE);
	struct sample s;
	int ret;

	memset(&s, 0, sizeof(s));
	ret = sampler ? sampler_latest(sampler, &s) : -EAGAIN;
	if (ret == -EAGAIN) {
		metrics_reply_text(reply, MHD_HTTP_SERVICE_UNAVAILABLE, "no sample yet\n");
		return;
	}
	if (ret < 0) {
		log_message(LOG_LEVEL_ERROR, -ret, "metrics: cannot copy the newest sample");
		metrics_reply_text(reply, MHD_HTTP_INTERNAL_SERVER_ERROR, "the sample could not be read\n");
		return;
	}
	reply->body = metrics_render(&s, m->agent->cfg.show_members);
	sample_free(&s);
	/* A NULL body is answered "out of memory" by metrics_queue(). */
	reply->status = MHD_HTTP_OK;
	reply->content_type = METRICS_CONTENT_TYPE;
}

static const struct metrics_route metrics_routes[] = {
	{ "/metrics", metrics_serve_metrics },
};

static const struct metrics_route *metrics_find_route(const char *url)
{
	for (size_t i = 0; i < ARRAY_SIZE(metrics_routes); i++)
		if (strcmp(url, metrics_routes[i].path) == 0)
			return &metrics_routes[i];
	return NULL;
}

static void metrics_token_hash(const char *token, size_t len,
			       unsigned char hash[crypto_generichash_BYTES])
{
	crypto_generichash(hash, crypto_generichash_BYTES, (const unsigned char *)token, len,
			   NULL, 0);
}

/* "Authorization: Bearer <token>" with the configured token; the scheme's
 * name is case-insensitive (RFC 7235). */
static bool metrics_authorized(const struct metrics_server *m, struct MHD_Connection *c)
{
	unsigned char hash[crypto_generichash_BYTES];
	const char *header, *token;
	size_t len;

	if (!m->token_required)
		return true;
	header = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (!header || strncasecmp(header, "Bearer ", 7) != 0)
		return false;
	for (token = header + 7; *token == ' '; token++)
		;
	len = strnlen(token, METRICS_TOKEN_MAX + 1);
	while (len > 0 && (token[len - 1] == ' ' || token[len - 1] == '\t'))
		len--;
	if (len == 0 || len > METRICS_TOKEN_MAX)
		return false;
	metrics_token_hash(token, len, hash);
	return sodium_memcmp(hash, m->token_hash, sizeof(hash)) == 0;
}

static enum MHD_Result metrics_queue(struct MHD_Connection *c, struct metrics_reply *reply)
{
	static const char no_memory[] = "out of memory\n";
	struct MHD_Response *response;
	enum MHD_Result ret;

	if (reply->body) {
		response = MHD_create_response_from_buffer(strlen(reply->body), reply->body,
							   MHD_RESPMEM_MUST_FREE);
		if (response)
			reply->body = NULL;    /* the response owns it now */
	} else {
		reply->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		reply->content_type = METRICS_TEXT_TYPE;
		response = MHD_create_response_from_buffer(sizeof(no_memory) - 1, (void *)no_memory,
							   MHD_RESPMEM_PERSISTENT);
	}
	free(reply->body);
	if (!response)
		return MHD_NO;
	MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, reply->content_type);
	MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (reply->status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(response, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
					"Bearer realm=\"gpubox\"");
	if (reply->status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW,
					reply->allow ? reply->allow : "GET, HEAD");
	ret = MHD_queue_response(c, reply->status, response);
	MHD_destroy_response(response);
	return ret;
}

static bool metrics_method_allowed(const char *method)
{
	return strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
}

static bool metrics_has_body(struct MHD_Connection *c)
{
	const char *length = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
							 MHD_HTTP_HEADER_CONTENT_LENGTH);

	return (length && strcmp(length, "0") != 0) ||
	       MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
}

/*
 * The hub's routes.  They carry the hub's token for this server
 * (hubsync.c checks it), never the metrics token, and exist only on a
 * server that follows a hub.  POST /api/v1/poke says this server's
 * members changed: it only wakes the thread that asks the hub, so whoever
 * pokes learns nothing and changes nothing but the time of the next sync.
 * The GET routes give the hub what its monitor shows: the newest reading,
 * a history series, who was on a GPU at a time, usage per member (times in unix ms, as in
 * docs/protocol.md's history and usage).
 */
struct metrics_hub_route {
	const char *path;
	const char *method;            /* GET also answers HEAD */
	void (*serve)(struct metrics_server *m, struct MHD_Connection *c,
		      struct metrics_reply *reply);
};

static void metrics_reply_json(struct metrics_reply *reply, json_t *json)
{
	reply->status = MHD_HTTP_OK;
	reply->body = json ? json_dumps(json, JSON_COMPACT) : NULL;
	reply->content_type = "application/json";
	json_decref(json);
}

static void metrics_hub_poke(struct metrics_server *m, struct MHD_Connection *c,
			     struct metrics_reply *reply)
{
	hubsync_poke(__atomic_load_n(&m->agent->hubsync, __ATOMIC_ACQUIRE));
	metrics_reply_text(reply, MHD_HTTP_NO_CONTENT, "");
}

static void metrics_hub_sample(struct metrics_server *m, struct MHD_Connection *c,
			       struct metrics_reply *reply)
{
	struct sampler *sampler = __atomic_load_n(&m->agent->sampler, __ATOMIC_ACQUIRE);
	struct sample s;

	memset(&s, 0, sizeof(s));
	if (!sampler || sampler_latest(sampler, &s) < 0) {
		metrics_reply_text(reply, MHD_HTTP_SERVICE_UNAVAILABLE, "no sample yet\n");
		return;
	}
	metrics_reply_json(reply, sample_json(&s));
	sample_free(&s);
}

/* A whole number of the query (key absent: fallback); false if malformed. */
static bool metrics_query_number(struct MHD_Connection *c, const char *key, long long fallback,
				 long long max, long long *out)
{
	const char *text = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
	char *end;

	*out = fallback;
	if (!text)
		return true;
	if (*text < '0' || *text > '9')
		return false;
	errno = 0;
	*out = strtoll(text, &end, 10);
	return errno == 0 && *end == '\0' && *out <= max;
}

/* from and to (unix ms; default: the last hour, or week for usage). */
static bool metrics_query_range(struct MHD_Connection *c, long long span, long long *from,
				long long *to)
{
	long long now = (long long)time(NULL) * 1000;

	return metrics_query_number(c, "to", now, LLONG_MAX / 2, to) &&
	       metrics_query_number(c, "from", *to - span, LLONG_MAX / 2, from) && *from < *to;
}

static void metrics_hub_history(struct metrics_server *m, struct MHD_Connection *c,
				struct metrics_reply *reply)
{
	long long from, to, gpu, points;
	json_t *json = NULL;

	if (!metrics_query_range(c, 3600000LL, &from, &to) ||
	    !metrics_query_number(c, "gpu", -1, GPU_MAX - 1, &gpu) ||
	    !metrics_query_number(c, "points", 0, 5000, &points)) {
		metrics_reply_text(reply, MHD_HTTP_BAD_REQUEST,
				   "expected gpu, from, to (unix ms, from < to) and points (at most 5000)\n");
		return;
	}
	if (!m->agent->history || history_range(m->agent->history, (int)gpu, from, to,
						(unsigned)points, &json) < 0) {
		metrics_reply_text(reply, MHD_HTTP_SERVICE_UNAVAILABLE, "the history cannot be read\n");
		return;
	}
	metrics_reply_json(reply, json);
}

/* Who was on one GPU at one time (history_gpu_at); 404 when nothing was
 * recorded then. */
static void metrics_hub_at(struct metrics_server *m, struct MHD_Connection *c,
			   struct metrics_reply *reply)
{
	long long gpu, t;
	json_t *json = NULL;
	int ret;

	if (!MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "gpu") ||
	    !MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "t") ||
	    !metrics_query_number(c, "gpu", 0, GPU_MAX - 1, &gpu) ||
	    !metrics_query_number(c, "t", 0, LLONG_MAX / 2, &t)) {
		metrics_reply_text(reply, MHD_HTTP_BAD_REQUEST, "expected gpu and t (unix ms)\n");
		return;
	}
	ret = m->agent->history ? history_gpu_at(m->agent->history, (unsigned)gpu, t, &json)
				: -ENODATA;
	if (ret == -ENOENT) {
		metrics_reply_text(reply, MHD_HTTP_NOT_FOUND, "nothing was recorded then\n");
		return;
	}
	if (ret < 0) {
		metrics_reply_text(reply, MHD_HTTP_SERVICE_UNAVAILABLE, "the history cannot be read\n");
		return;
	}
	metrics_reply_json(reply, json);
}

static void metrics_hub_usage(struct metrics_server *m, struct MHD_Connection *c,
			      struct metrics_reply *reply)
{
	long long from, to;
	json_t *rows = NULL;

	if (!metrics_query_range(c, 7 * 86400000LL, &from, &to)) {
		metrics_reply_text(reply, MHD_HTTP_BAD_REQUEST, "expected from < to, in unix ms\n");
		return;
	}
	if (!m->agent->history || history_usage(m->agent->history, from, to, &rows) < 0) {
		metrics_reply_text(reply, MHD_HTTP_SERVICE_UNAVAILABLE, "the history cannot be read\n");
		return;
	}
	metrics_reply_json(reply, json_pack("{s:I, s:I, s:o}", "from", (json_int_t)from,
					    "to", (json_int_t)to, "members", rows));
}

static const struct metrics_hub_route metrics_hub_routes[] = {
	{ "/api/v1/poke", MHD_HTTP_METHOD_POST, metrics_hub_poke },
	{ "/api/v1/sample", MHD_HTTP_METHOD_GET, metrics_hub_sample },
	{ "/api/v1/history", MHD_HTTP_METHOD_GET, metrics_hub_history },
	{ "/api/v1/at", MHD_HTTP_METHOD_GET, metrics_hub_at },
	{ "/api/v1/usage", MHD_HTTP_METHOD_GET, metrics_hub_usage },
};

static const struct metrics_hub_route *metrics_find_hub_route(const char *url)
{
	for (size_t i = 0; i < ARRAY_SIZE(metrics_hub_routes); i++)
		if (strcmp(url, metrics_hub_routes[i].path) == 0)
			return &metrics_hub_routes[i];
	return NULL;
}

static void metrics_serve_hub(struct metrics_server *m, struct MHD_Connection *c,
			      const char *method, const struct metrics_hub_route *route,
			      struct metrics_reply *reply)
{
	/* main.c starts the hub's thread before this server; read it once. */
	struct hubsync *h = __atomic_load_n(&m->agent->hubsync, __ATOMIC_ACQUIRE);
	const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						       MHD_HTTP_HEADER_AUTHORIZATION);
	bool get = strcmp(route->method, MHD_HTTP_METHOD_GET) == 0;

	if (!h) {
		metrics_reply_text(reply, MHD_HTTP_NOT_FOUND, "this server follows no hub\n");
	} else if (!hubsync_token_ok(h, auth)) {
		log_debug("metrics: %s without this server's hub token", route->path);
		metrics_reply_text(reply, MHD_HTTP_UNAUTHORIZED, "the hub's token for this server is required\n");
	} else if (strcmp(method, route->method) != 0 && !(get && metrics_method_allowed(method))) {
		metrics_reply_text(reply, MHD_HTTP_METHOD_NOT_ALLOWED, "wrong method\n");
		reply->allow = get ? "GET, HEAD" : route->method;
	} else {
		route->serve(m, c, reply);
	}
}

/*
 * Called by libmicrohttpd's thread when a request's headers are in, then
 * for each piece of its body, then once more.  A GET or HEAD without a
 * body is answered at the last call: answered at the first, the
 * connection would be closed, and Prometheus keeps its connection between
 * scrapes.  Anything with a body is answered at once, the body never read
 * (no route takes one), and the connection closed.
 */
static enum MHD_Result metrics_handle(void *cls, struct MHD_Connection *c, const char *url,
				      const char *method, const char *version,
				      const char *upload_data, size_t *upload_data_size,
				      void **request_state)
{
	static int headers_seen;
	struct metrics_server *m = cls;
	struct metrics_reply reply = { 0 };
	const struct metrics_route *route;
	const struct metrics_hub_route *hub_route = metrics_find_hub_route(url);
	bool allowed = metrics_method_allowed(method);

	if (!*request_state && allowed && !metrics_has_body(c)) {
		*request_state = &headers_seen;
		return MHD_YES;
	}
	if (*request_state && *upload_data_size) {
		*upload_data_size = 0;     /* a body after all (cannot happen): dropped */
		return MHD_YES;
	}
	if (hub_route) {
		metrics_serve_hub(m, c, method, hub_route, &reply);
	} else if (!metrics_authorized(m, c)) {
		log_debug("metrics: a request for %.200s without the right token", url);
		metrics_reply_text(&reply, MHD_HTTP_UNAUTHORIZED, "a bearer token is required\n");
	} else if (!allowed) {
		metrics_reply_text(&reply, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n");
	} else if (!(route = metrics_find_route(url))) {
		metrics_reply_text(&reply, MHD_HTTP_NOT_FOUND, "not found; try /metrics\n");
	} else {
		route->serve(m, c, &reply);
	}
	return metrics_queue(c, &reply);
}

/* libmicrohttpd's own messages, into the agent's log: mostly a client's
 * mistakes (a header too big), hence warnings. */
__attribute__((format(printf, 2, 0)))
static void metrics_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];
	size_t len;

	vsnprintf(buf, sizeof(buf), fmt, ap);
	len = strlen(buf);
	while (len > 0 && buf[len - 1] == '\n')
		buf[--len] = '\0';
	log_warn("metrics: %s", buf);
}

/* ---- configuration: the address and the token ---- */

union metrics_address {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
};

static int metrics_listen_error(const char *text)
{
	log_error("metrics_listen \"%s\" is not HOST:PORT: HOST is an IPv4 address, an IPv6 address in brackets or localhost, PORT 1-65535",
		  text);
	return -EINVAL;
}

static bool metrics_is_loopback(const union metrics_address *addr)
{
	if (addr->sa.sa_family == AF_INET)
		return (ntohl(addr->in.sin_addr.s_addr) >> 24) == 127;
	if (IN6_IS_ADDR_LOOPBACK(&addr->in6.sin6_addr))
		return true;
	return IN6_IS_ADDR_V4MAPPED(&addr->in6.sin6_addr) && addr->in6.sin6_addr.s6_addr[12] == 127;
}

static uint16_t metrics_port(const union metrics_address *addr)
{
	return ntohs(addr->sa.sa_family == AF_INET6 ? addr->in6.sin6_port : addr->in.sin_port);
}

/* "A.B.C.D:PORT", "[IPV6]:PORT" or "localhost:PORT" (127.0.0.1).  No
 * name is resolved: the agent must not depend on DNS to start. */
static int metrics_parse_listen(const char *text, union metrics_address *addr)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon, *start = text, *end;
	uint16_t port;

	memset(addr, 0, sizeof(*addr));
	if (text[0] == '[') {
		start = text + 1;
		end = strchr(start, ']');
		if (!end || end[1] != ':')
			return metrics_listen_error(text);
		colon = end + 1;
	} else {
		colon = strrchr(text, ':');
		if (!colon)
			return metrics_listen_error(text);
		end = colon;
	}
	if (end == start || (size_t)(end - start) >= sizeof(host) || parse_port(colon + 1, &port) < 0)
		return metrics_listen_error(text);
	memcpy(host, start, (size_t)(end - start));
	host[end - start] = '\0';
	if (text[0] == '[') {
		if (inet_pton(AF_INET6, host, &addr->in6.sin6_addr) != 1)
			return metrics_listen_error(text);
		addr->in6.sin6_family = AF_INET6;
		addr->in6.sin6_port = htons(port);
		return 0;
	}
	if (strcasecmp(host, "localhost") == 0)
		addr->in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else if (inet_pton(AF_INET, host, &addr->in.sin_addr) != 1)
		return metrics_listen_error(text);
	addr->in.sin_family = AF_INET;
	addr->in.sin_port = htons(port);
	return 0;
}

/* One line of visible ASCII, METRICS_TOKEN_MIN to METRICS_TOKEN_MAX long. */
static bool metrics_token_valid(const char *token, size_t len)
{
	if (len < METRICS_TOKEN_MIN || len > METRICS_TOKEN_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (token[i] <= ' ' || token[i] > '~')
			return false;
	return true;
}

/* Read the token once and keep only its hash. */
static int metrics_load_token(const char *path, unsigned char hash[crypto_generichash_BYTES])
{
	__do_free char *data = NULL;
	struct stat st;
	size_t len = 0;
	int ret;

	if (stat(path, &st) < 0)
		return log_error_errno(-EINVAL, errno, "metrics: cannot read metrics_token_file %s",
				       path);
	if (!S_ISREG(st.st_mode))
		return log_error_errno(-EINVAL, 0, "metrics: metrics_token_file %s is not a regular file",
				       path);
	if (st.st_mode & 077)
		log_warn("metrics: metrics_token_file %s is open to other users (mode %04o); chmod 600 it",
			 path, (unsigned)(st.st_mode & 07777));
	ret = fsutil_read_file(path, METRICS_TOKEN_MAX + 2, &data, &len);
	if (ret < 0)
		return log_error_errno(-EINVAL, -ret, "metrics: cannot read metrics_token_file %s",
				       path);
	while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
		len--;
	if (!metrics_token_valid(data, len)) {
		sodium_memzero(data, len);
		return log_error_errno(-EINVAL, 0,
				       "metrics: metrics_token_file %s must hold one line of %d to %d visible ASCII characters",
				       path, METRICS_TOKEN_MIN, METRICS_TOKEN_MAX);
	}
	metrics_token_hash(data, len, hash);
	sodium_memzero(data, len);
	return 0;
}

/* epoll where libmicrohttpd has it, else poll(), else select(). */
static unsigned metrics_daemon_flags(const union metrics_address *addr)
{
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;

	if (MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES)
		flags |= MHD_USE_EPOLL;
	else if (MHD_is_feature_supported(MHD_FEATURE_POLL) == MHD_YES)
		flags |= MHD_USE_POLL;
	if (addr->sa.sa_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	return flags;
}

int metrics_start(struct agent *a, struct metrics_server **out)
{
	__do_free struct metrics_server *m = NULL;
	const struct gpubox_config *cfg = &a->cfg;
	union metrics_address addr;
	int ret;

	*out = NULL;
	if (!cfg->metrics_listen[0])
		return 0;
	ret = metrics_parse_listen(cfg->metrics_listen, &addr);
	if (ret < 0)
		return ret;
	if (!cfg->metrics_token_file[0] && !metrics_is_loopback(&addr))
		return log_error_errno(-EINVAL, 0,
				       "metrics: %s is not a loopback address, and who uses which GPU is the members' business: set metrics_token_file to serve it",
				       cfg->metrics_listen);
	if (sodium_init() < 0)
		return log_error_errno(-EIO, 0, "metrics: libsodium could not be initialised");
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->agent = a;
	if (cfg->metrics_token_file[0]) {
		ret = metrics_load_token(cfg->metrics_token_file, m->token_hash);
		if (ret < 0)
			return ret;
		m->token_required = true;
	}
	errno = 0;
	/* The logger first, or libmicrohttpd complains on stderr. */
	m->daemon = MHD_start_daemon(metrics_daemon_flags(&addr), metrics_port(&addr), NULL, NULL,
				     metrics_handle, m,
				     MHD_OPTION_EXTERNAL_LOGGER, metrics_mhd_log, NULL,
				     MHD_OPTION_SOCK_ADDR, &addr.sa,
				     MHD_OPTION_CONNECTION_LIMIT, METRICS_CONNECTION_LIMIT,
				     MHD_OPTION_PER_IP_CONNECTION_LIMIT, METRICS_PER_IP_LIMIT,
				     MHD_OPTION_CONNECTION_TIMEOUT, METRICS_TIMEOUT_SECONDS,
				     MHD_OPTION_CONNECTION_MEMORY_LIMIT, METRICS_MEMORY_LIMIT,
				     MHD_OPTION_END);
	if (!m->daemon) {
		ret = errno > 0 ? -errno : -EIO;
		return log_error_errno(ret, -ret, "metrics: cannot serve on %s", cfg->metrics_listen);
	}
	log_info("metrics: serving /metrics on %s%s", cfg->metrics_listen,
		 m->token_required ? " (bearer token required)" : "");
	*out = move_ptr(m);
	return 0;
}

void metrics_stop(struct metrics_server *m)
{
	if (!m)
		return;
	if (m->daemon)
		MHD_stop_daemon(m->daemon);
	sodium_memzero(m->token_hash, sizeof(m->token_hash));
	free(m);
}
