/* SPDX-License-Identifier: MIT */
/*
 * One reading of the whole server (struct sample): the sampler fills it,
 * every reader (gpubox ps, gpus, /metrics, the hub) works on its own copy,
 * so no reader ever holds the sampler's lock while it formats or sends.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gpu/gpu.h"
#include "monitor/monitor.h"
#include "monitor/procinfo.h"
#include "cleanup.h"
#include "banned.h"

void sample_free(struct sample *s)
{
	free(s->gpus);
	free(s->procs);
	free(s->containers);
	s->gpus = NULL;
	s->procs = NULL;
	s->containers = NULL;
	s->ngpus = s->nprocs = s->ncontainers = 0;
}

static int sample_dup_array(const void *from, size_t n, size_t size, void **to)
{
	*to = NULL;
	if (n == 0)
		return 0;
	*to = malloc(n * size);
	if (!*to)
		return -ENOMEM;
	memcpy(*to, from, n * size);
	return 0;
}

int sample_copy(const struct sample *from, struct sample *to)
{
	void *gpus, *procs, *containers;

	if (sample_dup_array(from->gpus, from->ngpus, sizeof(*from->gpus), &gpus) < 0)
		return -ENOMEM;
	if (sample_dup_array(from->procs, from->nprocs, sizeof(*from->procs), &procs) < 0) {
		free(gpus);
		return -ENOMEM;
	}
	if (sample_dup_array(from->containers, from->ncontainers, sizeof(*from->containers),
			     &containers) < 0) {
		free(gpus);
		free(procs);
		return -ENOMEM;
	}
	*to = *from;
	to->gpus = gpus;
	to->procs = procs;
	to->containers = containers;
	return 0;
}

static int sample_compare_names(const void *a, const void *b)
{
	return strcmp(json_string_value(*(json_t *const *)a), json_string_value(*(json_t *const *)b));
}

static json_t *sample_gpu_names(const struct sample *s, unsigned gpu, bool idle_only)
{
	__do_free json_t **names = NULL;
	json_t *array = json_array();
	size_t n = 0;

	if (!array)
		return NULL;
	names = calloc(s->nprocs + 1, sizeof(*names));
	if (!names)
		return array;
	for (size_t i = 0; i < s->nprocs; i++) {
		const struct sample_process *p = &s->procs[i];
		bool seen = false;

		if (p->gpu != gpu || !p->member[0] || (idle_only && !p->idle))
			continue;
		for (size_t j = 0; j < n && !seen; j++)
			seen = strcmp(json_string_value(names[j]), p->member) == 0;
		if (!seen)
			names[n++] = json_string(p->member);
	}
	qsort(names, n, sizeof(*names), sample_compare_names);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(array, names[i]);
	return array;
}

json_t *sample_gpu_members(const struct sample *s, unsigned gpu)
{
	return sample_gpu_names(s, gpu, false);
}

json_t *sample_gpu_idle_members(const struct sample *s, unsigned gpu)
{
	return sample_gpu_names(s, gpu, true);
}

static void sample_set_known(json_t *o, const char *key, long long value, bool known)
{
	if (known)
		json_object_set_new(o, key, json_integer(value));
}

static json_t *sample_host_json(const struct host_stats *h)
{
	return json_pack("{s:i, s:f, s:I, s:I, s:[f, f, f], s:I, s:I, s:f, s:f, s:f, s:f}",
			 "ncpus", (int)h->ncpus, "cpu_percent", h->cpu_percent,
			 "mem_total", (json_int_t)h->mem_total, "mem_available", (json_int_t)h->mem_available,
			 "load", h->load[0], h->load[1], h->load[2],
			 "disk_total", (json_int_t)h->disk_total, "disk_used", (json_int_t)h->disk_used,
			 "disk_read_rate", h->disk_read_rate, "disk_write_rate", h->disk_write_rate,
			 "net_rx_rate", h->net_rx_rate, "net_tx_rate", h->net_tx_rate);
}

json_t *sample_gpu_json(const struct sample *s, const struct nvml_gpu *g)
{
	json_t *o = json_pack("{s:i, s:s, s:s, s:s, s:b, s:I, s:o}", "index", (int)g->index,
			      "uuid", g->uuid, "name", g->name, "bus_id", g->bus_id, "lost", g->lost,
			      "mem_used", (json_int_t)g->mem_used, "members",
			      sample_gpu_members(s, g->index));

	if (!o)
		return NULL;
	sample_set_known(o, "util", g->util_gpu, g->util_gpu >= 0);
	sample_set_known(o, "mem_total", (long long)g->mem_total, g->mem_total > 0);
	sample_set_known(o, "temperature", g->temperature, g->temperature >= 0);
	if (g->power_mw >= 0)
		json_object_set_new(o, "power_w", json_real(g->power_mw / 1000.0));
	return o;
}

static json_t *sample_process_json(const struct sample_process *p)
{
	json_t *o = json_pack("{s:i, s:s, s:I, s:I, s:s, s:I}", "gpu", (int)p->gpu,
			      "member", p->member, "pid", (json_int_t)p->ns_pid,
			      "host_pid", (json_int_t)p->pid, "command", p->command,
			      "started", (json_int_t)p->started);

	if (!o)
		return NULL;
	sample_set_known(o, "mem_used", (long long)p->mem_used, p->mem_used != UINT64_MAX);
	sample_set_known(o, "sm_util", p->sm_util, p->sm_util >= 0);
	sample_set_known(o, "idle_seconds", p->idle_seconds, p->idle_seconds > 0);
	if (p->idle)
		json_object_set_new(o, "idle", json_true());
	return o;
}

json_t *sample_json(const struct sample *s)
{
	json_t *gpus = json_array(), *procs = json_array(), *containers = json_array();

	for (size_t i = 0; gpus && i < s->ngpus; i++)
		json_array_append_new(gpus, sample_gpu_json(s, &s->gpus[i]));
	for (size_t i = 0; procs && i < s->nprocs; i++)
		json_array_append_new(procs, sample_process_json(&s->procs[i]));
	for (size_t i = 0; containers && i < s->ncontainers; i++) {
		const struct sample_container *c = &s->containers[i];

		json_array_append_new(containers, json_pack("{s:s, s:f, s:I, s:I, s:I, s:I}", "member",
			c->member, "cpu_percent", c->cpu_percent, "mem_used", (json_int_t)c->mem_used,
			"mem_limit", (json_int_t)c->mem_limit, "pids", (json_int_t)c->pids,
			"oom_kills", (json_int_t)c->oom_kills));
	}
	return json_pack("{s:I, s:s, s:b, s:s, s:s, s:o, s:o, s:o, s:o}", "time",
			 (json_int_t)s->time_ms, "server", s->server, "gpu_ok", s->gpu_ok,
			 "gpu_note", s->gpu_note, "driver_version", s->driver_version,
			 "host", sample_host_json(&s->host), "gpus", gpus, "processes", procs,
			 "containers", containers);
}
