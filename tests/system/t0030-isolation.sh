#!/bin/bash
# Member B can do nothing to member A's container: not through the CLI,
# not through the raw socket, not over the bridge.
. "$(dirname "$0")/lib.sh"

a=ia$GBX_ID
b=ib$GBX_ID
trap 'remove_member $a; remove_member $b' EXIT
add_member "$a" && add_member "$b" && ok "members $a and $b added" || not_ok "members added"
check "$a starts" gpubox start --member "$a"
check "$b starts" gpubox start --member "$b"

for cmd in "stop" "rebuild --yes" "port add 8080" "port rm 8080" "status" "start"; do
	# shellcheck disable=SC2086
	refuse "$b cannot '$cmd' for $a (CLI)" 1 'only on your own' as_user "$b" $cmd --member "$a"
done
[ "$(member_field "$a" state)" = running ] && ok "$a still runs" || not_ok "$a still runs"

# The raw protocol, framed by hand: 4-byte length, then JSON.
raw() { # user json
	local json=$2 len
	len=${#json}
	{ printf "\\x$(printf %02x $((len >> 24 & 255)))\\x$(printf %02x $((len >> 16 & 255)))"
	  printf "\\x$(printf %02x $((len >> 8 & 255)))\\x$(printf %02x $((len & 255)))"
	  printf '%s' "$json"; } |
		setpriv --reuid="$1" --regid="$(id -g "$1")" --init-groups nc -U -q 2 "$GBX_DIR/gpubox.sock" | tr -d '\000-\010'
}
for req in "stop:{\"member\":\"$a\"}" "rebuild:{\"member\":\"$a\",\"confirm\":true}" \
	   "port_add:{\"member\":\"$a\",\"port\":8080}"; do
	op=${req%%:*}
	out=$(raw "$b" "{\"v\":1,\"op\":\"$op\",\"args\":${req#*:}}")
	echo "$out" | grep -q '"denied"' && ok "$b cannot $op $a's container (raw socket)" ||
		{ not_ok "$b cannot $op $a's container (raw socket)"; echo "$out" | diag; }
done
out=$(raw "$b" '{"v":1,"op":"user_add","args":{"name":"evil","keys":["x"]}}')
echo "$out" | grep -q '"denied"' && ok "$b cannot add members (raw socket)" || not_ok "$b cannot add members (raw socket)"
out=$(raw "$b" '{"v":1,"op":"stop","args":{"member":"'"$a"'"},"member":"'"$a"'"}')
echo "$out" | grep -q '"ok":false' && ok "unknown request fields are refused" || not_ok "unknown request fields are refused"
out=$(raw "$b" 'not json at all')
echo "$out" | grep -q '"ok":false' && ok "garbage is answered with an error" || not_ok "garbage is answered with an error"
[ "$(member_field "$a" state)" = running ] && ok "$a still runs after the raw attempts" || not_ok "$a still runs after the raw attempts"
gpubox version >/dev/null && ok "the agent survived" || not_ok "the agent survived"

addr_a=$(member_field "$a" address)
if lxc_attach "$b" timeout 5 bash -c "echo > /dev/tcp/$addr_a/22" 2>/dev/null; then
	not_ok "$b's container cannot reach $a's container over the bridge"
else
	ok "$b's container cannot reach $a's container over the bridge"
fi
done_testing
