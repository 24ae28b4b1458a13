/* SPDX-License-Identifier: MIT */
/*
 * The command framework, after git.c: dispatch through main.c's table
 * (the whitelist), the login shell's entry, option and argument parsing
 * for every command, help, and the messages and exit statuses of the
 * contract in gpubox(1).  Commands live in cmd_*.c; main.c holds only
 * the table.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "cli.h"
#include "strutil.h"

#include "banned.h"

/* ---- messages ------------------------------------------------------------ */

/* All of buf to stderr in as few write(2) calls as the kernel allows: one,
 * for anything a pipe takes atomically. */
static void cli_write_stderr(const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(STDERR_FILENO, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

/* len bytes of text with control characters made harmless, as
 * output_sanitized(): the agent's text may quote what it ran. */
static void cli_put_sanitized(FILE *out, const char *text, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];

		fputc((c < 0x20 && c != '\t') || c == 0x7f ? '?' : c, out);
	}
}

/*
 * prefix, text made one harmless line, then the lines of hint (our own
 * text, NULL for none): each ends in exactly one newline, and all go out
 * in one write.
 */
static void cli_message(const char *prefix, const char *text, const char *hint)
{
	__do_free char *line = NULL;
	size_t len = 0, end = strlen(text);
	FILE *out;

	while (end > 0 && strchr("\n\r\t ", text[end - 1]))
		end--;
	out = open_memstream(&line, &len);
	if (!out) {
		/* Out of memory: the words still matter more than the one write. */
		fputs(prefix, stderr);
		cli_put_sanitized(stderr, text, end);
		fputc('\n', stderr);
		return;
	}
	fputs(prefix, out);
	cli_put_sanitized(out, text, end);
	fputc('\n', out);
	if (hint)
		fprintf(out, "%s\n", hint);
	if (!memstream_close(out))
		return;
	cli_write_stderr(line, len);
}

void cli_print_line(const char *prefix, const char *text)
{
	cli_message(prefix, text, NULL);
}

void cli_error(const char *fmt, ...)
{
	char sentence[CLI_SENTENCE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sentence, sizeof(sentence), fmt, ap);
	va_end(ap);
	cli_print_line("gpubox: ", sentence);
}

int cli_exit_status(int err)
{
	if (err >= 0)
		return CLI_EXIT_OK;
	return err == -EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAILED;
}

/* "port add" from the usage "port add PORT [HOST_PORT]": the words up to the
 * first placeholder, option or alternative. */
static void cli_command_path(const struct cli_command *cmd, char *buf, size_t len)
{
	const char *u = cmd->usage;
	size_t end = 0, i = 0;

	while (u[i]) {
		size_t word = strcspn(u + i, " ");

		if (u[i] == '-' || (u[i] >= 'A' && u[i] <= 'Z') ||
		    memchr(u + i, '[', word) || memchr(u + i, '|', word) || memchr(u + i, '.', word))
			break;
		end = i + word;
		i = end + strspn(u + end, " ");
	}
	snprintf(buf, len, "%.*s", (int)end, u);
}

int cli_usage_error(const struct cli_command *cmd, const char *fmt, ...)
{
	__do_free char *hint = NULL;
	char sentence[CLI_SENTENCE_MAX], path[CLI_COMMAND_PATH_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sentence, sizeof(sentence), fmt, ap);
	va_end(ap);
	if (cmd) {
		cli_command_path(cmd, path, sizeof(path));
		if (asprintf(&hint, "usage: gpubox %s\n(try: gpubox %s --help)", cmd->usage,
			     path) < 0)
			hint = NULL;
	}
	/* The sentence and its hint as one message: nothing can come between. */
	cli_message("gpubox: ", sentence, cmd ? hint : "(try: gpubox help)");
	return CLI_EXIT_USAGE;
}

/* ---- configuration and caller -------------------------------------------- */

