#!/usr/bin/env bash
# Builds the tools the tests and the demo need into _output/bin, each once:
# a real control plane (kube-apiserver, kube-controller-manager, kube-scheduler,
# etcd), the kubelet that test/realnode runs inside a systemd-nspawn node, and
# ociimage (container images without a container engine) from the hack/tools
# module, and kwok, helm and staticcheck from their own modules at pinned
# versions. A tool is rebuilt only when its pin changes.
#
# Each build prints one line (">> building NAME VERSION ... done in 1m12s"); the go
# toolchain's own output (hundreds of "go: downloading" lines on a fresh machine)
# goes to the log, $NODEPATCH_TOOLS_LOG or _output/logs/build-tools.log, whose end
# is printed when a build fails.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${NODEPATCH_TOOLS_BIN:-$root/_output/bin}
log=${NODEPATCH_TOOLS_LOG:-$root/_output/logs/build-tools.log}
mkdir -p "$bin"

KWOK_VERSION=v0.7.0
HELM_VERSION=v3.19.0
STATICCHECK_VERSION=v0.8.2
# The control plane's version is the one hack/tools/go.mod requires.
# module_version MODULE: the version of MODULE that hack/tools/go.mod requires.
module_version() {
  awk -v m="$1" '$1 == m && $2 ~ /^v/ {print $2; exit} $1 == "require" && $2 == m {print $3; exit}' "$root/hack/tools/go.mod"
}
K8S_VERSION=$(module_version k8s.io/kubernetes)

# fresh NAME PIN: true when bin/NAME exists and was built from PIN.
fresh() { [ -x "$bin/$1" ] && [ "$(cat "$bin/.$1.pin" 2>/dev/null)" = "$2" ]; }
stamp() { echo "$2" > "$bin/.$1.pin"; }

# build NAME VERSION COMMAND...: runs COMMAND with its output in the log, on one
# progress line. The log starts afresh with this run's first build, so that it
# holds this run's output only; a run with nothing to build leaves it alone.
log_started=
build() {
  local name=$1 version=$2 began=$SECONDS
  shift 2
  if [ -z "$log_started" ]; then
    mkdir -p "$(dirname "$log")"
    : > "$log"
    log_started=1
  fi
  printf '>> building %s %s ... ' "$name" "$version"
  printf '\n== %s %s: %s\n' "$name" "$version" "$*" >> "$log"
  if ! "$@" >> "$log" 2>&1; then
    echo "FAILED after $(elapsed $((SECONDS - began)))"
    {
      echo ">> the log's last 40 lines:"
      tail -n 40 "$log" | sed 's/^/   /'
      echo ">> the whole log: $log"
    } >&2
    exit 1
  fi
  echo "done in $(elapsed $((SECONDS - began)))"
}
# elapsed SECONDS: 45s, 1m12s.
elapsed() { if [ "$1" -ge 60 ]; then echo "$(($1 / 60))m$(($1 % 60))s"; else echo "$1s"; fi; }

# Stamp the version the binaries report: unstamped they say v0.0.0-master, and
# clients that check it (helm's kubeVersion constraints) refuse them.
minor=$(echo "$K8S_VERSION" | cut -d. -f2)
stamp_flags="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
for c in kube-apiserver kube-controller-manager kube-scheduler etcd kubelet ociimage; do
  # The module's dependencies and the tool's own source.
  pin="$K8S_VERSION stamped $(cat "$root/hack/tools/go.sum" "$root/hack/tools/cmd/$c"/*.go | sha256sum | cut -c1-16)"
  if ! fresh "$c" "$pin"; then
    # The first of them also downloads the tools module's dependencies.
    case $c in
      etcd) version=$(module_version go.etcd.io/etcd/server/v3) ;;
      ociimage) version="(hack/tools)" ;;
      *) version=$K8S_VERSION ;;
    esac
    build "$c" "$version" go -C "$root/hack/tools" build -trimpath -ldflags "$stamp_flags" -o "$bin/$c" "./cmd/$c"
    stamp "$c" "$pin"
  fi
done

install_tool() { # NAME PACKAGE VERSION
  if ! fresh "$1" "$3"; then
    build "$1" "$3" env GOBIN="$bin" GOFLAGS=-buildvcs=false go install -trimpath "$2@$3"
    stamp "$1" "$3"
  fi
}
install_tool kwok sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION"
install_tool helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION"
install_tool staticcheck honnef.co/go/tools/cmd/staticcheck "$STATICCHECK_VERSION"
echo ">> tools ready in $bin"
