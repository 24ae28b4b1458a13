/* SPDX-License-Identifier: MIT */
/*
 * The hub's requests to agents: the pokes after a change (api.c) and the
 * monitor's readings, history and usage (monitor.c).  One place builds an
 * agent's URL and bearer header from the hub's database, and one place
 * talks HTTP, with libcurl: a multi handle asks every agent at once, so a
 * round over 20 servers takes as long as the slowest, not the sum.
 *
 * Only http and https are followed, never a redirect; an answer is read
 * into memory up to a limit, so an agent cannot make the hub grow without
 * bound.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <sodium.h>

#include "hub.h"
#include "hubtoken.h"
#include "log.h"
#include "strutil.h"
#include "banned.h"

static pthread_once_t agentcall_once = PTHREAD_ONCE_INIT;

static void agentcall_global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

void agentcall_init(void)
{
	pthread_once(&agentcall_once, agentcall_global_init);
}

/* The agent is called with the token derived from the server's (see
 * hubtoken.h), never with the one that reads the members (/api/v1/sync):
 * the agent's API may be plain HTTP. */
int agentcall_target(struct hubdb *db, const char *server, const char *path,
		     struct agentcall_target *t)
{
	char token[HUB_TOKEN_HEX], to_agent[HUBTOKEN_HEX];
	struct hub_server s;
	size_t len;
	int ret;

	ret = hubdb_server_get(db, server, &s);
	if (ret == 0)
		ret = hubdb_server_token(db, server, token);
	if (ret == 0)
		ret = hubtoken_to_agent(token, strlen(token), to_agent);
	sodium_memzero(token, sizeof(token));
	if (ret < 0)
		return ret;
	len = strlen(s.url);
	while (len > 0 && s.url[len - 1] == '/')
		len--;
	snprintf(t->name, sizeof(t->name), "%s", s.name);
	snprintf(t->url, sizeof(t->url), "%.*s%s", (int)len, s.url, path);
	snprintf(t->authorization, sizeof(t->authorization), "Authorization: Bearer %s", to_agent);
	sodium_memzero(to_agent, sizeof(to_agent));
	return 0;
}

/* ---- one transfer ------------------------------------------------------------ */

struct agentcall_transfer {
	CURL *curl;
	struct curl_slist *headers;
	struct agentcall_answer *answer;
	size_t max_body;
	size_t cap;
	bool too_large;
	char curl_error[CURL_ERROR_SIZE];
};

static size_t agentcall_collect(char *data, size_t size, size_t n, void *user)
{
	struct agentcall_transfer *x = user;
	struct agentcall_answer *a = x->answer;
	int ret = buf_append(&a->body, &a->len, &x->cap, data, size * n, x->max_body);

	if (ret == -EFBIG)
		x->too_large = true;
	return ret < 0 ? 0 : size * n;    /* 0: libcurl ends the transfer */
}

