/* SPDX-License-Identifier: MIT */
/*
 * gpubox ps, gpus, history, usage: who uses which GPU, now and before.
 * Times are read here (timeparse.h) so that a mistyped one is a usage
 * error before anything is asked; the agent gets unix milliseconds.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "cli.h"
#include "strutil.h"
#include "timeparse.h"

#include "banned.h"

/* Ask the agent; print its answer as JSON when asked to.  Returns the exit
 * status when that is all, or -1 when the caller is to show *result. */
static int cmd_monitor_ask(struct cli *cli, const char *op, json_t *args, bool json,
			   json_t **result)
{
	int ret = client_call(cli, op, args, result);

	if (ret < 0)
		return cli_exit_status(ret);
	if (json) {
		output_json(*result);
		return CLI_EXIT_OK;
	}
	return -1;
}

static void cmd_monitor_bytes(json_t *value, char *buf, size_t len)
{
	double v = (double)json_integer_value(value);

	if (!json_is_integer(value))
		snprintf(buf, len, "-");
	else if (v >= 1024.0 * 1024 * 1024)
		snprintf(buf, len, "%.1f GiB", v / (1024.0 * 1024 * 1024));
	else
		snprintf(buf, len, "%.0f MiB", v / (1024.0 * 1024));
}

static void cmd_monitor_percent(json_t *value, char *buf, size_t len)
{
	if (json_is_integer(value))
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT "%%", json_integer_value(value));
	else
		snprintf(buf, len, "-");
}

static void cmd_monitor_note(json_t *result)
{
	const char *note = json_string_value(json_object_get(result, "gpu_note"));

	if (note) {
		output_sanitized(stdout, note);
		fputc('\n', stdout);
	}
}

/* "IDLE": how long the process has held its GPU idle; the column is
 * there only when some process is idle. */
static void cmd_monitor_ps_idle(json_t *p, json_t *row)
{
	char idle[CLI_DURATION_TEXT_MAX] = "-";

	if (json_is_true(json_object_get(p, "idle")))
		format_duration(json_integer_value(json_object_get(p, "idle_seconds")), idle,
				sizeof(idle));
	json_object_set_new(row, "IDLE", json_string(idle));
}

static bool cmd_monitor_any_idle(json_t *processes)
{
	json_t *p;
	size_t i;

	json_array_foreach(processes, i, p)
		if (json_is_true(json_object_get(p, "idle")))
			return true;
	return false;
}

static json_t *cmd_monitor_ps_row(json_t *p, bool host_view, bool any_idle)
{
	char mem[CLI_BYTES_TEXT_MAX], sm[CLI_UNIT_TEXT_MAX], running[CLI_DURATION_TEXT_MAX];
	json_t *row;

	cmd_monitor_bytes(json_object_get(p, "mem_used"), mem, sizeof(mem));
	cmd_monitor_percent(json_object_get(p, "sm_util"), sm, sizeof(sm));
	format_duration(json_integer_value(json_object_get(p, "running_seconds")), running,
			sizeof(running));
	row = json_pack("{s:O, s:O, s:s, s:s, s:s, s:O}", "PID", json_object_get(p, "pid"),
			"GPU", json_object_get(p, "gpu"), "GPU MEMORY", mem, "SM", sm,
			"TIME", running, "COMMAND", json_object_get(p, "command"));
	if (row && any_idle)
		cmd_monitor_ps_idle(p, row);
	if (row && host_view) {
		const char *member = json_string_value(json_object_get(p, "member"));

		json_object_set(row, "HOST PID", json_object_get(p, "host_pid"));
		json_object_set_new(row, "MEMBER", json_string(member && *member ? member : "(host)"));
	}
	return row;
}

