/* SPDX-License-Identifier: MIT */
/*
 * GPU reservations in the agent: the records, the containers made to
 * match them, the thread that ends them and serves the queue, the view.
 *
 * A reserved GPU is in its holder's container alone: its device nodes
 * and device-cgroup rules are taken out of every other running container
 * (ops_gpu_live(), as gpubox admin gpu detach does), and a container that
 * starts meanwhile is not given it.  At the end they go back to every
 * running container whose own set has the GPU.
 *
 * The order of the steps is what makes a crash harmless: a GPU is taken
 * from the containers before its reservation is recorded, and given back
 * after the record is gone.  A crash between the two leaves no record,
 * and the start-up's sync gives the GPU back to everyone: a crash may
 * lose a reservation that was being made, never leave a GPU hidden from
 * everyone.
 *
 * Taking a GPU away closes no file: a process that opened it before stays
 * on it.  So a grant first decides on a search of /proc made before (no
 * other member's process may hold the GPU: ops_reserve.c), and searches
 * again once the nodes are gone; a process that opened the GPU in between
 * undoes the grant.
 *
 * Why a thread of its own rather than the collector's tick: a reservation
 * ends at its time, to the second, and ending one forks into containers
 * and writes their cgroups, and a waiting request needs a search of
 * /proc; the monitor's tick must stay well under a millisecond.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "container/container.h"
#include "ops.h"
#include "reservations.h"
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
};

/* A member's running container. */
struct reservations_box {
	struct member_record rec;
	pid_t pid;
	uint64_t recorded;
};

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

