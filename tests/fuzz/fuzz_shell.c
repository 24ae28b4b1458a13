/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the login shell's splitter and whitelist (src/cli/shell.c): any
 * bytes sshd could hand over.  Beyond not crashing, it checks the
 * promises: every accepted word is non-empty and made of word bytes only,
 * and a refusal leaves nothing allocated behind.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "cli.h"

#include "../../src/cli/shell.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct cli_command fuzz_shell_commands[] = {
	{ "start", NULL, false, "start", "" },
	{ "stop", NULL, false, "stop", "" },
	{ "port", NULL, false, "port", "" },
	{ "admin", NULL, true, "admin", "" },
	{ NULL, NULL, false, NULL, NULL },
};

static void fuzz_shell_check(int n, char **argv)
{
	if (n < 0) {
		if (argv)
			abort();
		return;
	}
	if (!argv || argv[n] || n > SHELL_WORDS_MAX)
		abort();
	for (int i = 0; i < n; i++) {
		if (!argv[i][0])
			abort();
		for (const char *p = argv[i]; *p; p++)
			if (!shell_is_word_byte((unsigned char)*p))
				abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	__do_free char *line = NULL;
	char err[256];

	line = malloc(size + 1);
	if (!line)
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';

	{
		__do_strv char **argv = NULL;
		int n = shell_split(line, &argv, err, sizeof(err));

		fuzz_shell_check(n, argv);
	}
	{
		__do_strv char **argv = NULL;
		int n = shell_parse(line, fuzz_shell_commands, &argv, err, sizeof(err));

		fuzz_shell_check(n, argv);
		if (n > 0 && !shell_find_command(fuzz_shell_commands, argv[0]))
			abort();
	}
	return 0;
}
