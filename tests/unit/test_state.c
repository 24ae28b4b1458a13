/* SPDX-License-Identifier: MIT */
/*
 * The agent's state.db (state/db.c): a file of schema version 1 is
 * upgraded at open with its rows kept; temporary limits keep the value
 * they give way to; allow-lists of forwards go with their forward; the
 * GPU reservations' records.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <sqlite3.h>

#include "state/state.h"
#include "testutil.h"
#include "banned.h"

struct fixture {
	char dir[PATH_MAX];
	char path[PATH_MAX];
	struct db *db;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f || tu_make_tempdir(f->dir, sizeof(f->dir), "/tmp/gpubox-state-XXXXXX") < 0)
		return -1;
	tu_join(f->path, sizeof(f->path), f->dir, "state.db");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	db_close(f->db);
	tu_remove_tempdir(f->dir);
	free(f);
	return 0;
}

static void add_member(struct db *db, const char *name, uint32_t n)
{
	struct member_record rec = { .uid = 30000 + n, .subid_base = 65536 * (n + 16),
				     .ssh_port = 2200 + n, .address_index = n, .created = 1 };

	snprintf(rec.name, sizeof(rec.name), "%s", name);
	assert_int_equal(db_member_insert(db, &rec), 0);
}

/* The schema of version 1 (gpubox before temporary limits and allow-lists),
 * with a member, a limit and a forward. */
static const char version1[] =
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
	"INSERT INTO members VALUES ('alice', 30001, 1048576, 2201, 1, 'default@1', 1);"
	"INSERT INTO member_limits VALUES ('alice', 'memory', '64G');"
	"INSERT INTO forwards VALUES ('alice', 8888, 30001);"
	"PRAGMA user_version = 1;";

static int user_version(const char *path)
{
	sqlite3 *handle;
	sqlite3_stmt *stmt;
	int version = -1;

	assert_int_equal(sqlite3_open(path, &handle), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(handle, "PRAGMA user_version", -1, &stmt, NULL), SQLITE_OK);
	if (sqlite3_step(stmt) == SQLITE_ROW)
		version = sqlite3_column_int(stmt, 0);
	sqlite3_finalize(stmt);
	sqlite3_close(handle);
	return version;
}

