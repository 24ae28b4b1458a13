/* SPDX-License-Identifier: MIT */
/*
 * Who uses which GPU: the operations answered from the sampler's newest
 * reading (ps, gpus) and from the history (history, usage).  A member sees
 * their own processes only; other members' names are shown or hidden by
 * show_members; admins see everything.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "gpu/gpu.h"
#include "monitor/monitor.h"
#include "ops.h"
#include "reservations.h"
#include "state/state.h"
#include "cleanup.h"
#include "log.h"
#include "proto.h"
#include "banned.h"

#define OPS_OTHERS "(others)"

static void ops_sample_freep(struct sample *s)
{
	sample_free(s);
}
#define __do_sample __attribute__((cleanup(ops_sample_freep)))

static int ops_latest(struct op_context *ctx, struct sample *s)
{
	memset(s, 0, sizeof(*s));
	if (collector_latest(ctx->a->collector, s) < 0)
		return ops_fail(ctx, PROTO_E_UNAVAILABLE,
				"the agent has no reading of the server yet; try again in a second");
	return 0;
}

static const char *ops_gpu_uuid(const struct sample *s, unsigned gpu)
{
	for (size_t i = 0; i < s->ngpus; i++)
		if (s->gpus[i].index == gpu)
			return s->gpus[i].uuid;
	return "";
}

static json_t *ops_process_json(const struct sample *s, const struct sample_process *p,
				bool host_view)
{
	long long now = s->time_ms / 1000;
	json_t *o = json_pack("{s:I, s:i, s:s, s:s, s:I, s:I}",
			      "pid", (json_int_t)p->ns_pid, "gpu", (int)p->gpu,
			      "uuid", ops_gpu_uuid(s, p->gpu), "command", p->command,
			      "started", (json_int_t)p->started,
			      "running_seconds", (json_int_t)(p->started && now > p->started ? now - p->started : 0));

	if (!o)
		return NULL;
	if (p->mem_used != UINT64_MAX)
		json_object_set_new(o, "mem_used", json_integer((json_int_t)p->mem_used));
	if (p->sm_util >= 0)
		json_object_set_new(o, "sm_util", json_integer(p->sm_util));
	json_object_set_new(o, "idle", json_boolean(p->idle));
	if (p->idle_seconds)
		json_object_set_new(o, "idle_seconds", json_integer(p->idle_seconds));
	/* Host pids mean something only on the host. */
	if (host_view) {
		json_object_set_new(o, "host_pid", json_integer(p->pid));
		json_object_set_new(o, "member", json_string(p->member));
	}
	return o;
}

/*
 * ps: a member's own GPU processes with the pids of their container, ready
 * for kill; an admin names a member, or gets every process of the server.
 */
static int op_ps(struct op_context *ctx, json_t **result)
{
	static const char *const allowed[] = { "member", NULL };
	__do_sample struct sample s = { 0 };
	struct member_record rec;
	const char *member = NULL;
	bool everyone, host_view;
	json_t *list;

	if (ops_check_args(ctx, allowed) < 0)
		return -1;
	everyone = ctx->who->admin && !json_object_get(ctx->args, "member");
	if (!everyone) {
		if (ops_target(ctx, &rec) < 0)
			return -1;
		member = rec.name;
	}
	if (ops_latest(ctx, &s) < 0)
		return -1;
	host_view = ctx->who->admin;
	list = json_array();
	for (size_t i = 0; list && i < s.nprocs; i++) {
		if (member && strcmp(s.procs[i].member, member) != 0)
			continue;
		json_array_append_new(list, ops_process_json(&s, &s.procs[i], host_view));
	}
	*result = json_pack("{s:s, s:o, s:b, s:I}", "server", s.server, "processes", list,
			    "gpu_ok", s.gpu_ok, "time", (json_int_t)s.time_ms);
	if (*result && member)
		json_object_set_new(*result, "member", json_string(member));
	if (*result && !s.gpu_ok)
		json_object_set_new(*result, "gpu_note", json_string(s.gpu_note[0] ? s.gpu_note :
								     "no NVIDIA GPU on this server"));
	return 0;
}

