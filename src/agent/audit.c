/* SPDX-License-Identifier: MIT */
/*
 * The audit log (audit.h): entries into <state_dir>/audit.db and one log
 * line each.  The schema is an interface (the system tests back-date rows
 * with the sqlite3 shell); times are unix milliseconds:
 *
 *   audit(id, t, duration_ms, by_hub, uid, member, identity, admin, guest,
 *         op, target, args, result, error)
 *       uid: NULL for the hub and for the callers counted together when
 *       too many were limited at once; member, identity: the caller's,
 *       NULL when none; args: compact JSON, redacted; result: "ok", an
 *       error code, or "suppressed" for the count of a caller's entries
 *       over its rate; error: the sentence, NULL when ok.
 *
 * One mutex orders the entries, the callers' allowances and the kept
 * statements: recording is a few microseconds of work and one WAL commit
 * without fsync (synchronous = NORMAL).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "audit.h"
#include "state/state.h"
#include "cleanup.h"
#include "log.h"
#include "sqldb.h"
#include "validate.h"
#include "banned.h"

#define AUDIT_STRING_MAX 256        /* bytes of one string argument kept */
#define AUDIT_ITEMS_MAX 32          /* elements of an array, keys of an object */
#define AUDIT_DEPTH_MAX 4
#define AUDIT_VALUE_MAX 64          /* bytes of one value in a target */
#define AUDIT_LINE_VALUE_MAX 600    /* bytes of the arguments and the error in a log line */
#define AUDIT_PRUNE_EVERY 1000      /* entries between two prunes */
#define AUDIT_SLOTS 128             /* callers whose allowance is followed */
#define AUDIT_HIDDEN "(hidden)"

/* The schema's version (PRAGMA user_version, see sqldb.h). */
#define AUDIT_SCHEMA_VERSION 1

static const char audit_schema[] =
	"CREATE TABLE IF NOT EXISTS audit ("
	"  id INTEGER PRIMARY KEY,"
	"  t INTEGER NOT NULL,"
	"  duration_ms INTEGER NOT NULL DEFAULT 0,"
	"  by_hub INTEGER NOT NULL DEFAULT 0,"
	"  uid INTEGER,"
	"  member TEXT,"
	"  identity TEXT,"
	"  admin INTEGER NOT NULL DEFAULT 0,"
	"  guest INTEGER NOT NULL DEFAULT 0,"
	"  op TEXT NOT NULL,"
	"  target TEXT,"
	"  args TEXT,"
	"  result TEXT NOT NULL,"
	"  error TEXT);"
	"CREATE INDEX IF NOT EXISTS audit_t ON audit (t);"
	"CREATE INDEX IF NOT EXISTS audit_member ON audit (member, t);";

#define AUDIT_COLUMNS \
	"id, t, duration_ms, by_hub, uid, member, admin, guest, op, target, args, result, error"
#define AUDIT_NEWEST " ORDER BY id DESC LIMIT ?"

enum audit_stmt_id {
	AUDIT_INSERT, AUDIT_PRUNE,
	AUDIT_SELECT_ALL, AUDIT_SELECT_MEMBER, AUDIT_SELECT_OWN_MEMBER, AUDIT_SELECT_OWN_UID,
	AUDIT_STMT_COUNT
};

static const char *const audit_sql[AUDIT_STMT_COUNT] = {
	[AUDIT_INSERT] =
		"INSERT INTO audit (t, duration_ms, by_hub, uid, member, identity, admin, guest, op,"
		" target, args, result, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
	[AUDIT_PRUNE] = "DELETE FROM audit WHERE t < ?",
	[AUDIT_SELECT_ALL] = "SELECT " AUDIT_COLUMNS " FROM audit WHERE t >= ?" AUDIT_NEWEST,
	[AUDIT_SELECT_MEMBER] =
		"SELECT " AUDIT_COLUMNS " FROM audit WHERE member = ? AND t >= ?" AUDIT_NEWEST,
	/* A later member of the same name has another identity. */
	[AUDIT_SELECT_OWN_MEMBER] =
		"SELECT " AUDIT_COLUMNS " FROM audit WHERE member = ? AND identity IS ? AND t >= ?"
		AUDIT_NEWEST,
	[AUDIT_SELECT_OWN_UID] =
		"SELECT " AUDIT_COLUMNS " FROM audit WHERE uid = ? AND member IS NULL AND by_hub = 0"
		" AND t >= ?" AUDIT_NEWEST,
};

