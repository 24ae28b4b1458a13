/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cleanup.h"
#include "strutil.h"
#include "validate.h"
#include "banned.h"

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* Print a client's value back safely: printable ASCII only, shortened. */
static void validate_quote(const char *in, char *out, size_t outlen)
{
	size_t o = 0;

	for (size_t i = 0; in[i] && o + 4 < outlen; i++) {
		unsigned char c = (unsigned char)in[i];
		out[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
		if (i == 40) {
			out[o++] = '.';
			out[o++] = '.';
			out[o++] = '.';
			break;
		}
	}
	out[o] = '\0';
}

int validate_member_name(const char *name, char *err, size_t errlen)
{
	char shown[64];
	size_t len = strlen(name);

	validate_quote(name, shown, sizeof(shown));
	if (len == 0) {
		set_error(err, errlen, "the member name is empty; use lower-case letters, digits and '-'");
		return -EINVAL;
	}
	if (len > MEMBER_NAME_MAX) {
		set_error(err, errlen, "the member name \"%s\" is longer than %d characters",
			 shown, MEMBER_NAME_MAX);
		return -EINVAL;
	}
	if (name[0] < 'a' || name[0] > 'z') {
		set_error(err, errlen, "the member name \"%s\" must start with a lower-case letter", shown);
		return -EINVAL;
	}
	for (size_t i = 0; i < len; i++) {
		if (!is_lower_alnum(name[i]) && name[i] != '-') {
			set_error(err, errlen,
				 "the member name \"%s\" may hold only lower-case letters, digits and '-'",
				 shown);
			return -EINVAL;
		}
	}
	if (name[len - 1] == '-') {
		set_error(err, errlen, "the member name \"%s\" must not end with '-'", shown);
		return -EINVAL;
	}
	return 0;
}

int validate_template_name(const char *name, char *err, size_t errlen)
{
	char shown[64];
	size_t len = strlen(name);

	validate_quote(name, shown, sizeof(shown));
	if (len == 0 || len > TEMPLATE_NAME_MAX || !is_lower_alnum(name[0])) {
		set_error(err, errlen,
			 "the template name \"%s\" must be 1 to %d characters and start with a letter or digit",
			 shown, TEMPLATE_NAME_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < len; i++) {
		if (!is_lower_alnum(name[i]) && name[i] != '-' && name[i] != '.') {
			set_error(err, errlen,
				 "the template name \"%s\" may hold only lower-case letters, digits, '.' and '-'",
				 shown);
			return -EINVAL;
		}
	}
	if (strstr(name, "..")) {
		set_error(err, errlen, "the template name \"%s\" must not contain \"..\"", shown);
		return -EINVAL;
	}
	return 0;
}

int validate_template_ref(const char *ref, char *name, size_t namelen, uint32_t *version,
			  char *err, size_t errlen)
{
	const char *at = strchr(ref, '@');
	char shown[64];
	size_t len;

	validate_quote(ref, shown, sizeof(shown));
	if (!at || parse_uint32(at + 1, version) < 0 || *version == 0) {
		set_error(err, errlen, "\"%s\" is not a template reference NAME@VERSION", shown);
		return -EINVAL;
	}
	len = (size_t)(at - ref);
	if (len >= namelen || len > TEMPLATE_NAME_MAX) {
		set_error(err, errlen, "the template name in \"%s\" is too long", shown);
		return -EINVAL;
	}
	memcpy(name, ref, len);
	name[len] = '\0';
	return validate_template_name(name, err, errlen);
}

int validate_port_text(const char *text, uint16_t *port, char *err, size_t errlen)
{
	char shown[64];
	int ret = parse_port(text, port);

	validate_quote(text, shown, sizeof(shown));
	if (ret == -ERANGE) {
		set_error(err, errlen, "port %s is out of range; a port is a number from 1 to 65535", shown);
		return -EINVAL;
	}
	if (ret < 0) {
		set_error(err, errlen, "\"%s\" is not a port; a port is a number from 1 to 65535", shown);
		return -EINVAL;
	}
	return 0;
}

/* ---- SSH public keys -------------------------------------------------- */

struct ssh_key_type {
	const char *name;
	bool is_rsa;
};

static const struct ssh_key_type ssh_key_types[] = {
	{ "ssh-ed25519", false },
	{ "sk-ssh-ed25519@openssh.com", false },
	{ "ecdsa-sha2-nistp256", false },
	{ "ecdsa-sha2-nistp384", false },
	{ "ecdsa-sha2-nistp521", false },
	{ "sk-ecdsa-sha2-nistp256@openssh.com", false },
	{ "ssh-rsa", true },
};

static const struct ssh_key_type *ssh_key_find_type(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(ssh_key_types); i++)
		if (strcmp(ssh_key_types[i].name, name) == 0)
			return &ssh_key_types[i];
	return NULL;
}

/* Read one SSH wire-format string (uint32 length, bytes) from the blob. */
static int ssh_blob_string(const unsigned char *blob, size_t len, size_t *pos,
			   const unsigned char **str, size_t *strlen_out)
{
	uint32_t n;

	if (len - *pos < 4)
		return -EINVAL;
	n = (uint32_t)blob[*pos] << 24 | (uint32_t)blob[*pos + 1] << 16 |
	    (uint32_t)blob[*pos + 2] << 8 | blob[*pos + 3];
	*pos += 4;
	if (n > len - *pos)
		return -EINVAL;
	*str = blob + *pos;
	*strlen_out = n;
	*pos += n;
	return 0;
}

/* Bits of an RSA modulus (an SSH mpint: big-endian, maybe a leading 0). */
static unsigned ssh_rsa_bits(const unsigned char *blob, size_t len, size_t pos)
{
	const unsigned char *e, *n;
	size_t elen, nlen;
	unsigned bits;

	if (ssh_blob_string(blob, len, &pos, &e, &elen) < 0 ||
	    ssh_blob_string(blob, len, &pos, &n, &nlen) < 0)
		return 0;
	while (nlen > 0 && n[0] == 0) {
		n++;
		nlen--;
	}
	if (nlen == 0)
		return 0;
	bits = (unsigned)(nlen - 1) * 8;
	for (unsigned char top = n[0]; top; top >>= 1)
		bits++;
	return bits;
}

static void ssh_key_fingerprint(const unsigned char *blob, size_t len, char *out, size_t outlen)
{
	unsigned char hash[crypto_hash_sha256_BYTES];
	char b64[sodium_base64_ENCODED_LEN(crypto_hash_sha256_BYTES,
					   sodium_base64_VARIANT_ORIGINAL_NO_PADDING)];

	crypto_hash_sha256(hash, blob, len);
	sodium_bin2base64(b64, sizeof(b64), hash, sizeof(hash),
			  sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
	snprintf(out, outlen, "SHA256:%s", b64);
}

static int ssh_key_check_blob(struct ssh_key *key, const struct ssh_key_type *type,
			      char *err, size_t errlen)
{
	__do_free unsigned char *blob = NULL;
	size_t b64len = strlen(key->base64), bloblen = 0, pos = 0, tlen;
	const unsigned char *tname;
	const char *end = NULL;

	blob = malloc(b64len);
	if (!blob)
		return -ENOMEM;
	if (sodium_base642bin(blob, b64len, key->base64, b64len, NULL, &bloblen, &end,
			      sodium_base64_VARIANT_ORIGINAL) != 0 || end != key->base64 + b64len) {
		set_error(err, errlen, "the key's base64 data is damaged; copy the whole line of your .pub file");
		return -EINVAL;
	}
	if (ssh_blob_string(blob, bloblen, &pos, &tname, &tlen) < 0 ||
	    tlen != strlen(type->name) || memcmp(tname, type->name, tlen) != 0) {
		set_error(err, errlen, "the key's data does not match its type %s", type->name);
		return -EINVAL;
	}
	if (type->is_rsa) {
		key->bits = ssh_rsa_bits(blob, bloblen, pos);
		if (key->bits < 2048) {
			set_error(err, errlen,
				 "RSA keys must have at least 2048 bits (this one has %u); make an ed25519 key with ssh-keygen -t ed25519",
				 key->bits);
			return -EINVAL;
		}
	} else if (bloblen - pos < 8) {
		set_error(err, errlen, "the key's data is too short for a %s key", type->name);
		return -EINVAL;
	}
	ssh_key_fingerprint(blob, bloblen, key->fingerprint, sizeof(key->fingerprint));
	return 0;
}

/* The next word of an authorized_keys line at *p (blanks skipped): its
 * start in *word, its length returned, *p moved past it. */
static size_t ssh_key_next_word(const char **p, const char **word)
{
	const char *s = *p;

	while (*s == ' ' || *s == '\t')
		s++;
	*word = s;
	while (*s && *s != ' ' && *s != '\t')
		s++;
	*p = s;
	return (size_t)(s - *word);
}

int ssh_key_parse(const char *line, struct ssh_key *key, char *err, size_t errlen)
{
	const struct ssh_key_type *type;
	const char *p = line, *word;
	size_t len;

	if (sodium_init() < 0)
		return -ENOMEM;
	memset(key, 0, sizeof(*key));
	if (strlen(line) >= SSH_KEY_MAX) {
		set_error(err, errlen, "the key is longer than %d characters", SSH_KEY_MAX - 1);
		return -EINVAL;
	}
	for (const char *c = line; *c; c++) {
		if ((unsigned char)*c < 0x20 && *c != '\t') {
			set_error(err, errlen, "the key line holds a control character or a line break; give one key per line");
			return -EINVAL;
		}
	}
	len = ssh_key_next_word(&p, &word);
	if (len == 0) {
		set_error(err, errlen, "the key is empty; give the contents of your .pub file");
		return -EINVAL;
	}
	if (len >= sizeof(key->type))
		len = sizeof(key->type) - 1;
	memcpy(key->type, word, len);
	key->type[len] = '\0';
	type = ssh_key_find_type(key->type);
	if (!type) {
		if (strchr(key->type, '=') || strchr(key->type, ',') || strchr(key->type, '"'))
			set_error(err, errlen, "keys with options (such as command= or from=) are not accepted; give the plain public key");
		else if (strcmp(key->type, "ssh-dss") == 0)
			set_error(err, errlen, "DSA keys are no longer safe; make an ed25519 key with ssh-keygen -t ed25519");
		else
			set_error(err, errlen, "this is not an SSH public key of a known type (ssh-ed25519, ecdsa-sha2-*, ssh-rsa)");
		return -EINVAL;
	}
	len = ssh_key_next_word(&p, &word);
	if (len == 0) {
		set_error(err, errlen, "the key has a type but no data; copy the whole line of your .pub file");
		return -EINVAL;
	}
	memcpy(key->base64, word, len);
	key->base64[len] = '\0';
	while (*p == ' ' || *p == '\t')
		p++;
	len = strlen(p);
	while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
		len--;
	if (len >= sizeof(key->comment))
		len = sizeof(key->comment) - 1;
	memcpy(key->comment, p, len);
	key->comment[len] = '\0';
	return ssh_key_check_blob(key, type, err, errlen);
}
