/* SPDX-License-Identifier: MIT */
/*
 * gpubox-hub's private header: the prototypes of every file of the hub,
 * grouped under the file that defines them.  Function prefix = file name.
 * Every function returns 0 or a negative errno unless it says otherwise.
 *
 * The hub is one process: a libmicrohttpd server (thread pool) in front of
 * one SQLite database.  Members sign in (LDAP or local accounts), manage
 * their SSH keys and servers; agents pull their members with a token.
 */
#ifndef GPUBOX_HUB_H
#define GPUBOX_HUB_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <pthread.h>
#include <sys/types.h>

#include <jansson.h>

#include "config.h"

/* ---- hubconf.c: /etc/gpubox/hub.conf ------------------------------------ */

#define HUBCONF_DEFAULT_PATH GPUBOX_SYSCONFDIR "/gpubox/hub.conf"

struct hub_config {
	char listen[CONFIG_NAME_MAX];          /* "HOST:PORT", default "127.0.0.1:8080" */
	char state_dir[CONFIG_PATH_MAX];       /* default /var/lib/gpubox-hub: hub.db */
	char tls_cert[CONFIG_PATH_MAX];        /* PEM files; both empty = plain HTTP */
	char tls_key[CONFIG_PATH_MAX];
	char public_url[CONFIG_TEXT_MAX];      /* how browsers reach the hub (links, cookies' Secure) */
	bool behind_proxy;                     /* trust X-Forwarded-For / -Proto from loopback */
	uint32_t connections_per_address;      /* open at once from one client address (default 64) */
	char lab_name[CONFIG_NAME_MAX];        /* shown on the pages */

	/* Identity: "local" (accounts in hub.db, Argon2id) or "ldap". */
	char auth[16];
	char ldap_uri[CONFIG_TEXT_MAX];        /* ldap://, ldaps:// or ldapi:// */
	char ldap_base[CONFIG_TEXT_MAX];
	char ldap_filter[CONFIG_TEXT_MAX];     /* "(uid=%s)": %s = the escaped name (RFC 4515) */
	char ldap_dn_template[CONFIG_TEXT_MAX];/* "uid=%s,ou=people,dc=lab": %s = RFC 4514; else search */
	char ldap_bind_dn[CONFIG_TEXT_MAX];    /* for the search; "" = anonymous */
	char ldap_bind_password_file[CONFIG_PATH_MAX];
	char ldap_display_attr[CONFIG_NAME_MAX]; /* default "cn" */
	char ldap_ca_file[CONFIG_PATH_MAX];    /* "" = the system's */
	bool ldap_starttls;                    /* default yes; refused off unless loopback/ldapi */
	uint32_t login_fail_limit;             /* failures per member and address (x4 per address) ... */
	uint32_t login_fail_window;            /* ... in this many seconds, then locked as long (auth.c) */

	uint32_t session_hours;                /* sign-in lifetime */
	bool monitor_public;                   /* the monitor without sign-in (no names) */
	uint32_t monitor_poll;                 /* seconds between readings of every agent; 0 = off */

	/* Lab-wide allocation: the same on every server. */
	struct config_range uid_range;
	struct config_range subid_range;
	struct config_range ssh_port_range;
	char admin_group[CONFIG_NAME_MAX];     /* LDAP group (cn) or local flag: hub admins */
	bool debug;
};

void hubconf_set_defaults(struct hub_config *cfg);
/* Defaults, then the file (NULL: $GPUBOX_HUB_CONFIG, else the default
 * path; a missing default file is not an error).  err: one sentence. */
int hubconf_load(struct hub_config *cfg, const char *path, char *err, size_t errlen);
void hubconf_dump(const struct hub_config *cfg, FILE *out);
/* Configuration text over the values in *cfg, then the checks that span
 * keys; -EINVAL with one sentence naming the line or the keys. */
int hubconf_parse(struct hub_config *cfg, const char *text, size_t len, char *err, size_t errlen);
/* "HOST:PORT" or "[V6]:PORT", HOST an IP address literal; host gets the
 * address without brackets. */
int hubconf_parse_listen(const char *listen, char *host, size_t hostlen, uint16_t *port);

