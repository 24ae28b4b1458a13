/* SPDX-License-Identifier: MIT */
/*
 * The audit log's part of the protocol: what each request leaves in it
 * (ops_audit_request(), called by ops_dispatch() once the request is
 * answered) and the log operation that reads it.
 *
 * Recorded: every request for an operation that changes something, and
 * for an unknown one, whatever came of it; a read-only operation's only
 * when it was denied, for someone reached for what is not theirs.
 *
 * Who an entry is by is the kernel's word (SO_PEERCRED) and the records',
 * never the request's.  A member reads only their own entries: those
 * made under their name and identity, so not those of an earlier member
 * of the same name.
 */
#include <string.h>

#include "agent.h"
#include "audit.h"
#include "ops.h"
#include "cleanup.h"
#include "proto.h"
#include "validate.h"
#include "banned.h"

static bool ops_audit_wanted(const struct op_entry *entry, int ret, const struct reply_error *error)
{
	if (!entry || entry->kind != OP_READ_ONLY)
		return true;
	return ret < 0 && error->code && strcmp(error->code, PROTO_E_DENIED) == 0;
}

void ops_audit_request(struct op_context *ctx, const struct op_entry *entry, const char *op,
		       int ret, long long started_ms)
{
	const struct caller *who = ctx->who;
	const char *member = who->is_member ? who->member.name : NULL;
	char target[AUDIT_TARGET_MAX];

	if (!ops_audit_wanted(entry, ret, ctx->error))
		return;
	audit_target(entry ? entry->target : NULL, ctx->args, member, target, sizeof(target));
	audit_record(ctx->a->audit, &(struct audit_entry){
		.time_ms = started_ms, .duration_ms = audit_now_ms() - started_ms,
		.uid = who->uid, .member = member,
		.identity = who->is_member ? who->member.identity : NULL,
		.admin = who->admin, .guest = who->guest, .op = op, .target = target,
		.args = ctx->args,
		.result = ret < 0 ? (ctx->error->code ? ctx->error->code : PROTO_E_FAILED) : "ok",
		.error = ret < 0 ? ctx->error->text : NULL,
	});
}

/* Whose entries the caller gets: an admin everyone's, or one member's by
 * name; anyone else (and an admin asking for "own") their own. */
static int ops_audit_scope(struct op_context *ctx, const char *member, bool own,
			   struct audit_filter *filter)
{
	const struct caller *who = ctx->who;
	bool self = member && who->is_member && strcmp(member, who->member.name) == 0;

	if (member && own)
		return ops_usage(ctx, "\"own\" and \"member\" do not go together");
	if (member && !who->admin && !self)
		return ops_fail(ctx, PROTO_E_DENIED, "you may read only your own entries of the audit log");
	if (who->admin && !own) {
		filter->scope = member ? AUDIT_OF_MEMBER : AUDIT_ALL;
		filter->member = member;
		return 0;
	}
	if (who->is_member) {
		filter->scope = AUDIT_OWN_MEMBER;
		filter->member = who->member.name;
		filter->identity = who->member.identity;
	} else {
		filter->scope = AUDIT_OWN_UID;
		filter->uid = who->uid;
	}
	return 0;
}

static int op_log(struct op_context *ctx, json_t **result)
{
	static const char *const allowed[] = { "member", "since", "limit", "own", NULL };
	struct audit_filter filter = { 0 };
	json_t *entries = NULL;
	const char *member = NULL;
	long long since = 0, limit = AUDIT_LIMIT_DEFAULT;
	bool own = false;
	char err[256];

	if (ops_check_args(ctx, allowed) < 0)
		return -1;
	if (proto_arg_string(ctx->args, "member", false, &member, err, sizeof(err)) < 0 ||
	    (member && validate_member_name(member, err, sizeof(err)) < 0) ||
	    proto_arg_int(ctx->args, "since", false, 0, INT64_MAX, &since, err, sizeof(err)) < 0 ||
	    proto_arg_int(ctx->args, "limit", false, 1, AUDIT_LIMIT_MAX, &limit, err, sizeof(err)) < 0 ||
	    proto_arg_bool(ctx->args, "own", &own, err, sizeof(err)) < 0)
		return ops_usage(ctx, err);
	if (ops_audit_scope(ctx, member, own, &filter) < 0)
		return -1;
	if (!ctx->a->audit)
		return ops_fail(ctx, PROTO_E_FAILED,
				"this agent keeps no audit log: %s/audit.db could not be opened (see the agent's log); the entries are in the agent's log only",
				ctx->a->cfg.state_dir);
	filter.since_ms = since;
	filter.limit = (unsigned)limit;
	if (audit_query(ctx->a->audit, &filter, &entries) < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "the audit log could not be read; see the agent's log");
	*result = json_pack("{s:s, s:o}", "server", ctx->a->cfg.server_name, "entries", entries);
	return 0;
}

const struct op_entry ops_audit_table[] = {
	{ "log", op_log, OP_READ_ONLY, NULL },
	{ 0 },
};
