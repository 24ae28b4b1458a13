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

/*
 * Keys made by ssh-keygen -t ed25519 / ecdsa -b 256,384,521 / rsa -b
 * 2048,3072, and two security-key (FIDO) keys built by hand after
 * OpenSSH's PROTOCOL.u2f (ssh-keygen cannot make those without the
 * hardware) from the ed25519 and nistp256 keys' public parts.  Each
 * fingerprint and size is what ssh-keygen -l prints for the line.
 */
static const struct {
	const char *line, *type, *fingerprint;
	unsigned bits;
} real_keys[] = {
	{ "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMcde/tfRcnQwVO9PMvHoqPdJ4pF3Z1V4BcqHwUUzbzh k_ed25519@test",
	  "ssh-ed25519", "SHA256:RaVwohuNYVTssUR/7BxghbNeFu8kegXdQcKDogwitIE", 0 },
	{ "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBI429xuSMG61NmTcf6orzenquSrG5J219O0zVEV+ggwR9G+xwqpBZ+60PlaFEJY2s23fPiMmqKrJeOikbqEx9g0= k_ecdsa256@test",
	  "ecdsa-sha2-nistp256", "SHA256:sPYipI4cZxG3UxLyoNCyrQc4iMxMkQkGHKkH/oXBv8Q", 0 },
	{ "ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBB9mDkzmh1IkBM19shMgeSHSz2wRvNLLFRMnwofPo0UbYVV0dYyMT42abrw3x0+3Bz5L+4HK7p82kwEvUNom8jAzK60ku/GKNzGv/sIF61Rz8NJ2zA8WoYQGBsRm2ZOiiw== k_ecdsa384@test",
	  "ecdsa-sha2-nistp384", "SHA256:PxbFhH9QGbo0M0M/mBaEOgBnIoND6aQwgCbGu4lpyKU", 0 },
	{ "ecdsa-sha2-nistp521 AAAAE2VjZHNhLXNoYTItbmlzdHA1MjEAAAAIbmlzdHA1MjEAAACFBAH4Be+cCjS6IfupVJ87Kcfn4jzSLRorfMCoLU8a1Wyfo5+H7vP25QA0B2r/brOcojxIi/TarocD+ogumRg/rMR8hQHjv+qW7rz1lLpNiQdek+U8SyqgBiOI0xpkUvBoX2nv6Ji7qiD7TJcNREombdoKYSw7DRDAl9jVSpKdHYulN032Pw== k_ecdsa521@test",
	  "ecdsa-sha2-nistp521", "SHA256:Iqai9OnAWnWCYa0pYwS+aCdzA9vpGcFeGfCIvwnLmlA", 0 },
	{ "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDYRcWu4B2U1K9jfIRxKk3BAXZhiKUvBdC+fjFtu3O3OVyLl+YMnIKagANAMmKRP9nmkH0r6bHv+o3a+ofm1yB/MRMO7ltX1FpX9CYSeNIYX6nXjVTmWgx9MqxZSAF+9qEfseZmWPfX2gPJFKUwkyjbSOJGpD1T2jnfyOrmBb2sMElDiqPvUCMMtUYAMT7huSlSh8njkV9qzJHZvrjJd6wiHhuOEPIFYPEWtSGwL05/358D/PrQbXYmyGnMYfLN/xIStRUBoj5LuFl03vvIg2MYipb150z4NLrGCnCTcrAILwKMq4n/O6XQHLZS6ilvf+Ooo3B7jxuzHKChZV8P4b2Z k_rsa2048@test",
	  "ssh-rsa", "SHA256:1RLlXiW1lYbCODUcLxv/iZCXjVb0e0EjoaJP0Y+b/2Q", 2048 },
	{ "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQCUG13JRUGd0o6+gCxKFuR8KQSGjQrJW0/VaslS7PqaIXQ69d8+o7rwwUEuAoSO/8FJP3h809U+m1ZTYvX63/floXmM6WVR7KC837wM1e8YtbuUtvUf1agZbLx4wKAVpimjs6V/0yGQec4AofTsjkFybP62FTfitiZ+ofLzVPySrHa5PkUwHZuhx105rVmJIy6VCdsLWvQ6UqS10CkP0rRuKC9xCCYd/xSPK2uGIqvLiPdGGYZivrOHXwKa2kimPrxhufmpnQvxHcHybRuQWEPb4z0Wc4WCpqsvUZDAtOUBDr81+AXxtvV1u4MHYFWNDSzwdAdTDNo0Gr/At0DaVqeFA3v3aZdx9/UStOmms5w3wvvp4WTHL4Cl8rjHW0l0SfonYio0JvVnt8eHRPU5DYJAlAJF01OK7fduIqKZj9W8vaQfZDbdOvMvyP0FFHa1Sf8EifJaGLi51pmDXaceZUWe3YmqVihnhxLUSfxDivMluk3/zRozpHHo1BGfvcZzVA8= k_rsa3072@test",
	  "ssh-rsa", "SHA256:2NZHotiH+IPP0g3UGo5BOQ3ZtR6rnc6QikfoeRKuCw8", 3072 },
	{ "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIMcde/tfRcnQwVO9PMvHoqPdJ4pF3Z1V4BcqHwUUzbzhAAAABHNzaDo= sk-ed@test",
	  "sk-ssh-ed25519@openssh.com", "SHA256:7iXGcz6X5ysxLUrtRAL8CItalDJgfvI03a+C1Tcd5Mc", 0 },
	{ "sk-ecdsa-sha2-nistp256@openssh.com AAAAInNrLWVjZHNhLXNoYTItbmlzdHAyNTZAb3BlbnNzaC5jb20AAAAIbmlzdHAyNTYAAABBBI429xuSMG61NmTcf6orzenquSrG5J219O0zVEV+ggwR9G+xwqpBZ+60PlaFEJY2s23fPiMmqKrJeOikbqEx9g0AAAAKc3NoOmdwdWJveA== sk-ec@test",
	  "sk-ecdsa-sha2-nistp256@openssh.com", "SHA256:clx19DSoIPlUb4bj9wxmZfMCB0kLBkJAatgqq8EH478", 0 },
};

