/* SPDX-License-Identifier: MIT */
/*
 * The SQLite layer: see sqldb.h.  Every connection is opened
 * SQLITE_OPEN_FULLMUTEX (the daemons are threaded; NOMUTEX where the
 * caller serialises every use, SQLDB_SERIALISED) and NOFOLLOW, with a
 * busy timeout so that another process (the admin commands, the sqlite3
 * shell of the system tests) and this one can meet.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "array.h"
#include "cleanup.h"
#include "log.h"
#include "sqldb.h"
#include "banned.h"

enum sqldb_txn_stmt {
	SQLDB_BEGIN, SQLDB_BEGIN_IMMEDIATE, SQLDB_COMMIT, SQLDB_ROLLBACK, SQLDB_TXN_COUNT
};

static const char *const sqldb_txn_sql[SQLDB_TXN_COUNT] = {
	[SQLDB_BEGIN] = "BEGIN",
	[SQLDB_BEGIN_IMMEDIATE] = "BEGIN IMMEDIATE",
	[SQLDB_COMMIT] = "COMMIT",
	[SQLDB_ROLLBACK] = "ROLLBACK",
};

struct sqldb {
	sqlite3 *handle;
	const char *name;
	const char *const *sql;
	sqlite3_stmt **stmts;
	size_t nsql;
	sqlite3_stmt *txn[SQLDB_TXN_COUNT];
	pthread_mutex_t lock;
	bool lock_ready;
};

/* The result code rc of a call on db as a negative errno, logged. */
static int sqldb_status(struct sqldb *db, int rc, const char *what)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return log_error_errno(-EBUSY, 0, "%s: %s: the database stayed busy", db->name, what);
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_NOMEM:
		return log_error_errno(-ENOMEM, 0, "%s: %s: out of memory", db->name, what);
	default:
		return log_error_errno(-EIO, 0, "%s: %s: %s", db->name, what, sqlite3_errmsg(db->handle));
	}
}

int sqldb_error(struct sqldb *db, const char *what)
{
	return sqldb_status(db, sqlite3_errcode(db->handle), what);
}

sqlite3 *sqldb_handle(struct sqldb *db)
{
	return db->handle;
}

int sqldb_changes(struct sqldb *db)
{
	return sqlite3_changes(db->handle);
}

long long sqldb_last_insert_rowid(struct sqldb *db)
{
	return sqlite3_last_insert_rowid(db->handle);
}

/* ---- open and close ------------------------------------------------------- */

static int sqldb_create_file(const char *name, const char *path, mode_t mode)
{
	__do_close int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, mode);

	if (fd < 0)
		return log_error_errno(-errno, errno, "%s: cannot open %s", name, path);
	if (fchmod(fd, mode) < 0)
		return log_error_errno(-errno, errno, "%s: cannot chmod %s", name, path);
	return 0;
}

static int sqldb_exec_script(struct sqldb *db, const char *path, const char *script)
{
	char *msg = NULL;

	if (sqlite3_exec(db->handle, script, NULL, NULL, &msg) == SQLITE_OK)
		return 0;
	log_error("%s: cannot set up %s: %s", db->name, path, msg ? msg : "?");
	sqlite3_free(msg);
	return -EIO;
}

/* The integer the first row of sql starts with, 0 without a row. */
static int sqldb_query_int(struct sqldb *db, const char *sql, int *value)
{
	sqlite3_stmt *stmt = NULL;
	int rc = sqlite3_prepare_v2(db->handle, sql, -1, &stmt, NULL);

	*value = 0;
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(stmt);
		if (rc == SQLITE_ROW)
			*value = sqlite3_column_int(stmt, 0);
	}
	sqlite3_finalize(stmt);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sqldb_status(db, rc, sql);
}

static int sqldb_set_version(struct sqldb *db, const char *path, int version)
{
	char sql[64];

	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", version);
	return sqldb_exec_script(db, path, sql);
}

/* The version of a file whose user_version is 0, after the schema ran:
 * the program's own for a new file, else what the caller reads from it. */
