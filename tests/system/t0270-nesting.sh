#!/bin/bash
# Nesting: Docker and Podman from Debian inside one member's real,
# unprivileged container, together.  Their stores are the member's
# (beside the layer, in its project quota, owned by the container's
# root), so Docker runs overlay2 and Podman overlay (kernel overlayfs in
# the user namespace), not vfs or fuse-overlayfs; an image imported from a
# tarball made in the test runs under both.  The container's id map stays
# unprivileged.  With the fake driver tree, the CDI spec the agent writes
# gives `podman run --device nvidia.com/gpu=all` the container's GPUs and
# driver files, and follows a live detach; Docker gets the same from the
# options written beside it.  nesting=no takes it all away
# at the next start (LXC's default confinement).  The packages come from
# the mirror of this machine's apt sources, as the template's do.
. "$(dirname "$0")/lib.sh"

m=ne$GBX_ID
root=$GBX_DIR/gpu
work=$GBX_DIR/gpu-nest
v=999.70.07
trap 'remove_member $m; rm -rf "$root" "$work"' EXIT

# The fake driver: two GPUs, libcuda, and here an nvidia-smi and the UVM node.
. "$(dirname "$0")/fake-driver.sh"
make_driver() {
	fake_driver_nvml "$root" "$work" "$v" || return 1
	printf '#!/bin/sh\necho "NVIDIA-SMI fake %s"\n' "$v" >"$root/usr/bin/nvidia-smi"
	chmod 755 "$root/usr/bin/nvidia-smi"
	mknod -m 666 "$root/dev/nvidia-uvm" c 509 0
}

inside() { lxc_attach "$m" "$@"; }
fail_with() { not_ok "$1"; printf '%s\n' "$2" | tail -25 | diag; }
started=$(date +%s)

check "fake driver built" make_driver
check "member $m added" add_member "$m"
if out=$(gpubox start --member "$m" 2>&1); then
	ok "$m starts (nesting is on by default)"
else
	log=$(sed -n 's/^lxc.log.file = //p' "$GBX_DIR/state/lxc/$m/config")
	fail_with "$m starts (nesting is on by default)" "$out"
	{ lxc-info -P "$GBX_DIR/state/lxc" -n "$m"; tail -20 "$log"
	  lxc_attach "$m" journalctl -b --no-pager | tail -40; } 2>&1 | diag
fi
subid=$(stat -c %u "$GBX_DIR/state/layers/$m/upper")
uid=$(id -u "$m")
conf=$GBX_DIR/state/lxc/$m/config

# ---- the container: still unprivileged, with nesting's settings --------------------
pid=$(lxc-info -P "$GBX_DIR/state/lxc" -n "$m" -pH)
map=$(cat "/proc/$pid/uid_map" 2>&1)
[ "$(echo "$map" | awk '{print $1, $2, $3}')" = "0 $subid 65536" ] &&
	ok "the uid map is the member's range alone (0 -> $subid, 65536 ids)" || fail_with "the uid map" "$map"
awk '$2 == 0' "/proc/$pid/uid_map" "/proc/$pid/gid_map" | grep -q . &&
	not_ok "host root is mapped" || ok "host root is not mapped into the container"
grep -qx 'lxc.apparmor.allow_nesting = 1' "$conf" && grep -qx 'lxc.apparmor.profile = generated' "$conf" &&
	ok "LXC's generated AppArmor profile, with its nesting rules" || fail_with "the profile's settings" "$(grep apparmor "$conf")"
out=$(inside sh -c 'grep -E " /dev/.lxc/(proc|sys) | /var/lib/(docker|containers) " /proc/self/mountinfo; ls -l /dev/fuse' 2>&1)
echo "$out" | grep -q ' /dev/.lxc/proc .* - proc ' && echo "$out" | grep -q ' /dev/.lxc/sys .* - sysfs ' &&
	ok "a pure /proc and /sys for nested containers at /dev/.lxc" || fail_with "/dev/.lxc/proc and sys" "$out"
echo "$out" | grep -q ' /var/lib/docker ' && echo "$out" | grep -q ' /var/lib/containers ' &&
	! echo "$out" | grep -E ' /var/lib/(docker|containers) ' | grep -q ' - overlay ' &&
	ok "/var/lib/docker and /var/lib/containers are bound, not on the overlay" || fail_with "the stores' mounts" "$out"
echo "$out" | grep -q '^crw-rw-rw- .* 10, 229 .*/dev/fuse' && ok "/dev/fuse is there, open to every user" ||
	fail_with "/dev/fuse" "$out"
