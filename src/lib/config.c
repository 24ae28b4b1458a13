/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cidr.h"
#include "cleanup.h"
#include "config.h"
#include "keyfile.h"
#include "reslimit.h"
#include "strutil.h"
#include "timeparse.h"
#include "banned.h"

#define KEY(name, type, field) KEYFILE_KEY(struct gpubox_config, name, type, field)
#define CONFIG_STRING KEYFILE_STRING
#define CONFIG_RANGE KEYFILE_RANGE
#define CONFIG_UINT KEYFILE_UINT
#define CONFIG_BOOL KEYFILE_BOOL
#define CONFIG_SIZE KEYFILE_SIZE
#define CONFIG_DURATION KEYFILE_DURATION

/* The lowest host port a member may be given. */
#define CONFIG_PORT_FIRST 1024u

static const struct keyfile_key config_keys[] = {
	KEY("socket",               CONFIG_STRING, socket_path),
	KEY("state_dir",            CONFIG_STRING, state_dir),
	KEY("authorized_keys_dir",  CONFIG_STRING, authorized_keys_dir),
	KEY("member_shell",         CONFIG_STRING, member_shell),
	KEY("server_name",          CONFIG_STRING, server_name),
	KEY("ssh_host",             CONFIG_STRING, ssh_host),
	KEY("admin_group",          CONFIG_STRING, admin_group),
	KEY("member_group",         CONFIG_STRING, member_group),
	KEY("uid_range",            CONFIG_RANGE,  uid_range),
	KEY("subid_range",          CONFIG_RANGE,  subid_range),
	KEY("ssh_port_range",       CONFIG_RANGE,  ssh_port_range),
	KEY("forward_port_range",   CONFIG_RANGE,  forward_port_range),
	KEY("bridge",               CONFIG_STRING, bridge),
	KEY("bridge_address",       CONFIG_STRING, bridge_address),
	KEY("nft_table",            CONFIG_STRING, nft_table),
	KEY("egress_deny",          CONFIG_STRING, egress_deny),
	KEY("forward_default_from", CONFIG_STRING, forward_default_from),
	KEY("apt_cache",            CONFIG_STRING, apt_cache),
	KEY("template",             CONFIG_STRING, template_name),
	KEY("template_release",     CONFIG_STRING, template_release),
	KEY("template_mirror",      CONFIG_STRING, template_mirror),
	KEY("template_packages",    CONFIG_STRING, template_packages),
	KEY("mounts",               CONFIG_STRING, mounts),
	KEY("template_setup",       CONFIG_STRING, template_setup),
	KEY("snapshot_dir",         CONFIG_STRING, snapshot_dir),
	KEY("snapshot_quota",       CONFIG_SIZE,   snapshot_quota),
	KEY("snapshot_max_count",   CONFIG_UINT,   snapshot_max_count),
	KEY("snapshot_threads",     CONFIG_UINT,   snapshot_threads),
	KEY("disk_reserve",         CONFIG_SIZE,   disk_reserve),
	KEY("gpu_root",             CONFIG_STRING, gpu_root),
	KEY("gpu_capabilities",     CONFIG_STRING, gpu_capabilities),
	KEY("gpu_default",          CONFIG_STRING, gpu_default),
	KEY("gpu_ldconfig",         CONFIG_STRING, gpu_ldconfig),
	KEY("nvml_interposer",      CONFIG_STRING, nvml_interposer),
	KEY("reserve_default_duration", CONFIG_STRING, reserve_default_duration),
	KEY("reserve_max_duration", CONFIG_STRING, reserve_max_duration),
	KEY("reserve_max_gpus",     CONFIG_UINT,   reserve_max_gpus),
	KEY("reserve_shared_gpus",  CONFIG_STRING, reserve_shared_gpus),
	KEY("gpu_cap",              CONFIG_UINT,   gpu_cap),
	KEY("reserve_idle_release", CONFIG_DURATION, reserve_idle_release),
	KEY("sample_interval",      CONFIG_UINT,   sample_interval),
	KEY("history_full",         CONFIG_UINT,   history_full),
	KEY("history_days",         CONFIG_UINT,   history_days),
	KEY("metrics_listen",       CONFIG_STRING, metrics_listen),
	KEY("metrics_token_file",   CONFIG_STRING, metrics_token_file),
	KEY("show_members",         CONFIG_BOOL,   show_members),
	KEY("audit_retention",      CONFIG_STRING, audit_retention),
	KEY("guest_cli",            CONFIG_STRING, guest_cli),
	KEY("idle_after",           CONFIG_DURATION, idle_after),
	KEY("idle_memory_min",      CONFIG_SIZE,   idle_memory_min),
	KEY("idle_reclaim_after",   CONFIG_DURATION, idle_reclaim_after),
	KEY("idle_reclaim_grace",   CONFIG_DURATION, idle_reclaim_grace),
	KEY("notify_webhook",       CONFIG_STRING, notify_webhook),
	KEY("hub_url",              CONFIG_STRING, hub_url),
	KEY("hub_token_file",       CONFIG_STRING, hub_token_file),
	KEY("hub_poll",             CONFIG_UINT,   hub_poll),
	KEY("hub_insecure_http",    CONFIG_BOOL,   hub_insecure_http),
	KEY("limits",               CONFIG_STRING, limits),
	KEY("nesting",              CONFIG_BOOL,   nesting),
	KEY("layers_pool",          CONFIG_STRING, layers_pool),
	KEY("layers_pool_size",     CONFIG_SIZE,   layers_pool_size),
	KEY("start_timeout",        CONFIG_UINT,   start_timeout),
	KEY("stop_timeout",         CONFIG_UINT,   stop_timeout),
	KEY("debug",                CONFIG_BOOL,   debug),
};