static int sqldb_unversioned(struct sqldb *db, const struct sqldb_options *options, bool is_new,
			     int *version)
{
	if (is_new) {
		*version = options->version;
		return 0;
	}
	*version = 1;
	if (options->legacy_version && options->legacy_version(db->handle, version) < 0)
		return log_error_errno(-EIO, 0, "%s: cannot read the version of a file from before schema versions",
				       db->name);
	return 0;
}

/* Inside the schema's write transaction: the file brought to the
 * program's version, or refused when it is newer. */
static int sqldb_migrate(struct sqldb *db, const char *path, const struct sqldb_options *options)
{
	int stored, version, tables = 0, ret;

	ret = sqldb_query_int(db, "PRAGMA user_version", &stored);
	if (ret == 0 && stored == 0)
		ret = sqldb_query_int(db, "SELECT count(*) FROM sqlite_master", &tables);
	version = stored;
	if (ret == 0 && stored == 0) {
		ret = sqldb_exec_script(db, path, options->schema);
		if (ret == 0)
			ret = sqldb_unversioned(db, options, tables == 0, &version);
	}
	if (ret < 0)
		return ret;
	if (version > options->version)
		return log_error_errno(-EPROTONOSUPPORT, 0,
				       "%s: %s has schema version %d, newer than the %d this program knows: "
				       "a newer gpubox wrote it, and an older one cannot read it; install that version again",
				       db->name, path, version, options->version);
	for (int from = version; from < options->version; from++) {
		ret = sqldb_exec_script(db, path, options->upgrades[from - 1]);
		if (ret < 0)
			return ret;
		log_info("%s: %s upgraded from schema version %d to %d", db->name, path, from, from + 1);
	}
	return stored == options->version ? 0 : sqldb_set_version(db, path, options->version);
}

/* The pragmas of the flags, the caller's, then the schema in one write
 * transaction (two processes opening a new file at once make it once). */
static int sqldb_setup(struct sqldb *db, const char *path, const struct sqldb_options *options)
{
	int ret = 0;

	if (options->flags & SQLDB_WAL)
		ret = sqldb_exec_script(db, path, "PRAGMA journal_mode = WAL");
	if (ret == 0 && (options->flags & SQLDB_SYNC_NORMAL))
		ret = sqldb_exec_script(db, path, "PRAGMA synchronous = NORMAL");
	if (ret == 0 && (options->flags & SQLDB_FOREIGN_KEYS))
		ret = sqldb_exec_script(db, path, "PRAGMA foreign_keys = ON");
	if (ret == 0 && options->pragmas)
		ret = sqldb_exec_script(db, path, options->pragmas);
	if (ret == 0 && options->schema) {
		ret = sqldb_begin(db, true);
		if (ret == 0)
			ret = options->version > 0 ? sqldb_migrate(db, path, options)
						   : sqldb_exec_script(db, path, options->schema);
		if (ret == 0)
			ret = sqldb_commit(db);
		if (ret < 0)
			sqldb_rollback(db);
	}
	return ret;
}

static int sqldb_prepare(struct sqldb *db, const char *sql, sqlite3_stmt **stmt)
{
	int rc = sqlite3_prepare_v3(db->handle, sql, -1, SQLITE_PREPARE_PERSISTENT, stmt, NULL);

	if (rc != SQLITE_OK) {
		*stmt = NULL;
		return sqldb_status(db, rc, sql);
	}
	return 0;
}