inside setpriv --reuid="$uid" --regid="$uid" --clear-groups sh -c 'exec 3<>/dev/fuse' &&
	ok "the member's own user opens /dev/fuse" || not_ok "the member's own user opens /dev/fuse"
nested=$GBX_DIR/state/layers/$m/nested
[ "$(stat -c %u:%g "$nested/docker" "$nested/containers" | sort -u)" = "$subid:$subid" ] &&
	ok "the stores are the container root's ($subid)" || fail_with "the stores' owner" "$(ls -ln "$nested")"
# The project of the member's files (their uid where the pool has quotas:
# t0210 tests those) is the stores' too.
project=$(lsattr -pd "$GBX_DIR/state/layers/$m/upper" 2>/dev/null | awk '{print $1}')
[ -n "$project" ] && [ "$(lsattr -pd "$nested/docker" | awk '{print $1}')" = "$project" ] &&
	[ "$(lsattr -pd "$nested/containers" | awk '{print $1}')" = "$project" ] &&
	ok "the stores are in the layer's project ($project): they count in the member's disk quota" ||
	fail_with "the stores' project" "$(lsattr -pd "$GBX_DIR/state/layers/$m/upper" "$nested/docker" 2>&1)"
[ "$project" = 0 ] && echo "# the layers' pool has no project quotas here (see the agent's log): project 0 is every file's"

# ---- Docker and Podman from the mirror ----------------------------------------------
t0=$(date +%s)
out=$(inside sh -c 'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io podman busybox-static' 2>&1)
[ $? = 0 ] && ok "docker.io and podman installed from the mirror ($(($(date +%s) - t0)) s)" ||
	fail_with "docker.io and podman installed" "$out"
# An image made here: busybox-static as its only program.
inside sh -c 'rm -rf /tmp/img && mkdir -p /tmp/img/bin /tmp/img/dev /tmp/img/proc /tmp/img/sys &&
	cp /bin/busybox /tmp/img/bin/ && ln -s busybox /tmp/img/bin/sh && ln -s busybox /tmp/img/bin/ls &&
	ln -s busybox /tmp/img/bin/cat && tar -C /tmp/img -cf /tmp/img.tar .'
wait_for 60 inside docker info
out=$(inside sh -c 'docker info --format "{{.Driver}}"' 2>&1)
[ "$out" = overlay2 ] && ok "docker info reports overlay2" || fail_with "docker info reports overlay2" "$out"
check "docker imports the image" inside docker import /tmp/img.tar gbxnest:1
out=$(inside docker run --rm --network none gbxnest:1 /bin/busybox echo ok 2>&1)
[ "$out" = ok ] && ok "docker run prints ok" || fail_with "docker run prints ok" "$out"
out=$(inside sh -c 'podman info --format "{{.Store.GraphDriverName}} {{index .Store.GraphOptions \"overlay.mount_program\"}}"' 2>&1)
echo "$out" | grep -q '^overlay' && ! echo "$out" | grep -q fuse-overlayfs &&
	ok "podman uses kernel overlay" || fail_with "podman uses kernel overlay" "$out"
check "podman imports the image" inside podman import /tmp/img.tar gbxnest:1
# (On cgroup v1 podman warns that conmon gets no cgroup of its own.)
out=$(inside podman run --rm --network none gbxnest:1 /bin/busybox echo ok 2>"$GBX_DIR/podman.err")
[ "$out" = ok ] && ok "podman run prints ok" || fail_with "podman run prints ok" "$out $(cat "$GBX_DIR/podman.err")"

# ---- GPUs through CDI ---------------------------------------------------------------
spec=$(inside cat /etc/cdi/gpubox-nvidia.json 2>&1)
echo "$spec" | jq -e '.kind == "nvidia.com/gpu" and ([.devices[].name] | index("all") != null and index("0") != null and index("1") != null)' >/dev/null &&
	ok "the CDI spec names GPUs 0, 1 and all" || fail_with "the CDI spec" "$spec"
run_gpu() { # what podman's container sees with --device nvidia.com/gpu=DEV
	inside podman run --rm --network none --device "nvidia.com/gpu=$1" gbxnest:1 \
		/bin/busybox sh -c 'ls -l /dev/ | grep nvidia; ls /usr/local/nvidia/lib64; echo "LD=$LD_LIBRARY_PATH"; nvidia-smi' \
		2>"$GBX_DIR/podman.err" || { cat "$GBX_DIR/podman.err"; return 125; }
}
out=$(run_gpu all)
echo "$out" | grep -q '195, *0 .*nvidia0$' && echo "$out" | grep -q '195, *1 .*nvidia1$' &&
	echo "$out" | grep -q '195, *255 .*nvidiactl$' && ok "podman --device nvidia.com/gpu=all gets both GPUs' nodes" ||
	fail_with "podman --device nvidia.com/gpu=all gets both GPUs' nodes" "$out"
