/* SPDX-License-Identifier: MIT */
/*
 * What /proc and the cgroups say about processes, the host and the
 * containers: whose container a process runs in (LXC 5 puts a container's
 * processes below a cgroup named "lxc.payload.<name>", its monitor in
 * "lxc.monitor.<name>"), its pid inside the container, when it started
 * and what it runs; the host's CPU, memory, load, disk and network; a
 * container's CPU time and memory from its cgroup (v1 or v2).
 *
 * The sampler calls this every second, so the host's files stay open and
 * are re-read with pread() at offset 0, and nothing is allocated per
 * reading.  Every text is parsed as untrusted input: the parsers take a
 * length, never rely on a terminating NUL, check every number for
 * overflow and refuse what does not look like the kernel's format.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "monitor/procinfo.h"
#include "cleanup.h"
#include "fsutil.h"
#include "log.h"
#include "validate.h"
#include "banned.h"

#define PROCINFO_PAYLOAD "lxc.payload."
#define PROCINFO_MONITOR "lxc.monitor."
/* cgroup v2 marks the path of a removed cgroup (a zombie's) this way. */
#define PROCINFO_DELETED " (deleted)"

/* Bounds of the per-process files read; a longer text is cut to whole lines. */
#define PROCINFO_CGROUP_MAX 16384
#define PROCINFO_STATUS_MAX 8192
#define PROCINFO_STAT_MAX 4096
#define PROCINFO_CMDLINE_MAX 512
#define PROCINFO_COMM_MAX 64
/* A cgroup's small files (cpu.stat, memory.stat, one number). */
#define PROCINFO_CGROUP_FILE_MAX 8192
/* The host's buffer: /proc/stat of a machine with many CPUs and interrupts
 * is large; it grows up to the maximum, beyond which whole lines are kept. */
#define PROCINFO_HOST_BUF_START 65536
#define PROCINFO_HOST_BUF_MAX (4 << 20)
/* cgroup v1 writes "no limit" as a huge number (PAGE_COUNTER_MAX pages). */
#define PROCINFO_V1_NO_LIMIT (1ULL << 60)
#define PROCINFO_CGROUP_ROOT "/sys/fs/cgroup"

/* ---- reading text: lines and numbers in a buffer of known length ------- */

static bool procinfo_is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static bool procinfo_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static const char *procinfo_skip_blanks(const char *p, const char *end)
{
	while (p < end && procinfo_is_blank(*p))
		p++;
	return p;
}

/* The next line of [*pos, end) into [*line, *line_end), its newline left out. */
static bool procinfo_next_line(const char **pos, const char *end, const char **line,
			       const char **line_end)
{
	const char *nl;

	if (*pos >= end)
		return false;
	nl = memchr(*pos, '\n', (size_t)(end - *pos));
	*line = *pos;
	*line_end = nl ? nl : end;
	*pos = nl ? nl + 1 : end;
	return true;
}

/* A decimal number after blanks at *p, which must end at a blank or at end;
 * *p is left after it.  -EINVAL for anything else, -ERANGE past 2^64. */
static int procinfo_take_u64(const char **p, const char *end, uint64_t *out)
{
	const char *c = procinfo_skip_blanks(*p, end), *start = c;
	uint64_t v = 0;

	for (; c < end && procinfo_is_digit(*c); c++)
		if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t)(*c - '0'), &v))
			return -ERANGE;
	if (c == start || (c < end && !procinfo_is_blank(*c)))
		return -EINVAL;
	*p = c;
	*out = v;
	return 0;
}

/* A load average ("0.52"): digits, then optionally '.' and digits. */
static int procinfo_take_decimal(const char **p, const char *end, double *out)
{
	const char *c = procinfo_skip_blanks(*p, end), *start = c;
	double fraction = 0, scale = 1;
	uint64_t whole = 0;

	for (; c < end && procinfo_is_digit(*c); c++)
		if (__builtin_mul_overflow(whole, 10, &whole) ||
		    __builtin_add_overflow(whole, (uint64_t)(*c - '0'), &whole))
			return -ERANGE;
	if (c == start)
		return -EINVAL;
	if (c < end && *c == '.') {
		const char *digits = ++c;

		for (; c < end && procinfo_is_digit(*c); c++)
			if (c - digits < 9) {
				scale /= 10;
				fraction += (*c - '0') * scale;
			}
		if (c == digits)
			return -EINVAL;
	}
	if (c < end && !procinfo_is_blank(*c))
		return -EINVAL;
	*p = c;
	*out = (double)whole + fraction;
	return 0;
}

/* The number on the first line "KEY value" or "KEY: value" (meminfo,
 * /proc/stat's btime, cpu.stat, memory.stat); -ENOENT without one. */
