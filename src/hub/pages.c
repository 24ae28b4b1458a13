/* SPDX-License-Identifier: MIT */
/*
 * The hub's web pages: sign-in, SSH keys, servers, the ~/.ssh/config
 * download and the admin's list of members.  Plain HTML that works without
 * JavaScript and reads on a phone; one stylesheet, served here, because
 * the hub's Content-Security-Policy ("default-src 'self'") forbids inline
 * styles and scripts.
 *
 * Rules every handler follows, enforced in one place (pages_guarded()):
 * a page that needs a member redirects to /login when nobody is signed in;
 * every POST of a signed-in member carries the session's CSRF token in a
 * hidden "csrf" field, compared in constant time, else 403; a disabled
 * member gets nothing but a refusal.  Sign-in itself has no session yet:
 * see "sign in" below for how its form is tied to the browser.
 *
 * Every value printed goes through html_printf(), which escapes it.  After
 * a POST the browser is sent on with 303 (post/redirect/get) and a short
 * message key in the query; the key is looked up in a fixed table, so no
 * text from the query ever reaches a page.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "hub.h"
#include "html.h"
#include "pages.h"
#include "cleanup.h"
#include "log.h"
#include "strutil.h"
#include "validate.h"
#include "banned.h"

#define PAGES_LOGIN_COOKIE "gpubox_login"
#define PAGES_LOGIN_COOKIE_AGE 3600

/* ---- messages after a redirect -------------------------------------------- */

struct pages_flash {
	const char *key;
	const char *text;
	bool error;
};

static const struct pages_flash pages_flashes[] = {
	{ "welcome", "Welcome! Add your SSH public key, then enable the servers you want to use.", false },
	{ "signed-out", "You are signed out.", false },
	{ "key-added", "Key added.", false },
	{ "key-removed", "Key removed. Servers drop it at their next sync.", false },
	{ "no-such-key", "That key is not on your account (was it removed already?).", true },
	{ "server-enabled", "Server enabled. Download your SSH config again to reach it by name.", false },
	{ "server-disabled", "Server disabled: your keys leave it at its next sync.", false },
	{ "no-such-server", "There is no server of that name.", true },
	{ "member-disabled", "Member disabled: they cannot sign in, and their keys leave every server.", false },
	{ "member-enabled", "Member enabled again.", false },
	{ "no-such-member", "There is no member of that name.", true },
	{ "not-yourself", "You cannot disable your own account.", true },
};

static const struct pages_flash *pages_flash_find(const char *key)
{
	if (!key)
		return NULL;
	for (size_t i = 0; i < ARRAY_SIZE(pages_flashes); i++)
		if (strcmp(pages_flashes[i].key, key) == 0)
			return &pages_flashes[i];
	return NULL;
}

/* ---- one request ------------------------------------------------------------ */

void pages_ctx_release(struct pages_ctx *ctx)
{
	html_discard(&ctx->page);
}

const char *pages_site(const struct hub *hub)
{
	return hub->cfg.lab_name[0] ? hub->cfg.lab_name : "gpubox";
}

const char *pages_query(const struct http_request *req, const char *name)
{
	return req->query ? form_get(req->query, name) : NULL;
}

static const char *pages_field(const struct http_request *req, const char *name)
{
	return req->form ? form_get(req->form, name) : NULL;
}

/* Over HTTPS the cookie is "__Host-NAME" with Secure and Path=/ (what the
 * prefix demands); path is then only for plain HTTP. */
static int pages_set_cookie(struct http_response *resp, const struct http_request *req,
			    const char *name, const char *value, const char *path, long long max_age)
{
	char full[64];
	int r = http_cookie_name(req, name, full, sizeof(full));

	if (r < 0)
		return r;
	return http_add_header(resp, "Set-Cookie: %s=%s; HttpOnly; SameSite=Strict; Path=%s; Max-Age=%lld%s",
			       full, value, req->cookies_secure ? "/" : path, max_age,
			       req->cookies_secure ? "; Secure" : "");
}

/* The value of this hub's cookie name (named as pages_set_cookie() does). */
static int pages_get_cookie(const struct http_request *req, const char *name, char *value, size_t len)
{
	char full[64];

	if (!req->cookie_header || http_cookie_name(req, name, full, sizeof(full)) < 0)
		return -ENOENT;
	return form_cookie(req->cookie_header, full, value, len);
}

static bool pages_token_equal(const char *given, const char *expected)
{
	size_t n = strlen(expected);

	if (!given || n == 0 || strlen(given) != n)
		return false;
	return sodium_memcmp(given, expected, n) == 0;
}

static bool pages_csrf_ok(const struct http_request *req)
{
	return req->signed_in && pages_token_equal(pages_field(req, "csrf"), req->session.csrf);
}

static bool pages_is_token(const char *s)
{
	size_t n = strlen(s);

	if (n != HUB_TOKEN_HEX - 1)
		return false;
	return strspn(s, "0123456789abcdef") == n;
}

static int pages_random_token(char token[HUB_TOKEN_HEX])
{
	unsigned char raw[(HUB_TOKEN_HEX - 1) / 2];

	if (sodium_init() < 0)
		return -ENOMEM;
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(token, HUB_TOKEN_HEX, raw, sizeof(raw));
	sodium_memzero(raw, sizeof(raw));
	return 0;
}

/* A positive decimal number (a key's id); nothing else. */
static int pages_parse_id(const char *text, long long *id)
{
	char *end;
	long long v;

	if (!text || *text < '0' || *text > '9')
		return -EINVAL;
	errno = 0;
	v = strtoll(text, &end, 10);
	if (errno != 0 || *end != '\0' || v <= 0)
		return -EINVAL;
	*id = v;
	return 0;
}

/* "1" or "0" from a form: the on/off buttons. */
static int pages_parse_switch(const char *text, bool *on)
{
	if (!text)
		return -EINVAL;
	if (strcmp(text, "1") == 0)
		*on = true;
	else if (strcmp(text, "0") == 0)
		*on = false;
	else
		return -EINVAL;
	return 0;
}

static void pages_ago(char *buf, size_t len, long long then, long long now)
{
	long long d = now - then;

	if (then <= 0) {
		snprintf(buf, len, "never");
		return;
	}
	if (d < 0)
		d = 0;
	if (d < 60)
		snprintf(buf, len, "%lld s ago", d);
	else if (d < 3600)
		snprintf(buf, len, "%lld min ago", d / 60);
	else if (d < 86400)
		snprintf(buf, len, "%lld h ago", d / 3600);
	else
		snprintf(buf, len, "%lld d ago", d / 86400);
}

static void pages_date(char *buf, size_t len, long long t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || !gmtime_r(&tt, &tm) || strftime(buf, len, "%Y-%m-%d", &tm) == 0)
		snprintf(buf, len, "-");
}

