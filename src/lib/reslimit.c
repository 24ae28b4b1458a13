/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "reslimit.h"
#include "strutil.h"
#include "banned.h"

enum limit_kind { KIND_SIZE, KIND_WEIGHT, KIND_CPUS, KIND_COUNT, KIND_FLAG };

struct limit_def {
	const char *name;
	enum limit_kind kind;
	uint64_t min, max;  /* bytes, a weight, thousandths of a CPU, or a count */
	bool percent;       /* may be a percentage of the server's memory */
	const char *help;   /* what the key accepts, for the error sentence */
};

#define MIB (1024ull * 1024)
#define GIB (1024ull * MIB)
#define PIB (1024ull * 1024 * GIB)

/* The floors keep a container able to boot (systemd, sshd and a shell need
 * some 40 processes and tens of MiB); the ceilings are far past any server
 * and keep every sum and product below 2^63. */
static const struct limit_def limit_defs[LIMIT_COUNT] = {
	[LIMIT_MEMORY] = { "memory", KIND_SIZE, 64 * MIB, PIB, true,
			   "a size from 64M, such as 64G, a percentage of the server's memory such as 75%, or none" },
	[LIMIT_MEMORY_HIGH] = { "memory_high", KIND_SIZE, 64 * MIB, PIB, true,
				"a size from 64M, such as 56G, a percentage of the server's memory such as 70%, or none" },
	[LIMIT_SWAP] = { "swap", KIND_SIZE, 0, PIB, false,
			 "a size such as 8G (0: no swap), or none" },
	[LIMIT_CPU_WEIGHT] = { "cpu_weight", KIND_WEIGHT, 1, 10000, false,
			       "a whole number from 1 to 10000 (100 is an equal share)" },
	[LIMIT_CPUS] = { "cpus", KIND_CPUS, 10, 4096000, false,
			 "a number of CPUs from 0.01 to 4096, such as 16 or 0.5, or none" },
	[LIMIT_PIDS] = { "pids", KIND_COUNT, 64, 4194304, false,
			 "a whole number of processes from 64 to 4194304, or none" },
	[LIMIT_IO_WEIGHT] = { "io_weight", KIND_WEIGHT, 1, 10000, false,
			      "a whole number from 1 to 10000 (100 is an equal share)" },
	[LIMIT_DISK] = { "disk", KIND_SIZE, 256 * MIB, PIB, false,
			 "a size from 256M, such as 500G, or none" },
	[LIMIT_NESTING] = { "nesting", KIND_FLAG, 0, 1, false,
			    "yes (Docker and Podman inside) or no" },
};

#define LIMITS_KEYS "the keys are memory, memory_high, swap, cpu_weight, cpus, pids, io_weight, disk and nesting"

const char *limits_key_name(enum limit_key key)
{
	return key < LIMIT_COUNT ? limit_defs[key].name : "?";
}

int limits_key_find(const char *name, enum limit_key *out)
{
	for (size_t i = 0; i < LIMIT_COUNT; i++) {
		if (strcmp(name, limit_defs[i].name) == 0) {
			*out = (enum limit_key)i;
			return 0;
		}
	}
	return -EINVAL;
}

/* "16", "0.5", "2.25": thousandths of a CPU, at most three decimals. */
static int limits_parse_cpus(const char *text, uint64_t *out)
{
	uint64_t whole = 0, milli = 0, scale = 100;
	const char *p = text;

	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		whole = whole * 10 + (uint64_t)(*p - '0');
		if (whole > 1000000)
			return -ERANGE;
	}
	if (*p == '.') {
		if (p[1] < '0' || p[1] > '9')
			return -EINVAL;
		for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10) {
			if (scale == 0)
				return -EINVAL;
			milli += (uint64_t)(*p - '0') * scale;
		}
	}
	if (*p)
		return -EINVAL;
	*out = whole * 1000 + milli;
	return 0;
}

/* "75%": 1 to 100. */
static int limits_parse_percent(const char *text, uint64_t *out)
{
	char digits[8];
	size_t len = strlen(text);

	if (len < 2 || len > sizeof(digits) || text[len - 1] != '%')
		return -EINVAL;
	memcpy(digits, text, len - 1);
	digits[len - 1] = '\0';
	if (parse_uint_max(digits, 100, out) < 0 || *out == 0)
		return -EINVAL;
	return 0;
}

static int limits_parse_value(const struct limit_def *def, const char *text, uint64_t *value,
			      bool *percent)
{
	int ret;

	*percent = false;
	if (def->kind == KIND_FLAG) {
		if (strcmp(text, "yes") && strcmp(text, "no"))
			return -EINVAL;
		*value = strcmp(text, "yes") == 0;
		return 0;
	}
	if (strcmp(text, "none") == 0 && def->kind != KIND_WEIGHT) {
		*value = LIMIT_NONE;
		return 0;
	}
	if (def->percent && strchr(text, '%')) {
		*percent = true;
		return limits_parse_percent(text, value);
	}
	switch (def->kind) {
	case KIND_SIZE:
		ret = parse_size(text, value);
		break;
	case KIND_CPUS:
		ret = limits_parse_cpus(text, value);
		break;
	default:
		ret = parse_uint_max(text, def->max, value);
		break;
	}
	if (ret < 0 || *value < def->min || *value > def->max)
		return -EINVAL;
	return 0;
}

