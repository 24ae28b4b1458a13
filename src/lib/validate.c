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

/*
 * Each type's blob, as OpenSSH writes it (RFC 4253 6.6, RFC 5656 3.1,
 * RFC 8709 4, PROTOCOL.u2f): every field a uint32-length string, the type
 * name first, nothing after the last field.
 *   ssh-ed25519      name, key[32]
 *   ecdsa-sha2-*     name, curve name, point (0x04 || x || y)
 *   ssh-rsa          name, e (mpint), n (mpint)
 *   sk-*             as the plain type, then the application ("ssh:...")
 * A key is accepted only in this one encoding, so its fingerprint (the
 * SHA-256 of the blob) names the key, not the way it was written.
 */
enum ssh_key_family { SSH_KEY_ED25519, SSH_KEY_ECDSA, SSH_KEY_RSA };

struct ssh_curve {
	const char *name;
	size_t size;                    /* bytes of one coordinate */
	const unsigned char *prime;     /* the field's prime, size bytes, big-endian */
};

static const unsigned char ssh_p256[32] = {
	0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
};
static const unsigned char ssh_p384[48] = {
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
	0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff,
};
static const unsigned char ssh_p521[66] = {
	0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff,
};

static const struct ssh_curve ssh_nistp256 = { "nistp256", 32, ssh_p256 };
static const struct ssh_curve ssh_nistp384 = { "nistp384", 48, ssh_p384 };
static const struct ssh_curve ssh_nistp521 = { "nistp521", 66, ssh_p521 };

struct ssh_key_type {
	const char *name;
	enum ssh_key_family family;
	const struct ssh_curve *curve;   /* ECDSA only */
	bool security_key;               /* followed by an application string */
};

static const struct ssh_key_type ssh_key_types[] = {
	{ "ssh-ed25519", SSH_KEY_ED25519, NULL, false },
	{ "sk-ssh-ed25519@openssh.com", SSH_KEY_ED25519, NULL, true },
	{ "ecdsa-sha2-nistp256", SSH_KEY_ECDSA, &ssh_nistp256, false },
	{ "ecdsa-sha2-nistp384", SSH_KEY_ECDSA, &ssh_nistp384, false },
	{ "ecdsa-sha2-nistp521", SSH_KEY_ECDSA, &ssh_nistp521, false },
	{ "sk-ecdsa-sha2-nistp256@openssh.com", SSH_KEY_ECDSA, &ssh_nistp256, true },
	{ "ssh-rsa", SSH_KEY_RSA, NULL, false },
};

/* OpenSSH's bounds on an RSA modulus (ssh-keygen refuses more). */
#define SSH_RSA_MIN_BITS 2048u
#define SSH_RSA_MAX_BITS 16384u

static const struct ssh_key_type *ssh_key_find_type(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(ssh_key_types); i++)
		if (strcmp(ssh_key_types[i].name, name) == 0)
			return &ssh_key_types[i];
	return NULL;
}

/* A blob being read, field by field. */
struct ssh_blob {
	const unsigned char *data;
	size_t len, pos;
};

/* The next uint32-length string; -EINVAL if the blob ends first. */
static int ssh_blob_string(struct ssh_blob *b, const unsigned char **str, size_t *len)
{
	uint32_t n;

	if (b->len - b->pos < 4)
		return -EINVAL;
	n = (uint32_t)b->data[b->pos] << 24 | (uint32_t)b->data[b->pos + 1] << 16 |
	    (uint32_t)b->data[b->pos + 2] << 8 | b->data[b->pos + 3];
	b->pos += 4;
	if (n > b->len - b->pos)
		return -EINVAL;
	*str = b->data + b->pos;
	*len = n;
	b->pos += n;
	return 0;
}

static bool ssh_blob_equals(const unsigned char *str, size_t len, const char *text)
{
	return len == strlen(text) && memcmp(str, text, len) == 0;
}

/* An mpint (RFC 4251 5) that is positive and minimal: no leading zero
 * byte unless the next byte's top bit needs it.  *num and *len are left
 * on the magnitude, the zero byte skipped. */
static bool ssh_mpint_positive_minimal(const unsigned char **num, size_t *len)
{
	if (*len == 0)
		return true;   /* zero */
	if ((*num)[0] & 0x80)
		return false;  /* negative */
	if ((*num)[0] == 0) {
		if (*len == 1 || !((*num)[1] & 0x80))
			return false;
		(*num)++;
		(*len)--;
	}
	return true;
}

static unsigned ssh_mpint_bits(const unsigned char *num, size_t len)
{
	unsigned bits;

	if (len == 0)
		return 0;
	bits = (unsigned)(len - 1) * 8;
	for (unsigned char top = num[0]; top; top >>= 1)
		bits++;
	return bits;
}

/* The same sentence for every blob that ends inside a field. */
static int ssh_key_cut_short(char *err, size_t errlen)
{
	set_error(err, errlen, "the key's data is cut short; copy the whole line of your .pub file");
	return -EINVAL;
}

