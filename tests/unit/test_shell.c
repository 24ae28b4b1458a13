/* SPDX-License-Identifier: MIT */
/*
 * The login shell's splitter and whitelist (src/cli/shell.c), and what
 * the command framework (src/cli/command.c) makes of the words: the
 * options of a command, time values given as several words, and messages
 * that end in exactly one newline.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cleanup.h"
#include "cli.h"

#include "../../src/cli/shell.c"
#include "../../src/cli/command.c"

/* The names of main.c's table; shell.c only ever sees a table it is given. */
static const struct cli_command test_commands[] = {
	{ "start", NULL, false, "start", "" },
	{ "stop", NULL, false, "stop", "" },
	{ "status", NULL, false, "status", "" },
	{ "rebuild", NULL, false, "rebuild", "" },
	{ "port", NULL, false, "port", "" },
	{ "admin", NULL, true, "admin", "" },
	{ "version", NULL, false, "version", "" },
	{ "help", NULL, false, "help", "" },
	{ NULL, NULL, false, NULL, NULL },
};

static void assert_refused(const char *line)
{
	char **argv = (char **)0x1;
	char err[256] = "";
	int n;

	n = shell_split(line, &argv, err, sizeof(err));
	assert_int_equal(n, -EINVAL);
	assert_null(argv);
	assert_string_equal(err, shell_refused_message);
}

static void test_shell_syntax_refused(void **state)
{
	static const char *const lines[] = {
		"start; id", "start;id", ";", "$(id)", "start $(id)", "start `id`", "`id`",
		"start && id", "start & id", "start | id", "start || id", "stop\nid", "stop\n",
		"stop\rid", "start > /tmp/x", "start < /etc/passwd", "start 2>&1",
		"port add \"8888\"", "port add '8888'", "port add 8\\888", "start *", "start ?",
		"start [a]", "start ~", "start ~root", "start $HOME", "start ${HOME}",
		"start (id)", "start {a,b}", "start # comment", "start !", "start\x01",
		"start\x1b[2J", "start\x7f", "start \xc3\xa9", "a%b", "start^", "a\vb",
		"a\fb",
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(lines); i++)
		assert_refused(lines[i]);
}

static void test_shell_valid_port_add(void **state)
{
	__do_strv char **argv = NULL;
	char err[256] = "";
	int n;

	(void)state;
	n = shell_split("port add 8888", &argv, err, sizeof(err));
	assert_int_equal(n, 3);
	assert_string_equal(argv[0], "port");
	assert_string_equal(argv[1], "add");
	assert_string_equal(argv[2], "8888");
	assert_null(argv[3]);
}

static void test_shell_blanks(void **state)
{
	__do_strv char **argv = NULL;
	char err[256] = "";
	int n;

	(void)state;
	n = shell_split("\t  port\tadd  \t8888 30001\t ", &argv, err, sizeof(err));
	assert_int_equal(n, 4);
	assert_string_equal(argv[0], "port");
	assert_string_equal(argv[1], "add");
	assert_string_equal(argv[2], "8888");
	assert_string_equal(argv[3], "30001");
	assert_null(argv[4]);
}

static void test_shell_empty(void **state)
{
	char err[256] = "";
	const char *const lines[] = { "", " ", "\t\t  ", NULL };

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(lines); i++) {
		__do_strv char **argv = NULL;

		assert_int_equal(shell_split(lines[i], &argv, err, sizeof(err)), 0);
		assert_non_null(argv);
		assert_null(argv[0]);
	}
}

static void test_shell_options_and_names(void **state)
{
	__do_strv char **argv = NULL;
	char err[256] = "";

	(void)state;
	assert_int_equal(shell_split("admin template build default@1 --release=bookworm "
				     "--key /home/a/.ssh/id_ed25519.pub -y a_b,c:d+e",
				     &argv, err, sizeof(err)), 9);
	assert_string_equal(argv[3], "default@1");
	assert_string_equal(argv[4], "--release=bookworm");
	assert_string_equal(argv[6], "/home/a/.ssh/id_ed25519.pub");
	assert_string_equal(argv[8], "a_b,c:d+e");
}

