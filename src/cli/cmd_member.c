/* SPDX-License-Identifier: MIT */
/* A member's own container: start, stop, status, rebuild; and version. */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "cli.h"
#include "timeparse.h"

#include "banned.h"

const char *cmd_member_self(void)
{
	struct passwd *pw = getpwuid(getuid());

	return pw && pw->pw_name ? pw->pw_name : "you";
}

int cmd_member_confirm(const char *warning, const char *name)
{
	__do_free char *line = NULL;
	size_t size = 0;
	ssize_t len;
	bool tty = isatty(STDIN_FILENO);

	if (tty) {
		fprintf(stderr, "%s\nType the member name to confirm: ", warning);
		fflush(stderr);
	} else {
		/* "ssh gpu17 restore NAME" has no terminal, but a person may be
		 * typing all the same: say what is asked, in whole lines. */
		cli_print_line("", warning);
		cli_print_line("", "Type the member name to confirm (or pass --yes):");
	}
	len = getline(&line, &size, stdin);
	if (len < 0) {
		if (tty)
			fputc('\n', stderr);
		cli_error("not confirmed (no answer); nothing was changed. "
			  "Type the member name, or pass --yes");
		return -ECANCELED;
	}
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' ||
			   line[len - 1] == ' ' || line[len - 1] == '\t'))
		line[--len] = '\0';
	if (strcmp(line, name) != 0) {
		cli_error("not confirmed (the answer was not \"%s\"); nothing was changed", name);
		return -ECANCELED;
	}
	return 0;
}

/* { "member": NAME } when --member was given, else {}. */
static json_t *cmd_member_args(const struct cli_options *opts)
{
	json_t *args = json_object();

	if (args && opts->member &&
	    json_object_set_new(args, "member", json_string(opts->member)) < 0) {
		json_decref(args);
		return NULL;
	}
	return args;
}

static const char *cmd_member_string(json_t *obj, const char *key, const char *fallback)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s && *s ? s : fallback;
}

/* The host a member types after '@': the agent's answer, else the config. */
static const char *cmd_member_host(struct cli *cli, json_t *result)
{
	const char *cfg_host = cli->cfg.ssh_host[0] ? cli->cfg.ssh_host : cli->cfg.server_name;

	return cmd_member_string(result, "host", cfg_host);
}

/* Run a request whose args are just {member?}; the common start of most commands. */
static int cmd_member_simple(struct cli *cli, const struct cli_command *self, int argc,
			     char **argv, const char *op, struct cli_options *opts,
			     json_t **result)
{
	static const struct cli_args args = { .options = CLI_OPT_JSON | CLI_OPT_MEMBER };
	int ret, status;

	/* On --help, the status with *result left NULL. */
	if (cli_parse_args(cli, self, argc, argv, &args, opts, &status) < 0)
		return status;
	ret = client_call(cli, op, cmd_member_args(opts), result);
	if (ret < 0)
		return cli_exit_status(ret);
	return CLI_EXIT_OK;
}

int cmd_start(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	__do_json json_t *result = NULL;
	struct cli_options opts;
	const char *member, *user, *address;
	json_t *port;
	int ret;

	ret = cmd_member_simple(cli, self, argc, argv, "start", &opts, &result);
	if (ret != CLI_EXIT_OK || !result)
		return ret;
	if (opts.json) {
		output_json(result);
		return CLI_EXIT_OK;
	}

	member = cmd_member_string(result, "member", opts.member ? opts.member : cmd_member_self());
	user = cmd_member_string(result, "user", member);
	address = cmd_member_string(result, "address", NULL);
	port = json_object_get(result, "port");
	printf("The container of %s is %s. Log in with:\n\n", member,
	       cmd_member_string(result, "state", "running"));
	if (json_is_integer(port))
		printf("    ssh -p %" JSON_INTEGER_FORMAT " %s@%s\n\n", json_integer_value(port),
		       user, cmd_member_host(cli, result));
	else
		printf("    ssh %s@%s\n\n", user, cmd_member_host(cli, result));
	if (address)
		printf("Container address: %s\n", address);
	return CLI_EXIT_OK;
}

int cmd_stop(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	__do_json json_t *result = NULL;
	struct cli_options opts;
	int ret;

	ret = cmd_member_simple(cli, self, argc, argv, "stop", &opts, &result);
	if (ret != CLI_EXIT_OK || !result)
		return ret;
	if (opts.json) {
		output_json(result);
		return CLI_EXIT_OK;
	}
	printf("The container of %s is %s.\n",
	       cmd_member_string(result, "member", opts.member ? opts.member : cmd_member_self()),
	       cmd_member_string(result, "state", "stopped"));
	return CLI_EXIT_OK;
}

