/* SPDX-License-Identifier: MIT */
/*
 * The hub's HTTP server: libmicrohttpd with a pool of one polling thread
 * per CPU (epoll), HTTPS when hub.conf names a certificate.  This file
 * reads a request whole (headers, a body of at most HTTP_BODY_MAX bytes,
 * the session named by the cookie), hands it to the first route that
 * matches (api_routes, then pages_routes), and sends what the handler
 * answered with the headers every response carries.
 *
 * Agents poll it often: the state a connection needs between requests
 * (the client's address, the body buffer) is made once per connection,
 * not once per request.
 *
 * Slow clients must not starve the others.  libmicrohttpd's timeout is an
 * idle one: a client that trickles a header line every few seconds keeps
 * a connection for ever, and 1,000 of them filled the server.  So every
 * connection is also listed here (http_guard): one client address may hold
 * connections_per_address at once (checked when one is accepted; the
 * proxy's own loopback connections are not counted behind_proxy, the
 * proxy answers for its clients), and a connection that has not sent a
 * whole request within HTTP_REQUEST_DEADLINE_S of its start or of its last
 * answer is shut down by a watchdog thread, whatever it trickles.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <sodium.h>

#include "cleanup.h"
#include "fsutil.h"
#include "hub.h"
#include "log.h"
#include "strutil.h"
#include "banned.h"

#define HTTP_QUERY_MAX 4096
#define HTTP_CONNECTIONS_MAX 1000
#define HTTP_TIMEOUT_S 30
/* A whole request within this many seconds of the connection's start or of
 * its last answer; the watchdog looks every HTTP_WATCHDOG_S seconds. */
#define HTTP_REQUEST_DEADLINE_S 30
#define HTTP_WATCHDOG_S 2
#define HTTP_PEM_MAX (1024 * 1024)
/* libmicrohttpd's buffer per connection, for the request's headers and the
 * response's: it is cleared at every request, so no larger than needed. */
#define HTTP_CONNECTION_MEMORY (16 * 1024)
#define HTTP_BODY_KEPT (16 * 1024)

/* Per connection, kept across the requests of a keep-alive connection. */
struct http_conn {
	char client[INET6_ADDRSTRLEN];
	bool loopback;
	/* In http_guard's list, under its lock. */
	struct http_conn *prev, *next;
	int fd;
	long long waiting_since;      /* CLOCK_MONOTONIC s: start, or the last answer */
	bool shut;                    /* the watchdog shut it down */
	/* The request in progress. */
	bool started;
	bool too_large;
	bool query_too_long;
	char query[HTTP_QUERY_MAX];
	size_t query_len;
	char *body;
	size_t body_len;
	size_t body_cap;
};

/* HTTPS only, for a year (browsers ignore it over plain HTTP).  No
 * includeSubDomains: the hub does not speak for the other hosts of its
 * domain; no preload, which would bind the domain too. */
#define HTTP_HSTS "max-age=31536000"

static const char *const http_security_headers[][2] = {
	{ "Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'" },
	{ "X-Content-Type-Options", "nosniff" },
	{ "Referrer-Policy", "same-origin" },
	{ "X-Frame-Options", "DENY" },
};

/* ---- helpers for handlers ------------------------------------------------ */

int http_reply_len(struct http_response *resp, unsigned status, const char *type, char *body,
		   size_t len)
{
	free(resp->body);
	resp->status = status;
	resp->content_type = type;
	resp->body = body;
	resp->body_len = body ? len : 0;
	resp->compress = false;
	return 0;
}

int http_reply(struct http_response *resp, unsigned status, const char *type, char *body)
{
	return http_reply_len(resp, status, type, body, body ? strlen(body) : 0);
}

int http_reply_json(struct http_response *resp, unsigned status, json_t *json)
{
	char *text = json ? json_dumps(json, JSON_COMPACT) : NULL;

	if (!text)
		return -ENOMEM;
	return http_reply(resp, status, "application/json", text);
}

