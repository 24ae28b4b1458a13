/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "image/aptsources.h"
#include "fsutil.h"
#include "testutil.h"
#include "banned.h"

#define MIRROR "http://mirror.invalid/debian"

static int parse(const char *text, char *uri, size_t len)
{
	return aptsources_parse_mirror(text, strlen(text), uri, len);
}

static void expect_mirror(const char *text, const char *want)
{
	char uri[APTSOURCES_URI_MAX];

	assert_int_equal(parse(text, uri, sizeof(uri)), 0);
	assert_string_equal(uri, want);
}

static void expect_none(const char *text)
{
	char uri[APTSOURCES_URI_MAX] = "";

	assert_int_equal(parse(text, uri, sizeof(uri)), -ENOENT);
}

static void test_one_line(void **state)
{
	(void)state;
	expect_mirror("deb " MIRROR " bookworm main\n", MIRROR);
	expect_mirror("deb " MIRROR " bookworm", MIRROR);
	expect_mirror("\tdeb\t" MIRROR "\tbookworm main contrib\n", MIRROR);
	expect_mirror("deb-src http://src.invalid/debian bookworm main\n"
		      "deb " MIRROR " bookworm main\n", MIRROR);
	expect_mirror("deb https://mirror.invalid/debian/ stable main non-free-firmware\n",
		      "https://mirror.invalid/debian/");
	expect_mirror("deb file:/srv/mirror bookworm main\n", "file:/srv/mirror");
}

static void test_one_line_options(void **state)
{
	(void)state;
	expect_mirror("deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] " MIRROR
		      " bookworm main\n", MIRROR);
	expect_mirror("deb [ arch=amd64 signed-by=/k.gpg ] " MIRROR " bookworm main\n", MIRROR);
	expect_mirror("deb [arch=amd64,arm64] " MIRROR " bookworm main\n", MIRROR);
	/* An unterminated option list makes the line unusable. */
	expect_none("deb [arch=amd64 " MIRROR " bookworm main\n");
}

static void test_one_line_comments(void **state)
{
	(void)state;
	expect_mirror("# deb http://old.invalid/debian bookworm main\n"
		      "\n"
		      "deb " MIRROR " bookworm main # the main archive\n", MIRROR);
	expect_none("#deb " MIRROR " bookworm main\n");
	expect_none("   # nothing here\n\n\n");
}

static void test_one_line_overlays(void **state)
{
	(void)state;
	expect_mirror("deb http://security.invalid/debian-security bookworm-security main\n"
		      "deb http://updates.invalid/debian bookworm-updates main\n"
		      "deb http://bp.invalid/debian bookworm-backports main\n"
		      "deb " MIRROR " bookworm main\n", MIRROR);
	expect_none("deb http://security.invalid/debian-security bookworm-security main\n");
	expect_none("deb http://bp.invalid/debian bookworm-backports-sloppy main\n");
	/* A flat repository has no dists/: not a Debian archive. */
	expect_none("deb http://flat.invalid/repo ./\n");
}

static void test_deb822(void **state)
{
	(void)state;
	expect_mirror("Types: deb\n"
		      "URIs: " MIRROR "\n"
		      "Suites: bookworm bookworm-updates\n"
		      "Components: main\n"
		      "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n", MIRROR);
	/* Field names are case-insensitive; Types may list deb-src too. */
	expect_mirror("types: deb-src deb\nuris: " MIRROR "\nsuites: bookworm\ncomponents: main\n",
		      MIRROR);
}

static void test_deb822_multi_stanza(void **state)
{
	(void)state;
	expect_mirror("Types: deb\n"
		      "URIs: http://security.invalid/debian-security\n"
		      "Suites: bookworm-security\n"
		      "Components: main\n"
		      "\n"
		      "Types: deb-src\n"
		      "URIs: http://src.invalid/debian\n"
		      "Suites: bookworm\n"
		      "Components: main\n"
		      "\n"
		      "Types: deb\n"
		      "URIs: " MIRROR "\n"
		      "Suites: bookworm\n"
		      "Components: main\n", MIRROR);
	/* Several URIs: the first usable one. */
	expect_mirror("Types: deb\n"
		      "URIs: cdrom:[Debian]/ " MIRROR " http://second.invalid/debian\n"
		      "Suites: bookworm\n", MIRROR);
	/* Values continued on the next lines. */
	expect_mirror("Types: deb\n"
		      "URIs:\n"
		      "  " MIRROR "\n"
		      "Suites: bookworm-updates\n"
		      " bookworm\n", MIRROR);
}

