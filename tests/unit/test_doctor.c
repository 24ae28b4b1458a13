/* SPDX-License-Identifier: MIT */
/*
 * What gpubox admin doctor reads (ops_doctor.c): kernel and LXC releases
 * against a minimum, the effective values of "sshd -T", a hub's Date
 * header, and the names of the statuses the CLI prints.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "doctor.h"
#include "banned.h"

static void test_kernel_at_least(void **state)
{
	(void)state;
	assert_true(doctor_kernel_at_least("6.1.0-18-amd64", 5, 15));
	assert_true(doctor_kernel_at_least("5.15.0", 5, 15));
	assert_true(doctor_kernel_at_least("5.19", 5, 15));
	assert_true(doctor_kernel_at_least("10.0.1", 5, 15));
	assert_false(doctor_kernel_at_least("5.14.21-150400", 5, 15));
	assert_false(doctor_kernel_at_least("4.19.0-26-amd64", 5, 15));
	/* LXC's version string, the same reading. */
	assert_true(doctor_kernel_at_least("5.0.2", 4, 0));
	assert_false(doctor_kernel_at_least("3.0.4", 4, 0));
}

static void test_kernel_refused_text(void **state)
{
	(void)state;
	assert_false(doctor_kernel_at_least(NULL, 0, 0));
	assert_false(doctor_kernel_at_least("", 0, 0));
	assert_false(doctor_kernel_at_least("6", 5, 15));
	assert_false(doctor_kernel_at_least("6.", 5, 15));
	assert_false(doctor_kernel_at_least("v6.1", 5, 15));
	assert_false(doctor_kernel_at_least("-6.1", 5, 15));
	/* Numbers too long to be a release are no release (no overflow). */
	assert_false(doctor_kernel_at_least("99999999999999999999.1", 5, 15));
	assert_false(doctor_kernel_at_least("6.99999999999999999999", 5, 15));
}

static const char sshd_output[] =
	"port 22\n"
	"addressfamily any\n"
	"authorizedkeysfile /etc/gpubox/authorized_keys/%u\n"
	"forcecommand gpubox\n"
	"forcecommandx something else\n"
	"permittunnel no";

static void test_sshd_option(void **state)
{
	char buf[128];

	(void)state;
	assert_int_equal(doctor_sshd_option(sshd_output, "forcecommand", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "gpubox");
	assert_int_equal(doctor_sshd_option(sshd_output, "authorizedkeysfile", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/etc/gpubox/authorized_keys/%u");
	/* The last line, without a line end. */
	assert_int_equal(doctor_sshd_option(sshd_output, "permittunnel", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "no");
}

static void test_sshd_option_absent_or_long(void **state)
{
	char small[4];
	char buf[64];

	(void)state;
	/* A key is a whole word: "port" is not "portx", nor a prefix of one. */
	assert_int_equal(doctor_sshd_option(sshd_output, "forcecommandx2", buf, sizeof(buf)), -ENOENT);
	assert_int_equal(doctor_sshd_option(sshd_output, "addressfamil", buf, sizeof(buf)), -ENOENT);
	assert_int_equal(doctor_sshd_option("", "port", buf, sizeof(buf)), -ENOENT);
	assert_int_equal(doctor_sshd_option("port\n", "port", buf, sizeof(buf)), -ENOENT);
	assert_int_equal(doctor_sshd_option(sshd_output, "forcecommand", small, sizeof(small)), -ENAMETOOLONG);
	assert_int_equal(doctor_sshd_option(sshd_output, "port", small, sizeof(small)), 0);
	assert_string_equal(small, "22");
}

static void test_http_date(void **state)
{
	time_t t = 0;

	(void)state;
	assert_int_equal(doctor_http_date("Sun, 06 Nov 1994 08:49:37 GMT", &t), 0);
	assert_int_equal((long long)t, 784111777LL);
	/* As a header callback passes it: the blank after "Date:", the CRLF. */
	assert_int_equal(doctor_http_date(" Mon, 01 Jun 2026 12:00:00 GMT\r\n", &t), 0);
	assert_int_equal((long long)t, 1780315200LL);
}

static void test_http_date_refused(void **state)
{
	time_t t = 42;

	(void)state;
	assert_int_equal(doctor_http_date(NULL, &t), -EINVAL);
	assert_int_equal(doctor_http_date("", &t), -EINVAL);
	/* RFC 850 and asctime forms, which no hub sends. */
	assert_int_equal(doctor_http_date("Sunday, 06-Nov-94 08:49:37 GMT", &t), -EINVAL);
	assert_int_equal(doctor_http_date("Sun Nov  6 08:49:37 1994", &t), -EINVAL);
	assert_int_equal(doctor_http_date("Sun, 06 Nov 1994 08:49:37 GMT trailing", &t), -EINVAL);
	assert_int_equal(doctor_http_date("Sun, 06 Nov 1994 08:49:37 CET", &t), -EINVAL);
	assert_int_equal((long long)t, 42LL);
}

static void test_status_names(void **state)
{
	(void)state;
	assert_string_equal(doctor_status_name(DOCTOR_OK), "ok");
	assert_string_equal(doctor_status_name(DOCTOR_NOTE), "note");
	assert_string_equal(doctor_status_name(DOCTOR_FAIL), "fail");
	assert_string_equal(doctor_status_name((enum doctor_status)99), "fail");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kernel_at_least),
		cmocka_unit_test(test_kernel_refused_text),
		cmocka_unit_test(test_sshd_option),
		cmocka_unit_test(test_sshd_option_absent_or_long),
		cmocka_unit_test(test_http_date),
		cmocka_unit_test(test_http_date_refused),
		cmocka_unit_test(test_status_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
