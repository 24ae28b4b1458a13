/* SPDX-License-Identifier: MIT */
/* Port forwards from the server to a member's container: port add|rm|ls. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cleanup.h"
#include "cli.h"
#include "strutil.h"

#include "banned.h"

/* {member?} plus the port arguments; NULL on a usage error (printed). */
static json_t *cmd_port_args(const struct cli_command *self, const struct cli_options *opts,
			     const char *port_text, const char *host_port_text, int *status)
{
	__do_json json_t *args = json_object();
	uint16_t port;

	*status = CLI_EXIT_FAILED;
	if (!args)
		return NULL;
	if (opts->member && json_object_set_new(args, "member", json_string(opts->member)) < 0)
		return NULL;
	if (port_text) {
		if (parse_port(port_text, &port) < 0) {
			*status = cli_usage_error(self, "the port \"%s\" is not a number from 1 "
						  "to 65535", port_text);
			return NULL;
		}
		if (json_object_set_new(args, "port", json_integer(port)) < 0)
			return NULL;
	}
	if (host_port_text) {
		if (parse_port(host_port_text, &port) < 0) {
			*status = cli_usage_error(self, "the server port \"%s\" is not a number "
						  "from 1 to 65535", host_port_text);
			return NULL;
		}
		if (json_object_set_new(args, "host_port", json_integer(port)) < 0)
			return NULL;
	}
	*status = CLI_EXIT_OK;
	return move_ptr(args);
}

static int cmd_port_add(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	static const struct cli_args spec = {
		.options = CLI_OPT_JSON | CLI_OPT_MEMBER, .min = 1, .max = 2,
		.wrong_count = "port add takes a container port and, optionally, a server port",
	};
	__do_json json_t *result = NULL;
	struct cli_options opts;
	json_t *args, *host, *cont;
	int ret, status;

	if (cli_parse_args(cli, self, argc, argv, &spec, &opts, &status) < 0)
		return status;
	args = cmd_port_args(self, &opts, argv[opts.first_arg],
			     argc - opts.first_arg == 2 ? argv[opts.first_arg + 1] : NULL, &status);
	if (!args)
		return status;
	ret = client_call(cli, "port_add", args, &result);
	if (ret < 0)
		return cli_exit_status(ret);
	if (opts.json) {
		output_json(result);
		return CLI_EXIT_OK;
	}
	host = json_object_get(result, "host_port");
	cont = json_object_get(result, "container_port");
	if (json_is_integer(host) && json_is_integer(cont))
		printf("Server port %" JSON_INTEGER_FORMAT " now forwards to container port %"
		       JSON_INTEGER_FORMAT ".\n", json_integer_value(host),
		       json_integer_value(cont));
	else
		output_fields(result, NULL, 0);
	return CLI_EXIT_OK;
}

static int cmd_port_rm(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	static const struct cli_args spec = {
		.options = CLI_OPT_JSON | CLI_OPT_MEMBER, .min = 1, .max = 1,
		.wrong_count = "port rm takes one container port",
	};
	__do_json json_t *result = NULL;
	struct cli_options opts;
	json_t *args;
	int ret, status;

	if (cli_parse_args(cli, self, argc, argv, &spec, &opts, &status) < 0)
		return status;
	args = cmd_port_args(self, &opts, argv[opts.first_arg], NULL, &status);
	if (!args)
		return status;
	ret = client_call(cli, "port_rm", args, &result);
	if (ret < 0)
		return cli_exit_status(ret);
	if (opts.json) {
		output_json(result);
		return CLI_EXIT_OK;
	}
	printf("Container port %s is no longer forwarded.\n", argv[opts.first_arg]);
	return CLI_EXIT_OK;
}

static int cmd_port_ls(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	static const char *const columns[] = { "container_port", "host_port", NULL };
	static const struct cli_args spec = { .options = CLI_OPT_JSON | CLI_OPT_MEMBER };
	__do_json json_t *result = NULL;
	struct cli_options opts;
	json_t *args;
	int ret, status;

	if (cli_parse_args(cli, self, argc, argv, &spec, &opts, &status) < 0)
		return status;
	args = cmd_port_args(self, &opts, NULL, NULL, &status);
	if (!args)
		return status;
	ret = client_call(cli, "port_ls", args, &result);
	if (ret < 0)
		return cli_exit_status(ret);
	if (opts.json) {
		output_json(result);
		return CLI_EXIT_OK;
	}
	output_table(json_object_get(result, "forwards"), columns, "No port is forwarded.");
	return CLI_EXIT_OK;
}

static const struct cli_command cmd_port_commands[] = {
	{ "add", cmd_port_add, false,
	  "port add PORT [HOST_PORT] [--json] [--member NAME]",
	  "Forward a port of the server to PORT of your container.  Without HOST_PORT the "
	  "agent picks a free one from the server's forwarding range and prints it." },
	{ "rm", cmd_port_rm, false,
	  "port rm PORT [--member NAME]",
	  "Remove the forward to PORT of your container." },
	{ "ls", cmd_port_ls, false,
	  "port ls [--json] [--member NAME]",
	  "List the ports forwarded to your container." },
	{ NULL, NULL, false, NULL, NULL },
};

int cmd_port(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	return cli_run_group(cli, self, cmd_port_commands, argc, argv);
}
