/* SPDX-License-Identifier: MIT */
/*
 * The monitor's pages.  The live ones (the overview, a server, a GPU, a
 * member's own containers) are shells: the site's header and an empty
 * <main> whose data-* attributes tell /static/monitor.js what to draw from
 * the JSON of monitor_api.c; the browser keeps them up to date.  The usage
 * report is a plain page (and a CSV file) built here, so that it can be
 * read, printed and linked without any script.
 *
 * The files under /static/ (the script, its stylesheet, the chart library)
 * are compiled into the program (embed.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "hub.h"
#include "html.h"
#include "log.h"
#include "pages.h"
#include "strutil.h"
#include "timeparse.h"
#include "validate.h"
#include "banned.h"

#define MONITOR_PAGES_SERVERS "/monitor/servers/"
#define MONITOR_PAGES_GPU_MAX 1023
#define MONITOR_PAGES_HEAD \
	"<link rel=\"stylesheet\" href=\"/static/uplot.css\">\n" \
	"<link rel=\"stylesheet\" href=\"/static/monitor.css\">\n"
#define MONITOR_PAGES_CSV "text/csv; charset=utf-8"

/* ---- the shells -------------------------------------------------------------------- */

/* Open the page and <main> with the attributes the script reads. */
static int monitor_pages_shell_open(struct pages_ctx *ctx, const char *title)
{
	int r;

	ctx->head = MONITOR_PAGES_HEAD;
	r = pages_begin(ctx, title);
	if (r < 0)
		return r;
	fputs("<main class=\"monitor\" id=\"monitor\"", ctx->page.out);
	return 0;
}

static int monitor_pages_shell_send(struct pages_ctx *ctx, struct http_response *resp,
				    const char *title)
{
	html_printf(ctx->page.out,
		    ">\n<h1>%s</h1>\n"
		    "<noscript><p class=\"flash error\">These pages draw the lab's servers "
		    "with JavaScript; turn it on for this site.</p></noscript>\n"
		    "<script src=\"/static/uplot.js\"></script>\n"
		    "<script src=\"/static/monitor.js\"></script>\n",
		    title);
	return pages_send(ctx, resp, 200);
}

static int monitor_pages_overview_show(struct pages_ctx *ctx, struct http_response *resp)
{
	int r = monitor_pages_shell_open(ctx, "Monitor");

	if (r < 0)
		return r;
	html_printf(ctx->page.out, " data-page=\"overview\" data-names=\"%s\"",
		    ctx->member ? "true" : "false");
	return monitor_pages_shell_send(ctx, resp, "Monitor");
}

int monitor_pages_overview(struct http_request *req, struct http_response *resp)
{
	return pages_guarded(req, resp, PAGES_MAY_BE_PUBLIC, monitor_pages_overview_show);
}

/* "/monitor/servers/NAME" or ".../NAME/gpus/I": false when malformed. */
static bool monitor_pages_parse_server(const char *path, char server[HUB_NAME_MAX], int *gpu)
{
	const char *name = path + strlen(MONITOR_PAGES_SERVERS), *rest = strchr(name, '/');
	size_t len = rest ? (size_t)(rest - name) : strlen(name);
	uint64_t index;

	*gpu = -1;
	if (len == 0 || len >= HUB_NAME_MAX)
		return false;
	memcpy(server, name, len);
	server[len] = '\0';
	if (validate_member_name(server, NULL, 0) < 0)
		return false;
	if (!rest)
		return true;
	if (!str_has_prefix(rest, "/gpus/") ||
	    parse_uint_max(rest + strlen("/gpus/"), MONITOR_PAGES_GPU_MAX, &index) < 0)
		return false;
	*gpu = (int)index;
	return true;
}

static int monitor_pages_server_show(struct pages_ctx *ctx, struct http_response *resp)
{
	char server[HUB_NAME_MAX], title[HUB_NAME_MAX + 32];
	struct hub_server row;
	int gpu, r;

	if (!monitor_pages_parse_server(ctx->req->path, server, &gpu) ||
	    hubdb_server_get(ctx->hub->db, server, &row) < 0)
		return pages_message(ctx, resp, 404, "Not found",
				     "There is no such server on this hub; see the monitor's list.");
	if (gpu < 0)
		snprintf(title, sizeof(title), "%s", row.name);
	else
		snprintf(title, sizeof(title), "%s · GPU %d", row.name, gpu);
	r = monitor_pages_shell_open(ctx, title);
	if (r < 0)
		return r;
	if (gpu < 0)
		html_printf(ctx->page.out, " data-page=\"server\" data-server=\"%s\"", row.name);
	else
		html_printf(ctx->page.out, " data-page=\"gpu\" data-server=\"%s\" data-gpu=\"%d\"",
			    row.name, gpu);
	html_printf(ctx->page.out, " data-names=\"%s\"", ctx->member ? "true" : "false");
	return monitor_pages_shell_send(ctx, resp, title);
}

