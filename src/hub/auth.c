/* SPDX-License-Identifier: MIT */
/*
 * Who signs in to gpubox-hub: a member name and a password checked against
 * the lab's directory (OpenLDAP's libldap) or against the hub's own
 * accounts (Argon2id hashes in hub.db, libsodium).
 *
 * The scripts this replaces got sign-in wrong in four ways, and each has
 * its guard here:
 * - filter injection: every value put into a filter is escaped with
 *   libldap's RFC 4515 function, every value put into a DN with its
 *   RFC 4514 writer, and the name must be a valid member name anyway;
 * - the anonymous-bind trap: a simple bind with a DN and an empty password
 *   is an "unauthenticated" bind that some servers accept, so an empty,
 *   all-blank or oversized password is refused before any bind;
 * - plain ldap:// without TLS: StartTLS is required (and the certificate
 *   checked) unless the directory is on this machine (loopback, ldapi://);
 * - no rate limit: failures are counted per member and address, per
 *   address, and per member in a bounded table (see "throttling" below);
 *   past a limit the directory is not even asked.
 *
 * Every sign-in opens a connection of its own: no shared LDAP handle, so no
 * lock around libldap, and a directory that restarts is simply reached
 * again.  A directory that cannot be reached is AUTH_UNAVAILABLE, never a
 * success.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ldap.h>
#include <sodium.h>

#include "cleanup.h"
#include "fsutil.h"
#include "hub.h"
#include "log.h"
#include "validate.h"
#include "banned.h"

/* Longer passwords are refused: no directory needs them, and they make
 * each Argon2id or bind attempt cost more than it should. */
#define AUTH_PASSWORD_MAX 1024
/* Connecting and each operation: a directory slower than this is down. */
#define AUTH_TIMEOUT_SECONDS 5
/* The throttle remembers this many members, addresses and pairs at most. */
#define AUTH_THROTTLE_SLOTS 4096
#define AUTH_THROTTLE_KEY_MAX 96
#define AUTH_FILTER_MAX 4096
#define AUTH_BIND_PASSWORD_MAX 1024

/*
 * libsodium's "interactive" limits (2 passes, 64 MiB), not its "moderate"
 * ones (3 passes, 256 MiB, ~0.7 s): the hub verifies passwords on its HTTP
 * threads, so a few sign-ins at once at 256 MiB each would exhaust a small
 * VM's memory, and online guessing is already bounded by the throttle.
 * libsodium recommends these limits for interactive, online logins.
 */
#define AUTH_PWHASH_OPSLIMIT crypto_pwhash_OPSLIMIT_INTERACTIVE
#define AUTH_PWHASH_MEMLIMIT crypto_pwhash_MEMLIMIT_INTERACTIVE

enum auth_scheme {
	AUTH_SCHEME_LDAP,          /* ldap://: StartTLS unless loopback */
	AUTH_SCHEME_LDAPS,         /* ldaps://: TLS from the first byte */
	AUTH_SCHEME_LDAPI,         /* ldapi://: a Unix socket on this machine */
};

struct auth_slot {
	char key[AUTH_THROTTLE_KEY_MAX];  /* "p:NAME ADDRESS", "a:ADDRESS", "m:NAME"; "" = free */
	uint32_t failures;                /* in the window that began at since */
	long long since;
	long long locked_until;
	long long touched;                /* for evicting the oldest */
};

struct auth {
	struct hub_config cfg;
	struct hubdb *db;
	bool ldap;
	enum auth_scheme scheme;
	bool starttls;                    /* StartTLS on every connection */
	char bind_password[AUTH_BIND_PASSWORD_MAX + 1];
	char dummy_hash[crypto_pwhash_STRBYTES];

	pthread_mutex_t lock;             /* guards slots */
	struct auth_slot *slots;
};

static void auth_ldap_unbindp(LDAP **ld)
{
	if (*ld)
		ldap_unbind_ext_s(*ld, NULL, NULL);
}

static void auth_ldap_msgfreep(LDAPMessage **msg)
{
	if (*msg)
		ldap_msgfree(*msg);
}

static void auth_ldap_memfreep(char **p)
{
	if (*p)
		ldap_memfree(*p);
}

#define __do_ldap_unbind  __attribute__((cleanup(auth_ldap_unbindp)))
#define __do_ldap_msgfree __attribute__((cleanup(auth_ldap_msgfreep)))
#define __do_ldap_memfree __attribute__((cleanup(auth_ldap_memfreep)))

static long long auth_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec;
}

/* ---- escaping ------------------------------------------------------------ */

static int auth_copy_out(const char *text, size_t n, char *out, size_t len)
{
	if (n >= len)
		return -ENOSPC;
	memcpy(out, text, n);
	out[n] = '\0';
	return 0;
}

/* RFC 4515: the value as it may stand in a filter, e.g. "a)(" -> "a\29\28". */
static int auth_escape_filter_len(const char *value, size_t n, char *out, size_t len)
{
	struct berval in = { .bv_len = n, .bv_val = (char *)value };
	struct berval escaped = { 0 };
	int ret;

	if (ldap_bv2escaped_filter_value(&in, &escaped) != 0)
		return -ENOMEM;
	/* An empty value comes back as no string at all. */
	ret = auth_copy_out(escaped.bv_val ? escaped.bv_val : "", escaped.bv_len, out, len);
	ber_memfree(escaped.bv_val);
	return ret;
}

