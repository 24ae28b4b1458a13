/* SPDX-License-Identifier: MIT */
/*
 * GPUs held idle: a member's process that keeps idle_memory_min of a GPU's
 * memory while the GPU does nothing (0 % utilisation) keeps the GPU from
 * everyone else.  The tracker follows each such process from one reading
 * to the next (by GPU, pid and start time, so a reused pid starts afresh)
 * and each member's idle time on each GPU, its "period": the notices of a
 * period are counted there, two at most, and a period ends, notices and
 * all, as soon as none of its processes is idle.
 *
 * Time is a monotonic clock's: a step of the wall clock must never make a
 * process look idle for hours and end it.  Utilisation is the GPU's, not a
 * process's (drivers report that only now and then): a GPU that any
 * process uses is busy for every member on it.  A GPU whose utilisation
 * is not known (MIG, lost) is never idle.
 *
 * The first half of this file is the tracker, pure logic over readings;
 * the second is the agent's side, which tells members and the webhook and
 * has processes ended (reclaim.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "gpu/gpu.h"
#include "monitor/monitor.h"
#include "notify.h"
#include "reservations.h"
#include "array.h"
#include "cleanup.h"
#include "log.h"
#include "timeparse.h"
#include "banned.h"

#define IDLE_NOTICES 2

/* A process holding a GPU idle. */
struct idle_process {
	pid_t pid;
	unsigned gpu;
	unsigned long long start_ticks;
	long long since_ms;        /* idle since */
	bool reclaimed;            /* handed out to be ended */
};

/* A member's idle time on one GPU. */
struct idle_period {
	char member[MEMBER_NAME_SIZE];
	unsigned gpu;
	long long since_ms;        /* its earliest process's */
	unsigned notices;          /* given in this period */
	uint64_t mem_used;         /* of this reading */
	unsigned processes;
};

struct idle_tracker {
	struct idle_settings settings;
	/* This reading's and the one before, swapped after each reading. */
	struct idle_process *procs, *next_procs;    /* sorted by pid, gpu */
	size_t nprocs, nnext_procs, procs_cap, next_procs_cap;
	struct idle_period *periods, *next_periods;
	size_t nperiods, nnext_periods, periods_cap, next_periods_cap;
};

int idle_tracker_new(const struct idle_settings *settings, struct idle_tracker **out)
{
	struct idle_tracker *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->settings = *settings;
	*out = t;
	return 0;
}

void idle_tracker_free(struct idle_tracker *t)
{
	if (!t)
		return;
	free(t->procs);
	free(t->next_procs);
	free(t->periods);
	free(t->next_periods);
	free(t);
}

void idle_events_free(struct idle_events *ev)
{
	free(ev->notices);
	free(ev->victims);
	free(ev->ended);
	memset(ev, 0, sizeof(*ev));
}

static int idle_process_order(const void *a, const void *b)
{
	const struct idle_process *x = a, *y = b;

	if (x->pid != y->pid)
		return x->pid < y->pid ? -1 : 1;
	return x->gpu < y->gpu ? -1 : x->gpu > y->gpu;
}

/* pid's entry on gpu in a sorted list, if it is the same process. */
static struct idle_process *idle_find_process(struct idle_process *list, size_t n, pid_t pid,
					      unsigned gpu, unsigned long long start_ticks)
{
	struct idle_process key = { .pid = pid, .gpu = gpu };
	struct idle_process *found = n ? bsearch(&key, list, n, sizeof(*list), idle_process_order) : NULL;

	return found && found->start_ticks == start_ticks ? found : NULL;
}

static struct idle_period *idle_find_period(struct idle_period *list, size_t n, const char *member,
					    unsigned gpu)
{
	for (size_t i = 0; i < n; i++)
		if (list[i].gpu == gpu && strcmp(list[i].member, member) == 0)
			return &list[i];
	return NULL;
}

