/* SPDX-License-Identifier: MIT */
/*
 * gpubox-hub: the lab's central service (identity, SSH keys, allocations,
 * servers).  Without a command it serves HTTP until told to stop; with
 * one it is the admin's tool and works on the database directly, which a
 * running hub shares (it notices the change within a second):
 *
 *   server add NAME URL [--ssh-host HOST] | server rm NAME | server ls
 *   member ls | member disable NAME | member enable NAME | member admin NAME yes|no
 *   user add NAME | passwd NAME           (local accounts, auth = local)
 *
 * Exit codes: 0 ok, 1 failed, 2 usage (or an error in the configuration).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "cleanup.h"
#include "fsutil.h"
#include "daemon.h"
#include "hub.h"
#include "log.h"
#include "sdnotify.h"
#include "strutil.h"
#include "validate.h"
#include "banned.h"

#define MAIN_EXIT_OK 0
#define MAIN_EXIT_FAILED 1
#define MAIN_EXIT_USAGE 2
#define MAIN_PASSWORD_MAX 1024
#define MAIN_PRUNE_SECONDS 60

static volatile sig_atomic_t main_stop;

static void main_on_signal(int sig)
{
	(void)sig;
	main_stop = 1;
}

struct main_command {
	const char *group;        /* "server", "member", "user", "passwd" */
	const char *name;         /* NULL: the group is the command */
	const char *args;         /* for the usage line */
	int min_args;
	int max_args;
	int (*run)(struct hub *hub, char **args, int nargs, const char *ssh_host);
	const char *help;
};

/* ---- the database ------------------------------------------------------------ */

static int main_open_db(struct hub *hub)
{
	char path[CONFIG_PATH_MAX + 16];
	int ret;

	ret = fsutil_mkdir_p(hub->cfg.state_dir, 0700);
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot create %s", hub->cfg.state_dir);
	snprintf(path, sizeof(path), "%s/hub.db", hub->cfg.state_dir);
	return hubdb_open(path, &hub->cfg, &hub->db);
}

static bool main_name_ok(const char *what, const char *name)
{
	char err[256];

	if (validate_member_name(name, err, sizeof(err)) == 0)
		return true;
	fprintf(stderr, "gpubox-hub: %s \"%.64s\": %s\n", what, name, err);
	return false;
}

/* ---- servers ------------------------------------------------------------------- */

static bool main_url_ok(const char *url)
{
	if (!str_has_prefix(url, "http://") && !str_has_prefix(url, "https://"))
		return false;
	if (strlen(url) >= CONFIG_TEXT_MAX || strlen(url) <= strlen("https://"))
		return false;
	for (const char *p = url; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f || strchr("\"'<>\\`", *p))
			return false;
	return true;
}

/* How agents reach the hub: public_url, else the listen address. */
static void main_hub_url(const struct hub_config *cfg, char *buf, size_t len, bool *unreachable)
{
	char host[64];
	uint16_t port = 0;

	*unreachable = false;
	if (cfg->public_url[0]) {
		snprintf(buf, len, "%s", cfg->public_url);
		return;
	}
	snprintf(buf, len, "%s://%s", cfg->tls_cert[0] ? "https" : "http", cfg->listen);
	if (hubconf_parse_listen(cfg->listen, host, sizeof(host), &port) == 0)
		*unreachable = strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0 ||
			       str_has_prefix(host, "127.") || strcmp(host, "::1") == 0;
}