int cmd_ps(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	static const char *const columns[] = { "MEMBER", "PID", "HOST PID", "GPU", "GPU MEMORY",
					       "SM", "TIME", "IDLE", "COMMAND", NULL };
	static const struct cli_args spec = { .options = CLI_OPT_JSON | CLI_OPT_MEMBER };
	__do_json json_t *result = NULL, *rows = json_array();
	struct cli_options opts;
	json_t *p, *args;
	bool any_idle;
	size_t i;
	int ret, status;

	if (cli_parse_args(cli, self, argc, argv, &spec, &opts, &status) < 0)
		return status;
	args = opts.member ? json_pack("{s:s}", "member", opts.member) : NULL;
	ret = cmd_monitor_ask(cli, "ps", args, opts.json, &result);
	if (ret >= 0)
		return ret;
	cmd_monitor_note(result);
	any_idle = cmd_monitor_any_idle(json_object_get(result, "processes"));
	json_array_foreach(json_object_get(result, "processes"), i, p)
		json_array_append_new(rows, cmd_monitor_ps_row(p, !json_object_get(result, "member"),
							       any_idle));
	output_table(rows, columns, json_object_get(result, "member") ?
		     "No process of yours is using a GPU." : "No process is using a GPU.");
	return CLI_EXIT_OK;
}

/* " - idle 1h 5m": held at 0 % utilisation, for the longest. */
static void cmd_monitor_idle_text(json_t *gpu, FILE *out)
{
	char idle[CLI_DURATION_TEXT_MAX];

	format_duration(json_integer_value(json_object_get(gpu, "idle_seconds")), idle, sizeof(idle));
	fprintf(out, " - idle %s", idle);
}

static bool cmd_monitor_names_idle(json_t *gpu, json_t *name)
{
	json_t *idle;
	size_t i;

	json_array_foreach(json_object_get(gpu, "idle_members"), i, idle)
		if (json_equal(idle, name))
			return true;
	return false;
}

static char *cmd_monitor_names(json_t *names, json_t *gpu)
{
	size_t i, shown = json_array_size(names);
	json_int_t count = json_integer_value(json_object_get(gpu, "member_count"));
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	json_t *name;

	if (!out)
		return NULL;
	json_array_foreach(names, i, name)
		fprintf(out, "%s%s%s", i ? "," : "", json_string_value(name),
			cmd_monitor_names_idle(gpu, name) ? " (idle)" : "");
	if (count > (json_int_t)shown)
		fprintf(out, "%s%" JSON_INTEGER_FORMAT " other%s", shown ? " + " : "",
			count - (json_int_t)shown, count - (json_int_t)shown == 1 ? "" : "s");
	if (json_is_true(json_object_get(gpu, "host_processes")))
		fprintf(out, "%s(host)", count ? " + " : "");
	if (json_is_true(json_object_get(gpu, "idle")))
		cmd_monitor_idle_text(gpu, out);
	if (json_is_true(json_object_get(gpu, "lost")))
		fputs("LOST: the GPU fell off the bus", out);
	else if (json_is_true(json_object_get(gpu, "free")))
		fputs("free", out);
	if (!memstream_close(out)) {
		free(text);
		return NULL;
	}
	return text;
}

/* "bob until 2026-11-23 15:00:00" for a GPU's reservation; "" for none. */
static json_t *cmd_monitor_reserved(json_t *r)
{
	const char *member = json_string_value(json_object_get(r, "member"));
	char until[CLI_TIME_TEXT_MAX];

	if (!r)
		return json_string("");
	format_time(json_integer_value(json_object_get(r, "until_ms")) / 1000, until, sizeof(until));
	return json_sprintf("%s until %s", json_is_true(json_object_get(r, "yours")) ? "you" :
			    member ? member : "another member", until);
}

void cmd_monitor_cap(json_t *cap, const char *indent)
{
	const char *text = json_string_value(json_object_get(cap, "text"));

	if (!text)
		return;
	printf("%sgpu_cap: ", indent);
	output_sanitized(stdout, text);
	fputc('\n', stdout);
}