static int sqldb_prepare_all(struct sqldb *db, const struct sqldb_options *options)
{
	int ret;

	db->stmts = calloc(options->nsql ? options->nsql : 1, sizeof(*db->stmts));
	if (!db->stmts)
		return -ENOMEM;
	db->sql = options->sql;
	db->nsql = options->nsql;
	for (size_t i = 0; i < db->nsql; i++) {
		ret = sqldb_prepare(db, db->sql[i], &db->stmts[i]);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static int sqldb_connect(struct sqldb *db, const char *path, const struct sqldb_options *options)
{
	int flags = SQLITE_OPEN_NOFOLLOW;
	int ret;

	flags |= (options->flags & SQLDB_SERIALISED) ? SQLITE_OPEN_NOMUTEX : SQLITE_OPEN_FULLMUTEX;

	flags |= (options->flags & SQLDB_READONLY) ? SQLITE_OPEN_READONLY
						   : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
	if (options->mode) {
		ret = sqldb_create_file(db->name, path, options->mode);
		if (ret < 0)
			return ret;
	}
	if (sqlite3_open_v2(path, &db->handle, flags, NULL) != SQLITE_OK)
		return log_error_errno(-EIO, 0, "%s: cannot open %s: %s", db->name, path,
				       db->handle ? sqlite3_errmsg(db->handle) : "out of memory");
	sqlite3_busy_timeout(db->handle, options->busy_timeout_ms ? options->busy_timeout_ms
								  : SQLDB_BUSY_TIMEOUT_MS);
	for (size_t i = 0; i < SQLDB_TXN_COUNT; i++) {
		ret = sqldb_prepare(db, sqldb_txn_sql[i], &db->txn[i]);
		if (ret < 0)
			return ret;
	}
	if (options->on_connect) {
		ret = options->on_connect(db->handle);
		if (ret < 0)
			return log_error_errno(ret, 0, "%s: cannot set up %s: %s", db->name, path,
					       sqlite3_errmsg(db->handle));
	}
	ret = sqldb_setup(db, path, options);
	if (ret == 0)
		ret = sqldb_prepare_all(db, options);
	return ret;
}

int sqldb_open(const char *path, const struct sqldb_options *options, struct sqldb **out)
{
	struct sqldb *db;
	int ret;

	if (!path || !options || !out || (options->nsql && !options->sql))
		return -EINVAL;
	db = calloc(1, sizeof(*db));
	if (!db)
		return -ENOMEM;
	db->name = options->name ? options->name : "database";
	if (pthread_mutex_init(&db->lock, NULL) != 0) {
		free(db);
		return -ENOMEM;
	}
	db->lock_ready = true;
	ret = sqldb_connect(db, path, options);
	if (ret < 0) {
		sqldb_close(db);
		return ret;
	}
	*out = db;
	return 0;
}

void sqldb_close(struct sqldb *db)
{
	if (!db)
		return;
	for (size_t i = 0; db->stmts && i < db->nsql; i++)
		sqlite3_finalize(db->stmts[i]);
	for (size_t i = 0; i < SQLDB_TXN_COUNT; i++)
		sqlite3_finalize(db->txn[i]);
	sqlite3_close(db->handle);
	if (db->lock_ready)
		pthread_mutex_destroy(&db->lock);
	free(db->stmts);
	free(db);
}

/* ---- the lock --------------------------------------------------------------- */

struct sqldb *sqldb_lock(struct sqldb *db)
{
	pthread_mutex_lock(&db->lock);
	return db;
}

void sqldb_unlockp(struct sqldb **locked)
{
	if (*locked)
		pthread_mutex_unlock(&(*locked)->lock);
}

/* ---- statements ------------------------------------------------------------- */

void sqldb_resetp(sqlite3_stmt **stmt)
{
	if (*stmt) {
		sqlite3_reset(*stmt);
		sqlite3_clear_bindings(*stmt);
	}
}

sqlite3_stmt *sqldb_stmt(struct sqldb *db, unsigned id)
{
	sqlite3_stmt *stmt;

	if (id >= db->nsql) {
		log_error("%s: no statement %u", db->name, id);
		return NULL;
	}
	stmt = db->stmts[id];
	sqldb_resetp(&stmt);
	return stmt;
}

/* Bind the argument of one letter of a type string at index. */
static int sqldb_bind_one(sqlite3_stmt *stmt, int index, char type, va_list *ap)
{
	const char *text;
	const void *blob;
	long long value;
	double real;
	size_t len;

	switch (type) {
	case 't':
		return sqlite3_bind_text(stmt, index, va_arg(*ap, const char *), -1, SQLITE_STATIC);
	case 's':
		text = va_arg(*ap, const char *);
		len = va_arg(*ap, size_t);
		if (!text)
			return sqlite3_bind_null(stmt, index);
		return sqlite3_bind_text(stmt, index, text, (int)strnlen(text, len), SQLITE_TRANSIENT);
	case 'i':
		return sqlite3_bind_int64(stmt, index, va_arg(*ap, long long));
	case 'n':
		value = va_arg(*ap, long long);
		if (value < 0)
			return sqlite3_bind_null(stmt, index);
		return sqlite3_bind_int64(stmt, index, value);
	case 'r':
		real = va_arg(*ap, double);
		/* Neither NaN nor an infinity (for which r - r is NaN). */
		if (real - real != 0)
			return sqlite3_bind_null(stmt, index);
		return sqlite3_bind_double(stmt, index, real);
	case 'b':
		blob = va_arg(*ap, const void *);
		len = va_arg(*ap, size_t);
		return sqlite3_bind_blob64(stmt, index, blob, len, SQLITE_TRANSIENT);
	default:
		return SQLITE_MISUSE;
	}
}

sqlite3_stmt *sqldb_bind_va(struct sqldb *db, unsigned id, const char *types, va_list ap)
{
	sqlite3_stmt *stmt = sqldb_stmt(db, id);
	va_list args;
	int rc = SQLITE_OK;

	if (!stmt)
		return NULL;
	if (!types || (int)strlen(types) != sqlite3_bind_parameter_count(stmt)) {
		log_error("%s: %s: %zu values for its %d parameters", db->name, db->sql[id],
			  types ? strlen(types) : 0, sqlite3_bind_parameter_count(stmt));
		return NULL;
	}
	va_copy(args, ap);
	for (int i = 0; rc == SQLITE_OK && types[i]; i++) {
		rc = sqldb_bind_one(stmt, i + 1, types[i], &args);
		if (rc != SQLITE_OK)
			log_error("%s: %s: cannot bind '%c' to ?%d", db->name, db->sql[id], types[i],
				  i + 1);
	}
	va_end(args);
	if (rc != SQLITE_OK) {
		sqldb_resetp(&stmt);
		return NULL;
	}
	return stmt;
}

sqlite3_stmt *sqldb_bind(struct sqldb *db, unsigned id, const char *types, ...)
{
	sqlite3_stmt *stmt;
	va_list ap;

	va_start(ap, types);
	stmt = sqldb_bind_va(db, id, types, ap);
	va_end(ap);
	return stmt;
}

static const char *sqldb_what(sqlite3_stmt *stmt, const char *what)
{
	return what ? what : sqlite3_sql(stmt);
}

int sqldb_run(struct sqldb *db, sqlite3_stmt *stmt, const char *what)
{
	int rc;

	if (!stmt)
		return -EINVAL;
	rc = sqlite3_step(stmt);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return sqldb_status(db, rc, sqldb_what(stmt, what));
	return 0;
}

int sqldb_exec_va(struct sqldb *db, unsigned id, const char *what, const char *types, va_list ap)
{
	__do_reset sqlite3_stmt *stmt = sqldb_bind_va(db, id, types, ap);

	return sqldb_run(db, stmt, what);
}

int sqldb_exec(struct sqldb *db, unsigned id, const char *what, const char *types, ...)
{
	va_list ap;
	int ret;

	va_start(ap, types);
	ret = sqldb_exec_va(db, id, what, types, ap);
	va_end(ap);
	return ret;
}

int sqldb_change_va(struct sqldb *db, unsigned id, const char *what, const char *types, va_list ap)
{
	int ret = sqldb_exec_va(db, id, what, types, ap);

	if (ret == 0 && sqlite3_changes(db->handle) == 0)
		ret = -ENOENT;
	return ret;
}

int sqldb_change(struct sqldb *db, unsigned id, const char *what, const char *types, ...)
{
	va_list ap;
	int ret;

	va_start(ap, types);
	ret = sqldb_change_va(db, id, what, types, ap);
	va_end(ap);
	return ret;
}

int sqldb_first_row(struct sqldb *db, sqlite3_stmt *stmt, const char *what)
{
	int rc;

	if (!stmt)
		return -EINVAL;
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc == SQLITE_DONE)
		return -ENOENT;
	return sqldb_status(db, rc, sqldb_what(stmt, what));
}

int sqldb_each_row(struct sqldb *db, sqlite3_stmt *stmt, const char *what,
		   int (*on_row)(sqlite3_stmt *stmt, void *context), void *context)
{
	int rc, ret;

	if (!stmt)
		return -EINVAL;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		ret = on_row(stmt, context);
		if (ret < 0)
			return ret;
	}
	return rc == SQLITE_DONE ? 0 : sqldb_status(db, rc, sqldb_what(stmt, what));
}