/* ---- hubdb.c: the hub's state in SQLite ----------------------------------- */

struct hubdb;

#define HUB_NAME_MAX 40          /* member and server names: validate_member_name() */
#define HUB_TOKEN_HEX 65         /* 32 random bytes in hex + NUL */
#define HUB_KEYS_MAX 32          /* SSH keys per member */

struct hub_member {
	char name[HUB_NAME_MAX];
	char display_name[128];
	uint32_t uid;
	uint32_t subid_base;
	uint32_t ssh_port;
	bool disabled;
	bool admin;
	long long created;
};

struct hub_key {
	long long id;
	char member[HUB_NAME_MAX];
	char line[8192 + 64];     /* "type base64 [comment]", no options */
	char fingerprint[64];     /* "SHA256:..." */
	long long added;
};

struct hub_server {
	char name[HUB_NAME_MAX];
	char url[CONFIG_TEXT_MAX];    /* the agent's HTTP address */
	char ssh_host[256];           /* what members' ssh config names; "" = name */
	long long last_contact;       /* unix seconds of the agent's last sync; 0 never */
	long long created;
};

/* How long a change made by another process (the admin commands) may go
 * unseen by a running hub, which serves agents from memory. */
#define HUBDB_GENERATION_REFRESH_MS 1000

int hubdb_open(const char *path, const struct hub_config *cfg, struct hubdb **out);
void hubdb_close(struct hubdb *db);
/* Bumped by every change an agent must see; the sync ETag. */
uint64_t hubdb_generation(struct hubdb *db);

/* The member, created on first sign-in with the lab-wide allocations
 * (uid, subid block, SSH port: lowest free, never reused, never changed). */
int hubdb_member_ensure(struct hubdb *db, const char *name, const char *display_name,
			struct hub_member *out);
int hubdb_member_get(struct hubdb *db, const char *name, struct hub_member *out);
int hubdb_member_list(struct hubdb *db, struct hub_member **out, size_t *n);
int hubdb_member_set_disabled(struct hubdb *db, const char *name, bool disabled);
int hubdb_member_set_admin(struct hubdb *db, const char *name, bool admin);
/* Local accounts (auth = local): an Argon2id hash (crypto_pwhash_str). */
int hubdb_password_set(struct hubdb *db, const char *name, const char *hash);
int hubdb_password_get(struct hubdb *db, const char *name, char *hash, size_t len);

int hubdb_key_add(struct hubdb *db, const char *member, const char *line,
		  const char *fingerprint, long long *id);
int hubdb_key_remove(struct hubdb *db, const char *member, long long id);
int hubdb_key_list(struct hubdb *db, const char *member, struct hub_key **out, size_t *n);

/* Servers; the token is stored only as its SHA-256. */
int hubdb_server_add(struct hubdb *db, const char *name, const char *url, const char *ssh_host,
		     char token_hex[HUB_TOKEN_HEX]);
int hubdb_server_remove(struct hubdb *db, const char *name);
int hubdb_server_list(struct hubdb *db, struct hub_server **out, size_t *n);
int hubdb_server_get(struct hubdb *db, const char *name, struct hub_server *out);
/* The server whose token this is (constant time compare of hashes). */
int hubdb_server_by_token(struct hubdb *db, const char *token, struct hub_server *out);
int hubdb_server_touch(struct hubdb *db, const char *name, long long now);
/* The server's token itself, kept so that the hub can derive the token it
 * calls the agent with (poke, poll; hubtoken.h). */
int hubdb_server_token(struct hubdb *db, const char *name, char token_hex[HUB_TOKEN_HEX]);

/* Which servers a member enabled. */
int hubdb_enable(struct hubdb *db, const char *member, const char *server, bool on);
int hubdb_enabled_servers(struct hubdb *db, const char *member, char (**names)[HUB_NAME_MAX],
			  size_t *n);

/* The agent's view: {"generation", "server", "members": [{"name",
 * "display_name", "uid", "subid_base", "ssh_port", "disabled", "keys":
 * ["line", ...]}]} for the members who enabled server; disabled members
 * are listed with no keys. */
