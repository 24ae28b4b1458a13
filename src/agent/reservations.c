/* SPDX-License-Identifier: MIT */
/*
 * GPU reservations in the agent: the records, the containers made to
 * match them, the thread that ends them and serves the queue, the view.
 *
 * A reserved GPU is in its holder's container alone: its device-cgroup
 * rules and device nodes are taken out of every other running container
 * (as gpubox admin gpu detach takes them), and a container that starts
 * meanwhile is not given it.  At the end they go back to every running
 * container whose own set has the GPU.
 *
 * The order of the steps is what makes a crash harmless: a GPU is taken
 * from the containers before its reservation is recorded, and given back
 * after the record is gone.  A crash between the two leaves no record,
 * and the start-up's sync gives the GPU back to everyone: a crash may
 * lose a reservation that was being made, never leave a GPU hidden from
 * everyone.
 *
 * Taking a GPU away closes no file: a process that opened it before stays
 * on it, and no other member's process may hold a GPU reserved.  A first
 * decision looks at what processes hold open (a quick search of /proc:
 * ops_reserve.c); then the rules deny the GPUs in the other containers,
 * so that nothing opens them any more, and the whole search (mappings
 * too) shows every process still on them, on which the request is
 * decided again.  Only then do the nodes go: a request refused there
 * gives the rules back, and changed nothing that lasts.  One whole search
 * per grant, made when it cannot be overtaken.
 *
 * reserve_idle_release: the collector's every reading tells which GPUs
 * are idle (reservations_observe_idle(), from monitor/idle.c); the clocks
 * (gpu/reserveidle.c) run in the collector's thread, which hands what is
 * due to this thread through a list under view_lock and a poke that never
 * waits for the lock (tried again at the next reading while it is held).
 * The release itself is an end like any other (reservations_end()).
 *
 * Why a thread of its own rather than the collector's tick: a reservation
 * ends at its time, to the second, and ending one forks into containers
 * and writes their cgroups, and a waiting request needs a search of
 * /proc; the monitor's tick must stay well under a millisecond.
 */
#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "container/container.h"
#include "ops.h"
#include "notify.h"
#include "reservations.h"
#include "array.h"
#include "cleanup.h"
#include "log.h"
#include "timeparse.h"
#include "banned.h"

/* The longest the thread sleeps with nothing to wait for: a safety net
 * for a record changed behind the agent's back. */
#define RESERVATIONS_IDLE_MS 60000

/* What readers see between changes. */
struct reservations_item {
	struct reserve_entry entry;
	long long created_ms, start_ms, until_ms, seconds;
};

struct reservations {
	pthread_mutex_t lock;          /* every change; the thread's condition's */
	pthread_cond_t wake;
	pthread_t thread;
	bool running;
	bool stop;
	bool poked;
	pthread_mutex_t view_lock;     /* view, nview */
	struct reservations_item *view;
	size_t nview;
	struct reservations_inits inits;  /* under lock */
	long long inits_ms;            /* when inits was last emptied */
	struct reserve_idle_clocks idle;  /* the collector's thread's alone */
	struct reserve_idle_due *due;  /* under view_lock: to release when idle */
	size_t ndue, due_cap;
};


