/* SPDX-License-Identifier: MIT */
/* The hub's sync body, as the agent checks it before changing anything. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "container/container.h"
#include "container/rootfs.h"
#include "config.h"
#include "hubsync.h"
#include "hubtoken.h"
#include "testutil.h"
#include "banned.h"

#define KEY1 "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDHMVR3xugFOlDtH+9YwgIYLN9yRKC5R0YXr3ZKAHVHG"
#define KEY2 "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGGHXIugx5//fOg8XDIYa1p+UIDNUlBP7jbMLfcVamtc k2@test"

/* One member's JSON with the given fields in place of the good ones. */
static char *member_json(const char *name, const char *uid, const char *base, const char *port,
			 const char *disabled, const char *keys)
{
	char *text = NULL;

	assert_true(asprintf(&text,
			     "{\"name\": %s, \"display_name\": \"A B\", \"uid\": %s, \"subid_base\": %s, "
			     "\"ssh_port\": %s, \"disabled\": %s, \"keys\": %s}",
			     name, uid, base, port, disabled, keys) > 0);
	return text;
}

static char *doc_json(const char *members)
{
	char *text = NULL;

	assert_true(asprintf(&text, "{\"generation\": 7, \"server\": \"gpu17\", \"members\": [%s]}",
			     members) > 0);
	return text;
}

static int parse(const char *text, struct hubsync_list *list, char *err, size_t errlen)
{
	return hubsync_parse(text, strlen(text), list, err, errlen);
}

static void test_good(void **state)
{
	char *alice = member_json("\"alice\"", "20000", "1048576", "2200", "false",
				  "[\"" KEY1 " alice@laptop\", \"" KEY2 "\"]");
	char *bob = member_json("\"bob\"", "20001", "1114112", "2201", "true", "[\"" KEY2 "\"]");
	char *both = NULL, *text;
	struct hubsync_list list;
	char err[512] = "";

	(void)state;
	assert_true(asprintf(&both, "%s, %s", alice, bob) > 0);
	text = doc_json(both);
	assert_int_equal(parse(text, &list, err, sizeof(err)), 0);
	assert_int_equal(list.generation, 7);
	assert_string_equal(list.server, "gpu17");
	assert_int_equal(list.n, 2);
	assert_string_equal(list.members[0].name, "alice");
	assert_int_equal(list.members[0].uid, 20000);
	assert_int_equal(list.members[0].subid_base, 1048576);
	assert_int_equal(list.members[0].ssh_port, 2200);
	assert_false(list.members[0].disabled);
	assert_int_equal(list.members[0].nkeys, 2);
	assert_string_equal(list.members[0].keys[0], KEY1 " alice@laptop");
	assert_string_equal(list.members[0].keys[1], KEY2);
	assert_true(strncmp(list.members[0].fingerprints[0], "SHA256:", 7) == 0);
	/* A disabled member keeps no key, whatever the hub sent. */
	assert_true(list.members[1].disabled);
	assert_int_equal(list.members[1].nkeys, 0);
	hubsync_list_free(&list);
	assert_null(list.members);
	free(text);
	free(both);
	free(alice);
	free(bob);
}

static void test_empty_and_unknown_fields(void **state)
{
	struct hubsync_list list;
	char err[512] = "";
	char *one = member_json("\"carol\"", "1", "65536", "65535", "false", "[]");
	char *text = NULL;

	(void)state;
	assert_int_equal(parse("{\"generation\": 0, \"server\": \"s1\", \"members\": []}", &list, err,
			       sizeof(err)), 0);
	assert_int_equal(list.n, 0);
	hubsync_list_free(&list);
	/* Fields the agent does not know are left for newer agents. */
	assert_true(asprintf(&text, "{\"generation\": 1, \"server\": \"s1\", \"later\": {\"x\": 1}, \"members\": [%s]}",
			     one) > 0);
	assert_int_equal(parse(text, &list, err, sizeof(err)), 0);
	assert_int_equal(list.n, 1);
	assert_int_equal(list.members[0].nkeys, 0);
	assert_int_equal(list.members[0].subid_base, 65536);
	hubsync_list_free(&list);
	free(text);
	free(one);
}