/*
 * RFC 4514: the value as it may stand in a DN, e.g. "a,b" -> "a\2Cb",
 * "#a" -> "\23a".  libldap escapes values only as part of an RDN, so one
 * is built ("x=VALUE") and the "x=" taken off again.
 */
static int auth_escape_dn_len(const char *value, size_t n, char *out, size_t len)
{
	LDAPAVA ava = {
		.la_attr = { .bv_len = 1, .bv_val = (char *)"x" },
		.la_value = { .bv_len = n, .bv_val = (char *)value },
		.la_flags = LDAP_AVA_STRING,
	};
	LDAPAVA *rdn[] = { &ava, NULL };
	struct berval written = { 0 };
	int ret;

	/* Fails for a value that is not UTF-8: a DN is UTF-8 text. */
	if (ldap_rdn2bv(rdn, &written, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS)
		return -EINVAL;
	if (written.bv_len < 2 || memcmp(written.bv_val, "x=", 2) != 0)
		ret = -EPROTO;
	else
		ret = auth_copy_out(written.bv_val + 2, written.bv_len - 2, out, len);
	ber_memfree(written.bv_val);
	return ret;
}

int auth_escape_filter(const char *value, char *out, size_t len)
{
	if (!value || !out || len == 0)
		return -EINVAL;
	return auth_escape_filter_len(value, strlen(value), out, len);
}

int auth_escape_dn(const char *value, char *out, size_t len)
{
	if (!value || !out || len == 0)
		return -EINVAL;
	return auth_escape_dn_len(value, strlen(value), out, len);
}

/* out = template with every "%s" replaced by value (already escaped).  The
 * template comes from the configuration and is never a printf format. */
static int auth_fill_template(const char *template, const char *value, char *out, size_t len)
{
	size_t o = 0, vlen = strlen(value);

	for (const char *p = template; *p; p++) {
		if (p[0] == '%' && p[1] == 's') {
			if (o + vlen >= len)
				return -ENOSPC;
			memcpy(out + o, value, vlen);
			o += vlen;
			p++;
			continue;
		}
		if (o + 1 >= len)
			return -ENOSPC;
		out[o++] = *p;
	}
	out[o] = '\0';
	return 0;
}

/* ---- throttling ---------------------------------------------------------- */

/*
 * Three counts of failures, each over login_fail_window seconds:
 *
 * - per member and address ("p:"): login_fail_limit failures lock that
 *   pair for the window.  Guessing one member's password from one place
 *   stops there, and only there: a lock an attacker causes never reaches
 *   the member's own address.  (A lock per member alone, as before, let
 *   anyone lock any member out from everywhere, for ever, by failing five
 *   times every window.)
 * - per address ("a:"): AUTH_ADDRESS_FACTOR times as many, over every
 *   name, lock the address: one place trying many names.  Higher than the
 *   pair's limit because a lab's NAT puts colleagues behind one address,
 *   and one member's typos must not lock the others out.
 * - per member, over every address ("m:"): guessing spread over many
 *   addresses.  Past AUTH_MEMBER_FACTOR times the limit the member is not
 *   locked (that would be the same denial again, for whoever has enough
 *   addresses) but slowed: each address may then try that member once
 *   per window / limit seconds, the member's own included.  The member
 *   still signs in at the first try; a guesser with N addresses gets N
 *   tries per interval instead of N times the limit per window.
 *
 * An IPv6 client counts by its /64: one host usually holds a whole /64
 * and could otherwise take a new address for every try.
 */
#define AUTH_ADDRESS_FACTOR 4
#define AUTH_MEMBER_FACTOR 10

/* The slot of key, or NULL; with create, a free slot (or the oldest one that
 * is not locked, or else the oldest of all) is taken for it. */
static struct auth_slot *auth_slot_find(struct auth *a, const char *key, bool create, long long now)
{
	struct auth_slot *free_slot = NULL, *oldest_unlocked = NULL, *oldest = NULL, *s;

	for (size_t i = 0; i < AUTH_THROTTLE_SLOTS; i++) {
		s = &a->slots[i];
		if (!s->key[0]) {
			if (!free_slot)
				free_slot = s;
			continue;
		}
		if (strcmp(s->key, key) == 0)
			return s;
		if (!oldest || s->touched < oldest->touched)
			oldest = s;
		if (s->locked_until <= now && (!oldest_unlocked || s->touched < oldest_unlocked->touched))
			oldest_unlocked = s;
	}
	if (!create)
		return NULL;
	s = free_slot ? free_slot : oldest_unlocked ? oldest_unlocked : oldest;
	memset(s, 0, sizeof(*s));
	snprintf(s->key, sizeof(s->key), "%s", key);
	s->since = now;
	return s;
}

static bool auth_slot_locked(struct auth *a, const char *key, long long now)
{
	struct auth_slot *s;

	if (!key[0])
		return false;
	s = auth_slot_find(a, key, false, now);
	return s && s->locked_until > now;
}

/* The failures of key in the current window (0 when it has passed). */
static uint32_t auth_slot_failures(struct auth *a, const char *key, long long now)
{
	struct auth_slot *s = key[0] ? auth_slot_find(a, key, false, now) : NULL;

	if (!s || now - s->since >= (long long)a->cfg.login_fail_window)
		return 0;
	return s->failures;
}

/* Whether key made an attempt less than interval seconds ago. */
static bool auth_slot_recent(struct auth *a, const char *key, long long interval, long long now)
{
	struct auth_slot *s = key[0] ? auth_slot_find(a, key, false, now) : NULL;

	return s && now - s->touched < interval;
}

/* One more failure for key; limit failures (0: no limit) lock it for the
 * window.  The count so far, after this one; 0 for no key. */
static uint32_t auth_slot_fail(struct auth *a, const char *key, uint32_t limit, long long now)
{
	struct auth_slot *s;

	if (!key[0])
		return 0;
	s = auth_slot_find(a, key, true, now);
	if (now - s->since >= (long long)a->cfg.login_fail_window) {
		s->failures = 0;
		s->since = now;
	}
	s->failures++;
	s->touched = now;
	if (limit && s->failures >= limit && s->locked_until <= now)
		s->locked_until = now + (long long)a->cfg.login_fail_window;
	return s->failures;
}

/* Take back a failure counted in advance; below limit again, the lock it
 * caused goes too. */
static void auth_slot_unfail(struct auth *a, const char *key, uint32_t limit, long long now)
{
	struct auth_slot *s;

	if (!key[0])
		return;
	s = auth_slot_find(a, key, false, now);
	if (!s || s->failures == 0)
		return;
	s->failures--;
	if (s->failures < limit)
		s->locked_until = 0;
}

static void auth_slot_forget(struct auth *a, const char *key, long long now)
{
	struct auth_slot *s;

	if (!key[0])
		return;
	s = auth_slot_find(a, key, false, now);
	if (s)
		memset(s, 0, sizeof(*s));
}

/* One sign-in attempt as the throttle sees it; a key is "" when the attempt
 * has no member name (or no address). */
struct auth_attempt {
	char pair_key[AUTH_THROTTLE_KEY_MAX];     /* "p:NAME ADDRESS" */
	char address_key[AUTH_THROTTLE_KEY_MAX];  /* "a:ADDRESS" */
	char member_key[AUTH_THROTTLE_KEY_MAX];   /* "m:NAME" */
	uint32_t pair_failures;                   /* the counts with this attempt's */
	uint32_t address_failures;
	uint32_t member_failures;
};

static uint32_t auth_pair_limit(const struct auth *a)
{
	return a->cfg.login_fail_limit;
}

static uint32_t auth_address_limit(const struct auth *a)
{
	return a->cfg.login_fail_limit * AUTH_ADDRESS_FACTOR;
}

static uint32_t auth_member_limit(const struct auth *a)
{
	return a->cfg.login_fail_limit * AUTH_MEMBER_FACTOR;
}

/* How often one address may try a member who is being guessed at. */
static long long auth_slow_interval(const struct auth *a)
{
	long long interval = (long long)a->cfg.login_fail_window / (long long)a->cfg.login_fail_limit;

	return interval > 0 ? interval : 1;
}

/* The address as the throttle counts it: an IPv6 address by its /64. */
static void auth_address_key(const char *address, char *out, size_t len)
{
	struct in6_addr a6;
	char text[INET6_ADDRSTRLEN];

	if (inet_pton(AF_INET6, address, &a6) == 1 && !IN6_IS_ADDR_V4MAPPED(&a6)) {
		memset(&a6.s6_addr[8], 0, 8);
		if (inet_ntop(AF_INET6, &a6, text, sizeof(text))) {
			snprintf(out, len, "%s/64", text);
			return;
		}
	}
	snprintf(out, len, "%s", address);
}

static void auth_attempt_keys(struct auth_attempt *t, const char *name, const char *client_address)
{
	char address[INET6_ADDRSTRLEN + 8] = "";

	if (client_address && client_address[0])
		auth_address_key(client_address, address, sizeof(address));
	if (address[0])
		snprintf(t->address_key, sizeof(t->address_key), "a:%s", address);
	if (!name)
		return;
	snprintf(t->member_key, sizeof(t->member_key), "m:%s", name);
	if (address[0])
		snprintf(t->pair_key, sizeof(t->pair_key), "p:%s %s", name, address);
}

/*
 * Whether the attempt may go on.  Its failure is counted now, in the same
 * locked step as the check, and taken back if it does not fail: otherwise
 * many attempts sent at once would all pass the check before the first
 * failure is counted.
 */
static bool auth_admit(struct auth *a, struct auth_attempt *t)
{
	long long now = auth_now();
	bool admitted = false;

	if (a->cfg.login_fail_limit == 0)
		return true;
	pthread_mutex_lock(&a->lock);
	if (!auth_slot_locked(a, t->pair_key, now) && !auth_slot_locked(a, t->address_key, now) &&
	    !(auth_slot_failures(a, t->member_key, now) >= auth_member_limit(a) &&
	      auth_slot_recent(a, t->pair_key, auth_slow_interval(a), now))) {
		t->pair_failures = auth_slot_fail(a, t->pair_key, auth_pair_limit(a), now);
		t->address_failures = auth_slot_fail(a, t->address_key, auth_address_limit(a), now);
		t->member_failures = auth_slot_fail(a, t->member_key, 0, now);
		admitted = true;
	}
	pthread_mutex_unlock(&a->lock);
	return admitted;
}

static void auth_settle(struct auth *a, const struct auth_attempt *t, enum auth_result result)
{
	long long now = auth_now();

	if (a->cfg.login_fail_limit == 0)
		return;
	pthread_mutex_lock(&a->lock);
	if (result == AUTH_OK) {
		/* The member at this address starts afresh; the address keeps
		 * the failures it made on other names, and the member those made
		 * elsewhere (a success here says nothing of them). */
		auth_slot_forget(a, t->pair_key, now);
		auth_slot_unfail(a, t->address_key, auth_address_limit(a), now);
		auth_slot_unfail(a, t->member_key, 0, now);
	} else if (result == AUTH_UNAVAILABLE) {
		/* A directory that is down is nobody's failure. */
		auth_slot_unfail(a, t->pair_key, auth_pair_limit(a), now);
		auth_slot_unfail(a, t->address_key, auth_address_limit(a), now);
		auth_slot_unfail(a, t->member_key, 0, now);
	}
	pthread_mutex_unlock(&a->lock);
	if (result != AUTH_BAD_CREDENTIALS)
		return;
	/* Once per lock, not per attempt: a flood must not flood the log. */
	if (t->pair_failures == auth_pair_limit(a))
		log_warn("%u failed sign-ins for member %s from %s: locked there for %u s",
			 t->pair_failures, t->member_key + 2, t->address_key + 2, a->cfg.login_fail_window);
	if (t->address_failures == auth_address_limit(a))
		log_warn("%u failed sign-ins from %s: locked for %u s", t->address_failures,
			 t->address_key + 2, a->cfg.login_fail_window);
	if (t->member_failures == auth_member_limit(a))
		log_warn("%u failed sign-ins for member %s in %u s, from several addresses: each address "
			 "may now try that member once every %lld s", t->member_failures, t->member_key + 2,
			 a->cfg.login_fail_window, auth_slow_interval(a));
}

/* ---- what is refused before any directory is asked ---------------------- */

/* Empty, all-blank and oversized passwords.  (A NUL byte cannot reach here:
 * form_parse() refuses a body that holds one.) */
static bool auth_password_acceptable(const char *password)
{
	size_t len;

	if (!password)
		return false;
	len = strnlen(password, AUTH_PASSWORD_MAX + 1);
	if (len == 0 || len > AUTH_PASSWORD_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isspace((unsigned char)password[i]))
			return true;
	return false;
}

/* How many bytes the UTF-8 sequence that starts with c has (1 for a byte
 * that cannot start one: it is then kept alone). */
static size_t auth_utf8_length(unsigned char c)
{
	if (c >= 0xf0)
		return 4;
	if (c >= 0xe0)
		return 3;
	if (c >= 0xc0)
		return 2;
	return 1;
}

/* Text from the directory shown on pages: control characters dropped, and
 * when it is cut to fit, cut between characters, not inside one. */
static void auth_copy_display(const char *value, size_t n, char *out, size_t len)
{
	size_t o = 0, start;

	if (len == 0)
		return;
	for (size_t i = 0; i < n && o + 1 < len; i++) {
		unsigned char c = (unsigned char)value[i];

		if (c < 0x20 || c == 0x7f)
			continue;
		out[o++] = (char)c;
	}
	/* Back to where the last character starts; drop it if incomplete. */
	start = o;
	while (start > 0 && o - start < 4 && ((unsigned char)out[start - 1] & 0xc0) == 0x80)
		start--;
	if (start > 0 && o - start < 4) {
		start--;
		if (o - start < auth_utf8_length((unsigned char)out[start]))
			o = start;
	}
	out[o] = '\0';
}

/* ---- LDAP ---------------------------------------------------------------- */

static bool auth_host_is_loopback(const char *host)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (!host || !host[0])
		return false;
	if (strcasecmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return false;
}

/* One URI of ldap_uri: its scheme, and whether plain ldap:// is allowed. */
static int auth_check_one_uri(const char *uri, bool starttls, enum auth_scheme *scheme)
{
	LDAPURLDesc *lud = NULL;
	int ret = 0;

	if (ldap_url_parse(uri, &lud) != LDAP_URL_SUCCESS)
		return log_error_errno(-EINVAL, 0, "ldap_uri: \"%s\" is not an LDAP URL", uri);
	if (strcasecmp(lud->lud_scheme, "ldaps") == 0) {
		*scheme = AUTH_SCHEME_LDAPS;
	} else if (strcasecmp(lud->lud_scheme, "ldapi") == 0) {
		*scheme = AUTH_SCHEME_LDAPI;
	} else if (strcasecmp(lud->lud_scheme, "ldap") == 0) {
		*scheme = AUTH_SCHEME_LDAP;
		if (!starttls && !auth_host_is_loopback(lud->lud_host))
			ret = log_error_errno(-EINVAL, 0,
					      "ldap_uri: %s would send passwords in clear over the network; "
					      "set ldap_starttls = yes or use ldaps:// (plain ldap:// is "
					      "allowed only to 127.0.0.1, ::1 or localhost)", uri);
	} else {
		ret = log_error_errno(-EINVAL, 0, "ldap_uri: \"%s\": use ldap://, ldaps:// or ldapi://", uri);
	}
	ldap_free_urldesc(lud);
	return ret;
}

/* ldap_uri may list several servers, separated by blanks; they must share
 * one scheme, so that whether StartTLS is needed does not depend on which
 * answers. */
static int auth_check_uris(const struct hub_config *cfg, enum auth_scheme *scheme)
{
	char copy[CONFIG_TEXT_MAX];
	char *save = NULL;
	bool first = true;
	int ret;

	snprintf(copy, sizeof(copy), "%s", cfg->ldap_uri);
	for (char *uri = strtok_r(copy, " \t", &save); uri; uri = strtok_r(NULL, " \t", &save)) {
		enum auth_scheme this_scheme;

		ret = auth_check_one_uri(uri, cfg->ldap_starttls, &this_scheme);
		if (ret < 0)
			return ret;
		if (!first && this_scheme != *scheme)
			return log_error_errno(-EINVAL, 0, "ldap_uri: all the servers must use the same scheme");
		*scheme = this_scheme;
		first = false;
	}
	if (first)
		return log_error_errno(-EINVAL, 0, "auth = ldap needs ldap_uri");
	return 0;
}

static int auth_read_bind_password(struct auth *a)
{
	__do_free char *data = NULL;
	struct stat st;
	size_t len = 0;
	int ret;

	if (!a->cfg.ldap_bind_dn[0] && !a->cfg.ldap_bind_password_file[0])
		return 0;
	if (!a->cfg.ldap_bind_dn[0] || !a->cfg.ldap_bind_password_file[0])
		return log_error_errno(-EINVAL, 0, "ldap_bind_dn and ldap_bind_password_file go together");
	if (stat(a->cfg.ldap_bind_password_file, &st) == 0 && (st.st_mode & 0077))
		log_warn("ldap_bind_password_file %s can be read by others than its owner: chmod 600 it",
			 a->cfg.ldap_bind_password_file);
	ret = fsutil_read_file(a->cfg.ldap_bind_password_file, AUTH_BIND_PASSWORD_MAX + 2, &data, &len);
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot read ldap_bind_password_file %s",
				       a->cfg.ldap_bind_password_file);
	while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
		data[--len] = '\0';
	ret = 0;
	if (len == 0 || len > AUTH_BIND_PASSWORD_MAX || memchr(data, '\0', len))
		ret = log_error_errno(-EINVAL, 0,
				      "ldap_bind_password_file %s must hold one password of 1 to %d bytes "
				      "(an empty one would bind anonymously)",
				      a->cfg.ldap_bind_password_file, AUTH_BIND_PASSWORD_MAX);
	else
		memcpy(a->bind_password, data, len + 1);
	sodium_memzero(data, len);
	return ret;
}

