/* SPDX-License-Identifier: MIT */
/*
 * The agent's records in SQLite: members with their allocations, their SSH
 * keys and port forwards.  What is running is never stored: it is read from
 * LXC, so the records cannot disagree with reality after a crash.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "state/state.h"
#include "cleanup.h"
#include "sqldb.h"
#include "strutil.h"
#include "banned.h"

/* The schema's version (PRAGMA user_version, see sqldb.h).  A change to
 * the tables below bumps it and adds the script that takes a file of the
 * version before to it, as sqldb_options.upgrades (hubdb.c has one). */
#define DB_SCHEMA_VERSION 3

/*
 * Version 2.  limit_ends: the end of an admin's temporary limit
 * (limits set --until), the member's own value it gives way to then
 * (previous; NULL: the server's default), and whether the member was
 * told it ends soon; gone with the limit.  forward_from: the networks a
 * forwarded port takes connections from ("any", or networks as
 * cidr_format() writes them), container_port 22 being the container's
 * SSH; no row: the server's forward_default_from.  Gone with the forward
 * (the trigger) or the member.
 */
#define DB_EXCEPTION_TABLES \
	"CREATE TABLE IF NOT EXISTS limit_ends (" \
	"  member TEXT NOT NULL," \
	"  key TEXT NOT NULL," \
	"  ends INTEGER NOT NULL," \
	"  previous TEXT," \
	"  warned INTEGER NOT NULL DEFAULT 0," \
	"  PRIMARY KEY (member, key)," \
	"  FOREIGN KEY (member, key) REFERENCES member_limits(member, key) ON DELETE CASCADE);" \
	"CREATE TABLE IF NOT EXISTS forward_from (" \
	"  member TEXT NOT NULL REFERENCES members(name) ON DELETE CASCADE," \
	"  container_port INTEGER NOT NULL," \
	"  network TEXT NOT NULL," \
	"  PRIMARY KEY (member, container_port, network));" \
	"CREATE TRIGGER IF NOT EXISTS forward_from_gone AFTER DELETE ON forwards BEGIN" \
	"  DELETE FROM forward_from WHERE member = old.member AND container_port = old.container_port;" \
	"  END;"
/* Version 3: GPU reservations (reservations.c), granted or queued.  The
 * GPUs are UUIDs, as in gpu_sets; a queued request for any GPUs has none
 * until it is served.  Times are unix milliseconds.  AUTOINCREMENT: an id
 * people were shown is never given to another reservation. */
#define DB_RESERVATIONS_TABLE \
	"CREATE TABLE IF NOT EXISTS reservations (" \
	"  id INTEGER PRIMARY KEY AUTOINCREMENT," \
	"  member TEXT NOT NULL REFERENCES members(name) ON DELETE CASCADE," \
	"  gpus TEXT NOT NULL DEFAULT ''," \
	"  count INTEGER NOT NULL," \
	"  state TEXT NOT NULL CHECK (state IN ('active', 'queued'))," \
	"  created_ms INTEGER NOT NULL," \
	"  start_ms INTEGER NOT NULL DEFAULT 0," \
	"  until_ms INTEGER NOT NULL DEFAULT 0," \
	"  seconds INTEGER NOT NULL);"

