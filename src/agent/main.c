/* SPDX-License-Identifier: MIT */
/*
 * gpuboxd: the gpubox agent, the only privileged program of gpubox.  It
 * reconciles the server with its records at start (bridge, mounts,
 * nftables rules), then serves requests on its Unix socket.  Containers
 * run on without it: LXC daemonises each one, so stopping or killing the
 * agent stops no member's work.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "audit.h"
#include "container/container.h"
#include "hubsync.h"
#include "notify.h"
#include "monitor/monitor.h"
#include "net/net.h"
#include "ops.h"
#include "reservations.h"
#include "state/state.h"
#include "cleanup.h"
#include "daemon.h"
#include "fsutil.h"
#include "log.h"
#include "sdnotify.h"
#include "banned.h"

static volatile int agent_stop;

static void agent_on_signal(int sig)
{
	(void)sig;
	agent_stop = 1;
}

static void agent_usage(FILE *out)
{
	fprintf(out,
		"Usage: gpuboxd [--config FILE] [--foreground] [--debug]\n"
		"       gpuboxd --print-config [--config FILE]\n"
		"\n"
		"The gpubox agent: runs members' containers on this server.\n"
		"\n"
		"  -c, --config FILE   configuration file (default %s, or $GPUBOX_CONFIG)\n"
		"  -f, --foreground    stay in the foreground and log to standard error\n"
		"  -d, --debug         log every request\n"
		"      --print-config  print the configuration in effect and exit\n"
		"  -h, --help          show this help\n"
		"  -V, --version       show the version\n"
		"\n"
		"See gpuboxd(8) and gpubox.conf(5).\n", CONFIG_DEFAULT_PATH);
}

/* A start that failed after going to the background: the starting
 * process exits 1 too. */
static int agent_failed(int *ready_fd)
{
	daemon_ready(ready_fd, 1);
	return 1;
}

/*
 * The kernel's OOM killer, when the whole server runs out of memory,
 * spares the agent: members must still reach it to stop what ran away.
 * What the agent starts inherits the value; each container's init is set
 * back to 0 by LXC as root (lxc.proc.oom_score_adj), which also puts back
 * the floor below which no one inside may lower it.
 */
#define AGENT_OOM_SCORE_ADJ "-900"

static void agent_protect_from_oom(void)
{
	__do_close int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);

	if (fd < 0 || fsutil_write_all(fd, AGENT_OOM_SCORE_ADJ, strlen(AGENT_OOM_SCORE_ADJ)) < 0)
		log_warn("cannot lower the agent's OOM score: %s", strerror(errno));
}

/* apt_cache (checked with the configuration) and the setting the
 * containers get from it, naming the server by the bridge's address. */
static int agent_init_apt_cache(struct agent *a)
{
	char gateway[16], err[256];

	if (config_apt_cache(a->cfg.apt_cache, &a->apt_cache, err, sizeof(err)) < 0)
		return log_error_errno(-EINVAL, 0, "%s", err);
	network_format_address(a->subnet.host_address, gateway);
	return aptproxy_setup(&a->cfg, gateway, &a->aptproxy);
}

static int agent_init(struct agent *a)
{
	struct mounts_entry mounts[MOUNTS_MAX];
	char path[PATH_MAX], err[512];
	size_t nmounts;
	int ret;

	agent_protect_from_oom();
	/* Refuse a bad mounts key now, not at a member's start. */
	if (mounts_parse(a->cfg.mounts, mounts, MOUNTS_MAX, &nmounts, err, sizeof(err)) < 0)
		return log_error_errno(-EINVAL, 0, "%s", err);
	ret = network_parse_subnet(a->cfg.bridge_address, &a->subnet);
	if (ret < 0)
		return log_error_errno(ret, 0, "bridge_address %s is not an IPv4 address with a prefix such as 10.77.0.1/16",
				       a->cfg.bridge_address);
	ret = fsutil_mkdir_p(a->cfg.state_dir, 0711);
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot create %s", a->cfg.state_dir);
	/* Crossed but never listed: containers' roots must walk to their
	 * files below it; everything else below is root's alone (0700). */
	if (chmod(a->cfg.state_dir, 0711) < 0)
		return log_error_errno(-errno, errno, "cannot chmod %s", a->cfg.state_dir);
	ret = agent_init_apt_cache(a);
	if (ret < 0)
		return ret;
	snprintf(a->lxcpath, sizeof(a->lxcpath), "%s/lxc", a->cfg.state_dir);
	/* LXC needs its path crossable by the container's root. */
	ret = fsutil_mkdir_p(a->lxcpath, 0711);
	if (ret == 0 && chmod(a->lxcpath, 0711) < 0)
		ret = -errno;
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot create %s", a->lxcpath);
	snprintf(path, sizeof(path), "%s/state.db", a->cfg.state_dir);
	ret = db_open(path, &a->db);
	if (ret < 0)
		return ret;
	ret = guests_new(&a->guests);
	if (ret < 0)
		return ret;
	snprintf(path, sizeof(path), "%s/history.db", a->cfg.state_dir);
	if (history_open(path, &(struct history_limits){ .full_seconds = a->cfg.history_full,
							 .minute_days = a->cfg.history_days },
			 &a->history) < 0)
		log_warn("no history will be kept: %s cannot be opened", path);
	/* Without it the entries still reach the log, one line each. */
	snprintf(path, sizeof(path), "%s/audit.db", a->cfg.state_dir);
	if (audit_open(path, config_audit_retention(&a->cfg), &a->audit) < 0)
		log_warn("no audit log will be kept in %s: its entries go to this log only", path);
	pthread_mutex_init(&a->members_lock, NULL);
	pthread_mutex_init(&a->rules_lock, NULL);
	pthread_mutex_init(&a->busy_lock, NULL);
	pthread_cond_init(&a->busy_changed, NULL);
	return 0;
}

