/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "fsutil.h"
#include "proto.h"
#include "strutil.h"
#include "banned.h"

/* Milliseconds left until deadline (CLOCK_MONOTONIC ms), 0 when past it. */
static int proto_time_left(long long deadline_ms)
{
	struct timespec now;
	long long left;

	clock_gettime(CLOCK_MONOTONIC, &now);
	left = deadline_ms - ((long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
	if (left <= 0)
		return 0;
	return left > INT32_MAX ? INT32_MAX : (int)left;
}

/* 0 when len bytes were read, -EPIPE on end of stream before the first
 * byte, -ETIMEDOUT when the deadline passed first. */
static int proto_read_all(int fd, void *buf, size_t len, long long deadline_ms)
{
	char *p = buf;
	size_t got = 0;

	while (got < len) {
		ssize_t n;

		if (deadline_ms >= 0) {
			struct pollfd pfd = { .fd = fd, .events = POLLIN };
			int left = proto_time_left(deadline_ms);

			if (left == 0)
				return -ETIMEDOUT;
			n = poll(&pfd, 1, left);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return -errno;
			if (n == 0)
				return -ETIMEDOUT;
		}
		n = read(fd, p + got, len - got);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return got == 0 ? -EPIPE : -EPROTO;
		got += (size_t)n;
	}
	return 0;
}

long long proto_deadline(unsigned ms)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000 + ms;
}

/* The whole frame (length and payload) in one buffer, so that it goes out
 * in one write. */
static int proto_frame(json_t *msg, char **frame, size_t *framelen)
{
	__do_free char *text = json_dumps(msg, JSON_COMPACT);
	char *buf;
	size_t len;

	if (!text)
		return -ENOMEM;
	len = strlen(text);
	if (len > PROTO_FRAME_MAX)
		return -EMSGSIZE;
	buf = malloc(len + 4);
	if (!buf)
		return -ENOMEM;
	buf[0] = (char)(unsigned char)(len >> 24);
	buf[1] = (char)(unsigned char)(len >> 16);
	buf[2] = (char)(unsigned char)(len >> 8);
	buf[3] = (char)(unsigned char)len;
	memcpy(buf + 4, text, len);
	*frame = buf;
	*framelen = len + 4;
	return 0;
}

int proto_send(int fd, json_t *msg)
{
	__do_free char *frame = NULL;
	size_t len;
	int ret;

	ret = proto_frame(msg, &frame, &len);
	if (ret < 0)
		return ret;
	return fsutil_write_all(fd, frame, len);
}

int proto_send_nowait(int fd, json_t *msg)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	__do_free char *frame = NULL;
	size_t len;
	ssize_t n;
	int ret;

	ret = proto_frame(msg, &frame, &len);
	if (ret < 0)
		return ret;
	/* Writable means at most a quarter of the send buffer is in use on a
	 * Unix socket: a frame of a line or two fits in what is left. */
	if (poll(&pfd, 1, 0) != 1 || !(pfd.revents & POLLOUT))
		return -EAGAIN;
	do
		n = send(fd, frame, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	/* Part of a frame: the stream cannot be continued. */
	return (size_t)n == len ? 0 : -EPIPE;
}

int proto_decode(const char *payload, size_t len, json_t **msg)
{
	json_error_t error;
	json_t *value;

	/* Reject NUL bytes explicitly: jansson would refuse them too, but say why. */
	if (len == 0 || memchr(payload, '\0', len))
		return -EPROTO;
	value = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &error);
	if (!value)
		return -EPROTO;
	if (!json_is_object(value)) {
		json_decref(value);
		return -EPROTO;
	}
	*msg = value;
	return 0;
}

int proto_recv(int fd, json_t **msg)
{
	return proto_recv_until(fd, msg, -1);
}

int proto_recv_until(int fd, json_t **msg, long long deadline_ms)
{
	unsigned char header[4];
	__do_free char *payload = NULL;
	uint32_t len;
	int ret;

	ret = proto_read_all(fd, header, sizeof(header), deadline_ms);
	if (ret < 0)
		return ret;
	len = (uint32_t)header[0] << 24 | (uint32_t)header[1] << 16 |
	      (uint32_t)header[2] << 8 | header[3];
	if (len == 0 || len > PROTO_FRAME_MAX)
		return -EPROTO;
	payload = malloc(len);
	if (!payload)
		return -ENOMEM;
	ret = proto_read_all(fd, payload, len, deadline_ms);
	if (ret < 0)
		return ret == -EPIPE ? -EPROTO : ret;
	return proto_decode(payload, len, msg);
}

