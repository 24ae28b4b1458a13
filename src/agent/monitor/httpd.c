/* SPDX-License-Identifier: MIT */
/*
 * The agent's HTTP server (libmicrohttpd, on metrics_listen): GET /metrics
 * in Prometheus' text format (prometheus.c), and the read-only API of the
 * hub's monitor and sync: /api/v1/sample, /history, /at, /usage, and
 * POST /api/v1/poke.
 *
 * Who uses which GPU is the members' business: off loopback the server
 * refuses to start without a bearer token (metrics_token_file), and once
 * a token is configured it is required on loopback too.  The token is
 * read once; only its BLAKE2b hash is kept, and hashes are compared in
 * constant time, so neither the token's bytes nor its length leak
 * through timing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <time.h>
#include <limits.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <microhttpd.h>
#include <sodium.h>

#include "agent.h"
#include "hubsync.h"
#include "monitor/monitor.h"
#include "reservations.h"
#include "cleanup.h"
#include "fsutil.h"
#include "log.h"
#include "strutil.h"
#include "banned.h"

#define HTTPD_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define HTTPD_TEXT_TYPE "text/plain; charset=utf-8"
#define HTTPD_TOKEN_MIN 16
#define HTTPD_TOKEN_MAX 4096
#define HTTPD_CONNECTION_LIMIT 32u
#define HTTPD_PER_IP_LIMIT 8u
#define HTTPD_TIMEOUT_SECONDS 15u
#define HTTPD_MEMORY_LIMIT ((size_t)32 * 1024)

struct httpd {
	struct agent *agent;
	struct MHD_Daemon *daemon;
	bool token_required;
	unsigned char token_hash[crypto_generichash_BYTES];
};

/* What a route answers: a status, a body (malloc'd; NULL: out of memory)
 * and its type. */
struct httpd_reply {
	unsigned status;
	char *body;
	const char *content_type;
	const char *allow;             /* the Allow header of a 405; NULL: GET, HEAD */
};

/*
 * The routes.  Every route is read-only, behind the token when one is
 * configured, and answers GET and HEAD (HEAD by libmicrohttpd, which
 * leaves the body out); any other method is 405.  serve() may read the
 * query with MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key).
 */
struct httpd_route {
	const char *path;
	void (*serve)(struct httpd *m, struct MHD_Connection *c,
		      struct httpd_reply *reply);
};

static void httpd_reply_text(struct httpd_reply *reply, unsigned status, const char *text)
{
	reply->status = status;
	reply->body = strdup(text);
	reply->content_type = HTTPD_TEXT_TYPE;
}

static void httpd_serve_metrics(struct httpd *m, struct MHD_Connection *c,
				  struct httpd_reply *reply)
{
	/* main.c may set the collector after the server started. */
	struct collector *collector = __atomic_load_n(&m->agent->collector, __ATOMIC_ACQUIRE);
	struct sample s;
	int ret;

	memset(&s, 0, sizeof(s));
	ret = collector ? collector_latest(collector, &s) : -EAGAIN;
	if (ret == -EAGAIN) {
		httpd_reply_text(reply, MHD_HTTP_SERVICE_UNAVAILABLE, "no sample yet\n");
		return;
	}
	if (ret < 0) {
		log_message(LOG_LEVEL_ERROR, -ret, "metrics: cannot copy the newest sample");
		httpd_reply_text(reply, MHD_HTTP_INTERNAL_SERVER_ERROR, "the sample could not be read\n");
		return;
	}
	reply->body = prometheus_render(&s, m->agent->cfg.show_members);
	sample_free(&s);
	/* A NULL body is answered "out of memory" by httpd_queue(). */
	reply->status = MHD_HTTP_OK;
	reply->content_type = HTTPD_CONTENT_TYPE;
}

static const struct httpd_route httpd_routes[] = {
	{ "/metrics", httpd_serve_metrics },
};

static const struct httpd_route *httpd_find_route(const char *url)
{
	for (size_t i = 0; i < ARRAY_SIZE(httpd_routes); i++)
		if (strcmp(url, httpd_routes[i].path) == 0)
			return &httpd_routes[i];
	return NULL;
}

