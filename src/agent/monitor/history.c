/* SPDX-License-Identifier: MIT */
/*
 * The agent's past, in its own SQLite file (<state_dir>/history.db), apart
 * from the records of db.c: it is written every second, may be deleted
 * at any time without harm, and its size is bounded by the GPUs and the
 * members, never by the uptime.  Every tick is kept at full resolution
 * for history_full seconds; each complete minute is folded into one row
 * per GPU, per member and GPU, and for the host, kept history_days days.
 *
 * The minutes' schema is an interface: the system tests write a synthetic
 * past into it with the sqlite3 shell.  Times are unix milliseconds, memory and disk
 * in bytes, utilisation in percent, power in milliwatts, network rates in
 * bytes per second; a value that was not known is NULL.
 *
 *   gpu_ticks(t, gpus, members)                            PK (t)
 *       a tick's GPUs and its members packed into two blobs (tickpack.h;
 *       NULL: none), so that an hour at full resolution is 3,600 rows to
 *       read, not one per GPU and one per member and GPU.  Each
 *       connection (history_attach_views()) shows them as the views
 *   gpu_samples(t, gpu, uuid, util, mem_used, mem_total, temperature,
 *               power_mw)                     in the order of t, gpu
 *   member_samples(t, gpu, member, mem_used, sm_util, processes,
 *               interval_ms, idle_ms)         in the order of t, gpu, member
 *       one row per member per GPU per tick, summed over the member's
 *       processes there (processes: how many, default 1); the host's
 *       processes under member ''.  interval_ms: the time the tick stands
 *       for, the spacing from the tick before, capped (see
 *       history_tick_interval()); 0 for the first tick ever; default 1000.
 *       idle_ms: interval_ms when the GPU was marked idle for the member
 *       (idle.c), else 0 (the default).
 *   host_samples(t, cpu_percent, mem_used, mem_total, load1, disk_used,
 *               net_rx_rate, net_tx_rate)                  PK (t)
 *   gpu_minutes(t, gpu, uuid, util_avg, util_max, mem_used_avg,
 *               mem_used_max, mem_total, temperature_max, power_mw_avg,
 *               samples)                                   PK (t, gpu)
 *   member_minutes(t, gpu, member, mem_used_avg, mem_used_max,
 *               sm_util_avg, processes_max, seconds, samples, idle_seconds)
 *                                                          PK (t, gpu, member)
 *       seconds: the sum of the interval_ms of the member's rows there
 *       (the time it had a process on the GPU), default 60; idle_seconds:
 *       the sum of their idle_ms (of that time, how much it held the GPU
 *       idle), default 0.
 *   host_minutes(t, cpu_avg, mem_used_avg, mem_total, load1_avg,
 *               disk_used, net_rx_avg, net_tx_avg, samples) PK (t)
 *       t of a minute row: the minute's start (a multiple of 60000);
 *       samples: how many ticks were folded into it, default 60.
 *   meta(key, value): 'aggregated_until' (the
 *       watermark: every minute before it has been folded).  Full rows
 *       older than the watermark are never folded, so a synthetic past
 *       goes into the *_minutes tables; a file without a watermark at
 *       open gets one just after its newest minute row.
 *   The schema's version is PRAGMA user_version (sqldb.h); files from
 *   before kept it in meta's 'schema_version'.  Version 2 added idle_ms
 *   and idle_seconds; version 3 packed the tables gpu_samples and
 *   member_samples into gpu_ticks.
 *
 * Queries answer from the minutes before the watermark and from the full
 * rows after it, so nothing is counted twice.  In JSON, a number is an
 * integer where it is whole and a value that was not known is null.  The
 * host's processes appear as member "" in history_gpu_at() and
 * history_range(); history_usage() leaves them out.
 *
 * Two connections (SQLITE_OPEN_FULLMUTEX): the sampler records and
 * compacts on one while requests read on the other, which WAL allows, so
 * a long query never delays a tick.  Each has a mutex of ours, since its
 * prepared statements are shared by the threads.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "gpu/gpu.h"
#include "monitor/monitor.h"
#include "monitor/procinfo.h"
#include "monitor/tickpack.h"
#include "cleanup.h"
#include "log.h"
#include "sqldb.h"
#include "banned.h"

#define HISTORY_SCHEMA_VERSION 3
#define HISTORY_MINUTE_MS 60000LL
/* A gap between ticks counts at most this much, or twice the gap before
 * it: an agent restarted after an hour does not invent an hour of use. */
#define HISTORY_GAP_CAP_MS 5000LL
/* history_gpu_at() takes a full sample this close, at least. */
#define HISTORY_NEAR_MIN_MS 2000LL
#define HISTORY_NEAR_MAX_MS 120000LL
#define HISTORY_POINTS_DEFAULT 500u
#define HISTORY_POINTS_MAX 5000u
/* 9999-12-31 23:59:59.999 UTC: keeps every sum of times far from overflow. */
#define HISTORY_TIME_MAX_MS 253402300799999LL

static const char history_schema[] =
	"CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value);"
	"CREATE TABLE IF NOT EXISTS gpu_ticks (t INTEGER PRIMARY KEY, gpus BLOB, members BLOB);"
	"CREATE TABLE IF NOT EXISTS host_samples ("
	"  t INTEGER PRIMARY KEY, cpu_percent REAL, mem_used INTEGER, mem_total INTEGER,"
	"  load1 REAL, disk_used INTEGER, net_rx_rate REAL, net_tx_rate REAL);"
	"CREATE TABLE IF NOT EXISTS gpu_minutes ("
	"  t INTEGER NOT NULL, gpu INTEGER NOT NULL, uuid TEXT, util_avg REAL, util_max INTEGER,"
	"  mem_used_avg REAL, mem_used_max INTEGER, mem_total INTEGER, temperature_max INTEGER,"
	"  power_mw_avg REAL, samples INTEGER NOT NULL DEFAULT 60,"
	"  PRIMARY KEY (t, gpu)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS member_minutes ("
	"  t INTEGER NOT NULL, gpu INTEGER NOT NULL, member TEXT NOT NULL, mem_used_avg REAL,"
	"  mem_used_max INTEGER, sm_util_avg REAL, processes_max INTEGER,"
	"  seconds REAL NOT NULL DEFAULT 60, samples INTEGER NOT NULL DEFAULT 60,"
	"  idle_seconds REAL NOT NULL DEFAULT 0,"
	"  PRIMARY KEY (t, gpu, member)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS host_minutes ("
	"  t INTEGER PRIMARY KEY, cpu_avg REAL, mem_used_avg REAL, mem_total INTEGER,"
	"  load1_avg REAL, disk_used INTEGER, net_rx_avg REAL, net_tx_avg REAL,"
	"  samples INTEGER NOT NULL DEFAULT 60);";

/* upgrades[v - 1] takes a file from version v to v + 1 (sqldb.h). */
static const char *const history_upgrades[HISTORY_SCHEMA_VERSION - 1] = {
	/* 2: the time members held a GPU idle.  (main.: the TEMP views of
	 * history_attach_views() bear the old tables' names.) */
	"ALTER TABLE main.member_samples ADD COLUMN idle_ms INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE member_minutes ADD COLUMN idle_seconds REAL NOT NULL DEFAULT 0;",
	/* 3: a tick's GPUs and members packed into one row (tickpack.h).
	 * GROUP BY t walks each table in the order of its key, so a tick's
	 * rows are packed in the order of GPU, then member. */
	"CREATE TABLE IF NOT EXISTS gpu_ticks (t INTEGER PRIMARY KEY, gpus BLOB, members BLOB);"
	"INSERT OR REPLACE INTO gpu_ticks (t, gpus, members)"
	" SELECT k.t, g.packed, m.packed FROM"
	" (SELECT t FROM main.gpu_samples UNION SELECT t FROM main.member_samples) AS k"
	" LEFT JOIN (SELECT t, tick_pack_gpus(gpu, uuid, util, mem_used, mem_total, temperature,"
	"  power_mw) AS packed FROM main.gpu_samples GROUP BY t) AS g ON g.t = k.t"
	" LEFT JOIN (SELECT t, tick_pack_members(gpu, member, mem_used, sm_util, processes,"
	"  interval_ms, idle_ms) AS packed FROM main.member_samples GROUP BY t) AS m ON m.t = k.t;"
	"DROP TABLE main.gpu_samples;"
	"DROP TABLE main.member_samples;",
};

/*
 * The rows of the packed ticks as the tables of version 2 had them, for
 * the queries that read few of them (folding a minute, a GPU at a time,
 * the usage since the watermark): TEMP, so each connection makes its own,
 * after tickpack_sql_register().
 */