int monitor_pages_server(struct http_request *req, struct http_response *resp)
{
	return pages_guarded(req, resp, PAGES_MAY_BE_PUBLIC, monitor_pages_server_show);
}

static int monitor_pages_me_show(struct pages_ctx *ctx, struct http_response *resp)
{
	int r = monitor_pages_shell_open(ctx, "My containers");

	if (r < 0)
		return r;
	fputs(" data-page=\"me\"", ctx->page.out);
	return monitor_pages_shell_send(ctx, resp, "My containers");
}

int monitor_pages_me(struct http_request *req, struct http_response *resp)
{
	return pages_guarded(req, resp, 0, monitor_pages_me_show);
}

/* ---- the usage report ------------------------------------------------------------- */

struct monitor_pages_period {
	long long from;               /* unix seconds */
	long long to;
	char from_text[64];           /* as asked, for the form */
	char to_text[64];
};

/*
 * The period of ?since=7d, or of ?from=&to= in any form gpubox reads
 * ("2026-11-01", "3 days ago", "@1763900000"); a "to" that is a date
 * alone means the end of that day.  Default: the last 7 days.
 */
static int monitor_pages_period(const struct http_request *req, struct monitor_pages_period *p,
				const char **problem)
{
	const char *since = pages_query(req, "since"), *from = pages_query(req, "from");
	const char *to = pages_query(req, "to");
	long long now = (long long)time(NULL), seconds;

	memset(p, 0, sizeof(*p));
	p->to = now;
	if (since || (!from && !to)) {
		if (parse_duration(since ? since : "7d", &seconds) < 0) {
			*problem = "since takes a duration such as 24h, 7d or 4w.";
			return -EINVAL;
		}
		p->from = now - seconds;
		return 0;
	}
	if (!from || parse_time(from, now, &p->from) < 0 || (to && *to &&
	    parse_time(to, now, &p->to) < 0)) {
		*problem = "From and to take dates such as 2026-11-01, or times such as "
			   "\"3 days ago\".";
		return -EINVAL;
	}
	if (to && strlen(to) == 10)
		p->to += 86400;
	if (p->from >= p->to) {
		*problem = "The period must begin before it ends.";
		return -EINVAL;
	}
	snprintf(p->from_text, sizeof(p->from_text), "%s", from);
	snprintf(p->to_text, sizeof(p->to_text), "%s", to ? to : "");
	return 0;
}

static void monitor_pages_usage_form(struct pages_ctx *ctx, const struct monitor_pages_period *p)
{
	static const char *const presets[][2] = {
		{ "24h", "Last 24 hours" }, { "7d", "Last 7 days" }, { "30d", "Last 30 days" },
	};
	FILE *out = ctx->page.out;

	html_printf(out,
		    "<form class=\"card period\" method=\"get\" action=\"/monitor/usage\">\n"
		    "<label for=\"from\">From</label>\n"
		    "<input id=\"from\" name=\"from\" type=\"text\" placeholder=\"2026-11-01\" "
		    "value=\"%s\">\n"
		    "<label for=\"to\">To (included)</label>\n"
		    "<input id=\"to\" name=\"to\" type=\"text\" placeholder=\"now\" value=\"%s\">\n"
		    "<button type=\"submit\" id=\"show\">Show</button>\n"
		    "<p class=\"presets\">",
		    p->from_text, p->to_text);
	for (size_t i = 0; i < ARRAY_SIZE(presets); i++)
		html_printf(out, "%s<a href=\"/monitor/usage?since=%s\">%s</a>", i ? " · " : "",
			    presets[i][0], presets[i][1]);
	fputs("</p>\n</form>\n", out);
}

static void monitor_pages_usage_missing(FILE *out, json_t *servers)
{
	json_t *s;
	size_t i;

	json_array_foreach(servers, i, s) {
		if (json_is_true(json_object_get(s, "ok")))
			continue;
		html_printf(out, "<p class=\"flash error\" role=\"alert\">Incomplete: %s did not "
			    "answer (%s), so its usage is not counted.</p>\n",
			    json_string_value(json_object_get(s, "name")),
			    json_string_value(json_object_get(s, "error")));
	}
}

