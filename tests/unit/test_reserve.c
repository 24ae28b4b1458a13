/* SPDX-License-Identifier: MIT */
/*
 * The rules of GPU reservations (gpu/reserve.c): choosing free GPUs, the
 * set a container keeps while others hold reservations, every verdict of
 * a request, the queue's order, durations, the --gpu list and its text.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "gpu/gpu.h"
#include "banned.h"

#define BIT(i) ((uint64_t)1 << (i))

/* A world of 8 GPUs, no limit, no reservation, no process. */
struct fixture {
	struct reserve_entry entries[8];
	struct reserve_usage usage[4];
	struct reserve_world w;
};

static void fixture_init(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	f->w.rules.ngpus = 8;
	f->w.entries = f->entries;
	f->w.usage = f->usage;
}

static void add_entry(struct fixture *f, long long id, const char *member, uint64_t mask,
		      unsigned count, bool active)
{
	struct reserve_entry *e = &f->entries[f->w.nentries++];

	*e = (struct reserve_entry){ .id = id, .mask = mask, .count = count ? count : (unsigned)__builtin_popcountll(mask),
				     .active = active, .recorded = reserve_all(8) };
	snprintf(e->member, sizeof(e->member), "%s", member);
}

static void add_usage(struct fixture *f, const char *member, uint64_t mask)
{
	struct reserve_usage *u = &f->usage[f->w.nusage++];

	snprintf(u->member, sizeof(u->member), "%s", member);
	u->mask = mask;
}

static struct reserve_decision decide(const struct fixture *f, const char *member, uint64_t want,
				      unsigned count, uint64_t claimed)
{
	struct reserve_request req = { .member = member, .recorded = reserve_all(8), .want = want,
				       .count = want ? (unsigned)__builtin_popcountll(want) : count };
	struct reserve_decision d;

	reserve_decide(&f->w, &req, claimed, &d);
	return d;
}

static void test_pick(void **state)
{
	uint64_t out = 0;

	(void)state;
	assert_int_equal(reserve_pick(0xF0, 0, 2, &out), 0);
	assert_int_equal(out, BIT(4) | BIT(5));
	/* What the member's processes use comes first, then the lowest. */
	assert_int_equal(reserve_pick(0xF0, BIT(7), 2, &out), 0);
	assert_int_equal(out, BIT(4) | BIT(7));
	assert_int_equal(reserve_pick(BIT(63) | BIT(0), 0, 2, &out), 0);
	assert_int_equal(out, BIT(63) | BIT(0));
	assert_int_equal(reserve_pick(0x3, 0, 3, &out), -ENOSPC);
	assert_int_equal(reserve_all(3), 0x7);
	assert_int_equal(reserve_all(64), UINT64_MAX);
}

static void test_effective(void **state)
{
	struct fixture f;

	(void)state;
	fixture_init(&f);
	add_entry(&f, 1, "alice", BIT(1), 0, true);
	add_entry(&f, 2, "bob", BIT(2) | BIT(3), 0, true);
	add_entry(&f, 3, "carol", BIT(4), 0, false);      /* waiting: hides nothing */
	assert_int_equal(reserve_effective(f.entries, f.w.nentries, "alice", 0xFF), 0xFF & ~0xC);
	assert_int_equal(reserve_effective(f.entries, f.w.nentries, "bob", 0xFF), 0xFF & ~0x2);
	assert_int_equal(reserve_effective(f.entries, f.w.nentries, "carol", 0xFF), 0xFF & ~0xE);
	/* The member's own set bounds it: what it never had it does not get. */
	assert_int_equal(reserve_effective(f.entries, f.w.nentries, "dave", BIT(0) | BIT(1)), BIT(0));
	assert_int_equal(reserve_of_member(f.entries, f.w.nentries, "bob"), 0xC);
	assert_int_equal(reserve_of_member(f.entries, f.w.nentries, "carol"), 0);
	add_usage(&f, "alice", BIT(5));
	add_usage(&f, "bob", BIT(6));
	assert_int_equal(reserve_used_by_others(f.usage, f.w.nusage, "alice"), BIT(6));
	assert_int_equal(reserve_used_by_others(f.usage, f.w.nusage, NULL), BIT(5) | BIT(6));
}

