#!/bin/bash
# GPUs without a GPU: a fake NVIDIA driver tree (real ELF libraries named
# with a fake version, a real ld.so.cache made by ldconfig, device nodes
# made with mknod, a /proc/driver/nvidia tree) at the suite's gpu_root.
# The agent injects it into a real container at every start.
. "$(dirname "$0")/lib.sh"

m=ga$GBX_ID
root=$GBX_DIR/gpu
work=$GBX_DIR/gpu-build
trap 'remove_member $m; rm -rf "$root" "$work"' EXIT

# make_driver VERSION [MAJOR MINOR]: the whole tree, replacing any earlier
# one; GPU 1's node gets the device numbers given (an openable device, so
# that a process can hold it) instead of 195 1.
make_driver() {
	local ver=$1 gpu1_major=${2:-195} gpu1_minor=${3:-1} lib=$root/usr/lib/x86_64-linux-gnu
	rm -rf "$root" "$work"
	mkdir -p "$root/dev" "$root/etc" "$lib" "$root/usr/bin" "$work" \
		"$root/proc/driver/nvidia/gpus/0000:01:00.0" "$root/proc/driver/nvidia/gpus/0000:02:00.0"
	printf 'NVRM version: NVIDIA UNIX x86_64 Kernel Module  %s  Mon Jan  1 00:00:00 UTC 2024\nGCC version:  gcc version 12.2.0\n' \
		"$ver" >"$root/proc/driver/nvidia/version"
	printf 'ResmanDebugLevel: 4294967295\nModifyDeviceFiles: 1\n' >"$root/proc/driver/nvidia/params"
	for i in 0 1; do
		printf 'Model: \t\t Fake GPU %s\nIRQ:   \t\t 42\nGPU UUID: \t GPU-0000000%s-1111-2222-3333-444444444444\nBus Type: \t PCIe\nBus Location: \t 0000:0%s:00.0\nDevice Minor: \t %s\n' \
			"$i" "$i" "$((i + 1))" "$i" >"$root/proc/driver/nvidia/gpus/0000:0$((i + 1)):00.0/information"
	done
	echo 'int fake_driver_symbol(void) { return 0; }' >"$work/lib.c"
	for l in libcuda libnvidia-ml libnvidia-ptxjitcompiler libnvidia-cfg libnvidia-encode; do
		cc -shared -fPIC -o "$lib/$l.so.$ver" -Wl,-soname,"$l.so.1" "$work/lib.c" || return 1
		ln -sf "$l.so.$ver" "$lib/$l.so.1"
	done
	# A leftover of another version is in the cache too; it must be left out.
	cc -shared -fPIC -o "$lib/libnvidia-cfg.so.1.0.0" -Wl,-soname,libnvidia-cfgold.so.1 "$work/lib.c"
	ln -sf libnvidia-cfg.so.1.0.0 "$lib/libnvidia-cfgold.so.1"
	echo /usr/lib/x86_64-linux-gnu >"$root/etc/ld.so.conf"
	ldconfig -X -r "$root" -C /etc/ld.so.cache -f /etc/ld.so.conf || return 1
	printf '#!/bin/sh\necho "NVIDIA-SMI fake %s"\n' "$ver" >"$root/usr/bin/nvidia-smi"
	chmod 755 "$root/usr/bin/nvidia-smi"
	mknod -m 666 "$root/dev/nvidiactl" c 195 255
	mknod -m 666 "$root/dev/nvidia0" c 195 0
	mknod -m 666 "$root/dev/nvidia1" c "$gpu1_major" "$gpu1_minor"
	mknod -m 666 "$root/dev/nvidia-uvm" c 509 0
	mknod -m 666 "$root/dev/nvidia-uvm-tools" c 509 1
}

inside() { lxc_attach "$m" "$@"; }
devices_list() { cat /sys/fs/cgroup/devices/lxc.payload."$m"/devices.list 2>/dev/null; }
# What of the driver could have landed in the member's own layer.
layer_leaks() {
	local upper=$GBX_DIR/state/layers/$m/upper
	find "$upper" \( -path "$upper/usr/lib/gpubox-nvidia*" -o -path "$upper/etc/ld.so.cache" \
		-o -path "$upper/etc/ld.so.conf.d/gpubox-nvidia.conf" -o -name 'nvidia*' -o -name 'libcuda*' \
		-o -path "$upper/proc/*" -o -path "$upper/dev/*" \) -print 2>/dev/null
}

