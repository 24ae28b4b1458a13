/* SPDX-License-Identifier: MIT */
/*
 * notify_webhook: one JSON POST per event, {"text": "[server] ..."}, the
 * body Slack's and Mattermost's incoming webhooks and Matrix's hookshot
 * take as it is.
 *
 * The agent never waits on the lab's chat: notify_event() puts the
 * message in a bounded queue and returns, and one thread of this file's
 * sends the queue in order.  A message that gets no answer, or a 429 or
 * 5xx, is tried again NOTIFY_ATTEMPTS times in all, the wait doubling
 * from NOTIFY_RETRY_FIRST_MS; any other answer ends it.  When the queue
 * is full the oldest message is dropped; each loss is logged.
 *
 * A hook's URL is its secret, and gpubox.conf is readable by every
 * member: notify_webhook may name a root-owned file nobody else may read
 * that holds the URL instead.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "curldefaults.h"
#include "notify.h"
#include "cleanup.h"
#include "fsutil.h"
#include "log.h"
#include "banned.h"

#define NOTIFY_QUEUE_MAX 64
#define NOTIFY_ATTEMPTS 4
#define NOTIFY_RETRY_FIRST_MS 2000LL
#define NOTIFY_TIMEOUT_SECONDS 10L
#define NOTIFY_URL_MAX 1024

struct notify_message {
	char *body;
	char event[32];
	char member[MEMBER_NAME_SIZE];
	unsigned attempts;           /* made so far */
	long long next_ms;           /* monotonic: not before then */
};

struct notify {
	char url[NOTIFY_URL_MAX];
	char server[CONFIG_NAME_MAX];
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stopping;               /* under lock */
	struct notify_message queue[NOTIFY_QUEUE_MAX];   /* a ring, under lock */
	size_t head, count;
};

static long long notify_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void notify_plain_text(char *dst, size_t len, const char *src)
{
	size_t i;

	if (len == 0)
		return;
	for (i = 0; src[i] && i < len - 1; i++) {
		unsigned char c = (unsigned char)src[i];

		dst[i] = (c >= 0x20 && c < 0x7f) || c == '\n' ? (char)c : '?';
	}
	dst[i] = '\0';
}

char *notify_body(const char *text)
{
	char plain[NOTIFY_TEXT_MAX];
	__do_json json_t *body = NULL;

	notify_plain_text(plain, sizeof(plain), text);
	body = json_pack("{s:s}", "text", plain);
	return body ? json_dumps(body, JSON_COMPACT) : NULL;
}

/* ---- the queue -------------------------------------------------------------- */

static void notify_message_drop(struct notify_message *m, const char *why)
{
	log_warn("notify: the %s message%s%s was not sent: %s", m->event, m->member[0] ? " about " : "",
		 m->member, why);
	free(m->body);
	m->body = NULL;
}

/* Under lock: room for one more, the oldest dropped if need be. */
static void notify_make_room(struct notify *n)
{
	if (n->count < NOTIFY_QUEUE_MAX)
		return;
	notify_message_drop(&n->queue[n->head], "too many messages were waiting for the webhook");
	n->head = (n->head + 1) % NOTIFY_QUEUE_MAX;
	n->count--;
}

static void notify_push_back(struct notify *n, const struct notify_message *m)
{
	notify_make_room(n);
	n->queue[(n->head + n->count) % NOTIFY_QUEUE_MAX] = *m;
	n->count++;
}

/* A message to try again goes first: the order is kept. */
static void notify_push_front(struct notify *n, const struct notify_message *m)
{
	notify_make_room(n);
	n->head = (n->head + NOTIFY_QUEUE_MAX - 1) % NOTIFY_QUEUE_MAX;
	n->queue[n->head] = *m;
	n->count++;
}

void notify_event(struct agent *a, const char *event, const char *member, const char *text)
{
	struct notify *n = a ? __atomic_load_n(&a->notify, __ATOMIC_ACQUIRE) : NULL;
	char line[NOTIFY_TEXT_MAX];
	struct notify_message m = { 0 };

	if (!n)
		return;
	snprintf(line, sizeof(line), "[%s] %s", n->server, text);
	m.body = notify_body(line);
	if (!m.body)
		return;
	snprintf(m.event, sizeof(m.event), "%s", event);
	snprintf(m.member, sizeof(m.member), "%s", member ? member : "");
	pthread_mutex_lock(&n->lock);
	notify_push_back(n, &m);
	pthread_cond_signal(&n->wake);
	pthread_mutex_unlock(&n->lock);
}

/* ---- sending ------------------------------------------------------------------ */

static size_t notify_discard(char *data, size_t size, size_t count, void *user)
{
	(void)data, (void)user;
	return size * count;
}

/* Abort a transfer at once when the agent stops. */
static int notify_on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
			      curl_off_t ulnow)
{
	struct notify *n = user;
	bool stopping;

	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	pthread_mutex_lock(&n->lock);
	stopping = n->stopping;
	pthread_mutex_unlock(&n->lock);
	return stopping;
}

/* One POST: the HTTP status, or 0 without an answer (why says why). */
static long notify_post(struct notify *n, const char *body, char *why, size_t whylen)
{
	struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
	CURL *c = curl_easy_init();
	long status = 0;
	CURLcode rc;

	if (!c || !headers) {
		curl_slist_free_all(headers);
		curl_easy_cleanup(c);
		snprintf(why, whylen, "out of memory");
		return 0;
	}
	curl_set_defaults(c, NOTIFY_TIMEOUT_SECONDS, notify_on_progress, n);
	curl_easy_setopt(c, CURLOPT_URL, n->url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, notify_discard);
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	else
		snprintf(why, whylen, "%s", curl_easy_strerror(rc));
	curl_slist_free_all(headers);
	curl_easy_cleanup(c);
	return status;
}

