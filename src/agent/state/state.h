/* SPDX-License-Identifier: MIT */
/*
 * The agent's state: its SQLite database (members, keys, forwards, GPU
 * sets), members' host accounts, and the allocation of ids and ports.
 * Every function returns 0 or a negative errno unless it says otherwise.
 */
#ifndef GPUBOX_AGENT_STATE_H
#define GPUBOX_AGENT_STATE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "cidr.h"
#include "config.h"
#include "validate.h"

struct agent;

/* ---- ids.c: ids, ports and addresses, never overlapping ---------------- */

struct id_range {
	uint32_t first;
	uint32_t count;
};

/* Lowest value in [range] not in used[]; -ENOSPC if none. */
int ids_lowest_free(const struct config_range *range, const uint32_t *used, size_t nused,
		      uint32_t *out);
/* Lowest 65536-aligned block of SUBID_COUNT ids inside range overlapping
 * none of taken[] and never including id 0. */
int ids_subid_block(const struct config_range *range, const struct id_range *taken,
		      size_t ntaken, uint32_t *out);

/* ---- db.c: the agent's state in SQLite ------------------------------------ */

struct db;

#define MEMBER_IDENTITY_SIZE 33

struct member_record {
	char name[MEMBER_NAME_SIZE];
	uint32_t uid;
	uint32_t subid_base;
	uint32_t ssh_port;
	uint32_t address_index;
	char template_ref[TEMPLATE_REF_SIZE];     /* the template the member's layer sits on; "" before the first start */
	long long created;
	/* 32 hex digits, random, this member's alone: a later member of the
	 * same name has another.  "" only when the database lacks it. */
	char identity[MEMBER_IDENTITY_SIZE];
};

struct forward_record {
	char member[MEMBER_NAME_SIZE];
	uint32_t container_port;
	uint32_t host_port;
};

int db_open(const char *path, struct db **out);
void db_close(struct db *db);
/* A transaction around several changes (the agent serialises writers). */
int db_begin(struct db *db);
int db_commit(struct db *db);
void db_rollback(struct db *db);

int db_member_get(struct db *db, const char *name, struct member_record *out);
int db_member_by_uid(struct db *db, uint32_t uid, struct member_record *out);
int db_member_list(struct db *db, struct member_record **out, size_t *n);
int db_member_insert(struct db *db, const struct member_record *rec);
int db_member_delete(struct db *db, const char *name);
int db_member_set_template(struct db *db, const char *name, const char *ref);

/* Replace the member's keys with lines[0..n). */
int db_keys_set(struct db *db, const char *member, const char *const *lines,
		const char *const *fingerprints, size_t n);
/* The keys as authorized_keys text, each line prefixed with prefix. */
int db_keys_text(struct db *db, const char *member, const char *prefix, char **out);

int db_forward_add(struct db *db, const char *member, uint32_t container_port, uint32_t host_port);
int db_forward_remove(struct db *db, const char *member, uint32_t container_port);
/* member NULL: every member's. */
int db_forward_list(struct db *db, const char *member, struct forward_record **out, size_t *n);
int db_forward_by_host_port(struct db *db, uint32_t host_port, struct forward_record *out);

/* A member's GPU set as text ("all", "none", UUIDs); -ENOENT: none recorded
 * (the configured gpu_default applies). */
int db_gpu_set_get(struct db *db, const char *member, char *out, size_t len);
int db_gpu_set_put(struct db *db, const char *member, const char *gpus);

/* Members the hub manages (hubsync.c); the mark goes with the member. */
int db_hub_member_add(struct db *db, const char *member);
/* 1 when hub-managed, 0 when not, or a negative errno. */
int db_hub_member_is(struct db *db, const char *member);
int db_hub_member_list(struct db *db, char (**names)[MEMBER_NAME_SIZE], size_t *n);

/* An admin's limit for one member: key and value as reslimit.h names and
 * writes them; a temporary one has its end, and what it gives way to then. */
struct limit_record {
	char member[MEMBER_NAME_SIZE];
	char key[16];
	char value[32];
	long long ends;            /* unix seconds; 0: kept until changed */
	bool has_previous;         /* at the end: previous, else the server's default */
	char previous[32];
	bool warned;               /* the member was told it ends soon */
};

