/* SPDX-License-Identifier: MIT */
/*
 * GPU reservations as the agent keeps them: the records (state.db), the
 * containers made to match them (reservations.c: a reserved GPU is in its
 * holder's container alone), the thread that ends them at their time and
 * serves the queue, and the view readers ask.  The rules themselves are
 * gpu/reserve.c's; the protocol's operations are ops_reserve.c's.
 * Every function returns 0 or a negative errno unless it says otherwise.
 */
#ifndef GPUBOX_AGENT_RESERVATIONS_H
#define GPUBOX_AGENT_RESERVATIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "gpu/gpu.h"
#include "state/state.h"

struct agent;
struct reservations;

/* Start-up, after ops_reconcile(): reservations past their end are ended,
 * every running container's GPUs are made its effective set (its own set
 * less what others hold), and the thread starts.  Whatever a killed agent
 * left half-done is completed or undone here. */
int reservations_start(struct agent *a);
void reservations_stop(struct agent *a);

/*
 * One lock over every change of reservations and of the containers'
 * GPUs that follows from them.  Whoever holds it never waits for a
 * member's lock (agent_lock_member); a start holding its member's lock
 * may take it.
 */
struct agent *reservations_lock(struct agent *a);
void reservations_unlock(struct agent **locked);
/* __do_unlock_reservations struct agent *locked = NULL;
 * ...; locked = reservations_lock(a); */
#define __do_unlock_reservations __attribute__((cleanup(reservations_unlock)))

/* ---- with the lock held ---------------------------------------------------- */

/* One reading of the records, the server's GPUs and the server's rules. */
struct reservations_state {
	struct gpu_host *host;
	struct reservation_record *records;   /* oldest first */
	struct reserve_entry *entries;        /* one per record, same order */
	size_t n;
	struct reserve_usage *usage;          /* after reservations_read_usage() */
	size_t nusage;
	struct reserve_world world;           /* over entries and usage */
	long long now_ms;
};

/* -ENODEV (with host->reason) on a server without GPU. */
int reservations_read(struct agent *a, struct reservations_state *st);
/* Which member's processes hold which GPU, now (a search of /proc). */
int reservations_read_usage(struct agent *a, struct reservations_state *st);
void reservations_state_free(struct reservations_state *st);
/* The member's own GPU set, as a mask of st's GPUs. */
uint64_t reservations_recorded(struct agent *a, const struct reservations_state *st,
			       const char *member);

/*
 * Grant member the GPUs of mask for seconds from now: taken out of every
 * other running container, then recorded (queued_id: the queued request
 * this grants, else a new reservation).  -EBUSY when another member's
 * process took one of them meanwhile (its member into culprit): then
 * nothing has changed.  *out: the record as kept.
 */
int reservations_grant(struct agent *a, struct reservations_state *st, const char *member,
		       uint64_t mask, long long seconds, long long queued_id,
		       struct reservation_record *out, char *culprit, size_t culprit_len);
/* Record a request that waits; *rec gets its id. */
int reservations_enqueue(struct agent *a, struct reservations_state *st,
			 struct reservation_record *rec);
/* End st's records[index] (released, cancelled, expired: why, for the
 * log): removed, and its GPUs given back to every running container whose
 * set has them.  The thread then looks at the queue. */
int reservations_end(struct agent *a, struct reservations_state *st, size_t index,
		     const char *why);
/* Change the end of st's records[index] (until_ms for an active one, the
 * duration asked for while queued). */
int reservations_extend(struct agent *a, struct reservations_state *st, size_t index,
			long long until_ms, long long seconds);
/* The view readers get (reservations_json(), reservations_hidden()) made
 * the records' as they are now. */
void reservations_publish(struct agent *a);
/* Wake the thread: the queue or an end changed. */
void reservations_wake(struct agent *a);

/* ---- taking the lock themselves ------------------------------------------- */

/* The GPUs (by index) other members' reservations hold, from the view:
 * what member's container is not given at a start. */
uint64_t reservations_hidden(struct agent *a, const char *member);
/* A started (or running) container's GPU nodes and device rules made its
 * effective set, with the plan's GPU nodes bound first when plan is not
 * NULL (a start). */
int reservations_sync_started(struct agent *a, const struct member_record *rec,
			      const struct gpu_plan *plan);
/* Attach GPU index to a member's running container, unless another
 * member's reservation holds it: 1 attached, 0 held back, or an error. */
int reservations_attach_live(struct agent *a, const struct member_record *rec,
			     const struct gpu_host *host, size_t index, pid_t pid);
/* End every reservation of a member about to be removed. */
void reservations_forget_member(struct agent *a, const char *member);
/*
 * The view: [{"id", "member", "gpus": [indices], "count", "state":
 * "active"|"queued", "created_ms", "start_ms", "until_ms", "seconds",
 * "position" (queued: 1 first)}], oldest first.  viewer: the member
 * asking ("" none); names_shown false: other members' names are null.
 * Each gets "yours".  NULL when out of memory.
 */
json_t *reservations_json(struct agent *a, const char *viewer, bool names_shown);
/* The same for member's own reservations only. */
json_t *reservations_json_of(struct agent *a, const char *member);

#endif
