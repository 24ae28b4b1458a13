/* SPDX-License-Identifier: MIT */
/* The hub-to-agent token (see hubtoken.h): one derivation for both sides. */
#include <errno.h>

#include <sodium.h>

#include "hubtoken.h"
#include "banned.h"

int hubtoken_to_agent(const char *token, size_t len, char out[HUBTOKEN_HEX])
{
	static const char context[] = HUBTOKEN_CONTEXT;
	unsigned char key[crypto_generichash_BYTES], derived[crypto_generichash_BYTES];
	int ret = 0;

	if (!token || len == 0 || !out)
		return -EINVAL;
	if (sodium_init() < 0)
		return -EIO;
	if (crypto_generichash(key, sizeof(key), (const unsigned char *)token, len, NULL, 0) != 0 ||
	    crypto_generichash(derived, sizeof(derived), (const unsigned char *)context,
			       sizeof(context) - 1, key, sizeof(key)) != 0)
		ret = -EIO;
	else
		sodium_bin2hex(out, HUBTOKEN_HEX, derived, sizeof(derived));
	sodium_memzero(key, sizeof(key));
	sodium_memzero(derived, sizeof(derived));
	return ret;
}
