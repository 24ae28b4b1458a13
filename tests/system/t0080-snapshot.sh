#!/bin/bash
# Snapshots and restore: a member's own changes are saved and come back;
# names are per member; an agent killed in the middle of a snapshot or a
# restore loses nothing; crafted archives placed in the store are refused or
# sanitized (file capabilities, checksum, content size, recipe hash, a FIFO);
# a sparse file of 1 TiB keeps its holes; the quota and the disk reserve stop
# a snapshot as it is written;
# a snapshot restores under another agent (another server) where the member
# has other ids; rebuild --keep-home; a new
# template version, the update shown, rebuilt onto, the old one removed
# only once nothing uses it.
. "$(dirname "$0")/lib.sh"

m=sa$GBX_ID
o=sb$GBX_ID
dir2=$GBX_DIR/agent2
conf2=$dir2/gpubox.conf
snapdir=$GBX_DIR/state/snapshots
cleanup2() {
	if [ -S "$dir2/gpubox.sock" ]; then
		"$GBX_BIN/gpubox" --config "$conf2" admin user rm "$m" --purge --yes >/dev/null 2>&1
		[ -f "$dir2/agent.pid" ] && kill "$(cat "$dir2/agent.pid")" 2>/dev/null
	fi
	for c in "$dir2"/state/lxc/*/; do
		[ -d "$c" ] && lxc-stop -k -P "$dir2/state/lxc" -n "$(basename "$c")" 2>/dev/null
	done
	nft delete table ip "gbxu$GBX_ID" 2>/dev/null
	nft delete table ip6 "gbxu$GBX_ID" 2>/dev/null
	nft delete table bridge "gbxu$GBX_ID" 2>/dev/null
	ip link del "gbxu$GBX_ID" 2>/dev/null
	remove_member "$m"
	remove_member "$o"
}
trap cleanup2 EXIT
in_box() { client_ssh_container "$1" "$(member_field "$1" ssh_port)" "${@:2}"; }
upper=$GBX_DIR/state/layers/$m/upper

check "members $m and $o added" eval 'add_member "$m" && add_member "$o"'
refuse "no snapshot before the first start" 2 'never been started' as_user "$m" snapshot first
check "$m starts" as_user "$m" start
check "$m changes files" in_box "$m" \
	'echo one >~/file1 && sudo sh -c "echo etc >/etc/snapmark && rm /etc/motd && mkdir -p /opt/o && touch /opt/o/x" &&
	 echo aaa >~/forged && head -c 2000000 /dev/urandom >~/kept && sha256sum ~/kept >~/kept.sum'

# ---- snapshot, change, restore ------------------------------------------------
out=$(as_user "$m" snapshot snap1 2>&1)
rc=$?
echo "$out" | diag
[ $rc = 0 ] && echo "$out" | grep -q 'Snapshot: 100%' && ok "snapshot snap1, progress shown" || not_ok "snapshot snap1, progress shown"
[ -s "$snapdir/$m/snap1.tar.zst" ] && [ -s "$snapdir/$m/snap1.json" ] &&
	(cd "$snapdir/$m" && sha256sum -c --quiet snap1.sha256) &&
	ok "archive, manifest and checksum in the store" || not_ok "archive, manifest and checksum in the store"
jq -e --arg m "$m" '.member == $m and (.template | test("@")) and .size > 0 and (.sha256 | length) == 64' \
	"$snapdir/$m/snap1.json" >/dev/null && ok "the manifest names member, template, size, checksum" ||
	not_ok "the manifest names member, template, size, checksum"
tar --zstd -tvf "$snapdir/$m/snap1.tar.zst" 2>/dev/null | grep -q 'usr/bin/' && not_ok "only the member's layer is archived" ||
	ok "only the member's layer is archived"
[ "$(member_field "$m" state)" = running ] && ok "the container runs again after the snapshot" || not_ok "the container runs again after the snapshot"
check "snapshot ls lists it" eval 'as_user "$m" snapshot ls | grep -q "^snap1 "'
refuse "a second snapshot of the same name is refused" 1 'already' as_user "$m" snapshot snap1
check "a frozen snapshot" eval 'as_user "$m" snapshot snapf --freeze --json | jq_check ".frozen == true"'

# forged: the same size and modification time as in the snapshot, other
# bytes; a restore that trusted the times would keep it.
check "$m changes files after the snapshot" in_box "$m" \
	'echo two >~/file1 && touch ~/newfile && sudo rm /etc/snapmark &&
	 t=$(stat -c %Y ~/forged) && echo bbb >~/forged && touch -d @$t ~/forged'
refuse "restore asks for confirmation" 1 'not confirmed' as_user "$m" restore snap1 </dev/null
out=$(as_user "$m" restore snap1 --yes 2>&1)
rc=$?
echo "$out" | diag
[ $rc = 0 ] && ok "restore snap1 --yes" || not_ok "restore snap1 --yes"
echo "$out" | grep -Eq 'Restore: [0-9]+ files \([0-9]+ MB\) were unchanged and kept' &&
	ok "the files unchanged since the snapshot are kept, not written again" ||
	not_ok "the files unchanged since the snapshot are kept, not written again"
[ "$(in_box "$m" 'cat ~/forged; sha256sum -c --quiet ~/kept.sum && echo same')" = "aaa
same" ] && ok "a file changed under its old size and time is restored; a kept one is intact" ||
	not_ok "a file changed under its old size and time is restored; a kept one is intact"
out=$(in_box "$m" 'cat ~/file1; cat /etc/snapmark; ls ~/newfile /etc/motd 2>&1; ls /opt/o; stat -c %U ~/file1' 2>&1)
echo "$out" | diag
[ "$(echo "$out" | sed -n 1p)" = one ] && [ "$(echo "$out" | sed -n 2p)" = etc ] &&
	echo "$out" | grep -q "newfile.*No such" && echo "$out" | grep -q "motd.*No such" &&
	echo "$out" | grep -qx x && echo "$out" | grep -qx "$m" &&
	ok "the restored container has the snapshot's files, owners and deletions" ||
	not_ok "the restored container has the snapshot's files, owners and deletions"
ls "$GBX_DIR/state/layers/$m" | grep -Eq 'prev|restore' && not_ok "nothing left beside the layer" || ok "nothing left beside the layer"

# ---- names are the member's own ------------------------------------------------
refuse "another member cannot restore $m's snapshot" 1 'no snapshot named' as_user "$o" restore snap1 --yes
refuse "another member cannot remove it" 1 'no snapshot named' as_user "$o" snapshot rm snap1
refuse "nor name $m" 1 'only on your own' as_user "$o" restore snap1 --yes --member "$m"
refuse "a path is not a snapshot name" 2 'not a path|letters' as_user "$m" restore "../$o/snap1" --yes
refuse "an absolute path neither" 2 'not a path|letters' as_user "$m" restore /etc/passwd --yes
refuse "nor in the login shell" 2 'not a path|letters' client_ssh_manage "$m" restore ../x --yes
check "the login shell takes snapshot ls" eval 'client_ssh_manage "$m" snapshot ls | grep -q snap1'

# ---- crafted archives in the store (issue 13) -----------------------------------
# As an admin moving snapshots between servers would: archives and manifests
# placed in the member's store by root.  Each is snap1 with files appended.
base=$(gpubox admin user ls --json | jq -r --arg m "$m" '.users[] | select(.name == $m) | .subid_base')
craft=$GBX_DIR/craft
mkdir -p "$craft/stage"
zstd -dqf "$snapdir/$m/snap1.tar.zst" -o "$craft/snap1.tar"
printf '#!/bin/sh\ncat /etc/shadow\n' >"$craft/stage/gbxcap"
chmod 755 "$craft/stage/gbxcap"
mknod "$craft/stage/gbxnull" c 1 3
# The security.capability of a file: "v<revision> <rootid>", "v2 -" or "none".
caps_of() {
	python3 -c 'import os, struct, sys
try:
    v = os.getxattr(sys.argv[1], "security.capability", follow_symlinks=False)
except OSError:
    print("none"); sys.exit(0)
print("v%d" % (struct.unpack("<I", v[:4])[0] >> 24), struct.unpack("<I", v[20:24])[0] if len(v) == 24 else "-")' "$1"
}
# craft_archive NAME "SETCAP ARGS" FILE...: snap1 + the staged files, gbxcap
# with the capability given (host root writes it as given: v2 without -n).
craft_archive() {
	local name=$1 caps=$2
	shift 2
	cp "$craft/snap1.tar" "$craft/$name.tar" &&
	setcap -r "$craft/stage/gbxcap" 2>/dev/null
	# GNU tar's -r stores no xattrs: a second archive, concatenated.
	setcap $caps "$craft/stage/gbxcap" &&
	tar --xattrs --xattrs-include='security.capability' --owner=0 --group=0 --numeric-owner \
		-cf "$craft/add.tar" -C "$craft/stage" "$@" &&
	tar -Af "$craft/$name.tar" "$craft/add.tar" &&
	zstd -qf "$craft/$name.tar" -o "$snapdir/$m/$name.tar.zst"
}
# craft_manifest NAME JQ: snap1's manifest made true for the archive, then JQ.
craft_manifest() {
	local f=$snapdir/$m/$1.tar.zst
	jq --arg n "$1" --arg sha "$(sha256sum <"$f" | cut -d' ' -f1)" --argjson size "$(stat -c %s "$f")" \
		'.name = $n | .sha256 = $sha | .size = $size | .content_size += 64 | '"$2" \
		"$snapdir/$m/snap1.json" >"$snapdir/$m/$1.json"
}

check "an archive whose gbxcap has a v2 capability (valid on the host)" eval \
	'craft_archive evilv2 "cap_dac_read_search+ep" gbxcap && craft_manifest evilv2 . &&
	 [ "$(caps_of "$craft/stage/gbxcap")" = "v2 -" ]'
check "its restore is accepted" as_user "$m" restore evilv2 --yes
caps=$(caps_of "$upper/gbxcap")
echo "gbxcap in the layer on the host: $caps (the member's base: $base)" | diag
getcap -n "$upper/gbxcap" | diag
[ "$caps" = "v3 $base" ] && ok "gbxcap has a v3 capability of the container's root only, none valid on the host" ||
	not_ok "gbxcap has a v3 capability of the container's root only, none valid on the host"
check "the container runs with it" in_box "$m" 'test -x /gbxcap'

check "an archive whose gbxcap has a v3 capability of a foreign root id" eval \
	'craft_archive evilv3 "-n 70000 cap_dac_read_search+ep" gbxcap && craft_manifest evilv3 . &&
	 [ "$(caps_of "$craft/stage/gbxcap")" = "v3 70000" ]'
refuse "a capability for a root id outside the container is refused" 1 'outside the container' \
	as_user "$m" restore evilv3 --yes
[ "$(caps_of "$upper/gbxcap")" = "v3 $base" ] && ok "the layer is as it was" || not_ok "the layer is as it was"

# A wrong checksum and, after gbxcap, a device: extracted first, the device
# would be what is refused.
check "an archive with a wrong checksum in its manifest" eval \
	'craft_archive evilsum "cap_dac_read_search+ep" gbxcap gbxnull &&
	 craft_manifest evilsum ".sha256 = (\"0\" * 64)"'
python3 -c 'import os, sys; os.removexattr(sys.argv[1], "security.capability")' "$upper/gbxcap"
out=$(as_user "$m" restore evilsum --yes 2>&1)
rc=$?
echo "$out" | diag
[ $rc = 1 ] && echo "$out" | grep -q 'checksum does not match' && ! echo "$out" | grep -q 'device' &&
	ok "a wrong checksum is refused before any entry is extracted" ||
	not_ok "a wrong checksum is refused before any entry is extracted"
[ "$(caps_of "$upper/gbxcap")" = none ] && ! ls "$GBX_DIR/state/layers/$m" | grep -Eq 'prev|restore' &&
	ok "nothing of it reached the layer" || not_ok "nothing of it reached the layer"

check "a manifest without the template's recipe hash" eval \
	'craft_archive evilhash "cap_chown+ep" gbxcap && craft_manifest evilhash "del(.template_recipe_hash)"'
refuse "it is refused" 1 'template_recipe_hash' as_user "$m" restore evilhash --yes
check "a manifest whose content_size is less than the archive's files" eval \
	'craft_archive evilsize "cap_chown+ep" gbxcap && craft_manifest evilsize ".content_size = 10"'
refuse "it is refused" 1 'content_size' as_user "$m" restore evilsize --yes
check "a FIFO in place of an archive" eval 'cp "$snapdir/$m/evilv2.tar.zst" "$snapdir/$m/evilfifo.tar.zst" &&
	craft_manifest evilfifo . && rm "$snapdir/$m/evilfifo.tar.zst" && mkfifo "$snapdir/$m/evilfifo.tar.zst"'
start=$(date +%s)
refuse "it is refused" 1 'not a regular file' timeout 60 "$GBX_BIN/gpubox" restore evilfifo --yes --member "$m"
[ $(($(date +%s) - start)) -lt 30 ] && ok "at once" || not_ok "at once"
[ "$(member_field "$m" state)" = running ] && ok "$m's container runs after the refusals" ||
	not_ok "$m's container runs after the refusals"
rm -f "$snapdir/$m"/evil*
rm -rf "$craft"

# ---- a sparse file, the quota and the disk reserve -----------------------------
# 300 data regions of 4 KiB spread over 1 TiB of holes (GBX_SPARSE_SIZE, in
# 4 KiB blocks, makes it smaller): the snapshot keeps every region, the
# restore every hole.
blocks=${GBX_SPARSE_BLOCKS:-268435456}
step=$((blocks / 300))
check "$m makes a sparse file of $((blocks / 262144)) GiB with 300 data regions" in_box "$m" \
	"rm -f ~/sparse && for i in \$(seq 0 299); do
		dd if=/dev/urandom of=\$HOME/sparse bs=4096 count=1 seek=\$((i * $step)) conv=notrunc status=none || exit 1
	done && truncate -s $((blocks * 4096)) ~/sparse"
# Each region and the hole after it.
regions_sum="for i in \$(seq 0 299); do dd if=\$HOME/sparse bs=4096 count=2 skip=\$((i * $step)) status=none; done | sha256sum"
sum=$(in_box "$m" "$regions_sum")
t0=$(date +%s.%N)
check "snapshot of the sparse file" as_user "$m" snapshot snapsparse
t1=$(date +%s.%N)
check "$m removes it" in_box "$m" 'rm ~/sparse'
check "restore of the sparse file" as_user "$m" restore snapsparse --yes
t2=$(date +%s.%N)
read -r size blocks512 < <(stat -c '%s %b' "$upper/home/$m/sparse")
echo "sparse: $size bytes, $((blocks512 / 2)) KiB on disk; snapshot $(echo "$t1 - $t0" | bc) s ($(jq .size "$snapdir/$m/snapsparse.json") bytes), restore $(echo "$t2 - $t1" | bc) s" | diag
[ "$size" = $((blocks * 4096)) ] && [ "$blocks512" -lt 32768 ] &&
	ok "the restored file keeps its size and its holes (under 16 MB on disk)" ||
	not_ok "the restored file keeps its size and its holes (under 16 MB on disk)"
[ "$(in_box "$m" "$regions_sum")" = "$sum" ] && ok "every data region came back" || not_ok "every data region came back"
check "$m removes the sparse file and its snapshot" eval 'in_box "$m" "rm ~/sparse" && as_user "$m" snapshot rm snapsparse'

# The quota stops the write as it passes it: not the whole layer first.
cp "$GBX_CONF" "$GBX_DIR/gpubox.conf.before-limits"
used=$(as_user "$m" snapshot ls --json | jq .used)
check "$m writes 64 MB that do not compress" in_box "$m" 'head -c 64000000 /dev/urandom >~/noise'
echo "snapshot_quota = $((used + 8 * 1048576))" >>"$GBX_CONF"
kill "$(cat "$GBX_DIR/agent.pid")"
sleep 0.5
check "the agent restarts with a quota 8 MB above $m's use" restart_agent
out=$(as_user "$m" snapshot snapq 2>&1)
rc=$?
echo "$out" | tail -3 | diag
[ $rc = 1 ] && echo "$out" | grep -q 'over your snapshot quota' && ! echo "$out" | grep -q 'Snapshot: 100%' &&
	ok "a snapshot past the quota is stopped while it is written" ||
	not_ok "a snapshot past the quota is stopped while it is written"
ls "$snapdir/$m" | grep -Eq 'snapq|tmp' && { not_ok "nothing of it is left in the store"; ls -l "$snapdir/$m" | diag; } ||
	ok "nothing of it is left in the store"
[ "$(member_field "$m" state)" = running ] && ok "$m's container runs again" || not_ok "$m's container runs again"

# A disk whose free space is under disk_reserve takes no snapshot and no restore.
cp "$GBX_DIR/gpubox.conf.before-limits" "$GBX_CONF"
echo "disk_reserve = $(($(stat -f -c '%a * %S' "$snapdir") + (1 << 40)))" >>"$GBX_CONF"
kill "$(cat "$GBX_DIR/agent.pid")"
sleep 0.5
check "the agent restarts with a disk reserve above the free space" restart_agent
refuse "a snapshot is refused" 1 'disk_reserve' as_user "$m" snapshot snapr
ls "$snapdir/$m" | grep -Eq 'snapr|tmp' && not_ok "nothing of it is left in the store" || ok "nothing of it is left in the store"
refuse "a restore is refused" 1 'disk_reserve' as_user "$m" restore snap1 --yes
[ "$(in_box "$m" 'wc -c <~/noise')" = 64000000 ] && ! ls "$GBX_DIR/state/users/$m/layer" | grep -Eq 'prev|restore' &&
	ok "the container is unchanged" || not_ok "the container is unchanged"
cp "$GBX_DIR/gpubox.conf.before-limits" "$GBX_CONF"
kill "$(cat "$GBX_DIR/agent.pid")"
sleep 0.5
check "the agent restarts with the suite's configuration" restart_agent
check "$m starts" as_user "$m" start
in_box "$m" 'rm -f ~/noise' >/dev/null 2>&1

# ---- an agent killed in the middle ---------------------------------------------
check "$m writes 150 MB" in_box "$m" \
	'head -c 150000000 /dev/urandom >~/big && sha256sum ~/big >~/big.sum && echo after >~/after'
sum=$(in_box "$m" 'cat ~/big.sum')
as_user "$m" snapshot snapk >/dev/null 2>&1 &
cli=$!
for _ in $(seq 300); do ls "$snapdir/$m/" | grep -q 'snapk.tar.zst.tmp' && break; sleep 0.05; done
kill -9 "$(cat "$GBX_DIR/agent.pid")"
wait $cli 2>/dev/null
check "the agent restarts after a kill during a snapshot" restart_agent
[ ! -e "$snapdir/$m/snapk.json" ] && ! ls "$snapdir/$m/" | grep -q tmp &&
	ok "no half-written snapshot is left" || { not_ok "no half-written snapshot is left"; ls -l "$snapdir/$m" | diag; }
check "$m starts after the killed snapshot" as_user "$m" start
[ "$(in_box "$m" 'cat ~/big.sum; cat ~/after')" = "$sum
after" ] && ok "nothing lost after the killed snapshot" || not_ok "nothing lost after the killed snapshot"
check "snapshot of 150 MB" as_user "$m" snapshot snapbig
check "$m changes files again" in_box "$m" 'rm ~/big && echo later >~/after'
for delay in 1.5 3; do
	as_user "$m" restore snapbig --yes >/dev/null 2>&1 &
	cli=$!
	sleep $delay
	kill -9 "$(cat "$GBX_DIR/agent.pid")"
	wait $cli 2>/dev/null
	check "the agent restarts after a kill ${delay}s into a restore" restart_agent
	ls "$GBX_DIR/state/layers/$m" | grep -Eq 'prev|restore' &&
		{ not_ok "the cut restore is resolved (${delay}s)"; ls "$GBX_DIR/state/layers/$m" | diag; } ||
		ok "the cut restore is resolved (${delay}s)"
	check "$m starts (${delay}s)" as_user "$m" start
	after=$(in_box "$m" 'cat ~/after; test -e ~/big && sha256sum ~/big')
	case "$after" in
	later) ok "rolled back to the files before the restore (${delay}s)" ;;
	"after
$sum") ok "the restore had completed (${delay}s)" ;;
	*) not_ok "the files are the old or the restored ones, never a mix (${delay}s)"; echo "$after" | diag ;;
	esac
	in_box "$m" 'rm -f ~/big; echo later >~/after' >/dev/null 2>&1
done

# ---- another server: another agent, the same snapshot store -------------------
check "$m restores snapbig again" as_user "$m" restore snapbig --yes
# Snapshots are bound to the member's identity, which an admin carries to
# the other server (both agents share this host's accounts: $m leaves the first).
member_id() { sqlite3 "$1/state.db" "SELECT id FROM member_ids WHERE name = '$m'"; }
set_member_id() { sqlite3 "$1/state.db" "UPDATE member_ids SET id = '$2' WHERE name = '$m'"; }
id1=$(member_id "$GBX_DIR/state")
[[ $id1 =~ ^[0-9a-f]{32}$ ]] && ok "$m has an identity ($id1)" || not_ok "$m has an identity"
check "$m is removed from this server without --purge" gpubox admin user rm "$m" --yes
[ -s "$snapdir/$m/snapbig.json" ] && ok "the snapshots outlive a removal without --purge" ||
	not_ok "the snapshots outlive a removal without --purge"
mkdir -p "$dir2/state"
cp -al "$GBX_DIR/state/templates" "$dir2/state/templates"
sed -e "s|^socket = .*|socket = $dir2/gpubox.sock|" -e "s|^state_dir = .*|state_dir = $dir2/state|" \
	-e "s|^bridge = .*|bridge = gbxu$GBX_ID|" -e "s|^nft_table = .*|nft_table = gbxu$GBX_ID|" \
	-e "s|^bridge_address = \(10\.213\)\.\([0-9]*\)\.1/24|bridge_address = 10.216.\2.1/24|" \
	-e "s|^subid_range = .*|subid_range = $((GBX_SUBID_FIRST + 8388608))-$GBX_SUBID_LAST|" \
	-e "s|^ssh_port_range = .*|ssh_port_range = $((GBX_SSH_FIRST + 200))-$((GBX_SSH_FIRST + 249))|" \
	-e "s|^forward_port_range = .*|forward_port_range = $((GBX_SSH_FIRST + 250))-$((GBX_SSH_FIRST + 299))|" "$GBX_CONF" >"$conf2"
echo "snapshot_dir = $snapdir" >>"$conf2"
"$GBX_BIN/gpuboxd" --foreground --config "$conf2" >>"$dir2/agent.log" 2>&1 &
echo $! >"$dir2/agent.pid"
for _ in $(seq 100); do "$GBX_BIN/gpubox" --config "$conf2" version >/dev/null 2>&1 && break; sleep 0.1; done
g2() { "$GBX_BIN/gpubox" --config "$conf2" "$@"; }
check "a second agent (another state directory) takes $m" g2 admin user add "$m" --key "$GBX_DIR/keys-client/$m.pub"
g2 snapshot ls --member "$m" | grep -q snapbig && not_ok "$m of another identity does not see them" ||
	ok "$m of another identity does not see them"
check "the admin gives $m there the same identity" set_member_id "$dir2/state" "$id1"
check "$m's snapshots are listed there" eval 'g2 snapshot ls --member "$m" | grep -q snapbig'
check "restore on the second agent" g2 restore snapbig --yes --member "$m"
base2=$(g2 admin user ls --json | jq -r --arg m "$m" '.users[] | select(.name == $m) | .subid_base')
uid2=$(g2 admin user ls --json | jq -r --arg m "$m" '.users[] | select(.name == $m) | .uid')
[ "$(stat -c %u "$dir2/state/layers/$m/upper/home/$m/after")" = $((base2 + uid2)) ] &&
	ok "owned by the member's ids under the second agent's base ($base2)" ||
	not_ok "owned by the member's ids under the second agent's base"
[ "$(lxc-attach -P "$dir2/state/lxc" -n "$m" -- sh -c "sha256sum /home/$m/big; cat /home/$m/after")" = "$sum
after" ] && ok "the second agent's container has the snapshot's files" ||
	not_ok "the second agent's container has the snapshot's files"
g2 admin user rm "$m" --yes >/dev/null 2>&1
kill "$(cat "$dir2/agent.pid")" 2>/dev/null
check "$m is back on the first agent" add_member "$m"
check "with the identity the snapshots are bound to" set_member_id "$GBX_DIR/state" "$id1"

# ---- rebuild --keep-home ---------------------------------------------------------
check "$o starts" as_user "$o" start
check "$o changes /home and /etc" in_box "$o" 'echo kept >~/keep && sudo touch /etc/gone'
check "rebuild --keep-home --yes" as_user "$o" rebuild --keep-home --yes
out=$(in_box "$o" 'cat ~/keep; ls /etc/gone 2>&1' 2>&1)
echo "$out" | grep -qx kept && echo "$out" | grep -q 'No such' &&
	ok "rebuild --keep-home keeps /home and resets the rest" || { not_ok "rebuild --keep-home keeps /home and resets the rest"; echo "$out" | diag; }

# ---- template versions -------------------------------------------------------------
tpl1=$(member_field "$o" template)
cp "$GBX_CONF" "$GBX_DIR/gpubox.conf.before-t0080"
if [ "${GBX_TEMPLATE_BUILD:-1}" = 1 ]; then
	# A real build of a new recipe: one more package, and a site file.
	mkdir -p "$GBX_DIR/template-setup/etc/apt/apt.conf.d"
	echo 'Acquire::http::Timeout "20";' >"$GBX_DIR/template-setup/etc/apt/apt.conf.d/99gbxtest"
	echo "template_packages = openssh-server systemd-sysv sudo iproute2 ca-certificates locales less nano bzip2" >>"$GBX_CONF"
	echo "template_setup = $GBX_DIR/template-setup" >>"$GBX_CONF"
	kill "$(cat "$GBX_DIR/agent.pid")"
	sleep 0.5
	check "the agent restarts with a new recipe" restart_agent
	log_out=$(gpubox admin template build 2>&1)
	echo "$log_out" | tail -1 | diag
	built=yes
else
	# GBX_TEMPLATE_BUILD=0 (a slow mirror): a copy of the template under
	# the next version stands for the new build.
	next=${tpl1%@*}@$((${tpl1#*@} + 1))
	cp -al "$GBX_DIR/state/templates/$tpl1" "$GBX_DIR/state/templates/$next"
	jq --argjson v $((${tpl1#*@} + 1)) '.version = $v | .recipe_hash = ("f" * 64)' \
		"$GBX_DIR/state/templates/$tpl1/manifest.json" >"$GBX_DIR/state/templates/$next/manifest.new"
	mv "$GBX_DIR/state/templates/$next/manifest.new" "$GBX_DIR/state/templates/$next/manifest.json"
	built=no
fi
tpl2=$(gpubox admin template ls --json | jq -r '[.templates[] | select(.name == "default")] | sort_by(.version) | last | .ref')
[ "$tpl2" != "$tpl1" ] && [ "${tpl2%@*}" = "${tpl1%@*}" ] && ok "a new recipe builds $tpl2" || not_ok "a new recipe builds a new version ($tpl1 -> $tpl2)"
[ "$(member_field "$o" template)" = "$tpl1" ] && ok "an existing container stays on $tpl1" || not_ok "an existing container stays on $tpl1"
[ "$(member_field "$o" template_update)" = "$tpl2" ] && as_user "$o" status | grep -q "Update:.*$tpl2" &&
	ok "status says $tpl2 is available" || not_ok "status says $tpl2 is available"
refuse "template rm $tpl1 is refused while $o uses it" 1 "in use.*$o" gpubox admin template rm "$tpl1"
check "$o rebuilds onto $tpl2" as_user "$o" rebuild --yes
[ "$(member_field "$o" template)" = "$tpl2" ] && [ "$(member_field "$o" template_update)" = null ] &&
	ok "$o is on $tpl2, no update left" || not_ok "$o is on $tpl2, no update left"
if [ $built = yes ]; then
	check "bzip2 and the site file of the new recipe are there" in_box "$o" \
		'command -v bzip2 && test -s /etc/apt/apt.conf.d/99gbxtest'
fi
refuse "template rm $tpl1 is refused while snapshots use it" 1 "in use.*snapshot" gpubox admin template rm "$tpl1"
for s in $(gpubox snapshot ls --member "$m" --json | jq -r '.snapshots[].name'); do
	gpubox snapshot rm --member "$m" "$s" >/dev/null
done
check "template rm $tpl1 once nothing uses it" gpubox admin template rm "$tpl1"
[ ! -e "$GBX_DIR/state/templates/$tpl1" ] && ok "$tpl1 is gone" || not_ok "$tpl1 is gone"
refuse "template rm of what is absent" 1 'no template' gpubox admin template rm "$tpl1"
check "a new member starts on $tpl2" eval 'gpubox start --member "$m" >/dev/null && [ "$(member_field "$m" template)" = "$tpl2" ]'
cp "$GBX_DIR/gpubox.conf.before-t0080" "$GBX_CONF"
if [ $built = yes ]; then
	kill "$(cat "$GBX_DIR/agent.pid")"
	sleep 0.5
	check "the agent restarts with the suite's configuration" restart_agent
fi
done_testing
