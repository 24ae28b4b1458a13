#!/bin/bash
# The lab monitor: a real gpubox-hub follows two real agents (this suite's
# and a second one with its own state directory and a fake NVML with other
# GPUs).  A member enabled on the first runs a job on its GPU 0; a
# synthetic past says who used GPU 1 three hours ago.  Checked with curl
# (the JSON, the usage report and its CSV, bad queries, the public view)
# and in Debian's headless Chromium: both servers and their GPUs on the
# overview, the page following the fake data without a reload, a stopped
# agent shown unreachable with its last contact, the GPU page's chart and
# time picker naming the member recorded then, the member's own page.
# Screenshots go to $GPUBOX_TEST_OUTPUT (default tests/hub/output/).
. "$(dirname "$0")/lib.sh"

hub_bin=$GBX_BIN/gpubox-hub
webdriver=$(dirname "$0")/../hub/webdriver.sh
if [ ! -x "$hub_bin" ]; then
	echo "1..0 # SKIP gpubox-hub is not in $GBX_BIN (tests/system/run installs it from the build)"
	exit 0
fi

m=mo$GBX_ID
past=was$GBX_ID
password=pw-$GBX_ID-secret
hub_port=$((GBX_METRICS_PORT + 2))
b_port=$((GBX_METRICS_PORT + 3))
hub_url=http://127.0.0.1:$hub_port
hub_dir=$(mktemp -d "$GBX_DIR/monitor.XXXX")
dir_b=$hub_dir/agent-b
conf_b=$dir_b/gpubox.conf
nvml_b=$dir_b/nvml-state
jar=$hub_dir/cookies
out_dir=${GPUBOX_TEST_OUTPUT:-$(dirname "$0")/../hub/output}
conf_saved=$hub_dir/gpubox.conf.before
nvml_saved=$hub_dir/nvml.before
cp "$GBX_CONF" "$conf_saved"
[ -f "$GBX_NVML_STATE" ] && cp "$GBX_NVML_STATE" "$nvml_saved"
agent_uid_first=$(sed -n 's/^uid_range = \([0-9]*\)-.*/\1/p' "$GBX_CONF")
hub_pid=
b_pid=
job=
gib=1073741824

finish() {
	command -v wd_stop >/dev/null && wd_stop
	[ -n "$job" ] && kill "$job" 2>/dev/null
	stop_pid "$b_pid"
	stop_pid "$(cat "$GBX_DIR/agent.pid")"
	cp "$conf_saved" "$GBX_CONF"
	if [ -f "$nvml_saved" ]; then cp "$nvml_saved" "$GBX_NVML_STATE"; else rm -f "$GBX_NVML_STATE"; fi
	restart_agent
	remove_member "$m"
	stop_hub
	nft delete table ip "gbxw$GBX_ID" 2>/dev/null
	nft delete table ip6 "gbxw$GBX_ID" 2>/dev/null
	nft delete table bridge "gbxw$GBX_ID" 2>/dev/null
	ip link del "gbxw$GBX_ID" 2>/dev/null
	rm -rf "$hub_dir"
}
trap finish EXIT

# The hub's JSON as the signed-in member, and as nobody.
api() { curl -s -f -b "$jar" "$hub_url$1"; }
api_status() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
server_json() { # NAME: that server in the overview
	api /api/v1/monitor | jq -c --arg n "$1" '.servers[] | select(.name == $n)'
}

write_nvml() { # FILE: the state from stdin, replaced at once
	cat >"$1.tmp" && mv "$1.tmp" "$1"
}

