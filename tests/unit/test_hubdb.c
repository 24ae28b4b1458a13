/* SPDX-License-Identifier: MIT */
/* The hub's database: allocations that never overlap and never move,
 * tokens and sessions that verify only when right, the generation that
 * agents poll, and the sync document they read. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <sqlite3.h>

#include "hub.h"
#include "testutil.h"
#include "banned.h"

struct fixture {
	char dir[PATH_MAX];
	char path[PATH_MAX];
	struct hub_config cfg;
	struct hubdb *db;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f || tu_make_tempdir(f->dir, sizeof(f->dir), "/tmp/test-hubdb-XXXXXX") < 0)
		return -1;
	tu_join(f->path, sizeof(f->path), f->dir, "hub.db");
	hubconf_set_defaults(&f->cfg);
	if (hubdb_open(f->path, &f->cfg, &f->db) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	hubdb_close(f->db);
	tu_remove_tempdir(f->dir);
	free(f);
	return 0;
}

static void reopen(struct fixture *f)
{
	hubdb_close(f->db);
	f->db = NULL;
	assert_int_equal(hubdb_open(f->path, &f->cfg, &f->db), 0);
}

static bool blocks_overlap(uint32_t a, uint32_t b)
{
	return a < b + 65536u && b < a + 65536u;
}

static void test_file_mode(void **state)
{
	struct fixture *f = *state;
	struct stat st;

	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_allocation(void **state)
{
	static const char *const names[] = { "alice", "bob", "carol", "dave", "erin" };
	struct fixture *f = *state;
	struct hub_member m[ARRAY_SIZE(names)], again;

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		assert_int_equal(hubdb_member_ensure(f->db, names[i], NULL, &m[i]), 0);
		assert_string_equal(m[i].name, names[i]);
		assert_string_equal(m[i].display_name, names[i]);
		/* Lowest free first. */
		assert_int_equal(m[i].uid, 20000 + i);
		assert_int_equal(m[i].ssh_port, 2200 + i);
		assert_int_equal(m[i].subid_base % 65536, 0);
		assert_true(m[i].subid_base >= f->cfg.subid_range.first);
		assert_true((uint64_t)m[i].subid_base + 65535 <= f->cfg.subid_range.last);
		for (size_t j = 0; j < i; j++)
			assert_false(blocks_overlap(m[i].subid_base, m[j].subid_base));
		assert_false(m[i].disabled);
		assert_false(m[i].admin);
	}
	assert_int_equal(m[0].subid_base, 1048576);   /* the first aligned block at or above 1000000 */

	/* Stable: again, and after reopening. */
	assert_int_equal(hubdb_member_ensure(f->db, "carol", "Carol C.", &again), 0);
	assert_int_equal(again.uid, m[2].uid);
	assert_int_equal(again.subid_base, m[2].subid_base);
	assert_int_equal(again.ssh_port, m[2].ssh_port);
	assert_string_equal(again.display_name, "Carol C.");
	reopen(f);
	assert_int_equal(hubdb_member_get(f->db, "erin", &again), 0);
	assert_int_equal(again.uid, m[4].uid);
	assert_int_equal(again.subid_base, m[4].subid_base);
	assert_int_equal(again.ssh_port, m[4].ssh_port);
	assert_int_equal(hubdb_member_get(f->db, "nobody", &again), -ENOENT);
	assert_int_equal(hubdb_member_ensure(f->db, "Bad Name", NULL, &again), -EINVAL);
	assert_int_equal(hubdb_member_ensure(f->db, "../x", NULL, &again), -EINVAL);
}