static const struct nvml_gpu *idle_gpu(const struct sample *s, unsigned index)
{
	for (size_t i = 0; i < s->ngpus; i++)
		if (s->gpus[i].index == index)
			return &s->gpus[i];
	return NULL;
}

/* Whether p, a member's process, holds enough of a GPU that does nothing. */
static bool idle_holds_idle_gpu(const struct idle_tracker *t, const struct sample *s,
				const struct sample_process *p)
{
	const struct nvml_gpu *g = idle_gpu(s, p->gpu);

	return s->gpu_ok && p->member[0] && p->mem_used != UINT64_MAX &&
	       p->mem_used >= t->settings.memory_min && g && !g->lost && g->util_gpu == 0;
}

/* ---- one reading -------------------------------------------------------------- */

/* p's entry in this reading, carrying on its entry of the last. */
static struct idle_process *idle_track_process(struct idle_tracker *t, const struct sample_process *p,
					       long long now)
{
	struct idle_process *before = idle_find_process(t->procs, t->nprocs, p->pid, p->gpu,
							p->start_ticks);
	struct idle_process *e;

	if (ARRAY_RESERVE(t->next_procs, t->next_procs_cap, t->nnext_procs) < 0)
		return NULL;
	e = &t->next_procs[t->nnext_procs++];
	*e = before ? *before : (struct idle_process){ .pid = p->pid, .gpu = p->gpu,
						       .start_ticks = p->start_ticks, .since_ms = now };
	return e;
}

/* p's member's period on p's GPU in this reading, with p counted in. */
static int idle_track_period(struct idle_tracker *t, const struct sample_process *p,
			     const struct idle_process *e)
{
	struct idle_period *period = idle_find_period(t->next_periods, t->nnext_periods, p->member, p->gpu);

	if (!period) {
		const struct idle_period *before = idle_find_period(t->periods, t->nperiods, p->member, p->gpu);

		if (ARRAY_RESERVE(t->next_periods, t->next_periods_cap, t->nnext_periods) < 0)
			return -ENOMEM;
		period = &t->next_periods[t->nnext_periods++];
		*period = (struct idle_period){ .gpu = p->gpu, .since_ms = e->since_ms,
						.notices = before ? before->notices : 0 };
		memcpy(period->member, p->member, sizeof(period->member));
	}
	if (e->since_ms < period->since_ms)
		period->since_ms = e->since_ms;
	period->mem_used += p->mem_used;
	period->processes++;
	return 0;
}

/* Follow every process holding an idle GPU, and mark it in s. */
static int idle_track(struct idle_tracker *t, struct sample *s, long long now)
{
	t->nnext_procs = t->nnext_periods = 0;
	for (size_t i = 0; i < s->nprocs; i++) {
		struct sample_process *p = &s->procs[i];
		struct idle_process *e;
		long long idle_ms;

		p->idle_seconds = 0;
		p->idle = false;
		if (!idle_holds_idle_gpu(t, s, p))
			continue;
		e = idle_track_process(t, p, now);
		if (!e || idle_track_period(t, p, e) < 0)
			return -ENOMEM;
		idle_ms = now > e->since_ms ? now - e->since_ms : 0;
		p->idle_seconds = (uint32_t)(idle_ms / 1000);
		p->idle = idle_ms >= (long long)t->settings.after * 1000;
	}
	if (t->nnext_procs)
		qsort(t->next_procs, t->nnext_procs, sizeof(*t->next_procs), idle_process_order);
	return 0;
}

static int idle_report_ended(struct idle_tracker *t, struct idle_events *ev)
{
	for (size_t i = 0; i < t->nperiods; i++) {
		const struct idle_period *old = &t->periods[i];

		if (idle_find_period(t->next_periods, t->nnext_periods, old->member, old->gpu))
			continue;
		if (ARRAY_RESERVE(ev->ended, ev->ended_cap, ev->nended) < 0)
			return -ENOMEM;
		ev->ended[ev->nended] = (struct idle_ended){ .gpu = old->gpu };
		memcpy(ev->ended[ev->nended++].member, old->member, sizeof(old->member));
	}
	return 0;
}

