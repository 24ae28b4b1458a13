/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "proto.h"

static void test_roundtrip(void **state)
{
	int sv[2];
	json_t *msg = proto_request_new("start", json_pack("{s:s}", "member", "alice"));
	json_t *got = NULL;
	struct proto_request req;
	char err[256];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(proto_send(sv[0], msg), 0);
	assert_int_equal(proto_recv(sv[1], &got), 0);
	assert_int_equal(proto_parse_request(got, &req, err, sizeof(err)), 0);
	assert_string_equal(req.op, "start");
	assert_string_equal(json_string_value(json_object_get(req.args, "member")), "alice");
	close(sv[0]);
	/* A clean end of stream is -EPIPE, not an error frame. */
	json_decref(got);
	got = NULL;
	assert_int_equal(proto_recv(sv[1], &got), -EPIPE);
	close(sv[1]);
	json_decref(msg);
}

static void test_bad_frames(void **state)
{
	static const unsigned char huge[] = { 0x7f, 0xff, 0xff, 0xff };
	static const unsigned char zero[] = { 0, 0, 0, 0 };
	static const unsigned char truncated[] = { 0, 0, 0, 10, '{', '}' };
	static const unsigned char array[] = { 0, 0, 0, 2, '[', ']' };
	const struct { const unsigned char *bytes; size_t len; } cases[] = {
		{ huge, sizeof(huge) }, { zero, sizeof(zero) },
		{ truncated, sizeof(truncated) }, { array, sizeof(array) },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int sv[2];
		json_t *got = NULL;

		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		assert_int_equal(write(sv[0], cases[i].bytes, cases[i].len), (ssize_t)cases[i].len);
		close(sv[0]);
		assert_int_equal(proto_recv(sv[1], &got), -EPROTO);
		assert_null(got);
		close(sv[1]);
	}
}

static void test_request_checks(void **state)
{
	static const struct { const char *json; const char *words; } cases[] = {
		{ "{\"v\":2,\"op\":\"start\"}", "version" },
		{ "{\"op\":\"start\"}", "version" },
		{ "{\"v\":1}", "no operation" },
		{ "{\"v\":1,\"op\":\"\"}", "no operation" },
		{ "{\"v\":1,\"op\":\"start\",\"args\":[]}", "object" },
		{ "{\"v\":1,\"op\":\"start\",\"member\":\"x\"}", "unknown field" },
	};
	struct proto_request req;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *msg = NULL;
		char err[256] = "";

		assert_int_equal(proto_decode(cases[i].json, strlen(cases[i].json), &msg), 0);
		assert_true(proto_parse_request(msg, &req, err, sizeof(err)) < 0);
		if (!strstr(err, cases[i].words))
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].words);
		json_decref(msg);
	}
	/* Duplicate keys could smuggle a second value past a check. */
	json_t *msg = NULL;
	assert_int_equal(proto_decode("{\"v\":1,\"v\":1}", 13, &msg), -EPROTO);
	assert_int_equal(proto_decode("{\"v\":1}\0", 8, &msg), -EPROTO);
}

static void test_arguments(void **state)
{
	static const char *const allowed[] = { "port", "member", NULL };
	json_t *args = json_pack("{s:i, s:s, s:b}", "port", 70000, "member", "bob", "confirm", 1);
	const char *text;
	long long number = 0;
	bool flag;
	char err[256];

	(void)state;
	assert_int_equal(proto_arg_int(args, "port", true, 1, 65535, &number, err, sizeof(err)), -ERANGE);
	assert_non_null(strstr(err, "between 1 and 65535"));
	assert_int_equal(proto_arg_int(args, "member", true, 1, 2, &number, err, sizeof(err)), -EINVAL);
	assert_int_equal(proto_arg_int(args, "absent", false, 1, 2, &number, err, sizeof(err)), 0);
	assert_int_equal(proto_arg_int(args, "absent", true, 1, 2, &number, err, sizeof(err)), -EINVAL);
	assert_int_equal(proto_arg_string(args, "member", true, &text, err, sizeof(err)), 0);
	assert_string_equal(text, "bob");
	assert_int_equal(proto_arg_string(args, "port", true, &text, err, sizeof(err)), -EINVAL);
	assert_int_equal(proto_arg_bool(args, "confirm", &flag, err, sizeof(err)), 0);
	assert_true(flag);
	assert_int_equal(proto_args_only(args, allowed, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "confirm"));
	json_decref(args);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_bad_frames),
		cmocka_unit_test(test_request_checks),
		cmocka_unit_test(test_arguments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
