/* SPDX-License-Identifier: MIT */
/*
 * The container's GPUs as a Container Device Interface spec (kind
 * nvidia.com/gpu), for Podman inside it (nesting): NVIDIA's container
 * toolkit does not work in an unprivileged container, and is not needed
 * for what it would do there.  `podman run --device nvidia.com/gpu=all`
 * (or =0, or =GPU-<uuid>) gets the GPUs' nodes, the control nodes and the
 * driver's files, each bound from where the agent injected it into the
 * member's container.
 *
 * The spec is a file of the agent's GPU layer (etc/cdi/gpubox-nvidia.json),
 * written at each start and again whenever the container's GPUs change
 * while it runs (an admin's attach or detach, a reservation): a GPU the
 * container does not have is not named in it.  Libraries go where CUDA
 * images look for a driver (/usr/local/nvidia/lib64, their
 * LD_LIBRARY_PATH, set here for other images too), programs into /usr/bin.
 * Beside it, the same as Docker's options, for Docker 20.10, which has no
 * CDI.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "gpu/gpu.h"
#include "cleanup.h"
#include "fsutil.h"
#include "log.h"
#include "strutil.h"
#include "banned.h"

#define CDI_VERSION "0.5.0"
#define CDI_LIB_DIR "/usr/local/nvidia/lib64"
#define CDI_BIN_DIR "/usr/bin"

static int gpu_cdi_append(json_t *array, json_t *item)
{
	return item && json_array_append_new(array, item) == 0 ? 0 : -ENOMEM;
}

/* The nodes of GPU gpu (-1: those every container needs). */
static int gpu_cdi_nodes(const struct gpu_host *host, int gpu, json_t *nodes)
{
	char path[80];

	for (size_t i = 0; i < host->nnodes; i++) {
		if (host->nodes[i].gpu != gpu)
			continue;
		snprintf(path, sizeof(path), "/%s", host->nodes[i].target);
		if (gpu_cdi_append(nodes, json_pack("{s:s}", "path", path)) < 0)
			return -ENOMEM;
	}
	return 0;
}

static json_t *gpu_cdi_device(const char *name, json_t *nodes)
{
	return json_pack("{s:s, s:{s:o}}", "name", name, "containerEdits", "deviceNodes", nodes);
}

/* One device per GPU in mask, by index and by UUID, and "all". */
static int gpu_cdi_devices(const struct gpu_host *host, uint64_t mask, json_t *devices)
{
	json_t *all = json_array();

	if (!all)
		return -ENOMEM;
	for (size_t g = 0; g < host->ngpus && g < 64; g++) {
		__do_json json_t *nodes = json_array();
		char index[24];

		if (!((mask >> g) & 1))
			continue;
		if (!nodes || gpu_cdi_nodes(host, (int)g, nodes) < 0 || gpu_cdi_nodes(host, (int)g, all) < 0)
			goto fail;
		snprintf(index, sizeof(index), "%zu", g);
		if (gpu_cdi_append(devices, gpu_cdi_device(index, json_deep_copy(nodes))) < 0)
			goto fail;
		if (host->gpus[g].uuid[0] &&
		    gpu_cdi_append(devices, gpu_cdi_device(host->gpus[g].uuid, json_incref(nodes))) < 0)
			goto fail;
	}
	/* With no GPU, "all" still names the driver (an edit of its own). */
	if (json_array_size(all) == 0) {
		json_decref(all);
		return gpu_cdi_append(devices, json_pack("{s:s, s:{s:[s]}}", "name", "all",
							 "containerEdits", "env", "NVIDIA_VISIBLE_DEVICES=void"));
	}
	return gpu_cdi_append(devices, gpu_cdi_device("all", all));
fail:
	json_decref(all);
	return -ENOMEM;
}

static json_t *gpu_cdi_mount(const char *host_path, const char *dir, const char *name)
{
	char target[PATH_MAX];

	snprintf(target, sizeof(target), "%s/%s", dir, name);
	return json_pack("{s:s, s:s, s:[s,s,s,s]}", "hostPath", host_path, "containerPath", target,
			 "options", "ro", "nosuid", "nodev", "bind");
}

/* The driver's files where the member's container has them: a library
 * under its name and its soname; the real libnvidia-ml (nvml_real, when
 * the interposer stands in its place) from where the agent moved it: the
 * interposer's socket is not in a nested container. */
