/* SPDX-License-Identifier: MIT */
/*
 * The hub's HTML helpers (html.c): escaping and the page skeleton that
 * every page of pages.c shares.  Kept apart from hub.h because only
 * pages.c (and later the monitor's pages) print HTML.
 *
 * Escaping is the default: html_printf() escapes every %s argument, so a
 * value can only reach the page as text; markup comes from the format
 * string, which is always a literal.
 */
#ifndef GPUBOX_HUB_HTML_H
#define GPUBOX_HUB_HTML_H

#include <stddef.h>
#include <stdio.h>

/* One page being written into memory. */
struct html_page {
	FILE *out;
	char *text;
	size_t len;
};

/* Write s with & < > " ' replaced by entities; safe in text and in quoted
 * attribute values.  NULL writes nothing. */
void html_escape(FILE *out, const char *s);

/* fprintf for markup: every %s argument is escaped.  Conversions: %s %c
 * %d %u %ld %lu %lld %llu %zu and %%, without flags or widths; anything
 * else is a bug and prints nothing. */
__attribute__((format(printf, 2, 3)))
void html_printf(FILE *out, const char *fmt, ...);

/* Open a page: doctype, head (charset, viewport, title "TITLE · SITE",
 * the stylesheet, then head: markup written as it is, a literal; NULL
 * for none) and <body>.  -ENOMEM. */
int html_begin(struct html_page *page, const char *title, const char *site, const char *head);
/* Close </body></html> and hand the text over (*body is the caller's). */
int html_end(struct html_page *page, char **body);
/* Drop a page that will not be sent; safe to call twice or after html_end. */
void html_discard(struct html_page *page);

#endif
