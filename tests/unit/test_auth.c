/* SPDX-License-Identifier: MIT */
/*
 * auth.c: who signs in to the hub.  The LDAP tests run a real slapd
 * (Debian's slapd and ldap-utils) on 127.0.0.1 and a free port, with a
 * configuration and a small directory generated in a temporary folder:
 * people, a posixGroup and a groupOfNames of admins, and the traps the
 * scripts we replace fell into (an anonymous bind with a DN and an empty
 * password is allowed on purpose, so that only the hub's own check stands
 * between it and a sign-in).  A second slapd, with a self-signed
 * certificate made by openssl, serves StartTLS and ldaps://.  The
 * escaping, the configuration checks and the local accounts need no slapd.
 * Without slapd the test says so and is skipped (77) once the rest passed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ldap.h>

#include "hub.h"
#include "log.h"
#include "spawn.h"
#include "testutil.h"
#include "banned.h"

#define SLAPD "/usr/sbin/slapd"
#define SLAPADD "/usr/sbin/slapadd"
#define SLAPPASSWD "/usr/sbin/slappasswd"
#define SLAPD_MODULES "/usr/lib/ldap"
#define OPENSSL "/usr/bin/openssl"

struct directory {
	char dir[256];
	char conf[PATH_MAX];
	char pidfile[PATH_MAX];
	char listen[160];             /* what slapd -h is given */
	char uri[64];                 /* ldap://127.0.0.1:PORT/ */
	char ldaps_uri[64];           /* ldaps://127.0.0.1:PORT/ (tls only) */
	char dead_uri[64];            /* a port nothing listens on */
	char ca_file[256];            /* its certificate (tls only) */
	char other_ca_file[256];      /* a certificate that did not sign it */
	bool tls;
	bool running;
};

/* The directory of most tests, without TLS; and one with a self-signed
 * certificate for StartTLS and ldaps://. */
static struct directory slapd;
static struct directory tls_slapd = { .tls = true };

/* ---- helpers -------------------------------------------------------------- */

/* A TCP port on 127.0.0.1 that nobody listened on a moment ago. */
static uint16_t free_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	__do_close int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) < 0)
		return 0;
	return ntohs(sin.sin_port);
}

static bool port_answers(const char *uri)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	unsigned port = 0;
	__do_close int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || sscanf(uri, "ldap://127.0.0.1:%u/", &port) != 1)
		return false;
	sin.sin_port = htons((uint16_t)port);
	return connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Run a program and keep its output for the error message; 0 or -1. */
static int run_program(const char *const argv[], char *output, size_t len)
{
	struct spawn_options opts = { .capture = output, .capture_size = len, .timeout = 30 };
	int ret;

	output[0] = '\0';
	ret = spawn_run(argv, &opts);
	if (ret != 0) {
		print_error("%s failed (%d): %s\n", argv[0], ret, output);
		return -1;
	}
	return 0;
}

/* {SSHA} of password, as slappasswd writes it. */
static int hash_for_slapd(const char *password, char *hash, size_t len)
{
	const char *argv[] = { SLAPPASSWD, "-h", "{SSHA}", "-s", password, NULL };

	if (run_program(argv, hash, len) < 0)
		return -1;
	hash[strcspn(hash, "\r\n")] = '\0';
	return strncmp(hash, "{SSHA}", 6) == 0 ? 0 : -1;
}

/* A self-signed certificate for 127.0.0.1 (and not for "localhost"). */
static int make_certificate(const char *dir, const char *name, char *cert, size_t len)
{
	char key[PATH_MAX], output[4096];
	const char *argv[] = {
		OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
		"-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
		"-keyout", key, "-out", cert, NULL,
	};

	snprintf(cert, len, "%s/%s.pem", dir, name);
	snprintf(key, sizeof(key), "%s/%s.key", dir, name);
	return run_program(argv, output, sizeof(output));
}

/* ---- the directory --------------------------------------------------------- */

static int write_slapd_conf(struct directory *d)
{
	__do_free char *text = NULL;
	char db[PATH_MAX], tls[1024] = "";

	tu_join(db, sizeof(db), d->dir, "db");
	if (mkdir(db, 0700) < 0)
		return -1;
	if (d->tls)
		snprintf(tls, sizeof(tls), "TLSCertificateFile %s\nTLSCertificateKeyFile %s/server.key\n",
			 d->ca_file, d->dir);
	if (asprintf(&text,
		     "include /etc/ldap/schema/core.schema\n"
		     "include /etc/ldap/schema/cosine.schema\n"
		     "include /etc/ldap/schema/nis.schema\n"
		     "include /etc/ldap/schema/inetorgperson.schema\n"
		     "pidfile %s\n"
		     "argsfile %s/slapd.args\n"
		     "modulepath " SLAPD_MODULES "\n"
		     "moduleload back_mdb\n"
		     "loglevel 0\n"
		     "%s"
		     /* The trap: a DN with an empty password binds anonymously. */
		     "allow bind_anon_dn\n"
		     "database mdb\n"
		     "maxsize 16777216\n"
		     "suffix \"dc=test\"\n"
		     "rootdn \"cn=admin,dc=test\"\n"
		     "directory %s\n"
		     "access to attrs=userPassword by anonymous auth by self write by * none\n"
		     "access to * by * read\n",
		     d->pidfile, d->dir, tls, db) < 0)
		return -1;
	tu_write_file(d->dir, "slapd.conf", text);
	return 0;
}

static int write_entries(struct directory *d)
{
	char alice[128], bob[128], dave[128], erin[128], reader[128];
	__do_free char *text = NULL;

	if (hash_for_slapd("alice-pw", alice, sizeof(alice)) < 0 ||
	    hash_for_slapd("bob-pw", bob, sizeof(bob)) < 0 || hash_for_slapd("dave-pw", dave, sizeof(dave)) < 0 ||
	    hash_for_slapd("erin-pw", erin, sizeof(erin)) < 0 ||
	    hash_for_slapd("reader-pw", reader, sizeof(reader)) < 0)
		return -1;
	if (asprintf(&text,
		     "dn: dc=test\nobjectClass: dcObject\nobjectClass: organization\ndc: test\no: test\n\n"
		     "dn: ou=people,dc=test\nobjectClass: organizationalUnit\nou: people\n\n"
		     "dn: uid=alice,ou=people,dc=test\nobjectClass: inetOrgPerson\nuid: alice\n"
		     "cn: Alice Liddell\nsn: Liddell\nuserPassword: %s\n\n"
		     "dn: uid=bob,ou=people,dc=test\nobjectClass: inetOrgPerson\nuid: bob\n"
		     "cn: Bob Builder\nsn: Builder\nuserPassword: %s\n\n"
		     /* Exists, with a known password, but is no member name. */
		     "dn: uid=carol)(,ou=people,dc=test\nobjectClass: inetOrgPerson\nuid: carol)(\n"
		     "cn: Carol\nsn: C\nuserPassword: carol-pw\n\n"
		     "dn: uid=dave,ou=people,dc=test\nobjectClass: inetOrgPerson\nuid: dave\n"
		     "cn: Dave\nsn: D\nuserPassword: %s\n\n"
		     /* A DN that must be escaped to stand in a filter; a display
		      * name with a tab ("Erin\tEvans", base64). */
		     "dn: ou=r\\2Cd (lab)*,dc=test\nobjectClass: organizationalUnit\nou: r,d (lab)*\n\n"
		     "dn: uid=erin,ou=r\\2Cd (lab)*,dc=test\nobjectClass: inetOrgPerson\nuid: erin\n"
		     "cn:: RXJpbglFdmFucw==\nsn: E\nuserPassword: %s\n\n"
		     "dn: cn=reader,dc=test\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
		     "cn: reader\nuserPassword: %s\n\n"
		     "dn: ou=groups,dc=test\nobjectClass: organizationalUnit\nou: groups\n\n"
		     "dn: cn=gpubox-admin,ou=groups,dc=test\nobjectClass: posixGroup\ncn: gpubox-admin\n"
		     "gidNumber: 5000\nmemberUid: alice\n\n"
		     "dn: cn=lab-staff,ou=groups,dc=test\nobjectClass: posixGroup\ncn: lab-staff\n"
		     "gidNumber: 5001\nmemberUid: bob\n\n"
		     "dn: cn=ops (night),ou=groups,dc=test\nobjectClass: posixGroup\ncn: ops (night)\n"
		     "gidNumber: 5002\nmemberUid: bob\n\n"
		     "dn: ou=teams,dc=test\nobjectClass: organizationalUnit\nou: teams\n\n"
		     "dn: cn=gpubox-admin,ou=teams,dc=test\nobjectClass: groupOfNames\ncn: gpubox-admin\n"
		     "member: uid=dave,ou=people,dc=test\nmember: uid=erin,ou=r\\2Cd (lab)*,dc=test\n",
		     alice, bob, dave, erin, reader) < 0)
		return -1;
	tu_write_file(d->dir, "entries.ldif", text);
	return 0;
}