static const char history_views[] =
	"CREATE TEMP VIEW IF NOT EXISTS gpu_samples AS"
	" SELECT k.t AS t, g.gpu AS gpu, g.uuid AS uuid, g.util AS util, g.mem_used AS mem_used,"
	" g.mem_total AS mem_total, g.temperature AS temperature, g.power_mw AS power_mw"
	" FROM main.gpu_ticks AS k, tick_gpus(k.gpus) AS g;"
	"CREATE TEMP VIEW IF NOT EXISTS member_samples AS"
	" SELECT k.t AS t, m.gpu AS gpu, m.member AS member, m.mem_used AS mem_used,"
	" m.sm_util AS sm_util, m.processes AS processes, m.interval_ms AS interval_ms,"
	" m.idle_ms AS idle_ms FROM main.gpu_ticks AS k, tick_members(k.members) AS m;";

/* A weighted sum of a column and the weight of its known values. */
#define HISTORY_WSUM(x) "total(" x " * w), total(CASE WHEN " x " IS NULL THEN 0 ELSE w END)"
/* In the range queries: ?1 the first bucket's start, ?2 the end, ?3 where
 * the minutes give way to full rows, ?4 the bucket's length, ?5 the GPU
 * (< 0: all). */
#define HISTORY_MINUTES_PART "t >= ?1 AND t < ?3 AND t < ?2"
#define HISTORY_SAMPLES_PART "t >= ?3 AND t >= ?1 AND t < ?2"

/* The statements of the writing connection, then those of the reading one. */
enum history_statement {
	HS_META_GET,
	HS_META_SET,
	HS_INSERT_TICK,
	HS_INSERT_HOST,
	HS_FOLD_GPU,
	HS_FOLD_MEMBER,
	HS_FOLD_HOST,
	HS_PRUNE_TICKS,
	HS_PRUNE_HOST_SAMPLES,
	HS_PRUNE_GPU_MINUTES,
	HS_PRUNE_MEMBER_MINUTES,
	HS_PRUNE_HOST_MINUTES,
	HS_NEWEST_MINUTE,
	HS_LAST_TICKS,
	/* The queries, on the reading connection. */
	HS_FIRST_READ,
	HS_READ_META_GET = HS_FIRST_READ,
	HS_GPU_AT_SAMPLE,
	HS_GPU_AT_MINUTE,
	HS_MEMBERS_AT_SAMPLE,
	HS_MEMBERS_AT_MINUTE,
	HS_OLDEST_FULL,
	HS_RANGE_GPU,
	HS_RANGE_MEMBER,
	HS_RANGE_HOST,
	HS_SCAN_GPU_TICKS,
	HS_SCAN_MEMBER_TICKS,
	HS_SCAN_HOST,
	HS_USAGE,
	HS_COUNT,
};

static const char *const history_sql[HS_COUNT] = {
	[HS_META_GET] = "SELECT value FROM meta WHERE key = ?1",
	[HS_META_SET] = "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
	[HS_INSERT_TICK] = "INSERT OR REPLACE INTO gpu_ticks (t, gpus, members) VALUES (?1, ?2, ?3)",
	[HS_INSERT_HOST] =
		"INSERT OR REPLACE INTO host_samples (t, cpu_percent, mem_used, mem_total, load1,"
		" disk_used, net_rx_rate, net_tx_rate) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	/* Fold the full rows of [?1, ?2) into minutes. */
	[HS_FOLD_GPU] =
		"INSERT OR REPLACE INTO gpu_minutes (t, gpu, uuid, util_avg, util_max, mem_used_avg,"
		" mem_used_max, mem_total, temperature_max, power_mw_avg, samples)"
		" SELECT t / 60000 * 60000 AS m, gpu, max(uuid), avg(util), max(util),"
		" round(avg(mem_used)), max(mem_used), max(mem_total), max(temperature),"
		" round(avg(power_mw)), count(*)"
		" FROM gpu_samples WHERE t >= ?1 AND t < ?2 GROUP BY m, gpu",
	[HS_FOLD_MEMBER] =
		"INSERT OR REPLACE INTO member_minutes (t, gpu, member, mem_used_avg, mem_used_max,"
		" sm_util_avg, processes_max, seconds, samples, idle_seconds)"
		" SELECT t / 60000 * 60000 AS m, gpu, member, round(avg(mem_used)), max(mem_used),"
		" avg(sm_util), max(processes), total(interval_ms) / 1000.0, count(*),"
		" total(idle_ms) / 1000.0"
		" FROM member_samples WHERE t >= ?1 AND t < ?2 GROUP BY m, gpu, member",
	[HS_FOLD_HOST] =
		"INSERT OR REPLACE INTO host_minutes (t, cpu_avg, mem_used_avg, mem_total, load1_avg,"
		" disk_used, net_rx_avg, net_tx_avg, samples)"
		" SELECT t / 60000 * 60000 AS m, avg(cpu_percent), round(avg(mem_used)), max(mem_total),"
		" avg(load1), max(disk_used), avg(net_rx_rate), avg(net_tx_rate), count(*)"
		" FROM host_samples WHERE t >= ?1 AND t < ?2 GROUP BY m",
	[HS_PRUNE_TICKS] = "DELETE FROM gpu_ticks WHERE t < ?1",
	[HS_PRUNE_HOST_SAMPLES] = "DELETE FROM host_samples WHERE t < ?1",
	[HS_PRUNE_GPU_MINUTES] = "DELETE FROM gpu_minutes WHERE t < ?1",
	[HS_PRUNE_MEMBER_MINUTES] = "DELETE FROM member_minutes WHERE t < ?1",
	[HS_PRUNE_HOST_MINUTES] = "DELETE FROM host_minutes WHERE t < ?1",
	[HS_NEWEST_MINUTE] =
		"SELECT max(t) FROM (SELECT max(t) AS t FROM gpu_minutes"
		" UNION ALL SELECT max(t) FROM member_minutes"
		" UNION ALL SELECT max(t) FROM host_minutes)",
	[HS_LAST_TICKS] = "SELECT t FROM host_samples ORDER BY t DESC LIMIT 2",
	[HS_READ_META_GET] = "SELECT value FROM meta WHERE key = ?1",
	/* ?1 the GPU, ?2 the time, ?3 how far a sample may be. */
	[HS_GPU_AT_SAMPLE] =
		"SELECT t, uuid, util, mem_used, mem_total, temperature, power_mw FROM gpu_samples"
		" WHERE t >= ?2 - ?3 AND t <= ?2 + ?3 AND gpu = ?1 ORDER BY abs(t - ?2), t LIMIT 1",
	[HS_GPU_AT_MINUTE] =
		"SELECT t, uuid, util_avg, mem_used_avg, mem_total, temperature_max, power_mw_avg"
		" FROM gpu_minutes WHERE t = ?2 AND gpu = ?1",
	[HS_MEMBERS_AT_SAMPLE] =
		"SELECT member, mem_used, sm_util, processes FROM member_samples"
		" WHERE t = ?2 AND gpu = ?1 ORDER BY member",
	[HS_MEMBERS_AT_MINUTE] =
		"SELECT member, mem_used_avg, sm_util_avg, processes_max FROM member_minutes"
		" WHERE t = ?2 AND gpu = ?1 ORDER BY member",
	[HS_OLDEST_FULL] =
		"SELECT min(t) FROM (SELECT min(t) AS t FROM gpu_ticks"
		" UNION ALL SELECT min(t) FROM host_samples)",
	[HS_RANGE_GPU] =
		"SELECT gpu, (t - ?1) / ?4 AS b, max(uuid), " HISTORY_WSUM("util") ", "
		HISTORY_WSUM("mem_used") ", max(mem_total), " HISTORY_WSUM("temperature") ", "
		HISTORY_WSUM("power_mw") " FROM ("
		" SELECT t, gpu, uuid, util_avg AS util, mem_used_avg AS mem_used, mem_total,"
		" temperature_max AS temperature, power_mw_avg AS power_mw, samples AS w"
		" FROM gpu_minutes WHERE " HISTORY_MINUTES_PART " AND (?5 < 0 OR gpu = ?5)"
		" UNION ALL SELECT t, gpu, uuid, util, mem_used, mem_total, temperature, power_mw, 1"
		" FROM gpu_samples WHERE " HISTORY_SAMPLES_PART " AND (?5 < 0 OR gpu = ?5))"
		" GROUP BY gpu, b ORDER BY gpu, b",
	[HS_RANGE_MEMBER] =
		"SELECT gpu, member, (t - ?1) / ?4 AS b, " HISTORY_WSUM("mem_used") ", "
		HISTORY_WSUM("sm_util") " FROM ("
		" SELECT t, gpu, member, mem_used_avg AS mem_used, sm_util_avg AS sm_util, samples AS w"
		" FROM member_minutes WHERE " HISTORY_MINUTES_PART " AND (?5 < 0 OR gpu = ?5)"
		" UNION ALL SELECT t, gpu, member, mem_used, sm_util, 1"
		" FROM member_samples WHERE " HISTORY_SAMPLES_PART " AND (?5 < 0 OR gpu = ?5))"
		" GROUP BY gpu, member, b ORDER BY gpu, member, b",
	[HS_RANGE_HOST] =
		"SELECT (t - ?1) / ?4 AS b, " HISTORY_WSUM("cpu") ", " HISTORY_WSUM("mem_used") ","
		" max(mem_total), " HISTORY_WSUM("load1") " FROM ("
		" SELECT t, cpu_avg AS cpu, mem_used_avg AS mem_used, mem_total, load1_avg AS load1,"
		" samples AS w FROM host_minutes WHERE " HISTORY_MINUTES_PART
		" UNION ALL SELECT t, cpu_percent, mem_used, mem_total, load1, 1"
		" FROM host_samples WHERE " HISTORY_SAMPLES_PART ")"
		" GROUP BY b ORDER BY b",
	/* The full rows of [?1, ?2) in the order of time, for
	 * history_fold_rows(). */
	[HS_SCAN_GPU_TICKS] = "SELECT t, gpus FROM gpu_ticks WHERE t >= ?1 AND t < ?2 ORDER BY t",
	[HS_SCAN_MEMBER_TICKS] =
		"SELECT t, members FROM gpu_ticks WHERE t >= ?1 AND t < ?2 ORDER BY t",
	[HS_SCAN_HOST] =
		"SELECT t, cpu_percent, mem_used, mem_total, load1 FROM host_samples"
		" WHERE t >= ?1 AND t < ?2 ORDER BY t",
	/* ?1 from, ?2 to, ?3 the watermark.  Minutes count whole, by their start. */
	[HS_USAGE] =
		"SELECT member, total(sec), total(memsec), max(mx), total(idle) FROM ("
		" SELECT member, seconds AS sec, mem_used_avg * seconds AS memsec, mem_used_max AS mx,"
		" idle_seconds AS idle"
		" FROM member_minutes WHERE t >= ?1 AND t < ?2 AND t < ?3 AND member <> ''"
		" UNION ALL SELECT member, interval_ms / 1000.0, mem_used * (interval_ms / 1000.0),"
		" mem_used, idle_ms / 1000.0"
		" FROM member_samples WHERE t >= ?3 AND t >= ?1 AND t < ?2 AND member <> '')"
		" GROUP BY member HAVING total(sec) > 0 ORDER BY total(sec) DESC, member",
};

