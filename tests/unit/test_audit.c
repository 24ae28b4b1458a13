/* SPDX-License-Identifier: MIT */
/*
 * audit.c: the pure parts (arguments redacted, log values escaped,
 * targets, who an entry is by, a caller's allowance), then the log against
 * a real SQLite file: entries stored and read back through each scope
 * (a member never gets another's, nor an earlier member's of the same
 * name), since and limit, pruning by the retention, a flood counted into
 * one entry, the file's mode, and the log line that nothing breaks.
 */
#include <sys/stat.h>

#include "testutil.h"
#include "audit.h"
#include "log.h"
#include "banned.h"

#define KEY_LINE \
	"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH7+FLLAOUVTtupT9+4BeFbwn2h5jVVoxxMU3hU3K0/c alice@laptop"
#define KEY_FINGERPRINT "SHA256:S8+il4zOcXH6gALdwHJlL4M48vhNHxApMA54D5hDNAE"
/* 2025-11-23 14:00:00 UTC. */
#define T0 1763906400000LL
#define HOUR_MS 3600000LL

/* ---- redaction ------------------------------------------------------------- */

static json_t *redacted_text(const char *args_json, char **text)
{
	__do_json json_t *args = json_loads(args_json, 0, NULL);
	json_t *out;

	assert_non_null(args);
	out = audit_redact(args);
	assert_non_null(out);
	*text = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
	return out;
}

static void test_redact_secrets(void **state)
{
	__do_free char *text = NULL;
	__do_json json_t *out = redacted_text(
		"{\"member\":\"alice\",\"token\":\"abc\",\"Password\":\"p\",\"nested\":{\"hub_secret\":1,"
		"\"port\":80},\"keys\":[\"-----BEGIN OPENSSH PRIVATE KEY-----\\nxyz\"],\"auth\":[1]}",
		&text);

	assert_true(json_is_object(out));
	assert_string_equal(text,
		"{\"Password\":\"(hidden)\",\"auth\":\"(hidden)\",\"keys\":[\"(hidden)\"],\"member\":\"alice\","
		"\"nested\":{\"hub_secret\":\"(hidden)\",\"port\":80},\"token\":\"(hidden)\"}");
	assert_null(audit_redact(NULL));
}

static void test_redact_keys_and_sizes(void **state)
{
	__do_free char *text = NULL, *long_json = NULL;
	__do_json json_t *out = redacted_text("{\"keys\":[\"" KEY_LINE "\",\"not a key at all\"],"
					      "\"deep\":{\"a\":{\"b\":{\"c\":{\"d\":1}}}},\"n\":null,"
					      "\"b\":true}", &text);
	__do_json json_t *long_out = NULL;
	char big[600];
	const char *kept;

	assert_string_equal(json_string_value(json_array_get(json_object_get(out, "keys"), 0)),
			    "ssh-ed25519 " KEY_FINGERPRINT " alice@laptop");
	assert_string_equal(json_string_value(json_array_get(json_object_get(out, "keys"), 1)),
			    "not a key at all");
	assert_non_null(strstr(text, "\"c\":\"(nested)\""));
	assert_non_null(strstr(text, "\"n\":null"));
	assert_non_null(strstr(text, "\"b\":true"));

	/* A long string is cut at a character's start (é is two bytes, the
	 * 256th byte falls inside one), with its length said. */
	memset(big, 'x', sizeof(big));
	for (size_t i = 1; i + 1 < sizeof(big); i += 2)
		memcpy(big + i, "\xc3\xa9", 2);
	big[sizeof(big) - 1] = '\0';
	long_out = json_pack("{s:s, s:[iiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii]}", "s", big, "list",
			     1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
			     21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36);
	assert_non_null(long_out);
	long_json = json_dumps(long_out, JSON_COMPACT);
	json_decref(out);
	out = NULL;
	{
		__do_free char *ignored = NULL;

		out = redacted_text(long_json, &ignored);
	}
	kept = json_string_value(json_object_get(out, "s"));
	assert_non_null(kept);
	assert_non_null(strstr(kept, "...(599 bytes)"));
	assert_true(strstr(kept, "...(") - kept <= 256);
	assert_int_equal(json_array_size(json_object_get(out, "list")), 33);
	assert_string_equal(json_string_value(json_array_get(json_object_get(out, "list"), 32)),
			    "(4 more)");
}

/* ---- escaping ---------------------------------------------------------------- */