# ---- the hub, its two servers ----------------------------------------------------
cat >"$hub_dir/hub.conf" <<CONF
listen = 127.0.0.1:$hub_port
state_dir = $hub_dir/state
auth = local
lab_name = Test lab $GBX_ID
monitor_poll = 1
uid_range = $((agent_uid_first + 100))-$((agent_uid_first + 149))
subid_range = $((GBX_SUBID_FIRST + 4194304))-$((GBX_SUBID_FIRST + 8388607))
ssh_port_range = $((GBX_SSH_FIRST + 50))-$((GBX_SSH_FIRST + 99))
CONF
mkdir -p "$hub_dir/state" "$dir_b/state"
start_hub && ok "the hub starts (monitor_poll = 1)" || not_ok "the hub starts"
token_of() { printf '%s\n' "$1" | grep -E '^[0-9a-f]{64}$' | head -1; }
token_a=$(token_of "$(hub server add gbxa "http://127.0.0.1:$GBX_METRICS_PORT" 2>&1)")
token_b=$(token_of "$(hub server add gbxb "http://127.0.0.1:$b_port" 2>&1)")
[ -n "$token_a" ] && [ -n "$token_b" ] && ok "two servers are registered" || not_ok "two servers are registered"
(umask 077 && printf '%s\n' "$token_a" >"$hub_dir/token-a" && printf '%s\n' "$token_b" >"$hub_dir/token-b")

# Server A: this suite's agent, two H100s.
write_nvml "$GBX_NVML_STATE" <<STATE
driver 550.54.15
init ok
gpu 0 uuid=GPU-a0a0a0a0-0000 name=NVIDIA_H100_80GB_HBM3 minor=0 bus=00000000:17:00.0 util=35 memutil=10 total=$((80 * gib)) used=$((3 * gib)) temp=44 power=210000
gpu 1 uuid=GPU-a1a1a1a1-1111 name=NVIDIA_H100_80GB_HBM3 minor=1 bus=00000000:18:00.0 util=0 memutil=0 total=$((80 * gib)) used=0 temp=31 power=70000
STATE
cat >>"$GBX_CONF" <<CONF
hub_url = $hub_url/
hub_token_file = $hub_dir/token-a
hub_poll = 1
CONF
stop_pid "$(cat "$GBX_DIR/agent.pid")"
check "agent A starts with the hub's token" restart_agent

# Server B: a second agent, its own state, bridge, table, port, four A100s.
write_nvml "$nvml_b" <<STATE
driver 535.104.05
init ok
gpu 0 uuid=GPU-b0b0b0b0-0000 name=NVIDIA_A100-SXM4-40GB minor=0 bus=00000000:07:00.0 util=12 memutil=5 total=$((40 * gib)) used=$gib temp=38 power=90000
gpu 1 uuid=GPU-b1b1b1b1-1111 name=NVIDIA_A100-SXM4-40GB minor=1 bus=00000000:0b:00.0 util=0 memutil=0 total=$((40 * gib)) used=0 temp=33 power=55000
gpu 2 uuid=GPU-b2b2b2b2-2222 name=NVIDIA_A100-SXM4-40GB minor=2 bus=00000000:48:00.0 util=0 memutil=0 total=$((40 * gib)) used=0 temp=32 power=54000
gpu 3 uuid=GPU-b3b3b3b3-3333 name=NVIDIA_A100-SXM4-40GB minor=3 bus=00000000:4c:00.0 util=0 memutil=0 total=$((40 * gib)) used=0 temp=32 power=53000
STATE
sed -e "s|^socket = .*|socket = $dir_b/gpubox.sock|" -e "s|^state_dir = .*|state_dir = $dir_b/state|" \
	-e "s|^bridge = .*|bridge = gbxw$GBX_ID|" -e "s|^nft_table = .*|nft_table = gbxw$GBX_ID|" \
	-e "s|^bridge_address = \(10\.213\)\.\([0-9]*\)\.1/24|bridge_address = 10.217.\2.1/24|" \
	-e "s|^metrics_listen = .*|metrics_listen = 127.0.0.1:$b_port|" \
	-e "s|^authorized_keys_dir = .*|authorized_keys_dir = $dir_b/authorized_keys|" \
	-e "s|^hub_token_file = .*|hub_token_file = $hub_dir/token-b|" "$GBX_CONF" >"$conf_b"
env LD_LIBRARY_PATH="$GBX_BIN/nvml" FAKE_NVML_STATE="$nvml_b" \
	"$GBX_BIN/gpuboxd" --foreground --config "$conf_b" >>"$dir_b/agent.log" 2>&1 &
b_pid=$!
check "agent B (another state directory, other GPUs) starts" \
	wait_for 10 "$GBX_BIN/gpubox" --config "$conf_b" version

# ---- sign-in, and the member's container on A -----------------------------------------
[ "$(api_status "$hub_url/api/v1/monitor")" = 401 ] &&
	ok "without monitor_public the monitor needs a session (401)" || not_ok "the monitor needs a session"
printf '%s\n' "$password" | hub user add "$m" >/dev/null 2>&1
form_csrf=$(curl -s -c "$jar" -b "$jar" "$hub_url/login" | sed -n 's/.*name="csrf" value="\([0-9a-f]*\)".*/\1/p')
curl -s -o /dev/null -c "$jar" -b "$jar" --data-urlencode "name=$m" --data-urlencode "password=$password" \
	--data-urlencode "csrf=$form_csrf" "$hub_url/login"
csrf=$(api /api/v1/me | jq -r '.csrf_token // empty')
session=$(awk '$6 == "gpubox_session" {print $7}' "$jar")
[ -n "$csrf" ] && [ -n "$session" ] && ok "$m signs in" || not_ok "$m signs in"
curl -s -f -o /dev/null -b "$jar" -X POST -H "X-CSRF-Token: $csrf" -H "Content-Type: application/json" \
	--data '{"enabled": true}' "$hub_url/api/v1/me/servers/gbxa"
running() { [ "$(member_field "$m" state)" = running ]; }
check "the hub's member gets a running container on A" wait_for 120 running

lxc_attach "$m" env -u GPUBOX_CONFIG runuser -u "$m" -- sleep 7201 >/dev/null 2>&1 &
job=$!
job_pid() { pgrep -f '^sleep 7201$' | head -1 | grep .; }
wait_for 90 job_pid
jp=$(job_pid)
jp_inside=$(awk '/^NSpid:/ {print $NF}' "/proc/$jp/status" 2>/dev/null)
[ -n "$jp" ] && [ -n "$jp_inside" ] && ok "$m's job runs in the container (host pid $jp, $jp_inside inside)" ||
	not_ok "$m's job did not start in the container"
[ -n "$jp" ] && write_nvml "$GBX_NVML_STATE" <<STATE
$(grep -v '^proc ' "$GBX_NVML_STATE")
proc 0 pid=$jp mem=$((3 * gib)) sm=35
STATE

# ---- the overview's JSON ---------------------------------------------------------------
two_servers() {
	api /api/v1/monitor | jq_check '[.servers[] | select(.reachable)] | length == 2'
}
check "within seconds the hub reads both agents" wait_for 20 two_servers
a=$(server_json gbxa)
b=$(server_json gbxb)
if [ "$(jq -r '.sample.gpus | length' <<<"$a")" = 2 ] && [ "$(jq -r '.sample.gpus | length' <<<"$b")" = 4 ] &&
   [ "$(jq -r '.sample.gpus[0].name' <<<"$b")" = "NVIDIA A100-SXM4-40GB" ] &&
   [ "$(jq -r '.sample.host.ncpus > 0' <<<"$a")" = true ]; then
	ok "A has 2 H100s and B 4 A100s, with host readings"
else
	not_ok "the servers' GPUs: A $(head -c 300 <<<"$a") B $(head -c 300 <<<"$b")"
fi
on_gpu0() { server_json gbxa | jq_check --arg m "$m" '.sample.gpus[0].members[0].member == $m'; }
check "$m is on A's GPU 0 (the fake driver's process is their job)" wait_for 20 on_gpu0
my_job_shown() {
	mine=$(api /api/v1/me/monitor)
	[ "$(jq -r '.servers[0].container.state' <<<"$mine")" = running ] &&
		[ "$(jq -r '.servers[0].processes[0].pid' <<<"$mine")" = "$jp_inside" ] &&
		[ "$(jq -r '.servers[0].gpus[0]' <<<"$mine")" = 0 ]
}
if wait_for 20 my_job_shown; then
	ok "the member's own view: running, GPU 0, the job's pid inside the container ($jp_inside)"
else
	not_ok "the member's view: $(head -c 400 <<<"$mine")"
fi
# The agent reads a few containers' cgroups a tick, in turn.
my_limits_shown() {
	mine=$(api /api/v1/me/monitor)
	jq_check '.servers[0].container.mem_limit > 0 and .servers[0].container.pids > 0 and .servers[0].container.oom_kills == 0' <<<"$mine" >/dev/null
}
wait_for 20 my_limits_shown &&
	ok "the member's own view has memory against the limit, processes and OOM kills" ||
	not_ok "the member's view of limits: $(jq -c .servers[0].container <<<"$mine")"
api /api/v1/monitor | grep -q '"host_pid"' && not_ok "the overview leaks host pids" ||
	ok "the overview carries no host pid or command"

# ---- history, "who was there", usage ----------------------------------------------------
# A synthetic past on A: GPU 1 used by $past three hours ago, for two
# hours, held idle half of each minute.
minute=$(( ($(date +%s) - 3 * 3600) / 60 * 60 * 1000 ))
history_past_sql 1 GPU-a1a1a1a1-1111 "$past" "$minute" 120 88 $((6 * gib)) $((80 * gib)) 30 |
	sqlite3 -cmd ".timeout 5000" "$GBX_DIR/state/history.db"
at_ms=$((minute - 30 * 60000))
at=$(api "/api/v1/monitor/servers/gbxa/at?gpu=1&t=$at_ms")
[ "$(jq -r '.members[0].member' <<<"$at")" = "$past" ] && [ "$(jq -r .util <<<"$at")" = 88 ] &&
	ok "who was on A's GPU 1 three and a half hours ago: $past" || not_ok "at: $(head -c 300 <<<"$at")"
series=$(api "/api/v1/monitor/servers/gbxa/history?gpu=1&from=$((minute - 7200000))&to=$((minute + 60000))&points=120")
[ "$(jq -r --arg p "$past" '.gpus[0].members[$p] | length > 10' <<<"$series")" = true ] &&
	ok "the history series holds $past's memory on GPU 1" || not_ok "history: $(head -c 300 <<<"$series")"
usage=$(api "/api/v1/monitor/usage?from=$((minute - 86400000))")
[ "$(jq -r --arg p "$past" '.members[] | select(.member == $p) | "\(.gpu_hours) \(.idle_gpu_hours)"' <<<"$usage")" = "2 1" ] &&
	[ "$(jq -r '[.servers[] | select(.ok)] | length' <<<"$usage")" = 2 ] &&
	ok "usage over both servers: $past used 2 GPU-hours, 1 of them idle" || not_ok "usage: $(head -c 400 <<<"$usage")"
csv=$(curl -s -f -b "$jar" "$hub_url/monitor/usage.csv?since=2d")
grep -q "^$past,2.0000,12.0000,1.0000,2.0000,12.0000,1.0000," <<<"$csv" && head -1 <<<"$csv" | grep -q '^member,gpu_hours,gpu_mem_gib_hours,idle_gpu_hours,gbxa_gpu_hours,gbxa_gpu_mem_gib_hours,gbxa_idle_gpu_hours' &&
	ok "the usage CSV: 2 GPU-hours, 12 GiB-hours and 1 idle GPU-hour for $past, in all and on gbxa" ||
	{ not_ok "the usage CSV"; diag <<<"$csv"; }
[ "$(api_status -b "$jar" "$hub_url/api/v1/monitor/servers/gbxa/history?from=x")" = 400 ] &&
	[ "$(api_status -b "$jar" "$hub_url/api/v1/monitor/servers/nosuch/history")" = 404 ] &&
	[ "$(api_status -b "$jar" "$hub_url/api/v1/monitor/servers/gbxa/at?gpu=1")" = 400 ] &&
	[ "$(api_status -b "$jar" "$hub_url/api/v1/monitor/servers/gbxa/at?gpu=1&t=1000")" = 404 ] &&
	ok "bad queries: 400; unknown server and nothing recorded: 404" || not_ok "bad monitor queries"

headers=$(curl -s -D - -o "$hub_dir/uplot.js" "$hub_url/static/uplot.js")
grep -qi '^content-type: text/javascript' <<<"$headers" && grep -qi "^content-security-policy: default-src 'self'" <<<"$headers" &&
	grep -q uPlot "$hub_dir/uplot.js" && [ "$(api_status "$hub_url/static/nosuch.js")" = 404 ] &&
	ok "the chart library is served by the hub itself (no other origin)" || { not_ok "static files"; diag <<<"$headers"; }

# ---- the pages, in a browser -------------------------------------------------------------
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ] || [ ! -f "$webdriver" ]; then
	not_ok "Chromium, chromedriver or $webdriver is missing (scripts/install-deps --test installs them)"
	done_testing
	exit
fi
# shellcheck source=tests/hub/webdriver.sh
. "$webdriver"
mkdir -p "$out_dir"
shot() { wd_screenshot "$out_dir/monitor-$1.png" >/dev/null 2>&1; }
# wd_until SECONDS JS: until the script returns true.
wd_until() {
	local seconds=$1 script=$2 i
	for ((i = 0; i < seconds * 4; i++)); do
		[ "$(wd_exec "$script" 2>/dev/null)" = true ] && return 0
		sleep 0.25
	done
	return 1
}
cell() { # SERVER GPU CLASS: the text of a GPU row's cell
	wd_exec "const r = document.querySelector('tr.gpu[data-server=\"$1\"][data-gpu=\"$2\"] td.$3');
		return r ? r.textContent : null;" | jq -r .
}

wd_start && wd_session 1366 768 && wd_go "$hub_url/login" &&
	wd_add_cookie "$(jq -n --arg v "$session" '{name: "gpubox_session", value: $v, path: "/", httpOnly: true}')" &&
	wd_go "$hub_url/monitor"
wd_until 15 'return document.querySelector("main#monitor").dataset.gpus === "6"' &&
	[ "$(wd_count 'section.server')" = 2 ] &&
	ok "the overview shows both servers and their 6 GPUs" ||
	not_ok "the overview: $(wd_count 'section.server') servers, gpus=$(wd_attr main data-gpus)"
[ "$(cell gbxb 3 util | tr -dc '0-9')" = 0 ] && cell gbxa 0 members | grep -q "$m" &&
	ok "A's GPU 0 names $m; B's GPU 3 is idle" || not_ok "GPU rows: $(cell gbxa 0 members) / $(cell gbxb 3 util)"
shot overview
wd_exec 'window.gbxNoReload = 1; return true;' >/dev/null
sed -i 's/^\(gpu 1 .*\) util=0 /\1 util=77 /' "$GBX_NVML_STATE"
touch -d '+1 second' "$GBX_NVML_STATE"
wd_until 15 "const c = document.querySelector('tr.gpu[data-server=\"gbxa\"][data-gpu=\"1\"] td.util');
	return !!c && c.textContent.includes('77');" &&
	[ "$(wd_exec 'return window.gbxNoReload === 1')" = true ] &&
	ok "the page follows the fake driver (GPU 1 at 77 %) without reloading" ||
	not_ok "the page did not update: $(cell gbxa 1 util)"

stop_pid "$b_pid"
b_pid=
wd_until 15 'const s = document.querySelector("section.server[data-server=\"gbxb\"]");
	return !!s && s.dataset.reachable === "false" && !!s.querySelector(".last-contact");' &&
	ok "a stopped agent is shown unreachable: $(wd_text 'section.server[data-server="gbxb"] .last-contact')" ||
	not_ok "the stopped agent's card"
[ "$(wd_count 'tr.gpu[data-server="gbxb"]')" = 0 ] &&
	ok "and none of its GPUs is shown with numbers" || not_ok "the unreachable server still shows GPU rows"
b=$(server_json gbxb)
[ "$(jq -r '.reachable, .sample, (.last_contact > 0)' <<<"$b" | tr '\n' ' ')" = "false null true " ] &&
	ok "the JSON: unreachable, no sample, a last contact" || not_ok "unreachable B: $b"
shot unreachable

wd_go "$hub_url/monitor/servers/gbxa/gpus/1?at=$at_ms"
wd_until 20 "return (document.querySelector('main#monitor').dataset.members || '').split(',').includes('$past')" &&
	ok "the GPU page's chart around that time has a series for $past" ||
	not_ok "the GPU chart's members: $(wd_attr main data-members)"
wd_until 10 "return !!document.querySelector('#at-result tr.at-member')" &&
	wd_text '#at-result tr.at-member' | grep -q "$past" &&
	ok "the time picker says $past was on GPU 1 then" || not_ok "the time picker: $(wd_text '#at-result')"
shot gpu
wd_go "$hub_url/monitor/servers/gbxa"
wd_until 20 'return !!document.querySelector("#chart-gpu-util canvas")' &&
	ok "the server page draws its charts" || not_ok "the server page's charts"
shot server
wd_go "$hub_url/me"
wd_until 15 "const s = document.querySelector('section.my-server[data-server=\"gbxa\"]');
	return !!s && s.dataset.state === 'running' && !!s.querySelector('tr.process');" &&
	wd_text 'section.my-server[data-server="gbxa"] tr.process' | grep -q "$jp_inside" &&
	wd_text 'section.my-server[data-server="gbxa"] dl' | grep -qi "^Processes$" &&
	ok "the member's page: running on A, the job with its pid inside, its processes" ||
	not_ok "the member's page: $(wd_text 'main')"
shot me
wd_go "$hub_url/monitor/usage?since=2d"
wd_text '#usage' | grep -q "$past" && ok "the usage page lists $past" || not_ok "the usage page"
past_idle=$(wd_exec "const r = [...document.querySelectorAll('#usage tr.usage-row')]
	.find((tr) => tr.querySelector('th').textContent === '$past');
	return r ? r.querySelector('td.idle').textContent : null;" | jq -r .)
[ "$past_idle" = 1.00 ] && ok "the usage page shows $past's idle GPU-hours" ||
	not_ok "the usage page's idle GPU-hours: $(wd_text '#usage')"
shot usage
wd_quit
wd_session 412 915 mobile
wd_go "$hub_url/login" &&
	wd_add_cookie "$(jq -n --arg v "$session" '{name: "gpubox_session", value: $v, path: "/", httpOnly: true}')" &&
	wd_go "$hub_url/monitor"
wd_until 15 'return document.querySelector("main#monitor").dataset.gpus !== undefined' &&
	[ "$(wd_exec 'return document.documentElement.scrollWidth <= window.innerWidth')" = true ] &&
	ok "on a phone's screen nothing is wider than the screen" || not_ok "the phone layout overflows"
shot phone
wd_stop

# ---- the public view ------------------------------------------------------------------
stop_hub
echo "monitor_public = yes" >>"$hub_dir/hub.conf"
start_hub
public_ok() { curl -s -f "$hub_url/api/v1/monitor" | jq_check '.names == false'; }
if wait_for 10 public_ok && ! curl -s "$hub_url/api/v1/monitor" | grep -q "\"member\""; then
	ok "monitor_public: anyone reads the monitor, without member names"
else
	not_ok "the public monitor: $(curl -s "$hub_url/api/v1/monitor" | head -c 300)"
fi
[ "$(api_status "$hub_url/api/v1/monitor/usage")" = 401 ] && [ "$(api_status "$hub_url/api/v1/me/monitor")" = 401 ] &&
	ok "usage and a member's own view still need a session" || not_ok "public usage or me"
curl -s "$hub_url/api/v1/monitor/servers/gbxa/at?gpu=1&t=$at_ms" | grep -q "$past" &&
	not_ok "the public history names a member" || ok "the public history names nobody"

done_testing
