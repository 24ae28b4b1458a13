/* SPDX-License-Identifier: MIT */
/* The ld.so.cache reader: both layouts, and every kind of broken input. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "gpu/ldcache.h"
#include "cleanup.h"
#include "spawn.h"
#include "testutil.h"

#include "banned.h"

struct seen {
	char keys[8][64];
	char values[8][128];
	int32_t flags[8];
	size_t n;
};

static int collect(const struct ldcache_entry *e, void *data)
{
	struct seen *s = data;

	if (s->n == 8)
		return -E2BIG;
	snprintf(s->keys[s->n], sizeof(s->keys[0]), "%s", e->key);
	snprintf(s->values[s->n], sizeof(s->values[0]), "%s", e->value);
	s->flags[s->n] = e->flags;
	s->n++;
	return 0;
}

static void put32(unsigned char *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

/* A new-format cache of two entries at buf + at; returns its length from at. */
static size_t build_new(unsigned char *buf, size_t at)
{
	static const char strings[] = "libcuda.so.1\0/usr/lib/libcuda.so.1\0libnvidia-ml.so.1\0/usr/lib/libnvidia-ml.so.1";
	unsigned char *h = buf + at;
	size_t strings_at = 48 + 2 * 24;

	memcpy(h, "glibc-ld.so.cache1.1", 20);
	put32(h + 20, 2);
	put32(h + 24, sizeof(strings));
	h[28] = 2; /* little endian */
	for (int i = 0; i < 2; i++) {
		unsigned char *e = h + 48 + i * 24;

		put32(e, 0x0303);
		put32(e + 4, (uint32_t)(strings_at + (i ? 35 : 0)));
		put32(e + 8, (uint32_t)(strings_at + (i ? 53 : 13)));
	}
	memcpy(h + strings_at, strings, sizeof(strings));
	return strings_at + sizeof(strings);
}

static void test_new_format(void **state)
{
	unsigned char buf[512] = { 0 };
	size_t len = build_new(buf, 0);
	struct seen s = { 0 };

	assert_int_equal(ldcache_parse(buf, len, collect, &s), 0);
	assert_int_equal(s.n, 2);
	assert_string_equal(s.keys[0], "libcuda.so.1");
	assert_string_equal(s.values[0], "/usr/lib/libcuda.so.1");
	assert_string_equal(s.keys[1], "libnvidia-ml.so.1");
	assert_string_equal(s.values[1], "/usr/lib/libnvidia-ml.so.1");
	assert_int_equal(s.flags[0], 0x0303);
}

static void test_compat_format(void **state)
{
	unsigned char buf[512] = { 0 };
	struct seen s = { 0 };
	size_t len;

	/* Three old entries: 16 + 36 = 52, the new header at 56. */
	memcpy(buf, "ld.so-1.7.0", 11);
	put32(buf + 12, 3);
	len = 56 + build_new(buf, 56);
	assert_int_equal(ldcache_parse(buf, len, collect, &s), 0);
	assert_int_equal(s.n, 2);
	assert_string_equal(s.keys[1], "libnvidia-ml.so.1");
}

static void test_broken(void **state)
{
	unsigned char buf[512] = { 0 };
	size_t len = build_new(buf, 0);
	struct seen s = { 0 };

	/* Every truncation is refused or stops before a string it cannot hold. */
	for (size_t cut = 0; cut < len; cut++) {
		memset(&s, 0, sizeof(s));
		assert_true(ldcache_parse(buf, cut, collect, &s) < 0);
	}
	/* A count larger than the file. */
	put32(buf + 20, 0x10000000);
	assert_int_equal(ldcache_parse(buf, len, collect, &s), -EINVAL);
	put32(buf + 20, 2);
	/* A string offset past the end. */
	put32(buf + 48 + 4, (uint32_t)len);
	assert_int_equal(ldcache_parse(buf, len, collect, &s), -EINVAL);
	put32(buf + 48 + 4, 0xffffffff);
	assert_int_equal(ldcache_parse(buf, len, collect, &s), -EINVAL);
	put32(buf + 48 + 4, 96);
	/* The other byte order. */
	buf[28] = 3;
	assert_int_equal(ldcache_parse(buf, len, collect, &s), -EPROTONOSUPPORT);
	buf[28] = 2;
	/* Not a cache; an old-only cache. */
	assert_int_equal(ldcache_parse("hello", 5, collect, &s), -EINVAL);
	memset(buf, 0, sizeof(buf));
	memcpy(buf, "ld.so-1.7.0", 11);
	put32(buf + 12, 1);
	assert_int_equal(ldcache_parse(buf, 40, collect, &s), -EPROTONOSUPPORT);
	put32(buf + 12, 0xffffffff);
	assert_int_equal(ldcache_parse(buf, 40, collect, &s), -EINVAL);
	assert_int_equal(ldcache_parse(NULL, 0, collect, &s), -EINVAL);
}

