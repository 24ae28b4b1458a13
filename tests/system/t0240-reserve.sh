#!/bin/bash
# GPU reservations: a reserved GPU leaves every other member's running
# container (its node and its device-cgroup rule) and stays in the
# holder's; it comes back at the end (release, expiry, an agent killed
# meanwhile).  Eight fake GPUs (the driver tree t0070 builds, GPU 1 with
# the numbers of /dev/full so that a process can hold it open) and the
# fake NVML for gpubox gpus; three real containers.
. "$(dirname "$0")/lib.sh"

a=ra$GBX_ID
b=rb$GBX_ID
c=rc$GBX_ID
root=$GBX_DIR/gpu
saved=$GBX_DIR/gpubox.conf.before-reserve
cp "$GBX_CONF" "$saved"
hook_pid=
cleanup_reserve() {
	stop_pid "$hook_pid"
	for m in "$a" "$b" "$c"; do remove_member "$m"; done
	cp "$saved" "$GBX_CONF"
	kill "$(cat "$GBX_DIR/agent.pid")" 2>/dev/null
	sleep 0.5
	restart_agent
	rm -rf "$root" "$GBX_NVML_STATE" "$GBX_DIR"/reserve-hook.*
}
trap cleanup_reserve EXIT

# The driver tree: GPUs 0-7 (/dev/nvidiaN is 195:N, but GPU 1's is 1:7).
make_driver() {
	local ver=999.40.04 i
	rm -rf "$root"
	mkdir -p "$root/dev" "$root/etc" "$root/usr/lib" || return 1
	for i in $(seq 0 7); do
		mkdir -p "$root/proc/driver/nvidia/gpus/0000:0$((i + 1)):00.0"
		printf 'Model: \t\t Fake GPU %s\nGPU UUID: \t GPU-0000000%s-1111-2222-3333-444444444444\nBus Location: \t 0000:0%s:00.0\nDevice Minor: \t %s\n' \
			"$i" "$i" "$((i + 1))" "$i" >"$root/proc/driver/nvidia/gpus/0000:0$((i + 1)):00.0/information"
		if [ "$i" = 1 ]; then mknod -m 666 "$root/dev/nvidia1" c 1 7; else mknod -m 666 "$root/dev/nvidia$i" c 195 "$i"; fi
	done
	printf 'NVRM version: NVIDIA UNIX x86_64 Kernel Module  %s  Mon Jan  1 00:00:00 UTC 2024\n' \
		"$ver" >"$root/proc/driver/nvidia/version"
	mknod -m 666 "$root/dev/nvidiactl" c 195 255
	echo 'int fake_driver_symbol(void) { return 0; }' >"$root/lib.c"
	cc -shared -fPIC -o "$root/usr/lib/libcuda.so.$ver" -Wl,-soname,libcuda.so.1 "$root/lib.c" || return 1
	ln -sf "libcuda.so.$ver" "$root/usr/lib/libcuda.so.1"
	echo /usr/lib >"$root/etc/ld.so.conf"
	ldconfig -X -r "$root" -C /etc/ld.so.cache -f /etc/ld.so.conf || return 1
	nvml_state </dev/null
}
# The fake NVML's GPUs 0-7 (GPU $busy_gpu at 50 %, the others at 0 %) and
# processes "GPU PID SM" on stdin, each holding 4 GiB.
busy_gpu=
nvml_state() {
	local i gpu pid sm
	{
		for i in $(seq 0 7); do
			echo "gpu $i uuid=GPU-0000000$i-1111-2222-3333-444444444444 name=Fake_GPU minor=$i util=$([ "$i" = "$busy_gpu" ] && echo 50 || echo 0) total=85899345920 used=0"
		done
		while read -r gpu pid sm; do echo "proc $gpu pid=$pid mem=4294967296 sm=$sm"; done
	} >"$GBX_NVML_STATE.tmp" && mv "$GBX_NVML_STATE.tmp" "$GBX_NVML_STATE"
}
# host_pid_in MEMBER PATTERN: the host pid of MEMBER's process whose command line matches.
host_pid_in() {
	local p
	for p in $(pgrep -f "$2"); do
		grep -q "lxc.payload.$1[/-]\|lxc.payload.$1\$" "/proc/$p/cgroup" 2>/dev/null && { echo "$p"; return 0; }
	done
	return 1
}

