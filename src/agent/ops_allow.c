/* SPDX-License-Identifier: MIT */
/*
 * Allow-lists of forwarded ports: the networks a forward (gpubox port add
 * PORT --from ..., port set PORT --from ...) or a member's SSH port (port
 * set ssh --from ...) takes connections from.  A port without a list of
 * its own takes the server's forward_default_from ("any" unless an admin
 * sets one).  Lists are recorded in forward_from (state/db.c) and drawn by
 * nft.c into sets checked before the DNAT, replaced with the rest of the
 * rules in one transaction (ops_sync_rules()).
 *
 * Only the SSH port 22 of a container has no forward of its own: it is
 * the member's ssh_port, and a member cannot forward port 22 (op_port_add),
 * so container port 22 in a list always means it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "net/net.h"
#include "ops.h"
#include "state/state.h"
#include "cleanup.h"
#include "log.h"
#include "proto.h"
#include "banned.h"

#define OPS_ALLOW_SSH 22

int ops_allow_arg(struct op_context *ctx, struct ops_allow *out, bool *given)
{
	const char *text = NULL;
	char err[256], why[256];

	*out = (struct ops_allow){ .kind = OPS_ALLOW_DEFAULT };
	if (proto_arg_string(ctx->args, "from", false, &text, err, sizeof(err)) < 0)
		return ops_usage(ctx, err);
	*given = text != NULL;
	if (!text || strcmp(text, "default") == 0)
		return 0;
	if (cidr_parse_list(text, out->nets, &out->n, why, sizeof(why)) < 0)
		return ops_fail(ctx, PROTO_E_USAGE, "--from: %s", why);
	out->kind = out->n ? OPS_ALLOW_LIST : OPS_ALLOW_ANY;
	return 0;
}

int ops_allow_record(struct agent *a, const char *member, uint32_t container_port,
		     const struct ops_allow *allow)
{
	char texts[CIDR_LIST_MAX][CIDR_TEXT_MAX];
	const char *networks[CIDR_LIST_MAX];
	size_t n = 0;

	if (allow->kind == OPS_ALLOW_ANY) {
		networks[n++] = "any";
	} else if (allow->kind == OPS_ALLOW_LIST) {
		for (; n < allow->n && n < CIDR_LIST_MAX; n++) {
			cidr_format(&allow->nets[n], texts[n]);
			networks[n] = texts[n];
		}
	}
	return db_forward_from_set(a->db, member, container_port, networks, n);
}

/* The networks of rows recorded for one port, into nets (at most
 * CIDR_LIST_MAX): -ENOENT when the port has none of its own; *n 0 for
 * "any".  A row that no longer reads is skipped, and said so. */
static int ops_allow_own(const struct forward_from_record *rows, size_t nrows, const char *member,
			 uint32_t container_port, struct cidr *nets, size_t *n)
{
	bool found = false;
	char err[256];

	*n = 0;
	for (size_t i = 0; i < nrows; i++) {
		const struct forward_from_record *r = &rows[i];

		if (r->container_port != container_port || strcmp(r->member, member) != 0)
			continue;
		found = true;
		if (strcmp(r->network, "any") == 0) {
			*n = 0;
			return 0;
		}
		if (*n == CIDR_LIST_MAX)
			continue;
		if (cidr_parse(r->network, strlen(r->network), &nets[*n], err, sizeof(err)) == 0)
			(*n)++;
		else
			log_warn("%s: ignoring the recorded network of port %u: %s", member,
				 container_port, err);
	}
	return found ? 0 : -ENOENT;
}

/* forward_default_from (checked when the configuration was read). */
static size_t ops_allow_default(struct agent *a, struct cidr nets[static CIDR_LIST_MAX])
{
	char err[256];
	size_t n = 0;

	if (cidr_parse_list(a->cfg.forward_default_from, nets, &n, err, sizeof(err)) < 0)
		return 0;
	return n;
}

int ops_allow_rules_load(struct agent *a, size_t nrules, struct ops_allow_rules *r)
{
	int ret;

	*r = (struct ops_allow_rules){ 0 };
	ret = db_forward_from_list(a->db, NULL, &r->rows, &r->nrows);
	if (ret < 0)
		return ret;
	r->ndefaults = ops_allow_default(a, r->defaults);
	r->nets = calloc(nrules ? nrules : 1, CIDR_LIST_MAX * sizeof(*r->nets));
	r->nrules = nrules;
	return r->nets ? 0 : -ENOMEM;
}

void ops_allow_rules_fill(struct ops_allow_rules *r, const char *member, uint32_t container_port,
			  size_t index, struct nft_forward *rule)
{
	struct cidr *nets = r->nets + index * CIDR_LIST_MAX;
	size_t n = 0;

	if (index >= r->nrules)
		return;
	if (ops_allow_own(r->rows, r->nrows, member, container_port, nets, &n) == -ENOENT) {
		memcpy(nets, r->defaults, r->ndefaults * sizeof(*nets));
		n = r->ndefaults;
	}
	rule->from = nets;
	rule->nfrom = n;
}

void ops_allow_rules_free(struct ops_allow_rules *r)
{
	free(r->rows);
	free(r->nets);
	*r = (struct ops_allow_rules){ 0 };
}

/* "from": ["10.0.0.0/8", ...] or ["any"], and "from_default" (prefixed
 * with prefix) for one port, into obj. */
