/* SPDX-License-Identifier: MIT */
/*
 * The agent's Unix socket.  Who is asking comes from the kernel
 * (SO_PEERCRED), never from the message: uid 0 and members of the admin
 * group are admins; a uid that owns a member record is that member.
 * Each connection carries one request and is served by its own thread, so
 * a long template build never blocks a member's status.  Connections are
 * capped per uid and in all; a client that sends nothing is dropped.
 * The same loop serves each container's own socket (guest.c): there the
 * socket, not the uid, says who asks.
 */
#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <poll.h>

#include "agent.h"
#include "ops.h"
#include "progress.h"
#include "state/state.h"
#include "cleanup.h"
#include "fsutil.h"
#include "log.h"
#include "proto.h"
#include "banned.h"

#define CONTROL_MAX_CONNECTIONS 64
#define CONTROL_MAX_PER_UID 8
#define CONTROL_READ_TIMEOUT 10

struct control_peer {
	struct agent *agent;
	int fd;
	struct ucred cred;
	char guest[MEMBER_NAME_SIZE];            /* the container's member, or "" on the main socket */
};

static pthread_mutex_t control_count_lock = PTHREAD_MUTEX_INITIALIZER;
static struct { uid_t uid; unsigned count; } control_counts[CONTROL_MAX_CONNECTIONS];
static unsigned control_total;

/* Count a connection in; false when the caller already has too many. */
static bool control_admit(uid_t uid)
{
	bool ok = false;
	size_t free_slot = CONTROL_MAX_CONNECTIONS;

	pthread_mutex_lock(&control_count_lock);
	if (control_total < CONTROL_MAX_CONNECTIONS) {
		for (size_t i = 0; i < CONTROL_MAX_CONNECTIONS; i++) {
			if (control_counts[i].count && control_counts[i].uid == uid) {
				if (control_counts[i].count < CONTROL_MAX_PER_UID) {
					control_counts[i].count++;
					ok = true;
				}
				goto out;
			}
			if (!control_counts[i].count && free_slot == CONTROL_MAX_CONNECTIONS)
				free_slot = i;
		}
		if (free_slot < CONTROL_MAX_CONNECTIONS) {
			control_counts[free_slot].uid = uid;
			control_counts[free_slot].count = 1;
			ok = true;
		}
	}
out:
	if (ok)
		control_total++;
	pthread_mutex_unlock(&control_count_lock);
	return ok;
}

static void control_release(uid_t uid)
{
	pthread_mutex_lock(&control_count_lock);
	for (size_t i = 0; i < CONTROL_MAX_CONNECTIONS; i++) {
		if (control_counts[i].count && control_counts[i].uid == uid) {
			control_counts[i].count--;
			control_total--;
			break;
		}
	}
	pthread_mutex_unlock(&control_count_lock);
}

static bool control_in_admin_group(const struct gpubox_config *cfg, uid_t uid)
{
	struct passwd pw, *pwp = NULL;
	struct group gr, *grp = NULL;
	char pwbuf[4096], grbuf[16384];
	gid_t groups[256];
	int ngroups = (int)ARRAY_SIZE(groups);

	if (getpwuid_r(uid, &pw, pwbuf, sizeof(pwbuf), &pwp) != 0 || !pwp)
		return false;
	if (getgrnam_r(cfg->admin_group, &gr, grbuf, sizeof(grbuf), &grp) != 0 || !grp)
		return false;
	if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &ngroups) < 0)
		return false;
	for (int i = 0; i < ngroups; i++)
		if (groups[i] == gr.gr_gid)
			return true;
	return false;
}

static void control_identify(struct agent *a, const struct control_peer *peer, struct caller *who)
{
	memset(who, 0, sizeof(*who));
	who->uid = peer->cred.uid;
	who->gid = peer->cred.gid;
	who->pid = peer->cred.pid;
	if (peer->guest[0]) {
		/* Root inside a container is nobody's admin. */
		who->guest = true;
		who->is_member = db_member_get(a->db, peer->guest, &who->member) == 0;
		return;
	}
	who->admin = peer->cred.uid == 0 || control_in_admin_group(&a->cfg, peer->cred.uid);
	who->is_member = db_member_by_uid(a->db, peer->cred.uid, &who->member) == 0;
}

struct control_progress {
	struct progress base;
	int fd;
	bool gone;
};

static void control_emit(struct progress *p, const char *text)
{
	struct control_progress *cp = (struct control_progress *)p;
	__do_json json_t *msg = NULL;

	if (cp->gone)
		return;
	msg = proto_progress_new(text);
	/* A client that went away does not stop the work it asked for. */
	if (msg && proto_send(cp->fd, msg) < 0)
		cp->gone = true;
}

static void control_reply_error(int fd, const char *code, const char *text)
{
	__do_json json_t *msg = proto_error_new(code, text);

	if (!msg)
		msg = proto_error_new(code, "the request could not be served");
	if (msg)
		proto_send(fd, msg);
}

