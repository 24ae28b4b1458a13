/* SPDX-License-Identifier: MIT */
/*
 * gpubox admin limits set|rm|ls: a member's share of the server, and the
 * "Limits:" lines of gpubox status.  The agent checks every value
 * (reslimit.h), records it and changes a running container at once; this
 * file shapes the requests and prints the answers.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "cli.h"
#include "reslimit.h"
#include "timeparse.h"

#include "banned.h"

/* "1.5G": a size for people, one decimal. */
static void cmd_limits_size(uint64_t bytes, char *buf, size_t len)
{
	static const char units[] = "KMGTP";
	double v = (double)bytes;
	size_t u = 0;

	if (bytes < 1024) {
		snprintf(buf, len, "%" PRIu64 "B", bytes);
		return;
	}
	for (v /= 1024; v >= 1024 && u + 1 < sizeof(units) - 1; v /= 1024)
		u++;
	snprintf(buf, len, "%.1f%c", v, units[u]);
}

static const char *cmd_limits_value(json_t *limits, const char *key)
{
	const char *v = json_string_value(json_object_get(limits, key));

	return v ? v : "none";
}

/* "last: python3 (uid 1000) at 2026-12-02 12:31:05". */
static void cmd_limits_print_kill(json_t *kill)
{
	time_t when = (time_t)json_integer_value(json_object_get(kill, "time"));
	char stamp[32] = "?";
	struct tm tm;

	if (!json_is_object(kill))
		return;
	if (localtime_r(&when, &tm))
		strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
	printf("           last: ");
	output_sanitized(stdout, json_string_value(json_object_get(kill, "command")) ?
				 json_string_value(json_object_get(kill, "command")) : "?");
	printf(" (uid %" JSON_INTEGER_FORMAT ") at %s\n", json_integer_value(json_object_get(kill, "uid")),
	       stamp);
}

/* " until 2026-12-01 18:00" when until has an end for key. */
static void cmd_limits_print_until(json_t *until, const char *key)
{
	json_t *end = json_object_get(until, key);
	char when[64];

	if (!json_is_integer(end))
		return;
	format_time(json_integer_value(end), when, sizeof(when));
	printf(" until %s", when);
}

/* ", then 32G" or ", then the server's default" when then has key. */
static void cmd_limits_print_then(json_t *then, const char *key)
{
	const char *after = json_string_value(json_object_get(then, key));

	if (!after)
		return;
	printf(", then ");
	output_sanitized(stdout, strcmp(after, "default") == 0 ? "the server's default" : after);
}

/* "Temporary: memory until 2026-12-01 18:00, then 32G; pids until ...". */
static void cmd_limits_print_ends(json_t *until, json_t *then)
{
	const char *key;
	json_t *end;
	bool first = true;

	json_object_foreach(until, key, end) {
		if (!json_is_integer(end))
			continue;
		printf("%s", first ? "Temporary: " : "; ");
		output_sanitized(stdout, key);
		cmd_limits_print_until(until, key);
		cmd_limits_print_then(then, key);
		first = false;
	}
	if (!first)
		fputc('\n', stdout);
}

void cmd_limits_print_status(json_t *result)
{
	json_t *limits = json_object_get(result, "limits");
	json_t *usage = json_object_get(result, "usage");
	json_t *oom = json_object_get(usage, "oom_kills");
	char used[32];

	if (!json_is_object(limits))
		return;
	printf("Memory:    ");
	if (json_is_object(usage)) {
		cmd_limits_size((uint64_t)json_integer_value(json_object_get(usage, "memory_bytes")), used,
				sizeof(used));
		printf("%s used of ", used);
	}
	output_sanitized(stdout, cmd_limits_value(limits, "memory"));
	if (json_is_integer(json_object_get(limits, "memory_bytes")) &&
	    strchr(cmd_limits_value(limits, "memory"), '%')) {
		cmd_limits_size((uint64_t)json_integer_value(json_object_get(limits, "memory_bytes")), used,
				sizeof(used));
		printf(" of the server (%s)", used);
	}
	fputc('\n', stdout);
	if (json_integer_value(oom) > 0)
		printf("           %" JSON_INTEGER_FORMAT " process%s killed for the memory limit since the start\n",
		       json_integer_value(oom), json_integer_value(oom) == 1 ? " was" : "es were");
	cmd_limits_print_kill(json_object_get(usage, "last_oom_kill"));
	printf("Processes: ");
	if (json_is_object(usage))
		printf("%" JSON_INTEGER_FORMAT " of ", json_integer_value(json_object_get(usage, "pids")));
	output_sanitized(stdout, cmd_limits_value(limits, "pids"));
	printf("\nCPU:       weight ");
	output_sanitized(stdout, json_string_value(json_object_get(limits, "cpu_weight")) ?
				 cmd_limits_value(limits, "cpu_weight") : "100");
	if (strcmp(cmd_limits_value(limits, "cpus"), "none") == 0) {
		printf(", no cap");
	} else {
		printf(", at most ");
		output_sanitized(stdout, cmd_limits_value(limits, "cpus"));
		printf(" CPUs");
	}
	printf("\nDisk:      ");
	if (json_is_integer(json_object_get(usage, "disk_bytes"))) {
		cmd_limits_size((uint64_t)json_integer_value(json_object_get(usage, "disk_bytes")), used,
				sizeof(used));
		printf("%s used of ", used);
	}
	output_sanitized(stdout, cmd_limits_value(limits, "disk"));
	fputc('\n', stdout);
	if (json_is_string(json_object_get(limits, "nesting"))) {
		bool on = strcmp(cmd_limits_value(limits, "nesting"), "yes") == 0;

		printf("Nesting:   %s\n", on ? "yes (Docker and Podman inside)" :
			"no (Docker and Podman inside need it: ask an admin)");
	}
	cmd_limits_print_ends(json_object_get(result, "limits_until"), json_object_get(result, "limits_then"));
}