static void test_decide_named(void **state)
{
	struct fixture f;
	struct reserve_request req = { .member = "alice", .recorded = BIT(0) | BIT(1), .want = BIT(2), .count = 1 };
	struct reserve_decision d;

	(void)state;
	fixture_init(&f);
	reserve_decide(&f.w, &req, 0, &d);
	assert_int_equal(d.verdict, RESERVE_NOT_IN_SET);
	assert_int_equal(d.culprits, BIT(2));
	assert_false(reserve_may_wait(d.verdict));

	f.w.rules.shared = BIT(7);
	d = decide(&f, "alice", BIT(7), 0, 0);
	assert_int_equal(d.verdict, RESERVE_SHARED);

	add_entry(&f, 4, "alice", BIT(3), 0, true);
	d = decide(&f, "alice", BIT(3) | BIT(4), 0, 0);
	assert_int_equal(d.verdict, RESERVE_OWN);
	assert_int_equal(d.other_id, 4);

	add_entry(&f, 5, "bob", BIT(1), 0, true);
	d = decide(&f, "alice", BIT(1), 0, 0);
	assert_int_equal(d.verdict, RESERVE_RESERVED);
	assert_string_equal(d.other, "bob");
	assert_int_equal(d.other_id, 5);
	assert_true(reserve_may_wait(d.verdict));

	add_usage(&f, "carol", BIT(2));
	add_usage(&f, "alice", BIT(5));
	d = decide(&f, "alice", BIT(2), 0, 0);
	assert_int_equal(d.verdict, RESERVE_IN_USE);
	assert_string_equal(d.other, "carol");
	/* The member's own processes are no obstacle. */
	d = decide(&f, "alice", BIT(5), 0, 0);
	assert_int_equal(d.verdict, RESERVE_GRANTED);
	assert_int_equal(d.grant, BIT(5));
	/* ... but an earlier queued request's claim is. */
	d = decide(&f, "alice", BIT(5), 0, BIT(5));
	assert_int_equal(d.verdict, RESERVE_PROMISED);
	assert_int_equal(d.grant, 0);
}

static void test_decide_limits(void **state)
{
	struct fixture f;
	struct reserve_decision d;

	(void)state;
	fixture_init(&f);
	f.w.rules.max_gpus = 2;
	d = decide(&f, "alice", BIT(0) | BIT(1) | BIT(2), 0, 0);
	assert_int_equal(d.verdict, RESERVE_TOO_MANY);
	assert_int_equal(d.limit, 2);
	add_entry(&f, 1, "alice", BIT(0) | BIT(1), 0, true);
	d = decide(&f, "alice", BIT(2), 0, 0);
	assert_int_equal(d.verdict, RESERVE_OVER_MAX);
	assert_int_equal(d.held, BIT(0) | BIT(1));
	assert_true(reserve_may_wait(d.verdict));
	/* Another member has a maximum of its own. */
	assert_int_equal(decide(&f, "bob", BIT(2), 0, 0).verdict, RESERVE_GRANTED);

	/* gpu_cap counts what the member's processes hold too. */
	fixture_init(&f);
	f.w.rules.cap = 2;
	add_usage(&f, "bob", BIT(5));
	add_entry(&f, 1, "bob", BIT(3), 0, true);
	d = decide(&f, "bob", BIT(4), 0, 0);
	assert_int_equal(d.verdict, RESERVE_OVER_CAP);
	assert_int_equal(d.held, BIT(3) | BIT(5));
	assert_int_equal(d.limit, 2);
	/* The GPU it uses already costs nothing more. */
	fixture_init(&f);
	f.w.rules.cap = 2;
	add_usage(&f, "bob", BIT(5));
	add_entry(&f, 1, "bob", BIT(3), 0, true);
	assert_int_equal(decide(&f, "bob", BIT(5), 0, 0).verdict, RESERVE_GRANTED);
	d = decide(&f, "bob", 0, 3, 0);
	assert_int_equal(d.verdict, RESERVE_TOO_MANY);
	assert_int_equal(d.limit, 2);
}

static void test_decide_count(void **state)
{
	struct fixture f;
	struct reserve_request req = { .member = "alice", .recorded = BIT(0) | BIT(1) | BIT(2), .count = 4 };
	struct reserve_decision d;

	(void)state;
	fixture_init(&f);
	f.w.rules.shared = BIT(0);
	reserve_decide(&f.w, &req, 0, &d);
	assert_int_equal(d.verdict, RESERVE_TOO_MANY);
	assert_int_equal(d.limit, 2);     /* GPUs 1 and 2: 0 is shared */

	fixture_init(&f);
	add_entry(&f, 1, "bob", BIT(0), 0, true);
	add_usage(&f, "carol", BIT(1));
	add_usage(&f, "alice", BIT(6));
	d = decide(&f, "alice", 0, 2, 0);
	assert_int_equal(d.verdict, RESERVE_GRANTED);
	assert_int_equal(d.grant, BIT(2) | BIT(6));
	d = decide(&f, "alice", 0, 7, 0);
	assert_int_equal(d.verdict, RESERVE_TOO_FEW);
	assert_int_equal(d.free, 0xFC);
	d = decide(&f, "alice", 0, 1, BIT(2) | BIT(6));
	assert_int_equal(d.grant, BIT(3));
}

