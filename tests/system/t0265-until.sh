#!/bin/bash
# Temporary limits: `gpubox admin limits set NAME KEY=VALUE --until TIME`
# holds until TIME, then gives way, in the running container too, to the
# member's own value before it or to the server's default; limits ls and
# the member's status show the end; the member is told in the hour
# before, once, and the lab through the webhook (tests/system/webhook.py);
# each end is logged and audited; and an end that passes while the agent
# is down (killed with SIGKILL) is applied when it starts.
. "$(dirname "$0")/lib.sh"

m=un$GBX_ID
hook_port=$((GBX_METRICS_PORT + 7))
hook_log=$GBX_DIR/t0265-webhook.log
hook_pid=
cleanup() {
	stop_pid "$hook_pid"
	remove_member "$m"
	restore_config t0265
}
trap cleanup EXIT
python3 "$(dirname "$0")/webhook.py" "$hook_port" "$hook_log" &
hook_pid=$!
echo "http://127.0.0.1:$hook_port/hooks/gbx-$GBX_ID" >"$GBX_DIR/t0265-webhook.url"
chmod 600 "$GBX_DIR/t0265-webhook.url"
check "the agent restarts with the test's webhook" \
	restart_with_config t0265 "notify_webhook = $GBX_DIR/t0265-webhook.url"
hooked() { # PATTERN: how many webhook messages match
	[ -f "$hook_log" ] && jq -r .body "$hook_log" | grep -c -- "$1" || echo 0
}
check "member $m added" add_member "$m"
check "$m starts" gpubox start --member "$m"

if [ -d /sys/fs/cgroup/pids/lxc.payload."$m" ]; then
	pids_max() { cat "/sys/fs/cgroup/pids/lxc.payload.$m/pids.max"; }
else
	pids_max() { cat "/sys/fs/cgroup/lxc.payload.$m/pids.max"; }
fi
is_pids() { [ "$(pids_max)" = "$1" ]; }      # VALUE
origin() { gpubox admin limits ls "$m" --json | jq -r ".members[0].origin.$1"; }
# The server's default (gpubox.conf's limits: pids=10000 by default).
default=$(gpubox admin limits ls --json | jq -r .defaults.pids)
is_pids "$default" && ok "the container starts with the default pids.max $default" ||
	not_ok "pids.max at the start: $(pids_max), not $default"

# ---- refused: nothing changes -----------------------------------------------------
before=$(gpubox admin limits ls "$m" --json)
refuse "--until in the past is refused" 2 'has passed' gpubox admin limits set "$m" pids=500 --until 2020-01-01
refuse "--until a time ago is refused" 2 'takes an end' gpubox admin limits set "$m" pids=500 --until "-1h"
refuse "--until nonsense is refused" 2 'takes an end' gpubox admin limits set "$m" pids=500 --until tomorrow
[ "$(gpubox admin limits ls "$m" --json)" = "$before" ] && ok "the refused ends changed nothing" ||
	not_ok "a refused --until changed the limits"

# ---- set until a short time ahead: applied, shown, told, then gone ------------------------
since=$(date +%s)
check "limits set pids=555 --until 20s" gpubox admin limits set "$m" pids=555 --until 20s
end=$(gpubox admin limits ls "$m" --json | jq -r '.members[0].until.pids')
[ "$end" -ge $((since + 19)) ] 2>/dev/null && [ "$end" -le $((since + 22)) ] &&
	ok "limits ls --json has the end ($((end - since)) s ahead)" || not_ok "limits ls --json has the end ($end)"
is_pids 555 && ok "the temporary value holds in the running container" || not_ok "pids.max: $(pids_max)"
gpubox admin limits ls "$m" | grep -Eq "^  pids +555  \(this member's own\) until [0-9-]+ [0-9:]+, then the server's default$" &&
	ok "limits ls shows the end and what follows" || { not_ok "limits ls shows the end"; gpubox admin limits ls "$m" | diag; }
out=$(as_user "$m" status 2>&1)
echo "$out" | grep -q "^Temporary: pids until .*, then the server's default$" &&
	ok "the member's status shows the end" || { not_ok "the member's status shows the end"; echo "$out" | diag; }
echo "$out" | grep -q "^gpubox: notice: your pids limit of 555 ends at .* (in [0-9]*s); then it is the server's default ($default)" &&
	ok "the member is told on their next command, within the hour" || { not_ok "the member is told"; echo "$out" | diag; }
as_user "$m" status 2>&1 | grep -q 'notice:' && not_ok "the member is told twice" || ok "... and told once"
wait_for 10 test "$(hooked "the pids limit of $m (555) ends at .* (in [0-9]*s); then it is the server's default ($default)")" = 1 &&
	ok "the lab is told through the webhook, once" || { not_ok "the webhook is told"; diag <"$hook_log"; }
