/* SPDX-License-Identifier: MIT */
/*
 * What /proc and the cgroups say about processes, the host and containers.
 */
#ifndef GPUBOX_AGENT_PROCINFO_H
#define GPUBOX_AGENT_PROCINFO_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "validate.h"

/* ---- procinfo.c: what /proc and the cgroups say about processes --------- */

#define PROCINFO_COMMAND_MAX 128

/* The member whose container a /proc/<pid>/cgroup text names (LXC's
 * "lxc.payload.<name>" or "lxc.monitor.<name>" component, cgroup v1 or
 * v2): 1 and the name into member; 0 for a process of the host; -EINVAL
 * for malformed text or a name that is not a valid member name. */
int procinfo_parse_cgroup(const char *text, size_t len, char *member, size_t memberlen);
/* The pid in the innermost namespace from a /proc/<pid>/status text's
 * "NSpid:" line; -ENOENT without one. */
int procinfo_parse_nspid(const char *text, size_t len, pid_t *inner);
/* From a /proc/<pid>/stat text: the start time in clock ticks after boot
 * (field 22) and comm (between the first '(' and the last ')'). */
int procinfo_parse_stat(const char *text, size_t len, unsigned long long *start_ticks,
			char *comm, size_t commlen);
/* A /proc/<pid>/cmdline (NUL-separated) as one printable line: NULs to
 * spaces, control bytes to '?', cut at outlen - 1. */
void procinfo_format_cmdline(const char *raw, size_t len, char *out, size_t outlen);

struct procinfo {
	pid_t pid;                 /* host */
	pid_t ns_pid;              /* inside its pid namespace (= pid on the host) */
	bool in_container;
	char member[MEMBER_NAME_SIZE];           /* "" for the host */
	char command[PROCINFO_COMMAND_MAX];
	long long started;         /* unix time, seconds */
	unsigned long long start_ticks;
};

/* Everything above for a live process; -ESRCH if it is gone. */
int procinfo_read(pid_t pid, struct procinfo *out);

struct host_stats {
	unsigned ncpus;
	double cpu_percent;        /* of all CPUs, since the previous reading */
	uint64_t mem_total;        /* bytes */
	uint64_t mem_available;
	double load[3];
	uint64_t disk_total;       /* of the file system holding state_dir */
	uint64_t disk_used;
	uint64_t disk_read_bytes;  /* cumulative, every whole disk */
	uint64_t disk_write_bytes;
	uint64_t net_rx_bytes;     /* cumulative, every interface but lo */
	uint64_t net_tx_bytes;
	double disk_read_rate;     /* bytes per second since the previous reading */
	double disk_write_rate;
	double net_rx_rate;
	double net_tx_rate;
};

/* State kept between readings (previous counters, open descriptors). */
struct procinfo_host;
int procinfo_host_open(const char *disk_path, struct procinfo_host **out);
void procinfo_host_close(struct procinfo_host *h);
int procinfo_host_read(struct procinfo_host *h, struct host_stats *out);

/* Parsers behind procinfo_host_read, for tests and fuzzing. */
int procinfo_parse_cpu(const char *text, size_t len, uint64_t *busy, uint64_t *total);
int procinfo_parse_meminfo(const char *text, size_t len, uint64_t *total, uint64_t *available);
int procinfo_parse_loadavg(const char *text, size_t len, double load[3]);
int procinfo_parse_netdev(const char *text, size_t len, uint64_t *rx, uint64_t *tx);
int procinfo_parse_diskstats(const char *text, size_t len, uint64_t *read_bytes,
			     uint64_t *write_bytes);

struct container_stats {
	uint64_t cpu_ns;           /* cumulative CPU time of the container */
	uint64_t mem_used;         /* bytes, page cache excluded where the kernel says */
	uint64_t mem_limit;        /* bytes; 0 no limit */
	uint64_t pids;             /* processes and threads now */
	uint64_t oom_kills;        /* processes the kernel killed for the memory limit */
};

/* A running container's usage from its cgroup (v1 cpuacct + memory, or
 * v2), LXC's "lxc.payload.<name>" directory; -ENOENT if not running. */
int procinfo_container(const char *name, struct container_stats *out);

#endif
