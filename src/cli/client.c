/* SPDX-License-Identifier: MIT */
/*
 * One request to the agent (protocol in proto.h): connect, send, then
 * read progress messages until the final one.  Progress goes to stderr
 * line by line as it arrives, so that a --json result on stdout stays
 * clean and long work (a template build) shows it is alive.  The agent's
 * text is printed with cli_print_line(): one line, one write, whatever
 * newlines it ends with.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cleanup.h"
#include "cli.h"
#include "proto.h"

#include "banned.h"

static int client_connect(const char *path, int *out)
{
	__do_close int fd = -EBADF;
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	size_t len = strlen(path);

	if (len >= sizeof(addr.sun_path)) {
		cli_error("the socket path %s is too long; fix socket_path in gpubox.conf", path);
		return -ENAMETOOLONG;
	}
	memcpy(addr.sun_path, path, len + 1);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		/* Saved first: printing the message may change errno. */
		int err = errno;

		cli_error("cannot create a socket: %s", strerror(err));
		return -err;
	}
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int err = errno;

		if (err == ENOENT)
			cli_error("the gpubox agent is not running on this server "
				  "(no socket at %s); ask an admin", path);
		else if (err == ECONNREFUSED)
			cli_error("the gpubox agent is not running on this server "
				  "(nothing listens at %s); ask an admin", path);
		else if (err == EACCES)
			cli_error("you may not use the gpubox agent's socket %s "
				  "(permission denied); ask an admin", path);
		else
			cli_error("cannot connect to the gpubox agent at %s: %s", path,
				  strerror(err));
		return -err;
	}
	*out = move_fd(fd);
	return 0;
}

/* The agent's error code as a negative errno; only "usage" maps to -EINVAL. */
static int client_error_code(const char *code)
{
	static const struct { const char *code; int err; } codes[] = {
		{ PROTO_E_USAGE,       -EINVAL },
		{ PROTO_E_DENIED,      -EACCES },
		{ PROTO_E_NOTFOUND,    -ENOENT },
		{ PROTO_E_CONFLICT,    -EEXIST },
		{ PROTO_E_FAILED,      -EIO },
		{ PROTO_E_UNAVAILABLE, -EAGAIN },
	};

	for (size_t i = 0; code && i < ARRAY_SIZE(codes); i++)
		if (strcmp(code, codes[i].code) == 0)
			return codes[i].err;
	return -EIO;
}

/* What the agent has to tell this member (an idle GPU of theirs, a
 * temporary limit ending soon): on stderr, so that a --json answer on
 * stdout stays clean. */
static void client_notices(json_t *msg)
{
	json_t *notice;
	size_t i;

	json_array_foreach(json_object_get(msg, "notices"), i, notice)
		if (json_is_string(notice))
			cli_print_line("gpubox: notice: ", json_string_value(notice));
}

static int client_final(json_t *msg, json_t **result)
{
	json_t *ok = json_object_get(msg, "ok");
	const char *text, *code;

	client_notices(msg);
	if (json_is_true(ok)) {
		json_t *res = json_object_get(msg, "result");

		*result = json_is_object(res) ? json_incref(res) : json_object();
		return *result ? 0 : -ENOMEM;
	}
	text = json_string_value(json_object_get(msg, "error"));
	code = json_string_value(json_object_get(msg, "code"));
	cli_print_line("gpubox: ", text ? text : "the agent refused the request without a reason");
	return client_error_code(code);
}

/*
 * Inside a member's container there is no gpubox.conf and no agent socket
 * at its usual path, but the container's own socket is bound at
 * /dev/gpubox/sock: use it when the configured one does not exist.
 */
#define CLIENT_GUEST_SOCKET "/dev/gpubox/sock"

static const char *client_socket_path(const struct cli *cli)
{
	if (access(cli->cfg.socket_path, F_OK) < 0 && errno == ENOENT &&
	    access(CLIENT_GUEST_SOCKET, F_OK) == 0)
		return CLIENT_GUEST_SOCKET;
	return cli->cfg.socket_path;
}

int client_call(struct cli *cli, const char *op, json_t *args, json_t **result)
{
	__do_json json_t *request = NULL;
	__do_close int fd = -EBADF;
	int ret, sent;

	*result = NULL;
	request = proto_request_new(op, args);
	if (!request) {
		cli_error("out of memory");
		return -ENOMEM;
	}
	ret = cli_load_config(cli);
	if (ret < 0)
		return ret == -EINVAL ? -EIO : ret;
	ret = client_connect(client_socket_path(cli), &fd);
	if (ret < 0)
		return ret == -EINVAL ? -EIO : ret;

	/*
	 * An agent that turns a request away at once (too many at a time from
	 * this caller) answers and closes without reading it: sending may then
	 * fail while the answer that says why waits to be read.
	 */
	sent = proto_send(fd, request);
	if (sent < 0 && sent != -EPIPE && sent != -ECONNRESET) {
		cli_error("cannot send the request to the gpubox agent: %s", strerror(-sent));
		return -EIO;
	}

	for (;;) {
		__do_json json_t *msg = NULL;
		json_t *progress;

		ret = proto_recv(fd, &msg);
		if (ret < 0 && sent < 0) {
			cli_error("cannot send the request to the gpubox agent: %s", strerror(-sent));
			return -EIO;
		}
		if (ret == -EPIPE) {
			cli_error("the gpubox agent closed the connection without an answer; "
				  "ask an admin to look at its log");
			return -EIO;
		}
		if (ret < 0) {
			cli_error("bad answer from the gpubox agent: %s", strerror(-ret));
			return -EIO;
		}
		progress = json_object_get(msg, "progress");
		if (json_is_string(progress)) {
			cli_print_line("", json_string_value(progress));
			continue;
		}
		if (json_object_get(msg, "ok"))
			return client_final(msg, result);
		/* Unknown kinds of message are skipped: a newer agent may add some. */
	}
}

int client_call_shown(struct cli *cli, const struct cli_options *opts, const char *op,
		      json_t *args, json_t **result)
{
	int ret = client_call(cli, op, args, result);

	if (ret < 0)
		return cli_exit_status(ret);
	if (opts->json) {
		output_json(*result);
		json_decref(*result);
		*result = NULL;
	}
	return CLI_EXIT_OK;
}
