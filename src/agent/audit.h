/* SPDX-License-Identifier: MIT */
/*
 * The audit log: who asked the agent to change what, and what came of it.
 * Entries are kept in their own SQLite file (<state_dir>/audit.db, 0600,
 * never in state.db: it is a record of the past, not of what is) for
 * audit_retention, and each one is also logged as one line
 * ("audit: by=alice uid=20001 ... result=ok"), which under systemd ends
 * up in the journal.  ops_audit.c decides what a request leaves here;
 * hubsync.c records the agent's own changes on the hub's behalf.
 *
 * Nothing a client sends can break the line or hide in it: every value
 * that is not a plain word is quoted with its control and non-ASCII bytes
 * escaped.  Arguments are kept with their secrets replaced (see
 * audit_redact()) and cut to a bounded size.
 *
 * One caller cannot fill the disk: entries of members and other non-admin
 * callers are admitted at AUDIT_BURST at once, then one per
 * AUDIT_REFILL_MS; what is over is counted and written as one
 * "suppressed" entry of that caller when it may write again.  Admins and
 * the hub are not limited.
 */
#ifndef GPUBOX_AGENT_AUDIT_H
#define GPUBOX_AGENT_AUDIT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define AUDIT_BURST 60                 /* entries of one caller at once */
#define AUDIT_REFILL_MS 10000LL        /* then one more per this */
#define AUDIT_LIMIT_DEFAULT 100u       /* entries a query returns */
#define AUDIT_LIMIT_MAX 10000u
#define AUDIT_TARGET_MAX 160           /* bytes of a target's text */
#define AUDIT_ARGS_MAX 4096            /* bytes of the arguments' JSON text */

/* One entry.  Pointers are the caller's and only read. */
struct audit_entry {
	long long time_ms;           /* when the request arrived (unix ms) */
	long long duration_ms;       /* how long it took */
	bool by_hub;                 /* the agent's own change, from the hub's list */
	long long uid;               /* the caller's uid (SO_PEERCRED); -1 for the hub */
	const char *member;          /* the caller's member name; NULL when none */
	const char *identity;        /* that member's identity (state.h); NULL when none */
	bool admin;
	bool guest;                  /* asked from inside the member's container */
	const char *op;
	const char *target;          /* what it acts on (audit_target()); NULL: nothing named */
	json_t *args;                /* as the client sent them; NULL: none */
	const char *result;          /* "ok", or the error's code (PROTO_E_*) */
	const char *error;           /* the error's sentence; NULL when ok */
};

struct audit;

/* The time now, unix ms. */
long long audit_now_ms(void);

/* Open (or create, 0600) the file; retention_seconds 0 keeps everything.
 * Rows older than the retention are deleted now and every so many
 * entries. */
int audit_open(const char *path, long long retention_seconds, struct audit **out);
/* Write what is still counted as suppressed.  Accepts NULL. */
void audit_flush(struct audit *audit);
/* audit_flush(), then close.  Accepts NULL. */
void audit_close(struct audit *audit);

/* Log the entry's line and store it (audit NULL: the line only).  Errors
 * are logged: a request is never failed for its audit entry. */
void audit_record(struct audit *audit, const struct audit_entry *e);

/* Delete the entries older than the retention as of now_ms; returns how
 * many, or a negative errno. */
int audit_prune(struct audit *audit, long long now_ms);

enum audit_scope {
	AUDIT_ALL,                   /* every entry (admins) */
	AUDIT_OF_MEMBER,             /* member's, whoever had the name (admins' --member) */
	AUDIT_OWN_MEMBER,            /* this member's own: name and identity */
	AUDIT_OWN_UID,               /* a caller without a member: its uid's */
};

struct audit_filter {
	enum audit_scope scope;
	const char *member;
	const char *identity;
	long long uid;
	long long since_ms;          /* 0: from the oldest kept */
	unsigned limit;              /* the newest this many; 0: AUDIT_LIMIT_DEFAULT */
};

/* The entries matching, oldest first, as a new JSON array of objects
 * {id, time, duration_ms, by, uid, member, admin, guest, op, target, args,
 * result, error?}. */
int audit_query(struct audit *audit, const struct audit_filter *filter, json_t **entries);

/* ---- the pure parts (tested alone) ---------------------------------------- */

/*
 * A copy of args fit to keep: the value of a key that names a secret
 * (token, password, secret, private key...) and any string holding a
 * private key become "(hidden)"; long strings, arrays, objects and deep
 * nesting are cut.  NULL when args is NULL or memory ran out.
 */
json_t *audit_redact(json_t *args);

/*
 * value as one logfmt value into out (always NUL-terminated, cut to fit):
 * bare when it is a non-empty plain word, else in double quotes with '"'
 * and '\\' escaped, \n \r \t as such, and every other control, DEL and
 * non-ASCII byte as \xHH.  Returns out.
 */
char *audit_escape(const char *value, char *out, size_t outlen);

/*
 * What a request acts on, from the arguments named in spec (blank
 * separated; NULL: "member"): the first as its bare value, the others
 * as name=value, those absent left out.  An absent "member" is
 * own_member (the caller's, may be NULL).  "alice port=8888".
 */
void audit_target(const char *spec, json_t *args, const char *own_member, char *buf,
		  size_t len);

/* Who an entry is by, as people read it: "hub", the member's name,
 * "root" or "uid N". */
void audit_by_name(bool by_hub, const char *member, long long uid, char *buf, size_t len);

/* One caller's allowance: AUDIT_BURST entries, one more per
 * AUDIT_REFILL_MS.  A zeroed one is full. */
struct audit_rate {
	bool started;
	unsigned tokens;
	long long refilled_ms;
};

/* Take one entry's allowance at now_ms: false when there is none left. */
bool audit_rate_take(struct audit_rate *rate, long long now_ms);
/* Whether the allowance is whole again (the slot may be reused). */
bool audit_rate_full(const struct audit_rate *rate, long long now_ms);

#endif