int cli_load_config(struct cli *cli)
{
	char err[CONFIG_TEXT_MAX];
	int ret;

	if (cli->cfg_loaded)
		return 0;
	ret = config_load(&cli->cfg, cli->config_path, err, sizeof(err));
	if (ret < 0) {
		cli_error("bad configuration: %s", err);
		return ret == -EINVAL ? -EIO : ret;
	}
	cli->cfg_loaded = true;
	return 0;
}

bool cli_is_admin(struct cli *cli)
{
	__do_free gid_t *groups = NULL;
	struct group *gr;
	int n;

	if (getuid() == 0)
		return true;
	if (cli_load_config(cli) < 0 || !cli->cfg.admin_group[0])
		return false;
	gr = getgrnam(cli->cfg.admin_group);
	if (!gr)
		return false;
	if (getgid() == gr->gr_gid || getegid() == gr->gr_gid)
		return true;
	/* As many as the process has, however many that is. */
	n = getgroups(0, NULL);
	if (n <= 0)
		return false;
	groups = calloc((size_t)n, sizeof(*groups));
	if (!groups)
		return false;
	n = getgroups(n, groups);
	for (int i = 0; i < n; i++)
		if (groups[i] == gr->gr_gid)
			return true;
	return false;
}

/* ---- help ---------------------------------------------------------------- */

static void cli_print_wrapped(FILE *out, const char *indent, const char *text)
{
	const size_t width = 78;
	size_t col = 0;

	while (*text) {
		size_t word = strcspn(text, " ");

		if (col == 0) {
			fputs(indent, out);
			col = strlen(indent);
		} else if (col + 1 + word > width) {
			fputc('\n', out);
			fputs(indent, out);
			col = strlen(indent);
		} else {
			fputc(' ', out);
			col++;
		}
		fwrite(text, 1, word, out);
		col += word;
		text += word;
		while (*text == ' ')
			text++;
	}
	if (col)
		fputc('\n', out);
}

void cli_print_command_help(FILE *out, const struct cli_command *cmd)
{
	fprintf(out, "usage: gpubox %s\n\n", cmd->usage);
	cli_print_wrapped(out, "  ", cmd->help);
	fputs("\nEvery command also takes --help, and --config FILE (not in the login shell).\n",
	      out);
}

static void cli_print_overview(struct cli *cli, FILE *out)
{
	bool admin = !cli->restricted || cli_is_admin(cli);

	fputs("usage: gpubox [--config FILE] COMMAND [OPTIONS] [ARGUMENTS]\n\n"
	      "Commands:\n", out);
	for (const struct cli_command *c = cli->commands; c->name; c++) {
		if (c->needs_admin && !admin)
			continue;
		fprintf(out, "  gpubox %s\n", c->usage);
	}
	fputs("\nWithout a command, gpubox runs \"start\".  Admins may add --member NAME to\n"
	      "start, stop, status, rebuild, snapshot, restore and port to act on another\n"
	      "member's container.\n"
	      "See \"gpubox COMMAND --help\" for one command, and gpubox(1).\n", out);
}

int cmd_help(struct cli *cli, const struct cli_command *self, int argc, char **argv)
{
	static const struct cli_args args = { .min = 0, .max = INT_MAX };
	__do_free char **sub_argv = NULL;
	struct cli_options opts;
	const struct cli_command *cmd;
	int nwords, status;

	if (cli_parse_args(cli, self, argc, argv, &args, &opts, &status) < 0)
		return status;
	if (opts.first_arg >= argc) {
		cli_print_overview(cli, stdout);
		return CLI_EXIT_OK;
	}
	cmd = shell_find_command(cli->commands, argv[opts.first_arg]);
	if (!cmd)
		return cli_usage_error(self, "\"%s\" is not a gpubox command",
				       argv[opts.first_arg]);
	/* "help port add" is "port add --help"; a group alone lists its
	 * subcommands. */
	nwords = argc - opts.first_arg;
	sub_argv = calloc((size_t)nwords + 2, sizeof(*sub_argv));
	if (!sub_argv)
		return CLI_EXIT_FAILED;
	memcpy(sub_argv, argv + opts.first_arg, (size_t)nwords * sizeof(*sub_argv));
	sub_argv[nwords] = (char *)"--help";
	return cmd->run(cli, cmd, nwords + 1, sub_argv);
}