static int main_server_add(struct hub *hub, char **args, int nargs, const char *ssh_host)
{
	char token[HUB_TOKEN_HEX], url[CONFIG_TEXT_MAX];
	bool unreachable;
	int ret;

	(void)nargs;
	if (!main_name_ok("server name", args[0]))
		return MAIN_EXIT_USAGE;
	if (!main_url_ok(args[1])) {
		fprintf(stderr, "gpubox-hub: the URL must be the agent's http:// or https:// address, such as http://gpu17.lab.example:9400 (its metrics_listen)\n");
		return MAIN_EXIT_USAGE;
	}
	if (ssh_host && !sshconfig_host_ok(ssh_host)) {
		fprintf(stderr, "gpubox-hub: --ssh-host takes a host name or an IP address\n");
		return MAIN_EXIT_USAGE;
	}
	if (main_open_db(hub) < 0)
		return MAIN_EXIT_FAILED;
	ret = hubdb_server_add(hub->db, args[0], args[1], ssh_host ? ssh_host : "", token);
	if (ret == -EEXIST) {
		fprintf(stderr, "gpubox-hub: there is a server named %s already; remove it first with \"gpubox-hub server rm %s\"\n",
			args[0], args[0]);
		return MAIN_EXIT_FAILED;
	}
	if (ret < 0) {
		fprintf(stderr, "gpubox-hub: cannot add the server: %s\n", strerror(-ret));
		return MAIN_EXIT_FAILED;
	}
	main_hub_url(&hub->cfg, url, sizeof(url), &unreachable);
	printf("Server %s added.  Its token (keep it secret):\n\n%s\n\n", args[0], token);
	printf("On %s, as root, write the token into /etc/gpubox/hub.token (mode 0600)\n"
	       "and add these lines to /etc/gpubox/gpubox.conf:\n\n"
	       "hub_url = %s\n"
	       "hub_token_file = /etc/gpubox/hub.token\n", args[0], url);
	if (unreachable)
		printf("\nThe hub listens on %s, which %s cannot reach: set public_url in hub.conf.\n",
		       hub->cfg.listen, args[0]);
	else if (config_hub_url_insecure(url))
		printf("\nThis URL is plain http:// to another host: the agent refuses it unless\n"
		       "hub_insecure_http = yes is added too.  Give the hub tls_cert and tls_key,\n"
		       "or an https:// public_url.\n");
	sodium_memzero(token, sizeof(token));
	return MAIN_EXIT_OK;
}

static int main_server_rm(struct hub *hub, char **args, int nargs, const char *ssh_host)
{
	int ret;

	(void)nargs;
	(void)ssh_host;
	if (!main_name_ok("server name", args[0]))
		return MAIN_EXIT_USAGE;
	if (main_open_db(hub) < 0)
		return MAIN_EXIT_FAILED;
	ret = hubdb_server_remove(hub->db, args[0]);
	if (ret == -ENOENT) {
		fprintf(stderr, "gpubox-hub: there is no server named %s (see \"gpubox-hub server ls\")\n", args[0]);
		return MAIN_EXIT_FAILED;
	}
	if (ret < 0) {
		fprintf(stderr, "gpubox-hub: cannot remove the server: %s\n", strerror(-ret));
		return MAIN_EXIT_FAILED;
	}
	printf("Server %s removed; its token no longer works.\n", args[0]);
	return MAIN_EXIT_OK;
}

static void main_format_time(long long when, char *buf, size_t len)
{
	time_t t = (time_t)when;
	struct tm tm;

	if (when <= 0) {
		snprintf(buf, len, "never");
		return;
	}
	localtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
}

static int main_server_ls(struct hub *hub, char **args, int nargs, const char *ssh_host)
{
	__do_free struct hub_server *servers = NULL;
	size_t n = 0;

	(void)args;
	(void)nargs;
	(void)ssh_host;
	if (main_open_db(hub) < 0 || hubdb_server_list(hub->db, &servers, &n) < 0)
		return MAIN_EXIT_FAILED;
	printf("%-20s %-20s %-19s %s\n", "NAME", "SSH HOST", "LAST CONTACT", "URL");
	for (size_t i = 0; i < n; i++) {
		char when[32];

		main_format_time(servers[i].last_contact, when, sizeof(when));
		printf("%-20s %-20s %-19s %s\n", servers[i].name,
		       servers[i].ssh_host[0] ? servers[i].ssh_host : servers[i].name, when, servers[i].url);
	}
	return MAIN_EXIT_OK;
}

/* ---- members ------------------------------------------------------------- */

