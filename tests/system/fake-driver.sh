# shellcheck shell=bash
# A fake NVIDIA driver tree of two GPUs for an agent's gpu_root, whose
# libnvidia-ml is the tests' fake NVML (tests/fake-nvml) when FAKE_DIR is
# given, and whose libcuda is an empty library: sourced by
# t0075-nvml-inside.sh, t0270-nesting.sh and scripts/gpu-proof's dry run.
#   fake_driver_nvml ROOT WORK VERSION [FAKE_DIR]
# ROOT and WORK (a scratch folder) are made anew.
fake_driver_nvml() {
	local root=$1 work=$2 ver=$3 fake=${4:-} lib=$1/usr/lib/x86_64-linux-gnu i
	rm -rf "$root" "$work"
	mkdir -p "$root/dev" "$root/etc" "$lib" "$root/usr/bin" "$work" \
		"$root/proc/driver/nvidia/gpus/0000:01:00.0" "$root/proc/driver/nvidia/gpus/0000:02:00.0"
	printf 'NVRM version: NVIDIA UNIX x86_64 Kernel Module  %s  Mon Jan  1 00:00:00 UTC 2024\n' \
		"$ver" >"$root/proc/driver/nvidia/version"
	for i in 0 1; do
		printf 'Model: \t\t Fake GPU %s\nGPU UUID: \t GPU-0000000%s-1111-2222-3333-444444444444\nBus Location: \t 0000:0%s:00.0\nDevice Minor: \t %s\n' \
			"$i" "$i" "$((i + 1))" "$i" >"$root/proc/driver/nvidia/gpus/0000:0$((i + 1)):00.0/information"
	done
	echo 'int fake_driver_symbol(void) { return 0; }' >"$work/lib.c"
	cc -shared -fPIC -o "$lib/libcuda.so.$ver" -Wl,-soname,libcuda.so.1 "$work/lib.c" || return 1
	ln -sf "libcuda.so.$ver" "$lib/libcuda.so.1"
	if [ -n "$fake" ]; then
		cp "$fake/libnvidia-ml.so.1" "$lib/libnvidia-ml.so.$ver" || return 1
		ln -sf "libnvidia-ml.so.$ver" "$lib/libnvidia-ml.so.1"
	fi
	echo /usr/lib/x86_64-linux-gnu >"$root/etc/ld.so.conf"
	ldconfig -X -r "$root" -C /etc/ld.so.cache -f /etc/ld.so.conf || return 1
	mknod -m 666 "$root/dev/nvidiactl" c 195 255
	mknod -m 666 "$root/dev/nvidia0" c 195 0
	mknod -m 666 "$root/dev/nvidia1" c 195 1
}
