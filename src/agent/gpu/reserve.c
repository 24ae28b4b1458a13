/* SPDX-License-Identifier: MIT */
/*
 * The rules of GPU reservations, on masks of GPU indices and nothing
 * else: who may take which GPU now, which queued request comes first, the
 * set a member's container has while others hold reservations.  No
 * record is read and no system call made here (reservations.c does that),
 * so every rule is tested on its own.
 *
 * A GPU is free for a member when it is in the member's own set, not one
 * the server keeps shared, reserved by no one, held by no other member's
 * process, and waited for by no earlier queued request.  The queue is
 * first come, first served: an earlier request keeps the GPUs it waits for
 * (the ones it names, or the free ones it would take) from later ones;
 * a request held back by its own member's limits keeps nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gpu/gpu.h"
#include "strutil.h"
#include "banned.h"

static unsigned reserve_popcount(uint64_t mask)
{
	return (unsigned)__builtin_popcountll(mask);
}

uint64_t reserve_all(unsigned n)
{
	return n >= 64 ? UINT64_MAX : ((uint64_t)1 << n) - 1;
}

/* reserve_max_gpus, 0 meaning the server's count. */
static unsigned reserve_max_gpus(const struct reserve_rules *r)
{
	return r->max_gpus && r->max_gpus < r->ngpus ? r->max_gpus : r->ngpus;
}

bool reserve_may_wait(enum reserve_verdict v)
{
	return v >= RESERVE_RESERVED;
}

uint64_t reserve_of_member(const struct reserve_entry *entries, size_t n, const char *member)
{
	uint64_t mask = 0;

	for (size_t i = 0; i < n; i++)
		if (entries[i].active && strcmp(entries[i].member, member) == 0)
			mask |= entries[i].mask;
	return mask;
}

uint64_t reserve_effective(const struct reserve_entry *entries, size_t n, const char *member,
			   uint64_t recorded)
{
	uint64_t hidden = 0;

	for (size_t i = 0; i < n; i++)
		if (entries[i].active && strcmp(entries[i].member, member) != 0)
			hidden |= entries[i].mask;
	return recorded & ~hidden;
}

uint64_t reserve_used_by_others(const struct reserve_usage *usage, size_t n, const char *member)
{
	uint64_t mask = 0;

	for (size_t i = 0; i < n; i++)
		if (!member || strcmp(usage[i].member, member) != 0)
			mask |= usage[i].mask;
	return mask;
}

static uint64_t reserve_used_by(const struct reserve_usage *usage, size_t n, const char *member)
{
	uint64_t mask = 0;

	for (size_t i = 0; i < n; i++)
		if (strcmp(usage[i].member, member) == 0)
			mask |= usage[i].mask;
	return mask;
}

/* The first active entry on a GPU of mask: member's own when mine, else
 * another member's. */
static const struct reserve_entry *reserve_find_entry(const struct reserve_world *w,
						      const char *member, uint64_t mask, bool mine)
{
	for (size_t i = 0; i < w->nentries; i++) {
		const struct reserve_entry *e = &w->entries[i];

		if (e->active && (e->mask & mask) && (strcmp(e->member, member) == 0) == mine)
			return e;
	}
	return NULL;
}

/* The first member other than member whose processes hold a GPU of mask. */
static const char *reserve_other_user(const struct reserve_world *w, const char *member,
				      uint64_t mask)
{
	for (size_t i = 0; i < w->nusage; i++)
		if ((w->usage[i].mask & mask) && strcmp(w->usage[i].member, member) != 0)
			return w->usage[i].member;
	return NULL;
}

static uint64_t reserve_reserved(const struct reserve_world *w)
{
	uint64_t mask = 0;

	for (size_t i = 0; i < w->nentries; i++)
		if (w->entries[i].active)
			mask |= w->entries[i].mask;
	return mask;
}

int reserve_pick(uint64_t from, uint64_t prefer, unsigned count, uint64_t *out)
{
	uint64_t picked = 0;
	uint64_t rounds[2] = { from & prefer, from & ~prefer };

	if (reserve_popcount(from) < count)
		return -ENOSPC;
	for (int r = 0; r < 2; r++)
		for (unsigned i = 0; i < 64 && reserve_popcount(picked) < count; i++)
			if ((rounds[r] >> i) & 1)
				picked |= (uint64_t)1 << i;
	*out = picked;
	return 0;
}

static void reserve_verdict_is(struct reserve_decision *out, enum reserve_verdict v,
			       uint64_t culprits, unsigned limit)
{
	out->verdict = v;
	out->culprits = culprits;
	out->limit = limit;
}

