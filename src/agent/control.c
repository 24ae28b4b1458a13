/* SPDX-License-Identifier: MIT */
/*
 * The agent's Unix socket.  Who is asking comes from the kernel
 * (SO_PEERCRED), never from the message: uid 0 and members of the admin
 * group are admins; a uid that owns a member record is that member.
 * Each connection carries one request and is served by its own thread, so
 * a long template build never blocks a member's status.
 *
 * Nobody can starve the others of it.  Connections are counted against
 * who asks: a uid of the host, or a container as a whole, whatever uid
 * inside asks (a container has 65,536 of them).  Past the pool shared by
 * all, a reserve is left to admins.  The whole request must arrive within
 * CONTROL_REQUEST_MS of the accept, however it trickles in.  Progress is
 * sent only when the client's socket has room, never waiting on it, so
 * that no lock an operation holds is ever held on a client that does not
 * read; the final reply, sent when the operation has let go of its locks,
 * waits at most CONTROL_SEND_TIMEOUT seconds.
 *
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
#include <time.h>
#include <unistd.h>
#include <poll.h>

#include "agent.h"
#include "audit.h"
#include "notify.h"
#include "ops.h"
#include "progress.h"
#include "state/state.h"
#include "cleanup.h"
#include "fsutil.h"
#include "log.h"
#include "proto.h"
#include "banned.h"

#define CONTROL_MAX_CONNECTIONS 64     /* requests under way at once, shared by all */
#define CONTROL_ADMIN_RESERVE 16       /* beyond those, for admins only */
#define CONTROL_MAX_PER_UID 8          /* from one uid on the main socket */
#define CONTROL_MAX_PER_GUEST 4        /* from one container, whatever uid inside asks */
#define CONTROL_REQUEST_MS 5000        /* from the accept to the whole request */
#define CONTROL_SEND_TIMEOUT 10        /* seconds a reply waits on a client that does not read */
#define CONTROL_SLOTS (CONTROL_MAX_CONNECTIONS + CONTROL_ADMIN_RESERVE)

/* Who a connection is counted against. */
struct control_key {
	uid_t uid;                          /* on the main socket */
	char guest[MEMBER_NAME_SIZE];       /* the container's member, or "" on the main socket */
};

struct control_peer {
	struct agent *agent;
	int fd;
	struct ucred cred;
	struct control_key key;
	long long deadline_ms;              /* the whole request by then */
	bool reserve;                       /* admitted into the admins' reserve */
};

enum control_admission {
	CONTROL_ADMITTED,
	CONTROL_RESERVE,                    /* admitted, if the caller proves to be an admin */
	CONTROL_OVER_CALLER,                /* the caller has its whole budget under way */
	CONTROL_FULL,                       /* the pool and, for this caller, the reserve are taken */
};

static pthread_mutex_t control_count_lock = PTHREAD_MUTEX_INITIALIZER;
static struct { struct control_key key; unsigned count; } control_counts[CONTROL_SLOTS];
static unsigned control_total;

static bool control_key_equal(const struct control_key *a, const struct control_key *b)
{
	if (a->guest[0] || b->guest[0])
		return strcmp(a->guest, b->guest) == 0;
	return a->uid == b->uid;
}

/* Count a connection in.  Root is an admin without asking; whether
 * another uid of the main socket is one (its groups, perhaps from LDAP) is
 * found out by its own thread, never here in the accept loop. */
static enum control_admission control_admit(const struct control_key *key, unsigned *held)
{
	unsigned limit = key->guest[0] ? CONTROL_MAX_PER_GUEST : CONTROL_MAX_PER_UID;
	enum control_admission verdict = CONTROL_ADMITTED;
	size_t slot = CONTROL_SLOTS;

	pthread_mutex_lock(&control_count_lock);
	for (size_t i = 0; i < CONTROL_SLOTS; i++) {
		if (control_counts[i].count && control_key_equal(&control_counts[i].key, key)) {
			slot = i;
			break;
		}
		if (!control_counts[i].count && slot == CONTROL_SLOTS)
			slot = i;
	}
	*held = slot < CONTROL_SLOTS && control_counts[slot].count ? control_counts[slot].count : 0;
	if (*held >= limit)
		verdict = CONTROL_OVER_CALLER;
	else if (control_total >= CONTROL_SLOTS || slot == CONTROL_SLOTS ||
		 (control_total >= CONTROL_MAX_CONNECTIONS && key->guest[0]))
		verdict = CONTROL_FULL;
	else if (control_total >= CONTROL_MAX_CONNECTIONS && key->uid != 0)
		verdict = CONTROL_RESERVE;
	if (verdict == CONTROL_ADMITTED || verdict == CONTROL_RESERVE) {
		if (!control_counts[slot].count)
			control_counts[slot].key = *key;
		control_counts[slot].count++;
		control_total++;
	}
	pthread_mutex_unlock(&control_count_lock);
	return verdict;
}

