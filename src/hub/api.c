/* SPDX-License-Identifier: MIT */
/*
 * The hub's JSON API, /api/v1/ (docs/hub-api.md).  Three kinds of caller:
 *
 *   agents   Authorization: Bearer <the server's token>.  They poll
 *            /sync (answered from memory, 304 while nothing changed) and
 *            ask /keys/<member> when sshd wants a member's keys.
 *   members  the session cookie of the pages; a request that changes
 *            anything also carries X-CSRF-Token (the session's token), which
 *            another site's page cannot set.
 *   admins   members whose record says admin.
 *
 * After a change an agent must see, the agents concerned are poked
 * (POST <url>/api/v1/poke) from a worker thread, so that they sync now
 * rather than at their next poll; a poke that fails is only logged.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sodium.h>

#include "cleanup.h"
#include "hub.h"
#include "log.h"
#include "strutil.h"
#include "validate.h"
#include "banned.h"

#define API_TOUCH_INTERVAL 5        /* seconds between recordings of an agent's contact */
#define API_POKE_TIMEOUT_MS 2000L

/* ---- replies ----------------------------------------------------------------- */

static int api_error(struct http_response *resp, unsigned status, const char *message)
{
	return http_reply_error(resp, status, message);
}

static int api_json(struct http_response *resp, unsigned status, json_t *doc)
{
	int ret;

	if (!doc)
		return -ENOMEM;
	ret = http_reply_json(resp, status, doc);
	json_decref(doc);
	return ret;
}

static json_t *api_member_json(const struct hub_member *m)
{
	return json_pack("{s:s, s:s, s:I, s:I, s:i, s:I, s:b, s:b, s:I}",
			 "name", m->name,
			 "display_name", m->display_name,
			 "uid", (json_int_t)m->uid,
			 "subid_base", (json_int_t)m->subid_base,
			 "subid_count", (int)SUBID_COUNT,
			 "ssh_port", (json_int_t)m->ssh_port,
			 "disabled", m->disabled,
			 "admin", m->admin,
			 "created", (json_int_t)m->created);
}

static json_t *api_key_json(const struct hub_key *k)
{
	return json_pack("{s:I, s:s, s:s, s:I}",
			 "id", (json_int_t)k->id,
			 "line", k->line,
			 "fingerprint", k->fingerprint,
			 "added", (json_int_t)k->added);
}

/* ---- who is asking -------------------------------------------------------- */

/* The agent whose token is in the Authorization header; false with the
 * reply filled when there is none. */
static bool api_agent(struct http_request *req, struct http_response *resp, struct hub_server *server)
{
	const char *auth = req->authorization;
	int ret = -ENOENT;

	if (auth && strncasecmp(auth, "Bearer ", 7) == 0)
		ret = hubdb_server_by_token(req->hub->db, auth + 7 + strspn(auth + 7, " "), server);
	if (ret == 0)
		return true;
	if (ret == -ENOENT) {
		api_error(resp, 401, "A server's token is needed: Authorization: Bearer <token>.");
		http_add_header(resp, "WWW-Authenticate: Bearer realm=\"gpubox-hub\"");
	} else {
		api_error(resp, 503, "The hub cannot read its database now.");
	}
	return false;
}

/* Whether the X-CSRF-Token header holds the session's token. */
static bool api_csrf_ok(const struct http_request *req)
{
	const char *sent = http_request_header(req, "X-CSRF-Token");
	size_t len = strlen(req->session.csrf);

	return sent && len > 0 && strlen(sent) == len &&
	       sodium_memcmp(sent, req->session.csrf, len) == 0;
}

/* The signed-in member; false with the reply filled otherwise.  A request
 * that changes anything must prove it comes from our own pages. */
static bool api_member(struct http_request *req, struct http_response *resp, bool changes,
		       struct hub_member *m)
{
	if (!req->signed_in) {
		api_error(resp, 401, "Sign in first.");
		return false;
	}
	if (changes && !api_csrf_ok(req)) {
		api_error(resp, 403, "The X-CSRF-Token header is missing or wrong; reload the page.");
		return false;
	}
	if (hubdb_member_get(req->hub->db, req->session.member, m) < 0) {
		api_error(resp, 401, "Sign in again.");
		return false;
	}
	if (m->disabled) {
		api_error(resp, 403, "Your account is disabled; ask the lab's admins.");
		return false;
	}
	return true;
}

