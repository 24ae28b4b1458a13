/* SPDX-License-Identifier: MIT */
#ifndef GPUBOX_IMAGE_DIGEST_H
#define GPUBOX_IMAGE_DIGEST_H

#include <stdbool.h>
#include <stddef.h>

#include "image/image.h"

/*
 * The SHA-256 of a stream of bulk data (a snapshot's archive), by OpenSSL,
 * which uses the CPU's SHA instructions where it has them: about 1.5 GB/s
 * on a 2-core VM, where libsodium's portable code does 0.2 GB/s.  An
 * archive is hashed once as it is written and twice as it is restored, so
 * this is most of the CPU a snapshot or a restore costs beyond zstd.
 * Short strings (tokens, recipes) keep using libsodium.
 */
struct evp_md_ctx_st;

struct digest {
	struct evp_md_ctx_st *ctx;
	bool failed;
};

/* 0, or -ENOMEM/-EIO; the digest is then freed already. */
int digest_init(struct digest *d);
void digest_update(struct digest *d, const void *data, size_t len);
/* The digest in lowercase hex; frees it.  -EIO if any step failed. */
int digest_final_hex(struct digest *d, char hex[TEMPLATE_HASH_HEX]);
/* Safe on a digest never started, finished or freed. */
void digest_free(struct digest *d);

#endif