/* A growing array of elements of one size, each read from a row. */
struct sqldb_rows {
	void *list;
	size_t count, cap, elem_size;
	void (*from_row)(sqlite3_stmt *stmt, void *element);
};

static int sqldb_rows_append(sqlite3_stmt *stmt, void *context)
{
	struct sqldb_rows *rows = context;

	if (array_reserve(&rows->list, &rows->cap, rows->count, rows->elem_size) < 0)
		return -ENOMEM;
	rows->from_row(stmt, (char *)rows->list + rows->count++ * rows->elem_size);
	return 0;
}

int sqldb_collect(struct sqldb *db, sqlite3_stmt *stmt, const char *what, size_t elem_size,
		  void (*from_row)(sqlite3_stmt *stmt, void *element), void **list, size_t *n)
{
	struct sqldb_rows rows = { .elem_size = elem_size, .from_row = from_row };
	int ret = sqldb_each_row(db, stmt, what, sqldb_rows_append, &rows);

	if (ret < 0) {
		free(rows.list);
		return ret;
	}
	*list = rows.list;
	*n = rows.count;
	return 0;
}

void sqldb_copy_text(char *dst, size_t len, const unsigned char *src)
{
	snprintf(dst, len, "%s", src ? (const char *)src : "");
}

int sqldb_column_text(sqlite3_stmt *stmt, int col, char *dst, size_t len)
{
	const unsigned char *text = sqlite3_column_text(stmt, col);

	if (!text || strlen((const char *)text) >= len)
		return -ENAMETOOLONG;
	snprintf(dst, len, "%s", (const char *)text);
	return 0;
}