static const char db_schema[] =
	"CREATE TABLE IF NOT EXISTS members ("
	"  name TEXT PRIMARY KEY,"
	"  uid INTEGER NOT NULL UNIQUE,"
	"  subid_base INTEGER NOT NULL UNIQUE,"
	"  ssh_port INTEGER NOT NULL UNIQUE,"
	"  address_index INTEGER NOT NULL UNIQUE,"
	"  template TEXT NOT NULL DEFAULT '',"
	"  created INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS keys ("
	"  member TEXT NOT NULL REFERENCES members(name) ON DELETE CASCADE,"
	"  fingerprint TEXT NOT NULL,"
	"  line TEXT NOT NULL,"
	"  PRIMARY KEY (member, fingerprint));"
	"CREATE TABLE IF NOT EXISTS forwards ("
	"  member TEXT NOT NULL REFERENCES members(name) ON DELETE CASCADE,"
	"  container_port INTEGER NOT NULL,"
	"  host_port INTEGER NOT NULL UNIQUE,"
	"  PRIMARY KEY (member, container_port));"
	"CREATE TABLE IF NOT EXISTS gpu_sets ("
	"  member TEXT PRIMARY KEY REFERENCES members(name) ON DELETE CASCADE,"
	"  gpus TEXT NOT NULL);"
	/* Members created from the hub's list: only these does the hub's
	 * list change; members added here are never touched by it. */
	"CREATE TABLE IF NOT EXISTS hub_members ("
	"  name TEXT PRIMARY KEY REFERENCES members(name) ON DELETE CASCADE);"
	/* Who a member is, beyond a name that a later member may take again:
	 * 128 random bits, made with the member's row (the trigger) and gone
	 * with it, never made twice.  Snapshots are bound to it.  The INSERT
	 * gives one to the members of a database made before the table. */
	"CREATE TABLE IF NOT EXISTS member_ids ("
	"  name TEXT PRIMARY KEY REFERENCES members(name) ON DELETE CASCADE,"
	"  id TEXT NOT NULL UNIQUE);"
	"CREATE TRIGGER IF NOT EXISTS member_id_new AFTER INSERT ON members BEGIN"
	"  INSERT INTO member_ids (name, id) VALUES (new.name, lower(hex(randomblob(16))));"
	"  END;"
	/* An admin's limits for one member (reslimit.h), over the server's
	 * defaults; each value as limits_format_value() wrote it. */
	"CREATE TABLE IF NOT EXISTS member_limits ("
	"  member TEXT NOT NULL REFERENCES members(name) ON DELETE CASCADE,"
	"  key TEXT NOT NULL,"
	"  value TEXT NOT NULL,"
	"  PRIMARY KEY (member, key));"
	DB_EXCEPTION_TABLES
	DB_RESERVATIONS_TABLE
	"INSERT OR IGNORE INTO member_ids (name, id)"
	"  SELECT name, lower(hex(randomblob(16))) FROM members;";

/* db_upgrades[v - 1] takes a file of version v to v + 1 (sqldb.h). */
static const char *const db_upgrades[DB_SCHEMA_VERSION - 1] = {
	DB_EXCEPTION_TABLES,
	DB_RESERVATIONS_TABLE,
};

struct db {
	struct sqldb *sql;
};

#define MEMBER_COLUMNS "name, uid, subid_base, ssh_port, address_index, template, created"
#define MEMBER_SELECT \
	"SELECT m.name, m.uid, m.subid_base, m.ssh_port, m.address_index, m.template, m.created," \
	" COALESCE(i.id, '') FROM members m LEFT JOIN member_ids i ON i.name = m.name"
#define FORWARD_COLUMNS "member, container_port, host_port"
#define LIMIT_SELECT \
	"SELECT l.member, l.key, l.value, COALESCE(e.ends, 0), e.previous, COALESCE(e.warned, 0)" \
	" FROM member_limits l LEFT JOIN limit_ends e ON e.member = l.member AND e.key = l.key"
#define RESERVATION_COLUMNS "id, member, gpus, count, state, created_ms, start_ms, until_ms, seconds"

enum db_stmt_id {
	DB_MEMBER_GET, DB_MEMBER_BY_UID, DB_MEMBER_LIST, DB_MEMBER_INSERT, DB_MEMBER_DELETE,
	DB_MEMBER_SET_TEMPLATE,
	DB_KEYS_DELETE, DB_KEY_INSERT, DB_KEYS_LIST,
	DB_FORWARD_ADD, DB_FORWARD_REMOVE, DB_FORWARD_LIST_MEMBER, DB_FORWARD_LIST,
	DB_FORWARD_BY_HOST_PORT,
	DB_GPU_SET_GET, DB_GPU_SET_PUT,
	DB_HUB_MEMBER_ADD, DB_HUB_MEMBER_IS, DB_HUB_MEMBER_LIST,
	DB_LIMIT_PUT, DB_LIMIT_REMOVE, DB_LIMIT_LIST_MEMBER, DB_LIMIT_LIST,
	DB_LIMIT_END_KEEP, DB_LIMIT_END_NEW, DB_LIMIT_END_REMOVE, DB_LIMIT_ENDED, DB_LIMIT_NEXT_END,
	DB_LIMIT_WARNED,
	DB_FORWARD_FROM_CLEAR, DB_FORWARD_FROM_ADD, DB_FORWARD_FROM_LIST_MEMBER, DB_FORWARD_FROM_LIST,
	DB_RESERVATION_ADD, DB_RESERVATION_LIST, DB_RESERVATION_ACTIVATE, DB_RESERVATION_EXTEND,
	DB_RESERVATION_REMOVE,
	DB_STMT_COUNT
};