static int procinfo_find_u64(const char *text, size_t len, const char *key, uint64_t *out)
{
	const char *pos = text, *end = text + len, *line, *line_end;
	size_t keylen = strlen(key);

	while (procinfo_next_line(&pos, end, &line, &line_end)) {
		const char *p = line + keylen;

		if ((size_t)(line_end - line) <= keylen || memcmp(line, key, keylen) != 0)
			continue;
		if (*p == ':')
			p++;
		else if (!procinfo_is_blank(*p))
			continue;
		return procinfo_take_u64(&p, line_end, out);
	}
	return -ENOENT;
}

/* A text that was cut at the size of its buffer: its last, partial line
 * dropped, so that no parser sees half a name or half a number. */
static size_t procinfo_whole_lines(const char *text, size_t len, size_t size)
{
	const char *nl;

	if (len < size)
		return len;
	nl = memrchr(text, '\n', len);
	return nl ? (size_t)(nl - text) + 1 : 0;
}

/* ---- printable text: what the CLI and JSON may show ---------------------- */

/* The length of the valid UTF-8 character at s (n bytes available) when
 * it is printable, else 0: ASCII controls, DEL, C1 controls, overlong or
 * surrogate encodings and stray bytes are not. */
static size_t procinfo_printable_length(const unsigned char *s, size_t n)
{
	unsigned char c = s[0], low = 0x80, high = 0xbf;
	size_t need;

	if (c >= 0x20 && c < 0x7f)
		return 1;
	if (c < 0xc2 || c > 0xf4)
		return 0;
	need = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
	if (c == 0xc2)
		low = 0xa0;
	else if (c == 0xe0)
		low = 0xa0;
	else if (c == 0xed)
		high = 0x9f;
	else if (c == 0xf0)
		low = 0x90;
	else if (c == 0xf4)
		high = 0x8f;
	if (n < need || s[1] < low || s[1] > high)
		return 0;
	for (size_t i = 2; i < need; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return need;
}

/* raw as one printable line in out: a NUL becomes a space when nul_is_space,
 * any other unprintable byte '?'; cut at outlen - 1, never inside a
 * character, so that the result is always valid UTF-8. */
static void procinfo_printable(const char *raw, size_t len, bool nul_is_space, char *out,
			       size_t outlen)
{
	size_t o = 0;

	if (outlen == 0)
		return;
	for (size_t i = 0; i < len;) {
		const unsigned char *s = (const unsigned char *)raw + i;
		size_t n = procinfo_printable_length(s, len - i);

		if (o + (n ? n : 1) > outlen - 1)
			break;
		if (n) {
			memcpy(out + o, s, n);
		} else {
			out[o] = s[0] == '\0' && nul_is_space ? ' ' : '?';
			n = 1;
		}
		o += n;
		i += n;
	}
	out[o] = '\0';
}

void procinfo_format_cmdline(const char *raw, size_t len, char *out, size_t outlen)
{
	/* Arguments end in NUL, the last one too. */
	while (len > 0 && raw[len - 1] == '\0')
		len--;
	procinfo_printable(raw, len, true, out, outlen);
}

/* ---- the parsers of one process's files ------------------------------------ */

/* The member named by one path component "lxc.payload.NAME" or
 * "lxc.monitor.NAME": 1 and name; 0 for another component; -EINVAL for
 * a name that is not a member's. */
static int procinfo_component_member(const char *comp, size_t len, char name[MEMBER_NAME_MAX + 1])
{
	static const char *const prefixes[] = { PROCINFO_PAYLOAD, PROCINFO_MONITOR };
	char err[160];

	for (size_t i = 0; i < ARRAY_SIZE(prefixes); i++) {
		size_t plen = strlen(prefixes[i]);

		if (len < plen || memcmp(comp, prefixes[i], plen) != 0)
			continue;
		if (len - plen > MEMBER_NAME_MAX || memchr(comp + plen, '\0', len - plen))
			return -EINVAL;
		memcpy(name, comp + plen, len - plen);
		name[len - plen] = '\0';
		return validate_member_name(name, err, sizeof(err)) < 0 ? -EINVAL : 1;
	}
	return 0;
}

/* The member of one "ID:CONTROLLERS:PATH" line, from the outermost LXC
 * component of PATH (a container nested in a container is still the
 * outer member's): 1, 0 for none, -EINVAL for a malformed line. */
static int procinfo_cgroup_line(const char *line, const char *end, char name[MEMBER_NAME_MAX + 1])
{
	const char *p = line, *path;
	size_t deleted = strlen(PROCINFO_DELETED);

	while (p < end && procinfo_is_digit(*p))
		p++;
	if (p == line || p == end || *p != ':')
		return -EINVAL;
	path = memchr(p + 1, ':', (size_t)(end - p - 1));
	if (!path || ++path == end || *path != '/')
		return -EINVAL;
	if ((size_t)(end - path) > deleted && memcmp(end - deleted, PROCINFO_DELETED, deleted) == 0)
		end -= deleted;
	while (path < end) {
		const char *slash = memchr(path, '/', (size_t)(end - path));
		const char *comp_end = slash ? slash : end;
		int ret = procinfo_component_member(path, (size_t)(comp_end - path), name);

		if (ret != 0)
			return ret;
		path = comp_end + 1;
	}
	return 0;
}

int procinfo_parse_cgroup(const char *text, size_t len, char *member, size_t memberlen)
{
	const char *pos = text, *end = text + len, *line, *line_end;
	char found[MEMBER_NAME_MAX + 1] = "";

	while (procinfo_next_line(&pos, end, &line, &line_end)) {
		char name[MEMBER_NAME_MAX + 1];
		int ret;

		if (line == line_end)
			continue;
		ret = procinfo_cgroup_line(line, line_end, name);
		if (ret < 0)
			return ret;
		if (ret == 0)
			continue;
		/* Two containers for one process: the text is not to be trusted. */
		if (found[0] && strcmp(found, name) != 0)
			return -EINVAL;
		memcpy(found, name, sizeof(found));
	}
	if (!found[0])
		return 0;
	if (strlen(found) >= memberlen)
		return -ENOBUFS;
	memcpy(member, found, strlen(found) + 1);
	return 1;
}

int procinfo_parse_nspid(const char *text, size_t len, pid_t *inner)
{
	const char *pos = text, *end = text + len, *line, *line_end;
	static const char key[] = "NSpid:";

	while (procinfo_next_line(&pos, end, &line, &line_end)) {
		const char *p = line + strlen(key);
		uint64_t last = 0;

		if ((size_t)(line_end - line) < strlen(key) || memcmp(line, key, strlen(key)) != 0)
			continue;
		/* One pid per nested namespace, the outermost first. */
		while (procinfo_skip_blanks(p, line_end) < line_end) {
			int ret = procinfo_take_u64(&p, line_end, &last);

			if (ret < 0)
				return -EINVAL;
			if (last == 0 || last > INT_MAX)
				return -EINVAL;
		}
		if (last == 0)
			return -EINVAL;
		*inner = (pid_t)last;
		return 0;
	}
	return -ENOENT;
}

int procinfo_parse_stat(const char *text, size_t len, unsigned long long *start_ticks,
			char *comm, size_t commlen)
{
	const char *open = memchr(text, '(', len), *close = memrchr(text, ')', len);
	const char *end = text + len, *p, *nl;
	uint64_t ticks;

	/* comm may hold spaces and parentheses: it ends at the last ')'. */
	if (!open || !close || close < open)
		return -EINVAL;
	p = close + 1;
	nl = memchr(p, '\n', (size_t)(end - p));
	if (nl)
		end = nl;
	/* Fields 3 (state) to 21, then 22: the start time. */
	for (int field = 3; field < 22; field++) {
		p = procinfo_skip_blanks(p, end);
		if (p == end)
			return -EINVAL;
		while (p < end && !procinfo_is_blank(*p))
			p++;
	}
	if (procinfo_take_u64(&p, end, &ticks) < 0)
		return -EINVAL;
	*start_ticks = ticks;
	if (comm)
		procinfo_printable(open + 1, (size_t)(close - open - 1), false, comm, commlen);
	return 0;
}

/* ---- one process ----------------------------------------------------------- */

static pthread_once_t procinfo_boot_once = PTHREAD_ONCE_INIT;
static long long procinfo_boot_time;
static long procinfo_clock_ticks;
static int procinfo_boot_error;

/* The boot time ("btime" of /proc/stat) and the clock's ticks per second,
 * which never change while the system runs: read once. */
static void procinfo_boot_init(void)
{
	__do_free char *text = NULL;
	size_t len = 0;
	uint64_t btime = 0;
	int ret;

	ret = fsutil_read_file("/proc/stat", PROCINFO_HOST_BUF_MAX, &text, &len);
	if (ret == 0)
		ret = procinfo_find_u64(text, len, "btime", &btime);
	if (ret == 0 && btime > LLONG_MAX / 2)
		ret = -ERANGE;
	procinfo_clock_ticks = sysconf(_SC_CLK_TCK);
	if (ret == 0 && procinfo_clock_ticks <= 0)
		ret = -EINVAL;
	procinfo_boot_time = (long long)btime;
	if (ret < 0)
		procinfo_boot_error = log_error_errno(ret, -ret, "cannot read the boot time from /proc/stat");
}

/* A process's files exist while it does; a vanished one reads as ESRCH. */
static int procinfo_gone(int err)
{
	return err == ENOENT || err == ESRCH ? -ESRCH : -err;
}

/* name below dirfd (a process's directory; AT_FDCWD for an absolute
 * path) into buf, at most size bytes. */
static int procinfo_read_at(int dirfd, const char *name, char *buf, size_t size, size_t *len)
{
	__do_close int fd = -EBADF;
	size_t used = 0;

	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return procinfo_gone(errno);
	while (used < size) {
		ssize_t n = read(fd, buf + used, size - used);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return procinfo_gone(errno);
		if (n == 0)
			break;
		used += (size_t)n;
	}
	*len = used;
	return 0;
}

static int procinfo_read_stat_file(int dirfd, struct procinfo *out, char *comm, size_t commlen)
{
	char text[PROCINFO_STAT_MAX];
	unsigned long long ticks = 0;
	uint64_t seconds;
	size_t len = 0;
	int ret;

	ret = procinfo_read_at(dirfd, "stat", text, sizeof(text), &len);
	if (ret < 0)
		return ret;
	ret = procinfo_parse_stat(text, len, &ticks, comm, commlen);
	if (ret < 0)
		return ret;
	out->start_ticks = ticks;
	seconds = ticks / (unsigned long)procinfo_clock_ticks;
	out->started = seconds > (uint64_t)(LLONG_MAX - procinfo_boot_time)
			       ? LLONG_MAX
			       : procinfo_boot_time + (long long)seconds;
	return 0;
}

static int procinfo_read_status_file(int dirfd, struct procinfo *out)
{
	char text[PROCINFO_STATUS_MAX];
	size_t len = 0;
	int ret;

	ret = procinfo_read_at(dirfd, "status", text, sizeof(text), &len);
	if (ret < 0)
		return ret;
	ret = procinfo_parse_nspid(text, procinfo_whole_lines(text, len, sizeof(text)), &out->ns_pid);
	/* Kernels before 4.1 have no NSpid: one namespace as far as we know. */
	if (ret == -ENOENT) {
		out->ns_pid = out->pid;
		return 0;
	}
	return ret;
}

static int procinfo_read_cgroup_file(int dirfd, struct procinfo *out)
{
	char text[PROCINFO_CGROUP_MAX];
	size_t len = 0;
	int ret;

	ret = procinfo_read_at(dirfd, "cgroup", text, sizeof(text), &len);
	if (ret < 0)
		return ret;
	ret = procinfo_parse_cgroup(text, procinfo_whole_lines(text, len, sizeof(text)), out->member,
				    sizeof(out->member));
	if (ret < 0)
		return ret;
	out->in_container = ret == 1;
	return 0;
}

static int procinfo_read_cmdline_file(int dirfd, struct procinfo *out, const char *comm)
{
	char raw[PROCINFO_CMDLINE_MAX];
	size_t len = 0;
	int ret;

	ret = procinfo_read_at(dirfd, "cmdline", raw, sizeof(raw), &len);
	if (ret < 0)
		return ret;
	/* Kernel threads (and zombies) have no command line: "[comm]" as ps shows them. */
	if (len == 0)
		snprintf(out->command, sizeof(out->command), "[%s]", comm);
	else
		procinfo_format_cmdline(raw, len, out->command, sizeof(out->command));
	return 0;
}

int procinfo_read(pid_t pid, struct procinfo *out)
{
	__do_close int dirfd = -EBADF;
	char path[32], comm[PROCINFO_COMM_MAX] = "";
	int ret;

	memset(out, 0, sizeof(*out));
	if (pid <= 0)
		return -EINVAL;
	pthread_once(&procinfo_boot_once, procinfo_boot_init);
	if (procinfo_boot_error < 0)
		return procinfo_boot_error;
	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	/* One directory for every file, so that all describe the same process
	 * even if it exits and its pid is reused meanwhile. */
	dirfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return procinfo_gone(errno);
	out->pid = pid;
	ret = procinfo_read_stat_file(dirfd, out, comm, sizeof(comm));
	if (ret == 0)
		ret = procinfo_read_status_file(dirfd, out);
	if (ret == 0)
		ret = procinfo_read_cgroup_file(dirfd, out);
	if (ret == 0)
		ret = procinfo_read_cmdline_file(dirfd, out, comm);
	if (ret < 0) {
		memset(out, 0, sizeof(*out));
		return ret;
	}
	return 0;
}

/* ---- the host's parsers ------------------------------------------------------ */

/* /proc/stat: the first "cpu" line's times (in ticks) and the number of
 * "cpuN" lines, the CPUs online. */
static int procinfo_scan_stat(const char *text, size_t len, uint64_t *busy, uint64_t *total,
			      unsigned *ncpus)
{
	const char *pos = text, *end = text + len, *line, *line_end;
	bool found = false;
	unsigned cpus = 0;

	while (procinfo_next_line(&pos, end, &line, &line_end)) {
		size_t llen = (size_t)(line_end - line);

		if (llen > 3 && memcmp(line, "cpu", 3) == 0 && procinfo_is_digit(line[3])) {
			cpus++;
		} else if (!found && llen > 3 && memcmp(line, "cpu", 3) == 0 && procinfo_is_blank(line[3])) {
			/* user nice system idle iowait irq softirq steal (guest and
			 * guest_nice are inside user and nice already). */
			const char *p = line + 3;
			uint64_t sum = 0, idle = 0, v;
			int n = 0;

			for (; n < 8 && procinfo_skip_blanks(p, line_end) < line_end; n++) {
				int ret = procinfo_take_u64(&p, line_end, &v);

				if (ret < 0)
					return ret;
				if (__builtin_add_overflow(sum, v, &sum))
					return -ERANGE;
				if (n == 3 || n == 4)
					idle += v;
			}
			if (n < 4)
				return -EINVAL;
			*total = sum;
			*busy = sum - idle;
			found = true;
		}
	}
	if (ncpus)
		*ncpus = cpus;
	return found ? 0 : -ENOENT;
}

int procinfo_parse_cpu(const char *text, size_t len, uint64_t *busy, uint64_t *total)
{
	return procinfo_scan_stat(text, len, busy, total, NULL);
}

int procinfo_parse_meminfo(const char *text, size_t len, uint64_t *total, uint64_t *available)
{
	uint64_t total_kb, available_kb, total_bytes, available_bytes;
	int ret;

	ret = procinfo_find_u64(text, len, "MemTotal", &total_kb);
	if (ret == 0)
		ret = procinfo_find_u64(text, len, "MemAvailable", &available_kb);
	if (ret < 0)
		return ret;
	if (__builtin_mul_overflow(total_kb, 1024, &total_bytes) ||
	    __builtin_mul_overflow(available_kb, 1024, &available_bytes))
		return -ERANGE;
	*total = total_bytes;
	*available = available_bytes;
	return 0;
}

int procinfo_parse_loadavg(const char *text, size_t len, double load[3])
{
	const char *nl = memchr(text, '\n', len), *end = nl ? nl : text + len, *p = text;
	double values[3];

	for (int i = 0; i < 3; i++)
		if (procinfo_take_decimal(&p, end, &values[i]) < 0)
			return -EINVAL;
	memcpy(load, values, sizeof(values));
	return 0;
}

int procinfo_parse_netdev(const char *text, size_t len, uint64_t *rx, uint64_t *tx)
{
	const char *pos = text, *end = text + len, *line, *line_end;
	uint64_t rx_sum = 0, tx_sum = 0;

	while (procinfo_next_line(&pos, end, &line, &line_end)) {
		/* "  eth0: rx_bytes packets errs drop fifo frame compressed multicast tx_bytes ..." */
		const char *colon = memchr(line, ':', (size_t)(line_end - line));
		const char *name = procinfo_skip_blanks(line, line_end), *p;
		uint64_t v[9];

		if (!colon)
			continue;	/* the two header lines */
		if (name == colon)
			return -EINVAL;
		if (colon - name == 2 && memcmp(name, "lo", 2) == 0)
			continue;
		p = colon + 1;
		for (size_t i = 0; i < ARRAY_SIZE(v); i++)
			if (procinfo_take_u64(&p, line_end, &v[i]) < 0)
				return -EINVAL;
		if (__builtin_add_overflow(rx_sum, v[0], &rx_sum) ||
		    __builtin_add_overflow(tx_sum, v[8], &tx_sum))
			return -ERANGE;
	}
	*rx = rx_sum;
	*tx = tx_sum;
	return 0;
}

/* Devices whose I/O is no disk's: memory, loop files, and the stacked
 * devices (device mapper, software RAID) whose I/O reaches disks that are
 * counted already. */
static const char *const procinfo_disk_skipped[] = { "loop", "ram", "zram", "dm-", "md" };

/* Whether name is a partition of disk: the kernel names them disk + N,
 * or disk + "pN" when disk ends in a digit (nvme0n1p1, mmcblk0p2). */
static bool procinfo_is_partition(const char *name, size_t len, const char *disk, size_t disklen)
{
	size_t i = disklen;

	if (disklen == 0 || len <= disklen || memcmp(name, disk, disklen) != 0)
		return false;
	if (procinfo_is_digit(disk[disklen - 1]) && name[i++] != 'p')
		return false;
	if (i == len)
		return false;
	for (; i < len; i++)
		if (!procinfo_is_digit(name[i]))
			return false;
	return true;
}

static bool procinfo_is_counted_disk(const char *name, size_t len)
{
	for (size_t i = 0; i < ARRAY_SIZE(procinfo_disk_skipped); i++) {
		size_t plen = strlen(procinfo_disk_skipped[i]);

		if (len >= plen && memcmp(name, procinfo_disk_skipped[i], plen) == 0)
			return false;
	}
	return true;
}

/*
 * Bytes read and written by whole disks: "MAJOR MINOR NAME reads merged
 * sectors_read ms writes merged sectors_written ...", sectors of 512 bytes
 * whatever the device's.  The kernel lists each disk just before its
 * partitions, so a partition is told from the name of the disk before it.
 */
int procinfo_parse_diskstats(const char *text, size_t len, uint64_t *read_bytes,
			     uint64_t *write_bytes)
{
	const char *pos = text, *end = text + len, *line, *line_end;
	uint64_t read_sum = 0, write_sum = 0;
	char disk[64] = "";
	size_t disklen = 0;

	while (procinfo_next_line(&pos, end, &line, &line_end)) {
		const char *p = line, *name;
		uint64_t v[7], major, minor, rd, wr;
		size_t namelen;

		if (procinfo_skip_blanks(line, line_end) == line_end)
			continue;
		if (procinfo_take_u64(&p, line_end, &major) < 0 || procinfo_take_u64(&p, line_end, &minor) < 0)
			return -EINVAL;
		name = procinfo_skip_blanks(p, line_end);
		for (p = name; p < line_end && !procinfo_is_blank(*p); p++)
			;
		namelen = (size_t)(p - name);
		if (namelen == 0 || namelen >= sizeof(disk))
			return -EINVAL;
		for (size_t i = 0; i < ARRAY_SIZE(v); i++)
			if (procinfo_take_u64(&p, line_end, &v[i]) < 0)
				return -EINVAL;
		if (procinfo_is_partition(name, namelen, disk, disklen))
			continue;
		memcpy(disk, name, namelen);
		disklen = namelen;
		if (!procinfo_is_counted_disk(name, namelen))
			continue;
		if (__builtin_mul_overflow(v[2], 512, &rd) || __builtin_mul_overflow(v[6], 512, &wr) ||
		    __builtin_add_overflow(read_sum, rd, &read_sum) ||
		    __builtin_add_overflow(write_sum, wr, &write_sum))
			return -ERANGE;
	}
	*read_bytes = read_sum;
	*write_bytes = write_sum;
	return 0;
}

/* ---- the host, reading after reading ----------------------------------------- */

enum procinfo_source {
	PROCINFO_STAT,
	PROCINFO_MEMINFO,
	PROCINFO_LOADAVG,
	PROCINFO_NETDEV,
	PROCINFO_DISKSTATS,
	PROCINFO_NSOURCES,
};

static const char *const procinfo_source_paths[PROCINFO_NSOURCES] = {
	"/proc/stat", "/proc/meminfo", "/proc/loadavg", "/proc/net/dev", "/proc/diskstats",
};

/* The counters rates are computed from. */
struct procinfo_counters {
	struct timespec at;         /* CLOCK_MONOTONIC */
	uint64_t cpu_busy, cpu_total;
	uint64_t disk_read, disk_write;
	uint64_t net_rx, net_tx;
};

struct procinfo_host {
	int fds[PROCINFO_NSOURCES];
	char *disk_path;
	char *buf;                  /* one buffer, every source in turn */
	size_t bufsize;
	bool have_previous;
	struct procinfo_counters previous;
};

void procinfo_host_close(struct procinfo_host *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(h->fds); i++)
		if (h->fds[i] >= 0)
			close(h->fds[i]);
	free(h->disk_path);
	free(h->buf);
	free(h);
}

