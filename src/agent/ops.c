/* SPDX-License-Identifier: MIT */
/*
 * The protocol's operations.  Each handler gets the caller (identified by
 * the kernel, see control.c), checks what it may do, validates every
 * argument, and either fills a result or one error sentence.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "audit.h"
#include "container/container.h"
#include "gpu/gpu.h"
#include "image/image.h"
#include "net/net.h"
#include "ops.h"
#include "progress.h"
#include "reservations.h"
#include "state/state.h"
#include "cleanup.h"
#include "fsutil.h"
#include "log.h"
#include "proto.h"
#include "validate.h"
#include "banned.h"

int ops_fail(struct op_context *ctx, const char *code, const char *fmt, ...)
{
	va_list ap;

	ctx->error->code = code;
	va_start(ap, fmt);
	vsnprintf(ctx->error->text, sizeof(ctx->error->text), fmt, ap);
	va_end(ap);
	return -1;
}

int ops_usage(struct op_context *ctx, const char *text)
{
	return ops_fail(ctx, PROTO_E_USAGE, "%s", text);
}

int ops_check_args(struct op_context *ctx, const char *const allowed[])
{
	char err[256];

	if (proto_args_only(ctx->args, allowed, err, sizeof(err)) < 0)
		return ops_usage(ctx, err);
	return 0;
}

/*
 * The member an operation acts on: the caller's own container, or for an
 * admin the one named in "member".  A member naming anyone else is refused
 * without saying whether that member exists.
 */
int ops_target(struct op_context *ctx, struct member_record *rec)
{
	const char *name = NULL;
	char err[256];
	int ret;

	if (proto_arg_string(ctx->args, "member", false, &name, err, sizeof(err)) < 0)
		return ops_usage(ctx, err);
	if (name && validate_member_name(name, err, sizeof(err)) < 0)
		return ops_usage(ctx, err);
	if (!name) {
		if (!ctx->who->is_member)
			return ops_fail(ctx, PROTO_E_USAGE,
					"you have no container on this server; admins name one with --member NAME");
		*rec = ctx->who->member;
		return 0;
	}
	if (!ctx->who->admin && !(ctx->who->is_member && strcmp(name, ctx->who->member.name) == 0))
		return ops_fail(ctx, PROTO_E_DENIED, "you may act only on your own container");
	ret = db_member_get(ctx->a->db, name, rec);
	if (ret == -ENOENT)
		return ops_fail(ctx, PROTO_E_NOTFOUND, "there is no member %s on this server", name);
	if (ret < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "the agent's database failed; see the agent's log");
	return 0;
}

int ops_require_admin(struct op_context *ctx)
{
	if (ctx->who->admin)
		return 0;
	return ops_fail(ctx, PROTO_E_DENIED,
			"this is an admin command; run it as root or as a member of group %s",
			ctx->a->cfg.admin_group);
}

/* ---- containers ---------------------------------------------------------- */

int ops_member_view(struct agent *a, const struct member_record *rec, struct member_view *v)
{
	int ret = storage_paths(a->cfg.state_dir, rec->name, &v->paths);

	if (ret < 0)
		return ret;
	ret = network_member_address(&a->subnet, rec->address_index, v->address, sizeof(v->address));
	if (ret < 0)
		return ret;
	network_format_address(a->subnet.host_address, v->gateway);
	snprintf(v->hostname, sizeof(v->hostname), "%s-%s", a->cfg.server_name, rec->name);
	snprintf(v->logfile, sizeof(v->logfile), "%s/lxc.log", v->paths.dir);
	return 0;
}

const char *ops_ssh_host(const struct agent *a)
{
	return a->cfg.ssh_host[0] ? a->cfg.ssh_host : a->cfg.server_name;
}

/* Where containers reach the package cache, for the rules (host order):
 * the bridge's address for a local one, the address a URL names; 0 for
 * none, or a URL naming a host (its address is the resolver's to give,
 * and may change: doctor says when egress_deny covers it). */
static uint32_t ops_apt_cache_address(const struct agent *a)
{
	uint32_t address = 0;

	if (a->apt_cache.mode == CONFIG_APT_CACHE_LOCAL)
		return a->subnet.host_address;
	if (a->apt_cache.mode == CONFIG_APT_CACHE_URL &&
	    network_parse_address(a->apt_cache.host, &address) == 0)
		return address;
	return 0;
}

/* The whole nftables text: forwards and running containers as given,
 * egress_deny and the containers' resolvers as they are now. */
static char *ops_render_rules(struct agent *a, const struct nft_forward *rules, size_t nrules,
			      const uint32_t *running, size_t nrunning)
{
	struct config_network deny[CONFIG_EGRESS_DENY_MAX];
	uint32_t resolvers[RESOLVERS_MAX];
	size_t ndeny = 0, nresolvers;
	char subnet[64], err[256];

	snprintf(subnet, sizeof(subnet), "%u.%u.%u.%u/%u", a->subnet.network >> 24,
		 (a->subnet.network >> 16) & 255, (a->subnet.network >> 8) & 255,
		 a->subnet.network & 255, a->subnet.prefix);
	if (config_egress_deny(a->cfg.egress_deny, deny, &ndeny, err, sizeof(err)) < 0) {
		log_error("%s", err);
		return NULL;
	}
	nresolvers = resolvers_host(resolvers, RESOLVERS_MAX);
	return nft_render(&(struct nft_plan){ .table = a->cfg.nft_table, .bridge = a->cfg.bridge,
					      .subnet = subnet, .forwards = rules, .nforwards = nrules,
					      .containers = running, .ncontainers = nrunning,
					      .egress_deny = deny, .negress_deny = ndeny,
					      .resolvers = resolvers, .nresolvers = nresolvers,
					      .apt_cache = ops_apt_cache_address(a),
					      .apt_cache_port = a->apt_cache.port });
}

