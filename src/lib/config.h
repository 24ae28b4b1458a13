/* SPDX-License-Identifier: MIT */
/*
 * The configuration shared by gpuboxd and gpubox: one file of
 * "key = value" lines (docs/gpubox.conf.5).  Every key has a default, so
 * an empty or missing file is a working single-server set-up.
 */
#ifndef GPUBOX_CONFIG_H
#define GPUBOX_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_DEFAULT_PATH GPUBOX_SYSCONFDIR "/gpubox/gpubox.conf"
#define CONFIG_PATH_MAX 512
#define CONFIG_NAME_MAX 64
#define CONFIG_TEXT_MAX 1024

struct config_range {
	uint32_t first;
	uint32_t last;
};

/* An IPv4 network, host order, no host bits set. */
struct config_network {
	uint32_t address;
	unsigned prefix;               /* 0..32 */
};

#define CONFIG_EGRESS_DENY_MAX 64
#define CONFIG_APT_CACHE_PORT 3142      /* apt-cacher-ng's */
#define CONFIG_APT_CACHE_HOST_MAX 253

struct gpubox_config {
	char socket_path[CONFIG_PATH_MAX];
	char state_dir[CONFIG_PATH_MAX];
	char authorized_keys_dir[CONFIG_PATH_MAX];
	char member_shell[CONFIG_PATH_MAX];
	char server_name[CONFIG_NAME_MAX];
	char ssh_host[CONFIG_NAME_MAX * 4];
	char admin_group[CONFIG_NAME_MAX];
	char member_group[CONFIG_NAME_MAX];

	struct config_range uid_range;
	struct config_range subid_range;
	struct config_range ssh_port_range;
	struct config_range forward_port_range;

	char bridge[16];               /* IFNAMSIZ */
	char bridge_address[64];       /* host address on the bridge, CIDR */
	char nft_table[CONFIG_NAME_MAX];
	char egress_deny[CONFIG_TEXT_MAX];      /* networks containers may not reach */
	char forward_default_from[CONFIG_TEXT_MAX]; /* a forward's allow-list without its own: any, or networks */
	char apt_cache[CONFIG_NAME_MAX * 5];    /* off, local[:PORT] or http://HOST[:PORT] */

	char template_name[CONFIG_NAME_MAX];
	char template_release[CONFIG_NAME_MAX];
	char template_mirror[CONFIG_TEXT_MAX];
	char template_packages[CONFIG_TEXT_MAX];
	char mounts[CONFIG_TEXT_MAX];           /* host directories in every container */
	char template_setup[CONFIG_PATH_MAX];   /* "": none; files copied into new templates */

	char snapshot_dir[CONFIG_PATH_MAX];     /* "": <state_dir>/snapshots */
	uint64_t snapshot_quota;       /* bytes of archives per member, 0 = no limit */
	uint32_t snapshot_max_count;   /* snapshots per member, 0 = no limit */
	uint32_t snapshot_threads;     /* zstd threads, 0 = half the cores (at least 1) */
	uint64_t disk_reserve;         /* bytes the agent's writes of member data leave
					* free (f_bavail) where they write; 0 = none */

	char gpu_root[CONFIG_PATH_MAX];         /* "": the host; else where /dev, /proc/driver/nvidia
						 * and /etc/ld.so.cache are looked for (tests) */
	char gpu_capabilities[CONFIG_NAME_MAX]; /* driver files injected: utility compute video graphics */
	char gpu_default[CONFIG_TEXT_MAX];      /* a container's GPUs: all, none, or indices/UUIDs */
	char gpu_ldconfig[CONFIG_PATH_MAX];     /* the host's static ldconfig */
	char nvml_interposer[CONFIG_PATH_MAX];  /* "own|anonymous|off [LIBRARY]": NVML inside */
	char reserve_default_duration[CONFIG_NAME_MAX]; /* a reservation without --for ("1h") */
	char reserve_max_duration[CONFIG_NAME_MAX];     /* the longest one, also after --extend */
	uint32_t reserve_max_gpus;     /* GPUs per reservation and per member at once; 0 = all */
	char reserve_shared_gpus[CONFIG_TEXT_MAX];      /* GPUs never reserved: indices/UUIDs */
	uint32_t gpu_cap;              /* GPUs a member holds at once, reserved or in use; 0 = no cap */
	uint32_t reserve_idle_release; /* seconds a reservation's GPUs stay idle before it ends; 0: never */

	uint32_t sample_interval;      /* milliseconds between readings of the server */
	uint32_t history_full;         /* seconds of full-resolution history */
	uint32_t history_days;         /* days of one-minute history */
	char metrics_listen[CONFIG_NAME_MAX];   /* "HOST:PORT" of /metrics; "": none */
	char metrics_token_file[CONFIG_PATH_MAX];/* bearer token; required off loopback */
	bool show_members;             /* gpus and usage name other members */
	char audit_retention[32];      /* how long audit entries are kept: a duration, 0 or forever */
	char guest_cli[CONFIG_PATH_MAX];        /* gpubox bound into containers; "": none */

	uint32_t idle_after;           /* seconds at 0 % with memory held before a GPU is idle */
	uint64_t idle_memory_min;      /* bytes a process holds to count as holding a GPU */
	uint32_t idle_reclaim_after;   /* seconds idle before idle processes end; 0: never */
	uint32_t idle_reclaim_grace;   /* seconds between SIGTERM and SIGKILL */
	char notify_webhook[CONFIG_TEXT_MAX];   /* http(s) URL, or a root-only file holding it; "": none */

