#!/bin/bash
# Nobody starves the agent.  Member A, root in their container with 65,536
# uids, opens 64 connections to the container's socket (/dev/gpubox/sock),
# 8 from each of 8 uids, each sending a frame's 4-byte header and then one
# byte every 2 s (well inside any per-read timeout).  For as long as they
# dribble, root's `gpubox admin ls` and member B's `gpubox status` answer
# within a second; A's connections beyond their container's small budget
# are refused at once, naming the container; a dribbling request is cut at
# its deadline.  A client that stops reading does not hold an agent
# thread: a second request of the same member is served meanwhile.
. "$(dirname "$0")/lib.sh"

a=sa$GBX_ID
b=sb$GBX_ID
work=$(mktemp -d "$GBX_DIR/starve.XXXX")
chmod 755 "$work"
dribblers=()
finish() {
	[ ${#dribblers[@]} -gt 0 ] && kill "${dribblers[@]}" 2>/dev/null
	wait 2>/dev/null
	remove_member "$a"
	remove_member "$b"
	rm -rf "$work"
}
trap finish EXIT

if ! command -v python3 >/dev/null; then
	echo "1..0 # SKIP python3 drives the 64 connections (meson brings it)"
	exit 0
fi

add_member "$a" && add_member "$b" && ok "members $a and $b added" || not_ok "members added"
check "$a starts" gpubox start --member "$a"
sock=$GBX_DIR/state/users/$a/guest/sock
[ -S "$sock" ] && ok "$a's container has its own socket" || not_ok "$a's container has its own socket ($sock)"
base=$(gpubox admin user ls --json | jq -r --arg m "$a" '.users[] | select(.name == $m) | .subid_base')

# 8 uids inside A's container (seen from the host), 8 connections each,
# dribbling for at most 30 s (tests/system/dribble.py).
dribble=$(dirname "$0")/dribble.py
start_ms=$(date +%s%3N)
for u in $(seq 1000 1007); do
	python3 "$dribble" "$sock" $((base + u)) 8 30 "$work/ready.$u" >"$work/d.$u" 2>&1 &
	dribblers+=($!)
done
all_connected() { [ "$(cat "$work"/ready.* 2>/dev/null | grep -c '^connected 8$')" = 8 ]; }
wait_for 30 all_connected && ok "64 connections from 8 uids inside $a's container" ||
	{ not_ok "64 connections from 8 uids inside $a's container"; cat "$work"/d.* | diag; }
sleep 1

# While they dribble: the admin and another member, each within a second.
timed() { # the command's wall time in ms, its output in $work/out
	local t0 t1
	t0=$(date +%s%3N)
	"$@" >"$work/out" 2>&1
	local rc=$?
	t1=$(date +%s%3N)
	echo "$((t1 - t0)) $rc"
}
read -r ms rc <<<"$(timed gpubox admin ls)"
[ "$rc" = 0 ] && [ "$ms" -lt 1000 ] && ok "root's admin ls answers during the attack (${ms} ms)" ||
	{ not_ok "root's admin ls answers during the attack (${ms} ms, exit $rc)"; diag <"$work/out"; }
read -r ms rc <<<"$(timed as_user "$b" status)"
[ "$rc" = 0 ] && [ "$ms" -lt 1000 ] && ok "$b's status answers during the attack (${ms} ms)" ||
	{ not_ok "$b's status answers during the attack (${ms} ms, exit $rc)"; diag <"$work/out"; }
read -r ms rc <<<"$(timed as_user "$a" status)"
[ "$rc" = 0 ] && [ "$ms" -lt 1000 ] && ok "$a's own host login still answers (${ms} ms)" ||
	{ not_ok "$a's own host login still answers (${ms} ms, exit $rc)"; diag <"$work/out"; }

# After the dribblers: most of the 64 were refused at once, naming the
# container; the few admitted were cut at the request's deadline.
wait "${dribblers[@]}" 2>/dev/null
dribblers=()
end_ms=$(date +%s%3N)
refused=$(cat "$work"/d.* | grep -c "too many requests at once from the container of $a")
cut=$(cat "$work"/d.* | grep -c "did not arrive in time")
[ "$refused" -ge 56 ] && ok "$refused of the 64 refused at once, naming the container" ||
	{ not_ok "the connections beyond the container's budget are refused ($refused)"; sort "$work"/d.* | uniq -c | diag; }
[ "$cut" -ge 1 ] && [ $((refused + cut)) -eq 64 ] && ok "the $cut admitted were cut at the request's deadline" ||
	{ not_ok "the admitted ones are cut at the deadline ($cut cut, $refused refused)"; sort "$work"/d.* | uniq -c | diag; }
[ $((end_ms - start_ms)) -lt 25000 ] && ok "no connection outlived the deadline ($((end_ms - start_ms)) ms for all)" ||
	not_ok "no connection outlived the deadline ($((end_ms - start_ms)) ms for all)"

# A client that asks for a long answer and never reads it: the member's
# next request is served meanwhile, and the agent's thread is let go.
cat >"$work/noread.py" <<'EOF'
import json, os, socket, sys, time
path, uid = sys.argv[1], int(sys.argv[2])
fd = os.open(path, os.O_PATH)
os.setgroups([])
os.setresgid(uid, uid, uid)
os.setresuid(uid, uid, uid)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect("/proc/self/fd/%d" % fd)
req = json.dumps({"v": 1, "op": "history", "args": {"from": 0}}).encode()
s.sendall(len(req).to_bytes(4, "big") + req)
time.sleep(15)
EOF
python3 "$work/noread.py" "$sock" $((base + 1000)) >/dev/null 2>&1 &
noread=$!
sleep 1
read -r ms rc <<<"$(timed as_user "$a" status)"
[ "$rc" = 0 ] && [ "$ms" -lt 1000 ] && ok "a client that does not read holds nothing up (${ms} ms)" ||
	{ not_ok "a client that does not read holds nothing up (${ms} ms, exit $rc)"; diag <"$work/out"; }
kill "$noread" 2>/dev/null
wait "$noread" 2>/dev/null
grep -q "refused a connection: too many requests at once from the container of $a" "$GBX_DIR/agent.log" &&
	ok "the agent's log names the container over its budget" || not_ok "the agent's log names the container over its budget"
done_testing