/* One limited caller: a uid of the host, or a container as a whole. */
struct audit_slot {
	bool used;
	bool guest;
	long long uid;
	char member[MEMBER_NAME_SIZE];
	char identity[MEMBER_IDENTITY_SIZE];
	struct audit_rate rate;
	unsigned long long suppressed, refused;
	long long first_ms, last_ms;
};

struct audit {
	struct sqldb *sql;
	long long retention_ms;             /* 0: forever */
	pthread_mutex_t lock;
	unsigned since_prune;
	struct audit_slot slots[AUDIT_SLOTS];
	struct audit_slot others;           /* everyone over when every slot is taken */
};

long long audit_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the pure parts ---------------------------------------------------------- */

static bool audit_secret_name(const char *key)
{
	static const char *const words[] = { "token", "pass", "secret", "private", "credential",
					     "cookie", "session", "auth", NULL };
	char lower[64];
	size_t i;

	for (i = 0; key[i] && i < sizeof(lower) - 1; i++)
		lower[i] = (char)(key[i] >= 'A' && key[i] <= 'Z' ? key[i] - 'A' + 'a' : key[i]);
	lower[i] = '\0';
	for (i = 0; words[i]; i++)
		if (strstr(lower, words[i]))
			return true;
	return false;
}

/* The length of text cut to at most max bytes, at a UTF-8 character's start. */
static size_t audit_utf8_cut(const char *text, size_t len, size_t max)
{
	if (len <= max)
		return len;
	while (max > 0 && ((unsigned char)text[max] & 0xc0) == 0x80)
		max--;
	return max;
}

/* An SSH public key as its type, fingerprint and comment: what an admin
 * compares, in a tenth of the room.  NULL when text is no key. */
static json_t *audit_key_summary(const char *text, size_t len)
{
	__do_free struct ssh_key *key = NULL;
	char err[64], summary[512];

	if (len < 64 || len > SSH_KEY_MAX || !memchr(text, ' ', len) || strlen(text) != len)
		return NULL;
	key = calloc(1, sizeof(*key));
	if (!key || ssh_key_parse(text, key, err, sizeof(err)) < 0)
		return NULL;
	snprintf(summary, sizeof(summary), "%s %s%s%s", key->type, key->fingerprint,
		 key->comment[0] ? " " : "", key->comment);
	return json_string(summary);
}

static json_t *audit_redact_string(const char *text, size_t len)
{
	json_t *key;
	size_t cut;
	char note[32];
	__do_free char *shown = NULL;

	if (memmem(text, len, "PRIVATE KEY", strlen("PRIVATE KEY")))
		return json_string(AUDIT_HIDDEN);
	key = audit_key_summary(text, len);
	if (key)
		return key;
	if (len <= AUDIT_STRING_MAX)
		return json_stringn(text, len);
	cut = audit_utf8_cut(text, len, AUDIT_STRING_MAX);
	snprintf(note, sizeof(note), "...(%zu bytes)", len);
	shown = malloc(cut + strlen(note) + 1);
	if (!shown)
		return NULL;
	memcpy(shown, text, cut);
	memcpy(shown + cut, note, strlen(note) + 1);
	return json_string(shown);
}

static json_t *audit_redact_value(json_t *value, int depth);

static json_t *audit_redact_array(json_t *array, int depth)
{
	json_t *out = json_array(), *item;
	size_t i;

	json_array_foreach(array, i, item) {
		if (i == AUDIT_ITEMS_MAX) {
			char more[48];

			snprintf(more, sizeof(more), "(%zu more)", json_array_size(array) - i);
			json_array_append_new(out, json_string(more));
			break;
		}
		json_array_append_new(out, audit_redact_value(item, depth + 1));
	}
	return out;
}

