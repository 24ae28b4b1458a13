/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "validate.h"

static void test_member_names(void **state)
{
	static const char *const good[] = { "alice", "a", "bob-2", "x1234567890123456789012345678901" };
	static const char *const bad[] = { "", "../x", "a;b", "-rf", "Alice", "a b", "a-", "1abc",
					   "a_b", "a.b", "$(id)", "x12345678901234567890123456789012" };
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(validate_member_name(good[i], err, sizeof(err)), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(validate_member_name(bad[i], err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "member name"));
	}
}

static void test_template_refs(void **state)
{
	char name[64], err[256];
	uint32_t version = 0;

	(void)state;
	assert_int_equal(validate_template_ref("default@3", name, sizeof(name), &version, err, sizeof(err)), 0);
	assert_string_equal(name, "default");
	assert_int_equal(version, 3);
	assert_int_equal(validate_template_ref("default", name, sizeof(name), &version, err, sizeof(err)), -EINVAL);
	assert_int_equal(validate_template_ref("default@0", name, sizeof(name), &version, err, sizeof(err)), -EINVAL);
	assert_int_equal(validate_template_ref("../x@1", name, sizeof(name), &version, err, sizeof(err)), -EINVAL);
	assert_int_equal(validate_template_ref("a@1x", name, sizeof(name), &version, err, sizeof(err)), -EINVAL);
	assert_int_equal(validate_template_name("deb..x", err, sizeof(err)), -EINVAL);
	assert_int_equal(validate_template_name("cuda-12.4", err, sizeof(err)), 0);
}

static void test_ports(void **state)
{
	uint16_t port;
	char err[256];

	(void)state;
	assert_int_equal(validate_port_text("8888", &port, err, sizeof(err)), 0);
	assert_int_equal(port, 8888);
	assert_int_equal(validate_port_text("0", &port, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "out of range"));
	assert_int_equal(validate_port_text("65536", &port, err, sizeof(err)), -EINVAL);
	assert_int_equal(validate_port_text("-1", &port, err, sizeof(err)), -EINVAL);
	assert_int_equal(validate_port_text("+80", &port, err, sizeof(err)), -EINVAL);
	assert_int_equal(validate_port_text("80 ", &port, err, sizeof(err)), -EINVAL);
	assert_int_equal(validate_port_text("", &port, err, sizeof(err)), -EINVAL);
}

/* A real ed25519 key and the fingerprint ssh-keygen -l prints for it. */
#define ED25519 "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDHMVR3xugFOlDtH+9YwgIYLN9yRKC5R0YXr3ZKAHVHG"
#define ED25519_FP "SHA256:LL4BfjXs+av6Q5zx2WGZD0YRkHT7oKgocZyGm3Csv2g"

static void test_ssh_keys(void **state)
{
	struct ssh_key key;
	char err[256];

	(void)state;
	assert_int_equal(ssh_key_parse(ED25519 " alice@laptop", &key, err, sizeof(err)), 0);
	assert_string_equal(key.type, "ssh-ed25519");
	assert_string_equal(key.comment, "alice@laptop");
	assert_string_equal(key.fingerprint, ED25519_FP);

	assert_int_equal(ssh_key_parse("command=\"id\" " ED25519, &key, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "options"));
	assert_int_equal(ssh_key_parse("restrict,pty " ED25519, &key, err, sizeof(err)), -EINVAL);
	assert_int_equal(ssh_key_parse("ssh-dss AAAAB3NzaC1kc3MAAACBAP", &key, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "DSA"));
	assert_int_equal(ssh_key_parse("ssh-ed25519 AAAA!!!!", &key, err, sizeof(err)), -EINVAL);
	assert_int_equal(ssh_key_parse("ssh-ed25519", &key, err, sizeof(err)), -EINVAL);
	assert_int_equal(ssh_key_parse("", &key, err, sizeof(err)), -EINVAL);
	assert_int_equal(ssh_key_parse(ED25519 "\nssh-ed25519 x", &key, err, sizeof(err)), -EINVAL);
	/* The blob says ed25519, the line says ecdsa. */
	assert_int_equal(ssh_key_parse("ecdsa-sha2-nistp256 AAAAC3NzaC1lZDI1NTE5AAAAIDHMVR3xugFOlDtH+9YwgIYLN9yRKC5R0YXr3ZKAHVHG",
				       &key, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "does not match"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_member_names),
		cmocka_unit_test(test_template_refs),
		cmocka_unit_test(test_ports),
		cmocka_unit_test(test_ssh_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