	char hub_url[CONFIG_TEXT_MAX];          /* http(s)://host[:port][/path] of gpubox-hub; "": none */
	char hub_token_file[CONFIG_PATH_MAX];   /* this server's token (gpubox-hub server add) */
	uint32_t hub_poll;             /* seconds between conditional requests to the hub */
	bool hub_insecure_http;        /* plain http:// to another host allowed */

	char limits[CONFIG_TEXT_MAX];  /* every member's share unless set for the member (reslimit.h) */
	bool nesting;                  /* Docker and Podman inside, unless set for the member */
	char layers_pool[CONFIG_PATH_MAX];      /* where members' layers live: auto, none or a directory */
	uint64_t layers_pool_size;     /* bytes of the pool's image; 0: 80% of the free space at creation */

	uint32_t start_timeout;        /* seconds until the container's sshd answers */
	uint32_t stop_timeout;         /* seconds of clean shutdown before a kill */
	bool debug;
};

/* nvml_interposer: what NVML's process queries show inside a container. */
enum config_nvml {
	CONFIG_NVML_OFF,           /* the driver's answer: host pids */
	CONFIG_NVML_OWN,           /* the container's processes, by their pids inside */
	CONFIG_NVML_ANONYMOUS,     /* ... and other members' without a pid */
};
/* The mode of the checked key nvml_interposer, and the library to inject
 * (into path; GPUBOX_NVML_INTERPOSER unless the key names one). */
enum config_nvml config_nvml_interposer(const struct gpubox_config *cfg, char *path, size_t len);

/* The checked key audit_retention in seconds; 0: kept forever. */
long long config_audit_retention(const struct gpubox_config *cfg);

struct limits;
/* The server's default limits, from the checked key "limits", and
 * nesting from the key "nesting" unless "limits" names it. */
void config_limits(const struct gpubox_config *cfg, struct limits *out);

/* Fill *cfg with every default. */
void config_set_defaults(struct gpubox_config *cfg);

/*
 * Parse configuration text over the values already in *cfg.  On error
 * returns -EINVAL and writes one sentence naming the line into err.
 */
int config_parse(struct gpubox_config *cfg, const char *text, size_t len,
		 char *err, size_t errlen);

/*
 * Defaults, then the file at path (NULL: $GPUBOX_CONFIG, else the
 * default path).  A missing file is not an error unless it was named
 * explicitly.
 */
int config_load(struct gpubox_config *cfg, const char *path, char *err, size_t errlen);

/*
 * Whether url is plain http:// to a host other than this one's loopback
 * (localhost, 127.0.0.0/8, [::1]): what the agent sends and receives
 * there crosses the network unprotected.  An https:// URL is false.
 */
bool config_hub_url_insecure(const char *url);

/*
 * The networks of egress_deny: IPv4 ADDRESS/PREFIX or a bare ADDRESS (/32),
 * blanks or commas between, at most CONFIG_EGRESS_DENY_MAX.  On error
 * returns -EINVAL and writes one sentence into err.
 */
int config_egress_deny(const char *text, struct config_network out[static CONFIG_EGRESS_DENY_MAX],
		       size_t *n, char *err, size_t errlen);

/* apt_cache: the package cache containers and template builds use. */
enum config_apt_cache_mode {
	CONFIG_APT_CACHE_OFF,
	CONFIG_APT_CACHE_LOCAL,    /* on this server: the bridge's address, port */
	CONFIG_APT_CACHE_URL,      /* the lab's: host, port */
};

struct config_apt_cache {
	enum config_apt_cache_mode mode;
	char host[CONFIG_APT_CACHE_HOST_MAX + 1]; /* URL: a DNS name or dotted IPv4; else "" */
	uint16_t port;
};

/*
 * The text of apt_cache: "off", "local" or "local:PORT" (PORT 1-65535,
 * 3142 if not given), or "http://HOST[:PORT][/]" where HOST is a DNS name
 * or a dotted IPv4 address, not the loopback (containers cannot reach the
 * server's).  Nothing else: the parts end up inside apt's configuration,
 * where a quote, a semicolon or a line break would be syntax.  On error
 * returns -EINVAL and writes one sentence into err.
 */
int config_apt_cache(const char *text, struct config_apt_cache *out, char *err, size_t errlen);

/*
 * "http://HOST:PORT" of a parsed apt_cache; a local cache is named by
 * local_address (the bridge's, as containers see the server).  -ENOENT
 * when it is off, -ENAMETOOLONG when it does not fit.
 */
int config_apt_cache_proxy(const struct config_apt_cache *cache, const char *local_address,
			   char *buf, size_t len);

/*
 * Whether url is a webhook notify_webhook may name: http:// or https://, a
 * host, an optional :PORT, a path and an optional query of URL-safe
 * characters (no user, no fragment, nothing that needs quoting).
 */
bool config_webhook_url_ok(const char *url);

/* reserve_default_duration and reserve_max_duration in seconds (checked
 * keys: never 0). */
long long config_reserve_default_seconds(const struct gpubox_config *cfg);
long long config_reserve_max_seconds(const struct gpubox_config *cfg);

/* Print every key with its current value, in the file's own syntax. */
void config_dump(const struct gpubox_config *cfg, FILE *out);

#endif