static int auth_open_ldap(struct auth *a)
{
	struct hub_config *cfg = &a->cfg;
	int version, ret;

	/* libldap initialises its global state (and Cyrus SASL's) on first
	 * use: let that happen here, once, before the HTTP threads start. */
	ldap_get_option(NULL, LDAP_OPT_PROTOCOL_VERSION, &version);
	ret = auth_check_uris(cfg, &a->scheme);
	if (ret < 0)
		return ret;
	a->starttls = cfg->ldap_starttls && a->scheme == AUTH_SCHEME_LDAP;
	if (!cfg->ldap_display_attr[0])
		snprintf(cfg->ldap_display_attr, sizeof(cfg->ldap_display_attr), "cn");
	if (!cfg->ldap_filter[0])
		snprintf(cfg->ldap_filter, sizeof(cfg->ldap_filter), "(uid=%%s)");
	if (cfg->ldap_dn_template[0] && !strstr(cfg->ldap_dn_template, "%s"))
		return log_error_errno(-EINVAL, 0, "ldap_dn_template must hold %%s where the member name goes");
	if (!cfg->ldap_dn_template[0] && !strstr(cfg->ldap_filter, "%s"))
		return log_error_errno(-EINVAL, 0, "ldap_filter must hold %%s where the member name goes");
	if (!cfg->ldap_base[0] && (!cfg->ldap_dn_template[0] || cfg->admin_group[0]))
		return log_error_errno(-EINVAL, 0, "ldap_base is needed to find members and the admin group");
	if (cfg->ldap_ca_file[0] && access(cfg->ldap_ca_file, R_OK) < 0)
		return log_error_errno(-errno, errno, "cannot read ldap_ca_file %s", cfg->ldap_ca_file);
	return auth_read_bind_password(a);
}

