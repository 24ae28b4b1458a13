/* SPDX-License-Identifier: MIT */
/*
 * gpubox's private header: the prototypes of every file of the CLI,
 * grouped under the file that defines them.  Function prefix = file name;
 * subcommands are cmd_<name>().
 *
 * Subcommands return the process's exit status (CLI_EXIT_*), as git's
 * cmd_*() do; every other function returns 0 or a negative errno.
 */
#ifndef GPUBOX_CLI_H
#define GPUBOX_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "config.h"

/* The exit-status contract, documented in gpubox(1). */
#define CLI_EXIT_OK     0   /* done */
#define CLI_EXIT_FAILED 1   /* refused by the agent, or failed */
#define CLI_EXIT_USAGE  2   /* bad command line; nothing was asked of the agent */

struct cli {
	struct gpubox_config cfg;
	bool cfg_loaded;
	const char *config_path;   /* --config, NULL: $GPUBOX_CONFIG (never in the login shell) or the default */
	bool restricted;           /* running as a member's login shell */
	const char *prog;          /* "gpubox" or "gpubox port" etc., for messages */
	const struct cli_command *commands;   /* main.c's table: the whitelist */
};

struct cli_command;
typedef int (*cli_command_fn)(struct cli *cli, const struct cli_command *self,
			      int argc, char **argv);

/*
 * One entry of a command table, as in git.c: the whitelist of what may be
 * run at all (main.c's table) and of the subcommands below "port" and
 * "admin".  A table ends with an entry whose name is NULL.
 */
struct cli_command {
	const char *name;
	cli_command_fn run;
	bool needs_admin;
	const char *usage;         /* after "gpubox ": "port add PORT [HOST_PORT]" */
	const char *help;          /* one or more sentences */
};

/* ---- shell.c: the login shell's command line ------------------------- */

#define SHELL_LINE_MAX 4096
#define SHELL_WORDS_MAX 64

extern const char shell_refused_message[];

/*
 * Split a command line received from sshd (-c, $SSH_ORIGINAL_COMMAND)
 * into words on blanks (space, tab) only.  Anything a shell would
 * interpret, any control or non-ASCII byte, is refused: nothing here is
 * ever executed.  On success returns the number of words (0 for a blank
 * line) and a NULL-terminated vector in *argv (free with __do_strv).
 * On refusal returns -EINVAL (shell syntax) or -E2BIG (too long, too many
 * words), leaves *argv NULL and writes one sentence into err.
 */
int shell_split(const char *line, char ***argv, char *err, size_t errlen);

/* The entry of table named name, or NULL: the whitelist check. */
const struct cli_command *shell_find_command(const struct cli_command *table,
					     const char *name);

/*
 * The login shell's whole check: split the line, drop a leading "gpubox"
 * word (ssh host gpubox stop), and require the first word to name an entry
 * of table.  Returns the number of words left (0: the default command) or
 * a negative errno with one sentence in err.
 */
int shell_parse(const char *line, const struct cli_command *table, char ***argv,
		char *err, size_t errlen);

/* ---- command.c: the command framework -------------------------------- */

/* Buffer sizes of the CLI's own text. */
#define CLI_SENTENCE_MAX     512   /* one error sentence built before it is printed */
#define CLI_COMMAND_PATH_MAX 128   /* "admin template build" */
#define CLI_OPTION_TEXT_MAX  512   /* every value joined from several words, together */
#define CLI_BYTES_TEXT_MAX   32    /* "12.3 GiB", "512 MiB", "12 GB" */
#define CLI_UNIT_TEXT_MAX    16    /* a number and its unit: "40%", "41C", "150W" */
#define CLI_NUMBER_TEXT_MAX  32    /* "12.25" */
#define CLI_DURATION_TEXT_MAX 32   /* format_duration(): "3d 4h" */
#define CLI_TIME_TEXT_MAX    64    /* format_time(): "2026-11-23 14:00:05" */

