/* SPDX-License-Identifier: MIT */
/*
 * Telling people: the lab's chat through a webhook (notify.c), and a
 * member on their next gpubox command (notices.c).
 * Every function returns 0 or a negative errno unless it says otherwise.
 */
#ifndef GPUBOX_AGENT_NOTIFY_H
#define GPUBOX_AGENT_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct agent;

#define NOTIFY_TEXT_MAX 1024
#define NOTICE_TEXT_MAX 512
#define NOTICE_KEY_MAX 48

/* ---- notify.c: notify_webhook, a JSON POST Slack, Mattermost and Matrix
 * (hookshot) hooks take ---------------------------------------------------- */

struct notify;

/* notify_webhook read (from its file when it names one: a root-owned file
 * nobody else may read) and its thread started; *out NULL without one.
 * -EINVAL (logged) for a URL or file that cannot be used. */
int notify_start(struct agent *a, struct notify **out);
void notify_stop(struct notify *n);
/*
 * "[server] text" to the webhook, in the background: never waits, never
 * fails the caller.  A message that cannot be delivered is tried again a
 * few times, the waits growing; when too many wait, the oldest is dropped
 * (logged).  event ("idle", "reclaim", "reservation-start", ...) and
 * member go to the log line only.  Nothing without a webhook.
 */
void notify_event(struct agent *a, const char *event, const char *member, const char *text);
/* The request body for text: {"text": "..."}, JSON-escaped (caller frees). */
char *notify_body(const char *text);
/* src copied into dst: every byte that is not printable ASCII or a line
 * feed becomes '?', so that no program's name breaks a JSON string or a
 * terminal; cut at len - 1. */
void notify_plain_text(char *dst, size_t len, const char *src);

/* ---- notices.c: notices shown on a member's next command ---------------- */

struct notices;

int notices_new(struct notices **out);
void notices_free(struct notices *b);
/* Keep text (made plain) for member's next command, in place of any
 * notice with the same key. */
void notices_post(struct notices *b, const char *member, const char *key, const char *text);
void notices_withdraw(struct notices *b, const char *member, const char *key);
/* The member's notices as a JSON array of strings, oldest first, and
 * forgotten; NULL when there are none. */
json_t *notices_take(struct notices *b, const char *member);

#endif