int limits_parse_assignment(const char *text, struct limits *l, char *err, size_t errlen)
{
	char name[32];
	const char *eq = strchr(text, '=');
	const struct limit_def *def;
	enum limit_key key;
	uint64_t value;
	bool percent;

	if (!eq || (size_t)(eq - text) >= sizeof(name)) {
		set_error(err, errlen, "a limit is KEY=VALUE, such as memory=64G; " LIMITS_KEYS);
		return -EINVAL;
	}
	memcpy(name, text, (size_t)(eq - text));
	name[eq - text] = '\0';
	if (limits_key_find(name, &key) < 0) {
		set_error(err, errlen, "there is no limit called \"%.31s\"; " LIMITS_KEYS,
			  name);
		return -EINVAL;
	}
	def = &limit_defs[key];
	if (limits_parse_value(def, eq + 1, &value, &percent) < 0) {
		set_error(err, errlen, "%s=%.40s: %s is %s", def->name, eq + 1, def->name, def->help);
		return -EINVAL;
	}
	l->value[key] = value;
	l->given |= 1u << key;
	if (percent)
		l->percent |= 1u << key;
	else
		l->percent &= ~(1u << key);
	return 0;
}

int limits_parse_list(const char *text, struct limits *l, char *err, size_t errlen)
{
	struct limits work = *l;
	char word[96];
	const char *p = text;

	while (*p) {
		size_t n = strcspn(p, " \t,");

		if (n == 0) {
			p++;
			continue;
		}
		if (n >= sizeof(word)) {
			set_error(err, errlen, "a limit is KEY=VALUE, such as memory=64G, and short");
			return -EINVAL;
		}
		memcpy(word, p, n);
		word[n] = '\0';
		if (limits_parse_assignment(word, &work, err, errlen) < 0)
			return -EINVAL;
		p += n;
	}
	*l = work;
	return 0;
}

/* The largest unit that divides bytes exactly: what parse_size() reads back. */
static void limits_format_size(uint64_t bytes, char *buf, size_t len)
{
	static const char units[] = "TGMK";
	uint64_t scale = 1024ull * 1024 * 1024 * 1024;

	for (size_t i = 0; units[i]; i++, scale /= 1024) {
		if (bytes && bytes % scale == 0) {
			snprintf(buf, len, "%" PRIu64 "%c", bytes / scale, units[i]);
			return;
		}
	}
	snprintf(buf, len, "%" PRIu64, bytes);
}

void limits_format_value(const struct limits *l, enum limit_key key, char *buf, size_t len)
{
	uint64_t v = l->value[key];

	if (!limits_given(l, key)) {
		snprintf(buf, len, "%s", "");
		return;
	}
	if (v == LIMIT_NONE) {
		snprintf(buf, len, "none");
		return;
	}
	if (l->percent & (1u << key)) {
		snprintf(buf, len, "%" PRIu64 "%%", v);
		return;
	}
	switch (limit_defs[key].kind) {
	case KIND_FLAG:
		snprintf(buf, len, "%s", v ? "yes" : "no");
		break;
	case KIND_SIZE:
		limits_format_size(v, buf, len);
		break;
	case KIND_CPUS:
		if (v % 1000 == 0)
			snprintf(buf, len, "%" PRIu64, v / 1000);
		else
			snprintf(buf, len, "%" PRIu64 ".%03" PRIu64, v / 1000, v % 1000);
		/* "0.500" reads back the same as "0.5"; show the short form. */
		for (size_t n = strlen(buf); n > 0 && strchr(buf, '.') && buf[n - 1] == '0'; n--)
			buf[n - 1] = '\0';
		break;
	default:
		snprintf(buf, len, "%" PRIu64, v);
		break;
	}
}

void limits_unset(struct limits *l, enum limit_key key)
{
	l->given &= ~(1u << key);
	l->percent &= ~(1u << key);
	l->value[key] = 0;
}

void limits_merge(const struct limits *base, const struct limits *over, struct limits *out)
{
	struct limits merged = *base;

	for (size_t i = 0; i < LIMIT_COUNT; i++) {
		uint32_t bit = 1u << i;

		if (!(over->given & bit))
			continue;
		merged.value[i] = over->value[i];
		merged.given |= bit;
		merged.percent = (merged.percent & ~bit) | (over->percent & bit);
	}
	*out = merged;
}

uint64_t limits_resolve(const struct limits *l, enum limit_key key, uint64_t host_memory)
{
	uint64_t v = l->value[key];

	if (!limits_given(l, key) || v == LIMIT_NONE)
		return LIMIT_NONE;
	if (l->percent & (1u << key)) {
		v = host_memory / 100 * v + host_memory % 100 * v / 100;
		return v < limit_defs[key].min ? limit_defs[key].min : v;
	}
	return v;
}

bool limits_flag(const struct limits *l, enum limit_key key, bool dflt)
{
	return limits_given(l, key) ? l->value[key] != 0 : dflt;
}

int limits_check(const struct limits *l, uint64_t host_memory, char *err, size_t errlen)
{
	uint64_t hard = limits_resolve(l, LIMIT_MEMORY, host_memory);
	uint64_t soft = limits_resolve(l, LIMIT_MEMORY_HIGH, host_memory);

	if (hard != LIMIT_NONE && soft != LIMIT_NONE && soft > hard) {
		set_error(err, errlen, "memory_high (the level where the container is slowed) must not be above memory (where the kernel kills inside it)");
		return -EINVAL;
	}
	return 0;
}