# set_config LINE...: the suite's configuration plus the lines, the agent restarted.
set_config() {
	cp "$saved" "$GBX_CONF"
	printf '%s\n' "$@" >>"$GBX_CONF"
	kill "$(cat "$GBX_DIR/agent.pid")"
	wait_for 10 sh -c "! kill -0 $(cat "$GBX_DIR/agent.pid") 2>/dev/null"
	restart_agent
}
rules() { set_config "reserve_shared_gpus = 7" "$@"; }

rule_of() { [ "$1" = 1 ] && echo "c 1:7 rwm" || echo "c 195:$1 rwm"; }
devices_list() { cat "/sys/fs/cgroup/devices/lxc.payload.$1/devices.list" 2>/dev/null; }
# has_gpu MEMBER I / lacks_gpu MEMBER I: node and device rule of GPU I.
has_gpu() { lxc_attach "$1" test -c "/dev/nvidia$2" && devices_list "$1" | grep -qx "$(rule_of "$2")"; }
lacks_gpu() { ! lxc_attach "$1" test -e "/dev/nvidia$2" && ! devices_list "$1" | grep -qx "$(rule_of "$2")"; }
all_have() { local m i; for m in "$@"; do for i in 0 1 2 3 4 5 6; do has_gpu "$m" "$i" || return 1; done; done; }
reservations() { gpubox reservations --json | jq -c '[.reservations[] | {member, gpus, state}]'; }
none_reserved() { [ "$(reservations)" = "[]" ]; }
ms_now() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
# reserve MEMBER ARGS...: gpubox reserve as the member, its id on stdout.
reserve() { local m=$1; shift; as_user "$m" reserve "$@" --json | jq -er .reservation.id; }
release() { as_user "$1" release "$2" >/dev/null; }
# A process of MEMBER holding GPU 1 open (its pid inside into /run/gpu-hold).
hold_gpu1() {
	lxc_attach "$1" sh -c 'rm -f /run/gpu-hold; setsid sh -c "echo \$\$ >/run/gpu-hold; exec sleep 100000 3</dev/nvidia1" </dev/null >/dev/null 2>&1 &'
	wait_for 10 lxc_attach "$1" test -s /run/gpu-hold
}
unhold_gpu1() { lxc_attach "$1" sh -c 'kill $(cat /run/gpu-hold)'; }
state_of() { gpubox reservations --json | jq -r --argjson id "$1" '.reservations[] | select(.id == $id) | .state'; }

check "eight fake GPUs" make_driver
check "the agent restarts with GPU 7 never reservable" rules
for m in "$a" "$b" "$c"; do
	check "member $m added" add_member "$m"
	check "$m starts" gpubox start --member "$m"
done
all_have "$a" "$b" "$c" && ok "every container has GPUs 0-6 at first" || not_ok "every container has GPUs 0-6 at first"

# ---- a reservation, its release ----------------------------------------------
t0=$(ms_now)
id=$(reserve "$a" --gpu 1 --for 1h)
t1=$(ms_now)
[ -n "$id" ] && ok "$a reserves GPU 1 (reservation $id, $((t1 - t0)) ms)" || not_ok "$a reserves GPU 1"
lacks_gpu "$b" 1 && lacks_gpu "$c" 1 && [ $((t1 - t0)) -lt 1000 ] &&
	ok "within a second the other running containers lost /dev/nvidia1 and its device rule" ||
	{ not_ok "within a second the others lost /dev/nvidia1 and its device rule ($((t1 - t0)) ms)"; devices_list "$b" | diag; }
has_gpu "$a" 1 && ok "the holder keeps GPU 1" || not_ok "the holder keeps GPU 1"
has_gpu "$b" 0 && has_gpu "$b" 2 && ok "the others keep their other GPUs" || not_ok "the others keep their other GPUs"
refuse "the device cgroup refuses GPU 1 in $b whatever the path" 1 'Operation not permitted' \
	lxc_attach "$b" head -c1 /dev/full
