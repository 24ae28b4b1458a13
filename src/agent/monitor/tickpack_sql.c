/* SPDX-License-Identifier: MIT */
/*
 * Packed ticks (tickpack.h) in SQL, so that every query of history.c but
 * the one that reads a range at full resolution keeps its SQL:
 *
 *   tick_gpus(blob), tick_members(blob): table-valued functions, a row
 *     per packed row, columns as the layouts name them.  history.c's views
 *     gpu_samples and member_samples join them to the ticks.
 *   tick_pack_gpus(gpu, uuid, ...), tick_pack_members(gpu, member, ...):
 *     aggregates that pack the rows of a group, in the order they come
 *     (the upgrade of a file that kept a row per GPU and member).
 *
 * A damaged blob is an error of the statement that reads it, never a
 * shorter answer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "monitor/tickpack.h"
#include "banned.h"

struct tickpack_vtab {
	sqlite3_vtab base;
	const struct tickpack_layout *layout;
};

struct tickpack_cursor {
	sqlite3_vtab_cursor base;
	unsigned char *blob;        /* a copy: the argument lives only in xFilter */
	size_t len;
	struct tickpack_reader reader;
	struct tickpack_value row[TICKPACK_COLUMNS_MAX];
	sqlite3_int64 rowid;
	bool eof;
};

static int tickpack_vtab_connect(sqlite3 *db, void *aux, int argc, const char *const *argv,
				 sqlite3_vtab **out, char **error)
{
	const struct tickpack_layout *layout = aux;
	struct tickpack_vtab *vtab;
	char decl[512];
	size_t len;
	int rc;

	(void)argc;
	(void)argv;
	len = (size_t)snprintf(decl, sizeof(decl), "CREATE TABLE x(");
	for (size_t c = 0; c < layout->ncolumns && len < sizeof(decl); c++)
		len += (size_t)snprintf(decl + len, sizeof(decl) - len, "%s,", layout->columns[c]);
	if (len >= sizeof(decl) ||
	    (size_t)snprintf(decl + len, sizeof(decl) - len, "packed HIDDEN)") >= sizeof(decl) - len)
		return SQLITE_INTERNAL;
	rc = sqlite3_declare_vtab(db, decl);
	if (rc != SQLITE_OK)
		return rc;
	sqlite3_vtab_config(db, SQLITE_VTAB_INNOCUOUS);
	vtab = sqlite3_malloc(sizeof(*vtab));
	if (!vtab) {
		*error = sqlite3_mprintf("out of memory");
		return SQLITE_NOMEM;
	}
	*vtab = (struct tickpack_vtab){ .layout = layout };
	*out = &vtab->base;
	return SQLITE_OK;
}

static int tickpack_vtab_disconnect(sqlite3_vtab *base)
{
	sqlite3_free(base);
	return SQLITE_OK;
}

/* The only plan: the blob given, as the function's argument. */
static int tickpack_vtab_best_index(sqlite3_vtab *base, sqlite3_index_info *info)
{
	const struct tickpack_vtab *vtab = (const struct tickpack_vtab *)base;
	int packed = (int)vtab->layout->ncolumns;
	bool seen = false;

	for (int i = 0; i < info->nConstraint; i++) {
		const struct sqlite3_index_constraint *c = &info->aConstraint[i];

		if (c->iColumn != packed || c->op != SQLITE_INDEX_CONSTRAINT_EQ)
			continue;
		seen = true;
		if (!c->usable)
			continue;
		info->aConstraintUsage[i].argvIndex = 1;
		info->aConstraintUsage[i].omit = 1;
		info->idxNum = 1;
		info->estimatedCost = 10;
		info->estimatedRows = 10;
		return SQLITE_OK;
	}
	/* A plan that has the blob later is the one to take. */
	return seen ? SQLITE_CONSTRAINT : SQLITE_OK;
}

static int tickpack_vtab_open(sqlite3_vtab *base, sqlite3_vtab_cursor **out)
{
	struct tickpack_cursor *cur = sqlite3_malloc(sizeof(*cur));

	(void)base;
	if (!cur)
		return SQLITE_NOMEM;
	*cur = (struct tickpack_cursor){ .eof = true };
	*out = &cur->base;
	return SQLITE_OK;
}

static int tickpack_vtab_close(sqlite3_vtab_cursor *base)
{
	struct tickpack_cursor *cur = (struct tickpack_cursor *)base;

	free(cur->blob);
	sqlite3_free(cur);
	return SQLITE_OK;
}

static int tickpack_vtab_damaged(sqlite3_vtab_cursor *base)
{
	sqlite3_vtab *vtab = base->pVtab;

	sqlite3_free(vtab->zErrMsg);
	vtab->zErrMsg = sqlite3_mprintf("a packed tick of history.db is damaged");
	return SQLITE_CORRUPT_VTAB;
}

static int tickpack_vtab_next(sqlite3_vtab_cursor *base)
{
	struct tickpack_cursor *cur = (struct tickpack_cursor *)base;
	int ret = tickpack_next(&cur->reader, cur->row);

	if (ret < 0) {
		cur->eof = true;
		return tickpack_vtab_damaged(base);
	}
	cur->eof = ret == 0;
	cur->rowid++;
	return SQLITE_OK;
}

