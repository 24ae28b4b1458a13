/* SPDX-License-Identifier: MIT */
/* Networks and lists of them: what is read, what is refused and why. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "cidr.h"
#include "banned.h"

static void expect_network(const char *text, const char *formatted, unsigned family,
			   unsigned prefix)
{
	char err[256] = "", buf[CIDR_TEXT_MAX];
	struct cidr c;

	if (cidr_parse(text, strlen(text), &c, err, sizeof(err)) != 0)
		fail_msg("%s refused: %s", text, err);
	cidr_format(&c, buf);
	assert_string_equal(buf, formatted);
	assert_int_equal(c.family, family);
	assert_int_equal(c.prefix, prefix);
}

static void test_parse_good(void **state)
{
	(void)state;
	expect_network("10.0.0.0/8", "10.0.0.0/8", CIDR_IPV4, 8);
	expect_network("192.168.1.7", "192.168.1.7", CIDR_IPV4, 32);
	expect_network("192.168.1.7/32", "192.168.1.7", CIDR_IPV4, 32);
	expect_network("0.0.0.0/0", "0.0.0.0/0", CIDR_IPV4, 0);
	expect_network("2001:db8::/32", "2001:db8::/32", CIDR_IPV6, 32);
	expect_network("2001:DB8:0:0::/48", "2001:db8::/48", CIDR_IPV6, 48);
	expect_network("::1", "::1", CIDR_IPV6, 128);
	expect_network("::/0", "::/0", CIDR_IPV6, 0);
	expect_network("fe80::/10", "fe80::/10", CIDR_IPV6, 10);
}

static void expect_refused(const char *text, const char *words)
{
	char err[256] = "";
	struct cidr c;

	if (cidr_parse(text, strlen(text), &c, err, sizeof(err)) != -EINVAL)
		fail_msg("\"%s\" was accepted", text);
	if (!strstr(err, words))
		fail_msg("\"%s\": \"%s\" does not say \"%s\"", text, err, words);
}

static void test_parse_bad(void **state)
{
	(void)state;
	/* The sentences the issue names. */
	expect_refused("300.1.1.1/8", "\"300.1.1.1/8\" is not a network: \"300.1.1.1\" is not an IPv4 or IPv6 address");
	expect_refused("10.0.0.0/33", "\"10.0.0.0/33\": an IPv4 prefix length is a number from 0 to 32");
	expect_refused("::1/129", "\"::1/129\": an IPv6 prefix length is a number from 0 to 128");
	expect_refused("10.0.0.5/8", "10.0.0.5/8 has host bits set: did you mean 10.0.0.0/8?");
	expect_refused("2001:db8::1/32", "did you mean 2001:db8::/32?");
	expect_refused("192.168.1.129/25", "did you mean 192.168.1.128/25?");
	expect_refused("::ffff:10.1.2.3", "write it as 10.1.2.3");
	expect_refused("::ffff:10.1.2.0/120", "write it as 10.1.2.0");
	/* What inet_pton() or the prefix's grammar refuses. */
	static const char *const bad[] = {
		"", "/8", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/08", "10.0.0.0/8/8",
		"10.0.0.0 /8", "10.0.0/8", "010.0.0.0/8", "10.0.0.0/1000", "10.0.0.0/8x",
		"fe80::1%eth0", "1.2.3.4.5", "host.example.org", "::g", "any/8", ":::/8",
		"0x0a000000/8", "10.0.0.0/\n8",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char err[256] = "";
		struct cidr c;

		if (cidr_parse(bad[i], strlen(bad[i]), &c, err, sizeof(err)) != -EINVAL)
			fail_msg("\"%s\" was accepted", bad[i]);
		assert_true(err[0] != '\0');
	}
}

/* The text is len bytes, not up to a NUL. */
static void test_parse_length(void **state)
{
	char err[256], buf[CIDR_TEXT_MAX];
	struct cidr c;

	(void)state;
	assert_int_equal(cidr_parse("10.0.0.0/8,1.2.3.4", 10, &c, err, sizeof(err)), 0);
	cidr_format(&c, buf);
	assert_string_equal(buf, "10.0.0.0/8");
	assert_int_equal(cidr_parse("10.0.0.0/8", 9, &c, err, sizeof(err)), -EINVAL);
	assert_int_equal(cidr_parse("10.0.0.0\0/8", 11, &c, err, sizeof(err)), -EINVAL);
}