/* Whether p's entry has been idle long enough, after both notices. */
static bool idle_reclaimable(struct idle_tracker *t, const struct sample_process *p, long long now)
{
	struct idle_process *e = idle_find_process(t->next_procs, t->nnext_procs, p->pid, p->gpu,
						   p->start_ticks);
	const struct idle_period *period;

	if (!e || e->reclaimed || now - e->since_ms < (long long)t->settings.reclaim_after * 1000)
		return false;
	period = idle_find_period(t->next_periods, t->nnext_periods, p->member, p->gpu);
	return period && period->notices >= IDLE_NOTICES;
}

/* A process is ended only when everything it holds is reclaimable: one
 * that also holds a busy GPU is working. */
static bool idle_process_reclaimable(struct idle_tracker *t, const struct sample *s,
				     const struct sample_process *p, long long now)
{
	for (size_t i = 0; i < s->nprocs; i++)
		if (s->procs[i].pid == p->pid && !idle_reclaimable(t, &s->procs[i], now))
			return false;
	return true;
}

static void idle_mark_reclaimed(struct idle_tracker *t, pid_t pid)
{
	for (size_t i = 0; i < t->nnext_procs; i++)
		if (t->next_procs[i].pid == pid)
			t->next_procs[i].reclaimed = true;
}

static int idle_choose_victims(struct idle_tracker *t, const struct sample *s, long long now,
			       struct idle_events *ev)
{
	if (!t->settings.reclaim_after)
		return 0;
	for (size_t i = 0; i < s->nprocs; i++) {
		const struct sample_process *p = &s->procs[i];
		struct idle_victim *v;

		if (!idle_reclaimable(t, p, now) || !idle_process_reclaimable(t, s, p, now))
			continue;
		if (ARRAY_RESERVE(ev->victims, ev->victims_cap, ev->nvictims) < 0)
			return -ENOMEM;
		v = &ev->victims[ev->nvictims++];
		*v = (struct idle_victim){ .gpu = p->gpu, .pid = p->pid, .ns_pid = p->ns_pid,
					   .start_ticks = p->start_ticks, .idle_seconds = p->idle_seconds };
		memcpy(v->member, p->member, sizeof(v->member));
		memcpy(v->command, p->command, sizeof(v->command));
		idle_mark_reclaimed(t, p->pid);
	}
	return 0;
}

static uint32_t idle_reclaim_in(const struct idle_tracker *t, uint32_t idle_seconds)
{
	if (!t->settings.reclaim_after)
		return 0;
	return idle_seconds < t->settings.reclaim_after ? t->settings.reclaim_after - idle_seconds : 1;
}

/* The first notice at idle_after, the second at twice it. */
static int idle_give_notices(struct idle_tracker *t, long long now, struct idle_events *ev)
{
	for (size_t i = 0; i < t->nnext_periods; i++) {
		struct idle_period *period = &t->next_periods[i];
		long long idle_ms = now - period->since_ms;
		struct idle_notice *n;

		if (period->notices >= IDLE_NOTICES ||
		    idle_ms < (long long)(period->notices + 1) * t->settings.after * 1000)
			continue;
		if (ARRAY_RESERVE(ev->notices, ev->notices_cap, ev->nnotices) < 0)
			return -ENOMEM;
		period->notices++;
		n = &ev->notices[ev->nnotices++];
		*n = (struct idle_notice){ .gpu = period->gpu, .number = period->notices,
					   .idle_seconds = (uint32_t)(idle_ms / 1000),
					   .mem_used = period->mem_used, .processes = period->processes };
		n->reclaim_in = idle_reclaim_in(t, n->idle_seconds);
		memcpy(n->member, period->member, sizeof(n->member));
	}
	return 0;
}

