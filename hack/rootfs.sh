#!/usr/bin/env bash
# Builds (once) a Debian bookworm root with systemd, dbus and apt, for tests that
# boot a stand-in node with systemd-nspawn, and caches it as a tarball:
#   _output/rootfs/bookworm.tar
# Prints the tarball's path. Needs root and debootstrap; downloads from Debian's
# mirror (override with DEBIAN_MIRROR). Safe to run concurrently: one builds,
# the others wait.
set -euo pipefail
cd "$(dirname "$0")/.."
out=_output/rootfs
tarball=$out/bookworm.tar
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
if [ -s "$tarball" ]; then
  echo "$PWD/$tarball"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "rootfs.sh: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
work=$(mktemp -d "$PWD/$out/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
echo ">> debootstrap bookworm (minbase + systemd, dbus) from $mirror" >&2
debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus \
  bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -30 "$work/debootstrap.log" >&2
  exit 1
}
# A node of its own: no console login, an empty machine id so that each boot
# of a copy gets one, no package lists (tests bring their own repository).
rm -f "$root/etc/machine-id" && touch "$root/etc/machine-id"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
: >"$root/etc/apt/sources.list"
ln -sf /dev/null "$root/etc/systemd/system/console-getty.service"
ln -sf /dev/null "$root/etc/systemd/system/getty.target"
mkdir -p "$root/var/lib/nodepatch"
tar -C "$root" --numeric-owner -cf "$work/bookworm.tar" .
mv "$work/bookworm.tar" "$tarball"
echo "$PWD/$tarball"
