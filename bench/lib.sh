# shellcheck shell=bash
# Shared helpers of the benchmarks (sourced by bench/run and each
# benchmark).  Like tests/system/run, a benchmark runs one real agent
# (gpuboxd) with a throw-away configuration: its own state directory,
# bridge, nftables table, groups and id/port ranges, none of which collide
# with the system tests' (gbxt*, 47000-47999, 42200-42299, 43000-43099,
# 10.213/10.214).  Everything is removed at the end, also when a benchmark
# fails or is interrupted.
#
#   bench_setup BUILD_DIR    agent up and the default template built;
#                            a no-op when bench/run already did it (it
#                            exports BENCH_READY=1 and the BENCH_* names)
#   bench_agent_up BUILD_DIR the agent alone, no template (scripts/gpu-proof
#                            imports one); BENCH_NVML=real leaves the
#                            tests' fake libnvidia-ml.so.1 out, so the
#                            agent loads the server's; BENCH_LAYERS=btrfs
#                            puts the members' layers on btrfs first
#                            (bench_layers_btrfs)
#
# Benchmarks print figures; they never fail on a number.

set -u
export LC_ALL=C

bench_log() { echo "# $*" >&2; }
bench_die() { echo "bench: $*" >&2; exit 1; }

# Milliseconds since the epoch (bash 5: no fork).
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

# median N...: the median of integers (the lower middle for an even count).
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

# ratio A B: A/B with two decimals ("-" when B is 0).
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

# secs MS: milliseconds as seconds with two decimals.
secs() { awk -v a="$1" 'BEGIN { printf "%.2f", a / 1000 }'; }

gpubox() { "$BENCH_BIN/gpubox" "$@"; }

# quiet COMMAND...: run it, showing its output only when it fails.
quiet() {
	local out
	out=$("$@" 2>&1) || { printf '%s\n' "$out" >&2; return 1; }
}

bench_start_agent() {
	# The fake libnvidia-ml.so.1 of the tests stands in for the absent GPU
	# (bench/ps); env execs the agent, so $! is its pid.
	env LD_LIBRARY_PATH="$BENCH_BIN/nvml${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" FAKE_NVML_STATE="$BENCH_DIR/nvml.state" \
		"$BENCH_BIN/gpuboxd" --foreground --config "$BENCH_CONF" >>"$BENCH_DIR/agent.log" 2>&1 &
	echo $! >"$BENCH_DIR/agent.pid"
	for _ in $(seq 100); do
		[ -S "$BENCH_DIR/gpubox.sock" ] && gpubox version >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "bench: the agent did not come up; its log:" >&2
	tail -30 "$BENCH_DIR/agent.log" | sed 's/^/# /' >&2
	return 1
}

bench_stop_agent() {
	local pid
	[ -f "$BENCH_DIR/agent.pid" ] || return 0
	pid=$(cat "$BENCH_DIR/agent.pid")
	kill "$pid" 2>/dev/null
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	rm -f "$BENCH_DIR/agent.pid"
}

# bench_set_template NAME: the template new and rebuilt containers use
# (the agent's "template" key), then restart the agent to read it.
bench_set_template() {
	sed -i '/^template = /d' "$BENCH_CONF"
	echo "template = $1" >>"$BENCH_CONF"
	bench_stop_agent
	bench_start_agent
}

