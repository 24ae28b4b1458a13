#!/bin/bash
# apt_cache: two members' containers install the same package through a
# package cache (an apt-cacher-ng of the test's own, on the bridge's
# address), and the second download is a hit in the cache's own log.
# The containers reach the network at the cache only (egress_deny covers
# everything else); the proxy setting is read-only inside, root's on the
# host and not in the member's layer; template builds fetch through the
# cache; doctor tells a cache that answers from one that does not;
# apt_cache = off takes the setting away at the next start; a bad value
# stops the agent with one sentence.
. "$(dirname "$0")/lib.sh"

a=aca$GBX_ID
b=acb$GBX_ID
tpl=ac$GBX_ID
acng_dir=$GBX_DIR/acng
acng_pid=
# apt-cacher-ng 3.7 cannot bind a port above 32767; one per test slot.
acng_port=$((31400 + (GBX_SSH_FIRST - 50000) / 300))
gw=$(sed -n 's/^bridge_address = //p' "$GBX_CONF" | cut -d/ -f1)
subnet=$(sed -n 's/^bridge_address = //p' "$GBX_CONF" | sed 's/\.[0-9]*\//.0\//')

restart_with() { # the suite's configuration plus the lines given
	cp "$GBX_DIR/gpubox.conf.before-t0230" "$GBX_CONF"
	printf '%s\n' "$@" >>"$GBX_CONF"
	kill "$(cat "$GBX_DIR/agent.pid")"
	sleep 0.5
	restart_agent
}
cleanup() {
	remove_member "$a"
	remove_member "$b"
	gpubox admin template rm "$tpl@1" >/dev/null 2>&1
	stop_pid "$acng_pid"
	if [ -f "$GBX_DIR/gpubox.conf.before-t0230" ]; then
		restart_with
		rm -f "$GBX_DIR/gpubox.conf.before-t0230"
	fi
	rm -rf "$acng_dir"
}
trap cleanup EXIT

if ! [ -x /usr/sbin/apt-cacher-ng ] || ! id apt-cacher-ng >/dev/null 2>&1; then
	not_ok "apt-cacher-ng is installed (scripts/install-deps --test installs it)"
	done_testing
	exit
fi

# ---- a bad value: one sentence, no agent ---------------------------------------------
bad=$GBX_DIR/bad-apt-cache.conf
for value in 'https://cache.example.org' 'http://cache";Acquire::x "y' 'local:99999' \
	'http://127.0.0.1:3142' "http://$gw:3142" 'http://cache.example.org/debian'; do
	printf 'bridge_address = %s/24\napt_cache = %s\n' "$gw" "$value" >"$bad"
	out=$("$GBX_BIN/gpuboxd" --print-config --config "$bad" 2>&1)
	rc=$?
	if [ "$rc" = 2 ] && [ "$(printf '%s\n' "$out" | wc -l)" = 1 ] && grep -q 'apt_cache' <<<"$out"; then
		ok "apt_cache = $value is refused in one sentence"
	else
		not_ok "apt_cache = $value is refused in one sentence (exit $rc)"
		printf '%s\n' "$out" | diag
	fi
done
rm -f "$bad"

# ---- the cache: the test's own, on the bridge's address --------------------------------
# Its own configuration directory (nothing of the host's /etc/apt-cacher-ng:
# a plain caching proxy), cache and log, as its own user.
mkdir -p "$acng_dir/conf" "$acng_dir/cache" "$acng_dir/log" "$acng_dir/run"
echo "# t0230: settings are on the command line" >"$acng_dir/conf/acng.conf"
chown -R apt-cacher-ng:apt-cacher-ng "$acng_dir"
setpriv --reuid=apt-cacher-ng --regid=apt-cacher-ng --clear-groups \
	/usr/sbin/apt-cacher-ng -c "$acng_dir/conf" ForeGround=1 Port="$acng_port" BindAddress="$gw" \
	CacheDir="$acng_dir/cache" LogDir="$acng_dir/log" PidFile="$acng_dir/run/pid" \
	SocketPath="$acng_dir/run/socket" UnbufferLogs=1 VerboseLog=1 >"$acng_dir/out" 2>&1 &
acng_pid=$!
if ! wait_for 10 curl -s -o /dev/null "http://$gw:$acng_port/"; then
	not_ok "apt-cacher-ng answers on $gw:$acng_port"
	diag <"$acng_dir/out"
	done_testing
	exit
fi
ok "apt-cacher-ng answers on $gw:$acng_port"