static void test_ssh_keys_real(void **state)
{
	struct ssh_key key;
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(real_keys) / sizeof(real_keys[0]); i++) {
		err[0] = '\0';
		if (ssh_key_parse(real_keys[i].line, &key, err, sizeof(err)) != 0)
			fail_msg("%s refused: %s", real_keys[i].type, err);
		assert_string_equal(key.type, real_keys[i].type);
		assert_string_equal(key.fingerprint, real_keys[i].fingerprint);
		assert_int_equal(key.bits, real_keys[i].bits);
		/* The line as the servers get it: the same base64, byte for byte. */
		assert_non_null(strstr(real_keys[i].line, key.base64));
		assert_int_equal(real_keys[i].line[strlen(key.type) + 1 + strlen(key.base64)], ' ');
	}
}

/*
 * Blobs that are not a key of their type, each with the words its refusal
 * must hold.  All of them were accepted before each blob was read by its
 * type's wire format; those marked (*) ssh-keygen -l reads as a key too.
 */
static const struct {
	const char *what, *line, *says;
} bad_blobs[] = {
	/* issue 13: a truncated blob */
	{ "ed25519 cut short", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL56KfZP+iXLG73a", "cut short" },
	/* issue 13: 14 bytes of garbage after a valid blob */
	{ "ed25519 + 14 bytes", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMcde/tfRcnQwVO9PMvHoqPdJ4pF3Z1V4BcqHwUUzbzhAABnYXJiYWdlLWJ5dGU=",
	  "after the key" },
	{ "ed25519 of 31 bytes", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAH8cde/tfRcnQwVO9PMvHoqPdJ4pF3Z1V4BcqHwUUzbw=", "32 bytes" },
	{ "ed25519 of 33 bytes", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIccde/tfRcnQwVO9PMvHoqPdJ4pF3Z1V4BcqHwUUzbzhAQ==", "32 bytes" },
	/* (*) a point of small order: no private key makes it */
	{ "ed25519 small order", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "not a point" },
	{ "nistp256 naming nistp384", "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAzODQAAABBBI429xuSMG61NmTcf6orzenquSrG5J219O0zVEV+ggwR9G+xwqpBZ+60PlaFEJY2s23fPiMmqKrJeOikbqEx9g0=",
	  "curve" },
	{ "nistp256 point 0x02", "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBAo429xuSMG61NmTcf6orzenquSrG5J219O0zVEV+ggwR9G+xwqpBZ+60PlaFEJY2s23fPiMmqKrJeOikbqEx9g0=",
	  "uncompressed point" },
	{ "nistp256 compressed", "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAAAhAo429xuSMG61NmTcf6orzenquSrG5J219O0zVEV+ggwR",
	  "uncompressed point" },
	{ "nistp256 + 14 bytes", "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBI429xuSMG61NmTcf6orzenquSrG5J219O0zVEV+ggwR9G+xwqpBZ+60PlaFEJY2s23fPiMmqKrJeOikbqEx9g1nYXJiYWdlLWJ5dGVzIQ==",
	  "after the key" },
	{ "nistp256 x >= p", "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBP//////////////////////////////////////////9G+xwqpBZ+60PlaFEJY2s23fPiMmqKrJeOikbqEx9g0=",
	  "outside" },
	{ "rsa + 14 bytes", "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDYRcWu4B2U1K9jfIRxKk3BAXZhiKUvBdC+fjFtu3O3OVyLl+YMnIKagANAMmKRP9nmkH0r6bHv+o3a+ofm1yB/MRMO7ltX1FpX9CYSeNIYX6nXjVTmWgx9MqxZSAF+9qEfseZmWPfX2gPJFKUwkyjbSOJGpD1T2jnfyOrmBb2sMElDiqPvUCMMtUYAMT7huSlSh8njkV9qzJHZvrjJd6wiHhuOEPIFYPEWtSGwL05/358D/PrQbXYmyGnMYfLN/xIStRUBoj5LuFl03vvIg2MYipb150z4NLrGCnCTcrAILwKMq4n/O6XQHLZS6ilvf+Ooo3B7jxuzHKChZV8P4b2ZZ2FyYmFnZS1ieXRlcyE=",
	  "after the key" },
	/* (*) e and n with a needless leading zero: ssh-keygen -l prints the
	 * fingerprint of the 2048-bit key above for both, a blob hash would not */
	{ "rsa e padded", "ssh-rsa AAAAB3NzaC1yc2EAAAAEAAEAAQAAAQEA2EXFruAdlNSvY3yEcSpNwQF2YYilLwXQvn4xbbtztzlci5fmDJyCmoADQDJikT/Z5pB9K+mx7/qN2vqH5tcgfzETDu5bV9RaV/QmEnjSGF+p141U5loMfTKsWUgBfvahH7HmZlj319oDyRSlMJMo20jiRqQ9U9o538jq5gW9rDBJQ4qj71AjDLVGADE+4bkpUofJ45FfasyR2b64yXesIh4bjhDyBWDxFrUhsC9Of9+fA/z60G12JshpzGHyzf8SErUVAaI+S7hZdN77yINjGIqW9edM+DS6xgpwk3KwCC8CjKuJ/zul0By2Uuopb3/jqKNwe48bsxygoWVfD+G9mQ==",
	  "encoded" },
	{ "rsa n padded", "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAgAA2EXFruAdlNSvY3yEcSpNwQF2YYilLwXQvn4xbbtztzlci5fmDJyCmoADQDJikT/Z5pB9K+mx7/qN2vqH5tcgfzETDu5bV9RaV/QmEnjSGF+p141U5loMfTKsWUgBfvahH7HmZlj319oDyRSlMJMo20jiRqQ9U9o538jq5gW9rDBJQ4qj71AjDLVGADE+4bkpUofJ45FfasyR2b64yXesIh4bjhDyBWDxFrUhsC9Of9+fA/z60G12JshpzGHyzf8SErUVAaI+S7hZdN77yINjGIqW9edM+DS6xgpwk3KwCC8CjKuJ/zul0By2Uuopb3/jqKNwe48bsxygoWVfD+G9mQ==",
	  "encoded" },
	{ "rsa n negative", "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABANhFxa7gHZTUr2N8hHEqTcEBdmGIpS8F0L5+MW27c7c5XIuX5gycgpqAA0AyYpE/2eaQfSvpse/6jdr6h+bXIH8xEw7uW1fUWlf0JhJ40hhfqdeNVOZaDH0yrFlIAX72oR+x5mZY99faA8kUpTCTKNtI4kakPVPaOd/I6uYFvawwSUOKo+9QIwy1RgAxPuG5KVKHyeORX2rMkdm+uMl3rCIeG44Q8gVg8Ra1IbAvTn/fnwP8+tBtdibIacxh8s3/EhK1FQGiPku4WXTe+8iDYxiKlvXnTPg0usYKcJNysAgvAoyrif87pdActlLqKW9/46ijcHuPG7McoKFlXw/hvZk=",
	  "encoded" },
	/* (*) */
	{ "rsa e even", "ssh-rsa AAAAB3NzaC1yc2EAAAADAQAAAAABAQDYRcWu4B2U1K9jfIRxKk3BAXZhiKUvBdC+fjFtu3O3OVyLl+YMnIKagANAMmKRP9nmkH0r6bHv+o3a+ofm1yB/MRMO7ltX1FpX9CYSeNIYX6nXjVTmWgx9MqxZSAF+9qEfseZmWPfX2gPJFKUwkyjbSOJGpD1T2jnfyOrmBb2sMElDiqPvUCMMtUYAMT7huSlSh8njkV9qzJHZvrjJd6wiHhuOEPIFYPEWtSGwL05/358D/PrQbXYmyGnMYfLN/xIStRUBoj5LuFl03vvIg2MYipb150z4NLrGCnCTcrAILwKMq4n/O6XQHLZS6ilvf+Ooo3B7jxuzHKChZV8P4b2Z",
	  "exponent" },
	/* (*) e = 1: the "signature" is the message */
	{ "rsa e one", "ssh-rsa AAAAB3NzaC1yc2EAAAABAQAAAQEA2EXFruAdlNSvY3yEcSpNwQF2YYilLwXQvn4xbbtztzlci5fmDJyCmoADQDJikT/Z5pB9K+mx7/qN2vqH5tcgfzETDu5bV9RaV/QmEnjSGF+p141U5loMfTKsWUgBfvahH7HmZlj319oDyRSlMJMo20jiRqQ9U9o538jq5gW9rDBJQ4qj71AjDLVGADE+4bkpUofJ45FfasyR2b64yXesIh4bjhDyBWDxFrUhsC9Of9+fA/z60G12JshpzGHyzf8SErUVAaI+S7hZdN77yINjGIqW9edM+DS6xgpwk3KwCC8CjKuJ/zul0By2Uuopb3/jqKNwe48bsxygoWVfD+G9mQ==",
	  "exponent" },
	{ "rsa without n", "ssh-rsa AAAAB3NzaC1yc2EAAAADAQAB", "cut short" },
	{ "sk-ed25519 without application", "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIMcde/tfRcnQwVO9PMvHoqPdJ4pF3Z1V4BcqHwUUzbzh",
	  "cut short" },
	/* (*) ssh-keygen makes only applications starting "ssh:" */
	{ "sk-ed25519 application https:", "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIMcde/tfRcnQwVO9PMvHoqPdJ4pF3Z1V4BcqHwUUzbzhAAAACWh0dHBzOi8veA==",
	  "ssh:" },
	{ "sk-ed25519 + 14 bytes", "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIMcde/tfRcnQwVO9PMvHoqPdJ4pF3Z1V4BcqHwUUzbzhAAAABHNzaDpnYXJiYWdlLWJ5dGVzIQ==",
	  "after the key" },
	{ "sk-nistp256 naming nistp384", "sk-ecdsa-sha2-nistp256@openssh.com AAAAInNrLWVjZHNhLXNoYTItbmlzdHAyNTZAb3BlbnNzaC5jb20AAAAIbmlzdHAzODQAAABBBI429xuSMG61NmTcf6orzenquSrG5J219O0zVEV+ggwR9G+xwqpBZ+60PlaFEJY2s23fPiMmqKrJeOikbqEx9g0AAAAEc3NoOg==",
	  "curve" },
};

static void test_ssh_keys_bad_blobs(void **state)
{
	struct ssh_key key;
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad_blobs) / sizeof(bad_blobs[0]); i++) {
		err[0] = '\0';
		if (ssh_key_parse(bad_blobs[i].line, &key, err, sizeof(err)) != -EINVAL)
			fail_msg("%s: accepted", bad_blobs[i].what);
		if (!strstr(err, bad_blobs[i].says))
			fail_msg("%s: \"%s\" does not say \"%s\"", bad_blobs[i].what, err, bad_blobs[i].says);
	}
}

/*
 * The hub refuses a second copy of a key by its fingerprint, the SHA-256
 * of the blob.  Now that a blob is accepted only in its one canonical
 * encoding (exact lengths, minimal mpints, nothing after the key, and
 * libsodium refusing base64 with stray bits), one key has one fingerprint
 * however the line around it is written.
 */
static void test_ssh_keys_canonical(void **state)
{
	static const char *const variants[] = {
		"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMcde/tfRcnQwVO9PMvHoqPdJ4pF3Z1V4BcqHwUUzbzh",
		"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMcde/tfRcnQwVO9PMvHoqPdJ4pF3Z1V4BcqHwUUzbzh another comment",
		"ssh-ed25519\tAAAAC3NzaC1lZDI1NTE5AAAAIMcde/tfRcnQwVO9PMvHoqPdJ4pF3Z1V4BcqHwUUzbzh  \t x  ",
	};
	struct ssh_key key;
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
		assert_int_equal(ssh_key_parse(variants[i], &key, err, sizeof(err)), 0);
		assert_string_equal(key.fingerprint, real_keys[0].fingerprint);
		assert_string_equal(key.base64, "AAAAC3NzaC1lZDI1NTE5AAAAIMcde/tfRcnQwVO9PMvHoqPdJ4pF3Z1V4BcqHwUUzbzh");
	}
	/* The nistp256 blob is 104 bytes: its last base64 character before
	 * the '=' carries 2 bits that are not data, and they must be 0. */
	assert_int_equal(ssh_key_parse(real_keys[1].line, &key, err, sizeof(err)), 0);
	assert_int_equal(ssh_key_parse("ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBI429xuSMG61NmTcf6orzenquSrG5J219O0zVEV+ggwR9G+xwqpBZ+60PlaFEJY2s23fPiMmqKrJeOikbqEx9g1=",
				       &key, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "base64"));
}