static int slapd_start(struct directory *d)
{
	const char *argv[] = { SLAPD, "-f", d->conf, "-h", d->listen, NULL };
	char output[4096];

	/* slapd goes into the background once it listens; the pid file and
	 * the port say when it serves. */
	if (run_program(argv, output, sizeof(output)) < 0)
		return -1;
	for (int i = 0; i < 200; i++) {
		if (fsutil_exists(d->pidfile) && port_answers(d->uri)) {
			d->running = true;
			return 0;
		}
		sleep_ms(50);
	}
	print_error("slapd did not answer on %s\n", d->uri);
	return -1;
}

static bool process_gone(pid_t pid)
{
	char path[64], stat_line[512] = "";
	__do_fclose FILE *f = NULL;

	if (kill(pid, 0) < 0 && errno == ESRCH)
		return true;
	/* A zombie nobody reaped yet serves nothing either. */
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f || !fgets(stat_line, sizeof(stat_line), f))
		return true;
	return strstr(stat_line, ") Z ") != NULL;
}

static int slapd_stop(struct directory *d)
{
	__do_free char *text = NULL;
	pid_t pid;

	if (!d->running)
		return 0;
	if (fsutil_read_file(d->pidfile, 64, &text, NULL) < 0 || (pid = (pid_t)atoi(text)) <= 1)
		return -1;
	kill(pid, SIGTERM);
	for (int i = 0; i < 200 && !process_gone(pid); i++)
		sleep_ms(50);
	if (!process_gone(pid)) {
		kill(pid, SIGKILL);
		sleep_ms(200);
	}
	d->running = false;
	return 0;
}

static bool slapd_installed(void)
{
	return access(SLAPD, X_OK) == 0 && access(SLAPADD, X_OK) == 0 && access(SLAPPASSWD, X_OK) == 0 &&
	       access(SLAPD_MODULES "/back_mdb.so", R_OK) == 0;
}

/* A temporary folder with a configuration, the entries loaded with
 * slapadd, and slapd serving them on free ports of 127.0.0.1. */
static int directory_create(struct directory *d)
{
	const char *add[] = { SLAPADD, "-q", "-f", d->conf, "-l", NULL, NULL };
	char ldif[PATH_MAX], output[4096];
	uint16_t port = free_port(), dead = free_port(), ldaps = free_port();

	if (port == 0 || dead == 0 || ldaps == 0 || port == dead || ldaps == port || ldaps == dead ||
	    tu_make_tempdir(d->dir, sizeof(d->dir), "/tmp/gpubox-test-auth-XXXXXX") < 0)
		return -1;
	tu_join(d->conf, sizeof(d->conf), d->dir, "slapd.conf");
	tu_join(d->pidfile, sizeof(d->pidfile), d->dir, "slapd.pid");
	tu_join(ldif, sizeof(ldif), d->dir, "entries.ldif");
	snprintf(d->uri, sizeof(d->uri), "ldap://127.0.0.1:%u/", port);
	snprintf(d->dead_uri, sizeof(d->dead_uri), "ldap://127.0.0.1:%u/", dead);
	snprintf(d->listen, sizeof(d->listen), "%s", d->uri);
	if (d->tls) {
		snprintf(d->ldaps_uri, sizeof(d->ldaps_uri), "ldaps://127.0.0.1:%u/", ldaps);
		snprintf(d->listen, sizeof(d->listen), "%s %s", d->uri, d->ldaps_uri);
		if (make_certificate(d->dir, "server", d->ca_file, sizeof(d->ca_file)) < 0 ||
		    make_certificate(d->dir, "other", d->other_ca_file, sizeof(d->other_ca_file)) < 0)
			return -1;
	}
	add[5] = ldif;
	if (write_slapd_conf(d) < 0 || write_entries(d) < 0 || run_program(add, output, sizeof(output)) < 0)
		return -1;
	return slapd_start(d);
}

static int directory_destroy(struct directory *d)
{
	slapd_stop(d);
	tu_remove_tempdir(d->dir);
	return 0;
}

static int directory_setup(void **state)
{
	(void)state;
	if (directory_create(&slapd) < 0) {
		/* cmocka runs no group teardown after a failed setup. */
		directory_destroy(&slapd);
		return -1;
	}
	return 0;
}

static int directory_teardown(void **state)
{
	(void)state;
	return directory_destroy(&slapd);
}

static int tls_directory_setup(void **state)
{
	(void)state;
	if (directory_create(&tls_slapd) < 0) {
		directory_destroy(&tls_slapd);
		return -1;
	}
	return 0;
}

static int tls_directory_teardown(void **state)
{
	(void)state;
	return directory_destroy(&tls_slapd);
}

/* ---- configurations -------------------------------------------------------- */

static void ldap_config(struct hub_config *cfg)
{
	hubconf_set_defaults(cfg);
	snprintf(cfg->auth, sizeof(cfg->auth), "ldap");
	/* Before the directory starts: an address auth_open() accepts. */
	snprintf(cfg->ldap_uri, sizeof(cfg->ldap_uri), "%s", slapd.uri[0] ? slapd.uri : "ldap://127.0.0.1:389/");
	snprintf(cfg->ldap_base, sizeof(cfg->ldap_base), "dc=test");
	snprintf(cfg->ldap_filter, sizeof(cfg->ldap_filter), "(uid=%%s)");
	snprintf(cfg->admin_group, sizeof(cfg->admin_group), "gpubox-admin");
	cfg->ldap_dn_template[0] = '\0';
	cfg->ldap_starttls = false;
	cfg->login_fail_limit = 5;
	cfg->login_fail_window = 300;
}