v1=999.10.01
v2=999.20.02
check "fake driver $v1 built" make_driver $v1
check "member $m added" add_member "$m"
check "$m starts with the fake driver" gpubox start --member "$m"

out=$(inside sh -c "ls /usr/lib/gpubox-nvidia/; ldconfig -p; nvidia-smi; cat /proc/driver/nvidia/version /proc/driver/nvidia/params; ls -l /dev/nvidia*" 2>&1)
echo "$out" | grep -q "libcuda.so.$v1" && ok "the driver's libraries are in the container" ||
	{ not_ok "the driver's libraries are in the container"; echo "$out" | diag; }
echo "$out" | grep -q "libcuda.so.1 .*=> /usr/lib/gpubox-nvidia/libcuda.so.1" &&
	ok "ldconfig -p inside finds libcuda.so.1" || not_ok "ldconfig -p inside finds libcuda.so.1"
echo "$out" | grep -q "libnvidia-ml.so.1 .*=> /usr/lib/gpubox-nvidia/libnvidia-ml.so.1" &&
	ok "ldconfig -p inside finds libnvidia-ml.so.1" || not_ok "ldconfig -p inside finds libnvidia-ml.so.1"
echo "$out" | grep -q "libcuda.so.1" && ! echo "$out" | grep -q "libnvidia-encode" &&
	ok "video files are left out by default" || not_ok "video files are left out by default"
echo "$out" | grep -q "libnvidia-cfg.so.$v1" && ! echo "$out" | grep -q "libnvidia-cfg.so.1.0.0\|cfgold" &&
	ok "files of another version are left out" || not_ok "files of another version are left out"
echo "$out" | grep -q "NVIDIA-SMI fake $v1" && ok "nvidia-smi is the host's" || not_ok "nvidia-smi is the host's"
echo "$out" | grep -q "Kernel Module  $v1" && echo "$out" | grep -q "ModifyDeviceFiles: 0" &&
	ok "/proc/driver/nvidia shows the driver, with ModifyDeviceFiles: 0" ||
	not_ok "/proc/driver/nvidia shows the driver, with ModifyDeviceFiles: 0"
echo "$out" | grep -q "195, *0 .*/dev/nvidia0" && echo "$out" | grep -q "195, *1 .*/dev/nvidia1" &&
	echo "$out" | grep -q "195, *255 .*/dev/nvidiactl" && echo "$out" | grep -q "509, *1 .*/dev/nvidia-uvm-tools" &&
	ok "the device nodes of every GPU and the control nodes are there" ||
	{ not_ok "the device nodes of every GPU and the control nodes are there"; echo "$out" | grep nvidia | diag; }
refuse "the driver's files cannot be written" 2 'Read-only|Permission denied' inside sh -c "echo x >>/usr/lib/gpubox-nvidia/libcuda.so.$v1"
opts=$(inside grep " /usr/lib/gpubox-nvidia/libcuda.so.$v1 " /proc/self/mountinfo)
echo "$opts" | grep -q 'ro,nosuid,nodev' && ok "the files are mounted ro,nosuid,nodev" ||
	{ not_ok "the files are mounted ro,nosuid,nodev"; echo "$opts" | diag; }
devices_list | grep -q 'c 195:1 rwm' && devices_list | grep -q 'c 509:0 rwm' &&
	ok "the device cgroup allows the nodes" || { not_ok "the device cgroup allows the nodes"; devices_list | diag; }

st=$(gpubox status --member "$m" --json)
[ "$(echo "$st" | jq -r .driver)" = "$v1" ] && [ "$(echo "$st" | jq '.gpus | length')" = 2 ] &&
	ok "status shows the driver and the container's GPUs" ||
	{ not_ok "status shows the driver and the container's GPUs"; echo "$st" | diag; }
gpubox status --member "$m" | grep -q "GPU 1" && ok "status prints the GPUs" || not_ok "status prints the GPUs"

