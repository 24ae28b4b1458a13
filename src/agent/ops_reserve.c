/* SPDX-License-Identifier: MIT */
/*
 * The reservation operations of the protocol: reserve, reserve_extend,
 * reservations and release.  Members ask for themselves, from the login
 * shell or inside their container; an admin names a member ("member") and
 * may extend or release anyone's.  A change holds the reservations' lock
 * from the reading of the records to the last container changed, so that
 * two requests never decide on the same free GPU.
 *
 * What a refusal says follows show_members: another member's name is
 * given to admins, and to members when the server shows names.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "ops.h"
#include "proto.h"
#include "reservations.h"
#include "monitor/monitor.h"
#include "state/state.h"
#include "cleanup.h"
#include "log.h"
#include "timeparse.h"
#include "banned.h"

/* The largest number a duration may be sent as (a hundred years). */
#define OPS_RESERVE_SECONDS_MAX (100LL * 366 * 86400)

struct ops_reserve_ask {
	struct member_record rec;
	uint64_t want;                 /* GPUs named; 0: count of any */
	long long count;
	long long seconds;
	bool wait;
};

static void ops_reserve_state_freep(struct reservations_state *st)
{
	reservations_state_free(st);
}
#define __do_state __attribute__((cleanup(ops_reserve_state_freep)))

/* "your container" or "the container of NAME", as the caller sees it. */
static const char *ops_reserve_whose(const struct op_context *ctx, const char *member, char *buf,
				     size_t len)
{
	if (ctx->who->is_member && strcmp(ctx->who->member.name, member) == 0)
		return "your container";
	snprintf(buf, len, "the container of %s", member);
	return buf;
}

/* Another member's name as the caller may see it. */
static const char *ops_reserve_name(const struct op_context *ctx, const char *member)
{
	if (!member)
		return "another member";
	if (ops_names_visible(ctx) || (ctx->who->is_member && strcmp(ctx->who->member.name, member) == 0))
		return member;
	return "another member";
}

/* Who asked for the change to reservation id, for the log beside the
 * agent's line saying what changed. */
static void ops_reserve_log_asker(const struct op_context *ctx, long long id)
{
	const struct caller *who = ctx->who;

	if (who->admin)
		log_info("reservation %lld: asked by an admin (uid %u)", id, (unsigned)who->uid);
	else if (who->is_member)
		log_info("reservation %lld: asked by %s%s", id, who->member.name,
			 who->guest ? ", inside the container" : "");
}

static int ops_reserve_read(struct op_context *ctx, struct reservations_state *st)
{
	if (reservations_read(ctx->a, st) < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "the agent's records could not be read; see the agent's log");
	return 0;
}

/* The one reservation id names, as its index in st; a member's own only. */
static int ops_reserve_find(struct op_context *ctx, const struct reservations_state *st,
			    long long id, const char *verb, size_t *index)
{
	for (size_t i = 0; i < st->n; i++) {
		if (st->records[i].id != id)
			continue;
		if (!ctx->who->admin &&
		    !(ctx->who->is_member && strcmp(ctx->who->member.name, st->records[i].member) == 0))
			return ops_fail(ctx, PROTO_E_DENIED,
					"reservation %lld is not yours; you may %s only your own (see gpubox reservations)",
					id, verb);
		*index = i;
		return 0;
	}
	return ops_fail(ctx, PROTO_E_NOTFOUND, "there is no reservation %lld (see gpubox reservations)", id);
}

/* The answer about reservation id: as gpubox reservations lists it. */
static json_t *ops_reserve_result(struct op_context *ctx, long long id)
{
	__do_json json_t *all = reservations_json(ctx->a, ctx->who->is_member ? ctx->who->member.name : "",
						 ops_names_visible(ctx));
	size_t i;
	json_t *r;

	json_array_foreach(all, i, r)
		if (json_integer_value(json_object_get(r, "id")) == id)
			return json_pack("{s:O}", "reservation", r);
	return json_pack("{s:I}", "id", (json_int_t)id);
}

/* ---- reserve ---------------------------------------------------------------- */