static const char *const db_sql[DB_STMT_COUNT] = {
	[DB_MEMBER_GET] = MEMBER_SELECT " WHERE m.name = ?",
	[DB_MEMBER_BY_UID] = MEMBER_SELECT " WHERE m.uid = ?",
	[DB_MEMBER_LIST] = MEMBER_SELECT " ORDER BY m.name",
	[DB_MEMBER_INSERT] = "INSERT INTO members (" MEMBER_COLUMNS ") VALUES (?, ?, ?, ?, ?, ?, ?)",
	[DB_MEMBER_DELETE] = "DELETE FROM members WHERE name = ?",
	[DB_MEMBER_SET_TEMPLATE] = "UPDATE members SET template = ?2 WHERE name = ?1",
	[DB_KEYS_DELETE] = "DELETE FROM keys WHERE member = ?",
	[DB_KEY_INSERT] = "INSERT OR IGNORE INTO keys (member, fingerprint, line) VALUES (?, ?, ?)",
	[DB_KEYS_LIST] = "SELECT line FROM keys WHERE member = ? ORDER BY rowid",
	[DB_FORWARD_ADD] = "INSERT INTO forwards (" FORWARD_COLUMNS ") VALUES (?, ?, ?)",
	[DB_FORWARD_REMOVE] = "DELETE FROM forwards WHERE member = ? AND container_port = ?",
	[DB_FORWARD_LIST_MEMBER] =
		"SELECT " FORWARD_COLUMNS " FROM forwards WHERE member = ? ORDER BY container_port",
	[DB_FORWARD_LIST] = "SELECT " FORWARD_COLUMNS " FROM forwards ORDER BY member, container_port",
	[DB_FORWARD_BY_HOST_PORT] = "SELECT " FORWARD_COLUMNS " FROM forwards WHERE host_port = ?",
	[DB_GPU_SET_GET] = "SELECT gpus FROM gpu_sets WHERE member = ?",
	/* In parentheses: one statement in two literals, not two elements. */
	[DB_GPU_SET_PUT] = ("INSERT INTO gpu_sets (member, gpus) VALUES (?, ?) "
			    "ON CONFLICT (member) DO UPDATE SET gpus = excluded.gpus"),
	[DB_HUB_MEMBER_ADD] = "INSERT OR IGNORE INTO hub_members (name) VALUES (?)",
	[DB_HUB_MEMBER_IS] = "SELECT 1 FROM hub_members WHERE name = ?",
	[DB_HUB_MEMBER_LIST] = "SELECT name FROM hub_members ORDER BY name",
	[DB_LIMIT_PUT] = ("INSERT INTO member_limits (member, key, value) VALUES (?, ?, ?) "
			  "ON CONFLICT (member, key) DO UPDATE SET value = excluded.value"),
	[DB_LIMIT_REMOVE] = "DELETE FROM member_limits WHERE member = ? AND key = ?",
	[DB_LIMIT_LIST_MEMBER] = LIMIT_SELECT " WHERE l.member = ? ORDER BY l.key",
	[DB_LIMIT_LIST] = LIMIT_SELECT " ORDER BY l.member, l.key",
	/* Before a temporary value replaces the member's own: that value is
	 * what it gives way to, unless an end is set already (then the value
	 * under it still is).  The member's own value is kept in a row of
	 * its own only when there is one; DB_LIMIT_END_NEW adds the rest. */
	[DB_LIMIT_END_KEEP] = ("INSERT INTO limit_ends (member, key, ends, previous)"
			       " SELECT member, key, ?3, value FROM member_limits WHERE member = ?1 AND key = ?2"
			       " ON CONFLICT (member, key) DO UPDATE SET ends = excluded.ends, warned = 0"),
	[DB_LIMIT_END_NEW] = ("INSERT INTO limit_ends (member, key, ends, previous) VALUES (?, ?, ?, NULL)"
			      " ON CONFLICT (member, key) DO NOTHING"),
	[DB_LIMIT_END_REMOVE] = "DELETE FROM limit_ends WHERE member = ? AND key = ?",
	[DB_LIMIT_ENDED] = LIMIT_SELECT " WHERE e.ends <= ? ORDER BY e.ends, l.member, l.key",
	[DB_LIMIT_NEXT_END] = "SELECT ends FROM limit_ends ORDER BY ends LIMIT 1",
	[DB_LIMIT_WARNED] = "UPDATE limit_ends SET warned = 1 WHERE member = ?1 AND key = ?2 AND ends = ?3",
	[DB_FORWARD_FROM_CLEAR] = "DELETE FROM forward_from WHERE member = ? AND container_port = ?",
	/* Only for a port that is forwarded (or the SSH port): a list set
	 * while the forward is removed must not wait for the next forward
	 * of that port. */
	[DB_FORWARD_FROM_ADD] = ("INSERT OR IGNORE INTO forward_from (member, container_port, network)"
				 " SELECT ?1, ?2, ?3 WHERE ?2 = 22 OR EXISTS (SELECT 1 FROM forwards"
				 " WHERE member = ?1 AND container_port = ?2)"),
	[DB_FORWARD_FROM_LIST_MEMBER] = ("SELECT member, container_port, network FROM forward_from"
					 " WHERE member = ? ORDER BY container_port, rowid"),
	[DB_FORWARD_FROM_LIST] = ("SELECT member, container_port, network FROM forward_from"
				  " ORDER BY member, container_port, rowid"),
	[DB_RESERVATION_ADD] = ("INSERT INTO reservations (member, gpus, count, state, created_ms, "
				"start_ms, until_ms, seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"),
	[DB_RESERVATION_LIST] = "SELECT " RESERVATION_COLUMNS " FROM reservations ORDER BY id",
	[DB_RESERVATION_ACTIVATE] = ("UPDATE reservations SET state = 'active', gpus = ?2, "
				     "start_ms = ?3, until_ms = ?4 WHERE id = ?1 AND state = 'queued'"),
	[DB_RESERVATION_EXTEND] = "UPDATE reservations SET until_ms = ?2, seconds = ?3 WHERE id = ?1",
	[DB_RESERVATION_REMOVE] = "DELETE FROM reservations WHERE id = ?",
};

