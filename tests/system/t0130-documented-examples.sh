#!/bin/bash
# Every member example of README.md ("What a member does"), of gpubox(1)
# and of the member guide works as typed: each is taken from the
# documents themselves and run by bash, as a member's shell would, with
# "ssh gpu17" (or alice@gpu17) being a real ssh from the client host to
# the member's host login (the gpubox login shell) and "ssh -p 2201" the
# member's own container.  The guide writes as the hub's ~/.ssh/config
# names them: "ssh gpu17-manage" is the host login, "ssh gpu17" the
# container.  "gpubox ps|gpus|status" runs inside the container, other
# "gpubox ..." through the host login.  The GPUs are the fake NVML the
# suite provides (see t0100).  A newly documented example is run too;
# one without a specific check below must at least succeed.
. "$(dirname "$0")/lib.sh"

here=$(cd "$(dirname "$0")" && pwd)
readme=$here/../../README.md
manpage=$here/../../docs/gpubox.1
guide=$here/../../docs/member-guide.md
# Which document's examples run: in the guide "ssh gpu17" is the container.
doc=readme
m=de$GBX_ID
past=dx$GBX_ID
job_secs=$((1000000000 + 0x$GBX_ID))
job_pid=
restarted=

cleanup() {
	local pid name
	pid=$(job_host_pid) && kill "$pid" 2>/dev/null
	[ -n "$job_pid" ] && kill "$job_pid" 2>/dev/null
	# Snapshots outlive their member (the store is the lab's): a template
	# they use could not be removed by a later test.
	for name in $(gpubox snapshot ls --member "$m" --json 2>/dev/null | jq -r '.snapshots[].name'); do
		gpubox snapshot rm "$name" --member "$m" >/dev/null 2>&1
	done
	remove_member "$m"
	if [ -n "$restarted" ]; then
		# Leave the agent as the suite started it: no driver.
		rm -f "$GBX_NVML_STATE"
		stop_pid "$(cat "$GBX_DIR/agent.pid")"
		restart_agent
	fi
}
trap cleanup EXIT

# ---- the examples, from the documents ---------------------------------------