/*
 * Run gpubox: as a login shell ("-c LINE", $SSH_ORIGINAL_COMMAND, or a
 * login with no command), or as an ordinary command line with global
 * options before the command.  cli->commands is the whitelist.  Returns
 * the exit status.
 */
int cli_main(struct cli *cli, int argc, char **argv);

/* gpubox help [COMMAND]: the one command of the framework itself. */
int cmd_help(struct cli *cli, const struct cli_command *self, int argc, char **argv);

/* Load the configuration once; prints the error.  0 or a negative errno. */
int cli_load_config(struct cli *cli);

/* Whether this caller looks like an admin (uid 0 or in admin_group).  Only
 * a courtesy check: the agent decides. */
bool cli_is_admin(struct cli *cli);

/*
 * Print one error sentence as "gpubox: ..." on stderr.  Every message ends
 * in exactly one newline and goes out in one write(2), so that the lines
 * of processes sharing a terminal or a log never run together.
 */
__attribute__((format(printf, 1, 2)))
void cli_error(const char *fmt, ...);

/*
 * Print text received from the agent as one line on stderr, after prefix
 * ("gpubox: " for an error, "" for progress): control characters made
 * harmless, trailing newlines and blanks dropped, one newline added, one
 * write(2).
 */
void cli_print_line(const char *prefix, const char *text);

/* Exit status for a negative errno from client_call() or option parsing. */
int cli_exit_status(int err);

/* Options shared by all subcommands; which ones a command takes is a mask. */
enum {
	CLI_OPT_JSON    = 1 << 0,
	CLI_OPT_MEMBER  = 1 << 1,
	CLI_OPT_YES     = 1 << 2,
	CLI_OPT_PURGE   = 1 << 3,
	CLI_OPT_KEY     = 1 << 4,
	CLI_OPT_RELEASE = 1 << 5,
	CLI_OPT_FREEZE  = 1 << 6,
	CLI_OPT_KEEP_HOME = 1 << 7,
	CLI_OPT_GPU     = 1 << 8,
	CLI_OPT_AT      = 1 << 9,
	CLI_OPT_SINCE   = 1 << 10,
	CLI_OPT_UNTIL   = 1 << 11,
	CLI_OPT_CSV     = 1 << 12,
	CLI_OPT_FORCE   = 1 << 13,
	CLI_OPT_LIMIT   = 1 << 14,
	CLI_OPT_FROM    = 1 << 15,
	CLI_OPT_FOR     = 1 << 16,
	CLI_OPT_WAIT    = 1 << 17,
	CLI_OPT_EXTEND  = 1 << 18,
	CLI_OPT_LOCAL   = 1 << 19,
};

#define CLI_KEYS_MAX 16

/* What a command takes: its options and how many positional arguments. */
struct cli_args {
	unsigned options;          /* CLI_OPT_* */
	int min, max;              /* positional arguments */
	const char *wrong_count;   /* the usage error for another number of them;
				    * NULL: a generic sentence */
};

struct cli_options {
	bool json;
	bool yes;
	bool purge;
	bool freeze;
	bool local;
	bool keep_home;
	bool help;
	const char *member;
	const char *release;
	const char *gpu;
	const char *at;
	const char *since;
	const char *until;
	const char *limit;
	const char *from;
	bool csv;
	bool force;
	bool wait;
	const char *duration;      /* --for */
	const char *extend;        /* --extend ID */
	const char *keys[CLI_KEYS_MAX];
	size_t nkeys;
	int first_arg;   /* index in argv of the first positional argument */
	/* Where values joined from several words are kept (--at 4 hours ago). */
	char text[CLI_OPTION_TEXT_MAX];
	size_t text_used;
};