static int ops_reserve_duration(struct op_context *ctx, long long *seconds)
{
	long long max = config_reserve_max_seconds(&ctx->a->cfg);
	char err[256], text[32];

	*seconds = config_reserve_default_seconds(&ctx->a->cfg);
	if (proto_arg_int(ctx->args, "seconds", false, 1, OPS_RESERVE_SECONDS_MAX, seconds, err,
			  sizeof(err)) < 0)
		return ops_usage(ctx, "--for takes a duration longer than nothing, such as 30m, 4h or 2d");
	if (*seconds > max) {
		format_duration(*seconds, text, sizeof(text));
		return ops_fail(ctx, PROTO_E_DENIED,
				"a reservation lasts at most %s on this server (reserve_max_duration); %s is longer",
				ctx->a->cfg.reserve_max_duration, text);
	}
	return 0;
}

static int ops_reserve_args(struct op_context *ctx, struct ops_reserve_ask *ask, const char **gpus)
{
	static const char *const allowed[] = { "member", "count", "gpus", "seconds", "wait", NULL };
	char err[256];

	memset(ask, 0, sizeof(*ask));
	*gpus = NULL;
	if (ops_check_args(ctx, allowed) < 0 || ops_target(ctx, &ask->rec) < 0)
		return -1;
	if (proto_arg_int(ctx->args, "count", false, 1, GPU_MAX, &ask->count, err, sizeof(err)) < 0)
		return ops_usage(ctx, "the number of GPUs to reserve is a whole number from 1 to 64");
	if (proto_arg_string(ctx->args, "gpus", false, gpus, err, sizeof(err)) < 0 ||
	    proto_arg_bool(ctx->args, "wait", &ask->wait, err, sizeof(err)) < 0)
		return ops_usage(ctx, err);
	if (ask->count && *gpus)
		return ops_usage(ctx, "ask for a number of GPUs or name them with --gpu, not both");
	if (!ask->count && !*gpus)
		ask->count = 1;
	return ops_reserve_duration(ctx, &ask->seconds);
}

/* The GPUs named, as a mask of st's GPUs. */
static int ops_reserve_named(struct op_context *ctx, const struct reservations_state *st,
			     const char *gpus, struct ops_reserve_ask *ask)
{
	char err[256];
	int ret;

	if (!gpus)
		return 0;
	ret = reserve_parse_gpus(st->host, gpus, &ask->want, err, sizeof(err));
	if (ret == -ENOENT)
		return ops_fail(ctx, PROTO_E_NOTFOUND, "%s", err);
	if (ret < 0)
		return ops_usage(ctx, err);
	ask->count = __builtin_popcountll(ask->want);
	return 0;
}

/* The refusal of a request that can never be granted. */
static int ops_reserve_never(struct op_context *ctx, const struct reservations_state *st,
			     const struct ops_reserve_ask *ask, const struct reserve_decision *d)
{
	char gpus[RESERVE_MASK_TEXT_MAX], set[RESERVE_MASK_TEXT_MAX], buf[MEMBER_NAME_SIZE + 32];
	uint64_t recorded = reservations_recorded(ctx->a, st, ask->rec.name);
	uint64_t reservable = recorded & ~st->world.rules.shared;
	const char *whose = ops_reserve_whose(ctx, ask->rec.name, buf, sizeof(buf));

	reserve_mask_text(d->culprits, gpus, sizeof(gpus));
	reserve_mask_text(recorded, set, sizeof(set));
	switch (d->verdict) {
	case RESERVE_NOT_IN_SET:
		return ops_fail(ctx, PROTO_E_DENIED,
				"%s %s not among the GPUs of %s (%s); an admin gives GPUs with gpubox admin gpu attach",
				gpus, __builtin_popcountll(d->culprits) == 1 ? "is" : "are", whose, set);
	case RESERVE_SHARED:
		return ops_fail(ctx, PROTO_E_DENIED,
				"%s %s shared by every member of this server (reserve_shared_gpus) and never reserved",
				gpus, __builtin_popcountll(d->culprits) == 1 ? "is" : "are");
	case RESERVE_OWN:
		return ops_fail(ctx, PROTO_E_CONFLICT,
				"%s is reserved for %s already (reservation %lld); to keep it longer: gpubox reserve --extend %lld DURATION",
				gpus, ask->rec.name, d->other_id, d->other_id);
	default:
		break;
	}
	if ((unsigned)ask->count > (unsigned)__builtin_popcountll(reservable))
		return ops_fail(ctx, PROTO_E_DENIED,
				"%s has %d GPUs that can be reserved, and %lld were asked for",
				whose, __builtin_popcountll(reservable), ask->count);
	if (st->world.rules.cap && d->limit == st->world.rules.cap)
		return ops_fail(ctx, PROTO_E_DENIED,
				"a member holds at most %u GPUs at once on this server, reserved or in use (gpu_cap), and %lld were asked for",
				d->limit, ask->count);
	return ops_fail(ctx, PROTO_E_DENIED,
			"a reservation holds at most %u GPUs on this server (reserve_max_gpus), and %lld were asked for",
			d->limit, ask->count);
}

