/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "spawn.h"
#include "banned.h"

#define SPAWN_LINE_MAX 4096

static char *const spawn_default_env[] = {
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"LANG=C.UTF-8",
	"DEBIAN_FRONTEND=noninteractive",
	NULL,
};

struct spawn_reader {
	const struct spawn_options *opts;
	char line[SPAWN_LINE_MAX];
	size_t linelen;
	size_t captured;
};

static void spawn_flush_line(struct spawn_reader *r)
{
	if (r->opts && r->opts->on_line && r->linelen > 0) {
		r->line[r->linelen] = '\0';
		r->opts->on_line(r->line, r->opts->data);
	}
	r->linelen = 0;
}

static void spawn_consume(struct spawn_reader *r, const char *buf, size_t n)
{
	const struct spawn_options *o = r->opts;

	if (o && o->capture && o->capture_size > 0) {
		size_t room = o->capture_size - 1 - r->captured;
		size_t take = n < room ? n : room;

		memcpy(o->capture + r->captured, buf, take);
		r->captured += take;
		o->capture[r->captured] = '\0';
	}
	for (size_t i = 0; i < n; i++) {
		if (buf[i] == '\n' || buf[i] == '\r') {
			spawn_flush_line(r);
			continue;
		}
		if (r->linelen < sizeof(r->line) - 1)
			r->line[r->linelen++] = buf[i];
	}
}

static long long spawn_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read the child's output until it closes the pipe or the deadline passes. */
static int spawn_drain(int fd, pid_t pid, struct spawn_reader *r, unsigned timeout)
{
	long long deadline = timeout ? spawn_now_ms() + (long long)timeout * 1000 : 0;
	char buf[4096];

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int wait_ms = -1, n;
		ssize_t got;

		if (deadline) {
			long long left = deadline - spawn_now_ms();
			if (left <= 0) {
				kill(pid, SIGKILL);
				return -ETIMEDOUT;
			}
			wait_ms = (int)left;
		}
		n = poll(&pfd, 1, wait_ms);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			continue;
		got = read(fd, buf, sizeof(buf));
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		spawn_consume(r, buf, (size_t)got);
	}
	spawn_flush_line(r);
	return 0;
}

/* The child's environment: the caller's, or the default with extra_env. */
static char *const *spawn_env(const struct spawn_options *opts, char *env[static 5])
{
	size_t n = 0;

	if (opts && opts->envp)
		return opts->envp;
	if (!opts || !opts->extra_env)
		return spawn_default_env;
	for (; spawn_default_env[n]; n++)
		env[n] = spawn_default_env[n];
	env[n++] = (char *)opts->extra_env;
	env[n] = NULL;
	return env;
}

int spawn_run(const char *const argv[], const struct spawn_options *opts)
{
	posix_spawn_file_actions_t actions;
	posix_spawnattr_t attr;
	struct spawn_reader reader = { .opts = opts };
	__do_close int rd = -EBADF;
	int pipefd[2], status, ret, drained;
	sigset_t none, all;
	char *env[5];
	pid_t pid;

	if (!argv || !argv[0])
		return -EINVAL;
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	rd = pipefd[0];

	posix_spawn_file_actions_init(&actions);
	posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&actions, pipefd[1], 1);
	posix_spawn_file_actions_adddup2(&actions, pipefd[1], 2);
	if (opts && opts->cwd)
		posix_spawn_file_actions_addchdir_np(&actions, opts->cwd);
	/* Descriptors the agent forgot to mark close-on-exec still never leak. */
	posix_spawn_file_actions_addclosefrom_np(&actions, 3);

	/* The child starts with default signal handling and nothing blocked. */
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
					POSIX_SPAWN_SETSID);

	ret = posix_spawnp(&pid, argv[0], &actions, &attr, (char *const *)argv,
			   spawn_env(opts, env));
	posix_spawn_file_actions_destroy(&actions);
	posix_spawnattr_destroy(&attr);
	close(pipefd[1]);
	if (ret != 0)
		return log_error_errno(-ret, ret, "cannot run %s", argv[0]);

	drained = spawn_drain(rd, pid, &reader, opts ? opts->timeout : 0);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	if (drained == -ETIMEDOUT)
		return log_error_errno(-ETIMEDOUT, 0, "%s ran past its time limit and was killed", argv[0]);
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return -ECHILD;
}

int spawn_quiet(const char *const argv[])
{
	return spawn_run(argv, NULL);
}
