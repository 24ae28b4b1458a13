/* SPDX-License-Identifier: MIT */
/*
 * The containers' own sockets.  Inside a container, `gpubox ps` cannot be
 * identified by its uid (every container has a root), so each container
 * gets a socket of its own: the agent listens on one per running
 * container, and a connection accepted on a member's socket is that
 * member's, whatever uid the peer claims to be.  What a guest may ask is
 * limited further in ops_dispatch().
 *
 * Only the request loop closes a listening descriptor (in
 * guest_poll_set()): a socket retired while the loop polls it must not be
 * closed under it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent.h"
#include "cleanup.h"
#include "fsutil.h"
#include "log.h"
#include "banned.h"

#define GUESTS_MAX 512

struct guest_socket {
	char member[MEMBER_NAME_SIZE];
	int fd;
	bool stale;                /* closed by the poll loop, which may be polling it */
};

struct guests {
	pthread_mutex_t lock;
	struct guest_socket sockets[GUESTS_MAX];
	size_t n;
	int wake_fd;
};

int guests_new(struct guests **out)
{
	__do_free struct guests *g = calloc(1, sizeof(*g));

	if (!g)
		return -ENOMEM;
	g->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (g->wake_fd < 0)
		return log_error_errno(-errno, errno, "eventfd");
	pthread_mutex_init(&g->lock, NULL);
	*out = move_ptr(g);
	return 0;
}

void guests_free(struct guests *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->n; i++)
		close(g->sockets[i].fd);
	close(g->wake_fd);
	pthread_mutex_destroy(&g->lock);
	free(g);
}

int guest_dir(const struct gpubox_config *cfg, const char *member, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/users/%s/guest", cfg->state_dir, member);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static void guest_wake(struct guests *g)
{
	uint64_t one = 1;

	if (write(g->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn_errno(0, errno, "cannot wake the request loop");
}

void guest_drain_wake(struct guests *g)
{
	uint64_t value;

	if (read(g->wake_fd, &value, sizeof(value)) < 0 && errno != EAGAIN)
		log_debug("eventfd read: %s", strerror(errno));
}

int guest_wake_fd(struct guests *g)
{
	return g->wake_fd;
}

static int guest_bind(const char *dir)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	__do_close int fd = -EBADF;
	int n;

	n = snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/%s", dir, GUEST_SOCKET_NAME);
	if (n < 0 || (size_t)n >= sizeof(addr.sun_path))
		return log_error_errno(-ENAMETOOLONG, 0, "the path %s/%s is too long for a socket",
				       dir, GUEST_SOCKET_NAME);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return log_error_errno(-errno, errno, "socket");
	if (unlink(addr.sun_path) < 0 && errno != ENOENT)
		return log_error_errno(-errno, errno, "cannot remove %s", addr.sun_path);
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		return log_error_errno(-errno, errno, "cannot bind %s", addr.sun_path);
	/* Every process of the container may ask; the socket says who. */
	if (chmod(addr.sun_path, 0666) < 0)
		return log_error_errno(-errno, errno, "cannot chmod %s", addr.sun_path);
	if (listen(fd, 16) < 0)
		return log_error_errno(-errno, errno, "cannot listen on %s", addr.sun_path);
	return move_fd(fd);
}

int guest_listen(struct agent *a, const char *member)
{
	struct guests *g = a->guests;
	char dir[PATH_MAX];
	int fd, ret;

	if (!g)
		return -EINVAL;
	ret = guest_dir(&a->cfg, member, dir, sizeof(dir));
	if (ret < 0)
		return ret;
	ret = fsutil_mkdir_p(dir, 0755);
	if (ret == 0 && chmod(dir, 0755) < 0)
		ret = -errno;
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot create %s", dir);
	fd = guest_bind(dir);
	if (fd < 0)
		return fd;
	pthread_mutex_lock(&g->lock);
	for (size_t i = 0; i < g->n; i++)
		if (strcmp(g->sockets[i].member, member) == 0)
			g->sockets[i].stale = true;
	if (g->n < GUESTS_MAX) {
		g->sockets[g->n] = (struct guest_socket){ .fd = fd };
		snprintf(g->sockets[g->n].member, sizeof(g->sockets[g->n].member), "%s", member);
		g->n++;
		fd = -EBADF;
	}
	pthread_mutex_unlock(&g->lock);
	if (fd >= 0) {
		close(fd);
		return log_error_errno(-ENOSPC, 0, "too many container sockets");
	}
	guest_wake(g);
	return 0;
}

void guest_close(struct agent *a, const char *member)
{
	struct guests *g = a->guests;
	char dir[PATH_MAX], path[PATH_MAX + 8];

	if (!g)
		return;
	pthread_mutex_lock(&g->lock);
	for (size_t i = 0; i < g->n; i++)
		if (strcmp(g->sockets[i].member, member) == 0)
			g->sockets[i].stale = true;
	pthread_mutex_unlock(&g->lock);
	if (guest_dir(&a->cfg, member, dir, sizeof(dir)) == 0) {
		snprintf(path, sizeof(path), "%s/%s", dir, GUEST_SOCKET_NAME);
		unlink(path);
	}
	guest_wake(g);
}

size_t guest_poll_set(struct guests *g, int *fds, char (*members)[MEMBER_NAME_SIZE], size_t max)
{
	size_t n = 0;

	pthread_mutex_lock(&g->lock);
	for (size_t i = 0; i < g->n;) {
		if (g->sockets[i].stale) {
			close(g->sockets[i].fd);
			g->sockets[i] = g->sockets[--g->n];
			continue;
		}
		if (n < max) {
			fds[n] = g->sockets[i].fd;
			memcpy(members[n], g->sockets[i].member, sizeof(members[n]));
			n++;
		}
		i++;
	}
	pthread_mutex_unlock(&g->lock);
	return n;
}