static json_t *audit_redact_object(json_t *object, int depth)
{
	json_t *out = json_object(), *value;
	const char *key;
	size_t n = 0;

	json_object_foreach(object, key, value) {
		if (n++ == AUDIT_ITEMS_MAX) {
			json_object_set_new(out, "(more)",
					    json_integer((json_int_t)(json_object_size(object) - AUDIT_ITEMS_MAX)));
			break;
		}
		json_object_set_new(out, key, audit_secret_name(key) ? json_string(AUDIT_HIDDEN)
								     : audit_redact_value(value, depth + 1));
	}
	return out;
}

static json_t *audit_redact_value(json_t *value, int depth)
{
	if (json_is_string(value))
		return audit_redact_string(json_string_value(value), json_string_length(value));
	if ((json_is_array(value) || json_is_object(value)) && depth >= AUDIT_DEPTH_MAX)
		return json_string("(nested)");
	if (json_is_array(value))
		return audit_redact_array(value, depth);
	if (json_is_object(value))
		return audit_redact_object(value, depth);
	return json_copy(value);
}

json_t *audit_redact(json_t *args)
{
	return args ? audit_redact_value(args, 0) : NULL;
}

static bool audit_plain_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("-_.:/@+,", c));
}

/* One byte as it appears inside quotes. */
static void audit_escape_byte(unsigned char c, char out[5])
{
	if (c == '"' || c == '\\')
		snprintf(out, 5, "\\%c", c);
	else if (c == '\n')
		snprintf(out, 5, "\\n");
	else if (c == '\r')
		snprintf(out, 5, "\\r");
	else if (c == '\t')
		snprintf(out, 5, "\\t");
	else if (c < 0x20 || c >= 0x7f)
		snprintf(out, 5, "\\x%02x", c);
	else
		snprintf(out, 5, "%c", c);
}

char *audit_escape(const char *value, char *out, size_t outlen)
{
	const char *text = value ? value : "";
	bool plain = text[0] != '\0';
	size_t used = 0;

	if (outlen < 6) {
		if (outlen)
			out[0] = '\0';
		return out;
	}
	for (const char *p = text; *p && plain; p++)
		plain = audit_plain_byte((unsigned char)*p);
	if (plain && strlen(text) < outlen) {
		snprintf(out, outlen, "%s", text);
		return out;
	}
	out[used++] = '"';
	for (const char *p = text; *p; p++) {
		char one[5];
		size_t n;

		audit_escape_byte((unsigned char)*p, one);
		n = strlen(one);
		/* Room for this, and for "..." and the closing quote after it. */
		if (used + n + 5 > outlen) {
			memcpy(out + used, "...", 3);
			used += 3;
			break;
		}
		memcpy(out + used, one, n);
		used += n;
	}
	out[used++] = '"';
	out[used] = '\0';
	return out;
}

/* A scalar argument as text; false for anything else or nothing. */
static bool audit_value_text(json_t *value, char *buf, size_t len)
{
	if (json_is_string(value))
		snprintf(buf, len, "%.*s", AUDIT_VALUE_MAX, json_string_value(value));
	else if (json_is_integer(value))
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(value));
	else if (json_is_boolean(value))
		snprintf(buf, len, "%s", json_is_true(value) ? "true" : "false");
	else
		return false;
	return true;
}

void audit_target(const char *spec, json_t *args, const char *own_member, char *buf, size_t len)
{
	const char *p = spec ? spec : "member";
	size_t used = 0;

	buf[0] = '\0';
	for (p += strspn(p, " "); *p && used < len; p += strspn(p, " ")) {
		size_t n = strcspn(p, " ");
		char name[32], value[AUDIT_VALUE_MAX + 1];
		int w;

		snprintf(name, sizeof(name), "%.*s", (int)n, p);
		p += n;
		if (!audit_value_text(json_object_get(args, name), value, sizeof(value))) {
			if (strcmp(name, "member") != 0 || !own_member)
				continue;
			snprintf(value, sizeof(value), "%s", own_member);
		}
		w = used ? snprintf(buf + used, len - used, " %s=%s", name, value)
			 : snprintf(buf, len, "%s", value);
		if (w < 0)
			break;
		used += (size_t)w;
	}
}