static int ssh_key_decode_ed25519(struct ssh_blob *b, const struct ssh_key_type *type,
				  char *err, size_t errlen)
{
	const unsigned char *pk;
	size_t len;

	if (ssh_blob_string(b, &pk, &len) < 0)
		return ssh_key_cut_short(err, errlen);
	if (len != crypto_sign_ed25519_PUBLICKEYBYTES) {
		set_error(err, errlen, "the %s key's public part is %zu bytes, not 32 bytes; copy the whole line of your .pub file",
			  type->name, len);
		return -EINVAL;
	}
	/* Canonical, on the curve, in the prime-order group: every key that
	 * ssh-keygen makes, and one encoding for each. */
	if (!crypto_core_ed25519_is_valid_point(pk)) {
		set_error(err, errlen, "the %s key is not a point of the ed25519 group; this is not a key ssh-keygen made",
			  type->name);
		return -EINVAL;
	}
	return 0;
}

/* A coordinate is below the field's prime: one encoding per point. */
static bool ssh_curve_coordinate_ok(const struct ssh_curve *curve, const unsigned char *x)
{
	return memcmp(x, curve->prime, curve->size) < 0;
}

static int ssh_key_decode_ecdsa(struct ssh_blob *b, const struct ssh_key_type *type,
				char *err, size_t errlen)
{
	const struct ssh_curve *curve = type->curve;
	const unsigned char *name, *point;
	size_t namelen, len;

	if (ssh_blob_string(b, &name, &namelen) < 0 || ssh_blob_string(b, &point, &len) < 0)
		return ssh_key_cut_short(err, errlen);
	if (!ssh_blob_equals(name, namelen, curve->name)) {
		set_error(err, errlen, "the key's curve is not %s, which its type %s names; copy the whole line of your .pub file",
			  curve->name, type->name);
		return -EINVAL;
	}
	if (len != 1 + 2 * curve->size || point[0] != 0x04) {
		set_error(err, errlen, "the %s key is not an uncompressed point of %zu bytes; copy the whole line of your .pub file",
			  type->name, 1 + 2 * curve->size);
		return -EINVAL;
	}
	if (!ssh_curve_coordinate_ok(curve, point + 1) ||
	    !ssh_curve_coordinate_ok(curve, point + 1 + curve->size)) {
		set_error(err, errlen, "the %s key's point lies outside the curve's field; this is not a key ssh-keygen made",
			  type->name);
		return -EINVAL;
	}
	return 0;
}

static int ssh_key_decode_rsa(struct ssh_blob *b, struct ssh_key *key, char *err, size_t errlen)
{
	const unsigned char *e, *n;
	size_t elen, nlen;

	if (ssh_blob_string(b, &e, &elen) < 0 || ssh_blob_string(b, &n, &nlen) < 0)
		return ssh_key_cut_short(err, errlen);
	if (!ssh_mpint_positive_minimal(&e, &elen) || !ssh_mpint_positive_minimal(&n, &nlen)) {
		set_error(err, errlen, "the RSA key's numbers are not encoded as SSH requires (positive, no leading zeros); copy the whole line of your .pub file");
		return -EINVAL;
	}
	if (elen == 0 || (elen == 1 && e[0] == 1) || !(e[elen - 1] & 1)) {
		set_error(err, errlen, "the RSA key's public exponent must be odd and greater than 1; this is not a key ssh-keygen made");
		return -EINVAL;
	}
	key->bits = ssh_mpint_bits(n, nlen);
	if (key->bits < SSH_RSA_MIN_BITS) {
		set_error(err, errlen,
			  "RSA keys must have at least 2048 bits (this one has %u); make an ed25519 key with ssh-keygen -t ed25519",
			  key->bits);
		return -EINVAL;
	}
	if (key->bits > SSH_RSA_MAX_BITS) {
		set_error(err, errlen,
			  "RSA keys of more than 16384 bits are refused by OpenSSH (this one has %u); make an ed25519 key with ssh-keygen -t ed25519",
			  key->bits);
		return -EINVAL;
	}
	return 0;
}

/* A security key's application: ssh-keygen makes only "ssh:..." ones. */
static int ssh_key_decode_application(struct ssh_blob *b, char *err, size_t errlen)
{
	const unsigned char *app;
	size_t len;

	if (ssh_blob_string(b, &app, &len) < 0)
		return ssh_key_cut_short(err, errlen);
	if (len < 4 || memcmp(app, "ssh:", 4) != 0)
		goto bad;
	for (size_t i = 4; i < len; i++)
		if (app[i] < 0x20 || app[i] > 0x7e)
			goto bad;
	return 0;
bad:
	set_error(err, errlen, "the security key's application must be printable text starting with \"ssh:\"; this is not a key ssh-keygen made");
	return -EINVAL;
}