static void test_shell_long_line(void **state)
{
	__do_free char *line = malloc(SHELL_LINE_MAX + 2);
	char err[256] = "";

	(void)state;
	assert_non_null(line);

	/* Exactly the limit is accepted... */
	memset(line, 'a', SHELL_LINE_MAX);
	line[SHELL_LINE_MAX] = '\0';
	{
		__do_strv char **argv = NULL;

		assert_int_equal(shell_split(line, &argv, err, sizeof(err)), 1);
		assert_int_equal(strlen(argv[0]), SHELL_LINE_MAX);
	}
	/* ...one more byte is not, and nothing is returned. */
	line[SHELL_LINE_MAX] = 'a';
	line[SHELL_LINE_MAX + 1] = '\0';
	{
		char **argv = (char **)0x1;

		assert_int_equal(shell_split(line, &argv, err, sizeof(err)), -E2BIG);
		assert_null(argv);
		assert_non_null(strstr(err, "longer than"));
	}
}

static void test_shell_many_words(void **state)
{
	char line[SHELL_WORDS_MAX * 2 + 4];
	char err[256] = "";
	size_t len = 0;

	(void)state;
	for (int i = 0; i < SHELL_WORDS_MAX; i++) {
		line[len++] = 'w';
		line[len++] = ' ';
	}
	line[len] = '\0';
	{
		__do_strv char **argv = NULL;

		assert_int_equal(shell_split(line, &argv, err, sizeof(err)), SHELL_WORDS_MAX);
		assert_null(argv[SHELL_WORDS_MAX]);
	}
	line[len++] = 'w';
	line[len] = '\0';
	{
		char **argv = (char **)0x1;

		assert_int_equal(shell_split(line, &argv, err, sizeof(err)), -E2BIG);
		assert_null(argv);
		assert_non_null(strstr(err, "more than"));
	}
}

static void test_shell_whitelist(void **state)
{
	char err[256] = "";

	(void)state;
	{
		__do_strv char **argv = NULL;

		assert_int_equal(shell_parse("port add 8888", test_commands, &argv, err,
					     sizeof(err)), 3);
		assert_string_equal(argv[0], "port");
	}
	{
		__do_strv char **argv = NULL;

		/* "ssh host gpubox stop" is "stop". */
		assert_int_equal(shell_parse("gpubox stop", test_commands, &argv, err,
					     sizeof(err)), 1);
		assert_string_equal(argv[0], "stop");
		assert_null(argv[1]);
	}
	{
		__do_strv char **argv = NULL;

		assert_int_equal(shell_parse("gpubox", test_commands, &argv, err, sizeof(err)), 0);
		assert_null(argv[0]);
	}
	{
		__do_strv char **argv = NULL;

		assert_int_equal(shell_parse("", test_commands, &argv, err, sizeof(err)), 0);
	}
	static const char *const refused[] = {
		"id", "bash", "sh -c id", "/bin/sh", "git-upload-pack /x", "scp -t /tmp",
		"START", "--config=/etc/shadow status", "gpubox gpubox stop", "./gpubox stop",
		"internal-sftp", "rsync --server . /tmp",
	};
	for (size_t i = 0; i < ARRAY_SIZE(refused); i++) {
		char **argv = (char **)0x1;

		assert_int_equal(shell_parse(refused[i], test_commands, &argv, err, sizeof(err)),
				 -EINVAL);
		assert_null(argv);
		assert_non_null(strstr(err, "not a gpubox command"));
	}
	{
		char **argv = (char **)0x1;

		assert_int_equal(shell_parse("stop; id", test_commands, &argv, err, sizeof(err)),
				 -EINVAL);
		assert_string_equal(err, shell_refused_message);
	}
}