static bool api_admin(struct http_request *req, struct http_response *resp, bool changes,
		      struct hub_member *m)
{
	if (!api_member(req, resp, changes, m))
		return false;
	if (!m->admin) {
		api_error(resp, 403, "Only the hub's admins may do that.");
		return false;
	}
	return true;
}

/* A JSON body is sent as JSON: no HTML form can post one to us. */
static bool api_json_body(const struct http_request *req, struct http_response *resp)
{
	const char *type = http_request_header(req, "Content-Type");
	size_t len = strlen("application/json");

	if (type && strncasecmp(type, "application/json", len) == 0 && (type[len] == '\0' || type[len] == ';'))
		return true;
	api_error(resp, 415, "Send the body as Content-Type: application/json.");
	return false;
}

/* ---- request bodies ----------------------------------------------------- */

/* The body as a JSON object holding exactly field, or -EINVAL with err. */
static int api_parse_object(const char *body, size_t len, const char *field, json_t **value,
			    json_t **doc, const char *example, char *err, size_t errlen)
{
	json_error_t jerr;

	*doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!*doc || !json_is_object(*doc) || json_object_size(*doc) != 1 ||
	    !(*value = json_object_get(*doc, field))) {
		json_decref(*doc);
		*doc = NULL;
		set_error(err, errlen, "The body must be the JSON object %s.", example);
		return -EINVAL;
	}
	return 0;
}

int api_parse_key_request(const char *body, size_t len, char *line, size_t linelen,
			  char *err, size_t errlen)
{
	__do_json json_t *doc = NULL;
	json_t *value = NULL;
	int ret;

	ret = api_parse_object(body, len, "key", &value, &doc,
			       "{\"key\": \"ssh-ed25519 AAAA... you@laptop\"}", err, errlen);
	if (ret < 0)
		return ret;
	if (!json_is_string(value)) {
		set_error(err, errlen, "\"key\" must be a string: one line of your .pub file.");
		return -EINVAL;
	}
	if (json_string_length(value) >= linelen) {
		set_error(err, errlen, "The key is longer than %zu characters.", linelen - 1);
		return -EINVAL;
	}
	snprintf(line, linelen, "%s", json_string_value(value));
	return 0;
}

int api_parse_flag_request(const char *body, size_t len, const char *field, bool *out,
			   char *err, size_t errlen)
{
	__do_json json_t *doc = NULL;
	char example[96];
	json_t *value = NULL;
	int ret;

	snprintf(example, sizeof(example), "{\"%s\": true} or {\"%s\": false}", field, field);
	ret = api_parse_object(body, len, field, &value, &doc, example, err, errlen);
	if (ret < 0)
		return ret;
	if (!json_is_boolean(value)) {
		set_error(err, errlen, "The body must be the JSON object %s.", example);
		return -EINVAL;
	}
	*out = json_is_true(value);
	return 0;
}

/* ---- poking agents ----------------------------------------------------------- */

struct api_poke_target {
	struct api_poke_target *next;
	struct agentcall_target agent;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t changed;
	pthread_t thread;
	struct api_poke_target *head;
	struct api_poke_target *tail;
	bool running;
	bool stopping;
	bool busy;
} api_poke = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.changed = PTHREAD_COND_INITIALIZER,
};

static void api_poke_send(const struct api_poke_target *t)
{
	struct agentcall_answer answer;

	agentcall_post(&t->agent, API_POKE_TIMEOUT_MS, &answer);
	if (answer.error[0])
		log_warn("poking server %s: %s", t->agent.name, answer.error);
	else
		log_debug("poked server %s", t->agent.name);
	agentcall_answer_free(&answer);
}

static void *api_poke_worker(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&api_poke.lock);
	for (;;) {
		struct api_poke_target *t;

		while (!api_poke.head && !api_poke.stopping)
			pthread_cond_wait(&api_poke.changed, &api_poke.lock);
		if (!api_poke.head)
			break;
		t = api_poke.head;
		api_poke.head = t->next;
		if (!api_poke.head)
			api_poke.tail = NULL;
		api_poke.busy = true;
		pthread_mutex_unlock(&api_poke.lock);

		api_poke_send(t);
		sodium_memzero(t, sizeof(*t));
		free(t);

		pthread_mutex_lock(&api_poke.lock);
		api_poke.busy = false;
		pthread_cond_broadcast(&api_poke.changed);
	}
	pthread_mutex_unlock(&api_poke.lock);
	return NULL;
}

