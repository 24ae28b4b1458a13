# shellcheck shell=bash
# scripts/gpu-proof bundle BUILD_DIR OUT_DIR (sourced by scripts/gpu-proof)
#
# On a machine with the package registry: everything a GPU server with no
# registry needs for `scripts/gpu-proof run`:
#   build/     the build's programs, at their places in a build directory
#   lxc.tar.xz Debian's lxc, liblxc1, lxcfs, uidmap (and the tools the run
#              uses: jq, nft, nc, ssh-keygen) with the libraries they and
#              the programs need, unpacked with dpkg -x (never into /)
#   template/  a template built by gpubox (debootstrap, through a
#              throw-away agent of bench/lib.sh), without apt's cache and
#              lists, documentation, locales or manual pages, as tar.xz
#   packages.txt  each package and version;  MANIFEST  sha256, size, path
#   size.txt   the bundle's size, the working tree's, against the limit
# The whole working tree that travels to a device machine, this bundle
# in it, must stay under 64 MiB.
gp_bundle() {
	local build out work
	build=$(cd "${1:?usage: scripts/gpu-proof bundle BUILD_DIR OUT_DIR}" && pwd) || return 2
	out=${2:?usage: scripts/gpu-proof bundle BUILD_DIR OUT_DIR}
	[ "$(id -u)" = 0 ] || { echo "gpu-proof: the bundle needs root (a template, dpkg -x owners)" >&2; return 1; }
	[ -e "$out" ] && [ -n "$(ls -A "$out")" ] && { echo "gpu-proof: $out is not empty" >&2; return 1; }
	mkdir -p "$out" && out=$(cd "$out" && pwd)
	work=$(mktemp -d /tmp/gpubox-gpu-bundle.XXXXXX)
	# shellcheck disable=SC2064
	trap "rm -rf '$work'; bench_cleanup" EXIT
	gp_bundle_build "$build" "$out/build" &&
		gp_bundle_lxc "$out" "$work" &&
		gp_bundle_template "$build" "$out/template" &&
		gp_bundle_manifest "$out"
}

# The programs the run needs, where a build directory has them (the run
# hands bench/lib.sh this folder as its build).
gp_bundle_build() {
	local build=$1 dest=$2 f
	for f in src/cli/gpubox src/agent/gpuboxd src/nvmlshim/libgpubox-nvml.so \
		tests/fake-nvml/libnvidia-ml.so.1 tests/fake-nvml/nvml_client; do
		[ -f "$build/$f" ] || { echo "gpu-proof: build first ($build/$f)" >&2; return 1; }
		install -D -m 0755 "$build/$f" "$dest/$f" || return 1
		strip --strip-unneeded "$dest/$f" 2>/dev/null
	done
	echo "bundle: $(du -sh "$dest" | cut -f1) of programs"
}

GP_PACKAGES="lxc liblxc1 liblxc-common lxcfs uidmap jq nftables netcat-openbsd openssh-client"

# The packages, then again those holding the libraries that what is
# unpacked needs and nothing unpacked holds, until none is missing.  libc6
# is the server's own: the loader and libc come from it.
gp_bundle_lxc() {
	local out=$1 work=$2 stage=$1/lxc want=$GP_PACKAGES have=" " p round
	mkdir -p "$stage" "$work/debs"
	for round in 1 2 3 4 5 6; do
		want=$(for p in $want; do [[ "$have" == *" $p "* ]] || echo "$p"; done | sort -u | tr '\n' ' ')
		[ -n "${want// /}" ] || break
		echo "bundle: round $round: apt-get download $want"
		# shellcheck disable=SC2086
		(cd "$work/debs" && apt-get download -q $want) >"$work/download.log" 2>&1 ||
			{ cat "$work/download.log" >&2; return 1; }
		have="$have$want"
		want=$(gp_missing_packages "$out")
	done
	for p in "$work"/debs/*.deb; do
		dpkg-deb -f "$p" Package Version | sed "s/^[^:]*: //" | paste -sd' ' >>"$out/packages.txt"
	done
	sort -o "$out/packages.txt" "$out/packages.txt"
	rm -rf "$stage/usr/share/doc" "$stage/usr/share/man" "$stage/usr/share/locale" \
		"$stage/usr/share/lintian" "$stage/usr/share/bash-completion" "$stage/usr/share/info"
	echo "bundle: $(wc -l <"$out/packages.txt") packages unpacked into lxc/, $(du -sh "$stage" | cut -f1); packing (xz)"
	# Carried packed: the run unpacks it into a folder of its own.
	tar -C "$out" --numeric-owner -cf - lxc | xz -9e -T2 >"$out/lxc.tar.xz" && rm -rf "$stage" &&
		echo "bundle: lxc.tar.xz $(du -sh "$out/lxc.tar.xz" | cut -f1)"
}

# Unpacks the new .deb files, then prints the packages of this machine that
# hold the libraries the unpacked files and the programs need but lack.
gp_missing_packages() {
	local out=$1 deb so path pkg
	for deb in "$work"/debs/*.deb; do
		[ -e "$deb.done" ] || { dpkg -x "$deb" "$out/lxc" && touch "$deb.done"; } || return 1
	done
	find "$out/lxc" "$out/build" -type f -exec sh -c 'head -c4 "$1" | grep -q ELF' _ {} \; \
		-exec objdump -p {} \; 2>/dev/null | awk '$1 == "NEEDED" {print $2}' | sort -u |
		while read -r so; do
			[ -n "$(find "$out/lxc" -name "$so" -print -quit)" ] && continue
			# libc is the server's; the interposer's real NVML is put in place by the agent.
			case $so in libc.so.*|libm.so.*|libpthread.so.*|libdl.so.*|librt.so.*|ld-linux*|libgpubox-nvml-real.so) continue ;; esac
			path=$(ldconfig -p | awk -v s="$so" '$1 == s && /x86-64/ {print $NF; exit}')
			[ -n "$path" ] || { echo "bundle: nothing here holds $so" >&2; continue; }
			pkg=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -1 | cut -d: -f1)
			[ -n "$pkg" ] || pkg=$(dpkg -S "*/$so" 2>/dev/null | head -1 | cut -d: -f1)
			[ -n "$pkg" ] && [ "$pkg" != libc6 ] && ! gp_in_every_base "$pkg" && echo "$pkg"
		done | sort -u
}

