#!/bin/bash
# NVML inside members' real containers, through the interposer the agent
# injects (libgpubox-nvml.so as libnvidia-ml.so.1): the fake driver
# (tests/fake-nvml) reports the host pids of jobs running in two members'
# containers; nvml_client, which loads libnvidia-ml.so.1 and asks as
# nvidia-smi does, must see in each container exactly that member's jobs,
# by pids it can signal there.  So must tests/system/nvml_client.py, a
# ctypes client written as pynvml is, run by python3 installed in the
# first container from the machine's Debian mirror (with apt, while the
# test goes on: the template has no python).
. "$(dirname "$0")/lib.sh"

a=na$GBX_ID
b=nb$GBX_ID
root=$GBX_DIR/gpu
work=$GBX_DIR/gpu-nvml
saved=$GBX_DIR/gpubox.conf.before-nvml
cp "$GBX_CONF" "$saved"
cleanup_nvml() {
	remove_member "$a"
	remove_member "$b"
	cp "$saved" "$GBX_CONF"
	kill "$(cat "$GBX_DIR/agent.pid")" 2>/dev/null
	sleep 0.5
	restart_agent
	rm -rf "$root" "$work" "$GBX_NVML_STATE"
}
trap cleanup_nvml EXIT

. "$(dirname "$0")/fake-driver.sh"
# make_driver VERSION FAKE_DIR: a driver tree whose libnvidia-ml is the
# fake NVML of FAKE_DIR (the other libraries are empty ones).
make_driver() { fake_driver_nvml "$root" "$work" "$@"; }

# set_config LINE: the suite's configuration plus LINE, the agent restarted.
set_config() {
	cp "$saved" "$GBX_CONF"
	echo "$1" >>"$GBX_CONF"
	kill "$(cat "$GBX_DIR/agent.pid")"
	sleep 0.5
	restart_agent
}

inside() { local m=$1; shift; lxc_attach "$m" "$@"; }
# client MEMBER: nvml_client's answer inside MEMBER's container.
client() { inside "$1" env FAKE_NVML_STATE=/root/nvml.state /usr/local/bin/nvml_client 2>&1; }
# start_job MEMBER N: a job in the container; prints its pid inside.
start_job() {
	inside "$1" sh -c "setsid sh -c 'echo \$\$ >/run/job$2; exec sleep infinity' </dev/null >/dev/null 2>&1 &"
	wait_for 10 inside "$1" test -s "/run/job$2" && inside "$1" cat "/run/job$2"
}
# host_pid MEMBER NSPID: the host pid of the process NSPID of MEMBER's container.
host_pid() {
	local p
	for p in $(pgrep -x sleep); do
		grep -q "lxc.payload.$1" "/proc/$p/cgroup" 2>/dev/null || continue
		[ "$(awk '/^NSpid:/ {print $NF}' "/proc/$p/status" 2>/dev/null)" = "$2" ] && { echo "$p"; return 0; }
	done
	return 1
}
# write_state: the fake's processes, for the agent and inside both containers.
write_state() {
	cat >"$work/state" <<STATE
gpu 0 name=Fake_H100 total=80000 used=6000
gpu 1
proc 0 pid=$ha1 mem=1000 sm=10
proc 0 pid=$ha2 mem=2000 sm=20 type=both
proc 0 pid=$hb1 mem=3000 sm=30
proc 1 pid=$hb1 mem=4000
STATE
	cp "$work/state" "$GBX_NVML_STATE.tmp" && mv "$GBX_NVML_STATE.tmp" "$GBX_NVML_STATE"
	for m in "$a" "$b"; do inside "$m" sh -c 'cat >/root/nvml.state' <"$work/state"; done
}
install_client() {
	inside "$1" sh -c 'cat >/usr/local/bin/nvml_client && chmod 755 /usr/local/bin/nvml_client' \
		<"$GBX_BIN/nvml_client"
}
client_has() { client "$1" | grep -qxF "$2"; }
# has_line MEMBER LINE: until the client inside shows LINE (10 s).
has_line() { wait_for 10 client_has "$1" "$2"; }

v=999.30.03
check "fake driver $v with the fake NVML" make_driver $v "$GBX_BIN/nvml"
# The agent's NVML answers from the start (it tries again only a minute
# after a failure), with no process yet.
printf 'gpu 0\ngpu 1\n' >"$GBX_NVML_STATE"
check "the agent restarts with the interposer" set_config "nvml_interposer = own $GBX_BIN/libgpubox-nvml.so"
check "member $a added" add_member "$a"
check "member $b added" add_member "$b"
check "$a starts" gpubox start --member "$a"
# python3-minimal and the standard library that holds ctypes (python3-
# minimal alone has none), from the mirror the template's apt sources
# name (the containers have egress), in the background meanwhile.
py_install() {
	inside "$a" sh -c 'apt-get update -q -o Acquire::Languages=none &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			-o Dpkg::Options::=--force-unsafe-io python3-minimal libpython3-stdlib' >"$work/python.log" 2>&1
	echo $? >"$work/python.rc"
	inside "$a" sh -c 'cat >/root/nvml_client.py' <"$(dirname "$0")/nvml_client.py"
}
py_start=$SECONDS
py_install & py_job=$!
check "$b starts" gpubox start --member "$b"
install_client "$a"
install_client "$b"