/* Queue t (taken over) unless the same server waits already. */
static int api_poke_enqueue(struct api_poke_target *t)
{
	int ret = 0;

	agentcall_init();
	pthread_mutex_lock(&api_poke.lock);
	for (struct api_poke_target *q = api_poke.head; q; q = q->next) {
		if (strcmp(q->agent.name, t->agent.name) == 0) {
			free(t);
			t = NULL;
			break;
		}
	}
	if (t && !api_poke.running) {
		ret = -pthread_create(&api_poke.thread, NULL, api_poke_worker, NULL);
		if (ret == 0)
			api_poke.running = true;
	}
	if (t && ret == 0) {
		if (api_poke.tail)
			api_poke.tail->next = t;
		else
			api_poke.head = t;
		api_poke.tail = t;
		pthread_cond_broadcast(&api_poke.changed);
	} else if (t) {
		free(t);
	}
	pthread_mutex_unlock(&api_poke.lock);
	if (ret < 0)
		return log_warn_errno(ret, -ret, "cannot start the thread that pokes agents");
	return 0;
}

int api_poke_server(struct hub *hub, const char *server)
{
	struct api_poke_target *t = calloc(1, sizeof(*t));
	int ret;

	if (!t)
		return -ENOMEM;
	ret = agentcall_target(hub->db, server, "/api/v1/poke", &t->agent);
	if (ret < 0) {
		free(t);
		return ret;
	}
	return api_poke_enqueue(t);
}

int api_poke_member(struct hub *hub, const char *member)
{
	__do_free char (*names)[HUB_NAME_MAX] = NULL;
	size_t n = 0;
	int ret = hubdb_enabled_servers(hub->db, member, &names, &n);

	for (size_t i = 0; ret == 0 && i < n; i++)
		api_poke_server(hub, names[i]);
	return ret;
}

void api_poke_flush(void)
{
	pthread_mutex_lock(&api_poke.lock);
	while (api_poke.running && (api_poke.head || api_poke.busy))
		pthread_cond_wait(&api_poke.changed, &api_poke.lock);
	pthread_mutex_unlock(&api_poke.lock);
}

void api_poke_stop(void)
{
	bool running;

	pthread_mutex_lock(&api_poke.lock);
	api_poke.stopping = true;
	running = api_poke.running;
	pthread_cond_broadcast(&api_poke.changed);
	pthread_mutex_unlock(&api_poke.lock);
	if (running)
		pthread_join(api_poke.thread, NULL);
	pthread_mutex_lock(&api_poke.lock);
	api_poke.running = false;
	api_poke.stopping = false;
	pthread_mutex_unlock(&api_poke.lock);
}

/* ---- agents ------------------------------------------------------------------- */

/* Whether an If-None-Match list names this generation's ETag (or "*"). */
static bool api_etag_matches(const char *header, uint64_t generation)
{
	char tag[32];
	size_t taglen;

	if (!header)
		return false;
	taglen = (size_t)snprintf(tag, sizeof(tag), "\"%" PRIu64 "\"", generation);
	for (const char *p = header; *p;) {
		size_t len;

		p += strspn(p, " \t,");
		if (strncmp(p, "W/", 2) == 0)
			p += 2;
		len = strcspn(p, ",");
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if ((len == 1 && p[0] == '*') || (len == taglen && memcmp(p, tag, len) == 0))
			return true;
		p += strcspn(p, ",");
	}
	return false;
}

/* Record the agent's contact, at most once in API_TOUCH_INTERVAL: a
 * write per poll would cost more than the poll. */
static void api_touch(struct hub *hub, const struct hub_server *server)
{
	long long now = (long long)time(NULL);

	if (now - server->last_contact >= API_TOUCH_INTERVAL)
		hubdb_server_touch(hub->db, server->name, now);
}