void audit_by_name(bool by_hub, const char *member, long long uid, char *buf, size_t len)
{
	if (by_hub)
		snprintf(buf, len, "hub");
	else if (member && *member)
		snprintf(buf, len, "%s", member);
	else if (uid == 0)
		snprintf(buf, len, "root");
	else if (uid > 0)
		snprintf(buf, len, "uid %lld", uid);
	else
		snprintf(buf, len, "others");
}

static void audit_rate_refill(struct audit_rate *rate, long long now_ms)
{
	long long periods;

	if (!rate->started || now_ms < rate->refilled_ms) {
		/* New, or the clock went back: whole again, counting from now. */
		if (!rate->started)
			rate->tokens = AUDIT_BURST;
		rate->started = true;
		rate->refilled_ms = now_ms;
		return;
	}
	periods = (now_ms - rate->refilled_ms) / AUDIT_REFILL_MS;
	if (periods >= (long long)(AUDIT_BURST - rate->tokens)) {
		rate->tokens = AUDIT_BURST;
		rate->refilled_ms = now_ms;
	} else {
		rate->tokens += (unsigned)periods;
		rate->refilled_ms += periods * AUDIT_REFILL_MS;
	}
}

bool audit_rate_take(struct audit_rate *rate, long long now_ms)
{
	audit_rate_refill(rate, now_ms);
	if (rate->tokens == 0)
		return false;
	rate->tokens--;
	return true;
}

bool audit_rate_full(const struct audit_rate *rate, long long now_ms)
{
	struct audit_rate copy = *rate;

	audit_rate_refill(&copy, now_ms);
	return copy.tokens == AUDIT_BURST;
}

/* ---- one entry: the line and the row ------------------------------------------ */

/* The arguments as kept: redacted compact JSON, bounded; NULL for none. */
static char *audit_args_text(json_t *args)
{
	__do_json json_t *redacted = audit_redact(args);
	char *text;

	if (!redacted)
		return NULL;
	text = json_dumps(redacted, JSON_COMPACT | JSON_ENSURE_ASCII);
	if (text && strlen(text) > AUDIT_ARGS_MAX) {
		char note[64];

		snprintf(note, sizeof(note), "{\"(too long)\":%zu}", strlen(text));
		free(text);
		text = strdup(note);
	}
	return text;
}

static void audit_log_line(const struct audit_entry *e, const char *args)
{
	char by[64], by_text[80], member[80], op[160], target[4 * AUDIT_TARGET_MAX + 8];
	char result[80], args_text[AUDIT_LINE_VALUE_MAX], error[AUDIT_LINE_VALUE_MAX], uid[24];

	if (e->by_hub || e->uid < 0)
		snprintf(uid, sizeof(uid), "-");
	else
		snprintf(uid, sizeof(uid), "%lld", e->uid);
	audit_by_name(e->by_hub, e->member, e->uid, by, sizeof(by));
	audit_escape(by, by_text, sizeof(by_text));
	audit_escape(e->member ? e->member : "-", member, sizeof(member));
	audit_escape(e->op, op, sizeof(op));
	audit_escape(e->target && *e->target ? e->target : "-", target, sizeof(target));
	audit_escape(e->result, result, sizeof(result));
	audit_escape(args ? args : "{}", args_text, sizeof(args_text));
	audit_escape(e->error, error, sizeof(error));
	log_info("audit: by=%s uid=%s member=%s admin=%s guest=%s op=%s target=%s result=%s ms=%lld args=%s%s%s",
		 by_text, uid, member, e->admin ? "yes" : "no", e->guest ? "yes" : "no", op,
		 target, result, e->duration_ms, args_text, e->error ? " error=" : "",
		 e->error ? error : "");
}