struct history {
	struct sqldb *db;          /* record and compact */
	struct sqldb *reader;      /* the queries */
	struct history_limits limits;
	struct tickpack_writer gpus, members; /* a tick being recorded */
	long long last_tick_ms;    /* -1: none recorded */
	_Atomic long long last_gap_ms; /* the spacing before the last tick; 0 unknown */
	bool group_in_sql;         /* history_group_in_sql() */
};

/* The connection a statement belongs to. */
static struct sqldb *history_sqldb(struct history *h, enum history_statement which)
{
	return which >= HS_FIRST_READ ? h->reader : h->db;
}

/* The kept statement, bound as sqldb_bind() does, on its connection. */
static sqlite3_stmt *history_bind(struct history *h, enum history_statement which,
				  const char *types, ...)
{
	sqlite3_stmt *stmt;
	va_list ap;

	va_start(ap, types);
	if (which >= HS_FIRST_READ)
		stmt = sqldb_bind_va(h->reader, which - HS_FIRST_READ, types, ap);
	else
		stmt = sqldb_bind_va(h->db, which, types, ap);
	va_end(ap);
	return stmt;
}

/* A measure as the binder's 'n' takes it: -1 (NULL) when not known. */
static long long history_known(uint64_t value, bool known)
{
	return known && value <= (uint64_t)INT64_MAX ? (long long)value : -1;
}

/* Neither NaN nor an infinity (for which v - v is NaN): no libm needed. */
static bool history_finite(double value)
{
	return value - value == 0;
}

/* ---- meta ----------------------------------------------------------------- */

/* -ENOENT when the key is absent.  which: HS_META_GET or HS_READ_META_GET. */
static int history_meta_lookup(struct history *h, enum history_statement which, const char *key,
			       long long *value)
{
	__do_reset sqlite3_stmt *stmt = history_bind(h, which, "t", key);
	int ret = sqldb_first_row(history_sqldb(h, which), stmt, "reading meta");

	if (ret < 0)
		return ret;
	*value = sqlite3_column_int64(stmt, 0);
	return 0;
}

static int history_meta_get(struct history *h, const char *key, long long *value)
{
	return history_meta_lookup(h, HS_META_GET, key, value);
}

static int history_meta_set(struct history *h, const char *key, long long value)
{
	return sqldb_exec(h->db, HS_META_SET, "writing meta", "ti", key, value);
}

/* Every minute before it is folded; 0 when none is.  which: as for
 * history_meta_lookup(). */
static int history_watermark(struct history *h, enum history_statement which, long long *watermark)
{
	int ret = history_meta_lookup(h, which, "aggregated_until", watermark);

	if (ret == -ENOENT) {
		*watermark = 0;
		return 0;
	}
	return ret;
}

/* ---- open and close --------------------------------------------------------- */

/* A one-off query of one integer; *found false when it gave NULL or no row. */
static int history_query_int(struct history *h, enum history_statement which, long long *value,
			     bool *found)
{
	__do_reset sqlite3_stmt *stmt = history_bind(h, which, "");
	int ret = sqldb_first_row(h->db, stmt, NULL);

	*found = false;
	if (ret == 0 && sqlite3_column_type(stmt, 0) != SQLITE_NULL) {
		*value = sqlite3_column_int64(stmt, 0);
		*found = true;
	}
	return ret == -ENOENT ? 0 : ret;
}

/* A file from before schema versions kept its version in meta. */
static int history_legacy_version(sqlite3 *handle, int *version)
{
	sqlite3_stmt *stmt = NULL;
	int rc = sqlite3_prepare_v2(handle, "SELECT value FROM meta WHERE key = 'schema_version'", -1,
				    &stmt, NULL);

	if (rc == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW)
		*version = sqlite3_column_int(stmt, 0);
	sqlite3_finalize(stmt);
	return rc == SQLITE_OK ? 0 : -EIO;
}

/* Without a watermark (a new file, or one the system tests wrote by hand),
 * the minutes already there count as folded. */
static int history_init_watermark(struct history *h)
{
	long long watermark, newest;
	bool found;
	int ret;

	ret = history_meta_get(h, "aggregated_until", &watermark);
	if (ret != -ENOENT)
		return ret;
	ret = history_query_int(h, HS_NEWEST_MINUTE, &newest, &found);
	if (ret < 0)
		return ret;
	return history_meta_set(h, "aggregated_until", found ? newest + HISTORY_MINUTE_MS : 0);
}

/* The last tick and the spacing before it, so that a restarted agent
 * carries on counting. */
static int history_load_ticks(struct history *h)
{
	__do_reset sqlite3_stmt *stmt = history_bind(h, HS_LAST_TICKS, "");
	long long t[2];
	int n = 0, rc;

	h->last_tick_ms = -1;
	h->last_gap_ms = 0;
	if (!stmt)
		return -EINVAL;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
		t[n++] = sqlite3_column_int64(stmt, 0);
	if (rc != SQLITE_DONE)
		return sqldb_error(h->db, "reading the last tick");
	if (n > 0)
		h->last_tick_ms = t[0];
	if (n > 1)
		h->last_gap_ms = t[0] - t[1];
	return 0;
}

/* Every connection's functions and views (sqldb_options.on_connect). */
int history_attach_views(sqlite3 *handle)
{
	int ret = tickpack_sql_register(handle);

	if (ret < 0)
		return ret;
	return sqlite3_exec(handle, history_views, NULL, NULL, NULL) == SQLITE_OK ? 0 : -EIO;
}

/* The writer, which creates the file (0600: who ran what, when, is
 * private) and the tables, then the reader, which prepares its queries. */
static int history_setup(struct history *h, const char *path)
{
	/* The WAL is truncated back to 4 MiB after a checkpoint, so that the
	 * file's size stays bounded along with the database's. */
	const struct sqldb_options writer = {
		.name = "history",
		.flags = SQLDB_WAL | SQLDB_SYNC_NORMAL,
		.mode = 0600,
		.pragmas = "PRAGMA journal_size_limit = 4194304;",
		.on_connect = history_attach_views,
		.schema = history_schema,
		.version = HISTORY_SCHEMA_VERSION,
		.upgrades = history_upgrades,
		.legacy_version = history_legacy_version,
		.sql = history_sql,
		.nsql = HS_FIRST_READ,
	};
	const struct sqldb_options reader = {
		.name = "history",
		/* Every query takes sqldb_lock() (history_range() and the
		 * others), which also keeps one snapshot for its statements. */
		.flags = SQLDB_READONLY | SQLDB_SERIALISED,
		.on_connect = history_attach_views,
		.sql = history_sql + HS_FIRST_READ,
		.nsql = HS_COUNT - HS_FIRST_READ,
	};
	int ret;

	ret = sqldb_open(path, &writer, &h->db);
	if (ret == 0)
		ret = sqldb_open(path, &reader, &h->reader);
	if (ret == 0)
		ret = history_init_watermark(h);
	if (ret == 0)
		ret = history_load_ticks(h);
	return ret;
}