/* The refusal of a request that may be granted later. */
static int ops_reserve_not_now(struct op_context *ctx, const struct reservations_state *st,
			       const struct ops_reserve_ask *ask, const struct reserve_decision *d)
{
	char gpus[RESERVE_MASK_TEXT_MAX], held[RESERVE_MASK_TEXT_MAX], until[64] = "";

	reserve_mask_text(d->culprits, gpus, sizeof(gpus));
	reserve_mask_text(d->held, held, sizeof(held));
	for (size_t i = 0; i < st->n; i++)
		if (st->records[i].id == d->other_id)
			format_time(st->records[i].until_ms / 1000, until, sizeof(until));
	switch (d->verdict) {
	case RESERVE_RESERVED:
		return ops_fail(ctx, PROTO_E_CONFLICT,
				"%s is reserved by %s until %s (reservation %lld); add --wait to wait for it",
				gpus, ops_reserve_name(ctx, d->other), until, d->other_id);
	case RESERVE_IN_USE:
		return ops_fail(ctx, PROTO_E_CONFLICT,
				"%s is in use by a process of %s; a GPU is reserved only while no other member's process holds it (add --wait to wait until it is free)",
				gpus, ops_reserve_name(ctx, d->other));
	case RESERVE_PROMISED:
		return ops_fail(ctx, PROTO_E_CONFLICT,
				"%s is waited for by an earlier request (see gpubox reservations); add --wait to wait after it",
				gpus);
	case RESERVE_TOO_FEW:
		reserve_mask_text(d->free, held, sizeof(held));
		return ops_fail(ctx, PROTO_E_CONFLICT,
				"%d GPU%s can be reserved now (%s), and %lld were asked for; add --wait to wait, or ask for fewer",
				__builtin_popcountll(d->free), __builtin_popcountll(d->free) == 1 ? "" : "s",
				held, ask->count);
	case RESERVE_OVER_MAX:
		return ops_fail(ctx, PROTO_E_DENIED,
				"%s would then hold more than %u reserved GPUs, the most a member holds at once (reserve_max_gpus); reserved now: %s",
				ask->rec.name, d->limit, held);
	default:
		return ops_fail(ctx, PROTO_E_DENIED,
				"%s may hold at most %u GPUs at once, reserved or in use by its processes (gpu_cap), and holds %s already; release a reservation or end what runs on a GPU first",
				ask->rec.name, d->limit, held);
	}
}

static int ops_reserve_enqueue(struct op_context *ctx, struct reservations_state *st,
			       const struct ops_reserve_ask *ask, json_t **result)
{
	struct reservation_record rec = { .count = (uint32_t)ask->count, .seconds = ask->seconds };

	snprintf(rec.member, sizeof(rec.member), "%s", ask->rec.name);
	ops_gpu_set_from_mask(st->host, ask->want, rec.gpus, sizeof(rec.gpus));
	if (!ask->want)
		rec.gpus[0] = '\0';
	if (reservations_enqueue(ctx->a, st, &rec) < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "the agent's database failed; see the agent's log");
	ops_reserve_log_asker(ctx, rec.id);
	reservations_publish(ctx->a);
	*result = ops_reserve_result(ctx, rec.id);
	return 0;
}

