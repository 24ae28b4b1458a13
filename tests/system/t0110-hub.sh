#!/bin/bash
# The agent follows a real gpubox-hub: a member who enables this server on
# the hub gets a host account with the hub's uid and port and a running
# container within seconds; a key added on the hub works within seconds, a
# key removed stops working; members keep logging in while the hub is
# down, also across an agent restart; a member disabled on the hub loses
# every key.  The hub's poke needs its token.
. "$(dirname "$0")/lib.sh"

hub_bin=$GBX_BIN/gpubox-hub
if [ ! -x "$hub_bin" ]; then
	echo "1..0 # SKIP gpubox-hub is not in $GBX_BIN (tests/system/run installs it from the build)"
	exit 0
fi

m=hb$GBX_ID
password=pw-$GBX_ID-secret
hub_port=$((GBX_METRICS_PORT + 2))
hub_url=http://127.0.0.1:$hub_port
hub_dir=$(mktemp -d "$GBX_DIR/hub.XXXX")
hub_pid=
jar=$hub_dir/cookies
conf_saved=$hub_dir/gpubox.conf.before
cp "$GBX_CONF" "$conf_saved"
agent_uid_first=$(sed -n 's/^uid_range = \([0-9]*\)-.*/\1/p' "$GBX_CONF")

stop_agent() { stop_pid "$(cat "$GBX_DIR/agent.pid")"; }

finish() {
	stop_agent
	cp "$conf_saved" "$GBX_CONF"
	restart_agent
	remove_member "$m"
	stop_hub
	rm -rf "$hub_dir"
}
trap finish EXIT

# The member's ssh into their container with one key file.
ssh_key_login() { # KEYFILE PORT command...
	local key=$1 port=$2
	shift 2
	ip netns exec "$GBX_CLIENT_NS" ssh "${SSH_OPTS[@]}" -o IdentitiesOnly=yes -i "$key" \
		-p "$port" "$m@$GBX_HOST_IP" "$@"
}

fails() { ! "$@"; }

