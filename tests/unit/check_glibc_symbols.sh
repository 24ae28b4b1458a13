#!/bin/sh
# check_glibc_symbols.sh LIBRARY MAX: the library asks for no glibc symbol
# version newer than MAX (e.g. 2.17) and for no fortified (__*_chk) call,
# so that it loads in containers whose glibc is older than the host's.
# The NVML interposer is such a library: it runs inside members' programs.
set -eu
[ $# = 2 ] || { echo "usage: check_glibc_symbols.sh LIBRARY MAX" >&2; exit 2; }
lib=$1
max=$2
command -v objdump >/dev/null || { echo "objdump (binutils) is needed to read $lib's symbols" >&2; exit 1; }
# "VERSION NAME" of each imported symbol, e.g. "2.17 secure_getenv".
needed=$(objdump -T "$lib" | awk '/\*UND\*/ && /GLIBC_[0-9]/ {
	v = $0; sub(/.*GLIBC_/, "", v); sub(/[) ].*/, "", v); print v, $NF }')
status=0
newer=$(printf '%s\n' "$needed" | awk -v max="$max" '
	function newer(v, m,   a, b, i) {
		split(v, a, "."); split(m, b, ".")
		for (i = 1; i <= 3; i++) { if ((a[i] + 0) > (b[i] + 0)) return 1; if ((a[i] + 0) < (b[i] + 0)) return 0 }
		return 0
	}
	NF == 2 && newer($1, max) { print $2 "@GLIBC_" $1 }')
if [ -n "$newer" ]; then
	echo "$lib asks for glibc symbols newer than $max:"
	printf '  %s\n' $newer
	status=1
fi
chk=$(objdump -T "$lib" | awk '/\*UND\*/ && $NF ~ /^__.*_chk$/ { print $NF }')
if [ -n "$chk" ]; then
	echo "$lib calls fortified functions, whose versions follow the host's glibc: $chk"
	status=1
fi
[ "$status" = 0 ] && echo "$lib: $(printf '%s\n' "$needed" | grep -c .) glibc symbols, none newer than $max"
exit "$status"
