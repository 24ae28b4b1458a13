/* SPDX-License-Identifier: MIT */
/*
 * The hub's members on this server.  A thread asks the hub for this
 * server's list (GET <hub_url>/api/v1/sync with the server's token and the
 * last ETag; 304 while nothing changed) every hub_poll seconds, and at
 * once when the hub pokes (POST /api/v1/poke on metrics_listen).  A new
 * list is applied:
 *
 *   - a member listed and absent here is created with the hub's uid,
 *     subid block and SSH port (a clash with anything local is logged for
 *     the admin and that member skipped), marked hub-managed, and its
 *     container started by a worker thread, so that one slow start holds
 *     no other change;
 *   - a hub-managed member's keys follow the list: the host login's file,
 *     the records, and the running container's authorized_keys; a
 *     disabled member, or one no longer listed, keeps no key at all.
 *     Nothing else of theirs is removed: no account, no file;
 *   - members added on this server (not hub-managed) are never touched.
 *
 * Every uid, id block and SSH port from the hub must lie within this
 * server's own uid_range, subid_range and ssh_port_range: a hub answer
 * (or anyone between a plain-http agent and its hub) must not give a
 * member the server's port 22 or a directory user's ids.  A member
 * outside them is refused and logged, and grants nothing here: a new
 * one is not created; one already here is kept as it is, its keys
 * included, until the hub sends values within the ranges again, except
 * that a disabled entry still takes the member's keys away.  The other
 * members of the same list are applied.
 *
 * The last good list is kept in <state_dir>/hub-sync.json (0600) with its
 * generation, so that an agent restarted while the hub is down carries on
 * where it was: an unreachable hub never removes anything.  Errors back
 * off (up to 30 s, or hub_poll if longer) and are logged once per change
 * of state, not at every poll.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sodium.h>

#include "agent.h"
#include "audit.h"
#include "container/container.h"
#include "curldefaults.h"
#include "hubsync.h"
#include "ops.h"
#include "progress.h"
#include "state/state.h"
#include "array.h"
#include "cleanup.h"
#include "fsutil.h"
#include "hubtoken.h"
#include "log.h"
#include "proto.h"
#include "strutil.h"
#include "validate.h"
#include "banned.h"

#define HUBSYNC_TOKEN_MIN 16
#define HUBSYNC_TOKEN_MAX 4096
#define HUBSYNC_TIMEOUT_SECONDS 10L
#define HUBSYNC_BACKOFF_MAX 30u
#define HUBSYNC_RETRY_SECONDS 60
#define HUBSYNC_ETAG_MAX 64
#define HUBSYNC_CACHE_NAME "hub-sync.json"
#define HUBSYNC_QUEUE_MAX 256

/* ---- parsing: text -> a checked list (pure; fuzzed) ------------------------ */

void hubsync_list_free(struct hubsync_list *list)
{
	for (size_t i = 0; list->members && i < list->n; i++) {
		struct hubsync_member *m = &list->members[i];

		for (size_t k = 0; k < m->nkeys; k++) {
			free(m->keys[k]);
			free(m->fingerprints[k]);
		}
		free(m->keys);
		free(m->fingerprints);
	}
	free(list->members);
	memset(list, 0, sizeof(*list));
}

/* A whole number field in [min, max]; absent, another type or out of range is false. */
static bool hubsync_get_uint(json_t *obj, const char *field, uint64_t min, uint64_t max,
			     uint64_t *out)
{
	json_t *value = json_object_get(obj, field);
	json_int_t n;

	if (!json_is_integer(value))
		return false;
	n = json_integer_value(value);
	if (n < 0 || (uint64_t)n < min || (uint64_t)n > max)
		return false;
	*out = (uint64_t)n;
	return true;
}

/* Each key checked (ssh_key_parse) and kept as "type base64 [comment]";
 * a key listed twice is kept once. */
static int hubsync_parse_keys(json_t *keys, struct hubsync_member *m, struct ssh_key *key,
			      char *err, size_t errlen)
{
	size_t count = json_array_size(keys), i;
	json_t *value;

	if (!json_is_array(keys) || count > HUBSYNC_KEYS_MAX) {
		set_error(err, errlen, "\"keys\" must be a list of at most %d keys", HUBSYNC_KEYS_MAX);
		return -EINVAL;
	}
	m->keys = calloc(count + 1, sizeof(*m->keys));
	m->fingerprints = calloc(count + 1, sizeof(*m->fingerprints));
	if (!m->keys || !m->fingerprints)
		return -ENOMEM;
	json_array_foreach(keys, i, value) {
		char why[256];
		bool seen = false;

		if (!json_is_string(value)) {
			set_error(err, errlen, "key %zu is not text", i + 1);
			return -EINVAL;
		}
		if (ssh_key_parse(json_string_value(value), key, why, sizeof(why)) < 0) {
			set_error(err, errlen, "key %zu: %s", i + 1, why);
			return -EINVAL;
		}
		for (size_t k = 0; k < m->nkeys; k++)
			seen |= strcmp(m->fingerprints[k], key->fingerprint) == 0;
		if (seen)
			continue;
		if (asprintf(&m->keys[m->nkeys], "%s %s%s%s", key->type, key->base64,
			     key->comment[0] ? " " : "", key->comment) < 0) {
			m->keys[m->nkeys] = NULL;
			return -ENOMEM;
		}
		m->fingerprints[m->nkeys] = strdup(key->fingerprint);
		if (!m->fingerprints[m->nkeys]) {
			free(m->keys[m->nkeys]);
			m->keys[m->nkeys] = NULL;
			return -ENOMEM;
		}
		m->nkeys++;
	}
	return 0;
}