static int tickpack_vtab_filter(sqlite3_vtab_cursor *base, int idx_num, const char *idx_str,
				int argc, sqlite3_value **argv)
{
	struct tickpack_cursor *cur = (struct tickpack_cursor *)base;
	const struct tickpack_vtab *vtab = (const struct tickpack_vtab *)base->pVtab;
	const void *blob = NULL;
	int len = 0;

	(void)idx_str;
	free(cur->blob);
	cur->blob = NULL;
	cur->len = 0;
	cur->rowid = 0;
	if (idx_num == 1 && argc == 1 && sqlite3_value_type(argv[0]) != SQLITE_NULL) {
		blob = sqlite3_value_blob(argv[0]);
		len = sqlite3_value_bytes(argv[0]);
	}
	if (blob && len > 0) {
		cur->blob = malloc((size_t)len);
		if (!cur->blob)
			return SQLITE_NOMEM;
		memcpy(cur->blob, blob, (size_t)len);
		cur->len = (size_t)len;
	}
	if (tickpack_open(&cur->reader, vtab->layout, cur->blob, cur->len) < 0) {
		cur->eof = true;
		return tickpack_vtab_damaged(base);
	}
	return tickpack_vtab_next(base);
}

static int tickpack_vtab_eof(sqlite3_vtab_cursor *base)
{
	return ((struct tickpack_cursor *)base)->eof;
}

static int tickpack_vtab_column(sqlite3_vtab_cursor *base, sqlite3_context *ctx, int col)
{
	const struct tickpack_cursor *cur = (const struct tickpack_cursor *)base;
	const struct tickpack_layout *layout = ((const struct tickpack_vtab *)base->pVtab)->layout;
	const struct tickpack_value *v;

	if (col < 0 || (size_t)col > layout->ncolumns)
		return SQLITE_RANGE;
	if ((size_t)col == layout->ncolumns) {
		sqlite3_result_blob64(ctx, cur->blob, cur->len, SQLITE_TRANSIENT);
		return SQLITE_OK;
	}
	v = &cur->row[col];
	if (!v->known)
		sqlite3_result_null(ctx);
	else if (layout->types[col] == TICKPACK_INT)
		sqlite3_result_int64(ctx, v->i);
	else
		sqlite3_result_text64(ctx, v->text, v->len, SQLITE_TRANSIENT, SQLITE_UTF8);
	return SQLITE_OK;
}

static int tickpack_vtab_rowid(sqlite3_vtab_cursor *base, sqlite3_int64 *rowid)
{
	*rowid = ((const struct tickpack_cursor *)base)->rowid;
	return SQLITE_OK;
}

/* Eponymous only (no xCreate): the functions, never tables of a file. */
static const sqlite3_module tickpack_module = {
	.xConnect = tickpack_vtab_connect,
	.xBestIndex = tickpack_vtab_best_index,
	.xDisconnect = tickpack_vtab_disconnect,
	.xOpen = tickpack_vtab_open,
	.xClose = tickpack_vtab_close,
	.xFilter = tickpack_vtab_filter,
	.xNext = tickpack_vtab_next,
	.xEof = tickpack_vtab_eof,
	.xColumn = tickpack_vtab_column,
	.xRowid = tickpack_vtab_rowid,
};

/* ---- the aggregates ------------------------------------------------------------ */

static void tickpack_pack_step(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const struct tickpack_layout *layout = sqlite3_user_data(ctx);
	struct tickpack_writer *w = sqlite3_aggregate_context(ctx, sizeof(*w));
	struct tickpack_value row[TICKPACK_COLUMNS_MAX] = { 0 };
	int ret;

	if (!w) {
		sqlite3_result_error_nomem(ctx);
		return;
	}
	if (!w->layout)
		tickpack_begin(w, layout);
	for (int c = 0; c < argc && (size_t)c < layout->ncolumns; c++) {
		int type = sqlite3_value_type(argv[c]);

		if (type == SQLITE_NULL)
			continue;
		if ((layout->types[c] == TICKPACK_INT) != (type == SQLITE_INTEGER)) {
			sqlite3_result_error(ctx, "tick_pack: a value of the wrong type", -1);
			return;
		}
		row[c].known = true;
		row[c].i = sqlite3_value_int64(argv[c]);
		if (type != SQLITE_INTEGER) {
			row[c].text = (const char *)sqlite3_value_text(argv[c]);
			row[c].len = (size_t)sqlite3_value_bytes(argv[c]);
		}
	}
	ret = tickpack_add(w, row);
	if (ret == -ENOMEM)
		sqlite3_result_error_nomem(ctx);
	else if (ret < 0)
		sqlite3_result_error(ctx, "tick_pack: a value that cannot be packed", -1);
}

static void tickpack_pack_final(sqlite3_context *ctx)
{
	struct tickpack_writer *w = sqlite3_aggregate_context(ctx, 0);

	if (!w || !w->buf) {
		sqlite3_result_zeroblob(ctx, 0);
		return;
	}
	sqlite3_result_blob64(ctx, w->buf, w->len, free);
	w->buf = NULL;
}

static int tickpack_register_layout(sqlite3 *db, const struct tickpack_layout *layout,
				    const char *pack_name)
{
	void *aux = (void *)(uintptr_t)layout;

	if (sqlite3_create_module_v2(db, layout->name, &tickpack_module, aux, NULL) != SQLITE_OK ||
	    sqlite3_create_function_v2(db, pack_name, (int)layout->ncolumns,
				       SQLITE_UTF8 | SQLITE_INNOCUOUS, aux, NULL, tickpack_pack_step,
				       tickpack_pack_final, NULL) != SQLITE_OK)
		return -ENOMEM;
	return 0;
}

int tickpack_sql_register(sqlite3 *db)
{
	int ret = tickpack_register_layout(db, &tickpack_gpus, "tick_pack_gpus");

	return ret < 0 ? ret : tickpack_register_layout(db, &tickpack_members, "tick_pack_members");
}