int http_reply_error(struct http_response *resp, unsigned status, const char *message)
{
	__do_json json_t *doc = json_pack("{s:s}", "error", message ? message : "error");

	if (!doc)
		return -ENOMEM;
	return http_reply_json(resp, status, doc);
}

int http_add_header(struct http_response *resp, const char *fmt, ...)
{
	char *header = NULL;
	va_list ap;
	int n;

	if (resp->nheaders >= ARRAY_SIZE(resp->headers))
		return -E2BIG;
	va_start(ap, fmt);
	n = vasprintf(&header, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	/* A line break would let a value add headers of its own. */
	if (strpbrk(header, "\r\n") || !strstr(header, ": ")) {
		free(header);
		return -EINVAL;
	}
	resp->headers[resp->nheaders++] = header;
	return 0;
}

int http_redirect(struct http_response *resp, const char *location)
{
	/* Only to a path of this site: "//host" would leave it. */
	if (!location || location[0] != '/' || location[1] == '/' || location[1] == '\\')
		return -EINVAL;
	http_reply(resp, 303, NULL, NULL);
	return http_add_header(resp, "Location: %s", location);
}

const char *http_request_header(const struct http_request *req, const char *name)
{
	if (!req->connection)
		return NULL;
	return MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND, name);
}

static void http_response_free(struct http_response *resp)
{
	free(resp->body);
	for (size_t i = 0; i < resp->nheaders; i++)
		free(resp->headers[i]);
	memset(resp, 0, sizeof(*resp));
}

/* ---- connections -------------------------------------------------------- */

static void http_conn_address(struct http_conn *conn, const struct sockaddr *sa)
{
	snprintf(conn->client, sizeof(conn->client), "unknown");
	if (!sa)
		return;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		inet_ntop(AF_INET, &in->sin_addr, conn->client, sizeof(conn->client));
		conn->loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
			inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], conn->client, sizeof(conn->client));
			conn->loopback = in6->sin6_addr.s6_addr[12] == 127;
		} else {
			inet_ntop(AF_INET6, &in6->sin6_addr, conn->client, sizeof(conn->client));
			conn->loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
		}
	}
}

/* Every open connection of the (one) server, for the cap per address and
 * the watchdog. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct http_conn *head;
	unsigned per_address;         /* connections_per_address */
	bool count_loopback;          /* false behind_proxy */
	bool stopping;
	bool running;
	pthread_t watchdog;
} http_guard = { .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER };

static long long http_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec;
}

static void http_guard_add(struct http_conn *conn)
{
	pthread_mutex_lock(&http_guard.lock);
	conn->next = http_guard.head;
	if (conn->next)
		conn->next->prev = conn;
	http_guard.head = conn;
	pthread_mutex_unlock(&http_guard.lock);
}

/* Before the descriptor is closed (libmicrohttpd tells of the close
 * first), so the watchdog never shuts down a descriptor reused since. */
static void http_guard_remove(struct http_conn *conn)
{
	pthread_mutex_lock(&http_guard.lock);
	if (conn->prev)
		conn->prev->next = conn->next;
	else if (http_guard.head == conn)
		http_guard.head = conn->next;
	if (conn->next)
		conn->next->prev = conn->prev;
	conn->prev = conn->next = NULL;
	pthread_mutex_unlock(&http_guard.lock);
}

/* A request is whole (or answered): the deadline starts again. */
static void http_guard_touch(struct http_conn *conn)
{
	__atomic_store_n(&conn->waiting_since, http_now(), __ATOMIC_RELAXED);
}

/* Shut down every connection past its deadline: libmicrohttpd then sees
 * the end of the stream and closes it as usual. */
static void http_guard_sweep(long long now)
{
	pthread_mutex_lock(&http_guard.lock);
	for (struct http_conn *c = http_guard.head; c; c = c->next) {
		if (c->shut || c->fd < 0 ||
		    now - __atomic_load_n(&c->waiting_since, __ATOMIC_RELAXED) < HTTP_REQUEST_DEADLINE_S)
			continue;
		c->shut = true;
		shutdown(c->fd, SHUT_RDWR);
		log_info("http: %s sent no whole request in %d s: connection closed", c->client,
			 HTTP_REQUEST_DEADLINE_S);
	}
	pthread_mutex_unlock(&http_guard.lock);
}