static void test_escape(void **state)
{
	char out[64];

	assert_string_equal(audit_escape("alice", out, sizeof(out)), "alice");
	assert_string_equal(audit_escape("port_add", out, sizeof(out)), "port_add");
	assert_string_equal(audit_escape("", out, sizeof(out)), "\"\"");
	assert_string_equal(audit_escape(NULL, out, sizeof(out)), "\"\"");
	assert_string_equal(audit_escape("a b", out, sizeof(out)), "\"a b\"");
	assert_string_equal(audit_escape("x=1", out, sizeof(out)), "\"x=1\"");
	assert_string_equal(audit_escape("ok\naudit: by=root", out, sizeof(out)),
			    "\"ok\\naudit: by=root\"");
	assert_string_equal(audit_escape("\"q\" \\", out, sizeof(out)), "\"\\\"q\\\" \\\\\"");
	assert_string_equal(audit_escape("\r\t\x01\x7f", out, sizeof(out)), "\"\\r\\t\\x01\\x7f\"");
	assert_string_equal(audit_escape("caf\xc3\xa9", out, sizeof(out)), "\"caf\\xc3\\xa9\"");
	/* Cut to fit, and still closed. */
	assert_string_equal(audit_escape("aaaa aaaa aaaa", out, 12), "\"aaaa a...\"");
	assert_string_equal(audit_escape("\n\n\n\n\n\n", out, 12), "\"\\n\\n\\n...\"");
	assert_string_equal(audit_escape("abcdefghijklmnopq", out, 8), "\"ab...\"");
	assert_string_equal(audit_escape("x", out, 3), "");
	for (int c = 1; c < 256; c++) {
		char one[2] = { (char)c, '\0' };

		audit_escape(one, out, sizeof(out));
		for (const char *p = out; *p; p++)
			assert_true(*p >= 0x20 && *p < 0x7f);
	}
}

/* ---- targets, names, allowances -------------------------------------------------- */

static void test_target(void **state)
{
	__do_json json_t *args = json_pack("{s:s, s:i, s:s, s:b, s:[i]}", "member", "bob", "port", 8888,
					   "name", "snap 1", "force", true, "list", 1);
	__do_json json_t *empty = json_object();
	char buf[AUDIT_TARGET_MAX];

	audit_target("member port", args, "alice", buf, sizeof(buf));
	assert_string_equal(buf, "bob port=8888");
	audit_target(NULL, empty, "alice", buf, sizeof(buf));
	assert_string_equal(buf, "alice");
	audit_target(NULL, empty, NULL, buf, sizeof(buf));
	assert_string_equal(buf, "");
	audit_target("member port", empty, NULL, buf, sizeof(buf));
	assert_string_equal(buf, "");
	audit_target("name", args, "alice", buf, sizeof(buf));
	assert_string_equal(buf, "snap 1");
	audit_target("member name force list", args, NULL, buf, sizeof(buf));
	assert_string_equal(buf, "bob name=snap 1 force=true");
	audit_target("member port", NULL, "alice", buf, sizeof(buf));
	assert_string_equal(buf, "alice");
	audit_target("member port", args, "alice", buf, 6);
	assert_string_equal(buf, "bob p");
}

static void test_by_name(void **state)
{
	char buf[64];

	audit_by_name(true, "alice", 5, buf, sizeof(buf));
	assert_string_equal(buf, "hub");
	audit_by_name(false, "alice", 20001, buf, sizeof(buf));
	assert_string_equal(buf, "alice");
	audit_by_name(false, NULL, 0, buf, sizeof(buf));
	assert_string_equal(buf, "root");
	audit_by_name(false, "", 1000, buf, sizeof(buf));
	assert_string_equal(buf, "uid 1000");
	audit_by_name(false, NULL, -1, buf, sizeof(buf));
	assert_string_equal(buf, "others");
}