static void test_deb822_comments(void **state)
{
	(void)state;
	expect_mirror("# the host's archive\n"
		      "Types: deb\n"
		      "# http://snapshot.invalid/archive/debian/20250520T000000Z\n"
		      "URIs: " MIRROR "\n"
		      "Suites: bookworm\n", MIRROR);
	/* Blank lines with spaces end a stanza too. */
	expect_none("Types: deb\n   \nURIs: " MIRROR "\nSuites: bookworm\n");
}

static void test_deb822_disabled(void **state)
{
	(void)state;
	expect_mirror("Types: deb\n"
		      "URIs: http://disabled.invalid/debian\n"
		      "Suites: bookworm\n"
		      "Enabled: no\n"
		      "\n"
		      "Types: deb\n"
		      "URIs: " MIRROR "\n"
		      "Suites: bookworm\n"
		      "Enabled: yes\n", MIRROR);
	expect_none("Enabled: false\nTypes: deb\nURIs: " MIRROR "\nSuites: bookworm\n");
}

static void test_only_security(void **state)
{
	(void)state;
	expect_none("Types: deb\n"
		    "URIs: http://security.invalid/debian-security\n"
		    "Suites: bookworm-security\n"
		    "Components: main\n");
	expect_none("deb http://security.invalid/debian-security bookworm-security main\n"
		    "deb http://updates.invalid/debian bookworm-updates main\n");
}

static void test_garbage(void **state)
{
	static const char binary[] = "\xff\0\xfe\n\0deb\0" MIRROR "\0bookworm\n";
	char uri[APTSOURCES_URI_MAX];
	char small[8];

	(void)state;
	expect_none("");
	expect_none("\n\n\n");
	expect_none(":");
	expect_none("Types:\nURIs:\nSuites:\n");
	expect_none("deb\n");
	expect_none("deb " MIRROR "\n");
	expect_none("deb -rf bookworm\n");
	expect_none("deb --no-check-gpg bookworm main\n");
	expect_none("deb ftp://mirror.invalid/debian bookworm main\n");
	expect_none("deb http:// bookworm main\n");
	expect_none("deb http://mirror.invalid/$(id) bookworm main\n");
	expect_none("]]]][[[[deb [[ ]] \n\t\r\n");
	expect_none(" continuation before any field\n\tagain\n");
	expect_none("Types: deb\nURIs: \"" MIRROR "\"\nSuites: bookworm\n");
	/* NUL bytes are garbage, not the end of the text. */
	assert_int_equal(aptsources_parse_mirror(binary, sizeof(binary) - 1, uri, sizeof(uri)), 0);
	assert_string_equal(uri, MIRROR);
	/* A buffer that is too small is an error, not a truncated URI. */
	assert_int_equal(parse("deb " MIRROR " bookworm\n", small, sizeof(small)), -ENAMETOOLONG);
	assert_int_equal(aptsources_parse_mirror(NULL, 0, uri, sizeof(uri)), -EINVAL);
}

static void test_formats(void **state)
{
	char uri[APTSOURCES_URI_MAX];
	const char *oneline = "deb " MIRROR " bookworm main\n";
	const char *deb822 = "Types: deb\nURIs: " MIRROR "\nSuites: bookworm\n";

	(void)state;
	assert_int_equal(aptsources_parse(oneline, strlen(oneline), APTSOURCES_DEB822, uri,
					  sizeof(uri)), -ENOENT);
	assert_int_equal(aptsources_parse(deb822, strlen(deb822), APTSOURCES_ONE_LINE, uri,
					  sizeof(uri)), -ENOENT);
	assert_int_equal(aptsources_parse(deb822, strlen(deb822), APTSOURCES_DEB822, uri,
					  sizeof(uri)), 0);
	assert_string_equal(uri, MIRROR);
}

static void test_uri_is_valid(void **state)
{
	(void)state;
	assert_true(aptsources_uri_is_valid(MIRROR));
	assert_true(aptsources_uri_is_valid("HTTPS://mirror.invalid/debian"));
	assert_false(aptsources_uri_is_valid(""));
	assert_false(aptsources_uri_is_valid("-o"));
	assert_false(aptsources_uri_is_valid("mirror.invalid/debian"));
	assert_false(aptsources_uri_is_valid("http://mirror.invalid/deb ian"));
	assert_false(aptsources_uri_is_valid("http://mirror.invalid/\x7f"));
}