static void *http_guard_watchdog(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&http_guard.lock);
	while (!http_guard.stopping) {
		struct timespec until;

		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += HTTP_WATCHDOG_S;
		pthread_cond_timedwait(&http_guard.wake, &http_guard.lock, &until);
		if (http_guard.stopping)
			break;
		pthread_mutex_unlock(&http_guard.lock);
		http_guard_sweep(http_now());
		pthread_mutex_lock(&http_guard.lock);
	}
	pthread_mutex_unlock(&http_guard.lock);
	return NULL;
}

/* One server per process: the guard is the process's. */
static int http_guard_start(const struct hub_config *cfg)
{
	pthread_condattr_t attr;
	int ret;

	if (http_guard.running)
		return -EBUSY;
	http_guard.per_address = cfg->connections_per_address ? cfg->connections_per_address : 1;
	http_guard.count_loopback = !cfg->behind_proxy;
	http_guard.stopping = false;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_destroy(&http_guard.wake);
	pthread_cond_init(&http_guard.wake, &attr);
	pthread_condattr_destroy(&attr);
	ret = -pthread_create(&http_guard.watchdog, NULL, http_guard_watchdog, NULL);
	http_guard.running = ret == 0;
	return ret;
}

static void http_guard_stop(void)
{
	if (!http_guard.running)
		return;
	pthread_mutex_lock(&http_guard.lock);
	http_guard.stopping = true;
	pthread_cond_broadcast(&http_guard.wake);
	pthread_mutex_unlock(&http_guard.lock);
	pthread_join(http_guard.watchdog, NULL);
	http_guard.running = false;
}

/* libmicrohttpd's accept policy: refuse a client address that holds its
 * share of connections already. */
static enum MHD_Result http_on_accept(void *cls, const struct sockaddr *sa, socklen_t len)
{
	struct http_conn probe = { 0 };
	unsigned held = 0;

	(void)cls;
	(void)len;
	http_conn_address(&probe, sa);
	if (probe.loopback && !http_guard.count_loopback)
		return MHD_YES;
	pthread_mutex_lock(&http_guard.lock);
	for (struct http_conn *c = http_guard.head; c && held < http_guard.per_address; c = c->next)
		held += !c->shut && strcmp(c->client, probe.client) == 0;
	pthread_mutex_unlock(&http_guard.lock);
	if (held < http_guard.per_address)
		return MHD_YES;
	log_debug("http: %s holds %u connections already: one more refused", probe.client, held);
	return MHD_NO;
}

static void http_on_connection(void *cls, struct MHD_Connection *connection, void **socket_context,
			       enum MHD_ConnectionNotificationCode code)
{
	struct http_conn *conn = *socket_context;

	(void)cls;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *info =
			MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

		const union MHD_ConnectionInfo *fd_info =
			MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);

		conn = calloc(1, sizeof(*conn));
		if (conn) {
			http_conn_address(conn, info ? info->client_addr : NULL);
			conn->fd = fd_info ? fd_info->connect_fd : -1;
			conn->waiting_since = http_now();
			http_guard_add(conn);
		}
		*socket_context = conn;
	} else if (code == MHD_CONNECTION_NOTIFY_CLOSED && conn) {
		http_guard_remove(conn);
		free(conn->body);
		free(conn);
		*socket_context = NULL;
	}
}

/* Called once per request, before the URI is parsed: the raw query is
 * kept here (libmicrohttpd splits it up), and the connection's state
 * becomes the request's. */