/* The caller holds audit->lock. */
static void audit_store(struct audit *audit, const struct audit_entry *e, const char *args)
{
	__do_unlock struct sqldb *locked = sqldb_lock(audit->sql);

	if (sqldb_exec(audit->sql, AUDIT_INSERT, "audit entry", "iiinttiittttt", e->time_ms,
		       e->duration_ms, (long long)e->by_hub, e->by_hub ? -1LL : e->uid, e->member,
		       e->identity && *e->identity ? e->identity : NULL, (long long)e->admin,
		       (long long)e->guest, e->op, e->target && *e->target ? e->target : NULL, args,
		       e->result, e->error) < 0)
		log_error("audit: the entry above could not be stored in the audit log");
}

static int audit_prune_locked(struct audit *audit, long long now_ms)
{
	__do_unlock struct sqldb *locked = sqldb_lock(audit->sql);
	int ret;

	audit->since_prune = 0;
	if (!audit->retention_ms)
		return 0;
	ret = sqldb_exec(audit->sql, AUDIT_PRUNE, "audit prune", "i", now_ms - audit->retention_ms);
	return ret < 0 ? ret : sqldb_changes(audit->sql);
}

/* The line, the row, and now and then a prune.  The caller holds audit->lock. */
static void audit_write(struct audit *audit, const struct audit_entry *e, const char *args)
{
	audit_log_line(e, args);
	audit_store(audit, e, args);
	if (++audit->since_prune >= AUDIT_PRUNE_EVERY)
		audit_prune_locked(audit, audit_now_ms());
}

/* ---- the callers' allowances ------------------------------------------------- */

static bool audit_slot_is(const struct audit_slot *s, const struct audit_entry *e)
{
	if (!s->used || s->guest != e->guest)
		return false;
	return e->guest ? strcmp(s->member, e->member ? e->member : "") == 0 : s->uid == e->uid;
}

/* The caller's slot: its own, a free one, or one whose allowance is whole
 * and nothing counted (as good as new); else the one shared by the rest. */
static struct audit_slot *audit_slot_for(struct audit *audit, const struct audit_entry *e,
					 long long now_ms)
{
	struct audit_slot *spare = NULL;

	for (size_t i = 0; i < AUDIT_SLOTS; i++) {
		struct audit_slot *s = &audit->slots[i];

		if (audit_slot_is(s, e))
			return s;
		if (!spare && (!s->used || (!s->suppressed && audit_rate_full(&s->rate, now_ms))))
			spare = s;
	}
	if (!spare)
		return &audit->others;
	*spare = (struct audit_slot){ .used = true, .guest = e->guest, .uid = e->uid };
	return spare;
}

static void audit_count_suppressed(struct audit_slot *s, const struct audit_entry *e,
				   long long now_ms)
{
	if (!s->suppressed)
		s->first_ms = e->time_ms;
	s->last_ms = now_ms;
	s->suppressed++;
	if (strcmp(e->result, "ok") != 0)
		s->refused++;
	/* The summary goes to the caller's own log too. */
	if (e->member)
		snprintf(s->member, sizeof(s->member), "%s", e->member);
	snprintf(s->identity, sizeof(s->identity), "%s", e->identity ? e->identity : "");
}

/* One entry for what a caller did over its allowance. */
static void audit_write_suppressed(struct audit *audit, struct audit_slot *s)
{
	__do_json json_t *args = NULL;
	__do_free char *args_text = NULL;
	char error[256];
	bool shared = s == &audit->others;
	struct audit_entry e = {
		.time_ms = s->first_ms, .duration_ms = s->last_ms - s->first_ms,
		.uid = shared ? -1 : s->uid, .member = !shared && s->member[0] ? s->member : NULL,
		.identity = shared ? NULL : s->identity, .guest = !shared && s->guest,
		.op = "suppressed", .result = "suppressed", .error = error,
	};

	snprintf(error, sizeof(error),
		 "%llu more requests (%llu of them refused) were not recorded one by one: over the audit log's allowance of %d at once and one per %lld seconds",
		 s->suppressed, s->refused, AUDIT_BURST, AUDIT_REFILL_MS / 1000);
	args = json_pack("{s:I, s:I}", "requests", (json_int_t)s->suppressed, "refused",
			 (json_int_t)s->refused);
	args_text = args ? json_dumps(args, JSON_COMPACT) : NULL;
	audit_write(audit, &e, args_text);
	s->suppressed = s->refused = 0;
}