static struct auth *open_auth(const struct hub_config *cfg)
{
	struct auth *a = NULL;

	assert_int_equal(auth_open(cfg, NULL, &a), 0);
	assert_non_null(a);
	return a;
}

static enum auth_result login(struct auth *a, const char *name, const char *password, const char *address,
			      char display[128], bool *admin)
{
	return auth_login(a, name, password, address, display, 128, admin);
}

/* name signs in with password, shown as display, admin or not. */
static void assert_login(struct auth *a, const char *name, const char *password, const char *display,
			 bool admin)
{
	char shown[128];
	bool is_admin = !admin;

	assert_int_equal(login(a, name, password, "192.0.2.1", shown, &is_admin), AUTH_OK);
	assert_string_equal(shown, display);
	assert_int_equal(is_admin, admin);
}

static void assert_refused(struct auth *a, const char *name, const char *password, const char *address,
			   enum auth_result expected)
{
	char shown[128] = "x";
	bool is_admin = true;

	assert_int_equal(login(a, name, password, address, shown, &is_admin), expected);
	assert_string_equal(shown, "");
	assert_false(is_admin);
}

/* ---- escaping (no directory) ----------------------------------------------- */

static const struct {
	const char *value;
	const char *filter;           /* RFC 4515 */
	const char *dn;               /* RFC 4514 */
} escape_cases[] = {
	{ "alice", "alice", "alice" },
	{ "*", "\\2A", "*" },
	{ "a)(uid=*", "a\\29\\28uid=\\2A", "a)(uid\\3D*" },
	{ "x\\00", "x\\5C00", "x\\5C00" },
	{ "a,b", "a,b", "a\\2Cb" },
	{ "#a", "#a", "\\23a" },
	{ "alice)(|(uid=*", "alice\\29\\28|\\28uid=\\2A", "alice)(|(uid\\3D*" },
	{ " a ", " a ", "\\20a\\20" },
	{ "a+b=c;d<e>f\"g", "a+b=c;d<e>f\"g", "a\\2Bb\\3Dc\\3Bd\\3Ce\\3Ef\\22g" },
	{ "uid=x,dc=y", "uid=x,dc=y", "uid\\3Dx\\2Cdc\\3Dy" },
	{ "\xc3\xa9", "\\C3\\A9", "\\C3\\A9" },
	{ "", "", "" },
};

static void test_escape_exact(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(escape_cases); i++) {
		char out[256];

		assert_int_equal(auth_escape_filter(escape_cases[i].value, out, sizeof(out)), 0);
		if (strcmp(out, escape_cases[i].filter))
			fail_msg("filter(\"%s\") = \"%s\", not \"%s\"", escape_cases[i].value, out,
				 escape_cases[i].filter);
		assert_int_equal(auth_escape_dn(escape_cases[i].value, out, sizeof(out)), 0);
		if (strcmp(out, escape_cases[i].dn))
			fail_msg("dn(\"%s\") = \"%s\", not \"%s\"", escape_cases[i].value, out, escape_cases[i].dn);
	}
}

static void test_escape_limits(void **state)
{
	char out[8];

	(void)state;
	/* "a\29\28" needs 7 bytes and its NUL. */
	assert_int_equal(auth_escape_filter("a)(", out, 8), 0);
	assert_string_equal(out, "a\\29\\28");
	assert_int_equal(auth_escape_filter("a)(", out, 7), -ENOSPC);
	assert_int_equal(auth_escape_dn("a,b,c", out, 7), -ENOSPC);
	/* A DN is UTF-8: other bytes are refused, never passed on. */
	assert_int_equal(auth_escape_dn("\xff\xfe", out, sizeof(out)), -EINVAL);
	assert_int_equal(auth_escape_filter(NULL, out, sizeof(out)), -EINVAL);
	assert_int_equal(auth_escape_dn("a", NULL, 8), -EINVAL);
	assert_int_equal(auth_escape_dn("a", out, 0), -EINVAL);
}

/* A NUL byte cannot reach auth_login() inside a name or a password: the
 * form parser refuses the body (auth_login() sees C strings). */
static void test_form_nul(void **state)
{
	static const char *const bodies[] = {
		"name=alice%00x&password=alice-pw",
		"name=alice&password=alice-pw%00",
		"name=alice&password=%00",
		"name=x%5C00%00&password=a",
	};
	static const char raw[] = "name=alice\0x&password=a";
	struct form f;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bodies); i++) {
		memset(&f, 0, sizeof(f));
		assert_int_equal(form_parse(bodies[i], strlen(bodies[i]), &f), -EINVAL);
		form_free(&f);
	}
	/* The same with the NUL as a raw byte, counted by the length. */
	memset(&f, 0, sizeof(f));
	assert_int_equal(form_parse(raw, sizeof(raw) - 1, &f), -EINVAL);
	form_free(&f);
}

/* ---- configurations refused (no directory) ------------------------------- */

static void assert_open(const struct hub_config *cfg, int expected)
{
	struct auth *a = NULL;

	assert_int_equal(auth_open(cfg, NULL, &a), expected);
	if (expected == 0)
		assert_non_null(a);
	else
		assert_null(a);
	auth_close(a);
}

static void test_open_uris(void **state)
{
	static const struct {
		const char *uri;
		bool starttls;
		int expected;
	} cases[] = {
		{ "ldap://ldap.example.org", false, -EINVAL },
		{ "ldap://ldap.example.org:389/", false, -EINVAL },
		{ "ldap://10.0.0.1/", false, -EINVAL },
		{ "ldap://[2001:db8::1]/", false, -EINVAL },
		{ "ldap:///", false, -EINVAL },
		{ "ldap://127.0.0.1:389/ ldap://ldap.example.org/", false, -EINVAL },
		{ "ldap://ldap.example.org", true, 0 },
		{ "ldap://127.0.0.1:389/", false, 0 },
		{ "ldap://127.1.2.3/", false, 0 },
		{ "ldap://[::1]:389/", false, 0 },
		{ "ldap://localhost/", false, 0 },
		{ "ldaps://ldap.example.org", false, 0 },
		{ "ldapi://%2Frun%2Fslapd%2Fldapi", false, 0 },
		{ "ldaps://a.example.org ldaps://b.example.org", true, 0 },
		{ "ldaps://a.example.org ldap://b.example.org", true, -EINVAL },
		{ "http://ldap.example.org", true, -EINVAL },
		{ "ldap.example.org", true, -EINVAL },
		{ "", true, -EINVAL },
	};
	struct hub_config cfg;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct auth *a = NULL;
		int ret;

		ldap_config(&cfg);
		snprintf(cfg.ldap_uri, sizeof(cfg.ldap_uri), "%s", cases[i].uri);
		cfg.ldap_starttls = cases[i].starttls;
		ret = auth_open(&cfg, NULL, &a);
		auth_close(a);
		if (ret != cases[i].expected)
			fail_msg("\"%s\" starttls %d: %d, not %d", cases[i].uri, cases[i].starttls, ret,
				 cases[i].expected);
	}
}