as_user "$m" status --json | jq_check --argjson e "$end" '.limits_until.pids == $e and .limits_then.pids == "default"' >/dev/null &&
	ok "the member's status --json has the end" || not_ok "the member's status --json has the end"
wait_for 30 is_pids "$default" && ok "at the end the default comes back in the running container" ||
	not_ok "pids.max after the end: $(pids_max)"
waited=$(($(date +%s) - since))
[ "$waited" -ge 19 ] && ok "not before its time (${waited} s)" || not_ok "the limit ended after ${waited} s, before its 20 s"
[ "$(origin pids)" = default ] && ok "limits ls: the default again" || not_ok "limits ls after the end: $(origin pids)"
grep -q "limit pids of $m ended at .*: 555 gives way to the server's default" "$GBX_DIR/agent.log" &&
	ok "the end is logged" || not_ok "the end is logged"
gpubox admin log --since "@$since" --json |
	jq_check --arg t "$m key=pids" 'any(.entries[]; .op == "limits_end" and .target == $t and .by == "root" and .args.value == "555" and .result == "ok")' >/dev/null &&
	ok "the end is in the audit log" || { not_ok "the end is in the audit log"; gpubox admin log --since "@$since" | diag; }

# ---- a temporary value over the member's own gives way to it --------------------------------
check "limits set pids=300 (lasting)" gpubox admin limits set "$m" pids=300
check "limits set pids=700 --until 15s over it" gpubox admin limits set "$m" pids=700 --until 15s
check "limits set pids=800 --until 12s, a second temporary one" gpubox admin limits set "$m" pids=800 --until 12s
is_pids 800 && ok "the second temporary value holds" || not_ok "pids.max: $(pids_max)"
gpubox admin limits ls "$m" --json | jq_check '.members[0].then.pids == "300"' >/dev/null &&
	ok "what follows is still the lasting 300" || not_ok "what follows the temporary values"
wait_for 25 is_pids 300 && ok "at the end the member's own 300 comes back" || not_ok "pids.max after the end: $(pids_max)"
[ "$(origin pids)" = member ] && ok "limits ls: the member's own again" || not_ok "limits ls: $(origin pids)"
check "a lasting value drops an end" gpubox admin limits set "$m" pids=310 --until 1h
check "... when set without --until" gpubox admin limits set "$m" pids=320
gpubox admin limits ls "$m" --json | jq_check '.members[0].until == null' >/dev/null &&
	ok "no end is left" || not_ok "an end is left after a lasting value"
check "limits rm pids" gpubox admin limits rm "$m" pids

# ---- an end that passes while the agent is down --------------------------------------------
check "limits set pids=444 --until 10s" gpubox admin limits set "$m" pids=444 --until 10s
is_pids 444 && ok "the temporary value holds" || not_ok "pids.max: $(pids_max)"
kill -9 "$(cat "$GBX_DIR/agent.pid")"
sleep 12
is_pids 444 && ok "with the agent killed, nothing ends the value" || not_ok "pids.max changed while the agent was down"
check "the agent starts again after the end" restart_agent
is_pids "$default" && ok "the end that passed while the agent was down is applied at its start" ||
	not_ok "pids.max after the restart: $(pids_max)"
[ "$(origin pids)" = default ] && ok "limits ls: the default after the restart" || not_ok "limits ls after the restart"

# ---- and one that comes after a restart, kept in the database ----------------------------------
check "limits set pids=666 --until 20s" gpubox admin limits set "$m" pids=666 --until 20s
wait_for 10 test "$(hooked "(666) ends at")" = 1 && ok "the webhook is told of the end ahead" ||
	not_ok "the webhook is told of 666"
kill -9 "$(cat "$GBX_DIR/agent.pid")"
check "the agent starts again before the end" restart_agent
is_pids 666 && ok "the value holds across the restart" || not_ok "pids.max after the restart: $(pids_max)"
as_user "$m" status 2>&1 | grep -q "^gpubox: notice: your pids limit of 666 ends at" &&
	ok "the restarted agent tells the member again (the notice it had was lost)" ||
	not_ok "the member is told after the restart"
sleep 1
[ "$(hooked "(666) ends at")" = 1 ] && ok "... but not the webhook a second time" ||
	not_ok "the webhook was told of 666 $(hooked "(666) ends at") times"
wait_for 20 is_pids "$default" && ok "the restarted agent ends it on time" || not_ok "pids.max: $(pids_max)"
done_testing
