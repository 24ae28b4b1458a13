/* SPDX-License-Identifier: MIT */
/* A client's frame payload: decoding and request checking never crash
 * and never leak, whatever the bytes. */
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_request req;
	json_t *msg = NULL;
	char err[256];

	if (proto_decode((const char *)data, size, &msg) < 0)
		return 0;
	if (proto_parse_request(msg, &req, err, sizeof(err)) == 0) {
		static const char *const allowed[] = { "member", "port", "name", NULL };
		const char *text;
		long long number;
		bool flag;

		proto_args_only(req.args, allowed, err, sizeof(err));
		proto_arg_string(req.args, "member", false, &text, err, sizeof(err));
		proto_arg_int(req.args, "port", false, 1, 65535, &number, err, sizeof(err));
		proto_arg_bool(req.args, "confirm", &flag, err, sizeof(err));
	}
	json_decref(msg);
	return 0;
}
