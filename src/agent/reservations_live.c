/* SPDX-License-Identifier: MIT */
/*
 * The running containers' side of reservations: a container's GPUs made
 * what the reservations say, through the same live changes as gpubox
 * admin gpu attach and detach: device-cgroup rules and device nodes.
 * Taking a GPU denies its rule first (nothing opens it from then on) and
 * removes its node once the reservation is decided; giving it back allows
 * the rule, then binds the node.  A crash may stop either half way, so
 * the sync of a container allows the rule of every GPU it should have,
 * node or not, and denies every GPU another member holds reserved.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent.h"
#include "container/container.h"
#include "ops.h"
#include "reservations.h"
#include "array.h"
#include "cleanup.h"
#include "log.h"
#include "banned.h"

/* Children changing nodes at once. */
#define RESERVATIONS_LIVE_BATCH 32

void reservations_live_forget(struct reservations_inits *c)
{
	for (size_t i = 0; c && i < c->n; i++)
		if (c->list[i].pidfd >= 0)
			close(c->list[i].pidfd);
	if (c)
		c->n = 0;
}

void reservations_live_note(struct reservations_inits *c, const char *member, pid_t pid)
{
	struct reservations_init *e = NULL;

	if (!c)
		return;
	for (size_t i = 0; i < c->n && !e; i++)
		if (strcmp(c->list[i].member, member) == 0)
			e = &c->list[i];
	if (!e) {
		if (array_reserve(&c->list, &c->cap, c->n, sizeof(*c->list)) < 0)
			return;
		e = &c->list[c->n++];
		snprintf(e->member, sizeof(e->member), "%s", member);
	} else if (e->pidfd >= 0) {
		close(e->pidfd);
	}
	e->pid = pid;
	e->pidfd = pid > 0 ? (int)syscall(SYS_pidfd_open, pid, 0) : -EBADF;
	if (pid > 0 && e->pidfd < 0)
		e->pid = 0;
}

/* member's init from c: true when known (*pid 0: not running). */
static bool reservations_live_known(struct reservations_inits *c, const char *member, pid_t *pid)
{
	for (size_t i = 0; c && i < c->n; i++) {
		struct reservations_init *e = &c->list[i];
		struct pollfd p = { .fd = e->pidfd, .events = POLLIN };

		if (strcmp(e->member, member) != 0)
			continue;
		/* Readable: the init has ended, the container stopped. */
		if (e->pid > 0 && poll(&p, 1, 0) != 0)
			reservations_live_note(c, member, 0);
		*pid = e->pid;
		return true;
	}
	return false;
}

/* The init of member's container, 0 when it does not run. */
static pid_t reservations_live_init(struct agent *a, struct reservations_inits *c,
				    const char *member)
{
	pid_t pid = 0;

	if (reservations_live_known(c, member, &pid))
		return pid;
	if (container_init_pid(a->lxcpath, member, &pid) < 0)
		pid = 0;
	reservations_live_note(c, member, pid);
	return pid;
}

/* Every member's running container with its init and own GPU set. */
int reservations_live_boxes(struct agent *a, const struct reservations_state *st,
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

		b->pid = reservations_live_init(a, st->inits, members[i].name);
		if (b->pid <= 0)
			continue;
		b->rec = members[i];
		b->recorded = reservations_recorded(a, st, members[i].name);
		(*n)++;
	}
	*out = move_ptr(boxes);
	return 0;
}


/* One GPU into or out of a running container; logged when it fails. */
static int reservations_live_one(struct agent *a, const struct reservations_state *st,
				 const struct reservations_box *b, size_t index, bool attach)
{
	int ret = ops_gpu_live(a, &b->rec, st->host, index, attach, b->pid);

	if (ret < 0)
		log_error("cannot %s GPU %zu %s the running container of %s", attach ? "give" : "take",
			  index, attach ? "to" : "out of", b->rec.name);
	return ret;
}

void reservations_live_allow(struct agent *a, const struct reservations_state *st,
			     const struct reservations_box *boxes,
			     const struct reservations_change *changes, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct reservations_box *b = &boxes[changes[i].box];

		/* Where the node was missing, the rule's past is not known:
		 * it stays denied, the safe way. */
		if (changes[i].present &&
		    ops_gpu_live_rules(a, &b->rec, st->host, changes[i].gpu, true, b->pid) < 0)
			log_error("cannot allow GPU %zu in the container of %s again", changes[i].gpu,
				  b->rec.name);
	}
}

int reservations_live_deny(struct agent *a, const struct reservations_state *st,
			   const struct reservations_box *boxes, size_t nboxes, const char *holder,
			   uint64_t mask, struct reservations_change *changes, size_t *nchanges)
{
	*nchanges = 0;
	for (size_t b = 0; b < nboxes; b++) {
		uint64_t take = mask & boxes[b].recorded;

		if (strcmp(boxes[b].rec.name, holder) == 0)
			continue;
		for (size_t i = 0; i < 64 && take; i++) {
			struct reservations_change *c = &changes[*nchanges];

			if (!((take >> i) & 1))
				continue;
			*c = (struct reservations_change){ b, i,
				gpu_live_gpu_present(st->host, boxes[b].pid, i) };
			(*nchanges)++;
			/* A container that stopped meanwhile has nothing to lose. */
			if (ops_gpu_live_rules(a, &boxes[b].rec, st->host, i, false, boxes[b].pid) < 0 &&
			    container_get_state(a->lxcpath, boxes[b].rec.name) == CONTAINER_RUNNING) {
				log_error("cannot deny GPU %zu in the running container of %s", i,
					  boxes[b].rec.name);
				return -EIO;
			}
		}
	}
	return 0;
}

