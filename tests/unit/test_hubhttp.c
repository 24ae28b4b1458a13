/* SPDX-License-Identifier: MIT */
/*
 * The hub's HTTP server for real: started on 127.0.0.1 on a free port
 * with a database in a temporary directory, asked with libcurl as agents
 * and browsers would.  A second, tiny server stands in for an agent, to
 * see the hub's pokes arrive.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <microhttpd.h>
#include <zlib.h>

#include "hub.h"
#include "hubtoken.h"
#include "strutil.h"
#include "testutil.h"
#include "banned.h"

#define KEY1 "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEQeFWKJQfIEf2EeOR8Fd3sSI9engjZMidsIKtF/s5jm alice@laptop"
#define KEY2 "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIR7r2sFKwnjWDDb+Rrz71mc7coAIQr/77tJPtT3ffCe alice@desk"

/* A self-signed certificate for 127.0.0.1 (P-256, valid until 2126) and
 * its key: for this test only. */
static const char test_cert[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIIBkTCCATagAwIBAgIUQMcrsLJAYwUmRFU5BbVS8Yy1q7UwCgYIKoZIzj0EAwIw\n"
	"FDESMBAGA1UEAwwJMTI3LjAuMC4xMCAXDTI2MTEyMzA3NDIwMFoYDzIxMjYxMDMw\n"
	"MDc0MjAwWjAUMRIwEAYDVQQDDAkxMjcuMC4wLjEwWTATBgcqhkjOPQIBBggqhkjO\n"
	"PQMBBwNCAASfyTAPRmMxoiGLiBEZcBDNS4dfagtz7Br/rVHGXwJvAE8MV/CoRsX4\n"
	"4pTwhiaLO/WDC1pPggjHBWgdXc3eUHbQo2QwYjAdBgNVHQ4EFgQUlPkXTLUf7anN\n"
	"pFFQS7DZUjDJMmgwHwYDVR0jBBgwFoAUlPkXTLUf7anNpFFQS7DZUjDJMmgwDwYD\n"
	"VR0TAQH/BAUwAwEB/zAPBgNVHREECDAGhwR/AAABMAoGCCqGSM49BAMCA0kAMEYC\n"
	"IQDZWUE9AJWA+CPRVgkzB73d5WC1Y/gByLpxG7geQZr9bQIhAKFniDXeaLiSyLmS\n"
	"RryYBaufVJEPiOKC/Eu6jZfoFRIu\n"
	"-----END CERTIFICATE-----\n";
static const char test_key[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgIbITPt/RocP0p4jW\n"
	"jRh0SaZLDz5yCoONleXmXgnOXIqhRANCAASfyTAPRmMxoiGLiBEZcBDNS4dfagtz\n"
	"7Br/rVHGXwJvAE8MV/CoRsX44pTwhiaLO/WDC1pPggjHBWgdXc3eUHbQ\n"
	"-----END PRIVATE KEY-----\n";

struct fixture {
	char dir[PATH_MAX];
	struct hub hub;
	struct MHD_Daemon *daemon;
	struct MHD_Daemon *agent;
	unsigned port;
	bool tls;
	char ca_file[PATH_MAX];
	char token[HUB_TOKEN_HEX];
	char alice_cookie[128];
	char alice_csrf[HUB_TOKEN_HEX];
	char carol_cookie[128];
	char carol_csrf[HUB_TOKEN_HEX];
	int pokes;                     /* seen by the stand-in agent, with the right token */
	int bad_pokes;
};

struct reply {
	long status;
	char *body;
	size_t len;
	char *headers;
	size_t hlen;
};

/* ---- a stand-in agent ------------------------------------------------------ */

static enum MHD_Result agent_answer(void *cls, struct MHD_Connection *c, const char *url,
				    const char *method, const char *version, const char *data,
				    size_t *size, void **con_cls)
{
	struct fixture *f = cls;
	const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	char expected[HUB_TOKEN_HEX + 16], to_agent[HUBTOKEN_HEX];
	struct MHD_Response *r;
	enum MHD_Result ret;

	(void)version;
	(void)data;
	if (!*con_cls) {
		*con_cls = f;
		return MHD_YES;
	}
	*size = 0;
	/* The hub-to-agent token, never the server's own (hubtoken.h). */
	if (hubtoken_to_agent(f->token, strlen(f->token), to_agent) < 0)
		return MHD_NO;
	snprintf(expected, sizeof(expected), "Bearer %s", to_agent);
	if (strcmp(method, "POST") == 0 && strcmp(url, "/api/v1/poke") == 0 && auth &&
	    strcmp(auth, expected) == 0)
		__atomic_add_fetch(&f->pokes, 1, __ATOMIC_SEQ_CST);
	else
		__atomic_add_fetch(&f->bad_pokes, 1, __ATOMIC_SEQ_CST);
	r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	ret = MHD_queue_response(c, 204, r);
	MHD_destroy_response(r);
	return ret;
}

/* ---- fixture ------------------------------------------------------------------ */

static unsigned free_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	unsigned port = 0;

	if (fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
		port = ntohs(sin.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static int start_agent(struct fixture *f, char *url, size_t len)
{
	for (int tries = 0; tries < 10; tries++) {
		unsigned port = free_port();

		f->agent = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)port, NULL, NULL,
					    agent_answer, f, MHD_OPTION_END);
		if (f->agent) {
			snprintf(url, len, "http://127.0.0.1:%u/", port);
			return 0;
		}
	}
	return -1;
}

static int start_hub(struct fixture *f)
{
	for (int tries = 0; tries < 10; tries++) {
		f->port = free_port();
		snprintf(f->hub.cfg.listen, sizeof(f->hub.cfg.listen), "127.0.0.1:%u", f->port);
		if (http_start(&f->hub, &f->daemon) == 0)
			return 0;
	}
	return -1;
}

static int session_cookie(struct fixture *f, const char *member, char *cookie, size_t len, char *csrf)
{
	char id[HUB_TOKEN_HEX];
	uint64_t epoch;

	if (hubdb_session_epoch(f->hub.db, member, &epoch) < 0 ||
	    hubdb_session_create(f->hub.db, member, epoch, (long long)time(NULL) + 3600, id, csrf) < 0)
		return -1;
	snprintf(cookie, len, "Cookie: theme=dark; %s=%s", HTTP_SESSION_COOKIE, id);
	return 0;
}

/* The lab: server gpu17 (the stand-in agent), alice (one key, gpu17
 * enabled), bob (a key, nothing enabled), carol (an admin). */
static int setup_lab(void **state, bool tls)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char path[PATH_MAX], url[128];
	long long id;

	if (!f || tu_make_tempdir(f->dir, sizeof(f->dir), "/tmp/test-hubhttp-XXXXXX") < 0)
		return -1;
	hubconf_set_defaults(&f->hub.cfg);
	if (tls) {
		f->tls = true;
		tu_write_file(f->dir, "cert.pem", test_cert);
		tu_write_file(f->dir, "key.pem", test_key);
		tu_join(f->ca_file, sizeof(f->ca_file), f->dir, "cert.pem");
		tu_join(f->hub.cfg.tls_cert, sizeof(f->hub.cfg.tls_cert), f->dir, "cert.pem");
		tu_join(f->hub.cfg.tls_key, sizeof(f->hub.cfg.tls_key), f->dir, "key.pem");
	}
	snprintf(f->hub.cfg.state_dir, sizeof(f->hub.cfg.state_dir), "%.500s", f->dir);
	snprintf(f->hub.cfg.lab_name, sizeof(f->hub.cfg.lab_name), "Test Lab");
	tu_join(path, sizeof(path), f->dir, "hub.db");
	if (hubdb_open(path, &f->hub.cfg, &f->hub.db) < 0 || start_agent(f, url, sizeof(url)) < 0 ||
	    hubdb_server_add(f->hub.db, "gpu17", url, "gpu17.lab.example", f->token) < 0 ||
	    hubdb_member_ensure(f->hub.db, "alice", "Alice A.", NULL) < 0 ||
	    hubdb_member_ensure(f->hub.db, "bob", NULL, NULL) < 0 ||
	    hubdb_member_ensure(f->hub.db, "carol", NULL, NULL) < 0 ||
	    hubdb_member_set_admin(f->hub.db, "carol", true) < 0 ||
	    hubdb_key_add(f->hub.db, "alice", KEY1, "SHA256:alice1", &id) < 0 ||
	    hubdb_key_add(f->hub.db, "bob", "ssh-ed25519 BOB bob", "SHA256:bob", &id) < 0 ||
	    hubdb_enable(f->hub.db, "alice", "gpu17", true) < 0 ||
	    session_cookie(f, "alice", f->alice_cookie, sizeof(f->alice_cookie), f->alice_csrf) < 0 ||
	    session_cookie(f, "carol", f->carol_cookie, sizeof(f->carol_cookie), f->carol_csrf) < 0 ||
	    start_hub(f) < 0)
		return -1;
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_lab(state, false);
}

static int setup_tls(void **state)
{
	return setup_lab(state, true);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	http_stop(f->daemon);
	monitor_stop(f->hub.monitor);
	api_poke_flush();
	if (f->agent)
		MHD_stop_daemon(f->agent);
	hubdb_close(f->hub.db);
	tu_remove_tempdir(f->dir);
	free(f);
	return 0;
}

static int group_setup(void **state)
{
	(void)state;
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	api_poke_stop();
	curl_global_cleanup();
	return 0;
}

/* ---- the client ----------------------------------------------------------------- */

static size_t collect(char *data, size_t size, size_t n, void *user)
{
	FILE *f = user;

	return fwrite(data, size, n, f);
}

/* method path, with extra headers (NULL-terminated), and a body. */
static void request(struct fixture *f, const char *method, const char *path, const char *const *headers,
		    const char *body, size_t body_len, struct reply *r)
{
	struct curl_slist *list = NULL;
	char url[4096];
	FILE *bf, *hf;
	CURL *c = curl_easy_init();

	memset(r, 0, sizeof(*r));
	assert_non_null(c);
	bf = open_memstream(&r->body, &r->len);
	hf = open_memstream(&r->headers, &r->hlen);
	assert_non_null(bf);
	assert_non_null(hf);
	snprintf(url, sizeof(url), "%s://127.0.0.1:%u%s", f->tls ? "https" : "http", f->port, path);
	if (f->tls)
		curl_easy_setopt(c, CURLOPT_CAINFO, f->ca_file);
	for (size_t i = 0; headers && headers[i]; i++)
		list = curl_slist_append(list, headers[i]);
	/* libcurl's own "Expect: 100-continue" would only slow large bodies. */
	list = curl_slist_append(list, "Expect:");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, bf);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, hf);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	}
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_slist_free_all(list);
	curl_easy_cleanup(c);
	fclose(bf);
	fclose(hf);
}

