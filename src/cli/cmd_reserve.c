/* SPDX-License-Identifier: MIT */
/*
 * gpubox reserve, reservations, release, and admin reserve and release:
 * GPUs made one member's alone for a time.  Durations are read here
 * (timeparse.h), so that a mistyped one is a usage error before anything
 * is asked; the agent gets seconds, checks every bound and decides.
 *
 * A request with --wait that cannot be granted now is queued, and the
 * command returns at once with its id: the agent serves the queue in
 * order of arrival, whether or not anyone is still connected.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "cli.h"
#include "strutil.h"
#include "timeparse.h"

#include "banned.h"

static const char *cmd_reserve_string(json_t *obj, const char *key, const char *fallback)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s && *s ? s : fallback;
}

/* A positive whole number no larger than max, or -EINVAL. */
static int cmd_reserve_number(const char *text, long long max, long long *out)
{
	uint32_t n;

	if (parse_uint32(text, &n) < 0 || n == 0 || n > max)
		return -EINVAL;
	*out = n;
	return 0;
}

static int cmd_reserve_seconds(const struct cli_command *self, const char *option, const char *text,
			       long long *seconds)
{
	if (parse_duration(text, seconds) < 0)
		return cli_usage_error(self, "%s: \"%s\" is not a duration longer than nothing "
				       "(try 30m, 4h, 2d or 1d12h)", option, text), -EINVAL;
	return 0;
}

/* "GPUs 1 and 3" from a reservation's "gpus", or "2 GPUs" while it waits
 * for any. */
static void cmd_reserve_gpus_text(json_t *r, char *buf, size_t len)
{
	json_t *gpus = json_object_get(r, "gpus"), *g;
	size_t n = json_array_size(gpus), i, used;

	if (n == 0) {
		json_int_t count = json_integer_value(json_object_get(r, "count"));

		snprintf(buf, len, "any %" JSON_INTEGER_FORMAT " GPU%s", count, count == 1 ? "" : "s");
		return;
	}
	used = (size_t)snprintf(buf, len, "GPU%s ", n == 1 ? "" : "s");
	json_array_foreach(gpus, i, g) {
		if (used >= len)
			break;
		used += (size_t)snprintf(buf + used, len - used, "%s%" JSON_INTEGER_FORMAT,
					 i == 0 ? "" : i + 1 == n ? " and " : ", ", json_integer_value(g));
	}
}

static void cmd_reserve_time(json_t *ms, char *buf, size_t len)
{
	format_time(json_integer_value(ms) / 1000, buf, len);
}

/* What the agent answered about one reservation, in sentences. */
static void cmd_reserve_print(json_t *r)
{
	char gpus[CLI_SENTENCE_MAX], until[CLI_TIME_TEXT_MAX], span[CLI_DURATION_TEXT_MAX];
	json_int_t id = json_integer_value(json_object_get(r, "id"));

	cmd_reserve_gpus_text(r, gpus, sizeof(gpus));
	format_duration(json_integer_value(json_object_get(r, "seconds")), span, sizeof(span));
	if (strcmp(cmd_reserve_string(r, "state", ""), "active") == 0) {
		cmd_reserve_time(json_object_get(r, "until_ms"), until, sizeof(until));
		printf("Reservation %" JSON_INTEGER_FORMAT ": %s reserved for ", id, gpus);
		output_sanitized(stdout, cmd_reserve_string(r, "member", "?"));
		printf(" alone until %s.\n", until);
		printf("No other member's container has them meanwhile; gpubox release %" JSON_INTEGER_FORMAT
		       " gives them back early.\n", id);
		return;
	}
	printf("Reservation %" JSON_INTEGER_FORMAT " waits (number %" JSON_INTEGER_FORMAT
	       " in the queue) for %s, to hold for %s once granted.\n", id,
	       json_integer_value(json_object_get(r, "position")), gpus, span);
	printf("It is granted as soon as they are free, in order of arrival: see gpubox reservations; "
	       "gpubox release %" JSON_INTEGER_FORMAT " cancels it.\n", id);
}