static int hubsync_parse_member(json_t *obj, struct hubsync_member *m, struct ssh_key *key,
				char *err, size_t errlen)
{
	json_t *name = json_object_get(obj, "name");
	json_t *display = json_object_get(obj, "display_name");
	json_t *disabled = json_object_get(obj, "disabled");
	uint64_t uid, base, port;
	char why[256];
	int ret;

	if (!json_is_object(obj)) {
		set_error(err, errlen, "not an object");
		return -EINVAL;
	}
	if (!json_is_string(name) || validate_member_name(json_string_value(name), why, sizeof(why)) < 0) {
		set_error(err, errlen, "\"name\" is not a member name");
		return -EINVAL;
	}
	snprintf(m->name, sizeof(m->name), "%s", json_string_value(name));
	if (display && (!json_is_string(display) || json_string_length(display) > 256)) {
		set_error(err, errlen, "\"display_name\" must be text of at most 256 bytes");
		return -EINVAL;
	}
	if (!hubsync_get_uint(obj, "uid", 1, SUBID_COUNT - 1, &uid)) {
		set_error(err, errlen, "\"uid\" must be a number from 1 to %u", SUBID_COUNT - 1);
		return -EINVAL;
	}
	if (!hubsync_get_uint(obj, "subid_base", SUBID_COUNT, (uint64_t)UINT32_MAX + 1 - SUBID_COUNT, &base) ||
	    base % SUBID_COUNT != 0) {
		set_error(err, errlen, "\"subid_base\" must be a non-zero multiple of %u below 2^32",
			 SUBID_COUNT);
		return -EINVAL;
	}
	if (!hubsync_get_uint(obj, "ssh_port", 1, 65535, &port)) {
		set_error(err, errlen, "\"ssh_port\" must be a port number from 1 to 65535");
		return -EINVAL;
	}
	if (!json_is_boolean(disabled)) {
		set_error(err, errlen, "\"disabled\" must be true or false");
		return -EINVAL;
	}
	m->uid = (uint32_t)uid;
	m->subid_base = (uint32_t)base;
	m->ssh_port = (uint32_t)port;
	m->disabled = json_is_true(disabled);
	ret = hubsync_parse_keys(json_object_get(obj, "keys"), m, key, err, errlen);
	if (ret < 0)
		return ret;
	/* A disabled member logs in nowhere, whatever keys came with it. */
	if (m->disabled) {
		for (size_t k = 0; k < m->nkeys; k++) {
			free(m->keys[k]);
			free(m->fingerprints[k]);
			m->keys[k] = m->fingerprints[k] = NULL;
		}
		m->nkeys = 0;
	}
	return 0;
}

static int hubsync_compare_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static int hubsync_compare_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Whether one field is the same for two members: the hub's allocations
 * are lab-wide, and a list that repeats one is not applied at all. */
static int hubsync_check_unique(const struct hubsync_list *list, char *err, size_t errlen)
{
	static const char *const what[] = { "uid", "subid_base", "ssh_port" };
	__do_free uint32_t *values = calloc(list->n + 1, sizeof(*values));
	__do_free const char **names = calloc(list->n + 1, sizeof(*names));

	if (!values || !names)
		return -ENOMEM;
	for (size_t f = 0; f < ARRAY_SIZE(what); f++) {
		for (size_t i = 0; i < list->n; i++)
			values[i] = f == 0 ? list->members[i].uid :
				    f == 1 ? list->members[i].subid_base : list->members[i].ssh_port;
		qsort(values, list->n, sizeof(*values), hubsync_compare_u32);
		for (size_t i = 1; i < list->n; i++) {
			if (values[i] == values[i - 1]) {
				set_error(err, errlen, "two members have %s %u", what[f], values[i]);
				return -EINVAL;
			}
		}
	}
	for (size_t i = 0; i < list->n; i++)
		names[i] = list->members[i].name;
	qsort(names, list->n, sizeof(*names), hubsync_compare_name);
	for (size_t i = 1; i < list->n; i++) {
		if (strcmp(names[i], names[i - 1]) == 0) {
			set_error(err, errlen, "member %s is listed twice", names[i]);
			return -EINVAL;
		}
	}
	return 0;
}

static int hubsync_parse_document(json_t *doc, struct hubsync_list *out, struct ssh_key *key,
				  char *err, size_t errlen)
{
	json_t *server = json_object_get(doc, "server");
	json_t *members = json_object_get(doc, "members");
	json_t *value;
	char why[256];
	size_t i;

	if (!json_is_object(doc)) {
		set_error(err, errlen, "the body is not a JSON object");
		return -EINVAL;
	}
	if (!hubsync_get_uint(doc, "generation", 0, (uint64_t)INT64_MAX, &out->generation)) {
		set_error(err, errlen, "\"generation\" must be a whole number");
		return -EINVAL;
	}
	if (!json_is_string(server) || validate_member_name(json_string_value(server), why, sizeof(why)) < 0) {
		set_error(err, errlen, "\"server\" is not a server name");
		return -EINVAL;
	}
	snprintf(out->server, sizeof(out->server), "%s", json_string_value(server));
	if (!json_is_array(members) || json_array_size(members) > HUBSYNC_MEMBERS_MAX) {
		set_error(err, errlen, "\"members\" must be a list of at most %d members",
			 HUBSYNC_MEMBERS_MAX);
		return -EINVAL;
	}
	out->members = calloc(json_array_size(members) + 1, sizeof(*out->members));
	if (!out->members)
		return -ENOMEM;
	json_array_foreach(members, i, value) {
		char sub[512] = "";
		int ret;

		out->n = i + 1;
		ret = hubsync_parse_member(value, &out->members[i], key, sub, sizeof(sub));
		if (ret < 0) {
			set_error(err, errlen, "member %zu%s%s%s: %s", i + 1,
				 out->members[i].name[0] ? " (" : "", out->members[i].name,
				 out->members[i].name[0] ? ")" : "", sub[0] ? sub : "out of memory");
			return ret;
		}
	}
	return hubsync_check_unique(out, err, errlen);
}

