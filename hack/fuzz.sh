#!/usr/bin/env bash
# Runs every fuzz target of the product's packages for a while each (default 20s).
# What a run finds lands in the package's testdata/fuzz and becomes a regression seed.
set -euo pipefail
cd "$(dirname "$0")/.."
time=${1:-20s}
for pkg in $(go list ./pkg/...); do
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo ">> $pkg $target ($time)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$time" "$pkg"
  done
done