static int main_member_ls(struct hub *hub, char **args, int nargs, const char *ssh_host)
{
	__do_free struct hub_member *members = NULL;
	size_t n = 0;

	(void)args;
	(void)nargs;
	(void)ssh_host;
	if (main_open_db(hub) < 0 || hubdb_member_list(hub->db, &members, &n) < 0)
		return MAIN_EXIT_FAILED;
	printf("%-20s %6s %-21s %5s %-14s %s\n", "NAME", "UID", "SUBORDINATE IDS", "PORT", "STATE", "DISPLAY NAME");
	for (size_t i = 0; i < n; i++) {
		const struct hub_member *m = &members[i];
		char ids[32], state[32];

		snprintf(ids, sizeof(ids), "%u-%u", m->subid_base, m->subid_base + 65535u);
		snprintf(state, sizeof(state), "%s%s", m->disabled ? "disabled" : "active",
			 m->admin ? ",admin" : "");
		printf("%-20s %6u %-21s %5u %-14s %s\n", m->name, m->uid, ids, m->ssh_port, state,
		       m->display_name);
	}
	return MAIN_EXIT_OK;
}

static int main_member_flag(struct hub *hub, const char *name, bool admin, bool on)
{
	int ret;

	if (!main_name_ok("member name", name))
		return MAIN_EXIT_USAGE;
	if (main_open_db(hub) < 0)
		return MAIN_EXIT_FAILED;
	ret = admin ? hubdb_member_set_admin(hub->db, name, on) : hubdb_member_set_disabled(hub->db, name, on);
	if (ret == -ENOENT) {
		fprintf(stderr, "gpubox-hub: there is no member named %s: a member appears at the first sign-in\n",
			name);
		return MAIN_EXIT_FAILED;
	}
	if (ret < 0) {
		fprintf(stderr, "gpubox-hub: cannot change %s: %s\n", name, strerror(-ret));
		return MAIN_EXIT_FAILED;
	}
	if (admin) {
		printf("%s is %s an admin of the hub.%s\n", name, on ? "now" : "no longer",
		       on ? "" : "  Their sessions have ended.");
		return MAIN_EXIT_OK;
	}
	/* The agents drop (or restore) the member's keys now, not at their
	 * next poll; a running hub must have seen the change before they ask. */
	usleep((HUBDB_GENERATION_REFRESH_MS + 200) * 1000);
	api_poke_member(hub, name);
	api_poke_stop();
	printf("%s is %s.\n", name, on ? "disabled: no login on any server, sessions ended, ids kept" :
	       "enabled again (sessions from before stay ended)");
	return MAIN_EXIT_OK;
}

static int main_member_disable(struct hub *hub, char **args, int nargs, const char *ssh_host)
{
	(void)nargs;
	(void)ssh_host;
	return main_member_flag(hub, args[0], false, true);
}

static int main_member_enable(struct hub *hub, char **args, int nargs, const char *ssh_host)
{
	(void)nargs;
	(void)ssh_host;
	return main_member_flag(hub, args[0], false, false);
}

static int main_member_admin(struct hub *hub, char **args, int nargs, const char *ssh_host)
{
	bool on;

	(void)nargs;
	(void)ssh_host;
	if (parse_bool(args[1], &on) < 0) {
		fprintf(stderr, "gpubox-hub: member admin takes yes or no, not \"%.32s\"\n", args[1]);
		return MAIN_EXIT_USAGE;
	}
	return main_member_flag(hub, args[0], true, on);
}

/* ---- local accounts ------------------------------------------------------ */

/* One line from standard input, without echo when it is a terminal. */
static int main_read_line(const char *prompt, char *buf, size_t len)
{
	bool tty = isatty(STDIN_FILENO);
	struct termios old, quiet;
	bool restored = true;
	size_t n;

	if (tty) {
		fprintf(stderr, "%s", prompt);
		if (tcgetattr(STDIN_FILENO, &old) == 0) {
			quiet = old;
			quiet.c_lflag &= ~(tcflag_t)ECHO;
			restored = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) != 0;
		}
	}
	if (!fgets(buf, (int)len, stdin))
		buf[0] = '\0';
	if (tty) {
		if (!restored)
			tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	n = strlen(buf);
	if (n == len - 1 && buf[n - 1] != '\n')
		return -E2BIG;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	return 0;
}

