#!/bin/bash
. "$(dirname "$0")/lib.sh"
m=dbg$GBX_ID
trap 'remove_member $m' EXIT
check "add" add_member "$m"
kill "$(cat "$GBX_DIR/agent.pid")"; sleep 0.5
check "restart" restart_agent
check "start by the restarted agent" gpubox start --member "$m"
lxc-info -P "$GBX_DIR/state/lxc" -n "$m" -p | diag
ps -o pid,ppid,pgid,sid,cmd -e | grep -E "lxc monitor|gpuboxd" | grep -v grep | diag
kill "$(cat "$GBX_DIR/agent.pid")"; sleep 0.5
lxc-info -P "$GBX_DIR/state/lxc" -n "$m" -s | diag
check "restart again" restart_agent
[ "$(member_field "$m" state)" = running ] && ok "still running" || not_ok "stopped by the agent's kill"
done_testing
