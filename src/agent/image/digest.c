/* SPDX-License-Identifier: MIT */
/*
 * SHA-256 of bulk data by OpenSSL's EVP interface (see digest.h for why
 * not libsodium's).  An update that fails marks the digest failed, which
 * its final step reports: callers hash in callbacks that have no error
 * path of their own.
 */
#include <errno.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "image/digest.h"

int digest_init(struct digest *d)
{
	d->failed = false;
	d->ctx = EVP_MD_CTX_new();
	if (!d->ctx)
		return -ENOMEM;
	if (EVP_DigestInit_ex(d->ctx, EVP_sha256(), NULL) != 1) {
		digest_free(d);
		return -EIO;
	}
	return 0;
}

void digest_update(struct digest *d, const void *data, size_t len)
{
	if (!d->ctx || d->failed)
		return;
	if (EVP_DigestUpdate(d->ctx, data, len) != 1)
		d->failed = true;
}

int digest_final_hex(struct digest *d, char hex[TEMPLATE_HASH_HEX])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	int ret = -EIO;

	if (d->ctx && !d->failed && EVP_DigestFinal_ex(d->ctx, md, &len) == 1 && len == 32) {
		sodium_bin2hex(hex, TEMPLATE_HASH_HEX, md, len);
		ret = 0;
	}
	digest_free(d);
	return ret;
}

void digest_free(struct digest *d)
{
	EVP_MD_CTX_free(d->ctx);
	d->ctx = NULL;
}