/* Whether the entry may be written now.  What is counted as suppressed
 * is written first, on an allowance of its own, so that no caller
 * writes faster than its allowance however it mixes its requests. */
static bool audit_admit(struct audit *audit, const struct audit_entry *e)
{
	long long now_ms = e->time_ms + e->duration_ms;
	struct audit_slot *s;

	if (e->by_hub || e->admin)
		return true;
	s = audit_slot_for(audit, e, now_ms);
	if (s->suppressed && audit_rate_take(&s->rate, now_ms))
		audit_write_suppressed(audit, s);
	if (!s->suppressed && audit_rate_take(&s->rate, now_ms))
		return true;
	audit_count_suppressed(s, e, now_ms);
	return false;
}

/* What is counted and may be written at now_ms (everything when force:
 * at close). */
static void audit_flush_suppressed(struct audit *audit, long long now_ms, bool force)
{
	for (size_t i = 0; i <= AUDIT_SLOTS; i++) {
		struct audit_slot *s = i < AUDIT_SLOTS ? &audit->slots[i] : &audit->others;

		if (s->suppressed && (force || audit_rate_take(&s->rate, now_ms)))
			audit_write_suppressed(audit, s);
	}
}

void audit_record(struct audit *audit, const struct audit_entry *e)
{
	__do_free char *args = audit_args_text(e->args);

	if (!audit) {
		audit_log_line(e, args);
		return;
	}
	pthread_mutex_lock(&audit->lock);
	if (audit_admit(audit, e))
		audit_write(audit, e, args);
	pthread_mutex_unlock(&audit->lock);
}

int audit_prune(struct audit *audit, long long now_ms)
{
	int ret;

	pthread_mutex_lock(&audit->lock);
	ret = audit_prune_locked(audit, now_ms);
	pthread_mutex_unlock(&audit->lock);
	return ret;
}

/* ---- open, close ------------------------------------------------------------- */

int audit_open(const char *path, long long retention_seconds, struct audit **out)
{
	/* Who did what is nobody else's business. */
	const struct sqldb_options options = {
		.name = "audit log",
		.flags = SQLDB_WAL | SQLDB_SYNC_NORMAL,
		.mode = 0600,
		.schema = audit_schema,
		.version = AUDIT_SCHEMA_VERSION,
		.sql = audit_sql,
		.nsql = AUDIT_STMT_COUNT,
	};
	__do_free struct audit *audit = calloc(1, sizeof(*audit));
	int ret;

	if (!audit)
		return -ENOMEM;
	ret = sqldb_open(path, &options, &audit->sql);
	if (ret < 0)
		return ret;
	pthread_mutex_init(&audit->lock, NULL);
	audit->others.used = true;
	audit->retention_ms = retention_seconds * 1000;
	ret = audit_prune(audit, audit_now_ms());
	if (ret > 0)
		log_info("audit: %d entr%s older than audit_retention deleted", ret, ret == 1 ? "y" : "ies");
	*out = move_ptr(audit);
	return 0;
}

void audit_flush(struct audit *audit)
{
	if (!audit)
		return;
	pthread_mutex_lock(&audit->lock);
	audit_flush_suppressed(audit, audit_now_ms(), true);
	pthread_mutex_unlock(&audit->lock);
}

void audit_close(struct audit *audit)
{
	if (!audit)
		return;
	audit_flush(audit);
	sqldb_close(audit->sql);
	pthread_mutex_destroy(&audit->lock);
	free(audit);
}

/* ---- queries ---------------------------------------------------------------- */

/* Text from the database as a JSON string: what is not valid UTF-8 (a
 * sentence cut inside a character) escaped. */
static json_t *audit_json_text(const unsigned char *text)
{
	char escaped[4 * AUDIT_ARGS_MAX];
	json_t *s;

	if (!text)
		return json_null();
	s = json_string((const char *)text);
	return s ? s : json_string(audit_escape((const char *)text, escaped, sizeof(escaped)));
}

static json_t *audit_row_args(const unsigned char *text)
{
	json_t *args = text ? json_loads((const char *)text, 0, NULL) : NULL;

	if (!text)
		return json_object();
	return args ? args : audit_json_text(text);
}