/* ends > 0: a temporary value, which at ends gives way to the member's own
 * value before it (kept through several temporary ones), or the default;
 * ends 0: a lasting value (any end is dropped).  In the caller's
 * transaction. */
int db_limit_put(struct db *db, const char *member, const char *key, const char *value,
		 long long ends);
/* -ENOENT: the member had no such limit.  Its end goes with it. */
int db_limit_remove(struct db *db, const char *member, const char *key);
/* member NULL: every member's. */
int db_limit_list(struct db *db, const char *member, struct limit_record **out, size_t *n);
/* The temporary limits whose end is at or before now, the earliest first. */
int db_limit_ended(struct db *db, long long now, struct limit_record **out, size_t *n);
/* The earliest end of any temporary limit; -ENOENT when none has one. */
int db_limit_next_end(struct db *db, long long *out);
/* The member was told that key's temporary value ends at ends (an end
 * set since is told again); -ENOENT when that end is no longer there. */
int db_limit_set_warned(struct db *db, const char *member, const char *key, long long ends);

/* The networks a forwarded port of the member takes connections from
 * (container_port 22: the container's SSH port): "any" or networks as
 * cidr_format() writes them.  n 0: none of its own (the server's
 * forward_default_from applies).  In one transaction; nothing is
 * recorded for a port that is not forwarded (but 22).  Gone with the
 * forward. */
struct forward_from_record {
	char member[MEMBER_NAME_SIZE];
	uint32_t container_port;
	char network[CIDR_TEXT_MAX];
};

int db_forward_from_set(struct db *db, const char *member, uint32_t container_port,
			const char *const *networks, size_t n);
/* member NULL: every member's; in the order they were set. */
int db_forward_from_list(struct db *db, const char *member, struct forward_from_record **out,
			 size_t *n);

/* A GPU reservation (reservations.c), granted or waiting in the queue. */
#define RESERVATION_GPUS_MAX 4096

struct reservation_record {
	long long id;
	char member[MEMBER_NAME_SIZE];
	char gpus[RESERVATION_GPUS_MAX];  /* UUIDs, blank-separated; "" while a request
					   * for any GPUs waits */
	uint32_t count;                   /* GPUs held or asked for */
	bool active;                      /* else queued */
	long long created_ms;             /* unix ms, as all times here */
	long long start_ms;               /* 0 while queued */
	long long until_ms;               /* 0 while queued */
	long long seconds;                /* the duration asked for */
};

/* Add rec (its id is set), in order of arrival. */
int db_reservation_add(struct db *db, struct reservation_record *rec);
/* Every reservation, oldest first. */
int db_reservation_list(struct db *db, struct reservation_record **out, size_t *n);
/* A queued one granted: -ENOENT when it is not queued (any more). */
int db_reservation_activate(struct db *db, long long id, const char *gpus, long long start_ms,
			    long long until_ms);
int db_reservation_extend(struct db *db, long long id, long long until_ms, long long seconds);
/* -ENOENT when there is no such reservation. */
int db_reservation_remove(struct db *db, long long id);

/* ---- member.c: members' host accounts and allocations -------------------- */

struct agent;

/* Allocate ids, port and address, create the host account, record keys. */
int member_add(struct agent *a, const char *name, json_t *keys, struct member_record *out,
	       char *err, size_t errlen);
/* The same with the allocations decided elsewhere (the hub): want's name,
 * uid, subid_base and ssh_port are kept, the address is allocated here.
 * A clash with a local record, a host account or group, an
 * /etc/subuid or /etc/subgid range, or a forwarded port is -EEXIST with a
 * sentence for the admin in err.  Keys (lines and fingerprints as
 * ssh_key_parse() gives them) may be none.  The member is recorded as
 * hub-managed in the same transaction. */
int member_add_allocated(struct agent *a, const struct member_record *want,
			 const char *const *lines, const char *const *fingerprints, size_t nkeys,
			 struct member_record *out, char *err, size_t errlen);
/* Remove the host account and records; the layer is kept unless purge. */
int member_remove(struct agent *a, const char *name, bool purge, char *kept, size_t keptlen,
		  char *err, size_t errlen);
/* Make the host's files match the records: /etc/subuid and /etc/subgid
 * ranges for root, the host login's authorized_keys. */
int member_sync_host(struct agent *a, const struct member_record *rec);

#endif