/* Changes reach the agents at their next sync; a poke makes that now.
 * Best effort: a server that is down syncs when it is back. */
static void pages_poke_member(struct hub *hub, const char *member)
{
	int r = api_poke_member(hub, member);

	if (r < 0)
		log_warn_errno(r, -r, "could not ask the servers of %s to sync", member);
}

/* ---- the page skeleton ----------------------------------------------------- */

static void pages_header(struct pages_ctx *ctx)
{
	FILE *out = ctx->page.out;
	static const struct {
		const char *path;
		const char *label;
		bool admin;
	} links[] = {
		{ "/monitor", "Monitor", false },
		{ "/me", "My containers", false },
		{ "/monitor/usage", "Usage", false },
		{ "/servers", "Servers", false },
		{ "/keys", "SSH keys", false },
		{ "/admin", "Admin", true },
	};

	html_printf(out, "<header class=\"top\">\n<a class=\"brand\" href=\"/\">%s</a>\n",
		    pages_site(ctx->hub));
	if (!ctx->member) {
		/* The public monitor's visitors: the way in. */
		if (ctx->hub->cfg.monitor_public)
			fputs("<nav>\n<a href=\"/monitor\">Monitor</a>\n"
			      "<a href=\"/login\">Sign in</a>\n</nav>\n", out);
		fputs("</header>\n", out);
		return;
	}
	fputs("<nav>\n", out);
	for (size_t i = 0; i < ARRAY_SIZE(links); i++) {
		if (links[i].admin && !ctx->me.admin)
			continue;
		if (strcmp(ctx->req->path, links[i].path) == 0)
			html_printf(out, "<a href=\"%s\" aria-current=\"page\">%s</a>\n",
				    links[i].path, links[i].label);
		else
			html_printf(out, "<a href=\"%s\">%s</a>\n", links[i].path, links[i].label);
	}
	html_printf(out,
		    "<form class=\"inline\" method=\"post\" action=\"/logout\">"
		    "<input type=\"hidden\" name=\"csrf\" value=\"%s\">"
		    "<button type=\"submit\" class=\"link\" id=\"sign-out\">Sign out</button></form>\n"
		    "</nav>\n</header>\n",
		    ctx->req->session.csrf);
}

int pages_begin(struct pages_ctx *ctx, const char *title)
{
	int r = html_begin(&ctx->page, title, pages_site(ctx->hub), ctx->head);

	if (r < 0)
		return r;
	pages_header(ctx);
	return 0;
}

int pages_open(struct pages_ctx *ctx, const char *title, const char *main_class)
{
	int r = pages_begin(ctx, title);

	if (r < 0)
		return r;
	html_printf(ctx->page.out, "<main class=\"%s\">\n<h1>%s</h1>\n", main_class, title);
	return 0;
}

static void pages_flash_print(struct pages_ctx *ctx, const char *text, bool error)
{
	html_printf(ctx->page.out, "<p class=\"flash%s\" id=\"flash\" role=\"%s\">%s</p>\n",
		    error ? " error" : "", error ? "alert" : "status", text);
}

/* The message named in ?msg=, if it is one of ours. */
static void pages_flash(struct pages_ctx *ctx)
{
	const struct pages_flash *f = pages_flash_find(pages_query(ctx->req, "msg"));

	if (f)
		pages_flash_print(ctx, f->text, f->error);
}

int pages_send(struct pages_ctx *ctx, struct http_response *resp, unsigned status)
{
	char *body = NULL;
	int r;

	fputs("</main>\n", ctx->page.out);
	if (ctx->member)
		html_printf(ctx->page.out,
			    "<footer>Signed in as <b>%s</b> (%s) · gpubox %s</footer>\n",
			    ctx->me.name, ctx->me.display_name, GPUBOX_VERSION);
	r = html_end(&ctx->page, &body);
	if (r < 0)
		return r;
	/* http.c adds "Cache-Control: no-store": pages show personal data. */
	return http_reply(resp, status, PAGES_TYPE_HTML, body);
}

/* A page that says one thing: a refusal, a missing page, a failure. */
int pages_message(struct pages_ctx *ctx, struct http_response *resp, unsigned status,
		  const char *title, const char *text)
{
	int r;

	html_discard(&ctx->page);
	r = pages_open(ctx, title, "narrow");
	if (r < 0)
		return r;
	pages_flash_print(ctx, text, true);
	html_printf(ctx->page.out, "<p><a href=\"/\">Back to the start page</a></p>\n");
	return pages_send(ctx, resp, status);
}

int pages_failed(struct pages_ctx *ctx, struct http_response *resp, int err,
		 const char *what)
{
	log_error_errno(err, -err, "pages: %s", what);
	return pages_message(ctx, resp, 500, "Something went wrong",
			     "The hub could not do that because of an internal error; "
			     "try again, and tell a lab admin if it keeps happening.");
}

/* ---- the guard: session, CSRF, member, admin ----------------------------------- */


int pages_guarded(struct http_request *req, struct http_response *resp, unsigned needs,
		  pages_action action)
{
	struct pages_ctx ctx __do_pages_ctx = { .req = req, .hub = req->hub };
	int r;

	if (!req->signed_in && (needs & PAGES_MAY_BE_PUBLIC) && req->hub->cfg.monitor_public)
		return action(&ctx, resp);
	if (!req->signed_in)
		return http_redirect(resp, "/login");
	if ((needs & PAGES_NEED_CSRF) && !pages_csrf_ok(req))
		return pages_message(&ctx, resp, 403, "Form refused",
				     "This form did not come from your current session "
				     "(it may be old, or from another site). Reload the page and try again.");
	r = hubdb_member_get(req->hub->db, req->session.member, &ctx.me);
	if (r == -ENOENT)
		return http_redirect(resp, "/login");
	if (r < 0)
		return pages_failed(&ctx, resp, r, "reading the signed-in member");
	if (ctx.me.disabled)
		return pages_message(&ctx, resp, 403, "Account disabled",
				     "Your account is disabled; ask a lab admin.");
	ctx.member = true;
	if ((needs & PAGES_NEED_ADMIN) && !ctx.me.admin)
		return pages_message(&ctx, resp, 403, "Admins only",
				     "Only lab admins can use this page.");
	return action(&ctx, resp);
}

/* ---- sign in ---------------------------------------------------------------- */

/*
 * The sign-in form has no session to carry a token yet.  It is tied to the
 * browser by a pre-session: a random id in the gpubox_login cookie, and in
 * the form not the id but an HMAC of it under a key only this process
 * knows (made at start; a form older than a restart is refused, and the
 * page says to reload).  So a cookie someone else planted in the browser
 * is worth nothing unless the hub itself gave out its pair; and a form
 * posted from another origin (where a planting attacker would post it)
 * is refused by its Origin header.  Over HTTPS the cookie is
 * __Host-gpubox_login, which no other host and no plain-HTTP answer can
 * set at all.  Without TLS, every service on the hub's host name (any
 * port) shares its cookies: run the hub without TLS only on loopback for
 * development, or behind a proxy that speaks HTTPS.
 */