static void get(struct fixture *f, const char *path, const char *const *headers, struct reply *r)
{
	request(f, "GET", path, headers, NULL, 0, r);
}

static void reply_free(struct reply *r)
{
	free(r->body);
	free(r->headers);
	memset(r, 0, sizeof(*r));
}

/* A response header's value (into buf), or NULL. */
static const char *header(const struct reply *r, const char *name, char *buf, size_t len)
{
	size_t nlen = strlen(name);

	for (const char *line = r->headers; line && *line;) {
		size_t l = strcspn(line, "\r\n");

		if (l > nlen + 1 && strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
			const char *v = line + nlen + 1 + strspn(line + nlen + 1, " ");

			snprintf(buf, len, "%.*s", (int)(l - (size_t)(v - line)), v);
			return buf;
		}
		line += l;
		line += strspn(line, "\r\n");
	}
	return NULL;
}

static void assert_header(const struct reply *r, const char *name, const char *value)
{
	char buf[512];

	if (!header(r, name, buf, sizeof(buf)))
		fail_msg("no %s header in:\n%s", name, r->headers);
	if (strcmp(buf, value) != 0)
		fail_msg("%s: \"%s\", expected \"%s\"", name, buf, value);
}

static void assert_security_headers(const struct reply *r)
{
	assert_header(r, "Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'");
	assert_header(r, "X-Content-Type-Options", "nosniff");
	assert_header(r, "Referrer-Policy", "same-origin");
	assert_header(r, "Cache-Control", "no-store");
}

static json_t *reply_json(const struct reply *r)
{
	json_t *doc = json_loadb(r->body, r->len, 0, NULL);

	if (!doc)
		fail_msg("not JSON: %.*s", (int)r->len, r->body);
	return doc;
}

/* ---- agents ------------------------------------------------------------------ */