int ops_sync_rules(struct agent *a)
{
	__do_free struct member_record *members = NULL;
	__do_free struct forward_record *forwards = NULL;
	__do_free struct nft_forward *rules = NULL;
	__do_free uint32_t *running = NULL;
	__do_free char *text = NULL;
	struct ops_allow_rules allow = { 0 };
	size_t nmembers = 0, nforwards = 0, nrules = 0, nrunning = 0;
	int ret;

	pthread_mutex_lock(&a->rules_lock);
	ret = db_member_list(a->db, &members, &nmembers);
	if (ret == 0)
		ret = db_forward_list(a->db, NULL, &forwards, &nforwards);
	if (ret == 0)
		ret = ops_allow_rules_load(a, nmembers + nforwards, &allow);
	if (ret < 0)
		goto out;
	rules = calloc(nmembers + nforwards + 1, sizeof(*rules));
	running = calloc(nmembers + 1, sizeof(*running));
	if (!rules || !running) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < nmembers; i++) {
		const struct member_record *m = &members[i];
		char address[16];

		if (container_get_state(a->lxcpath, m->name) != CONTAINER_RUNNING)
			continue;
		if (network_member_address(&a->subnet, m->address_index, address, sizeof(address)) < 0 ||
		    network_parse_address(address, &running[nrunning]) < 0)
			continue;
		nrunning++;
		rules[nrules].host_port = (uint16_t)m->ssh_port;
		rules[nrules].container_port = 22;
		snprintf(rules[nrules].container_address, sizeof(rules[nrules].container_address), "%s", address);
		ops_allow_rules_fill(&allow, m->name, 22, nrules, &rules[nrules]);
		nrules++;
		for (size_t j = 0; j < nforwards; j++) {
			if (strcmp(forwards[j].member, m->name) != 0)
				continue;
			rules[nrules].host_port = (uint16_t)forwards[j].host_port;
			rules[nrules].container_port = (uint16_t)forwards[j].container_port;
			snprintf(rules[nrules].container_address, sizeof(rules[nrules].container_address),
				 "%s", address);
			ops_allow_rules_fill(&allow, m->name, forwards[j].container_port, nrules,
					     &rules[nrules]);
			nrules++;
		}
	}
	text = ops_render_rules(a, rules, nrules, running, nrunning);
	if (!text) {
		ret = -EINVAL;
		goto out;
	}
	ret = nft_apply(text);
	/* The second line behind the bridge table's ARP rules. */
	if (ret == 0)
		ret = neighbour_sync(a->cfg.bridge, &a->subnet, running, nrunning);
out:
	pthread_mutex_unlock(&a->rules_lock);
	ops_allow_rules_free(&allow);
	if (ret < 0)
		log_error("cannot apply the nftables rules of table %s", a->cfg.nft_table);
	return ret;
}

/* The template a member's container uses: the recorded one, or for a new
 * layer the newest of the default template, built on first need. */
int ops_member_template(struct op_context *ctx, struct member_record *rec,
			       struct template_info *tpl)
{
	struct agent *a = ctx->a;
	char err[512] = "";
	bool cached;
	int ret;

	if (rec->template_ref[0]) {
		ret = template_get(&a->cfg, rec->template_ref, tpl);
		if (ret == -ENOENT)
			return ops_fail(ctx, PROTO_E_FAILED,
					"your container's template %s is gone; run gpubox rebuild to move to the current one",
					rec->template_ref);
		if (ret < 0)
			return ops_fail(ctx, PROTO_E_FAILED, "cannot read template %s", rec->template_ref);
		return 0;
	}
	ret = template_newest(&a->cfg, a->cfg.template_name, tpl);
	if (ret == -ENOENT) {
		progress_say(ctx->progress, "Building template %s (first use on this server; a few minutes)",
			     a->cfg.template_name);
		ret = template_build(&a->cfg, NULL, NULL, ctx->progress, tpl, &cached, err, sizeof(err));
	}
	if (ret < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "template %s is not available: %s",
				a->cfg.template_name, err[0] ? err : "see the agent's log");
	if (db_member_set_template(a->db, rec->name, tpl->ref) < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "the agent's database failed; see the agent's log");
	snprintf(rec->template_ref, sizeof(rec->template_ref), "%s", tpl->ref);
	return 0;
}

static json_t *ops_login_result(struct agent *a, const struct member_record *rec,
				const struct member_view *v, const char *state)
{
	return json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:s}", "member", rec->name, "state", state,
			 "host", ops_ssh_host(a), "port", (int)rec->ssh_port, "user", rec->name,
			 "address", v->address, "template", rec->template_ref);
}

/* The container's mounts in one list: the GPU's files, the host's
 * directories, the container's socket and the gpubox that talks to it,
 * the package cache's proxy setting, nesting's stores and /dev/fuse.  The
 * entries point into gpu, host, guest, nest and the agent. */
static struct container_mount *ops_start_mounts(const struct agent *a,
						const struct gpu_plan *gpu,
						const struct mounts_plan *host,
						const char *guest,
						const struct nesting_plan *nest, size_t *n)
{
	struct container_mount *mounts;
	size_t nmounts = 0;

	mounts = calloc((gpu ? gpu->nmounts : 0) + host->n + nest->n + 4, sizeof(*mounts));
	if (!mounts)
		return NULL;
	for (size_t i = 0; i < nest->n; i++)
		mounts[nmounts++] = nest->mounts[i];
	for (size_t i = 0; gpu && i < gpu->nmounts; i++)
		mounts[nmounts++] = gpu->mounts[i];
	for (size_t i = 0; i < host->n; i++)
		mounts[nmounts++] = host->mounts[i];
	mounts[nmounts++] = (struct container_mount){ .source = guest, .target = GUEST_TARGET,
		.options = "bind,ro,nosuid,nodev,noexec,create=dir" };
	if (a->cfg.guest_cli[0] && access(a->cfg.guest_cli, X_OK) == 0)
		mounts[nmounts++] = (struct container_mount){ .source = a->cfg.guest_cli,
			.target = GUEST_CLI_TARGET, .options = "bind,ro,nosuid,nodev,create=file" };
	if (aptproxy_mount(&a->aptproxy, &mounts[nmounts]))
		nmounts++;
	*n = nmounts;
	return mounts;
}

