/* SPDX-License-Identifier: MIT */
/*
 * One SQLite layer for gpubox's databases (the agent's state.db and
 * history.db, the hub's hub.db).  A connection is opened with its pragmas
 * and schema, and every statement of its table (an array of SQL indexed by
 * the caller's enum) is prepared once, at open, and kept.  A kept
 * statement is handed out reset, bound from a type string, and reset again
 * by __do_reset when the variable holding it goes out of scope, so that no
 * read stays open and blocks a checkpoint.
 *
 * Kept statements are shared: whoever uses them holds the connection's
 * lock (sqldb_lock()) for as long as it does.
 *
 * Errors are a negative errno, logged with the connection's name:
 * -EBUSY when the database stayed busy past the timeout, -EEXIST for a
 * constraint (an answer for the caller, so not logged), -ENOMEM, -EIO for
 * the rest; -EINVAL for a type string that does not fit the statement.
 */
#ifndef GPUBOX_SQLDB_H
#define GPUBOX_SQLDB_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <sqlite3.h>

#define SQLDB_BUSY_TIMEOUT_MS 5000

enum sqldb_flag {
	SQLDB_READONLY = 1 << 0,        /* else read-write, created when absent */
	SQLDB_WAL = 1 << 1,             /* PRAGMA journal_mode = WAL */
	SQLDB_SYNC_NORMAL = 1 << 2,     /* PRAGMA synchronous = NORMAL */
	SQLDB_FOREIGN_KEYS = 1 << 3,    /* PRAGMA foreign_keys = ON */
	SQLDB_SERIALISED = 1 << 4,      /* every use of the connection is under
					 * sqldb_lock(): SQLite's own mutex, taken
					 * in every sqlite3_column_*() call, only
					 * costs (SQLITE_OPEN_NOMUTEX) */
};

struct sqldb_options {
	const char *name;               /* the log lines' prefix ("database"); kept */
	unsigned flags;                 /* enum sqldb_flag */
	mode_t mode;                    /* not 0: the file is created with it (or set to it)
					 * before SQLite opens it, so that no journal is ever
					 * readable by others */
	const char *pragmas;            /* more pragmas; NULL none */
	/* Called on the new connection before the schema (functions it
	 * needs, TEMP views): 0, or a negative errno that fails the open. */
	int (*on_connect)(sqlite3 *handle);
	const char *schema;             /* run in one write transaction; NULL none */
	/* Versioned schemas (PRAGMA user_version), when version > 0: a new
	 * file gets schema and version; a file of version v < version gets
	 * upgrades[v - 1], upgrades[v], ... in the same transaction; a file
	 * of a newer version than this program knows is refused
	 * (-EPROTONOSUPPORT, logged: a downgrade cannot read it).  A file
	 * from before versions were kept (user_version 0, tables there) gets
	 * schema (IF NOT EXISTS: tables added since appear) and then the
	 * version legacy_version reads from it (NULL: 1). */
	int version;
	const char *const *upgrades;    /* version - 1 scripts */
	int (*legacy_version)(sqlite3 *handle, int *version);
	const char *const *sql;         /* the statements, indexed by the caller's enum; kept */
	size_t nsql;
	int busy_timeout_ms;            /* 0: SQLDB_BUSY_TIMEOUT_MS */
};

struct sqldb;

/* 0, or a negative errno (logged). */
int sqldb_open(const char *path, const struct sqldb_options *options, struct sqldb **out);
/* Accepts NULL. */
void sqldb_close(struct sqldb *db);

sqlite3 *sqldb_handle(struct sqldb *db);
/* The rows the last INSERT, UPDATE or DELETE changed; the last row id. */
int sqldb_changes(struct sqldb *db);
long long sqldb_last_insert_rowid(struct sqldb *db);

/* The connection's last error as a negative errno, logged with what. */
int sqldb_error(struct sqldb *db, const char *what);

/* ---- the lock over the kept statements ---------------------------------- */

struct sqldb *sqldb_lock(struct sqldb *db);
void sqldb_unlockp(struct sqldb **locked);
/* __do_unlock struct sqldb *locked = sqldb_lock(db); */
#define __do_unlock __attribute__((cleanup(sqldb_unlockp), unused))