static void *http_on_uri(void *cls, const char *uri, struct MHD_Connection *connection)
{
	const union MHD_ConnectionInfo *info =
		MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct http_conn *conn = info ? info->socket_context : NULL;
	const char *q;

	(void)cls;
	if (!conn)
		return NULL;
	conn->started = false;
	conn->too_large = false;
	conn->query_too_long = false;
	conn->body_len = 0;
	/* A large body's buffer is not kept for the connection's life. */
	if (conn->body_cap > HTTP_BODY_KEPT) {
		free(conn->body);
		conn->body = NULL;
		conn->body_cap = 0;
	}
	conn->query_len = 0;
	conn->query[0] = '\0';
	q = uri ? strchr(uri, '?') : NULL;
	if (q) {
		size_t len = strlen(q + 1);

		if (len >= sizeof(conn->query)) {
			conn->query_too_long = true;
		} else {
			memcpy(conn->query, q + 1, len + 1);
			conn->query_len = len;
		}
	}
	return conn;
}

/* A request answered (or given up): the connection's deadline starts again. */
static void http_on_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
			      enum MHD_RequestTerminationCode code)
{
	(void)cls;
	(void)connection;
	(void)code;
	if (*con_cls)
		http_guard_touch(*con_cls);
}

/* The path and query exactly as sent: the handlers validate what they take. */
static size_t http_no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
	(void)cls;
	(void)c;
	return strlen(s);
}

__attribute__((format(printf, 2, 0)))
static void http_on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char text[512];
	size_t len;

	(void)cls;
	vsnprintf(text, sizeof(text), fmt, ap);
	len = strlen(text);
	while (len > 0 && text[len - 1] == '\n')
		text[--len] = '\0';
	log_warn("http: %s", text);
}

/* ---- answering -------------------------------------------------------------- */

/* The index of header name in resp; -1 when absent. */
static int http_header_index(const struct http_response *resp, const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < resp->nheaders; i++)
		if (strncasecmp(resp->headers[i], name, len) == 0 && resp->headers[i][len] == ':')
			return (int)i;
	return -1;
}

static bool http_has_header(const struct http_response *resp, const char *name)
{
	return http_header_index(resp, name) >= 0;
}

static enum MHD_Result http_send(struct MHD_Connection *connection, struct http_response *resp,
				  bool secure)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(resp->body_len, resp->body,
					    resp->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	resp->body = NULL;  /* libmicrohttpd frees it now */
	if (resp->content_type)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, resp->content_type);
	for (size_t i = 0; i < ARRAY_SIZE(http_security_headers); i++)
		MHD_add_response_header(r, http_security_headers[i][0], http_security_headers[i][1]);
	if (secure)
		MHD_add_response_header(r, "Strict-Transport-Security", HTTP_HSTS);
	if (!http_has_header(resp, "Cache-Control"))
		MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	for (size_t i = 0; i < resp->nheaders; i++) {
		char *colon = strchr(resp->headers[i], ':');

		*colon = '\0';
		MHD_add_response_header(r, resp->headers[i], colon + 2);
		*colon = ':';
	}
	ret = MHD_queue_response(connection, resp->status ? resp->status : 500, r);
	MHD_destroy_response(r);
	return ret;
}

/* The answers made before a request is read whole: HTTPS when the hub
 * serves TLS itself (a proxy's X-Forwarded-Proto is not read yet). */
static bool http_tls(struct MHD_Connection *connection)
{
	const union MHD_ConnectionInfo *conn_info =
		MHD_get_connection_info(connection, MHD_CONNECTION_INFO_DAEMON);
	const union MHD_DaemonInfo *info =
		conn_info ? MHD_get_daemon_info(conn_info->daemon, MHD_DAEMON_INFO_FLAGS) : NULL;

	return info && (info->flags & MHD_USE_TLS);
}

static enum MHD_Result http_send_error(struct MHD_Connection *connection, const char *path,
				       unsigned status, const char *message)
{
	struct http_response resp = { 0 };
	enum MHD_Result ret;

	if (path && str_has_prefix(path, "/api/"))
		http_reply_error(&resp, status, message);
	else
		http_reply(&resp, status, "text/plain; charset=utf-8", strdup(message));
	ret = http_send(connection, &resp, http_tls(connection));
	http_response_free(&resp);
	return ret;
}

