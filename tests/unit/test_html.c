/* SPDX-License-Identifier: MIT */
/*
 * html.c: the escaping that keeps every value on the hub's pages text, and
 * the page skeleton.  The browser tests (tests/hub/run) show escaping end to
 * end; these pin the conversions of html_printf() one by one.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "html.h"

/* What fn writes, as a string the caller frees. */
#define CAPTURE(text, len, stmt)                                   \
	do {                                                       \
		FILE *out_ = open_memstream(&(text), &(len));      \
		assert_non_null(out_);                             \
		{                                                  \
			FILE *out = out_;                          \
			stmt;                                      \
		}                                                  \
		assert_int_equal(fclose(out_), 0);                 \
	} while (0)

static void test_escape(void **state)
{
	char *text = NULL;
	size_t len = 0;

	(void)state;
	CAPTURE(text, len, html_escape(out, "<script>alert('x')</script> & \"q\""));
	assert_string_equal(text, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;");
	free(text);

	CAPTURE(text, len, html_escape(out, NULL));
	assert_string_equal(text, "");
	free(text);

	/* UTF-8 passes through untouched. */
	CAPTURE(text, len, html_escape(out, "Zoë · 研究室"));
	assert_string_equal(text, "Zoë · 研究室");
	free(text);
}

static void test_printf_escapes_only_arguments(void **state)
{
	char *text = NULL;
	size_t len = 0;

	(void)state;
	CAPTURE(text, len, html_printf(out, "<input value=\"%s\"><b>%s</b>", "\"><script>", "a<b"));
	assert_string_equal(text, "<input value=\"&quot;&gt;&lt;script&gt;\"><b>a&lt;b</b>");
	free(text);
}

static void test_printf_conversions(void **state)
{
	char *text = NULL;
	size_t len = 0;

	(void)state;
	CAPTURE(text, len,
		html_printf(out, "%d %u %ld %lu %lld %llu %zu %c %% %s.", -1, 2u, -3L, 4UL, -5LL,
			    6ULL, (size_t)7, '<', "&"));
	assert_string_equal(text, "-1 2 -3 4 -5 6 7 &lt; % &amp;.");
	free(text);

	/* An unsupported conversion ends the output rather than misread arguments. */
	CAPTURE(text, len, html_printf(out, "a %x b %s", 255u, "c"));
	assert_string_equal(text, "a ");
	free(text);
}

static void test_page(void **state)
{
	struct html_page page;
	char *body = NULL;

	(void)state;
	assert_int_equal(html_begin(&page, "Keys", "Lab <1>", NULL), 0);
	html_printf(page.out, "<p>%s</p>\n", "x&y");
	assert_int_equal(html_end(&page, &body), 0);
	assert_non_null(strstr(body, "<!DOCTYPE html>"));
	assert_non_null(strstr(body, "<meta name=\"viewport\""));
	assert_non_null(strstr(body, "<title>Keys · Lab &lt;1&gt;</title>"));
	assert_non_null(strstr(body, "<link rel=\"stylesheet\" href=\"/static/style.css\">"));
	assert_non_null(strstr(body, "<p>x&amp;y</p>"));
	assert_non_null(strstr(body, "</html>\n"));
	/* No inline style or script: the CSP would block them. */
	assert_null(strstr(body, "<style"));
	assert_null(strstr(body, "<script"));
	free(body);
	html_discard(&page);     /* after html_end: nothing left, no double free */

	assert_int_equal(html_begin(&page, "x", "y", NULL), 0);
	html_discard(&page);
	html_discard(&page);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_printf_escapes_only_arguments),
		cmocka_unit_test(test_printf_conversions),
		cmocka_unit_test(test_page),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