int db_open(const char *path, struct db **out)
{
	/* Keys and ids are nobody else's business. */
	const struct sqldb_options options = {
		.name = "database",
		.flags = SQLDB_WAL | SQLDB_FOREIGN_KEYS,
		.mode = 0600,
		.schema = db_schema,
		.version = DB_SCHEMA_VERSION,
		.upgrades = db_upgrades,
		.sql = db_sql,
		.nsql = DB_STMT_COUNT,
	};
	__do_free struct db *db = calloc(1, sizeof(*db));
	int ret;

	if (!db)
		return -ENOMEM;
	ret = sqldb_open(path, &options, &db->sql);
	if (ret < 0)
		return ret;
	*out = move_ptr(db);
	return 0;
}

void db_close(struct db *db)
{
	if (!db)
		return;
	sqldb_close(db->sql);
	free(db);
}

int db_begin(struct db *db)
{
	return sqldb_begin(db->sql, true);
}

int db_commit(struct db *db)
{
	return sqldb_commit(db->sql);
}

void db_rollback(struct db *db)
{
	sqldb_rollback(db->sql);
}

/* Run a change: -EEXIST for a constraint, -ENOENT when it changed no row. */
static int db_change(struct db *db, enum db_stmt_id id, const char *what, const char *types, ...)
{
	__do_unlock struct sqldb *locked = sqldb_lock(db->sql);
	va_list ap;
	int ret;

	va_start(ap, types);
	ret = sqldb_change_va(db->sql, id, what, types, ap);
	va_end(ap);
	return ret;
}