out=$(inside "$a" sh -c 'ldconfig -p | grep libnvidia-ml; readlink /usr/lib/gpubox-nvidia/libnvidia-ml.so.1; ls /usr/lib/gpubox-nvidia/real; readlink /usr/lib/gpubox-nvidia/real/libgpubox-nvml-real.so' 2>&1)
echo "$out" | grep -q "libnvidia-ml.so.1 .*=> /usr/lib/gpubox-nvidia/libnvidia-ml.so.1" &&
	echo "$out" | grep -qx "libgpubox-nvml.so" && echo "$out" | grep -qx "libnvidia-ml.so.$v" &&
	ok "libnvidia-ml.so.1 is the interposer, the real library its dependency" ||
	{ not_ok "libnvidia-ml.so.1 is the interposer, the real library its dependency"; echo "$out" | diag; }

a1=$(start_job "$a" 1)
a2=$(start_job "$a" 2)
b1=$(start_job "$b" 1)
ha1=$(host_pid "$a" "$a1")
ha2=$(host_pid "$a" "$a2")
hb1=$(host_pid "$b" "$b1")
[ -n "$ha1" ] && [ -n "$ha2" ] && [ -n "$hb1" ] && ok "jobs run: $a $a1,$a2 (host $ha1,$ha2), $b $b1 (host $hb1)" ||
	not_ok "jobs run: $a $a1,$a2 (host $ha1,$ha2), $b $b1 (host $hb1)"
write_state

has_line "$a" "compute_v3 0 rc=0 pids=$a1/1000,$a2/2000" &&
	ok "$a sees its own jobs by their pids inside, $b's left out" ||
	{ not_ok "$a sees its own jobs by their pids inside, $b's left out"; client "$a" | diag; }
out=$(client "$a")
echo "$out" | grep -qxF "interposer yes" && echo "$out" | grep -qxF "compute_v2 0 rc=0 pids=$a1/1000,$a2/2000" &&
	echo "$out" | grep -qxF "compute_v1 0 rc=0 pids=$a1/1000,$a2/2000" &&
	echo "$out" | grep -qxF "graphics_v3 0 rc=0 pids=$a2/2000" &&
	echo "$out" | grep -qxF "util 0 rc=0 pids=$a1/0,$a2/0" &&
	echo "$out" | grep -qxF "detail 0 rc=0 pids=$a1/1000,$a2/2000" &&
	echo "$out" | grep -qxF "acct_pids 0 rc=0 pids=$a1/0,$a2/0" &&
	echo "$out" | grep -qxF "acct_stats 0 $a1 rc=0 mem=1000" &&
	echo "$out" | grep -qxF "compute_v3 1 rc=0 pids=" &&
	! echo "$out" | grep -Eq "[=,/]($hb1|$b1|$ha1|$ha2)/" &&
	ok "every process query inside $a: its pids only, none of $b and no host pid" ||
	{ not_ok "every process query inside $a: its pids only, none of $b and no host pid"; echo "$out" | diag; }
inside "$a" kill -0 "$a1" "$a2" && ok "the pids $a sees are its processes (kill -0 inside)" ||
	not_ok "the pids $a sees are its processes (kill -0 inside)"
has_line "$b" "compute_v3 1 rc=0 pids=$b1/4000" && client "$b" | grep -qxF "compute_v3 0 rc=0 pids=$b1/3000" &&
	ok "$b sees only its own job" || { not_ok "$b sees only its own job"; client "$b" | diag; }

# The pynvml way: ctypes, nvmlDeviceGetComputeRunningProcesses_v3 with the
# two-call size protocol.
py_wait=$SECONDS
wait "$py_job"
py_waited="$((SECONDS - py_start)) s, $((SECONDS - py_wait)) s of them waited for"
if [ "$(cat "$work/python.rc")" = 0 ]; then
	ok "python3 with ctypes installed from the mirror in $a ($py_waited)"
	py_out=$(inside "$a" env FAKE_NVML_STATE=/root/nvml.state python3 /root/nvml_client.py 0 1 2>&1)
	echo "$py_out" | grep -qxF "py_compute 0 rc=0 pids=$a1/1000,$a2/2000" &&
		echo "$py_out" | grep -qxF "py_compute 1 rc=0 pids=" &&
		[ "$(echo "$py_out" | grep -c '^py_signal [01] ok$')" = 2 ] &&
		ok "a pynvml-like ctypes client in $a: exactly its jobs, pids it can kill -0 there, none of $b's" ||
		{ not_ok "the ctypes client in $a"; echo "$py_out" | diag; }
else
	not_ok "python3 from the mirror in $a (apt-get failed)"
	tail -20 "$work/python.log" | diag
fi

