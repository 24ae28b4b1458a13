/* SPDX-License-Identifier: MIT */
/*
 * The monitor's JSON (docs/hub-api.md, "Monitor endpoints"): what the
 * monitor pages' script reads.  Readable by signed-in members, or by
 * anyone when monitor_public is set, and then without member names; the
 * usage report and a member's own view always need a session.
 *
 * A query never travels to an agent as sent: its numbers are parsed here
 * and a new query is written from them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "hub.h"
#include "log.h"
#include "strutil.h"
#include "validate.h"
#include "banned.h"

#define MONITOR_API_PREFIX "/api/v1/monitor/servers/"
#define MONITOR_API_POINTS_DEFAULT 300
#define MONITOR_API_POINTS_MAX 2000
#define MONITOR_API_GPU_MAX 1023
#define MONITOR_API_TIME_MAX 32503680000000ULL   /* year 3000, in ms */

static bool monitor_api_member(const struct http_request *req)
{
	struct hub_member m;

	return req->signed_in && hubdb_member_get(req->hub->db, req->session.member, &m) == 0 &&
	       !m.disabled;
}

bool monitor_api_readable(const struct http_request *req, bool *names)
{
	*names = monitor_api_member(req);
	return *names || req->hub->cfg.monitor_public;
}

/* The monitor is on and the caller may read it; else the reply is filled. */
static bool monitor_api_guard(struct http_request *req, struct http_response *resp,
			      bool need_member, bool *names)
{
	if (!monitor_api_readable(req, names) || (need_member && !*names)) {
		http_reply_error(resp, 401, "Sign in first.");
		return false;
	}
	if (!req->hub->monitor) {
		http_reply_error(resp, 503, "The monitor is off on this hub (monitor_poll = 0).");
		return false;
	}
	return true;
}

static int monitor_api_json(struct http_response *resp, json_t *doc)
{
	int ret;

	if (!doc)
		return -ENOMEM;
	ret = http_reply_json(resp, 200, doc);
	json_decref(doc);
	return ret;
}

/* Asked for every few seconds by every open monitor page: compressed once
 * per round (monitor.c), not once per answer (http.c).  It may be
 * compressed: nothing a request says is in it, to be guessed against
 * what it holds (BREACH). */
int monitor_api_overview(struct http_request *req, struct http_response *resp)
{
	enum http_encoding enc = encoding_pick(http_request_header(req, "Accept-Encoding"));
	char *text = NULL;
	size_t len = 0;
	bool names;
	int ret;

	if (!monitor_api_guard(req, resp, false, &names))
		return 0;
	ret = monitor_overview(req->hub->monitor, names, &enc, &text, &len);
	if (ret < 0)
		return ret;
	http_reply_len(resp, 200, "application/json", text, len);
	resp->compress = true;
	if (enc == HTTP_ENCODING_IDENTITY)
		return 0;
	ret = http_add_header(resp, "Content-Encoding: %s", encoding_name(enc));
	return ret < 0 ? ret : http_add_header(resp, "Vary: Accept-Encoding");
}

/* ---- the query --------------------------------------------------------------------- */

/* A whole number of the query, fallback when absent; false if malformed. */
static bool monitor_api_number(const struct http_request *req, const char *key, uint64_t fallback,
			       uint64_t max, uint64_t *out)
{
	const char *text = req->query ? form_get(req->query, key) : NULL;

	*out = fallback;
	return !text || parse_uint_max(text, max, out) == 0;
}

/* from and to in unix ms (default: span before now), from < to. */
static bool monitor_api_range(const struct http_request *req, uint64_t span, uint64_t *from,
			      uint64_t *to)
{
	uint64_t now = (uint64_t)time(NULL) * 1000;

	return monitor_api_number(req, "to", now, MONITOR_API_TIME_MAX, to) &&
	       monitor_api_number(req, "from", *to > span ? *to - span : 0, MONITOR_API_TIME_MAX,
				  from) &&
	       *from < *to;
}

/* "/api/v1/monitor/servers/NAME/WHAT": NAME a valid name, WHAT one word. */
static bool monitor_api_split(const char *path, char server[HUB_NAME_MAX], const char **what)
{
	const char *name = path + strlen(MONITOR_API_PREFIX), *slash = strchr(name, '/');
	size_t len = slash ? (size_t)(slash - name) : 0;

	if (!slash || len == 0 || len >= HUB_NAME_MAX)
		return false;
	memcpy(server, name, len);
	server[len] = '\0';
	*what = slash + 1;
	return validate_member_name(server, NULL, 0) == 0;
}

