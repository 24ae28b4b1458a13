#!/bin/bash
# gpuboxd killed with SIGKILL in the middle of a start, then restarted,
# leaves one correct set of rules and a consistent container.
. "$(dirname "$0")/lib.sh"

m=ca$GBX_ID
trap 'remove_member $m' EXIT
check "member $m added" add_member "$m"
port=$(member_field "$m" ssh_port)
one_set() { # exactly one rule per hook for the member's port, or none
	local want=$1 n
	n=$(nft_rules | grep -c "dport $port ")
	[ "$n" = "$want" ]
}

for delay in 0.02 0.1 0.3 0.8; do
	gpubox start --member "$m" >/dev/null 2>&1 &
	cli=$!
	sleep "$delay"
	kill -9 "$(cat "$GBX_DIR/agent.pid")"
	wait "$cli" 2>/dev/null
	restart_agent && ok "the agent restarts after SIGKILL at ${delay}s" || not_ok "the agent restarts after SIGKILL at ${delay}s"
	state=$(member_field "$m" state)
	mounted=no
	grep -q " $GBX_DIR/state/users/$m/rootfs " /proc/self/mounts && mounted=yes
	case "$state" in
	running) one_set 2 && ok "running after the crash: its rules, once" || { not_ok "running: one set of rules"; nft_rules | diag; } ;;
	stopped) one_set 0 && [ $mounted = no ] && ok "stopped after the crash: no rules, no mount" ||
			{ not_ok "stopped: no rules, no mount (mounted=$mounted)"; nft_rules | diag; } ;;
	*) not_ok "a clear state after the crash (got '$state')" ;;
	esac
	check "start completes after the crash" gpubox start --member "$m"
	one_set 2 && ok "exactly one set of rules after start" || { not_ok "exactly one set of rules"; nft_rules | diag; }
	check "the member logs in" client_ssh_container "$m" "$port" true
	check "stop" gpubox stop --member "$m"
done
kill -9 "$(cat "$GBX_DIR/agent.pid")"
restart_agent
one_set 0 && ok "a restart with the container stopped leaves no rule for it" || not_ok "no rule for a stopped container"
done_testing
