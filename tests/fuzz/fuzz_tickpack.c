/* SPDX-License-Identifier: MIT */
/*
 * A packed tick's reader (src/agent/monitor/tickpack.c) on any input, for
 * both layouts, directly and through the SQL functions that history.db's
 * views call (tickpack_sql.c).  A blob that reads whole must pack back to
 * the same bytes (there is one way to write each), and SQL must see as
 * many rows, or refuse it as the reader does.  The input is copied into a
 * buffer of exactly its size, so that a read past it is caught by the
 * sanitizers.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "monitor/tickpack.h"
#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The rows of blob, packed again into w: -1 when it does not read whole. */
static long fuzz_repack(const struct tickpack_layout *layout, const uint8_t *blob, size_t size,
			struct tickpack_writer *w)
{
	struct tickpack_value row[TICKPACK_COLUMNS_MAX];
	struct tickpack_reader r;
	long rows = 0;
	int ret;

	tickpack_begin(w, layout);
	if (tickpack_open(&r, layout, blob, size) < 0)
		return -1;
	while ((ret = tickpack_next(&r, row)) == 1) {
		if (tickpack_add(w, row) < 0)
			abort();
		rows++;
	}
	return ret < 0 ? -1 : rows;
}

/* The rows SQL sees in blob: -1 when the statement fails. */
static long fuzz_sql_rows(sqlite3 *db, const struct tickpack_layout *layout, const uint8_t *blob,
			  size_t size)
{
	static const char *const sql[] = {
		"SELECT count(*), max(uuid), total(power_mw) FROM tick_gpus(?1)",
		"SELECT count(*), max(member), total(idle_ms) FROM tick_members(?1)",
	};
	sqlite3_stmt *stmt = NULL;
	long rows = -1;

	if (sqlite3_prepare_v2(db, sql[layout == &tickpack_members], -1, &stmt, NULL) != SQLITE_OK)
		abort();
	sqlite3_bind_blob64(stmt, 1, size ? blob : (const void *)"", size, SQLITE_STATIC);
	if (sqlite3_step(stmt) == SQLITE_ROW)
		rows = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	return rows;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct tickpack_layout *const layouts[] = { &tickpack_gpus, &tickpack_members };
	static sqlite3 *db;
	uint8_t *blob = malloc(size ? size : 1);

	if (!blob)
		return 0;
	memcpy(blob, data, size);
	if (!db && (sqlite3_open(":memory:", &db) != SQLITE_OK || tickpack_sql_register(db) < 0))
		abort();
	for (size_t i = 0; i < sizeof(layouts) / sizeof(layouts[0]); i++) {
		struct tickpack_writer w;
		long rows = fuzz_repack(layouts[i], blob, size, &w);

		if (rows > 0 && (w.len != size || memcmp(w.buf, blob, size) != 0))
			abort();
		if (fuzz_sql_rows(db, layouts[i], blob, size) != rows && !(rows < 0 && size == 0))
			abort();
		tickpack_free(&w);
	}
	free(blob);
	return 0;
}
