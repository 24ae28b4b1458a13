# Shared helpers of the system tests (sourced).  Each test script prints
# TAP: "ok N - what" or "not ok N - what", then "1..N".  The suite runner
# (tests/system/run) has started one agent with a throw-away configuration
# and exported:
#   GBX_DIR     the suite's directory      GBX_ID     a unique short tag
#   GBX_BIN     programs (gpubox, gpuboxd) GBX_CONF   the configuration
#   GBX_SSHD_PORT  the test sshd (members' host login)
#   GBX_CLIENT_NS  a network namespace acting as a client host
#   GBX_HOST_IP    the server's address as the client host sees it

set -u
export GPUBOX_CONFIG=$GBX_CONF
tap_n=0
tap_failed=0

ok() { tap_n=$((tap_n + 1)); echo "ok $tap_n - $*"; }
not_ok() { tap_n=$((tap_n + 1)); tap_failed=$((tap_failed + 1)); echo "not ok $tap_n - $*"; }
diag() { sed 's/^/# /'; }

# check "what" command...: passes when the command succeeds.
check() {
	local what=$1 out
	shift
	if out=$("$@" 2>&1); then
		ok "$what"
	else
		not_ok "$what"
		printf '%s\n' "$out" | tail -20 | diag
	fi
}

# refuse "what" expected_exit pattern command...: passes when the command
# exits with expected_exit and its output matches the pattern.
refuse() {
	local what=$1 want=$2 pattern=$3 out rc
	shift 3
	out=$("$@" 2>&1)
	rc=$?
	if [ "$rc" = "$want" ] && printf '%s' "$out" | grep -Eq -- "$pattern"; then
		ok "$what"
	else
		not_ok "$what (exit $rc, wanted $want)"
		printf '%s\n' "$out" | tail -10 | diag
	fi
}

done_testing() {
	echo "1..$tap_n"
	[ "$tap_failed" -eq 0 ]
}

gpubox() { "$GBX_BIN/gpubox" "$@"; }

# The agent's environment: the fake NVML library and the file it reads
# (env execs the agent, so $! is the agent's pid).
gbx_agent_env() { echo env LD_LIBRARY_PATH="$GBX_BIN/nvml" FAKE_NVML_STATE="$GBX_NVML_STATE"; }

# Run the CLI as a host user (a member), as sshd would.
as_user() {
	local user=$1
	shift
	setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups \
		env GPUBOX_CONFIG="$GBX_CONF" "$GBX_BIN/gpubox" "$@"
}

# A fresh ed25519 key pair: new_key NAME -> $GBX_DIR/keys-client/NAME{,.pub}
new_key() {
	mkdir -p "$GBX_DIR/keys-client"
	rm -f "$GBX_DIR/keys-client/$1" "$GBX_DIR/keys-client/$1.pub"
	ssh-keygen -q -t ed25519 -N '' -C "$1@test" -f "$GBX_DIR/keys-client/$1"
}

# add_member NAME: a member with a fresh key (the key is named like the member).
add_member() {
	new_key "$1" && gpubox admin user add "$1" --key "$GBX_DIR/keys-client/$1.pub" >/dev/null
}

remove_member() {
	gpubox admin user rm "$1" --purge --yes >/dev/null 2>&1 || true
}

member_field() { # member_field NAME FIELD (from gpubox status --json)
	gpubox status --member "$1" --json | jq -r ".$2"
}

SSH_OPTS=(-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
	  -o LogLevel=ERROR -o ConnectTimeout=10)

# From the client host, into a member's container through the server's port.
client_ssh_container() { # NAME PORT command...
	local name=$1 port=$2
	shift 2
	ip netns exec "$GBX_CLIENT_NS" ssh "${SSH_OPTS[@]}" -i "$GBX_DIR/keys-client/$name" \
		-p "$port" "$name@$GBX_HOST_IP" "$@"
}

# From the client host, the member's login on the server itself (gpubox).
client_ssh_manage() { # NAME command...
	local name=$1
	shift
	ip netns exec "$GBX_CLIENT_NS" ssh "${SSH_OPTS[@]}" -i "$GBX_DIR/keys-client/$name" \
		-p "$GBX_SSHD_PORT" "$name@$GBX_HOST_IP" "$@"
}

# The rules of the agent's table, as nft prints them.
nft_rules() { nft list table ip "gbxt$GBX_ID" 2>/dev/null; }

lxc_attach() { # NAME command...: run as the container's root
	local name=$1
	shift
	lxc-attach -P "$GBX_DIR/state/lxc" -n "$name" -- "$@"
}

# Start the agent again (after a test killed it); waits for its socket.
restart_agent() {
	$(gbx_agent_env) "$GBX_BIN/gpuboxd" --foreground --config "$GBX_CONF" >>"$GBX_DIR/agent.log" 2>&1 &
	echo $! >"$GBX_DIR/agent.pid"
	for _ in $(seq 100); do
		gpubox version >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}