static void monitor_pages_usage_table(FILE *out, json_t *usage)
{
	double hours = 0, mem = 0, idle = 0;
	json_t *row;
	size_t i;

	if (json_array_size(json_object_get(usage, "members")) == 0) {
		fputs("<p id=\"usage-empty\">Nobody used a GPU in this period.</p>\n", out);
		return;
	}
	fputs("<div class=\"scroll\"><table class=\"usage\" id=\"usage\">\n<thead><tr>"
	      "<th scope=\"col\">Member</th><th scope=\"col\" class=\"num\">GPU-hours</th>"
	      "<th scope=\"col\" class=\"num\">Idle GPU-hours</th>"
	      "<th scope=\"col\" class=\"num\">GPU memory (GiB-hours)</th>"
	      "<th scope=\"col\">By server (GPU-hours)</th></tr></thead>\n<tbody>\n", out);
	json_array_foreach(json_object_get(usage, "members"), i, row) {
		json_t *per = json_object_get(row, "servers"), *v;
		const char *server, *sep = "";
		double h = json_number_value(json_object_get(row, "gpu_hours"));
		double g = json_number_value(json_object_get(row, "gpu_mem_gib_hours"));
		double d = json_number_value(json_object_get(row, "idle_gpu_hours"));
		char a[32], b[32], c[32];

		hours += h;
		mem += g;
		idle += d;
		snprintf(a, sizeof(a), "%.2f", h);
		snprintf(b, sizeof(b), "%.1f", g);
		snprintf(c, sizeof(c), "%.2f", d);
		html_printf(out, "<tr class=\"usage-row\"><th scope=\"row\">%s</th>"
			    "<td class=\"num\">%s</td><td class=\"num idle\">%s</td><td class=\"num\">%s</td><td>",
			    json_string_value(json_object_get(row, "member")), a, c, b);
		json_object_foreach(per, server, v) {
			snprintf(a, sizeof(a), "%.2f",
				 json_number_value(json_object_get(v, "gpu_hours")));
			html_printf(out, "%s%s %s", sep, server, a);
			sep = ", ";
		}
		fputs("</td></tr>\n", out);
	}
	{
		char a[32], b[32], c[32];

		snprintf(a, sizeof(a), "%.2f", hours);
		snprintf(b, sizeof(b), "%.1f", mem);
		snprintf(c, sizeof(c), "%.2f", idle);
		html_printf(out, "</tbody>\n<tfoot><tr><th scope=\"row\">All members</th>"
			    "<td class=\"num\">%s</td><td class=\"num\">%s</td><td class=\"num\">%s</td>"
			    "<td></td></tr></tfoot>\n</table></div>\n", a, c, b);
	}
}

/* The report for the period asked, or a page saying what is wrong. */
static int monitor_pages_usage_get(struct pages_ctx *ctx, struct http_response *resp,
				   struct monitor_pages_period *p, json_t **usage)
{
	const char *problem = NULL;
	int r;

	*usage = NULL;
	if (!ctx->hub->monitor)
		return pages_message(ctx, resp, 503, "Monitor off",
				     "The monitor is off on this hub (monitor_poll = 0).");
	if (monitor_pages_period(ctx->req, p, &problem) < 0)
		return pages_message(ctx, resp, 400, "GPU usage", problem);
	r = monitor_usage(ctx->hub->monitor, p->from * 1000, p->to * 1000, usage);
	if (r < 0)
		return pages_failed(ctx, resp, r, "gathering the usage");
	return 0;
}

static int monitor_pages_usage_show(struct pages_ctx *ctx, struct http_response *resp)
{
	__do_json json_t *usage = NULL;
	struct monitor_pages_period p;
	char from[32], to[32];
	FILE *out;
	int r;

	r = monitor_pages_usage_get(ctx, resp, &p, &usage);
	if (r < 0 || !usage)
		return r;
	r = pages_open(ctx, "GPU usage", "wide");
	if (r < 0)
		return r;
	out = ctx->page.out;
	format_time(p.from, from, sizeof(from));
	format_time(p.to, to, sizeof(to));
	html_printf(out, "<p>GPU-hours: hours a member had at least one process on a GPU, "
		    "summed over GPUs. Idle GPU-hours: of those, the hours the GPU was marked idle "
		    "for the member (memory held at 0 %% utilisation). GPU memory: GiB held × hours.</p>\n");
	monitor_pages_usage_form(ctx, &p);
	html_printf(out, "<h2 id=\"period\">%s to %s</h2>\n", from, to);
	monitor_pages_usage_missing(out, json_object_get(usage, "servers"));
	monitor_pages_usage_table(out, usage);
	html_printf(out, "<p><a id=\"usage-csv\" href=\"/monitor/usage.csv?from=@%lld&amp;to=@%lld\" "
		    "download>Download as CSV</a></p>\n", p.from, p.to);
	return pages_send(ctx, resp, 200);
}