#define ED25519_K "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMcde/tfRcnQwVO9PMvHoqPdJ4pF3Z1V4BcqHwUUzbzh "

static void test_ssh_key_comments(void **state)
{
	static const struct {
		const char *what, *comment, *says;
	} bad[] = {
		{ "DEL", "alice\x7f@laptop", "control" },
		{ "tab inside", "alice\tlaptop", "control" },
		{ "U+0085 (C1 next line)", "alice\xc2\x85@laptop", "control" },
		{ "U+009B (C1 CSI)", "alice\xc2\x9b" "31m", "control" },
		{ "U+200B zero width space", "ali\xe2\x80\x8b" "ce", "control" },
		{ "U+200E left-to-right mark", "alice\xe2\x80\x8e", "control" },
		{ "U+200F right-to-left mark", "alice\xe2\x80\x8f", "control" },
		{ "U+202A", "\xe2\x80\xaa" "alice", "control" },
		{ "U+202E right-to-left override", "alice@\xe2\x80\xae" "potpal", "control" },
		{ "U+2060 word joiner", "alice\xe2\x81\xa0", "control" },
		{ "U+2066 left-to-right isolate", "\xe2\x81\xa6" "alice", "control" },
		{ "U+2069 pop directional isolate", "alice\xe2\x81\xa9", "control" },
		{ "U+FEFF byte order mark", "\xef\xbb\xbf" "alice", "control" },
		{ "U+061C Arabic letter mark", "alice\xd8\x9c", "control" },
		{ "U+2028 line separator", "alice\xe2\x80\xa8" "bob", "control" },
		{ "U+00AD soft hyphen", "ali\xc2\xad" "ce", "control" },
		{ "U+E0041 tag letter A", "alice\xf3\xa0\x81\x81", "control" },
		{ "byte 0xff", "alice\xff", "UTF-8" },
		{ "lone continuation byte", "alice\x80", "UTF-8" },
		{ "overlong '/'", "alice\xc0\xaf", "UTF-8" },
		{ "overlong 3 bytes", "alice\xe0\x80\xaf", "UTF-8" },
		{ "surrogate U+D800", "alice\xed\xa0\x80", "UTF-8" },
		{ "beyond U+10FFFF", "alice\xf4\x90\x80\x80", "UTF-8" },
		{ "5-byte sequence", "alice\xf8\x88\x80\x80\x80", "UTF-8" },
		{ "sequence cut at the end", "alice\xe2\x80", "UTF-8" },
		{ "sequence cut by a space", "alice\xe2\x80 x", "UTF-8" },
	};
	static const char *const good[] = {
		"alice@laptop", "Zo\xc3\xab's laptop", "\xe5\xb1\xb1\xe7\x94\xb0", "key \xf0\x9f\x94\x91",
		"\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d",   /* Hebrew: right-to-left letters, no controls */
		"no-break\xc2\xa0space", "~!#$%^&*()_+{}|:\"<>?",
	};
	char line[512], err[256];
	struct ssh_key key;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(line, sizeof(line), ED25519_K "%s", bad[i].comment);
		err[0] = '\0';
		if (ssh_key_parse(line, &key, err, sizeof(err)) != -EINVAL)
			fail_msg("comment with %s: accepted", bad[i].what);
		if (!strstr(err, bad[i].says))
			fail_msg("comment with %s: \"%s\" does not say \"%s\"", bad[i].what, err, bad[i].says);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(line, sizeof(line), ED25519_K "%s", good[i]);
		if (ssh_key_parse(line, &key, err, sizeof(err)) != 0)
			fail_msg("comment \"%s\" refused: %s", good[i], err);
		assert_string_equal(key.comment, good[i]);
	}
}