int cli_run_group(struct cli *cli, const struct cli_command *self,
		  const struct cli_command *table, int argc, char **argv)
{
	const struct cli_command *sub;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		FILE *out = argc < 2 ? stderr : stdout;

		fprintf(out, "usage: gpubox %s\n\n", self->usage);
		cli_print_wrapped(out, "  ", self->help);
		fputs("\nCommands:\n", out);
		for (sub = table; sub->name; sub++)
			fprintf(out, "  gpubox %s\n", sub->usage);
		return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
	}
	sub = shell_find_command(table, argv[1]);
	if (!sub)
		return cli_usage_error(self, "\"%s %s\" is not a gpubox command",
				       self->name, argv[1]);
	return sub->run(cli, sub, argc - 1, argv + 1);
}

/* ---- options ------------------------------------------------------------- */

enum {
	OPT_CONFIG = 0x100,
	OPT_PURGE,
	OPT_FREEZE,
	OPT_KEEP_HOME,
	OPT_GPU,
	OPT_AT,
	OPT_SINCE,
	OPT_UNTIL,
	OPT_CSV,
	OPT_FORCE,
	OPT_LIMIT,
	OPT_FROM,
	OPT_FOR,
	OPT_WAIT,
	OPT_EXTEND,
	OPT_LOCAL,
};

static const struct option cli_long_options[] = {
	{ "help",    no_argument,       NULL, 'h' },
	{ "config",  required_argument, NULL, OPT_CONFIG },
	{ "json",    no_argument,       NULL, 'j' },
	{ "member",  required_argument, NULL, 'm' },
	{ "yes",     no_argument,       NULL, 'y' },
	{ "purge",   no_argument,       NULL, OPT_PURGE },
	{ "freeze",  no_argument,       NULL, OPT_FREEZE },
	{ "local",   no_argument,       NULL, OPT_LOCAL },
	{ "keep-home", no_argument,     NULL, OPT_KEEP_HOME },
	{ "gpu",     required_argument, NULL, OPT_GPU },
	{ "at",      required_argument, NULL, OPT_AT },
	{ "since",   required_argument, NULL, OPT_SINCE },
	{ "until",   required_argument, NULL, OPT_UNTIL },
	{ "csv",     no_argument,       NULL, OPT_CSV },
	{ "force",   no_argument,       NULL, OPT_FORCE },
	{ "limit",   required_argument, NULL, OPT_LIMIT },
	{ "from",    required_argument, NULL, OPT_FROM },
	{ "for",     required_argument, NULL, OPT_FOR },
	{ "wait",    no_argument,       NULL, OPT_WAIT },
	{ "extend",  required_argument, NULL, OPT_EXTEND },
	{ "key",     required_argument, NULL, 'k' },
	{ "release", required_argument, NULL, 'r' },
	{ NULL, 0, NULL, 0 },
};

static const char *cli_option_name(int c)
{
	for (const struct option *o = cli_long_options; o->name; o++)
		if (o->val == c)
			return o->name;
	return "?";
}

/* Whether word is an option, which ends the words of a time value: "--json",
 * "-j"; not "-4h", a time. */
static bool cli_is_option_word(const char *word)
{
	return word[0] == '-' &&
	       (word[1] == '-' || (word[1] >= 'a' && word[1] <= 'z') ||
		(word[1] >= 'A' && word[1] <= 'Z'));
}

/*
 * The value of a time-valued option: its own word (value, from getopt)
 * and, when join, the words after it up to the next option, joined by
 * single spaces into opts->text.  ssh joins the words of a command with
 * spaces and drops their quotes, and the login shell splits at blanks, so
 * "--at 4 hours ago" arrives as four words.
 */