static int api_sync(struct http_request *req, struct http_response *resp)
{
	struct hub_server server;
	uint64_t generation;
	char *text = NULL;
	size_t len = 0;
	int ret;

	if (!api_agent(req, resp, &server))
		return 0;
	api_touch(req->hub, &server);
	generation = hubdb_generation(req->hub->db);
	if (api_etag_matches(req->if_none_match, generation)) {
		http_reply(resp, 304, NULL, NULL);
		return http_add_header(resp, "ETag: \"%" PRIu64 "\"", generation);
	}
	ret = hubdb_sync_text(req->hub->db, server.name, &text, &len, &generation);
	if (ret == -ENOENT)
		return api_error(resp, 401, "This server was removed from the hub.");
	if (ret < 0)
		return ret;
	http_reply_len(resp, 200, "application/json", text, len);
	return http_add_header(resp, "ETag: \"%" PRIu64 "\"", generation);
}

static int api_keys(struct http_request *req, struct http_response *resp)
{
	const char *member = req->path + strlen("/api/v1/keys/");
	struct hub_server server;
	char *text = NULL;
	size_t len = 0;
	int ret;

	if (!api_agent(req, resp, &server))
		return 0;
	ret = hubdb_authorized_keys(req->hub->db, server.name, member, &text, &len);
	if (ret == -ENOENT)
		return api_error(resp, 404, "No such member on this server.");
	if (ret < 0)
		return ret;
	return http_reply_len(resp, 200, "text/plain; charset=utf-8", text, len);
}

/* ---- members --------------------------------------------------------------- */

static bool api_name_in(const char (*names)[HUB_NAME_MAX], size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return true;
	return false;
}

static json_t *api_servers_of(struct hub *hub, const char *member)
{
	__do_free char (*enabled)[HUB_NAME_MAX] = NULL;
	__do_free struct hub_server *servers = NULL;
	__do_json json_t *list = json_array();
	size_t nenabled = 0, nservers = 0;

	if (!list || hubdb_enabled_servers(hub->db, member, &enabled, &nenabled) < 0 ||
	    hubdb_server_list(hub->db, &servers, &nservers) < 0)
		return NULL;
	for (size_t i = 0; i < nservers; i++) {
		const struct hub_server *s = &servers[i];
		json_t *one = json_pack("{s:s, s:s, s:b, s:I}", "name", s->name,
					"ssh_host", s->ssh_host[0] ? s->ssh_host : s->name,
					"enabled", api_name_in(enabled, nenabled, s->name),
					"last_contact", (json_int_t)s->last_contact);

		if (json_array_append_new(list, one) < 0)
			return NULL;
	}
	return move_ptr(list);
}

static int api_me(struct http_request *req, struct http_response *resp)
{
	struct hub_member m;
	json_t *servers;

	if (!api_member(req, resp, false, &m))
		return 0;
	servers = api_servers_of(req->hub, m.name);
	if (!servers)
		return -ENOMEM;
	return api_json(resp, 200, json_pack("{s:o, s:s, s:o}", "member", api_member_json(&m),
					     "csrf_token", req->session.csrf, "servers", servers));
}

static int api_me_keys(struct http_request *req, struct http_response *resp)
{
	__do_free struct hub_key *keys = NULL;
	__do_json json_t *list = json_array();
	struct hub_member m;
	size_t n = 0;
	int ret;

	if (!api_member(req, resp, false, &m))
		return 0;
	ret = hubdb_key_list(req->hub->db, m.name, &keys, &n);
	if (ret < 0)
		return ret;
	if (!list)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (json_array_append_new(list, api_key_json(&keys[i])) < 0)
			return -ENOMEM;
	return api_json(resp, 200, json_pack("{s:O}", "keys", list));
}

/* "type base64 [comment]": the line as stored and sent to the servers. */
static int api_key_line(const struct ssh_key *key, char *line, size_t len)
{
	int n = snprintf(line, len, "%s %s%s%s", key->type, key->base64, key->comment[0] ? " " : "",
			 key->comment);

	return n > 0 && (size_t)n < len ? 0 : -E2BIG;
}

