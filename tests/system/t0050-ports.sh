#!/bin/bash
# port add forwards a host port to a server inside the container.
. "$(dirname "$0")/lib.sh"

m=pa$GBX_ID
trap 'remove_member $m' EXIT
check "member $m added" add_member "$m"
check "$m starts" gpubox start --member "$m"
port=$(member_field "$m" ssh_port)

out=$(as_user "$m" port add 2222 --json)
hp=$(echo "$out" | jq -r .host_port)
[ "$hp" -ge "$GBX_FWD_FIRST" ] 2>/dev/null && [ "$hp" -le "$GBX_FWD_LAST" ] && ok "port add 2222 gets host port $hp" ||
	{ not_ok "port add 2222 gets a host port"; echo "$out" | diag; }
as_user "$m" port ls | grep -w "$hp" | grep -qw 2222 && ok "port ls shows it" || not_ok "port ls shows it"
refuse "the same port twice is refused" 1 'already' as_user "$m" port add 2222

# A real server inside the container: a second sshd on port 2222.
check "a server listens on 2222 inside" client_ssh_container "$m" "$port" 'sudo /usr/sbin/sshd -p 2222'
banner=$(ip netns exec "$GBX_CLIENT_NS" timeout 5 nc -w 3 "$GBX_HOST_IP" "$hp" </dev/null | head -1)
case "$banner" in
SSH-*) ok "the client reaches it through host port $hp" ;;
*) not_ok "the client reaches it through host port $hp (got '$banner')" ;;
esac
check "port rm 2222" as_user "$m" port rm 2222
banner=$(ip netns exec "$GBX_CLIENT_NS" timeout 5 nc -w 3 "$GBX_HOST_IP" "$hp" </dev/null | head -1)
[ -z "$banner" ] && ok "after port rm the host port is closed" || not_ok "after port rm the host port is closed"
refuse "port rm of a port not forwarded" 1 'not forwarded' as_user "$m" port rm 2222
done_testing