static void test_sync(void **state)
{
	struct fixture *f = *state;
	char auth[128], etag[64], stale[64], match[128], buf[64];
	const char *bearer[] = { auth, NULL };
	struct hub_server s;
	struct reply r;
	json_t *doc, *m;

	/* No token, a wrong one, another scheme. */
	get(f, "/api/v1/sync", NULL, &r);
	assert_int_equal(r.status, 401);
	assert_header(&r, "WWW-Authenticate", "Bearer realm=\"gpubox-hub\"");
	assert_header(&r, "Content-Type", "application/json");
	assert_security_headers(&r);
	reply_free(&r);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %064d", 7);
	get(f, "/api/v1/sync", bearer, &r);
	assert_int_equal(r.status, 401);
	reply_free(&r);
	snprintf(auth, sizeof(auth), "Authorization: Basic %s", f->token);
	get(f, "/api/v1/sync", bearer, &r);
	assert_int_equal(r.status, 401);
	reply_free(&r);

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", f->token);
	get(f, "/api/v1/sync", bearer, &r);
	assert_int_equal(r.status, 200);
	assert_header(&r, "Content-Type", "application/json");
	assert_security_headers(&r);
	snprintf(etag, sizeof(etag), "\"%llu\"", (unsigned long long)hubdb_generation(f->hub.db));
	assert_header(&r, "ETag", etag);
	doc = reply_json(&r);
	assert_string_equal(json_string_value(json_object_get(doc, "server")), "gpu17");
	assert_int_equal(json_array_size(json_object_get(doc, "members")), 1);
	m = json_array_get(json_object_get(doc, "members"), 0);
	assert_string_equal(json_string_value(json_object_get(m, "name")), "alice");
	assert_string_equal(json_string_value(json_object_get(m, "display_name")), "Alice A.");
	assert_string_equal(json_string_value(json_array_get(json_object_get(m, "keys"), 0)), KEY1);
	json_decref(doc);
	reply_free(&r);

	/* The agent's contact is recorded. */
	assert_int_equal(hubdb_server_get(f->hub.db, "gpu17", &s), 0);
	assert_true(s.last_contact >= (long long)time(NULL) - 5);

	/* Nothing changed: 304 with no body, the same ETag. */
	{
		const char *h[] = { auth, match, NULL };

		snprintf(match, sizeof(match), "If-None-Match: %s", etag);
		get(f, "/api/v1/sync", h, &r);
		assert_int_equal(r.status, 304);
		assert_int_equal(r.len, 0);
		assert_header(&r, "ETag", etag);
		assert_security_headers(&r);
		reply_free(&r);
		/* In a list, and weak. */
		snprintf(match, sizeof(match), "If-None-Match: \"1\", W/%s", etag);
		get(f, "/api/v1/sync", h, &r);
		assert_int_equal(r.status, 304);
		reply_free(&r);

		/* A change: the old ETag gets the new document. */
		assert_int_equal(hubdb_enable(f->hub.db, "bob", "gpu17", true), 0);
		snprintf(match, sizeof(match), "If-None-Match: %s", etag);
		get(f, "/api/v1/sync", h, &r);
		assert_int_equal(r.status, 200);
		snprintf(stale, sizeof(stale), "%s", etag);
		assert_non_null(header(&r, "ETag", buf, sizeof(buf)));
		assert_string_not_equal(buf, stale);
		doc = reply_json(&r);
		assert_int_equal(json_array_size(json_object_get(doc, "members")), 2);
		json_decref(doc);
		reply_free(&r);
	}
	/* HEAD is GET without a body. */
	request(f, "HEAD", "/api/v1/sync", bearer, NULL, 0, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.len, 0);
	reply_free(&r);
}

/* The hub calls an agent with the token derived from the server's (the
 * vector test_hubsync.c checks the agent against), never with the token
 * that reads the member list. */