int hubdb_sync_json(struct hubdb *db, const char *server, json_t **out);
/* The same as compact text, built once per generation and server and kept:
 * *text is the caller's copy, *generation the one it was built at. */
int hubdb_sync_text(struct hubdb *db, const char *server, char **text, size_t *len,
		    uint64_t *generation);
/* The member's keys as authorized_keys text ("" with no keys), only when
 * the member enabled server and is not disabled; -ENOENT otherwise. */
int hubdb_authorized_keys(struct hubdb *db, const char *server, const char *member,
			  char **text, size_t *len);

/* Sessions: the cookie holds a random id; the database its SHA-256.
 * Disabling a member, a new password (hubdb_password_set()) and taking
 * admin rights away end every session of the member for good: each moves
 * the member's session epoch. */
struct hub_session {
	char member[HUB_NAME_MAX];
	char csrf[HUB_TOKEN_HEX];     /* random per session, in every form */
	long long expires;
};
/* The member's session epoch (0, -ENOENT, when there is no member yet):
 * read before the password is checked, and given to create. */
int hubdb_session_epoch(struct hubdb *db, const char *member, uint64_t *epoch);
/* A session at epoch: -ENOENT for no member; -ESTALE when the member is
 * disabled or its sessions ended after epoch was read (a sign-in that
 * raced a password change opens nothing). */
int hubdb_session_create(struct hubdb *db, const char *member, uint64_t epoch, long long expires,
			 char id_hex[HUB_TOKEN_HEX], char csrf_hex[HUB_TOKEN_HEX]);
/* -ENOENT also for a session of a disabled member, or one that ended. */
int hubdb_session_get(struct hubdb *db, const char *id_hex, long long now, struct hub_session *out);
int hubdb_session_delete(struct hubdb *db, const char *id_hex);
int hubdb_session_prune(struct hubdb *db, long long now);

/* ---- encoding.c: compressed answers -------------------------------------- */

enum http_encoding { HTTP_ENCODING_IDENTITY, HTTP_ENCODING_GZIP, HTTP_ENCODING_DEFLATE };

/* The coding to answer in, from a request's Accept-Encoding (NULL: none):
 * gzip or deflate, whichever has the higher q (gzip on a tie; "*" stands
 * for an unnamed one), when that q is above 0 and "identity" is not named
 * with a higher one; else identity.  Malformed elements count for nothing. */
enum http_encoding encoding_pick(const char *accept_encoding);
/* "gzip", "deflate"; NULL for identity. */
const char *encoding_name(enum http_encoding enc);
/* in[0..len) compressed with zlib in enc's format: *out (malloc'd), *outlen. */
int encoding_compress(enum http_encoding enc, const char *in, size_t len, char **out,
		      size_t *outlen);

/* ---- form.c: what browsers and clients send ------------------------------ */

#define FORM_FIELDS_MAX 32

struct form_field {
	char *name;
	char *value;
};

struct form {
	struct form_field fields[FORM_FIELDS_MAX];
	size_t n;
};

/* application/x-www-form-urlencoded (also a query string), percent- and
 * '+'-decoded; a NUL byte, bad escapes, more than FORM_FIELDS_MAX fields
 * or a repeated name is -EINVAL. */
int form_parse(const char *body, size_t len, struct form *out);
void form_free(struct form *f);
const char *form_get(const struct form *f, const char *name);
/* The value of one cookie from a Cookie header; -ENOENT if absent. */
int form_cookie(const char *header, const char *name, char *value, size_t len);

/* ---- auth.c: who signs in -------------------------------------------------- */

enum auth_result {
	AUTH_OK,
	AUTH_BAD_CREDENTIALS,      /* unknown member or wrong password: one message for both */
	AUTH_THROTTLED,            /* too many failures for this member here, or this address */
	AUTH_UNAVAILABLE,          /* the directory did not answer */
};

struct auth;
int auth_open(const struct hub_config *cfg, struct hubdb *db, struct auth **out);
void auth_close(struct auth *a);
/* Check name and password (an empty or all-blank password is refused
 * before any bind); display_name filled from the directory (or the name). */