/* ---- routing ------------------------------------------------------------- */

static bool http_route_matches(const struct http_route *r, const char *path)
{
	size_t len = strlen(r->prefix);

	if (len > 0 && r->prefix[len - 1] == '/')
		return strncmp(path, r->prefix, len) == 0;
	return strcmp(path, r->prefix) == 0;
}

/* The route for method and path; NULL with *path_known when only the
 * method differs (405), and allow listing the methods there are. */
static const struct http_route *http_route_find(const char *method, const char *path,
						bool *path_known, char *allow, size_t allowlen)
{
	const struct http_route *tables[] = { api_routes, pages_routes };
	/* /api/ is the API's alone: no page answers there, not even a 404 page. */
	size_t ntables = str_has_prefix(path, "/api/") ? 1 : ARRAY_SIZE(tables);

	*path_known = false;
	allow[0] = '\0';
	if (strcmp(method, "HEAD") == 0)
		method = "GET";
	for (size_t t = 0; t < ntables; t++) {
		for (const struct http_route *r = tables[t]; r && r->method && r->prefix; r++) {
			if (!http_route_matches(r, path))
				continue;
			if (strcmp(r->method, method) == 0)
				return r;
			if (!strstr(allow, r->method)) {
				size_t used = strlen(allow);

				snprintf(allow + used, allowlen - used, "%s%s", used ? ", " : "", r->method);
			}
			*path_known = true;
		}
	}
	return NULL;
}

/* Only the characters our routes use: anything else is no page of ours. */
static bool http_path_ok(const char *path)
{
	if (path[0] != '/')
		return false;
	for (const char *p = path; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      strchr("/-_.~", *p)))
			return false;
	return !strstr(path, "/..") && !strstr(path, "//");
}

/* The client: the socket's peer, or behind_proxy the last address the
 * proxy on loopback added to X-Forwarded-For. */
static void http_client_address(struct http_request *req, struct http_conn *conn, char *buf,
				size_t len)
{
	unsigned char addr[sizeof(struct in6_addr)];
	const char *xff, *last;

	req->client_address = conn->client;
	if (!req->hub->cfg.behind_proxy || !conn->loopback)
		return;
	xff = http_request_header(req, "X-Forwarded-For");
	if (!xff)
		return;
	last = strrchr(xff, ',');
	last = last ? last + 1 : xff;
	last += strspn(last, " \t");
	snprintf(buf, len, "%.*s", (int)strcspn(last, " \t"), last);
	if (inet_pton(AF_INET, buf, addr) == 1 || inet_pton(AF_INET6, buf, addr) == 1)
		req->client_address = buf;
}

static bool http_is_secure(struct http_request *req, struct http_conn *conn)
{
	const char *proto;

	if (req->hub->cfg.tls_cert[0])
		return true;
	if (!req->hub->cfg.behind_proxy || !conn->loopback)
		return false;
	proto = http_request_header(req, "X-Forwarded-Proto");
	return proto && strcasecmp(proto, "https") == 0;
}

