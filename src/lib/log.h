/* SPDX-License-Identifier: MIT */
/*
 * Logging.  One error convention for the whole project: functions return 0
 * or a negative errno, and the log_*_errno() helpers log and return in one
 * expression:
 *
 *	if (fd < 0)
 *		return log_error_errno(-errno, errno, "open %s", path);
 *
 * fatal() is for broken invariants only, never for bad input.
 */
#ifndef GPUBOX_LOG_H
#define GPUBOX_LOG_H

#include <stdbool.h>

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* Where messages go: stderr (default) or syslog (a daemon in the background). */
void log_init(const char *ident, bool use_syslog, enum log_level level);

__attribute__((format(printf, 3, 4)))
void log_message(enum log_level level, int errnum, const char *fmt, ...);

__attribute__((format(printf, 1, 2), noreturn))
void fatal(const char *fmt, ...);

#define log_debug(...) log_message(LOG_LEVEL_DEBUG, 0, __VA_ARGS__)
#define log_info(...)  log_message(LOG_LEVEL_INFO, 0, __VA_ARGS__)
#define log_warn(...)  log_message(LOG_LEVEL_WARN, 0, __VA_ARGS__)
#define log_error(...) log_message(LOG_LEVEL_ERROR, 0, __VA_ARGS__)

/* Log with strerror(errnum) appended, then evaluate to ret. */
#define log_error_errno(ret, errnum, ...) \
	({ log_message(LOG_LEVEL_ERROR, (errnum), __VA_ARGS__); (ret); })
#define log_warn_errno(ret, errnum, ...) \
	({ log_message(LOG_LEVEL_WARN, (errnum), __VA_ARGS__); (ret); })

#endif
