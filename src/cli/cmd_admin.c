/* SPDX-License-Identifier: MIT */
/*
 * gpubox admin: members (user add|rm|ls), templates (template build|ls)
 * and the server's containers (ls).  The agent checks that the caller is
 * an admin; this file only shapes the requests and prints the answers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "cli.h"

#include "strutil.h"
#include "banned.h"

#define ADMIN_KEYS_FILE_MAX (1024 * 1024)
#define ADMIN_KEY_LINE_MAX 32768
#define ADMIN_KEYS_MAX 128

/* The key file at path, opened for *file; refused unless it is a regular
 * file (not a directory, not a device). */
static int cmd_admin_open_keys(const char *path, FILE **file, char *err, size_t errlen)
{
	__do_fclose FILE *f = fopen(path, "re");
	struct stat st;

	if (!f) {
		int saved = errno;

		set_error(err, errlen, "cannot read the key file %s: %s", path, strerror(saved));
		return -saved;
	}
	if (fstat(fileno(f), &st) == 0 && !S_ISREG(st.st_mode)) {
		set_error(err, errlen, "the key file %s is not a regular file", path);
		return -EINVAL;
	}
	*file = move_ptr(f);
	return 0;
}

/* The limits that keep a wrong file (a log, an image) from being sent:
 * total bytes read so far, and the length of line lineno. */
static int cmd_admin_check_key_size(const char *shown, size_t total, ssize_t len,
				    unsigned lineno, char *err, size_t errlen)
{
	if (total > ADMIN_KEYS_FILE_MAX) {
		set_error(err, errlen, "%s is larger than %d bytes; it cannot be a key file",
			 shown, ADMIN_KEYS_FILE_MAX);
		return -EFBIG;
	}
	if (len > ADMIN_KEY_LINE_MAX) {
		set_error(err, errlen, "line %u of %s is too long to be a public key",
			 lineno, shown);
		return -EINVAL;
	}
	return 0;
}

/* The key in a line of len bytes, without surrounding blanks and the line
 * end; NULL for a blank or comment line. */
static char *cmd_admin_key_text(char *line, ssize_t len)
{
	char *s = line;

	while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r' ||
			   s[len - 1] == ' ' || s[len - 1] == '\t'))
		s[--len] = '\0';
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '\0' || *s == '#')
		return NULL;
	return s;
}

/* Append key, the found-th of the file, found on line lineno. */
static int cmd_admin_add_key(json_t *keys, const char *key, size_t found, const char *shown,
			     unsigned lineno, char *err, size_t errlen)
{
	if (found > ADMIN_KEYS_MAX) {
		set_error(err, errlen, "%s holds more than %d keys", shown, ADMIN_KEYS_MAX);
		return -E2BIG;
	}
	/* The agent validates each line; json_string() refuses invalid UTF-8. */
	if (json_array_append_new(keys, json_string(key)) < 0) {
		set_error(err, errlen, "line %u of %s is not valid UTF-8 text", lineno, shown);
		return -EINVAL;
	}
	return 0;
}

int cmd_admin_read_keys(const char *path, json_t *keys, char *err, size_t errlen)
{
	__do_fclose FILE *owned = NULL;
	__do_free char *line = NULL;
	FILE *f = stdin;
	const char *shown = strcmp(path, "-") == 0 ? "standard input" : path;
	size_t size = 0, total = 0, found = 0;
	unsigned lineno = 0;
	ssize_t len;
	char *key;
	int ret;

	if (strcmp(path, "-") != 0) {
		ret = cmd_admin_open_keys(path, &owned, err, errlen);
		if (ret < 0)
			return ret;
		f = owned;
	}
	while ((len = getline(&line, &size, f)) >= 0) {
		lineno++;
		total += (size_t)len;
		ret = cmd_admin_check_key_size(shown, total, len, lineno, err, errlen);
		if (ret < 0)
			return ret;
		key = cmd_admin_key_text(line, len);
		if (!key)
			continue;
		ret = cmd_admin_add_key(keys, key, ++found, shown, lineno, err, errlen);
		if (ret < 0)
			return ret;
	}
	if (ferror(f)) {
		set_error(err, errlen, "cannot read %s: %s", shown, strerror(errno));
		return -EIO;
	}
	if (found == 0) {
		set_error(err, errlen, "%s holds no public key", shown);
		return -EINVAL;
	}
	return 0;
}