static unsigned char pages_login_key[crypto_auth_hmacsha512256_KEYBYTES];
static pthread_once_t pages_login_key_once = PTHREAD_ONCE_INIT;

static void pages_login_key_make(void)
{
	if (sodium_init() >= 0)
		crypto_auth_hmacsha512256_keygen(pages_login_key);
}

/* The form's token for the pre-session id. */
static int pages_login_form_token(const char *id, char token[HUB_TOKEN_HEX])
{
	static const char context[] = "gpubox sign-in form v1:";
	unsigned char mac[crypto_auth_hmacsha512256_BYTES];
	crypto_auth_hmacsha512256_state st;

	pthread_once(&pages_login_key_once, pages_login_key_make);
	if (crypto_auth_hmacsha512256_init(&st, pages_login_key, sizeof(pages_login_key)) != 0 ||
	    crypto_auth_hmacsha512256_update(&st, (const unsigned char *)context, sizeof(context) - 1) != 0 ||
	    crypto_auth_hmacsha512256_update(&st, (const unsigned char *)id, strlen(id)) != 0 ||
	    crypto_auth_hmacsha512256_final(&st, mac) != 0)
		return -EIO;
	sodium_bin2hex(token, HUB_TOKEN_HEX, mac, sizeof(mac));
	return 0;
}

/* The pre-session id: the browser's, if it holds a well-formed one. */
static int pages_login_id(const struct http_request *req, char id[HUB_TOKEN_HEX])
{
	if (pages_get_cookie(req, PAGES_LOGIN_COOKIE, id, HUB_TOKEN_HEX) == 0 && pages_is_token(id))
		return 0;
	return pages_random_token(id);
}

/* Whether a sign-in form came back from the browser it was given to. */
static bool pages_login_form_ok(const struct http_request *req)
{
	char id[HUB_TOKEN_HEX] = "", expected[HUB_TOKEN_HEX];
	bool ok;

	if (pages_get_cookie(req, PAGES_LOGIN_COOKIE, id, sizeof(id)) < 0 || !pages_is_token(id) ||
	    pages_login_form_token(id, expected) < 0)
		return false;
	ok = pages_token_equal(pages_field(req, "csrf"), expected);
	sodium_memzero(expected, sizeof(expected));
	return ok;
}

/* The length of the origin at the start of url ("https://host:port"). */
static size_t pages_origin_length(const char *url)
{
	const char *scheme_end = strstr(url, "://");
	const char *host = scheme_end ? scheme_end + 3 : url;

	return (size_t)(host - url) + strcspn(host, "/?#");
}

/* Whether origin is how browsers see this hub: public_url's origin, or the
 * scheme of this request with its Host header (which a browser sets, not
 * a page). */
static bool pages_origin_is_ours(const struct http_request *req, const char *origin)
{
	const char *public_url = req->hub->cfg.public_url, *host = http_request_header(req, "Host");
	const char *scheme = req->secure ? "https://" : "http://";
	size_t len;

	if (public_url[0]) {
		len = pages_origin_length(public_url);
		if (strlen(origin) == len && strncasecmp(origin, public_url, len) == 0)
			return true;
	}
	len = strlen(scheme);
	return host && strncasecmp(origin, scheme, len) == 0 && strcasecmp(origin + len, host) == 0;
}

/* A browser's Origin header, when it sent one (every current browser does
 * with a form's POST; curl does not), must be this hub's: a form posted
 * from another site, or from another port of this host, is refused. */
static bool pages_origin_ok(const struct http_request *req)
{
	const char *origin = http_request_header(req, "Origin");

	return !origin || pages_origin_is_ours(req, origin);
}

static int pages_login_page(struct pages_ctx *ctx, struct http_response *resp, unsigned status,
			    const char *name, const char *error)
{
	char id[HUB_TOKEN_HEX], token[HUB_TOKEN_HEX];
	FILE *out;
	int r;

	r = pages_login_id(ctx->req, id);
	if (r == 0)
		r = pages_login_form_token(id, token);
	if (r < 0)
		return r;
	r = pages_open(ctx, "Sign in", "narrow");
	if (r < 0)
		return r;
	if (error)
		pages_flash_print(ctx, error, true);
	else
		pages_flash(ctx);
	out = ctx->page.out;
	html_printf(out,
		    "<p>Sign in with your lab account to manage your SSH keys and servers.</p>\n"
		    "<form class=\"card\" method=\"post\" action=\"/login\">\n"
		    "<input type=\"hidden\" name=\"csrf\" value=\"%s\">\n"
		    "<label for=\"name\">Name</label>\n"
		    "<input id=\"name\" name=\"name\" type=\"text\" autocomplete=\"username\" "
		    "autocapitalize=\"none\" spellcheck=\"false\" required value=\"%s\">\n"
		    "<label for=\"password\">Password</label>\n"
		    "<input id=\"password\" name=\"password\" type=\"password\" "
		    "autocomplete=\"current-password\" required>\n"
		    "<button type=\"submit\" id=\"sign-in\">Sign in</button>\n"
		    "</form>\n",
		    token, name ? name : "");
	r = pages_send(ctx, resp, status);
	if (r < 0)
		return r;
	return pages_set_cookie(resp, ctx->req, PAGES_LOGIN_COOKIE, id, "/login",
				PAGES_LOGIN_COOKIE_AGE);
}

static int pages_get_login(struct http_request *req, struct http_response *resp)
{
	struct pages_ctx ctx __do_pages_ctx = { .req = req, .hub = req->hub };

	if (req->signed_in)
		return http_redirect(resp, "/servers");
	return pages_login_page(&ctx, resp, 200, NULL, NULL);
}

/* Signed in: the member row, the session, its cookie, and on to the pages.
 * epoch: the member's session epoch from before the password was checked. */
