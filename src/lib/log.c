/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "log.h"

static const char *log_ident = "gpubox";
static bool log_to_syslog;
static enum log_level log_max_level = LOG_LEVEL_INFO;

void log_init(const char *ident, bool use_syslog, enum log_level level)
{
	log_ident = ident;
	log_to_syslog = use_syslog;
	log_max_level = level;
	if (use_syslog)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

static int log_syslog_priority(enum log_level level)
{
	switch (level) {
	case LOG_LEVEL_ERROR: return LOG_ERR;
	case LOG_LEVEL_WARN:  return LOG_WARNING;
	case LOG_LEVEL_INFO:  return LOG_INFO;
	case LOG_LEVEL_DEBUG: return LOG_DEBUG;
	}
	return LOG_INFO;
}

static const char *log_level_name(enum log_level level)
{
	switch (level) {
	case LOG_LEVEL_ERROR: return "error";
	case LOG_LEVEL_WARN:  return "warning";
	case LOG_LEVEL_INFO:  return "info";
	case LOG_LEVEL_DEBUG: return "debug";
	}
	return "?";
}

__attribute__((format(printf, 3, 0)))
static void log_vmessage(enum log_level level, int errnum, const char *fmt, va_list ap)
{
	char text[2048];
	size_t len;

	vsnprintf(text, sizeof(text), fmt, ap);
	len = strlen(text);
	if (errnum && len < sizeof(text))
		snprintf(text + len, sizeof(text) - len, ": %s", strerror(errnum));

	if (log_to_syslog) {
		syslog(log_syslog_priority(level), "%s", text);
		return;
	}
	fprintf(stderr, "%s: %s: %s\n", log_ident, log_level_name(level), text);
}

void log_message(enum log_level level, int errnum, const char *fmt, ...)
{
	va_list ap;

	if (level > log_max_level)
		return;
	va_start(ap, fmt);
	log_vmessage(level, errnum, fmt, ap);
	va_end(ap);
}

void fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmessage(LOG_LEVEL_ERROR, 0, fmt, ap);
	va_end(ap);
	abort();
}