/* What is done once the container runs, to its init: the writable host
 * directories made nosuid,nodev, the GPUs' device nodes. */
static int ops_start_finish(struct op_context *ctx, const struct member_record *rec,
			    const struct mounts_plan *host, const struct gpu_plan *gpu)
{
	struct agent *a = ctx->a;
	char err[512];
	int ret;

	/* The configuration set what every kernel has; now the rest (swap,
	 * I/O weight), where this one has them. */
	if (ops_limits_apply(a, rec->name, err, sizeof(err)) < 0) {
		ops_stop_member(a, rec);
		log_error("%s", err);
		return ops_fail(ctx, PROTO_E_FAILED, "the container's limits could not be set; see the agent's log");
	}
	if (host->n > 0) {
		pid_t pid;

		ret = container_init_pid(a->lxcpath, rec->name, &pid);
		if (ret == 0)
			ret = mounts_harden(host, pid);
		if (ret < 0) {
			ops_stop_member(a, rec);
			return ops_fail(ctx, PROTO_E_FAILED,
					"the host directories could not be mounted safely; see the agent's log");
		}
	}
	if (gpu && ops_gpu_started(a, rec, gpu) < 0)
		return ops_fail(ctx, PROTO_E_FAILED,
				"the container started but its GPUs could not be given to it; see the agent's log");
	return 0;
}

/* The disk of the agent's databases keeps disk_reserve free: a container
 * started on a full disk would fill the rest and break every member's
 * records with it.  Asked of a member's start only: a container that ran
 * a moment ago (around a snapshot or a failed restore) starts again. */