bool ops_names_visible(const struct op_context *ctx)
{
	return ctx->who->admin || ctx->a->cfg.show_members;
}

static const char *ops_caller_name(const struct op_context *ctx)
{
	return ctx->who->is_member ? ctx->who->member.name : "";
}

/* Names (sample_gpu_members() or sample_gpu_idle_members(), taken) as
 * the caller may see them. */
static json_t *ops_gpu_users(const struct op_context *ctx, json_t *names, bool *yours, size_t *count)
{
	json_t *shown = json_array();
	size_t i;
	json_t *name;

	*yours = false;
	*count = json_array_size(names);
	json_array_foreach(names, i, name) {
		bool mine = strcmp(json_string_value(name), ops_caller_name(ctx)) == 0;

		*yours |= mine;
		if (mine || ops_names_visible(ctx))
			json_array_append(shown, name);
	}
	json_decref(names);
	return shown;
}

/* The longest a process has held GPU gpu idle, among those marked. */
static uint32_t ops_gpu_idle_seconds(const struct sample *s, unsigned gpu)
{
	uint32_t longest = 0;

	for (size_t i = 0; i < s->nprocs; i++)
		if (s->procs[i].gpu == gpu && s->procs[i].idle && s->procs[i].idle_seconds > longest)
			longest = s->procs[i].idle_seconds;
	return longest;
}

/* "idle": a member's processes hold the GPU idle; "idle_members": whose,
 * as the caller may see them; "idle_seconds": for how long. */
static void ops_gpu_idle(const struct op_context *ctx, const struct sample *s, unsigned gpu,
			 json_t *o)
{
	bool yours;
	size_t count;
	json_t *names = ops_gpu_users(ctx, sample_gpu_idle_members(s, gpu), &yours, &count);

	json_object_set_new(o, "idle", json_boolean(count > 0));
	json_object_set_new(o, "idle_members", names);
	if (count)
		json_object_set_new(o, "idle_seconds", json_integer(ops_gpu_idle_seconds(s, gpu)));
}

/* The active reservation of GPU gpu in reservations (as the caller may see
 * them): {"id", "member" (null: hidden), "until_ms", "yours"}, or NULL. */
static json_t *ops_gpu_reservation(json_t *reservations, unsigned gpu)
{
	size_t i, j;
	json_t *r, *g;

	json_array_foreach(reservations, i, r) {
		const char *state = json_string_value(json_object_get(r, "state"));

		if (!state || strcmp(state, "active") != 0)
			continue;
		json_array_foreach(json_object_get(r, "gpus"), j, g)
			if (json_integer_value(g) == (json_int_t)gpu)
				return json_pack("{s:O, s:O, s:O, s:O}", "id", json_object_get(r, "id"),
						 "member", json_object_get(r, "member"),
						 "until_ms", json_object_get(r, "until_ms"),
						 "yours", json_object_get(r, "yours"));
	}
	return NULL;
}