/* ---- files ---------------------------------------------------------------- */

static void make_root(char *root, size_t len)
{
	char path[PATH_MAX];

	assert_int_equal(tu_make_tempdir(root, len, "/tmp/test-aptsources-XXXXXX"), 0);
	tu_join(path, sizeof(path), root, "etc/apt/sources.list.d");
	assert_int_equal(fsutil_mkdir_p(path, 0755), 0);
}

static void test_find_sources_list_first(void **state)
{
	char root[64], uri[APTSOURCES_URI_MAX];

	(void)state;
	make_root(root, sizeof(root));
	tu_write_file(root, "etc/apt/sources.list", "deb " MIRROR " bookworm main\n");
	tu_write_file(root, "etc/apt/sources.list.d/a.sources",
		   "Types: deb\nURIs: http://other.invalid/debian\nSuites: bookworm\n");
	assert_int_equal(aptsources_find_mirror(root, uri, sizeof(uri)), 0);
	assert_string_equal(uri, MIRROR);
	assert_int_equal(fsutil_remove_tree(root), 0);
}

static void test_find_sorted(void **state)
{
	char root[64], uri[APTSOURCES_URI_MAX];

	(void)state;
	make_root(root, sizeof(root));
	/* sources.list with only comments, as on a deb822 host. */
	tu_write_file(root, "etc/apt/sources.list", "# see sources.list.d\n");
	tu_write_file(root, "etc/apt/sources.list.d/zz.list", "deb http://zz.invalid/debian bookworm main\n");
	tu_write_file(root, "etc/apt/sources.list.d/b.sources",
		   "Types: deb\nURIs: " MIRROR "\nSuites: bookworm bookworm-updates\n\n"
		   "Types: deb\nURIs: http://security.invalid/debian-security\nSuites: bookworm-security\n");
	tu_write_file(root, "etc/apt/sources.list.d/a.sources",
		   "Types: deb\nURIs: http://security.invalid/debian-security\nSuites: bookworm-security\n");
	tu_write_file(root, "etc/apt/sources.list.d/0.list.disabled", "deb http://no.invalid/debian bookworm main\n");
	tu_write_file(root, "etc/apt/sources.list.d/1.save", "deb http://no.invalid/debian bookworm main\n");
	/* A .list file is one-line format even when it looks like deb822. */
	tu_write_file(root, "etc/apt/sources.list.d/2.list",
		   "Types: deb\nURIs: http://no.invalid/debian\nSuites: bookworm\n");
	assert_int_equal(aptsources_find_mirror(root, uri, sizeof(uri)), 0);
	assert_string_equal(uri, MIRROR);
	assert_int_equal(fsutil_remove_tree(root), 0);
}

static void test_find_none(void **state)
{
	char root[64], uri[APTSOURCES_URI_MAX];

	(void)state;
	make_root(root, sizeof(root));
	assert_int_equal(aptsources_find_mirror(root, uri, sizeof(uri)), -ENOENT);
	tu_write_file(root, "etc/apt/sources.list.d/security.sources",
		   "Types: deb\nURIs: http://security.invalid/debian-security\nSuites: bookworm-security\n");
	assert_int_equal(aptsources_find_mirror(root, uri, sizeof(uri)), -ENOENT);
	assert_int_equal(fsutil_remove_tree(root), 0);
	assert_int_equal(aptsources_find_mirror("/nonexistent.invalid", uri, sizeof(uri)), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_line),
		cmocka_unit_test(test_one_line_options),
		cmocka_unit_test(test_one_line_comments),
		cmocka_unit_test(test_one_line_overlays),
		cmocka_unit_test(test_deb822),
		cmocka_unit_test(test_deb822_multi_stanza),
		cmocka_unit_test(test_deb822_comments),
		cmocka_unit_test(test_deb822_disabled),
		cmocka_unit_test(test_only_security),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_formats),
		cmocka_unit_test(test_uri_is_valid),
		cmocka_unit_test(test_find_sources_list_first),
		cmocka_unit_test(test_find_sorted),
		cmocka_unit_test(test_find_none),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