/* Call op and show the answer: JSON, or the reservation in sentences. */
static int cmd_reserve_call(struct cli *cli, const struct cli_options *opts, const char *op,
			    json_t *args)
{
	__do_json json_t *result = NULL;
	int ret = client_call_shown(cli, opts, op, args, &result);

	if (ret != CLI_EXIT_OK || !result)
		return ret;
	cmd_reserve_print(json_object_get(result, "reservation"));
	return CLI_EXIT_OK;
}

static int cmd_reserve_extend(struct cli *cli, const struct cli_command *self,
			      const struct cli_options *opts, const char *duration)
{
	long long id, seconds;

	if (opts->gpu || opts->duration || opts->wait)
		return cli_usage_error(self, "--extend ID DURATION takes no --gpu, --for or --wait");
	if (cmd_reserve_number(opts->extend, LLONG_MAX, &id) < 0)
		return cli_usage_error(self, "--extend: \"%s\" is not a reservation's id (see gpubox reservations)",
				       opts->extend);
	if (!duration)
		return cli_usage_error(self, "--extend ID DURATION: say how much longer, such as 2h");
	if (cmd_reserve_seconds(self, "--extend", duration, &seconds) < 0)
		return CLI_EXIT_USAGE;
	return cmd_reserve_call(cli, opts, "reserve_extend",
				json_pack("{s:I, s:I}", "id", (json_int_t)id, "seconds", (json_int_t)seconds));
}

/* reserve [N | --gpu LIST] [--for DURATION] [--wait], for member (NULL: the caller). */
static int cmd_reserve_ask(struct cli *cli, const struct cli_command *self,
			   const struct cli_options *opts, const char *member, const char *count)
{
	long long n = 0, seconds = 0;
	json_t *args;

	if (count && opts->gpu)
		return cli_usage_error(self, "ask for a number of GPUs or name them with --gpu, not both");
	if (count && cmd_reserve_number(count, 64, &n) < 0)
		return cli_usage_error(self, "\"%s\" is not a number of GPUs from 1 to 64", count);
	if (opts->duration && cmd_reserve_seconds(self, "--for", opts->duration, &seconds) < 0)
		return CLI_EXIT_USAGE;
	args = json_object();
	if (!args)
		return CLI_EXIT_FAILED;
	if (member)
		json_object_set_new(args, "member", json_string(member));
	if (n)
		json_object_set_new(args, "count", json_integer(n));
	if (opts->gpu)
		json_object_set_new(args, "gpus", json_string(opts->gpu));
	if (seconds)
		json_object_set_new(args, "seconds", json_integer(seconds));
	if (opts->wait)
		json_object_set_new(args, "wait", json_true());
	return cmd_reserve_call(cli, opts, "reserve", args);
}

int cmd_reserve(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	static const struct cli_args spec = {
		.options = CLI_OPT_JSON | CLI_OPT_GPU | CLI_OPT_FOR | CLI_OPT_WAIT | CLI_OPT_EXTEND,
		.min = 0, .max = 1,
		.wrong_count = "reserve takes one number of GPUs at most (or --extend ID DURATION)" };
	struct cli_options opts;
	const char *word;
	int status;

	if (cli_parse_args(cli, self, argc, argv, &spec, &opts, &status) < 0)
		return status;
	word = opts.first_arg < argc ? argv[opts.first_arg] : NULL;
	if (opts.extend)
		return cmd_reserve_extend(cli, self, &opts, word);
	return cmd_reserve_ask(cli, self, &opts, NULL, word);
}

/* ---- the list -------------------------------------------------------------- */