# The hub's JSON API as the signed-in member.
api() { # METHOD PATH [JSON]
	local args=(-s -f -b "$jar" -c "$jar" -X "$1" -H "X-CSRF-Token: $csrf")
	[ $# -ge 3 ] && args+=(-H "Content-Type: application/json" --data "$3")
	curl "${args[@]}" "$hub_url$2"
}

# ---- the hub: local accounts; its ranges lie inside the agent's own (the
# agent refuses anything outside them), above what the agent gives locally ----
cat >"$hub_dir/hub.conf" <<CONF
listen = 127.0.0.1:$hub_port
state_dir = $hub_dir/state
auth = local
uid_range = $((agent_uid_first + 150))-$((agent_uid_first + 199))
subid_range = $((GBX_SUBID_FIRST + 4194304))-$((GBX_SUBID_FIRST + 8388607))
ssh_port_range = $((GBX_SSH_FIRST + 50))-$((GBX_SSH_FIRST + 99))
CONF
mkdir -p "$hub_dir/state"
# Not through check: that runs its command in a subshell, and hub_pid
# must reach this shell.
start_hub && ok "the hub starts" || not_ok "the hub starts"
out=$(hub server add gbxtest "http://127.0.0.1:$GBX_METRICS_PORT" 2>&1)
token=$(printf '%s\n' "$out" | grep -E '^[0-9a-f]{64}$' | head -1)
[ -n "$token" ] && ok "gpubox-hub server add prints a token" || { not_ok "server add prints a token"; echo "$out" | diag; }
(umask 077 && printf '%s\n' "$token" >"$hub_dir/token")
cat >>"$GBX_CONF" <<CONF
hub_url = $hub_url/
hub_token_file = $hub_dir/token
hub_poll = 1
CONF

# A token that others may read stops the agent at start.
stop_agent
chmod 644 "$hub_dir/token"
refuse "the agent refuses a token file others may read" 1 'open to group or others' \
	env LD_LIBRARY_PATH="$GBX_BIN/nvml" FAKE_NVML_STATE="$GBX_NVML_STATE" \
	timeout 20 "$GBX_BIN/gpuboxd" --foreground --config "$GBX_CONF"
chmod 600 "$hub_dir/token"
check "the agent starts with hub_url" restart_agent

# ---- the member signs in on the hub, adds a key, enables this server ----
printf '%s\n' "$password" | hub user add "$m" >/dev/null 2>&1
form_csrf=$(curl -s -c "$jar" -b "$jar" "$hub_url/login" | sed -n 's/.*name="csrf" value="\([0-9a-f]*\)".*/\1/p')
curl -s -o /dev/null -c "$jar" -b "$jar" --data-urlencode "name=$m" --data-urlencode "password=$password" \
	--data-urlencode "csrf=$form_csrf" "$hub_url/login"
me=$(curl -s -f -b "$jar" "$hub_url/api/v1/me")
csrf=$(printf '%s' "$me" | jq -r '.csrf_token // empty')
hub_uid=$(printf '%s' "$me" | jq -r '.member.uid // empty')
hub_ssh_port=$(printf '%s' "$me" | jq -r '.member.ssh_port // empty')
[ -n "$csrf" ] && [ -n "$hub_uid" ] && ok "$m signs in on the hub (uid $hub_uid, port $hub_ssh_port)" ||
	{ not_ok "$m signs in on the hub"; echo "$me" | diag; tail -5 "$hub_dir/hub.log" | diag; }

new_key "$m"
new_key "${m}b"
key1=$GBX_DIR/keys-client/$m
key2=$GBX_DIR/keys-client/${m}b
key1_id=$(api POST /api/v1/me/keys "$(jq -n --arg k "$(cat "$key1.pub")" '{key: $k}')" | jq -r '.id // empty')
[ -n "$key1_id" ] && ok "a key is added on the hub" || not_ok "a key is added on the hub"
check "$m enables server gbxtest" api POST /api/v1/me/servers/gbxtest '{"enabled": true}'

in_agent() { # the member as the agent lists it: "uid port"
	gpubox admin user ls --json | jq -r ".users[] | select(.name == \"$m\") | \"\(.uid) \(.ssh_port)\""
}
has_hub_allocations() { [ "$(in_agent)" = "$hub_uid $hub_ssh_port" ]; }
if wait_for 30 has_hub_allocations; then
	ok "within 30 s the member is on the server with the hub's uid and SSH port"
else
	not_ok "the member is on the server with the hub's uid and port (got '$(in_agent)')"
fi
# The record comes a moment before the account (useradd).
account_uid_is_hubs() { [ "$(id -u "$m" 2>/dev/null)" = "$hub_uid" ]; }
wait_for 10 account_uid_is_hubs && ok "the host account has the hub's uid" ||
	{ not_ok "the host account has the hub's uid"; getent passwd "$m" | diag; }
wait_for 120 ssh_key_login "$key1" "$hub_ssh_port" true &&
	ok "the member logs into the container started for them" ||
	not_ok "the member logs into the container started for them"

# ---- keys follow the hub ----
key2_id=$(api POST /api/v1/me/keys "$(jq -n --arg k "$(cat "$key2.pub")" '{key: $k}')" | jq -r '.id // empty')
[ -n "$key2_id" ] && ok "a second key is added on the hub" || not_ok "a second key is added on the hub"
wait_for 15 ssh_key_login "$key2" "$hub_ssh_port" true &&
	ok "the second key works within seconds" || not_ok "the second key works within seconds"
check "the first key is removed on the hub" api DELETE "/api/v1/me/keys/$key1_id"
wait_for 15 fails ssh_key_login "$key1" "$hub_ssh_port" true &&
	ok "the removed key stops working within seconds" || not_ok "the removed key stops working within seconds"
grep -qF "$(cut -d' ' -f2 "$key1.pub")" "$GBX_DIR/authorized_keys/$m" &&
	not_ok "the removed key left the host login" || ok "the removed key left the host login"

# ---- the audit log has the hub's changes, by "hub" ----
hub_ops() { gpubox admin log --limit 10000 --json |
	jq -c --arg m "$m" '[.entries[] | select(.by == "hub" and .uid == null and .target == $m and .result == "ok") | .op] | unique'; }
wait_for 10 eval '[ "$(hub_ops)" = "[\"keys_set\",\"start\",\"user_add\"]" ]' &&
	ok "the audit log has the member's creation, start and key changes by the hub" ||
	{ not_ok "the audit log has the hub's changes: $(hub_ops)"; }
key2_print=$(ssh-keygen -lf "$key2.pub" | awk '{print $2}')
gpubox admin log --limit 10000 --json | jq_check --arg m "$m" --arg fp "$key2_print" \
	'any(.entries[]; .by == "hub" and .op == "keys_set" and .target == $m and any(.args.keys[]; contains($fp)))' >/dev/null &&
	ok "the hub's key change is recorded by fingerprint" || not_ok "the hub's key change is recorded by fingerprint"

# ---- the poke: the hub's token, not anyone's ----
# The hub calls the agent with a token derived from the server's (see
# src/lib/hubtoken.h), computed here apart, with Python's BLAKE2b.
to_agent_token() {
	python3 -c 'import hashlib, sys
key = hashlib.blake2b(sys.argv[1].encode(), digest_size=32).digest()
print(hashlib.blake2b(b"gpubox hub-to-agent v1", key=key, digest_size=32).hexdigest())' "$1"
}
agent_token=$(to_agent_token "$token")
poke() { curl -s -o /dev/null -w '%{http_code}' "$@" "http://127.0.0.1:$GBX_METRICS_PORT/api/v1/poke"; }
[ "$(poke -X POST)" = 401 ] && ok "a poke without the token is refused (401)" || not_ok "a poke without the token is refused"
[ "$(poke -X POST -H "Authorization: Bearer ${agent_token%?}0")" = 401 ] &&
	ok "a poke with a wrong token is refused (401)" || not_ok "a poke with a wrong token is refused"
[ "$(poke -X POST -H "Authorization: Bearer $token")" = 401 ] &&
	ok "the server's own token is refused by the agent (401): it is the hub's to read members with" ||
	not_ok "the server's own token is refused by the agent"
[ "$(poke -X POST -H "Authorization: Bearer $agent_token")" = 204 ] &&
	ok "the hub's poke is taken (204)" || not_ok "the hub's poke is taken"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $agent_token" "$hub_url/api/v1/sync")
[ "$code" = 401 ] && ok "the token the hub calls agents with does not read the hub's member list (401)" ||
	not_ok "the hub-to-agent token reads the member list: $code"

# ---- what the hub's monitor reads from the agent, with the same token ----
agent_api() { curl -s "$@"; }
api_url=http://127.0.0.1:$GBX_METRICS_PORT/api/v1
code=$(agent_api -o /dev/null -w '%{http_code}' "$api_url/sample")
[ "$code" = 401 ] && ok "the agent's sample needs the hub's token (401)" || not_ok "sample without a token: $code"
sample=$(agent_api -H "Authorization: Bearer $agent_token" "$api_url/sample")
if [ "$(jq -r .server <<<"$sample")" = gbxtest ] && [ "$(jq -r '.host.ncpus > 0' <<<"$sample")" = true ] &&
   [ "$(jq -r '.containers | type' <<<"$sample")" = array ]; then
	ok "the hub reads the agent's newest sample (host, GPUs, processes, containers)"
else
	not_ok "the agent's sample: $(head -c 300 <<<"$sample")"
fi
usage=$(agent_api -H "Authorization: Bearer $agent_token" "$api_url/usage?from=0")
[ "$(jq -r '.members | type' <<<"$usage")" = array ] &&
	ok "the hub reads usage per member" || not_ok "usage: $(head -c 300 <<<"$usage")"
code=$(agent_api -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $agent_token" "$api_url/history?from=x")
[ "$code" = 400 ] && ok "a malformed history query is refused (400)" || not_ok "history?from=x: $code"
history=$(agent_api -H "Authorization: Bearer $agent_token" "$api_url/history?points=10")
[ "$(jq -r '.host | type' <<<"$history")" = array ] &&
	ok "the hub reads a history series" || not_ok "history: $(head -c 300 <<<"$history")"

# ---- the hub goes away; nothing is lost ----
stop_hub
curl -s -o /dev/null "$hub_url/login" && not_ok "the hub is down" || ok "the hub is down"
sleep 3
check "with the hub down the member still logs in" ssh_key_login "$key2" "$hub_ssh_port" true
stop_agent
check "the agent restarts with the hub down" restart_agent
sleep 3
check "after that restart the member still logs in" ssh_key_login "$key2" "$hub_ssh_port" true
[ -f "$GBX_DIR/state/hub-sync.json" ] && [ "$(stat -c %a "$GBX_DIR/state/hub-sync.json")" = 600 ] &&
	ok "the last list is kept, mode 0600" || not_ok "the last list is kept, mode 0600"
grep -q "does not answer" "$GBX_DIR/agent.log" && ok "the agent says the hub does not answer" ||
	not_ok "the agent says the hub does not answer"

# ---- disabled on the hub: no key at all, the account and files kept ----
check "the admin disables the member on the hub" hub member disable "$m"
start_hub && ok "the hub starts again" || not_ok "the hub starts again"
wait_for 60 fails ssh_key_login "$key2" "$hub_ssh_port" true &&
	ok "a disabled member's keys stop working within a minute" || not_ok "a disabled member's keys stop working within a minute"
[ ! -s "$GBX_DIR/authorized_keys/$m" ] && ok "the host login has no key left" || not_ok "the host login has no key left"
[ "$(in_agent)" = "$hub_uid $hub_ssh_port" ] && ok "the member's account is kept" || not_ok "the member's account is kept"
done_testing