static void config_default_server_name(char *buf, size_t len)
{
	char host[256] = "";
	char *dot;

	if (gethostname(host, sizeof(host) - 1) < 0 || !host[0])
		snprintf(host, sizeof(host), "localhost");
	dot = strchr(host, '.');
	if (dot)
		*dot = '\0';
	snprintf(buf, len, "%s", host);
}

void config_set_defaults(struct gpubox_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->socket_path, sizeof(cfg->socket_path), "/run/gpubox/gpubox.sock");
	snprintf(cfg->state_dir, sizeof(cfg->state_dir), "/var/lib/gpubox");
	snprintf(cfg->authorized_keys_dir, sizeof(cfg->authorized_keys_dir),
		 "%s/gpubox/authorized_keys", GPUBOX_SYSCONFDIR);
	snprintf(cfg->member_shell, sizeof(cfg->member_shell), "%s/gpubox", GPUBOX_BINDIR);
	config_default_server_name(cfg->server_name, sizeof(cfg->server_name));
	cfg->ssh_host[0] = '\0'; /* empty: the server name */
	snprintf(cfg->admin_group, sizeof(cfg->admin_group), "gpubox-admin");
	snprintf(cfg->member_group, sizeof(cfg->member_group), "gpubox");
	cfg->uid_range = (struct config_range){ 20000, 29999 };
	cfg->subid_range = (struct config_range){ 1000000, 999999999 };
	cfg->ssh_port_range = (struct config_range){ 2200, 2999 };
	cfg->forward_port_range = (struct config_range){ 30000, 39999 };
	snprintf(cfg->bridge, sizeof(cfg->bridge), "gpbr0");
	snprintf(cfg->bridge_address, sizeof(cfg->bridge_address), "10.77.0.1/16");
	snprintf(cfg->nft_table, sizeof(cfg->nft_table), "gpubox");
	/* Link-local: the cloud providers' metadata services, 169.254.169.254. */
	snprintf(cfg->egress_deny, sizeof(cfg->egress_deny), "169.254.0.0/16");
	snprintf(cfg->forward_default_from, sizeof(cfg->forward_default_from), "any");
	snprintf(cfg->apt_cache, sizeof(cfg->apt_cache), "off");
	snprintf(cfg->template_name, sizeof(cfg->template_name), "default");
	snprintf(cfg->template_release, sizeof(cfg->template_release), "bookworm");
	cfg->template_mirror[0] = '\0'; /* empty: from the host's apt sources */
	snprintf(cfg->template_packages, sizeof(cfg->template_packages),
		 "openssh-server systemd-sysv sudo iproute2 ca-certificates locales less nano");
	cfg->template_setup[0] = '\0';
	cfg->snapshot_dir[0] = '\0';  /* empty: <state_dir>/snapshots */
	cfg->snapshot_quota = 50ULL << 30;
	cfg->snapshot_max_count = 20;
	cfg->snapshot_threads = 0;    /* half the cores */
	cfg->disk_reserve = 2ULL << 30;
	cfg->gpu_root[0] = '\0';
	snprintf(cfg->gpu_capabilities, sizeof(cfg->gpu_capabilities), "utility compute");
	snprintf(cfg->gpu_default, sizeof(cfg->gpu_default), "all");
	snprintf(cfg->gpu_ldconfig, sizeof(cfg->gpu_ldconfig), "/sbin/ldconfig");
	snprintf(cfg->nvml_interposer, sizeof(cfg->nvml_interposer), "own");
	snprintf(cfg->reserve_default_duration, sizeof(cfg->reserve_default_duration), "1h");
	snprintf(cfg->reserve_max_duration, sizeof(cfg->reserve_max_duration), "7d");
	cfg->reserve_max_gpus = 0;    /* every GPU of the server */
	cfg->reserve_shared_gpus[0] = '\0';
	cfg->gpu_cap = 0;
	cfg->sample_interval = 1000;
	cfg->history_full = 3600;
	cfg->history_days = 30;
	snprintf(cfg->metrics_listen, sizeof(cfg->metrics_listen), "127.0.0.1:9400");
	cfg->metrics_token_file[0] = '\0';
	cfg->show_members = true;
	snprintf(cfg->audit_retention, sizeof(cfg->audit_retention), "365d");
	snprintf(cfg->guest_cli, sizeof(cfg->guest_cli), "%s/gpubox", GPUBOX_BINDIR);
	cfg->idle_after = 3600;
	cfg->idle_memory_min = 256ULL << 20;
	cfg->idle_reclaim_after = 0;  /* idle processes are only pointed out */
	cfg->idle_reclaim_grace = 30;
	cfg->notify_webhook[0] = '\0';
	cfg->hub_url[0] = '\0';      /* empty: no hub, members are added here */
	cfg->hub_token_file[0] = '\0';
	cfg->hub_poll = 5;
	cfg->hub_insecure_http = false;
	/* A member's runaway job is killed inside their own container before
	 * the OOM killer picks anyone else's, and a fork bomb stops short of
	 * the server's process table. */
	snprintf(cfg->limits, sizeof(cfg->limits), "memory=75%% pids=10000");
	/* Disk quotas wherever the agent runs: a loop-mounted image when the
	 * state directory's file system has no project quotas. */
	cfg->nesting = true;
	snprintf(cfg->layers_pool, sizeof(cfg->layers_pool), "auto");
	cfg->layers_pool_size = 0;
	cfg->start_timeout = 90;
	cfg->stop_timeout = 30;
	cfg->debug = false;
}