static int gpu_cdi_mounts(const struct gpu_host *host, const char *nvml_real, json_t *mounts)
{
	char src[PATH_MAX];

	for (size_t i = 0; i < host->nfiles; i++) {
		const struct gpu_file *f = &host->files[i];
		const char *dir = f->binary ? GPU_BIN_DIR : GPU_LIB_DIR;

		if (!f->binary && nvml_real && nvml_real[0] && strcmp(f->name, nvml_real) == 0)
			dir = GPU_NVML_REAL_DIR;
		snprintf(src, sizeof(src), "/%s/%s", dir, f->name);
		if (gpu_cdi_append(mounts, gpu_cdi_mount(src, f->binary ? CDI_BIN_DIR : CDI_LIB_DIR,
							  f->name)) < 0)
			return -ENOMEM;
		if (f->binary || !f->soname[0] || strcmp(f->soname, f->name) == 0)
			continue;
		if (gpu_cdi_append(mounts, gpu_cdi_mount(src, CDI_LIB_DIR, f->soname)) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* The spec as a JSON object; NULL when memory ran out. */
static json_t *gpu_cdi_spec(const struct gpu_host *host, uint64_t mask, const char *nvml_real)
{
	__do_json json_t *spec = NULL;
	json_t *devices = json_array(), *nodes = json_array(), *mounts = json_array();

	spec = json_pack("{s:s, s:s, s:o, s:{s:o, s:o, s:[s]}}", "cdiVersion", CDI_VERSION,
			 "kind", "nvidia.com/gpu", "devices", devices, "containerEdits",
			 "deviceNodes", nodes, "mounts", mounts,
			 "env", "LD_LIBRARY_PATH=/usr/local/nvidia/lib:" CDI_LIB_DIR);
	if (!spec || gpu_cdi_devices(host, mask, devices) < 0 || gpu_cdi_nodes(host, -1, nodes) < 0 ||
	    gpu_cdi_mounts(host, nvml_real, mounts) < 0)
		return NULL;
	return move_ptr(spec);
}

/* Each node path of edits as "--device=PATH" into f. */
static void gpu_cdi_docker_nodes(FILE *f, json_t *edits)
{
	size_t i;
	json_t *node;

	json_array_foreach(json_object_get(edits, "deviceNodes"), i, node)
		fprintf(f, "--device=%s\n", json_string_value(json_object_get(node, "path")));
}

/* Docker 20.10 (Debian 12's) knows no CDI: the same as the device "all",
 * as its options, one a line (none holds a blank):
 * docker run $(cat /etc/cdi/gpubox-nvidia.docker-args) IMAGE ... */
static char *gpu_cdi_docker_args(json_t *spec)
{
	json_t *edits = json_object_get(spec, "containerEdits"), *item;
	__do_free char *text = NULL;
	size_t size = 0, i;
	FILE *f = open_memstream(&text, &size);

	if (!f)
		return NULL;
	gpu_cdi_docker_nodes(f, edits);
	json_array_foreach(json_object_get(spec, "devices"), i, item)
		if (strcmp(json_string_value(json_object_get(item, "name")), "all") == 0)
			gpu_cdi_docker_nodes(f, json_object_get(item, "containerEdits"));
	json_array_foreach(json_object_get(edits, "mounts"), i, item)
		fprintf(f, "--volume=%s:%s:ro\n", json_string_value(json_object_get(item, "hostPath")),
			json_string_value(json_object_get(item, "containerPath")));
	json_array_foreach(json_object_get(edits, "env"), i, item)
		fprintf(f, "--env=%s\n", json_string_value(item));
	if (!memstream_close(f))
		return NULL;
	return move_ptr(text);
}

int gpu_cdi_render(const struct gpu_host *host, uint64_t mask, const char *nvml_real,
		   char **spec_text, char **docker_args)
{
	__do_json json_t *spec = gpu_cdi_spec(host, mask, nvml_real);
	__do_free char *text = NULL, *args = NULL;

	*spec_text = *docker_args = NULL;
	if (!spec)
		return -ENOMEM;
	text = json_dumps(spec, JSON_INDENT(2) | JSON_SORT_KEYS);
	args = gpu_cdi_docker_args(spec);
	if (!text || !args)
		return -ENOMEM;
	*spec_text = move_ptr(text);
	*docker_args = move_ptr(args);
	return 0;
}

/* text at rel below dirfd, owned by uid, 0644: rewritten in place, so
 * that the file stays the one a running container's overlay shows, and
 * its next reader sees the new text. */
static int gpu_cdi_put(int dirfd, const char *rel, const char *text, uid_t uid)
{
	__do_close int fd = -EBADF;

	fd = openat(dirfd, rel, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, 0) < 0 || fsutil_write_all(fd, text, strlen(text)) < 0 ||
	    fchown(fd, uid, uid) < 0 || fchmod(fd, 0644) < 0)
		return -errno;
	return 0;
}

int gpu_cdi_write(int layer_fd, const struct gpu_host *host, uint64_t mask, const char *nvml_real,
		  uid_t uid)
{
	__do_free char *text = NULL, *args = NULL;
	int ret = gpu_cdi_render(host, mask, nvml_real, &text, &args);

	if (ret == 0)
		ret = gpu_cdi_put(layer_fd, GPU_CDI_FILE, text, uid);
	return ret < 0 ? ret : gpu_cdi_put(layer_fd, GPU_CDI_DOCKER_FILE, args, uid);
}