int hubsync_parse(const char *text, size_t len, struct hubsync_list *out, char *err, size_t errlen)
{
	__do_json json_t *doc = NULL;
	__do_free struct ssh_key *key = malloc(sizeof(*key));
	json_error_t jerr;
	int ret;

	memset(out, 0, sizeof(*out));
	if (!key)
		return -ENOMEM;
	if (len > HUBSYNC_BODY_MAX) {
		set_error(err, errlen, "the body is larger than %u bytes", HUBSYNC_BODY_MAX);
		return -EINVAL;
	}
	doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc) {
		set_error(err, errlen, "the body is not JSON: %s (line %d)", jerr.text, jerr.line);
		return -EINVAL;
	}
	ret = hubsync_parse_document(doc, out, key, err, errlen);
	if (ret < 0) {
		hubsync_list_free(out);
		if (ret == -ENOMEM)
			set_error(err, errlen, "out of memory");
		return ret;
	}
	return 0;
}

/* One field outside its range, appended to err ("; " between). */
static void hubsync_out_of_range(char *err, size_t errlen, const char *field, uint64_t first,
				 uint64_t last, const char *key, const struct config_range *range)
{
	size_t used = strnlen(err, errlen);

	if (used + 1 >= errlen)
		return;
	if (first == last)
		snprintf(err + used, errlen - used, "%s%s %llu lies outside %s %u-%u", used ? "; " : "",
			 field, (unsigned long long)first, key, range->first, range->last);
	else
		snprintf(err + used, errlen - used, "%s%s %llu (ids %llu-%llu) lies outside %s %u-%u",
			 used ? "; " : "", field, (unsigned long long)first, (unsigned long long)first,
			 (unsigned long long)last, key, range->first, range->last);
}

int hubsync_check_ranges(const struct gpubox_config *cfg, const struct hubsync_member *m,
			 char *err, size_t errlen)
{
	uint64_t ids_last = (uint64_t)m->subid_base + SUBID_COUNT - 1;
	bool outside = false;

	if (errlen)
		err[0] = '\0';
	if (m->uid < cfg->uid_range.first || m->uid > cfg->uid_range.last) {
		hubsync_out_of_range(err, errlen, "uid", m->uid, m->uid, "uid_range", &cfg->uid_range);
		outside = true;
	}
	if (m->subid_base < cfg->subid_range.first || ids_last > cfg->subid_range.last) {
		hubsync_out_of_range(err, errlen, "subid_base", m->subid_base, ids_last, "subid_range",
				     &cfg->subid_range);
		outside = true;
	}
	if (m->ssh_port < cfg->ssh_port_range.first || m->ssh_port > cfg->ssh_port_range.last) {
		hubsync_out_of_range(err, errlen, "ssh_port", m->ssh_port, m->ssh_port, "ssh_port_range",
				     &cfg->ssh_port_range);
		outside = true;
	}
	return outside ? -ERANGE : 0;
}

/* ---- the state of the thread ---------------------------------------------- */

enum hubsync_health {
	HUBSYNC_NEW,              /* no answer yet */
	HUBSYNC_OK,
	HUBSYNC_UNREACHABLE,      /* no HTTP answer */
	HUBSYNC_REFUSED,          /* 401/403: the token */
	HUBSYNC_BAD_ANSWER,       /* another status, or a body that fails the checks */
};

struct hubsync {
	struct agent *a;
	char url[CONFIG_TEXT_MAX + 32];
	char authorization[HUBSYNC_TOKEN_MAX + 32];
	unsigned char token_hash[crypto_generichash_BYTES];
	char cache_path[PATH_MAX];

	pthread_t thread;
	pthread_t worker;
	bool worker_running;
	pthread_mutex_t lock;
	pthread_cond_t wake;          /* the poll thread: poked or stopping */
	pthread_cond_t work;          /* the worker: a start queued or stopping */
	bool poked;
	bool stopping;
	bool worker_busy;
	char (*queue)[MEMBER_NAME_SIZE];            /* members whose container to start */
	size_t queued;

	/* Only the poll thread uses these. */
	char etag[HUBSYNC_ETAG_MAX + 1];
	uint64_t generation;
	bool have_generation;
	enum hubsync_health health;
	unsigned backoff;             /* seconds; 0 when all is well */
	bool apply_failed;            /* retry the same list without If-None-Match */
	time_t retry_at;
	uint64_t failed_generation;   /* failures of a list are logged loudly once */
	bool loud;
};