static void httpd_token_hash(const char *token, size_t len,
			       unsigned char hash[crypto_generichash_BYTES])
{
	crypto_generichash(hash, crypto_generichash_BYTES, (const unsigned char *)token, len,
			   NULL, 0);
}

/* "Authorization: Bearer <token>" with the configured token; the scheme's
 * name is case-insensitive (RFC 7235). */
static bool httpd_authorized(const struct httpd *m, struct MHD_Connection *c)
{
	unsigned char hash[crypto_generichash_BYTES];
	const char *header, *token;
	size_t len;

	if (!m->token_required)
		return true;
	header = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (!header || strncasecmp(header, "Bearer ", 7) != 0)
		return false;
	for (token = header + 7; *token == ' '; token++)
		;
	len = strnlen(token, HTTPD_TOKEN_MAX + 1);
	while (len > 0 && (token[len - 1] == ' ' || token[len - 1] == '\t'))
		len--;
	if (len == 0 || len > HTTPD_TOKEN_MAX)
		return false;
	httpd_token_hash(token, len, hash);
	return sodium_memcmp(hash, m->token_hash, sizeof(hash)) == 0;
}

static enum MHD_Result httpd_queue(struct MHD_Connection *c, struct httpd_reply *reply)
{
	static const char no_memory[] = "out of memory\n";
	struct MHD_Response *response;
	enum MHD_Result ret;

	if (reply->body) {
		response = MHD_create_response_from_buffer(strlen(reply->body), reply->body,
							   MHD_RESPMEM_MUST_FREE);
		if (response)
			reply->body = NULL;    /* the response owns it now */
	} else {
		reply->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		reply->content_type = HTTPD_TEXT_TYPE;
		response = MHD_create_response_from_buffer(sizeof(no_memory) - 1, (void *)no_memory,
							   MHD_RESPMEM_PERSISTENT);
	}
	free(reply->body);
	if (!response)
		return MHD_NO;
	MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, reply->content_type);
	MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (reply->status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(response, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
					"Bearer realm=\"gpubox\"");
	if (reply->status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW,
					reply->allow ? reply->allow : "GET, HEAD");
	ret = MHD_queue_response(c, reply->status, response);
	MHD_destroy_response(response);
	return ret;
}

static bool httpd_method_allowed(const char *method)
{
	return strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
}

static bool httpd_has_body(struct MHD_Connection *c)
{
	const char *length = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
							 MHD_HTTP_HEADER_CONTENT_LENGTH);

	return (length && strcmp(length, "0") != 0) ||
	       MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
}

/*
 * The hub's routes.  They carry the hub's token for this server
 * (hubsync.c checks it), never the metrics token, and exist only on a
 * server that follows a hub.  POST /api/v1/poke says this server's
 * members changed: it only wakes the thread that asks the hub, so whoever
 * pokes learns nothing and changes nothing but the time of the next sync.
 * The GET routes give the hub what its monitor shows: the newest reading,
 * a history series, who was on a GPU at a time, usage per member (times in unix ms, as in
 * docs/protocol.md's history and usage).
 */
struct httpd_hub_route {
	const char *path;
	const char *method;            /* GET also answers HEAD */
	void (*serve)(struct httpd *m, struct MHD_Connection *c,
		      struct httpd_reply *reply);
};

static void httpd_reply_json(struct httpd_reply *reply, json_t *json)
{
	reply->status = MHD_HTTP_OK;
	reply->body = json ? json_dumps(json, JSON_COMPACT) : NULL;
	reply->content_type = "application/json";
	json_decref(json);
}

static void httpd_hub_poke(struct httpd *m, struct MHD_Connection *c,
			     struct httpd_reply *reply)
{
	hubsync_poke(__atomic_load_n(&m->agent->hubsync, __ATOMIC_ACQUIRE));
	httpd_reply_text(reply, MHD_HTTP_NO_CONTENT, "");
}