int cmd_gpus(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	static const char *const columns[] = { "GPU", "NAME", "UTIL", "MEMORY", "TEMP", "POWER",
					       "USED BY", "RESERVED", NULL };
	static const struct cli_args spec = { .options = CLI_OPT_JSON };
	__do_json json_t *result = NULL, *rows = json_array();
	struct cli_options opts;
	json_t *g;
	size_t i;
	int ret, status;

	if (cli_parse_args(cli, self, argc, argv, &spec, &opts, &status) < 0)
		return status;
	ret = cmd_monitor_ask(cli, "gpus", NULL, opts.json, &result);
	if (ret >= 0)
		return ret;
	cmd_monitor_note(result);
	json_array_foreach(json_object_get(result, "gpus"), i, g) {
		__do_free char *users = cmd_monitor_names(json_object_get(g, "members"), g);
		char util[CLI_UNIT_TEXT_MAX], used[CLI_BYTES_TEXT_MAX], total[CLI_BYTES_TEXT_MAX];
		char memory[2 * CLI_BYTES_TEXT_MAX + sizeof(" / ")];
		char temp[CLI_UNIT_TEXT_MAX], power[CLI_UNIT_TEXT_MAX];

		cmd_monitor_percent(json_object_get(g, "util"), util, sizeof(util));
		cmd_monitor_bytes(json_object_get(g, "mem_used"), used, sizeof(used));
		cmd_monitor_bytes(json_object_get(g, "mem_total"), total, sizeof(total));
		snprintf(memory, sizeof(memory), "%s / %s", used, total);
		if (json_is_integer(json_object_get(g, "temperature")))
			snprintf(temp, sizeof(temp), "%" JSON_INTEGER_FORMAT "C",
				 json_integer_value(json_object_get(g, "temperature")));
		else
			snprintf(temp, sizeof(temp), "-");
		if (json_is_number(json_object_get(g, "power_w")))
			snprintf(power, sizeof(power), "%.0fW",
				 json_number_value(json_object_get(g, "power_w")));
		else
			snprintf(power, sizeof(power), "-");
		json_array_append_new(rows, json_pack("{s:O, s:O, s:s, s:s, s:s, s:s, s:s, s:o}",
			"GPU", json_object_get(g, "index"), "NAME", json_object_get(g, "name"),
			"UTIL", util, "MEMORY", memory, "TEMP", temp, "POWER", power,
			"USED BY", users ? users : "?",
			"RESERVED", cmd_monitor_reserved(json_object_get(g, "reservation"))));
	}
	if (json_object_get(result, "gpu_ok") && json_is_true(json_object_get(result, "gpu_ok")))
		output_table(rows, columns, "This server has no GPU.");
	cmd_monitor_cap(json_object_get(result, "gpu_cap"), "");
	return CLI_EXIT_OK;
}

int cmd_monitor_time(const struct cli_command *self, const char *option, const char *text,
			    bool duration_ok, long long *ms)
{
	long long now = (long long)time(NULL), seconds, t;

	if (duration_ok && parse_duration(text, &seconds) == 0)
		t = now - seconds;
	else if (parse_time(text, now, &t) < 0)
		return cli_usage_error(self, "--%s: cannot read \"%s\" as a time (try \"4 hours ago\", "
				       "\"14:00\", \"2026-11-23 14:00\"%s)", option, text,
				       duration_ok ? " or a duration such as 7d" : ""), -EINVAL;
	*ms = t * 1000;
	return 0;
}

static void cmd_monitor_time_text(json_t *ms, char *buf, size_t len)
{
	format_time(json_integer_value(ms) / 1000, buf, len);
}

static int cmd_history_at(json_t *result)
{
	static const char *const columns[] = { "MEMBER", "GPU MEMORY", "SM", "PROCESSES", NULL };
	__do_json json_t *rows = json_array();
	char when[CLI_TIME_TEXT_MAX], mem[CLI_BYTES_TEXT_MAX], total[CLI_BYTES_TEXT_MAX];
	char util[CLI_UNIT_TEXT_MAX];
	json_t *m;
	size_t i;

	cmd_monitor_time_text(json_object_get(result, "time"), when, sizeof(when));
	cmd_monitor_percent(json_object_get(result, "util"), util, sizeof(util));
	cmd_monitor_bytes(json_object_get(result, "mem_used"), mem, sizeof(mem));
	cmd_monitor_bytes(json_object_get(result, "mem_total"), total, sizeof(total));
	printf("GPU %" JSON_INTEGER_FORMAT " of %s at %s (%s):\n",
	       json_integer_value(json_object_get(result, "gpu")),
	       json_string_value(json_object_get(result, "server")) ?: "?", when,
	       strcmp(json_string_value(json_object_get(result, "resolution")) ?: "", "minute") == 0 ?
	       "one-minute average" : "sample");
	printf("  utilisation %s, memory %s / %s\n", util, mem, total);
	json_array_foreach(json_object_get(result, "members"), i, m) {
		char mmem[CLI_BYTES_TEXT_MAX], sm[CLI_UNIT_TEXT_MAX];

		cmd_monitor_bytes(json_object_get(m, "mem_used"), mmem, sizeof(mmem));
		cmd_monitor_percent(json_object_get(m, "sm_util"), sm, sizeof(sm));
		json_array_append_new(rows, json_pack("{s:O, s:s, s:s, s:O}", "MEMBER",
			json_object_get(m, "member"), "GPU MEMORY", mmem, "SM", sm,
			"PROCESSES", json_object_get(m, "processes")));
	}
	output_table(rows, columns, "  Nobody used it then.");
	return CLI_EXIT_OK;
}