int proto_parse_request(json_t *msg, struct proto_request *req, char *err, size_t errlen)
{
	json_t *version = json_object_get(msg, "v");
	json_t *op = json_object_get(msg, "op");
	json_t *args = json_object_get(msg, "args");
	const char *key;
	json_t *value;

	if (!json_is_integer(version) || json_integer_value(version) != PROTO_VERSION) {
		set_error(err, errlen, "this agent speaks protocol version %d; update gpubox",
			 PROTO_VERSION);
		return -EPROTO;
	}
	if (!json_is_string(op) || json_string_length(op) == 0 || json_string_length(op) > 32) {
		set_error(err, errlen, "the request names no operation");
		return -EINVAL;
	}
	if (args && !json_is_object(args)) {
		set_error(err, errlen, "the request's arguments must be an object");
		return -EINVAL;
	}
	json_object_foreach(msg, key, value) {
		if (strcmp(key, "v") && strcmp(key, "op") && strcmp(key, "args")) {
			set_error(err, errlen, "the request has an unknown field");
			return -EINVAL;
		}
	}
	req->op = json_string_value(op);
	req->args = args;
	return 0;
}

int proto_arg_string(json_t *args, const char *name, bool required, const char **out,
		     char *err, size_t errlen)
{
	json_t *value = args ? json_object_get(args, name) : NULL;

	*out = NULL;
	if (!value) {
		if (!required)
			return 0;
		set_error(err, errlen, "%s is missing", name);
		return -EINVAL;
	}
	if (!json_is_string(value)) {
		set_error(err, errlen, "%s must be text", name);
		return -EINVAL;
	}
	if (strlen(json_string_value(value)) != json_string_length(value)) {
		set_error(err, errlen, "%s must not hold a NUL character", name);
		return -EINVAL;
	}
	*out = json_string_value(value);
	return 0;
}

int proto_arg_int(json_t *args, const char *name, bool required, long long min, long long max,
		  long long *out, char *err, size_t errlen)
{
	json_t *value = args ? json_object_get(args, name) : NULL;

	if (!value) {
		if (!required)
			return 0;
		set_error(err, errlen, "%s is missing", name);
		return -EINVAL;
	}
	if (!json_is_integer(value)) {
		set_error(err, errlen, "%s must be a whole number", name);
		return -EINVAL;
	}
	if (json_integer_value(value) < min || json_integer_value(value) > max) {
		set_error(err, errlen, "%s must be between %lld and %lld", name, min, max);
		return -ERANGE;
	}
	*out = json_integer_value(value);
	return 0;
}

int proto_arg_bool(json_t *args, const char *name, bool *out, char *err, size_t errlen)
{
	json_t *value = args ? json_object_get(args, name) : NULL;

	*out = false;
	if (!value)
		return 0;
	if (!json_is_boolean(value)) {
		set_error(err, errlen, "%s must be true or false", name);
		return -EINVAL;
	}
	*out = json_is_true(value);
	return 0;
}

int proto_args_only(json_t *args, const char *const allowed[], char *err, size_t errlen)
{
	const char *key;
	json_t *value;

	if (!args)
		return 0;
	json_object_foreach(args, key, value) {
		bool known = false;

		for (size_t i = 0; allowed[i]; i++)
			if (strcmp(key, allowed[i]) == 0)
				known = true;
		if (!known) {
			set_error(err, errlen, "unknown argument \"%.40s\"", key);
			return -EINVAL;
		}
	}
	return 0;
}

json_t *proto_request_new(const char *op, json_t *args)
{
	return json_pack("{s:i, s:s, s:o}", "v", PROTO_VERSION, "op", op,
			 "args", args ? args : json_object());
}

json_t *proto_progress_new(const char *text)
{
	return json_pack("{s:s}", "progress", text);
}

json_t *proto_ok_new(json_t *result)
{
	return json_pack("{s:b, s:o}", "ok", 1, "result", result ? result : json_object());
}

json_t *proto_error_new(const char *code, const char *text)
{
	return json_pack("{s:b, s:s, s:s}", "ok", 0, "error", text, "code", code);
}
