#!/bin/bash
# Local snapshots (snapshot --local): where a member's layer is on btrfs
# (here a btrfs file system of the test's own, mounted at the member's layer
# directory before the member's first start, as a server whose layers are
# on btrfs has it), a copy-on-write snapshot is taken while the container
# runs, restores the files as they were (deletions included), survives a
# rebuild, is removed with snapshot rm, and cannot be reached by the member
# from the host, and counts in the member's snapshot limit; an archive
# snapshot still works there.  Where the layer is
# not on btrfs, --local is refused with the reason.
. "$(dirname "$0")/lib.sh"

m=la$GBX_ID
o=lb$GBX_ID
layer=$GBX_DIR/state/layers/$m
image=$GBX_DIR/local-snapshot-btrfs.img
cleanup_local() {
	restore_config t0085
	gpubox stop --member "$m" >/dev/null 2>&1
	mountpoint -q "$layer" && umount -l "$layer"
	rm -f "$image"
	remove_member "$m"
	remove_member "$o"
}
trap cleanup_local EXIT
in_box() { client_ssh_container "$1" "$(member_field "$1" ssh_port)" "${@:2}"; }

if ! command -v mkfs.btrfs >/dev/null; then
	echo "1..0 # SKIP mkfs.btrfs is missing (btrfs-progs: scripts/install-deps --test)"
	exit 0
fi
check "a btrfs file system made" eval 'truncate -s 4G "$image" && mkfs.btrfs -q -f "$image" >/dev/null'
if ! mkdir -p "$layer" || ! mount -o loop "$image" "$layer"; then
	echo "1..$tap_n # SKIP this kernel cannot mount btrfs"
	exit 0
fi
ok "mounted at $m's layer directory, before $m is added"
check "members $m and $o added" eval 'add_member "$m" && add_member "$o"'
check "$m starts" as_user "$m" start
check "$m changes files and leaves a process running" in_box "$m" \
	'echo one >~/file1 && sudo sh -c "echo etc >/etc/localmark && rm /etc/motd" &&
	 head -c 3000000 /dev/urandom >~/big && sha256sum ~/big >~/big.sum &&
	 (setsid sleep 600 </dev/null >/dev/null 2>&1 & echo $! >~/sleeper)'
sleeper=$(in_box "$m" 'cat ~/sleeper')

# ---- taken while the container runs ---------------------------------------
out=$(as_user "$m" snapshot l1 --local 2>&1)
rc=$?
echo "$out" | diag
[ $rc = 0 ] && echo "$out" | grep -qi 'local' && ok "snapshot l1 --local" || not_ok "snapshot l1 --local"
[ "$(member_field "$m" state)" = running ] && in_box "$m" "kill -0 $sleeper" &&
	ok "the container ran on: its process is still there" ||
	not_ok "the container ran on: its process is still there"
as_user "$m" snapshot ls --json | jq_check '.snapshots[] | select(.name == "l1") | .kind == "local" and .size == 0' >/dev/null &&
	ok "snapshot ls says it is local" || not_ok "snapshot ls says it is local"
jq -e '.kind == "local" and (has("sha256") | not)' "$GBX_DIR/state/snapshots/$m/l1.json" >/dev/null &&
	[ ! -e "$GBX_DIR/state/snapshots/$m/l1.tar.zst" ] &&
	ok "its manifest is in the store, kind local, with no archive" ||
	not_ok "its manifest is in the store, kind local, with no archive"
[ -d "$layer/local/l1/upper" ] && [ "$(stat -c '%u %a' "$layer/local")" = "0 700" ] &&
	ok "its files are in the layer's local/, root's alone" ||
	not_ok "its files are in the layer's local/, root's alone"
refuse "the member cannot reach it from the host" 2 'Permission denied' \
	setpriv --reuid="$m" --regid="$(id -g "$m")" --init-groups ls "$layer/local/l1/upper"
refuse "a second snapshot of the name is refused, whatever its kind" 1 'already' as_user "$m" snapshot l1
check "an archive snapshot of the same layer" as_user "$m" snapshot a1

# ---- restore ----------------------------------------------------------------------
check "$m changes files after the snapshot" in_box "$m" \
	'echo two >~/file1 && touch ~/newfile && sudo rm /etc/localmark && head -c 1000 /dev/zero >~/big'
out=$(as_user "$m" restore l1 --yes 2>&1)
rc=$?
echo "$out" | diag
[ $rc = 0 ] && ok "restore l1 --yes" || not_ok "restore l1 --yes"
out=$(in_box "$m" 'cat ~/file1 /etc/localmark; ls ~/newfile /etc/motd 2>&1 | wc -l; sha256sum -c --quiet ~/big.sum && echo same' 2>&1)
echo "$out" | diag
[ "$out" = "one
etc
2
same" ] && ok "the files are as they were: changed, added and deleted ones" ||
	not_ok "the files are as they were: changed, added and deleted ones"
check "l1 is still there after its restore" eval 'as_user "$m" snapshot ls | grep -q "^l1 "'

# ---- rebuild keeps it; rm removes it ------------------------------------------------
check "rebuild --yes" as_user "$m" rebuild --yes
in_box "$m" 'test -e ~/file1' && not_ok "the rebuild reset the files" || ok "the rebuild reset the files"
check "restore l1 after the rebuild" as_user "$m" restore l1 --yes
[ "$(in_box "$m" 'cat ~/file1')" = one ] && ok "the local snapshot outlived the rebuild" ||
	not_ok "the local snapshot outlived the rebuild"
check "the archive restores on the btrfs layer too" as_user "$m" restore a1 --yes
# A member with root in the container takes snapshot after snapshot: the
# count limit holds local ones too.
check "the agent with snapshot_max_count = 2" restart_with_config t0085 "snapshot_max_count = 2"
refuse "a third snapshot, local, is refused" 1 'most allowed' as_user "$m" snapshot l2 --local
check "the agent with the suite's settings again" restore_config t0085
check "snapshot rm l1" as_user "$m" snapshot rm l1
[ ! -e "$layer/local/l1" ] && [ ! -e "$GBX_DIR/state/snapshots/$m/l1.json" ] &&
	ok "its files and its manifest are gone" || not_ok "its files and its manifest are gone"
refuse "restoring it now says there is none" 1 'no snapshot named l1' as_user "$m" restore l1 --yes

# ---- where the layer is not on btrfs -------------------------------------------------
check "$o starts (its layer on the state directory's file system)" as_user "$o" start
refuse "--local is refused there, with the reason" 1 'btrfs' as_user "$o" snapshot x --local
as_user "$o" snapshot ls --json | jq_check '.snapshots | length == 0' >/dev/null &&
	ok "and nothing is left of it" || not_ok "and nothing is left of it"

done_testing