enum auth_result auth_login(struct auth *a, const char *name, const char *password,
			    const char *client_address, char *display_name, size_t len,
			    bool *is_admin);
/* RFC 4515 and RFC 4514 escaping of one value (libldap's own functions). */
int auth_escape_filter(const char *value, char *out, size_t len);
int auth_escape_dn(const char *value, char *out, size_t len);
/* Local accounts: hash a new password (Argon2id with libsodium's
 * interactive limits: a few sign-ins at once must not exhaust a small
 * server). */
int auth_hash_password(const char *password, char *hash, size_t len);

/* ---- sshconfig.c: the ~/.ssh/config a member downloads --------------------- */

/* "Host gpu17" (the container, port = the member's ssh_port) and
 * "Host gpu17-manage" (the host login, port 22, the gpubox shell) for each
 * enabled server, User = the member's name. */
char *sshconfig_render(const struct hub_member *m, const struct hub_server *servers, size_t n);
/* The same, with the lab's name in the header comment (NULL: "gpubox").
 * NULL with errno EINVAL when a name or host would not be a safe word. */
char *sshconfig_render_lab(const char *lab_name, const struct hub_member *m,
			   const struct hub_server *servers, size_t n);
/* A host name or an IP address: letters, digits, '.', '-', ':'; not
 * starting with '-' (an option to ssh). */
bool sshconfig_host_ok(const char *host);

/* ---- agentcall.c: the hub's requests to agents --------------------------------- */

/* One agent request: the server's URL with the path appended, and the
 * hub-to-agent token derived from the server's (hubtoken.h) as a bearer
 * header (the agent checks it). */
struct agentcall_target {
	char name[HUB_NAME_MAX];
	char url[CONFIG_TEXT_MAX + 256];
	char authorization[HUB_TOKEN_HEX + 32];
};

struct agentcall_answer {
	long status;                  /* HTTP status; 0 = no answer (see error) */
	char *body;                   /* NUL-terminated; NULL without an answer */
	size_t len;
	char error[192];              /* why there is no usable answer, one sentence */
};

/* libcurl's global set-up, once per process. */
void agentcall_init(void);
/* The target for server's agent and path ("/api/v1/..." with its query);
 * -ENOENT for an unknown server. */
int agentcall_target(struct hubdb *db, const char *server, const char *path,
		     struct agentcall_target *t);
/* GET every target at once (timeout_ms each, bodies over max_body
 * refused); answers[i] is targets[i]'s.  A status other than 2xx fills
 * error from the agent's text.  Free each with agentcall_answer_free(). */
void agentcall_get(const struct agentcall_target *targets, size_t n, long timeout_ms,
		   size_t max_body, struct agentcall_answer *answers);
/* POST with an empty body, the status only (poke). */
void agentcall_post(const struct agentcall_target *t, long timeout_ms,
		    struct agentcall_answer *answer);
void agentcall_answer_free(struct agentcall_answer *a);

/* ---- monitor.c: every agent's newest reading, history and usage ------------------- */

struct monitor;
struct hub;

/* Start the thread that reads every registered agent's /api/v1/sample
 * every monitor_poll seconds (nothing when it is 0). */
int monitor_start(struct hub *hub, struct monitor **out);
void monitor_stop(struct monitor *m);
/* GET /api/v1/monitor's body (docs/hub-api.md), built once per round and
 * kept, and compressed in *enc once per round when asked (*enc becomes
 * identity for a body under HTTP_COMPRESS_MIN); names false leaves every
 * member name out.  *text is the caller's. */
int monitor_overview(struct monitor *m, bool names, enum http_encoding *enc, char **text,
		     size_t *len);
/* /api/v1/me/monitor for member, over the servers it enabled. */
int monitor_member(struct monitor *m, const char *member, json_t **out);
/* Ask one agent now (path with its query) and parse its JSON answer.
 * -ENOENT unknown server; -EHOSTUNREACH (err says why) when the agent did
 * not answer well; -ENODATA when it answered 404. */
int monitor_ask(struct monitor *m, const char *server, const char *path, json_t **out,
		char *err, size_t errlen);
