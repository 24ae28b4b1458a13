# shellcheck shell=bash
# LXD for bench/peers, for the length of the run only (sourced after
# lib.sh; uses BENCH_DIR and BENCH_ID).
#
#   lxd_up      Debian's lxd and btrfs-progs installed with apt when absent
#               (the packages this adds are noted), a daemon of this run's
#               own (LXD_DIR under the bench directory; started by hand,
#               since there may be no systemd), initialised with
#               "lxd init --preseed": bridge gbxlID on 10.218.N.0/24
#               without NAT, pool "dir" and pool "btrfs" on a loop file.
#   lxd_down    (for the exit trap) undoes all of it: containers, bridge,
#               the daemon (by its pid) and its dnsmasq, mounts and the loop
#               device, LXD_DIR, the /etc/subuid and /etc/subgid lines of
#               the run and of the package, fs.inotify.max_user_instances
#               (raised to 1024 for the run), the packages lxd_up installed
#               (purged), the group and user the package made, and
#               /etc/dnsmasq.d when the package made it.
#
# LXD maps its containers' ids to root's FIRST range in /etc/subuid and
# /etc/subgid.  The tests and the benchmarks add root ranges there while
# they run, so lxd_up puts a range of its own on the first line
# (2200000000, outside theirs: 20xxxxxxxx and 21xxxxxxxx).

LXD_SUBID="root:2200000000:65536"

