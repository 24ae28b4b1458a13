#!/bin/bash
# Snapshots belong to the member who took them, not to a name: a member
# removed with --purge loses them, and a later member of the same name
# neither sees nor restores them.  Without --purge they stay in the store,
# still bound to the removed member.  (Issue 13, item 5.)
. "$(dirname "$0")/lib.sh"

m=so$GBX_ID
snapdir=$GBX_DIR/state/snapshots
trap 'remove_member "$m"; rm -rf "${snapdir:?}/$m" "$GBX_DIR/saved"' EXIT
in_box() { client_ssh_container "$1" "$(member_field "$1" ssh_port)" "${@:2}"; }

# ---- the member who took it keeps it ------------------------------------------
check "member $m added and started" eval 'add_member "$m" && as_user "$m" start'
check "$m writes a secret" in_box "$m" 'echo first-secret >~/secret'
check "$m takes snapshot old" as_user "$m" snapshot old
jq -e '(.member_id | test("^[0-9a-f]{32}$"))' "$snapdir/$m/old.json" >/dev/null &&
	ok "the manifest names the member's identity" || not_ok "the manifest names the member's identity"
check "$m lists it" eval 'as_user "$m" snapshot ls | grep -q "^old "'
check "$m changes the file" in_box "$m" 'echo changed >~/secret'
check "$m restores it" as_user "$m" restore old --yes
[ "$(in_box "$m" 'cat ~/secret' 2>/dev/null)" = first-secret ] &&
	ok "$m has the snapshot's file back" || not_ok "$m has the snapshot's file back"

# ---- user rm --purge retires them ------------------------------------------------
check "a copy of the store kept aside" eval 'mkdir -p "$GBX_DIR/saved" && cp -a "$snapdir/$m/." "$GBX_DIR/saved/"'
check "admin user rm $m --purge" gpubox admin user rm "$m" --purge --yes
[ -e "$snapdir/$m/old.json" ] || [ -e "$snapdir/$m/old.tar.zst" ] &&
	not_ok "--purge removed the snapshot from the store" || ok "--purge removed the snapshot from the store"

# ---- a later member of the same name ---------------------------------------------
check "a new member $m added and started" eval 'add_member "$m" && as_user "$m" start'
# Put the old snapshot back as an admin restoring the store from a backup
# would: it must still not be the new member's.
check "the old snapshot is put back into the store" eval \
	'mkdir -p "$snapdir/$m" && cp -a "$GBX_DIR/saved/." "$snapdir/$m/"'
out=$(as_user "$m" snapshot ls 2>&1)
echo "$out" | diag
echo "$out" | grep -q '^old ' && not_ok "the new $m does not see the old snapshot" ||
	ok "the new $m does not see the old snapshot"
as_user "$m" snapshot ls --json | jq_check '.snapshots | length == 0' >/dev/null &&
	ok "nor in snapshot ls --json" || not_ok "nor in snapshot ls --json"
refuse "the new $m cannot restore it" 1 'no snapshot named' as_user "$m" restore old --yes
[ "$(in_box "$m" 'cat ~/secret 2>/dev/null || echo none' 2>/dev/null)" = none ] &&
	ok "the old member's file is not in the new container" ||
	not_ok "the old member's file is not in the new container"
refuse "nor remove it" 1 'no snapshot named' as_user "$m" snapshot rm old
[ -e "$snapdir/$m/old.json" ] && ok "the old snapshot is untouched" || not_ok "the old snapshot is untouched"
refuse "a snapshot of the same name is refused, without restoring" 1 'exists in the store|already' \
	as_user "$m" snapshot old

# A manifest of the old kind (no identity) is only this member's when this
# server wrote it after the member was added.
jq 'del(.member_id) | .created = 1' "$snapdir/$m/old.json" >"$snapdir/$m/old.json.new" &&
	mv "$snapdir/$m/old.json.new" "$snapdir/$m/old.json"
refuse "an older manifest without identity is refused" 1 'no snapshot named' as_user "$m" restore old --yes
check "the new $m takes a snapshot of its own" as_user "$m" snapshot mine
check "and lists it" eval 'as_user "$m" snapshot ls | grep -q "^mine "'
jq 'del(.member_id)' "$snapdir/$m/mine.json" >"$snapdir/$m/mine.json.new" &&
	mv "$snapdir/$m/mine.json.new" "$snapdir/$m/mine.json"
check "its own manifest without identity, written after it was added, still restores" \
	as_user "$m" restore mine --yes

# ---- user rm without --purge keeps them, bound to the removed member -------------
check "admin user rm $m (no --purge)" gpubox admin user rm "$m" --yes
[ -s "$snapdir/$m/mine.tar.zst" ] && [ -s "$snapdir/$m/mine.json" ] &&
	ok "without --purge the snapshots stay in the store" ||
	not_ok "without --purge the snapshots stay in the store"
check "$m added again" add_member "$m"
out=$(as_user "$m" snapshot ls 2>&1)
echo "$out" | grep -Eq '^(mine|old) ' && not_ok "the re-added $m does not see them" ||
	ok "the re-added $m does not see them"
refuse "nor restores them" 1 'no snapshot named' as_user "$m" restore mine --yes

done_testing