static void test_open_refused(void **state)
{
	struct hub_config cfg;

	(void)state;
	ldap_config(&cfg);
	snprintf(cfg.auth, sizeof(cfg.auth), "kerberos");
	assert_open(&cfg, -EINVAL);

	ldap_config(&cfg);
	snprintf(cfg.ldap_filter, sizeof(cfg.ldap_filter), "(uid=alice)");
	assert_open(&cfg, -EINVAL);

	ldap_config(&cfg);
	snprintf(cfg.ldap_dn_template, sizeof(cfg.ldap_dn_template), "uid=alice,dc=test");
	assert_open(&cfg, -EINVAL);

	ldap_config(&cfg);
	cfg.ldap_base[0] = '\0';
	assert_open(&cfg, -EINVAL);

	ldap_config(&cfg);
	snprintf(cfg.ldap_bind_dn, sizeof(cfg.ldap_bind_dn), "cn=reader,dc=test");
	assert_open(&cfg, -EINVAL);

	ldap_config(&cfg);
	snprintf(cfg.ldap_ca_file, sizeof(cfg.ldap_ca_file), "/nonexistent/gpubox-ca.pem");
	assert_open(&cfg, -ENOENT);

	/* Local accounts live in the database. */
	ldap_config(&cfg);
	snprintf(cfg.auth, sizeof(cfg.auth), "local");
	assert_open(&cfg, -EINVAL);
}

/* ---- LDAP against slapd ----------------------------------------------------- */

static void test_login(void **state)
{
	struct hub_config cfg;
	struct auth *a;

	(void)state;
	ldap_config(&cfg);
	a = open_auth(&cfg);
	assert_login(a, "alice", "alice-pw", "Alice Liddell", true);
	assert_login(a, "bob", "bob-pw", "Bob Builder", false);
	/* Admin through a groupOfNames that lists the DN. */
	assert_login(a, "dave", "dave-pw", "Dave", true);
	/* Her DN holds ( ) * and an escaped comma: the member= filter works
	 * only if the DN is escaped (RFC 4515); her cn has a tab, dropped. */
	assert_login(a, "erin", "erin-pw", "ErinEvans", true);
	auth_close(a);
}

static void test_wrong_and_unknown(void **state)
{
	struct hub_config cfg;
	struct auth *a;

	(void)state;
	ldap_config(&cfg);
	a = open_auth(&cfg);
	assert_refused(a, "alice", "bob-pw", "192.0.2.2", AUTH_BAD_CREDENTIALS);
	assert_refused(a, "alice", "alice-pw ", "192.0.2.3", AUTH_BAD_CREDENTIALS);
	assert_refused(a, "zed", "alice-pw", "192.0.2.4", AUTH_BAD_CREDENTIALS);
	assert_refused(a, "bob", "alice-pw", "192.0.2.5", AUTH_BAD_CREDENTIALS);
	auth_close(a);
}

/* The anonymous-bind trap: this slapd lets a DN with an empty password
 * bind (anonymously); a client that took "bind succeeded" for "password
 * right" would let anybody in.  auth.c refuses such passwords before any
 * bind: against a port where nothing listens, the answer is still "bad
 * credentials", not "unavailable", so the directory was never asked. */
static void test_empty_password_trap(void **state)
{
	static const char *const passwords[] = { "", " ", "   ", "\t", " \t\r\n\v\f " };
	struct berval empty = { 0 };
	struct hub_config cfg;
	LDAP *ld = NULL;
	struct auth *a;
	int version = LDAP_VERSION3;
	char toolong[1026];

	(void)state;
	assert_int_equal(ldap_initialize(&ld, slapd.uri), LDAP_SUCCESS);
	ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version);
	assert_int_equal(ldap_sasl_bind_s(ld, "uid=alice,ou=people,dc=test", LDAP_SASL_SIMPLE, &empty, NULL, NULL,
					  NULL), LDAP_SUCCESS);
	ldap_unbind_ext_s(ld, NULL, NULL);

	memset(toolong, 'x', sizeof(toolong) - 1);
	toolong[sizeof(toolong) - 1] = '\0';
	ldap_config(&cfg);
	cfg.login_fail_limit = 0;
	for (int round = 0; round < 2; round++) {
		a = open_auth(&cfg);
		for (size_t i = 0; i < ARRAY_SIZE(passwords); i++)
			assert_refused(a, "alice", passwords[i], "192.0.2.6", AUTH_BAD_CREDENTIALS);
		assert_refused(a, "alice", NULL, "192.0.2.6", AUTH_BAD_CREDENTIALS);
		assert_refused(a, "alice", toolong, "192.0.2.6", AUTH_BAD_CREDENTIALS);
		auth_close(a);
		/* Once more, with no directory there at all. */
		snprintf(cfg.ldap_uri, sizeof(cfg.ldap_uri), "%s", slapd.dead_uri);
	}
	/* The right password, against that dead port: unavailable indeed. */
	a = open_auth(&cfg);
	assert_refused(a, "alice", "alice-pw", "192.0.2.6", AUTH_UNAVAILABLE);
	auth_close(a);
}

static const char *const injected_names[] = {
	"*", "a)(uid=*", "x\\00", "a,b", "#a", "alice)(|(uid=*", "alice*", "*)(uid=alice", "carol)(",
	"ALICE", "alice ", " alice", "alice,ou=people", "uid=alice", "alice\\", "", "al ice",
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
};

/* Names that are no member names fail, with the password that a filter or
 * DN injection would make right (carol)( really has "carol-pw"). */
static void assert_injections_fail(struct auth *a)
{
	for (size_t i = 0; i < ARRAY_SIZE(injected_names); i++) {
		assert_refused(a, injected_names[i], "alice-pw", "192.0.2.7", AUTH_BAD_CREDENTIALS);
		assert_refused(a, injected_names[i], "carol-pw", "192.0.2.7", AUTH_BAD_CREDENTIALS);
	}
	assert_refused(a, NULL, "alice-pw", "192.0.2.7", AUTH_BAD_CREDENTIALS);
}

static void test_injection(void **state)
{
	/* The name seen by C stops at the NUL: "alice" and her own password. */
	static const char with_nul[] = "alice\0)(uid=*";
	struct hub_config cfg;
	struct auth *a;

	(void)state;
	ldap_config(&cfg);
	cfg.login_fail_limit = 0;
	a = open_auth(&cfg);
	assert_injections_fail(a);
	assert_refused(a, with_nul, "carol-pw", "192.0.2.7", AUTH_BAD_CREDENTIALS);
	assert_login(a, with_nul, "alice-pw", "Alice Liddell", true);
	auth_close(a);

	/* Refused before the directory is asked. */
	snprintf(cfg.ldap_uri, sizeof(cfg.ldap_uri), "%s", slapd.dead_uri);
	a = open_auth(&cfg);
	assert_injections_fail(a);
	auth_close(a);
}

