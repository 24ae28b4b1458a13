#!/bin/bash
# GPUs held idle.  The fake NVML reports real processes of a member's real
# container: one holding 4 GiB of GPU 0 at 0 % utilisation, one holding
# 100 MiB there (below idle_memory_min), one holding GPU 1 at 60 %.  With
# idle_after shortened to 2 s: GPU 0 is marked idle for the member in
# gpus and ps (never the other two), /metrics has
# gpubox_gpu_idle_seconds, the member's next command prints each notice
# once (on the host, then inside the container), and a webhook of the
# test's own (tests/system/webhook.py, named through a root-only file)
# receives the JSON, after a retry.  Then with idle_reclaim_after: exactly
# the idle processes end, one by SIGTERM and one that ignores it by
# SIGKILL after the grace, each logged, while the member's busy and small
# processes run on.  Last, gpubox usage shows idle GPU-hours from a
# synthetic past and from the live run.
. "$(dirname "$0")/lib.sh"

m=id$GBX_ID
past=ip$GBX_ID
hook_port=$((GBX_METRICS_PORT + 6))
work=$GBX_DIR/idle
hook_log=$work/webhook.log
saved=$work/gpubox.conf.before
gib=1073741824
mib=1048576
hook_pid=
bg=()
mkdir -p "$work"
cp "$GBX_CONF" "$saved"