static void test_queue(void **state)
{
	struct fixture f;

	(void)state;
	/* Two wait for GPU 1, held by a process of dave: nothing is served;
	 * once it ends, the first gets it, the second waits on. */
	fixture_init(&f);
	add_entry(&f, 1, "alice", BIT(1), 0, false);
	add_entry(&f, 2, "carol", BIT(1), 0, false);
	add_usage(&f, "dave", BIT(1));
	assert_int_equal(reserve_claims(&f.w, f.w.nentries), BIT(1));
	assert_int_equal(reserve_serve_queue(&f.w), 0);
	f.w.nusage = 0;
	assert_int_equal(reserve_serve_queue(&f.w), 1);
	assert_true(f.entries[0].active && f.entries[0].served);
	assert_false(f.entries[1].active);
	assert_int_equal(decide(&f, "dave", BIT(1), 0, reserve_claims(&f.w, f.w.nentries)).verdict,
			 RESERVE_RESERVED);
	/* The first ends (its record goes): the second is next. */
	f.w.entries = &f.entries[1];
	f.w.nentries = 1;
	assert_int_equal(reserve_serve_queue(&f.w), 1);
	assert_true(f.entries[1].active);

	/* A named request keeps only its GPUs: a later one for another goes. */
	fixture_init(&f);
	add_entry(&f, 1, "alice", BIT(1), 0, false);
	add_entry(&f, 2, "carol", BIT(2), 0, false);
	add_usage(&f, "dave", BIT(1));
	assert_int_equal(reserve_serve_queue(&f.w), 1);
	assert_true(f.entries[1].active && !f.entries[0].active);

	/* A request for any 3 with 2 free keeps those 2 from later ones. */
	fixture_init(&f);
	add_entry(&f, 9, "bob", 0xFC, 0, true);
	add_entry(&f, 10, "alice", 0, 3, false);
	add_entry(&f, 11, "carol", 0, 1, false);
	assert_int_equal(reserve_claims(&f.w, 2), 0x3);
	assert_int_equal(reserve_serve_queue(&f.w), 0);
	assert_int_equal(decide(&f, "dave", 0, 1, reserve_claims(&f.w, f.w.nentries)).verdict,
			 RESERVE_TOO_FEW);
	/* bob's ends: alice gets three, the lowest; carol one more. */
	f.w.entries = &f.entries[1];
	f.w.nentries = 2;
	assert_int_equal(reserve_serve_queue(&f.w), 2);
	assert_int_equal(f.entries[1].mask, 0x7);
	assert_int_equal(f.entries[2].mask, BIT(3));

	/* A request held back by its own member's cap keeps nothing. */
	fixture_init(&f);
	f.w.rules.cap = 1;
	add_usage(&f, "alice", BIT(0));
	add_entry(&f, 1, "alice", BIT(1), 0, false);
	add_entry(&f, 2, "carol", BIT(1), 0, false);
	assert_int_equal(reserve_claims(&f.w, 1), 0);
	assert_int_equal(reserve_serve_queue(&f.w), 1);
	assert_true(f.entries[1].active && !f.entries[0].active);
}

static void test_extend(void **state)
{
	long long out = 0;
	const long long hour = 3600, week = 7 * 86400;

	(void)state;
	/* An hour left, one more: two left, within a week. */
	assert_int_equal(reserve_extend_until(1000000, 1000000 + hour * 1000, hour, week, &out), 0);
	assert_int_equal(out, 1000000 + 2 * hour * 1000);
	assert_int_equal(reserve_extend_until(0, hour * 1000, week, week, &out), -ERANGE);
	assert_int_equal(reserve_extend_until(0, hour * 1000, week - hour, week, &out), 0);
	assert_int_equal(reserve_extend_until(0, 0, 0, week, &out), -ERANGE);
	assert_int_equal(reserve_extend_until(0, 0, -5, week, &out), -ERANGE);
	assert_int_equal(reserve_extend_until(0, 0, 100LL * 366 * 86400, week, &out), -ERANGE);
}

static void fake_host(struct gpu_host *host, size_t n)
{
	memset(host, 0, sizeof(*host));
	host->present = true;
	host->ngpus = n;
	for (size_t i = 0; i < n; i++) {
		host->gpus[i].index = (unsigned)i;
		snprintf(host->gpus[i].uuid, sizeof(host->gpus[i].uuid),
			 "GPU-%08zx-1111-2222-3333-444444444444", i);
	}
}

