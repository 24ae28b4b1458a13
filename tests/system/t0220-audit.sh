#!/bin/bash
# The audit log: the test's own requests (two members' and root's, done
# and refused) are in gpubox admin log with the uid and member the kernel
# gave, the operation, its target and its result; read-only requests are
# not.  A member reads their own entries only, whatever they ask for and
# wherever they ask from, and cannot open the file; a later member of the
# same name does not inherit them.  Every entry is one line of the agent's
# log that a client's text cannot break.  Old entries go with
# audit_retention.  (Issue 18, part 4.)
. "$(dirname "$0")/lib.sh"

a=ua$GBX_ID
b=ub$GBX_ID
db=$GBX_DIR/state/audit.db
port_a=$((GBX_FWD_LAST - 5))
cleanup() {
	remove_member "$a"
	remove_member "$b"
	restore_config t0220
}
trap cleanup EXIT

# One request as USER, as any program could send it (request.py): the
# agent's final answer as one JSON line.
raw_request() { # USER JSON
	python3 "$(dirname "$0")/request.py" "$GBX_DIR/gpubox.sock" "$(id -u "$1")" "$2"
}

# This test's entries, as root sees them; has_entry passes when one matches.
since=$(date +%s)
log_json() { gpubox admin log --since "@$since" --limit 10000 --json; }
has_entry() { # what jq-condition
	local n
	n=$(log_json | jq "[.entries[] | select($2)] | length")
	if [ "${n:-0}" -ge 1 ]; then ok "$1"; else not_ok "$1"; log_json | jq -c '.entries[]' | tail -15 | diag; fi
}

check "member $a added" add_member "$a"
check "member $b added" add_member "$b"
uid_a=$(id -u "$a")
uid_b=$(id -u "$b")

# ---- the test's requests ---------------------------------------------------------
check "$a starts" as_user "$a" start
check "$a forwards a port" as_user "$a" port add 8080 "$port_a"
check "$b starts" as_user "$b" start
check "$b takes a snapshot" as_user "$b" snapshot "s$GBX_ID" --freeze
refuse "$b may not forward $a's port" 1 'only on your own' as_user "$b" port add 8081 --member "$a"
refuse "$a may not take a reserved host port" 1 'reserved' as_user "$a" port add 8082 22
check "root stops $a" gpubox stop --member "$a"
check "$a asks for its status (read-only)" as_user "$a" status
check "$b lists its ports (read-only)" as_user "$b" port ls
refuse "$b may not see $a's status" 1 'only on your own' as_user "$b" status --member "$a"

has_entry "user add by root: uid 0, admin, target $a" \
	".op == \"user_add\" and .uid == 0 and .by == \"root\" and .admin and .target == \"$a\" and .result == \"ok\""
has_entry "start by $a: uid $uid_a, member $a" \
	".op == \"start\" and .uid == $uid_a and .member == \"$a\" and (.admin | not) and .target == \"$a\" and .result == \"ok\""
has_entry "port add by $a with its target and arguments" \
	".op == \"port_add\" and .member == \"$a\" and .target == \"$a port=8080\" and .args.port == 8080 and .args.host_port == $port_a and .result == \"ok\""
has_entry "snapshot by $b" \
	".op == \"snapshot_create\" and .uid == $uid_b and .member == \"$b\" and .target == \"$b name=s$GBX_ID\" and .args.freeze == true and .result == \"ok\""
has_entry "$b's try at $a's port: denied, with the sentence" \
	".op == \"port_add\" and .member == \"$b\" and .target == \"$a port=8081\" and .result == \"denied\" and (.error | test(\"only on your own\"))"
has_entry "$a's reserved host port: denied" \
	".op == \"port_add\" and .member == \"$a\" and .args.host_port == 22 and .result == \"denied\""
has_entry "stop by root on $a's container" \
	".op == \"stop\" and .uid == 0 and (.member == null) and .target == \"$a\" and .result == \"ok\""
has_entry "$b's denied status of $a (read-only, but denied)" \
	".op == \"status\" and .member == \"$b\" and .result == \"denied\""