static int api_me_key_add(struct http_request *req, struct http_response *resp)
{
	__do_free struct ssh_key *key = calloc(1, sizeof(*key));
	char text[SSH_KEY_MAX], line[sizeof(((struct hub_key *)0)->line)], err[256];
	struct hub_member m;
	long long id = 0;
	int ret;

	if (!key)
		return -ENOMEM;
	if (!api_member(req, resp, true, &m) || !api_json_body(req, resp))
		return 0;
	if (api_parse_key_request(req->body, req->body_len, text, sizeof(text), err, sizeof(err)) < 0 ||
	    ssh_key_parse(text, key, err, sizeof(err)) < 0)
		return api_error(resp, 400, err);
	if (api_key_line(key, line, sizeof(line)) < 0)
		return api_error(resp, 400, "The key is too long.");
	ret = hubdb_key_add(req->hub->db, m.name, line, key->fingerprint, &id);
	if (ret == -EEXIST)
		return api_error(resp, 409, "This key is on your account already.");
	if (ret == -ENOSPC)
		return api_error(resp, 409, "You have 32 keys already; remove one first.");
	if (ret < 0)
		return ret;
	log_info("member %s added key %s", m.name, key->fingerprint);
	api_poke_member(req->hub, m.name);
	return api_json(resp, 201, json_pack("{s:I, s:s, s:s}", "id", (json_int_t)id,
					     "fingerprint", key->fingerprint, "line", line));
}

/* A whole decimal number of at most 18 digits (a row id). */
static int api_parse_id(const char *text, long long *out)
{
	long long value = 0;
	size_t len = strlen(text);

	if (len == 0 || len > 18)
		return -EINVAL;
	for (const char *p = text; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		value = value * 10 + (*p - '0');
	}
	*out = value;
	return 0;
}

static int api_me_key_remove(struct http_request *req, struct http_response *resp)
{
	struct hub_member m;
	long long id;
	int ret;

	if (!api_member(req, resp, true, &m))
		return 0;
	if (api_parse_id(req->path + strlen("/api/v1/me/keys/"), &id) < 0)
		return api_error(resp, 404, "No such key.");
	ret = hubdb_key_remove(req->hub->db, m.name, id);
	if (ret == -ENOENT)
		return api_error(resp, 404, "No such key.");
	if (ret < 0)
		return ret;
	log_info("member %s removed key %lld", m.name, id);
	api_poke_member(req->hub, m.name);
	return api_json(resp, 200, json_pack("{s:I}", "removed", (json_int_t)id));
}

static int api_me_server(struct http_request *req, struct http_response *resp)
{
	const char *server = req->path + strlen("/api/v1/me/servers/");
	struct hub_member m;
	char err[160];
	bool on;
	int ret;

	if (!api_member(req, resp, true, &m) || !api_json_body(req, resp))
		return 0;
	if (api_parse_flag_request(req->body, req->body_len, "enabled", &on, err, sizeof(err)) < 0)
		return api_error(resp, 400, err);
	ret = hubdb_enable(req->hub->db, m.name, server, on);
	if (ret == -ENOENT)
		return api_error(resp, 404, "No such server.");
	if (ret < 0)
		return ret;
	log_info("member %s %s server %s", m.name, on ? "enabled" : "disabled", server);
	api_poke_server(req->hub, server);
	return api_json(resp, 200, json_pack("{s:s, s:b}", "server", server, "enabled", on));
}

static int api_me_ssh_config(struct http_request *req, struct http_response *resp)
{
	__do_free char (*names)[HUB_NAME_MAX] = NULL;
	__do_free struct hub_server *servers = NULL;
	struct hub_member m;
	size_t n = 0, found = 0;
	char *text;
	int ret;

	if (!api_member(req, resp, false, &m))
		return 0;
	ret = hubdb_enabled_servers(req->hub->db, m.name, &names, &n);
	if (ret < 0)
		return ret;
	servers = calloc(n ? n : 1, sizeof(*servers));
	if (!servers)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (hubdb_server_get(req->hub->db, names[i], &servers[found]) == 0)
			found++;
	text = sshconfig_render_lab(req->hub->cfg.lab_name, &m, servers, found);
	if (!text)
		return -errno;
	http_reply(resp, 200, "text/plain; charset=utf-8", text);
	return http_add_header(resp, "Content-Disposition: attachment; filename=\"config\"");
}

/* ---- admins ------------------------------------------------------------------ */