static void test_rate(void **state)
{
	struct audit_rate rate = { 0 };

	assert_true(audit_rate_full(&rate, T0));
	for (int i = 0; i < AUDIT_BURST; i++)
		assert_true(audit_rate_take(&rate, T0));
	assert_false(audit_rate_take(&rate, T0));
	assert_false(audit_rate_full(&rate, T0));
	assert_false(audit_rate_take(&rate, T0 + AUDIT_REFILL_MS - 1));
	assert_true(audit_rate_take(&rate, T0 + AUDIT_REFILL_MS));
	assert_false(audit_rate_take(&rate, T0 + AUDIT_REFILL_MS + 1));
	/* Two and a half periods later: two more. */
	assert_true(audit_rate_take(&rate, T0 + 3 * AUDIT_REFILL_MS + AUDIT_REFILL_MS / 2));
	assert_true(audit_rate_take(&rate, T0 + 3 * AUDIT_REFILL_MS + AUDIT_REFILL_MS / 2));
	assert_false(audit_rate_take(&rate, T0 + 3 * AUDIT_REFILL_MS + AUDIT_REFILL_MS / 2));
	/* Long after, whole again; a clock that went back gives nothing. */
	assert_true(audit_rate_full(&rate, T0 + 1000 * AUDIT_REFILL_MS));
	assert_false(audit_rate_take(&rate, T0 - HOUR_MS));
}

/* ---- the log in a file -------------------------------------------------------- */

struct fixture {
	char dir[PATH_MAX];
	char path[PATH_MAX];
	struct audit *audit;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f || tu_make_tempdir(f->dir, sizeof(f->dir), "/tmp/test_audit.XXXXXX") < 0)
		return -1;
	tu_join(f->path, sizeof(f->path), f->dir, "audit.db");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	audit_close(f->audit);
	tu_remove_tempdir(f->dir);
	free(f);
	return 0;
}

struct who {
	long long uid;
	const char *member, *identity;
	bool admin, guest, hub;
};

static const struct who alice = { .uid = 20001, .member = "alice", .identity = "aaaa" };
/* An earlier member of the same name. */
static const struct who alice_before = { .uid = 20001, .member = "alice", .identity = "0000" };
static const struct who bob = { .uid = 20002, .member = "bob", .identity = "bbbb" };
static const struct who bob_inside = { .uid = 2000001000, .member = "bob", .identity = "bbbb",
				       .guest = true };
static const struct who root = { .uid = 0, .admin = true };
static const struct who stranger = { .uid = 1000 };
static const struct who hub = { .uid = -1, .hub = true };

static void record(struct fixture *f, const struct who *w, long long t, const char *op,
		   const char *args_json, const char *code)
{
	__do_json json_t *args = args_json ? json_loads(args_json, 0, NULL) : NULL;

	audit_record(f->audit, &(struct audit_entry){
		.time_ms = t, .duration_ms = 3, .by_hub = w->hub, .uid = w->uid, .member = w->member,
		.identity = w->identity, .admin = w->admin, .guest = w->guest, .op = op,
		.target = w->member ? w->member : "", .args = args, .result = code ? code : "ok",
		.error = code ? "refused\nfor a reason" : NULL,
	});
}

static json_t *query(struct fixture *f, enum audit_scope scope, const struct who *w,
		     long long since, unsigned limit)
{
	struct audit_filter filter = { .scope = scope, .member = w ? w->member : NULL,
				       .identity = w ? w->identity : NULL, .uid = w ? w->uid : 0,
				       .since_ms = since, .limit = limit };
	json_t *entries = NULL;

	assert_int_equal(audit_query(f->audit, &filter, &entries), 0);
	assert_non_null(entries);
	return entries;
}

static const char *entry_op(json_t *entries, size_t i)
{
	return json_string_value(json_object_get(json_array_get(entries, i), "op"));
}

static void fill(struct fixture *f)
{
	assert_int_equal(audit_open(f->path, 0, &f->audit), 0);
	record(f, &alice_before, T0, "snapshot_create", "{\"name\":\"old\"}", NULL);
	record(f, &alice, T0 + 1000, "start", NULL, NULL);
	record(f, &alice, T0 + 2000, "port_add", "{\"port\":8888,\"token\":\"s3cret\"}", NULL);
	record(f, &bob, T0 + 3000, "port_add", "{\"member\":\"alice\",\"port\":1}", "denied");
	record(f, &bob_inside, T0 + 4000, "stop", NULL, "denied");
	record(f, &root, T0 + 5000, "user_add", "{\"name\":\"carol\",\"keys\":[\"" KEY_LINE "\"]}", NULL);
	record(f, &stranger, T0 + 6000, "start", NULL, "usage");
	record(f, &hub, T0 + 7000, "keys_set", "{\"keys\":[]}", NULL);
}