/* One message per change of state; the same state again is a debug line. */
__attribute__((format(printf, 3, 4)))
static void hubsync_health(struct hubsync *h, enum hubsync_health health, const char *fmt, ...)
{
	enum log_level level = health == HUBSYNC_OK ? LOG_LEVEL_INFO :
			       health == HUBSYNC_UNREACHABLE ? LOG_LEVEL_WARN : LOG_LEVEL_ERROR;
	char text[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (health == h->health)
		level = LOG_LEVEL_DEBUG;
	h->health = health;
	log_message(level, 0, "hub: %s", text);
}

/* An error applying one member: loud the first time a list fails. */
__attribute__((format(printf, 2, 3)))
static void hubsync_member_error(struct hubsync *h, const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	log_message(h->loud ? LOG_LEVEL_ERROR : LOG_LEVEL_DEBUG, 0, "hub: %s", text);
}

/* ---- the token ---------------------------------------------------------------- */

static void hubsync_token_hash(const char *token, size_t len,
			       unsigned char hash[crypto_generichash_BYTES])
{
	crypto_generichash(hash, crypto_generichash_BYTES, (const unsigned char *)token, len, NULL, 0);
}

/* One line of visible ASCII, in a root-owned regular file that nobody
 * else may read: the token lets its holder read every member's keys. */
static int hubsync_load_token(struct hubsync *h, const char *path)
{
	__do_free char *data = NULL;
	struct stat st;
	size_t len = 0;
	int ret;

	if (stat(path, &st) < 0)
		return log_error_errno(-EINVAL, errno, "hub: cannot read hub_token_file %s", path);
	if (!S_ISREG(st.st_mode))
		return log_error_errno(-EINVAL, 0, "hub: hub_token_file %s is not a regular file", path);
	if (st.st_mode & 077)
		return log_error_errno(-EINVAL, 0,
				       "hub: hub_token_file %s is open to group or others (mode %04o): it lets its holder read every member's keys; chmod 600 it",
				       path, (unsigned)(st.st_mode & 07777));
	if (st.st_uid != geteuid())
		return log_error_errno(-EINVAL, 0, "hub: hub_token_file %s must belong to root", path);
	ret = fsutil_read_file(path, HUBSYNC_TOKEN_MAX + 2, &data, &len);
	if (ret < 0)
		return log_error_errno(-EINVAL, -ret, "hub: cannot read hub_token_file %s", path);
	while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
		len--;
	ret = len >= HUBSYNC_TOKEN_MIN && len <= HUBSYNC_TOKEN_MAX ? 0 : -EINVAL;
	for (size_t i = 0; ret == 0 && i < len; i++)
		if (data[i] <= ' ' || data[i] > '~')
			ret = -EINVAL;
	if (ret == 0) {
		char to_agent[HUBTOKEN_HEX];

		data[len] = '\0';
		snprintf(h->authorization, sizeof(h->authorization), "Authorization: Bearer %s", data);
		/* The hub calls this agent with the token derived from this one,
		 * never with this one: see hubtoken.h. */
		ret = hubtoken_to_agent(data, len, to_agent);
		if (ret == 0)
			hubsync_token_hash(to_agent, strlen(to_agent), h->token_hash);
		sodium_memzero(to_agent, sizeof(to_agent));
	}
	sodium_memzero(data, len);
	if (ret < 0)
		return log_error_errno(ret, 0,
				       "hub: hub_token_file %s must hold one line of %d to %d visible ASCII characters (the token gpubox-hub server add printed)",
				       path, HUBSYNC_TOKEN_MIN, HUBSYNC_TOKEN_MAX);
	return 0;
}

int hubsync_token_load(const char *path, struct hubsync **out)
{
	__do_free struct hubsync *h = calloc(1, sizeof(*h));
	int ret;

	*out = NULL;
	if (!h)
		return -ENOMEM;
	ret = hubsync_load_token(h, path);
	if (ret < 0)
		return ret;
	*out = move_ptr(h);
	return 0;
}

/* The hub's calls carry the hub-to-agent token: the raw token (which reads
 * the hub's member list) is refused here, so it never needs to travel this
 * way. */
bool hubsync_token_ok(struct hubsync *h, const char *authorization)
{
	unsigned char hash[crypto_generichash_BYTES];
	const char *token;
	size_t len;

	if (!h || !authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
		return false;
	for (token = authorization + 7; *token == ' '; token++)
		;
	len = strnlen(token, HUBSYNC_TOKEN_MAX + 1);
	while (len > 0 && (token[len - 1] == ' ' || token[len - 1] == '\t'))
		len--;
	if (len == 0 || len > HUBSYNC_TOKEN_MAX)
		return false;
	hubsync_token_hash(token, len, hash);
	return sodium_memcmp(hash, h->token_hash, sizeof(hash)) == 0;
}

/* ---- HTTP ------------------------------------------------------------------------ */

struct hubsync_body {
	char *data;
	size_t len;
	bool too_big;
	char etag[HUBSYNC_ETAG_MAX + 1];
	struct hubsync *h;
};

static size_t hubsync_on_data(char *data, size_t size, size_t n, void *user)
{
	struct hubsync_body *b = user;
	size_t len = size * n;
	char *grown;

	if (len > HUBSYNC_BODY_MAX - b->len) {
		b->too_big = true;
		return 0;
	}
	grown = realloc(b->data, b->len + len + 1);
	if (!grown)
		return 0;
	b->data = grown;
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return len;
}

/* The ETag header, kept when it is short, visible ASCII. */
static size_t hubsync_on_header(char *data, size_t size, size_t n, void *user)
{
	struct hubsync_body *b = user;
	size_t len = size * n, start = 5;

	if (len < 5 || strncasecmp(data, "etag:", 5) != 0)
		return len;
	while (start < len && (data[start] == ' ' || data[start] == '\t'))
		start++;
	while (len > start && (data[len - 1] == '\r' || data[len - 1] == '\n' || data[len - 1] == ' '))
		len--;
	b->etag[0] = '\0';
	if (len - start == 0 || len - start > HUBSYNC_ETAG_MAX)
		return size * n;
	for (size_t i = start; i < len; i++)
		if (data[i] < '!' || data[i] > '~')
			return size * n;
	memcpy(b->etag, data + start, len - start);
	b->etag[len - start] = '\0';
	return size * n;
}

/* Abort a transfer at once when the agent stops. */
static int hubsync_on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
			       curl_off_t ulnow)
{
	struct hubsync_body *b = user;
	bool stopping;

	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	pthread_mutex_lock(&b->h->lock);
	stopping = b->h->stopping;
	pthread_mutex_unlock(&b->h->lock);
	return stopping;
}

/* One conditional GET.  *status: the HTTP status, 0 without an answer
 * (then why says what went wrong). */
static int hubsync_fetch(struct hubsync *h, bool conditional, struct hubsync_body *b, long *status,
			 char *why, size_t whylen)
{
	char if_none_match[HUBSYNC_ETAG_MAX + 32];
	struct curl_slist *headers = NULL, *more;
	CURL *c = curl_easy_init();
	CURLcode rc;

	*status = 0;
	if (!c)
		return -ENOMEM;
	headers = curl_slist_append(NULL, h->authorization);
	if (headers && conditional && h->etag[0]) {
		snprintf(if_none_match, sizeof(if_none_match), "If-None-Match: %s", h->etag);
		more = curl_slist_append(headers, if_none_match);
		headers = more ? more : headers;
	}
	if (!headers) {
		curl_easy_cleanup(c);
		return -ENOMEM;
	}
	curl_set_defaults(c, HUBSYNC_TIMEOUT_SECONDS, hubsync_on_progress, b);
	curl_easy_setopt(c, CURLOPT_URL, h->url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)HUBSYNC_BODY_MAX);
	curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, hubsync_on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, hubsync_on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, b);
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	else if (b->too_big || rc == CURLE_FILESIZE_EXCEEDED)
		snprintf(why, whylen, "the answer is larger than %u bytes", HUBSYNC_BODY_MAX);
	else
		snprintf(why, whylen, "%s", curl_easy_strerror(rc));
	curl_slist_free_all(headers);
	curl_easy_cleanup(c);
	return 0;
}

