/* SPDX-License-Identifier: MIT */
/*
 * Every parser of procinfo.c on the same input, whatever it holds: the
 * texts come from /proc and the cgroups, which a container can shape
 * (its cgroup names, its processes' names and command lines).  The input
 * is copied into a buffer of exactly its size, so that a read past the
 * length given is caught by the sanitizers.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "monitor/procinfo.h"
#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size ? size : 1);
	char member[40], comm[64], command[PROCINFO_COMMAND_MAX], tiny[2];
	unsigned long long ticks;
	uint64_t a, b;
	double load[3];
	pid_t pid;

	if (!text)
		return 0;
	memcpy(text, data, size);
	procinfo_parse_cgroup(text, size, member, sizeof(member));
	procinfo_parse_cgroup(text, size, tiny, sizeof(tiny));
	procinfo_parse_nspid(text, size, &pid);
	procinfo_parse_stat(text, size, &ticks, comm, sizeof(comm));
	procinfo_parse_stat(text, size, &ticks, tiny, sizeof(tiny));
	procinfo_format_cmdline(text, size, command, sizeof(command));
	procinfo_format_cmdline(text, size, tiny, sizeof(tiny));
	procinfo_parse_cpu(text, size, &a, &b);
	procinfo_parse_meminfo(text, size, &a, &b);
	procinfo_parse_loadavg(text, size, load);
	procinfo_parse_netdev(text, size, &a, &b);
	procinfo_parse_diskstats(text, size, &a, &b);
	free(text);
	return 0;
}