static int ops_start_room(struct op_context *ctx)
{
	struct agent *a = ctx->a;
	__do_close int fd = open(a->cfg.state_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	uint64_t avail = 0;

	if (fd < 0 || !a->cfg.disk_reserve ||
	    fsutil_space_left(fd, a->cfg.disk_reserve, 0, &avail) != -ENOSPC)
		return 0;
	log_warn("start refused: %s has %llu MB free, under disk_reserve (%llu MB)", a->cfg.state_dir,
		 (unsigned long long)(avail >> 20), (unsigned long long)(a->cfg.disk_reserve >> 20));
	return ops_fail(ctx, PROTO_E_UNAVAILABLE,
			"the server's disk has %llu MB free, and the agent keeps %llu MB of it free (disk_reserve): no container starts until an admin frees space",
			(unsigned long long)(avail >> 20), (unsigned long long)(ctx->a->cfg.disk_reserve >> 20));
}

/* Where a start spends its time, step by step, for the agent's debug log
 * ("start of NAME: storage 3.1 ms, ..."; bench/README.md's profile). */
struct ops_steps {
	struct timespec last;
	char text[320];
	size_t len;
};

static void ops_steps_begin(struct ops_steps *s)
{
	clock_gettime(CLOCK_MONOTONIC, &s->last);
	s->text[0] = '\0';
	s->len = 0;
}

static void ops_step(struct ops_steps *s, const char *what)
{
	struct timespec now;
	double ms;
	int n;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (double)(now.tv_sec - s->last.tv_sec) * 1e3 + (double)(now.tv_nsec - s->last.tv_nsec) / 1e6;
	s->last = now;
	if (s->len >= sizeof(s->text))
		return;
	n = snprintf(s->text + s->len, sizeof(s->text) - s->len, "%s%s %.1f ms",
		     s->len ? ", " : "", what, ms);
	if (n > 0)
		s->len += (size_t)n;
}

/* Start a container that does not run: its files mounted (the template's,
 * the layer, the GPU driver's), its account provisioned. */
static int ops_start_container(struct op_context *ctx, struct member_record *rec,
			       struct member_view *v, struct ops_steps *steps)
{
	struct agent *a = ctx->a;
	struct template_info tpl;
	__do_free char *keys = NULL;
	__do_free struct gpu_plan *gpu = NULL;
	__do_free struct mounts_plan *host = NULL;
	__do_free struct container_mount *mounts = NULL;
	struct cgroup_items limits;
	struct nesting_plan nest = { 0 };
	struct storage_disk disk;
	bool nesting = false;
	size_t nmounts = 0;
	char err[512], guest[PATH_MAX];
	int ret;

	if (ops_member_template(ctx, rec, &tpl) < 0)
		return -1;
	progress_say(ctx->progress, "Starting the container of %s on %s", rec->name,
		     a->cfg.server_name);
	ops_step(steps, "template");
	ret = member_sync_host(a, rec);
	ops_step(steps, "host account");
	if (ret == 0)
		ret = ops_limits_disk(a, rec, &disk);
	if (ret == 0)
		ret = storage_prepare(&v->paths, rec->subid_base, &disk);
	ops_step(steps, "storage");
	if (ret == 0)
		ret = ops_gpu_mount(ctx, rec, &v->paths, tpl.rootfs, &gpu);
	ops_step(steps, "gpu mounts");
	if (ret < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "cannot mount the container's files; see the agent's log");
	if (db_keys_text(a->db, rec->name, NULL, &keys) < 0 ||
	    ops_limits_items(a, rec->name, &limits) < 0 ||
	    ops_limits_nesting(a, rec->name, &nesting) < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "the agent's database failed; see the agent's log");
	if (nesting && nesting_prepare(&v->paths, rec->subid_base, &nest) < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "cannot make the stores of Docker and Podman; see the agent's log");
	host = calloc(1, sizeof(*host));
	if (!host)
		return ops_fail(ctx, PROTO_E_FAILED, "the agent ran out of memory");
	if (mounts_prepare(&a->cfg, rec, host, err, sizeof(err)) < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "%s; ask an admin", err);
	if (guest_listen(a, rec->name) < 0 || guest_dir(&a->cfg, rec->name, guest, sizeof(guest)) < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "cannot create the container's own socket; see the agent's log");
	mounts = ops_start_mounts(a, gpu, host, guest, &nest, &nmounts);
	if (!mounts)
		return ops_fail(ctx, PROTO_E_FAILED, "the agent ran out of memory");
	ops_step(steps, "records, mounts, socket");
	ret = provision_container(v->paths.rootfs, &(struct provision_member){
		.name = rec->name, .uid = rec->uid, .gid = rec->uid,
		.subid_base = rec->subid_base, .hostname = v->hostname, .authorized_keys = keys });
	if (ret < 0)
		return ops_fail(ctx, PROTO_E_FAILED,
				"cannot set up your account inside the container; see the agent's log");
	ops_step(steps, "provision");
	ret = container_start(&(struct container_spec){
		.name = rec->name, .lxcpath = a->lxcpath, .rootfs = v->paths.rootfs,
		.hostname = v->hostname, .subid_base = rec->subid_base, .address = v->address,
		.prefix = a->subnet.prefix, .gateway = v->gateway, .bridge = a->cfg.bridge,
		.logfile = v->logfile, .mounts = mounts, .nmounts = nmounts,
		.devices = gpu ? gpu->devices : NULL,
		.cgroup_v1 = gpu_cgroup_v1(), .limits = &limits, .nesting = nesting });
	if (ret < 0)
		return ops_fail(ctx, PROTO_E_FAILED,
				"the container did not start; an admin finds why in %s", v->logfile);
	ops_step(steps, "lxc start");
	ret = ops_start_finish(ctx, rec, host, gpu);
	ops_step(steps, "limits, hardening, gpus");
	return ret;
}

int ops_start_member(struct op_context *ctx, struct member_record *rec, json_t **result)
{
	struct agent *a = ctx->a;
	struct member_view v;
	struct ops_steps steps;
	int ret;

	ops_steps_begin(&steps);
	if (ops_member_view(a, rec, &v) < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "cannot work out the container's paths or address");
	if (container_get_state(a->lxcpath, rec->name) != CONTAINER_RUNNING &&
	    ops_start_container(ctx, rec, &v, &steps) < 0)
		return -1;
	/* The container runs: its port rules are set while it boots (its
	 * sshd takes most of a second), not before saying so. */
	progress_say(ctx->progress, "Waiting for the container's SSH server");
	if (ops_sync_rules(a) < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "cannot set up the port forwarding; see the agent's log");
	ops_step(&steps, "port rules");
	ret = container_wait_ssh(v.address, 22, a->cfg.start_timeout, ctx->progress);
	if (ret < 0)
		return ops_fail(ctx, PROTO_E_FAILED,
				"the container runs but its SSH server did not answer within %u s; try gpubox stop, then gpubox start",
				a->cfg.start_timeout);
	ops_step(&steps, "ssh");
	log_debug("start of %s: %s", rec->name, steps.text);
	*result = ops_login_result(a, rec, &v, "running");
	return 0;
}

int ops_stop_member(struct agent *a, const struct member_record *rec)
{
	struct storage_paths paths;
	int ret;

	ret = container_stop(a->lxcpath, rec->name, a->cfg.stop_timeout);
	if (ret < 0)
		return ret;
	guest_close(a, rec->name);
	ops_sync_rules(a);
	if (storage_paths(a->cfg.state_dir, rec->name, &paths) == 0)
		storage_unmount(&paths);
	return 0;
}

static int op_start(struct op_context *ctx, json_t **result)
{
	static const char *const allowed[] = { "member", NULL };
	__do_unlock_member struct member_lock lock = { 0 };
	struct member_record rec;

	if (ops_check_args(ctx, allowed) < 0 || ops_target(ctx, &rec) < 0)
		return -1;
	lock = agent_lock_member(ctx->a, rec.name);
	if (container_get_state(ctx->a->lxcpath, rec.name) != CONTAINER_RUNNING &&
	    ops_start_room(ctx) < 0)
		return -1;
	return ops_start_member(ctx, &rec, result);
}

static int op_stop(struct op_context *ctx, json_t **result)
{
	static const char *const allowed[] = { "member", NULL };
	__do_unlock_member struct member_lock lock = { 0 };
	struct member_record rec;
	int ret;

	if (ops_check_args(ctx, allowed) < 0 || ops_target(ctx, &rec) < 0)
		return -1;
	lock = agent_lock_member(ctx->a, rec.name);
	progress_say(ctx->progress, "Stopping the container of %s", rec.name);
	ret = ops_stop_member(ctx->a, &rec);
	if (ret < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "the container did not stop; see the agent's log");
	*result = json_pack("{s:s, s:s}", "member", rec.name, "state", "stopped");
	return 0;
}

static json_t *ops_forwards_json(struct agent *a, const char *member)
{
	__do_free struct forward_record *list = NULL;
	json_t *array = json_array();
	size_t n = 0;

	if (db_forward_list(a->db, member, &list, &n) < 0)
		return array;
	for (size_t i = 0; i < n; i++)
		json_array_append_new(array, json_pack("{s:i, s:i}", "container_port",
						       (int)list[i].container_port, "host_port",
						       (int)list[i].host_port));
	ops_allow_annotate(a, member, array, NULL);
	return array;
}

json_t *ops_status_json(struct agent *a, const struct member_record *rec)
{
	struct member_view v;
	enum container_state state = container_get_state(a->lxcpath, rec->name);

	char newer[TEMPLATE_REF_SIZE];
	json_t *status;

	if (ops_member_view(a, rec, &v) < 0)
		v.address[0] = '\0';
	status = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:i, s:o}",
			 "member", rec->name, "server", a->cfg.server_name,
			 "state", container_state_name(state == CONTAINER_ABSENT ? CONTAINER_STOPPED : state),
			 "template", rec->template_ref, "address", v.address,
			 "ssh_port", (int)rec->ssh_port, "host", ops_ssh_host(a), "hostname", v.hostname,
			 "uid", (int)rec->uid, "forwards", ops_forwards_json(a, rec->name));
	/* A newer version of the member's template: gpubox rebuild moves to it. */
	if (status && template_newer(&a->cfg, rec->template_ref, newer, sizeof(newer)) > 0)
		json_object_set_new(status, "template_update", json_string(newer));
	if (status)
		ops_gpu_status(a, rec, state == CONTAINER_RUNNING, status);
	if (status)
		ops_limits_status(a, rec, state == CONTAINER_RUNNING, status);
	ops_allow_annotate(a, rec->name, NULL, status);
	return status;
}