static int op_gpus(struct op_context *ctx, json_t **result)
{
	static const char *const allowed[] = { NULL };
	__do_sample struct sample s = { 0 };
	__do_json json_t *reservations = NULL;
	json_t *list, *cap;

	if (ops_check_args(ctx, allowed) < 0 || ops_latest(ctx, &s) < 0)
		return -1;
	reservations = reservations_json(ctx->a, ops_caller_name(ctx), ops_names_visible(ctx));
	list = json_array();
	for (size_t i = 0; list && i < s.ngpus; i++) {
		const struct nvml_gpu *g = &s.gpus[i];
		bool yours, host_use = false;
		size_t users;
		json_t *members = ops_gpu_users(ctx, sample_gpu_members(&s, g->index), &yours, &users);
		json_t *reserved = ops_gpu_reservation(reservations, g->index);
		json_t *o;

		for (size_t j = 0; j < s.nprocs; j++)
			host_use |= s.procs[j].gpu == g->index && !s.procs[j].member[0];
		/* The GPU as the hub sees it, with the members the caller may see. */
		o = sample_gpu_json(&s, g);
		if (!o) {
			json_decref(members);
			continue;
		}
		json_object_set_new(o, "members", members);
		json_object_set_new(o, "member_count", json_integer((json_int_t)users));
		json_object_set_new(o, "yours", json_boolean(yours));
		json_object_set_new(o, "host_processes", json_boolean(host_use));
		json_object_set_new(o, "free", json_boolean(!g->lost && users == 0 && !host_use &&
							     !reserved));
		if (reserved)
			json_object_set_new(o, "reservation", reserved);
		ops_gpu_idle(ctx, &s, g->index, o);
		json_array_append_new(list, o);
	}
	*result = json_pack("{s:s, s:s, s:b, s:o, s:b, s:I}", "server", s.server,
			    "driver_version", s.driver_version, "gpu_ok", s.gpu_ok, "gpus", list,
			    "names_shown", ops_names_visible(ctx), "time", (json_int_t)s.time_ms);
	if (*result && !s.gpu_ok)
		json_object_set_new(*result, "gpu_note", json_string(s.gpu_note[0] ? s.gpu_note :
								     "no NVIDIA GPU on this server"));
	/* A member's own GPUs held against gpu_cap. */
	cap = ctx->who->is_member ? ops_reserve_cap_json(ctx->a, ctx->who->member.name, &s) : NULL;
	if (*result && cap)
		json_object_set_new(*result, "gpu_cap", cap);
	else
		json_decref(cap);
	return 0;
}

/* ---- the past ------------------------------------------------------------ */

static int ops_history_ready(struct op_context *ctx)
{
	if (!ctx->a->history)
		return ops_fail(ctx, PROTO_E_UNAVAILABLE,
				"this agent keeps no history (its database could not be opened; see its log)");
	return 0;
}