[ "$(reservations)" = "[{\"member\":\"$a\",\"gpus\":[1],\"state\":\"active\"}]" ] &&
	ok "gpubox reservations lists it" || { not_ok "gpubox reservations lists it"; reservations | diag; }
as_user "$b" reservations | grep -q "^$id .*$a .*GPU 1 .*active" &&
	ok "a member sees the holder's name (show_members)" || { not_ok "a member sees the holder's name"; as_user "$b" reservations | diag; }
wait_for 5 sh -c "$GBX_BIN/gpubox gpus --json | jq -e '.gpus[1].reservation.member == \"$a\" and (.gpus[1].free | not)'" &&
	ok "gpubox gpus shows GPU 1 reserved by $a" || { not_ok "gpubox gpus shows GPU 1 reserved"; gpubox gpus --json | diag; }
[ "$(gpubox status --member "$b" --json | jq -c '[.gpus_reserved_by_others[].index]')" = "[1]" ] &&
	[ "$(gpubox status --member "$a" --json | jq '.reservations | length')" = 1 ] &&
	ok "gpubox status shows the GPU held back and the holder's reservation" ||
	not_ok "gpubox status shows the GPU held back and the holder's reservation"
check "$c stops" gpubox stop --member "$c"
check "$c starts while GPU 1 is reserved" gpubox start --member "$c"
lacks_gpu "$c" 1 && has_gpu "$c" 0 && ok "a container started meanwhile does not get GPU 1" ||
	not_ok "a container started meanwhile does not get GPU 1"
refuse "$b cannot reserve it, and is told who holds it" 1 "GPU 1 is reserved by $a until .*reservation $id.*--wait" \
	as_user "$b" reserve --gpu 1
t0=$(ms_now)
check "$a releases it" release "$a" "$id"
t1=$(ms_now)
has_gpu "$b" 1 && has_gpu "$c" 1 && [ $((t1 - t0)) -lt 1000 ] &&
	ok "within a second GPU 1 is back in the others ($((t1 - t0)) ms)" || not_ok "GPU 1 is back in the others ($((t1 - t0)) ms)"
none_reserved && ok "no reservation is left" || not_ok "no reservation is left"

# ---- bad input: refused, nothing changed ---------------------------------------
unchanged() { none_reserved && all_have "$a" "$b" "$c"; }
for bad in "2|--for 0|not a duration" "1|--for 10y|at most 7d .*reserve_max_duration" \
	   "1|--gpu 9|no GPU 9 on this server" "2|--gpu 1,1|named twice" "2|--gpu 1:2|index .* or its UUID" \
	   "1|--gpu 7|shared by every member" "2|0|not a number of GPUs" "1|8|has 7 GPUs that can be reserved" \
	   "2|2 --gpu 1|not both"; do
	IFS='|' read -r want args pattern <<<"$bad"
	# shellcheck disable=SC2086
	refuse "reserve $args is refused" "$want" "$pattern" as_user "$a" reserve $args
	unchanged && ok "... and nothing changed" || not_ok "... and nothing changed after reserve $args"
done
id=$(reserve "$a" --gpu 2 --for 1h)
refuse "$b cannot release $a's reservation" 1 "reservation $id is not yours" as_user "$b" release "$id"
[ "$(state_of "$id")" = active ] && lacks_gpu "$b" 2 && ok "... and it stays" || not_ok "... and it stays"
refuse "$b cannot extend it either" 1 "not yours" as_user "$b" reserve --extend "$id" 1h
until0=$(gpubox reservations --json | jq --argjson id "$id" '.reservations[] | select(.id == $id) | .until_ms')
refuse "an extension past reserve_max_duration is refused" 1 "more than 7d from now" as_user "$a" reserve --extend "$id" 7d
check "$a extends it by 1h" as_user "$a" reserve --extend "$id" 1h
until1=$(gpubox reservations --json | jq --argjson id "$id" '.reservations[] | select(.id == $id) | .until_ms')
[ $((until1 - until0)) = 3600000 ] && ok "it now ends an hour later" || not_ok "it now ends an hour later ($until0 -> $until1)"
check "$a releases it" release "$a" "$id"
refuse "releasing a reservation that does not exist is refused" 1 "no reservation 999999" as_user "$a" release 999999
refuse "releasing with none is refused" 1 "no reservation to release" as_user "$a" release
check "GPU 5 detached from $c" gpubox admin gpu detach "$c" 5
refuse "a GPU not in the member's own set is refused" 1 "GPU 5 is not among the GPUs of your container" \
	as_user "$c" reserve --gpu 5