static int main_read_password(char *buf, size_t len)
{
	char again[MAIN_PASSWORD_MAX];
	int ret;

	ret = main_read_line("New password: ", buf, len);
	if (ret == 0 && isatty(STDIN_FILENO)) {
		ret = main_read_line("The same again: ", again, sizeof(again));
		if (ret == 0 && strcmp(buf, again) != 0)
			ret = -EINVAL;
		sodium_memzero(again, sizeof(again));
		if (ret == -EINVAL)
			fprintf(stderr, "gpubox-hub: the two passwords differ; nothing changed\n");
	}
	if (ret == -E2BIG)
		fprintf(stderr, "gpubox-hub: the password is longer than %zu characters\n", len - 2);
	return ret;
}

static int main_set_password(struct hub *hub, const char *name, bool create)
{
	char password[MAIN_PASSWORD_MAX], hash[256], existing[256];
	int ret, found;

	if (!main_name_ok("account name", name))
		return MAIN_EXIT_USAGE;
	if (strcmp(hub->cfg.auth, "local") != 0)
		fprintf(stderr, "gpubox-hub: note: auth = %s in hub.conf, so local passwords are not used for sign-in\n",
			hub->cfg.auth);
	if (main_open_db(hub) < 0)
		return MAIN_EXIT_FAILED;
	found = hubdb_password_get(hub->db, name, existing, sizeof(existing));
	if (create && found == 0) {
		fprintf(stderr, "gpubox-hub: the account %s exists already; change its password with \"gpubox-hub passwd %s\"\n",
			name, name);
		return MAIN_EXIT_FAILED;
	}
	if (!create && found == -ENOENT) {
		fprintf(stderr, "gpubox-hub: there is no local account named %s; make it with \"gpubox-hub user add %s\"\n",
			name, name);
		return MAIN_EXIT_FAILED;
	}
	if (main_read_password(password, sizeof(password)) < 0)
		return MAIN_EXIT_FAILED;
	ret = auth_hash_password(password, hash, sizeof(hash));
	sodium_memzero(password, sizeof(password));
	if (ret == -EINVAL) {
		fprintf(stderr, "gpubox-hub: the password is empty, blank or unacceptable; nothing changed\n");
		return MAIN_EXIT_FAILED;
	}
	if (ret == 0)
		ret = hubdb_password_set(hub->db, name, hash);
	if (ret < 0) {
		fprintf(stderr, "gpubox-hub: cannot set the password: %s\n", strerror(-ret));
		return MAIN_EXIT_FAILED;
	}
	printf(create ? "Account %s made; it can sign in now.\n" :
		        "Password of %s changed; its sessions have ended.\n", name);
	return MAIN_EXIT_OK;
}

static int main_user_add(struct hub *hub, char **args, int nargs, const char *ssh_host)
{
	(void)nargs;
	(void)ssh_host;
	return main_set_password(hub, args[0], true);
}

static int main_passwd(struct hub *hub, char **args, int nargs, const char *ssh_host)
{
	(void)nargs;
	(void)ssh_host;
	return main_set_password(hub, args[0], false);
}

static const struct main_command main_commands[] = {
	{ "server", "add", "NAME URL [--ssh-host H]", 2, 2, main_server_add,
	  "register an agent; prints its token" },
	{ "server", "rm", "NAME", 1, 1, main_server_rm, "remove a server and its token" },
	{ "server", "ls", "", 0, 0, main_server_ls, "list the servers, with their last contact" },
	{ "member", "ls", "", 0, 0, main_member_ls, "list members and their allocations" },
	{ "member", "disable", "NAME", 1, 1, main_member_disable,
	  "no more logins anywhere (ids kept)" },
	{ "member", "enable", "NAME", 1, 1, main_member_enable, "let a disabled member in again" },
	{ "member", "admin", "NAME yes|no", 2, 2, main_member_admin, "make a member a hub admin, or not" },
	{ "user", "add", "NAME", 1, 1, main_user_add,
	  "make a local account (auth = local)" },
	{ "passwd", NULL, "NAME", 1, 1, main_passwd, "change a local account's password" },
	{ NULL, NULL, NULL, 0, 0, NULL, NULL },
};