static int ops_time_arg(struct op_context *ctx, const char *key, long long fallback, long long *out)
{
	json_t *v = json_object_get(ctx->args, key);

	if (!v) {
		*out = fallback;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return ops_fail(ctx, PROTO_E_USAGE, "\"%s\" must be a time in unix milliseconds", key);
	*out = json_integer_value(v);
	return 0;
}

/* Hide other members in a GPU's "members" list of history_gpu_at(). */
static void ops_hide_at_members(const struct op_context *ctx, json_t *at)
{
	json_t *members = json_object_get(at, "members");
	size_t i = 0;

	while (i < json_array_size(members)) {
		json_t *m = json_array_get(members, i);

		if (strcmp(json_string_value(json_object_get(m, "member")) ?: "",
			   ops_caller_name(ctx)) != 0)
			json_array_remove(members, i);
		else
			i++;
	}
}

/* Drop other members' series from history_range()'s "members" objects. */
static void ops_hide_range_members(const struct op_context *ctx, json_t *range)
{
	json_t *gpus = json_object_get(range, "gpus");
	json_t *gpu;
	size_t i;

	json_array_foreach(gpus, i, gpu) {
		json_t *members = json_object_get(gpu, "members");
		json_t *mine = json_object_get(members, ops_caller_name(ctx));
		json_t *keep = json_object();

		if (mine)
			json_object_set(keep, ops_caller_name(ctx), mine);
		json_object_set_new(gpu, "members", keep);
	}
}

static int op_history(struct op_context *ctx, json_t **result)
{
	static const char *const allowed[] = { "gpu", "at", "from", "to", "points", NULL };
	long long now = (long long)time(NULL) * 1000, at, from, to, points;
	json_t *gpu_arg = json_object_get(ctx->args, "gpu");
	int gpu = -1, ret;

	if (ops_check_args(ctx, allowed) < 0 || ops_history_ready(ctx) < 0)
		return -1;
	if (gpu_arg && (!json_is_integer(gpu_arg) || json_integer_value(gpu_arg) < 0 ||
			json_integer_value(gpu_arg) >= GPU_MAX))
		return ops_usage(ctx, "\"gpu\" must be a GPU index");
	if (gpu_arg)
		gpu = (int)json_integer_value(gpu_arg);
	if (ops_time_arg(ctx, "at", -1, &at) < 0 || ops_time_arg(ctx, "from", now - 3600000, &from) < 0 ||
	    ops_time_arg(ctx, "to", now, &to) < 0 || ops_time_arg(ctx, "points", 0, &points) < 0)
		return -1;
	if (at >= 0) {
		if (gpu < 0)
			return ops_usage(ctx, "\"at\" needs \"gpu\": the GPU whose state to show");
		ret = history_gpu_at(ctx->a->history, (unsigned)gpu, at, result);
		if (ret == -ENOENT)
			return ops_fail(ctx, PROTO_E_NOTFOUND,
					"nothing was recorded for GPU %d at that time (the history keeps %u days)",
					gpu, ctx->a->cfg.history_days);
		if (ret == 0 && !ops_names_visible(ctx))
			ops_hide_at_members(ctx, *result);
	} else {
		if (from >= to)
			return ops_usage(ctx, "the start of the range must come before its end");
		ret = history_range(ctx->a->history, gpu, from, to, (unsigned)(points > 5000 ? 5000 : points),
				    result);
		if (ret == 0 && !ops_names_visible(ctx))
			ops_hide_range_members(ctx, *result);
	}
	if (ret < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "the history could not be read; see the agent's log");
	json_object_set_new(*result, "server", json_string(ctx->a->cfg.server_name));
	return 0;
}

/* Other members' rows become one "(others)" row when names are hidden. */
static void ops_hide_usage(const struct op_context *ctx, json_t *rows)
{
	double hours = 0, mem_hours = 0, idle_hours = 0;
	bool any = false;
	size_t i = 0;

	while (i < json_array_size(rows)) {
		json_t *row = json_array_get(rows, i);

		if (strcmp(json_string_value(json_object_get(row, "member")) ?: "",
			   ops_caller_name(ctx)) == 0) {
			i++;
			continue;
		}
		hours += json_number_value(json_object_get(row, "gpu_hours"));
		mem_hours += json_number_value(json_object_get(row, "gpu_mem_gib_hours"));
		idle_hours += json_number_value(json_object_get(row, "idle_gpu_hours"));
		any = true;
		json_array_remove(rows, i);
	}
	if (any)
		json_array_append_new(rows, json_pack("{s:s, s:f, s:f, s:f}", "member", OPS_OTHERS,
						      "gpu_hours", hours, "gpu_mem_gib_hours", mem_hours,
						      "idle_gpu_hours", idle_hours));
}

static int op_usage(struct op_context *ctx, json_t **result)
{
	static const char *const allowed[] = { "from", "to", NULL };
	long long now = (long long)time(NULL) * 1000, from, to;
	json_t *rows = NULL;

	if (ops_check_args(ctx, allowed) < 0 || ops_history_ready(ctx) < 0)
		return -1;
	if (ops_time_arg(ctx, "from", now - 7LL * 86400000, &from) < 0 ||
	    ops_time_arg(ctx, "to", now, &to) < 0)
		return -1;
	if (from >= to)
		return ops_usage(ctx, "the start of the period must come before its end");
	if (history_usage(ctx->a->history, from, to, &rows) < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "the history could not be read; see the agent's log");
	if (!ops_names_visible(ctx))
		ops_hide_usage(ctx, rows);
	*result = json_pack("{s:s, s:I, s:I, s:o}", "server", ctx->a->cfg.server_name,
			    "from", (json_int_t)from, "to", (json_int_t)to, "members", rows);
	return 0;
}

const struct op_entry ops_monitor_table[] = {
	{ "ps",      op_ps,      OP_READ_ONLY, NULL },
	{ "gpus",    op_gpus,    OP_READ_ONLY, NULL },
	{ "history", op_history, OP_READ_ONLY, NULL },
	{ "usage",   op_usage,   OP_READ_ONLY, NULL },
	{ 0 },
};