check "GPU 5 attached to $c again" gpubox admin gpu attach "$c" 5
unchanged && ok "after all that, nothing is reserved and every container has its GPUs" ||
	not_ok "after all that, nothing is reserved and every container has its GPUs"

# ---- expiry --------------------------------------------------------------------
id=$(reserve "$a" --gpu 1 --for 3s)
lacks_gpu "$b" 1 && ok "a 3 s reservation takes GPU 1" || not_ok "a 3 s reservation takes GPU 1"
wait_for 8 has_gpu "$b" 1 && has_gpu "$c" 1 && ok "at its end GPU 1 is back in the others" ||
	not_ok "at its end GPU 1 is back in the others"
none_reserved && ok "the expired reservation is gone" || not_ok "the expired reservation is gone"

# ---- another member's process on the GPU ---------------------------------------
check "a process of $b holds GPU 1" hold_gpu1 "$b"
refuse "reserving a GPU another member's process holds is refused, naming the member" 1 \
	"GPU 1 is in use by a process of $b" as_user "$a" reserve --gpu 1
none_reserved && has_gpu "$b" 1 && lxc_attach "$b" sh -c 'kill -0 $(cat /run/gpu-hold)' &&
	ok "... and nothing changed" || not_ok "... and nothing changed"
id=$(reserve "$a" 1)
[ "$(reservations)" = "[{\"member\":\"$a\",\"gpus\":[0],\"state\":\"active\"}]" ] &&
	ok "reserve 1 takes the lowest free GPU, not the busy one" || { not_ok "reserve 1 takes the lowest free GPU"; reservations | diag; }
check "released" release "$a" "$id"
check "show_members = no" rules "show_members = no"
out=$(as_user "$a" reserve --gpu 1 2>&1)
echo "$out" | grep -q "in use by a process of another member" && ! echo "$out" | grep -q "$b" &&
	ok "with show_members = no the refusal names no one" || { not_ok "with show_members = no the refusal names no one"; echo "$out" | diag; }
check "show_members back" rules

# ---- the queue -----------------------------------------------------------------
q1=$(reserve "$a" --gpu 1 --wait --for 1h)
q2=$(reserve "$c" --gpu 1 --wait --for 1h)
[ "$(state_of "$q1")" = queued ] && [ "$(state_of "$q2")" = queued ] &&
	ok "--wait queues $a then $c while $b's process holds GPU 1" || { not_ok "--wait queues both"; reservations | diag; }
refuse "a later request may not pass the queue" 1 "waited for by an earlier request" as_user "$b" reserve --gpu 1
check "$b's process ends" unhold_gpu1 "$b"
wait_for 5 sh -c "[ \"\$($GBX_BIN/gpubox reservations --json | jq -r '.reservations[] | select(.id == $q1) | .state')\" = active ]" &&
	[ "$(state_of "$q2")" = queued ] && ok "the first in the queue gets GPU 1 once it is free, the second waits" ||
	{ not_ok "the first in the queue gets GPU 1 once it is free"; reservations | diag; }