static int cmd_history_range(json_t *result)
{
	static const char *const columns[] = { "TIME", "GPU", "UTIL", "MEMORY", "MEMBERS", NULL };
	__do_json json_t *rows = json_array();
	json_t *gpu, *point;
	size_t i, j;

	json_array_foreach(json_object_get(result, "gpus"), i, gpu) {
		json_array_foreach(json_object_get(gpu, "points"), j, point) {
			char when[CLI_TIME_TEXT_MAX], util[CLI_UNIT_TEXT_MAX], mem[CLI_BYTES_TEXT_MAX];
			const char *name;
			json_t *series, *members = json_array();

			cmd_monitor_time_text(json_array_get(point, 0), when, sizeof(when));
			cmd_monitor_percent(json_array_get(point, 1), util, sizeof(util));
			cmd_monitor_bytes(json_array_get(point, 2), mem, sizeof(mem));
			/* Members with memory at this point of the series. */
			json_object_foreach(json_object_get(gpu, "members"), name, series) {
				json_t *at = json_array_get(series, j);

				if (at && json_integer_value(json_array_get(at, 1)) > 0)
					json_array_append_new(members, json_string(name));
			}
			json_array_append_new(rows, json_pack("{s:s, s:O, s:s, s:s, s:s}", "TIME", when,
				"GPU", json_object_get(gpu, "gpu"), "UTIL", util, "MEMORY", mem,
				"MEMBERS", ""));
			{
				__do_free char *text = NULL;
				size_t len = 0, k;
				FILE *out = open_memstream(&text, &len);
				json_t *n;

				if (out) {
					json_array_foreach(members, k, n)
						fprintf(out, "%s%s", k ? "," : "", json_string_value(n));
					if (memstream_close(out))
						json_object_set_new(json_array_get(rows, json_array_size(rows) - 1),
								    "MEMBERS", json_string(text));
				}
			}
			json_decref(members);
		}
	}
	output_table(rows, columns, "Nothing was recorded in that period.");
	return CLI_EXIT_OK;
}

/* The options of history, read and checked; -EINVAL after a usage error. */
static int cmd_history_check(const struct cli_command *self, const struct cli_options *opts,
			     uint32_t *gpu, long long *at, long long *from, long long *to)
{
	if (opts->gpu && (parse_uint32(opts->gpu, gpu) < 0 || *gpu > 63))
		return cli_usage_error(self, "--gpu takes a GPU index, e.g. --gpu 3"), -EINVAL;
	if (opts->at && !opts->gpu)
		return cli_usage_error(self, "--at needs --gpu: which GPU's state to show"), -EINVAL;
	if (opts->at && (opts->since || opts->until))
		return cli_usage_error(self, "--at shows one moment; it does not go with --since "
				       "or --until"), -EINVAL;
	if (opts->at)
		return cmd_monitor_time(self, "at", opts->at, false, at);
	if (opts->since && cmd_monitor_time(self, "since", opts->since, true, from) < 0)
		return -EINVAL;
	if (opts->until && cmd_monitor_time(self, "until", opts->until, false, to) < 0)
		return -EINVAL;
	return 0;
}

int cmd_history(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	static const struct cli_args spec = {
		.options = CLI_OPT_JSON | CLI_OPT_GPU | CLI_OPT_AT | CLI_OPT_SINCE | CLI_OPT_UNTIL,
	};
	__do_json json_t *result = NULL;
	struct cli_options opts;
	json_t *args = json_object();
	long long at = 0, from = 0, to = 0;
	uint32_t gpu = 0;
	int ret, status;

	if (cli_parse_args(cli, self, argc, argv, &spec, &opts, &status) < 0) {
		json_decref(args);
		return status;
	}
	ret = cmd_history_check(self, &opts, &gpu, &at, &from, &to);
	if (ret < 0) {
		json_decref(args);
		return CLI_EXIT_USAGE;
	}
	if (opts.at)
		json_object_set_new(args, "at", json_integer(at));
	if (opts.gpu)
		json_object_set_new(args, "gpu", json_integer(gpu));
	if (!opts.at && opts.since)
		json_object_set_new(args, "from", json_integer(from));
	if (!opts.at && opts.until)
		json_object_set_new(args, "to", json_integer(to));
	ret = cmd_monitor_ask(cli, "history", args, opts.json, &result);
	if (ret >= 0)
		return ret;
	return opts.at ? cmd_history_at(result) : cmd_history_range(result);
}