# lxd_installed: the installed packages' names, sorted.
lxd_installed() { dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' | awk '$1 == "ii" {print $2}' | sort; }

# lxd_install: apt-get install of what is missing, noting what was there
# before (for lxd_down) first.
lxd_install() {
	local want=() p
	for p in lxd lxd-client btrfs-progs; do
		dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' || want+=("$p")
	done
	[ ${#want[@]} = 0 ] && return 0
	getent group lxd >/dev/null && touch "$LXB/had-group"
	getent passwd _lxd >/dev/null && touch "$LXB/had-user"
	[ -d /etc/dnsmasq.d ] && touch "$LXB/had-dnsmasq.d"
	cp /etc/subuid "$LXB/subuid.before" && cp /etc/subgid "$LXB/subgid.before" || return 1
	lxd_installed >"$LXB/pkgs.before" || return 1
	bench_log "installing ${want[*]} for this run (apt-get)"
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		-o DPkg::Lock::Timeout=300 "${want[@]}" >"$LXB/apt.log" 2>&1; then
		tail -20 "$LXB/apt.log" | sed 's/^/# /' >&2
		return 1
	fi
	lxd_installed | comm -13 "$LXB/pkgs.before" - >"$LXB/pkgs.new"
	bench_log "installed: $(tr '\n' ' ' <"$LXB/pkgs.new")"
	# The package's preinst gives _lxd and root ten million ids each.
	grep -vxFf "$LXB/subuid.before" /etc/subuid | grep -E '^(_lxd|root):[0-9]+:10000001$' >"$LXB/subuid.new"
	grep -vxFf "$LXB/subgid.before" /etc/subgid | grep -E '^(_lxd|root):[0-9]+:10000001$' >"$LXB/subgid.new"
	return 0
}

# lxd_subid_first FILE: LXD_SUBID as FILE's first line.
lxd_subid_first() {
	if [ -s "$1" ]; then
		sed -i "1i $LXD_SUBID" "$1"
	else
		echo "$LXD_SUBID" >>"$1"
	fi
}

# lxd_subid_drop FILE LINE...: those exact lines out of FILE.
lxd_subid_drop() {
	local file=$1 line
	shift
	for line in "$@"; do
		[[ $line =~ ^[a-z_]+:[0-9]+:[0-9]+$ ]] && sed -i "/^$line\$/d" "$file"
	done
}

lxd_preseed() {
	cat <<YAML
config:
  backups.compression_algorithm: zstd
networks:
- name: $LXD_BRIDGE
  type: bridge
  config:
    ipv4.address: $LXD_NET.1/24
    ipv4.nat: "false"
    ipv6.address: none
storage_pools:
- name: dir
  driver: dir
- name: btrfs
  driver: btrfs
  config:
    size: ${BENCH_PEERS_BTRFS_GB:-16}GiB
profiles:
- name: default
  devices:
    root: {path: /, pool: dir, type: disk}
    eth0: {name: eth0, network: $LXD_BRIDGE, type: nic}
YAML
}

lxd_up() {
	LXB=$BENCH_DIR/peers
	LXD_DIR=$LXB/lxd
	LXD_BRIDGE=gbxl$BENCH_ID
	LXD_NET=10.218.$((20 + 0x${BENCH_ID:0:2} % 200))
	export LXB LXD_DIR LXD_BRIDGE LXD_NET
	mkdir -p "$LXD_DIR" && chmod 711 "$LXD_DIR" || return 1
	lxd_install || return 1
	nft list table inet lxd >/dev/null 2>&1 && touch "$LXB/had-nft"
	# All of LXD's containers share one host uid, and with it the kernel's
	# per-user inotify instances (128 by default): the package's sysctl.d
	# file raises them to 1024 at boot.  The same for this run.
	cat /proc/sys/fs/inotify/max_user_instances >"$LXB/inotify"
	[ "$(cat "$LXB/inotify")" -ge 1024 ] || echo 1024 >/proc/sys/fs/inotify/max_user_instances
	lxd_subid_first /etc/subuid && lxd_subid_first /etc/subgid && touch "$LXB/subid" || return 1
	lxd --logfile "$LXB/lxd.log" >>"$LXB/lxd.out" 2>&1 &
	echo $! >"$LXB/lxd.pid"
	if ! lxd waitready --timeout=60; then
		tail -20 "$LXB/lxd.log" "$LXB/lxd.out" | sed 's/^/# /' >&2
		return 1
	fi
	lxd_preseed | lxd init --preseed || return 1
	bench_log "lxd $(lxd --version) up: $LXD_DIR (bridge $LXD_BRIDGE, $LXD_NET.0/24; pools dir and btrfs)"
}

# lxd_stop_daemon: the daemon by its pid, then its dnsmasq if still there.
lxd_stop_daemon() {
	local pid dpid
	[ -f "$LXB/lxd.pid" ] || return 0
	pid=$(cat "$LXB/lxd.pid")
	dpid=$(cat "$LXD_DIR/networks/$LXD_BRIDGE/dnsmasq.pid" 2>/dev/null)
	kill "$pid" 2>/dev/null
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null
	[ -n "$dpid" ] && kill "$dpid" 2>/dev/null
	rm -f "$LXB/lxd.pid"
}

lxd_down() {
	local c m l
	[ -n "${LXB:-}" ] && [ -d "$LXB" ] || return 0
	bench_log "removing LXD"
	if [ -f "$LXB/lxd.pid" ] && kill -0 "$(cat "$LXB/lxd.pid")" 2>/dev/null; then
		for c in $(lxc list --format csv -c n 2>/dev/null); do
			lxc delete --force "$c" >/dev/null 2>&1
		done
		lxc profile device remove default eth0 >/dev/null 2>&1
		lxc network delete "$LXD_BRIDGE" >/dev/null 2>&1
	fi
	lxd_stop_daemon
	ip link del "$LXD_BRIDGE" 2>/dev/null
	[ -e "$LXB/had-nft" ] || nft delete table inet lxd 2>/dev/null
	grep " $LXD_DIR/" /proc/self/mounts | awk '{print $2}' | sort -r | while read -r m; do umount -l "$m"; done
	for l in $(losetup -j "$LXD_DIR/disks/btrfs.img" 2>/dev/null | cut -d: -f1); do losetup -d "$l"; done
	rm -rf "$LXD_DIR"
	if [ -e "$LXB/subid" ]; then
		lxd_subid_drop /etc/subuid "$LXD_SUBID"
		lxd_subid_drop /etc/subgid "$LXD_SUBID"
	fi
	[ -s "$LXB/inotify" ] && cat "$LXB/inotify" >/proc/sys/fs/inotify/max_user_instances
	[ -f "$LXB/pkgs.before" ] && lxd_remove
	rm -rf "$LXB"
}

# lxd_remove: purge what lxd_install added, and what its scripts left.
lxd_remove() {
	local new
	[ -f "$LXB/pkgs.new" ] || lxd_installed | comm -13 "$LXB/pkgs.before" - >"$LXB/pkgs.new"
	new=$(cat "$LXB/pkgs.new")
	if [ -n "$new" ]; then
		bench_log "purging $(echo "$new" | tr '\n' ' ')"
		# shellcheck disable=SC2086 # package names, one word each
		DEBIAN_FRONTEND=noninteractive apt-get purge -y -q -o DPkg::Lock::Timeout=300 $new \
			>>"$LXB/apt.log" 2>&1 || tail -20 "$LXB/apt.log" | sed 's/^/# /' >&2
	fi
	# shellcheck disable=SC2046 # lines without spaces
	lxd_subid_drop /etc/subuid $(cat "$LXB/subuid.new" 2>/dev/null)
	# shellcheck disable=SC2046
	lxd_subid_drop /etc/subgid $(cat "$LXB/subgid.new" 2>/dev/null)
	[ -e "$LXB/had-user" ] || userdel _lxd 2>/dev/null
	[ -e "$LXB/had-group" ] || groupdel lxd 2>/dev/null
	[ -e "$LXB/had-dnsmasq.d" ] || rmdir /etc/dnsmasq.d 2>/dev/null
	true
}

# lxd_image ALIAS DIR: the gpubox template DIR imported as LXD image ALIAS:
# its rootfs as it is, plus LXD's metadata.yaml and, in LXD's copy only, a
# DHCP client for LXD's bridge (the template has none: gpubox's LXC
# configuration sets the address).  That is systemd-networkd on eth0, after
# a unit that makes /sys read-only as systemd's container interface wants
# it: LXD mounts it read-write, and networkd then waits for a udev that
# does not run in a container.
lxd_image() {
	local alias=$1 dir=$2 st=$LXB/stage.$1 sd=rootfs/etc/systemd
	local -a files=("$sd/network/10-gbx-lxd.network" "$sd/system/gbx-lxd-sys-ro.service"
		"$sd/system/sysinit.target.wants/gbx-lxd-sys-ro.service"
		"$sd/system/multi-user.target.wants/systemd-networkd.service")
	mkdir -p "$st/$sd/network" "$st/$sd/system/sysinit.target.wants" "$st/$sd/system/multi-user.target.wants" || return 1
	printf 'architecture: %s\ncreation_date: %s\nproperties:\n  description: gpubox template %s\n  os: debian\n  release: bookworm\n' \
		"$(uname -m)" "$(date +%s)" "$(basename "$dir")" >"$st/metadata.yaml"
	printf '[Match]\nName=eth0\n\n[Network]\nDHCP=ipv4\n' >"$st/${files[0]}"
	printf '[Unit]\nDescription=Read-only /sys for networkd (LXD mounts it read-write)\nDefaultDependencies=no\nBefore=systemd-networkd.service\n\n[Service]\nType=oneshot\nExecStart=/bin/mount -o remount,bind,ro /sys\nRemainAfterExit=yes\n' >"$st/${files[1]}"
	ln -sfn /etc/systemd/system/gbx-lxd-sys-ro.service "$st/${files[2]}"
	ln -sfn /lib/systemd/system/systemd-networkd.service "$st/${files[3]}"
	tar cf "$LXB/$alias.tar" -C "$st" metadata.yaml -C "$dir" rootfs -C "$st" "${files[@]}" &&
		lxc image import -q "$LXB/$alias.tar" --alias "$alias" >/dev/null
	local rc=$?
	rm -rf "$LXB/$alias.tar" "$st"
	return $rc
}

# lxd_ip C: the address LXD's dnsmasq leased to container C (by its name).
lxd_ip() { awk -v c="$1" '$4 == c {ip = $3} END {print ip}' "$LXD_DIR/networks/$LXD_BRIDGE/dnsmasq.leases" 2>/dev/null; }

# lxd_ssh_wait C T0: milliseconds from T0 until C's sshd gives a banner on
# its leased address (probed about every 50 ms); fails after 90 s.
lxd_ssh_wait() {
	local c=$1 t0=$2 ip
	while :; do
		ip=$(lxd_ip "$c")
		[ -n "$ip" ] && bench_probe "$ip" 22 && break
		[ $(($(now_ms) - t0)) -gt 90000 ] && return 1
		sleep 0.05
	done
	echo $(($(now_ms) - t0))
}

# lxd_root POOL C: container C's root file system on disk.
lxd_root() { echo "$LXD_DIR/storage-pools/$1/containers/$2/rootfs"; }

# lxd_snap_bytes POOL C SNAP: the disk a snapshot takes: du on the dir pool,
# the snapshot's exclusive bytes on btrfs (what is not shared with C).
lxd_snap_bytes() {
	local path=$LXD_DIR/storage-pools/$1/containers-snapshots/$2/$3
	if [ "$1" = btrfs ]; then
		btrfs filesystem du -s --raw "$path" | awk 'NR == 2 {print $2}'
	else
		du -sxB1 "$path" | cut -f1
	fi
}

# lxd_pool_used POOL: bytes in use on the btrfs pool (after a sync).
lxd_pool_used() { sync && df -B1 --output=used "$LXD_DIR/storage-pools/$1" | tail -1 | tr -d ' '; }