static void test_upgrade_from_version_1(void **state)
{
	struct fixture *f = *state;
	__do_free struct limit_record *limits = NULL;
	__do_free struct forward_from_record *from = NULL;
	const char *const nets[] = { "10.0.0.0/8" };
	sqlite3 *handle;
	size_t n = 0;

	assert_int_equal(sqlite3_open(f->path, &handle), SQLITE_OK);
	assert_int_equal(sqlite3_exec(handle, version1, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(handle);

	assert_int_equal(db_open(f->path, &f->db), 0);
	assert_int_equal(user_version(f->path), 3);
	/* The rows of version 1 are kept: a lasting limit, a forward. */
	assert_int_equal(db_limit_list(f->db, "alice", &limits, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(limits[0].value, "64G");
	assert_int_equal(limits[0].ends, 0);
	/* The new tables work on the old rows. */
	assert_int_equal(db_forward_from_set(f->db, "alice", 8888, nets, 1), 0);
	assert_int_equal(db_forward_from_list(f->db, NULL, &from, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(from[0].network, "10.0.0.0/8");
	assert_int_equal(db_limit_put(f->db, "alice", "memory", "128G", 5000), 0);
	free(limits);
	limits = NULL;
	assert_int_equal(db_limit_list(f->db, "alice", &limits, &n), 0);
	assert_int_equal(limits[0].ends, 5000);
	assert_true(limits[0].has_previous);
	assert_string_equal(limits[0].previous, "64G");

	/* Version 3's reservations, empty. */
	{
		__do_free struct reservation_record *reservations = NULL;

		assert_int_equal(db_reservation_list(f->db, &reservations, &n), 0);
		assert_int_equal(n, 0);
	}

	/* Opened again: nothing to upgrade, nothing lost. */
	db_close(f->db);
	f->db = NULL;
	assert_int_equal(db_open(f->path, &f->db), 0);
	free(from);
	from = NULL;
	assert_int_equal(db_forward_from_list(f->db, "alice", &from, &n), 0);
	assert_int_equal(n, 1);
}

/* A file from before schema versions (user_version 0) that lacks the
 * limits table altogether gets every table of version 2. */
static void test_upgrade_unversioned(void **state)
{
	struct fixture *f = *state;
	__do_free struct limit_record *limits = NULL;
	sqlite3 *handle;
	size_t n = 0;

	assert_int_equal(sqlite3_open(f->path, &handle), SQLITE_OK);
	assert_int_equal(sqlite3_exec(handle,
		"CREATE TABLE members (name TEXT PRIMARY KEY, uid INTEGER NOT NULL UNIQUE,"
		"  subid_base INTEGER NOT NULL UNIQUE, ssh_port INTEGER NOT NULL UNIQUE,"
		"  address_index INTEGER NOT NULL UNIQUE, template TEXT NOT NULL DEFAULT '',"
		"  created INTEGER NOT NULL);"
		"INSERT INTO members VALUES ('bob', 30002, 2097152, 2202, 2, '', 1);", NULL, NULL, NULL),
		SQLITE_OK);
	sqlite3_close(handle);
	assert_int_equal(db_open(f->path, &f->db), 0);
	assert_int_equal(user_version(f->path), 3);
	assert_int_equal(db_limit_put(f->db, "bob", "pids", "500", 5000), 0);
	assert_int_equal(db_limit_list(f->db, "bob", &limits, &n), 0);
	assert_int_equal(n, 1);
	assert_false(limits[0].has_previous);
}

static const struct limit_record *find_limit(const struct limit_record *list, size_t n,
					     const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i].key, key) == 0)
			return &list[i];
	return NULL;
}

/* A temporary value remembers the lasting one under it, across several
 * temporary values; a lasting value drops the end; rm drops both. */
static void test_limit_ends(void **state)
{
	struct fixture *f = *state;
	__do_free struct limit_record *list = NULL;
	const struct limit_record *r;
	long long next = 0;
	size_t n = 0;

	assert_int_equal(db_open(f->path, &f->db), 0);
	add_member(f->db, "alice", 1);
	assert_int_equal(db_limit_next_end(f->db, &next), -ENOENT);
	assert_int_equal(db_limit_put(f->db, "alice", "memory", "32G", 0), 0);
	assert_int_equal(db_limit_put(f->db, "alice", "memory", "128G", 2000), 0);
	assert_int_equal(db_limit_put(f->db, "alice", "memory", "256G", 3000), 0);
	assert_int_equal(db_limit_put(f->db, "alice", "pids", "900", 1000), 0);
	assert_int_equal(db_limit_list(f->db, "alice", &list, &n), 0);
	assert_int_equal(n, 2);
	r = find_limit(list, n, "memory");
	assert_non_null(r);
	assert_string_equal(r->value, "256G");
	assert_int_equal(r->ends, 3000);
	assert_true(r->has_previous);
	assert_string_equal(r->previous, "32G");
	r = find_limit(list, n, "pids");
	assert_non_null(r);
	assert_false(r->has_previous);
	assert_int_equal(db_limit_next_end(f->db, &next), 0);
	assert_int_equal(next, 1000);

	/* Ended at 2500: pids only. */
	free(list);
	list = NULL;
	assert_int_equal(db_limit_ended(f->db, 2500, &list, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].key, "pids");

	/* Told once; a new end is told again. */
	assert_false(list[0].warned);
	assert_int_equal(db_limit_set_warned(f->db, "alice", "pids", 1000), 0);
	assert_int_equal(db_limit_set_warned(f->db, "alice", "pids", 999), -ENOENT);
	free(list);
	list = NULL;
	assert_int_equal(db_limit_ended(f->db, 2500, &list, &n), 0);
	assert_true(list[0].warned);
	assert_int_equal(db_limit_put(f->db, "alice", "pids", "900", 2000), 0);
	free(list);
	list = NULL;
	assert_int_equal(db_limit_ended(f->db, 3000, &list, &n), 0);
	assert_int_equal(n, 2);
	assert_false(find_limit(list, n, "pids")->warned);

	/* A lasting value: the end is gone. */
	assert_int_equal(db_limit_put(f->db, "alice", "memory", "48G", 0), 0);
	assert_int_equal(db_limit_remove(f->db, "alice", "pids"), 0);
	assert_int_equal(db_limit_next_end(f->db, &next), -ENOENT);
	free(list);
	list = NULL;
	assert_int_equal(db_limit_list(f->db, "alice", &list, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].value, "48G");
	assert_int_equal(list[0].ends, 0);
	assert_false(list[0].has_previous);
}

/* A port's list replaces the old one; it goes with its forward, and with
 * the member. */
static void test_forward_from(void **state)
{
	struct fixture *f = *state;
	__do_free struct forward_from_record *list = NULL;
	const char *const two[] = { "10.0.0.0/8", "2001:db8::/32" };
	const char *const any[] = { "any" };
	size_t n = 0;

	assert_int_equal(db_open(f->path, &f->db), 0);
	add_member(f->db, "alice", 1);
	add_member(f->db, "bob", 2);
	assert_int_equal(db_forward_add(f->db, "alice", 8888, 30001), 0);
	assert_int_equal(db_forward_from_set(f->db, "alice", 8888, two, 2), 0);
	assert_int_equal(db_forward_from_set(f->db, "alice", 22, any, 1), 0);
	assert_int_equal(db_forward_from_set(f->db, "bob", 22, two, 1), 0);
	assert_int_equal(db_forward_from_list(f->db, "alice", &list, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(list[0].container_port, 22);
	assert_string_equal(list[0].network, "any");
	assert_string_equal(list[1].network, "10.0.0.0/8");
	assert_string_equal(list[2].network, "2001:db8::/32");

	/* Replaced, then gone with the forward; the SSH port's stays. */
	assert_int_equal(db_forward_from_set(f->db, "alice", 8888, two + 1, 1), 0);
	free(list);
	list = NULL;
	assert_int_equal(db_forward_from_list(f->db, "alice", &list, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(db_forward_remove(f->db, "alice", 8888), 0);
	free(list);
	list = NULL;
	assert_int_equal(db_forward_from_list(f->db, "alice", &list, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(list[0].container_port, 22);
	/* No list of its own: the default applies. */
	assert_int_equal(db_forward_from_set(f->db, "alice", 22, NULL, 0), 0);
	free(list);
	list = NULL;
	assert_int_equal(db_forward_from_list(f->db, "alice", &list, &n), 0);
	assert_int_equal(n, 0);
	/* Gone with the member. */
	assert_int_equal(db_member_delete(f->db, "bob"), 0);
	free(list);
	list = NULL;
	assert_int_equal(db_forward_from_list(f->db, NULL, &list, &n), 0);
	assert_int_equal(n, 0);
}

/* The reservations' records: ids never given twice, gone with their member. */
static void test_reservations(void **state)
{
	struct fixture *f = *state;
	struct reservation_record r = { .member = "alice", .gpus = "GPU-1 GPU-3", .count = 2,
					.active = true, .created_ms = 1000, .start_ms = 1000,
					.until_ms = 3601000, .seconds = 3600 };
	struct reservation_record q = { .member = "alice", .count = 1, .created_ms = 2000,
					.seconds = 60 };
	struct reservation_record *list = NULL;
	struct db *db;
	size_t n = 0;
	long long first;

	assert_int_equal(db_open(f->path, &f->db), 0);
	db = f->db;
	add_member(db, "alice", 1);
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
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_upgrade_from_version_1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upgrade_unversioned, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limit_ends, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forward_from, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reservations, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