check "detach GPU 1 live" gpubox admin gpu detach "$m" 1
inside test ! -e /dev/nvidia1 && ok "/dev/nvidia1 is gone from the running container" ||
	not_ok "/dev/nvidia1 is gone from the running container"
devices_list | grep -q 'c 195:0 ' && ! devices_list | grep -q 'c 195:1 ' &&
	ok "the device cgroup no longer allows GPU 1" || { not_ok "the device cgroup no longer allows GPU 1"; devices_list | diag; }
inside test -c /dev/nvidia0 && ok "GPU 0 stays" || not_ok "GPU 0 stays"
[ "$(member_field "$m" 'gpus | length')" = 1 ] && ok "status shows one GPU" || not_ok "status shows one GPU"
check "attach GPU 1 back live (by UUID)" gpubox admin gpu attach "$m" GPU-00000001-1111-2222-3333-444444444444
inside test -c /dev/nvidia1 && ok "/dev/nvidia1 is back" || not_ok "/dev/nvidia1 is back"
devices_list | grep -q 'c 195:1 rwm' && ok "the device cgroup allows GPU 1 again" ||
	not_ok "the device cgroup allows GPU 1 again"
refuse "attaching a GPU the server lacks is refused" 1 'no GPU 7' gpubox admin gpu attach "$m" 7
refuse "a member cannot attach GPUs" 1 'admin' as_user "$m" admin gpu attach "$m" 0

check "detach GPU 0 (persisted)" gpubox admin gpu detach "$m" 0
check "$m stops" gpubox stop --member "$m"
leaks=$(layer_leaks)
[ -z "$leaks" ] && ok "nothing of the driver is in the member's layer" ||
	{ not_ok "nothing of the driver is in the member's layer"; echo "$leaks" | diag; }

check "fake driver upgraded to $v2" make_driver $v2
check "$m starts again" gpubox start --member "$m"
out=$(inside sh -c "ls /usr/lib/gpubox-nvidia/; ldconfig -p | grep gpubox; nvidia-smi; ls /dev/" 2>&1)
echo "$out" | grep -q "libcuda.so.$v2" && ok "the new driver's files are injected" ||
	{ not_ok "the new driver's files are injected"; echo "$out" | diag; }
echo "$out" | grep -q "$v2" && ! echo "$out" | grep -q "$v1" && ok "no file of the old driver remains" ||
	{ not_ok "no file of the old driver remains"; echo "$out" | grep "$v1" | diag; }
echo "$out" | grep -q "NVIDIA-SMI fake $v2" && ok "nvidia-smi is the new one" || not_ok "nvidia-smi is the new one"
echo "$out" | grep -qx nvidia1 && ! echo "$out" | grep -qx nvidia0 &&
	ok "the persisted GPU set holds at start (GPU 1 only)" ||
	{ not_ok "the persisted GPU set holds at start (GPU 1 only)"; echo "$out" | grep nvidia | diag; }
[ "$(member_field "$m" driver)" = "$v2" ] && ok "status shows the new driver" || not_ok "status shows the new driver"

check "$m stops" gpubox stop --member "$m"
rm -rf "$root"
check "$m starts on a server without GPU" gpubox start --member "$m"
gpubox status --member "$m" | grep -q "no NVIDIA GPU on this server" &&
	ok "status says there is no NVIDIA GPU" || not_ok "status says there is no NVIDIA GPU"
inside sh -c 'test ! -e /dev/nvidiactl && test ! -e /usr/lib/gpubox-nvidia' &&
	ok "nothing of a driver is in the container" || not_ok "nothing of a driver is in the container"
check "$m stops" gpubox stop --member "$m"
leaks=$(layer_leaks)
[ -z "$leaks" ] && ok "the member's layer is still free of driver files" ||
	{ not_ok "the member's layer is still free of driver files"; echo "$leaks" | diag; }