static void test_agent_token(void **state)
{
	static const char raw[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	struct fixture *f = *state;
	struct agentcall_target t;
	char derived[HUBTOKEN_HEX], expected[HUBTOKEN_HEX + 32];

	assert_int_equal(hubtoken_to_agent(raw, strlen(raw), derived), 0);
	assert_string_equal(derived, "a1364e68f22da21933703fe56743c1772f97e32f9b49bc3540ef1fed44ad6d86");
	assert_int_equal(agentcall_target(f->hub.db, "gpu17", "/api/v1/sample", &t), 0);
	assert_int_equal(hubtoken_to_agent(f->token, strlen(f->token), derived), 0);
	snprintf(expected, sizeof(expected), "Authorization: Bearer %s", derived);
	assert_string_equal(t.authorization, expected);
	assert_null(strstr(t.authorization, f->token));
	assert_int_equal(agentcall_target(f->hub.db, "nope", "/api/v1/sample", &t), -ENOENT);
}

static void test_keys(void **state)
{
	struct fixture *f = *state;
	char auth[128];
	const char *bearer[] = { auth, NULL };
	struct reply r;

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", f->token);
	get(f, "/api/v1/keys/alice", bearer, &r);
	assert_int_equal(r.status, 200);
	assert_header(&r, "Content-Type", "text/plain; charset=utf-8");
	assert_int_equal(r.len, strlen(KEY1 "\n"));
	assert_memory_equal(r.body, KEY1 "\n", r.len);
	assert_security_headers(&r);
	reply_free(&r);
	/* bob did not enable gpu17; nobody is nobody; names are names. */
	get(f, "/api/v1/keys/bob", bearer, &r);
	assert_int_equal(r.status, 404);
	reply_free(&r);
	get(f, "/api/v1/keys/nobody", bearer, &r);
	assert_int_equal(r.status, 404);
	reply_free(&r);
	get(f, "/api/v1/keys/alice/extra", bearer, &r);
	assert_int_equal(r.status, 404);
	reply_free(&r);
	get(f, "/api/v1/keys/", bearer, &r);
	assert_int_equal(r.status, 404);
	reply_free(&r);
	get(f, "/api/v1/keys/alice", NULL, &r);
	assert_int_equal(r.status, 401);
	reply_free(&r);
	/* A disabled member has no keys anywhere. */
	assert_int_equal(hubdb_member_set_disabled(f->hub.db, "alice", true), 0);
	get(f, "/api/v1/keys/alice", bearer, &r);
	assert_int_equal(r.status, 404);
	reply_free(&r);
}

static void test_not_found_and_method(void **state)
{
	struct fixture *f = *state;
	char allow[64];
	struct reply r;
	json_t *doc;

	get(f, "/no/such/page", NULL, &r);
	assert_int_equal(r.status, 404);
	assert_security_headers(&r);
	reply_free(&r);
	get(f, "/api/v1/nothing", NULL, &r);
	assert_int_equal(r.status, 404);
	assert_header(&r, "Content-Type", "application/json");
	doc = reply_json(&r);
	assert_true(json_is_string(json_object_get(doc, "error")));
	json_decref(doc);
	reply_free(&r);
	/* Escapes and dot segments are no path of ours. */
	get(f, "/api/v1/%73ync", NULL, &r);
	assert_int_equal(r.status, 404);
	reply_free(&r);
	get(f, "/api/v1/keys/../sync", NULL, &r);
	assert_int_equal(r.status, 404);
	reply_free(&r);

	request(f, "POST", "/api/v1/sync", NULL, "{}", 2, &r);
	assert_int_equal(r.status, 405);
	assert_non_null(header(&r, "Allow", allow, sizeof(allow)));
	assert_string_equal(allow, "GET");
	assert_security_headers(&r);
	reply_free(&r);
	request(f, "PUT", "/api/v1/me/keys", NULL, "{}", 2, &r);
	assert_int_equal(r.status, 405);
	assert_non_null(header(&r, "Allow", allow, sizeof(allow)));
	assert_string_equal(allow, "GET, POST");
	reply_free(&r);
}

/* body inflated from enc ("gzip" or "deflate"), as a client would. */
static void assert_inflates_to(const struct reply *r, const char *enc, const struct reply *plain)
{
	char *back = malloc(plain->len + 1);
	z_stream z = { 0 };

	assert_non_null(back);
	assert_int_equal(inflateInit2(&z, strcmp(enc, "gzip") == 0 ? 31 : 15), Z_OK);
	z.next_in = (Bytef *)r->body;
	z.avail_in = (uInt)r->len;
	z.next_out = (Bytef *)back;
	z.avail_out = (uInt)plain->len + 1;
	assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
	assert_int_equal(z.total_out, plain->len);
	assert_memory_equal(back, plain->body, plain->len);
	inflateEnd(&z);
	free(back);
}

/* path asked with gzip into r: plain's body in gzip, saying so. */
static void assert_gzip_of(struct fixture *f, const char *path, const struct reply *plain,
			   struct reply *r)
{
	static const char *const gzip[] = { "Accept-Encoding: gzip, deflate", NULL };

	get(f, path, gzip, r);
	assert_int_equal(r->status, 200);
	assert_header(r, "Content-Encoding", "gzip");
	assert_header(r, "Vary", "Accept-Encoding");
	assert_inflates_to(r, "gzip", plain);
}

/* Answers of a text type from HTTP_COMPRESS_MIN bytes come compressed to
 * a client that accepts it, in the coding it prefers; small ones and
 * other clients get the bytes as they are. */
static void test_compression(void **state)
{
	static const char *const gzip[] = { "Accept-Encoding: gzip, deflate", NULL };
	static const char *const deflate[] = { "Accept-Encoding: gzip;q=0.2, deflate", NULL };
	static const char *const refused[] = { "Accept-Encoding: gzip;q=0, identity", NULL };
	struct fixture *f = *state;
	struct reply plain, r;
	char buf[64];

	get(f, "/static/monitor.js", NULL, &plain);
	assert_int_equal(plain.status, 200);
	assert_true(plain.len > HTTP_COMPRESS_MIN);
	assert_null(header(&plain, "Content-Encoding", buf, sizeof(buf)));
	assert_header(&plain, "Vary", "Accept-Encoding");

	assert_gzip_of(f, "/static/monitor.js", &plain, &r);
	assert_header(&r, "Cache-Control", "public, max-age=300");
	assert_true(r.len < plain.len / 2);
	reply_free(&r);

	get(f, "/static/monitor.js", deflate, &r);
	assert_header(&r, "Content-Encoding", "deflate");
	assert_inflates_to(&r, "deflate", &plain);
	reply_free(&r);

	get(f, "/static/monitor.js", refused, &r);
	assert_null(header(&r, "Content-Encoding", buf, sizeof(buf)));
	assert_int_equal(r.len, plain.len);
	reply_free(&r);
	reply_free(&plain);

	/* Too short to be worth it. */
	get(f, "/api/v1/nothing", gzip, &r);
	assert_int_equal(r.status, 404);
	assert_true(r.len < HTTP_COMPRESS_MIN);
	assert_null(header(&r, "Content-Encoding", buf, sizeof(buf)));
	assert_null(header(&r, "Vary", buf, sizeof(buf)));
	reply_free(&r);

	/* The hub's own stylesheet is a static file too. */
	get(f, "/static/style.css", gzip, &r);
	assert_int_equal(r.status, 200);
	assert_header(&r, "Content-Encoding", "gzip");
	reply_free(&r);
}

/* servers that do not answer, enough to make a list of them pass
 * HTTP_COMPRESS_MIN. */
static void add_quiet_servers(struct fixture *f)
{
	char name[32], token[HUB_TOKEN_HEX];

	for (int i = 0; i < 16; i++) {
		snprintf(name, sizeof(name), "quiet%02d", i);
		assert_int_equal(hubdb_server_add(f->hub.db, name, "http://127.0.0.1:1/", name,
						  token), 0);
	}
}

/* An answer holding alice's CSRF token beside what the request said
 * (BREACH): large enough and asked with gzip, yet never compressed, and
 * with no Vary, since it does not vary. */
static void assert_uncompressed_with_token(struct fixture *f, const char *path)
{
	const char *h[] = { "Accept-Encoding: gzip, deflate", f->alice_cookie, NULL };
	struct reply r;
	char buf[64], *text;

	get(f, path, h, &r);
	assert_int_equal(r.status, 200);
	assert_null(header(&r, "Content-Encoding", buf, sizeof(buf)));
	assert_null(header(&r, "Vary", buf, sizeof(buf)));
	assert_true(r.len >= HTTP_COMPRESS_MIN);
	text = strndup(r.body, r.len);
	assert_non_null(text);
	assert_non_null(strstr(text, f->alice_csrf));
	free(text);
	reply_free(&r);
}

static void test_no_compression_with_secrets(void **state)
{
	struct fixture *f = *state;

	add_quiet_servers(f);
	assert_uncompressed_with_token(f, "/keys");
	assert_uncompressed_with_token(f, "/servers");
	assert_uncompressed_with_token(f, "/api/v1/me");
}

/* The monitor's overview says it may be compressed (monitor.c packs it
 * once per round); the hub starts its monitor here, over quiet servers. */
static void test_monitor_compressed(void **state)
{
	struct fixture *f = *state;
	struct reply plain = { 0 }, r;
	char buf[64];
	int tries;

	add_quiet_servers(f);
	f->hub.cfg.monitor_poll = 3600;
	f->hub.cfg.monitor_public = true;
	assert_int_equal(monitor_start(&f->hub, &f->hub.monitor), 0);
	assert_non_null(f->hub.monitor);
	/* The first round comes as the monitor starts. */
	for (tries = 0; tries < 200; tries++) {
		get(f, "/api/v1/monitor", NULL, &plain);
		assert_int_equal(plain.status, 200);
		if (plain.len >= HTTP_COMPRESS_MIN)
			break;
		reply_free(&plain);
		usleep(50 * 1000);
	}
	assert_true(tries < 200);
	assert_null(header(&plain, "Content-Encoding", buf, sizeof(buf)));
	assert_header(&plain, "Vary", "Accept-Encoding");

	assert_gzip_of(f, "/api/v1/monitor", &plain, &r);
	assert_true(r.len < plain.len);
	reply_free(&r);
	reply_free(&plain);
}

static void test_body_limit(void **state)
{
	struct fixture *f = *state;
	const size_t size = 100 * 1024;
	char *big = malloc(size);
	char csrf[128];
	const char *h[] = { f->alice_cookie, csrf, "Content-Type: application/json", NULL };
	const char *chunked[] = { f->alice_cookie, csrf, "Content-Type: application/json",
				  "Transfer-Encoding: chunked", NULL };
	struct reply r;

	assert_non_null(big);
	memset(big, 'a', size);
	snprintf(csrf, sizeof(csrf), "X-CSRF-Token: %s", f->alice_csrf);
	request(f, "POST", "/api/v1/me/keys", h, big, size, &r);
	assert_int_equal(r.status, 413);
	assert_security_headers(&r);
	reply_free(&r);
	/* Without a length announced: counted as it comes. */
	request(f, "POST", "/api/v1/me/keys", chunked, big, size, &r);
	assert_int_equal(r.status, 413);
	reply_free(&r);
	/* Exactly the limit is read (and refused as a key, not as a size). */
	request(f, "POST", "/api/v1/me/keys", h, big, HTTP_BODY_MAX, &r);
	assert_int_equal(r.status, 400);
	reply_free(&r);
	/* The server still answers. */
	get(f, "/api/v1/me", (const char *[]){ f->alice_cookie, NULL }, &r);
	assert_int_equal(r.status, 200);
	reply_free(&r);
	free(big);
}

/* ---- members and admins -------------------------------------------------------- */

static void test_member_api(void **state)
{
	struct fixture *f = *state;
	char csrf[128], path[64];
	const char *reader[] = { f->alice_cookie, NULL };
	const char *writer[] = { f->alice_cookie, csrf, "Content-Type: application/json", NULL };
	const char *no_csrf[] = { f->alice_cookie, "Content-Type: application/json", NULL };
	const char *as_form[] = { f->alice_cookie, csrf, "Content-Type: application/x-www-form-urlencoded", NULL };
	uint64_t generation = hubdb_generation(f->hub.db);
	struct reply r;
	json_t *doc;
	long long id;

	snprintf(csrf, sizeof(csrf), "X-CSRF-Token: %s", f->alice_csrf);
	get(f, "/api/v1/me", NULL, &r);
	assert_int_equal(r.status, 401);
	reply_free(&r);
	get(f, "/api/v1/me", (const char *[]){ "Cookie: gpubox_session=00", NULL }, &r);
	assert_int_equal(r.status, 401);
	reply_free(&r);

	get(f, "/api/v1/me", reader, &r);
	assert_int_equal(r.status, 200);
	doc = reply_json(&r);
	assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "member"), "name")), "alice");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "member"), "uid")), 20000);
	assert_string_equal(json_string_value(json_object_get(doc, "csrf_token")), f->alice_csrf);
	assert_int_equal(json_array_size(json_object_get(doc, "servers")), 1);
	assert_true(json_is_true(json_object_get(json_array_get(json_object_get(doc, "servers"), 0), "enabled")));
	json_decref(doc);
	reply_free(&r);

	/* Changes need the session's CSRF token and a JSON body. */
	request(f, "POST", "/api/v1/me/keys", no_csrf, "{\"key\": \"" KEY2 "\"}", strlen("{\"key\": \"" KEY2 "\"}"), &r);
	assert_int_equal(r.status, 403);
	reply_free(&r);
	{
		char wrong[128];
		const char *h[] = { f->alice_cookie, wrong, "Content-Type: application/json", NULL };

		snprintf(wrong, sizeof(wrong), "X-CSRF-Token: %s", f->carol_csrf);
		request(f, "POST", "/api/v1/me/keys", h, "{\"key\": \"" KEY2 "\"}", strlen("{\"key\": \"" KEY2 "\"}"), &r);
		assert_int_equal(r.status, 403);
		reply_free(&r);
	}
	request(f, "POST", "/api/v1/me/keys", as_form, "key=x", 5, &r);
	assert_int_equal(r.status, 415);
	reply_free(&r);
	assert_int_equal(hubdb_generation(f->hub.db), generation);

	request(f, "POST", "/api/v1/me/keys", writer, "{\"key\": \"" KEY2 "\"}", strlen("{\"key\": \"" KEY2 "\"}"), &r);
	assert_int_equal(r.status, 201);
	doc = reply_json(&r);
	id = json_integer_value(json_object_get(doc, "id"));
	assert_true(id > 0);
	assert_string_equal(json_string_value(json_object_get(doc, "line")), KEY2);
	assert_true(str_has_prefix(json_string_value(json_object_get(doc, "fingerprint")), "SHA256:"));
	json_decref(doc);
	reply_free(&r);
	assert_true(hubdb_generation(f->hub.db) > generation);
	/* gpu17's agent was told. */
	api_poke_flush();
	assert_true(__atomic_load_n(&f->pokes, __ATOMIC_SEQ_CST) >= 1);
	assert_int_equal(__atomic_load_n(&f->bad_pokes, __ATOMIC_SEQ_CST), 0);

	request(f, "POST", "/api/v1/me/keys", writer, "{\"key\": \"" KEY2 "\"}", strlen("{\"key\": \"" KEY2 "\"}"), &r);
	assert_int_equal(r.status, 409);
	reply_free(&r);
	{
		static const char *const bad[] = {
			"{\"key\": \"command=\\\"sh\\\" " KEY2 "\"}",
			"{\"key\": \"ssh-ed25519 AAAA!!!\"}",
			"{\"key\": 5}",
			"{\"key\": \"x\", \"key\": \"y\"}",
			"{\"key\": \"" KEY2 "\", \"admin\": true}",
			"[\"" KEY2 "\"]",
			"not json",
			"",
		};

		for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
			request(f, "POST", "/api/v1/me/keys", writer, bad[i], strlen(bad[i]), &r);
			if (r.status != 400)
				fail_msg("body %zu: status %ld", i, r.status);
			doc = reply_json(&r);
			assert_true(json_is_string(json_object_get(doc, "error")));
			json_decref(doc);
			reply_free(&r);
		}
	}

	get(f, "/api/v1/me/keys", reader, &r);
	assert_int_equal(r.status, 200);
	doc = reply_json(&r);
	assert_int_equal(json_array_size(json_object_get(doc, "keys")), 2);
	json_decref(doc);
	reply_free(&r);

	snprintf(path, sizeof(path), "/api/v1/me/keys/%lld", id);
	request(f, "DELETE", path, (const char *[]){ f->alice_cookie, NULL }, NULL, 0, &r);
	assert_int_equal(r.status, 403);
	reply_free(&r);
	request(f, "DELETE", path, writer, NULL, 0, &r);
	assert_int_equal(r.status, 200);
	reply_free(&r);
	request(f, "DELETE", path, writer, NULL, 0, &r);
	assert_int_equal(r.status, 404);
	reply_free(&r);
	request(f, "DELETE", "/api/v1/me/keys/-1", writer, NULL, 0, &r);
	assert_int_equal(r.status, 404);
	reply_free(&r);

	/* Servers. */
	request(f, "POST", "/api/v1/me/servers/gpu99", writer, "{\"enabled\": true}", 17, &r);
	assert_int_equal(r.status, 404);
	reply_free(&r);
	request(f, "POST", "/api/v1/me/servers/gpu17", writer, "{\"enabled\": \"yes\"}", 18, &r);
	assert_int_equal(r.status, 400);
	reply_free(&r);
	get(f, "/api/v1/me/ssh-config", reader, &r);
	assert_int_equal(r.status, 200);
	assert_header(&r, "Content-Type", "text/plain; charset=utf-8");
	assert_header(&r, "Content-Disposition", "attachment; filename=\"config\"");
	assert_non_null(memmem(r.body, r.len, "Host gpu17-manage\n    HostName gpu17.lab.example\n", 49));
	assert_non_null(memmem(r.body, r.len, "Test Lab", 8));
	reply_free(&r);
	request(f, "POST", "/api/v1/me/servers/gpu17", writer, "{\"enabled\": false}", 18, &r);
	assert_int_equal(r.status, 200);
	reply_free(&r);
	get(f, "/api/v1/me/ssh-config", reader, &r);
	assert_int_equal(r.status, 200);
	assert_null(memmem(r.body, r.len, "Host gpu17", 10));
	reply_free(&r);
}

