/* SPDX-License-Identifier: MIT */
/*
 * encoding.c: the coding an Accept-Encoding header asks for (q-values,
 * "*", identity, malformed elements), and bodies compressed in gzip and
 * deflate that zlib's inflate gives back whole.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <zlib.h>

#include "hub.h"
#include "banned.h"

struct pick_case {
	const char *header;
	enum http_encoding want;
};

static void test_pick(void **state)
{
	static const struct pick_case cases[] = {
		{ NULL, HTTP_ENCODING_IDENTITY },
		{ "", HTTP_ENCODING_IDENTITY },
		{ "gzip", HTTP_ENCODING_GZIP },
		{ "GZip", HTTP_ENCODING_GZIP },
		{ "x-gzip", HTTP_ENCODING_GZIP },
		{ "deflate", HTTP_ENCODING_DEFLATE },
		{ "gzip, deflate, br", HTTP_ENCODING_GZIP },
		{ "deflate, gzip", HTTP_ENCODING_GZIP },          /* a tie: gzip */
		{ "br", HTTP_ENCODING_IDENTITY },
		{ "gzip;q=0", HTTP_ENCODING_IDENTITY },
		{ "gzip;q=0.000", HTTP_ENCODING_IDENTITY },
		{ "gzip;q=0, deflate", HTTP_ENCODING_DEFLATE },
		{ "gzip;q=0.5, deflate;q=0.8", HTTP_ENCODING_DEFLATE },
		{ "gzip;q=0.8, deflate;q=0.5", HTTP_ENCODING_GZIP },
		{ "gzip ; q=0.5 , deflate ;Q=0.501", HTTP_ENCODING_DEFLATE },
		{ "*", HTTP_ENCODING_GZIP },
		{ "*;q=0", HTTP_ENCODING_IDENTITY },
		{ "*;q=0.3, gzip;q=0", HTTP_ENCODING_DEFLATE },
		{ "identity", HTTP_ENCODING_IDENTITY },
		{ "identity, gzip;q=0.5", HTTP_ENCODING_IDENTITY },  /* identity preferred */
		{ "identity;q=0.1, gzip;q=0.5", HTTP_ENCODING_GZIP },
		{ "identity;q=0, gzip", HTTP_ENCODING_GZIP },
		/* The better of a repeated coding. */
		{ "gzip;q=0, gzip;q=1", HTTP_ENCODING_GZIP },
		/* Other parameters are skipped. */
		{ "gzip;level=9;q=1", HTTP_ENCODING_GZIP },
		/* Malformed elements count for nothing, the others still do. */
		{ "gzip;q=1.5", HTTP_ENCODING_IDENTITY },
		{ "gzip;q=2", HTTP_ENCODING_IDENTITY },
		{ "gzip;q=0.1234", HTTP_ENCODING_IDENTITY },
		{ "gzip;q=", HTTP_ENCODING_IDENTITY },
		{ "gzip;q", HTTP_ENCODING_IDENTITY },
		{ "gzip;q=abc", HTTP_ENCODING_IDENTITY },
		{ "gzip;=1", HTTP_ENCODING_IDENTITY },
		{ "gzip;q=\"1\"", HTTP_ENCODING_IDENTITY },
		{ "gzip x, deflate", HTTP_ENCODING_DEFLATE },
		{ "gzip;q=1.5, deflate", HTTP_ENCODING_DEFLATE },
		{ ",,, ,gzip,,", HTTP_ENCODING_GZIP },
		{ "\"gzip\"", HTTP_ENCODING_IDENTITY },
		{ "gzipx", HTTP_ENCODING_IDENTITY },
		{ "gzip;q=1.000", HTTP_ENCODING_GZIP },
		{ "gzip;q=1.001", HTTP_ENCODING_IDENTITY },
		{ "gzip;q=0.001", HTTP_ENCODING_GZIP },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum http_encoding got = encoding_pick(cases[i].header);

		if (got != cases[i].want)
			fail_msg("\"%s\": %d, expected %d", cases[i].header ? cases[i].header : "(none)",
				 got, cases[i].want);
	}
	assert_string_equal(encoding_name(HTTP_ENCODING_GZIP), "gzip");
	assert_string_equal(encoding_name(HTTP_ENCODING_DEFLATE), "deflate");
	assert_null(encoding_name(HTTP_ENCODING_IDENTITY));
}

/* in compressed in enc, then inflated back (window bits: 31 gzip only,
 * 15 zlib only, so the format is checked too). */
static void round_trip(enum http_encoding enc, const char *in, size_t len)
{
	char *packed = NULL, *back = malloc(len + 1);
	size_t packed_len = 0;
	z_stream z = { 0 };

	assert_non_null(back);
	assert_int_equal(encoding_compress(enc, in, len, &packed, &packed_len), 0);
	assert_non_null(packed);
	if (enc == HTTP_ENCODING_GZIP)
		assert_memory_equal(packed, "\x1f\x8b", 2);
	assert_int_equal(inflateInit2(&z, enc == HTTP_ENCODING_GZIP ? 31 : 15), Z_OK);
	z.next_in = (Bytef *)packed;
	z.avail_in = (uInt)packed_len;
	z.next_out = (Bytef *)back;
	z.avail_out = (uInt)len + 1;
	assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
	assert_int_equal(z.total_out, len);
	assert_int_equal(z.avail_in, 0);
	if (len)
		assert_memory_equal(back, in, len);
	inflateEnd(&z);
	free(packed);
	free(back);
}

static void test_compress(void **state)
{
	size_t len = 200000;
	char *text = malloc(len), *random = malloc(len);
	char *out = NULL;
	size_t outlen = 0;
	uint32_t x = 12345;

	(void)state;
	assert_non_null(text);
	assert_non_null(random);
	for (size_t i = 0; i < len; i++) {
		text[i] = "{\"gpu\": 0, \"util\": 97, \"mem_used\": 123456789},\n"[i % 48];
		x = x * 1103515245u + 12345u;
		random[i] = (char)(x >> 16);
	}
	round_trip(HTTP_ENCODING_GZIP, text, len);
	round_trip(HTTP_ENCODING_DEFLATE, text, len);
	/* Incompressible bytes grow a little: the bound holds them. */
	round_trip(HTTP_ENCODING_GZIP, random, len);
	round_trip(HTTP_ENCODING_DEFLATE, random, len);
	round_trip(HTTP_ENCODING_GZIP, "", 0);
	round_trip(HTTP_ENCODING_DEFLATE, "x", 1);
	assert_int_equal(encoding_compress(HTTP_ENCODING_GZIP, text, len, &out, &outlen), 0);
	assert_true(outlen < len / 50);
	free(out);
	assert_int_equal(encoding_compress(HTTP_ENCODING_IDENTITY, text, len, &out, &outlen), -EINVAL);
	assert_null(out);
	free(text);
	free(random);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pick),
		cmocka_unit_test(test_compress),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
