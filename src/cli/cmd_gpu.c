/* SPDX-License-Identifier: MIT */
/*
 * gpubox admin gpu attach|detach|ls: which GPUs a member's container has.
 * The agent checks the caller, the member and the GPU, changes a running
 * container live and records the set; this file shapes the requests and
 * prints the answers.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cleanup.h"
#include "cli.h"

#include "banned.h"

static const char *cmd_gpu_string(json_t *obj, const char *key, const char *fallback)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s && *s ? s : fallback;
}

void cmd_gpu_print(FILE *out, json_t *gpus, const char *indent)
{
	size_t i;
	json_t *g;

	json_array_foreach(gpus, i, g) {
		fprintf(out, "%sGPU %" JSON_INTEGER_FORMAT "  ", indent,
			json_integer_value(json_object_get(g, "index")));
		output_sanitized(out, cmd_gpu_string(g, "model", "?"));
		fputs("  ", out);
		output_sanitized(out, cmd_gpu_string(g, "uuid", "?"));
		fputs("  ", out);
		output_sanitized(out, cmd_gpu_string(g, "bus_id", "?"));
		fputc('\n', out);
	}
}

/* The processes a detach with --force ended, as "pid (command)" lines. */
static void cmd_gpu_print_ended(json_t *ended)
{
	size_t i;
	json_t *p;

	if (json_array_size(ended) == 0)
		return;
	printf("Ended in the container (they held the GPU):\n");
	json_array_foreach(ended, i, p) {
		printf("  pid %" JSON_INTEGER_FORMAT "  ", json_integer_value(json_object_get(p, "pid")));
		output_sanitized(stdout, cmd_gpu_string(p, "command", "?"));
		fputc('\n', stdout);
	}
}

static int cmd_gpu_change(struct cli *cli, const struct cli_command *self, int argc, char **argv,
			  const char *op)
{
	static const struct cli_args attach_spec = { .options = CLI_OPT_JSON, .min = 2, .max = 2 };
	static const struct cli_args detach_spec = { .options = CLI_OPT_JSON | CLI_OPT_FORCE,
						     .min = 2, .max = 2 };
	bool attach = strcmp(op, "gpu_attach") == 0;
	__do_json json_t *result = NULL;
	struct cli_options opts;
	json_t *gpu, *gpus, *args;
	const char *member;
	int ret, status;

	if (cli_parse_args(cli, self, argc, argv, attach ? &attach_spec : &detach_spec, &opts,
			   &status) < 0)
		return status;
	member = argv[opts.first_arg];
	args = json_pack("{s:s, s:s}", "member", member, "gpu", argv[opts.first_arg + 1]);
	if (opts.force)
		json_object_set_new(args, "force", json_true());
	ret = client_call(cli, op, args, &result);
	if (ret < 0)
		return cli_exit_status(ret);
	if (opts.json) {
		output_json(result);
		return CLI_EXIT_OK;
	}
	gpu = json_object_get(result, "gpu");
	gpus = json_object_get(result, "gpus");
	printf("GPU %" JSON_INTEGER_FORMAT " %s %s", json_integer_value(json_object_get(gpu, "index")),
	       json_is_false(json_object_get(result, "changed")) ? "was already" : "is now",
	       attach ? "attached to" : "detached from");
	printf(" %s%s.\n", member,
	       json_is_true(json_object_get(result, "live")) ? " (in the running container too)" : "");
	printf("The container of %s has %zu GPU%s%s\n", member, json_array_size(gpus),
	       json_array_size(gpus) == 1 ? "" : "s", json_array_size(gpus) ? ":" : ".");
	cmd_gpu_print(stdout, gpus, "  ");
	cmd_gpu_print_ended(json_object_get(result, "ended"));
	return CLI_EXIT_OK;
}

static int cmd_gpu_attach(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	return cmd_gpu_change(cli, self, argc, argv, "gpu_attach");
}

static int cmd_gpu_detach(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	return cmd_gpu_change(cli, self, argc, argv, "gpu_detach");
}

static int cmd_gpu_ls(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	static const struct cli_args spec = { .options = CLI_OPT_JSON };
	__do_json json_t *result = NULL;
	struct cli_options opts;
	json_t *g, *who, *name;
	size_t i, j;
	int ret, status;

	if (cli_parse_args(cli, self, argc, argv, &spec, &opts, &status) < 0)
		return status;
	ret = client_call(cli, "gpu_ls", NULL, &result);
	if (ret < 0)
		return cli_exit_status(ret);
	if (opts.json) {
		output_json(result);
		return CLI_EXIT_OK;
	}
	if (!json_is_string(json_object_get(result, "driver"))) {
		output_sanitized(stdout, cmd_gpu_string(result, "gpu_note", "no NVIDIA GPU on this server"));
		fputc('\n', stdout);
		return CLI_EXIT_OK;
	}
	printf("NVIDIA driver ");
	output_sanitized(stdout, cmd_gpu_string(result, "driver", "?"));
	printf(" (%" JSON_INTEGER_FORMAT " files injected at each start)\n",
	       json_integer_value(json_object_get(result, "files")));
	if (json_is_string(json_object_get(result, "nvml"))) {
		printf("NVML inside containers started now: ");
		output_sanitized(stdout, cmd_gpu_string(result, "nvml", "?"));
		fputc('\n', stdout);
	}
	json_array_foreach(json_object_get(result, "gpus"), i, g) {
		json_t *one = json_array();

		json_array_append(one, g);
		cmd_gpu_print(stdout, one, "");
		json_decref(one);
		who = json_object_get(g, "members");
		printf("      members: ");
		if (json_array_size(who) == 0)
			printf("none");
		json_array_foreach(who, j, name) {
			printf("%s", j ? ", " : "");
			output_sanitized(stdout, json_string_value(name) ? json_string_value(name) : "?");
		}
		fputc('\n', stdout);
	}
	return CLI_EXIT_OK;
}

static const struct cli_command cmd_gpu_commands[] = {
	{ "attach", cmd_gpu_attach, true,
	  "admin gpu attach MEMBER GPU [--json]",
	  "Give MEMBER's container the GPU (its index in gpubox admin gpu ls, or its UUID). "
	  "A running container gets it at once; the set is kept for every later start." },
	{ "detach", cmd_gpu_detach, true,
	  "admin gpu detach MEMBER GPU [--force] [--json]",
	  "Take the GPU away from MEMBER's container: its device node goes and the device "
	  "cgroup refuses it from now on.  While a process of the container holds the GPU "
	  "(open or mapped), the detach is refused and names those processes; with --force "
	  "they get SIGTERM, then SIGKILL 5 s later, and the GPU is gone." },
	{ "ls", cmd_gpu_ls, true,
	  "admin gpu ls [--json]",
	  "Show the server's NVIDIA driver, its GPUs and the members who have each." },
	{ NULL, NULL, false, NULL, NULL },
};

int cmd_admin_gpu(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	return cli_run_group(cli, self, cmd_gpu_commands, argc, argv);
}