/* Decide the request on st as it is now. */
static void ops_reserve_decide(struct op_context *ctx, const struct reservations_state *st,
			       const struct ops_reserve_ask *ask, struct reserve_decision *d)
{
	struct reserve_request req = { .member = ask->rec.name, .want = ask->want,
		.recorded = reservations_recorded(ctx->a, st, ask->rec.name), .count = (unsigned)ask->count };

	reserve_decide(&st->world, &req, reserve_claims(&st->world, st->n), d);
}

/*
 * The GPUs d grants, taken from the others; the whole search that comes
 * with it may show what the quick one missed (a process holding a GPU by
 * a mapping only): then the request is decided again, on it, and a
 * request for a count may get other GPUs.  Twice at most.  Returns 1
 * granted (*result set), 0 not (d says why), or -1 (failed).
 */
static int ops_reserve_grant(struct op_context *ctx, struct reservations_state *st,
			     const struct ops_reserve_ask *ask, struct reserve_decision *d,
			     json_t **result)
{
	for (int attempt = 0; attempt < 2 && d->verdict == RESERVE_GRANTED; attempt++) {
		struct reservations_taking t;
		struct reservation_record out;
		uint64_t mask = d->grant;

		if (reservations_take(ctx->a, st, ask->rec.name, mask, &t) < 0)
			return ops_fail(ctx, PROTO_E_FAILED,
					"the GPUs could not be taken out of the other containers; nothing was reserved (see the agent's log)");
		ops_reserve_decide(ctx, st, ask, d);
		if (d->verdict != RESERVE_GRANTED || d->grant != mask) {
			reservations_untake(ctx->a, st, &t);
			continue;
		}
		if (reservations_keep(ctx->a, st, &t, ask->seconds, 0, &out) < 0)
			return ops_fail(ctx, PROTO_E_FAILED, "the agent's database failed; see the agent's log");
		ops_reserve_log_asker(ctx, out.id);
		reservations_publish(ctx->a);
		*result = ops_reserve_result(ctx, out.id);
		return 1;
	}
	if (d->verdict == RESERVE_GRANTED)
		return ops_fail(ctx, PROTO_E_CONFLICT,
				"the free GPUs changed hands while they were being reserved; nothing was reserved, try again");
	return 0;
}

/*
 * A first decision on what the processes hold open (a quick search of
 * /proc); a grant is then confirmed by the whole search, made once the
 * GPUs can no longer be opened elsewhere (ops_reserve_grant()).
 */
static int op_reserve(struct op_context *ctx, json_t **result)
{
	__do_unlock_reservations struct agent *locked = NULL;
	__do_state struct reservations_state st = { 0 };
	struct ops_reserve_ask ask;
	struct reserve_decision d;
	const char *gpus;
	int ret;

	if (ops_reserve_args(ctx, &ask, &gpus) < 0)
		return -1;
	locked = reservations_lock(ctx->a);
	if (ops_reserve_read(ctx, &st) < 0)
		return -1;
	if (!st.host->present)
		return ops_fail(ctx, PROTO_E_UNAVAILABLE, "%s", st.host->reason);
	if (ops_reserve_named(ctx, &st, gpus, &ask) < 0)
		return -1;
	if (reservations_read_usage(ctx->a, &st, false) < 0)
		return ops_fail(ctx, PROTO_E_FAILED,
				"cannot tell which processes hold the GPUs, so nothing is reserved (see the agent's log)");
	ops_reserve_decide(ctx, &st, &ask, &d);
	ret = ops_reserve_grant(ctx, &st, &ask, &d, result);
	if (ret != 0)
		return ret < 0 ? -1 : 0;
	if (!reserve_may_wait(d.verdict))
		return ops_reserve_never(ctx, &st, &ask, &d);
	if (ask.wait)
		return ops_reserve_enqueue(ctx, &st, &ask, result);
	return ops_reserve_not_now(ctx, &st, &ask, &d);
}