static void test_duplicate_keys_kept_once(void **state)
{
	char *m = member_json("\"dave\"", "20000", "1048576", "2200", "false",
			      "[\"" KEY1 "\", \"" KEY1 " other-comment\"]");
	char *text = doc_json(m);
	struct hubsync_list list;
	char err[512] = "";

	(void)state;
	assert_int_equal(parse(text, &list, err, sizeof(err)), 0);
	assert_int_equal(list.members[0].nkeys, 1);
	hubsync_list_free(&list);
	free(text);
	free(m);
}

/* Each bad member, alone in a list: refused with words naming the fault. */
static void test_bad_members(void **state)
{
	static const struct {
		const char *name, *uid, *base, *port, *disabled, *keys, *words;
	} cases[] = {
		{ "\"Alice\"", "20000", "1048576", "2200", "false", "[]", "name" },
		{ "\"../x\"", "20000", "1048576", "2200", "false", "[]", "name" },
		{ "\"a;b\"", "20000", "1048576", "2200", "false", "[]", "name" },
		{ "7", "20000", "1048576", "2200", "false", "[]", "name" },
		{ "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"", "20000", "1048576", "2200", "false", "[]", "name" },
		{ "\"alice\"", "0", "1048576", "2200", "false", "[]", "uid" },
		{ "\"alice\"", "65536", "1048576", "2200", "false", "[]", "uid" },
		{ "\"alice\"", "-1", "1048576", "2200", "false", "[]", "uid" },
		{ "\"alice\"", "20000.5", "1048576", "2200", "false", "[]", "uid" },
		{ "\"alice\"", "\"20000\"", "1048576", "2200", "false", "[]", "uid" },
		{ "\"alice\"", "20000", "0", "2200", "false", "[]", "subid_base" },
		{ "\"alice\"", "20000", "1048577", "2200", "false", "[]", "subid_base" },
		{ "\"alice\"", "20000", "4294967296", "2200", "false", "[]", "subid_base" },
		{ "\"alice\"", "20000", "-65536", "2200", "false", "[]", "subid_base" },
		{ "\"alice\"", "20000", "1048576", "0", "false", "[]", "ssh_port" },
		{ "\"alice\"", "20000", "1048576", "65536", "false", "[]", "ssh_port" },
		{ "\"alice\"", "20000", "1048576", "2200", "0", "[]", "disabled" },
		{ "\"alice\"", "20000", "1048576", "2200", "null", "[]", "disabled" },
		{ "\"alice\"", "20000", "1048576", "2200", "false", "null", "keys" },
		{ "\"alice\"", "20000", "1048576", "2200", "false", "\"" KEY1 "\"", "keys" },
		{ "\"alice\"", "20000", "1048576", "2200", "false", "[1]", "key 1" },
		{ "\"alice\"", "20000", "1048576", "2200", "false", "[\"command=\\\"sh\\\" " KEY1 "\"]", "key 1" },
		{ "\"alice\"", "20000", "1048576", "2200", "false", "[\"" KEY1 "\", \"ssh-ed25519 AAAA!!\"]", "key 2" },
		{ "\"alice\"", "20000", "1048576", "2200", "false", "[\"" KEY1 "\\nssh-ed25519 AAAA\"]", "key 1" },
		/* The member's own bad keys refuse the list even when disabled. */
		{ "\"alice\"", "20000", "1048576", "2200", "true", "[\"nope\"]", "key 1" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *m = member_json(cases[i].name, cases[i].uid, cases[i].base, cases[i].port,
				      cases[i].disabled, cases[i].keys);
		char *text = doc_json(m);
		struct hubsync_list list;
		char err[512] = "";

		assert_int_equal(parse(text, &list, err, sizeof(err)), -EINVAL);
		assert_null(list.members);
		assert_int_equal(list.n, 0);
		if (!strstr(err, cases[i].words))
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].words);
		free(text);
		free(m);
	}
}