/* A request naming GPUs: what can never change, then what may. */
static void reserve_decide_named(const struct reserve_world *w, const struct reserve_request *req,
				 uint64_t claimed, struct reserve_decision *out)
{
	uint64_t want = req->want, bad;
	unsigned max = reserve_max_gpus(&w->rules);
	const struct reserve_entry *e;

	if ((bad = want & ~req->recorded))
		return reserve_verdict_is(out, RESERVE_NOT_IN_SET, bad, 0);
	if ((bad = want & w->rules.shared))
		return reserve_verdict_is(out, RESERVE_SHARED, bad, 0);
	if ((e = reserve_find_entry(w, req->member, want, true))) {
		out->other_id = e->id;
		return reserve_verdict_is(out, RESERVE_OWN, want & e->mask, 0);
	}
	if (reserve_popcount(want) > max)
		return reserve_verdict_is(out, RESERVE_TOO_MANY, want, max);
	if (w->rules.cap && reserve_popcount(want) > w->rules.cap)
		return reserve_verdict_is(out, RESERVE_TOO_MANY, want, w->rules.cap);
	if ((e = reserve_find_entry(w, req->member, want, false))) {
		out->other = e->member;
		out->other_id = e->id;
		return reserve_verdict_is(out, RESERVE_RESERVED, want & e->mask, 0);
	}
	if ((bad = want & reserve_used_by_others(w->usage, w->nusage, req->member))) {
		out->other = reserve_other_user(w, req->member, bad);
		return reserve_verdict_is(out, RESERVE_IN_USE, bad, 0);
	}
	if ((bad = want & claimed))
		return reserve_verdict_is(out, RESERVE_PROMISED, bad, 0);
	out->grant = want;
}

/* A request for any count of GPUs: the free ones, those the member's
 * processes hold first (they count against gpu_cap already). */
static void reserve_decide_count(const struct reserve_world *w, const struct reserve_request *req,
				 uint64_t claimed, struct reserve_decision *out)
{
	uint64_t reservable = req->recorded & ~w->rules.shared & reserve_all(w->rules.ngpus);
	unsigned max = reserve_max_gpus(&w->rules);

	if (req->count > reserve_popcount(reservable))
		return reserve_verdict_is(out, RESERVE_TOO_MANY, 0, reserve_popcount(reservable));
	if (req->count > max)
		return reserve_verdict_is(out, RESERVE_TOO_MANY, 0, max);
	if (w->rules.cap && req->count > w->rules.cap)
		return reserve_verdict_is(out, RESERVE_TOO_MANY, 0, w->rules.cap);
	out->free = reservable & ~reserve_reserved(w) &
		    ~reserve_used_by_others(w->usage, w->nusage, req->member) & ~claimed;
	if (reserve_pick(out->free, reserve_used_by(w->usage, w->nusage, req->member), req->count,
			 &out->grant) < 0)
		reserve_verdict_is(out, RESERVE_TOO_FEW, 0, req->count);
}

/* The member's own limits on what it holds at once. */
static void reserve_decide_limits(const struct reserve_world *w, const struct reserve_request *req,
				  struct reserve_decision *out)
{
	uint64_t reserved = reserve_of_member(w->entries, w->nentries, req->member);
	uint64_t used = reserve_used_by(w->usage, w->nusage, req->member);
	unsigned max = reserve_max_gpus(&w->rules);

	if (reserve_popcount(reserved | out->grant) > max) {
		out->held = reserved;
		return reserve_verdict_is(out, RESERVE_OVER_MAX, out->grant, max);
	}
	if (w->rules.cap && reserve_popcount(reserved | used | out->grant) > w->rules.cap) {
		out->held = reserved | used;
		return reserve_verdict_is(out, RESERVE_OVER_CAP, out->grant & ~out->held, w->rules.cap);
	}
}

void reserve_decide(const struct reserve_world *w, const struct reserve_request *req,
		    uint64_t claimed, struct reserve_decision *out)
{
	memset(out, 0, sizeof(*out));
	out->verdict = RESERVE_GRANTED;
	if (req->want)
		reserve_decide_named(w, req, claimed, out);
	else
		reserve_decide_count(w, req, claimed, out);
	if (out->verdict == RESERVE_GRANTED)
		reserve_decide_limits(w, req, out);
	if (out->verdict != RESERVE_GRANTED)
		out->grant = 0;
}

static void reserve_entry_decide(const struct reserve_world *w, const struct reserve_entry *e,
				 uint64_t claimed, struct reserve_decision *d)
{
	struct reserve_request req = { .member = e->member, .recorded = e->recorded,
				       .want = e->mask, .count = e->count };

	reserve_decide(w, &req, claimed, d);
}