static int agentcall_prepare(struct agentcall_transfer *x, const struct agentcall_target *t,
			     long timeout_ms, size_t max_body, struct agentcall_answer *answer)
{
	memset(answer, 0, sizeof(*answer));
	memset(x, 0, sizeof(*x));
	x->answer = answer;
	x->max_body = max_body;
	x->curl = curl_easy_init();
	x->headers = curl_slist_append(NULL, t->authorization);
	if (x->headers)
		x->headers = curl_slist_append(x->headers, "Accept: application/json");
	if (!x->curl || !x->headers) {
		snprintf(answer->error, sizeof(answer->error), "out of memory");
		return -ENOMEM;
	}
	curl_easy_setopt(x->curl, CURLOPT_URL, t->url);
	curl_easy_setopt(x->curl, CURLOPT_HTTPHEADER, x->headers);
	curl_easy_setopt(x->curl, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(x->curl, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	curl_easy_setopt(x->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(x->curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(x->curl, CURLOPT_ERRORBUFFER, x->curl_error);
	curl_easy_setopt(x->curl, CURLOPT_WRITEFUNCTION, agentcall_collect);
	curl_easy_setopt(x->curl, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->curl, CURLOPT_PRIVATE, x);
	return 0;
}

/* The agent's own words for a refusal: its first line, printable only. */
static void agentcall_error_from_body(struct agentcall_answer *a)
{
	size_t n = 0;
	int at = snprintf(a->error, sizeof(a->error), "the agent answered HTTP %ld", a->status);

	if (!a->body || a->len == 0 || at < 0 || (size_t)at + 3 >= sizeof(a->error))
		return;
	a->error[at++] = ':';
	a->error[at++] = ' ';
	while (n < a->len && a->body[n] != '\n' && (size_t)at + 1 < sizeof(a->error)) {
		unsigned char c = (unsigned char)a->body[n++];

		a->error[at++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	a->error[at] = '\0';
}

static void agentcall_finish(struct agentcall_transfer *x, CURLcode rc)
{
	struct agentcall_answer *a = x->answer;

	if (rc == CURLE_OK)
		curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &a->status);
	if (x->too_large)
		snprintf(a->error, sizeof(a->error), "the agent's answer is over %zu bytes",
			 x->max_body);
	else if (rc != CURLE_OK)
		snprintf(a->error, sizeof(a->error), "%.*s", (int)sizeof(a->error) - 1,
			 x->curl_error[0] ? x->curl_error : curl_easy_strerror(rc));
	else if (a->status < 200 || a->status > 299)
		agentcall_error_from_body(a);
	if (a->error[0] && (x->too_large || rc != CURLE_OK)) {
		a->status = 0;
		free(a->body);
		a->body = NULL;
		a->len = 0;
	}
	curl_slist_free_all(x->headers);
	curl_easy_cleanup(x->curl);
	x->headers = NULL;
	x->curl = NULL;
}

/* ---- many at once -------------------------------------------------------------- */

void agentcall_get(const struct agentcall_target *targets, size_t n, long timeout_ms,
		   size_t max_body, struct agentcall_answer *answers)
{
	struct agentcall_transfer *x = calloc(n ? n : 1, sizeof(*x));
	CURLM *multi;
	int running = 0;

	agentcall_init();
	multi = curl_multi_init();
	if (!x || !multi) {
		for (size_t i = 0; i < n; i++) {
			memset(&answers[i], 0, sizeof(answers[i]));
			snprintf(answers[i].error, sizeof(answers[i].error), "out of memory");
		}
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if (agentcall_prepare(&x[i], &targets[i], timeout_ms, max_body, &answers[i]) == 0)
			curl_multi_add_handle(multi, x[i].curl);
	do {
		CURLMsg *msg;
		int left;

		if (curl_multi_perform(multi, &running) != CURLM_OK)
			break;
		while ((msg = curl_multi_info_read(multi, &left))) {
			struct agentcall_transfer *done = NULL;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&done);
			curl_multi_remove_handle(multi, msg->easy_handle);
			agentcall_finish(done, msg->data.result);
		}
		if (running)
			curl_multi_poll(multi, NULL, 0, 1000, NULL);
	} while (running);
out:
	/* Whatever the loop did not finish (a multi failure) ends here. */
	for (size_t i = 0; x && i < n; i++) {
		if (!x[i].curl && !x[i].headers)
			continue;
		if (x[i].curl)
			curl_multi_remove_handle(multi, x[i].curl);
		agentcall_finish(&x[i], CURLE_ABORTED_BY_CALLBACK);
	}
	curl_multi_cleanup(multi);
	free(x);
}

void agentcall_post(const struct agentcall_target *t, long timeout_ms,
		    struct agentcall_answer *answer)
{
	struct agentcall_transfer x;

	agentcall_init();
	if (agentcall_prepare(&x, t, timeout_ms, 4096, answer) == 0) {
		curl_easy_setopt(x.curl, CURLOPT_POST, 1L);
		curl_easy_setopt(x.curl, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(x.curl, CURLOPT_POSTFIELDSIZE, 0L);
		agentcall_finish(&x, curl_easy_perform(x.curl));
	} else {
		agentcall_finish(&x, CURLE_OUT_OF_MEMORY);
	}
}

void agentcall_answer_free(struct agentcall_answer *a)
{
	free(a->body);
	a->body = NULL;
	a->len = 0;
}