static void control_release(const struct control_key *key)
{
	pthread_mutex_lock(&control_count_lock);
	for (size_t i = 0; i < CONTROL_SLOTS; i++) {
		if (control_counts[i].count && control_key_equal(&control_counts[i].key, key)) {
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
	if (peer->key.guest[0]) {
		/* Root inside a container is nobody's admin. */
		who->guest = true;
		who->is_member = db_member_get(a->db, peer->key.guest, &who->member) == 0;
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

/* Called by operations, perhaps under their locks: never waits on the
 * client.  A line the client has no room for is dropped; a client that
 * went away does not stop the work it asked for. */
static void control_emit(struct progress *p, const char *text)
{
	struct control_progress *cp = (struct control_progress *)p;
	__do_json json_t *msg = NULL;
	int ret;

	if (cp->gone)
		return;
	msg = proto_progress_new(text);
	if (!msg)
		return;
	ret = proto_send_nowait(cp->fd, msg);
	if (ret < 0 && ret != -EAGAIN) {
		cp->gone = true;
		shutdown(cp->fd, SHUT_WR);
	}
}

/* An error reply; a shorter one when the text cannot be sent (NULL: no memory). */
static json_t *control_error_new(const char *code, const char *text)
{
	json_t *msg = proto_error_new(code, text);

	return msg ? msg : proto_error_new(code, "the request could not be served");
}

static void control_reply_error(int fd, const char *code, const char *text)
{
	__do_json json_t *msg = control_error_new(code, text);

	if (msg)
		proto_send(fd, msg);
}

/* The whole request, by the peer's deadline. */
static int control_read_request(struct control_peer *peer, json_t **msg)
{
	int ret = proto_recv_until(peer->fd, msg, peer->deadline_ms);

	if (ret == -ETIMEDOUT)
		control_reply_error(peer->fd, PROTO_E_USAGE,
				    "the request did not arrive in time; the connection is closed");
	else if (ret < 0 && ret != -EPIPE)
		control_reply_error(peer->fd, PROTO_E_USAGE,
				    "the request was not a valid gpubox message");
	return ret;
}

/* The member's notices not yet shown (an idle GPU of theirs), into the
 * final message: each is shown once, on whatever the member asks next. */
static void control_add_notices(struct agent *a, const struct caller *who, json_t *msg)
{
	json_t *notices;

	if (!msg || !who->is_member)
		return;
	notices = notices_take(a->notices, who->member.name);
	if (notices)
		json_object_set_new(msg, "notices", notices);
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
	char err[256], op[160];

	if (control_read_request(peer, &msg) < 0)
		return;
	if (proto_parse_request(msg, &req, err, sizeof(err)) < 0) {
		control_reply_error(peer->fd, PROTO_E_USAGE, err);
		return;
	}
	control_identify(a, peer, &who);
	if (peer->reserve && !who.admin) {
		control_reply_error(peer->fd, PROTO_E_UNAVAILABLE,
				    "the agent is serving as many requests as it takes; try again in a moment");
		return;
	}
	if (who.guest && !who.is_member) {
		control_reply_error(peer->fd, PROTO_E_DENIED, "this container has no member any more");
		return;
	}
	/* The client's op quoted (audit.h): never a line of its own. */
	audit_escape(req.op, op, sizeof(op));
	log_debug("uid %u (pid %d%s%s) asks for %s", (unsigned)who.uid, (int)who.pid,
		  who.guest ? ", inside the container of " : "", who.guest ? peer->key.guest : "", op);
	if (ops_dispatch(a, &who, req.op, req.args, &progress.base, &result, &error) < 0) {
		char text[sizeof(error.text) * 4];

		/* What matters of a refusal is in the audit log's line. */
		log_debug("uid %u: %s refused: %s", (unsigned)who.uid, op,
			  audit_escape(error.text, text, sizeof(text)));
		reply = control_error_new(error.code ? error.code : PROTO_E_FAILED, error.text);
	} else {
		reply = proto_ok_new(result);
	}
	control_add_notices(a, &who, reply);
	if (reply && !progress.gone)
		proto_send(peer->fd, reply);
}

static void *control_thread(void *arg)
{
	struct control_peer *peer = arg;

	control_serve_peer(peer);
	control_release(&peer->key);
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

/* The refusal says who is over which limit; logged at most once a second
 * (an attack would otherwise fill the log). */
static void control_refuse(int fd, const struct control_key *key, enum control_admission verdict,
			   unsigned held)
{
	static time_t last_logged;
	char text[256];
	time_t now = time(NULL);

	if (verdict == CONTROL_FULL)
		snprintf(text, sizeof(text),
			 "the agent is serving as many requests as it takes; try again in a moment");
	else if (key->guest[0])
		snprintf(text, sizeof(text),
			 "too many requests at once from the container of %s (%u under way); wait for them to finish",
			 key->guest, held);
	else
		snprintf(text, sizeof(text),
			 "too many requests at once from uid %u (%u under way); wait for them to finish",
			 (unsigned)key->uid, held);
	if (now != __atomic_exchange_n(&last_logged, now, __ATOMIC_RELAXED))
		log_warn("refused a connection: %s", text);
	control_reply_error(fd, PROTO_E_UNAVAILABLE, text);
}

static void control_accept_one(struct agent *a, int listen_fd, const char *guest)
{
	/* A reply waits this long at most on a client that does not read. */
	struct timeval send_timeout = { .tv_sec = CONTROL_SEND_TIMEOUT };
	__do_free struct control_peer *peer = NULL;
	__do_close int fd = -EBADF;
	socklen_t len = sizeof(struct ucred);
	enum control_admission verdict;
	pthread_attr_t attr;
	pthread_t thread;
	unsigned held;

	fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof(send_timeout));
	peer = calloc(1, sizeof(*peer));
	if (!peer || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer->cred, &len) < 0)
		return;
	peer->agent = a;
	peer->deadline_ms = proto_deadline(CONTROL_REQUEST_MS);
	peer->key.uid = peer->cred.uid;
	snprintf(peer->key.guest, sizeof(peer->key.guest), "%s", guest ? guest : "");
	verdict = control_admit(&peer->key, &held);
	if (verdict == CONTROL_OVER_CALLER || verdict == CONTROL_FULL) {
		control_refuse(fd, &peer->key, verdict, held);
		return;
	}
	peer->reserve = verdict == CONTROL_RESERVE;
	peer->fd = fd;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&thread, &attr, control_thread, peer) == 0) {
		peer = NULL;             /* the thread's now */
		fd = -EBADF;
	} else {
		control_release(&peer->key);
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