/* The row of a query, read by from_row; -ENOENT when there is none. */
static int db_row(struct db *db, enum db_stmt_id id, const char *what,
		  void (*from_row)(sqlite3_stmt *stmt, void *element), void *out,
		  const char *types, ...)
{
	__do_unlock struct sqldb *locked = sqldb_lock(db->sql);
	__do_reset sqlite3_stmt *stmt = NULL;
	va_list ap;
	int ret;

	va_start(ap, types);
	stmt = sqldb_bind_va(db->sql, id, types, ap);
	va_end(ap);
	ret = sqldb_first_row(db->sql, stmt, what);
	if (ret == 0)
		from_row(stmt, out);
	return ret;
}

/* Every row of a query, as sqldb_collect() reads them. */
static int db_rows(struct db *db, enum db_stmt_id id, const char *what, size_t elem_size,
		   void (*from_row)(sqlite3_stmt *stmt, void *element), void **list, size_t *n,
		   const char *types, ...)
{
	__do_unlock struct sqldb *locked = sqldb_lock(db->sql);
	__do_reset sqlite3_stmt *stmt = NULL;
	va_list ap;

	va_start(ap, types);
	stmt = sqldb_bind_va(db->sql, id, types, ap);
	va_end(ap);
	return sqldb_collect(db->sql, stmt, what, elem_size, from_row, list, n);
}

static void db_member_from_row(sqlite3_stmt *stmt, void *element)
{
	struct member_record *out = element;

	memset(out, 0, sizeof(*out));
	sqldb_copy_text(out->name, sizeof(out->name), sqlite3_column_text(stmt, 0));
	out->uid = (uint32_t)sqlite3_column_int64(stmt, 1);
	out->subid_base = (uint32_t)sqlite3_column_int64(stmt, 2);
	out->ssh_port = (uint32_t)sqlite3_column_int64(stmt, 3);
	out->address_index = (uint32_t)sqlite3_column_int64(stmt, 4);
	sqldb_copy_text(out->template_ref, sizeof(out->template_ref), sqlite3_column_text(stmt, 5));
	out->created = sqlite3_column_int64(stmt, 6);
	sqldb_copy_text(out->identity, sizeof(out->identity), sqlite3_column_text(stmt, 7));
}

int db_member_get(struct db *db, const char *name, struct member_record *out)
{
	return db_row(db, DB_MEMBER_GET, "member lookup", db_member_from_row, out, "t", name);
}

int db_member_by_uid(struct db *db, uint32_t uid, struct member_record *out)
{
	return db_row(db, DB_MEMBER_BY_UID, "member lookup", db_member_from_row, out, "i",
		      (long long)uid);
}

int db_member_list(struct db *db, struct member_record **out, size_t *n)
{
	void *list;
	int ret = db_rows(db, DB_MEMBER_LIST, "member list", sizeof(**out), db_member_from_row,
			  &list, n, "");

	if (ret == 0)
		*out = list;
	return ret;
}

int db_member_insert(struct db *db, const struct member_record *rec)
{
	__do_unlock struct sqldb *locked = sqldb_lock(db->sql);

	return sqldb_exec(db->sql, DB_MEMBER_INSERT, "member insert", "tiiiiti", rec->name,
			  (long long)rec->uid, (long long)rec->subid_base, (long long)rec->ssh_port,
			  (long long)rec->address_index, rec->template_ref,
			  rec->created ? rec->created : (long long)time(NULL));
}

int db_member_delete(struct db *db, const char *name)
{
	return db_change(db, DB_MEMBER_DELETE, "member delete", "t", name);
}

int db_member_set_template(struct db *db, const char *name, const char *ref)
{
	return db_change(db, DB_MEMBER_SET_TEMPLATE, "member template", "tt", name, ref);
}

int db_keys_set(struct db *db, const char *member, const char *const *lines,
		const char *const *fingerprints, size_t n)
{
	__do_unlock struct sqldb *locked = sqldb_lock(db->sql);
	int ret = sqldb_exec(db->sql, DB_KEYS_DELETE, "key delete", "t", member);

	for (size_t i = 0; ret == 0 && i < n; i++)
		ret = sqldb_exec(db->sql, DB_KEY_INSERT, "key insert", "ttt", member, fingerprints[i],
				 lines[i]);
	return ret;
}

