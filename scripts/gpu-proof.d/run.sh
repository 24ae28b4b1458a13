# shellcheck shell=bash
# scripts/gpu-proof run BUNDLE [--dry-run] OUT_DIR (sourced by scripts/gpu-proof)
#
# On the GPU server, as root, with no registry: a throw-away agent of
# bench/lib.sh on the bundle's programs and staged LXC, a member, the
# bundle's template, the member's container with the GPUs; inside, as the
# member, a CUDA job and nvidia-smi showing it by its pid inside; the
# container's GPU set emptied; bench/gpu.  OUT_DIR gets record.md (each
# command and its output, for docs/gpu-validation.md), verdict.txt and
# the files behind them.  --dry-run: the tests' fake driver tree and fake
# NVML (tests/system/fake-driver.sh) stand in for the GPU, no CUDA runs,
# and every line of the record says so.
gp_run() {
	local bundle dry=no out
	bundle=$(cd "${1:?usage: scripts/gpu-proof run BUNDLE [--dry-run] OUT_DIR}" && pwd) || return 2
	shift
	[ "${1:-}" = --dry-run ] && { dry=yes; shift; }
	out=${1:?usage: scripts/gpu-proof run BUNDLE [--dry-run] OUT_DIR}
	[ "$(id -u)" = 0 ] || { echo "gpu-proof: run needs root" >&2; return 1; }
	mkdir -p "$out" && out=$(cd "$out" && pwd)
	GP_OUT=$out GP_DRY=$dry GP_BUNDLE=$bundle GP_UNDO=() GP_T0=$SECONDS
	GP_WORK=$(mktemp -d /tmp/gpubox-gpu-run.XXXXXX)
	trap 'gp_run_cleanup' EXIT
	: >"$out/verdict.txt"
	gp_record_head
	gp_step "the bundle is whole" sh -c "cd '$bundle' && sha256sum --quiet -c MANIFEST" || return 1
	gp_stage_lxc || return 1
	gp_agent || return 1
	gp_member || return 1
	gp_gpu_job
	gp_gpu_empty
	gp_bench
	gp_verdict ok "the whole run took $((SECONDS - GP_T0)) s"
	echo "record: $out/record.md"
	! grep -q "^not ok" "$out/verdict.txt"
}

gp_run_cleanup() {
	local i
	[ -n "${BENCH_DIR:-}" ] && bench_cleanup
	for ((i = ${#GP_UNDO[@]} - 1; i >= 0; i--)); do eval "${GP_UNDO[$i]}"; done
	rm -rf "$GP_WORK"
}

# --- the record ---------------------------------------------------------
gp_fake() { [ "$GP_DRY" = yes ] && echo "FAKE (dry run, the tests' fake driver): "; }
gp_verdict() { echo "$1 - $(gp_fake)$2" | tee -a "$GP_OUT/verdict.txt"; }
gp_note() { printf '%s\n\n' "$*" >>"$GP_OUT/record.md"; }

gp_record_head() {
	{
		echo "# gpu-proof run, $(date -u '+%Y-%m-%d %H:%M UTC')"
		echo
		[ "$GP_DRY" = yes ] &&
			echo "**DRY RUN against the tests' fake driver tree: no GPU, no CUDA; every output and figure below is the fake's.**" &&
			echo
		echo "Host: \`$(uname -srm)\`, $(. /etc/os-release 2>/dev/null; echo "${PRETTY_NAME:-?}")"
		echo
	} >"$GP_OUT/record.md"
}

# gp_step WHAT COMMAND...: runs it, records the command and its output,
# and a verdict on its exit status.
gp_step() {
	local what=$1 rc t0 output
	shift
	t0=$SECONDS
	output=$("$@" 2>&1)
	rc=$?
	{
		echo "### $(gp_fake)$what"
		echo
		echo '```'
		echo "\$ ${GP_SHOWN:-$(gp_shown "$@")}"
		printf '%s\n' "$output" | tail -60
		echo "(exit $rc, $((SECONDS - t0)) s)"
		echo '```'
		echo
	} >>"$GP_OUT/record.md"
	printf '%s\n' "$output" >"$GP_WORK/last"
	if [ "$rc" = 0 ]; then gp_verdict ok "$what"; else gp_verdict "not ok" "$what (exit $rc)"; fi
	return "$rc"
}
# gp_check WHAT COMMAND...: a verdict on a command's exit status, noted in
# the record (the command reads what the last step printed: gp_last).
gp_check() {
	local what=$1 v=ok
	shift
	"$@" >/dev/null 2>&1 || v="not ok"
	gp_verdict "$v" "$what"
	gp_note "Check: **$v** - $(gp_fake)$what"
	[ "$v" = ok ]
}
gp_last() { cat "$GP_WORK/last"; }

# The command as a shell would take it, the helpers spelt out.
gp_shown() {
	case $1 in
	gp_inside) shift; set -- lxc-attach -P "$BENCH_DIR/state/lxc" -n "$GP_M" -- "$@" ;;
	gp_as_member) shift; set -- lxc-attach -P "$BENCH_DIR/state/lxc" -n "$GP_M" -- runuser -u "$GP_M" -- "$@" ;;
	gpubox) shift; set -- "$BENCH_BIN/gpubox" "$@" ;;
	esac
	local a sep=
	for a in "$@"; do
		if [[ $a =~ ^[A-Za-z0-9_./=:@,+%-]+$ ]]; then printf '%s%s' "$sep" "$a"
		else printf "%s'%s'" "$sep" "${a//\'/\'\\\'\'}"; fi
		sep=' '
	done
}

