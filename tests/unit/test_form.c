/* SPDX-License-Identifier: MIT */
/* The urlencoded and Cookie parsers: what browsers send, decoded; what
 * they never send (a repeated field, a bad escape, a hidden NUL) refused. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "hub.h"
#include "banned.h"

static int parse(const char *text, struct form *f)
{
	return form_parse(text, strlen(text), f);
}

static void test_form_good(void **state)
{
	struct form f;

	(void)state;
	assert_int_equal(parse("name=alice&password=p%40ss+word%21&csrf=00ff", &f), 0);
	assert_int_equal(f.n, 3);
	assert_string_equal(form_get(&f, "name"), "alice");
	assert_string_equal(form_get(&f, "password"), "p@ss word!");
	assert_string_equal(form_get(&f, "csrf"), "00ff");
	assert_null(form_get(&f, "Name"));
	assert_null(form_get(&f, "missing"));
	form_free(&f);

	/* Empty values, escapes in names, line breaks in a textarea. */
	assert_int_equal(parse("a=&b%5B%5D=x&key=ssh-ed25519+AAAA%0D%0Assh-rsa+BBBB", &f), 0);
	assert_string_equal(form_get(&f, "a"), "");
	assert_string_equal(form_get(&f, "b[]"), "x");
	assert_string_equal(form_get(&f, "key"), "ssh-ed25519 AAAA\r\nssh-rsa BBBB");
	form_free(&f);

	/* '=' inside a value, lower- and upper-case escapes, UTF-8. */
	assert_int_equal(parse("q=a=b&u=%c3%A9", &f), 0);
	assert_string_equal(form_get(&f, "q"), "a=b");
	assert_string_equal(form_get(&f, "u"), "\xc3\xa9");
	form_free(&f);

	/* Nothing at all is an empty form. */
	assert_int_equal(form_parse("", 0, &f), 0);
	assert_int_equal(f.n, 0);
	assert_int_equal(form_parse(NULL, 0, &f), 0);
	assert_int_equal(f.n, 0);
	form_free(&f);
	form_free(NULL);
	assert_null(form_get(NULL, "x"));
}

static void test_form_length_not_nul(void **state)
{
	const char text[] = "a=1&b=2";
	struct form f;

	(void)state;
	/* Only len bytes are read: "a=1". */
	assert_int_equal(form_parse(text, 3, &f), 0);
	assert_int_equal(f.n, 1);
	assert_string_equal(form_get(&f, "a"), "1");
	form_free(&f);
}

static void test_form_hostile(void **state)
{
	static const char *const bad[] = {
		"a=1&a=2",            /* repeated: which one did the user mean? */
		"a=%00",              /* NUL hidden in a value */
		"a%00b=1",            /* ... or in a name */
		"a=%",                /* cut escapes */
		"a=%4",
		"a=%zz",
		"a=%+1",
		"a=1&&b=2",           /* empty pairs */
		"&a=1",
		"a=1&",
		"=1",                 /* no name */
		"a",                  /* no '=' */
		"a=1&b",
		"a+b=1",              /* a blank in a name */
		"%0a=1",
		"a%7f=1",
	};
	struct form f;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int ret = parse(bad[i], &f);

		if (ret != -EINVAL)
			fail_msg("\"%s\" gave %d", bad[i], ret);
		/* Left empty, nothing to free. */
		assert_int_equal(f.n, 0);
	}
	{
		const char nul[] = "a=1\0&b=2";

		assert_int_equal(form_parse(nul, sizeof(nul) - 1, &f), -EINVAL);
	}
}

static void test_form_limits(void **state)
{
	char text[2048] = "";
	struct form f;

	(void)state;
	for (int i = 0; i < FORM_FIELDS_MAX; i++) {
		size_t used = strlen(text);

		snprintf(text + used, sizeof(text) - used, "%sf%d=%d", i ? "&" : "", i, i);
	}
	assert_int_equal(parse(text, &f), 0);
	assert_int_equal(f.n, FORM_FIELDS_MAX);
	assert_string_equal(form_get(&f, "f31"), "31");
	form_free(&f);
	{
		size_t used = strlen(text);

		snprintf(text + used, sizeof(text) - used, "&one=more");
	}
	assert_int_equal(parse(text, &f), -EINVAL);
	assert_int_equal(f.n, 0);
}

