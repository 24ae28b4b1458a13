#!/bin/bash
# A member who is root in their container attacks their neighbour on the
# bridge: ARP claims on the neighbour's address, the neighbour's MAC as
# source, a forged IPv4 source, IPv6 router advertisements.  The host must
# keep sending the neighbour's traffic to the neighbour, and the
# attacker's own container must keep working.
. "$(dirname "$0")/lib.sh"

a=spa$GBX_ID
b=spb$GBX_ID
spoof=$(cd "$(dirname "$0")" && pwd)/spoof.py
bridge=gbxt$GBX_ID
lxcpath=$GBX_DIR/state/lxc
listener=
attack=
trap 'stop_pid "$attack"; stop_pid "$listener"; remove_member $a; remove_member $b' EXIT

check "member $a added" add_member "$a"
check "member $b added" add_member "$b"
check "$a starts" gpubox start --member "$a"
check "$b starts" gpubox start --member "$b"

addr_a=$(member_field "$a" address)
addr_b=$(member_field "$b" address)
port_a=$(member_field "$a" ssh_port)
port_b=$(member_field "$b" ssh_port)
bridge_cidr=$(sed -n 's/^bridge_address = //p' "$GBX_CONF")
gw=${bridge_cidr%/*}
prefix=${bridge_cidr#*/}
pid_a=$(lxc-info -P "$lxcpath" -n "$a" -pH)
in_a() { nsenter -t "$pid_a" -n "$@"; }
eth0_mac() { nsenter -t "$1" -n ip -o link show eth0 | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p'; }
mac_a=$(eth0_mac "$pid_a")
mac_b=$(eth0_mac "$(lxc-info -P "$lxcpath" -n "$b" -pH)")
port_name() { printf 'gpv%02x%02x%02x%02x' $(echo "$1" | tr . ' '); }
veth_a=$(port_name "$addr_a")
veth_b=$(port_name "$addr_b")
mac_gw=$(cat "/sys/class/net/$bridge/address")
echo "# $a: $addr_a $mac_a $veth_a; $b: $addr_b $mac_b $veth_b; gateway $gw $mac_gw" >&2
# The gateway's MAC is the bridge's own, not its lowest port's: it stays
# when containers come and go, and no container's ARP entry goes stale.
want_gw=$(printf '00:16:3e:%02x:%02x:%02x' $(echo "$gw" | cut -d. -f2- | tr . ' '))
[ "$mac_gw" = "$want_gw" ] && ok "the bridge has its own MAC $want_gw" ||
	not_ok "the bridge has its own MAC $want_gw (got $mac_gw)"
# What A's network looks like, for a failure's diagnostics.
show_a() {
	{
		echo "A: $(lxc-info -P "$lxcpath" -n "$a" -s 2>&1)"
		in_a ip -o address show dev eth0
		in_a ip route
		in_a ip neigh
		ip neigh show dev "$bridge"
		bridge fdb show br "$bridge" | grep -v permanent
		cat "/sys/class/net/$bridge/address"
		nft list set bridge "gbxt$GBX_ID" containers 2>&1 | grep -v '^table\|^}'
	} 2>&1 | diag
}

# B's container answers on B's port: the member's own key, its own hostname.
lands_in_b() { [ "$(client_ssh_container "$b" "$port_b" hostname 2>/dev/null)" = "gbxtest-$b" ]; }
neigh_of_b() { ip neigh show "$addr_b" dev "$bridge" | grep -o 'lladdr [0-9a-f:]*' | cut -d' ' -f2; }

check "B's port lands in B before any attack" lands_in_b
[ "$(neigh_of_b)" = "$mac_b" ] && ok "the host's neighbour entry of $addr_b is B's MAC" ||
	not_ok "the host's neighbour entry of $addr_b is B's MAC (got '$(neigh_of_b)')"

# ---- ARP: A takes B's address and tells the bridge ------------------------------------
check "A adds B's address to its eth0" in_a ip address add "$addr_b/$prefix" dev eth0
in_a python3 "$spoof" -n 3 arp eth0 "$mac_a" "$mac_a" "$addr_b" "$addr_b"   # gratuitous
in_a python3 "$spoof" -n 3 arp eth0 "$mac_a" "$mac_a" "$addr_b" "$gw"       # who has gw, tell B
# nsenter itself, not the function: $! is then the sender's own pid.
nsenter -t "$pid_a" -n python3 "$spoof" -n 50 arp eth0 "$mac_a" "$mac_a" "$addr_b" "$gw" &
attack=$!
sleep 1
[ "$(neigh_of_b)" = "$mac_b" ] && ok "after A's ARP claims, $addr_b still points at B's MAC" ||
	not_ok "after A's ARP claims, $addr_b still points at B's MAC (got '$(neigh_of_b)')"
lands_in_b && ok "during A's ARP claims, B's port still lands in B" ||
	not_ok "during A's ARP claims, B's port still lands in B"
stop_pid "$attack"
attack=
in_a ip address del "$addr_b/$prefix" dev eth0
# Whatever the attack left (flush leaves permanent entries alone).
ip neigh flush to "$addr_b" dev "$bridge" 2>/dev/null

# ---- Layer 2: frames from A with B's MAC as their source --------------------------------
nsenter -t "$pid_a" -n python3 "$spoof" -n 50 udp eth0 "$mac_b" "$mac_gw" "$addr_a" "$gw" 9 forged-mac &
attack=$!
sleep 1
fdb=$(bridge fdb show br "$bridge" | grep -i "^$mac_b " | grep -v permanent)
echo "$fdb" | grep -qw "dev $veth_a" && { not_ok "the bridge does not learn B's MAC on A's port"; echo "$fdb" | diag; } ||
	ok "the bridge does not learn B's MAC on A's port"
lands_in_b && ok "during A's frames with B's MAC, B's port still lands in B" ||
	not_ok "during A's frames with B's MAC, B's port still lands in B"
stop_pid "$attack"
attack=

# ---- IPv4 and IPv6 that the host would receive ----------------------------------------
udp_port=$((GBX_FWD_LAST - 1))
ready=$GBX_DIR/spoof-ready.$$
rm -f "$ready"
python3 "$spoof" listen "$udp_port" 6 "$ready" >"$GBX_DIR/spoof-heard.$$" &
listener=$!
wait_for 5 test -e "$ready"
in_a python3 "$spoof" udp eth0 "$mac_a" "$mac_gw" "$addr_a" "$gw" "$udp_port" own
in_a python3 "$spoof" udp eth0 "$mac_a" "$mac_gw" "$addr_b" "$gw" "$udp_port" spoofed-ip
in_a python3 "$spoof" udp eth0 "$mac_a" "$mac_gw" 0.0.0.0 "$gw" "$udp_port" zero-ip
bridge_ll=$(ip -6 -o address show dev "$bridge" scope link | awk '{print $4}' | cut -d/ -f1)
[ -n "$bridge_ll" ] && in_a python3 "$spoof" udp6 eth0 "$bridge_ll" "$udp_port" ipv6
ra_prefix=2001:db8:${GBX_ID:0:4}:1
in_a python3 "$spoof" -n 3 ra eth0 "$mac_a" "$ra_prefix"
wait "$listener"
listener=
heard=$(cat "$GBX_DIR/spoof-heard.$$")
rm -f "$ready" "$GBX_DIR/spoof-heard.$$"
grep -qx "$addr_a own" <<<"$heard" && ok "the host hears A's own address" ||
	{ not_ok "the host hears A's own address"; echo "$heard" | diag; }
grep -q spoofed-ip <<<"$heard" && { not_ok "the host never hears A's packet from B's address"; echo "$heard" | diag; } ||
	ok "the host never hears A's packet from B's address"
grep -q zero-ip <<<"$heard" && { not_ok "the host never hears A's packet from 0.0.0.0"; echo "$heard" | diag; } ||
	ok "the host never hears A's packet from 0.0.0.0"
if [ -n "$bridge_ll" ]; then
	grep -q ipv6 <<<"$heard" && { not_ok "no IPv6 from a container reaches the host"; echo "$heard" | diag; } ||
		ok "no IPv6 from a container reaches the host"
fi
ip -6 address show dev "$bridge" | grep -q "$ra_prefix" &&
	{ not_ok "A's router advertisement gives the host no address"; ip -6 address show dev "$bridge" | diag; } ||
	ok "A's router advertisement gives the host no address"

# ---- everything the members do still works --------------------------------------------
check "B's port lands in B after the attacks" lands_in_b
[ "$(neigh_of_b)" = "$mac_b" ] && ok "in the end $addr_b still points at B's MAC" ||
	not_ok "in the end $addr_b still points at B's MAC (got '$(neigh_of_b)')"
[ "$(client_ssh_container "$a" "$port_a" hostname 2>/dev/null)" = "gbxtest-$a" ] &&
	ok "A's own port lands in A" || { not_ok "A's own port lands in A"; show_a; }
# Outbound through the gateway (masqueraded): to a listener on the client host.
client=${GBX_HOST_IP%.1}.2
ip netns exec "$GBX_CLIENT_NS" timeout 10 nc -l "$udp_port" >"$GBX_DIR/spoof-out.$$" &
listener=$!
sleep 0.5
in_a timeout 5 bash -c "echo from-a >/dev/tcp/$client/$udp_port"
wait "$listener"
listener=
grep -qx from-a "$GBX_DIR/spoof-out.$$" && ok "A reaches a host outside through the gateway" ||
	{ not_ok "A reaches a host outside through the gateway"; show_a; }
rm -f "$GBX_DIR/spoof-out.$$"
# DNS through the resolvers the container was given, where the host has any.
name=$(mirror_name)
if [ -n "$name" ] && getent hosts "$name" >/dev/null 2>&1; then
	check "A resolves $name (the host's apt mirror)" lxc_attach "$a" getent hosts "$name"
else
	ok "A resolves names (skipped: this host resolves no apt mirror's name)"
fi
done_testing
