/* SPDX-License-Identifier: MIT */
/*
 * Snapshots of a member's own changes: snapshot [NAME] [--local],
 * snapshot ls, snapshot rm NAME, and restore NAME.  A snapshot is named,
 * never given as a path: the agent keeps each member's in a place of their
 * own.  It is an archive in the snapshot store, or with --local a
 * copy-on-write snapshot on this server; ls, rm and restore take both.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "cli.h"

#include "banned.h"

static const char *cmd_snapshot_string(json_t *obj, const char *key, const char *fallback)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s && *s ? s : fallback;
}

/* The agent's "kind"; an agent that sends none makes archives only. */
static bool cmd_snapshot_is_local(json_t *snapshot)
{
	return strcmp(cmd_snapshot_string(snapshot, "kind", "archive"), "local") == 0;
}

static void cmd_snapshot_size(char *buf, size_t len, json_int_t bytes)
{
	if (bytes >= 10LL * 1024 * 1024 * 1024)
		snprintf(buf, len, "%lld GB", (long long)(bytes >> 30));
	else if (bytes >= 10LL * 1024 * 1024)
		snprintf(buf, len, "%lld MB", (long long)(bytes >> 20));
	else if (bytes >= 10LL * 1024)
		snprintf(buf, len, "%lld KB", (long long)(bytes >> 10));
	else
		snprintf(buf, len, "%lld B", (long long)bytes);
}

static void cmd_snapshot_time(char *buf, size_t len, json_int_t when)
{
	time_t t = (time_t)when;
	struct tm tm;

	if (!gmtime_r(&t, &tm) || strftime(buf, len, "%Y-%m-%d %H:%M UTC", &tm) == 0)
		snprintf(buf, len, "?");
}

/* {member?} plus the given key when value is not NULL. */
static json_t *cmd_snapshot_args(const struct cli_options *opts, const char *key, const char *value)
{
	json_t *args = json_object();

	if (!args)
		return NULL;
	if ((opts->member && json_object_set_new(args, "member", json_string(opts->member)) < 0) ||
	    (value && json_object_set_new(args, key, json_string(value)) < 0)) {
		json_decref(args);
		return NULL;
	}
	return args;
}

static int cmd_snapshot_create(struct cli *cli, const struct cli_command *self, int argc,
			       char **argv)
{
	static const struct cli_args spec = {
		.options = CLI_OPT_JSON | CLI_OPT_MEMBER | CLI_OPT_FREEZE | CLI_OPT_LOCAL,
		.min = 0, .max = 1,
		.wrong_count = "snapshot takes one name at most",
	};
	__do_json json_t *result = NULL;
	__do_json json_t *args = NULL;
	struct cli_options opts;
	const char *name = NULL;
	char size[CLI_BYTES_TEXT_MAX], content[CLI_BYTES_TEXT_MAX];
	int ret, status;

	if (cli_parse_args(cli, self, argc, argv, &spec, &opts, &status) < 0)
		return status;
	if (opts.first_arg < argc)
		name = argv[opts.first_arg];
	args = cmd_snapshot_args(&opts, "name", name);
	if (!args || (opts.freeze && json_object_set_new(args, "freeze", json_true()) < 0) ||
	    (opts.local && json_object_set_new(args, "local", json_true()) < 0))
		return CLI_EXIT_FAILED;
	ret = client_call(cli, "snapshot_create", move_ptr(args), &result);
	if (ret < 0)
		return cli_exit_status(ret);
	if (opts.json) {
		output_json(result);
		return CLI_EXIT_OK;
	}
	printf("Snapshot ");
	output_sanitized(stdout, cmd_snapshot_string(result, "name", "?"));
	if (cmd_snapshot_is_local(result)) {
		printf(" taken: local, copy-on-write, on this server");
	} else {
		cmd_snapshot_size(size, sizeof(size),
				  json_integer_value(json_object_get(result, "size")));
		cmd_snapshot_size(content, sizeof(content),
				  json_integer_value(json_object_get(result, "content_size")));
		printf(" saved: %s of changes in %s, on template ", content, size);
		output_sanitized(stdout, cmd_snapshot_string(result, "template", "?"));
	}
	printf(".\nRestore it with: gpubox restore ");
	output_sanitized(stdout, cmd_snapshot_string(result, "name", "NAME"));
	printf("\n");
	return CLI_EXIT_OK;
}

static int cmd_snapshot_ls(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	static const struct cli_args spec = { .options = CLI_OPT_JSON | CLI_OPT_MEMBER };
	__do_json json_t *result = NULL;
	struct cli_options opts;
	json_t *list, *s;
	json_int_t quota;
	size_t i;
	bool any_local = false;
	char size[CLI_BYTES_TEXT_MAX], when[CLI_TIME_TEXT_MAX];
	char used[CLI_BYTES_TEXT_MAX], limit[CLI_BYTES_TEXT_MAX];
	int ret, status;

	if (cli_parse_args(cli, self, argc, argv, &spec, &opts, &status) < 0)
		return status;
	ret = client_call(cli, "snapshot_ls", cmd_snapshot_args(&opts, NULL, NULL), &result);
	if (ret < 0)
		return cli_exit_status(ret);
	if (opts.json) {
		output_json(result);
		return CLI_EXIT_OK;
	}
	list = json_object_get(result, "snapshots");
	if (json_array_size(list) == 0) {
		printf("No snapshot yet (take one with: gpubox snapshot [NAME]).\n");
		return CLI_EXIT_OK;
	}
	printf("%-24s %-7s %-22s %10s  %s\n", "NAME", "KIND", "CREATED", "SIZE", "TEMPLATE");
	json_array_foreach(list, i, s) {
		const char *name = cmd_snapshot_string(s, "name", "?");
		bool is_local = cmd_snapshot_is_local(s);

		/* A local snapshot has no size of its own: it shares the layer's. */
		if (is_local) {
			snprintf(size, sizeof(size), "-");
			any_local = true;
		} else {
			cmd_snapshot_size(size, sizeof(size),
					  json_integer_value(json_object_get(s, "size")));
		}
		cmd_snapshot_time(when, sizeof(when), json_integer_value(json_object_get(s, "created")));
		/* The agent's names are checked, but print nothing raw. */
		output_sanitized(stdout, name);
		printf("%*s %-7s %-22s %10s  ", (int)(strlen(name) < 24 ? 24 - strlen(name) : 0), "",
		       is_local ? "local" : "archive", when, size);
		output_sanitized(stdout, cmd_snapshot_string(s, "template", "?"));
		printf("\n");
	}
	cmd_snapshot_size(used, sizeof(used), json_integer_value(json_object_get(result, "used")));
	quota = json_integer_value(json_object_get(result, "quota"));
	if (quota > 0) {
		cmd_snapshot_size(limit, sizeof(limit), quota);
		printf("\n%s used of a quota of %s", used, limit);
	} else {
		printf("\n%s used", used);
	}
	printf("%s.\n", any_local ? " (local snapshots take none of it)" : "");
	return CLI_EXIT_OK;
}

