/* SPDX-License-Identifier: MIT */
/*
 * A member's share of the server: memory, swap, CPU, processes, block I/O
 * and disk, and whether containers may nest.  The same text is read from the agent's configuration (the
 * server's defaults, key "limits") and from an admin's
 * `gpubox admin limits set NAME memory=64G cpus=16`, and a member's own
 * values override the defaults key by key.
 *
 * Every value is held to its kind's bounds here, so a value recorded,
 * shown or written to a cgroup file was always checked once.
 */
#ifndef GPUBOX_RESLIMIT_H
#define GPUBOX_RESLIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum limit_key {
	LIMIT_MEMORY,       /* hard: the kernel kills inside the container past it */
	LIMIT_MEMORY_HIGH,  /* soft: the container is reclaimed and slowed past it */
	LIMIT_SWAP,         /* swap on top of memory */
	LIMIT_CPU_WEIGHT,   /* share under contention, 1..10000; 100 is an equal share */
	LIMIT_CPUS,         /* hard cap, in thousandths of a CPU */
	LIMIT_PIDS,         /* processes and threads */
	LIMIT_IO_WEIGHT,    /* block I/O share, 1..10000; 100 is an equal share */
	LIMIT_DISK,         /* bytes of the member's own layer */
	LIMIT_NESTING,      /* 1: Docker and Podman inside (nesting.c), 0: LXC's default confinement */
	LIMIT_COUNT
};

/* A value given as "none": explicitly unlimited. */
#define LIMIT_NONE UINT64_MAX

/* The longest value as limits_format_value() writes it. */
#define LIMIT_TEXT_MAX 24

struct limits {
	uint64_t value[LIMIT_COUNT];
	uint32_t given;     /* bit (1 << key): a value is set */
	uint32_t percent;   /* bit (1 << key): value is a percentage of the server's memory */
};

const char *limits_key_name(enum limit_key key);
/* -EINVAL for a name that is no key. */
int limits_key_find(const char *name, enum limit_key *out);
static inline bool limits_given(const struct limits *l, enum limit_key key)
{
	return l->given & (1u << key);
}

/* One "KEY=VALUE" into l; on error l is unchanged and err holds one
 * sentence naming the key and what it accepts. */
int limits_parse_assignment(const char *text, struct limits *l, char *err, size_t errlen);
/* Blank- or comma-separated assignments ("memory=64G pids=20000"). */
int limits_parse_list(const char *text, struct limits *l, char *err, size_t errlen);
/* The value of key in the form it is read back ("64G", "75%", "0.5",
 * "none"); "" when not given. */
void limits_format_value(const struct limits *l, enum limit_key key, char *buf, size_t len);
void limits_unset(struct limits *l, enum limit_key key);

/* base with every key over gives replaced. */
void limits_merge(const struct limits *base, const struct limits *over, struct limits *out);

/* A key's value as a number (bytes for sizes, percentages resolved against
 * host_memory), or LIMIT_NONE when not given or given as none. */
uint64_t limits_resolve(const struct limits *l, enum limit_key key, uint64_t host_memory);

/* A yes/no key's value: dflt when not given. */
bool limits_flag(const struct limits *l, enum limit_key key, bool dflt);

/* Rules across keys, once percentages are resolved: the soft level not
 * above the hard one. */
int limits_check(const struct limits *l, uint64_t host_memory, char *err, size_t errlen);

#endif
