/* SPDX-License-Identifier: MIT */
/*
 * gpubox admin doctor: asks the agent to check what the server needs
 * (ops_doctor.c holds the checks: they need its privileges and its
 * configuration) and prints one line per check, with what to do for each
 * failure.  Exit status 0 only when nothing failed; notes do not fail.
 * An agent that does not answer is itself the failure to fix first.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cleanup.h"
#include "cli.h"
#include "banned.h"

/* The check's status as printed: failures stand out. */
static const char *cmd_doctor_label(const char *status)
{
	if (status && strcmp(status, "ok") == 0)
		return "ok  ";
	if (status && strcmp(status, "note") == 0)
		return "note";
	return "FAIL";
}

static void cmd_doctor_print(json_t *checks)
{
	size_t i, failed = 0, notes = 0;
	json_t *check;

	json_array_foreach(checks, i, check) {
		const char *status = json_string_value(json_object_get(check, "status"));
		const char *name = json_string_value(json_object_get(check, "name"));
		const char *detail = json_string_value(json_object_get(check, "detail"));
		const char *advice = json_string_value(json_object_get(check, "advice"));

		failed += strcmp(cmd_doctor_label(status), "FAIL") == 0;
		notes += status && strcmp(status, "note") == 0;
		printf("%s  %-16s ", cmd_doctor_label(status), name ? name : "?");
		output_sanitized(stdout, detail ? detail : "");
		fputc('\n', stdout);
		if (advice && strcmp(cmd_doctor_label(status), "ok  ") != 0) {
			printf("      %-16s -> ", "");
			output_sanitized(stdout, advice);
			fputc('\n', stdout);
		}
	}
	printf("\n%zu checks: %zu ok, %zu note%s, %zu failed\n", json_array_size(checks),
	       json_array_size(checks) - failed - notes, notes, notes == 1 ? "" : "s", failed);
}

int cmd_admin_doctor(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	static const struct cli_args spec = { .options = CLI_OPT_JSON };
	__do_json json_t *result = NULL;
	struct cli_options opts;
	int ret, status;

	if (cli_parse_args(cli, self, argc, argv, &spec, &opts, &status) < 0)
		return status;
	ret = client_call(cli, "doctor", NULL, &result);
	if (ret == -ENOENT || ret == -ECONNREFUSED) {
		/* client_call() said the agent is not running: the first fix. */
		printf("FAIL  %-16s not running\n      %-16s -> systemctl start gpuboxd; "
		       "journalctl -u gpuboxd (or gpuboxd --foreground) says why it stopped\n", "agent", "");
		return CLI_EXIT_FAILED;
	}
	if (ret < 0)
		return cli_exit_status(ret);
	if (opts.json)
		output_json(result);
	else
		cmd_doctor_print(json_object_get(result, "checks"));
	return json_is_true(json_object_get(result, "ok")) ? CLI_EXIT_OK : CLI_EXIT_FAILED;
}