/* One authorized_keys line per row, after prefix. */
static int db_keys_print(sqlite3_stmt *stmt, void *context)
{
	struct { FILE *f; const char *prefix; } *out = context;

	fprintf(out->f, "%s%s\n", out->prefix ? out->prefix : "",
		(const char *)sqlite3_column_text(stmt, 0));
	return 0;
}

int db_keys_text(struct db *db, const char *member, const char *prefix, char **out)
{
	__do_unlock struct sqldb *locked = sqldb_lock(db->sql);
	__do_reset sqlite3_stmt *stmt = sqldb_bind(db->sql, DB_KEYS_LIST, "t", member);
	struct { FILE *f; const char *prefix; } print = { .prefix = prefix };
	char *text = NULL;
	size_t len = 0;
	int ret;

	if (!stmt)
		return -EIO;
	print.f = open_memstream(&text, &len);
	if (!print.f)
		return -ENOMEM;
	ret = sqldb_each_row(db->sql, stmt, "key list", db_keys_print, &print);
	if (!memstream_close(print.f)) {
		free(text);
		return -ENOMEM;
	}
	if (ret < 0) {
		free(text);
		return ret;
	}
	*out = text;
	return 0;
}

int db_forward_add(struct db *db, const char *member, uint32_t container_port, uint32_t host_port)
{
	return db_change(db, DB_FORWARD_ADD, "forward insert", "tii", member,
			 (long long)container_port, (long long)host_port);
}

int db_forward_remove(struct db *db, const char *member, uint32_t container_port)
{
	return db_change(db, DB_FORWARD_REMOVE, "forward delete", "ti", member,
			 (long long)container_port);
}

static void db_forward_from_row(sqlite3_stmt *stmt, void *element)
{
	struct forward_record *out = element;

	sqldb_copy_text(out->member, sizeof(out->member), sqlite3_column_text(stmt, 0));
	out->container_port = (uint32_t)sqlite3_column_int64(stmt, 1);
	out->host_port = (uint32_t)sqlite3_column_int64(stmt, 2);
}

int db_forward_list(struct db *db, const char *member, struct forward_record **out, size_t *n)
{
	void *list;
	int ret = member ? db_rows(db, DB_FORWARD_LIST_MEMBER, "forward list", sizeof(**out),
				   db_forward_from_row, &list, n, "t", member)
			 : db_rows(db, DB_FORWARD_LIST, "forward list", sizeof(**out),
				   db_forward_from_row, &list, n, "");

	if (ret == 0)
		*out = list;
	return ret;
}

int db_forward_by_host_port(struct db *db, uint32_t host_port, struct forward_record *out)
{
	return db_row(db, DB_FORWARD_BY_HOST_PORT, "forward lookup", db_forward_from_row, out, "i",
		      (long long)host_port);
}

int db_gpu_set_get(struct db *db, const char *member, char *out, size_t len)
{
	__do_unlock struct sqldb *locked = sqldb_lock(db->sql);
	__do_reset sqlite3_stmt *stmt = sqldb_bind(db->sql, DB_GPU_SET_GET, "t", member);
	int ret = sqldb_first_row(db->sql, stmt, "GPU set lookup");

	return ret < 0 ? ret : sqldb_column_text(stmt, 0, out, len);
}

int db_gpu_set_put(struct db *db, const char *member, const char *gpus)
{
	return db_change(db, DB_GPU_SET_PUT, "GPU set update", "tt", member, gpus);
}

int db_hub_member_add(struct db *db, const char *member)
{
	__do_unlock struct sqldb *locked = sqldb_lock(db->sql);

	return sqldb_exec(db->sql, DB_HUB_MEMBER_ADD, "hub member insert", "t", member);
}

int db_hub_member_is(struct db *db, const char *member)
{
	__do_unlock struct sqldb *locked = sqldb_lock(db->sql);
	__do_reset sqlite3_stmt *stmt = sqldb_bind(db->sql, DB_HUB_MEMBER_IS, "t", member);
	int ret = sqldb_first_row(db->sql, stmt, "hub member lookup");

	if (ret == -ENOENT)
		return 0;
	return ret < 0 ? ret : 1;
}