/* Words of text (blanks or commas between) each made only of [A-Za-z0-9-],
 * and each one of allowed when it is given. */
static bool config_words_ok(const char *text, const char *const allowed[])
{
	for (const char *p = text + strspn(text, " \t,"); *p; p += strspn(p, " \t,")) {
		size_t len = strcspn(p, " \t,");
		bool found = !allowed;

		for (size_t i = 0; i < len; i++)
			if (!isalnum((unsigned char)p[i]) && p[i] != '-')
				return false;
		for (size_t i = 0; allowed && allowed[i]; i++)
			found |= strlen(allowed[i]) == len && strncmp(p, allowed[i], len) == 0;
		if (!found)
			return false;
		p += len;
	}
	return true;
}

/* "MODE [PATH]": the mode, and the path (the compiled-in one if none);
 * -EINVAL for anything else. */
static int config_nvml_split(const char *text, enum config_nvml *mode, char *path, size_t len)
{
	static const struct {
		const char *word;
		enum config_nvml mode;
	} modes[] = { { "own", CONFIG_NVML_OWN }, { "anonymous", CONFIG_NVML_ANONYMOUS },
		      { "off", CONFIG_NVML_OFF } };
	const char *end = text + strcspn(text, " \t"), *lib = end + strspn(end, " \t");
	size_t i;

	for (i = 0; i < ARRAY_SIZE(modes); i++)
		if ((size_t)(end - text) == strlen(modes[i].word) &&
		    strncmp(text, modes[i].word, (size_t)(end - text)) == 0)
			break;
	if (i == ARRAY_SIZE(modes))
		return -EINVAL;
	if (lib[0] && (lib[0] != '/' || strpbrk(lib, " \t") || strstr(lib, "/..")))
		return -EINVAL;
	if (mode)
		*mode = modes[i].mode;
	if (path && len)
		snprintf(path, len, "%s", lib[0] ? lib : GPUBOX_NVML_INTERPOSER);
	return 0;
}

static int config_check_gpu(const struct gpubox_config *cfg, char *err, size_t errlen)
{
	static const char *const caps[] = { "utility", "compute", "video", "graphics", "all", NULL };

	if (cfg->gpu_root[0] && (cfg->gpu_root[0] != '/' || strstr(cfg->gpu_root, "/..") ||
				 strpbrk(cfg->gpu_root, " \t"))) {
		set_error(err, errlen, "gpu_root must be empty or an absolute path without \"..\" or blanks");
		return -EINVAL;
	}
	if (!config_words_ok(cfg->gpu_capabilities, caps)) {
		set_error(err, errlen, "gpu_capabilities takes utility, compute, video, graphics or all");
		return -EINVAL;
	}
	if (!config_words_ok(cfg->gpu_default, NULL)) {
		set_error(err, errlen, "gpu_default is all, none, or GPU indices and UUIDs");
		return -EINVAL;
	}
	if (cfg->gpu_ldconfig[0] != '/') {
		set_error(err, errlen, "gpu_ldconfig must be an absolute path");
		return -EINVAL;
	}
	if (config_nvml_split(cfg->nvml_interposer, NULL, NULL, 0) < 0) {
		set_error(err, errlen,
			  "nvml_interposer is own, anonymous or off, then optionally the library's absolute path");
		return -EINVAL;
	}
	return 0;
}

/* The reservations' keys: durations that parse, the default within the
 * maximum, GPUs named as gpu_default names them. */
static int config_check_reserve(const struct gpubox_config *cfg, char *err, size_t errlen)
{
	long long def, max;

	if (parse_duration(cfg->reserve_default_duration, &def) < 0 ||
	    parse_duration(cfg->reserve_max_duration, &max) < 0) {
		set_error(err, errlen, "reserve_default_duration and reserve_max_duration are durations such as 30m, 4h, 7d or 1d12h");
		return -EINVAL;
	}
	if (def > max) {
		set_error(err, errlen, "reserve_default_duration (%s) is longer than reserve_max_duration (%s)",
			  cfg->reserve_default_duration, cfg->reserve_max_duration);
		return -EINVAL;
	}
	if (!config_words_ok(cfg->reserve_shared_gpus, NULL)) {
		set_error(err, errlen, "reserve_shared_gpus is GPU indices and UUIDs, or empty");
		return -EINVAL;
	}
	/* Off (0) or a time: the readings are a second apart at most a
	 * minute, so a shorter one would release on a reading or two. */
	if (cfg->reserve_idle_release > 30 * 86400) {
		set_error(err, errlen, "reserve_idle_release is off or a duration from 1s to 30d, such as 2h");
		return -EINVAL;
	}
	return 0;
}