static int pages_login_success(struct pages_ctx *ctx, struct http_response *resp,
			       const char *name, const char *display_name, bool is_admin,
			       uint64_t epoch)
{
	struct hub *hub = ctx->hub;
	struct http_request *req = ctx->req;
	char id[HUB_TOKEN_HEX], csrf[HUB_TOKEN_HEX];
	struct hub_key *keys __do_free = NULL;
	long long lifetime;
	size_t nkeys = 0;
	bool welcome;
	int r;

	r = hubdb_member_ensure(hub->db, name, display_name, &ctx->me);
	if (r < 0)
		return pages_failed(ctx, resp, r, "creating the member");
	if (ctx->me.disabled) {
		log_info("%s is disabled: sign-in refused", name);
		return pages_login_page(ctx, resp, 403, name,
					"This account is disabled; ask a lab admin.");
	}
	r = hubdb_member_set_admin(hub->db, name, is_admin);
	if (r < 0)
		return pages_failed(ctx, resp, r, "recording the admin flag");
	/* The directory took the admin rights away: that ended the member's
	 * other sessions (and moved the epoch), not this sign-in. */
	if (ctx->me.admin && !is_admin && hubdb_session_epoch(hub->db, name, &epoch) < 0)
		return pages_failed(ctx, resp, -EIO, "reading the session epoch");
	lifetime = (long long)(hub->cfg.session_hours ? hub->cfg.session_hours : 1) * 3600;
	r = hubdb_session_create(hub->db, name, epoch, (long long)time(NULL) + lifetime, id, csrf);
	if (r == -ESTALE) {
		log_info("%s was disabled, or changed password, during the sign-in: no session", name);
		return pages_login_page(ctx, resp, 409, name,
					"Your account changed while you signed in. Sign in again.");
	}
	if (r < 0)
		return pages_failed(ctx, resp, r, "creating the session");
	/* A new sign-in replaces the browser's previous session. */
	if (req->signed_in)
		hubdb_session_delete(hub->db, req->session_id);

	/* A member without a key starts where keys are added. */
	welcome = hubdb_key_list(hub->db, name, &keys, &nkeys) == 0 && nkeys == 0;
	r = http_redirect(resp, welcome ? "/keys?msg=welcome" : "/servers");
	if (r == 0)
		r = pages_set_cookie(resp, req, HTTP_SESSION_COOKIE, id, "/", lifetime);
	if (r == 0)
		r = pages_set_cookie(resp, req, PAGES_LOGIN_COOKIE, "", "/login", 0);
	sodium_memzero(id, sizeof(id));
	return r;
}

static int pages_post_login(struct http_request *req, struct http_response *resp)
{
	struct pages_ctx ctx __do_pages_ctx = { .req = req, .hub = req->hub };
	const char *name = pages_field(req, "name");
	const char *password = pages_field(req, "password");
	char display[sizeof(ctx.me.display_name)] = "", err[256];
	bool is_admin = false;
	uint64_t epoch = 0;

	if (!pages_origin_ok(req))
		return pages_login_page(&ctx, resp, 403, name,
					"This sign-in form was sent from another site; sign in on this page.");
	if (!pages_login_form_ok(req))
		return pages_login_page(&ctx, resp, 403, name,
					"Your browser did not send the sign-in form back as expected "
					"(cookies off, or an old page). Allow cookies for this site and try again.");
	if (!name || !*name || !password || !*password)
		return pages_login_page(&ctx, resp, 400, name, "Give your name and your password.");
	if (validate_member_name(name, err, sizeof(err)) < 0)
		return pages_login_page(&ctx, resp, 400, name, err);
	/* Before the password is checked: a password changed (or the member
	 * disabled) while it is, opens no session (0: no member yet). */
	if (hubdb_session_epoch(req->hub->db, name, &epoch) < 0)
		epoch = 0;

	switch (auth_login(req->hub->auth, name, password, req->client_address,
			   display, sizeof(display), &is_admin)) {
	case AUTH_OK:
		return pages_login_success(&ctx, resp, name, display[0] ? display : name, is_admin, epoch);
	case AUTH_THROTTLED:
		return pages_login_page(&ctx, resp, 429, name,
					"Too many failed sign-ins. Wait a few minutes, then try again.");
	case AUTH_UNAVAILABLE:
		return pages_login_page(&ctx, resp, 503, name,
					"The lab's directory cannot be reached right now. "
					"Try again in a minute, or tell a lab admin.");
	case AUTH_BAD_CREDENTIALS:
	default:
		return pages_login_page(&ctx, resp, 401, name, "Wrong name or password.");
	}
}

static int pages_post_logout(struct http_request *req, struct http_response *resp)
{
	struct pages_ctx ctx __do_pages_ctx = { .req = req, .hub = req->hub };
	int r;

	if (!req->signed_in)
		return http_redirect(resp, "/login");
	if (!pages_csrf_ok(req))
		return pages_message(&ctx, resp, 403, "Form refused",
				     "This form did not come from your current session. "
				     "Reload the page and try again.");
	r = hubdb_session_delete(req->hub->db, req->session_id);
	if (r < 0 && r != -ENOENT)
		return pages_failed(&ctx, resp, r, "ending the session");
	r = http_redirect(resp, "/login?msg=signed-out");
	if (r < 0)
		return r;
	return pages_set_cookie(resp, req, HTTP_SESSION_COOKIE, "", "/", 0);
}

/* ---- SSH keys ------------------------------------------------------------------- */

static void pages_key_item(struct pages_ctx *ctx, const struct hub_key *k, struct ssh_key *parsed,
			   bool fresh)
{
	FILE *out = ctx->page.out;
	char err[256], added[32];
	const char *type = "unknown", *comment = "";

	if (ssh_key_parse(k->line, parsed, err, sizeof(err)) == 0) {
		type = parsed->type;
		comment = parsed->comment;
	}
	pages_date(added, sizeof(added), k->added);
	html_printf(out,
		    "<li class=\"card key%s\" id=\"key-%lld\">\n"
		    "<div class=\"row\"><span class=\"badge\">%s</span>"
		    "<span class=\"comment\">%s</span></div>\n"
		    "<code class=\"fingerprint\">%s</code>\n"
		    "<div class=\"row\"><span class=\"muted\">added %s</span>\n"
		    "<form class=\"inline\" method=\"post\" action=\"/keys/remove\">"
		    "<input type=\"hidden\" name=\"csrf\" value=\"%s\">"
		    "<input type=\"hidden\" name=\"id\" value=\"%lld\">"
		    "<button type=\"submit\" class=\"danger\">Remove</button></form></div>\n"
		    "</li>\n",
		    fresh ? " fresh" : "", k->id, type, comment, k->fingerprint, added,
		    ctx->req->session.csrf, k->id);
}