static void idle_swap(struct idle_tracker *t)
{
	struct idle_process *procs = t->procs;
	struct idle_period *periods = t->periods;
	size_t procs_cap = t->procs_cap, periods_cap = t->periods_cap;

	t->procs = t->next_procs;
	t->nprocs = t->nnext_procs;
	t->procs_cap = t->next_procs_cap;
	t->next_procs = procs;
	t->next_procs_cap = procs_cap;
	t->periods = t->next_periods;
	t->nperiods = t->nnext_periods;
	t->periods_cap = t->next_periods_cap;
	t->next_periods = periods;
	t->next_periods_cap = periods_cap;
}

int idle_tracker_update(struct idle_tracker *t, struct sample *s, long long now_ms,
			struct idle_events *ev)
{
	ev->nnotices = ev->nvictims = ev->nended = 0;
	/* Victims before notices: a process is ended only after two notices
	 * given at earlier readings. */
	if (idle_track(t, s, now_ms) < 0 || idle_report_ended(t, ev) < 0 ||
	    idle_choose_victims(t, s, now_ms, ev) < 0 || idle_give_notices(t, now_ms, ev) < 0) {
		ev->nnotices = ev->nvictims = ev->nended = 0;
		return -ENOMEM;
	}
	idle_swap(t);
	return 0;
}

/* A reservation's GPU is idle when nothing works on it: read, at 0 %, and
 * every process on it (none is fine) marked idle, or holding less than
 * memory_min (a small process is no hold on a GPU here either, and must
 * not keep one reserved for ever). */
uint64_t idle_gpus(const struct sample *s, uint64_t memory_min)
{
	uint64_t mask = 0;

	if (!s->gpu_ok)
		return 0;
	for (size_t i = 0; i < s->ngpus; i++)
		if (s->gpus[i].index < 64 && !s->gpus[i].lost && s->gpus[i].util_gpu == 0)
			mask |= (uint64_t)1 << s->gpus[i].index;
	for (size_t i = 0; i < s->nprocs; i++) {
		const struct sample_process *p = &s->procs[i];
		bool small = p->mem_used != UINT64_MAX && p->mem_used < memory_min;

		if (p->gpu < 64 && !p->idle && !small)
			mask &= ~((uint64_t)1 << p->gpu);
	}
	return mask;
}

/* ---- the agent's side ------------------------------------------------------------ */

struct idle {
	struct agent *agent;
	struct idle_tracker *tracker;
	struct reclaim *reclaim;        /* NULL: idle_reclaim_after off */
	struct idle_events events;
};

static long long idle_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int idle_open(struct agent *a, struct idle **out)
{
	const struct idle_settings settings = {
		.after = a->cfg.idle_after,
		.memory_min = a->cfg.idle_memory_min,
		.reclaim_after = a->cfg.idle_reclaim_after,
	};
	__do_free struct idle *i = calloc(1, sizeof(*i));
	int ret;

	if (!i)
		return -ENOMEM;
	i->agent = a;
	ret = idle_tracker_new(&settings, &i->tracker);
	if (ret == 0 && settings.reclaim_after)
		ret = reclaim_new(a->cfg.idle_reclaim_grace, &i->reclaim);
	if (ret < 0) {
		idle_tracker_free(i->tracker);
		return ret;
	}
	*out = move_ptr(i);
	return 0;
}

void idle_close(struct idle *i)
{
	if (!i)
		return;
	idle_tracker_free(i->tracker);
	reclaim_free(i->reclaim);
	idle_events_free(&i->events);
	free(i);
}

static void idle_format_bytes(uint64_t bytes, char *buf, size_t len)
{
	snprintf(buf, len, "%.1f GiB", (double)bytes / (1024.0 * 1024 * 1024));
}

/* The notice's key: one per GPU, replaced by the next and withdrawn when
 * the period ends. */
static void idle_notice_key(unsigned gpu, char *buf, size_t len)
{
	snprintf(buf, len, "idle:%u", gpu);
}

