#!/usr/bin/env bash
# Builds the tools the tests and the demo need into _output/bin, each once:
# a real control plane (kube-apiserver, kube-controller-manager, kube-scheduler,
# etcd), the kubelet that test/realnode runs inside a systemd-nspawn node, and
# ociimage (container images without a container engine) from the hack/tools
# module, and kwok, helm and staticcheck from their own modules at pinned
# versions. A tool is rebuilt only when its pin changes.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${NODEPATCH_TOOLS_BIN:-$root/_output/bin}
mkdir -p "$bin"

KWOK_VERSION=v0.7.0
HELM_VERSION=v3.19.0
STATICCHECK_VERSION=v0.8.2
# The control plane's version is the one hack/tools/go.mod requires.
K8S_VERSION=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit} $1 == "require" && $2 == "k8s.io/kubernetes" {print $3; exit}' "$root/hack/tools/go.mod")

# fresh NAME PIN: true when bin/NAME exists and was built from PIN.
fresh() { [ -x "$bin/$1" ] && [ "$(cat "$bin/.$1.pin" 2>/dev/null)" = "$2" ]; }
stamp() { echo "$2" > "$bin/.$1.pin"; }

# Stamp the version the binaries report: unstamped they say v0.0.0-master, and
# clients that check it (helm's kubeVersion constraints) refuse them.
minor=$(echo "$K8S_VERSION" | cut -d. -f2)
stamp_flags="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
for c in kube-apiserver kube-controller-manager kube-scheduler etcd kubelet ociimage; do
  # The module's dependencies and the tool's own source.
  pin="$K8S_VERSION stamped $(cat "$root/hack/tools/go.sum" "$root/hack/tools/cmd/$c"/*.go | sha256sum | cut -c1-16)"
  if ! fresh "$c" "$pin"; then
    echo ">> building $c ($K8S_VERSION from the tools module; the first build takes a few minutes)"
    (cd "$root/hack/tools" && go build -trimpath -ldflags "$stamp_flags" -o "$bin/$c" "./cmd/$c")
    stamp "$c" "$pin"
  fi
done

install_tool() { # NAME PACKAGE VERSION
  if ! fresh "$1" "$3"; then
    echo ">> building $1 $3"
    GOBIN="$bin" GOFLAGS=-buildvcs=false go install -trimpath "$2@$3"
    stamp "$1" "$3"
  fi
}
install_tool kwok sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION"
install_tool helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION"
install_tool staticcheck honnef.co/go/tools/cmd/staticcheck "$STATICCHECK_VERSION"
echo ">> tools ready in $bin"