/* An admin's GET of a whole list: {key: [...]}, the array filled by fill. */
static int api_admin_list(struct http_request *req, struct http_response *resp, const char *key,
			  int (*fill)(struct hubdb *db, json_t *list))
{
	__do_json json_t *list = json_array();
	struct hub_member m;
	int ret;

	if (!api_admin(req, resp, false, &m))
		return 0;
	if (!list)
		return -ENOMEM;
	ret = fill(req->hub->db, list);
	if (ret < 0)
		return ret;
	return api_json(resp, 200, json_pack("{s:O}", key, list));
}

static int api_members_fill(struct hubdb *db, json_t *list)
{
	__do_free struct hub_member *members = NULL;
	size_t n = 0;
	int ret = hubdb_member_list(db, &members, &n);

	for (size_t i = 0; ret == 0 && i < n; i++)
		if (json_array_append_new(list, api_member_json(&members[i])) < 0)
			ret = -ENOMEM;
	return ret;
}

static json_t *api_server_json(const struct hub_server *s)
{
	return json_pack("{s:s, s:s, s:s, s:I, s:I}", "name", s->name, "url", s->url,
			 "ssh_host", s->ssh_host[0] ? s->ssh_host : s->name,
			 "last_contact", (json_int_t)s->last_contact, "created", (json_int_t)s->created);
}

static int api_servers_fill(struct hubdb *db, json_t *list)
{
	__do_free struct hub_server *servers = NULL;
	size_t n = 0;
	int ret = hubdb_server_list(db, &servers, &n);

	for (size_t i = 0; ret == 0 && i < n; i++)
		if (json_array_append_new(list, api_server_json(&servers[i])) < 0)
			ret = -ENOMEM;
	return ret;
}

static int api_admin_members(struct http_request *req, struct http_response *resp)
{
	return api_admin_list(req, resp, "members", api_members_fill);
}

static int api_admin_servers(struct http_request *req, struct http_response *resp)
{
	return api_admin_list(req, resp, "servers", api_servers_fill);
}

static int api_admin_member(struct http_request *req, struct http_response *resp)
{
	const char *name = req->path + strlen("/api/v1/admin/members/");
	struct hub_member m;
	char err[160];
	bool disabled;
	int ret;

	if (!api_admin(req, resp, true, &m) || !api_json_body(req, resp))
		return 0;
	if (api_parse_flag_request(req->body, req->body_len, "disabled", &disabled, err, sizeof(err)) < 0)
		return api_error(resp, 400, err);
	if (disabled && strcmp(name, m.name) == 0)
		return api_error(resp, 409, "You cannot disable your own account.");
	ret = hubdb_member_set_disabled(req->hub->db, name, disabled);
	if (ret == -ENOENT)
		return api_error(resp, 404, "No such member.");
	if (ret < 0)
		return ret;
	log_info("admin %s %s member %s", m.name, disabled ? "disabled" : "enabled", name);
	api_poke_member(req->hub, name);
	return api_json(resp, 200, json_pack("{s:s, s:b}", "member", name, "disabled", disabled));
}

const struct http_route api_routes[] = {
	{ "GET",    "/api/v1/sync",           api_sync },
	{ "GET",    "/api/v1/keys/",          api_keys },
	{ "GET",    "/api/v1/me",             api_me },
	{ "GET",    "/api/v1/me/keys",        api_me_keys },
	{ "POST",   "/api/v1/me/keys",        api_me_key_add },
	{ "DELETE", "/api/v1/me/keys/",       api_me_key_remove },
	{ "POST",   "/api/v1/me/servers/",    api_me_server },
	{ "GET",    "/api/v1/me/ssh-config",  api_me_ssh_config },
	{ "GET",    "/api/v1/me/monitor",     monitor_api_me },
	{ "GET",    "/api/v1/monitor",        monitor_api_overview },
	{ "GET",    "/api/v1/monitor/servers/", monitor_api_server },
	{ "GET",    "/api/v1/monitor/usage",  monitor_api_usage },
	{ "GET",    "/api/v1/admin/members",  api_admin_members },
	{ "GET",    "/api/v1/admin/servers",  api_admin_servers },
	{ "POST",   "/api/v1/admin/members/", api_admin_member },
	{ NULL, NULL, NULL },
};