int history_open(const char *path, const struct history_limits *limits, struct history **out)
{
	struct history *h;
	int ret;

	if (!path || !*path || !limits || !out)
		return -EINVAL;
	if (limits->full_seconds < 60 || limits->minute_days < 1) {
		log_error("history: keep at least 60 s of full rows and a day of minutes");
		return -EINVAL;
	}
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->limits = *limits;
	tickpack_begin(&h->gpus, &tickpack_gpus);
	tickpack_begin(&h->members, &tickpack_members);
	ret = history_setup(h, path);
	if (ret < 0) {
		history_close(h);
		return ret;
	}
	*out = h;
	return 0;
}

void history_close(struct history *h)
{
	if (!h)
		return;
	sqldb_close(h->reader);
	sqldb_close(h->db);
	tickpack_free(&h->gpus);
	tickpack_free(&h->members);
	free(h);
}

/* ---- record ------------------------------------------------------------------ */

/*
 * The time a tick at t stands for: the spacing from the tick before, but
 * at most HISTORY_GAP_CAP_MS or twice the spacing before that (a
 * sample_interval of a minute is counted whole, a restart is not).  The
 * first tick ever stands for nothing: nobody knows how long it lasted.
 */
static long long history_tick_interval(const struct history *h, long long t)
{
	long long gap = t - h->last_tick_ms, cap;

	if (h->last_tick_ms < 0 || gap <= 0)
		return 0;
	cap = h->last_gap_ms > HISTORY_GAP_CAP_MS / 2 ? 2 * h->last_gap_ms : HISTORY_GAP_CAP_MS;
	return gap < cap ? gap : cap;
}

static int history_insert_host(struct history *h, const struct sample *s)
{
	const struct host_stats *host = &s->host;
	uint64_t available = host->mem_available < host->mem_total ? host->mem_available
								     : host->mem_total;

	return sqldb_exec(h->db, HS_INSERT_HOST, "recording the host", "irnnrnrr", s->time_ms,
			  host->cpu_percent,
			  history_known(host->mem_total - available, host->mem_total > 0),
			  history_known(host->mem_total, host->mem_total > 0), host->load[0],
			  history_known(host->disk_used, host->disk_total > 0), host->net_rx_rate,
			  host->net_tx_rate);
}

/* A packed integer, unknown when negative (as sqldb_bind()'s 'n'). */
static struct tickpack_value history_packed(long long value)
{
	return (struct tickpack_value){ .known = value >= 0, .i = value };
}

static struct tickpack_value history_packed_text(const char *text, size_t size)
{
	size_t len = strnlen(text, size);

	return (struct tickpack_value){ .known = len > 0, .text = text, .len = len };
}

static int history_pack_gpu(struct history *h, const struct nvml_gpu *g)
{
	/* A lost GPU's last numbers are not a reading. */
	bool known = !g->lost;
	const struct tickpack_value row[] = {
		history_packed(g->index),
		history_packed_text(g->uuid, sizeof(g->uuid)),
		history_packed(known ? (long long)g->util_gpu : -1LL),
		history_packed(history_known(g->mem_used, known && g->mem_total > 0)),
		history_packed(history_known(g->mem_total, known && g->mem_total > 0)),
		history_packed(known ? (long long)g->temperature : -1LL),
		history_packed(known ? (long long)g->power_mw : -1LL),
	};

	return tickpack_add(&h->gpus, row);
}

static int history_process_order(const void *a, const void *b)
{
	const struct sample_process *p = *(const struct sample_process *const *)a;
	const struct sample_process *q = *(const struct sample_process *const *)b;

	if (p->gpu != q->gpu)
		return p->gpu < q->gpu ? -1 : 1;
	return strncmp(p->member, q->member, sizeof(p->member));
}

static bool history_same_group(const struct sample_process *p, const struct sample_process *q)
{
	return p->gpu == q->gpu && strncmp(p->member, q->member, sizeof(p->member)) == 0;
}

/* One row for the processes group[0..n) of one member on one GPU. */
static int history_pack_member(struct history *h, long long interval,
			       const struct sample_process *const *group, size_t n)
{
	uint64_t mem = 0;
	bool mem_known = false, idle = false;
	int sm = 0;
	bool sm_known = false;

	for (size_t i = 0; i < n; i++) {
		idle |= group[i]->idle;
		/* A sum past INT64_MAX is no reading either: stored as NULL. */
		if (group[i]->mem_used != UINT64_MAX) {
			if (__builtin_add_overflow(mem, group[i]->mem_used, &mem))
				mem = UINT64_MAX;
			mem_known = true;
		}
		if (group[i]->sm_util >= 0 && group[i]->sm_util <= 100) {
			sm = sm + group[i]->sm_util > 100 ? 100 : sm + group[i]->sm_util;
			sm_known = true;
		}
	}
	const struct tickpack_value row[] = {
		history_packed(group[0]->gpu),
		/* The host's processes: member "", known. */
		{ .known = true, .text = group[0]->member,
		  .len = strnlen(group[0]->member, sizeof(group[0]->member)) },
		history_packed(history_known(mem, mem_known)),
		history_packed(sm_known ? (long long)sm : -1LL),
		history_packed((long long)n),
		history_packed(interval),
		history_packed(idle ? interval : 0LL),
	};

	return tickpack_add(&h->members, row);
}

/* The processes grouped by GPU and member: one row per group. */
static int history_pack_members(struct history *h, const struct sample *s, long long interval)
{
	__do_free const struct sample_process **order = NULL;
	size_t start = 0;

	if (s->nprocs == 0)
		return 0;
	order = calloc(s->nprocs, sizeof(*order));
	if (!order)
		return -ENOMEM;
	for (size_t i = 0; i < s->nprocs; i++)
		order[i] = &s->procs[i];
	qsort(order, s->nprocs, sizeof(*order), history_process_order);
	for (size_t i = 1; i <= s->nprocs; i++) {
		int ret;

		if (i < s->nprocs && history_same_group(order[start], order[i]))
			continue;
		ret = history_pack_member(h, interval, order + start, i - start);
		if (ret < 0)
			return ret;
		start = i;
	}
	return 0;
}

/* The tick's GPUs and members, packed into one row (none when neither). */
static int history_insert_tick(struct history *h, const struct sample *s, long long interval)
{
	int ret = 0;

	tickpack_reset(&h->gpus);
	tickpack_reset(&h->members);
	/* Without NVML there are no GPU readings, only what was there before. */
	for (size_t i = 0; ret == 0 && s->gpu_ok && i < s->ngpus; i++)
		ret = history_pack_gpu(h, &s->gpus[i]);
	if (ret == 0)
		ret = history_pack_members(h, s, interval);
	if (ret < 0)
		return log_error_errno(ret, 0, "history: cannot pack a tick");
	if (h->gpus.rows == 0 && h->members.rows == 0)
		return 0;
	return sqldb_exec(h->db, HS_INSERT_TICK, "recording a tick", "ibb", s->time_ms,
			  h->gpus.rows ? h->gpus.buf : NULL, h->gpus.len,
			  h->members.rows ? h->members.buf : NULL, h->members.len);
}

static int history_record_rows(struct history *h, const struct sample *s, long long interval)
{
	int ret = history_insert_host(h, s);

	return ret < 0 ? ret : history_insert_tick(h, s, interval);
}

static int history_record_locked(struct history *h, const struct sample *s)
{
	long long interval = history_tick_interval(h, s->time_ms);
	__do_txn struct sqldb_txn txn = { 0 };
	int ret;

	ret = sqldb_txn_begin(&txn, h->db, true);
	if (ret < 0)
		return ret;
	ret = history_record_rows(h, s, interval);
	if (ret == 0)
		ret = sqldb_txn_commit(&txn);
	if (ret < 0)
		return ret;
	if (h->last_tick_ms >= 0 && s->time_ms > h->last_tick_ms)
		h->last_gap_ms = s->time_ms - h->last_tick_ms;
	h->last_tick_ms = s->time_ms;
	return 0;
}