/* ---- statements ----------------------------------------------------------- */

void sqldb_resetp(sqlite3_stmt **stmt);
#define __do_reset __attribute__((cleanup(sqldb_resetp)))

/* The kept statement id, reset and without bindings. */
sqlite3_stmt *sqldb_stmt(struct sqldb *db, unsigned id);

/*
 * The kept statement id with ?1, ?2... bound from the arguments, one or
 * two for each letter of types:
 *   't' text (const char *, kept by the caller until the reset; NULL: NULL)
 *   's' a char array that may lack its NUL (const char *, size_t size),
 *       copied; NULL: NULL
 *   'i' an integer (long long)
 *   'n' an integer that is NULL when negative, i.e. not known (long long)
 *   'r' a real (double), NULL when not finite
 *   'b' a blob (const void *, size_t length), copied
 * NULL (logged) when types has an unknown letter or another count than the
 * statement's parameters.
 */
sqlite3_stmt *sqldb_bind(struct sqldb *db, unsigned id, const char *types, ...);
sqlite3_stmt *sqldb_bind_va(struct sqldb *db, unsigned id, const char *types, va_list ap);

/* Step a statement that returns no rows: 0 or a negative errno (-EINVAL
 * for NULL, a statement that could not be bound).  what: for the log; NULL
 * for its SQL. */
int sqldb_run(struct sqldb *db, sqlite3_stmt *stmt, const char *what);
/* Bind as sqldb_bind() does, run, reset. */
int sqldb_exec(struct sqldb *db, unsigned id, const char *what, const char *types, ...);
int sqldb_exec_va(struct sqldb *db, unsigned id, const char *what, const char *types, va_list ap);
/* The same for a change: -ENOENT when it changed no row. */
int sqldb_change(struct sqldb *db, unsigned id, const char *what, const char *types, ...);
int sqldb_change_va(struct sqldb *db, unsigned id, const char *what, const char *types, va_list ap);

/* Step to the first row: 0 with the statement on it, -ENOENT when none. */
int sqldb_first_row(struct sqldb *db, sqlite3_stmt *stmt, const char *what);
/* Call on_row for every row; the first error it returns stops the walk. */
int sqldb_each_row(struct sqldb *db, sqlite3_stmt *stmt, const char *what,
		   int (*on_row)(sqlite3_stmt *stmt, void *context), void *context);
/* Every row, read by from_row into a new array of elem_size elements:
 * *list (the caller frees it; NULL when empty) and its length *n. */
int sqldb_collect(struct sqldb *db, sqlite3_stmt *stmt, const char *what, size_t elem_size,
		  void (*from_row)(sqlite3_stmt *stmt, void *element), void **list, size_t *n);

/* A text column into dst, "" for NULL, cut to fit. */
void sqldb_copy_text(char *dst, size_t len, const unsigned char *src);
/* A text column into dst: -ENAMETOOLONG when NULL or it does not fit. */
int sqldb_column_text(sqlite3_stmt *stmt, int col, char *dst, size_t len);

/* ---- transactions ------------------------------------------------------- */

/* BEGIN IMMEDIATE when write, else BEGIN (a read snapshot). */
int sqldb_begin(struct sqldb *db, bool write);
int sqldb_commit(struct sqldb *db);
/* Nothing when no transaction is open. */
void sqldb_rollback(struct sqldb *db);

/* A transaction that rolls back when it goes out of scope uncommitted:
 *     __do_txn struct sqldb_txn txn = { 0 };
 *     ret = sqldb_txn_begin(&txn, db, true); ...; ret = sqldb_txn_commit(&txn); */
struct sqldb_txn {
	struct sqldb *db;
	bool open;
};

int sqldb_txn_begin(struct sqldb_txn *txn, struct sqldb *db, bool write);
int sqldb_txn_commit(struct sqldb_txn *txn);
void sqldb_txn_endp(struct sqldb_txn *txn);
#define __do_txn __attribute__((cleanup(sqldb_txn_endp)))

#endif
