/* SPDX-License-Identifier: MIT */
/* GPU discovery and the injection plan, on a fake driver tree; the ldconfig
 * child's confinement; the processes holding a GPU. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/msg.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <cmocka.h>

#include <jansson.h>

#include "gpu/gpu.h"
#include "cleanup.h"
#include "spawn.h"
#include "testutil.h"

#include "banned.h"

#define FAKE_VERSION "999.10.01"

static void test_version(void **state)
{
	char v[GPU_VERSION_MAX];

	assert_int_equal(gpu_parse_version("NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  "
					   "Sat Aug 19 01:15:15 UTC 2023\nGCC version:  gcc 12\n", v, sizeof(v)), 0);
	assert_string_equal(v, "535.104.05");
	assert_int_equal(gpu_parse_version("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  "
					   "580.65.06  Release Build  (dvs-builder@U16)  Sun Jul 27\n", v, sizeof(v)), 0);
	assert_string_equal(v, "580.65.06");
	assert_int_equal(gpu_parse_version("NVRM version: nothing here\n", v, sizeof(v)), -EINVAL);
	assert_int_equal(gpu_parse_version("GCC version: 12.2.0\n", v, sizeof(v)), -EINVAL);
	assert_int_equal(gpu_parse_version("NVRM version: 1..2 3.\n", v, sizeof(v)), -EINVAL);
	assert_int_equal(gpu_parse_version("NVRM version: 1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16\n", v,
					   sizeof(v)), -EINVAL);
}

static void test_information(void **state)
{
	struct gpu_device d;

	assert_int_equal(gpu_parse_information("Model: \t\t NVIDIA H100 80GB HBM3\nIRQ: 42\n"
					       "GPU UUID: \t GPU-1234abcd-0000\nBus Location: \t 0000:18:00.0\n"
					       "Device Minor: \t 3\nGPU Excluded:\t No\n", &d), 0);
	assert_string_equal(d.model, "NVIDIA H100 80GB HBM3");
	assert_string_equal(d.uuid, "GPU-1234abcd-0000");
	assert_string_equal(d.bus_id, "0000:18:00.0");
	assert_int_equal(d.minor, 3);
	assert_int_equal(gpu_parse_information("GPU UUID: GPU-1\nBus Location: 0000:01:00.0\n", &d), -EINVAL);
	assert_int_equal(gpu_parse_information("GPU UUID: GPU-1\nBus Location: 0000:01:00.0\n"
					       "Device Minor: 255\n", &d), -EINVAL);
	assert_int_equal(gpu_parse_information("GPU UUID: GPU 1;rm\nBus Location: 0000:01:00.0\n"
					       "Device Minor: 1\n", &d), -EINVAL);
	assert_int_equal(gpu_parse_information("GPU UUID: GPU-1\nBus Location: ../x\nDevice Minor: 1\n", &d),
			 -EINVAL);
}

static void test_capabilities(void **state)
{
	unsigned caps = 0;
	char err[160];

	assert_int_equal(gpu_parse_capabilities("utility compute", &caps, err, sizeof(err)), 0);
	assert_int_equal(caps, GPU_CAP_UTILITY | GPU_CAP_COMPUTE);
	assert_int_equal(gpu_parse_capabilities("video,graphics", &caps, err, sizeof(err)), 0);
	assert_int_equal(caps, GPU_CAP_VIDEO | GPU_CAP_GRAPHICS);
	assert_int_equal(gpu_parse_capabilities("all", &caps, err, sizeof(err)), 0);
	assert_int_equal(caps, GPU_CAP_ALL);
	assert_int_equal(gpu_parse_capabilities("compute display", &caps, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "display"));

	assert_int_equal(gpu_library_caps("libcuda.so.580.65.06", "580.65.06"), GPU_CAP_COMPUTE);
	assert_int_equal(gpu_library_caps("libnvidia-ml.so.580.65.06", "580.65.06"), GPU_CAP_UTILITY);
	assert_int_equal(gpu_library_caps("libnvidia-encode.so.580.65.06", "580.65.06"), GPU_CAP_VIDEO);
	assert_int_equal(gpu_library_caps("libcuda.so.1", "580.65.06"), 0);
	assert_int_equal(gpu_library_caps("libcuda.so.570.1.0", "580.65.06"), 0);
	assert_int_equal(gpu_library_caps("libcuda.so.1580.65.06", "580.65.06"), 0);
	assert_int_equal(gpu_library_caps("libcudart.so.580.65.06", "580.65.06"), 0);
	assert_int_equal(gpu_library_caps("libfoo.so.580.65.06", "580.65.06"), 0);
}

static void fake_host(struct gpu_host *h)
{
	memset(h, 0, sizeof(*h));
	h->present = true;
	snprintf(h->version, sizeof(h->version), "580.65.06");
	h->ngpus = 2;
	for (unsigned i = 0; i < 2; i++) {
		h->gpus[i].index = i;
		h->gpus[i].minor = i;
		snprintf(h->gpus[i].uuid, sizeof(h->gpus[i].uuid), "GPU-0000000%u-aaaa", i);
		snprintf(h->gpus[i].bus_id, sizeof(h->gpus[i].bus_id), "0000:0%u:00.0", i + 1);
	}
	h->nnodes = 3;
	h->nodes[0] = (struct gpu_node){ "/dev/nvidiactl", "dev/nvidiactl", 195, 255, -1 };
	h->nodes[1] = (struct gpu_node){ "/dev/nvidia0", "dev/nvidia0", 195, 0, 0 };
	h->nodes[2] = (struct gpu_node){ "/dev/nvidia1", "dev/nvidia1", 195, 1, 1 };
	h->nfiles = 2;
	h->files[0] = (struct gpu_file){ "/usr/lib/x86_64-linux-gnu/libcuda.so.580.65.06",
					 "libcuda.so.580.65.06", "libcuda.so.1", GPU_CAP_COMPUTE, false };
	h->files[1] = (struct gpu_file){ "/usr/bin/nvidia-smi", "nvidia-smi", "", GPU_CAP_UTILITY, true };
}

/* The device of spec named name, or NULL. */
static json_t *cdi_device(json_t *spec, const char *name)
{
	size_t i;
	json_t *d;

	json_array_foreach(json_object_get(spec, "devices"), i, d)
		if (strcmp(json_string_value(json_object_get(d, "name")), name) == 0)
			return d;
	return NULL;
}