/* ---- applying a list ----------------------------------------------------------- */

/* The agent's own change to member on the hub's behalf, in the audit log;
 * code NULL when it was done, else the error's code and sentence. */
static void hubsync_audit(struct agent *a, const char *op, const char *member, json_t *args,
			  long long started_ms, const char *code, const char *error)
{
	audit_record(a->audit, &(struct audit_entry){
		.time_ms = started_ms, .duration_ms = audit_now_ms() - started_ms, .by_hub = true,
		.uid = -1, .op = op, .target = member, .args = args,
		.result = code ? code : "ok", .error = code ? error : NULL,
	});
}

/* What the hub sent of a member, for its audit entry: the keys by their
 * fingerprints. */
static json_t *hubsync_audit_args(const struct hubsync_member *m, bool ids)
{
	json_t *keys = json_array();
	json_t *args;

	for (size_t k = 0; keys && k < m->nkeys; k++)
		json_array_append_new(keys, json_string(m->fingerprints[k]));
	args = json_pack("{s:o, s:b}", "keys", keys, "disabled", m->disabled);
	if (args && ids) {
		json_object_set_new(args, "uid", json_integer(m->uid));
		json_object_set_new(args, "subid_base", json_integer(m->subid_base));
		json_object_set_new(args, "ssh_port", json_integer(m->ssh_port));
	}
	return args;
}

/* The keys as the records hold them: each line and a newline. */
static char *hubsync_keys_text(const struct hubsync_member *m)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return NULL;
	for (size_t k = 0; k < m->nkeys; k++)
		fprintf(f, "%s\n", m->keys[k]);
	if (!memstream_close(f)) {
		free(text);
		return NULL;
	}
	return text;
}

/* Write the keys into the member's running container; a stopped one gets
 * them from the records at its next start. */
static void hubsync_container_keys(struct agent *a, const struct member_record *rec,
				   const char *keys)
{
	struct member_view v;
	int ret;

	if (container_get_state(a->lxcpath, rec->name) != CONTAINER_RUNNING)
		return;
	if (ops_member_view(a, rec, &v) < 0)
		return;
	ret = provision_keys(v.paths.rootfs, &(struct provision_member){
		.name = rec->name, .uid = rec->uid, .gid = rec->uid, .subid_base = rec->subid_base,
		.hostname = v.hostname, .authorized_keys = keys });
	if (ret < 0 && ret != -ENOENT)
		log_error("hub: the new keys of %s could not be written into the running container",
			  rec->name);
}

/* Make the member's keys lines[0..n), in the records, the host login and
 * the running container.  Nothing happens when they are the same. */
static int hubsync_set_keys(struct hubsync *h, const struct member_record *rec,
			    const struct hubsync_member *m)
{
	struct agent *a = h->a;
	__do_free char *want = hubsync_keys_text(m);
	__do_free char *have = NULL;
	__do_json json_t *args = NULL;
	__do_unlock_member struct member_lock lock = { 0 };
	long long started_ms = audit_now_ms();
	int ret;

	if (!want)
		return -ENOMEM;
	ret = db_keys_text(a->db, rec->name, NULL, &have);
	if (ret < 0)
		return ret;
	if (strcmp(want, have) == 0)
		return 0;
	args = hubsync_audit_args(m, false);

	pthread_mutex_lock(&a->members_lock);
	ret = db_begin(a->db);
	if (ret == 0) {
		ret = db_keys_set(a->db, rec->name, (const char *const *)m->keys,
				  (const char *const *)m->fingerprints, m->nkeys);
		if (ret == 0)
			ret = db_commit(a->db);
		else
			db_rollback(a->db);
	}
	pthread_mutex_unlock(&a->members_lock);
	if (ret < 0) {
		/* Retried every minute: told once. */
		if (h->loud)
			hubsync_audit(a, "keys_set", rec->name, args, started_ms, PROTO_E_FAILED,
				      "the agent's database failed; see the agent's log");
		return ret;
	}
	ret = member_sync_host(a, rec);
	/* After a start under way, never before it: the start reads the
	 * records, this writes what they say now. */
	lock = agent_lock_member(a, rec->name);
	hubsync_container_keys(a, rec, want);
	log_info("hub: member %s now has %zu key%s%s", rec->name, m->nkeys, m->nkeys == 1 ? "" : "s",
		 m->disabled ? " (disabled on the hub)" : "");
	hubsync_audit(a, "keys_set", rec->name, args, started_ms, ret < 0 ? PROTO_E_FAILED : NULL,
		      "the keys are recorded, but the member's host login could not be updated");
	return ret;
}

