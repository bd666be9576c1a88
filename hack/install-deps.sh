#!/usr/bin/env bash
# Installs the Debian packages the tests use (real apt/dpkg, dnf/rpm, dbus-daemon,
# systemd-nspawn, debootstrap, Prometheus and promtool) when any is missing.
# Needs root (apt-get), as on CI and the development machines.
set -euo pipefail

# command -> the Debian package that provides it
declare -A need=(
  [dpkg-scanpackages]=dpkg-dev [apt-ftparchive]=apt-utils [dnf]=dnf [rpmbuild]=rpm
  [createrepo_c]=createrepo-c [dbus-daemon]=dbus [systemd-nspawn]=systemd-container
  [debootstrap]=debootstrap [prometheus]=prometheus [promtool]=prometheus [ip]=iproute2
  [unshare]=util-linux
)
missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
# needs-restarting comes with the dnf plugins.
[ -e /usr/lib/python3/dist-packages/dnf-plugins/needs_restarting.py ] || missing+=(dnf-plugins-core)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
echo ">> installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