cleanup() {
	[ ${#bg[@]} -gt 0 ] && kill "${bg[@]}" 2>/dev/null
	stop_pid "$hook_pid"
	[ ${#bg[@]} -gt 0 ] && wait "${bg[@]}" 2>/dev/null
	remove_member "$m"
	# The synthetic past is the suite's history too: later tests read it.
	sqlite3 -cmd ".timeout 5000" "$GBX_DIR/state/history.db" \
		"DELETE FROM member_minutes WHERE member = '$past'; DELETE FROM gpu_minutes WHERE uuid = 'GPU-i2222222-2222';" 2>/dev/null
	cp "$saved" "$GBX_CONF"
	rm -f "$GBX_NVML_STATE"
	stop_pid "$(cat "$GBX_DIR/agent.pid")"
	restart_agent
	rm -rf "$work"
}
trap cleanup EXIT

write_state() { cat >"$GBX_NVML_STATE.tmp" && mv "$GBX_NVML_STATE.tmp" "$GBX_NVML_STATE"; }
# set_config LINES: the suite's configuration and these lines; the agent restarted.
set_config() {
	cp "$saved" "$GBX_CONF"
	printf '%s\n' "$@" >>"$GBX_CONF"
	stop_pid "$(cat "$GBX_DIR/agent.pid")"
	restart_agent
}
inside_as() { lxc_attach "$m" env -u GPUBOX_CONFIG runuser -u "$m" -- "$@"; }
# job command...: a process in the container, as the member; its host pid
# is found by its command line, which starts with the command.
job() {
	inside_as "$@" </dev/null >/dev/null 2>&1 &
	bg+=($!)
}
host_pid_of() { pgrep -f "$1" | head -1 | grep .; }
ns_pid_of() { awk '/^NSpid:/ {print $NF}' "/proc/$1/status"; }
alive() { kill -0 "$1" 2>/dev/null; }
agent_log_has() { grep -q -- "$1" "$GBX_DIR/agent.log"; }
# The fake driver's GPUs, and processes "GPU PID MEM SM" on stdin.
nvml_state() {
	{
		echo "driver 999.40.04"
		echo "init ok"
		echo "gpu 0 uuid=GPU-i0000000-0000 name=Fake_H100 minor=0 util=${1:-0} total=$((80 * gib)) used=$((5 * gib))"
		echo "gpu 1 uuid=GPU-i1111111-1111 name=Fake_H100 minor=1 util=60 total=$((80 * gib)) used=$((4 * gib))"
		echo "gpu 2 uuid=GPU-i2222222-2222 name=Fake_H100 minor=2 util=0 total=$((80 * gib)) used=0"
		while read -r gpu pid mem sm; do
			echo "proc $gpu pid=$pid mem=$mem sm=$sm"
		done
	} | write_state
}

check "member $m added" add_member "$m"
check "$m's container starts" gpubox start --member "$m"

# ---- the webhook's URL in a file of root's ------------------------------------
python3 "$(dirname "$0")/webhook.py" "$hook_port" "$hook_log" 1 &
hook_pid=$!
wait_for 10 curl -s -o /dev/null "http://127.0.0.1:$hook_port/" || not_ok "the test's webhook listens"
echo "http://127.0.0.1:$hook_port/hooks/gbx-$GBX_ID" >"$work/webhook.url"
chmod 644 "$work/webhook.url"
idle_conf=("idle_after = 2s" "idle_memory_min = 256M" "notify_webhook = $work/webhook.url")
if set_config "${idle_conf[@]}"; then
	not_ok "the agent refuses a webhook file others may read"
else
	agent_log_has "must belong to root and be closed to others" &&
		ok "the agent refuses a webhook file others may read, and says why" ||
		not_ok "the refusal of a readable webhook file says why"
fi
chmod 600 "$work/webhook.url"
check "the agent starts with idle_after = 2s and the webhook's file" set_config "${idle_conf[@]}"

# ---- three jobs: idle, small, busy --------------------------------------------
job sleep 7251
job sleep 7252
job sleep 7253
wait_for 20 host_pid_of '^sleep 7251$' && wait_for 20 host_pid_of '^sleep 7252$' &&
	wait_for 20 host_pid_of '^sleep 7253$'
p_idle=$(host_pid_of '^sleep 7251$') p_small=$(host_pid_of '^sleep 7252$') p_busy=$(host_pid_of '^sleep 7253$')
n_idle=$(ns_pid_of "$p_idle")
[ -n "$p_idle" ] && [ -n "$p_small" ] && [ -n "$p_busy" ] &&
	ok "three jobs run in $m's container (idle $p_idle, small $p_small, busy $p_busy)" ||
	not_ok "the jobs did not start"
# three_jobs UTIL: the three on the fake GPUs, GPU 0 at UTIL %.
three_jobs() {
	nvml_state "$1" <<-PROCS
		0 $p_idle $((4 * gib)) $1
		0 $p_small $((100 * mib)) 0
		1 $p_busy $((4 * gib)) 60
	PROCS
}
three_jobs 0
# The agent looks for a driver again only now and then: restart it.
check "the agent restarts and reads the fake GPUs" set_config "${idle_conf[@]}"

gpu0_idle() { gpubox gpus --json | jq_check --arg m "$m" '.gpus[0].idle and .gpus[0].idle_members == [$m] and .gpus[0].idle_seconds >= 2'; }
check "gpubox gpus marks GPU 0 idle for $m after idle_after" wait_for 15 gpu0_idle

# ---- the notices: each once, on the host, then inside ----------------------------
# (Before anything else the member asks: any command of theirs shows them.)
check "the agent gave the first notice" wait_for 10 agent_log_has "idle: $m's 1 process on GPU 0: idle for .* notice 1 of 2"
first=$(as_user "$m" version 2>&1 >/dev/null)
again=$(as_user "$m" version 2>&1 >/dev/null)
grep -q "^gpubox: notice: GPU 0 on gbxtest has been idle (0 % utilisation) for [0-9]*s while your processes hold 4.0 GiB" <<<"$first" &&
	[ -z "$again" ] && ok "$m's next command prints the notice, the one after it nothing" ||
	{ not_ok "the first notice once"; printf '%s\n--\n%s\n' "$first" "$again" | diag; }
check "the agent gave the second notice" wait_for 10 agent_log_has "idle: $m's 1 process on GPU 0: idle for .* notice 2 of 2"
second=$(inside_as gpubox ps 2>&1 >/dev/null)
again=$(inside_as gpubox ps 2>&1 >/dev/null)
grep -q "^gpubox: notice: Second notice: GPU 0 on gbxtest" <<<"$second" && [ -z "$again" ] &&
	ok "inside the container, gpubox ps prints the second notice, once" ||
	{ not_ok "the second notice inside"; printf '%s\n--\n%s\n' "$second" "$again" | diag; }

# ---- the marks ------------------------------------------------------------------------
gpus=$(gpubox gpus --json)
[ "$(jq -c '[.gpus[1].idle, .gpus[2].idle, .gpus[1].idle_members]' <<<"$gpus")" = '[false,false,[]]' ] &&
	ok "the busy GPU 1 and the unused GPU 2 are not idle" || not_ok "gpus: $(jq -c '.gpus' <<<"$gpus")"
gpubox gpus | grep -E "^0 .*$m \(idle\) - idle [0-9]+s" >/dev/null &&
	ok "the table says so: $(gpubox gpus | grep -E '^0 ' | sed 's/  */ /g')" ||
	{ not_ok "gpus as a table"; gpubox gpus | diag; }

ps=$(as_user "$m" ps --json 2>/dev/null)
if [ "$(jq --argjson i "$n_idle" '[.processes[] | select(.pid == $i)][0] | .idle and .idle_seconds >= 2' <<<"$ps")" = true ] &&
   [ "$(jq '[.processes[] | select(.idle)] | length' <<<"$ps")" = 1 ]; then
	ok "$m's gpubox ps marks the idle job (pid $n_idle inside) and only it"
else
	not_ok "ps: $(jq -c .processes <<<"$ps")"
fi
as_user "$m" ps 2>/dev/null | grep -E "^$n_idle .* [0-9]+s +sleep 7251" >/dev/null &&
	as_user "$m" ps 2>/dev/null | grep -E "sleep 7253" | grep -q -- ' - ' &&
	ok "the table has an IDLE column: a time for the idle job, - for the others" ||
	{ not_ok "ps as a table"; as_user "$m" ps 2>&1 | diag; }

metrics=$(curl -sf "http://127.0.0.1:$GBX_METRICS_PORT/metrics")
idle_line=$(grep "^gpubox_gpu_idle_seconds{member=\"$m\",gpu=\"0\"" <<<"$metrics")
if [ -n "$idle_line" ] && [ "${idle_line##* }" -ge 2 ] &&
   grep -q "^gpubox_gpu_idle_seconds{member=\"$m\",gpu=\"1\",uuid=\"GPU-i1111111-1111\",server=\"gbxtest\"} 0$" <<<"$metrics"; then
	ok "/metrics: $idle_line, and 0 for the busy GPU 1"
else
	not_ok "/metrics: $(grep gpubox_gpu_idle <<<"$metrics")"
fi

sleep 3
quiet=$(as_user "$m" version 2>&1 >/dev/null)
[ -z "$quiet" ] && ok "no third notice however long the GPU stays idle" || { not_ok "a third notice"; diag <<<"$quiet"; }

# ---- the webhook ------------------------------------------------------------------
hook_got() { [ "$(jq -s '[.[] | select(.status == 200)] | length' "$hook_log" 2>/dev/null)" -ge 2 ]; }
if wait_for 20 hook_got; then
	hooks=$(jq -s -c '[.[] | select(.status == 200)]' "$hook_log")
	if [ "$(jq -r '.[0].path' <<<"$hooks")" = "/hooks/gbx-$GBX_ID" ] &&
	   [ "$(jq -r '.[0].content_type' <<<"$hooks")" = application/json ] &&
	   [ "$(jq -r '.[0].body | fromjson | keys | join(",")' <<<"$hooks")" = text ] &&
	   jq -r '.[0].body | fromjson | .text' <<<"$hooks" | grep -q "^\[gbxtest\] $m's processes have held GPU 0 idle (0 % utilisation) for [0-9]*s, with 4.0 GiB of its memory (notice 1 of 2)\.$" &&
	   jq -r '.[1].body | fromjson | .text' <<<"$hooks" | grep -q "(notice 2 of 2)"; then
		ok "the webhook got both notices as {\"text\": ...} JSON: $(jq -r '.[0].body' <<<"$hooks")"
	else
		not_ok "the webhook's messages"; diag <"$hook_log"
	fi
else
	not_ok "the webhook got the notices"; diag <"$hook_log"
fi
[ "$(jq -s '[.[] | select(.status == 503)] | length' "$hook_log")" = 1 ] &&
	agent_log_has "notify: the idle message: the webhook answered HTTP 503; trying again in 2 s" &&
	ok "a 503 from the webhook is tried again, and the message gets through" ||
	not_ok "the retry after a 503"

# ---- busy again: the mark goes ----------------------------------------------------
three_jobs 30
touch -d '+1 second' "$GBX_NVML_STATE"
gpu0_busy() { gpubox gpus --json | jq_check '.gpus[0].idle == false and (.gpus[0] | has("idle_seconds") | not)'; }
check "GPU 0 in use again: the mark goes" wait_for 10 gpu0_busy
as_user "$m" ps --json 2>/dev/null | jq_check '[.processes[] | select(.idle)] | length == 0' >/dev/null &&
	ok "no process of $m is marked any more" || not_ok "ps still marks a process"
live_idle() { gpubox usage --since 1h --json | jq_check --arg m "$m" '.members[] | select(.member == $m) | .idle_gpu_hours > 0 and .idle_gpu_hours < .gpu_hours'; }
check "usage counts $m's idle time from the live samples" wait_for 10 live_idle
kill "$p_idle" "$p_small" "$p_busy" 2>/dev/null

# ---- reclaim ---------------------------------------------------------------------------
job sleep 7261
job sh -c 'trap "" TERM; while :; do sleep 1; done' ignoreterm7262
job sleep 7263
job sleep 7264
wait_for 20 host_pid_of '^sleep 7261$' && wait_for 20 host_pid_of '^sh -c .*ignoreterm7262$' &&
	wait_for 20 host_pid_of '^sleep 7263$' && wait_for 20 host_pid_of '^sleep 7264$'
r_term=$(host_pid_of '^sleep 7261$') r_ignore=$(host_pid_of '^sh -c .*ignoreterm7262$')
r_busy=$(host_pid_of '^sleep 7263$') r_small=$(host_pid_of '^sleep 7264$')
[ -n "$r_term" ] && [ -n "$r_ignore" ] && [ -n "$r_busy" ] && [ -n "$r_small" ] &&
	ok "four more jobs: two idle (one ignores SIGTERM), one busy, one small" || not_ok "the reclaim jobs did not start"
nvml_state 0 <<PROCS
0 $r_term $((4 * gib)) 0
0 $r_ignore $((2 * gib)) 0
0 $r_small $((100 * mib)) 0
1 $r_busy $((4 * gib)) 60
PROCS
: >"$hook_log"
check "the agent restarts with idle_reclaim_after = 4s, idle_reclaim_grace = 2s" \
	set_config "${idle_conf[@]}" "idle_reclaim_after = 4s" "idle_reclaim_grace = 2s"
both_ended() { ! alive "$r_term" && ! alive "$r_ignore"; }
if wait_for 30 both_ended; then
	ok "both idle processes ended"
else
	not_ok "the idle processes still run: $(ps -o pid,stat,args -p "$r_term,$r_ignore" | tail -n +2)"
fi
alive "$r_busy" && alive "$r_small" && ok "the busy job on GPU 1 and the small one on GPU 0 run on" ||
	not_ok "reclaim ended a process it should have spared"
# The agent sees an end at its next tick.
agent_log_has "idle: SIGTERM to $m's process .* (host pid $r_term, sleep 7261) on GPU 0" &&
	wait_for 5 agent_log_has "idle: $m's process .* (host pid $r_term) ended after SIGTERM" &&
	ok "the log: SIGTERM to $r_term, and its end" || not_ok "the log of $r_term's end"
agent_log_has "idle: SIGTERM to $m's process .* (host pid $r_ignore," &&
	agent_log_has "idle: SIGKILL to $m's process .* (host pid $r_ignore): still running 2 s after SIGTERM" &&
	wait_for 5 agent_log_has "idle: $m's process .* (host pid $r_ignore) ended after SIGKILL" &&
	ok "the log: SIGTERM to $r_ignore, SIGKILL 2 s later, its end" || not_ok "the log of $r_ignore's end"
! agent_log_has "host pid $r_busy[,)]" && ! agent_log_has "host pid $r_small[,)]" &&
	ok "no signal is logged for the spared processes" || not_ok "a spared process appears in the log"
told=$(as_user "$m" version 2>&1 >/dev/null)
grep -q "^gpubox: notice: gpubox ended your process [0-9]* (sleep 7261) on GPU 0 on gbxtest" <<<"$told" &&
	ok "$m is told which process was ended" || { not_ok "the reclaim notice"; diag <<<"$told"; }
hook_reclaim() { jq -r '.body | fromjson | .text' "$hook_log" 2>/dev/null | grep -c "^\[gbxtest\] ended $m's process" | grep -qx 2; }
check "the webhook got both ends" wait_for 10 hook_reclaim

# ---- idle GPU-hours from the past ---------------------------------------------------------
minute=$(( ($(date +%s) - 4 * 3600) / 60 * 60 * 1000 ))
history_past_sql 2 GPU-i2222222-2222 "$past" "$minute" 120 0 $((4 * gib)) $((80 * gib)) 30 |
	sqlite3 -cmd ".timeout 5000" "$GBX_DIR/state/history.db"
usage=$(gpubox usage --since 7d --json)
[ "$(jq -r --arg p "$past" '.members[] | select(.member == $p) | "\(.gpu_hours) \(.idle_gpu_hours)"' <<<"$usage")" = "2 1" ] &&
	ok "usage --since 7d: $past used 2 GPU-hours, 1 of them idle" || not_ok "usage: $usage"
gpubox usage --since 7d --csv | grep -q "^$past,2.0000,8.0000,1.0000$" &&
	gpubox usage --since 7d --csv | head -1 | grep -q '^member,gpu_hours,gpu_mem_gib_hours,idle_gpu_hours$' &&
	ok "the CSV has idle_gpu_hours" || { not_ok "usage --csv"; gpubox usage --since 7d --csv | diag; }
gpubox usage --since 7d | grep -E "^$past +2\.00 +1\.00 +8\.00$" >/dev/null &&
	ok "the table: GPU-HOURS 2.00, IDLE GPU-HOURS 1.00" || { not_ok "usage as a table"; gpubox usage --since 7d | diag; }
done_testing