static int cli_option_words(const struct cli_command *cmd, int argc, char **argv, bool join,
			    int option, const char *value, struct cli_options *opts,
			    const char **out)
{
	char *text = opts->text + opts->text_used;
	size_t room = sizeof(opts->text) - opts->text_used, len;
	int n;

	if (!join || optind >= argc || cli_is_option_word(argv[optind])) {
		*out = value;
		return 0;
	}
	n = snprintf(text, room, "%s", value);
	while (n >= 0 && (size_t)n < room && optind < argc && !cli_is_option_word(argv[optind])) {
		len = (size_t)n;
		n = snprintf(text + len, room - len, " %s", argv[optind++]);
		if (n >= 0)
			n += (int)len;
	}
	if (n < 0 || (size_t)n >= room)
		return cli_usage_error(cmd, "the value of --%s is too long",
				       cli_option_name(option)), -EINVAL;
	opts->text_used += (size_t)n + 1;
	*out = text;
	return 0;
}

/* Refuses, with a usage error, an option the command's mask leaves out:
 * --help and --config are in no mask, so every command takes them. */
static int cli_check_option_taken(const struct cli_command *cmd, const struct cli_args *args,
				  int option)
{
	static const struct { int c; unsigned flag; } masks[] = {
		{ 'j', CLI_OPT_JSON }, { 'm', CLI_OPT_MEMBER }, { 'y', CLI_OPT_YES },
		{ OPT_PURGE, CLI_OPT_PURGE }, { 'k', CLI_OPT_KEY }, { 'r', CLI_OPT_RELEASE },
		{ OPT_FREEZE, CLI_OPT_FREEZE }, { OPT_KEEP_HOME, CLI_OPT_KEEP_HOME },
		{ OPT_GPU, CLI_OPT_GPU }, { OPT_AT, CLI_OPT_AT }, { OPT_SINCE, CLI_OPT_SINCE },
		{ OPT_UNTIL, CLI_OPT_UNTIL }, { OPT_CSV, CLI_OPT_CSV }, { OPT_FORCE, CLI_OPT_FORCE },
		{ OPT_LIMIT, CLI_OPT_LIMIT }, { OPT_FROM, CLI_OPT_FROM },
		{ OPT_FOR, CLI_OPT_FOR }, { OPT_WAIT, CLI_OPT_WAIT }, { OPT_EXTEND, CLI_OPT_EXTEND },
		{ OPT_LOCAL, CLI_OPT_LOCAL },
	};

	for (size_t i = 0; i < ARRAY_SIZE(masks); i++)
		if (masks[i].c == option && !(args->options & masks[i].flag))
			return cli_usage_error(cmd, "this command does not take --%s",
					       cli_option_name(option)), -EINVAL;
	return 0;
}

/* The field a yes-or-no option sets, or NULL when option is not one. */
static bool *cli_option_flag(struct cli_options *opts, int option)
{
	switch (option) {
	case 'j':
		return &opts->json;
	case 'y':
		return &opts->yes;
	case OPT_PURGE:
		return &opts->purge;
	case OPT_FREEZE:
		return &opts->freeze;
	case OPT_LOCAL:
		return &opts->local;
	case OPT_KEEP_HOME:
		return &opts->keep_home;
	case OPT_CSV:
		return &opts->csv;
	case OPT_FORCE:
		return &opts->force;
	case OPT_WAIT:
		return &opts->wait;
	default:
		return NULL;
	}
}

/* The field an option with one value sets, or NULL when option is not one. */
static const char **cli_option_value(struct cli_options *opts, int option)
{
	switch (option) {
	case 'm':
		return &opts->member;
	case 'r':
		return &opts->release;
	case OPT_GPU:
		return &opts->gpu;
	case OPT_AT:
		return &opts->at;
	case OPT_SINCE:
		return &opts->since;
	case OPT_UNTIL:
		return &opts->until;
	case OPT_LIMIT:
		return &opts->limit;
	case OPT_FROM:
		return &opts->from;
	case OPT_FOR:
		return &opts->duration;
	case OPT_EXTEND:
		return &opts->extend;
	default:
		return NULL;
	}
}