/* A random password's hash: what an unknown member's password is checked
 * against, so that the answer takes as long as for a member who exists. */
static int auth_open_local(struct auth *a)
{
	unsigned char random_password[32];
	int ret;

	if (!a->db)
		return log_error_errno(-EINVAL, 0, "auth = local needs the hub's database");
	randombytes_buf(random_password, sizeof(random_password));
	ret = crypto_pwhash_str(a->dummy_hash, (const char *)random_password, sizeof(random_password),
				AUTH_PWHASH_OPSLIMIT, AUTH_PWHASH_MEMLIMIT);
	sodium_memzero(random_password, sizeof(random_password));
	if (ret != 0)
		return log_error_errno(-ENOMEM, ENOMEM, "cannot compute a password hash");
	return 0;
}

int auth_open(const struct hub_config *cfg, struct hubdb *db, struct auth **out)
{
	struct auth *a;
	int ret;

	if (!cfg || !out)
		return -EINVAL;
	*out = NULL;
	if (sodium_init() < 0)
		return log_error_errno(-EIO, 0, "libsodium cannot be initialised");
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	ret = pthread_mutex_init(&a->lock, NULL);
	if (ret != 0) {
		free(a);
		return -ret;
	}
	a->cfg = *cfg;
	a->db = db;
	a->ldap = strcmp(cfg->auth, "ldap") == 0;
	a->slots = calloc(AUTH_THROTTLE_SLOTS, sizeof(*a->slots));
	if (!a->slots)
		ret = -ENOMEM;
	else if (a->ldap)
		ret = auth_open_ldap(a);
	else if (strcmp(cfg->auth, "local") == 0)
		ret = auth_open_local(a);
	else
		ret = log_error_errno(-EINVAL, 0, "auth = \"%s\": use local or ldap", cfg->auth);
	if (ret < 0) {
		auth_close(a);
		return ret;
	}
	*out = a;
	return 0;
}