static void test_shell_find_command(void **state)
{
	(void)state;
	assert_non_null(shell_find_command(test_commands, "admin"));
	assert_true(shell_find_command(test_commands, "admin")->needs_admin);
	assert_null(shell_find_command(test_commands, "adm"));
	assert_null(shell_find_command(test_commands, ""));
	assert_null(shell_find_command(test_commands, NULL));
}

/* ---- command.c: the words of a command line as options ------------------- */

static const struct cli_command test_history = {
	"history", NULL, false, "history [--gpu N] [--at TIME] [--json]", "",
};
static const struct cli_args test_history_args = {
	.options = CLI_OPT_JSON | CLI_OPT_GPU | CLI_OPT_AT | CLI_OPT_SINCE | CLI_OPT_UNTIL,
};

/* The words of the last line parsed: the values in opts point into them. */
static char **test_words;

static int test_teardown_words(void **state)
{
	(void)state;
	cleanup_strvp(&test_words);
	test_words = NULL;
	return 0;
}

/* A login-shell line through shell_split() and cli_parse_args(): the status. */
static int test_parse_line(const char *line, const struct cli_command *cmd,
			   const struct cli_args *args, struct cli_options *opts)
{
	struct cli cli = { .restricted = true };
	char err[256] = "";
	int argc, status = -1;

	test_teardown_words(NULL);
	argc = shell_split(line, &test_words, err, sizeof(err));
	assert_true(argc > 0);
	if (cli_parse_args(&cli, cmd, argc, test_words, args, opts, &status) == 0)
		status = CLI_EXIT_OK;
	return status;
}

static void test_shell_time_words(void **state)
{
	struct cli_options opts;

	(void)state;
	/* ssh gpu17 history --gpu 3 --at "4 hours ago": ssh drops the quotes. */
	assert_int_equal(test_parse_line("history --gpu 3 --at 4 hours ago", &test_history,
					 &test_history_args, &opts), CLI_EXIT_OK);
	assert_string_equal(opts.gpu, "3");
	assert_string_equal(opts.at, "4 hours ago");
	assert_int_equal(opts.first_arg, 7);   /* every word was an option or its value */

	/* The words end at the next option, long or short. */
	assert_int_equal(test_parse_line("history --at 2026-11-23 14:00 --gpu 1 --json",
					 &test_history, &test_history_args, &opts), CLI_EXIT_OK);
	assert_string_equal(opts.at, "2026-11-23 14:00");
	assert_string_equal(opts.gpu, "1");
	assert_true(opts.json);
	assert_int_equal(test_parse_line("history --since 2 days ago -j", &test_history,
					 &test_history_args, &opts), CLI_EXIT_OK);
	assert_string_equal(opts.since, "2 days ago");
	assert_true(opts.json);

	/* Several time options, blanks collapsed to one space, --opt=value. */
	assert_int_equal(test_parse_line("history  --since\t3  hours   ago --until=1 hour ago",
					 &test_history, &test_history_args, &opts), CLI_EXIT_OK);
	assert_string_equal(opts.since, "3 hours ago");
	assert_string_equal(opts.until, "1 hour ago");

	/* A time that starts with '-' is a time, not an option. */
	assert_int_equal(test_parse_line("history --at -4h --gpu 0", &test_history,
					 &test_history_args, &opts), CLI_EXIT_OK);
	assert_string_equal(opts.at, "-4h");
	assert_string_equal(opts.gpu, "0");

	/* One word stays one word. */
	assert_int_equal(test_parse_line("history --since 7d", &test_history, &test_history_args,
					 &opts), CLI_EXIT_OK);
	assert_string_equal(opts.since, "7d");
	assert_int_equal(opts.text_used, 0);
}

static void test_shell_time_quoted(void **state)
{
	/* A local command line: the shell kept "4 hours ago" one word. */
	char *argv[] = { (char *)"history", (char *)"--at", (char *)"4 hours ago",
			 (char *)"--gpu", (char *)"3", NULL };
	struct cli cli = { 0 };
	struct cli_options opts;
	int status = -1;

	(void)state;
	assert_int_equal(cli_parse_args(&cli, &test_history, 5, argv, &test_history_args, &opts,
					&status), 0);
	assert_string_equal(opts.at, "4 hours ago");
	assert_string_equal(opts.gpu, "3");
}