static int op_status(struct op_context *ctx, json_t **result)
{
	static const char *const allowed[] = { "member", NULL };
	struct member_record rec;

	if (ops_check_args(ctx, allowed) < 0 || ops_target(ctx, &rec) < 0)
		return -1;
	*result = ops_status_json(ctx->a, &rec);
	return 0;
}

static int op_rebuild(struct op_context *ctx, json_t **result)
{
	static const char *const allowed[] = { "member", "confirm", "keep_home", NULL };
	struct agent *a = ctx->a;
	__do_unlock_member struct member_lock lock = { 0 };
	struct member_record rec;
	struct storage_paths paths;
	char err[256];
	bool confirm = false, keep_home = false, was_running;
	int ret;

	if (ops_check_args(ctx, allowed) < 0 || ops_target(ctx, &rec) < 0)
		return -1;
	if (proto_arg_bool(ctx->args, "confirm", &confirm, err, sizeof(err)) < 0 ||
	    proto_arg_bool(ctx->args, "keep_home", &keep_home, err, sizeof(err)) < 0)
		return ops_usage(ctx, err);
	if (!confirm)
		return ops_usage(ctx, "rebuild deletes every change you made in your container; confirm it (gpubox rebuild --yes)");
	lock = agent_lock_member(a, rec.name);
	was_running = container_get_state(a->lxcpath, rec.name) == CONTAINER_RUNNING;
	progress_say(ctx->progress, "Rebuilding the container of %s from its template", rec.name);
	ret = ops_stop_member(a, &rec);
	if (ret == 0)
		ret = storage_paths(a->cfg.state_dir, rec.name, &paths);
	if (ret == 0 && keep_home)
		ret = ops_snapshot_keep_home(&paths);
	if (ret == 0)
		ret = storage_wipe(&paths, rec.subid_base);
	/* /home goes back even when the wipe failed half-way. */
	if (keep_home && ops_snapshot_return_home(&paths) < 0 && ret == 0)
		ret = -EIO;
	if (ret < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "the container could not be reset; see the agent's log");
	/* A fresh layer moves to the newest template. */
	db_member_set_template(a->db, rec.name, "");
	rec.template_ref[0] = '\0';
	if (was_running) {
		ret = ops_start_member(ctx, &rec, result);
	} else {
		struct template_info tpl;

		ret = ops_member_template(ctx, &rec, &tpl);
		if (ret == 0)
			*result = json_pack("{s:s, s:s, s:s}", "member", rec.name, "state", "stopped",
					    "template", rec.template_ref);
	}
	return ret;
}

/* ---- port forwarding ------------------------------------------------------ */

static bool ops_port_in(const struct config_range *r, long long port)
{
	return port >= r->first && port <= r->last;
}

/* A free host port for the member's port: the same number when it is free
 * and members may forward it, else the lowest free one; 0 when none is. */
static uint32_t ops_port_free(struct agent *a, long long port)
{
	__do_free struct forward_record *all = NULL;
	__do_free uint32_t *used = NULL;
	struct forward_record other;
	size_t n = 0;
	uint32_t chosen;

	if (ops_port_in(&a->cfg.forward_port_range, port) &&
	    db_forward_by_host_port(a->db, (uint32_t)port, &other) == -ENOENT)
		return (uint32_t)port;
	if (db_forward_list(a->db, NULL, &all, &n) == 0 && (used = calloc(n + 1, sizeof(*used)))) {
		for (size_t i = 0; i < n; i++)
			used[i] = all[i].host_port;
		if (ids_lowest_free(&a->cfg.forward_port_range, used, n, &chosen) == 0)
			return chosen;
	}
	return 0;
}

/* Record the forward of the member's port to *host_port, chosen when 0.
 * The caller holds members_lock: no other forward takes the port meanwhile. */
