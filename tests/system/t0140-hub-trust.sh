#!/bin/bash
# The agent trusts the hub only within its own ranges.  A hub answer that
# an attacker could serve (a JSON file served on loopback here, as anyone
# between a plain-http agent and its hub, or a hub taken over, would serve
# it) with SSH port 22, a uid outside uid_range or an id block outside
# subid_range changes nothing on the server: no account, no key, no
# nftables rule; the good member of the same answer is created.  A member
# the hub later sends with out-of-range values is kept as it is, keys
# included, unless the entry disables it.  The configuration refuses port ranges below 1024 and plain
# http:// to another host unless hub_insecure_http says so.
. "$(dirname "$0")/lib.sh"

if ! command -v python3 >/dev/null || ! python3 -c 'import http.server' 2>/dev/null; then
	echo "1..0 # SKIP python3 (http.server) serves the crafted hub answer"
	exit 0
fi

hub_port=$((GBX_METRICS_PORT + 4))
hub_dir=$(mktemp -d "$GBX_DIR/fakehub.XXXX")
sync_file=$hub_dir/www/api/v1/sync
hub_pid=
conf_saved=$hub_dir/gpubox.conf.before
cp "$GBX_CONF" "$conf_saved"
range() { sed -n "s/^$1 = \\([0-9]*\\)-\\([0-9]*\\)$/\\$2/p" "$conf_saved"; }
uid_first=$(range uid_range 1)
subid_first=$(range subid_range 1)
subid_last=$(range subid_range 2)
ssh_first=$(range ssh_port_range 1)
slot=$(((uid_first - 47000) / 200))

good=tg$GBX_ID         # all in range: created
bad_port=tp$GBX_ID     # ssh_port 22
bad_uid=tu$GBX_ID      # uid below every suite's uid_range
bad_ids=ts$GBX_ID      # an id block above the agent's subid_range
block() { echo $(((subid_first + 65535) / 65536 * 65536 + $1 * 65536)); }
good_port=$((ssh_first + 90))
good_uid=$((uid_first + 190))
outside_uid=$((46000 + slot))
outside_block=$(((subid_last + 1 + 65535) / 65536 * 65536))

stop_agent() { stop_pid "$(cat "$GBX_DIR/agent.pid")"; }

finish() {
	stop_pid "$hub_pid"
	stop_agent
	cp "$conf_saved" "$GBX_CONF"
	rm -f "$GBX_DIR/state/hub-sync.json"
	restart_agent
	for name in "$good" "$bad_port" "$bad_uid" "$bad_ids"; do
		remove_member "$name"
	done
	rm -rf "$hub_dir"
}
trap finish EXIT

for name in "$good" "$good-2" "$bad_port" "$bad_uid" "$bad_ids"; do
	new_key "$name"
done
pub() { cat "$GBX_DIR/keys-client/$1.pub"; }
member() { # NAME UID BLOCK PORT KEY...
	local name=$1 uid=$2 base=$3 port=$4
	shift 4
	jq -n --arg n "$name" --argjson u "$uid" --argjson b "$base" --argjson p "$port" \
		'{name: $n, display_name: $n, uid: $u, subid_base: $b, ssh_port: $p,
		  disabled: false, keys: $ARGS.positional}' --args "$@"
}
# The hub's answer: GENERATION MEMBER-JSON...
serve() {
	local generation=$1
	shift
	mkdir -p "$(dirname "$sync_file")"
	printf '%s\n' "$@" | jq -s --argjson g "$generation" \
		'{generation: $g, server: "gbxtest", members: .}' >"$sync_file.tmp" &&
		mv "$sync_file.tmp" "$sync_file"
}

# ---- the crafted answer: three attacks and one good member -----------------------
serve 1 "$(member "$bad_port" $((uid_first + 191)) "$(block 101)" 22 "$(pub "$bad_port")")" \
	"$(member "$bad_uid" "$outside_uid" "$(block 102)" $((ssh_first + 91)) "$(pub "$bad_uid")")" \
	"$(member "$bad_ids" $((uid_first + 192)) "$outside_block" $((ssh_first + 92)) "$(pub "$bad_ids")")" \
	"$(member "$good" "$good_uid" "$(block 100)" "$good_port" "$(pub "$good")")"
python3 -m http.server --bind 127.0.0.1 --directory "$hub_dir/www" "$hub_port" \
	>"$hub_dir/http.log" 2>&1 &
hub_pid=$!
served() { curl -s -f "http://127.0.0.1:$hub_port/api/v1/sync" | jq -e .members; }
wait_for 10 served && ok "the fake hub serves the crafted answer" || not_ok "the fake hub serves the crafted answer"

printf 'token-%s-0123456789abcdef\n' "$GBX_ID" >"$hub_dir/token"
chmod 600 "$hub_dir/token"
cat >>"$GBX_CONF" <<CONF
hub_url = http://127.0.0.1:$hub_port
hub_token_file = $hub_dir/token
hub_poll = 1
CONF
stop_agent
check "the agent starts following the fake hub" restart_agent

in_agent() { # NAME: "uid port" as the agent lists the member
	gpubox admin user ls --json | jq -r --arg n "$1" '.users[] | select(.name == $n) | "\(.uid) \(.ssh_port)"'
}
good_in_agent() { [ "$(in_agent "$good")" = "$good_uid $good_port" ]; }
wait_for 30 good_in_agent && ok "the good member of the same answer is created" ||
	{ not_ok "the good member of the same answer is created (got '$(in_agent "$good")')"; tail -20 "$GBX_DIR/agent.log" | diag; }
