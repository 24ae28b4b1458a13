#!/bin/bash
# A member's share of the server, tried as a member would break it: a
# memory hog and a fork bomb inside one container end inside it, while
# the other member logs in and the agent answers; CPU weights share the
# cores under contention; an admin's limits apply live and bad values
# change nothing.
. "$(dirname "$0")/lib.sh"

a=la$GBX_ID
b=lb$GBX_ID
tag=$((RANDOM % 9000 + 1000))   # marks this run's processes for pkill
cleanup() {
	pkill -f "sleep 6$tag" 2>/dev/null
	pkill -f "spin$tag" 2>/dev/null
	remove_member "$a"
	remove_member "$b"
}
trap cleanup EXIT
check "member $a added" add_member "$a"
check "member $b added" add_member "$b"

if [ -d /sys/fs/cgroup/memory ]; then
	v1=yes
	cg() { echo "/sys/fs/cgroup/$1/lxc.payload.$2/$3"; }  # CONTROLLER NAME FILE
	mem_file=memory.limit_in_bytes
else
	v1=no
	cg() { echo "/sys/fs/cgroup/lxc.payload.$2/$3"; }
	mem_file=memory.max
fi

# ---- bad values change nothing ------------------------------------------------
before=$(gpubox admin limits ls "$a" --json)
for bad in memory=-1 memory=1e99 cpus=0 pids=10 colour=blue memory cpu_weight=none "memory=8G memory_high=16G"; do
	# shellcheck disable=SC2086
	refuse "limits set $bad is refused" 2 'memory|cpus|pids|limit|KEY=VALUE|weight' \
		gpubox admin limits set "$a" $bad
done
refuse "limits for a member that does not exist are refused" 1 'no member' \
	gpubox admin limits set "nobody$GBX_ID" memory=1G
refuse "limits rm of a key the member does not have is refused" 1 'no limit of its own' \
	gpubox admin limits rm "$a" swap
[ "$(gpubox admin limits ls "$a" --json)" = "$before" ] &&
	ok "every refused value left the limits as they were" ||
	not_ok "a refused value changed the limits"
refuse "a member may not set limits" 1 'admin' as_user "$a" admin limits set "$a" memory=64G

# ---- recorded, started with, shown ----------------------------------------------
check "limits of $a set while stopped" gpubox admin limits set "$a" memory=256M pids=128
check "cpu_weight of $b set" gpubox admin limits set "$b" cpu_weight=300
gpubox admin limits ls "$a" --json | jq_check '.members[0].origin.memory == "member" and .members[0].origin.pids == "member"' >/dev/null &&
	ok "limits ls tells the member's own values" || not_ok "limits ls tells the member's own values"
check "$a starts" gpubox start --member "$a"
check "$b starts" gpubox start --member "$b"
[ "$(cat "$(cg memory "$a" "$mem_file")")" = 268435456 ] &&
	ok "the container starts with its memory limit ($mem_file)" ||
	not_ok "memory limit at start: $(cat "$(cg memory "$a" "$mem_file")")"
[ "$(cat "$(cg pids "$a" pids.max)")" = 128 ] &&
	ok "the container starts with its process limit" || not_ok "pids.max at start: $(cat "$(cg pids "$a" pids.max)")"
[ "$(cat "$(cg pids "$b" pids.max)")" = 10000 ] &&
	ok "the other member has the server's default process limit" || not_ok "pids.max of $b: $(cat "$(cg pids "$b" pids.max)")"
# lxcfs: the container's own /proc/meminfo (scripts/install-deps starts it).
if grep -q ' /var/lib/lxcfs fuse.lxcfs ' /proc/self/mounts && head -c1 /var/lib/lxcfs/proc/uptime >/dev/null 2>&1; then
	total=$(lxc_attach "$a" free -b | awk '/^Mem:/ { print $2 }')
	if [ "$total" = 268435456 ]; then
		ok "free -b inside shows the memory limit"
	else
		not_ok "free -b inside shows $total, not 268435456"
		init=$(lxc-info -P "$GBX_DIR/state/lxc" -n "$a" -pH)
		{
			pgrep -a lxcfs
			grep lxcfs /proc/self/mountinfo
			lxc_attach "$a" grep lxcfs /proc/self/mountinfo
			grep memory "/proc/$init/cgroup"
			nsenter -t "$init" -p -- head -1 /var/lib/lxcfs/proc/meminfo
			tail -5 /var/log/lxcfs.log
		} 2>&1 | diag
	fi
	gpubox admin ls | grep -q 'lxcfs is not running' && not_ok "admin ls says lxcfs is not running while it runs" ||
		ok "admin ls has no lxcfs note while lxcfs runs"