/* The paths of the array (of objects with key) joined by blanks. */
static void cdi_paths(json_t *array, const char *key, char *buf, size_t len)
{
	size_t i, n = 0;
	json_t *e;

	buf[0] = '\0';
	json_array_foreach(array, i, e) {
		int m = snprintf(buf + n, len - n, "%s ", json_string_value(json_object_get(e, key)));

		assert_true(m > 0 && (size_t)m < len - n);
		n += (size_t)m;
	}
}

static json_t *cdi_parse(const struct gpu_host *h, uint64_t mask, const char *nvml_real)
{
	__do_free char *text = NULL, *args = NULL;
	json_t *spec;

	assert_int_equal(gpu_cdi_render(h, mask, nvml_real, &text, &args), 0);
	assert_non_null(text);
	assert_non_null(args);
	spec = json_loads(text, 0, NULL);
	assert_non_null(spec);
	return spec;
}

/* The CDI spec names the container's GPUs only, by index, UUID and all. */
static void test_cdi(void **state)
{
	__do_free struct gpu_host *h = calloc(1, sizeof(*h));
	__do_json json_t *one = NULL, *none = NULL, *nvml = NULL;
	char buf[2048], dir[PATH_MAX], path[PATH_MAX];
	__do_close int fd = -EBADF;
	struct stat before, after;

	fake_host(h);
	one = cdi_parse(h, 2, NULL);
	assert_string_equal(json_string_value(json_object_get(one, "kind")), "nvidia.com/gpu");
	assert_string_equal(json_string_value(json_object_get(one, "cdiVersion")), "0.5.0");
	assert_null(cdi_device(one, "0"));
	assert_null(cdi_device(one, "GPU-00000000-aaaa"));
	cdi_paths(json_object_get(json_object_get(cdi_device(one, "1"), "containerEdits"), "deviceNodes"),
		  "path", buf, sizeof(buf));
	assert_string_equal(buf, "/dev/nvidia1 ");
	assert_non_null(cdi_device(one, "GPU-00000001-aaaa"));
	cdi_paths(json_object_get(json_object_get(cdi_device(one, "all"), "containerEdits"), "deviceNodes"),
		  "path", buf, sizeof(buf));
	assert_string_equal(buf, "/dev/nvidia1 ");
	cdi_paths(json_object_get(json_object_get(one, "containerEdits"), "deviceNodes"), "path", buf,
		  sizeof(buf));
	assert_string_equal(buf, "/dev/nvidiactl ");
	cdi_paths(json_object_get(json_object_get(one, "containerEdits"), "mounts"), "containerPath", buf,
		  sizeof(buf));
	assert_string_equal(buf, "/usr/local/nvidia/lib64/libcuda.so.580.65.06 "
				 "/usr/local/nvidia/lib64/libcuda.so.1 /usr/bin/nvidia-smi ");
	cdi_paths(json_object_get(json_object_get(one, "containerEdits"), "mounts"), "hostPath", buf,
		  sizeof(buf));
	assert_string_equal(buf, "/usr/lib/gpubox-nvidia/libcuda.so.580.65.06 "
				 "/usr/lib/gpubox-nvidia/libcuda.so.580.65.06 /usr/bin/nvidia-smi ");

	/* Docker 20.10's options: the same as the device "all". */
	{
		__do_free char *text = NULL, *args = NULL;

		assert_int_equal(gpu_cdi_render(h, 2, NULL, &text, &args), 0);
		assert_non_null(args);
		assert_string_equal(args,
			"--device=/dev/nvidiactl\n"
			"--device=/dev/nvidia1\n"
			"--volume=/usr/lib/gpubox-nvidia/libcuda.so.580.65.06:/usr/local/nvidia/lib64/libcuda.so.580.65.06:ro\n"
			"--volume=/usr/lib/gpubox-nvidia/libcuda.so.580.65.06:/usr/local/nvidia/lib64/libcuda.so.1:ro\n"
			"--volume=/usr/bin/nvidia-smi:/usr/bin/nvidia-smi:ro\n"
			"--env=LD_LIBRARY_PATH=/usr/local/nvidia/lib:/usr/local/nvidia/lib64\n");
	}

	/* No GPU: "all" still resolves, to the driver alone. */
	none = cdi_parse(h, 0, NULL);
	assert_null(cdi_device(none, "0"));
	assert_null(cdi_device(none, "1"));
	assert_non_null(cdi_device(none, "all"));
	assert_null(json_object_get(json_object_get(cdi_device(none, "all"), "containerEdits"), "deviceNodes"));

	/* Under the interposer, the real libnvidia-ml from where it was moved. */
	h->files[0] = (struct gpu_file){ "/x/libnvidia-ml.so.580.65.06", "libnvidia-ml.so.580.65.06",
					 "libnvidia-ml.so.1", GPU_CAP_UTILITY, false };
	nvml = cdi_parse(h, 3, "libnvidia-ml.so.580.65.06");
	cdi_paths(json_object_get(json_object_get(nvml, "containerEdits"), "mounts"), "hostPath", buf,
		  sizeof(buf));
	assert_non_null(strstr(buf, "/usr/lib/gpubox-nvidia/real/libnvidia-ml.so.580.65.06 "));
	cdi_paths(json_object_get(json_object_get(cdi_device(nvml, "all"), "containerEdits"), "deviceNodes"),
		  "path", buf, sizeof(buf));
	assert_string_equal(buf, "/dev/nvidia0 /dev/nvidia1 ");

	/* Written again in place: a running container's overlay keeps showing it. */
	assert_int_equal(tu_make_tempdir(dir, sizeof(dir), "/tmp/gpubox-test-cdi-XXXXXX"), 0);
	assert_int_equal(tu_make_dir(dir, "etc", 0, 0, 0755), 0);
	assert_int_equal(tu_make_dir(dir, "etc/cdi", 0, 0, 0755), 0);
	fd = tu_open_dir(dir);
	assert_true(fd >= 0);
	assert_int_equal(gpu_cdi_write(fd, h, 3, NULL, geteuid()), 0);
	tu_join(path, sizeof(path), dir, GPU_CDI_FILE);
	assert_int_equal(stat(path, &before), 0);
	assert_int_equal(gpu_cdi_write(fd, h, 1, NULL, geteuid()), 0);
	assert_int_equal(stat(path, &after), 0);
	assert_true(before.st_ino == after.st_ino && after.st_size < before.st_size);
	assert_int_equal(after.st_mode & 07777, 0644);
	tu_join(path, sizeof(path), dir, GPU_CDI_DOCKER_FILE);
	assert_int_equal(stat(path, &after), 0);
	assert_true(after.st_size > 0);
	/* What was written is what gpu_cdi_render() gives, both files. */
	{
		__do_free char *text = NULL, *args = NULL;

		assert_int_equal(gpu_cdi_render(h, 1, NULL, &text, &args), 0);
		tu_assert_text(dir, GPU_CDI_FILE, text);
		tu_assert_text(dir, GPU_CDI_DOCKER_FILE, args);
	}
	tu_remove_tempdir(dir);
}