/* ---- transactions ------------------------------------------------------------ */

static int sqldb_txn_run(struct sqldb *db, enum sqldb_txn_stmt which)
{
	__do_reset sqlite3_stmt *stmt = db->txn[which];

	return sqldb_run(db, stmt, sqldb_txn_sql[which]);
}

int sqldb_begin(struct sqldb *db, bool write)
{
	return sqldb_txn_run(db, write ? SQLDB_BEGIN_IMMEDIATE : SQLDB_BEGIN);
}

int sqldb_commit(struct sqldb *db)
{
	return sqldb_txn_run(db, SQLDB_COMMIT);
}

void sqldb_rollback(struct sqldb *db)
{
	/* A failed COMMIT or statement may have rolled back already. */
	if (!sqlite3_get_autocommit(db->handle))
		sqldb_txn_run(db, SQLDB_ROLLBACK);
}

int sqldb_txn_begin(struct sqldb_txn *txn, struct sqldb *db, bool write)
{
	int ret = sqldb_begin(db, write);

	txn->db = db;
	txn->open = ret == 0;
	return ret;
}

int sqldb_txn_commit(struct sqldb_txn *txn)
{
	int ret = sqldb_commit(txn->db);

	if (ret == 0)
		txn->open = false;
	return ret;
}

void sqldb_txn_endp(struct sqldb_txn *txn)
{
	if (txn->open) {
		sqldb_rollback(txn->db);
		txn->open = false;
	}
}