static void httpd_hub_sample(struct httpd *m, struct MHD_Connection *c,
			       struct httpd_reply *reply)
{
	struct collector *collector = __atomic_load_n(&m->agent->collector, __ATOMIC_ACQUIRE);
	struct sample s;

	json_t *json;

	memset(&s, 0, sizeof(s));
	if (!collector || collector_latest(collector, &s) < 0) {
		httpd_reply_text(reply, MHD_HTTP_SERVICE_UNAVAILABLE, "no sample yet\n");
		return;
	}
	json = sample_json(&s);
	/* The hub shows who holds which GPU, so it gets every name. */
	if (json)
		json_object_set_new(json, "reservations", reservations_json(m->agent, "", true));
	httpd_reply_json(reply, json);
	sample_free(&s);
}

/* A whole number of the query (key absent: fallback); false if malformed. */
static bool httpd_query_number(struct MHD_Connection *c, const char *key, long long fallback,
				 long long max, long long *out)
{
	const char *text = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
	char *end;

	*out = fallback;
	if (!text)
		return true;
	if (*text < '0' || *text > '9')
		return false;
	errno = 0;
	*out = strtoll(text, &end, 10);
	return errno == 0 && *end == '\0' && *out <= max;
}

/* from and to (unix ms; default: the last hour, or week for usage). */
static bool httpd_query_range(struct MHD_Connection *c, long long span, long long *from,
				long long *to)
{
	long long now = (long long)time(NULL) * 1000;

	return httpd_query_number(c, "to", now, LLONG_MAX / 2, to) &&
	       httpd_query_number(c, "from", *to - span, LLONG_MAX / 2, from) && *from < *to;
}

static void httpd_hub_history(struct httpd *m, struct MHD_Connection *c,
				struct httpd_reply *reply)
{
	long long from, to, gpu, points;
	json_t *json = NULL;

	if (!httpd_query_range(c, 3600000LL, &from, &to) ||
	    !httpd_query_number(c, "gpu", -1, GPU_MAX - 1, &gpu) ||
	    !httpd_query_number(c, "points", 0, 5000, &points)) {
		httpd_reply_text(reply, MHD_HTTP_BAD_REQUEST,
				   "expected gpu, from, to (unix ms, from < to) and points (at most 5000)\n");
		return;
	}
	if (!m->agent->history || history_range(m->agent->history, (int)gpu, from, to,
						(unsigned)points, &json) < 0) {
		httpd_reply_text(reply, MHD_HTTP_SERVICE_UNAVAILABLE, "the history cannot be read\n");
		return;
	}
	httpd_reply_json(reply, json);
}

/* Who was on one GPU at one time (history_gpu_at); 404 when nothing was
 * recorded then. */
static void httpd_hub_at(struct httpd *m, struct MHD_Connection *c,
			   struct httpd_reply *reply)
{
	long long gpu, t;
	json_t *json = NULL;
	int ret;

	if (!MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "gpu") ||
	    !MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "t") ||
	    !httpd_query_number(c, "gpu", 0, GPU_MAX - 1, &gpu) ||
	    !httpd_query_number(c, "t", 0, LLONG_MAX / 2, &t)) {
		httpd_reply_text(reply, MHD_HTTP_BAD_REQUEST, "expected gpu and t (unix ms)\n");
		return;
	}
	ret = m->agent->history ? history_gpu_at(m->agent->history, (unsigned)gpu, t, &json)
				: -ENODATA;
	if (ret == -ENOENT) {
		httpd_reply_text(reply, MHD_HTTP_NOT_FOUND, "nothing was recorded then\n");
		return;
	}
	if (ret < 0) {
		httpd_reply_text(reply, MHD_HTTP_SERVICE_UNAVAILABLE, "the history cannot be read\n");
		return;
	}
	httpd_reply_json(reply, json);
}

static void httpd_hub_usage(struct httpd *m, struct MHD_Connection *c,
			      struct httpd_reply *reply)
{
	long long from, to;
	json_t *rows = NULL;

