/* SPDX-License-Identifier: MIT */
/*
 * A tick's rows of one kind (its GPUs, or its members on their GPUs)
 * packed into one blob, so that history.db keeps one row per tick, not
 * one per GPU and one per member: reading an hour back steps through
 * 3,600 rows, not some 60,000 (history.c).
 *
 * The blob: a byte, the format (1); a byte, the number of columns; then
 * the rows one after the other, each column in the layout's order:
 *   an integer: a varint of 0 for NULL, else of its zigzag code plus 1;
 *   a text: a varint of 0 for NULL, else of its length plus 1, then its
 *   bytes (no NUL inside).
 * Varints are LEB128, at most ten bytes, no longer than they need be.
 * A blob is read whole or not at all: a damaged one is -EBADMSG.
 *
 * tickpack_sql.c shows the rows to SQL as table-valued functions.
 */
#ifndef GPUBOX_MONITOR_TICKPACK_H
#define GPUBOX_MONITOR_TICKPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TICKPACK_FORMAT 1
#define TICKPACK_COLUMNS_MAX 8

enum tickpack_type {
	TICKPACK_INT,
	TICKPACK_TEXT,
};

struct tickpack_layout {
	const char *name;             /* the SQL function's */
	size_t ncolumns;
	const char *columns[TICKPACK_COLUMNS_MAX];
	enum tickpack_type types[TICKPACK_COLUMNS_MAX];
};

/* gpu, uuid, util, mem_used, mem_total, temperature, power_mw */
extern const struct tickpack_layout tickpack_gpus;
/* gpu, member, mem_used, sm_util, processes, interval_ms, idle_ms */
extern const struct tickpack_layout tickpack_members;

/* A column's value; text points into the blob (or the caller's string)
 * and is not NUL-terminated. */
struct tickpack_value {
	bool known;
	long long i;
	const char *text;
	size_t len;
};

/* ---- writing ------------------------------------------------------------------ */

struct tickpack_writer {
	const struct tickpack_layout *layout;
	unsigned char *buf;
	size_t len, cap;
	size_t rows;
};

/* An empty blob of layout's rows (the header only, once a row is added). */
void tickpack_begin(struct tickpack_writer *w, const struct tickpack_layout *layout);
/* One row: layout->ncolumns values.  0, -EINVAL (a text with a NUL, or a
 * text where an integer goes), -ENOMEM. */
int tickpack_add(struct tickpack_writer *w, const struct tickpack_value *row);
/* Back to empty, keeping the buffer. */
void tickpack_reset(struct tickpack_writer *w);
void tickpack_free(struct tickpack_writer *w);

/* ---- reading ------------------------------------------------------------------ */

struct tickpack_reader {
	const struct tickpack_layout *layout;
	const unsigned char *p, *end;
};

/* A blob to read (len 0: no rows).  0, or -EBADMSG for another format or
 * another number of columns. */
int tickpack_open(struct tickpack_reader *r, const struct tickpack_layout *layout,
		  const void *blob, size_t len);
/* The next row into row[0..ncolumns): 1, 0 at the end, -EBADMSG. */
int tickpack_next(struct tickpack_reader *r, struct tickpack_value *row);

/* ---- SQL (tickpack_sql.c) ------------------------------------------------------ */

struct sqlite3;

/*
 * On a connection: the table-valued functions tick_gpus(blob) and
 * tick_members(blob), whose rows are a blob's (columns as the layouts
 * name them), and the aggregates tick_pack_gpus(columns...) and
 * tick_pack_members(columns...), which pack the rows of a group in the
 * order they come.  0, or -ENOMEM.
 */
int tickpack_sql_register(struct sqlite3 *db);

#endif
