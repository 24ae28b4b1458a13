/* SPDX-License-Identifier: MIT */
/*
 * Compressed answers: which content coding a client accepts (its
 * Accept-Encoding header, RFC 9110 section 12.5.3) and the body in it,
 * with zlib.  gzip and deflate (the zlib format, as RFC 9110 names it) are
 * offered; a client that says nothing gets the body as it is.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <zlib.h>

#include "hub.h"
#include "banned.h"

/* q=1 in thousandths; -1: the coding was not named. */
#define ENCODING_Q_ONE 1000

/* RFC 9110's tchar. */
static bool encoding_is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-.^_`|~", c));
}

static const char *encoding_skip_ows(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* A token at *p: its length (0: none), *p moved past it. */
static size_t encoding_token(const char **p)
{
	const char *start = *p;

	while (encoding_is_tchar(**p))
		(*p)++;
	return (size_t)(*p - start);
}

/* qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), in
 * thousandths; -1 when malformed. */
static int encoding_qvalue(const char **p)
{
	const char *s = *p;
	int q, scale = 100;

	if (*s != '0' && *s != '1')
		return -1;
	q = (*s++ - '0') * ENCODING_Q_ONE;
	if (*s == '.') {
		s++;
		for (int i = 0; i < 3 && *s >= '0' && *s <= '9'; i++, s++, scale /= 10)
			q += (*s - '0') * scale;
	}
	if (q > ENCODING_Q_ONE)
		return -1;
	*p = s;
	return q;
}

/* The parameters after a coding: its q (1 when none); -1 when malformed.
 * Parameters other than q are skipped. */
static int encoding_params(const char **p)
{
	int q = ENCODING_Q_ONE;

	for (;;) {
		const char *name;
		size_t len;

		*p = encoding_skip_ows(*p);
		if (**p != ';')
			return q;
		*p = encoding_skip_ows(*p + 1);
		name = *p;
		len = encoding_token(p);
		if (len == 0 || **p != '=')
			return -1;
		(*p)++;
		if (len == 1 && (name[0] == 'q' || name[0] == 'Q'))
			q = encoding_qvalue(p);
		else if (encoding_token(p) == 0)
			return -1;
		if (q < 0)
			return -1;
	}
}

struct encoding_prefs {
	int gzip, deflate, identity, any;     /* thousandths; -1: not named */
};

static void encoding_note(struct encoding_prefs *prefs, const char *name, size_t len, int q)
{
	int *slot = NULL;

	if ((len == 4 && strncasecmp(name, "gzip", 4) == 0) ||
	    (len == 6 && strncasecmp(name, "x-gzip", 6) == 0))
		slot = &prefs->gzip;
	else if (len == 7 && strncasecmp(name, "deflate", 7) == 0)
		slot = &prefs->deflate;
	else if (len == 8 && strncasecmp(name, "identity", 8) == 0)
		slot = &prefs->identity;
	else if (len == 1 && name[0] == '*')
		slot = &prefs->any;
	/* Named twice: the better, as a client that repeats itself means. */
	if (slot && q > *slot)
		*slot = q;
}

/* Skip to the element after the next comma; false at the end. */
static bool encoding_next(const char **p)
{
	const char *comma = strchr(*p, ',');

	if (!comma)
		return false;
	*p = comma + 1;
	return true;
}

static void encoding_parse(const char *header, struct encoding_prefs *prefs)
{
	const char *p = header;

	*prefs = (struct encoding_prefs){ -1, -1, -1, -1 };
	do {
		const char *name;
		size_t len;
		int q;

		p = encoding_skip_ows(p);
		name = p;
		len = encoding_token(&p);
		if (len == 0)
			continue;
		q = encoding_params(&p);
		p = encoding_skip_ows(p);
		/* A malformed element counts for nothing. */
		if (q >= 0 && (*p == ',' || *p == '\0'))
			encoding_note(prefs, name, len, q);
	} while (encoding_next(&p));
}

enum http_encoding encoding_pick(const char *accept_encoding)
{
	struct encoding_prefs prefs;
	int gzip, deflate, identity, best;

	if (!accept_encoding)
		return HTTP_ENCODING_IDENTITY;
	encoding_parse(accept_encoding, &prefs);
	gzip = prefs.gzip >= 0 ? prefs.gzip : prefs.any;
	deflate = prefs.deflate >= 0 ? prefs.deflate : prefs.any;
	/* identity is acceptable unless refused by name or by "*;q=0"; here
	 * only a preference the client states for it counts against a coding. */
	identity = prefs.identity >= 0 ? prefs.identity : 0;
	best = gzip >= deflate ? gzip : deflate;
	if (best <= 0 || identity > best)
		return HTTP_ENCODING_IDENTITY;
	return gzip >= deflate ? HTTP_ENCODING_GZIP : HTTP_ENCODING_DEFLATE;
}

const char *encoding_name(enum http_encoding enc)
{
	switch (enc) {
	case HTTP_ENCODING_GZIP: return "gzip";
	case HTTP_ENCODING_DEFLATE: return "deflate";
	default: return NULL;
	}
}

int encoding_compress(enum http_encoding enc, const char *in, size_t len, char **out,
		      size_t *outlen)
{
	z_stream z = { 0 };
	uLong bound;
	char *buf;
	int ret;

	*out = NULL;
	if (enc != HTTP_ENCODING_GZIP && enc != HTTP_ENCODING_DEFLATE)
		return -EINVAL;
	if (len > UINT32_MAX)
		return -E2BIG;
	/* 15 bits of window; +16: a gzip header and trailer, not zlib's. */
	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, enc == HTTP_ENCODING_GZIP ? 31 : 15,
			 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	/* deflateBound() leaves out the gzip wrapper's 18 bytes. */
	bound = deflateBound(&z, (uLong)len) + 18;
	buf = malloc(bound);
	if (!buf) {
		deflateEnd(&z);
		return -ENOMEM;
	}
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	z.next_out = (Bytef *)buf;
	z.avail_out = (uInt)bound;
	ret = deflate(&z, Z_FINISH);
	*outlen = z.total_out;
	deflateEnd(&z);
	if (ret != Z_STREAM_END) {
		free(buf);
		return -EIO;
	}
	*out = buf;
	return 0;
}