/* The next node of GPU gpu at or after *i in host's list; false when none. */
static bool reservations_live_next_node(const struct gpu_host *host, size_t gpu, size_t *i)
{
	for (; *i < host->nnodes; (*i)++)
		if (host->nodes[*i].gpu == (int)gpu)
			return true;
	return false;
}

/*
 * The nodes of each change's GPU into (add) or out of its container, by
 * children working at once, RESERVATIONS_LIVE_BATCH at a time: the end
 * of a mount waits for the kernel's grace period, and they wait for it
 * together rather than in turn.  Failures are logged.
 */
static void reservations_live_nodes(struct agent *a, const struct reservations_state *st,
				      const struct reservations_box *boxes,
				      const struct reservations_change *changes, size_t n, bool add)
{
	struct gpu_live_job jobs[RESERVATIONS_LIVE_BATCH];
	size_t of[RESERVATIONS_LIVE_BATCH], c = 0, node = 0, started;

	while (c < n) {
		for (started = 0; started < RESERVATIONS_LIVE_BATCH && c < n;) {
			const struct gpu_node *gn;

			if (!reservations_live_next_node(st->host, changes[c].gpu, &node)) {
				c++;
				node = 0;
				continue;
			}
			gn = &st->host->nodes[node++];
			of[started] = c;
			if (gpu_live_start(boxes[changes[c].box].pid, gn->host, gn->target, add,
					   &jobs[started]) == 0)
				started++;
		}
		for (size_t j = 0; j < started; j++)
			if (gpu_live_finish(&jobs[j]) < 0)
				log_error("GPU %zu: a node of it could not be %s the container of %s",
					  changes[of[j]].gpu, add ? "added to" : "removed from",
					  boxes[changes[of[j]].box].rec.name);
	}
	/* Each container's CDI spec names the GPUs it has now. */
	for (c = 0; c < n; c++)
		if (c == 0 || changes[c].box != changes[c - 1].box)
			ops_gpu_cdi_refresh(a, &boxes[changes[c].box].rec, st->host,
					    boxes[changes[c].box].pid);
}

void reservations_live_remove(struct agent *a, const struct reservations_state *st,
			      const struct reservations_box *boxes,
			      const struct reservations_change *changes, size_t n)
{
	__do_free struct reservations_change *present = calloc(n + 1, sizeof(*present));
	size_t np = 0;

	if (!present)
		return;
	/* The rules deny the GPUs already: a node left behind opens nothing. */
	for (size_t i = 0; i < n; i++)
		if (changes[i].present)
			present[np++] = changes[i];
	reservations_live_nodes(a, st, boxes, present, np, false);
}

/* Give the GPUs of mask to every running container whose effective set
 * (st's entries as they are now) has them and lacks their node: the
 * rules first, then the nodes, all at once. */
void reservations_live_give_back(struct agent *a, const struct reservations_state *st,
				 uint64_t mask)
{
	__do_free struct reservations_box *boxes = NULL;
	__do_free struct reservations_change *give = NULL;
	size_t n = 0, ngive = 0;

	if (!mask || !st->host->present || reservations_live_boxes(a, st, &boxes, &n) < 0 ||
	    !(give = calloc(n * 64 + 1, sizeof(*give))))
		return;
	for (size_t b = 0; b < n; b++) {
		uint64_t want = mask & reserve_effective(st->entries, st->n, boxes[b].rec.name,
							 boxes[b].recorded);

		for (size_t i = 0; i < 64; i++) {
			if (!((want >> i) & 1) || gpu_live_gpu_present(st->host, boxes[b].pid, i))
				continue;
			if (ops_gpu_live_rules(a, &boxes[b].rec, st->host, i, true, boxes[b].pid) < 0)
				log_error("cannot allow GPU %zu in the container of %s", i, boxes[b].rec.name);
			else
				give[ngive++] = (struct reservations_change){ b, i, false };
		}
	}
	reservations_live_nodes(a, st, boxes, give, ngive, true);
}

/* One container made its effective set: the GPUs it should have are
 * there, those others' reservations hold are not (their rules denied
 * again, whatever a crash left). */
void reservations_live_sync(struct agent *a, const struct reservations_state *st,
			    const struct reservations_box *b)
{
	uint64_t all = reserve_all(st->world.rules.ngpus);
	uint64_t others = all & ~reserve_effective(st->entries, st->n, b->rec.name, all);
	uint64_t want = reserve_effective(st->entries, st->n, b->rec.name, b->recorded);

	for (size_t i = 0; i < st->host->ngpus; i++) {
		if ((want >> i) & 1) {
			if (!gpu_live_gpu_present(st->host, b->pid, i))
				reservations_live_one(a, st, b, i, true);
			else if (ops_gpu_live_rules(a, &b->rec, st->host, i, true, b->pid) < 0)
				log_error("cannot allow GPU %zu in the container of %s", i, b->rec.name);
		} else if ((others >> i) & 1) {
			reservations_live_one(a, st, b, i, false);
		}
	}
}

/* The running container of rec, as a box of st; -ESRCH when it does not run. */
int reservations_live_box_of(struct agent *a, const struct reservations_state *st,
			     const struct member_record *rec, struct reservations_box *b)
{
	b->rec = *rec;
	if (container_init_pid(a->lxcpath, rec->name, &b->pid) < 0)
		b->pid = 0;
	/* What a start found, for the next reservation to know. */
	reservations_live_note(st->inits, rec->name, b->pid);
	if (b->pid <= 0)
		return -ESRCH;
	b->recorded = reservations_recorded(a, st, rec->name);
	return 0;
}