# Packages of priority required or important are on every Debian and
# Ubuntu server: the server's own serve.
gp_in_every_base() {
	apt-cache show --no-all-versions "$1" 2>/dev/null | grep -Eq '^Priority: (required|important)$'
}

# A template built as the agent builds it, made slim: what a container
# never needs to start or to run a CUDA program.
gp_bundle_template() {
	local build=$1 dest=$2 dir ref
	bench_setup "$build" || return 1
	# shellcheck disable=SC2064
	trap "rm -rf '$work'; bench_cleanup" EXIT  # bench_setup set its own
	dir=$(bench_template_dir default) || { echo "gpu-proof: no template built" >&2; return 1; }
	ref=$(basename "$dir")
	mkdir -p "$dest"
	echo "bundle: template $ref, $(du -sh "$dir/rootfs" | cut -f1) as built; slimming and packing (xz)"
	tar -C "$(dirname "$dir")" --numeric-owner -cf - \
		--exclude="$ref/rootfs/var/cache/apt/*" --exclude="$ref/rootfs/var/lib/apt/lists/*" \
		--exclude="$ref/rootfs/usr/share/doc/*" --exclude="$ref/rootfs/usr/share/locale/*" \
		--exclude="$ref/rootfs/usr/share/man/*" --exclude="$ref/rootfs/usr/share/info/*" \
		--exclude="$ref/rootfs/var/cache/debconf/*-old" --exclude="$ref/rootfs/var/log/*" \
		"$ref" | xz -9e -T2 >"$dest/template.tar.xz" || return 1
	echo "$ref" >"$dest/ref"
	echo "bundle: template archive $(du -sh "$dest/template.tar.xz" | cut -f1)"
}

GP_TREE_LIMIT=$((64 * 1024 * 1024))

# Bytes of the files git would send of the checkout holding this script:
# tracked files and untracked ones it does not ignore.
gp_tree_bytes() {
	(cd "$GP_ROOT" && git ls-files -co --exclude-standard -z | xargs -0 stat -c %s 2>/dev/null |
		awk '{s += $1} END {print s + 0}')
}

gp_bundle_manifest() {
	local out=$1 bytes tree total
	(cd "$out" && find . -type f ! -name MANIFEST ! -name size.txt | sort |
		xargs sha256sum >MANIFEST) || return 1
	bytes=$(du -sb --apparent-size "$out" | cut -f1)
	tree=$(gp_tree_bytes)
	total=$((bytes + tree))
	{
		echo "bundle $bytes bytes ($((bytes / 1048576)) MiB)"
		echo "working tree $tree bytes ($((tree / 1048576)) MiB)"
		echo "together $total bytes ($((total / 1048576)) MiB) of the device tool's $((GP_TREE_LIMIT / 1048576)) MiB"
	} | tee "$out/size.txt"
	[ "$total" -lt "$GP_TREE_LIMIT" ] ||
		{ echo "gpu-proof: over the device tool's limit" >&2; return 1; }
}
