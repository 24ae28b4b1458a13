/* SPDX-License-Identifier: MIT */
/*
 * What the hub's page files share (pages.c, monitor_pages.c): one request's
 * context, the page skeleton and the guard that every page goes through
 * (pages.c explains its rules).
 */
#ifndef GPUBOX_HUB_PAGES_H
#define GPUBOX_HUB_PAGES_H

#include <stdbool.h>

#include "hub.h"
#include "html.h"

#define PAGES_TYPE_HTML "text/html; charset=utf-8"
#define PAGES_TYPE_TEXT "text/plain; charset=utf-8"
#define PAGES_TYPE_CSS "text/css; charset=utf-8"

struct pages_ctx {
	struct http_request *req;
	struct hub *hub;
	struct hub_member me;       /* valid when member */
	bool member;                /* false: a visitor of the public monitor */
	const char *head;           /* extra markup for <head> (a literal), or NULL */
	struct html_page page;
};

void pages_ctx_release(struct pages_ctx *ctx);
#define __do_pages_ctx __attribute__((cleanup(pages_ctx_release)))

enum {
	PAGES_NEED_CSRF = 1 << 0,
	PAGES_NEED_ADMIN = 1 << 1,
	PAGES_MAY_BE_PUBLIC = 1 << 2,   /* nobody signed in is let through with monitor_public */
};

typedef int (*pages_action)(struct pages_ctx *ctx, struct http_response *resp);

/* Session, CSRF, member, admin as needs says; then action. */
int pages_guarded(struct http_request *req, struct http_response *resp, unsigned needs,
		  pages_action action);

const char *pages_site(const struct hub *hub);
const char *pages_query(const struct http_request *req, const char *name);
/* The document up to the site's header (ctx->head included). */
int pages_begin(struct pages_ctx *ctx, const char *title);
/* pages_begin, then <main class="main_class"><h1>title</h1>. */
int pages_open(struct pages_ctx *ctx, const char *title, const char *main_class);
/* </main>, the footer, and the reply. */
int pages_send(struct pages_ctx *ctx, struct http_response *resp, unsigned status);
/* A page saying one thing (a refusal, a missing page). */
int pages_message(struct pages_ctx *ctx, struct http_response *resp, unsigned status,
		  const char *title, const char *text);
/* Logged, and a page saying the hub failed. */
int pages_failed(struct pages_ctx *ctx, struct http_response *resp, int err, const char *what);

#endif
