/* SPDX-License-Identifier: MIT */
/*
 * The login shell's command line, after git-shell: sshd hands a member's
 * command over as one string, and it is split into words here and never
 * given to a shell.  The byte set a word may hold is a whitelist, so that
 * whatever a shell would give meaning to (quotes, $, `, ;, globs, ~,
 * redirections, newlines) is refused instead of being passed on as a
 * literal that a person might believe was interpreted.
 *
 * Depends on nothing but libc and src/lib, so the unit test and the fuzz
 * target can take this file alone.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "cli.h"

#include "strutil.h"
#include "banned.h"

const char shell_refused_message[] =
	"this login runs gpubox commands only, not a shell (try: gpubox help)";

static bool shell_is_blank(unsigned char c)
{
	return c == ' ' || c == '\t';
}

static bool shell_is_word_byte(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("-_.,/:=@+", c) != NULL;
}

int shell_split(const char *line, char ***argv, char *err, size_t errlen)
{
	__do_strv char **words = NULL;
	size_t len, nwords = 0;

	*argv = NULL;
	if (!line)
		line = "";

	len = strnlen(line, SHELL_LINE_MAX + 1);
	if (len > SHELL_LINE_MAX) {
		set_error(err, errlen, "the command line is longer than %d characters",
			 SHELL_LINE_MAX);
		return -E2BIG;
	}

	/* Check every byte first, so nothing is allocated for a refused line. */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		if (!shell_is_blank(c) && !shell_is_word_byte(c)) {
			set_error(err, errlen, "%s", shell_refused_message);
			return -EINVAL;
		}
	}

	words = calloc(SHELL_WORDS_MAX + 1, sizeof(*words));
	if (!words) {
		set_error(err, errlen, "out of memory");
		return -ENOMEM;
	}

	for (size_t i = 0; i < len;) {
		size_t start;

		while (i < len && shell_is_blank((unsigned char)line[i]))
			i++;
		if (i == len)
			break;
		if (nwords == SHELL_WORDS_MAX) {
			set_error(err, errlen, "the command line has more than %d words",
				 SHELL_WORDS_MAX);
			return -E2BIG;
		}
		start = i;
		while (i < len && !shell_is_blank((unsigned char)line[i]))
			i++;
		words[nwords] = strndup(line + start, i - start);
		if (!words[nwords]) {
			set_error(err, errlen, "out of memory");
			return -ENOMEM;
		}
		nwords++;
	}

	*argv = move_ptr(words);
	return (int)nwords;
}

const struct cli_command *shell_find_command(const struct cli_command *table,
					     const char *name)
{
	if (!name)
		return NULL;
	for (const struct cli_command *c = table; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

int shell_parse(const char *line, const struct cli_command *table, char ***argv,
		char *err, size_t errlen)
{
	__do_strv char **words = NULL;
	int n;

	*argv = NULL;
	n = shell_split(line, &words, err, errlen);
	if (n < 0)
		return n;

	/* "ssh host gpubox stop" reads naturally; take it as "stop". */
	if (n > 0 && strcmp(words[0], "gpubox") == 0) {
		free(words[0]);
		memmove(words, words + 1, (size_t)n * sizeof(*words));
		n--;
	}

	if (n > 0 && !shell_find_command(table, words[0])) {
		set_error(err, errlen, "\"%.64s\" is not a gpubox command (try: gpubox help)",
			 words[0]);
		return -EINVAL;
	}

	*argv = move_ptr(words);
	return n;
}
