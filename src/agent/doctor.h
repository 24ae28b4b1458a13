/* SPDX-License-Identifier: MIT */
/*
 * gpubox admin doctor, the agent's side (ops_doctor.c): what a server
 * needs, one check each, and the pure helpers those checks read their
 * answers with (unit-tested in tests/unit/test_doctor.c, fuzzed in
 * tests/fuzz/fuzz_doctor.c).
 */
#ifndef GPUBOX_AGENT_DOCTOR_H
#define GPUBOX_AGENT_DOCTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* A clock further than this from the hub's is a failure: sessions,
 * tokens and the monitor's history are timed. */
#define DOCTOR_CLOCK_SKEW_MAX 30

enum doctor_status {
	DOCTOR_OK,       /* what the server needs is there */
	DOCTOR_NOTE,     /* worth knowing, not a failure (no GPU, no hub) */
	DOCTOR_FAIL,     /* gpubox will not work (fully) until it is fixed */
};

struct doctor_result {
	enum doctor_status status;
	char detail[256];      /* what was found */
	char advice[384];      /* what to do; "" when there is nothing to do */
};

/* "ok", "note" or "fail". */
const char *doctor_status_name(enum doctor_status status);

/*
 * Whether a kernel release ("6.1.0-18-amd64", "5.15.0") is at least
 * major.minor.  False for text that does not begin with two numbers.
 */
bool doctor_kernel_at_least(const char *release, unsigned major, unsigned minor);

/*
 * The value of key in "sshd -T" output (lowercase "key value" lines),
 * copied into buf.  0, -ENOENT when the key is absent, -ENAMETOOLONG
 * when the value does not fit.
 */
int doctor_sshd_option(const char *text, const char *key, char *buf, size_t len);

/*
 * An HTTP Date header's value ("Sun, 06 Nov 1994 08:49:37 GMT", RFC 9110's
 * IMF-fixdate) as a time.  0 or -EINVAL.
 */
int doctor_http_date(const char *value, time_t *out);

#endif