static void ops_allow_describe(struct agent *a, const struct forward_from_record *rows,
			       size_t nrows, const char *member, uint32_t container_port,
			       const char *prefix, json_t *obj)
{
	struct cidr nets[CIDR_LIST_MAX];
	json_t *list = json_array();
	char key[32], text[CIDR_TEXT_MAX];
	bool own = true;
	size_t n = 0;

	if (!obj || !list) {
		json_decref(list);
		return;
	}
	if (ops_allow_own(rows, nrows, member, container_port, nets, &n) == -ENOENT) {
		own = false;
		n = ops_allow_default(a, nets);
	}
	for (size_t i = 0; i < n; i++) {
		cidr_format(&nets[i], text);
		json_array_append_new(list, json_string(text));
	}
	if (n == 0)
		json_array_append_new(list, json_string("any"));
	snprintf(key, sizeof(key), "%sfrom", prefix);
	json_object_set_new(obj, key, list);
	snprintf(key, sizeof(key), "%sfrom_default", prefix);
	json_object_set_new(obj, key, json_boolean(!own));
}

void ops_allow_annotate(struct agent *a, const char *member, json_t *forwards, json_t *ssh)
{
	__do_free struct forward_from_record *rows = NULL;
	size_t nrows = 0, i;
	json_t *entry;

	if (db_forward_from_list(a->db, member, &rows, &nrows) < 0)
		return;
	json_array_foreach(forwards, i, entry)
		ops_allow_describe(a, rows, nrows, member,
				   (uint32_t)json_integer_value(json_object_get(entry, "container_port")),
				   "", entry);
	if (ssh)
		ops_allow_describe(a, rows, nrows, member, OPS_ALLOW_SSH, "ssh_", ssh);
}

void ops_allow_annotate_port(struct agent *a, const char *member, uint32_t container_port,
			     json_t *obj)
{
	__do_free struct forward_from_record *rows = NULL;
	size_t nrows = 0;

	if (db_forward_from_list(a->db, member, &rows, &nrows) == 0)
		ops_allow_describe(a, rows, nrows, member, container_port, "", obj);
}

/* The port's records as they are, to be put back; -ENOMEM. */
static int ops_allow_before(struct agent *a, const char *member, uint32_t container_port,
			    struct ops_allow *before)
{
	__do_free struct forward_from_record *rows = NULL;
	size_t nrows = 0;
	int ret = db_forward_from_list(a->db, member, &rows, &nrows);

	if (ret < 0)
		return ret;
	*before = (struct ops_allow){ .kind = OPS_ALLOW_LIST };
	ret = ops_allow_own(rows, nrows, member, container_port, before->nets, &before->n);
	if (ret == -ENOENT)
		before->kind = OPS_ALLOW_DEFAULT;
	else if (before->n == 0)
		before->kind = OPS_ALLOW_ANY;
	return 0;
}

static int op_port_set(struct op_context *ctx, json_t **result)
{
	static const char *const allowed[] = { "member", "port", "from", NULL };
	__do_unlock_member struct member_lock lock = { 0 };
	struct agent *a = ctx->a;
	struct member_record rec;
	struct forward_record fwd = { .host_port = 0 };
	struct ops_allow allow, before;
	long long port = 0;
	char err[256];
	bool given;
	int ret;

	if (ops_check_args(ctx, allowed) < 0 || ops_target(ctx, &rec) < 0)
		return -1;
	if (proto_arg_int(ctx->args, "port", true, 1, 65535, &port, err, sizeof(err)) < 0)
		return ops_usage(ctx, err);
	if (ops_allow_arg(ctx, &allow, &given) < 0)
		return -1;
	if (!given)
		return ops_usage(ctx, "name the networks the port takes connections from, such as --from 192.168.1.0/24, or --from any, or --from default");
	lock = agent_lock_member(a, rec.name);
	if (port == OPS_ALLOW_SSH) {
		fwd.host_port = rec.ssh_port;
	} else {
		__do_free struct forward_record *list = NULL;
		size_t n = 0;

		if (db_forward_list(a->db, rec.name, &list, &n) < 0)
			return ops_fail(ctx, PROTO_E_FAILED, "the agent's database failed; see the agent's log");
		for (size_t i = 0; i < n; i++)
			if (list[i].container_port == (uint32_t)port)
				fwd = list[i];
		if (!fwd.host_port)
			return ops_fail(ctx, PROTO_E_NOTFOUND,
					"your port %lld is not forwarded (see gpubox port ls); gpubox port add %lld --from ... forwards it with a list",
					port, port);
	}
	if (ops_allow_before(a, rec.name, (uint32_t)port, &before) < 0 ||
	    ops_allow_record(a, rec.name, (uint32_t)port, &allow) < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "the agent's database failed; see the agent's log");
	ret = ops_sync_rules(a);
	if (ret < 0) {
		ops_allow_record(a, rec.name, (uint32_t)port, &before);
		ops_sync_rules(a);
		return ops_fail(ctx, PROTO_E_FAILED, "cannot apply the forwarding rules; nothing was changed (see the agent's log)");
	}
	*result = json_pack("{s:i, s:i, s:s}", "container_port", (int)port, "host_port",
			    (int)fwd.host_port, "host", ops_ssh_host(a));
	ops_allow_annotate_port(a, rec.name, (uint32_t)port, *result);
	return 0;
}

const struct op_entry ops_allow_table[] = {
	{ "port_set", op_port_set, OP_CHANGES, "member port" },
	{ 0 },
};
