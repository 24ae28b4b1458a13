/* SPDX-License-Identifier: MIT */
/*
 * The agent's records in SQLite: members with their allocations, their SSH
 * keys and port forwards.  What is running is never stored: it is read from
 * LXC, so the records cannot disagree with reality after a crash.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>

#include "state/state.h"
#include "array.h"
#include "cleanup.h"
#include "log.h"
#include "strutil.h"
#include "banned.h"

struct db {
	sqlite3 *handle;
};

static const char db_schema[] =
	"PRAGMA journal_mode = WAL;"
	"PRAGMA foreign_keys = ON;"
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
	"  name TEXT PRIMARY KEY REFERENCES members(name) ON DELETE CASCADE);";

static void db_finalizep(sqlite3_stmt **stmt)
{
	sqlite3_finalize(*stmt);
}
#define __do_finalize __attribute__((cleanup(db_finalizep)))

static int db_error(struct db *db, const char *what)
{
	log_error("database: %s: %s", what, sqlite3_errmsg(db->handle));
	return -EIO;
}

int db_open(const char *path, struct db **out)
{
	__do_free struct db *db = calloc(1, sizeof(*db));
	char *msg = NULL;

	if (!db)
		return -ENOMEM;
	if (sqlite3_open_v2(path, &db->handle,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
			    NULL) != SQLITE_OK) {
		log_error("cannot open the database %s: %s", path,
			  db->handle ? sqlite3_errmsg(db->handle) : "out of memory");
		sqlite3_close(db->handle);
		return -EIO;
	}
	/* Keys and ids are nobody else's business. */
	if (chmod(path, 0600) < 0)
		log_warn_errno(0, errno, "cannot chmod %s", path);
	sqlite3_busy_timeout(db->handle, 5000);
	if (sqlite3_exec(db->handle, db_schema, NULL, NULL, &msg) != SQLITE_OK) {
		log_error("cannot set up the database %s: %s", path, msg ? msg : "?");
		sqlite3_free(msg);
		sqlite3_close(db->handle);
		return -EIO;
	}
	*out = move_ptr(db);
	return 0;
}

void db_close(struct db *db)
{
	if (!db)
		return;
	sqlite3_close(db->handle);
	free(db);
}

static int db_exec(struct db *db, const char *sql)
{
	if (sqlite3_exec(db->handle, sql, NULL, NULL, NULL) != SQLITE_OK)
		return db_error(db, sql);
	return 0;
}

int db_begin(struct db *db)
{
	return db_exec(db, "BEGIN IMMEDIATE");
}

int db_commit(struct db *db)
{
	return db_exec(db, "COMMIT");
}

void db_rollback(struct db *db)
{
	sqlite3_exec(db->handle, "ROLLBACK", NULL, NULL, NULL);
}

static int db_prepare(struct db *db, const char *sql, sqlite3_stmt **stmt)
{
	if (sqlite3_prepare_v2(db->handle, sql, -1, stmt, NULL) != SQLITE_OK)
		return db_error(db, "prepare");
	return 0;
}

static void db_copy_text(char *dst, size_t len, const unsigned char *src)
{
	snprintf(dst, len, "%s", src ? (const char *)src : "");
}

#define MEMBER_COLUMNS "name, uid, subid_base, ssh_port, address_index, template, created"

static void db_member_from_row(sqlite3_stmt *stmt, struct member_record *out)
{
	memset(out, 0, sizeof(*out));
	db_copy_text(out->name, sizeof(out->name), sqlite3_column_text(stmt, 0));
	out->uid = (uint32_t)sqlite3_column_int64(stmt, 1);
	out->subid_base = (uint32_t)sqlite3_column_int64(stmt, 2);
	out->ssh_port = (uint32_t)sqlite3_column_int64(stmt, 3);
	out->address_index = (uint32_t)sqlite3_column_int64(stmt, 4);
	db_copy_text(out->template_ref, sizeof(out->template_ref), sqlite3_column_text(stmt, 5));
	out->created = sqlite3_column_int64(stmt, 6);
}

static int db_member_query_one(struct db *db, sqlite3_stmt *stmt, struct member_record *out)
{
	int rc = sqlite3_step(stmt);

	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return db_error(db, "member lookup");
	db_member_from_row(stmt, out);
	return 0;
}

int db_member_get(struct db *db, const char *name, struct member_record *out)
{
	__do_finalize sqlite3_stmt *stmt = NULL;

	if (db_prepare(db, "SELECT " MEMBER_COLUMNS " FROM members WHERE name = ?", &stmt) < 0)
		return -EIO;
	sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
	return db_member_query_one(db, stmt, out);
}

int db_member_by_uid(struct db *db, uint32_t uid, struct member_record *out)
{
	__do_finalize sqlite3_stmt *stmt = NULL;

	if (db_prepare(db, "SELECT " MEMBER_COLUMNS " FROM members WHERE uid = ?", &stmt) < 0)
		return -EIO;
	sqlite3_bind_int64(stmt, 1, uid);
	return db_member_query_one(db, stmt, out);
}

