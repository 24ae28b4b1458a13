/* SPDX-License-Identifier: MIT */
/*
 * The GPU operations of the protocol (gpu_attach, gpu_detach, gpu_ls), and
 * the GPU part of a start and of a status: which GPUs a container has and
 * the host driver's files it gets (gpu.c does the work).
 *
 * A member's GPU set is recorded in the database (gpu_sets) by attach and
 * detach, as the GPUs' UUIDs; a member without a record has the server's
 * gpu_default.  Discovery runs at every start, so a driver upgraded on the
 * host is what the next start injects.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "container/container.h"
#include "gpu/gpu.h"
#include "ops.h"
#include "progress.h"
#include "reservations.h"
#include "monitor/monitor.h"
#include "state/state.h"
#include "cleanup.h"
#include "fsutil.h"
#include "log.h"
#include "proto.h"
#include "validate.h"
#include "banned.h"

#define OPS_GPU_SET_MAX 4096
/* A detach with force: how long the processes holding the GPU have after
 * SIGTERM, then after SIGKILL; how many times new holders are looked for. */
#define OPS_GPU_DETACH_GRACE_MS 5000
#define OPS_GPU_DETACH_KILL_WAIT_MS 5000
#define OPS_GPU_DETACH_ROUNDS 3

static unsigned ops_gpu_caps(const struct agent *a)
{
	char err[160];
	unsigned caps = GPU_CAP_UTILITY | GPU_CAP_COMPUTE;

	if (gpu_parse_capabilities(a->cfg.gpu_capabilities, &caps, err, sizeof(err)) < 0)
		log_warn("gpu_capabilities: %s; using utility compute", err);
	return caps;
}

/* The member's set as text: the recorded one, else the server's default. */
static int ops_gpu_set_text(struct agent *a, const char *member, char *out, size_t len)
{
	int ret = db_gpu_set_get(a->db, member, out, len);

	if (ret == -ENOENT) {
		snprintf(out, len, "%s", a->cfg.gpu_default[0] ? a->cfg.gpu_default : "all");
		return 0;
	}
	return ret;
}

int ops_gpu_mask(struct agent *a, const struct gpu_host *host, const char *member,
			uint64_t *mask)
{
	char set[OPS_GPU_SET_MAX], err[256];
	int ret = ops_gpu_set_text(a, member, set, sizeof(set));

	if (ret < 0)
		return ret;
	ret = gpu_select(host, set, mask, err, sizeof(err));
	if (ret < 0)
		log_error("the GPU set of %s (%s) is not valid: %s", member, set, err);
	return ret;
}