static void cmd_status_forwards(json_t *forwards)
{
	size_t i;
	json_t *f;

	if (!json_is_array(forwards))
		return;
	printf("Forwards:  ");
	if (json_array_size(forwards) == 0)
		printf("none\n");
	json_array_foreach(forwards, i, f) {
		json_t *host = json_object_get(f, "host_port");
		json_t *cont = json_object_get(f, "container_port");

		printf("%s", i ? "           " : "");
		if (json_is_integer(host) && json_is_integer(cont)) {
			printf("server port %" JSON_INTEGER_FORMAT " -> container port %"
			       JSON_INTEGER_FORMAT, json_integer_value(host), json_integer_value(cont));
			if (cmd_port_from_limited(f, "")) {
				printf(", ");
				cmd_port_print_from(f, "");
			}
			fputc('\n', stdout);
		} else {
			__do_free char *text = output_value_text(f);

			output_sanitized(stdout, text ? text : "?");
			fputc('\n', stdout);
		}
	}
}

/* The member's own reservations, and the GPUs others hold reserved. */
static void cmd_status_reservations(json_t *result)
{
	json_t *away = json_object_get(result, "gpus_reserved_by_others"), *r, *g;
	size_t i, j;

	if (json_array_size(away)) {
		printf("           Reserved by another member for now (back when it ends):\n");
		cmd_gpu_print(stdout, away, "           ");
	}
	json_array_foreach(json_object_get(result, "reservations"), i, r) {
		char until[CLI_TIME_TEXT_MAX];

		printf("           Reservation %" JSON_INTEGER_FORMAT ": ",
		       json_integer_value(json_object_get(r, "id")));
		if (!json_is_integer(json_object_get(r, "until_ms"))) {
			printf("waiting in the queue (gpubox reservations)\n");
			continue;
		}
		json_array_foreach(json_object_get(r, "gpus"), j, g)
			printf("%sGPU %" JSON_INTEGER_FORMAT, j ? ", " : "", json_integer_value(g));
		format_time(json_integer_value(json_object_get(r, "until_ms")) / 1000, until, sizeof(until));
		printf(" yours alone until %s\n", until);
	}
}

/* "GPUs:" with the driver and one line per GPU, or why there is none. */
static void cmd_status_gpus(json_t *result)
{
	json_t *gpus = json_object_get(result, "gpus");
	const char *driver = json_string_value(json_object_get(result, "driver"));
	const char *note = json_string_value(json_object_get(result, "gpu_note"));

	if (!json_is_array(gpus))
		return;
	printf("GPUs:      ");
	if (!driver) {
		output_sanitized(stdout, note ? note : "no NVIDIA GPU on this server");
		fputc('\n', stdout);
		return;
	}
	printf("%zu, NVIDIA driver ", json_array_size(gpus));
	output_sanitized(stdout, driver);
	fputc('\n', stdout);
	cmd_gpu_print(stdout, gpus, "           ");
	cmd_status_reservations(result);
	cmd_monitor_cap(json_object_get(result, "gpu_cap"), "           ");
	if (json_is_string(json_object_get(result, "nvml"))) {
		printf("           NVML inside: ");
		output_sanitized(stdout, json_string_value(json_object_get(result, "nvml")));
		fputc('\n', stdout);
	}
	if (note) {
		printf("           ");
		output_sanitized(stdout, note);
		fputc('\n', stdout);
	}
}