n=$(log_json | jq '[.entries[] | select((.op == "status" or .op == "port_ls") and .result == "ok")] | length')
[ "$n" = 0 ] && ok "read-only requests that went through are not recorded" ||
	not_ok "read-only requests are recorded ($n)"

# ---- one member's, and a member's own -----------------------------------------------
gpubox admin log --member "$a" --since "@$since" --json |
	jq_check --arg m "$a" '(.entries | length) >= 3 and all(.entries[]; .member == $m)' >/dev/null &&
	ok "admin log --member $a holds only $a's requests" ||
	{ not_ok "admin log --member $a holds only $a's requests"; gpubox admin log --member "$a" --json | diag; }
own_b() { jq_check --arg m "$b" \
	'(.entries | length) >= 3 and all(.entries[]; .member == $m) and any(.entries[]; .op == "port_add" and .result == "denied")'; }
as_user "$b" log --json | own_b >/dev/null &&
	ok "$b's gpubox log holds $b's entries only, its refusal among them" ||
	{ not_ok "$b's gpubox log holds $b's entries only"; as_user "$b" log --json | diag; }
as_user "$b" -c "log --json" | own_b >/dev/null &&
	ok "the same through the login shell" || not_ok "the same through the login shell"
out=$(as_user "$b" -c "log")
echo "$out" | head -1 | grep -q 'TIME *BY *OP *TARGET *RESULT' &&
	echo "$out" | grep -q "snapshot_create" &&
	! echo "$out" | awk 'NR > 1 { print $3 }' | grep -qx "$a" &&
	ok "$b's table shows its own requests, none of $a's" || { not_ok "$b's table"; echo "$out" | diag; }
# Asking for someone else's, every way there is.
refuse "gpubox log takes no --member" 2 'does not take --member' as_user "$b" log --member "$a"
refuse "the login shell refuses admin log to $b" 1 'for admins' as_user "$b" -c "admin log --member $a"
refuse "admin log --member $a is denied to $b" 1 'only your own' as_user "$b" admin log --member "$a"
raw_request "$b" "{\"v\":1,\"op\":\"log\",\"args\":{\"member\":\"$a\"}}" |
	jq_check '.ok == false and .code == "denied"' >/dev/null &&
	ok "a raw log request naming $a is denied to $b" || not_ok "a raw log request naming $a is denied to $b"
raw_request "$b" '{"v":1,"op":"log","args":{"own":false,"limit":10000}}' |
	jq_check --arg m "$b" '.ok and (.result.entries | length) > 0 and all(.result.entries[]; .member == $m)' >/dev/null &&
	ok "\"own\": false still gives $b its own entries only" || not_ok "\"own\": false gives $b others' entries"
has_entry "$b's try at $a's log is itself recorded" \
	".op == \"log\" and .member == \"$b\" and .result == \"denied\" and .args.member == \"$a\""
refuse "inside $b's container log is refused" 1 'answers only ps, gpus, status, reserve, reservations and release' \
	lxc_attach "$b" env -u GPUBOX_CONFIG /usr/local/bin/gpubox log
has_entry "and recorded as from inside" \
	".op == \"log\" and .member == \"$b\" and .guest and .result == \"denied\""

# ---- the file ------------------------------------------------------------------------
[ "$(stat -c %a "$db")" = 600 ] && [ "$(stat -c %U "$db")" = root ] &&
	ok "audit.db is root's, mode 600" || not_ok "audit.db is $(stat -c '%U %a' "$db")"
refuse "$b cannot read audit.db" 1 'Permission denied' \
	setpriv --reuid="$b" --regid="$(id -g "$b")" --init-groups cat "$db"

# ---- the log line ----------------------------------------------------------------------
grep -q "audit: by=$a uid=$uid_a member=$a admin=no guest=no op=port_add target=\"$a port=8080\" result=ok " "$GBX_DIR/agent.log" &&
	ok "the agent's log has the line of $a's port add" ||
	{ not_ok "the agent's log has the line of $a's port add"; grep 'audit:' "$GBX_DIR/agent.log" | tail -5 | diag; }
