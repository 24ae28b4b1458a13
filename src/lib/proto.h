/* SPDX-License-Identifier: MIT */
/*
 * The agent's socket protocol, version 1.
 *
 * Transport: a Unix stream socket (default /run/gpubox/gpubox.sock).  The
 * agent learns who is asking from SO_PEERCRED, never from the message.
 *
 * Framing: every message is a 4-byte big-endian length followed by that
 * many bytes of UTF-8 JSON holding one object.  A frame larger than
 * PROTO_FRAME_MAX is a protocol error and closes the connection.
 *
 * Request (client -> agent), one per connection:
 *	{ "v": 1, "op": "<operation>", "args": { ... } }
 * An unknown version or operation, a missing or mistyped argument, or an
 * unknown argument is refused with an error reply.
 *
 * Replies (agent -> client): zero or more progress messages, then exactly
 * one final message, after which the agent closes the connection:
 *	{ "progress": "Building template default@1: Retrieving packages" }
 *	{ "ok": true,  "result": { ... } }
 *	{ "ok": false, "error": "<one sentence: what is wrong, what to do>",
 *	  "code": "<usage|denied|notfound|conflict|failed|unavailable>" }
 * A final message to a member may carry "notices": ["<sentence>", ...],
 * what the agent kept for the member's next request (each sent once).
 *
 * Operations.  "member" is optional everywhere a member is meant: it
 * defaults to the caller, and only an admin may name another member.
 *	version                                  -> {version, protocol, server, admin, member}
 *	start        {member?}                   -> {member, state, host, port, user, address, template}
 *	stop         {member?}                   -> {member, state}
 *	status       {member?}                   -> {member, server, state, template, address, ssh_port,
 *	                                             host, hostname, uid, forwards[], template_update?}
 *	rebuild      {member?, confirm: true, keep_home?}
 *	                                         -> {member, state, template} (a running container
 *	                                             is started again: start's result)
 *	snapshot_create {member?, name?, freeze?, local?} -> {name, kind, member, template,
 *	                                             created, size, content_size, sha256, frozen}
 *	snapshot_ls  {member?}                   -> {member, snapshots: [{name, kind, created, size,
 *	                                             content_size, template, server}], used, quota,
 *	                                             max_count}
 *	snapshot_rm  {member?, name}             -> {member, name}
 *	restore      {member?, name, confirm: true} -> start's result + {restored}
 *	port_add     {member?, port, host_port?} -> {host_port, container_port, host}
 *	port_rm      {member?, port}             -> {}
 *	port_ls      {member?}                   -> {forwards: [{host_port, container_port}], host, ssh_port}
 * Admin only (uid 0, or a member of the configured admin group):
 *	user_add     {name, keys: [line, ...]}   -> {name, uid, subid_base, ssh_port, address, host}
 *	user_rm      {name, purge: bool}         -> {name, kept?: path}
 *	user_ls                                  -> {users: [...]}
 *	template_build {name?, release?}         -> {ref, cached: bool, rootfs, size}
 *	template_ls                              -> {templates: [...]}
 *	template_rm  {ref}                       -> {ref}
 *	ls                                       -> {containers: [status result, ...]}
 * Anyone (their own entries; admins everyone's, or one member's):
 *	log          {member?, since?, limit?, own?} -> {server, entries: [...]}
 * docs/protocol.md describes every field.
 */
#ifndef GPUBOX_PROTO_H
#define GPUBOX_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#define PROTO_VERSION 1
#define PROTO_FRAME_MAX (1024 * 1024)

/* Error codes carried in "code"; the CLI maps them to exit status. */
#define PROTO_E_USAGE       "usage"
#define PROTO_E_DENIED      "denied"
#define PROTO_E_NOTFOUND    "notfound"
#define PROTO_E_CONFLICT    "conflict"
#define PROTO_E_FAILED      "failed"
#define PROTO_E_UNAVAILABLE "unavailable"

/* Write one framed message.  0 or a negative errno. */
int proto_send(int fd, json_t *msg);
/* The same without ever waiting on a peer that does not read: -EAGAIN
 * (nothing written) when the socket has no room for it now, -EPIPE when
 * only part of it went out (the stream is then unusable). */
int proto_send_nowait(int fd, json_t *msg);

/*
 * Read one framed message and parse it as a JSON object.  -EPIPE on a
 * clean end of stream before any byte, -EPROTO on a bad frame or bad JSON.
 */
int proto_recv(int fd, json_t **msg);
/* The same, but the whole message must have come by deadline_ms (a
 * CLOCK_MONOTONIC time in ms, from proto_deadline()): -ETIMEDOUT. */
int proto_recv_until(int fd, json_t **msg, long long deadline_ms);
/* CLOCK_MONOTONIC now plus ms, in ms. */
long long proto_deadline(unsigned ms);

/* Decode a frame's payload (the part after the length): the fuzz target's entry. */
int proto_decode(const char *payload, size_t len, json_t **msg);

struct proto_request {
	const char *op;       /* borrowed from the message */
	json_t *args;         /* borrowed; an object, possibly empty */
};

/* Check version, op and args' shape.  Error sentence into err. */
int proto_parse_request(json_t *msg, struct proto_request *req, char *err, size_t errlen);

/* Typed argument access with a clear error: "port must be a number". */
int proto_arg_string(json_t *args, const char *name, bool required, const char **out,
		     char *err, size_t errlen);
int proto_arg_int(json_t *args, const char *name, bool required, long long min, long long max,
		  long long *out, char *err, size_t errlen);
int proto_arg_bool(json_t *args, const char *name, bool *out, char *err, size_t errlen);
/* Refuse arguments other than the listed ones (NULL-terminated). */
int proto_args_only(json_t *args, const char *const allowed[], char *err, size_t errlen);

/* Building messages. */
json_t *proto_request_new(const char *op, json_t *args /* stolen, may be NULL */);
json_t *proto_progress_new(const char *text);
json_t *proto_ok_new(json_t *result /* stolen, may be NULL */);
json_t *proto_error_new(const char *code, const char *text);

#endif
