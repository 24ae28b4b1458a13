/* SPDX-License-Identifier: MIT */
/* An Accept-Encoding header from anyone: a coding picked safely, and the
 * bytes compressed in it come back whole through zlib's inflate. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "hub.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_round_trip(enum http_encoding enc, const char *in, size_t len)
{
	char *packed = NULL, *back = malloc(len + 1);
	size_t packed_len = 0;
	z_stream z = { 0 };

	if (!back || encoding_compress(enc, in, len, &packed, &packed_len) < 0) {
		free(back);
		return;
	}
	if (inflateInit2(&z, enc == HTTP_ENCODING_GZIP ? 31 : 15) != Z_OK)
		abort();
	z.next_in = (Bytef *)packed;
	z.avail_in = (uInt)packed_len;
	z.next_out = (Bytef *)back;
	z.avail_out = (uInt)len + 1;
	if (inflate(&z, Z_FINISH) != Z_STREAM_END || z.total_out != len ||
	    (len && memcmp(back, in, len) != 0))
		abort();
	inflateEnd(&z);
	free(packed);
	free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *header = malloc(size + 1);
	enum http_encoding enc;

	if (!header)
		return 0;
	memcpy(header, data, size);
	header[size] = '\0';
	enc = encoding_pick(header);
	if (enc != HTTP_ENCODING_IDENTITY && enc != HTTP_ENCODING_GZIP && enc != HTTP_ENCODING_DEFLATE)
		abort();
	if (enc != HTTP_ENCODING_IDENTITY)
		fuzz_round_trip(enc, header, size);
	free(header);
	return 0;
}