static int cmd_snapshot_rm(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	static const struct cli_args spec = {
		.options = CLI_OPT_JSON | CLI_OPT_MEMBER, .min = 1, .max = 1,
		.wrong_count = "snapshot rm takes the name of one snapshot",
	};
	__do_json json_t *result = NULL;
	struct cli_options opts;
	int ret, status;

	if (cli_parse_args(cli, self, argc, argv, &spec, &opts, &status) < 0)
		return status;
	ret = client_call_shown(cli, &opts, "snapshot_rm",
				cmd_snapshot_args(&opts, "name", argv[opts.first_arg]), &result);
	if (ret != CLI_EXIT_OK || !result)
		return ret;
	printf("Snapshot ");
	output_sanitized(stdout, argv[opts.first_arg]);
	printf(" removed.\n");
	return CLI_EXIT_OK;
}

static const struct cli_command cmd_snapshot_commands[] = {
	{ "create", cmd_snapshot_create, false,
	  "snapshot [create] [NAME] [--local] [--freeze] [--json] [--member NAME]",
	  "Save what you changed in your container as snapshot NAME (letters, digits, - and _; "
	  "default: the date and time).  The container is stopped while the snapshot is "
	  "written and started again; with --freeze it is paused instead.  With --local it is "
	  "a copy-on-write snapshot kept on this server (where its layers are on btrfs), taken "
	  "at one instant while the container runs, files as a power cut would leave them "
	  "(--freeze pauses it for that instant).  It takes no disk until your files change, "
	  "but it is not a backup: it never leaves this server and is lost with its disk." },
	{ "ls", cmd_snapshot_ls, false,
	  "snapshot ls [--json] [--member NAME]",
	  "List your snapshots (archives and local ones), their kind and size, and your "
	  "quota." },
	{ "rm", cmd_snapshot_rm, false,
	  "snapshot rm NAME [--json] [--member NAME]",
	  "Delete your snapshot NAME, an archive or a local one." },
	{ NULL, NULL, false, NULL, NULL },
};

int cmd_snapshot(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	const struct cli_command *sub;

	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
			  strcmp(argv[1], "help") == 0))
		return cli_run_group(cli, self, cmd_snapshot_commands, 2, (char *[]){ argv[0], (char *)"--help", NULL });
	/* "snapshot ls", "snapshot rm NAME", "snapshot create [NAME]"; anything
	 * else is "snapshot [NAME] [options]". */
	if (argc >= 2 && (sub = shell_find_command(cmd_snapshot_commands, argv[1])))
		return sub->run(cli, sub, argc - 1, argv + 1);
	return cmd_snapshot_create(cli, &cmd_snapshot_commands[0], argc, argv);
}

int cmd_restore(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	__do_json json_t *result = NULL;
	__do_json json_t *args = NULL;
	__do_free char *warning = NULL;
	static const struct cli_args spec = {
		.options = CLI_OPT_JSON | CLI_OPT_MEMBER | CLI_OPT_YES, .min = 1, .max = 1,
		.wrong_count = "restore takes the name of one of your snapshots (see gpubox snapshot ls)",
	};
	struct cli_options opts;
	const char *member, *name;
	int ret, status;

	if (cli_parse_args(cli, self, argc, argv, &spec, &opts, &status) < 0)
		return status;
	name = argv[opts.first_arg];
	member = opts.member ? opts.member : cmd_member_self();
	if (!opts.yes) {
		if (asprintf(&warning, "Restoring %s replaces every file of the container of %s "
			     "with the snapshot's; what changed since is lost (take a snapshot "
			     "first to keep it).", name, member) < 0)
			return CLI_EXIT_FAILED;
		if (cmd_member_confirm(warning, member) < 0)
			return CLI_EXIT_FAILED;
	}
	args = cmd_snapshot_args(&opts, "name", name);
	if (!args || json_object_set_new(args, "confirm", json_true()) < 0)
		return CLI_EXIT_FAILED;
	ret = client_call(cli, "restore", move_ptr(args), &result);
	if (ret < 0)
		return cli_exit_status(ret);
	if (opts.json) {
		output_json(result);
		return CLI_EXIT_OK;
	}
	printf("Snapshot ");
	output_sanitized(stdout, name);
	printf(" was restored; the container of %s is %s.\n",
	       cmd_snapshot_string(result, "member", member),
	       cmd_snapshot_string(result, "state", "running"));
	return CLI_EXIT_OK;
}