static void cmd_usage_csv(json_t *result)
{
	json_t *row;
	size_t i;

	printf("member,gpu_hours,gpu_mem_gib_hours,idle_gpu_hours\n");
	json_array_foreach(json_object_get(result, "members"), i, row) {
		/* Member names are [a-z0-9_-]: nothing to quote. */
		output_sanitized(stdout, json_string_value(json_object_get(row, "member")) ?: "");
		printf(",%.4f,%.4f,%.4f\n", json_number_value(json_object_get(row, "gpu_hours")),
		       json_number_value(json_object_get(row, "gpu_mem_gib_hours")),
		       json_number_value(json_object_get(row, "idle_gpu_hours")));
	}
}

int cmd_usage(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	static const char *const columns[] = { "MEMBER", "GPU-HOURS", "IDLE GPU-HOURS",
					       "GPU-MEMORY GIB-HOURS", NULL };
	static const struct cli_args spec = {
		.options = CLI_OPT_JSON | CLI_OPT_CSV | CLI_OPT_SINCE | CLI_OPT_UNTIL,
	};
	__do_json json_t *result = NULL, *rows = json_array();
	struct cli_options opts;
	json_t *args = json_object(), *row;
	char from_text[CLI_TIME_TEXT_MAX], to_text[CLI_TIME_TEXT_MAX];
	long long from = 0, to = 0;
	size_t i;
	int ret, status;

	if (cli_parse_args(cli, self, argc, argv, &spec, &opts, &status) < 0) {
		json_decref(args);
		return status;
	}
	if ((opts.since && cmd_monitor_time(self, "since", opts.since, true, &from) < 0) ||
	    (opts.until && cmd_monitor_time(self, "until", opts.until, false, &to) < 0)) {
		json_decref(args);
		return CLI_EXIT_USAGE;
	}
	if (opts.json && opts.csv) {
		json_decref(args);
		return cli_usage_error(self, "choose --json or --csv, not both");
	}
	if (opts.since)
		json_object_set_new(args, "from", json_integer(from));
	if (opts.until)
		json_object_set_new(args, "to", json_integer(to));
	ret = cmd_monitor_ask(cli, "usage", args, opts.json, &result);
	if (ret >= 0)
		return ret;
	if (opts.csv) {
		cmd_usage_csv(result);
		return CLI_EXIT_OK;
	}
	cmd_monitor_time_text(json_object_get(result, "from"), from_text, sizeof(from_text));
	cmd_monitor_time_text(json_object_get(result, "to"), to_text, sizeof(to_text));
	printf("GPU use on %s from %s to %s:\n",
	       json_string_value(json_object_get(result, "server")) ?: "?", from_text, to_text);
	json_array_foreach(json_object_get(result, "members"), i, row) {
		char hours[CLI_NUMBER_TEXT_MAX], idle[CLI_NUMBER_TEXT_MAX], mem[CLI_NUMBER_TEXT_MAX];

		snprintf(hours, sizeof(hours), "%.2f", json_number_value(json_object_get(row, "gpu_hours")));
		snprintf(idle, sizeof(idle), "%.2f",
			 json_number_value(json_object_get(row, "idle_gpu_hours")));
		snprintf(mem, sizeof(mem), "%.2f",
			 json_number_value(json_object_get(row, "gpu_mem_gib_hours")));
		json_array_append_new(rows, json_pack("{s:O, s:s, s:s, s:s}", "MEMBER",
			json_object_get(row, "member"), "GPU-HOURS", hours, "IDLE GPU-HOURS", idle,
			"GPU-MEMORY GIB-HOURS", mem));
	}
	output_table(rows, columns, "Nobody used a GPU in that period.");
	return CLI_EXIT_OK;
}