static void test_store_and_scopes(void **state)
{
	struct fixture *f = *state;
	__do_json json_t *all = NULL, *of_alice = NULL, *own_alice = NULL, *own_bob = NULL,
			 *own_stranger = NULL;
	json_t *e;
	struct stat st;
	size_t i;

	fill(f);
	all = query(f, AUDIT_ALL, NULL, 0, 0);
	assert_int_equal(json_array_size(all), 8);
	assert_string_equal(entry_op(all, 0), "snapshot_create");
	assert_string_equal(entry_op(all, 7), "keys_set");

	e = json_array_get(all, 2);
	assert_string_equal(json_string_value(json_object_get(e, "by")), "alice");
	assert_int_equal(json_integer_value(json_object_get(e, "uid")), 20001);
	assert_int_equal(json_integer_value(json_object_get(e, "time")), T0 + 2000);
	assert_string_equal(json_string_value(json_object_get(json_object_get(e, "args"), "token")),
			    "(hidden)");
	assert_string_equal(json_string_value(json_object_get(e, "result")), "ok");
	assert_null(json_object_get(e, "error"));

	e = json_array_get(all, 3);
	assert_string_equal(json_string_value(json_object_get(e, "result")), "denied");
	assert_string_equal(json_string_value(json_object_get(e, "error")), "refused\nfor a reason");
	assert_true(json_is_true(json_object_get(json_array_get(all, 4), "guest")));
	e = json_array_get(all, 5);
	assert_string_equal(json_string_value(json_object_get(e, "by")), "root");
	assert_true(json_is_true(json_object_get(e, "admin")));
	assert_true(json_is_null(json_object_get(e, "member")));
	assert_string_equal(json_string_value(json_array_get(json_object_get(json_object_get(e, "args"), "keys"), 0)),
			    "ssh-ed25519 " KEY_FINGERPRINT " alice@laptop");
	assert_string_equal(json_string_value(json_object_get(json_array_get(all, 6), "by")), "uid 1000");
	e = json_array_get(all, 7);
	assert_string_equal(json_string_value(json_object_get(e, "by")), "hub");
	assert_true(json_is_null(json_object_get(e, "uid")));

	/* An admin's --member: every alice; alice herself: her own only. */
	of_alice = query(f, AUDIT_OF_MEMBER, &alice, 0, 0);
	assert_int_equal(json_array_size(of_alice), 3);
	own_alice = query(f, AUDIT_OWN_MEMBER, &alice, 0, 0);
	assert_int_equal(json_array_size(own_alice), 2);
	assert_string_equal(entry_op(own_alice, 0), "start");
	assert_string_equal(entry_op(own_alice, 1), "port_add");
	/* Bob's own: his refused try at alice's port, and from inside. */
	own_bob = query(f, AUDIT_OWN_MEMBER, &bob, 0, 0);
	assert_int_equal(json_array_size(own_bob), 2);
	json_array_foreach(own_bob, i, e)
		assert_string_equal(json_string_value(json_object_get(e, "member")), "bob");
	own_stranger = query(f, AUDIT_OWN_UID, &stranger, 0, 0);
	assert_int_equal(json_array_size(own_stranger), 1);
	assert_string_equal(entry_op(own_stranger, 0), "start");

	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_since_and_limit(void **state)
{
	struct fixture *f = *state;
	__do_json json_t *since = NULL, *newest = NULL, *own_since = NULL;

	fill(f);
	since = query(f, AUDIT_ALL, NULL, T0 + 5000, 0);
	assert_int_equal(json_array_size(since), 3);
	assert_string_equal(entry_op(since, 0), "user_add");
	/* The newest two, oldest first. */
	newest = query(f, AUDIT_ALL, NULL, 0, 2);
	assert_int_equal(json_array_size(newest), 2);
	assert_string_equal(entry_op(newest, 0), "start");
	assert_string_equal(entry_op(newest, 1), "keys_set");
	own_since = query(f, AUDIT_OWN_MEMBER, &alice, T0 + 1500, 0);
	assert_int_equal(json_array_size(own_since), 1);
}

static void test_prune(void **state)
{
	struct fixture *f = *state;
	long long now = audit_now_ms();
	__do_json json_t *left = NULL, *after_open = NULL;

	assert_int_equal(audit_open(f->path, 3600, &f->audit), 0);
	record(f, &root, now - 3 * HOUR_MS, "start", NULL, NULL);
	record(f, &root, now - 2 * HOUR_MS, "stop", NULL, NULL);
	record(f, &root, now - 1000, "rebuild", NULL, NULL);
	assert_int_equal(audit_prune(f->audit, now), 2);
	left = query(f, AUDIT_ALL, NULL, 0, 0);
	assert_int_equal(json_array_size(left), 1);
	assert_string_equal(entry_op(left, 0), "rebuild");

	/* Back-dated behind the agent's back, gone at the next open. */
	record(f, &root, now - 5 * HOUR_MS, "start", NULL, NULL);
	audit_close(f->audit);
	assert_int_equal(audit_open(f->path, 3600, &f->audit), 0);
	after_open = query(f, AUDIT_ALL, NULL, 0, 0);
	assert_int_equal(json_array_size(after_open), 1);

	/* Kept forever: nothing pruned. */
	audit_close(f->audit);
	assert_int_equal(audit_open(f->path, 0, &f->audit), 0);
	record(f, &root, 1000, "start", NULL, NULL);
	assert_int_equal(audit_prune(f->audit, now), 0);
}

static long long count_result(json_t *entries, const char *result)
{
	long long n = 0;
	size_t i;
	json_t *e;

	json_array_foreach(entries, i, e)
		n += strcmp(json_string_value(json_object_get(e, "result")), result) == 0;
	return n;
}

static void test_flood(void **state)
{
	struct fixture *f = *state;
	__do_json json_t *entries = NULL;
	json_t *summary;

	assert_int_equal(audit_open(f->path, 0, &f->audit), 0);
	/* A member's flood at one moment: the allowance, then counted. */
	for (int i = 0; i < AUDIT_BURST + 5; i++)
		record(f, &bob, T0, "port_add", "{\"port\":1}", "conflict");
	/* An admin is not limited. */
	for (int i = 0; i < AUDIT_BURST + 5; i++)
		record(f, &root, T0, "port_ls", NULL, NULL);
	/* One period later one more may be written: the count of the five. */
	record(f, &bob, T0 + AUDIT_REFILL_MS, "stop", NULL, NULL);
	entries = query(f, AUDIT_OWN_MEMBER, &bob, 0, AUDIT_LIMIT_MAX);
	/* The query (long after T0) writes what was counted since: the stop. */
	assert_int_equal(json_array_size(entries), AUDIT_BURST + 2);
	assert_int_equal(count_result(entries, "suppressed"), 2);
	summary = json_array_get(entries, AUDIT_BURST);
	assert_string_equal(json_string_value(json_object_get(summary, "result")), "suppressed");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(summary, "args"), "requests")), 5);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(summary, "args"), "refused")), 5);
	assert_non_null(strstr(json_string_value(json_object_get(summary, "error")), "5 more requests"));
	summary = json_array_get(entries, AUDIT_BURST + 1);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(summary, "args"), "requests")), 1);
	json_decref(entries);
	entries = query(f, AUDIT_ALL, NULL, 0, AUDIT_LIMIT_MAX);
	assert_int_equal(json_array_size(entries), 2 * AUDIT_BURST + 7);
}

