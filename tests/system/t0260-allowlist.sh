#!/bin/bash
# Allow-lists on forwards: two client hosts, each in its own network
# namespace, one inside the list and one outside.  The inside one reaches
# the forwarded server and the container's SSH, the outside one does not;
# a connection already open from a source the list drops gets nothing
# more through; --from any opens the port again; the server's default
# (forward_default_from) holds for ports without a list; bad networks are
# refused with nothing changed.  And a server listening on 127.0.0.1
# inside the container is not reachable through any forward, even with
# route_localnet set inside.
#
# Only IPv4 is tried end to end: the containers have no IPv6 (the bridge
# table drops it).  IPv6 networks are checked, kept and written into the
# agent's ip6 table, which is looked at.
. "$(dirname "$0")/lib.sh"

m=al$GBX_ID
o=ao$GBX_ID
# The second client host: its own namespace and veth pair, on a /30 of
# the suite's own client network that no other suite uses.
out_ns=gbxo$GBX_ID
out_link=gbxo$GBX_ID
net=$(echo "$GBX_HOST_IP" | cut -d. -f1-3)
in_ip=$net.2
out_gw=$net.5
out_ip=$net.6
session_pid=
cleanup() {
	[ -n "$session_pid" ] && kill "$session_pid" 2>/dev/null
	restore_config t0260
	remove_member "$m"
	remove_member "$o"
	ip netns del "$out_ns" 2>/dev/null
	ip link del "$out_link" 2>/dev/null
}
trap cleanup EXIT

ip netns add "$out_ns" &&
	ip link add "$out_link" type veth peer name eth0 netns "$out_ns" &&
	ip addr add "$out_gw/30" dev "$out_link" && ip link set "$out_link" up &&
	ip -n "$out_ns" addr add "$out_ip/30" dev eth0 && ip -n "$out_ns" link set eth0 up &&
	ip -n "$out_ns" link set lo up && ip -n "$out_ns" route add default via "$out_gw" &&
	ok "a second client host $out_ip beside $in_ip" || not_ok "the second client host"

check "member $m added" add_member "$m"
check "member $o added" add_member "$o"
check "$m starts" gpubox start --member "$m"
ssh_port=$(member_field "$m" ssh_port)

# The first line a server answers from the client host in namespace NS
# through host port PORT; empty when nothing answers.
banner_from() { # NS PORT
	ip netns exec "$1" timeout 6 nc -w 3 "$GBX_HOST_IP" "$2" </dev/null 2>/dev/null | head -1
}
reaches() { # NS PORT: an SSH banner comes back
	case "$(banner_from "$1" "$2")" in SSH-*) return 0 ;; *) return 1 ;; esac
}
# A login into the container from the client host in NS.
login_from() { # NS
	ip netns exec "$1" ssh "${SSH_OPTS[@]}" -o ConnectTimeout=5 -i "$GBX_DIR/keys-client/$m" \
		-p "$ssh_port" "$m@$GBX_HOST_IP" true
}
rules() { nft list table ip "gbxt$GBX_ID"; nft list table ip6 "gbxt$GBX_ID"; }

# ---- the baseline: no list, both reach ---------------------------------------
check "a server listens on 2222 inside" client_ssh_container "$m" "$ssh_port" 'sudo /usr/sbin/sshd -p 2222'
out=$(as_user "$m" port add 2222 --json)
hp=$(echo "$out" | jq -r .host_port)
echo "$out" | jq_check '.from == ["any"] and .from_default == true' >/dev/null &&
	ok "a forward without --from takes the server's default, any" || { not_ok "port add without --from"; echo "$out" | diag; }
reaches "$GBX_CLIENT_NS" "$hp" && ok "without a list the inside host reaches port $hp" || not_ok "baseline: inside host"
reaches "$out_ns" "$hp" && ok "without a list the outside host reaches port $hp" || not_ok "baseline: outside host"

# ---- bad lists change nothing ---------------------------------------------------
before_ls=$(as_user "$m" port ls --json)
before_rules=$(rules)
refuse "300.1.1.1/8 is refused" 2 '"300.1.1.1/8" is not a network: "300.1.1.1" is not an IPv4 or IPv6 address' \
	as_user "$m" port set 2222 --from 300.1.1.1/8
refuse "10.0.0.0/33 is refused" 2 '"10.0.0.0/33": an IPv4 prefix length is a number from 0 to 32' \
	as_user "$m" port set 2222 --from 10.0.0.0/33
refuse "::1/129 is refused" 2 '"::1/129": an IPv6 prefix length is a number from 0 to 128' \
	as_user "$m" port set 2222 --from ::1/129
refuse "an empty list is refused" 2 'the list of networks is empty' as_user "$m" port set 2222 --from ''
refuse "a list of commas is refused" 2 'the list of networks is empty' as_user "$m" port set 2222 --from ,,
refuse "host bits set are refused with the network meant" 2 'did you mean 10.0.0.0/8\?' \
	as_user "$m" port set ssh --from 10.0.0.5/8
