/* SPDX-License-Identifier: MIT */
/*
 * The host's NVIDIA driver, discovered at every start (never a fixed
 * layout), and its injection into a container.
 *
 * Discovery reads, below a root prefix (gpu_root; "" is the host itself):
 * /proc/driver/nvidia/version (the running driver's version),
 * /proc/driver/nvidia/gpus/<bus>/information (minor, UUID, model), the
 * device nodes under /dev, the driver's user-space libraries from
 * /etc/ld.so.cache (only files whose names end in the running version, so a
 * mismatch cannot happen), the utilities, and the persistenced socket.
 *
 * Injection never writes into the member's layer.  What the container must
 * see at new paths comes from a small per-member layer owned by the agent
 * (<state>/users/<m>/gpu/layer), stacked between the member's upper layer
 * and the template: empty files and directories as mount points, the soname
 * links, the ld.so.conf.d entry and an ld.so.cache made for the container.
 * The files themselves are bind mounts of the host's (ro, nosuid, nodev);
 * /proc/driver/nvidia is a copy with ModifyDeviceFiles: 0; device nodes are
 * bind mounts of the host's nodes into the container's own /dev (a tmpfs),
 * with matching device-cgroup rules.
 *
 * The cache is made by the host's (static) ldconfig, run in a child with a
 * private mount namespace: the container's merged tree made read-only, the
 * driver files bound onto their mount points, the output directory bound
 * onto the tree's /proc, chrooted, as the container's root.  Nothing from
 * the container is executed and nothing in it can be written.
 */
#include <ctype.h>
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/close_range.h>
#include <linux/magic.h>
#include <linux/mount.h>
#include <linux/openat2.h>

#include "container/container.h"
#include "gpu/gpu.h"
#include "gpu/ldcache.h"
#include "cleanup.h"
#include "fsutil.h"
#include "log.h"
#include "strutil.h"
#include "banned.h"

#define GPU_TEXT_MAX (64 * 1024)
#define GPU_LDCACHE_MAX (64 * 1024 * 1024)
#define GPU_PROC_DEPTH 5
#define GPU_PROC_FILES 512
#define GPU_LDCONFIG_TIMEOUT 60

static const struct {
	const char *prefix;        /* the file name up to ".so" */
	unsigned caps;
} gpu_libraries[] = {
	{ "libnvidia-ml", GPU_CAP_UTILITY },
	{ "libnvidia-cfg", GPU_CAP_UTILITY },
	{ "libcuda", GPU_CAP_COMPUTE },
	{ "libcudadebugger", GPU_CAP_COMPUTE },
	{ "libnvidia-opencl", GPU_CAP_COMPUTE },
	{ "libnvidia-ptxjitcompiler", GPU_CAP_COMPUTE },
	{ "libnvidia-fatbinaryloader", GPU_CAP_COMPUTE },
	{ "libnvidia-allocator", GPU_CAP_COMPUTE },
	{ "libnvidia-compiler", GPU_CAP_COMPUTE },
	{ "libnvidia-nvvm", GPU_CAP_COMPUTE },
	{ "libnvidia-gpucomp", GPU_CAP_COMPUTE },
	{ "libnvidia-pkcs11", GPU_CAP_COMPUTE },
	{ "libnvidia-pkcs11-openssl3", GPU_CAP_COMPUTE },
	{ "libvdpau_nvidia", GPU_CAP_VIDEO },
	{ "libnvidia-encode", GPU_CAP_VIDEO },
	{ "libnvidia-opticalflow", GPU_CAP_VIDEO },
	{ "libnvcuvid", GPU_CAP_VIDEO },
	{ "libnvidia-eglcore", GPU_CAP_GRAPHICS },
	{ "libnvidia-glcore", GPU_CAP_GRAPHICS },
	{ "libnvidia-tls", GPU_CAP_GRAPHICS },
	{ "libnvidia-glsi", GPU_CAP_GRAPHICS },
	{ "libnvidia-fbc", GPU_CAP_GRAPHICS },
	{ "libnvidia-ifr", GPU_CAP_GRAPHICS },
	{ "libnvidia-rtcore", GPU_CAP_GRAPHICS },
	{ "libnvoptix", GPU_CAP_GRAPHICS },
	{ "libnvidia-glvkspirv", GPU_CAP_GRAPHICS },
	{ "libGLX_nvidia", GPU_CAP_GRAPHICS },
	{ "libEGL_nvidia", GPU_CAP_GRAPHICS },
	{ "libGLESv2_nvidia", GPU_CAP_GRAPHICS },
	{ "libGLESv1_CM_nvidia", GPU_CAP_GRAPHICS },
};

static const struct {
	const char *name;
	unsigned caps;
} gpu_binaries[] = {
	{ "nvidia-smi", GPU_CAP_UTILITY },
	{ "nvidia-debugdump", GPU_CAP_UTILITY },
	{ "nvidia-cuda-mps-control", GPU_CAP_COMPUTE },
	{ "nvidia-cuda-mps-server", GPU_CAP_COMPUTE },
};

static const char *const gpu_bin_dirs[] = {
	"/usr/bin", "/usr/local/nvidia/bin", "/usr/local/bin", "/usr/sbin", "/bin",
};

static const char *const gpu_control_nodes[] = {
	"nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset",
};

/* The ld.so.cache flags of this machine's native libraries. */
#if defined(__x86_64__)
#define GPU_LDCACHE_NATIVE 0x0303
#elif defined(__aarch64__)
#define GPU_LDCACHE_NATIVE 0x0a03
#elif defined(__powerpc64__)
#define GPU_LDCACHE_NATIVE 0x0503
#else
#define GPU_LDCACHE_NATIVE 0
#endif

/* ---- parsing ------------------------------------------------------------- */

static bool gpu_is_version(const char *s, size_t len)
{
	bool dot = false;

	if (len == 0 || len >= GPU_VERSION_MAX || !isdigit((unsigned char)s[0]) ||
	    !isdigit((unsigned char)s[len - 1]))
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (s[i - 1] == '.')
				return false;
			dot = true;
		} else if (!isdigit((unsigned char)s[i])) {
			return false;
		}
	}
	return dot;
}

int gpu_parse_version(const char *text, char *out, size_t outlen)
{
	const char *line, *end, *p;

	if (!text || outlen < GPU_VERSION_MAX)
		return -EINVAL;
	line = strstr(text, "NVRM version:");
	if (!line)
		return -EINVAL;
	end = strchr(line, '\n');
	if (!end)
		end = line + strlen(line);
	/* The first word of digits and dots: "... Kernel Module  580.65.06  Sun Jul ..." */
	for (p = line + strlen("NVRM version:"); p < end;) {
		size_t len;

		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		len = 0;
		while (p + len < end && p[len] != ' ' && p[len] != '\t')
			len++;
		if (gpu_is_version(p, len)) {
			memcpy(out, p, len);
			out[len] = '\0';
			return 0;
		}
		p += len;
	}
	return -EINVAL;
}

