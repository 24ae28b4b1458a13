/* SPDX-License-Identifier: MIT */
/*
 * The hub's state in one SQLite file, <state_dir>/hub.db (mode 0600, WAL).
 * The hub serves many threads from one connection: every function takes
 * the handle's lock, so the prepared statements kept in it are used by one
 * thread at a time.  The admin commands of gpubox-hub open the same file
 * from another process; WAL and the busy timeout let them meet.
 *
 * Schema (version 2):
 *
 *   meta(key TEXT PRIMARY KEY, value INTEGER)
 *       'schema' = 2; 'generation' = bumped in the same transaction as every
 *       change an agent must see (keys, enabled servers, a member disabled
 *       or enabled, servers added or removed).  Agents send it back as the
 *       sync ETag.
 *   members(name PK, display_name, uid UNIQUE, subid_base UNIQUE,
 *           ssh_port UNIQUE, disabled, admin, created, session_epoch)
 *       Allocated at the first sign-in and never deleted: a disabled
 *       member keeps its ids, so no uid, id block or port is ever given to
 *       someone else (files on the servers stay owned by their owner).
 *       session_epoch moves when the member's sessions must end: disabled,
 *       password changed, admin rights taken away.
 *   passwords(name PK, hash, changed)
 *       Local accounts (auth = local): Argon2id strings from
 *       crypto_pwhash_str().  Independent of members: an account exists
 *       before its first sign-in allocates anything.
 *   keys(id PK AUTOINCREMENT, member -> members, line, fingerprint, added,
 *        UNIQUE(member, fingerprint))
 *       "type base64 [comment]" lines, validated, never with options.
 *   servers(name PK, url, ssh_host, token_sha256 BLOB UNIQUE, token,
 *           last_contact, created)
 *       Agents prove who they are with a bearer token; lookups go by its
 *       SHA-256 only.  The token itself is kept too (column token) because
 *       the hub derives from it the token it calls the agent with (poke,
 *       readings; hubtoken.h): it is as secret as the file, which only the
 *       hub's user can read.
 *   enabled(member -> members, server -> servers ON DELETE CASCADE,
 *           PK(member, server))
 *       The servers a member chose; an agent learns only these members.
 *   sessions(id_sha256 BLOB PK, member -> members, csrf, expires, epoch)
 *       The browser holds the random id; a stolen database holds no
 *       usable cookie.  A session counts only while its epoch is the
 *       member's session_epoch and the member is not disabled: an epoch
 *       never comes back, so enabling a member again revives none of its
 *       old sessions (they are deleted too, as tidiness).
 *
 * Version 1 lacked the two epochs: hubdb_upgrades[] adds them.  The
 * version is PRAGMA user_version (sqldb.h); meta's 'schema' follows it.
 *
 * Agents poll often, so what they read is served from memory: the
 * generation (re-read from the file at most once a second, to see the
 * admin commands' changes), the servers with their token hashes, and each
 * server's sync text, rebuilt only when the generation moves.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>
#include <sqlite3.h>

#include "array.h"
#include "cleanup.h"
#include "hub.h"
#include "log.h"
#include "sqldb.h"
#include "validate.h"
#include "banned.h"

#define HUBDB_SCHEMA_VERSION 2

static const char hubdb_schema[] =
	"CREATE TABLE IF NOT EXISTS meta ("
	"  key TEXT PRIMARY KEY,"
	"  value INTEGER NOT NULL);"
	"INSERT OR IGNORE INTO meta VALUES ('schema', 2), ('generation', 1);"
	"CREATE TABLE IF NOT EXISTS members ("
	"  name TEXT PRIMARY KEY,"
	"  display_name TEXT NOT NULL,"
	"  uid INTEGER NOT NULL UNIQUE,"
	"  subid_base INTEGER NOT NULL UNIQUE,"
	"  ssh_port INTEGER NOT NULL UNIQUE,"
	"  disabled INTEGER NOT NULL DEFAULT 0,"
	"  admin INTEGER NOT NULL DEFAULT 0,"
	"  created INTEGER NOT NULL,"
	"  session_epoch INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE IF NOT EXISTS passwords ("
	"  name TEXT PRIMARY KEY,"
	"  hash TEXT NOT NULL,"
	"  changed INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS keys ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  member TEXT NOT NULL REFERENCES members(name),"
	"  line TEXT NOT NULL,"
	"  fingerprint TEXT NOT NULL,"
	"  added INTEGER NOT NULL,"
	"  UNIQUE (member, fingerprint));"
	"CREATE TABLE IF NOT EXISTS servers ("
	"  name TEXT PRIMARY KEY,"
	"  url TEXT NOT NULL,"
	"  ssh_host TEXT NOT NULL,"
	"  token_sha256 BLOB NOT NULL UNIQUE,"
	"  token TEXT NOT NULL,"
	"  last_contact INTEGER NOT NULL DEFAULT 0,"
	"  created INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS enabled ("
	"  member TEXT NOT NULL REFERENCES members(name),"
	"  server TEXT NOT NULL REFERENCES servers(name) ON DELETE CASCADE,"
	"  PRIMARY KEY (member, server));"
	"CREATE INDEX IF NOT EXISTS enabled_by_server ON enabled(server, member);"
	"CREATE TABLE IF NOT EXISTS sessions ("
	"  id_sha256 BLOB PRIMARY KEY,"
	"  member TEXT NOT NULL REFERENCES members(name),"
	"  csrf TEXT NOT NULL,"
	"  expires INTEGER NOT NULL,"
	"  epoch INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX IF NOT EXISTS sessions_by_expiry ON sessions(expires);";

#define MEMBER_COLUMNS "name, display_name, uid, subid_base, ssh_port, disabled, admin, created"
#define SERVER_COLUMNS "name, url, ssh_host, last_contact, created"

/* Every statement the hub runs, prepared once and kept. */
enum hubdb_stmt_id {
	STMT_GENERATION, STMT_BUMP,
	STMT_MEMBER_GET, STMT_MEMBER_LIST, STMT_MEMBER_INSERT, STMT_MEMBER_SET_DISPLAY,
	STMT_MEMBER_SET_DISABLED, STMT_MEMBER_SET_ADMIN,
	STMT_USED_UIDS, STMT_USED_SUBIDS, STMT_USED_PORTS,
	STMT_PASSWORD_SET, STMT_PASSWORD_GET,
	STMT_KEY_COUNT, STMT_KEY_INSERT, STMT_KEY_DELETE, STMT_KEY_LIST, STMT_KEY_EXISTS,
	STMT_SERVER_INSERT, STMT_SERVER_DELETE, STMT_SERVER_LIST, STMT_SERVER_GET,
	STMT_SERVER_TOUCH, STMT_SERVER_TOKEN, STMT_SERVER_CACHE,
	STMT_ENABLE, STMT_DISABLE, STMT_ENABLED_LIST,
	STMT_SYNC_MEMBERS, STMT_SYNC_KEYS,
	STMT_SESSION_INSERT, STMT_SESSION_GET, STMT_SESSION_DELETE, STMT_SESSION_PRUNE,
	STMT_SESSION_EPOCH, STMT_SESSIONS_END, STMT_SESSIONS_DELETE,
	STMT_COUNT
};