static void test_disabled_keep_ids(void **state)
{
	struct fixture *f = *state;
	struct hub_member a, b, c, list_check;
	struct hub_member *list = NULL;
	size_t n = 0;

	assert_int_equal(hubdb_member_ensure(f->db, "alice", NULL, &a), 0);
	assert_int_equal(hubdb_member_ensure(f->db, "bob", NULL, &b), 0);
	assert_int_equal(hubdb_member_set_disabled(f->db, "alice", true), 0);
	/* The disabled member's ids are never handed out again. */
	assert_int_equal(hubdb_member_ensure(f->db, "carol", NULL, &c), 0);
	assert_int_equal(c.uid, b.uid + 1);
	assert_int_equal(c.ssh_port, b.ssh_port + 1);
	assert_int_equal(hubdb_member_get(f->db, "alice", &list_check), 0);
	assert_true(list_check.disabled);
	assert_int_equal(list_check.uid, a.uid);
	assert_int_equal(list_check.subid_base, a.subid_base);
	assert_int_equal(hubdb_member_set_disabled(f->db, "alice", false), 0);
	assert_int_equal(hubdb_member_get(f->db, "alice", &list_check), 0);
	assert_false(list_check.disabled);
	assert_int_equal(list_check.uid, a.uid);
	assert_int_equal(hubdb_member_set_disabled(f->db, "nobody", true), -ENOENT);

	assert_int_equal(hubdb_member_set_admin(f->db, "bob", true), 0);
	assert_int_equal(hubdb_member_list(f->db, &list, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(list[0].name, "alice");
	assert_string_equal(list[1].name, "bob");
	assert_true(list[1].admin);
	assert_string_equal(list[2].name, "carol");
	free(list);
}

static void test_small_ranges(void **state)
{
	struct fixture *f = *state;
	struct hub_member m;

	/* A range starting at 1: the first block is 65536-131071, never one
	 * holding id 0; two members fit, a third does not. */
	f->cfg.uid_range = (struct config_range){ 30000, 30009 };
	f->cfg.subid_range = (struct config_range){ 1, 3 * 65536 - 1 };
	f->cfg.ssh_port_range = (struct config_range){ 5000, 5009 };
	reopen(f);
	assert_int_equal(hubdb_member_ensure(f->db, "alice", NULL, &m), 0);
	assert_int_equal(m.subid_base, 65536);
	assert_int_equal(hubdb_member_ensure(f->db, "bob", NULL, &m), 0);
	assert_int_equal(m.subid_base, 131072);
	assert_int_equal(hubdb_member_ensure(f->db, "carol", NULL, &m), -ENOSPC);
	assert_int_equal(hubdb_member_get(f->db, "carol", &m), -ENOENT);

	/* A full uid range, likewise. */
	f->cfg.subid_range = (struct config_range){ 1000000, 999999999 };
	f->cfg.uid_range = (struct config_range){ 30000, 30002 };
	reopen(f);
	assert_int_equal(hubdb_member_ensure(f->db, "carol", NULL, &m), 0);
	assert_int_equal(m.uid, 30002);
	assert_int_equal(hubdb_member_ensure(f->db, "dave", NULL, &m), -ENOSPC);

	/* A widened range: the gap below is used before anything above. */
	f->cfg.uid_range = (struct config_range){ 29990, 30100 };
	reopen(f);
	assert_int_equal(hubdb_member_ensure(f->db, "dave", NULL, &m), 0);
	assert_int_equal(m.uid, 29990);
}

struct racer {
	const char *path;
	const struct hub_config *cfg;
	int index;
	int failures;
};

/* Each thread has its own handle, as two processes would. */
static void *race_members(void *arg)
{
	struct racer *r = arg;
	struct hubdb *db = NULL;

	if (hubdb_open(r->path, r->cfg, &db) < 0) {
		r->failures++;
		return NULL;
	}
	for (int i = 0; i < 20; i++) {
		char name[32];
		struct hub_member m;

		snprintf(name, sizeof(name), "m%d-%d", r->index, i);
		if (hubdb_member_ensure(db, name, NULL, &m) < 0)
			r->failures++;
	}
	hubdb_close(db);
	return NULL;
}

static void test_concurrent_allocation(void **state)
{
	struct fixture *f = *state;
	struct racer racers[4];
	pthread_t threads[4];
	struct hub_member *list = NULL;
	size_t n = 0;

	for (int i = 0; i < 4; i++) {
		racers[i] = (struct racer){ f->path, &f->cfg, i, 0 };
		assert_int_equal(pthread_create(&threads[i], NULL, race_members, &racers[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(threads[i], NULL);
		assert_int_equal(racers[i].failures, 0);
	}
	assert_int_equal(hubdb_member_list(f->db, &list, &n), 0);
	assert_int_equal(n, 80);
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < i; j++) {
			assert_int_not_equal(list[i].uid, list[j].uid);
			assert_int_not_equal(list[i].ssh_port, list[j].ssh_port);
			assert_false(blocks_overlap(list[i].subid_base, list[j].subid_base));
		}
		/* Dense from the bottom: nothing skipped. */
		assert_true(list[i].uid < 20000 + n);
	}
	free(list);
}

static void test_display_names(void **state)
{
	struct fixture *f = *state;
	struct hub_member m;
	char longname[300];

	assert_int_equal(hubdb_member_ensure(f->db, "alice", "Alice\nInjected: yes\x7f", &m), 0);
	assert_string_equal(m.display_name, "Alice Injected: yes ");
	assert_int_equal(hubdb_member_ensure(f->db, "bob", "B\xff\xfe", &m), 0);
	assert_string_equal(m.display_name, "bob");
	/* Cut at a character boundary: 'é' is two bytes. */
	memset(longname, 0, sizeof(longname));
	for (size_t i = 0; i + 2 < sizeof(longname) - 1; i += 2)
		memcpy(longname + i, "\xc3\xa9", 2);
	assert_int_equal(hubdb_member_ensure(f->db, "carol", longname, &m), 0);
	assert_true(strlen(m.display_name) <= sizeof(m.display_name) - 1);
	assert_int_equal(strlen(m.display_name) % 2, 0);
}

static void test_tokens(void **state)
{
	struct fixture *f = *state;
	char token[HUB_TOKEN_HEX], other[HUB_TOKEN_HEX], again[HUB_TOKEN_HEX], wrong[HUB_TOKEN_HEX];
	struct hub_server s;
	struct hub_server *list = NULL;
	size_t n = 0;

	assert_int_equal(hubdb_server_add(f->db, "gpu17", "http://gpu17:9401", "gpu17.lab.example", token), 0);
	assert_int_equal(strlen(token), 64);
	assert_int_equal(strspn(token, "0123456789abcdef"), 64);
	assert_int_equal(hubdb_server_add(f->db, "gpu18", "http://gpu18:9401", "", other), 0);
	assert_string_not_equal(token, other);
	assert_int_equal(hubdb_server_add(f->db, "gpu17", "http://x", "", again), -EEXIST);
	assert_int_equal(hubdb_server_add(f->db, "Bad", "http://x", "", again), -EINVAL);

	assert_int_equal(hubdb_server_by_token(f->db, token, &s), 0);
	assert_string_equal(s.name, "gpu17");
	assert_string_equal(s.url, "http://gpu17:9401");
	assert_string_equal(s.ssh_host, "gpu17.lab.example");
	assert_int_equal(s.last_contact, 0);
	assert_int_equal(hubdb_server_by_token(f->db, other, &s), 0);
	assert_string_equal(s.name, "gpu18");

	/* One digit off, upper case, short, long, empty: all unknown. */
	memcpy(wrong, token, sizeof(wrong));
	wrong[10] = wrong[10] == '0' ? '1' : '0';
	assert_int_equal(hubdb_server_by_token(f->db, wrong, &s), -ENOENT);
	memcpy(wrong, token, sizeof(wrong));
	for (char *p = wrong; *p; p++)
		if (*p >= 'a')
			*p = (char)(*p - 'a' + 'A');
	assert_int_equal(hubdb_server_by_token(f->db, wrong, &s), -ENOENT);
	assert_int_equal(hubdb_server_by_token(f->db, "", &s), -ENOENT);
	assert_int_equal(hubdb_server_by_token(f->db, "abc", &s), -ENOENT);
	{
		char longer[HUB_TOKEN_HEX + 2];

		snprintf(longer, sizeof(longer), "%s0", token);
		assert_int_equal(hubdb_server_by_token(f->db, longer, &s), -ENOENT);
	}
	assert_int_equal(hubdb_server_by_token(f->db, NULL, &s), -ENOENT);

	/* The hub's own copy, for calling the agent. */
	assert_int_equal(hubdb_server_token(f->db, "gpu17", again), 0);
	assert_string_equal(again, token);

	assert_int_equal(hubdb_server_touch(f->db, "gpu17", 12345), 0);
	assert_int_equal(hubdb_server_by_token(f->db, token, &s), 0);
	assert_int_equal(s.last_contact, 12345);
	assert_int_equal(hubdb_server_get(f->db, "gpu17", &s), 0);
	assert_int_equal(s.last_contact, 12345);
	assert_int_equal(hubdb_server_touch(f->db, "gpu99", 1), -ENOENT);

	assert_int_equal(hubdb_server_list(f->db, &list, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].name, "gpu17");
	assert_string_equal(list[1].name, "gpu18");
	free(list);

	/* Survives a reopen; a removed server's token stops working. */
	reopen(f);
	assert_int_equal(hubdb_server_by_token(f->db, token, &s), 0);
	assert_int_equal(hubdb_server_remove(f->db, "gpu17"), 0);
	assert_int_equal(hubdb_server_by_token(f->db, token, &s), -ENOENT);
	assert_int_equal(hubdb_server_remove(f->db, "gpu17"), -ENOENT);
	assert_int_equal(hubdb_server_token(f->db, "gpu17", again), -ENOENT);
	assert_int_equal(hubdb_server_by_token(f->db, other, &s), 0);
}

static void test_sessions(void **state)
{
	struct fixture *f = *state;
	char id[HUB_TOKEN_HEX], csrf[HUB_TOKEN_HEX], id2[HUB_TOKEN_HEX], csrf2[HUB_TOKEN_HEX];
	struct hub_session s;
	long long now = (long long)time(NULL);

	assert_int_equal(hubdb_session_create(f->db, "ghost", 0, now + 100, id, csrf), -ENOENT);
	assert_int_equal(hubdb_member_ensure(f->db, "alice", NULL, NULL), 0);
	assert_int_equal(hubdb_session_create(f->db, "alice", 0, now + 100, id, csrf), 0);
	assert_int_equal(strspn(id, "0123456789abcdef"), 64);
	assert_int_equal(strspn(csrf, "0123456789abcdef"), 64);
	assert_string_not_equal(id, csrf);
	assert_int_equal(hubdb_session_create(f->db, "alice", 0, now + 10, id2, csrf2), 0);
	assert_string_not_equal(id, id2);

	assert_int_equal(hubdb_session_get(f->db, id, now, &s), 0);
	assert_string_equal(s.member, "alice");
	assert_string_equal(s.csrf, csrf);
	assert_int_equal(s.expires, now + 100);
	/* Expired at its expiry time. */
	assert_int_equal(hubdb_session_get(f->db, id, now + 100, &s), -ENOENT);
	assert_int_equal(hubdb_session_get(f->db, id2, now + 11, &s), -ENOENT);
	/* The csrf token is no session id, nor is anything else. */
	assert_int_equal(hubdb_session_get(f->db, csrf, now, &s), -ENOENT);
	assert_int_equal(hubdb_session_get(f->db, "", now, &s), -ENOENT);
	assert_int_equal(hubdb_session_get(f->db, "zz", now, &s), -ENOENT);

	assert_int_equal(hubdb_session_prune(f->db, now + 50), 0);
	assert_int_equal(hubdb_session_get(f->db, id2, now, &s), -ENOENT);
	assert_int_equal(hubdb_session_get(f->db, id, now, &s), 0);
	assert_int_equal(hubdb_session_delete(f->db, id), 0);
	assert_int_equal(hubdb_session_get(f->db, id, now, &s), -ENOENT);
	assert_int_equal(hubdb_session_delete(f->db, "not-a-session"), 0);
}

/* A session of name at its current epoch, into id; fails the test if none. */
static void open_session(struct fixture *f, const char *name, char id[HUB_TOKEN_HEX])
{
	char csrf[HUB_TOKEN_HEX];
	uint64_t epoch;

	assert_int_equal(hubdb_session_epoch(f->db, name, &epoch), 0);
	assert_int_equal(hubdb_session_create(f->db, name, epoch, (long long)time(NULL) + 3600, id, csrf), 0);
}

static bool session_works(struct fixture *f, const char *id)
{
	struct hub_session s;

	return hubdb_session_get(f->db, id, (long long)time(NULL), &s) == 0;
}

/* Disabling a member, a new password and admin rights taken away end the
 * member's sessions, for good: enabling the member again revives none. */
static void test_sessions_end(void **state)
{
	struct fixture *f = *state;
	char id[HUB_TOKEN_HEX], bob[HUB_TOKEN_HEX], csrf[HUB_TOKEN_HEX];
	uint64_t epoch, before;

	assert_int_equal(hubdb_member_ensure(f->db, "alice", NULL, NULL), 0);
	assert_int_equal(hubdb_member_ensure(f->db, "bob", NULL, NULL), 0);
	open_session(f, "bob", bob);

	/* Disabled: gone at once, and still gone once enabled again. */
	open_session(f, "alice", id);
	assert_true(session_works(f, id));
	assert_int_equal(hubdb_member_set_disabled(f->db, "alice", true), 0);
	assert_false(session_works(f, id));
	assert_int_equal(hubdb_session_epoch(f->db, "alice", &epoch), 0);
	assert_int_equal(hubdb_session_create(f->db, "alice", epoch, (long long)time(NULL) + 60, id, csrf),
			 -ESTALE);
	assert_int_equal(hubdb_member_set_disabled(f->db, "alice", false), 0);
	assert_false(session_works(f, id));
	reopen(f);
	assert_false(session_works(f, id));

	/* A new password. */
	open_session(f, "alice", id);
	assert_int_equal(hubdb_password_set(f->db, "alice", "$argon2id$v=19$new"), 0);
	assert_false(session_works(f, id));

	/* Admin rights taken away end the sessions; given, or set again, not. */
	open_session(f, "alice", id);
	assert_int_equal(hubdb_member_set_admin(f->db, "alice", true), 0);
	assert_true(session_works(f, id));
	assert_int_equal(hubdb_member_set_admin(f->db, "alice", true), 0);
	assert_true(session_works(f, id));
	assert_int_equal(hubdb_member_set_admin(f->db, "alice", false), 0);
	assert_false(session_works(f, id));
	open_session(f, "alice", id);
	assert_int_equal(hubdb_member_set_admin(f->db, "alice", false), 0);
	assert_true(session_works(f, id));

	/* A sign-in that began before a password change opens nothing. */
	assert_int_equal(hubdb_session_epoch(f->db, "alice", &before), 0);
	assert_int_equal(hubdb_password_set(f->db, "alice", "$argon2id$v=19$newer"), 0);
	assert_int_equal(hubdb_session_create(f->db, "alice", before, (long long)time(NULL) + 60, id, csrf),
			 -ESTALE);
	assert_int_equal(hubdb_session_epoch(f->db, "alice", &epoch), 0);
	assert_true(epoch > before);

	/* Nobody else's sessions moved. */
	assert_true(session_works(f, bob));
	assert_int_equal(hubdb_session_epoch(f->db, "nobody", &epoch), -ENOENT);
	assert_int_equal(epoch, 0);
}

/* A database of schema 1 (no session epochs) is upgraded at open, its
 * members and sessions kept. */
static void test_schema_upgrade(void **state)
{
	static const char version1[] =
		"CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
		"INSERT INTO meta VALUES ('schema', 1), ('generation', 7);"
		"CREATE TABLE members (name TEXT PRIMARY KEY, display_name TEXT NOT NULL,"
		" uid INTEGER NOT NULL UNIQUE, subid_base INTEGER NOT NULL UNIQUE,"
		" ssh_port INTEGER NOT NULL UNIQUE, disabled INTEGER NOT NULL DEFAULT 0,"
		" admin INTEGER NOT NULL DEFAULT 0, created INTEGER NOT NULL);"
		"INSERT INTO members VALUES ('alice', 'Alice', 20000, 1048576, 2200, 0, 0, 1);"
		"CREATE TABLE sessions (id_sha256 BLOB PRIMARY KEY,"
		" member TEXT NOT NULL REFERENCES members(name), csrf TEXT NOT NULL,"
		" expires INTEGER NOT NULL);";
	struct fixture *f = *state;
	char old_path[PATH_MAX], id[HUB_TOKEN_HEX];
	struct hubdb *db = NULL;
	struct hub_member m;
	sqlite3 *handle = NULL;
	uint64_t epoch = 1;

	tu_join(old_path, sizeof(old_path), f->dir, "old.db");
	assert_int_equal(sqlite3_open(old_path, &handle), SQLITE_OK);
	assert_int_equal(sqlite3_exec(handle, version1, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(handle);
	assert_int_equal(hubdb_open(old_path, &f->cfg, &db), 0);
	assert_int_equal(hubdb_member_get(db, "alice", &m), 0);
	assert_int_equal(m.uid, 20000);
	assert_int_equal(hubdb_generation(db), 7);
	assert_int_equal(hubdb_session_epoch(db, "alice", &epoch), 0);
	assert_int_equal(epoch, 0);
	hubdb_close(f->db);
	f->db = db;
	snprintf(f->path, sizeof(f->path), "%s", old_path);
	open_session(f, "alice", id);
	assert_true(session_works(f, id));
	/* Opened again: nothing more to do. */
	reopen(f);
	assert_true(session_works(f, id));
}

static void test_passwords(void **state)
{
	struct fixture *f = *state;
	char hash[256];

	assert_int_equal(hubdb_password_get(f->db, "alice", hash, sizeof(hash)), -ENOENT);
	assert_int_equal(hubdb_password_set(f->db, "alice", "$argon2id$v=19$first"), 0);
	assert_int_equal(hubdb_password_get(f->db, "alice", hash, sizeof(hash)), 0);
	assert_string_equal(hash, "$argon2id$v=19$first");
	assert_int_equal(hubdb_password_set(f->db, "alice", "$argon2id$v=19$second"), 0);
	assert_int_equal(hubdb_password_get(f->db, "alice", hash, sizeof(hash)), 0);
	assert_string_equal(hash, "$argon2id$v=19$second");
	assert_int_equal(hubdb_password_get(f->db, "alice", hash, 5), -ENAMETOOLONG);
	assert_int_equal(hubdb_password_set(f->db, "No Such", "x"), -EINVAL);
	assert_int_equal(hubdb_password_set(f->db, "bob", ""), -EINVAL);
	/* An account allocates nothing before its first sign-in. */
	assert_int_equal(hubdb_member_get(f->db, "alice", NULL), -ENOENT);
}

static void test_keys(void **state)
{
	struct fixture *f = *state;
	struct hub_key *keys = NULL;
	long long id1 = 0, id2 = 0, id;
	size_t n = 0;

	assert_int_equal(hubdb_key_add(f->db, "alice", "ssh-ed25519 AAAA a", "SHA256:a", &id1), -ENOENT);
	assert_int_equal(hubdb_member_ensure(f->db, "alice", NULL, NULL), 0);
	assert_int_equal(hubdb_member_ensure(f->db, "bob", NULL, NULL), 0);
	assert_int_equal(hubdb_key_add(f->db, "alice", "ssh-ed25519 AAAA a", "SHA256:a", &id1), 0);
	assert_int_equal(hubdb_key_add(f->db, "alice", "ssh-ed25519 BBBB b", "SHA256:b", &id2), 0);
	assert_true(id2 > id1);
	assert_int_equal(hubdb_key_add(f->db, "alice", "ssh-ed25519 AAAA again", "SHA256:a", &id), -EEXIST);
	/* The same key on another member's account is that member's business. */
	assert_int_equal(hubdb_key_add(f->db, "bob", "ssh-ed25519 AAAA a", "SHA256:a", &id), 0);
	assert_int_equal(hubdb_key_add(f->db, "alice", "ssh-ed25519 X\ncommand=\"sh\" ssh-ed25519 Y",
				       "SHA256:x", &id), -EINVAL);

	assert_int_equal(hubdb_key_list(f->db, "alice", &keys, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(keys[0].id, id1);
	assert_string_equal(keys[0].line, "ssh-ed25519 AAAA a");
	assert_string_equal(keys[0].fingerprint, "SHA256:a");
	assert_string_equal(keys[0].member, "alice");
	assert_true(keys[0].added > 0);
	free(keys);

	/* Only the owner removes a key. */
	assert_int_equal(hubdb_key_remove(f->db, "bob", id1), -ENOENT);
	assert_int_equal(hubdb_key_remove(f->db, "alice", id1), 0);
	assert_int_equal(hubdb_key_remove(f->db, "alice", id1), -ENOENT);

	/* At most HUB_KEYS_MAX. */
	for (int i = 1; i < HUB_KEYS_MAX; i++) {
		char line[64], fp[32];

		snprintf(line, sizeof(line), "ssh-ed25519 K%d", i);
		snprintf(fp, sizeof(fp), "SHA256:k%d", i);
		assert_int_equal(hubdb_key_add(f->db, "alice", line, fp, &id), 0);
	}
	assert_int_equal(hubdb_key_add(f->db, "alice", "ssh-ed25519 Z", "SHA256:z", &id), -ENOSPC);
	assert_int_equal(hubdb_key_list(f->db, "alice", &keys, &n), 0);
	assert_int_equal(n, HUB_KEYS_MAX);
	free(keys);
}

static void test_generation(void **state)
{
	struct fixture *f = *state;
	char token[HUB_TOKEN_HEX];
	uint64_t g = hubdb_generation(f->db);
	long long id = 0;

#define BUMPS(expr)                                         \
	do {                                                \
		assert_int_equal((expr), 0);                \
		assert_true(hubdb_generation(f->db) > g);   \
		g = hubdb_generation(f->db);                \
	} while (0)
#define STAYS(expr)                                         \
	do {                                                \
		assert_int_equal((expr), 0);                \
		assert_int_equal(hubdb_generation(f->db), g); \
	} while (0)

	assert_true(g >= 1);
	BUMPS(hubdb_server_add(f->db, "gpu17", "http://gpu17:9401", "", token));
	BUMPS(hubdb_member_ensure(f->db, "alice", "Alice", NULL));
	STAYS(hubdb_member_ensure(f->db, "alice", "Alice", NULL));
	STAYS(hubdb_member_ensure(f->db, "alice", NULL, NULL));
	BUMPS(hubdb_member_ensure(f->db, "alice", "Alice A.", NULL));
	BUMPS(hubdb_key_add(f->db, "alice", "ssh-ed25519 AAAA", "SHA256:a", &id));
	BUMPS(hubdb_enable(f->db, "alice", "gpu17", true));
	STAYS(hubdb_enable(f->db, "alice", "gpu17", true));
	BUMPS(hubdb_member_set_disabled(f->db, "alice", true));
	STAYS(hubdb_member_set_disabled(f->db, "alice", true));
	BUMPS(hubdb_member_set_disabled(f->db, "alice", false));
	STAYS(hubdb_member_set_admin(f->db, "alice", true));
	STAYS(hubdb_password_set(f->db, "alice", "$argon2id$x"));
	STAYS(hubdb_server_touch(f->db, "gpu17", 99));
	BUMPS(hubdb_key_remove(f->db, "alice", id));
	BUMPS(hubdb_enable(f->db, "alice", "gpu17", false));
	STAYS(hubdb_enable(f->db, "alice", "gpu17", false));
	BUMPS(hubdb_server_remove(f->db, "gpu17"));
	assert_int_equal(hubdb_enable(f->db, "alice", "gpu17", true), -ENOENT);
	assert_int_equal(hubdb_enable(f->db, "nobody", "gpu17", true), -ENOENT);

	/* Kept across a reopen. */
	reopen(f);
	assert_int_equal(hubdb_generation(f->db), g);
#undef BUMPS
#undef STAYS
}

/* What another process changes is seen within about a second. */
static void test_generation_across_handles(void **state)
{
	struct fixture *f = *state;
	struct hubdb *other = NULL;
	char token[HUB_TOKEN_HEX];
	struct hub_server s;
	uint64_t g = hubdb_generation(f->db);

	assert_int_equal(hubdb_open(f->path, &f->cfg, &other), 0);
	assert_int_equal(hubdb_server_add(other, "gpu20", "http://gpu20:9401", "", token), 0);
	usleep(1100 * 1000);
	assert_true(hubdb_generation(f->db) > g);
	assert_int_equal(hubdb_server_by_token(f->db, token, &s), 0);
	assert_string_equal(s.name, "gpu20");
	hubdb_close(other);
}

static void add_member_with_keys(struct fixture *f, const char *name, int nkeys)
{
	long long id;

	assert_int_equal(hubdb_member_ensure(f->db, name, NULL, NULL), 0);
	for (int i = 0; i < nkeys; i++) {
		char line[64], fp[64];

		snprintf(line, sizeof(line), "ssh-ed25519 %s%d %s@laptop", name, i, name);
		snprintf(fp, sizeof(fp), "SHA256:%s%d", name, i);
		assert_int_equal(hubdb_key_add(f->db, name, line, fp, &id), 0);
	}
}

static void test_sync_json(void **state)
{
	struct fixture *f = *state;
	char token[HUB_TOKEN_HEX];
	__do_json json_t *doc = NULL;
	json_t *members, *m;
	struct hub_member bob;
	char *text = NULL;
	size_t len = 0;
	uint64_t generation = 0;

	assert_int_equal(hubdb_server_add(f->db, "gpu17", "http://gpu17:9401", "", token), 0);
	assert_int_equal(hubdb_server_add(f->db, "gpu18", "http://gpu18:9401", "", token), 0);
	add_member_with_keys(f, "carol", 1);
	add_member_with_keys(f, "alice", 2);
	add_member_with_keys(f, "bob", 1);
	add_member_with_keys(f, "dave", 1);
	assert_int_equal(hubdb_enable(f->db, "alice", "gpu17", true), 0);
	assert_int_equal(hubdb_enable(f->db, "bob", "gpu17", true), 0);
	assert_int_equal(hubdb_enable(f->db, "carol", "gpu17", true), 0);
	assert_int_equal(hubdb_enable(f->db, "dave", "gpu18", true), 0);
	assert_int_equal(hubdb_member_set_disabled(f->db, "carol", true), 0);

	assert_int_equal(hubdb_sync_json(f->db, "gpu17", &doc), 0);
	assert_int_equal(json_integer_value(json_object_get(doc, "generation")), hubdb_generation(f->db));
	assert_string_equal(json_string_value(json_object_get(doc, "server")), "gpu17");
	members = json_object_get(doc, "members");
	assert_true(json_is_array(members));
	assert_int_equal(json_array_size(members), 3);
	/* Sorted by name; only the members who enabled this server. */
	m = json_array_get(members, 0);
	assert_string_equal(json_string_value(json_object_get(m, "name")), "alice");
	assert_string_equal(json_string_value(json_object_get(m, "display_name")), "alice");
	assert_int_equal(json_array_size(json_object_get(m, "keys")), 2);
	assert_string_equal(json_string_value(json_array_get(json_object_get(m, "keys"), 0)),
			    "ssh-ed25519 alice0 alice@laptop");
	assert_false(json_is_true(json_object_get(m, "disabled")));
	m = json_array_get(members, 1);
	assert_int_equal(hubdb_member_get(f->db, "bob", &bob), 0);
	assert_string_equal(json_string_value(json_object_get(m, "name")), "bob");
	assert_int_equal(json_integer_value(json_object_get(m, "uid")), bob.uid);
	assert_int_equal(json_integer_value(json_object_get(m, "subid_base")), bob.subid_base);
	assert_int_equal(json_integer_value(json_object_get(m, "ssh_port")), bob.ssh_port);
	/* A disabled member is listed, with no keys. */
	m = json_array_get(members, 2);
	assert_string_equal(json_string_value(json_object_get(m, "name")), "carol");
	assert_true(json_is_true(json_object_get(m, "disabled")));
	assert_int_equal(json_array_size(json_object_get(m, "keys")), 0);
	assert_int_equal(json_object_size(m), 7);
	assert_int_equal(json_object_size(doc), 3);

	/* The cached text says the same, at the same generation. */
	assert_int_equal(hubdb_sync_text(f->db, "gpu17", &text, &len, &generation), 0);
	assert_int_equal(len, strlen(text));
	assert_int_equal(generation, hubdb_generation(f->db));
	{
		__do_json json_t *parsed = json_loads(text, 0, NULL);

		assert_true(json_equal(parsed, doc));
	}
	free(text);
	/* And moves with a change. */
	assert_int_equal(hubdb_enable(f->db, "dave", "gpu17", true), 0);
	assert_int_equal(hubdb_sync_text(f->db, "gpu17", &text, &len, &generation), 0);
	assert_int_equal(generation, hubdb_generation(f->db));
	assert_non_null(strstr(text, "\"dave\""));
	free(text);

	assert_int_equal(hubdb_sync_json(f->db, "gpu99", &doc), -ENOENT);
	assert_int_equal(hubdb_sync_text(f->db, "gpu99", &text, &len, &generation), -ENOENT);
}

static void test_authorized_keys(void **state)
{
	struct fixture *f = *state;
	char token[HUB_TOKEN_HEX], *text = NULL;
	size_t len = 0;

	assert_int_equal(hubdb_server_add(f->db, "gpu17", "http://gpu17:9401", "", token), 0);
	add_member_with_keys(f, "alice", 2);
	add_member_with_keys(f, "bob", 0);
	assert_int_equal(hubdb_authorized_keys(f->db, "gpu17", "alice", &text, &len), -ENOENT);
	assert_int_equal(hubdb_enable(f->db, "alice", "gpu17", true), 0);
	assert_int_equal(hubdb_enable(f->db, "bob", "gpu17", true), 0);
	assert_int_equal(hubdb_authorized_keys(f->db, "gpu17", "alice", &text, &len), 0);
	assert_string_equal(text, "ssh-ed25519 alice0 alice@laptop\nssh-ed25519 alice1 alice@laptop\n");
	assert_int_equal(len, strlen(text));
	free(text);
	assert_int_equal(hubdb_authorized_keys(f->db, "gpu17", "bob", &text, &len), 0);
	assert_string_equal(text, "");
	assert_int_equal(len, 0);
	free(text);
	assert_int_equal(hubdb_member_set_disabled(f->db, "alice", true), 0);
	assert_int_equal(hubdb_authorized_keys(f->db, "gpu17", "alice", &text, &len), -ENOENT);
	assert_int_equal(hubdb_authorized_keys(f->db, "gpu18", "bob", &text, &len), -ENOENT);
	assert_int_equal(hubdb_authorized_keys(f->db, "gpu17", "nobody", &text, &len), -ENOENT);
	assert_int_equal(hubdb_authorized_keys(f->db, "gpu17", "../etc", &text, &len), -ENOENT);
}

static void test_enabled_servers(void **state)
{
	struct fixture *f = *state;
	char token[HUB_TOKEN_HEX];
	char (*names)[HUB_NAME_MAX] = NULL;
	size_t n = 0;

	assert_int_equal(hubdb_server_add(f->db, "gpu18", "http://gpu18:9401", "", token), 0);
	assert_int_equal(hubdb_server_add(f->db, "gpu17", "http://gpu17:9401", "", token), 0);
	assert_int_equal(hubdb_member_ensure(f->db, "alice", NULL, NULL), 0);
	assert_int_equal(hubdb_enabled_servers(f->db, "alice", &names, &n), 0);
	assert_int_equal(n, 0);
	free(names);
	assert_int_equal(hubdb_enable(f->db, "alice", "gpu18", true), 0);
	assert_int_equal(hubdb_enable(f->db, "alice", "gpu17", true), 0);
	assert_int_equal(hubdb_enabled_servers(f->db, "alice", &names, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(names[0], "gpu17");
	assert_string_equal(names[1], "gpu18");
	free(names);
	/* A removed server leaves no choice behind. */
	assert_int_equal(hubdb_server_remove(f->db, "gpu17"), 0);
	assert_int_equal(hubdb_enabled_servers(f->db, "alice", &names, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(names[0], "gpu18");
	free(names);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_file_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allocation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disabled_keep_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_small_ranges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_allocation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_display_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sessions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sessions_end, setup, teardown),
		cmocka_unit_test_setup_teardown(test_schema_upgrade, setup, teardown),
		cmocka_unit_test_setup_teardown(test_passwords, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_generation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_generation_across_handles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_authorized_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_enabled_servers, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