lacks_gpu "$b" 1 && lacks_gpu "$c" 1 && has_gpu "$a" 1 && ok "GPU 1 is $a's alone now" || not_ok "GPU 1 is $a's alone now"
check "$a releases" release "$a" "$q1"
wait_for 5 sh -c "[ \"\$($GBX_BIN/gpubox reservations --json | jq -r '.reservations[] | select(.id == $q2) | .state')\" = active ]" &&
	has_gpu "$c" 1 && lacks_gpu "$a" 1 && lacks_gpu "$b" 1 && ok "then the second gets it" ||
	{ not_ok "then the second gets it"; reservations | diag; }
check "$c releases" release "$c" "$q2"

# ---- gpu_cap: GPUs held at once, reserved or in use ----------------------------
check "gpu_cap = 2" rules "gpu_cap = 2"
check "a process of $b holds GPU 1 again" hold_gpu1 "$b"
id=$(reserve "$b" --gpu 3)
[ -n "$id" ] && ok "$b (GPU 1 in use) reserves GPU 3: two GPUs held" || not_ok "$b reserves GPU 3"
refuse "a third GPU is refused with the cap in one sentence" 1 \
	"$b may hold at most 2 GPUs at once, reserved or in use by its processes \(gpu_cap\), and holds GPUs 1 and 3 already" \
	as_user "$b" reserve --gpu 4
refuse "three GPUs at once are refused" 1 "at most 2 GPUs at once.*gpu_cap" as_user "$a" reserve 3
# gpus and status say so, the GPUs in use as NVML lists the processes.
holder=$(host_pid_in "$b" '^sleep 100000$')
nvml_state <<<"1 $holder 0"
cap_is() { as_user "$b" gpus --json | jq -e --arg s "$1" '.gpu_cap | .state == $s and .in_use == [1] and .reserved == [3]' >/dev/null; }
wait_for 10 cap_is at && as_user "$b" gpus |
	grep -q "^gpu_cap: $b holds 2 GPUs at once (in use: GPU 1; reserved: GPU 3), as many as gpu_cap allows" &&
	gpubox status --member "$b" | grep -q "^ *gpu_cap: $b holds 2 GPUs at once" &&
	ok "gpus and status tell $b it holds as many GPUs as gpu_cap allows" ||
	{ not_ok "gpus and status at the cap"; as_user "$b" gpus --json | jq -c .gpu_cap | diag; }
check "gpu_cap = 1 (the agent restarts; the reservation stays)" rules "gpu_cap = 1"
wait_for 10 cap_is over && as_user "$b" gpus | grep -q "^gpu_cap: .*more than gpu_cap (1) allows" &&
	has_gpu "$b" 1 && has_gpu "$b" 3 && lxc_attach "$b" sh -c 'kill -0 $(cat /run/gpu-hold)' &&
	ok "over the cap: said, and nothing is taken away from $b" ||
	{ not_ok "over the cap"; as_user "$b" gpus --json | jq -c .gpu_cap | diag; }
check "$b releases" release "$b" "$id"
check "$b's process ends" unhold_gpu1 "$b"
nvml_state </dev/null
check "no cap" rules

# ---- reserve_idle_release ------------------------------------------------------
# Two reservations of $a: GPUs 2 and 3 (nothing on 2, a job holding 4 GiB
# of 3 at 0 %) and GPU 4 (a job at 50 %).  With idle_after = 1s and
# reserve_idle_release = 3s the first ends, its member told, the webhook
# too; the other stays.
hook_port=$((GBX_METRICS_PORT + 7))
hook_log=$GBX_DIR/reserve-hook.log
python3 "$(dirname "$0")/webhook.py" "$hook_port" "$hook_log" &
hook_pid=$!
wait_for 10 curl -s -o /dev/null "http://127.0.0.1:$hook_port/" || not_ok "the test's webhook listens"
echo "http://127.0.0.1:$hook_port/hooks/r$GBX_ID" >"$GBX_DIR/reserve-hook.url"
chmod 600 "$GBX_DIR/reserve-hook.url"
lxc_attach "$a" sh -c 'setsid sleep 7401 </dev/null >/dev/null 2>&1 & setsid sleep 7402 </dev/null >/dev/null 2>&1 &'
wait_for 10 host_pid_in "$a" '^sleep 7401$' >/dev/null && wait_for 10 host_pid_in "$a" '^sleep 7402$' >/dev/null
j_idle=$(host_pid_in "$a" '^sleep 7401$') j_busy=$(host_pid_in "$a" '^sleep 7402$')
busy_gpu=4
printf '3 %s 0\n4 %s 50\n' "$j_idle" "$j_busy" | nvml_state
check "the agent restarts with reserve_idle_release = 3s, idle_after = 1s and a webhook" \
	rules "reserve_idle_release = 3s" "idle_after = 1s" "notify_webhook = $GBX_DIR/reserve-hook.url"
