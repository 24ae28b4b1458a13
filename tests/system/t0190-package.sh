#!/bin/bash
# The Debian packages and the systemd units: both packages built from this
# tree (make deb), lintian, their contents; installed into a throw-away
# root with dpkg --root, their maintainer scripts run chrootless with
# stand-ins for the commands that would change this machine (addgroup,
# add-shell, sshd, deb-systemd-helper, ...), which record what they were
# asked; removed and purged there (configuration goes, members' data
# stays).  systemd-analyze verify on the units; READY=1 from the agent and
# the hub over $NOTIFY_SOCKET; and gpubox admin doctor against the suite's
# agent.  Nothing is installed into /.
. "$(dirname "$0")/lib.sh"

src=$(cd "$(dirname "$0")/../.." && pwd)
work=$GBX_DIR/t0190
root=$work/root
stubs=$work/stubs
calls=$stubs/calls
listener_pid=
hub_pid=
notify_name=gbx-notify-$GBX_ID

cleanup_t0190() {
	[ -n "$listener_pid" ] && kill "$listener_pid" 2>/dev/null
	[ -n "$hub_pid" ] && kill "$hub_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup_t0190 EXIT
mkdir -p "$work"

# ---- build ------------------------------------------------------------------
# make check's run may have built them already (GBX_DEB_DIR); else here.
debs=${GBX_DEB_DIR:-$work/build}
if [ ! -f "$debs/gpubox_0.1.0_amd64.deb" ]; then
	start=$(date +%s)
	if make -C "$src" --no-print-directory deb DEB_BUILD="$debs" >"$work/build.log" 2>&1; then
		ok "make deb built both packages in $(($(date +%s) - start)) s"
	else
		not_ok "make deb"
		tail -30 "$work/build.log" | diag
	fi
fi
gpubox_deb=$(ls "$debs"/gpubox_*.deb 2>/dev/null)
hub_deb=$(ls "$debs"/gpubox-hub_*.deb 2>/dev/null)
[ -f "$gpubox_deb" ] && [ -f "$hub_deb" ] || { not_ok "no packages to test"; done_testing; exit; }

check "lintian: no error, no warning" lintian --fail-on error,warning "$debs"/gpubox_*.changes

# ---- contents ----------------------------------------------------------------
check "gpubox holds the agent, the CLI, the NVML interposer, the unit, the sshd drop-in and the man pages" \
	bash -c "c=\$(dpkg-deb -c '$gpubox_deb' | awk '{print \$6}'); for f in ./usr/sbin/gpuboxd ./usr/bin/gpubox \
		./usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/gpubox/libgpubox-nvml.so \
		./lib/systemd/system/gpuboxd.service ./etc/ssh/sshd_config.d/gpubox.conf ./etc/gpubox/gpubox.conf \
		./usr/share/man/man1/gpubox.1.gz ./usr/share/man/man8/gpuboxd.8.gz ./usr/share/man/man5/gpubox.conf.5.gz; do
		grep -qx \"\$f\" <<<\"\$c\" || { echo \"missing \$f\"; exit 1; }; done"
check "gpubox's configuration files are conffiles" \
	bash -c "dpkg-deb -f '$gpubox_deb' >/dev/null && dpkg-deb -I '$gpubox_deb' conffiles | sort | tr '\n' ' ' |
		grep -qx '/etc/gpubox/gpubox.conf /etc/ssh/sshd_config.d/gpubox.conf '"
check "gpubox-hub holds the hub, its unit, hub.conf (a conffile) and its man page" \
	bash -c "c=\$(dpkg-deb -c '$hub_deb' | awk '{print \$6}'); for f in ./usr/sbin/gpubox-hub \
		./lib/systemd/system/gpubox-hub.service ./etc/gpubox/hub.conf ./usr/share/man/man8/gpubox-hub.8.gz; do
		grep -qx \"\$f\" <<<\"\$c\" || { echo \"missing \$f\"; exit 1; }; done; dpkg-deb -I '$hub_deb' conffiles | grep -qx /etc/gpubox/hub.conf"

# ---- install into a throw-away root --------------------------------------------
# Stand-ins for what would change this machine; getent finds no group or
# user, so that the scripts create them.
mkdir -p "$stubs" "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/triggers"
touch "$root/var/lib/dpkg/status" "$root/var/lib/dpkg/available"
for c in addgroup adduser add-shell remove-shell sshd deb-systemd-helper deb-systemd-invoke systemctl invoke-rc.d getent; do
	printf '#!/bin/sh\necho "%s $*" >>"%s"\n' "$c" "$calls" >"$stubs/$c"
	chmod 0755 "$stubs/$c"
done
printf '#!/bin/sh\necho "getent $*" >>"%s"\nexit 2\n' "$calls" >"$stubs/getent"
# absent "what" PATTERN FILE: passes when no line of FILE matches.
absent() {
	if grep -Eq -- "$2" "$3"; then
		not_ok "$1"
		grep -E -- "$2" "$3" | diag
	else
		ok "$1"
	fi
}
in_root() { PATH=$stubs:$PATH dpkg --root="$root" --force-script-chrootless --force-depends --log=/dev/null "$@"; }

check "dpkg --root installs and configures both packages" in_root -i "$gpubox_deb" "$hub_deb"
check "postinst creates the groups gpubox and gpubox-admin" \
	bash -c "grep -qx 'addgroup --system --quiet gpubox' '$calls' && grep -qx 'addgroup --system --quiet gpubox-admin' '$calls'"
check "postinst lists the login shell /usr/bin/gpubox" grep -qx 'add-shell /usr/bin/gpubox' "$calls"
check "postinst creates the hub's system user" grep -q '^adduser --system --group .*gpubox-hub$' "$calls"
check "postinst enables both units" \
	bash -c "grep -qx 'deb-systemd-helper enable gpuboxd.service' '$calls' && grep -qx 'deb-systemd-helper enable gpubox-hub.service' '$calls'"
absent "postinst leaves this machine's sshd alone under dpkg --root" '^(sshd|invoke-rc.d|deb-systemd-invoke)' "$calls"

check "the packaged agent runs: gpuboxd --version" bash -c "'$root/usr/sbin/gpuboxd' --version | grep -qx 'gpuboxd 0.1.0'"
check "the packaged configuration is read as shipped, with the packaged login shell" \
	bash -c "'$root/usr/sbin/gpuboxd' --print-config --config '$root/etc/gpubox/gpubox.conf' | grep -qx 'member_shell = /usr/bin/gpubox'"
check "the packaged hub reads its packaged hub.conf" \
	bash -c "'$root/usr/sbin/gpubox-hub' --config '$root/etc/gpubox/hub.conf' --print-config | grep -qx 'state_dir = /var/lib/gpubox-hub'"
check "the hub's chart library is compiled in" grep -q 'uPlot' "$root/usr/sbin/gpubox-hub"

# ---- the units -------------------------------------------------------------------
# verify needs the programs at the units' paths and the man pages: the
# root's, by rewriting ExecStart and pointing MANPATH there.
for u in gpuboxd gpubox-hub; do
	sed "s#^ExecStart=/usr/sbin/#ExecStart=$root/usr/sbin/#" "$root/lib/systemd/system/$u.service" >"$work/$u.service"
done
check "systemd-analyze verify: both units clean" \
	bash -c "out=\$(MANPATH='$root/usr/share/man' systemd-analyze verify '$work/gpuboxd.service' '$work/gpubox-hub.service' 2>&1); echo \"\$out\"; [ -z \"\$out\" ]"
unit_has() { grep -qx "$2" "$root/lib/systemd/system/$1.service"; }
check "gpuboxd.service: Type=notify, KillMode=process, Delegate=yes, Restart=on-failure, OOMScoreAdjust=-900, RuntimeDirectory=gpubox" \
	bash -c "$(declare -f unit_has); root='$root'; unit_has gpuboxd Type=notify && unit_has gpuboxd KillMode=process &&
		unit_has gpuboxd Delegate=yes &&
		unit_has gpuboxd Restart=on-failure && unit_has gpuboxd OOMScoreAdjust=-900 && unit_has gpuboxd RuntimeDirectory=gpubox &&
		unit_has gpuboxd 'ExecStart=/usr/sbin/gpuboxd --foreground' &&
		unit_has gpuboxd 'After=network-online.target nftables.service lxcfs.service'"
check "gpubox-hub.service: its own user, Type=notify, sandboxed" \
	bash -c "$(declare -f unit_has); root='$root'; unit_has gpubox-hub User=gpubox-hub && unit_has gpubox-hub Type=notify &&
		unit_has gpubox-hub ProtectSystem=strict && unit_has gpubox-hub NoNewPrivileges=yes &&
		unit_has gpubox-hub PrivateTmp=yes && unit_has gpubox-hub StateDirectory=gpubox-hub && unit_has gpubox-hub CapabilityBoundingSet="
# The agent's OOM score from the unit and from the agent itself agree.
check "the unit's OOM score is the one the agent sets itself" \
	bash -c "grep -q 'AGENT_OOM_SCORE_ADJ \"-900\"' '$src/src/agent/main.c'"

# ---- READY=1 over $NOTIFY_SOCKET (Type=notify) -----------------------------------
# A datagram socket with an abstract name, as systemd gives; the first
# datagram received is written to a file.
listen_notify() {
	python3 - "$notify_name" "$1" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + sys.argv[1])
s.settimeout(60)
with open(sys.argv[2], "w") as f:
    while True:
        data = s.recv(4096).decode()
        f.write(data + "\n")
        f.flush()
        if "READY=1" in data:
            break
PY
	listener_pid=$!
	wait_for 5 grep -q "@$notify_name" /proc/net/unix
}

