/* SPDX-License-Identifier: MIT */
/*
 * The token the hub presents to an agent, derived from the server's token.
 *
 * An agent reads the hub's member list (GET /api/v1/sync) with the token
 * `gpubox-hub server add` printed; the hub calls the agent's HTTP API
 * (pokes, readings) the other way.  The agent's API may be plain HTTP on
 * the lab's network, so whoever reads that direction must not learn the
 * token that opens the member list: the hub sends
 *
 *   hex(BLAKE2b-256(message = "gpubox hub-to-agent v1",
 *                   key = BLAKE2b-256(the server's token)))
 *
 * and the agent compares against the same derivation of its own token file.
 * A one-way function, so the derived token gives nothing back; no new
 * configuration, and the raw token is refused by the agent.  (The key is
 * hashed first because the token may be longer than BLAKE2b's 64-byte key.)
 */
#ifndef GPUBOX_HUBTOKEN_H
#define GPUBOX_HUBTOKEN_H

#include <stddef.h>

#define HUBTOKEN_CONTEXT "gpubox hub-to-agent v1"
#define HUBTOKEN_HEX 65          /* 32 bytes in hex + NUL */

/* out = the hub-to-agent token of the server token token[0..len). */
int hubtoken_to_agent(const char *token, size_t len, char out[HUBTOKEN_HEX]);

#endif