/* What a queued entry decided d keeps from later requests. */
static uint64_t reserve_entry_claim(const struct reserve_entry *e, const struct reserve_decision *d)
{
	uint64_t taken = 0;

	if (d->verdict == RESERVE_GRANTED)
		return d->grant;
	if (d->verdict == RESERVE_OVER_MAX || d->verdict == RESERVE_OVER_CAP || !reserve_may_wait(d->verdict))
		return 0;
	if (e->mask)
		return e->mask;
	reserve_pick(d->free, 0, reserve_popcount(d->free) < e->count ? reserve_popcount(d->free) : e->count,
		     &taken);
	return taken;
}

uint64_t reserve_claims(const struct reserve_world *w, size_t end)
{
	uint64_t claimed = 0;

	for (size_t i = 0; i < end && i < w->nentries; i++) {
		struct reserve_decision d;

		if (w->entries[i].active)
			continue;
		reserve_entry_decide(w, &w->entries[i], claimed, &d);
		claimed |= reserve_entry_claim(&w->entries[i], &d);
	}
	return claimed;
}

size_t reserve_serve_queue(struct reserve_world *w)
{
	uint64_t claimed = 0;
	size_t served = 0;

	for (size_t i = 0; i < w->nentries; i++) {
		struct reserve_entry *e = &w->entries[i];
		struct reserve_decision d;

		if (e->active)
			continue;
		reserve_entry_decide(w, e, claimed, &d);
		if (d.verdict == RESERVE_GRANTED) {
			e->mask = d.grant;
			e->active = true;
			e->served = true;
			served++;
			continue;
		}
		claimed |= reserve_entry_claim(e, &d);
	}
	return served;
}

int reserve_extend_until(long long now_ms, long long until_ms, long long seconds,
			 long long max_seconds, long long *out)
{
	/* Both bounded far below overflow: a duration is at most a hundred
	 * years (timeparse.h), and so is the maximum. */
	if (seconds <= 0 || max_seconds <= 0 || seconds > max_seconds)
		return -ERANGE;
	if (until_ms + seconds * 1000 - now_ms > max_seconds * 1000)
		return -ERANGE;
	*out = until_ms + seconds * 1000;
	return 0;
}

/* One item of a --gpu list (len bytes at p) into *index. */
static int reserve_parse_one(const struct gpu_host *host, const char *p, size_t len, size_t *index,
			     char *err, size_t errlen)
{
	char word[GPU_UUID_MAX];
	int ret;

	if (len == 0) {
		set_error(err, errlen, "a GPU list is indices or UUIDs separated by commas, without empty items");
		return -EINVAL;
	}
	if (len >= sizeof(word)) {
		set_error(err, errlen, "a GPU is named by its index (see gpubox gpus) or its UUID; \"%.32s...\" is neither", p);
		return -EINVAL;
	}
	memcpy(word, p, len);
	word[len] = '\0';
	ret = gpu_find(host, word, index);
	if (ret == -EINVAL)
		set_error(err, errlen, "a GPU is named by its index (see gpubox gpus) or its UUID; \"%s\" is neither", word);
	else if (ret == -ENOENT)
		set_error(err, errlen, "there is no GPU %s on this server (it has %zu: see gpubox gpus)", word,
			  host->ngpus);
	return ret;
}

int reserve_parse_gpus(const struct gpu_host *host, const char *text, uint64_t *mask, char *err,
		       size_t errlen)
{
	uint64_t out = 0;
	const char *p = text;

	if (!text || !text[0] || strnlen(text, RESERVE_GPU_LIST_MAX + 1) > RESERVE_GPU_LIST_MAX) {
		set_error(err, errlen, "--gpu takes a list of GPU indices or UUIDs separated by commas, such as 1,3");
		return -EINVAL;
	}
	for (;;) {
		size_t len = strcspn(p, ","), index;
		int ret = reserve_parse_one(host, p, len, &index, err, errlen);

		if (ret < 0)
			return ret;
		if ((out >> index) & 1) {
			set_error(err, errlen, "GPU %zu is named twice in the list", index);
			return -EINVAL;
		}
		out |= (uint64_t)1 << index;
		p += len;
		if (!*p)
			break;
		p++;
	}
	*mask = out;
	return 0;
}

void reserve_mask_text(uint64_t mask, char *buf, size_t len)
{
	unsigned total = reserve_popcount(mask), shown = 0;
	size_t used;

	if (total == 0) {
		snprintf(buf, len, "no GPU");
		return;
	}
	used = (size_t)snprintf(buf, len, "%s", total == 1 ? "GPU " : "GPUs ");
	for (unsigned i = 0; i < 64 && used < len; i++) {
		if (!((mask >> i) & 1))
			continue;
		shown++;
		used += (size_t)snprintf(buf + used, len - used, "%s%u",
					 shown == 1 ? "" : shown == total ? " and " : ", ", i);
	}
}