static void expect_list(const char *text, const char *joined)
{
	struct cidr list[CIDR_LIST_MAX];
	char err[256] = "", buf[CIDR_TEXT_MAX], out[1024] = "";
	size_t n = 99;

	if (cidr_parse_list(text, list, &n, err, sizeof(err)) != 0)
		fail_msg("\"%s\" refused: %s", text, err);
	for (size_t i = 0; i < n; i++) {
		cidr_format(&list[i], buf);
		snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%s", i ? " " : "", buf);
	}
	assert_string_equal(out, joined);
}

static void test_list(void **state)
{
	(void)state;
	expect_list("any", "");
	expect_list(" any ", "");
	expect_list("10.0.0.0/8", "10.0.0.0/8");
	/* Sorted, IPv4 first; commas and blanks alike. */
	expect_list("2001:db8::/32,192.168.0.0/16 10.0.0.0/8", "10.0.0.0/8 192.168.0.0/16 2001:db8::/32");
	/* Once each; a network inside another is dropped, whatever the order. */
	expect_list("10.1.0.0/16,10.0.0.0/8,10.0.0.0/8,10.200.3.4", "10.0.0.0/8");
	expect_list("10.0.0.0/16,10.0.0.0/8,11.0.0.0/8,10.0.5.0/24", "10.0.0.0/8 11.0.0.0/8");
	expect_list("192.168.1.7,192.168.1.6/31,192.168.1.8", "192.168.1.6/31 192.168.1.8");
	expect_list("0.0.0.0/0,10.0.0.0/8,::/0,::1", "0.0.0.0/0 ::/0");
}

static void expect_list_refused(const char *text, const char *words)
{
	struct cidr list[CIDR_LIST_MAX];
	char err[256] = "";
	size_t n = 99;

	if (cidr_parse_list(text, list, &n, err, sizeof(err)) != -EINVAL)
		fail_msg("\"%s\" was accepted", text);
	assert_int_equal(n, 99);
	if (!strstr(err, words))
		fail_msg("\"%s\": \"%s\" does not say \"%s\"", text, err, words);
}

static void test_list_bad(void **state)
{
	char many[2048] = "";

	(void)state;
	expect_list_refused("", "the list of networks is empty");
	expect_list_refused(" , ,", "the list of networks is empty");
	expect_list_refused("any,10.0.0.0/8", "\"any\" stands alone");
	expect_list_refused("10.0.0.0/8,300.1.1.1/8", "\"300.1.1.1/8\" is not a network");
	expect_list_refused("10.0.0.0/8;11.0.0.0/8", "prefix length");
	expect_list_refused("ANY", "not an IPv4 or IPv6 address");
	for (int i = 0; i < CIDR_LIST_MAX; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many), "10.0.%d.0/24,", i);
	expect_list(many, "10.0.0.0/24 10.0.1.0/24 10.0.2.0/24 10.0.3.0/24 10.0.4.0/24 10.0.5.0/24 "
		    "10.0.6.0/24 10.0.7.0/24 10.0.8.0/24 10.0.9.0/24 10.0.10.0/24 10.0.11.0/24 "
		    "10.0.12.0/24 10.0.13.0/24 10.0.14.0/24 10.0.15.0/24 10.0.16.0/24 10.0.17.0/24 "
		    "10.0.18.0/24 10.0.19.0/24 10.0.20.0/24 10.0.21.0/24 10.0.22.0/24 10.0.23.0/24 "
		    "10.0.24.0/24 10.0.25.0/24 10.0.26.0/24 10.0.27.0/24 10.0.28.0/24 10.0.29.0/24 "
		    "10.0.30.0/24 10.0.31.0/24");
	snprintf(many + strlen(many), sizeof(many) - strlen(many), "10.0.99.0/24");
	expect_list_refused(many, "at most 32 networks");
}

static void test_contains(void **state)
{
	struct cidr a, b;
	char err[256];

	(void)state;
	assert_int_equal(cidr_parse("10.0.0.0/8", 10, &a, err, sizeof(err)), 0);
	assert_int_equal(cidr_parse("10.9.0.0/16", 11, &b, err, sizeof(err)), 0);
	assert_true(cidr_contains(&a, &b));
	assert_false(cidr_contains(&b, &a));
	assert_true(cidr_contains(&a, &a));
	assert_int_equal(cidr_parse("::/0", 4, &b, err, sizeof(err)), 0);
	assert_false(cidr_contains(&b, &a));        /* another family */
	assert_int_equal(cidr_parse("0.0.0.0/0", 9, &b, err, sizeof(err)), 0);
	assert_true(cidr_contains(&b, &a));
	assert_true(cidr_compare(&b, &a) < 0);
	assert_int_equal(cidr_compare(&a, &a), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_parse_length),
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_list_bad),
		cmocka_unit_test(test_contains),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