static void test_missing_fields(void **state)
{
	static const char *const texts[] = {
		"{\"name\": \"alice\", \"subid_base\": 1048576, \"ssh_port\": 2200, \"disabled\": false, \"keys\": []}",
		"{\"name\": \"alice\", \"uid\": 20000, \"ssh_port\": 2200, \"disabled\": false, \"keys\": []}",
		"{\"name\": \"alice\", \"uid\": 20000, \"subid_base\": 1048576, \"disabled\": false, \"keys\": []}",
		"{\"name\": \"alice\", \"uid\": 20000, \"subid_base\": 1048576, \"ssh_port\": 2200, \"keys\": []}",
		"{\"name\": \"alice\", \"uid\": 20000, \"subid_base\": 1048576, \"ssh_port\": 2200, \"disabled\": false}",
		"{\"uid\": 20000, \"subid_base\": 1048576, \"ssh_port\": 2200, \"disabled\": false, \"keys\": []}",
		"{\"name\": \"alice\", \"display_name\": 5, \"uid\": 20000, \"subid_base\": 1048576, \"ssh_port\": 2200, \"disabled\": false, \"keys\": []}",
		"[]",
		"\"alice\"",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		char *text = doc_json(texts[i]);
		struct hubsync_list list;
		char err[512] = "";

		if (parse(text, &list, err, sizeof(err)) != -EINVAL)
			fail_msg("case %zu was accepted", i);
		assert_true(strstr(err, "member 1") != NULL);
		free(text);
	}
}

static void test_bad_documents(void **state)
{
	static const struct { const char *text, *words; } cases[] = {
		{ "", "not JSON" },
		{ "nul\x01", "not JSON" },
		{ "[]", "object" },
		{ "{\"server\": \"s1\", \"members\": []}", "generation" },
		{ "{\"generation\": -1, \"server\": \"s1\", \"members\": []}", "generation" },
		{ "{\"generation\": \"1\", \"server\": \"s1\", \"members\": []}", "generation" },
		{ "{\"generation\": 1, \"members\": []}", "server" },
		{ "{\"generation\": 1, \"server\": \"S 1\", \"members\": []}", "server" },
		{ "{\"generation\": 1, \"server\": \"s1\"}", "members" },
		{ "{\"generation\": 1, \"server\": \"s1\", \"members\": {}}", "members" },
		{ "{\"generation\": 1, \"generation\": 2, \"server\": \"s1\", \"members\": []}", "not JSON" },
		{ "{\"generation\": 1, \"server\": \"s1\", \"members\": []} trailing", "not JSON" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct hubsync_list list;
		char err[512] = "";

		assert_int_equal(parse(cases[i].text, &list, err, sizeof(err)), -EINVAL);
		if (!strstr(err, cases[i].words))
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].words);
	}
}

/* The hub's allocations are lab-wide: a list repeating one is refused whole. */
static void test_duplicates(void **state)
{
	static const struct { const char *b_name, *b_uid, *b_base, *b_port, *words; } cases[] = {
		{ "\"alice\"", "20001", "1114112", "2201", "listed twice" },
		{ "\"bob\"", "20000", "1114112", "2201", "uid 20000" },
		{ "\"bob\"", "20001", "1048576", "2201", "subid_base 1048576" },
		{ "\"bob\"", "20001", "1114112", "2200", "ssh_port 2200" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *a = member_json("\"alice\"", "20000", "1048576", "2200", "false", "[]");
		char *b = member_json(cases[i].b_name, cases[i].b_uid, cases[i].b_base, cases[i].b_port,
				      "false", "[]");
		char *both = NULL, *text;
		struct hubsync_list list;
		char err[512] = "";

		assert_true(asprintf(&both, "%s, %s", a, b) > 0);
		text = doc_json(both);
		assert_int_equal(parse(text, &list, err, sizeof(err)), -EINVAL);
		if (!strstr(err, cases[i].words))
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].words);
		free(text);
		free(both);
		free(a);
		free(b);
	}
}

static void test_limits(void **state)
{
	struct hubsync_list list;
	char err[512] = "";
	size_t big = (size_t)HUBSYNC_BODY_MAX + 1;
	char *text = malloc(big);
	char *keys = NULL, *m, *doc;
	FILE *f;
	size_t len = 0;

	(void)state;
	assert_non_null(text);
	memset(text, ' ', big);
	assert_int_equal(hubsync_parse(text, big, &list, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "larger"));
	free(text);

	/* More keys than a member may have. */
	f = open_memstream(&keys, &len);
	assert_non_null(f);
	fputc('[', f);
	for (int i = 0; i <= HUBSYNC_KEYS_MAX; i++)
		fprintf(f, "%s\"" KEY1 " k%d\"", i ? ", " : "", i);
	fputc(']', f);
	assert_int_equal(fclose(f), 0);
	m = member_json("\"alice\"", "20000", "1048576", "2200", "false", keys);
	doc = doc_json(m);
	assert_int_equal(parse(doc, &list, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "at most"));
	free(doc);
	free(m);
	free(keys);
}