/* One line per key: "memory  64G  (this member's own)", and for a
 * temporary value "memory  128G  (this member's own) until 2026-12-01
 * 18:00, then 32G". */
static void cmd_limits_print(json_t *limits, json_t *origin, json_t *until, json_t *then,
			     const char *indent)
{
	const char *key;
	json_t *value;

	json_object_foreach(limits, key, value) {
		const char *from = json_string_value(json_object_get(origin, key));

		if (!json_is_string(value))
			continue;
		printf("%s%-12s ", indent, key);
		output_sanitized(stdout, json_string_value(value));
		if (from)
			printf("%s", strcmp(from, "member") == 0 ? "  (this member's own)" : "  (server default)");
		cmd_limits_print_until(until, key);
		cmd_limits_print_then(then, key);
		fputc('\n', stdout);
	}
}
/* What applies only at the container's next start, and why. */
static void cmd_limits_print_next_start(const json_t *keys)
{
	size_t i;
	json_t *key;

	json_array_foreach(keys, i, key) {
		const char *name = json_string_value(key);

		if (name && strcmp(name, "nesting") == 0)
			printf("nesting changes the container's confinement: it applies at the container's next start\n");
		else if (name && strcmp(name, "disk") == 0)
			printf("disk is the size of the layer's own file system here: it is resized at the container's next start\n");
	}
}


static int cmd_limits_answer(struct cli *cli, const struct cli_options *opts, const char *op,
			     json_t *args)
{
	__do_json json_t *result = NULL;
	int ret = client_call_shown(cli, opts, op, args, &result);

	if (ret != CLI_EXIT_OK || !result)
		return ret;
	printf("The limits of ");
	output_sanitized(stdout, json_string_value(json_object_get(result, "member")));
	printf(" are now%s:\n", json_is_true(json_object_get(result, "applied")) ?
				" (in the running container too)" : "");
	cmd_limits_print(json_object_get(result, "limits"), NULL, json_object_get(result, "limits_until"),
			 json_object_get(result, "limits_then"), "  ");
	cmd_limits_print_next_start(json_object_get(result, "next_start"));
	return CLI_EXIT_OK;
}

/* The assignments of argv, one text for the agent: "memory=64G cpus=16". */
static int cmd_limits_join(char **argv, int first, int argc, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (int i = first; i < argc; i++) {
		int n = snprintf(buf + used, len - used, "%s%s", used ? " " : "", argv[i]);

		if (n < 0 || (size_t)n >= len - used || strpbrk(argv[i], " \t,"))
			return -1;
		used += (size_t)n;
	}
	return 0;
}

/* --until TIME as unix seconds into args; a usage error (printed) when
 * it does not read or has passed. */
static int cmd_limits_until(const struct cli_command *self, const char *text, json_t *args)
{
	long long until;
	int ret;

	if (!text || !args)
		return 0;
	ret = parse_until(text, (long long)time(NULL), &until);
	if (ret == -ERANGE)
		return cli_usage_error(self, "--until %s has passed: a temporary limit ends ahead", text);
	if (ret < 0)
		return cli_usage_error(self, "--until takes an end such as 8h, 3d, 18:00, 2026-12-01 or "
				       "2026-12-01T18:00, not \"%s\"", text);
	return json_object_set_new(args, "until", json_integer(until)) < 0 ? CLI_EXIT_FAILED : 0;
}