static void control_serve_peer(struct control_peer *peer)
{
	struct agent *a = peer->agent;
	struct control_progress progress = { .base.emit = control_emit, .fd = peer->fd };
	struct proto_request req;
	struct reply_error error = { 0 };
	struct caller who;
	__do_json json_t *msg = NULL;
	__do_json json_t *reply = NULL;
	json_t *result = NULL;
	char err[256];
	int ret;

	ret = proto_recv(peer->fd, &msg);
	if (ret < 0) {
		if (ret != -EPIPE)
			control_reply_error(peer->fd, PROTO_E_USAGE,
					    "the request was not a valid gpubox message");
		return;
	}
	if (proto_parse_request(msg, &req, err, sizeof(err)) < 0) {
		control_reply_error(peer->fd, PROTO_E_USAGE, err);
		return;
	}
	control_identify(a, peer, &who);
	if (who.guest && !who.is_member) {
		control_reply_error(peer->fd, PROTO_E_DENIED, "this container has no member any more");
		return;
	}
	log_debug("uid %u (pid %d%s%s) asks for %s", (unsigned)who.uid, (int)who.pid,
		  who.guest ? ", inside the container of " : "", who.guest ? peer->guest : "", req.op);
	if (ops_dispatch(a, &who, req.op, req.args, &progress.base, &result, &error) < 0) {
		log_info("uid %u: %s refused: %s", (unsigned)who.uid, req.op, error.text);
		control_reply_error(peer->fd, error.code ? error.code : PROTO_E_FAILED, error.text);
		return;
	}
	reply = proto_ok_new(result);
	if (reply)
		proto_send(peer->fd, reply);
}

static void *control_thread(void *arg)
{
	struct control_peer *peer = arg;

	control_serve_peer(peer);
	control_release(peer->cred.uid);
	close(peer->fd);
	free(peer);
	return NULL;
}

int control_listen(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	char dir[PATH_MAX];
	char *slash;
	__do_close int fd = -EBADF;
	int ret;

	if (strlen(path) >= sizeof(addr.sun_path))
		return log_error_errno(-ENAMETOOLONG, 0, "the socket path %s is too long", path);
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		ret = fsutil_mkdir_p(dir, 0755);
		if (ret < 0)
			return log_error_errno(ret, -ret, "cannot create %s", dir);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return log_error_errno(-errno, errno, "socket");
	if (unlink(path) < 0 && errno != ENOENT)
		return log_error_errno(-errno, errno, "cannot remove the old socket %s", path);
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		return log_error_errno(-errno, errno, "cannot bind %s", path);
	/* Everyone may connect: the agent authorises each request itself. */
	if (chmod(path, 0666) < 0)
		return log_error_errno(-errno, errno, "cannot chmod %s", path);
	if (listen(fd, 64) < 0)
		return log_error_errno(-errno, errno, "cannot listen on %s", path);
	return move_fd(fd);
}

static void control_accept_one(struct agent *a, int listen_fd, const char *guest)
{
	struct timeval timeout = { .tv_sec = CONTROL_READ_TIMEOUT };
	struct control_peer *peer;
	socklen_t len = sizeof(struct ucred);
	pthread_attr_t attr;
	pthread_t thread;
	int fd;

	fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	peer = calloc(1, sizeof(*peer));
	if (!peer) {
		close(fd);
		return;
	}
	peer->agent = a;
	peer->fd = fd;
	snprintf(peer->guest, sizeof(peer->guest), "%s", guest ? guest : "");
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer->cred, &len) < 0) {
		close(fd);
		free(peer);
		return;
	}
	if (!control_admit(peer->cred.uid)) {
		control_reply_error(fd, PROTO_E_UNAVAILABLE,
				    "too many requests at once from you; wait for them to finish");
		close(fd);
		free(peer);
		return;
	}
	/* Only the request must come quickly; replies may take minutes. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&thread, &attr, control_thread, peer) != 0) {
		control_release(peer->cred.uid);
		close(fd);
		free(peer);
	}
	pthread_attr_destroy(&attr);
}

#define CONTROL_POLL_MAX 520

int control_serve(struct agent *a, int listen_fd, volatile int *stop)
{
	static struct pollfd pfd[CONTROL_POLL_MAX];
	static int guest_fds[CONTROL_POLL_MAX];
	static char members[CONTROL_POLL_MAX][MEMBER_NAME_SIZE];

	while (!*stop) {
		size_t nguests = 0, nfds = 0;
		int n;

		pfd[nfds++] = (struct pollfd){ .fd = listen_fd, .events = POLLIN };
		if (a->guests) {
			pfd[nfds++] = (struct pollfd){ .fd = guest_wake_fd(a->guests), .events = POLLIN };
			nguests = guest_poll_set(a->guests, guest_fds, members, CONTROL_POLL_MAX - 2);
			for (size_t i = 0; i < nguests; i++)
				pfd[nfds++] = (struct pollfd){ .fd = guest_fds[i], .events = POLLIN };
		}
		n = poll(pfd, nfds, 500);
		if (n < 0 && errno != EINTR)
			return log_error_errno(-errno, errno, "poll");
		if (n <= 0)
			continue;
		if (pfd[0].revents & POLLIN)
			control_accept_one(a, listen_fd, NULL);
		if (a->guests && (pfd[1].revents & POLLIN))
			guest_drain_wake(a->guests);
		for (size_t i = 0; i < nguests; i++)
			if (pfd[2 + i].revents & POLLIN)
				control_accept_one(a, guest_fds[i], members[i]);
	}
	return 0;
}