/* The hub is trusted no further than this server's own ranges. */
static void test_ranges(void **state)
{
	static const struct {
		uint32_t uid, base, port;
		const char *words;     /* NULL: within the ranges */
	} cases[] = {
		{ 20000, 1048576, 2200, NULL },
		{ 29999, 999948288 - 65536, 2999, NULL },
		{ 20000, 1048576, 22, "ssh_port 22 lies outside ssh_port_range 2200-2999" },
		{ 20000, 1048576, 2199, "ssh_port 2199 lies outside" },
		{ 20000, 1048576, 3000, "ssh_port 3000 lies outside" },
		{ 19999, 1048576, 2200, "uid 19999 lies outside uid_range 20000-29999" },
		{ 30000, 1048576, 2200, "uid 30000 lies outside" },
		{ 1000, 1048576, 2200, "uid 1000 lies outside" },
		/* A block below, one that starts inside but ends past the end. */
		{ 20000, 983040, 2200, "subid_base 983040 (ids 983040-1048575) lies outside subid_range 1000000-999999999" },
		{ 20000, 65536, 2200, "subid_base 65536" },
		{ 20000, 999948288, 2200, "subid_base 999948288 (ids 999948288-1000013823)" },
		{ 20000, 4294901760u, 2200, "subid_base 4294901760 (ids 4294901760-4294967295)" },
		/* Every field outside is named. */
		{ 5, 65536, 22, "uid 5 lies outside uid_range 20000-29999; subid_base 65536" },
	};
	struct gpubox_config cfg;

	(void)state;
	config_set_defaults(&cfg);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct hubsync_member m = { .name = "alice", .uid = cases[i].uid,
					    .subid_base = cases[i].base, .ssh_port = cases[i].port };
		char err[512] = "stale";
		int ret = hubsync_check_ranges(&cfg, &m, err, sizeof(err));

		if (!cases[i].words) {
			if (ret != 0 || err[0])
				fail_msg("case %zu refused: %d \"%s\"", i, ret, err);
			continue;
		}
		if (ret != -ERANGE || !strstr(err, cases[i].words))
			fail_msg("case %zu: %d \"%s\" lacks \"%s\"", i, ret, err, cases[i].words);
	}
	/* The last case names all three. */
	{
		struct hubsync_member m = { .uid = 5, .subid_base = 65536, .ssh_port = 22 };
		char err[512];

		assert_int_equal(hubsync_check_ranges(&cfg, &m, err, sizeof(err)), -ERANGE);
		assert_non_null(strstr(err, "; ssh_port 22 lies outside ssh_port_range"));
	}
}