static int ops_port_record(struct op_context *ctx, const struct member_record *rec,
			   long long port, long long *host_port)
{
	struct agent *a = ctx->a;
	struct forward_record other;
	int ret;

	if (*host_port == 0) {
		*host_port = ops_port_free(a, port);
		if (*host_port == 0)
			return ops_fail(ctx, PROTO_E_CONFLICT, "no free host port is left; ask an admin");
	} else if (!ops_port_in(&a->cfg.forward_port_range, *host_port)) {
		return ops_fail(ctx, PROTO_E_DENIED,
				"host port %lld is reserved; members may forward host ports %u-%u only",
				*host_port, a->cfg.forward_port_range.first, a->cfg.forward_port_range.last);
	}
	if (db_forward_by_host_port(a->db, (uint32_t)*host_port, &other) == 0) {
		if (strcmp(other.member, rec->name) != 0)
			return ops_fail(ctx, PROTO_E_CONFLICT,
					"host port %lld is used by another member; choose another, or leave it out to get a free one",
					*host_port);
		return ops_fail(ctx, PROTO_E_CONFLICT,
				"host port %lld already forwards to your port %u; remove that first (gpubox port rm %u)",
				*host_port, other.container_port, other.container_port);
	}
	ret = db_forward_add(a->db, rec->name, (uint32_t)port, (uint32_t)*host_port);
	if (ret == -EEXIST)
		return ops_fail(ctx, PROTO_E_CONFLICT,
				"your port %lld is forwarded already (see gpubox port ls)", port);
	if (ret < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "the agent's database failed; see the agent's log");
	return 0;
}

static int op_port_add(struct op_context *ctx, json_t **result)
{
	static const char *const allowed[] = { "member", "port", "host_port", "from", NULL };
	struct agent *a = ctx->a;
	struct member_record rec;
	struct ops_allow allow;
	long long port = 0, host_port = 0;
	char err[256];
	bool from;
	int ret;

	if (ops_check_args(ctx, allowed) < 0 || ops_target(ctx, &rec) < 0)
		return -1;
	if (proto_arg_int(ctx->args, "port", true, 1, 65535, &port, err, sizeof(err)) < 0 ||
	    proto_arg_int(ctx->args, "host_port", false, 1, 65535, &host_port, err, sizeof(err)) < 0)
		return ops_usage(ctx, err);
	if (port == 22)
		return ops_fail(ctx, PROTO_E_USAGE,
				"port 22 is your container's SSH, already reachable on port %u (gpubox port set ssh --from ... limits who reaches it)",
				rec.ssh_port);
	if (ops_allow_arg(ctx, &allow, &from) < 0)
		return -1;
	pthread_mutex_lock(&a->members_lock);
	ret = ops_port_record(ctx, &rec, port, &host_port);
	pthread_mutex_unlock(&a->members_lock);
	if (ret < 0)
		return -1;
	if ((from && ops_allow_record(a, rec.name, (uint32_t)port, &allow) < 0) || ops_sync_rules(a) < 0) {
		/* Its list goes with it. */
		db_forward_remove(a->db, rec.name, (uint32_t)port);
		return ops_fail(ctx, PROTO_E_FAILED, "cannot apply the forwarding rule; see the agent's log");
	}
	*result = json_pack("{s:i, s:i, s:s}", "host_port", (int)host_port, "container_port", (int)port,
			    "host", ops_ssh_host(a));
	ops_allow_annotate_port(a, rec.name, (uint32_t)port, *result);
	return 0;
}

static int op_port_rm(struct op_context *ctx, json_t **result)
{
	static const char *const allowed[] = { "member", "port", NULL };
	struct member_record rec;
	long long port = 0;
	char err[256];
	int ret;

	if (ops_check_args(ctx, allowed) < 0 || ops_target(ctx, &rec) < 0)
		return -1;
	if (proto_arg_int(ctx->args, "port", true, 1, 65535, &port, err, sizeof(err)) < 0)
		return ops_usage(ctx, err);
	ret = db_forward_remove(ctx->a->db, rec.name, (uint32_t)port);
	if (ret == -ENOENT)
		return ops_fail(ctx, PROTO_E_NOTFOUND, "your port %lld is not forwarded (see gpubox port ls)", port);
	if (ret < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "the agent's database failed; see the agent's log");
	if (ops_sync_rules(ctx->a) < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "cannot apply the forwarding rules; see the agent's log");
	*result = json_object();
	return 0;
}

static int op_port_ls(struct op_context *ctx, json_t **result)
{
	static const char *const allowed[] = { "member", NULL };
	struct member_record rec;

	if (ops_check_args(ctx, allowed) < 0 || ops_target(ctx, &rec) < 0)
		return -1;
	*result = json_pack("{s:o, s:s, s:i}", "forwards", ops_forwards_json(ctx->a, rec.name),
			    "host", ops_ssh_host(ctx->a), "ssh_port", (int)rec.ssh_port);
	ops_allow_annotate(ctx->a, rec.name, NULL, *result);
	return 0;
}

/* ---- admin ------------------------------------------------------------------ */

static int op_user_add(struct op_context *ctx, json_t **result)
{
	static const char *const allowed[] = { "name", "keys", NULL };
	struct member_record rec;
	struct member_view v;
	const char *name;
	char err[512] = "";

	if (ops_require_admin(ctx) < 0 || ops_check_args(ctx, allowed) < 0)
		return -1;
	if (proto_arg_string(ctx->args, "name", true, &name, err, sizeof(err)) < 0)
		return ops_usage(ctx, err);
	switch (member_add(ctx->a, name, json_object_get(ctx->args, "keys"), &rec, err, sizeof(err))) {
	case 0:
		break;
	case -EINVAL:
		return ops_usage(ctx, err);
	case -EEXIST:
		return ops_fail(ctx, PROTO_E_CONFLICT, "%s", err);
	default:
		return ops_fail(ctx, PROTO_E_FAILED, "%s", err[0] ? err : "the member could not be added");
	}
	ops_member_view(ctx->a, &rec, &v);
	*result = json_pack("{s:s, s:i, s:I, s:i, s:s, s:s}", "name", rec.name, "uid", (int)rec.uid,
			    "subid_base", (json_int_t)rec.subid_base, "ssh_port", (int)rec.ssh_port,
			    "address", v.address, "host", ops_ssh_host(ctx->a));
	return 0;
}