else
	not_ok "lxcfs is not running or its mount does not answer (scripts/install-deps starts it): free inside cannot show the limit"
	gpubox admin ls | grep -q 'lxcfs is not running' && ok "admin ls says lxcfs is not running" ||
		not_ok "admin ls says lxcfs is not running"
fi
gpubox status --member "$a" | grep -q '^Processes: [0-9]* of 128' &&
	ok "status shows processes used of the limit" || { not_ok "status shows the process limit"; gpubox status --member "$a" | diag; }

# ---- the OOM killer spares the agent, not the containers ---------------------------
agent_pid=$(cat "$GBX_DIR/agent.pid")
# Lowering an OOM score takes CAP_SYS_RESOURCE (bit 24), which some
# sandboxes take away even from root.
if (( (0x$(awk '/^CapEff/ { print $2 }' /proc/"$agent_pid"/status) >> 24) & 1 )); then
	[ "$(cat /proc/"$agent_pid"/oom_score_adj)" = -900 ] &&
		ok "the agent's OOM score is lowered" || not_ok "the agent's oom_score_adj is $(cat /proc/"$agent_pid"/oom_score_adj)"
else
	grep -q "cannot lower the agent's OOM score" "$GBX_DIR/agent.log" &&
		ok "the agent's OOM score # SKIP this machine gives root no CAP_SYS_RESOURCE; the agent says so in its log" ||
		not_ok "the agent lacks CAP_SYS_RESOURCE and did not say it kept its OOM score"
fi
init=$(lxc-info -P "$GBX_DIR/state/lxc" -n "$a" -pH)
[ "$(cat /proc/"$init"/oom_score_adj)" = 0 ] &&
	ok "the container's init does not inherit it" || not_ok "the container's init has oom_score_adj $(cat /proc/"$init"/oom_score_adj)"
lxc_attach "$a" sh -c 'echo -900 > /proc/1/oom_score_adj' 2>/dev/null
[ "$(cat /proc/"$init"/oom_score_adj)" = 0 ] &&
	ok "root inside cannot lower its init's OOM score" || not_ok "root inside lowered its OOM score to $(cat /proc/"$init"/oom_score_adj)"

# ---- live ---------------------------------------------------------------------------
check "pids raised in the running container" gpubox admin limits set "$a" pids=150
[ "$(cat "$(cg pids "$a" pids.max)")" = 150 ] &&
	ok "a live limits set takes effect without a restart" || not_ok "pids.max after the live set: $(cat "$(cg pids "$a" pids.max)")"
# The container's root cannot raise its own limit.
lxc_attach "$a" sh -c "echo max > /sys/fs/cgroup/pids/pids.max || echo max > /sys/fs/cgroup/pids.max" 2>/dev/null
[ "$(cat "$(cg pids "$a" pids.max)")" = 150 ] &&
	ok "the container's root cannot raise its process limit" || not_ok "root inside raised pids.max"

# ---- a memory hog ends inside its own container ---------------------------------------
lxc_attach "$a" sh -c 'head -c 800M /dev/zero | tail' >/dev/null 2>&1 &
hog=$!
t0=$(date +%s%N)
gpubox status --member "$b" >/dev/null && ok "the agent answers the other member during the memory hog" ||
	not_ok "the agent answers during the memory hog"
check "the other member logs in during the memory hog" client_ssh_container "$b" "$(member_field "$b" ssh_port)" true
wait $hog
rc=$?
[ "$rc" -ne 0 ] && ok "the memory hog was killed (exit $rc)" || not_ok "the memory hog ran to its end"
gpubox status --member "$a" --json | jq_check '.usage.oom_kills >= 1' >/dev/null &&
	ok "status counts the process killed for the memory limit" ||
	{ not_ok "status counts the OOM kill"; gpubox status --member "$a" --json | jq -c .usage | diag; }
last_kill() { gpubox status --member "$a" --json | jq_check '.usage.last_oom_kill.command == "tail" and .usage.last_oom_kill.uid == 0' >/dev/null; }
wait_for 5 last_kill && ok "status names the process killed and its uid inside" ||
	{ not_ok "status names the killed process"; gpubox status --member "$a" --json | jq -c .usage | diag; }