/* The keys page; error and typed: a refused key is shown again with why. */
static int pages_keys_page(struct pages_ctx *ctx, struct http_response *resp, unsigned status,
			   const char *error, const char *typed)
{
	struct hub_key *keys __do_free = NULL;
	struct ssh_key *parsed __do_free = NULL;
	const struct hub_key *fresh = NULL;
	long long fresh_id = 0;
	size_t n = 0;
	FILE *out;
	int r;

	r = hubdb_key_list(ctx->hub->db, ctx->me.name, &keys, &n);
	if (r < 0)
		return pages_failed(ctx, resp, r, "listing keys");
	parsed = malloc(sizeof(*parsed));
	if (!parsed)
		return -ENOMEM;
	if (!error && pages_parse_id(pages_query(ctx->req, "key"), &fresh_id) == 0)
		for (size_t i = 0; i < n; i++)
			if (keys[i].id == fresh_id)
				fresh = &keys[i];

	r = pages_open(ctx, "SSH keys", "");
	if (r < 0)
		return r;
	out = ctx->page.out;
	if (error)
		pages_flash_print(ctx, error, true);
	else if (fresh)
		html_printf(out, "<p class=\"flash\" id=\"flash\" role=\"status\">Key added: "
			    "<code class=\"fingerprint\">%s</code></p>\n", fresh->fingerprint);
	else
		pages_flash(ctx);

	if (n == 0)
		html_printf(out, "<p id=\"no-keys\">You have no key yet: without one you cannot "
			    "log in to any server.</p>\n");
	html_printf(out, "<ul class=\"list\" id=\"keys\">\n");
	for (size_t i = 0; i < n; i++)
		pages_key_item(ctx, &keys[i], parsed, &keys[i] == fresh);
	html_printf(out, "</ul>\n");

	html_printf(out,
		    "<form class=\"card\" method=\"post\" action=\"/keys/add\">\n"
		    "<h2>Add a key</h2>\n"
		    "<input type=\"hidden\" name=\"csrf\" value=\"%s\">\n"
		    "<label for=\"key\">Public key</label>\n"
		    "<textarea id=\"key\" name=\"key\" rows=\"4\" required spellcheck=\"false\" "
		    "autocapitalize=\"none\" placeholder=\"ssh-ed25519 AAAA... you@laptop\">%s</textarea>\n"
		    "<p class=\"muted\">Paste one line of your <code>~/.ssh/id_ed25519.pub</code> "
		    "(never the private key). No key yet? Make one with "
		    "<code>ssh-keygen -t ed25519</code>.</p>\n"
		    "<button type=\"submit\" id=\"add-key\">Add key</button>\n"
		    "</form>\n",
		    ctx->req->session.csrf, typed ? typed : "");
	return pages_send(ctx, resp, status);
}

static int pages_keys_show(struct pages_ctx *ctx, struct http_response *resp)
{
	return pages_keys_page(ctx, resp, 200, NULL, NULL);
}

static int pages_keys_add(struct pages_ctx *ctx, struct http_response *resp)
{
	struct ssh_key *key __do_free = NULL;
	char *typed __do_free = NULL;
	char err[256], line[sizeof(((struct hub_key *)0)->line)], location[64];
	const char *given = pages_field(ctx->req, "key");
	long long id = 0;
	int r;

	if (!given || strlen(given) >= SSH_KEY_MAX)
		return pages_keys_page(ctx, resp, 400, "Paste your public key (one line, at most 16 KiB).",
				       NULL);
	typed = strdup(given);
	key = malloc(sizeof(*key));
	if (!typed || !key)
		return -ENOMEM;
	if (ssh_key_parse(strip(typed), key, err, sizeof(err)) < 0)
		return pages_keys_page(ctx, resp, 400, err, typed);
	if ((size_t)snprintf(line, sizeof(line), "%s %s%s%s", key->type, key->base64,
			     key->comment[0] ? " " : "", key->comment) >= sizeof(line))
		return pages_keys_page(ctx, resp, 400, "This key is too long for the hub.", typed);

	r = hubdb_key_add(ctx->hub->db, ctx->me.name, line, key->fingerprint, &id);
	if (r == -EEXIST)
		return pages_keys_page(ctx, resp, 409, "This key is already on your account.", typed);
	if (r == -ENOSPC)
		return pages_keys_page(ctx, resp, 409,
				       "You have as many keys as the hub keeps; remove one you no longer use first.",
				       typed);
	if (r < 0)
		return pages_failed(ctx, resp, r, "adding a key");
	log_info("%s added key %s", ctx->me.name, key->fingerprint);
	pages_poke_member(ctx->hub, ctx->me.name);
	snprintf(location, sizeof(location), "/keys?msg=key-added&key=%lld", id);
	return http_redirect(resp, location);
}

static int pages_keys_remove(struct pages_ctx *ctx, struct http_response *resp)
{
	long long id;
	int r;

	if (pages_parse_id(pages_field(ctx->req, "id"), &id) < 0)
		return http_redirect(resp, "/keys?msg=no-such-key");
	r = hubdb_key_remove(ctx->hub->db, ctx->me.name, id);
	if (r == -ENOENT)
		return http_redirect(resp, "/keys?msg=no-such-key");
	if (r < 0)
		return pages_failed(ctx, resp, r, "removing a key");
	log_info("%s removed key %lld", ctx->me.name, id);
	pages_poke_member(ctx->hub, ctx->me.name);
	return http_redirect(resp, "/keys?msg=key-removed");
}

/* ---- servers ------------------------------------------------------------------- */

static bool pages_name_in(const char (*names)[HUB_NAME_MAX], size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return true;
	return false;
}

static void pages_server_item(struct pages_ctx *ctx, const struct hub_server *s, bool enabled,
			      long long now)
{
	FILE *out = ctx->page.out;
	char ago[32];

	pages_ago(ago, sizeof(ago), s->last_contact, now);
	html_printf(out,
		    "<li class=\"card server\" id=\"server-%s\">\n"
		    "<div class=\"row\"><h2>%s</h2>"
		    "<span class=\"badge %s\">%s</span></div>\n"
		    "<dl class=\"facts\">"
		    "<dt>Last contact</dt><dd class=\"last-contact\">%s</dd>"
		    "<dt>Your SSH port</dt><dd>%u</dd>"
		    "</dl>\n"
		    "<p class=\"muted\">Your container:</p><pre class=\"cmd\">ssh %s</pre>\n"
		    "<p class=\"muted\">Start, stop, snapshots:</p><pre class=\"cmd\">ssh %s-manage</pre>\n"
		    "<form method=\"post\" action=\"/servers/enable\">"
		    "<input type=\"hidden\" name=\"csrf\" value=\"%s\">"
		    "<input type=\"hidden\" name=\"name\" value=\"%s\">"
		    "<input type=\"hidden\" name=\"on\" value=\"%s\">"
		    "<button type=\"submit\" class=\"%s\">%s</button></form>\n"
		    "</li>\n",
		    s->name, s->name, enabled ? "on" : "off", enabled ? "enabled" : "not enabled",
		    ago, ctx->me.ssh_port, s->name, s->name,
		    ctx->req->session.csrf, s->name, enabled ? "0" : "1",
		    enabled ? "secondary" : "", enabled ? "Disable" : "Enable");
}