/* The DN built from a template, the name escaped (RFC 4514). */
static void test_dn_template(void **state)
{
	struct hub_config cfg;
	struct auth *a;

	(void)state;
	ldap_config(&cfg);
	cfg.login_fail_limit = 0;
	snprintf(cfg.ldap_dn_template, sizeof(cfg.ldap_dn_template), "uid=%%s,ou=people,dc=test");
	snprintf(cfg.ldap_filter, sizeof(cfg.ldap_filter), "(nothing=%%s)");
	a = open_auth(&cfg);
	assert_login(a, "alice", "alice-pw", "Alice Liddell", true);
	assert_login(a, "bob", "bob-pw", "Bob Builder", false);
	assert_refused(a, "alice", "bob-pw", "192.0.2.8", AUTH_BAD_CREDENTIALS);
	assert_refused(a, "zed", "bob-pw", "192.0.2.8", AUTH_BAD_CREDENTIALS);
	/* erin lives elsewhere: the template does not reach her. */
	assert_refused(a, "erin", "erin-pw", "192.0.2.8", AUTH_BAD_CREDENTIALS);
	assert_injections_fail(a);
	auth_close(a);

	/* A template whose fixed part needs escaping itself. */
	snprintf(cfg.ldap_dn_template, sizeof(cfg.ldap_dn_template), "uid=%%s,ou=r\\2Cd (lab)*,dc=test");
	a = open_auth(&cfg);
	assert_login(a, "erin", "erin-pw", "ErinEvans", true);
	assert_refused(a, "alice", "alice-pw", "192.0.2.8", AUTH_BAD_CREDENTIALS);
	auth_close(a);
}

/* admin_group is a value in a filter too: "lab*" names one group, it
 * matches no other; "ops (night)" needs its parentheses escaped. */
static void test_admin_group_escaped(void **state)
{
	struct hub_config cfg;
	struct auth *a;

	(void)state;
	ldap_config(&cfg);
	snprintf(cfg.admin_group, sizeof(cfg.admin_group), "lab*");
	a = open_auth(&cfg);
	assert_login(a, "bob", "bob-pw", "Bob Builder", false);
	auth_close(a);

	snprintf(cfg.admin_group, sizeof(cfg.admin_group), "ops (night)");
	a = open_auth(&cfg);
	assert_login(a, "bob", "bob-pw", "Bob Builder", true);
	assert_login(a, "alice", "alice-pw", "Alice Liddell", false);
	auth_close(a);

	cfg.admin_group[0] = '\0';
	a = open_auth(&cfg);
	assert_login(a, "alice", "alice-pw", "Alice Liddell", false);
	auth_close(a);
}

/* The search bound as a service account. */
static void test_bind_dn(void **state)
{
	char path[256];
	struct hub_config cfg;
	struct auth *a;

	(void)state;
	assert_int_equal(tu_make_file(slapd.dir, "reader.pw", "reader-pw\n", getuid(), getgid(), 0600), 0);
	tu_join(path, sizeof(path), slapd.dir, "reader.pw");
	ldap_config(&cfg);
	snprintf(cfg.ldap_bind_dn, sizeof(cfg.ldap_bind_dn), "cn=reader,dc=test");
	snprintf(cfg.ldap_bind_password_file, sizeof(cfg.ldap_bind_password_file), "%s", path);
	a = open_auth(&cfg);
	assert_login(a, "alice", "alice-pw", "Alice Liddell", true);
	assert_refused(a, "alice", "bob-pw", "192.0.2.9", AUTH_BAD_CREDENTIALS);
	auth_close(a);

	/* The service account refused: the directory is unusable, not the
	 * member's password wrong. */
	assert_int_equal(tu_make_file(slapd.dir, "reader.pw", "not-the-pw\n", getuid(), getgid(), 0600), 0);
	a = open_auth(&cfg);
	assert_refused(a, "alice", "alice-pw", "192.0.2.9", AUTH_UNAVAILABLE);
	auth_close(a);

	/* An empty password file would bind anonymously: refused. */
	assert_int_equal(tu_make_file(slapd.dir, "reader.pw", "\n", getuid(), getgid(), 0600), 0);
	assert_open(&cfg, -EINVAL);
}

/* ldap_starttls = yes against a slapd without TLS: never a clear-text
 * sign-in. */
static void test_starttls_required(void **state)
{
	struct hub_config cfg;
	struct auth *a;

	(void)state;
	ldap_config(&cfg);
	cfg.ldap_starttls = true;
	a = open_auth(&cfg);
	assert_refused(a, "alice", "alice-pw", "192.0.2.10", AUTH_UNAVAILABLE);
	assert_refused(a, "alice", "wrong", "192.0.2.10", AUTH_UNAVAILABLE);
	auth_close(a);

	cfg.ldap_starttls = false;
	a = open_auth(&cfg);
	assert_login(a, "alice", "alice-pw", "Alice Liddell", true);
	auth_close(a);
}

/* name signs in from address (as assert_login, which uses 192.0.2.1). */
static void assert_login_from(struct auth *a, const char *name, const char *password, const char *address)
{
	char shown[128];
	bool is_admin;

	assert_int_equal(login(a, name, password, address, shown, &is_admin), AUTH_OK);
}

/* Failures from one address lock the member there, and only there: an
 * attacker cannot lock a member out of the member's own address. */
static void test_throttle_member(void **state)
{
	struct hub_config cfg;
	struct auth *a;

	(void)state;
	ldap_config(&cfg);
	cfg.login_fail_limit = 3;
	cfg.login_fail_window = 2;
	a = open_auth(&cfg);
	/* The attacker's address fails three times, and is locked for alice,
	 * the right password included. */
	assert_refused(a, "alice", "wrong-1", "198.51.100.1", AUTH_BAD_CREDENTIALS);
	assert_refused(a, "alice", "", "198.51.100.1", AUTH_BAD_CREDENTIALS);
	assert_refused(a, "alice", "wrong-3", "198.51.100.1", AUTH_BAD_CREDENTIALS);
	assert_refused(a, "alice", "alice-pw", "198.51.100.1", AUTH_THROTTLED);
	/* alice, from anywhere else, signs in at once. */
	assert_login_from(a, "alice", "alice-pw", "198.51.100.4");
	assert_login_from(a, "alice", "alice-pw", "2001:db8::4");
	/* Failures spread over addresses lock nobody (below the member-wide
	 * count): the other way round is the same. */
	assert_refused(a, "bob", "wrong", "198.51.100.5", AUTH_BAD_CREDENTIALS);
	assert_refused(a, "bob", "wrong", "198.51.100.6", AUTH_BAD_CREDENTIALS);
	assert_refused(a, "bob", "wrong", "198.51.100.7", AUTH_BAD_CREDENTIALS);
	assert_login(a, "bob", "bob-pw", "Bob Builder", false);
	/* The attacker's address may try other names (below the address's
	 * own limit), and alice again once the window has passed. */
	assert_login_from(a, "dave", "dave-pw", "198.51.100.1");
	sleep(3);
	assert_login_from(a, "alice", "alice-pw", "198.51.100.1");
	auth_close(a);
}

/* Guessing spread over many addresses slows every address down for that
 * member, the member's own first try included: never a lock. */
static void test_throttle_member_slowed(void **state)
{
	struct hub_config cfg;
	char address[64];
	struct auth *a;

	(void)state;
	ldap_config(&cfg);
	cfg.login_fail_limit = 2;
	cfg.login_fail_window = 6;   /* one try per 3 s per address, once slowed */
	a = open_auth(&cfg);
	/* 20 failures (10 x the limit) from 20 addresses. */
	for (unsigned i = 0; i < 20; i++) {
		snprintf(address, sizeof(address), "203.0.113.%u", 10 + i);
		assert_refused(a, "bob", "guess", address, AUTH_BAD_CREDENTIALS);
	}
	/* An address that tried just now waits; a new one tries once. */
	assert_refused(a, "bob", "guess", "203.0.113.29", AUTH_THROTTLED);
	assert_refused(a, "bob", "guess", "203.0.113.200", AUTH_BAD_CREDENTIALS);
	assert_refused(a, "bob", "bob-pw", "203.0.113.200", AUTH_THROTTLED);
	/* bob, from his own address, signs in at the first try. */
	assert_login_from(a, "bob", "bob-pw", "192.0.2.77");
	/* Others are not slowed. */
	assert_login_from(a, "alice", "alice-pw", "203.0.113.10");
	/* After the interval the address may try again. */
	sleep(4);
	assert_login_from(a, "bob", "bob-pw", "203.0.113.200");
	auth_close(a);
}

