#!/bin/bash
# A member starts their container through their host login, then logs in
# to it over SSH from another host through the forwarded port.
. "$(dirname "$0")/lib.sh"

m=la$GBX_ID
trap 'remove_member $m' EXIT
check "admin adds member $m" add_member "$m"

out=$(client_ssh_manage "$m" start 2>&1)
rc=$?
[ $rc = 0 ] && ok "ssh $m@server start succeeds" || { not_ok "ssh $m@server start succeeds (exit $rc)"; echo "$out" | diag; }
port=$(member_field "$m" ssh_port)
echo "$out" | grep -q -- "-p $port $m@$GBX_HOST_IP" && ok "start prints how to log in" ||
	{ not_ok "start prints how to log in"; echo "$out" | diag; }

out=$(client_ssh_container "$m" "$port" 'echo "conn=$SSH_CONNECTION"; hostname; id -un; sudo -n true && echo sudo-ok' 2>&1)
echo "$out" | diag
echo "$out" | grep -q "^conn=10.214.[0-9]*.2 " && ok "the container's sshd sees the client's real address" ||
	not_ok "the container's sshd sees the client's real address"
echo "$out" | grep -qx "gbxtest-$m" && ok "the hostname is <server>-<member>" || not_ok "the hostname is <server>-<member>"
echo "$out" | grep -qx "$m" && ok "the login is the member's own account" || not_ok "the login is the member's own account"
echo "$out" | grep -qx "sudo-ok" && ok "the member has passwordless sudo" || not_ok "the member has passwordless sudo"

out=$(client_ssh_container "$m" "$port" 'cat /proc/self/uid_map' 2>&1)
base=$(gpubox admin user ls --json | jq -r ".users[] | select(.name == \"$m\") | .subid_base")
echo "$out" | awk '{print $1, $2, $3}' | grep -qx "0 $base 65536" &&
	ok "the container is unprivileged: root is host id $base" || { not_ok "the container is unprivileged"; echo "$out" | diag; }

refuse "the host login refuses a shell command" 2 'refused' client_ssh_manage "$m" 'id; cat /etc/shadow'
out=$(client_ssh_manage "$m" status 2>&1)
echo "$out" | grep -q running && ok "ssh $m@server status says running" || { not_ok "status says running"; echo "$out" | diag; }
refuse "the host login forwards no ports" 255 'prohibited|open failed|forwarding failed' \
	ip netns exec "$GBX_CLIENT_NS" ssh "${SSH_OPTS[@]}" -i "$GBX_DIR/keys-client/$m" \
	-p "$GBX_SSHD_PORT" -W 127.0.0.1:22 "$m@$GBX_HOST_IP"

# The shipped sshd configuration on a host that offers SFTP in process
# (Subsystem sftp internal-sftp, which needs no shell): no SFTP, no
# subsystem, for a member.
sftp_as() { # NAME sftp-or-ssh arguments...
	local name=$1 prog=$2
	shift 2
	ip netns exec "$GBX_CLIENT_NS" timeout 20 "$prog" "${SSH_OPTS[@]}" -i "$GBX_DIR/keys-client/$name" "$@"
}
out=$(echo "ls /" | sftp_as "$m" sftp -b - -P "$GBX_SSHD_PORT" "$m@$GBX_HOST_IP" 2>&1)
rc=$?
if [ $rc != 0 ] && ! echo "$out" | grep -q "^sftp> ls"; then
	ok "sftp to the host is refused"
else
	not_ok "sftp to the host is refused (exit $rc)"; echo "$out" | diag
fi
# The subsystem's name reaches gpubox, which refuses it (exit 2; sshd
# keeps a subsystem's standard error for itself); SFTP would end with 0.
out=$(sftp_as "$m" ssh -p "$GBX_SSHD_PORT" -s "$m@$GBX_HOST_IP" sftp </dev/null 2>&1)
rc=$?
[ $rc = 2 ] && ok "ssh -s sftp to the host runs no subsystem" ||
	{ not_ok "ssh -s sftp to the host runs no subsystem (exit $rc)"; echo "$out" | diag; }
/usr/sbin/sshd -t -f "$GBX_DIR/sshd/sshd_config" &&
	/usr/sbin/sshd -T -f "$GBX_DIR/sshd/sshd_config" -C "user=$m,host=client,addr=$GBX_HOST_IP" |
	grep -qx "forcecommand gpubox" &&
	ok "the shipped sshd configuration forces the login shell on members" ||
	not_ok "the shipped sshd configuration forces the login shell on members"

# The login shell connects to the agent of its own configuration, never
# to the one an environment variable names: a socket that listens there
# must see no connection.
evil=$GBX_DIR/evil$GBX_ID
printf 'socket = %s.sock\n' "$evil" >"$evil.conf"
chmod 0644 "$evil.conf"
rm -f "$evil.sock" "$evil.hit"
python3 -c 'import os, socket, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o666); s.listen(4)
s.settimeout(8)
try:
    s.accept(); open(sys.argv[2], "w").write("connected\n")
except socket.timeout:
    pass' "$evil.sock" "$evil.hit" &
listener=$!
wait_for 5 test -S "$evil.sock"
member_env() { # command...: as the member, with GPUBOX_CONFIG naming the other socket
	setpriv --reuid="$m" --regid="$(id -g "$m")" --init-groups env GPUBOX_CONFIG="$evil.conf" "$@"
}
out=$(member_env "$GBX_BIN/gpubox-login" -c status 2>&1)
echo "$out" | grep -q running && ok "the login shell with GPUBOX_CONFIG set asks its own agent" ||
	{ not_ok "the login shell with GPUBOX_CONFIG set asks its own agent"; echo "$out" | diag; }
out=$(member_env "$GBX_BIN/gpubox" -c status 2>&1)
! echo "$out" | grep -q "$evil" && ok "gpubox -c ignores GPUBOX_CONFIG" ||
	{ not_ok "gpubox -c ignores GPUBOX_CONFIG"; echo "$out" | diag; }
wait "$listener"
[ ! -e "$evil.hit" ] && ok "nothing connected to the socket GPUBOX_CONFIG named" ||
	not_ok "nothing connected to the socket GPUBOX_CONFIG named"
rm -f "$evil.sock" "$evil.hit" "$evil.conf"

check "start again is idempotent" gpubox start --member "$m"
# One DNAT rule in prerouting (other hosts), one in output (the host itself).
[ "$(nft_rules | grep -c "dport $port ")" = 2 ] &&
	ok "the SSH forward is in the table, not duplicated" || { not_ok "one set of rules"; nft_rules | diag; }

check "stop" client_ssh_manage "$m" stop
[ "$(member_field "$m" state)" = stopped ] && ok "status says stopped" || not_ok "status says stopped"
nft_rules | grep -q "dport $port " && not_ok "stop removes the forward" || ok "stop removes the forward"
grep -q " $GBX_DIR/state/users/$m/rootfs " /proc/self/mounts && not_ok "stop unmounts the files" ||
	ok "stop unmounts the files"
done_testing
