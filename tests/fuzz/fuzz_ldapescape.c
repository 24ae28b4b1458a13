/* SPDX-License-Identifier: MIT */
/*
 * The hub's LDAP escaping (auth_escape_filter, auth_escape_dn), whatever
 * the value: no crash, and what comes out means exactly what went in.
 * The filter form is decoded again here (every byte outside "\XX" must be
 * harmless in a filter); the DN form is parsed back with libldap's own
 * RFC 4514 reader and must give the value unchanged.  A value with a NUL
 * byte is cut there, as auth.c sees C strings.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ldap.h>

#include "hub.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* RFC 4515 decoded back to bytes: "\XX" only; no raw ( ) * \ or NUL. */
static void fuzz_check_filter(const char *value, const char *escaped)
{
	size_t vlen = strlen(value), o = 0;

	for (size_t i = 0; escaped[i]; i++) {
		char c = escaped[i];
		int hi, lo;

		if (c == '(' || c == ')' || c == '*')
			abort();
		if (c == '\\') {
			hi = fuzz_hex(escaped[i + 1]);
			lo = hi < 0 ? -1 : fuzz_hex(escaped[i + 2]);
			if (hi < 0 || lo < 0)
				abort();
			c = (char)(hi * 16 + lo);
			i += 2;
		}
		if (o >= vlen || value[o] != c)
			abort();
		o++;
	}
	if (o != vlen)
		abort();
}

/* "x=" + the RFC 4514 form is one RDN whose value is the input. */
static void fuzz_check_dn(const char *value, const char *escaped)
{
	size_t n = strlen(escaped);
	char *rdn_text = malloc(n + 3);
	LDAPRDN rdn = NULL;
	char *next = NULL;

	if (!rdn_text)
		return;
	memcpy(rdn_text, "x=", 2);
	memcpy(rdn_text + 2, escaped, n + 1);
	if (ldap_str2rdn(rdn_text, &rdn, &next, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS)
		abort();
	/* One attribute, the whole text consumed, the same value. */
	if (!rdn[0] || rdn[1] || (next && *next) || rdn[0]->la_value.bv_len != strlen(value) ||
	    memcmp(rdn[0]->la_value.bv_val, value, strlen(value)) != 0)
		abort();
	ldap_rdnfree(rdn);
	free(rdn_text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *value = malloc(size + 1);
	size_t room = 3 * size + 1;
	char *out = malloc(room);
	int ret;

	if (value && out) {
		memcpy(value, data, size);
		value[size] = '\0';

		if (auth_escape_filter(value, out, room) != 0)
			abort();
		fuzz_check_filter(value, out);

		ret = auth_escape_dn(value, out, room);
		if (ret == 0 && strlen(value) > 0)
			fuzz_check_dn(value, out);
		else if (ret != 0 && ret != -EINVAL)
			abort();

		/* Too little room: refused, never cut short. */
		if (size > 0) {
			size_t small = (size_t)data[0] % (size + 1) + 1;

			ret = auth_escape_filter(value, out, small);
			if (ret != 0 && ret != -ENOSPC)
				abort();
			if (ret == 0)
				fuzz_check_filter(value, out);
			ret = auth_escape_dn(value, out, small);
			if (ret != 0 && ret != -ENOSPC && ret != -EINVAL)
				abort();
		}
	}
	free(out);
	free(value);
	return 0;
}