r_idle=$(reserve "$a" --gpu 2,3 --for 1h)
r_busy=$(reserve "$a" --gpu 4 --for 1h)
t0=$(ms_now)
lacks_gpu "$b" 2 && lacks_gpu "$c" 3 && lacks_gpu "$b" 4 &&
	ok "$a reserves GPUs 2 and 3 (idle: no job, a job at 0 %) and GPU 4 (a job at 50 %)" ||
	not_ok "the two reservations"
gone() { [ -z "$(state_of "$r_idle")" ]; }
wait_for 15 gone && t1=$(ms_now) && [ $((t1 - t0)) -ge 3000 ] &&
	ok "the idle reservation ends after reserve_idle_release ($((t1 - t0)) ms)" ||
	{ not_ok "the idle reservation ends"; reservations | diag; }
wait_for 2 has_gpu "$b" 2 && has_gpu "$b" 3 && has_gpu "$c" 2 && has_gpu "$c" 3 &&
	ok "the other containers have GPUs 2 and 3 back" || not_ok "GPUs 2 and 3 back in the others"
sleep 1
[ "$(state_of "$r_busy")" = active ] && lacks_gpu "$b" 4 && has_gpu "$a" 4 &&
	ok "the reservation with a job at work stays" || not_ok "the busy reservation stays"
told=$(as_user "$a" version 2>&1 >/dev/null)
grep -q "^gpubox: notice: gpubox released your reservation $r_idle (GPUs 2 and 3 on gbxtest): its GPUs had been idle for [0-9]*s" <<<"$told" &&
	ok "$a's next command prints the notice" || { not_ok "the notice"; diag <<<"$told"; }
grep -q "reservation $r_idle of $a released after its GPUs were idle for [0-9]*s (reserve_idle_release) (GPUs 2 and 3); its GPUs go back" "$GBX_DIR/agent.log" &&
	ok "the agent's log records it" || not_ok "the log of the release"
hook_has() { jq -r '.body | fromjson | .text' "$hook_log" 2>/dev/null | grep -q "^\[gbxtest\] reservation $r_idle of $a released after its GPUs were idle for [0-9]*s (reserve_idle_release): GPUs 2 and 3 free again$"; }
wait_for 10 hook_has && ok "the webhook gets the message" || { not_ok "the webhook's message"; diag <"$hook_log"; }
check "$a releases the other" release "$a" "$r_busy"
kill "$j_idle" "$j_busy"
stop_pid "$hook_pid"
busy_gpu=
nvml_state </dev/null
check "no reserve_idle_release" rules

# ---- from the login shell, inside the container, and by an admin ---------------
check "$a reserves GPU 2 through the login shell" as_user "$a" -c "reserve --gpu 2 --for 10m"
lacks_gpu "$b" 2 && ok "... and $b lost GPU 2" || not_ok "... and $b lost GPU 2"
lxc_attach "$a" env -u GPUBOX_CONFIG gpubox reservations | grep -q "$a .*GPU 2 .*active" &&
	ok "gpubox reservations works inside the container" || not_ok "gpubox reservations works inside the container"