static int pages_servers_show(struct pages_ctx *ctx, struct http_response *resp)
{
	struct hub_server *servers __do_free = NULL;
	char (*enabled)[HUB_NAME_MAX] __do_free = NULL;
	size_t n = 0, nenabled = 0;
	long long now = (long long)time(NULL);
	FILE *out;
	int r;

	r = hubdb_server_list(ctx->hub->db, &servers, &n);
	if (r < 0)
		return pages_failed(ctx, resp, r, "listing servers");
	r = hubdb_enabled_servers(ctx->hub->db, ctx->me.name, &enabled, &nenabled);
	if (r < 0)
		return pages_failed(ctx, resp, r, "listing enabled servers");

	r = pages_open(ctx, "Servers", "");
	if (r < 0)
		return r;
	out = ctx->page.out;
	pages_flash(ctx);
	html_printf(out,
		    "<section class=\"card\">\n"
		    "<dl class=\"facts\"><dt>Your name</dt><dd>%s</dd>"
		    "<dt>Your uid</dt><dd id=\"uid\">%u</dd>"
		    "<dt>Your SSH port</dt><dd id=\"ssh-port\">%u</dd></dl>\n"
		    "<p>Enable the servers you use, then save this file as "
		    "<code>~/.ssh/config</code> (or <code>Include</code> it from there):</p>\n"
		    "<a class=\"button\" id=\"ssh-config\" href=\"/ssh-config\" download>"
		    "Download SSH config</a>\n"
		    "</section>\n",
		    ctx->me.name, ctx->me.uid, ctx->me.ssh_port);
	if (n == 0)
		html_printf(out, "<p>No server has been added yet. A lab admin adds them with "
			    "<code>gpubox-hub server add</code>.</p>\n");
	html_printf(out, "<ul class=\"list\" id=\"servers\">\n");
	for (size_t i = 0; i < n; i++)
		pages_server_item(ctx, &servers[i],
				  pages_name_in((const char (*)[HUB_NAME_MAX])enabled, nenabled,
						servers[i].name),
				  now);
	html_printf(out, "</ul>\n");
	return pages_send(ctx, resp, 200);
}

static int pages_servers_enable(struct pages_ctx *ctx, struct http_response *resp)
{
	const char *name = pages_field(ctx->req, "name");
	struct hub_server server;
	bool on;
	int r;

	if (!name || pages_parse_switch(pages_field(ctx->req, "on"), &on) < 0)
		return pages_message(ctx, resp, 400, "Form refused",
				     "The form lacks the server's name or the on/off switch.");
	r = hubdb_server_get(ctx->hub->db, name, &server);
	if (r == -ENOENT || r == -EINVAL)
		return http_redirect(resp, "/servers?msg=no-such-server");
	if (r < 0)
		return pages_failed(ctx, resp, r, "reading a server");
	r = hubdb_enable(ctx->hub->db, ctx->me.name, server.name, on);
	if (r < 0)
		return pages_failed(ctx, resp, r, "enabling a server");
	log_info("%s %s server %s", ctx->me.name, on ? "enabled" : "disabled", server.name);
	/* The server itself: after "off" the member is no longer among its own. */
	r = api_poke_server(ctx->hub, server.name);
	if (r < 0)
		log_warn_errno(r, -r, "could not ask server %s to sync", server.name);
	return http_redirect(resp, on ? "/servers?msg=server-enabled" : "/servers?msg=server-disabled");
}

/* The member's enabled servers, in the order of the server list. */
static int pages_enabled_list(struct pages_ctx *ctx, struct hub_server **out, size_t *nout)
{
	struct hub_server *servers __do_free = NULL;
	char (*enabled)[HUB_NAME_MAX] __do_free = NULL;
	size_t n = 0, nenabled = 0, kept = 0;
	int r;

	r = hubdb_server_list(ctx->hub->db, &servers, &n);
	if (r < 0)
		return r;
	r = hubdb_enabled_servers(ctx->hub->db, ctx->me.name, &enabled, &nenabled);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if (pages_name_in((const char (*)[HUB_NAME_MAX])enabled, nenabled, servers[i].name))
			servers[kept++] = servers[i];
	*out = move_ptr(servers);
	*nout = kept;
	return 0;
}

static int pages_ssh_config(struct pages_ctx *ctx, struct http_response *resp)
{
	struct hub_server *servers __do_free = NULL;
	char *text;
	size_t n = 0;
	int r;

	r = pages_enabled_list(ctx, &servers, &n);
	if (r < 0)
		return pages_failed(ctx, resp, r, "listing enabled servers");
	errno = 0;
	text = sshconfig_render_lab(ctx->hub->cfg.lab_name, &ctx->me, servers, n);
	if (!text)
		return pages_failed(ctx, resp, errno ? -errno : -ENOMEM, "rendering the SSH config");
	r = http_reply(resp, 200, PAGES_TYPE_TEXT, text);
	if (r < 0)
		return r;
	return http_add_header(resp, "Content-Disposition: attachment; filename=\"gpubox-ssh-config\"");
}

/* ---- admin ----------------------------------------------------------------------- */

/* Each cell names its column (data-label): on a phone the rows become
 * cards of "label value" lines (see the stylesheet). */
static void pages_admin_member_row(struct pages_ctx *ctx, const struct hub_member *m, size_t nkeys)
{
	FILE *out = ctx->page.out;

	html_printf(out,
		    "<tr id=\"member-%s\"><td data-label=\"Name\"><span><b>%s</b>%s</span></td>"
		    "<td data-label=\"Display name\">%s</td><td data-label=\"uid\">%u</td>"
		    "<td data-label=\"SSH port\">%u</td><td data-label=\"Keys\">%zu</td>"
		    "<td data-label=\"Status\"><span class=\"badge %s\">%s</span></td>"
		    "<td data-label=\"\">",
		    m->name, m->name, m->admin ? " (admin)" : "", m->display_name, m->uid,
		    m->ssh_port, nkeys, m->disabled ? "off" : "on", m->disabled ? "disabled" : "active");
	/* No button to lock oneself out. */
	if (strcmp(m->name, ctx->me.name) == 0)
		html_printf(out, "<span class=\"muted\">you</span>");
	else
		html_printf(out,
			    "<form class=\"inline\" method=\"post\" action=\"/admin/member\">"
			    "<input type=\"hidden\" name=\"csrf\" value=\"%s\">"
			    "<input type=\"hidden\" name=\"name\" value=\"%s\">"
			    "<input type=\"hidden\" name=\"disabled\" value=\"%s\">"
			    "<button type=\"submit\" class=\"%s\">%s</button></form>",
			    ctx->req->session.csrf, m->name, m->disabled ? "0" : "1",
			    m->disabled ? "" : "danger", m->disabled ? "Enable" : "Disable");
	html_printf(out, "</td></tr>\n");
}