void auth_close(struct auth *a)
{
	if (!a)
		return;
	pthread_mutex_destroy(&a->lock);
	free(a->slots);
	sodium_memzero(a->bind_password, sizeof(a->bind_password));
	free(a);
}

/* Why the last operation on ld failed, for the log, with a hint (or NULL)
 * on what to check. */
static void auth_ldap_log(struct auth *a, LDAP *ld, int rc, const char *what, const char *hint)
{
	__do_ldap_memfree char *diagnostic = NULL;

	if (ld)
		ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diagnostic);
	log_error("LDAP %s with %s failed: %s%s%s%s%s", what, a->cfg.ldap_uri, ldap_err2string(rc),
		  diagnostic && diagnostic[0] ? ": " : "", diagnostic ? diagnostic : "", hint ? "; " : "",
		  hint ? hint : "");
}

/* TLS settings on this handle only: the certificate is always checked
 * (whatever ldap.conf says), against ldap_ca_file when set. */
static int auth_ldap_tls_options(struct auth *a, LDAP *ld)
{
	int demand = LDAP_OPT_X_TLS_DEMAND, tls12 = LDAP_OPT_X_TLS_PROTOCOL_TLS1_2, client = 0;

	if (ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_X_TLS_PROTOCOL_MIN, &tls12) != LDAP_OPT_SUCCESS)
		return -EIO;
	if (a->cfg.ldap_ca_file[0] &&
	    ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, a->cfg.ldap_ca_file) != LDAP_OPT_SUCCESS)
		return -EIO;
	/* The options above take effect in a new TLS context. */
	if (ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &client) != LDAP_OPT_SUCCESS)
		return -EIO;
	return 0;
}