static void test_admin_api(void **state)
{
	struct fixture *f = *state;
	char csrf[128];
	const char *carol[] = { f->carol_cookie, csrf, "Content-Type: application/json", NULL };
	struct reply r;
	json_t *doc;

	snprintf(csrf, sizeof(csrf), "X-CSRF-Token: %s", f->carol_csrf);
	get(f, "/api/v1/admin/members", (const char *[]){ f->alice_cookie, NULL }, &r);
	assert_int_equal(r.status, 403);
	reply_free(&r);
	get(f, "/api/v1/admin/members", carol, &r);
	assert_int_equal(r.status, 200);
	doc = reply_json(&r);
	assert_int_equal(json_array_size(json_object_get(doc, "members")), 3);
	json_decref(doc);
	reply_free(&r);
	get(f, "/api/v1/admin/servers", carol, &r);
	assert_int_equal(r.status, 200);
	doc = reply_json(&r);
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(doc, "servers"), 0),
							       "name")), "gpu17");
	json_decref(doc);
	reply_free(&r);

	request(f, "POST", "/api/v1/admin/members/carol", carol, "{\"disabled\": true}", 18, &r);
	assert_int_equal(r.status, 409);
	reply_free(&r);
	request(f, "POST", "/api/v1/admin/members/zed", carol, "{\"disabled\": true}", 18, &r);
	assert_int_equal(r.status, 404);
	reply_free(&r);
	request(f, "POST", "/api/v1/admin/members/alice", carol, "{\"disabled\": true}", 18, &r);
	assert_int_equal(r.status, 200);
	reply_free(&r);
	/* alice's session ended; gpu17 was told. */
	get(f, "/api/v1/me", (const char *[]){ f->alice_cookie, NULL }, &r);
	assert_int_equal(r.status, 401);
	reply_free(&r);
	api_poke_flush();
	assert_true(__atomic_load_n(&f->pokes, __ATOMIC_SEQ_CST) >= 1);
	request(f, "POST", "/api/v1/admin/members/alice", carol, "{\"disabled\": false}", 19, &r);
	assert_int_equal(r.status, 200);
	reply_free(&r);
	/* Enabled again, alice signs in again: the old session stays ended. */
	get(f, "/api/v1/me", (const char *[]){ f->alice_cookie, NULL }, &r);
	assert_int_equal(r.status, 401);
	reply_free(&r);
	get(f, "/keys", (const char *[]){ f->alice_cookie, NULL }, &r);
	assert_int_equal(r.status, 303);
	reply_free(&r);

	/* An admin whose rights are taken away loses the admin session. */
	assert_int_equal(hubdb_member_set_admin(f->hub.db, "carol", false), 0);
	get(f, "/api/v1/admin/members", carol, &r);
	assert_int_equal(r.status, 401);
	reply_free(&r);
	get(f, "/admin", (const char *[]){ f->carol_cookie, NULL }, &r);
	assert_int_equal(r.status, 303);
	reply_free(&r);
}

