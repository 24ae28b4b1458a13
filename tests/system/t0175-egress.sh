#!/bin/bash
# egress_deny: a container cannot open a connection into a denied network,
# the host's own addresses there included, while its gateway, the world
# and the resolvers it was given (even inside a denied network) stay
# reachable.
. "$(dirname "$0")/lib.sh"

m=eg$GBX_ID
dummy=gbxd$GBX_ID
denied_net=198.18.$((0x${GBX_ID:0:2})).0/24
denied=${denied_net%.0/24}.1
port=$((GBX_FWD_LAST - 2))
listener=
cleanup() {
	stop_pid "$listener"
	remove_member "$m"
	ip link del "$dummy" 2>/dev/null
	restore_config t0175
}
trap cleanup EXIT

# Bad values are refused with one sentence.
bad=$GBX_DIR/bad-egress.conf
for value in "10.0.0.300/8" "192.168.1.0/16" "storage-net"; do
	printf 'egress_deny = %s\n' "$value" >"$bad"
	refuse "egress_deny = $value is refused" 2 "egress_deny: .*(is not an IPv4 network|host bits set)" \
		"$GBX_BIN/gpuboxd" --print-config --config "$bad"
done
bridge_net=$(sed -n 's/^bridge_address = //p' "$GBX_CONF")
printf 'bridge_address = %s\negress_deny = 10.0.0.0/8\n' "$bridge_net" >"$bad"
refuse "egress_deny over the containers' subnet is refused" 2 "overlaps the containers' own subnet" \
	"$GBX_BIN/gpuboxd" --print-config --config "$bad"
rm -f "$bad"

# An address the host answers on, in what will be a denied network (on
# a veth pair: the dummy driver is not everywhere), and a listener on
# every address of the host.
ip link add "$dummy" type veth peer name "gbxe$GBX_ID" && ip address add "$denied/32" dev "$dummy" &&
	ip link set "gbxe$GBX_ID" up && ip link set "$dummy" up
nc -lk "$port" </dev/null >/dev/null 2>&1 &
listener=$!
gw=$(sed -n 's/^bridge_address = //p' "$GBX_CONF" | cut -d/ -f1)

check "member $m added" add_member "$m"
check "$m starts" gpubox start --member "$m"
pid=$(lxc-info -P "$GBX_DIR/state/lxc" -n "$m" -pH)
# A TCP connection from inside the container's network namespace.
reaches() { nsenter -t "$pid" -n timeout 5 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }
name=$(mirror_name)
resolves() { lxc_attach "$m" getent hosts "$name" >/dev/null 2>&1; }

reaches "$denied" "$port" && ok "before: the container reaches $denied" || not_ok "before: the container reaches $denied"

# Deny that network, and the host's first IPv4 resolver's own address:
# the containers' DNS goes there, so its port 53 must stay open.
resolver=$(awk '$1 == "nameserver" && $2 ~ /^[0-9.]+$/ && $2 !~ /^127\./ {print $2; exit}' /etc/resolv.conf)
deny="169.254.0.0/16, $denied_net${resolver:+, $resolver/32}"
check "the agent restarts with egress_deny = $deny" restart_with_config t0175 "egress_deny = $deny"
nft_rules | grep -q "$denied_net" && ok "the table denies $denied_net" ||
	{ not_ok "the table denies $denied_net"; nft_rules | diag; }

start=$(date +%s)
reaches "$denied" "$port" && not_ok "the container cannot reach the host's $denied" ||
	ok "the container cannot reach the host's $denied"
[ $(($(date +%s) - start)) -lt 4 ] && ok "refused at once, not left to time out" ||
	not_ok "refused at once, not left to time out"
reaches "$gw" "$port" && ok "the container still reaches its gateway $gw" ||
	not_ok "the container still reaches its gateway $gw"
client=${GBX_HOST_IP%.1}.2
ip netns exec "$GBX_CLIENT_NS" timeout 10 nc -l "$((port - 1))" >/dev/null &
outside=$!
sleep 0.5
reaches "$client" "$((port - 1))" && ok "the container still reaches a host outside" ||
	not_ok "the container still reaches a host outside"
wait "$outside"
if [ -n "$resolver" ] && [ -n "$name" ] && getent hosts "$name" >/dev/null 2>&1; then
	resolves && ok "DNS through the denied resolver $resolver still works" ||
		not_ok "DNS through the denied resolver $resolver still works"
else
	ok "DNS through a denied resolver (skipped: no IPv4 resolver that resolves the host's apt mirror)"
fi
check "the member still logs in" client_ssh_container "$m" "$(member_field "$m" ssh_port)" true
done_testing