static int op_user_rm(struct op_context *ctx, json_t **result)
{
	static const char *const allowed[] = { "name", "purge", NULL };
	__do_unlock_member struct member_lock lock = { 0 };
	struct member_record rec;
	const char *name;
	char err[512] = "", kept[PATH_MAX];
	bool purge = false;
	int removed = 0;

	if (ops_require_admin(ctx) < 0 || ops_check_args(ctx, allowed) < 0)
		return -1;
	if (proto_arg_string(ctx->args, "name", true, &name, err, sizeof(err)) < 0 ||
	    proto_arg_bool(ctx->args, "purge", &purge, err, sizeof(err)) < 0 ||
	    validate_member_name(name, err, sizeof(err)) < 0)
		return ops_usage(ctx, err);
	if (db_member_get(ctx->a->db, name, &rec) < 0)
		return ops_fail(ctx, PROTO_E_NOTFOUND, "there is no member %s (see gpubox admin user ls)", name);
	lock = agent_lock_member(ctx->a, name);
	if (ops_stop_member(ctx->a, &rec) < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "the container of %s did not stop; nothing was removed", name);
	reservations_forget_member(ctx->a, name);
	if (member_remove(ctx->a, name, purge, kept, sizeof(kept), err, sizeof(err)) < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "%s", err[0] ? err : "the member could not be removed");
	/* Its snapshots are bound to the identity just removed, which no later
	 * member gets: without --purge they stay in the store for an admin;
	 * with it they go too.  Local ones went with the layer: their
	 * manifests go in any case.  Removed after the record, so that a
	 * failure leaves them only unreachable. */
	{
		struct snapshot_owner owner = { .name = rec.name, .identity = rec.identity,
						.created = rec.created,
						.server = ctx->a->cfg.server_name };

		removed = snapshot_retire(&ctx->a->cfg, &owner, !purge);
		if (removed < 0)
			log_warn_errno(0, -removed, "the snapshots of %s were not all removed", name);
	}
	/* Nothing of the member is left to guard while the rules are rewritten. */
	agent_unlock_member(&lock);
	ops_sync_rules(ctx->a);
	*result = kept[0] ? json_pack("{s:s, s:s}", "name", name, "kept", kept)
			  : json_pack("{s:s}", "name", name);
	if (*result && removed > 0)
		json_object_set_new(*result, "snapshots_removed", json_integer(removed));
	return 0;
}

static int op_user_ls(struct op_context *ctx, json_t **result)
{
	static const char *const allowed[] = { NULL };
	__do_free struct member_record *list = NULL;
	json_t *users;
	size_t n = 0;

	if (ops_require_admin(ctx) < 0 || ops_check_args(ctx, allowed) < 0)
		return -1;
	if (db_member_list(ctx->a->db, &list, &n) < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "the agent's database failed; see the agent's log");
	users = json_array();
	for (size_t i = 0; i < n; i++) {
		char address[32] = "";

		network_member_address(&ctx->a->subnet, list[i].address_index, address, sizeof(address));
		json_array_append_new(users, json_pack("{s:s, s:i, s:I, s:i, s:s, s:s}",
			"name", list[i].name, "uid", (int)list[i].uid,
			"subid_base", (json_int_t)list[i].subid_base, "ssh_port", (int)list[i].ssh_port,
			"address", address, "template", list[i].template_ref));
	}
	*result = json_pack("{s:o}", "users", users);
	return 0;
}

static int op_ls(struct op_context *ctx, json_t **result)
{
	static const char *const allowed[] = { NULL };
	__do_free struct member_record *list = NULL;
	json_t *containers;
	size_t n = 0;

	if (ops_require_admin(ctx) < 0 || ops_check_args(ctx, allowed) < 0)
		return -1;
	if (db_member_list(ctx->a->db, &list, &n) < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "the agent's database failed; see the agent's log");
	containers = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(containers, ops_status_json(ctx->a, &list[i]));
	*result = json_pack("{s:o}", "containers", containers);
	if (*result && !cgroup_lxcfs_running())
		json_object_set_new(*result, "notes", json_pack("[s]",
			"lxcfs is not running (or its mount no longer answers): containers see the server's "
			"whole memory and CPUs in /proc and free; start lxcfs (scripts/install-deps does), "
			"then restart the containers"));
	return 0;
}

static int op_template_build(struct op_context *ctx, json_t **result)
{
	static const char *const allowed[] = { "name", "release", NULL };
	struct template_info tpl;
	const char *name = NULL, *release = NULL;
	char err[512] = "";
	bool cached = false;

	if (ops_require_admin(ctx) < 0 || ops_check_args(ctx, allowed) < 0)
		return -1;
	if (proto_arg_string(ctx->args, "name", false, &name, err, sizeof(err)) < 0 ||
	    proto_arg_string(ctx->args, "release", false, &release, err, sizeof(err)) < 0)
		return ops_usage(ctx, err);
	if (name && validate_template_name(name, err, sizeof(err)) < 0)
		return ops_usage(ctx, err);
	if (release && validate_template_name(release, err, sizeof(err)) < 0)
		return ops_usage(ctx, "the release must be a Debian release name such as bookworm");
	if (template_build(&ctx->a->cfg, name, release, ctx->progress, &tpl, &cached, err,
			   sizeof(err)) < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "%s", err[0] ? err : "the template build failed");
	*result = json_pack("{s:s, s:b, s:s, s:I}", "ref", tpl.ref, "cached", cached,
			    "rootfs", tpl.rootfs, "size", (json_int_t)tpl.size);
	return 0;
}

static int op_template_ls(struct op_context *ctx, json_t **result)
{
	static const char *const allowed[] = { NULL };
	json_t *list = NULL;

	if (ops_require_admin(ctx) < 0 || ops_check_args(ctx, allowed) < 0)
		return -1;
	if (template_list(&ctx->a->cfg, &list) < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "cannot list the templates; see the agent's log");
	*result = json_pack("{s:o}", "templates", list);
	return 0;
}

