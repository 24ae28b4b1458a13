#!/bin/bash
# A member's slow shutdown stalls nobody else.  Member A, root in their
# container, masks halt.target: systemd (PID 1) then ignores LXC's halt
# signal, and A's `gpubox stop` takes the whole stop_timeout before the
# container is killed.  For as long as it runs, member B's status and
# root's admin ls answer within a second, B adds and removes a port, and
# B stops and starts their own container; A's own status answers too.
# Then A loops start/stop, and B's status stays fast throughout.
. "$(dirname "$0")/lib.sh"

a=wa$GBX_ID
b=wb$GBX_ID
timeout=20
work=$(mktemp -d "$GBX_DIR/slowstop.XXXX")
stopper=
looper=
conf_before=$work/gpubox.conf.before

restart_with_conf() { # restart the agent on the configuration now in $GBX_CONF
	kill "$(cat "$GBX_DIR/agent.pid")"
	sleep 0.5
	restart_agent
}
finish() {
	[ -n "$stopper" ] && kill "$stopper" 2>/dev/null
	[ -n "$looper" ] && kill "$looper" 2>/dev/null
	wait 2>/dev/null
	# A's container halts cleanly again, so that removing A is quick.
	lxc_attach "$a" systemctl unmask halt.target poweroff.target >/dev/null 2>&1
	remove_member "$a"
	remove_member "$b"
	if [ -f "$conf_before" ]; then
		cp "$conf_before" "$GBX_CONF"
		restart_with_conf
	fi
	rm -rf "$work"
}
trap finish EXIT

# timed TAG command...: the command's wall time in ms and its exit status
# into $work/TAG, its output into $work/TAG.out.
timed() {
	local tag=$1 t0 t1 rc
	shift
	t0=$(date +%s%3N)
	"$@" >"$work/$tag.out" 2>&1
	rc=$?
	t1=$(date +%s%3N)
	echo "$((t1 - t0)) $rc" >"$work/$tag"
}
# within MS TAG "what": passes when the command timed as TAG succeeded in MS or less.
within() {
	local limit=$1 tag=$2 what=$3 ms rc
	read -r ms rc <"$work/$tag"
	echo "$what: $ms ms" >>"$work/latencies"
	if [ "$rc" = 0 ] && [ "$ms" -le "$limit" ]; then
		ok "$what answers during A's stop (${ms} ms)"
	else
		not_ok "$what answers during A's stop (${ms} ms, exit $rc, limit $limit ms)"
		diag <"$work/$tag.out"
	fi
}
stop_in_flight() { [ -n "$stopper" ] && kill -0 "$stopper" 2>/dev/null; }

cp "$GBX_CONF" "$conf_before"
echo "stop_timeout = $timeout" >>"$GBX_CONF"
check "the agent restarts with stop_timeout = $timeout" restart_with_conf

add_member "$a" && add_member "$b" && ok "members $a and $b added" || not_ok "members added"
check "$a starts" as_user "$a" start
check "$b starts" as_user "$b" start

# The attack: A's PID 1 ignores the halt signal (SIGRTMIN+3 starts
# halt.target, which is masked).
check "$a masks halt.target inside their container" \
	lxc_attach "$a" systemctl mask halt.target poweroff.target

start_ms=$(date +%s%3N)
as_user "$a" stop >"$work/stop.out" 2>&1 &
stopper=$!
sleep 1
stop_in_flight && ok "$a's stop is under way" || not_ok "$a's stop is under way (it ended at once)"

# All at once, each timed on its own: none may wait for A's stop.
probes=()
timed b_status as_user "$b" status & probes+=($!)
timed admin_ls gpubox admin ls & probes+=($!)
timed a_status as_user "$a" status & probes+=($!)
timed b_port_add as_user "$b" port add 8080 & probes+=($!)
wait "${probes[@]}"
within 1000 b_status "$b's status"
within 1000 admin_ls "root's admin ls"
within 1000 a_status "$a's own status"
within 1000 b_port_add "$b's port add"
timed b_port_rm as_user "$b" port rm 8080
within 1000 b_port_rm "$b's port rm"
check "$b stops their container" as_user "$b" stop
check "$b starts their container again" as_user "$b" start
stop_in_flight && ok "all of B's work ended while A's stop still waited" ||
	not_ok "all of B's work ended while A's stop still waited"

wait "$stopper"
rc=$?
stopper=
stop_ms=$(($(date +%s%3N) - start_ms))
echo "$a's stop: $stop_ms ms" >>"$work/latencies"
[ $rc = 0 ] && ok "$a's stop succeeds in the end (${stop_ms} ms)" ||
	{ not_ok "$a's stop succeeds in the end (exit $rc)"; diag <"$work/stop.out"; }
[ "$stop_ms" -ge $(((timeout - 1) * 1000)) ] && ok "PID 1 ignored the halt signal: the stop took the whole timeout" ||
	not_ok "PID 1 ignored the halt signal: the stop took the whole timeout (${stop_ms} ms)"
[ "$(member_field "$a" state)" = stopped ] && ok "$a's container is stopped" || not_ok "$a's container is stopped"
grep -q "did not shut down in $timeout s" "$GBX_DIR/agent.log" &&
	ok "the agent's log says it was killed after the timeout" || not_ok "the agent's log says it was killed after the timeout"

# A loops start/stop (the mask stays in their layer: every stop takes
# the whole timeout again); B's status stays fast through the start and
# the stop.
(
	as_user "$a" start >/dev/null 2>&1
	as_user "$a" stop >/dev/null 2>&1
) &
looper=$!
worst=0
while kill -0 "$looper" 2>/dev/null; do
	timed poll as_user "$b" status
	read -r ms rc <"$work/poll"
	[ "$rc" = 0 ] || { worst=999999; break; }
	[ "$ms" -gt "$worst" ] && worst=$ms
	sleep 0.1
done
wait "$looper"
looper=
echo "$b's worst status while $a loops start/stop: $worst ms" >>"$work/latencies"
[ "$worst" -le 1000 ] && ok "$b's status stays under a second while $a loops start/stop (worst ${worst} ms)" ||
	not_ok "$b's status stays under a second while $a loops start/stop (worst ${worst} ms)"
diag <"$work/latencies"
done_testing