static void test_select(void **state)
{
	__do_free struct gpu_host *h = calloc(1, sizeof(*h));
	uint64_t mask = 0;
	size_t index = 9;
	char err[256];

	fake_host(h);
	assert_int_equal(gpu_select(h, "all", &mask, err, sizeof(err)), 0);
	assert_int_equal(mask, 3);
	assert_int_equal(gpu_select(h, "none", &mask, err, sizeof(err)), 0);
	assert_int_equal(mask, 0);
	assert_int_equal(gpu_select(h, "1", &mask, err, sizeof(err)), 0);
	assert_int_equal(mask, 2);
	assert_int_equal(gpu_select(h, "gpu-00000000-AAAA, 7", &mask, err, sizeof(err)), 0);
	assert_int_equal(mask, 1);
	assert_int_equal(gpu_select(h, "0 ../x", &mask, err, sizeof(err)), -EINVAL);
	assert_int_equal(gpu_find(h, "1", &index), 0);
	assert_int_equal(index, 1);
	assert_int_equal(gpu_find(h, "2", &index), -ENOENT);
	assert_int_equal(gpu_find(h, "GPU-00000001-aaaa", &index), 0);
	assert_int_equal(index, 1);
	assert_int_equal(gpu_find(h, "GPU;1", &index), -EINVAL);
}

static bool has_mount(const struct gpu_plan *p, const char *source, const char *target, const char *options)
{
	for (size_t i = 0; i < p->nmounts; i++)
		if (strcmp(p->mounts[i].source, source) == 0 && strcmp(p->mounts[i].target, target) == 0 &&
		    strcmp(p->mounts[i].options, options) == 0)
			return true;
	return false;
}