/* The log line of an entry whose sentence carries a forged line. */
static void test_log_line(void **state)
{
	struct fixture *f = *state;
	char logpath[PATH_MAX], text[4096] = "";
	__do_fclose FILE *in = NULL;
	int saved = dup(STDERR_FILENO), fd;
	size_t n, lines = 0;

	tu_join(logpath, sizeof(logpath), f->dir, "log");
	fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0 && saved >= 0);
	fflush(stderr);
	dup2(fd, STDERR_FILENO);
	close(fd);
	log_init("test", false, LOG_LEVEL_INFO);
	/* Without a file too: the line alone. */
	record(f, &bob, T0, "port\nadd", "{\"port\":\"1\\naudit: by=root\"}", "usage");
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	in = fopen(logpath, "re");
	assert_non_null(in);
	n = fread(text, 1, sizeof(text) - 1, in);
	text[n] = '\0';
	for (size_t i = 0; i < n; i++)
		lines += text[i] == '\n';
	assert_int_equal(lines, 1);
	assert_non_null(strstr(text, "audit: by=bob uid=20002 member=bob admin=no guest=no "
				     "op=\"port\\nadd\" target=bob result=usage ms=3 "));
	assert_non_null(strstr(text, "error=\"refused\\nfor a reason\""));
	assert_non_null(strstr(text, "args=\"{\\\"port\\\":\\\"1\\\\naudit: by=root\\\"}\""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_redact_secrets),
		cmocka_unit_test(test_redact_keys_and_sizes),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_target),
		cmocka_unit_test(test_by_name),
		cmocka_unit_test(test_rate),
		cmocka_unit_test_setup_teardown(test_store_and_scopes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_since_and_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flood, setup, teardown),
		cmocka_unit_test_setup_teardown(test_log_line, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