static json_t *cmd_reservations_row(json_t *r)
{
	char gpus[CLI_SENTENCE_MAX], since[CLI_TIME_TEXT_MAX], until[CLI_TIME_TEXT_MAX];
	char state[32], span[CLI_DURATION_TEXT_MAX];
	bool active = strcmp(cmd_reserve_string(r, "state", ""), "active") == 0;
	const char *member = cmd_reserve_string(r, "member", "(another member)");

	cmd_reserve_gpus_text(r, gpus, sizeof(gpus));
	format_duration(json_integer_value(json_object_get(r, "seconds")), span, sizeof(span));
	cmd_reserve_time(json_object_get(r, active ? "start_ms" : "created_ms"), since, sizeof(since));
	if (active) {
		cmd_reserve_time(json_object_get(r, "until_ms"), until, sizeof(until));
		snprintf(state, sizeof(state), "active");
	} else {
		snprintf(until, sizeof(until), "(%s once granted)", span);
		snprintf(state, sizeof(state), "queued #%" JSON_INTEGER_FORMAT,
			 json_integer_value(json_object_get(r, "position")));
	}
	return json_pack("{s:O, s:s, s:s, s:s, s:s, s:s}", "ID", json_object_get(r, "id"),
			 "HOLDER", member, "GPUS", gpus, "STATE", state, "SINCE", since, "UNTIL", until);
}

int cmd_reservations(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	static const char *const columns[] = { "ID", "HOLDER", "GPUS", "STATE", "SINCE", "UNTIL", NULL };
	static const struct cli_args spec = { .options = CLI_OPT_JSON };
	__do_json json_t *result = NULL, *rows = json_array();
	struct cli_options opts;
	json_t *r;
	size_t i;
	int ret, status;

	if (cli_parse_args(cli, self, argc, argv, &spec, &opts, &status) < 0)
		return status;
	ret = client_call_shown(cli, &opts, "reservations", NULL, &result);
	if (ret != CLI_EXIT_OK || !result)
		return ret;
	json_array_foreach(json_object_get(result, "reservations"), i, r)
		json_array_append_new(rows, cmd_reservations_row(r));
	output_table(rows, columns, "No GPU is reserved on this server, and no request waits.");
	return CLI_EXIT_OK;
}

/* ---- release ----------------------------------------------------------------- */

static int cmd_release_id(struct cli *cli, const struct cli_command *self,
			  const struct cli_options *opts, const char *word)
{
	__do_json json_t *result = NULL;
	json_t *args = NULL, *id;
	long long n;
	size_t i;
	int ret;

	if (word && cmd_reserve_number(word, LLONG_MAX, &n) < 0)
		return cli_usage_error(self, "\"%s\" is not a reservation's id (see gpubox reservations)", word);
	if (word)
		args = json_pack("{s:I}", "id", (json_int_t)n);
	ret = client_call_shown(cli, opts, "release", args, &result);
	if (ret != CLI_EXIT_OK || !result)
		return ret;
	json_array_foreach(json_object_get(result, "released"), i, id)
		printf("Reservation %" JSON_INTEGER_FORMAT " ended.\n", json_integer_value(id));
	printf("Its GPUs are back in the containers of every member who has them.\n");
	return CLI_EXIT_OK;
}

int cmd_release(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	static const struct cli_args spec = { .options = CLI_OPT_JSON, .min = 0, .max = 1 };
	struct cli_options opts;
	int status;

	if (cli_parse_args(cli, self, argc, argv, &spec, &opts, &status) < 0)
		return status;
	return cmd_release_id(cli, self, &opts, opts.first_arg < argc ? argv[opts.first_arg] : NULL);
}

/* ---- admin ------------------------------------------------------------------- */

int cmd_admin_reserve(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	static const struct cli_args spec = {
		.options = CLI_OPT_JSON | CLI_OPT_GPU | CLI_OPT_FOR | CLI_OPT_WAIT, .min = 1, .max = 2,
		.wrong_count = "admin reserve takes the member, then a number of GPUs at most" };
	struct cli_options opts;
	int status;

	if (cli_parse_args(cli, self, argc, argv, &spec, &opts, &status) < 0)
		return status;
	return cmd_reserve_ask(cli, self, &opts, argv[opts.first_arg],
			       opts.first_arg + 1 < argc ? argv[opts.first_arg + 1] : NULL);
}

int cmd_admin_release(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	static const struct cli_args spec = { .options = CLI_OPT_JSON, .min = 1, .max = 1,
		.wrong_count = "admin release takes the id of one reservation (see gpubox reservations)" };
	struct cli_options opts;
	int status;

	if (cli_parse_args(cli, self, argc, argv, &spec, &opts, &status) < 0)
		return status;
	return cmd_release_id(cli, self, &opts, argv[opts.first_arg]);
}