static void hubsync_queue_start(struct hubsync *h, const char *name)
{
	pthread_mutex_lock(&h->lock);
	if (h->queued < HUBSYNC_QUEUE_MAX) {
		snprintf(h->queue[h->queued++], sizeof(h->queue[0]), "%s", name);
		pthread_cond_signal(&h->work);
	} else {
		log_warn("hub: too many containers to start at once; %s is started at its first login",
			 name);
	}
	pthread_mutex_unlock(&h->lock);
}

static int hubsync_create(struct hubsync *h, const struct hubsync_member *m)
{
	struct member_record want = { 0 }, rec;
	__do_json json_t *args = hubsync_audit_args(m, true);
	long long started_ms = audit_now_ms();
	char err[512] = "";
	int ret;

	snprintf(want.name, sizeof(want.name), "%s", m->name);
	want.uid = m->uid;
	want.subid_base = m->subid_base;
	want.ssh_port = m->ssh_port;
	ret = member_add_allocated(h->a, &want, (const char *const *)m->keys,
				   (const char *const *)m->fingerprints, m->nkeys, &rec, err, sizeof(err));
	if (ret < 0) {
		hubsync_member_error(h, "member %s is not created on this server: %s%s", m->name,
				     err[0] ? err : strerror(-ret),
				     ret == -EEXIST ? "; an admin must resolve the clash" : "");
		/* A list that failed is retried every minute: told once. */
		if (h->loud)
			hubsync_audit(h->a, "user_add", m->name, args, started_ms,
				      ret == -EEXIST ? PROTO_E_CONFLICT : PROTO_E_FAILED,
				      err[0] ? err : strerror(-ret));
		return ret;
	}
	hubsync_audit(h->a, "user_add", m->name, args, started_ms, NULL, NULL);
	hubsync_queue_start(h, rec.name);
	return 0;
}

static const struct hubsync_member *hubsync_find(const struct hubsync_list *list, const char *name)
{
	for (size_t i = 0; i < list->n; i++)
		if (strcmp(list->members[i].name, name) == 0)
			return &list->members[i];
	return NULL;
}

static int hubsync_apply_member(struct hubsync *h, const struct hubsync_member *m)
{
	struct member_record rec;
	char outside[512];
	int ret, managed;
	bool in_ranges = hubsync_check_ranges(&h->a->cfg, m, outside, sizeof(outside)) == 0;

	ret = db_member_get(h->a->db, m->name, &rec);
	if (ret == -ENOENT && m->disabled)
		return 0;
	if (ret == -ENOENT && !in_ranges) {
		hubsync_member_error(h, "member %s is refused, nothing of it is made on this server: %s",
				     m->name, outside);
		if (h->loud) {
			__do_json json_t *args = hubsync_audit_args(m, true);

			hubsync_audit(h->a, "user_add", m->name, args, audit_now_ms(), PROTO_E_DENIED,
				      outside);
		}
		return 0;
	}
	if (ret == -ENOENT)
		return hubsync_create(h, m);
	if (ret < 0)
		return ret;
	managed = db_hub_member_is(h->a->db, m->name);
	if (managed < 0)
		return managed;
	if (!managed) {
		hubsync_member_error(h, "member %s was added on this server, not by the hub; the hub's list leaves it alone",
				     m->name);
		return 0;
	}
	/* Nothing of an entry outside the ranges is granted, not even a key:
	 * the answer it came in is not to be trusted for this member.  Only
	 * taking access away is still obeyed, as for a member the list no
	 * longer names: a disabled entry leaves the member no key. */
	if (!in_ranges) {
		hubsync_member_error(h, "member %s is kept as it is (uid %u, ids from %u, SSH port %u%s), the hub's entry is refused: %s",
				     m->name, rec.uid, rec.subid_base, rec.ssh_port,
				     m->disabled ? "; disabled: no key left" : ", its keys", outside);
		return m->disabled ? hubsync_set_keys(h, &rec, m) : 0;
	}
	if (rec.uid != m->uid || rec.subid_base != m->subid_base || rec.ssh_port != m->ssh_port)
		hubsync_member_error(h, "member %s has uid %u, ids from %u and SSH port %u here, the hub says %u, %u and %u; the local ones are kept",
				     m->name, rec.uid, rec.subid_base, rec.ssh_port, m->uid,
				     m->subid_base, m->ssh_port);
	ret = hubsync_set_keys(h, &rec, m);
	if (ret < 0)
		hubsync_member_error(h, "the keys of member %s could not be updated", m->name);
	return ret;
}

/* Hub-managed members the list no longer names keep no key. */
static int hubsync_apply_gone(struct hubsync *h, const struct hubsync_list *list)
{
	__do_free char (*names)[MEMBER_NAME_SIZE] = NULL;
	const struct hubsync_member none = { 0 };
	size_t n = 0;
	int ret, failed = 0;

	ret = db_hub_member_list(h->a->db, &names, &n);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < n; i++) {
		struct member_record rec;

		if (hubsync_find(list, names[i]) || db_member_get(h->a->db, names[i], &rec) < 0)
			continue;
		if (hubsync_set_keys(h, &rec, &none) < 0) {
			hubsync_member_error(h, "the keys of member %s could not be removed", names[i]);
			failed = -EIO;
		}
	}
	return failed;
}