/* Send m; true when it is done with (sent, or refused for good). */
static bool notify_send(struct notify *n, struct notify_message *m)
{
	char why[CURL_ERROR_SIZE + 32] = "";
	long status = notify_post(n, m->body, why, sizeof(why));

	m->attempts++;
	if (status >= 200 && status < 300) {
		log_debug("notify: the %s message sent (HTTP %ld)", m->event, status);
		free(m->body);
		return true;
	}
	if (status)
		snprintf(why, sizeof(why), "the webhook answered HTTP %ld", status);
	if ((status == 0 || status == 429 || status >= 500) && m->attempts < NOTIFY_ATTEMPTS) {
		m->next_ms = notify_now_ms() + (NOTIFY_RETRY_FIRST_MS << (m->attempts - 1));
		log_info("notify: the %s message: %s; trying again in %lld s", m->event, why,
			 (NOTIFY_RETRY_FIRST_MS << (m->attempts - 1)) / 1000);
		return false;
	}
	notify_message_drop(m, why);
	return true;
}

/* Under lock: wait until the first message is due or the agent stops. */
static void notify_wait(struct notify *n)
{
	while (!n->stopping && (n->count == 0 || n->queue[n->head].next_ms > notify_now_ms())) {
		long long due = n->queue[n->head].next_ms;
		struct timespec until = { .tv_sec = due / 1000, .tv_nsec = (due % 1000) * 1000000 };

		if (n->count == 0)
			pthread_cond_wait(&n->wake, &n->lock);
		else
			pthread_cond_timedwait(&n->wake, &n->lock, &until);
	}
}

static void *notify_thread(void *arg)
{
	struct notify *n = arg;

	pthread_mutex_lock(&n->lock);
	for (;;) {
		struct notify_message m;
		bool done;

		notify_wait(n);
		if (n->stopping)
			break;
		m = n->queue[n->head];
		n->head = (n->head + 1) % NOTIFY_QUEUE_MAX;
		n->count--;
		pthread_mutex_unlock(&n->lock);
		done = notify_send(n, &m);
		pthread_mutex_lock(&n->lock);
		if (!done)
			notify_push_front(n, &m);
	}
	pthread_mutex_unlock(&n->lock);
	return NULL;
}

/* ---- start and stop ------------------------------------------------------------- */

/* The URL from a file: root's, closed to others, one line. */
static int notify_read_url_file(const char *path, char *url, size_t len)
{
	__do_free char *data = NULL;
	struct stat st;
	size_t n = 0;
	int ret;

	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return log_error_errno(-EINVAL, errno, "notify: notify_webhook %s is not a file the agent can read", path);
	if (st.st_uid != geteuid() || (st.st_mode & 077))
		return log_error_errno(-EINVAL, 0,
				       "notify: notify_webhook %s must belong to root and be closed to others (chmod 600): the URL lets its holder post as this server",
				       path);
	ret = fsutil_read_file(path, len + 1, &data, &n);
	if (ret < 0)
		return log_error_errno(-EINVAL, -ret, "notify: cannot read notify_webhook %s", path);
	while (n > 0 && (data[n - 1] == '\n' || data[n - 1] == '\r'))
		n--;
	if (n >= len)
		return log_error_errno(-EINVAL, 0, "notify: the URL in %s is too long", path);
	memcpy(url, data, n);
	url[n] = '\0';
	if (!config_webhook_url_ok(url))
		return log_error_errno(-EINVAL, 0,
				       "notify: %s must hold one http:// or https:// URL of plain URL characters",
				       path);
	return 0;
}

/* The lock, and a condition timed by the monotonic clock (retries wait
 * on it, and the wall clock may step). */
static void notify_init_sync(struct notify *n)
{
	pthread_condattr_t attr;

	pthread_mutex_init(&n->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&n->wake, &attr);
	pthread_condattr_destroy(&attr);
}

int notify_start(struct agent *a, struct notify **out)
{
	__do_free struct notify *n = NULL;
	const char *hook = a->cfg.notify_webhook;
	int ret;

	*out = NULL;
	if (!hook[0])
		return 0;
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	if (hook[0] == '/') {
		ret = notify_read_url_file(hook, n->url, sizeof(n->url));
		if (ret < 0)
			return ret;
	} else {
		snprintf(n->url, sizeof(n->url), "%s", hook);
	}
	snprintf(n->server, sizeof(n->server), "%s", a->cfg.server_name);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return log_error_errno(-EIO, 0, "notify: libcurl could not be initialised");
	notify_init_sync(n);
	ret = pthread_create(&n->thread, NULL, notify_thread, n);
	if (ret != 0) {
		pthread_cond_destroy(&n->wake);
		pthread_mutex_destroy(&n->lock);
		return log_error_errno(-ret, ret, "notify: cannot start its thread");
	}
	/* Never the URL: it is the hook's secret. */
	log_info("notify: events are posted to the webhook of notify_webhook%s",
		 hook[0] == '/' ? " (from its file)" : "");
	*out = move_ptr(n);
	return 0;
}

void notify_stop(struct notify *n)
{
	if (!n)
		return;
	pthread_mutex_lock(&n->lock);
	n->stopping = true;
	pthread_cond_broadcast(&n->wake);
	pthread_mutex_unlock(&n->lock);
	pthread_join(n->thread, NULL);
	if (n->count)
		log_warn("notify: %zu message%s left unsent at the agent's stop", n->count,
			 n->count == 1 ? "" : "s");
	for (size_t i = 0; i < n->count; i++)
		free(n->queue[(n->head + i) % NOTIFY_QUEUE_MAX].body);
	pthread_cond_destroy(&n->wake);
	pthread_mutex_destroy(&n->lock);
	free(n);
}