listen_notify "$work/agent.notify"
stop_pid "$(cat "$GBX_DIR/agent.pid")"
NOTIFY_SOCKET=@$notify_name restart_agent
if wait_for 20 grep -qx READY=1 "$work/agent.notify"; then
	ok "the agent says READY=1 on \$NOTIFY_SOCKET (an @abstract name)"
else
	not_ok "the agent says READY=1 on \$NOTIFY_SOCKET"
fi
check "... once its socket answers" gpubox version
wait "$listener_pid" 2>/dev/null
listener_pid=

hub_dir=$work/hub
mkdir -p "$hub_dir"
hub_port=$((GBX_METRICS_PORT + 7))
printf 'listen = 127.0.0.1:%s\nstate_dir = %s/state\nmonitor_poll = 0\n' "$hub_port" "$hub_dir" >"$hub_dir/hub.conf"
listen_notify "$work/hub.notify"
NOTIFY_SOCKET=@$notify_name "$GBX_BIN/gpubox-hub" --config "$hub_dir/hub.conf" --foreground >>"$hub_dir/hub.log" 2>&1 &
hub_pid=$!
if wait_for 20 grep -qx READY=1 "$work/hub.notify"; then
	ok "the hub says READY=1 on \$NOTIFY_SOCKET"
else
	not_ok "the hub says READY=1 on \$NOTIFY_SOCKET"
	tail -5 "$hub_dir/hub.log" | diag
