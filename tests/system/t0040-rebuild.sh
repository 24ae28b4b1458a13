#!/bin/bash
# rebuild wipes what the member changed and gives back a working container.
. "$(dirname "$0")/lib.sh"

m=ra$GBX_ID
trap 'remove_member $m' EXIT
check "member $m added" add_member "$m"
check "$m starts" gpubox start --member "$m"
port=$(member_field "$m" ssh_port)
check "$m changes files" client_ssh_container "$m" "$port" \
	'touch ~/marker && sudo touch /etc/marker && sudo rm /etc/motd'
upper=$GBX_DIR/state/layers/$m/upper
[ -e "$upper/etc/marker" ] && ok "the change lands in the member's own layer" || not_ok "the change lands in the member's own layer"
tpl=$(member_field "$m" template)
[ -e "$GBX_DIR/state/templates/$tpl/rootfs/etc/motd" ] && ok "the template is untouched" || not_ok "the template is untouched"

refuse "rebuild without confirmation does nothing" 1 'confirm|Nothing|not' as_user "$m" rebuild </dev/null
check "$m still has the marker" client_ssh_container "$m" "$port" 'test -e ~/marker'
check "rebuild --yes" as_user "$m" rebuild --yes
out=$(client_ssh_container "$m" "$port" 'ls ~/marker /etc/marker 2>&1; test -e /etc/motd && echo motd-back; id -un' 2>&1)
echo "$out" | diag
echo "$out" | grep -q 'motd-back' && ok "rebuild restores the template's files" || not_ok "rebuild restores the template's files"
echo "$out" | grep -q 'marker' && echo "$out" | grep -q 'No such file' && ! [ -e "$upper/etc/marker" ] &&
	ok "rebuild wipes the member's changes" || not_ok "rebuild wipes the member's changes"
echo "$out" | grep -qx "$m" && ok "the member logs in after rebuild" || not_ok "the member logs in after rebuild"
done_testing