refuse "any among networks is refused" 2 '"any" stands alone' as_user "$m" port set ssh --from "any,$in_ip"
refuse "33 networks are refused" 2 'at most 32 networks' \
	as_user "$m" port set 2222 --from "$(seq -s, -f '10.9.%g.0/24' 0 32)"
refuse "a bad list on port add is refused" 2 'is not a network' as_user "$m" port add 2223 --from 300.1.1.1/8
refuse "the same through the login shell" 2 'prefix length' client_ssh_manage "$m" port set 2222 --from 10.0.0.0/33
[ "$(as_user "$m" port ls --json)" = "$before_ls" ] && ok "the refused lists left the forwards as they were" ||
	not_ok "a refused list changed the forwards"
[ "$(rules)" = "$before_rules" ] && ok "the refused lists left the rules as they were" ||
	not_ok "a refused list changed the rules"
refuse "another member cannot set $m's list" 1 'only on your own' as_user "$o" port set ssh --from any --member "$m"

# ---- a list: inside reaches, outside does not -------------------------------------
check "port set 2222 --from $in_ip (and an IPv6 network)" as_user "$m" port set 2222 --from "$in_ip,2001:db8::/32"
reaches "$GBX_CLIENT_NS" "$hp" && ok "the inside host reaches the forwarded server" || not_ok "inside host to the forward"
reaches "$out_ns" "$hp" && not_ok "the outside host reached the forwarded server" ||
	ok "the outside host does not reach the forwarded server"
check "port set ssh --from $in_ip/32 through the login shell" client_ssh_manage "$m" port set ssh --from "$in_ip/32"
check "the inside host logs into the container" login_from "$GBX_CLIENT_NS"
login_from "$out_ns" 2>/dev/null && not_ok "the outside host logged into the container" ||
	ok "the outside host cannot log into the container"
check "the manage login is not limited by the list" client_ssh_manage "$m" status
ls_json=$(as_user "$m" port ls --json)
echo "$ls_json" | jq_check --arg ip "$in_ip" '.ssh_from == [$ip] and .ssh_from_default == false and
	(.forwards[] | select(.container_port == 2222) | .from == [$ip, "2001:db8::/32"])' >/dev/null &&
	ok "port ls --json shows both lists" || { not_ok "port ls --json shows the lists"; echo "$ls_json" | diag; }
as_user "$m" port ls | grep -E "^22 \(ssh\) +$ssh_port +$in_ip\$" >/dev/null &&
	as_user "$m" port ls | grep -E "^2222 +$hp +$in_ip, 2001:db8::/32\$" >/dev/null &&
	ok "port ls shows them" || { not_ok "port ls shows the lists"; as_user "$m" port ls | diag; }
gpubox status --member "$m" | grep -q "^SSH from:  from $in_ip" && ok "status shows the SSH port's list" ||
	{ not_ok "status shows the SSH port's list"; gpubox status --member "$m" | diag; }
nft list table ip6 "gbxt$GBX_ID" | grep -q "$hp . 2001:db8::/32" &&
	ok "the IPv6 network is in the ip6 table's set" || { not_ok "the ip6 table"; nft list table ip6 "gbxt$GBX_ID" | diag; }
nft list table ip "gbxt$GBX_ID" | grep -q "$hp . $in_ip" && ok "the IPv4 network is in the ip table's set" ||
	not_ok "the ip table's set"
nft list table ip "gbxt$GBX_ID" | grep -Eq 'allowed_from counter packets [1-9]' &&
	ok "the refused packets are counted" || not_ok "the refused packets are counted"

# ---- a connection already open is cut when the list drops its source -----------------
coproc session { exec ip netns exec "$GBX_CLIENT_NS" ssh "${SSH_OPTS[@]}" -i "$GBX_DIR/keys-client/$m" \
	-p "$ssh_port" "$m@$GBX_HOST_IP" cat 2>/dev/null; }
session_pid=$session_PID
echo one >&"${session[1]}"
line=
read -t 10 -r line <&"${session[0]}"
[ "$line" = one ] && ok "an open session from the inside host echoes" || not_ok "the open session echoes (got '$line')"
check "port set ssh --from $out_ip" as_user "$m" port set ssh --from "$out_ip"
echo two >&"${session[1]}" 2>/dev/null
line=
read -t 5 -r line <&"${session[0]}"
[ -z "$line" ] && ok "the open session from a source no longer in the list gets nothing through" ||
	not_ok "the open session still echoes after its source left the list (got '$line')"
kill "$session_pid" 2>/dev/null
session_pid=
check "the outside host now logs in" login_from "$out_ns"
login_from "$GBX_CLIENT_NS" 2>/dev/null && not_ok "the inside host still logs in" ||
	ok "the inside host no longer logs in"

# ---- --from any opens it again --------------------------------------------------
check "port set 2222 --from any" as_user "$m" port set 2222 --from any
reaches "$out_ns" "$hp" && ok "--from any: the outside host reaches the server again" || not_ok "--from any opens the port"
check "port set ssh --from default" as_user "$m" port set ssh --from default
check "the inside host logs in again" login_from "$GBX_CLIENT_NS"
as_user "$m" port ls --json | jq_check '.ssh_from == ["any"] and .ssh_from_default == true and
	(.forwards[0].from == ["any"]) and (.forwards[0].from_default == false)' >/dev/null &&
	ok "port ls tells any from the default" || { not_ok "port ls after any and default"; as_user "$m" port ls --json | diag; }