int monitor_pages_usage(struct http_request *req, struct http_response *resp)
{
	return pages_guarded(req, resp, 0, monitor_pages_usage_show);
}

/* member,gpu_hours,gpu_mem_gib_hours,idle_gpu_hours, then the three per
 * server that answered (one that did not has no columns rather than zeros).  Names are validated
 * words (letters first), so no cell can start a formula. */
static void monitor_pages_csv_hours(FILE *out, json_t *hours)
{
	fprintf(out, ",%.4f,%.4f,%.4f", json_number_value(json_object_get(hours, "gpu_hours")),
		json_number_value(json_object_get(hours, "gpu_mem_gib_hours")),
		json_number_value(json_object_get(hours, "idle_gpu_hours")));
}

static int monitor_pages_usage_csv_show(struct pages_ctx *ctx, struct http_response *resp)
{
	__do_json json_t *usage = NULL;
	struct monitor_pages_period p;
	__do_free char *text = NULL;
	size_t len = 0;
	json_t *row, *server;
	size_t i, k;
	FILE *out;
	int r;

	r = monitor_pages_usage_get(ctx, resp, &p, &usage);
	if (r < 0 || !usage)
		return r;
	out = open_memstream(&text, &len);
	if (!out)
		return -ENOMEM;
	fputs("member,gpu_hours,gpu_mem_gib_hours,idle_gpu_hours", out);
	json_array_foreach(json_object_get(usage, "servers"), k, server) {
		const char *name = json_string_value(json_object_get(server, "name"));

		if (json_is_true(json_object_get(server, "ok")))
			fprintf(out, ",%s_gpu_hours,%s_gpu_mem_gib_hours,%s_idle_gpu_hours", name, name,
				name);
	}
	fputs("\r\n", out);
	json_array_foreach(json_object_get(usage, "members"), i, row) {
		json_t *per = json_object_get(row, "servers");

		fprintf(out, "%s", json_string_value(json_object_get(row, "member")));
		monitor_pages_csv_hours(out, row);
		json_array_foreach(json_object_get(usage, "servers"), k, server) {
			json_t *v = json_object_get(per, json_string_value(
				json_object_get(server, "name")));

			if (!json_is_true(json_object_get(server, "ok")))
				continue;
			monitor_pages_csv_hours(out, v);
		}
		fputs("\r\n", out);
	}
	if (!memstream_close(out))
		return -ENOMEM;
	r = http_reply_len(resp, 200, MONITOR_PAGES_CSV, text, len);
	text = NULL;
	if (r < 0)
		return r;
	return http_add_header(resp, "Content-Disposition: attachment; "
			       "filename=\"gpu-usage-%lld-%lld.csv\"", p.from, p.to);
}

int monitor_pages_usage_csv(struct http_request *req, struct http_response *resp)
{
	return pages_guarded(req, resp, 0, monitor_pages_usage_csv_show);
}

/* ---- /static/ ------------------------------------------------------------------------ */

int monitor_pages_static(struct http_request *req, struct http_response *resp)
{
	for (size_t i = 0; i < static_assets_count; i++) {
		const struct static_asset *a = &static_assets[i];
		char *copy;
		int r;

		if (strcmp(req->path, a->path) != 0)
			continue;
		copy = malloc(a->len ? a->len : 1);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, a->data, a->len);
		r = http_reply_len(resp, 200, a->type, copy, a->len);
		if (r < 0)
			return r;
		/* The same bytes for everyone: nothing to leak by their length. */
		resp->compress = true;
		/* The same program serves the same files: browsers may keep them
		 * a while (a new version is seen within five minutes). */
		return http_add_header(resp, "Cache-Control: public, max-age=300");
	}
	return http_reply_error(resp, 404, "No such file.");
}