/* An IPv6 client counts by its /64: new addresses in the same /64 are the
 * same place. */
static void test_throttle_ipv6_prefix(void **state)
{
	struct hub_config cfg;
	struct auth *a;

	(void)state;
	ldap_config(&cfg);
	cfg.login_fail_limit = 2;
	a = open_auth(&cfg);
	assert_refused(a, "alice", "guess", "2001:db8:1:2::1", AUTH_BAD_CREDENTIALS);
	assert_refused(a, "alice", "guess", "2001:db8:1:2:ffff::9", AUTH_BAD_CREDENTIALS);
	assert_refused(a, "alice", "alice-pw", "2001:db8:1:2:abcd::1", AUTH_THROTTLED);
	assert_login_from(a, "alice", "alice-pw", "2001:db8:1:3::1");
	auth_close(a);
}

static void test_throttle_address(void **state)
{
	struct hub_config cfg;
	struct auth *a;

	(void)state;
	ldap_config(&cfg);
	cfg.login_fail_limit = 1;
	cfg.login_fail_window = 300;
	a = open_auth(&cfg);
	/* One address tries four names (4 x the limit). */
	assert_refused(a, "alice", "guess", "203.0.113.5", AUTH_BAD_CREDENTIALS);
	assert_refused(a, "bob", "guess", "203.0.113.5", AUTH_BAD_CREDENTIALS);
	assert_refused(a, "zed", "guess", "203.0.113.5", AUTH_BAD_CREDENTIALS);
	assert_refused(a, "erin", "guess", "203.0.113.5", AUTH_BAD_CREDENTIALS);
	assert_refused(a, "dave", "dave-pw", "203.0.113.5", AUTH_THROTTLED);
	/* From elsewhere dave (no failure of his own) and alice (one) sign in. */
	assert_login(a, "dave", "dave-pw", "Dave", true);
	assert_login(a, "alice", "alice-pw", "Alice Liddell", true);

	/* Names that are no member names count against the address too. */
	for (size_t i = 0; i < 4; i++)
		assert_refused(a, injected_names[i], "x", "203.0.113.6", AUTH_BAD_CREDENTIALS);
	assert_refused(a, "bob", "bob-pw", "203.0.113.6", AUTH_THROTTLED);
	auth_close(a);
}

/* A success wipes out the member's failures at that address (not the
 * address's on other names). */
static void test_success_resets(void **state)
{
	struct hub_config cfg;
	struct auth *a;

	(void)state;
	ldap_config(&cfg);
	cfg.login_fail_limit = 3;
	cfg.login_fail_window = 300;
	a = open_auth(&cfg);
	assert_refused(a, "bob", "wrong", "192.0.2.1", AUTH_BAD_CREDENTIALS);
	assert_refused(a, "bob", "wrong", "192.0.2.1", AUTH_BAD_CREDENTIALS);
	assert_login(a, "bob", "bob-pw", "Bob Builder", false);
	assert_refused(a, "bob", "wrong", "192.0.2.1", AUTH_BAD_CREDENTIALS);
	assert_refused(a, "bob", "wrong", "192.0.2.1", AUTH_BAD_CREDENTIALS);
	assert_login(a, "bob", "bob-pw", "Bob Builder", false);
	auth_close(a);
}

/* Many addresses fill the table: it stays bounded, and a locked member
 * stays locked while the flood goes on. */
static void test_throttle_table_bounded(void **state)
{
	struct hub_config cfg;
	struct auth *a;

	(void)state;
	ldap_config(&cfg);
	snprintf(cfg.ldap_uri, sizeof(cfg.ldap_uri), "%s", slapd.dead_uri);
	cfg.login_fail_limit = 2;
	cfg.login_fail_window = 300;
	a = open_auth(&cfg);
	assert_refused(a, "alice", "", "198.51.100.20", AUTH_BAD_CREDENTIALS);
	assert_refused(a, "alice", "", "198.51.100.20", AUTH_BAD_CREDENTIALS);
	for (unsigned i = 0; i < 6000; i++) {
		char address[64];

		snprintf(address, sizeof(address), "2001:db8:%x::1", i);
		assert_refused(a, "*", "x", address, AUTH_BAD_CREDENTIALS);
	}
	assert_refused(a, "alice", "alice-pw", "198.51.100.20", AUTH_THROTTLED);
	auth_close(a);
}

struct login_thread {
	pthread_t thread;
	struct auth *a;
	unsigned index;
	unsigned ok, refused, other;
};

/* Threads 0..2 sign in as alice or bob; thread 3 guesses dave's password. */
static void *login_thread_run(void *arg)
{
	struct login_thread *t = arg;

	for (unsigned i = 0; i < 8; i++) {
		bool guess = t->index == 3, alice = (i + t->index) % 2 == 0, admin;
		char shown[128], address[64];
		enum auth_result r;

		snprintf(address, sizeof(address), "192.0.2.%u", 100 + t->index);
		if (guess)
			r = auth_login(t->a, "dave", "guess", address, shown, sizeof(shown), &admin);
		else
			r = auth_login(t->a, alice ? "alice" : "bob", alice ? "alice-pw" : "bob-pw", address, shown,
				       sizeof(shown), &admin);
		if (r == AUTH_OK && !guess && admin == alice)
			t->ok++;
		else if (guess && (r == AUTH_BAD_CREDENTIALS || r == AUTH_THROTTLED))
			t->refused++;
		else
			t->other++;
	}
	return NULL;
}

/* The hub signs in from several HTTP threads at once. */
static void test_concurrent_logins(void **state)
{
	struct login_thread threads[4];
	struct hub_config cfg;
	struct auth *a;

	(void)state;
	ldap_config(&cfg);
	a = open_auth(&cfg);
	for (unsigned i = 0; i < ARRAY_SIZE(threads); i++) {
		threads[i] = (struct login_thread){ .a = a, .index = i };
		assert_int_equal(pthread_create(&threads[i].thread, NULL, login_thread_run, &threads[i]), 0);
	}
	for (unsigned i = 0; i < ARRAY_SIZE(threads); i++) {
		assert_int_equal(pthread_join(threads[i].thread, NULL), 0);
		assert_int_equal(threads[i].other, 0);
		assert_int_equal(threads[i].ok + threads[i].refused, 8);
	}
	/* dave is locked where the guesses came from, not elsewhere. */
	assert_refused(a, "dave", "dave-pw", "192.0.2.103", AUTH_THROTTLED);
	assert_login_from(a, "dave", "dave-pw", "192.0.2.200");
	auth_close(a);
}

struct guess_thread {
	pthread_t thread;
	pthread_barrier_t *start;
	struct auth *a;
	unsigned index;
	enum auth_result result;
};