raw_request "$a" '{"v":1,"op":"port_add","args":{"port":"1\naudit: by=root forged'"$GBX_ID"'\u2028x"}}' >/dev/null
forged=$(grep -c "forged$GBX_ID" "$GBX_DIR/agent.log")
# In the target the bytes themselves are escaped; in the arguments, their
# JSON escapes (\n, \u2028) with the backslash escaped.
line=$(grep "forged$GBX_ID" "$GBX_DIR/agent.log")
grep -qF "by=$a uid=$uid_a member=$a admin=no guest=no op=port_add target=\"$a port=1\\naudit: by=root forged$GBX_ID\\xe2\\x80\\xa8x\"" <<<"$line" &&
	grep -qF 'args="{\"port\":\"1\\naudit: by=root forged'"$GBX_ID"'\\u2028x\"}"' <<<"$line" &&
	[ "$forged" = 1 ] && ! grep -q "^audit: by=root forged" "$GBX_DIR/agent.log" &&
	ok "a newline in an argument stays inside $a's one line, escaped" ||
	{ not_ok "a newline in an argument stays inside one line"; grep -B1 -A1 "forged$GBX_ID" "$GBX_DIR/agent.log" | diag; }

# ---- a later member of the same name ----------------------------------------------------
check "$a removed and added again" eval 'remove_member "$a" && add_member "$a"'
as_user "$a" log --json | jq_check '(.entries | length) == 0' >/dev/null &&
	ok "the new $a sees none of the old $a's entries" || { not_ok "the new $a inherits entries"; as_user "$a" log --json | diag; }
has_entry "while the admin still sees the old $a's" ".op == \"start\" and .member == \"$a\""

# ---- bad input ------------------------------------------------------------------------------
refuse "--since must be a time" 2 'cannot read "soonish" as a time' gpubox admin log --since soonish
refuse "--limit must be 1 to 10000" 2 '--limit takes a number of entries from 1 to 10000' gpubox admin log --limit 0
[ "$(gpubox admin log --limit 2 --json | jq '.entries | length')" = 2 ] &&
	ok "--limit 2 gives two entries" || not_ok "--limit 2 gives two entries"
gpubox log --help | grep -q 'usage: gpubox log' && gpubox admin log --help | grep -q 'usage: gpubox admin log' &&
	ok "both commands have --help" || not_ok "both commands have --help"

# ---- retention ------------------------------------------------------------------------------
bad=$GBX_DIR/bad-audit.conf
for value in 10m never 101y; do
	printf 'audit_retention = %s\n' "$value" >"$bad"
	refuse "audit_retention = $value is refused" 2 'audit_retention is a duration from 1h' \
		"$GBX_BIN/gpuboxd" --print-config --config "$bad"
done
rm -f "$bad"
now_ms=$(($(date +%s) * 1000))
sqlite3 -cmd ".timeout 5000" "$db" \
	"INSERT INTO audit (t, uid, member, op, target, result) VALUES
	 ($((now_ms - 3 * 86400000)), $uid_b, '$b', 'start', 'old$GBX_ID', 'ok'),
	 ($((now_ms - 12 * 3600000)), $uid_b, '$b', 'start', 'recent$GBX_ID', 'ok');" &&
	ok "two back-dated entries written" || not_ok "two back-dated entries written"
check "the agent restarts with audit_retention = 1d" restart_with_config t0220 "audit_retention = 1d"
left=$(sqlite3 -cmd ".timeout 5000" "$db" "SELECT group_concat(target) FROM audit WHERE target LIKE '%$GBX_ID'")
echo "$left" | grep -q "recent$GBX_ID" && ! echo "$left" | grep -q "old$GBX_ID" &&
	ok "the entry three days old is pruned, the one of 12 hours kept" ||
	not_ok "retention pruned: left $left"
has_entry "this test's entries are kept" ".op == \"snapshot_create\" and .member == \"$b\""
grep -Eq "audit: [0-9]+ entr(y|ies) older than audit_retention deleted" "$GBX_DIR/agent.log" &&
	ok "the prune is logged" || not_ok "the prune is logged"

done_testing