/* Usage per member over every server (docs/hub-api.md). */
int monitor_usage(struct monitor *m, long long from_ms, long long to_ms, json_t **out);
/* Leave every member name out of a history or "at" answer (public view). */
void monitor_strip_names(json_t *answer);

/* The pieces above, apart for tests and fuzzing.  An agent's reading
 * (NULL, err filled, when it lacks host, gpus or processes); the overview's
 * form of one; a member's part of one ({"container", "gpus", "processes",
 * "reservations"} set into o; sample NULL: state unknown); one agent's usage answer added
 * to the sums per member (false when it is not usage); the sums as the
 * report's list, largest first. */
json_t *monitor_parse_reading(const char *body, size_t len, char *err, size_t errlen);
json_t *monitor_reading_view(json_t *sample, bool names);
void monitor_reading_member(json_t *sample, const char *member, json_t *o);
bool monitor_usage_add(json_t *by_member, const char *server, const char *body, size_t len);
json_t *monitor_usage_list(json_t *by_member);

/* ---- http.c: the HTTP server ----------------------------------------------- */

struct hub;
struct MHD_Daemon;

struct http_request {
	struct hub *hub;
	const char *method;
	const char *path;             /* without the query */
	const struct form *query;
	const struct form *form;      /* urlencoded POST body; NULL otherwise */
	const char *body;             /* raw body (JSON), NUL-terminated */
	size_t body_len;
	const char *client_address;   /* text; X-Forwarded-For honoured behind_proxy */
	const char *cookie_header;
	const char *authorization;    /* the Authorization header */
	const char *if_none_match;
	bool secure;                  /* TLS or X-Forwarded-Proto https */
	bool cookies_secure;          /* secure, or public_url is https: cookies Secure, __Host- */
	void *connection;             /* libmicrohttpd's, for http_request_header() */
	struct hub_session session;   /* valid when signed_in */
	char session_id[HUB_TOKEN_HEX];
	bool signed_in;
};

struct http_response {
	unsigned status;
	const char *content_type;
	char *body;                   /* freed by http.c */
	size_t body_len;
	char *headers[8];             /* "Name: value", freed by http.c */
	size_t nheaders;
	/* The handler says this answer may be compressed (HTTP_COMPRESS_MIN):
	 * it carries no secret beside what a client sent, which compression's
	 * length would leak (BREACH).  Each http_reply*() clears it. */
	bool compress;
};

/* Handlers return 0 with *resp filled. */
typedef int (*http_handler)(struct http_request *req, struct http_response *resp);

struct http_route {
	const char *method;           /* "GET", "POST" */
	const char *prefix;           /* matched exactly, or as a prefix when it ends in '/' */
	http_handler handler;
};

#define HTTP_BODY_MAX (64 * 1024)  /* larger request bodies get 413 */
#define HTTP_SESSION_COOKIE "gpubox_session"
/* Over HTTPS every cookie is named with this prefix: browsers then take it
 * only with Secure, Path=/ and no Domain, from this host, so neither a
 * sibling host nor a plain-HTTP answer can plant one. */
#define HTTP_SECURE_COOKIE_PREFIX "__Host-"

int http_start(struct hub *hub, struct MHD_Daemon **out);
void http_stop(struct MHD_Daemon *d);
/* A request header's value (case-insensitive name); NULL when absent. */
const char *http_request_header(const struct http_request *req, const char *name);
/* The name cookie name has for this request: with HTTP_SECURE_COOKIE_PREFIX
 * when cookies_secure. */
int http_cookie_name(const struct http_request *req, const char *name, char *buf, size_t len);
/* Helpers for handlers. */
int http_reply(struct http_response *resp, unsigned status, const char *type, char *body);
/* The same with the body's length known (it may then hold NUL bytes). */
int http_reply_len(struct http_response *resp, unsigned status, const char *type, char *body,
		   size_t len);
