/* SPDX-License-Identifier: MIT */
/*
 * The pid map: which GPU processes, by their host pid, belong to one
 * container, and their pid inside it.  The agent writes one per running
 * container (<state>/users/<m>/guest/nvml-pids, seen read-only inside as
 * /dev/gpubox/nvml-pids); the NVML interposer in the container reads it.
 *
 * Shared by both, so it uses the C library only, allocates nothing, and
 * keeps no state: the interposer runs inside members' processes.
 *
 * The text, one item a line, each line ending in '\n', nothing else:
 *
 *   gpubox-nvml-pids 1          the format and its version
 *   time 1733140000123          when the agent wrote it (unix ms)
 *   valid 4000                  ms after time it may be trusted
 *   mode own                    other members' processes: own (left
 *                               out) or anonymous (shown with pid 0)
 *   pid 81234 17                a host pid of this container and its pid
 *   pid 81240 23                inside, host pids strictly ascending
 *   end                         the whole file was written
 *
 * Numbers are decimal, without sign or leading zero; pids 1..4194304.
 */
#ifndef GPUBOX_NVMLSHIM_PIDMAP_H
#define GPUBOX_NVMLSHIM_PIDMAP_H

#include <stddef.h>
#include <stdint.h>

#define PIDMAP_MAGIC "gpubox-nvml-pids 1"
#define PIDMAP_MAX 4096            /* entries in one map */
#define PIDMAP_PID_MAX 4194304u    /* the kernel's PID_MAX_LIMIT */
/* The longest text of a map: every line at its longest. */
#define PIDMAP_TEXT_MAX (64 + 24 + 16 + 16 + PIDMAP_MAX * 20 + 8)

enum pidmap_mode {
	PIDMAP_OWN = 0,            /* other members' processes left out */
	PIDMAP_ANONYMOUS = 1,      /* shown with pid 0, so memory adds up */
};

struct pidmap_entry {
	uint32_t host;
	uint32_t ns;
};

struct pidmap {
	long long time_ms;
	uint32_t valid_ms;
	enum pidmap_mode mode;
	uint32_t n;
	struct pidmap_entry entries[PIDMAP_MAX];
};

/* Parse text (len bytes, not NUL-terminated) into *out: 0, or -1 when it
 * is anything but a whole map as written above. */
int pidmap_parse(const char *text, size_t len, struct pidmap *out);
/* Write the map's text into buf: its length, or -1 when it does not fit
 * or the entries are not valid (pids out of range, host pids not strictly
 * ascending). */
int pidmap_render(const struct pidmap *map, char *buf, size_t len);
/* Sort entries by host pid (for pidmap_render). */
void pidmap_sort(struct pidmap_entry *entries, size_t n);
/* The pid inside of a host pid; 0 when it is not in the map. */
uint32_t pidmap_lookup(const struct pidmap *map, uint32_t host);
/* The host pid of a pid inside; 0 when it is not in the map. */
uint32_t pidmap_reverse(const struct pidmap *map, uint32_t ns);
/* Whether the map is to be trusted at now_ms (written, not expired). */
int pidmap_fresh(const struct pidmap *map, long long now_ms);

#endif
