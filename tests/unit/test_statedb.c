/* SPDX-License-Identifier: MIT */
/*
 * The agent's state.db (state/db.c): a file of schema version 1, as the
 * agent before reservations wrote it, is brought to version 2 at open
 * with its rows kept; the reservations' records.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <sqlite3.h>

#include "state/state.h"
#include "testutil.h"
#include "banned.h"

/* Version 1's tables, as they were. */
static const char v1_schema[] =
	"CREATE TABLE members (name TEXT PRIMARY KEY, uid INTEGER NOT NULL UNIQUE,"
	"  subid_base INTEGER NOT NULL UNIQUE, ssh_port INTEGER NOT NULL UNIQUE,"
	"  address_index INTEGER NOT NULL UNIQUE, template TEXT NOT NULL DEFAULT '',"
	"  created INTEGER NOT NULL);"
	"CREATE TABLE keys (member TEXT NOT NULL REFERENCES members(name) ON DELETE CASCADE,"
	"  fingerprint TEXT NOT NULL, line TEXT NOT NULL, PRIMARY KEY (member, fingerprint));"
	"CREATE TABLE forwards (member TEXT NOT NULL REFERENCES members(name) ON DELETE CASCADE,"
	"  container_port INTEGER NOT NULL, host_port INTEGER NOT NULL UNIQUE,"
	"  PRIMARY KEY (member, container_port));"
	"CREATE TABLE gpu_sets (member TEXT PRIMARY KEY REFERENCES members(name) ON DELETE CASCADE,"
	"  gpus TEXT NOT NULL);"
	"CREATE TABLE hub_members (name TEXT PRIMARY KEY REFERENCES members(name) ON DELETE CASCADE);"
	"CREATE TABLE member_ids (name TEXT PRIMARY KEY REFERENCES members(name) ON DELETE CASCADE,"
	"  id TEXT NOT NULL UNIQUE);"
	"CREATE TRIGGER member_id_new AFTER INSERT ON members BEGIN"
	"  INSERT INTO member_ids (name, id) VALUES (new.name, lower(hex(randomblob(16)))); END;"
	"CREATE TABLE member_limits (member TEXT NOT NULL REFERENCES members(name) ON DELETE CASCADE,"
	"  key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (member, key));"
	"INSERT INTO members VALUES ('alice', 20000, 1000000, 2200, 2, '', 1700000000);"
	"INSERT INTO gpu_sets VALUES ('alice', 'GPU-1');"
	"PRAGMA user_version = 1;";

struct fixture {
	char dir[PATH_MAX];
	char path[PATH_MAX];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f || tu_make_tempdir(f->dir, sizeof(f->dir), "/tmp/gbx-statedb.XXXXXX") < 0)
		return -1;
	tu_join(f->path, sizeof(f->path), f->dir, "state.db");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	tu_remove_tempdir(f->dir);
	free(f);
	return 0;
}

static int file_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *stmt = NULL;
	int value = -1;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
	if (sqlite3_step(stmt) == SQLITE_ROW)
		value = sqlite3_column_int(stmt, 0);
	sqlite3_finalize(stmt);
	sqlite3_close(db);
	return value;
}

static void make_v1(const char *path)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, v1_schema, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static void test_upgrade_v1(void **state)
{
	struct fixture *f = *state;
	struct member_record rec;
	struct reservation_record *list = NULL;
	struct db *db = NULL;
	char gpus[64];
	size_t n = 9;

	make_v1(f->path);
	assert_int_equal(file_int(f->path, "PRAGMA user_version"), 1);
	assert_int_equal(db_open(f->path, &db), 0);
	/* The rows of version 1 are all there, and the new table, empty. */
	assert_int_equal(db_member_get(db, "alice", &rec), 0);
	assert_int_equal(rec.uid, 20000);
	assert_int_equal(db_gpu_set_get(db, "alice", gpus, sizeof(gpus)), 0);
	assert_string_equal(gpus, "GPU-1");
	assert_int_equal(db_reservation_list(db, &list, &n), 0);
	assert_int_equal(n, 0);
	free(list);
	db_close(db);
	assert_int_equal(file_int(f->path, "PRAGMA user_version"), 3);
	/* Opened again: nothing runs twice. */
	assert_int_equal(db_open(f->path, &db), 0);
	db_close(db);
	assert_int_equal(file_int(f->path, "SELECT count(*) FROM reservations"), 0);
}

static void test_reservations(void **state)
{
	struct fixture *f = *state;
	struct reservation_record r = { .member = "alice", .gpus = "GPU-1 GPU-3", .count = 2,
					.active = true, .created_ms = 1000, .start_ms = 1000,
					.until_ms = 3601000, .seconds = 3600 };
	struct reservation_record q = { .member = "alice", .count = 1, .created_ms = 2000,
					.seconds = 60 };
	struct reservation_record *list = NULL;
	struct db *db = NULL;
	size_t n = 0;
	long long first;

	make_v1(f->path);
	assert_int_equal(db_open(f->path, &db), 0);
	assert_int_equal(db_reservation_add(db, &r), 0);
	assert_int_equal(db_reservation_add(db, &q), 0);
	assert_true(q.id > r.id);
	first = r.id;
	assert_int_equal(db_reservation_list(db, &list, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(list[0].id, first);
	assert_string_equal(list[0].gpus, "GPU-1 GPU-3");
	assert_true(list[0].active);
	assert_int_equal(list[0].until_ms, 3601000);
	assert_false(list[1].active);
	assert_string_equal(list[1].gpus, "");
	free(list);

	/* A queued one granted; granted twice it is not. */
	assert_int_equal(db_reservation_activate(db, q.id, "GPU-2", 5000, 65000), 0);
	assert_int_equal(db_reservation_activate(db, q.id, "GPU-2", 5000, 65000), -ENOENT);
	assert_int_equal(db_reservation_extend(db, q.id, 125000, 60), 0);
	assert_int_equal(db_reservation_list(db, &list, &n), 0);
	assert_true(list[1].active);
	assert_string_equal(list[1].gpus, "GPU-2");
	assert_int_equal(list[1].until_ms, 125000);
	free(list);

	/* Ids are never given again, even after the newest is removed. */
	assert_int_equal(db_reservation_remove(db, q.id), 0);
	assert_int_equal(db_reservation_remove(db, q.id), -ENOENT);
	q.id = 0;
	assert_int_equal(db_reservation_add(db, &q), 0);
	assert_true(q.id > first + 1);
	/* They go with their member. */
	assert_int_equal(db_member_delete(db, "alice"), 0);
	assert_int_equal(db_reservation_list(db, &list, &n), 0);
	assert_int_equal(n, 0);
	free(list);
	db_close(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_upgrade_v1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reservations, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