int history_record(struct history *h, const struct sample *s)
{
	__do_unlock struct sqldb *locked = NULL;

	if (!h || !s || (s->ngpus && !s->gpus) || (s->nprocs && !s->procs) ||
	    s->time_ms < 0 || s->time_ms > HISTORY_TIME_MAX_MS)
		return -EINVAL;
	locked = sqldb_lock(h->db);
	return history_record_locked(h, s);
}

/* ---- compact ----------------------------------------------------------------- */

static int history_fold(struct history *h, long long from, long long to)
{
	static const enum history_statement folds[] = { HS_FOLD_GPU, HS_FOLD_MEMBER, HS_FOLD_HOST };

	for (size_t i = 0; i < ARRAY_SIZE(folds); i++) {
		int ret = sqldb_exec(h->db, folds[i], "folding minutes", "ii", from, to);

		if (ret < 0)
			return ret;
	}
	return history_meta_set(h, "aggregated_until", to);
}

static int history_prune(struct history *h, long long now)
{
	static const struct {
		enum history_statement stmt;
		bool minutes;
	} prunes[] = {
		{ HS_PRUNE_TICKS, false },
		{ HS_PRUNE_HOST_SAMPLES, false },
		{ HS_PRUNE_GPU_MINUTES, true },
		{ HS_PRUNE_MEMBER_MINUTES, true },
		{ HS_PRUNE_HOST_MINUTES, true },
	};
	long long full_before = now - (long long)h->limits.full_seconds * 1000;
	long long minutes_before = now - (long long)h->limits.minute_days * 86400000;

	for (size_t i = 0; i < ARRAY_SIZE(prunes); i++) {
		int ret = sqldb_exec(h->db, prunes[i].stmt, NULL, "i",
				     prunes[i].minutes ? minutes_before : full_before);

		if (ret < 0)
			return ret;
	}
	return 0;
}

static int history_compact_rows(struct history *h, long long now)
{
	/* A minute is complete once its last millisecond is past. */
	long long complete = now / HISTORY_MINUTE_MS * HISTORY_MINUTE_MS, watermark;
	int ret = history_watermark(h, HS_META_GET, &watermark);

	if (ret < 0)
		return ret;
	if (watermark > complete)
		/* The clock went back: fold again from here as time goes on. */
		ret = history_meta_set(h, "aggregated_until", complete);
	else if (watermark < complete)
		ret = history_fold(h, watermark, complete);
	if (ret < 0)
		return ret;
	return history_prune(h, now);
}

int history_compact(struct history *h, long long now_ms)
{
	__do_unlock struct sqldb *locked = NULL;
	__do_txn struct sqldb_txn txn = { 0 };
	int ret;

	if (!h || now_ms < 0 || now_ms > HISTORY_TIME_MAX_MS)
		return -EINVAL;
	locked = sqldb_lock(h->db);
	ret = sqldb_txn_begin(&txn, h->db, true);
	if (ret == 0)
		ret = history_compact_rows(h, now_ms);
	if (ret == 0)
		ret = sqldb_txn_commit(&txn);
	return ret;
}

/* ---- JSON -------------------------------------------------------------------- */

/* value rounded to decimals places: an integer when whole. */
static json_t *history_number(double value, int decimals)
{
	long long scale = 1, scaled;

	for (int i = 0; i < decimals; i++)
		scale *= 10;
	if (!history_finite(value))
		return json_null();
	if (value * scale >= 9e15 || value * scale <= -9e15)
		return json_real(value);
	scaled = (long long)(value * scale + (value >= 0 ? 0.5 : -0.5));
	if (scaled % scale == 0)
		return json_integer(scaled / scale);
	return json_real((double)scaled / (double)scale);
}

/* A column as a number divided by divisor, or null. */
static json_t *history_column(sqlite3_stmt *stmt, int col, double divisor, int decimals)
{
	if (sqlite3_column_type(stmt, col) == SQLITE_NULL)
		return json_null();
	if (sqlite3_column_type(stmt, col) == SQLITE_INTEGER && divisor == 1)
		return json_integer(sqlite3_column_int64(stmt, col));
	return history_number(sqlite3_column_double(stmt, col) / divisor, decimals);
}

/* The weighted mean of columns col (sum) and col + 1 (weight), or null. */
static json_t *history_mean(sqlite3_stmt *stmt, int col, double divisor, int decimals)
{
	double weight = sqlite3_column_double(stmt, col + 1);

	if (weight <= 0)
		return json_null();
	return history_number(sqlite3_column_double(stmt, col) / weight / divisor, decimals);
}

static json_t *history_text(sqlite3_stmt *stmt, int col)
{
	const unsigned char *text = sqlite3_column_text(stmt, col);

	return text ? json_string((const char *)text) : json_null();
}

/* Append value (taken) to array; -ENOMEM if either is missing. */
static int history_append(json_t *array, json_t *value)
{
	if (!value)
		return -ENOMEM;
	return json_array_append_new(array, value) < 0 ? -ENOMEM : 0;
}

/* An array of the values (taken), all or nothing. */
static json_t *history_tuple(json_t *const *values, size_t n)
{
	json_t *tuple = json_array();
	int ret = tuple ? 0 : -ENOMEM;

	for (size_t i = 0; i < n; i++) {
		if (ret == 0)
			ret = history_append(tuple, values[i]);
		else
			json_decref(values[i]);
	}
	if (ret < 0) {
		json_decref(tuple);
		return NULL;
	}
	return tuple;
}

/* ---- history_gpu_at ------------------------------------------------------------ */

/* How far the nearest full sample may be: two tick spacings, 2 s at least. */
static long long history_near(const struct history *h)
{
	long long near = 2 * h->last_gap_ms;

	if (near < HISTORY_NEAR_MIN_MS)
		return HISTORY_NEAR_MIN_MS;
	return near > HISTORY_NEAR_MAX_MS ? HISTORY_NEAR_MAX_MS : near;
}

static int history_at_members(struct history *h, enum history_statement which, unsigned gpu,
			      long long t, json_t *members)
{
	__do_reset sqlite3_stmt *stmt = history_bind(h, which, "ii", (long long)gpu, t);
	int rc;

	if (!stmt)
		return -EINVAL;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		json_t *m = json_object();

		if (history_append(members, m) < 0 ||
		    json_object_set_new(m, "member", history_text(stmt, 0)) < 0 ||
		    json_object_set_new(m, "mem_used", history_column(stmt, 1, 1, 0)) < 0 ||
		    json_object_set_new(m, "sm_util", history_column(stmt, 2, 1, 1)) < 0 ||
		    json_object_set_new(m, "processes", history_column(stmt, 3, 1, 0)) < 0)
			return -ENOMEM;
	}
	if (rc != SQLITE_DONE)
		return sqldb_error(h->reader, "reading members");
	return 0;
}

/* The GPU's row in stmt (columns t, uuid, util, mem_used, mem_total,
 * temperature, power_mw) as the object of history_gpu_at(). */
static int history_at_object(sqlite3_stmt *stmt, const char *resolution, unsigned gpu,
			     json_t **out)
{
	json_t *o = json_object();

	if (!o)
		return -ENOMEM;
	if (json_object_set_new(o, "time", json_integer(sqlite3_column_int64(stmt, 0))) < 0 ||
	    json_object_set_new(o, "resolution", json_string(resolution)) < 0 ||
	    json_object_set_new(o, "gpu", json_integer(gpu)) < 0 ||
	    json_object_set_new(o, "uuid", history_text(stmt, 1)) < 0 ||
	    json_object_set_new(o, "util", history_column(stmt, 2, 1, 1)) < 0 ||
	    json_object_set_new(o, "mem_used", history_column(stmt, 3, 1, 0)) < 0 ||
	    json_object_set_new(o, "mem_total", history_column(stmt, 4, 1, 0)) < 0 ||
	    json_object_set_new(o, "temperature", history_column(stmt, 5, 1, 1)) < 0 ||
	    json_object_set_new(o, "power_w", history_column(stmt, 6, 1000, 3)) < 0 ||
	    json_object_set_new(o, "members", json_array()) < 0) {
		json_decref(o);
		return -ENOMEM;
	}
	*out = o;
	return 0;
}

/* The GPU's state from one statement (a sample, or a minute); -ENOENT if
 * it has no row. */
static int history_at_from(struct history *h, enum history_statement gpu_stmt,
			   enum history_statement members_stmt, const char *resolution,
			   unsigned gpu, long long t, json_t **out)
{
	__do_reset sqlite3_stmt *stmt =
		gpu_stmt == HS_GPU_AT_SAMPLE ? history_bind(h, gpu_stmt, "iii", (long long)gpu, t,
							    history_near(h))
					     : history_bind(h, gpu_stmt, "ii", (long long)gpu, t);
	__do_json json_t *o = NULL;
	long long at;
	int ret;

	ret = sqldb_first_row(h->reader, stmt, "reading a GPU's state");
	if (ret < 0)
		return ret;
	at = sqlite3_column_int64(stmt, 0);
	ret = history_at_object(stmt, resolution, gpu, &o);
	if (ret < 0)
		return ret;
	ret = history_at_members(h, members_stmt, gpu, at, json_object_get(o, "members"));
	if (ret < 0)
		return ret;
	*out = move_ptr(o);
	return 0;
}