int procinfo_host_open(const char *disk_path, struct procinfo_host **out)
{
	struct procinfo_host *h;
	struct statvfs st;

	*out = NULL;
	if (statvfs(disk_path, &st) < 0)
		return log_error_errno(-errno, errno, "cannot read the file system of %s", disk_path);
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	for (size_t i = 0; i < ARRAY_SIZE(h->fds); i++)
		h->fds[i] = -EBADF;
	h->disk_path = strdup(disk_path);
	h->bufsize = PROCINFO_HOST_BUF_START;
	h->buf = malloc(h->bufsize);
	if (!h->disk_path || !h->buf) {
		procinfo_host_close(h);
		return -ENOMEM;
	}
	for (size_t i = 0; i < ARRAY_SIZE(h->fds); i++) {
		h->fds[i] = open(procinfo_source_paths[i], O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (h->fds[i] < 0) {
			int ret = log_error_errno(-errno, errno, "cannot open %s", procinfo_source_paths[i]);

			procinfo_host_close(h);
			return ret;
		}
	}
	*out = h;
	return 0;
}

/* The whole text of fd from offset 0 into buf: the kernel writes it anew
 * for each read from 0.  Returns its length, or a negative errno. */
static ssize_t procinfo_pread_all(int fd, char *buf, size_t size)
{
	size_t used = 0;

	while (used < size) {
		ssize_t n = pread(fd, buf + used, size - used, (off_t)used);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		used += (size_t)n;
	}
	return (ssize_t)used;
}

/* One source's current text into h->buf (grown while it fills up). */
static int procinfo_host_source(struct procinfo_host *h, enum procinfo_source s, size_t *len)
{
	for (;;) {
		ssize_t n = procinfo_pread_all(h->fds[s], h->buf, h->bufsize);
		char *bigger;

		if (n < 0)
			return (int)n;
		if ((size_t)n < h->bufsize || h->bufsize >= PROCINFO_HOST_BUF_MAX) {
			*len = procinfo_whole_lines(h->buf, (size_t)n, h->bufsize);
			return 0;
		}
		bigger = realloc(h->buf, h->bufsize * 2);
		if (!bigger)
			return -ENOMEM;
		h->buf = bigger;
		h->bufsize *= 2;
	}
}

static int procinfo_host_parse(struct procinfo_host *h, struct host_stats *out,
			       struct procinfo_counters *now)
{
	size_t len;
	int ret;

	ret = procinfo_host_source(h, PROCINFO_STAT, &len);
	if (ret == 0)
		ret = procinfo_scan_stat(h->buf, len, &now->cpu_busy, &now->cpu_total, &out->ncpus);
	if (ret == 0)
		ret = procinfo_host_source(h, PROCINFO_MEMINFO, &len);
	if (ret == 0)
		ret = procinfo_parse_meminfo(h->buf, len, &out->mem_total, &out->mem_available);
	if (ret == 0)
		ret = procinfo_host_source(h, PROCINFO_LOADAVG, &len);
	if (ret == 0)
		ret = procinfo_parse_loadavg(h->buf, len, out->load);
	if (ret == 0)
		ret = procinfo_host_source(h, PROCINFO_NETDEV, &len);
	if (ret == 0)
		ret = procinfo_parse_netdev(h->buf, len, &now->net_rx, &now->net_tx);
	if (ret == 0)
		ret = procinfo_host_source(h, PROCINFO_DISKSTATS, &len);
	if (ret == 0)
		ret = procinfo_parse_diskstats(h->buf, len, &now->disk_read, &now->disk_write);
	return ret;
}

/* Per second between two readings; 0 when a counter went back (an
 * interface that vanished with its container takes its bytes along). */
static double procinfo_rate(uint64_t before, uint64_t after, double seconds)
{
	return after >= before && seconds > 0 ? (double)(after - before) / seconds : 0;
}

static void procinfo_host_rates(const struct procinfo_counters *before,
				const struct procinfo_counters *after, struct host_stats *out)
{
	double seconds = (double)(after->at.tv_sec - before->at.tv_sec) +
			 (double)(after->at.tv_nsec - before->at.tv_nsec) / 1e9;

	if (after->cpu_total > before->cpu_total && after->cpu_busy >= before->cpu_busy) {
		double percent = 100.0 * (double)(after->cpu_busy - before->cpu_busy) /
				 (double)(after->cpu_total - before->cpu_total);

		out->cpu_percent = percent > 100 ? 100 : percent;
	}
	out->disk_read_rate = procinfo_rate(before->disk_read, after->disk_read, seconds);
	out->disk_write_rate = procinfo_rate(before->disk_write, after->disk_write, seconds);
	out->net_rx_rate = procinfo_rate(before->net_rx, after->net_rx, seconds);
	out->net_tx_rate = procinfo_rate(before->net_tx, after->net_tx, seconds);
}

int procinfo_host_read(struct procinfo_host *h, struct host_stats *out)
{
	struct procinfo_counters now = { 0 };
	struct statvfs st;
	int ret;

	memset(out, 0, sizeof(*out));
	clock_gettime(CLOCK_MONOTONIC, &now.at);
	ret = procinfo_host_parse(h, out, &now);
	if (ret < 0)
		return ret;
	if (out->ncpus == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		out->ncpus = n > 0 ? (unsigned)n : 1;
	}
	if (statvfs(h->disk_path, &st) < 0)
		return -errno;
	out->disk_total = (uint64_t)st.f_blocks * st.f_frsize;
	out->disk_used = (uint64_t)(st.f_blocks - st.f_bfree) * st.f_frsize;
	out->disk_read_bytes = now.disk_read;
	out->disk_write_bytes = now.disk_write;
	out->net_rx_bytes = now.net_rx;
	out->net_tx_bytes = now.net_tx;
	/* The first reading has nothing to compare with: its rates stay 0. */
	if (h->have_previous)
		procinfo_host_rates(&h->previous, &now, out);
	h->previous = now;
	h->have_previous = true;
	return 0;
}

/* ---- a container's cgroup ----------------------------------------------------- */

static pthread_once_t procinfo_cgroup_once = PTHREAD_ONCE_INIT;
static bool procinfo_cgroup_unified;

/* A host on cgroup v2 alone shows its root's controllers at the top;
 * a v1 or hybrid host has a tmpfs of hierarchies there. */
static void procinfo_cgroup_init(void)
{
	procinfo_cgroup_unified = access(PROCINFO_CGROUP_ROOT "/cgroup.controllers", F_OK) == 0;
}

/* dir/name (a cgroup's file), at most size bytes, cut to whole lines;
 * -ENOENT when the cgroup is not there. */
static int procinfo_read_cgroup(const char *dir, const char *name, char *buf, size_t size,
				size_t *len)
{
	char path[PATH_MAX];
	int ret;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	ret = procinfo_read_at(AT_FDCWD, path, buf, size, len);
	if (ret < 0)
		return ret == -ESRCH ? -ENOENT : ret;
	*len = procinfo_whole_lines(buf, *len, size);
	return 0;
}

/* A file holding one number, or "max" (v2's "no limit", read as 0). */
static int procinfo_read_cgroup_value(const char *dir, const char *name, uint64_t *out)
{
	char buf[64];
	const char *p = buf, *end;
	size_t len = 0;
	int ret;

	ret = procinfo_read_cgroup(dir, name, buf, sizeof(buf), &len);
	if (ret < 0)
		return ret;
	end = buf + len;
	if (len > 0 && end[-1] == '\n')
		end--;
	if (end - buf == 3 && memcmp(buf, "max", 3) == 0) {
		*out = 0;
		return 0;
	}
	ret = procinfo_take_u64(&p, end, out);
	return ret < 0 ? -EINVAL : 0;
}

/* Memory charged to the cgroup, less the inactive page cache the kernel
 * reclaims first (what docker stats shows too). */
static int procinfo_memory_used(const char *dir, const char *usage_file, const char *inactive_key,
				uint64_t *used)
{
	char text[PROCINFO_CGROUP_FILE_MAX];
	uint64_t usage = 0, inactive = 0;
	size_t len = 0;
	int ret;

	ret = procinfo_read_cgroup_value(dir, usage_file, &usage);
	if (ret < 0)
		return ret;
	ret = procinfo_read_cgroup(dir, "memory.stat", text, sizeof(text), &len);
	if (ret == 0)
		ret = procinfo_find_u64(text, len, inactive_key, &inactive);
	if (ret < 0 && ret != -ENOENT)
		return ret;
	*used = usage > inactive ? usage - inactive : 0;
	return 0;
}

static int procinfo_container_v2(const char *name, struct container_stats *out)
{
	char dir[PATH_MAX], text[PROCINFO_CGROUP_FILE_MAX];
	uint64_t usec = 0;
	size_t len = 0;
	int ret;

	snprintf(dir, sizeof(dir), PROCINFO_CGROUP_ROOT "/" PROCINFO_PAYLOAD "%s", name);
	ret = procinfo_read_cgroup(dir, "cpu.stat", text, sizeof(text), &len);
	if (ret < 0)
		return ret;
	ret = procinfo_find_u64(text, len, "usage_usec", &usec);
	if (ret < 0)
		return ret == -ENOENT ? -EINVAL : ret;
	out->cpu_ns = usec > UINT64_MAX / 1000 ? UINT64_MAX : usec * 1000;
	/* Without the memory controller enabled above it, a cgroup has no
	 * memory files: nothing is known, 0. */
	procinfo_read_cgroup_value(dir, "pids.current", &out->pids);
	ret = procinfo_read_cgroup(dir, "memory.events", text, sizeof(text), &len);
	if (ret == 0)
		procinfo_find_u64(text, len, "oom_kill", &out->oom_kills);
	ret = procinfo_memory_used(dir, "memory.current", "inactive_file", &out->mem_used);
	if (ret == 0)
		ret = procinfo_read_cgroup_value(dir, "memory.max", &out->mem_limit);
	return ret == -ENOENT ? 0 : ret;
}

static int procinfo_container_v1(const char *name, struct container_stats *out)
{
	char cpu_dir[PATH_MAX], memory_dir[PATH_MAX], pids_dir[PATH_MAX];
	char text[PROCINFO_CGROUP_FILE_MAX];
	uint64_t limit = 0;
	size_t len = 0;
	int ret;

	snprintf(cpu_dir, sizeof(cpu_dir), PROCINFO_CGROUP_ROOT "/cpuacct/" PROCINFO_PAYLOAD "%s", name);
	snprintf(memory_dir, sizeof(memory_dir), PROCINFO_CGROUP_ROOT "/memory/" PROCINFO_PAYLOAD "%s",
		 name);
	snprintf(pids_dir, sizeof(pids_dir), PROCINFO_CGROUP_ROOT "/pids/" PROCINFO_PAYLOAD "%s", name);
	ret = procinfo_read_cgroup_value(cpu_dir, "cpuacct.usage", &out->cpu_ns);
	if (ret < 0)
		return ret;
	procinfo_read_cgroup_value(pids_dir, "pids.current", &out->pids);
	/* "oom_kill N" since kernel 4.13. */
	if (procinfo_read_cgroup(memory_dir, "memory.oom_control", text, sizeof(text), &len) == 0)
		procinfo_find_u64(text, len, "oom_kill", &out->oom_kills);
	ret = procinfo_memory_used(memory_dir, "memory.usage_in_bytes", "total_inactive_file",
				   &out->mem_used);
	if (ret == 0)
		ret = procinfo_read_cgroup_value(memory_dir, "memory.limit_in_bytes", &limit);
	if (ret == 0)
		out->mem_limit = limit >= PROCINFO_V1_NO_LIMIT ? 0 : limit;
	return ret == -ENOENT ? 0 : ret;
}

int procinfo_container(const char *name, struct container_stats *out)
{
	char err[160];
	int ret;

	memset(out, 0, sizeof(*out));
	/* The name becomes part of a path: a member's name and nothing else. */
	if (validate_member_name(name, err, sizeof(err)) < 0)
		return -EINVAL;
	pthread_once(&procinfo_cgroup_once, procinfo_cgroup_init);
	ret = procinfo_cgroup_unified ? procinfo_container_v2(name, out) : procinfo_container_v1(name, out);
	if (ret < 0)
		memset(out, 0, sizeof(*out));
	return ret;
}