/* ---- the sign-in form ------------------------------------------------------ */

/* The value of cookie name in the reply's Set-Cookie header (into buf). */
static const char *set_cookie_value(const struct reply *r, const char *name, char *buf, size_t len)
{
	char line[512];
	size_t n = strlen(name);

	if (!header(r, "Set-Cookie", line, sizeof(line)) || strncmp(line, name, n) != 0 || line[n] != '=')
		return NULL;
	snprintf(buf, len, "%.*s", (int)strcspn(line + n + 1, ";"), line + n + 1);
	return buf;
}

/* The csrf field of a sign-in page (into buf). */
static const char *form_csrf(const struct reply *r, char *buf, size_t len)
{
	const char *p = r->body ? strstr(r->body, "name=\"csrf\" value=\"") : NULL;

	if (!p)
		return NULL;
	p += strlen("name=\"csrf\" value=\"");
	snprintf(buf, len, "%.*s", (int)strcspn(p, "\""), p);
	return buf;
}

/* POST /login as a browser would: cookie "NAME=VALUE" (or NULL), the
 * form's csrf, and an Origin header (or NULL). */
static long post_login(struct fixture *f, const char *cookie, const char *csrf, const char *origin,
		       const char *password, struct reply *r)
{
	char cookie_header[256], origin_header[256], body[512];
	const char *headers[4] = { "Content-Type: application/x-www-form-urlencoded", NULL, NULL, NULL };
	size_t n = 1;

	if (cookie) {
		snprintf(cookie_header, sizeof(cookie_header), "Cookie: %s", cookie);
		headers[n++] = cookie_header;
	}
	if (origin) {
		snprintf(origin_header, sizeof(origin_header), "Origin: %s", origin);
		headers[n++] = origin_header;
	}
	snprintf(body, sizeof(body), "csrf=%s&name=alice&password=%s", csrf, password);
	request(f, "POST", "/login", headers, body, strlen(body), r);
	return r->status;
}