static const char *const hubdb_sql[STMT_COUNT] = {
	[STMT_GENERATION] = "SELECT value FROM meta WHERE key = 'generation'",
	[STMT_BUMP] = "UPDATE meta SET value = value + 1 WHERE key = 'generation'",
	[STMT_MEMBER_GET] = "SELECT " MEMBER_COLUMNS " FROM members WHERE name = ?1",
	[STMT_MEMBER_LIST] = "SELECT " MEMBER_COLUMNS " FROM members ORDER BY name",
	[STMT_MEMBER_INSERT] = "INSERT INTO members (" MEMBER_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, 0, 0, ?6)",
	[STMT_MEMBER_SET_DISPLAY] = "UPDATE members SET display_name = ?2 WHERE name = ?1",
	[STMT_MEMBER_SET_DISABLED] = "UPDATE members SET disabled = ?2 WHERE name = ?1",
	[STMT_MEMBER_SET_ADMIN] = "UPDATE members SET admin = ?2 WHERE name = ?1",
	[STMT_USED_UIDS] = "SELECT uid FROM members WHERE uid BETWEEN ?1 AND ?2 ORDER BY uid",
	[STMT_USED_SUBIDS] = "SELECT subid_base FROM members WHERE subid_base BETWEEN ?1 AND ?2 ORDER BY subid_base",
	[STMT_USED_PORTS] = "SELECT ssh_port FROM members WHERE ssh_port BETWEEN ?1 AND ?2 ORDER BY ssh_port",
	[STMT_PASSWORD_SET] = "INSERT INTO passwords (name, hash, changed) VALUES (?1, ?2, ?3) "
			      "ON CONFLICT (name) DO UPDATE SET hash = excluded.hash, changed = excluded.changed",
	[STMT_PASSWORD_GET] = "SELECT hash FROM passwords WHERE name = ?1",
	[STMT_KEY_COUNT] = "SELECT count(*) FROM keys WHERE member = ?1",
	[STMT_KEY_INSERT] = "INSERT INTO keys (member, line, fingerprint, added) VALUES (?1, ?2, ?3, ?4)",
	[STMT_KEY_DELETE] = "DELETE FROM keys WHERE member = ?1 AND id = ?2",
	[STMT_KEY_LIST] = "SELECT id, member, line, fingerprint, added FROM keys WHERE member = ?1 ORDER BY id",
	[STMT_KEY_EXISTS] = "SELECT 1 FROM keys WHERE member = ?1 AND fingerprint = ?2",
	[STMT_SERVER_INSERT] = "INSERT INTO servers (name, url, ssh_host, token_sha256, token, created) "
			       "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[STMT_SERVER_DELETE] = "DELETE FROM servers WHERE name = ?1",
	[STMT_SERVER_LIST] = "SELECT " SERVER_COLUMNS " FROM servers ORDER BY name",
	[STMT_SERVER_GET] = "SELECT " SERVER_COLUMNS " FROM servers WHERE name = ?1",
	[STMT_SERVER_TOUCH] = "UPDATE servers SET last_contact = ?2 WHERE name = ?1",
	[STMT_SERVER_TOKEN] = "SELECT token FROM servers WHERE name = ?1",
	[STMT_SERVER_CACHE] = "SELECT " SERVER_COLUMNS ", token_sha256 FROM servers ORDER BY name",
	[STMT_ENABLE] = "INSERT OR IGNORE INTO enabled (member, server) VALUES (?1, ?2)",
	[STMT_DISABLE] = "DELETE FROM enabled WHERE member = ?1 AND server = ?2",
	[STMT_ENABLED_LIST] = "SELECT server FROM enabled WHERE member = ?1 ORDER BY server",
	[STMT_SYNC_MEMBERS] = "SELECT m.name, m.display_name, m.uid, m.subid_base, m.ssh_port, m.disabled "
			      "FROM enabled e JOIN members m ON m.name = e.member "
			      "WHERE e.server = ?1 ORDER BY m.name",
	[STMT_SYNC_KEYS] = "SELECT k.member, k.line FROM enabled e "
			   "JOIN members m ON m.name = e.member JOIN keys k ON k.member = e.member "
			   "WHERE e.server = ?1 AND m.disabled = 0 ORDER BY k.member, k.id",
	/* Only for a member who is not disabled and whose sessions did not
	 * end since the sign-in began (its epoch then). */
	[STMT_SESSION_INSERT] = "INSERT INTO sessions (id_sha256, member, csrf, expires, epoch) "
				"SELECT ?1, name, ?3, ?4, session_epoch FROM members "
				"WHERE name = ?2 AND disabled = 0 AND session_epoch = ?5",
	[STMT_SESSION_GET] = "SELECT s.member, s.csrf, s.expires FROM sessions s "
			     "JOIN members m ON m.name = s.member "
			     "WHERE s.id_sha256 = ?1 AND s.expires > ?2 "
			     "AND s.epoch = m.session_epoch AND m.disabled = 0",
	[STMT_SESSION_DELETE] = "DELETE FROM sessions WHERE id_sha256 = ?1",
	[STMT_SESSION_PRUNE] = "DELETE FROM sessions WHERE expires <= ?1",
	[STMT_SESSION_EPOCH] = "SELECT session_epoch FROM members WHERE name = ?1",
	[STMT_SESSIONS_END] = "UPDATE members SET session_epoch = session_epoch + 1 WHERE name = ?1",
	[STMT_SESSIONS_DELETE] = "DELETE FROM sessions WHERE member = ?1",
};

/* upgrades[v - 1] takes a file from version v to v + 1 (sqldb.h), before
 * the statements above are prepared (they name the new columns).
 * 1 to 2: the session epochs. */
static const char *const hubdb_upgrades[HUBDB_SCHEMA_VERSION - 1] = {
	"ALTER TABLE members ADD COLUMN session_epoch INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE sessions ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;"
	"UPDATE meta SET value = 2 WHERE key = 'schema';",
};

/* One member's authorized_keys text on one server. */
struct hubdb_member_keys {
	char name[HUB_NAME_MAX];
	char *text;
	size_t len;
};

/* A server as the agents' requests need it, kept in memory: its sync
 * text and the keys of the members it serves (sorted by name), both built
 * from one read of the database. */
struct hubdb_server_entry {
	struct hub_server server;
	unsigned char token_sha256[crypto_hash_sha256_BYTES];
	uint64_t sync_generation;       /* the generation sync_text was built at; 0 none */
	char *sync_text;
	size_t sync_len;
	struct hubdb_member_keys *keys; /* enabled, not disabled members */
	size_t nkeys;
};

struct hubdb {
	struct sqldb *sql;              /* its lock guards the fields below too */
	struct config_range uid_range;
	struct config_range subid_range;
	struct config_range port_range;

	uint64_t generation;            /* atomic: the newest seen */
	long long generation_checked;   /* atomic: CLOCK_MONOTONIC ms of the last read */

	/* Under lock: the servers at servers_generation. */
	struct hubdb_server_entry *servers;
	size_t nservers;
	size_t servers_cap;
	uint64_t servers_generation;
};

/* ---- names, rows ------------------------------------------------------------ */

static bool hubdb_name_ok(const char *name)
{
	char err[160];

	return name && strlen(name) < HUB_NAME_MAX && validate_member_name(name, err, sizeof(err)) == 0;
}

/* The rows of id (for name, when set) as sqldb_collect() reads them; no
 * rows for an invalid name.  Takes the lock. */
static int hubdb_list(struct hubdb *db, enum hubdb_stmt_id id, const char *name, const char *what,
		      size_t elem_size, void (*from_row)(sqlite3_stmt *stmt, void *element),
		      void **list, size_t *n)
{
	__do_unlock struct sqldb *locked = NULL;
	__do_reset sqlite3_stmt *stmt = NULL;

	*list = NULL;
	*n = 0;
	if (name && !hubdb_name_ok(name))
		return 0;
	locked = sqldb_lock(db->sql);
	stmt = name ? sqldb_bind(db->sql, id, "t", name) : sqldb_stmt(db->sql, id);
	return sqldb_collect(db->sql, stmt, what, elem_size, from_row, list, n);
}