static void test_cookie_good(void **state)
{
	char value[128];

	(void)state;
	assert_int_equal(form_cookie("gpubox_session=abc123", "gpubox_session", value, sizeof(value)), 0);
	assert_string_equal(value, "abc123");
	assert_int_equal(form_cookie("theme=dark; gpubox_session=ff00; lang=en", "gpubox_session",
				     value, sizeof(value)), 0);
	assert_string_equal(value, "ff00");
	assert_int_equal(form_cookie("theme=dark;gpubox_session=x1;lang=en", "lang", value, sizeof(value)), 0);
	assert_string_equal(value, "en");
	/* A quoted value loses its quotes. */
	assert_int_equal(form_cookie("a=\"quoted\"", "a", value, sizeof(value)), 0);
	assert_string_equal(value, "quoted");
	assert_int_equal(form_cookie("a=", "a", value, sizeof(value)), 0);
	assert_string_equal(value, "");
	/* Trailing blanks and a trailing ';' are separators. */
	assert_int_equal(form_cookie("a=1 ;  b=2 ; ", "b", value, sizeof(value)), 0);
	assert_string_equal(value, "2");
	/* The first of two wins. */
	assert_int_equal(form_cookie("a=1; a=2", "a", value, sizeof(value)), 0);
	assert_string_equal(value, "1");
	/* Names are exact: no prefix, no case folding. */
	assert_int_equal(form_cookie("gpubox_session_old=1; GPUBOX_SESSION=2", "gpubox_session",
				     value, sizeof(value)), -ENOENT);
	assert_int_equal(form_cookie("xgpubox_session=1", "gpubox_session", value, sizeof(value)), -ENOENT);
	assert_int_equal(form_cookie("", "a", value, sizeof(value)), -ENOENT);
	assert_int_equal(form_cookie(NULL, "a", value, sizeof(value)), -ENOENT);
	assert_int_equal(form_cookie("a=1", "", value, sizeof(value)), -ENOENT);
}

static void test_cookie_hostile(void **state)
{
	char value[8];

	(void)state;
	/* Someone else's junk on the same host does not hide ours. */
	assert_int_equal(form_cookie("junk; =x; b a=1; gpubox_session=ok", "gpubox_session",
				     value, sizeof(value)), 0);
	assert_string_equal(value, "ok");
	/* Ours malformed is an error, never a guess. */
	assert_int_equal(form_cookie("a=one two", "a", value, sizeof(value)), -EINVAL);
	assert_int_equal(form_cookie("a=x\\y", "a", value, sizeof(value)), -EINVAL);
	assert_int_equal(form_cookie("a=\"x", "a", value, sizeof(value)), -EINVAL);
	assert_int_equal(form_cookie("a=x,y", "a", value, sizeof(value)), -EINVAL);
	assert_int_equal(form_cookie("a=\x01", "a", value, sizeof(value)), -EINVAL);
	assert_int_equal(form_cookie("a=\xc3\xa9", "a", value, sizeof(value)), -EINVAL);
	/* Too long for the caller's buffer. */
	assert_int_equal(form_cookie("a=12345678", "a", value, sizeof(value)), -ENAMETOOLONG);
	assert_int_equal(form_cookie("a=1234567", "a", value, sizeof(value)), 0);
	assert_string_equal(value, "1234567");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_form_good),
		cmocka_unit_test(test_form_length_not_nul),
		cmocka_unit_test(test_form_hostile),
		cmocka_unit_test(test_form_limits),
		cmocka_unit_test(test_cookie_good),
		cmocka_unit_test(test_cookie_hostile),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