static int cmd_limits_set(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	static const struct cli_args spec = { .options = CLI_OPT_JSON | CLI_OPT_UNTIL, .min = 2, .max = 9,
		.wrong_count = "name the member and at least one KEY=VALUE, such as memory=64G" };
	struct cli_options opts;
	json_t *args;
	char text[512];
	int status;

	if (cli_parse_args(cli, self, argc, argv, &spec, &opts, &status) < 0)
		return status;
	if (cmd_limits_join(argv, opts.first_arg + 1, argc, text, sizeof(text)) < 0)
		return cli_usage_error(self, "each limit is one word KEY=VALUE, such as memory=64G");
	args = json_pack("{s:s, s:s}", "member", argv[opts.first_arg], "set", text);
	status = cmd_limits_until(self, opts.until, args);
	if (status != 0) {
		json_decref(args);
		return status;
	}
	return cmd_limits_answer(cli, &opts, "limits_set", args);
}

static int cmd_limits_rm(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	static const struct cli_args spec = { .options = CLI_OPT_JSON, .min = 2, .max = 2,
		.wrong_count = "name the member and one key, such as memory" };
	struct cli_options opts;
	int status;

	if (cli_parse_args(cli, self, argc, argv, &spec, &opts, &status) < 0)
		return status;
	return cmd_limits_answer(cli, &opts, "limits_rm",
				 json_pack("{s:s, s:s}", "member", argv[opts.first_arg], "key",
					   argv[opts.first_arg + 1]));
}

static int cmd_limits_ls(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	static const struct cli_args spec = { .options = CLI_OPT_JSON, .min = 0, .max = 1 };
	__do_json json_t *result = NULL;
	struct cli_options opts;
	json_t *m;
	size_t i;
	int ret, status;

	if (cli_parse_args(cli, self, argc, argv, &spec, &opts, &status) < 0)
		return status;
	ret = client_call_shown(cli, &opts, "limits_ls",
				opts.first_arg < argc ? json_pack("{s:s}", "member", argv[opts.first_arg]) : NULL,
				&result);
	if (ret != CLI_EXIT_OK || !result)
		return ret;
	printf("Server defaults:\n");
	cmd_limits_print(json_object_get(result, "defaults"), NULL, NULL, NULL, "  ");
	json_array_foreach(json_object_get(result, "members"), i, m) {
		fputc('\n', stdout);
		output_sanitized(stdout, json_string_value(json_object_get(m, "member")));
		printf(":\n");
		cmd_limits_print(json_object_get(m, "limits"), json_object_get(m, "origin"),
				 json_object_get(m, "until"), json_object_get(m, "then"), "  ");
	}
	return CLI_EXIT_OK;
}

static const struct cli_command cmd_limits_commands[] = {
	{ "set", cmd_limits_set, true,
	  "admin limits set MEMBER KEY=VALUE... [--until TIME] [--json]",
	  "Give MEMBER their own limits over the server's defaults: memory=64G (or 50%, of the "
	  "server's memory; past it the kernel kills inside the container), memory_high=56G (past "
	  "it the container is slowed and reclaimed), swap=8G, cpu_weight=100 (share under "
	  "contention, 1 to 10000), cpus=16 (a hard cap; 0.5 is half a CPU), pids=20000, "
	  "io_weight=100, disk=500G; any of them may be none; and nesting=yes or no (Docker and "
	  "Podman inside; a change applies at the next start).  Memory, CPU, processes and I/O "
	  "change in the running container at once; every value is kept for later starts.  "
	  "With --until TIME (8h, 3d, 18:00, 2026-12-01, 2026-12-01T18:00) the values are "
	  "temporary: at that time each gives way to the member's own value before it, or to "
	  "the server's default, in the running container too, also when the agent was down "
	  "then; the member is told in the hour before, on their next command." },
	{ "rm", cmd_limits_rm, true,
	  "admin limits rm MEMBER KEY [--json]",
	  "Take MEMBER's own value for KEY away: the server's default applies again." },
	{ "ls", cmd_limits_ls, true,
	  "admin limits ls [MEMBER] [--json]",
	  "Show the server's default limits (key limits in gpubox.conf) and each member's, "
	  "with where each value comes from." },
	{ NULL, NULL, false, NULL, NULL },
};

int cmd_admin_limits(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	return cli_run_group(cli, self, cmd_limits_commands, argc, argv);
}
