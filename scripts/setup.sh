#!/bin/sh
# Set up everything the harness needs on a Debian-based machine, and only
# what is missing: the aarch64 cross compiler (apt), a virtual environment
# in .venv, and this package installed in it (editable, with test extras).
# Safe to run again: a second run changes nothing.
set -eu

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
command -v python3 >/dev/null 2>&1 || missing="$missing python3"
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
	missing="$missing python3-venv"
fi
if [ -n "$missing" ]; then
	# shellcheck disable=SC2086
	apt_install $missing
fi

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
	echo "setup: Python >= 3.11 is needed, found $(python3 --version)" >&2
	exit 2
}

if [ ! -x .venv/bin/python ]; then
	echo "setup: creating .venv"
	python3 -m venv .venv
fi

# Reinstall only when the package metadata changed since the last install.
stamp=.venv/.pyharness-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ CMakeLists.txt -nt "$stamp" ]; then
	echo "setup: installing pyharness into .venv"
	.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
	touch "$stamp"
fi