static int stop_early(const struct ldcache_entry *e, void *data)
{
	(*(int *)data)++;
	return 7;
}

static void test_callback_stops(void **state)
{
	unsigned char buf[512] = { 0 };
	size_t len = build_new(buf, 0);
	int calls = 0;

	assert_int_equal(ldcache_parse(buf, len, stop_early, &calls), 7);
	assert_int_equal(calls, 1);
}

/* A cache made by the host's ldconfig, when there is one, in both formats. */
static void test_real_ldconfig(void **state)
{
	static const char *const formats[] = { "new", "compat" };
	char dir[PATH_MAX], path[PATH_MAX], lib[PATH_MAX], src[PATH_MAX];

	if (access("/sbin/ldconfig", X_OK) != 0 || access("/usr/bin/cc", X_OK) != 0)
		skip();
	assert_int_equal(tu_make_tempdir(dir, sizeof(dir), "/tmp/test-ldcache.XXXXXX"), 0);
	tu_join(path, sizeof(path), dir, "etc");
	assert_int_equal(mkdir(path, 0755), 0);
	tu_join(path, sizeof(path), dir, "lib");
	assert_int_equal(mkdir(path, 0755), 0);
	tu_join(src, sizeof(src), dir, "a.c");
	assert_int_equal(fsutil_write_atomic(src, "int f(void){return 0;}\n", 23, 0644), 0);
	tu_join(lib, sizeof(lib), dir, "lib/libcuda.so.999.1.2");
	{
		const char *argv[] = { "/usr/bin/cc", "-shared", "-fPIC", "-o", lib,
				       "-Wl,-soname,libcuda.so.1", src, NULL };

		assert_int_equal(spawn_quiet(argv), 0);
	}
	tu_join(path, sizeof(path), dir, "lib/libcuda.so.1");
	assert_int_equal(symlink("libcuda.so.999.1.2", path), 0);
	tu_join(path, sizeof(path), dir, "etc/ld.so.conf");
	assert_int_equal(fsutil_write_atomic(path, "/lib\n", 5, 0644), 0);
	for (size_t f = 0; f < ARRAY_SIZE(formats); f++) {
		const char *argv[] = { "/sbin/ldconfig", "-X", "-c", formats[f], "-r", dir,
				       "-C", "/etc/ld.so.cache", "-f", "/etc/ld.so.conf", NULL };
		__do_free char *data = NULL;
		struct seen s = { 0 };
		size_t len = 0;
		bool found = false;

		assert_int_equal(spawn_quiet(argv), 0);
		tu_join(path, sizeof(path), dir, "etc/ld.so.cache");
		assert_int_equal(fsutil_read_file(path, 1 << 20, &data, &len), 0);
		assert_int_equal(ldcache_parse(data, len, collect, &s), 0);
		for (size_t i = 0; i < s.n; i++)
			found |= strcmp(s.keys[i], "libcuda.so.1") == 0 &&
				 strcmp(s.values[i], "/lib/libcuda.so.1") == 0;
		assert_true(found);
	}
	tu_remove_tempdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_format),
		cmocka_unit_test(test_compat_format),
		cmocka_unit_test(test_broken),
		cmocka_unit_test(test_callback_stops),
		cmocka_unit_test(test_real_ldconfig),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