/*
 * Parse argv (argv[0] is the command's own name) with getopt_long and
 * check the number of positional arguments.  --help and --config are
 * always accepted; the others when named in args->options.  For a command
 * without positional arguments, a time-valued option (--at, --since,
 * --until) takes every word up to the next option, joined by single
 * spaces, because ssh drops the quotes of "4 hours ago".  Returns 0; or,
 * on --help (after printing the help) or a usage error (after printing
 * it), a negative errno with the command's exit status in *status.
 */
int cli_parse_args(struct cli *cli, const struct cli_command *cmd, int argc, char **argv,
		   const struct cli_args *args, struct cli_options *opts, int *status);

/* Print "usage: gpubox USAGE" and the help text. */
void cli_print_command_help(FILE *out, const struct cli_command *cmd);

/*
 * Run the subcommand of a group ("port add", "admin user ls") named by
 * argv[1], from table; prints the group's help on --help or no word.
 */
int cli_run_group(struct cli *cli, const struct cli_command *self,
		  const struct cli_command *table, int argc, char **argv);

/* A usage error: the sentence, then "try: gpubox ... --help"; returns CLI_EXIT_USAGE. */
__attribute__((format(printf, 2, 3)))
int cli_usage_error(const struct cli_command *cmd, const char *fmt, ...);

/* ---- client.c: one request to the agent ------------------------------ */

/*
 * Connect to the agent, send { op, args } (args stolen, may be NULL),
 * print progress messages on stderr as they come, and return the final
 * result object in *result (a new reference).  On an error reply or a
 * connection problem prints one sentence and returns a negative errno:
 * -EINVAL only when the agent answered with code "usage".
 */
int client_call(struct cli *cli, const char *op, json_t *args, json_t **result);
/*
 * The same, as a command's exit status: on failure the status, with
 * --json the answer printed and *result left NULL (the command is done),
 * else CLI_EXIT_OK and the answer in *result for the command to print:
 *	ret = client_call_shown(cli, &opts, "op", args, &result);
 *	if (ret != CLI_EXIT_OK || !result)
 *		return ret;
 */
int client_call_shown(struct cli *cli, const struct cli_options *opts, const char *op,
		      json_t *args, json_t **result);

/* ---- output.c: what the user sees ------------------------------------ */

/* The agent's result object as indented JSON on stdout. */
void output_json(json_t *value);

/* Print text with control characters made harmless (the agent's text may
 * quote what it ran). */
void output_sanitized(FILE *out, const char *text);

/* A value as display text ("" for null); the caller frees the result. */
char *output_value_text(json_t *value);

struct output_field {
	const char *key;
	const char *label;
};

/*
 * "Label:  value" lines, aligned: the listed fields first (those present),
 * then any other scalar field of obj under its own key.
 */
void output_fields(json_t *obj, const struct output_field *fields, size_t nfields);

/*
 * An aligned table of an array of objects: the preferred columns first
 * (those present in some row), then any other key in the order first seen.
 * empty is printed when the array is empty.
 */
void output_table(json_t *rows, const char *const preferred[], const char *empty);

/* ---- cmd_member.c ---------------------------------------------------- */

int cmd_start(struct cli *cli, const struct cli_command *self, int argc, char **argv);
int cmd_stop(struct cli *cli, const struct cli_command *self, int argc, char **argv);
int cmd_status(struct cli *cli, const struct cli_command *self, int argc, char **argv);
int cmd_rebuild(struct cli *cli, const struct cli_command *self, int argc, char **argv);
int cmd_version(struct cli *cli, const struct cli_command *self, int argc, char **argv);

/*
 * Ask the person to type name to confirm destructive work: the question
 * on a terminal, one line from stdin otherwise.  0 when it matches,
 * -ECANCELED (after printing why) when not.
 */
int cmd_member_confirm(const char *warning, const char *name);

/* The caller's login name, for messages and confirmation. */
const char *cmd_member_self(void);

/* ---- cmd_snapshot.c -------------------------------------------------- */