static int audit_row_append(sqlite3_stmt *stmt, void *context)
{
	json_t *rows = context, *row;
	const unsigned char *member = sqlite3_column_text(stmt, 5);
	long long uid = sqlite3_column_type(stmt, 4) == SQLITE_NULL ? -1 : sqlite3_column_int64(stmt, 4);
	bool by_hub = sqlite3_column_int(stmt, 3) != 0;
	char by[64];

	audit_by_name(by_hub, (const char *)member, uid, by, sizeof(by));
	row = json_pack("{s:I, s:I, s:I, s:s, s:o, s:o, s:b, s:b, s:o, s:o, s:o, s:o}",
			"id", (json_int_t)sqlite3_column_int64(stmt, 0),
			"time", (json_int_t)sqlite3_column_int64(stmt, 1),
			"duration_ms", (json_int_t)sqlite3_column_int64(stmt, 2), "by", by,
			"uid", uid >= 0 ? json_integer(uid) : json_null(),
			"member", audit_json_text(member),
			"admin", sqlite3_column_int(stmt, 6) != 0, "guest", sqlite3_column_int(stmt, 7) != 0,
			"op", audit_json_text(sqlite3_column_text(stmt, 8)),
			"target", audit_json_text(sqlite3_column_text(stmt, 9)),
			"args", audit_row_args(sqlite3_column_text(stmt, 10)),
			"result", audit_json_text(sqlite3_column_text(stmt, 11)));
	if (!row)
		return -ENOMEM;
	if (sqlite3_column_type(stmt, 12) != SQLITE_NULL)
		json_object_set_new(row, "error", audit_json_text(sqlite3_column_text(stmt, 12)));
	return json_array_append_new(rows, row) == 0 ? 0 : -ENOMEM;
}

static sqlite3_stmt *audit_select(struct audit *audit, const struct audit_filter *f)
{
	long long limit = f->limit ? (f->limit > AUDIT_LIMIT_MAX ? AUDIT_LIMIT_MAX : f->limit)
				   : AUDIT_LIMIT_DEFAULT;

	switch (f->scope) {
	case AUDIT_ALL:
		return sqldb_bind(audit->sql, AUDIT_SELECT_ALL, "ii", f->since_ms, limit);
	case AUDIT_OF_MEMBER:
		return sqldb_bind(audit->sql, AUDIT_SELECT_MEMBER, "tii", f->member, f->since_ms, limit);
	case AUDIT_OWN_MEMBER:
		return sqldb_bind(audit->sql, AUDIT_SELECT_OWN_MEMBER, "ttii", f->member,
				  f->identity && *f->identity ? f->identity : NULL, f->since_ms, limit);
	case AUDIT_OWN_UID:
		return sqldb_bind(audit->sql, AUDIT_SELECT_OWN_UID, "iii", f->uid, f->since_ms, limit);
	}
	return NULL;
}

/* The rows came newest first; people read them oldest first. */
static json_t *audit_reversed(json_t *rows)
{
	json_t *out = json_array();
	size_t n = json_array_size(rows);

	for (size_t i = 0; out && i < n; i++)
		json_array_append(out, json_array_get(rows, n - 1 - i));
	return out;
}

int audit_query(struct audit *audit, const struct audit_filter *filter, json_t **entries)
{
	__do_json json_t *rows = json_array();
	int ret;

	if (!rows)
		return -ENOMEM;
	pthread_mutex_lock(&audit->lock);
	/* A flood that has ended is in the answer, not only at the next entry. */
	audit_flush_suppressed(audit, audit_now_ms(), false);
	{
		__do_unlock struct sqldb *locked = sqldb_lock(audit->sql);
		__do_reset sqlite3_stmt *stmt = audit_select(audit, filter);

		ret = sqldb_each_row(audit->sql, stmt, "audit query", audit_row_append, rows);
	}
	pthread_mutex_unlock(&audit->lock);
	if (ret < 0)
		return ret;
	*entries = audit_reversed(rows);
	return *entries ? 0 : -ENOMEM;
}