/* Send and print: the --json result, or the table under list_key. */
static int cmd_admin_list(struct cli *cli, const struct cli_command *self, int argc,
			  char **argv, const char *op, const char *list_key,
			  const char *const columns[], const char *empty)
{
	static const struct cli_args spec = { .options = CLI_OPT_JSON };
	__do_json json_t *result = NULL;
	struct cli_options opts;
	int ret, status;

	if (cli_parse_args(cli, self, argc, argv, &spec, &opts, &status) < 0)
		return status;
	ret = client_call(cli, op, NULL, &result);
	if (ret < 0)
		return cli_exit_status(ret);
	if (opts.json)
		output_json(result);
	else
		output_table(json_object_get(result, list_key), columns, empty);
	return CLI_EXIT_OK;
}

static int cmd_admin_user_add(struct cli *cli, const struct cli_command *self, int argc,
			      char **argv)
{
	static const struct output_field fields[] = {
		{ "name", "Member" },
		{ "uid", "Uid" },
		{ "subid_base", "Subids from" },
		{ "ssh_port", "SSH port" },
		{ "address", "Address" },
	};
	static const struct cli_args spec = {
		.options = CLI_OPT_JSON | CLI_OPT_KEY, .min = 1, .max = 1,
	};
	__do_json json_t *result = NULL;
	__do_json json_t *keys = NULL;
	struct cli_options opts;
	char err[CLI_SENTENCE_MAX];
	int ret, status;

	if (cli_parse_args(cli, self, argc, argv, &spec, &opts, &status) < 0)
		return status;
	if (opts.nkeys == 0)
		return cli_usage_error(self, "a member needs at least one --key FILE");

	keys = json_array();
	if (!keys)
		return CLI_EXIT_FAILED;
	for (size_t i = 0; i < opts.nkeys; i++) {
		ret = cmd_admin_read_keys(opts.keys[i], keys, err, sizeof(err));
		if (ret < 0) {
			cli_error("%s", err);
			return CLI_EXIT_FAILED;
		}
	}

	ret = client_call(cli, "user_add",
			  json_pack("{s:s, s:O}", "name", argv[opts.first_arg], "keys", keys),
			  &result);
	if (ret < 0)
		return cli_exit_status(ret);
	if (opts.json) {
		output_json(result);
		return CLI_EXIT_OK;
	}
	printf("Added member %s with %zu key%s.\n", argv[opts.first_arg], json_array_size(keys),
	       json_array_size(keys) == 1 ? "" : "s");
	output_fields(result, fields, ARRAY_SIZE(fields));
	return CLI_EXIT_OK;
}

static int cmd_admin_user_rm(struct cli *cli, const struct cli_command *self, int argc,
			     char **argv)
{
	__do_json json_t *result = NULL;
	__do_free char *warning = NULL;
	struct cli_options opts;
	static const struct cli_args spec = {
		.options = CLI_OPT_JSON | CLI_OPT_PURGE | CLI_OPT_YES, .min = 1, .max = 1,
	};
	const char *name, *kept;
	int ret, status;

	if (cli_parse_args(cli, self, argc, argv, &spec, &opts, &status) < 0)
		return status;
	name = argv[opts.first_arg];

	if (opts.purge && !opts.yes) {
		if (asprintf(&warning, "Removing %s with --purge deletes their container and "
			     "every file in it for good. This cannot be undone.", name) < 0)
			return CLI_EXIT_FAILED;
		if (cmd_member_confirm(warning, name) < 0)
			return CLI_EXIT_FAILED;
	}

	ret = client_call(cli, "user_rm",
			  json_pack("{s:s, s:b}", "name", name, "purge", opts.purge), &result);
	if (ret < 0)
		return cli_exit_status(ret);
	if (opts.json) {
		output_json(result);
		return CLI_EXIT_OK;
	}
	printf("Removed member %s.\n", name);
	kept = json_string_value(json_object_get(result, "kept"));
	if (kept) {
		printf("Their files are kept in ");
		output_sanitized(stdout, kept);
		printf(" (remove them with: gpubox admin user rm %s --purge).\n", name);
	}
	return CLI_EXIT_OK;
}

static int cmd_admin_user_ls(struct cli *cli, const struct cli_command *self, int argc,
			     char **argv)
{
	static const char *const columns[] = {
		"name", "uid", "ssh_port", "address", "state", "keys", NULL,
	};

	return cmd_admin_list(cli, self, argc, argv, "user_ls", "users", columns,
			      "No member yet (add one with: gpubox admin user add NAME --key FILE).");
}

