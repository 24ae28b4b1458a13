#!/bin/bash
# Disk quotas, tried as a member would break them: member A fills their
# disk past the limit and gets "Disk quota exceeded" while member B writes
# as usual and the agent's databases stay writable; df / inside shows the
# quota as the size; the container's root cannot take their files out of
# the quota's project; an admin's change applies at once, without a
# restart; usage shows in gpubox status; an agent restart keeps the pool
# mounted once.
#
# Two ways, whichever this kernel gives: project quotas in the layers'
# pool (a kernel with ext4 quota formats, as Debian's; CONFIG_QFMT_V2),
# or, on one without, each limited member's layer in an ext4 image of its
# own sized to the limit ("No space left on device" past it; a change
# applies at the container's next start where the agent may not resize a
# mounted file system).
. "$(dirname "$0")/lib.sh"

a=qa$GBX_ID
b=qb$GBX_ID
layers=$GBX_DIR/state/layers
cleanup() {
	remove_member "$a"
	remove_member "$b"
}
trap cleanup EXIT
skip() { tap_n=$((tap_n + 1)); echo "ok $tap_n # skip $*"; }
mounts_at() { awk -v p="$1" '$2 == p' /proc/self/mounts | wc -l; }
# df's size of / inside the container, in bytes.
df_size() { lxc_attach "$1" df -B1 --output=size / | tail -1 | tr -d ' '; }

check "member $a added" add_member "$a"
check "member $b added" add_member "$b"
check "$a starts" gpubox start --member "$a"
check "$b starts" gpubox start --member "$b"
[ -d "$layers/$a/upper" ] && [ ! -e "$GBX_DIR/state/users/$a/layer" ] &&
	ok "the layer lives in the pool ($layers/$a)" || not_ok "the layer is not in $layers/$a"

full='Disk quota exceeded|No space left on device'
# Restart $1 when the last limits set says the disk applies at its next start.
apply_disk() {
	if printf '%s' "$2" | jq -e '(.next_start // []) | index("disk")' >/dev/null; then
		gpubox stop --member "$1" >/dev/null && gpubox start --member "$1" >/dev/null
	fi
}
out=$(gpubox admin limits set "$a" disk=300M --json 2>&1)
printf '%s' "$out" | jq_check '.limits.disk == "300M"' >/dev/null &&
	ok "disk=300M set for $a while it runs" || not_ok "limits set disk=300M: $out"
apply_disk "$a" "$out"
if mountpoint -q "$layers/$a"; then
	images=1
	ok "this kernel has no project quotas in the pool: $a's layer is an image of its own"
	grep -q 'gets a layer image of their own' "$GBX_DIR/agent.log" &&
		ok "the agent's log says why the layers are images" || not_ok "no word in the agent's log"
else
	images=
	[ "$(mounts_at "$layers")" = 1 ] && ok "the layers' pool is mounted with project quotas" ||
		not_ok "neither a pool with quotas nor an image at $layers/$a"
	[ ! -e "$GBX_DIR/state/layer-images/$a.img" ] && ok "no image of its own where the pool has quotas" ||
		not_ok "$a has an image beside a pool with quotas"
fi

# ---- df, the fill, the neighbour ----------------------------------------------
size=$(df_size "$a")
[ "$size" -ge $((290 << 20)) ] && [ "$size" -le $((301 << 20)) ] &&
	ok "df / inside $a shows the quota as the size ($size)" || not_ok "df / inside $a: size $size"
[ "$(df_size "$b")" -gt $((300 << 20)) ] && ok "$b's df is not $a's quota" || not_ok "$b's df: $(df_size "$b")"

lxc_attach "$b" dd if=/dev/zero of=/root/neighbour bs=1M count=100 conv=fsync >"$GBX_DIR/b-dd.log" 2>&1 &
b_dd=$!
out=$(lxc_attach "$a" dd if=/dev/zero of=/root/fill bs=1M count=400 conv=fsync 2>&1)
printf '%s' "$out" | grep -Eq "$full" &&
	ok "$a writing past 300M gets '$(printf '%s' "$out" | grep -Eo "$full" | head -1)'" || { not_ok "$a's dd past the quota"; printf '%s\n' "$out" | diag; }