fi
check "... once its port answers" curl -sf -o /dev/null "http://127.0.0.1:$hub_port/login"
kill "$hub_pid" 2>/dev/null
wait "$hub_pid" 2>/dev/null
hub_pid=

# ---- gpubox admin doctor against the suite's agent ---------------------------------
doctor_json=$(gpubox admin doctor --json)
doctor_rc=$?
printf '%s\n' "$doctor_json" | jq -r '.checks[] | "\(.status) \(.name): \(.detail)"' | diag
# What this machine has: the suite's agent made the bridge and the table,
# built the template, and runs as root on a 6.x kernel with LXC 5.
for c in kernel idmapped-mounts overlayfs user-namespaces lxc nftables bridge template; do
	check "doctor: $c passes here" jq_check -e --arg c "$c" '.checks[] | select(.name == $c) | .status == "ok"' <<<"$doctor_json"
done
check "doctor: no GPU and no hub are notes, not failures" \
	jq_check -e '[.checks[] | select(.name == "hub" or .name == "clock") | .status] == ["note", "note"]' <<<"$doctor_json"
failures=$(jq -r '[.checks[] | select(.status == "fail")] | length' <<<"$doctor_json")
if { [ "$failures" = 0 ] && [ "$doctor_rc" = 0 ]; } || { [ "$failures" != 0 ] && [ "$doctor_rc" = 1 ]; }; then
	ok "doctor: its exit status ($doctor_rc) follows its checks ($failures failed)"
else
	not_ok "doctor: exit status $doctor_rc with $failures failed checks"
fi
# A failure, its advice and the exit status: the agent's table gone (as
# nftables.service's flush ruleset would do), then put back.  The bridge
# table alone first: without it a container may spoof its neighbours.
nft delete table bridge "gbxt$GBX_ID"
refuse "doctor: a missing bridge table fails, naming what is lost" 1 'FAIL +nftables .*table bridge .*anti-spoofing' gpubox admin doctor
nft delete table ip "gbxt$GBX_ID"
refuse "doctor: a missing nftables table fails, with what to do" 1 'FAIL +nftables .*missing' gpubox admin doctor
refuse "doctor: ... and says to restart the agent" 1 '-> systemctl restart gpuboxd' gpubox admin doctor
stop_pid "$(cat "$GBX_DIR/agent.pid")"
restart_agent
check "doctor: the table is back after the agent's restart" \
	bash -c "gpubox admin doctor --json | jq -e '.checks[] | select(.name == \"nftables\") | .status == \"ok\"'"