static void test_plan(void **state)
{
	__do_free struct gpu_host *h = calloc(1, sizeof(*h));
	__do_free struct gpu_plan *p = calloc(1, sizeof(*p));

	fake_host(h);
	assert_int_equal(gpu_plan_build(h, 2, "/var/lib/gpubox/users/a/gpu", true, p), 0);
	assert_true(has_mount(p, "/usr/lib/x86_64-linux-gnu/libcuda.so.580.65.06",
			      "usr/lib/gpubox-nvidia/libcuda.so.580.65.06", "bind,ro,nosuid,nodev"));
	assert_true(has_mount(p, "/usr/bin/nvidia-smi", "usr/bin/nvidia-smi", "bind,ro,nosuid,nodev"));
	assert_true(has_mount(p, "/dev/nvidiactl", "dev/nvidiactl", "bind,nosuid,noexec,create=file"));
	/* A GPU's own node is bound by the agent after the start (so that it
	 * can be taken away again), never by LXC. */
	assert_false(has_mount(p, "/dev/nvidia1", "dev/nvidia1", "bind,nosuid,noexec,create=file"));
	assert_int_equal(p->nlate, 1);
	assert_string_equal(p->late[0].host, "/dev/nvidia1");
	assert_string_equal(p->late[0].target, "dev/nvidia1");
	assert_true(has_mount(p, "/var/lib/gpubox/users/a/gpu/proc", "proc/driver/nvidia",
			      "bind,ro,nosuid,nodev,noexec"));
	assert_int_equal(p->ndevices, 2);
	assert_string_equal(p->devices[0], "c 195:255 rwm");
	assert_string_equal(p->devices[1], "c 195:1 rwm");
	assert_null(p->devices[2]);
	assert_string_equal(p->layer, "/var/lib/gpubox/users/a/gpu/layer");

	/* Without the kernel's /proc/driver/nvidia: a tmpfs to make the mount point in. */
	assert_int_equal(gpu_plan_build(h, 3, "/g", false, p), 0);
	assert_true(has_mount(p, "tmpfs", "proc/driver", "nosuid,nodev,noexec,mode=755,size=64k"));
	assert_true(has_mount(p, "/g/proc", "proc/driver/nvidia", "bind,ro,nosuid,nodev,noexec,create=dir"));
	assert_int_equal(p->ndevices, 3);
	assert_int_equal(p->nlate, 2);

	h->present = false;
	assert_int_equal(gpu_plan_build(h, 3, "/g", false, p), 0);
	assert_int_equal(p->nmounts, 0);
	assert_int_equal(p->ndevices, 0);
}

/* ---- a fake driver tree ---------------------------------------------------- */

static void make_lib(const char *root, const char *name, const char *soname)
{
	char lib[PATH_MAX], src[PATH_MAX], opt[PATH_MAX];
	const char *argv[] = { "/usr/bin/cc", "-shared", "-fPIC", "-o", lib, opt, src, NULL };

	tu_join(src, sizeof(src), root, "a.c");
	snprintf(lib, sizeof(lib), "%s/usr/lib/%s", root, name);
	snprintf(opt, sizeof(opt), "-Wl,-soname,%s", soname);
	assert_int_equal(spawn_quiet(argv), 0);
}

static void make_tree(const char *root, bool nodes)
{
	static const char *const dirs[] = {
		"dev", "etc", "usr", "usr/lib", "usr/bin", "proc", "proc/driver", "proc/driver/nvidia",
		"proc/driver/nvidia/gpus", "proc/driver/nvidia/gpus/0000:02:00.0",
		"proc/driver/nvidia/gpus/0000:01:00.0",
	};
	const char *ldconfig[] = { "/sbin/ldconfig", "-X", "-r", root, "-C", "/etc/ld.so.cache",
				   "-f", "/etc/ld.so.conf", NULL };
	char path[PATH_MAX];

	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
		assert_int_equal(tu_make_dir(root, dirs[i], 0, 0, 0755), 0);
	tu_write_file(root, "proc/driver/nvidia/version",
		      "NVRM version: NVIDIA UNIX x86_64 Kernel Module  " FAKE_VERSION "  Mon Jan  1 2024\n");
	tu_write_file(root, "proc/driver/nvidia/params", "ResmanDebugLevel: 1\nModifyDeviceFiles: 1\n");
	tu_write_file(root, "proc/driver/nvidia/gpus/0000:02:00.0/information",
		      "Model: B\nGPU UUID: GPU-bbbb\nBus Location: 0000:02:00.0\nDevice Minor: 0\n");
	tu_write_file(root, "proc/driver/nvidia/gpus/0000:01:00.0/information",
		      "Model: A\nGPU UUID: GPU-aaaa\nBus Location: 0000:01:00.0\nDevice Minor: 1\n");
	tu_write_file(root, "a.c", "int f(void) { return 0; }\n");
	make_lib(root, "libcuda.so." FAKE_VERSION, "libcuda.so.1");
	tu_make_link(root, "usr/lib/libcuda.so.1", "libcuda.so." FAKE_VERSION);
	make_lib(root, "libnvidia-ml.so." FAKE_VERSION, "libnvidia-ml.so.1");
	tu_make_link(root, "usr/lib/libnvidia-ml.so.1", "/usr/lib/libnvidia-ml.so." FAKE_VERSION);
	make_lib(root, "libnvidia-encode.so." FAKE_VERSION, "libnvidia-encode.so.1");
	tu_make_link(root, "usr/lib/libnvidia-encode.so.1", "libnvidia-encode.so." FAKE_VERSION);
	make_lib(root, "libnvidia-cfg.so.1.0.0", "libnvidia-cfg.so.1");
	tu_make_link(root, "usr/lib/libnvidia-cfg.so.1", "libnvidia-cfg.so.1.0.0");
	tu_write_file(root, "etc/ld.so.conf", "/usr/lib\n");
	assert_int_equal(spawn_quiet(ldconfig), 0);
	assert_int_equal(tu_make_file(root, "usr/bin/nvidia-smi", "#!/bin/sh\n", 0, 0, 0755), 0);
	if (!nodes)
		return;
	tu_join(path, sizeof(path), root, "dev/nvidiactl");
	assert_int_equal(mknod(path, S_IFCHR | 0666, makedev(195, 255)), 0);
	tu_join(path, sizeof(path), root, "dev/nvidia0");
	assert_int_equal(mknod(path, S_IFCHR | 0666, makedev(195, 0)), 0);
	tu_join(path, sizeof(path), root, "dev/nvidia1");
	assert_int_equal(mknod(path, S_IFCHR | 0666, makedev(195, 1)), 0);
	tu_join(path, sizeof(path), root, "dev/nvidia-uvm");
	assert_int_equal(mknod(path, S_IFCHR | 0666, makedev(509, 0)), 0);
}