/* alice gets a local password and the hub a sign-in. */
static void open_local_auth(struct fixture *f)
{
	char hash[256];

	assert_int_equal(auth_hash_password("alice-pw", hash, sizeof(hash)), 0);
	assert_int_equal(hubdb_password_set(f->hub.db, "alice", hash), 0);
	snprintf(f->hub.cfg.auth, sizeof(f->hub.cfg.auth), "local");
	assert_int_equal(auth_open(&f->hub.cfg, f->hub.db, &f->hub.auth), 0);
}

/*
 * The sign-in form is tied to the browser: the cookie holds a random id
 * and the form an HMAC of it, so a planted cookie (with its value in the
 * form, as the old double-submit took) is refused, and so is a form sent
 * from another origin.  prefix: the cookie names' ("__Host-" over HTTPS).
 */
static void check_login_form(struct fixture *f, const char *prefix, const char *origin)
{
	char name[64], id[128], csrf[128], planted[160], cookie[256], other_origin[64];
	struct reply r;

	snprintf(name, sizeof(name), "%sgpubox_login", prefix);
	get(f, "/login", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(set_cookie_value(&r, name, id, sizeof(id)));
	assert_non_null(form_csrf(&r, csrf, sizeof(csrf)));
	reply_free(&r);
	assert_int_equal(strlen(id), 64);
	assert_int_equal(strlen(csrf), 64);
	assert_string_not_equal(id, csrf);

	/* The old double submit: the cookie's own value in the form. */
	snprintf(cookie, sizeof(cookie), "%s=%s", name, id);
	assert_int_equal(post_login(f, cookie, id, NULL, "alice-pw", &r), 403);
	reply_free(&r);
	/* A cookie planted by someone else, with its value in the form. */
	memset(planted, 'a', 64);
	planted[64] = '\0';
	snprintf(cookie, sizeof(cookie), "%s=%s", name, planted);
	assert_int_equal(post_login(f, cookie, planted, NULL, "alice-pw", &r), 403);
	reply_free(&r);
	/* No cookie. */
	assert_int_equal(post_login(f, NULL, csrf, NULL, "alice-pw", &r), 403);
	reply_free(&r);
	/* The right pair, posted from another origin (another port of this host). */
	snprintf(cookie, sizeof(cookie), "%s=%s", name, id);
	snprintf(other_origin, sizeof(other_origin), "%s://127.0.0.1:%u", f->tls ? "https" : "http",
		 f->port == 1 ? 2 : 1);
	assert_int_equal(post_login(f, cookie, csrf, other_origin, "alice-pw", &r), 403);
	reply_free(&r);
	assert_int_equal(post_login(f, cookie, csrf, "null", "alice-pw", &r), 403);
	reply_free(&r);
	/* The right pair from this origin: the password is checked. */
	assert_int_equal(post_login(f, cookie, csrf, origin, "wrong", &r), 401);
	reply_free(&r);
	assert_int_equal(post_login(f, cookie, csrf, origin, "alice-pw", &r), 303);
	snprintf(name, sizeof(name), "%sgpubox_session", prefix);
	assert_non_null(set_cookie_value(&r, name, id, sizeof(id)));
	reply_free(&r);
}

static void test_login_form(void **state)
{
	struct fixture *f = *state;
	char origin[64], line[512];
	struct reply r;

	open_local_auth(f);
	snprintf(origin, sizeof(origin), "http://127.0.0.1:%u", f->port);
	check_login_form(f, "", origin);
	check_login_form(f, "", NULL);
	/* Plain HTTP: no Strict-Transport-Security, no Secure cookie. */
	get(f, "/login", NULL, &r);
	assert_null(header(&r, "Strict-Transport-Security", line, sizeof(line)));
	assert_non_null(header(&r, "Set-Cookie", line, sizeof(line)));
	assert_null(strstr(line, "Secure"));
	assert_non_null(strstr(line, "Path=/login"));
	reply_free(&r);
	auth_close(f->hub.auth);
	f->hub.auth = NULL;
}

/* ---- slow clients ------------------------------------------------------------- */

#define SLOW_CONNECTIONS 1010

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A connection from 127.0.0.1 that sends a request line and one header,
 * never the end of the headers; -1 when it cannot connect. */
static int slow_connect(struct fixture *f)
{
	static const char start[] = "GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\n";
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)f->port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    send(fd, start, strlen(start), MSG_NOSIGNAL) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Whether the server has closed fd (end of stream or reset). */
static bool slow_closed(int fd)
{
	char buf[256];
	ssize_t n;

	n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* GET /login from source address, timed; the status (0: no answer). */
static long timed_get(struct fixture *f, const char *source, double *seconds)
{
	char url[128];
	long status = 0;
	CURL *c = curl_easy_init();
	FILE *sink = fopen("/dev/null", "w");

	assert_non_null(c);
	assert_non_null(sink);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/login", f->port);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_INTERFACE, source);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 3000L);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, sink);
	*seconds = now_seconds();
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	*seconds = now_seconds() - *seconds;
	curl_easy_cleanup(c);
	fclose(sink);
	return status;
}

/*
 * 1,010 slow connections from one address (each sends a header now and
 * then, never a whole request) once filled the server: the sign-in page
 * went unanswered for everyone.  Now the address holds its share
 * (connections_per_address) and the others are answered at once; and the
 * slow connections are closed at the request deadline, whatever they
 * trickle.
 */
static void test_slow_clients(void **state)
{
	struct fixture *f = *state;
	static int fds[SLOW_CONNECTIONS];
	unsigned open_count = 0;
	double seconds;
	long status;

	for (size_t i = 0; i < SLOW_CONNECTIONS; i++)
		fds[i] = slow_connect(f);
	usleep(300 * 1000);
	status = timed_get(f, "127.0.0.2", &seconds);
	print_message("another address: HTTP %ld in %.3f s\n", status, seconds);
	assert_int_equal(status, 200);
	assert_true(seconds < 1.0);
	for (size_t i = 0; i < SLOW_CONNECTIONS; i++)
		open_count += fds[i] >= 0 && !slow_closed(fds[i]);
	print_message("slow connections still open: %u\n", open_count);
	/* The cap, give or take a connection accepted by each pool thread. */
	assert_true(open_count >= f->hub.cfg.connections_per_address / 2);
	assert_true(open_count <= f->hub.cfg.connections_per_address + 16);

	/* A header line every 2 s keeps libmicrohttpd's idle timeout away;
	 * the deadline closes them anyway. */
	for (int round = 0; round < 18 && open_count > 0; round++) {
		sleep(2);
		open_count = 0;
		for (size_t i = 0; i < SLOW_CONNECTIONS; i++) {
			if (fds[i] < 0)
				continue;
			if (slow_closed(fds[i]) || send(fds[i], "X-Slow: 1\r\n", 11, MSG_NOSIGNAL) < 0) {
				close(fds[i]);
				fds[i] = -1;
				continue;
			}
			open_count++;
		}
	}
	print_message("slow connections open after the deadline: %u\n", open_count);
	assert_int_equal(open_count, 0);
	status = timed_get(f, "127.0.0.1", &seconds);
	assert_int_equal(status, 200);
	for (size_t i = 0; i < SLOW_CONNECTIONS; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* Many requests on one keep-alive connection and from several threads. */
struct hammer {
	struct fixture *f;
	int ok;
};

static void *hammer_sync(void *arg)
{
	struct hammer *h = arg;
	char auth[128], url[128];
	struct curl_slist *list = NULL;
	CURL *c = curl_easy_init();
	FILE *sink = fopen("/dev/null", "w");

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", h->f->token);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/api/v1/sync", h->f->port);
	list = curl_slist_append(list, auth);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, sink);
	for (int i = 0; i < 200; i++) {
		long status = 0;

		if (curl_easy_perform(c) == CURLE_OK &&
		    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status == 200)
			h->ok++;
	}
	fclose(sink);
	curl_slist_free_all(list);
	curl_easy_cleanup(c);
	return NULL;
}

static void test_many_requests(void **state)
{
	struct fixture *f = *state;
	struct hammer h[4];
	pthread_t t[4];

	for (int i = 0; i < 4; i++) {
		h[i] = (struct hammer){ f, 0 };
		assert_int_equal(pthread_create(&t[i], NULL, hammer_sync, &h[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(h[i].ok, 200);
	}
}

/* HTTPS with the certificate of hub.conf: verified by the client; plain
 * HTTP on the same port gets nothing. */
static void test_tls(void **state)
{
	struct fixture *f = *state;
	char auth[128], url[128], line[512], origin[64], cookie[256];
	const char *bearer[] = { auth, NULL };
	struct reply r;
	CURL *c;

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", f->token);
	get(f, "/api/v1/sync", bearer, &r);
	assert_int_equal(r.status, 200);
	assert_security_headers(&r);
	reply_free(&r);
	get(f, "/api/v1/keys/alice", bearer, &r);
	assert_int_equal(r.status, 200);
	reply_free(&r);

	/* HTTPS: Strict-Transport-Security on every answer, __Host- cookies. */
	get(f, "/login", NULL, &r);
	assert_header(&r, "Strict-Transport-Security", "max-age=31536000");
	assert_non_null(header(&r, "Set-Cookie", line, sizeof(line)));
	assert_true(str_has_prefix(line, "__Host-gpubox_login="));
	assert_non_null(strstr(line, "; Secure"));
	assert_non_null(strstr(line, "; Path=/;"));
	assert_null(strcasestr(line, "Domain"));
	reply_free(&r);
	get(f, "/no/such/page", NULL, &r);
	assert_header(&r, "Strict-Transport-Security", "max-age=31536000");
	reply_free(&r);
	/* A cookie without the prefix is none of the hub's over HTTPS. */
	snprintf(cookie, sizeof(cookie), "Cookie: gpubox_session=%s", f->alice_cookie + strlen("Cookie: theme=dark; gpubox_session="));
	get(f, "/api/v1/me", (const char *[]){ cookie, NULL }, &r);
	assert_int_equal(r.status, 401);
	reply_free(&r);
	snprintf(cookie, sizeof(cookie), "Cookie: __Host-gpubox_session=%s",
		 f->alice_cookie + strlen("Cookie: theme=dark; gpubox_session="));
	get(f, "/api/v1/me", (const char *[]){ cookie, NULL }, &r);
	assert_int_equal(r.status, 200);
	reply_free(&r);

	open_local_auth(f);
	snprintf(origin, sizeof(origin), "https://127.0.0.1:%u", f->port);
	check_login_form(f, "__Host-", origin);
	auth_close(f->hub.auth);
	f->hub.auth = NULL;
	c = curl_easy_init();
	assert_non_null(c);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/api/v1/sync", f->port);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, stderr);
	assert_int_not_equal(curl_easy_perform(c), CURLE_OK);
	curl_easy_cleanup(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_token, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_found_and_method, setup, teardown),
		cmocka_unit_test_setup_teardown(test_body_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compression, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_compression_with_secrets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_monitor_compressed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_member_api, setup, teardown),
		cmocka_unit_test_setup_teardown(test_admin_api, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_login_form, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_clients, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls, setup_tls, teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