refuse "doctor: refused to a non-admin" 1 'admin command' setpriv --reuid=65534 --regid=65534 --clear-groups "$GBX_BIN/gpubox" --config "$GBX_CONF" admin doctor
refuse "doctor: takes no argument" 2 'usage' gpubox admin doctor extra

# ---- an upgrade while members' containers run ------------------------------------
# Two members' containers run, an SSH session into one and a forward to
# it answer; the installed package's agent (the throw-away root's) runs
# the suite's state.  A package of a higher version is built from this
# tree and installed over it; then what systemd does on the postinst's
# restart with KillMode=process: TERM to the agent alone, the new
# program started.  (The maintainer scripts call deb-systemd-invoke only
# where systemd runs, so their part is read from their text.)
up_version=0.1.0+up1
ua=ua$GBX_ID
ub=ub$GBX_ID
session=
cleanup_upgrade() {
	[ -n "$session" ] && kill "$session" 2>/dev/null
	remove_member "$ua"
	remove_member "$ub"
	cleanup_t0190
}
trap cleanup_upgrade EXIT
agent_running() { [ -e "/proc/$(cat "$GBX_DIR/agent.pid")/exe" ]; }
agent_exe() { readlink "/proc/$(cat "$GBX_DIR/agent.pid")/exe"; }
# admin ls without what moves by itself.
ls_state() { gpubox admin ls --json | jq -S '[.containers[] | {member, state, address, ssh_port, uid, forwards}]'; }
forward_answers() { ip netns exec "$GBX_CLIENT_NS" timeout 5 nc -w 3 "$GBX_HOST_IP" "$fwd" </dev/null | head -1 | grep -q '^SSH-2.0'; }
session_lines() { wc -l <"$work/session.out"; }
both_run() { [ "$(gpubox admin ls --json | jq -r "[.containers[] | select(.member == \"$ua\" or .member == \"$ub\") | .state] | join(\" \")")" = "running running" ]; }

add_member "$ua" && add_member "$ub"
check "$ua's container starts" as_user "$ua" start
check "$ub's container starts" as_user "$ub" start
fwd=$(as_user "$ua" port add 2222 --json | jq -r .host_port)
port_ua=$(member_field "$ua" ssh_port)
check "a server listens on $ua's forwarded port 2222" client_ssh_container "$ua" "$port_ua" 'sudo /usr/sbin/sshd -p 2222'
# A session that prints a line twice a second for as long as it lives.
ip netns exec "$GBX_CLIENT_NS" ssh "${SSH_OPTS[@]}" -i "$GBX_DIR/keys-client/$ua" -p "$port_ua" "$ua@$GBX_HOST_IP" \
	'while sleep 0.5; do date +%s; done' >"$work/session.out" 2>&1 &
session=$!
wait_for 10 test -s "$work/session.out"
stop_pid "$(cat "$GBX_DIR/agent.pid")"
check "the installed package's agent takes over the running containers" restart_agent "$root/usr/sbin/gpuboxd"
check "... it is the package's program" bash -c "[ '$(agent_exe)' = '$root/usr/sbin/gpuboxd' ]"
check "the forward answers before the upgrade" forward_answers
ls_state >"$work/ls-before.json"

start=$(date +%s)
if make -C "$src" --no-print-directory deb DEB_BUILD="$work/build-up" DEB_VERSION="$up_version" >"$work/build-up.log" 2>&1; then
	ok "make deb DEB_VERSION=$up_version built both packages in $(($(date +%s) - start)) s"
else
	not_ok "make deb DEB_VERSION=$up_version"
	tail -30 "$work/build-up.log" | diag
fi
old_agent=$(cat "$GBX_DIR/agent.pid")
check "dpkg -i upgrades both packages while the containers run" \
	in_root -i "$work/build-up/gpubox_${up_version}_amd64.deb" "$work/build-up/gpubox-hub_${up_version}_amd64.deb"
check "... to $up_version" bash -c "dpkg-query --admindir='$root/var/lib/dpkg' -W -f '\${Version}' gpubox | grep -qx '$up_version'"
check "... replacing the running agent's program under it" bash -c "readlink /proc/$old_agent/exe | grep -q '(deleted)'"
dpkg-deb -e "$work/build-up/gpubox_${up_version}_amd64.deb" "$work/control-up"
check "prerm stops the agent on remove only, never for an upgrade" \
	bash -c "grep -B2 \"deb-systemd-invoke stop 'gpuboxd.service'\" '$work/control-up/prerm' | grep -q '\"\$1\" = remove'"
check "postinst restarts the agent after an upgrade" grep -q '_dh_action=restart' "$work/control-up/postinst"
check "both containers run on after dpkg" both_run
lines=$(session_lines)
kill -TERM "$old_agent"
wait_for 20 bash -c "! kill -0 $old_agent"
check "the upgraded agent starts on the same state" restart_agent "$root/usr/sbin/gpuboxd"
check "... and it is the new program" bash -c "[ '$(agent_exe)' = '$root/usr/sbin/gpuboxd' ]"
check "both containers still run" both_run
ls_state >"$work/ls-after.json"
check "gpubox admin ls is unchanged" diff "$work/ls-before.json" "$work/ls-after.json"
check "the forward still answers" forward_answers
check "the SSH session lived through the upgrade" wait_for 5 bash -c "kill -0 $session && [ \$(wc -l <'$work/session.out') -gt $((lines + 2)) ]"

# ---- a downgrade over a newer state ---------------------------------------------------
# What a later gpubox would leave: a state.db of a newer schema.  This
# agent refuses to start on it, says why, and no container stops.
stop_pid "$(cat "$GBX_DIR/agent.pid")"
state_db=$GBX_DIR/state/state.db
schema=$(sqlite3 "$state_db" 'PRAGMA user_version')
check "state.db carries its schema version ($schema)" test "$schema" -ge 1
sqlite3 "$state_db" "PRAGMA user_version = $((schema + 1))"
refuse "an agent refuses a state.db newer than it knows, and says what to do" 1 \
	"schema version $((schema + 1)), newer than the $schema this program knows.*install that version again" \
	timeout 20 "$root/usr/sbin/gpuboxd" --foreground --config "$GBX_CONF"
check "... and the containers run on" bash -c "lxc-info -P '$GBX_DIR/state/lxc' -n '$ua' -s | grep -q RUNNING && lxc-info -P '$GBX_DIR/state/lxc' -n '$ub' -s | grep -q RUNNING"
sqlite3 "$state_db" "PRAGMA user_version = $schema"
check "the suite's agent takes over again" restart_agent
kill "$session" 2>/dev/null
session=
remove_member "$ua"
remove_member "$ub"

# ---- remove and purge in the throw-away root ----------------------------------------
mkdir -p "$root/var/lib/gpubox/users/alice/layer/upper/home" "$root/var/lib/gpubox-hub" "$root/etc/gpubox/authorized_keys"
echo work >"$root/var/lib/gpubox/users/alice/layer/upper/home/notes"
echo db >"$root/var/lib/gpubox-hub/hub.db"
echo 'ssh-ed25519 AAAA alice' >"$root/etc/gpubox/authorized_keys/alice"
echo secret >"$root/etc/gpubox/hub.token"
: >"$calls"
in_root -r gpubox gpubox-hub >"$work/remove.out" 2>&1
check "dpkg -r removes the programs" bash -c "[ ! -e '$root/usr/sbin/gpuboxd' ] && [ ! -e '$root/usr/bin/gpubox' ] && [ ! -e '$root/usr/sbin/gpubox-hub' ]"
check "... keeps the configuration" bash -c "[ -f '$root/etc/gpubox/gpubox.conf' ] && [ -f '$root/etc/gpubox/hub.conf' ] && [ -f '$root/etc/gpubox/hub.token' ]"
check "... unlists the login shell" grep -qx 'remove-shell /usr/bin/gpubox' "$calls"
in_root --purge gpubox gpubox-hub >"$work/purge.out" 2>&1
diag <"$work/purge.out"
check "dpkg --purge deletes the configuration" \
	bash -c "[ ! -e '$root/etc/gpubox' ] && [ ! -e '$root/etc/ssh/sshd_config.d/gpubox.conf' ]"
check "... never the members' data nor the hub's" \
	bash -c "[ \"\$(cat '$root/var/lib/gpubox/users/alice/layer/upper/home/notes')\" = work ] && [ \"\$(cat '$root/var/lib/gpubox-hub/hub.db')\" = db ]"
check "... and says where the data is" \
	bash -c "grep -q 'kept in /var/lib/gpubox;' '$work/purge.out' && grep -q 'kept in /var/lib/gpubox-hub' '$work/purge.out'"
absent "... and no group or user is deleted" 'delgroup|deluser|groupdel|userdel' "$calls"

done_testing