static void main_usage(FILE *out)
{
	fprintf(out,
		"Usage: gpubox-hub [--config FILE] [--foreground] [--debug]\n"
		"       gpubox-hub [--config FILE] COMMAND [ARGS] [--help]\n"
		"       gpubox-hub --print-config [--config FILE]\n"
		"\n"
		"The gpubox hub: the lab's members, their SSH keys and allocations, and\n"
		"the servers they use.  Without a command it serves HTTP.\n"
		"\n"
		"  -c, --config FILE   configuration file (default %s,\n"
		"                      or $GPUBOX_HUB_CONFIG)\n"
		"  -f, --foreground    stay in the foreground and log to standard error\n"
		"  -d, --debug         log every request\n"
		"      --print-config  print the configuration in effect and exit\n"
		"  -h, --help          show this help\n"
		"  -V, --version       show the version\n"
		"\n"
		"Commands (they work on the database in state_dir directly):\n", HUBCONF_DEFAULT_PATH);
	for (const struct main_command *c = main_commands; c->group; c++) {
		char left[64];

		snprintf(left, sizeof(left), "%s%s%s %s", c->group, c->name ? " " : "",
			 c->name ? c->name : "", c->args);
		fprintf(out, "  %-34s %s\n", left, c->help);
	}
	fprintf(out, "\nSee gpubox-hub(8).\n");
}

static void main_command_usage(const struct main_command *c, FILE *out)
{
	fprintf(out, "Usage: gpubox-hub %s%s%s%s%s\n\n%c%s.\n", c->group, c->name ? " " : "",
		c->name ? c->name : "", c->args[0] ? " " : "", c->args, toupper((unsigned char)c->help[0]),
		c->help + 1);
	if (c->run == main_server_add)
		fprintf(out, "\n  --ssh-host HOST   the name members' ssh reaches the server by (default NAME)\n");
}

/* Run the command named by args; its own options (--help, --ssh-host)
 * may stand anywhere among its arguments. */
static int main_run_command(struct hub *hub, char **argv, int argc)
{
	const struct main_command *c;
	char *args[4];
	const char *ssh_host = NULL;
	int nargs = 0, first = 1;

	for (c = main_commands; c->group; c++)
		if (strcmp(c->group, argv[0]) == 0 &&
		    (!c->name || (argc > 1 && strcmp(c->name, argv[1]) == 0)))
			break;
	if (!c->group) {
		fprintf(stderr, "gpubox-hub: unknown command \"%.32s%s%.32s\"\n", argv[0], argc > 1 ? " " : "",
			argc > 1 ? argv[1] : "");
		main_usage(stderr);
		return MAIN_EXIT_USAGE;
	}
	if (c->name)
		first = 2;
	for (int i = first; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			main_command_usage(c, stdout);
			return MAIN_EXIT_OK;
		}
		if (c->run == main_server_add && strcmp(argv[i], "--ssh-host") == 0 && i + 1 < argc) {
			ssh_host = argv[++i];
		} else if (c->run == main_server_add && str_has_prefix(argv[i], "--ssh-host=")) {
			ssh_host = argv[i] + strlen("--ssh-host=");
		} else if (argv[i][0] == '-' && argv[i][1]) {
			fprintf(stderr, "gpubox-hub: unknown option \"%.32s\"\n", argv[i]);
			main_command_usage(c, stderr);
			return MAIN_EXIT_USAGE;
		} else if (nargs < (int)ARRAY_SIZE(args)) {
			args[nargs++] = argv[i];
		} else {
			nargs++;
		}
	}
	if (nargs < c->min_args || nargs > c->max_args) {
		main_command_usage(c, stderr);
		return MAIN_EXIT_USAGE;
	}
	return c->run(hub, args, nargs, ssh_host);
}