/* The value of "Key:   value" in text, blanks trimmed, into out. */
static int gpu_field(const char *text, const char *key, char *out, size_t outlen)
{
	size_t keylen = strlen(key);

	for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		const char *v, *end;
		size_t len;

		if (strncmp(line, key, keylen) != 0 || line[keylen] != ':')
			continue;
		v = line + keylen + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		end = strchr(v, '\n');
		len = end ? (size_t)(end - v) : strlen(v);
		while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t' || v[len - 1] == '\r'))
			len--;
		if (len >= outlen)
			return -ENAMETOOLONG;
		memcpy(out, v, len);
		out[len] = '\0';
		return 0;
	}
	return -ENOENT;
}

static bool gpu_chars_ok(const char *s, const char *extra)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr(extra, *s))
			return false;
	return true;
}

int gpu_parse_information(const char *text, struct gpu_device *out)
{
	char minor[16];
	uint32_t n;

	if (!text)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (gpu_field(text, "Device Minor", minor, sizeof(minor)) < 0 || parse_uint32(minor, &n) < 0 ||
	    n > 254)
		return -EINVAL;
	out->minor = n;
	if (gpu_field(text, "GPU UUID", out->uuid, sizeof(out->uuid)) < 0 ||
	    !gpu_chars_ok(out->uuid, "-"))
		return -EINVAL;
	if (gpu_field(text, "Bus Location", out->bus_id, sizeof(out->bus_id)) < 0 ||
	    !gpu_chars_ok(out->bus_id, ":."))
		return -EINVAL;
	if (gpu_field(text, "Model", out->model, sizeof(out->model)) < 0)
		snprintf(out->model, sizeof(out->model), "NVIDIA GPU");
	for (char *c = out->model; *c; c++)
		if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
			*c = '?';
	return 0;
}

int gpu_parse_capabilities(const char *text, unsigned *caps, char *err, size_t errlen)
{
	static const struct { const char *name; unsigned cap; } names[] = {
		{ "utility", GPU_CAP_UTILITY }, { "compute", GPU_CAP_COMPUTE },
		{ "video", GPU_CAP_VIDEO }, { "graphics", GPU_CAP_GRAPHICS },
		{ "all", GPU_CAP_ALL },
	};
	unsigned out = 0;
	const char *p = text;

	while (p && *p) {
		size_t len;
		bool found = false;

		p += strspn(p, " \t,");
		len = strcspn(p, " \t,");
		if (len == 0)
			break;
		for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
			if (strlen(names[i].name) == len && strncmp(p, names[i].name, len) == 0) {
				out |= names[i].cap;
				found = true;
			}
		}
		if (!found) {
			set_error(err, errlen, "unknown GPU capability \"%.*s\" (utility, compute, video, graphics or all)",
				 (int)(len > 32 ? 32 : len), p);
			return -EINVAL;
		}
		p += len;
	}
	*caps = out;
	return 0;
}

/* One selector: an index among the host's GPUs or a UUID.  -ENOENT: no such GPU. */
int gpu_find(const struct gpu_host *host, const char *selector, size_t *index)
{
	uint32_t n;

	if (parse_uint32(selector, &n) == 0) {
		if (n >= host->ngpus)
			return -ENOENT;
		*index = n;
		return 0;
	}
	if (!gpu_chars_ok(selector, "-") || strlen(selector) >= GPU_UUID_MAX)
		return -EINVAL;
	for (size_t i = 0; i < host->ngpus; i++) {
		if (strcasecmp(host->gpus[i].uuid, selector) == 0) {
			*index = i;
			return 0;
		}
	}
	return -ENOENT;
}

int gpu_select(const struct gpu_host *host, const char *set, uint64_t *mask, char *err,
	       size_t errlen)
{
	const char *p = set;
	uint64_t out = 0;

	if (!set)
		return -EINVAL;
	p += strspn(p, " \t,");
	if (strcmp(p, "all") == 0 || (strncmp(p, "all", 3) == 0 && strspn(p + 3, " \t,") == strlen(p + 3))) {
		*mask = host->ngpus >= 64 ? UINT64_MAX : ((uint64_t)1 << host->ngpus) - 1;
		return 0;
	}
	while (*p) {
		char word[GPU_UUID_MAX];
		size_t len = strcspn(p, " \t,"), index;
		int ret;

		if (len >= sizeof(word)) {
			set_error(err, errlen, "a GPU is named by its index or its UUID; \"%.32s...\" is neither", p);
			return -EINVAL;
		}
		memcpy(word, p, len);
		word[len] = '\0';
		p += len;
		p += strspn(p, " \t,");
		if (strcmp(word, "none") == 0)
			continue;
		ret = gpu_find(host, word, &index);
		if (ret == -EINVAL) {
			set_error(err, errlen, "a GPU is named by its index or its UUID; \"%s\" is neither", word);
			return -EINVAL;
		}
		/* A GPU that left the server (or a set written for another one) is skipped. */
		if (ret == -ENOENT) {
			log_warn("GPU %s is not on this server; it is left out", word);
			continue;
		}
		out |= (uint64_t)1 << index;
	}
	*mask = out;
	return 0;
}

/* ---- discovery ------------------------------------------------------------ */