# README: every line of the first sh block after "## What a member does",
# without its comment.
readme_examples() {
	awk '/^## What a member does/ { sec = 1; next }
	     sec && /^```sh/ { blk = 1; next }
	     blk && /^```/ { exit }
	     blk { sub(/[ \t]*#.*/, ""); if ($0 != "") print }' "$readme"
}

# gpubox(1): the "$ " lines of EXAMPLES and every ssh command set in bold
# in the text, with roff's escapes undone.
man_examples() {
	sed -nE -e 's/^\$ (.*)/\1/p' \
		-e 's/^\.B (ssh .*)/\1/p' \
		-e 's/^\.BR? "(ssh [^"]*)".*/\1/p' \
		-e 's/^\.RB \( "(ssh [^"]*)".*/\1/p' "$manpage" |
		sed -e 's/\\-/-/g' -e 's/\\(dq/"/g' -e 's/\\e/\\/g'
}

# The member guide: every line of every sh block, without its comment.
guide_examples() {
	awk '/^```sh/ { blk = 1; next }
	     blk && /^```/ { blk = 0; next }
	     blk { sub(/[ \t]*#.*/, ""); if ($0 != "") print }' "$guide"
}

mapfile -t readme_list < <(readme_examples)
mapfile -t man_list < <(man_examples)
mapfile -t guide_list < <(guide_examples)
# Enough to know the extraction still reads the documents.
[ ${#readme_list[@]} -ge 15 ] && ok "README.md has ${#readme_list[@]} member examples" ||
	{ not_ok "README.md member examples found: ${#readme_list[@]}"; printf '%s\n' "${readme_list[@]}" | diag; }
[ ${#man_list[@]} -ge 10 ] && ok "gpubox(1) has ${#man_list[@]} member examples" ||
	{ not_ok "gpubox(1) member examples found: ${#man_list[@]}"; printf '%s\n' "${man_list[@]}" | diag; }
[ ${#guide_list[@]} -ge 20 ] && ok "the member guide has ${#guide_list[@]} examples" ||
	{ not_ok "member guide examples found: ${#guide_list[@]}"; printf '%s\n' "${guide_list[@]}" | diag; }

# ---- how an example runs -----------------------------------------------------

check "member $m added" add_member "$m"
check "$m's container starts" gpubox start --member "$m"
cport=$(member_field "$m" ssh_port)

# ssh [-p PORT] HOST [COMMAND...] as the documents write it: HOST is
# gpu17 or USER@gpu17; port 2201 is the container's SSH port.
example_ssh() {
	local port=$GBX_SSHD_PORT
	if [ "${1:-}" = -p ]; then
		port=$2
		[ "$port" = 2201 ] && port=$cport
		shift 2
	fi
	case ${1:-} in
	gpu17-manage | *@gpu17-manage) ;;
	gpu17 | *@gpu17) [ "$doc" = guide ] && [ "$port" = "$GBX_SSHD_PORT" ] && port=$cport ;;
	*) echo "example_ssh: unknown host '${1:-}'" >&2; return 99 ;;
	esac
	shift
	# ip execs the ssh program: the example's "ssh" function is not seen.
	ip netns exec "$GBX_CLIENT_NS" ssh "${SSH_OPTS[@]}" -i "$GBX_DIR/keys-client/$m" \
		-p "$port" "$m@$GBX_HOST_IP" "$@"
}

# gpubox COMMAND...: where a member can type it.
example_gpubox() {
	case ${1:-} in
	ps | gpus | status)
		lxc_attach "$m" env -u GPUBOX_CONFIG runuser -u "$m" -- gpubox "$@" ;;
	*)
		example_ssh gpu17 gpubox "$@" ;;
	esac
}

# Run one example as typed (bash does the quoting and the pipes), stdin
# being what a member would type next.  Sets out and rc.
run_example() {
	local text=$1 input=$2
	# The documents' member is alice; the test's is $m.
	text=${text//alice/$m}
	out=$( (ssh() { example_ssh "$@"; }
		gpubox() { example_gpubox "$@"; }
		eval "$text") <<<"$input" 2>&1)
	rc=$?
}

# ---- GPUs: a job of the member's on GPU 0, and GPU 3's past ------------------

write_state() { cat >"$GBX_NVML_STATE.tmp" && mv "$GBX_NVML_STATE.tmp" "$GBX_NVML_STATE"; }
job_host_pid() { pgrep -x -f "sleep $job_secs" | head -1 | grep .; }
job_listed() {
	gpubox ps --member "$m" --json | jq_check --arg c "sleep $job_secs" \
		'[.processes[].command] | index($c) != null'
}

# Before a GPU example: the job runs (a rebuild or restore ended it), the
# fake driver reports it, and the agent (restarted once to find the
# driver) lists it.
ensure_gpu() {
	local pid gib=1073741824 minute
	if ! pid=$(job_host_pid); then
		gpubox start --member "$m" >/dev/null 2>&1
		lxc_attach "$m" env -u GPUBOX_CONFIG runuser -u "$m" -- sleep "$job_secs" \
			>/dev/null 2>&1 &
		job_pid=$!
		wait_for 20 job_host_pid || return 1
		pid=$(job_host_pid)
	fi
	write_state <<STATE
driver 999.30.03
init ok
gpu 0 uuid=GPU-d0000000-0000 name=Fake_H100 minor=0 bus=00000000:17:00.0 util=40 memutil=10 total=$((80 * gib)) used=$((2 * gib)) temp=41 power=150000
gpu 1 uuid=GPU-d1111111-1111 name=Fake_H100 minor=1 bus=00000000:18:00.0 util=0 memutil=0 total=$((80 * gib)) used=0 temp=30 power=60000
gpu 2 uuid=GPU-d2222222-2222 name=Fake_H100 minor=2 bus=00000000:19:00.0 util=0 memutil=0 total=$((80 * gib)) used=0 temp=30 power=60000
gpu 3 uuid=GPU-d3333333-3333 name=Fake_H100 minor=3 bus=00000000:1a:00.0 util=0 memutil=0 total=$((80 * gib)) used=0 temp=30 power=60000
proc 0 pid=$pid mem=$((2 * gib)) sm=40
STATE
	if [ -z "$restarted" ]; then
		# The agent looks for a driver again only now and then.
		stop_pid "$(cat "$GBX_DIR/agent.pid")"
		restart_agent || return 1
		restarted=1
		# GPU 3 used by $past from five to three hours ago, so that "4
		# hours ago" stays inside however long the examples take.
		minute=$(( ($(date +%s) - 3 * 3600) / 60 * 60 * 1000 ))
		history_past_sql 3 GPU-d3333333-3333 "$past" "$minute" 120 90 $((4 * gib)) \
			$((80 * gib)) | sqlite3 -cmd ".timeout 5000" "$GBX_DIR/state/history.db" ||
			return 1
	fi
	wait_for 20 job_listed
}

# ---- what each example must give ---------------------------------------------

# The command an example sends, for the table below: no host, no quotes.
example_key() {
	if [ "$doc" = guide ] && [ "$1" = "ssh gpu17" ]; then
		echo "(container login)"
		return
	fi
	sed -E -e 's/^echo [a-z0-9]+ \| //' -e 's/^ssh -p [0-9]+ [a-z0-9@]+$/(container login)/' \
		-e 's/^ssh gpu17-manage ?//' \
		-e 's/^ssh [a-z0-9]+@gpu17 ?//' -e 's/^ssh gpu17 ?//' -e 's/"//g' <<<"$1"
}

# Sets want (exit status), pattern (an extended regex the output must
# match), input (what the member types), gpu (a GPU example).
expect() {
	want=0 input=$m gpu= pattern=
	case $1 in
	'' | start) pattern="^ +ssh -p $cport $m@$GBX_HOST_IP\$" ;;
	status) pattern="^State: +(running|stopped)" ;;
	'port add 8888') pattern="now forwards to container port 8888" ;;
	'port ls') pattern="^8888 +[0-9]+" ;;
	'port rm 8888') pattern="Container port 8888 is no longer forwarded" ;;
	'port set 8888 --from 192.0.2.0/24,198.51.100.7')
		pattern="now takes connections from 192\.0\.2\.0/24, 198\.51\.100\.7\.\$" ;;
	'port add 6006 --from 192.0.2.0/24') pattern="now forwards to container port 6006, from 192\.0\.2\.0/24\.\$" ;;
	'port set 6006 --from 192.0.2.0/24,2001:db8::/32')
		pattern="now takes connections from 192\.0\.2\.0/24, 2001:db8::/32\.\$" ;;
	'port set 6006 --from any') pattern="now takes connections from any address\.\$" ;;
	'port set ssh --from 192.0.2.0/24,198.51.100.7')
		pattern="^Your container's SSH \(server port $cport\) now takes connections from 192\.0\.2\.0/24, 198\.51\.100\.7\.\$" ;;
	'port set ssh --from default') pattern="from any address \(the server's default\)\.\$" ;;
	'port rm 6006') pattern="Container port 6006 is no longer forwarded" ;;
	'snapshot clean-install') pattern="Snapshot clean-install saved" ;;
	'restore clean-install') pattern="Snapshot clean-install was restored" ;;
	'rebuild --keep-home') pattern="The container of $m was rebuilt" ;;
	'help port set') pattern="^usage: gpubox port set PORT\|ssh --from" ;;
	stop | 'gpubox stop') pattern="The container of $m is stopped" ;;
	'snapshot before-upgrade') pattern="Snapshot before-upgrade saved" ;;
	'snapshot ls') pattern="^before-upgrade " ;;
	'restore before-upgrade') pattern="Snapshot before-upgrade was restored" ;;
	rebuild) pattern="The container of $m was rebuilt" ;;
	help) pattern="^Commands:" ;;
	'(container login)') pattern="^$m\$" input="id -un" ;;
	gpus) pattern="^3 +Fake.*free" gpu=1 ;;
	ps | 'gpubox ps') pattern="sleep $job_secs" gpu=1 ;;
	'history --gpu 3 --at 4 hours ago') pattern="^$past " gpu=1 ;;
	'usage --since 7d') pattern="^$past +2\.00 " gpu=1 ;;
	'log --since 7d') pattern="port_add +$m port=8888 +ok" ;;
	'gpubox status --json | jq -r .state') pattern="^running\$" ;;
	*) pattern= ;;   # a new example: it must succeed
	esac
}

try_example() {
	local source=$1 text=$2 key
	key=$(example_key "$text")
	expect "$key"
	if [ -n "$gpu" ] && ! ensure_gpu; then
		not_ok "$source: $text (the fake GPUs could not be set up)"
		return
	fi
	run_example "$text" "$input"
	if [ "$rc" = "$want" ] && { [ -z "$pattern" ] || grep -Eq -- "$pattern" <<<"$out"; }; then
		ok "$source: $text${pattern:+ (/$pattern/)}"
	else
		not_ok "$source: $text (exit $rc, wanted $want${pattern:+ and /$pattern/})"
		printf '%s\n' "$out" | tail -15 | diag
	fi
}

for ex in "${readme_list[@]}"; do
	try_example README.md "$ex"
done

# The README's refused one: a shell command is never run.
refused=$(grep -o "\`ssh gpu17 '[^']*'\` is refused" "$readme" | sed -E "s/^\`(.*)\` is refused$/\1/")
if [ -n "$refused" ]; then
	run_example "$refused" ""
	if [ "$rc" = 2 ] && grep -q 'refused' <<<"$out" && ! grep -q 'uid=' <<<"$out"; then
		ok "README.md: $refused is refused, nothing run"
	else
		not_ok "README.md: $refused (exit $rc)"
		printf '%s\n' "$out" | diag
	fi
else
	not_ok "README.md no longer shows a refused shell command"
fi

for ex in "${man_list[@]}"; do
	try_example "gpubox(1)" "$ex"
done

doc=guide
for ex in "${guide_list[@]}"; do
	try_example "member guide" "$ex"
done
doc=readme

# The quoting the login shell cannot see: the same time given with the
# quotes kept (a local command line) and as bare words (ssh) is one time.
ensure_gpu >/dev/null 2>&1
quoted=$(gpubox history --gpu 3 --at "4 hours ago" --json | jq -r '.members[0].member')
bare=$(as_user "$m" -c "history --gpu 3 --at 4 hours ago --json" | jq -r '.members[0].member')
[ "$quoted" = "$past" ] && [ "$bare" = "$past" ] &&
	ok "--at \"4 hours ago\" and --at 4 hours ago are the same time" ||
	not_ok "--at quoted gave '$quoted', bare words '$bare'"
refuse "a time that runs into another word is refused, not guessed" 2 'cannot read "4 hours ago x"' \
	as_user "$m" -c "history --gpu 3 --at 4 hours ago x"

# gpubox(1): a refusal is one sentence.  An agent busy with eight
# requests of one caller turns the next away at once, before reading it:
# the reason must arrive (not "Broken pipe"), and lines of several
# processes on one stderr must not run together.  Eight idle connections
# of root's hold the slots until the agent's request deadline (5 s).
holders=()
for _ in 1 2 3 4 5 6 7 8; do
	(sleep 12 | nc -U "$GBX_DIR/gpubox.sock" >/dev/null 2>&1) &
	holders+=($!)
done
sleep 1
errs=$GBX_DIR/t0130-busy.err
: >"$errs"
busy=()
for _ in 1 2 3 4 5 6; do
	"$GBX_BIN/gpubox" status --member "$m" >/dev/null 2>>"$errs" &
	busy+=($!)
done
wait "${busy[@]}"
want_line='gpubox: too many requests at once from uid 0 (8 under way); wait for them to finish'
if [ "$(wc -l <"$errs")" = 6 ] && [ "$(grep -cxF "$want_line" "$errs")" = 6 ]; then
	ok "a busy agent's refusal reaches each of 6 callers as one whole line"
else
	not_ok "a busy agent's refusal, 6 callers on one stderr"
	diag <"$errs"
fi
wait "${holders[@]}" 2>/dev/null
wait_for 15 gpubox version || not_ok "the agent serves root again after the idle connections"
done_testing