static int cmd_admin_template_build(struct cli *cli, const struct cli_command *self, int argc,
				    char **argv)
{
	__do_json json_t *result = NULL;
	__do_json json_t *args = NULL;
	struct cli_options opts;
	static const struct cli_args spec = {
		.options = CLI_OPT_JSON | CLI_OPT_RELEASE, .min = 0, .max = 1,
	};
	const char *ref;
	int ret, status;

	if (cli_parse_args(cli, self, argc, argv, &spec, &opts, &status) < 0)
		return status;
	args = json_object();
	if (!args)
		return CLI_EXIT_FAILED;
	if (opts.first_arg < argc &&
	    json_object_set_new(args, "name", json_string(argv[opts.first_arg])) < 0)
		return CLI_EXIT_FAILED;
	if (opts.release && json_object_set_new(args, "release", json_string(opts.release)) < 0)
		return CLI_EXIT_FAILED;

	ret = client_call(cli, "template_build", move_ptr(args), &result);
	if (ret < 0)
		return cli_exit_status(ret);
	if (opts.json) {
		output_json(result);
		return CLI_EXIT_OK;
	}
	ref = json_string_value(json_object_get(result, "ref"));
	printf("Template ");
	output_sanitized(stdout, ref ? ref : "(unnamed)");
	printf(json_is_true(json_object_get(result, "cached")) ?
	       " was already built; nothing to do.\n" : " is built and ready.\n");
	return CLI_EXIT_OK;
}

static int cmd_admin_template_rm(struct cli *cli, const struct cli_command *self, int argc,
				 char **argv)
{
	static const struct cli_args spec = { .options = CLI_OPT_JSON, .min = 1, .max = 1 };
	__do_json json_t *result = NULL;
	struct cli_options opts;
	int ret, status;

	if (cli_parse_args(cli, self, argc, argv, &spec, &opts, &status) < 0)
		return status;
	ret = client_call_shown(cli, &opts, "template_rm",
				json_pack("{s:s}", "ref", argv[opts.first_arg]), &result);
	if (ret != CLI_EXIT_OK || !result)
		return ret;
	printf("Template ");
	output_sanitized(stdout, argv[opts.first_arg]);
	printf(" removed.\n");
	return CLI_EXIT_OK;
}

static int cmd_admin_template_ls(struct cli *cli, const struct cli_command *self, int argc,
				 char **argv)
{
	static const char *const columns[] = {
		"ref", "name", "version", "release", "current", "created", "size", NULL,
	};

	return cmd_admin_list(cli, self, argc, argv, "template_ls", "templates", columns,
			      "No template yet (build one with: gpubox admin template build).");
}

/*
 * The fields of a container's status that describe the server rather
 * than the container: printed once above the table, as long as every
 * container has the same.  The driver and its note may differ (a running
 * container keeps the driver it started with); then they stay columns.
 */
static const struct output_field cmd_admin_server_fields[] = {
	{ "server",   "Server" },
	{ "host",     "Host" },
	{ "driver",   "NVIDIA driver" },
	{ "gpu_note", "GPUs" },
};

/* Move the server's fields out of rows into a new object (NULL: no memory). */
static json_t *cmd_admin_ls_server(json_t *rows)
{
	json_t *server = json_object(), *row;
	size_t i;

	if (!server)
		return NULL;
	for (size_t f = 0; f < ARRAY_SIZE(cmd_admin_server_fields); f++) {
		const char *key = cmd_admin_server_fields[f].key;
		json_t *first = json_object_get(json_array_get(rows, 0), key);
		bool same = first != NULL;

		json_array_foreach(rows, i, row)
			if (!json_equal(json_object_get(row, key), first))
				same = false;
		if (!same)
			continue;
		if (!json_is_null(first) && json_object_set(server, key, first) < 0) {
			json_decref(server);
			return NULL;
		}
		json_array_foreach(rows, i, row)
			json_object_del(row, key);
	}
	return server;
}

/* What the agent finds wrong with the server as a whole, first. */
static void cmd_admin_ls_notes(json_t *notes)
{
	json_t *note;
	size_t i;

	json_array_foreach(notes, i, note) {
		fputs("Note: ", stdout);
		output_sanitized(stdout, json_string_value(note) ? json_string_value(note) : "?");
		fputs("\n", stdout);
	}
	if (json_array_size(notes))
		fputc('\n', stdout);
}

static int cmd_admin_ls(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	static const char *const columns[] = {
		"member", "state", "template", "address", "ssh_port", "gpus", NULL,
	};
	static const struct cli_args spec = { .options = CLI_OPT_JSON };
	__do_json json_t *result = NULL, *rows = NULL, *server = NULL;
	struct cli_options opts;
	int ret, status;

	if (cli_parse_args(cli, self, argc, argv, &spec, &opts, &status) < 0)
		return status;
	ret = client_call(cli, "ls", NULL, &result);
	if (ret < 0)
		return cli_exit_status(ret);
	if (opts.json) {
		output_json(result);
		return CLI_EXIT_OK;
	}
	cmd_admin_ls_notes(json_object_get(result, "notes"));
	rows = json_deep_copy(json_object_get(result, "containers"));
	if (!json_is_array(rows) || json_array_size(rows) == 0) {
		output_table(rows, columns, "No container on this server.");
		return CLI_EXIT_OK;
	}
	server = cmd_admin_ls_server(rows);
	if (!server)
		return CLI_EXIT_FAILED;
	if (json_object_size(server) > 0) {
		output_fields(server, cmd_admin_server_fields, ARRAY_SIZE(cmd_admin_server_fields));
		fputc('\n', stdout);
	}
	output_table(rows, columns, NULL);
	return CLI_EXIT_OK;
}