struct agent_options {
	const char *config_path;
	bool foreground;
	bool debug;
	bool print_config;
};

/* The command line; -1 to go on, or the exit status of a finished run
 * (--help, --version, a usage error). */
static int agent_parse_options(int argc, char **argv, struct agent_options *o)
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
	int opt;

	while ((opt = getopt_long(argc, argv, "c:fdhV", options, NULL)) != -1) {
		switch (opt) {
		case 'c': o->config_path = optarg; break;
		case 'f': o->foreground = true; break;
		case 'd': o->debug = true; break;
		case 'p': o->print_config = true; break;
		case 'h': agent_usage(stdout); return 0;
		case 'V': printf("gpuboxd %s\n", GPUBOX_VERSION); return 0;
		default: agent_usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "gpuboxd: unexpected argument \"%s\"\n", argv[optind]);
		agent_usage(stderr);
		return 2;
	}
	return -1;
}

/* What runs beside the request loop: the collector, the hub's sync and
 * the HTTP server.  -1 when the agent must not start. */
static int agent_start_services(struct agent *a)
{
	int ret;

	/* Before the collector, which tells members and the webhook. */
	if (notices_new(&a->notices) < 0 || notify_start(a, &a->notify) < 0)
		return -1;
	if (idle_open(a, &a->idle) < 0)
		log_warn("idle GPUs will not be pointed out (out of memory)");
	if (collector_start(a, a->history, &a->collector) < 0)
		log_warn("the server will not be sampled: gpubox ps, gpus and /metrics stay empty");
	oomwatch_start(&a->oomwatch);
	if (expiry_start(a, &a->expiry) < 0)
		log_error("temporary limits will not end on time; they end at the next start of the agent");
	/* Before the HTTP server, which takes the hub's pokes; a token file
	 * that others may read stops the agent. */
	if (hubsync_start(a, &a->hubsync) < 0)
		return -1;
	if (!a->cfg.metrics_listen[0])
		return 0;
	ret = httpd_start(a, &a->httpd);
	/* A refused configuration stops the agent; a busy port does not
	 * stop members' containers from being served. */
	if (ret == -EINVAL)
		return -1;
	if (ret < 0)
		log_error("/metrics is not served on %s; the agent goes on without it",
			  a->cfg.metrics_listen);
	return 0;
}

static void agent_stop_services(struct agent *a)
{
	httpd_stop(a->httpd);
	reservations_stop(a);
	hubsync_stop(a->hubsync);
	expiry_stop(a->expiry);
	collector_stop(a->collector);
	idle_close(a->idle);
	/* Requests still under way find no webhook rather than a freed one. */
	notify_stop(__atomic_exchange_n(&a->notify, NULL, __ATOMIC_ACQ_REL));
	oomwatch_stop(a->oomwatch);
	history_close(a->history);
	/* Threads may still be serving, and recording: the audit log stays
	 * open for them (SQLite needs no close); the process exit ends them. */
	audit_flush(a->audit);
}

int main(int argc, char **argv)
{
	static struct agent agent;
	struct agent_options o = { 0 };
	struct sigaction sa = { .sa_handler = agent_on_signal };
	char err[1024];
	int listen_fd, ret, ready_fd = -EBADF;

	ret = agent_parse_options(argc, argv, &o);
	if (ret >= 0)
		return ret;
	if (config_load(&agent.cfg, o.config_path, err, sizeof(err)) < 0) {
		fprintf(stderr, "gpuboxd: %s\n", err);
		return 2;
	}
	if (o.print_config) {
		config_dump(&agent.cfg, stdout);
		return 0;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "gpuboxd: the agent must run as root\n");
		return 1;
	}
	umask(022);
	/* Before any thread: what the agent starts must not inherit it. */
	sdnotify_take_socket();
	log_init("gpuboxd", !o.foreground,
		 o.debug || agent.cfg.debug ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
	if (!o.foreground && daemon_detach(&ready_fd) < 0) {
		fprintf(stderr, "gpuboxd: cannot go to the background: %s\n", strerror(errno));
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	if (agent_init(&agent) < 0)
		return agent_failed(&ready_fd);
	if (ops_reconcile(&agent) < 0)
		log_warn("reconciling with the running system failed; going on");
	/* Before any request: containers' GPUs as the reservations say. */
	if (reservations_start(&agent) < 0)
		return agent_failed(&ready_fd);
	listen_fd = control_listen(agent.cfg.socket_path);
	if (listen_fd < 0 || agent_start_services(&agent) < 0)
		return agent_failed(&ready_fd);
	daemon_ready(&ready_fd, 0);
	/* Under systemd (Type=notify): the socket answers from here on. */
	sdnotify_send("READY=1");
	log_info("gpuboxd %s ready on %s (server %s)", GPUBOX_VERSION, agent.cfg.socket_path,
		 agent.cfg.server_name);
	ret = control_serve(&agent, listen_fd, &agent_stop);
	close(listen_fd);
	unlink(agent.cfg.socket_path);
	sdnotify_send("STOPPING=1");
	log_info("gpuboxd stopping; containers keep running");
	agent_stop_services(&agent);
	return ret < 0 ? 1 : 0;
}