static void db_name_from_row(sqlite3_stmt *stmt, void *element)
{
	sqldb_copy_text(element, MEMBER_NAME_SIZE, sqlite3_column_text(stmt, 0));
}

int db_hub_member_list(struct db *db, char (**names)[MEMBER_NAME_SIZE], size_t *n)
{
	void *list;
	int ret = db_rows(db, DB_HUB_MEMBER_LIST, "hub member list", sizeof(**names),
			  db_name_from_row, &list, n, "");

	if (ret == 0)
		*names = list;
	return ret;
}

int db_limit_put(struct db *db, const char *member, const char *key, const char *value,
		 long long ends)
{
	__do_unlock struct sqldb *locked = sqldb_lock(db->sql);
	int ret = 0;

	if (ends > 0)
		ret = sqldb_exec(db->sql, DB_LIMIT_END_KEEP, "limit end", "tti", member, key, ends);
	if (ret == 0)
		ret = sqldb_exec(db->sql, DB_LIMIT_PUT, "limit update", "ttt", member, key, value);
	if (ret == 0)
		ret = ends > 0 ? sqldb_exec(db->sql, DB_LIMIT_END_NEW, "limit end", "tti", member, key, ends)
			       : sqldb_exec(db->sql, DB_LIMIT_END_REMOVE, "limit end", "tt", member, key);
	return ret;
}

int db_limit_remove(struct db *db, const char *member, const char *key)
{
	return db_change(db, DB_LIMIT_REMOVE, "limit removal", "tt", member, key);
}

static void db_limit_from_row(sqlite3_stmt *stmt, void *element)
{
	struct limit_record *rec = element;

	sqldb_copy_text(rec->member, sizeof(rec->member), sqlite3_column_text(stmt, 0));
	sqldb_copy_text(rec->key, sizeof(rec->key), sqlite3_column_text(stmt, 1));
	sqldb_copy_text(rec->value, sizeof(rec->value), sqlite3_column_text(stmt, 2));
	rec->ends = sqlite3_column_int64(stmt, 3);
	rec->has_previous = sqlite3_column_type(stmt, 4) != SQLITE_NULL;
	sqldb_copy_text(rec->previous, sizeof(rec->previous), sqlite3_column_text(stmt, 4));
	rec->warned = sqlite3_column_int(stmt, 5) != 0;
}

int db_limit_list(struct db *db, const char *member, struct limit_record **out, size_t *n)
{
	void *list;
	int ret = member ? db_rows(db, DB_LIMIT_LIST_MEMBER, "limit list", sizeof(**out),
				   db_limit_from_row, &list, n, "t", member)
			 : db_rows(db, DB_LIMIT_LIST, "limit list", sizeof(**out), db_limit_from_row,
				   &list, n, "");

	if (ret == 0)
		*out = list;
	return ret;
}

int db_limit_ended(struct db *db, long long now, struct limit_record **out, size_t *n)
{
	void *list;
	int ret = db_rows(db, DB_LIMIT_ENDED, "limit ends", sizeof(**out), db_limit_from_row, &list, n,
			  "i", now);

	if (ret == 0)
		*out = list;
	return ret;
}

int db_reservation_add(struct db *db, struct reservation_record *rec)
{
	__do_unlock struct sqldb *locked = sqldb_lock(db->sql);
	int ret = sqldb_exec(db->sql, DB_RESERVATION_ADD, "reservation insert", "ttitiiii",
			     rec->member, rec->gpus, (long long)rec->count,
			     rec->active ? "active" : "queued", rec->created_ms, rec->start_ms,
			     rec->until_ms, rec->seconds);

	if (ret == 0)
		rec->id = sqldb_last_insert_rowid(db->sql);
	return ret;
}