echo "$out" | grep -qx "libcuda.so.$v" && echo "$out" | grep -qx "libcuda.so.1" &&
	echo "$out" | grep -qx "LD=/usr/local/nvidia/lib:/usr/local/nvidia/lib64" &&
	echo "$out" | grep -qx "NVIDIA-SMI fake $v" && ok "and the injected driver files" ||
	fail_with "and the injected driver files" "$out"
# Docker 20.10 has no CDI: the options the agent writes beside the spec.
out=$(inside sh -c 'docker run --rm --network none $(cat /etc/cdi/gpubox-nvidia.docker-args) gbxnest:1 \
	/bin/busybox sh -c "ls -l /dev/ | grep nvidia; ls /usr/local/nvidia/lib64; nvidia-smi"' 2>&1)
echo "$out" | grep -q '195, *0 .*nvidia0$' && echo "$out" | grep -q '195, *1 .*nvidia1$' &&
	echo "$out" | grep -qx "libcuda.so.1" && echo "$out" | grep -qx "NVIDIA-SMI fake $v" &&
	ok "docker run with the options of gpubox-nvidia.docker-args gets the GPUs and the driver" ||
	fail_with "docker run with gpubox-nvidia.docker-args" "$out"
check "detach GPU 1 live" gpubox admin gpu detach "$m" 1
out=$(inside cat /etc/cdi/gpubox-nvidia.docker-args)
echo "$out" | grep -qx -- '--device=/dev/nvidia0' && ! echo "$out" | grep -q nvidia1 &&
	ok "after the detach, Docker's options no longer name GPU 1" || fail_with "Docker's options after the detach" "$out"
out=$(run_gpu all)
echo "$out" | grep -q 'nvidia0$' && ! echo "$out" | grep -q 'nvidia1$' &&
	ok "after the detach, gpu=all no longer has GPU 1" || fail_with "after the detach, gpu=all no longer has GPU 1" "$out"
refuse "a GPU outside the container's set is unknown to podman" 125 'nvidia.com/gpu=1|unresolvable|not found' run_gpu 1
check "GPU 1 attached back" gpubox admin gpu attach "$m" 1

# ---- rebuild empties the stores; nesting=no ------------------------------------------
out=$(gpubox admin limits set "$m" nesting=no 2>&1)
echo "$out" | grep -q "applies at the container's next start" &&
	ok "nesting=no for the running $m, said to apply at its next start" ||
	fail_with "nesting=no for the running $m, said to apply at its next start" "$out"
check "$m rebuilt (and started again)" gpubox rebuild --member "$m" --yes
[ -z "$(ls -A "$nested" 2>/dev/null)" ] && ok "rebuild removed the stores" || fail_with "rebuild removed the stores" "$(ls -la "$nested")"
grep -qx 'lxc.apparmor.allow_nesting = 0' "$conf" && ok "nesting=no: LXC's default confinement" ||
	fail_with "nesting=no: allow_nesting = 0" "$(grep apparmor "$conf")"
out=$(inside sh -c 'grep -E " /dev/.lxc/| /var/lib/(docker|containers) " /proc/self/mountinfo; ls /dev/fuse' 2>&1)
! echo "$out" | grep -q '/dev/.lxc/\|/var/lib/docker\|/var/lib/containers' && echo "$out" | grep -q 'No such file' &&
	ok "nesting=no: no stores, no /dev/.lxc, no /dev/fuse" || fail_with "nesting=no: nothing of nesting" "$out"
out=$(gpubox status --member "$m" --json | jq -r .limits.nesting)
[ "$out" = no ] && ok "status shows nesting: no" || fail_with "status shows nesting: no" "$out"
out=$(as_user "$m" status 2>&1)
echo "$out" | grep -q '^Nesting: *no .*ask an admin' && ok "the member's status says to ask an admin for nesting" ||
	fail_with "the member's status says to ask an admin for nesting" "$out"
refuse "nesting takes yes or no" 2 'nesting is yes' gpubox admin limits set "$m" nesting=maybe

echo "# t0270 took $(($(date +%s) - started)) s"
done_testing