int reservations_read_usage(struct agent *a, struct reservations_state *st)
{
	struct gpu_holders h;
	int ret = gpu_holders_usage(st->host, &h);

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

/* ---- the containers ------------------------------------------------------------ */

/* Every member's running container with its init and own GPU set. */
static int reservations_boxes(struct agent *a, const struct reservations_state *st,
			      struct reservations_box **out, size_t *n)
{
	__do_free struct member_record *members = NULL;
	__do_free struct reservations_box *boxes = NULL;
	size_t nmembers = 0;
	int ret = db_member_list(a->db, &members, &nmembers);

	*n = 0;
	if (ret < 0)
		return ret;
	boxes = calloc(nmembers + 1, sizeof(*boxes));
	if (!boxes)
		return -ENOMEM;
	for (size_t i = 0; i < nmembers; i++) {
		struct reservations_box *b = &boxes[*n];

		if (container_get_state(a->lxcpath, members[i].name) != CONTAINER_RUNNING ||
		    container_init_pid(a->lxcpath, members[i].name, &b->pid) < 0)
			continue;
		b->rec = members[i];
		b->recorded = reservations_recorded(a, st, members[i].name);
		(*n)++;
	}
	*out = move_ptr(boxes);
	return 0;
}

/* Whether GPU index's own node is in the container of pid now. */
static bool reservations_present(const struct gpu_host *host, pid_t pid, size_t index)
{
	for (size_t i = 0; i < host->nnodes; i++)
		if (host->nodes[i].gpu == (int)index)
			return gpu_live_node_present(pid, host->nodes[i].target) == 1;
	return false;
}

/* One GPU into or out of a running container; logged when it fails. */
static int reservations_live(struct agent *a, const struct reservations_state *st,
			     const struct reservations_box *b, size_t index, bool attach)
{
	int ret = ops_gpu_live(a, &b->rec, st->host, index, attach, b->pid);

	if (ret < 0)
		log_error("cannot %s GPU %zu %s the running container of %s", attach ? "give" : "take",
			  index, attach ? "to" : "out of", b->rec.name);
	return ret;
}

/* What a grant changed: GPU gpu left the container boxes[box]. */
struct reservations_change {
	size_t box;
	size_t gpu;
};

static void reservations_undo(struct agent *a, const struct reservations_state *st,
			      const struct reservations_box *boxes,
			      const struct reservations_change *changes, size_t n)
{
	for (size_t i = 0; i < n; i++)
		reservations_live(a, st, &boxes[changes[i].box], changes[i].gpu, true);
}

/* Take the GPUs of mask out of every running container but holder's; the
 * nodes that were there into changes (at most nboxes * 64). */
static int reservations_take(struct agent *a, const struct reservations_state *st,
			     const struct reservations_box *boxes, size_t nboxes, const char *holder,
			     uint64_t mask, struct reservations_change *changes, size_t *nchanges)
{
	*nchanges = 0;
	for (size_t b = 0; b < nboxes; b++) {
		uint64_t take = mask & boxes[b].recorded;

		if (strcmp(boxes[b].rec.name, holder) == 0)
			continue;
		for (size_t i = 0; i < 64 && take; i++) {
			bool present;

			if (!((take >> i) & 1))
				continue;
			/* The rule goes even where the node is gone already:
			 * a bind of the node elsewhere would still open. */
			present = reservations_present(st->host, boxes[b].pid, i);
			if (reservations_live(a, st, &boxes[b], i, false) < 0)
				return -EIO;
			if (present)
				changes[(*nchanges)++] = (struct reservations_change){ b, i };
		}
	}
	return 0;
}

/* Give the GPUs of mask to every running container whose effective set
 * (st's entries as they are now) has them and lacks their node. */
static void reservations_give_back(struct agent *a, const struct reservations_state *st,
				   uint64_t mask)
{
	__do_free struct reservations_box *boxes = NULL;
	size_t n = 0;

	if (!mask || !st->host->present || reservations_boxes(a, st, &boxes, &n) < 0)
		return;
	for (size_t b = 0; b < n; b++) {
		uint64_t give = mask & reserve_effective(st->entries, st->n, boxes[b].rec.name,
							 boxes[b].recorded);

		for (size_t i = 0; i < 64; i++)
			if (((give >> i) & 1) && !reservations_present(st->host, boxes[b].pid, i))
				reservations_live(a, st, &boxes[b], i, true);
	}
}

/* One container made its effective set: the GPUs it should have are
 * there, those others' reservations hold are not (their rules denied
 * again, whatever a crash left). */
static void reservations_sync_box(struct agent *a, const struct reservations_state *st,
				  const struct reservations_box *b)
{
	uint64_t all = reserve_all(st->world.rules.ngpus);
	uint64_t others = all & ~reserve_effective(st->entries, st->n, b->rec.name, all);
	uint64_t want = reserve_effective(st->entries, st->n, b->rec.name, b->recorded);

	for (size_t i = 0; i < st->host->ngpus; i++) {
		if ((want >> i) & 1) {
			if (!reservations_present(st->host, b->pid, i))
				reservations_live(a, st, b, i, true);
		} else if ((others >> i) & 1) {
			reservations_live(a, st, b, i, false);
		}
	}
}

/* ---- changes ------------------------------------------------------------------ */

/* -EBUSY, with the member in culprit, when a process of a member other
 * than holder holds a GPU of mask now. */
static int reservations_verify(struct agent *a, struct reservations_state *st, const char *holder,
			       uint64_t mask, char *culprit, size_t len)
{
	int ret = reservations_read_usage(a, st);

	if (ret < 0)
		return ret;
	for (size_t i = 0; i < st->nusage; i++) {
		if (strcmp(st->usage[i].member, holder) != 0 && (st->usage[i].mask & mask)) {
			snprintf(culprit, len, "%s", st->usage[i].member);
			return -EBUSY;
		}
	}
	return 0;
}

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

int reservations_grant(struct agent *a, struct reservations_state *st, const char *member,
		       uint64_t mask, long long seconds, long long queued_id,
		       struct reservation_record *out, char *culprit, size_t culprit_len)
{
	__do_free struct reservations_box *boxes = NULL;
	__do_free struct reservations_change *changes = NULL;
	char gpus[RESERVE_MASK_TEXT_MAX], until[64];
	size_t nboxes = 0, nchanges = 0;
	int ret = reservations_boxes(a, st, &boxes, &nboxes);

	if (ret < 0)
		return ret;
	changes = calloc(nboxes * 64 + 1, sizeof(*changes));
	if (!changes)
		return -ENOMEM;
	memset(out, 0, sizeof(*out));
	snprintf(out->member, sizeof(out->member), "%s", member);
	out->seconds = seconds;
	ret = reservations_take(a, st, boxes, nboxes, member, mask, changes, &nchanges);
	if (ret == 0)
		ret = reservations_verify(a, st, member, mask, culprit, culprit_len);
	if (ret == 0)
		ret = reservations_record_grant(a, st, out, mask, queued_id);
	if (ret < 0) {
		reservations_undo(a, st, boxes, changes, nchanges);
		return ret;
	}
	reserve_mask_text(mask, gpus, sizeof(gpus));
	format_time(out->until_ms / 1000, until, sizeof(until));
	log_info("reservation %lld: %s holds %s until %s (%zu other containers changed)", out->id,
		 member, gpus, until, nchanges);
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
	if (was_active)
		reservations_give_back(a, st, e->mask);
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

uint64_t reservations_hidden(struct agent *a, const char *member)
{
	struct reservations *r = a->reservations;
	uint64_t hidden = 0;

	if (!r)
		return 0;
	pthread_mutex_lock(&r->view_lock);
	for (size_t i = 0; i < r->nview; i++)
		if (r->view[i].entry.active && strcmp(r->view[i].entry.member, member) != 0)
			hidden |= r->view[i].entry.mask;
	pthread_mutex_unlock(&r->view_lock);
	return hidden;
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

/* The running container of rec, as a box of st; -ESRCH when it does not run. */
static int reservations_box_of(struct agent *a, const struct reservations_state *st,
			       const struct member_record *rec, struct reservations_box *b)
{
	b->rec = *rec;
	if (container_init_pid(a->lxcpath, rec->name, &b->pid) < 0)
		return -ESRCH;
	b->recorded = reservations_recorded(a, st, rec->name);
	return 0;
}

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
	if (ret == 0 && st.host->present && reservations_box_of(a, &st, rec, &b) == 0)
		reservations_sync_box(a, &st, &b);
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

/* A queued request granted by reserve_serve_queue(): made so, or put
 * back in the queue when a process got in first. */
static void reservations_serve_one(struct agent *a, struct reservations_state *st, size_t i)
{
	struct reserve_entry *e = &st->entries[i];
	struct reservation_record out;
	char culprit[MEMBER_NAME_SIZE] = "";
	uint64_t mask = e->mask;

	e->mask = 0;
	e->active = false;
	if (reservations_grant(a, st, e->member, mask, st->records[i].seconds, e->id, &out, culprit,
			       sizeof(culprit)) < 0) {
		char err[256];

		/* The queued record: a request for any GPUs names none yet. */
		gpu_select(st->host, st->records[i].gpus, &e->mask, err, sizeof(err));
		log_info("reservation %lld of %s keeps waiting%s%s", e->id, e->member,
			 culprit[0] ? ": a process of " : "", culprit);
		return;
	}
	e->mask = mask;
	e->active = true;
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
	if (!queued || !st->host->present || reservations_read_usage(a, st) < 0)
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
	struct reservations_state st;

	if (reservations_read(a, &st) == 0) {
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
		if (reservations_boxes(a, &st, &boxes, &n) == 0)
			for (size_t b = 0; b < n; b++)
				reservations_sync_box(a, &st, &boxes[b]);
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
	/* The rest stays: operations still in flight may read the view. */
}