gpubox status --member "$a" | grep -q 'killed for the memory limit' &&
	ok "status says a process was killed for the memory limit" || not_ok "status text about the OOM kill"
[ "$(member_field "$a" state)" = running ] && ok "the container outlives its memory hog" || not_ok "the container died with its hog"
echo "# memory hog: $(( ($(date +%s%N) - t0) / 1000000 )) ms"

# ---- a fork bomb stops at the process limit ---------------------------------------
lxc_attach "$a" bash -c "for i in \$(seq 400); do sleep 6$tag & done 2>/dev/null; wait" >/dev/null 2>&1 &
bomb=$!
sleep 3
n=$(pgrep -fc "sleep 6$tag")
[ "$n" -gt 50 ] && [ "$n" -le 150 ] && ok "the fork bomb stopped at the process limit ($n processes)" ||
	not_ok "the fork bomb made $n processes (limit 150)"
start=$(date +%s%N)
gpubox status --member "$b" >/dev/null && ok "the other member's status answers during the fork bomb" ||
	not_ok "status during the fork bomb"
check "the other member logs in during the fork bomb" client_ssh_container "$b" "$(member_field "$b" ssh_port)" true
echo "# status and login of $b during the fork bomb: $(( ($(date +%s%N) - start) / 1000000 )) ms"
pkill -f "sleep 6$tag"
wait $bomb 2>/dev/null

# ---- CPU weights share the cores under contention --------------------------------------
cpus=$(nproc)
usage() { # NAME: CPU nanoseconds of the container
	if [ $v1 = yes ]; then cat "$(cg cpuacct "$1" cpuacct.usage)"
	else echo $(( $(awk '$1 == "usage_usec" { print $2 }' "$(cg cpu "$1" cpu.stat)") * 1000 )); fi
}
for m in "$a" "$b"; do
	lxc_attach "$m" bash -c "for i in \$(seq $((cpus * 2))); do (exec -a spin$tag bash -c 'while :; do :; done') & done; wait" >/dev/null 2>&1 &
done
sleep 2
a0=$(usage "$a"); b0=$(usage "$b")
sleep 8
a1=$(usage "$a"); b1=$(usage "$b")
pkill -f "spin$tag"
ratio=$(( (b1 - b0) * 100 / ((a1 - a0) > 0 ? (a1 - a0) : 1) ))
echo "# CPU time with weights 100:300 over 8 s: $a $(( (a1 - a0) / 1000000 )) ms, $b $(( (b1 - b0) / 1000000 )) ms (ratio $ratio/100)"
[ "$ratio" -ge 225 ] && [ "$ratio" -le 375 ] && ok "weights 1:3 give CPU time within 25 % of 1:3 (${ratio}%)" ||
	not_ok "weights 1:3 gave a ratio of ${ratio}/100"

# ---- the agent keeps disk_reserve free: no start on a full disk -----------------------
check "$b stops" gpubox stop --member "$b"
cp "$GBX_CONF" "$GBX_DIR/gpubox.conf.t0200"
echo "disk_reserve = $(($(stat -f -c '%a * %S' "$GBX_DIR/state") + (1 << 40)))" >>"$GBX_CONF"
kill "$(cat "$GBX_DIR/agent.pid")"
sleep 0.5
check "the agent restarts with a disk reserve above the free space" restart_agent
refuse "a start is refused while the disk is under the reserve" 1 'disk_reserve' gpubox start --member "$b"
[ "$(member_field "$b" state)" = stopped ] && ok "the refused container stays stopped" || not_ok "the refused container started"
[ "$(member_field "$a" state)" = running ] && ok "a running container is left running" || not_ok "a running container was stopped"
cp "$GBX_DIR/gpubox.conf.t0200" "$GBX_CONF"
kill "$(cat "$GBX_DIR/agent.pid")"
sleep 0.5
check "the agent restarts with the suite's configuration" restart_agent
check "$b starts again" gpubox start --member "$b"

# ---- rm gives the default back, live -------------------------------------------------
check "limits rm pids" gpubox admin limits rm "$a" pids
[ "$(cat "$(cg pids "$a" pids.max)")" = 10000 ] &&
	ok "the server's default applies again at once" || not_ok "pids.max after rm: $(cat "$(cg pids "$a" pids.max)")"
gpubox admin limits ls "$a" --json | jq_check '.members[0].origin.pids == "default"' >/dev/null &&
	ok "limits ls tells the default is back" || not_ok "limits ls after rm"
done_testing