	if (!httpd_query_range(c, 7 * 86400000LL, &from, &to)) {
		httpd_reply_text(reply, MHD_HTTP_BAD_REQUEST, "expected from < to, in unix ms\n");
		return;
	}
	if (!m->agent->history || history_usage(m->agent->history, from, to, &rows) < 0) {
		httpd_reply_text(reply, MHD_HTTP_SERVICE_UNAVAILABLE, "the history cannot be read\n");
		return;
	}
	httpd_reply_json(reply, json_pack("{s:I, s:I, s:o}", "from", (json_int_t)from,
					    "to", (json_int_t)to, "members", rows));
}

static const struct httpd_hub_route httpd_hub_routes[] = {
	{ "/api/v1/poke", MHD_HTTP_METHOD_POST, httpd_hub_poke },
	{ "/api/v1/sample", MHD_HTTP_METHOD_GET, httpd_hub_sample },
	{ "/api/v1/history", MHD_HTTP_METHOD_GET, httpd_hub_history },
	{ "/api/v1/at", MHD_HTTP_METHOD_GET, httpd_hub_at },
	{ "/api/v1/usage", MHD_HTTP_METHOD_GET, httpd_hub_usage },
};

static const struct httpd_hub_route *httpd_find_hub_route(const char *url)
{
	for (size_t i = 0; i < ARRAY_SIZE(httpd_hub_routes); i++)
		if (strcmp(url, httpd_hub_routes[i].path) == 0)
			return &httpd_hub_routes[i];
	return NULL;
}

static void httpd_serve_hub(struct httpd *m, struct MHD_Connection *c,
			      const char *method, const struct httpd_hub_route *route,
			      struct httpd_reply *reply)
{
	/* main.c starts the hub's thread before this server; read it once. */
	struct hubsync *h = __atomic_load_n(&m->agent->hubsync, __ATOMIC_ACQUIRE);
	const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						       MHD_HTTP_HEADER_AUTHORIZATION);
	bool get = strcmp(route->method, MHD_HTTP_METHOD_GET) == 0;

	if (!h) {
		httpd_reply_text(reply, MHD_HTTP_NOT_FOUND, "this server follows no hub\n");
	} else if (!hubsync_token_ok(h, auth)) {
		log_debug("metrics: %s without this server's hub token", route->path);
		httpd_reply_text(reply, MHD_HTTP_UNAUTHORIZED, "the hub's token for this server is required\n");
	} else if (strcmp(method, route->method) != 0 && !(get && httpd_method_allowed(method))) {
		httpd_reply_text(reply, MHD_HTTP_METHOD_NOT_ALLOWED, "wrong method\n");
		reply->allow = get ? "GET, HEAD" : route->method;
	} else {
		route->serve(m, c, reply);
	}
}

/*
 * Called by libmicrohttpd's thread when a request's headers are in, then
 * for each piece of its body, then once more.  A GET or HEAD without a
 * body is answered at the last call: answered at the first, the
 * connection would be closed, and Prometheus keeps its connection between
 * scrapes.  Anything with a body is answered at once, the body never read
 * (no route takes one), and the connection closed.
 */
static enum MHD_Result httpd_handle(void *cls, struct MHD_Connection *c, const char *url,
				      const char *method, const char *version,
				      const char *upload_data, size_t *upload_data_size,
				      void **request_state)
{
	static int headers_seen;
	struct httpd *m = cls;
	struct httpd_reply reply = { 0 };
	const struct httpd_route *route;
	const struct httpd_hub_route *hub_route = httpd_find_hub_route(url);
	bool allowed = httpd_method_allowed(method);

	if (!*request_state && allowed && !httpd_has_body(c)) {
		*request_state = &headers_seen;
		return MHD_YES;
	}
	if (*request_state && *upload_data_size) {
		*upload_data_size = 0;     /* a body after all (cannot happen): dropped */
		return MHD_YES;
	}
	if (hub_route) {
		httpd_serve_hub(m, c, method, hub_route, &reply);
	} else if (!httpd_authorized(m, c)) {
		log_debug("metrics: a request for %.200s without the right token", url);
		httpd_reply_text(&reply, MHD_HTTP_UNAUTHORIZED, "a bearer token is required\n");
	} else if (!allowed) {
		httpd_reply_text(&reply, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n");
	} else if (!(route = httpd_find_route(url))) {
		httpd_reply_text(&reply, MHD_HTTP_NOT_FOUND, "not found; try /metrics\n");
	} else {
		route->serve(m, c, &reply);
	}
	return httpd_queue(c, &reply);
}

/* libmicrohttpd's own messages, into the agent's log: mostly a client's
 * mistakes (a header too big), hence warnings. */
__attribute__((format(printf, 2, 0)))
static void httpd_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];
	size_t len;

	vsnprintf(buf, sizeof(buf), fmt, ap);
	len = strlen(buf);
	while (len > 0 && buf[len - 1] == '\n')
		buf[--len] = '\0';
	log_warn("metrics: %s", buf);
}