/* A time value may run over several words: see cli_option_words(). */
static bool cli_option_is_time(int option)
{
	return option == OPT_AT || option == OPT_SINCE || option == OPT_UNTIL;
}

static int cli_option_config(struct cli *cli)
{
	/* The login shell reads no file a member names. */
	if (cli->restricted)
		return cli_usage_error(NULL, "refused: --config is not available "
				       "in the login shell"), -EINVAL;
	cli->config_path = optarg;
	cli->cfg_loaded = false;
	return 0;
}

static int cli_option_key(const struct cli_command *cmd, struct cli_options *opts)
{
	if (opts->nkeys == CLI_KEYS_MAX)
		return cli_usage_error(cmd, "at most %d --key options are accepted",
				       CLI_KEYS_MAX), -EINVAL;
	opts->keys[opts->nkeys++] = optarg;
	return 0;
}

/* One option from getopt_long (optarg its value) into opts; --help prints
 * the help and sets opts->help, which ends the parsing. */
static int cli_parse_option(struct cli *cli, const struct cli_command *cmd, int argc,
			    char **argv, bool join, int option, struct cli_options *opts)
{
	bool *flag = cli_option_flag(opts, option);
	const char **value = cli_option_value(opts, option);

	if (flag) {
		*flag = true;
		return 0;
	}
	if (value && cli_option_is_time(option))
		return cli_option_words(cmd, argc, argv, join, option, optarg, opts, value);
	if (value) {
		*value = optarg;
		return 0;
	}
	switch (option) {
	case 'h':
		cli_print_command_help(stdout, cmd);
		opts->help = true;
		return 0;
	case OPT_CONFIG:
		return cli_option_config(cli);
	case 'k':
		return cli_option_key(cmd, opts);
	case ':':
		return cli_usage_error(cmd, "%s needs a value", argv[optind - 1]), -EINVAL;
	default:
		return cli_usage_error(cmd, "unknown option %s", argv[optind - 1]), -EINVAL;
	}
}

static int cli_parse_options(struct cli *cli, const struct cli_command *cmd, int argc,
			     char **argv, const struct cli_args *args, struct cli_options *opts)
{
	/* Joining is unambiguous only where no positional argument can follow. */
	bool join = args->max == 0;
	int c, ret;

	memset(opts, 0, sizeof(*opts));
	/* A full reset: each command parses its own vector from the start. */
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hjm:yk:r:", cli_long_options, NULL)) != -1) {
		ret = cli_check_option_taken(cmd, args, c);
		if (ret < 0)
			return ret;
		ret = cli_parse_option(cli, cmd, argc, argv, join, c, opts);
		if (ret < 0 || opts->help)
			return ret;
	}
	opts->first_arg = optind;
	return 0;
}

int cli_parse_args(struct cli *cli, const struct cli_command *cmd, int argc, char **argv,
		   const struct cli_args *args, struct cli_options *opts, int *status)
{
	char path[CLI_COMMAND_PATH_MAX];
	int nargs, ret;

	ret = cli_parse_options(cli, cmd, argc, argv, args, opts);
	if (ret < 0) {
		*status = cli_exit_status(ret);
		return ret;
	}
	if (opts->help) {
		*status = CLI_EXIT_OK;
		return -ECANCELED;
	}
	nargs = argc - opts->first_arg;
	if (nargs >= args->min && nargs <= args->max)
		return 0;
	if (args->wrong_count) {
		*status = cli_usage_error(cmd, "%s", args->wrong_count);
	} else if (args->max == 0) {
		cli_command_path(cmd, path, sizeof(path));
		*status = cli_usage_error(cmd, "%s takes no argument (got \"%s\")", path,
					  argv[opts->first_arg]);
	} else {
		*status = cli_usage_error(cmd, nargs < args->min ? "missing argument"
								 : "too many arguments");
	}
	return -EINVAL;
}

