/* SPDX-License-Identifier: MIT */
/*
 * gpuboxd itself: the agent's shared state (struct agent), its control
 * socket (control.c) and the containers' own sockets (guest.c).
 */
#ifndef GPUBOX_AGENT_H
#define GPUBOX_AGENT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <pthread.h>

#include "config.h"
#include "validate.h"
#include "container/container.h"
#include "net/net.h"

/* ---- main.c: the agent itself ---------------------------------------------- */

#define AGENT_BUSY_MAX 64               /* members with an operation under way */

struct agent {
	struct gpubox_config cfg;
	struct db *db;
	struct network_subnet subnet;
	struct config_apt_cache apt_cache;     /* apt_cache, parsed */
	struct aptproxy aptproxy;       /* its setting in the containers */
	char lxcpath[PATH_MAX];
	pthread_mutex_t members_lock;   /* allocation, add and remove */
	pthread_mutex_t rules_lock;     /* the nftables table */
	pthread_mutex_t busy_lock;      /* guards busy[] */
	pthread_cond_t busy_changed;
	char busy[AGENT_BUSY_MAX][MEMBER_NAME_SIZE];
	struct history *history;        /* NULL if it could not be opened */
	struct audit *audit;            /* NULL if it could not be opened: log lines only */
	struct collector *collector; /* the monitor's readings (collector.c) */
	struct httpd *httpd;            /* NULL when metrics_listen is empty */
	struct guests *guests;          /* the containers' own sockets (guest.c) */
	struct hubsync *hubsync;        /* NULL without hub_url */
	struct oomwatch *oomwatch;      /* NULL when the kernel's log cannot be read */
	struct idle *idle;              /* GPUs held idle (monitor/idle.c); NULL: not watched */
	struct notify *notify;          /* notify_webhook (notify.c); NULL without one */
	struct notices *notices;        /* told on members' next commands (notices.c) */
	struct expiry *expiry;          /* ends temporary limits (expiry.c); NULL before it starts */
	struct reservations *reservations;  /* GPU reservations (reservations.c) */
};

/* One operation at a time per member (agent.c).  Held by a variable that
 * lets go when it goes out of scope:
 *	__do_unlock_member struct member_lock lock = { 0 };
 *	lock = agent_lock_member(a, name);
 * agent_unlock_member(&lock) lets go earlier; letting go twice is harmless. */
struct member_lock {
	struct agent *a;                /* NULL once let go */
	char name[MEMBER_NAME_SIZE];
};
struct member_lock agent_lock_member(struct agent *a, const char *name);
void agent_unlock_member(struct member_lock *lock);
#define __do_unlock_member __attribute__((cleanup(agent_unlock_member)))

/* ---- expiry.c: temporary exceptions end on time ---------------------------- */

struct expiry;

/* Apply the ends that passed while the agent was down, then a thread for
 * those to come. */
int expiry_start(struct agent *a, struct expiry **out);
/* A new end was recorded: look again now.  Accepts NULL. */
void expiry_wake(struct expiry *e);
/* Accepts NULL. */
void expiry_stop(struct expiry *e);

/* ---- control.c: the Unix socket ------------------------------------------- */

int control_listen(const char *path);
/* Accept and serve until *stop becomes true. */
int control_serve(struct agent *a, int listen_fd, volatile int *stop);

/* ---- guest.c: each container's own socket --------------------------------- */

/*
 * <state_dir>/users/<member>/guest/sock, bound read-only into the
 * container at /dev/gpubox (where LXD keeps its own guest socket too).  The
 * agent knows which container asks from the socket that accepted the
 * connection, never from anything the container says.
 */
#define GUEST_TARGET "dev/gpubox"
#define GUEST_SOCKET_NAME "sock"
#define GUEST_CLI_TARGET "usr/local/bin/gpubox"

struct guests;

int guests_new(struct guests **out);
void guests_free(struct guests *g);
/* <state_dir>/users/<member>/guest */
int guest_dir(const struct gpubox_config *cfg, const char *member, char *buf, size_t len);
/* Listen on the member's socket (a new one replaces the old); the
 * directory is created 0755 root, the socket 0666. */
int guest_listen(struct agent *a, const char *member);
void guest_close(struct agent *a, const char *member);
/* The descriptors to poll, with their members; at most max.  Closes the
 * retired ones: only the request loop calls it. */
size_t guest_poll_set(struct guests *g, int *fds, char (*members)[MEMBER_NAME_SIZE], size_t max);
/* Readable when the set changed (the poll loop then rebuilds its set). */
int guest_wake_fd(struct guests *g);
void guest_drain_wake(struct guests *g);

#endif