good_rule() { nft_rules | grep -q "dport $good_port dnat"; }
# The containers start one after the other, the attackers' first: once
# the good member's rule is there, theirs would be too.
wait_for 150 good_rule && ok "the good member's container runs behind port $good_port" ||
	{ not_ok "the good member's container runs behind port $good_port"; nft_rules | diag; }

for name in "$bad_port" "$bad_uid" "$bad_ids"; do
	[ -z "$(in_agent "$name")" ] && ok "$name is not a member here" ||
		not_ok "$name is not a member here (got '$(in_agent "$name")')"
	getent passwd "$name" >/dev/null && not_ok "$name has no host account" || ok "$name has no host account"
	[ ! -e "$GBX_DIR/authorized_keys/$name" ] && ok "$name has no key on the server" ||
		not_ok "$name has no key on the server"
done
getent passwd "$outside_uid" >/dev/null && not_ok "no account has uid $outside_uid" ||
	ok "no account has uid $outside_uid (outside uid_range)"
grep -q "root:$outside_block:" /etc/subuid && not_ok "the block at $outside_block is granted to nobody" ||
	ok "the block at $outside_block (outside subid_range) is granted to nobody"
dport22() { nft_rules | grep -Eq 'dport 22([^0-9]|$)'; }
dport22 && { not_ok "no rule takes the server's port 22"; nft_rules | grep -E 'dport 22([^0-9]|$)' | diag; } ||
	ok "no rule takes the server's port 22"

# Each refusal is logged, naming the member and the field.
logged() { grep -E "$1" "$GBX_DIR/agent.log" >/dev/null; }
logged "member $bad_port .*ssh_port 22 .*ssh_port_range" && ok "the log names $bad_port and ssh_port" ||
	not_ok "the log names $bad_port and ssh_port"
logged "member $bad_uid .*uid $outside_uid .*uid_range" && ok "the log names $bad_uid and uid" ||
	not_ok "the log names $bad_uid and uid"
logged "member $bad_ids .*subid_base $outside_block .*subid_range" && ok "the log names $bad_ids and subid_base" ||
	not_ok "the log names $bad_ids and subid_base"

# ---- a member already here, later sent with port 22 (and a new key) --------------
cp "$GBX_DIR/authorized_keys/$good" "$hub_dir/keys.before"
serve 2 "$(member "$good" "$good_uid" "$(block 100)" 22 "$(pub "$good")" "$(pub "$good-2")")"
wait_for 20 logged "member $good is kept as it is.*refused: ssh_port 22 lies outside" &&
	ok "the out-of-range change of $good is refused and logged" ||
	{ not_ok "the out-of-range change of $good is refused and logged"; tail -10 "$GBX_DIR/agent.log" | diag; }
good_in_agent && ok "$good keeps its uid and SSH port" || not_ok "$good keeps its uid and SSH port (got '$(in_agent "$good")')"
cmp -s "$hub_dir/keys.before" "$GBX_DIR/authorized_keys/$good" && ok "$good keeps its keys as they were" ||
	not_ok "$good keeps its keys as they were"
dport22 && not_ok "still no rule takes port 22" || ok "still no rule takes port 22"
good_rule && ok "$good's rule is still there" || not_ok "$good's rule is still there"

# Taking access away is still obeyed: the same refused entry, disabled.
serve 3 "$(member "$good" "$good_uid" "$(block 100)" 22 | jq -c '.disabled = true | .keys = []')"
wait_for 20 logged "member $good is kept as it is.*disabled: no key left" &&
	ok "a disabled out-of-range entry is logged" ||
	{ not_ok "a disabled out-of-range entry is logged"; tail -10 "$GBX_DIR/agent.log" | diag; }
no_keys() { ! grep -q . "$GBX_DIR/authorized_keys/$good" 2>/dev/null; }
wait_for 10 no_keys && ok "$good has no key left after the hub disabled it" ||
	not_ok "$good has no key left after the hub disabled it"
good_in_agent && ok "$good is otherwise kept as it was" || not_ok "$good is otherwise kept as it was"

# ---- the configuration ---------------------------------------------------------
conf_with() { # LINE...: the suite's configuration with the lines added
	local f=$hub_dir/try.conf
	{ cat "$conf_saved"; printf '%s\n' "$@"; } >"$f"
	echo "$f"
}
print_config() { "$GBX_BIN/gpuboxd" --print-config --config "$1"; }
refuse "ssh_port_range 20-30 is refused" 2 'ssh_port_range .*1024' \
	print_config "$(conf_with "ssh_port_range = 20-30")"
refuse "forward_port_range 1000-1099 is refused" 2 'forward_port_range .*1024' \
	print_config "$(conf_with "forward_port_range = 1000-1099")"
refuse "a plain http:// hub on another host is refused" 2 'hub_insecure_http' \
	print_config "$(conf_with "hub_url = http://192.0.2.1:8080" "hub_token_file = $hub_dir/token")"
check "https:// to another host is taken" \
	print_config "$(conf_with "hub_url = https://192.0.2.1:8443" "hub_token_file = $hub_dir/token")"
insecure=$(conf_with "hub_url = http://192.0.2.1:8080" "hub_token_file = $hub_dir/token" "hub_insecure_http = yes")
check "hub_insecure_http = yes lets the admin have it" print_config "$insecure"
stop_agent
cp "$insecure" "$GBX_CONF"
rm -f "$GBX_DIR/state/hub-sync.json"
check "the agent starts with hub_insecure_http" restart_agent
logged "warning: hub: .*hub_insecure_http" && ok "the agent warns at start about plain http" ||
	{ not_ok "the agent warns at start about plain http"; tail -5 "$GBX_DIR/agent.log" | diag; }
done_testing