static void test_shell_time_ambiguous(void **state)
{
	/* With a positional argument, "--since 4 hours ago NAME" cannot be
	 * split: the words are not joined, and the extra ones are refused. */
	static const struct cli_command cmd = { "x", NULL, false, "x NAME [--since TIME]", "" };
	static const struct cli_args args = { .options = CLI_OPT_SINCE, .min = 1, .max = 1 };
	struct cli_options opts;

	(void)state;
	assert_int_equal(test_parse_line("x --since 4 hours ago", &cmd, &args, &opts),
			 CLI_EXIT_USAGE);
	assert_int_equal(test_parse_line("x --since 4h name", &cmd, &args, &opts), CLI_EXIT_OK);
	assert_string_equal(opts.since, "4h");
}

static void test_shell_time_too_long(void **state)
{
	char line[CLI_OPTION_TEXT_MAX + 128] = "history --at";
	struct cli_options opts;
	size_t len = strlen(line);

	(void)state;
	/* Words of 40 letters, fewer than SHELL_WORDS_MAX, more than the room. */
	while (len < CLI_OPTION_TEXT_MAX + 64) {
		line[len++] = ' ';
		memset(line + len, 'a', 40);
		len += 40;
	}
	line[len] = '\0';
	assert_int_equal(test_parse_line(line, &test_history, &test_history_args, &opts),
			 CLI_EXIT_USAGE);
	/* Just within the room is accepted. */
	line[strlen("history --at") + CLI_OPTION_TEXT_MAX - 1] = '\0';
	assert_int_equal(test_parse_line(line, &test_history, &test_history_args, &opts),
			 CLI_EXIT_OK);
	assert_int_equal(strlen(opts.at), CLI_OPTION_TEXT_MAX - 2);
}

static void test_shell_args_count(void **state)
{
	static const struct cli_command cmd = { "port", NULL, false, "port rm PORT", "" };
	static const struct cli_args one = { .min = 1, .max = 1, .wrong_count = "one port" };
	static const struct cli_args none = { .options = CLI_OPT_JSON };
	struct cli_options opts;

	(void)state;
	assert_int_equal(test_parse_line("port 8888", &cmd, &one, &opts), CLI_EXIT_OK);
	assert_int_equal(opts.first_arg, 1);
	assert_int_equal(test_parse_line("port", &cmd, &one, &opts), CLI_EXIT_USAGE);
	assert_int_equal(test_parse_line("port 1 2", &cmd, &one, &opts), CLI_EXIT_USAGE);
	assert_int_equal(test_parse_line("port --json", &cmd, &none, &opts), CLI_EXIT_OK);
	assert_true(opts.json);
	assert_int_equal(test_parse_line("port x --json", &cmd, &none, &opts), CLI_EXIT_USAGE);
	/* An option the command does not take, and --config in the login shell. */
	assert_int_equal(test_parse_line("port 8888 --json", &cmd, &one, &opts), CLI_EXIT_USAGE);
	assert_int_equal(test_parse_line("port --config=/etc/shadow", &cmd, &none, &opts),
			 CLI_EXIT_USAGE);
	/* --help prints the help and ends the command with status 0. */
	assert_int_equal(test_parse_line("port --help", &cmd, &none, &opts), CLI_EXIT_OK);
	assert_true(opts.help);
}