int cmd_snapshot(struct cli *cli, const struct cli_command *self, int argc, char **argv);
int cmd_restore(struct cli *cli, const struct cli_command *self, int argc, char **argv);

/* ---- cmd_gpu.c ------------------------------------------------------- */

/* gpubox admin gpu attach|detach|ls */
int cmd_admin_gpu(struct cli *cli, const struct cli_command *self, int argc, char **argv);
/* "GPU 0  model  uuid  bus" lines for an array of the agent's GPU objects. */
void cmd_gpu_print(FILE *out, json_t *gpus, const char *indent);

/* ---- cmd_limits.c ---------------------------------------------------- */

/* gpubox admin limits set|rm|ls */
int cmd_admin_limits(struct cli *cli, const struct cli_command *self, int argc, char **argv);
/* The "Memory:", "Processes:" and "CPU:" lines of gpubox status. */
void cmd_limits_print_status(json_t *result);

/* ---- cmd_monitor.c: who uses which GPU, now and before ------------------ */

int cmd_ps(struct cli *cli, const struct cli_command *self, int argc, char **argv);
int cmd_gpus(struct cli *cli, const struct cli_command *self, int argc, char **argv);
int cmd_history(struct cli *cli, const struct cli_command *self, int argc, char **argv);
int cmd_usage(struct cli *cli, const struct cli_command *self, int argc, char **argv);
/* gpu_cap's sentence of a gpus or status answer ("gpu_cap"), when the
 * member is at or over the cap; nothing otherwise. */
void cmd_monitor_cap(json_t *cap, const char *indent);
/* A --since/--until/--at value (option names it) to unix milliseconds: a
 * duration ("7d") counts back from now when duration_ok, anything else is
 * a time.  -EINVAL after printing the usage error. */
int cmd_monitor_time(const struct cli_command *self, const char *option, const char *text,
		     bool duration_ok, long long *ms);

/* ---- cmd_log.c: the audit log ------------------------------------------ */

/* gpubox log: the caller's own entries. */
int cmd_log(struct cli *cli, const struct cli_command *self, int argc, char **argv);
/* gpubox admin log: everyone's, or one member's. */
int cmd_admin_log(struct cli *cli, const struct cli_command *self, int argc, char **argv);

/* ---- cmd_reserve.c: GPUs one member's alone for a time ------------------ */

int cmd_reserve(struct cli *cli, const struct cli_command *self, int argc, char **argv);
int cmd_reservations(struct cli *cli, const struct cli_command *self, int argc, char **argv);
int cmd_release(struct cli *cli, const struct cli_command *self, int argc, char **argv);
/* gpubox admin reserve MEMBER ..., gpubox admin release ID */
int cmd_admin_reserve(struct cli *cli, const struct cli_command *self, int argc, char **argv);
int cmd_admin_release(struct cli *cli, const struct cli_command *self, int argc, char **argv);

/* ---- cmd_doctor.c ---------------------------------------------------- */

/* gpubox admin doctor [--json] */
int cmd_admin_doctor(struct cli *cli, const struct cli_command *self, int argc, char **argv);

/* ---- cmd_port.c ------------------------------------------------------ */

int cmd_port(struct cli *cli, const struct cli_command *self, int argc, char **argv);
/* "from 10.0.0.0/8, ..." of an object's <prefix>from and <prefix>from_default
 * (port_ls, status); nothing when it has none. */
void cmd_port_print_from(json_t *obj, const char *prefix);
/* Whether that list is anything but "any". */
bool cmd_port_from_limited(json_t *obj, const char *prefix);

/* ---- cmd_admin.c ----------------------------------------------------- */

int cmd_admin(struct cli *cli, const struct cli_command *self, int argc, char **argv);

/* Read an authorized_keys file (path, or "-" for stdin) into a JSON array
 * of key lines, skipping blank and comment lines. */
int cmd_admin_read_keys(const char *path, json_t *keys, char *err, size_t errlen);

#endif
