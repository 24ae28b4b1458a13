/* SPDX-License-Identifier: MIT */
/*
 * One reading of the whole server (struct sample): the sampler fills it,
 * every reader (gpubox ps, gpus, /metrics, the hub) works on its own copy,
 * so no reader ever holds the sampler's lock while it formats or sends.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
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

json_t *sample_gpu_members(const struct sample *s, unsigned gpu)
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

		if (p->gpu != gpu || !p->member[0])
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
