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
#define __do_unlock_reservations __attribute__((cleanup(reservations_unlock), unused))

/* ---- with the lock held ---------------------------------------------------- */

/* The inits of members' containers as last found, so that finding the
 * running containers asks LXC (two round trips to each container's
 * monitor) only about members not known yet: a running one's init is
 * held by a pidfd that says when it ends; pid 0 is a container that did
 * not run when last asked.  A start through the agent notes its init
 * (reservations_sync_started()); the thread asks LXC about everyone again
 * when idle. */
struct reservations_init {
	char member[MEMBER_NAME_SIZE];
	pid_t pid;
	int pidfd;
};

struct reservations_inits {
	struct reservations_init *list;
	size_t n, cap;
};

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
	struct reservations_inits *inits;     /* the agent's; NULL: none kept */
};

/* -ENODEV (with host->reason) on a server without GPU. */
int reservations_read(struct agent *a, struct reservations_state *st);
/* Which member's processes hold which GPU, now (a search of /proc): open
 * and, when mappings, mapped (the costly part). */
int reservations_read_usage(struct agent *a, struct reservations_state *st, bool mappings);
void reservations_state_free(struct reservations_state *st);
/* The member's own GPU set, as a mask of st's GPUs. */
uint64_t reservations_recorded(struct agent *a, const struct reservations_state *st,
			       const char *member);

/*
 * A grant, in two steps.  reservations_take(): the device rules of the
 * GPUs of mask denied in every other member's running container (nothing
 * there can open them from now on), then the whole search of /proc into
 * st's usage, which shows every process that still holds one.  On that
 * the caller decides again: reservations_keep() takes the nodes out too
 * and records the reservation (queued_id: the queued request it grants,
 * else a new one; *out as recorded), reservations_untake() allows the
 * rules again.  Either one ends t.
 */
struct reservations_taking {
	char member[MEMBER_NAME_SIZE];
	uint64_t mask;
	struct reservations_box *boxes;
	size_t nboxes;
	struct reservations_change *changes;
	size_t nchanges;
};
int reservations_take(struct agent *a, struct reservations_state *st, const char *member,
		      uint64_t mask, struct reservations_taking *t);
int reservations_keep(struct agent *a, struct reservations_state *st,
		      struct reservations_taking *t, long long seconds, long long queued_id,
		      struct reservation_record *out);
void reservations_untake(struct agent *a, struct reservations_state *st,
			 struct reservations_taking *t);
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

/* ---- reservations_live.c: the running containers, with the lock held -------- */

/* A member's running container. */
struct reservations_box {
	struct member_record rec;
	pid_t pid;                     /* its init */
	uint64_t recorded;             /* its member's own GPU set */
};

/* What a grant changed: GPU gpu's rule denied in the container boxes[box],
 * whose node was there (present) or not. */
struct reservations_change {
	size_t box;
	size_t gpu;
	bool present;
};

/* Note member's init (0: not running); forget every init known. */
void reservations_live_note(struct reservations_inits *c, const char *member, pid_t pid);
void reservations_live_forget(struct reservations_inits *c);
/* Every member's running container (*out: the caller frees). */
int reservations_live_boxes(struct agent *a, const struct reservations_state *st,
			    struct reservations_box **out, size_t *n);
/* rec's container as a box; -ESRCH when it does not run. */
int reservations_live_box_of(struct agent *a, const struct reservations_state *st,
			     const struct member_record *rec, struct reservations_box *b);
/* Deny the GPUs of mask in every running container but holder's whose
 * set has them; what was done into changes (room for nboxes * 64). */
int reservations_live_deny(struct agent *a, const struct reservations_state *st,
			   const struct reservations_box *boxes, size_t nboxes, const char *holder,
			   uint64_t mask, struct reservations_change *changes, size_t *nchanges);
/* Allow them again where the node was there. */
void reservations_live_allow(struct agent *a, const struct reservations_state *st,
			     const struct reservations_box *boxes,
			     const struct reservations_change *changes, size_t n);
/* Take out the nodes of what was denied (failures are logged: the rules
 * keep the GPUs out all the same). */
void reservations_live_remove(struct agent *a, const struct reservations_state *st,
			      const struct reservations_box *boxes,
			      const struct reservations_change *changes, size_t n);
/* The GPUs of mask to every running container whose effective set (st's
 * entries as they are now) has them. */
void reservations_live_give_back(struct agent *a, const struct reservations_state *st,
				 uint64_t mask);
/* One container made its effective set: the GPUs it should have there,
 * those others hold reserved out (their rules denied again, whatever a
 * crash left). */
void reservations_live_sync(struct agent *a, const struct reservations_state *st,
			    const struct reservations_box *b);

/* ---- reserve_idle_release ------------------------------------------------- */

/* The collector's reading at now_ms (monotonic): which GPUs are idle
 * (idle_gpus()).  A reservation whose GPUs all stayed idle for
 * reserve_idle_release is handed to the thread, which releases it and
 * tells its member.  Never waits for the reservations' lock.  The clocks
 * live in memory: a restarted agent counts from zero. */
void reservations_observe_idle(struct agent *a, uint64_t idle, long long now_ms);

/* ---- taking the lock themselves ------------------------------------------- */

/* The GPUs (by index) other members' reservations hold, from the view:
 * what member's container is not given at a start. */
uint64_t reservations_hidden(struct agent *a, const char *member);
/* The GPUs member's own active reservations hold, from the view. */
uint64_t reservations_held(struct agent *a, const char *member);
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