static int gpu_join(char *buf, size_t len, const char *root, const char *path)
{
	int n = snprintf(buf, len, "%s%s", root, path);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int gpu_read_text(const char *root, const char *path, char **text)
{
	char full[PATH_MAX];
	size_t len;
	int ret = gpu_join(full, sizeof(full), root, path);

	if (ret < 0)
		return ret;
	return fsutil_read_file(full, GPU_TEXT_MAX, text, &len);
}

static int gpu_compare_bus(const void *a, const void *b)
{
	return strcmp(((const struct gpu_device *)a)->bus_id, ((const struct gpu_device *)b)->bus_id);
}

static int gpu_discover_gpus(const char *root, struct gpu_host *host)
{
	__do_closedir DIR *d = NULL;
	char dir[PATH_MAX];
	struct dirent *e;
	int ret = gpu_join(dir, sizeof(dir), root, "/proc/driver/nvidia/gpus");

	if (ret < 0)
		return ret;
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((e = readdir(d))) {
		__do_free char *text = NULL;
		char rel[PATH_MAX];
		struct gpu_device dev;

		if (e->d_name[0] == '.' || host->ngpus == GPU_MAX)
			continue;
		if (snprintf(rel, sizeof(rel), "/proc/driver/nvidia/gpus/%s/information", e->d_name) >=
		    (int)sizeof(rel))
			continue;
		if (gpu_read_text(root, rel, &text) < 0 || gpu_parse_information(text, &dev) < 0) {
			log_warn("cannot read the information of GPU %s; it is left out", e->d_name);
			continue;
		}
		host->gpus[host->ngpus++] = dev;
	}
	/* nvidia-smi numbers GPUs in PCI bus order. */
	qsort(host->gpus, host->ngpus, sizeof(host->gpus[0]), gpu_compare_bus);
	for (size_t i = 0; i < host->ngpus; i++)
		host->gpus[i].index = (unsigned)i;
	return 0;
}

/* A character device below root at rel ("/dev/nvidiactl"), or -ENOENT. */
static int gpu_add_node(const char *root, const char *rel, int gpu, struct gpu_host *host)
{
	struct gpu_node *node;
	struct stat st;
	char full[PATH_MAX];
	int ret = gpu_join(full, sizeof(full), root, rel);

	if (ret < 0)
		return ret;
	if (lstat(full, &st) < 0)
		return -errno;
	if (!S_ISCHR(st.st_mode))
		return log_warn_errno(-EINVAL, 0, "%s is not a character device; it is left out", full);
	if (host->nnodes == GPU_NODES_MAX)
		return -ENOSPC;
	node = &host->nodes[host->nnodes++];
	snprintf(node->host, sizeof(node->host), "%s", full);
	snprintf(node->target, sizeof(node->target), "%s", rel + 1);
	node->major = major(st.st_rdev);
	node->minor = minor(st.st_rdev);
	node->gpu = gpu;
	return 0;
}

/* MIG: the capability nodes (/dev/nvidia-caps/nvidia-cap<N>) that the GPU
 * instances of GPU minor grant, from proc's capabilities/gpu<minor>/mig. */
static void gpu_add_mig_caps(const char *root, const char *rel, int depth, int gpu,
			     struct gpu_host *host)
{
	__do_closedir DIR *d = NULL;
	char dir[PATH_MAX];
	struct dirent *e;

	if (depth > 3 || gpu_join(dir, sizeof(dir), root, rel) < 0)
		return;
	d = opendir(dir);
	if (!d)
		return;
	while ((e = readdir(d))) {
		char sub[PATH_MAX], minor[16];
		__do_free char *text = NULL;
		uint32_t n;

		if (e->d_name[0] == '.' ||
		    snprintf(sub, sizeof(sub), "%s/%s", rel, e->d_name) >= (int)sizeof(sub))
			continue;
		if (strcmp(e->d_name, "access") != 0) {
			gpu_add_mig_caps(root, sub, depth + 1, gpu, host);
			continue;
		}
		if (gpu_read_text(root, sub, &text) < 0 ||
		    gpu_field(text, "DeviceFileMinor", minor, sizeof(minor)) < 0 ||
		    parse_uint32(minor, &n) < 0 ||
		    snprintf(sub, sizeof(sub), "/dev/nvidia-caps/nvidia-cap%u", n) >= (int)sizeof(sub))
			continue;
		gpu_add_node(root, sub, gpu, host);
	}
}

static int gpu_discover_nodes(const char *root, struct gpu_host *host)
{
	char rel[64];

	for (size_t i = 0; i < ARRAY_SIZE(gpu_control_nodes); i++) {
		int ret;

		snprintf(rel, sizeof(rel), "/dev/%s", gpu_control_nodes[i]);
		ret = gpu_add_node(root, rel, -1, host);
		if (ret == -ENOENT && strcmp(gpu_control_nodes[i], "nvidiactl") == 0)
			return log_warn_errno(-ENODEV, 0, "%s%s is missing", root, rel);
	}
	for (size_t i = 0; i < host->ngpus; i++) {
		snprintf(rel, sizeof(rel), "/dev/nvidia%u", host->gpus[i].minor);
		if (gpu_add_node(root, rel, (int)i, host) < 0)
			log_warn("GPU %s has no device node %s%s", host->gpus[i].bus_id, root, rel);
		snprintf(rel, sizeof(rel), "/proc/driver/nvidia/capabilities/gpu%u/mig", host->gpus[i].minor);
		gpu_add_mig_caps(root, rel, 0, (int)i, host);
	}
	return 0;
}

/* The host path of a file below root, symbolic links resolved inside root. */
static int gpu_resolve(int rootfd, const char *path, char *out, size_t outlen, struct stat *st)
{
	struct open_how how = { .flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
	__do_close int fd = -EBADF;
	char proc[64];
	ssize_t n;

	fd = (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0)
		return -errno;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	n = readlink(proc, out, outlen - 1);
	if (n < 0)
		return -errno;
	if ((size_t)n >= outlen - 1)
		return -ENAMETOOLONG;
	out[n] = '\0';
	return 0;
}

static const char *gpu_basename(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

/* Which capability a library's file name belongs to, if it ends in the
 * running version: 0 when it is no driver file of this version. */
unsigned gpu_library_caps(const char *name, const char *version)
{
	size_t len = strlen(name), vlen = strlen(version);

	if (len < vlen + 2 || name[len - vlen - 1] != '.' || strcmp(name + len - vlen, version) != 0)
		return 0;
	for (size_t i = 0; i < ARRAY_SIZE(gpu_libraries); i++) {
		size_t plen = strlen(gpu_libraries[i].prefix);

		if (strncmp(name, gpu_libraries[i].prefix, plen) == 0 &&
		    strncmp(name + plen, ".so.", 4) == 0)
			return gpu_libraries[i].caps;
	}
	return 0;
}

struct gpu_scan {
	struct gpu_host *host;
	int rootfd;
	unsigned caps;
};

static bool gpu_name_ok(const char *name)
{
	return strlen(name) < GPU_NAME_MAX && name[0] != '.' && gpu_chars_ok(name, "._+-");
}

static int gpu_scan_entry(const struct ldcache_entry *e, void *data)
{
	struct gpu_scan *scan = data;
	struct gpu_host *host = scan->host;
	struct gpu_file *f;
	char real[PATH_MAX];
	const char *name;
	struct stat st;
	unsigned caps;

	if (GPU_LDCACHE_NATIVE && e->flags != GPU_LDCACHE_NATIVE)
		return 0;
	if (e->value[0] != '/' || gpu_resolve(scan->rootfd, e->value, real, sizeof(real), &st) < 0 ||
	    !S_ISREG(st.st_mode))
		return 0;
	name = gpu_basename(real);
	caps = gpu_library_caps(name, host->version);
	if (!(caps & scan->caps) || !gpu_name_ok(name) || !gpu_name_ok(e->key))
		return 0;
	for (size_t i = 0; i < host->nfiles; i++)
		if (strcmp(gpu_basename(host->files[i].host), name) == 0)
			return 0;   /* the same file under another soname, or a second copy */
	if (host->nfiles == GPU_FILES_MAX)
		return 0;
	f = &host->files[host->nfiles];
	if (snprintf(f->host, sizeof(f->host), "%s", real) >= (int)sizeof(f->host) ||
	    snprintf(f->name, sizeof(f->name), "%s", name) >= (int)sizeof(f->name) ||
	    snprintf(f->soname, sizeof(f->soname), "%s", e->key) >= (int)sizeof(f->soname))
		return 0;
	host->nfiles++;
	f->caps = caps;
	f->binary = false;
	return 0;
}

static int gpu_discover_libraries(const char *root, unsigned caps, struct gpu_host *host)
{
	__do_free char *cache = NULL;
	__do_close int rootfd = -EBADF;
	struct gpu_scan scan = { .host = host, .caps = caps };
	char path[PATH_MAX];
	size_t len;
	int ret;

	ret = gpu_join(path, sizeof(path), root, "/etc/ld.so.cache");
	if (ret < 0)
		return ret;
	ret = fsutil_read_file(path, GPU_LDCACHE_MAX, &cache, &len);
	if (ret < 0)
		return log_warn_errno(ret, -ret, "cannot read the host's loader cache %s", path);
	rootfd = open(root[0] ? root : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return -errno;
	scan.rootfd = rootfd;
	ret = ldcache_parse(cache, len, gpu_scan_entry, &scan);
	if (ret < 0)
		return log_warn_errno(ret, -ret, "the host's loader cache %s cannot be read", path);
	return 0;
}

static void gpu_discover_binaries(const char *root, unsigned caps, struct gpu_host *host)
{
	__do_close int rootfd = open(root[0] ? root : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	char dirs[ARRAY_SIZE(gpu_bin_dirs) + 8][PATH_MAX];
	size_t ndirs = 0;

	if (rootfd < 0)
		return;
	/* The driver's own bin directory next to its library directory
	 * (/usr/local/nvidia/lib64 -> /usr/local/nvidia/bin) comes first. */
	for (size_t i = 0; i < host->nfiles && ndirs < 8; i++) {
		const char *rel = host->files[i].host + strlen(root);
		const char *slash = strrchr(rel, '/');
		char dir[PATH_MAX];
		bool seen = false;

		if (!slash || slash == rel)
			continue;
		snprintf(dir, sizeof(dir), "%.*s/../bin", (int)(slash - rel), rel);
		for (size_t j = 0; j < ndirs; j++)
			seen |= strcmp(dirs[j], dir) == 0;
		if (!seen)
			snprintf(dirs[ndirs++], PATH_MAX, "%s", dir);
	}
	for (size_t i = 0; i < ARRAY_SIZE(gpu_bin_dirs); i++)
		snprintf(dirs[ndirs++], PATH_MAX, "%s", gpu_bin_dirs[i]);

	for (size_t b = 0; b < ARRAY_SIZE(gpu_binaries); b++) {
		if (!(gpu_binaries[b].caps & caps))
			continue;
		for (size_t d = 0; d < ndirs; d++) {
			char rel[PATH_MAX], real[PATH_MAX];
			struct gpu_file *f;
			struct stat st;

			if (snprintf(rel, sizeof(rel), "%s/%s", dirs[d], gpu_binaries[b].name) >= (int)sizeof(rel) ||
			    gpu_resolve(rootfd, rel, real, sizeof(real), &st) < 0 || !S_ISREG(st.st_mode) ||
			    !(st.st_mode & 0111) || host->nfiles == GPU_FILES_MAX)
				continue;
			f = &host->files[host->nfiles++];
			snprintf(f->host, sizeof(f->host), "%s", real);
			snprintf(f->name, sizeof(f->name), "%s", gpu_binaries[b].name);
			f->soname[0] = '\0';
			f->caps = gpu_binaries[b].caps;
			f->binary = true;
			break;
		}
	}
}

int gpu_discover(const char *root, unsigned caps, struct gpu_host *host)
{
	__do_free char *version = NULL;
	char path[PATH_MAX];
	struct stat st;
	int ret;

	memset(host, 0, sizeof(*host));
	if (!root)
		root = "";
	if (strlen(root) >= sizeof(host->root) || (root[0] && root[0] != '/'))
		return -EINVAL;
	snprintf(host->root, sizeof(host->root), "%s", strcmp(root, "/") == 0 ? "" : root);
	root = host->root;

	ret = gpu_read_text(root, "/proc/driver/nvidia/version", &version);
	if (ret < 0) {
		snprintf(host->reason, sizeof(host->reason), "no NVIDIA GPU on this server");
		return 0;
	}
	if (gpu_parse_version(version, host->version, sizeof(host->version)) < 0) {
		snprintf(host->reason, sizeof(host->reason),
			 "the NVIDIA driver's version cannot be read from /proc/driver/nvidia/version");
		return 0;
	}
	ret = gpu_discover_gpus(root, host);
	if (ret < 0 || host->ngpus == 0) {
		snprintf(host->reason, sizeof(host->reason), "no NVIDIA GPU on this server");
		return 0;
	}
	if (gpu_discover_nodes(root, host) < 0) {
		snprintf(host->reason, sizeof(host->reason),
			 "the NVIDIA driver %s is loaded but its device nodes are missing", host->version);
		return 0;
	}
	/* caps 0: the GPUs only (status, attach), no file lookup. */
	if (caps) {
		gpu_discover_libraries(root, caps, host);
		gpu_discover_binaries(root, caps, host);
	}
	if (gpu_join(path, sizeof(path), root, "/run/nvidia-persistenced/socket") == 0 &&
	    stat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		snprintf(host->persistenced_socket, sizeof(host->persistenced_socket), "%s", path);
	host->present = true;
	return 0;
}

/* ---- the container's view ----------------------------------------------- */

bool gpu_cgroup_v1(void)
{
	struct statfs sf;

	return !(statfs("/sys/fs/cgroup", &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC);
}

static int gpu_plan_mount(struct gpu_plan *plan, const char *source, const char *target,
			  const char *fstype, const char *options)
{
	struct gpu_plan_mount *m;

	if (plan->nmounts == GPU_PLAN_MOUNTS)
		return log_error_errno(-ENOSPC, 0, "too many GPU files to inject");
	m = &plan->mount_text[plan->nmounts];
	if (snprintf(m->source, sizeof(m->source), "%s", source) >= (int)sizeof(m->source) ||
	    snprintf(m->target, sizeof(m->target), "%s", target) >= (int)sizeof(m->target) ||
	    snprintf(m->options, sizeof(m->options), "%s", options) >= (int)sizeof(m->options))
		return -ENAMETOOLONG;
	plan->mounts[plan->nmounts] = (struct container_mount){
		.source = m->source, .target = m->target, .options = m->options, .fstype = fstype };
	plan->nmounts++;
	return 0;
}

int gpu_node_rule(const struct gpu_node *node, char *buf, size_t len)
{
	int n = snprintf(buf, len, "c %u:%u rwm", node->major, node->minor);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static bool gpu_node_wanted(const struct gpu_node *node, uint64_t mask)
{
	return node->gpu < 0 || (node->gpu < 64 && (mask >> node->gpu) & 1);
}

/* The host's driver libraries and binaries, bound read-only. */
static int gpu_plan_files(const struct gpu_host *host, struct gpu_plan *plan)
{
	char target[PATH_MAX];

	for (size_t i = 0; i < host->nfiles; i++) {
		const struct gpu_file *f = &host->files[i];
		int ret;

		snprintf(target, sizeof(target), "%s/%s", f->binary ? GPU_BIN_DIR : GPU_LIB_DIR, f->name);
		ret = gpu_plan_mount(plan, f->host, target, NULL, "bind,ro,nosuid,nodev");
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* One device node the container gets, and its device rule. */
static int gpu_plan_node(const struct gpu_node *node, struct gpu_plan *plan)
{
	int ret;

	/* LXC's mounts are locked in the container's namespace: a GPU's
	 * node could never be taken away again.  The agent binds those
	 * itself once the container runs (gpu_start_nodes()). */
	if (node->gpu >= 0) {
		snprintf(plan->late[plan->nlate].host, PATH_MAX, "%s", node->host);
		snprintf(plan->late[plan->nlate].target, sizeof(plan->late[0].target), "%s",
			 node->target);
		plan->nlate++;
		ret = 0;
	} else {
		ret = gpu_plan_mount(plan, node->host, node->target, NULL,
				     "bind,nosuid,noexec,create=file");
	}
	if (ret == 0 && plan->ndevices < GPU_NODES_MAX)
		ret = gpu_node_rule(node, plan->device_text[plan->ndevices++], GPU_RULE_MAX);
	return ret;
}

/* The nodes of the GPUs in mask and those every GPU needs; the device
 * rules as the NULL-terminated list LXC takes. */
static int gpu_plan_nodes(const struct gpu_host *host, uint64_t mask, struct gpu_plan *plan)
{
	for (size_t i = 0; i < host->nnodes; i++) {
		int ret;

		if (!gpu_node_wanted(&host->nodes[i], mask))
			continue;
		ret = gpu_plan_node(&host->nodes[i], plan);
		if (ret < 0)
			return ret;
	}
	for (size_t i = 0; i < plan->ndevices; i++)
		plan->devices[i] = plan->device_text[i];
	plan->devices[plan->ndevices] = NULL;
	return 0;
}

/* The agent's copy of /proc/driver/nvidia (in dir/proc). */
static int gpu_plan_proc(const char *dir, bool proc_exists, struct gpu_plan *plan)
{
	char source[PATH_MAX];
	int ret;

	/* /proc/driver/nvidia is there when the host runs the driver; a tree
	 * faked by gpu_root needs a mount point made in a tmpfs first. */
	snprintf(source, sizeof(source), "%s/proc", dir);
	if (!proc_exists) {
		ret = gpu_plan_mount(plan, "tmpfs", "proc/driver", "tmpfs",
				     "nosuid,nodev,noexec,mode=755,size=64k");
		if (ret < 0)
			return ret;
	}
	return gpu_plan_mount(plan, source, "proc/driver/nvidia", NULL,
			      proc_exists ? "bind,ro,nosuid,nodev,noexec" : "bind,ro,nosuid,nodev,noexec,create=dir");
}

/* nvidia-persistenced's socket, when the host runs it. */
static int gpu_plan_persistenced(const struct gpu_host *host, struct gpu_plan *plan)
{
	int ret;

	if (!host->persistenced_socket[0])
		return 0;
	/* systemd keeps a /run that is already a mount point; its own
	 * tmpfs would hide the socket. */
	ret = gpu_plan_mount(plan, "tmpfs", "run", "tmpfs", "nosuid,nodev,mode=755");
	if (ret < 0)
		return ret;
	return gpu_plan_mount(plan, host->persistenced_socket, "run/nvidia-persistenced/socket",
			      NULL, "bind,nosuid,nodev,noexec,create=file");
}

/* Where a driver file goes in the container, relative to its root. */
static int gpu_file_rel(const struct gpu_plan *plan, const struct gpu_file *f, char *rel, size_t len)
{
	const char *dir = f->binary ? GPU_BIN_DIR : GPU_LIB_DIR;
	int n;

	if (!f->binary && plan->nvml_interposer[0] && strcmp(f->name, plan->nvml_real) == 0)
		dir = GPU_NVML_REAL_DIR;
	n = snprintf(rel, len, "%s/%s", dir, f->name);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int gpu_plan_nvml(const struct gpu_host *host, struct gpu_plan *plan, const char *interposer)
{
	const struct gpu_file *nvml = NULL;
	char old[PATH_MAX];

	for (size_t i = 0; i < host->nfiles && !nvml; i++)
		if (!host->files[i].binary && strcmp(host->files[i].soname, GPU_NVML_SONAME) == 0)
			nvml = &host->files[i];
	if (!nvml || !interposer || !interposer[0])
		return -ENOENT;
	if (gpu_file_rel(plan, nvml, old, sizeof(old)) < 0 ||
	    snprintf(plan->nvml_interposer, sizeof(plan->nvml_interposer), "%s", interposer) >=
		    (int)sizeof(plan->nvml_interposer))
		return -ENAMETOOLONG;
	snprintf(plan->nvml_real, sizeof(plan->nvml_real), "%s", nvml->name);
	for (size_t i = 0; i < plan->nmounts; i++) {
		struct gpu_plan_mount *m = &plan->mount_text[i];

		if (strcmp(m->target, old) == 0)
			gpu_file_rel(plan, nvml, m->target, sizeof(m->target));
	}
	return gpu_plan_mount(plan, interposer, GPU_LIB_DIR "/" GPU_NVML_INTERPOSER, NULL,
			      "bind,ro,nosuid,nodev");
}

int gpu_plan_build(const struct gpu_host *host, uint64_t mask, const char *dir,
		   bool proc_exists, struct gpu_plan *plan)
{
	int ret;

	memset(plan, 0, sizeof(*plan));
	if (!host->present)
		return 0;
	if (snprintf(plan->dir, sizeof(plan->dir), "%s", dir) >= (int)sizeof(plan->dir) ||
	    snprintf(plan->layer, sizeof(plan->layer), "%s/layer", dir) >= (int)sizeof(plan->layer))
		return -ENAMETOOLONG;
	plan->mask = mask;
	snprintf(plan->version, sizeof(plan->version), "%s", host->version);

	ret = gpu_plan_files(host, plan);
	if (ret == 0)
		ret = gpu_plan_nodes(host, mask, plan);
	if (ret == 0)
		ret = gpu_plan_proc(dir, proc_exists, plan);
	if (ret == 0)
		ret = gpu_plan_persistenced(host, plan);
	return ret;
}

/* ---- the agent-owned files of a start ----------------------------------- */

static int gpu_mkdirs(int dirfd, const char *rel, uid_t uid)
{
	char path[PATH_MAX];

	if (snprintf(path, sizeof(path), "%s", rel) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	for (char *p = path;; p++) {
		bool last = *p == '\0';

		if (*p != '/' && !last)
			continue;
		*p = '\0';
		if (mkdirat(dirfd, path, 0755) < 0 && errno != EEXIST)
			return -errno;
		if (fchownat(dirfd, path, uid, uid, AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
		if (last)
			return 0;
		*p = '/';
	}
}

static int gpu_write_at(int dirfd, const char *rel, const void *data, size_t len, mode_t mode, uid_t uid)
{
	__do_close int fd = openat(dirfd, rel, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);

	if (fd < 0)
		return -errno;
	if (fsutil_write_all(fd, data, len) < 0 || fchown(fd, uid, uid) < 0 || fchmod(fd, mode) < 0)
		return -errno;
	return 0;
}

/* Copy the host's /proc/driver/nvidia (text files) to dst, with
 * ModifyDeviceFiles: 0 in params: nothing in the container may try to
 * create device nodes. */
static int gpu_copy_proc(const char *src, int dstfd, int depth, size_t *count)
{
	__do_closedir DIR *d = NULL;
	struct dirent *e;

	if (depth > GPU_PROC_DEPTH)
		return 0;
	d = opendir(src);
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		char path[PATH_MAX];
		struct stat st;

		if (e->d_name[0] == '.' || ++*count > GPU_PROC_FILES ||
		    snprintf(path, sizeof(path), "%s/%s", src, e->d_name) >= (int)sizeof(path) ||
		    lstat(path, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			__do_close int sub = -EBADF;

			if (mkdirat(dstfd, e->d_name, 0555) < 0 && errno != EEXIST)
				return -errno;
			sub = openat(dstfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0)
				return -errno;
			if (fchmod(sub, 0755) < 0)
				return -errno;
			gpu_copy_proc(path, sub, depth + 1, count);
			fchmod(sub, 0555);
		} else if (S_ISREG(st.st_mode)) {
			__do_free char *text = NULL;
			size_t len = 0;

			if (fsutil_read_file(path, GPU_TEXT_MAX, &text, &len) < 0)
				continue;
			if (strcmp(e->d_name, "params") == 0) {
				char *m = strstr(text, "ModifyDeviceFiles: ");

				if (m)
					m[strlen("ModifyDeviceFiles: ")] = '0';
				else if (len + 24 < GPU_TEXT_MAX) {
					__do_free char *more = NULL;

					if (asprintf(&more, "%sModifyDeviceFiles: 0\n", text) < 0)
						return -ENOMEM;
					free(text);
					text = move_ptr(more);
					len = strlen(text);
				}
			}
			if (gpu_write_at(dstfd, e->d_name, text, len, 0444, 0) < 0)
				return -errno;
		}
	}
	return 0;
}

static int gpu_make_proc(const struct gpu_host *host, const char *dir)
{
	__do_close int fd = -EBADF;
	char dst[PATH_MAX], src[PATH_MAX];
	size_t count = 0;
	int ret;

	if (snprintf(dst, sizeof(dst), "%s/proc", dir) >= (int)sizeof(dst) ||
	    gpu_join(src, sizeof(src), host->root, "/proc/driver/nvidia") < 0)
		return -ENAMETOOLONG;
	ret = fsutil_remove_tree(dst);
	if (ret < 0)
		return ret;
	if (mkdir(dst, 0755) < 0)
		return -errno;
	fd = open(dst, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = gpu_copy_proc(src, fd, 0, &count);
	if (ret == 0) {
		char params[PATH_MAX];

		/* A driver without a params file still says it. */
		if (snprintf(params, sizeof(params), "%s/params", src) < (int)sizeof(params) &&
		    !fsutil_exists(params))
			ret = gpu_write_at(fd, "params", "ModifyDeviceFiles: 0\n", 21, 0444, 0);
	}
	return ret;
}

static int gpu_link_at(int dirfd, const char *target, const char *rel, uid_t uid)
{
	if (symlinkat(target, dirfd, rel) < 0 && errno != EEXIST)
		return -errno;
	if (fchownat(dirfd, rel, uid, uid, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return 0;
}

/* The interposer's part of the layer: its mount point, libnvidia-ml.so.1
 * naming it, and the fixed name of its dependency naming the real file
 * (whose mount point gpu_make_layer() made in GPU_NVML_REAL_DIR). */
static int gpu_make_nvml_layer(int fd, const struct gpu_plan *plan, uid_t uid)
{
	char rel[PATH_MAX];
	int ret;

	ret = gpu_write_at(fd, GPU_LIB_DIR "/" GPU_NVML_INTERPOSER, "", 0, 0644, uid);
	if (ret == 0)
		ret = gpu_link_at(fd, GPU_NVML_INTERPOSER, GPU_LIB_DIR "/" GPU_NVML_SONAME, uid);
	if (ret < 0)
		return ret;
	snprintf(rel, sizeof(rel), "%s/%s", GPU_NVML_REAL_DIR, GPU_NVML_REAL_LINK);
	return gpu_link_at(fd, plan->nvml_real, rel, uid);
}

/* The layer: mount points, soname links, the loader's configuration. */
static int gpu_make_layer(const struct gpu_host *host, const struct gpu_plan *plan, uid_t uid)
{
	__do_close int fd = -EBADF;
	static const char conf[] = "# Written by gpuboxd: the host's NVIDIA driver, mounted at each start.\n"
				   "/" GPU_LIB_DIR "\n";
	int ret;

	ret = fsutil_remove_tree(plan->layer);
	if (ret < 0)
		return ret;
	if (mkdir(plan->layer, 0755) < 0)
		return -errno;
	fd = open(plan->layer, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fchown(fd, uid, uid) < 0)
		return -errno;
	ret = gpu_mkdirs(fd, GPU_LIB_DIR, uid);
	if (ret == 0)
		ret = gpu_mkdirs(fd, GPU_BIN_DIR, uid);
	if (ret == 0)
		ret = gpu_mkdirs(fd, "etc/ld.so.conf.d", uid);
	if (ret == 0 && plan->nvml_interposer[0])
		ret = gpu_mkdirs(fd, GPU_NVML_REAL_DIR, uid);
	if (ret == 0)
		ret = gpu_write_at(fd, GPU_CONF_FILE, conf, strlen(conf), 0644, uid);
	if (ret == 0)
		ret = gpu_mkdirs(fd, GPU_CDI_DIR, uid);
	if (ret == 0)
		ret = gpu_cdi_write(fd, host, plan->mask, plan->nvml_real, uid);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < host->nfiles; i++) {
		const struct gpu_file *f = &host->files[i];
		char rel[PATH_MAX];

		ret = gpu_file_rel(plan, f, rel, sizeof(rel));
		if (ret == 0)
			ret = gpu_write_at(fd, rel, "", 0, f->binary ? 0755 : 0644, uid);
		if (ret < 0)
			return ret;
		if (f->binary || !f->soname[0] || strcmp(f->soname, f->name) == 0 ||
		    (plan->nvml_interposer[0] && strcmp(f->name, plan->nvml_real) == 0))
			continue;
		/* libcuda.so.1 -> libcuda.so.580.65.06: the name programs ask for. */
		snprintf(rel, sizeof(rel), "%s/%s", GPU_LIB_DIR, f->soname);
		ret = gpu_link_at(fd, f->name, rel, uid);
		if (ret < 0)
			return ret;
	}
	return plan->nvml_interposer[0] ? gpu_make_nvml_layer(fd, plan, uid) : 0;
}

int gpu_prepare(const struct gpu_host *host, const struct gpu_plan *plan, uint32_t subid_base)
{
	char out[PATH_MAX];
	int ret;

	if (!host->present)
		return 0;
	/* Root's, crossed by the container's root (LXC mounts as that user). */
	ret = fsutil_mkdir_p(plan->dir, 0710);
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot create %s", plan->dir);
	if (chown(plan->dir, 0, subid_base) < 0 || chmod(plan->dir, 0710) < 0)
		return log_error_errno(-errno, errno, "cannot set the owner of %s", plan->dir);
	ret = gpu_make_proc(host, plan->dir);
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot copy the driver's /proc files into %s", plan->dir);
	ret = gpu_make_layer(host, plan, subid_base);
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot build the driver layer %s", plan->layer);
	if (snprintf(out, sizeof(out), "%s/ldconfig", plan->dir) >= (int)sizeof(out))
		return -ENAMETOOLONG;
	ret = fsutil_remove_tree(out);
	if (ret == 0 && mkdir(out, 0700) < 0)
		ret = -errno;
	if (ret == 0 && chown(out, subid_base, subid_base) < 0)
		ret = -errno;
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot create %s", out);
	return 0;
}

/* Whether the ELF file at fd needs no interpreter: one that did would be
 * loaded from the container's tree after the chroot. */
static bool gpu_is_static(int fd)
{
	Elf64_Ehdr eh;

	if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh) ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum > 64)
		return false;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;

		if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + i * sizeof(ph))) != (ssize_t)sizeof(ph))
			return false;
		if (ph.p_type == PT_INTERP)
			return false;
	}
	return true;
}

static int gpu_open_beneath(int dirfd, const char *rel, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)flags | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};

	return (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
}

/* In the child only: bind src over the mount point rel of the tree at rootfd. */
static int gpu_child_bind(const char *src, int rootfd, const char *rel, bool dir)
{
	char target[64];
	int fd = gpu_open_beneath(rootfd, rel, O_PATH | (dir ? O_DIRECTORY : 0));

	if (fd < 0)
		return -1;
	snprintf(target, sizeof(target), "/proc/self/fd/%d", fd);
	if (mount(src, target, NULL, MS_BIND, NULL) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* The host's ldconfig, open for execveat(); only a static one may run in
 * a container's tree, where no host loader or library can be trusted. */
static int gpu_ldconfig_open(const char *ldconfig)
{
	__do_close int exefd = open(ldconfig, O_RDONLY | O_CLOEXEC);

	if (exefd < 0)
		return log_error_errno(-errno, errno, "cannot open the host's ldconfig %s", ldconfig);
	if (!gpu_is_static(exefd))
		return log_error_errno(-ENOEXEC, 0,
				       "%s is not a static executable, so it cannot run on a container's tree safely",
				       ldconfig);
	return move_fd(exefd);
}

/*
 * In the child only: what ldconfig keeps of the agent's powers once it
 * runs as the container's root.  It reads files the member wrote, so
 * whatever a flaw in it could be made to do must reach nothing of the
 * host: no network (a new, empty namespace: not even a loopback that is
 * up), no System V IPC or host name of the host's, no capability it could
 * regain (empty bounding and ambient sets, no new privileges: setresuid()
 * then clears the rest), no descriptor of the agent's.  0 or -1.
 */
int gpu_ldconfig_confine(void)
{
	if (unshare(CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS) < 0)
		return -1;
	for (unsigned long cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
			return -1;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return -1;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	/* ldconfig is opened close-on-exec itself: execveat() still runs it. */
	if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		return -1;
	return 0;
}

/*
 * In the child only (the agent is multithreaded: system calls only):
 * run ldconfig chrooted into a read-only view of the container's tree,
 * with the host's driver libraries bound in, as the container's root,
 * confined by gpu_ldconfig_confine().  Each step that fails has its own
 * exit status.
 */
__attribute__((noreturn))
static void gpu_ldconfig_child(const struct gpu_host *host, const struct gpu_plan *plan,
			       const char *rootfs, const char *out, int exefd, uint32_t subid_base)
{
	char *const argv[] = { (char *)"ldconfig", (char *)"-X", (char *)"-C",
			       (char *)"/proc/ld.so.cache", NULL };
	char *const envp[] = { (char *)"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
	int treefd;

	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		_exit(120);
	/* A read-only view of the container's tree: ldconfig can write
	 * nowhere in it but the output directory bound onto /proc.  (A
	 * descriptor opened before unshare() names the old namespace's
	 * mount: the agent's own path is used here.) */
	if (mount(rootfs, rootfs, NULL, MS_BIND, NULL) < 0 ||
	    mount(NULL, rootfs, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
		_exit(121);
	treefd = open(rootfs, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (treefd < 0)
		_exit(122);
	for (size_t i = 0; i < host->nfiles; i++) {
		char rel[PATH_MAX];

		if (host->files[i].binary)
			continue;
		if (gpu_file_rel(plan, &host->files[i], rel, sizeof(rel)) < 0 ||
		    gpu_child_bind(host->files[i].host, treefd, rel, false) < 0)
			_exit(124);
	}
	/* The interposer's soname is what names it in the cache. */
	if (plan->nvml_interposer[0] &&
	    gpu_child_bind(plan->nvml_interposer, treefd, GPU_LIB_DIR "/" GPU_NVML_INTERPOSER, false) < 0)
		_exit(124);
	if (gpu_child_bind(out, treefd, "proc", true) < 0)
		_exit(125);
	if (fchdir(treefd) < 0 || chroot(".") < 0 || chdir("/") < 0)
		_exit(126);
	if (gpu_ldconfig_confine() < 0)
		_exit(123);
	if (setgroups(0, NULL) < 0 || setresgid(subid_base, subid_base, subid_base) < 0 ||
	    setresuid(subid_base, subid_base, subid_base) < 0)
		_exit(127);
	syscall(SYS_execveat, exefd, "", argv, envp, AT_EMPTY_PATH);
	_exit(128);
}

/* Wait for the ldconfig child, killed after GPU_LDCONFIG_TIMEOUT; 0 when
 * it exited with 0. */
static int gpu_ldconfig_wait(pid_t pid, const char *rootfs)
{
	time_t deadline = time(NULL) + GPU_LDCONFIG_TIMEOUT;
	int status = 0;

	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);

		if (w == pid)
			break;
		if (w < 0 && errno != EINTR)
			return log_error_errno(-errno, errno, "cannot wait for ldconfig");
		if (time(NULL) > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return log_error_errno(-ETIMEDOUT, 0, "ldconfig for %s took more than %d s", rootfs,
					       GPU_LDCONFIG_TIMEOUT);
		}
		nanosleep(&(struct timespec){ .tv_nsec = 20 * 1000 * 1000 }, NULL);
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return log_error_errno(-EIO, 0, "ldconfig for the container's tree %s failed (status %d)",
				       rootfs, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return 0;
}

/* The cache ldconfig wrote, checked entry by entry before it goes into
 * the layer as the container's /etc/ld.so.cache. */
static int gpu_ldconfig_install(const char *cache_path, const char *layer_cache,
				uint32_t subid_base)
{
	__do_free char *cache = NULL;
	size_t len = 0;
	int ret;

	ret = fsutil_read_file(cache_path, GPU_LDCACHE_MAX, &cache, &len);
	if (ret < 0)
		return log_error_errno(ret, -ret, "ldconfig wrote no cache at %s", cache_path);
	if (ldcache_parse(cache, len, gpu_check_entry, NULL) < 0)
		return log_error_errno(-EINVAL, 0, "the cache ldconfig wrote at %s cannot be read", cache_path);
	ret = fsutil_write_atomic(layer_cache, cache, len, 0644);
	if (ret == 0 && chown(layer_cache, subid_base, subid_base) < 0)
		ret = -errno;
	if (ret < 0)
		return log_error_errno(ret, -ret, "cannot write %s", layer_cache);
	return 0;
}

int gpu_ldconfig(const struct gpu_host *host, const struct gpu_plan *plan, const char *rootfs,
		 uint32_t subid_base, const char *ldconfig)
{
	__do_close int exefd = -EBADF, rootfd = -EBADF;
	char out[PATH_MAX], cache_path[PATH_MAX], layer_cache[PATH_MAX];
	pid_t pid;
	int ret;

	if (!host->present)
		return 0;
	if (snprintf(out, sizeof(out), "%s/ldconfig", plan->dir) >= (int)sizeof(out) ||
	    snprintf(cache_path, sizeof(cache_path), "%s/ld.so.cache", out) >= (int)sizeof(cache_path) ||
	    snprintf(layer_cache, sizeof(layer_cache), "%s/etc/ld.so.cache", plan->layer) >= (int)sizeof(layer_cache))
		return -ENAMETOOLONG;
	exefd = gpu_ldconfig_open(ldconfig);
	if (exefd < 0)
		return exefd;
	rootfd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return log_error_errno(-errno, errno, "cannot open %s", rootfs);

	pid = fork();
	if (pid < 0)
		return log_error_errno(-errno, errno, "cannot fork for ldconfig");
	if (pid == 0)
		gpu_ldconfig_child(host, plan, rootfs, out, exefd, subid_base);
	ret = gpu_ldconfig_wait(pid, rootfs);
	if (ret < 0)
		return ret;
	return gpu_ldconfig_install(cache_path, layer_cache, subid_base);
}

int gpu_check_entry(const struct ldcache_entry *entry, void *data)
{
	(void)data;
	return entry->key[0] ? 0 : -EINVAL;
}

/* ---- live changes ---------------------------------------------------------- */

/* A detached clone of the host's node at host_path, nosuid and noexec. */
static int gpu_live_clone(const char *host_path)
{
	struct mount_attr attr = { .attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC };
	__do_close int treefd = (int)syscall(SYS_open_tree, AT_FDCWD, host_path,
					     OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);

	if (treefd < 0)
		return log_error_errno(-errno, errno, "cannot clone %s", host_path);
	if (syscall(SYS_mount_setattr, treefd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0)
		return log_error_errno(-errno, errno, "cannot set the flags of %s", host_path);
	return move_fd(treefd);
}

/*
 * In the child only: join the mount namespace at nsfd and return its /dev,
 * with the file system ids of the owner of /dev.  The exit statuses are
 * the steps gpu_live_node() reports.
 */
static int gpu_live_child_dev(int nsfd, const char *name)
{
	int rootfd, devfd;
	struct stat st;

	if (setns(nsfd, CLONE_NEWNS) < 0)
		_exit(1);
	rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	devfd = rootfd < 0 ? -1 : gpu_open_beneath(rootfd, "dev", O_PATH | O_DIRECTORY);
	if (devfd < 0)
		_exit(2);
	if (strchr(name, '/'))
		_exit(3);
	/* The container's /dev belongs to its user namespace, where the
	 * host's root has no id: create as the owner of /dev (the
	 * container's root), or the kernel answers EOVERFLOW. */
	if (fstat(devfd, &st) < 0)
		_exit(8);
	setfsgid(st.st_gid);
	setfsuid(st.st_uid);
	return devfd;
}

/* In the child only: take /dev/name away, however many mounts it holds. */
__attribute__((noreturn))
static void gpu_live_child_remove(int devfd, const char *name)
{
	struct stat st;

	if (fstatat(devfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		_exit(errno == ENOENT ? 0 : 4);
	/* Relative to the /dev found above: /proc here is the
	 * container's, where this process has no /proc/self. */
	if (fchdir(devfd) < 0)
		_exit(9);
	for (int i = 0; i < 8; i++)
		if (umount2(name, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
			break;
	if (unlinkat(devfd, name, 0) < 0 && errno != ENOENT)
		_exit(7);
	_exit(0);
}

/* In the child only: attach the clone at treefd onto /dev/name, made as an
 * empty file unless a file or a node is there already. */
__attribute__((noreturn))
static void gpu_live_child_add(int devfd, const char *name, int treefd)
{
	struct stat st;
	int fd = openat(devfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd >= 0)
		close(fd);
	else if (errno != EEXIST || fstatat(devfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		 !(S_ISREG(st.st_mode) || S_ISCHR(st.st_mode)))
		_exit(5);
	if (syscall(SYS_move_mount, treefd, "", devfd, name, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		_exit(6);
	_exit(0);
}

int gpu_live_start(pid_t pid, const char *host_path, const char *target, bool add,
		   struct gpu_live_job *job)
{
	__do_close int treefd = -EBADF, nsfd = -EBADF;
	char ns[64];
	pid_t child;

	*job = (struct gpu_live_job){ .child = -1, .add = add };
	if (!target || target[0] == '/' || strstr(target, "..") || strncmp(target, "dev/", 4) != 0 ||
	    strlen(target) >= sizeof(job->target))
		return -EINVAL;
	snprintf(job->target, sizeof(job->target), "%s", target);
	snprintf(ns, sizeof(ns), "/proc/%d/ns/mnt", (int)pid);
	nsfd = open(ns, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0)
		return log_error_errno(-errno, errno, "cannot open the mount namespace of %d", (int)pid);
	if (add) {
		treefd = gpu_live_clone(host_path);
		if (treefd < 0)
			return treefd;
	}
	child = fork();
	if (child < 0)
		return -errno;
	if (child == 0) {
		const char *name = target + 4;
		int devfd = gpu_live_child_dev(nsfd, name);

		if (add)
			gpu_live_child_add(devfd, name, treefd);
		gpu_live_child_remove(devfd, name);
	}
	job->child = child;
	return 0;
}

int gpu_live_finish(struct gpu_live_job *job)
{
	int status = 0;

	if (job->child <= 0)
		return -EINVAL;
	while (waitpid(job->child, &status, 0) < 0 && errno == EINTR)
		;
	job->child = -1;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return log_error_errno(-EIO, 0, "cannot %s /%s in the container (step %d)",
				       job->add ? "add" : "remove", job->target,
				       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return 0;
}

/*
 * Bind the host's node at host_path onto /<target> in the mount namespace
 * of pid (add), or take it away (remove).  The node is cloned here with
 * open_tree(); a child joins the namespace and attaches it.
 */
int gpu_live_node(pid_t pid, const char *host_path, const char *target, bool add)
{
	struct gpu_live_job job;
	int ret = gpu_live_start(pid, host_path, target, add, &job);

	return ret < 0 ? ret : gpu_live_finish(&job);
}

int gpu_live_node_present(pid_t pid, const char *target)
{
	/* The container's root as its init sees it; the path resolved in it,
	 * so that a link the member made cannot point anywhere on the host. */
	struct open_how how = {
		.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	__do_close int rootfd = -EBADF, fd = -EBADF;
	char root[64];
	struct stat st;

	snprintf(root, sizeof(root), "/proc/%d/root", (int)pid);
	rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return -errno;
	fd = (int)syscall(SYS_openat2, rootfd, target, &how, sizeof(how));
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	return S_ISCHR(st.st_mode) ? 1 : 0;
}

bool gpu_live_gpu_present(const struct gpu_host *host, pid_t pid, size_t index)
{
	for (size_t i = 0; i < host->nnodes; i++)
		if (host->nodes[i].gpu == (int)index)
			return gpu_live_node_present(pid, host->nodes[i].target) == 1;
	return false;
}

int gpu_start_nodes(const struct gpu_plan *plan, pid_t pid)
{
	for (size_t i = 0; i < plan->nlate; i++) {
		int ret = gpu_live_node(pid, plan->late[i].host, plan->late[i].target, true);

		if (ret < 0)
			return ret;
	}
	return 0;
}
