#!/usr/bin/env bash
# Builds (once) a Debian bookworm root for tests that boot a stand-in node with
# systemd-nspawn, and caches it as a tarball. Prints the tarball's path.
#
#   hack/rootfs.sh        _output/rootfs/bookworm.tar       systemd, dbus, apt
#   hack/rootfs.sh node   _output/rootfs/bookworm-node.tar  also containerd, runc, the CNI
#                                                           plugins: a root for a real kubelet
#
# Needs root and debootstrap. Packages come from the Debian mirror this machine's own
# apt configuration names (/etc/apt/sources.list, /etc/apt/sources.list.d/*.list or
# deb822 *.sources); DEBIAN_MIRROR overrides it. Safe to run concurrently: one
# builds, the others wait.
#
#   hack/rootfs.sh --mirror   prints the mirror it would use (NODEPATCH_APT_ETC: the apt
#                             configuration folder to read instead of /etc/apt)
set -euo pipefail
cd "$(dirname "$0")/.."
flavour=${1:-base}
apt_etc=${NODEPATCH_APT_ETC:-/etc/apt}
case $flavour in
  --mirror) ;;
  base) name=bookworm; include=systemd,systemd-sysv,dbus ;;
  # iproute2 and procps: the kubelet and containerd call ip, mount helpers and ps.
  node) name=bookworm-node
        include=systemd,systemd-sysv,dbus,containerd,runc,containernetworking-plugins,iproute2,procps ;;
  *) echo "rootfs.sh: unknown flavour $flavour (base or node)" >&2; exit 2 ;;
esac

# one_line_mirror FILE...: the URI of the first enabled one-line "deb" source for
# bookworm (options in [...] may hold spaces).
one_line_mirror() {
  awk '$1 == "deb" {
    i = 2
    if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
    if ($(i + 1) == "bookworm") { print $i; exit }
  }' "$@" 2>/dev/null
}

# deb822_mirror FILE...: the first URI of the first enabled deb822 stanza of type
# deb whose Suites include bookworm.
deb822_mirror() {
  awk 'BEGIN { RS = ""; FS = "\n" }
  {
    types = ""; uris = ""; suites = ""; enabled = "yes"
    for (i = 1; i <= NF; i++) {
      line = $i
      if (line ~ /^#/) continue
      key = tolower(line); sub(/:.*/, "", key)
      val = line; sub(/^[^:]*:[ \t]*/, "", val)
      if (key == "types") types = " " val " "
      else if (key == "uris") uris = val
      else if (key == "suites") suites = " " val " "
      else if (key == "enabled") enabled = tolower(val)
    }
    if (enabled != "no" && types ~ / deb / && suites ~ / bookworm / && uris != "") {
      split(uris, u, /[ \t]+/); print u[1]; exit
    }
  }' "$@" 2>/dev/null
}

machine_mirror() {
  local lists=() sources=() f
  for f in "$apt_etc"/sources.list "$apt_etc"/sources.list.d/*.list; do [ -r "$f" ] && lists+=("$f"); done
  for f in "$apt_etc"/sources.list.d/*.sources; do [ -r "$f" ] && sources+=("$f"); done
  local m=""
  [ ${#lists[@]} -gt 0 ] && m=$(one_line_mirror "${lists[@]}")
  [ -z "$m" ] && [ ${#sources[@]} -gt 0 ] && m=$(deb822_mirror "${sources[@]}")
  echo "$m"
}

if [ "$flavour" = --mirror ]; then
  m=$(machine_mirror)
  [ -n "$m" ] || { echo "rootfs.sh: no bookworm source in $apt_etc" >&2; exit 1; }
  echo "$m"
  exit 0
fi

out=_output/rootfs
tarball=$out/$name.tar
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
if [ -s "$tarball" ]; then
  echo "$PWD/$tarball"
  exit 0
fi
mirror=${DEBIAN_MIRROR:-$(machine_mirror)}
if [ -z "$mirror" ]; then
  echo "rootfs.sh: no bookworm source in $apt_etc/sources.list or $apt_etc/sources.list.d; set DEBIAN_MIRROR" >&2
  exit 1
fi
command -v debootstrap >/dev/null || { echo "rootfs.sh: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
work=$(mktemp -d "$PWD/$out/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
echo ">> debootstrap bookworm (minbase + $include) from $mirror" >&2
debootstrap --variant=minbase --include="$include" \
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
# Nothing in the root may reach outside the machine: debootstrap copied the
# machine's resolver, and apt's timers would fetch from the network.
echo "nameserver 127.0.0.1" >"$root/etc/resolv.conf"
ln -sf /dev/null "$root/etc/systemd/system/apt-daily.timer"
ln -sf /dev/null "$root/etc/systemd/system/apt-daily-upgrade.timer"
mkdir -p "$root/var/lib/nodepatch"
tar -C "$root" --numeric-owner -cf "$work/$name.tar" .
mv "$work/$name.tar" "$tarball"
echo "$PWD/$tarball"