/* The row id finds for name, read by from_row into out when out is set:
 * -ENOENT when there is none.  Under the lock. */
static int hubdb_row_by_name_locked(struct hubdb *db, enum hubdb_stmt_id id, const char *name,
				    const char *what,
				    void (*from_row)(sqlite3_stmt *stmt, void *element), void *out)
{
	__do_reset sqlite3_stmt *stmt = sqldb_bind(db->sql, id, "t", name);
	int ret = sqldb_first_row(db->sql, stmt, what);

	if (ret == 0 && out)
		from_row(stmt, out);
	return ret;
}

/* hubdb_row_by_name_locked(), taking the lock; -ENOENT for an invalid name. */
static int hubdb_row_by_name(struct hubdb *db, enum hubdb_stmt_id id, const char *name,
			     const char *what, void (*from_row)(sqlite3_stmt *stmt, void *element),
			     void *out)
{
	__do_unlock struct sqldb *locked = NULL;

	if (!hubdb_name_ok(name))
		return -ENOENT;
	locked = sqldb_lock(db->sql);
	return hubdb_row_by_name_locked(db, id, name, what, from_row, out);
}

static long long hubdb_monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the generation --------------------------------------------------------- */

static void hubdb_generation_store(struct hubdb *db, uint64_t value)
{
	uint64_t seen = __atomic_load_n(&db->generation, __ATOMIC_ACQUIRE);

	while (value > seen &&
	       !__atomic_compare_exchange_n(&db->generation, &seen, value, false,
					    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		;
}

/* The generation in the file, read under the lock (inside a transaction
 * when the caller opened one). */
static int hubdb_generation_read(struct hubdb *db, uint64_t *out)
{
	__do_reset sqlite3_stmt *stmt = sqldb_stmt(db->sql, STMT_GENERATION);
	int ret = sqldb_first_row(db->sql, stmt, "reading the generation");

	if (ret < 0)
		return ret == -ENOENT ? -EIO : ret;
	*out = (uint64_t)sqlite3_column_int64(stmt, 0);
	return 0;
}

/* Inside a write transaction: the change will be seen by agents. */
static int hubdb_generation_bump(struct hubdb *db, uint64_t *out)
{
	int ret = sqldb_exec(db->sql, STMT_BUMP, NULL, "");

	return ret < 0 ? ret : hubdb_generation_read(db, out);
}

/* Commit a write transaction; when changed, the generation moves in it
 * first, so that agents see the change. */
static int hubdb_txn_commit_change(struct hubdb *db, struct sqldb_txn *txn, bool changed)
{
	uint64_t generation = 0;
	int ret = changed ? hubdb_generation_bump(db, &generation) : 0;

	if (ret == 0)
		ret = sqldb_txn_commit(txn);
	if (ret == 0 && generation)
		hubdb_generation_store(db, generation);
	return ret;
}

uint64_t hubdb_generation(struct hubdb *db)
{
	long long now = hubdb_monotonic_ms();
	long long checked = __atomic_load_n(&db->generation_checked, __ATOMIC_RELAXED);

	/* Another process (the admin commands) may have changed the file:
	 * one thread looks, at most once a second. */
	if (now - checked >= HUBDB_GENERATION_REFRESH_MS &&
	    __atomic_compare_exchange_n(&db->generation_checked, &checked, now, false,
					__ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
		__do_unlock struct sqldb *locked = sqldb_lock(db->sql);
		uint64_t value;

		if (hubdb_generation_read(db, &value) == 0)
			hubdb_generation_store(db, value);
	}
	return __atomic_load_n(&db->generation, __ATOMIC_ACQUIRE);
}

/* ---- open and close ------------------------------------------------------- */

/* A file from before schema versions keeps its version in meta. */
static int hubdb_legacy_version(sqlite3 *handle, int *version)
{
	sqlite3_stmt *stmt = NULL;
	int rc = sqlite3_prepare_v2(handle, "SELECT value FROM meta WHERE key = 'schema'", -1, &stmt, NULL);

	if (rc == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW)
		*version = sqlite3_column_int(stmt, 0);
	else
		rc = SQLITE_ERROR;
	sqlite3_finalize(stmt);
	return rc == SQLITE_OK ? 0 : -EIO;
}

int hubdb_open(const char *path, const struct hub_config *cfg, struct hubdb **out)
{
	__do_free struct hubdb *db = calloc(1, sizeof(*db));
	/* Tokens, sessions and password hashes: the hub's user alone. */
	const struct sqldb_options options = {
		.name = "database",
		.flags = SQLDB_WAL | SQLDB_SYNC_NORMAL | SQLDB_FOREIGN_KEYS,
		.mode = 0600,
		.schema = hubdb_schema,
		.version = HUBDB_SCHEMA_VERSION,
		.upgrades = hubdb_upgrades,
		.legacy_version = hubdb_legacy_version,
		.sql = hubdb_sql,
		.nsql = STMT_COUNT,
	};
	struct hub_config defaults;
	uint64_t generation;
	int ret;

	if (!db)
		return -ENOMEM;
	if (sodium_init() < 0)
		return log_error_errno(-EIO, 0, "libsodium cannot start");
	if (!cfg) {
		hubconf_set_defaults(&defaults);
		cfg = &defaults;
	}
	db->uid_range = cfg->uid_range;
	db->subid_range = cfg->subid_range;
	db->port_range = cfg->ssh_port_range;
	ret = sqldb_open(path, &options, &db->sql);
	if (ret < 0)
		return ret;
	if (hubdb_generation_read(db, &generation) < 0) {
		hubdb_close(move_ptr(db));
		return -EIO;
	}
	db->generation = generation;
	db->generation_checked = hubdb_monotonic_ms();
	*out = move_ptr(db);
	return 0;
}

static void hubdb_entry_clear_keys(struct hubdb_server_entry *e)
{
	for (size_t i = 0; i < e->nkeys; i++)
		free(e->keys[i].text);
	free(e->keys);
	e->keys = NULL;
	e->nkeys = 0;
}

static void hubdb_servers_clear(struct hubdb *db)
{
	for (size_t i = 0; i < db->nservers; i++) {
		free(db->servers[i].sync_text);
		hubdb_entry_clear_keys(&db->servers[i]);
	}
	db->nservers = 0;
	db->servers_generation = 0;
}

void hubdb_close(struct hubdb *db)
{
	if (!db)
		return;
	hubdb_servers_clear(db);
	free(db->servers);
	sqldb_close(db->sql);
	free(db);
}

/* ---- members ---------------------------------------------------------------- */

static void hubdb_member_from_row(sqlite3_stmt *stmt, void *element)
{
	struct hub_member *out = element;

	memset(out, 0, sizeof(*out));
	sqldb_copy_text(out->name, sizeof(out->name), sqlite3_column_text(stmt, 0));
	sqldb_copy_text(out->display_name, sizeof(out->display_name), sqlite3_column_text(stmt, 1));
	out->uid = (uint32_t)sqlite3_column_int64(stmt, 2);
	out->subid_base = (uint32_t)sqlite3_column_int64(stmt, 3);
	out->ssh_port = (uint32_t)sqlite3_column_int64(stmt, 4);
	out->disabled = sqlite3_column_int(stmt, 5) != 0;
	out->admin = sqlite3_column_int(stmt, 6) != 0;
	out->created = sqlite3_column_int64(stmt, 7);
}

static int hubdb_member_get_locked(struct hubdb *db, const char *name, struct hub_member *out)
{
	return hubdb_row_by_name_locked(db, STMT_MEMBER_GET, name, "member lookup",
					hubdb_member_from_row, out);
}

/*
 * The lowest value v in [first, last] such that [v, v + size) is aligned
 * to align and overlaps no value already used (each used value u taking
 * [u, u + size) too).  which selects the column; -ENOSPC when full.
 */
static int hubdb_lowest_free(struct hubdb *db, enum hubdb_stmt_id which, uint64_t first,
			     uint64_t last, uint64_t size, uint64_t align, uint64_t *out)
{
	__do_reset sqlite3_stmt *stmt = sqldb_bind(db->sql, which, "ii",
						   (long long)(first >= size ? first - size + 1 : 0),
						   (long long)last);
	uint64_t candidate = (first + align - 1) / align * align;
	int rc;

	if (!stmt)
		return -EIO;
	/* An id block never holds id 0, which is root on the host. */
	if (candidate == 0)
		candidate = align > 1 ? align : 1;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		uint64_t used = (uint64_t)sqlite3_column_int64(stmt, 0);

		if (used + size <= candidate)
			continue;
		if (used >= candidate + size)
			break;
		candidate = (used + size + align - 1) / align * align;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return sqldb_error(db->sql, "allocation");
	if (candidate + size - 1 > last)
		return -ENOSPC;
	*out = candidate;
	return 0;
}

static int hubdb_allocate(struct hubdb *db, uint64_t *uid, uint64_t *subid, uint64_t *port)
{
	int ret;

	ret = hubdb_lowest_free(db, STMT_USED_UIDS, db->uid_range.first, db->uid_range.last, 1, 1, uid);
	if (ret == -ENOSPC)
		return log_error_errno(ret, 0, "every uid of uid_range %u-%u is taken: widen it in hub.conf",
				       db->uid_range.first, db->uid_range.last);
	if (ret < 0)
		return ret;
	ret = hubdb_lowest_free(db, STMT_USED_SUBIDS, db->subid_range.first, db->subid_range.last,
				SUBID_COUNT, SUBID_COUNT, subid);
	if (ret == -ENOSPC)
		return log_error_errno(ret, 0, "every id block of subid_range %u-%u is taken: widen it in hub.conf",
				       db->subid_range.first, db->subid_range.last);
	if (ret < 0)
		return ret;
	ret = hubdb_lowest_free(db, STMT_USED_PORTS, db->port_range.first, db->port_range.last, 1, 1, port);
	if (ret == -ENOSPC)
		return log_error_errno(ret, 0, "every port of ssh_port_range %u-%u is taken: widen it in hub.conf",
				       db->port_range.first, db->port_range.last);
	return ret;
}

/* A display name as the pages and agents can carry it: valid UTF-8 (else
 * the member's name), control characters as blanks, at most len - 1 bytes
 * cut on a character boundary. */
static void hubdb_clean_display_name(const char *in, const char *name, char *out, size_t len)
{
	__do_json json_t *check = in ? json_string(in) : NULL;
	size_t n;

	if (!check || !in[0]) {
		snprintf(out, len, "%s", name);
		return;
	}
	n = strlen(in);
	if (n >= len) {
		n = len - 1;
		while (n > 0 && ((unsigned char)in[n] & 0xc0) == 0x80)
			n--;
	}
	for (size_t i = 0; i < n; i++)
		out[i] = (unsigned char)in[i] < 0x20 || in[i] == 0x7f ? ' ' : in[i];
	out[n] = '\0';
}

static int hubdb_member_insert(struct hubdb *db, const char *name, const char *display)
{
	uint64_t uid, subid, port;
	int ret = hubdb_allocate(db, &uid, &subid, &port);

	if (ret < 0)
		return ret;
	ret = sqldb_exec(db->sql, STMT_MEMBER_INSERT, "adding a member", "ttiiii", name, display,
			 (long long)uid, (long long)subid, (long long)port, (long long)time(NULL));
	if (ret == 0)
		log_info("member %s: uid %llu, ids %llu-%llu, ssh port %llu", name,
			 (unsigned long long)uid, (unsigned long long)subid,
			 (unsigned long long)(subid + SUBID_COUNT - 1), (unsigned long long)port);
	return ret;
}


int hubdb_member_ensure(struct hubdb *db, const char *name, const char *display_name,
			struct hub_member *out)
{
	__do_unlock struct sqldb *locked = NULL;
	__do_txn struct sqldb_txn txn = { 0 };
	char display[sizeof(out->display_name)];
	struct hub_member member;
	bool changed;
	int ret;

	if (!hubdb_name_ok(name))
		return -EINVAL;
	hubdb_clean_display_name(display_name, name, display, sizeof(display));
	locked = sqldb_lock(db->sql);
	/* One transaction from the lookup to the insert: two first sign-ins
	 * at once (or the admin command) never get the same ids. */
	ret = sqldb_txn_begin(&txn, db->sql, true);
	if (ret < 0)
		return ret;
	ret = hubdb_member_get_locked(db, name, &member);
	changed = ret == -ENOENT || (ret == 0 && display_name && display_name[0] &&
				     strcmp(member.display_name, display) != 0);
	if (ret == -ENOENT)
		ret = hubdb_member_insert(db, name, display);
	else if (changed)
		ret = sqldb_exec(db->sql, STMT_MEMBER_SET_DISPLAY, "renaming a member", "tt", name, display);
	if (ret == 0 && changed)
		ret = hubdb_member_get_locked(db, name, &member);
	if (ret == 0)
		ret = hubdb_txn_commit_change(db, &txn, changed);
	if (ret == 0 && out)
		*out = member;
	return ret;
}

int hubdb_member_get(struct hubdb *db, const char *name, struct hub_member *out)
{
	return hubdb_row_by_name(db, STMT_MEMBER_GET, name, "member lookup", hubdb_member_from_row, out);
}

int hubdb_member_list(struct hubdb *db, struct hub_member **out, size_t *n)
{
	void *list;
	int ret = hubdb_list(db, STMT_MEMBER_LIST, NULL, "member list", sizeof(**out),
			     hubdb_member_from_row, &list, n);

	*out = list;
	return ret;
}

/* End every session of name (under the lock, in a write transaction):
 * the epoch moves, so none counts again, whatever happens next. */
static int hubdb_sessions_end_locked(struct hubdb *db, const char *name)
{
	int ret = sqldb_exec(db->sql, STMT_SESSIONS_END, "ending sessions", "t", name);

	return ret < 0 ? ret : sqldb_exec(db->sql, STMT_SESSIONS_DELETE, "ending sessions", "t", name);
}

/* UPDATE members SET <flag> = on WHERE name = ?, in a transaction; the
 * generation moves when bump and the value changed.  Disabling a member and
 * taking an admin's rights away end the member's sessions in the same
 * transaction. */
static int hubdb_member_set_flag(struct hubdb *db, enum hubdb_stmt_id which, const char *name,
				 bool on, bool bump)
{
	__do_unlock struct sqldb *locked = NULL;
	__do_txn struct sqldb_txn txn = { 0 };
	struct hub_member member;
	bool current;
	int ret;

	if (!hubdb_name_ok(name))
		return -ENOENT;
	locked = sqldb_lock(db->sql);
	ret = sqldb_txn_begin(&txn, db->sql, true);
	if (ret < 0)
		return ret;
	ret = hubdb_member_get_locked(db, name, &member);
	if (ret < 0)
		return ret;
	current = which == STMT_MEMBER_SET_DISABLED ? member.disabled : member.admin;
	if (current != on)
		ret = sqldb_exec(db->sql, which, "changing a member", "ti", name, on ? 1LL : 0LL);
	if (ret == 0 && current != on && (which == STMT_MEMBER_SET_DISABLED ? on : !on))
		ret = hubdb_sessions_end_locked(db, name);
	if (ret < 0)
		return ret;
	return hubdb_txn_commit_change(db, &txn, bump && current != on);
}

int hubdb_member_set_disabled(struct hubdb *db, const char *name, bool disabled)
{
	return hubdb_member_set_flag(db, STMT_MEMBER_SET_DISABLED, name, disabled, true);
}

int hubdb_member_set_admin(struct hubdb *db, const char *name, bool admin)
{
	return hubdb_member_set_flag(db, STMT_MEMBER_SET_ADMIN, name, admin, false);
}

/* ---- local passwords ------------------------------------------------------ */

/* A new password ends the sessions opened with the old one (none when
 * the account never signed in: no member yet). */
int hubdb_password_set(struct hubdb *db, const char *name, const char *hash)
{
	__do_unlock struct sqldb *locked = NULL;
	__do_txn struct sqldb_txn txn = { 0 };
	int ret;

	if (!hubdb_name_ok(name) || !hash || !hash[0])
		return -EINVAL;
	locked = sqldb_lock(db->sql);
	ret = sqldb_txn_begin(&txn, db->sql, true);
	if (ret == 0)
		ret = sqldb_exec(db->sql, STMT_PASSWORD_SET, "setting a password", "tti", name, hash,
				 (long long)time(NULL));
	if (ret == 0)
		ret = hubdb_sessions_end_locked(db, name);
	return ret < 0 ? ret : sqldb_txn_commit(&txn);
}

/* The text column of the row id finds for name, copied into out: -ENOENT
 * without a row, -ENAMETOOLONG when it does not fit. */
static int hubdb_text_by_name(struct hubdb *db, enum hubdb_stmt_id id, const char *name,
			      const char *what, char *out, size_t len)
{
	__do_unlock struct sqldb *locked = NULL;
	__do_reset sqlite3_stmt *stmt = NULL;
	int ret;

	if (!hubdb_name_ok(name))
		return -ENOENT;
	locked = sqldb_lock(db->sql);
	stmt = sqldb_bind(db->sql, id, "t", name);
	ret = sqldb_first_row(db->sql, stmt, what);
	return ret < 0 ? ret : sqldb_column_text(stmt, 0, out, len);
}

int hubdb_password_get(struct hubdb *db, const char *name, char *hash, size_t len)
{
	return hubdb_text_by_name(db, STMT_PASSWORD_GET, name, "password lookup", hash, len);
}

/* ---- keys ------------------------------------------------------------------ */

static int hubdb_count(struct hubdb *db, enum hubdb_stmt_id which, const char *arg, long long *out)
{
	__do_reset sqlite3_stmt *stmt = sqldb_bind(db->sql, which, "t", arg);
	int ret = sqldb_first_row(db->sql, stmt, "count");

	if (ret < 0)
		return ret;
	*out = sqlite3_column_int64(stmt, 0);
	return 0;
}

static int hubdb_key_exists(struct hubdb *db, const char *member, const char *fingerprint)
{
	__do_reset sqlite3_stmt *stmt = sqldb_bind(db->sql, STMT_KEY_EXISTS, "tt", member, fingerprint);
	int ret = sqldb_first_row(db->sql, stmt, "key lookup");

	if (ret == 0)
		return -EEXIST;
	return ret == -ENOENT ? 0 : ret;
}

static int hubdb_key_insert(struct hubdb *db, const char *member, const char *line,
			    const char *fingerprint, long long *id)
{
	int ret = sqldb_exec(db->sql, STMT_KEY_INSERT, "adding a key", "ttti", member, line, fingerprint,
			     (long long)time(NULL));

	if (ret == 0 && id)
		*id = sqldb_last_insert_rowid(db->sql);
	return ret;
}

int hubdb_key_add(struct hubdb *db, const char *member, const char *line,
		  const char *fingerprint, long long *id)
{
	__do_unlock struct sqldb *locked = NULL;
	__do_txn struct sqldb_txn txn = { 0 };
	long long count = 0;
	int ret;

	if (!hubdb_name_ok(member))
		return -ENOENT;
	if (!line || !line[0] || strlen(line) >= sizeof(((struct hub_key *)0)->line) ||
	    !fingerprint || !fingerprint[0] || strlen(fingerprint) >= sizeof(((struct hub_key *)0)->fingerprint) ||
	    strpbrk(line, "\r\n"))
		return -EINVAL;
	locked = sqldb_lock(db->sql);
	ret = sqldb_txn_begin(&txn, db->sql, true);
	if (ret < 0)
		return ret;
	ret = hubdb_member_get_locked(db, member, NULL);
	if (ret == 0)
		ret = hubdb_key_exists(db, member, fingerprint);
	if (ret == 0)
		ret = hubdb_count(db, STMT_KEY_COUNT, member, &count);
	if (ret == 0 && count >= HUB_KEYS_MAX)
		ret = -ENOSPC;
	if (ret == 0)
		ret = hubdb_key_insert(db, member, line, fingerprint, id);
	if (ret == 0)
		ret = hubdb_txn_commit_change(db, &txn, true);
	return ret;
}

/* Delete a row (its statement bound as sqldb_bind() does) in a write
 * transaction that agents will see; -ENOENT when there was none. */
static int hubdb_delete_change(struct hubdb *db, enum hubdb_stmt_id id, const char *what,
			       const char *types, ...)
{
	__do_unlock struct sqldb *locked = sqldb_lock(db->sql);
	__do_txn struct sqldb_txn txn = { 0 };
	va_list ap;
	int ret;

	ret = sqldb_txn_begin(&txn, db->sql, true);
	if (ret < 0)
		return ret;
	va_start(ap, types);
	ret = sqldb_change_va(db->sql, id, what, types, ap);
	va_end(ap);
	if (ret == 0)
		ret = hubdb_txn_commit_change(db, &txn, true);
	return ret;
}

int hubdb_key_remove(struct hubdb *db, const char *member, long long id)
{
	if (!hubdb_name_ok(member))
		return -ENOENT;
	return hubdb_delete_change(db, STMT_KEY_DELETE, "removing a key", "ti", member, id);
}

static void hubdb_key_from_row(sqlite3_stmt *stmt, void *element)
{
	struct hub_key *k = element;

	memset(k, 0, sizeof(*k));
	k->id = sqlite3_column_int64(stmt, 0);
	sqldb_copy_text(k->member, sizeof(k->member), sqlite3_column_text(stmt, 1));
	sqldb_copy_text(k->line, sizeof(k->line), sqlite3_column_text(stmt, 2));
	sqldb_copy_text(k->fingerprint, sizeof(k->fingerprint), sqlite3_column_text(stmt, 3));
	k->added = sqlite3_column_int64(stmt, 4);
}

int hubdb_key_list(struct hubdb *db, const char *member, struct hub_key **out, size_t *n)
{
	void *list;
	int ret = hubdb_list(db, STMT_KEY_LIST, member, "key list", sizeof(**out), hubdb_key_from_row,
			     &list, n);

	*out = list;
	return ret;
}

/* ---- servers ------------------------------------------------------------- */

static void hubdb_server_from_row(sqlite3_stmt *stmt, void *element)
{
	struct hub_server *out = element;

	memset(out, 0, sizeof(*out));
	sqldb_copy_text(out->name, sizeof(out->name), sqlite3_column_text(stmt, 0));
	sqldb_copy_text(out->url, sizeof(out->url), sqlite3_column_text(stmt, 1));
	sqldb_copy_text(out->ssh_host, sizeof(out->ssh_host), sqlite3_column_text(stmt, 2));
	out->last_contact = sqlite3_column_int64(stmt, 3);
	out->created = sqlite3_column_int64(stmt, 4);
}

/* 64 lowercase hexadecimal digits, as hubdb hands them out. */
static bool hubdb_token_format_ok(const char *token)
{
	size_t i;

	if (!token)
		return false;
	for (i = 0; i < HUB_TOKEN_HEX - 1; i++)
		if (!((token[i] >= '0' && token[i] <= '9') || (token[i] >= 'a' && token[i] <= 'f')))
			return false;
	return token[i] == '\0';
}

static void hubdb_token_hash(const char *token, unsigned char hash[crypto_hash_sha256_BYTES])
{
	crypto_hash_sha256(hash, (const unsigned char *)token, HUB_TOKEN_HEX - 1);
}

static void hubdb_random_token(char hex[HUB_TOKEN_HEX])
{
	unsigned char raw[(HUB_TOKEN_HEX - 1) / 2];

	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(hex, HUB_TOKEN_HEX, raw, sizeof(raw));
	sodium_memzero(raw, sizeof(raw));
}

static int hubdb_server_insert(struct hubdb *db, const char *name, const char *url,
			       const char *ssh_host, const char *token)
{
	unsigned char hash[crypto_hash_sha256_BYTES];

	hubdb_token_hash(token, hash);
	return sqldb_exec(db->sql, STMT_SERVER_INSERT, "adding a server", "tttbti", name, url,
			  ssh_host ? ssh_host : "", hash, sizeof(hash), token, (long long)time(NULL));
}

static int hubdb_server_get_locked(struct hubdb *db, const char *name, struct hub_server *out)
{
	return hubdb_row_by_name_locked(db, STMT_SERVER_GET, name, "server lookup",
					hubdb_server_from_row, out);
}

int hubdb_server_add(struct hubdb *db, const char *name, const char *url, const char *ssh_host,
		     char token_hex[HUB_TOKEN_HEX])
{
	__do_unlock struct sqldb *locked = NULL;
	__do_txn struct sqldb_txn txn = { 0 };
	char token[HUB_TOKEN_HEX];
	int ret;

	if (!hubdb_name_ok(name) || !url || !url[0] || strlen(url) >= CONFIG_TEXT_MAX ||
	    (ssh_host && strlen(ssh_host) >= sizeof(((struct hub_server *)0)->ssh_host)))
		return -EINVAL;
	hubdb_random_token(token);
	locked = sqldb_lock(db->sql);
	ret = sqldb_txn_begin(&txn, db->sql, true);
	if (ret < 0)
		return ret;
	ret = hubdb_server_get_locked(db, name, NULL);
	if (ret == 0)
		ret = -EEXIST;
	else if (ret == -ENOENT)
		ret = hubdb_server_insert(db, name, url, ssh_host, token);
	if (ret == 0)
		ret = hubdb_txn_commit_change(db, &txn, true);
	if (ret < 0) {
		sodium_memzero(token, sizeof(token));
		return ret;
	}
	memcpy(token_hex, token, HUB_TOKEN_HEX);
	sodium_memzero(token, sizeof(token));
	return 0;
}

int hubdb_server_remove(struct hubdb *db, const char *name)
{
	if (!hubdb_name_ok(name))
		return -ENOENT;
	return hubdb_delete_change(db, STMT_SERVER_DELETE, "removing a server", "t", name);
}

int hubdb_server_list(struct hubdb *db, struct hub_server **out, size_t *n)
{
	void *list;
	int ret = hubdb_list(db, STMT_SERVER_LIST, NULL, "server list", sizeof(**out),
			     hubdb_server_from_row, &list, n);

	*out = list;
	return ret;
}

int hubdb_server_get(struct hubdb *db, const char *name, struct hub_server *out)
{
	return hubdb_row_by_name(db, STMT_SERVER_GET, name, "server lookup", hubdb_server_from_row, out);
}

/* Reload the servers from the file when the generation moved (a server
 * added or removed, here or by an admin command).  Under the lock. */
static int hubdb_servers_refresh(struct hubdb *db, uint64_t generation)
{
	__do_txn struct sqldb_txn txn = { 0 };
	__do_reset sqlite3_stmt *stmt = NULL;
	uint64_t in_file;
	int ret, rc;

	if (db->servers_generation == generation && generation != 0)
		return 0;
	hubdb_servers_clear(db);
	ret = sqldb_txn_begin(&txn, db->sql, false);
	if (ret < 0)
		return ret;
	ret = hubdb_generation_read(db, &in_file);
	if (ret < 0)
		return ret;
	stmt = sqldb_stmt(db->sql, STMT_SERVER_CACHE);
	if (!stmt)
		return -EIO;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		struct hubdb_server_entry *e;

		if (sqlite3_column_bytes(stmt, 5) != crypto_hash_sha256_BYTES)
			continue;
		if (ARRAY_RESERVE(db->servers, db->servers_cap, db->nservers) < 0) {
			hubdb_servers_clear(db);
			return -ENOMEM;
		}
		e = &db->servers[db->nservers++];
		memset(e, 0, sizeof(*e));
		hubdb_server_from_row(stmt, &e->server);
		memcpy(e->token_sha256, sqlite3_column_blob(stmt, 5), crypto_hash_sha256_BYTES);
	}
	if (rc != SQLITE_DONE) {
		hubdb_servers_clear(db);
		return sqldb_error(db->sql, "server list");
	}
	sqldb_resetp(&stmt);
	ret = sqldb_txn_commit(&txn);
	if (ret < 0) {
		hubdb_servers_clear(db);
		return ret;
	}
	hubdb_generation_store(db, in_file);
	db->servers_generation = in_file;
	return 0;
}

static struct hubdb_server_entry *hubdb_servers_find(struct hubdb *db, const char *name)
{
	for (size_t i = 0; i < db->nservers; i++)
		if (strcmp(db->servers[i].server.name, name) == 0)
			return &db->servers[i];
	return NULL;
}

int hubdb_server_by_token(struct hubdb *db, const char *token, struct hub_server *out)
{
	uint64_t generation = hubdb_generation(db);
	__do_unlock struct sqldb *locked = NULL;
	unsigned char hash[crypto_hash_sha256_BYTES];
	struct hubdb_server_entry *found = NULL;
	int ret;

	if (!hubdb_token_format_ok(token))
		return -ENOENT;
	hubdb_token_hash(token, hash);
	locked = sqldb_lock(db->sql);
	ret = hubdb_servers_refresh(db, generation);
	if (ret < 0)
		return ret;
	/* Every entry compared in constant time: how long this takes says
	 * nothing about how close a guess came. */
	for (size_t i = 0; i < db->nservers; i++)
		if (sodium_memcmp(db->servers[i].token_sha256, hash, sizeof(hash)) == 0)
			found = &db->servers[i];
	if (!found)
		return -ENOENT;
	if (out)
		*out = found->server;
	return 0;
}

int hubdb_server_touch(struct hubdb *db, const char *name, long long now)
{
	__do_unlock struct sqldb *locked = NULL;
	struct hubdb_server_entry *e;
	int ret;

	if (!hubdb_name_ok(name))
		return -ENOENT;
	locked = sqldb_lock(db->sql);
	ret = sqldb_change(db->sql, STMT_SERVER_TOUCH, "recording an agent's contact", "ti", name, now);
	if (ret < 0)
		return ret;
	e = hubdb_servers_find(db, name);
	if (e)
		e->server.last_contact = now;
	return 0;
}

int hubdb_server_token(struct hubdb *db, const char *name, char token_hex[HUB_TOKEN_HEX])
{
	char token[HUB_TOKEN_HEX];
	int ret = hubdb_text_by_name(db, STMT_SERVER_TOKEN, name, "token lookup", token, sizeof(token));

	if (ret == -ENAMETOOLONG || (ret == 0 && !hubdb_token_format_ok(token)))
		ret = -EIO;
	if (ret == 0)
		memcpy(token_hex, token, HUB_TOKEN_HEX);
	sodium_memzero(token, sizeof(token));
	return ret;
}

/* ---- enabled servers ---------------------------------------------------- */

int hubdb_enable(struct hubdb *db, const char *member, const char *server, bool on)
{
	__do_unlock struct sqldb *locked = NULL;
	__do_txn struct sqldb_txn txn = { 0 };
	int ret;

	if (!hubdb_name_ok(member) || !hubdb_name_ok(server))
		return -ENOENT;
	locked = sqldb_lock(db->sql);
	ret = sqldb_txn_begin(&txn, db->sql, true);
	if (ret < 0)
		return ret;
	ret = hubdb_member_get_locked(db, member, NULL);
	if (ret == 0)
		ret = hubdb_server_get_locked(db, server, NULL);
	if (ret == 0)
		ret = sqldb_exec(db->sql, on ? STMT_ENABLE : STMT_DISABLE, "choosing a server", "tt",
				 member, server);
	if (ret == 0)
		ret = hubdb_txn_commit_change(db, &txn, sqldb_changes(db->sql) > 0);
	return ret;
}

static void hubdb_name_from_row(sqlite3_stmt *stmt, void *element)
{
	sqldb_copy_text(element, HUB_NAME_MAX, sqlite3_column_text(stmt, 0));
}

int hubdb_enabled_servers(struct hubdb *db, const char *member, char (**names)[HUB_NAME_MAX],
			  size_t *n)
{
	void *list;
	int ret = hubdb_list(db, STMT_ENABLED_LIST, member, "enabled servers", HUB_NAME_MAX,
			     hubdb_name_from_row, &list, n);

	*names = list;
	return ret;
}

/* ---- what agents read ----------------------------------------------------- */

static json_t *hubdb_sync_member(sqlite3_stmt *stmt)
{
	return json_pack("{s:s, s:s, s:I, s:I, s:I, s:b, s:[]}",
			 "name", (const char *)sqlite3_column_text(stmt, 0),
			 "display_name", (const char *)sqlite3_column_text(stmt, 1),
			 "uid", (json_int_t)sqlite3_column_int64(stmt, 2),
			 "subid_base", (json_int_t)sqlite3_column_int64(stmt, 3),
			 "ssh_port", (json_int_t)sqlite3_column_int64(stmt, 4),
			 "disabled", sqlite3_column_int(stmt, 5) != 0,
			 "keys");
}

/* The member object of a sync members row, in members and in index by name. */
static int hubdb_sync_add_member(sqlite3_stmt *stmt, void *context)
{
	json_t **lists = context, *members = lists[0], *index = lists[1];
	json_t *m = hubdb_sync_member(stmt);

	if (!m || json_array_append_new(members, m) < 0 ||
	    json_object_set(index, json_string_value(json_object_get(m, "name")), m) < 0)
		return -ENOMEM;
	return 0;
}

/* The line of a sync keys row, added to its member object in index. */
static int hubdb_sync_add_key(sqlite3_stmt *stmt, void *context)
{
	json_t *index = context;
	json_t *m = json_object_get(index, (const char *)sqlite3_column_text(stmt, 0));
	json_t *line = json_string((const char *)sqlite3_column_text(stmt, 1));

	if (!m || !line || json_array_append_new(json_object_get(m, "keys"), line) < 0) {
		json_decref(line);
		return -ENOMEM;
	}
	return 0;
}

/* The members of server into members, and each one's keys; index maps a
 * name to its member object.  Under the lock, inside a transaction. */
static int hubdb_sync_fill(struct hubdb *db, const char *server, json_t *members, json_t *index)
{
	json_t *lists[] = { members, index };
	int ret;

	{
		__do_reset sqlite3_stmt *stmt = sqldb_bind(db->sql, STMT_SYNC_MEMBERS, "t", server);

		ret = sqldb_each_row(db->sql, stmt, "sync members", hubdb_sync_add_member, lists);
	}
	if (ret == 0) {
		__do_reset sqlite3_stmt *stmt = sqldb_bind(db->sql, STMT_SYNC_KEYS, "t", server);

		ret = sqldb_each_row(db->sql, stmt, "sync keys", hubdb_sync_add_key, index);
	}
	return ret;
}

static int hubdb_sync_json_locked(struct hubdb *db, const char *server, json_t **out)
{
	__do_txn struct sqldb_txn txn = { 0 };
	__do_json json_t *doc = NULL, *members = NULL, *index = NULL;
	uint64_t generation;
	int ret;

	/* One read transaction: the generation and the members agree. */
	ret = sqldb_txn_begin(&txn, db->sql, false);
	if (ret < 0)
		return ret;
	ret = hubdb_server_get_locked(db, server, NULL);
	if (ret == 0)
		ret = hubdb_generation_read(db, &generation);
	if (ret < 0)
		return ret;
	members = json_array();
	index = json_object();
	if (!members || !index)
		return -ENOMEM;
	ret = hubdb_sync_fill(db, server, members, index);
	if (ret < 0)
		return ret;
	ret = sqldb_txn_commit(&txn);
	if (ret < 0)
		return ret;
	doc = json_pack("{s:I, s:s, s:O}", "generation", (json_int_t)generation, "server", server,
			"members", members);
	if (!doc)
		return -ENOMEM;
	*out = move_ptr(doc);
	return 0;
}

int hubdb_sync_json(struct hubdb *db, const char *server, json_t **out)
{
	__do_unlock struct sqldb *locked = NULL;

	if (!hubdb_name_ok(server))
		return -ENOENT;
	locked = sqldb_lock(db->sql);
	return hubdb_sync_json_locked(db, server, out);
}

/* Append one line and a newline to the growing text. */
static int hubdb_append_line(char **text, size_t *len, size_t *cap, const char *line)
{
	size_t n = strlen(line);

	if (*len + n + 2 > *cap) {
		size_t ncap = (*len + n + 2) * 2;
		char *grown = realloc(*text, ncap);

		if (!grown)
			return -ENOMEM;
		*text = grown;
		*cap = ncap;
	}
	memcpy(*text + *len, line, n);
	(*text)[*len + n] = '\n';
	*len += n + 1;
	(*text)[*len] = '\0';
	return 0;
}

/* The authorized_keys text of one member object of a sync document. */
static int hubdb_keys_text(json_t *member, struct hubdb_member_keys *out)
{
	size_t used = 0, cap = 0, i;
	json_t *line;

	snprintf(out->name, sizeof(out->name), "%s", json_string_value(json_object_get(member, "name")));
	out->text = NULL;
	json_array_foreach(json_object_get(member, "keys"), i, line) {
		if (hubdb_append_line(&out->text, &used, &cap, json_string_value(line)) < 0) {
			free(out->text);
			return -ENOMEM;
		}
	}
	if (!out->text && !(out->text = strdup("")))
		return -ENOMEM;
	out->len = used;
	return 0;
}

/* Every member the sync document lists and does not mark disabled, in its
 * order (by name). */
static int hubdb_keys_build(json_t *doc, struct hubdb_member_keys **out, size_t *n)
{
	json_t *members = json_object_get(doc, "members"), *m;
	struct hubdb_member_keys *list;
	size_t count = 0, i;

	list = calloc(json_array_size(members) + 1, sizeof(*list));
	if (!list)
		return -ENOMEM;
	json_array_foreach(members, i, m) {
		if (json_is_true(json_object_get(m, "disabled")))
			continue;
		if (hubdb_keys_text(m, &list[count]) < 0) {
			struct hubdb_server_entry partial = { .keys = list, .nkeys = count };

			hubdb_entry_clear_keys(&partial);
			return -ENOMEM;
		}
		count++;
	}
	*out = list;
	*n = count;
	return 0;
}

/* Build the entry's text and keys at the current generation.  Under the lock. */
static int hubdb_sync_build(struct hubdb *db, struct hubdb_server_entry *e)
{
	__do_json json_t *doc = NULL;
	struct hubdb_member_keys *keys = NULL;
	size_t nkeys = 0;
	char *text;
	int ret;

	ret = hubdb_sync_json_locked(db, e->server.name, &doc);
	if (ret < 0)
		return ret;
	text = json_dumps(doc, JSON_COMPACT);
	if (!text)
		return -ENOMEM;
	ret = hubdb_keys_build(doc, &keys, &nkeys);
	if (ret < 0) {
		free(text);
		return ret;
	}
	free(e->sync_text);
	hubdb_entry_clear_keys(e);
	e->sync_text = text;
	e->sync_len = strlen(text);
	e->keys = keys;
	e->nkeys = nkeys;
	e->sync_generation = (uint64_t)json_integer_value(json_object_get(doc, "generation"));
	return 0;
}

/* The server's entry, built at the current generation.  Under the lock. */
static int hubdb_servers_current(struct hubdb *db, const char *server, uint64_t generation,
				 struct hubdb_server_entry **out)
{
	struct hubdb_server_entry *e;
	int ret;

	ret = hubdb_servers_refresh(db, generation);
	if (ret < 0)
		return ret;
	e = hubdb_servers_find(db, server);
	if (!e)
		return -ENOENT;
	if (e->sync_generation != db->servers_generation || !e->sync_text) {
		ret = hubdb_sync_build(db, e);
		if (ret < 0)
			return ret;
	}
	*out = e;
	return 0;
}

int hubdb_sync_text(struct hubdb *db, const char *server, char **text, size_t *len,
		    uint64_t *generation)
{
	uint64_t current = hubdb_generation(db);
	__do_unlock struct sqldb *locked = NULL;
	struct hubdb_server_entry *e;
	char *copy;
	int ret;

	if (!hubdb_name_ok(server))
		return -ENOENT;
	locked = sqldb_lock(db->sql);
	ret = hubdb_servers_current(db, server, current, &e);
	if (ret < 0)
		return ret;
	copy = malloc(e->sync_len + 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, e->sync_text, e->sync_len + 1);
	*text = copy;
	*len = e->sync_len;
	*generation = e->sync_generation;
	return 0;
}

static int hubdb_keys_compare(const void *key, const void *entry)
{
	return strcmp(key, ((const struct hubdb_member_keys *)entry)->name);
}

int hubdb_authorized_keys(struct hubdb *db, const char *server, const char *member,
			  char **text, size_t *len)
{
	uint64_t current = hubdb_generation(db);
	__do_unlock struct sqldb *locked = NULL;
	const struct hubdb_member_keys *found;
	struct hubdb_server_entry *e;
	char *copy;
	int ret;

	if (!hubdb_name_ok(member) || !hubdb_name_ok(server))
		return -ENOENT;
	locked = sqldb_lock(db->sql);
	/* From the memory the sync text was built in: sshd asks at every
	 * login, and no database read is needed until something changes. */
	ret = hubdb_servers_current(db, server, current, &e);
	if (ret < 0)
		return ret;
	found = bsearch(member, e->keys, e->nkeys, sizeof(*e->keys), hubdb_keys_compare);
	if (!found)
		return -ENOENT;
	copy = malloc(found->len + 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, found->text, found->len + 1);
	*text = copy;
	*len = found->len;
	return 0;
}

/* ---- sessions ------------------------------------------------------------- */

int hubdb_session_epoch(struct hubdb *db, const char *member, uint64_t *epoch)
{
	__do_unlock struct sqldb *locked = NULL;
	__do_reset sqlite3_stmt *stmt = NULL;
	int ret;

	*epoch = 0;
	if (!hubdb_name_ok(member))
		return -ENOENT;
	locked = sqldb_lock(db->sql);
	stmt = sqldb_bind(db->sql, STMT_SESSION_EPOCH, "t", member);
	ret = sqldb_first_row(db->sql, stmt, "session epoch");
	if (ret == 0)
		*epoch = (uint64_t)sqlite3_column_int64(stmt, 0);
	return ret;
}

int hubdb_session_create(struct hubdb *db, const char *member, uint64_t epoch, long long expires,
			 char id_hex[HUB_TOKEN_HEX], char csrf_hex[HUB_TOKEN_HEX])
{
	__do_unlock struct sqldb *locked = NULL;
	unsigned char hash[crypto_hash_sha256_BYTES];
	char id[HUB_TOKEN_HEX], csrf[HUB_TOKEN_HEX];
	int ret;

	if (!hubdb_name_ok(member))
		return -ENOENT;
	hubdb_random_token(id);
	hubdb_random_token(csrf);
	hubdb_token_hash(id, hash);
	locked = sqldb_lock(db->sql);
	ret = hubdb_member_get_locked(db, member, NULL);
	if (ret < 0)
		return ret;
	ret = sqldb_change(db->sql, STMT_SESSION_INSERT, "opening a session", "bttii", hash, sizeof(hash),
			   member, csrf, expires, (long long)epoch);
	/* The member exists: disabled, or its sessions ended meanwhile. */
	if (ret == -ENOENT)
		ret = -ESTALE;
	if (ret == 0) {
		memcpy(id_hex, id, HUB_TOKEN_HEX);
		memcpy(csrf_hex, csrf, HUB_TOKEN_HEX);
	}
	sodium_memzero(id, sizeof(id));
	return ret;
}

int hubdb_session_get(struct hubdb *db, const char *id_hex, long long now, struct hub_session *out)
{
	__do_unlock struct sqldb *locked = NULL;
	__do_reset sqlite3_stmt *stmt = NULL;
	unsigned char hash[crypto_hash_sha256_BYTES];
	int ret;

	if (!hubdb_token_format_ok(id_hex))
		return -ENOENT;
	hubdb_token_hash(id_hex, hash);
	locked = sqldb_lock(db->sql);
	stmt = sqldb_bind(db->sql, STMT_SESSION_GET, "bi", hash, sizeof(hash), now);
	ret = sqldb_first_row(db->sql, stmt, "session lookup");
	if (ret < 0)
		return ret;
	if (out) {
		memset(out, 0, sizeof(*out));
		sqldb_copy_text(out->member, sizeof(out->member), sqlite3_column_text(stmt, 0));
		sqldb_copy_text(out->csrf, sizeof(out->csrf), sqlite3_column_text(stmt, 1));
		out->expires = sqlite3_column_int64(stmt, 2);
	}
	return 0;
}

int hubdb_session_delete(struct hubdb *db, const char *id_hex)
{
	__do_unlock struct sqldb *locked = NULL;
	unsigned char hash[crypto_hash_sha256_BYTES];

	if (!hubdb_token_format_ok(id_hex))
		return 0;
	hubdb_token_hash(id_hex, hash);
	locked = sqldb_lock(db->sql);
	return sqldb_exec(db->sql, STMT_SESSION_DELETE, "closing a session", "b", hash, sizeof(hash));
}

int hubdb_session_prune(struct hubdb *db, long long now)
{
	__do_unlock struct sqldb *locked = sqldb_lock(db->sql);

	return sqldb_exec(db->sql, STMT_SESSION_PRUNE, "pruning sessions", "i", now);
}
