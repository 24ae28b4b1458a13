/* SPDX-License-Identifier: MIT */
/*
 * Validation of everything a client can send: member names, template
 * names, ports and SSH public keys.  Each function returns 0 or -EINVAL
 * and, on error, writes one sentence for the person who typed the value:
 * what is wrong and what to do.
 */
#ifndef GPUBOX_VALIDATE_H
#define GPUBOX_VALIDATE_H

#include <stddef.h>
#include <stdint.h>

#define MEMBER_NAME_MAX 32
#define MEMBER_NAME_SIZE (MEMBER_NAME_MAX + 1)   /* a buffer for one, with its NUL */
#define TEMPLATE_NAME_MAX 40
#define TEMPLATE_REF_SIZE 80   /* NAME@VERSION and its NUL */
#define SSH_KEY_MAX 16384

/* Every member's container maps this many ids (0..65535 inside), from a
 * block of the host's subordinate ids that starts at a multiple of it. */
#define SUBID_COUNT 65536u

/* A member name is a login name: [a-z][a-z0-9-]{0,31}, ending in a letter or digit. */
int validate_member_name(const char *name, char *err, size_t errlen);

/* A template name: [a-z0-9][a-z0-9.-]{0,39}; a reference adds "@VERSION". */
int validate_template_name(const char *name, char *err, size_t errlen);
int validate_template_ref(const char *ref, char *name, size_t namelen,
			  uint32_t *version, char *err, size_t errlen);

/* A port number given as text, 1..65535. */
int validate_port_text(const char *text, uint16_t *port, char *err, size_t errlen);

struct ssh_key {
	char type[48];
	char base64[SSH_KEY_MAX];
	char comment[256];
	char fingerprint[64];   /* "SHA256:..." as ssh-keygen -l prints it */
	unsigned bits;          /* RSA modulus size; 0 for other types */
};

/*
 * One authorized_keys line holding a public key and an optional comment.
 * The blob is read by its type's wire format (RFC 4253, 5656, 8709,
 * OpenSSH's PROTOCOL.u2f): every length checked, nothing after the key,
 * one encoding per key, so the fingerprint (SHA-256 of the blob) tells
 * two keys apart however their lines are written.  Refused: options
 * (command=, from=, ...), unknown or weak types, RSA outside 2048..16384
 * bits, bad base64, a blob cut short, with bytes after the key or whose
 * type does not match the line's, and a comment that is not UTF-8 or
 * holds control or invisible formatting characters (bidi overrides,
 * zero-width ones).  A comment longer than the field is shortened at a
 * character boundary.
 */
int ssh_key_parse(const char *line, struct ssh_key *key, char *err, size_t errlen);

#endif