static void *guess_thread_run(void *arg)
{
	struct guess_thread *t = arg;
	char shown[128], address[64];
	bool admin;

	snprintf(address, sizeof(address), "198.51.100.%u", 100 + t->index % 2);
	pthread_barrier_wait(t->start);
	t->result = auth_login(t->a, "bob", "guess", address, shown, sizeof(shown), &admin);
	return NULL;
}

/* Guesses sent all at once (from two addresses) get no more tries than
 * guesses one by one: the check and the count are one step. */
static void test_throttle_parallel(void **state)
{
	struct guess_thread threads[12];
	pthread_barrier_t start;
	unsigned bad = 0, throttled = 0;
	struct hub_config cfg;
	struct auth *a;

	(void)state;
	ldap_config(&cfg);
	cfg.login_fail_limit = 3;
	a = open_auth(&cfg);
	assert_int_equal(pthread_barrier_init(&start, NULL, ARRAY_SIZE(threads)), 0);
	for (unsigned i = 0; i < ARRAY_SIZE(threads); i++) {
		threads[i] = (struct guess_thread){ .start = &start, .a = a, .index = i };
		assert_int_equal(pthread_create(&threads[i].thread, NULL, guess_thread_run, &threads[i]), 0);
	}
	for (unsigned i = 0; i < ARRAY_SIZE(threads); i++) {
		assert_int_equal(pthread_join(threads[i].thread, NULL), 0);
		bad += threads[i].result == AUTH_BAD_CREDENTIALS;
		throttled += threads[i].result == AUTH_THROTTLED;
	}
	pthread_barrier_destroy(&start);
	assert_int_equal(bad, 6);
	assert_int_equal(throttled, ARRAY_SIZE(threads) - 6);
	assert_refused(a, "bob", "bob-pw", "198.51.100.100", AUTH_THROTTLED);
	assert_refused(a, "bob", "bob-pw", "198.51.100.101", AUTH_THROTTLED);
	assert_login_from(a, "bob", "bob-pw", "198.51.100.200");
	auth_close(a);
}

/* The directory stops: unavailable, never a success; a throttled member is
 * refused without asking it; when it is back, sign-in works again. */
static void test_directory_stopped(void **state)
{
	struct hub_config cfg;
	struct auth *a;

	(void)state;
	ldap_config(&cfg);
	cfg.login_fail_limit = 2;
	a = open_auth(&cfg);
	assert_refused(a, "bob", "wrong", "198.51.100.33", AUTH_BAD_CREDENTIALS);
	assert_refused(a, "bob", "wrong", "198.51.100.33", AUTH_BAD_CREDENTIALS);
	assert_int_equal(slapd_stop(&slapd), 0);
	assert_false(port_answers(slapd.uri));
	assert_refused(a, "alice", "alice-pw", "198.51.100.32", AUTH_UNAVAILABLE);
	assert_refused(a, "alice", "wrong", "198.51.100.32", AUTH_UNAVAILABLE);
	assert_refused(a, "bob", "bob-pw", "198.51.100.33", AUTH_THROTTLED);
	/* Unavailability is nobody's failure: no lock came of it. */
	assert_refused(a, "alice", "alice-pw", "198.51.100.32", AUTH_UNAVAILABLE);
	assert_int_equal(slapd_start(&slapd), 0);
	assert_login(a, "alice", "alice-pw", "Alice Liddell", true);
	auth_close(a);
}

/* ---- TLS (a second slapd, with a certificate) -------------------------------- */

static void tls_config(struct hub_config *cfg, const char *uri, bool starttls, const char *ca_file)
{
	ldap_config(cfg);
	snprintf(cfg->ldap_uri, sizeof(cfg->ldap_uri), "%s", uri);
	snprintf(cfg->ldap_ca_file, sizeof(cfg->ldap_ca_file), "%s", ca_file);
	cfg->ldap_starttls = starttls;
}

/* StartTLS with the directory's certificate signs in; with a certificate
 * that did not sign it, or with the system's authorities only, nothing is
 * sent: a man in the middle gets no password. */
static void test_starttls_verified(void **state)
{
	struct hub_config cfg;
	struct auth *a;

	(void)state;
	tls_config(&cfg, tls_slapd.uri, true, tls_slapd.ca_file);
	a = open_auth(&cfg);
	assert_login(a, "alice", "alice-pw", "Alice Liddell", true);
	assert_login(a, "bob", "bob-pw", "Bob Builder", false);
	assert_refused(a, "alice", "wrong", "192.0.2.70", AUTH_BAD_CREDENTIALS);
	auth_close(a);

	tls_config(&cfg, tls_slapd.uri, true, tls_slapd.other_ca_file);
	a = open_auth(&cfg);
	assert_refused(a, "alice", "alice-pw", "192.0.2.71", AUTH_UNAVAILABLE);
	auth_close(a);

	tls_config(&cfg, tls_slapd.uri, true, "");
	a = open_auth(&cfg);
	assert_refused(a, "alice", "alice-pw", "192.0.2.72", AUTH_UNAVAILABLE);
	auth_close(a);
}

static void test_ldaps_verified(void **state)
{
	char localhost_uri[64];
	struct hub_config cfg;
	unsigned port = 0;
	struct auth *a;

	(void)state;
	tls_config(&cfg, tls_slapd.ldaps_uri, false, tls_slapd.ca_file);
	a = open_auth(&cfg);
	assert_login(a, "alice", "alice-pw", "Alice Liddell", true);
	auth_close(a);

	tls_config(&cfg, tls_slapd.ldaps_uri, true, tls_slapd.other_ca_file);
	a = open_auth(&cfg);
	assert_refused(a, "alice", "alice-pw", "192.0.2.73", AUTH_UNAVAILABLE);
	auth_close(a);

	/* The certificate names 127.0.0.1, not localhost. */
	assert_int_equal(sscanf(tls_slapd.ldaps_uri, "ldaps://127.0.0.1:%u/", &port), 1);
	snprintf(localhost_uri, sizeof(localhost_uri), "ldaps://localhost:%u/", port);
	tls_config(&cfg, localhost_uri, true, tls_slapd.ca_file);
	a = open_auth(&cfg);
	assert_refused(a, "alice", "alice-pw", "192.0.2.74", AUTH_UNAVAILABLE);
	auth_close(a);
}

/* ---- local accounts (hub.db) ------------------------------------------------ */

struct local_fixture {
	char dir[256];
	struct hub_config cfg;
	struct hubdb *db;
};

static int local_setup(void **state)
{
	struct local_fixture *f = calloc(1, sizeof(*f));
	char path[PATH_MAX];

	if (!f)
		return -1;
	*state = f;
	if (tu_make_tempdir(f->dir, sizeof(f->dir), "/tmp/gpubox-test-auth-local-XXXXXX") < 0)
		return -1;
	hubconf_set_defaults(&f->cfg);
	snprintf(f->cfg.auth, sizeof(f->cfg.auth), "local");
	snprintf(f->cfg.state_dir, sizeof(f->cfg.state_dir), "%s", f->dir);
	tu_join(path, sizeof(path), f->dir, "hub.db");
	if (hubdb_open(path, &f->cfg, &f->db) < 0) {
		/* cmocka runs no group teardown after a failed setup. */
		tu_remove_tempdir(f->dir);
		return -1;
	}
	return 0;
}