/* A reservation's start or end, to the lab's webhook (notify.h). */
static void reservations_tell(struct agent *a, const char *event, const char *member,
			      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void reservations_tell(struct agent *a, const char *event, const char *member,
			      const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	notify_event(a, event, member, text);
}

static long long reservations_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct agent *reservations_lock(struct agent *a)
{
	if (a->reservations)
		pthread_mutex_lock(&a->reservations->lock);
	return a;
}

void reservations_unlock(struct agent **locked)
{
	if (*locked && (*locked)->reservations)
		pthread_mutex_unlock(&(*locked)->reservations->lock);
	*locked = NULL;
}

void reservations_wake(struct agent *a)
{
	if (!a->reservations)
		return;
	/* Called with the lock held: the thread sees it when it waits next. */
	a->reservations->poked = true;
	pthread_cond_signal(&a->reservations->wake);
}

/* ---- reading ---------------------------------------------------------------- */

uint64_t reservations_recorded(struct agent *a, const struct reservations_state *st,
			       const char *member)
{
	uint64_t mask = 0;

	if (!st->host->present || ops_gpu_mask(a, st->host, member, &mask) < 0)
		return 0;
	return mask;
}

static void reservations_entry_from(const struct reservations_state *st, size_t i)
{
	const struct reservation_record *r = &st->records[i];
	struct reserve_entry *e = &st->entries[i];
	char err[256];

	e->id = r->id;
	snprintf(e->member, sizeof(e->member), "%s", r->member);
	e->count = r->count;
	e->active = r->active;
	if (st->host->present && r->gpus[0] &&
	    gpu_select(st->host, r->gpus, &e->mask, err, sizeof(err)) < 0)
		log_warn("reservation %lld names GPUs this server cannot read (%s): %s", r->id, r->gpus, err);
}

static void reservations_rules(struct agent *a, struct reservations_state *st)
{
	struct reserve_rules *rules = &st->world.rules;
	char err[256];

	rules->ngpus = (unsigned)st->host->ngpus;
	rules->max_gpus = a->cfg.reserve_max_gpus;
	rules->cap = a->cfg.gpu_cap;
	if (st->host->present &&
	    gpu_select(st->host, a->cfg.reserve_shared_gpus, &rules->shared, err, sizeof(err)) < 0)
		log_warn("reserve_shared_gpus: %s", err);
}

int reservations_read(struct agent *a, struct reservations_state *st)
{
	int ret;

	memset(st, 0, sizeof(*st));
	st->now_ms = reservations_now_ms();
	st->inits = a->reservations ? &a->reservations->inits : NULL;
	st->host = calloc(1, sizeof(*st->host));
	if (!st->host)
		return -ENOMEM;
	ret = gpu_discover(a->cfg.gpu_root, 0, st->host);
	if (ret == 0)
		ret = db_reservation_list(a->db, &st->records, &st->n);
	if (ret < 0)
		return ret;
	st->entries = calloc(st->n + 1, sizeof(*st->entries));
	if (!st->entries)
		return -ENOMEM;
	for (size_t i = 0; i < st->n; i++) {
		reservations_entry_from(st, i);
		/* A waiting request is decided on its member's set. */
		if (!st->entries[i].active)
			st->entries[i].recorded = reservations_recorded(a, st, st->entries[i].member);
	}
	reservations_rules(a, st);
	st->world.entries = st->entries;
	st->world.nentries = st->n;
	return 0;
}

/* The usage entry of member, added when new; NULL when out of memory. */
static struct reserve_usage *reservations_usage_of(struct reservations_state *st, size_t cap,
						   const char *member)
{
	for (size_t i = 0; i < st->nusage; i++)
		if (strcmp(st->usage[i].member, member) == 0)
			return &st->usage[i];
	if (st->nusage == cap)
		return NULL;
	snprintf(st->usage[st->nusage].member, sizeof(st->usage[0].member), "%s", member);
	return &st->usage[st->nusage++];
}

int reservations_read_usage(struct agent *a, struct reservations_state *st, bool mappings)
{
	struct gpu_holders h;
	int ret = gpu_holders_usage(st->host, mappings, &h);

	if (ret < 0)
		return ret;
	free(st->usage);
	st->nusage = 0;
	st->usage = calloc(h.n + 1, sizeof(*st->usage));
	for (size_t i = 0; st->usage && i < h.n; i++) {
		struct member_record rec;
		struct reserve_usage *u;

		/* A container of this server's members only: not another agent's. */
		if (db_member_get(a->db, h.list[i].member, &rec) < 0)
			continue;
		u = reservations_usage_of(st, h.n, h.list[i].member);
		if (u)
			u->mask |= h.list[i].gpus & reserve_all(st->world.rules.ngpus);
	}
	if (h.more)
		log_warn("more than %d processes hold GPUs; a reservation may miss some of them",
			 GPU_HOLDERS_MAX);
	gpu_holders_clear(&h);
	if (!st->usage)
		return -ENOMEM;
	st->world.usage = st->usage;
	st->world.nusage = st->nusage;
	return 0;
}

void reservations_state_free(struct reservations_state *st)
{
	free(st->host);
	free(st->records);
	free(st->entries);
	free(st->usage);
	memset(st, 0, sizeof(*st));
}

/* ---- changes ------------------------------------------------------------------ */

static int reservations_record_grant(struct agent *a, const struct reservations_state *st,
				     struct reservation_record *out, uint64_t mask, long long queued_id)
{
	ops_gpu_set_from_mask(st->host, mask, out->gpus, sizeof(out->gpus));
	out->count = (uint32_t)__builtin_popcountll(mask);
	out->active = true;
	out->start_ms = st->now_ms;
	out->until_ms = st->now_ms + out->seconds * 1000;
	if (queued_id) {
		out->id = queued_id;
		return db_reservation_activate(a->db, queued_id, out->gpus, out->start_ms, out->until_ms);
	}
	out->created_ms = st->now_ms;
	return db_reservation_add(a->db, out);
}

static void reservations_taking_free(struct reservations_taking *t)
{
	free(t->boxes);
	free(t->changes);
	memset(t, 0, sizeof(*t));
}

int reservations_take(struct agent *a, struct reservations_state *st, const char *member,
		      uint64_t mask, struct reservations_taking *t)
{
	int ret;

	memset(t, 0, sizeof(*t));
	snprintf(t->member, sizeof(t->member), "%s", member);
	t->mask = mask;
	ret = reservations_live_boxes(a, st, &t->boxes, &t->nboxes);
	if (ret == 0 && !(t->changes = calloc(t->nboxes * 64 + 1, sizeof(*t->changes))))
		ret = -ENOMEM;
	if (ret == 0)
		ret = reservations_live_deny(a, st, t->boxes, t->nboxes, member, mask, t->changes,
					     &t->nchanges);
	/* Nothing opens the GPUs from now on: what the search finds holding
	 * one opened it before, and keeps it. */
	if (ret == 0)
		ret = reservations_read_usage(a, st, true);
	if (ret < 0)
		reservations_untake(a, st, t);
	return ret;
}

void reservations_untake(struct agent *a, struct reservations_state *st,
			 struct reservations_taking *t)
{
	reservations_live_allow(a, st, t->boxes, t->changes, t->nchanges);
	reservations_taking_free(t);
}

int reservations_keep(struct agent *a, struct reservations_state *st,
		      struct reservations_taking *t, long long seconds, long long queued_id,
		      struct reservation_record *out)
{
	char gpus[RESERVE_MASK_TEXT_MAX], until[64];
	int ret;

	reservations_live_remove(a, st, t->boxes, t->changes, t->nchanges);
	memset(out, 0, sizeof(*out));
	snprintf(out->member, sizeof(out->member), "%s", t->member);
	out->seconds = seconds;
	ret = reservations_record_grant(a, st, out, t->mask, queued_id);
	if (ret < 0) {
		reservations_live_give_back(a, st, t->mask);
		reservations_untake(a, st, t);
		return ret;
	}
	reserve_mask_text(t->mask, gpus, sizeof(gpus));
	format_time(out->until_ms / 1000, until, sizeof(until));
	log_info("reservation %lld: %s holds %s until %s (out of %zu other containers)",
		 out->id, t->member, gpus, until, t->nchanges);
	reservations_tell(a, "reservation-start", t->member, "%s reserved %s until %s (reservation %lld)",
			  t->member, gpus, until, out->id);
	reservations_taking_free(t);
	/* A new end for the thread to wait for. */
	reservations_wake(a);
	return 0;
}

int reservations_enqueue(struct agent *a, struct reservations_state *st,
			 struct reservation_record *rec)
{
	char gpus[RESERVE_MASK_TEXT_MAX];
	uint64_t mask = 0;
	int ret;

	rec->active = false;
	rec->created_ms = st->now_ms;
	ret = db_reservation_add(a->db, rec);
	if (ret < 0)
		return ret;
	if (rec->gpus[0])
		gpu_select(st->host, rec->gpus, &mask, gpus, sizeof(gpus));
	if (mask)
		reserve_mask_text(mask, gpus, sizeof(gpus));
	else
		snprintf(gpus, sizeof(gpus), "%u GPU%s", rec->count, rec->count == 1 ? "" : "s");
	log_info("reservation %lld: %s waits for %s for %lld s", rec->id, rec->member, gpus,
		 rec->seconds);
	reservations_wake(a);
	return 0;
}

int reservations_end(struct agent *a, struct reservations_state *st, size_t index,
		     const char *why)
{
	struct reserve_entry *e = &st->entries[index];
	char gpus[RESERVE_MASK_TEXT_MAX];
	bool was_active = e->active;
	int ret = db_reservation_remove(a->db, e->id);

	if (ret < 0 && ret != -ENOENT)
		return ret;
	e->active = false;
	/* A queued one has no GPUs of its own yet. */
	reserve_mask_text(was_active ? e->mask : 0, gpus, sizeof(gpus));
	log_info("reservation %lld of %s %s (%s)%s", e->id, e->member, why,
		 was_active ? gpus : "it was waiting", was_active ? "; its GPUs go back" : "");
	if (was_active) {
		reservations_live_give_back(a, st, e->mask);
		reservations_tell(a, "reservation-end", e->member, "reservation %lld of %s %s: %s free again",
				  e->id, e->member, why, gpus);
	}
	e->mask = 0;
	reservations_wake(a);
	return 0;
}

int reservations_extend(struct agent *a, struct reservations_state *st, size_t index,
			long long until_ms, long long seconds)
{
	const struct reservation_record *r = &st->records[index];
	char until[64];
	int ret = db_reservation_extend(a->db, r->id, until_ms, seconds);

	if (ret < 0)
		return ret;
	format_time(until_ms / 1000, until, sizeof(until));
	if (r->active)
		log_info("reservation %lld of %s extended until %s", r->id, r->member, until);
	else
		log_info("reservation %lld of %s (waiting) now asks for %lld s", r->id, r->member, seconds);
	reservations_wake(a);
	return 0;
}

/* ---- the view -------------------------------------------------------------- */

void reservations_publish(struct agent *a)
{
	struct reservations *r = a->reservations;
	struct reservations_state st;
	struct reservations_item *items, *old;
	size_t n;

	if (!r)
		return;
	if (reservations_read(a, &st) < 0 ||
	    !(items = calloc(st.n + 1, sizeof(*items)))) {
		log_warn("the list of reservations could not be read; gpubox reservations may be out of date");
		reservations_state_free(&st);
		return;
	}
	for (size_t i = 0; i < st.n; i++)
		items[i] = (struct reservations_item){ .entry = st.entries[i],
			.created_ms = st.records[i].created_ms, .start_ms = st.records[i].start_ms,
			.until_ms = st.records[i].until_ms, .seconds = st.records[i].seconds };
	n = st.n;
	reservations_state_free(&st);
	pthread_mutex_lock(&r->view_lock);
	old = r->view;
	r->view = items;
	r->nview = n;
	pthread_mutex_unlock(&r->view_lock);
	free(old);
}

/* The GPUs the active reservations of the view hold: member's own, or
 * everyone else's. */
static uint64_t reservations_view_mask(struct agent *a, const char *member, bool own)
{
	struct reservations *r = a->reservations;
	uint64_t mask = 0;

	if (!r)
		return 0;
	pthread_mutex_lock(&r->view_lock);
	for (size_t i = 0; i < r->nview; i++)
		if (r->view[i].entry.active && (strcmp(r->view[i].entry.member, member) == 0) == own)
			mask |= r->view[i].entry.mask;
	pthread_mutex_unlock(&r->view_lock);
	return mask;
}

uint64_t reservations_hidden(struct agent *a, const char *member)
{
	return reservations_view_mask(a, member, false);
}

uint64_t reservations_held(struct agent *a, const char *member)
{
	return reservations_view_mask(a, member, true);
}

static json_t *reservations_item_json(const struct reservations_item *item, const char *viewer,
				      bool names_shown, int position)
{
	const struct reserve_entry *e = &item->entry;
	bool yours = viewer && strcmp(e->member, viewer) == 0;
	json_t *gpus = json_array();
	json_t *o;

	for (unsigned i = 0; gpus && i < 64; i++)
		if ((e->mask >> i) & 1)
			json_array_append_new(gpus, json_integer(i));
	o = json_pack("{s:I, s:o?, s:o, s:i, s:s, s:I, s:I, s:b}", "id", (json_int_t)e->id,
		      "member", yours || names_shown ? json_string(e->member) : json_null(),
		      "gpus", gpus, "count", (int)e->count, "state", e->active ? "active" : "queued",
		      "created_ms", (json_int_t)item->created_ms, "seconds", (json_int_t)item->seconds,
		      "yours", yours);
	if (o && e->active) {
		json_object_set_new(o, "start_ms", json_integer(item->start_ms));
		json_object_set_new(o, "until_ms", json_integer(item->until_ms));
	} else if (o) {
		json_object_set_new(o, "position", json_integer(position));
	}
	return o;
}

json_t *reservations_json(struct agent *a, const char *viewer, bool names_shown)
{
	struct reservations *r = a->reservations;
	json_t *list = json_array();
	int queued = 0;

	if (!r || !list)
		return list;
	pthread_mutex_lock(&r->view_lock);
	for (size_t i = 0; i < r->nview; i++) {
		const struct reservations_item *item = &r->view[i];

		queued += !item->entry.active;
		json_array_append_new(list, reservations_item_json(item, viewer, names_shown, queued));
	}
	pthread_mutex_unlock(&r->view_lock);
	return list;
}

json_t *reservations_json_of(struct agent *a, const char *member)
{
	json_t *all = reservations_json(a, member, false), *r;
	size_t i;

	json_array_foreach(all, i, r) {
		if (!json_is_true(json_object_get(r, "yours"))) {
			json_array_remove(all, i);
			i--;
		}
	}
	return all;
}

/* ---- the containers' side of other operations ----------------------------------- */

int reservations_sync_started(struct agent *a, const struct member_record *rec,
			      const struct gpu_plan *plan)
{
	__do_unlock_reservations struct agent *locked = NULL;
	struct reservations_state st;
	struct reservations_box b;
	int ret;

	locked = reservations_lock(a);
	if (plan) {
		ret = container_init_pid(a->lxcpath, rec->name, &b.pid);
		if (ret < 0)
			return log_error_errno(ret, -ret, "cannot find the init process of %s", rec->name);
		ret = gpu_start_nodes(plan, b.pid);
		if (ret < 0)
			return ret;
	}
	/* The plan was made before the start: a reservation may have begun
	 * or ended since. */
	ret = reservations_read(a, &st);
	if (ret == 0 && st.host->present && reservations_live_box_of(a, &st, rec, &b) == 0)
		reservations_live_sync(a, &st, &b);
	reservations_state_free(&st);
	return ret;
}

int reservations_attach_live(struct agent *a, const struct member_record *rec,
			     const struct gpu_host *host, size_t index, pid_t pid)
{
	__do_unlock_reservations struct agent *locked = reservations_lock(a);

	if ((reservations_hidden(a, rec->name) >> index) & 1)
		return 0;
	return ops_gpu_live(a, rec, host, index, true, pid) < 0 ? -EIO : 1;
}

void reservations_forget_member(struct agent *a, const char *member)
{
	__do_unlock_reservations struct agent *locked = reservations_lock(a);
	struct reservations_state st;

	if (reservations_read(a, &st) == 0)
		for (size_t i = 0; i < st.n; i++)
			if (strcmp(st.entries[i].member, member) == 0)
				reservations_end(a, &st, i, "cancelled: the member is removed");
	reservations_state_free(&st);
	reservations_publish(a);
}

/* ---- the thread ------------------------------------------------------------- */

static void reservations_expire(struct agent *a, struct reservations_state *st)
{
	for (size_t i = 0; i < st->n; i++)
		if (st->entries[i].active && st->records[i].until_ms <= st->now_ms)
			reservations_end(a, st, i, "expired");
}

/* ---- reserve_idle_release ------------------------------------------------- */

/* The reservations of the view as entries (the caller frees), under
 * view_lock. */
static struct reserve_entry *reservations_view_entries(struct reservations *r)
{
	struct reserve_entry *e = calloc(r->nview + 1, sizeof(*e));

	for (size_t i = 0; e && i < r->nview; i++)
		e[i] = r->view[i].entry;
	return e;
}

/* Wake the thread without waiting for its lock: when it is busy, the
 * next reading tries again (the due list stays until the thread takes
 * it). */
static void reservations_poke_soon(struct reservations *r)
{
	if (pthread_mutex_trylock(&r->lock) != 0)
		return;
	r->poked = true;
	pthread_cond_signal(&r->wake);
	pthread_mutex_unlock(&r->lock);
}

void reservations_observe_idle(struct agent *a, uint64_t idle, long long now_ms)
{
	struct reservations *r = a->reservations;
	__do_free struct reserve_entry *entries = NULL;
	__do_free struct reserve_idle_due *due = NULL;
	size_t n, ndue = 0;
	bool pending;

	if (!r || !a->cfg.reserve_idle_release)
		return;
	pthread_mutex_lock(&r->view_lock);
	n = r->nview;
	entries = reservations_view_entries(r);
	due = calloc(n + 1, sizeof(*due));
	if (entries && due)
		reserve_idle_update(&r->idle, entries, n, idle, now_ms,
				    (long long)a->cfg.reserve_idle_release * 1000, due, &ndue);
	for (size_t i = 0; i < ndue; i++) {
		if (ARRAY_RESERVE(r->due, r->due_cap, r->ndue) < 0)
			break;
		r->due[r->ndue++] = due[i];
	}
	pending = r->ndue > 0;
	pthread_mutex_unlock(&r->view_lock);
	if (pending)
		reservations_poke_soon(r);
}

/* One reservation released for its idle GPUs: the member is told on
 * their next command, the webhook and the log by reservations_end(). */
static void reservations_release_one(struct agent *a, struct reservations_state *st, size_t i,
				     const struct reserve_idle_due *d)
{
	/* Cut to NOTICE_TEXT_MAX by notices_post() were the GPUs' list long. */
	char idle[32], why[96], gpus[RESERVE_MASK_TEXT_MAX], key[NOTICE_KEY_MAX], text[1024];

	format_duration(d->idle_seconds, idle, sizeof(idle));
	reserve_mask_text(st->entries[i].mask, gpus, sizeof(gpus));
	snprintf(why, sizeof(why), "released after its GPUs were idle for %s (reserve_idle_release)", idle);
	snprintf(key, sizeof(key), "reserve-idle:%lld", d->id);
	snprintf(text, sizeof(text),
		 "gpubox released your reservation %lld (%s on %s): its GPUs had been idle for %s, with nothing of yours working on them (reserve_idle_release). They are everyone's again; reserve again when you need them.",
		 d->id, gpus, a->cfg.server_name, idle);
	if (reservations_end(a, st, i, why) == 0)
		notices_post(a->notices, d->member, key, text);
}

/* What the collector found idle long enough, if still active. */
static void reservations_release_idle(struct agent *a, struct reservations_state *st)
{
	struct reservations *r = a->reservations;
	struct reserve_idle_due *due;
	size_t n;

	pthread_mutex_lock(&r->view_lock);
	due = r->due;
	n = r->ndue;
	r->due = NULL;
	r->ndue = r->due_cap = 0;
	pthread_mutex_unlock(&r->view_lock);
	for (size_t k = 0; k < n; k++)
		for (size_t i = 0; i < st->n; i++)
			if (st->entries[i].id == due[k].id && st->entries[i].active)
				reservations_release_one(a, st, i, &due[k]);
	free(due);
}

/* Whether a process of a member other than holder holds a GPU of mask,
 * by st's usage. */
static bool reservations_others_hold(const struct reservations_state *st, const char *holder,
				     uint64_t mask)
{
	return mask & reserve_used_by_others(st->usage, st->nusage, holder);
}

/* A queued request granted by reserve_serve_queue(): made so, or left to
 * wait when the whole search finds another member's process on its GPUs. */
static void reservations_serve_one(struct agent *a, struct reservations_state *st, size_t i)
{
	struct reserve_entry *e = &st->entries[i];
	struct reservations_taking t;
	struct reservation_record out;
	uint64_t mask = e->mask;
	char err[256];

	e->mask = 0;
	e->active = false;
	if (reservations_take(a, st, e->member, mask, &t) == 0) {
		if (!reservations_others_hold(st, e->member, mask) &&
		    reservations_keep(a, st, &t, st->records[i].seconds, e->id, &out) == 0) {
			e->mask = mask;
			e->active = true;
			return;
		}
		if (t.changes)
			reservations_untake(a, st, &t);
	}
	/* The queued record: a request for any GPUs names none yet. */
	gpu_select(st->host, st->records[i].gpus, &e->mask, err, sizeof(err));
	log_info("reservation %lld of %s keeps waiting: another member's process holds its GPUs",
		 e->id, e->member);
}

/* A waiting request that can never be granted (the member lost the GPU it
 * named, or holds it reserved already) is cancelled rather than kept. */
static void reservations_drop_impossible(struct agent *a, struct reservations_state *st)
{
	for (size_t i = 0; i < st->n; i++) {
		struct reserve_entry *e = &st->entries[i];
		struct reserve_request req = { .member = e->member, .recorded = e->recorded,
					       .want = e->mask, .count = e->count };
		struct reserve_decision d;

		if (e->active || st->records[i].active)
			continue;
		reserve_decide(&st->world, &req, 0, &d);
		if (!reserve_may_wait(d.verdict) && d.verdict != RESERVE_GRANTED)
			reservations_end(a, st, i, "cancelled: it can never be granted");
	}
}

static void reservations_serve(struct agent *a, struct reservations_state *st)
{
	bool queued = false;

	for (size_t i = 0; i < st->n; i++)
		queued |= !st->entries[i].active;
	/* A first look at the descriptors only: reservations_take() makes
	 * the whole search for what it grants. */
	if (!queued || !st->host->present || reservations_read_usage(a, st, false) < 0)
		return;
	reserve_serve_queue(&st->world);
	for (size_t i = 0; i < st->n; i++)
		if (st->entries[i].served)
			reservations_serve_one(a, st, i);
	reservations_drop_impossible(a, st);
}

/* When the next round is due (unix ms): the first end, or the next look
 * at the queue while a request waits. */
static long long reservations_next_due(struct agent *a)
{
	struct reservations *r = a->reservations;
	long long now = reservations_now_ms(), next = now + RESERVATIONS_IDLE_MS;

	pthread_mutex_lock(&r->view_lock);
	for (size_t i = 0; i < r->nview; i++) {
		long long due = r->view[i].entry.active ? r->view[i].until_ms
							: now + a->cfg.sample_interval;

		if (due < next)
			next = due;
	}
	pthread_mutex_unlock(&r->view_lock);
	return next;
}

/* One round: what ended, the queue, the view. */
static void reservations_round(struct agent *a)
{
	struct reservations *r = a->reservations;
	struct reservations_state st;

	/* Now and then LXC is asked about every container again: one started
	 * behind the agent's back is found. */
	if (reservations_now_ms() - r->inits_ms >= RESERVATIONS_IDLE_MS) {
		reservations_live_forget(&r->inits);
		r->inits_ms = reservations_now_ms();
	}

	if (reservations_read(a, &st) == 0) {
		reservations_release_idle(a, &st);
		reservations_expire(a, &st);
		reservations_serve(a, &st);
	}
	reservations_state_free(&st);
	reservations_publish(a);
}

static void *reservations_thread(void *arg)
{
	struct agent *a = arg;
	struct reservations *r = a->reservations;

	pthread_mutex_lock(&r->lock);
	while (!r->stop) {
		long long next;
		struct timespec ts;

		reservations_round(a);
		next = reservations_next_due(a);
		ts = (struct timespec){ .tv_sec = next / 1000, .tv_nsec = (next % 1000) * 1000000 };
		r->poked = false;
		while (!r->stop && !r->poked &&
		       pthread_cond_timedwait(&r->wake, &r->lock, &ts) == 0)
			;
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

/* ---- start and stop -------------------------------------------------------- */

/* What a killed agent left: ended what is past, every running container
 * made its effective set. */
static void reservations_reconcile(struct agent *a)
{
	__do_free struct reservations_box *boxes = NULL;
	struct reservations_state st;
	size_t n = 0;

	if (reservations_read(a, &st) == 0 && st.host->present) {
		reservations_expire(a, &st);
		if (reservations_live_boxes(a, &st, &boxes, &n) == 0)
			for (size_t b = 0; b < n; b++)
				reservations_live_sync(a, &st, &boxes[b]);
	}
	reservations_state_free(&st);
	reservations_publish(a);
}

int reservations_start(struct agent *a)
{
	struct reservations *r = calloc(1, sizeof(*r));
	int ret;

	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&r->lock, NULL);
	pthread_mutex_init(&r->view_lock, NULL);
	pthread_cond_init(&r->wake, NULL);
	a->reservations = r;
	pthread_mutex_lock(&r->lock);
	reservations_reconcile(a);
	pthread_mutex_unlock(&r->lock);
	ret = pthread_create(&r->thread, NULL, reservations_thread, a);
	if (ret != 0)
		return log_error_errno(-ret, ret, "cannot start the reservations' thread");
	r->running = true;
	return 0;
}

void reservations_stop(struct agent *a)
{
	struct reservations *r = a->reservations;

	if (!r || !r->running)
		return;
	pthread_mutex_lock(&r->lock);
	r->stop = true;
	pthread_cond_signal(&r->wake);
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->thread, NULL);
	r->running = false;
	reservations_live_forget(&r->inits);
	/* The rest stays: operations still in flight may read the view. */
}