/* Every member of the list; 0 when all went well. */
static int hubsync_apply(struct hubsync *h, const struct hubsync_list *list)
{
	int failed = 0;

	for (size_t i = 0; i < list->n; i++)
		if (hubsync_apply_member(h, &list->members[i]) < 0)
			failed = -EIO;
	if (hubsync_apply_gone(h, list) < 0)
		failed = -EIO;
	return failed;
}

/* ---- the worker: containers to start ------------------------------------------ */

static void hubsync_start_container(struct agent *a, const char *name)
{
	struct caller agent_itself = { .uid = 0, .gid = 0, .admin = true };
	struct reply_error error = { 0 };
	struct op_context ctx = { .a = a, .who = &agent_itself, .progress = NULL, .error = &error };
	__do_json json_t *result = NULL;
	__do_unlock_member struct member_lock lock = { 0 };
	struct member_record rec;
	long long started_ms = audit_now_ms();
	int ret;

	if (db_member_get(a->db, name, &rec) < 0)
		return;
	lock = agent_lock_member(a, name);
	ret = ops_start_member(&ctx, &rec, &result);
	if (ret < 0)
		log_error("hub: the container of new member %s did not start: %s", name, error.text);
	else
		log_info("hub: the container of new member %s runs (SSH port %u)", name, rec.ssh_port);
	hubsync_audit(a, "start", name, NULL, started_ms,
		      ret < 0 ? (error.code ? error.code : PROTO_E_FAILED) : NULL, error.text);
}