/* A connection to the directory, TLS in place where required; 0 or -EIO
 * (logged: the directory is unavailable). */
static int auth_ldap_connect(struct auth *a, LDAP **out)
{
	__do_ldap_unbind LDAP *ld = NULL;
	struct timeval timeout = { .tv_sec = AUTH_TIMEOUT_SECONDS };
	int version = LDAP_VERSION3, timelimit = AUTH_TIMEOUT_SECONDS, rc;

	rc = ldap_initialize(&ld, a->cfg.ldap_uri);
	if (rc != LDAP_SUCCESS) {
		auth_ldap_log(a, NULL, rc, "initialisation", NULL);
		return -EIO;
	}
	if (ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &timeout) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_TIMEOUT, &timeout) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_TIMELIMIT, &timelimit) != LDAP_OPT_SUCCESS ||
	    /* A referral would be followed with our credentials to any server. */
	    ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF) != LDAP_OPT_SUCCESS)
		return log_error_errno(-EIO, 0, "LDAP: cannot set the connection's options");
	if ((a->starttls || a->scheme == AUTH_SCHEME_LDAPS) && auth_ldap_tls_options(a, ld) < 0)
		return log_error_errno(-EIO, 0, "LDAP: cannot set up TLS (ldap_ca_file %s)",
				       a->cfg.ldap_ca_file[0] ? a->cfg.ldap_ca_file : "not set");
	rc = ldap_connect(ld);
	if (rc != LDAP_SUCCESS) {
		/* libldap reports a refused certificate as "can't contact". */
		auth_ldap_log(a, ld, rc, "connection", a->scheme == AUTH_SCHEME_LDAPS ?
			      "or its certificate was refused: is it signed by ldap_ca_file, for this host name?" :
			      NULL);
		return -EIO;
	}
	if (a->starttls) {
		rc = ldap_start_tls_s(ld, NULL, NULL);
		if (rc != LDAP_SUCCESS) {
			auth_ldap_log(a, ld, rc, "StartTLS (ldap_starttls = yes)",
				      "does the server offer StartTLS? is its certificate signed by "
				      "ldap_ca_file, for this host name?");
			return -EIO;
		}
	}
	*out = move_ptr(ld);
	return 0;
}