/* The agent's path for what, from the query; false when malformed. */
static bool monitor_api_agent_path(const struct http_request *req, const char *what, char *path,
				   size_t len, const char **problem)
{
	uint64_t gpu, from, to, points, t;
	bool has_gpu = req->query && form_get(req->query, "gpu");

	if (!monitor_api_number(req, "gpu", 0, MONITOR_API_GPU_MAX, &gpu)) {
		*problem = "gpu is a GPU's index.";
		return false;
	}
	if (strcmp(what, "history") == 0) {
		*problem = "Give from < to (unix milliseconds) and points (1 to 2000).";
		if (!monitor_api_range(req, 3600000, &from, &to) ||
		    !monitor_api_number(req, "points", MONITOR_API_POINTS_DEFAULT,
					MONITOR_API_POINTS_MAX, &points) || points == 0)
			return false;
		if (has_gpu)
			snprintf(path, len, "/api/v1/history?gpu=%llu&from=%llu&to=%llu&points=%llu",
				 (unsigned long long)gpu, (unsigned long long)from,
				 (unsigned long long)to, (unsigned long long)points);
		else
			snprintf(path, len, "/api/v1/history?from=%llu&to=%llu&points=%llu",
				 (unsigned long long)from, (unsigned long long)to,
				 (unsigned long long)points);
		return true;
	}
	*problem = "Give gpu (an index) and t (unix milliseconds).";
	if (!has_gpu || !req->query || !form_get(req->query, "t") ||
	    !monitor_api_number(req, "t", 0, MONITOR_API_TIME_MAX, &t))
		return false;
	snprintf(path, len, "/api/v1/at?gpu=%llu&t=%llu", (unsigned long long)gpu,
		 (unsigned long long)t);
	return true;
}

/* ---- the routes -------------------------------------------------------------------- */

int monitor_api_server(struct http_request *req, struct http_response *resp)
{
	char server[HUB_NAME_MAX], path[192], err[320];
	const char *what = NULL, *problem = NULL;
	json_t *answer = NULL;
	bool names;
	int ret;

	if (!monitor_api_guard(req, resp, false, &names))
		return 0;
	if (!monitor_api_split(req->path, server, &what) ||
	    (strcmp(what, "history") != 0 && strcmp(what, "at") != 0))
		return http_reply_error(resp, 404, "No such monitor address: use "
					"/api/v1/monitor/servers/<server>/history or .../at.");
	if (!monitor_api_agent_path(req, what, path, sizeof(path), &problem))
		return http_reply_error(resp, 400, problem);
	ret = monitor_ask(req->hub->monitor, server, path, &answer, err, sizeof(err));
	if (ret == -ENOENT)
		return http_reply_error(resp, 404, "There is no server of that name.");
	if (ret == -ENODATA)
		return http_reply_error(resp, 404, err);
	if (ret == -EHOSTUNREACH)
		return http_reply_error(resp, 502, err);
	if (ret < 0)
		return ret;
	if (!names)
		monitor_strip_names(answer);
	return monitor_api_json(resp, answer);
}

int monitor_api_usage(struct http_request *req, struct http_response *resp)
{
	uint64_t from, to;
	json_t *usage = NULL;
	bool names;
	int ret;

	if (!monitor_api_guard(req, resp, true, &names))
		return 0;
	if (!monitor_api_range(req, 7 * 86400000ULL, &from, &to))
		return http_reply_error(resp, 400, "Give from < to, in unix milliseconds.");
	ret = monitor_usage(req->hub->monitor, (long long)from, (long long)to, &usage);
	if (ret < 0)
		return ret;
	return monitor_api_json(resp, usage);
}

int monitor_api_me(struct http_request *req, struct http_response *resp)
{
	json_t *mine = NULL;
	bool names;
	int ret;

	if (!monitor_api_guard(req, resp, true, &names))
		return 0;
	ret = monitor_member(req->hub->monitor, req->session.member, &mine);
	if (ret < 0)
		return ret;
	return monitor_api_json(resp, mine);
}