static int pages_admin_members(struct pages_ctx *ctx)
{
	struct hub_member *members __do_free = NULL;
	size_t n = 0;
	int r;

	r = hubdb_member_list(ctx->hub->db, &members, &n);
	if (r < 0)
		return r;
	html_printf(ctx->page.out,
		    "<h2>Members (%zu)</h2>\n<div class=\"table-wrap\"><table class=\"cards\" id=\"members\">\n"
		    "<thead><tr><th>Name</th><th>Display name</th><th>uid</th><th>SSH port</th>"
		    "<th>Keys</th><th>Status</th><th></th></tr></thead>\n<tbody>\n", n);
	for (size_t i = 0; i < n; i++) {
		struct hub_key *keys __do_free = NULL;
		size_t nkeys = 0;

		r = hubdb_key_list(ctx->hub->db, members[i].name, &keys, &nkeys);
		if (r < 0)
			return r;
		pages_admin_member_row(ctx, &members[i], nkeys);
	}
	html_printf(ctx->page.out, "</tbody></table></div>\n");
	return 0;
}

static int pages_admin_servers(struct pages_ctx *ctx)
{
	struct hub_server *servers __do_free = NULL;
	long long now = (long long)time(NULL);
	size_t n = 0;
	int r;

	r = hubdb_server_list(ctx->hub->db, &servers, &n);
	if (r < 0)
		return r;
	html_printf(ctx->page.out,
		    "<h2>Servers (%zu)</h2>\n<div class=\"table-wrap\"><table class=\"cards\" id=\"admin-servers\">\n"
		    "<thead><tr><th>Name</th><th>SSH host</th><th>Agent</th><th>Last contact</th>"
		    "</tr></thead>\n<tbody>\n", n);
	for (size_t i = 0; i < n; i++) {
		char ago[32];

		pages_ago(ago, sizeof(ago), servers[i].last_contact, now);
		html_printf(ctx->page.out,
			    "<tr id=\"admin-server-%s\"><td data-label=\"Name\"><b>%s</b></td>"
			    "<td data-label=\"SSH host\">%s</td><td data-label=\"Agent\">%s</td>"
			    "<td data-label=\"Last contact\">%s</td></tr>\n",
			    servers[i].name,
			    servers[i].name, servers[i].ssh_host[0] ? servers[i].ssh_host : servers[i].name,
			    servers[i].url, ago);
	}
	html_printf(ctx->page.out, "</tbody></table></div>\n");
	return 0;
}

static int pages_admin_show(struct pages_ctx *ctx, struct http_response *resp)
{
	int r;

	r = pages_open(ctx, "Admin", "wide");
	if (r < 0)
		return r;
	pages_flash(ctx);
	r = pages_admin_members(ctx);
	if (r == 0)
		r = pages_admin_servers(ctx);
	if (r < 0)
		return pages_failed(ctx, resp, r, "listing members and servers");
	return pages_send(ctx, resp, 200);
}

static int pages_admin_member(struct pages_ctx *ctx, struct http_response *resp)
{
	const char *name = pages_field(ctx->req, "name");
	bool disabled;
	int r;

	if (!name || pages_parse_switch(pages_field(ctx->req, "disabled"), &disabled) < 0)
		return pages_message(ctx, resp, 400, "Form refused",
				     "The form lacks the member's name or the on/off switch.");
	if (disabled && strcmp(name, ctx->me.name) == 0)
		return http_redirect(resp, "/admin?msg=not-yourself");
	r = hubdb_member_set_disabled(ctx->hub->db, name, disabled);
	if (r == -ENOENT || r == -EINVAL)
		return http_redirect(resp, "/admin?msg=no-such-member");
	if (r < 0)
		return pages_failed(ctx, resp, r, "changing a member");
	log_info("%s %s member %s", ctx->me.name, disabled ? "disabled" : "enabled", name);
	pages_poke_member(ctx->hub, name);
	return http_redirect(resp, disabled ? "/admin?msg=member-disabled" : "/admin?msg=member-enabled");
}

/* ---- the stylesheet -------------------------------------------------------------- */

