/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "container/container.h"

static void test_parse(void **state)
{
	struct mounts_entry e[MOUNTS_MAX];
	size_t n = 0;
	char err[512] = "";

	(void)state;
	assert_int_equal(mounts_parse(" /data:/data:ro , /scratch/%u:/scratch:rw,", e, MOUNTS_MAX,
				      &n, err, sizeof(err)), 0);
	assert_int_equal(n, 2);
	assert_string_equal(e[0].host, "/data");
	assert_string_equal(e[0].target, "/data");
	assert_true(e[0].read_only);
	assert_false(e[0].per_member);
	assert_string_equal(e[1].host, "/scratch/%u");
	assert_false(e[1].read_only);
	assert_true(e[1].per_member);
	assert_int_equal(mounts_parse("", e, MOUNTS_MAX, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 0);
}

static void test_refused(void **state)
{
	static const struct { const char *text; const char *words; } cases[] = {
		{ "/data:/data", "HOST:CONTAINER" },
		{ "/data:/data:rw:x", "HOST:CONTAINER" },
		{ "/data:/data:wx", "ro or rw" },
		{ "data:/data:ro", "absolute" },
		{ "/data:data:ro", "absolute" },
		{ "/data/../etc:/data:ro", "absolute" },
		{ "/data:/x/..:ro", "absolute" },
		{ "/da ta:/data:ro", "absolute" },
		{ "/data:/data%u:ro", "absolute" },
		{ "/data;id:/data:ro", "absolute" },
		{ "/data:/etc:ro", "system directory" },
		{ "/data:/:ro", "system directory" },
		{ "/data:/proc/x:ro", "system directory" },
		{ "/data:/usr:rw", "system directory" },
	};
	struct mounts_entry e[MOUNTS_MAX];
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[512] = "";

		assert_int_equal(mounts_parse(cases[i].text, e, MOUNTS_MAX, &n, err, sizeof(err)), -EINVAL);
		if (!strstr(err, cases[i].words))
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].words);
	}
	/* More than the table holds. */
	char many[1024] = "";
	for (int i = 0; i <= MOUNTS_MAX; i++)
		{ size_t l = strlen(many); snprintf(many + l, sizeof(many) - l, "/d:/d:ro,"); }
	char err[512] = "";
	assert_int_equal(mounts_parse(many, e, MOUNTS_MAX, &n, err, sizeof(err)), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
