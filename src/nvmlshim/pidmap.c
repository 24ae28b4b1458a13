/* SPDX-License-Identifier: MIT */
/*
 * The pid map's text (pidmap.h): written by the agent, read by the NVML
 * interposer inside the container.  The parser is strict: a map that is
 * not exactly what pidmap_render() writes is no map, and the interposer
 * then answers what the driver answers.
 */
#include <stdlib.h>
#include <string.h>

#include "pidmap.h"

/* A cursor over the text: the reads below never pass end. */
struct pidmap_cursor {
	const char *p;
	const char *end;
};

/* The word w exactly, then the separator sep ('\n' or ' '). */
static int pidmap_word(struct pidmap_cursor *c, const char *w, char sep)
{
	size_t n = strlen(w);

	if ((size_t)(c->end - c->p) < n + 1 || memcmp(c->p, w, n) != 0 || c->p[n] != sep)
		return -1;
	c->p += n + 1;
	return 0;
}

/* A decimal number up to max, then sep. */
static int pidmap_number(struct pidmap_cursor *c, unsigned long long max, char sep,
			 unsigned long long *out)
{
	unsigned long long v = 0;
	const char *start = c->p;

	while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
		unsigned digit = (unsigned)(*c->p - '0');

		if (c->p == start + 1 && *start == '0')
			return -1;      /* a leading zero */
		if (v > (max - digit) / 10)
			return -1;
		v = v * 10 + digit;
		c->p++;
	}
	if (c->p == start || c->p == c->end || *c->p != sep)
		return -1;
	c->p++;
	*out = v;
	return 0;
}

static int pidmap_parse_header(struct pidmap_cursor *c, struct pidmap *out)
{
	unsigned long long v;

	if (pidmap_word(c, PIDMAP_MAGIC, '\n') < 0)
		return -1;
	if (pidmap_word(c, "time", ' ') < 0 || pidmap_number(c, 1ULL << 53, '\n', &v) < 0)
		return -1;
	out->time_ms = (long long)v;
	if (pidmap_word(c, "valid", ' ') < 0 || pidmap_number(c, 86400000, '\n', &v) < 0)
		return -1;
	out->valid_ms = (uint32_t)v;
	if (pidmap_word(c, "mode", ' ') < 0)
		return -1;
	if (pidmap_word(c, "own", '\n') == 0)
		out->mode = PIDMAP_OWN;
	else if (pidmap_word(c, "anonymous", '\n') == 0)
		out->mode = PIDMAP_ANONYMOUS;
	else
		return -1;
	return 0;
}

int pidmap_parse(const char *text, size_t len, struct pidmap *out)
{
	struct pidmap_cursor c = { text, text + len };

	out->n = 0;
	if (!text || pidmap_parse_header(&c, out) < 0)
		return -1;
	while (pidmap_word(&c, "pid", ' ') == 0) {
		unsigned long long host, ns;

		if (out->n == PIDMAP_MAX || pidmap_number(&c, PIDMAP_PID_MAX, ' ', &host) < 0 ||
		    pidmap_number(&c, PIDMAP_PID_MAX, '\n', &ns) < 0 || host == 0 || ns == 0)
			return -1;
		if (out->n > 0 && host <= out->entries[out->n - 1].host)
			return -1;      /* ascending: one entry per pid, binary search */
		out->entries[out->n++] = (struct pidmap_entry){ (uint32_t)host, (uint32_t)ns };
	}
	if (pidmap_word(&c, "end", '\n') < 0 || c.p != c.end)
		return -1;
	return 0;
}

/* Append text to buf at *used; -1 when it does not fit. */
static int pidmap_put(char *buf, size_t len, size_t *used, const char *text)
{
	size_t n = strlen(text);

	if (len - *used <= n)
		return -1;
	memcpy(buf + *used, text, n);
	*used += n;
	buf[*used] = '\0';
	return 0;
}

/* The decimal digits of v, with the separator after them. */
static int pidmap_put_number(char *buf, size_t len, size_t *used, unsigned long long v, char sep)
{
	char digits[24];
	size_t i = sizeof(digits) - 1;

	digits[i] = '\0';
	digits[--i] = sep;
	do {
		digits[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return pidmap_put(buf, len, used, digits + i);
}

int pidmap_render(const struct pidmap *map, char *buf, size_t len)
{
	size_t used = 0;

	if (!buf || len == 0 || map->n > PIDMAP_MAX || map->time_ms < 0 ||
	    (unsigned long long)map->time_ms > (1ULL << 53) || map->valid_ms > 86400000)
		return -1;
	if (pidmap_put(buf, len, &used, PIDMAP_MAGIC "\ntime ") < 0 ||
	    pidmap_put_number(buf, len, &used, (unsigned long long)map->time_ms, '\n') < 0 ||
	    pidmap_put(buf, len, &used, "valid ") < 0 ||
	    pidmap_put_number(buf, len, &used, map->valid_ms, '\n') < 0 ||
	    pidmap_put(buf, len, &used, map->mode == PIDMAP_ANONYMOUS ? "mode anonymous\n" : "mode own\n") < 0)
		return -1;
	for (uint32_t i = 0; i < map->n; i++) {
		const struct pidmap_entry *e = &map->entries[i];

		if (e->host == 0 || e->host > PIDMAP_PID_MAX || e->ns == 0 || e->ns > PIDMAP_PID_MAX ||
		    (i > 0 && e->host <= map->entries[i - 1].host))
			return -1;
		if (pidmap_put(buf, len, &used, "pid ") < 0 ||
		    pidmap_put_number(buf, len, &used, e->host, ' ') < 0 ||
		    pidmap_put_number(buf, len, &used, e->ns, '\n') < 0)
			return -1;
	}
	if (pidmap_put(buf, len, &used, "end\n") < 0)
		return -1;
	return (int)used;
}

static int pidmap_compare(const void *a, const void *b)
{
	uint32_t x = ((const struct pidmap_entry *)a)->host, y = ((const struct pidmap_entry *)b)->host;

	return x < y ? -1 : x > y;
}

void pidmap_sort(struct pidmap_entry *entries, size_t n)
{
	if (n > 1)
		qsort(entries, n, sizeof(*entries), pidmap_compare);
}

uint32_t pidmap_lookup(const struct pidmap *map, uint32_t host)
{
	uint32_t lo = 0, hi = map->n < PIDMAP_MAX ? map->n : PIDMAP_MAX;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (map->entries[mid].host == host)
			return map->entries[mid].ns;
		if (map->entries[mid].host < host)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

uint32_t pidmap_reverse(const struct pidmap *map, uint32_t ns)
{
	for (uint32_t i = 0; i < map->n && i < PIDMAP_MAX; i++)
		if (map->entries[i].ns == ns)
			return map->entries[i].host;
	return 0;
}

int pidmap_fresh(const struct pidmap *map, long long now_ms)
{
	/* A clock stepped back by more than the validity is distrusted too. */
	return now_ms >= map->time_ms - (long long)map->valid_ms &&
	       now_ms <= map->time_ms + (long long)map->valid_ms;
}
