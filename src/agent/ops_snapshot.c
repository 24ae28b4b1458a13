/* SPDX-License-Identifier: MIT */
/* The snapshot operations of the protocol. */
#include <stddef.h>

#include "agent.h"
#include "banned.h"

const struct op_entry ops_snapshot_table[] = {
	{ NULL, NULL },
};