/* ---- extend, release, list ----------------------------------------------------- */

static int op_reserve_extend(struct op_context *ctx, json_t **result)
{
	static const char *const allowed[] = { "id", "seconds", NULL };
	__do_unlock_reservations struct agent *locked = NULL;
	__do_state struct reservations_state st = { 0 };
	long long id = 0, seconds = 0, until = 0, max = config_reserve_max_seconds(&ctx->a->cfg);
	const struct reservation_record *r;
	char err[256], when[64];
	size_t i;

	if (ops_check_args(ctx, allowed) < 0)
		return -1;
	if (proto_arg_int(ctx->args, "id", true, 1, LLONG_MAX, &id, err, sizeof(err)) < 0)
		return ops_usage(ctx, "name the reservation to extend by its id (see gpubox reservations)");
	if (proto_arg_int(ctx->args, "seconds", true, 1, OPS_RESERVE_SECONDS_MAX, &seconds, err,
			  sizeof(err)) < 0)
		return ops_usage(ctx, "--extend takes a duration longer than nothing, such as 30m, 4h or 2d");
	locked = reservations_lock(ctx->a);
	if (ops_reserve_read(ctx, &st) < 0 || ops_reserve_find(ctx, &st, id, "extend", &i) < 0)
		return -1;
	r = &st.records[i];
	if (!r->active && r->seconds + seconds > max)
		return ops_fail(ctx, PROTO_E_DENIED,
				"reservation %lld would then ask for more than %s (reserve_max_duration)", id,
				ctx->a->cfg.reserve_max_duration);
	if (r->active && reserve_extend_until(st.now_ms, r->until_ms, seconds, max, &until) < 0) {
		format_time((r->until_ms + seconds * 1000) / 1000, when, sizeof(when));
		return ops_fail(ctx, PROTO_E_DENIED,
				"reservation %lld would then end at %s, more than %s from now (reserve_max_duration)",
				id, when, ctx->a->cfg.reserve_max_duration);
	}
	if (reservations_extend(ctx->a, &st, i, until, r->active ? r->seconds : r->seconds + seconds) < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "the agent's database failed; see the agent's log");
	ops_reserve_log_asker(ctx, id);
	reservations_publish(ctx->a);
	*result = ops_reserve_result(ctx, id);
	return 0;
}

/* End st's records[i] for the caller. */
static int ops_reserve_release_one(struct op_context *ctx, struct reservations_state *st, size_t i,
				   json_t *released)
{
	bool own = ctx->who->is_member && strcmp(ctx->who->member.name, st->records[i].member) == 0;

	if (reservations_end(ctx->a, st, i, own ? "released" : "cancelled by an admin") < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "the agent's database failed; see the agent's log");
	ops_reserve_log_asker(ctx, st->records[i].id);
	json_array_append_new(released, json_integer(st->records[i].id));
	return 0;
}

static int op_release(struct op_context *ctx, json_t **result)
{
	static const char *const allowed[] = { "id", NULL };
	__do_unlock_reservations struct agent *locked = NULL;
	__do_state struct reservations_state st = { 0 };
	__do_json json_t *released = json_array();
	long long id = 0;
	char err[256];
	size_t i;

	if (ops_check_args(ctx, allowed) < 0)
		return -1;
	if (proto_arg_int(ctx->args, "id", false, 1, LLONG_MAX, &id, err, sizeof(err)) < 0)
		return ops_usage(ctx, "a reservation is named by its id (see gpubox reservations)");
	if (!id && !ctx->who->is_member)
		return ops_usage(ctx, "name the reservation to cancel by its id (see gpubox reservations)");
	locked = reservations_lock(ctx->a);
	if (ops_reserve_read(ctx, &st) < 0)
		return -1;
	if (id && (ops_reserve_find(ctx, &st, id, "release", &i) < 0 ||
		   ops_reserve_release_one(ctx, &st, i, released) < 0))
		return -1;
	for (i = 0; !id && i < st.n; i++)
		if (strcmp(st.records[i].member, ctx->who->member.name) == 0 &&
		    ops_reserve_release_one(ctx, &st, i, released) < 0)
			return -1;
	if (json_array_size(released) == 0)
		return ops_fail(ctx, PROTO_E_NOTFOUND, "you have no reservation to release");
	reservations_publish(ctx->a);
	*result = json_pack("{s:O}", "released", released);
	return 0;
}