/* ---- configuration: the address and the token ---- */

union httpd_address {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
};

static int httpd_listen_error(const char *text)
{
	log_error("metrics_listen \"%s\" is not HOST:PORT: HOST is an IPv4 address, an IPv6 address in brackets or localhost, PORT 1-65535",
		  text);
	return -EINVAL;
}

static bool httpd_is_loopback(const union httpd_address *addr)
{
	if (addr->sa.sa_family == AF_INET)
		return (ntohl(addr->in.sin_addr.s_addr) >> 24) == 127;
	if (IN6_IS_ADDR_LOOPBACK(&addr->in6.sin6_addr))
		return true;
	return IN6_IS_ADDR_V4MAPPED(&addr->in6.sin6_addr) && addr->in6.sin6_addr.s6_addr[12] == 127;
}

static uint16_t httpd_port(const union httpd_address *addr)
{
	return ntohs(addr->sa.sa_family == AF_INET6 ? addr->in6.sin6_port : addr->in.sin_port);
}

/* "A.B.C.D:PORT", "[IPV6]:PORT" or "localhost:PORT" (127.0.0.1).  No
 * name is resolved: the agent must not depend on DNS to start. */
static int httpd_parse_listen(const char *text, union httpd_address *addr)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon, *start = text, *end;
	uint16_t port;

	memset(addr, 0, sizeof(*addr));
	if (text[0] == '[') {
		start = text + 1;
		end = strchr(start, ']');
		if (!end || end[1] != ':')
			return httpd_listen_error(text);
		colon = end + 1;
	} else {
		colon = strrchr(text, ':');
		if (!colon)
			return httpd_listen_error(text);
		end = colon;
	}
	if (end == start || (size_t)(end - start) >= sizeof(host) || parse_port(colon + 1, &port) < 0)
		return httpd_listen_error(text);
	memcpy(host, start, (size_t)(end - start));
	host[end - start] = '\0';
	if (text[0] == '[') {
		if (inet_pton(AF_INET6, host, &addr->in6.sin6_addr) != 1)
			return httpd_listen_error(text);
		addr->in6.sin6_family = AF_INET6;
		addr->in6.sin6_port = htons(port);
		return 0;
	}
	if (strcasecmp(host, "localhost") == 0)
		addr->in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else if (inet_pton(AF_INET, host, &addr->in.sin_addr) != 1)
		return httpd_listen_error(text);
	addr->in.sin_family = AF_INET;
	addr->in.sin_port = htons(port);
	return 0;
}