static void test_discover(void **state)
{
	__do_free struct gpu_host *h = calloc(1, sizeof(*h));
	char root[PATH_MAX];
	bool cuda = false, ml = false, smi = false;

	if (geteuid() != 0 || access("/sbin/ldconfig", X_OK) != 0 || access("/usr/bin/cc", X_OK) != 0)
		skip();
	assert_int_equal(tu_make_tempdir(root, sizeof(root), "/tmp/test-gpu.XXXXXX"), 0);

	/* Nothing at all: no GPU, not an error. */
	assert_int_equal(gpu_discover(root, GPU_CAP_ALL, h), 0);
	assert_false(h->present);
	assert_string_equal(h->reason, "no NVIDIA GPU on this server");

	make_tree(root, true);
	assert_int_equal(gpu_discover(root, GPU_CAP_UTILITY | GPU_CAP_COMPUTE, h), 0);
	assert_true(h->present);
	assert_string_equal(h->version, FAKE_VERSION);
	assert_int_equal(h->ngpus, 2);
	/* Bus order, whatever the minors. */
	assert_string_equal(h->gpus[0].uuid, "GPU-aaaa");
	assert_int_equal(h->gpus[0].minor, 1);
	assert_int_equal(h->gpus[1].index, 1);
	assert_int_equal(h->nnodes, 4);
	for (size_t i = 0; i < h->nfiles; i++) {
		const struct gpu_file *f = &h->files[i];

		assert_null(strstr(f->name, "encode"));     /* video: not asked for */
		assert_null(strstr(f->name, "1.0.0"));      /* another version */
		cuda |= strcmp(f->name, "libcuda.so." FAKE_VERSION) == 0 && strcmp(f->soname, "libcuda.so.1") == 0;
		ml |= strcmp(f->name, "libnvidia-ml.so." FAKE_VERSION) == 0;
		smi |= f->binary && strcmp(f->name, "nvidia-smi") == 0;
		assert_true(strncmp(f->host, root, strlen(root)) == 0);
	}
	assert_true(cuda && ml && smi);
	for (size_t i = 0; i < h->nnodes; i++)
		if (strcmp(h->nodes[i].target, "dev/nvidia1") == 0)
			assert_int_equal(h->nodes[i].gpu, 0);   /* minor 1 is GPU 0 by bus */

	assert_int_equal(gpu_discover(root, GPU_CAP_ALL, h), 0);
	cuda = false;
	for (size_t i = 0; i < h->nfiles; i++)
		cuda |= strstr(h->files[i].name, "encode") != NULL;
	assert_true(cuda);
	tu_remove_tempdir(root);

	/* A driver without device nodes is reported, not used. */
	assert_int_equal(tu_make_tempdir(root, sizeof(root), "/tmp/test-gpu.XXXXXX"), 0);
	make_tree(root, false);
	assert_int_equal(gpu_discover(root, GPU_CAP_ALL, h), 0);
	assert_false(h->present);
	assert_non_null(strstr(h->reason, "device nodes"));
	tu_remove_tempdir(root);
}

/* ---- the ldconfig child: no network, no host IPC, nothing to regain -------- */

/* A static "ldconfig" that writes what it finds into /proc/probe (the
 * output directory bound onto the tree's /proc) and fails, so that
 * gpu_ldconfig() keeps no cache. */
