/* SPDX-License-Identifier: MIT */
/*
 * Members from the hub: the sync body's parser and the thread that
 * follows the hub.
 */
#ifndef GPUBOX_AGENT_HUBSYNC_H
#define GPUBOX_AGENT_HUBSYNC_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "validate.h"

struct agent;
struct gpubox_config;

/* ---- hubsync.c: members from the hub --------------------------------------- */

/*
 * The hub's GET /api/v1/sync body: {"generation", "server", "members":
 * [{"name", "display_name", "uid", "subid_base", "ssh_port", "disabled",
 * "keys": ["type base64 [comment]", ...]}]}.  Fields this agent does not
 * know are ignored; every field it uses is checked.
 */
#define HUBSYNC_MEMBERS_MAX 10000
#define HUBSYNC_KEYS_MAX 64
#define HUBSYNC_BODY_MAX (16u << 20)

struct hubsync_member {
	char name[MEMBER_NAME_SIZE];
	uint32_t uid;                  /* 1..65535 */
	uint32_t subid_base;           /* 65536-aligned, not 0 */
	uint32_t ssh_port;             /* 1..65535 */
	bool disabled;                 /* then nkeys is 0, whatever the hub sent */
	char **keys;                   /* "type base64 [comment]", as ssh_key_parse() reads them */
	char **fingerprints;
	size_t nkeys;
};

struct hubsync_list {
	uint64_t generation;
	char server[MEMBER_NAME_SIZE];   /* checked as a member name is */
	struct hubsync_member *members;
	size_t n;
};

/* Parse and check a sync body (a pure function: fuzzed).  Names, uids,
 * subid blocks and ports must each appear once.  -EINVAL with one
 * sentence in err; *out is then empty. */
int hubsync_parse(const char *text, size_t len, struct hubsync_list *out, char *err, size_t errlen);
void hubsync_list_free(struct hubsync_list *list);

/*
 * Whether the hub's uid, id block and SSH port for m lie within this
 * server's own uid_range, subid_range (the whole block of 65536 ids) and
 * ssh_port_range: the hub is trusted no further than the admin of this
 * server allows.  -ERANGE with every field outside its range named in err.
 */
int hubsync_check_ranges(const struct gpubox_config *cfg, const struct hubsync_member *m,
			 char *err, size_t errlen);

struct hubsync;

/* Start the thread that follows the hub (*out NULL without hub_url).  A
 * token file that is missing, malformed or open to group or others is
 * -EINVAL: the agent refuses to start. */
int hubsync_start(struct agent *a, struct hubsync **out);
void hubsync_stop(struct hubsync *h);
/* Sync now (the hub's POST /api/v1/poke). */
void hubsync_poke(struct hubsync *h);
/* Whether "Bearer <token>" holds the token the hub calls this server with:
 * the one derived from the token file (hubtoken.h), never the file's own
 * (constant time). */
bool hubsync_token_ok(struct hubsync *h, const char *authorization);
/* The token check alone, for tests: a hubsync holding only the token file
 * path's token (no thread; free() it); the file is checked as at start. */
int hubsync_token_load(const char *path, struct hubsync **out);

#endif