static void test_parse_gpus(void **state)
{
	static struct gpu_host host;
	static const char *const malformed[] = {
		"", ",", "1,", ",1", "1,,2", "1,1", "1 2", "1;2", "GPU-x/y",
		"1,GPU-00000001-1111-2222-3333-444444444444",
	};
	char err[256];
	uint64_t mask = 0;

	(void)state;
	fake_host(&host, 8);
	assert_int_equal(reserve_parse_gpus(&host, "1,3", &mask, err, sizeof(err)), 0);
	assert_int_equal(mask, BIT(1) | BIT(3));
	assert_int_equal(reserve_parse_gpus(&host, "GPU-00000007-1111-2222-3333-444444444444,0", &mask,
					    err, sizeof(err)), 0);
	assert_int_equal(mask, BIT(7) | BIT(0));
	assert_int_equal(reserve_parse_gpus(&host, "9", &mask, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "no GPU 9"));
	assert_int_equal(reserve_parse_gpus(&host, "GPU-nothere", &mask, err, sizeof(err)), -ENOENT);
	for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++)
		if (reserve_parse_gpus(&host, malformed[i], &mask, err, sizeof(err)) != -EINVAL)
			fail_msg("\"%s\" was not refused as malformed", malformed[i]);
	assert_int_equal(reserve_parse_gpus(&host, NULL, &mask, err, sizeof(err)), -EINVAL);
}

static void test_mask_text(void **state)
{
	char buf[RESERVE_MASK_TEXT_MAX];

	(void)state;
	reserve_mask_text(0, buf, sizeof(buf));
	assert_string_equal(buf, "no GPU");
	reserve_mask_text(BIT(3), buf, sizeof(buf));
	assert_string_equal(buf, "GPU 3");
	reserve_mask_text(BIT(0) | BIT(3), buf, sizeof(buf));
	assert_string_equal(buf, "GPUs 0 and 3");
	reserve_mask_text(BIT(0) | BIT(1) | BIT(63), buf, sizeof(buf));
	assert_string_equal(buf, "GPUs 0, 1 and 63");
	reserve_mask_text(UINT64_MAX, buf, 12);
	assert_string_equal(buf, "GPUs 0, 1, ");
}

/* reserve_idle_release's clock: it starts when every GPU of an active
 * reservation is idle, restarts when one is busy, is due once. */
static void test_idle_clock(void **state)
{
	struct fixture f;
	struct reserve_idle_clocks c = { 0 };
	struct reserve_idle_due due[8];
	size_t n;

	(void)state;
	fixture_init(&f);
	add_entry(&f, 1, "alice", BIT(0) | BIT(1), 2, true);
	add_entry(&f, 2, "bob", BIT(2), 1, true);
	add_entry(&f, 3, "carol", 0, 1, false);                 /* queued: never */
	/* GPU 1 busy: only bob's clock runs. */
	assert_int_equal(reserve_idle_update(&c, f.entries, 3, BIT(0) | BIT(2), 0, 10000, due, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(c.n, 1);
	assert_int_equal(reserve_idle_update(&c, f.entries, 3, ~0ULL, 5000, 10000, due, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(reserve_idle_update(&c, f.entries, 3, ~0ULL, 10000, 10000, due, &n), 0);
	assert_int_equal(n, 1);
	assert_true(due[0].id == 2 && due[0].mask == BIT(2) && due[0].idle_seconds == 10);
	assert_string_equal(due[0].member, "bob");
	/* Due once only, however long it stays idle. */
	assert_int_equal(reserve_idle_update(&c, f.entries, 3, ~0ULL, 12000, 10000, due, &n), 0);
	assert_int_equal(n, 0);
	/* alice's started at 5 s; one busy reading starts it again. */
	assert_int_equal(reserve_idle_update(&c, f.entries, 3, BIT(0) | BIT(2), 14000, 10000, due, &n), 0);
	assert_int_equal(reserve_idle_update(&c, f.entries, 3, ~0ULL, 15000, 10000, due, &n), 0);
	assert_int_equal(reserve_idle_update(&c, f.entries, 3, ~0ULL, 24999, 10000, due, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(reserve_idle_update(&c, f.entries, 3, ~0ULL, 25000, 10000, due, &n), 0);
	assert_true(n == 1 && due[0].id == 1);
	/* A reservation gone loses its clock. */
	assert_int_equal(reserve_idle_update(&c, f.entries + 1, 2, ~0ULL, 26000, 10000, due, &n), 0);
	assert_int_equal(c.n, 1);
	assert_int_equal(reserve_idle_update(&c, f.entries + 2, 1, ~0ULL, 27000, 10000, due, &n), 0);
	assert_int_equal(c.n, 0);
	reserve_idle_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pick),
		cmocka_unit_test(test_effective),
		cmocka_unit_test(test_decide_named),
		cmocka_unit_test(test_decide_limits),
		cmocka_unit_test(test_decide_count),
		cmocka_unit_test(test_queue),
		cmocka_unit_test(test_extend),
		cmocka_unit_test(test_parse_gpus),
		cmocka_unit_test(test_mask_text),
		cmocka_unit_test(test_idle_clock),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