int history_gpu_at(struct history *h, unsigned gpu, long long t_ms, json_t **out)
{
	__do_unlock struct sqldb *locked = NULL;
	int ret;

	if (!h || !out || t_ms < 0 || t_ms > HISTORY_TIME_MAX_MS)
		return -EINVAL;
	locked = sqldb_lock(h->reader);
	/* One snapshot for the several statements of a query. */
	ret = sqldb_begin(h->reader, false);
	if (ret == 0) {
		ret = history_at_from(h, HS_GPU_AT_SAMPLE, HS_MEMBERS_AT_SAMPLE, "sample", gpu, t_ms,
				      out);
		if (ret == -ENOENT)
			ret = history_at_from(h, HS_GPU_AT_MINUTE, HS_MEMBERS_AT_MINUTE, "minute", gpu,
					      t_ms / HISTORY_MINUTE_MS * HISTORY_MINUTE_MS, out);
		sqldb_commit(h->reader);
	}
	return ret;
}

/* ---- history_range ------------------------------------------------------------- */

struct history_span {
	long long origin;          /* the first bucket's start */
	long long to;
	long long step;            /* a bucket's length */
	long long split;           /* minutes before, full rows from here */
	int gpu;
	bool full;
};

/* The oldest full row kept; -1 when there is none. */
static int history_oldest_full(struct history *h, long long *oldest)
{
	__do_reset sqlite3_stmt *stmt = history_bind(h, HS_OLDEST_FULL, "");
	int ret = sqldb_first_row(h->reader, stmt, "finding the oldest full row");

	*oldest = -1;
	if (ret < 0)
		return ret == -ENOENT ? -EIO : ret;
	if (sqlite3_column_type(stmt, 0) != SQLITE_NULL)
		*oldest = sqlite3_column_int64(stmt, 0);
	return 0;
}

static long long history_ceil_div(long long a, long long b)
{
	return (a + b - 1) / b;
}

/*
 * Full rows when they reach back to from (a minute's slack, since the
 * oldest is pruned every few seconds) and a bucket is shorter than a
 * minute; else minutes, 60 times fewer rows to read, with the full rows
 * after the watermark for the newest part, in buckets of whole minutes.
 * At most points buckets either way.
 */
static int history_plan_span(struct history *h, int gpu, long long from, long long to,
			     unsigned points, struct history_span *span)
{
	long long oldest, watermark;
	int ret;

	ret = history_oldest_full(h, &oldest);
	if (ret == 0)
		ret = history_watermark(h, HS_READ_META_GET, &watermark);
	if (ret < 0)
		return ret;
	span->gpu = gpu;
	span->to = to;
	span->full = oldest >= 0 && from >= oldest - HISTORY_MINUTE_MS &&
		     history_ceil_div(to - from, points) < HISTORY_MINUTE_MS;
	if (span->full) {
		span->origin = from;
		span->step = history_ceil_div(to - from, points);
		span->split = from;
	} else {
		span->origin = from / HISTORY_MINUTE_MS * HISTORY_MINUTE_MS;
		span->step = history_ceil_div(history_ceil_div(to - span->origin, points),
					      HISTORY_MINUTE_MS) * HISTORY_MINUTE_MS;
		span->split = watermark;
	}
	return 0;
}

static sqlite3_stmt *history_span_stmt(struct history *h, enum history_statement which,
				       const struct history_span *span)
{
	if (which == HS_RANGE_HOST)
		return history_bind(h, which, "iiii", span->origin, span->to, span->split, span->step);
	return history_bind(h, which, "iiiii", span->origin, span->to, span->split, span->step,
			    (long long)span->gpu);
}

/* The bucket's start time, from the bucket number in column col. */
static json_t *history_bucket_time(sqlite3_stmt *stmt, int col, const struct history_span *span)
{
	return json_integer(span->origin + sqlite3_column_int64(stmt, col) * span->step);
}

/* The GPUs of a range, in the order of their index. */
struct history_gpus {
	json_t *array;
	json_t *last;              /* the entry most recently looked up */
	long long last_gpu;
};

/* The entry of gpu, appended when new (rows come sorted by GPU, but the
 * members may name a GPU without rows of its own). */
static json_t *history_gpu_entry(struct history_gpus *gpus, long long gpu)
{
	json_t *entry = NULL, *e;
	size_t i;

	if (gpus->last && gpus->last_gpu == gpu)
		return gpus->last;
	json_array_foreach(gpus->array, i, e)
		if (json_integer_value(json_object_get(e, "gpu")) == gpu)
			entry = e;
	if (!entry) {
		entry = json_pack("{s:I, s:n, s:[], s:{}}", "gpu", (json_int_t)gpu, "uuid", "points",
				  "members");
		if (!entry || json_array_append_new(gpus->array, entry) < 0)
			return NULL;
	}
	gpus->last = entry;
	gpus->last_gpu = gpu;
	return entry;
}

/* The series of member in a GPU's entry, created when new. */
static json_t *history_member_series(json_t *entry, const char *member)
{
	json_t *members = json_object_get(entry, "members");
	json_t *series = json_object_get(members, member);

	if (series)
		return series;
	series = json_array();
	if (json_object_set_new(members, member, series) < 0)
		return NULL;
	return series;
}

static int history_range_gpus(struct history *h, const struct history_span *span,
			      struct history_gpus *gpus)
{
	__do_reset sqlite3_stmt *stmt = history_span_stmt(h, HS_RANGE_GPU, span);
	int rc;

	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		json_t *entry = history_gpu_entry(gpus, sqlite3_column_int64(stmt, 0));
		json_t *values[] = {
			history_bucket_time(stmt, 1, span),
			history_mean(stmt, 3, 1, 1),      /* util */
			history_mean(stmt, 5, 1, 0),      /* mem_used */
			history_column(stmt, 7, 1, 0),    /* mem_total */
			history_mean(stmt, 8, 1, 1),      /* temperature */
			history_mean(stmt, 10, 1000, 3),  /* power_w */
		};
		json_t *point = history_tuple(values, ARRAY_SIZE(values));

		if (!entry) {
			json_decref(point);
			return -ENOMEM;
		}
		if (history_append(json_object_get(entry, "points"), point) < 0)
			return -ENOMEM;
		if (sqlite3_column_type(stmt, 2) != SQLITE_NULL &&
		    json_object_set_new(entry, "uuid", history_text(stmt, 2)) < 0)
			return -ENOMEM;
	}
	if (rc != SQLITE_DONE)
		return sqldb_error(h->reader, "reading the GPUs' series");
	return 0;
}

static int history_range_members(struct history *h, const struct history_span *span,
				 struct history_gpus *gpus)
{
	__do_reset sqlite3_stmt *stmt = history_span_stmt(h, HS_RANGE_MEMBER, span);
	int rc;

	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		json_t *entry = history_gpu_entry(gpus, sqlite3_column_int64(stmt, 0));
		const char *member = (const char *)sqlite3_column_text(stmt, 1);
		json_t *series = entry && member ? history_member_series(entry, member) : NULL;
		json_t *values[] = {
			history_bucket_time(stmt, 2, span),
			history_mean(stmt, 3, 1, 0),      /* mem_used */
			history_mean(stmt, 5, 1, 1),      /* sm_util */
		};
		json_t *point = history_tuple(values, ARRAY_SIZE(values));

		if (!series) {
			json_decref(point);
			return -ENOMEM;
		}
		if (history_append(series, point) < 0)
			return -ENOMEM;
	}
	if (rc != SQLITE_DONE)
		return sqldb_error(h->reader, "reading the members' series");
	return 0;
}

static int history_range_host(struct history *h, const struct history_span *span, json_t *host)
{
	__do_reset sqlite3_stmt *stmt = history_span_stmt(h, HS_RANGE_HOST, span);
	int rc;

	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		json_t *values[] = {
			history_bucket_time(stmt, 0, span),
			history_mean(stmt, 1, 1, 1),      /* cpu_percent */
			history_mean(stmt, 3, 1, 0),      /* mem_used */
			history_column(stmt, 5, 1, 0),    /* mem_total */
			history_mean(stmt, 6, 1, 2),      /* load1 */
		};

		if (history_append(host, history_tuple(values, ARRAY_SIZE(values))) < 0)
			return -ENOMEM;
	}
	if (rc != SQLITE_DONE)
		return sqldb_error(h->reader, "reading the host's series");
	return 0;
}