/* ---- serving ------------------------------------------------------------------- */

static int main_serve(struct hub *hub, bool foreground)
{
	struct sigaction sa = { .sa_handler = main_on_signal };
	struct MHD_Daemon *daemon = NULL;
	int ready_fd = -EBADF, ret;

	/* Threads start only after the fork: the database is opened first so
	 * that a mistake is told on the terminal. */
	if (main_open_db(hub) < 0)
		return MAIN_EXIT_FAILED;
	ret = auth_open(&hub->cfg, hub->db, &hub->auth);
	if (ret < 0) {
		log_error("cannot set up sign-in (auth = %s)", hub->cfg.auth);
		return MAIN_EXIT_FAILED;
	}
	if (!foreground && daemon_detach(&ready_fd) < 0) {
		fprintf(stderr, "gpubox-hub: cannot go to the background: %s\n", strerror(errno));
		return MAIN_EXIT_FAILED;
	}
	signal(SIGPIPE, SIG_IGN);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	ret = monitor_start(hub, &hub->monitor);
	if (ret < 0)
		log_error_errno(ret, -ret, "cannot start the monitor; serving without it");
	ret = http_start(hub, &daemon);
	if (ret < 0) {
		daemon_ready(&ready_fd, MAIN_EXIT_FAILED);
		return MAIN_EXIT_FAILED;
	}
	log_info("gpubox-hub %s serving %s on %s%s", GPUBOX_VERSION, hub->cfg.lab_name, hub->cfg.listen,
		 hub->cfg.tls_cert[0] ? " (HTTPS)" : "");
	daemon_ready(&ready_fd, MAIN_EXIT_OK);
	/* Under systemd (Type=notify): the port answers from here on. */
	sdnotify_send("READY=1");
	while (!main_stop) {
		hubdb_session_prune(hub->db, (long long)time(NULL));
		sleep(MAIN_PRUNE_SECONDS);
	}
	sdnotify_send("STOPPING=1");
	log_info("gpubox-hub stopping");
	http_stop(daemon);
	monitor_stop(hub->monitor);
	hub->monitor = NULL;
	api_poke_stop();
	auth_close(hub->auth);
	hubdb_close(hub->db);
	return MAIN_EXIT_OK;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "debug", no_argument, NULL, 'd' },
		{ "print-config", no_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static struct hub hub;
	const char *config_path = NULL;
	bool foreground = false, debug = false, print_config = false;
	char err[1024];
	int opt, ret;

	/* "+": options after the command are the command's. */
	while ((opt = getopt_long(argc, argv, "+c:fdhV", options, NULL)) != -1) {
		switch (opt) {
		case 'c': config_path = optarg; break;
		case 'f': foreground = true; break;
		case 'd': debug = true; break;
		case 'p': print_config = true; break;
		case 'h': main_usage(stdout); return MAIN_EXIT_OK;
		case 'V': printf("gpubox-hub %s\n", GPUBOX_VERSION); return MAIN_EXIT_OK;
		default: main_usage(stderr); return MAIN_EXIT_USAGE;
		}
	}
	if (hubconf_load(&hub.cfg, config_path, err, sizeof(err)) < 0) {
		fprintf(stderr, "gpubox-hub: %s\n", err);
		return MAIN_EXIT_USAGE;
	}
	if (debug)
		hub.cfg.debug = true;
	if (print_config) {
		hubconf_dump(&hub.cfg, stdout);
		return MAIN_EXIT_OK;
	}
	/* Tokens, sessions and hashes: nothing the hub writes is for others. */
	umask(077);
	if (optind < argc) {
		log_init("gpubox-hub", false, hub.cfg.debug ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN);
		ret = main_run_command(&hub, argv + optind, argc - optind);
		api_poke_stop();
		hubdb_close(hub.db);
		return ret;
	}
	/* Before any thread: nothing the hub starts inherits it. */
	sdnotify_take_socket();
	log_init("gpubox-hub", !foreground, hub.cfg.debug ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
	return main_serve(&hub, foreground);
}
