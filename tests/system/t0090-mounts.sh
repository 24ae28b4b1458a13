#!/bin/bash
# Host directories in every container (the "mounts" key): a shared
# read-only dataset and a per-member scratch directory.
. "$(dirname "$0")/lib.sh"

m=ma$GBX_ID
data=$GBX_DIR/mounts/data
scratch=$GBX_DIR/mounts/scratch
m2=mb$GBX_ID
m3=mc$GBX_ID
restore_config() {
	remove_member "$m"
	remove_member "$m2"
	remove_member "$m3"
	cp "$GBX_DIR/gpubox.conf.before-t0090" "$GBX_CONF"
	kill "$(cat "$GBX_DIR/agent.pid")"
	sleep 0.5
	restart_agent
	rm -rf "$GBX_DIR/mounts"
}
mkdir -p "$data" "$scratch"
echo "shared dataset" >"$data/README"
cp "$GBX_CONF" "$GBX_DIR/gpubox.conf.before-t0090"
trap restore_config EXIT

echo "mounts = /etc/passwd:/etc:ro" >>"$GBX_CONF"
kill "$(cat "$GBX_DIR/agent.pid")"
sleep 0.5
if restart_agent; then not_ok "the agent refuses a mount over /etc"; else ok "the agent refuses a mount over /etc"; fi
grep -q 'system directory' "$GBX_DIR/agent.log" && ok "and says why" || not_ok "and says why"

cp "$GBX_DIR/gpubox.conf.before-t0090" "$GBX_CONF"
echo "mounts = $data:/data:ro, $scratch/%u:/scratch:rw" >>"$GBX_CONF"
check "the agent starts with two mounts" restart_agent
check "member $m added" add_member "$m"
check "$m starts" gpubox start --member "$m"
port=$(member_field "$m" ssh_port)
base=$(gpubox admin user ls --json | jq -r ".users[] | select(.name == \"$m\") | .subid_base")
uid=$(gpubox admin user ls --json | jq -r ".users[] | select(.name == \"$m\") | .uid")

out=$(client_ssh_container "$m" "$port" 'cat /data/README; sudo touch /data/x 2>&1 || echo data-ro;
	touch /scratch/mine && stat -c %U /scratch/mine; grep -E " /(data|scratch) " /proc/self/mounts' 2>&1)
echo "$out" | diag
echo "$out" | grep -qx "shared dataset" && ok "the dataset is readable inside" || not_ok "the dataset is readable inside"
echo "$out" | grep -qx "data-ro" && [ ! -e "$data/x" ] && ok "the dataset is read-only, even for root inside" ||
	not_ok "the dataset is read-only, even for root inside"
echo "$out" | grep -qx "$m" && ok "the scratch directory is the member's own" || not_ok "the scratch directory is the member's own"
[ "$(stat -c %u "$scratch/$m")" = $((base + uid)) ] && [ -e "$scratch/$m/mine" ] &&
	ok "on the host it is $scratch/$m, owned by the member's id" || not_ok "on the host it is owned by the member's id"
echo "$out" | grep " /scratch " | grep -q nosuid && ok "mounts are nosuid" || not_ok "mounts are nosuid"
[ ! -e "$GBX_DIR/state/layers/$m/upper/scratch/mine" ] && ok "nothing lands in the member's layer" ||
	not_ok "nothing lands in the member's layer"

# A per-member directory that someone else made before the member's first
# start (another member, a careless admin): the start is refused, and says
# which directory and why.
check "member $m2 added" add_member "$m2"
ln -s /etc "$scratch/$m2"
refuse "a start over a symbolic link to /etc is refused" 1 "$scratch/$m2 is a symbolic link" \
	gpubox start --member "$m2"
grep -q "refused $scratch/$m2: it is a symbolic link" "$GBX_DIR/agent.log" && ok "the agent's log names it" ||
	not_ok "the agent's log names it"
[ "$(member_field "$m2" state)" != running ] && ! lxc_attach "$m2" test -e /scratch/passwd 2>/dev/null &&
	! grep -q " $GBX_DIR/state/users/$m2/rootfs/scratch " /proc/self/mounts &&
	ok "nothing of /etc is in the container" || not_ok "nothing of /etc is in the container"
rm "$scratch/$m2"
check "once an admin removed it, $m2 starts" gpubox start --member "$m2"
[ "$(stat -c %u "$scratch/$m2")" != 0 ] && [ ! -L "$scratch/$m2" ] && ok "with a directory of its own" ||
	not_ok "with a directory of its own"

check "member $m3 added" add_member "$m3"
mkdir -m 0700 "$scratch/$m3"
chown "$((base + uid)):$((base + uid))" "$scratch/$m3"
echo "$m's file" >"$scratch/$m3/planted"
refuse "a start over a directory of another member's id is refused" 1 "$scratch/$m3 is owned by uid $((base + uid))" \
	gpubox start --member "$m3"
[ "$(member_field "$m3" state)" != running ] && ok "and $m3's container does not run" || not_ok "and $m3's container does not run"
m3base=$(gpubox admin user ls --json | jq -r ".users[] | select(.name == \"$m3\") | .subid_base")
m3uid=$(gpubox admin user ls --json | jq -r ".users[] | select(.name == \"$m3\") | .uid")
chown "$((m3base + m3uid)):$((m3base + m3uid))" "$scratch/$m3"
chmod 0777 "$scratch/$m3"
refuse "a directory writable by others is refused" 1 "$scratch/$m3 is writable by others" \
	gpubox start --member "$m3"
done_testing