static int local_teardown(void **state)
{
	struct local_fixture *f = *state;

	if (!f)
		return 0;
	hubdb_close(f->db);
	tu_remove_tempdir(f->dir);
	free(f);
	return 0;
}

static void test_hash_password(void **state)
{
	char hash[256], short_buffer[16];

	(void)state;
	assert_int_equal(auth_hash_password("correct horse", hash, sizeof(hash)), 0);
	/* Argon2id with libsodium's interactive limits: 64 MiB, 2 passes. */
	assert_true(strncmp(hash, "$argon2id$v=19$m=65536,t=2,p=1$", 31) == 0);
	assert_int_equal(auth_hash_password("", hash, sizeof(hash)), -EINVAL);
	assert_int_equal(auth_hash_password(" \t ", hash, sizeof(hash)), -EINVAL);
	assert_int_equal(auth_hash_password(NULL, hash, sizeof(hash)), -EINVAL);
	assert_int_equal(auth_hash_password("correct horse", short_buffer, sizeof(short_buffer)), -ENOSPC);
}

static void test_local_login(void **state)
{
	struct local_fixture *f = *state;
	struct hub_member m;
	struct auth *a = NULL;
	char hash[256], shown[128];
	double t0, wrong_time, unknown_time;
	bool admin;

	assert_int_equal(hubdb_member_ensure(f->db, "alice", "Alice Local", &m), 0);
	assert_int_equal(hubdb_member_set_admin(f->db, "alice", true), 0);
	assert_int_equal(hubdb_member_ensure(f->db, "bob", "", &m), 0);
	assert_int_equal(hubdb_member_ensure(f->db, "nopass", "No Password", &m), 0);
	assert_int_equal(auth_hash_password("alice secret", hash, sizeof(hash)), 0);
	assert_int_equal(hubdb_password_set(f->db, "alice", hash), 0);
	assert_int_equal(auth_hash_password("bob secret", hash, sizeof(hash)), 0);
	assert_int_equal(hubdb_password_set(f->db, "bob", hash), 0);

	f->cfg.login_fail_limit = 0;
	assert_int_equal(auth_open(&f->cfg, f->db, &a), 0);
	assert_int_equal(auth_login(a, "alice", "alice secret", "::1", shown, sizeof(shown), &admin), AUTH_OK);
	assert_string_equal(shown, "Alice Local");
	assert_true(admin);
	assert_int_equal(auth_login(a, "bob", "bob secret", "::1", shown, sizeof(shown), &admin), AUTH_OK);
	assert_string_equal(shown, "bob");
	assert_false(admin);
	assert_refused(a, "alice", "bob secret", "::1", AUTH_BAD_CREDENTIALS);
	assert_refused(a, "alice", "", "::1", AUTH_BAD_CREDENTIALS);
	assert_refused(a, "zed", "alice secret", "::1", AUTH_BAD_CREDENTIALS);
	assert_refused(a, "nopass", "anything", "::1", AUTH_BAD_CREDENTIALS);
	assert_refused(a, "a)(", "alice secret", "::1", AUTH_BAD_CREDENTIALS);

	/* An unknown member costs a hash verification too: timing does not
	 * tell who exists.  (Loose bounds: a 2-core VM is noisy.) */
	t0 = now_seconds();
	assert_refused(a, "alice", "wrong password", "::1", AUTH_BAD_CREDENTIALS);
	wrong_time = now_seconds() - t0;
	t0 = now_seconds();
	assert_refused(a, "nobody", "wrong password", "::1", AUTH_BAD_CREDENTIALS);
	unknown_time = now_seconds() - t0;
	print_message("wrong password %.3f s, unknown member %.3f s\n", wrong_time, unknown_time);
	assert_true(unknown_time > wrong_time / 4);
	assert_true(unknown_time < wrong_time * 4 + 0.05);
	auth_close(a);

	/* Throttled like LDAP sign-ins. */
	f->cfg.login_fail_limit = 2;
	assert_int_equal(auth_open(&f->cfg, f->db, &a), 0);
	assert_refused(a, "alice", "guess 1", "192.0.2.50", AUTH_BAD_CREDENTIALS);
	assert_refused(a, "alice", "guess 2", "192.0.2.50", AUTH_BAD_CREDENTIALS);
	assert_refused(a, "alice", "alice secret", "192.0.2.50", AUTH_THROTTLED);
	assert_int_equal(auth_login(a, "alice", "alice secret", "192.0.2.51", shown, sizeof(shown), &admin),
			 AUTH_OK);
	auth_close(a);
}

int main(void)
{
	const struct CMUnitTest offline[] = {
		cmocka_unit_test(test_escape_exact),
		cmocka_unit_test(test_escape_limits),
		cmocka_unit_test(test_form_nul),
		cmocka_unit_test(test_open_uris),
		cmocka_unit_test(test_open_refused),
		cmocka_unit_test(test_hash_password),
	};
	const struct CMUnitTest local[] = {
		cmocka_unit_test(test_local_login),
	};
	const struct CMUnitTest directory[] = {
		cmocka_unit_test(test_login),
		cmocka_unit_test(test_wrong_and_unknown),
		cmocka_unit_test(test_empty_password_trap),
		cmocka_unit_test(test_injection),
		cmocka_unit_test(test_dn_template),
		cmocka_unit_test(test_admin_group_escaped),
		cmocka_unit_test(test_bind_dn),
		cmocka_unit_test(test_starttls_required),
		cmocka_unit_test(test_throttle_member),
		cmocka_unit_test(test_throttle_member_slowed),
		cmocka_unit_test(test_throttle_ipv6_prefix),
		cmocka_unit_test(test_throttle_address),
		cmocka_unit_test(test_success_resets),
		cmocka_unit_test(test_throttle_table_bounded),
		cmocka_unit_test(test_concurrent_logins),
		cmocka_unit_test(test_throttle_parallel),
		/* Last: it stops slapd (and starts it again). */
		cmocka_unit_test(test_directory_stopped),
	};
	const struct CMUnitTest tls[] = {
		cmocka_unit_test(test_starttls_verified),
		cmocka_unit_test(test_ldaps_verified),
	};
	int failed = 0;

	/* Warnings and errors only: the sign-ins made here are thousands. */
	log_init("test_auth", false, LOG_LEVEL_WARN);
	failed += cmocka_run_group_tests_name("auth offline", offline, NULL, NULL);
	failed += cmocka_run_group_tests_name("auth local", local, local_setup, local_teardown);
	if (!slapd_installed()) {
		fprintf(stderr, "test_auth: %s, %s, %s or %s/back_mdb.so is missing (Debian packages slapd and "
				"ldap-utils): the LDAP tests were skipped\n", SLAPD, SLAPADD, SLAPPASSWD, SLAPD_MODULES);
		return failed ? 1 : TU_SKIP;
	}
	failed += cmocka_run_group_tests_name("auth ldap", directory, directory_setup, directory_teardown);
	if (access(OPENSSL, X_OK) == 0)
		failed += cmocka_run_group_tests_name("auth ldap tls", tls, tls_directory_setup,
						      tls_directory_teardown);
	else
		fprintf(stderr, "test_auth: %s is missing (Debian package openssl): the TLS tests were skipped\n",
			OPENSSL);
	return failed ? 1 : 0;
}