static const char probe_source[] =
	"#include <fcntl.h>\n#include <net/if.h>\n#include <stdio.h>\n#include <string.h>\n"
	"#include <sys/ioctl.h>\n#include <sys/msg.h>\n#include <sys/prctl.h>\n#include <sys/socket.h>\n"
	"#include <unistd.h>\n#include <linux/capability.h>\n"
	"int main(void) {\n"
	"  struct ifreq lo = { .ifr_name = \"lo\" };\n"
	"  int leaked = fcntl(PROBE_FD, F_GETFD) >= 0, s = socket(AF_INET, SOCK_DGRAM, 0), n = 0;\n"
	"  int up = s >= 0 && ioctl(s, SIOCGIFFLAGS, &lo) == 0 && (lo.ifr_flags & IFF_UP);\n"
	"  struct if_nameindex *ifs = if_nameindex();\n"
	"  FILE *f;\n"
	"  while (ifs && ifs[n].if_index) n++;\n"
	"  f = fopen(\"/proc/probe\", \"w\");\n"
	"  if (!f) return 2;\n"
	"  fprintf(f, \"lo_up=%d interfaces=%d ipc=%d nnp=%d capbnd=%d leaked=%d uid=%u\\n\", up, n,\n"
	"          msgget(PROBE_KEY, 0) >= 0, prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0),\n"
	"          prctl(PR_CAPBSET_READ, CAP_SYS_ADMIN, 0, 0, 0), leaked, getuid());\n"
	"  fclose(f);\n"
	"  return 3;\n"
	"}\n";

static void test_ldconfig_confined(void **state)
{
	__do_free struct gpu_host *h = calloc(1, sizeof(*h));
	__do_free struct gpu_plan *p = calloc(1, sizeof(*p));
	__do_free char *text = NULL;
	char root[PATH_MAX], dir[PATH_MAX], probe[PATH_MAX], src[PATH_MAX], result[PATH_MAX];
	char key_opt[64], fd_opt[64];
	const char *cc[] = { "/usr/bin/cc", "-static", "-O1", key_opt, fd_opt, "-o", probe, src, NULL };
	const uint32_t subid = 231072;
	__do_close int leaked = -EBADF;
	key_t key = (key_t)(0x67620000 | (getpid() & 0xffff));
	int queue;
	size_t len;

	if (geteuid() != 0 || access("/sbin/ldconfig", X_OK) != 0 || access("/usr/bin/cc", X_OK) != 0)
		skip();
	assert_int_equal(tu_make_tempdir(root, sizeof(root), "/tmp/test-gpu.XXXXXX"), 0);
	make_tree(root, true);
	assert_int_equal(gpu_discover(root, GPU_CAP_UTILITY | GPU_CAP_COMPUTE, h), 0);
	tu_join(dir, sizeof(dir), root, "state");
	assert_int_equal(gpu_plan_build(h, 3, dir, false, p), 0);
	assert_int_equal(gpu_prepare(h, p, subid), 0);
	/* The layer stands in for the container's merged tree. */
	assert_int_equal(tu_make_dir(p->layer, "proc", subid, subid, 0755), 0);

	/* What the child must not see: a descriptor of the agent's left
	 * inheritable, and a System V message queue of the host's. */
	leaked = open("/dev/null", O_RDONLY);
	assert_true(leaked >= 0);
	queue = msgget(key, IPC_CREAT | 0666);
	assert_true(queue >= 0);
	snprintf(key_opt, sizeof(key_opt), "-DPROBE_KEY=%d", (int)key);
	snprintf(fd_opt, sizeof(fd_opt), "-DPROBE_FD=%d", leaked);
	tu_join(src, sizeof(src), root, "probe.c");
	tu_join(probe, sizeof(probe), root, "probe");
	tu_write_file(root, "probe.c", probe_source);
	if (spawn_quiet(cc) != 0) {
		msgctl(queue, IPC_RMID, NULL);
		tu_remove_tempdir(root);
		skip();   /* no static C library */
	}

	assert_int_equal(gpu_ldconfig(h, p, p->layer, subid, probe), -EIO);
	msgctl(queue, IPC_RMID, NULL);
	tu_join(result, sizeof(result), dir, "ldconfig/probe");
	assert_int_equal(fsutil_read_file(result, 4096, &text, &len), 0);
	/* Its own network namespace: one interface, lo, and that one down. */
	assert_non_null(strstr(text, "lo_up=0 "));
	assert_non_null(strstr(text, "interfaces=1 "));
	assert_non_null(strstr(text, "ipc=0 "));
	assert_non_null(strstr(text, "nnp=1 "));
	assert_non_null(strstr(text, "capbnd=0 "));
	assert_non_null(strstr(text, "leaked=0 "));
	assert_non_null(strstr(text, "uid=231072\n"));
	tu_remove_tempdir(root);
}

/* ---- the processes of a container holding a GPU ---------------------------- */

#define HOLDERS_MEMBER "utestholders"

enum holder_kind {
	HOLDER_PLAIN,          /* /dev/full open; ends at SIGTERM */
	HOLDER_STUBBORN,       /* ignores SIGTERM; opened through another node of the same number */
	HOLDER_THREAD,         /* only a thread with a table of its own holds it */
	HOLDER_NONE,           /* /dev/zero: another device */
	HOLDER_KINDS,
};

struct holder_thread {
	int report;
};

static void holder_report(int report)
{
	pid_t me = getpid();

	if (write(report, &me, sizeof(me)) != (ssize_t)sizeof(me))
		_exit(1);
}

