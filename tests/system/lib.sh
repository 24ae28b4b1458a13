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
# jq -e on standard input that fails on no input at all: jq 1.6 exits 0
# when given none, so "cmd | jq -e ..." would pass when cmd printed nothing.
jq_check() {
	local input
	input=$(cat)
	[ -n "$input" ] && jq -e "$@" <<<"$input"
}

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

# Run the CLI as a host user (a member); "as_user NAME -c LINE" runs the
# members' login shell as sshd would, which takes its configuration from
# the suite's wrapper ($GBX_BIN/gpubox-login, see run), not from
# GPUBOX_CONFIG.
as_user() {
	local user=$1 prog=$GBX_BIN/gpubox
	shift
	[ "${1-}" = -c ] && prog=$GBX_BIN/gpubox-login
	setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups \
		env GPUBOX_CONFIG="$GBX_CONF" "$prog" "$@"
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

# A name to resolve: the host name of the first mirror in this machine's
# apt sources (one-line and deb822 files); empty when there is none.
mirror_name() {
	cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
		grep -oE '^(deb(-src)?( \[[^]]*\])?|URIs:) +https?://[^/: ]+' | head -1 | sed -E 's#.*://##'
}

# Start the agent again (after a test killed it); waits for its socket.
# restart_agent [PROGRAM]: another gpuboxd than the suite's build.
restart_agent() {
	$(gbx_agent_env) "${1:-$GBX_BIN/gpuboxd}" --foreground --config "$GBX_CONF" >>"$GBX_DIR/agent.log" 2>&1 &
	echo $! >"$GBX_DIR/agent.pid"
	for _ in $(seq 100); do
		gpubox version >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

# The agent again with one more line in the suite's configuration (a
# test's own setting).  The file as it was is kept until restore_config
# TAG (from the test's trap) puts it back and restarts the agent with it.
restart_with_config() { # TAG LINE
	cp "$GBX_CONF" "$GBX_DIR/gpubox.conf.before-$1" &&
		printf '%s\n' "$2" >>"$GBX_CONF" &&
		kill "$(cat "$GBX_DIR/agent.pid")" && sleep 0.5 && restart_agent
}

restore_config() { # TAG
	[ -f "$GBX_DIR/gpubox.conf.before-$1" ] || return 0
	mv "$GBX_DIR/gpubox.conf.before-$1" "$GBX_CONF"
	kill "$(cat "$GBX_DIR/agent.pid")"
	sleep 0.5
	restart_agent
}

# wait_for SECONDS command...: until the command succeeds.
wait_for() {
	local limit=$(($1 * 10))
	shift
	for _ in $(seq "$limit"); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

# stop_pid PID: TERM, then KILL after 10 s.
stop_pid() {
	local pid=$1
	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null
	sleep 0.2
}

# A gpubox-hub of the test's own: the caller sets hub_dir (hub.conf, the
# log) and hub_url; start_hub sets hub_pid.
hub() { "$GBX_BIN/gpubox-hub" --config "$hub_dir/hub.conf" "$@"; }

start_hub() {
	# The program itself in the background, not a function: $! must be
	# the hub's own pid.
	"$GBX_BIN/gpubox-hub" --config "$hub_dir/hub.conf" --foreground >>"$hub_dir/hub.log" 2>&1 &
	hub_pid=$!
	for _ in $(seq 100); do
		curl -s -o /dev/null "$hub_url/login" && return 0
		sleep 0.1
	done
	return 1
}

stop_hub() {
	[ -n "${hub_pid:-}" ] || return 0
	kill "$hub_pid" 2>/dev/null
	wait "$hub_pid" 2>/dev/null
	hub_pid=
}

# The SQL of a synthetic past in the agent's history.db (its schema: the
# top of src/agent/monitor/history.c): MEMBER on GPU (UUID) for MINUTES
# minutes ending at the minute LAST_MS, at UTIL % with MEM bytes of TOTAL,
# holding the GPU idle IDLE seconds of each minute (default 0).
history_past_sql() { # GPU UUID MEMBER LAST_MS MINUTES UTIL MEM TOTAL [IDLE]
	local gpu=$1 uuid=$2 member=$3 last=$4 minutes=$5 util=$6 mem=$7 total=$8 idle=${9:-0} i t
	echo "BEGIN;"
	for ((i = 0; i < minutes; i++)); do
		t=$((last - i * 60000))
		echo "INSERT OR REPLACE INTO gpu_minutes (t, gpu, uuid, util_avg, util_max, mem_used_avg, mem_used_max, mem_total, temperature_max, power_mw_avg, samples) VALUES ($t, $gpu, '$uuid', $util, 95, $mem, $mem, $total, 60, 250000, 60);"
		echo "INSERT OR REPLACE INTO member_minutes (t, gpu, member, mem_used_avg, mem_used_max, sm_util_avg, processes_max, seconds, samples, idle_seconds) VALUES ($t, $gpu, '$member', $mem, $mem, 80, 1, 60, 60, $idle);"
	done
	echo "COMMIT;"
}