# A detach must leave nothing of the GPU in the container: not a node, not
# a cgroup rule, and no process still holding the device open.  GPU 1 is
# given the numbers of /dev/full (1:7), a device that opens without a
# driver; the container's own /dev/full shows what its cgroup allows.
check "fake driver with GPU 1 as 1:7" make_driver $v1 1 7
check "$m starts with GPU 1" gpubox start --member "$m"
# held_by N: the pid, inside, of holder N (written before it holds the GPU).
held_by() { inside cat "/run/gpu-holder$1" 2>/dev/null; }
# One holder ends at SIGTERM; the other ignores it, and holds the GPU
# through a bind mount of the node at another path.
inside sh -c 'setsid sh -c "echo \$\$ >/run/gpu-holder1; exec sleep infinity 3</dev/nvidia1" </dev/null >/dev/null 2>&1 &'
inside sh -c 'touch /run/gpu-alias && mount --bind /dev/nvidia1 /run/gpu-alias &&
	setsid sh -c "trap \"\" TERM; echo \$\$ >/run/gpu-holder2; exec sleep infinity 4</run/gpu-alias" </dev/null >/dev/null 2>&1 &'
wait_for 10 inside sh -c 'test -s /run/gpu-holder1 && test -s /run/gpu-holder2' &&
	ok "two processes in the container hold GPU 1" || not_ok "two processes in the container hold GPU 1"
p1=$(held_by 1)
p2=$(held_by 2)
# fds_on_gpu1: descriptors of any process in the container on device 1:7.
fds_on_gpu1() {
	inside sh -c 'for f in /proc/[0-9]*/fd/*; do stat -L -c "%t:%T %F" "$f" 2>/dev/null; done' |
		grep -c '^1:7 character'
}
[ "$(fds_on_gpu1)" = 2 ] && ok "the container sees two descriptors on the GPU" ||
	not_ok "the container sees two descriptors on the GPU"

refuse "a detach while processes hold the GPU is refused, naming them" 1 \
	"in use .*pid $p1 \(sleep infinity\).*pid $p2 \(sleep infinity\)|in use .*pid $p2 \(sleep infinity\).*pid $p1 \(sleep infinity\)" \
	gpubox admin gpu detach "$m" 1
inside kill -0 "$p1" "$p2" && ok "the refused detach left the holders running" ||
	not_ok "the refused detach left the holders running"
inside test -c /dev/nvidia1 && devices_list | grep -q 'c 1:7 rwm' &&
	[ "$(member_field "$m" 'gpus | map(.index) | join(",")')" = 1 ] &&
	ok "the refused detach changed nothing (node, cgroup rule, GPU set)" ||
	{ not_ok "the refused detach changed nothing (node, cgroup rule, GPU set)"; devices_list | diag; }

out=$(gpubox admin gpu detach "$m" 1 --force --json 2>"$work/progress")
rc=$?
[ "$rc" = 0 ] && echo "$out" | jq_check '.changed and (.ended | length == 2) and (.gpus | length == 0)' >/dev/null &&
	ok "detach --force succeeds and names the two processes it ended" ||
	{ not_ok "detach --force succeeds and names the two processes it ended (exit $rc)"; { echo "$out"; cat "$work/progress"; } | diag; }
grep -q "SIGTERM" "$work/progress" && grep -q "SIGKILL to what still holds GPU 1: pid $p2 " "$work/progress" &&
	ok "the CLI showed SIGTERM to both, then SIGKILL to the one that ignored it" ||
	{ not_ok "the CLI showed SIGTERM to both, then SIGKILL to the one that ignored it"; diag <"$work/progress"; }
! inside kill -0 "$p1" 2>/dev/null && ! inside kill -0 "$p2" 2>/dev/null &&
	ok "the holders are gone" || not_ok "the holders are gone"
[ "$(fds_on_gpu1)" = 0 ] && ok "no descriptor in the container is on the GPU any more" ||
	not_ok "no descriptor in the container is on the GPU any more"
inside test ! -e /dev/nvidia1 && ok "the GPU's node is gone from the container" ||
	not_ok "the GPU's node is gone from the container"
! devices_list | grep -q 'c 1:7 ' && ok "the device cgroup no longer lists the GPU" ||
	{ not_ok "the device cgroup no longer lists the GPU"; devices_list | diag; }
refuse "the device cgroup denies the GPU, whatever the path" 1 'Operation not permitted' \
	inside head -c1 /run/gpu-alias
check "$m stops" gpubox stop --member "$m"
done_testing
