/* SPDX-License-Identifier: MIT */
/* A tick's rows packed into one blob (src/agent/monitor/tickpack.c). */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <sqlite3.h>

#include "testutil.h"
#include "monitor/tickpack.h"
#include "banned.h"

static struct tickpack_value int_of(long long i)
{
	return (struct tickpack_value){ .known = true, .i = i };
}

static struct tickpack_value text_of(const char *text)
{
	return (struct tickpack_value){ .known = true, .text = text, .len = strlen(text) };
}

static const struct tickpack_value unknown;

/* Every row written comes back, value for value, and then the end. */
static void test_round_trip(void **state)
{
	const struct tickpack_value rows[][7] = {
		{ int_of(0), text_of("GPU-1"), int_of(100), int_of(INT64_MAX), int_of(-1),
		  int_of(INT64_MIN + 1), int_of(-64) },
		{ int_of(7), unknown, unknown, unknown, unknown, unknown, int_of(-63) },
		{ int_of(1), text_of(""), int_of(64), int_of(-65), int_of(1LL << 40), unknown,
		  int_of(127) },
	};
	struct tickpack_writer w;
	struct tickpack_reader r;
	struct tickpack_value got[TICKPACK_COLUMNS_MAX];

	(void)state;
	tickpack_begin(&w, &tickpack_gpus);
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++)
		assert_int_equal(tickpack_add(&w, rows[i]), 0);
	assert_int_equal(w.rows, 3);
	assert_int_equal(w.buf[0], TICKPACK_FORMAT);
	assert_int_equal(w.buf[1], 7);
	assert_int_equal(tickpack_open(&r, &tickpack_gpus, w.buf, w.len), 0);
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		assert_int_equal(tickpack_next(&r, got), 1);
		for (size_t c = 0; c < 7; c++) {
			assert_int_equal(got[c].known, rows[i][c].known);
			if (!got[c].known)
				continue;
			if (tickpack_gpus.types[c] == TICKPACK_INT) {
				assert_true(got[c].i == rows[i][c].i);
				continue;
			}
			assert_int_equal(got[c].len, rows[i][c].len);
			assert_memory_equal(got[c].text, rows[i][c].text, got[c].len);
		}
	}
	assert_int_equal(tickpack_next(&r, got), 0);
	assert_int_equal(tickpack_next(&r, got), 0);
	/* Small values take a byte: 7 columns, a byte each but the text. */
	tickpack_reset(&w);
	assert_int_equal(tickpack_add(&w, rows[1]), 0);
	assert_int_equal(w.len, 2 + 7);
	tickpack_free(&w);
}

/* What cannot be packed leaves the blob as it was. */
static void test_refused(void **state)
{
	struct tickpack_value row[7] = { int_of(0), text_of("GPU"), int_of(1), int_of(2), int_of(3),
					 int_of(4), int_of(5) };
	struct tickpack_writer w;
	size_t len;

	(void)state;
	tickpack_begin(&w, &tickpack_gpus);
	assert_int_equal(tickpack_add(&w, row), 0);
	len = w.len;
	row[6] = int_of(INT64_MIN);
	assert_int_equal(tickpack_add(&w, row), -EINVAL);
	row[6] = int_of(5);
	row[1] = (struct tickpack_value){ .known = true, .text = "a\0b", .len = 3 };
	assert_int_equal(tickpack_add(&w, row), -EINVAL);
	row[1] = (struct tickpack_value){ .known = true, .text = NULL, .len = 0 };
	assert_int_equal(tickpack_add(&w, row), -EINVAL);
	assert_int_equal(w.len, len);
	assert_int_equal(w.rows, 1);
	tickpack_free(&w);
}

static int read_all(const struct tickpack_layout *layout, const void *blob, size_t len)
{
	struct tickpack_value row[TICKPACK_COLUMNS_MAX];
	struct tickpack_reader r;
	int ret = tickpack_open(&r, layout, blob, len), rows = 0;

	if (ret < 0)
		return ret;
	while ((ret = tickpack_next(&r, row)) == 1)
		rows++;
	return ret < 0 ? ret : rows;
}

/* A damaged blob is refused whole, wherever the damage is. */
static void test_damaged(void **state)
{
	static const struct {
		const char *what;
		const char *blob;
		size_t len;
	} cases[] = {
		{ "another format", "\x02\x07\x01\x01\x01\x01\x01\x01\x01", 9 },
		{ "another number of columns", "\x01\x06\x01\x01\x01\x01\x01\x01", 8 },
		{ "a header alone, cut", "\x01", 1 },
		{ "a row cut short", "\x01\x07\x01\x01\x01", 5 },
		{ "a varint cut short", "\x01\x07\x81", 3 },
		{ "a varint longer than need be", "\x01\x07\x81\x00\x01\x01\x01\x01\x01\x01", 10 },
		{ "a varint past 64 bits",
		  "\x01\x07\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02\x00\x00\x00\x00\x00\x00", 18 },
		{ "a text past the end", "\x01\x07\x01\x09" "abc", 7 },
		{ "a text with a NUL", "\x01\x07\x01\x04" "a\0b" "\x01\x01\x01\x01\x01", 12 },
		{ "a second row cut short", "\x01\x07\x01\x01\x01\x01\x01\x01\x01\x01\x01", 11 },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int ret = read_all(&tickpack_gpus, cases[i].blob, cases[i].len);

		if (ret != -EBADMSG)
			fail_msg("%s: read as %d", cases[i].what, ret);
	}
	/* The same shapes, whole. */
	assert_int_equal(read_all(&tickpack_gpus, "\x01\x07\x01\x01\x01\x01\x01\x01\x01", 9), 1);
	assert_int_equal(read_all(&tickpack_gpus, "\x01\x07\x01\x04" "abc" "\x01\x01\x01\x01\x01", 12), 1);
	assert_int_equal(read_all(&tickpack_gpus, "", 0), 0);
	assert_int_equal(read_all(&tickpack_gpus, NULL, 0), 0);
}

/* In SQL: the aggregate packs what the table-valued function unpacks. */
static void test_sql(void **state)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *stmt = NULL;

	(void)state;
	assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
	assert_int_equal(tickpack_sql_register(db), 0);
	assert_int_equal(sqlite3_prepare_v2(db,
		"WITH r(gpu, member, mem, sm) AS (VALUES (0, 'a', 5, NULL), (1, '', NULL, 3)),"
		" p AS (SELECT tick_pack_members(gpu, member, mem, sm, 1, 1000, 0) AS b FROM r)"
		" SELECT group_concat(m.gpu || '/' || m.member || '/' || ifnull(m.mem_used, '-') || '/'"
		" || ifnull(m.sm_util, '-') || '/' || m.idle_ms, ' ') FROM p, tick_members(p.b) AS m",
		-1, &stmt, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(stmt, 0), "0/a/5/-/0 1//-/3/0");
	sqlite3_finalize(stmt);
	/* A damaged blob is an error, and a text where a number goes too. */
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM tick_gpus(x'010701')", -1, &stmt,
					    NULL), SQLITE_OK);
	assert_int_not_equal(sqlite3_step(stmt), SQLITE_ROW);
	sqlite3_finalize(stmt);
	assert_int_not_equal(sqlite3_exec(db, "SELECT tick_pack_gpus('x', NULL, 1, 1, 1, 1, 1)", NULL,
					  NULL, NULL), SQLITE_OK);
	/* Without a blob: no rows. */
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM tick_gpus(NULL)", -1, &stmt, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(stmt, 0), 0);
	sqlite3_finalize(stmt);
	sqlite3_close(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_damaged),
		cmocka_unit_test(test_sql),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
