# The usual entry points; the build itself is Meson's.
BUILD       ?= build
ASAN_BUILD  ?= build-asan
CLANG_BUILD ?= build-clang
DEB_BUILD   ?= build-deb
MESON_OPTS  ?= --prefix=/usr/local --sysconfdir=/etc

.PHONY: all deps install deb demo check check-valgrind bench clean

all: $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(BUILD)/build.ninja:
	meson setup $(BUILD) $(MESON_OPTS)

deps:
	scripts/install-deps

install: all
	meson install -C $(BUILD) --quiet

# The Debian packages gpubox and gpubox-hub, in $(DEB_BUILD)/.  dpkg-buildpackage
# writes its results beside the tree it builds, so it builds a copy of this
# one (without its build folders) in $(DEB_BUILD)/src.  The hub needs
# web/node_modules (scripts/install-deps); nothing is downloaded.
# DEB_VERSION=V: the copy's changelog gains an entry at version V (a
# local rebuild at a higher version, as the upgrade test makes).
deb:
	rm -rf $(DEB_BUILD)
	mkdir -p $(DEB_BUILD)/src
	tar -C . --exclude=./.git --exclude=./build --exclude='./build-*' --exclude=./bench/out \
		--exclude=./tests/hub/output -cf - . | tar -C $(DEB_BUILD)/src -xf -
	if [ -n "$(DEB_VERSION)" ]; then scripts/deb-version "$(DEB_VERSION)" $(DEB_BUILD)/src/debian/changelog; fi
	cd $(DEB_BUILD)/src && dpkg-buildpackage --build=binary --no-sign
	@ls $(DEB_BUILD)/*.deb

# A working single-server gpubox with a demo member, on a fresh Debian 12 machine.
demo:
	scripts/demo

# Every test: unit (gcc, clang, ASan+UBSan), fuzz corpora, system tests.
check:
	scripts/check

# valgrind 3.19 does not know open_tree, move_mount, mount_setattr and
# openat2, so the tests of storage, rootfs, provision and mounts (and LXC's,
# which uses them) cannot run under it; ASan+UBSan covers them in make check.
VALGRIND_SKIP = storage rootfs provision container gpu snapshot mounts
check-valgrind: all
	@echo "check-valgrind: not under valgrind (it lacks their system calls): $(VALGRIND_SKIP)"
	meson test -C $(BUILD) --timeout-multiplier 5 \
		--wrap='valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite -q --suppressions=$(CURDIR)/tests/valgrind.supp' \
		$$(meson test -C $(BUILD) --list --suite unit --suite fuzz 2>/dev/null | sed 's/^gpubox:[a-z]* \/ //' | grep -vxE '$(shell echo $(VALGRIND_SKIP) | tr ' ' '|')')

bench: all
	bench/run

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(CLANG_BUILD) $(DEB_BUILD)