# Every other call is the fake's own answer, also one nothing in gpubox knows.
direct=$(env LD_LIBRARY_PATH="$GBX_BIN/nvml" FAKE_NVML_STATE="$work/state" "$GBX_BIN/nvml_client")
for key in "driver " "gpu 0 " "gpu 1 " "novelty 0 " "novelty 1 "; do
	[ "$(echo "$out" | grep "^$key")" = "$(echo "$direct" | grep "^$key")" ] || { bad=$key; break; }
done
[ -z "${bad:-}" ] && echo "$out" | grep -qxF "novelty 0 rc=0 value=4242000" &&
	ok "the other calls answer what the fake answers, nvmlDeviceGetFakeNovelty too" ||
	{ not_ok "the other calls answer what the fake answers ($bad)"; { echo "$out"; echo ---; echo "$direct"; } | diag; }

st=$(gpubox status --member "$a" --json)
[ "$(echo "$st" | jq .nvml_translated)" = true ] && gpubox status --member "$a" | grep -q "NVML inside: translated" &&
	ok "gpubox status says NVML inside is translated" ||
	{ not_ok "gpubox status says NVML inside is translated"; echo "$st" | diag; }
[ "$(gpubox admin gpu ls --json | jq .nvml_translated)" = true ] && gpubox admin gpu ls | grep -q "NVML inside.*translated" &&
	ok "gpubox admin gpu ls says so too" || not_ok "gpubox admin gpu ls says so too"

# The other mode: other members' processes without a pid; the memory adds up.
check "the agent restarts with nvml_interposer = anonymous" \
	set_config "nvml_interposer = anonymous $GBX_BIN/libgpubox-nvml.so"
has_line "$a" "compute_v3 0 rc=0 pids=$a1/1000,$a2/2000,0/3000" &&
	ok "anonymous: $b's job is shown in $a without a pid" || { not_ok "anonymous: $b's job is shown in $a without a pid"; client "$a" | diag; }
client "$a" | grep -qxF "acct_pids 0 rc=0 pids=$a1/0,$a2/0" && ok "anonymous: no pid 0 in the accounting pids" ||
	not_ok "anonymous: no pid 0 in the accounting pids"

# The agent gone (killed: it removes nothing): the map expires, the
# driver's answer passes through, and nothing crashes.
kill -9 "$(cat "$GBX_DIR/agent.pid")"
has_line "$a" "compute_v3 0 rc=0 pids=$ha1/1000,$ha2/2000,$hb1/3000" &&
	ok "the agent killed: the answer passes through untranslated" ||
	{ not_ok "the agent killed: the answer passes through untranslated"; client "$a" | diag; }
check "the agent restarts" restart_agent
has_line "$a" "compute_v3 0 rc=0 pids=$a1/1000,$a2/2000,0/3000" &&
	ok "the agent back: translated again" || not_ok "the agent back: translated again"
# Stopped cleanly, it takes the maps away at once.
kill "$(cat "$GBX_DIR/agent.pid")"
sleep 1
client "$a" | grep -qxF "compute_v3 0 rc=0 pids=$ha1/1000,$ha2/2000,$hb1/3000" &&
	ok "the agent stopped: untranslated at once" || { not_ok "the agent stopped: untranslated at once"; client "$a" | diag; }
check "the agent restarts with nvml_interposer = own" set_config "nvml_interposer = own $GBX_BIN/libgpubox-nvml.so"

# A driver older than 510: _v3 is not found, _v2 is translated.
check "$a stops" gpubox stop --member "$a"
check "fake driver $v without _v3" make_driver $v "$GBX_BIN/nvml-old"
check "$a starts on it" gpubox start --member "$a"
install_client "$a"
a1=$(start_job "$a" 1)
ha1=$(host_pid "$a" "$a1")
ha2=999999 a2=none
write_state
has_line "$a" "compute_v2 0 rc=0 pids=$a1/1000" && client "$a" | grep -qxF "compute_v3 0 rc=13 pids=" &&
	ok "old driver: _v3 answers FUNCTION_NOT_FOUND, _v2 is translated" ||
	{ not_ok "old driver: _v3 answers FUNCTION_NOT_FOUND, _v2 is translated"; client "$a" | diag; }

# The switch: off restores the driver's own library.
check "the agent restarts with nvml_interposer = off" set_config "nvml_interposer = off"
check "$a stops" gpubox stop --member "$a"
check "$a starts" gpubox start --member "$a"
install_client "$a"
out=$(inside "$a" sh -c 'readlink /usr/lib/gpubox-nvidia/libnvidia-ml.so.1; ls /usr/lib/gpubox-nvidia' 2>&1)
echo "$out" | grep -qx "libnvidia-ml.so.$v" && ! echo "$out" | grep -q gpubox-nvml &&
	client "$a" | grep -qxF "interposer no" && ok "off: libnvidia-ml.so.1 is the driver's, no interposer" ||
	{ not_ok "off: libnvidia-ml.so.1 is the driver's, no interposer"; echo "$out" | diag; }
[ "$(member_field "$a" nvml_translated)" = false ] && member_field "$a" nvml | grep -q "nvml_interposer = off" &&
	ok "off: gpubox status says NVML inside is not translated" || not_ok "off: gpubox status says NVML inside is not translated"
done_testing