int cmd_status(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	static const struct output_field fields[] = {
		{ "member",   "Member" },
		{ "state",    "State" },
		{ "template", "Template" },
		{ "address",  "Address" },
		{ "ssh_port", "SSH port" },
	};
	__do_json json_t *result = NULL;
	__do_json json_t *shown = NULL;
	struct cli_options opts;
	const char *state, *member;
	json_t *port;
	int ret;

	ret = cmd_member_simple(cli, self, argc, argv, "status", &opts, &result);
	if (ret != CLI_EXIT_OK || !result)
		return ret;
	if (opts.json) {
		output_json(result);
		return CLI_EXIT_OK;
	}

	shown = json_deep_copy(result);
	if (!shown)
		return CLI_EXIT_FAILED;
	json_object_del(shown, "forwards");
	json_object_del(shown, "template_update");
	json_object_del(shown, "driver");
	json_object_del(shown, "gpus");
	json_object_del(shown, "gpu_note");
	json_object_del(shown, "gpus_reserved_by_others");
	json_object_del(shown, "reservations");
	json_object_del(shown, "gpu_cap");
	json_object_del(shown, "nvml");
	json_object_del(shown, "nvml_translated");
	json_object_del(shown, "limits");
	json_object_del(shown, "limits_until");
	json_object_del(shown, "limits_then");
	json_object_del(shown, "usage");
	json_object_del(shown, "ssh_from");
	json_object_del(shown, "ssh_from_default");
	output_fields(shown, fields, ARRAY_SIZE(fields));
	if (cmd_port_from_limited(result, "ssh_")) {
		printf("SSH from:  ");
		cmd_port_print_from(result, "ssh_");
		fputc('\n', stdout);
	}
	cmd_status_forwards(json_object_get(result, "forwards"));
	cmd_status_gpus(result);
	cmd_limits_print_status(result);

	state = cmd_member_string(result, "state", "");
	member = cmd_member_string(result, "member", opts.member ? opts.member : cmd_member_self());
	port = json_object_get(result, "ssh_port");
	if (strcmp(state, "running") == 0 && json_is_integer(port))
		printf("Log in:    ssh -p %" JSON_INTEGER_FORMAT " %s@%s\n",
		       json_integer_value(port), member, cmd_member_host(cli, result));
	if (json_is_string(json_object_get(result, "template_update"))) {
		printf("Update:    template ");
		output_sanitized(stdout, cmd_member_string(result, "template_update", "?"));
		printf(" is available; gpubox rebuild (--keep-home keeps /home) moves to it\n");
	}
	return CLI_EXIT_OK;
}

int cmd_rebuild(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	__do_json json_t *result = NULL;
	__do_json json_t *args = NULL;
	__do_free char *warning = NULL;
	static const struct cli_args spec = {
		.options = CLI_OPT_JSON | CLI_OPT_MEMBER | CLI_OPT_YES | CLI_OPT_KEEP_HOME,
	};
	struct cli_options opts;
	const char *member;
	int ret, status;

	if (cli_parse_args(cli, self, argc, argv, &spec, &opts, &status) < 0)
		return status;

	member = opts.member ? opts.member : cmd_member_self();
	if (!opts.yes) {
		if (asprintf(&warning, "Rebuilding deletes every change made inside the container "
			     "of %s (installed packages, files%s) and starts again from the "
			     "template. This cannot be undone.", member,
			     opts.keep_home ? "; /home is kept" : ", home directories") < 0)
			return CLI_EXIT_FAILED;
		if (cmd_member_confirm(warning, member) < 0)
			return CLI_EXIT_FAILED;
	}

	args = cmd_member_args(&opts);
	if (!args || json_object_set_new(args, "confirm", json_true()) < 0 ||
	    (opts.keep_home && json_object_set_new(args, "keep_home", json_true()) < 0))
		return CLI_EXIT_FAILED;
	ret = client_call(cli, "rebuild", move_ptr(args), &result);
	if (ret < 0)
		return cli_exit_status(ret);
	if (opts.json) {
		output_json(result);
		return CLI_EXIT_OK;
	}
	printf("The container of %s was rebuilt from template %s; it is %s.\n",
	       cmd_member_string(result, "member", member),
	       cmd_member_string(result, "template", "(unknown)"),
	       cmd_member_string(result, "state", "stopped"));
	return CLI_EXIT_OK;
}

int cmd_version(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	static const struct cli_args args = { .options = CLI_OPT_JSON };
	__do_json json_t *result = NULL;
	struct cli_options opts;
	int ret, status;

	if (cli_parse_args(cli, self, argc, argv, &args, &opts, &status) < 0)
		return status;
	if (!opts.json)
		printf("gpubox %s\n", GPUBOX_VERSION);
	fflush(stdout);

	ret = client_call(cli, "version", NULL, &result);
	if (ret < 0)
		return cli_exit_status(ret);
	if (opts.json) {
		__do_json json_t *both = json_pack("{s:s, s:O}", "client", GPUBOX_VERSION,
						   "agent", result);

		if (!both)
			return CLI_EXIT_FAILED;
		output_json(both);
		return CLI_EXIT_OK;
	}
	printf("gpuboxd %s on %s (protocol %" JSON_INTEGER_FORMAT ")\n",
	       cmd_member_string(result, "version", "?"),
	       cmd_member_string(result, "server", "?"),
	       json_integer_value(json_object_get(result, "protocol")));
	return CLI_EXIT_OK;
}
