#!/bin/sh
# Set up everything the harness needs on a Debian-based machine, and only
# what is missing: the aarch64 cross compiler and Clang/LLVM (apt: GCC is
# the default toolchain, Clang the CONFIG_CC_IS_CLANG one), a virtual
# environment in .venv, and this package installed in it (editable, with
# test extras; the install builds the default firmware image and the
# host-native hooks library, so the host's C compiler is needed too).
# With --tests, also Debian's chromium, for the test that opens the HTML
# report in a headless browser, QEMU (qemu-system-arm) and kbuild's tools
# (make, flex, bison, bc) for the tests that build and boot a tree's real
# kernel, and the kernel sources of the three generations
# (/usr/src/linux-source-X.Y.tar.xz), for the tests that build the firmware
# with a kernel tree's own unwinder (--kernel-src): linux-source-6.1 and
# linux-source-6.12 with apt from the machine's sources, linux-source-7.2
# fetched from Debian unstable without changing them
# (scripts/fetch-linux-source.sh).
# Safe to run again: a second run changes nothing.
#
# usage: sh scripts/setup.sh [--tests]
set -eu

with_tests=0
for arg in "$@"; do
	case "$arg" in
	--tests) with_tests=1 ;;
	*) echo "setup: unknown option $arg (usage: sh scripts/setup.sh [--tests])" >&2; exit 2 ;;
	esac
done

cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi

apt_install() {
	echo "setup: installing $* with apt-get"
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

missing=""
command -v "${CROSS_COMPILE:-aarch64-linux-gnu-}gcc" >/dev/null 2>&1 ||
	missing="$missing gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu"
# The Clang toolchain (CONFIG_CC_IS_CLANG): clang, ld.lld and llvm-objcopy.
command -v clang >/dev/null 2>&1 || missing="$missing clang"
command -v ld.lld >/dev/null 2>&1 || missing="$missing lld"
command -v llvm-objcopy >/dev/null 2>&1 || missing="$missing llvm"
# The host compiler builds the harness's native hooks library (native/).
command -v cc >/dev/null 2>&1 || missing="$missing gcc libc6-dev"
command -v python3 >/dev/null 2>&1 || missing="$missing python3"
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
	missing="$missing python3-venv"
fi
if [ "$with_tests" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
	missing="$missing chromium"
fi
# Real kernels (pyharness qemu, the tests that boot one): QEMU, and what
# kbuild needs beyond a C compiler (make, flex, bison, bc).
if [ "$with_tests" = 1 ]; then
	command -v qemu-system-aarch64 >/dev/null 2>&1 || missing="$missing qemu-system-arm"
	for tool in make flex bison bc; do
		command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
	done
	# Debian's own arm64 kernels (--kernel-src debian:6.1) are fetched with
	# apt-get and read with dpkg-deb, both on every Debian; the arm64 index
	# is checked with Debian's archive key, as the machine's own is.
	[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] ||
		missing="$missing debian-archive-keyring"
fi
if [ "$with_tests" = 1 ]; then
	for generation in 6.1 6.12; do
		[ -f "/usr/src/linux-source-$generation.tar.xz" ] ||
			missing="$missing linux-source-$generation"
	done
fi
if [ -n "$missing" ]; then
	# shellcheck disable=SC2086
	apt_install $missing
fi
if [ "$with_tests" = 1 ]; then
	# 7.x's reference tree is only in unstable: fetched, not installed.
	sh scripts/fetch-linux-source.sh linux-source-7.2 sid /usr/src
fi

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
	echo "setup: Python >= 3.11 is needed, found $(python3 --version)" >&2
	exit 2
}

if [ ! -x .venv/bin/python ]; then
	echo "setup: creating .venv"
	python3 -m venv .venv
fi

# Reinstall only when the package metadata, the top-level build or the
# native hooks library's sources changed since the last install.
stamp=.venv/.pyharness-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ CMakeLists.txt -nt "$stamp" ] ||
	[ -n "$(find native cmake -newer "$stamp" 2>/dev/null)" ]; then
	echo "setup: installing pyharness into .venv"
	# A previous editable install's import hook would shadow this tree
	# inside the install's own build (CMake runs pyharness.kconfig.outputs and
	# pyharness.builder.kallsyms_gen): remove it first.
	.venv/bin/python -m pip uninstall -q -y pyharness >/dev/null 2>&1 || true
	.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
	touch "$stamp"
fi
# Byte-compile the package (only what changed): with PYTHONDONTWRITEBYTECODE
# set, as on some CI machines, every command would compile it again at
# start (0.1 s of a 2 s matrix).
.venv/bin/python -m compileall -q pyharness >/dev/null