/*
 * At full resolution a range reads every tick (an hour: 3,600 ticks of 8
 * GPUs and their members), and SQLite's GROUP BY would sort all their
 * rows in a temporary B-tree first: most of the query's time.  Here the
 * ticks come in the order of time and are unpacked (tickpack.h), so the
 * buckets of each series come one after the other: one open bucket per
 * series is summed up as the SQL of the minutes path does (the same
 * weighted means, each row weighing 1), and the series are put in the
 * answer in the order the SQL path gives.
 */
#define HISTORY_FIELDS_MAX 5

/* A value of a row being folded: unpacked, or a column's. */
struct history_cell {
	int type;                   /* SQLITE_NULL, _INTEGER, _FLOAT or _TEXT */
	long long i;
	double d;
	const char *text;           /* not NUL-terminated */
	size_t len;
};

/* A point's value: the mean of cell col (or its maximum), divided. */
struct history_field {
	int col;
	double divisor;
	int decimals;
	bool max;
};

/* A scan: its statement, its packing (NULL: a plain row, its columns
 * after t), and where the series' keys are among the cells. */
struct history_layout {
	enum history_statement stmt;
	const struct tickpack_layout *packed;
	int gpu_col, member_col, uuid_col;   /* -1: none */
	size_t nfields;
	struct history_field fields[HISTORY_FIELDS_MAX];
};

/* tickpack_gpus: gpu, uuid, util, mem_used, mem_total, temperature, power_mw */
static const struct history_layout history_gpu_layout = {
	HS_SCAN_GPU_TICKS, &tickpack_gpus, 0, -1, 1, 5,
	{ { 2, 1, 1, false }, { 3, 1, 0, false }, { 4, 1, 0, true }, { 5, 1, 1, false },
	  { 6, 1000, 3, false } },
};
/* tickpack_members: gpu, member, mem_used, sm_util, ... */
static const struct history_layout history_member_layout = {
	HS_SCAN_MEMBER_TICKS, &tickpack_members, 0, 1, -1, 2,
	{ { 2, 1, 0, false }, { 3, 1, 1, false } },
};
/* HS_SCAN_HOST after t: cpu_percent, mem_used, mem_total, load1 */
static const struct history_layout history_host_layout = {
	HS_SCAN_HOST, NULL, -1, -1, -1, 4,
	{ { 0, 1, 1, false }, { 1, 1, 0, false }, { 2, 1, 0, true }, { 3, 1, 2, false } },
};

/* One series (a GPU's, a member's on a GPU, the host's) and its open bucket. */
struct history_series {
	long long gpu;
	char *member;
	size_t member_len;
	char *uuid;                 /* the newest bucket's max(uuid) */
	json_t *points;
	long long bucket;           /* -1: none open */
	char *bucket_uuid;
	double sum[HISTORY_FIELDS_MAX], weight[HISTORY_FIELDS_MAX];
	sqlite3_int64 max_int[HISTORY_FIELDS_MAX];
	bool is_int[HISTORY_FIELDS_MAX];
};

struct history_fold {
	const struct history_layout *layout;
	const struct history_span *span;
	struct history_series *v;
	size_t n, cap, next;        /* next: where the next row's series likely is */
};

static void history_fold_free(struct history_fold *f)
{
	for (size_t i = 0; i < f->n; i++) {
		free(f->v[i].member);
		free(f->v[i].uuid);
		free(f->v[i].bucket_uuid);
		json_decref(f->v[i].points);
	}
	free(f->v);
	f->v = NULL;
	f->n = f->cap = 0;
}

/* The open bucket as a point at the end of the series, and closed. */
static int history_fold_flush(struct history_fold *f, struct history_series *s)
{
	const struct history_layout *l = f->layout;
	json_t *values[HISTORY_FIELDS_MAX + 1];

	if (s->bucket < 0)
		return 0;
	values[0] = json_integer(f->span->origin + s->bucket * f->span->step);
	for (size_t i = 0; i < l->nfields; i++) {
		const struct history_field *fd = &l->fields[i];

		if (s->weight[i] <= 0)
			values[i + 1] = json_null();
		else if (fd->max && s->is_int[i] && fd->divisor == 1)
			values[i + 1] = json_integer(s->max_int[i]);
		else if (fd->max)
			values[i + 1] = history_number(s->sum[i] / fd->divisor, fd->decimals);
		else
			values[i + 1] = history_number(s->sum[i] / s->weight[i] / fd->divisor,
						       fd->decimals);
	}
	if (s->bucket_uuid) {
		free(s->uuid);
		s->uuid = move_ptr(s->bucket_uuid);
	}
	memset(s->sum, 0, sizeof(s->sum));
	memset(s->weight, 0, sizeof(s->weight));
	s->bucket = -1;
	return history_append(s->points, history_tuple(values, l->nfields + 1));
}

static bool history_series_is(const struct history_series *s, long long gpu,
			      const struct history_cell *member)
{
	return s->gpu == gpu && (!member || (s->member_len == member->len &&
					     memcmp(s->member, member->text, member->len) == 0));
}

/* a and the NUL-terminated b, as strcmp() orders them. */
static int history_text_order(const struct history_cell *a, const char *b)
{
	size_t blen = strlen(b);
	int c = memcmp(a->text, b, a->len < blen ? a->len : blen);

	return c ? c : (a->len > blen) - (a->len < blen);
}

/* The series of a row: where the row of the tick before stood next, else
 * searched, else new.  Each tick's rows come in the same order. */
static struct history_series *history_fold_series(struct history_fold *f, long long gpu,
						  const struct history_cell *member)
{
	struct history_series *s;

	for (size_t k = 0; k < f->n; k++) {
		size_t i = (f->next + k) % f->n;

		if (history_series_is(&f->v[i], gpu, member)) {
			f->next = i + 1;
			return &f->v[i];
		}
	}
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 16;
		struct history_series *v = realloc(f->v, cap * sizeof(*v));

		if (!v)
			return NULL;
		f->v = v;
		f->cap = cap;
	}
	s = &f->v[f->n];
	*s = (struct history_series){ .gpu = gpu, .bucket = -1, .points = json_array() };
	if (member) {
		/* An unpacked text holds no NUL: strndup() copies all of it. */
		s->member = strndup(member->text, member->len);
		s->member_len = member->len;
	}
	if (!s->points || (member && !s->member)) {
		free(s->member);
		json_decref(s->points);
		return NULL;
	}
	f->next = ++f->n;
	return s;
}

static void history_fold_max(struct history_series *s, size_t i, const struct history_cell *c)
{
	if (s->weight[i] > 0 && c->d <= s->sum[i])
		return;
	s->sum[i] = c->d;
	s->weight[i] = 1;
	s->is_int[i] = c->type == SQLITE_INTEGER;
	s->max_int[i] = c->i;
}

/* The bucket's greatest uuid, as max(uuid) gives it. */
static int history_fold_uuid(struct history_series *s, const struct history_cell *uuid)
{
	if (uuid->type != SQLITE_TEXT ||
	    (s->bucket_uuid && history_text_order(uuid, s->bucket_uuid) <= 0))
		return 0;
	free(s->bucket_uuid);
	s->bucket_uuid = strndup(uuid->text, uuid->len);
	return s->bucket_uuid ? 0 : -ENOMEM;
}

/* One row at t into its series' bucket (a max field keeps its maximum in
 * sum).  Its key cells are known: history_fold_tick() checks them. */
static int history_fold_row(struct history_fold *f, long long t, const struct history_cell *cells)
{
	const struct history_layout *l = f->layout;
	long long gpu = l->gpu_col >= 0 ? cells[l->gpu_col].i : 0;
	long long bucket = (t - f->span->origin) / f->span->step;
	struct history_series *s;

	s = history_fold_series(f, gpu, l->member_col >= 0 ? &cells[l->member_col] : NULL);
	if (!s)
		return -ENOMEM;
	if (s->bucket != bucket && history_fold_flush(f, s) < 0)
		return -ENOMEM;
	s->bucket = bucket;
	for (size_t i = 0; i < l->nfields; i++) {
		const struct history_cell *c = &cells[l->fields[i].col];

		if (c->type == SQLITE_NULL)
			continue;
		if (l->fields[i].max) {
			history_fold_max(s, i, c);
			continue;
		}
		s->sum[i] += c->d;
		s->weight[i] += 1;
	}
	return l->uuid_col >= 0 ? history_fold_uuid(s, &cells[l->uuid_col]) : 0;
}