check "gpubox release works inside the container" lxc_attach "$a" env -u GPUBOX_CONFIG gpubox release
wait_for 2 has_gpu "$b" 2 && none_reserved && ok "... and GPU 2 is back" || not_ok "... and GPU 2 is back"
check "gpubox reserve works inside the container" lxc_attach "$c" env -u GPUBOX_CONFIG gpubox reserve --gpu 4
id=$(gpubox reservations --json | jq -r '.reservations[0].id')
lacks_gpu "$a" 4 && ok "... and the others lost GPU 4" || not_ok "... and the others lost GPU 4"
check "an admin cancels anyone's reservation" gpubox admin release "$id"
has_gpu "$a" 4 && ok "... and GPU 4 is back" || not_ok "... and GPU 4 is back"
id=$(gpubox admin reserve "$c" --gpu 3 --json | jq -er .reservation.id)
[ "$(reservations)" = "[{\"member\":\"$c\",\"gpus\":[3],\"state\":\"active\"}]" ] && lacks_gpu "$a" 3 &&
	ok "an admin reserves for a member" || not_ok "an admin reserves for a member"
refuse "a member cannot reserve for another" 1 "only on your own" as_user "$a" admin reserve "$b" 1
check "admin release" gpubox admin release "$id"

# ---- the agent killed ----------------------------------------------------------
id=$(reserve "$a" --gpu 2 --for 1h)
kill -9 "$(cat "$GBX_DIR/agent.pid")"
check "the agent restarts after SIGKILL with a reservation active" restart_agent
lacks_gpu "$b" 2 && lacks_gpu "$c" 2 && has_gpu "$a" 2 && [ "$(state_of "$id")" = active ] &&
	ok "every set is as the reservation says" || not_ok "every set is as the reservation says"
check "released after the restart" release "$a" "$id"
has_gpu "$b" 2 && has_gpu "$c" 2 && ok "GPU 2 is back" || not_ok "GPU 2 is back"
id=$(reserve "$a" --gpu 2 --for 3s)
kill -9 "$(cat "$GBX_DIR/agent.pid")"
sleep 4
check "the agent restarts after its reservation's end" restart_agent
has_gpu "$b" 2 && has_gpu "$c" 2 && none_reserved &&
	ok "a reservation that ended while the agent was down is ended, its GPU back" ||
	not_ok "a reservation that ended while the agent was down is ended, its GPU back"
# What a kill between taking a GPU and recording its reservation leaves:
# GPU 3 out of $b with no record.  The restart gives it back.
kill -9 "$(cat "$GBX_DIR/agent.pid")"
lxc_attach "$b" sh -c 'umount /dev/nvidia3 && rm /dev/nvidia3' &&
	echo "c 195:3 rwm" >"/sys/fs/cgroup/devices/lxc.payload.$b/devices.deny"
lacks_gpu "$b" 3 && ok "GPU 3 taken out of $b behind the agent's back" ||
	{ not_ok "GPU 3 taken out of $b behind the agent's back"; { lxc_attach "$b" ls -l /dev; devices_list "$b"; } | diag; }
check "the agent restarts" restart_agent
has_gpu "$b" 3 && ok "no GPU stays hidden from everyone: $b has GPU 3 again" || not_ok "$b has GPU 3 again"
for delay in 0.05 0.2; do
	as_user "$a" reserve --gpu 2 --for 1h >/dev/null 2>&1 &
	cli=$!
	sleep "$delay"
	kill -9 "$(cat "$GBX_DIR/agent.pid")"
	wait "$cli" 2>/dev/null
	restart_agent
	if [ "$(reservations)" = "[]" ]; then
		has_gpu "$b" 2 && has_gpu "$c" 2 && ok "killed ${delay}s into a reserve: no reservation, GPU 2 everywhere" ||
			not_ok "killed ${delay}s into a reserve: no reservation, GPU 2 everywhere"
	else
		lacks_gpu "$b" 2 && lacks_gpu "$c" 2 && has_gpu "$a" 2 &&
			ok "killed ${delay}s into a reserve: the reservation holds, GPU 2 is $a's alone" ||
			not_ok "killed ${delay}s into a reserve: the reservation holds, GPU 2 is $a's alone"
		as_user "$a" release >/dev/null
	fi
done
all_have "$a" "$b" "$c" && none_reserved && ok "at the end every container has every GPU" ||
	not_ok "at the end every container has every GPU"
done_testing