static int ops_gpu_dir(struct agent *a, const char *member, char *out, size_t len)
{
	int n = snprintf(out, len, "%s/users/%s/gpu", a->cfg.state_dir, member);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static json_t *ops_gpu_json(const struct gpu_device *g)
{
	char device[32];

	snprintf(device, sizeof(device), "/dev/nvidia%u", g->minor);
	return json_pack("{s:i, s:s, s:s, s:s, s:s}", "index", (int)g->index, "uuid", g->uuid,
			 "bus_id", g->bus_id, "model", g->model, "device", device);
}

/* The GPUs of mask, each as ops_gpu_json() shows it. */
static json_t *ops_gpu_list_json(const struct gpu_host *host, uint64_t mask)
{
	json_t *gpus = json_array();

	for (size_t i = 0; i < host->ngpus; i++)
		if ((mask >> i) & 1)
			json_array_append_new(gpus, ops_gpu_json(&host->gpus[i]));
	return gpus;
}

/* What nvml_interposer and the library make of NVML in a container that
 * starts now: true when translated; why, in one sentence, into note. */
static bool ops_gpu_nvml_plan(const struct agent *a, char *lib, size_t liblen, char *note,
			      size_t notelen)
{
	enum config_nvml mode = config_nvml_interposer(&a->cfg, lib, liblen);

	if (mode == CONFIG_NVML_OFF) {
		snprintf(note, notelen, "not translated (nvml_interposer = off): NVML shows host pids");
		return false;
	}
	if (access(lib, R_OK) < 0) {
		snprintf(note, notelen, "not translated: the interposer %s is missing", lib);
		return false;
	}
	snprintf(note, notelen, "translated: this container's processes with their pids inside, %s",
		 mode == CONFIG_NVML_ANONYMOUS ? "other members' without a pid" : "other members' left out");
	return true;
}

/* Interpose NVML in the plan when the configuration says so; what the
 * start does, in one sentence, into note (kept in the GPU directory for
 * gpubox status). */
static void ops_gpu_nvml(struct agent *a, const struct gpu_host *host, struct gpu_plan *plan,
			 char *note, size_t notelen)
{
	char lib[PATH_MAX];

	if (ops_gpu_nvml_plan(a, lib, sizeof(lib), note, notelen)) {
		int ret = gpu_plan_nvml(host, plan, lib);

		if (ret == -ENOENT)
			snprintf(note, notelen, "not translated: the driver has no libnvidia-ml");
		else if (ret < 0)
			snprintf(note, notelen, "not translated: %s", strerror(-ret));
	}
}

int ops_gpu_mount(struct op_context *ctx, const struct member_record *rec,
		  const struct storage_paths *paths, const char *template_rootfs,
		  struct gpu_plan **out)
{
	struct agent *a = ctx->a;
	__do_free struct gpu_host *host = NULL;
	__do_free struct gpu_plan *plan = NULL;
	char dir[PATH_MAX], driver[PATH_MAX], nvml[PATH_MAX + 128];
	uint64_t mask = 0;
	struct storage_extra layers = { .below = aptproxy_layer(&a->aptproxy) };
	struct stat st;
	int ret;

	*out = NULL;
	host = calloc(1, sizeof(*host));
	plan = calloc(1, sizeof(*plan));
	if (!host || !plan)
		return -ENOMEM;
	/* Layers of a stopped container are rebuilt from scratch below. */
	storage_unmount(paths);
	ret = gpu_discover(a->cfg.gpu_root, ops_gpu_caps(a), host);
	if (ret < 0 || !host->present) {
		if (ret < 0)
			log_warn("cannot look for GPUs below \"%s\"; starting without", a->cfg.gpu_root);
		return storage_mount_layers(paths, template_rootfs, &layers, rec->subid_base);
	}
	ret = ops_gpu_mask(a, host, rec->name, &mask);
	/* Other members' reservations: reservations_sync_started() catches
	 * up with any that begin or end before the container runs. */
	mask &= ~reservations_hidden(a, rec->name);
	if (ret == 0)
		ret = ops_gpu_dir(a, rec->name, dir, sizeof(dir));
	if (ret == 0)
		ret = gpu_plan_build(host, mask, dir,
				     stat("/proc/driver/nvidia", &st) == 0 && S_ISDIR(st.st_mode), plan);
	if (ret == 0)
		ops_gpu_nvml(a, host, plan, nvml, sizeof(nvml));
	if (ret == 0)
		ret = gpu_prepare(host, plan, rec->subid_base);
	layers.above = plan->layer;
	if (ret == 0)
		ret = storage_mount_layers(paths, template_rootfs, &layers, rec->subid_base);
	if (ret < 0)
		return ret;
	progress_say(ctx->progress, "Injecting NVIDIA driver %s (%zu files, %zu of %zu GPUs)",
		     host->version, host->nfiles, (size_t)__builtin_popcountll(mask), host->ngpus);
	ret = gpu_ldconfig(host, plan, paths->rootfs, rec->subid_base, a->cfg.gpu_ldconfig);
	/* The cache is a new file of the layer: mount the overlay afresh so
	 * that it sees it. */
	storage_unmount(paths);
	if (ret < 0)
		return ret;
	ret = storage_mount_layers(paths, template_rootfs, &layers, rec->subid_base);
	if (ret < 0)
		return ret;
	if (snprintf(driver, sizeof(driver), "%s/driver", dir) < (int)sizeof(driver))
		fsutil_write_atomic(driver, host->version, strlen(host->version), 0644);
	if (snprintf(driver, sizeof(driver), "%s/nvml", dir) < (int)sizeof(driver))
		fsutil_write_atomic(driver, nvml, strlen(nvml), 0644);
	*out = move_ptr(plan);
	return 0;
}

int ops_gpu_started(struct agent *a, const struct member_record *rec, const struct gpu_plan *plan)
{
	return reservations_sync_started(a, rec, plan);
}

/* "nvml": whether NVML's process queries inside show the container's own
 * pids ("nvml_translated"), and why: as the running container started
 * (dir: its GPU directory), else as a start would do now. */
static void ops_gpu_nvml_status(const struct agent *a, const char *dir, json_t *status)
{
	__do_free char *recorded = NULL;
	char lib[PATH_MAX], note[PATH_MAX + 128], path[PATH_MAX + 8];
	size_t len;

	ops_gpu_nvml_plan(a, lib, sizeof(lib), note, sizeof(note));
	if (dir && snprintf(path, sizeof(path), "%s/nvml", dir) < (int)sizeof(path) &&
	    fsutil_read_file(path, sizeof(note), &recorded, &len) == 0 && recorded[0])
		snprintf(note, sizeof(note), "%s", recorded);
	json_object_set_new(status, "nvml", json_string(note));
	json_object_set_new(status, "nvml_translated", json_boolean(strncmp(note, "translated", 10) == 0));
}

/* "gpu_cap": the GPUs the member holds at once, reserved or in use. */
static void ops_gpu_status_cap(struct agent *a, const char *member, json_t *status)
{
	struct sample s = { 0 };
	bool read = a->cfg.gpu_cap && a->collector && collector_latest(a->collector, &s) == 0;
	json_t *cap = ops_reserve_cap_json(a, member, read ? &s : NULL);

	if (read)
		sample_free(&s);
	if (cap)
		json_object_set_new(status, "gpu_cap", cap);
}

int ops_gpu_status(struct agent *a, const struct member_record *rec, bool running, json_t *status)
{
	__do_free struct gpu_host *host = calloc(1, sizeof(*host));
	__do_free char *injected = NULL;
	char dir[PATH_MAX], path[PATH_MAX + 8];
	uint64_t mask = 0, held_back;
	json_t *gpus;
	size_t len;

	if (!host)
		return -ENOMEM;
	if (gpu_discover(a->cfg.gpu_root, 0, host) < 0 || !host->present) {
		json_object_set_new(status, "driver", json_null());
		json_object_set_new(status, "gpus", json_array());
		json_object_set_new(status, "gpu_note",
				    json_string(host->reason[0] ? host->reason : "no NVIDIA GPU on this server"));
		return 0;
	}
	ops_gpu_mask(a, host, rec->name, &mask);
	held_back = mask & reservations_hidden(a, rec->name);
	gpus = ops_gpu_list_json(host, mask & ~held_back);
	/* What other members hold reserved comes back when they end. */
	if (held_back)
		json_object_set_new(status, "gpus_reserved_by_others", ops_gpu_list_json(host, held_back));
	json_object_set_new(status, "reservations", reservations_json_of(a, rec->name));
	ops_gpu_status_cap(a, rec->name, status);
	/* A running container keeps the driver it started with. */
	if (running && ops_gpu_dir(a, rec->name, dir, sizeof(dir)) == 0 &&
	    snprintf(path, sizeof(path), "%s/driver", dir) < (int)sizeof(path) &&
	    fsutil_read_file(path, 64, &injected, &len) == 0 && injected[0]) {
		json_object_set_new(status, "driver", json_string(injected));
		if (strcmp(injected, host->version) != 0)
			json_object_set_new(status, "gpu_note",
					    json_sprintf("the host now runs driver %s; restart the container to use it",
							 host->version));
	} else {
		json_object_set_new(status, "driver", json_string(host->version));
	}
	json_object_set_new(status, "gpus", gpus);
	ops_gpu_nvml_status(a, running ? dir : NULL, status);
	return 0;
}

/* ---- operations ------------------------------------------------------------ */

/* The set to record for mask: the GPUs' UUIDs, which stay true when the
 * indices change (a GPU added or lost), or "none". */
void ops_gpu_set_from_mask(const struct gpu_host *host, uint64_t mask, char *set,
				  size_t len)
{
	size_t used = 0;

	set[0] = '\0';
	for (size_t i = 0; i < host->ngpus; i++) {
		if (!((mask >> i) & 1))
			continue;
		used += (size_t)snprintf(set + used, len - used, "%s%s", used ? " " : "",
					 host->gpus[i].uuid);
		if (used >= len)
			break;
	}
	if (!mask)
		snprintf(set, len, "none");
}

/* The member and the GPU an admin's gpu_attach or gpu_detach names; *host
 * is the server's GPUs. */
static int ops_gpu_change_args(struct op_context *ctx, bool attach, struct member_record *rec,
			       struct gpu_host **host, size_t *index, bool *force)
{
	static const char *const attach_args[] = { "member", "gpu", NULL };
	static const char *const detach_args[] = { "member", "gpu", "force", NULL };
	struct agent *a = ctx->a;
	__do_free struct gpu_host *found = NULL;
	const char *name, *selector;
	char err[256];
	int ret;

	if (ops_require_admin(ctx) < 0 || ops_check_args(ctx, attach ? attach_args : detach_args) < 0)
		return -1;
	if (proto_arg_string(ctx->args, "member", true, &name, err, sizeof(err)) < 0 ||
	    proto_arg_string(ctx->args, "gpu", true, &selector, err, sizeof(err)) < 0 ||
	    proto_arg_bool(ctx->args, "force", force, err, sizeof(err)) < 0 ||
	    validate_member_name(name, err, sizeof(err)) < 0)
		return ops_usage(ctx, err);
	ret = db_member_get(a->db, name, rec);
	if (ret == -ENOENT)
		return ops_fail(ctx, PROTO_E_NOTFOUND, "there is no member %s (see gpubox admin user ls)", name);
	if (ret < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "the agent's database failed; see the agent's log");
	found = calloc(1, sizeof(*found));
	if (!found)
		return ops_fail(ctx, PROTO_E_FAILED, "the agent ran out of memory");
	if (gpu_discover(a->cfg.gpu_root, 0, found) < 0 || !found->present)
		return ops_fail(ctx, PROTO_E_UNAVAILABLE, "%s",
				found->reason[0] ? found->reason : "no NVIDIA GPU on this server");
	ret = gpu_find(found, selector, index);
	if (ret == -EINVAL)
		return ops_usage(ctx, "a GPU is named by its index (see gpubox admin gpu ls) or its UUID");
	if (ret < 0)
		return ops_fail(ctx, PROTO_E_NOTFOUND, "there is no GPU %s on this server (see gpubox admin gpu ls)",
				selector);
	*host = move_ptr(found);
	return 0;
}

/* The member's set now (*old) and with GPU index added or taken away (*mask). */
static int ops_gpu_next_mask(struct op_context *ctx, const struct member_record *rec,
			     const struct gpu_host *host, size_t index, bool attach, uint64_t *mask,
			     uint64_t *old)
{
	*mask = 0;
	if (ops_gpu_mask(ctx->a, host, rec->name, mask) < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "the GPU set of %s is not valid; see the agent's log", rec->name);
	*old = *mask;
	if (attach)
		*mask |= (uint64_t)1 << index;
	else
		*mask &= ~((uint64_t)1 << index);
	return 0;
}

static int ops_gpu_record(struct agent *a, const struct member_record *rec,
			  const struct gpu_host *host, uint64_t mask)
{
	char set[OPS_GPU_SET_MAX];

	ops_gpu_set_from_mask(host, mask, set, sizeof(set));
	return db_gpu_set_put(a->db, rec->name, set);
}

int ops_gpu_live_rules(struct agent *a, const struct member_record *rec,
		       const struct gpu_host *host, size_t index, bool allow, pid_t pid)
{
	int ret = 0;

	for (size_t i = 0; i < host->nnodes && ret == 0; i++) {
		char rule[GPU_RULE_MAX];

		if (host->nodes[i].gpu == (int)index &&
		    gpu_node_rule(&host->nodes[i], rule, sizeof(rule)) == 0)
			ret = container_device_rule(a->lxcpath, rec->name, pid, rule, allow);
	}
	return ret;
}

int ops_gpu_live_nodes(const struct gpu_host *host, size_t index, bool add, pid_t pid)
{
	int ret = 0;

	for (size_t i = 0; i < host->nnodes && ret == 0; i++)
		if (host->nodes[i].gpu == (int)index)
			ret = gpu_live_node(pid, host->nodes[i].host, host->nodes[i].target, add);
	return ret;
}

void ops_gpu_cdi_refresh(struct agent *a, const struct member_record *rec,
			 const struct gpu_host *host, pid_t pid)
{
	__do_close int fd = -EBADF;
	char dir[PATH_MAX], layer[PATH_MAX], real[GPU_NAME_MAX] = "";
	uint64_t mask = 0;
	ssize_t n;
	int ret;

	if (ops_gpu_dir(a, rec->name, dir, sizeof(dir)) < 0 ||
	    snprintf(layer, sizeof(layer), "%s/layer", dir) >= (int)sizeof(layer))
		return;
	fd = open(layer, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;        /* started without a driver: no spec */
	for (size_t i = 0; i < host->ngpus && i < 64; i++)
		if (gpu_live_gpu_present(host, pid, i))
			mask |= (uint64_t)1 << i;
	/* The real libnvidia-ml, where the interposer stands in its place. */
	n = readlinkat(fd, GPU_NVML_REAL_DIR "/" GPU_NVML_REAL_LINK, real, sizeof(real) - 1);
	real[n > 0 ? n : 0] = '\0';
	ret = gpu_cdi_write(fd, host, mask, real, rec->subid_base);
	if (ret < 0)
		log_error_errno(ret, -ret, "cannot write the CDI spec of %s", rec->name);
}

/* The cgroup allows a node before it appears and refuses it only once it
 * is gone: a node in the container means its rule allows it. */
int ops_gpu_live(struct agent *a, const struct member_record *rec,
		 const struct gpu_host *host, size_t index, bool attach, pid_t pid)
{
	int ret;

	if (attach) {
		ret = ops_gpu_live_rules(a, rec, host, index, true, pid);
		if (ret == 0)
			ret = ops_gpu_live_nodes(host, index, true, pid);
	} else {
		ret = ops_gpu_live_nodes(host, index, false, pid);
		if (ret == 0)
			ret = ops_gpu_live_rules(a, rec, host, index, false, pid);
	}
	ops_gpu_cdi_refresh(a, rec, host, pid);
	return ret;
}

/* ---- detach: the GPU must be gone, not only its name ------------------------- */

/* The processes of the container holding GPU index; the request failed
 * when the search fails. */
static int ops_gpu_holders(struct op_context *ctx, const struct member_record *rec,
			   const struct gpu_host *host, size_t index, struct gpu_holders *holders)
{
	dev_t devs[GPU_NODES_MAX];
	size_t ndevs = gpu_holders_devices(host, index, devs, ARRAY_SIZE(devs));
	int ret;

	memset(holders, 0, sizeof(*holders));
	if (ndevs == 0)
		return 0;
	ret = gpu_holders_find(rec->name, devs, ndevs, holders);
	if (ret < 0)
		return ops_fail(ctx, PROTO_E_FAILED,
				"cannot tell which processes of %s hold GPU %zu, so it stays attached (see the agent's log)",
				rec->name, index);
	return 0;
}

/* The refusal of a detach without force: one sentence naming the holders. */
static int ops_gpu_refuse_held(struct op_context *ctx, const struct member_record *rec,
			       size_t index, const struct gpu_holders *holders)
{
	char who[GPU_HOLDERS_TEXT_MAX];

	gpu_holders_describe(holders, false, who, sizeof(who));
	return ops_fail(ctx, PROTO_E_CONFLICT,
			"GPU %zu is in use in the container of %s by %s; nothing was changed: stop %s, or detach with --force to end %s (SIGTERM, then SIGKILL after %d s)",
			index, rec->name, who, holders->n == 1 ? "it" : "them",
			holders->n == 1 ? "it" : "them", OPS_GPU_DETACH_GRACE_MS / 1000);
}

/* End the holders: SIGTERM, the grace period, SIGKILL; how many still run. */
static size_t ops_gpu_end_holders(struct op_context *ctx, const struct member_record *rec,
				  size_t index, struct gpu_holders *holders, bool polite)
{
	char who[GPU_HOLDERS_TEXT_MAX];
	size_t left = holders->n;

	gpu_holders_describe(holders, true, who, sizeof(who));
	if (polite) {
		progress_say(ctx->progress, "Ending what holds GPU %zu in the container of %s: %s (SIGTERM; SIGKILL after %d s)",
			     index, rec->name, who, OPS_GPU_DETACH_GRACE_MS / 1000);
		log_info("gpu detach: SIGTERM to the holders of GPU %zu in %s: %s", index, rec->name, who);
		gpu_holders_signal(holders, SIGTERM);
		left = gpu_holders_wait(holders, OPS_GPU_DETACH_GRACE_MS);
		if (left == 0)
			return 0;
		gpu_holders_describe(holders, true, who, sizeof(who));
	}
	progress_say(ctx->progress, "SIGKILL to what still holds GPU %zu: %s", index, who);
	log_info("gpu detach: SIGKILL to the holders of GPU %zu in %s: %s", index, rec->name, who);
	gpu_holders_signal(holders, SIGKILL);
	return gpu_holders_wait(holders, OPS_GPU_DETACH_KILL_WAIT_MS);
}

/* Add each holder to ended, as { "pid": inside the container, "command" }. */
static void ops_gpu_ended_json(const struct gpu_holders *holders, json_t *ended)
{
	for (size_t i = 0; i < holders->n && json_array_size(ended) < GPU_HOLDERS_MAX; i++)
		json_array_append_new(ended, json_pack("{s:i, s:s}", "pid", (int)holders->list[i].ns_pid,
						       "command", holders->list[i].command));
}

/*
 * Take GPU index out of the running container whose init is pid, and make
 * sure no process of it still holds the device.  Nothing is changed while
 * a process holds it, unless force.  The node and the cgroup rule go
 * first, so that nothing can open the GPU again; then what holds it is
 * looked for again (a process may have opened it since, or been handed
 * it): without force the GPU is given back and the detach refused; with
 * force the holders are ended, in rounds while new ones appear.
 */
static int ops_gpu_detach_live(struct op_context *ctx, const struct member_record *rec,
			       const struct gpu_host *host, size_t index, pid_t pid, bool force,
			       json_t *ended)
{
	struct gpu_holders holders;
	size_t left = 0;

	if (ops_gpu_holders(ctx, rec, host, index, &holders) < 0)
		return -ECANCELED;
	if (holders.n && !force) {
		ops_gpu_refuse_held(ctx, rec, index, &holders);
		gpu_holders_clear(&holders);
		return -ECANCELED;
	}
	gpu_holders_clear(&holders);
	if (ops_gpu_live(ctx->a, rec, host, index, false, pid) < 0)
		return ops_fail(ctx, PROTO_E_FAILED,
				"GPU %zu is recorded as detached from %s but the running container could not be changed; restart it (see the agent's log)",
				index, rec->name), -EIO;
	for (int round = 0; round < OPS_GPU_DETACH_ROUNDS; round++) {
		if (ops_gpu_holders(ctx, rec, host, index, &holders) < 0)
			return -EIO;
		if (holders.n == 0) {
			/* An empty search keeps a list of one all the same. */
			gpu_holders_clear(&holders);
			return 0;
		}
		if (!force) {
			int back = ops_gpu_live(ctx->a, rec, host, index, true, pid);

			ops_gpu_refuse_held(ctx, rec, index, &holders);
			gpu_holders_clear(&holders);
			return back < 0 ? -EIO : -ECANCELED;
		}
		left = ops_gpu_end_holders(ctx, rec, index, &holders, round == 0);
		ops_gpu_ended_json(&holders, ended);
		if (left) {
			char who[GPU_HOLDERS_TEXT_MAX];

			gpu_holders_describe(&holders, true, who, sizeof(who));
			gpu_holders_clear(&holders);
			return ops_fail(ctx, PROTO_E_FAILED,
					"GPU %zu is out of the container of %s, but %s did not end after SIGKILL and may still use it; stop the container",
					index, rec->name, who), -EIO;
		}
		gpu_holders_clear(&holders);
	}
	return ops_fail(ctx, PROTO_E_FAILED,
			"GPU %zu is out of the container of %s, but its processes kept taking it over; stop the container",
			index, rec->name), -EIO;
}

static int ops_gpu_change(struct op_context *ctx, json_t **result, bool attach)
{
	struct agent *a = ctx->a;
	__do_free struct gpu_host *host = NULL;
	__do_unlock_member struct member_lock lock = { 0 };
	__do_json json_t *ended = json_array();
	struct member_record rec;
	uint64_t mask = 0, old = 0;
	size_t index;
	bool running, force = false;
	pid_t pid = 0;
	int ret = 0;

	if (ops_gpu_change_args(ctx, attach, &rec, &host, &index, &force) < 0)
		return -1;
	/* No start reads the set while it changes. */
	lock = agent_lock_member(a, rec.name);
	if (ops_gpu_next_mask(ctx, &rec, host, index, attach, &mask, &old) < 0)
		return -1;
	running = container_get_state(a->lxcpath, rec.name) == CONTAINER_RUNNING &&
		  container_init_pid(a->lxcpath, rec.name, &pid) == 0;
	/* A detach refused leaves the set as it was; one that failed after
	 * the node went is recorded, so that a restart completes it. */
	if (!attach && running && mask != old) {
		ret = ops_gpu_detach_live(ctx, &rec, host, index, pid, force, ended);
		if (ret == -EIO)
			ops_gpu_record(a, &rec, host, mask);
		if (ret < 0)
			return -1;
	}
	if (ops_gpu_record(a, &rec, host, mask) < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "the agent's database failed; see the agent's log");
	/* A GPU another member has reserved comes when the reservation ends. */
	if (attach && running && mask != old) {
		ret = reservations_attach_live(a, &rec, host, index, pid);
		if (ret < 0)
			return ops_fail(ctx, PROTO_E_FAILED,
					"GPU %zu is recorded for %s but the running container could not be changed; restart it (see the agent's log)",
					index, rec.name);
		running = ret == 1;
	}
	*result = json_pack("{s:s, s:o, s:o, s:b, s:b}", "member", rec.name,
			    "gpu", ops_gpu_json(&host->gpus[index]), "gpus", ops_gpu_list_json(host, mask),
			    "changed", mask != old, "live", running);
	if (!attach)
		json_object_set(*result, "ended", ended);
	return 0;
}

static int op_gpu_attach(struct op_context *ctx, json_t **result)
{
	return ops_gpu_change(ctx, result, true);
}

static int op_gpu_detach(struct op_context *ctx, json_t **result)
{
	return ops_gpu_change(ctx, result, false);
}

static int op_gpu_ls(struct op_context *ctx, json_t **result)
{
	static const char *const allowed[] = { NULL };
	struct agent *a = ctx->a;
	__do_free struct gpu_host *host = NULL;
	__do_free struct member_record *members = NULL;
	size_t n = 0;
	json_t *gpus;

	if (ops_require_admin(ctx) < 0 || ops_check_args(ctx, allowed) < 0)
		return -1;
	host = calloc(1, sizeof(*host));
	if (!host)
		return ops_fail(ctx, PROTO_E_FAILED, "the agent ran out of memory");
	if (gpu_discover(a->cfg.gpu_root, ops_gpu_caps(a), host) < 0 || !host->present) {
		*result = json_pack("{s:n, s:[], s:s}", "driver", "gpus", "gpu_note",
				    host->reason[0] ? host->reason : "no NVIDIA GPU on this server");
		return 0;
	}
	if (db_member_list(a->db, &members, &n) < 0)
		return ops_fail(ctx, PROTO_E_FAILED, "the agent's database failed; see the agent's log");
	gpus = json_array();
	for (size_t i = 0; i < host->ngpus; i++) {
		json_t *g = ops_gpu_json(&host->gpus[i]);
		json_t *who = json_array();

		for (size_t m = 0; m < n; m++) {
			uint64_t mask = 0;

			if (ops_gpu_mask(a, host, members[m].name, &mask) == 0 && ((mask >> i) & 1))
				json_array_append_new(who, json_string(members[m].name));
		}
		json_object_set_new(g, "members", who);
		json_array_append_new(gpus, g);
	}
	*result = json_pack("{s:s, s:o, s:i}", "driver", host->version, "gpus", gpus,
			    "files", (int)host->nfiles);
	/* What a container started now gets; gpubox status tells each one's. */
	ops_gpu_nvml_status(a, NULL, *result);
	return 0;
}

const struct op_entry ops_gpu_table[] = {
	{ "gpu_attach", op_gpu_attach, OP_CHANGES,   "member gpu" },
	{ "gpu_detach", op_gpu_detach, OP_CHANGES,   "member gpu" },
	{ "gpu_ls",     op_gpu_ls,     OP_READ_ONLY, NULL },
	{ 0 },
};