static int auth_ldap_simple_bind(LDAP *ld, const char *dn, const char *password)
{
	struct berval cred = { .bv_len = strlen(password), .bv_val = (char *)password };

	return ldap_sasl_bind_s(ld, dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
}

/* A failed result code the directory gave for the member's own bind:
 * wrong password, unknown or locked entry... are the member's failure;
 * the others (no answer, TLS demanded, busy) are the directory's. */
static bool auth_ldap_is_outage(int rc)
{
	switch (rc) {
	case LDAP_SERVER_DOWN:
	case LDAP_TIMEOUT:
	case LDAP_CONNECT_ERROR:
	case LDAP_LOCAL_ERROR:
	case LDAP_ENCODING_ERROR:
	case LDAP_DECODING_ERROR:
	case LDAP_NO_MEMORY:
	case LDAP_PROTOCOL_ERROR:
	case LDAP_BUSY:
	case LDAP_UNAVAILABLE:
	case LDAP_CONFIDENTIALITY_REQUIRED:
	case LDAP_STRONG_AUTH_REQUIRED:
	case LDAP_OTHER:
		return true;
	default:
		return false;
	}
}

/*
 * The member's DN: from ldap_dn_template, or by searching ldap_base with
 * ldap_filter (bound as ldap_bind_dn, or anonymously).  0; -ENOENT when
 * not exactly one entry matches; -EIO when the directory failed (logged).
 */
static int auth_ldap_find_dn(struct auth *a, LDAP *ld, const char *name, char *dn, size_t len)
{
	__do_ldap_msgfree LDAPMessage *res = NULL;
	__do_ldap_memfree char *found = NULL;
	struct timeval timeout = { .tv_sec = AUTH_TIMEOUT_SECONDS };
	char *no_attributes[] = { (char *)LDAP_NO_ATTRS, NULL };
	char escaped[3 * MEMBER_NAME_MAX + 1], filter[AUTH_FILTER_MAX];
	int rc;

	if (a->cfg.ldap_dn_template[0]) {
		if (auth_escape_dn(name, escaped, sizeof(escaped)) < 0 ||
		    auth_fill_template(a->cfg.ldap_dn_template, escaped, dn, len) < 0)
			return -ENOENT;
		return 0;
	}
	if (auth_escape_filter(name, escaped, sizeof(escaped)) < 0 ||
	    auth_fill_template(a->cfg.ldap_filter, escaped, filter, sizeof(filter)) < 0)
		return -ENOENT;
	if (a->cfg.ldap_bind_dn[0]) {
		rc = auth_ldap_simple_bind(ld, a->cfg.ldap_bind_dn, a->bind_password);
		if (rc != LDAP_SUCCESS) {
			auth_ldap_log(a, ld, rc, "bind as ldap_bind_dn for the search", NULL);
			return -EIO;
		}
	}
	/* A size limit of 2: a second match is enough to refuse. */
	rc = ldap_search_ext_s(ld, a->cfg.ldap_base, LDAP_SCOPE_SUBTREE, filter, no_attributes, 0, NULL,
			       NULL, &timeout, 2, &res);
	if (rc == LDAP_SIZELIMIT_EXCEEDED) {
		log_warn("LDAP: more than one entry matches %s below %s; nobody signs in with that name",
			 filter, a->cfg.ldap_base);
		return -ENOENT;
	}
	if (rc == LDAP_NO_SUCH_OBJECT)
		return -ENOENT;
	if (rc != LDAP_SUCCESS) {
		auth_ldap_log(a, ld, rc, "search for the member", NULL);
		return -EIO;
	}
	if (ldap_count_entries(ld, res) != 1)
		return -ENOENT;
	found = ldap_get_dn(ld, ldap_first_entry(ld, res));
	if (!found || auth_copy_out(found, strlen(found), dn, len) < 0)
		return -ENOENT;
	return 0;
}

/* display_attr of the member's own entry, read as the member; the name
 * when the directory has none. */
static void auth_ldap_display_name(struct auth *a, LDAP *ld, const char *dn, const char *name,
				   char *out, size_t len)
{
	__do_ldap_msgfree LDAPMessage *res = NULL;
	struct timeval timeout = { .tv_sec = AUTH_TIMEOUT_SECONDS };
	char *attrs[] = { a->cfg.ldap_display_attr, NULL };
	struct berval **values = NULL;
	LDAPMessage *entry;

	snprintf(out, len, "%s", name);
	if (ldap_search_ext_s(ld, dn, LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0, NULL, NULL, &timeout, 1,
			      &res) != LDAP_SUCCESS)
		return;
	entry = ldap_first_entry(ld, res);
	if (entry)
		values = ldap_get_values_len(ld, entry, a->cfg.ldap_display_attr);
	if (values && values[0] && values[0]->bv_len > 0)
		auth_copy_display(values[0]->bv_val, values[0]->bv_len, out, len);
	if (!out[0])
		snprintf(out, len, "%s", name);
	ldap_value_free_len(values);
}

/* Whether the member is in admin_group: a posixGroup listing the name in
 * memberUid, or a groupOfNames listing the DN in member. */
static bool auth_ldap_is_admin(struct auth *a, LDAP *ld, const char *name, const char *dn)
{
	__do_ldap_msgfree LDAPMessage *res = NULL;
	__do_free char *dn_escaped = NULL;
	struct timeval timeout = { .tv_sec = AUTH_TIMEOUT_SECONDS };
	char *no_attributes[] = { (char *)LDAP_NO_ATTRS, NULL };
	char group[3 * CONFIG_NAME_MAX + 1], member[3 * MEMBER_NAME_MAX + 1], filter[AUTH_FILTER_MAX];
	size_t dn_room = 3 * strlen(dn) + 1;
	int rc, n;

	if (!a->cfg.admin_group[0])
		return false;
	dn_escaped = malloc(dn_room);
	if (!dn_escaped || auth_escape_filter(a->cfg.admin_group, group, sizeof(group)) < 0 ||
	    auth_escape_filter(name, member, sizeof(member)) < 0 ||
	    auth_escape_filter(dn, dn_escaped, dn_room) < 0)
		return false;
	n = snprintf(filter, sizeof(filter),
		     "(&(cn=%s)(|(&(objectClass=posixGroup)(memberUid=%s))"
		     "(&(objectClass=groupOfNames)(member=%s))))",
		     group, member, dn_escaped);
	if (n < 0 || (size_t)n >= sizeof(filter))
		return false;
	rc = ldap_search_ext_s(ld, a->cfg.ldap_base, LDAP_SCOPE_SUBTREE, filter, no_attributes, 0, NULL, NULL,
			       &timeout, 1, &res);
	if (rc != LDAP_SUCCESS && rc != LDAP_SIZELIMIT_EXCEEDED) {
		auth_ldap_log(a, ld, rc, "search for the admin group", NULL);
		return false;
	}
	return ldap_count_entries(ld, res) > 0;
}

static enum auth_result auth_ldap_login(struct auth *a, const char *name, const char *password,
					char *display_name, size_t len, bool *is_admin)
{
	__do_ldap_unbind LDAP *ld = NULL;
	char dn[AUTH_FILTER_MAX];
	int ret, rc;

	if (auth_ldap_connect(a, &ld) < 0)
		return AUTH_UNAVAILABLE;
	ret = auth_ldap_find_dn(a, ld, name, dn, sizeof(dn));
	if (ret == -ENOENT)
		return AUTH_BAD_CREDENTIALS;
	if (ret < 0)
		return AUTH_UNAVAILABLE;
	rc = auth_ldap_simple_bind(ld, dn, password);
	if (rc != LDAP_SUCCESS) {
		if (!auth_ldap_is_outage(rc))
			return AUTH_BAD_CREDENTIALS;
		auth_ldap_log(a, ld, rc, "bind as the member", NULL);
		return AUTH_UNAVAILABLE;
	}
	auth_ldap_display_name(a, ld, dn, name, display_name, len);
	*is_admin = auth_ldap_is_admin(a, ld, name, dn);
	return AUTH_OK;
}

/* ---- local accounts ------------------------------------------------------ */

static enum auth_result auth_local_login(struct auth *a, const char *name, const char *password,
					 char *display_name, size_t len, bool *is_admin)
{
	char hash[crypto_pwhash_STRBYTES] = "";
	struct hub_member member;
	size_t plen = strlen(password);
	int ret;

	ret = hubdb_password_get(a->db, name, hash, sizeof(hash));
	if (ret < 0 || !hash[0]) {
		/* The same work as for a member who exists (a random password:
		 * it never matches). */
		int unused = crypto_pwhash_str_verify(a->dummy_hash, password, plen);

		(void)unused;
		if (ret < 0 && ret != -ENOENT) {
			log_error("cannot read the password of %s: %s", name, strerror(-ret));
			return AUTH_UNAVAILABLE;
		}
		return AUTH_BAD_CREDENTIALS;
	}
	if (crypto_pwhash_str_verify(hash, password, plen) != 0)
		return AUTH_BAD_CREDENTIALS;
	snprintf(display_name, len, "%s", name);
	if (hubdb_member_get(a->db, name, &member) == 0) {
		if (member.display_name[0])
			auth_copy_display(member.display_name, strlen(member.display_name), display_name, len);
		*is_admin = member.admin;
	}
	return AUTH_OK;
}

int auth_hash_password(const char *password, char *hash, size_t len)
{
	if (!auth_password_acceptable(password) || !hash)
		return -EINVAL;
	if (len < crypto_pwhash_STRBYTES)
		return -ENOSPC;
	if (sodium_init() < 0)
		return -EIO;
	if (crypto_pwhash_str(hash, password, strlen(password), AUTH_PWHASH_OPSLIMIT, AUTH_PWHASH_MEMLIMIT) != 0)
		return -ENOMEM;
	return 0;
}

/* ---- sign-in ------------------------------------------------------------- */

enum auth_result auth_login(struct auth *a, const char *name, const char *password,
			    const char *client_address, char *display_name, size_t len, bool *is_admin)
{
	const char *shown_address = client_address && client_address[0] ? client_address : "?";
	struct auth_attempt attempt = { 0 };
	bool valid_name, admin = false;
	enum auth_result result;
	char err[256];

	if (display_name && len > 0)
		display_name[0] = '\0';
	if (is_admin)
		*is_admin = false;
	if (!a || !display_name || len == 0 || !is_admin)
		return AUTH_UNAVAILABLE;

	/* A name that is not a member name is never looked up, nor kept in
	 * the table: it counts against the address only. */
	valid_name = name && validate_member_name(name, err, sizeof(err)) == 0;
	auth_attempt_keys(&attempt, valid_name ? name : NULL, client_address);
	if (!auth_admit(a, &attempt)) {
		log_debug("sign-in of %s from %s throttled", valid_name ? name : "(not a member name)",
			  shown_address);
		return AUTH_THROTTLED;
	}

	if (!valid_name || !auth_password_acceptable(password)) {
		log_info("sign-in refused from %s: %s", shown_address,
			 valid_name ? "empty, blank or oversized password" : "not a member name");
		result = AUTH_BAD_CREDENTIALS;
	} else if (a->ldap) {
		result = auth_ldap_login(a, name, password, display_name, len, &admin);
	} else {
		result = auth_local_login(a, name, password, display_name, len, &admin);
	}

	if (result == AUTH_OK) {
		log_info("%s signed in from %s%s", name, shown_address, admin ? " (admin)" : "");
		*is_admin = admin;
	} else {
		display_name[0] = '\0';
		if (result == AUTH_BAD_CREDENTIALS && valid_name)
			log_info("sign-in of %s from %s failed", name, shown_address);
	}
	auth_settle(a, &attempt, result);
	return result;
}