wait "$b_dd" && ok "$b wrote 100M at the same time" || { not_ok "$b's write failed"; diag <"$GBX_DIR/b-dd.log"; }
check "$a's own shell still works at the quota" lxc_attach "$a" true

check "the agent's database is writable (limits set)" gpubox admin limits set "$a" pids=5000
out=$(as_user "$a" port add 8080 --json)
printf '%s' "$out" | jq_check '.host_port > 0' >/dev/null &&
	ok "the agent's database is writable (port add by $a)" || not_ok "port add: $out"

# ---- the project cannot be left ------------------------------------------------
if [ -n "$images" ]; then
	refuse "root inside cannot make a node of the image's block device" 1 'not permitted' \
		lxc_attach "$a" mknod /root/loopdev b 7 0
	[ "$(stat -c %d "$layers/$a/upper")" != "$(stat -c %d "$layers/$b/upper")" ] &&
		ok "$a's files are on a file system of their own, not $b's" || not_ok "$a and $b share a file system"
else
	uid=$(id -u "$a")
	[ "$(lsattr -pd "$layers/$a/upper/root/fill" 2>/dev/null | awk '{print $1}')" = "$uid" ] &&
		ok "$a's file is charged to project $uid" || not_ok "project of the file: $(lsattr -pd "$layers/$a/upper/root/fill" 2>&1)"
	if lxc_attach "$a" sh -c 'command -v chattr' >/dev/null 2>&1; then
		refuse "root inside cannot move a file to project 0 (chattr -p 0)" 1 'Invalid argument|Operation not permitted' \
			lxc_attach "$a" chattr -p 0 /root/fill
		refuse "root inside cannot drop inheritance on its / (chattr -P)" 1 'Invalid argument|Operation not permitted' \
			lxc_attach "$a" chattr -P /
	else
		skip "chattr inside: the template has no e2fsprogs"
		skip "chattr -P inside: the template has no e2fsprogs"
	fi
	lxc_attach "$a" mkdir -p /root/newdir && lxc_attach "$a" sh -c 'echo x >/root/newdir/f'
	[ "$(lsattr -pd "$layers/$a/upper/root/newdir/f" 2>/dev/null | awk '{print $1}')" = "$uid" ] &&
		ok "a new file in a new directory is charged to the project" || not_ok "project of a new file"
fi

# ---- live change, usage ----------------------------------------------------------
out=$(gpubox admin limits set "$a" disk=600M --json 2>&1)
printf '%s' "$out" | jq_check '.limits.disk == "600M"' >/dev/null && ok "disk=600M set" || not_ok "disk=600M: $out"
apply_disk "$a" "$out"
check "$a writes 250M more under the new limit" lxc_attach "$a" dd if=/dev/zero of=/root/fill2 bs=1M count=250 conv=fsync
size=$(df_size "$a")
[ "$size" -ge $((590 << 20)) ] && [ "$size" -le $((601 << 20)) ] &&
	ok "df / follows the new quota ($size)" || not_ok "df / after the change: $size"
gpubox status --member "$a" --json | jq_check '.usage.disk_bytes > 500000000 and .limits.disk == "600M"' >/dev/null &&
	ok "gpubox status --json shows the layer's usage and the limit" ||
	not_ok "status: $(gpubox status --member "$a" --json | jq -c '{limits, usage}')"
gpubox status --member "$a" | grep -q '^Disk: .* used of 600M' &&
	ok "gpubox status prints a Disk: line" || not_ok "no Disk: line: $(gpubox status --member "$a" | grep -i disk)"

# ---- restart ---------------------------------------------------------------------
stop_pid "$(cat "$GBX_DIR/agent.pid")"
check "the agent starts again" restart_agent
where=$layers${images:+/$a}
[ "$(mounts_at "$where")" = 1 ] && ok "$where is mounted once after a restart" ||
	not_ok "mounts at $where: $(mounts_at "$where")"
check "$a's files are where they were" lxc_attach "$a" test -s /root/fill2
out=$(lxc_attach "$a" dd if=/dev/zero of=/root/fill3 bs=1M count=400 conv=fsync 2>&1)
printf '%s' "$out" | grep -Eq "$full" &&
	ok "the quota holds after the restart" || not_ok "no quota after the restart"

done_testing
