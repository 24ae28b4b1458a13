/* SPDX-License-Identifier: MIT */
/*
 * Port forwards from the server to a member's container, and who may use
 * them: port add|set|rm|ls.  The agent checks the networks of --from
 * (cidr.h) and refuses a bad list whole; this file shapes the requests
 * and prints the answers.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cleanup.h"
#include "cli.h"
#include "strutil.h"

#include "banned.h"

/* The container's SSH port, as port set names it. */
#define CMD_PORT_SSH 22

/* {member?, from?} plus the port arguments; NULL on a usage error (printed). */
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
	if (opts->from && json_object_set_new(args, "from", json_string(opts->from)) < 0)
		return NULL;
	if (port_text && strcmp(port_text, "ssh") == 0) {
		if (json_object_set_new(args, "port", json_integer(CMD_PORT_SSH)) < 0)
			return NULL;
	} else if (port_text) {
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

/* "from 10.0.0.0/8, 192.168.1.0/24", "from any address", with "(the
 * server's default)" when the port has no list of its own. */
void cmd_port_print_from(json_t *result, const char *prefix)
{
	char key[32];
	json_t *from, *item;
	size_t i;

	snprintf(key, sizeof(key), "%sfrom", prefix);
	from = json_object_get(result, key);
	if (!json_is_array(from))
		return;
	json_array_foreach(from, i, item) {
		const char *text = json_string_value(item);

		printf("%s", i ? ", " : "from ");
		output_sanitized(stdout, text && strcmp(text, "any") == 0 ? "any address" : text ? text : "?");
	}
	snprintf(key, sizeof(key), "%sfrom_default", prefix);
	if (json_is_true(json_object_get(result, key)))
		printf(" (the server's default)");
}

bool cmd_port_from_limited(json_t *obj, const char *prefix)
{
	char key[32];
	json_t *from;
	const char *first;

	snprintf(key, sizeof(key), "%sfrom", prefix);
	from = json_object_get(obj, key);
	first = json_string_value(json_array_get(from, 0));
	return json_array_size(from) > 1 || (first && strcmp(first, "any") != 0);
}

/* The request op with the port arguments: an exit status and, when it
 * is CLI_EXIT_OK, *result to print as text (NULL: printed as JSON). */
static int cmd_port_request(struct cli *cli, const struct cli_command *self,
			    const struct cli_options *opts, const char *op, const char *port_text,
			    const char *host_port_text, json_t **result)
{
	json_t *args;
	int status;

	*result = NULL;
	args = cmd_port_args(self, opts, port_text, host_port_text, &status);
	if (!args)
		return status;
	return client_call_shown(cli, opts, op, args, result);
}

static int cmd_port_add(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	static const struct cli_args spec = {
		.options = CLI_OPT_JSON | CLI_OPT_MEMBER | CLI_OPT_FROM, .min = 1, .max = 2,
		.wrong_count = "port add takes a container port and, optionally, a server port",
	};
	__do_json json_t *result = NULL;
	struct cli_options opts;
	json_t *host, *cont;
	int ret, status;

	if (cli_parse_args(cli, self, argc, argv, &spec, &opts, &status) < 0)
		return status;
	ret = cmd_port_request(cli, self, &opts, "port_add", argv[opts.first_arg],
			       argc - opts.first_arg == 2 ? argv[opts.first_arg + 1] : NULL, &result);
	if (ret != CLI_EXIT_OK || !result)
		return ret;
	host = json_object_get(result, "host_port");
	cont = json_object_get(result, "container_port");
	if (json_is_integer(host) && json_is_integer(cont)) {
		printf("Server port %" JSON_INTEGER_FORMAT " now forwards to container port %"
		       JSON_INTEGER_FORMAT ", ", json_integer_value(host),
		       json_integer_value(cont));
		cmd_port_print_from(result, "");
		printf(".\n");
	} else {
		output_fields(result, NULL, 0);
	}
	return CLI_EXIT_OK;
}

static int cmd_port_set(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	static const struct cli_args spec = {
		.options = CLI_OPT_JSON | CLI_OPT_MEMBER | CLI_OPT_FROM, .min = 1, .max = 1,
		.wrong_count = "port set takes one container port, or ssh, and --from",
	};
	__do_json json_t *result = NULL;
	struct cli_options opts;
	int ret, status;

	if (cli_parse_args(cli, self, argc, argv, &spec, &opts, &status) < 0)
		return status;
	if (!opts.from)
		return cli_usage_error(self, "name who may connect with --from NETWORK[,NETWORK...], "
				       "--from any or --from default");
	ret = cmd_port_request(cli, self, &opts, "port_set", argv[opts.first_arg], NULL, &result);
	if (ret != CLI_EXIT_OK || !result)
		return ret;
	if (json_integer_value(json_object_get(result, "container_port")) == CMD_PORT_SSH)
		printf("Your container's SSH (server port %" JSON_INTEGER_FORMAT ") now takes connections ",
		       json_integer_value(json_object_get(result, "host_port")));
	else
		printf("Server port %" JSON_INTEGER_FORMAT " (container port %" JSON_INTEGER_FORMAT
		       ") now takes connections ", json_integer_value(json_object_get(result, "host_port")),
		       json_integer_value(json_object_get(result, "container_port")));
	cmd_port_print_from(result, "");
	printf(".\n");
	return CLI_EXIT_OK;
}

/* "10.0.0.0/8, 192.168.1.0/24" or "any", with " (default)" when the
 * port has no list of its own, as one table cell. */
static json_t *cmd_port_from_cell(json_t *entry, const char *prefix)
{
	__do_free char *text = NULL;
	char key[32];
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	json_t *item;
	size_t i;

	if (!f)
		return NULL;
	snprintf(key, sizeof(key), "%sfrom", prefix);
	json_array_foreach(json_object_get(entry, key), i, item)
		fprintf(f, "%s%s", i ? ", " : "", json_string_value(item) ? json_string_value(item) : "?");
	snprintf(key, sizeof(key), "%sfrom_default", prefix);
	if (json_is_true(json_object_get(entry, key)))
		fprintf(f, " (default)");
	if (fclose(f) != 0)
		return NULL;
	return json_string(text);
}

/* The rows of port ls: the container's SSH first, then each forward. */
static json_t *cmd_port_rows(json_t *result)
{
	json_t *rows = json_array(), *entry;
	size_t i;

	if (!rows)
		return NULL;
	if (json_is_integer(json_object_get(result, "ssh_port")))
		json_array_append_new(rows, json_pack("{s:s, s:O, s:o*}", "container_port", "22 (ssh)",
						      "host_port", json_object_get(result, "ssh_port"),
						      "from", cmd_port_from_cell(result, "ssh_")));
	json_array_foreach(json_object_get(result, "forwards"), i, entry)
		json_array_append_new(rows, json_pack("{s:O, s:O, s:o*}", "container_port",
						      json_object_get(entry, "container_port"), "host_port",
						      json_object_get(entry, "host_port"), "from",
						      cmd_port_from_cell(entry, "")));
	return rows;
}

static int cmd_port_rm(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	static const struct cli_args spec = {
		.options = CLI_OPT_JSON | CLI_OPT_MEMBER, .min = 1, .max = 1,
		.wrong_count = "port rm takes one container port",
	};
	__do_json json_t *result = NULL;
	struct cli_options opts;
	int ret, status;

	if (cli_parse_args(cli, self, argc, argv, &spec, &opts, &status) < 0)
		return status;
	ret = cmd_port_request(cli, self, &opts, "port_rm", argv[opts.first_arg], NULL, &result);
	if (ret != CLI_EXIT_OK || !result)
		return ret;
	printf("Container port %s is no longer forwarded.\n", argv[opts.first_arg]);
	return CLI_EXIT_OK;
}

static int cmd_port_ls(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	static const char *const columns[] = { "container_port", "host_port", "from", NULL };
	static const struct cli_args spec = { .options = CLI_OPT_JSON | CLI_OPT_MEMBER };
	__do_json json_t *result = NULL;
	__do_json json_t *rows = NULL;
	struct cli_options opts;
	int ret, status;

	if (cli_parse_args(cli, self, argc, argv, &spec, &opts, &status) < 0)
		return status;
	ret = cmd_port_request(cli, self, &opts, "port_ls", NULL, NULL, &result);
	if (ret != CLI_EXIT_OK || !result)
		return ret;
	rows = cmd_port_rows(result);
	output_table(rows, columns, "No port is forwarded.");
	if (json_array_size(json_object_get(result, "forwards")) == 0)
		printf("No other port is forwarded (gpubox port add PORT forwards one).\n");
	return CLI_EXIT_OK;
}

static const struct cli_command cmd_port_commands[] = {
	{ "add", cmd_port_add, false,
	  "port add PORT [HOST_PORT] [--from NETWORK[,NETWORK...]|any] [--json] [--member NAME]",
	  "Forward a port of the server to PORT of your container.  Without HOST_PORT the "
	  "agent picks a free one from the server's forwarding range and prints it.  With "
	  "--from only those networks reach it (IPv4 or IPv6, such as 192.168.1.0/24, "
	  "2001:db8::/32, or one address 203.0.113.7; at most 32); without it the server's "
	  "default applies (forward_default_from, usually any)." },
	{ "set", cmd_port_set, false,
	  "port set PORT|ssh --from NETWORK[,NETWORK...]|any|default [--json] [--member NAME]",
	  "Change who reaches a forwarded PORT, or your container's SSH port (ssh): only the "
	  "networks given, any address, or the server's default again.  The change holds at "
	  "once, for connections already open too: a source no longer in the list gets "
	  "nothing more through.  Your login to the server itself (ssh NAME@SERVER-manage) "
	  "is never limited by it." },
	{ "rm", cmd_port_rm, false,
	  "port rm PORT [--member NAME]",
	  "Remove the forward to PORT of your container." },
	{ "ls", cmd_port_ls, false,
	  "port ls [--json] [--member NAME]",
	  "List your container's SSH port and the ports forwarded to your container, with "
	  "the networks each takes connections from." },
	{ NULL, NULL, false, NULL, NULL },
};

int cmd_port(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	return cli_run_group(cli, self, cmd_port_commands, argc, argv);
}