/* One line of visible ASCII, HTTPD_TOKEN_MIN to HTTPD_TOKEN_MAX long. */
static bool httpd_token_valid(const char *token, size_t len)
{
	if (len < HTTPD_TOKEN_MIN || len > HTTPD_TOKEN_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (token[i] <= ' ' || token[i] > '~')
			return false;
	return true;
}

/* Read the token once and keep only its hash. */
static int httpd_load_token(const char *path, unsigned char hash[crypto_generichash_BYTES])
{
	__do_free char *data = NULL;
	struct stat st;
	size_t len = 0;
	int ret;

	if (stat(path, &st) < 0)
		return log_error_errno(-EINVAL, errno, "metrics: cannot read metrics_token_file %s",
				       path);
	if (!S_ISREG(st.st_mode))
		return log_error_errno(-EINVAL, 0, "metrics: metrics_token_file %s is not a regular file",
				       path);
	if (st.st_mode & 077)
		log_warn("metrics: metrics_token_file %s is open to other users (mode %04o); chmod 600 it",
			 path, (unsigned)(st.st_mode & 07777));
	ret = fsutil_read_file(path, HTTPD_TOKEN_MAX + 2, &data, &len);
	if (ret < 0)
		return log_error_errno(-EINVAL, -ret, "metrics: cannot read metrics_token_file %s",
				       path);
	while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
		len--;
	if (!httpd_token_valid(data, len)) {
		sodium_memzero(data, len);
		return log_error_errno(-EINVAL, 0,
				       "metrics: metrics_token_file %s must hold one line of %d to %d visible ASCII characters",
				       path, HTTPD_TOKEN_MIN, HTTPD_TOKEN_MAX);
	}
	httpd_token_hash(data, len, hash);
	sodium_memzero(data, len);
	return 0;
}

/* epoll where libmicrohttpd has it, else poll(), else select(). */
static unsigned httpd_daemon_flags(const union httpd_address *addr)
{
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;

	if (MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES)
		flags |= MHD_USE_EPOLL;
	else if (MHD_is_feature_supported(MHD_FEATURE_POLL) == MHD_YES)
		flags |= MHD_USE_POLL;
	if (addr->sa.sa_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	return flags;
}

int httpd_start(struct agent *a, struct httpd **out)
{
	__do_free struct httpd *m = NULL;
	const struct gpubox_config *cfg = &a->cfg;
	union httpd_address addr;
	int ret;

	*out = NULL;
	if (!cfg->metrics_listen[0])
		return 0;
	ret = httpd_parse_listen(cfg->metrics_listen, &addr);
	if (ret < 0)
		return ret;
	if (!cfg->metrics_token_file[0] && !httpd_is_loopback(&addr))
		return log_error_errno(-EINVAL, 0,
				       "metrics: %s is not a loopback address, and who uses which GPU is the members' business: set metrics_token_file to serve it",
				       cfg->metrics_listen);
	if (sodium_init() < 0)
		return log_error_errno(-EIO, 0, "metrics: libsodium could not be initialised");
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->agent = a;
	if (cfg->metrics_token_file[0]) {
		ret = httpd_load_token(cfg->metrics_token_file, m->token_hash);
		if (ret < 0)
			return ret;
		m->token_required = true;
	}
	errno = 0;
	/* The logger first, or libmicrohttpd complains on stderr. */
	m->daemon = MHD_start_daemon(httpd_daemon_flags(&addr), httpd_port(&addr), NULL, NULL,
				     httpd_handle, m,
				     MHD_OPTION_EXTERNAL_LOGGER, httpd_mhd_log, NULL,
				     MHD_OPTION_SOCK_ADDR, &addr.sa,
				     MHD_OPTION_CONNECTION_LIMIT, HTTPD_CONNECTION_LIMIT,
				     MHD_OPTION_PER_IP_CONNECTION_LIMIT, HTTPD_PER_IP_LIMIT,
				     MHD_OPTION_CONNECTION_TIMEOUT, HTTPD_TIMEOUT_SECONDS,
				     MHD_OPTION_CONNECTION_MEMORY_LIMIT, HTTPD_MEMORY_LIMIT,
				     MHD_OPTION_END);
	if (!m->daemon) {
		ret = errno > 0 ? -errno : -EIO;
		return log_error_errno(ret, -ret, "metrics: cannot serve on %s", cfg->metrics_listen);
	}
	log_info("metrics: serving /metrics on %s%s", cfg->metrics_listen,
		 m->token_required ? " (bearer token required)" : "");
	*out = move_ptr(m);
	return 0;
}

void httpd_stop(struct httpd *m)
{
	if (!m)
		return;
	if (m->daemon)
		MHD_stop_daemon(m->daemon);
	sodium_memzero(m->token_hash, sizeof(m->token_hash));
	free(m);
}
