#!/bin/sh
# Fetch Debian's linux-source-X.Y tarball from a suite the machine's apt
# sources do not list (linux-source-7.2 is in unstable, sid), without
# changing those sources: a temporary sources list naming the Debian mirror
# the machine's own sources use, apt-get with its lists and cache in a
# scratch directory (update, then download the package), dpkg-deb -x, and
# the tarball copied to DEST/PACKAGE.tar.xz, where the linux-source packages
# put theirs. Nothing is installed; apt's own state is untouched. A tarball
# already at DEST is kept and nothing is fetched. Called by
# `scripts/setup.sh --tests`.
#
# usage: sh scripts/fetch-linux-source.sh PACKAGE SUITE [DEST]   (DEST: /usr/src)
set -eu

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
	echo "fetch-linux-source: usage: sh scripts/fetch-linux-source.sh PACKAGE SUITE [DEST]" >&2
	exit 2
fi
package=$1
suite=$2
dest=${3:-/usr/src}
tarball="$dest/$package.tar.xz"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

if [ -f "$tarball" ]; then
	echo "setup: $tarball is already there; not fetching $package"
	exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi

# The Debian mirror of the machine's own sources: the first URI ending in
# /debian of a deb822 .sources file or a one-line .list entry.
mirror=$(
	{
		cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
			sed -n 's/^URIs:[[:space:]]*//p' | tr ' ' '\n'
		cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
			sed -n 's/^deb[[:space:]]\{1,\}\(\[[^]]*\][[:space:]]\{1,\}\)\{0,1\}\([^[:space:]]*\).*/\2/p'
	} | sed 's:/*$::' | grep '/debian$' | head -n 1
)
if [ -z "$mirror" ]; then
	mirror=http://deb.debian.org/debian
	echo "setup: no Debian mirror in /etc/apt/sources*, using $mirror"
fi
if [ ! -f "$keyring" ]; then
	echo "setup: $keyring is missing; install debian-archive-keyring to fetch $package" >&2
	exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/fetch-$package.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
echo "deb [signed-by=$keyring] $mirror $suite main" >"$work/sources.list"
set -- -o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null \
	-o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o Acquire::Languages=none \
	-o APT::Sandbox::User=root   # the scratch directory is this user's, not _apt's

echo "setup: fetching $package from $mirror $suite (a temporary sources list; apt's own is untouched)"
$SUDO apt-get "$@" -qq update
(cd "$work" && $SUDO apt-get "$@" -qq download "$package")
deb=$(ls "$work/${package}"_*.deb)
version=$(dpkg-deb -f "$deb" Version)
dpkg-deb -x "$deb" "$work/root"
if [ ! -f "$work/root/usr/src/$package.tar.xz" ]; then
	echo "setup: $deb holds no usr/src/$package.tar.xz" >&2
	exit 1
fi
$SUDO mkdir -p "$dest"
$SUDO cp "$work/root/usr/src/$package.tar.xz" "$tarball.part"
$SUDO mv "$tarball.part" "$tarball"
echo "setup: $tarball from $package $version ($(du -h "$tarball" | cut -f1)); nothing installed"