static int op_reservations(struct op_context *ctx, json_t **result)
{
	static const char *const allowed[] = { NULL };

	if (ops_check_args(ctx, allowed) < 0)
		return -1;
	*result = json_pack("{s:s, s:o, s:b}", "server", ctx->a->cfg.server_name, "reservations",
			    reservations_json(ctx->a, ctx->who->is_member ? ctx->who->member.name : "",
					      ops_names_visible(ctx)),
			    "names_shown", ops_names_visible(ctx));
	return 0;
}

/* ---- gpu_cap as gpus and status report it ----------------------------------- */

static unsigned ops_reserve_popcount(uint64_t mask)
{
	return (unsigned)__builtin_popcountll(mask);
}

/* The GPUs member's processes are on in s. */
static uint64_t ops_reserve_in_use(const struct sample *s, const char *member)
{
	uint64_t mask = 0;

	for (size_t i = 0; i < s->nprocs; i++)
		if (s->procs[i].gpu < 64 && strcmp(s->procs[i].member, member) == 0)
			mask |= (uint64_t)1 << s->procs[i].gpu;
	return mask;
}

static json_t *ops_reserve_mask_json(uint64_t mask)
{
	json_t *list = json_array();

	for (unsigned i = 0; list && i < 64; i++)
		if ((mask >> i) & 1)
			json_array_append_new(list, json_integer(i));
	return list;
}

/* "alice holds 2 GPUs at once (GPU 1 in use, GPU 3 reserved), ..." */
static json_t *ops_reserve_cap_text(const char *member, unsigned cap, uint64_t in_use,
				    uint64_t reserved)
{
	char used[RESERVE_MASK_TEXT_MAX], held[RESERVE_MASK_TEXT_MAX];
	unsigned n = ops_reserve_popcount(in_use | reserved);

	reserve_mask_text(in_use, used, sizeof(used));
	reserve_mask_text(reserved, held, sizeof(held));
	if (n == cap)
		return json_sprintf("%s holds %u GPU%s at once (in use: %s; reserved: %s), as many as gpu_cap allows: another reservation is refused until a job ends or a reservation is released.",
				    member, n, n == 1 ? "" : "s", used, held);
	return json_sprintf("%s holds %u GPUs at once (in use: %s; reserved: %s), more than gpu_cap (%u) allows: what runs is not stopped for it, but no reservation is granted until fewer are held; please end a job or release a reservation.",
			    member, n, used, held, cap);
}

json_t *ops_reserve_cap_json(struct agent *a, const char *member, const struct sample *s)
{
	unsigned cap = a->cfg.gpu_cap, n;
	uint64_t in_use, reserved;
	json_t *o;

	if (!cap || !member || !member[0])
		return NULL;
	in_use = s ? ops_reserve_in_use(s, member) : 0;
	reserved = reservations_held(a, member);
	n = ops_reserve_popcount(in_use | reserved);
	o = json_pack("{s:i, s:i, s:o, s:o, s:s}", "cap", (int)cap, "held", (int)n,
		      "in_use", ops_reserve_mask_json(in_use), "reserved", ops_reserve_mask_json(reserved),
		      "state", n < cap ? "under" : n == cap ? "at" : "over");
	if (o && n >= cap)
		json_object_set_new(o, "text", ops_reserve_cap_text(member, cap, in_use, reserved));
	return o;
}

const struct op_entry ops_reserve_table[] = {
	{ "reserve",        op_reserve,        OP_CHANGES,   "member gpus" },
	{ "reserve_extend", op_reserve_extend, OP_CHANGES,   "id" },
	{ "reservations",   op_reservations,   OP_READ_ONLY, NULL },
	{ "release",        op_release,        OP_CHANGES,   "id" },
	{ NULL, NULL, OP_CHANGES, NULL },
};