static const char pages_stylesheet[] =
	":root{color-scheme:light dark;--fg:#1d2430;--muted:#5b6575;--bg:#f4f5f7;--card:#fff;"
	"--line:#d9dde3;--accent:#2456c7;--on-accent:#fff;--ok-bg:#e3f3e8;--ok:#1e6b34;"
	"--err-bg:#fdecea;--err:#a1261b}\n"
	"@media (prefers-color-scheme:dark){:root{--fg:#e6e9ee;--muted:#9aa4b2;--bg:#15181d;"
	"--card:#1e232a;--line:#323944;--accent:#8fb0ff;--on-accent:#0d1320;--ok-bg:#17331f;"
	"--ok:#8fd6a2;--err-bg:#3a1a17;--err:#ff9d91}}\n"
	"*{box-sizing:border-box}\n"
	"body{margin:0;font:16px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;"
	"color:var(--fg);background:var(--bg)}\n"
	"header.top{display:flex;flex-wrap:wrap;align-items:center;gap:.4rem 1rem;padding:.7rem 1rem;"
	"background:var(--card);border-bottom:1px solid var(--line)}\n"
	".brand{font-weight:700;color:var(--fg);text-decoration:none;margin-right:auto}\n"
	"nav{display:flex;flex-wrap:wrap;align-items:center;gap:.2rem 1rem}\n"
	"nav a{color:var(--accent);text-decoration:none;padding:.25rem 0}\n"
	"nav a[aria-current=page]{color:var(--fg);font-weight:600;border-bottom:2px solid var(--accent)}\n"
	"main{max-width:52rem;margin:0 auto;padding:1rem}\n"
	"main.narrow{max-width:26rem}\n"
	"main.wide{max-width:72rem}\n"
	"h1{font-size:1.5rem;margin:.4rem 0 1rem}\n"
	"h2{font-size:1.15rem;margin:0 0 .5rem}\n"
	".card{background:var(--card);border:1px solid var(--line);border-radius:.6rem;"
	"padding:1rem;margin:0 0 1rem}\n"
	".card.fresh{border-color:var(--ok);box-shadow:0 0 0 2px var(--ok-bg)}\n"
	".flash{padding:.7rem 1rem;border-radius:.5rem;margin:0 0 1rem;background:var(--ok-bg);"
	"color:var(--ok);overflow-wrap:anywhere}\n"
	".flash.error{background:var(--err-bg);color:var(--err)}\n"
	"label{display:block;font-weight:600;margin:.8rem 0 .3rem}\n"
	"input[type=text],input[type=password],textarea{width:100%;font:inherit;padding:.6rem .7rem;"
	"border:1px solid var(--line);border-radius:.4rem;background:var(--bg);color:var(--fg)}\n"
	"textarea{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.85rem;"
	"min-height:6rem;resize:vertical}\n"
	"button,.button{display:inline-block;font:inherit;font-weight:600;padding:.55rem 1.1rem;"
	"border:1px solid var(--accent);border-radius:.4rem;background:var(--accent);"
	"color:var(--on-accent);cursor:pointer;text-decoration:none;margin-top:.6rem}\n"
	"button.secondary{background:transparent;color:var(--accent)}\n"
	"button.danger{background:transparent;color:var(--err);border-color:var(--err)}\n"
	"button.link{background:none;border:0;color:var(--accent);padding:.25rem 0;margin:0;"
	"font-weight:400}\n"
	"form.inline{display:inline;margin:0}\n"
	".row form.inline button{margin:0}\n"
	"code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.9em}\n"
	"code.fingerprint{display:block;overflow-wrap:anywhere;margin:.4rem 0}\n"
	".flash code.fingerprint{display:inline}\n"
	"pre.cmd{background:var(--bg);border:1px solid var(--line);padding:.45rem .7rem;"
	"border-radius:.4rem;overflow-x:auto;margin:.2rem 0 .5rem}\n"
	"ul.list{list-style:none;padding:0;margin:0}\n"
	".row{display:flex;flex-wrap:wrap;justify-content:space-between;align-items:center;gap:.5rem}\n"
	".comment{overflow-wrap:anywhere;margin-right:auto}\n"
	".badge{display:inline-block;font-size:.8rem;font-weight:600;padding:.1rem .6rem;"
	"border-radius:1rem;background:var(--line);color:var(--fg)}\n"
	".badge.on{background:var(--ok-bg);color:var(--ok)}\n"
	".badge.off{background:var(--err-bg);color:var(--err)}\n"
	".muted{color:var(--muted);font-size:.9rem;margin:.3rem 0}\n"
	"dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:.2rem 0 .6rem}\n"
	"dl.facts dt{color:var(--muted)}\n"
	"dl.facts dd{margin:0}\n"
	".table-wrap{overflow-x:auto;margin:0 0 1.5rem;background:var(--card);"
	"border:1px solid var(--line);border-radius:.6rem}\n"
	"table{border-collapse:collapse;width:100%;font-size:.95rem}\n"
	"th,td{text-align:left;padding:.45rem .7rem;border-bottom:1px solid var(--line);"
	"white-space:nowrap;vertical-align:middle}\n"
	"tbody tr:last-child td{border-bottom:0}\n"
	"td button{margin:0;padding:.3rem .8rem}\n"
	"@media (max-width:40rem){"
	".table-wrap{overflow-x:visible}"
	"table.cards,table.cards tbody,table.cards tr,table.cards td{display:block}"
	"table.cards thead{display:none}"
	"table.cards tr{padding:.5rem 0;border-bottom:1px solid var(--line)}"
	"table.cards tbody tr:last-child{border-bottom:0}"
	"table.cards td{display:flex;gap:1rem;align-items:center;border:0;padding:.15rem 1rem;"
	"white-space:normal;overflow-wrap:anywhere}"
	"table.cards td::before{content:attr(data-label);flex:0 0 7rem;color:var(--muted)}}\n"
	"footer{max-width:52rem;margin:0 auto;padding:1rem;color:var(--muted);font-size:.85rem}\n";

static int pages_style(struct http_request *req, struct http_response *resp)
{
	char *css = strdup(pages_stylesheet);
	int r;

	if (!css)
		return -ENOMEM;
	r = http_reply(resp, 200, PAGES_TYPE_CSS, css);
	if (r < 0)
		return r;
	resp->compress = true;        /* a static file */
	return http_add_header(resp, "Cache-Control: public, max-age=3600");
}

/* ---- the routes ------------------------------------------------------------------- */

static int pages_root(struct http_request *req, struct http_response *resp)
{
	struct pages_ctx ctx __do_pages_ctx = { .req = req, .hub = req->hub };

	/* "/" is also the prefix of every path no other route took. */
	if (strcmp(req->path, "/") != 0)
		return pages_message(&ctx, resp, 404, "Not found", "There is no page at this address.");
	return http_redirect(resp, req->signed_in ? "/servers" : "/login");
}

static int pages_get_keys(struct http_request *req, struct http_response *resp)
{
	return pages_guarded(req, resp, 0, pages_keys_show);
}

static int pages_post_keys_add(struct http_request *req, struct http_response *resp)
{
	return pages_guarded(req, resp, PAGES_NEED_CSRF, pages_keys_add);
}

static int pages_post_keys_remove(struct http_request *req, struct http_response *resp)
{
	return pages_guarded(req, resp, PAGES_NEED_CSRF, pages_keys_remove);
}

static int pages_get_servers(struct http_request *req, struct http_response *resp)
{
	return pages_guarded(req, resp, 0, pages_servers_show);
}

static int pages_post_servers_enable(struct http_request *req, struct http_response *resp)
{
	return pages_guarded(req, resp, PAGES_NEED_CSRF, pages_servers_enable);
}

static int pages_get_ssh_config(struct http_request *req, struct http_response *resp)
{
	return pages_guarded(req, resp, 0, pages_ssh_config);
}

static int pages_get_admin(struct http_request *req, struct http_response *resp)
{
	return pages_guarded(req, resp, PAGES_NEED_ADMIN, pages_admin_show);
}

static int pages_post_admin_member(struct http_request *req, struct http_response *resp)
{
	return pages_guarded(req, resp, PAGES_NEED_ADMIN | PAGES_NEED_CSRF, pages_admin_member);
}

const struct http_route pages_routes[] = {
	{ "GET", "/static/style.css", pages_style },
	{ "GET", "/static/", monitor_pages_static },
	{ "GET", "/monitor", monitor_pages_overview },
	{ "GET", "/monitor/servers/", monitor_pages_server },
	{ "GET", "/monitor/usage", monitor_pages_usage },
	{ "GET", "/monitor/usage.csv", monitor_pages_usage_csv },
	{ "GET", "/me", monitor_pages_me },
	{ "GET", "/login", pages_get_login },
	{ "POST", "/login", pages_post_login },
	{ "POST", "/logout", pages_post_logout },
	{ "GET", "/keys", pages_get_keys },
	{ "POST", "/keys/add", pages_post_keys_add },
	{ "POST", "/keys/remove", pages_post_keys_remove },
	{ "GET", "/servers", pages_get_servers },
	{ "POST", "/servers/enable", pages_post_servers_enable },
	{ "GET", "/ssh-config", pages_get_ssh_config },
	{ "GET", "/admin", pages_get_admin },
	{ "POST", "/admin/member", pages_post_admin_member },
	/* Last: as a prefix it catches every other path (404 there). */
	{ "GET", "/", pages_root },
	{ NULL, NULL, NULL },
};