# ---- a server on 127.0.0.1 inside is not reachable through a forward ------------------
check "a server listens on 127.0.0.1:2224 inside only" client_ssh_container "$m" "$ssh_port" \
	'sudo /usr/sbin/sshd -p 2224 -o ListenAddress=127.0.0.1'
addr=$(member_field "$m" address)
inside_banner() { # ADDRESS: the banner of ADDRESS:2224 from inside the container
	lxc_attach "$m" timeout 3 bash -c "exec 3<>/dev/tcp/$1/2224 && head -1 <&3" 2>/dev/null
}
case "$(inside_banner 127.0.0.1)" in SSH-*) ok "inside, 127.0.0.1:2224 answers" ;; *) not_ok "inside, 127.0.0.1:2224 answers" ;; esac
[ -z "$(inside_banner "$addr")" ] && ok "inside, $addr:2224 does not" || not_ok "the server listens beyond 127.0.0.1"
lhp=$(as_user "$m" port add 2224 --json | jq -r .host_port)
[ -z "$(banner_from "$GBX_CLIENT_NS" "$lhp")" ] && ok "a forward does not reach a server on 127.0.0.1 inside" ||
	not_ok "a forward reached a server on 127.0.0.1 inside"
# The container's root may set route_localnet in its own namespace: the
# forward still goes to the container's own address, never 127.0.0.1.
lxc_attach "$m" sh -c 'for f in all default eth0; do echo 1 >/proc/sys/net/ipv4/conf/$f/route_localnet; done' 2>/dev/null ||
	nsenter -t "$(lxc-info -P "$GBX_DIR/state/lxc" -n "$m" -pH)" -n sh -c \
		'for f in all default eth0; do echo 1 >/proc/sys/net/ipv4/conf/$f/route_localnet; done'
[ "$(lxc_attach "$m" cat /proc/sys/net/ipv4/conf/eth0/route_localnet)" = 1 ] &&
	ok "route_localnet is 1 inside the container" || not_ok "route_localnet could not be set inside"
[ "$(cat /proc/sys/net/ipv4/conf/all/route_localnet)" = 0 ] && ok "the host's route_localnet stays 0" ||
	not_ok "the host's route_localnet is not 0"
[ -z "$(banner_from "$GBX_CLIENT_NS" "$lhp")" ] && ok "with route_localnet=1 inside, still no way through to 127.0.0.1" ||
	not_ok "with route_localnet=1 inside, a forward reached 127.0.0.1"
reaches "$GBX_CLIENT_NS" "$hp" && ok "while a server on all addresses is reached (the control)" ||
	not_ok "the control server is not reached"

# ---- a list goes with its forward -------------------------------------------------
check "port set 2222 --from $in_ip" as_user "$m" port set 2222 --from "$in_ip"
check "port rm 2222" as_user "$m" port rm 2222
out=$(as_user "$m" port add 2222 "$hp" --json)
echo "$out" | jq_check '.from == ["any"] and .from_default == true' >/dev/null &&
	reaches "$out_ns" "$hp" && ok "a port forwarded again starts without the removed forward's list" ||
	{ not_ok "the removed forward's list is gone"; echo "$out" | diag; }

# ---- the server's default: forward_default_from ---------------------------------------
check "the agent restarts with forward_default_from = $in_ip/32" \
	restart_with_config t0260 "forward_default_from = $in_ip/32"
reaches "$out_ns" "$hp" && not_ok "the default did not hold for a port without a list" ||
	ok "the default holds for a port without a list: the outside host is refused"
reaches "$GBX_CLIENT_NS" "$hp" && ok "... and the inside host reaches it" || not_ok "the default refused the inside host"
login_from "$out_ns" 2>/dev/null && not_ok "the default did not hold for the SSH port" ||
	ok "the default holds for the SSH port"
check "port set 2222 --from any overrides the default" as_user "$m" port set 2222 --from any
reaches "$out_ns" "$hp" && ok "the port's own any beats the default" || not_ok "the port's own any"
as_user "$m" port ls | grep -E "^22 \(ssh\) +$ssh_port +$in_ip \(default\)\$" >/dev/null &&
	ok "port ls marks the default" || { not_ok "port ls marks the default"; as_user "$m" port ls | diag; }
restore_config t0260
check "the inside host logs in after the default is gone" login_from "$GBX_CLIENT_NS"
login_from "$out_ns" && ok "so does the outside host" || not_ok "the outside host after the default"
{ cat "$GBX_CONF"; echo "forward_default_from = 10.0.0.0/33"; } >"$GBX_DIR/t0260-bad.conf"
refuse "the agent refuses a bad forward_default_from" 2 'forward_default_from: "10.0.0.0/33"' \
	"$GBX_BIN/gpuboxd" --print-config --config "$GBX_DIR/t0260-bad.conf"
done_testing