# Containers may reach nothing but their subnet (the gateway, where the
# cache listens) and their resolvers: every other IPv4 network, in the 24
# networks around the subnet's /24.
everything_but() { # A.B.C.0/24
	local o1 o2 o3 o4 n p net sep=
	IFS=./ read -r o1 o2 o3 o4 _ <<<"$1"
	n=$(((o1 << 24) | (o2 << 16) | (o3 << 8) | o4))
	for p in $(seq 1 24); do
		net=$((((n >> (32 - p)) ^ 1) << (32 - p)))
		printf '%s%d.%d.%d.%d/%d' "$sep" $((net >> 24 & 255)) $((net >> 16 & 255)) \
			$((net >> 8 & 255)) $((net & 255)) "$p"
		sep=", "
	done
}
cp "$GBX_CONF" "$GBX_DIR/gpubox.conf.before-t0230"
check "the agent restarts with apt_cache = local:$acng_port" \
	restart_with "apt_cache = local:$acng_port" "egress_deny = $(everything_but "$subnet")"
nft_rules | grep -q "ip daddr $gw tcp dport $acng_port accept" &&
	ok "the rules let containers reach the cache's address and port" ||
	{ not_ok "the rules let containers reach the cache's address and port"; nft_rules | diag; }
host_file=$GBX_DIR/state/apt-proxy.conf
[ "$(stat -c '%u %a' "$host_file" 2>/dev/null)" = "0 644" ] &&
	grep -qx "Acquire::http::Proxy \"http://$gw:$acng_port\";" "$host_file" &&
	ok "the setting is root's on the host, 0644, naming the cache" ||
	{ not_ok "the setting is root's on the host, 0644, naming the cache"; ls -l "$host_file" | diag; }

doctor_status() { gpubox admin doctor --json | jq -r '.checks[] | select(.name == "apt-cache") | .status'; }
[ "$(doctor_status)" = ok ] && ok "doctor: the cache answers and fetches the mirror's InRelease" ||
	{ not_ok "doctor: the cache answers"; gpubox admin doctor --json | jq -c '.checks[] | select(.name == "apt-cache")' | diag; }

# ---- inside: the setting, read-only, not in the layer ---------------------------------
check "member $a added" add_member "$a"
check "member $b added" add_member "$b"
check "$a starts" gpubox start --member "$a"
check "$b starts" gpubox start --member "$b"
target=/etc/apt/apt.conf.d/01gpubox-proxy
[ "$(lxc_attach "$a" cat "$target" 2>/dev/null | grep Acquire)" = "Acquire::http::Proxy \"http://$gw:$acng_port\";" ] &&
	ok "apt in $a is given the cache" || not_ok "apt in $a is given the cache"
lxc_attach "$a" cat /proc/self/mountinfo | awk -v t="$target" '$5 == t {print $6}' | grep -qE '(^|,)ro(,|$)' &&
	ok "the setting is a read-only mount inside" || not_ok "the setting is a read-only mount inside"
upper=$GBX_DIR/state/layers/$a/upper
if [ -d "$upper/etc" ] && [ ! -e "$upper$target" ] && ! grep -rqs 'Acquire::http::Proxy' "$upper/etc/apt"; then
	ok "neither the setting nor its mount point is in the member's layer"
else
	not_ok "neither the setting nor its mount point is in the member's layer"
	ls -la "$upper/etc/apt/apt.conf.d" 2>&1 | diag
fi

# ---- through the cache only -------------------------------------------------------------
mirror_host=$(lxc_attach "$a" sh -c 'cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null' |
	awk '$1 == "deb" {print $2; exit}' | sed -E 's|^[a-z]+://([^/:]+).*|\1|')
mirror_ip=$(getent ahostsv4 "$mirror_host" | awk 'NR == 1 {print $1}')
pid=$(lxc-info -P "$GBX_DIR/state/lxc" -n "$a" -pH)
if [ -n "$mirror_ip" ]; then
	nsenter -t "$pid" -n timeout 5 bash -c "exec 3<>/dev/tcp/$mirror_ip/80" 2>/dev/null &&
		not_ok "the container cannot reach the mirror itself ($mirror_ip)" ||
		ok "the container cannot reach the mirror itself ($mirror_ip)"
else
	not_ok "the template's mirror resolves on this host"
fi

