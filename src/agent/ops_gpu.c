/* SPDX-License-Identifier: MIT */
/* The GPU operations of the protocol. */
#include <stddef.h>

#include "agent.h"
#include "banned.h"

const struct op_entry ops_gpu_table[] = {
	{ NULL, NULL },
};
