/* SPDX-License-Identifier: MIT */
/*
 * What browsers send besides JSON: application/x-www-form-urlencoded
 * bodies and query strings, and the Cookie header.  Both parsers are
 * strict where leniency would let a request mean two things (a repeated
 * field, a bad escape, a NUL byte hidden in a value) and fail with -EINVAL
 * rather than guess.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hub.h"
#include "banned.h"

static int form_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode one urlencoded component of len bytes into out (room for len + 1):
 * '+' is a blank, %XX a byte; a bad escape or a NUL byte is -EINVAL. */
static int form_decode(const char *in, size_t len, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		char c = in[i];

		if (c == '%') {
			int hi, lo;

			if (i + 2 >= len)
				return -EINVAL;
			hi = form_hex_digit(in[i + 1]);
			lo = form_hex_digit(in[i + 2]);
			if (hi < 0 || lo < 0)
				return -EINVAL;
			c = (char)(hi * 16 + lo);
			i += 2;
		} else if (c == '+') {
			c = ' ';
		}
		if (c == '\0')
			return -EINVAL;
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}

/* A field name: printable ASCII, no blank. */
static bool form_name_ok(const char *name)
{
	if (!name[0])
		return false;
	for (const char *p = name; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return false;
	return true;
}

/* "name=value" of len bytes appended to f. */
static int form_add_pair(struct form *f, const char *pair, size_t len)
{
	const char *eq = memchr(pair, '=', len);
	size_t name_len, value_len;
	char *name, *value;

	if (!eq || f->n >= FORM_FIELDS_MAX)
		return -EINVAL;
	name_len = (size_t)(eq - pair);
	value_len = len - name_len - 1;
	/* One allocation: the name, its NUL, the value, its NUL. */
	name = malloc(name_len + value_len + 2);
	if (!name)
		return -ENOMEM;
	value = name + name_len + 1;
	if (form_decode(pair, name_len, name) < 0 || form_decode(eq + 1, value_len, value) < 0 ||
	    !form_name_ok(name) || form_get(f, name)) {
		free(name);
		return -EINVAL;
	}
	f->fields[f->n].name = name;
	f->fields[f->n].value = value;
	f->n++;
	return 0;
}

int form_parse(const char *body, size_t len, struct form *out)
{
	size_t pos = 0;

	memset(out, 0, sizeof(*out));
	if (!body || len == 0)
		return 0;
	while (pos <= len) {
		const char *amp = memchr(body + pos, '&', len - pos);
		size_t end = amp ? (size_t)(amp - body) : len;
		int ret;

		/* "a=1&&b=2", a leading or a trailing '&': not what a form sends. */
		if (end == pos) {
			form_free(out);
			return -EINVAL;
		}
		ret = form_add_pair(out, body + pos, end - pos);
		if (ret < 0) {
			form_free(out);
			return ret;
		}
		if (!amp)
			break;
		pos = end + 1;
	}
	return 0;
}

void form_free(struct form *f)
{
	if (!f)
		return;
	/* The value shares the name's allocation. */
	for (size_t i = 0; i < f->n; i++)
		free(f->fields[i].name);
	memset(f, 0, sizeof(*f));
}

const char *form_get(const struct form *f, const char *name)
{
	if (!f)
		return NULL;
	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->fields[i].name, name) == 0)
			return f->fields[i].value;
	return NULL;
}

/* RFC 6265 section 4.1.1: a cookie-name is an RFC 2616 token. */
static bool form_cookie_token_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && !strchr("()<>@,;:\\\"/[]?={}", c);
}

/* cookie-octet: printable ASCII but for blank, '"', ',', ';' and '\'. */
static bool form_cookie_octet(unsigned char c)
{
	return c == 0x21 || (c >= 0x23 && c <= 0x2b) || (c >= 0x2d && c <= 0x3a) ||
	       (c >= 0x3c && c <= 0x5b) || (c >= 0x5d && c <= 0x7e);
}

/* The value of the pair at p (len bytes, "name=value" or name="value")
 * when its name is name: 1 and the value's bounds; 0 another name;
 * -EINVAL a malformed pair. */
static int form_cookie_pair(const char *p, size_t len, const char *name, const char **value,
			    size_t *value_len)
{
	const char *eq = memchr(p, '=', len);
	size_t name_len, vlen;
	const char *v;

	if (!eq || eq == p)
		return -EINVAL;
	name_len = (size_t)(eq - p);
	for (size_t i = 0; i < name_len; i++)
		if (!form_cookie_token_char((unsigned char)p[i]))
			return -EINVAL;
	v = eq + 1;
	vlen = len - name_len - 1;
	if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') {
		v++;
		vlen -= 2;
	}
	for (size_t i = 0; i < vlen; i++)
		if (!form_cookie_octet((unsigned char)v[i]))
			return -EINVAL;
	if (name_len != strlen(name) || memcmp(p, name, name_len) != 0)
		return 0;
	*value = v;
	*value_len = vlen;
	return 1;
}

int form_cookie(const char *header, const char *name, char *value, size_t len)
{
	const char *p = header;

	if (!header || !name || !name[0])
		return -ENOENT;
	while (*p) {
		size_t pair_len;
		const char *v;
		size_t vlen;
		int found;

		p += strspn(p, " \t");
		pair_len = strcspn(p, ";");
		/* Trailing blanks belong to the separator, not the value. */
		while (pair_len > 0 && (p[pair_len - 1] == ' ' || p[pair_len - 1] == '\t'))
			pair_len--;
		found = pair_len ? form_cookie_pair(p, pair_len, name, &v, &vlen) : 0;
		/* Another site's malformed cookie on the same host is not ours
		 * to judge; ours malformed is an error below. */
		if (found == -EINVAL && pair_len > strlen(name) && strncmp(p, name, strlen(name)) == 0 &&
		    p[strlen(name)] == '=')
			return -EINVAL;
		if (found == 1) {
			if (vlen >= len)
				return -ENAMETOOLONG;
			memcpy(value, v, vlen);
			value[vlen] = '\0';
			return 0;
		}
		p += strcspn(p, ";");
		if (*p == ';')
			p++;
	}
	return -ENOENT;
}