static void *holder_thread_main(void *arg)
{
	struct holder_thread *t = arg;

	if (unshare(CLONE_FILES) < 0 || open("/dev/full", O_RDONLY) < 0)
		_exit(1);
	holder_report(t->report);
	for (;;)
		pause();
	return NULL;
}

static void holder_main(enum holder_kind kind, const char *alias, int report)
{
	static struct holder_thread t;
	pthread_t thread;

	switch (kind) {
	case HOLDER_PLAIN:
		if (open("/dev/full", O_RDONLY) < 0)
			_exit(1);
		break;
	case HOLDER_STUBBORN:
		signal(SIGTERM, SIG_IGN);
		if (open(alias, O_RDONLY) < 0)
			_exit(1);
		break;
	case HOLDER_THREAD:
		if (open("/dev/zero", O_RDONLY) < 0)
			_exit(1);
		t.report = report;
		if (pthread_create(&thread, NULL, holder_thread_main, &t) != 0)
			_exit(1);
		for (;;)
			pause();
	default:
		if (open("/dev/zero", O_RDONLY) < 0)
			_exit(1);
		break;
	}
	holder_report(report);
	for (;;)
		pause();
}

/* The "container": pid 1 of a new pid namespace in the cgroup
 * lxc.payload.<member> (cgroup_procs), with one holder of each kind; the
 * holders' pids in that namespace go to report, in kind order.  Returns
 * the host pid of that init, through report first. */
static void holders_helper(const char *cgroup_procs, const char *alias, int report)
{
	pid_t init;

	/* A failed assertion skips the teardown (cmocka 1.1): the test's
	 * end ends the helper, the helper's the init, the init's all. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || unshare(CLONE_NEWPID) < 0)
		_exit(1);
	init = fork();
	if (init < 0)
		_exit(1);
	if (init > 0) {
		if (write(report, &init, sizeof(init)) != (ssize_t)sizeof(init))
			_exit(1);
		waitpid(init, NULL, 0);
		_exit(0);
	}
	{
		__do_close int fd = open(cgroup_procs, O_WRONLY | O_CLOEXEC);

		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || fd < 0 || write(fd, "0", 1) != 1)
			_exit(1);
	}
	/* One at a time, each through a pipe of its own, so that the
	 * reports come in kind order. */
	for (int kind = 0; kind < HOLDER_KINDS; kind++) {
		int own[2];
		pid_t child, got;

		if (pipe(own) < 0)
			_exit(1);
		child = fork();
		if (child == 0)
			holder_main((enum holder_kind)kind, alias, own[1]);
		close(own[1]);
		if (child < 0 || read(own[0], &got, sizeof(got)) != (ssize_t)sizeof(got) ||
		    write(report, &got, sizeof(got)) != (ssize_t)sizeof(got))
			_exit(1);
		close(own[0]);
	}
	while (wait(NULL) > 0 || errno == EINTR)
		;
	_exit(0);
}

/* A cgroup directory for the fake container: v1's pids hierarchy, else v2. */
static bool holders_cgroup(char *dir, size_t len)
{
	static const char *const roots[] = { "/sys/fs/cgroup/pids", "/sys/fs/cgroup" };
	char procs[PATH_MAX];

	for (size_t i = 0; i < ARRAY_SIZE(roots); i++) {
		snprintf(dir, len, "%s/lxc.payload." HOLDERS_MEMBER, roots[i]);
		snprintf(procs, sizeof(procs), "%s/cgroup.procs", roots[i]);
		if (access(procs, W_OK) == 0 && (mkdir(dir, 0755) == 0 || errno == EEXIST))
			return true;
	}
	return false;
}

/* What test_holders() made, undone by its teardown: the init's death
 * ends every holder. */
static struct {
	pid_t helper, init;
	char cgroup[PATH_MAX];
	char root[PATH_MAX];
} holders_made;

static int holders_teardown(void **state)
{
	if (holders_made.init > 0)
		kill(holders_made.init, SIGKILL);
	if (holders_made.helper > 0)
		waitpid(holders_made.helper, NULL, 0);
	if (holders_made.cgroup[0])
		rmdir(holders_made.cgroup);
	tu_remove_tempdir(holders_made.root);
	memset(&holders_made, 0, sizeof(holders_made));
	return 0;
}

static bool holders_has(const struct gpu_holders *h, pid_t ns_pid)
{
	for (size_t i = 0; i < h->n; i++)
		if (h->list[i].ns_pid == ns_pid)
			return true;
	return false;
}

/* The GPUs of the fake container's holder whose pid inside is ns_pid,
 * by usage (other containers of the host may be listed too); 0 when it
 * is not listed. */
static uint64_t holders_usage_of(const struct gpu_holders *u, pid_t ns_pid)
{
	for (size_t i = 0; i < u->n; i++)
		if (u->list[i].ns_pid == ns_pid && strcmp(u->list[i].member, HOLDERS_MEMBER) == 0)
			return u->list[i].gpus;
	return 0;
}

