# The usual entry points; the build itself is Meson's.
BUILD      ?= build
ASAN_BUILD ?= build-asan
MESON_OPTS ?= --prefix=/usr/local --sysconfdir=/etc

.PHONY: all deps install demo check check-valgrind bench clean

all: $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(BUILD)/build.ninja:
	meson setup $(BUILD) $(MESON_OPTS)

deps:
	scripts/install-deps

install: all
	meson install -C $(BUILD) --quiet

# A working single-server gpubox with a demo member, on a fresh Debian 12 machine.
demo:
	scripts/demo

# Every test: unit (plain and ASan+UBSan), fuzz corpora, system tests.
check:
	scripts/check

check-valgrind: all
	meson test -C $(BUILD) --suite unit --suite fuzz --wrap='valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite -q'

bench: all
	bench/run

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
