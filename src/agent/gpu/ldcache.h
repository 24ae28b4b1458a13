/* SPDX-License-Identifier: MIT */
/*
 * glibc's /etc/ld.so.cache, read to find the driver's libraries (gpu.c).
 */
#ifndef GPUBOX_AGENT_LDCACHE_H
#define GPUBOX_AGENT_LDCACHE_H

#include <stddef.h>
#include <stdint.h>

/* ---- ldcache.c: glibc's /etc/ld.so.cache ---------------------------------- */

struct ldcache_entry {
	int32_t flags;             /* FLAG_ELF_LIBC6 | the architecture's flag */
	const char *key;           /* the soname: "libcuda.so.1" */
	const char *value;         /* its path: "/usr/lib/x86_64-linux-gnu/libcuda.so.1" */
	uint64_t hwcap;
};

/* Called for each entry; a non-zero return stops the walk and is returned. */
typedef int (*ldcache_fn)(const struct ldcache_entry *entry, void *data);

/* Walk the entries of a cache ("glibc-ld.so.cache1.1", alone or after an
 * "ld.so-1.7.0" table).  -EINVAL for anything malformed (every offset is
 * checked), -EPROTONOSUPPORT for an old-only or foreign-endian cache. */
int ldcache_parse(const void *data, size_t len, ldcache_fn fn, void *userdata);

#endif