int http_cookie_name(const struct http_request *req, const char *name, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s%s", req->cookies_secure ? HTTP_SECURE_COOKIE_PREFIX : "", name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static void http_find_session(struct http_request *req)
{
	char id[HUB_TOKEN_HEX], name[64];

	if (!req->cookie_header || http_cookie_name(req, HTTP_SESSION_COOKIE, name, sizeof(name)) < 0 ||
	    form_cookie(req->cookie_header, name, id, sizeof(id)) < 0)
		return;
	if (hubdb_session_get(req->hub->db, id, (long long)time(NULL), &req->session) == 0) {
		req->signed_in = true;
		snprintf(req->session_id, sizeof(req->session_id), "%s", id);
	}
	sodium_memzero(id, sizeof(id));
}

static bool http_is_urlencoded(const char *type)
{
	static const char form_type[] = "application/x-www-form-urlencoded";

	return type && strncasecmp(type, form_type, sizeof(form_type) - 1) == 0 &&
	       (type[sizeof(form_type) - 1] == '\0' || type[sizeof(form_type) - 1] == ';');
}

/* ---- compression ---------------------------------------------------------- */

static bool http_type_compresses(const char *type)
{
	static const char *const types[] = { "application/json", "text/", "application/javascript" };

	for (size_t i = 0; type && i < ARRAY_SIZE(types); i++)
		if (strncasecmp(type, types[i], strlen(types[i])) == 0)
			return true;
	return false;
}

/* A strong ETag names these bytes only: the compressed body's is weak
 * (If-None-Match compares weakly, api.c too). */
static int http_weaken_etag(struct http_response *resp)
{
	int i = http_header_index(resp, "ETag");
	char *weak;

	if (i < 0 || strncmp(resp->headers[i] + strlen("ETag: "), "W/", 2) == 0)
		return 0;
	if (asprintf(&weak, "ETag: W/%s", resp->headers[i] + strlen("ETag: ")) < 0)
		return -ENOMEM;
	free(resp->headers[i]);
	resp->headers[i] = weak;
	return 0;
}

/* The body in the coding the client accepts, when its handler allows it
 * and it is worth it.  Only a route that says so: an answer holding a
 * secret (a CSRF token, a session's data) beside text an attacker put in
 * the request tells the secret, guess by guess, through its compressed
 * length (BREACH); a list of routes not to compress would miss the next
 * page. */
static int http_compress_reply(const struct http_request *req, struct http_response *resp)
{
	enum http_encoding enc;
	char *packed;
	size_t packed_len;
	int ret;

	/* With no room for Vary and Content-Encoding, the bytes as they are,
	 * which every client takes. */
	if (!resp->compress || resp->body_len < HTTP_COMPRESS_MIN ||
	    !http_type_compresses(resp->content_type) ||
	    http_has_header(resp, "Content-Encoding") ||
	    resp->nheaders + 2 > ARRAY_SIZE(resp->headers))
		return 0;
	ret = http_add_header(resp, "Vary: Accept-Encoding");
	enc = encoding_pick(http_request_header(req, "Accept-Encoding"));
	if (ret < 0 || enc == HTTP_ENCODING_IDENTITY)
		return ret;
	ret = encoding_compress(enc, resp->body, resp->body_len, &packed, &packed_len);
	if (ret < 0)
		return ret;
	if (packed_len >= resp->body_len) {
		free(packed);
		return 0;
	}
	ret = http_add_header(resp, "Content-Encoding: %s", encoding_name(enc));
	if (ret == 0)
		ret = http_weaken_etag(resp);
	if (ret < 0) {
		free(packed);
		return ret;
	}
	free(resp->body);
	resp->body = packed;
	resp->body_len = packed_len;
	return 0;
}

static int http_call(struct hub *hub, struct MHD_Connection *connection, struct http_conn *conn,
		     const struct http_route *route, const char *method, const char *path,
		     struct http_response *resp, unsigned *bad_status, bool *secure)
{
	struct form query = { 0 }, form = { 0 };
	struct http_request req = {
		.hub = hub,
		.method = method,
		.path = path,
		.query = &query,
		.body = conn->body ? conn->body : "",
		.body_len = conn->body_len,
		.connection = connection,
	};
	char forwarded[INET6_ADDRSTRLEN];
	int ret;

	if (form_parse(conn->query, conn->query_len, &query) < 0) {
		*bad_status = 400;
		return -EINVAL;
	}
	if (strcmp(method, "POST") == 0 && http_is_urlencoded(http_request_header(&req, "Content-Type"))) {
		if (form_parse(req.body, req.body_len, &form) < 0) {
			form_free(&query);
			*bad_status = 400;
			return -EINVAL;
		}
		req.form = &form;
	}
	req.cookie_header = http_request_header(&req, "Cookie");
	req.authorization = http_request_header(&req, "Authorization");
	req.if_none_match = http_request_header(&req, "If-None-Match");
	http_client_address(&req, conn, forwarded, sizeof(forwarded));
	req.secure = http_is_secure(&req, conn);
	*secure = req.secure;
	/* Cookies are marked Secure (and named __Host-) when browsers reach
	 * the hub by HTTPS, here or at the proxy public_url names. */
	req.cookies_secure = req.secure || str_has_prefix(hub->cfg.public_url, "https://");
	http_find_session(&req);
	ret = route->handler(&req, resp);
	if (ret == 0)
		ret = http_compress_reply(&req, resp);
	form_free(&query);
	form_free(&form);
	sodium_memzero(&req.session, sizeof(req.session));
	return ret;
}

static enum MHD_Result http_dispatch(struct hub *hub, struct MHD_Connection *connection,
				     struct http_conn *conn, const char *method, const char *path)
{
	struct http_response resp = { 0 };
	const struct http_route *route;
	unsigned bad_status = 0;
	enum MHD_Result ret;
	bool path_known, secure = hub->cfg.tls_cert[0] != '\0';
	char allow[64];
	int rc;

	if (conn->query_too_long)
		return http_send_error(connection, path, 414, "The address is too long.");
	if (!http_path_ok(path))
		return http_send_error(connection, path, 404, "No such page.");
	route = http_route_find(method, path, &path_known, allow, sizeof(allow));
	if (!route && path_known) {
		static const char message[] = "This address does not take that method.";

		if (str_has_prefix(path, "/api/"))
			http_reply_error(&resp, 405, message);
		else
			http_reply(&resp, 405, "text/plain; charset=utf-8", strdup(message));
		http_add_header(&resp, "Allow: %s", allow);
		ret = http_send(connection, &resp, hub->cfg.tls_cert[0] != '\0');
		http_response_free(&resp);
		return ret;
	}
	if (!route)
		return http_send_error(connection, path, 404, "No such page.");
	rc = http_call(hub, connection, conn, route, method, path, &resp, &bad_status, &secure);
	if (rc < 0) {
		http_response_free(&resp);
		if (bad_status)
			return http_send_error(connection, path, bad_status, "The request is malformed.");
		log_warn_errno(0, -rc, "%s %s failed", method, path);
		return http_send_error(connection, path, 500, "The hub failed to answer; see its log.");
	}
	if (hub->cfg.debug)
		log_debug("%s %s %s -> %u", conn->client, method, path, resp.status);
	ret = http_send(connection, &resp, secure);
	http_response_free(&resp);
	return ret;
}

/* Keep upload data, up to HTTP_BODY_MAX; beyond, only remember that. */
static void http_collect(struct http_conn *conn, const char *data, size_t len)
{
	if (conn->too_large ||
	    buf_append(&conn->body, &conn->body_len, &conn->body_cap, data, len, HTTP_BODY_MAX) < 0)
		conn->too_large = true;
}

static bool http_declared_too_large(struct MHD_Connection *connection)
{
	const char *value = MHD_lookup_connection_value(connection, MHD_HEADER_KIND,
							MHD_HTTP_HEADER_CONTENT_LENGTH);
	uint64_t size;

	return value && parse_size(value, &size) == 0 && size > HTTP_BODY_MAX;
}

static enum MHD_Result http_on_request(void *cls, struct MHD_Connection *connection, const char *url,
				       const char *method, const char *version, const char *upload_data,
				       size_t *upload_data_size, void **con_cls)
{
	struct http_conn *conn = *con_cls;

	(void)version;
	if (!conn)
		return MHD_NO;
	if (!conn->started) {
		conn->started = true;
		/* Refused before the body is read at all. */
		if (http_declared_too_large(connection))
			return http_send_error(connection, url, 413, "The request body is larger than 64 KiB.");
		return MHD_YES;
	}
	if (*upload_data_size) {
		http_collect(conn, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (conn->too_large)
		return http_send_error(connection, url, 413, "The request body is larger than 64 KiB.");
	if (conn->body)
		conn->body[conn->body_len] = '\0';
	http_guard_touch(conn);
	return http_dispatch(cls, connection, conn, method, url);
}

/* ---- start and stop ------------------------------------------------------ */

static int http_listen_address(const char *listen, struct sockaddr_storage *ss, bool *ipv6)
{
	char host[INET6_ADDRSTRLEN];
	uint16_t port;

	memset(ss, 0, sizeof(*ss));
	if (hubconf_parse_listen(listen, host, sizeof(host), &port) < 0)
		return -EINVAL;
	*ipv6 = strchr(host, ':') != NULL;
	if (*ipv6) {
		struct sockaddr_in6 *in6 = (void *)ss;

		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		return inet_pton(AF_INET6, host, &in6->sin6_addr) == 1 ? 0 : -EINVAL;
	}
	struct sockaddr_in *in = (void *)ss;

	in->sin_family = AF_INET;
	in->sin_port = htons(port);
	return inet_pton(AF_INET, host, &in->sin_addr) == 1 ? 0 : -EINVAL;
}

static void http_free_secret(char **pem, size_t len)
{
	if (*pem) {
		sodium_memzero(*pem, len);
		free(*pem);
		*pem = NULL;
	}
}

int http_start(struct hub *hub, struct MHD_Daemon **out)
{
	const struct hub_config *cfg = &hub->cfg;
	struct MHD_OptionItem tls[3] = { { MHD_OPTION_END, 0, NULL } };
	__do_free char *cert = NULL;
	char *key = NULL;
	size_t cert_len = 0, key_len = 0;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_USE_TURBO;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	struct sockaddr_storage ss;
	struct MHD_Daemon *d;
	bool ipv6;
	int ret;

	if (http_listen_address(cfg->listen, &ss, &ipv6) < 0)
		return log_error_errno(-EINVAL, 0, "listen = %s is not ADDRESS:PORT", cfg->listen);
	if (ipv6)
		flags |= MHD_USE_IPv6;
	if (cfg->tls_cert[0]) {
		ret = fsutil_read_file(cfg->tls_cert, HTTP_PEM_MAX, &cert, &cert_len);
		if (ret < 0)
			return log_error_errno(ret, -ret, "cannot read tls_cert %s", cfg->tls_cert);
		ret = fsutil_read_file(cfg->tls_key, HTTP_PEM_MAX, &key, &key_len);
		if (ret < 0)
			return log_error_errno(ret, -ret, "cannot read tls_key %s", cfg->tls_key);
		flags |= MHD_USE_TLS;
		tls[0] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_CERT, 0, cert };
		tls[1] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_KEY, 0, key };
	}
	ret = http_guard_start(cfg);
	if (ret < 0) {
		http_free_secret(&key, key_len);
		return log_error_errno(ret, -ret, "cannot start the connections' watchdog");
	}
	d = MHD_start_daemon(flags, 0, http_on_accept, NULL, http_on_request, hub,
			     MHD_OPTION_EXTERNAL_LOGGER, http_on_mhd_log, NULL,
			     MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
			     MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(cpus > 0 ? cpus : 1),
			     MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_CONNECTIONS_MAX,
			     MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONNECTION_MEMORY,
			     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_TIMEOUT_S,
			     MHD_OPTION_NOTIFY_CONNECTION, http_on_connection, NULL,
			     MHD_OPTION_NOTIFY_COMPLETED, http_on_completed, NULL,
			     MHD_OPTION_URI_LOG_CALLBACK, http_on_uri, NULL,
			     MHD_OPTION_UNESCAPE_CALLBACK, http_no_unescape, NULL,
			     MHD_OPTION_ARRAY, tls,
			     MHD_OPTION_END);
	/* GnuTLS copied the key when the daemon started. */
	http_free_secret(&key, key_len);
	if (!d) {
		http_guard_stop();
		return log_error_errno(-EADDRINUSE, errno, "cannot serve HTTP on %s", cfg->listen);
	}
	*out = d;
	return 0;
}

void http_stop(struct MHD_Daemon *d)
{
	if (!d)
		return;
	MHD_stop_daemon(d);
	http_guard_stop();
}
