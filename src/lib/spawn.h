/* SPDX-License-Identifier: MIT */
/*
 * Running other programs: always an argument vector handed to execve(),
 * never a string given to a shell.  Standard input is /dev/null; standard
 * output and error are merged and either discarded, captured, or passed
 * line by line to a callback (progress of long work).
 */
#ifndef GPUBOX_SPAWN_H
#define GPUBOX_SPAWN_H

#include <stdbool.h>
#include <stddef.h>

typedef void (*spawn_line_fn)(const char *line, void *data);

struct spawn_options {
	char *const *envp;        /* NULL: PATH, LANG=C.UTF-8 and DEBIAN_FRONTEND only */
	const char *extra_env;    /* "NAME=value" added to those (debootstrap's http_proxy) */
	spawn_line_fn on_line;    /* called for each line of output */
	void *data;
	char *capture;            /* if set: the output, NUL-terminated, truncated */
	size_t capture_size;
	const char *cwd;
	unsigned timeout;         /* seconds, 0 = none; the child is killed past it */
};

/*
 * Run argv[0] (an absolute path, or a name looked up in the fixed PATH)
 * and wait for it.  Returns its exit status (0..255), -ETIMEDOUT when it
 * was killed for its time, -ECHILD when it died of a signal, or another
 * negative errno when it could not be started.
 */
int spawn_run(const char *const argv[], const struct spawn_options *opts);

/* spawn_run() with no options: output discarded. */
int spawn_quiet(const char *const argv[]);

#endif