/* " If it stays idle, they will be ended in 3h 0m." or "". */
static void idle_reclaim_warning(const struct idle_notice *n, char *buf, size_t len)
{
	char in[32];

	buf[0] = '\0';
	if (!n->reclaim_in)
		return;
	format_duration(n->reclaim_in, in, sizeof(in));
	snprintf(buf, len, " If the GPU stays idle, they will be ended in %s.", in);
}

static void idle_tell(struct idle *i, const struct idle_notice *n)
{
	const char *server = i->agent->cfg.server_name;
	char idle[32], mem[32], warning[96], key[NOTICE_KEY_MAX], text[NOTICE_TEXT_MAX];

	format_duration(n->idle_seconds, idle, sizeof(idle));
	idle_format_bytes(n->mem_used, mem, sizeof(mem));
	idle_reclaim_warning(n, warning, sizeof(warning));
	snprintf(text, sizeof(text),
		 "%sGPU %u on %s has been idle (0 %% utilisation) for %s while your processes hold %s of it: end them if you are done (gpubox ps lists them), so that others can use it.%s",
		 n->number > 1 ? "Second notice: " : "", n->gpu, server, idle, mem, warning);
	idle_notice_key(n->gpu, key, sizeof(key));
	notices_post(i->agent->notices, n->member, key, text);
	snprintf(text, sizeof(text),
		 "%s's processes have held GPU %u idle (0 %% utilisation) for %s, with %s of its memory (notice %u of %d).%s",
		 n->member, n->gpu, idle, mem, n->number, IDLE_NOTICES, warning);
	notify_event(i->agent, "idle", n->member, text);
	log_info("idle: %s's %u process%s on GPU %u: idle for %s, %s held; notice %u of %d", n->member,
		 n->processes, n->processes == 1 ? "" : "es", n->gpu, idle, mem, n->number, IDLE_NOTICES);
}

static void idle_end(struct idle *i, const struct idle_victim *v, long long now)
{
	char idle[32], key[NOTICE_KEY_MAX], text[NOTICE_TEXT_MAX];

	if (!i->reclaim || reclaim_start(i->reclaim, v, now) < 0)
		return;
	format_duration(v->idle_seconds, idle, sizeof(idle));
	snprintf(text, sizeof(text),
		 "gpubox ended your process %d (%.100s) on GPU %u on %s: it had held the GPU idle for %s, after two notices.",
		 (int)v->ns_pid, v->command, v->gpu, i->agent->cfg.server_name, idle);
	snprintf(key, sizeof(key), "reclaim:%d", (int)v->pid);
	notices_post(i->agent->notices, v->member, key, text);
	snprintf(text, sizeof(text), "ended %s's process %d on GPU %u: it had held the GPU idle for %s, after two notices.",
		 v->member, (int)v->ns_pid, v->gpu, idle);
	notify_event(i->agent, "reclaim", v->member, text);
}

void idle_observe(struct idle *i, struct sample *s)
{
	long long now = idle_now_ms();
	struct idle_events *ev = &i->events;
	char key[NOTICE_KEY_MAX];

	if (idle_tracker_update(i->tracker, s, now, ev) < 0) {
		log_warn("idle: a reading could not be followed (out of memory)");
		return;
	}
	for (size_t k = 0; k < ev->nended; k++) {
		idle_notice_key(ev->ended[k].gpu, key, sizeof(key));
		notices_withdraw(i->agent->notices, ev->ended[k].member, key);
	}
	for (size_t k = 0; k < ev->nnotices; k++)
		idle_tell(i, &ev->notices[k]);
	for (size_t k = 0; k < ev->nvictims; k++)
		idle_end(i, &ev->victims[k], now);
	if (i->reclaim)
		reclaim_tick(i->reclaim, now);
	reservations_observe_idle(i->agent, idle_gpus(s, i->agent->cfg.idle_memory_min), now);
}
