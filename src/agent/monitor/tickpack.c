/* SPDX-License-Identifier: MIT */
/* A tick's rows in one blob: the format is in tickpack.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "monitor/tickpack.h"
#include "banned.h"

/* A varint of 64 bits takes at most ten bytes of seven. */
#define TICKPACK_VARINT_MAX 10
#define TICKPACK_HEADER 2

const struct tickpack_layout tickpack_gpus = {
	"tick_gpus", 7,
	{ "gpu", "uuid", "util", "mem_used", "mem_total", "temperature", "power_mw" },
	{ TICKPACK_INT, TICKPACK_TEXT, TICKPACK_INT, TICKPACK_INT, TICKPACK_INT, TICKPACK_INT,
	  TICKPACK_INT },
};

const struct tickpack_layout tickpack_members = {
	"tick_members", 7,
	{ "gpu", "member", "mem_used", "sm_util", "processes", "interval_ms", "idle_ms" },
	{ TICKPACK_INT, TICKPACK_TEXT, TICKPACK_INT, TICKPACK_INT, TICKPACK_INT, TICKPACK_INT,
	  TICKPACK_INT },
};

/* ---- writing ------------------------------------------------------------------ */

void tickpack_begin(struct tickpack_writer *w, const struct tickpack_layout *layout)
{
	*w = (struct tickpack_writer){ .layout = layout };
}

void tickpack_reset(struct tickpack_writer *w)
{
	w->len = 0;
	w->rows = 0;
}

void tickpack_free(struct tickpack_writer *w)
{
	free(w->buf);
	tickpack_begin(w, w->layout);
}

static int tickpack_reserve(struct tickpack_writer *w, size_t more)
{
	size_t cap = w->cap ? w->cap : 256;
	unsigned char *buf;

	if (more > SIZE_MAX / 4 - w->len)
		return -ENOMEM;
	if (w->len + more <= w->cap)
		return 0;
	while (cap < w->len + more)
		cap *= 2;
	buf = realloc(w->buf, cap);
	if (!buf)
		return -ENOMEM;
	w->buf = buf;
	w->cap = cap;
	return 0;
}

/* Room reserved by the caller. */
static void tickpack_put_varint(struct tickpack_writer *w, uint64_t v)
{
	while (v >= 0x80) {
		w->buf[w->len++] = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	w->buf[w->len++] = (unsigned char)v;
}

static uint64_t tickpack_zigzag(long long v)
{
	return v < 0 ? ~((uint64_t)v << 1) : (uint64_t)v << 1;
}

static int tickpack_put(struct tickpack_writer *w, enum tickpack_type type,
			const struct tickpack_value *v)
{
	if (!v->known) {
		if (tickpack_reserve(w, 1) < 0)
			return -ENOMEM;
		tickpack_put_varint(w, 0);
		return 0;
	}
	if (type == TICKPACK_INT) {
		/* INT64_MIN's code is UINT64_MAX, which has no room for the +1. */
		if (v->i == INT64_MIN)
			return -EINVAL;
		if (tickpack_reserve(w, TICKPACK_VARINT_MAX) < 0)
			return -ENOMEM;
		tickpack_put_varint(w, tickpack_zigzag(v->i) + 1);
		return 0;
	}
	if (!v->text || memchr(v->text, '\0', v->len) || v->len > SIZE_MAX / 4)
		return -EINVAL;
	if (tickpack_reserve(w, TICKPACK_VARINT_MAX + v->len) < 0)
		return -ENOMEM;
	tickpack_put_varint(w, (uint64_t)v->len + 1);
	memcpy(w->buf + w->len, v->text, v->len);
	w->len += v->len;
	return 0;
}

int tickpack_add(struct tickpack_writer *w, const struct tickpack_value *row)
{
	size_t mark;

	if (w->len == 0) {
		if (tickpack_reserve(w, TICKPACK_HEADER) < 0)
			return -ENOMEM;
		w->buf[w->len++] = TICKPACK_FORMAT;
		w->buf[w->len++] = (unsigned char)w->layout->ncolumns;
	}
	mark = w->len;
	for (size_t c = 0; c < w->layout->ncolumns; c++) {
		int ret = tickpack_put(w, w->layout->types[c], &row[c]);

		if (ret < 0) {
			/* Nothing of a row that does not fit. */
			w->len = mark;
			return ret;
		}
	}
	w->rows++;
	return 0;
}

/* ---- reading ------------------------------------------------------------------ */

int tickpack_open(struct tickpack_reader *r, const struct tickpack_layout *layout,
		  const void *blob, size_t len)
{
	const unsigned char *p = blob;

	*r = (struct tickpack_reader){ .layout = layout, .p = p, .end = p ? p + len : p };
	if (len == 0)
		return 0;
	if (!p || len < TICKPACK_HEADER || p[0] != TICKPACK_FORMAT || p[1] != layout->ncolumns)
		return -EBADMSG;
	r->p += TICKPACK_HEADER;
	return 0;
}

/* A varint of the shortest form, within the blob. */
static int tickpack_get_varint(struct tickpack_reader *r, uint64_t *v)
{
	uint64_t x = 0;

	for (unsigned shift = 0; shift < 64 && r->p < r->end; shift += 7) {
		unsigned char b = *r->p++;

		/* The tenth byte holds the 64th bit alone. */
		if (shift == 63 && b > 1)
			return -EBADMSG;
		x |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			if (b == 0 && shift > 0)
				return -EBADMSG;
			*v = x;
			return 0;
		}
	}
	return -EBADMSG;
}

static int tickpack_get(struct tickpack_reader *r, enum tickpack_type type,
			struct tickpack_value *v)
{
	uint64_t code;

	*v = (struct tickpack_value){ 0 };
	if (tickpack_get_varint(r, &code) < 0)
		return -EBADMSG;
	if (code == 0)
		return 0;
	code--;
	v->known = true;
	if (type == TICKPACK_INT) {
		v->i = (long long)((code >> 1) ^ (0 - (code & 1)));
		return 0;
	}
	if (code > (uint64_t)(r->end - r->p) || memchr(r->p, '\0', code))
		return -EBADMSG;
	v->text = (const char *)r->p;
	v->len = code;
	r->p += code;
	return 0;
}

int tickpack_next(struct tickpack_reader *r, struct tickpack_value *row)
{
	if (r->p == r->end)
		return 0;
	for (size_t c = 0; c < r->layout->ncolumns; c++)
		if (tickpack_get(r, r->layout->types[c], &row[c]) < 0) {
			/* Nothing more from a damaged blob. */
			r->p = r->end;
			return -EBADMSG;
		}
	return 1;
}
