/* SPDX-License-Identifier: MIT */
/*
 * A reader of glibc's /etc/ld.so.cache: the new format
 * ("glibc-ld.so.cache1.1"), alone or after the old "ld.so-1.7.0" table
 * that older glibc wrote in front of it.  The file is the host's, but it
 * is parsed as untrusted input: every count, offset and string is checked
 * against the buffer's length before it is used.
 *
 * Layout (glibc elf/cache.c, dl-cache.h):
 *   old:  "ld.so-1.7.0" (11) pad (1) nlibs (u32) then nlibs x 12 bytes
 *   new:  "glibc-ld.so.cache" (17) "1.1" (3) nlibs (u32) len_strings (u32)
 *         flags (u8) pad (3) extension_offset (u32) unused (3 x u32)
 *         then nlibs x { i32 flags; u32 key; u32 value; u32 osversion;
 *         u64 hwcap } (24 bytes).
 * Strings are NUL-terminated; their offsets count from the start of the
 * new header (which, after an old table, starts 8-byte aligned).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "gpu/ldcache.h"
#include "banned.h"

#define LDCACHE_OLD_MAGIC "ld.so-1.7.0"
#define LDCACHE_OLD_MAGIC_LEN 11
#define LDCACHE_OLD_HEADER 16
#define LDCACHE_OLD_ENTRY 12
#define LDCACHE_NEW_MAGIC "glibc-ld.so.cache1.1"
#define LDCACHE_NEW_MAGIC_LEN 20
#define LDCACHE_NEW_HEADER 48
#define LDCACHE_NEW_ENTRY 24

/* flags byte of the new header: which byte order wrote the file. */
#define LDCACHE_ENDIAN_MASK 3
#define LDCACHE_ENDIAN_UNSET 0
#define LDCACHE_ENDIAN_LITTLE 2
#define LDCACHE_ENDIAN_BIG 3

static uint32_t ldcache_u32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint64_t ldcache_u64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* The NUL-terminated string at offset off of the new section, or NULL. */
static const char *ldcache_string(const unsigned char *base, size_t len, uint32_t off)
{
	if (off >= len || !memchr(base + off, '\0', len - off))
		return NULL;
	return (const char *)base + off;
}

/* Where the new section starts in buf, or a negative errno. */
static long ldcache_find_new(const unsigned char *buf, size_t len)
{
	size_t off;
	uint32_t nlibs;

	if (len >= LDCACHE_NEW_MAGIC_LEN && memcmp(buf, LDCACHE_NEW_MAGIC, LDCACHE_NEW_MAGIC_LEN) == 0)
		return 0;
	if (len < LDCACHE_OLD_HEADER || memcmp(buf, LDCACHE_OLD_MAGIC, LDCACHE_OLD_MAGIC_LEN) != 0)
		return -EINVAL;
	nlibs = ldcache_u32(buf + 12);
	if (nlibs > (len - LDCACHE_OLD_HEADER) / LDCACHE_OLD_ENTRY)
		return -EINVAL;
	off = LDCACHE_OLD_HEADER + (size_t)nlibs * LDCACHE_OLD_ENTRY;
	off = (off + 7) & ~(size_t)7;
	/* An old-only cache: glibc 2.32 and later never write one. */
	if (off + LDCACHE_NEW_MAGIC_LEN > len ||
	    memcmp(buf + off, LDCACHE_NEW_MAGIC, LDCACHE_NEW_MAGIC_LEN) != 0)
		return -EPROTONOSUPPORT;
	return (long)off;
}

int ldcache_parse(const void *data, size_t len, ldcache_fn fn, void *userdata)
{
	const unsigned char *buf = data, *base;
	size_t avail;
	uint32_t nlibs;
	unsigned endian;
	long start;

	if (!data || !fn)
		return -EINVAL;
	start = ldcache_find_new(buf, len);
	if (start < 0)
		return (int)start;
	base = buf + start;
	avail = len - (size_t)start;
	if (avail < LDCACHE_NEW_HEADER)
		return -EINVAL;
	endian = base[28] & LDCACHE_ENDIAN_MASK;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	if (endian != LDCACHE_ENDIAN_UNSET && endian != LDCACHE_ENDIAN_LITTLE)
		return -EPROTONOSUPPORT;
#else
	if (endian != LDCACHE_ENDIAN_UNSET && endian != LDCACHE_ENDIAN_BIG)
		return -EPROTONOSUPPORT;
#endif
	nlibs = ldcache_u32(base + 20);
	if (nlibs > (avail - LDCACHE_NEW_HEADER) / LDCACHE_NEW_ENTRY)
		return -EINVAL;
	for (uint32_t i = 0; i < nlibs; i++) {
		const unsigned char *e = base + LDCACHE_NEW_HEADER + (size_t)i * LDCACHE_NEW_ENTRY;
		struct ldcache_entry entry;
		int ret;

		entry.flags = (int32_t)ldcache_u32(e);
		entry.key = ldcache_string(base, avail, ldcache_u32(e + 4));
		entry.value = ldcache_string(base, avail, ldcache_u32(e + 8));
		entry.hwcap = ldcache_u64(e + 16);
		if (!entry.key || !entry.value)
			return -EINVAL;
		ret = fn(&entry, userdata);
		if (ret != 0)
			return ret;
	}
	return 0;
}