bench_cleanup() {
	local status=$? dir=$BENCH_DIR id=$BENCH_ID m c
	set +e
	[ -n "$dir" ] && [ -d "$dir" ] || return 0
	if [ "$status" != 0 ] && [ -s "$dir/agent.log" ]; then
		cp "$dir/agent.log" "/tmp/gbx-bench.$id.agent.log"
		bench_log "failed (exit $status); the agent's log is kept in /tmp/gbx-bench.$id.agent.log"
	fi
	bench_log "cleaning up $dir"
	if [ -S "$dir/gpubox.sock" ] && [ -f "$dir/agent.pid" ]; then
		for m in $(gpubox admin user ls --json 2>/dev/null | jq -r '.users[].name' 2>/dev/null); do
			# bounded: a member whose start hangs in the agent would hold it
			timeout 30 "$BENCH_BIN/gpubox" admin user rm "$m" --purge --yes >/dev/null 2>&1
		done
	fi
	[ -f "$dir/agent.pid" ] && kill "$(cat "$dir/agent.pid")" 2>/dev/null
	sleep 0.3
	for c in "$dir"/state/lxc/*/; do
		[ -d "$c" ] && lxc-stop -k -P "$dir/state/lxc" -n "$(basename "$c")" 2>/dev/null
	done
	# BENCH_LAYERS=btrfs: the layers' file system, now that the agent and
	# the containers are gone (the agent may take a moment to exit).  Its
	# loop device goes with the unmount (mount -o loop: autoclear), the
	# file with the directory.
	if [ -f "$dir/layers.btrfs.img" ]; then
		grep " $dir/state/layers/" /proc/self/mounts | awk '{print $2}' | sort -r | while read -r m; do umount -l "$m"; done
		for _ in $(seq 50); do
			grep -q " $dir/state/layers " /proc/self/mounts || break
			umount "$dir/state/layers" 2>/dev/null && break
			sleep 0.1
		done
		if grep -q " $dir/state/layers " /proc/self/mounts; then
			bench_log "$dir/state/layers is busy; unmounting it lazily"
			umount -l "$dir/state/layers"
		fi
		for m in $(losetup -j "$dir/layers.btrfs.img" 2>/dev/null | cut -d: -f1); do losetup -d "$m" 2>/dev/null; done
	fi
	grep " $dir/" /proc/self/mounts | awk '{print $2}' | sort -r | while read -r m; do umount -l "$m"; done
	for m in $(awk -F: -v g="gbxbm$id" '$1 == g {print $4}' /etc/group | tr , ' '); do
		userdel "$m" 2>/dev/null; groupdel "$m" 2>/dev/null
	done
	# Only this run's subordinate ranges (21xxxxxxxx; the tests use 20xxxxxxxx).
	sed -i '/^root:21[0-9]\{8\}:65536$/d' /etc/subuid /etc/subgid
	groupdel "gbxbm$id" 2>/dev/null
	groupdel "gbxba$id" 2>/dev/null
	nft delete table ip "gbxb$id" 2>/dev/null
	nft delete table ip6 "gbxb$id" 2>/dev/null
	nft delete table bridge "gbxb$id" 2>/dev/null
	ip link del "gbxb$id" 2>/dev/null
	rm -rf "$dir"
}

bench_setup() {
	[ "${BENCH_READY:-}" = 1 ] && return 0
	bench_agent_up "${1:-build}"
	bench_log "building the default template (debootstrap; a minute or two)"
	local t0
	t0=$(now_ms)
	if ! gpubox admin template build >"$BENCH_DIR/template.log" 2>&1; then
		echo "bench: the template could not be built:" >&2
		tail -30 "$BENCH_DIR/template.log" | sed 's/^/# /' >&2
		exit 1
	fi
	bench_log "$(tail -1 "$BENCH_DIR/template.log") ($(secs $(($(now_ms) - t0))) s)"
	BENCH_READY=1
	export BENCH_READY
}

bench_agent_up() {
	local build net ports
	[ "$(id -u)" = 0 ] || bench_die "the benchmarks need root (real containers, nftables)"
	build=$(cd "${1:-build}" 2>/dev/null && pwd) || bench_die "no build directory ${1:-build}; build first (make)"
	[ -x "$build/src/cli/gpubox" ] && [ -x "$build/src/agent/gpuboxd" ] ||
		bench_die "$build has no gpubox and gpuboxd; build first (make)"
	for t in jq nc tar lxc-stop nft; do
		command -v "$t" >/dev/null || bench_die "$t is missing"
	done
	case ${BENCH_LAYERS:-auto} in
	auto) ;;
	btrfs)
		command -v mkfs.btrfs >/dev/null ||
			bench_die "BENCH_LAYERS=btrfs: mkfs.btrfs is missing; install btrfs-progs (or BENCH_LAYERS=auto)"
		command -v losetup >/dev/null || bench_die "BENCH_LAYERS=btrfs: losetup is missing"
		;;
	*) bench_die "BENCH_LAYERS: btrfs or auto (the agent's own layers_pool), not $BENCH_LAYERS" ;;
	esac

	BENCH_ID=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
	BENCH_DIR=$(mktemp -d "/var/lib/gbx-bench.$BENCH_ID.XXXX") || bench_die "cannot make a directory"
	chmod 755 "$BENCH_DIR"
	net=$((20 + 0x${BENCH_ID:0:2} % 200))
	# A DNAT rule takes its port on every local address: two benchmarks
	# at once (other branches, other builds) each take a slice of 100
	# ports, so that one's probe never reaches the other's container.
	ports=$((0x${BENCH_ID:4:2} % 8 * 100))
	BENCH_BIN=$BENCH_DIR/bin
	BENCH_CONF=$BENCH_DIR/gpubox.conf
	BENCH_HOST_IP=10.215.$net.1
	export BENCH_ID BENCH_DIR BENCH_BIN BENCH_CONF BENCH_HOST_IP
	export GPUBOX_CONFIG=$BENCH_CONF
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM

	mkdir -p "$BENCH_BIN" "$BENCH_DIR/state" "$BENCH_DIR/keys"
	install -m 0755 "$build/src/cli/gpubox" "$build/src/agent/gpuboxd" "$BENCH_BIN/"
	mkdir -p "$BENCH_BIN/nvml"
	[ "${BENCH_NVML:-fake}" != real ] && [ -f "$build/tests/fake-nvml/libnvidia-ml.so.1" ] &&
		install -m 0755 "$build/tests/fake-nvml/libnvidia-ml.so.1" "$BENCH_BIN/nvml/"
	cat >"$BENCH_CONF" <<CONF
# written by bench/lib.sh
socket = $BENCH_DIR/gpubox.sock
state_dir = $BENCH_DIR/state
authorized_keys_dir = $BENCH_DIR/authorized_keys
member_shell = $BENCH_BIN/gpubox
server_name = gbxbench
ssh_host = $BENCH_HOST_IP
admin_group = gbxba$BENCH_ID
member_group = gbxbm$BENCH_ID
uid_range = 48000-48999
subid_range = 2100000000-2199999999
ssh_port_range = $((44200 + ports))-$((44299 + ports))
forward_port_range = $((45000 + ports))-$((45099 + ports))
bridge = gbxb$BENCH_ID
bridge_address = $BENCH_HOST_IP/24
nft_table = gbxb$BENCH_ID
start_timeout = 60
metrics_listen =
CONF
	[ -n "${GBX_TEMPLATE_MIRROR:-}" ] && echo "template_mirror = $GBX_TEMPLATE_MIRROR" >>"$BENCH_CONF"
	[ "${BENCH_LAYERS:-auto}" = btrfs ] && bench_layers_btrfs
	ssh-keygen -q -t ed25519 -N '' -C bench -f "$BENCH_DIR/keys/bench"

	bench_start_agent || exit 1
	bench_log "agent up: $BENCH_DIR (bridge gbxb$BENCH_ID, 10.215.$net.0/24)"
}

# bench_layers_btrfs (for bench_agent_up, before the agent starts): the
# members' layers (<state>/layers) on a btrfs file system of their own, made
# on a sparse loop file beside the state directory (BENCH_LAYERS_SIZE,
# default 20G, as truncate reads it), like LXD's btrfs pool (bench/lxd.sh),
# and "layers_pool = none" so that the agent takes the directory as it is
# (no ext4 image of its own over it, no project quotas).  Each member's
# layer is then a btrfs subvolume: what local snapshots need.
# bench_cleanup unmounts it.
bench_layers_btrfs() {
	local img=$BENCH_DIR/layers.btrfs.img dir=$BENCH_DIR/state/layers size=${BENCH_LAYERS_SIZE:-20G}
	mkdir -p "$dir" || bench_die "cannot make $dir"
	truncate -s "$size" "$img" || bench_die "BENCH_LAYERS_SIZE: cannot make a file of $size"
	quiet mkfs.btrfs -q -f "$img" || bench_die "mkfs.btrfs on $img failed"
	quiet mount -o loop "$img" "$dir" || bench_die "cannot mount $img at $dir"
	echo "layers_pool = none" >>"$BENCH_CONF"
	bench_log "members' layers: btrfs on $img ($size, sparse; $(losetup -j "$img" | cut -d: -f1)), layers_pool = none"
}

# A member name unique to this run: bench_member TAG
bench_member() { echo "bx$BENCH_ID$1"; }

bench_add() { gpubox admin user add "$1" --key "$BENCH_DIR/keys/bench.pub" >/dev/null; }

bench_rm() { gpubox admin user rm "$1" --purge --yes >/dev/null 2>&1 || true; }

# The newest template of NAME: its directory (templates/NAME@VERSION).
bench_template_dir() {
	local ref
	ref=$(gpubox admin template ls --json | jq -r --arg n "$1" \
		'[.templates[] | select(.name == $n)] | sort_by(.version) | last | .ref')
	[ -n "$ref" ] && [ "$ref" != null ] || return 1
	echo "$BENCH_DIR/state/templates/$ref"
}

# bench_timed_start NAME FILE: gpubox start, each output line stamped with
# the milliseconds since the call; prints the total milliseconds.
bench_timed_start() {
	local name=$1 out=$2 t0 rc
	t0=$(now_ms)
	{ gpubox start --member "$name" 2>&1; echo "exit $?"; } | while IFS= read -r line; do
		echo "$(($(now_ms) - t0)) $line"
	done >"$out"
	rc=$(awk '$2 == "exit" {print $3}' "$out" | tail -1)
	[ "$rc" = 0 ] || { sed 's/^/# /' "$out" >&2; return 1; }
	awk '$2 == "exit" {print $1}' "$out" | tail -1
}

# The milliseconds at which a stamped start output first said PATTERN.
bench_stamp() { awk -v p="$2" 'index($0, p) {print $1; exit}' "$1"; }

# bench_probe HOST PORT: does HOST:PORT give an SSH banner within half a
# second?
bench_probe() {
	local line='' fd pid
	exec {fd}< <(exec nc -w 2 "$1" "$2" </dev/null 2>/dev/null)
	pid=$!
	read -r -t 0.5 -u "$fd" line
	kill "$pid" 2>/dev/null
	exec {fd}<&-
	[[ $line == SSH-* ]]
}

# bench_changes DIR OWNER LIB MB: about MB megabytes of a member's own
# changes under DIR/opt (the root or layer of a stopped container), as the
# container would own them: half incompressible data, half copies of the
# directory LIB (what "pip install" leaves), all owned by OWNER.
bench_changes() {
	local dir=$1 owner=$2 lib=$3 half=$(($4 * 1000000 / 2)) k=0
	mkdir -p "$dir/opt/data" "$dir/opt/venv"
	head -c "$half" /dev/urandom >"$dir/opt/data/weights.bin" || return 1
	while [ "$(du -sb "$dir/opt/venv" | cut -f1)" -lt "$half" ]; do
		k=$((k + 1))
		cp -a "$lib" "$dir/opt/venv/lib$k" || return 1
	done
	chown -R "$owner:$owner" "$dir/opt" && sync
}

# bench_make_big: big@1, a copy of the default template plus about nine times its
# size of incompressible files (a few big ones, many small ones under
# usr/share/bench), with its manifest renamed.
bench_make_big() {
	local src dst size extra bigs part t0 k
	src=$(bench_template_dir default) || bench_die "no default template"
	dst=$BENCH_DIR/state/templates/big@1
	t0=$(now_ms)
	cp -a "$src" "$dst" || bench_die "cannot copy $src"
	size=$(du -sb "$src/rootfs" | cut -f1)
	extra=$((size * 9))
	bigs=$((extra * 2 / 3 / 4))              # 4 big files: two thirds
	part=$(((extra - 4 * bigs) / 16))        # 16 dirs of 64 KiB files: a third
	mkdir -p "$dst/rootfs/usr/share/bench/big" || bench_die "cannot write into $dst"
	for k in 1 2 3 4; do
		head -c "$bigs" /dev/urandom >"$dst/rootfs/usr/share/bench/big/blob$k" || bench_die "cannot write"
	done
	for k in $(seq -w 1 16); do
		mkdir -p "$dst/rootfs/usr/share/bench/small/$k"
		head -c "$part" /dev/urandom | split -b 64K -a 4 - "$dst/rootfs/usr/share/bench/small/$k/f" ||
			bench_die "cannot write"
	done
	size=$(du -sb "$dst/rootfs" | cut -f1)
	jq --argjson size "$size" --argjson now "$(date +%s)" \
		'.name = "big" | .version = 1 | .size = $size | .created = $now' \
		"$src/manifest.json" >"$dst/manifest.json.new" && mv "$dst/manifest.json.new" "$dst/manifest.json" ||
		bench_die "cannot write big@1's manifest"
	sync
	bench_log "big@1: $((size / 1000000)) MB, $(find "$dst/rootfs/usr/share/bench" -type f | wc -l) added files ($(secs $(($(now_ms) - t0))) s to make)"
}