static void db_reservation_from_row(sqlite3_stmt *stmt, void *element)
{
	struct reservation_record *rec = element;
	const unsigned char *state = sqlite3_column_text(stmt, 4);

	memset(rec, 0, sizeof(*rec));
	rec->id = sqlite3_column_int64(stmt, 0);
	sqldb_copy_text(rec->member, sizeof(rec->member), sqlite3_column_text(stmt, 1));
	sqldb_copy_text(rec->gpus, sizeof(rec->gpus), sqlite3_column_text(stmt, 2));
	rec->count = (uint32_t)sqlite3_column_int64(stmt, 3);
	rec->active = state && strcmp((const char *)state, "active") == 0;
	rec->created_ms = sqlite3_column_int64(stmt, 5);
	rec->start_ms = sqlite3_column_int64(stmt, 6);
	rec->until_ms = sqlite3_column_int64(stmt, 7);
	rec->seconds = sqlite3_column_int64(stmt, 8);
}

int db_reservation_list(struct db *db, struct reservation_record **out, size_t *n)
{
	void *list;
	int ret = db_rows(db, DB_RESERVATION_LIST, "reservation list", sizeof(**out),
			  db_reservation_from_row, &list, n, "");

	if (ret == 0)
		*out = list;
	return ret;
}

int db_limit_next_end(struct db *db, long long *out)
{
	__do_unlock struct sqldb *locked = sqldb_lock(db->sql);
	__do_reset sqlite3_stmt *stmt = sqldb_bind(db->sql, DB_LIMIT_NEXT_END, "");
	int ret = sqldb_first_row(db->sql, stmt, "next limit end");

	if (ret == 0)
		*out = sqlite3_column_int64(stmt, 0);
	return ret;
}

int db_limit_set_warned(struct db *db, const char *member, const char *key, long long ends)
{
	return db_change(db, DB_LIMIT_WARNED, "limit warning", "tti", member, key, ends);
}

int db_forward_from_set(struct db *db, const char *member, uint32_t container_port,
			const char *const *networks, size_t n)
{
	__do_unlock struct sqldb *locked = sqldb_lock(db->sql);
	__do_txn struct sqldb_txn txn = { 0 };
	int ret = sqldb_txn_begin(&txn, db->sql, true);

	if (ret == 0)
		ret = sqldb_exec(db->sql, DB_FORWARD_FROM_CLEAR, "allow-list update", "ti", member,
				 (long long)container_port);
	for (size_t i = 0; ret == 0 && i < n; i++)
		ret = sqldb_exec(db->sql, DB_FORWARD_FROM_ADD, "allow-list update", "tit", member,
				 (long long)container_port, networks[i]);
	return ret == 0 ? sqldb_txn_commit(&txn) : ret;
}

static void db_forward_from_from_row(sqlite3_stmt *stmt, void *element)
{
	struct forward_from_record *rec = element;

	sqldb_copy_text(rec->member, sizeof(rec->member), sqlite3_column_text(stmt, 0));
	rec->container_port = (uint32_t)sqlite3_column_int64(stmt, 1);
	sqldb_copy_text(rec->network, sizeof(rec->network), sqlite3_column_text(stmt, 2));
}

int db_forward_from_list(struct db *db, const char *member, struct forward_from_record **out,
			 size_t *n)
{
	void *list;
	int ret = member ? db_rows(db, DB_FORWARD_FROM_LIST_MEMBER, "allow-list", sizeof(**out),
				   db_forward_from_from_row, &list, n, "t", member)
			 : db_rows(db, DB_FORWARD_FROM_LIST, "allow-list", sizeof(**out),
				   db_forward_from_from_row, &list, n, "");

	if (ret == 0)
		*out = list;
	return ret;
}

int db_reservation_activate(struct db *db, long long id, const char *gpus, long long start_ms,
			    long long until_ms)
{
	return db_change(db, DB_RESERVATION_ACTIVATE, "reservation start", "itii", id, gpus,
			 start_ms, until_ms);
}

int db_reservation_extend(struct db *db, long long id, long long until_ms, long long seconds)
{
	return db_change(db, DB_RESERVATION_EXTEND, "reservation extension", "iii", id, until_ms,
			 seconds);
}

int db_reservation_remove(struct db *db, long long id)
{
	return db_change(db, DB_RESERVATION_REMOVE, "reservation removal", "i", id);
}