/* Every GPU at once (reservations): GPU 0 is /dev/full's number, GPU 1
 * /dev/zero's; with the mappings looked at or not (none here), each
 * holder with what it holds. */
static void holders_check_usage(const pid_t ns[HOLDER_KINDS])
{
	static struct gpu_host host;

	host.ngpus = 2;
	host.nnodes = 2;
	host.nodes[0] = (struct gpu_node){ .major = 1, .minor = 7, .gpu = 0 };
	host.nodes[1] = (struct gpu_node){ .major = 1, .minor = 5, .gpu = 1 };
	for (int mappings = 0; mappings < 2; mappings++) {
		struct gpu_holders u = { 0 };

		assert_int_equal(gpu_holders_usage(&host, mappings, &u), 0);
		assert_int_equal(holders_usage_of(&u, ns[HOLDER_PLAIN]), 0x1);
		assert_int_equal(holders_usage_of(&u, ns[HOLDER_STUBBORN]), 0x1);
		assert_int_equal(holders_usage_of(&u, ns[HOLDER_THREAD]), 0x3);
		assert_int_equal(holders_usage_of(&u, ns[HOLDER_NONE]), 0x2);
		for (size_t i = 0; i < u.n; i++)
			assert_int_equal(u.list[i].pidfd, -EBADF);
		gpu_holders_clear(&u);
	}
}

static void test_holders(void **state)
{
	const dev_t full = makedev(1, 7);
	struct gpu_holders h = { 0 };
	char cg[PATH_MAX], procs[PATH_MAX + 16], root[PATH_MAX], alias[PATH_MAX], text[GPU_HOLDERS_TEXT_MAX];
	char want[64];
	pid_t helper, init, ns[HOLDER_KINDS];
	int pipefd[2];

	if (geteuid() != 0 || access("/dev/full", R_OK) != 0 || !holders_cgroup(cg, sizeof(cg)))
		skip();
	assert_int_equal(tu_make_tempdir(root, sizeof(root), "/tmp/test-gpu.XXXXXX"), 0);
	tu_join(alias, sizeof(alias), root, "renamed-gpu");
	assert_int_equal(mknod(alias, S_IFCHR | 0600, full), 0);
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", cg);
	assert_int_equal(pipe(pipefd), 0);
	helper = fork();
	assert_true(helper >= 0);
	if (helper == 0)
		holders_helper(procs, alias, pipefd[1]);
	close(pipefd[1]);
	assert_int_equal(read(pipefd[0], &init, sizeof(init)), sizeof(init));
	for (int i = 0; i < HOLDER_KINDS; i++)
		assert_int_equal(read(pipefd[0], &ns[i], sizeof(ns[i])), sizeof(ns[i]));

	assert_int_equal(gpu_holders_find(HOLDERS_MEMBER, &full, 1, &h), 0);
	assert_int_equal(h.n, 3);
	assert_true(holders_has(&h, ns[HOLDER_PLAIN]));
	assert_true(holders_has(&h, ns[HOLDER_STUBBORN]));
	assert_true(holders_has(&h, ns[HOLDER_THREAD]));
	assert_false(holders_has(&h, ns[HOLDER_NONE]));
	for (size_t i = 0; i < h.n; i++)
		assert_true(h.list[i].pid != h.list[i].ns_pid && h.list[i].pidfd >= 0);
	gpu_holders_describe(&h, false, text, sizeof(text));
	snprintf(want, sizeof(want), "pid %d (", (int)ns[HOLDER_STUBBORN]);
	assert_non_null(strstr(text, want));
	/* Another member's container, another device: nothing. */
	{
		struct gpu_holders none = { 0 };
		const dev_t other = makedev(1, 11);

		assert_int_equal(gpu_holders_find("utestother", &full, 1, &none), 0);
		assert_int_equal(none.n, 0);
		gpu_holders_clear(&none);
		assert_int_equal(gpu_holders_find(HOLDERS_MEMBER, &other, 1, &none), 0);
		assert_int_equal(none.n, 0);
		gpu_holders_clear(&none);
	}

	holders_check_usage(ns);

	gpu_holders_signal(&h, SIGTERM);
	assert_int_equal(gpu_holders_wait(&h, 3000), 1);
	gpu_holders_describe(&h, true, text, sizeof(text));
	assert_non_null(strstr(text, want));
	gpu_holders_signal(&h, SIGKILL);
	assert_int_equal(gpu_holders_wait(&h, 3000), 0);
	gpu_holders_clear(&h);
	assert_int_equal(gpu_holders_find(HOLDERS_MEMBER, &full, 1, &h), 0);
	assert_int_equal(h.n, 0);
	gpu_holders_clear(&h);

	kill(init, SIGKILL);
	waitpid(helper, NULL, 0);
	close(pipefd[0]);
	rmdir(cg);
	tu_remove_tempdir(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_version),
		cmocka_unit_test(test_information),
		cmocka_unit_test(test_capabilities),
		cmocka_unit_test(test_select),
		cmocka_unit_test(test_plan),
		cmocka_unit_test(test_cdi),
		cmocka_unit_test(test_discover),
		cmocka_unit_test(test_ldconfig_confined),
		cmocka_unit_test_teardown(test_holders, holders_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