# time_in NAME command...: run as the container's root; seconds into $took.
time_in() {
	local name=$1 start rc
	shift
	start=$(date +%s.%N)
	lxc_attach "$name" env DEBIAN_FRONTEND=noninteractive "$@" >"$GBX_DIR/t0230.out" 2>&1
	rc=$?
	took=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	[ "$rc" = 0 ] || tail -5 "$GBX_DIR/t0230.out" | diag
	return "$rc"
}
for m in "$a" "$b"; do
	time_in "$m" apt-get update -q && ok "apt-get update in $m (${took} s)" ||
		not_ok "apt-get update in $m"
	time_in "$m" apt-get install -y -q hello && ok "apt-get install hello in $m (${took} s)" ||
		not_ok "apt-get install hello in $m"
	[ "$(lxc_attach "$m" hello 2>/dev/null)" = "Hello, world!" ] && ok "hello runs in $m" ||
		not_ok "hello runs in $m"
done

# The cache's transfer log: "TIME|I|BYTES|CLIENT|PATH" for what it fetched
# from the mirror, "TIME|O|..." for what it served.
addr_a=$(member_field "$a" address)
addr_b=$(member_field "$b" address)
log=$acng_dir/log/apt-cacher.log
fetched=$(grep -cE '\|I\|[0-9]+\|[^|]*\|.*/pool/.*/hello_[^/]*\.deb$' "$log")
served_a=$(grep -cE "\|O\|[0-9]+\|$addr_a\|.*/pool/.*/hello_[^/]*\.deb\$" "$log")
served_b=$(grep -cE "\|O\|[0-9]+\|$addr_b\|.*/pool/.*/hello_[^/]*\.deb\$" "$log")
if [ "$fetched" = 1 ] && [ "$served_a" = 1 ] && [ "$served_b" = 1 ]; then
	ok "the cache fetched hello's package once and served it to both: the second was a hit"
else
	not_ok "the cache fetched hello's package once (fetched $fetched, served $served_a to $a, $served_b to $b)"
	grep hello "$log" | diag
fi

# Root inside cannot write the host's file, even with the mount made writable.
lxc_attach "$a" sh -c "mount -o remount,bind,rw $target 2>/dev/null; echo 'Acquire::http::Proxy \"http://x\";' >>$target" 2>/dev/null &&
	not_ok "root inside cannot write the setting" || ok "root inside cannot write the setting"
grep -q 'http://x' "$host_file" && not_ok "the host's file is unchanged" || ok "the host's file is unchanged"

# ---- template builds fetch through the cache ----------------------------------------------
if [ "${GBX_TEMPLATE_BUILD:-1}" = 1 ]; then
	# The host asks from an address of its own choosing: every package the
	# cache serves meanwhile (the containers are idle) is debootstrap's.
	before=$(grep -cE '\|O\|.*\.deb$' "$log")
	start=$(date +%s)
	check "template $tpl builds through the cache" gpubox admin template build "$tpl"
	echo "# the build took $(($(date +%s) - start)) s"
	served=$(($(grep -cE '\|O\|.*\.deb$' "$log") - before))
	[ "$served" -gt 50 ] && ok "debootstrap fetched its $served packages through the cache" ||
		not_ok "debootstrap fetched its packages through the cache (only $served)"
	root=$GBX_DIR/state/templates/$tpl@1/rootfs
	! grep -rqs "$acng_port" "$root/etc/apt" && ok "the template keeps no proxy setting" ||
		not_ok "the template keeps no proxy setting"
else
	ok "template build through the cache (not run: GBX_TEMPLATE_BUILD=0)"
fi

# ---- a cache that does not answer -----------------------------------------------------------
stop_pid "$acng_pid"
acng_pid=
[ "$(doctor_status)" = fail ] && ok "doctor: a cache that does not answer is a failure" ||
	not_ok "doctor: a cache that does not answer is a failure"
gpubox admin doctor --json | jq -r '.checks[] | select(.name == "apt-cache") | .advice' | grep -q apt-cacher-ng &&
	ok "doctor says what to do" || not_ok "doctor says what to do"

# ---- apt_cache = off: gone at the next start ---------------------------------------------
check "the agent restarts with apt_cache = off" restart_with "apt_cache = off"
[ ! -e "$host_file" ] && ok "the host's file is removed" || not_ok "the host's file is removed"
nft_rules | grep -q "tcp dport $acng_port" && not_ok "the rules no longer name the cache" ||
	ok "the rules no longer name the cache"
check "$a stops" gpubox stop --member "$a"
check "$a starts again" gpubox start --member "$a"
lxc_attach "$a" test -e "$target" && not_ok "no setting in $a after its next start" ||
	ok "no setting in $a after its next start"
lxc_attach "$a" cat /proc/self/mountinfo | awk -v t="$target" '$5 == t' | grep -q . &&
	not_ok "no mount of it either" || ok "no mount of it either"
done_testing