/* A comment longer than the field is shortened, never inside a character. */
static void test_ssh_key_long_comment(void **state)
{
	char line[1024], err[256];
	struct ssh_key key;
	size_t len;

	(void)state;
	len = strlen(ED25519_K);
	memcpy(line, ED25519_K, len);
	for (int i = 0; i < 200; i++) {   /* 400 bytes of "é" */
		line[len++] = '\xc3';
		line[len++] = '\xa9';
	}
	line[len] = '\0';
	assert_int_equal(ssh_key_parse(line, &key, err, sizeof(err)), 0);
	assert_int_equal(strlen(key.comment), 254);
	assert_int_equal((unsigned char)key.comment[253], 0xa9);

	/* Cut after a blank: the blank goes, as it would when read again. */
	len = strlen(ED25519_K);
	memset(line + len, 'a', 254);
	memcpy(line + len + 254, " bcd", 5);
	assert_int_equal(ssh_key_parse(line, &key, err, sizeof(err)), 0);
	assert_int_equal(strlen(key.comment), 254);
	assert_int_equal(key.comment[253], 'a');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_member_names),
		cmocka_unit_test(test_template_refs),
		cmocka_unit_test(test_ports),
		cmocka_unit_test(test_ssh_keys),
		cmocka_unit_test(test_ssh_keys_real),
		cmocka_unit_test(test_ssh_keys_bad_blobs),
		cmocka_unit_test(test_ssh_keys_canonical),
		cmocka_unit_test(test_ssh_key_comments),
		cmocka_unit_test(test_ssh_key_long_comment),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