static void *hubsync_worker(void *arg)
{
	struct hubsync *h = arg;

	pthread_mutex_lock(&h->lock);
	for (;;) {
		char name[MEMBER_NAME_SIZE];

		while (!h->queued && !h->stopping)
			pthread_cond_wait(&h->work, &h->lock);
		if (h->stopping)
			break;
		snprintf(name, sizeof(name), "%s", h->queue[0]);
		memmove(h->queue, h->queue + 1, (h->queued - 1) * sizeof(h->queue[0]));
		h->queued--;
		h->worker_busy = true;
		pthread_mutex_unlock(&h->lock);
		hubsync_start_container(h->a, name);
		pthread_mutex_lock(&h->lock);
		h->worker_busy = false;
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

/* ---- the poll thread ------------------------------------------------------------ */

/* Apply a list that passed the checks; keep it when it came from the hub. */
static void hubsync_take(struct hubsync *h, const struct hubsync_list *list, const char *text,
			 size_t len, bool from_hub)
{
	int ret;

	h->loud = !h->apply_failed || list->generation != h->failed_generation;
	if (hubsync_apply(h, list) < 0) {
		h->apply_failed = true;
		h->failed_generation = list->generation;
		h->retry_at = time(NULL) + HUBSYNC_RETRY_SECONDS;
	} else {
		h->apply_failed = false;
	}
	h->generation = list->generation;
	h->have_generation = true;
	if (!from_hub)
		return;
	ret = fsutil_write_atomic(h->cache_path, text, len, 0600);
	if (ret < 0)
		log_warn_errno(ret, -ret, "hub: cannot keep the list in %s", h->cache_path);
}

/* The list kept by an earlier run: applied again (it is idempotent), and
 * its generation asked for, so that an unchanged hub answers 304. */
static void hubsync_load_cache(struct hubsync *h)
{
	__do_free char *text = NULL;
	struct hubsync_list list;
	char err[512];
	size_t len = 0;
	int ret;

	ret = fsutil_read_file(h->cache_path, HUBSYNC_BODY_MAX, &text, &len);
	if (ret == -ENOENT)
		return;
	if (ret == 0)
		ret = hubsync_parse(text, len, &list, err, sizeof(err));
	else
		snprintf(err, sizeof(err), "%s", strerror(-ret));
	if (ret < 0) {
		log_warn("hub: ignoring %s: %s", h->cache_path, err);
		return;
	}
	hubsync_take(h, &list, text, len, false);
	snprintf(h->etag, sizeof(h->etag), "\"%llu\"", (unsigned long long)list.generation);
	log_info("hub: %zu member%s of generation %llu from %s", list.n, list.n == 1 ? "" : "s",
		 (unsigned long long)list.generation, h->cache_path);
	hubsync_list_free(&list);
}

static void hubsync_failed(struct hubsync *h)
{
	unsigned limit = h->a->cfg.hub_poll > HUBSYNC_BACKOFF_MAX ? h->a->cfg.hub_poll
								     : HUBSYNC_BACKOFF_MAX;

	h->backoff = h->backoff ? h->backoff * 2 : h->a->cfg.hub_poll * 2;
	if (h->backoff > limit)
		h->backoff = limit;
}

static void hubsync_on_list(struct hubsync *h, struct hubsync_body *b)
{
	struct hubsync_list list;
	char err[512];

	if (hubsync_parse(b->data ? b->data : "", b->len, &list, err, sizeof(err)) < 0) {
		hubsync_health(h, HUBSYNC_BAD_ANSWER, "the hub's list is refused, nothing changes here: %s", err);
		hubsync_failed(h);
		return;
	}
	hubsync_health(h, HUBSYNC_OK, "following %s: %zu member%s, generation %llu", h->url, list.n,
		       list.n == 1 ? "" : "s", (unsigned long long)list.generation);
	h->backoff = 0;
	if (!h->have_generation || list.generation != h->generation || h->apply_failed)
		hubsync_take(h, &list, b->data, b->len, true);
	if (b->etag[0])
		snprintf(h->etag, sizeof(h->etag), "%s", b->etag);
	else
		snprintf(h->etag, sizeof(h->etag), "\"%llu\"", (unsigned long long)list.generation);
	hubsync_list_free(&list);
}

static void hubsync_round(struct hubsync *h)
{
	struct hubsync_body b = { .h = h };
	bool conditional = !h->apply_failed || time(NULL) < h->retry_at;
	char why[256] = "";
	bool stopping;
	long status;

	if (hubsync_fetch(h, conditional, &b, &status, why, sizeof(why)) < 0) {
		hubsync_failed(h);
		return;
	}
	pthread_mutex_lock(&h->lock);
	stopping = h->stopping;
	pthread_mutex_unlock(&h->lock);
	if (stopping) {
		/* Aborted by hubsync_stop(): nothing to say. */
	} else if (status == 200) {
		hubsync_on_list(h, &b);
	} else if (status == 304) {
		hubsync_health(h, HUBSYNC_OK, "following %s (generation %llu)", h->url,
			       (unsigned long long)h->generation);
		h->backoff = 0;
	} else if (status == 401 || status == 403) {
		hubsync_health(h, HUBSYNC_REFUSED, "%s refuses this server's token (HTTP %ld); check hub_token_file, or gpubox-hub server ls; members keep their keys",
			       h->url, status);
		hubsync_failed(h);
	} else if (status == 0) {
		hubsync_health(h, HUBSYNC_UNREACHABLE, "%s does not answer (%s); members keep their keys, retrying",
				h->url, why);
		hubsync_failed(h);
	} else {
		hubsync_health(h, HUBSYNC_BAD_ANSWER, "%s answered HTTP %ld; members keep their keys, retrying",
			       h->url, status);
		hubsync_failed(h);
	}
	free(b.data);
}

/* Sleep until the next round, a poke, or the stop; false when stopping. */
static bool hubsync_wait(struct hubsync *h)
{
	unsigned seconds = h->backoff ? h->backoff : h->a->cfg.hub_poll;
	struct timespec until;
	bool go_on;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += seconds;
	pthread_mutex_lock(&h->lock);
	while (!h->poked && !h->stopping)
		if (pthread_cond_timedwait(&h->wake, &h->lock, &until) == ETIMEDOUT)
			break;
	h->poked = false;
	go_on = !h->stopping;
	pthread_mutex_unlock(&h->lock);
	return go_on;
}

static void *hubsync_thread(void *arg)
{
	struct hubsync *h = arg;

	hubsync_load_cache(h);
	do
		hubsync_round(h);
	while (hubsync_wait(h));
	return NULL;
}

/* ---- start, stop, poke ------------------------------------------------------------ */

static int hubsync_init_sync(struct hubsync *h)
{
	pthread_condattr_t attr;

	if (pthread_condattr_init(&attr) != 0)
		return -ENOMEM;
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->wake, &attr);
	pthread_cond_init(&h->work, NULL);
	pthread_condattr_destroy(&attr);
	return 0;
}

int hubsync_start(struct agent *a, struct hubsync **out)
{
	__do_free struct hubsync *h = NULL;
	const struct gpubox_config *cfg = &a->cfg;
	size_t len;
	int ret;

	*out = NULL;
	if (!cfg->hub_url[0])
		return 0;
	if (sodium_init() < 0)
		return log_error_errno(-EIO, 0, "hub: libsodium could not be initialised");
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return log_error_errno(-EIO, 0, "hub: libcurl could not be initialised");
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->a = a;
	ret = hubsync_load_token(h, cfg->hub_token_file);
	if (ret < 0)
		return ret;
	len = strlen(cfg->hub_url);
	while (len > 0 && cfg->hub_url[len - 1] == '/')
		len--;
	snprintf(h->url, sizeof(h->url), "%.*s/api/v1/sync", (int)len, cfg->hub_url);
	snprintf(h->cache_path, sizeof(h->cache_path), "%s/%s", cfg->state_dir, HUBSYNC_CACHE_NAME);
	h->queue = calloc(HUBSYNC_QUEUE_MAX, sizeof(*h->queue));
	if (!h->queue || hubsync_init_sync(h) < 0) {
		free(h->queue);
		return -ENOMEM;
	}
	ret = -pthread_create(&h->worker, NULL, hubsync_worker, h);
	if (ret == 0) {
		h->worker_running = true;
		ret = -pthread_create(&h->thread, NULL, hubsync_thread, h);
	}
	if (ret < 0) {
		if (h->worker_running) {
			pthread_mutex_lock(&h->lock);
			h->stopping = true;
			pthread_cond_broadcast(&h->work);
			pthread_mutex_unlock(&h->lock);
			pthread_join(h->worker, NULL);
		}
		free(h->queue);
		return log_error_errno(ret, -ret, "hub: cannot start the thread that follows the hub");
	}
	if (config_hub_url_insecure(cfg->hub_url))
		log_warn("hub: %s is plain http:// to another host (hub_insecure_http = yes): anyone on the network between can read this server's token and the members' keys, and change its members; use https://",
			 cfg->hub_url);
	log_info("hub: following %s every %u s", h->url, cfg->hub_poll);
	*out = move_ptr(h);
	return 0;
}

void hubsync_poke(struct hubsync *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	h->poked = true;
	pthread_cond_signal(&h->wake);
	pthread_mutex_unlock(&h->lock);
}

void hubsync_stop(struct hubsync *h)
{
	bool worker_busy;

	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	h->stopping = true;
	worker_busy = h->worker_busy;
	pthread_cond_broadcast(&h->wake);
	pthread_cond_broadcast(&h->work);
	pthread_mutex_unlock(&h->lock);
	pthread_join(h->thread, NULL);
	/* A container start under way may take minutes; the process is
	 * ending, and the worker may still use h: leave it be. */
	if (worker_busy) {
		pthread_detach(h->worker);
		return;
	}
	pthread_join(h->worker, NULL);
	sodium_memzero(h->authorization, sizeof(h->authorization));
	free(h->queue);
	free(h);
}