int http_reply_json(struct http_response *resp, unsigned status, json_t *json);
int http_reply_error(struct http_response *resp, unsigned status, const char *message);
int http_redirect(struct http_response *resp, const char *location);
int http_add_header(struct http_response *resp, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Answers whose handler set compress (static files, the monitor's
 * overview), of a text type (JSON, CSS, scripts, plain), are from this
 * many bytes on compressed for a client that accepts it (encoding.c), and
 * say "Vary: Accept-Encoding".  A handler that sets Content-Encoding itself
 * (a body compressed once for many answers) sets Vary too.  Pages, and any
 * answer with a token or a member's data, are never compressed. */
#define HTTP_COMPRESS_MIN 1024
/* Every response gets the security headers (over HTTPS also
 * Strict-Transport-Security: max-age=31536000) and, unless the handler set a
 * Cache-Control header itself (static assets), "Cache-Control: no-store".
 * http_reply() and http_reply_len() take body over (malloc'd, or NULL);
 * http_reply_json() leaves the caller's reference to json alone;
 * http_reply_error() answers {"error": message} as JSON; http_redirect()
 * is a 303 to a path of this site only. */

/* ---- api.c, pages.c, monitor_api.c, monitor_pages.c: the routes ------------------------------------------ */

extern const struct http_route api_routes[];    /* /api/v1/... (JSON) */
extern const struct http_route pages_routes[];  /* /, /login, /keys, /servers, /ssh-config, /logout */
/* Both tables end with an entry whose method is NULL.  A prefix route
 * also matches its prefix itself; paths under /api/ are looked up in
 * api_routes only (an unknown one is a JSON 404, never a page). */

/* monitor_api.c: GET /api/v1/monitor, .../monitor/servers/<s>/history and
 * /at, /api/v1/monitor/usage, /api/v1/me/monitor. */
int monitor_api_overview(struct http_request *req, struct http_response *resp);
int monitor_api_server(struct http_request *req, struct http_response *resp);
int monitor_api_usage(struct http_request *req, struct http_response *resp);
int monitor_api_me(struct http_request *req, struct http_response *resp);
/* Who may read the monitor: a signed-in member, or anyone in public mode;
 * *names says whether member names may be shown. */
bool monitor_api_readable(const struct http_request *req, bool *names);

/* monitor_pages.c: the pages /monitor, /monitor/servers/<s>[/gpus/<i>],
 * /monitor/usage (+ .csv), /me, and the embedded files under /static/. */
int monitor_pages_overview(struct http_request *req, struct http_response *resp);
int monitor_pages_server(struct http_request *req, struct http_response *resp);
int monitor_pages_usage(struct http_request *req, struct http_response *resp);
int monitor_pages_usage_csv(struct http_request *req, struct http_response *resp);
int monitor_pages_me(struct http_request *req, struct http_response *resp);
int monitor_pages_static(struct http_request *req, struct http_response *resp);

/* The files under /static/, compiled in at build time (embed.c writes
 * them from src/hub/web and the chart library in web/node_modules). */
struct static_asset {
	const char *path;             /* "/static/monitor.js" */
	const char *type;             /* Content-Type */
	const unsigned char *data;
	size_t len;
};
extern const struct static_asset static_assets[];
extern const size_t static_assets_count;

/* api.c: tell agents to sync now (POST <url>/api/v1/poke with the
 * hub-to-agent token), best effort, from a worker thread; failures are only logged. */
int api_poke_server(struct hub *hub, const char *server);
int api_poke_member(struct hub *hub, const char *member);   /* every server it enabled */
void api_poke_flush(void);    /* wait until every poke queued so far is done */
void api_poke_stop(void);     /* flush, then end the worker thread */
/* The JSON bodies the API accepts, parsed strictly (fuzzed): {"key": "..."}
 * and {"<field>": true|false}; -EINVAL with one sentence in err. */
int api_parse_key_request(const char *body, size_t len, char *line, size_t linelen,
			  char *err, size_t errlen);
int api_parse_flag_request(const char *body, size_t len, const char *field, bool *value,
			   char *err, size_t errlen);

/* ---- main.c ------------------------------------------------------------------- */

struct hub {
	struct hub_config cfg;
	struct hubdb *db;
	struct auth *auth;
	struct monitor *monitor;      /* NULL when monitor_poll = 0 or not serving */
};

#endif