long long config_reserve_default_seconds(const struct gpubox_config *cfg)
{
	long long seconds = 3600;

	parse_duration(cfg->reserve_default_duration, &seconds);
	return seconds;
}

long long config_reserve_max_seconds(const struct gpubox_config *cfg)
{
	long long seconds = 7 * 86400;

	parse_duration(cfg->reserve_max_duration, &seconds);
	return seconds;
}

enum config_nvml config_nvml_interposer(const struct gpubox_config *cfg, char *path, size_t len)
{
	enum config_nvml mode = CONFIG_NVML_OFF;

	if (config_nvml_split(cfg->nvml_interposer, &mode, path, len) < 0)
		return CONFIG_NVML_OFF;
	return mode;
}

/* The host of a URL: a DNS name ([A-Za-z0-9-] labels joined by dots) or
 * an IPv6 address in brackets; len characters from host. */
static bool config_url_host_ok(const char *host, size_t len)
{
	if (len == 0 || len > 253)
		return false;
	if (host[0] == '[') {
		if (len < 3 || host[len - 1] != ']')
			return false;
		for (size_t i = 1; i < len - 1; i++)
			if (!isxdigit((unsigned char)host[i]) && host[i] != ':' && host[i] != '.')
				return false;
		return true;
	}
	for (size_t i = 0, label = 0; i < len; i++) {
		if (host[i] == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if (isalnum((unsigned char)host[i]) || (host[i] == '-' && label > 0)) {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return host[len - 1] != '.' && host[len - 1] != '-';
}

/* The host of an http:// or https:// URL, an IPv6 address with its
 * brackets: its start, and its length in *len.  NULL for another scheme
 * or a bracket left open. */
static const char *config_url_host(const char *url, size_t *len)
{
	const char *host, *end;

	if (str_has_prefix(url, "https://"))
		host = url + 8;
	else if (str_has_prefix(url, "http://"))
		host = url + 7;
	else
		return NULL;
	if (host[0] == '[') {
		end = strchr(host, ']');
		if (!end)
			return NULL;
		end++;
	} else {
		end = host + strcspn(host, ":/");
	}
	*len = (size_t)(end - host);
	return host;
}

/* The port after a host's ':' (p at the ':'): 1-65535 in digits; the
 * character after it, or NULL. */
static const char *config_url_port(const char *p)
{
	char port[8];
	size_t digits = strcspn(p + 1, "/?");
	uint32_t number;

	if (digits == 0 || digits >= sizeof(port))
		return NULL;
	memcpy(port, p + 1, digits);
	port[digits] = '\0';
	if (strspn(port, "0123456789") != digits || parse_uint32(port, &number) < 0 ||
	    number == 0 || number > 65535)
		return NULL;
	return p + 1 + digits;
}

/*
 * http:// or https://, a host, an optional :PORT (1-65535), an optional
 * path of [A-Za-z0-9._~/-] and, where query is true, an optional ?QUERY
 * of [A-Za-z0-9._~=&%+-].  No user or fragment: libcurl is given nothing
 * else.
 */
static bool config_url_ok(const char *url, bool query)
{
	const char *host, *p;
	size_t hostlen;

	host = config_url_host(url, &hostlen);
	if (!host || !config_url_host_ok(host, hostlen))
		return false;
	p = host + hostlen;
	if (*p == ':' && !(p = config_url_port(p)))
		return false;
	if (*p && *p != '/' && !(query && *p == '?'))
		return false;
	for (; *p && *p != '?'; p++)
		if (!isalnum((unsigned char)*p) && !strchr("._~/-", *p))
			return false;
	if (!*p)
		return true;
	if (!query)
		return false;
	for (p++; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("._~=&%+-", *p))
			return false;
	return true;
}

/* hub_url: the agent appends /api/v1/... to it, so no query. */
static bool config_hub_url_ok(const char *url)
{
	return config_url_ok(url, false);
}

bool config_webhook_url_ok(const char *url)
{
	return strlen(url) <= 512 && config_url_ok(url, true);
}

bool config_hub_url_insecure(const char *url)
{
	const char *host;
	char name[256];
	size_t len;
	struct in_addr v4;
	struct in6_addr v6;

	if (!str_has_prefix(url, "http://"))
		return false;
	host = config_url_host(url, &len);
	if (!host)
		return true;
	if (host[0] == '[') {
		host++;
		len -= 2;
	}
	if (len >= sizeof(name))
		return true;
	memcpy(name, host, len);
	name[len] = '\0';
	/* inet_pton, not inet_aton: "127.1" or "127.0.0.1.example.org" are
	 * names a resolver may send anywhere. */
	if (inet_pton(AF_INET, name, &v4) == 1)
		return (ntohl(v4.s_addr) >> 24) != 127;
	if (inet_pton(AF_INET6, name, &v6) == 1)
		return !IN6_IS_ADDR_LOOPBACK(&v6);
	return strcasecmp(name, "localhost") != 0;
}

static int config_check_hub(const struct gpubox_config *cfg, char *err, size_t errlen)
{
	if (cfg->hub_poll < 1 || cfg->hub_poll > 3600) {
		set_error(err, errlen, "hub_poll is in seconds, from 1 to 3600");
		return -EINVAL;
	}
	if (!cfg->hub_url[0])
		return 0;
	if (strlen(cfg->hub_url) > 512 || !config_hub_url_ok(cfg->hub_url)) {
		set_error(err, errlen, "hub_url must be http:// or https://, a host name or address, an optional :PORT and an optional path, such as https://hub.example.org");
		return -EINVAL;
	}
	if (cfg->hub_token_file[0] != '/') {
		set_error(err, errlen, "hub_url needs hub_token_file: the absolute path of the file holding this server's token (gpubox-hub server add)");
		return -EINVAL;
	}
	if (config_hub_url_insecure(cfg->hub_url) && !cfg->hub_insecure_http) {
		set_error(err, errlen, "hub_url is plain http:// to another host: anyone on the network between could read this server's token and the members' keys, and change its members; use https://, or set hub_insecure_http = yes if that network is trusted");
		return -EINVAL;
	}
	return 0;
}

static uint32_t config_mask(unsigned prefix)
{
	return prefix == 0 ? 0 : UINT32_MAX << (32 - prefix);
}

static void config_format_network(const struct config_network *net, char *buf, size_t len)
{
	struct in_addr in = { .s_addr = htonl(net->address) };
	char address[INET_ADDRSTRLEN];

	inet_ntop(AF_INET, &in, address, sizeof(address));
	snprintf(buf, len, "%s/%u", address, net->prefix);
}

/* ADDRESS/PREFIX or a bare ADDRESS (/32), len characters at text; host
 * bits are kept for the caller to judge. */
static int config_parse_network(const char *text, size_t len, struct config_network *out)
{
	char word[INET_ADDRSTRLEN + 3];
	struct in_addr in;
	uint32_t prefix = 32;
	char *slash;

	if (len >= sizeof(word))
		return -EINVAL;
	memcpy(word, text, len);
	word[len] = '\0';
	slash = strchr(word, '/');
	if (slash) {
		*slash = '\0';
		if (strlen(slash + 1) > 2 || parse_uint32(slash + 1, &prefix) < 0 || prefix > 32)
			return -EINVAL;
	}
	/* inet_pton: exactly four decimal parts, unlike inet_aton's "10.1". */
	if (inet_pton(AF_INET, word, &in) != 1)
		return -EINVAL;
	out->address = ntohl(in.s_addr);
	out->prefix = prefix;
	return 0;
}

int config_egress_deny(const char *text, struct config_network out[static CONFIG_EGRESS_DENY_MAX],
		       size_t *n, char *err, size_t errlen)
{
	*n = 0;
	for (const char *p = text + strspn(text, " \t,"); *p; p += strspn(p, " \t,")) {
		size_t len = strcspn(p, " \t,");
		struct config_network net;
		char exact[INET_ADDRSTRLEN + 3];

		if (config_parse_network(p, len, &net) < 0) {
			set_error(err, errlen, "egress_deny: \"%.*s\" is not an IPv4 network such as 192.0.2.0/24",
				  (int)(len > 64 ? 64 : len), p);
			return -EINVAL;
		}
		if (net.address & ~config_mask(net.prefix)) {
			net.address &= config_mask(net.prefix);
			config_format_network(&net, exact, sizeof(exact));
			set_error(err, errlen, "egress_deny: %.*s has host bits set; the network is %s",
				  (int)len, p, exact);
			return -EINVAL;
		}
		if (*n == CONFIG_EGRESS_DENY_MAX) {
			set_error(err, errlen, "egress_deny takes at most %d networks", CONFIG_EGRESS_DENY_MAX);
			return -EINVAL;
		}
		out[(*n)++] = net;
		p += len;
	}
	return 0;
}

/* egress_deny parses, and spares the containers' own subnet: they must
 * reach their gateway.  A bridge_address that does not parse is the
 * agent's to refuse (network_setup). */
static int config_check_egress(const struct gpubox_config *cfg, char *err, size_t errlen)
{
	struct config_network deny[CONFIG_EGRESS_DENY_MAX], subnet;
	char subnet_text[INET_ADDRSTRLEN + 3], deny_text[INET_ADDRSTRLEN + 3];
	const char *slash = strchr(cfg->bridge_address, '/');
	size_t n;

	if (config_egress_deny(cfg->egress_deny, deny, &n, err, errlen) < 0)
		return -EINVAL;
	if (!slash || config_parse_network(cfg->bridge_address, strlen(cfg->bridge_address), &subnet) < 0)
		return 0;
	subnet.address &= config_mask(subnet.prefix);
	for (size_t i = 0; i < n; i++) {
		uint32_t mask = config_mask(deny[i].prefix < subnet.prefix ? deny[i].prefix : subnet.prefix);

		if ((deny[i].address & mask) != (subnet.address & mask))
			continue;
		config_format_network(&deny[i], deny_text, sizeof(deny_text));
		config_format_network(&subnet, subnet_text, sizeof(subnet_text));
		set_error(err, errlen, "egress_deny: %s overlaps the containers' own subnet %s (bridge_address), whose gateway they must reach",
			  deny_text, subnet_text);
		return -EINVAL;
	}
	return 0;
}

/* forward_default_from: any, or networks as cidr.h reads them. */
static int config_check_forward_from(const struct gpubox_config *cfg, char *err, size_t errlen)
{
	struct cidr from[CIDR_LIST_MAX];
	char why[256];
	size_t n;

	if (cidr_parse_list(cfg->forward_default_from, from, &n, why, sizeof(why)) < 0) {
		set_error(err, errlen, "forward_default_from: %s", why);
		return -EINVAL;
	}
	return 0;
}

/* ---- apt_cache ------------------------------------------------------------ */

#define CONFIG_APT_CACHE_USAGE \
	"apt_cache is off, local, local:PORT or http://HOST[:PORT] (a host name or IPv4 address and nothing after it), such as http://cache.example.org:3142"

/* A port of apt_cache: len digits at text, 1-65535. */
static int config_apt_cache_port(const char *text, size_t len, uint16_t *port)
{
	char digits[6];

	if (len == 0 || len >= sizeof(digits))
		return -EINVAL;
	memcpy(digits, text, len);
	digits[len] = '\0';
	return parse_port(digits, port);
}

/* Whether an IPv4 address (host order) is one no container can reach
 * the server's cache at: "this host" (0/8), the loopback, multicast and
 * above. */
static bool config_apt_cache_unreachable(uint32_t address)
{
	return (address >> 24) == 0 || (address >> 24) == 127 || (address >> 28) >= 14;
}

/* The host of apt_cache's URL, len characters: a DNS name or a dotted
 * IPv4 address that containers can reach.  A name whose last label is
 * all digits is an address to a resolver ("10.1"), so it must be one. */
static int config_apt_cache_host(const char *host, size_t len, char *name, char *err,
				 size_t errlen)
{
	const char *last;
	struct in_addr in;

	if (host[0] == '[') {
		set_error(err, errlen, "apt_cache: containers have no IPv6; name the cache by host name or IPv4 address");
		return -EINVAL;
	}
	if (!config_url_host_ok(host, len) || len > CONFIG_APT_CACHE_HOST_MAX) {
		set_error(err, errlen, CONFIG_APT_CACHE_USAGE);
		return -EINVAL;
	}
	memcpy(name, host, len);
	name[len] = '\0';
	last = strrchr(name, '.');
	last = last ? last + 1 : name;
	if (strspn(last, "0123456789") == strlen(last) && inet_pton(AF_INET, name, &in) != 1) {
		set_error(err, errlen, "apt_cache: %s is neither a host name nor an IPv4 address", name);
		return -EINVAL;
	}
	if ((inet_pton(AF_INET, name, &in) == 1 && config_apt_cache_unreachable(ntohl(in.s_addr))) ||
	    strcasecmp(name, "localhost") == 0 ||
	    (len > 10 && strcasecmp(name + len - 10, ".localhost") == 0)) {
		set_error(err, errlen, "apt_cache: containers cannot reach %s; for a cache on this server write apt_cache = local",
			  name);
		return -EINVAL;
	}
	return 0;
}

/* http://HOST[:PORT][/] */
static int config_apt_cache_url(const char *text, struct config_apt_cache *out, char *err,
				size_t errlen)
{
	const char *host, *end;
	size_t hostlen;

	if (!str_has_prefix(text, "http://")) {
		set_error(err, errlen, "%s", str_has_prefix(text, "https://") ?
			  "apt_cache takes http://: a package cache is a plain HTTP proxy (apt checks the packages' signatures itself)" :
			  CONFIG_APT_CACHE_USAGE);
		return -EINVAL;
	}
	host = text + strlen("http://");
	hostlen = strcspn(host, ":/");
	if (config_apt_cache_host(host, hostlen, out->host, err, errlen) < 0)
		return -EINVAL;
	end = host + hostlen;
	out->port = CONFIG_APT_CACHE_PORT;
	if (*end == ':') {
		size_t digits = strcspn(end + 1, "/");

		if (config_apt_cache_port(end + 1, digits, &out->port) < 0) {
			set_error(err, errlen, "apt_cache: the port must be a number from 1 to 65535");
			return -EINVAL;
		}
		end += 1 + digits;
	}
	if (strcmp(end, "") != 0 && strcmp(end, "/") != 0) {
		set_error(err, errlen, CONFIG_APT_CACHE_USAGE);
		return -EINVAL;
	}
	out->mode = CONFIG_APT_CACHE_URL;
	return 0;
}

/* local or local:PORT */
static int config_apt_cache_local(const char *text, struct config_apt_cache *out, char *err,
				  size_t errlen)
{
	out->port = CONFIG_APT_CACHE_PORT;
	if (text[5] == ':' && config_apt_cache_port(text + 6, strlen(text + 6), &out->port) < 0) {
		set_error(err, errlen, "apt_cache: the port of local:PORT must be a number from 1 to 65535");
		return -EINVAL;
	}
	out->mode = CONFIG_APT_CACHE_LOCAL;
	return 0;
}

int config_apt_cache(const char *text, struct config_apt_cache *out, char *err, size_t errlen)
{
	struct config_apt_cache cache = { .mode = CONFIG_APT_CACHE_OFF };
	int ret = 0;

	if (strcmp(text, "local") == 0 || str_has_prefix(text, "local:"))
		ret = config_apt_cache_local(text, &cache, err, errlen);
	else if (strcmp(text, "off") != 0)
		ret = config_apt_cache_url(text, &cache, err, errlen);
	*out = ret < 0 ? (struct config_apt_cache){ .mode = CONFIG_APT_CACHE_OFF } : cache;
	return ret;
}

int config_apt_cache_proxy(const struct config_apt_cache *cache, const char *local_address,
			   char *buf, size_t len)
{
	const char *host = cache->mode == CONFIG_APT_CACHE_LOCAL ? local_address : cache->host;
	int n;

	if (cache->mode == CONFIG_APT_CACHE_OFF)
		return -ENOENT;
	n = snprintf(buf, len, "http://%s:%u", host, (unsigned)cache->port);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* apt_cache parses; one named by an address of the containers' own
 * subnet would be the server (use local) or a member's container. */
static int config_check_apt_cache(const struct gpubox_config *cfg, char *err, size_t errlen)
{
	struct config_apt_cache cache;
	struct config_network subnet;
	struct in_addr in;
	uint32_t mask;

	if (config_apt_cache(cfg->apt_cache, &cache, err, errlen) < 0)
		return -EINVAL;
	if (cache.mode != CONFIG_APT_CACHE_URL || inet_pton(AF_INET, cache.host, &in) != 1 ||
	    !strchr(cfg->bridge_address, '/') ||
	    config_parse_network(cfg->bridge_address, strlen(cfg->bridge_address), &subnet) < 0)
		return 0;
	mask = config_mask(subnet.prefix);
	if ((ntohl(in.s_addr) & mask) != (subnet.address & mask))
		return 0;
	set_error(err, errlen, "apt_cache: %s is in the containers' own subnet (bridge_address %s); for a cache on this server write apt_cache = local",
		  cache.host, cfg->bridge_address);
	return -EINVAL;
}

/* A range of host ports given to members: a port below 1024 (22 among
 * them) is the server's own service, which a member's DNAT would take
 * over, with the passwords typed into it. */
static int config_check_ports(const char *key, const struct config_range *range, char *err,
			      size_t errlen)
{
	if (range->first < CONFIG_PORT_FIRST || range->last > 65535) {
		set_error(err, errlen, "%s %u-%u must lie within %u-65535: ports below %u (22 among them) are the server's own services, which a member's forwarded port would take over",
			 key, range->first, range->last, CONFIG_PORT_FIRST, CONFIG_PORT_FIRST);
		return -EINVAL;
	}
	return 0;
}

static int config_check_limits(const struct gpubox_config *cfg, char *err, size_t errlen)
{
	struct limits limits = { 0 };
	char why[256];

	if (limits_parse_list(cfg->limits, &limits, why, sizeof(why)) < 0 ||
	    limits_check(&limits, 0, why, sizeof(why)) < 0) {
		set_error(err, errlen, "limits: %s", why);
		return -EINVAL;
	}
	return 0;
}

/* audit_retention: a duration as timeparse.h reads one ("365d", "8w"),
 * from an hour to a century, or 0 / forever. */
static int config_parse_retention(const char *text, long long *seconds)
{
	if (strcmp(text, "0") == 0 || strcmp(text, "forever") == 0) {
		*seconds = 0;
		return 0;
	}
	if (parse_duration(text, seconds) < 0 || *seconds < 3600 || *seconds > 36500LL * 86400)
		return -EINVAL;
	return 0;
}

static int config_check_audit(const struct gpubox_config *cfg, char *err, size_t errlen)
{
	long long seconds;

	if (config_parse_retention(cfg->audit_retention, &seconds) < 0) {
		set_error(err, errlen, "audit_retention is a duration from 1h to 36500d such as 365d or 26w, or 0 or forever to keep every entry");
		return -EINVAL;
	}
	return 0;
}

long long config_audit_retention(const struct gpubox_config *cfg)
{
	long long seconds = 0;

	return config_parse_retention(cfg->audit_retention, &seconds) == 0 ? seconds : 0;
}

void config_limits(const struct gpubox_config *cfg, struct limits *out)
{
	char why[8];

	*out = (struct limits){ 0 };
	limits_parse_list(cfg->limits, out, why, sizeof(why));
	if (!limits_given(out, LIMIT_NESTING))
		limits_parse_assignment(cfg->nesting ? "nesting=yes" : "nesting=no", out, why,
					sizeof(why));
}

/* layers_pool: auto, none, or an absolute path the agent bind-mounts
 * (no "..", no blanks: it is compared and mounted as given). */
static int config_check_layers(const struct gpubox_config *cfg, char *err, size_t errlen)
{
	const char *pool = cfg->layers_pool;

	if (strcmp(pool, "auto") == 0 || strcmp(pool, "none") == 0)
		return 0;
	if (pool[0] != '/' || strstr(pool, "/..") || strpbrk(pool, " \t") || strcmp(pool, "/") == 0) {
		set_error(err, errlen, "layers_pool is auto, none, or the absolute path of a directory on a file system with project quotas");
		return -EINVAL;
	}
	return 0;
}

/*
 * The idle GPU keys: two notices (at idle_after and twice it) come before
 * any process is ended, so idle_reclaim_after is at least twice
 * idle_after.  notify_webhook: a URL, or the absolute path of a file
 * holding one (the agent reads it; gpubox.conf is readable by members).
 */
static int config_check_idle(const struct gpubox_config *cfg, char *err, size_t errlen)
{
	const char *hook = cfg->notify_webhook;

	if (cfg->idle_after < 1 || cfg->idle_after > 30 * 86400) {
		set_error(err, errlen, "idle_after is a duration from 1s to 30d, such as 1h");
		return -EINVAL;
	}
	if (cfg->idle_memory_min < (1ULL << 20)) {
		set_error(err, errlen, "idle_memory_min is a size of at least 1M, such as 256M");
		return -EINVAL;
	}
	if (cfg->idle_reclaim_after && cfg->idle_reclaim_after / 2 < cfg->idle_after) {
		set_error(err, errlen, "idle_reclaim_after must be off or at least twice idle_after (%us): a member gets two notices first",
			  cfg->idle_after);
		return -EINVAL;
	}
	if (cfg->idle_reclaim_grace < 1 || cfg->idle_reclaim_grace > 3600) {
		set_error(err, errlen, "idle_reclaim_grace is a duration from 1s to 1h, such as 30s");
		return -EINVAL;
	}
	if (hook[0] == '/' ? strstr(hook, "/..") || strpbrk(hook, " \t") :
	    hook[0] && !config_webhook_url_ok(hook)) {
		set_error(err, errlen, "notify_webhook is an http:// or https:// URL (a host, an optional :PORT, path and query of plain URL characters), or the absolute path of a file holding one");
		return -EINVAL;
	}
	return 0;
}

/* Checks that span keys, after the whole file is read. */
static int config_check(const struct gpubox_config *cfg, char *err, size_t errlen)
{
	static int (*const areas[])(const struct gpubox_config *, char *, size_t) = {
		config_check_gpu, config_check_hub, config_check_limits, config_check_egress,
		config_check_forward_from, config_check_layers, config_check_audit,
		config_check_apt_cache, config_check_idle, config_check_reserve,
	};

	for (size_t i = 0; i < ARRAY_SIZE(areas); i++)
		if (areas[i](cfg, err, errlen) < 0)
			return -EINVAL;
	if (cfg->sample_interval < 100 || cfg->sample_interval > 60000) {
		set_error(err, errlen, "sample_interval is in milliseconds, from 100 to 60000");
		return -EINVAL;
	}
	if (cfg->history_full < 60 || cfg->history_full > 7 * 86400 ||
	    cfg->history_days < 1 || cfg->history_days > 3660) {
		set_error(err, errlen, "history_full takes 60 to 604800 seconds and history_days 1 to 3660 days");
		return -EINVAL;
	}
	if (cfg->guest_cli[0] && (cfg->guest_cli[0] != '/' || strpbrk(cfg->guest_cli, " \t"))) {
		set_error(err, errlen, "guest_cli must be empty or an absolute path without blanks");
		return -EINVAL;
	}
	if (config_check_ports("ssh_port_range", &cfg->ssh_port_range, err, errlen) < 0 ||
	    config_check_ports("forward_port_range", &cfg->forward_port_range, err, errlen) < 0)
		return -EINVAL;
	if (cfg->ssh_port_range.first <= cfg->forward_port_range.last &&
	    cfg->forward_port_range.first <= cfg->ssh_port_range.last) {
		set_error(err, errlen, "ssh_port_range and forward_port_range overlap");
		return -EINVAL;
	}
	if (cfg->subid_range.first == 0 ||
	    (uint64_t)cfg->subid_range.last - cfg->subid_range.first + 1 < 65536) {
		set_error(err, errlen, "subid_range must start above 0 and hold at least 65536 ids");
		return -EINVAL;
	}
	/* A member has the same uid inside the container, which maps 65536 ids. */
	if (cfg->uid_range.first == 0 || cfg->uid_range.last > 65535) {
		set_error(err, errlen, "uid_range must lie within 1-65535 (a member has the same uid inside the container)");
		return -EINVAL;
	}
	if (cfg->uid_range.first <= cfg->subid_range.last &&
	    cfg->subid_range.first <= cfg->uid_range.last) {
		set_error(err, errlen, "uid_range and subid_range overlap");
		return -EINVAL;
	}
	return 0;
}

static int config_check_any(const void *cfg, char *err, size_t errlen)
{
	return config_check(cfg, err, errlen);
}

static const struct keyfile_spec config_spec = {
	.keys = config_keys,
	.nkeys = ARRAY_SIZE(config_keys),
	.manual = "gpubox.conf(5)",
	.check = config_check_any,
};

int config_parse(struct gpubox_config *cfg, const char *text, size_t len,
		 char *err, size_t errlen)
{
	return keyfile_parse(cfg, &config_spec, text, len, err, errlen);
}

int config_load(struct gpubox_config *cfg, const char *path, char *err, size_t errlen)
{
	bool named = path != NULL;

	config_set_defaults(cfg);
	if (!path)
		path = getenv("GPUBOX_CONFIG");
	if (path && *path)
		named = true;
	else
		path = CONFIG_DEFAULT_PATH;
	return keyfile_load(cfg, &config_spec, path, named, err, errlen);
}

void config_dump(const struct gpubox_config *cfg, FILE *out)
{
	keyfile_dump(cfg, &config_spec, out);
}