# --- LXC from the bundle -------------------------------------------------
# The staged programs first on PATH; on LD_LIBRARY_PATH, liblxc and every
# staged library the server lacks (the server's own are left in place).
# LXC's data folders, where the server has none, are bind mounts of the
# staged ones for the run's length.
gp_stage_lxc() {
	local s=$GP_BUNDLE/lxc f so d
	mkdir -p "$GP_WORK/lib"
	if [ -f "$GP_BUNDLE/lxc.tar.xz" ]; then
		s=$GP_WORK/lxc
		tar -C "$GP_WORK" --numeric-owner -xJf "$GP_BUNDLE/lxc.tar.xz" || return 1
	fi
	# Sonames only (libz.so.1, not libz.so.1.2.13): what ldconfig -p lists.
	for f in "$s"/usr/lib/x86_64-linux-gnu/*.so.* "$s"/lib/x86_64-linux-gnu/*.so.*; do
		[ -e "$f" ] || continue
		so=$(basename "$f")
		[[ $so =~ \.so\.[0-9]+$ ]] || continue
		case $so in
		liblxc.so.*) ;;
		*) ldconfig -p | awk -v s="$so" '$1 == s {f = 1} END {exit !f}' && continue ;;
		esac
		ln -sf "$f" "$GP_WORK/lib/$so"
	done
	export LD_LIBRARY_PATH=$GP_WORK/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} PATH=$s/usr/sbin:$s/usr/bin:$s/sbin:$s/bin:$PATH
	for d in usr/share/lxc usr/lib/x86_64-linux-gnu/lxc usr/libexec/lxc; do
		[ -e "/$d" ] || [ ! -d "$s/$d" ] && continue
		mkdir -p "/$d" && mount --bind "$s/$d" "/$d" || return 1
		GP_UNDO+=("umount -l '/$d'; rmdir '/$d'")
		gp_note "Bound the staged /$d (the server has none) for the run's length."
	done
	gp_step "the staged LXC: libraries from the bundle the server lacks" ls "$GP_WORK/lib"
	gp_step "gpuboxd finds every library" sh -c "! ldd '$GP_BUNDLE/build/src/agent/gpuboxd' | grep 'not found'; ldd '$GP_BUNDLE/build/src/agent/gpuboxd' | grep lxc" &&
		gp_step "the staged lxc-attach" sh -c 'command -v lxc-attach; lxc-attach --version' &&
		gp_check "lxc-attach is the staged one" sh -c "command -v lxc-attach | grep -q '^$s/'"
}

# --- agent, template, member ----------------------------------------------
gp_agent() {
	if [ "$GP_DRY" = no ]; then
		export BENCH_NVML=real
		# Where the agent will look for the driver (gpu_root is /).
		gp_step "the server's driver, as the loader sees it (for the record)" sh -c \
			'nvidia-smi -L; ldconfig -p | grep -E "libcuda\.so|libnvidia-ml\.so"; echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"; ls -d /usr/local/nvidia/* /dev/nvidia* 2>&1; true'
	fi
	bench_agent_up "$GP_BUNDLE/build" >>"$GP_OUT/agent-setup.log" 2>&1 || {
		gp_verdict "not ok" "a throw-away agent starts (agent-setup.log)"; return 1; }
	trap 'gp_run_cleanup' EXIT  # bench_agent_up set its own
	if [ "$GP_DRY" = yes ]; then
		fake_driver_nvml "$BENCH_DIR/gpu" "$GP_WORK/gpu-build" 999.40.04 "$BENCH_BIN/nvml" || return 1
		printf 'gpu 0 name=Fake_GPU total=80000 used=0\ngpu 1\n' >"$BENCH_DIR/nvml.state"
		echo "gpu_root = $BENCH_DIR/gpu" >>"$BENCH_CONF"
	fi
	echo "nvml_interposer = own $GP_BUNDLE/build/src/nvmlshim/libgpubox-nvml.so" >>"$BENCH_CONF"
	bench_stop_agent && bench_start_agent || return 1
	gp_note "Agent: \`$BENCH_CONF\` (bench/lib.sh's throw-away configuration$([ "$GP_DRY" = yes ] && echo ", gpu_root = the fake driver tree"))."
	mkdir -p "$BENCH_DIR/state/templates"
	gp_step "the slim template is imported" sh -c "tar -C '$BENCH_DIR/state/templates' --numeric-owner -xJf '$GP_BUNDLE/template/template.tar.xz' && '$BENCH_BIN/gpubox' admin template ls --json | jq -c '.templates[] | {ref, release, packages, size}'" &&
		gp_step "the agent's view of the GPUs" gpubox admin gpu ls &&
		gp_check "the agent finds a GPU" sh -c "'$BENCH_BIN/gpubox' admin gpu ls --json | jq -e '.gpus | length > 0'"
}

gp_inside() { lxc-attach -P "$BENCH_DIR/state/lxc" -n "$GP_M" -- "$@"; }
gp_as_member() { gp_inside runuser -u "$GP_M" -- "$@"; }

gp_member() {
	GP_M=$(bench_member p)
	gp_step "member $GP_M added" gpubox admin user add "$GP_M" --key "$BENCH_DIR/keys/bench.pub" &&
		gp_step "$GP_M's container starts with the GPUs" gpubox start --member "$GP_M" &&
		gp_step "$GP_M's GPUs" sh -c "'$BENCH_BIN/gpubox' status --member '$GP_M' --json | jq -c '{gpus, nvml_translated}'" &&
		gp_step "the GPU nodes inside" gp_inside sh -c 'ls -l /dev/nvidia*'
}

# --- a CUDA job inside, seen by nvidia-smi -------------------------------
# The job: bench/gpu's program built here with the server's nvcc (hold
# mode), run as the member; without nvcc, a python3 with torch here cannot
# run inside (it is not in the template), so the job is then missing.
# Dry run: a process holding /dev/nvidia0, written into the fake's state.
gp_gpu_job() {
	local inside_pid host_pid
	if [ "$GP_DRY" = yes ]; then
		gp_inside sh -c 'cat >/usr/local/bin/nvml_client && chmod 755 /usr/local/bin/nvml_client' \
			<"$GP_BUNDLE/build/tests/fake-nvml/nvml_client"
		gp_as_member sh -c 'setsid sh -c "echo \$\$ >/tmp/gpu-job; exec sleep 600" </dev/null >/dev/null 2>&1 &'
	else
		gp_cuda_build || return 1
		gp_as_member sh -c 'setsid sh -c "echo \$\$ >/tmp/gpu-job; exec env LD_LIBRARY_PATH=/opt/gpubench/lib /opt/gpubench/gpubench hold 120" </dev/null >/tmp/gpu-job.log 2>&1 &'
	fi
	wait_until 20 gp_inside test -s /tmp/gpu-job || { gp_verdict "not ok" "the member's GPU job runs"; return 1; }
	inside_pid=$(gp_inside cat /tmp/gpu-job)
	host_pid=$(gp_host_pid "$inside_pid")
	gp_note "$(gp_fake)The member's GPU job: pid $inside_pid inside, $host_pid on the host."
	if [ "$GP_DRY" = yes ]; then
		printf 'gpu 0 name=Fake_GPU total=80000 used=1000\ngpu 1\nproc 0 pid=%s mem=1000 sm=50\n' "$host_pid" >"$BENCH_DIR/nvml.state"
		gp_inside sh -c 'cat >/tmp/nvml.state' <"$BENCH_DIR/nvml.state"
		# The agent's pid map follows the fake's answer within a sample.
		wait_until 15 gp_shows "pids=${inside_pid}/" gp_as_member env FAKE_NVML_STATE=/tmp/nvml.state nvml_client
		gp_step "nvml_client inside, as $GP_M (what nvidia-smi asks, through the interposer)" \
			gp_as_member env FAKE_NVML_STATE=/tmp/nvml.state nvml_client
		gp_check "the process query inside shows the job by its pid inside ($inside_pid), not the host's ($host_pid)" \
			sh -c "grep -q '^compute_v3 0 rc=0 pids=$inside_pid/' '$GP_WORK/last' && ! grep -q '[=,]$host_pid/' '$GP_WORK/last'"
	else
		wait_until 20 gp_shows "[[:space:]]${inside_pid}[[:space:]]" gp_as_member nvidia-smi
		gp_step "nvidia-smi inside, as $GP_M" gp_as_member nvidia-smi
		gp_check "nvidia-smi inside shows the job by its pid inside ($inside_pid), not the host's ($host_pid)" \
			sh -c "grep -Eq '[[:space:]]${inside_pid}[[:space:]]' '$GP_WORK/last' && ! grep -Eq '[[:space:]]${host_pid}[[:space:]]' '$GP_WORK/last'"
		gp_step "the CUDA job's own output" gp_inside cat /tmp/gpu-job.log
	fi
	gp_inside kill "$inside_pid" 2>/dev/null
}

wait_until() {
	local limit=$(($1 * 10))
	shift
	for _ in $(seq "$limit"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
	return 1
}

# gp_shows PATTERN COMMAND...: the command's output matches PATTERN (grep -E).
gp_shows() {
	local pattern=$1
	shift
	"$@" 2>&1 | grep -Eq -- "$pattern"
}

gp_host_pid() {
	local p
	for p in $(pgrep -f 'sleep 600|gpubench hold'); do
		grep -q "lxc.payload.$GP_M" "/proc/$p/cgroup" 2>/dev/null || continue
		[ "$(awk '/^NSpid:/ {print $NF}' "/proc/$p/status")" = "$1" ] && { echo "$p"; return 0; }
	done
}

# bench/gpu's program, built with the server's nvcc, and the CUDA
# libraries it links (not the driver's) copied into the container.
gp_cuda_build() {
	local nvcc
	nvcc=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
	if [ -z "$nvcc" ]; then
		if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
			gp_verdict "not ok" "no nvcc here; python3 has torch, but it is not inside the template: no CUDA job inside"
		else
			gp_verdict "not ok" "neither nvcc nor a python3 with torch here: no CUDA job"
		fi
		return 1
	fi
	GP_NVCC=$nvcc
	gp_step "bench/gpu built with the server's nvcc ($nvcc)" \
		"$GP_ROOT/bench/gpu/build" "$nvcc" "$GP_WORK/gpubench" || return 1
	gp_inside mkdir -p /opt/gpubench/lib
	for f in "$GP_WORK/gpubench" $(ldd "$GP_WORK/gpubench" | awk '$3 ~ /^\// && $1 !~ /^lib(c|m|dl|rt|pthread|gcc_s|stdc\+\+)\.so|libcuda\.so/ {print $3}'); do
		gp_inside sh -c "cat >/opt/gpubench/$( [ "$f" = "$GP_WORK/gpubench" ] || echo lib/)$(basename "$f")" <"$f"
	done
	gp_inside sh -c 'chmod -R a+rX /opt/gpubench && chmod 755 /opt/gpubench/gpubench'
}

# --- the GPU set emptied -------------------------------------------------
gp_gpu_empty() {
	local i
	for i in $(gpubox status --member "$GP_M" --json | jq -r '.gpus[].index'); do
		gp_step "GPU $i detached from $GP_M's container" gpubox admin gpu detach "$GP_M" "$i" --force
	done
	gp_step "$GP_M has no GPU left" sh -c "'$BENCH_BIN/gpubox' status --member '$GP_M' --json | jq -e '.gpus | length == 0'"
	gp_step "no GPU node is left inside" gp_inside sh -c '! ls /dev/nvidia[0-9]* 2>/dev/null'
	if [ "$GP_DRY" = no ]; then
		GP_SHOWN="$(gp_shown gp_as_member nvidia-smi -L)  # must fail: no GPU" \
			gp_step "nvidia-smi inside finds no GPU" gp_no_gpu
	fi
}
gp_no_gpu() { ! gp_as_member nvidia-smi -L; }

# --- bench/gpu ------------------------------------------------------------
gp_bench() {
	if [ "$GP_DRY" = yes ]; then
		gp_note "$(gp_fake)bench/gpu not run: no GPU and no CUDA compiler (the dry run never makes a figure)."
		return 0
	fi
	[ -n "${GP_NVCC:-}" ] || { gp_note "bench/gpu not run: no CUDA compiler here."; return 0; }
	gpubox admin gpu attach "$GP_M" 0 >/dev/null
	gp_step "bench/gpu: container against host, alternating, medians" \
		"$GP_ROOT/bench/gpu/run" "$GP_WORK/gpubench" "${GPU_BENCH_ROUNDS:-5}" \
		lxc-attach -P "$BENCH_DIR/state/lxc" -n "$GP_M" -- runuser -u "$GP_M" -- \
		env LD_LIBRARY_PATH=/opt/gpubench/lib /opt/gpubench/gpubench
	cp "$GP_WORK/last" "$GP_OUT/bench-gpu.txt"
}