static void test_shell_snapshot_local(void **state)
{
	/* cmd_snapshot.c's create and rm: --local is create's alone. */
	static const struct cli_command create = {
		"snapshot", NULL, false, "snapshot [create] [NAME] [--local] [--freeze]", "",
	};
	static const struct cli_args create_args = {
		.options = CLI_OPT_JSON | CLI_OPT_MEMBER | CLI_OPT_FREEZE | CLI_OPT_LOCAL,
		.min = 0, .max = 1,
	};
	static const struct cli_command rm = { "rm", NULL, false, "snapshot rm NAME", "" };
	static const struct cli_args rm_args = {
		.options = CLI_OPT_JSON | CLI_OPT_MEMBER, .min = 1, .max = 1,
	};
	struct cli_options opts;

	(void)state;
	assert_int_equal(test_parse_line("snapshot before-upgrade --local --freeze", &create,
					 &create_args, &opts), CLI_EXIT_OK);
	assert_true(opts.local);
	assert_true(opts.freeze);
	/* getopt_long moves the name after the options. */
	assert_int_equal(opts.first_arg, 3);
	assert_string_equal(test_words[opts.first_arg], "before-upgrade");
	assert_int_equal(test_parse_line("snapshot --local", &create, &create_args, &opts),
			 CLI_EXIT_OK);
	assert_true(opts.local);
	assert_false(opts.freeze);
	assert_int_equal(opts.first_arg, 2);   /* no name: the agent picks the time */
	assert_int_equal(test_parse_line("snapshot before-upgrade", &create, &create_args, &opts),
			 CLI_EXIT_OK);
	assert_false(opts.local);
	/* --local takes no value, and rm, ls and restore do not take it. */
	assert_int_equal(test_parse_line("snapshot --local=yes", &create, &create_args, &opts),
			 CLI_EXIT_USAGE);
	assert_int_equal(test_parse_line("rm before-upgrade --local", &rm, &rm_args, &opts),
			 CLI_EXIT_USAGE);
}

/* What cli_print_line() writes on stderr, captured through a pipe. */
static void test_stderr_of(const char *prefix, const char *text, char *buf, size_t len)
{
	int fds[2], saved;
	ssize_t n;

	assert_int_equal(pipe(fds), 0);
	saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fds[1], STDERR_FILENO) >= 0);
	cli_print_line(prefix, text);
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	close(fds[1]);
	n = read(fds[0], buf, len - 1);
	assert_true(n >= 0);
	buf[n] = '\0';
	close(fds[0]);
}

static void test_shell_messages_one_newline(void **state)
{
	char out[256];

	(void)state;
	/* The agent's "too many requests" text, as it comes (no newline). */
	test_stderr_of("gpubox: ", "too many requests at once from you; wait for them to finish",
		       out, sizeof(out));
	assert_string_equal(out, "gpubox: too many requests at once from you; wait for them "
			    "to finish\n");
	test_stderr_of("gpubox: ", "failed\n\n", out, sizeof(out));
	assert_string_equal(out, "gpubox: failed\n");
	test_stderr_of("", "Building the template \r\n", out, sizeof(out));
	assert_string_equal(out, "Building the template\n");
	test_stderr_of("gpubox: ", "a\nb\x1b[2J", out, sizeof(out));
	assert_string_equal(out, "gpubox: a?b?[2J\n");
	test_stderr_of("gpubox: ", "", out, sizeof(out));
	assert_string_equal(out, "gpubox: \n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shell_syntax_refused),
		cmocka_unit_test(test_shell_valid_port_add),
		cmocka_unit_test(test_shell_blanks),
		cmocka_unit_test(test_shell_empty),
		cmocka_unit_test(test_shell_options_and_names),
		cmocka_unit_test(test_shell_long_line),
		cmocka_unit_test(test_shell_many_words),
		cmocka_unit_test(test_shell_whitelist),
		cmocka_unit_test(test_shell_find_command),
		cmocka_unit_test(test_shell_time_words),
		cmocka_unit_test(test_shell_time_quoted),
		cmocka_unit_test(test_shell_time_ambiguous),
		cmocka_unit_test(test_shell_time_too_long),
		cmocka_unit_test(test_shell_args_count),
		cmocka_unit_test(test_shell_snapshot_local),
		cmocka_unit_test(test_shell_messages_one_newline),
	};

	return cmocka_run_group_tests(tests, NULL, test_teardown_words);
}