static const struct cli_command cmd_admin_user_commands[] = {
	{ "add", cmd_admin_user_add, true,
	  "admin user add NAME --key FILE [--key FILE ...] [--json]",
	  "Add a member who may use this server, with the SSH public keys in each FILE "
	  "(authorized_keys lines; blank and # lines are skipped; - reads standard input). "
	  "The agent checks every key." },
	{ "rm", cmd_admin_user_rm, true,
	  "admin user rm NAME [--purge] [--yes] [--json]",
	  "Remove a member.  Their container's files are kept unless --purge is given, "
	  "which asks to type the name unless --yes is given too." },
	{ "ls", cmd_admin_user_ls, true,
	  "admin user ls [--json]",
	  "List the members of this server." },
	{ NULL, NULL, false, NULL, NULL },
};

static const struct cli_command cmd_admin_template_commands[] = {
	{ "build", cmd_admin_template_build, true,
	  "admin template build [NAME] [--release RELEASE] [--json]",
	  "Build a container template (default: the configured template and release), "
	  "showing the progress; an identical template already built is reused." },
	{ "ls", cmd_admin_template_ls, true,
	  "admin template ls [--json]",
	  "List the templates on this server." },
	{ "rm", cmd_admin_template_rm, true,
	  "admin template rm NAME@VERSION [--json]",
	  "Delete one version of a template.  Refused while a member's container or a "
	  "snapshot uses it." },
	{ NULL, NULL, false, NULL, NULL },
};

static int cmd_admin_user(struct cli *cli, const struct cli_command *self, int argc,
			  char **argv)
{
	return cli_run_group(cli, self, cmd_admin_user_commands, argc, argv);
}

static int cmd_admin_template(struct cli *cli, const struct cli_command *self, int argc,
			      char **argv)
{
	return cli_run_group(cli, self, cmd_admin_template_commands, argc, argv);
}

static const struct cli_command cmd_admin_commands[] = {
	{ "user", cmd_admin_user, true,
	  "admin user add|rm|ls ...",
	  "Add, remove or list the members of this server." },
	{ "template", cmd_admin_template, true,
	  "admin template build|ls|rm ...",
	  "Build, list or remove container templates." },
	{ "gpu", cmd_admin_gpu, true,
	  "admin gpu attach|detach|ls ...",
	  "Give a member's container a GPU, take it away (live, and kept for later starts), "
	  "or list the server's GPUs." },
	{ "limits", cmd_admin_limits, true,
	  "admin limits set|rm|ls ...",
	  "A member's share of the server: memory, swap, CPU, processes, I/O and disk." },
	{ "reserve", cmd_admin_reserve, true,
	  "admin reserve MEMBER [N | --gpu I[,I...]] [--for DURATION] [--wait] [--json]",
	  "Reserve GPUs for MEMBER as gpubox reserve does for oneself (see gpubox reserve "
	  "--help), under the same rules; refusals name other members." },
	{ "release", cmd_admin_release, true,
	  "admin release ID [--json]",
	  "End any member's reservation, or cancel a request waiting in the queue; its GPUs go "
	  "back at once to every running container that has them." },
	{ "ls", cmd_admin_ls, true,
	  "admin ls [--json]",
	  "List every container on this server with its state." },
	{ "log", cmd_admin_log, true,
	  "admin log [--member NAME] [--since TIME] [--limit N] [--json]",
	  "The audit log: every request that changes something on this server, and every "
	  "one refused, by members, admins and the hub, with who asked (uid and member), "
	  "what it acted on, its arguments (JSON) and its result.  --member NAME keeps that "
	  "member's own requests; --since takes a time or a duration (2h, 7d, 2026-12-01); "
	  "--limit the newest N entries (default 100)." },
	{ "doctor", cmd_admin_doctor, true,
	  "admin doctor [--json]",
	  "Check what this server needs (kernel, LXC, lxcfs, nftables, the bridge, OpenSSH, "
	  "the template, the NVIDIA driver, the hub and the clock) and say what to do for "
	  "each failure.  Exits 0 only when every check passes; notes are not failures." },
	{ NULL, NULL, false, NULL, NULL },
};

int cmd_admin(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	return cli_run_group(cli, self, cmd_admin_commands, argc, argv);
}