int db_member_list(struct db *db, struct member_record **out, size_t *n)
{
	__do_finalize sqlite3_stmt *stmt = NULL;
	__do_free struct member_record *list = NULL;
	size_t count = 0, cap = 0;
	int rc;

	if (db_prepare(db, "SELECT " MEMBER_COLUMNS " FROM members ORDER BY name", &stmt) < 0)
		return -EIO;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (ARRAY_RESERVE(list, cap, count) < 0)
			return -ENOMEM;
		db_member_from_row(stmt, &list[count++]);
	}
	if (rc != SQLITE_DONE)
		return db_error(db, "member list");
	*out = move_ptr(list);
	*n = count;
	return 0;
}

int db_member_insert(struct db *db, const struct member_record *rec)
{
	__do_finalize sqlite3_stmt *stmt = NULL;

	if (db_prepare(db, "INSERT INTO members (" MEMBER_COLUMNS ") VALUES (?, ?, ?, ?, ?, ?, ?)",
		       &stmt) < 0)
		return -EIO;
	sqlite3_bind_text(stmt, 1, rec->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, rec->uid);
	sqlite3_bind_int64(stmt, 3, rec->subid_base);
	sqlite3_bind_int64(stmt, 4, rec->ssh_port);
	sqlite3_bind_int64(stmt, 5, rec->address_index);
	sqlite3_bind_text(stmt, 6, rec->template_ref, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 7, rec->created ? rec->created : (long long)time(NULL));
	switch (sqlite3_step(stmt)) {
	case SQLITE_DONE:
		return 0;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	default:
		return db_error(db, "member insert");
	}
}

static int db_step_done(struct db *db, sqlite3_stmt *stmt, const char *what)
{
	int rc = sqlite3_step(stmt);

	if (rc == SQLITE_CONSTRAINT)
		return -EEXIST;
	if (rc != SQLITE_DONE)
		return db_error(db, what);
	return sqlite3_changes(db->handle) > 0 ? 0 : -ENOENT;
}

int db_member_delete(struct db *db, const char *name)
{
	__do_finalize sqlite3_stmt *stmt = NULL;

	if (db_prepare(db, "DELETE FROM members WHERE name = ?", &stmt) < 0)
		return -EIO;
	sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
	return db_step_done(db, stmt, "member delete");
}

int db_member_set_template(struct db *db, const char *name, const char *ref)
{
	__do_finalize sqlite3_stmt *stmt = NULL;

	if (db_prepare(db, "UPDATE members SET template = ? WHERE name = ?", &stmt) < 0)
		return -EIO;
	sqlite3_bind_text(stmt, 1, ref, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, name, -1, SQLITE_STATIC);
	return db_step_done(db, stmt, "member template");
}

int db_keys_set(struct db *db, const char *member, const char *const *lines,
		const char *const *fingerprints, size_t n)
{
	__do_finalize sqlite3_stmt *del = NULL;
	int ret;

	if (db_prepare(db, "DELETE FROM keys WHERE member = ?", &del) < 0)
		return -EIO;
	sqlite3_bind_text(del, 1, member, -1, SQLITE_STATIC);
	if (sqlite3_step(del) != SQLITE_DONE)
		return db_error(db, "key delete");
	for (size_t i = 0; i < n; i++) {
		__do_finalize sqlite3_stmt *ins = NULL;

		if (db_prepare(db, "INSERT OR IGNORE INTO keys (member, fingerprint, line) VALUES (?, ?, ?)",
			       &ins) < 0)
			return -EIO;
		sqlite3_bind_text(ins, 1, member, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 2, fingerprints[i], -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 3, lines[i], -1, SQLITE_STATIC);
		ret = sqlite3_step(ins);
		if (ret != SQLITE_DONE)
			return db_error(db, "key insert");
	}
	return 0;
}

int db_keys_text(struct db *db, const char *member, const char *prefix, char **out)
{
	__do_finalize sqlite3_stmt *stmt = NULL;
	char *text = NULL;
	size_t len = 0;
	FILE *f;
	int rc;

	if (db_prepare(db, "SELECT line FROM keys WHERE member = ? ORDER BY rowid", &stmt) < 0)
		return -EIO;
	sqlite3_bind_text(stmt, 1, member, -1, SQLITE_STATIC);
	f = open_memstream(&text, &len);
	if (!f)
		return -ENOMEM;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
		fprintf(f, "%s%s\n", prefix ? prefix : "", (const char *)sqlite3_column_text(stmt, 0));
	if (!memstream_close(f)) {
		free(text);
		return -ENOMEM;
	}
	if (rc != SQLITE_DONE) {
		free(text);
		return db_error(db, "key list");
	}
	*out = text;
	return 0;
}

int db_forward_add(struct db *db, const char *member, uint32_t container_port, uint32_t host_port)
{
	__do_finalize sqlite3_stmt *stmt = NULL;

	if (db_prepare(db, "INSERT INTO forwards (member, container_port, host_port) VALUES (?, ?, ?)",
		       &stmt) < 0)
		return -EIO;
	sqlite3_bind_text(stmt, 1, member, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, container_port);
	sqlite3_bind_int64(stmt, 3, host_port);
	return db_step_done(db, stmt, "forward insert");
}