/* provision_keys(): only the member's authorized_keys, confined to the tree. */
static void test_provision_keys(void **state)
{
	const uint32_t base = 3000000000u, uid = 1234;
	struct provision_member m = { .name = "alice", .uid = uid, .gid = uid, .subid_base = base,
				      .hostname = "gpu17-alice", .authorized_keys = KEY1 "\n" };
	char dir[PATH_MAX], victim[PATH_MAX], path[PATH_MAX];
	struct stat st;
	int fd;

	(void)state;
	fd = rootfs_open("/");
	assert_true(fd >= 0);
	if (rootfs_stat(fd, "etc", &st) == -ENOSYS) {
		close(fd);
		/* valgrind before 3.20 does not know openat2(). */
		print_message("openat2() is not available here; skipped\n");
		skip();
	}
	close(fd);
	assert_int_equal(tu_make_tempdir(dir, sizeof(dir), "/tmp/test_hubsync.XXXXXX"), 0);
	/* No home yet: the next start writes everything. */
	assert_int_equal(provision_keys(dir, &m), -ENOENT);
	assert_int_equal(tu_make_dir(dir, "home", base, base, 0755), 0);
	assert_int_equal(tu_make_dir(dir, "home/alice", base + uid, base + uid, 0755), 0);
	assert_int_equal(provision_keys(dir, &m), 0);
	tu_assert_text(dir, "home/alice/.ssh/authorized_keys", KEY1 "\n");
	tu_assert_owner(dir, "home/alice/.ssh", base + uid, base + uid, 0700);
	tu_assert_owner(dir, "home/alice/.ssh/authorized_keys", base + uid, base + uid, 0600);
	/* Keys removed: an empty file. */
	m.authorized_keys = "";
	assert_int_equal(provision_keys(dir, &m), 0);
	tu_assert_text(dir, "home/alice/.ssh/authorized_keys", "");
	/* The member's own link out of the tree is never followed. */
	tu_join(victim, sizeof(victim), dir, "victim");
	assert_int_equal(mkdir(victim, 0700), 0);
	tu_join(path, sizeof(path), dir, "home/alice/.ssh/authorized_keys");
	assert_int_equal(unlink(path), 0);
	tu_make_link(dir, "home/alice/.ssh/authorized_keys", "../../../victim/keys");
	m.authorized_keys = KEY1 "\n";
	assert_int_equal(provision_keys(dir, &m), -ELOOP);
	tu_join(path, sizeof(path), dir, "victim/keys");
	assert_int_equal(access(path, F_OK), -1);
	m.name = "../x";
	assert_int_equal(provision_keys(dir, &m), -EINVAL);
	tu_remove_tempdir(dir);
}

/* The hub calls an agent with the token derived from the server's
 * (hubtoken.h), checked against a vector computed apart (Python's
 * hashlib.blake2b); the agent takes that one and refuses its own token
 * file's, which reads the hub's member list. */
#define HUB_TOKEN "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define TO_AGENT "a1364e68f22da21933703fe56743c1772f97e32f9b49bc3540ef1fed44ad6d86"

static void test_token_directions(void **state)
{
	char dir[PATH_MAX], path[PATH_MAX], derived[HUBTOKEN_HEX];
	struct hubsync *h = NULL;

	(void)state;
	assert_int_equal(hubtoken_to_agent(HUB_TOKEN, strlen(HUB_TOKEN), derived), 0);
	assert_string_equal(derived, TO_AGENT);
	assert_int_equal(hubtoken_to_agent("token-x-0123456789abcdef", 24, derived), 0);
	assert_string_equal(derived, "20fa094bed6f128ab30c5145af57ab6050fa33eecc0db2c58cfa9478a023c900");

	assert_int_equal(tu_make_tempdir(dir, sizeof(dir), "/tmp/test_hubsync.XXXXXX"), 0);
	assert_int_equal(tu_make_file(dir, "token", HUB_TOKEN "\n", geteuid(), getegid(), 0600), 0);
	tu_join(path, sizeof(path), dir, "token");
	assert_int_equal(hubsync_token_load(path, &h), 0);
	assert_true(hubsync_token_ok(h, "Bearer " TO_AGENT));
	assert_true(hubsync_token_ok(h, "Bearer  " TO_AGENT " "));
	assert_false(hubsync_token_ok(h, "Bearer " HUB_TOKEN));
	assert_false(hubsync_token_ok(h, "Basic " TO_AGENT));
	assert_false(hubsync_token_ok(h, "Bearer " TO_AGENT "0"));
	assert_false(hubsync_token_ok(h, "Bearer "));
	assert_false(hubsync_token_ok(h, NULL));
	free(h);
	tu_remove_tempdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_empty_and_unknown_fields),
		cmocka_unit_test(test_duplicate_keys_kept_once),
		cmocka_unit_test(test_bad_members),
		cmocka_unit_test(test_missing_fields),
		cmocka_unit_test(test_bad_documents),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_ranges),
		cmocka_unit_test(test_token_directions),
	};
	const struct CMUnitTest root_tests[] = {
		cmocka_unit_test(test_provision_keys),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);

	if (!tu_have_root("test_hubsync"))
		return failed ? failed : TU_SKIP;
	return failed + cmocka_run_group_tests(root_tests, NULL, NULL);
}
