/* SPDX-License-Identifier: MIT */
/*
 * gpubox log and gpubox admin log: the audit log, what was asked of this
 * server's agent, by whom, and what came of it.  Whose entries a caller
 * gets is the agent's decision, from who asks (ops_audit.c): nothing
 * here can widen it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "cli.h"
#include "strutil.h"
#include "timeparse.h"

#include "banned.h"

#define CMD_LOG_LIMIT_MAX 10000u

/* The request's arguments from the options; -EINVAL after a usage error. */
static int cmd_log_args(const struct cli_command *self, const struct cli_options *opts, bool own,
			json_t *args)
{
	long long since;
	uint32_t limit;

	if (opts->since) {
		if (cmd_monitor_time(self, "since", opts->since, true, &since) < 0)
			return -EINVAL;
		json_object_set_new(args, "since", json_integer(since));
	}
	if (opts->limit) {
		if (parse_uint32(opts->limit, &limit) < 0 || limit < 1 || limit > CMD_LOG_LIMIT_MAX)
			return cli_usage_error(self, "--limit takes a number of entries from 1 to %u, not \"%s\"",
					       CMD_LOG_LIMIT_MAX, opts->limit), -EINVAL;
		json_object_set_new(args, "limit", json_integer(limit));
	}
	if (opts->member)
		json_object_set_new(args, "member", json_string(opts->member));
	if (own)
		json_object_set_new(args, "own", json_true());
	return 0;
}

/* "alice", "alice (inside)" for a request from the member's container. */
static char *cmd_log_by(json_t *entry)
{
	const char *by = json_string_value(json_object_get(entry, "by"));
	char *text = NULL;

	if (asprintf(&text, "%s%s", by ? by : "?",
		     json_is_true(json_object_get(entry, "guest")) ? " (inside)" : "") < 0)
		return NULL;
	return text;
}

/* "ok", or the code and the sentence: "denied: you may act only on ...". */
static char *cmd_log_result(json_t *entry)
{
	const char *result = json_string_value(json_object_get(entry, "result"));
	const char *error = json_string_value(json_object_get(entry, "error"));
	char *text = NULL;

	if (asprintf(&text, "%s%s%s", result ? result : "?", error ? ": " : "", error ? error : "") < 0)
		return NULL;
	return text;
}

static json_t *cmd_log_row(json_t *entry)
{
	__do_free char *by = cmd_log_by(entry), *result = cmd_log_result(entry);
	char when[CLI_TIME_TEXT_MAX];
	const char *target = json_string_value(json_object_get(entry, "target"));

	format_time(json_integer_value(json_object_get(entry, "time")) / 1000, when, sizeof(when));
	return json_pack("{s:s, s:s, s:O, s:s, s:s}", "TIME", when, "BY", by ? by : "?",
			 "OP", json_object_get(entry, "op"), "TARGET", target ? target : "-",
			 "RESULT", result ? result : "?");
}

static int cmd_log_run(struct cli *cli, const struct cli_command *self, int argc, char **argv,
		       unsigned options, bool own)
{
	static const char *const columns[] = { "TIME", "BY", "OP", "TARGET", "RESULT", NULL };
	const struct cli_args spec = { .options = options };
	__do_json json_t *result = NULL, *rows = json_array(), *args = json_object();
	struct cli_options opts;
	json_t *entry;
	size_t i;
	int ret, status;

	if (cli_parse_args(cli, self, argc, argv, &spec, &opts, &status) < 0)
		return status;
	if (cmd_log_args(self, &opts, own, args) < 0)
		return CLI_EXIT_USAGE;
	ret = client_call_shown(cli, &opts, "log", json_incref(args), &result);
	if (ret != CLI_EXIT_OK || !result)
		return ret;
	json_array_foreach(json_object_get(result, "entries"), i, entry)
		json_array_append_new(rows, cmd_log_row(entry));
	output_table(rows, columns, opts.since ? "Nothing was recorded in that period."
					       : "Nothing is recorded.");
	return CLI_EXIT_OK;
}

int cmd_log(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	return cmd_log_run(cli, self, argc, argv, CLI_OPT_JSON | CLI_OPT_SINCE | CLI_OPT_LIMIT, true);
}

int cmd_admin_log(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	return cmd_log_run(cli, self, argc, argv,
			   CLI_OPT_JSON | CLI_OPT_SINCE | CLI_OPT_LIMIT | CLI_OPT_MEMBER, false);
}