static int ssh_key_decode(struct ssh_blob *b, struct ssh_key *key, const struct ssh_key_type *type,
			  char *err, size_t errlen)
{
	const unsigned char *name;
	size_t len;
	int ret;

	if (ssh_blob_string(b, &name, &len) < 0)
		return ssh_key_cut_short(err, errlen);
	if (!ssh_blob_equals(name, len, type->name)) {
		set_error(err, errlen, "the key's data does not match its type %s", type->name);
		return -EINVAL;
	}
	switch (type->family) {
	case SSH_KEY_ED25519:
		ret = ssh_key_decode_ed25519(b, type, err, errlen);
		break;
	case SSH_KEY_ECDSA:
		ret = ssh_key_decode_ecdsa(b, type, err, errlen);
		break;
	case SSH_KEY_RSA:
		ret = ssh_key_decode_rsa(b, key, err, errlen);
		break;
	default:
		ret = -EINVAL;
		break;
	}
	if (ret == 0 && type->security_key)
		ret = ssh_key_decode_application(b, err, errlen);
	if (ret < 0)
		return ret;
	if (b->pos != b->len) {
		set_error(err, errlen, "the key's data goes on for %zu bytes after the key; copy the line of your .pub file as it is",
			  b->len - b->pos);
		return -EINVAL;
	}
	return 0;
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
	__do_free unsigned char *data = NULL;
	size_t b64len = strlen(key->base64), bloblen = 0;
	const char *end = NULL;
	struct ssh_blob blob;
	int ret;

	data = malloc(b64len);
	if (!data)
		return -ENOMEM;
	/* libsodium refuses stray bits in the last character: one text per blob. */
	if (sodium_base642bin(data, b64len, key->base64, b64len, NULL, &bloblen, &end,
			      sodium_base64_VARIANT_ORIGINAL) != 0 || end != key->base64 + b64len) {
		set_error(err, errlen, "the key's base64 data is damaged; copy the whole line of your .pub file");
		return -EINVAL;
	}
	blob = (struct ssh_blob){ .data = data, .len = bloblen, .pos = 0 };
	ret = ssh_key_decode(&blob, key, type, err, errlen);
	if (ret < 0)
		return ret;
	ssh_key_fingerprint(data, bloblen, key->fingerprint, sizeof(key->fingerprint));
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

/* The next character of valid UTF-8 (RFC 3629: shortest form, no
 * surrogates, at most U+10FFFF): its length, or 0 if s starts none. */
static size_t validate_utf8_next(const unsigned char *s, size_t len, uint32_t *cp)
{
	size_t n;
	uint32_t c, min;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2, c = s[0] & 0x1f, min = 0x80;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3, c = s[0] & 0x0f, min = 0x800;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4, c = s[0] & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

/*
 * Characters a comment may not hold: controls (C0, DEL, C1), and the
 * invisible ones that change how the text around them is shown (bidi
 * overrides, isolates and marks, zero-width characters, line and
 * paragraph separators, the soft hyphen, tags) -- a comment is shown to
 * an admin as the name of a key, and must look like what it is.
 */
static const struct {
	uint32_t first, last;
} ssh_comment_refused[] = {
	{ 0x0000, 0x001f }, { 0x007f, 0x009f }, { 0x00ad, 0x00ad }, { 0x061c, 0x061c },
	{ 0x180e, 0x180e }, { 0x200b, 0x200f }, { 0x2028, 0x202e }, { 0x2060, 0x206f },
	{ 0xfeff, 0xfeff }, { 0xfff9, 0xfffb }, { 0xe0000, 0xe007f },
};

static int ssh_key_check_comment(const char *comment, size_t len, char *err, size_t errlen)
{
	const unsigned char *s = (const unsigned char *)comment;
	uint32_t cp = 0;

	for (size_t i = 0, n; i < len; i += n) {
		n = validate_utf8_next(s + i, len - i, &cp);
		if (n == 0) {
			set_error(err, errlen, "the key's comment is not valid UTF-8; retype it or leave it out");
			return -EINVAL;
		}
		for (size_t r = 0; r < ARRAY_SIZE(ssh_comment_refused); r++) {
			if (cp >= ssh_comment_refused[r].first && cp <= ssh_comment_refused[r].last) {
				set_error(err, errlen,
					  "the key's comment holds a control or invisible formatting character (U+%04X); remove it from the comment",
					  (unsigned)cp);
				return -EINVAL;
			}
		}
	}
	return 0;
}

int ssh_key_parse(const char *line, struct ssh_key *key, char *err, size_t errlen)
{
	const struct ssh_key_type *type;
	const char *p = line, *word;
	size_t len;
	int ret;

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
	ret = ssh_key_check_comment(p, len, err, errlen);
	if (ret < 0)
		return ret;
	/* A long comment is shortened, at the start of a character and
	 * without blanks at its end, as the line would be read again. */
	if (len >= sizeof(key->comment)) {
		len = sizeof(key->comment) - 1;
		while (len > 0 && ((unsigned char)p[len] & 0xc0) == 0x80)
			len--;
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
	}
	memcpy(key->comment, p, len);
	key->comment[len] = '\0';
	return ssh_key_check_blob(key, type, err, errlen);
}
