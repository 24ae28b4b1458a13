#!/bin/bash
# Who uses which GPU.  The GPUs are the fake libnvidia-ml.so.1 (loaded by
# the agent's own dlopen), which reports the host pids of real processes
# running in real containers; the agent attributes them to members, gives
# their pids inside the containers, answers each container on its own
# socket, keeps a history and serves /metrics, scraped here by a real
# Prometheus server.
. "$(dirname "$0")/lib.sh"

a=pa$GBX_ID
b=pb$GBX_ID
past=past$GBX_ID
prom_port=$((GBX_METRICS_PORT + 1))
prom_dir=$GBX_DIR/prometheus
bg=()

cleanup() {
	[ ${#bg[@]} -gt 0 ] && kill "${bg[@]}" 2>/dev/null
	pkill -f '^sleep 700[123]$' 2>/dev/null
	wait 2>/dev/null
	remove_member "$a"
	remove_member "$b"
	rm -rf "$prom_dir" "$GBX_NVML_STATE"
}
trap cleanup EXIT

# wait_for SECONDS command...: until the command succeeds.
# The fake driver's state, replaced atomically (it re-reads on change).
write_state() { cat >"$GBX_NVML_STATE.tmp" && mv "$GBX_NVML_STATE.tmp" "$GBX_NVML_STATE"; }

host_pid_of() { pgrep -f "^sleep $1\$" | head -1 | grep .; }
ns_pid_of() { awk '/^NSpid:/ {print $NF}' "/proc/$1/status"; }
inside_as() { # MEMBER command...: as the member, inside their container
	local m=$1
	shift
	lxc_attach "$m" env -u GPUBOX_CONFIG runuser -u "$m" -- "$@"
}
inside_root() { # MEMBER command...: as the container's root
	local m=$1
	shift
	lxc_attach "$m" env -u GPUBOX_CONFIG "$@"
}

check "members $a and $b added" add_member "$a"
add_member "$b"
check "both containers start" gpubox start --member "$a"
gpubox start --member "$b" >/dev/null 2>&1

# No driver yet (the fake reports it not loaded): containers run, and
# gpus says why there is nothing to show.
gpus=$(gpubox gpus --json)
if [ "$(jq -r .gpu_ok <<<"$gpus")" = false ] && [ -n "$(jq -r .gpu_note <<<"$gpus")" ]; then
	ok "without a driver, gpus says so: $(jq -r .gpu_note <<<"$gpus")"
else
	not_ok "gpus without a driver: $gpus"
fi

# One GPU job in each container, as the member, and one on the host.
inside_as "$a" sleep 7001 >/dev/null 2>&1 &
bg+=($!)
inside_as "$b" sleep 7002 >/dev/null 2>&1 &
bg+=($!)
sleep 7003 &
bg+=($!)
wait_for 20 host_pid_of 7001 && wait_for 20 host_pid_of 7002
pa=$(host_pid_of 7001) pb=$(host_pid_of 7002) ph=$(host_pid_of 7003)
na=$(ns_pid_of "$pa") nb=$(ns_pid_of "$pb")
if [ -n "$pa" ] && [ -n "$pb" ] && [ "$na" != "$pa" ]; then
	ok "jobs run: $a's host pid $pa is $na inside, $b's $pb is $nb"
else
	not_ok "the jobs did not start (a: $pa/$na, b: $pb/$nb)"
fi

gib=1073741824
write_state <<STATE
driver 999.30.03
init ok
gpu 0 uuid=GPU-aaaaaaaa-0000 name=Fake_H100 minor=0 bus=00000000:17:00.0 util=40 memutil=10 total=$((80 * gib)) used=$((2 * gib)) temp=41 power=150000
gpu 1 uuid=GPU-bbbbbbbb-1111 name=Fake_H100 minor=1 bus=00000000:18:00.0 util=70 memutil=30 total=$((80 * gib)) used=$((5 * gib)) temp=55 power=300000
gpu 2 uuid=GPU-cccccccc-2222 name=Fake_H100 minor=2 bus=00000000:19:00.0 util=0 memutil=0 total=$((80 * gib)) used=0 temp=30 power=60000
proc 0 pid=$pa mem=$((2 * gib)) sm=40
proc 1 pid=$pb mem=$((4 * gib)) sm=60
proc 1 pid=$ph mem=$gib sm=5
STATE

# The agent looks for a driver again only now and then: restart it, which
# also proves each container gets its socket back.
kill "$(cat "$GBX_DIR/agent.pid")"
wait_for 10 sh -c "! kill -0 $(cat "$GBX_DIR/agent.pid") 2>/dev/null"
check "the agent starts again" restart_agent
gpus_ready() { gpubox ps --json | jq_check '.processes | length == 3'; }
check "the agent reads the fake driver's GPUs and processes" wait_for 20 gpus_ready

ps_a=$(as_user "$a" ps --json)
if [ "$(jq -c '[.processes[].pid]' <<<"$ps_a")" = "[$na]" ] &&
   [ "$(jq -r '.processes[0] | has("host_pid")' <<<"$ps_a")" = false ] &&
   [ "$(jq -r '.processes[0].mem_used' <<<"$ps_a")" = $((2 * gib)) ] &&
   [ "$(jq -r '.processes[0].command' <<<"$ps_a")" = "sleep 7001" ]; then
	ok "$a's gpubox ps on the host: only the job, pid $na as inside, no host pid"
else
	not_ok "$a's gpubox ps: $ps_a"
fi
ps_b=$(as_user "$b" ps --json)
if [ "$(jq -c '[.processes[].pid]' <<<"$ps_b")" = "[$nb]" ]; then
	ok "$b's gpubox ps shows only $b's job"
else
	not_ok "$b's gpubox ps: $ps_b"
fi
refuse "$a cannot list $b's processes" 1 "own container" as_user "$a" ps --member "$b"

ps_in=$(inside_as "$a" gpubox ps --json)
if [ "$(jq -c '[.processes[].pid]' <<<"$ps_in")" = "[$na]" ]; then
	ok "inside $a's container, gpubox ps (its own socket) gives pid $na"
else
	not_ok "gpubox ps inside $a's container: $ps_in"
fi
check "inside, the pid shown is the job's: kill -0 $na as $a" inside_as "$a" sh -c "kill -0 $na"
table_lists() { inside_as "$a" gpubox ps | grep -q 'sleep 7001'; }
check "the table form lists the command" table_lists
refuse "inside, another member's processes are refused" 1 "own container" \
	inside_as "$a" gpubox ps --member "$b"
refuse "inside, root cannot ask for more than ps, gpus, status and reservations" 1 "inside a container" \
	inside_root "$a" gpubox stop
refuse "inside, an admin command is refused too" 1 "inside a container" \
	inside_root "$a" gpubox admin user ls
status_inside() { inside_root "$a" gpubox status --json | jq_check ".member == \"$a\""; }
check "inside, gpubox status answers for the container" status_inside

all=$(gpubox ps --json)
if [ "$(jq -r ".processes[] | select(.host_pid == $ph) | .member" <<<"$all")" = "" ] &&
   [ "$(jq -r ".processes[] | select(.host_pid == $pa) | .member" <<<"$all")" = "$a" ]; then
	ok "an admin's ps shows every process, the host's own as the host's"
else
	not_ok "admin ps: $all"
fi

gpus=$(as_user "$a" gpus --json)
if [ "$(jq -c '[.gpus[] | .members]' <<<"$gpus")" = "[[\"$a\"],[\"$b\"],[]]" ] &&
   [ "$(jq -c '[.gpus[] | .free]' <<<"$gpus")" = "[false,false,true]" ] &&
   [ "$(jq -r '.gpus[1].host_processes' <<<"$gpus")" = true ] &&
   [ "$(jq -r '.gpus[0].yours' <<<"$gpus")" = true ]; then
	ok "gpubox gpus: who is on which GPU, GPU 2 free"
else
	not_ok "gpubox gpus: $gpus"
fi
check "gpubox gpus prints a table with the free GPU" sh -c "'$GBX_BIN/gpubox' gpus | grep -E '^2 .*free'"

metrics=$(curl -sf "http://127.0.0.1:$GBX_METRICS_PORT/metrics")
if grep -q '^DCGM_FI_DEV_GPU_UTIL{gpu="1",uuid="GPU-bbbbbbbb-1111",server="gbxtest",modelName="Fake H100"} 70$' <<<"$metrics" &&
   grep -q "^gpubox_member_gpu_memory_bytes{member=\"$a\",gpu=\"0\",uuid=\"GPU-aaaaaaaa-0000\",server=\"gbxtest\"} $((2 * gib))\$" <<<"$metrics" &&
   ! grep -q 'pid=' <<<"$metrics"; then
	ok "/metrics: DCGM-like GPU metrics and per-member memory, no pid label"
else
	not_ok "/metrics: $(grep -E 'GPU_UTIL|member_gpu_memory' <<<"$metrics" | head -5)"
fi

# A real Prometheus scrapes the agent.
if command -v prometheus >/dev/null; then
	mkdir -p "$prom_dir"
	cat >"$prom_dir/prometheus.yml" <<YML
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: gpubox
    static_configs:
      - targets: ['127.0.0.1:$GBX_METRICS_PORT']
YML
	prometheus --config.file="$prom_dir/prometheus.yml" --storage.tsdb.path="$prom_dir/data" \
		--web.listen-address="127.0.0.1:$prom_port" >"$prom_dir/log" 2>&1 &
	bg+=($!)
	prom_has() {
		curl -sf "http://127.0.0.1:$prom_port/api/v1/query" \
			--data-urlencode "query=gpubox_member_gpu_memory_bytes{member=\"$a\"}" |
			jq_check ".data.result[0].value[1] == \"$((2 * gib))\""
	}
	check "Prometheus scraped $a's GPU memory from the agent" wait_for 60 prom_has
	prom_up() {
		curl -sf "http://127.0.0.1:$prom_port/api/v1/query?query=up" |
			jq_check '.data.result[0].value[1] == "1"'
	}
	check "Prometheus sees the scrape target up" wait_for 10 prom_up
else
	not_ok "prometheus is not installed (scripts/install-deps --test installs it)"
fi

# A synthetic past: GPU 2 used by $past four hours ago, for two hours.
minute=$(( ($(date +%s) - 4 * 3600) / 60 * 60 * 1000 ))
history_past_sql 2 GPU-cccccccc-2222 "$past" "$minute" 120 90 $((4 * gib)) $((80 * gib)) |
	sqlite3 -cmd ".timeout 5000" "$GBX_DIR/state/history.db"
at=$(gpubox history --gpu 2 --at "4 hours ago" --json)
if [ "$(jq -r '.members[0].member' <<<"$at")" = "$past" ] && [ "$(jq -r .util <<<"$at")" = 90 ] &&
   [ "$(jq -r .resolution <<<"$at")" = minute ]; then
	ok "history --gpu 2 --at \"4 hours ago\" names $past"
else
	not_ok "history at 4 hours ago: $at"
fi
check "the same as a table" sh -c "'$GBX_BIN/gpubox' history --gpu 2 --at '4 hours ago' | grep -q '$past'"
refuse "history refuses a time it cannot read" 2 "cannot read" gpubox history --gpu 2 --at "yesterday-ish"
refuse "history --at needs --gpu" 2 "needs --gpu" gpubox history --at "1 hour ago"
usage=$(gpubox usage --since 7d --json)
if [ "$(jq -r ".members[] | select(.member == \"$past\") | .gpu_hours" <<<"$usage")" = 2 ] &&
   [ "$(jq -r ".members[] | select(.member == \"$past\") | .gpu_mem_gib_hours" <<<"$usage")" = 8 ]; then
	ok "usage --since 7d: $past used 2 GPU-hours and 8 GiB-hours"
else
	not_ok "usage: $usage"
fi
check "usage --csv has a row for $past" sh -c "'$GBX_BIN/gpubox' usage --since 7d --csv | grep -q '^$past,2.0000,8.0000,0.0000$'"
live_usage() { gpubox usage --since 1h --json | jq_check ".members[] | select(.member == \"$a\") | .gpu_hours > 0"; }
check "usage counts $a's running job from the live samples" wait_for 10 live_usage
range=$(gpubox history --gpu 0 --since 10m --json)
if [ "$(jq -r '.gpus[0].points | length > 0' <<<"$range")" = true ] &&
   [ "$(jq -r ".gpus[0].members | has(\"$a\")" <<<"$range")" = true ]; then
	ok "history --since 10m: a series for GPU 0 with $a on it"
else
	not_ok "history range: $(head -c 400 <<<"$range")"
fi

# A GPU falls off the bus: the others are still read.
sed -i 's/^\(gpu 1 .*\)$/\1 lost=1/' "$GBX_NVML_STATE"
touch -d '+1 second' "$GBX_NVML_STATE"
lost() { gpubox gpus --json | jq_check '.gpus[1].lost == true and .gpus[0].lost == false'; }
check "a lost GPU is shown as lost, the others still read" wait_for 10 lost

# A job that ends leaves ps, even while the driver still lists its pid.
kill "$pa"
gone() { as_user "$a" ps --json | jq_check '.processes | length == 0'; }
check "$a's ended job leaves gpubox ps" wait_for 10 gone
done_testing
