/* SPDX-License-Identifier: MIT */
/*
 * sqldb.c against a real SQLite file in a temporary directory: the file's
 * mode and pragmas at open, a statement table that does not prepare, every
 * letter of the binder and a type string that does not fit, the errors as
 * errnos (constraint, busy), the reset of __do_reset, the rows helpers,
 * transactions with their guard, the lock, and schema versions.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include <sqlite3.h>

#include "testutil.h"
#include "sqldb.h"
#include "banned.h"

enum test_stmt {
	T_INSERT_PARENT, T_INSERT_CHILD, T_COUNT_PARENTS, T_ECHO, T_NAMES, T_NAME_BY_ID,
	T_RENAME, T_COUNT
};

static const char *const test_sql[T_COUNT] = {
	[T_INSERT_PARENT] = "INSERT INTO parents (id, name) VALUES (?1, ?2)",
	[T_INSERT_CHILD] = "INSERT INTO children (parent) VALUES (?1)",
	[T_COUNT_PARENTS] = "SELECT count(*) FROM parents",
	[T_ECHO] = "SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8",
	[T_NAMES] = "SELECT name FROM parents ORDER BY id",
	[T_NAME_BY_ID] = "SELECT name FROM parents WHERE id = ?1",
	[T_RENAME] = "UPDATE parents SET name = ?2 WHERE id = ?1",
};

static const char test_schema[] =
	"CREATE TABLE IF NOT EXISTS parents (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
	"CREATE TABLE IF NOT EXISTS children (parent INTEGER NOT NULL REFERENCES parents(id));";

struct fixture {
	char dir[PATH_MAX];
	char path[PATH_MAX];
	struct sqldb *db;
};

static struct sqldb_options test_options(void)
{
	return (struct sqldb_options){
		.name = "test",
		.flags = SQLDB_WAL | SQLDB_SYNC_NORMAL | SQLDB_FOREIGN_KEYS,
		.mode = 0600,
		.schema = test_schema,
		.sql = test_sql,
		.nsql = T_COUNT,
		.busy_timeout_ms = 100,
	};
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct sqldb_options options = test_options();

	if (!f || tu_make_tempdir(f->dir, sizeof(f->dir), "/tmp/test-sqldb-XXXXXX") < 0)
		return -1;
	tu_join(f->path, sizeof(f->path), f->dir, "test.db");
	if (sqldb_open(f->path, &options, &f->db) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	sqldb_close(f->db);
	tu_remove_tempdir(f->dir);
	free(f);
	return 0;
}

/* A one-off query of one integer on db's connection. */
static long long query_int(struct sqldb *db, const char *sql)
{
	sqlite3_stmt *stmt = NULL;
	long long value;

	assert_int_equal(sqlite3_prepare_v2(sqldb_handle(db), sql, -1, &stmt, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
	value = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	return value;
}

static long long count_parents(struct sqldb *db)
{
	__do_reset sqlite3_stmt *stmt = sqldb_stmt(db, T_COUNT_PARENTS);

	assert_int_equal(sqldb_first_row(db, stmt, "count"), 0);
	return sqlite3_column_int64(stmt, 0);
}

/* ---- open ----------------------------------------------------------------- */

static void test_open_mode_and_pragmas(void **state)
{
	struct fixture *f = *state;
	struct sqldb_options options = test_options();
	char path[PATH_MAX], wal[PATH_MAX + 8];
	struct sqldb *db = NULL;
	struct stat st;
	int fd;

	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	/* The journal, made at the first write, takes the file's mode. */
	assert_int_equal(sqldb_exec(f->db, T_INSERT_PARENT, NULL, "it", 1LL, "a"), 0);
	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	assert_int_equal(stat(wal, &st), 0);
	assert_int_equal(st.st_mode & 0077, 0);
	assert_int_equal(query_int(f->db, "PRAGMA foreign_keys"), 1);
	assert_int_equal(query_int(f->db, "PRAGMA synchronous"), 1);

	/* A file that was there with another mode is set to the mode. */
	tu_join(path, sizeof(path), f->dir, "open.db");
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(fchmod(fd, 0644), 0);
	close(fd);
	options.flags = SQLDB_WAL;
	assert_int_equal(sqldb_open(path, &options, &db), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(query_int(db, "PRAGMA foreign_keys"), 0);
	assert_int_equal(query_int(db, "PRAGMA synchronous"), 2);
	{
		sqlite3_stmt *stmt = NULL;

		assert_int_equal(sqlite3_prepare_v2(sqldb_handle(db), "PRAGMA journal_mode", -1,
						    &stmt, NULL), SQLITE_OK);
		assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
		assert_string_equal((const char *)sqlite3_column_text(stmt, 0), "wal");
		sqlite3_finalize(stmt);
	}
	sqldb_close(db);
	sqldb_close(NULL);
}

static void test_open_refused(void **state)
{
	struct fixture *f = *state;
	struct sqldb_options options = test_options();
	static const char *const bad_sql[] = { "SELECT nothing FROM nowhere" };
	char path[PATH_MAX], link_path[PATH_MAX];
	struct sqldb *db = NULL;

	tu_join(path, sizeof(path), f->dir, "bad.db");
	options.sql = bad_sql;
	options.nsql = 1;
	assert_int_equal(sqldb_open(path, &options, &db), -EIO);
	assert_null(db);

	options = test_options();
	options.schema = "CREATE TABLE broken (";
	assert_int_equal(sqldb_open(path, &options, &db), -EIO);
	assert_null(db);

	/* A link is never followed. */
	tu_join(link_path, sizeof(link_path), f->dir, "link.db");
	assert_int_equal(symlink(f->path, link_path), 0);
	options = test_options();
	assert_int_equal(sqldb_open(link_path, &options, &db), -ELOOP);
	assert_null(db);

	/* Read-only, without the mode: the file must be there. */
	tu_join(path, sizeof(path), f->dir, "absent.db");
	options = (struct sqldb_options){ .name = "test", .flags = SQLDB_READONLY };
	assert_int_equal(sqldb_open(path, &options, &db), -EIO);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(sqldb_open(NULL, &options, &db), -EINVAL);
}

/* ---- binding -------------------------------------------------------------- */

static void test_bind_types(void **state)
{
	struct fixture *f = *state;
	const char unterminated[4] = { 'a', 'b', 'c', 'd' };
	const unsigned char blob[3] = { 0, 1, 2 };
	__do_reset sqlite3_stmt *stmt = NULL;
	double nan = 0.0 / 0.0;

	stmt = sqldb_bind(f->db, T_ECHO, "tsinnrrb", "text", unterminated, sizeof(unterminated),
			  42LL, -1LL, 7LL, 2.5, nan, blob, sizeof(blob));
	assert_non_null(stmt);
	assert_int_equal(sqldb_first_row(f->db, stmt, NULL), 0);
	assert_string_equal((const char *)sqlite3_column_text(stmt, 0), "text");
	assert_string_equal((const char *)sqlite3_column_text(stmt, 1), "abcd");
	assert_int_equal(sqlite3_column_int64(stmt, 2), 42);
	assert_int_equal(sqlite3_column_type(stmt, 3), SQLITE_NULL);
	assert_int_equal(sqlite3_column_int64(stmt, 4), 7);
	assert_true(sqlite3_column_double(stmt, 5) == 2.5);
	assert_int_equal(sqlite3_column_type(stmt, 6), SQLITE_NULL);
	assert_int_equal(sqlite3_column_type(stmt, 7), SQLITE_BLOB);
	assert_int_equal(sqlite3_column_bytes(stmt, 7), 3);
	assert_memory_equal(sqlite3_column_blob(stmt, 7), blob, 3);
	sqldb_resetp(&stmt);

	/* NULL text is NULL, for 't' and 's' alike. */
	stmt = sqldb_bind(f->db, T_ECHO, "tsiiiiii", NULL, NULL, (size_t)4, 1LL, 2LL, 3LL, 4LL, 5LL,
			  6LL);
	assert_int_equal(sqldb_first_row(f->db, stmt, NULL), 0);
	assert_int_equal(sqlite3_column_type(stmt, 0), SQLITE_NULL);
	assert_int_equal(sqlite3_column_type(stmt, 1), SQLITE_NULL);
	assert_int_equal(sqlite3_column_int64(stmt, 7), 6);
}

static void test_bind_bad_types(void **state)
{
	struct fixture *f = *state;

	/* An unknown letter, too few, too many, none. */
	assert_null(sqldb_bind(f->db, T_INSERT_PARENT, "ix", 1LL, "a"));
	assert_null(sqldb_bind(f->db, T_INSERT_PARENT, "i", 1LL));
	assert_null(sqldb_bind(f->db, T_INSERT_PARENT, "itt", 1LL, "a", "b"));
	assert_null(sqldb_bind(f->db, T_INSERT_PARENT, NULL));
	assert_null(sqldb_bind(f->db, T_COUNT, ""));
	assert_null(sqldb_stmt(f->db, T_COUNT));
	assert_int_equal(sqldb_exec(f->db, T_INSERT_PARENT, NULL, "iz", 1LL, "a"), -EINVAL);
	assert_int_equal(sqldb_run(f->db, NULL, "nothing"), -EINVAL);
	assert_int_equal(sqldb_first_row(f->db, NULL, "nothing"), -EINVAL);
	assert_int_equal(count_parents(f->db), 0);
	/* The statement is whole again afterwards. */
	assert_int_equal(sqldb_exec(f->db, T_INSERT_PARENT, NULL, "it", 1LL, "a"), 0);
	assert_int_equal(count_parents(f->db), 1);
}

/* ---- errors ----------------------------------------------------------------- */

/* A change that touched no row is -ENOENT; one that did is 0. */
static void test_change(void **state)
{
	struct fixture *f = *state;
	__do_reset sqlite3_stmt *stmt = NULL;
	char name[16];

	assert_int_equal(sqldb_change(f->db, T_RENAME, "rename", "it", 1LL, "b"), -ENOENT);
	assert_int_equal(sqldb_exec(f->db, T_INSERT_PARENT, "parent", "it", 1LL, "a"), 0);
	assert_int_equal(sqldb_change(f->db, T_RENAME, "rename", "it", 1LL, "b"), 0);
	assert_int_equal(sqldb_change(f->db, T_RENAME, "rename", "it", 2LL, "c"), -ENOENT);
	stmt = sqldb_bind(f->db, T_NAME_BY_ID, "i", 1LL);
	assert_int_equal(sqldb_first_row(f->db, stmt, "name"), 0);
	assert_int_equal(sqldb_column_text(stmt, 0, name, sizeof(name)), 0);
	assert_string_equal(name, "b");
}

static void test_constraint(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(sqldb_exec(f->db, T_INSERT_PARENT, "parent", "it", 1LL, "a"), 0);
	assert_int_equal(sqldb_changes(f->db), 1);
	assert_int_equal(sqldb_last_insert_rowid(f->db), 1);
	/* The primary key, a UNIQUE column, NOT NULL, a foreign key. */
	assert_int_equal(sqldb_exec(f->db, T_INSERT_PARENT, "parent", "it", 1LL, "b"), -EEXIST);
	assert_int_equal(sqldb_exec(f->db, T_INSERT_PARENT, "parent", "it", 2LL, "a"), -EEXIST);
	assert_int_equal(sqldb_exec(f->db, T_INSERT_PARENT, "parent", "it", 3LL, NULL), -EEXIST);
	assert_int_equal(sqldb_exec(f->db, T_INSERT_CHILD, "child", "i", 9LL), -EEXIST);
	assert_int_equal(sqldb_exec(f->db, T_INSERT_CHILD, "child", "i", 1LL), 0);
	assert_int_equal(count_parents(f->db), 1);
}

static void test_busy(void **state)
{
	struct fixture *f = *state;
	struct sqldb_options options = test_options();
	struct sqldb *other = NULL;
	struct timespec start, end;
	long long ms;

	assert_int_equal(sqldb_open(f->path, &options, &other), 0);
	assert_int_equal(sqldb_begin(other, true), 0);
	assert_int_equal(sqldb_exec(other, T_INSERT_PARENT, NULL, "it", 5LL, "other"), 0);
	clock_gettime(CLOCK_MONOTONIC, &start);
	assert_int_equal(sqldb_begin(f->db, true), -EBUSY);
	clock_gettime(CLOCK_MONOTONIC, &end);
	ms = (end.tv_sec - start.tv_sec) * 1000 + (end.tv_nsec - start.tv_nsec) / 1000000;
	/* It waited for the timeout first. */
	assert_true(ms >= 90);
	/* A reader is not held up by the writer (WAL), nor sees its change. */
	assert_int_equal(count_parents(f->db), 0);
	assert_int_equal(sqldb_commit(other), 0);
	assert_int_equal(count_parents(f->db), 1);
	assert_int_equal(sqldb_exec(f->db, T_INSERT_PARENT, NULL, "it", 6LL, "mine"), 0);
	sqldb_close(other);
}

/* ---- __do_reset ------------------------------------------------------------ */

static sqlite3_stmt *read_one_name(struct sqldb *db)
{
	__do_reset sqlite3_stmt *stmt = sqldb_bind(db, T_NAME_BY_ID, "i", 1LL);

	assert_int_equal(sqldb_first_row(db, stmt, NULL), 0);
	assert_string_equal((const char *)sqlite3_column_text(stmt, 0), "a");
	/* Mid-read: a read transaction stays open until the reset. */
	assert_true(sqlite3_stmt_busy(stmt));
	assert_int_equal(sqlite3_get_autocommit(sqldb_handle(db)), 1);
	return stmt;
}

static void test_reset_at_scope_exit(void **state)
{
	struct fixture *f = *state;
	sqlite3_stmt *stmt;

	assert_int_equal(sqldb_exec(f->db, T_INSERT_PARENT, NULL, "it", 1LL, "a"), 0);
	stmt = read_one_name(f->db);
	/* Reset, and the binding cleared: ?1 is NULL now, no row. */
	assert_false(sqlite3_stmt_busy(stmt));
	assert_int_equal(sqlite3_step(stmt), SQLITE_DONE);
	sqlite3_reset(stmt);
	/* The statement handed out again is the same one, reset. */
	assert_ptr_equal(sqldb_stmt(f->db, T_NAME_BY_ID), stmt);
	{
		__do_reset sqlite3_stmt *none = NULL;

		(void)none;
	}
}

/* ---- rows ------------------------------------------------------------------- */

struct name_row {
	char name[4];
};

static void name_from_row(sqlite3_stmt *stmt, void *element)
{
	struct name_row *row = element;

	sqldb_copy_text(row->name, sizeof(row->name), sqlite3_column_text(stmt, 0));
}

static int stop_at_b(sqlite3_stmt *stmt, void *context)
{
	int *seen = context;

	(*seen)++;
	return strcmp((const char *)sqlite3_column_text(stmt, 0), "b") == 0 ? -ECANCELED : 0;
}

static void test_rows(void **state)
{
	struct fixture *f = *state;
	static const char *const names[] = { "a", "b", "long name", "d" };
	struct name_row *list = NULL;
	char text[4];
	void *raw = NULL;
	size_t n = 99;
	int seen = 0;

	{
		__do_reset sqlite3_stmt *stmt = sqldb_stmt(f->db, T_NAMES);

		assert_int_equal(sqldb_collect(f->db, stmt, "names", sizeof(*list), name_from_row,
					       &raw, &n), 0);
		assert_null(raw);
		assert_int_equal(n, 0);
	}
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		assert_int_equal(sqldb_exec(f->db, T_INSERT_PARENT, NULL, "it", (long long)i + 1,
					    names[i]), 0);
	{
		__do_reset sqlite3_stmt *stmt = sqldb_stmt(f->db, T_NAMES);

		assert_int_equal(sqldb_collect(f->db, stmt, "names", sizeof(*list), name_from_row,
					       &raw, &n), 0);
	}
	list = raw;
	assert_int_equal(n, 4);
	assert_string_equal(list[0].name, "a");
	assert_string_equal(list[2].name, "lon");     /* cut to fit */
	assert_string_equal(list[3].name, "d");
	free(list);
	{
		__do_reset sqlite3_stmt *stmt = sqldb_stmt(f->db, T_NAMES);

		assert_int_equal(sqldb_each_row(f->db, stmt, "names", stop_at_b, &seen), -ECANCELED);
		assert_int_equal(seen, 2);
	}
	{
		__do_reset sqlite3_stmt *stmt = sqldb_bind(f->db, T_NAME_BY_ID, "i", 4LL);

		assert_int_equal(sqldb_first_row(f->db, stmt, NULL), 0);
		assert_int_equal(sqldb_column_text(stmt, 0, text, sizeof(text)), 0);
		assert_string_equal(text, "d");
	}
	{
		__do_reset sqlite3_stmt *stmt = sqldb_bind(f->db, T_NAME_BY_ID, "i", 3LL);

		assert_int_equal(sqldb_first_row(f->db, stmt, NULL), 0);
		assert_int_equal(sqldb_column_text(stmt, 0, text, sizeof(text)), -ENAMETOOLONG);
	}
	{
		__do_reset sqlite3_stmt *stmt = sqldb_bind(f->db, T_NAME_BY_ID, "i", 9LL);

		assert_int_equal(sqldb_first_row(f->db, stmt, NULL), -ENOENT);
	}
}

/* ---- transactions --------------------------------------------------------------- */

static int insert_in_txn(struct sqldb *db, long long id, const char *name, bool commit)
{
	__do_txn struct sqldb_txn txn = { 0 };
	int ret = sqldb_txn_begin(&txn, db, true);

	if (ret == 0)
		ret = sqldb_exec(db, T_INSERT_PARENT, NULL, "it", id, name);
	if (ret == 0 && commit)
		ret = sqldb_txn_commit(&txn);
	return ret;
}

static void test_transactions(void **state)
{
	struct fixture *f = *state;

	/* Left uncommitted: rolled back at scope exit. */
	assert_int_equal(insert_in_txn(f->db, 1, "a", false), 0);
	assert_int_equal(sqlite3_get_autocommit(sqldb_handle(f->db)), 1);
	assert_int_equal(count_parents(f->db), 0);
	assert_int_equal(insert_in_txn(f->db, 1, "a", true), 0);
	assert_int_equal(count_parents(f->db), 1);
	/* A failed statement inside: nothing of it stays. */
	assert_int_equal(insert_in_txn(f->db, 1, "again", true), -EEXIST);
	assert_int_equal(sqlite3_get_autocommit(sqldb_handle(f->db)), 1);

	/* The plain calls; a rollback without a transaction does nothing. */
	sqldb_rollback(f->db);
	assert_int_equal(sqldb_begin(f->db, false), 0);
	assert_int_equal(sqlite3_get_autocommit(sqldb_handle(f->db)), 0);
	assert_int_equal(sqldb_begin(f->db, true), -EIO);    /* no nesting */
	assert_int_equal(sqldb_exec(f->db, T_INSERT_PARENT, NULL, "it", 2LL, "b"), 0);
	sqldb_rollback(f->db);
	assert_int_equal(count_parents(f->db), 1);
	assert_int_equal(sqldb_commit(f->db), -EIO);          /* none open */
	assert_int_equal(sqldb_begin(f->db, true), 0);
	assert_int_equal(sqldb_exec(f->db, T_INSERT_PARENT, NULL, "it", 2LL, "b"), 0);
	assert_int_equal(sqldb_commit(f->db), 0);
	assert_int_equal(count_parents(f->db), 2);
}

/* ---- the lock ------------------------------------------------------------------- */

struct locker {
	struct sqldb *db;
	atomic_int got;
};

static void *take_lock(void *arg)
{
	struct locker *l = arg;
	__do_unlock struct sqldb *locked = sqldb_lock(l->db);

	atomic_store(&l->got, 1);
	return NULL;
}

static void test_lock(void **state)
{
	struct fixture *f = *state;
	struct locker l = { .db = f->db };
	struct timespec pause = { .tv_nsec = 50000000 };
	pthread_t thread;

	{
		__do_unlock struct sqldb *locked = sqldb_lock(f->db);

		assert_int_equal(pthread_create(&thread, NULL, take_lock, &l), 0);
		nanosleep(&pause, NULL);
		assert_int_equal(atomic_load(&l.got), 0);
	}
	assert_int_equal(pthread_join(thread, NULL), 0);
	assert_int_equal(atomic_load(&l.got), 1);
	/* And the thread let it go. */
	{
		__do_unlock struct sqldb *locked = sqldb_lock(f->db);
	}
}

/* ---- schema versions ------------------------------------------------------ */

/* Version 2 adds parents.note; version 3 a table. */
static const char *const test_upgrades[] = {
	"ALTER TABLE parents ADD COLUMN note TEXT NOT NULL DEFAULT '';",
	"CREATE TABLE third (x INTEGER);",
};

static int legacy_two(sqlite3 *handle, int *version)
{
	(void)handle;
	*version = 2;
	return 0;
}

/* Open path at version (the statements left out), then close. */
static int open_versioned(const char *path, int version, int (*legacy)(sqlite3 *, int *))
{
	struct sqldb_options options = test_options();
	struct sqldb *db = NULL;
	int ret;

	options.sql = NULL;
	options.nsql = 0;
	options.version = version;
	options.upgrades = test_upgrades;
	options.legacy_version = legacy;
	ret = sqldb_open(path, &options, &db);
	sqldb_close(db);
	return ret;
}

static long long file_int(const char *path, const char *sql)
{
	struct sqldb_options options = { .name = "peek", .flags = SQLDB_READONLY };
	struct sqldb *db = NULL;
	long long value;

	assert_int_equal(sqldb_open(path, &options, &db), 0);
	value = query_int(db, sql);
	sqldb_close(db);
	return value;
}

static void test_versions(void **state)
{
	struct fixture *f = *state;
	char fresh[PATH_MAX];

	/* The fixture's file is unversioned: from before versions, read as 1
	 * and taken through both upgrades in one open, its rows kept. */
	assert_int_equal(sqldb_exec(f->db, T_INSERT_PARENT, NULL, "it", 1LL, "kept"), 0);
	assert_int_equal(file_int(f->path, "PRAGMA user_version"), 0);
	assert_int_equal(open_versioned(f->path, 3, NULL), 0);
	assert_int_equal(file_int(f->path, "PRAGMA user_version"), 3);
	assert_int_equal(file_int(f->path, "SELECT count(*) FROM parents WHERE name = 'kept' AND note = ''"), 1);
	assert_int_equal(file_int(f->path, "SELECT count(*) FROM third"), 0);
	/* Opened again at the same version: nothing runs twice (ALTER would fail). */
	assert_int_equal(open_versioned(f->path, 3, NULL), 0);
	/* An older program refuses it, and leaves it as it was. */
	assert_int_equal(open_versioned(f->path, 2, NULL), -EPROTONOSUPPORT);
	assert_int_equal(file_int(f->path, "PRAGMA user_version"), 3);

	/* A new file is made at the newest version, without upgrades. */
	tu_join(fresh, sizeof(fresh), f->dir, "fresh.db");
	assert_int_equal(open_versioned(fresh, 1, NULL), 0);
	assert_int_equal(file_int(fresh, "PRAGMA user_version"), 1);
	assert_int_equal(file_int(fresh, "SELECT count(*) FROM sqlite_master WHERE name = 'third'"), 0);
	assert_int_equal(open_versioned(fresh, 2, NULL), 0);
	assert_int_equal(file_int(fresh, "PRAGMA user_version"), 2);
	assert_int_equal(unlink(fresh), 0);

	/* An old file that says its own version (legacy_version) starts there. */
	tu_join(fresh, sizeof(fresh), f->dir, "legacy.db");
	{
		struct sqldb_options plain = test_options();
		struct sqldb *db = NULL;

		plain.sql = NULL;
		plain.nsql = 0;
		assert_int_equal(sqldb_open(fresh, &plain, &db), 0);
		assert_int_equal(sqlite3_exec(sqldb_handle(db), "ALTER TABLE parents ADD COLUMN note TEXT",
					      NULL, NULL, NULL), SQLITE_OK);
		sqldb_close(db);
	}
	assert_int_equal(open_versioned(fresh, 3, legacy_two), 0);
	assert_int_equal(file_int(fresh, "PRAGMA user_version"), 3);
	assert_int_equal(file_int(fresh, "SELECT count(*) FROM third"), 0);
	/* ... and one that says a version newer than the program's is refused. */
	assert_int_equal(unlink(fresh), 0);
	assert_int_equal(open_versioned(fresh, 0, NULL), 0);
	assert_int_equal(open_versioned(fresh, 1, legacy_two), -EPROTONOSUPPORT);
	assert_int_equal(file_int(fresh, "PRAGMA user_version"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_mode_and_pragmas, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bind_types, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bind_bad_types, setup, teardown),
		cmocka_unit_test_setup_teardown(test_change, setup, teardown),
		cmocka_unit_test_setup_teardown(test_constraint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_at_scope_exit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_versions, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
