/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "state/state.h"
#include "cleanup.h"

#include "banned.h"

static void test_lowest_free_empty(void **state)
{
	struct config_range range = { 2200, 2299 };
	uint32_t out = 0;

	assert_int_equal(ids_lowest_free(&range, NULL, 0, &out), 0);
	assert_int_equal(out, 2200);
}

static void test_lowest_free_holes(void **state)
{
	struct config_range range = { 2200, 2299 };
	uint32_t used[] = { 2203, 2200, 2201, 9999, 2202, 2205 };
	uint32_t out = 0;

	assert_int_equal(ids_lowest_free(&range, used, ARRAY_SIZE(used), &out), 0);
	assert_int_equal(out, 2204);
}

static void test_lowest_free_full(void **state)
{
	struct config_range range = { 10, 12 };
	uint32_t used[] = { 12, 11, 10 };
	uint32_t out = 0;

	assert_int_equal(ids_lowest_free(&range, used, ARRAY_SIZE(used), &out), -ENOSPC);
	range.last = 13;
	assert_int_equal(ids_lowest_free(&range, used, ARRAY_SIZE(used), &out), 0);
	assert_int_equal(out, 13);
}

static void test_lowest_free_edges(void **state)
{
	struct config_range one = { 5, 5 };
	struct config_range top = { UINT32_MAX - 1, UINT32_MAX };
	struct config_range bad = { 6, 5 };
	uint32_t used[] = { UINT32_MAX - 1 };
	uint32_t out = 0;

	assert_int_equal(ids_lowest_free(&one, NULL, 0, &out), 0);
	assert_int_equal(out, 5);
	assert_int_equal(ids_lowest_free(&top, used, 1, &out), 0);
	assert_int_equal(out, UINT32_MAX);
	used[0] = UINT32_MAX;
	assert_int_equal(ids_lowest_free(&top, used, 1, &out), 0);
	assert_int_equal(out, UINT32_MAX - 1);
	assert_int_equal(ids_lowest_free(&bad, NULL, 0, &out), -EINVAL);
}

static void test_subid_empty(void **state)
{
	struct config_range range = { 100000, 99999999 };
	uint32_t out = 0;

	/* 100000 is not aligned: the first block starts at 2 * 65536. */
	assert_int_equal(ids_subid_block(&range, NULL, 0, &out), 0);
	assert_int_equal(out, 131072);
}

static void test_subid_never_zero(void **state)
{
	struct config_range range = { 0, 3 * 65536 - 1 };
	uint32_t out = 1;

	assert_int_equal(ids_subid_block(&range, NULL, 0, &out), 0);
	assert_int_equal(out, 65536);

	/* Only the block holding 0 fits. */
	range.last = 65535;
	assert_int_equal(ids_subid_block(&range, NULL, 0, &out), -ENOSPC);
}

static void test_subid_taken(void **state)
{
	struct config_range range = { 65536, 10 * 65536 - 1 };
	/* Like /etc/subuid: unaligned, overlapping, out of order, an empty one. */
	struct id_range taken[] = {
		{ 3 * 65536, 65536 },
		{ 100000, 65536 },   /* 100000..165535: blocks 1 and 2 */
		{ 5 * 65536 + 10, 1 },
		{ 4 * 65536, 0 },
	};
	uint32_t out = 0;

	assert_int_equal(ids_subid_block(&range, taken, ARRAY_SIZE(taken), &out), 0);
	assert_int_equal(out, 4 * 65536);

	taken[3].count = 1;
	assert_int_equal(ids_subid_block(&range, taken, ARRAY_SIZE(taken), &out), 0);
	assert_int_equal(out, 6 * 65536);
}

static void test_subid_hole_too_small(void **state)
{
	struct config_range range = { 65536, 4 * 65536 - 1 };
	struct id_range taken[] = {
		{ 65536, 65536 + 1 },         /* block 1 and the first id of 2 */
		{ 3 * 65536 + 65535, 1 },     /* the last id of block 3 */
	};
	uint32_t out = 0;

	assert_int_equal(ids_subid_block(&range, taken, ARRAY_SIZE(taken), &out), -ENOSPC);
}

static void test_subid_full_and_top(void **state)
{
	struct config_range range = { 65536, 3 * 65536 - 1 };
	struct id_range taken[] = { { 65536, 65536 }, { 2 * 65536, 65536 } };
	struct config_range top = { 0, UINT32_MAX };
	struct id_range below_top = { 0, UINT32_MAX - 65535 };
	uint32_t out = 0;

	assert_int_equal(ids_subid_block(&range, taken, ARRAY_SIZE(taken), &out), -ENOSPC);
	/* A range ending before a whole block fits. */
	range.last = 2 * 65536 - 2;
	assert_int_equal(ids_subid_block(&range, NULL, 0, &out), -ENOSPC);

	/* The very last block of the id space, with no overflow. */
	assert_int_equal(ids_subid_block(&top, &below_top, 1, &out), 0);
	assert_int_equal(out, UINT32_MAX - 65535);
	below_top.count++;
	assert_int_equal(ids_subid_block(&top, &below_top, 1, &out), -ENOSPC);
}

static void test_subid_bad(void **state)
{
	struct config_range bad = { 10, 9 };
	uint32_t out;

	assert_int_equal(ids_subid_block(&bad, NULL, 0, &out), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lowest_free_empty),
		cmocka_unit_test(test_lowest_free_holes),
		cmocka_unit_test(test_lowest_free_full),
		cmocka_unit_test(test_lowest_free_edges),
		cmocka_unit_test(test_subid_empty),
		cmocka_unit_test(test_subid_never_zero),
		cmocka_unit_test(test_subid_taken),
		cmocka_unit_test(test_subid_hole_too_small),
		cmocka_unit_test(test_subid_full_and_top),
		cmocka_unit_test(test_subid_bad),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