/* ---- dispatch ------------------------------------------------------------ */

static int cli_dispatch(struct cli *cli, int argc, char **argv)
{
	const struct cli_command *cmd;

	if (argc == 0) {
		static char *start_argv[] = { (char *)"start", NULL };

		cmd = shell_find_command(cli->commands, "start");
		return cmd->run(cli, cmd, 1, start_argv);
	}
	cmd = shell_find_command(cli->commands, argv[0]);
	if (!cmd)
		return cli_usage_error(NULL, "\"%s\" is not a gpubox command", argv[0]);
	if (cmd->needs_admin && cli->restricted && !cli_is_admin(cli)) {
		cli_error("refused: \"%s\" is for admins (members of the group %s)",
			  cmd->name, cli->cfg.admin_group);
		return CLI_EXIT_FAILED;
	}
	return cmd->run(cli, cmd, argc, argv);
}

/*
 * "gpubox -c LINE", $SSH_ORIGINAL_COMMAND, or a login with no command.
 * The configuration, and so the agent's socket, is the compiled-in one or
 * the one that root wrote into the login shell itself ("gpubox --config
 * FILE -c LINE" from a wrapper named as member_shell), never one from the
 * environment, which a member may be able to set (sshd's AcceptEnv,
 * PermitUserEnvironment, SetEnv of a careless configuration).
 */
static int cli_login_shell(struct cli *cli, const char *config_path, const char *line)
{
	__do_strv char **words = NULL;
	char err[CLI_SENTENCE_MAX];
	int n;

	cli->restricted = true;
	cli->config_path = config_path;
	cli->cfg_loaded = false;
	if (unsetenv("GPUBOX_CONFIG") < 0) {
		cli_error("cannot clear GPUBOX_CONFIG: %s", strerror(errno));
		return CLI_EXIT_FAILED;
	}
	n = shell_parse(line, cli->commands, &words, err, sizeof(err));
	if (n < 0) {
		cli_error("refused: %s", err);
		return CLI_EXIT_USAGE;
	}
	return cli_dispatch(cli, n, words);
}

int cli_main(struct cli *cli, int argc, char **argv)
{
	static const struct option global_options[] = {
		{ "help",    no_argument,       NULL, 'h' },
		{ "config",  required_argument, NULL, OPT_CONFIG },
		{ "version", no_argument,       NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *forced = getenv("SSH_ORIGINAL_COMMAND");
	const char *login_config = NULL;
	int c;

	/* A login shell's wrapper may name the configuration; see cli_login_shell(). */
	if (argc >= 4 && strcmp(argv[1], "--config") == 0 && strcmp(argv[3], "-c") == 0) {
		login_config = argv[2];
		argc -= 2;
		argv += 2;
	}
	if (argc >= 2 && strcmp(argv[1], "-c") == 0) {
		if (argc != 3)
			return cli_usage_error(NULL, "-c takes exactly one command line");
		/* Under a forced command the member's own words are in the variable. */
		return cli_login_shell(cli, login_config, forced ? forced : argv[2]);
	}
	if (argc <= 1 && forced)
		return cli_login_shell(cli, NULL, forced);
	if (argc <= 1 && argv[0] && argv[0][0] == '-')
		return cli_login_shell(cli, NULL, "");

	/* An ordinary command line: options before the command are global. */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:hV", global_options, NULL)) != -1) {
		switch (c) {
		case 'h':
			cli_print_overview(cli, stdout);
			return CLI_EXIT_OK;
		case 'V':
			printf("gpubox %s\n", GPUBOX_VERSION);
			return CLI_EXIT_OK;
		case OPT_CONFIG:
			cli->config_path = optarg;
			break;
		case ':':
			return cli_usage_error(NULL, "%s needs a value", argv[optind - 1]);
		default:
			return cli_usage_error(NULL, "unknown option %s", argv[optind - 1]);
		}
	}
	return cli_dispatch(cli, argc - optind, argv + optind);
}