/* The rows of a packed tick at t, of the span's GPU (or all). */
static int history_fold_tick(struct history_fold *f, long long t, const void *blob, size_t len)
{
	const struct history_layout *l = f->layout;
	struct tickpack_value values[TICKPACK_COLUMNS_MAX];
	struct history_cell cells[TICKPACK_COLUMNS_MAX];
	struct tickpack_reader r;
	int ret = tickpack_open(&r, l->packed, blob, len);

	if (ret < 0)
		return ret;
	while ((ret = tickpack_next(&r, values)) == 1) {
		for (size_t c = 0; c < l->packed->ncolumns; c++) {
			const struct tickpack_value *v = &values[c];
			bool text = l->packed->types[c] == TICKPACK_TEXT;

			cells[c] = (struct history_cell){
				.type = !v->known ? SQLITE_NULL : text ? SQLITE_TEXT : SQLITE_INTEGER,
				.i = v->i, .d = (double)v->i, .text = v->text, .len = v->len,
			};
		}
		/* A GPU, and a member, are never NULL in what history.c packs. */
		if (!values[l->gpu_col].known || (l->member_col >= 0 && !values[l->member_col].known))
			return -EBADMSG;
		if (f->span->gpu >= 0 && values[l->gpu_col].i != f->span->gpu)
			continue;
		ret = history_fold_row(f, t, cells);
		if (ret < 0)
			return ret;
	}
	return ret;
}

/* A plain row: t, then the cells. */
static int history_fold_plain(struct history_fold *f, sqlite3_stmt *stmt)
{
	struct history_cell cells[HISTORY_FIELDS_MAX];
	int n = sqlite3_column_count(stmt) - 1;

	for (int c = 0; c < n && c < HISTORY_FIELDS_MAX; c++) {
		sqlite3_value *value = sqlite3_column_value(stmt, c + 1);

		cells[c] = (struct history_cell){ .type = sqlite3_value_type(value),
						  .i = sqlite3_value_int64(value),
						  .d = sqlite3_value_double(value) };
	}
	return history_fold_row(f, sqlite3_column_int64(stmt, 0), cells);
}

/* The series ordered as the SQL path orders its rows: by GPU, then member. */
static int history_series_order(const void *a, const void *b)
{
	const struct history_series *x = a, *y = b;

	if (x->gpu != y->gpu)
		return x->gpu < y->gpu ? -1 : 1;
	return x->member && y->member ? strcmp(x->member, y->member) : 0;
}

static int history_fold_rows(struct history *h, struct history_fold *f)
{
	__do_reset sqlite3_stmt *stmt = history_bind(h, f->layout->stmt, "ii", f->span->origin,
						     f->span->to);
	int rc, ret;

	if (!stmt)
		return -EINVAL;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (f->layout->packed)
			ret = history_fold_tick(f, sqlite3_column_int64(stmt, 0),
						sqlite3_column_blob(stmt, 1),
						(size_t)sqlite3_column_bytes(stmt, 1));
		else
			ret = history_fold_plain(f, stmt);
		if (ret == -EBADMSG)
			return log_error_errno(-EIO, 0, "history: a packed tick at %lld is damaged",
					       sqlite3_column_int64(stmt, 0));
		if (ret < 0)
			return ret;
	}
	if (rc != SQLITE_DONE)
		return sqldb_error(h->reader, "reading the full rows of a range");
	for (size_t i = 0; i < f->n; i++)
		if (history_fold_flush(f, &f->v[i]) < 0)
			return -ENOMEM;
	if (f->n > 1)
		qsort(f->v, f->n, sizeof(*f->v), history_series_order);
	return 0;
}

/* The folded series of one table into the answer. */
static int history_fold_attach(struct history_fold *f, struct history_gpus *gpus, json_t *host)
{
	for (size_t i = 0; i < f->n; i++) {
		struct history_series *s = &f->v[i];
		json_t *entry;

		if (f->layout == &history_host_layout) {
			if (json_array_extend(host, s->points) < 0)
				return -ENOMEM;
			continue;
		}
		entry = history_gpu_entry(gpus, s->gpu);
		if (!entry)
			return -ENOMEM;
		if (s->member) {
			if (json_object_set(json_object_get(entry, "members"), s->member,
					    s->points) < 0)
				return -ENOMEM;
			continue;
		}
		if (json_object_set(entry, "points", s->points) < 0 ||
		    (s->uuid && json_object_set_new(entry, "uuid", json_string(s->uuid)) < 0))
			return -ENOMEM;
	}
	return 0;
}

static int history_range_folded(struct history *h, const struct history_span *span,
				struct history_gpus *gpus, json_t *host)
{
	static const struct history_layout *const layouts[] = {
		&history_gpu_layout, &history_member_layout, &history_host_layout,
	};
	int ret = 0;

	for (size_t i = 0; ret == 0 && i < ARRAY_SIZE(layouts); i++) {
		struct history_fold f = { .layout = layouts[i], .span = span };

		ret = history_fold_rows(h, &f);
		if (ret == 0)
			ret = history_fold_attach(&f, gpus, host);
		history_fold_free(&f);
	}
	return ret;
}

/* Grouped by SQLite: the minutes path (and the full one, for comparison). */
static int history_range_grouped(struct history *h, const struct history_span *span,
				 struct history_gpus *gpus, json_t *host)
{
	int ret = history_range_gpus(h, span, gpus);

	if (ret == 0)
		ret = history_range_members(h, span, gpus);
	if (ret == 0)
		ret = history_range_host(h, span, host);
	return ret;
}

static int history_range_locked(struct history *h, int gpu, long long from, long long to,
				unsigned points, json_t **out)
{
	struct history_span span;
	__do_json json_t *result = NULL;
	struct history_gpus gpus = { 0 };
	int ret;

	ret = history_plan_span(h, gpu, from, to, points, &span);
	if (ret < 0)
		return ret;
	result = json_pack("{s:I, s:I, s:I, s:s, s:[], s:[]}", "from", (json_int_t)span.origin,
			   "to", (json_int_t)to, "step_ms", (json_int_t)span.step, "resolution",
			   span.full ? "sample" : "minute", "gpus", "host");
	if (!result)
		return -ENOMEM;
	gpus.array = json_object_get(result, "gpus");
	if (span.full && !h->group_in_sql)
		ret = history_range_folded(h, &span, &gpus, json_object_get(result, "host"));
	else
		ret = history_range_grouped(h, &span, &gpus, json_object_get(result, "host"));
	if (ret < 0)
		return ret;
	*out = move_ptr(result);
	return 0;
}

int history_range(struct history *h, int gpu, long long from_ms, long long to_ms,
		  unsigned max_points, json_t **out)
{
	__do_unlock struct sqldb *locked = NULL;
	int ret;

	if (!h || !out || from_ms < 0 || to_ms <= from_ms || to_ms > HISTORY_TIME_MAX_MS)
		return -EINVAL;
	if (max_points == 0)
		max_points = HISTORY_POINTS_DEFAULT;
	if (max_points > HISTORY_POINTS_MAX)
		max_points = HISTORY_POINTS_MAX;
	locked = sqldb_lock(h->reader);
	ret = sqldb_begin(h->reader, false);
	if (ret == 0) {
		ret = history_range_locked(h, gpu, from_ms, to_ms, max_points, out);
		sqldb_commit(h->reader);
	}
	return ret;
}

void history_group_in_sql(struct history *h, bool on)
{
	__do_unlock struct sqldb *locked = sqldb_lock(h->reader);

	h->group_in_sql = on;
}

/* ---- history_usage ------------------------------------------------------------- */

static int history_usage_locked(struct history *h, long long from, long long to, json_t **out)
{
	__do_json json_t *rows = json_array();
	__do_reset sqlite3_stmt *stmt = NULL;
	long long watermark;
	int rc, ret;

	if (!rows)
		return -ENOMEM;
	ret = history_watermark(h, HS_READ_META_GET, &watermark);
	if (ret < 0)
		return ret;
	stmt = history_bind(h, HS_USAGE, "iii", from, to, watermark);
	if (!stmt)
		return -EINVAL;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		json_t *row = json_pack("{s:o, s:f, s:f, s:o, s:f}", "member", history_text(stmt, 0),
					"gpu_hours", sqlite3_column_double(stmt, 1) / 3600.0,
					"gpu_mem_gib_hours",
					sqlite3_column_double(stmt, 2) / 1073741824.0 / 3600.0,
					"max_mem_used", history_column(stmt, 3, 1, 0),
					"idle_gpu_hours", sqlite3_column_double(stmt, 4) / 3600.0);

		if (history_append(rows, row) < 0)
			return -ENOMEM;
	}
	if (rc != SQLITE_DONE)
		return sqldb_error(h->reader, "reading the usage");
	*out = move_ptr(rows);
	return 0;
}

int history_usage(struct history *h, long long from_ms, long long to_ms, json_t **out)
{
	__do_unlock struct sqldb *locked = NULL;

	if (!h || !out || from_ms < 0 || to_ms <= from_ms || to_ms > HISTORY_TIME_MAX_MS)
		return -EINVAL;
	locked = sqldb_lock(h->reader);
	return history_usage_locked(h, from_ms, to_ms, out);
}