static int op_version(struct op_context *ctx, json_t **result)
{
	static const char *const allowed[] = { NULL };

	if (ops_check_args(ctx, allowed) < 0)
		return -1;
	*result = json_pack("{s:s, s:i, s:s, s:b, s:s?}", "version", GPUBOX_VERSION,
			    "protocol", PROTO_VERSION, "server", ctx->a->cfg.server_name,
			    "admin", ctx->who->admin, "member",
			    ctx->who->is_member ? ctx->who->member.name : NULL);
	return 0;
}

static const struct op_entry ops_core_table[] = {
	{ "version",        op_version,        OP_READ_ONLY, NULL },
	{ "start",          op_start,          OP_CHANGES,   NULL },
	{ "stop",           op_stop,           OP_CHANGES,   NULL },
	{ "status",         op_status,         OP_READ_ONLY, NULL },
	{ "rebuild",        op_rebuild,        OP_CHANGES,   NULL },
	{ "port_add",       op_port_add,       OP_CHANGES,   "member port" },
	{ "port_rm",        op_port_rm,        OP_CHANGES,   "member port" },
	{ "port_ls",        op_port_ls,        OP_READ_ONLY, NULL },
	{ "user_add",       op_user_add,       OP_CHANGES,   "name" },
	{ "user_rm",        op_user_rm,        OP_CHANGES,   "name" },
	{ "user_ls",        op_user_ls,        OP_READ_ONLY, NULL },
	{ "template_build", op_template_build, OP_CHANGES,   "name release" },
	{ "template_ls",    op_template_ls,    OP_READ_ONLY, NULL },
	{ "ls",             op_ls,             OP_READ_ONLY, NULL },
	{ 0 },
};

/* Every operation, by area; each table ends with a NULL name. */
static const struct op_entry *const ops_tables[] = {
	ops_core_table,
	ops_allow_table,
	ops_gpu_table,
	ops_snapshot_table,
	ops_monitor_table,
	ops_limits_table,
	ops_doctor_table,
	ops_audit_table,
	ops_reserve_table,
};

/* What a container may ask over its own socket: reading, and its
 * member's own GPU reservations. */
static bool ops_guest_may(const char *op)
{
	static const char *const allowed[] = { "ps", "gpus", "status", "reserve", "reserve_extend",
					       "reservations", "release", NULL };

	for (size_t i = 0; allowed[i]; i++)
		if (strcmp(allowed[i], op) == 0)
			return true;
	return false;
}

static const struct op_entry *ops_find(const char *op)
{
	for (size_t t = 0; t < ARRAY_SIZE(ops_tables); t++)
		for (const struct op_entry *e = ops_tables[t]; e->name; e++)
			if (strcmp(e->name, op) == 0)
				return e;
	return NULL;
}

static int ops_run(struct op_context *ctx, const struct op_entry *entry, const char *op,
		   json_t **result)
{
	*result = NULL;
	if (ctx->who->guest && !ops_guest_may(op))
		return ops_fail(ctx, PROTO_E_DENIED,
				"inside a container gpubox answers only ps, gpus, status, reserve, reservations and release; the rest is done on the host (ssh %s-manage)",
				ctx->a->cfg.server_name);
	if (!entry)
		return ops_fail(ctx, PROTO_E_USAGE, "unknown operation; this agent speaks protocol %d",
				PROTO_VERSION);
	if (entry->run(ctx, result) < 0)
		return -1;
	if (!*result)
		return ops_fail(ctx, PROTO_E_FAILED, "the agent ran out of memory");
	return 0;
}

int ops_dispatch(struct agent *a, const struct caller *who, const char *op, json_t *args,
		 struct progress *progress, json_t **result, struct reply_error *error)
{
	struct op_context ctx = { .a = a, .who = who, .args = args, .progress = progress, .error = error };
	const struct op_entry *entry = ops_find(op);
	long long started_ms = audit_now_ms();
	int ret = ops_run(&ctx, entry, op, result);

	ops_audit_request(&ctx, entry, op, ret, started_ms);
	return ret;
}

int ops_reconcile(struct agent *a)
{
	__do_free struct member_record *list = NULL;
	size_t n = 0;
	int ret;

	ret = network_setup(&a->cfg);
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot set up the bridge %s", a->cfg.bridge);
	/* Before anything looks at a layer: after a reboot the pool is to be
	 * mounted again.  Without one, layers have no quota (logged). */
	pool_setup(&a->cfg);
	ret = db_member_list(a->db, &list, &n);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < n; i++) {
		struct storage_paths paths;
		enum container_state state = container_get_state(a->lxcpath, list[i].name);

		member_sync_host(a, &list[i]);
		/* After a reboot, a layer's own image is to be mounted again
		 * before anything looks at the layer. */
		if (storage_paths(a->cfg.state_dir, list[i].name, &paths) == 0) {
			layerimg_prepare(&paths, 0);
			storage_discard_leftovers(&paths);
		}
		/* A restore or a rebuild cut short by a crash is undone first. */
		ops_snapshot_reconcile(a, &list[i]);
		state = container_get_state(a->lxcpath, list[i].name);
		if (state == CONTAINER_RUNNING || state == CONTAINER_STARTING) {
			/* Its socket directory is bound inside: listen there again. */
			guest_listen(a, list[i].name);
			continue;
		}
		/* A start the agent did not finish: nothing runs on this mount. */
		if (storage_paths(a->cfg.state_dir, list[i].name, &paths) == 0 &&
		    storage_is_mounted(&paths)) {
			log_info("unmounting the unused files of %s", list[i].name);
			storage_unmount(&paths);
		}
	}
	return ops_sync_rules(a);
}