int db_forward_remove(struct db *db, const char *member, uint32_t container_port)
{
	__do_finalize sqlite3_stmt *stmt = NULL;

	if (db_prepare(db, "DELETE FROM forwards WHERE member = ? AND container_port = ?", &stmt) < 0)
		return -EIO;
	sqlite3_bind_text(stmt, 1, member, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, container_port);
	return db_step_done(db, stmt, "forward delete");
}

static void db_forward_from_row(sqlite3_stmt *stmt, struct forward_record *out)
{
	db_copy_text(out->member, sizeof(out->member), sqlite3_column_text(stmt, 0));
	out->container_port = (uint32_t)sqlite3_column_int64(stmt, 1);
	out->host_port = (uint32_t)sqlite3_column_int64(stmt, 2);
}

int db_forward_list(struct db *db, const char *member, struct forward_record **out, size_t *n)
{
	__do_finalize sqlite3_stmt *stmt = NULL;
	__do_free struct forward_record *list = NULL;
	size_t count = 0, cap = 0;
	int rc;

	if (db_prepare(db, member ?
		       "SELECT member, container_port, host_port FROM forwards WHERE member = ? ORDER BY container_port" :
		       "SELECT member, container_port, host_port FROM forwards ORDER BY member, container_port",
		       &stmt) < 0)
		return -EIO;
	if (member)
		sqlite3_bind_text(stmt, 1, member, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (ARRAY_RESERVE(list, cap, count) < 0)
			return -ENOMEM;
		db_forward_from_row(stmt, &list[count++]);
	}
	if (rc != SQLITE_DONE)
		return db_error(db, "forward list");
	*out = move_ptr(list);
	*n = count;
	return 0;
}

int db_forward_by_host_port(struct db *db, uint32_t host_port, struct forward_record *out)
{
	__do_finalize sqlite3_stmt *stmt = NULL;
	int rc;

	if (db_prepare(db, "SELECT member, container_port, host_port FROM forwards WHERE host_port = ?",
		       &stmt) < 0)
		return -EIO;
	sqlite3_bind_int64(stmt, 1, host_port);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return db_error(db, "forward lookup");
	db_forward_from_row(stmt, out);
	return 0;
}

int db_gpu_set_get(struct db *db, const char *member, char *out, size_t len)
{
	__do_finalize sqlite3_stmt *stmt = NULL;
	const unsigned char *text;
	int rc;

	if (db_prepare(db, "SELECT gpus FROM gpu_sets WHERE member = ?", &stmt) < 0)
		return -EIO;
	sqlite3_bind_text(stmt, 1, member, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return db_error(db, "GPU set lookup");
	text = sqlite3_column_text(stmt, 0);
	if (!text || strlen((const char *)text) >= len)
		return -ENAMETOOLONG;
	snprintf(out, len, "%s", (const char *)text);
	return 0;
}

int db_gpu_set_put(struct db *db, const char *member, const char *gpus)
{
	__do_finalize sqlite3_stmt *stmt = NULL;

	if (db_prepare(db, "INSERT INTO gpu_sets (member, gpus) VALUES (?, ?) "
		       "ON CONFLICT (member) DO UPDATE SET gpus = excluded.gpus", &stmt) < 0)
		return -EIO;
	sqlite3_bind_text(stmt, 1, member, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, gpus, -1, SQLITE_STATIC);
	return db_step_done(db, stmt, "GPU set update");
}

int db_hub_member_add(struct db *db, const char *member)
{
	__do_finalize sqlite3_stmt *stmt = NULL;

	if (db_prepare(db, "INSERT OR IGNORE INTO hub_members (name) VALUES (?)", &stmt) < 0)
		return -EIO;
	sqlite3_bind_text(stmt, 1, member, -1, SQLITE_STATIC);
	if (sqlite3_step(stmt) != SQLITE_DONE)
		return db_error(db, "hub member insert");
	return 0;
}

int db_hub_member_is(struct db *db, const char *member)
{
	__do_finalize sqlite3_stmt *stmt = NULL;
	int rc;

	if (db_prepare(db, "SELECT 1 FROM hub_members WHERE name = ?", &stmt) < 0)
		return -EIO;
	sqlite3_bind_text(stmt, 1, member, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return db_error(db, "hub member lookup");
}

int db_hub_member_list(struct db *db, char (**names)[MEMBER_NAME_SIZE], size_t *n)
{
	__do_finalize sqlite3_stmt *stmt = NULL;
	__do_free char (*list)[MEMBER_NAME_SIZE] = NULL;
	size_t count = 0, cap = 0;
	int rc;

	if (db_prepare(db, "SELECT name FROM hub_members ORDER BY name", &stmt) < 0)
		return -EIO;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (ARRAY_RESERVE(list, cap, count) < 0)
			return -ENOMEM;
		db_copy_text(list[count++], sizeof(list[0]), sqlite3_column_text(stmt, 0));
	}
	if (rc != SQLITE_DONE)
		return db_error(db, "hub member list");
	*names = move_ptr(list);
	*n = count;
	return 0;
}
