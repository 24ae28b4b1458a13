/* SPDX-License-Identifier: MIT */
/*
 * Times and durations as people type them on the command line:
 *   durations  "90s", "15m", "4h", "7d", "2w", "1y" (365 days), and sums
 *              such as "1h30m"
 *   times      "now", "4 hours ago", "4h ago", "-4h", "2 days ago",
 *              "14:00" / "14:00:30" (today, local time; yesterday if that
 *              is still to come), "2026-11-23", "2026-11-23 14:00[:30]",
 *              "2026-11-23T14:00[:30]", "@1763906400" (unix seconds)
 *   ends       "2h", "+2h", "1d12h" (from now), "18:00" (today, or tomorrow
 *              if that has passed), "2026-11-23", "2026-11-23 18:00[:30]",
 *              "2026-11-23T18:00[:30]", "@1763906400": an end ahead, such
 *              as an exception's --until
 * Everything else is -EINVAL, never a guess.
 */
#ifndef GPUBOX_TIMEPARSE_H
#define GPUBOX_TIMEPARSE_H

#include <stddef.h>

/* A duration in seconds, > 0. */
int parse_duration(const char *text, long long *seconds);
/* A time as unix seconds, given now (unix seconds) for relative forms;
 * local time for clock and date forms. */
int parse_time(const char *text, long long now, long long *out);
/* An end in the future as unix seconds (the "ends" forms above); -ERANGE
 * for one that is not after now. */
int parse_until(const char *text, long long now, long long *out);
/* "2026-11-23 14:00:05" in local time into buf. */
void format_time(long long t, char *buf, size_t len);
/* "3d 4h", "2h 5m", "4m 10s", "12s" into buf. */
void format_duration(long long seconds, char *buf, size_t len);

#endif
